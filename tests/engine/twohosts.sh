#!/usr/bin/env bash
# tests/engine/twohosts.sh - two hosts, each a program on the library with
# an engine of its own (issue 17): namespaces a and b joined by a veth
# pair; in each, a TAP device ut0 and the veth end in a Linux bridge, so
# that both engines are on one Ethernet segment (the kernels hold no
# address on it). Engine a is 10.78.0.2/24 and fd78::2/64, engine b
# 10.78.0.3/24 and fd78::3/64, each with a MAC of its own. Over IPv4 and
# IPv6: python3 -m http.server under the launcher in a, curl under the
# launcher in b fetching 10 MB (sha256; the server logs b's address); a UDP echo server under the
# launcher in a, a client under the launcher in b (udp_echo.py, every echo
# compared, both ends' sha256); and iperf3 between them over IPv4. Every
# library-side run must show the engine backend in its USOCK_STATS.
# ENGINE_CONTROL=1: the same with the kernels holding those addresses on
# the bridges and plain programs (the harness's positive control: the same
# bridges, veth and TAP devices, without the engines).
set -uo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
engine_prereqs

A4=10.78.0.2 A6=fd78::2 B4=10.78.0.3 B6=fd78::3
if ! { mk_ns a && mk_ns b && mk_veth a v0 b v0; }; then summary; exit; fi
for h in a b; do
  if ! { mk_tap "$h" ut0 && mk_bridge "$h" br0 ut0 v0; }; then summary; exit; fi
done
if [ "$ENGINE_CONTROL" = 1 ]; then
  # the control: the kernels take the engines' addresses, on the bridges
  if ! { addr_add a br0 "$A4/24" "$A6/64" && addr_add b br0 "$B4/24" "$B6/64"; }; then summary; exit; fi
fi
# lib_a NAME / lib_b NAME: LIB_RUN for a library-side program in a or b,
# its USOCK_STATS in $work/stats.NAME.
lib_a() { lib_prefix a ut0 "$A4/24,$A6/64" "" 02:78:00:00:00:02 "$work/stats.$1"; }
lib_b() { lib_prefix b ut0 "$B4/24,$B6/64" "" 02:78:00:00:00:03 "$work/stats.$1"; }

mkdir -p "$work/www"
head -c 10000000 /dev/urandom > "$work/www/f10m.bin"
want=$(sha "$work/www/f10m.bin")

# 1. TCP: http.server (library, a) -> curl (library, b)
if need curl -- "curl (library, b) fetching from http.server (library, a)"; then
  for fam in 4 6; do
    if [ "$fam" = 4 ]; then sa=$A4; else sa=$A6; fi
    lib_a http$fam
    spawn http$fam 300 "${LIB_RUN[@]}" "$PY" -u -m http.server --bind "$sa" --directory "$work/www" 8000 \
      > "$work/http$fam.log" 2>&1
    if await_server "IPv$fam http.server (library, a) serving" http$fam "$work/http$fam.log" '^Serving HTTP'; then
      lib_b curl$fam
      rc=0
      timeout 90 "${LIB_RUN[@]}" curl -sS --max-time 60 -o "$work/got.curl$fam" \
        "$(url "$fam" "$sa" 8000 f10m.bin)" 2> "$work/curl$fam.err" || rc=$?
      got=$(sha "$work/got.curl$fam")
      check "IPv$fam curl (library, b) <- http.server (library, a): 10 MB, sha256 equal" \
        "curl exit $rc, $(stat -c %s "$work/got.curl$fam" 2>/dev/null || echo 0) bytes, sha256 ${got:0:16}..; curl: $(tail_of "$work/curl$fam.err"); server: $(tail_of "$work/http$fam.log")" \
        [ "$rc.$got" = "0.$want" ]
      carried "$work/stats.curl$fam" "IPv$fam curl (library, b)"
      if [ "$fam" = 4 ]; then sb=$B4; else sb=$B6; fi
      check "IPv$fam http.server (library, a) logged the client as $sb (engine b)" "log: $(tail_of "$work/http$fam.log")" \
        grep -q "^$sb - .*GET /f10m.bin.* 200 " "$work/http$fam.log"
    fi
    stop_int http$fam
    carried "$work/stats.http$fam" "IPv$fam http.server (library, a)"
  done
fi

# 2. UDP: echo server (library, a) <-> client (library, b), 500 datagrams
udp=tests/engine/udp_echo.py
for fam in 4 6; do
  if [ "$fam" = 4 ]; then sa=$A4; else sa=$A6; fi
  lib_a udps$fam
  spawn udps$fam 120 "${LIB_RUN[@]}" "$PY" -u "$udp" server "$sa" 5301 > "$work/udps$fam.log" 2>&1
  if await_server "IPv$fam UDP echo server (library, a) ready" udps$fam "$work/udps$fam.log" '^ready'; then
    lib_b udpc$fam
    rc=0
    out=$(timeout 90 "${LIB_RUN[@]}" "$PY" -u "$udp" client "$sa" 5301 500 2>&1) || rc=$?
    src=0
    if [ "$rc" = 0 ]; then reap udps$fam || src=$?; fi
    check "IPv$fam UDP client (library, b) -> echo server (library, a): $(grep -o 'n=.*resent=[0-9]*' <<< "$out")" \
      "client exit $rc, server exit $src: $(tail -n 3 <<< "$out" | tr '\n' ' '); server: $(tail_of "$work/udps$fam.log")" \
      [ "$rc.$src" = 0.0 ]
    carried "$work/stats.udpc$fam" "IPv$fam UDP client (library, b)"
  fi
  stop udps$fam
  carried "$work/stats.udps$fam" "IPv$fam UDP echo server (library, a)"
done

# 3. iperf3 -s (library, a) <- iperf3 -c (library, b), IPv4, 3 s
if need iperf3 -- "iperf3 between two engines"; then
  lib_a iperf3s
  spawn iperf3s 120 "${LIB_RUN[@]}" iperf3 -s -1 --forceflush -B "$A4" -p 5201 > "$work/iperf3s.log" 2>&1
  if await_server "iperf3 -s (library, a) listening" iperf3s "$work/iperf3s.log" 'Server listening'; then
    lib_b iperf3c
    rc=0
    timeout 60 "${LIB_RUN[@]}" iperf3 -c "$A4" -p 5201 -t 3 -J > "$work/iperf3.json" 2> "$work/iperf3.err" || rc=$?
    res=$("$PY" - "$work/iperf3.json" <<'PY' 2>&1
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except Exception as e:
    sys.exit("no JSON from iperf3: %s" % e)
r = d.get("end", {}).get("sum_received") or {}
if not r.get("bytes"):
    sys.exit("no bytes received; iperf3 said: %s" % d.get("error", "?"))
said = "; iperf3 said: %s" % d["error"] if d.get("error") else ""
print("%.2f Gbit/s, %d bytes received%s" % (r["bits_per_second"] / 1e9, r["bytes"], said))
PY
) || rc=${rc/#0/1}
    src=0
    if [ "$rc" = 0 ]; then reap iperf3s || src=$?; fi
    check "IPv4 iperf3 (library, b) -> iperf3 -s (library, a): $res" \
      "client exit $rc, server exit $src: $res; stderr: $(tail_of "$work/iperf3.err"); server: $(tail_of "$work/iperf3s.log")" \
      [ "$rc.$src" = 0.0 ]
    carried "$work/stats.iperf3c" "iperf3 -c (library, b)"
  fi
  stop iperf3s
  carried "$work/stats.iperf3s" "iperf3 -s (library, a)"
fi

summary

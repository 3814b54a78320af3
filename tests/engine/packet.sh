#!/usr/bin/env bash
# tests/engine/packet.sh - the engine on a raw AF_PACKET socket (issue 17:
# --netif packet:IFNAME, "on a host next to its kernel stack, with a
# dedicated address"): namespaces host and lib joined by a veth pair; the
# kernel in host holds 10.77.1.1/24 and fd77:1::1/64 on its end, and in lib
# programs run under
#   bin/usockrun --netif packet:pk0 --addr 10.77.1.2/24,fd77:1::2/64
# on the other end, pk0, where lib's kernel holds no address (it drops what
# is not its own). Over IPv4 and IPv6: curl under the launcher fetches 10 MB
# from a kernel http.server, a kernel curl fetches 10 MB from http.server
# under the launcher (sha256 both), and UDP both ways (udp_echo.py). Every
# library-side run must show the engine backend in its USOCK_STATS.
# The veth's kernel end offloads checksums (it is the usual case for veth,
# bridges and containers): frames reach the packet socket with TCP/UDP
# checksums not yet filled in (TP_STATUS_CSUMNOTREADY), which the engine
# must accept as the kernel does.
# ENGINE_CONTROL=1: lib's kernel holds the addresses on pk0 and programs run
# plainly (the harness's positive control).
set -uo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
engine_prereqs

K4=10.77.1.1 K6=fd77:1::1 L4=10.77.1.2 L6=fd77:1::2
if ! { mk_ns host && mk_ns lib && mk_veth host ut1 lib pk0 && addr_add host ut1 "$K4/24" "$K6/64"; }; then
  summary; exit
fi
if [ "$ENGINE_CONTROL" = 1 ]; then
  addr_add lib pk0 "$L4/24" "$L6/64" || { summary; exit; }
fi
H=(ip netns exec "${ns[host]}")
libp() { lib_prefix lib packet:pk0 "$L4/24,$L6/64" "" 02:77:01:00:00:02 "$work/stats.$1"; }

mkdir -p "$work/www"
head -c 10000000 /dev/urandom > "$work/www/f10m.bin"
want=$(sha "$work/www/f10m.bin")

if need curl -- "curl over packet:"; then
  for fam in 4 6; do
    if [ "$fam" = 4 ]; then k=$K4 l=$L4; else k=$K6 l=$L6; fi
    # 1. curl (library) <- http.server (kernel)
    spawn khttp$fam 300 "${H[@]}" "$PY" -u -m http.server --bind "$k" --directory "$work/www" 8000 \
      > "$work/khttp$fam.log" 2>&1
    if await_server "IPv$fam http.server (kernel) serving" khttp$fam "$work/khttp$fam.log" '^Serving HTTP'; then
      libp curl$fam
      rc=0
      timeout 90 "${LIB_RUN[@]}" curl -sS --max-time 30 -o "$work/got.curl$fam" \
        "$(url "$fam" "$k" 8000 f10m.bin)" 2> "$work/curl$fam.err" || rc=$?
      got=$(sha "$work/got.curl$fam")
      check "IPv$fam curl (library, packet:) <- http.server (kernel): 10 MB, sha256 equal" \
        "curl exit $rc, $(stat -c %s "$work/got.curl$fam" 2>/dev/null || echo 0) bytes; stderr: $(tail_of "$work/curl$fam.err")" \
        [ "$rc.$got" = "0.$want" ]
      carried "$work/stats.curl$fam" "IPv$fam curl (library, packet:)"
    fi
    stop_int khttp$fam
    # 2. curl (kernel) <- http.server (library)
    libp http$fam
    spawn http$fam 300 "${LIB_RUN[@]}" "$PY" -u -m http.server --bind "$l" --directory "$work/www" 8000 \
      > "$work/http$fam.log" 2>&1
    if await_server "IPv$fam http.server (library, packet:) serving" http$fam "$work/http$fam.log" '^Serving HTTP'; then
      rc=0
      timeout 90 "${H[@]}" curl -sS --max-time 30 -o "$work/got.http$fam" \
        "$(url "$fam" "$l" 8000 f10m.bin)" 2> "$work/khttp$fam.err" || rc=$?
      got=$(sha "$work/got.http$fam")
      check "IPv$fam curl (kernel) <- http.server (library, packet:): 10 MB, sha256 equal" \
        "curl exit $rc, $(stat -c %s "$work/got.http$fam" 2>/dev/null || echo 0) bytes; curl: $(tail_of "$work/khttp$fam.err"); server: $(tail_of "$work/http$fam.log")" \
        [ "$rc.$got" = "0.$want" ]
    fi
    stop_int http$fam
    carried "$work/stats.http$fam" "IPv$fam http.server (library, packet:)"
  done
fi

# 3. UDP both ways
udp=tests/engine/udp_echo.py
for fam in 4 6; do
  if [ "$fam" = 4 ]; then k=$K4 l=$L4; else k=$K6 l=$L6; fi
  spawn kudp$fam 120 "${H[@]}" "$PY" -u "$udp" server "$k" 5300 > "$work/kudp$fam.log" 2>&1
  if await_server "IPv$fam UDP echo server (kernel) ready" kudp$fam "$work/kudp$fam.log" '^ready'; then
    libp udpc$fam
    rc=0
    out=$(timeout 90 "${LIB_RUN[@]}" "$PY" -u "$udp" client "$k" 5300 500 2>&1) || rc=$?
    check "IPv$fam UDP client (library, packet:) -> echo server (kernel): $(grep -o 'n=.*resent=[0-9]*' <<< "$out")" \
      "exit $rc: $(tail -n 3 <<< "$out" | tr '\n' ' ')" [ "$rc" = 0 ]
    carried "$work/stats.udpc$fam" "IPv$fam UDP client (library, packet:)"
  fi
  stop kudp$fam
  libp udps$fam
  spawn ludp$fam 120 "${LIB_RUN[@]}" "$PY" -u "$udp" server "$l" 5301 > "$work/ludp$fam.log" 2>&1
  if await_server "IPv$fam UDP echo server (library, packet:) ready" ludp$fam "$work/ludp$fam.log" '^ready'; then
    rc=0
    out=$(timeout 90 "${H[@]}" "$PY" -u "$udp" client "$l" 5301 500 2>&1) || rc=$?
    src=0
    if [ "$rc" = 0 ]; then reap ludp$fam || src=$?; fi
    check "IPv$fam UDP client (kernel) -> echo server (library, packet:): $(grep -o 'n=.*resent=[0-9]*' <<< "$out")" \
      "client exit $rc, server exit $src: $(tail -n 3 <<< "$out" | tr '\n' ' '); server: $(tail_of "$work/ludp$fam.log")" \
      [ "$rc.$src" = 0.0 ]
  fi
  stop ludp$fam
  carried "$work/stats.udps$fam" "IPv$fam UDP echo server (library, packet:)"
done

summary

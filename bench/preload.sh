#!/usr/bin/env bash
# bench/preload.sh - unmodified Debian programs under bin/usockrun (server and
# client both in user space, on a fresh --net directory per run) against the
# same programs on the kernel's loopback, in the same run. Kernel and
# user-space runs alternate (kernel, user, kernel, user, ...) so that load
# from other work on the machine hits both sides alike. For each workload it
# prints every value, the median of each side and the ratio user/kernel
# (throughput and requests/s: higher is better, ratio > 1 = the library wins).
#
#   bench/preload.sh                     # RUNS=5 DUR=3
#   RUNS=3 DUR=1 bench/preload.sh
#   LIB=/path/libuserspacesock.so bench/preload.sh
#   ONLY="redis nginx_3b" bench/preload.sh   # some of the workloads below
#
# Workloads (each skipped if its programs are not installed):
#   iperf3 TCP, iperf3 UDP (-b 0), redis-benchmark SET/GET against
#   redis-server, wrk against nginx on a 100 kB file and on a 3-byte file.
# Logs of every run: bench/build/preload/.
# Exit status: 0; 1 if a workload failed on both sides; 2 if the library
# (or a tool the script itself needs) is missing. A workload that fails on
# one side only is reported (FAIL) but does not fail the script: the
# library's gaps are what this measures.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
RUNS=${RUNS:-5}
DUR=${DUR:-3}
LIB=${LIB:-$ROOT/target/release/libuserspacesock.so}
USOCKRUN=$ROOT/bin/usockrun
# iperf3 UDP: offered rate (0 = unlimited) and datagram size. The size is
# pinned because iperf3 derives its default from the control connection's
# TCP_MAXSEG, which the kernel and the library answer differently: unpinned,
# the two sides would not send the same datagrams.
UDP_RATE=${UDP_RATE:-0}
UDP_LEN=${UDP_LEN:-32768}
LOGS=$HERE/build/preload
ONLY=${ONLY:-}

# Distinct ports per side, away from the ports tests/preload/run.sh uses, so
# a test running at the same time does not collide with the kernel side.
declare -A KPORT=([iperf3_tcp]=21201 [iperf3_udp]=21202 [redis]=21379 [nginx_100k]=21080 [nginx_3b]=21081)
declare -A UPORT=([iperf3_tcp]=22201 [iperf3_udp]=22202 [redis]=22379 [nginx_100k]=22080 [nginx_3b]=22081)

# Metrics: label, unit, printf format, and whether higher is better (a ratio
# is printed only for those; the ratio of loss percentages says nothing).
declare -A LABEL UNIT FMT HIGHER
metric() { LABEL[$1]=$2; UNIT[$1]=$3; FMT[$1]=$4; HIGHER[$1]=$5; }
metric tcp_gbps "iperf3 TCP" Gbit/s %.2f yes
metric udp_gbps "iperf3 UDP" Gbit/s %.2f yes
metric udp_lost "iperf3 UDP lost" % %.1f no
metric redis_set "redis SET" req/s %.0f yes
metric redis_get "redis GET" req/s %.0f yes
metric ngx_100k "nginx 100 kB" req/s %.0f yes
metric ngx_3b "nginx 3 B" req/s %.0f yes

# A higher priority (never a lower one) for both sides alike when we may, so
# compiles running next to us disturb the measurement less.
NICE=()
if [ "$(id -u)" = 0 ]; then NICE=(nice -n -5); fi

SRV_PID="" CLI_PID="" CUR=/dev/null
work=""

die() { echo "preload.sh: $*" >&2; exit 2; }

# stop_pid PID: TERM (timeout forwards it to the program), a grace period,
# then KILL for the program (timeout's child) and timeout itself; reaped.
stop_pid() {
  local pid=$1 _
  [ -n "$pid" ] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      pkill -KILL -P "$pid" 2>/dev/null || true
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  stop_pid "$CLI_PID"
  stop_pid "$SRV_PID"
  [ -z "$work" ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'echo "preload.sh: interrupted" >&2; exit 130' INT TERM

# set_prefix SIDE NET: PRE becomes the command prefix of that side: the
# kernel's sockets as they are, or the launcher on the user-space network NET.
set_prefix() {
  if [ "$1" = user ]; then
    PRE=("${NICE[@]}" "$USOCKRUN" --lib "$LIB" --net "$2" --)
  else
    PRE=("${NICE[@]}")
  fi
}

# listening SIDE NET PORT: is a server listening there? Under the library a
# bound port is the socket file NET/t<PORT>; it exists from bind() on, so
# also ask ss whether that AF_UNIX socket listens (a connect between bind and
# listen would be refused).
listening() {
  if [ "$1" = user ]; then
    [ -S "$2/t$3" ] && [ -n "$(ss -Hxl src "$2/t$3" 2>/dev/null)" ]
  else
    [ -n "$(ss -Hltn "sport = :$3" 2>/dev/null)" ]
  fi
}

# start_server SIDE NET PORT LOG CMD...: starts CMD in the background (its
# time limit only a safety net: it is stopped long before) and waits up to
# 10 s for it to listen; the pid is in SRV_PID.
start_server() {
  local side=$1 net=$2 port=$3 log=$4 _; shift 4
  if [ "$side" = kernel ] && listening kernel "" "$port"; then
    echo "preload.sh: kernel port $port is already in use by another program" >"$log"
    return 1
  fi
  set_prefix "$side" "$net"
  timeout -k 5 $((DUR * 4 + 300)) "${PRE[@]}" "$@" >"$log" 2>&1 &
  SRV_PID=$!
  for _ in $(seq 100); do
    listening "$side" "$net" "$port" && return 0
    kill -0 "$SRV_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "preload.sh: server did not listen on port $port" >>"$log"
  stop_server "$log" || true
  return 1
}

# stop_server ERRLOG: stops the server of start_server. It fails (reason in
# ERRLOG) if the server was already gone by a signal, which we did not send:
# then the client measured a server that died under it at some point.
# (iperf3 -s -1 exits by itself after its test, with status 0.)
stop_server() {
  local st=0
  if [ -n "$SRV_PID" ] && ! kill -0 "$SRV_PID" 2>/dev/null; then
    wait "$SRV_PID" 2>/dev/null || st=$?
  fi
  stop_pid "$SRV_PID"
  SRV_PID=""
  if [ "$st" -gt 128 ]; then
    echo "the server died of signal $((st - 128)) before it was stopped" >>"$1"
    return 1
  fi
}

# client SIDE NET LIMIT OUT ERR CMD...: CMD on that side, killed after LIMIT
# seconds (status 124). Run in the background and waited for, so that a
# Ctrl-C interrupts the wait at once instead of after the client.
client() {
  local side=$1 net=$2 limit=$3 out=$4 err=$5 rc=0; shift 5
  set_prefix "$side" "$net"
  timeout -k 5 "$limit" "${PRE[@]}" "$@" >"$out" 2>"$err" &
  CLI_PID=$!
  wait "$CLI_PID" || rc=$?
  CLI_PID=""
  return "$rc"
}

# --- workloads: WORKLOAD SIDE NET PORT LOG -------------------------------------
# Each appends "metric value" lines (and optionally "note text") to $CUR and
# returns 0, 124 on a timeout, or another status on a failure. They are
# called in an `if`, where set -e does not apply: every step checks itself.

# iperf3 over TCP or UDP: receiver throughput (and loss for UDP) from -J.
iperf3_run() {
  local mode=$1 side=$2 net=$3 port=$4 log=$5 rc=0
  local -a flags=()
  [ "$mode" = udp ] && flags=(-u -b "$UDP_RATE" -l "$UDP_LEN")
  start_server "$side" "$net" "$port" "$log.server" iperf3 -s -1 -p "$port" || return 1
  client "$side" "$net" $((DUR + 15)) "$log.json" "$log.err" \
    iperf3 -c 127.0.0.1 -p "$port" -t "$DUR" -J "${flags[@]}" || rc=$?
  stop_server "$log.err" || [ "$rc" != 0 ] || rc=1
  [ "$rc" = 0 ] || return "$rc"
  python3 - "$log.json" "$mode" >>"$CUR" 2>>"$log.err" <<'PY' || return 1
import json, sys
d = json.load(open(sys.argv[1]))
end = d.get("end", {})
r = end.get("sum_received") or end.get("sum")   # receiver side; old iperf3: sum
if not r or not r.get("bytes"):
    sys.exit("iperf3: no receiver figures: " + d.get("error", "?"))
# An "error" beside complete figures is a failed getsockopt (TCP_CONGESTION
# or TCP_INFO for the report) after the test: shown, not fatal.
if d.get("error"):
    print("note", "iperf3 said: " + d["error"])
if sys.argv[2] == "tcp":
    print("tcp_gbps", r["bits_per_second"] / 1e9)
else:
    print("udp_gbps", r["bits_per_second"] / 1e9)
    print("udp_lost", r["lost_percent"])
PY
}
wl_iperf3_tcp() { iperf3_run tcp "$@"; }
wl_iperf3_udp() { iperf3_run udp "$@"; }

# redis-benchmark SET and GET (CSV output: "SET","123456.79",...).
wl_redis() {
  local side=$1 net=$2 port=$3 log=$4 rc=0
  start_server "$side" "$net" "$port" "$log.server" \
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no || return 1
  client "$side" "$net" 180 "$log.out" "$log.err" \
    redis-benchmark -h 127.0.0.1 -p "$port" -q -n 100000 -c 50 -t set,get --csv || rc=$?
  stop_server "$log.err" || [ "$rc" != 0 ] || rc=1
  [ "$rc" = 0 ] || return "$rc"
  awk -F'"' '$2 == "SET" { print "redis_set", $4 } $2 == "GET" { print "redis_get", $4 }' \
    "$log.out" >>"$CUR"
  [ "$(grep -c '^redis_' "$CUR")" = 2 ] || { echo "no SET/GET figures in the output" >>"$log.err"; return 1; }
}

# nginx (one process: master_process off; as in tests/preload/run.sh) and
# wrk -t2 -c50 on one file. Non-2xx answers make the run a failure: their
# rate is not a rate of served files.
nginx_run() {
  local file=$1 key=$2 side=$3 net=$4 port=$5 log=$6 rc=0 conf
  conf=$work/ngx/$side.$port.conf
  cat >"$conf" <<CONF
worker_processes 1; daemon off; master_process off; pid $conf.pid;
error_log $LOGS/nginx.$side.$port.error.log;
events { worker_connections 1024; }
http { access_log off; server { listen 127.0.0.1:$port; root $work/ngx/html; } }
CONF
  start_server "$side" "$net" "$port" "$log.server" \
    nginx -c "$conf" -p "$work/ngx" -e "$LOGS/nginx.$side.$port.error.log" || return 1
  client "$side" "$net" $((DUR + 30)) "$log.out" "$log.err" \
    wrk -t2 -c50 -d"${DUR}s" --timeout 5s "http://127.0.0.1:$port/$file" || rc=$?
  stop_server "$log.err" || [ "$rc" != 0 ] || rc=1
  [ "$rc" = 0 ] || return "$rc"
  if grep -q 'Non-2xx' "$log.out"; then
    grep 'Non-2xx' "$log.out" >>"$log.err"
    return 1
  fi
  awk -v k="$key" '/^Requests\/sec:/ { print k, $2 }' "$log.out" >>"$CUR"
  grep -q "^$key " "$CUR" || { echo "no Requests/sec in wrk's output" >>"$log.err"; return 1; }
  # connect/read/write/timeout errors do not void the run, but are shown
  awk '/Socket errors:/ { sub(/^ +/, ""); print "note", $0 }' "$log.out" >>"$CUR"
}
wl_nginx_100k() { nginx_run f100k.bin ngx_100k "$@"; }
wl_nginx_3b() { nginx_run f3.txt ngx_3b "$@"; }

# --- driver --------------------------------------------------------------------

# fmt METRIC VALUE: the value in the metric's format.
fmt() { LC_ALL=C awk -v f="${FMT[$1]}" -v v="$2" 'BEGIN { printf f "\n", v }'; }

# median FILE: median of the numeric lines of FILE (nothing if none).
median() {
  grep -E '^[0-9.eE+-]+$' "$1" 2>/dev/null | sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) exit
    if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }' || true
}

# side_median METRIC SIDE: the formatted median of that side's values; with
# no value at all, "timeout" if every run timed out, else "FAIL".
side_median() {
  local f=$work/res.$1.$2 v
  v=$(median "$f")
  if [ -n "$v" ]; then fmt "$1" "$v"
  elif grep -qvx timeout "$f"; then echo FAIL
  else echo timeout
  fi
}

FAILED_BOTH=()
SUMMARY=()

# run_workload NAME METRIC...: RUNS alternating kernel and user-space runs
# of wl_NAME, then the values and medians of each metric.
run_workload() {
  local name=$1 i side net rc line m v n; shift
  local -a metrics=("$@")
  echo "== $name (kernel port ${KPORT[$name]}, user-space port ${UPORT[$name]})"
  for m in "${metrics[@]}"; do : >"$work/res.$m.kernel"; : >"$work/res.$m.user"; done
  for ((i = 1; i <= RUNS; i++)); do
    for side in kernel user; do
      net=$work/net.$name.$i            # fresh: no socket file of an earlier run
      CUR=$work/cur; : >"$CUR"
      local log=$LOGS/$name.$side.$i port
      if [ "$side" = kernel ]; then port=${KPORT[$name]}; else port=${UPORT[$name]}; fi
      rc=0; "wl_$name" "$side" "$net" "$port" "$log" || rc=$?
      line=$(printf '   run %d/%d %-6s' "$i" "$RUNS" "$side")
      for m in "${metrics[@]}"; do
        v=$(awk -v m="$m" '$1 == m { print $2; exit }' "$CUR")
        if [ "$rc" = 0 ] && [ -n "$v" ]; then
          v=$(fmt "$m" "$v")
          line+="  $v ${UNIT[$m]}"
        elif [ "$rc" = 124 ]; then v=timeout; line+="  timeout"
        else v=FAIL; line+="  FAIL"
        fi
        echo "$v" >>"$work/res.$m.$side"
      done
      n=$(sed -n 's/^note //p' "$CUR" | paste -sd ';' -)
      echo "$line${n:+  ($n)}"
      # why a run failed or hung: the client's stderr, the server's errors
      if [ "$rc" != 0 ]; then
        { cat "$log".*err; grep -iE 'error|preload.sh:' "$log.server"; } 2>/dev/null |
          grep -v '^$' | sort -u | head -4 | sed 's/^/      | /' || true
      fi
      rm -rf "$net"
    done
  done
  local both=yes ks us km um ratio
  for m in "${metrics[@]}"; do
    ks=$(paste -sd ' ' "$work/res.$m.kernel"); us=$(paste -sd ' ' "$work/res.$m.user")
    # a side with no value at all: timeout if every run timed out, else FAIL
    km=$(side_median "$m" kernel); um=$(side_median "$m" user)
    ratio=-
    if [ "${HIGHER[$m]}" = yes ] && [[ $km =~ ^[0-9] ]] && [[ $um =~ ^[0-9] ]]; then
      ratio=$(LC_ALL=C awk -v u="$um" -v k="$km" 'BEGIN { if (k > 0) printf "%.3f", u / k; else print "-" }')
    fi
    if [[ $km =~ ^[0-9] ]] || [[ $um =~ ^[0-9] ]]; then both=no; fi
    printf '   %-16s kernel: %s\n   %-16s user:   %s\n' "${LABEL[$m]}" "$ks" "" "$us"
    printf '   %-16s median kernel %s, user space %s %s, ratio user/kernel %s\n' \
      "" "$km" "$um" "${UNIT[$m]}" "$ratio"
    SUMMARY+=("$(printf '%-24s | %14s | %16s | %6s' "${LABEL[$m]} (${UNIT[$m]})" "$km" "$um" "$ratio")")
  done
  [ "$both" = no ] || FAILED_BOTH+=("$name")
}

# wanted WORKLOAD: not excluded by ONLY.
wanted() { [ -z "$ONLY" ] || [[ " $ONLY " == *" $1 "* ]]; }

# skip_unless PROGRAM...: prints a skip line and fails if one is missing.
skip_unless() {
  local p
  for p in "$@"; do
    command -v "$p" >/dev/null 2>&1 || { echo "== skip: $p not installed"; return 1; }
  done
}

# --- main ----------------------------------------------------------------------

[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer (got '$RUNS')"
[[ $DUR =~ ^[1-9][0-9]*$ ]] || die "DUR must be a positive whole number of seconds (got '$DUR')"
for w in $ONLY; do
  [ -n "${KPORT[$w]:-}" ] || die "ONLY: unknown workload '$w' (known: ${!KPORT[*]})"
done
[ -f "$LIB" ] || die "$LIB not found: build the library first (make lib)"
nm -D --defined-only "$LIB" 2>/dev/null | awk '$3 == "socket" { f = 1 } END { exit !f }' ||
  die "$LIB does not export socket(): not a usable build"
[ -x "$USOCKRUN" ] || die "$USOCKRUN not found"
for t in ss timeout awk; do command -v "$t" >/dev/null || die "$t not installed"; done

work=$(mktemp -d "${TMPDIR:-/tmp}/usock-preload.XXXXXX")
rm -rf "$LOGS"; mkdir -p "$LOGS" "$work/ngx/html"
head -c 100000 /dev/urandom >"$work/ngx/html/f100k.bin"
printf 'hi\n' >"$work/ngx/html/f3.txt"

echo "preload.sh: $RUNS runs per side, alternating kernel/user space; DUR=$DUR s"
echo "   library: $LIB ($(date -r "$LIB" '+%F %T'))"
echo "   commit:  $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')" \
  "$(git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || echo '(src/ has uncommitted changes)')"
echo "   host:    $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)${NICE[*]:+, clients and servers under ${NICE[*]}}"
echo "   logs:    $LOGS"

if { wanted iperf3_tcp || wanted iperf3_udp; } && skip_unless iperf3 python3; then
  if wanted iperf3_tcp; then run_workload iperf3_tcp tcp_gbps; fi
  if wanted iperf3_udp; then run_workload iperf3_udp udp_gbps udp_lost; fi
fi
if wanted redis && skip_unless redis-server redis-benchmark; then
  run_workload redis redis_set redis_get
fi
if { wanted nginx_100k || wanted nginx_3b; } && skip_unless nginx wrk; then
  if wanted nginx_100k; then run_workload nginx_100k ngx_100k; fi
  if wanted nginx_3b; then run_workload nginx_3b ngx_3b; fi
fi

echo
echo "== medians of $RUNS runs, load now $(cut -d' ' -f1-3 /proc/loadavg) (ratio = user/kernel; > 1: the library is faster)"
printf '%-24s | %14s | %16s | %6s\n' workload "kernel median" "user-space median" ratio
for line in "${SUMMARY[@]}"; do echo "$line"; done
if [ "${#FAILED_BOTH[@]}" -gt 0 ]; then
  echo "FAILED on both sides: ${FAILED_BOTH[*]} (logs in $LOGS)"
  exit 1
fi

#!/usr/bin/env bash
# bench/preload.sh - unmodified Debian programs under bin/usockrun (server and
# client both in user space, on a fresh --net directory per run) against the
# same programs on the kernel's loopback, in the same run. Kernel and
# user-space runs alternate (kernel, user, kernel, user, ...) so that load
# from other work on the machine hits both sides alike. For each workload it
# prints every value, the median of each side with its successful runs out
# of attempted, and the ratio user/kernel (throughput and requests/s: higher
# is better, ratio > 1 = the library wins; CPU per unit: lower is better).
#
# CPU: beside each rate, the CPU time (user + system) of every process of
# the run -- the server and everything under it, all threads, sampled from
# /proc/PID/stat around the client's run, plus the client and everything
# under it (this shell's reaped-children time across the client's run) --
# per GB moved or per request. A rate bought with a spinning core shows.
#
#   bench/preload.sh                     # RUNS=5 DUR=3
#   RUNS=3 DUR=1 bench/preload.sh
#   LIB=/path/libuserspacesock.so bench/preload.sh
#   ONLY="redis nginx_3b" bench/preload.sh   # some of the workloads below
#   LOAD=1 bench/preload.sh              # one busy loop per core during every run
#   LOAD=1 LOAD_SETSID=1 bench/preload.sh    # ... each in its own session
#
# Workloads (a missing program is a SKIP, which fails the script unless
# ALLOW_SKIP names the program, as in tests/README.md):
#   iperf3 TCP; iperf3 UDP unlimited (-b 0: goodput, i.e. datagrams received
#   per second, on both sides, and the loss); iperf3 UDP at fixed rates
#   (UDP_RATES, the highest rate each side carries with under 1 % of the
#   offered datagrams missing); redis-benchmark SET and GET against
#   redis-server; wrk against nginx on a 100 kB file and on a 3-byte file.
# Logs of every run: bench/build/preload/.
# Exit status: 0 if every run of both sides succeeded; 1 if any run of
# either side failed (or timed out), or a skip was not allowed; 2 if the
# library (or a tool the script itself needs) is missing.
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
# The fixed-rate ladder (Gbit/s offered), climbed until a rate is not
# carried: the highest carried one is the figure.
UDP_RATES=${UDP_RATES:-0.5 1 2 4 8 16 32}
# iperf3 -w for the UDP runs (socket buffer size, both ends); empty: the
# programs' defaults (the kernel's 208 KiB receive buffer holds a handful of
# 32 KiB datagrams, so a receiver descheduled for a moment drops some).
UDP_WINDOW=${UDP_WINDOW:-}
LOGS=$HERE/build/preload
ONLY=${ONLY:-}
LOAD=${LOAD:-0}
LOAD_SETSID=${LOAD_SETSID:-0}
ALLOW_SKIP=${ALLOW_SKIP:-}
CLK_TCK=$(getconf CLK_TCK)

# Distinct ports per side, away from the ports tests/preload/run.sh uses, so
# a test running at the same time does not collide with the kernel side.
declare -A KPORT=([iperf3_tcp]=21201 [iperf3_udp]=21202 [iperf3_udp_rate]=21203 [redis]=21379 [nginx_100k]=21080 [nginx_3b]=21081)
declare -A UPORT=([iperf3_tcp]=22201 [iperf3_udp]=22202 [iperf3_udp_rate]=22203 [redis]=22379 [nginx_100k]=22080 [nginx_3b]=22081)

# Metrics: label, unit, printf format, and which way is better: "higher"
# (rates) or "lower" (CPU per unit) get a ratio; "none" does not (the ratio
# of loss percentages says nothing).
declare -A LABEL UNIT FMT BETTER
metric() { LABEL[$1]=$2; UNIT[$1]=$3; FMT[$1]=$4; BETTER[$1]=$5; }
metric tcp_gbps "iperf3 TCP" Gbit/s %.2f higher
metric tcp_cpu " CPU" s/GB %.3f lower
metric udp_gbps "iperf3 UDP goodput" Gbit/s %.2f higher
metric udp_lost " lost (-b 0)" % %.1f none
metric udp_cpu " CPU" s/GB %.3f lower
metric udp_carried "iperf3 UDP <1% missing" Gbit/s %.2f higher
metric redis_set "redis SET" req/s %.0f higher
metric redis_set_cpu " CPU" us/req %.2f lower
metric redis_get "redis GET" req/s %.0f higher
metric redis_get_cpu " CPU" us/req %.2f lower
metric ngx_100k "nginx 100 kB" req/s %.0f higher
metric ngx_100k_cpu " CPU" us/req %.2f lower
metric ngx_3b "nginx 3 B" req/s %.0f higher
metric ngx_3b_cpu " CPU" us/req %.2f lower

# A higher priority (never a lower one) for both sides alike when we may, so
# compiles running next to us disturb the measurement less. Not with LOAD=1:
# there the programs compete at normal priority, as a user's would.
NICE=()
if [ "$(id -u)" = 0 ] && [ "$LOAD" != 1 ]; then NICE=(nice -n -5); fi

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

# --- the loaded-machine mode ---------------------------------------------------
# start_load: one busy loop per core at normal priority, fresh for each run:
# plain children of this script (its session, so with autogroup its group:
# they compete with the programs thread for thread), or with LOAD_SETSID=1
# each in a session of its own (with autogroup: a group of its own each).
LOAD_PIDS=()
start_load() {
  local _
  [ "$LOAD" = 1 ] || return 0
  for _ in $(seq "$(nproc)"); do
    if [ "$LOAD_SETSID" = 1 ]; then setsid sh -c 'while :; do :; done' &
    else sh -c 'while :; do :; done' &
    fi
    LOAD_PIDS+=($!)
  done
}
stop_load() {
  [ "${#LOAD_PIDS[@]}" -gt 0 ] || return 0
  kill "${LOAD_PIDS[@]}" 2>/dev/null || true
  wait "${LOAD_PIDS[@]}" 2>/dev/null || true
  LOAD_PIDS=()
}

# --- CPU accounting ---------------------------------------------------------------
# No command substitution here: a subshell reaped by this shell would add its
# own CPU time to the children's time these read.
#
# tree_ticks PID: TT = clock ticks of user + system time of PID and of every
# process under it (all threads), including what they reaped of their own
# children (cutime, cstime). 0 if PID is gone.
tree_ticks() {
  local root=$1 f line pid rest n
  local -A par=() tick=() in=()
  TT=0
  [ -n "$root" ] || return 0
  for f in /proc/[0-9]*/stat; do
    read -r line 2>/dev/null <"$f" || continue   # gone meanwhile
    pid=${line%% *}; rest=${line##*) }
    read -r -a F <<<"$rest"          # F[0] state, F[1] ppid, F[11..14] u s cu cs
    par[$pid]=${F[1]}; tick[$pid]=$((F[11] + F[12] + F[13] + F[14]))
  done
  [ -n "${tick[$root]:-}" ] || return 0
  in[$root]=1
  n=1
  while [ "$n" -gt 0 ]; do            # add children of members until none is new
    n=0
    for pid in "${!par[@]}"; do
      if [ -z "${in[$pid]:-}" ] && [ -n "${in[${par[$pid]}]:-}" ]; then in[$pid]=1; n=1; fi
    done
  done
  for pid in "${!in[@]}"; do TT=$((TT + tick[$pid])); done
}
# child_ticks: CT = user + system ticks of this shell's reaped children.
child_ticks() {
  local line
  read -r line </proc/$$/stat
  read -r -a F <<<"${line##*) }"
  CT=$((F[13] + F[14]))
}

cleanup() {
  stop_pid "$CLI_PID"
  stop_pid "$SRV_PID"
  stop_load
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

# carried SIDE STATS ERRLOG: the library's USOCK_STATS lines ("<pid>
# <backend> claims=<n>", written by each program at exit) must show the
# cross-process backend carrying sockets on the user-space side, and there
# must be none on the kernel side (no library loaded): else the run measured
# something other than what it reports.
carried() {
  local n
  if [ "$1" = kernel ]; then
    [ ! -e "$2" ] && return 0
    echo "preload.sh: the kernel run loaded the library (USOCK_STATS written)" >>"$3"
    return 1
  fi
  # The shared-memory backend for TCP (xproc with USOCK_SHM=0), xproc for the rest.
  n=$(awk '$2 == "xproc" || $2 == "shm" { sub("claims=", "", $3); n += $3 } END { print n + 0 }' "$2" 2>/dev/null || echo 0)
  [ "${n:-0}" -gt 0 ] && return 0
  echo "preload.sh: the cross-process backend carried no socket (USOCK_STATS: $(paste -sd';' "$2" 2>/dev/null))" >>"$3"
  return 1
}

# listening SIDE NET PORT: is a server listening there? Under the library a
# bound TCP port is the socket file NET/s<PORT> (the shm backend's; NET/t<PORT>
# with USOCK_SHM=0), or a directory of them for an SO_REUSEPORT group; it
# exists from bind() on, so also ask ss whether that AF_UNIX socket listens
# (a connect between bind and listen would be refused).
listening() {
  if [ "$1" = user ]; then
    local f="$2/s$3" m
    [ "${USOCK_SHM:-}" = 0 ] && f="$2/t$3"
    if [ -d "$f" ]; then
      for m in "$f"/*; do [ -S "$m" ] && [ -n "$(ss -Hxl src "$m" 2>/dev/null)" ] && return 0; done
      return 1
    fi
    [ -S "$f" ] && [ -n "$(ss -Hxl src "$f" 2>/dev/null)" ]
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
# CPU_S: CPU seconds of the server's process tree during the client's run
# plus the client's own (and its children's); CPU_NOTE says which is which.
client() {
  local side=$1 net=$2 limit=$3 out=$4 err=$5 rc=0 s0 s1 c0 c1; shift 5
  set_prefix "$side" "$net"
  tree_ticks "$SRV_PID"; s0=$TT; child_ticks; c0=$CT
  timeout -k 5 "$limit" "${PRE[@]}" "$@" >"$out" 2>"$err" &
  CLI_PID=$!
  wait "$CLI_PID" || rc=$?
  CLI_PID=""
  child_ticks; c1=$CT; tree_ticks "$SRV_PID"; s1=$TT
  CPU_S=$(LC_ALL=C awk -v t=$((s1 - s0 + c1 - c0)) -v h="$CLK_TCK" 'BEGIN { printf "%.3f", t / h }')
  CPU_NOTE=$(LC_ALL=C awk -v s=$((s1 - s0)) -v c=$((c1 - c0)) -v h="$CLK_TCK" \
    'BEGIN { printf "CPU server %.2f s + client %.2f s", s / h, c / h }')
  return "$rc"
}

# --- workloads: WORKLOAD SIDE NET PORT LOG -------------------------------------
# Each appends "metric value" lines (and optionally "note text") to $CUR and
# returns 0, 124 on a timeout, or another status on a failure. They are
# called in an `if`, where set -e does not apply: every step checks itself.

# iperf3 over TCP or UDP: receiver throughput (and loss for UDP) from -J,
# and CPU per GB received. The server keeps running after the test (no -1)
# so that its CPU time can be read before it is stopped.
iperf3_run() {
  local mode=$1 side=$2 net=$3 port=$4 log=$5 rc=0
  local -a flags=()
  [ "$mode" = udp ] && flags=(-u -b "$UDP_RATE" -l "$UDP_LEN" ${UDP_WINDOW:+-w "$UDP_WINDOW"})
  start_server "$side" "$net" "$port" "$log.server" iperf3 -s -p "$port" || return 1
  client "$side" "$net" $((DUR + 15)) "$log.json" "$log.err" \
    iperf3 -c 127.0.0.1 -p "$port" -t "$DUR" -J "${flags[@]}" || rc=$?
  stop_server "$log.err" || [ "$rc" != 0 ] || rc=1
  [ "$rc" = 0 ] || return "$rc"
  echo "note $CPU_NOTE" >>"$CUR"
  python3 - "$log.json" "$mode" "$CPU_S" >>"$CUR" 2>>"$log.err" <<'PY' || return 1
import json, sys
d = json.load(open(sys.argv[1]))
cpu = float(sys.argv[3])
end = d.get("end", {})
r = end.get("sum_received") or end.get("sum")   # receiver side; old iperf3: sum
if not r or not r.get("bytes"):
    sys.exit("iperf3: no receiver figures: " + d.get("error", "?"))
# An "error" beside complete figures is a failed getsockopt (TCP_CONGESTION
# or TCP_INFO for the report) after the test: shown, not fatal.
if d.get("error"):
    print("note", "iperf3 said: " + d["error"])
gb = r["bytes"] / 1e9          # received: what the CPU time bought
if sys.argv[2] == "tcp":
    print("tcp_gbps", r["bits_per_second"] / 1e9)
    print("tcp_cpu", cpu / gb)
else:
    # goodput: bits of the datagrams that arrived, per second
    print("udp_gbps", r["bits_per_second"] / 1e9)
    print("udp_lost", r["lost_percent"])
    print("udp_cpu", cpu / gb)
PY
}
wl_iperf3_tcp() { iperf3_run tcp "$@"; }
wl_iperf3_udp() { iperf3_run udp "$@"; }

# iperf3 UDP at fixed offered rates (UDP_RATES, Gbit/s, climbing): a rate is
# carried when the receiver got at least 99 % of the bytes offered at that
# rate over the test (whether the rest was dropped, as the kernel does, or
# never sent because the sender was held back, as flow control does). The
# figure is the highest rate carried (0 if none); the ladder stops at the
# first rate not carried. One server for the whole ladder.
wl_iperf3_udp_rate() {
  local side=$1 net=$2 port=$3 log=$4 rc=0 rate best=0 steps="" res
  start_server "$side" "$net" "$port" "$log.server" iperf3 -s -p "$port" || return 1
  for rate in $UDP_RATES; do
    client "$side" "$net" $((DUR + 15)) "$log.$rate.json" "$log.err" \
      iperf3 -c 127.0.0.1 -p "$port" -t "$DUR" -J -u -b "${rate}G" -l "$UDP_LEN" \
      ${UDP_WINDOW:+-w "$UDP_WINDOW"} || rc=$?
    [ "$rc" = 0 ] || break
    res=$(python3 - "$log.$rate.json" "$rate" 2>>"$log.err" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
r = d["end"]["sum_received"]
offered = float(sys.argv[2]) * 1e9 / 8 * r["seconds"]
got = r["bytes"] / offered
print("ok" if got >= 0.99 else "no", "%.1f" % (100 * (1 - got)))
PY
) || { rc=1; break; }
    steps+=" ${rate}G:${res#* }%"
    [ "${res%% *}" = ok ] || break
    best=$rate
  done
  stop_server "$log.err" || [ "$rc" != 0 ] || rc=1
  [ "$rc" = 0 ] || return "$rc"
  echo "udp_carried $best" >>"$CUR"
  echo "note missing per offered rate:$steps" >>"$CUR"
}

# redis-benchmark SET, then GET (CSV output: "SET","123456.79",...), each
# its own client run so that each gets its CPU per request.
wl_redis() {
  local side=$1 net=$2 port=$3 log=$4 rc=0 op key v n=100000
  start_server "$side" "$net" "$port" "$log.server" \
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no || return 1
  for op in set get; do
    key=redis_$op
    client "$side" "$net" 180 "$log.$op.out" "$log.err" \
      redis-benchmark -h 127.0.0.1 -p "$port" -q -n "$n" -c 50 -t "$op" --csv || rc=$?
    [ "$rc" = 0 ] || break
    v=$(awk -F'"' -v op="${op^^}" '$2 == op { print $4 }' "$log.$op.out")
    if [ -z "$v" ]; then echo "no ${op^^} figure in the output" >>"$log.err"; rc=1; break; fi
    echo "$key $v" >>"$CUR"
    echo "${key}_cpu $(LC_ALL=C awk -v c="$CPU_S" -v n="$n" 'BEGIN { print c * 1e6 / n }')" >>"$CUR"
    echo "note ${op^^} $CPU_NOTE" >>"$CUR"
  done
  stop_server "$log.err" || [ "$rc" != 0 ] || rc=1
  return "$rc"
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
  # "  123456 requests in 3.00s, 1.2MB read": CPU per request
  awk -v k="${key}_cpu" -v c="$CPU_S" '/ requests in / && $1 > 0 { print k, c * 1e6 / $1 }' \
    "$log.out" >>"$CUR"
  grep -q "^${key}_cpu " "$CUR" || { echo "no request count in wrk's output" >>"$log.err"; return 1; }
  echo "note $CPU_NOTE" >>"$CUR"
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

# side_median METRIC SIDE: the formatted median of that side's successful
# runs; with no value at all, "timeout" if every run timed out, else "FAIL".
side_median() {
  local f=$work/res.$1.$2 v
  v=$(median "$f")
  if [ -n "$v" ]; then fmt "$1" "$v"
  elif grep -qvx timeout "$f"; then echo FAIL
  else echo timeout
  fi
}

# n_ok METRIC SIDE: "successful/attempted" runs of that side.
n_ok() {
  local f=$work/res.$1.$2
  echo "$(grep -cE '^[0-9.eE+-]+$' "$f" || true)/$(grep -c . "$f" || true)"
}

NFAILED=0
FAILED_RUNS=()
SUMMARY=()
SKIPS=()
SKIP_FAILED=()

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
      start_load
      rm -f "$log.stats" "$log.carried.err"
      export USOCK_STATS=$log.stats
      rc=0; "wl_$name" "$side" "$net" "$port" "$log" || rc=$?
      unset USOCK_STATS
      stop_load
      [ "$rc" != 0 ] || carried "$side" "$log.stats" "$log.carried.err" || rc=1
      line=$(printf '   run %d/%d %-6s' "$i" "$RUNS" "$side")
      local bad=$rc
      for m in "${metrics[@]}"; do
        v=$(awk -v m="$m" '$1 == m { print $2; exit }' "$CUR")
        if [ "$rc" = 0 ] && [ -n "$v" ]; then
          v=$(fmt "$m" "$v")
          line+="  $v ${UNIT[$m]}"
        elif [ "$rc" = 124 ]; then v=timeout; line+="  timeout"
        else v=FAIL; line+="  FAIL"; bad=1
        fi
        echo "$v" >>"$work/res.$m.$side"
      done
      # a run that failed, timed out or left out a figure fails the script
      if [ "$bad" != 0 ]; then
        NFAILED=$((NFAILED + 1)); FAILED_RUNS+=("$name/$side/run$i")
      fi
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
  local ks us km um ratio
  for m in "${metrics[@]}"; do
    ks=$(paste -sd ' ' "$work/res.$m.kernel"); us=$(paste -sd ' ' "$work/res.$m.user")
    km=$(side_median "$m" kernel); um=$(side_median "$m" user)
    ratio=-
    if [ "${BETTER[$m]}" != none ] && [[ $km =~ ^[0-9] ]] && [[ $um =~ ^[0-9] ]]; then
      ratio=$(LC_ALL=C awk -v u="$um" -v k="$km" 'BEGIN { if (k > 0) printf "%.3f", u / k; else print "-" }')
    fi
    printf '   %-22s kernel: %s\n   %-22s user:   %s\n' "${LABEL[$m]}" "$ks" "" "$us"
    printf '   %-22s median kernel %s (%s runs), user space %s (%s runs) %s, ratio user/kernel %s%s\n' \
      "" "$km" "$(n_ok "$m" kernel)" "$um" "$(n_ok "$m" user)" "${UNIT[$m]}" "$ratio" \
      "$([ "${BETTER[$m]}" = lower ] && echo ' (lower is better)')"
    SUMMARY+=("$(printf '%-32s | %14s %5s | %14s %5s | %6s' "${LABEL[$m]} (${UNIT[$m]})" \
      "$km" "$(n_ok "$m" kernel)" "$um" "$(n_ok "$m" user)" "$ratio")")
  done
}

# wanted WORKLOAD: not excluded by ONLY.
wanted() { [ -z "$ONLY" ] || [[ " $ONLY " == *" $1 "* ]]; }

# skip_unless PROGRAM...: for a missing program, a SKIP line (tests/README.md):
# counted, and a failure of the script unless ALLOW_SKIP names the program
# (or is "all"); logged to USOCK_SKIP_LOG if set. Fails if one is missing.
skip_unless() {
  local p
  for p in "$@"; do
    command -v "$p" >/dev/null 2>&1 && continue
    echo "SKIP $p: not installed (workloads that need it are not measured)"
    [ -z "${USOCK_SKIP_LOG:-}" ] || echo "bench-preload: $p: not installed" >>"$USOCK_SKIP_LOG"
    SKIPS+=("$p")
    if ! [[ " ${ALLOW_SKIP//,/ } " == *" $p "* || " ${ALLOW_SKIP//,/ } " == *" all "* ]]; then
      echo "   skip not allowed (set ALLOW_SKIP=$p to allow)"
      SKIP_FAILED+=("$p")
    fi
    return 1
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
for t in ss timeout awk getconf; do command -v "$t" >/dev/null || die "$t not installed"; done

work=$(mktemp -d "${TMPDIR:-/tmp}/usock-preload.XXXXXX")
rm -rf "$LOGS"; mkdir -p "$LOGS" "$work/ngx/html"
head -c 100000 /dev/urandom >"$work/ngx/html/f100k.bin"
printf 'hi\n' >"$work/ngx/html/f3.txt"

autogroup=$(cat /proc/sys/kernel/sched_autogroup_enabled 2>/dev/null || echo n/a)
echo "preload.sh: $RUNS runs per side, alternating kernel/user space; DUR=$DUR s"
echo "   library: $LIB ($(date -r "$LIB" '+%F %T'))"
echo "   commit:  $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')" \
  "$(git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || echo '(src/ has uncommitted changes)')"
echo "   host:    $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), kernel.sched_autogroup_enabled=$autogroup${NICE[*]:+, clients and servers under ${NICE[*]}}"
if [ "$LOAD" = 1 ]; then
  echo "   LOAD=1:  $(nproc) busy loops (sh -c 'while :; do :; done'), normal priority," \
    "$([ "$LOAD_SETSID" = 1 ] && echo "each in its own session (setsid)" || echo "plain children in this script's session")," \
    "started fresh for every run and killed after"
fi
echo "   CPU:     user+system of the server's process tree during the client's run + the client's, per unit"
echo "   logs:    $LOGS"

if { wanted iperf3_tcp || wanted iperf3_udp || wanted iperf3_udp_rate; } && skip_unless iperf3 python3; then
  if wanted iperf3_tcp; then run_workload iperf3_tcp tcp_gbps tcp_cpu; fi
  if wanted iperf3_udp; then run_workload iperf3_udp udp_gbps udp_lost udp_cpu; fi
  if wanted iperf3_udp_rate; then run_workload iperf3_udp_rate udp_carried; fi
fi
if wanted redis && skip_unless redis-server redis-benchmark; then
  run_workload redis redis_set redis_set_cpu redis_get redis_get_cpu
fi
if { wanted nginx_100k || wanted nginx_3b; } && skip_unless nginx wrk; then
  if wanted nginx_100k; then run_workload nginx_100k ngx_100k ngx_100k_cpu; fi
  if wanted nginx_3b; then run_workload nginx_3b ngx_3b ngx_3b_cpu; fi
fi

echo
echo "== medians of $RUNS runs, load now $(cut -d' ' -f1-3 /proc/loadavg)$([ "$LOAD" = 1 ] && echo ", LOADED ($(nproc) busy loops per run)")"
echo "   (ratio = user/kernel: rates > 1 and CPU per unit < 1 mean the library is better; runs = successful/attempted)"
printf '%-32s | %20s | %20s | %6s\n' workload "kernel median runs" "user-space med. runs" ratio
for line in "${SUMMARY[@]}"; do echo "$line"; done
st=0
if [ "${#SKIPS[@]}" -gt 0 ]; then
  echo "skipped (program missing): ${SKIPS[*]}${SKIP_FAILED[*]:+; not allowed: ${SKIP_FAILED[*]}}"
  [ "${#SKIP_FAILED[@]}" = 0 ] || st=1
fi
if [ "$NFAILED" -gt 0 ]; then
  echo "FAILED: $NFAILED run(s): ${FAILED_RUNS[*]} (medians are of the successful runs only; logs in $LOGS)"
  st=1
fi
exit "$st"

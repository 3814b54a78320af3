#!/usr/bin/env bash
# bench/engine.sh - the engine backend (issue 17) against the kernel's own
# TCP, in the same run, alternating (kernel, library, kernel, ...):
#
#   library: in a namespace, a TAP device ut0 whose other side is the
#            kernel (10.77.0.1/24); the client under
#            bin/usockrun --netif tap:ut0 --addr 10.77.0.2/24 (the engine),
#            the server on the kernel at 10.77.0.1;
#   kernel:  two namespaces joined by a veth pair (10.79.0.1 - 10.79.0.2),
#            client and server both on the kernel: its TCP on both ends of
#            a comparable one-hop virtual link.
#
# Workloads (ONLY picks some):
#   iperf3_tcp    iperf3 -c (client sends) for DUR s: receiver Gbit/s, CPU s
#                 per GB received
#   iperf3_tcp_r  the same with -R (the client receives)
#   pingpong      netbench 64 B TCP ping-pong, two programs (bench-kernel -P
#                 server -a ADDR / -P client -a ADDR): round trip in us and
#                 CPU us per round trip (client + server, getrusage of each
#                 whole process: the engine's thread is in the client's)
# CPU for iperf3: the server's process tree (/proc/PID/stat) across the
# client's run plus the client's own (reaped children), as bench/preload.sh;
# the kernel's softirq work is charged to whichever process it interrupts.
# Every library-side run must show the engine backend in USOCK_STATS (and a
# kernel-side run no USOCK_STATS at all), else the run fails.
#
#   bench/engine.sh                    # RUNS=5 DUR=3 PP_DUR=1.5
#   RUNS=2 DUR=1 PP_DUR=1 bench/engine.sh
#   ONLY=pingpong bench/engine.sh
#   LOAD=1 bench/engine.sh             # one busy loop per core during every run
#   LOAD=1 LOAD_SETSID=1 bench/engine.sh
#   LIB=/path/libuserspacesock.so ENGINE_BACKEND=engine bench/engine.sh
#   ENGINE_CONTROL=1 bench/engine.sh   # the harness's positive control: the
#                                      # "engine" side's client on the kernel
#                                      # in a namespace across a veth from
#                                      # 10.77.0.1, no library (both sides
#                                      # then measure the same path)
# Needs root (namespaces, TAP): without it, or without namespaces or
# /dev/net/tun, a SKIP (root, netns, tun) that fails the script unless
# ALLOW_SKIP names it (tests/README.md). Logs: bench/build/engine/.
# Exit status: 0 if every run of both sides succeeded; 1 if any failed (or
# a skip was not allowed); 2 on a setup error.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
RUNS=${RUNS:-5}
DUR=${DUR:-3}
PP_DUR=${PP_DUR:-1.5}
LIB=${LIB:-$ROOT/target/release/libuserspacesock.so}
USOCKRUN=$ROOT/bin/usockrun
ENGINE_BACKEND=${ENGINE_BACKEND:-engine}
ENGINE_CONTROL=${ENGINE_CONTROL:-0}
ONLY=${ONLY:-}
LOAD=${LOAD:-0}
LOAD_SETSID=${LOAD_SETSID:-0}
ALLOW_SKIP=${ALLOW_SKIP:-}
LOGS=$HERE/build/engine
CLK_TCK=$(getconf CLK_TCK)
CC=${CC:-cc}
WORKLOADS=(iperf3_tcp iperf3_tcp_r pingpong)
declare -A PORT=([iperf3_tcp]=25201 [iperf3_tcp_r]=25202 [pingpong]=25001)
# the server's address on each side
declare -A SADDR=([kernel]=10.79.0.1 [user]=10.77.0.1)

declare -A LABEL UNIT FMT BETTER GOAL
metric() { LABEL[$1]=$2; UNIT[$1]=$3; FMT[$1]=$4; BETTER[$1]=$5; GOAL[$1]=${6:-}; }
metric tcp_gbps "iperf3 TCP, client sends" Gbit/s %.2f higher ">= 1"
metric tcp_cpu " CPU" s/GB %.3f lower
metric tcpr_gbps "iperf3 TCP -R, client receives" Gbit/s %.2f higher ">= 1"
metric tcpr_cpu " CPU" s/GB %.3f lower
metric pp_rtt "TCP 64 B ping-pong round trip" us %.2f lower "<= 1.5"
metric pp_cpu " CPU" us/rt %.2f lower
declare -A METRICS=([iperf3_tcp]="tcp_gbps tcp_cpu" [iperf3_tcp_r]="tcpr_gbps tcpr_cpu" [pingpong]="pp_rtt pp_cpu")

NICE=()
if [ "$(id -u)" = 0 ] && [ "$LOAD" != 1 ]; then NICE=(nice -n -5); fi

die() { echo "engine.sh: $*" >&2; exit 2; }
SRV_PID="" CLI_PID="" CUR=/dev/null work=""
declare -A NS=()

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

# --- the loaded-machine mode (as bench/run.sh and bench/preload.sh) -----------
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

# --- CPU accounting (as bench/preload.sh; no command substitution here) ---------
tree_ticks() {
  local root=$1 f line pid rest n
  local -A par=() tick=() in=()
  TT=0
  [ -n "$root" ] || return 0
  for f in /proc/[0-9]*/stat; do
    read -r line 2>/dev/null <"$f" || continue
    pid=${line%% *}; rest=${line##*) }
    read -r -a F <<<"$rest"
    par[$pid]=${F[1]}; tick[$pid]=$((F[11] + F[12] + F[13] + F[14]))
  done
  [ -n "${tick[$root]:-}" ] || return 0
  in[$root]=1
  n=1
  while [ "$n" -gt 0 ]; do
    n=0
    for pid in "${!par[@]}"; do
      if [ -z "${in[$pid]:-}" ] && [ -n "${in[${par[$pid]}]:-}" ]; then in[$pid]=1; n=1; fi
    done
  done
  for pid in "${!in[@]}"; do TT=$((TT + tick[$pid])); done
}
child_ticks() {
  local line
  read -r line </proc/$$/stat
  read -r -a F <<<"${line##*) }"
  CT=$((F[13] + F[14]))
}

# --- namespaces ----------------------------------------------------------------
cleanup() {
  local n p
  stop_pid "$CLI_PID"
  stop_pid "$SRV_PID"
  stop_load
  for n in "${NS[@]}"; do
    for p in $(ip netns pids "$n" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
    ip netns del "$n" 2>/dev/null || true
  done
  ip link del "usk17b-$$-v" 2>/dev/null || true
  [ -z "$work" ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'echo "engine.sh: interrupted" >&2; exit 130' INT TERM

# skip NAME REASON: tests/README.md's convention; exits.
skip() {
  echo "SKIP $1: $2"
  [ -z "${USOCK_SKIP_LOG:-}" ] || echo "bench-engine: $1: $2" >>"$USOCK_SKIP_LOG"
  if [[ " ${ALLOW_SKIP//,/ } " == *" $1 "* || " ${ALLOW_SKIP//,/ } " == *" all "* ]]; then exit 0; fi
  echo "   skip not allowed (set ALLOW_SKIP=$1 to allow)"
  exit 1
}

# setup: eng (TAP ut0, kernel 10.77.0.1/24: the library side), ksrv and
# kcli (veth kv0, 10.79.0.1/24 and 10.79.0.2/24: the kernel side).
setup() {
  local n
  for n in eng ksrv kcli ctl; do
    [ "$n" != ctl ] || [ "$ENGINE_CONTROL" = 1 ] || continue
    NS[$n]=usk17b-$$-$n
    ip netns add "${NS[$n]}" || die "ip netns add ${NS[$n]} failed"
    ip -n "${NS[$n]}" link set lo up
  done
  if [ "$ENGINE_CONTROL" = 1 ]; then
    veth ut0 eng ctl 10.77.0.1/24 10.77.0.2/24
  else
    ip -n "${NS[eng]}" tuntap add dev ut0 mode tap || die "ip tuntap add failed"
    ip -n "${NS[eng]}" addr add 10.77.0.1/24 dev ut0
    ip -n "${NS[eng]}" link set ut0 up
  fi
  veth kv0 ksrv kcli 10.79.0.1/24 10.79.0.2/24
}
# veth DEV NS1 NS2 CIDR1 CIDR2: a veth pair DEV between two namespaces, up.
veth() {
  ip link add "usk17b-$$-v" type veth peer name "usk17b-$$-w" || die "ip link add veth failed"
  ip link set "usk17b-$$-v" netns "${NS[$2]}"
  ip link set "usk17b-$$-w" netns "${NS[$3]}"
  ip -n "${NS[$2]}" link set "usk17b-$$-v" name "$1"
  ip -n "${NS[$3]}" link set "usk17b-$$-w" name "$1"
  ip -n "${NS[$2]}" addr add "$4" dev "$1"
  ip -n "${NS[$3]}" addr add "$5" dev "$1"
  ip -n "${NS[$2]}" link set "$1" up
  ip -n "${NS[$3]}" link set "$1" up
}

# prefixes SIDE NET: SRV (the server's prefix) and CLI (the client's).
prefixes() {
  if [ "$1" = user ] && [ "$ENGINE_CONTROL" = 1 ]; then
    SRV=("${NICE[@]}" ip netns exec "${NS[eng]}")
    CLI=("${NICE[@]}" ip netns exec "${NS[ctl]}")
  elif [ "$1" = user ]; then
    SRV=("${NICE[@]}" ip netns exec "${NS[eng]}")
    CLI=("${NICE[@]}" ip netns exec "${NS[eng]}" "$USOCKRUN" --lib "$LIB" --net "$2"
      --netif tap:ut0 --addr 10.77.0.2/24 --gw 10.77.0.1 --mac 02:77:00:00:00:02 --)
  else
    SRV=("${NICE[@]}" ip netns exec "${NS[ksrv]}")
    CLI=("${NICE[@]}" ip netns exec "${NS[kcli]}")
  fi
}

# carried SIDE STATS ERRLOG: the engine carried the library side's sockets;
# the kernel side loaded no library.
carried() {
  local n
  if [ "$1" = kernel ] || [ "$ENGINE_CONTROL" = 1 ]; then
    [ ! -e "$2" ] && return 0
    echo "engine.sh: the kernel run loaded the library (USOCK_STATS written)" >>"$3"
    return 1
  fi
  n=$(awk -v b="$ENGINE_BACKEND" '$2 == b { sub("claims=", "", $3); n += $3 } END { print n + 0 }' "$2" 2>/dev/null || echo 0)
  [ "${n:-0}" -gt 0 ] && return 0
  echo "engine.sh: the $ENGINE_BACKEND backend carried no socket (USOCK_STATS: $(paste -sd';' "$2" 2>/dev/null))" >>"$3"
  return 1
}

# listening SIDE PORT: a kernel TCP socket listens on PORT in the server's
# namespace (/proc/net is the reader's namespace's).
listening() {
  local n=${NS[ksrv]}
  [ "$1" = user ] && n=${NS[eng]}
  # shellcheck disable=SC2016  # awk's own variables
  ip netns exec "$n" awk -v p="$(printf '%04X' "$2")" \
    'FNR > 1 { split($2, a, ":"); if (a[2] == p && $4 == "0A") f = 1 } END { exit !f }' /proc/net/tcp
}

# start_server SIDE PORT LOG READY CMD...: the server in the background,
# ready when it listens (READY=listen) or prints a line matching READY.
start_server() {
  local side=$1 port=$2 log=$3 ready=$4 _; shift 4
  timeout -k 5 $((DUR * 4 + 300)) "${SRV[@]}" "$@" >"$log" 2>&1 &
  SRV_PID=$!
  for _ in $(seq 100); do
    if [ "$ready" = listen ]; then listening "$side" "$port" && return 0
    else grep -qE "$ready" "$log" 2>/dev/null && return 0; fi
    kill -0 "$SRV_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "engine.sh: the server did not get ready (port $port)" >>"$log"
  stop_pid "$SRV_PID"; SRV_PID=""
  return 1
}
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

# client LIMIT OUT ERR CMD...: the client (CLI prefix), CPU_S and CPU_NOTE
# as in bench/preload.sh.
client() {
  local limit=$1 out=$2 err=$3 rc=0 s0 s1 c0 c1; shift 3
  tree_ticks "$SRV_PID"; s0=$TT; child_ticks; c0=$CT
  timeout -k 5 "$limit" "${CLI[@]}" "$@" >"$out" 2>"$err" &
  CLI_PID=$!
  wait "$CLI_PID" || rc=$?
  CLI_PID=""
  child_ticks; c1=$CT; tree_ticks "$SRV_PID"; s1=$TT
  CPU_S=$(LC_ALL=C awk -v t=$((s1 - s0 + c1 - c0)) -v h="$CLK_TCK" 'BEGIN { printf "%.3f", t / h }')
  CPU_NOTE=$(LC_ALL=C awk -v s=$((s1 - s0)) -v c=$((c1 - c0)) -v h="$CLK_TCK" \
    'BEGIN { printf "CPU server %.2f s + client %.2f s", s / h, c / h }')
  return "$rc"
}

# --- workloads: WORKLOAD SIDE PORT LOG; "metric value" lines to $CUR ---------
iperf3_run() {
  local rev=$1 key=$2 side=$3 port=$4 log=$5 rc=0
  start_server "$side" "$port" "$log.server" listen iperf3 -s -p "$port" -B "${SADDR[$side]}" || return 1
  client $((DUR + 20)) "$log.json" "$log.err" iperf3 -c "${SADDR[$side]}" -p "$port" -t "$DUR" -J ${rev:+"$rev"} || rc=$?
  stop_server "$log.err" || [ "$rc" != 0 ] || rc=1
  [ "$rc" = 0 ] || return "$rc"
  echo "note $CPU_NOTE" >>"$CUR"
  python3 - "$log.json" "$key" "$CPU_S" >>"$CUR" 2>>"$log.err" <<'PY' || return 1
import json, sys
d = json.load(open(sys.argv[1]))
r = d.get("end", {}).get("sum_received") or {}
if not r.get("bytes"):
    sys.exit("iperf3: no receiver figures: " + d.get("error", "?"))
if d.get("error"):
    print("note", "iperf3 said: " + d["error"])
print(sys.argv[2] + "_gbps", r["bits_per_second"] / 1e9)
print(sys.argv[2] + "_cpu", float(sys.argv[3]) / (r["bytes"] / 1e9))
PY
}
wl_iperf3_tcp() { iperf3_run "" tcp "$@"; }
wl_iperf3_tcp_r() { iperf3_run -R tcpr "$@"; }

wl_pingpong() {
  local side=$1 port=$2 log=$3 rc=0
  start_server "$side" "$port" "$log.server" '^# ready' \
    "$OUT/bench-kernel" -P server -p "$port" -t pingpong -a "${SADDR[$side]}" || return 1
  client 120 "$log.out" "$log.err" \
    "$OUT/bench-kernel" -P client -p "$port" -t pingpong -a "${SADDR[$side]}" -d "$PP_DUR" || rc=$?
  # the server serves one client and exits by itself, status 0
  local st=0
  if [ "$rc" = 0 ]; then
    for _ in $(seq 50); do kill -0 "$SRV_PID" 2>/dev/null || break; sleep 0.1; done
    wait "$SRV_PID" 2>/dev/null || st=$?
    SRV_PID=""
    [ "$st" = 0 ] || { echo "the netbench server exited with status $st" >>"$log.err"; rc=1; }
  fi
  stop_server "$log.err" || true
  [ "$rc" = 0 ] || return "$rc"
  awk '$1 == "pingpong_rtt_us" { print "pp_rtt", $2 } $1 == "pingpong_cpu_us" { print "pp_cpu", $2 }' \
    "$log.out" >>"$CUR"
  grep -q '^pp_rtt ' "$CUR" || { echo "no pingpong_rtt_us in netbench's output" >>"$log.err"; return 1; }
}

# --- driver (as bench/preload.sh) ------------------------------------------------
fmt() { LC_ALL=C awk -v f="${FMT[$1]}" -v v="$2" 'BEGIN { printf f "\n", v }'; }
median() {
  grep -E '^[0-9.eE+-]+$' "$1" 2>/dev/null | sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) exit
    if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }' || true
}
side_median() {
  local f=$work/res.$1.$2 v
  v=$(median "$f")
  if [ -n "$v" ]; then fmt "$1" "$v"
  elif grep -qvx timeout "$f"; then echo FAIL
  else echo timeout
  fi
}
n_ok() {
  local f=$work/res.$1.$2
  echo "$(grep -cE '^[0-9.eE+-]+$' "$f" || true)/$(grep -c . "$f" || true)"
}

NFAILED=0
FAILED_RUNS=()
SUMMARY=()

run_workload() {
  local name=$1 i side rc line m v n bad log net
  local -a metrics
  read -r -a metrics <<<"${METRICS[$name]}"
  echo "== $name (port ${PORT[$name]}; kernel: veth ${SADDR[kernel]}, library: engine over TAP to ${SADDR[user]})"
  for m in "${metrics[@]}"; do : >"$work/res.$m.kernel"; : >"$work/res.$m.user"; done
  for ((i = 1; i <= RUNS; i++)); do
    for side in kernel user; do
      net=$work/net.$name.$i
      CUR=$work/cur; : >"$CUR"
      log=$LOGS/$name.$side.$i
      prefixes "$side" "$net"
      start_load
      rm -f "$log.stats" "$log.carried.err"
      export USOCK_STATS=$log.stats
      rc=0; "wl_$name" "$side" "${PORT[$name]}" "$log" || rc=$?
      unset USOCK_STATS
      stop_load
      [ "$rc" != 0 ] || carried "$side" "$log.stats" "$log.carried.err" || rc=1
      line=$(printf '   run %d/%d %-6s' "$i" "$RUNS" "$side")
      bad=$rc
      for m in "${metrics[@]}"; do
        v=$(awk -v m="$m" '$1 == m { print $2; exit }' "$CUR")
        if [ "$rc" = 0 ] && [ -n "$v" ]; then
          v=$(fmt "$m" "$v"); line+="  $v ${UNIT[$m]}"
        elif [ "$rc" = 124 ]; then v=timeout; line+="  timeout"
        else v=FAIL; line+="  FAIL"; bad=1
        fi
        echo "$v" >>"$work/res.$m.$side"
      done
      if [ "$bad" != 0 ]; then NFAILED=$((NFAILED + 1)); FAILED_RUNS+=("$name/$side/run$i"); fi
      n=$(sed -n 's/^note //p' "$CUR" | paste -sd ';' -)
      echo "$line${n:+  ($n)}"
      if [ "$rc" != 0 ]; then
        { cat "$log".*err; grep -iE 'error|fail|libuserspacesock|engine.sh:' "$log.server"; } 2>/dev/null |
          grep -v '^$' | sort -u | head -6 | sed 's/^/      | /' || true
      fi
      rm -rf "$net"
    done
  done
  local ks us km um ratio verdict
  for m in "${metrics[@]}"; do
    ks=$(paste -sd ' ' "$work/res.$m.kernel"); us=$(paste -sd ' ' "$work/res.$m.user")
    km=$(side_median "$m" kernel); um=$(side_median "$m" user)
    ratio=- verdict=""
    if [[ $km =~ ^[0-9] ]] && [[ $um =~ ^[0-9] ]]; then
      ratio=$(LC_ALL=C awk -v u="$um" -v k="$km" 'BEGIN { if (k > 0) printf "%.3f", u / k; else print "-" }')
      if [ -n "${GOAL[$m]}" ] && [ "$ratio" != - ]; then
        verdict=$(LC_ALL=C awk -v r="$ratio" -v g="${GOAL[$m]#* }" -v op="${GOAL[$m]%% *}" \
          'BEGIN { ok = (op == ">=") ? (r >= g) : (r <= g); print ok ? "met" : "NOT met" }')
        verdict="goal ${GOAL[$m]} (#17) $verdict"
      fi
    fi
    printf '   %-32s kernel: %s\n   %-32s user:   %s\n' "${LABEL[$m]}" "$ks" "" "$us"
    printf '   %-32s median kernel %s (%s runs), engine %s (%s runs) %s, ratio engine/kernel %s%s %s\n' \
      "" "$km" "$(n_ok "$m" kernel)" "$um" "$(n_ok "$m" user)" "${UNIT[$m]}" "$ratio" \
      "$([ "${BETTER[$m]}" = lower ] && echo ' (lower is better)')" "$verdict"
    SUMMARY+=("$(printf '%-40s | %12s %5s | %12s %5s | %6s %s' "${LABEL[$m]} (${UNIT[$m]})" \
      "$km" "$(n_ok "$m" kernel)" "$um" "$(n_ok "$m" user)" "$ratio" "$verdict")")
  done
}
wanted() { [ -z "$ONLY" ] || [[ " $ONLY " == *" $1 "* ]]; }

# --- main ------------------------------------------------------------------------
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer (got '$RUNS')"
[[ $DUR =~ ^[1-9][0-9]*$ ]] || die "DUR must be a positive whole number of seconds (got '$DUR')"
[[ $PP_DUR =~ ^[0-9]*\.?[0-9]+$ ]] || die "PP_DUR must be a number of seconds (got '$PP_DUR')"
for w in $ONLY; do [ -n "${PORT[$w]:-}" ] || die "ONLY: unknown workload '$w' (known: ${WORKLOADS[*]})"; done
[ -f "$LIB" ] || die "$LIB not found: build the library first (make lib)"
[ -x "$USOCKRUN" ] || die "$USOCKRUN not found"
for t in timeout awk getconf python3 "$CC"; do command -v "$t" >/dev/null || die "$t not installed"; done
[ "$(id -u)" = 0 ] || skip root "not root: the benchmark makes network namespaces and a TAP device"
command -v ip >/dev/null || skip ip "ip not found (package iproute2)"
[ -c /dev/net/tun ] || skip tun "/dev/net/tun is missing (modprobe tun)"
ip netns add "usk17b-$$-probe" 2>/dev/null || skip netns "ip netns add failed: no network namespaces here"
ip netns del "usk17b-$$-probe"
if wanted iperf3_tcp || wanted iperf3_tcp_r; then
  command -v iperf3 >/dev/null || skip iperf3 "not installed (the iperf3 workloads)"
fi

OUT=$HERE/build
mkdir -p "$OUT"
$CC -O2 -Wall -Wextra -Werror -pthread -o "$OUT/bench-kernel" "$HERE/netbench.c" || die "building netbench failed"
work=$(mktemp -d "${TMPDIR:-/tmp}/usock-engine.XXXXXX")
rm -rf "$LOGS"; mkdir -p "$LOGS"
setup

autogroup=$(cat /proc/sys/kernel/sched_autogroup_enabled 2>/dev/null || echo n/a)
echo "engine.sh: $RUNS runs per side, alternating kernel/engine; iperf3 DUR=$DUR s, ping-pong PP_DUR=$PP_DUR s"
echo "   library: $LIB ($(date -r "$LIB" '+%F %T')), backend $ENGINE_BACKEND expected in USOCK_STATS"
echo "   commit:  $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')" \
  "$(git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || echo '(src/ has uncommitted changes)')"
echo "   host:    $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), kernel.sched_autogroup_enabled=$autogroup${NICE[*]:+, clients and servers under ${NICE[*]}}"
if [ "$LOAD" = 1 ]; then
  echo "   LOAD=1:  $(nproc) busy loops (sh -c 'while :; do :; done'), normal priority," \
    "$([ "$LOAD_SETSID" = 1 ] && echo "each in its own session (setsid)" || echo "plain children in this script's session")," \
    "started fresh for every run and killed after"
fi
[ "$ENGINE_CONTROL" != 1 ] || echo "   ENGINE_CONTROL=1: the engine side's client is the kernel across a veth (no library): a control of the harness, not a measurement of the engine"
echo "   paths:   kernel = kernel TCP - veth - kernel TCP (two namespaces); engine = usockrun --netif tap:ut0 (client) - TAP - kernel TCP (server)"
echo "   CPU:     iperf3: server's process tree + client's, per GB received; ping-pong: client + server getrusage per round trip"
echo "   logs:    $LOGS"

for w in "${WORKLOADS[@]}"; do
  if wanted "$w"; then run_workload "$w"; fi
done

echo
echo "== medians of $RUNS runs, load now $(cut -d' ' -f1-3 /proc/loadavg)$([ "$LOAD" = 1 ] && echo ", LOADED ($(nproc) busy loops per run)")"
echo "   (ratio = engine/kernel: rates > 1 and times or CPU per unit < 1 mean the engine is better; runs = successful/attempted)"
printf '%-40s | %18s | %18s | %6s\n' workload "kernel median runs" "engine median runs" ratio
for line in "${SUMMARY[@]}"; do echo "$line"; done
if [ "$NFAILED" -gt 0 ]; then
  echo "FAILED: $NFAILED run(s): ${FAILED_RUNS[*]} (medians are of the successful runs only; logs in $LOGS)"
  exit 1
fi

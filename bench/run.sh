#!/bin/sh
# bench/run.sh - netbench, kernel vs libuserspacesock, in every placement:
#
#   pingpong   TCP 64 B ping-pong, two threads of one program (linked)
#   udp        UDP 64 B ping-pong, two threads of one program (linked)
#   stream     TCP one-way stream, two threads (linked)
#   conn       TCP connect+accept+close, two threads (linked)
#   pingpong2  TCP 64 B ping-pong, two separate programs (library side:
#              both under bin/usockrun --net DIR: the cross-process backend)
#   udp2       UDP 64 B ping-pong, two separate programs (ditto)
#
# Kernel and library runs alternate, RUNS times each (per run, per test:
# kernel then library). Beside every rate: CPU time (user + system) of every
# process involved (all threads; in two-program runs client + server) per
# round trip, per GB or per connection. Prints every run's values, then the
# medians, the library/kernel ratios and successful runs out of attempted.
# Exit status 1 if any run failed (of either side), 2 on a setup error.
#
#   bench/run.sh                        # RUNS=5 DUR=1.5, all tests
#   RUNS=2 DUR=1 TESTS="pingpong udp2" bench/run.sh
#   LOAD=1 bench/run.sh                 # one busy loop per core during every run
#   LOAD=1 LOAD_SETSID=1 bench/run.sh   # ... started in their own session
#   NETBENCH_ARGS="-m 1024" bench/run.sh  # extra args for every netbench
#   LIBDIR=/path bench/run.sh           # default <repo>/target/release
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
LIBDIR=${LIBDIR:-$ROOT/target/release}
RUNS=${RUNS:-5}
DUR=${DUR:-1.5}
LOAD=${LOAD:-0}
LOAD_SETSID=${LOAD_SETSID:-0}
TESTS=${TESTS:-pingpong udp stream conn pingpong2 udp2}
NETBENCH_ARGS=${NETBENCH_ARGS:-}
USOCKRUN=$ROOT/bin/usockrun
CC=${CC:-cc}
CFLAGS="-O2 -Wall -Wextra -Werror -pthread"
OUT=$HERE/build
RES=$OUT/results
# two-program ports: kernel 23001 (TCP) / 23002 (UDP); the library's, on its
# own network directory, 24001 / 24002 (away from tests/ and preload.sh)
KPORT_TCP=23001 KPORT_UDP=23002 UPORT_TCP=24001 UPORT_UDP=24002

die() { echo "run.sh: $*" >&2; exit 2; }
case $RUNS in '' | *[!0-9]* | 0) die "RUNS must be a positive integer" ;; esac
for t in $TESTS; do
    case $t in pingpong | udp | stream | conn | pingpong2 | udp2) ;;
    *) die "unknown test '$t' (known: pingpong udp stream conn pingpong2 udp2)" ;;
    esac
done
case $NETBENCH_ARGS in *-t* | *-P* | *-p*) die "NETBENCH_ARGS: choose tests with TESTS, not -t/-P/-p" ;; esac

mkdir -p "$OUT"
rm -rf "$RES"
mkdir -p "$RES"
LOAD_PIDS=""
SRV_PID=""
NETDIR=""
cleanup() {
    stop_load
    if [ -n "$SRV_PID" ]; then kill "$SRV_PID" 2>/dev/null || true; wait "$SRV_PID" 2>/dev/null || true; fi
    [ -z "$NETDIR" ] || rm -rf "$NETDIR"
}
trap cleanup EXIT
trap 'echo "run.sh: interrupted" >&2; exit 130' INT TERM

# --- the loaded-machine mode --------------------------------------------------
# start_load: one busy loop per core at normal priority, fresh for each run:
# plain children of this script (its session, so with autogroup its group:
# they compete with the benchmark thread for thread), or with LOAD_SETSID=1
# each in a session of its own (with autogroup: a group of its own each).
start_load() {
    [ "$LOAD" = 1 ] || return 0
    _n=$(nproc)
    while [ "$_n" -gt 0 ]; do
        if [ "$LOAD_SETSID" = 1 ]; then
            setsid sh -c 'while :; do :; done' &
        else
            sh -c 'while :; do :; done' &
        fi
        LOAD_PIDS="$LOAD_PIDS $!"
        _n=$((_n - 1))
    done
}
stop_load() {
    [ -n "$LOAD_PIDS" ] || return 0
    # shellcheck disable=SC2086
    kill $LOAD_PIDS 2>/dev/null || true
    # shellcheck disable=SC2086
    wait $LOAD_PIDS 2>/dev/null || true
    LOAD_PIDS=""
}

# --- building -----------------------------------------------------------------
echo "== building"
$CC $CFLAGS -o "$OUT/bench-kernel" "$HERE/netbench.c"
LIB=$LIBDIR/libuserspacesock.so
[ -f "$LIB" ] || die "$LIB not found: build the library first (make lib)"
nm -D --defined-only "$LIB" 2>/dev/null | awk '$3 == "socket" { f = 1 } END { exit !f }' ||
    die "$LIB does not export 'socket': a usock build would silently use the kernel's sockets"
# --no-as-needed: keep the library even if the linker thinks it unused
$CC $CFLAGS -o "$OUT/bench-usock" "$HERE/netbench.c" \
    -L"$LIBDIR" -Wl,--no-as-needed -luserspacesock -Wl,-rpath,"$LIBDIR" ||
    die "building bench-usock against $LIBDIR failed"
ldd "$OUT/bench-usock" | grep -q libuserspacesock || die "bench-usock does not load libuserspacesock (ldd)"
[ -x "$USOCKRUN" ] || die "$USOCKRUN not found"

autogroup=$(cat /proc/sys/kernel/sched_autogroup_enabled 2>/dev/null || echo n/a)
echo "   library: $LIB ($(date -r "$LIB" '+%F %T'))"
echo "   commit:  $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "   host:    $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), kernel.sched_autogroup_enabled=$autogroup"
if [ "$LOAD" = 1 ]; then
    if [ "$LOAD_SETSID" = 1 ]; then where="each in its own session (setsid)"
    else where="plain children in the benchmark's session"; fi
    echo "   LOAD=1:  $(nproc) busy loops (sh -c 'while :; do :; done'), normal priority, $where, started fresh for every run and killed after"
else
    echo "   LOAD=0:  no added load (LOAD=1: one busy loop per core during every run)"
fi
echo "   tests:   $TESTS; $RUNS runs per side, alternating kernel/library; DUR=$DUR s per test"
echo "   CPU:     user+system of every process involved (all threads; two programs: client + server) per unit"

# --- running --------------------------------------------------------------------
# carried SIDE BACKEND STATS LOG: USOCK_STATS (STATS: "<pid> <backend>
# claims=<n>" per process at exit) must show BACKEND carrying sockets on the
# library side, and must not exist on the kernel side (no library loaded):
# otherwise the run measured something other than what it reports.
carried() {
    if [ "$1" = kernel ]; then
        [ ! -e "$3" ] && return 0
        echo "run.sh: the kernel run loaded the library (USOCK_STATS written)" >>"$4"
        return 1
    fi
    _n=$(awk -v b="$2" '$2 == b { sub("claims=", "", $3); n += $3 } END { print n + 0 }' "$3" 2>/dev/null || echo 0)
    [ "${_n:-0}" -gt 0 ] && return 0
    echo "run.sh: the library's $2 backend carried no socket (USOCK_STATS: $(cat "$3" 2>/dev/null | tr '\n' ';'))" >>"$4"
    return 1
}

# run_threads SIDE TEST LOG: one program, client and server threads.
run_threads() {
    rm -f "$3.stats"
    # shellcheck disable=SC2086
    USOCK_STATS=$3.stats timeout 120 "$OUT/bench-$1" -t "$2" -d "$DUR" $NETBENCH_ARGS >"$3" 2>"$3.err" || return $?
    carried "$1" loopback "$3.stats" "$3.err"
}

# run_programs SIDE TEST(pingpong|udp) LOG: server and client as two
# programs; the library side both under bin/usockrun on a fresh network.
run_programs() {
    _side=$1 _t=$2 _log=$3 _rc=0
    if [ "$_t" = udp ]; then _port=$KPORT_UDP; [ "$_side" = usock ] && _port=$UPORT_UDP
    else _port=$KPORT_TCP; [ "$_side" = usock ] && _port=$UPORT_TCP; fi
    set --
    rm -f "$_log.stats"
    if [ "$_side" = usock ]; then
        NETDIR=$(mktemp -d "${TMPDIR:-/tmp}/usock-bench-net.XXXXXX")
        set -- "$USOCKRUN" --lib "$LIB" --net "$NETDIR" --
    fi
    # shellcheck disable=SC2086
    USOCK_STATS=$_log.stats timeout 120 "$@" "$OUT/bench-kernel" -P server -p "$_port" -t "$_t" $NETBENCH_ARGS \
        >"$_log.srv" 2>&1 &
    SRV_PID=$!
    _i=0
    until grep -q '^# ready' "$_log.srv" 2>/dev/null; do
        if ! kill -0 "$SRV_PID" 2>/dev/null || [ "$_i" -ge 200 ]; then
            echo "run.sh: the server did not get ready (port $_port)" >>"$_log.err"
            _rc=1
            break
        fi
        sleep 0.05
        _i=$((_i + 1))
    done
    if [ "$_rc" = 0 ]; then
        # shellcheck disable=SC2086
        USOCK_STATS=$_log.stats timeout 120 "$@" "$OUT/bench-kernel" -P client -p "$_port" -t "$_t" -d "$DUR" \
            $NETBENCH_ARGS >"$_log" 2>>"$_log.err" || _rc=$?
    fi
    [ "$_rc" = 0 ] || kill "$SRV_PID" 2>/dev/null || true
    _src=0
    wait "$SRV_PID" || _src=$?
    SRV_PID=""
    if [ "$_src" != 0 ]; then
        echo "run.sh: the server exited with status $_src" >>"$_log.err"
        grep -v '^#' "$_log.srv" >>"$_log.err" || true
        [ "$_rc" != 0 ] || _rc=1
    fi
    [ -z "$NETDIR" ] || rm -rf "$NETDIR"
    NETDIR=""
    [ "$_rc" = 0 ] || return "$_rc"
    # The shared-memory backend carries the TCP sockets (SHARED.md) unless
    # USOCK_SHM=0; UDP stays with xproc.
    _xb=xproc
    [ "${USOCK_SHM:-}" != 0 ] && [ "$_t" = pingpong ] && _xb=shm
    carried "$_side" "$_xb" "$_log.stats" "$_log.err"
}

echo "== running (every run's values; CPU per unit covers all processes involved)"
nfail=0
i=1
while [ "$i" -le "$RUNS" ]; do
    for t in $TESTS; do
        for side in kernel usock; do
            log=$RES/$t.$side.$i
            : >"$log.err"
            start_load
            rc=0
            case $t in
            pingpong2) run_programs "$side" pingpong "$log" || rc=$? ;;
            udp2) run_programs "$side" udp "$log" || rc=$? ;;
            *) run_threads "$side" "$t" "$log" || rc=$? ;;
            esac
            stop_load
            if [ "$rc" = 0 ]; then
                status=ok
                touch "$log.ok"
            else
                status="FAILED rc=$rc"
                nfail=$((nfail + 1))
            fi
            printf '   run %d/%d %-9s %-6s %s  %s\n' "$i" "$RUNS" "$t" "$side" \
                "$(grep -v '^#' "$log" 2>/dev/null | tr '\n' ' ')" "$status"
            if [ "$status" != ok ]; then
                sed 's/^/      stderr: /' "$log.err" | head -5
            fi
        done
    done
    i=$((i + 1))
done

# median TEST SIDE METRIC: median of the values of METRIC in successful runs
median() {
    for f in "$RES/$1.$2".[0-9]*.ok; do
        [ -f "$f" ] && cat "${f%.ok}"
    done | awk -v m="$3" '$1 == m { print $2 }' |
        sort -g | awk '{ v[NR] = $1 } END {
            if (NR == 0) exit
            if (NR % 2) printf "%g\n", v[(NR + 1) / 2]
            else printf "%g\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
nok() { ls "$RES/$1.$2".[0-9]*.ok 2>/dev/null | wc -l | tr -d ' '; }

echo
echo "== medians of $RUNS alternating runs (ratio = library/kernel; ok = successful/attempted runs)"
[ "$LOAD" = 1 ] && echo "   LOADED: $(nproc) busy loops per run ($([ "$LOAD_SETSID" = 1 ] && echo setsid || echo same session)), autogroup=$autogroup"
printf '   %-44s %11s %11s %8s  %-9s  %s\n' "" kernel library ratio "ok k, l" "goal"
# rows: TEST METRIC LABEL GOAL(op value issue) ; a test's label line first
row() {
    _t=$1 _m=$2 _label=$3 _op=${4:-} _g=${5:-} _from=${6:-}
    _k=$(median "$_t" kernel "$_m") _u=$(median "$_t" usock "$_m")
    _ratio=- _verdict=""
    if [ -n "$_k" ] && [ -n "$_u" ]; then
        _ratio=$(awk -v u="$_u" -v k="$_k" 'BEGIN { if (k > 0) printf "%.3f", u / k; else print "-" }')
        if [ -n "$_op" ] && [ "$_ratio" != - ]; then
            _verdict=$(awk -v r="$_ratio" -v g="$_g" -v op="$_op" 'BEGIN {
                ok = (op == ">=") ? (r >= g) : (r <= g); print ok ? "met" : "NOT met" }')
        fi
    fi
    _goal=""
    [ -z "$_op" ] || _goal="$_op $_g ($_from) $_verdict"
    printf '   %-44s %11s %11s %8s  %-9s  %s\n' "$_label" "${_k:-FAIL}" "${_u:-FAIL}" "$_ratio" \
        "$(nok "$_t" kernel)/$RUNS, $(nok "$_t" usock)/$RUNS" "$_goal"
}
if [ "$LOAD" = 1 ]; then rtt_goal="<= 1 #11,loaded"; else rtt_goal=""; fi
for t in $TESTS; do
    case $t in
    pingpong)
        echo "   TCP 64 B ping-pong, two threads (linked)"
        if [ "$LOAD" = 1 ]; then row pingpong pingpong_rtt_us "  round trip, us" "<=" 1 "#11,loaded"
        else row pingpong pingpong_rtt_us "  round trip, us" "<=" 0.33 "#3"; fi
        row pingpong pingpong_cpu_us "  CPU us per round trip (process)" "<=" 1 "#11" ;;
    udp)
        echo "   UDP 64 B ping-pong, two threads (linked)"
        # shellcheck disable=SC2086
        row udp udp_rtt_us "  round trip, us" $rtt_goal
        row udp udp_cpu_us "  CPU us per round trip (process)" "<=" 1 "#11" ;;
    stream)
        echo "   TCP stream, 64 KiB writes, two threads (linked)"
        row stream stream_MBps "  MB/s" ">=" 3 "#3"
        row stream stream_cpu_s_per_GB "  CPU s per GB (process)" "<=" 1 "#11" ;;
    conn)
        echo "   TCP connect+accept+close, two threads (linked)"
        row conn conn_per_s "  connections/s" ">=" 5 "#3"
        row conn conn_cpu_us "  CPU us per connection (process)" ;;
    pingpong2)
        echo "   TCP 64 B ping-pong, two programs (library: preload; shm, or xproc with USOCK_SHM=0)"
        # shellcheck disable=SC2086
        row pingpong2 pingpong_rtt_us "  round trip, us" $rtt_goal
        row pingpong2 pingpong_cpu_us "  CPU us per round trip (client+server)" "<=" 1 "#11" ;;
    udp2)
        echo "   UDP 64 B ping-pong, two programs (library: preload, xproc)"
        # shellcheck disable=SC2086
        row udp2 udp_rtt_us "  round trip, us" $rtt_goal
        row udp2 udp_cpu_us "  CPU us per round trip (client+server)" "<=" 1 "#11" ;;
    esac
done
if [ "$nfail" -ne 0 ]; then
    echo "FAILED: $nfail of the runs failed (medians use the successful runs only; logs in $RES)"
    exit 1
fi

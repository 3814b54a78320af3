#!/usr/bin/env bash
# bench/conns.sh - ten thousand concurrent connections, kernel vs library.
#
# Several processes on each side, the same for the kernel and the library:
# under the library a TCP connection on a network (the shm backend) holds
# three kernel fds in each process that holds it (its number, its anchor,
# its segment's memfd), the kernel's one, and the hard `ulimit -n` here is
# 20,000 (raising it needs CAP_SYS_RESOURCE), so 10,000 connections do not
# fit one process; split over WORKERS server processes and PROCS client
# processes (2 each by default) they do, and the kernel runs split the
# same way so that the comparison stays like for like.
#
# 1. conns_server (an epoll echo server, long-lived: a master and WORKERS
#    pre-forked workers, each with its own SO_REUSEPORT listener on the
#    port and its own epoll loop; connections spread by hash) and
#    conns_client (PROCS client processes, CONNS/PROCS connections each,
#    stepped through each phase together) over 127.0.0.1 TCP: the kernel's,
#    or both programs under bin/usockrun --net DIR (the library's shm
#    backend). Per run the server serves ROUNDS clients one after the other;
#    each client opens CONNS connections, measures memory idle, sends REQS
#    requests of SIZE bytes on every connection at once (every byte of every
#    echo checked), measures memory again, closes everything and checks that
#    every server process's fd count, and each client process's own, is
#    back where it was (conns_client.c). Across the rounds no server
#    process's Pss after close may keep growing (leak check, per process).
# 2. nginx (a master and WORKERS workers, `listen ... reuseport`,
#    worker_connections 16384) under PROCS wrk processes started together,
#    -c NGINX_CONNS/PROCS each: requests/s summed, non-2xx answers counted;
#    all under the launcher for the library.
# Kernel and library alternate, RUNS times each. The soft `ulimit -n` is
# raised to the hard limit here; the programs raise their own as needed.
#
#   bench/conns.sh                    # CONNS=10000 RUNS=5 ROUNDS=3 REQS=20 SIZE=128
#   RUNS=2 CONNS=2000 DUR=2 bench/conns.sh
#   NGINX=0 bench/conns.sh            # the echo part only
#   WORKERS=4 PROCS=4 bench/conns.sh  # server workers / client (and wrk) processes
#   MODE=stress bench/conns.sh        # correctness only (make stress): CONNS=10000,
#                                     # ROUNDS=2, RUNS=1, no nginx, no figures
#
# Memory per connection, both sides alike: the change from before the
# connections to idle (or after traffic) of every server and client
# process's Pss (/proc/PID/smaps_rollup, which counts shared memory, memfd
# and /dev/shm mappings proportionally), plus the kernel's Slab
# (/proc/meminfo) and TCP socket pages (/proc/net/sockstat "mem") and
# /dev/shm usage, divided by CONNS. Slab and sockstat are machine-wide:
# other work on the machine shows up in them (the medians of alternating
# runs dampen it).
#
# Exit status: 0 if every run of both sides succeeded (every byte right, no
# fd left, no leak, every wrk request answered 2xx); 1 if any failed; 2 on a
# setup error.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
MODE=${MODE:-bench}
if [ "$MODE" = stress ]; then
  CONNS=${CONNS:-10000} ROUNDS=${ROUNDS:-2} RUNS=${RUNS:-1} REQS=${REQS:-10} NGINX=${NGINX:-0}
else
  [ "$MODE" = bench ] || { echo "conns.sh: MODE is bench or stress" >&2; exit 2; }
fi
CONNS=${CONNS:-10000}
RUNS=${RUNS:-5}
ROUNDS=${ROUNDS:-3}
REQS=${REQS:-20}
SIZE=${SIZE:-128}
NGINX=${NGINX:-1}
WORKERS=${WORKERS:-2}
PROCS=${PROCS:-2}
NGINX_CONNS=${NGINX_CONNS:-$CONNS}
DUR=${DUR:-5}
# the leak check: the server's Pss after close may grow by at most this many
# bytes per connection per round from round 2 on (round 1 warms the allocator)
LEAK_B=${LEAK_B:-128}
LIB=${LIB:-$ROOT/target/release/libuserspacesock.so}
USOCKRUN=$ROOT/bin/usockrun
OUT=$HERE/build
LOGS=$OUT/conns-$MODE
ALLOW_SKIP=${ALLOW_SKIP:-}
CC=${CC:-cc}
# ports: kernel 231xx, library 241xx (stress: 232xx, 242xx), away from tests/
# and the other benches, so that make stress and make bench-conns can overlap
if [ "$MODE" = stress ]; then
  declare -A PORT=([echo.kernel]=23200 [echo.user]=24200 [nginx.kernel]=23280 [nginx.user]=24280)
else
  declare -A PORT=([echo.kernel]=23100 [echo.user]=24100 [nginx.kernel]=23180 [nginx.user]=24180)
fi

die() { echo "conns.sh: $*" >&2; exit 2; }
for v in CONNS RUNS ROUNDS REQS SIZE DUR NGINX_CONNS WORKERS PROCS; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer (got '${!v}')"
done
[ -f "$LIB" ] || die "$LIB not found: build the library first (make lib)"
[ -x "$USOCKRUN" ] || die "$USOCKRUN not found"

SRV_PID="" work=""
stop_server() {   # TERM, 10 s grace, KILL; sets SRV_RC
  SRV_RC=0
  [ -n "$SRV_PID" ] || return 0
  kill -TERM "$SRV_PID" 2>/dev/null || true
  local _
  for _ in $(seq 100); do kill -0 "$SRV_PID" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$SRV_PID" 2>/dev/null; then
    pkill -KILL -P "$SRV_PID" 2>/dev/null || true
    kill -KILL "$SRV_PID" 2>/dev/null || true
  fi
  wait "$SRV_PID" 2>/dev/null || SRV_RC=$?
  SRV_PID=""
}
cleanup() { stop_server; [ -z "$work" ] || rm -rf "$work"; }
trap cleanup EXIT
trap 'echo "conns.sh: interrupted" >&2; exit 130' INT TERM

# wrk opens its share of NGINX_CONNS sockets and does not raise its own
# limit: raise the soft limit to the hard one here for every program of both
# sides (ours raise their own anyway). Under the library a connection holds
# three kernel fds in each process on the shm backend, the default for TCP
# (its socket's number, its anchor and its segment's memfd; two on xproc,
# USOCK_SHM=0): a limit below that for a process's share (the busier of a
# server worker's and a client process's, with some room for the uneven
# spread of SO_REUSEPORT's hash) is reported.
[ "$(ulimit -Hn)" = unlimited ] || ulimit -Sn "$(ulimit -Hn)"
most=$((CONNS > NGINX_CONNS ? CONNS : NGINX_CONNS))
fewest=$((WORKERS < PROCS ? WORKERS : PROCS))
share=$(((most + fewest - 1) / fewest))
NOFILE_NOTE=""
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((3 * (share + share / 16) + 100)) ]; then
  NOFILE_NOTE="ulimit -n is $(ulimit -n) (the hard limit; raising it needs CAP_SYS_RESOURCE): below the three kernel fds per connection the library needs (shm) for $share connections in one process; more WORKERS and PROCS would fit"
fi

echo "== building"
mkdir -p "$OUT"
rm -rf "$LOGS"; mkdir -p "$LOGS"
for p in conns_server conns_client; do
  $CC -O2 -Wall -Wextra -Werror -o "$OUT/$p" "$HERE/$p.c"
done
work=$(mktemp -d "${TMPDIR:-/tmp}/usock-conns.XXXXXX")

# prefix SIDE: the command prefix of that side (PRE).
prefix() {
  if [ "$1" = user ]; then PRE=("$USOCKRUN" --lib "$LIB" --net "$work/net" --); else PRE=(); fi
}

# carried SIDE STATS ERRLOG: the library's USOCK_STATS lines ("<pid>
# <backend> claims=<n>", each program's at exit) must show the cross-process
# backend carrying sockets on the library side, and there must be none on
# the kernel side: else the run measured something other than it reports.
carried() {
  local n
  if [ "$1" = kernel ]; then
    [ ! -e "$2" ] && return 0
    echo "conns.sh: the kernel run loaded the library (USOCK_STATS written)" >>"$3"
    return 1
  fi
  # The shared-memory backend for TCP (xproc with USOCK_SHM=0), xproc for the rest.
  n=$(awk '$2 == "xproc" || $2 == "shm" { sub("claims=", "", $3); n += $3 } END { print n + 0 }' "$2" 2>/dev/null || echo 0)
  [ "${n:-0}" -gt 0 ] && return 0
  echo "conns.sh: the cross-process backend carried no socket (USOCK_STATS: $(paste -sd';' "$2" 2>/dev/null))" >>"$3"
  return 1
}

# wait_line FILE REGEX: up to 20 s for a line in FILE (the server's "ready").
wait_line() {
  local _
  for _ in $(seq 400); do
    grep -qE "$2" "$1" 2>/dev/null && return 0
    kill -0 "$SRV_PID" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

# echo_run SIDE RUN: one server, ROUNDS clients. Results in $work/res/.
echo_run() {
  local side=$1 i=$2 port=${PORT[echo.$1]} log=$LOGS/echo.$1.$2 r rc=0 spid q=""
  [ "$MODE" = stress ] && q=-q
  prefix "$side"
  rm -rf "$work/net"; mkdir -p "$work/net"
  rm -f "$log.stats"
  USOCK_STATS=$log.stats timeout -k 5 3000 "${PRE[@]}" "$OUT/conns_server" -p "$port" -c "$work/ctr" -n "$CONNS" \
    -w "$WORKERS" >"$log.server" 2>&1 &
  SRV_PID=$!
  if ! wait_line "$log.server" '^# ready'; then
    echo "the server did not get ready on port $port" >"$log.err"
    stop_server
    return 1
  fi
  # every server process: the master, then its workers
  spid=$(sed -n 's/^# ready port [0-9]* pid \([0-9]*\) workers \([0-9,]*\)$/\1,\2/p' "$log.server")
  for ((r = 1; r <= ROUNDS; r++)); do
    if ! USOCK_STATS=$log.stats timeout -k 5 600 "${PRE[@]}" "$OUT/conns_client" -p "$port" -c "$work/ctr" -S "$spid" \
      -n "$CONNS" -P "$PROCS" -r "$REQS" -s "$SIZE" $q >"$log.r$r" 2>"$log.r$r.err"; then
      rc=1
      break
    fi
  done
  stop_server
  if [ "$SRV_RC" != 0 ]; then
    echo "the server exited with status $SRV_RC" >>"$log.err"
    rc=1
  fi
  [ "$rc" != 0 ] || carried "$side" "$log.stats" "$log.err" || rc=1
  return "$rc"
}

# nginx_run SIDE RUN: nginx under PROCS wrk processes, -c NGINX_CONNS/PROCS
# each, for DUR seconds; their outputs in $log.out.K.
nginx_run() {
  local side=$1 i=$2 port=${PORT[nginx.$1]} log=$LOGS/nginx.$1.$2 rc=0 conf
  conf=$work/ngx/$side.conf
  mkdir -p "$work/ngx/html"
  head -c 128 /dev/zero | tr '\0' x >"$work/ngx/html/f128.txt"
  # the workers as this user (as root nginx would make them nobody, who can
  # reach neither the files nor, under the library, the network directory)
  local user=""
  [ "$(id -u)" != 0 ] || user="user $(id -un) $(id -gn);"
  cat >"$conf" <<CONF
$user
worker_processes $WORKERS; daemon off; master_process on; pid $conf.pid;
worker_rlimit_nofile $(ulimit -n);
error_log $log.error.log;
events { worker_connections 16384; use epoll; multi_accept on; }
http { access_log off; server { listen 127.0.0.1:$port reuseport backlog=16384; root $work/ngx/html; } }
CONF
  prefix "$side"
  rm -rf "$work/net"; mkdir -p "$work/net"
  rm -f "$log.stats"
  USOCK_STATS=$log.stats timeout -k 5 600 "${PRE[@]}" nginx -c "$conf" -p "$work/ngx" -e "$log.error.log" >"$log.server" 2>&1 &
  SRV_PID=$!
  local _ ok="" pf
  for _ in $(seq 200); do
    pf="$work/net/s$port"
    [ "${USOCK_SHM:-}" = 0 ] && pf="$work/net/t$port"
    # reuseport: WORKERS listeners (the library's shm backend: a directory
    # at the port's name with one listening anchor in it per member). With
    # USOCK_SHM=0 (xproc) the nginx part fails: xproc refuses a socket
    # inherited across fork, and nginx's workers use the master's.
    if [ "$side" = user ]; then
      if [ -d "$pf" ]; then [ "$(ss -Hxl 2>/dev/null | grep -cF "$pf/")" -ge "$WORKERS" ] && ok=1
      else [ -S "$pf" ] && [ -n "$(ss -Hxl src "$pf" 2>/dev/null)" ] && ok=1; fi
    else [ "$(ss -Hltn "sport = :$port" 2>/dev/null | wc -l)" -ge "$WORKERS" ] && ok=1; fi
    [ -z "$ok" ] || break
    kill -0 "$SRV_PID" 2>/dev/null || break
    sleep 0.05
  done
  if [ -z "$ok" ]; then
    echo "nginx did not listen on port $port" >"$log.err"; stop_server; return 1
  fi
  local k wpids=() c=$((NGINX_CONNS / PROCS))
  for ((k = 1; k <= PROCS; k++)); do
    USOCK_STATS=$log.stats timeout -k 5 $((DUR + 120)) "${PRE[@]}" wrk -t1 -c"$c" -d"${DUR}s" --timeout 10s \
      "http://127.0.0.1:$port/f128.txt" >"$log.out.$k" 2>"$log.err.$k" &
    wpids+=($!)
  done
  for k in "${wpids[@]}"; do wait "$k" || rc=$?; done
  cat "$log".err.* >"$log.err" 2>/dev/null || true
  stop_server
  [ "$SRV_RC" = 0 ] || [ "$SRV_RC" = 143 ] || { echo "nginx exited with status $SRV_RC" >>"$log.err"; rc=1; }
  [ "$rc" != 0 ] || carried "$side" "$log.stats" "$log.err" || rc=1
  return "$rc"
}

# --- driver ----------------------------------------------------------------------
mkdir -p "$work/res"
NFAILED=0 FAILED_RUNS=()
add() { echo "$3" >>"$work/res/$1.$2"; }   # add METRIC SIDE VALUE
get() { awk -v m="$2" '$1 == m { print $2; exit }' "$1" 2>/dev/null; }

autogroup=$(cat /proc/sys/kernel/sched_autogroup_enabled 2>/dev/null || echo n/a)
echo "conns.sh ($MODE): $RUNS runs per side, alternating kernel/library; $CONNS connections," \
  "$ROUNDS rounds per server, $REQS requests of $SIZE B on each;" \
  "$WORKERS server workers (SO_REUSEPORT), $PROCS client processes"
echo "   (the same split for the kernel and the library: under the library a connection holds 3 fds per process)"
echo "   library: $LIB ($(date -r "$LIB" '+%F %T')); commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "   host:    $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), autogroup=$autogroup, ulimit -n $(ulimit -n)"
echo "   logs:    $LOGS"
[ -z "$NOFILE_NOTE" ] || echo "   NOTE:    $NOFILE_NOTE"
have_nginx=0
if [ "$NGINX" = 1 ]; then
  if command -v nginx >/dev/null && command -v wrk >/dev/null; then have_nginx=1
  else
    m=$(command -v nginx >/dev/null || echo nginx; command -v wrk >/dev/null || echo wrk)
    m=$(echo $m)
    echo "SKIP ${m// /,}: not installed (the nginx part is not measured)"
    [ -z "${USOCK_SKIP_LOG:-}" ] || echo "bench-conns: $m: not installed" >>"$USOCK_SKIP_LOG"
    allowed=1
    for p in $m; do
      [[ " ${ALLOW_SKIP//,/ } " == *" $p "* || " ${ALLOW_SKIP//,/ } " == *" all "* ]] || allowed=0
    done
    if [ "$allowed" = 0 ]; then
      echo "   skip not allowed (set ALLOW_SKIP=${m// /,} to allow)"; NFAILED=$((NFAILED + 1)); FAILED_RUNS+=("skip:$m")
    fi
  fi
fi

fail_run() { NFAILED=$((NFAILED + 1)); FAILED_RUNS+=("$1"); }

for ((i = 1; i <= RUNS; i++)); do
  for side in kernel user; do
    # -- echo server: ROUNDS rounds
    rc=0; echo_run "$side" "$i" || rc=$?
    log=$LOGS/echo.$side.$i
    line=$(printf '   run %d/%d echo  %-6s' "$i" "$RUNS" "$side")
    pss=() fds=() figs=()
    for ((r = 1; r <= ROUNDS; r++)); do
      f=$log.r$r
      [ -s "$f" ] || continue
      # per server process (master first), joined with '/'
      v=$(awk '$1 ~ /^server_pss_kB_after_close\./ { printf "%s%s", n++ ? "/" : "", $2 }' "$f")
      [ -z "$v" ] || pss+=("$v")
      v=$(awk '$1 ~ /^server_fds_after_close\./ { printf "%s%s", n++ ? "/" : "", $2 }' "$f")
      [ -z "$v" ] || fds+=("$v")
      [ "$MODE" = bench ] || continue
      for m in connect_per_s req_per_s cpu_us_per_req; do
        v=$(get "$f" $m); [ -z "$v" ] || figs+=("$m $v")
      done
      if [ "$r" = 1 ]; then   # memory: the fresh server's first round
        for m in mem_idle_B_per_conn mem_traffic_B_per_conn; do
          v=$(get "$f" $m); [ -z "$v" ] || figs+=("$m $v")
        done
        line+=$(printf '  idle %s B/conn, after traffic %s B/conn' \
          "$(get "$f" mem_idle_B_per_conn)" "$(get "$f" mem_traffic_B_per_conn)")
      fi
      line+=$(printf '  r%d: %s req/s' "$r" "$(get "$f" req_per_s)")
    done
    line+="  server Pss after close ${pss[*]:-?} kB, fds ${fds[*]:-?} (per process, master first)"
    if [ "$rc" = 0 ]; then
      # figures only from runs whose every round passed its checks
      for fv in "${figs[@]}"; do add "${fv% *}" "$side" "${fv#* }"; done
      add ok.echo "$side" 1
      echo "$line  ok"
    else
      fail_run "echo/$side/run$i"
      echo "$line  FAILED"
      cat "$log".*err "$log".err 2>/dev/null | grep -v '^$' | sort -u | head -5 | sed 's/^/      | /' || true
    fi
    # the leak check: each server process's Pss after close from round 2 to
    # the last, per connection of a worker's share (CONNS/WORKERS); the
    # worst process counts
    if [ "$rc" = 0 ] && [ "${#pss[@]}" -ge 3 ]; then
      g=$(awk -v a="${pss[1]}" -v b="${pss[${#pss[@]}-1]}" -v n=$((CONNS / WORKERS)) -v k=$(( ${#pss[@]} - 2 )) \
        'BEGIN { np = split(a, x, "/"); split(b, y, "/"); w = ""
          for (i = 1; i <= np; i++) { v = (y[i] - x[i]) * 1024 / n / k; if (w == "" || v > w) w = v }
          printf "%d", int(w + (w < 0 ? -0.5 : 0.5)) }')
      add leak_B_per_conn_round "$side" "$g"
      if [ "$g" -gt "$LEAK_B" ]; then
        fail_run "leak/$side/run$i"
        echo "      | LEAK? a server process's Pss after close grew $g B per connection per round" \
          "from round 2 to $ROUNDS (limit $LEAK_B): memory a long-lived server does not get back"
      else
        add ok.leak "$side" 1
      fi
    fi
    [ "$have_nginx" = 1 ] || continue
    # -- nginx under wrk
    rc=0; nginx_run "$side" "$i" || rc=$?
    log=$LOGS/nginx.$side.$i
    # the PROCS wrk processes summed (each must have reported)
    rps=$(awk '/^Requests\/sec:/ { s += $2; n++ } END { if (n == '"$PROCS"') printf "%.2f", s }' "$log".out.* 2>/dev/null || true)
    non2xx=$(awk '/Non-2xx or 3xx responses:/ { s += $NF } END { print s + 0 }' "$log".out.* 2>/dev/null || true)
    non2xx=${non2xx:-0}
    serr=$(sed -n 's/^ *Socket errors: *//p' "$log".out.* 2>/dev/null | paste -sd';' || true)
    nreq=$(awk '/ requests in / { s += $1; n++ } END { if (n) print s }' "$log".out.* 2>/dev/null || true)
    line=$(printf '   run %d/%d nginx %-6s  %s req/s, %s requests, non-2xx %s%s' "$i" "$RUNS" "$side" \
      "${rps:-?}" "${nreq:-?}" "$non2xx" "${serr:+, socket errors: $serr}")
    if [ "$rc" = 0 ] && [ -n "$rps" ] && [ "$non2xx" = 0 ] && [ -z "$serr" ]; then
      add ngx_rps "$side" "$rps"; add ok.nginx "$side" 1
      echo "$line  ok"
    else
      fail_run "nginx/$side/run$i"
      echo "$line  FAILED"
      cat "$log.err" 2>/dev/null | head -3 | sed 's/^/      | /' || true
    fi
    [ -z "$rps" ] || add ngx_rps_all "$side" "$rps"
    add ngx_non2xx "$side" "$non2xx"
  done
done

# median METRIC SIDE
median() {
  [ -f "$work/res/$1.$2" ] || return 0
  sort -g "$work/res/$1.$2" | awk '{ v[NR] = $1 } END {
    if (NR == 0) exit
    if (NR % 2) printf "%g\n", v[(NR + 1) / 2]; else printf "%g\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
count() { if [ -f "$work/res/$1.$2" ]; then wc -l <"$work/res/$1.$2" | tr -d ' '; else echo 0; fi; }

echo
if [ "$MODE" = stress ]; then
  k=$(count ok.echo kernel) u=$(count ok.echo user)
  echo "== stress: $CONNS connections ($WORKERS server workers, $PROCS client processes) x $ROUNDS rounds," \
    "every byte checked, every process's fd count back after close:" \
    "kernel $k/$RUNS runs ok, library $u/$RUNS runs ok"
else
  echo "== medians of $RUNS alternating runs (ratio = library/kernel; runs = successful/attempted)"
  printf '   %-44s %11s %11s %8s  %-11s %s\n' "" kernel library ratio "runs k, l" goal
  row() {   # row METRIC LABEL OKKEY [GOAL]
    local k u ratio
    k=$(median "$1" kernel); u=$(median "$1" user); ratio=-
    if [ -n "$k" ] && [ -n "$u" ]; then
      ratio=$(awk -v u="$u" -v k="$k" 'BEGIN { if (k > 0) printf "%.3f", u / k; else print "-" }')
    fi
    printf '   %-44s %11s %11s %8s  %-11s %s\n' "$2" "${k:-FAIL}" "${u:-FAIL}" "$ratio" \
      "$(count "$3" kernel)/$RUNS, $(count "$3" user)/$RUNS" "${4:-}"
  }
  echo "   echo server, $CONNS connections, $WORKERS workers, $PROCS client processes ($ROUNDS rounds per run; memory from round 1)"
  row connect_per_s "  connections/s ($PROCS processes, blocking)" ok.echo
  row req_per_s "  requests/s ($REQS x $SIZE B on every conn)" ok.echo ">= 1 (#11)"
  row cpu_us_per_req "  CPU us per request (client+server)" ok.echo
  row mem_idle_B_per_conn "  memory per idle connection, bytes" ok.echo "<= 2 (#11)"
  row mem_traffic_B_per_conn "  memory per connection after traffic, bytes" ok.echo
  if [ "$ROUNDS" -ge 3 ]; then
    row leak_B_per_conn_round "  worst server process's Pss growth, B/conn/rnd" ok.leak "<= $LEAK_B B"
  else
    echo "     (no leak check: it needs ROUNDS >= 3, round 1 warms the allocator)"
  fi
  if [ "$have_nginx" = 1 ]; then
    echo "   nginx, $WORKERS workers (reuseport), worker_connections 16384; $PROCS x wrk -t1 -c$((NGINX_CONNS / PROCS)) -d${DUR}s"
    row ngx_rps "  requests/s, summed (runs all 2xx)" ok.nginx ">= 1 (#11)"
    printf '   %-44s %11s %11s\n' "  non-2xx answers per run" \
      "$(paste -sd' ' "$work/res/ngx_non2xx.kernel" 2>/dev/null)" "$(paste -sd' ' "$work/res/ngx_non2xx.user" 2>/dev/null)"
  fi
fi
if [ "$NFAILED" -gt 0 ]; then
  echo "FAILED: $NFAILED: ${FAILED_RUNS[*]} (logs in $LOGS)"
  exit 1
fi

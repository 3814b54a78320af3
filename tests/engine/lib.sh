# shellcheck shell=bash
# tests/engine/lib.sh - sourced by the engine tests (issue 17: the backend
# over a user-space TCP/IP engine on a TAP device). On top of
# tests/preload/lib.sh (scratch directory $work, the case tally ok/bad/
# check/skip/summary, need, spawn/stop/reap, wait_for) it gives them:
#  - engine_prereqs: root, network namespaces and /dev/net/tun, or a skip
#    (named root, netns, tun: a failure unless ALLOW_SKIP names it) and exit;
#  - mk_ns NAME: a network namespace of this run (usk17-<pid>-NAME, lo up),
#    its name in ns[NAME]; mk_tap, mk_veth, mk_bridge, addr_add: devices in
#    them. Every namespace of the run, its devices and the processes we
#    started in it are removed at any exit (EXIT, INT, TERM);
#  - inns NAME CMD...: CMD in that namespace, on the kernel's sockets;
#  - the library side: lib_prefix sets LIB_RUN to the command prefix of a
#    program on the engine (bin/usockrun --netif tap:DEV ... in the
#    namespace of the TAP device), or, with ENGINE_CONTROL=1 (the positive
#    control that proves the harness without the engine), to plain
#    execution in a namespace where the kernel holds the library side's
#    address on a veth; carried STATS WHAT checks that the run went through
#    the engine (USOCK_STATS) or, in the control, that no library was loaded;
#  - ns_listens NAME tcp|udp PORT: a kernel socket there listens (readiness);
#  - log_has FILE PATTERN: a line of a server's output; await_server: a
#    library server's readiness (its port is not the kernel's), or its
#    early exit; stop_int: a python server's clean exit;
#  - sha FILE: its sha256; url: an http URL; tail_of: a log's end.
# shellcheck source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/../preload/lib.sh"
suite=engine
run=$PWD/bin/usockrun
# The engine backend's name in USOCK_STATS lines ("<pid> <backend> claims=<n>").
ENGINE_BACKEND=${ENGINE_BACKEND:-engine}
ENGINE_CONTROL=${ENGINE_CONTROL:-0}
# Debian's python3 (a pyenv shim is a shell script whose helpers would each
# load the library and try to open the TAP device too).
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3 || echo python3)
declare -A ns=()
ns_order=()

# engine_prereqs: what every engine test needs; without it, the skip and
# the summary, and the script ends (status 1 unless ALLOW_SKIP allows it).
engine_prereqs() {
  local why="" name="" probe
  if [ "$(id -u)" != 0 ]; then
    name=root why="not root: network namespaces and TAP devices need root (CAP_NET_ADMIN)"
  elif ! command -v ip >/dev/null; then
    name=ip why="ip not found in PATH (package iproute2)"
  elif [ "$ENGINE_CONTROL" != 1 ] && [ ! -c /dev/net/tun ]; then
    name=tun why="/dev/net/tun is missing (modprobe tun): no TAP device can be made"
  else
    probe="usk17-$$-probe"
    if ! ip netns add "$probe" 2>"$work/netns.err"; then
      name=netns why="ip netns add failed: $(head -c 200 "$work/netns.err")"
    else
      if [ "$ENGINE_CONTROL" != 1 ] && ! ip -n "$probe" tuntap add dev probe0 mode tap 2>"$work/netns.err"; then
        name=tun why="ip tuntap add failed in a namespace: $(head -c 200 "$work/netns.err")"
      fi
      ip netns del "$probe" 2>/dev/null || true
    fi
  fi
  [ -n "$name" ] || return 0
  skip "$name" "$why; the engine tests did not run"
  summary
  exit
}

# mk_ns NAME: a fresh namespace usk17-<pid>-NAME with lo up.
mk_ns() {
  local n="usk17-$$-$1"
  ip netns add "$n" || { bad "ip netns add $n"; return 1; }
  ns[$1]=$n
  ns_order+=("$1")
  ip -n "$n" link set lo up
}
# inns NAME CMD...: CMD in namespace NAME.
inns() { local n=${ns[$1]}; shift; ip netns exec "$n" "$@"; }
# addr_add NAME DEV CIDR...: addresses on DEV in NAME; IPv6 without
# duplicate address detection (nodad), so they are usable at once.
addr_add() {
  local n=$1 dev=$2 a
  shift 2
  for a in "$@"; do
    if [[ $a == *:* ]]; then ip -n "${ns[$n]}" addr add "$a" dev "$dev" nodad
    else ip -n "${ns[$n]}" addr add "$a" dev "$dev"; fi
  done
}
# mk_tap NAME DEV [CIDR...]: a persistent TAP device DEV in namespace NAME
# (its other side is that namespace's kernel), with CIDRs on it, up.
mk_tap() {
  local n=$1 dev=$2
  shift 2
  ip -n "${ns[$n]}" tuntap add dev "$dev" mode tap || { bad "ip tuntap add dev $dev in ${ns[$n]}"; return 1; }
  ip netns exec "${ns[$n]}" sysctl -qw "net.ipv6.conf.$dev.accept_dad=0" 2>/dev/null || true
  addr_add "$n" "$dev" "$@"
  ip -n "${ns[$n]}" link set "$dev" up
}
# mk_veth NAME1 DEV1 NAME2 DEV2: a veth pair between two namespaces, both up.
mk_veth() {
  ip link add "usk17-$$-v" type veth peer name "usk17-$$-w" || { bad "ip link add veth"; return 1; }
  ip link set "usk17-$$-v" netns "${ns[$1]}"
  ip link set "usk17-$$-w" netns "${ns[$3]}"
  ip -n "${ns[$1]}" link set "usk17-$$-v" name "$2"
  ip -n "${ns[$3]}" link set "usk17-$$-w" name "$4"
  ip netns exec "${ns[$1]}" sysctl -qw "net.ipv6.conf.$2.accept_dad=0" 2>/dev/null || true
  ip netns exec "${ns[$3]}" sysctl -qw "net.ipv6.conf.$4.accept_dad=0" 2>/dev/null || true
  ip -n "${ns[$1]}" link set "$2" up
  ip -n "${ns[$3]}" link set "$4" up
}
# mk_bridge NAME BR DEV...: a bridge BR in NAME with DEVs in it, up (no
# spanning tree, no forwarding delay: it forwards at once).
mk_bridge() {
  local n=$1 br=$2 d
  shift 2
  ip -n "${ns[$n]}" link add "$br" type bridge stp_state 0 forward_delay 0 || { bad "bridge $br"; return 1; }
  for d in "$@"; do ip -n "${ns[$n]}" link set "$d" master "$br"; done
  ip -n "${ns[$n]}" link set "$br" up
}

# Removes what this run made: the processes spawned (stopped as
# tests/preload/lib.sh does), any other process of ours still in one of
# its namespaces (by pid, from ip netns pids: only our namespaces, which
# only we entered), then their devices and the namespaces themselves.
engine_cleanup() {
  local n p d
  cleanup
  for n in "${ns_order[@]}"; do
    for p in $(ip netns pids "${ns[$n]}" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
  done
  for n in "${ns_order[@]}"; do
    for d in $(ip -n "${ns[$n]}" -o link show 2>/dev/null | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }'); do
      [ "$d" = lo ] || ip -n "${ns[$n]}" link del "$d" 2>/dev/null || true
    done
    ip netns del "${ns[$n]}" 2>/dev/null || true
  done
  # a veth pair interrupted before both ends left the root namespace
  ip link del "usk17-$$-v" 2>/dev/null || true
}
trap engine_cleanup EXIT

# lib_prefix NAME DEV CIDRS GWS MAC STATS: LIB_RUN becomes the prefix of a
# library-side program: in namespace NAME under bin/usockrun on the engine
# over TAP device DEV (or DEV as --netif takes it: packet:IFNAME)
# (addresses CIDRS, gateways GWS, MAC), writing
# USOCK_STATS to STATS. With ENGINE_CONTROL=1: plain execution in namespace
# NAME, whose kernel holds those addresses (on DEV, a veth), and
# USOCK_STATS set all the same (nothing must write it).
# shellcheck disable=SC2034  # LIB_RUN is for the sourcing script
lib_prefix() {
  local n=$1 dev=$2 cidrs=$3 gws=$4 mac=$5 stats=$6
  rm -f "$stats"
  if [ "$ENGINE_CONTROL" = 1 ]; then
    LIB_RUN=(ip netns exec "${ns[$n]}" env "USOCK_STATS=$stats")
  else
    [[ $dev == *:* ]] || dev=tap:$dev
    LIB_RUN=(ip netns exec "${ns[$n]}" env "USOCK_STATS=$stats" "$run" --net "$net"
      --netif "$dev" --addr "$cidrs" ${gws:+--gw "$gws"} ${mac:+--mac "$mac"} --)
  fi
}

# carried STATS WHAT: the library-side run WHAT went through the engine
# (its processes' USOCK_STATS lines name the engine backend with claims); in
# the control, no library was loaded (no USOCK_STATS written). A case.
carried() {
  local stats=$1 what=$2 n
  if [ "$ENGINE_CONTROL" = 1 ]; then
    check "$what: on the kernel (control: no library loaded)" "USOCK_STATS: $(paste -sd';' "$stats" 2>/dev/null)" \
      [ ! -e "$stats" ]
    return
  fi
  n=$(awk -v b="$ENGINE_BACKEND" '$2 == b { sub("claims=", "", $3); n += $3 } END { print n + 0 }' "$stats" 2>/dev/null || echo 0)
  check "$what: through the $ENGINE_BACKEND backend (USOCK_STATS claims=$n)" \
    "USOCK_STATS: [$(paste -sd';' "$stats" 2>/dev/null)]" [ "${n:-0}" -gt 0 ]
}

# ns_listens NAME tcp|udp PORT: a kernel socket in namespace NAME listens on
# TCP PORT or is bound to UDP PORT (any address; /proc/net is the reader's
# namespace's).
ns_listens() { inns "$1" bash -c "$(declare -f kernel_listens); kernel_listens $2 $3"; }
# log_has FILE ERE: FILE has a line matching ERE.
log_has() { grep -qE -- "$2" "$1" 2>/dev/null; }
# sha FILE: the sha256 of FILE (empty if it is missing).
sha() { { sha256sum < "$1"; } 2>/dev/null | cut -d' ' -f1; }
# await_server WHAT NAME LOG ERE: waits (20 s at most) until the spawned
# server NAME writes a line matching ERE to LOG; fails the case WHAT at
# once, with the log's end, if the server exits first.
ready_or_gone() { log_has "$2" "$3" || ! alive "$1"; }
await_server() {
  local what=$1 name=$2 log=$3 re=$4
  wait_for 20 "$what" ready_or_gone "$name" "$log" "$re" || return 1
  log_has "$log" "$re" && return 0
  bad "$what: the server exited first: $(tail_of "$log")"
  return 1
}
# stop_int NAME: SIGINT first (python's KeyboardInterrupt: a normal exit,
# which writes USOCK_STATS), then stop's TERM if it is still there 5 s
# later. Sent to the program itself (timeout's child, found by its parent
# id), not to timeout(1), which would pass it on twice (to the child and to
# its process group): a second SIGINT during python's finalization, after
# its handler is gone, kills it (status 130) before the library's exit
# writes USOCK_STATS.
stop_int() {
  local pid=${pids[$1]:-} child _
  [ -n "$pid" ] || return 0
  child=$(ps -o pid= --ppid "$pid" 2>/dev/null | head -n 1)
  kill -INT "${child:-$pid}" 2>/dev/null || true
  for _ in $(seq 100); do alive "$1" || break; sleep 0.05; done
  stop "$1"
}
# url 4|6 HOST PORT PATH: an http URL (an IPv6 host in brackets).
url() { if [ "$1" = 6 ]; then echo "http://[$2]:$3/$4"; else echo "http://$2:$3/$4"; fi; }
# tail_of FILE...: the last lines of logs, on one line, for a FAIL's detail.
tail_of() { tail -n 4 "$@" 2>/dev/null | tr '\n' ' ' | cut -c1-600; }

if [ "$ENGINE_CONTROL" = 1 ]; then
  echo "# ENGINE_CONTROL=1: positive control, the library side is the kernel in a namespace of its own (veth), no library"
else
  echo "# the library side: $run --netif tap:... (backend $ENGINE_BACKEND expected in USOCK_STATS)"
fi

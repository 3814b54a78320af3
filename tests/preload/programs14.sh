#!/usr/bin/env bash
# tests/preload/programs14.sh - issue 14's "Done when": real programs that
# rely on AF_UNIX, run three ways:
#   kernel    plainly, on the kernel's sockets (the positive control: a
#             failure here is the machine's, not the library's);
#   launcher  under bin/usockrun with its default routes (AF_UNIX stays on
#             the kernel): the library is loaded but must not get in the way;
#   user      under bin/usockrun --route "user unix": AF_UNIX in user space,
#             the server and its clients in separate processes on one
#             user-space network. There, the kernel must carry none of the
#             program's own AF_UNIX sockets (/proc/net/unix does not list
#             its path or abstract name).
# The programs:
#   1. a D-Bus session bus (dbus-daemon --session --address=unix:path=...)
#      with dbus-send and gdbus calls: ListNames, the credentials the bus
#      read from a client's connection (GetConnectionCredentials: pid and
#      uid of a gdbus monitor, via SO_PEERCRED after the EXTERNAL
#      authentication that sends SCM_CREDENTIALS), GetConnectionUnixUser;
#   2. an X server (Xvfb) with xdpyinfo, over its filesystem socket alone
#      (-nolisten local) and over its abstract socket alone (the file
#      removed);
#   3. socat moving 8 MB between UNIX-LISTEN and UNIX-CONNECT, and between
#      ABSTRACT-LISTEN and ABSTRACT-CONNECT (checksums), and a datagram
#      between UNIX-RECV and UNIX-SENDTO.
# MODES="kernel launcher user" (default) picks the ways. A missing program
# is a skip (named dbus, xvfb, socat), a failure unless ALLOW_SKIP names it
# (tests/README.md). Exit status: 0 only if every check passed.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
MODES=${MODES:-kernel launcher user}
T=${PROG_TIMEOUT:-20}
nskip=0

skip() {
  echo "SKIP $1: $2"
  [ -n "${USOCK_SKIP_LOG:-}" ] && echo "preload programs14.sh: $1: $2" >>"$USOCK_SKIP_LOG"
  case " ${ALLOW_SKIP//,/ } " in
    *" $1 "* | *" all "*) nskip=$((nskip + 1)) ;;
    *) bad "skip $1 not allowed (set ALLOW_SKIP=$1 to allow)" ;;
  esac
}

# run MODE CMD...: a command that must finish (within $T s).
run() {
  local m=$1; shift
  case $m in
    kernel) timeout -k 2 "$T" "$@" ;;
    launcher) timeout -k 2 "$T" bin/usockrun --net "$net" -- "$@" ;;
    user) timeout -k 2 "$T" bin/usockrun --net "$net" --route "user unix" -- "$@" ;;
  esac
}

# start MODE CMD...: a server in the background; its pid is the program's
# (usockrun execs it), left in $started.
start() {
  local m=$1; shift
  case $m in
    kernel) ("$@") & ;;
    launcher) (exec bin/usockrun --net "$net" -- "$@") & ;;
    user) (exec bin/usockrun --net "$net" --route "user unix" -- "$@") & ;;
  esac
  started=$!
}

stop() { kill "$1" 2>/dev/null; wait "$1" 2>/dev/null; true; }

# wait_for CMD...: up to 10 s for CMD to succeed (an upper bound).
wait_for() {
  for _ in $(seq 100); do "$@" && return 0; sleep 0.1; done
  return 1
}

# The kernel has a socket bound at this path (or @abstract name).
kernel_has() { awk -v n="$1" '$8 == n { f = 1 } END { exit !f }' /proc/net/unix; }

# In user mode, the kernel must not carry the program's socket.
check_user_space() {
  local m=$1 name=$2 what=$3
  if [ "$m" = user ]; then
    if kernel_has "$name"; then bad "$m: $what: the kernel carries $name"; else ok "$m: $what: $name is not a kernel socket"; fi
  else
    if kernel_has "$name"; then ok "$m: $what: $name is a kernel socket"; else bad "$m: $what: the kernel has no socket at $name"; fi
  fi
}

# ---- 1. D-Bus ----------------------------------------------------------------
dbus_case() {
  local m=$1 dir="$work/dbus-$1"
  mkdir -p "$dir"
  local bus="$dir/bus" addr="unix:path=$dir/bus"
  start "$m" dbus-daemon --session --address="$addr" --nofork --print-address=1 >"$dir/addr" 2>"$dir/daemon.err"
  local dpid=$started
  if ! wait_for test -s "$dir/addr"; then
    bad "$m: dbus-daemon did not print its address ($(tail -n 2 "$dir/daemon.err" | tr '\n' ' '))"
    stop "$dpid"; return
  fi
  ok "$m: dbus-daemon listening at $bus"
  check_user_space "$m" "$bus" "dbus-daemon"
  local out
  out=$(run "$m" dbus-send --bus="$addr" --print-reply --dest=org.freedesktop.DBus \
    /org/freedesktop/DBus org.freedesktop.DBus.ListNames 2>&1)
  if grep -q '"org.freedesktop.DBus"' <<<"$out"; then ok "$m: dbus-send ListNames"; else bad "$m: dbus-send ListNames: $(head -c 300 <<<"$out")"; fi
  out=$(run "$m" dbus-send --bus="$addr" --print-reply --dest=org.freedesktop.DBus \
    /org/freedesktop/DBus org.freedesktop.DBus.GetConnectionUnixUser string:org.freedesktop.DBus 2>&1)
  if grep -q "uint32 $(id -u)\$" <<<"$out"; then ok "$m: dbus-send GetConnectionUnixUser"; else bad "$m: dbus-send GetConnectionUnixUser: $(head -c 300 <<<"$out")"; fi
  # A client that stays: the bus must know its pid and uid (SO_PEERCRED).
  start "$m" gdbus monitor --address "$addr" --dest org.freedesktop.DBus >"$dir/monitor.out" 2>&1
  local mpid=$started found="" names n cred
  for _ in $(seq 50); do
    names=$(run "$m" gdbus call --address "$addr" --dest org.freedesktop.DBus --object-path /org/freedesktop/DBus \
      --method org.freedesktop.DBus.ListNames 2>&1 | grep -o "':1\.[0-9]*'" | tr -d "'")
    for n in $names; do
      cred=$(run "$m" gdbus call --address "$addr" --dest org.freedesktop.DBus --object-path /org/freedesktop/DBus \
        --method org.freedesktop.DBus.GetConnectionCredentials "$n" 2>/dev/null)
      if grep -q "'ProcessID': <uint32 $mpid>" <<<"$cred"; then found=$cred; break 2; fi
    done
    sleep 0.1
  done
  if [ -z "$found" ]; then
    bad "$m: gdbus: no bus connection with the monitor's pid $mpid (names: $(echo $names))"
  elif grep -q "'UnixUserID': <uint32 $(id -u)>" <<<"$found"; then
    ok "$m: gdbus GetConnectionCredentials: the monitor's pid and uid"
  else
    bad "$m: gdbus GetConnectionCredentials: $found"
  fi
  stop "$mpid"
  stop "$dpid"
}

# ---- 2. Xvfb ------------------------------------------------------------------
xvfb_case() {
  local m=$1 how=$2 dir="$work/x-$1-$2"
  mkdir -p "$dir"
  local extra=()
  [ "$how" = fs ] && extra=(-nolisten local)
  # -displayfd: Xvfb picks a free display and writes it when it is ready
  start "$m" Xvfb -displayfd 1 -nolisten tcp "${extra[@]}" -screen 0 640x480x24 >"$dir/display" 2>"$dir/xvfb.err"
  local xpid=$started
  if ! wait_for test -s "$dir/display"; then
    bad "$m: Xvfb ($how) did not start ($(tail -n 2 "$dir/xvfb.err" | tr '\n' ' '))"
    stop "$xpid"; return
  fi
  local d
  d=$(head -n 1 "$dir/display")
  local file="/tmp/.X11-unix/X$d" abstract="@/tmp/.X11-unix/X$d"
  if [ "$how" = fs ]; then
    check_user_space "$m" "$file" "Xvfb :$d"
    if [ "$m" != user ] && kernel_has "$abstract"; then bad "$m: Xvfb :$d -nolisten local still has $abstract"; fi
  else
    check_user_space "$m" "$abstract" "Xvfb :$d"
    rm -f "$file"   # only the abstract socket is left to reach it by
  fi
  local out
  out=$(run "$m" xdpyinfo -display ":$d" 2>&1)
  if grep -q "^name of display: *:$d" <<<"$out" && grep -q "dimensions: *640x480" <<<"$out"; then
    ok "$m: xdpyinfo -display :$d over the $([ "$how" = fs ] && echo filesystem || echo abstract) socket"
  else
    bad "$m: xdpyinfo -display :$d ($how): $(head -c 300 <<<"$out" | tr '\n' ' ')"
  fi
  stop "$xpid"
}

# ---- 3. socat -----------------------------------------------------------------
socat_case() {
  local m=$1 kind=$2 dir="$work/socat-$1-$2"
  mkdir -p "$dir"
  head -c 8000000 /dev/urandom >"$dir/in.bin"
  local want listen connect name
  want=$(sha256sum <"$dir/in.bin" | cut -d' ' -f1)
  if [ "$kind" = path ]; then
    name="$dir/s.sock"; listen="UNIX-LISTEN:$name"; connect="UNIX-CONNECT:$name"
  else
    name="@usock-programs14-$$-$m"; listen="ABSTRACT-LISTEN:${name#@}"; connect="ABSTRACT-CONNECT:${name#@}"
  fi
  start "$m" timeout "$T" socat -u "$listen" "OPEN:$dir/out.bin,creat,trunc"
  local lpid=$started
  if [ "$kind" = path ] && [ "$m" != user ]; then wait_for test -S "$name"; fi
  if [ "$m" != user ]; then wait_for kernel_has "$name"; else sleep 0.5; fi
  check_user_space "$m" "$name" "socat $listen"
  if run "$m" socat -u "OPEN:$dir/in.bin" "$connect" 2>"$dir/connect.err"; then
    wait "$lpid" 2>/dev/null
    if [ "$(sha256sum <"$dir/out.bin" 2>/dev/null | cut -d' ' -f1)" = "$want" ]; then
      ok "$m: socat $listen <- $connect: 8 MB, checksum equal"
    else
      bad "$m: socat $kind: checksum differs ($(stat -c %s "$dir/out.bin" 2>/dev/null || echo 0) bytes arrived)"
    fi
  else
    bad "$m: socat $connect failed: $(head -c 300 "$dir/connect.err" | tr '\n' ' ')"
    stop "$lpid"
  fi
}

socat_dgram_case() {
  local m=$1 dir="$work/socatd-$1"
  mkdir -p "$dir"
  local name="$dir/d.sock"
  start "$m" timeout "$T" socat -u "UNIX-RECV:$name" "OPEN:$dir/out.txt,creat,append"
  local rpid=$started
  if [ "$m" != user ]; then wait_for test -S "$name"; else sleep 0.5; fi
  if echo "datagram over AF_UNIX" | run "$m" socat -u STDIN "UNIX-SENDTO:$name" 2>"$dir/send.err"; then
    wait_for grep -q "datagram over AF_UNIX" "$dir/out.txt" 2>/dev/null
  fi
  if grep -q "datagram over AF_UNIX" "$dir/out.txt" 2>/dev/null; then
    ok "$m: socat UNIX-SENDTO -> UNIX-RECV: the datagram arrived"
  else
    bad "$m: socat datagram: $(head -c 300 "$dir/send.err" | tr '\n' ' ')"
  fi
  stop "$rpid"
}

have_dbus=1 have_x=1 have_socat=1
command -v dbus-daemon >/dev/null && command -v dbus-send >/dev/null && command -v gdbus >/dev/null ||
  { have_dbus=0; skip dbus "dbus-daemon, dbus-send or gdbus not installed (apt-get install dbus dbus-bin libglib2.0-bin)"; }
command -v Xvfb >/dev/null && command -v xdpyinfo >/dev/null ||
  { have_x=0; skip xvfb "Xvfb or xdpyinfo not installed (apt-get install xvfb x11-utils)"; }
command -v socat >/dev/null || { have_socat=0; skip socat "socat not installed"; }

for m in $MODES; do
  echo "== $m"
  [ "$have_dbus" = 1 ] && dbus_case "$m"
  if [ "$have_x" = 1 ]; then
    xvfb_case "$m" fs
    xvfb_case "$m" abstract
  fi
  if [ "$have_socat" = 1 ]; then
    socat_case "$m" path
    socat_case "$m" abstract
    socat_dgram_case "$m"
  fi
done
[ "$nskip" -gt 0 ] && echo "($nskip allowed skips)"
summary

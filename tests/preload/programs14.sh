#!/usr/bin/env bash
# tests/preload/programs14.sh - issue 14's "Done when": real programs that
# rely on AF_UNIX, each run three ways:
#   kernel    plainly, on the kernel's sockets: the positive control (a
#             failure here is the machine's, not the library's);
#   launcher  under bin/usockrun with its default routes (AF_UNIX stays on
#             the kernel): the library is loaded and must not get in the way;
#   user      under bin/usockrun --route "user unix": AF_UNIX in user space,
#             server and clients in separate processes on one user-space
#             network. The kernel must then carry none of the program's own
#             AF_UNIX sockets (/proc/net/unix does not list its path or
#             abstract name).
# The programs:
#   1. a D-Bus session bus (dbus-daemon --session --address=unix:path=...)
#      with dbus-send and gdbus calls: ListNames; GetConnectionUnixUser of
#      the bus; GetConnectionCredentials of a gdbus monitor that stays
#      connected: its pid and uid, which the bus read with SO_PEERCRED after
#      the EXTERNAL authentication (libdbus sends SCM_CREDENTIALS);
#   2. an X server (Xvfb -displayfd) with xdpyinfo, over its filesystem
#      socket alone (-nolisten local) and over its abstract socket alone
#      (the file removed);
#   3. socat moving 8 MB between UNIX-LISTEN and UNIX-CONNECT, and between
#      ABSTRACT-LISTEN and ABSTRACT-CONNECT (sha256 equal), and a datagram
#      from UNIX-SENDTO to UNIX-RECV.
# MODES="kernel launcher user" (default) picks the ways. A program that is
# not installed is a named skip (tests/README.md). Exit status 0 only if
# every check passed. Readiness is waited for (bounded), never slept for.
set -uo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
MODES=${MODES:-kernel launcher user}
T=${PROG_TIMEOUT:-30}

# wrap MODE: the command prefix of a way, in W.
wrap() {
  case $1 in
    kernel) W=() ;;
    launcher) W=(bin/usockrun --net "$net" --) ;;
    user) W=(bin/usockrun --net "$net" --route "user unix" --) ;;
  esac
}
# run MODE CMD...: in the foreground, within $T s.
run() {
  wrap "$1"; shift
  timeout -k 5 "$T" "${W[@]}" "$@"
}
# serve MODE NAME CMD...: in the background (spawn), ended by stop NAME.
serve() {
  local m=$1 n=$2
  shift 2
  wrap "$m"
  spawn "$n" "$T" "${W[@]}" "$@"
}
# The program's own pid under spawn: timeout's child (usockrun execs it).
prog_pid() { ps -o pid= --ppid "${pids[$1]}" | tr -d ' ' | head -n 1; }

# kernel_bound NAME: the kernel has an AF_UNIX socket bound at NAME (a path,
# or @name for an abstract one), listening or not.
kernel_bound() { awk -v n="$1" '$8 == n { f = 1 } END { exit !f }' /proc/net/unix; }
# In user mode the kernel must not carry the program's socket; on the
# other ways it does (which also proves the server is up).
where() {
  local m=$1 name=$2 what=$3
  if [ "$m" = user ]; then
    check "$m: $what: $name is not a kernel socket" "/proc/net/unix lists it" not kernel_bound "$name"
  else
    check "$m: $what: $name is a kernel socket" "/proc/net/unix does not list it" kernel_bound "$name"
  fi
}
# ready MODE SECONDS WHAT CMD...: readiness by CMD; in user mode, where no
# kernel socket tells it, the program's first output (CMD) must do.
ready() { wait_for "${@:2}"; }

# ---- 1. D-Bus ----------------------------------------------------------------
dbus_case() {
  local m=$1 dir="$work/dbus-$1"
  mkdir -p "$dir"
  local bus="$dir/bus" addr="unix:path=$dir/bus" out
  serve "$m" "dbus-$m" dbus-daemon --session --address="$addr" --nofork --print-address=1 \
    >"$dir/addr" 2>"$dir/daemon.err"
  # it prints its address once it listens
  if ! ready "$m" 10 "$m: dbus-daemon printed its address ($(tail -n 2 "$dir/daemon.err" | tr '\n' ' '))" \
      test -s "$dir/addr"; then
    stop "dbus-$m"; return
  fi
  ok "$m: dbus-daemon listening at $bus"
  where "$m" "$bus" "dbus-daemon"
  out=$(run "$m" dbus-send --bus="$addr" --print-reply --dest=org.freedesktop.DBus \
    /org/freedesktop/DBus org.freedesktop.DBus.ListNames 2>&1)
  check "$m: dbus-send ListNames" "$(head -c 300 <<<"$out")" grep -q '"org.freedesktop.DBus"' <<<"$out"
  out=$(run "$m" dbus-send --bus="$addr" --print-reply --dest=org.freedesktop.DBus \
    /org/freedesktop/DBus org.freedesktop.DBus.GetConnectionUnixUser string:org.freedesktop.DBus 2>&1)
  check "$m: dbus-send GetConnectionUnixUser" "$(head -c 300 <<<"$out")" grep -q "uint32 $(id -u)\$" <<<"$out"
  # A client that stays: the bus must know its pid and uid (SO_PEERCRED).
  serve "$m" "monitor-$m" gdbus monitor --address "$addr" --dest org.freedesktop.DBus >"$dir/monitor.out" 2>&1
  local mpid="" found="" names="" n cred
  for _ in $(seq 100); do
    [ -n "$mpid" ] || mpid=$(prog_pid "monitor-$m")
    names=$(run "$m" gdbus call --address "$addr" --dest org.freedesktop.DBus --object-path /org/freedesktop/DBus \
      --method org.freedesktop.DBus.ListNames 2>&1 | grep -o "':1\.[0-9]*'" | tr -d "'")
    for n in $names; do
      cred=$(run "$m" gdbus call --address "$addr" --dest org.freedesktop.DBus --object-path /org/freedesktop/DBus \
        --method org.freedesktop.DBus.GetConnectionCredentials "$n" 2>/dev/null)
      if [ -n "$mpid" ] && grep -q "'ProcessID': <uint32 $mpid>" <<<"$cred"; then found=$cred; break 2; fi
    done
    alive "monitor-$m" || break
    sleep 0.1
  done
  if [ -z "$found" ]; then
    bad "$m: gdbus GetConnectionCredentials: no bus connection has the monitor's pid ${mpid:-?} (names: $(echo $names); monitor: $(head -c 200 "$dir/monitor.out" | tr '\n' ' '))"
  else
    check "$m: gdbus GetConnectionCredentials: the monitor's pid and uid" "$found" \
      grep -q "'UnixUserID': <uint32 $(id -u)>" <<<"$found"
  fi
  stop "monitor-$m"
  stop "dbus-$m"
}

# ---- 2. Xvfb ------------------------------------------------------------------
xvfb_case() {
  local m=$1 how=$2 dir="$work/x-$1-$2"
  mkdir -p "$dir"
  local extra=()
  [ "$how" = fs ] && extra=(-nolisten local)
  # -displayfd: Xvfb picks a free display and writes it once it is ready
  serve "$m" "xvfb-$m-$how" Xvfb -displayfd 1 -nolisten tcp "${extra[@]}" -screen 0 640x480x24 \
    >"$dir/display" 2>"$dir/xvfb.err"
  if ! ready "$m" 15 "$m: Xvfb ($how) wrote its display ($(tail -n 2 "$dir/xvfb.err" | tr '\n' ' '))" \
      test -s "$dir/display"; then
    stop "xvfb-$m-$how"; return
  fi
  local d out
  d=$(head -n 1 "$dir/display")
  local file="/tmp/.X11-unix/X$d" abstract="@/tmp/.X11-unix/X$d"
  if [ "$how" = fs ]; then
    where "$m" "$file" "Xvfb :$d -nolisten local"
    [ "$m" = user ] || check "$m: Xvfb :$d -nolisten local has no abstract socket" "$abstract is bound" \
      not kernel_bound "$abstract"
  else
    where "$m" "$abstract" "Xvfb :$d"
    rm -f "$file" # only the abstract socket is left to reach it by
  fi
  out=$(run "$m" xdpyinfo -display ":$d" 2>&1)
  check "$m: xdpyinfo -display :$d over the $([ "$how" = fs ] && echo filesystem || echo abstract) socket alone" \
    "$(head -c 300 <<<"$out" | tr '\n' ' ')" \
    grep -q "dimensions: *640x480" <<<"$out"
  stop "xvfb-$m-$how"
}

# ---- 3. socat -----------------------------------------------------------------
socat_case() {
  local m=$1 kind=$2 dir="$work/socat-$1-$2"
  mkdir -p "$dir"
  head -c 8000000 /dev/urandom >"$dir/in.bin"
  local want listen connect name got rc=0 src=0
  want=$(sha256sum <"$dir/in.bin" | cut -d' ' -f1)
  if [ "$kind" = path ]; then
    name="$dir/s.sock" listen="UNIX-LISTEN:$dir/s.sock" connect="UNIX-CONNECT:$dir/s.sock"
  else
    name="@usock-programs14-$$-$m" listen="ABSTRACT-LISTEN:usock-programs14-$$-$m"
    connect="ABSTRACT-CONNECT:usock-programs14-$$-$m"
    # user mode: no kernel socket or file tells that the listener is up;
    # the client's connect retries a refusal instead (bounded)
    [ "$m" = user ] && connect="$connect,retry=100,interval=0.1"
  fi
  serve "$m" "socat-$m-$kind" socat -u "$listen" "OPEN:$dir/out.bin,creat,trunc"
  if [ "$m" = user ]; then
    # no kernel socket to wait for: the library's socket file, or for an
    # abstract name nothing at all (the connect below then tells)
    [ "$kind" = path ] && ready "$m" 10 "$m: socat $listen made its socket file" test -S "$name"
  else
    ready "$m" 10 "$m: socat $listen bound" kernel_bound "$name" || { stop "socat-$m-$kind"; return; }
  fi
  where "$m" "$name" "socat $listen"
  run "$m" socat -u "OPEN:$dir/in.bin" "$connect" 2>"$dir/connect.err" || rc=$?
  if [ "$rc" = 0 ]; then
    reap "socat-$m-$kind" || src=$?
    got=$(sha256sum <"$dir/out.bin" | cut -d' ' -f1)
    check "$m: socat $connect -> $listen: 8 MB, checksum equal, both exit 0" \
      "server exit $src, $(stat -c %s "$dir/out.bin") bytes arrived" [ "$src.$got" = "0.$want" ]
  else
    bad "$m: socat $connect: exit $rc: $(head -c 300 "$dir/connect.err" | tr '\n' ' ')"
    stop "socat-$m-$kind"
  fi
}

socat_dgram_case() {
  local m=$1 dir="$work/socatd-$1"
  mkdir -p "$dir"
  local name="$dir/d.sock" rc=0
  serve "$m" "socatd-$m" socat -u "UNIX-RECV:$name" "OPEN:$dir/out.txt,creat,append"
  if [ "$m" = user ]; then
    ready "$m" 10 "$m: socat UNIX-RECV made its socket file" test -S "$name"
  else
    ready "$m" 10 "$m: socat UNIX-RECV bound" kernel_bound "$name" || { stop "socatd-$m"; return; }
  fi
  echo "datagram over AF_UNIX" | run "$m" socat -u STDIN "UNIX-SENDTO:$name" 2>"$dir/send.err" || rc=$?
  if [ "$rc" = 0 ]; then
    wait_for 10 "$m: socat UNIX-SENDTO -> UNIX-RECV: the datagram arrived" \
      grep -q "datagram over AF_UNIX" "$dir/out.txt" &&
      ok "$m: socat UNIX-SENDTO -> UNIX-RECV: the datagram arrived"
  else
    bad "$m: socat UNIX-SENDTO: exit $rc: $(head -c 300 "$dir/send.err" | tr '\n' ' ')"
  fi
  stop "socatd-$m"
}

have_dbus="" have_x="" have_socat=""
need dbus-daemon dbus-send gdbus -- "the D-Bus session bus (apt-get install dbus dbus-bin libglib2.0-bin)" && have_dbus=1
need Xvfb xdpyinfo -- "Xvfb with xdpyinfo (apt-get install xvfb x11-utils)" && have_x=1
need socat -- "socat over AF_UNIX" && have_socat=1

for m in $MODES; do
  echo "== $m"
  [ -n "$have_dbus" ] && dbus_case "$m"
  if [ -n "$have_x" ]; then
    xvfb_case "$m" fs
    xvfb_case "$m" abstract
  fi
  if [ -n "$have_socat" ]; then
    socat_case "$m" path
    socat_case "$m" abstract
    socat_dgram_case "$m"
  fi
done
summary

#!/usr/bin/env bash
# Another user's processes cannot reach into a user-space network, even when
# its directory and socket files are opened up by hand: the cross-process
# backend checks the peer's credentials (SO_PEERCRED on stream connections
# and on the links that carry datagrams). The other user is uid 65534
# (setpriv), so this needs root: without it, `skip root` (a failure unless
# ALLOW_SKIP=root).
#
# Each refusal is asserted exactly, not as "some failure": a stream connect
# must fail with nc's "Connection refused" (exit 1; not a timeout, not a
# command that never ran, not a permission error: uid 65534's access to the
# socket file is checked first), and a datagram sender must have run and
# sent (socat's "transferred N bytes") while nothing arrives. Beside each,
# a positive control runs the same command as the user the listener
# belongs to and must get through: so the listener was up, the command
# works, and running as uid 65534 works. A library client checks the
# listener's credentials itself and gives up first; so that the listener's
# own check is tested too, case 1b replays a connection's first frame from
# a plain socat of the other user (a client that skips the library).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
if [ "$(id -u)" != 0 ]; then
  skip root "running a second user (uid 65534) needs root; uid $(id -u) here"
  summary
  exit
fi
need setpriv socat nc -- "the peer-credential checks" || { summary; exit; }

# Uid 65534 must read the launcher and the library, wherever the checkout
# lives (a home directory may be 0700): both are copied into $work (0755),
# and every run here, ours and theirs, uses the copies.
chmod 0755 "$work"
cp bin/usockrun "$work/usockrun"
cp "${USOCK_LIB:-target/release/libuserspacesock.so}" "$work/libuserspacesock.so"
chmod 0755 "$work/usockrun" "$work/libuserspacesock.so"
RUN=("$work/usockrun" --lib "$work/libuserspacesock.so" --net "$net")
NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups --)
# open_up FILE: the directory and the socket files opened to everyone, and
# a check that uid 65534 may now connect to FILE (connect needs write
# permission on a socket file): so what refuses it below is the credential
# check, not the file system (which the refusal would look the same as).
# A port that an SO_REUSEPORT listener holds (nc sets the option) is a
# directory with one socket per listening process in it: the directory is
# opened up for searching, its sockets for writing.
open_up() {
  local f
  chmod 0777 "$net"
  for f in "$net"/*; do
    if [ -d "$f" ]; then chmod 0777 "$f"; chmod 0666 "$f"/*; else chmod 0666 "$f"; fi
  done
  local s dir=()
  s=$(port_socket "$1")
  [ -d "$1" ] && dir=(-a -x "$1")
  check "uid 65534 may connect to ${s#"$net"/} (directories searchable, socket file writable)" \
    "$(stat -c '%A %U' "$net" "$1" "$s" | tr '\n' ' ')" "${NOBODY[@]}" test -x "$net" "${dir[@]}" -a -w "$s"
}

# port_socket PATH: the socket a connect to the port reaches: PATH, or the
# one member of the SO_REUSEPORT group at PATH.
port_socket() {
  if [ -d "$1" ]; then
    local m=("$1"/*)
    echo "${m[0]}"
  else
    echo "$1"
  fi
}

# refused WHAT RC ERRFILE PORT: a stream connect that must have failed with
# exactly nc's "Connection refused" (what the library makes of another
# user's listener or of a listener that turned us away).
refused() {
  local what=$1 rc=$2 err=$3 port=$4
  local want="nc: connect to 127.0.0.1 port $port (tcp) failed: Connection refused"
  if [ "$rc" = 1 ] && grep -qxF "$want" "$err"; then
    ok "$what: refused (nc: Connection refused, exit 1)"
  elif [ "$rc" = 0 ]; then
    bad "$what: it connected (exit 0): $(head -c 300 "$err")"
  elif [ "$rc" = 124 ]; then
    bad "$what: timed out (not refused)"
  elif [ "$rc" = 126 ] || [ "$rc" = 127 ]; then
    bad "$what: never ran (exit $rc): $(head -c 300 "$err")"
  else
    bad "$what: failed another way (exit $rc): $(head -c 300 "$err")"
  fi
}
# connected WHAT RC ERRFILE PORT: the positive control of refused.
connected() {
  local what=$1 rc=$2 err=$3 port=$4
  if [ "$rc" = 0 ] && grep -qF "Connection to 127.0.0.1 $port port [tcp/" "$err"; then
    ok "$what: connected and sent (exit 0)"
  else
    bad "$what: exit $rc: $(head -c 300 "$err")"
  fi
}
# sent WHAT RC ERRFILE BYTES: socat ran and sent its datagram (its info
# line "transferred BYTES bytes from 0 to ..."), exit 0.
sent() {
  local what=$1 rc=$2 err=$3 bytes=$4
  if [ "$rc" = 0 ] && grep -q " I transferred $bytes bytes from 0 to " "$err"; then
    ok "$what: ran and sent its $bytes-byte datagram (exit 0)"
  else
    bad "$what: did not send (exit $rc): $(grep -E ' [EW] ' "$err" | head -c 300)"
  fi
}

# 1. Stream: a server of ours, a client of another user.
spawn ours 30 "${RUN[@]}" -- nc -l 127.0.0.1 7100 > "$work/ours.out"
if wait_for 10 "our nc -l listening on user-space port 7100" usock_listens t7100; then
  open_up "$net/t7100"
  rc=0
  echo intruder | "${NOBODY[@]}" timeout 10 "${RUN[@]}" -- nc -v -N 127.0.0.1 7100 2> "$work/intruder.err" || rc=$?
  refused "another user's nc -> our listener" "$rc" "$work/intruder.err" 7100
  # Positive control: the same command as our user.
  rc=0
  echo friend | timeout 10 "${RUN[@]}" -- nc -v -N 127.0.0.1 7100 2> "$work/friend.err" || rc=$?
  connected "the same nc as our user -> our listener" "$rc" "$work/friend.err" 7100
  src=0
  reap ours || src=$?
  check "our listener got exactly our client's bytes (the intruder's never arrived), exit 0" \
    "exit $src, got [$(head -c 100 "$work/ours.out")]" [ "$src.$(cat "$work/ours.out")" = "0.friend" ]
fi
stop ours

# 1b. Stream: a client of another user that does not run the library (so
# not its check of the listener's credentials either): it replays a HELLO
# frame, the first frame of a connection, captured from our own nc. Our
# listener's side must close that connection at once and never hand it to
# nc -l; the same bytes from our user must be accepted (the positive
# control: the replayed frame is one the listener takes).
# Capture: our nc connects to a plain socat listener in a scratch network
# directory and sends its HELLO (then waits for an ACCEPT that never comes).
mkdir -m 0700 "$work/capture"
spawn capture 20 socat -d -d -d -u UNIX-LISTEN:"$work/capture/t7300" OPEN:"$work/hello.bin",creat 2> "$work/capture.err"
if wait_for 10 "the capturing socat listening" unix_listens "$work/capture/t7300"; then
  spawn capture-client 20 "$work/usockrun" --lib "$work/libuserspacesock.so" --net "$work/capture" -- nc 127.0.0.1 7300 < /dev/null
  if wait_for 10 "our nc's HELLO captured (socat: transferred)" grep -q " I transferred " "$work/capture.err"; then
    stop capture-client
    src=0
    reap capture || src=$?
    check "a HELLO frame captured from our nc ($(stat -c %s "$work/hello.bin") bytes)" "socat exit $src" \
      [ "$src" = 0 ] && [ -s "$work/hello.bin" ]
  fi
fi
stop capture-client; stop capture
# raw_client NAME [setpriv...]: socat connected to our listener, its input a
# fifo that we hold open on fd 3 (so only the listener's side can end the
# connection), its log in $work/NAME.err; the HELLO written into it.
raw_client() {
  local n=$1
  shift
  rm -f "$work/$n.fifo"; mkfifo -m 0644 "$work/$n.fifo"
  # Read-write: opening a fifo so does not wait for the other end, and the
  # client's open below then finds a writer. The client gets no copy of fd
  # 3, so closing ours is its end of input. (Not spawn: a background
  # command's input is /dev/null unless its own redirection says otherwise.)
  exec 3<> "$work/$n.fifo"
  timeout -k 10 20 "$@" socat -d -d - UNIX-CONNECT:"$(port_socket "$net/t7103")" < "$work/$n.fifo" > /dev/null 2> "$work/$n.err" 3>&- &
  pids[$n]=$!
  cat "$work/hello.bin" >&3
}
if [ -s "$work/hello.bin" ]; then
  spawn raw-listener 30 "${RUN[@]}" -- nc -v -l 127.0.0.1 7103 > "$work/raw-listener.out" 2> "$work/raw-listener.err"
  if wait_for 10 "our nc -l listening on user-space port 7103" usock_listens t7103; then
    open_up "$net/t7103"
    raw_client raw-intruder "${NOBODY[@]}"
    # Closed by the listener's side (its check runs at accept, before it
    # reads anything): socat, whose own input is still open, meets a reset
    # or end-of-stream reading, or a broken pipe if the close came before
    # its write, and ends (exit 0, or 1 for the broken pipe). Were the
    # connection let in, it would stay open and nc -l would take it.
    if wait_for 10 "another user's raw HELLO: the listener's side closes the connection" not alive raw-intruder; then
      src=0
      reap raw-intruder || src=$?
      if { [ "$src" = 0 ] || [ "$src" = 1 ]; } && grep -q "successfully connected" "$work/raw-intruder.err" &&
        grep -qE "Connection reset by peer|Broken pipe|socket 2 \(fd [0-9]+\) is at EOF" "$work/raw-intruder.err"; then
        ok "another user's raw HELLO: connected on the kernel, then closed by our listener's side (its check, not the client's)"
      else
        bad "another user's raw HELLO: exit $src: $(grep -E ' [NEW] ' "$work/raw-intruder.err" | head -c 400)"
      fi
      check "nc -l accepted nothing from another user's raw HELLO" "$(cat "$work/raw-listener.err")" \
        not grep -q "Connection received" "$work/raw-listener.err"
    fi
    exec 3>&-
    # The control: the same bytes from our user; nc -l takes the connection
    # and it stays open (until we close its input: end-of-stream, nc exits).
    raw_client raw-friend
    if wait_for 10 "our raw HELLO accepted by nc -l" grep -q "Connection received" "$work/raw-listener.err"; then
      check "the same raw HELLO from our user: nc -l accepts it, the connection stays open" "it ended" alive raw-friend
    fi
    exec 3>&-
    rc=0 src=0
    reap raw-friend || rc=$?
    reap raw-listener || src=$?
    check "closing our raw client's input ends nc -l (exit 0) and the client (exit 0)" "nc -l exit $src, socat exit $rc" \
      [ "$rc.$src" = 0.0 ]
  fi
  stop raw-listener; stop raw-intruder; stop raw-friend
fi

# 2. Stream: a server of another user (in our network directory, opened
# up), a client of ours.
mkdir -p "$net" && chmod 0777 "$net"
spawn theirs 30 "${NOBODY[@]}" "${RUN[@]}" -- nc -l 127.0.0.1 7102 > "$work/theirs.out"
if wait_for 10 "uid 65534's nc -l listening on user-space port 7102" usock_listens t7102; then
  open_up "$net/t7102"
  rc=0
  echo secret | timeout 10 "${RUN[@]}" -- nc -v -N 127.0.0.1 7102 2> "$work/ours-to-theirs.err" || rc=$?
  refused "our nc -> another user's listener" "$rc" "$work/ours-to-theirs.err" 7102
  # Positive control: the same command as uid 65534 (which also shows that
  # a client running as uid 65534 works at all).
  rc=0
  echo theirs | "${NOBODY[@]}" timeout 10 "${RUN[@]}" -- nc -v -N 127.0.0.1 7102 2> "$work/their-client.err" || rc=$?
  connected "the same nc as uid 65534 -> its own listener" "$rc" "$work/their-client.err" 7102
  src=0
  reap theirs || src=$?
  check "their listener got exactly their client's bytes (ours never arrived), exit 0" \
    "exit $src, got [$(head -c 100 "$work/theirs.out")]" [ "$src.$(cat "$work/theirs.out")" = "0.theirs" ]
fi
stop theirs

# Datagrams: a sender of the other user runs and sends (socat says so), the
# receiver gets nothing from it; then the same command as the receiver's
# user (the positive control) is delivered. The refused sender has exited
# before the control starts (and the library writes out what a process
# queued before it exits), so had its datagram been let in it would be in
# the file before the control's, which is waited for.
SEND=(socat -d -d -d -u STDIN)
# 3. Our receiver, a sender of another user.
spawn our-recv 30 "${RUN[@]}" -- socat -u UDP-RECV:7101,bind=127.0.0.1 OPEN:"$work/our-udp.out",creat,append
if wait_for 10 "our socat UDP-RECV bound on user-space port 7101" usock_listens u7101; then
  open_up "$net/u7101"
  rc=0
  echo "from intruder" | "${NOBODY[@]}" timeout 10 "${RUN[@]}" -- "${SEND[@]}" "UDP-SENDTO:127.0.0.1:7101" 2> "$work/intruder-udp.err" || rc=$?
  sent "another user's socat -> our UDP port" "$rc" "$work/intruder-udp.err" 14
  rc=0
  echo "from friend" | timeout 10 "${RUN[@]}" -- "${SEND[@]}" "UDP-SENDTO:127.0.0.1:7101" 2> "$work/friend-udp.err" || rc=$?
  sent "the same socat as our user -> our UDP port" "$rc" "$work/friend-udp.err" 12
  if wait_for 10 "our datagram in our receiver's file" grep -qs "from friend" "$work/our-udp.out"; then
    ok "our datagram arrives"
    check "another user's datagram was not delivered" "got [$(head -c 200 "$work/our-udp.out")]" \
      not grep -q intruder "$work/our-udp.out"
  fi
fi
stop our-recv

# 4. A receiver of another user, a sender of ours.
spawn their-recv 30 "${NOBODY[@]}" "${RUN[@]}" -- socat -u UDP-RECV:7104,bind=127.0.0.1 STDOUT > "$work/their-udp.out"
if wait_for 10 "uid 65534's socat UDP-RECV bound on user-space port 7104" usock_listens u7104; then
  open_up "$net/u7104"
  rc=0
  echo "from root" | timeout 10 "${RUN[@]}" -- "${SEND[@]}" "UDP-SENDTO:127.0.0.1:7104" 2> "$work/ours-udp.err" || rc=$?
  sent "our socat -> another user's UDP port" "$rc" "$work/ours-udp.err" 10
  rc=0
  echo "from nobody" | "${NOBODY[@]}" timeout 10 "${RUN[@]}" -- "${SEND[@]}" "UDP-SENDTO:127.0.0.1:7104" 2> "$work/their-udp.err" || rc=$?
  sent "the same socat as uid 65534 -> its own UDP port" "$rc" "$work/their-udp.err" 12
  if wait_for 10 "uid 65534's datagram in its receiver's output" grep -qs "from nobody" "$work/their-udp.out"; then
    ok "uid 65534's datagram arrives at its own receiver"
    check "our datagram was not delivered to another user's receiver" "got [$(head -c 200 "$work/their-udp.out")]" \
      not grep -q "from root" "$work/their-udp.out"
  fi
fi
stop their-recv

summary

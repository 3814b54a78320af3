#!/usr/bin/env bash
# Another user's processes cannot reach into a user-space network, even when
# its directory and socket files are opened up by hand: the cross-process
# backend checks the peer's credentials (SO_PEERCRED on stream connections
# and on the links that carry datagrams). Needs root (to run a second
# user); prints "skip" otherwise.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
if [ "$(id -u)" != 0 ] || ! command -v setpriv >/dev/null || ! command -v socat >/dev/null; then
  echo "skip: peer-credential test needs root, setpriv and socat"
  exit 0
fi
RUN="bin/usockrun ${USOCK_LIB:+--lib $USOCK_LIB} --net"
chmod 0755 "$work"
# Everything on the path to the library must be readable by the other user.
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@"; }
if ! as_nobody test -r "$(readlink -f "${USOCK_LIB:-target/release/libuserspacesock.so}")"; then
  echo "skip: the library is not readable by uid 65534 here"
  exit 0
fi
open_up() { chmod 0777 "$net"; chmod 0666 "$net"/* 2>/dev/null || true; }

# Stream: a server of ours, a client of another user.
(timeout 20 $RUN "$net" -- nc -l 127.0.0.1 7100 > "$work/stream.out") &
for _ in $(seq 50); do [ -S "$net/t7100" ] && break; sleep 0.1; done
open_up
if echo intruder | as_nobody timeout 10 $RUN "$net" -- nc -N 127.0.0.1 7100 2>/dev/null; then
  bad "another user's nc connected"
else
  ok "another user's connect is refused"
fi
echo friend | timeout 10 $RUN "$net" -- nc -N 127.0.0.1 7100 || true
wait %1 || true
[ "$(cat "$work/stream.out")" = friend ] && ok "our own client gets through, the intruder's bytes never arrived" || bad "stream server got: $(cat "$work/stream.out")"

# Stream: a server of another user, a client of ours.
(as_nobody timeout 20 $RUN "$net" -- nc -l 127.0.0.1 7102 > "$work/theirs.out") &
for _ in $(seq 50); do [ -S "$net/t7102" ] && break; sleep 0.1; done
open_up
if echo secret | timeout 10 $RUN "$net" -- nc -N 127.0.0.1 7102 2>/dev/null; then
  bad "our nc connected to another user's server"
else
  ok "another user's listener is not reachable"
fi
kill %1 2>/dev/null || true; wait 2>/dev/null || true
[ ! -s "$work/theirs.out" ] && ok "another user's server received nothing" || bad "their server got data"

# Datagrams: our receiver, senders of both users.
(timeout 20 $RUN "$net" -- socat -u UDP-RECV:7101,bind=127.0.0.1 OPEN:"$work/udp.out",creat,append) &
for _ in $(seq 50); do [ -S "$net/u7101" ] && break; sleep 0.1; done
open_up
echo "from intruder" | as_nobody timeout 10 $RUN "$net" -- socat -u STDIN UDP-SENDTO:127.0.0.1:7101 || true
echo "from friend" | timeout 10 $RUN "$net" -- socat -u STDIN UDP-SENDTO:127.0.0.1:7101
sleep 0.5
kill %1 2>/dev/null || true; wait 2>/dev/null || true
grep -q "from friend" "$work/udp.out" && ok "our datagram arrives" || bad "our datagram is missing"
grep -q "intruder" "$work/udp.out" && bad "another user's datagram was delivered" || ok "another user's datagram is dropped"

summary

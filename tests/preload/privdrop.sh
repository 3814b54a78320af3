#!/usr/bin/env bash
# tests/preload/privdrop.sh - a daemon that drops its privileges before it
# binds (issue 16): started by root under usockrun --user nobody, it
# switches to uid 65534 before its first socket call, binds and serves; a
# client run by root on the same network reaches it; a third user's
# process cannot join; without --user the daemon's socket() fails with a
# message that names the directory's owner and the way out; --user is
# root's only. (What it grants: the network directory becomes the named
# user's, mode 0700; that user's and root's processes share the network,
# each end checking the other's uid at connect against its own user and
# USOCK_NET_USERS, which --user sets to root and the named user.)
set -uo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
need setpriv -- "the privilege-drop cases" || { summary; exit; }
# The system's python: a per-user installation (pyenv under /root) is not
# reachable once the daemon is another user.
py=/usr/bin/python3
[ -x "$py" ] || { skip python3 "no /usr/bin/python3"; summary; exit; }
if [ "$(id -u)" != 0 ]; then
  skip root "the privilege-drop cases need root"
  summary
  exit
fi
chmod 755 "$work"
drop=(setpriv --reuid=65534 --regid=65534 --clear-groups)
server_py='
import socket, os
assert os.geteuid() == 65534
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", 7601)); l.listen(1)
c, _ = l.accept(); c.sendall(b"served by %d" % os.geteuid()); c.close()
'
client_py='
import socket
s = socket.create_connection(("127.0.0.1", 7601)); print(s.recv(100).decode())
'

# 1. with --user nobody: the dropped daemon serves root's client.
pnet=$work/pnet
spawn daemon 30 bin/usockrun --net "$pnet" --user nobody -- "${drop[@]}" "$py" -c "$server_py"
# t7601, or s7601 when the shm backend carries TCP (lib.sh's usock_listens)
daemon_listens() { unix_listens "$pnet/t7601" || unix_listens "$pnet/s7601"; }
if wait_for 10 "the dropped daemon listening on 7601" daemon_listens; then
  out=$(timeout 10 bin/usockrun --net "$pnet" --user nobody -- "$py" -c "$client_py" 2>&1)
  check "root's client reaches the daemon that switched to nobody" "client: $out" [ "$out" = "served by 65534" ]
  reap daemon
fi
stop daemon
check "the network directory is nobody's, mode 700" "$(stat -c '%u %a' "$pnet")" [ "$(stat -c '%u %a' "$pnet")" = "65534 700" ]

# 2. a third user cannot join that network.
out=$(timeout 10 bin/usockrun --net "$pnet" -- setpriv --reuid=65533 --regid=65533 --clear-groups \
  "$py" -c 'import socket; socket.socket()' 2>&1)
check "a third user's process is refused" "output: $out" \
  grep -q "cannot use the directory: Permission denied" <<< "$out"

# 3. without --user: the daemon's first socket fails, and says why.
rnet=$work/rnet
out=$(timeout 10 bin/usockrun --net "$rnet" -- "${drop[@]}" "$py" -c "$server_py" 2>&1)
check "without --user the daemon is told who owns the network and what to do" "output: $out" \
  grep -q "it belongs to uid 0; a program that switches to another user needs the network prepared for that user: usockrun --user NAME" <<< "$out"

# 4. --user is root's, and names a user that exists.
# usage2 MESSAGE: the last run exited 2 saying MESSAGE.
usage2() { [ "$rc" = 2 ] && grep -qF -- "$1" <<< "$out"; }
rc=0; out=$("${drop[@]}" bin/usockrun --net "$work/n4" --user nobody -- true 2>&1) || rc=$?
check "--user as another user than root: a usage error" "exit $rc: $out" usage2 "--user needs root"
rc=0; out=$(bin/usockrun --net "$work/n5" --user no-such-user-here -- true 2>&1) || rc=$?
check "--user with an unknown user: a usage error" "exit $rc: $out" usage2 "no such user"
summary

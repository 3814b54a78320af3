#!/usr/bin/env bash
# tests/preload/trace.sh - call tracing (USOCK_TRACE=calls, usockrun
# --trace FILE, issue 16): a server and a client in two processes write one
# line per call on a user-space socket to one file, strace-style: the call,
# its arguments (socket addresses decoded), its result and errno by name,
# each line with its process's pid; read() shows as read, not as the call
# that carries it out. Without the switch nothing is written; --trace -
# writes to the program's stderr.
set -uo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
need python3 -- "the trace cases (python3 under the launcher)" || { summary; exit; }
tr=$work/trace.log

server_py='
import socket
l = socket.socket(); l.bind(("127.0.0.1", 7401)); l.listen(1)
c, _ = l.accept(); c.sendall(c.recv(100).upper()); c.close()
'
client_py='
import os, socket
s = socket.socket(); s.connect(("127.0.0.1", 7401)); s.sendall(b"ping")
print(os.read(s.fileno(), 100).decode()); s.close()
r = socket.socket()
try: r.connect(("127.0.0.1", 7499))
except OSError as e: print(e.errno)
'
spawn pysrv 30 bin/usockrun --net "$net" --trace "$tr" -- python3 -c "$server_py"
if wait_for 10 "python listening on 7401 (user space)" usock_listens t7401; then
  out=$(timeout 20 bin/usockrun --net "$net" --trace "$tr" -- python3 -c "$client_py" 2>&1)
  reap pysrv
  check "the client ran" "output: $out" [ "$(head -n1 <<< "$out")" = PING ]
fi
stop pysrv
has() { grep -qE "$1" "$tr"; }
check "bind with its address decoded" "$(head -c 600 "$tr")" \
  has '^\[[0-9]+\] bind\([0-9]+, \{AF_INET 127\.0\.0\.1:7401\}, 16\) = 0$'
check "listen" "$(head -c 600 "$tr")" has '^\[[0-9]+\] listen\([0-9]+, 1\) = 0$'
check "accept with the peer's address" "$(head -c 900 "$tr")" \
  has '^\[[0-9]+\] accept4?\([0-9]+, \{AF_INET 127\.0\.0\.1:[0-9]+\}, \[16\](, [0-9]+)?\) = [0-9]+$'
check "connect" "$(head -c 900 "$tr")" has '^\[[0-9]+\] connect\([0-9]+, \{AF_INET 127\.0\.0\.1:7401\}, 16\) = 0$'
check "read() shows as read, with its result" "$(grep read "$tr")" has '^\[[0-9]+\] read\([0-9]+, 0x[0-9a-f]+, 100\) = 4$'
check "an error shows by name and message" "$(grep 7499 "$tr")" \
  has '^\[[0-9]+\] connect\([0-9]+, \{AF_INET 127\.0\.0\.1:7499\}, 16\) = -1 ECONNREFUSED \(Connection refused\)$'
npids=$(sed -n 's/^\[\([0-9]*\)\].*/\1/p' "$tr" | sort -u | wc -l)
check "two processes wrote to one file" "$npids pids" [ "$npids" -ge 2 ]
check "every line is whole" "$(grep -vE '^\[[0-9]+\] [a-z0-9_]+\(.*\) = -?[0-9]+( E[A-Z0-9]+ \(.*\))?$' "$tr" | head -3)" \
  not grep -qvE '^\[[0-9]+\] [a-z0-9_]+\(.*\) = -?[0-9]+( E[A-Z0-9]+ \(.*\))?$' "$tr"

err=$(bin/usockrun --net "$net" -- python3 -c 'import socket; socket.socket().close()' 2>&1)
check "off: nothing is written" "stderr: $err" [ -z "$err" ]
err=$(bin/usockrun --net "$net" --trace - -- python3 -c 'import socket; socket.socket().close()' 2>&1)
check "--trace -: to the program's stderr" "stderr: $err" grep -qE '^\[[0-9]+\] close\([0-9]+\) = 0$' <<< "$err"
# A program that puts a file of its own at fd 2 (here a pipe's write end,
# as a daemon does whose closed stderr number is reused): the trace goes to the copy of stderr taken
# when tracing began, never into that file.
reuse_py='
import os, socket
socket.socket().close()
r, w = os.pipe()
os.dup2(w, 2)
os.close(w)
socket.socket().close()
os.close(2)
print(repr(os.read(r, 1000)))
'
out=$(bin/usockrun --net "$net" --trace "$work/reuse.log" -- python3 -c "$reuse_py" 2>/dev/null)
check "a file that took fd 2 gets none of the trace" "the pipe read: $out" [ "$out" = "b''" ]
check "the trace went on to the file" "$(cat "$work/reuse.log" 2>&1 | head -c 300)" \
  grep -qE '^\[[0-9]+\] close\([0-9]+\) = 0$' "$work/reuse.log"
out=$(bin/usockrun --net "$net" --trace - -- python3 -c "$reuse_py" 2>/dev/null)
check "with --trace -, the same: the copy of stderr, not fd 2" "the pipe read: $out" [ "$out" = "b''" ]
summary

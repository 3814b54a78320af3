#!/usr/bin/env bash
# fork and exec under bin/usockrun (README, "fork and exec"): unmodified
# python3 programs on one user-space network (a fresh directory).
#  1. os.fork(): the child closes its copies of a listener and a connection;
#     the parent's connection goes on, and its listener still accepts,
#     from another process; the socket file is still there; the child
#     printed nothing.
#  2. os.fork(): the child's use of an inherited socket fails with
#     EOPNOTSUPP and one line on stderr naming the fd; the parent's
#     connection is untouched.
#  3. socketserver.ForkingTCPServer fails cleanly: each request's child
#     reports EOPNOTSUPP (the one line, then Python's traceback), the client
#     gets end-of-stream, a reset or EPIPE (no hang, no data), the server
#     survives and takes the next request.
#  4. subprocess with pass_fds: the new program finds an unconnected socket
#     at the fd (ENOTCONN), with one line on stderr; the parent's socket
#     still works.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
RUN=(bin/usockrun --net "$net" --)
need python3 -- "fork and exec under the launcher (every case here is a python3 program)" || { summary; exit; }
inherited_line='^usock: fd [0-9]+ is a user-space socket inherited across fork; only the process that created it can use it \(EOPNOTSUPP\)$'

# 1 and 2 in one program: it prints "ok <what>" or "FAIL <what>" lines.
cat > "$work/forks.py" <<'PY'
import errno, os, socket, subprocess, sys

def check(cond, what):
    print(("ok " if cond else "FAIL ") + what, flush=True)

net = os.environ["USOCK_NET"]
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen()
port = srv.getsockname()[1]
c = socket.create_connection(("127.0.0.1", port))
a, _ = srv.accept()

def child_stderr_to(path):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(fd, 2)
    os.close(fd)

# 1. the child closes its copies
err1 = os.path.join(os.environ["WORK"], "child1.err")
pid = os.fork()
if pid == 0:
    child_stderr_to(err1)
    srv.close(); a.close(); c.close()
    os._exit(0)
_, st = os.waitpid(pid, 0)
check(st == 0, "child closed its copies and exited 0")
c.sendall(b"ping"); got = a.recv(4)
a.sendall(b"pong"); got2 = c.recv(4)
check(got == b"ping" and got2 == b"pong", "parent's connection works both ways after the child's close")
check(os.path.exists(os.path.join(net, "t%d" % port)), "the listener's socket file is still there")
p = subprocess.Popen([sys.executable, "-c",
                      "import socket; s=socket.create_connection(('127.0.0.1',%d)); "
                      "s.sendall(b'hello'); print(s.recv(5).decode())" % port],
                     stdout=subprocess.PIPE, text=True)
k, _ = srv.accept()
# the accepted connection: echo one message
data = k.recv(5); k.sendall(data.upper())
out, _ = p.communicate(timeout=20)
check(data == b"hello" and out.strip() == "HELLO" and p.returncode == 0,
      "the listener still accepts, from another process")
check(open(err1).read() == "", "the child's close printed nothing")
k.close()

# 2. the child uses an inherited socket
err2 = os.path.join(os.environ["WORK"], "child2.err")
pid = os.fork()
if pid == 0:
    child_stderr_to(err2)
    code = 0
    try:
        c.sendall(b"x")
        code = 1
    except OSError as e:
        code = 0 if e.errno == errno.EOPNOTSUPP else 2
    try:
        c.recv(1)
        code = 3
    except OSError as e:
        code = code if e.errno == errno.EOPNOTSUPP else 4
    c.close()
    os._exit(code)
_, st = os.waitpid(pid, 0)
check(os.waitstatus_to_exitcode(st) == 0, "the child's send and recv on an inherited socket fail with EOPNOTSUPP")
lines = open(err2).read().splitlines()
want = ("usock: fd %d is a user-space socket inherited across fork; only the "
        "process that created it can use it (EOPNOTSUPP)" % c.fileno())
check(lines == [want], "one line on the child's stderr names fd %d: %r" % (c.fileno(), lines))
c.sendall(b"still"); got = a.recv(5)
check(got == b"still", "the parent's connection is untouched")
PY

out=$(WORK="$work" timeout 60 "${RUN[@]}" python3 "$work/forks.py" 2>"$work/forks.err" || echo "FAIL exit status $?")
while IFS= read -r l; do
  case $l in ok\ *) ok "os.fork: ${l#ok }" ;; *) bad "os.fork: ${l#FAIL }" ;; esac
done <<< "$out"
check "os.fork: the parent printed nothing on stderr" "$(head -c 500 "$work/forks.err")" not test -s "$work/forks.err"

# 3. ForkingTCPServer
port=7310
cat > "$work/forking.py" <<PY
import socketserver
class H(socketserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.readline().upper())
class S(socketserver.ForkingTCPServer):
    allow_reuse_address = True
with S(("127.0.0.1", $port), H) as s:
    s.serve_forever()
PY
cat > "$work/client.py" <<PY
import socket
s = socket.create_connection(("127.0.0.1", $port), timeout=10)
try:
    s.sendall(b"hello\n")
    print("eof" if s.recv(100) == b"" else "data")
except ConnectionResetError:
    print("reset")
except BrokenPipeError:
    print("epipe")
PY
spawn forking 120 "${RUN[@]}" python3 "$work/forking.py" 2>"$work/forking.err"
if wait_for 10 "ForkingTCPServer listening on user-space port $port" usock_listens "t$port"; then
  r1=$(timeout 20 "${RUN[@]}" python3 "$work/client.py" 2>&1 || true)
  r2=$(timeout 20 "${RUN[@]}" python3 "$work/client.py" 2>&1 || true)
  # The parent's close of its copy is the socket's last close: end-of-stream,
  # or a reset when the request was already in (unread data), as Linux does;
  # a client whose request was not sent yet may find the connection gone
  # (EPIPE). Any of them, but no hang and no data.
  case $r1 in eof|reset|epipe) ok "ForkingTCPServer: the client gets $r1, no hang" ;; *) bad "ForkingTCPServer: client got [$r1]" ;; esac
  case $r2 in eof|reset|epipe) ok "ForkingTCPServer: a second request too ($r2: the server survives)" ;; *) bad "ForkingTCPServer: second client got [$r2]" ;; esac
  check "ForkingTCPServer: the server process is alive" "it ended" alive forking
  # Each child's traceback ends with the OSError line, after its one line:
  # wait until both children got that far (the clients may see the close
  # before the child's stderr is written).
  tracebacks() { [ "$(grep -c "OSError: \[Errno 95\]" "$work/forking.err" || true)" -ge 2 ]; }
  if wait_for 10 "ForkingTCPServer: both children's tracebacks (errno 95) on stderr" tracebacks; then
    ok "ForkingTCPServer: the handler's error is EOPNOTSUPP (errno 95), in both children"
    n=$(grep -cE "$inherited_line" "$work/forking.err" || true)
    check "ForkingTCPServer: each request's child printed the one line ($n)" "$n lines on stderr: $(head -c 800 "$work/forking.err")" [ "$n" = 2 ]
  fi
fi
stop forking

# 4. subprocess with pass_fds: across exec
cat > "$work/execs.py" <<'PY'
import errno, socket, subprocess, sys
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen()
c = socket.create_connection(srv.getsockname()); a, _ = srv.accept()
fd = c.fileno()
prog = ("import errno,os,stat,sys\n"
        "fd=%d\n"
        "assert stat.S_ISSOCK(os.fstat(fd).st_mode), 'not a socket'\n"
        "try:\n os.read(fd,1); sys.exit(3)\n"
        "except OSError as e:\n sys.exit(0 if e.errno==errno.ENOTCONN else 4)\n" % fd)
r = subprocess.run([sys.executable, "-c", prog], pass_fds=(fd,), capture_output=True, text=True, timeout=20)
print("rc", r.returncode)
print("err", r.stderr.strip())
c.sendall(b"after"); print("parent", a.recv(5).decode())
print("fd", fd)
PY
out=$(timeout 60 "${RUN[@]}" python3 "$work/execs.py" 2>&1 || true)
fd=$(sed -n 's/^fd //p' <<< "$out")
check "exec: the new program finds an unconnected socket at fd $fd (ENOTCONN)" "[$out]" \
  [ "$(sed -n 's/^rc //p' <<< "$out")" = 0 ]
check "exec: one line on stderr names fd $fd" "stderr [$out]" \
  [ "$(sed -n 's/^err //p' <<< "$out")" = "usock: fd $fd is a user-space socket and cannot cross exec; the new program gets an unconnected socket there (ENOTCONN)" ]
check "exec: the parent's socket still works" "parent [$out]" grep -q '^parent after$' <<< "$out"

summary

#!/usr/bin/env bash
# Issue 15 with real programs: servers that hand their sockets to forked
# processes, under bin/usockrun with the shared-memory backend
# (USOCK_SHM=1), and the same programs on the kernel as the positive
# control:
#  1. python3's socketserver.ForkingTCPServer: each of 20 connections is
#     served by a new child (the parent accepts and closes its copy), the
#     answers name 20 different pids, every byte checked;
#  2. socat TCP-LISTEN:P,fork: each connection's child writes what it
#     received into a file; two clients, both messages there whole;
#  3. PostgreSQL 15 (a backend process forked per connection, which sets
#     its inherited socket non-blocking: "FATAL: could not set socket to
#     nonblocking mode" without USOCK_SHM): psql's query answered, and
#     pgbench with 8 clients, every transaction processed;
#  4. nginx with Debian's stock nginx.conf (master_process on, workers that
#     switch to www-data or nobody and accept on the master's listeners):
#     that is tests/preload/programs13.sh's nginx case, which make
#     test-preload runs again under USOCK_SHM=1 (programs13-shm).
#  5. systemd-socket-activate -l P: a python3 server that takes its
#     listener from LISTEN_FDS (fd 3, across exec) answers three clients;
#     and with --accept --inetd, cat serves each connection on its stdin
#     and stdout (a fork and an exec per connection);
#  6. gunicorn with 2 workers (forked, accepting on the master's
#     listener): 12 requests, each answered.
# systemd-socket-activate passes on only the variables named with -E: the
# launcher's (LD_PRELOAD, USOCK_*) are named, or the new program would run
# without the library.
#  7. OpenSSH's sshd -D on a high port (its listener inherited across its
#     re-exec per connection, a forked pre-authentication child under a
#     seccomp filter that kills it at any call off its list, a forked
#     session): ssh runs `true`, then sends 2 MB through `sha256sum`,
#     whose sum must be the bytes'.
# Without USOCK_SHM each of 1 and 2 fails under the launcher (the README's
# "fork and exec": a child's use of an inherited socket is EOPNOTSUPP).
set -uo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

[ -f target/release/libuserspacesock.so ] || { echo "build the library first (cargo build --release)"; exit 2; }

mode=""
W=()
WU=()           # the launcher for a server that runs as user postgres
set_mode() {
  mode=$1
  if [ "$mode" = usock ]; then
    W=(env USOCK_SHM=1 "$PWD/bin/usockrun" --net "$net" --)
    WU=(env USOCK_SHM=1 "$PWD/bin/usockrun" --net "$net" --user postgres --)
  else
    W=()
    WU=()
  fi
}
listening() {
  if [ "$mode" = usock ]; then usock_listens "t$1"; else kernel_listens tcp "$1"; fi
}
free_port() {
  python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
run() { local secs=$1; shift; timeout -k 5 "$secs" "${W[@]}" "$@"; }

cat > "$work/forking.py" <<'EOF'
import os, socketserver, sys
class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        data = b""
        while not data.endswith(b"\n"):
            chunk = self.request.recv(65536)
            if not chunk:
                return
            data += chunk
        self.request.sendall(b"%d " % os.getpid() + data[::-1][1:] + b"\n")
class Server(socketserver.ForkingTCPServer):
    allow_reuse_address = True
Server(("127.0.0.1", int(sys.argv[1])), Echo).serve_forever()
EOF
cat > "$work/clients.py" <<'EOF'
import random, socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
pids = set()
for i in range(n):
    msg = bytes(random.choice(b"abcdefgh") for _ in range(1000 + 997 * i))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        c.sendall(msg + b"\n")
        got = b""
        while not got.endswith(b"\n"):
            chunk = c.recv(65536)
            if not chunk:
                sys.exit("connection %d: end-of-stream after %d bytes" % (i, len(got)))
            got += chunk
    pid, _, body = got[:-1].partition(b" ")
    if body != msg[::-1]:
        sys.exit("connection %d: the answer differs from the message reversed" % i)
    pids.add(pid)
print(len(pids))
EOF

forking_case() {
  local port out rc
  port=$(free_port)
  spawn "forking-$mode" 60 "${W[@]}" python3 "$work/forking.py" "$port"
  if wait_for 15 "ForkingTCPServer ($mode) listening on $port" listening "$port"; then
    rc=0
    out=$(run 60 python3 "$work/clients.py" "$port" 20 2>&1) || rc=$?
    check "ForkingTCPServer ($mode): 20 connections, each answered whole by its own child" \
      "exit $rc: $out" [ "$rc/$out" = 0/20 ]
  fi
  stop "forking-$mode"
}

socat_case() {
  local port out rc f="$work/socat-$mode.out"
  port=$(free_port)
  : > "$f"
  spawn "socat-$mode" 60 "${W[@]}" socat -u "TCP-LISTEN:$port,fork,reuseaddr" "OPEN:$f,creat,append"
  if wait_for 15 "socat fork server ($mode) listening on $port" listening "$port"; then
    rc=0
    for msg in first-message second-message; do
      printf '%s\n' "$msg" | run 20 socat -u - "TCP:127.0.0.1:$port" || rc=$?
    done
    # Each connection's child appends and ends; give the second a moment.
    wait_for 10 "socat ($mode): both children wrote" grep -q second-message "$f"
    out=$(sort "$f" | tr '\n' ' ')
    check "socat TCP-LISTEN,fork ($mode): two connections, each child's bytes in the file" \
      "clients exit $rc, file: $out" [ "$rc/$out" = "0/first-message second-message " ]
  fi
  stop "socat-$mode"
}

pg=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
postgres_case() {
  local port out rc d="$work/pg-$mode"
  port=$(free_port)
  # postgres must reach its directory (the work directory is root's 0700).
  chmod o+x "$work"
  mkdir -p "$d" && chown postgres "$d"
  if ! runuser -u postgres -- "$pg/initdb" -D "$d/data" -A trust -U postgres > "$d/initdb.log" 2>&1; then
    bad "PostgreSQL ($mode): initdb failed: $(tail -n2 "$d/initdb.log")"; return
  fi
  spawn "postgres-$mode" 120 "${WU[@]}" runuser -u postgres -- "$pg/postgres" -D "$d/data" -p "$port" \
    -c listen_addresses=127.0.0.1 -c unix_socket_directories="$d" > "$d/server.log" 2>&1
  if wait_for 30 "PostgreSQL ($mode) listening on $port" listening "$port"; then
    rc=0
    out=$(timeout -k 5 30 "${WU[@]}" "$pg/psql" -h 127.0.0.1 -p "$port" -U postgres -At \
      -c "select 6 * 7, count(*) > 100 from pg_class" 2>&1) || rc=$?
    check "PostgreSQL ($mode): psql over TCP, answered by a forked backend" \
      "exit $rc: $out" [ "$rc/$out" = "0/42|t" ]
    rc=0
    out=$( { timeout -k 5 60 "${WU[@]}" "$pg/pgbench" -h 127.0.0.1 -p "$port" -U postgres -i -s 1 postgres &&
             timeout -k 5 120 "${WU[@]}" "$pg/pgbench" -h 127.0.0.1 -p "$port" -U postgres -c 8 -j 2 -t 100 postgres; } 2>&1) || rc=$?
    check "PostgreSQL ($mode): pgbench, 8 clients, every transaction processed" \
      "exit $rc: $(grep -E 'processed|failed|FATAL|error' <<< "$out" | head -n3)" \
      grep -q 'actually processed: 800/800' <<< "$out"
  fi
  stop "postgres-$mode"
  grep -h -m3 -E 'FATAL|PANIC' "$d/server.log" 2>/dev/null | sed 's/^/#    postgres: /'
}

cat > "$work/activated.py" <<'EOF'
import os, socket
assert os.environ.get("LISTEN_FDS") == "1", os.environ.get("LISTEN_FDS")
l = socket.socket(fileno=3)
for _ in range(3):
    c, _ = l.accept()
    data = b""
    while not data.endswith(b"\n"):
        chunk = c.recv(65536)
        if not chunk:
            break
        data += chunk
    c.sendall(b"%d " % os.getpid() + data[::-1][1:] + b"\n")
    c.close()
EOF
activate_case() {
  local port out rc=0 want="" i
  local keep_env=(-E LD_PRELOAD -E USOCK_NET -E USOCK_SHM -E USOCK_ROUTE -E USOCK_NET_USERS)
  port=$(free_port)
  spawn "activate-$mode" 60 "${W[@]}" systemd-socket-activate "${keep_env[@]}" -l "127.0.0.1:$port" \
    python3 "$work/activated.py"
  if wait_for 15 "systemd-socket-activate ($mode) listening on $port" listening "$port"; then
    out=""
    for i in 1 2 3; do
      out+="$(printf 'message-%d\n' "$i" | run 20 socat -t 5 - "TCP:127.0.0.1:$port" | cut -d' ' -f2) " || rc=$?
      want+="$(printf 'message-%d' "$i" | rev) "
    done
    check "systemd-socket-activate ($mode): a program that took its listener from LISTEN_FDS answers 3 clients" \
      "exit $rc: [$out]" [ "$rc/$out" = "0/$want" ]
  fi
  stop "activate-$mode"
  port=$(free_port)
  spawn "inetd-$mode" 60 "${W[@]}" systemd-socket-activate "${keep_env[@]}" --accept --inetd -l "127.0.0.1:$port" cat
  if wait_for 15 "systemd-socket-activate --inetd ($mode) listening on $port" listening "$port"; then
    rc=0
    out=$(for i in 1 2; do printf 'line-%d\n' "$i" | run 20 socat -t 5 - "TCP:127.0.0.1:$port"; done | tr '\n' ' ') || rc=$?
    check "systemd-socket-activate --accept --inetd ($mode): cat serves each connection on stdin and stdout" \
      "exit $rc: [$out]" [ "$rc/$out" = "0/line-1 line-2 " ]
  fi
  stop "inetd-$mode"
}

cat > "$work/wsgi_app.py" <<'EOF'
import os
def app(environ, start_response):
    body = b"%d %s\n" % (os.getpid(), environ.get("QUERY_STRING", "").encode())
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
EOF
gunicorn_case() {
  local port out rc=0 i bad=""
  port=$(free_port)
  spawn "gunicorn-$mode" 60 "${W[@]}" gunicorn --log-level warning -w 2 -b "127.0.0.1:$port" --chdir "$work" wsgi_app:app
  if wait_for 20 "gunicorn ($mode) listening on $port" listening "$port"; then
    out=""
    for i in $(seq 1 12); do
      out+="$(run 20 curl -s "http://127.0.0.1:$port/?n=$i")"$'\n' || rc=$?
    done
    for i in $(seq 1 12); do grep -q " n=$i\$" <<< "$out" || bad+=" $i"; done
    check "gunicorn ($mode): 12 requests through 2 forked workers, each answered" \
      "exit $rc, unanswered:${bad:- none}" [ "$rc/$bad" = "0/" ]
  fi
  stop "gunicorn-$mode"
}

sshd_case() {
  local port out rc d="$work/ssh-$mode" want
  port=$(free_port)
  mkdir -p "$d" /run/sshd
  ssh-keygen -q -t ed25519 -N '' -f "$d/host" && ssh-keygen -q -t ed25519 -N '' -f "$d/client" ||
    { bad "sshd ($mode): ssh-keygen failed"; return; }
  cp "$d/client.pub" "$d/authorized_keys"
  printf '%s\n' "Port $port" "ListenAddress 127.0.0.1" "HostKey $d/host" \
    "AuthorizedKeysFile $d/authorized_keys" "PidFile $d/sshd.pid" "UsePAM no" "StrictModes no" \
    "PermitRootLogin prohibit-password" > "$d/sshd_config"
  spawn "sshd-$mode" 60 "${W[@]}" /usr/sbin/sshd -D -e -f "$d/sshd_config" 2> "$d/sshd.log"
  if wait_for 15 "sshd ($mode) listening on $port" listening "$port"; then
    local ssh=(ssh -p "$port" -i "$d/client" -o BatchMode=yes -o StrictHostKeyChecking=no
               -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR "$(id -un)@127.0.0.1")
    rc=0
    out=$(run 30 "${ssh[@]}" true 2>&1) || rc=$?
    check "sshd ($mode): ssh runs true (key exchange in the sandboxed pre-authentication child)" \
      "exit $rc: [$out] sshd: $(tail -n2 "$d/sshd.log" | tr "\n" " ")" [ "$rc/$out" = "0/" ]
    head -c 2000000 /dev/urandom > "$d/data"
    want=$(sha256sum < "$d/data" | cut -d' ' -f1)
    rc=0
    out=$(run 60 "${ssh[@]}" sha256sum < "$d/data" 2>&1 | cut -d' ' -f1) || rc=$?
    check "sshd ($mode): 2 MB through ssh into sha256sum, every byte" \
      "exit $rc: got [$out], want $want" [ "$rc/$out" = "0/$want" ]
  fi
  stop "sshd-$mode"
}

for m in kernel usock; do
  set_mode "$m"
  echo "== $m"
  if need python3 -- "ForkingTCPServer ($m)"; then forking_case; fi
  if need socat -- "socat TCP-LISTEN,fork ($m)"; then socat_case; fi
  if need systemd-socket-activate python3 socat cat -- "systemd-socket-activate ($m)"; then activate_case; fi
  if need gunicorn curl -- "gunicorn ($m)"; then gunicorn_case; fi
  if [ -x /usr/sbin/sshd ]; then
    if need ssh ssh-keygen -- "sshd ($m)"; then sshd_case; fi
  else
    skip openssh-server "sshd ($m): no /usr/sbin/sshd (Debian's openssh-server)"
  fi
  if [ -n "$pg" ] && id postgres > /dev/null 2>&1; then
    if need runuser -- "PostgreSQL ($m)"; then postgres_case; fi
  else
    skip postgresql "PostgreSQL ($m): no server binaries or no postgres user (Debian's postgresql)"
  fi
done
summary

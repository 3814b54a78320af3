#!/usr/bin/env bash
# Issue 13's "done when", with real programs. Each runs twice: on the
# kernel (no launcher: the positive control, which must pass) and under
# bin/usockrun, every process of it on one user-space network.
#  1. nginx with Debian's stock /etc/nginx/nginx.conf, changed only in its
#     paths and ports (tcp_nopush and sendfile on; the stock site's
#     `listen P; listen [::]:P`): a small and a 300 kB file over IPv4 and
#     IPv6, equal; and $tcpinfo_rtt (from TCP_INFO) a positive number.
#  2. redis-server with its built-in default `bind * -::*`: PONG over IPv4
#     and IPv6.
#  3. haproxy in front of a server whose listen backlog is 5 (python3's
#     http.server), with a second server on a closed port: the health check
#     says that one is DOWN with L4CON (connect() refused), and 20
#     concurrent clients each get the whole 300 kB file (no truncated
#     response).
#  4. lighttpd under ab without keep-alive: 2000 requests, 10 at a time,
#     none failed, none stuck (ab -s 10).
#  5. `ip link show` and `ss -ltn`: netlink (AF_NETLINK) sockets work under
#     the launcher as on the kernel.
# nginx's master hands its listeners to fork children, which the
# shared-memory backend (the default for TCP) carries (issue 15); with
# USOCK_SHM=0 (xproc's own streams) case 1 fails.
# Servers are waited for by readiness (their listening socket), never by a
# fixed sleep; every program is bounded by timeout(1).
set -uo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

[ -f target/release/libuserspacesock.so ] || { echo "build the library first (cargo build --release)"; exit 2; }

mode=""         # kernel | usock
W=()            # the launcher (empty on the kernel)
set_mode() {
  mode=$1
  if [ "$mode" = usock ]; then W=("$PWD/bin/usockrun" --net "$net" --); else W=(); fi
}
# listening PORT: the server's TCP port is open, on the kernel or in $net.
listening() {
  if [ "$mode" = usock ]; then usock_listens "t$1"; else kernel_listens tcp "$1"; fi
}
# free_port: a TCP port free on the kernel in both families now (the
# user-space network has its own ports: any number is free there).
free_port() {
  python3 -c 'import socket
s = socket.socket(socket.AF_INET6); s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", 0)); print(s.getsockname()[1])'
}
# run SECONDS CMD...: CMD in the current mode, in the foreground.
run() { local secs=$1; shift; timeout -k 5 "$secs" "${W[@]}" "$@"; }

head -c 300000 /dev/urandom > "$work/big.bin"
want=$(sha256sum < "$work/big.bin" | cut -d' ' -f1)

# 1. nginx ------------------------------------------------------------------
nginx_case() {
  local d="$work/nginx-$mode" port rtt_port out rc
  port=$(free_port); rtt_port=$(free_port)
  mkdir -p "$d/html" "$d/sites"
  chmod 755 "$work" "$d" "$d/html"
  cp "$work/big.bin" "$d/html/big.bin"
  echo "nginx under issue 13" > "$d/html/index.html"
  chmod 644 "$d/html/"*
  # the stock configuration; only paths (pid, logs, the site directory)
  # change
  sed -e "s|^pid .*|pid $d/nginx.pid;|" \
      -e "s|^error_log .*|error_log $d/error.log;|" \
      -e "s|access_log .*;|access_log $d/access.log;|" \
      -e "s|include /etc/nginx/sites-enabled/\*;|include $d/sites/*;|" \
      /etc/nginx/nginx.conf > "$d/nginx.conf"
  # the stock default site; only its port and root change
  sed -e "s|listen 80 default_server;|listen $port default_server;|" \
      -e "s|listen \[::\]:80 default_server;|listen [::]:$port default_server;|" \
      -e "s|root /var/www/html;|root $d/html;|" \
      /etc/nginx/sites-available/default > "$d/sites/default"
  # and a site of ours that reports TCP_INFO's round-trip time
  cat > "$d/sites/tcpinfo" <<CONF
server { listen 127.0.0.1:$rtt_port; location / { return 200 "\$tcpinfo_rtt\n"; } }
CONF
  if ! grep -q "listen \[::\]:$port default_server;" "$d/sites/default" ||
     ! grep -q '^[[:space:]]*tcp_nopush on;' "$d/nginx.conf"; then
    bad "nginx ($mode): the stock configuration is not as expected"; return
  fi
  spawn "nginx-$mode" 120 "${W[@]}" nginx -c "$d/nginx.conf" -g 'daemon off;' > "$d/nginx.out" 2>&1
  if wait_for 15 "nginx ($mode) listening on $port" listening "$port"; then
    for host in 127.0.0.1 '[::1]'; do
      rc=0
      out=$(run 20 curl -sS -g "http://$host:$port/" 2>&1) || rc=$?
      check "nginx ($mode): index.html over $host" "curl exit $rc: $out" \
        [ "$out" = "nginx under issue 13" ]
      rc=0
      run 20 curl -sS -g -o "$d/dl.bin" "http://$host:$port/big.bin" 2>"$d/curl.err" || rc=$?
      got=$({ sha256sum < "$d/dl.bin" | cut -d' ' -f1; } 2>/dev/null)
      check "nginx ($mode): 300 kB with sendfile and tcp_nopush over $host, equal" \
        "curl exit $rc ($(head -c 200 "$d/curl.err")), $(stat -c %s "$d/dl.bin" 2>/dev/null || echo 0) bytes" \
        [ "$got" = "$want" ]
      rm -f "$d/dl.bin"
    done
    rc=0
    out=$(run 20 curl -sS "http://127.0.0.1:$rtt_port/" 2>&1) || rc=$?
    check "nginx ($mode): \$tcpinfo_rtt is a positive number of microseconds" \
      "curl exit $rc, got '$out'" grep -qE '^[1-9][0-9]*$' <<< "$out"
  fi
  stop "nginx-$mode"
  grep -h -m3 -E 'emerg|crit|alert' "$d/error.log" "$d/nginx.out" 2>/dev/null | sed 's/^/#    nginx: /'
}

# 2. redis ------------------------------------------------------------------
redis_case() {
  local port rc out log="$work/redis-$mode.log"
  port=$(free_port)
  # no configuration file: the built-in default, bind * -::*
  spawn "redis-$mode" 60 "${W[@]}" redis-server --port "$port" --save "" --appendonly no \
    --logfile "$log" > /dev/null 2>&1
  if wait_for 15 "redis-server ($mode) listening on $port" listening "$port"; then
    for host in 127.0.0.1 ::1; do
      rc=0
      out=$(run 10 redis-cli -h "$host" -p "$port" ping 2>&1) || rc=$?
      check "redis-server ($mode) with bind * -::*: PING over $host" "exit $rc: $out" \
        [ "$out" = PONG ]
    done
  else
    grep -m3 -iE 'warning|error|could not' "$log" 2>/dev/null | sed 's/^/#    redis: /'
  fi
  stop "redis-$mode"
}

# 3. haproxy ----------------------------------------------------------------
haproxy_case() {
  local d="$work/haproxy-$mode" fe be dead stat rc i fails=0
  fe=$(free_port); be=$(free_port); dead=$(free_port)
  mkdir -p "$d/www"
  cp "$work/big.bin" "$d/www/big.bin"
  # python3's http.server listens with a backlog of 5
  # (socketserver.TCPServer.request_queue_size)
  python3 -c 'import socketserver; assert socketserver.TCPServer.request_queue_size == 5' ||
    { bad "haproxy ($mode): python3's http.server backlog is not 5"; return; }
  (cd "$d/www" && exec timeout -k 10 120 "${W[@]}" python3 -m http.server "$be" --bind 127.0.0.1 \
     > "$d/backend.log" 2>&1) &
  pids["backend-$mode"]=$!
  cat > "$d/haproxy.cfg" <<CONF
global
  maxconn 200
  stats socket $d/stats.sock mode 600 level admin
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  retries 3
  option redispatch
frontend fe
  bind 127.0.0.1:$fe
  default_backend be
backend be
  balance roundrobin
  server live 127.0.0.1:$be check inter 300
  server dead 127.0.0.1:$dead check inter 300
CONF
  if ! wait_for 15 "the haproxy backend ($mode) listening on $be" listening "$be"; then
    stop "backend-$mode"; return
  fi
  spawn "haproxy-$mode" 120 "${W[@]}" haproxy -db -f "$d/haproxy.cfg" > "$d/haproxy.out" 2>&1
  if wait_for 15 "haproxy ($mode) listening on $fe" listening "$fe"; then
    # the health check of the closed port: DOWN, L4CON (connection refused)
    srv_state() {
      stat=$(echo "show stat" | timeout 5 socat - "UNIX-CONNECT:$d/stats.sock" 2>/dev/null |
             awk -F, '$1 == "be" && $2 == "dead" { print $18 "/" $37 }')
      [ "${stat%%/*}" = DOWN ]
    }
    if wait_for 15 "haproxy ($mode): the check of the closed port saying DOWN" srv_state; then
      check "haproxy ($mode): the closed port's check fails with L4CON (connect() says ECONNREFUSED)" \
        "status/check '$stat'" [ "${stat#*/}" = L4CON ]
    fi
    # 20 concurrent clients, each the whole file
    local clients=()
    for i in $(seq 20); do
      run 60 curl -sS -o "$d/dl.$i" "http://127.0.0.1:$fe/big.bin" 2>"$d/curl.$i.err" &
      clients+=($!)
    done
    for i in "${clients[@]}"; do wait "$i" 2>/dev/null; done
    for i in $(seq 20); do
      [ "$({ sha256sum < "$d/dl.$i" | cut -d' ' -f1; } 2>/dev/null)" = "$want" ] || fails=$((fails + 1))
    done
    check "haproxy ($mode): 20 concurrent clients through haproxy to a backlog-5 server, every response whole" \
      "$fails of 20 truncated or failed (sizes: $(stat -c %s "$d"/dl.* 2>/dev/null | sort | uniq -c | tr '\n' ' '); $(cat "$d"/curl.*.err 2>/dev/null | sort | uniq -c | head -3 | tr '\n' ' '))" \
      [ "$fails" = 0 ]
  fi
  stop "haproxy-$mode"
  stop "backend-$mode"
  grep -h -m3 -iE 'alert|error' "$d/haproxy.out" 2>/dev/null | sed 's/^/#    haproxy: /'
}

# 4. lighttpd under ab --------------------------------------------------------
lighttpd_case() {
  local d="$work/lighttpd-$mode" port rc out
  port=$(free_port)
  mkdir -p "$d/www"
  head -c 20000 /dev/urandom > "$d/www/f.bin"
  cat > "$d/lighttpd.conf" <<CONF
server.document-root = "$d/www"
server.port = $port
server.bind = "127.0.0.1"
server.errorlog = "$d/error.log"
server.pid-file = "$d/lighttpd.pid"
CONF
  spawn "lighttpd-$mode" 120 "${W[@]}" lighttpd -D -f "$d/lighttpd.conf" > "$d/lighttpd.out" 2>&1
  if wait_for 15 "lighttpd ($mode) listening on $port" listening "$port"; then
    rc=0
    # no -k: a new connection for each request; -s 10: a response that
    # does not come within 10 s is a stuck connection (ab gives up, fails)
    out=$(run 100 ab -q -n 2000 -c 10 -s 10 "http://127.0.0.1:$port/f.bin" 2>&1) || rc=$?
    local complete failed non2xx
    complete=$(awk '/^Complete requests:/ { print $3 }' <<< "$out")
    failed=$(awk '/^Failed requests:/ { print $3 }' <<< "$out")
    non2xx=$(awk '/^Non-2xx responses:/ { print $3 }' <<< "$out")
    check "lighttpd ($mode) under ab -n 2000 -c 10 without keep-alive: all complete, none failed or stuck" \
      "ab exit $rc, complete '${complete:-}', failed '${failed:-}', non-2xx '${non2xx:-0}': $(tail -n 3 <<< "$out" | tr '\n' ' ')" \
      [ "$rc.${complete:-}.${failed:-}.${non2xx:-0}" = "0.2000.0.0" ]
  fi
  stop "lighttpd-$mode"
}

# 5. ip and ss --------------------------------------------------------------------
netlink_case() {
  local rc out
  rc=0
  out=$(run 20 ip link show 2>&1) || rc=$?
  check "ip link show ($mode): lists lo" "exit $rc: $(head -c 300 <<< "$out")" \
    grep -qE '^[0-9]+: lo: ' <<< "$out"
  rc=0
  out=$(run 20 ss -ltn 2>&1) || rc=$?
  check "ss -ltn ($mode): runs and prints its table" "exit $rc: $(head -c 300 <<< "$out")" \
    grep -qE '^State +Recv-Q +Send-Q' <<< "$out"
}

for m in kernel usock; do
  set_mode "$m"
  echo "== $m"
  if need nginx curl -- "nginx with the stock nginx.conf ($m)"; then nginx_case; fi
  if need redis-server redis-cli -- "redis-server with bind * -::* ($m)"; then redis_case; fi
  if need haproxy python3 socat curl -- "haproxy before a backlog-5 server ($m)"; then haproxy_case; fi
  if need lighttpd ab -- "lighttpd under ab ($m)"; then lighttpd_case; fi
  if need ip ss -- "ip link show and ss -ltn ($m)"; then netlink_case; fi
done
summary

#!/usr/bin/env bash
# Unmodified Debian programs under bin/usockrun, both ends in user space on
# one user-space network (a fresh directory); checks results, and that the
# kernel saw no AF_INET socket (strace) and no listening TCP port (ss).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
RUN="bin/usockrun --net"
st() { strace -f -qq -e trace=socket -o "$work/$1.strace" "${@:2}"; }
no_inet() { ! grep -h 'socket(AF_INET' "$work"/*.strace >/dev/null 2>&1; }

# 1. nc -> nc: 50 MB, checksum equal
head -c 50000000 /dev/urandom > "$work/big.bin"
want=$(sha256sum < "$work/big.bin")
(st ncl timeout 60 $RUN "$net" -- nc -l 127.0.0.1 7000 > "$work/recv.bin") &
sleep 0.5
st nc timeout 60 $RUN "$net" -- nc -N 127.0.0.1 7000 < "$work/big.bin"
wait
[ "$(sha256sum < "$work/recv.bin")" = "$want" ] && ok "nc: 50 MB across, checksum equal" || bad "nc: checksum"

# 2. socat: a UDP exchange
(st socatr timeout 20 $RUN "$net" -- socat -u UDP-RECV:7001,bind=127.0.0.1 OPEN:"$work/udp.out",creat,trunc) &
sleep 0.5
echo "datagram through socat" | st socats timeout 10 $RUN "$net" -- socat -u STDIN UDP-SENDTO:127.0.0.1:7001
sleep 0.5
kill %1 2>/dev/null || true
wait 2>/dev/null || true
grep -q "datagram through socat" "$work/udp.out" && ok "socat: UDP datagram across" || bad "socat: UDP"

# 3. python3 -m http.server and curl: a download with checksum, a 404
mkdir -p "$work/www" && cp "$work/big.bin" "$work/www/"
(cd "$work/www" && st http timeout 60 "$OLDPWD/bin/usockrun" --net "$net" -- python3 -m http.server 8000 --bind 127.0.0.1 >/dev/null 2>&1) &
for _ in $(seq 50); do [ -S "$net/t8000" ] && break; sleep 0.1; done
code=$(st curl timeout 30 $RUN "$net" -- curl -s -o "$work/dl.bin" -w '%{http_code}' http://127.0.0.1:8000/big.bin || true)
[ "$code" = 200 ] && [ "$(sha256sum < "$work/dl.bin")" = "$want" ] && ok "curl <- http.server: 50 MB, checksum equal" || bad "curl download ($code)"
code=$(st curl404 timeout 30 $RUN "$net" -- curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8000/missing || true)
[ "$code" = 404 ] && ok "curl <- http.server: 404" || bad "curl 404 ($code)"
# the kernel has no listening TCP port of theirs while the server runs
if ss -ltn | grep -q ':8000 '; then bad "ss shows port 8000"; else ok "ss -ltn: no port 8000 on the kernel"; fi
kill %1 2>/dev/null || true
wait 2>/dev/null || true

# 4. one program reaching a kernel server outside user space by a rule
(timeout 20 nc -l 127.0.0.1 7002 > "$work/kernel.out") &
sleep 0.5
echo "to the kernel" | timeout 10 bin/usockrun --net "$net" --route "kernel 127.0.0.1:7002" -- nc -N 127.0.0.1 7002
wait
grep -q "to the kernel" "$work/kernel.out" && ok "a rule routes one address to a kernel server" || bad "kernel route"

no_inet && ok "strace: no AF_INET socket from the programs under usockrun" || bad "strace saw an AF_INET socket"

# 5. redis-server with redis-cli and redis-benchmark (figures against the
# kernel's loopback in the same run are printed, not asserted)
if command -v redis-server >/dev/null; then
  (timeout 120 $RUN "$net" -- redis-server --port 6390 --save "" --appendonly no --bind 127.0.0.1 >/dev/null 2>&1) &
  for _ in $(seq 50); do [ -S "$net/t6390" ] && break; sleep 0.1; done
  timeout 10 $RUN "$net" -- redis-cli -p 6390 SET greeting hello >/dev/null
  [ "$(timeout 10 $RUN "$net" -- redis-cli -p 6390 GET greeting)" = hello ] && ok "redis-cli SET/GET" || bad "redis-cli"
  u=$(timeout 120 $RUN "$net" -- redis-benchmark -p 6390 -q -n 100000 -c 50 -t set,get 2>/dev/null | tr '\r' '\n' | grep 'requests per second' | tr '\n' ' ' || true)
  [ -n "$u" ] && ok "redis-benchmark -n 100000 -c 50 completed" || bad "redis-benchmark"
  kill %1 2>/dev/null || true; wait 2>/dev/null || true
  (timeout 120 redis-server --port 6391 --save "" --appendonly no --bind 127.0.0.1 >/dev/null 2>&1) &
  sleep 1
  k=$(timeout 120 redis-benchmark -p 6391 -q -n 100000 -c 50 -t set,get 2>/dev/null | tr '\r' '\n' | grep 'requests per second' | tr '\n' ' ' || true)
  kill %1 2>/dev/null || true; wait 2>/dev/null || true
  echo "#    redis-benchmark user space: $u"
  echo "#    redis-benchmark kernel:     $k"
fi

# 6. nginx serving a static file to curl and wrk
if command -v nginx >/dev/null && command -v wrk >/dev/null; then
  mkdir -p "$work/ngx/html" "$work/ngx/logs"
  head -c 100000 /dev/urandom > "$work/ngx/html/f.bin"
  ngx_conf() { cat > "$work/ngx/$1.conf" <<CONF
worker_processes 1; daemon off; master_process off; pid $work/ngx/$1.pid;
error_log $work/ngx/logs/$1.log;
events { worker_connections 1024; }
http { access_log off; server { listen 127.0.0.1:$2; root $work/ngx/html; } }
CONF
  }
  ngx_conf u 8088; ngx_conf k 8089
  (timeout 120 $RUN "$net" -- nginx -c "$work/ngx/u.conf" -p "$work/ngx" >/dev/null 2>&1) &
  for _ in $(seq 50); do [ -S "$net/t8088" ] && break; sleep 0.1; done
  timeout 10 $RUN "$net" -- curl -s -o "$work/ngx.dl" http://127.0.0.1:8088/f.bin || true
  cmp -s "$work/ngx.dl" "$work/ngx/html/f.bin" && ok "nginx -> curl: file equal" || bad "nginx curl"
  u=$(timeout 30 $RUN "$net" -- wrk -t2 -c50 -d5s http://127.0.0.1:8088/f.bin 2>/dev/null | awk '/Requests\/sec/{print $2}' || true)
  [ -n "$u" ] && ok "wrk -t2 -c50 -d5s against nginx completed" || bad "wrk"
  kill %1 2>/dev/null || true; wait 2>/dev/null || true
  (timeout 120 nginx -c "$work/ngx/k.conf" -p "$work/ngx" >/dev/null 2>&1) &
  sleep 1
  k=$(timeout 30 wrk -t2 -c50 -d5s http://127.0.0.1:8089/f.bin 2>/dev/null | awk '/Requests\/sec/{print $2}' || true)
  kill %1 2>/dev/null || true; wait 2>/dev/null || true
  echo "#    wrk requests/s user space: $u  kernel: $k"
fi

# 7. iperf3 over TCP and UDP (UDP at 1 Gbit/s, where loss must stay low:
# the kernel's loopback loses nothing at that rate either)
if command -v iperf3 >/dev/null; then
  for mode in tcp udp; do
    flag=""; [ $mode = udp ] && flag="-u -b 1G -l 32768"
    (timeout 60 $RUN "$net" -- iperf3 -s -p 5299 -1 >/dev/null 2>&1) &
    for _ in $(seq 50); do [ -S "$net/t5299" ] && break; sleep 0.1; done
    line=$(timeout 30 $RUN "$net" -- iperf3 -c 127.0.0.1 -p 5299 -t 3 $flag 2>/dev/null | grep receiver || true)
    u=$(echo "$line" | awk '{print $7, $8}')
    wait 2>/dev/null || true
    [ -n "$u" ] && ok "iperf3 $mode completed" || bad "iperf3 $mode"
    if [ $mode = udp ] && [ -n "$line" ]; then
      # "... 6/5725 (0.1%) receiver": the lost fraction, under 10 %
      lost=$(echo "$line" | sed -n 's/.*(\([0-9.e+-]*\)%).*/\1/p')
      u="$u, ${lost}% lost"
      awk -v l="${lost:-100}" 'BEGIN { exit !(l < 10) }' && ok "iperf3 udp at 1 Gbit/s lost ${lost}% (< 10%)" || bad "iperf3 udp lost ${lost}%"
    fi
    (timeout 60 iperf3 -s -p 5298 -1 >/dev/null 2>&1) &
    sleep 0.5
    k=$(timeout 30 iperf3 -c 127.0.0.1 -p 5298 -t 3 $flag 2>/dev/null | awk '/receiver/{print $7, $8}' || true)
    wait 2>/dev/null || true
    echo "#    iperf3 $mode user space: $u  kernel: $k"
  done
fi
summary

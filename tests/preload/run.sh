#!/usr/bin/env bash
# Unmodified Debian programs under bin/usockrun, both ends in user space on
# one user-space network (a fresh directory): checks their results, that the
# kernel saw no AF_INET socket from any of them (strace, each program) and no
# listening port of theirs (ss). A program that is not installed is a named
# skip (a failure unless ALLOW_SKIP names it, tests/README.md), not a
# section that quietly disappears. Servers are waited for by readiness
# (their listening socket), never by a fixed sleep.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

# Every program under the launcher goes through launch or serve: it runs
# traced (strace, socket calls only; --seccomp-bpf stops the tracee at those
# calls alone, so the figures are not the tracer's) and its name goes into
# $work/launched, so the strace case at the end checks every one of them.
have_strace=""
need strace -- "the check that no program under usockrun made an AF_INET socket" && have_strace=1
mkdir -p "$work/trace"
: > "$work/launched"
launcher() {
  L=(bin/usockrun --net "$net")
  if [ -n "$have_strace" ]; then
    L=(strace -f -qq --seccomp-bpf -e trace=socket,bind,connect,listen,sendto,sendmsg,close,dup2,dup3 -e signal=none -o "$work/trace/$1.strace" "${L[@]}")
  fi
}
# launch NAME SECONDS [usockrun options] -- PROGRAM ARGS...: in the
# foreground. The environment variable expect=kernel marks a program whose
# trace must show an AF_INET socket (routed to the kernel on purpose).
launch() {
  local n=$1 secs=$2
  shift 2
  echo "$n ${expect:-user}" >> "$work/launched"
  launcher "$n"
  timeout "$secs" "${L[@]}" "$@"
}
# serve NAME SECONDS [usockrun options] -- PROGRAM ARGS...: in the
# background (spawn), ended by stop NAME or reap NAME.
serve() {
  local n=$1 secs=$2
  shift 2
  echo "$n user" >> "$work/launched"
  launcher "$n"
  spawn "$n" "$secs" "${L[@]}" "$@"
}
have_ss=""
need ss -- "the checks that ss lists no kernel port of the programs under usockrun" && have_ss=1
# ss_lists tcp|udp PORT: ss shows a listening (TCP) or bound (UDP) kernel
# socket on PORT.
ss_lists() { [ -n "$(ss -Hln"${1:0:1}" "sport = :$2")" ]; }
# a number > 0 (figures printed by the programs)
positive() { awk -v x="${1:-0}" 'BEGIN { exit !(x + 0 > 0) }'; }

# 0. CPython's http.server and urllib in one process (a 5 MiB download, a
# 404, a UDP exchange: tests/preload/http_roundtrip.py)
if need python3 -- "http_roundtrip.py, python3 -m http.server with curl"; then
  rc=0
  out=$(launch http_roundtrip 120 -- python3 tests/preload/http_roundtrip.py 2>&1) || rc=$?
  check "python3 http_roundtrip.py: http.server and urllib in one process (5 MiB, a 404, UDP)" \
    "exit $rc: $out" grep -q '^preload: http.server + urllib 5 MiB and 404 OK on port [0-9]*, UDP OK$' <<< "$out"
fi

# 1. nc -> nc: 50 MB, checksum equal
head -c 50000000 /dev/urandom > "$work/big.bin"
want=$(sha256sum < "$work/big.bin")
if need nc -- "nc to nc (50 MB), the kernel route"; then
  serve ncl 60 -- nc -l 127.0.0.1 7000 > "$work/recv.bin"
  if wait_for 10 "nc -l listening on user-space port 7000" usock_listens t7000; then
    rc=0
    launch nc 60 -- nc -N 127.0.0.1 7000 < "$work/big.bin" || rc=$?
    src=0
    reap ncl || src=$?
    got=$(sha256sum < "$work/recv.bin")
    check "nc -> nc -l: 50 MB across, checksum equal, both exit 0" \
      "client exit $rc, server exit $src, $(stat -c %s "$work/recv.bin") bytes received, checksum ${got:0:16}.. (sent ${want:0:16}..)" \
      [ "$rc.$src.$got" = "0.0.$want" ]
  fi
  stop ncl
fi

# 2. socat: a UDP datagram
if need socat -- "socat's UDP exchange"; then
  serve socat-recv 30 -- socat -u UDP-RECV:7001,bind=127.0.0.1 OPEN:"$work/udp.out",creat,trunc
  if wait_for 10 "socat UDP-RECV bound on user-space port 7001" usock_listens u7001; then
    if [ -n "$have_ss" ]; then
      check "ss -lun: no kernel UDP port 7001 while socat's receiver is bound there" \
        "$(ss -Hlun 'sport = :7001')" not ss_lists udp 7001
    fi
    rc=0
    echo "datagram through socat" | launch socat-send 10 -- socat -u STDIN UDP-SENDTO:127.0.0.1:7001 || rc=$?
    check "socat UDP-SENDTO exits 0" "exit $rc" [ "$rc" = 0 ]
    # The receiver writes it shortly after: wait for it, within a deadline.
    if wait_for 10 "socat: the datagram in the receiver's file" grep -q "datagram through socat" "$work/udp.out"; then
      ok "socat: a UDP datagram across"
    fi
  fi
  stop socat-recv
fi

# 3. python3 -m http.server and curl: a download with checksum, a 404
if need python3 curl -- "python3 -m http.server with curl"; then
  mkdir -p "$work/www" && cp "$work/big.bin" "$work/www/"
  serve http-server 120 -- python3 -m http.server 8000 --bind 127.0.0.1 --directory "$work/www" > "$work/http.log" 2>&1
  if wait_for 10 "python3 -m http.server listening on user-space port 8000" usock_listens t8000; then
    code=$(launch curl 30 -- curl -s -o "$work/dl.bin" -w '%{http_code}' http://127.0.0.1:8000/big.bin || true)
    check "curl <- http.server: 200, 50 MB, checksum equal" "status [$code]" \
      [ "$code.$(sha256sum < "$work/dl.bin" 2>/dev/null)" = "200.$want" ]
    code=$(launch curl-404 30 -- curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8000/missing || true)
    check "curl <- http.server: a missing file is 404" "status [$code]" [ "$code" = 404 ]
    # The kernel has no listening TCP port of theirs while the server runs.
    if [ -n "$have_ss" ]; then
      check "ss -ltn: no kernel TCP port 8000 while http.server listens there" \
        "$(ss -Hltn 'sport = :8000')" not ss_lists tcp 8000
    fi
  fi
  stop http-server
fi

# 4. one program reaching a kernel server by a rule; the kernel listeners
# are also the positive controls of the ss checks above (ss does list a
# kernel port) and of the strace check (that nc's trace shows its AF_INET
# socket).
if need nc -- "the kernel route"; then
  spawn kernel-nc 20 nc -l 127.0.0.1 7002 > "$work/kernel.out"
  if wait_for 10 "kernel nc -l listening on 7002" kernel_listens tcp 7002; then
    if [ -n "$have_ss" ]; then
      check "ss -ltn lists the kernel nc's TCP port 7002 (the ss check can see a port)" "ss listed nothing" ss_lists tcp 7002
    fi
    rc=0
    echo "to the kernel" | expect=kernel launch routed-nc 10 --route "kernel 127.0.0.1:7002" -- nc -N 127.0.0.1 7002 || rc=$?
    src=0
    reap kernel-nc || src=$?
    check "a rule routes one address to a kernel server (nc -> kernel nc -l)" \
      "client exit $rc, server exit $src, server got [$(head -c 100 "$work/kernel.out")]" \
      [ "$rc.$src.$(cat "$work/kernel.out")" = "0.0.to the kernel" ]
  fi
  stop kernel-nc
fi
if [ -n "$have_ss" ] && need socat -- "the ss -lun positive control"; then
  spawn kernel-socat 20 socat -u UDP-RECV:7003,bind=127.0.0.1 OPEN:/dev/null
  if wait_for 10 "kernel socat UDP-RECV bound on 7003" kernel_listens udp 7003; then
    check "ss -lun lists the kernel socat's UDP port 7003 (the ss check can see a port)" "ss listed nothing" ss_lists udp 7003
  fi
  stop kernel-socat
fi

# 5. redis-server with redis-cli and redis-benchmark (the kernel's figures,
# the same programs on its loopback, are printed beside them, not asserted)
redis_rate() { tr '\r' '\n' < "$1" | sed -n "s/^$2: \([0-9.]*\) requests per second.*/\1/p" | tail -n1; }
if need redis-server redis-cli redis-benchmark -- "redis-server with redis-cli and redis-benchmark"; then
  redis_args=(--save "" --appendonly no --bind 127.0.0.1)
  serve redis-server 180 -- redis-server --port 6390 "${redis_args[@]}" > "$work/redis.log" 2>&1
  if wait_for 10 "redis-server listening on user-space port 6390" usock_listens t6390; then
    r=$(launch redis-cli-set 10 -- redis-cli -p 6390 SET greeting hello 2>&1 || true)
    g=$(launch redis-cli-get 10 -- redis-cli -p 6390 GET greeting 2>&1 || true)
    check "redis-cli SET gives OK, GET gives the value" "SET: [$r], GET: [$g]" [ "$r.$g" = "OK.hello" ]
    rc=0
    launch redis-benchmark 120 -- redis-benchmark -p 6390 -q -n 100000 -c 50 -t set,get > "$work/redis.u" 2>&1 || rc=$?
    us=$(redis_rate "$work/redis.u" SET) ug=$(redis_rate "$work/redis.u" GET)
    if positive "$us" && positive "$ug" && [ "$rc" = 0 ]; then
      ok "redis-benchmark -n 100000 -c 50: SET and GET both ran (req/s > 0), exit 0"
    else
      bad "redis-benchmark: exit $rc, SET [$us] GET [$ug] req/s: $(tr '\r' '\n' < "$work/redis.u" | grep -v -e '^ *$' -e 'rps=' | tail -n3 | tr '\n' ' ')"
    fi
  fi
  stop redis-server
  spawn kernel-redis 180 redis-server --port 6391 "${redis_args[@]}" > /dev/null 2>&1
  if wait_for 10 "kernel redis-server listening on 6391" kernel_listens tcp 6391; then
    timeout 120 redis-benchmark -p 6391 -q -n 100000 -c 50 -t set,get > "$work/redis.k" 2>&1 || true
    echo "#    redis-benchmark req/s user space: SET ${us:-?} GET ${ug:-?}; kernel: SET $(redis_rate "$work/redis.k" SET) GET $(redis_rate "$work/redis.k" GET)"
  fi
  stop kernel-redis
fi

# 6. nginx serving a static file to curl and wrk. Every response must be
# 2xx: wrk counts the others ("Non-2xx or 3xx responses: N") but prints
# Requests/sec all the same, so nginx also logs each status, and wrk's socket
# errors may not exceed those of the same run against the kernel's loopback.
# wrk_get FILE: W_REQ (responses), W_BAD (non-2xx/3xx), W_ERR (socket
# errors: connect read write timeout), W_RPS.
wrk_get() {
  W_REQ=$(awk '$2 == "requests" && $3 == "in" { print $1 }' "$1")
  W_BAD=$(sed -n 's/.*Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' "$1")
  W_ERR=$(sed -n 's/.*Socket errors: connect \([0-9]*\), read \([0-9]*\), write \([0-9]*\), timeout \([0-9]*\).*/\1 \2 \3 \4/p' "$1")
  W_ERR=${W_ERR:-0 0 0 0}
  W_RPS=$(awk '/^Requests\/sec:/ { print $2 }' "$1")
}
# errs_within U K: each count in U (connect read write timeout) <= K's.
errs_within() {
  local ue ke i
  read -r -a ue <<< "$1"; read -r -a ke <<< "$2"
  for i in 0 1 2 3; do [ "${ue[i]}" -le "${ke[i]}" ] || return 1; done
}
if need nginx wrk curl -- "nginx with curl and wrk"; then
  mkdir -p "$work/ngx/html" "$work/ngx/logs"
  head -c 100000 /dev/urandom > "$work/ngx/html/f.bin"
  ngx_conf() { cat > "$work/ngx/$1.conf" <<CONF
worker_processes 1; daemon off; master_process off; pid $work/ngx/$1.pid;
error_log $work/ngx/logs/$1.log;
events { worker_connections 1024; }
http {
  log_format status '\$status';
  access_log $work/ngx/logs/$1.access status;
  server { listen 127.0.0.1:$2; root $work/ngx/html; }
}
CONF
  }
  ngx_conf u 8088; ngx_conf k 8089
  wrk_u="" wrk_k=""
  serve nginx 120 -- nginx -c "$work/ngx/u.conf" -p "$work/ngx" > /dev/null 2>&1
  if wait_for 10 "nginx listening on user-space port 8088" usock_listens t8088; then
    code=$(launch nginx-curl 10 -- curl -s -o "$work/ngx.dl" -w '%{http_code}' http://127.0.0.1:8088/f.bin || true)
    if [ "$code" = 200 ] && cmp -s "$work/ngx.dl" "$work/ngx/html/f.bin"; then
      ok "nginx -> curl: 200, the file equal"
    else
      bad "nginx -> curl: status [$code] or the file differs"
    fi
    rc=0
    launch wrk 30 -- wrk -t2 -c50 -d5s http://127.0.0.1:8088/f.bin > "$work/wrk.u" 2>&1 || rc=$?
    wrk_get "$work/wrk.u"
    wrk_u="$W_RPS" u_req=${W_REQ:-0} u_bad=${W_BAD:-0} u_err=$W_ERR
    if [ "$rc" = 0 ] && [ "$u_req" -gt 0 ] && [ -z "$W_BAD" ]; then
      ok "wrk -t2 -c50 -d5s against nginx: exit 0, $u_req responses (> 0), no \"Non-2xx or 3xx responses\" (wrk counts statuses >= 400 there)"
    else
      bad "wrk against nginx: exit $rc, responses [$u_req], non-2xx/3xx [$u_bad]: $(head -c 600 "$work/wrk.u")"
    fi
  fi
  stop nginx
  if [ -n "$wrk_u" ]; then
    # nginx's own log: one status per response it sent (curl's and wrk's,
    # also those still in flight when wrk stopped counting).
    n_log=$(wc -l < "$work/ngx/logs/u.access")
    n_non2xx=$(grep -cv '^2[0-9][0-9]$' "$work/ngx/logs/u.access" || true)
    if [ "$n_non2xx" = 0 ] && [ "$n_log" -ge "$u_req" ]; then
      ok "nginx logged $n_log responses, all 2xx, at least wrk's $u_req"
    else
      bad "nginx logged $n_log responses for wrk's $u_req, $n_non2xx not 2xx: $(grep -v '^2[0-9][0-9]$' "$work/ngx/logs/u.access" | sort | uniq -c | head -n5 | tr '\n' ' ')"
    fi
  fi
  spawn kernel-nginx 120 nginx -c "$work/ngx/k.conf" -p "$work/ngx"
  if wait_for 10 "kernel nginx listening on 8089" kernel_listens tcp 8089; then
    timeout 30 wrk -t2 -c50 -d5s http://127.0.0.1:8089/f.bin > "$work/wrk.k" 2>&1 || true
    wrk_get "$work/wrk.k"
    wrk_k="$W_RPS"
    # The kernel's run is the oracle for socket errors: it must be sound.
    if [ "${W_REQ:-0}" -gt 0 ] && [ -z "$W_BAD" ]; then
      ok "wrk against nginx on the kernel's loopback: $W_REQ responses (> 0), none non-2xx"
    else
      bad "wrk against nginx on the kernel's loopback (the oracle): $(head -c 600 "$work/wrk.k")"
    fi
    if [ -n "$wrk_u" ]; then
      check "wrk socket errors (connect read write timeout) user space [$u_err] <= kernel [$W_ERR]" \
        "more socket errors than on the kernel" errs_within "$u_err" "$W_ERR"
    fi
  fi
  stop kernel-nginx
  echo "#    wrk requests/s user space: ${wrk_u:-?}  kernel: ${wrk_k:-?}"
fi

# 7. iperf3 over TCP and UDP (UDP at 1 Gbit/s, where loss must stay under
# 10 %: the user-space network holds a datagram back when its receiver is
# full rather than dropping it, README "Datagrams are flow-controlled")
if need iperf3 -- "iperf3 over TCP and UDP (the UDP loss < 10 % check)"; then
  for mode in tcp udp; do
    flag=()
    [ "$mode" = udp ] && flag=(-u -b 1G -l 32768)
    serve "iperf3-s-$mode" 60 -- iperf3 -s -p 5299 -1 > "$work/iperf3-s-$mode.log" 2>&1
    u="" line=""
    if wait_for 10 "iperf3 -s ($mode) listening on user-space port 5299" usock_listens t5299; then
      rc=0
      launch "iperf3-c-$mode" 30 -- iperf3 -c 127.0.0.1 -p 5299 -t 3 "${flag[@]}" > "$work/iperf3-c-$mode.log" 2>&1 || rc=$?
      src=0
      reap "iperf3-s-$mode" || src=$?
      line=$(grep receiver "$work/iperf3-c-$mode.log" || true)
      u=$(awk '{ print $7, $8 }' <<< "$line")
      rate=$(awk '{ print $7 }' <<< "$line")
      if [ "$rc.$src" = 0.0 ] && positive "$rate"; then
        ok "iperf3 $mode: client and server exit 0, a receiver rate > 0 ($u)"
      else
        bad "iperf3 $mode: client exit $rc, server exit $src, receiver [$line]: $(tail -n3 "$work/iperf3-c-$mode.log")"
      fi
    fi
    stop "iperf3-s-$mode"
    if [ "$mode" = udp ] && [ -n "$line" ]; then
      # "... 6/5725 (0.1%) receiver": datagrams lost/sent and the fraction
      sent=$(sed -n 's|.* \([0-9]*\)/\([0-9]*\) *(.*|\2|p' <<< "$line")
      lost=$(sed -n 's/.*(\([0-9.e+-]*\)%).*/\1/p' <<< "$line")
      u="$u, ${lost}% of ${sent} lost"
      if positive "$sent" && awk -v l="${lost:-100}" 'BEGIN { exit !(l < 10) }'; then
        ok "iperf3 udp at 1 Gbit/s: $sent datagrams, lost $lost% (< 10%)"
      else
        bad "iperf3 udp at 1 Gbit/s: lost ${lost:-?}% of ${sent:-?} (10% or more, or none sent): [$line]"
      fi
    fi
    spawn "kernel-iperf3-$mode" 60 iperf3 -s -p 5298 -1 > /dev/null 2>&1
    k=""
    if wait_for 10 "kernel iperf3 -s ($mode) listening on 5298" kernel_listens tcp 5298; then
      k=$(timeout 30 iperf3 -c 127.0.0.1 -p 5298 -t 3 "${flag[@]}" 2>/dev/null | awk '/receiver/ { print $7, $8 (/%\)/ ? ", " $(NF-1) " lost" : "") }' || true)
    fi
    stop "kernel-iperf3-$mode"
    echo "#    iperf3 $mode user space: ${u:-?}  kernel: ${k:-?}"
  done
fi

# 8. strace: every program started under the launcher above. Each trace
# must show the library's own AF_UNIX sockets (the cross-process backend's:
# proof the trace saw the program's socket calls) and no AF_INET/AF_INET6
# socket that was bound, connected, listened on or sent from
# (inet_traffic.py: the library's own probes of the kernel's option and
# ioctl answers are kernel AF_INET sockets that carry nothing); the one
# routed to the kernel on purpose must show its AF_INET socket in use
# (proof the check can see one).
if [ -n "$have_strace" ]; then
  while read -r n exp; do
    f="$work/trace/$n.strace"
    if [ ! -s "$f" ]; then bad "strace $n: no trace (the program did not run under strace)"; continue; fi
    traffic=$(tests/preload/inet_traffic.py "$f")
    read -r made used <<<"$(head -n1 <<<"$traffic")"
    unix=$(grep -c 'socket(AF_UNIX' "$f" || true)
    if [ "$exp" = kernel ]; then
      check "strace $n: its socket routed to the kernel is an AF_INET socket in use ($used of $made)" "no AF_INET socket in use in the trace" [ "$used" -gt 0 ]
    else
      if [ "$used" = 0 ] && [ "$unix" -gt 0 ]; then
        ok "strace $n: $unix AF_UNIX, and no AF_INET socket in use on the kernel ($made made and closed unused)"
      else
        bad "strace $n: $used AF_INET sockets in use ($made made), $unix AF_UNIX: $(tail -n +2 <<<"$traffic" | tr '\n' ' ')"
      fi
    fi
  done < "$work/launched"
fi
summary

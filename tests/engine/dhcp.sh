#!/usr/bin/env bash
# tests/engine/dhcp.sh - the engine's address from DHCPv4
# (USOCK_NETIF_ADDR=dhcp, usockrun --addr dhcp) and what resolves where
# (issue 17). In a namespace d: TAP device ut0 whose kernel side is
# 10.79.0.1/24 and runs dnsmasq (DHCP range 10.79.0.50-99, router and DNS
# server 10.79.0.1, host record peer.usock.test = 10.89.0.1), and a kernel
# http.server on 10.89.0.1 (on lo: off the link, reached only through the
# lease's default route). /etc/netns/<ns>/resolv.conf names 10.79.0.1
# (ip netns exec bind-mounts it over /etc/resolv.conf). Checks:
#  1. curl under the launcher with --addr dhcp fetches from 10.89.0.1: the
#     lease's address is in the range (USOCK_NETIF_LEASE_FILE, dnsmasq's
#     DHCPACK, http.server's client address agree) and its router works;
#  2. a resolver of the program's own (tests/engine/dns_query.py: UDP to
#     the resolv.conf nameserver through the socket API, connected or by
#     sendto, as its first call: it waits for the lease) resolves
#     peer.usock.test over the engine: dnsmasq logs the query from the
#     leased address;
#  3. libc's getaddrinfo (getent hosts, python's socket.getaddrinfo)
#     resolves it too, from the namespace's kernel (10.79.0.1): glibc
#     opens its resolver's sockets inside libc, where LD_PRELOAD does not
#     reach, so they are kernel sockets whatever the rules say;
#  4. with no DHCP server (TAP ut1, no dnsmasq on it): a connect fails with
#     ENETUNREACH after the first-lease wait (10 s), not a hang.
# No ENGINE_CONTROL variant: the kernel has no DHCP client here to compare.
set -uo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
engine_prereqs
if [ "$ENGINE_CONTROL" = 1 ]; then
  echo "# ENGINE_CONTROL=1: dhcp.sh has no control run (the engine's DHCP client is what it tests)"
  summary
  exit
fi
if ! need dnsmasq curl getent -- "the DHCP and DNS tests (package dnsmasq-base)"; then summary; exit; fi

if ! { mk_ns d && mk_tap d ut0 10.79.0.1/24 && mk_tap d ut1 10.80.0.1/24; }; then summary; exit; fi
ip -n "${ns[d]}" addr add 10.89.0.1/32 dev lo
etc=/etc/netns/${ns[d]}
mkdir -p "$etc" && echo "nameserver 10.79.0.1" > "$etc/resolv.conf"
trap 'engine_cleanup; rm -rf "$etc"; rmdir /etc/netns 2>/dev/null' EXIT

# dnsmasq in the foreground, on ut0 only, no configuration file, no
# upstream, no /etc/hosts: only what the test gives it.
spawn dnsmasq 300 ip netns exec "${ns[d]}" dnsmasq --no-daemon --conf-file=/dev/null \
  --interface=ut0 --bind-interfaces --user=root --pid-file= --log-facility=- \
  --no-resolv --no-hosts --log-queries --log-dhcp --dhcp-leasefile="$work/leases" \
  --dhcp-range=10.79.0.50,10.79.0.99,255.255.255.0,1h \
  --dhcp-option=option:router,10.79.0.1 --dhcp-option=option:dns-server,10.79.0.1 \
  --host-record=peer.usock.test,10.89.0.1 > "$work/dnsmasq.log" 2>&1
await_server "dnsmasq (kernel, d) serving DHCP on ut0" dnsmasq "$work/dnsmasq.log" 'DHCP, sockets bound' || { summary; exit; }
spawn http 300 ip netns exec "${ns[d]}" "$PY" -u -m http.server --bind 10.89.0.1 8080 > "$work/http.log" 2>&1
await_server "http.server (kernel, d) on 10.89.0.1:8080" http "$work/http.log" '^Serving HTTP' || { summary; exit; }

# dhcp_run NAME DEV CMD...: CMD under the launcher on DEV with --addr dhcp,
# DNS (:53) left to the engine ("kernel unix" replaces the defaults'
# "kernel :53"), the lease in $work/lease.NAME, USOCK_STATS in
# $work/stats.NAME.
dhcp_run() {
  local n=$1 dev=$2
  shift 2
  ip netns exec "${ns[d]}" env "USOCK_STATS=$work/stats.$n" "USOCK_NETIF_LEASE_FILE=$work/lease.$n" \
    "$run" --net "$net" --route "kernel unix" --netif "tap:$dev" --addr dhcp -- "$@"
}
# in_range ADDR: 10.79.0.50 to 10.79.0.99.
in_range() { [[ $1 =~ ^10\.79\.0\.([0-9]+)$ ]] && [ "${BASH_REMATCH[1]}" -ge 50 ] && [ "${BASH_REMATCH[1]}" -le 99 ]; }

# 1. a lease, and the default route it gives
rc=0
code=$(dhcp_run curl ut0 curl -sS --max-time 30 -o /dev/null -w '%{http_code}' http://10.89.0.1:8080/ 2> "$work/curl.err") || rc=$?
lease=$(sed -n 's/^address=//p' "$work/lease.curl" 2>/dev/null)
addr=${lease%/*}
check "curl (library, --addr dhcp) <- http.server 10.89.0.1 off the link: 200" \
  "curl exit $rc, code $code: $(tail_of "$work/curl.err")" [ "$rc.$code" = 0.200 ]
carried "$work/stats.curl" "curl (library, --addr dhcp)"
check "the lease (USOCK_NETIF_LEASE_FILE): $lease in 10.79.0.50-99, /24, router and DNS 10.79.0.1" \
  "lease file: $(paste -sd' ' "$work/lease.curl" 2>/dev/null)" \
  eval 'in_range "$addr" && [ "${lease#*/}" = 24 ] && grep -qx router=10.79.0.1 "$work/lease.curl" && grep -qx dns=10.79.0.1 "$work/lease.curl"'
check "dnsmasq acknowledged $addr (DHCPACK)" "dnsmasq: $(grep DHCPACK "$work/dnsmasq.log" | tail -n 2 | tr '\n' ' ')" \
  grep -q "DHCPACK(ut0) $addr " "$work/dnsmasq.log"
check "http.server saw the client as $addr" "log: $(tail_of "$work/http.log")" \
  grep -q "^$addr - .*GET / HTTP" "$work/http.log"

# 2. DNS through the engine: the program's own resolver, on the library's
# sockets (its first socket call, a connect or a sendto, waits for the lease)
for how in connect sendto; do
  rc=0
  seen=$(wc -l < "$work/dnsmasq.log")
  if [ "$how" = connect ]; then
    out=$(dhcp_run dns$how ut0 "$PY" tests/engine/dns_query.py peer.usock.test 2>&1) || rc=$?
  else
    out=$(dhcp_run dns$how ut0 "$PY" tests/engine/dns_query.py --sendto peer.usock.test 2>&1) || rc=$?
  fi
  addr=$(sed -n 's/^address=//p' "$work/lease.dns$how" 2>/dev/null); addr=${addr%/*}
  check "dns_query.py (library, --addr dhcp, $how first): peer.usock.test is 10.89.0.1" "exit $rc: $out" \
    [ "$rc.$out" = "0.A 10.89.0.1" ]
  carried "$work/stats.dns$how" "dns_query.py (library, --addr dhcp, $how first)"
  check "dnsmasq got that query from the engine's lease ($addr)" \
    "dnsmasq: $(grep 'query\[' "$work/dnsmasq.log" | tail -n 2 | tr '\n' ' ')" \
    eval 'in_range "$addr" && tail -n "+$((seen + 1))" "$work/dnsmasq.log" | grep -q "query\[A\] peer.usock.test from $addr\$"'
done

# 3. libc's getaddrinfo: from the namespace's kernel, not the engine
queries() { grep -c "query\[A\] peer.usock.test from 10.79.0.1\$" "$work/dnsmasq.log"; }
for how in getent python; do
  before=$(queries)
  rc=0
  if [ "$how" = getent ]; then
    out=$(dhcp_run $how ut0 getent ahostsv4 peer.usock.test 2>&1 | awk 'NR == 1 { print $1 }') || rc=$?
  else
    out=$(dhcp_run $how ut0 "$PY" -c 'import socket; print(socket.getaddrinfo("peer.usock.test", 80, socket.AF_INET, socket.SOCK_STREAM)[0][4][0])' 2>&1) || rc=$?
  fi
  check "$how's getaddrinfo under the launcher: peer.usock.test is 10.89.0.1" "exit $rc: $out" \
    [ "$rc.$out" = "0.10.89.0.1" ]
  check "$how's query came from the kernel's 10.79.0.1 (glibc's resolver sockets are not interposed)" \
    "queries from 10.79.0.1 before $before, after $(queries)" [ "$(queries)" -gt "$before" ]
done

# 4. no DHCP server on ut1: a connect fails (ENETUNREACH) after the wait
rc=0
out=$(dhcp_run nolease ut1 "$PY" -c '
import errno, socket, time
s = socket.socket()
t = time.monotonic()
try:
    s.connect(("10.89.0.1", 8080))
    print("connected")
except OSError as e:
    print("%s %.1f" % (errno.errorcode.get(e.errno, e.errno), time.monotonic() - t))
' 2>&1) || rc=$?
read -r err secs <<< "$out"
check "no DHCP server: connect fails with ENETUNREACH within 5-15 s (${secs:-?} s)" "exit $rc: $out" \
  eval '[ "$rc.$err" = 0.ENETUNREACH ] && awk -v s="$secs" "BEGIN { exit !(s >= 5 && s <= 15) }"'
check "no DHCP server: the lease file says no address (address= alone)" \
  "lease file: $(paste -sd' ' "$work/lease.nolease" 2>/dev/null)" \
  [ "$(cat "$work/lease.nolease" 2>/dev/null)" = "address=" ]

# 5. the same DHCP client on a device the program gives the engine itself
# (usock_netif_attach, the RTOS path's C device table, here over ut0), on
# one thread: its UDP connect waits for the lease and runs the engine
# meanwhile; getsockname then names the lease's address; a TCP connection
# goes off the link through the lease's router (tests/engine/netif_dhcp.c).
if need cc -- "the device-table DHCP client"; then
  lib=$PWD/target/release
  if cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -O2 -Iinclude -pthread -o "$work/netif_dhcp" \
    tests/engine/netif_dhcp.c -L"$lib" -luserspacesock -Wl,-rpath,"$lib" 2> "$work/cc.err"; then
    rc=0
    ip netns exec "${ns[d]}" env "USOCK_NETIF_LEASE_FILE=$work/lease.table" timeout 60 \
      "$work/netif_dhcp" ut0 10.79.0.1 10.89.0.1 8080 > "$work/table.out" 2>&1 || rc=$?
    addr=$(sed -n 's/^address //p' "$work/table.out")
    check "usock_netif_attach with dhcp: attached, the lease awaited on one thread, HTTP 200 through its router" \
      "exit $rc: $(tail_of "$work/table.out")" [ "$rc.$(grep -c '^ok' "$work/table.out")" = 0.3 ]
    check "usock_netif_attach with dhcp: getsockname gave $addr, the lease file's, in 10.79.0.50-99" \
      "lease file: $(paste -sd' ' "$work/lease.table" 2>/dev/null)" \
      eval 'in_range "$addr" && grep -qx "address=$addr/24" "$work/lease.table"'
    check "dnsmasq acknowledged $addr to the device table's MAC (02:79:00:00:00:42)" \
      "dnsmasq: $(grep DHCPACK "$work/dnsmasq.log" | tail -n 2 | tr '\n' ' ')" \
      grep -q "DHCPACK(ut0) $addr 02:79:00:00:00:42" "$work/dnsmasq.log"
  else
    bad "netif_dhcp.c does not build: $(cat "$work/cc.err")"
  fi
fi

stop http
stop dnsmasq
summary

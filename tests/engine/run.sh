#!/usr/bin/env bash
# tests/engine/run.sh: the engine backend (USOCK_NETIF) against the
# kernel's TCP/IP, over a TAP device, in a network namespace of its own.
#
# As root: makes namespace usk17-XXXX with TAP device ut0 (the kernel's side
# 10.77.0.1/24 and fd77::1/64) and a veth pair va/vb (the engine on vb
# through AF_PACKET, USOCK_NETIF=packet:vb; the kernel on va, 10.78.0.1/24
# and fd78::1/64) and two more TAP devices on a bridge (two engines, one
# on each, talking to each other), then runs tests/engine/peer.py on both
# sides: the library's side preloaded with
# USOCK_NETIF=tap:ut0 USOCK_NETIF_ADDR=10.77.0.2/24,fd77::2/64. Checks:
# TCP both ways (10 MB each way, SHA-256 compared) with the library as
# client and as server, IPv4 and IPv6; UDP echo both ways; ECONNREFUSED for
# blocking and non-blocking connects; the addresses each side sees; a bad
# USOCK_NETIF value and an unusable device. The namespace goes at every
# exit. Without root, namespaces or /dev/net/tun: a skip (tests/README.md).
#
# Run: make lib && tests/engine/run.sh   (BYTES=... to change the size,
# USOCK_LIB=... for another build of the library)
set -u
# shellcheck source-path=SCRIPTDIR source=../preload/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../preload/lib.sh"

lib=${USOCK_LIB:-$PWD/target/release/libuserspacesock.so}
peer=$PWD/tests/engine/peer.py
bytes=${BYTES:-10000000}
ns=usk17-$(printf '%04x' $((RANDOM % 65536)))

finish() {
  cleanup
  ip netns del "$ns" 2>/dev/null || true
}
trap finish EXIT

if [ ! -f "$lib" ]; then
  bad "no $lib: run make lib first"
  summary
  exit
fi
if ! need ip python3 -- "the engine tests"; then summary; exit; fi
if [ "$(id -u)" != 0 ]; then
  skip netns "not root: cannot make a network namespace"
  summary
  exit
fi
if [ ! -c /dev/net/tun ]; then
  skip tun "no /dev/net/tun on this machine"
  summary
  exit
fi
if ! ip netns add "$ns" 2>"$work/netns.err"; then
  skip netns "cannot make a network namespace: $(cat "$work/netns.err")"
  summary
  exit
fi
in_ns() { ip netns exec "$ns" "$@"; }
if ! in_ns ip tuntap add dev ut0 mode tap 2>"$work/tap.err"; then
  skip tun "cannot make a TAP device: $(cat "$work/tap.err")"
  summary
  exit
fi
in_ns ip link set lo up
in_ns ip addr add 10.77.0.1/24 dev ut0
in_ns ip addr add fd77::1/64 dev ut0 nodad
in_ns ip link set ut0 up
# Off the link, through the default routes (USOCK_NETIF_GW): addresses
# the kernel has on lo.
in_ns ip addr add 10.88.0.1/32 dev lo
in_ns ip addr add fd88::1/128 dev lo
# The second device kind: an AF_PACKET socket on vb, one end of a veth
# pair whose other end va is the kernel's (10.78.0.1/24, fd78::1/64).
in_ns ip link add va type veth peer name vb
in_ns ip addr add 10.78.0.1/24 dev va
in_ns ip addr add fd78::1/64 dev va nodad
in_ns ip link set va up
in_ns ip link set vb up
# Two engines, each on a TAP device of its own (ut2, ut3), joined by a
# bridge that has no address: no kernel TCP/IP on their path.
in_ns ip link add br7 type bridge
for t in ut2 ut3; do
  in_ns ip tuntap add dev $t mode tap
  in_ns ip link set $t master br7
  in_ns ip link set $t up
done
in_ns ip link set br7 up

# The library's side (preloaded, on the engine) and the kernel's, as
# commands timeout(1) can run.
# wrapper FILE NETIF ADDRS [GW]: a command that runs its arguments preloaded,
# on the engine over NETIF with ADDRS.
# (GW: USOCK_NETIF_GW, when given.)
wrapper() {
  cat >"$1" <<END
#!/bin/sh
exec ip netns exec $ns env LD_PRELOAD=$lib USOCK_NETIF=$2 \\
  USOCK_NETIF_ADDR=$3 ${4:+USOCK_NETIF_GW=$4} USOCK_STATS=$work/stats "\$@"
END
  chmod +x "$1"
}
wrapper "$work/on_lib" tap:ut0 10.77.0.2/24,fd77::2/64
wrapper "$work/on_packet" packet:vb 10.78.0.2/24,fd78::2/64
wrapper "$work/on_routed" tap:ut0 10.77.0.2/24,fd77::2/64 10.77.0.1,fd77::1
wrapper "$work/on_eng2" tap:ut2 10.79.0.2/24,fd79::2/64
wrapper "$work/on_eng3" tap:ut3 10.79.0.3/24,fd79::3/64
printf '#!/bin/sh\nexec ip netns exec %s "$@"\n' "$ns" >"$work/on_kernel"
chmod +x "$work/on_kernel"
on_lib=$work/on_lib on_kernel=$work/on_kernel on_packet=$work/on_packet
on_eng2=$work/on_eng2 on_eng3=$work/on_eng3 on_routed=$work/on_routed
# A server says it listens by making this file.
export PEER_READY=$work/ready

# field FILE WORD: the rest of the first line of FILE starting with WORD.
field() { awk -v w="$2" '$1 == w { $1 = ""; sub(/^ /, ""); print; exit }' "$1"; }

# tcp_case NAME SERVER_SIDE CLIENT_SIDE LISTEN_ADDR CONNECT_ADDR PORT
tcp_case() {
  local name=$1 srv=$2 cli=$3 laddr=$4 caddr=$5 port=$6
  rm -f "$work/ready"
  spawn "$name-server" 120 \
    "$srv" python3 "$peer" tcp-server "$laddr" "$port" >"$work/$name.srv" 2>&1
  wait_for 20 "$name: server ready" test -e "$work/ready" || { stop "$name-server"; return; }
  timeout 120 "$cli" python3 "$peer" tcp-client "$caddr" "$port" "$bytes" \
    >"$work/$name.cli" 2>&1
  local rc=$?
  reap "$name-server"
  local s_got c_got s_sent c_sent
  s_got=$(field "$work/$name.srv" got) s_sent=$(field "$work/$name.srv" sent)
  c_got=$(field "$work/$name.cli" got) c_sent=$(field "$work/$name.cli" sent)
  if [ "$rc" = 0 ] && [ -n "$c_sent" ] && [ "$s_got" = "$c_sent $bytes" ] &&
    [ "$c_got" = "$s_sent $bytes" ]; then
    ok "$name: $bytes bytes each way, checksums agree"
  else
    bad "$name: client status $rc; server: $(tr '\n' '|' <"$work/$name.srv"); client: $(tr '\n' '|' <"$work/$name.cli")"
    return
  fi
  # What each side saw of the other: the client's local address is the
  # server's peer, and the reverse.
  check "$name: getsockname/getpeername agree across the link" \
    "server: $(tr '\n' '|' <"$work/$name.srv"); client: $(tr '\n' '|' <"$work/$name.cli")" \
    test "$(field "$work/$name.srv" peer)" = "$(field "$work/$name.cli" local)" -a \
    "$(field "$work/$name.srv" local)" = "$(field "$work/$name.cli" peer)"
}

# udp_case NAME SERVER_SIDE CLIENT_SIDE BIND_ADDR SEND_ADDR PORT CLIENT_ADDR
udp_case() {
  local name=$1 srv=$2 cli=$3 baddr=$4 saddr=$5 port=$6 caddr=$7
  rm -f "$work/ready"
  spawn "$name-server" 60 \
    "$srv" python3 "$peer" udp-server "$baddr" "$port" 200 >"$work/$name.srv" 2>&1
  wait_for 20 "$name: server ready" test -e "$work/ready" || { stop "$name-server"; return; }
  timeout 60 "$cli" python3 "$peer" udp-client "$saddr" "$port" 200 >"$work/$name.cli" 2>&1
  reap "$name-server"
  check "$name: 200 datagrams echoed to their source" \
    "server: $(tr '\n' '|' <"$work/$name.srv"); client: $(tr '\n' '|' <"$work/$name.cli")" \
    grep -q "^ok udp-client 200" "$work/$name.cli"
  check "$name: the server saw the client's address" \
    "server: $(tr '\n' '|' <"$work/$name.srv")" \
    grep -q "^peer $caddr " "$work/$name.srv"
}

tcp_case tcp4-lib-client "$on_kernel" "$on_lib" 10.77.0.1 10.77.0.1 5001
tcp_case tcp4-lib-server "$on_lib" "$on_kernel" 0.0.0.0 10.77.0.2 5002
tcp_case tcp6-lib-client "$on_kernel" "$on_lib" fd77::1 fd77::1 5003
tcp_case tcp6-lib-server "$on_lib" "$on_kernel" :: fd77::2 5004
tcp_case tcp4-lib-server-named "$on_lib" "$on_kernel" 10.77.0.2 10.77.0.2 5005
# A reader that comes late: the sender's data waits in the engine's
# buffers, whose window closes and opens again as the reader reads.
export PEER_SLOW=1
tcp_case slow-lib-server "$on_lib" "$on_kernel" 0.0.0.0 10.77.0.2 5006
tcp_case slow-kernel-server "$on_kernel" "$on_lib" 10.77.0.1 10.77.0.1 5007
unset PEER_SLOW
tcp_case packet-tcp4-lib-client "$on_kernel" "$on_packet" 10.78.0.1 10.78.0.1 5011
tcp_case packet-tcp6-lib-server "$on_packet" "$on_kernel" :: fd78::2 5012
udp_case packet-udp4-lib-client "$on_kernel" "$on_packet" 10.78.0.1 10.78.0.1 5111 10.78.0.2
# Through the gateway, to addresses off the link.
tcp_case routed-tcp4 "$on_kernel" "$on_routed" 0.0.0.0 10.88.0.1 5031
tcp_case routed-tcp6 "$on_kernel" "$on_routed" :: fd88::1 5032

# Engine to engine over the bridge.
tcp_case engines-tcp4 "$on_eng2" "$on_eng3" 0.0.0.0 10.79.0.2 5021
tcp_case engines-tcp6 "$on_eng3" "$on_eng2" fd79::3 fd79::3 5022
udp_case engines-udp6 "$on_eng2" "$on_eng3" :: fd79::2 5121 fd79::3
udp_case udp4-lib-client "$on_kernel" "$on_lib" 10.77.0.1 10.77.0.1 5101 10.77.0.2
udp_case udp4-lib-server "$on_lib" "$on_kernel" 0.0.0.0 10.77.0.2 5102 10.77.0.1
udp_case udp6-lib-client "$on_kernel" "$on_lib" fd77::1 fd77::1 5103 fd77::2
udp_case udp6-lib-server "$on_lib" "$on_kernel" :: fd77::2 5104 fd77::1

# udp_conn_case NAME SERVER_SIDE CLIENT_SIDE BIND_ADDR SEND_ADDR PORT CLIENT_ADDR:
# a UDP client that connect()s without a bind: getsockname then gives the
# source address the route picks (CLIENT_ADDR) and its port, what the
# server sees as the datagram's source. Run with the kernel as the client
# too: the same checks, the kernel's behaviour as the reference.
udp_conn_case() {
  local name=$1 srv=$2 cli=$3 baddr=$4 saddr=$5 port=$6 caddr=$7
  rm -f "$work/ready"
  spawn "$name-server" 60 \
    "$srv" python3 "$peer" udp-server "$baddr" "$port" 1 >"$work/$name.srv" 2>&1
  wait_for 20 "$name: server ready" test -e "$work/ready" || { stop "$name-server"; return; }
  timeout 60 "$cli" python3 "$peer" udp-connected "$saddr" "$port" >"$work/$name.cli" 2>&1
  reap "$name-server"
  local detail="server: $(tr '\n' '|' <"$work/$name.srv"); client: $(tr '\n' '|' <"$work/$name.cli")"
  local l
  l=$(field "$work/$name.cli" local)
  check "$name: getsockname after connect() is $caddr and a port, as the server saw it" "$detail" \
    test -n "$l" -a "${l% *}" = "$caddr" -a "${l#* }" != 0 -a "$l" = "$(field "$work/$name.srv" peer)" \
    -a "$l" = "$(field "$work/$name.cli" after)" \
    -a "$(grep -c '^ok udp-connected' "$work/$name.cli")" = 1
}
udp_conn_case uconn4-lib-client "$on_kernel" "$on_lib" 10.77.0.1 10.77.0.1 5131 10.77.0.2
udp_conn_case uconn4-kernel-client "$on_lib" "$on_kernel" 0.0.0.0 10.77.0.2 5132 10.77.0.1
udp_conn_case uconn6-lib-client "$on_kernel" "$on_lib" fd77::1 fd77::1 5133 fd77::2
udp_conn_case uconn6-kernel-client "$on_lib" "$on_kernel" :: fd77::2 5134 fd77::1
udp_conn_case uconn4-routed "$on_kernel" "$on_routed" 10.88.0.1 10.88.0.1 5135 10.77.0.2
udp_conn_case uconn6-routed "$on_kernel" "$on_routed" fd88::1 fd88::1 5136 fd77::2
udp_conn_case uconn-engines "$on_eng2" "$on_eng3" 0.0.0.0 10.79.0.2 5137 10.79.0.3

# burst_case NAME SERVER_SIDE CLIENT_SIDE LISTEN_ADDR CONNECT_ADDR PORT:
# 50 connections at once.
burst_case() {
  local name=$1 srv=$2 cli=$3 laddr=$4 caddr=$5 port=$6
  rm -f "$work/ready"
  spawn "$name-server" 60 "$srv" python3 "$peer" burst-server "$laddr" "$port" 50 \
    >"$work/$name.srv" 2>&1
  wait_for 20 "$name: server ready" test -e "$work/ready" || { stop "$name-server"; return; }
  timeout 60 "$cli" python3 "$peer" burst-client "$caddr" "$port" 50 >"$work/$name.cli" 2>&1
  reap "$name-server"
  check "$name: 50 connections at once" \
    "server: $(tr '\n' '|' <"$work/$name.srv"); client: $(tr '\n' '|' <"$work/$name.cli")" \
    grep -q "^ok burst-client 50" "$work/$name.cli"
}
# A server that speaks first: nothing from the client runs the engine
# again between the handshake and the greeting.
rm -f "$work/ready"
spawn greet-server 60 "$on_lib" python3 "$peer" greet-server 0.0.0.0 5303 5 >"$work/greet.srv" 2>&1
if wait_for 20 "greet: server ready" test -e "$work/ready"; then
  timeout 60 "$on_kernel" python3 "$peer" greet-client 10.77.0.2 5303 5 >"$work/greet.cli" 2>&1
  reap greet-server
  check "a library server that speaks first: 5 greetings" \
    "server: $(tr '\n' '|' <"$work/greet.srv"); client: $(tr '\n' '|' <"$work/greet.cli")" \
    grep -q "^ok greet-client 5" "$work/greet.cli"
else
  stop greet-server
fi
burst_case burst-lib-server "$on_lib" "$on_kernel" 0.0.0.0 10.77.0.2 5301
burst_case burst-lib-client "$on_kernel" "$on_lib" 10.77.0.1 10.77.0.1 5302

"$on_lib" timeout 60 python3 "$peer" refused 10.77.0.1 5999 >"$work/refused" 2>&1
check "connect to a closed port: ECONNREFUSED, blocking and non-blocking" \
  "$(tr '\n' '|' <"$work/refused")" \
  test "$(grep -c '^ok' "$work/refused")" = 2
"$on_lib" timeout 60 python3 "$peer" refused fd77::1 5999 >"$work/refused6" 2>&1
check "IPv6: ECONNREFUSED, blocking and non-blocking" \
  "$(tr '\n' '|' <"$work/refused6")" \
  test "$(grep -c '^ok' "$work/refused6")" = 2

# iperf3 both ways (an unmodified program's select/poll and non-blocking
# sockets on the engine), 2 s each.
if need iperf3 -- "iperf3 through the engine"; then
  for dir in lib-client lib-server; do
    if [ $dir = lib-client ]; then
      s_side=$on_kernel c_side=$on_lib s_addr=10.77.0.1
    else
      s_side=$on_lib c_side=$on_kernel s_addr=10.77.0.2
    fi
    spawn iperf3-server 60 "$s_side" iperf3 -s -1 --forceflush -p 5401 >"$work/iperf3.srv" 2>&1
    wait_for 20 "iperf3 $dir: server ready" grep -q "listening" "$work/iperf3.srv" ||
      { stop iperf3-server; continue; }
    timeout 60 "$c_side" iperf3 -c "$s_addr" -p 5401 -t 2 >"$work/iperf3.cli" 2>&1
    rc=$?
    reap iperf3-server
    check "iperf3 $dir: $(awk '/receiver/ { print $7, $8; exit }' "$work/iperf3.cli")" \
      "status $rc: $(tail -5 "$work/iperf3.cli" | tr '\n' '|')" \
      grep -q "receiver" "$work/iperf3.cli"
  done
fi

"$on_lib" timeout 60 python3 "$peer" timeout 10.77.0.99 80 >"$work/timeout" 2>&1
check "connect to an address nobody has, TCP_USER_TIMEOUT 2 s: ETIMEDOUT" \
  "$(tr '\n' '|' <"$work/timeout")" grep -q '^ok' "$work/timeout"

# No route (no USOCK_NETIF_GW here): ENETUNREACH at once, as on Linux.
"$on_lib" timeout 20 python3 -c '
import socket
for fam, a in ((socket.AF_INET, "10.88.0.1"), (socket.AF_INET6, "fd88::1")):
    for ty in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        s = socket.socket(fam, ty)
        try:
            s.connect((a, 80)) if ty == socket.SOCK_STREAM else s.sendto(b"x", (a, 9))
            print("sent", a)
        except OSError as e:
            print(e.errno, a)' >"$work/unreach" 2>&1
check "no route: ENETUNREACH for connect and sendto, IPv4 and IPv6" "$(tr '\n' '|' <"$work/unreach")" \
  test "$(grep -c '^101 ' "$work/unreach")" = 4

# A linked C program that configures the engine itself
# (usock_netif_configure), against a kernel echo server: non-blocking
# connect and epoll, 4 MB echoed, SHUT_WR, SO_LINGER 0 as a reset.
if need cc -- "the linked C client"; then
  if cc -Wall -Wextra -O2 -Iinclude -o "$work/netif_client" tests/engine/netif_client.c \
    -L"$(dirname "$lib")" -luserspacesock -Wl,-rpath,"$(dirname "$lib")" 2>"$work/cc.err"; then
    rm -f "$work/ready"
    spawn echo-server 60 "$on_kernel" python3 "$peer" tcp-echo-server 10.77.0.1 5201 2 \
      >"$work/echo.srv" 2>&1
    if wait_for 20 "echo server ready" test -e "$work/ready"; then
      "$on_kernel" timeout 60 "$work/netif_client" ut0 10.77.0.2/24 10.77.0.1 5201 4000000 \
        >"$work/cclient" 2>&1
      rc=$?
      reap echo-server
      check "linked C client: usock_netif_configure, epoll, 4 MB echoed, SHUT_WR" \
        "status $rc: $(tr '\n' '|' <"$work/cclient")" \
        test "$rc" = 0 -a "$(grep -c '^ok' "$work/cclient")" = 5
      check "linked C client: SO_LINGER 0 resets the connection" \
        "server: $(tr '\n' '|' <"$work/echo.srv")" grep -q '^reset' "$work/echo.srv"
    else
      stop echo-server
    fi
  else
    bad "netif_client.c does not build: $(cat "$work/cc.err")"
  fi
fi

# The engine, and no other backend, carried the sockets.
check "USOCK_STATS: the engine claimed the sockets" "$(cat "$work/stats" 2>/dev/null)" \
  grep -q "engine claims=[1-9]" "$work/stats"

# The TAP's offloads, on while the engine holds the device, are off again
# once the program exited (ut0 persists: a later reader without
# IFF_VNET_HDR would get 64 KiB frames, checksums unfilled).
if command -v ethtool >/dev/null; then
  in_ns ethtool -k ut0 >"$work/offloads" 2>&1
  check "the TAP device's offloads are off once the engine's program exited" \
    "$(grep -E '^(tx-checksumming|tcp-segmentation-offload)' "$work/offloads" | tr '\n' ' ')" \
    grep -q '^tcp-segmentation-offload: off' "$work/offloads"
else
  skip ethtool "no ethtool (the TAP offloads check)"
fi

# Loopback addresses stay with the in-process backend.
in_ns env LD_PRELOAD="$lib" USOCK_NETIF=tap:ut0 USOCK_NETIF_ADDR=10.77.0.2/24 \
  timeout 20 python3 -c '
import socket
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(1)
c = socket.create_connection(l.getsockname()); a, _ = l.accept()
c.sendall(b"x"); print("ok" if a.recv(1) == b"x" else "FAIL")' >"$work/lo" 2>&1
check "127.0.0.1 stays on the in-process backend" "$(cat "$work/lo")" grep -q '^ok' "$work/lo"

# A value that does not parse stops the program at its first socket call.
in_ns env LD_PRELOAD="$lib" USOCK_NETIF=tap:ut0 USOCK_NETIF_ADDR=10.77.0.2/33 \
  timeout 20 python3 -c 'import socket; socket.socket(); print("made")' >"$work/badcfg" 2>&1
rc=$?
check "a bad USOCK_NETIF_ADDR stops the program with the reason (status 2)" \
  "status $rc: $(cat "$work/badcfg")" \
  test "$rc" = 2 -a "$(grep -c 'USOCK_NETIF_ADDR=10.77.0.2/33' "$work/badcfg")" = 1
# A device that cannot be used: AF_INET sockets fail, the reason is said.
in_ns env LD_PRELOAD="$lib" USOCK_NETIF=packet:nosuch0 USOCK_NETIF_ADDR=10.77.0.2/24 \
  timeout 20 python3 -c '
import socket
try:
    socket.socket(); print("made")
except OSError as e:
    print("refused", e.errno)' >"$work/baddev" 2>&1
check "an unusable device: socket() fails, the reason on stderr" "$(cat "$work/baddev")" \
  grep -q "cannot attach to interface nosuch0" "$work/baddev"

summary

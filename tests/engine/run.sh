#!/usr/bin/env bash
# tests/engine/run.sh: the engine backend (USOCK_NETIF) against the
# kernel's TCP/IP, over a TAP device, in a network namespace of its own.
#
# As root: makes namespace usk17-XXXX with TAP device ut0 (the kernel's side
# 10.77.0.1/24 and fd77::1/64) and a veth pair va/vb (the engine on vb
# through AF_PACKET, USOCK_NETIF=packet:vb; the kernel on va, 10.78.0.1/24
# and fd78::1/64), then runs tests/engine/peer.py on both
# sides: the library's side preloaded with
# USOCK_NETIF=tap:ut0 USOCK_NETIF_ADDR=10.77.0.2/24,fd77::2/64. Checks:
# TCP both ways (10 MB each way, SHA-256 compared) with the library as
# client and as server, IPv4 and IPv6; UDP echo both ways; ECONNREFUSED for
# blocking and non-blocking connects; the addresses each side sees; a bad
# USOCK_NETIF value and an unusable device. The namespace goes at every
# exit. Without root, namespaces or /dev/net/tun: a skip (tests/README.md).
#
# Run: make lib && tests/engine/run.sh   (BYTES=... to change the size)
set -u
. "$(dirname "${BASH_SOURCE[0]}")/../preload/lib.sh"

lib=$PWD/target/release/libuserspacesock.so
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
# The second device kind: an AF_PACKET socket on vb, one end of a veth
# pair whose other end va is the kernel's (10.78.0.1/24, fd78::1/64).
in_ns ip link add va type veth peer name vb
in_ns ip addr add 10.78.0.1/24 dev va
in_ns ip addr add fd78::1/64 dev va nodad
in_ns ip link set va up
in_ns ip link set vb up

# The library's side (preloaded, on the engine) and the kernel's, as
# commands timeout(1) can run.
# wrapper FILE NETIF ADDRS: a command that runs its arguments preloaded,
# on the engine over NETIF with ADDRS.
wrapper() {
  cat >"$1" <<END
#!/bin/sh
exec ip netns exec $ns env LD_PRELOAD=$lib USOCK_NETIF=$2 \\
  USOCK_NETIF_ADDR=$3 USOCK_STATS=$work/stats "\$@"
END
  chmod +x "$1"
}
wrapper "$work/on_lib" tap:ut0 10.77.0.2/24,fd77::2/64
wrapper "$work/on_packet" packet:vb 10.78.0.2/24,fd78::2/64
printf '#!/bin/sh\nexec ip netns exec %s "$@"\n' "$ns" >"$work/on_kernel"
chmod +x "$work/on_kernel"
on_lib=$work/on_lib on_kernel=$work/on_kernel on_packet=$work/on_packet
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
tcp_case packet-tcp4-lib-client "$on_kernel" "$on_packet" 10.78.0.1 10.78.0.1 5011
tcp_case packet-tcp6-lib-server "$on_packet" "$on_kernel" :: fd78::2 5012
udp_case packet-udp4-lib-client "$on_kernel" "$on_packet" 10.78.0.1 10.78.0.1 5111 10.78.0.2
udp_case udp4-lib-client "$on_kernel" "$on_lib" 10.77.0.1 10.77.0.1 5101 10.77.0.2
udp_case udp4-lib-server "$on_lib" "$on_kernel" 0.0.0.0 10.77.0.2 5102 10.77.0.1
udp_case udp6-lib-client "$on_kernel" "$on_lib" fd77::1 fd77::1 5103 fd77::2
udp_case udp6-lib-server "$on_lib" "$on_kernel" :: fd77::2 5104 fd77::1

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

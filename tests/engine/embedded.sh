#!/usr/bin/env bash
# tests/engine/embedded.sh: issue 17's RTOS path end to end. The no_std
# build of the library (target/embedded/libuserspacesock.a), linked into
# c-tests/embedded_netif_host.c with its own platform table and its own
# Ethernet driver (a C device table, struct usock_netif_ops, over a TAP
# device the program opens itself), against the kernel's TCP/IP on the TAP
# device's other side: tests/engine/embedded_peer.py in the same namespace.
#
# For each way of running the engine without a thread of the library's
# (single: one thread, blocking calls, the library's waits run it; task: a
# network task calls usock_netif_poll, woken by the driver and the
# library's kick; coop: no waits at all, one loop): a namespace of its own
# with TAP device ue0 (the kernel 10.78.0.1/24 and fd78::1/64), the peer's servers (TCP
# 7001 sink-then-source, UDP 7003 echo) and, in the blocking modes, its
# client of the C host's server (1 MiB, SHA-256 compared). The C host's
# own checks: 1 MiB to the kernel and back (FNV-1a; 256 KiB over IPv6, NDP
# included), ECONNREFUSED, UDP
# echo, RAM per engine socket. Without root, namespaces or /dev/net/tun: a
# skip by name (root, netns, tun; tests/README.md).
#
# Run: make embedded && tests/engine/embedded.sh   (builds build/embedded_netif_host
# itself when it is missing; MODES=... to choose)
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

host=${EMBEDDED_NETIF_HOST:-$PWD/build/embedded_netif_host}
modes=${MODES:-single task coop}

engine_prereqs
if ! need python3 -- "the embedded engine test"; then summary; exit; fi
if [ ! -x "$host" ]; then
  if [ ! -f target/embedded/libuserspacesock.a ]; then
    bad "no target/embedded/libuserspacesock.a: run make embedded first"
    summary
    exit
  fi
  mkdir -p build
  cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -O1 -g -pthread -Iinclude -DUSOCK_EMBEDDED \
    -o "$host" c-tests/embedded_netif_host.c target/embedded/libuserspacesock.a -Wl,--gc-sections ||
    { bad "cannot build $host"; summary; exit; }
fi

for m in $modes; do
  mk_ns "$m" || continue
  mk_tap "$m" ue0 10.78.0.1/24 fd78::1/64 || continue
  client=()
  [ "$m" = coop ] || client=(--client 10.78.0.2)
  spawn "peer-$m" 120 ip netns exec "${ns[$m]}" "$PY" -u tests/engine/embedded_peer.py "${client[@]}" \
    > "$work/peer-$m.log" 2>&1
  await_server "$m: the kernel's servers" "peer-$m" "$work/peer-$m.log" '^ready' || continue
  rc=0
  timeout -k 5 120 ip netns exec "${ns[$m]}" "$host" "$m" ue0 > "$work/host-$m.log" 2>&1 || rc=$?
  sed "s/^/  [$m] /" "$work/host-$m.log"
  check "$m: the C host's checks over the engine (embedded_netif_host $m)" \
    "status $rc: $(tail_of "$work/host-$m.log")" [ "$rc" = 0 ]
  if [ "$m" = coop ]; then
    stop "peer-$m"
  else
    prc=0
    reap "peer-$m" || prc=$?
    sed "s/^/  [$m peer] /" "$work/peer-$m.log"
    check "$m: a kernel client's 1 MiB echoed by the C host's server, SHA-256 equal" \
      "peer status $prc: $(tail_of "$work/peer-$m.log")" [ "$prc" = 0 ]
  fi
done
summary

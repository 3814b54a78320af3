#!/usr/bin/env bash
# tests/engine/ctests.sh - the C tests of c-tests/ that make sense over a
# network (issue 17), run on the engine backend over a TAP device and, as
# the reference, on the kernel, at the same network addresses.
#
# The C test programs talk to themselves: their sockets bind and connect to
# tl_addr/tl_loop's address, loopback unless TL_INET_ADDR / TL_INET6_ADDR
# name another (c-tests/testlib.c). Here they name 10.77.0.2 and fd77::2:
#   - the library side: build/c-tests/usock/PROG in namespace "lib" under
#       bin/usockrun --netif tap:ut0 --addr 10.77.0.2/24,fd77::2/64
#     where TAP device ut0 is a port of the kernel bridge br0 in hairpin
#     mode: every frame the engine sends to its own address (ARP and NDP
#     for it too) crosses the TAP device into the kernel's bridge and comes
#     back, so both ends of each connection are the engine's sockets and
#     every segment goes over the link. A kernel host (namespace "peer",
#     10.77.0.1 and fd77::1 on a veth in the same bridge) is the engine's
#     gateway and sees the link's broadcasts;
#   - the reference: build/c-tests/kernel/PROG in namespace "kern", whose
#     kernel holds 10.77.0.2/24 and fd77::2/64 (on a veth pair of its own).
# The cases are those listed in tests/engine/ctests.cases (TL_ONLY), with
# the reasons for the ones left out. A case fails here when the kernel
# passes it and the library does not; one the kernel does not pass is
# reported and not counted. Each program's run must show the engine in its
# USOCK_STATS. ALL=1 runs every inet/inet6 case of the programs PROGS (to
# revise the list), or those matching the ERE CASES. Needs root; skips (tests/README.md) without namespaces or
# /dev/net/tun.
#
# Run: make lib && make -C c-tests kernel usock && tests/engine/ctests.sh
set -uo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
if [ "$ENGINE_CONTROL" = 1 ]; then
  echo "# ctests.sh: no control run of its own: every run has the kernel reference"
  exit 0
fi
engine_prereqs

cases=$PWD/tests/engine/ctests.cases
progs=${PROGS:-$(awk -F/ '/^t_/ { print $1 }' "$cases" | sort -u)}
for p in $progs; do
  for v in kernel usock; do
    if [ ! -x "build/c-tests/$v/$p" ]; then
      bad "no build/c-tests/$v/$p: run make -C c-tests kernel usock first"
      summary
      exit
    fi
  done
done

L4=10.77.0.2 L6=fd77::2 K4=10.77.0.1 K6=fd77::1
mk_ns lib && mk_ns peer && mk_ns kern || { summary; exit; }
if ! { mk_tap lib ut0 && mk_veth lib lv0 peer pv0 && mk_bridge lib br0 ut0 lv0 &&
  ip -n "${ns[lib]}" link set dev ut0 type bridge_slave hairpin on &&
  ip -n "${ns[lib]}" link set dev br0 type bridge mcast_snooping 0 &&
  addr_add peer pv0 "$K4/24" "$K6/64" &&
  ip -n "${ns[kern]}" link add k0 type veth peer name k1 && addr_add kern k0 "$L4/24" "$L6/64" &&
  ip -n "${ns[kern]}" link set k0 up && ip -n "${ns[kern]}" link set k1 up; }; then
  bad "the namespaces could not be set up"
  summary
  exit
fi

# The list TL_ONLY takes: the listed cases, or (ALL=1) every inet/inet6
# case of the programs, as the kernel build lists them (-l).
only=$work/only
if [ "${ALL:-0}" = 1 ]; then
  for p in $progs; do
    "build/c-tests/kernel/$p" -l | grep -E '/inet6?$' | grep -E -- "${CASES:-.}" | sed "s|^|$p/|"
  done > "$only"
else
  cp "$cases" "$only"
fi

export TL_INET_ADDR=$L4 TL_INET6_ADDR=$L6 TL_TIMEOUT=${TL_TIMEOUT:-20}
# results FILE: "ok NAME", "FAIL NAME", "skip NAME" lines of a run.
results() { awk '$1 == "ok" || $1 == "FAIL" || $1 == "skip" { print $1, $2 }' "$1"; }
for p in $progs; do
  # (a program the list does not name would run all its cases)
  grep -q "^$p/" "$only" || continue
  timeout 600 ip netns exec "${ns[kern]}" env TL_ONLY="$only" "build/c-tests/kernel/$p" \
    > "$work/$p.kernel" 2>&1
  lib_prefix lib ut0 "$L4/24,$L6/64" "$K4,$K6" 02:77:00:00:00:02 "$work/stats.$p"
  timeout 600 "${LIB_RUN[@]}" env TL_ONLY="$only" "build/c-tests/usock/$p" \
    > "$work/$p.usock" 2>&1
  carried "$work/stats.$p" "$p"
  [ -z "${CTESTS_LOGS:-}" ] || cp "$work/$p.usock" "$work/$p.kernel" "$CTESTS_LOGS/"
  results "$work/$p.kernel" | sort -k2 > "$work/$p.k"
  results "$work/$p.usock" | sort -k2 > "$work/$p.u"
  want=$(grep -c "^$p/" "$only")
  check "$p: the kernel ran the $want listed cases" "$(tail_of "$work/$p.kernel")" \
    [ "$(wc -l < "$work/$p.k")" = "$want" ]
  while read -r kres name; do
    ures=$(awk -v n="$name" '$2 == n { print $1 }' "$work/$p.u")
    detail=$(grep -F "[$name]" "$work/$p.usock" | head -n 3 | tr '\n' '|' | cut -c1-600)
    [ -n "$ures" ] || detail="the program ended first: $(tail_of "$work/$p.usock")"
    if [ "$kres" != ok ]; then
      echo "# $p/$name: the kernel: $kres, the library: ${ures:-not run} (not counted)"
    elif [ "$ures" = ok ]; then
      ok "$p/$name"
    else
      bad "$p/$name: the kernel passes, the library: ${ures:-not run}: $detail"
    fi
  done < "$work/$p.k"
done
summary

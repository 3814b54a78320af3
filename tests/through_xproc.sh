#!/usr/bin/env bash
# tests/through_xproc.sh COMMAND [ARG...]: runs COMMAND on a fresh
# cross-process network (USOCK_NET) and fails unless the cross-process
# backend carried sockets. Without the check, a rerun "through xproc" that
# silently ran on another backend would prove nothing about xproc.
# XPROC_ADMIT=USER: the network admits USER beside its owner, as
# `usockrun --user USER` makes it (the directory becomes USER's and
# USOCK_NET_USERS names root and USER): for tests whose processes drop to
# another user and must still reach the network.
set -uo pipefail
net=$(mktemp -d)
stats=$net.stats
trap 'rm -rf "$net" "$stats"' EXIT
if [ -n "${XPROC_ADMIT-}" ]; then
  chown "$XPROC_ADMIT" "$net" || exit 2
  export USOCK_NET_USERS="0,$(id -u "$XPROC_ADMIT")"
fi
USOCK_NET=$net USOCK_STATS=$stats "$@"
rc=$?
[ "$rc" = 0 ] || { echo "through_xproc: $* exited $rc"; exit "$rc"; }
# The cross-process backends: xproc, and shm for TCP unless USOCK_SHM=0.
claims=$(awk '$2 == "xproc" || $2 == "shm" { sub("claims=", "", $3); n += $3 } END { print n + 0 }' "$stats" 2>/dev/null)
other=$(awk '$2 != "xproc" && $2 != "shm" { sub("claims=", "", $3); n += $3 } END { print n + 0 }' "$stats" 2>/dev/null)
if [ "${claims:-0}" -eq 0 ]; then
  echo "through_xproc: FAIL: no cross-process backend carried a socket of: $*"
  exit 1
fi
echo "through_xproc: the cross-process backends carried $claims sockets (other backends: $other)"

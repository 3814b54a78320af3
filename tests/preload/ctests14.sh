#!/usr/bin/env bash
# tests/preload/ctests14.sh - issue 14's C tests (c-tests/t_unix_*.c, the
# kernel build) preloaded, three ways:
#   launcher  bin/usockrun, default routes: AF_UNIX stays on the kernel, so
#             every case must pass as it does without the library (a
#             refusal before routing, e.g. of SOCK_SEQPACKET, fails here);
#   user      bin/usockrun --route "user unix": AF_UNIX in the library,
#             through the cross-process backend (the launcher sets
#             USOCK_NET);
#   inproc    LD_PRELOAD without the launcher and without USOCK_NET,
#             USOCK_ROUTE="user unix": AF_UNIX in the library, in-process
#             (the loopback backend), as a linked program has it.
# Each way runs the cases the library passes there (TL_ONLY):
# c-tests/conformance14-launcher.pass, conformance14-user.pass and
# conformance14.pass (the linked list); c-tests/inventory14.py runs them
# all. One line per program and way; exit status 0 only if every case
# passed. MODES="launcher user inproc" (default) picks the ways;
# PROG_TIMEOUT (s, 120).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
MODES=${MODES:-launcher user inproc}
lib=$PWD/target/release/libuserspacesock.so
[ -d build/c-tests/kernel ] || make -s -C c-tests kernel >/dev/null || { bad "cannot build c-tests kernel"; summary; exit; }
make -s -C c-tests kernel >/dev/null
for m in $MODES; do
  export TL_ONLY=$PWD/c-tests/conformance14-launcher.pass
  run=("$PWD/bin/usockrun" --net "$net")
  case $m in
    user)
      run+=(--route "user unix")
      export TL_ONLY=$PWD/c-tests/conformance14-user.pass ;;
    inproc)
      run=(env -u USOCK_NET USOCK_ROUTE="user unix" LD_PRELOAD="$lib")
      export TL_ONLY=$PWD/c-tests/conformance14.pass ;;
  esac
  for prog in build/c-tests/kernel/t_unix_*; do
    [ -x "$prog" ] || continue
    name=$(basename "$prog")
    log="$work/$m-$name.log"
    n=$("$prog" -l | grep -c .)
    ( cd /tmp && timeout -k 5 "${PROG_TIMEOUT:-120}" "${run[@]}" "$OLDPWD/$prog" ) >"$log" 2>&1
    rc=$?
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$log" | tail -n1)
    if [ "$rc" = 0 ] && [ -n "$line" ] && [[ $line == "$n passed, 0 failed, 0 skipped" ]]; then
      ok "$m: $name: $line"
    else
      bad "$m: $name: ${line:-no summary} of $n cases (exit $rc)"
      grep -E '^FAIL|^  [^ ]+:[0-9]+:' "$log" | head -n 8 | sed 's/^/    /'
    fi
  done
done
summary

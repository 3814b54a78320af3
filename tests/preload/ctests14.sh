#!/usr/bin/env bash
# tests/preload/ctests14.sh - issue 14's C tests (c-tests/t_unix_*.c, the
# kernel build) preloaded under bin/usockrun, two ways:
#   launcher  default routes: AF_UNIX stays on the kernel, so every case
#             must pass as it does without the library (a refusal before
#             routing, e.g. of SOCK_SEQPACKET, fails here);
#   user      --route "user unix": AF_UNIX in the library, in-process.
# Each way runs the cases the library passes (TL_ONLY): launcher those of
# c-tests/conformance14-launcher.pass, user those of conformance14-user.pass
# (the user way goes through the cross-process backend: the launcher sets
# USOCK_NET);
# c-tests/inventory14.py runs them all.
# One line per program and way; exit status 0 only if every case passed.
# MODES="launcher user" (default) picks the ways; PROG_TIMEOUT (s, 120).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
MODES=${MODES:-launcher user}
[ -d build/c-tests/kernel ] || make -s -C c-tests kernel >/dev/null || { bad "cannot build c-tests kernel"; summary; exit; }
make -s -C c-tests kernel >/dev/null
for m in $MODES; do
  route=()
  export TL_ONLY=$PWD/c-tests/conformance14-launcher.pass
  if [ "$m" = user ]; then
    route=(--route "user unix")
    export TL_ONLY=$PWD/c-tests/conformance14-user.pass
  fi
  for prog in build/c-tests/kernel/t_unix_*; do
    [ -x "$prog" ] || continue
    name=$(basename "$prog")
    log="$work/$m-$name.log"
    n=$("$prog" -l | grep -c .)
    ( cd /tmp && timeout -k 5 "${PROG_TIMEOUT:-120}" "$OLDPWD/bin/usockrun" --net "$net" "${route[@]}" -- "$OLDPWD/$prog" ) >"$log" 2>&1
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

#!/usr/bin/env bash
# run.sh VARIANT... : runs every test program built for each variant
# ($OUT/<variant>/t_*), prints one line per program, the failing cases and
# the skips, and a final line counting distinct cases and case-runs:
#   "N cases × V variants: P case-runs passed, F failed, S skipped"
# Exits nonzero if anything failed: a failed or unrun case, a program that
# exited nonzero or printed any sanitizer report (even with exit 0: UBSan
# and a TSan report do not always change the exit status), a variant with
# no build or no programs, or a skip ALLOW_SKIP does not allow (the
# programs count those as failures themselves: testlib.c, t_skip).
# Env: OUT (build dir, default ../build/c-tests), PROG_TIMEOUT (s, default 120).
# Library variants (usock*) run with TL_ONLY=conformance13.pass:conformance14.pass.
set -u
here=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-$here/../build/c-tests}
PROG_TIMEOUT=${PROG_TIMEOUT:-120}
[ $# -gt 0 ] || set -- kernel
# Any line a sanitizer prints about the program: a UBSan "runtime error",
# an ASan/LSan/TSan/MSan report or warning, or a sanitizer's fatal message.
SAN_RE='runtime error|(Address|Leak|Thread|Memory|UndefinedBehavior)Sanitizer'
total_pass=0 total_fail=0 total_skip=0 bad=0 progs=0 bad_progs=0
cases_file=$(mktemp /tmp/usock-ct-cases-XXXXXX)
logdir=$(mktemp -d /tmp/usock-ct-logs-XXXXXX)
for v in "$@"; do
    dir=$OUT/$v
    if [ ! -d "$dir" ]; then
        echo "$v: FAIL no build at $dir (run make -C c-tests $v)"
        bad=1; continue
    fi
    wrap=()
    case $v in *tsan*) wrap=(setarch "$(uname -m)" -R) ;; esac
    # Against the library, issue 13's and 14's programs run the cases it
    # passes (conformance1[34].pass, TL_ONLY in testlib.c); the kernel runs
    # them all.
    case $v in
        usock*) export TL_ONLY=$here/conformance13.pass:$here/conformance14.pass ;;
        *) unset TL_ONLY ;;
    esac
    nprogs=0
    for prog in "$dir"/t_*; do
        [ -x "$prog" ] || continue
        nprogs=$((nprogs + 1)); progs=$((progs + 1))
        base=$(basename "$prog")
        name=$v/$base
        log=$logdir/$v-$base.log
        # The cases the program has, to count distinct cases across variants
        # and to see cases a crash or a watchdog left unrun.
        if ! listed=$( cd /tmp && timeout -k 5 60 "${wrap[@]}" "$prog" -l 2>/dev/null ); then
            listed=""
        fi
        nlisted=$(grep -c . <<<"$listed")
        [ -n "$listed" ] && sed "s|^|$base/|" <<<"$listed" >>"$cases_file"
        start=${EPOCHREALTIME/./}
        ( cd /tmp && timeout -k 5 "$PROG_TIMEOUT" "${wrap[@]}" "$prog" ) >"$log" 2>&1
        rc=$?
        el=$(( (${EPOCHREALTIME/./} - start) / 100000 )); secs=$((el / 10)).$((el % 10))
        line=$(grep -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$log" | tail -n1)
        if [ -n "$line" ]; then
            read -r p _ f _ s _ <<<"${line//,/}"
        else
            # No summary (a crash): the cases it finished are in the log.
            p=$(grep -c '^ok   ' "$log"); f=$(grep -c '^FAIL ' "$log"); s=$(grep -c '^skip ' "$log")
        fi
        unrun=$((nlisted - p - f - s))
        [ "$unrun" -gt 0 ] && f=$((f + unrun))
        total_pass=$((total_pass + p)); total_fail=$((total_fail + f)); total_skip=$((total_skip + s))
        why=()
        [ "$rc" -ne 0 ] && why+=("exit $rc")
        [ "$rc" -eq 124 ] && why=("timeout")
        [ -z "$line" ] && why+=("no summary (crash?)")
        [ "$nlisted" -eq 0 ] && why+=("no case listed by -l")
        [ "$unrun" -gt 0 ] && why+=("$unrun cases not run")
        san=$(grep -cE "$SAN_RE" "$log")
        [ "$san" -gt 0 ] && why+=("$san sanitizer lines")
        if [ "${#why[@]}" -eq 0 ] && [ "$f" -eq 0 ]; then
            printf '%-34s ok    %4d passed, %d skipped (%ss)\n' "$name" "$p" "$s" "$secs"
            grep -E '^SKIP ' "$log" | sed 's/^/    /'
        else
            bad=1; bad_progs=$((bad_progs + 1))
            printf '%-34s FAIL  %d passed, %d failed, %d skipped (%s, %ss)\n' \
                "$name" "$p" "$f" "$s" "$(IFS=,; echo "${why[*]}" | sed 's/,/, /g')" "$secs"
            grep -E '^(FAIL|SKIP |  [^ ]+:[0-9]+:|  \[)' "$log" | sed 's/^/    /' | head -n 60
            if [ -z "$line" ] || [ "$san" -gt 0 ]; then
                grep -E -A12 "ERROR: |WARNING: |$SAN_RE" "$log" | head -n 40 | sed 's/^/    | /'
                tail -n 5 "$log" | sed 's/^/    > /'
            fi
        fi
    done
    if [ "$nprogs" -eq 0 ]; then
        echo "$v: FAIL no test program in $dir"
        bad=1
    fi
done
ncases=$(sort -u "$cases_file" | grep -c .)
rm -f "$cases_file"
echo "logs: $logdir"
echo "$ncases cases × $# variants ($*): $total_pass case-runs passed, $total_fail failed, $total_skip skipped; $progs programs, $bad_progs failed"
[ "$bad" -eq 0 ] && [ "$total_fail" -eq 0 ]

#!/usr/bin/env bash
# run.sh VARIANT... : runs every test program built for each variant
# (build/c-tests/<variant>/t_*), prints one line per program, the failing
# cases of failed programs, and a final "N passed, N failed" line summing
# every case of every program. Exits nonzero if anything failed.
# Env: OUT (build dir, default ../build/c-tests), PROG_TIMEOUT (s, default 120).
set -u
here=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-$here/../build/c-tests}
PROG_TIMEOUT=${PROG_TIMEOUT:-120}
[ $# -gt 0 ] || set -- kernel
total_pass=0 total_fail=0 bad=0
logdir=$(mktemp -d /tmp/usock-ct-logs-XXXXXX)
for v in "$@"; do
    dir=$OUT/$v
    if [ ! -d "$dir" ]; then
        echo "$v: no build at $dir (run make -C c-tests $v)"
        total_fail=$((total_fail + 1)); bad=1; continue
    fi
    wrap=()
    case $v in *tsan*) wrap=(setarch "$(uname -m)" -R) ;; esac
    for prog in "$dir"/t_*; do
        [ -x "$prog" ] || continue
        name=$v/$(basename "$prog")
        log=$logdir/$v-$(basename "$prog").log
        start=${EPOCHREALTIME/./}
        ( cd /tmp && timeout -k 5 "$PROG_TIMEOUT" "${wrap[@]}" "$prog" ) >"$log" 2>&1
        rc=$?
        el=$(( (${EPOCHREALTIME/./} - start) / 100000 )); secs=$((el / 10)).$((el % 10))
        line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n1)
        if [ -n "$line" ]; then
            p=${line%% passed*}; f=${line#*passed, }; f=${f%% failed*}
        else
            p=0; f=1
        fi
        if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
        total_pass=$((total_pass + p)); total_fail=$((total_fail + f))
        if [ "$rc" -eq 0 ] && [ "$f" -eq 0 ]; then
            printf '%-34s ok    %4d passed (%ss)\n' "$name" "$p" "$secs"
        else
            bad=1
            why="exit $rc"; [ "$rc" -eq 124 ] && why="timeout"
            [ -z "$line" ] && why="$why, no summary (crash?)"
            printf '%-34s FAIL  %s (%s, %ss)\n' "$name" "${line:-?}" "$why" "$secs"
            grep -E '^(FAIL|  [^ ]+:[0-9]+:)' "$log" | sed 's/^/    /' | head -n 60
            if [ -z "$line" ] || grep -qE 'Sanitizer|runtime error' "$log"; then
                grep -E -A12 'ERROR: |WARNING: ThreadSanitizer|runtime error' "$log" | head -n 40 | sed 's/^/    | /'
                tail -n 5 "$log" | sed 's/^/    > /'
            fi
        fi
    done
done
echo "logs: $logdir"
echo "$total_pass passed, $total_fail failed"
[ "$bad" -eq 0 ] && [ "$total_fail" -eq 0 ]

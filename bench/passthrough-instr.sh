#!/bin/sh
# bench/passthrough-instr.sh - instructions the library adds to read()/write()
# on a pipe, counted by callgrind: repeatable whatever the machine's load,
# where the wall-clock figure of build/passthrough is not.
#
# build/passthrough -c interposed|direct makes ITERS write+read pairs inside
# count_interposed() or count_direct(); callgrind counts only inside that
# function (--collect-atstart=no --toggle-collect), so start-up, the dladdr
# checks and the warm-up calls are not counted. Both loops are the same code
# calling through a function pointer; the difference per call is what the
# interposed path adds (user-space instructions: the system call itself is
# the same kernel work on both paths and is not counted by callgrind).
#
#   bench/passthrough-instr.sh [PASSTHROUGH_BINARY]     # ITERS=10000
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BIN=${1:-$ROOT/build/passthrough}
ITERS=${ITERS:-10000}
command -v valgrind >/dev/null || { echo "passthrough-instr: valgrind not installed" >&2; exit 2; }
[ -x "$BIN" ] || { echo "passthrough-instr: $BIN not built (make bench-instr builds it)" >&2; exit 2; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for path in interposed direct; do
    if ! valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.$path" \
        --collect-atstart=no --toggle-collect='count_*' \
        "$BIN" -n "$ITERS" -c "$path" >"$tmp/out.$path" 2>"$tmp/err.$path"; then
        echo "passthrough-instr: the $path run failed:" >&2
        cat "$tmp/out.$path" "$tmp/err.$path" >&2
        exit 1
    fi
    # "==PID== Collected : N": the instructions counted inside count_<path>
    n=$(sed -n 's/^==[0-9]*== Collected : *\([0-9]*\)$/\1/p' "$tmp/err.$path")
    [ -n "$n" ] || { echo "passthrough-instr: no 'Collected' line from callgrind ($path)" >&2; cat "$tmp/err.$path" >&2; exit 1; }
    eval "ir_$path=$n"
done
# shellcheck disable=SC2154
awk -v a="$ir_interposed" -v b="$ir_direct" -v n="$ITERS" 'BEGIN {
    calls = 2 * n
    printf "read/write on a pipe, %d write+read pairs each, instructions counted by callgrind:\n", n
    printf "  interposed  %d instructions, %.2f per call\n", a, a / calls
    printf "  direct libc %d instructions, %.2f per call\n", b, b / calls
    printf "added instructions per call: %.2f\n", (a - b) / calls
}'

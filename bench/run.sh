#!/bin/sh
# bench/run.sh - build netbench against the kernel and against libuserspacesock,
# run both RUNS times alternating (kernel, usock, kernel, ...), and print the
# median of each metric per side and the usock/kernel ratio against the goals.
#
#   bench/run.sh                   # LIBDIR defaults to <repo>/target/release
#   LIBDIR=/path RUNS=5 DUR=1.5 bench/run.sh
#   NETBENCH_ARGS="-t stream" bench/run.sh   # extra args for every run
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
LIBDIR=${LIBDIR:-$(cd "$HERE/.." && pwd)/target/release}
RUNS=${RUNS:-5}
DUR=${DUR:-1.5}
NETBENCH_ARGS=${NETBENCH_ARGS:-}
CC=${CC:-cc}
CFLAGS="-O2 -Wall -Wextra -Werror -pthread"
OUT=$HERE/build
RES=$OUT/results
mkdir -p "$OUT"
rm -rf "$RES"
mkdir -p "$RES"

echo "== building"
$CC $CFLAGS -o "$OUT/bench-kernel" "$HERE/netbench.c"
sides=kernel
LIB=$LIBDIR/libuserspacesock.so
if [ ! -f "$LIB" ]; then
    echo "NOTE: $LIB not found: library not built, running the kernel side only"
elif ! nm -D --defined-only "$LIB" 2>/dev/null | awk '$3 == "socket" { f = 1 } END { exit !f }'; then
    echo "NOTE: $LIB does not export 'socket': a usock build would silently use"
    echo "      the kernel's sockets, running the kernel side only"
else
    # --no-as-needed: keep the library even if the linker thinks it unused
    if $CC $CFLAGS -o "$OUT/bench-usock" "$HERE/netbench.c" \
        -L"$LIBDIR" -Wl,--no-as-needed -luserspacesock -Wl,-rpath,"$LIBDIR"; then
        if ldd "$OUT/bench-usock" | grep -q libuserspacesock; then
            sides="kernel usock"
        else
            echo "NOTE: bench-usock does not load libuserspacesock (ldd), kernel only"
        fi
    else
        echo "NOTE: building bench-usock against $LIBDIR failed, kernel side only"
    fi
fi
echo "   sides: $sides; $RUNS runs each, alternating; DUR=$DUR s per test"

echo "== running"
nfail=0
i=1
while [ "$i" -le "$RUNS" ]; do
    for side in $sides; do
        log=$RES/$side.$i
        # shellcheck disable=SC2086
        if timeout 120 "$OUT/bench-$side" -d "$DUR" $NETBENCH_ARGS >"$log" 2>"$log.err"; then
            status=ok
        else
            status="FAILED rc=$?"
            nfail=$((nfail + 1))
        fi
        printf '   run %d %-6s %s  %s\n' "$i" "$side" \
            "$(grep -v '^#' "$log" | tr '\n' ' ')" "$status"
        if [ "$status" != ok ]; then
            sed 's/^/      stderr: /' "$log.err" | head -5
        fi
    done
    i=$((i + 1))
done

# median of the values of metric $2 in files $1.*  (empty if none)
median() {
    cat "$RES/$1".[0-9]* 2>/dev/null | awk -v m="$2" '$1 == m { print $2 }' |
        sort -g | awk '{ v[NR] = $1 } END {
            if (NR == 0) exit
            if (NR % 2) printf "%g\n", v[(NR + 1) / 2]
            else printf "%g\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

echo "== medians of $RUNS runs (usock/kernel ratio; goal from issue 3)"
printf '%-16s %12s %12s %10s  %s\n' metric kernel usock ratio goal
for spec in "stream_MBps >= 3" "pingpong_rtt_us <= 0.33" "conn_per_s >= 5"; do
    set -- $spec
    m=$1 op=$2 goal=$3
    k=$(median kernel "$m")
    u=""
    case " $sides " in *" usock "*) u=$(median usock "$m") ;; esac
    ratio=- verdict=""
    if [ -n "$k" ] && [ -n "$u" ]; then
        ratio=$(awk -v u="$u" -v k="$k" 'BEGIN { printf "%.3f", u / k }')
        verdict=$(awk -v r="$ratio" -v g="$goal" -v op="$op" 'BEGIN {
            ok = (op == ">=") ? (r >= g) : (r <= g); print ok ? "met" : "NOT met" }')
    fi
    printf '%-16s %12s %12s %10s  %s %s %s\n' "$m" "${k:-n/a}" "${u:-n/a}" \
        "$ratio" "$op" "$goal" "$verdict"
done
if [ "$nfail" -ne 0 ]; then
    echo "WARNING: $nfail of the runs failed (medians use the metrics they printed; see $RES/*.err)"
    exit 1
fi

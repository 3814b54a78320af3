#!/usr/bin/env bash
# make test-sanitize: the library itself built under AddressSanitizer and
# under ThreadSanitizer (nightly Rust: -Zsanitizer, with -Zbuild-std so that
# std and every dependency are instrumented too; TSan needs that, since it
# must see std's atomics and locks), each in its own target directory, and
# run against each build:
#   - the C tests and the C pipe backend (c-tests/, variants usock-libasan
#     and usock-libtsan), through c-tests/run.sh: any sanitizer line fails;
#   - the Rust load tests: stress_load on the loopback backend and again
#     through the cross-process backend (tests/through_xproc.sh), and
#     stress_xproc.
# No suppression: a report from the library is a failure.
# Without a nightly toolchain that has rust-src, this is a skip named
# "nightly" (tests/README.md): a failure unless ALLOW_SKIP names it.
# Env: CARGO, MAKE, NIGHTLY (the toolchain, default nightly), SANITIZERS
# (default "address thread").
set -uo pipefail
cd "$(dirname "$0")/.."
CARGO=${CARGO:-cargo}
MAKE=${MAKE:-make}
NIGHTLY=${NIGHTLY:-nightly}
SANITIZERS=${SANITIZERS:-address thread}
TARGET=x86_64-unknown-linux-gnu
# As c-tests/run.sh: any line a sanitizer prints about the program.
SAN_RE='runtime error|(Address|Leak|Thread|Memory|UndefinedBehavior)Sanitizer'

# The skip convention (tests/README.md) for this suite.
skip() {
    local name=$1 reason=$2 a
    echo "SKIP $name: $reason"
    if [ -n "${USOCK_SKIP_LOG:-}" ]; then
        mkdir -p "$(dirname "$USOCK_SKIP_LOG")"
        echo "sanitize: $name: $reason" >>"$USOCK_SKIP_LOG" ||
            { echo "sanitize: cannot append to USOCK_SKIP_LOG=$USOCK_SKIP_LOG"; exit 1; }
    fi
    for a in ${ALLOW_SKIP//,/ }; do
        if [ "$a" = all ] || [ "$a" = "$name" ]; then
            echo "sanitize: skipped ($name allowed by ALLOW_SKIP)"; exit 0
        fi
    done
    echo "sanitize: FAIL: skip not allowed (set ALLOW_SKIP=$name to allow)"
    exit 1
}

if ! "$CARGO" "+$NIGHTLY" --version >/dev/null 2>&1; then
    skip nightly "no $NIGHTLY Rust toolchain for -Zsanitizer (rustup toolchain install nightly --profile minimal --component rust-src)"
fi
sysroot=$(rustc "+$NIGHTLY" --print sysroot 2>/dev/null)
if [ ! -d "$sysroot/lib/rustlib/src/rust/library" ]; then
    skip nightly "the $NIGHTLY toolchain has no rust-src, which -Zbuild-std needs (rustup component add rust-src --toolchain $NIGHTLY)"
fi

# The Rust load tests: the exit status and any sanitizer line.
rust_run() {
    local log rc
    log=$(mktemp /tmp/usock-san-XXXXXX.log)
    "${wrap[@]}" "$@" >"$log" 2>&1
    rc=$?
    grep -E '^(stress|xproc stress|through_xproc)|test result' "$log" | sed 's/^/   /'
    if [ "$rc" -ne 0 ] || grep -qE "$SAN_RE" "$log"; then
        echo "   FAIL (exit $rc) under $san: $*"
        grep -E -A30 "ERROR: |WARNING: |$SAN_RE|panicked" "$log" | head -n 80 | sed 's/^/   | /'
        echo "   log: $log"
        return 1
    fi
    rm -f "$log"
}
t_start=$SECONDS
fail=0
for san in $SANITIZERS; do
    case $san in
        address) v=usock-libasan; wrap=() ;;
        # TSan's shadow memory needs the fixed layout ASLR may break.
        thread) v=usock-libtsan; wrap=(setarch "$(uname -m)" -R) ;;
        *) echo "sanitize: unknown sanitizer $san"; exit 1 ;;
    esac
    export RUSTFLAGS="-Zsanitizer=$san"
    cargo_san=("$CARGO" "+$NIGHTLY")
    san_args=(--release -Zbuild-std --target "$TARGET" --target-dir "target/san-$san")

    echo "== the library under -Zsanitizer=$san (target/san-$san)"
    t0=$SECONDS
    "${cargo_san[@]}" build "${san_args[@]}" --lib || { fail=1; continue; }
    "${cargo_san[@]}" test "${san_args[@]}" --no-run --test stress_load --test stress_xproc ||
        { fail=1; continue; }
    echo "   built in $((SECONDS - t0)) s"

    echo "== C tests and the pipe backend against it ($v)"
    t0=$SECONDS
    "$MAKE" -s -C c-tests "$v" || { fail=1; continue; }
    "$MAKE" -s -C c-tests OUT="$PWD/build/pipe-tests" "pipe-$v" "dgram-$v" || { fail=1; continue; }
    OUT=$PWD/build/c-tests c-tests/run.sh "$v" || fail=1
    OUT=$PWD/build/pipe-tests c-tests/run.sh "$v" || fail=1
    echo "   C tests in $((SECONDS - t0)) s"

    echo "== Rust load tests against it"
    t0=$SECONDS
    rust_run "${cargo_san[@]}" test "${san_args[@]}" --test stress_load -- --nocapture || fail=1
    rust_run tests/through_xproc.sh "${cargo_san[@]}" test "${san_args[@]}" --test stress_load -- --nocapture || fail=1
    rust_run "${cargo_san[@]}" test "${san_args[@]}" --test stress_xproc -- --nocapture || fail=1
    echo "   Rust load tests in $((SECONDS - t0)) s"
done
unset RUSTFLAGS
echo "sanitize: $((SECONDS - t_start)) s in all"
if [ "$fail" -ne 0 ]; then
    echo "sanitize: FAIL"
    exit 1
fi
echo "sanitize: the library under $SANITIZERS: no sanitizer report, every test passed"

#!/usr/bin/env bash
# The ABI check's negative test: copies include/userspacesock.h, breaks the
# copy in one way at a time, runs the ABI check against it
# (USOCK_ABI_INCLUDE, see build.rs) and asserts that the check FAILS and
# names what was broken. An unmodified copy must pass first: otherwise a
# copy the check cannot read at all would make every mutation "fail" for
# the wrong reason.
#   field-type    usock_fragment.flags: uint32_t -> uint16_t
#                 (the C shim's field-type function no longer compiles)
#   field-order   usock_fragment.kind and .flags swapped, same types
#                 (only the field offsets differ)
#   constant      USOCK_BACKEND_ABI_VERSION 1 -> 2 (compared by value)
set -uo pipefail
cd "$(dirname "$0")"
CARGO=${CARGO:-cargo}
hdr=../include/userspacesock.h
scratch=$(mktemp -d /tmp/usock-abi-neg-XXXXXX)
trap 'rm -rf "$scratch"' EXIT
bad=0

# check NAME pass|fail PATTERN: runs the ABI check on $scratch/NAME/.
check() {
    local name=$1 want=$2 pattern=$3 dir=$scratch/$1
    if [ "$want" = fail ] && cmp -s "$hdr" "$dir/userspacesock.h"; then
        echo "FAIL $name: the mutation did not change the header (has it changed?)"
        bad=1; return
    fi
    USOCK_ABI_INCLUDE=$dir $CARGO run --release >"$dir.log" 2>&1
    local rc=$? hit
    hit=$(grep -m1 -oE ".{0,30}($pattern).{0,50}" "$dir.log")
    if [ "$want" = pass ] && [ "$rc" -eq 0 ] && [ -n "$hit" ]; then
        echo "ok   $name: the ABI check passes ($hit)"
    elif [ "$want" = fail ] && [ "$rc" -ne 0 ] && [ -n "$hit" ]; then
        echo "ok   $name: the ABI check fails as it must: $hit"
    else
        echo "FAIL $name: expected the ABI check to $want matching /$pattern/; exit $rc:"
        grep -vE '^\s*(Compiling|cargo:)' "$dir.log" | tail -n 20 | sed 's/^/    /'
        bad=1
    fi
}

copy() { mkdir -p "$scratch/$1" && cp "$hdr" "$scratch/$1/userspacesock.h"; }

copy unmodified
check unmodified pass '^PASSED [0-9]+ tests'

copy field-type
sed -i '/^typedef struct usock_fragment {/,/^}/ s/^  uint32_t flags;/  uint16_t flags;/' \
    "$scratch/field-type/userspacesock.h"
check field-type fail 'usock_fragment_flags'

copy field-order
awk '/^typedef struct usock_fragment \{/ { in_s = 1 }
     in_s && $0 == "  uint32_t kind;"  { print "  uint32_t flags;"; next }
     in_s && $0 == "  uint32_t flags;" { print "  uint32_t kind;"; next }
     /^}/ { in_s = 0 }
     { print }' "$hdr" >"$scratch/field-order/userspacesock.h"
check field-order fail 'bad field offset (kind|flags) of usock_fragment'

copy constant
sed -i 's/^#define USOCK_BACKEND_ABI_VERSION 1$/#define USOCK_BACKEND_ABI_VERSION 2/' \
    "$scratch/constant/userspacesock.h"
check constant fail 'bad USOCK_BACKEND_ABI_VERSION value'

[ "$bad" -eq 0 ] && echo "abi negative test: every broken header copy was caught"
exit "$bad"

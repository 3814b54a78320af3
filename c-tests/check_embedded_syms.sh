#!/usr/bin/env bash
# The no_std archive must reference nothing of an operating system: every
# symbol it needs from outside itself must be on the allowlist below, which
# holds only what any freestanding C toolchain supplies. Anything else
# (pthread, sockets, eventfd, dlsym, errno, a system-call wrapper, malloc,
# or a symbol nobody defines) fails, as does a missing or unreadable
# archive.
set -euo pipefail
a=${1:-target/embedded/libuserspacesock.a}

# The C library's freestanding string functions, which rustc's code
# generation calls for copies and comparisons (a C compiler's does too),
# and the compiler runtime's 128-bit integer helpers (libgcc, compiler-rt).
# Adding a name here is a claim that every freestanding target has it.
allow=(
  memcpy memmove memset memcmp bcmp strlen
  __udivti3 __umodti3 __divti3 __modti3 __udivmodti4 __multi3 __muloti4
  __ashlti3 __ashrti3 __lshrti3
)

if [ ! -f "$a" ]; then
  echo "FAIL: no archive at $a (make embedded)"; exit 1
fi
# nm reports the archive's empty members (compiler_builtins' after LTO) as
# "no symbols" on stderr: only other complaints are shown.
nm_q() { nm "$@" 2> >(grep -v ': no symbols$' >&2); }
undef=$(nm_q -u "$a") || { echo "FAIL: nm cannot read $a"; exit 1; }
defined=$(nm_q --defined-only "$a") || { echo "FAIL: nm cannot read $a"; exit 1; }
ext=$(comm -23 <(awk '$1=="U"{print $2}' <<<"$undef" | sort -u) \
               <(awk 'NF==3{print $3}' <<<"$defined" | sort -u))
echo "external symbols of $a:"
sed 's/^/  /' <<<"$ext"
bad=$(grep -vxF -f <(printf '%s\n' "${allow[@]}") <<<"$ext" || true)
if [ -n "$bad" ]; then
  echo "FAIL: the no_std archive references symbols outside the freestanding allowlist:"
  sed 's/^/  /' <<<"$bad"
  exit 1
fi
if [ -z "$defined" ]; then
  echo "FAIL: $a defines no symbol"; exit 1
fi
echo "ok: every external symbol is on the freestanding allowlist"

#!/usr/bin/env bash
# The no_std archive must not reference the operating system: list the
# symbols it needs from outside itself and fail on any of pthread, sockets,
# eventfd, epoll, dlsym, errno or the system-call wrappers. (memcpy & co.
# are the C runtime every freestanding toolchain supplies.)
set -euo pipefail
a=${1:-target/embedded/libuserspacesock.a}
ext=$(comm -23 <(nm -u "$a" 2>/dev/null | awk '$1=="U"{print $2}' | sort -u) \
               <(nm --defined-only "$a" 2>/dev/null | awk 'NF==3{print $3}' | sort -u))
bad=$(grep -E '^(pthread_|socket|socketpair|bind|listen|accept|connect|eventfd|epoll_|dlsym|dlopen|__errno_location|syscall|getpid|futex|read|write|close|poll|ppoll|select|fcntl|ioctl|mknod|stat|open|malloc|free|calloc|realloc)' <<<"$ext" || true)
echo "external symbols of $a:"
sed 's/^/  /' <<<"$ext" | grep -v '^  _R\|^  _ZN' || true
if [ -n "$bad" ]; then
  echo "FAIL: the no_std archive references the operating system:"; sed 's/^/  /' <<<"$bad"; exit 1
fi
echo "ok: no pthread, socket, eventfd or libc system-call symbol referenced"

/*
 * tsan_shim.c - linked into the usock-libtsan programs only (not built
 * with -fsanitize=thread).
 *
 * Rust's LLVM turns memcpy/memmove/memset in TSan-instrumented code into
 * calls to __tsan_memcpy & co.; GCC 12's libtsan, which the C side uses,
 * predates them, so the instrumented library would not load. These give
 * them the meaning LLVM's runtime does: libtsan's own memcpy/memmove/memset
 * interceptors, which check both ranges for races.
 */
#include <stddef.h>
#include <string.h>

void *__tsan_memcpy(void *dst, const void *src, size_t n);
void *__tsan_memmove(void *dst, const void *src, size_t n);
void *__tsan_memset(void *dst, int c, size_t n);

/* A call through a volatile pointer: the compiler may not expand these
 * inline, which would bypass the interceptors. */
static void *(*volatile tl_memcpy)(void *, const void *, size_t) = memcpy;
static void *(*volatile tl_memmove)(void *, const void *, size_t) = memmove;
static void *(*volatile tl_memset)(void *, int, size_t) = memset;

void *__tsan_memcpy(void *dst, const void *src, size_t n)
{
    return tl_memcpy(dst, src, n);
}

void *__tsan_memmove(void *dst, const void *src, size_t n)
{
    return tl_memmove(dst, src, n);
}

void *__tsan_memset(void *dst, int c, size_t n)
{
    return tl_memset(dst, c, n);
}

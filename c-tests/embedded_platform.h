/*
 * embedded_platform.h - the platform table's pieces that the two example
 * RTOS hosts (embedded_host.c, embedded_netif_host.c) share: memory, locks,
 * a clock, waits on a word with a condition variable, errno, a log and
 * abort, over POSIX threads as an RTOS would give them over its own
 * primitives. Counters let the hosts check what the library did through
 * them (allocations, bytes live, waits, locks). Included once per host
 * program; everything is static.
 */
#ifndef USOCK_EMBEDDED_PLATFORM_H
#define USOCK_EMBEDDED_PLATFORM_H

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* The hosts' checks: counted, a failure printed with its line. */
static int passed, failed;
#define CHECK(c)                                                                   \
    do {                                                                           \
        if (c) {                                                                   \
            passed++;                                                              \
        } else {                                                                   \
            failed++;                                                              \
            fprintf(stderr, "%s:%d: CHECK(%s) failed (errno %d)\n", __FILE__,      \
                    __LINE__, #c, errno);                                          \
        }                                                                          \
    } while (0)

static pthread_mutex_t host_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t host_cv = PTHREAD_COND_INITIALIZER;
static unsigned long host_allocs, host_waits, host_locks;
static long host_live; /* bytes allocated and not freed: RAM the library uses */

static void *h_alloc(void *ctx, size_t size, size_t align)
{
    (void)ctx;
    __atomic_fetch_add(&host_allocs, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&host_live, (long)size, __ATOMIC_RELAXED);
    if (align < sizeof(void *))
        align = sizeof(void *);
    void *p = NULL;
    return posix_memalign(&p, align, size ? size : 1) == 0 ? p : NULL;
}
static void h_free(void *ctx, void *p, size_t size, size_t align)
{
    (void)ctx, (void)align;
    __atomic_fetch_sub(&host_live, (long)size, __ATOMIC_RELAXED);
    free(p);
}
static void *h_lock_create(void *ctx)
{
    (void)ctx;
    pthread_mutex_t *m = malloc(sizeof *m);
    pthread_mutex_init(m, NULL);
    return m;
}
static void h_lock(void *ctx, void *l)
{
    (void)ctx;
    __atomic_fetch_add(&host_locks, 1, __ATOMIC_RELAXED);
    pthread_mutex_lock(l);
}
static void h_unlock(void *ctx, void *l)
{
    (void)ctx;
    pthread_mutex_unlock(l);
}
static uint64_t h_now(void *ctx)
{
    (void)ctx;
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}
/* Sleeps while *word == expected, at most timeout_ns (UINT64_MAX: no
 * limit), until h_wake_cv: another thread of the host changed it. */
static void h_wait_cv(void *ctx, const uint32_t *word, uint32_t expected, uint64_t timeout_ns)
{
    __atomic_fetch_add(&host_waits, 1, __ATOMIC_RELAXED);
    uint64_t end = timeout_ns == UINT64_MAX ? UINT64_MAX : h_now(ctx) + timeout_ns;
    pthread_mutex_lock(&host_mu);
    while (__atomic_load_n(word, __ATOMIC_SEQ_CST) == expected) {
        if (end == UINT64_MAX) {
            pthread_cond_wait(&host_cv, &host_mu);
            continue;
        }
        uint64_t now = h_now(ctx);
        if (now >= end)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t left = end - now;
        ts.tv_sec += (time_t)(left / 1000000000u);
        ts.tv_nsec += (long)(left % 1000000000u);
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&host_cv, &host_mu, &ts);
    }
    pthread_mutex_unlock(&host_mu);
}
static void h_wake_cv(void *ctx, const uint32_t *word)
{
    (void)ctx, (void)word;
    /* The word changed before this call; taking the mutex orders the
     * broadcast after any waiter's check. */
    pthread_mutex_lock(&host_mu);
    pthread_cond_broadcast(&host_cv);
    pthread_mutex_unlock(&host_mu);
}
static int *h_errno(void *ctx)
{
    (void)ctx;
    return &errno;
}
static void h_log(void *ctx, const char *m, size_t n)
{
    (void)ctx;
    fprintf(stderr, "usock: %.*s\n", (int)n, m);
}
static void h_abort(void *ctx)
{
    (void)ctx;
    abort();
}

#endif

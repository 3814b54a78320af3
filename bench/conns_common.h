/*
 * conns_common.h - what conns_server.c and conns_client.c share: the
 * counter file the server's workers keep and the client reads, and
 * RLIMIT_NOFILE.
 */
#ifndef CONNS_COMMON_H
#define CONNS_COMMON_H

#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

/* Most server worker processes and client processes (conns_server -w,
 * conns_client -P). */
#define CONNS_MAX_PROCS 64

/* One server worker's counters, in a shared file page (updated atomically);
 * the file holds CONNS_MAX_PROCS of them, worker i writes slot i. */
struct conns_counters {
    uint64_t accepted;  /* connections accepted since start */
    uint64_t open;      /* connections open now */
    uint64_t closed;    /* connections closed since start */
    uint64_t bytes;     /* bytes echoed since start */
    uint64_t errors;    /* unexpected errors (a reset by the client is none) */
};

/* Map the counter file (create: the server makes it and zeroes it); the
 * array of CONNS_MAX_PROCS slots. */
static inline struct conns_counters *conns_map_counters(const char *path, int create)
{
    int fd = open(path, create ? O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC : O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0 || (create && ftruncate(fd, 4096) < 0)) {
        fprintf(stderr, "conns: counter file %s: %s\n", path, strerror(errno));
        exit(1);
    }
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        fprintf(stderr, "conns: mmap %s: %s\n", path, strerror(errno));
        exit(1);
    }
    return p;
}

static inline uint64_t conns_get(const uint64_t *v)
{
    return __atomic_load_n(v, __ATOMIC_ACQUIRE);
}

/* A counter summed over the first n workers' slots (field: its offset). */
static inline uint64_t conns_sum(const struct conns_counters *c, int n, size_t field)
{
    uint64_t s = 0;
    for (int i = 0; i < n; i++)
        s += conns_get((const uint64_t *)((const char *)&c[i] + field));
    return s;
}
_Static_assert(CONNS_MAX_PROCS * sizeof(struct conns_counters) <= 4096, "the counter page");
#define CONNS_SUM(c, n, f) conns_sum((c), (n), offsetof(struct conns_counters, f))

/* Raise RLIMIT_NOFILE so that plan connections fit with room to spare
 * (under the library a connection on the shm backend holds three kernel fds
 * in each process: its socket's number, its anchor and its segment's memfd;
 * the plan is per process: CONNS/W in a server worker, CONNS/P in a client
 * process). Raises the hard limit too
 * when allowed (CAP_SYS_RESOURCE); else goes as high as the hard limit and
 * says so on stderr: the run then shows what fits (EMFILE past it). */
static inline rlim_t conns_raise_nofile(long plan, const char *who)
{
    rlim_t want = (rlim_t)plan * 3 + 4096;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        perror("getrlimit");
        exit(1);
    }
    if (rl.rlim_cur >= want)
        return rl.rlim_cur;
    struct rlimit nrl = {.rlim_cur = want, .rlim_max = rl.rlim_max > want ? rl.rlim_max : want};
    if (setrlimit(RLIMIT_NOFILE, &nrl) == 0)
        return want;
    int e = errno;
    nrl.rlim_cur = nrl.rlim_max = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &nrl) != 0) {
        perror("setrlimit");
        exit(1);
    }
    fprintf(stderr, "%s: RLIMIT_NOFILE only %llu (the hard limit; raising it to %llu: %s)\n",
            who, (unsigned long long)rl.rlim_max, (unsigned long long)want, strerror(e));
    return rl.rlim_max;
}

#endif

/*
 * passthrough.c - the cost the library adds to read()/write() on an fd that
 * is not one of its sockets (a pipe): the same loop calls the interposed
 * read/write (through libuserspacesock when linked with it) and libc's own
 * (looked up with dlsym(RTLD_NEXT) when linked with the library, plainly
 * otherwise), alternating, and prints nanoseconds per call for both and the
 * difference. Usage: passthrough [iterations]
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

typedef ssize_t (*rw_fn)(int, void *, size_t);

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static double run(rw_fn wr, rw_fn rd, int p[2], long n)
{
    char c = 'x';
    double t0 = now_ns();
    for (long i = 0; i < n; i++) {
        if (wr(p[1], &c, 1) != 1 || rd(p[0], &c, 1) != 1) {
            perror("passthrough");
            exit(1);
        }
    }
    return (now_ns() - t0) / (2.0 * n);
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 200000;
    int p[2];
    if (pipe(p) != 0)
        return 1;
    rw_fn lib_wr = (rw_fn)(void *)write, lib_rd = (rw_fn)read;
    /* libc's definitions, skipping any interposer */
    rw_fn libc_wr = (rw_fn)dlsym(RTLD_NEXT, "write");
    rw_fn libc_rd = (rw_fn)dlsym(RTLD_NEXT, "read");
    if (!libc_wr || !libc_rd) {
        fprintf(stderr, "dlsym failed\n");
        return 1;
    }
    enum { R = 9 };
    double a[R], b[R], d[R];
    run(lib_wr, lib_rd, p, n / 10);
    for (int r = 0; r < R; r++) {
        a[r] = run(lib_wr, lib_rd, p, n);
        b[r] = run(libc_wr, libc_rd, p, n);
        d[r] = a[r] - b[r];
    }
    qsort(a, R, sizeof a[0], cmp);
    qsort(b, R, sizeof b[0], cmp);
    qsort(d, R, sizeof d[0], cmp);
    printf("read/write on a pipe: %.1f ns per call through the interposed names, "
           "%.1f ns through libc's; added %.1f ns (median of %d alternating runs)\n",
           a[R / 2], b[R / 2], d[R / 2], R);
    return 0;
}

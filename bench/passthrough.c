/*
 * passthrough.c - the cost the library adds to read()/write() on an fd that
 * is not one of its sockets (a pipe).
 *
 * Built linked with libuserspacesock (make bench). Two paths are compared:
 *
 *   interposed  read/write as the program sees them: the names resolve into
 *               libuserspacesock.so, which looks the fd up and passes it on;
 *   direct      libc's own read/write, from dlopen("libc.so.6", RTLD_NOLOAD)
 *               and dlsym on that handle (not RTLD_NEXT: in an executable
 *               linked with the library, RTLD_NEXT finds the library's).
 *
 * Both addresses are checked with dladdr before anything is measured: the
 * interposed pair must lie in libuserspacesock.so and the direct pair in
 * libc.so.6, else the program aborts (exit 3): a comparison of the library
 * with itself must not print a figure.
 *
 * Wall-clock mode (default): both paths warmed up, then RUNS runs of ITERS
 * write+read pairs each, the order alternating (interposed first in even
 * runs, direct first in odd ones); per run the difference interposed -
 * direct per call. Prints the medians of each side, the median of the
 * differences and their interquartile range, and says whether this machine
 * resolves 5 ns (the IQR of the differences at or under 5 ns) or not; when
 * not, the instruction count (make bench-instr) is the figure to use.
 *
 * Instruction-count mode (-c interposed|direct): warm-up calls, then one
 * call of count_interposed() or count_direct(), ITERS write+read pairs, for
 * valgrind --tool=callgrind --toggle-collect=count_* (bench/passthrough-instr.sh).
 *
 *   usage: passthrough [-n ITERS] [-r RUNS] [-c interposed|direct]
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef ssize_t (*rd_fn)(int, void *, size_t);
typedef ssize_t (*wr_fn)(int, const void *, size_t);

struct path {
    const char *name;
    wr_fn wr;
    rd_fn rd;
};

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

/* n write+read pairs of one byte through the path; the calls go through the
 * function pointers on both paths, so both pay the same indirect call. */
static void __attribute__((noinline)) loop(const struct path *p, int fd[2], long n)
{
    char c = 'x';
    for (long i = 0; i < n; i++) {
        if (p->wr(fd[1], &c, 1) != 1 || p->rd(fd[0], &c, 1) != 1) {
            perror("passthrough: pipe read/write");
            exit(1);
        }
    }
}

/* Distinct, never-inlined entry points for callgrind's --toggle-collect. */
void __attribute__((noinline, noclone)) count_interposed(const struct path *p, int fd[2], long n)
{
    loop(p, fd, n);
}

void __attribute__((noinline, noclone)) count_direct(const struct path *p, int fd[2], long n)
{
    loop(p, fd, n);
}

static double timed(const struct path *p, int fd[2], long n)
{
    double t0 = now_ns();
    loop(p, fd, n);
    return (now_ns() - t0) / (2.0 * (double)n);
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Quantile q of sorted v[0..n) (linear interpolation). */
static double quantile(const double *v, int n, double q)
{
    double pos = q * (n - 1);
    int i = (int)pos;
    if (i >= n - 1)
        return v[n - 1];
    return v[i] + (pos - i) * (v[i + 1] - v[i]);
}

/* The file a code address lies in, or "?"; aborts the program (exit 3)
 * unless its base name starts with want. */
static const char *check_in(const char *what, void *addr, const char *want)
{
    Dl_info info;
    if (!addr || !dladdr(addr, &info) || !info.dli_fname) {
        fprintf(stderr, "passthrough: ABORT: dladdr finds no object for %s (%p)\n", what, addr);
        exit(3);
    }
    const char *base = strrchr(info.dli_fname, '/');
    base = base ? base + 1 : info.dli_fname;
    if (strncmp(base, want, strlen(want)) != 0) {
        fprintf(stderr, "passthrough: ABORT: %s resolves into %s, not %s: "
                "the comparison would not measure the library against libc\n",
                what, info.dli_fname, want);
        exit(3);
    }
    return info.dli_fname;
}

static void usage(void)
{
    fprintf(stderr, "usage: passthrough [-n iterations] [-r runs] [-c interposed|direct]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    long n = 100000;
    int runs = 31;
    const char *count = NULL;
    int c;
    while ((c = getopt(argc, argv, "n:r:c:")) != -1) {
        switch (c) {
        case 'n': n = atol(optarg); break;
        case 'r': runs = atoi(optarg); break;
        case 'c': count = optarg; break;
        default: usage();
        }
    }
    if (optind != argc || n <= 0 || runs < 3 || runs > 10000 ||
        (count && strcmp(count, "interposed") && strcmp(count, "direct")))
        usage();

    /* the interposed names: what this program's calls bind to */
    struct path lib = {"interposed", write, read};
    /* libc's own definitions, from libc's handle (already loaded) */
    void *libc = dlopen("libc.so.6", RTLD_NOLOAD | RTLD_NOW);
    if (!libc) {
        fprintf(stderr, "passthrough: ABORT: dlopen(libc.so.6, RTLD_NOLOAD): %s\n", dlerror());
        return 3;
    }
    struct path dir = {"direct", (wr_fn)dlsym(libc, "write"), (rd_fn)dlsym(libc, "read")};
    const char *lw = check_in("interposed write", (void *)lib.wr, "libuserspacesock.so");
    check_in("interposed read", (void *)lib.rd, "libuserspacesock.so");
    const char *dw = check_in("direct write", (void *)dir.wr, "libc.so.6");
    check_in("direct read", (void *)dir.rd, "libc.so.6");

    int fd[2];
    if (pipe(fd) != 0) {
        perror("passthrough: pipe");
        return 1;
    }
    /* warm-up: both paths, so neither pays first-call binding or cold
     * caches inside a measured run */
    loop(&lib, fd, n / 10 + 1000);
    loop(&dir, fd, n / 10 + 1000);

    if (count) {
        if (!strcmp(count, "interposed"))
            count_interposed(&lib, fd, n);
        else
            count_direct(&dir, fd, n);
        printf("passthrough: %ld write+read pairs through the %s path\n", n, count);
        return 0;
    }

    printf("# interposed read/write in %s; direct in %s\n", lw, dw);
    double *a = malloc(sizeof(double) * (size_t)runs * 3);
    if (!a)
        return 1;
    double *b = a + runs, *d = b + runs;
    for (int r = 0; r < runs; r++) {
        if (r % 2 == 0) {
            a[r] = timed(&lib, fd, n);
            b[r] = timed(&dir, fd, n);
        } else {
            b[r] = timed(&dir, fd, n);
            a[r] = timed(&lib, fd, n);
        }
        d[r] = a[r] - b[r];
    }
    qsort(a, (size_t)runs, sizeof a[0], cmp);
    qsort(b, (size_t)runs, sizeof b[0], cmp);
    qsort(d, (size_t)runs, sizeof d[0], cmp);
    double q1 = quantile(d, runs, 0.25), med = quantile(d, runs, 0.5),
           q3 = quantile(d, runs, 0.75);
    printf("read/write on a pipe, %d alternating runs of %ld write+read pairs:\n", runs, n);
    printf("  interposed   median %.1f ns per call (min %.1f, max %.1f)\n",
           quantile(a, runs, 0.5), a[0], a[runs - 1]);
    printf("  direct libc  median %.1f ns per call (min %.1f, max %.1f)\n",
           quantile(b, runs, 0.5), b[0], b[runs - 1]);
    printf("  added ns per call (interposed - direct, per run): median %+.1f, "
           "IQR %+.1f .. %+.1f (width %.1f), min %+.1f, max %+.1f\n",
           med, q1, q3, q3 - q1, d[0], d[runs - 1]);
    if (q3 - q1 <= 5.0)
        printf("  resolution: the IQR of the differences (%.1f ns) is within 5 ns: "
               "this machine resolves the 5 ns goal\n", q3 - q1);
    else
        printf("  resolution: NOT resolved: the IQR of the differences (%.1f ns) exceeds "
               "5 ns, so this run cannot tell a 5 ns cost from noise; use the "
               "instruction count (make bench-instr)\n", q3 - q1);
    printf("passthrough_added_ns %.1f\npassthrough_added_ns_iqr %.1f\n", med, q3 - q1);
    free(a);
    return 0;
}

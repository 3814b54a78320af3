/*
 * netbench.c - loopback TCP micro-benchmarks between two threads of one
 * process.  One source, built twice: without libuserspacesock (the kernel's
 * loopback TCP) and linked with -luserspacesock (the library's in-process
 * loopback backend).  All sockets are AF_INET 127.0.0.1 TCP, TCP_NODELAY on.
 *
 *   pingpong  64-byte request/response round trips (after a warm-up);
 *             prints  pingpong_rtt_us <mean round trip, microseconds>
 *   stream    one-way stream of 64 KiB writes for a fixed duration; the
 *             receiver reads with a large buffer, counts bytes and checks a
 *             cheap per-64KiB sequence stamp (or every byte with -V), then
 *             reports back; prints  stream_MBps <10^6 bytes per second>
 *   conn      connect + accept + close loop (server closes first, client
 *             closes with SO_LINGER 0, so no TIME_WAIT piles up);
 *             prints  conn_per_s <connections per second>
 *
 * Result lines are "name value"; everything else starts with '#'.
 * Exit status is nonzero if any test failed (error, short count, bad data).
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static double opt_dur = 1.5;          /* seconds per test */
static size_t opt_msg = 64;           /* ping-pong message size */
static long opt_warmup = 2000;        /* ping-pong warm-up round trips */
static size_t opt_wsize = 65536;      /* stream write size */
static size_t opt_rsize = 1 << 20;    /* stream receive buffer */
static int opt_verify = 0;            /* -V: check every stream byte */

#define STAMP_PERIOD 65536u           /* stream stamp period (bytes) */

/* ---- small helpers ------------------------------------------------------ */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what)
{
    fprintf(stderr, "netbench: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void set_nodelay(int fd)
{
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
        die("setsockopt(TCP_NODELAY)");
}

static void set_timeout(int fd, int seconds)
{
    struct timeval tv = {.tv_sec = seconds, .tv_usec = 0};
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0)
        die("setsockopt(SO_RCVTIMEO)");
    if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0)
        die("setsockopt(SO_SNDTIMEO)");
}

static int write_full(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* 1 = got n bytes, 0 = EOF before n, -1 = error. */
static int read_full(int fd, void *buf, size_t n)
{
    char *p = buf;
    while (n > 0) {
        ssize_t r = recv(fd, p, n, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (r == 0)
            return 0;
        p += r;
        n -= (size_t)r;
    }
    return 1;
}

/* A listening socket on 127.0.0.1, port picked by the stack. */
static int make_listener(struct sockaddr_in *addr, int backlog)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        die("socket");
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        die("setsockopt(SO_REUSEADDR)");
    memset(addr, 0, sizeof *addr);
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)addr, sizeof *addr) < 0)
        die("bind");
    socklen_t len = sizeof *addr;
    if (getsockname(fd, (struct sockaddr *)addr, &len) < 0)
        die("getsockname");
    if (listen(fd, backlog) < 0)
        die("listen");
    set_timeout(fd, 10);                       /* accept() cannot hang */
    return fd;
}

static int connect_to(const struct sockaddr_in *addr)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        die("socket");
    if (connect(fd, (const struct sockaddr *)addr, sizeof *addr) < 0)
        die("connect");
    return fd;
}

static int accept_one(int lfd)
{
    int fd;
    do
        fd = accept(lfd, NULL, NULL);
    while (fd < 0 && errno == EINTR);
    return fd;
}

/* ---- ping-pong -------------------------------------------------------- */

struct srv {
    int lfd;
    int failed;
    unsigned long long count;   /* per test: round trips, bytes, conns */
    unsigned long long errors;
};

static void *pingpong_server(void *arg)
{
    struct srv *s = arg;
    char *buf = malloc(opt_msg);
    int fd = accept_one(s->lfd);
    if (fd < 0 || !buf) {
        perror("netbench: pingpong accept");
        s->failed = 1;
        free(buf);
        return NULL;
    }
    set_nodelay(fd);
    set_timeout(fd, 10);
    for (;;) {
        int r = read_full(fd, buf, opt_msg);
        if (r == 0)
            break;
        if (r < 0 || write_full(fd, buf, opt_msg) < 0) {
            perror("netbench: pingpong server");
            s->failed = 1;
            break;
        }
        s->count++;
    }
    close(fd);
    free(buf);
    return NULL;
}

static int test_pingpong(void)
{
    struct sockaddr_in addr;
    struct srv s = {.lfd = make_listener(&addr, 16)};
    pthread_t tid;
    if (pthread_create(&tid, NULL, pingpong_server, &s) != 0)
        die("pthread_create");
    int fd = connect_to(&addr);
    set_nodelay(fd);
    set_timeout(fd, 10);

    unsigned char *out = malloc(opt_msg), *in = malloc(opt_msg);
    if (!out || !in)
        die("malloc");
    int failed = 0;
    long n = 0;
    double t0 = 0, t1 = 0;
    for (long i = 0;; i++) {
        if (i == opt_warmup)
            t0 = now();
        memset(out, (int)(i & 0xff), opt_msg);
        if (write_full(fd, out, opt_msg) < 0 || read_full(fd, in, opt_msg) != 1) {
            perror("netbench: pingpong client");
            failed = 1;
            break;
        }
        if (in[0] != out[0] || in[opt_msg - 1] != out[opt_msg - 1]) {
            fprintf(stderr, "netbench: pingpong: echo mismatch at %ld\n", i);
            failed = 1;
            break;
        }
        if (i >= opt_warmup) {
            n++;
            if ((n & 63) == 0 && (t1 = now()) - t0 >= opt_dur)
                break;
        }
    }
    close(fd);                       /* server sees EOF and exits */
    pthread_join(tid, NULL);
    close(s.lfd);
    free(out);
    free(in);
    if (failed || s.failed || n == 0)
        return 1;
    printf("# pingpong: %ld round trips of %zu bytes in %.3f s (after %ld warm-up)\n",
           n, opt_msg, t1 - t0, opt_warmup);
    printf("pingpong_rtt_us %.3f\n", (t1 - t0) * 1e6 / (double)n);
    return 0;
}

/* ---- stream ------------------------------------------------------------- */

/* Byte at stream offset p: an 8-byte little-endian block number at the start
 * of every STAMP_PERIOD block, then a position-dependent filler.  Writes are
 * built from it so any reordering, loss or duplication shows. */
static inline unsigned char stream_byte(uint64_t p)
{
    uint64_t blk = p / STAMP_PERIOD, k = p % STAMP_PERIOD;
    if (k < 8)
        return (unsigned char)(blk >> (8 * k));
    return (unsigned char)(k * 131u + 7u);
}

static void *stream_server(void *arg)
{
    struct srv *s = arg;
    unsigned char *buf = malloc(opt_rsize);
    int fd = accept_one(s->lfd);
    if (fd < 0 || !buf) {
        perror("netbench: stream accept");
        s->failed = 1;
        free(buf);
        return NULL;
    }
    set_nodelay(fd);
    set_timeout(fd, 10);
    uint64_t off = 0, errors = 0;
    for (;;) {
        ssize_t r = recv(fd, buf, opt_rsize, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            perror("netbench: stream recv");
            s->failed = 1;
            break;
        }
        if (r == 0)
            break;
        uint64_t end = off + (uint64_t)r;
        if (opt_verify) {
            for (uint64_t p = off; p < end; p++)
                errors += buf[p - off] != stream_byte(p);
        } else {
            /* cheap: the 8 stamp bytes of every block in range, plus the
             * first and last byte of this read */
            for (uint64_t b = off / STAMP_PERIOD; b * STAMP_PERIOD < end; b++)
                for (uint64_t p = b * STAMP_PERIOD; p < b * STAMP_PERIOD + 8; p++)
                    if (p >= off && p < end)
                        errors += buf[p - off] != stream_byte(p);
            errors += buf[0] != stream_byte(off);
            errors += buf[r - 1] != stream_byte(end - 1);
        }
        off = end;
    }
    s->count = off;
    s->errors = errors;
    /* report back: bytes received and errors (also ends the sender's clock) */
    uint64_t reply[2] = {off, errors};
    if (!s->failed && write_full(fd, reply, sizeof reply) < 0) {
        perror("netbench: stream reply");
        s->failed = 1;
    }
    close(fd);
    free(buf);
    return NULL;
}

static int test_stream(void)
{
    struct sockaddr_in addr;
    struct srv s = {.lfd = make_listener(&addr, 16)};
    pthread_t tid;
    if (pthread_create(&tid, NULL, stream_server, &s) != 0)
        die("pthread_create");
    int fd = connect_to(&addr);
    set_nodelay(fd);
    set_timeout(fd, 10);

    /* The pattern is periodic in STAMP_PERIOD except for the stamps, so one
     * buffer of wsize + STAMP_PERIOD covers every alignment; stamps are
     * patched in place before each write. */
    size_t blen = opt_wsize + STAMP_PERIOD;
    unsigned char *pat = malloc(blen);
    if (!pat)
        die("malloc");
    for (size_t i = 0; i < blen; i++)
        pat[i] = stream_byte(i);

    int failed = 0;
    uint64_t sent = 0;
    double t0 = now(), t1;
    for (unsigned long w = 0;; w++) {
        size_t start = (size_t)(sent % STAMP_PERIOD);
        unsigned char *p = pat + start;
        for (uint64_t q = sent; q < sent + opt_wsize; q++) {
            /* patch stamps (at most a few per write) */
            uint64_t k = q % STAMP_PERIOD;
            if (k < 8) {
                p[q - sent] = stream_byte(q);
            } else {
                q += STAMP_PERIOD - k - 1;   /* jump to next block start */
            }
        }
        if (write_full(fd, p, opt_wsize) < 0) {
            perror("netbench: stream send");
            failed = 1;
            break;
        }
        sent += opt_wsize;
        if ((w & 15) == 15 && now() - t0 >= opt_dur)
            break;
    }
    uint64_t reply[2] = {0, 0};
    if (!failed) {
        if (shutdown(fd, SHUT_WR) < 0)
            die("shutdown");
        if (read_full(fd, reply, sizeof reply) != 1) {
            perror("netbench: stream reply");
            failed = 1;
        }
    }
    t1 = now();
    close(fd);
    pthread_join(tid, NULL);
    close(s.lfd);
    free(pat);
    if (failed || s.failed)
        return 1;
    if (reply[0] != sent || reply[1] != 0) {
        fprintf(stderr, "netbench: stream: sent %llu bytes, receiver got %llu, "
                "%llu bad bytes\n", (unsigned long long)sent,
                (unsigned long long)reply[0], (unsigned long long)reply[1]);
        return 1;
    }
    printf("# stream: %llu bytes in %zu-byte writes, %.3f s, receiver buffer %zu, "
           "verify %s\n", (unsigned long long)sent, opt_wsize, t1 - t0,
           opt_rsize, opt_verify ? "every byte" : "stamps");
    printf("stream_MBps %.1f\n", (double)sent / (t1 - t0) / 1e6);
    return 0;
}

/* ---- connection rate ---------------------------------------------------- */

static atomic_int conn_stop;

static void *conn_server(void *arg)
{
    struct srv *s = arg;
    for (;;) {
        int fd = accept_one(s->lfd);
        if (fd < 0) {
            perror("netbench: conn accept");
            s->failed = 1;
            break;
        }
        /* Read the flag before closing: the client sets it only after it
         * saw this close, so a counted connection never reads 1, and the
         * final (stop) connection always does. */
        int stop = atomic_load(&conn_stop);
        /* the server closes first: its FIN lets the client see EOF */
        if (close(fd) < 0) {
            perror("netbench: conn close (server)");
            s->failed = 1;
        }
        if (stop)
            break;
        s->count++;
    }
    return NULL;
}

/* One connection: connect, wait for the server's close, close with an
 * abortive close (SO_LINGER 0 -> RST) so neither side enters TIME_WAIT and
 * ephemeral ports are reusable at once.  0 = ok. */
static int one_conn(const struct sockaddr_in *addr)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        perror("netbench: conn socket");
        return -1;
    }
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) < 0) {
        perror("netbench: setsockopt(SO_LINGER)");
        close(fd);
        return -1;
    }
    if (connect(fd, (const struct sockaddr *)addr, sizeof *addr) < 0) {
        perror("netbench: conn connect");
        close(fd);
        return -1;
    }
    char c;
    ssize_t r;
    do
        r = recv(fd, &c, 1, 0);
    while (r < 0 && errno == EINTR);
    if (r != 0) {
        fprintf(stderr, "netbench: conn: expected EOF, got %s\n",
                r < 0 ? strerror(errno) : "data");
        close(fd);
        return -1;
    }
    if (close(fd) < 0) {
        perror("netbench: conn close (client)");
        return -1;
    }
    return 0;
}

static int test_conn(void)
{
    struct sockaddr_in addr;
    struct srv s = {.lfd = make_listener(&addr, 128)};
    pthread_t tid;
    atomic_store(&conn_stop, 0);
    if (pthread_create(&tid, NULL, conn_server, &s) != 0)
        die("pthread_create");

    int failed = 0;
    long n = 0;
    /* warm-up */
    for (int i = 0; i < 100 && !failed; i++)
        failed = one_conn(&addr) != 0;
    double t0 = now(), t1 = t0;
    while (!failed) {
        if (one_conn(&addr) != 0) {
            failed = 1;
            break;
        }
        n++;
        if ((n & 31) == 0 && (t1 = now()) - t0 >= opt_dur)
            break;
    }
    /* stop the server: set the flag, then one last connection wakes it */
    atomic_store(&conn_stop, 1);
    if (one_conn(&addr) != 0)
        failed = 1;
    pthread_join(tid, NULL);
    close(s.lfd);
    if (failed || s.failed)
        return 1;
    if (s.count != (unsigned long long)n + 100) {
        fprintf(stderr, "netbench: conn: client made %ld, server accepted %llu\n",
                n + 100, s.count);
        return 1;
    }
    printf("# conn: %ld connections in %.3f s (after 100 warm-up)\n", n, t1 - t0);
    printf("conn_per_s %.0f\n", (double)n / (t1 - t0));
    return 0;
}

/* ---- main ---------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr,
            "usage: netbench [-t all|pingpong|stream|conn] [-d seconds]\n"
            "                [-m pingpong-msg-bytes] [-w warmup-roundtrips]\n"
            "                [-s stream-write-bytes] [-r stream-recv-buffer] [-V]\n"
            "  -d  duration of each measurement (default 1.5)\n"
            "  -V  verify every stream byte (slower) instead of block stamps\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *test = "all";
    int c;
    while ((c = getopt(argc, argv, "t:d:m:w:s:r:Vh")) != -1) {
        switch (c) {
        case 't': test = optarg; break;
        case 'd': opt_dur = atof(optarg); break;
        case 'm': opt_msg = (size_t)strtoul(optarg, NULL, 0); break;
        case 'w': opt_warmup = strtol(optarg, NULL, 0); break;
        case 's': opt_wsize = (size_t)strtoul(optarg, NULL, 0); break;
        case 'r': opt_rsize = (size_t)strtoul(optarg, NULL, 0); break;
        case 'V': opt_verify = 1; break;
        default: usage();
        }
    }
    if (optind != argc || opt_dur <= 0 || opt_msg == 0 || opt_wsize == 0 ||
        opt_rsize == 0 || opt_warmup < 0)
        usage();
    int all = strcmp(test, "all") == 0;
    if (!all && strcmp(test, "pingpong") && strcmp(test, "stream") &&
        strcmp(test, "conn"))
        usage();
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);

    int failed = 0;
    if (all || !strcmp(test, "pingpong")) {
        if (test_pingpong()) {
            fprintf(stderr, "netbench: pingpong FAILED\n");
            failed = 1;
        }
    }
    if (all || !strcmp(test, "stream")) {
        if (test_stream()) {
            fprintf(stderr, "netbench: stream FAILED\n");
            failed = 1;
        }
    }
    if (all || !strcmp(test, "conn")) {
        if (test_conn()) {
            fprintf(stderr, "netbench: conn FAILED\n");
            failed = 1;
        }
    }
    return failed;
}

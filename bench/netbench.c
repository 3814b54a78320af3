/*
 * netbench.c - loopback micro-benchmarks, kernel vs libuserspacesock.  One
 * source, built twice: without libuserspacesock (the kernel's loopback) and
 * linked with -luserspacesock (the library's in-process loopback backend).
 * The kernel build also runs as two programs under bin/usockrun (the
 * library's cross-process backend).  All sockets are AF_INET 127.0.0.1, TCP
 * with TCP_NODELAY.
 *
 *   pingpong  TCP 64-byte request/response round trips (after a warm-up);
 *             prints  pingpong_rtt_us <mean round trip, microseconds>
 *   udp       the same over UDP: two connected datagram sockets, one
 *             64-byte datagram each way per round trip;  udp_rtt_us
 *   stream    one-way TCP stream of 64 KiB writes for a fixed duration; the
 *             receiver reads with a large buffer, counts bytes and checks a
 *             cheap per-64KiB sequence stamp (or every byte with -V), then
 *             reports back; prints  stream_MBps <10^6 bytes per second>
 *   conn      connect + accept + close loop (server closes first, client
 *             closes with SO_LINGER 0, so no TIME_WAIT piles up);
 *             prints  conn_per_s <connections per second>
 *
 * CPU: beside each rate, the CPU time (user + system, getrusage) of the
 * whole process -- every thread, the library's included -- over the
 * measured interval, per unit of work: pingpong_cpu_us / udp_cpu_us (per
 * round trip), stream_cpu_s_per_GB (per 10^9 bytes), conn_cpu_us (per
 * connection).  A rate bought with a spinning core shows here.
 *
 * Placement: by default client and server are two threads of this process.
 * With -P server|client -p PORT (pingpong and udp only) they are two
 * programs: the server serves one client on 127.0.0.1:PORT and exits; it
 * prints "# ready" once it listens.  -a ADDR (an IPv4 address) takes the
 * place of 127.0.0.1: the server binds it, the client connects to it (two
 * hosts, or a server across a TAP device from a client on the library's
 * engine: bench/engine.sh).  The client's CPU figure then adds the
 * server's own (getrusage in the server over the same interval, sent back
 * at the end), so *_cpu_us is the CPU of both processes per round trip.
 *
 * Ping-pong messages: byte 0 says what the message is ('D' data, 'S' data
 * and start of the measured interval, 'R' end: the server answers with its
 * CPU time instead of an echo); the rest is a pattern checked in full.
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
#include <sys/resource.h>
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
static const char *opt_role = NULL;   /* -P server|client: two programs */
static int opt_port = 0;              /* -p: the server's port (with -P) */
static struct in_addr opt_addr = {0}; /* -a: the address instead of 127.0.0.1 */
static int opt_addr_set = 0;

#define STAMP_PERIOD 65536u           /* stream stamp period (bytes) */

/* ---- small helpers ------------------------------------------------------ */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* CPU time of the whole process (all threads), user + system, seconds. */
static double cpu_now(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
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

static void loopback_addr(struct sockaddr_in *addr, int port)
{
    memset(addr, 0, sizeof *addr);
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (opt_addr_set)
        addr->sin_addr = opt_addr;
    addr->sin_port = htons((uint16_t)port);
}

/* A socket of type bound to 127.0.0.1:port (0: picked by the stack); addr
 * gets the bound address. */
static int bound_socket(int type, struct sockaddr_in *addr, int port)
{
    int fd = socket(AF_INET, type, 0);
    if (fd < 0)
        die("socket");
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        die("setsockopt(SO_REUSEADDR)");
    loopback_addr(addr, port);
    if (bind(fd, (struct sockaddr *)addr, sizeof *addr) < 0)
        die("bind");
    socklen_t len = sizeof *addr;
    if (getsockname(fd, (struct sockaddr *)addr, &len) < 0)
        die("getsockname");
    return fd;
}

/* A listening socket on 127.0.0.1:port (0: port picked by the stack). */
static int make_listener_port(struct sockaddr_in *addr, int backlog, int port)
{
    int fd = bound_socket(SOCK_STREAM, addr, port);
    if (listen(fd, backlog) < 0)
        die("listen");
    set_timeout(fd, 10);                       /* accept() cannot hang */
    return fd;
}

static int make_listener(struct sockaddr_in *addr, int backlog)
{
    return make_listener_port(addr, backlog, 0);
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

/* ---- ping-pong (TCP and UDP) ------------------------------------------ */

struct srv {
    int lfd;
    int failed;
    unsigned long long count;   /* per test: round trips, bytes, conns */
    unsigned long long errors;
};

enum { MSG_DATA = 'D', MSG_START = 'S', MSG_REPORT = 'R' };

/* One message of a ping-pong: TCP: exactly opt_msg bytes of the stream;
 * UDP: one datagram of exactly opt_msg bytes (the buffer has room for one
 * more, so a longer datagram shows).  1 = ok, 0 = EOF (TCP), -1 = error
 * (errno set; EMSGSIZE for a datagram of the wrong size). */
static int recv_msg(int fd, int udp, unsigned char *buf)
{
    if (!udp)
        return read_full(fd, buf, opt_msg);
    for (;;) {
        ssize_t r = recv(fd, buf, opt_msg + 1, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if ((size_t)r != opt_msg) {
            errno = EMSGSIZE;
            return -1;
        }
        return 1;
    }
}

static int send_msg(int fd, int udp, const unsigned char *buf)
{
    if (!udp)
        return write_full(fd, buf, opt_msg);
    for (;;) {
        ssize_t w = send(fd, buf, opt_msg, 0);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        if ((size_t)w != opt_msg) {
            errno = EMSGSIZE;
            return -1;
        }
        return 0;
    }
}

/* Message number i: its kind in byte 0, then a pattern of i and the offset. */
static void fill_msg(unsigned char *m, long i, int kind)
{
    m[0] = (unsigned char)kind;
    for (size_t k = 1; k < opt_msg; k++)
        m[k] = (unsigned char)((unsigned long)i * 7u + k * 13u + (k >> 8));
}

/* The echo server of a ping-pong, on a connected socket (TCP: accepted;
 * UDP: bound, and connected here to the source of the first datagram).
 * Echoes every message; 'S' also starts its CPU clock; 'R' is answered
 * with "cpu <seconds> count <round trips>" and ends it. */
static void echo_serve(struct srv *s, int fd, int udp)
{
    unsigned char *buf = malloc(opt_msg + 1);
    double cpu0 = cpu_now();
    unsigned long long n0 = 0;
    if (!buf)
        die("malloc");
    for (int first = 1;; first = 0) {
        int r;
        if (udp && first) {
            /* the first datagram names the client: connect to it */
            struct sockaddr_in src;
            socklen_t len = sizeof src;
            ssize_t g;
            do
                g = recvfrom(fd, buf, opt_msg + 1, 0, (struct sockaddr *)&src, &len);
            while (g < 0 && errno == EINTR);
            r = g < 0 ? -1 : (size_t)g == opt_msg ? 1 : (errno = EMSGSIZE, -1);
            if (r == 1 && connect(fd, (struct sockaddr *)&src, len) < 0)
                r = -1;
        } else {
            r = recv_msg(fd, udp, buf);
        }
        if (r == 0)
            break;                          /* TCP: client closed */
        if (r < 0) {
            perror("netbench: ping-pong server");
            s->failed = 1;
            break;
        }
        if (buf[0] == MSG_START) {
            cpu0 = cpu_now();
            n0 = s->count;
        } else if (buf[0] == MSG_REPORT) {
            memset(buf + 1, 0, opt_msg - 1);
            snprintf((char *)buf + 1, opt_msg - 1, "cpu %.6f count %llu",
                     cpu_now() - cpu0, s->count - n0);
        } else if (buf[0] != MSG_DATA) {
            fprintf(stderr, "netbench: ping-pong server: message of unknown kind %d\n", buf[0]);
            s->failed = 1;
            break;
        }
        if (send_msg(fd, udp, buf) < 0) {
            perror("netbench: ping-pong server send");
            s->failed = 1;
            break;
        }
        if (buf[0] == MSG_REPORT)
            break;
        s->count++;
    }
    free(buf);
}

struct pp_thread {
    struct srv s;
    int udp;
    int fd;        /* UDP: the bound socket; TCP: -1 (accepts on s.lfd) */
};

static void *pingpong_server(void *arg)
{
    struct pp_thread *t = arg;
    int fd = t->fd;
    if (!t->udp) {
        fd = accept_one(t->s.lfd);
        if (fd < 0) {
            perror("netbench: pingpong accept");
            t->s.failed = 1;
            return NULL;
        }
        set_nodelay(fd);
    }
    set_timeout(fd, 10);
    echo_serve(&t->s, fd, t->udp);
    close(fd);
    return NULL;
}

/* The client side of a ping-pong on a connected socket: warm-up (opt_warmup
 * round trips or a fifth of the duration, whichever comes first), then
 * round trips for opt_dur seconds; every echo is checked in full. Then the
 * 'R' message: the server's CPU over the same interval (used in two-program
 * mode; in one process, getrusage already covers the server thread). */
static int pingpong_client(int fd, int udp, int two_programs)
{
    const char *name = udp ? "udp" : "pingpong";
    unsigned char *out = malloc(opt_msg + 1), *in = malloc(opt_msg + 1);
    if (!out || !in)
        die("malloc");
    set_timeout(fd, 10);
    int failed = 0;
    long n = 0, warm = 0;
    double t0 = 0, t1 = 0, c0 = 0, c1 = 0;
    double warm_max = opt_dur / 5 < 0.5 ? opt_dur / 5 : 0.5, tw = now();
    for (long i = 0;; i++) {
        int kind = MSG_DATA;
        if (!warm && (i >= opt_warmup || ((i & 63) == 63 && now() - tw >= warm_max))) {
            warm = i ? i : 1;
            kind = MSG_START;
            t0 = now();
            c0 = cpu_now();
        }
        fill_msg(out, i, kind);
        if (send_msg(fd, udp, out) < 0 || recv_msg(fd, udp, in) != 1) {
            fprintf(stderr, "netbench: %s client: round trip %ld: %s\n", name, i,
                    errno ? strerror(errno) : "EOF");
            failed = 1;
            break;
        }
        if (memcmp(in, out, opt_msg) != 0) {
            fprintf(stderr, "netbench: %s: echo mismatch at round trip %ld\n", name, i);
            failed = 1;
            break;
        }
        if (warm) {
            n++;
            if ((n & 63) == 0 && (t1 = now()) - t0 >= opt_dur) {
                c1 = cpu_now();
                break;
            }
        }
    }
    double srv_cpu = -1;
    unsigned long long srv_n = 0;
    if (!failed) {
        fill_msg(out, 0, MSG_REPORT);
        if (send_msg(fd, udp, out) < 0 || recv_msg(fd, udp, in) != 1 ||
            in[0] != MSG_REPORT) {
            fprintf(stderr, "netbench: %s: no CPU report from the server: %s\n", name,
                    errno ? strerror(errno) : "EOF");
            failed = 1;
        } else {
            in[opt_msg - 1] = 0;
            if (sscanf((char *)in + 1, "cpu %lf count %llu", &srv_cpu, &srv_n) != 2) {
                fprintf(stderr, "netbench: %s: bad CPU report from the server\n", name);
                failed = 1;
            } else if (srv_n != (unsigned long long)n) {
                fprintf(stderr, "netbench: %s: server counted %llu round trips, client %ld\n",
                        name, srv_n, n);
                failed = 1;
            }
        }
    }
    free(out);
    free(in);
    if (failed || n == 0)
        return 1;
    double cpu = c1 - c0;
    if (two_programs) {
        printf("# %s (two programs): %ld round trips of %zu bytes in %.3f s (after %ld warm-up); "
               "CPU client %.3f s + server %.3f s\n",
               name, n, opt_msg, t1 - t0, warm, cpu, srv_cpu);
        cpu += srv_cpu;
    } else {
        printf("# %s (two threads): %ld round trips of %zu bytes in %.3f s (after %ld warm-up); "
               "CPU of the process %.3f s\n", name, n, opt_msg, t1 - t0, warm, cpu);
    }
    printf("%s_rtt_us %.3f\n", name, (t1 - t0) * 1e6 / (double)n);
    printf("%s_cpu_us %.3f\n", name, cpu * 1e6 / (double)n);
    return 0;
}

/* Ping-pong between two threads of this process. */
static int test_pingpong(int udp)
{
    struct sockaddr_in addr;
    struct pp_thread t = {.udp = udp, .fd = -1, .s.lfd = -1};
    if (udp)
        t.fd = bound_socket(SOCK_DGRAM, &addr, 0);
    else
        t.s.lfd = make_listener(&addr, 16);
    pthread_t tid;
    if (pthread_create(&tid, NULL, pingpong_server, &t) != 0)
        die("pthread_create");
    int fd;
    if (udp) {
        fd = socket(AF_INET, SOCK_DGRAM, 0);
        if (fd < 0)
            die("socket");
        if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0)
            die("connect");
    } else {
        fd = connect_to(&addr);
        set_nodelay(fd);
    }
    int failed = pingpong_client(fd, udp, 0);
    close(fd);                       /* TCP: the server sees EOF if it still reads */
    pthread_join(tid, NULL);
    if (t.s.lfd >= 0)
        close(t.s.lfd);
    return failed || t.s.failed;
}

/* Two programs: -P server serves one client on opt_port and exits. */
static int serve_program(int udp)
{
    struct sockaddr_in addr;
    struct srv s = {.lfd = -1};
    int fd;
    if (udp) {
        fd = bound_socket(SOCK_DGRAM, &addr, opt_port);
        printf("# ready: udp server on %s:%d\n", inet_ntoa(addr.sin_addr), opt_port);
        set_timeout(fd, 30);
    } else {
        s.lfd = make_listener_port(&addr, 16, opt_port);
        set_timeout(s.lfd, 30);
        printf("# ready: tcp server on %s:%d\n", inet_ntoa(addr.sin_addr), opt_port);
        fd = accept_one(s.lfd);
        if (fd < 0)
            die("accept");
        set_nodelay(fd);
        set_timeout(fd, 10);
    }
    echo_serve(&s, fd, udp);
    close(fd);
    if (s.lfd >= 0)
        close(s.lfd);
    printf("# server: %llu round trips, CPU %.3f s in all\n", s.count, cpu_now());
    return s.failed;
}

static int client_program(int udp)
{
    struct sockaddr_in addr;
    loopback_addr(&addr, opt_port);
    int fd = socket(AF_INET, udp ? SOCK_DGRAM : SOCK_STREAM, 0);
    if (fd < 0)
        die("socket");
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0)
        die("connect");
    if (!udp)
        set_nodelay(fd);
    int failed = pingpong_client(fd, udp, 1);
    close(fd);
    return failed;
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
    double c0 = cpu_now(), t0 = now(), t1;
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
    double cpu = cpu_now() - c0;
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
    printf("# stream: CPU of the process %.3f s\n", cpu);
    printf("stream_MBps %.1f\n", (double)sent / (t1 - t0) / 1e6);
    printf("stream_cpu_s_per_GB %.3f\n", cpu / ((double)sent / 1e9));
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
    double c0 = cpu_now(), c1 = c0, t0 = now(), t1 = t0;
    while (!failed) {
        if (one_conn(&addr) != 0) {
            failed = 1;
            break;
        }
        n++;
        if ((n & 31) == 0 && (t1 = now()) - t0 >= opt_dur) {
            c1 = cpu_now();
            break;
        }
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
    printf("# conn: CPU of the process %.3f s\n", c1 - c0);
    printf("conn_per_s %.0f\n", (double)n / (t1 - t0));
    printf("conn_cpu_us %.2f\n", (c1 - c0) * 1e6 / (double)n);
    return 0;
}

/* ---- main ---------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr,
            "usage: netbench [-t all|pingpong|udp|stream|conn] [-d seconds]\n"
            "                [-m pingpong-msg-bytes] [-w warmup-roundtrips]\n"
            "                [-s stream-write-bytes] [-r stream-recv-buffer] [-V]\n"
            "                [-P server|client -p port] [-a ipv4-address]\n"
            "  -d  duration of each measurement (default 1.5)\n"
            "  -V  verify every stream byte (slower) instead of block stamps\n"
            "  -P  two programs: this one is the server (serves one client, then\n"
            "      exits) or the client, on 127.0.0.1:port (-t pingpong or udp)\n"
            "  -a  this IPv4 address instead of 127.0.0.1 (the server binds it,\n"
            "      the client connects to it)\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *test = "all";
    int c;
    while ((c = getopt(argc, argv, "t:d:m:w:s:r:VP:p:a:h")) != -1) {
        switch (c) {
        case 't': test = optarg; break;
        case 'd': opt_dur = atof(optarg); break;
        case 'm': opt_msg = (size_t)strtoul(optarg, NULL, 0); break;
        case 'w': opt_warmup = strtol(optarg, NULL, 0); break;
        case 's': opt_wsize = (size_t)strtoul(optarg, NULL, 0); break;
        case 'r': opt_rsize = (size_t)strtoul(optarg, NULL, 0); break;
        case 'V': opt_verify = 1; break;
        case 'P': opt_role = optarg; break;
        case 'p': opt_port = atoi(optarg); break;
        case 'a':
            if (inet_pton(AF_INET, optarg, &opt_addr) != 1)
                usage();
            opt_addr_set = 1;
            break;
        default: usage();
        }
    }
    /* 32 bytes at least: the server's CPU report travels in one message */
    if (optind != argc || opt_dur <= 0 || opt_msg < 32 || opt_msg > 65000 ||
        opt_wsize == 0 || opt_rsize == 0 || opt_warmup < 0)
        usage();
    int all = strcmp(test, "all") == 0;
    int t_pp = !strcmp(test, "pingpong"), t_udp = !strcmp(test, "udp");
    if (!all && !t_pp && !t_udp && strcmp(test, "stream") && strcmp(test, "conn"))
        usage();
    if (opt_role && (strcmp(opt_role, "server") && strcmp(opt_role, "client")))
        usage();
    if (opt_role && (!(t_pp || t_udp) || opt_port <= 0 || opt_port > 65535))
        usage();
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);

    if (opt_role) {
        int failed = !strcmp(opt_role, "server") ? serve_program(t_udp) : client_program(t_udp);
        if (failed)
            fprintf(stderr, "netbench: %s %s FAILED\n", test, opt_role);
        return failed;
    }
    int failed = 0;
    if (all || t_pp) {
        if (test_pingpong(0)) {
            fprintf(stderr, "netbench: pingpong FAILED\n");
            failed = 1;
        }
    }
    if (all || t_udp) {
        if (test_pingpong(1)) {
            fprintf(stderr, "netbench: udp FAILED\n");
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

/*
 * demo.c - an echo server and its clients, all in one process.
 *
 * Plain POSIX sockets and threads.  Built without libuserspacesock it runs
 * on the kernel's loopback TCP/UDP; linked with -luserspacesock the very same
 * calls are served in user space by the library's in-process loopback
 * backend.  Both builds must print the same story and exit 0.
 *
 *   - one TCP echo server (127.0.0.1, port 0 -> getsockname), one handler
 *     thread per accepted connection, echoing until end of stream;
 *   - NCLIENTS client threads, each connecting, sending messages of various
 *     sizes, reading the echoes back and checking them (FNV-1a checksum and
 *     byte comparison), then half-closing and waiting for the server's EOF;
 *   - one UDP echo exchange (a few datagrams, lockstep) between a UDP echo
 *     thread and a client socket, checking payloads and source address.
 *
 * Exit status: 0 if everything matched, 1 on any mismatch or error,
 * 3 if the watchdog fired (something hung).
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <unistd.h>

#ifndef SOCKETS_LABEL
#define SOCKETS_LABEL "as linked (kernel unless built with -luserspacesock)"
#endif

#define NCLIENTS 4
#define NMSGS 5
#define CHUNK 8192          /* lockstep unit: send <= CHUNK, read it back */
#define IO_TIMEOUT_S 10     /* SO_RCVTIMEO/SO_SNDTIMEO on every socket */
#define WATCHDOG_S 60       /* whole-program deadline */
#define NDGRAMS 3

static const size_t udp_sizes[NDGRAMS] = {1, 512, 8000};

/* ---- output: whole lines, never interleaved ---------------------------- */

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&out_lock);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    fflush(stdout);
    pthread_mutex_unlock(&out_lock);
    va_end(ap);
}

/* ---- helpers ------------------------------------------------------------- */

static uint32_t fnv1a(const unsigned char *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 16777619u;
    }
    return h;
}

/* Deterministic payload: xorshift32 seeded by client and message index. */
static void fill(unsigned char *p, size_t n, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1u;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (unsigned char)(x >> 24);
    }
}

static const char *fmt_addr(const struct sockaddr_in *a, char *buf, size_t len)
{
    char ip[INET_ADDRSTRLEN];
    if (!inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip))
        snprintf(ip, sizeof ip, "?");
    snprintf(buf, len, "%s:%u", ip, (unsigned)ntohs(a->sin_port));
    return buf;
}

static void set_timeouts(int fd)
{
    struct timeval tv = {.tv_sec = IO_TIMEOUT_S, .tv_usec = 0};
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0)
        say("warning: setsockopt(SO_RCVTIMEO): %s", strerror(errno));
    if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0)
        say("warning: setsockopt(SO_SNDTIMEO): %s", strerror(errno));
}

/* Send all of buf; returns 0 or -1 with errno set. */
static int send_all(int fd, const unsigned char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Read exactly n bytes; returns bytes read (< n only on EOF) or -1. */
static ssize_t recv_all(int fd, unsigned char *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = recv(fd, buf + got, n - got, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

static void watchdog(int sig)
{
    static const char msg[] = "demo: WATCHDOG: still running after "
                              "60 s, something is stuck -> FAIL\n";
    (void)sig;
    ssize_t r = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)r;
    _exit(3);
}

/* ---- TCP echo server ------------------------------------------------------ */

static struct sockaddr_in tcp_server_addr, udp_server_addr;

struct conn {
    int fd;
    int id;
    struct sockaddr_in peer;
    unsigned long long echoed;
    int failed;
};

static void *echo_handler(void *arg)
{
    struct conn *c = arg;
    char peer[64];
    unsigned char *buf = malloc(65536);
    fmt_addr(&c->peer, peer, sizeof peer);
    if (!buf) {
        c->failed = 1;
        close(c->fd);
        return NULL;
    }
    for (;;) {
        ssize_t r = recv(c->fd, buf, 65536, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            say("server: conn %d from %s: recv: %s -> FAIL", c->id, peer,
                strerror(errno));
            c->failed = 1;
            break;
        }
        if (r == 0)
            break;                       /* client half-closed: we are done */
        if (send_all(c->fd, buf, (size_t)r) < 0) {
            say("server: conn %d from %s: send: %s -> FAIL", c->id, peer,
                strerror(errno));
            c->failed = 1;
            break;
        }
        c->echoed += (unsigned long long)r;
    }
    free(buf);
    if (close(c->fd) < 0) {
        say("server: conn %d: close: %s -> FAIL", c->id, strerror(errno));
        c->failed = 1;
    }
    say("server: conn %d from %s: end of stream, echoed %llu bytes, closed",
        c->id, peer, c->echoed);
    return NULL;
}

struct server {
    int lfd;
    struct conn conns[NCLIENTS];
    pthread_t tids[NCLIENTS];
    int naccepted;
    int failed;
};

static void *tcp_server(void *arg)
{
    struct server *s = arg;
    for (int i = 0; i < NCLIENTS; i++) {
        struct conn *c = &s->conns[i];
        socklen_t len = sizeof c->peer;
        int fd;
        do
            fd = accept(s->lfd, (struct sockaddr *)&c->peer, &len);
        while (fd < 0 && errno == EINTR);
        if (fd < 0) {
            say("server: accept: %s -> FAIL", strerror(errno));
            s->failed = 1;
            break;
        }
        char peer[64];
        c->fd = fd;
        c->id = i;
        set_timeouts(fd);
        say("server: accepted conn %d from %s", i,
            fmt_addr(&c->peer, peer, sizeof peer));
        if (pthread_create(&s->tids[i], NULL, echo_handler, c) != 0) {
            say("server: pthread_create failed -> FAIL");
            close(fd);
            s->failed = 1;
            break;
        }
        s->naccepted++;
    }
    for (int i = 0; i < s->naccepted; i++) {
        pthread_join(s->tids[i], NULL);
        if (s->conns[i].failed)
            s->failed = 1;
    }
    return NULL;
}

/* ---- TCP clients ------------------------------------------------------------ */

struct client {
    int id;
    int ok;                  /* 1 if everything matched */
    int msgs_ok;
    unsigned long long sent, echoed;
};

static void *tcp_client(void *arg)
{
    struct client *cl = arg;
    const size_t sizes[NMSGS] = {
        (size_t)1 + (size_t)cl->id,
        (size_t)100 * (size_t)(cl->id + 1),
        1500,
        65536,
        (size_t)200000 + (size_t)cl->id * 12345,
    };
    char local[64], remote[64];
    struct sockaddr_in me;
    socklen_t len = sizeof me;
    unsigned char *out = NULL, *in = NULL;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    cl->ok = 0;
    if (fd < 0) {
        say("client %d: socket: %s -> FAIL", cl->id, strerror(errno));
        return NULL;
    }
    set_timeouts(fd);
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
        say("client %d: warning: TCP_NODELAY: %s", cl->id, strerror(errno));
    if (connect(fd, (const struct sockaddr *)&tcp_server_addr,
                sizeof tcp_server_addr) < 0) {
        say("client %d: connect: %s -> FAIL", cl->id, strerror(errno));
        goto out;
    }
    if (getsockname(fd, (struct sockaddr *)&me, &len) < 0) {
        say("client %d: getsockname: %s -> FAIL", cl->id, strerror(errno));
        goto out;
    }
    say("client %d: connected from %s to %s", cl->id,
        fmt_addr(&me, local, sizeof local),
        fmt_addr(&tcp_server_addr, remote, sizeof remote));

    size_t maxsz = 0;
    for (int m = 0; m < NMSGS; m++)
        if (sizes[m] > maxsz)
            maxsz = sizes[m];
    out = malloc(maxsz);
    in = malloc(maxsz);
    if (!out || !in) {
        say("client %d: out of memory -> FAIL", cl->id);
        goto out;
    }

    int all_ok = 1;
    for (int m = 0; m < NMSGS; m++) {
        size_t n = sizes[m];
        fill(out, n, (uint32_t)(cl->id * 100 + m + 1));
        memset(in, 0, n);
        /* Lockstep in CHUNK pieces: the echo of a piece is read before the
         * next is sent, so neither side ever needs more than CHUNK bytes of
         * buffering in flight (no deadlock, whatever the window sizes). */
        size_t done = 0, got = 0;
        int err = 0;
        while (done < n) {
            size_t k = n - done < CHUNK ? n - done : CHUNK;
            if (send_all(fd, out + done, k) < 0) {
                say("client %d: msg %d: send: %s -> FAIL", cl->id, m,
                    strerror(errno));
                err = 1;
                break;
            }
            cl->sent += k;
            ssize_t r = recv_all(fd, in + done, k);
            if (r < 0) {
                say("client %d: msg %d: recv: %s -> FAIL", cl->id, m,
                    strerror(errno));
                err = 1;
                break;
            }
            got += (size_t)r;
            cl->echoed += (unsigned long long)r;
            if ((size_t)r < k) {
                say("client %d: msg %d: unexpected end of stream -> FAIL",
                    cl->id, m);
                err = 1;
                break;
            }
            done += k;
        }
        uint32_t hs = fnv1a(out, n), hr = fnv1a(in, got);
        int ok = !err && got == n && hs == hr && memcmp(out, in, n) == 0;
        say("client %d: msg %d: %7zu bytes sent, %7zu echoed, "
            "checksum %08x/%08x %s",
            cl->id, m, n, got, (unsigned)hs, (unsigned)hr,
            ok ? "OK" : "FAIL");
        if (ok)
            cl->msgs_ok++;
        else
            all_ok = 0;
        if (err)
            goto out;
    }

    /* Half-close; the server echoes nothing more and closes: expect EOF. */
    if (shutdown(fd, SHUT_WR) < 0) {
        say("client %d: shutdown(SHUT_WR): %s -> FAIL", cl->id,
            strerror(errno));
        goto out;
    }
    unsigned char extra;
    ssize_t r;
    do
        r = recv(fd, &extra, 1, 0);
    while (r < 0 && errno == EINTR);
    if (r != 0) {
        say("client %d: expected end of stream after shutdown, got %s -> FAIL",
            cl->id, r < 0 ? strerror(errno) : "data");
        goto out;
    }
    cl->ok = all_ok;
    say("client %d: %d/%d messages OK, %llu bytes sent, %llu echoed, "
        "server closed cleanly -> %s",
        cl->id, cl->msgs_ok, NMSGS, cl->sent, cl->echoed,
        all_ok ? "OK" : "FAIL");
out:
    free(out);
    free(in);
    if (close(fd) < 0) {
        say("client %d: close: %s -> FAIL", cl->id, strerror(errno));
        cl->ok = 0;
    }
    return NULL;
}

/* ---- UDP echo ---------------------------------------------------------------- */

struct udp_server {
    int fd;
    int failed;
    int echoed;
};

static void *udp_server(void *arg)
{
    struct udp_server *u = arg;
    unsigned char *buf = malloc(65536);
    if (!buf) {
        u->failed = 1;
        return NULL;
    }
    for (int i = 0; i < NDGRAMS; i++) {
        struct sockaddr_in from;
        socklen_t len = sizeof from;
        char peer[64];
        ssize_t r;
        do
            r = recvfrom(u->fd, buf, 65536, 0, (struct sockaddr *)&from, &len);
        while (r < 0 && errno == EINTR);
        if (r < 0) {
            say("udp server: recvfrom: %s -> FAIL", strerror(errno));
            u->failed = 1;
            break;
        }
        if (sendto(u->fd, buf, (size_t)r, 0, (struct sockaddr *)&from, len) != r) {
            say("udp server: sendto: %s -> FAIL", strerror(errno));
            u->failed = 1;
            break;
        }
        u->echoed++;
        say("udp server: datagram %d: %zd bytes from %s echoed", i, r,
            fmt_addr(&from, peer, sizeof peer));
    }
    free(buf);
    return NULL;
}

/* Returns number of datagrams echoed correctly. */
static int udp_client(void)
{
    unsigned char out[8000], in[8000 + 1];
    char local[64], remote[64], src[64];
    int good = 0;
    unsigned long long bytes = 0;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) {
        say("udp client: socket: %s -> FAIL", strerror(errno));
        return 0;
    }
    set_timeouts(fd);
    struct sockaddr_in me;
    socklen_t melen = sizeof me;
    memset(&me, 0, sizeof me);
    me.sin_family = AF_INET;
    me.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&me, sizeof me) < 0 ||
        getsockname(fd, (struct sockaddr *)&me, &melen) < 0) {
        say("udp client: bind/getsockname: %s -> FAIL", strerror(errno));
        close(fd);
        return 0;
    }
    say("udp client: sending from %s to %s",
        fmt_addr(&me, local, sizeof local),
        fmt_addr(&udp_server_addr, remote, sizeof remote));
    for (int i = 0; i < NDGRAMS; i++) {
        size_t n = udp_sizes[i];
        fill(out, n, (uint32_t)(1000 + i));
        if (sendto(fd, out, n, 0, (const struct sockaddr *)&udp_server_addr,
                   sizeof udp_server_addr) != (ssize_t)n) {
            say("udp client: sendto: %s -> FAIL", strerror(errno));
            break;
        }
        struct sockaddr_in from;
        socklen_t len = sizeof from;
        ssize_t r;
        do
            r = recvfrom(fd, in, sizeof in, 0, (struct sockaddr *)&from, &len);
        while (r < 0 && errno == EINTR);
        if (r < 0) {
            say("udp client: recvfrom: %s -> FAIL", strerror(errno));
            break;
        }
        int same_src = len == sizeof from && from.sin_family == AF_INET &&
                       from.sin_port == udp_server_addr.sin_port &&
                       from.sin_addr.s_addr == udp_server_addr.sin_addr.s_addr;
        uint32_t hs = fnv1a(out, n), hr = fnv1a(in, (size_t)r);
        int ok = (size_t)r == n && hs == hr && memcmp(out, in, n) == 0 && same_src;
        say("udp client: datagram %d: %5zu bytes sent, %5zd echoed from %s, "
            "checksum %08x/%08x %s",
            i, n, r, fmt_addr(&from, src, sizeof src), (unsigned)hs,
            (unsigned)hr, ok ? "OK" : "FAIL");
        if (ok) {
            good++;
            bytes += n;
        }
    }
    close(fd);
    say("udp client: %d/%d datagrams OK, %llu bytes -> %s", good, NDGRAMS,
        bytes, good == NDGRAMS ? "OK" : "FAIL");
    return good;
}

/* ---- main -------------------------------------------------------------------- */

static int bound_socket(int type, struct sockaddr_in *addr)
{
    int fd = socket(AF_INET, type, 0);
    if (fd < 0) {
        say("socket: %s", strerror(errno));
        exit(1);
    }
    memset(addr, 0, sizeof *addr);
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr->sin_port = 0;                         /* let the stack pick */
    if (bind(fd, (struct sockaddr *)addr, sizeof *addr) < 0) {
        say("bind: %s", strerror(errno));
        exit(1);
    }
    socklen_t len = sizeof *addr;
    if (getsockname(fd, (struct sockaddr *)addr, &len) < 0) {
        say("getsockname: %s", strerror(errno));
        exit(1);
    }
    set_timeouts(fd);
    return fd;
}

int main(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = watchdog;
    sigaction(SIGALRM, &sa, NULL);
    alarm(WATCHDOG_S);

    char a[64], b[64];
    static struct server srv;
    struct udp_server us = {0};
    struct client cl[NCLIENTS];
    pthread_t stid, utid, ctid[NCLIENTS];

    say("demo: sockets: %s", SOCKETS_LABEL);

    srv.lfd = bound_socket(SOCK_STREAM, &tcp_server_addr);
    if (listen(srv.lfd, NCLIENTS) < 0) {
        say("listen: %s", strerror(errno));
        return 1;
    }
    us.fd = bound_socket(SOCK_DGRAM, &udp_server_addr);
    say("server: TCP echo listening on %s, UDP echo bound to %s",
        fmt_addr(&tcp_server_addr, a, sizeof a),
        fmt_addr(&udp_server_addr, b, sizeof b));

    if (pthread_create(&stid, NULL, tcp_server, &srv) != 0 ||
        pthread_create(&utid, NULL, udp_server, &us) != 0) {
        say("pthread_create failed");
        return 1;
    }
    int started = 0;
    for (int i = 0; i < NCLIENTS; i++) {
        memset(&cl[i], 0, sizeof cl[i]);
        cl[i].id = i;
        if (pthread_create(&ctid[i], NULL, tcp_client, &cl[i]) != 0) {
            say("pthread_create failed");
            break;
        }
        started++;
    }
    int clients_ok = 0, msgs_ok = 0;
    unsigned long long echoed = 0;
    for (int i = 0; i < started; i++) {
        pthread_join(ctid[i], NULL);
        clients_ok += cl[i].ok;
        msgs_ok += cl[i].msgs_ok;
        echoed += cl[i].echoed;
    }
    pthread_join(stid, NULL);

    /* Then the UDP exchange (after TCP, so the output reads in order). */
    int udp_good = udp_client();
    pthread_join(utid, NULL);
    close(srv.lfd);
    close(us.fd);

    unsigned long long server_echoed = 0;
    for (int i = 0; i < srv.naccepted; i++)
        server_echoed += srv.conns[i].echoed;

    int pass = clients_ok == NCLIENTS && srv.naccepted == NCLIENTS &&
               !srv.failed && server_echoed == echoed &&
               udp_good == NDGRAMS && !us.failed;
    say("SUMMARY: TCP %d/%d clients OK (%d/%d messages, %llu bytes echoed, "
        "server counted %llu), UDP %d/%d datagrams OK -> %s",
        clients_ok, NCLIENTS, msgs_ok, NCLIENTS * NMSGS, echoed, server_echoed,
        udp_good, NDGRAMS, pass ? "PASS" : "FAIL");
    return pass ? 0 : 1;
}

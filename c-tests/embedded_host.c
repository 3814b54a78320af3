/*
 * embedded_host.c - a host without an operating system's sockets, using the
 * no_std build of libuserspacesock (target/embedded/libuserspacesock.a, from
 * `make embedded`) as its socket API.
 *
 * The program supplies the platform table itself: memory (malloc), locks and
 * waiting (its own pthread mutex/condition variable, keyed by nothing: one
 * condition for every word, which is enough for a test host), a monotonic
 * clock, errno. Nothing of the library's hosted code is linked.
 *
 *   embedded_host blocking   threads block in the library through the
 *                            host's wait/wake: stream echo + datagrams
 *   embedded_host coop       no wait/wake: every call is non-blocking and a
 *                            single thread drives a poll loop
 *
 * Ends with "N passed, N failed".
 */
#include <userspacesock.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>


/* ---- the host's platform (shared with embedded_netif_host.c) ---- */
#include "embedded_platform.h"

/* ---- helpers ---- */
static uint32_t fnv(uint32_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

static int listener(struct sockaddr_in *a, int type, int flags)
{
    int fd = socket(AF_INET, type | flags, 0);
    memset(a, 0, sizeof *a);
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(fd, (struct sockaddr *)a, sizeof *a) == 0);
    socklen_t l = sizeof *a;
    CHECK(getsockname(fd, (struct sockaddr *)a, &l) == 0);
    CHECK(ntohs(a->sin_port) != 0);
    if (type == SOCK_STREAM)
        CHECK(listen(fd, 4) == 0);
    return fd;
}

#define TOTAL (256 * 1024)
static unsigned char sendbuf[TOTAL];

/* ---- blocking mode ---- */
struct srv {
    int lfd;
};
static void *echo_server(void *arg)
{
    struct srv *s = arg;
    int c = accept(s->lfd, NULL, NULL);
    CHECK(c >= 0);
    char buf[8192];
    for (;;) {
        ssize_t n = recv(c, buf, sizeof buf, 0);
        if (n <= 0) {
            CHECK(n == 0);
            break;
        }
        for (ssize_t off = 0; off < n;) {
            ssize_t w = send(c, buf + off, (size_t)(n - off), 0);
            CHECK(w > 0);
            if (w <= 0)
                break;
            off += w;
        }
    }
    close(c);
    return NULL;
}
static void *echo_sender(void *arg)
{
    int c = *(int *)arg;
    for (size_t off = 0; off < TOTAL;) {
        size_t n = TOTAL - off < 3000 ? TOTAL - off : 3000;
        ssize_t w = send(c, sendbuf + off, n, 0);
        CHECK(w > 0);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    CHECK(shutdown(c, SHUT_WR) == 0);
    return NULL;
}

static void run_blocking(void)
{
    struct sockaddr_in a;
    struct srv s;
    s.lfd = listener(&a, SOCK_STREAM, 0);
    pthread_t st, wt;
    pthread_create(&st, NULL, echo_server, &s);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(connect(c, (struct sockaddr *)&a, sizeof a) == 0);
    pthread_create(&wt, NULL, echo_sender, &c);
    static unsigned char got[TOTAL];
    size_t have = 0;
    for (;;) {
        ssize_t n = recv(c, got + have, TOTAL - have, 0); /* blocks via h_wait_cv */
        if (n <= 0) {
            CHECK(n == 0);
            break;
        }
        have += (size_t)n;
    }
    pthread_join(wt, NULL);
    pthread_join(st, NULL);
    CHECK(have == TOTAL);
    CHECK(fnv(2166136261u, got, have) == fnv(2166136261u, sendbuf, TOTAL));
    close(c);
    close(s.lfd);

    /* a receive timeout is measured by the host's clock */
    int d = listener(&a, SOCK_DGRAM, 0);
    struct timeval tv = {0, 50000};
    CHECK(setsockopt(d, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0);
    char b[64];
    uint64_t t0 = h_now(NULL);
    CHECK(recv(d, b, sizeof b, 0) == -1 && errno == EAGAIN);
    CHECK(h_now(NULL) - t0 >= 40000000u);

    /* datagrams with source addresses */
    struct sockaddr_in a2;
    int e = listener(&a2, SOCK_DGRAM, 0);
    for (int i = 0; i < 20; i++) {
        char m[32];
        int len = snprintf(m, sizeof m, "datagram %d", i);
        CHECK(sendto(e, m, (size_t)len, 0, (struct sockaddr *)&a, sizeof a) == len);
        struct sockaddr_in from;
        socklen_t fl = sizeof from;
        ssize_t n = recvfrom(d, b, sizeof b, 0, (struct sockaddr *)&from, &fl);
        CHECK(n == len && memcmp(b, m, (size_t)len) == 0);
        CHECK(from.sin_port == a2.sin_port);
    }
    close(d);
    close(e);
    CHECK(host_waits > 0); /* the library did block through the host */
    CHECK(host_locks > 0); /* and used the host's locks */
}

/* ---- cooperative mode: one thread, a poll loop ---- */
static void run_coop(void)
{
    struct sockaddr_in a;
    int l = listener(&a, SOCK_STREAM, SOCK_NONBLOCK);
    char b[4096];
    /* nothing can block: an empty accept and a poll with a timeout return at once */
    CHECK(accept(l, NULL, NULL) == -1 && errno == EAGAIN);
    struct pollfd p = {l, POLLIN, 0};
    uint64_t t0 = h_now(NULL);
    CHECK(poll(&p, 1, 1000) == 0);
    CHECK(h_now(NULL) - t0 < 500000000u);

    int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int r = connect(c, (struct sockaddr *)&a, sizeof a);
    CHECK(r == 0 || errno == EINPROGRESS);
    int s = -1;
    for (int i = 0; i < 1000 && s < 0; i++) {
        if (poll(&p, 1, 0) == 1)
            s = accept(l, NULL, NULL);
    }
    CHECK(s >= 0);
    CHECK(recv(s, b, sizeof b, 0) == -1 && errno == EAGAIN);
    /* a stream echo driven by the loop */
    static unsigned char got[TOTAL];
    size_t sent = 0, echoed = 0, have = 0;
    for (int rounds = 0; have < TOTAL && rounds < 1000000; rounds++) {
        struct pollfd ps[2] = {{c, POLLIN | POLLOUT, 0}, {s, POLLIN, 0}};
        CHECK(poll(ps, 2, 0) >= 0);
        if ((ps[0].revents & POLLOUT) && sent < TOTAL) {
            ssize_t w = send(c, sendbuf + sent, TOTAL - sent < 5000 ? TOTAL - sent : 5000, 0);
            if (w > 0)
                sent += (size_t)w;
        }
        if (ps[1].revents & POLLIN) {
            ssize_t n = recv(s, b, sizeof b, 0);
            if (n > 0) {
                ssize_t w = send(s, b, (size_t)n, 0);
                CHECK(w == n);
                echoed += (size_t)n;
            }
        }
        if (ps[0].revents & POLLIN) {
            ssize_t n = recv(c, got + have, TOTAL - have, 0);
            if (n > 0)
                have += (size_t)n;
        }
    }
    CHECK(echoed == TOTAL);
    CHECK(have == TOTAL);
    CHECK(fnv(2166136261u, got, have) == fnv(2166136261u, sendbuf, TOTAL));
    CHECK(shutdown(c, SHUT_WR) == 0);
    CHECK(recv(s, b, sizeof b, 0) == 0);
    close(c);
    close(s);
    close(l);

    /* datagrams */
    struct sockaddr_in a2;
    int d = listener(&a, SOCK_DGRAM, SOCK_NONBLOCK);
    int e = listener(&a2, SOCK_DGRAM, SOCK_NONBLOCK);
    CHECK(recv(d, b, sizeof b, 0) == -1 && errno == EAGAIN);
    CHECK(sendto(e, "one", 3, 0, (struct sockaddr *)&a, sizeof a) == 3);
    CHECK(sendto(e, "two!", 4, 0, (struct sockaddr *)&a, sizeof a) == 4);
    struct pollfd pd = {d, POLLIN, 0};
    CHECK(poll(&pd, 1, 0) == 1 && (pd.revents & POLLIN));
    CHECK(recv(d, b, sizeof b, 0) == 3 && memcmp(b, "one", 3) == 0);
    CHECK(recv(d, b, sizeof b, 0) == 4 && memcmp(b, "two!", 4) == 0);
    close(d);
    close(e);
    CHECK(host_waits == 0); /* nothing ever waited */
}

int main(int argc, char **argv)
{
    int coop = argc > 1 && strcmp(argv[1], "coop") == 0;
    for (size_t i = 0; i < TOTAL; i++)
        sendbuf[i] = (unsigned char)(i * 131 + (i >> 9));

    /* before the platform is registered: a clear error, no crash */
    CHECK(socket(AF_INET, SOCK_STREAM, 0) == -1 && usock_errno() == ENOSYS);
    CHECK(close(0) == -1 || 1); /* fd 0 is not a socket of ours: EBADF */

    struct usock_platform_ops ops;
    memset(&ops, 0, sizeof ops);
    ops.abi_version = USOCK_PLATFORM_ABI_VERSION;
    ops.alloc = h_alloc;
    ops.free = h_free;
    ops.now_ns = h_now;
    ops.errno_location = h_errno;
    ops.log = h_log;
    ops.abort = h_abort;
    if (!coop) {
        ops.lock_create = h_lock_create;
        ops.lock = h_lock;
        ops.unlock = h_unlock;
        ops.wait = h_wait_cv;
        ops.wake = h_wake_cv;
    }
    struct usock_platform_ops bad = ops;
    bad.abi_version = 99;
    CHECK(usock_platform_init(&bad) == -EINVAL);
    CHECK(usock_platform_init(&ops) == 0);
    CHECK(usock_platform_init(&ops) == -EALREADY);

    /* fd numbers are the library's own, lowest first */
    int f0 = socket(AF_INET, SOCK_DGRAM, 0);
    int f1 = socket(AF_INET, SOCK_DGRAM, 0);
    CHECK(f0 == 0 && f1 == 1);
    close(f0);
    CHECK(socket(AF_INET, SOCK_DGRAM, 0) == 0);
    close(0);
    close(f1);
    /* an fd that is not a socket is EBADF: there is nothing else */
    CHECK(send(42, "x", 1, 0) == -1 && errno == EBADF);

    /* RAM per socket at the default capacities, from the host's allocator */
    if (!coop) {
        enum { N = 32 };
        int fds[N], acc[N], cl[N];
        long before = host_live;
        for (int i = 0; i < N; i++)
            fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        long idle = (host_live - before) / N;
        struct sockaddr_in la;
        int l = listener(&la, SOCK_STREAM, 0);
        CHECK(listen(l, N) == 0);
        long before_conn = host_live;
        for (int i = 0; i < N; i++) {
            cl[i] = socket(AF_INET, SOCK_STREAM, 0);
            CHECK(connect(cl[i], (struct sockaddr *)&la, sizeof la) == 0);
            acc[i] = accept(l, NULL, NULL);
            CHECK(send(cl[i], "x", 1, 0) == 1 && send(acc[i], "y", 1, 0) == 1);
        }
        long conn = (host_live - before_conn) / N;
        printf("RAM: idle socket %ld bytes; connected stream pair with data %ld bytes "
               "(%ld per socket, receive rings of %d KiB allocated on first data)\n",
               idle, conn, conn / 2, 256);
        for (int i = 0; i < N; i++) {
            close(fds[i]);
            close(acc[i]);
            close(cl[i]);
        }
        close(l);
    }

    if (coop)
        run_coop();
    else
        run_blocking();
    CHECK(host_allocs > 0);
    printf("%s mode: %d passed, %d failed\n", coop ? "coop" : "blocking", passed, failed);
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}

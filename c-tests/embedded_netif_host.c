/*
 * embedded_netif_host.c - the RTOS path of issue 17 end to end: a host
 * without an operating system's sockets gives the no_std build of
 * libuserspacesock (target/embedded/libuserspacesock.a) its platform table
 * and its Ethernet driver (struct usock_netif_ops), and gets POSIX sockets
 * over real TCP/IP (the library's smoltcp engine).
 *
 * The "driver" is a Linux TAP device the program opens itself
 * (/dev/net/tun, IFF_TAP): the kernel on its other side is the peer,
 * tests/engine/embedded_peer.py in the same network namespace
 * (tests/engine/embedded.sh makes it). Nothing of the library's hosted
 * code is linked.
 *
 *   embedded_netif_host single TAPDEV   one thread, blocking calls: the
 *       platform's wait sleeps on the TAP fd (the driver's receive
 *       interrupt) and the library runs the engine before every wait
 *   embedded_netif_host task TAPDEV     threads block through a condition
 *       variable; a network task runs usock_netif_poll when the driver has
 *       a frame, when the library kicks it, or when its timer is due
 *   embedded_netif_host coop TAPDEV     no wait/wake: every call is
 *       non-blocking and one loop calls usock_netif_poll and poll()
 *
 * The engine's addresses are 10.78.0.2/24 and fd78::2/64, the kernel's
 * 10.78.0.1 and fd78::1. Checks, in the blocking modes: 1 MiB to a kernel
 * TCP server and back (FNV-1a compared; 256 KiB over IPv6), ECONNREFUSED from a port nobody listens on, 20 UDP datagrams
 * echoed by the kernel, and a kernel client's 1 MiB echoed by a server here
 * (the peer compares SHA-256 and says so, then closes); RAM per engine socket from the
 * host's allocator. In coop: the TCP transfer, ECONNREFUSED and UDP.
 * Ends with "N passed, N failed".
 */
#include <userspacesock.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* The socket calls below are the library's (the no_std archive defines
 * them); the driver's own calls (open, read, write, ioctl, poll on the TAP
 * fd) must reach the kernel, so they go through syscall-free wrappers of
 * libc that the archive does not define. */
#include <sys/syscall.h>


enum mode { SINGLE, TASK, COOP };
static enum mode mode;

/* ---- the driver: a TAP device ---- */
static int tap_fd = -1;
static int kick_fd = -1; /* task mode: the network task's wake-up */
static unsigned long frames_in, frames_out, kicks;

/* poll(2) on the driver's fds: the kernel's, not the library's poll. */
static int kpoll(struct pollfd *p, unsigned n, int ms)
{
    struct timespec ts, *tp = NULL;
    if (ms >= 0) {
        ts.tv_sec = ms / 1000;
        ts.tv_nsec = (long)(ms % 1000) * 1000000L;
        tp = &ts;
    }
    return (int)syscall(SYS_ppoll, p, (unsigned long)n, tp, NULL, (size_t)8);
}

static int d_send(void *ctx, const uint8_t *frame, size_t len)
{
    (void)ctx;
    ssize_t w = syscall(SYS_write, tap_fd, frame, len);
    if (w == (ssize_t)len)
        __atomic_fetch_add(&frames_out, 1, __ATOMIC_RELAXED);
    return w == (ssize_t)len ? 0 : -1;
}
static size_t d_recv(void *ctx, uint8_t *buf, size_t cap)
{
    (void)ctx;
    ssize_t n = syscall(SYS_read, tap_fd, buf, cap);
    if (n <= 0)
        return 0;
    __atomic_fetch_add(&frames_in, 1, __ATOMIC_RELAXED);
    return (size_t)n;
}
static uint32_t d_mtu(void *ctx)
{
    (void)ctx;
    return 1500;
}
static void d_mac(void *ctx, uint8_t *mac)
{
    (void)ctx;
    static const uint8_t m[6] = {0x02, 0x00, 0x00, 0x78, 0x00, 0x02};
    memcpy(mac, m, 6);
}
static int d_link_up(void *ctx)
{
    (void)ctx;
    return tap_fd >= 0;
}
static void d_kick(void *ctx)
{
    (void)ctx;
    uint64_t one = 1;
    __atomic_fetch_add(&kicks, 1, __ATOMIC_RELAXED);
    if (kick_fd >= 0 && syscall(SYS_write, kick_fd, &one, sizeof one) < 0)
        perror("kick");
}

static int tap_open(const char *name)
{
    int fd = (int)syscall(SYS_openat, AT_FDCWD, "/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
    /* This driver reads frames without a virtio_net_hdr: no offloads (an
     * engine that had the device before may have left its own on). */
    if (syscall(SYS_ioctl, fd, TUNSETIFF, &ifr) < 0 || syscall(SYS_ioctl, fd, TUNSETOFFLOAD, 0) < 0) {
        syscall(SYS_close, fd);
        return -1;
    }
    /* The kernel sends nothing to the TAP device until its link watch
     * sees the carrier our attach turned on (up to a second). */
    char path[64], state[16] = "";
    snprintf(path, sizeof path, "/sys/class/net/%s/operstate", name);
    for (int i = 0; i < 200; i++) {
        int s = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
        if (s >= 0) {
            ssize_t n = syscall(SYS_read, s, state, sizeof state - 1);
            syscall(SYS_close, s);
            state[n > 0 ? n : 0] = 0;
        }
        if (strncmp(state, "up", 2) == 0)
            break;
        struct timespec t = {0, 10000000};
        nanosleep(&t, NULL);
    }
    return fd;
}

/* ---- the platform (shared with embedded_host.c; its waits below) ---- */
#include "embedded_platform.h"

static int ms_of(uint64_t ns)
{
    return ns == UINT64_MAX ? -1 : ns / 1000000u > 60000 ? 60000 : (int)((ns + 999999u) / 1000000u);
}
/* Single-threaded: nobody else changes the word; what can is a frame, so
 * sleep on the driver (an RTOS: its receive interrupt's semaphore). */
static void h_wait_single(void *ctx, const uint32_t *word, uint32_t expected, uint64_t timeout_ns)
{
    (void)ctx;
    __atomic_fetch_add(&host_waits, 1, __ATOMIC_RELAXED);
    if (__atomic_load_n(word, __ATOMIC_SEQ_CST) != expected)
        return;
    struct pollfd p = {tap_fd, POLLIN, 0};
    kpoll(&p, 1, ms_of(timeout_ns));
}
static void h_wake_single(void *ctx, const uint32_t *word)
{
    (void)ctx, (void)word;
}
/* Threads: h_wait_cv and h_wake_cv (embedded_platform.h). */
/* task mode: the network task, woken by a frame, a kick or its timer */
static volatile int task_stop;
static void *net_task(void *arg)
{
    (void)arg;
    while (!task_stop) {
        int ms = usock_netif_poll();
        struct pollfd p[2] = {{tap_fd, POLLIN, 0}, {kick_fd, POLLIN, 0}};
        kpoll(p, 2, ms < 0 || ms > 100 ? 100 : ms);
        if (p[1].revents & POLLIN) {
            uint64_t v;
            if (syscall(SYS_read, kick_fd, &v, sizeof v) < 0)
                perror("kick read");
        }
    }
    return NULL;
}

/* ---- the checks ---- */
#define TOTAL (1024 * 1024)
static unsigned char sendbuf[TOTAL], got[TOTAL];

static uint32_t fnv(const unsigned char *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}
static struct sockaddr_in sin4(const char *ip, int port)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}
#define PEER "10.78.0.1"

/* 1 MiB to the kernel's server, which sends it all back after our FIN. */
/* Sends the first n bytes of sendbuf on connection c in pieces, then
 * SHUT_WR, and reads what the echo server sends back until its end of
 * stream: every byte back, in order, then end-of-stream. Returns how many
 * came back. */
static size_t round_trip(int c, size_t n)
{
    for (size_t off = 0; off < n;) {
        ssize_t w = send(c, sendbuf + off, n - off < 7000 ? n - off : 7000, 0);
        CHECK(w > 0);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    CHECK(shutdown(c, SHUT_WR) == 0);
    size_t have = 0;
    for (;;) {
        ssize_t r = recv(c, got + have, TOTAL - have, 0);
        if (r <= 0) {
            CHECK(r == 0);
            break;
        }
        have += (size_t)r;
        if (have == TOTAL) {
            char x;
            CHECK(recv(c, &x, 1, 0) == 0);
            break;
        }
    }
    CHECK(have == n);
    CHECK(fnv(got, have) == fnv(sendbuf, n));
    return have;
}

static void tcp_client(void)
{
    struct sockaddr_in a = sin4(PEER, 7001);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(c >= 0);
    CHECK(connect(c, (struct sockaddr *)&a, sizeof a) == 0);
    struct sockaddr_in me;
    socklen_t ml = sizeof me;
    CHECK(getsockname(c, (struct sockaddr *)&me, &ml) == 0);
    CHECK(me.sin_addr.s_addr == htonl(0x0a4e0002));
    size_t have = round_trip(c, TOTAL);
    printf("tcp client: %zu bytes out and back, fnv %08x\n", have, fnv(got, have));
    CHECK(close(c) == 0);
}

/* The same over IPv6 (neighbour discovery instead of ARP), 256 KiB. */
static void tcp_client6(void)
{
    enum { N6 = 256 * 1024 };
    struct sockaddr_in6 a;
    memset(&a, 0, sizeof a);
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(7001);
    inet_pton(AF_INET6, "fd78::1", &a.sin6_addr);
    int c = socket(AF_INET6, SOCK_STREAM, 0);
    CHECK(c >= 0);
    CHECK(connect(c, (struct sockaddr *)&a, sizeof a) == 0);
    struct sockaddr_in6 me;
    socklen_t ml = sizeof me;
    struct in6_addr mine;
    inet_pton(AF_INET6, "fd78::2", &mine);
    CHECK(getsockname(c, (struct sockaddr *)&me, &ml) == 0);
    CHECK(memcmp(&me.sin6_addr, &mine, sizeof mine) == 0);
    size_t have = round_trip(c, N6);
    printf("tcp client over IPv6: %zu bytes out and back, fnv %08x\n", have, fnv(got, have));
    CHECK(close(c) == 0);
}

static void refused(void)
{
    struct sockaddr_in a = sin4(PEER, 7009);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(connect(c, (struct sockaddr *)&a, sizeof a) == -1 && errno == ECONNREFUSED);
    close(c);
}

static void udp_echo(void)
{
    struct sockaddr_in a = sin4(PEER, 7003);
    int d = socket(AF_INET, SOCK_DGRAM, 0);
    struct timeval tv = {1, 0};
    CHECK(setsockopt(d, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0);
    int echoed = 0;
    for (int i = 0; i < 20; i++) {
        size_t len = 1 + (size_t)i * 70;
        unsigned char m[1500], b[1500];
        for (size_t k = 0; k < len; k++)
            m[k] = (unsigned char)(i * 31 + k);
        /* A datagram may be lost on a real network: a client resends. */
        for (int tries = 0; tries < 3; tries++) {
            CHECK(sendto(d, m, len, 0, (struct sockaddr *)&a, sizeof a) == (ssize_t)len);
            struct sockaddr_in from;
            socklen_t fl = sizeof from;
            ssize_t n = recvfrom(d, b, sizeof b, 0, (struct sockaddr *)&from, &fl);
            if (n < 0 && errno == EAGAIN)
                continue;
            if (n == (ssize_t)len && memcmp(b, m, len) == 0 && from.sin_port == a.sin_port &&
                from.sin_addr.s_addr == a.sin_addr.s_addr)
                echoed++;
            break;
        }
    }
    CHECK(echoed == 20);
    printf("udp: %d of 20 datagrams echoed\n", echoed);
    close(d);
}

/* A kernel client's 1 MiB, sent back after its FIN (it compares). */
static void tcp_server(void)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    CHECK(setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0);
    struct sockaddr_in a = sin4("0.0.0.0", 7002);
    CHECK(bind(l, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(listen(l, 4) == 0);
    printf("listening on 7002\n");
    fflush(stdout);
    struct sockaddr_in from;
    socklen_t fl = sizeof from;
    int s = accept(l, (struct sockaddr *)&from, &fl);
    CHECK(s >= 0);
    CHECK(from.sin_addr.s_addr == inet_addr(PEER));
    size_t have = 0;
    while (have < TOTAL) {
        ssize_t n = recv(s, got + have, TOTAL - have, 0);
        CHECK(n > 0);
        if (n <= 0)
            break;
        have += (size_t)n;
    }
    CHECK(have == TOTAL);
    for (size_t off = 0; off < have;) {
        ssize_t w = send(s, got + off, have - off, 0);
        CHECK(w > 0);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    /* The peer closes once it has every byte back: the engine must run
     * until then (an RTOS program does not exit; this one must not leave
     * before its bytes are out). */
    char x;
    CHECK(recv(s, &x, 1, 0) == 0);
    printf("tcp server: %zu bytes in and back, fnv %08x\n", have, fnv(got, have));
    CHECK(close(s) == 0);
    CHECK(close(l) == 0);
}

/* What an engine socket costs the host's heap: idle UDP sockets bound on
 * the interface, and TCP connections to the kernel's server. */
static void ram_per_socket(void)
{
    enum { N = 8 };
    int u[N], t[N];
    long before = host_live;
    for (int i = 0; i < N; i++) {
        u[i] = socket(AF_INET, SOCK_DGRAM, 0);
        struct sockaddr_in a = sin4("10.78.0.2", 0);
        CHECK(bind(u[i], (struct sockaddr *)&a, sizeof a) == 0);
    }
    long udp = (host_live - before) / N;
    before = host_live;
    struct sockaddr_in a = sin4(PEER, 7001);
    for (int i = 0; i < N; i++) {
        t[i] = socket(AF_INET, SOCK_STREAM, 0);
        CHECK(connect(t[i], (struct sockaddr *)&a, sizeof a) == 0);
    }
    long tcp = (host_live - before) / N;
    printf("RAM per engine socket (host heap): UDP bound %ld bytes, TCP connected %ld bytes\n", udp,
           tcp);
    for (int i = 0; i < N; i++) {
        char x;
        CHECK(shutdown(t[i], SHUT_WR) == 0);
        CHECK(recv(t[i], &x, 1, 0) == 0);
        close(t[i]);
        close(u[i]);
    }
}

/* ---- cooperative: one loop, nothing blocks ---- */
static void coop_idle(void)
{
    int ms = usock_netif_poll();
    struct pollfd p = {tap_fd, POLLIN, 0};
    kpoll(&p, 1, ms < 0 || ms > 10 ? 10 : ms);
}

static void coop_run(void)
{
    struct sockaddr_in a = sin4(PEER, 7001);
    int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int r = connect(c, (struct sockaddr *)&a, sizeof a);
    CHECK(r == 0 || errno == EINPROGRESS);
    size_t sent = 0, have = 0;
    int eof = 0, shut = 0;
    uint64_t end = h_now(NULL) + 60000000000ull;
    while (!eof && h_now(NULL) < end) {
        struct pollfd p = {c, POLLIN | POLLOUT, 0};
        CHECK(poll(&p, 1, 0) >= 0);
        int progress = 0;
        if ((p.revents & POLLOUT) && sent < TOTAL) {
            ssize_t w = send(c, sendbuf + sent, TOTAL - sent < 7000 ? TOTAL - sent : 7000, 0);
            if (w > 0)
                sent += (size_t)w, progress = 1;
        }
        if (sent == TOTAL && !shut) {
            CHECK(shutdown(c, SHUT_WR) == 0);
            shut = 1;
        }
        if (p.revents & (POLLIN | POLLHUP)) {
            ssize_t n = recv(c, got + have, TOTAL - have, 0);
            if (n > 0)
                have += (size_t)n, progress = 1;
            else if (n == 0)
                eof = 1;
        }
        if (!progress)
            coop_idle();
        else
            usock_netif_poll();
    }
    CHECK(eof && have == TOTAL);
    CHECK(fnv(got, have) == fnv(sendbuf, TOTAL));
    printf("coop tcp client: %zu bytes out and back, fnv %08x\n", have, fnv(got, have));
    close(c);

    /* a refused non-blocking connect: POLLOUT|POLLERR, SO_ERROR */
    a = sin4(PEER, 7009);
    c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    CHECK(connect(c, (struct sockaddr *)&a, sizeof a) == -1 && errno == EINPROGRESS);
    struct pollfd p = {c, POLLOUT, 0};
    for (int i = 0; i < 500 && poll(&p, 1, 0) == 0; i++)
        coop_idle();
    int err = 0;
    socklen_t el = sizeof err;
    CHECK(getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &el) == 0 && err == ECONNREFUSED);
    close(c);

    /* UDP echo */
    a = sin4(PEER, 7003);
    int d = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    int echoed = 0;
    for (int i = 0; i < 5; i++) {
        char m[32], b[64];
        int len = snprintf(m, sizeof m, "coop datagram %d", i);
        CHECK(sendto(d, m, (size_t)len, 0, (struct sockaddr *)&a, sizeof a) == len);
        for (int k = 0; k < 300; k++) {
            ssize_t n = recv(d, b, sizeof b, 0);
            if (n == len && memcmp(b, m, (size_t)len) == 0) {
                echoed++;
                break;
            }
            coop_idle();
        }
    }
    CHECK(echoed == 5);
    close(d);
    CHECK(host_waits == 0);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s single|task|coop TAPDEV\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    mode = strcmp(argv[1], "task") == 0 ? TASK : strcmp(argv[1], "coop") == 0 ? COOP : SINGLE;
    for (size_t i = 0; i < TOTAL; i++)
        sendbuf[i] = (unsigned char)(i * 131 + (i >> 9));
    tap_fd = tap_open(argv[2]);
    if (tap_fd < 0) {
        perror("TAP device");
        return 2;
    }

    struct usock_platform_ops ops;
    memset(&ops, 0, sizeof ops);
    ops.abi_version = USOCK_PLATFORM_ABI_VERSION;
    ops.alloc = h_alloc;
    ops.free = h_free;
    ops.now_ns = h_now;
    ops.errno_location = h_errno;
    ops.log = h_log;
    ops.abort = h_abort;
    if (mode == SINGLE) {
        ops.wait = h_wait_single;
        ops.wake = h_wake_single;
    } else if (mode == TASK) {
        ops.lock_create = h_lock_create;
        ops.lock = h_lock;
        ops.unlock = h_unlock;
        ops.wait = h_wait_cv;
        ops.wake = h_wake_cv;
    }

    struct usock_netif_ops dev;
    memset(&dev, 0, sizeof dev);
    dev.abi_version = USOCK_NETIF_ABI_VERSION;
    dev.send = d_send;
    dev.recv = d_recv;
    dev.mtu = d_mtu;
    dev.mac = d_mac;
    dev.link_up = d_link_up;
    if (mode == TASK) {
        dev.kick = d_kick;
        kick_fd = (int)syscall(SYS_eventfd2, 0, EFD_NONBLOCK | EFD_CLOEXEC);
    }
    struct usock_netif_config cfg = {"10.78.0.2/24,fd78::2/64", "10.78.0.1", 0x5eed};

    /* before the platform: ENOSYS; nothing attached: usock_netif_poll says so */
    CHECK(usock_netif_attach(&dev, &cfg) == -1 && usock_errno() == ENOSYS);
    CHECK(usock_platform_init(&ops) == 0);
    CHECK(usock_netif_poll() == -1 && errno == ENODEV);
    struct usock_netif_ops bad = dev;
    bad.abi_version = 99;
    CHECK(usock_netif_attach(&bad, &cfg) == -1 && errno == EINVAL);
    bad = dev;
    bad.recv = NULL;
    CHECK(usock_netif_attach(&bad, &cfg) == -1 && errno == EINVAL);
    struct usock_netif_config badcfg = {"10.78.0.2/33", NULL, 0};
    CHECK(usock_netif_attach(&dev, &badcfg) == -1 && errno == EINVAL);
    CHECK(usock_netif_attach(&dev, &cfg) == 0);
    CHECK(usock_netif_attach(&dev, &cfg) == -1 && errno == EBUSY);
    CHECK(usock_netif_poll() >= 0);

    pthread_t task;
    if (mode == TASK)
        pthread_create(&task, NULL, net_task, NULL);

    if (mode == COOP) {
        coop_run();
    } else {
        ram_per_socket();
        tcp_client();
        tcp_client6();
        refused();
        udp_echo();
        tcp_server();
        CHECK(host_waits > 0); /* the calls blocked through the host */
    }
    if (mode == TASK) {
        task_stop = 1;
        pthread_join(task, NULL);
        CHECK(kicks > 0); /* writes woke the network task */
    }
    CHECK(frames_in > 0 && frames_out > 0);
    printf("%s mode: frames in %lu, out %lu, kicks %lu, host waits %lu\n", argv[1], frames_in,
           frames_out, kicks, host_waits);
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}

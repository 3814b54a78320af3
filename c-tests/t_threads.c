/* Threads: many threads x many connections with checksummed data both
 * ways, a large transfer, UDP request/response from many threads, and
 * shutdown()/close() from another thread while a thread is blocked. */
#include "testlib.h"

#include <stdatomic.h>

#define CLIENTS 8
#define CONNS 50
#define STOP 0xFFFFFFFFu

struct hdr { uint32_t len; uint32_t seed; uint32_t sum; };

struct server { int l; atomic_int handled; };

static void *server_worker(void *arg)
{
    struct server *sv = arg;
    static _Thread_local char buf[65536];
    for (;;) {
        int s = (int)OK(accept(sv->l, NULL, NULL));
        struct hdr h;
        CHECK_EQ(tl_read_all(s, &h, sizeof h), (long)sizeof h);
        if (h.len == STOP) {
            close(s);
            return NULL;
        }
        CHECK(h.len <= sizeof buf);
        CHECK_EQ(tl_read_all(s, buf, h.len), (long)h.len);
        CHECK_MSG(tl_cksum(2166136261u, buf, h.len) == h.sum,
                  "server: bad checksum on %u bytes", h.len);
        /* reply: the bytes inverted, with their own checksum */
        for (uint32_t i = 0; i < h.len; i++)
            buf[i] = (char)~buf[i];
        h.sum = tl_cksum(2166136261u, buf, h.len);
        CHECK_EQ(tl_write_all(s, &h, sizeof h), (long)sizeof h);
        CHECK_EQ(tl_write_all(s, buf, h.len), (long)h.len);
        /* the client closes first; wait for its EOF */
        char c;
        CHECK_EQ(read(s, &c, 1), 0);
        close(s);
        atomic_fetch_add(&sv->handled, 1);
    }
}

struct client { int fam; struct sockaddr_storage ss; socklen_t len; int id; int ok; };

static void *client_thread(void *arg)
{
    struct client *cl = arg;
    static _Thread_local char buf[65536], back[65536];
    for (int i = 0; i <= CONNS; i++) {
        int c = (int)OK(socket(tl_domain(cl->fam), SOCK_STREAM, 0));
        OK(connect(c, (struct sockaddr *)&cl->ss, cl->len));
        struct hdr h;
        if (i == CONNS) {
            h.len = STOP;
            CHECK_EQ(tl_write_all(c, &h, sizeof h), (long)sizeof h);
            close(c);
            break;
        }
        h.seed = (uint32_t)(cl->id * 1000 + i);
        h.len = 1 + (h.seed * 7919u) % 40000u;
        tl_fill(buf, h.len, h.seed);
        h.sum = tl_cksum(2166136261u, buf, h.len);
        CHECK_EQ(tl_write_all(c, &h, sizeof h), (long)sizeof h);
        CHECK_EQ(tl_write_all(c, buf, h.len), (long)h.len);
        struct hdr r;
        CHECK_EQ(tl_read_all(c, &r, sizeof r), (long)sizeof r);
        CHECK_EQ(r.len, h.len);
        CHECK_EQ(tl_read_all(c, back, r.len), (long)r.len);
        CHECK_MSG(tl_cksum(2166136261u, back, r.len) == r.sum,
                  "client: bad checksum on reply");
        for (uint32_t k = 0; k < h.len; k++)
            CHECK_MSG((char)~back[k] == buf[k], "client: reply byte %u wrong", k);
        close(c);
    }
    cl->ok = 1;
    return NULL;
}

/* 8 client threads x 50 connections, over all four families at once (two
 * client threads and two accepting threads per listener). */
TEST(many_threads_many_connections)
{
    struct server sv[FAM_COUNT];
    pthread_t workers[FAM_COUNT][2], clients[CLIENTS];
    struct client cl[CLIENTS];
    for (int f = 0; f < FAM_COUNT; f++) {
        sv[f].l = tl_listener(f, 64);
        atomic_init(&sv[f].handled, 0);
        for (int w = 0; w < 2; w++)
            pthread_create(&workers[f][w], NULL, server_worker, &sv[f]);
    }
    for (int i = 0; i < CLIENTS; i++) {
        cl[i].fam = i % FAM_COUNT;
        cl[i].len = tl_name(sv[cl[i].fam].l, &cl[i].ss);
        cl[i].id = i;
        cl[i].ok = 0;
        pthread_create(&clients[i], NULL, client_thread, &cl[i]);
    }
    for (int i = 0; i < CLIENTS; i++)
        pthread_join(clients[i], NULL);
    for (int f = 0; f < FAM_COUNT; f++)
        for (int w = 0; w < 2; w++)
            pthread_join(workers[f][w], NULL);
    int total = 0;
    for (int f = 0; f < FAM_COUNT; f++) {
        total += atomic_load(&sv[f].handled);
        close(sv[f].l);
    }
    for (int i = 0; i < CLIENTS; i++)
        CHECK_MSG(cl[i].ok, "client %d did not finish", i);
    CHECK_EQ(total, CLIENTS * CONNS);
}

struct pump { int fd; size_t n; uint32_t seed; uint32_t sum; int sender; };

static void *pump_thread(void *arg)
{
    struct pump *p = arg;
    enum { CH = 1 << 16 };
    char *buf = malloc(CH);
    uint32_t h = 2166136261u;
    size_t done = 0;
    uint32_t blk = 0;
    if (p->sender) {
        while (done < p->n) {
            size_t k = p->n - done < CH ? p->n - done : CH;
            tl_fill(buf, k, p->seed + blk++);
            h = tl_cksum(h, buf, k);
            CHECK_EQ(tl_write_all(p->fd, buf, k), (long)k);
            done += k;
        }
        OK(shutdown(p->fd, SHUT_WR));
    } else {
        for (;;) {
            ssize_t r = read(p->fd, buf, CH);
            CHECK(r >= 0);
            if (r == 0)
                break;
            h = tl_cksum(h, buf, (size_t)r);
            done += (size_t)r;
        }
        p->n = done;
    }
    p->sum = h;
    free(buf);
    return NULL;
}

/* tens of MB in both directions at once, checksummed */
TEST_FAM(large_transfer_both_ways)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    size_t n = 24u << 20;
    struct pump ps[4] = {
        {c, n, 11, 0, 1}, {s, 0, 0, 0, 0}, /* c -> s */
        {s, n, 77, 0, 1}, {c, 0, 0, 0, 0}, /* s -> c */
    };
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, pump_thread, &ps[i]);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    CHECK_EQ(ps[1].n, n);
    CHECK_EQ(ps[3].n, n);
    CHECK_EQ(ps[1].sum, ps[0].sum);
    CHECK_EQ(ps[3].sum, ps[2].sum);
    close(c);
    close(s);
}

TEST(large_transfer_socketpair)
{
    int sv[2];
    OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    struct pump ps[2] = {{sv[0], 16u << 20, 5, 0, 1}, {sv[1], 0, 0, 0, 0}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, pump_thread, &ps[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    CHECK_EQ(ps[1].n, 16u << 20);
    CHECK_EQ(ps[1].sum, ps[0].sum);
    close(sv[0]);
    close(sv[1]);
}

struct udp_peer { int fd; int rounds; int ok; };

static void *udp_echo(void *arg)
{
    struct udp_peer *p = arg;
    char buf[2048];
    for (int i = 0; i < p->rounds; i++) {
        struct sockaddr_storage from;
        socklen_t fl = sizeof from;
        ssize_t r = recvfrom(p->fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
        CHECK(r >= 0);
        CHECK_EQ(sendto(p->fd, buf, (size_t)r, 0, (struct sockaddr *)&from, fl), r);
    }
    p->ok = 1;
    return NULL;
}

static void *udp_client(void *arg)
{
    struct udp_peer *p = arg;
    char buf[2048], back[2048];
    for (int i = 0; i < p->rounds; i++) {
        size_t n = 1 + (size_t)(i * 37) % 1400;
        tl_fill(buf, n, (uint32_t)(p->fd * 100000 + i));
        CHECK_EQ(send(p->fd, buf, n, 0), (long)n);
        CHECK_EQ(recv(p->fd, back, sizeof back, 0), (long)n);
        CHECK(memcmp(buf, back, n) == 0);
    }
    p->ok = 1;
    return NULL;
}

/* request/response over datagrams from many threads (no loss possible:
 * one datagram in flight per pair) */
TEST(udp_threads_request_response)
{
    enum { PAIRS = 8, ROUNDS = 300 };
    struct udp_peer srv[PAIRS], cli[PAIRS];
    pthread_t ts[PAIRS], tc[PAIRS];
    for (int i = 0; i < PAIRS; i++) {
        int fam = i % FAM_COUNT;
        int a = tl_bound(fam, SOCK_DGRAM), b = tl_bound(fam, SOCK_DGRAM);
        struct sockaddr_storage an;
        socklen_t al = tl_name(a, &an);
        OK(connect(b, (struct sockaddr *)&an, al));
        srv[i] = (struct udp_peer){a, ROUNDS, 0};
        cli[i] = (struct udp_peer){b, ROUNDS, 0};
        pthread_create(&ts[i], NULL, udp_echo, &srv[i]);
        pthread_create(&tc[i], NULL, udp_client, &cli[i]);
    }
    for (int i = 0; i < PAIRS; i++) {
        pthread_join(tc[i], NULL);
        pthread_join(ts[i], NULL);
        CHECK(srv[i].ok && cli[i].ok);
        close(srv[i].fd);
        close(cli[i].fd);
    }
}

struct blocked { int fd; int kind; atomic_int done; long ret; int err; char data[8]; };

static void *block_in(void *arg)
{
    struct blocked *b = arg;
    errno = 0;
    if (b->kind == 0)
        b->ret = recv(b->fd, b->data, sizeof b->data, 0);
    else if (b->kind == 1)
        b->ret = accept(b->fd, NULL, NULL);
    else
        b->ret = recvfrom(b->fd, b->data, sizeof b->data, 0, NULL, NULL);
    b->err = errno;
    atomic_store(&b->done, 1);
    return NULL;
}

static void wait_done(struct blocked *b, long ms)
{
    long deadline = tl_now_ms() + ms;
    while (!atomic_load(&b->done) && tl_now_ms() < deadline)
        tl_sleep_ms(5);
}

TEST_FAM(shutdown_wakes_blocked_recv)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    struct blocked b = {.fd = s, .kind = 0};
    atomic_init(&b.done, 0);
    pthread_t t;
    pthread_create(&t, NULL, block_in, &b);
    tl_sleep_ms(100);
    CHECK_EQ(atomic_load(&b.done), 0);
    OK(shutdown(s, SHUT_RDWR));
    wait_done(&b, 3000);
    CHECK_MSG(atomic_load(&b.done), "recv still blocked after shutdown(SHUT_RDWR)");
    pthread_join(t, NULL);
    CHECK_EQ(b.ret, 0); /* Linux: EOF */
    close(c);
    close(s);
}

TEST_FAM(shutdown_rd_wakes_blocked_recv)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    struct blocked b = {.fd = s, .kind = 0};
    atomic_init(&b.done, 0);
    pthread_t t;
    pthread_create(&t, NULL, block_in, &b);
    tl_sleep_ms(100);
    OK(shutdown(s, SHUT_RD));
    wait_done(&b, 3000);
    CHECK_MSG(atomic_load(&b.done), "recv still blocked after shutdown(SHUT_RD)");
    pthread_join(t, NULL);
    CHECK_EQ(b.ret, 0);
    close(c);
    close(s);
}

TEST_FAM(shutdown_wakes_blocked_accept)
{
    int l = tl_listener(fam, 4);
    struct blocked b = {.fd = l, .kind = 1};
    atomic_init(&b.done, 0);
    pthread_t t;
    pthread_create(&t, NULL, block_in, &b);
    tl_sleep_ms(100);
    CHECK_EQ(atomic_load(&b.done), 0);
    OK(shutdown(l, SHUT_RDWR));
    wait_done(&b, 3000);
    CHECK_MSG(atomic_load(&b.done), "accept still blocked after shutdown(SHUT_RDWR)");
    pthread_join(t, NULL);
    CHECK_EQ(b.ret, -1);
    CHECK_EQ(b.err, EINVAL); /* Linux */
    close(l);
}

TEST_FAM(peer_close_wakes_blocked_recv)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    struct blocked b = {.fd = s, .kind = 0};
    atomic_init(&b.done, 0);
    pthread_t t;
    pthread_create(&t, NULL, block_in, &b);
    tl_sleep_ms(100);
    close(c);
    wait_done(&b, 3000);
    CHECK(atomic_load(&b.done));
    pthread_join(t, NULL);
    CHECK_EQ(b.ret, 0);
    close(s);
}

/* close() from another thread: on Linux it does NOT wake a recv blocked on
 * the same socket (the call holds its own reference); the recv returns when
 * the peer sends or closes.  A library that wakes it at close instead is
 * allowed to (-1/EBADF or 0); what must hold either way is that the blocked
 * thread comes back once the peer acts, and that the fd is gone. */
#ifndef __SANITIZE_THREAD__
/* (not built under TSan: closing an fd another thread is blocked on is a
 * race by TSan's model of fds, which is the point of this case) */
TEST_FAM(close_from_other_thread_while_blocked)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    int keep = (int)OK(fcntl(s, F_DUPFD, 600)); /* keeps the socket alive */
    struct blocked b = {.fd = s, .kind = 0};
    atomic_init(&b.done, 0);
    pthread_t t;
    pthread_create(&t, NULL, block_in, &b);
    tl_sleep_ms(100);
    OK(close(s));
    CHECK_ERRNO(fcntl(s, F_GETFD), EBADF);
    tl_sleep_ms(100);
    CHECK_EQ(OK(send(c, "wake", 4, 0)), 4);
    wait_done(&b, 3000);
    CHECK_MSG(atomic_load(&b.done), "recv blocked forever after close + peer send");
    pthread_join(t, NULL);
    CHECK(b.ret == 4 || b.ret == 0 || (b.ret == -1 && b.err == EBADF));
    /* the socket itself lives on through the other fd */
    if (b.ret != 4)
        CHECK_EQ(OK(recv(keep, b.data, sizeof b.data, 0)), 4);
    CHECK_EQ(OK(send(keep, "ok", 2, 0)), 2);
    CHECK_EQ(OK(recv(c, b.data, sizeof b.data, 0)), 2);
    close(keep);
    close(c);
}
#endif

TEST(two_threads_two_sockets_independent)
{
    /* a thread blocked on one socket does not hold up another socket */
    int c1, s1, c2, s2;
    tl_stream_pair(FAM_INET, &c1, &s1);
    tl_stream_pair(FAM_UNIX, &c2, &s2);
    struct blocked b = {.fd = s1, .kind = 0};
    atomic_init(&b.done, 0);
    pthread_t t;
    pthread_create(&t, NULL, block_in, &b);
    tl_sleep_ms(50);
    char buf[64];
    for (int i = 0; i < 1000; i++) {
        CHECK_EQ(OK(send(c2, "0123456789", 10, 0)), 10);
        CHECK_EQ(tl_read_all(s2, buf, 10), 10);
    }
    CHECK_EQ(atomic_load(&b.done), 0);
    CHECK_EQ(OK(send(c1, "done", 4, 0)), 4);
    pthread_join(t, NULL);
    CHECK_EQ(b.ret, 4);
    close(c1); close(s1); close(c2); close(s2);
}

struct cc { int fd; int n; };
static void *concurrent_sender(void *arg)
{
    struct cc *a = arg;
    char rec[16];
    for (int i = 0; i < a->n; i++) {
        memset(rec, 'a' + (a->fd % 26), sizeof rec);
        CHECK_EQ(send(a->fd, rec, sizeof rec, 0), (long)sizeof rec);
    }
    return NULL;
}

TEST(concurrent_dgram_senders_keep_boundaries)
{
    /* several threads sending datagrams to one AF_UNIX receiver: every
     * datagram arrives whole (AF_UNIX datagrams are reliable) */
    int r = tl_bound(FAM_UNIX, SOCK_DGRAM);
    struct sockaddr_storage rn;
    socklen_t rl = tl_name(r, &rn);
    enum { N = 4, EACH = 500 };
    struct cc a[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        a[i].fd = (int)OK(socket(AF_UNIX, SOCK_DGRAM, 0));
        OK(connect(a[i].fd, (struct sockaddr *)&rn, rl));
        a[i].n = EACH;
        pthread_create(&t[i], NULL, concurrent_sender, &a[i]);
    }
    int counts[N] = {0};
    char buf[64];
    for (int k = 0; k < N * EACH; k++) {
        CHECK_EQ(OK(recv(r, buf, sizeof buf, 0)), 16);
        int who = -1;
        for (int i = 0; i < N; i++)
            if (buf[0] == 'a' + (a[i].fd % 26))
                who = i;
        CHECK(who >= 0);
        for (int j = 1; j < 16; j++)
            CHECK_EQ(buf[j], buf[0]);
        counts[who]++;
    }
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        CHECK_EQ(counts[i], EACH);
        close(a[i].fd);
    }
    close(r);
}

/* A signal sent to the process is handled by the program's own threads,
 * never by one the library started (a cross-process backend's transport
 * thread, say): programs learn of their signals from the call a signal
 * interrupts (socat and CPython act on SIGTERM when their poll returns
 * EINTR), and a signal handled elsewhere interrupts nothing. Deterministic:
 * while this thread blocks the signal, the kernel may give it to any other
 * thread that does not; there must be none, so it stays pending until this
 * thread unblocks it. (The library's threads exist only through the
 * cross-process backend: see the Makefile's t_threads rerun.) */
static _Atomic pid_t handled_on;

static void note_thread(int sig)
{
    (void)sig;
    atomic_store(&handled_on, (pid_t)gettid());
}

TEST(signal_never_handled_on_a_library_thread)
{
    int c, s;
    tl_stream_pair(FAM_INET, &c, &s); /* starts a backend's threads, if any */
    CHECK_EQ(OK(send(c, "x", 1, 0)), 1);
    char ch;
    CHECK_EQ(OK(recv(s, &ch, 1, 0)), 1);
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = note_thread;
    OK(sigaction(SIGUSR1, &sa, &old));
    sigset_t one, prev;
    sigemptyset(&one);
    sigaddset(&one, SIGUSR1);
    OK(pthread_sigmask(SIG_BLOCK, &one, &prev));
    atomic_store(&handled_on, 0);
    OK(kill(getpid(), SIGUSR1));
    /* Give another thread every chance to take it. */
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, NULL);
    pid_t early = atomic_load(&handled_on);
    OK(pthread_sigmask(SIG_SETMASK, &prev, NULL));
    CHECK_EQ(early, 0);
    CHECK_EQ(atomic_load(&handled_on), gettid());
    OK(sigaction(SIGUSR1, &old, NULL));
    close(c);
    close(s);
}

/* Stream I/O: send/recv/sendmsg/recvmsg/read/write/readv/writev, flags
 * (MSG_PEEK, MSG_DONTWAIT, MSG_WAITALL, MSG_NOSIGNAL), EPIPE/SIGPIPE,
 * shutdown, ENOTCONN, ECONNRESET, EFAULT. */
#include "testlib.h"

static int is_inet(int fam) { return fam == FAM_INET || fam == FAM_INET6; }

static volatile sig_atomic_t sigpipes;
static void on_sigpipe(int s) { (void)s; sigpipes++; }
static void catch_sigpipe(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigpipe;
    sigaction(SIGPIPE, &sa, NULL);
    sigpipes = 0;
}

TEST_FAM(send_recv_read_write)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    char buf[64];
    CHECK_EQ(OK(send(c, "abc", 3, 0)), 3);
    CHECK_EQ(OK(write(c, "defg", 4)), 4);
    CHECK_EQ(tl_read_all(s, buf, 7), 7);
    CHECK(memcmp(buf, "abcdefg", 7) == 0);
    CHECK_EQ(OK(sendto(s, "xy", 2, 0, NULL, 0)), 2);
    struct sockaddr_storage from;
    socklen_t fl = sizeof from;
    CHECK_EQ(OK(recvfrom(c, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl)), 2);
    CHECK(memcmp(buf, "xy", 2) == 0);
    /* a zero-length send sends nothing */
    CHECK_EQ(OK(send(c, "", 0, 0)), 0);
    CHECK_ERRNO(recv(s, buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
    close(c);
    close(s);
}

TEST_FAM(readv_writev_sendmsg_recvmsg)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    struct iovec wv[3] = {{"hello ", 6}, {"", 0}, {"vectored world", 14}};
    CHECK_EQ(OK(writev(c, wv, 3)), 20);
    char a[5], b[10], d[16];
    struct iovec rv[3] = {{a, 5}, {b, 10}, {d, 16}};
    CHECK_EQ(OK(recv(s, a, 1, MSG_PEEK | MSG_WAITALL)), 1);
    CHECK(tl_poll1(s, POLLIN, 2000) & POLLIN);
    tl_sleep_ms(10); /* all 20 bytes are in: one readv takes them */
    CHECK_EQ(OK(readv(s, rv, 3)), 20);
    CHECK(memcmp(a, "hello", 5) == 0);
    CHECK(memcmp(b, " vectored ", 10) == 0);
    CHECK(memcmp(d, "world", 5) == 0);

    struct msghdr mh;
    memset(&mh, 0, sizeof mh);
    struct iovec sv[2] = {{"msg", 3}, {"-data", 5}};
    mh.msg_iov = sv;
    mh.msg_iovlen = 2;
    CHECK_EQ(OK(sendmsg(s, &mh, 0)), 8);
    char r1[4], r2[8];
    struct iovec riov[2] = {{r1, 4}, {r2, 4}};
    memset(&mh, 0, sizeof mh);
    mh.msg_iov = riov;
    mh.msg_iovlen = 2;
    CHECK(tl_poll1(c, POLLIN, 2000) & POLLIN);
    tl_sleep_ms(10);
    ssize_t n = OK(recvmsg(c, &mh, MSG_WAITALL));
    CHECK_EQ(n, 8);
    CHECK_EQ(mh.msg_flags & MSG_TRUNC, 0);
    CHECK(memcmp(r1, "msg-", 4) == 0);
    CHECK(memcmp(r2, "data", 4) == 0);
    /* writev with an empty iovec list writes nothing */
    CHECK_EQ(OK(writev(c, wv, 0)), 0);
    close(c);
    close(s);
}

TEST_FAM(msg_peek)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    CHECK_EQ(OK(send(c, "peekaboo", 8, 0)), 8);
    CHECK(tl_poll1(s, POLLIN, 2000) & POLLIN);
    char buf[16];
    CHECK_EQ(OK(recv(s, buf, 4, MSG_PEEK)), 4);
    CHECK(memcmp(buf, "peek", 4) == 0);
    CHECK_EQ(OK(recv(s, buf, 8, MSG_PEEK | MSG_WAITALL)), 8);
    CHECK_EQ(OK(recv(s, buf, 2, 0)), 2);
    CHECK(memcmp(buf, "pe", 2) == 0);
    CHECK_EQ(OK(recv(s, buf, sizeof buf, MSG_PEEK)), 6);
    CHECK(memcmp(buf, "ekaboo", 6) == 0);
    CHECK_EQ(OK(recv(s, buf, sizeof buf, 0)), 6);
    CHECK(memcmp(buf, "ekaboo", 6) == 0);
    CHECK_ERRNO(recv(s, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT), EAGAIN);
    close(c);
    close(s);
}

TEST_FAM(msg_dontwait_on_blocking_socket)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    char buf[8];
    CHECK_ERRNO(recv(s, buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
    CHECK_ERRNO(recvfrom(s, buf, sizeof buf, MSG_DONTWAIT, NULL, NULL), EAGAIN);
    CHECK_EQ(OK(fcntl(s, F_GETFL)) & O_NONBLOCK, 0); /* flag untouched */
    /* fill the pipe with MSG_DONTWAIT sends until EAGAIN */
    static char chunk[65536];
    memset(chunk, 'z', sizeof chunk);
    size_t total = 0;
    for (int i = 0; i < 100000; i++) {
        ssize_t r = send(c, chunk, sizeof chunk, MSG_DONTWAIT);
        if (r < 0) {
            CHECK_EQ(errno, EAGAIN);
            break;
        }
        total += (size_t)r;
        CHECK_MSG(total < (512u << 20), "never got EAGAIN");
    }
    CHECK(total > 0);
    CHECK_EQ(tl_poll1(c, POLLOUT, 0) & POLLOUT, 0);
    /* everything sent arrives */
    size_t got = 0;
    OK(fcntl(s, F_SETFL, O_NONBLOCK));
    while (got < total) {
        ssize_t r = recv(s, chunk, sizeof chunk, 0);
        if (r < 0 && errno == EAGAIN) {
            CHECK(tl_poll1(s, POLLIN, 2000) & POLLIN);
            continue;
        }
        CHECK(r > 0);
        got += (size_t)r;
    }
    CHECK_EQ(got, total);
    CHECK_ERRNO(recv(s, chunk, 1, 0), EAGAIN);
    close(c);
    close(s);
}

struct sender { int fd; const char *parts[4]; int delay_ms; int close_after; };

static void *slow_sender(void *p)
{
    struct sender *a = p;
    for (int i = 0; i < 4 && a->parts[i]; i++) {
        tl_sleep_ms(a->delay_ms);
        size_t n = strlen(a->parts[i]);
        CHECK_EQ(send(a->fd, a->parts[i], n, 0), (long)n);
    }
    if (a->close_after)
        shutdown(a->fd, SHUT_WR);
    return NULL;
}

TEST_FAM(msg_waitall)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    struct sender a = {c, {"wait", "all", "-ok", NULL}, 30, 0};
    pthread_t t;
    pthread_create(&t, NULL, slow_sender, &a);
    char buf[16];
    CHECK_EQ(OK(recv(s, buf, 10, MSG_WAITALL)), 10);
    CHECK(memcmp(buf, "waitall-ok", 10) == 0);
    pthread_join(t, NULL);
    /* WAITALL returns short at EOF */
    struct sender b = {c, {"ab", "cd", NULL, NULL}, 20, 1};
    pthread_create(&t, NULL, slow_sender, &b);
    CHECK_EQ(OK(recv(s, buf, 16, MSG_WAITALL)), 4);
    CHECK(memcmp(buf, "abcd", 4) == 0);
    pthread_join(t, NULL);
    CHECK_EQ(OK(recv(s, buf, 16, MSG_WAITALL)), 0);
    close(c);
    close(s);
}

/* A reader asleep in recv() while the peer sends several buffers in one
 * call. */
struct gather_reader {
    int fd, tid, rounds;
    size_t len;
    ssize_t got[20];
};

static void *read_rounds(void *p)
{
    struct gather_reader *r = p;
    __atomic_store_n(&r->tid, tl_gettid(), __ATOMIC_RELEASE);
    char buf[256];
    for (int i = 0; i < r->rounds; i++) {
        /* tell the sender which round it may send (it waits for us to sleep) */
        __atomic_store_n(&r->got[i], -2, __ATOMIC_RELEASE);
        __atomic_store_n(&r->got[i], recv(r->fd, buf, sizeof buf, 0), __ATOMIC_RELEASE);
    }
    return NULL;
}

/* Linux hands a small sendmsg/writev over loopback (and over an AF_UNIX
 * stream) to the peer as one buffer: a reader woken by it reads every byte
 * of the call at once, never the first iovec alone (CPython's
 * test_socket.testSendmsgGather asserts this). */
TEST_FAM(gather_send_wakes_a_reader_with_all_of_it)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    struct gather_reader r = {.fd = s, .rounds = 20};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, read_rounds, &r), 0);
    while (__atomic_load_n(&r.tid, __ATOMIC_ACQUIRE) == 0)
        tl_sleep_ms(1);
    static const char part1[] = "Mic", part2[] = "hael Gilfix ", part3[] = "was here\r\n";
    const size_t total = sizeof part1 + sizeof part2 + sizeof part3 - 3;
    for (int i = 0; i < r.rounds; i++) {
        while (__atomic_load_n(&r.got[i], __ATOMIC_ACQUIRE) != -2)
            tl_sleep_ms(1);
        tl_wait_blocked(r.tid);
        struct iovec v[3] = {{(void *)part1, sizeof part1 - 1},
                             {(void *)part2, sizeof part2 - 1},
                             {(void *)part3, sizeof part3 - 1}};
        if (i % 2) {
            CHECK_EQ(OK(writev(c, v, 3)), (long)total);
        } else {
            struct msghdr mh = {.msg_iov = v, .msg_iovlen = 3};
            CHECK_EQ(OK(sendmsg(c, &mh, 0)), (long)total);
        }
        long deadline = tl_now_ms() + 5000;
        while (__atomic_load_n(&r.got[i], __ATOMIC_ACQUIRE) == -2)
            CHECK(tl_now_ms() < deadline);
        CHECK_EQ(__atomic_load_n(&r.got[i], __ATOMIC_ACQUIRE), (long)total);
    }
    CHECK_EQ(pthread_join(t, NULL), 0);
    close(c);
    close(s);
}

TEST_FAM(recv_blocks_until_data)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    struct sender a = {c, {"late", NULL, NULL, NULL}, 100, 0};
    pthread_t t;
    long t0 = tl_now_ms();
    pthread_create(&t, NULL, slow_sender, &a);
    char buf[8];
    CHECK_EQ(OK(recv(s, buf, sizeof buf, 0)), 4);
    CHECK(tl_now_ms() - t0 >= 80);
    pthread_join(t, NULL);
    close(c);
    close(s);
}

TEST_FAM(shutdown_wr_gives_peer_eof)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    CHECK_EQ(OK(send(c, "last", 4, 0)), 4);
    OK(shutdown(c, SHUT_WR));
    char buf[8];
    CHECK_EQ(tl_read_all(s, buf, 4), 4);
    CHECK_EQ(OK(recv(s, buf, sizeof buf, 0)), 0); /* EOF */
    CHECK_EQ(OK(read(s, buf, sizeof buf)), 0);    /* and again */
    CHECK_EQ(OK(recv(s, buf, sizeof buf, MSG_DONTWAIT)), 0);
    /* the other direction still works */
    CHECK_EQ(OK(send(s, "back", 4, 0)), 4);
    CHECK_EQ(tl_read_all(c, buf, 4), 4);
    CHECK(memcmp(buf, "back", 4) == 0);
    /* sending on the shut side: EPIPE (MSG_NOSIGNAL: no signal) */
    catch_sigpipe();
    CHECK_ERRNO(send(c, "x", 1, MSG_NOSIGNAL), EPIPE);
    CHECK_EQ(sigpipes, 0);
    CHECK_ERRNO(send(c, "x", 1, 0), EPIPE);
    CHECK_EQ(sigpipes, 1);
    CHECK_ERRNO(write(c, "x", 1), EPIPE);
    CHECK_EQ(sigpipes, 2);
    close(c);
    close(s);
}

TEST_FAM(shutdown_rd)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    OK(shutdown(s, SHUT_RD));
    char buf[8];
    CHECK_EQ(OK(recv(s, buf, sizeof buf, 0)), 0); /* no block: EOF */
    CHECK(tl_poll1(s, POLLIN, 0) & POLLIN);
    /* s can still send */
    CHECK_EQ(OK(send(s, "ok", 2, 0)), 2);
    CHECK_EQ(tl_read_all(c, buf, 2), 2);
    close(c);
    close(s);
}

TEST_FAM(shutdown_rdwr)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    OK(shutdown(c, SHUT_RDWR));
    char buf[8];
    CHECK_EQ(OK(recv(c, buf, sizeof buf, 0)), 0);
    CHECK_ERRNO(send(c, "x", 1, MSG_NOSIGNAL), EPIPE);
    CHECK_EQ(OK(recv(s, buf, sizeof buf, 0)), 0); /* peer sees EOF */
    OK(shutdown(c, SHUT_RDWR)); /* again: fine on a connected socket */
    close(c);
    close(s);
}

TEST_FAM(shutdown_errors)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    CHECK_ERRNO(shutdown(c, 3), EINVAL);
    CHECK_ERRNO(shutdown(c, -1), EINVAL);
    close(c);
    close(s);
    int u = (int)OK(socket(tl_domain(fam), SOCK_STREAM, 0));
    if (is_inet(fam))
        CHECK_ERRNO(shutdown(u, SHUT_RDWR), ENOTCONN);
    else
        OK(shutdown(u, SHUT_RDWR)); /* Linux AF_UNIX does not check */
    close(u);
    int d = tl_bound(fam, SOCK_DGRAM);
    if (is_inet(fam))
        CHECK_ERRNO(shutdown(d, SHUT_WR), ENOTCONN);
    close(d);
}

TEST_FAM(peer_close_eof_then_epipe)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    CHECK_EQ(OK(send(s, "bye", 3, 0)), 3);
    OK(close(s));
    char buf[8];
    CHECK_EQ(tl_read_all(c, buf, 3), 3); /* data first */
    CHECK_EQ(OK(recv(c, buf, sizeof buf, 0)), 0); /* then EOF, repeatedly */
    CHECK_EQ(OK(recv(c, buf, sizeof buf, 0)), 0);
    /* sends fail: possibly ECONNRESET first (TCP: the peer answered the
     * first send with a reset), then EPIPE with SIGPIPE */
    catch_sigpipe();
    int got_epipe = 0;
    for (int i = 0; i < 20 && !got_epipe; i++) {
        errno = 0;
        ssize_t r = send(c, "data", 4, 0);
        if (r == 4) {
            CHECK_MSG(is_inet(fam), "AF_UNIX send to closed peer succeeded");
            tl_sleep_ms(20); /* let the reset arrive */
            continue;
        }
        CHECK_EQ(r, -1);
        if (errno == ECONNRESET) {
            CHECK(is_inet(fam));
            CHECK_EQ(sigpipes, 0);
            continue;
        }
        CHECK_EQ(errno, EPIPE);
        got_epipe = 1;
    }
    CHECK(got_epipe);
    CHECK_EQ(sigpipes, 1);
    CHECK_ERRNO(send(c, "data", 4, MSG_NOSIGNAL), EPIPE);
    CHECK_EQ(sigpipes, 1);
    struct iovec v = {"v", 1};
    CHECK_ERRNO(writev(c, &v, 1), EPIPE);
    CHECK_EQ(sigpipes, 2);
    struct msghdr mh;
    memset(&mh, 0, sizeof mh);
    mh.msg_iov = &v;
    mh.msg_iovlen = 1;
    CHECK_ERRNO(sendmsg(c, &mh, MSG_NOSIGNAL), EPIPE);
    CHECK_EQ(sigpipes, 2);
    close(c);
}

TEST(sigpipe_default_is_ignored_when_sig_ign)
{
    /* with SIGPIPE ignored the process survives and gets EPIPE */
    int sv[2];
    OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    close(sv[1]);
    signal(SIGPIPE, SIG_IGN);
    CHECK_ERRNO(send(sv[0], "x", 1, 0), EPIPE);
    CHECK_ERRNO(write(sv[0], "x", 1), EPIPE);
    close(sv[0]);
}

TEST_FAM(enotconn_on_unconnected)
{
    int u = (int)OK(socket(tl_domain(fam), SOCK_STREAM, 0));
    char buf[4];
    if (is_inet(fam)) {
        CHECK_ERRNO(recv(u, buf, sizeof buf, 0), ENOTCONN);
        CHECK_ERRNO(read(u, buf, sizeof buf), ENOTCONN);
        /* Linux TCP: send on a never-connected socket is EPIPE */
        CHECK_ERRNO(send(u, "x", 1, MSG_NOSIGNAL), EPIPE);
    } else {
        /* Linux AF_UNIX stream: recv is EINVAL, send is ENOTCONN */
        CHECK_ERRNO(recv(u, buf, sizeof buf, 0), EINVAL);
        CHECK_ERRNO(send(u, "x", 1, MSG_NOSIGNAL), ENOTCONN);
    }
    close(u);
    int l = tl_listener(fam, 1);
    CHECK_ERRNO(recv(l, buf, sizeof buf, MSG_DONTWAIT), is_inet(fam) ? ENOTCONN : EINVAL);
    CHECK_ERRNO(send(l, "x", 1, MSG_NOSIGNAL), is_inet(fam) ? EPIPE : ENOTCONN);
    close(l);
}

TEST(linger_zero_close_resets_peer)
{
    for (int fam = FAM_INET; fam <= FAM_INET6; fam++) {
        int c, s;
        tl_stream_pair(fam, &c, &s);
        CHECK_EQ(OK(send(s, "unread", 6, 0)), 6);
        struct linger lg = {1, 0};
        OK(setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg));
        OK(close(s));
        CHECK(tl_poll1(c, POLLIN, 2000) & POLLIN);
        char buf[8];
        /* data already in order is read first, then one ECONNRESET */
        CHECK_EQ(tl_read_all(c, buf, 6), 6);
        CHECK_ERRNO(recv(c, buf, sizeof buf, 0), ECONNRESET);
        CHECK_EQ(OK(recv(c, buf, sizeof buf, 0)), 0);
        CHECK_ERRNO(send(c, "x", 1, MSG_NOSIGNAL), EPIPE);
        close(c);
    }
}

TEST_FAM(close_with_unread_data_resets_peer)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    CHECK_EQ(OK(send(c, "never read", 10, 0)), 10);
    CHECK(tl_poll1(s, POLLIN, 2000) & POLLIN);
    OK(close(s)); /* with unread data: reset, not a clean FIN (Linux) */
    CHECK(tl_poll1(c, POLLIN, 2000) & POLLIN);
    char buf[8];
    CHECK_ERRNO(recv(c, buf, sizeof buf, 0), ECONNRESET);
    close(c);
}

TEST_FAM(efault_bad_buffers)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    void *bad = tl_bad_ptr();
    CHECK_ERRNO(send(c, bad, 16, 0), EFAULT);
    CHECK_ERRNO(write(c, bad, 16), EFAULT);
    CHECK_EQ(OK(send(c, "data", 4, 0)), 4);
    CHECK(tl_poll1(s, POLLIN, 2000) & POLLIN);
    CHECK_ERRNO(recv(s, bad, 16, 0), EFAULT);
    CHECK_ERRNO(read(s, bad, 16), EFAULT);
    struct iovec v = {bad, 16};
    CHECK_ERRNO(readv(s, &v, 1), EFAULT);
    CHECK_ERRNO(writev(c, &v, 1), EFAULT);
    CHECK_ERRNO(sendmsg(c, (struct msghdr *)bad, 0), EFAULT);
    CHECK_ERRNO(recvmsg(s, (struct msghdr *)bad, 0), EFAULT);
    close(c);
    close(s);
}

TEST_FAM(nonblocking_socket_eagain_both_ways)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    OK(fcntl(c, F_SETFL, O_NONBLOCK));
    char buf[4096];
    CHECK_ERRNO(recv(c, buf, sizeof buf, 0), EAGAIN);
    CHECK_ERRNO(read(c, buf, sizeof buf), EAGAIN);
    struct iovec v = {buf, sizeof buf};
    CHECK_ERRNO(readv(c, &v, 1), EAGAIN);
    memset(buf, 1, sizeof buf);
    size_t total = 0;
    for (;;) {
        ssize_t r = write(c, buf, sizeof buf);
        if (r < 0) {
            CHECK_EQ(errno, EAGAIN);
            break;
        }
        total += (size_t)r;
        CHECK_MSG(total < (512u << 20), "never got EAGAIN");
    }
    CHECK_ERRNO(send(c, buf, 1, 0), EAGAIN);
    /* draining some makes it writable again */
    size_t drained = 0;
    while (drained < total) {
        ssize_t r = OK(recv(s, buf, sizeof buf, 0));
        CHECK(r > 0);
        drained += (size_t)r;
        if (tl_poll1(c, POLLOUT, 0) & POLLOUT)
            break;
    }
    CHECK(tl_poll1(c, POLLOUT, 3000) & POLLOUT);
    CHECK(OK(send(c, buf, 1, 0)) == 1);
    close(c);
    close(s);
}

TEST(socketpair_stream_io)
{
    int sv[2];
    OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    char buf[32];
    struct iovec wv[2] = {{"one ", 4}, {"two", 3}};
    CHECK_EQ(OK(writev(sv[0], wv, 2)), 7);
    CHECK_EQ(OK(recv(sv[1], buf, 3, MSG_PEEK)), 3);
    CHECK_EQ(OK(recv(sv[1], buf, 7, MSG_WAITALL)), 7);
    CHECK(memcmp(buf, "one two", 7) == 0);
    OK(shutdown(sv[1], SHUT_WR));
    CHECK_EQ(OK(read(sv[0], buf, sizeof buf)), 0);
    close(sv[0]);
    close(sv[1]);
}

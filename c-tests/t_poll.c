/* poll, ppoll, select, pselect over a mix of pipes and sockets. */
#include "testlib.h"

static int is_inet(int fam) { return fam == FAM_INET || fam == FAM_INET6; }

TEST_FAM(poll_mix_pipe_and_sockets)
{
    int p[2];
    OK(pipe(p));
    int c, s;
    tl_stream_pair(fam, &c, &s);
    int l = tl_listener(fam, 4);
    int da, db;
    tl_dgram_pair(fam, &da, &db);
    int closed = (int)OK(fcntl(p[0], F_DUPFD, 500)); /* not reused below */
    OK(close(closed));
    struct pollfd pf[7] = {
        {p[0], POLLIN, 0}, {p[1], POLLOUT, 0}, {s, POLLIN | POLLOUT, 0},
        {l, POLLIN, 0},    {db, POLLIN, 0},    {closed, POLLIN, 0},
        {-1, POLLIN, 0},
    };
    /* idle: writable ends and the closed fd only */
    int n = (int)OK(poll(pf, 7, 0));
    CHECK_EQ(pf[0].revents, 0);
    CHECK_EQ(pf[1].revents, POLLOUT);
    CHECK_EQ(pf[2].revents, POLLOUT);
    CHECK_EQ(pf[3].revents, 0);
    CHECK_EQ(pf[4].revents, 0);
    CHECK_EQ(pf[5].revents, POLLNVAL);
    CHECK_EQ(pf[6].revents, 0); /* negative fds are ignored */
    CHECK_EQ(n, 3);
    /* make everything readable */
    CHECK_EQ(OK(write(p[1], "p", 1)), 1);
    CHECK_EQ(OK(send(c, "s", 1, 0)), 1);
    CHECK_EQ(OK(send(da, "d", 1, 0)), 1);
    struct sockaddr_storage ss;
    socklen_t len = tl_name(l, &ss);
    int k = (int)OK(socket(tl_domain(fam), SOCK_STREAM, 0));
    OK(connect(k, (struct sockaddr *)&ss, len));
    long deadline = tl_now_ms() + 3000;
    do {
        n = (int)OK(poll(pf, 6, 1000));
    } while (!(pf[0].revents && pf[2].revents & POLLIN && pf[3].revents &&
               pf[4].revents) && tl_now_ms() < deadline);
    CHECK_EQ(pf[0].revents, POLLIN);
    CHECK_EQ(pf[2].revents, POLLIN | POLLOUT);
    CHECK_EQ(pf[3].revents, POLLIN);
    CHECK_EQ(pf[4].revents, POLLIN);
    CHECK_EQ(pf[5].revents, POLLNVAL);
    CHECK_EQ(n, 6);
    /* level-triggered: still ready until consumed */
    CHECK_EQ(OK(poll(pf, 6, 0)), 6);
    char ch;
    CHECK_EQ(OK(read(p[0], &ch, 1)), 1);
    CHECK_EQ(OK(recv(s, &ch, 1, 0)), 1);
    CHECK_EQ(OK(recv(db, &ch, 1, 0)), 1);
    int a = (int)OK(accept(l, NULL, NULL));
    n = (int)OK(poll(pf, 6, 0));
    CHECK_EQ(pf[0].revents, 0);
    CHECK_EQ(pf[2].revents, POLLOUT);
    CHECK_EQ(pf[3].revents, 0);
    CHECK_EQ(pf[4].revents, 0);
    CHECK_EQ(n, 3);
    close(a); close(k); close(p[0]); close(p[1]); close(c); close(s);
    close(l); close(da); close(db);
}

TEST_FAM(poll_peek_keeps_readable)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    CHECK_EQ(OK(send(c, "abcd", 4, 0)), 4);
    CHECK(tl_poll1(s, POLLIN, 2000) & POLLIN);
    char buf[4];
    CHECK_EQ(OK(recv(s, buf, 4, MSG_PEEK)), 4);
    CHECK(tl_poll1(s, POLLIN, 0) & POLLIN);
    CHECK_EQ(OK(recv(s, buf, 2, 0)), 2); /* partial read */
    CHECK(tl_poll1(s, POLLIN, 0) & POLLIN);
    CHECK_EQ(OK(recv(s, buf, 2, 0)), 2);
    CHECK_EQ(tl_poll1(s, POLLIN, 0) & POLLIN, 0);
    close(c);
    close(s);
}

TEST_FAM(poll_eof_and_hup)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    OK(shutdown(c, SHUT_WR));
    short re = tl_poll1(s, POLLIN | POLLRDHUP, 2000);
    CHECK(re & POLLIN);
    CHECK(re & POLLRDHUP);
    CHECK_EQ(re & POLLHUP, 0); /* only half closed */
    CHECK(tl_poll1(s, POLLOUT, 0) & POLLOUT);
    OK(shutdown(s, SHUT_WR)); /* both directions shut: POLLHUP */
    re = tl_poll1(s, POLLIN, 2000);
    CHECK(re & POLLHUP);
    CHECK(re & POLLIN);
    re = tl_poll1(c, POLLIN, 2000);
    CHECK(re & POLLIN);
    CHECK(re & POLLHUP);
    close(c);
    close(s);
    /* peer fully closed */
    tl_stream_pair(fam, &c, &s);
    close(c);
    re = tl_poll1(s, POLLIN | POLLRDHUP, 2000);
    CHECK(re & POLLIN);
    CHECK(re & POLLRDHUP);
    if (!is_inet(fam))
        CHECK(re & POLLHUP); /* AF_UNIX: POLLHUP as soon as the peer closes */
    else
        CHECK_EQ(re & POLLHUP, 0); /* TCP: only a FIN so far */
    close(s);
}

/* shutdown(SHUT_RDWR) alone, with the peer still open: both directions of
 * this socket are shut, which is POLLHUP (tcp_poll and unix_poll: sk_shutdown
 * == SHUTDOWN_MASK), with POLLIN|POLLRDHUP for the read side and POLLOUT. */
TEST_FAM(poll_shutdown_rdwr_is_hup)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    OK(shutdown(c, SHUT_RDWR));
    short re = tl_poll1(c, POLLIN | POLLOUT | POLLRDHUP, 2000);
    CHECK(re & POLLIN);
    CHECK(re & POLLOUT);
    CHECK(re & POLLRDHUP);
    CHECK(re & POLLHUP);
    CHECK_EQ(re & POLLERR, 0);
    if (is_inet(fam)) {
        /* SHUT_RD then SHUT_WR: the same. (AF_UNIX shuts the peer's
         * opposite directions too, so there the peer is hung up already.) */
        short rs = tl_poll1(s, POLLIN | POLLRDHUP, 2000); /* our FIN arrived */
        CHECK(rs & POLLIN);
        CHECK_EQ(rs & POLLHUP, 0);
        OK(shutdown(s, SHUT_RD));
        CHECK_EQ(tl_poll1(s, POLLOUT, 0) & POLLHUP, 0); /* only the read side */
        OK(shutdown(s, SHUT_WR));
        CHECK(tl_poll1(s, POLLIN, 0) & POLLHUP);
    }
    close(c);
    close(s);
}

TEST(poll_reset_gives_pollerr)
{
    int c, s;
    tl_stream_pair(FAM_INET, &c, &s);
    struct linger lg = {1, 0};
    OK(setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg));
    close(s);
    short re = tl_poll1(c, POLLIN, 2000);
    CHECK(re & POLLERR);
    CHECK(re & POLLHUP);
    CHECK_EQ(tl_so_error(c), ECONNRESET);
    close(c);
}

TEST(poll_unconnected_tcp_socket_is_hup)
{
    /* Linux: a fresh TCP socket reports POLLOUT|POLLHUP */
    int fd = (int)OK(socket(AF_INET, SOCK_STREAM, 0));
    short re = tl_poll1(fd, POLLIN | POLLOUT, 0);
    CHECK(re & POLLHUP);
    CHECK(re & POLLOUT);
    CHECK_EQ(re & POLLIN, 0);
    close(fd);
    /* a listening socket with nothing pending: nothing */
    int l = tl_listener(FAM_INET, 1);
    CHECK_EQ(tl_poll1(l, POLLIN | POLLOUT, 0), 0);
    close(l);
}

TEST(poll_pipe_hup)
{
    int p[2];
    OK(pipe(p));
    close(p[1]);
    short re = tl_poll1(p[0], POLLIN, 0);
    CHECK(re & POLLHUP);
    close(p[0]);
    OK(pipe(p));
    close(p[0]);
    re = tl_poll1(p[1], POLLOUT, 0);
    CHECK(re & POLLERR);
    close(p[1]);
}

TEST(poll_timeout_and_einval)
{
    int sv[2];
    OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    int p[2];
    OK(pipe(p));
    struct pollfd pf[2] = {{sv[0], POLLIN, 0}, {p[0], POLLIN, 0}};
    long t0 = tl_now_ms();
    CHECK_EQ(OK(poll(pf, 2, 150)), 0);
    long el = tl_now_ms() - t0;
    CHECK_MSG(el >= 140 && el < 2000, "poll(150) took %ld ms", el);
    CHECK_EQ(pf[0].revents, 0);
    CHECK_EQ(pf[1].revents, 0);
    struct timespec ts = {0, 120 * 1000000L};
    t0 = tl_now_ms();
    CHECK_EQ(OK(ppoll(pf, 2, &ts, NULL)), 0);
    el = tl_now_ms() - t0;
    CHECK_MSG(el >= 110 && el < 2000, "ppoll(120ms) took %ld ms", el);
    ts.tv_nsec = 2000000000L;
    CHECK_ERRNO(ppoll(pf, 2, &ts, NULL), EINVAL);
    CHECK_ERRNO(poll((struct pollfd *)tl_bad_ptr(), 1, 0), EFAULT);
    close(sv[0]); close(sv[1]); close(p[0]); close(p[1]);
}

struct waker { int fd; int delay; int kind; };
static void *wake_later(void *arg)
{
    struct waker *w = arg;
    tl_sleep_ms(w->delay);
    if (w->kind == 0)
        CHECK_EQ(write(w->fd, "w", 1), 1);
    else if (w->kind == 1)
        CHECK_EQ(shutdown(w->fd, SHUT_WR), 0);
    else
        CHECK_EQ(send(w->fd, "w", 1, 0), 1);
    return NULL;
}

TEST_FAM(poll_wakes_on_socket_data_from_thread)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    int p[2];
    OK(pipe(p));
    struct waker w = {c, 100, 2};
    pthread_t t;
    /* t0 before the thread starts: on a busy machine this thread may run
     * again only after the waker's sleep has begun. */
    long t0 = tl_now_ms();
    pthread_create(&t, NULL, wake_later, &w);
    struct pollfd pf[2] = {{p[0], POLLIN, 0}, {s, POLLIN, 0}};
    CHECK_EQ(OK(poll(pf, 2, 5000)), 1);
    CHECK(tl_now_ms() - t0 >= 80);
    CHECK_EQ(pf[0].revents, 0);
    CHECK_EQ(pf[1].revents, POLLIN);
    pthread_join(t, NULL);
    /* and the pipe wakes a poll that also waits on sockets */
    char ch;
    CHECK_EQ(OK(recv(s, &ch, 1, 0)), 1);
    w.fd = p[1];
    w.kind = 0;
    pthread_create(&t, NULL, wake_later, &w);
    CHECK_EQ(OK(poll(pf, 2, 5000)), 1);
    CHECK_EQ(pf[0].revents, POLLIN);
    CHECK_EQ(pf[1].revents, 0);
    pthread_join(t, NULL);
    /* EOF wakes too */
    w.fd = c;
    w.kind = 1;
    CHECK_EQ(OK(read(p[0], &ch, 1)), 1);
    pthread_create(&t, NULL, wake_later, &w);
    CHECK_EQ(OK(poll(pf, 2, 5000)), 1);
    CHECK(pf[1].revents & POLLIN);
    pthread_join(t, NULL);
    close(c); close(s); close(p[0]); close(p[1]);
}

TEST_FAM(poll_dgram_readiness)
{
    int a, b;
    tl_dgram_pair(fam, &a, &b);
    CHECK_EQ(tl_poll1(b, POLLIN | POLLOUT, 0), POLLOUT);
    CHECK_EQ(OK(send(a, "x", 1, 0)), 1);
    CHECK_EQ(tl_poll1(b, POLLIN | POLLOUT, 2000), POLLIN | POLLOUT);
    char ch;
    CHECK_EQ(OK(recv(b, &ch, 1, 0)), 1);
    CHECK_EQ(tl_poll1(b, POLLIN, 0), 0);
    close(a);
    close(b);
}

TEST_FAM(select_mix_pipe_and_sockets)
{
    int p[2];
    OK(pipe(p));
    int c, s;
    tl_stream_pair(fam, &c, &s);
    int l = tl_listener(fam, 4);
    int maxfd = 0;
    int fds[] = {p[0], p[1], c, s, l};
    for (int i = 0; i < 5; i++)
        if (fds[i] > maxfd)
            maxfd = fds[i];
    fd_set r, w;
    FD_ZERO(&r); FD_ZERO(&w);
    FD_SET(p[0], &r); FD_SET(s, &r); FD_SET(l, &r);
    FD_SET(p[1], &w); FD_SET(c, &w);
    struct timeval tv = {0, 0};
    CHECK_EQ(OK(select(maxfd + 1, &r, &w, NULL, &tv)), 2);
    CHECK(!FD_ISSET(p[0], &r) && !FD_ISSET(s, &r) && !FD_ISSET(l, &r));
    CHECK(FD_ISSET(p[1], &w) && FD_ISSET(c, &w));
    /* readable: pipe data, socket data, a pending connection */
    CHECK_EQ(OK(write(p[1], "x", 1)), 1);
    CHECK_EQ(OK(send(c, "y", 1, 0)), 1);
    struct sockaddr_storage ss;
    socklen_t len = tl_name(l, &ss);
    int k = (int)OK(socket(tl_domain(fam), SOCK_STREAM, 0));
    OK(connect(k, (struct sockaddr *)&ss, len));
    int got = 0;
    long deadline = tl_now_ms() + 3000;
    while (got < 3 && tl_now_ms() < deadline) {
        FD_ZERO(&r);
        FD_SET(p[0], &r); FD_SET(s, &r); FD_SET(l, &r);
        tv.tv_sec = 1;
        tv.tv_usec = 0;
        got = (int)OK(select(maxfd + 1, &r, NULL, NULL, &tv));
    }
    CHECK_EQ(got, 3);
    CHECK(FD_ISSET(p[0], &r) && FD_ISSET(s, &r) && FD_ISSET(l, &r));
    /* EOF is readable too */
    char ch;
    CHECK_EQ(OK(recv(s, &ch, 1, 0)), 1);
    OK(shutdown(c, SHUT_WR));
    FD_ZERO(&r);
    FD_SET(s, &r);
    tv.tv_sec = 2;
    CHECK_EQ(OK(select(s + 1, &r, NULL, NULL, &tv)), 1);
    CHECK_EQ(OK(recv(s, &ch, 1, 0)), 0);
    close(k); close(p[0]); close(p[1]); close(c); close(s); close(l);
}

TEST(select_pselect_timeout_and_errors)
{
    int sv[2];
    OK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
    int d = tl_bound(FAM_INET, SOCK_DGRAM);
    int nfds = (sv[1] > d ? sv[1] : d) + 1;
    fd_set r;
    FD_ZERO(&r);
    FD_SET(sv[1], &r);
    FD_SET(d, &r);
    struct timeval tv = {0, 150000};
    long t0 = tl_now_ms();
    CHECK_EQ(OK(select(nfds, &r, NULL, NULL, &tv)), 0);
    long el = tl_now_ms() - t0;
    CHECK_MSG(el >= 140 && el < 2000, "select(150ms) took %ld ms", el);
    CHECK(!FD_ISSET(sv[1], &r) && !FD_ISSET(d, &r));
    FD_ZERO(&r);
    FD_SET(sv[1], &r);
    FD_SET(d, &r);
    struct timespec ts = {0, 120000000L};
    sigset_t mask;
    sigemptyset(&mask);
    t0 = tl_now_ms();
    CHECK_EQ(OK(pselect(nfds, &r, NULL, NULL, &ts, &mask)), 0);
    el = tl_now_ms() - t0;
    CHECK_MSG(el >= 110 && el < 2000, "pselect(120ms) took %ld ms", el);
    /* pselect sees readiness */
    CHECK_EQ(OK(send(sv[0], "x", 1, 0)), 1);
    FD_ZERO(&r);
    FD_SET(sv[1], &r);
    FD_SET(d, &r);
    ts.tv_sec = 2;
    CHECK_EQ(OK(pselect(nfds, &r, NULL, NULL, &ts, NULL)), 1);
    CHECK(FD_ISSET(sv[1], &r) && !FD_ISSET(d, &r));
    /* a closed fd in a set: EBADF */
    int closed = (int)OK(fcntl(d, F_DUPFD, 500));
    close(closed);
    FD_ZERO(&r);
    FD_SET(closed, &r);
    tv.tv_sec = 0;
    tv.tv_usec = 0;
    CHECK_ERRNO(select(closed + 1, &r, NULL, NULL, &tv), EBADF);
    CHECK_ERRNO(select(-1, NULL, NULL, NULL, &tv), EINVAL);
    tv.tv_usec = -1;
    CHECK_ERRNO(select(1, NULL, NULL, NULL, &tv), EINVAL);
    close(sv[0]); close(sv[1]); close(d);
}

TEST(select_exceptfds_and_writable_after_drain)
{
    int c, s;
    tl_stream_pair(FAM_INET, &c, &s);
    OK(fcntl(c, F_SETFL, O_NONBLOCK));
    static char buf[65536];
    while (send(c, buf, sizeof buf, 0) > 0) {
    }
    CHECK_EQ(errno, EAGAIN);
    fd_set w, e;
    FD_ZERO(&w); FD_ZERO(&e);
    FD_SET(c, &w); FD_SET(c, &e);
    struct timeval tv = {0, 0};
    CHECK_EQ(OK(select(c + 1, NULL, &w, &e, &tv)), 0);
    /* drain in a loop: c becomes writable */
    OK(fcntl(s, F_SETFL, O_NONBLOCK));
    int ok = 0;
    long deadline = tl_now_ms() + 5000;
    while (!ok && tl_now_ms() < deadline) {
        while (recv(s, buf, sizeof buf, 0) > 0) {
        }
        FD_ZERO(&w);
        FD_SET(c, &w);
        tv.tv_sec = 0;
        tv.tv_usec = 50000;
        ok = (int)OK(select(c + 1, NULL, &w, NULL, &tv));
    }
    CHECK_EQ(ok, 1);
    CHECK(FD_ISSET(c, &w));
    close(c);
    close(s);
}

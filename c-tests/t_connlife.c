/*
 * t_connlife.c - issue 13, class 5: connection life as Linux lives it.
 *
 *  - a full listen queue keeps connects waiting (their SYNs are dropped)
 *    and completes them once accept() makes room; backlog N admits N+1;
 *  - a just-accepted (and a just-connected) socket can send at once;
 *  - connect() again after a non-blocking connect: EALREADY, 0 then
 *    EISCONN, or the pending error (ECONNREFUSED), ECONNABORTED once
 *    SO_ERROR took it, exactly as Linux;
 *  - a listener closed or shut down with connections queued or pending;
 *    accept() of a connection reset before it was accepted;
 *  - RST on close with unread data and with SO_LINGER 0, writes to a
 *    closed peer (EPIPE, SIGPIPE);
 *  - poll and epoll events in every state, compared bit for bit;
 *  - a send blocked on a full buffer woken by a larger SO_SNDBUF;
 *  - MSG_OOB, SO_OOBINLINE, SIOCATMARK, SIGURG; MSG_TRUNC|MSG_PEEK on
 *    streams;
 *  - UDP connect to the wildcard address and to port 0, AF_UNSPEC for UDP
 *    and TCP; shutdown() on UDP sockets.
 */
#include "testlib.h"

#include <linux/sockios.h>
#include <sys/epoll.h>

static int sock(int fam, int type) { return (int)OK(socket(tl_domain(fam), type, 0)); }

/* ---- poll and epoll events ------------------------------------------------ */

#define ALL_EVENTS                                                                          \
    (POLLIN | POLLPRI | POLLOUT | POLLRDHUP | POLLRDNORM | POLLWRNORM | POLLRDBAND |        \
     POLLWRBAND)

static const char *evnames(int ev, char *buf, size_t n)
{
    static const struct {
        int bit;
        const char *name;
    } names[] = {{POLLIN, "IN"},         {POLLPRI, "PRI"},       {POLLOUT, "OUT"},
                 {POLLERR, "ERR"},       {POLLHUP, "HUP"},       {POLLRDHUP, "RDHUP"},
                 {POLLRDNORM, "RDNORM"}, {POLLWRNORM, "WRNORM"}, {POLLRDBAND, "RDBAND"},
                 {POLLWRBAND, "WRBAND"}, {POLLNVAL, "NVAL"}};
    buf[0] = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (ev & names[i].bit) {
            strncat(buf, buf[0] ? "|" : "", n - strlen(buf) - 1);
            strncat(buf, names[i].name, n - strlen(buf) - 1);
        }
    if (!buf[0])
        snprintf(buf, n, "0");
    return buf;
}

/* poll() and epoll_wait() (level-triggered) of fd, asked for every event,
 * give exactly want, now. */
#define EXPECT_EVENTS(fd, want) expect_events(fd, want, #want, __LINE__)
static void expect_events(int fd, int want, const char *wname, int line)
{
    struct pollfd p = {fd, ALL_EVENTS, 0};
    int r = poll(&p, 1, 0);
    CHECK(r >= 0);
    char got[128], exp[128];
    if (p.revents != want)
        tl_fail(__FILE__, line, "poll revents %s, expected %s (%s)",
                evnames(p.revents, got, sizeof got), evnames(want, exp, sizeof exp), wname);
    int ep = (int)OK(epoll_create1(EPOLL_CLOEXEC));
    struct epoll_event ev = {.events = (uint32_t)ALL_EVENTS, .data.fd = fd};
    OK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev));
    struct epoll_event out;
    memset(&out, 0, sizeof out);
    r = (int)OK(epoll_wait(ep, &out, 1, 0));
    int eg = r ? (int)out.events : 0;
    if (eg != want)
        tl_fail(__FILE__, line, "epoll events %s, expected %s (%s)", evnames(eg, got, sizeof got),
                evnames(want, exp, sizeof exp), wname);
    OK(close(ep));
}

/* Waits (bounded) until poll reports one of the events in any. */
static void wait_for(int fd, short any)
{
    CHECK_MSG(tl_poll1(fd, any, 5000) & (any | POLLERR | POLLHUP), "fd %d never ready", fd);
}

static void wait_inq(int fd, int n)
{
    long deadline = tl_now_ms() + 10000;
    int q = -1;
    for (;;) {
        OK(ioctl(fd, FIONREAD, &q));
        if (q >= n)
            return;
        CHECK(tl_now_ms() < deadline);
        tl_poll1(fd, POLLIN, 10);
    }
}

#define IN_ (POLLIN | POLLRDNORM)
#define OUT_ (POLLOUT | POLLWRNORM)
/* what a connection reset (or refused) reports until SO_ERROR is read */
#define RESET_ (IN_ | OUT_ | POLLERR | POLLHUP | POLLRDHUP)
#define CLOSED_ (IN_ | OUT_ | POLLHUP | POLLRDHUP)

/* ---- the listen queue ---------------------------------------------------- */

static int nb_connect(int fam, struct sockaddr_storage *ss, socklen_t sl)
{
    int c = (int)OK(socket(tl_domain(fam), SOCK_STREAM | SOCK_NONBLOCK, 0));
    errno = 0;
    int r = connect(c, (struct sockaddr *)ss, sl);
    CHECK_MSG(r == 0 || errno == EINPROGRESS, "non-blocking connect: %s", tl_errname(errno));
    return c;
}

/* backlog N admits N+1 connections; the next waits, unrefused, while the
 * queue stays full (its SYNs are dropped: retransmits too). */
TEST_INET(full_listen_queue_keeps_connects_waiting)
{
    for (int backlog = 0; backlog <= 2; backlog++) {
        int l = tl_listener(fam, backlog);
        struct sockaddr_storage ss;
        socklen_t sl = tl_name(l, &ss);
        int c[4];
        for (int i = 0; i <= backlog; i++) {
            c[i] = nb_connect(fam, &ss, sl);
            wait_for(c[i], POLLOUT);
            CHECK_EQ(tl_so_error(c[i]), 0);
        }
        int w = nb_connect(fam, &ss, sl);
        CHECK_EQ(tl_poll1(w, POLLOUT, 300), 0); /* not refused, not connected */
        EXPECT_EVENTS(w, 0);
        CHECK_EQ(tl_so_error(w), 0);
        for (int i = 0; i <= backlog; i++)
            OK(close(c[i]));
        OK(close(w));
        OK(close(l));
    }
}

/* ... and completes them once accept() makes room; connect() again says
 * EALREADY while it waits, then 0 once, then EISCONN. */
TEST_INET(full_listen_queue_completes_after_accept)
{
    int l = tl_listener(fam, 1);
    struct sockaddr_storage ss;
    socklen_t sl = tl_name(l, &ss);
    int c1 = nb_connect(fam, &ss, sl), c2 = nb_connect(fam, &ss, sl);
    wait_for(c1, POLLOUT);
    wait_for(c2, POLLOUT);
    int w = nb_connect(fam, &ss, sl);
    CHECK_ERRNO(connect(w, (struct sockaddr *)&ss, sl), EALREADY);
    CHECK_EQ(tl_poll1(w, POLLOUT, 200), 0);
    int a = (int)OK(accept(l, NULL, NULL)); /* room for one */
    wait_for(w, POLLOUT);                   /* the next SYN retransmit gets in */
    CHECK_EQ(tl_so_error(w), 0);
    EXPECT_EVENTS(w, OUT_);
    OK(connect(w, (struct sockaddr *)&ss, sl)); /* the outcome: connected */
    CHECK_ERRNO(connect(w, (struct sockaddr *)&ss, sl), EISCONN);
    CHECK_EQ(OK(send(w, "late", 4, 0)), 4);
    int b = (int)OK(accept(l, NULL, NULL)), d = (int)OK(accept(l, NULL, NULL));
    char buf[4];
    wait_inq(d, 4);
    CHECK_EQ(OK(recv(d, buf, 4, 0)), 4); /* the waiting one was accepted last */
    OK(close(a));
    OK(close(b));
    OK(close(d));
    OK(close(c1));
    OK(close(c2));
    OK(close(w));
    OK(close(l));
}

struct blocking_connect {
    int fam;
    struct sockaddr_storage ss;
    socklen_t sl;
    int fd, tid, r, e;
};

static void *do_blocking_connect(void *p)
{
    struct blocking_connect *b = p;
    __atomic_store_n(&b->tid, tl_gettid(), __ATOMIC_RELEASE);
    errno = 0;
    b->r = connect(b->fd, (struct sockaddr *)&b->ss, b->sl);
    b->e = errno;
    return NULL;
}

TEST_INET(full_listen_queue_blocking_connect_waits)
{
    int l = tl_listener(fam, 0);
    struct blocking_connect b = {.fam = fam};
    b.sl = tl_name(l, &b.ss);
    int c1 = sock(fam, SOCK_STREAM);
    OK(connect(c1, (struct sockaddr *)&b.ss, b.sl));
    b.fd = sock(fam, SOCK_STREAM);
    b.tid = 0;
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, do_blocking_connect, &b), 0);
    while (__atomic_load_n(&b.tid, __ATOMIC_ACQUIRE) == 0)
        tl_sleep_ms(1);
    tl_wait_blocked(b.tid);
    int a = (int)OK(accept(l, NULL, NULL));
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 15;
    CHECK_MSG(pthread_timedjoin_np(t, NULL, &until) == 0, "connect still blocked");
    CHECK_MSG(b.r == 0, "blocking connect: %s", tl_errname(b.e));
    OK(close(a));
    OK(close((int)OK(accept(l, NULL, NULL))));
    OK(close(c1));
    OK(close(b.fd));
    OK(close(l));
}

/* listen() on a listener changes its backlog; a huge or negative one is
 * net.core.somaxconn (TCP_INFO's tcpi_sacked shows it). */
TEST_INET(listen_backlog_clamped_to_somaxconn)
{
    long somax = tl_sysctl("/proc/sys/net/core/somaxconn");
    int l = tl_listener(fam, 3);
    struct tl_tcp_info ti;
    socklen_t tl = sizeof ti;
    OK(getsockopt(l, IPPROTO_TCP, TCP_INFO, &ti, &tl));
    CHECK_EQ(ti.tcpi_sacked, 3);
    OK(listen(l, 1 << 30));
    OK(getsockopt(l, IPPROTO_TCP, TCP_INFO, &ti, &tl));
    CHECK_EQ(ti.tcpi_sacked, (uint32_t)somax);
    OK(listen(l, -1));
    OK(getsockopt(l, IPPROTO_TCP, TCP_INFO, &ti, &tl));
    CHECK_EQ(ti.tcpi_sacked, (uint32_t)somax);
    OK(listen(l, 0));
    OK(getsockopt(l, IPPROTO_TCP, TCP_INFO, &ti, &tl));
    CHECK_EQ(ti.tcpi_sacked, 0);
    OK(close(l));
}

/* ---- a new connection can send at once --------------------------------------- */

TEST_INET(just_accepted_socket_can_send_at_once)
{
    int l = tl_listener(fam, 4);
    OK(fcntl(l, F_SETFL, O_NONBLOCK));
    struct sockaddr_storage ss;
    socklen_t sl = tl_name(l, &ss);
    int c = nb_connect(fam, &ss, sl);
    wait_for(l, POLLIN);
    int s = (int)OK(accept4(l, NULL, NULL, SOCK_NONBLOCK));
    /* before the client does anything: writable, and a write goes through */
    EXPECT_EVENTS(s, OUT_);
    static char buf[65536];
    tl_fill(buf, sizeof buf, 9);
    ssize_t n = send(s, buf, sizeof buf, 0);
    CHECK_MSG(n > 0, "first send on the accepted socket: %s", tl_errname(errno));
    CHECK_EQ(OK(send(s, "more", 4, 0)), 4);
    /* the client too, as soon as it is connected */
    wait_for(c, POLLOUT);
    CHECK_EQ(OK(send(c, "hello", 5, 0)), 5);
    wait_inq(s, 5);
    OK(close(c));
    OK(close(s));
    OK(close(l));
}

/* ---- connect() again ----------------------------------------------------------- */

TEST_INET(connect_again_after_success)
{
    int l = tl_listener(fam, 4);
    struct sockaddr_storage ss;
    socklen_t sl = tl_name(l, &ss);
    int c = (int)OK(socket(tl_domain(fam), SOCK_STREAM | SOCK_NONBLOCK, 0));
    CHECK_ERRNO(connect(c, (struct sockaddr *)&ss, sl), EINPROGRESS);
    wait_for(c, POLLOUT);
    OK(connect(c, (struct sockaddr *)&ss, sl)); /* the outcome, once */
    CHECK_ERRNO(connect(c, (struct sockaddr *)&ss, sl), EISCONN);
    /* to another address: EISCONN too */
    int l2 = tl_listener(fam, 1);
    struct sockaddr_storage s2;
    socklen_t sl2 = tl_name(l2, &s2);
    CHECK_ERRNO(connect(c, (struct sockaddr *)&s2, sl2), EISCONN);
    OK(close(c));
    /* a blocking connect: connected, then EISCONN */
    c = sock(fam, SOCK_STREAM);
    OK(connect(c, (struct sockaddr *)&ss, sl));
    CHECK_ERRNO(connect(c, (struct sockaddr *)&ss, sl), EISCONN);
    OK(close(c));
    OK(close(l));
    OK(close(l2));
}

static socklen_t closed_port(int fam, struct sockaddr_storage *ss)
{
    int t = tl_bound(fam, SOCK_STREAM);
    socklen_t l = tl_name(t, ss);
    OK(close(t));
    return l;
}

/* haproxy's way: after poll() says writable, connect() again tells the
 * outcome. The pending error is given once; connect() again then starts a
 * new attempt. */
TEST_INET(connect_again_after_refusal)
{
    struct sockaddr_storage ss;
    socklen_t sl = closed_port(fam, &ss);
    int c = (int)OK(socket(tl_domain(fam), SOCK_STREAM | SOCK_NONBLOCK, 0));
    CHECK_ERRNO(connect(c, (struct sockaddr *)&ss, sl), EINPROGRESS);
    wait_for(c, POLLOUT);
    EXPECT_EVENTS(c, RESET_);
    CHECK_ERRNO(connect(c, (struct sockaddr *)&ss, sl), ECONNREFUSED);
    EXPECT_EVENTS(c, OUT_ | POLLHUP);
    CHECK_EQ(tl_so_error(c), 0);
    /* a new attempt */
    CHECK_ERRNO(connect(c, (struct sockaddr *)&ss, sl), EINPROGRESS);
    wait_for(c, POLLOUT);
    /* this time SO_ERROR takes the error: connect() finds none to give */
    CHECK_EQ(tl_so_error(c), ECONNREFUSED);
    CHECK_ERRNO(connect(c, (struct sockaddr *)&ss, sl), ECONNABORTED);
    CHECK_ERRNO(connect(c, (struct sockaddr *)&ss, sl), EINPROGRESS);
    wait_for(c, POLLOUT);
    OK(close(c));
    /* blocking: refused each time */
    c = sock(fam, SOCK_STREAM);
    CHECK_ERRNO(connect(c, (struct sockaddr *)&ss, sl), ECONNREFUSED);
    EXPECT_EVENTS(c, OUT_ | POLLHUP);
    CHECK_ERRNO(connect(c, (struct sockaddr *)&ss, sl), ECONNREFUSED);
    OK(close(c));
}

/* ---- the listener goes away ---------------------------------------------------- */

TEST_INET(listener_closed_during_connect)
{
    int l = tl_listener(fam, 0);
    struct sockaddr_storage ss;
    socklen_t sl = tl_name(l, &ss);
    int queued = nb_connect(fam, &ss, sl);
    wait_for(queued, POLLOUT);
    int pending = nb_connect(fam, &ss, sl);
    CHECK_EQ(tl_poll1(pending, POLLOUT, 100), 0);
    OK(close(l));
    /* the queued connection is reset */
    wait_for(queued, POLLERR);
    EXPECT_EVENTS(queued, RESET_);
    char b;
    CHECK_ERRNO(recv(queued, &b, 1, 0), ECONNRESET);
    CHECK_EQ(OK(recv(queued, &b, 1, 0)), 0);
    /* the pending one is refused at its next SYN */
    wait_for(pending, POLLOUT);
    EXPECT_EVENTS(pending, RESET_);
    CHECK_EQ(tl_so_error(pending), ECONNREFUSED);
    OK(close(queued));
    OK(close(pending));
}

TEST_INET(listener_shut_down_during_connect)
{
    int l = tl_listener(fam, 4);
    struct sockaddr_storage ss;
    socklen_t sl = tl_name(l, &ss);
    int c = sock(fam, SOCK_STREAM);
    OK(connect(c, (struct sockaddr *)&ss, sl));
    /* SHUT_WR: nothing changes for a listener */
    OK(shutdown(l, SHUT_WR));
    wait_for(l, POLLIN);
    EXPECT_EVENTS(l, IN_);
    /* SHUT_RD: it stops listening; what was queued is reset */
    OK(shutdown(l, SHUT_RD));
    EXPECT_EVENTS(l, OUT_ | POLLHUP);
    CHECK_ERRNO(accept(l, NULL, NULL), EINVAL);
    CHECK_EQ(tl_getint(l, SOL_SOCKET, SO_ACCEPTCONN), 0);
    wait_for(c, POLLERR);
    char b;
    CHECK_ERRNO(recv(c, &b, 1, 0), ECONNRESET);
    int c2 = sock(fam, SOCK_STREAM);
    CHECK_ERRNO(connect(c2, (struct sockaddr *)&ss, sl), ECONNREFUSED);
    /* shut down again: not connected */
    CHECK_ERRNO(shutdown(l, SHUT_RDWR), ENOTCONN);
    OK(close(c));
    OK(close(c2));
    OK(close(l));
}

struct blocked_accept {
    int l, tid, r, e;
};

static void *do_accept(void *p)
{
    struct blocked_accept *a = p;
    __atomic_store_n(&a->tid, tl_gettid(), __ATOMIC_RELEASE);
    errno = 0;
    a->r = accept(a->l, NULL, NULL);
    a->e = errno;
    return NULL;
}

/* The usual way to stop an accept loop: shutdown() the listener. */
TEST_INET(shutdown_wakes_a_blocked_accept)
{
    struct blocked_accept a = {.l = tl_listener(fam, 4)};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, do_accept, &a), 0);
    while (__atomic_load_n(&a.tid, __ATOMIC_ACQUIRE) == 0)
        tl_sleep_ms(1);
    tl_wait_blocked(a.tid);
    OK(shutdown(a.l, SHUT_RDWR));
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    CHECK_MSG(pthread_timedjoin_np(t, NULL, &until) == 0, "accept still blocked");
    CHECK_EQ(a.r, -1);
    CHECK_EQ(a.e, EINVAL);
    OK(close(a.l));
}

/* ---- resets ---------------------------------------------------------------------- */

static void linger0_close(int fd)
{
    struct linger lg = {1, 0};
    OK(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg));
    OK(close(fd));
}

/* A connection reset while in the accept queue is still accepted: with the
 * data that arrived, then ECONNRESET, then EOF; it has no peer any more. */
TEST_INET(accept_of_a_connection_reset_before_accept)
{
    int l = tl_listener(fam, 4);
    struct sockaddr_storage ss;
    socklen_t sl = tl_name(l, &ss);
    for (int with_data = 0; with_data < 2; with_data++) {
        int c = sock(fam, SOCK_STREAM);
        OK(connect(c, (struct sockaddr *)&ss, sl));
        struct sockaddr_storage cname;
        tl_name(c, &cname);
        if (with_data)
            CHECK_EQ(OK(send(c, "data", 4, 0)), 4);
        linger0_close(c);
        struct sockaddr_storage peer;
        socklen_t pl = sizeof peer;
        int s = (int)OK(accept(l, (struct sockaddr *)&peer, &pl));
        CHECK_EQ(tl_port(&peer), tl_port(&cname)); /* the address it had */
        wait_for(s, POLLERR);
        EXPECT_EVENTS(s, RESET_);
        struct sockaddr_storage x;
        socklen_t xl = sizeof x;
        CHECK_ERRNO(getpeername(s, (struct sockaddr *)&x, &xl), ENOTCONN);
        xl = sizeof x;
        OK(getsockname(s, (struct sockaddr *)&x, &xl));
        char buf[8];
        if (with_data)
            CHECK_EQ(OK(recv(s, buf, sizeof buf, 0)), 4);
        CHECK_ERRNO(recv(s, buf, sizeof buf, 0), ECONNRESET);
        CHECK_EQ(OK(recv(s, buf, sizeof buf, 0)), 0);
        EXPECT_EVENTS(s, CLOSED_);
        CHECK_ERRNO(send(s, "x", 1, MSG_NOSIGNAL), EPIPE);
        OK(close(s));
    }
    OK(close(l));
}

TEST_INET(close_with_unread_data_resets_the_peer)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    CHECK_EQ(OK(send(c, "unread", 6, 0)), 6);
    wait_inq(s, 6);
    OK(close(s)); /* with 6 bytes unread: RST, not FIN */
    wait_for(c, POLLERR);
    EXPECT_EVENTS(c, RESET_);
    char b;
    CHECK_ERRNO(recv(c, &b, 1, 0), ECONNRESET);
    EXPECT_EVENTS(c, CLOSED_);
    CHECK_EQ(OK(recv(c, &b, 1, 0)), 0);
    CHECK_ERRNO(send(c, "x", 1, MSG_NOSIGNAL), EPIPE);
    OK(close(c));
}

TEST_INET(so_linger_zero_resets_the_peer)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    CHECK_EQ(OK(send(c, "sent", 4, 0)), 4);
    wait_inq(s, 4);
    linger0_close(c);
    wait_for(s, POLLERR);
    EXPECT_EVENTS(s, RESET_);
    CHECK_EQ(tl_so_error(s), ECONNRESET); /* SO_ERROR takes it ... */
    EXPECT_EVENTS(s, CLOSED_);
    char buf[8];
    CHECK_EQ(OK(recv(s, buf, sizeof buf, 0)), 4); /* ... and the data is still there */
    CHECK_EQ(OK(recv(s, buf, sizeof buf, 0)), 0);
    OK(close(s));
}

static volatile sig_atomic_t sigpipes;
static void on_sigpipe(int sig)
{
    (void)sig;
    sigpipes++;
}

/* A peer that closed (no unread data): EOF; the first write still goes
 * out, the RST it draws makes the next write EPIPE (with SIGPIPE unless
 * MSG_NOSIGNAL). */
TEST_INET(write_to_a_closed_peer)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    OK(close(s));
    wait_for(c, POLLRDHUP);
    EXPECT_EVENTS(c, IN_ | OUT_ | POLLRDHUP);
    char b;
    CHECK_EQ(OK(recv(c, &b, 1, 0)), 0);
    CHECK_EQ(OK(send(c, "first", 5, MSG_NOSIGNAL)), 5);
    wait_for(c, POLLERR);
    EXPECT_EVENTS(c, RESET_);
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigpipe;
    OK(sigaction(SIGPIPE, &sa, &old));
    sigpipes = 0;
    CHECK_ERRNO(send(c, "second", 6, 0), EPIPE);
    CHECK_EQ(sigpipes, 1);
    CHECK_ERRNO(send(c, "third", 5, MSG_NOSIGNAL), EPIPE);
    CHECK_EQ(sigpipes, 1);
    CHECK_ERRNO(write(c, "fourth", 6), EPIPE);
    CHECK_EQ(sigpipes, 2);
    OK(sigaction(SIGPIPE, &old, NULL));
    EXPECT_EVENTS(c, CLOSED_);
    OK(close(c));
}

/* ---- events in each state ---------------------------------------------------------- */

TEST_INET(events_tcp_unconnected)
{
    int f = sock(fam, SOCK_STREAM);
    EXPECT_EVENTS(f, OUT_ | POLLHUP);
    int b = tl_bound(fam, SOCK_STREAM);
    EXPECT_EVENTS(b, OUT_ | POLLHUP);
    OK(close(f));
    OK(close(b));
}

TEST_INET(events_tcp_listener)
{
    int l = tl_listener(fam, 4);
    EXPECT_EVENTS(l, 0);
    struct sockaddr_storage ss;
    socklen_t sl = tl_name(l, &ss);
    int c = sock(fam, SOCK_STREAM);
    OK(connect(c, (struct sockaddr *)&ss, sl));
    wait_for(l, POLLIN);
    EXPECT_EVENTS(l, IN_);
    OK(close((int)OK(accept(l, NULL, NULL))));
    EXPECT_EVENTS(l, 0);
    OK(close(c));
    OK(close(l));
}

TEST_INET(events_tcp_established)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    EXPECT_EVENTS(c, OUT_);
    CHECK_EQ(OK(send(s, "x", 1, 0)), 1);
    wait_inq(c, 1);
    EXPECT_EVENTS(c, IN_ | OUT_);
    OK(close(c));
    OK(close(s));
}

TEST_INET(events_tcp_urgent_data)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    CHECK_EQ(OK(send(s, "ab", 2, 0)), 2);
    CHECK_EQ(OK(send(s, "!", 1, MSG_OOB)), 1);
    wait_for(c, POLLPRI);
    EXPECT_EVENTS(c, IN_ | POLLPRI | OUT_);
    char b[4];
    CHECK_EQ(OK(recv(c, b, sizeof b, 0)), 2); /* up to the mark */
    EXPECT_EVENTS(c, POLLPRI | OUT_);         /* only the urgent byte is left */
    CHECK_EQ(OK(recv(c, b, 1, MSG_OOB)), 1);
    EXPECT_EVENTS(c, OUT_);
    OK(close(c));
    OK(close(s));
}

TEST_INET(events_tcp_half_closed)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    OK(shutdown(s, SHUT_WR));
    wait_for(c, POLLRDHUP);
    EXPECT_EVENTS(c, IN_ | OUT_ | POLLRDHUP); /* peer shut down writing */
    EXPECT_EVENTS(s, OUT_);                   /* we shut down writing */
    OK(shutdown(c, SHUT_WR));
    wait_for(s, POLLRDHUP);
    EXPECT_EVENTS(s, CLOSED_); /* both ways */
    EXPECT_EVENTS(c, CLOSED_);
    OK(close(c));
    OK(close(s));
}

TEST_INET(events_tcp_shut_rd_and_rdwr)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    OK(shutdown(c, SHUT_RD));
    EXPECT_EVENTS(c, IN_ | OUT_ | POLLRDHUP);
    char b;
    CHECK_EQ(OK(recv(c, &b, 1, 0)), 0);
    OK(close(c));
    OK(close(s));
    tl_stream_pair(fam, &c, &s);
    OK(shutdown(c, SHUT_RDWR));
    EXPECT_EVENTS(c, CLOSED_);
    wait_for(s, POLLRDHUP);
    EXPECT_EVENTS(s, IN_ | OUT_ | POLLRDHUP);
    OK(close(c));
    OK(close(s));
}

TEST_INET(events_tcp_reset_then_so_error)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    linger0_close(s);
    wait_for(c, POLLERR);
    EXPECT_EVENTS(c, RESET_);
    CHECK_EQ(tl_so_error(c), ECONNRESET);
    EXPECT_EVENTS(c, CLOSED_);
    OK(close(c));
}

TEST_INET(events_udp)
{
    const int WOUT = OUT_ | POLLWRBAND; /* datagram sockets add WRBAND */
    int u = sock(fam, SOCK_DGRAM);
    EXPECT_EVENTS(u, WOUT);
    int a, b;
    tl_dgram_pair(fam, &a, &b);
    EXPECT_EVENTS(a, WOUT);
    CHECK_EQ(OK(send(b, "d", 1, 0)), 1);
    wait_for(a, POLLIN);
    EXPECT_EVENTS(a, IN_ | WOUT);
    OK(shutdown(a, SHUT_RD));
    EXPECT_EVENTS(a, IN_ | WOUT | POLLRDHUP);
    OK(shutdown(a, SHUT_WR));
    EXPECT_EVENTS(a, IN_ | WOUT | POLLRDHUP | POLLHUP);
    /* an unconnected socket: shutdown() says ENOTCONN, yet takes effect */
    CHECK_ERRNO(shutdown(u, SHUT_RD), ENOTCONN);
    EXPECT_EVENTS(u, IN_ | WOUT | POLLRDHUP);
    OK(close(u));
    OK(close(a));
    OK(close(b));
    /* a pending ICMP error */
    struct sockaddr_storage to;
    int t = tl_bound(fam, SOCK_DGRAM);
    socklen_t tl = tl_name(t, &to);
    OK(close(t));
    int e = tl_bound(fam, SOCK_DGRAM);
    OK(connect(e, (struct sockaddr *)&to, tl));
    CHECK_EQ(OK(send(e, "x", 1, 0)), 1);
    wait_for(e, POLLERR);
    EXPECT_EVENTS(e, WOUT | POLLERR);
    CHECK_EQ(tl_so_error(e), ECONNREFUSED);
    EXPECT_EVENTS(e, WOUT);
    OK(close(e));
}

/* ---- a blocked send and SO_SNDBUF ---------------------------------------------------- */

struct blocked_send {
    int fd, tid;
    ssize_t r;
    int e;
    size_t n;
};

static void *do_send(void *p)
{
    struct blocked_send *b = p;
    static char buf[65536];
    __atomic_store_n(&b->tid, tl_gettid(), __ATOMIC_RELEASE);
    errno = 0;
    b->r = send(b->fd, buf, b->n, 0);
    b->e = errno;
    return NULL;
}

/* A connection whose accepted end s has a 4 KiB SO_RCVBUF (its
 * listener's) and whose connecting end c a 4 KiB SO_SNDBUF. */
static void small_buffers_pair(int fam, int *c, int *s)
{
    int l = tl_listener(fam, 1);
    tl_setint(l, SOL_SOCKET, SO_RCVBUF, 4096);
    struct sockaddr_storage ss;
    socklen_t sl = tl_name(l, &ss);
    *c = sock(fam, SOCK_STREAM);
    OK(connect(*c, (struct sockaddr *)&ss, sl));
    *s = (int)OK(accept(l, NULL, NULL));
    tl_setint(*c, SOL_SOCKET, SO_SNDBUF, 4096);
    OK(close(l));
}

/* A small SO_RCVBUF on the listener (its accepted socket's) holds the
 * sender back: the peer's window is the receive buffer, not a fixed ring
 * (CPython's test_asyncio sendfile cases expect the sender still sending
 * when the receiver closes). Reading lets it go on. */
TEST_INET(small_rcvbuf_holds_the_sender_back)
{
    int c, s;
    small_buffers_pair(fam, &c, &s);
    long first = tl_fill_sndbuf(c, 200);
    /* the kernel: about 10 kB (8 kB buffers each side); a fixed 256 kB
     * ring would take it all */
    CHECK(first > 0);
    CHECK(first <= 64 * 1024);
    static char sink[65536];
    CHECK_EQ(tl_read_all(s, sink, first), first);
    long second = tl_fill_sndbuf(c, 200);
    CHECK(second > 0);
    CHECK(second <= 64 * 1024);
    CHECK_EQ(tl_read_all(s, sink, second), second);
    OK(close(c));
    OK(close(s));
}

/* The receiver closes with bytes unread while the sender's own buffer
 * still holds more: the reset shows at the sender's next send as
 * ECONNRESET, then EPIPE (tcp_sendmsg: sk_err first). */
TEST_INET(reset_reaches_a_sender_with_bytes_queued)
{
    int c, s;
    small_buffers_pair(fam, &c, &s);
    CHECK(tl_fill_sndbuf(c, 200) > 2048);
    char b[2048];
    CHECK_EQ(OK(recv(s, b, sizeof b, 0)) > 0, 1);
    OK(close(s));
    long deadline = tl_now_ms() + 5000;
    while (!(tl_poll1(c, POLLERR | POLLHUP, 50) & (POLLERR | POLLHUP)))
        CHECK(tl_now_ms() < deadline);
    CHECK_ERRNO(send(c, "x", 1, MSG_NOSIGNAL), ECONNRESET);
    CHECK_ERRNO(send(c, "x", 1, MSG_NOSIGNAL), EPIPE);
    OK(close(c));
}

TEST_INET(larger_sndbuf_wakes_a_blocked_send)
{
    int l = (int)OK(socket(tl_domain(fam), SOCK_STREAM, 0));
    struct sockaddr_storage ss;
    socklen_t sl = tl_loop(fam, &ss, 0);
    OK(bind(l, (struct sockaddr *)&ss, sl));
    tl_setint(l, SOL_SOCKET, SO_RCVBUF, 16384);
    OK(listen(l, 1));
    sl = tl_name(l, &ss);
    int c = sock(fam, SOCK_STREAM);
    tl_setint(c, SOL_SOCKET, SO_SNDBUF, 16384);
    OK(connect(c, (struct sockaddr *)&ss, sl));
    int s = (int)OK(accept(l, NULL, NULL));
    tl_fill_sndbuf(c, 200);
    CHECK_EQ(tl_poll1(c, POLLOUT, 0), 0);
    struct blocked_send b = {.fd = c, .n = 32768};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, do_send, &b), 0);
    while (__atomic_load_n(&b.tid, __ATOMIC_ACQUIRE) == 0)
        tl_sleep_ms(1);
    tl_wait_blocked(b.tid);
    /* room for all of it: the sender wakes and finishes */
    tl_setint(c, SOL_SOCKET, SO_SNDBUF, 1 << 20);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    CHECK_MSG(pthread_timedjoin_np(t, NULL, &until) == 0, "send still blocked");
    CHECK_MSG(b.r == (ssize_t)b.n, "send returned %zd (%s)", b.r, tl_errname(b.e));
    OK(close(c));
    OK(close(s));
    OK(close(l));
}

/* ---- urgent data ------------------------------------------------------------------------ */

static int atmark(int fd)
{
    int v = -1;
    OK(ioctl(fd, SIOCATMARK, &v));
    return v;
}

TEST_INET(msg_oob_and_the_mark)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    char b[16];
    CHECK_ERRNO(recv(s, b, 1, MSG_OOB | MSG_DONTWAIT), EINVAL); /* none */
    CHECK_EQ(OK(send(c, "ab", 2, 0)), 2);
    CHECK_EQ(OK(send(c, "X", 1, MSG_OOB)), 1);
    CHECK_EQ(OK(send(c, "cd", 2, 0)), 2);
    wait_for(s, POLLPRI);
    CHECK_EQ(atmark(s), 0);
    int n = -1;
    OK(ioctl(s, FIONREAD, &n));
    CHECK_EQ(n, 2); /* FIONREAD counts up to the mark */
    CHECK_EQ(OK(recv(s, b, sizeof b, 0)), 2); /* a read stops at the mark */
    CHECK(memcmp(b, "ab", 2) == 0);
    CHECK_EQ(atmark(s), 1);
    CHECK_EQ(OK(recv(s, b, 1, MSG_OOB | MSG_PEEK)), 1); /* peeked, still there */
    CHECK_EQ(b[0], 'X');
    CHECK_EQ(OK(recv(s, b, 1, MSG_OOB)), 1);
    CHECK_EQ(b[0], 'X');
    CHECK_ERRNO(recv(s, b, 1, MSG_OOB), EINVAL); /* read already */
    CHECK_EQ(tl_read_all(s, b, 2), 2);
    CHECK(memcmp(b, "cd", 2) == 0);
    OK(close(c));
    OK(close(s));
}

TEST_INET(so_oobinline_keeps_urgent_data_in_line)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    tl_setint(s, SOL_SOCKET, SO_OOBINLINE, 1);
    CHECK_EQ(OK(send(c, "ab", 2, 0)), 2);
    CHECK_EQ(OK(send(c, "X", 1, MSG_OOB)), 1);
    CHECK_EQ(OK(send(c, "cd", 2, 0)), 2);
    wait_inq(s, 5);
    char b[16];
    CHECK_EQ(OK(recv(s, b, sizeof b, 0)), 2);
    CHECK_EQ(atmark(s), 1);
    CHECK_ERRNO(recv(s, b, 1, MSG_OOB), EINVAL);
    CHECK_EQ(OK(recv(s, b, sizeof b, 0)), 3);
    CHECK(memcmp(b, "Xcd", 3) == 0);
    OK(close(c));
    OK(close(s));
    /* UDP has no urgent data: IPv4 refuses MSG_OOB, IPv6 ignores it */
    int a, d;
    tl_dgram_pair(fam, &a, &d);
    if (fam == FAM_INET)
        CHECK_ERRNO(send(a, "x", 1, MSG_OOB), EOPNOTSUPP);
    else
        CHECK_EQ(OK(send(a, "x", 1, MSG_OOB)), 1);
    OK(close(a));
    OK(close(d));
}

static volatile sig_atomic_t sigurgs;
static void on_sigurg(int sig)
{
    (void)sig;
    sigurgs++;
}

TEST_INET(sigurg_to_the_owner)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigurg;
    OK(sigaction(SIGURG, &sa, &old));
    OK(fcntl(s, F_SETOWN, getpid()));
    CHECK_EQ(OK(fcntl(s, F_GETOWN)), getpid());
    sigurgs = 0;
    CHECK_EQ(OK(send(c, "U", 1, MSG_OOB)), 1);
    long deadline = tl_now_ms() + 10000;
    while (sigurgs == 0 && tl_now_ms() < deadline)
        tl_poll1(s, 0, 10);
    CHECK(sigurgs >= 1);
    OK(sigaction(SIGURG, &old, NULL));
    OK(close(c));
    OK(close(s));
}

/* MSG_TRUNC on a stream discards what it would read; with MSG_PEEK it
 * only says how much there is, copying nothing. */
TEST_INET(msg_trunc_on_streams)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    CHECK_EQ(OK(send(c, "abcdef", 6, 0)), 6);
    wait_inq(s, 6);
    char b[16];
    memset(b, 0, sizeof b);
    CHECK_EQ(OK(recv(s, b, 3, MSG_TRUNC | MSG_PEEK)), 3);
    CHECK_EQ(b[0], 0); /* nothing copied */
    CHECK_EQ(OK(recv(s, NULL, 3, MSG_TRUNC)), 3);
    CHECK_EQ(OK(recv(s, b, sizeof b, 0)), 3);
    CHECK(memcmp(b, "def", 3) == 0);
    CHECK_EQ(OK(send(c, "xyz", 3, 0)), 3);
    wait_inq(s, 3);
    CHECK_EQ(OK(recv(s, NULL, 100, MSG_TRUNC | MSG_DONTWAIT)), 3);
    CHECK_ERRNO(recv(s, b, sizeof b, MSG_DONTWAIT), EAGAIN);
    OK(close(c));
    OK(close(s));
}

/* ---- connect() with odd addresses ------------------------------------------------------ */

TEST_INET(udp_connect_to_port_0)
{
    int u = sock(fam, SOCK_DGRAM);
    struct sockaddr_storage ss;
    socklen_t sl = tl_loop(fam, &ss, 0);
    OK(connect(u, (struct sockaddr *)&ss, sl));
    struct sockaddr_storage peer;
    socklen_t pl = sizeof peer;
    CHECK_ERRNO(getpeername(u, (struct sockaddr *)&peer, &pl), ENOTCONN);
    CHECK_EQ(OK(send(u, "x", 1, 0)), 1);
    CHECK_ERRNO(sendto(u, "x", 1, 0, (struct sockaddr *)&ss, sl), EINVAL);
    OK(close(u));
}

TEST_INET(udp_connect_af_unspec)
{
    int r = tl_bound(fam, SOCK_DGRAM);
    struct sockaddr_storage ss;
    socklen_t sl = tl_name(r, &ss);
    int u = sock(fam, SOCK_DGRAM);
    OK(connect(u, (struct sockaddr *)&ss, sl));
    struct sockaddr_storage me;
    tl_name(u, &me);
    CHECK(tl_port(&me) > 0);
    struct sockaddr_in un = {.sin_family = AF_UNSPEC};
    OK(connect(u, (struct sockaddr *)&un, sizeof un));
    CHECK_ERRNO(send(u, "x", 1, 0), EDESTADDRREQ);
    struct sockaddr_storage peer;
    socklen_t pl = sizeof peer;
    CHECK_ERRNO(getpeername(u, (struct sockaddr *)&peer, &pl), ENOTCONN);
    /* again, and with only the family: fine */
    OK(connect(u, (struct sockaddr *)&un, sizeof un));
    OK(connect(u, (struct sockaddr *)&un, sizeof(sa_family_t)));
    /* still usable with an address */
    CHECK_EQ(OK(sendto(u, "y", 1, 0, (struct sockaddr *)&ss, sl)), 1);
    CHECK(tl_poll1(r, POLLIN, 5000) & POLLIN);
    OK(close(u));
    OK(close(r));
}

/* AF_UNSPEC on a connected TCP socket aborts the connection (the peer gets
 * a reset) and leaves the socket ready to connect again. */
TEST_INET(tcp_connect_af_unspec_aborts)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    struct sockaddr_in un = {.sin_family = AF_UNSPEC};
    OK(connect(c, (struct sockaddr *)&un, sizeof un));
    wait_for(s, POLLERR);
    char b;
    CHECK_ERRNO(recv(s, &b, 1, 0), ECONNRESET);
    CHECK_EQ(OK(recv(s, &b, 1, 0)), 0);
    struct sockaddr_storage x;
    socklen_t xl = sizeof x;
    CHECK_ERRNO(getpeername(c, (struct sockaddr *)&x, &xl), ENOTCONN);
    CHECK_ERRNO(send(c, "x", 1, MSG_NOSIGNAL), ECONNRESET);
    int l = tl_listener(fam, 1);
    struct sockaddr_storage ss;
    socklen_t sl = tl_name(l, &ss);
    OK(connect(c, (struct sockaddr *)&ss, sl));
    CHECK_EQ(tl_so_error(c), 0);
    OK(close(c));
    OK(close(s));
    OK(close(l));
}

/* getsockname after connect(AF_UNSPEC): Linux's tcp_disconnect forgets
 * the source address unless the program bound one, and gives the port
 * back unless the program bound it, but the name still shows the port the
 * connection had (inet_sport stays). */
TEST_INET(tcp_connect_af_unspec_getsockname)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    struct sockaddr_storage was, now, any;
    tl_name(c, &was);
    struct sockaddr_in un = {.sin_family = AF_UNSPEC};
    OK(connect(c, (struct sockaddr *)&un, sizeof un));
    socklen_t nl = tl_name(c, &now);
    socklen_t al = tl_any(fam, &any, tl_port(&was));
    CHECK_EQ(nl, al);
    CHECK(memcmp(&now, &any, al) == 0);
    OK(close(c));
    OK(close(s));
    /* bound to an address (port 0): the address stays, and the port shown */
    int l = tl_listener(fam, 1);
    struct sockaddr_storage ls, b;
    socklen_t ll = tl_name(l, &ls);
    c = (int)OK(socket(tl_domain(fam), SOCK_STREAM, 0));
    socklen_t bl = tl_loop(fam, &b, 0);
    OK(bind(c, (struct sockaddr *)&b, bl));
    OK(connect(c, (struct sockaddr *)&ls, ll));
    s = (int)OK(accept(l, NULL, NULL));
    tl_name(c, &was);
    OK(connect(c, (struct sockaddr *)&un, sizeof un));
    nl = tl_name(c, &now);
    CHECK_EQ(nl, bl);
    CHECK(memcmp(&now, &was, nl) == 0);
    /* connected again from a new port, shown as such */
    OK(connect(c, (struct sockaddr *)&ls, ll));
    int s2 = (int)OK(accept(l, NULL, NULL));
    struct sockaddr_storage peer;
    tl_name(c, &now);
    socklen_t pl = sizeof peer;
    OK(getpeername(s2, (struct sockaddr *)&peer, &pl));
    CHECK_EQ(tl_port(&now), tl_port(&peer));
    OK(close(c));
    OK(close(s));
    OK(close(s2));
    OK(close(l));
}

/* ---- shutdown() on UDP --------------------------------------------------------------- */

TEST_INET(udp_shutdown_rd)
{
    int a, b;
    tl_dgram_pair(fam, &a, &b);
    CHECK_EQ(OK(send(b, "before", 6, 0)), 6);
    wait_for(a, POLLIN);
    OK(shutdown(a, SHUT_RD));
    char buf[8];
    CHECK_EQ(OK(recv(a, buf, sizeof buf, 0)), 6); /* what was queued */
    CHECK_EQ(OK(recv(a, buf, sizeof buf, 0)), 0); /* then EOF, at once */
    CHECK_ERRNO(recv(a, buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
    CHECK_EQ(OK(send(b, "after", 5, 0)), 5); /* still accepted */
    wait_for(a, POLLIN);
    CHECK_EQ(OK(recv(a, buf, sizeof buf, 0)), 5);
    OK(shutdown(a, SHUT_WR));
    CHECK_ERRNO(send(a, "x", 1, MSG_NOSIGNAL), EPIPE);
    CHECK_ERRNO(shutdown(a, 3), EINVAL);
    OK(close(a));
    OK(close(b));
    /* unconnected: ENOTCONN, but in effect */
    int u = tl_bound(fam, SOCK_DGRAM);
    CHECK_ERRNO(shutdown(u, SHUT_RD), ENOTCONN);
    CHECK_EQ(OK(recv(u, buf, sizeof buf, 0)), 0);
    CHECK_ERRNO(shutdown(u, SHUT_WR), ENOTCONN);
    struct sockaddr_storage me;
    socklen_t ml = tl_name(u, &me);
    CHECK_ERRNO(sendto(u, "x", 1, MSG_NOSIGNAL, (struct sockaddr *)&me, ml), EPIPE);
    OK(close(u));
}

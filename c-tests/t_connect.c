/* connect, accept, accept4, listen backlog. */
#include "testlib.h"

static int is_inet(int fam) { return fam == FAM_INET || fam == FAM_INET6; }

TEST_FAM(connect_accept_blocking_exchange)
{
    int l = tl_listener(fam, 4);
    struct sockaddr_storage ss;
    socklen_t len = tl_name(l, &ss);
    int c = (int)OK(socket(tl_domain(fam), SOCK_STREAM, 0));
    OK(connect(c, (struct sockaddr *)&ss, len));
    int s = (int)OK(accept(l, NULL, NULL));
    int v = -1;
    socklen_t vl = sizeof v;
    OK(getsockopt(s, SOL_SOCKET, SO_TYPE, &v, &vl));
    CHECK_EQ(v, SOCK_STREAM);
    OK(getsockopt(s, SOL_SOCKET, SO_ACCEPTCONN, &v, &vl));
    CHECK_EQ(v, 0);
    CHECK_EQ(OK(send(c, "hello", 5, 0)), 5);
    char buf[16];
    CHECK_EQ(OK(recv(s, buf, sizeof buf, 0)), 5);
    CHECK(memcmp(buf, "hello", 5) == 0);
    CHECK_EQ(OK(send(s, "world", 5, 0)), 5);
    CHECK_EQ(OK(recv(c, buf, sizeof buf, 0)), 5);
    CHECK(memcmp(buf, "world", 5) == 0);
    OK(close(c));
    OK(close(s));
    OK(close(l));
}

struct acc_arg { int l; int fd; };

static void *accept_thread(void *p)
{
    struct acc_arg *a = p;
    a->fd = (int)OK(accept(a->l, NULL, NULL));
    return NULL;
}

TEST_FAM(accept_blocks_until_connect)
{
    int l = tl_listener(fam, 4);
    struct sockaddr_storage ss;
    socklen_t len = tl_name(l, &ss);
    struct acc_arg a = {l, -1};
    pthread_t t;
    pthread_create(&t, NULL, accept_thread, &a);
    tl_sleep_ms(50);
    int c = (int)OK(socket(tl_domain(fam), SOCK_STREAM, 0));
    OK(connect(c, (struct sockaddr *)&ss, len));
    pthread_join(t, NULL);
    CHECK(a.fd >= 0);
    CHECK_EQ(OK(write(a.fd, "x", 1)), 1);
    char ch;
    CHECK_EQ(OK(read(c, &ch, 1)), 1);
    close(a.fd);
    close(c);
    close(l);
}

TEST_FAM(accept4_flags)
{
    int l = tl_listener(fam, 4);
    struct sockaddr_storage ss;
    socklen_t len = tl_name(l, &ss);
    int c1 = (int)OK(socket(tl_domain(fam), SOCK_STREAM, 0));
    int c2 = (int)OK(socket(tl_domain(fam), SOCK_STREAM, 0));
    int c3 = (int)OK(socket(tl_domain(fam), SOCK_STREAM, 0));
    OK(connect(c1, (struct sockaddr *)&ss, len));
    OK(connect(c2, (struct sockaddr *)&ss, len));
    OK(connect(c3, (struct sockaddr *)&ss, len));
    CHECK_ERRNO(accept4(l, NULL, NULL, 0x40000000), EINVAL);
    int a = (int)OK(accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC));
    CHECK(OK(fcntl(a, F_GETFL)) & O_NONBLOCK);
    CHECK(OK(fcntl(a, F_GETFD)) & FD_CLOEXEC);
    char ch;
    CHECK_ERRNO(recv(a, &ch, 1, 0), EAGAIN);
    int b = (int)OK(accept4(l, NULL, NULL, 0));
    CHECK_EQ(OK(fcntl(b, F_GETFL)) & O_NONBLOCK, 0);
    CHECK_EQ(OK(fcntl(b, F_GETFD)) & FD_CLOEXEC, 0);
    /* accept on a non-blocking listener: the new socket does not inherit
     * O_NONBLOCK */
    OK(fcntl(l, F_SETFL, O_NONBLOCK));
    int d = (int)OK(accept(l, NULL, NULL));
    CHECK_EQ(OK(fcntl(d, F_GETFL)) & O_NONBLOCK, 0);
    CHECK_ERRNO(accept(l, NULL, NULL), EAGAIN);
    close(a); close(b); close(d); close(c1); close(c2); close(c3); close(l);
}

TEST_FAM(accept_nonblocking_eagain)
{
    int l = tl_bound(fam, SOCK_STREAM | SOCK_NONBLOCK);
    OK(listen(l, 4));
    CHECK_ERRNO(accept(l, NULL, NULL), EAGAIN);
    CHECK_ERRNO(accept4(l, NULL, NULL, SOCK_CLOEXEC), EAGAIN);
}

TEST_FAM(accept_errors)
{
    int b = tl_bound(fam, SOCK_STREAM); /* bound, not listening */
    CHECK_ERRNO(accept(b, NULL, NULL), EINVAL);
    CHECK_ERRNO(accept4(b, NULL, NULL, SOCK_NONBLOCK), EINVAL);
    OK(close(b));
    int u = (int)OK(socket(tl_domain(fam), SOCK_STREAM, 0));
    CHECK_ERRNO(accept(u, NULL, NULL), EINVAL);
    OK(close(u));
    int d = tl_bound(fam, SOCK_DGRAM);
    CHECK_ERRNO(accept(d, NULL, NULL), EOPNOTSUPP);
    OK(close(d));
    int c, s;
    tl_stream_pair(fam, &c, &s);
    CHECK_ERRNO(accept(c, NULL, NULL), EINVAL);
    close(c);
    close(s);
}

TEST_FAM(accept_address_and_truncation)
{
    int l = tl_listener(fam, 4);
    struct sockaddr_storage ss;
    socklen_t len = tl_name(l, &ss);
    int c = (int)OK(socket(tl_domain(fam), SOCK_STREAM, 0));
    if (!is_inet(fam)) {
        /* a bound unix client has a name for accept to report */
        struct sockaddr_storage cb;
        socklen_t cbl;
        tl_addr(fam, &cb, &cbl);
        OK(bind(c, (struct sockaddr *)&cb, cbl));
    }
    OK(connect(c, (struct sockaddr *)&ss, len));
    struct sockaddr_storage cn;
    socklen_t cnl = tl_name(c, &cn);
    unsigned char buf[sizeof(struct sockaddr_storage)];
    memset(buf, 0xAA, sizeof buf);
    socklen_t bl = 5;
    int s = (int)OK(accept(l, (struct sockaddr *)buf, &bl));
    CHECK_EQ(bl, cnl);
    CHECK(memcmp(buf, &cn, 5) == 0);
    CHECK_EQ(buf[5], 0xAA);
    close(s);
    close(c);
    close(l);
}

TEST_FAM(connect_nonblocking)
{
    int l = tl_listener(fam, 4);
    struct sockaddr_storage ss;
    socklen_t len = tl_name(l, &ss);
    int c = (int)OK(socket(tl_domain(fam), SOCK_STREAM | SOCK_NONBLOCK, 0));
    if (is_inet(fam)) {
        /* Linux TCP: always EINPROGRESS, then POLLOUT and SO_ERROR == 0 */
        CHECK_ERRNO(connect(c, (struct sockaddr *)&ss, len), EINPROGRESS);
        short re = tl_poll1(c, POLLOUT, 5000);
        CHECK(re & POLLOUT);
        CHECK_EQ(re & (POLLERR | POLLHUP), 0);
        CHECK_EQ(tl_so_error(c), 0);
        /* a second connect reports the outcome (0) or EISCONN; then EISCONN */
        errno = 0;
        int r = connect(c, (struct sockaddr *)&ss, len);
        CHECK(r == 0 || errno == EISCONN);
        CHECK_ERRNO(connect(c, (struct sockaddr *)&ss, len), EISCONN);
    } else {
        /* Linux AF_UNIX: a non-blocking connect to a listener completes at once */
        OK(connect(c, (struct sockaddr *)&ss, len));
        CHECK(tl_poll1(c, POLLOUT, 0) & POLLOUT);
        CHECK_ERRNO(connect(c, (struct sockaddr *)&ss, len), EISCONN);
    }
    int s = (int)OK(accept(l, NULL, NULL));
    CHECK_EQ(OK(send(c, "abc", 3, 0)), 3);
    char buf[4];
    CHECK_EQ(OK(recv(s, buf, sizeof buf, 0)), 3);
    close(c);
    close(s);
    close(l);
}

TEST_FAM(connect_eisconn)
{
    int l = tl_listener(fam, 4);
    struct sockaddr_storage ss;
    socklen_t len = tl_name(l, &ss);
    int c = (int)OK(socket(tl_domain(fam), SOCK_STREAM, 0));
    OK(connect(c, (struct sockaddr *)&ss, len));
    CHECK_ERRNO(connect(c, (struct sockaddr *)&ss, len), EISCONN);
    int s = (int)OK(accept(l, NULL, NULL));
    CHECK_ERRNO(connect(s, (struct sockaddr *)&ss, len), EISCONN);
    close(c);
    close(s);
    close(l);
}

TEST(connect_on_listener_eisconn)
{
    int l = tl_listener(FAM_INET, 4);
    struct sockaddr_storage ss;
    socklen_t len = tl_name(l, &ss);
    CHECK_ERRNO(connect(l, (struct sockaddr *)&ss, len), EISCONN);
    close(l);
}

static void reserve_unlistened(int fam, int *fd, struct sockaddr_storage *ss, socklen_t *len)
{
    *fd = tl_bound(fam, SOCK_STREAM); /* bound, never listening */
    *len = tl_name(*fd, ss);
}

TEST_FAM(connect_refused_blocking)
{
    int r;
    struct sockaddr_storage ss;
    socklen_t len;
    reserve_unlistened(fam, &r, &ss, &len);
    int c = (int)OK(socket(tl_domain(fam), SOCK_STREAM, 0));
    CHECK_ERRNO(connect(c, (struct sockaddr *)&ss, len), ECONNREFUSED);
    CHECK_EQ(tl_so_error(c), 0); /* the error was returned, not left pending */
    if (is_inet(fam)) {
        /* a TCP socket may connect again after a refusal */
        OK(listen(r, 4));
        OK(connect(c, (struct sockaddr *)&ss, len));
        int s = (int)OK(accept(r, NULL, NULL));
        close(s);
    }
    close(c);
    close(r);
}

TEST_FAM(connect_refused_nonblocking)
{
    int r;
    struct sockaddr_storage ss;
    socklen_t len;
    reserve_unlistened(fam, &r, &ss, &len);
    int c = (int)OK(socket(tl_domain(fam), SOCK_STREAM | SOCK_NONBLOCK, 0));
    if (is_inet(fam)) {
        CHECK_ERRNO(connect(c, (struct sockaddr *)&ss, len), EINPROGRESS);
        short re = tl_poll1(c, POLLOUT | POLLIN, 5000);
        CHECK(re & POLLERR);
        CHECK(re & POLLHUP);
        CHECK_EQ(tl_so_error(c), ECONNREFUSED);
        CHECK_EQ(tl_so_error(c), 0); /* reading SO_ERROR clears it */
    } else {
        CHECK_ERRNO(connect(c, (struct sockaddr *)&ss, len), ECONNREFUSED);
    }
    close(c);
    close(r);
}

/* After a non-blocking connect fails in the background, the socket stays
 * "connecting" (SS_CONNECTING) until a connect() reports the failure:
 * __inet_stream_connect finds TCP_CLOSE and returns sock_error(), the
 * pending ECONNREFUSED, and only the connect() after that starts a new
 * attempt. Programs check a connect's outcome that way (haproxy). */
TEST_FAM(connect_again_reports_a_background_refusal)
{
    if (!is_inet(fam))
        return; /* AF_UNIX refuses at once: nothing happens in the background */
    int r;
    struct sockaddr_storage ss;
    socklen_t len;
    reserve_unlistened(fam, &r, &ss, &len);
    int c = (int)OK(socket(tl_domain(fam), SOCK_STREAM | SOCK_NONBLOCK, 0));
    CHECK_ERRNO(connect(c, (struct sockaddr *)&ss, len), EINPROGRESS);
    CHECK(tl_poll1(c, POLLOUT, 5000) & POLLERR);
    CHECK_ERRNO(connect(c, (struct sockaddr *)&ss, len), ECONNREFUSED);
    CHECK_EQ(tl_so_error(c), 0); /* connect() took it */
    /* the next connect() is a new attempt, refused in the background again */
    CHECK_ERRNO(connect(c, (struct sockaddr *)&ss, len), EINPROGRESS);
    CHECK(tl_poll1(c, POLLOUT, 5000) & POLLERR);
    /* a listener now: after the failure is reported, a connect succeeds */
    OK(listen(r, 4));
    CHECK_ERRNO(connect(c, (struct sockaddr *)&ss, len), ECONNREFUSED);
    int rc = connect(c, (struct sockaddr *)&ss, len);
    CHECK(rc == 0 || errno == EINPROGRESS);
    CHECK(tl_poll1(c, POLLOUT, 5000) & POLLOUT);
    CHECK_EQ(tl_so_error(c), 0);
    int s = (int)OK(accept(r, NULL, NULL));
    close(s);
    close(c);
    close(r);
}

/* As above when SO_ERROR already took the refusal: connect() still reports
 * that the attempt failed, as ECONNABORTED (sock_error() is 0), once. */
TEST_FAM(connect_again_after_so_error_is_econnaborted)
{
    if (!is_inet(fam))
        return;
    int r;
    struct sockaddr_storage ss;
    socklen_t len;
    reserve_unlistened(fam, &r, &ss, &len);
    int c = (int)OK(socket(tl_domain(fam), SOCK_STREAM | SOCK_NONBLOCK, 0));
    CHECK_ERRNO(connect(c, (struct sockaddr *)&ss, len), EINPROGRESS);
    CHECK(tl_poll1(c, POLLOUT, 5000) & POLLERR);
    CHECK_EQ(tl_so_error(c), ECONNREFUSED);
    CHECK_ERRNO(connect(c, (struct sockaddr *)&ss, len), ECONNABORTED);
    CHECK_ERRNO(connect(c, (struct sockaddr *)&ss, len), EINPROGRESS);
    close(c);
    close(r);
}

TEST(connect_unix_missing_names)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int c = (int)OK(socket(AF_UNIX, SOCK_STREAM, 0));
    tl_addr(FAM_UNIX, &ss, &len); /* a path nobody bound */
    CHECK_ERRNO(connect(c, (struct sockaddr *)&ss, len), ENOENT);
    tl_addr(FAM_ABSTRACT, &ss, &len); /* an abstract name nobody bound */
    CHECK_ERRNO(connect(c, (struct sockaddr *)&ss, len), ECONNREFUSED);
    close(c);
    c = (int)OK(socket(AF_UNIX, SOCK_DGRAM, 0));
    CHECK_ERRNO(connect(c, (struct sockaddr *)&ss, len), ECONNREFUSED);
    CHECK_ERRNO(sendto(c, "x", 1, 0, (struct sockaddr *)&ss, len), ECONNREFUSED);
    close(c);
}

/* Linux: a pathname bound by a socket of another type gives EPROTOTYPE; an
 * abstract name is looked up per type, so it is simply not found. */
TEST(connect_unix_wrong_type)
{
    for (int fam = FAM_UNIX; fam <= FAM_ABSTRACT; fam++) {
        int want = fam == FAM_UNIX ? EPROTOTYPE : ECONNREFUSED;
        int d = tl_bound(fam, SOCK_DGRAM);
        struct sockaddr_storage ss;
        socklen_t len = tl_name(d, &ss);
        int c = (int)OK(socket(AF_UNIX, SOCK_STREAM, 0));
        CHECK_ERRNO(connect(c, (struct sockaddr *)&ss, len), want);
        close(c);
        int l = tl_listener(fam, 1);
        len = tl_name(l, &ss);
        c = (int)OK(socket(AF_UNIX, SOCK_DGRAM, 0));
        CHECK_ERRNO(connect(c, (struct sockaddr *)&ss, len), want);
        close(c);
        close(l);
        close(d);
    }
}

TEST(connect_bad_address)
{
    struct sockaddr_storage s4, s6;
    socklen_t l4, l6;
    tl_addr(FAM_INET, &s4, &l4);
    tl_addr(FAM_INET6, &s6, &l6);
    int c = (int)OK(socket(AF_INET, SOCK_STREAM, 0));
    CHECK_ERRNO(connect(c, (struct sockaddr *)&s4, l4 - 1), EINVAL);
    CHECK_ERRNO(connect(c, (struct sockaddr *)&s6, l6), EAFNOSUPPORT);
    CHECK_ERRNO(connect(c, (struct sockaddr *)tl_bad_ptr(), l4), EFAULT);
    close(c);
    c = (int)OK(socket(AF_INET6, SOCK_STREAM, 0));
    CHECK_ERRNO(connect(c, (struct sockaddr *)&s6, 8), EINVAL);
    close(c);
    c = (int)OK(socket(AF_UNIX, SOCK_STREAM, 0));
    struct sockaddr_storage sus; /* room for the too-long length below */
    struct sockaddr_un *su = (struct sockaddr_un *)&sus;
    memset(&sus, 0, sizeof sus);
    su->sun_family = AF_INET;
    strcpy(su->sun_path, "/nonexistent");
    CHECK_ERRNO(connect(c, (struct sockaddr *)su, sizeof *su), EINVAL);
    su->sun_family = AF_UNIX;
    CHECK_ERRNO(connect(c, (struct sockaddr *)su, sizeof *su + 1), EINVAL);
    close(c);
}

/* listen(fd, 1): with several connects not all complete before accept;
 * they complete as accept makes room.  On Linux loopback TCP the accept
 * queue holds backlog+1 connections and further SYNs are dropped (the
 * client stays in SYN_SENT and retries after ~1 s); on AF_UNIX a further
 * non-blocking connect fails with EAGAIN. */
TEST_FAM(listen_backlog_honoured)
{
    enum { K = 5 };
    int l = tl_listener(fam, 1);
    struct sockaddr_storage ss;
    socklen_t len = tl_name(l, &ss);
    int c[K], done[K] = {0}, ndone = 0;
    int first_pending = -1;
    for (int i = 0; i < K; i++) {
        c[i] = (int)OK(socket(tl_domain(fam), SOCK_STREAM | SOCK_NONBLOCK, 0));
        errno = 0;
        int r = connect(c[i], (struct sockaddr *)&ss, len);
        if (is_inet(fam)) {
            CHECK(r == -1 && errno == EINPROGRESS);
            /* give the handshake ample time to finish if it can */
            short re = tl_poll1(c[i], POLLOUT, 300);
            CHECK_EQ(re & POLLERR, 0);
            if (re & POLLOUT) {
                done[i] = 1;
                ndone++;
            } else if (first_pending < 0) {
                first_pending = i;
            }
        } else {
            if (r == 0) {
                done[i] = 1;
                ndone++;
            } else {
                CHECK_EQ(errno, EAGAIN);
                if (first_pending < 0)
                    first_pending = i;
                close(c[i]);
                c[i] = -1;
            }
        }
    }
    CHECK_MSG(ndone >= 1, "no connection completed");
    CHECK_MSG(ndone < K, "all %d connections completed with listen(fd, 1)", K);
    if (is_inet(fam)) {
        /* a connect still in progress: EALREADY */
        CHECK_ERRNO(connect(c[first_pending], (struct sockaddr *)&ss, len), EALREADY);
    }
    /* every completed connection is in the accept queue */
    OK(fcntl(l, F_SETFL, O_NONBLOCK));
    int acc[K], nacc = 0;
    for (int i = 0; i < ndone; i++)
        acc[nacc++] = (int)OK(accept(l, NULL, NULL));
    if (is_inet(fam)) {
        /* with room made, the pending ones complete (SYN retry) */
        OK(fcntl(l, F_SETFL, 0));
        for (int i = 0; i < K; i++) {
            if (done[i])
                continue;
            if (nacc < K)
                acc[nacc++] = (int)OK(accept(l, NULL, NULL));
            short re = tl_poll1(c[i], POLLOUT, 8000);
            CHECK(re & POLLOUT);
            CHECK_EQ(tl_so_error(c[i]), 0);
        }
        CHECK_EQ(nacc, K);
    } else {
        /* room again: a new connect succeeds */
        int n = (int)OK(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0));
        OK(connect(n, (struct sockaddr *)&ss, len));
        close(n);
    }
    for (int i = 0; i < nacc; i++)
        close(acc[i]);
    for (int i = 0; i < K; i++)
        if (c[i] >= 0)
            close(c[i]);
    close(l);
}

TEST_FAM(pending_connection_reset_when_listener_closes)
{
    int l = tl_listener(fam, 4);
    struct sockaddr_storage ss;
    socklen_t len = tl_name(l, &ss);
    int c = (int)OK(socket(tl_domain(fam), SOCK_STREAM, 0));
    OK(connect(c, (struct sockaddr *)&ss, len));
    OK(close(l)); /* never accepted */
    char ch;
    CHECK(tl_poll1(c, POLLIN, 3000) & POLLIN);
    CHECK_ERRNO(recv(c, &ch, 1, 0), ECONNRESET);
    close(c);
}

TEST(connect_inet6_to_v4_listener_fails)
{
    /* an AF_INET6 socket cannot reach a 127.0.0.1-only listener via ::1 */
    int l = tl_listener(FAM_INET, 4);
    struct sockaddr_storage ss;
    tl_name(l, &ss);
    struct sockaddr_in6 a6;
    memset(&a6, 0, sizeof a6);
    a6.sin6_family = AF_INET6;
    a6.sin6_addr = in6addr_loopback;
    a6.sin6_port = ((struct sockaddr_in *)&ss)->sin_port;
    int c = (int)OK(socket(AF_INET6, SOCK_STREAM, 0));
    CHECK_ERRNO(connect(c, (struct sockaddr *)&a6, sizeof a6), ECONNREFUSED);
    close(c);
    close(l);
}

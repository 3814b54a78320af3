/*
 * t_calls.c - issue 13, class 6: calls, pointers and signals.
 *
 *  - splice() with a socket on either side (TCP and UDP), blocking and
 *    not; tee(), vmsplice(), copy_file_range() and sendfile() with sockets:
 *    the kernel's errnos, no hang;
 *  - recvmmsg()/sendmmsg(): timeouts (checked after each datagram, as
 *    recvmmsg(2)'s BUGS say), MSG_WAITFORONE, partial results and where
 *    the error goes;
 *  - every bad pointer or length, socklen_t * included, and socketpair's
 *    sv: EFAULT or EINVAL, never a crash (a SIGSEGV is caught and fails
 *    the case);
 *  - signals: EINTR without SA_RESTART, a restarted call with it, never a
 *    restart when the socket has a timeout, and poll/epoll/select always
 *    EINTR;
 *  - an option level a socket does not have: EOPNOTSUPP or ENOPROTOOPT as
 *    the kernel says (compared with a kernel socket).
 */
#include "testlib.h"

#include <setjmp.h>
#include <sys/epoll.h>
#include <sys/sendfile.h>
#include <sys/syscall.h>

static int sock(int fam, int type) { return (int)OK(socket(tl_domain(fam), type, 0)); }

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

static void join_within(pthread_t t, int secs, const char *what)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += secs;
    CHECK_MSG(pthread_timedjoin_np(t, NULL, &until) == 0, "%s: still blocked after %d s", what,
              secs);
}

/* ---- splice and friends --------------------------------------------------- */

TEST_INET(splice_tcp_both_ways)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    int p[2];
    OK(pipe(p));
    char buf[64];
    CHECK_EQ(OK(send(c, "hello", 5, 0)), 5);
    wait_inq(s, 5);
    CHECK_EQ(OK(splice(s, NULL, p[1], NULL, 100, 0)), 5);
    CHECK_EQ(OK(read(p[0], buf, sizeof buf)), 5);
    CHECK(memcmp(buf, "hello", 5) == 0);
    CHECK_EQ(OK(write(p[1], "world", 5)), 5);
    CHECK_EQ(OK(splice(p[0], NULL, c, NULL, 100, 0)), 5);
    wait_inq(s, 5);
    CHECK_EQ(OK(recv(s, buf, sizeof buf, 0)), 5);
    CHECK(memcmp(buf, "world", 5) == 0);
    /* a non-blocking socket with nothing to read */
    OK(fcntl(s, F_SETFL, O_NONBLOCK));
    CHECK_ERRNO(splice(s, NULL, p[1], NULL, 100, 0), EAGAIN);
    OK(fcntl(s, F_SETFL, 0));
    /* EOF */
    OK(shutdown(c, SHUT_WR));
    CHECK_EQ(OK(splice(s, NULL, p[1], NULL, 100, 0)), 0);
    OK(close(c));
    OK(close(s));
    OK(close(p[0]));
    OK(close(p[1]));
}

struct splicer {
    int from, to, tid;
    ssize_t r;
    int e;
};

static void *do_splice(void *arg)
{
    struct splicer *sp = arg;
    __atomic_store_n(&sp->tid, tl_gettid(), __ATOMIC_RELEASE);
    errno = 0;
    sp->r = splice(sp->from, NULL, sp->to, NULL, 100, 0);
    sp->e = errno;
    return NULL;
}

TEST_INET(splice_waits_for_data)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    int p[2];
    OK(pipe(p));
    struct splicer sp = {.from = s, .to = p[1]};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, do_splice, &sp), 0);
    while (__atomic_load_n(&sp.tid, __ATOMIC_ACQUIRE) == 0)
        tl_sleep_ms(1);
    tl_wait_blocked(sp.tid);
    CHECK_EQ(OK(send(c, "late", 4, 0)), 4);
    join_within(t, 10, "splice");
    CHECK_MSG(sp.r == 4, "splice returned %zd (%s)", sp.r, tl_errname(sp.e));
    OK(close(c));
    OK(close(s));
    OK(close(p[0]));
    OK(close(p[1]));
}

TEST_INET(splice_udp)
{
    int a, b;
    tl_dgram_pair(fam, &a, &b);
    int p[2];
    OK(pipe(p));
    char buf[64];
    /* one datagram per splice out of a socket */
    CHECK_EQ(OK(send(a, "d1", 2, 0)), 2);
    CHECK_EQ(OK(send(a, "dd2", 3, 0)), 3);
    CHECK(tl_poll1(b, POLLIN, 5000) & POLLIN);
    CHECK_EQ(OK(splice(b, NULL, p[1], NULL, 100, 0)), 2);
    CHECK_EQ(OK(read(p[0], buf, sizeof buf)), 2);
    CHECK(tl_poll1(b, POLLIN, 5000) & POLLIN);
    CHECK_EQ(OK(splice(b, NULL, p[1], NULL, 100, 0)), 3);
    CHECK_EQ(OK(read(p[0], buf, sizeof buf)), 3);
    /* what the pipe holds goes as one datagram */
    CHECK_EQ(OK(write(p[1], "ab", 2)), 2);
    CHECK_EQ(OK(write(p[1], "cd", 2)), 2);
    CHECK_EQ(OK(splice(p[0], NULL, a, NULL, 100, 0)), 4);
    CHECK(tl_poll1(b, POLLIN, 5000) & POLLIN);
    CHECK_EQ(OK(recv(b, buf, sizeof buf, 0)), 4);
    CHECK(memcmp(buf, "abcd", 4) == 0);
    /* an unconnected socket has nowhere to send it */
    int u = sock(fam, SOCK_DGRAM);
    CHECK_EQ(OK(write(p[1], "x", 1)), 1);
    CHECK_ERRNO(splice(p[0], NULL, u, NULL, 10, 0), EDESTADDRREQ);
    OK(close(u));
    OK(close(a));
    OK(close(b));
    OK(close(p[0]));
    OK(close(p[1]));
}

TEST_INET(splice_listener_and_unconnected)
{
    int l = tl_listener(fam, 1);
    int p[2];
    OK(pipe(p));
    OK(fcntl(l, F_SETFL, O_NONBLOCK));
    CHECK_ERRNO(splice(l, NULL, p[1], NULL, 10, 0), ENOTCONN);
    CHECK_EQ(OK(write(p[1], "x", 1)), 1);
    CHECK_ERRNO(splice(p[0], NULL, l, NULL, 10, 0), EPIPE);
    OK(close(l));
    OK(close(p[0]));
    OK(close(p[1]));
}

/* tee() wants two pipes, vmsplice() a pipe, copy_file_range() files, and
 * sendfile() a file to read: with a socket in their place, the kernel's
 * errnos. */
TEST_INET(tee_vmsplice_copy_file_range_sendfile_errnos)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    int p[2];
    OK(pipe(p));
    CHECK_ERRNO(tee(s, p[1], 10, 0), EINVAL);
    CHECK_ERRNO(tee(p[0], s, 10, 0), EINVAL);
    struct iovec iov = {"ab", 2};
    CHECK_ERRNO(vmsplice(s, &iov, 1, 0), EBADF);
    char path[] = "/tmp/usock-cfr-XXXXXX";
    int f = (int)OK(mkstemp(path));
    unlink(path);
    CHECK_EQ(OK(write(f, "file", 4)), 4);
    CHECK_ERRNO(copy_file_range(s, NULL, c, NULL, 10, 0), EINVAL);
    loff_t off = 0;
    CHECK_ERRNO(copy_file_range(f, &off, s, NULL, 4, 0), EINVAL);
    CHECK_ERRNO(copy_file_range(s, NULL, f, NULL, 4, 0), EINVAL);
    CHECK_ERRNO(sendfile(c, s, NULL, 10), EINVAL);
    CHECK_ERRNO(sendfile(f, s, NULL, 10), EINVAL);
    OK(close(f));
    OK(close(c));
    OK(close(s));
    OK(close(p[0]));
    OK(close(p[1]));
}

/* ---- recvmmsg / sendmmsg ----------------------------------------------------- */

#define NM 4
struct mm {
    char bufs[NM][16];
    struct iovec iov[NM];
    struct mmsghdr m[NM];
};

static void mm_init(struct mm *x)
{
    memset(x, 0, sizeof *x);
    for (int i = 0; i < NM; i++) {
        x->iov[i].iov_base = x->bufs[i];
        x->iov[i].iov_len = sizeof x->bufs[i];
        x->m[i].msg_hdr.msg_iov = &x->iov[i];
        x->m[i].msg_hdr.msg_iovlen = 1;
    }
}

/* n datagrams from a to b. Loopback delivers a datagram within its send
 * (both for the kernel and for the library); the first one's arrival is
 * awaited, and a short pause lets a deferred delivery of the rest finish
 * (as t_extra's sendmmsg_recvmmsg_udp does). */
static void queue_dgrams(int a, int b, int n)
{
    for (int i = 0; i < n; i++)
        CHECK_EQ(OK(send(a, "abc", 3, 0)), 3);
    CHECK(tl_poll1(b, POLLIN, 5000) & POLLIN);
    tl_sleep_ms(20);
}

TEST_INET(recvmmsg_zero_timeout_gives_one)
{
    int a, b;
    tl_dgram_pair(fam, &a, &b);
    queue_dgrams(a, b, 3);
    struct mm x;
    mm_init(&x);
    /* the timeout is checked after each datagram: already over after one */
    struct timespec ts = {0, 0};
    CHECK_EQ(OK(recvmmsg(b, x.m, NM, 0, &ts)), 1);
    CHECK_EQ(x.m[0].msg_len, 3);
    CHECK_EQ(ts.tv_sec, 0);
    CHECK_EQ(ts.tv_nsec, 0);
    /* MSG_WAITFORONE: what is there, without waiting for more */
    CHECK_EQ(OK(recvmmsg(b, x.m, NM, MSG_WAITFORONE, NULL)), 2);
    CHECK_ERRNO(recvmmsg(b, x.m, NM, MSG_DONTWAIT, NULL), EAGAIN);
    CHECK_EQ(OK(recvmmsg(b, x.m, 0, MSG_DONTWAIT, NULL)), 0);
    OK(close(a));
    OK(close(b));
}

TEST_INET(recvmmsg_timeout_left_is_written_back)
{
    int a, b;
    tl_dgram_pair(fam, &a, &b);
    queue_dgrams(a, b, 3);
    struct mm x;
    mm_init(&x);
    struct timespec ts = {5, 0};
    CHECK_EQ(OK(recvmmsg(b, x.m, 3, 0, &ts)), 3);
    /* what is left of it: less than the 5 s given, not negative */
    CHECK(ts.tv_sec >= 0 && ts.tv_sec < 5);
    CHECK(ts.tv_nsec >= 0 && ts.tv_nsec < 1000000000);
    OK(close(a));
    OK(close(b));
}

TEST_INET(recvmmsg_bad_timeouts)
{
    int a, b;
    tl_dgram_pair(fam, &a, &b);
    struct mm x;
    mm_init(&x);
    struct timespec ts = {0, 1000000000};
    CHECK_ERRNO(recvmmsg(b, x.m, 2, MSG_DONTWAIT, &ts), EINVAL);
    ts.tv_nsec = -1;
    CHECK_ERRNO(recvmmsg(b, x.m, 2, MSG_DONTWAIT, &ts), EINVAL);
    ts.tv_sec = -1;
    ts.tv_nsec = 0;
    CHECK_ERRNO(recvmmsg(b, x.m, 2, MSG_DONTWAIT, &ts), EINVAL);
    CHECK_ERRNO(recvmmsg(b, x.m, 2, MSG_DONTWAIT, tl_bad_ptr()), EFAULT);
    CHECK_ERRNO(recvmmsg(b, tl_bad_ptr(), 2, MSG_DONTWAIT, NULL), EFAULT);
    OK(close(a));
    OK(close(b));
}

/* An error after some datagrams: those are returned, the datagram that
 * met the error is lost, and the error comes from the next call (it is
 * the socket's pending error). */
TEST_INET(recvmmsg_partial_then_error)
{
    int a, b;
    tl_dgram_pair(fam, &a, &b);
    queue_dgrams(a, b, 3);
    struct mm x;
    mm_init(&x);
    x.iov[1].iov_base = tl_bad_ptr();
    CHECK_EQ(OK(recvmmsg(b, x.m, 3, MSG_DONTWAIT, NULL)), 1);
    char buf[8];
    CHECK_ERRNO(recv(b, buf, sizeof buf, MSG_DONTWAIT), EFAULT);
    CHECK_EQ(OK(recv(b, buf, sizeof buf, MSG_DONTWAIT)), 3); /* the third */
    CHECK_ERRNO(recv(b, buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
    /* the pending error is SO_ERROR's too */
    queue_dgrams(a, b, 2);
    CHECK_EQ(OK(recvmmsg(b, x.m, 3, MSG_DONTWAIT, NULL)), 1);
    CHECK_EQ(tl_so_error(b), EFAULT);
    OK(close(a));
    OK(close(b));
}

struct late_sender {
    int fd, wait_tid;
};

static void *send_when_blocked(void *arg)
{
    struct late_sender *ls = arg;
    while (__atomic_load_n(&ls->wait_tid, __ATOMIC_ACQUIRE) == 0)
        tl_sleep_ms(1);
    tl_wait_blocked(ls->wait_tid);
    CHECK_EQ(OK(send(ls->fd, "late", 4, 0)), 4);
    return NULL;
}

/* recvmmsg(2), BUGS: the timeout is only looked at after a datagram; with
 * fewer queued than asked, the call waits for the next one past it. */
TEST_INET(recvmmsg_waits_past_its_timeout_for_a_datagram)
{
    int a, b;
    tl_dgram_pair(fam, &a, &b);
    queue_dgrams(a, b, 1);
    struct late_sender ls = {.fd = a};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, send_when_blocked, &ls), 0);
    struct mm x;
    mm_init(&x);
    struct timespec ts = {0, 100000000};
    __atomic_store_n(&ls.wait_tid, tl_gettid(), __ATOMIC_RELEASE);
    CHECK_EQ(OK(recvmmsg(b, x.m, 2, 0, &ts)), 2);
    join_within(t, 10, "sender");
    OK(close(a));
    OK(close(b));
}

TEST_INET(sendmmsg_partial_results)
{
    int a, b;
    tl_dgram_pair(fam, &a, &b);
    struct mm x;
    mm_init(&x);
    for (int i = 0; i < NM; i++)
        x.iov[i].iov_len = 3;
    x.iov[1].iov_base = tl_bad_ptr();
    /* the first went, the second failed: 1, and the error is dropped */
    CHECK_EQ(OK(sendmmsg(a, x.m, 3, 0)), 1);
    CHECK_EQ(x.m[0].msg_len, 3);
    CHECK_EQ(tl_so_error(a), 0);
    /* failing at the first: the error */
    x.iov[0].iov_base = tl_bad_ptr();
    CHECK_ERRNO(sendmmsg(a, x.m, 3, 0), EFAULT);
    CHECK_EQ(OK(sendmmsg(a, x.m, 0, 0)), 0);
    CHECK_ERRNO(sendmmsg(a, tl_bad_ptr(), 2, 0), EFAULT);
    int u = sock(fam, SOCK_DGRAM);
    mm_init(&x);
    CHECK_ERRNO(sendmmsg(u, x.m, 2, 0), EDESTADDRREQ);
    OK(close(u));
    /* on a stream: each message's bytes, in order */
    int c, s;
    tl_stream_pair(fam, &c, &s);
    mm_init(&x);
    for (int i = 0; i < 3; i++) {
        x.bufs[i][0] = (char)('1' + i);
        x.iov[i].iov_len = 1;
    }
    CHECK_EQ(OK(sendmmsg(c, x.m, 3, 0)), 3);
    char buf[3];
    CHECK_EQ(tl_read_all(s, buf, 3), 3);
    CHECK(memcmp(buf, "123", 3) == 0);
    OK(close(c));
    OK(close(s));
    OK(close(a));
    OK(close(b));
}

/* ---- bad pointers and lengths -------------------------------------------------- */

/* A crash in a call made under NO_CRASH fails the case (tl_fail leaves the
 * handler for the test runner) instead of killing the program. */
static const char *volatile crash_what;
static volatile int crash_line;

static void on_crash(int sig)
{
    if (crash_what)
        tl_fail(__FILE__, crash_line, "%s: killed by signal %d (%s)", crash_what, sig,
                strsignal(sig));
    signal(sig, SIG_DFL);
    raise(sig);
}

static void guard_crashes(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_crash;
    sa.sa_flags = SA_NODEFER;
    OK(sigaction(SIGSEGV, &sa, NULL));
    OK(sigaction(SIGBUS, &sa, NULL));
}

/* The call must fail with errno e, not crash. */
#define NO_CRASH(call, e)                                                                  \
    do {                                                                                   \
        guard_crashes();                                                                   \
        crash_what = #call;                                                                \
        crash_line = __LINE__;                                                             \
        CHECK_ERRNO(call, e);                                                              \
        crash_what = NULL;                                                                 \
    } while (0)

/* The sanitizers' interceptors read some of these arguments themselves
 * before the system call (the socklen_t of getsockname/getpeername/accept,
 * sendmsg's msghdr): there a bad pointer crashes in the sanitizer, whose
 * answer is not the kernel's, so those checks run in the plain builds
 * only. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZER_READS_ARGS 1
#else
#define SANITIZER_READS_ARGS 0
#endif

/* Counts and lengths the compiler must not see as constants. */
static volatile int minus_one = -1, uio_max_plus_one = 1025;

TEST_INET(bad_socket_addresses)
{
    void *bad = tl_bad_ptr();
    for (int t = 0; t < 2; t++) {
        int type = t ? SOCK_DGRAM : SOCK_STREAM;
        int fd = sock(fam, type);
        NO_CRASH(bind(fd, bad, sizeof(struct sockaddr_in6)), EFAULT);
        NO_CRASH(connect(fd, bad, sizeof(struct sockaddr_in6)), EFAULT);
        struct sockaddr_storage ss;
        socklen_t sl = tl_loop(fam, &ss, 0);
        NO_CRASH(bind(fd, (struct sockaddr *)&ss, 0), EINVAL);
        NO_CRASH(bind(fd, (struct sockaddr *)&ss, sizeof ss + 1), EINVAL);
        NO_CRASH(connect(fd, (struct sockaddr *)&ss, (socklen_t)-1), EINVAL);
        NO_CRASH(bind(fd, NULL, sl), EFAULT);
        if (type == SOCK_DGRAM) {
            NO_CRASH(sendto(fd, "x", 1, 0, bad, sizeof(struct sockaddr_in6)), EFAULT);
            NO_CRASH(sendto(fd, "x", 1, 0, (struct sockaddr *)&ss, sizeof ss + 1), EINVAL);
        }
        OK(close(fd));
    }
}

TEST_INET(bad_socklen_pointers)
{
    void *bad = tl_bad_ptr();
    int c, s;
    tl_stream_pair(fam, &c, &s);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (!SANITIZER_READS_ARGS) {
        NO_CRASH(getsockname(c, (struct sockaddr *)&ss, bad), EFAULT);
        NO_CRASH(getsockname(c, (struct sockaddr *)&ss, NULL), EFAULT);
        NO_CRASH(getpeername(c, (struct sockaddr *)&ss, bad), EFAULT);
        NO_CRASH(getpeername(c, (struct sockaddr *)&ss, NULL), EFAULT);
    }
    NO_CRASH(getsockname(c, bad, &sl), EFAULT);
    sl = sizeof ss;
    NO_CRASH(getpeername(c, bad, &sl), EFAULT);
    sl = (socklen_t)-1;
    NO_CRASH(getsockname(c, (struct sockaddr *)&ss, &sl), EINVAL);
    int v;
    NO_CRASH(getsockopt(c, SOL_SOCKET, SO_TYPE, &v, bad), EFAULT);
    NO_CRASH(getsockopt(c, SOL_SOCKET, SO_TYPE, &v, NULL), EFAULT);
    sl = sizeof v;
    NO_CRASH(getsockopt(c, SOL_SOCKET, SO_TYPE, bad, &sl), EFAULT);
    NO_CRASH(getsockopt(c, IPPROTO_TCP, TCP_NODELAY, &v, bad), EFAULT);
    sl = sizeof v;
    NO_CRASH(getsockopt(c, IPPROTO_TCP, TCP_NODELAY, bad, &sl), EFAULT);
    int lvl = fam == FAM_INET ? IPPROTO_IP : IPPROTO_IPV6;
    int opt = fam == FAM_INET ? IP_TTL : IPV6_UNICAST_HOPS;
    NO_CRASH(getsockopt(c, lvl, opt, &v, bad), EFAULT);
    NO_CRASH(setsockopt(c, SOL_SOCKET, SO_KEEPALIVE, bad, sizeof(int)), EFAULT);
    NO_CRASH(setsockopt(c, SOL_SOCKET, SO_KEEPALIVE, NULL, sizeof(int)), EFAULT);
    NO_CRASH(setsockopt(c, SOL_SOCKET, SO_KEEPALIVE, &v, 1), EINVAL);
    NO_CRASH(setsockopt(c, IPPROTO_TCP, TCP_NODELAY, bad, sizeof(int)), EFAULT);
    NO_CRASH(setsockopt(c, lvl, opt, bad, sizeof(int)), EFAULT);
    /* recvfrom's address length */
    int a, b;
    tl_dgram_pair(fam, &a, &b);
    CHECK_EQ(OK(send(a, "x", 1, 0)), 1);
    CHECK(tl_poll1(b, POLLIN, 5000) & POLLIN);
    char ch;
    NO_CRASH(recvfrom(b, &ch, 1, 0, (struct sockaddr *)&ss, bad), EFAULT);
    OK(close(a));
    OK(close(b));
    OK(close(c));
    OK(close(s));
}

/* accept() takes the connection before it writes the address out: a bad
 * address or length pointer gives EFAULT and the connection is gone. */
TEST_INET(bad_accept_pointers)
{
    if (SANITIZER_READS_ARGS)
        return; /* the sanitizers' accept() reads both itself */
    void *bad = tl_bad_ptr();
    int l = tl_listener(fam, 4);
    struct sockaddr_storage ss;
    socklen_t sl = tl_name(l, &ss);
    for (int i = 0; i < 2; i++) {
        int c = sock(fam, SOCK_STREAM);
        OK(connect(c, (struct sockaddr *)&ss, sl));
        CHECK(tl_poll1(l, POLLIN, 5000) & POLLIN);
        struct sockaddr_storage peer;
        socklen_t pl = sizeof peer;
        if (i == 0)
            NO_CRASH(accept(l, (struct sockaddr *)&peer, bad), EFAULT);
        else
            NO_CRASH(accept(l, bad, &pl), EFAULT);
        CHECK_EQ(tl_poll1(l, POLLIN, 0), 0);
        CHECK(tl_poll1(c, POLLIN, 5000) & (POLLIN | POLLHUP | POLLERR));
        OK(close(c));
    }
    OK(close(l));
}

TEST_INET(bad_data_buffers)
{
    void *bad = tl_bad_ptr();
    int c, s;
    tl_stream_pair(fam, &c, &s);
    NO_CRASH(send(c, bad, 10, 0), EFAULT);
    NO_CRASH(write(c, bad, 10), EFAULT);
    CHECK_EQ(OK(send(c, "0123456789", 10, 0)), 10);
    wait_inq(s, 10);
    NO_CRASH(recv(s, bad, 10, 0), EFAULT);
    NO_CRASH(read(s, bad, 10), EFAULT);
    struct iovec iov[2] = {{bad, 5}, {bad, 5}};
    NO_CRASH(readv(s, iov, 2), EFAULT);
    NO_CRASH(writev(c, iov, 2), EFAULT);
    NO_CRASH(readv(s, bad, 2), EFAULT);
    NO_CRASH(writev(c, bad, 2), EFAULT);
    NO_CRASH(readv(s, iov, minus_one), EINVAL);
    NO_CRASH(writev(c, iov, uio_max_plus_one), EINVAL);
    int a, b;
    tl_dgram_pair(fam, &a, &b);
    NO_CRASH(send(a, bad, 10, 0), EFAULT);
    OK(close(a));
    OK(close(b));
    OK(close(c));
    OK(close(s));
}

TEST_INET(bad_msghdrs)
{
    void *bad = tl_bad_ptr();
    int a, b;
    tl_dgram_pair(fam, &a, &b);
    char buf[8];
    struct iovec iov = {buf, sizeof buf};
    if (SANITIZER_READS_ARGS) {
        OK(close(a));
        OK(close(b));
        return;
    }
    NO_CRASH(sendmsg(a, bad, 0), EFAULT);
    NO_CRASH(recvmsg(b, bad, MSG_DONTWAIT), EFAULT);
    struct msghdr m;
    memset(&m, 0, sizeof m);
    m.msg_iov = bad;
    m.msg_iovlen = 1;
    NO_CRASH(sendmsg(a, &m, 0), EFAULT);
    m.msg_iov = &iov;
    m.msg_iovlen = 1025;
    NO_CRASH(sendmsg(a, &m, 0), EMSGSIZE);
    m.msg_iovlen = 1;
    m.msg_name = bad;
    m.msg_namelen = sizeof(struct sockaddr_in6);
    NO_CRASH(sendmsg(a, &m, 0), EFAULT);
    /* a msg_namelen past sockaddr_storage is cut down to it (not sendto's
     * EINVAL) */
    struct sockaddr_storage ss;
    tl_name(b, &ss);
    m.msg_name = &ss;
    m.msg_namelen = sizeof ss + 1;
    CHECK_EQ(OK(sendmsg(a, &m, 0)), (long)sizeof buf);
    CHECK(tl_poll1(b, POLLIN, 5000) & POLLIN);
    CHECK_EQ(OK(recv(b, buf, sizeof buf, 0)), (long)sizeof buf);
    m.msg_name = NULL;
    m.msg_namelen = 0;
    m.msg_control = bad;
    m.msg_controllen = 64;
    NO_CRASH(sendmsg(a, &m, 0), EFAULT);
    /* a control buffer too short for a cmsg header holds no cmsg: ignored */
    char ctl[8] = {0};
    m.msg_control = ctl;
    m.msg_controllen = sizeof ctl;
    CHECK_EQ(OK(sendmsg(a, &m, 0)), (long)sizeof buf);
    CHECK(tl_poll1(b, POLLIN, 5000) & POLLIN);
    CHECK_EQ(OK(recv(b, buf, sizeof buf, 0)), (long)sizeof buf);
    /* receiving into bad places */
    CHECK_EQ(OK(send(a, "x", 1, 0)), 1);
    CHECK(tl_poll1(b, POLLIN, 5000) & POLLIN);
    memset(&m, 0, sizeof m);
    m.msg_iov = bad;
    m.msg_iovlen = 1;
    NO_CRASH(recvmsg(b, &m, MSG_DONTWAIT), EFAULT);
    OK(close(a));
    OK(close(b));
}

TEST(bad_socketpair_sv)
{
    int lowest = tl_lowest_free_fd();
    NO_CRASH(socketpair(AF_UNIX, SOCK_STREAM, 0, tl_bad_ptr()), EFAULT);
    NO_CRASH(socketpair(AF_UNIX, SOCK_STREAM, 0, NULL), EFAULT);
    NO_CRASH(socketpair(AF_UNIX, SOCK_DGRAM, 0, tl_bad_ptr()), EFAULT);
    CHECK_EQ(tl_lowest_free_fd(), lowest); /* nothing leaked */
}

TEST_INET(bad_poll_select_epoll_ioctl)
{
    void *bad = tl_bad_ptr();
    int c, s;
    tl_stream_pair(fam, &c, &s);
    NO_CRASH(poll(bad, 1, 0), EFAULT);
    NO_CRASH(select(c + 1, bad, NULL, NULL, &(struct timeval){0, 0}), EFAULT);
    /* (select's timeout is read by libc itself: not tried) */
    int ep = (int)OK(epoll_create1(0));
    NO_CRASH(epoll_ctl(ep, EPOLL_CTL_ADD, c, bad), EFAULT);
    struct epoll_event ev = {.events = EPOLLOUT, .data.fd = c};
    OK(epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev));
    NO_CRASH(epoll_wait(ep, bad, 1, 0), EFAULT);
    NO_CRASH(epoll_wait(ep, &ev, 0, 0), EINVAL);
    OK(close(ep));
    NO_CRASH(ioctl(c, FIONREAD, bad), EFAULT);
    NO_CRASH(ioctl(c, FIONBIO, bad), EFAULT);
    NO_CRASH(ioctl(c, SIOCGIFCONF, bad), EFAULT);
    OK(close(c));
    OK(close(s));
}

/* ---- signals ------------------------------------------------------------------ */

/* counted by the interrupted thread's handler, read by the main thread */
static int handled;
static void on_usr1(int sig)
{
    (void)sig;
    __atomic_add_fetch(&handled, 1, __ATOMIC_SEQ_CST);
}

static void handle_usr1(int restart, struct sigaction *old)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = restart ? SA_RESTART : 0;
    OK(sigaction(SIGUSR1, &sa, old));
    __atomic_store_n(&handled, 0, __ATOMIC_SEQ_CST);
}

/* A thread blocked in a call: the main thread interrupts it with SIGUSR1
 * (again until it was handled while blocked), then may complete the wait
 * (data, a connection...) with finish(). */
struct blocked {
    long (*call)(void *);
    void *arg;
    int tid;
    long r;
    int e;
    int done;
};

static void *run_blocked(void *p)
{
    struct blocked *b = p;
    __atomic_store_n(&b->tid, tl_gettid(), __ATOMIC_RELEASE);
    errno = 0;
    b->r = b->call(b->arg);
    b->e = errno;
    __atomic_store_n(&b->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

/* Starts call in a thread, waits until it blocks, signals it, and once the
 * call either ended or is blocked again (restarted), lets finish() complete
 * it; returns when it ended, its handler having run. (Under TSan a
 * handler may only run once the call returns: it is checked at the end.) */
static void interrupt(struct blocked *b, void (*finish)(void *), void *farg)
{
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, run_blocked, b), 0);
    while (__atomic_load_n(&b->tid, __ATOMIC_ACQUIRE) == 0)
        tl_sleep_ms(1);
    tl_wait_blocked(b->tid);
    CHECK_EQ(pthread_kill(t, SIGUSR1), 0);
    /* a handler runs at once (under TSan only when the call returns) */
    long deadline = tl_now_ms() + 500;
    while (!__atomic_load_n(&b->done, __ATOMIC_ACQUIRE) &&
           __atomic_load_n(&handled, __ATOMIC_SEQ_CST) == 0 && tl_now_ms() < deadline)
        tl_sleep_ms(1);
    if (!__atomic_load_n(&b->done, __ATOMIC_ACQUIRE)) {
        /* restarted (or the handler is still to run): blocked again */
        long until = tl_now_ms() + 200;
        while (!__atomic_load_n(&b->done, __ATOMIC_ACQUIRE) && tl_now_ms() < until)
            tl_sleep_ms(5);
        if (!__atomic_load_n(&b->done, __ATOMIC_ACQUIRE)) {
            tl_wait_blocked(b->tid);
            if (finish)
                finish(farg);
        }
    }
    join_within(t, 10, "interrupted call");
    CHECK_MSG(__atomic_load_n(&handled, __ATOMIC_SEQ_CST) > 0, "the signal was never handled");
}

struct recv_arg {
    int fd;
    char buf[8];
};
static long call_recv(void *p)
{
    struct recv_arg *r = p;
    return recv(r->fd, r->buf, sizeof r->buf, 0);
}
static void send_one(void *p) { CHECK_EQ(OK(send(*(int *)p, "x", 1, 0)), 1); }

TEST_INET(signal_interrupts_recv)
{
    struct sigaction old;
    for (int t = 0; t < 2; t++) {
        int a, b;
        if (t)
            tl_dgram_pair(fam, &a, &b);
        else
            tl_stream_pair(fam, &a, &b);
        handle_usr1(0, &old);
        struct recv_arg ra = {.fd = b};
        struct blocked bl = {.call = call_recv, .arg = &ra};
        interrupt(&bl, send_one, &a);
        CHECK_MSG(bl.r == -1 && bl.e == EINTR, "%s recv: %ld/%s, expected EINTR",
                  t ? "udp" : "tcp", bl.r, tl_errname(bl.e));
        OK(sigaction(SIGUSR1, &old, NULL));
        OK(close(a));
        OK(close(b));
    }
}

TEST_INET(sa_restart_restarts_recv)
{
    struct sigaction old;
    for (int t = 0; t < 2; t++) {
        int a, b;
        if (t)
            tl_dgram_pair(fam, &a, &b);
        else
            tl_stream_pair(fam, &a, &b);
        handle_usr1(1, &old);
        struct recv_arg ra = {.fd = b};
        struct blocked bl = {.call = call_recv, .arg = &ra};
        interrupt(&bl, send_one, &a);
        CHECK_MSG(bl.r == 1, "%s recv with SA_RESTART: %ld/%s, expected 1 byte",
                  t ? "udp" : "tcp", bl.r, tl_errname(bl.e));
        OK(sigaction(SIGUSR1, &old, NULL));
        OK(close(a));
        OK(close(b));
    }
}

/* socket(7)/signal(7): with SO_RCVTIMEO set, never restarted. */
TEST_INET(so_rcvtimeo_is_never_restarted)
{
    struct sigaction old;
    int a, b;
    tl_stream_pair(fam, &a, &b);
    struct timeval tv = {8, 0};
    OK(setsockopt(b, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    handle_usr1(1, &old);
    struct recv_arg ra = {.fd = b};
    struct blocked bl = {.call = call_recv, .arg = &ra};
    interrupt(&bl, send_one, &a);
    CHECK_MSG(bl.r == -1 && bl.e == EINTR, "recv: %ld/%s, expected EINTR", bl.r,
              tl_errname(bl.e));
    OK(sigaction(SIGUSR1, &old, NULL));
    OK(close(a));
    OK(close(b));
}

static long call_accept(void *p) { return accept(*(int *)p, NULL, NULL); }
struct conn_to {
    int fam;
    struct sockaddr_storage ss;
    socklen_t sl;
    int fd;
};
static void connect_one(void *p)
{
    struct conn_to *ct = p;
    ct->fd = sock(ct->fam, SOCK_STREAM);
    OK(connect(ct->fd, (struct sockaddr *)&ct->ss, ct->sl));
}

TEST_INET(signals_and_accept)
{
    struct sigaction old;
    for (int restart = 0; restart < 2; restart++) {
        int l = tl_listener(fam, 4);
        struct conn_to ct = {.fam = fam, .fd = -1};
        ct.sl = tl_name(l, &ct.ss);
        handle_usr1(restart, &old);
        struct blocked bl = {.call = call_accept, .arg = &l};
        interrupt(&bl, connect_one, &ct);
        if (restart)
            CHECK_MSG(bl.r >= 0, "accept with SA_RESTART: %s", tl_errname(bl.e));
        else
            CHECK_MSG(bl.r == -1 && bl.e == EINTR, "accept: %ld/%s, expected EINTR", bl.r,
                      tl_errname(bl.e));
        OK(sigaction(SIGUSR1, &old, NULL));
        if (bl.r >= 0)
            OK(close((int)bl.r));
        if (ct.fd >= 0)
            OK(close(ct.fd));
        OK(close(l));
    }
}

/* A connect() waiting for room in a full listen queue. */
static long call_connect(void *p)
{
    struct conn_to *ct = p;
    return connect(ct->fd, (struct sockaddr *)&ct->ss, ct->sl);
}
static void accept_all(void *p)
{
    int l = *(int *)p;
    OK(close((int)OK(accept(l, NULL, NULL))));
}

TEST_INET(signals_and_connect)
{
    struct sigaction old;
    for (int restart = 0; restart < 2; restart++) {
        int l = tl_listener(fam, 0);
        struct conn_to ct = {.fam = fam};
        ct.sl = tl_name(l, &ct.ss);
        int first = sock(fam, SOCK_STREAM);
        OK(connect(first, (struct sockaddr *)&ct.ss, ct.sl)); /* the queue is full now */
        ct.fd = sock(fam, SOCK_STREAM);
        handle_usr1(restart, &old);
        struct blocked bl = {.call = call_connect, .arg = &ct};
        interrupt(&bl, accept_all, &l);
        if (restart) {
            CHECK_MSG(bl.r == 0, "connect with SA_RESTART: %ld/%s", bl.r, tl_errname(bl.e));
        } else {
            CHECK_MSG(bl.r == -1 && bl.e == EINTR, "connect: %ld/%s, expected EINTR", bl.r,
                      tl_errname(bl.e));
            /* the attempt goes on: room in the queue lets it finish */
            OK(close((int)OK(accept(l, NULL, NULL))));
            CHECK(tl_poll1(ct.fd, POLLOUT, 10000) & POLLOUT);
            CHECK_EQ(tl_so_error(ct.fd), 0);
            OK(connect(ct.fd, (struct sockaddr *)&ct.ss, ct.sl)); /* the outcome */
            CHECK_ERRNO(connect(ct.fd, (struct sockaddr *)&ct.ss, ct.sl), EISCONN);
        }
        OK(sigaction(SIGUSR1, &old, NULL));
        OK(close(first));
        OK(close(ct.fd));
        OK(close(l));
    }
}

/* A send() blocked on a full buffer, nothing of it sent yet. */
struct send_arg {
    int fd;
};
static long call_send(void *p)
{
    static char buf[4096];
    return send(((struct send_arg *)p)->fd, buf, sizeof buf, 0);
}
static void drain(void *p)
{
    int s = *(int *)p;
    static char buf[65536];
    while (recv(s, buf, sizeof buf, MSG_DONTWAIT) > 0) {
    }
}

static void fill(int c)
{
    tl_fill_sndbuf(c, 200);
    /* not writable is not full: take the last bytes too */
    OK(fcntl(c, F_SETFL, O_NONBLOCK));
    long deadline = tl_now_ms() + 10000;
    while (send(c, "x", 1, 0) == 1)
        CHECK(tl_now_ms() < deadline);
    CHECK_EQ(errno, EAGAIN);
    OK(fcntl(c, F_SETFL, 0));
}

TEST_INET(signals_and_a_blocked_send)
{
    struct sigaction old;
    for (int mode = 0; mode < 3; mode++) { /* 0: plain, 1: SA_RESTART, 2: SO_SNDTIMEO too */
        int c, s;
        tl_stream_pair(fam, &c, &s);
        if (mode == 2) {
            struct timeval tv = {8, 0};
            OK(setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv));
        }
        fill(c);
        handle_usr1(mode != 0, &old);
        struct send_arg sa = {c};
        struct blocked bl = {.call = call_send, .arg = &sa};
        interrupt(&bl, drain, &s);
        if (mode == 1)
            CHECK_MSG(bl.r == 4096, "send with SA_RESTART: %ld/%s", bl.r, tl_errname(bl.e));
        else
            CHECK_MSG(bl.r == -1 && bl.e == EINTR, "send (mode %d): %ld/%s, expected EINTR",
                      mode, bl.r, tl_errname(bl.e));
        OK(sigaction(SIGUSR1, &old, NULL));
        OK(close(c));
        OK(close(s));
    }
}

/* poll(), epoll_wait() and select() are never restarted. */
struct pollers {
    int fd, ep, which;
};
static long call_poller(void *p)
{
    struct pollers *pp = p;
    if (pp->which == 0) {
        struct pollfd pf = {pp->fd, POLLIN, 0};
        return poll(&pf, 1, 8000);
    }
    if (pp->which == 1) {
        struct epoll_event ev;
        return epoll_wait(pp->ep, &ev, 1, 8000);
    }
    fd_set r;
    FD_ZERO(&r);
    FD_SET(pp->fd, &r);
    struct timeval tv = {8, 0};
    return select(pp->fd + 1, &r, NULL, NULL, &tv);
}

TEST_INET(poll_epoll_select_always_eintr)
{
    struct sigaction old;
    int a, b;
    tl_stream_pair(fam, &a, &b);
    int ep = (int)OK(epoll_create1(0));
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = b};
    OK(epoll_ctl(ep, EPOLL_CTL_ADD, b, &ev));
    static const char *names[3] = {"poll", "epoll_wait", "select"};
    for (int w = 0; w < 3; w++) {
        handle_usr1(1, &old);
        struct pollers pp = {b, ep, w};
        struct blocked bl = {.call = call_poller, .arg = &pp};
        interrupt(&bl, send_one, &a);
        CHECK_MSG(bl.r == -1 && bl.e == EINTR, "%s with SA_RESTART: %ld/%s, expected EINTR",
                  names[w], bl.r, tl_errname(bl.e));
        OK(sigaction(SIGUSR1, &old, NULL));
    }
    OK(close(ep));
    OK(close(a));
    OK(close(b));
}

/* ---- option levels a socket does not have ------------------------------------------ */

/* (IPPROTO_ICMP is 1, which is SOL_SOCKET: not a level of its own here) */
static void levels_like_kernel(int domain, int type)
{
    static const int levels[][2] = {
        {SOL_SOCKET, 9999},   {IPPROTO_IP, 9999}, {IPPROTO_IPV6, 9999}, {IPPROTO_TCP, 9999},
        {IPPROTO_UDP, 9999},  {IPPROTO_TCP, 1},   {IPPROTO_UDP, 1},     {IPPROTO_IP, 1},
        {IPPROTO_IPV6, 26},   {255, 1},           {12345, 1},           {263, 1},
        {IPPROTO_ICMPV6, 1},  {282, 1},           {IPPROTO_SCTP, 1},    {IPPROTO_UDPLITE, 10},
        {-1, 1},
    };
    static const int v[] = {0, 1};
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++)
        tl_opt_like_kernel(domain, type, levels[i][0], levels[i][1], v, 2, 1);
}

TEST(bad_levels_tcp4) { levels_like_kernel(AF_INET, SOCK_STREAM); }
TEST(bad_levels_udp4) { levels_like_kernel(AF_INET, SOCK_DGRAM); }
TEST(bad_levels_tcp6) { levels_like_kernel(AF_INET6, SOCK_STREAM); }
TEST(bad_levels_udp6) { levels_like_kernel(AF_INET6, SOCK_DGRAM); }
TEST(bad_levels_unix_stream) { levels_like_kernel(AF_UNIX, SOCK_STREAM); }
TEST(bad_levels_unix_dgram) { levels_like_kernel(AF_UNIX, SOCK_DGRAM); }

/*
 * t_unix_io.c - AF_UNIX streams and datagrams as Linux has them (issue
 * 14): POLLHUP/POLLRDHUP and reads after the peer's close, ECONNRESET,
 * SHUT_RD/SHUT_WR and EPIPE, SIGPIPE against MSG_NOSIGNAL, EMSGSIZE over
 * the send buffer, the datagram receive queue limit
 * (net.unix.max_dgram_qlen) with blocking and non-blocking senders,
 * SO_SNDBUF/SO_RCVBUF defaults and limits, SIOCINQ/SIOCOUTQ/TIOCOUTQ,
 * recvmmsg's timeout, sendto on connected and unconnected streams,
 * blocking calls woken by close and shutdown, SO_PEEK_OFF, MSG_OOB, the
 * socket types AF_UNIX accepts.
 * The kernel is the specification: net/unix/af_unix.c (unix_poll,
 * unix_dgram_poll, unix_shutdown, unix_release_sock, unix_dgram_sendmsg,
 * unix_stream_sendmsg, unix_ioctl, unix_inq_len, unix_outq_len),
 * net/socket.c (do_recvmmsg), net/core/sock.c (SO_SNDBUF/SO_RCVBUF).
 * Values that are configuration are read from /proc/sys.
 * No timing is asserted: timeouts are upper bounds that turn a hang into
 * a failure, or (SO_SNDTIMEO) the way to see that a call blocked.
 */
#include "testlib.h"

#include <grp.h>
#include <linux/sockios.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>

#define NOBODY 65534

static short events_now(int fd)
{
    return (short)(tl_poll1(fd, POLLIN | POLLOUT | POLLRDHUP | POLLPRI, 0) &
                   (POLLIN | POLLOUT | POLLHUP | POLLERR | POLLRDHUP | POLLPRI | POLLNVAL));
}

static int get_int(int fd, int level, int name)
{
    int v = -1;
    socklen_t l = sizeof v;
    OK(getsockopt(fd, level, name, &v, &l));
    return v;
}

static void set_int(int fd, int level, int name, int v)
{
    OK(setsockopt(fd, level, name, &v, sizeof v));
}

static void set_timeo(int fd, int name, long ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    OK(setsockopt(fd, SOL_SOCKET, name, &tv, sizeof tv));
}

/* ---- the peer's close ---------------------------------------------------- */

TEST_UNIX(io_stream_peer_close_pollhup_and_eof)
{
    int a, b;
    tl_unix_pair(how, SOCK_STREAM, &a, &b);
    int ep = (int)OK(epoll_create1(EPOLL_CLOEXEC));
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP, .data.fd = b};
    OK(epoll_ctl(ep, EPOLL_CTL_ADD, b, &ev));
    CHECK_EQ(events_now(b), POLLOUT);
    CHECK_EQ(OK(send(a, "bye", 3, 0)), 3);
    OK(close(a));
    /* hang-up (both directions), read hang-up, and the data still there */
    CHECK_EQ(events_now(b), POLLIN | POLLOUT | POLLHUP | POLLRDHUP);
    struct epoll_event out;
    CHECK_EQ(OK(epoll_wait(ep, &out, 1, 0)), 1);
    CHECK_EQ(out.events, EPOLLIN | EPOLLOUT | EPOLLHUP | EPOLLRDHUP);
    char buf[8];
    CHECK_EQ(OK(read(b, buf, sizeof buf)), 3);
    CHECK_EQ(OK(read(b, buf, sizeof buf)), 0);
    CHECK_EQ(OK(recv(b, buf, sizeof buf, 0)), 0);
    CHECK_EQ(OK(recv(b, buf, sizeof buf, MSG_DONTWAIT)), 0);
    CHECK_EQ(OK(recv(b, buf, sizeof buf, MSG_PEEK)), 0);
    CHECK_ERRNO(write(b, "x", 1), EPIPE);
    CHECK_EQ(tl_so_error(b), 0);
    /* the name of the peer that left is still there */
    struct sockaddr_storage ss;
    socklen_t l = sizeof ss;
    OK(getpeername(b, (struct sockaddr *)&ss, &l));
    close(ep);
    close(b);
}

TEST_UNIX(io_stream_peer_close_with_unread_data_resets)
{
    int a, b;
    tl_unix_pair(how, SOCK_STREAM, &a, &b);
    CHECK_EQ(OK(send(b, "unread", 6, 0)), 6);
    CHECK_EQ(OK(send(a, "mine", 4, 0)), 4);
    /* a goes away with b's bytes unread: b sees ECONNRESET (once) after
     * what a had sent */
    OK(close(a));
    CHECK_EQ(events_now(b), POLLIN | POLLOUT | POLLHUP | POLLRDHUP | POLLERR);
    char buf[8];
    CHECK_EQ(OK(recv(b, buf, sizeof buf, 0)), 4);
    CHECK_ERRNO(recv(b, buf, sizeof buf, 0), ECONNRESET);
    CHECK_EQ(OK(recv(b, buf, sizeof buf, 0)), 0);
    CHECK_EQ(tl_so_error(b), 0);
    CHECK_ERRNO(send(b, "x", 1, 0), EPIPE);
    close(b);
}

/* ---- shutdown ------------------------------------------------------------ */

TEST_UNIX(io_stream_shut_wr)
{
    int a, b;
    tl_unix_pair(how, SOCK_STREAM, &a, &b);
    CHECK_EQ(OK(send(a, "last", 4, 0)), 4);
    OK(shutdown(a, SHUT_WR));
    CHECK_EQ(events_now(a), POLLOUT);
    CHECK_EQ(events_now(b), POLLIN | POLLOUT | POLLRDHUP);
    char buf[8];
    CHECK_EQ(OK(recv(b, buf, sizeof buf, 0)), 4);
    CHECK_EQ(OK(recv(b, buf, sizeof buf, 0)), 0);
    CHECK_ERRNO(send(a, "x", 1, 0), EPIPE);
    /* the other way is open */
    CHECK_EQ(OK(send(b, "back", 4, 0)), 4);
    CHECK_EQ(OK(recv(a, buf, sizeof buf, 0)), 4);
    /* both ways shut: POLLHUP */
    OK(shutdown(b, SHUT_WR));
    CHECK_EQ(events_now(a), POLLIN | POLLOUT | POLLHUP | POLLRDHUP);
    CHECK_EQ(events_now(b), POLLIN | POLLOUT | POLLHUP | POLLRDHUP);
    CHECK_EQ(OK(recv(a, buf, sizeof buf, 0)), 0);
    /* shutting again is fine */
    OK(shutdown(a, SHUT_RDWR));
    CHECK_ERRNO(shutdown(a, 3), EINVAL);
    CHECK_ERRNO(shutdown(a, -1), EINVAL);
    close(a);
    close(b);
}

TEST_UNIX(io_stream_shut_rd)
{
    int a, b;
    tl_unix_pair(how, SOCK_STREAM, &a, &b);
    CHECK_EQ(OK(send(a, "queued", 6, 0)), 6);
    OK(shutdown(b, SHUT_RD));
    /* what was queued stays readable, then 0 */
    CHECK_EQ(events_now(b), POLLIN | POLLOUT | POLLRDHUP);
    char buf[8];
    CHECK_EQ(OK(recv(b, buf, sizeof buf, 0)), 6);
    CHECK_EQ(OK(recv(b, buf, sizeof buf, 0)), 0);
    /* the peer may no longer write: EPIPE */
    CHECK_ERRNO(send(a, "x", 1, 0), EPIPE);
    CHECK_EQ(events_now(a), POLLOUT);
    /* b still writes */
    CHECK_EQ(OK(send(b, "ok", 2, 0)), 2);
    CHECK_EQ(OK(recv(a, buf, sizeof buf, 0)), 2);
    close(a);
    close(b);
}

TEST(io_dgram_shutdown)
{
    /* shutdown of an unconnected datagram socket succeeds (no ENOTCONN) */
    int d = (int)OK(socket(AF_UNIX, SOCK_DGRAM, 0));
    OK(shutdown(d, SHUT_RDWR));
    close(d);
    int a, b;
    tl_unix_pair(UX_ABSTRACT, SOCK_DGRAM, &a, &b);
    OK(shutdown(a, SHUT_WR));
    CHECK_ERRNO(send(a, "x", 1, 0), EPIPE);
    struct sockaddr_storage bn;
    socklen_t bl = tl_name(b, &bn);
    CHECK_ERRNO(sendto(a, "x", 1, 0, (struct sockaddr *)&bn, bl), EPIPE);
    close(a);
    close(b);
    /* a receiver that shut its reading side refuses datagrams (EPIPE,
     * no SIGPIPE), and its own reads find nothing (EAGAIN, not 0) */
    int r = tl_bound(FAM_ABSTRACT, SOCK_DGRAM);
    struct sockaddr_storage rn;
    socklen_t rl = tl_name(r, &rn);
    OK(shutdown(r, SHUT_RD));
    int c = (int)OK(socket(AF_UNIX, SOCK_DGRAM, 0));
    CHECK_ERRNO(sendto(c, "x", 1, 0, (struct sockaddr *)&rn, rl), EPIPE);
    char ch;
    CHECK_ERRNO(recv(r, &ch, 1, MSG_DONTWAIT), EAGAIN);
    close(r);
    close(c);
}

/* ---- SIGPIPE --------------------------------------------------------------- */

static atomic_int sigpipes;

static void on_sigpipe(int sig)
{
    (void)sig;
    atomic_fetch_add(&sigpipes, 1);
}

/* Streams raise SIGPIPE with EPIPE; seqpacket and datagram sockets give
 * EPIPE alone. */
static void sigpipe_case(int type)
{
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigpipe;
    OK(sigaction(SIGPIPE, &sa, &old));
    int sig = type == SOCK_STREAM;
    int sv[2];
    OK(socketpair(AF_UNIX, type, 0, sv));
    OK(shutdown(sv[0], SHUT_WR));
    atomic_store(&sigpipes, 0);
    /* the signal is sent to the writing thread before the call returns:
     * no waiting needed */
    CHECK_ERRNO(send(sv[0], "x", 1, 0), EPIPE);
    CHECK_EQ(atomic_load(&sigpipes), sig);
    CHECK_ERRNO(write(sv[0], "x", 1), EPIPE);
    CHECK_EQ(atomic_load(&sigpipes), 2 * sig);
    struct iovec v = {"x", 1};
    struct msghdr mh;
    memset(&mh, 0, sizeof mh);
    mh.msg_iov = &v;
    mh.msg_iovlen = 1;
    CHECK_ERRNO(sendmsg(sv[0], &mh, 0), EPIPE);
    CHECK_EQ(atomic_load(&sigpipes), 3 * sig);
    CHECK_ERRNO(send(sv[0], "x", 1, MSG_NOSIGNAL), EPIPE);
    CHECK_ERRNO(sendmsg(sv[0], &mh, MSG_NOSIGNAL), EPIPE);
    CHECK_EQ(atomic_load(&sigpipes), 3 * sig);
    close(sv[0]);
    close(sv[1]);
    /* a peer that closed */
    OK(socketpair(AF_UNIX, type, 0, sv));
    close(sv[1]);
    atomic_store(&sigpipes, 0);
    CHECK_ERRNO(send(sv[0], "x", 1, 0), type == SOCK_DGRAM ? ECONNREFUSED : EPIPE);
    CHECK_EQ(atomic_load(&sigpipes), type == SOCK_DGRAM ? 0 : sig);
    close(sv[0]);
    /* the peer's SHUT_RD (streams and seqpacket; a datagram pair's SHUT_RD
     * does not reach the sender) */
    if (type != SOCK_DGRAM) {
        OK(socketpair(AF_UNIX, type, 0, sv));
        OK(shutdown(sv[1], SHUT_RD));
        atomic_store(&sigpipes, 0);
        CHECK_ERRNO(send(sv[0], "x", 1, 0), EPIPE);
        CHECK_EQ(atomic_load(&sigpipes), sig);
        CHECK_ERRNO(send(sv[0], "x", 1, MSG_NOSIGNAL), EPIPE);
        CHECK_EQ(atomic_load(&sigpipes), sig);
        close(sv[0]);
        close(sv[1]);
    }
    OK(sigaction(SIGPIPE, &old, NULL));
}

TEST(io_sigpipe_stream)
{
    sigpipe_case(SOCK_STREAM);
}

TEST(io_sigpipe_none_for_dgram)
{
    sigpipe_case(SOCK_DGRAM);
}

TEST(io_sigpipe_none_for_seqpacket)
{
    sigpipe_case(SOCK_SEQPACKET);
}

/* ---- datagram sizes and queue limits ---------------------------------------- */

TEST_UNIX(io_dgram_emsgsize_over_sndbuf)
{
    int a, b;
    tl_unix_pair(how, SOCK_DGRAM, &a, &b);
    long wdef = tl_sysctl("/proc/sys/net/core/wmem_default");
    int sndbuf = get_int(a, SOL_SOCKET, SO_SNDBUF);
    CHECK_EQ(sndbuf, wdef);
    /* a datagram larger than the send buffer less 32 bytes never fits */
    size_t max = (size_t)sndbuf - 32;
    char *big = calloc(1, max + 1);
    CHECK(big != NULL);
    CHECK_ERRNO(send(a, big, max + 1, MSG_DONTWAIT), EMSGSIZE);
    CHECK_EQ(OK(send(a, big, max, MSG_DONTWAIT)), (long)max);
    CHECK_EQ(OK(recv(b, big, max + 1, 0)), (long)max);
    /* with a smaller buffer, the same rule */
    set_int(a, SOL_SOCKET, SO_SNDBUF, 8192);
    sndbuf = get_int(a, SOL_SOCKET, SO_SNDBUF);
    CHECK_EQ(sndbuf, 16384);
    CHECK_ERRNO(send(a, big, (size_t)sndbuf - 31, MSG_DONTWAIT), EMSGSIZE);
    CHECK_EQ(OK(send(a, big, (size_t)sndbuf - 32, MSG_DONTWAIT)), sndbuf - 32);
    free(big);
    close(a);
    close(b);
}

TEST(io_dgram_receive_queue_limit_nonblocking)
{
    long qlen = tl_sysctl("/proc/sys/net/unix/max_dgram_qlen");
    for (int fam = FAM_UNIX; fam <= FAM_ABSTRACT; fam++) {
        int r = tl_bound(fam, SOCK_DGRAM);
        struct sockaddr_storage rn;
        socklen_t rl = tl_name(r, &rn);
        /* a sender connected to the receiver (the receiver is not
         * connected back): the queue takes max_dgram_qlen + 1 */
        int s = (int)OK(socket(AF_UNIX, SOCK_DGRAM, 0));
        OK(connect(s, (struct sockaddr *)&rn, rl));
        for (long i = 0; i <= qlen; i++)
            CHECK_EQ(OK(send(s, "q", 1, MSG_DONTWAIT)), 1);
        CHECK_ERRNO(send(s, "q", 1, MSG_DONTWAIT), EAGAIN);
        /* the connected sender is not writable while the queue is full */
        CHECK_EQ(events_now(s), 0);
        /* another, unconnected sender meets the same full queue */
        int u = (int)OK(socket(AF_UNIX, SOCK_DGRAM, 0));
        CHECK_ERRNO(sendto(u, "u", 1, MSG_DONTWAIT, (struct sockaddr *)&rn, rl), EAGAIN);
        CHECK_EQ(events_now(u), POLLOUT);
        /* one read makes room for one */
        char c;
        CHECK_EQ(OK(recv(r, &c, 1, 0)), 1);
        CHECK_EQ(events_now(s), POLLOUT);
        CHECK_EQ(OK(sendto(u, "u", 1, MSG_DONTWAIT, (struct sockaddr *)&rn, rl)), 1);
        CHECK_ERRNO(send(s, "q", 1, MSG_DONTWAIT), EAGAIN);
        for (long i = 0; i <= qlen; i++)
            CHECK_EQ(OK(recv(r, &c, 1, MSG_DONTWAIT)), 1);
        CHECK_ERRNO(recv(r, &c, 1, MSG_DONTWAIT), EAGAIN);
        close(u);
        close(s);
        close(r);
    }
}

struct blocked_send {
    int fd;
    ssize_t r;
    int err;
};

static void *send_thread(void *p)
{
    struct blocked_send *bs = p;
    errno = 0;
    bs->r = send(bs->fd, "late", 4, 0);
    bs->err = errno;
    return NULL;
}

TEST(io_dgram_receive_queue_limit_blocks_sender)
{
    long qlen = tl_sysctl("/proc/sys/net/unix/max_dgram_qlen");
    int r = tl_bound(FAM_ABSTRACT, SOCK_DGRAM);
    struct sockaddr_storage rn;
    socklen_t rl = tl_name(r, &rn);
    int s = (int)OK(socket(AF_UNIX, SOCK_DGRAM, 0));
    OK(connect(s, (struct sockaddr *)&rn, rl));
    for (long i = 0; i <= qlen; i++)
        CHECK_EQ(OK(send(s, "q", 1, MSG_DONTWAIT)), 1);
    /* a blocking send waits for room: with SO_SNDTIMEO it gives up with
     * EAGAIN, and nothing was queued */
    set_timeo(s, SO_SNDTIMEO, 50);
    CHECK_ERRNO(send(s, "t", 1, 0), EAGAIN);
    /* it completes once the receiver reads (10 s: an upper bound) */
    set_timeo(s, SO_SNDTIMEO, 10000);
    struct blocked_send bs = {s, -2, 0};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, send_thread, &bs), 0);
    char buf[8];
    CHECK_EQ(OK(recv(r, buf, sizeof buf, 0)), 1);
    pthread_join(t, NULL);
    CHECK_EQ(bs.r, 4);
    for (long i = 0; i < qlen; i++)
        CHECK_EQ(OK(recv(r, buf, sizeof buf, MSG_DONTWAIT)), 1);
    CHECK_EQ(OK(recv(r, buf, sizeof buf, MSG_DONTWAIT)), 4);
    CHECK_ERRNO(recv(r, buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
    close(s);
    close(r);
}

TEST_UNIX(io_dgram_mutually_connected_not_limited_by_qlen)
{
    /* a receiver connected back to its sender does not apply the queue
     * limit: only the sender's buffer stops it */
    long qlen = tl_sysctl("/proc/sys/net/unix/max_dgram_qlen");
    int a, b;
    tl_unix_pair(how, SOCK_DGRAM, &a, &b);
    long n = 0;
    while (n < 100000 && send(a, "m", 1, MSG_DONTWAIT) == 1)
        n++;
    CHECK_EQ(errno, EAGAIN);
    CHECK(n > qlen + 1);
    CHECK(n < 100000);
    CHECK_EQ(events_now(a), 0);
    char c;
    for (long i = 0; i < n; i++)
        CHECK_EQ(OK(recv(b, &c, 1, MSG_DONTWAIT)), 1);
    CHECK_EQ(events_now(a), POLLOUT);
    close(a);
    close(b);
}

/* ---- buffer sizes ------------------------------------------------------------ */

TEST(io_sndbuf_rcvbuf_defaults_and_limits)
{
    long wdef = tl_sysctl("/proc/sys/net/core/wmem_default");
    long rdef = tl_sysctl("/proc/sys/net/core/rmem_default");
    long wmax = tl_sysctl("/proc/sys/net/core/wmem_max");
    long rmax = tl_sysctl("/proc/sys/net/core/rmem_max");
    int types[3] = {SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET};
    for (int t = 0; t < 3; t++) {
        int fd = (int)OK(socket(AF_UNIX, types[t], 0));
        CHECK_EQ(get_int(fd, SOL_SOCKET, SO_SNDBUF), wdef);
        CHECK_EQ(get_int(fd, SOL_SOCKET, SO_RCVBUF), rdef);
        /* a request is doubled */
        set_int(fd, SOL_SOCKET, SO_SNDBUF, 65536);
        CHECK_EQ(get_int(fd, SOL_SOCKET, SO_SNDBUF), 131072);
        set_int(fd, SOL_SOCKET, SO_RCVBUF, 65536);
        CHECK_EQ(get_int(fd, SOL_SOCKET, SO_RCVBUF), 131072);
        /* capped at twice the maximum */
        set_int(fd, SOL_SOCKET, SO_SNDBUF, INT32_MAX);
        CHECK_EQ(get_int(fd, SOL_SOCKET, SO_SNDBUF), 2 * wmax);
        set_int(fd, SOL_SOCKET, SO_RCVBUF, INT32_MAX);
        CHECK_EQ(get_int(fd, SOL_SOCKET, SO_RCVBUF), 2 * rmax);
        /* and raised to a floor: 0 and 1 give the same minimum */
        set_int(fd, SOL_SOCKET, SO_SNDBUF, 0);
        int smin = get_int(fd, SOL_SOCKET, SO_SNDBUF);
        set_int(fd, SOL_SOCKET, SO_SNDBUF, 1);
        CHECK_EQ(get_int(fd, SOL_SOCKET, SO_SNDBUF), smin);
        /* -1 is taken as unsigned: the maximum */
        set_int(fd, SOL_SOCKET, SO_SNDBUF, -1);
        CHECK_EQ(get_int(fd, SOL_SOCKET, SO_SNDBUF), 2 * wmax);
        set_int(fd, SOL_SOCKET, SO_RCVBUF, 0);
        int rmin = get_int(fd, SOL_SOCKET, SO_RCVBUF);
        set_int(fd, SOL_SOCKET, SO_RCVBUF, 1);
        CHECK_EQ(get_int(fd, SOL_SOCKET, SO_RCVBUF), rmin);
        CHECK(smin > 0 && smin < 16384);
        CHECK(rmin > 0 && rmin < 16384);
        /* just above the floor's half: doubled as asked */
        set_int(fd, SOL_SOCKET, SO_SNDBUF, smin);
        CHECK_EQ(get_int(fd, SOL_SOCKET, SO_SNDBUF), 2 * smin);
        close(fd);
    }
}

TEST(io_buffer_force_as_root)
{
    if (geteuid() != 0)
        t_skip("root", "SO_SNDBUFFORCE/SO_RCVBUFFORCE need CAP_NET_ADMIN");
    long wmax = tl_sysctl("/proc/sys/net/core/wmem_max");
    long rmax = tl_sysctl("/proc/sys/net/core/rmem_max");
    int fd = (int)OK(socket(AF_UNIX, SOCK_STREAM, 0));
    /* past the maximum, doubled */
    int ws = (int)(wmax + 4096), rs = (int)(rmax + 4096);
    set_int(fd, SOL_SOCKET, SO_SNDBUFFORCE, ws);
    CHECK_EQ(get_int(fd, SOL_SOCKET, SO_SNDBUF), 2 * ws);
    set_int(fd, SOL_SOCKET, SO_RCVBUFFORCE, rs);
    CHECK_EQ(get_int(fd, SOL_SOCKET, SO_RCVBUF), 2 * rs);
    close(fd);
}

static void force_unprivileged(void *arg)
{
    (void)arg;
    if (geteuid() == 0) {
        OK(setgroups(0, NULL));
        OK(setresgid(NOBODY, NOBODY, NOBODY));
        OK(setresuid(NOBODY, NOBODY, NOBODY));
    }
    int fd = (int)OK(socket(AF_UNIX, SOCK_STREAM, 0));
    int v = 1 << 20;
    CHECK_ERRNO(setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof v), EPERM);
    CHECK_ERRNO(setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof v), EPERM);
    close(fd);
}

TEST(io_buffer_force_unprivileged_eperm)
{
    tl_child(force_unprivileged, NULL);
}

/* ---- queue ioctls -------------------------------------------------------------- */

TEST_UNIX_TYPES(io_siocinq_siocoutq)
{
    int a, b, n = -1;
    tl_unix_pair(how, type, &a, &b);
    OK(ioctl(b, SIOCINQ, &n));
    CHECK_EQ(n, 0);
    OK(ioctl(a, SIOCOUTQ, &n));
    CHECK_EQ(n, 0);
    CHECK_EQ(OK(send(a, "12345", 5, 0)), 5);
    CHECK_EQ(OK(send(a, "678", 3, 0)), 3);
    /* streams and seqpacket: all queued bytes; datagrams: the first */
    OK(ioctl(b, SIOCINQ, &n));
    CHECK_EQ(n, type == SOCK_DGRAM ? 5 : 8);
    OK(ioctl(b, FIONREAD, &n));
    CHECK_EQ(n, type == SOCK_DGRAM ? 5 : 8);
    /* the sender's queue: the memory the unread messages hold (kernel
     * accounting: at least their bytes), TIOCOUTQ the same request */
    int outq = -1, tout = -1;
    OK(ioctl(a, SIOCOUTQ, &outq));
    OK(ioctl(a, TIOCOUTQ, &tout));
    CHECK(outq >= 8);
    CHECK_EQ(tout, outq);
    char buf[8];
    CHECK_EQ(OK(recv(b, buf, type == SOCK_STREAM ? 5 : sizeof buf, 0)), 5);
    OK(ioctl(b, SIOCINQ, &n));
    CHECK_EQ(n, 3);
    CHECK_EQ(OK(recv(b, buf, sizeof buf, 0)), 3);
    OK(ioctl(b, SIOCINQ, &n));
    CHECK_EQ(n, 0);
    OK(ioctl(a, SIOCOUTQ, &n));
    CHECK_EQ(n, 0);
    close(a);
    close(b);
}

TEST(io_queue_ioctls_on_listener_and_unconnected)
{
    int l = tl_listener(FAM_ABSTRACT, 1);
    int n = -1;
    CHECK_ERRNO(ioctl(l, SIOCINQ, &n), EINVAL);
    /* SIOCOUTQ of a listener is its (empty) send accounting */
    OK(ioctl(l, SIOCOUTQ, &n));
    CHECK_EQ(n, 0);
    close(l);
    int s = (int)OK(socket(AF_UNIX, SOCK_STREAM, 0));
    OK(ioctl(s, SIOCINQ, &n));
    CHECK_EQ(n, 0);
    CHECK_ERRNO(ioctl(s, SIOCINQ, tl_bad_ptr()), EFAULT);
    close(s);
}

/* ---- recvmmsg ---------------------------------------------------------------- */

#define VLEN 5

struct mmsg {
    struct mmsghdr m[VLEN];
    struct iovec v[VLEN];
    char b[VLEN][16];
};

static struct mmsghdr *mmsg_init(struct mmsg *mm)
{
    memset(mm, 0, sizeof *mm);
    for (int i = 0; i < VLEN; i++) {
        mm->v[i].iov_base = mm->b[i];
        mm->v[i].iov_len = sizeof mm->b[i];
        mm->m[i].msg_hdr.msg_iov = &mm->v[i];
        mm->m[i].msg_hdr.msg_iovlen = 1;
    }
    return mm->m;
}

static void send3(int fd)
{
    CHECK_EQ(OK(send(fd, "m1", 2, 0)), 2);
    CHECK_EQ(OK(send(fd, "mm2", 3, 0)), 3);
    CHECK_EQ(OK(send(fd, "mmm3", 4, 0)), 4);
}

static void drain(int fd)
{
    char b[64];
    while (recv(fd, b, sizeof b, MSG_DONTWAIT) >= 0) {
    }
}

TEST(io_recvmmsg_timeouts)
{
    int sv[2];
    OK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
    struct mmsg mm;
    struct mmsghdr *m = mmsg_init(&mm);
    /* MSG_DONTWAIT: what is there */
    send3(sv[0]);
    CHECK_EQ(OK(recvmmsg(sv[1], m, VLEN, MSG_DONTWAIT, NULL)), 3);
    CHECK_EQ(m[0].msg_len, 2);
    CHECK_EQ(m[1].msg_len, 3);
    CHECK_EQ(m[2].msg_len, 4);
    CHECK(memcmp(mm.b[2], "mmm3", 4) == 0);
    CHECK_ERRNO(recvmmsg(sv[1], m, VLEN, MSG_DONTWAIT, NULL), EAGAIN);
    /* MSG_WAITFORONE: blocks for the first only */
    send3(sv[0]);
    m = mmsg_init(&mm);
    CHECK_EQ(OK(recvmmsg(sv[1], m, VLEN, MSG_WAITFORONE, NULL)), 3);
    /* vlen bounds the count */
    send3(sv[0]);
    m = mmsg_init(&mm);
    struct timespec ts = {5, 0};
    CHECK_EQ(OK(recvmmsg(sv[1], m, 2, 0, &ts)), 2);
    drain(sv[1]);
    /* the timeout is checked after each datagram: a zero timeout returns
     * after the first, even with more queued */
    send3(sv[0]);
    m = mmsg_init(&mm);
    ts.tv_sec = 0;
    ts.tv_nsec = 0;
    CHECK_EQ(OK(recvmmsg(sv[1], m, VLEN, 0, &ts)), 1);
    CHECK_EQ(m[0].msg_len, 2);
    drain(sv[1]);
    /* with a timeout and MSG_DONTWAIT: what is there, no wait */
    send3(sv[0]);
    m = mmsg_init(&mm);
    ts.tv_sec = 5;
    CHECK_EQ(OK(recvmmsg(sv[1], m, VLEN, MSG_DONTWAIT, &ts)), 3);
    /* the timeout does not bound the wait for the first datagram: on an
     * empty socket it is SO_RCVTIMEO that ends the call */
    set_timeo(sv[1], SO_RCVTIMEO, 50);
    ts.tv_sec = 0;
    ts.tv_nsec = 1000000;
    m = mmsg_init(&mm);
    CHECK_ERRNO(recvmmsg(sv[1], m, VLEN, 0, &ts), EAGAIN);
    /* bad timeouts */
    struct timespec bad = {0, 1000000000};
    CHECK_ERRNO(recvmmsg(sv[1], m, VLEN, MSG_DONTWAIT, &bad), EINVAL);
    bad.tv_sec = -1;
    bad.tv_nsec = 0;
    CHECK_ERRNO(recvmmsg(sv[1], m, VLEN, MSG_DONTWAIT, &bad), EINVAL);
    close(sv[0]);
    close(sv[1]);
}

TEST(io_sendmmsg_records)
{
    int types[2] = {SOCK_DGRAM, SOCK_SEQPACKET};
    for (int t = 0; t < 2; t++) {
        int sv[2];
        OK(socketpair(AF_UNIX, types[t], 0, sv));
        struct mmsghdr m[3];
        struct iovec v[3] = {{"a", 1}, {"bb", 2}, {"ccc", 3}};
        memset(m, 0, sizeof m);
        for (int i = 0; i < 3; i++) {
            m[i].msg_hdr.msg_iov = &v[i];
            m[i].msg_hdr.msg_iovlen = 1;
        }
        CHECK_EQ(OK(sendmmsg(sv[0], m, 3, 0)), 3);
        CHECK_EQ(m[2].msg_len, 3);
        char b[8];
        for (int i = 0; i < 3; i++)
            CHECK_EQ(OK(recv(sv[1], b, sizeof b, 0)), i + 1);
        close(sv[0]);
        close(sv[1]);
    }
}

/* ---- sendto on streams ------------------------------------------------------- */

TEST(io_sendto_on_streams)
{
    struct sockaddr_storage other;
    socklen_t ol;
    tl_addr(FAM_ABSTRACT, &other, &ol);
    for (int fam = FAM_UNIX; fam <= FAM_ABSTRACT; fam++) {
        int c, s;
        tl_stream_pair(fam, &c, &s);
        struct sockaddr_storage ln;
        socklen_t ll = tl_name(s, &ln);
        /* connected: an address is an error, even the peer's own */
        CHECK_ERRNO(sendto(c, "x", 1, 0, (struct sockaddr *)&other, ol), EISCONN);
        CHECK_ERRNO(sendto(c, "x", 1, 0, (struct sockaddr *)&ln, ll), EISCONN);
        CHECK_EQ(OK(sendto(c, "y", 1, 0, NULL, 0)), 1);
        char ch;
        CHECK_EQ(OK(recv(s, &ch, 1, 0)), 1);
        CHECK_EQ(ch, 'y');
        close(c);
        close(s);
    }
    /* not connected: EOPNOTSUPP with an address, ENOTCONN without */
    int u = (int)OK(socket(AF_UNIX, SOCK_STREAM, 0));
    CHECK_ERRNO(sendto(u, "x", 1, 0, (struct sockaddr *)&other, ol), EOPNOTSUPP);
    CHECK_ERRNO(send(u, "x", 1, 0), ENOTCONN);
    char ch;
    CHECK_ERRNO(recv(u, &ch, 1, MSG_DONTWAIT), EINVAL);
    close(u);
    /* a listener */
    int l = tl_listener(FAM_ABSTRACT, 1);
    CHECK_ERRNO(send(l, "x", 1, 0), ENOTCONN);
    CHECK_ERRNO(recv(l, &ch, 1, MSG_DONTWAIT), EINVAL);
    close(l);
}

/* ---- blocking calls woken ----------------------------------------------------- */

struct blocked_recv {
    int fd;
    ssize_t r;
    int err;
};

static void *recv_thread(void *p)
{
    struct blocked_recv *br = p;
    char buf[8];
    errno = 0;
    br->r = recv(br->fd, buf, sizeof buf, 0);
    br->err = errno;
    return NULL;
}

static void *accept_thread(void *p)
{
    struct blocked_recv *br = p;
    errno = 0;
    br->r = accept(br->fd, NULL, NULL);
    br->err = errno;
    return NULL;
}

TEST_UNIX(io_blocking_recv_woken_by_peer_close)
{
    int a, b;
    tl_unix_pair(how, SOCK_STREAM, &a, &b);
    set_timeo(b, SO_RCVTIMEO, 10000); /* an upper bound: a hang fails */
    struct blocked_recv br = {b, -2, 0};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, recv_thread, &br), 0);
    OK(close(a));
    pthread_join(t, NULL);
    CHECK_EQ(br.r, 0);
    close(b);
}

TEST(io_blocking_recv_woken_by_shutdown)
{
    for (int side = 0; side < 2; side++) {
        int sv[2];
        OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
        set_timeo(sv[1], SO_RCVTIMEO, 10000);
        struct blocked_recv br = {sv[1], -2, 0};
        pthread_t t;
        CHECK_EQ(pthread_create(&t, NULL, recv_thread, &br), 0);
        /* the reader's own SHUT_RD, or the writer's SHUT_WR */
        if (side == 0)
            OK(shutdown(sv[1], SHUT_RD));
        else
            OK(shutdown(sv[0], SHUT_WR));
        pthread_join(t, NULL);
        CHECK_EQ(br.r, 0);
        close(sv[0]);
        close(sv[1]);
    }
}

TEST(io_blocking_accept_woken_by_shutdown)
{
    int l = tl_listener(FAM_ABSTRACT, 4);
    set_timeo(l, SO_RCVTIMEO, 10000);
    struct blocked_recv br = {l, -2, 0};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, accept_thread, &br), 0);
    OK(shutdown(l, SHUT_RDWR));
    pthread_join(t, NULL);
    CHECK_EQ(br.r, -1);
    CHECK_EQ(br.err, EINVAL);
    close(l);
}

TEST(io_blocking_connect_backlog_full)
{
    for (int fam = FAM_UNIX; fam <= FAM_ABSTRACT; fam++) {
        int l = tl_listener(fam, 0);
        struct sockaddr_storage ss;
        socklen_t len = tl_name(l, &ss);
        /* backlog 0: one connection waits for accept; then the queue is full */
        int c1 = (int)OK(socket(AF_UNIX, SOCK_STREAM, 0));
        OK(connect(c1, (struct sockaddr *)&ss, len));
        int c2 = (int)OK(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0));
        CHECK_ERRNO(connect(c2, (struct sockaddr *)&ss, len), EAGAIN);
        /* a blocking connect waits: SO_SNDTIMEO ends it with EAGAIN */
        int c3 = (int)OK(socket(AF_UNIX, SOCK_STREAM, 0));
        set_timeo(c3, SO_SNDTIMEO, 50);
        CHECK_ERRNO(connect(c3, (struct sockaddr *)&ss, len), EAGAIN);
        int s = (int)OK(accept(l, NULL, NULL));
        OK(connect(c2, (struct sockaddr *)&ss, len));
        close(s);
        close(c1);
        close(c2);
        close(c3);
        close(l);
    }
}

TEST(io_dgram_pair_peer_close)
{
    int sv[2];
    OK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
    CHECK_EQ(OK(send(sv[0], "left", 4, 0)), 4);
    close(sv[0]);
    /* queued datagrams stay; no end of file for datagrams */
    char buf[8];
    CHECK_EQ(OK(recv(sv[1], buf, sizeof buf, 0)), 4);
    CHECK_ERRNO(recv(sv[1], buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
    CHECK_EQ(events_now(sv[1]), POLLOUT);
    CHECK_ERRNO(send(sv[1], "x", 1, 0), ECONNREFUSED);
    CHECK_ERRNO(send(sv[1], "x", 1, 0), ENOTCONN);
    close(sv[1]);
}

/* ---- streams: more of Linux ---------------------------------------------------- */

TEST_UNIX(io_stream_msg_waitall_short_at_eof)
{
    int a, b;
    tl_unix_pair(how, SOCK_STREAM, &a, &b);
    CHECK_EQ(OK(send(a, "abc", 3, 0)), 3);
    close(a);
    char buf[16];
    CHECK_EQ(OK(recv(b, buf, sizeof buf, MSG_WAITALL)), 3);
    CHECK_EQ(OK(recv(b, buf, sizeof buf, MSG_WAITALL)), 0);
    close(b);
}

TEST_UNIX_TYPES(io_so_peek_off)
{
    int a, b;
    tl_unix_pair(how, type, &a, &b);
    CHECK_EQ(get_int(b, SOL_SOCKET, SO_PEEK_OFF), -1);
    set_int(b, SOL_SOCKET, SO_PEEK_OFF, 0);
    CHECK_EQ(OK(send(a, "abcd", 4, 0)), 4);
    CHECK_EQ(OK(send(a, "efgh", 4, 0)), 4);
    char buf[8];
    if (type == SOCK_STREAM) {
        /* each peek goes on where the last stopped */
        CHECK_EQ(OK(recv(b, buf, 2, MSG_PEEK)), 2);
        CHECK(memcmp(buf, "ab", 2) == 0);
        CHECK_EQ(OK(recv(b, buf, 3, MSG_PEEK)), 3);
        CHECK(memcmp(buf, "cde", 3) == 0);
        CHECK_EQ(get_int(b, SOL_SOCKET, SO_PEEK_OFF), 5);
        /* a read takes from the start and moves the offset back */
        CHECK_EQ(OK(recv(b, buf, 4, 0)), 4);
        CHECK(memcmp(buf, "abcd", 4) == 0);
        CHECK_EQ(get_int(b, SOL_SOCKET, SO_PEEK_OFF), 1);
        CHECK_EQ(OK(recv(b, buf, 8, MSG_PEEK)), 3);
        CHECK(memcmp(buf, "fgh", 3) == 0);
    } else {
        /* within the first message */
        CHECK_EQ(OK(recv(b, buf, 2, MSG_PEEK)), 2);
        CHECK(memcmp(buf, "ab", 2) == 0);
        CHECK_EQ(OK(recv(b, buf, 8, MSG_PEEK)), 2);
        CHECK(memcmp(buf, "cd", 2) == 0);
        CHECK_EQ(get_int(b, SOL_SOCKET, SO_PEEK_OFF), 4);
        CHECK_EQ(OK(recv(b, buf, 8, 0)), 4);
        CHECK(memcmp(buf, "abcd", 4) == 0);
        CHECK_EQ(get_int(b, SOL_SOCKET, SO_PEEK_OFF), 0);
    }
    close(a);
    close(b);
}

/* Whether the kernel has AF_UNIX MSG_OOB (CONFIG_AF_UNIX_OOB), asked of
 * kernel sockets directly, not through the library under test. */
static int kernel_has_unix_oob(void)
{
    int kv[2];
    if (syscall(SYS_socketpair, AF_UNIX, SOCK_STREAM, 0, kv) != 0)
        return 0;
    long r = syscall(SYS_sendto, kv[0], "o", 1, MSG_OOB, NULL, 0);
    syscall(SYS_close, kv[0]);
    syscall(SYS_close, kv[1]);
    return r == 1;
}

TEST_UNIX(io_stream_msg_oob)
{
    if (!kernel_has_unix_oob())
        t_skip("af_unix_oob", "the kernel has no AF_UNIX MSG_OOB (CONFIG_AF_UNIX_OOB)");
    int a, b;
    tl_unix_pair(how, SOCK_STREAM, &a, &b);
    CHECK_EQ(OK(send(a, "ab", 2, 0)), 2);
    CHECK_EQ(OK(send(a, "c", 1, MSG_OOB)), 1);
    CHECK_EQ(OK(send(a, "d", 1, 0)), 1);
    CHECK_EQ(events_now(b), POLLIN | POLLOUT | POLLPRI);
    char buf[8];
    int mark = -1;
    OK(ioctl(b, SIOCATMARK, &mark));
    CHECK_EQ(mark, 0);
    /* a read stops at the mark; the urgent byte is out of band */
    CHECK_EQ(OK(recv(b, buf, sizeof buf, 0)), 2);
    CHECK(memcmp(buf, "ab", 2) == 0);
    OK(ioctl(b, SIOCATMARK, &mark));
    CHECK_EQ(mark, 1);
    CHECK_EQ(OK(recv(b, buf, 1, MSG_OOB)), 1);
    CHECK_EQ(buf[0], 'c');
    CHECK_ERRNO(recv(b, buf, 1, MSG_OOB), EINVAL);
    CHECK_EQ(OK(recv(b, buf, sizeof buf, 0)), 1);
    CHECK_EQ(buf[0], 'd');
    /* OOB on other types: EOPNOTSUPP */
    int d[2];
    OK(socketpair(AF_UNIX, SOCK_DGRAM, 0, d));
    CHECK_ERRNO(send(d[0], "o", 1, MSG_OOB), EOPNOTSUPP);
    close(d[0]);
    close(d[1]);
    close(a);
    close(b);
}

struct writer {
    int fd;
    size_t n;
    uint32_t sum;
};

static void *writer_thread(void *p)
{
    struct writer *w = p;
    char buf[65536];
    size_t done = 0;
    uint32_t seed = 1;
    w->sum = 2166136261u;
    while (done < w->n) {
        size_t k = sizeof buf < w->n - done ? sizeof buf : w->n - done;
        tl_fill(buf, k, seed++);
        if (tl_write_all(w->fd, buf, k) != (ssize_t)k)
            return NULL;
        w->sum = tl_cksum(w->sum, buf, k);
        done += k;
    }
    close(w->fd);
    return NULL;
}

TEST_UNIX(io_stream_bulk_transfer_and_backpressure)
{
    int a, b;
    tl_unix_pair(how, SOCK_STREAM | SOCK_NONBLOCK, &a, &b);
    /* a writer that never reads fills the buffers: EAGAIN, not writable */
    char blk[4096];
    memset(blk, 'f', sizeof blk);
    long filled = 0;
    while (filled < (64L << 20)) {
        ssize_t r = send(a, blk, sizeof blk, 0);
        if (r < 0)
            break;
        filled += r;
    }
    CHECK_EQ(errno, EAGAIN);
    CHECK(filled < (64L << 20));
    CHECK_EQ(events_now(a) & POLLOUT, 0);
    char *sink = malloc(1 << 20);
    CHECK(sink != NULL);
    long got = 0;
    while (got < filled) {
        ssize_t r = recv(b, sink, 1 << 20, 0);
        CHECK(r > 0);
        got += r;
    }
    CHECK_EQ(got, filled);
    CHECK_EQ(events_now(a), POLLOUT);
    /* then 8 MB from a thread, checked */
    OK(fcntl(b, F_SETFL, 0));
    OK(fcntl(a, F_SETFL, 0));
    struct writer w = {a, 8u << 20, 0};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, writer_thread, &w), 0);
    uint32_t sum = 2166136261u;
    size_t total = 0;
    for (;;) {
        ssize_t r = read(b, sink, 1 << 20);
        CHECK(r >= 0);
        if (r == 0)
            break;
        sum = tl_cksum(sum, sink, (size_t)r);
        total += (size_t)r;
    }
    pthread_join(t, NULL);
    CHECK_EQ(total, w.n);
    CHECK_EQ(sum, w.sum);
    free(sink);
    close(b);
}

/* ---- what AF_UNIX accepts at socket() -------------------------------------------- */

TEST(io_socket_types_and_protocols)
{
    /* SOCK_RAW is taken as SOCK_DGRAM */
    int fd = (int)OK(socket(AF_UNIX, SOCK_RAW, 0));
    CHECK_EQ(get_int(fd, SOL_SOCKET, SO_TYPE), SOCK_DGRAM);
    close(fd);
    int sv[2];
    OK(socketpair(AF_UNIX, SOCK_RAW, 0, sv));
    CHECK_EQ(get_int(sv[0], SOL_SOCKET, SO_TYPE), SOCK_DGRAM);
    close(sv[0]);
    close(sv[1]);
    CHECK_ERRNO(socket(AF_UNIX, SOCK_RDM, 0), ESOCKTNOSUPPORT);
    CHECK_ERRNO(socket(AF_UNIX, SOCK_PACKET, 0), ESOCKTNOSUPPORT);
    CHECK_ERRNO(socket(AF_UNIX, SOCK_DCCP, 0), ESOCKTNOSUPPORT);
    /* protocol 0 or PF_UNIX */
    fd = (int)OK(socket(AF_UNIX, SOCK_STREAM, PF_UNIX));
    CHECK_EQ(get_int(fd, SOL_SOCKET, SO_PROTOCOL), 0);
    close(fd);
    CHECK_ERRNO(socket(AF_UNIX, SOCK_DGRAM, 2), EPROTONOSUPPORT);
    CHECK_ERRNO(socketpair(AF_UNIX, SOCK_STREAM, 2, sv), EPROTONOSUPPORT);
    /* socketpair is AF_UNIX's alone */
    CHECK_ERRNO(socketpair(AF_INET, SOCK_STREAM, 0, sv), EOPNOTSUPP);
}

TEST(io_poll_unconnected_and_listener)
{
    /* a connection-oriented socket that is not connected reports a
     * hang-up (and is writable); a datagram socket is writable */
    int types[3] = {SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET};
    for (int t = 0; t < 3; t++) {
        int fd = (int)OK(socket(AF_UNIX, types[t], 0));
        CHECK_EQ(events_now(fd), types[t] == SOCK_DGRAM ? POLLOUT : POLLOUT | POLLHUP);
        OK(shutdown(fd, SHUT_RDWR));
        CHECK_EQ(events_now(fd), POLLIN | POLLOUT | POLLHUP | POLLRDHUP);
        close(fd);
    }
    /* a listener: nothing, then POLLIN for a connection to accept */
    int l = tl_listener(FAM_ABSTRACT, 4);
    CHECK_EQ(events_now(l), 0);
    struct sockaddr_storage ss;
    socklen_t len = tl_name(l, &ss);
    int c = (int)OK(socket(AF_UNIX, SOCK_STREAM, 0));
    OK(connect(c, (struct sockaddr *)&ss, len));
    CHECK_EQ(events_now(l), POLLIN);
    /* connected, not yet accepted: the client is writable */
    CHECK_EQ(events_now(c), POLLOUT);
    CHECK_EQ(OK(send(c, "early", 5, 0)), 5);
    int s = (int)OK(accept(l, NULL, NULL));
    CHECK_EQ(events_now(l), 0);
    CHECK_EQ(events_now(s), POLLIN | POLLOUT);
    close(s);
    close(c);
    close(l);
}

TEST_UNIX_TYPES(io_zero_length_sends)
{
    int a, b;
    tl_unix_pair(how, type, &a, &b);
    CHECK_EQ(OK(send(a, "", 0, 0)), 0);
    CHECK_EQ(OK(write(a, "", 0)), 0);
    char c;
    if (type == SOCK_STREAM) {
        /* nothing is queued on a stream */
        CHECK_EQ(events_now(b), POLLOUT);
        CHECK_ERRNO(recv(b, &c, 1, MSG_DONTWAIT), EAGAIN);
    } else {
        /* an empty datagram or record each */
        CHECK_EQ(events_now(b), POLLIN | POLLOUT);
        CHECK_EQ(OK(recv(b, &c, 1, MSG_DONTWAIT)), 0);
        CHECK_EQ(OK(recv(b, &c, 1, MSG_DONTWAIT)), 0);
        CHECK_ERRNO(recv(b, &c, 1, MSG_DONTWAIT), EAGAIN);
    }
    close(a);
    close(b);
}

/*
 * t_unix_seqpacket.c - AF_UNIX SOCK_SEQPACKET as Linux has it (issue 14):
 * connection-oriented sockets that keep record boundaries, made by
 * socketpair() or through pathname and abstract listeners (TEST_UNIX runs
 * each case for the three). Every expectation is what the kernel does
 * (net/unix/af_unix.c: unix_seqpacket_sendmsg/recvmsg over
 * unix_dgram_sendmsg/recvmsg, unix_poll, unix_shutdown, unix_release_sock).
 */
#include "testlib.h"

#include <linux/sockios.h>

/* The events poll reports for fd right now, restricted to the usual ones. */
static short events_now(int fd)
{
    return (short)(tl_poll1(fd, POLLIN | POLLOUT | POLLRDHUP, 0) &
                   (POLLIN | POLLOUT | POLLHUP | POLLERR | POLLRDHUP | POLLNVAL));
}

static ssize_t recv_flags(int fd, void *buf, size_t n, int flags, int *msg_flags)
{
    struct iovec v = {buf, n};
    struct msghdr mh;
    memset(&mh, 0, sizeof mh);
    mh.msg_iov = &v;
    mh.msg_iovlen = 1;
    ssize_t r = recvmsg(fd, &mh, flags);
    *msg_flags = mh.msg_flags;
    return r;
}

TEST(seqpacket_socket_options_and_flags)
{
    int fd = (int)OK(socket(AF_UNIX, SOCK_SEQPACKET, 0));
    int v = -1;
    socklen_t l = sizeof v;
    OK(getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &l));
    CHECK_EQ(v, SOCK_SEQPACKET);
    l = sizeof v;
    OK(getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &l));
    CHECK_EQ(v, AF_UNIX);
    l = sizeof v;
    OK(getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &v, &l));
    CHECK_EQ(v, 0);
    l = sizeof v;
    OK(getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &l));
    CHECK_EQ(v, 0);
    close(fd);
    fd = (int)OK(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    CHECK(OK(fcntl(fd, F_GETFL)) & O_NONBLOCK);
    CHECK(OK(fcntl(fd, F_GETFD)) & FD_CLOEXEC);
    close(fd);
    /* protocol 0, or PF_UNIX (1) which SO_PROTOCOL reports as 0; no other */
    fd = (int)OK(socket(AF_UNIX, SOCK_SEQPACKET, PF_UNIX));
    l = sizeof v;
    OK(getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &v, &l));
    CHECK_EQ(v, 0);
    close(fd);
    CHECK_ERRNO(socket(AF_UNIX, SOCK_SEQPACKET, 2), EPROTONOSUPPORT);
    int sv[2];
    OK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sv));
    l = sizeof v;
    OK(getsockopt(sv[1], SOL_SOCKET, SO_TYPE, &v, &l));
    CHECK_EQ(v, SOCK_SEQPACKET);
    CHECK(OK(fcntl(sv[0], F_GETFL)) & O_NONBLOCK);
    close(sv[0]);
    close(sv[1]);
}

TEST_UNIX(seqpacket_record_boundaries)
{
    int a, b;
    tl_unix_pair(how, SOCK_SEQPACKET, &a, &b);
    CHECK_EQ(OK(send(a, "abc", 3, 0)), 3);
    CHECK_EQ(OK(send(a, "defgh", 5, 0)), 5);
    CHECK_EQ(OK(write(a, "i", 1)), 1);
    struct iovec v[3] = {{"gat", 3}, {"her", 3}, {"ed", 2}};
    struct msghdr mh;
    memset(&mh, 0, sizeof mh);
    mh.msg_iov = v;
    mh.msg_iovlen = 3;
    CHECK_EQ(OK(sendmsg(a, &mh, 0)), 8);
    char buf[64];
    CHECK_EQ(OK(recv(b, buf, sizeof buf, 0)), 3);
    CHECK(memcmp(buf, "abc", 3) == 0);
    CHECK_EQ(OK(read(b, buf, sizeof buf)), 5);
    CHECK(memcmp(buf, "defgh", 5) == 0);
    /* MSG_WAITALL does not join records */
    CHECK_EQ(OK(recv(b, buf, sizeof buf, MSG_WAITALL)), 1);
    CHECK_EQ(buf[0], 'i');
    /* one record across two iovecs */
    char p1[5], p2[16];
    struct iovec r[2] = {{p1, 5}, {p2, sizeof p2}};
    memset(&mh, 0, sizeof mh);
    mh.msg_iov = r;
    mh.msg_iovlen = 2;
    CHECK_EQ(OK(recvmsg(b, &mh, 0)), 8);
    CHECK(memcmp(p1, "gathe", 5) == 0);
    CHECK(memcmp(p2, "red", 3) == 0);
    CHECK_EQ(mh.msg_flags & MSG_TRUNC, 0);
    CHECK_ERRNO(recv(b, buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
    /* and the other way */
    CHECK_EQ(OK(send(b, "xy", 2, 0)), 2);
    CHECK_EQ(OK(send(b, "z", 1, 0)), 1);
    CHECK_EQ(OK(recv(a, buf, sizeof buf, 0)), 2);
    CHECK_EQ(OK(recv(a, buf, sizeof buf, 0)), 1);
    close(a);
    close(b);
}

TEST_UNIX(seqpacket_truncation_and_msg_trunc)
{
    int a, b, fl;
    tl_unix_pair(how, SOCK_SEQPACKET, &a, &b);
    char big[100], buf[100];
    tl_fill(big, sizeof big, 3);
    CHECK_EQ(OK(send(a, big, 100, 0)), 100);
    CHECK_EQ(OK(send(a, "next", 4, 0)), 4);
    /* the rest of a record that does not fit is discarded */
    CHECK_EQ(OK(recv_flags(b, buf, 10, 0, &fl)), 10);
    CHECK_EQ(fl & MSG_TRUNC, MSG_TRUNC);
    CHECK(memcmp(buf, big, 10) == 0);
    CHECK_EQ(OK(recv_flags(b, buf, sizeof buf, 0, &fl)), 4);
    CHECK_EQ(fl & MSG_TRUNC, 0);
    CHECK(memcmp(buf, "next", 4) == 0);
    /* MSG_TRUNC in flags: the record's real length is returned */
    CHECK_EQ(OK(send(a, big, 100, 0)), 100);
    memset(buf, 0, sizeof buf);
    CHECK_EQ(OK(recv_flags(b, buf, 10, MSG_TRUNC, &fl)), 100);
    CHECK_EQ(fl & MSG_TRUNC, MSG_TRUNC);
    CHECK(memcmp(buf, big, 10) == 0);
    CHECK_EQ(buf[10], 0);
    /* MSG_PEEK|MSG_TRUNC with no buffer: the next record's size */
    CHECK_EQ(OK(send(a, big, 77, 0)), 77);
    CHECK_EQ(OK(recv(b, NULL, 0, MSG_PEEK | MSG_TRUNC)), 77);
    CHECK_EQ(OK(recv(b, buf, sizeof buf, 0)), 77);
    /* an exact fit is no truncation */
    CHECK_EQ(OK(send(a, big, 50, 0)), 50);
    CHECK_EQ(OK(recv_flags(b, buf, 50, 0, &fl)), 50);
    CHECK_EQ(fl & MSG_TRUNC, 0);
    /* a zero-length read of a record consumes it */
    CHECK_EQ(OK(send(a, "gone", 4, 0)), 4);
    CHECK_EQ(OK(send(a, "kept", 4, 0)), 4);
    CHECK_EQ(OK(recv_flags(b, buf, 0, 0, &fl)), 0);
    CHECK_EQ(fl & MSG_TRUNC, MSG_TRUNC);
    CHECK_EQ(OK(recv(b, buf, sizeof buf, 0)), 4);
    CHECK(memcmp(buf, "kept", 4) == 0);
    close(a);
    close(b);
}

TEST_UNIX(seqpacket_msg_eor)
{
    int a, b, fl;
    tl_unix_pair(how, SOCK_SEQPACKET, &a, &b);
    /* MSG_EOR is accepted (every send ends a record); the receiver's
     * msg_flags do not carry it on Linux */
    CHECK_EQ(OK(send(a, "rec1", 4, MSG_EOR)), 4);
    CHECK_EQ(OK(send(a, "rec2", 4, 0)), 4);
    char buf[16];
    CHECK_EQ(OK(recv_flags(b, buf, sizeof buf, 0, &fl)), 4);
    CHECK_EQ(fl, 0);
    CHECK_EQ(OK(recv_flags(b, buf, sizeof buf, 0, &fl)), 4);
    CHECK_EQ(fl, 0);
    /* MSG_OOB is refused */
    CHECK_ERRNO(send(a, "o", 1, MSG_OOB), EOPNOTSUPP);
    CHECK_ERRNO(recv(b, buf, sizeof buf, MSG_OOB | MSG_DONTWAIT), EOPNOTSUPP);
    close(a);
    close(b);
}

TEST_UNIX(seqpacket_zero_length_records)
{
    int a, b, fl;
    tl_unix_pair(how, SOCK_SEQPACKET, &a, &b);
    CHECK_EQ(OK(send(a, "", 0, 0)), 0);
    CHECK_EQ(OK(send(a, "x", 1, 0)), 1);
    CHECK_EQ(OK(send(a, NULL, 0, 0)), 0);
    /* the empty record is queued and makes the socket readable */
    CHECK_EQ(events_now(b), POLLIN | POLLOUT);
    char buf[8];
    CHECK_EQ(OK(recv_flags(b, buf, sizeof buf, 0, &fl)), 0);
    CHECK_EQ(fl, 0);
    /* not an end of file: the next record follows */
    CHECK_EQ(OK(recv(b, buf, sizeof buf, 0)), 1);
    CHECK_EQ(buf[0], 'x');
    CHECK_EQ(OK(recv(b, buf, sizeof buf, MSG_DONTWAIT)), 0);
    CHECK_ERRNO(recv(b, buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
    CHECK_EQ(events_now(b), POLLOUT);
    close(a);
    close(b);
}

TEST_UNIX(seqpacket_eof_after_peer_close)
{
    int a, b;
    tl_unix_pair(how, SOCK_SEQPACKET, &a, &b);
    CHECK_EQ(OK(send(a, "last", 4, 0)), 4);
    CHECK_EQ(OK(send(a, "words", 5, 0)), 5);
    OK(close(a));
    /* what was sent is still delivered, then end of file, again and again */
    CHECK_EQ(events_now(b), POLLIN | POLLOUT | POLLHUP | POLLRDHUP);
    char buf[16];
    CHECK_EQ(OK(recv(b, buf, sizeof buf, 0)), 4);
    CHECK_EQ(OK(recv(b, buf, sizeof buf, 0)), 5);
    CHECK_EQ(OK(recv(b, buf, sizeof buf, 0)), 0);
    CHECK_EQ(OK(recv(b, buf, sizeof buf, MSG_DONTWAIT)), 0);
    CHECK_EQ(OK(read(b, buf, sizeof buf)), 0);
    /* writing to a closed peer: EPIPE (SIGPIPE is ignored by the runner) */
    CHECK_ERRNO(send(b, "x", 1, 0), EPIPE);
    CHECK_ERRNO(send(b, "x", 1, MSG_NOSIGNAL), EPIPE);
    CHECK_EQ(tl_so_error(b), 0);
    close(b);
}

TEST_UNIX(seqpacket_peer_closed_with_unread_data)
{
    int a, b;
    tl_unix_pair(how, SOCK_SEQPACKET, &a, &b);
    CHECK_EQ(OK(send(a, "unread", 6, 0)), 6);
    /* b goes away with a record a sent still in its queue: a's next
     * receive reports ECONNRESET once, then end of file */
    OK(close(b));
    CHECK_EQ(events_now(a), POLLIN | POLLOUT | POLLHUP | POLLRDHUP | POLLERR);
    char buf[8];
    CHECK_ERRNO(recv(a, buf, sizeof buf, 0), ECONNRESET);
    CHECK_EQ(OK(recv(a, buf, sizeof buf, 0)), 0);
    CHECK_ERRNO(send(a, "x", 1, 0), EPIPE);
    close(a);
}

TEST_UNIX(seqpacket_shutdown)
{
    int a, b;
    tl_unix_pair(how, SOCK_SEQPACKET, &a, &b);
    CHECK_EQ(OK(send(a, "before", 6, 0)), 6);
    OK(shutdown(a, SHUT_WR));
    char buf[16];
    CHECK_EQ(OK(recv(b, buf, sizeof buf, 0)), 6);
    CHECK_EQ(OK(recv(b, buf, sizeof buf, 0)), 0); /* EOF */
    CHECK_EQ(events_now(b), POLLIN | POLLOUT | POLLRDHUP);
    CHECK_ERRNO(send(a, "x", 1, 0), EPIPE);
    /* the other direction still works */
    CHECK_EQ(OK(send(b, "reply", 5, 0)), 5);
    CHECK_EQ(OK(recv(a, buf, sizeof buf, 0)), 5);
    /* b's own SHUT_RD: its reads return 0 at once */
    OK(shutdown(b, SHUT_RD));
    CHECK_EQ(OK(recv(b, buf, sizeof buf, MSG_DONTWAIT)), 0);
    /* both directions shut: POLLHUP on both */
    CHECK_EQ(events_now(b), POLLIN | POLLOUT | POLLRDHUP);
    OK(shutdown(b, SHUT_WR));
    CHECK_EQ(events_now(b) & POLLHUP, POLLHUP);
    CHECK_EQ(events_now(a) & POLLHUP, POLLHUP);
    CHECK_ERRNO(shutdown(a, 7), EINVAL);
    close(a);
    close(b);
}

TEST_UNIX(seqpacket_shut_rd_refuses_peer)
{
    int a, b;
    tl_unix_pair(how, SOCK_SEQPACKET, &a, &b);
    OK(shutdown(b, SHUT_RD));
    /* the peer's SHUT_RD is a's SEND_SHUTDOWN: EPIPE */
    CHECK_ERRNO(send(a, "x", 1, 0), EPIPE);
    CHECK_EQ(events_now(a), POLLOUT);
    close(a);
    close(b);
}

TEST_UNIX(seqpacket_poll_readiness)
{
    int a, b;
    tl_unix_pair(how, SOCK_SEQPACKET, &a, &b);
    CHECK_EQ(events_now(a), POLLOUT);
    CHECK_EQ(events_now(b), POLLOUT);
    CHECK_EQ(OK(send(a, "r", 1, 0)), 1);
    CHECK_EQ(events_now(b), POLLIN | POLLOUT);
    char c;
    CHECK_EQ(OK(recv(b, &c, 1, 0)), 1);
    CHECK_EQ(events_now(b), POLLOUT);
    close(a);
    close(b);
}

TEST_UNIX(seqpacket_peek)
{
    int a, b;
    tl_unix_pair(how, SOCK_SEQPACKET, &a, &b);
    CHECK_EQ(OK(send(a, "first", 5, 0)), 5);
    CHECK_EQ(OK(send(a, "second", 6, 0)), 6);
    char buf[16];
    CHECK_EQ(OK(recv(b, buf, 3, MSG_PEEK)), 3);
    CHECK_EQ(OK(recv(b, buf, sizeof buf, MSG_PEEK)), 5);
    CHECK(memcmp(buf, "first", 5) == 0);
    CHECK_EQ(OK(recv(b, buf, sizeof buf, 0)), 5);
    CHECK_EQ(OK(recv(b, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT)), 6);
    CHECK_EQ(OK(recv(b, buf, sizeof buf, 0)), 6);
    CHECK(memcmp(buf, "second", 6) == 0);
    close(a);
    close(b);
}

TEST_UNIX(seqpacket_nonblocking)
{
    int a, b;
    tl_unix_pair(how, SOCK_SEQPACKET | SOCK_NONBLOCK, &a, &b);
    char buf[8];
    CHECK_ERRNO(recv(b, buf, sizeof buf, 0), EAGAIN);
    CHECK_ERRNO(read(a, buf, sizeof buf), EAGAIN);
    CHECK_EQ(OK(send(a, "n", 1, 0)), 1);
    CHECK_EQ(OK(recv(b, buf, sizeof buf, 0)), 1);
    close(a);
    close(b);
}

TEST_UNIX(seqpacket_large_record)
{
    int a, b;
    tl_unix_pair(how, SOCK_SEQPACKET, &a, &b);
    enum { N = 100000 };
    char *big = malloc(N), *got = malloc(N + 10);
    CHECK(big && got);
    tl_fill(big, N, 11);
    CHECK_EQ(OK(send(a, big, N, 0)), N);
    CHECK_EQ(OK(send(a, "tail", 4, 0)), 4);
    int n = 0;
    CHECK_EQ(OK(ioctl(b, SIOCINQ, &n)), 0);
    CHECK_EQ(n, N + 4); /* seqpacket, like stream: every queued byte */
    /* one call, one whole record */
    CHECK_EQ(OK(recv(b, got, N + 10, 0)), N);
    CHECK(memcmp(big, got, N) == 0);
    CHECK_EQ(OK(ioctl(b, SIOCINQ, &n)), 0);
    CHECK_EQ(n, 4);
    CHECK_EQ(OK(recv(b, got, N + 10, 0)), 4);
    CHECK_EQ(OK(ioctl(b, SIOCINQ, &n)), 0);
    CHECK_EQ(n, 0);
    free(big);
    free(got);
    close(a);
    close(b);
}

TEST_UNIX(seqpacket_emsgsize_over_sndbuf)
{
    int a, b;
    tl_unix_pair(how, SOCK_SEQPACKET, &a, &b);
    int want = 8192, sndbuf = 0;
    socklen_t l = sizeof sndbuf;
    OK(setsockopt(a, SOL_SOCKET, SO_SNDBUF, &want, sizeof want));
    OK(getsockopt(a, SOL_SOCKET, SO_SNDBUF, &sndbuf, &l));
    CHECK_EQ(sndbuf, 2 * want);
    /* a record longer than the send buffer less 32 bytes never fits */
    size_t max = (size_t)sndbuf - 32;
    char *big = calloc(1, max + 1);
    CHECK(big != NULL);
    CHECK_ERRNO(send(a, big, max + 1, MSG_DONTWAIT), EMSGSIZE);
    CHECK_EQ(OK(send(a, big, max, MSG_DONTWAIT)), (long)max);
    CHECK_EQ(OK(recv(b, big, max + 1, 0)), (long)max);
    free(big);
    close(a);
    close(b);
}

TEST_UNIX(seqpacket_sendto_address_ignored)
{
    int a, b;
    tl_unix_pair(how, SOCK_SEQPACKET, &a, &b);
    /* an address given to a connected seqpacket socket is ignored, even
     * one nothing is bound at */
    struct sockaddr_storage ss;
    socklen_t len;
    tl_addr(FAM_UNIX, &ss, &len);
    CHECK_EQ(OK(sendto(a, "to", 2, 0, (struct sockaddr *)&ss, len)), 2);
    tl_addr(FAM_ABSTRACT, &ss, &len);
    CHECK_EQ(OK(sendto(a, "me", 2, 0, (struct sockaddr *)&ss, len)), 2);
    char buf[8];
    CHECK_EQ(OK(recv(b, buf, sizeof buf, 0)), 2);
    CHECK(memcmp(buf, "to", 2) == 0);
    CHECK_EQ(OK(recv(b, buf, sizeof buf, 0)), 2);
    CHECK(memcmp(buf, "me", 2) == 0);
    close(a);
    close(b);
}

TEST(seqpacket_unconnected_errors)
{
    int s = (int)OK(socket(AF_UNIX, SOCK_SEQPACKET, 0));
    char buf[4];
    struct sockaddr_storage ss;
    socklen_t len;
    CHECK_ERRNO(send(s, "x", 1, 0), ENOTCONN);
    tl_addr(FAM_ABSTRACT, &ss, &len);
    CHECK_ERRNO(sendto(s, "x", 1, 0, (struct sockaddr *)&ss, len), ENOTCONN);
    CHECK_ERRNO(recv(s, buf, sizeof buf, MSG_DONTWAIT), ENOTCONN);
    CHECK_ERRNO(accept(s, NULL, NULL), EINVAL);
    CHECK_ERRNO(listen(s, 1), EINVAL); /* unbound */
    len = sizeof ss;
    CHECK_ERRNO(getpeername(s, (struct sockaddr *)&ss, &len), ENOTCONN);
    close(s);
}

TEST(seqpacket_type_mismatch)
{
    for (int fam = FAM_UNIX; fam <= FAM_ABSTRACT; fam++) {
        /* pathname: the socket file is found, its type differs: EPROTOTYPE;
         * abstract names are looked up per type: ECONNREFUSED */
        int want = fam == FAM_UNIX ? EPROTOTYPE : ECONNREFUSED;
        int l = tl_listener(fam, 4);
        struct sockaddr_storage ss;
        socklen_t len = tl_name(l, &ss);
        int c = (int)OK(socket(AF_UNIX, SOCK_SEQPACKET, 0));
        CHECK_ERRNO(connect(c, (struct sockaddr *)&ss, len), want);
        close(c);
        close(l);
        l = (int)OK(socket(AF_UNIX, SOCK_SEQPACKET, 0));
        tl_addr(fam, &ss, &len);
        OK(bind(l, (struct sockaddr *)&ss, len));
        OK(listen(l, 4));
        c = (int)OK(socket(AF_UNIX, SOCK_STREAM, 0));
        CHECK_ERRNO(connect(c, (struct sockaddr *)&ss, len), want);
        close(c);
        c = (int)OK(socket(AF_UNIX, SOCK_DGRAM, 0));
        CHECK_ERRNO(connect(c, (struct sockaddr *)&ss, len), want);
        close(c);
        close(l);
        /* a bound but not listening seqpacket socket refuses */
        l = (int)OK(socket(AF_UNIX, SOCK_SEQPACKET, 0));
        tl_addr(fam, &ss, &len);
        OK(bind(l, (struct sockaddr *)&ss, len));
        c = (int)OK(socket(AF_UNIX, SOCK_SEQPACKET, 0));
        CHECK_ERRNO(connect(c, (struct sockaddr *)&ss, len), ECONNREFUSED);
        close(c);
        close(l);
    }
}

TEST_UNIX(seqpacket_names)
{
    int a, b;
    tl_unix_pair(how, SOCK_SEQPACKET, &a, &b);
    struct sockaddr_storage sa, sb, pa, pb;
    socklen_t la = sizeof sa, lb = sizeof sb, lpa = sizeof pa, lpb = sizeof pb;
    memset(&sa, 0, sizeof sa);
    memset(&sb, 0, sizeof sb);
    memset(&pa, 0, sizeof pa);
    memset(&pb, 0, sizeof pb);
    OK(getsockname(a, (struct sockaddr *)&sa, &la));
    OK(getsockname(b, (struct sockaddr *)&sb, &lb));
    OK(getpeername(a, (struct sockaddr *)&pa, &lpa));
    OK(getpeername(b, (struct sockaddr *)&pb, &lpb));
    CHECK_EQ(la, sizeof(sa_family_t)); /* the connecting end is unnamed */
    CHECK_EQ(lpb, sizeof(sa_family_t));
    CHECK_EQ(((struct sockaddr_un *)&pb)->sun_family, AF_UNIX);
    if (how == UX_PAIR) {
        CHECK_EQ(lb, sizeof(sa_family_t));
        CHECK_EQ(lpa, sizeof(sa_family_t));
    } else {
        /* the accepted socket has the listener's name, the client sees it */
        CHECK(lb > sizeof(sa_family_t));
        CHECK_EQ(lpa, lb);
        CHECK(memcmp(&pa, &sb, lb) == 0);
    }
    close(a);
    close(b);
}

TEST(seqpacket_accept_and_backlog)
{
    for (int fam = FAM_UNIX; fam <= FAM_ABSTRACT; fam++) {
        struct sockaddr_storage ss;
        socklen_t len;
        int l = (int)OK(socket(AF_UNIX, SOCK_SEQPACKET, 0));
        tl_addr(fam, &ss, &len);
        OK(bind(l, (struct sockaddr *)&ss, len));
        OK(listen(l, 1));
        int v = 0;
        socklen_t vl = sizeof v;
        OK(getsockopt(l, SOL_SOCKET, SO_ACCEPTCONN, &v, &vl));
        CHECK_EQ(v, 1);
        CHECK_EQ(tl_poll1(l, POLLIN, 0), 0);
        /* backlog 1: the queue holds two (len > backlog is full), the
         * third non-blocking connect gets EAGAIN */
        int c[3];
        for (int i = 0; i < 3; i++)
            c[i] = (int)OK(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0));
        OK(connect(c[0], (struct sockaddr *)&ss, len));
        OK(connect(c[1], (struct sockaddr *)&ss, len));
        CHECK_ERRNO(connect(c[2], (struct sockaddr *)&ss, len), EAGAIN);
        CHECK_EQ(tl_poll1(l, POLLIN, 0), POLLIN);
        struct sockaddr_storage from;
        socklen_t fl = sizeof from;
        int s = (int)OK(accept4(l, (struct sockaddr *)&from, &fl, SOCK_NONBLOCK | SOCK_CLOEXEC));
        CHECK_EQ(fl, sizeof(sa_family_t));
        CHECK(OK(fcntl(s, F_GETFL)) & O_NONBLOCK);
        CHECK(OK(fcntl(s, F_GETFD)) & FD_CLOEXEC);
        /* room again */
        OK(connect(c[2], (struct sockaddr *)&ss, len));
        CHECK_EQ(OK(send(c[0], "a", 1, 0)), 1);
        char ch;
        CHECK_EQ(OK(recv(s, &ch, 1, 0)), 1);
        close(s);
        for (int i = 1; i < 3; i++) {
            s = (int)OK(accept(l, NULL, NULL));
            close(s);
        }
        for (int i = 0; i < 3; i++)
            close(c[i]);
        close(l);
    }
}

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

TEST_UNIX(seqpacket_blocking_recv_woken_by_close)
{
    int a, b;
    tl_unix_pair(how, SOCK_SEQPACKET, &a, &b);
    struct timeval tv = {10, 0}; /* upper bound only: a hang fails */
    OK(setsockopt(b, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    struct blocked_recv br = {b, -2, 0};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, recv_thread, &br), 0);
    /* whether or not the thread is asleep yet, the close ends its recv */
    OK(close(a));
    pthread_join(t, NULL);
    CHECK_EQ(br.r, 0);
    close(b);
}

TEST_UNIX(seqpacket_siocinq_siocoutq)
{
    int a, b;
    tl_unix_pair(how, SOCK_SEQPACKET, &a, &b);
    int n = -1;
    OK(ioctl(b, SIOCINQ, &n));
    CHECK_EQ(n, 0);
    OK(ioctl(a, SIOCOUTQ, &n));
    CHECK_EQ(n, 0);
    CHECK_EQ(OK(send(a, "12345", 5, 0)), 5);
    CHECK_EQ(OK(send(a, "123", 3, 0)), 3);
    /* SIOCINQ counts all queued bytes on seqpacket (as on stream; a
     * datagram socket's is the first datagram's size) */
    OK(ioctl(b, SIOCINQ, &n));
    CHECK_EQ(n, 8);
    /* the sender's queue counts the memory of what the receiver has not
     * read (its size is the kernel's, at least the bytes) */
    OK(ioctl(a, SIOCOUTQ, &n));
    CHECK(n >= 8);
    char buf[8];
    CHECK_EQ(OK(recv(b, buf, sizeof buf, 0)), 5);
    CHECK_EQ(OK(recv(b, buf, sizeof buf, 0)), 3);
    OK(ioctl(a, SIOCOUTQ, &n));
    CHECK_EQ(n, 0);
    close(a);
    close(b);
}

TEST_UNIX(seqpacket_recvfrom_reports_sender)
{
    int a, b;
    tl_unix_pair(how, SOCK_SEQPACKET, &a, &b);
    struct sockaddr_storage from, bn;
    socklen_t bl = tl_name(b, &bn);
    /* from the unnamed client: no address */
    CHECK_EQ(OK(send(a, "c", 1, 0)), 1);
    socklen_t fl = sizeof from;
    char c;
    CHECK_EQ(OK(recvfrom(b, &c, 1, 0, (struct sockaddr *)&from, &fl)), 1);
    CHECK_EQ(fl, 0);
    /* from the accepted socket: the listener's name (none for a pair) */
    CHECK_EQ(OK(send(b, "s", 1, 0)), 1);
    fl = sizeof from;
    memset(&from, 0, sizeof from);
    CHECK_EQ(OK(recvfrom(a, &c, 1, 0, (struct sockaddr *)&from, &fl)), 1);
    if (how == UX_PAIR) {
        CHECK_EQ(fl, 0);
    } else {
        CHECK_EQ(fl, bl);
        CHECK(memcmp(&from, &bn, bl) == 0);
    }
    close(a);
    close(b);
}

/* ---- records and what else they carry ------------------------------------ */

/* Sends `n` bytes as one record with fd `fd` (SCM_RIGHTS). */
static ssize_t send_with_fd(int s, const void *p, size_t n, int fd)
{
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(sizeof(int))];
    } c;
    memset(&c, 0, sizeof c);
    struct iovec v = {(void *)p, n};
    struct msghdr mh;
    memset(&mh, 0, sizeof mh);
    mh.msg_iov = &v;
    mh.msg_iovlen = 1;
    mh.msg_control = c.b;
    mh.msg_controllen = sizeof c.b;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof fd);
    return sendmsg(s, &mh, 0);
}

/* One recvmsg of at most `n` bytes: its return, msg_flags and the fds it
 * brought (closed here; their count). */
static ssize_t recv_count_fds(int s, void *p, size_t n, int flags, int *msg_flags, int *nfds)
{
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(4 * sizeof(int))];
    } c;
    struct iovec v = {p, n};
    struct msghdr mh;
    memset(&mh, 0, sizeof mh);
    mh.msg_iov = &v;
    mh.msg_iovlen = 1;
    mh.msg_control = c.b;
    mh.msg_controllen = sizeof c.b;
    ssize_t r = recvmsg(s, &mh, flags);
    *msg_flags = mh.msg_flags;
    *nfds = 0;
    if (r < 0)
        return r;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        int k = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        for (int i = 0; i < k; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof fd);
            close(fd);
        }
        *nfds += k;
    }
    return r;
}

TEST_UNIX(seqpacket_rights_keep_record_boundaries)
{
    int a, b, p[2], fl, nfds;
    tl_unix_pair(how, SOCK_SEQPACKET, &a, &b);
    OK(pipe(p));
    CHECK_EQ(OK(send(a, "one", 3, 0)), 3);
    CHECK_EQ(OK(send_with_fd(a, "two", 3, p[0])), 3);
    CHECK_EQ(OK(send(a, "three", 5, 0)), 5);
    CHECK_EQ(OK(send_with_fd(a, "", 0, p[1])), 0);
    CHECK_EQ(OK(send(a, "four", 4, 0)), 4);
    char buf[16];
    /* a truncated record without fds brings none */
    CHECK_EQ(OK(recv_count_fds(b, buf, 2, 0, &fl, &nfds)), 2);
    CHECK_EQ(fl & MSG_TRUNC, MSG_TRUNC);
    CHECK_EQ(nfds, 0);
    /* the fds come with their record, and only with it */
    CHECK_EQ(OK(recv_count_fds(b, buf, sizeof buf, 0, &fl, &nfds)), 3);
    CHECK(memcmp(buf, "two", 3) == 0);
    CHECK_EQ(nfds, 1);
    CHECK_EQ(fl & (MSG_TRUNC | MSG_CTRUNC), 0);
    CHECK_EQ(OK(recv_count_fds(b, buf, sizeof buf, 0, &fl, &nfds)), 5);
    CHECK_EQ(nfds, 0);
    /* an empty record carries its fd, the next record none */
    CHECK_EQ(OK(recv_count_fds(b, buf, sizeof buf, 0, &fl, &nfds)), 0);
    CHECK_EQ(nfds, 1);
    CHECK_EQ(OK(recv_count_fds(b, buf, sizeof buf, 0, &fl, &nfds)), 4);
    CHECK_EQ(nfds, 0);
    close(p[0]);
    close(p[1]);
    close(a);
    close(b);
}

TEST_UNIX(seqpacket_truncated_record_with_fd)
{
    int a, b, p[2], fl, nfds;
    tl_unix_pair(how, SOCK_SEQPACKET, &a, &b);
    OK(pipe(p));
    CHECK_EQ(OK(send_with_fd(a, "longrecord", 10, p[0])), 10);
    CHECK_EQ(OK(send(a, "next", 4, 0)), 4);
    char buf[16];
    /* a short buffer still takes the record's fd, and the rest is gone */
    CHECK_EQ(OK(recv_count_fds(b, buf, 4, 0, &fl, &nfds)), 4);
    CHECK_EQ(fl & MSG_TRUNC, MSG_TRUNC);
    CHECK_EQ(nfds, 1);
    CHECK_EQ(OK(recv_count_fds(b, buf, sizeof buf, 0, &fl, &nfds)), 4);
    CHECK(memcmp(buf, "next", 4) == 0);
    CHECK_EQ(nfds, 0);
    close(p[0]);
    close(p[1]);
    close(a);
    close(b);
}

TEST_UNIX(seqpacket_peek_trunc)
{
    int a, b, fl;
    tl_unix_pair(how, SOCK_SEQPACKET, &a, &b);
    CHECK_EQ(OK(send(a, "abcdefgh", 8, 0)), 8);
    char buf[16];
    /* a peek of a short buffer: truncated, MSG_TRUNC gives the length,
     * and the record stays */
    CHECK_EQ(OK(recv_flags(b, buf, 3, MSG_PEEK, &fl)), 3);
    CHECK_EQ(fl & MSG_TRUNC, MSG_TRUNC);
    CHECK_EQ(OK(recv_flags(b, buf, 3, MSG_PEEK | MSG_TRUNC, &fl)), 8);
    CHECK_EQ(fl & MSG_TRUNC, MSG_TRUNC);
    CHECK(memcmp(buf, "abc", 3) == 0);
    CHECK_EQ(OK(recv_flags(b, buf, sizeof buf, 0, &fl)), 8);
    CHECK_EQ(fl & MSG_TRUNC, 0);
    CHECK(memcmp(buf, "abcdefgh", 8) == 0);
    /* an empty record peeked is still there */
    CHECK_EQ(OK(send(a, "", 0, 0)), 0);
    CHECK_EQ(OK(recv(b, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT)), 0);
    CHECK_EQ(OK(recv(b, buf, sizeof buf, MSG_DONTWAIT)), 0);
    CHECK_ERRNO(recv(b, buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
    close(a);
    close(b);
}

TEST_UNIX(seqpacket_recvmmsg_records)
{
    int a, b;
    tl_unix_pair(how, SOCK_SEQPACKET, &a, &b);
    CHECK_EQ(OK(send(a, "a", 1, 0)), 1);
    CHECK_EQ(OK(send(a, "bb", 2, 0)), 2);
    CHECK_EQ(OK(send(a, "", 0, 0)), 0);
    CHECK_EQ(OK(send(a, "dddd", 4, 0)), 4);
    char bufs[5][3];
    struct iovec v[5];
    struct mmsghdr mm[5];
    memset(mm, 0, sizeof mm);
    for (int i = 0; i < 5; i++) {
        v[i].iov_base = bufs[i];
        v[i].iov_len = sizeof bufs[i];
        mm[i].msg_hdr.msg_iov = &v[i];
        mm[i].msg_hdr.msg_iovlen = 1;
    }
    /* one record per message, until none is left */
    CHECK_EQ(OK(recvmmsg(b, mm, 5, MSG_DONTWAIT, NULL)), 4);
    CHECK_EQ(mm[0].msg_len, 1);
    CHECK_EQ(mm[1].msg_len, 2);
    CHECK(memcmp(bufs[1], "bb", 2) == 0);
    CHECK_EQ(mm[2].msg_len, 0);
    CHECK_EQ(mm[3].msg_len, 3);
    CHECK_EQ(mm[3].msg_hdr.msg_flags & MSG_TRUNC, MSG_TRUNC);
    CHECK_EQ(mm[1].msg_hdr.msg_flags & MSG_TRUNC, 0);
    CHECK_ERRNO(recv(b, bufs[0], 3, MSG_DONTWAIT), EAGAIN);
    close(a);
    close(b);
}

TEST_UNIX(seqpacket_send_error_order)
{
    int a, b;
    tl_unix_pair(how, SOCK_SEQPACKET, &a, &b);
    int sndbuf = 0;
    socklen_t l = sizeof sndbuf;
    OK(getsockopt(a, SOL_SOCKET, SO_SNDBUF, &sndbuf, &l));
    size_t over = (size_t)sndbuf - 31;
    char *big = calloc(1, over);
    CHECK(big != NULL);
    /* too long: EMSGSIZE, before anything else is looked at */
    CHECK_ERRNO(send(a, big, over, 0), EMSGSIZE);
    CHECK_ERRNO(send(a, "o", 1, MSG_OOB), EOPNOTSUPP);
    OK(close(b));
    CHECK_ERRNO(send(a, big, over, 0), EMSGSIZE);
    CHECK_ERRNO(send(a, "x", 1, MSG_DONTWAIT), EPIPE);
    CHECK_ERRNO(send(a, "", 0, 0), EPIPE);
    free(big);
    close(a);
    /* unconnected: ENOTCONN comes first, MSG_OOB or not */
    int s = (int)OK(socket(AF_UNIX, SOCK_SEQPACKET, 0));
    CHECK_ERRNO(send(s, "o", 1, MSG_OOB), ENOTCONN);
    CHECK_ERRNO(send(s, "", 0, 0), ENOTCONN);
    close(s);
}

TEST_UNIX(seqpacket_siocinq_next_records)
{
    int a, b, n = -1;
    tl_unix_pair(how, SOCK_SEQPACKET, &a, &b);
    CHECK_EQ(OK(send(a, "", 0, 0)), 0);
    OK(ioctl(b, SIOCINQ, &n));
    CHECK_EQ(n, 0);
    CHECK_EQ(OK(send(a, "abc", 3, 0)), 3);
    CHECK_EQ(OK(send(a, "de", 2, 0)), 2);
    OK(ioctl(b, SIOCINQ, &n));
    CHECK_EQ(n, 5);
    /* FIONREAD is the same request */
    OK(ioctl(b, FIONREAD, &n));
    CHECK_EQ(n, 5);
    char buf[8];
    CHECK_EQ(OK(recv(b, buf, sizeof buf, 0)), 0);
    CHECK_EQ(OK(recv(b, buf, 1, 0)), 1); /* truncated: all of it leaves */
    OK(ioctl(b, SIOCINQ, &n));
    CHECK_EQ(n, 2);
    close(a);
    close(b);
}

TEST_UNIX(seqpacket_pollout_means_a_record_fits)
{
    int a, b;
    tl_unix_pair(how, SOCK_SEQPACKET, &a, &b);
    int sndbuf = 0;
    socklen_t l = sizeof sndbuf;
    OK(getsockopt(a, SOL_SOCKET, SO_SNDBUF, &sndbuf, &l));
    size_t max = (size_t)sndbuf - 32;
    char *big = calloc(1, max);
    CHECK(big != NULL);
    /* while poll says writable, the largest record goes at once: a
     * non-blocking sender driven by poll never meets EAGAIN */
    int sent = 0;
    while (sent < 64 && (tl_poll1(a, POLLOUT, 0) & POLLOUT)) {
        CHECK_EQ(OK(send(a, big, max, MSG_DONTWAIT)), (long)max);
        sent++;
    }
    CHECK(sent >= 1 && sent < 64);
    /* the reader takes them all: writable again */
    for (int i = 0; i < sent; i++)
        CHECK_EQ(OK(recv(b, big, max, MSG_DONTWAIT)), (long)max);
    CHECK_EQ(tl_poll1(a, POLLOUT, 1000) & POLLOUT, POLLOUT);
    free(big);
    close(a);
    close(b);
}

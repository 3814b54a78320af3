/* Datagram sockets: UDP over 127.0.0.1/::1 and AF_UNIX SOCK_DGRAM
 * (pathname and abstract): addresses, boundaries, truncation, MSG_TRUNC,
 * MSG_PEEK, connected/unconnected, EDESTADDRREQ, errors. */
#include "testlib.h"

static int is_inet(int fam) { return fam == FAM_INET || fam == FAM_INET6; }

TEST_FAM(dgram_sendto_recvfrom_addresses)
{
    int a = tl_bound(fam, SOCK_DGRAM), b = tl_bound(fam, SOCK_DGRAM);
    struct sockaddr_storage an, bn, from;
    socklen_t al = tl_name(a, &an), bl = tl_name(b, &bn);
    CHECK_EQ(OK(sendto(a, "hello", 5, 0, (struct sockaddr *)&bn, bl)), 5);
    char buf[16];
    socklen_t fl = sizeof from;
    memset(&from, 0, sizeof from);
    CHECK_EQ(OK(recvfrom(b, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl)), 5);
    CHECK(memcmp(buf, "hello", 5) == 0);
    CHECK_EQ(fl, al);
    CHECK(memcmp(&from, &an, al) == 0);
    /* reply to the address we got */
    CHECK_EQ(OK(sendto(b, "back", 4, 0, (struct sockaddr *)&from, fl)), 4);
    CHECK_EQ(OK(recv(a, buf, sizeof buf, 0)), 4);
    /* recvfrom truncates the address and reports its full length */
    CHECK_EQ(OK(sendto(a, "t", 1, 0, (struct sockaddr *)&bn, bl)), 1);
    unsigned char small[sizeof(struct sockaddr_storage)];
    memset(small, 0xAA, sizeof small);
    fl = 4;
    CHECK_EQ(OK(recvfrom(b, buf, sizeof buf, 0, (struct sockaddr *)small, &fl)), 1);
    CHECK_EQ(fl, al);
    CHECK(memcmp(small, &an, 4) == 0);
    CHECK_EQ(small[4], 0xAA);
    close(a);
    close(b);
}

TEST_FAM(dgram_sendmsg_recvmsg)
{
    int a = tl_bound(fam, SOCK_DGRAM), b = tl_bound(fam, SOCK_DGRAM);
    struct sockaddr_storage an, bn, from;
    socklen_t al = tl_name(a, &an), bl = tl_name(b, &bn);
    struct iovec v[3] = {{"gat", 3}, {"her", 3}, {"ed", 2}};
    struct msghdr mh;
    memset(&mh, 0, sizeof mh);
    mh.msg_name = &bn;
    mh.msg_namelen = bl;
    mh.msg_iov = v;
    mh.msg_iovlen = 3;
    CHECK_EQ(OK(sendmsg(a, &mh, 0)), 8);
    char p1[3], p2[16];
    struct iovec r[2] = {{p1, 3}, {p2, 16}};
    memset(&mh, 0, sizeof mh);
    mh.msg_name = &from;
    mh.msg_namelen = sizeof from;
    mh.msg_iov = r;
    mh.msg_iovlen = 2;
    CHECK_EQ(OK(recvmsg(b, &mh, 0)), 8);
    CHECK_EQ(mh.msg_namelen, al);
    CHECK(memcmp(&from, &an, al) == 0);
    CHECK_EQ(mh.msg_flags & MSG_TRUNC, 0);
    CHECK(memcmp(p1, "gat", 3) == 0);
    CHECK(memcmp(p2, "hered", 5) == 0);
    close(a);
    close(b);
}

TEST_FAM(dgram_boundaries_and_order)
{
    int a, b;
    tl_dgram_pair(fam, &a, &b);
    char buf[256], want[256];
    for (int i = 1; i <= 40; i++) {
        tl_fill(want, (size_t)i * 3, (uint32_t)i);
        CHECK_EQ(OK(send(a, want, (size_t)i * 3, 0)), i * 3);
    }
    for (int i = 1; i <= 40; i++) {
        tl_fill(want, (size_t)i * 3, (uint32_t)i);
        CHECK_EQ(OK(recv(b, buf, sizeof buf, 0)), i * 3);
        CHECK(memcmp(buf, want, (size_t)i * 3) == 0);
    }
    CHECK_ERRNO(recv(b, buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
    close(a);
    close(b);
}

TEST_FAM(dgram_truncation_and_msg_trunc)
{
    int a, b;
    tl_dgram_pair(fam, &a, &b);
    char big[100], buf[100];
    tl_fill(big, sizeof big, 7);
    CHECK_EQ(OK(send(a, big, 100, 0)), 100);
    CHECK_EQ(OK(send(a, "next", 4, 0)), 4);
    CHECK_EQ(OK(recv(b, buf, 10, 0)), 10); /* the rest is discarded */
    CHECK(memcmp(buf, big, 10) == 0);
    CHECK_EQ(OK(recv(b, buf, sizeof buf, 0)), 4);
    CHECK(memcmp(buf, "next", 4) == 0);
    /* recvmsg flags the truncation */
    CHECK_EQ(OK(send(a, big, 100, 0)), 100);
    struct iovec v = {buf, 20};
    struct msghdr mh;
    memset(&mh, 0, sizeof mh);
    mh.msg_iov = &v;
    mh.msg_iovlen = 1;
    CHECK_EQ(OK(recvmsg(b, &mh, 0)), 20);
    CHECK(mh.msg_flags & MSG_TRUNC);
    /* MSG_TRUNC: the real length is returned */
    CHECK_EQ(OK(send(a, big, 100, 0)), 100);
    memset(buf, 0, sizeof buf);
    CHECK_EQ(OK(recv(b, buf, 10, MSG_TRUNC)), 100);
    CHECK(memcmp(buf, big, 10) == 0);
    CHECK_EQ(buf[10], 0);
    /* MSG_TRUNC|MSG_PEEK with a zero-length buffer: size of the next one */
    CHECK_EQ(OK(send(a, big, 77, 0)), 77);
    CHECK_EQ(OK(recv(b, NULL, 0, MSG_PEEK | MSG_TRUNC)), 77);
    CHECK_EQ(OK(recv(b, buf, sizeof buf, 0)), 77);
    /* exact fit is not truncation */
    CHECK_EQ(OK(send(a, big, 50, 0)), 50);
    v.iov_len = 50;
    memset(&mh, 0, sizeof mh);
    mh.msg_iov = &v;
    mh.msg_iovlen = 1;
    CHECK_EQ(OK(recvmsg(b, &mh, 0)), 50);
    CHECK_EQ(mh.msg_flags & MSG_TRUNC, 0);
    close(a);
    close(b);
}

TEST_FAM(dgram_peek)
{
    int a, b;
    tl_dgram_pair(fam, &a, &b);
    CHECK_EQ(OK(send(a, "first", 5, 0)), 5);
    CHECK_EQ(OK(send(a, "second", 6, 0)), 6);
    char buf[16];
    CHECK_EQ(OK(recv(b, buf, 3, MSG_PEEK)), 3);
    CHECK_EQ(OK(recv(b, buf, sizeof buf, MSG_PEEK)), 5);
    CHECK(memcmp(buf, "first", 5) == 0);
    CHECK_EQ(OK(recv(b, buf, sizeof buf, 0)), 5);
    CHECK_EQ(OK(recv(b, buf, sizeof buf, MSG_PEEK)), 6);
    CHECK_EQ(OK(recv(b, buf, sizeof buf, 0)), 6);
    CHECK(memcmp(buf, "second", 6) == 0);
    close(a);
    close(b);
}

TEST_FAM(dgram_zero_length)
{
    int a, b;
    tl_dgram_pair(fam, &a, &b);
    CHECK_EQ(OK(send(a, "", 0, 0)), 0);
    CHECK_EQ(OK(send(a, "x", 1, 0)), 1);
    CHECK(tl_poll1(b, POLLIN, 2000) & POLLIN); /* an empty datagram is data */
    char buf[8];
    CHECK_EQ(OK(recv(b, buf, sizeof buf, 0)), 0);
    CHECK_EQ(OK(recv(b, buf, sizeof buf, 0)), 1);
    close(a);
    close(b);
}

TEST_FAM(dgram_unconnected_send_errors)
{
    int a = tl_bound(fam, SOCK_DGRAM);
    /* no destination: UDP says EDESTADDRREQ, AF_UNIX ENOTCONN (Linux) */
    int want = is_inet(fam) ? EDESTADDRREQ : ENOTCONN;
    CHECK_ERRNO(send(a, "x", 1, 0), want);
    CHECK_ERRNO(write(a, "x", 1), want);
    struct iovec v = {"x", 1};
    struct msghdr mh;
    memset(&mh, 0, sizeof mh);
    mh.msg_iov = &v;
    mh.msg_iovlen = 1;
    CHECK_ERRNO(sendmsg(a, &mh, 0), want);
    CHECK_ERRNO(sendto(a, "x", 1, 0, NULL, 0), want);
    /* recv never blocks with MSG_DONTWAIT, nor on a non-blocking socket */
    char buf[4];
    CHECK_ERRNO(recv(a, buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
    OK(fcntl(a, F_SETFL, O_NONBLOCK));
    CHECK_ERRNO(recvfrom(a, buf, sizeof buf, 0, NULL, NULL), EAGAIN);
    CHECK_ERRNO(read(a, buf, sizeof buf), EAGAIN);
    close(a);
}

TEST_FAM(dgram_bad_destination)
{
    int a = tl_bound(fam, SOCK_DGRAM);
    struct sockaddr_storage ss;
    socklen_t len;
    tl_addr(fam, &ss, &len);
    if (is_inet(fam)) {
        /* addrlen too short for the family (IPv6: below the RFC 2133 size) */
        int b = tl_bound(fam, SOCK_DGRAM);
        struct sockaddr_storage bn;
        socklen_t bl = tl_name(b, &bn);
        socklen_t shortlen = fam == FAM_INET ? bl - 1 : 23;
        CHECK_ERRNO(sendto(a, "x", 1, 0, (struct sockaddr *)&bn, shortlen), EINVAL);
        close(b);
        /* Linux UDP refuses destination port 0 */
        CHECK_ERRNO(sendto(a, "x", 1, 0, (struct sockaddr *)&ss, len), EINVAL);
    } else {
        /* a name nobody bound */
        CHECK_ERRNO(sendto(a, "x", 1, 0, (struct sockaddr *)&ss, len),
                    fam == FAM_UNIX ? ENOENT : ECONNREFUSED);
    }
    CHECK_ERRNO(sendto(a, "x", 1, 0, (struct sockaddr *)tl_bad_ptr(), len), EFAULT);
    close(a);
}

TEST(udp_connected_filters_other_senders)
{
    for (int fam = FAM_INET; fam <= FAM_INET6; fam++) {
        int a = tl_bound(fam, SOCK_DGRAM), b = tl_bound(fam, SOCK_DGRAM);
        int c = tl_bound(fam, SOCK_DGRAM);
        struct sockaddr_storage an, bn;
        socklen_t al = tl_name(a, &an), bl = tl_name(b, &bn);
        OK(connect(a, (struct sockaddr *)&bn, bl));
        CHECK_EQ(OK(sendto(c, "from-c", 6, 0, (struct sockaddr *)&an, al)), 6);
        CHECK_EQ(OK(sendto(b, "from-b", 6, 0, (struct sockaddr *)&an, al)), 6);
        char buf[16];
        struct sockaddr_storage from;
        socklen_t fl = sizeof from;
        CHECK_EQ(OK(recvfrom(a, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl)), 6);
        CHECK(memcmp(buf, "from-b", 6) == 0);
        CHECK_EQ(fl, bl);
        CHECK(memcmp(&from, &bn, bl) == 0);
        CHECK_ERRNO(recv(a, buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
        /* connected UDP may still sendto another address */
        struct sockaddr_storage cn;
        socklen_t cl = tl_name(c, &cn);
        CHECK_EQ(OK(sendto(a, "to-c", 4, 0, (struct sockaddr *)&cn, cl)), 4);
        CHECK_EQ(OK(recv(c, buf, sizeof buf, 0)), 4);
        close(a);
        close(b);
        close(c);
    }
}

TEST(unix_dgram_connected_receiver_refuses_others)
{
    for (int fam = FAM_UNIX; fam <= FAM_ABSTRACT; fam++) {
        int a = tl_bound(fam, SOCK_DGRAM), b = tl_bound(fam, SOCK_DGRAM);
        int c = tl_bound(fam, SOCK_DGRAM);
        struct sockaddr_storage an, bn;
        socklen_t al = tl_name(a, &an), bl = tl_name(b, &bn);
        OK(connect(a, (struct sockaddr *)&bn, bl));
        CHECK_ERRNO(sendto(c, "x", 1, 0, (struct sockaddr *)&an, al), EPERM);
        CHECK_EQ(OK(sendto(b, "ok", 2, 0, (struct sockaddr *)&an, al)), 2);
        char buf[4];
        CHECK_EQ(OK(recv(a, buf, sizeof buf, 0)), 2);
        close(a);
        close(b);
        close(c);
    }
}

TEST_FAM(dgram_connect_af_unspec_disconnects)
{
    /* b stays unconnected: Linux UDP may drop an ephemeral source port on
     * disconnect, and a connected b would then filter a's datagrams */
    int a = tl_bound(fam, SOCK_DGRAM), b = tl_bound(fam, SOCK_DGRAM);
    struct sockaddr_storage bn;
    socklen_t bl = tl_name(b, &bn);
    OK(connect(a, (struct sockaddr *)&bn, bl));
    CHECK_EQ(OK(send(a, "x", 1, 0)), 1);
    struct sockaddr sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_family = AF_UNSPEC;
    OK(connect(a, &sa, sizeof sa));
    CHECK_ERRNO(send(a, "x", 1, 0), is_inet(fam) ? EDESTADDRREQ : ENOTCONN);
    struct sockaddr_storage pn;
    socklen_t pl = sizeof pn;
    CHECK_ERRNO(getpeername(a, (struct sockaddr *)&pn, &pl), ENOTCONN);
    /* and it can connect again */
    OK(connect(a, (struct sockaddr *)&bn, bl));
    CHECK_EQ(OK(send(a, "y", 1, 0)), 1);
    char buf[2];
    CHECK_EQ(OK(recv(b, buf, 2, 0)), 1);
    CHECK_EQ(OK(recv(b, buf, 2, 0)), 1);
    CHECK_EQ(buf[0], 'y');
    close(a);
    close(b);
}

struct dsend { int fd; int delay; };
static void *late_dgram(void *p)
{
    struct dsend *d = p;
    tl_sleep_ms(d->delay);
    CHECK_EQ(send(d->fd, "late", 4, 0), 4);
    return NULL;
}

TEST_FAM(dgram_recv_blocks_until_datagram)
{
    int a, b;
    tl_dgram_pair(fam, &a, &b);
    struct dsend d = {a, 100};
    pthread_t t;
    long t0 = tl_now_ms();
    pthread_create(&t, NULL, late_dgram, &d);
    char buf[8];
    CHECK_EQ(OK(recv(b, buf, sizeof buf, 0)), 4);
    CHECK(tl_now_ms() - t0 >= 80);
    pthread_join(t, NULL);
    close(a);
    close(b);
}

TEST(udp_sendto_autobinds)
{
    for (int fam = FAM_INET; fam <= FAM_INET6; fam++) {
        int b = tl_bound(fam, SOCK_DGRAM);
        struct sockaddr_storage bn, an, from;
        socklen_t bl = tl_name(b, &bn);
        int a = (int)OK(socket(tl_domain(fam), SOCK_DGRAM, 0));
        CHECK_EQ(OK(sendto(a, "x", 1, 0, (struct sockaddr *)&bn, bl)), 1);
        socklen_t al = tl_name(a, &an);
        CHECK(((struct sockaddr_in *)&an)->sin_port != 0);
        char c;
        socklen_t fl = sizeof from;
        CHECK_EQ(OK(recvfrom(b, &c, 1, 0, (struct sockaddr *)&from, &fl)), 1);
        CHECK_EQ(fl, al);
        CHECK_EQ(((struct sockaddr_in *)&from)->sin_port, ((struct sockaddr_in *)&an)->sin_port);
        close(a);
        close(b);
    }
}

TEST(unix_dgram_unbound_sender_has_no_name)
{
    for (int fam = FAM_UNIX; fam <= FAM_ABSTRACT; fam++) {
        int b = tl_bound(fam, SOCK_DGRAM);
        struct sockaddr_storage bn, from;
        socklen_t bl = tl_name(b, &bn);
        int a = (int)OK(socket(AF_UNIX, SOCK_DGRAM, 0));
        CHECK_EQ(OK(sendto(a, "x", 1, 0, (struct sockaddr *)&bn, bl)), 1);
        char c;
        socklen_t fl = sizeof from;
        CHECK_EQ(OK(recvfrom(b, &c, 1, 0, (struct sockaddr *)&from, &fl)), 1);
        CHECK_EQ(fl, 0);
        close(a);
        close(b);
    }
}

TEST(udp_emsgsize)
{
    int a, b;
    tl_dgram_pair(FAM_INET, &a, &b);
    size_t n = 70000;
    char *big = calloc(1, n);
    CHECK_ERRNO(send(a, big, n, 0), EMSGSIZE);
    CHECK_EQ(OK(send(a, big, 65507, 0)), 65507); /* the IPv4 maximum */
    int rb = 1 << 20;
    OK(setsockopt(b, SOL_SOCKET, SO_RCVBUF, &rb, sizeof rb));
    CHECK_EQ(OK(recv(b, big, n, 0)), 65507);
    free(big);
    close(a);
    close(b);
}

TEST(udp_connected_icmp_refused)
{
    for (int fam = FAM_INET; fam <= FAM_INET6; fam++) {
        /* a port that was bound and is now free */
        int t = tl_bound(fam, SOCK_DGRAM);
        struct sockaddr_storage tn;
        socklen_t tl = tl_name(t, &tn);
        close(t);
        int a = tl_bound(fam, SOCK_DGRAM);
        OK(connect(a, (struct sockaddr *)&tn, tl));
        CHECK_EQ(OK(send(a, "x", 1, 0)), 1);
        short re = tl_poll1(a, POLLIN, 2000);
        CHECK(re & POLLERR);
        char c;
        CHECK_ERRNO(recv(a, &c, 1, 0), ECONNREFUSED);
        CHECK_ERRNO(recv(a, &c, 1, MSG_DONTWAIT), EAGAIN); /* reported once */
        close(a);
    }
}

TEST(unix_dgram_peer_closed)
{
    for (int fam = FAM_UNIX; fam <= FAM_ABSTRACT; fam++) {
        int a, b;
        tl_dgram_pair(fam, &a, &b);
        close(b);
        CHECK_ERRNO(send(a, "x", 1, 0), ECONNREFUSED);
        close(a);
    }
}

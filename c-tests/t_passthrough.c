/*
 * t_passthrough.c - issue 13, class 1: whatever the library does not
 * implement is the kernel's, untouched.
 *
 *  - socket() of any family, type or protocol other than the AF_INET/AF_INET6
 *    TCP/UDP and AF_UNIX stream/datagram/seqpacket sockets gives a real
 *    kernel socket,
 *    or the kernel's errno when the kernel refuses it. The oracle is the
 *    kernel itself, asked through syscall(SYS_socket, ...), which no socket
 *    library interposes: each case compares socket() with it and, when a
 *    socket was made, checks with raw system calls that the fd is a kernel
 *    socket of that family, type and protocol.
 *  - those kernel sockets work (netlink route dump, a packet socket on lo,
 *    raw ICMP echo, UDP-Lite, MPTCP); so does AF_UNIX SOCK_SEQPACKET, the
 *    library's own since issue 14.
 *  - interface ioctls (SIOCGIFCONF, SIOCGIFFLAGS, ...) on TCP and UDP
 *    sockets answer as they do on a kernel socket (compared byte for byte
 *    with the same ioctl on a kernel socket made by the raw system call);
 *    SIOCGSTAMP(NS), SIOCINQ, SIOCOUTQ(NSD), SIOCATMARK, FIOASYNC and
 *    SIOCSPGRP answer from the socket's own state.
 */
#include "testlib.h"

#include <net/if.h>
#include <linux/capability.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sockios.h>
#include <linux/ethtool.h>
#include <netinet/icmp6.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <termios.h>

#ifndef SIOCGIWNAME
#define SIOCGIWNAME 0x8B01 /* linux/wireless.h, which clashes with net/if.h */
#endif
#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif

/* ---- the kernel, asked directly --------------------------------------- */

static int ksocket(int d, int t, int p) { return (int)syscall(SYS_socket, d, t, p); }
static long kioctl(int fd, unsigned long req, void *arg) { return syscall(SYS_ioctl, fd, req, arg); }
static int kclose(int fd) { return (int)syscall(SYS_close, fd); }
static int kgetint(int fd, int level, int opt, int *v)
{
    socklen_t l = sizeof *v;
    return (int)syscall(SYS_getsockopt, fd, level, opt, v, &l);
}

/* socket(d, t, p) must do what the kernel does: the same errno, or a kernel
 * socket (SO_DOMAIN, SO_TYPE, SO_PROTOCOL answered by the kernel itself)
 * that close() closes. */
static void same_as_kernel(int d, int t, int p)
{
    errno = 0;
    int k = ksocket(d, t, p);
    int kerr = errno;
    if (k >= 0) {
        int kd = -1, kt = -1, kp = -1;
        OK(kgetint(k, SOL_SOCKET, SO_DOMAIN, &kd));
        OK(kgetint(k, SOL_SOCKET, SO_TYPE, &kt));
        OK(kgetint(k, SOL_SOCKET, SO_PROTOCOL, &kp));
        kclose(k);
        int fd = socket(d, t | SOCK_NONBLOCK | SOCK_CLOEXEC, p);
        CHECK_MSG(fd >= 0, "socket(%d, %d, %d): -1/%s, the kernel made a socket", d, t, p,
                  tl_errname(errno));
        int v = -1;
        CHECK_MSG(kgetint(fd, SOL_SOCKET, SO_DOMAIN, &v) == 0,
                  "fd %d is not a kernel socket (getsockopt by syscall: %s)", fd,
                  tl_errname(errno));
        CHECK_EQ(v, kd);
        OK(kgetint(fd, SOL_SOCKET, SO_TYPE, &v));
        CHECK_EQ(v, kt);
        OK(kgetint(fd, SOL_SOCKET, SO_PROTOCOL, &v));
        CHECK_EQ(v, kp);
        /* the flags reached the kernel's file */
        long fl = syscall(SYS_fcntl, fd, F_GETFL);
        CHECK(fl >= 0 && (fl & O_NONBLOCK));
        long fdfl = syscall(SYS_fcntl, fd, F_GETFD);
        CHECK(fdfl >= 0 && (fdfl & FD_CLOEXEC));
        /* and the program's view agrees */
        CHECK_EQ(tl_getint(fd, SOL_SOCKET, SO_DOMAIN), kd);
        CHECK_EQ(tl_getint(fd, SOL_SOCKET, SO_TYPE), kt);
        OK(close(fd));
        CHECK_EQ(syscall(SYS_fcntl, fd, F_GETFD), -1);
        CHECK_EQ(errno, EBADF);
    } else {
        CHECK_ERRNO(socket(d, t, p), kerr);
    }
}

#define SOCKET_CASE(name, d, t, p)                                            \
    TEST(socket_##name) { same_as_kernel(d, t, p); }

SOCKET_CASE(netlink_route_raw, AF_NETLINK, SOCK_RAW, NETLINK_ROUTE)
SOCKET_CASE(netlink_route_dgram, AF_NETLINK, SOCK_DGRAM, NETLINK_ROUTE)
SOCKET_CASE(netlink_generic, AF_NETLINK, SOCK_RAW, NETLINK_GENERIC)
SOCKET_CASE(netlink_sock_diag, AF_NETLINK, SOCK_RAW, NETLINK_SOCK_DIAG)
SOCKET_CASE(netlink_audit, AF_NETLINK, SOCK_RAW, NETLINK_AUDIT)
SOCKET_CASE(netlink_bad_protocol, AF_NETLINK, SOCK_RAW, 31)
SOCKET_CASE(netlink_stream, AF_NETLINK, SOCK_STREAM, NETLINK_ROUTE)
SOCKET_CASE(packet_raw, AF_PACKET, SOCK_RAW, htons(ETH_P_ALL))
SOCKET_CASE(packet_dgram, AF_PACKET, SOCK_DGRAM, htons(ETH_P_IP))
SOCKET_CASE(inet_sock_packet, AF_INET, SOCK_PACKET, htons(ETH_P_ALL))
SOCKET_CASE(raw4_icmp, AF_INET, SOCK_RAW, IPPROTO_ICMP)
SOCKET_CASE(raw4_ipproto_raw, AF_INET, SOCK_RAW, IPPROTO_RAW)
SOCKET_CASE(raw4_udp, AF_INET, SOCK_RAW, IPPROTO_UDP)
SOCKET_CASE(raw4_tcp, AF_INET, SOCK_RAW, IPPROTO_TCP)
SOCKET_CASE(raw4_protocol_0, AF_INET, SOCK_RAW, 0)
SOCKET_CASE(raw6_icmpv6, AF_INET6, SOCK_RAW, IPPROTO_ICMPV6)
SOCKET_CASE(raw6_ipproto_raw, AF_INET6, SOCK_RAW, IPPROTO_RAW)
SOCKET_CASE(ping4, AF_INET, SOCK_DGRAM, IPPROTO_ICMP)
SOCKET_CASE(ping6, AF_INET6, SOCK_DGRAM, IPPROTO_ICMPV6)
SOCKET_CASE(udplite4, AF_INET, SOCK_DGRAM, IPPROTO_UDPLITE)
SOCKET_CASE(udplite6, AF_INET6, SOCK_DGRAM, IPPROTO_UDPLITE)
SOCKET_CASE(sctp4_stream, AF_INET, SOCK_STREAM, IPPROTO_SCTP)
SOCKET_CASE(sctp4_seqpacket, AF_INET, SOCK_SEQPACKET, IPPROTO_SCTP)
SOCKET_CASE(sctp6_stream, AF_INET6, SOCK_STREAM, IPPROTO_SCTP)
SOCKET_CASE(mptcp4, AF_INET, SOCK_STREAM, IPPROTO_MPTCP)
SOCKET_CASE(mptcp6, AF_INET6, SOCK_STREAM, IPPROTO_MPTCP)
SOCKET_CASE(inet_seqpacket, AF_INET, SOCK_SEQPACKET, 0)
SOCKET_CASE(inet_rdm, AF_INET, SOCK_RDM, 0)
SOCKET_CASE(inet_dccp, AF_INET, SOCK_DCCP, 0)
SOCKET_CASE(inet6_seqpacket, AF_INET6, SOCK_SEQPACKET, 0)
SOCKET_CASE(inet_stream_udp, AF_INET, SOCK_STREAM, IPPROTO_UDP)
SOCKET_CASE(inet_dgram_tcp, AF_INET, SOCK_DGRAM, IPPROTO_TCP)
SOCKET_CASE(inet6_stream_icmp, AF_INET6, SOCK_STREAM, IPPROTO_ICMPV6)
SOCKET_CASE(inet_bad_type, AF_INET, 99, 0)
SOCKET_CASE(vsock_stream, AF_VSOCK, SOCK_STREAM, 0)
SOCKET_CASE(vsock_dgram, AF_VSOCK, SOCK_DGRAM, 0)
SOCKET_CASE(vsock_seqpacket, AF_VSOCK, SOCK_SEQPACKET, 0)
/* AF_UNIX SOCK_SEQPACKET is the library's since issue 14 (t_unix_seqpacket.c) */
SOCKET_CASE(unix_raw, AF_UNIX, SOCK_RAW, 0)
SOCKET_CASE(unix_bad_protocol, AF_UNIX, SOCK_STREAM, 2)
SOCKET_CASE(alg, AF_ALG, SOCK_SEQPACKET, 0)
SOCKET_CASE(xdp, AF_XDP, SOCK_RAW, 0)
SOCKET_CASE(key, AF_KEY, SOCK_RAW, 2)
SOCKET_CASE(tipc, AF_TIPC, SOCK_RDM, 0)
SOCKET_CASE(can, AF_CAN, SOCK_RAW, 1)
SOCKET_CASE(bluetooth, AF_BLUETOOTH, SOCK_STREAM, 0)
SOCKET_CASE(rds, AF_RDS, SOCK_SEQPACKET, 0)
SOCKET_CASE(llc, AF_LLC, SOCK_DGRAM, 0)
SOCKET_CASE(appletalk, AF_APPLETALK, SOCK_DGRAM, 0)
SOCKET_CASE(family_46, 46, SOCK_STREAM, 0)
SOCKET_CASE(family_99, 99, SOCK_STREAM, 0)
SOCKET_CASE(family_negative, -1, SOCK_STREAM, 0)

/* socketpair(): the kernel's answer for families it pairs or refuses. */
static void socketpair_same_as_kernel(int d, int t, int p)
{
    int ksv[2] = {-1, -1};
    errno = 0;
    long kr = syscall(SYS_socketpair, d, t, p, ksv);
    int kerr = errno;
    if (kr == 0) {
        kclose(ksv[0]);
        kclose(ksv[1]);
        int sv[2] = {-1, -1};
        OK(socketpair(d, t, p, sv));
        CHECK(sv[0] >= 0 && sv[1] >= 0 && sv[0] != sv[1]);
        CHECK_EQ(tl_getint(sv[0], SOL_SOCKET, SO_TYPE), t);
        OK(close(sv[0]));
        OK(close(sv[1]));
    } else {
        int sv[2] = {-1, -1};
        CHECK_ERRNO(socketpair(d, t, p, sv), kerr);
    }
}

TEST(socketpair_inet_stream) { socketpair_same_as_kernel(AF_INET, SOCK_STREAM, 0); }
TEST(socketpair_inet6_dgram) { socketpair_same_as_kernel(AF_INET6, SOCK_DGRAM, 0); }
TEST(socketpair_netlink) { socketpair_same_as_kernel(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE); }
TEST(socketpair_packet) { socketpair_same_as_kernel(AF_PACKET, SOCK_DGRAM, 0); }
TEST(socketpair_unix_seqpacket) { socketpair_same_as_kernel(AF_UNIX, SOCK_SEQPACKET, 0); }
TEST(socketpair_family_99) { socketpair_same_as_kernel(99, SOCK_STREAM, 0); }

/* Refused by a missing privilege: the kernel's errno (EPERM), asked of the
 * kernel in the same unprivileged child. */
static void unprivileged_sockets(void *arg)
{
    (void)arg;
    CHECK(!tl_has_cap(CAP_NET_RAW));
    same_as_kernel(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
    same_as_kernel(AF_INET, SOCK_RAW, IPPROTO_ICMP);
    same_as_kernel(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6);
    CHECK_ERRNO(socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL)), EPERM);
    CHECK_ERRNO(socket(AF_INET, SOCK_RAW, IPPROTO_ICMP), EPERM);
}

TEST(socket_refused_without_cap_net_raw)
{
    if (!tl_has_cap(CAP_NET_RAW))
        t_skip("root", "needs CAP_NET_RAW to drop it");
    tl_in_child(unprivileged_sockets, NULL, 1ULL << CAP_NET_RAW, -1, 10);
}

/* ---- the kernel sockets work ------------------------------------------ */

/* Asks for every link (RTM_GETLINK dump) and returns the index of the one
 * named name, -1 if absent. */
static int netlink_link_index(int nl, const char *name)
{
    struct {
        struct nlmsghdr nh;
        struct ifinfomsg ifi;
    } req;
    memset(&req, 0, sizeof req);
    req.nh.nlmsg_len = sizeof req;
    req.nh.nlmsg_type = RTM_GETLINK;
    req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    req.nh.nlmsg_seq = 4242;
    req.ifi.ifi_family = AF_UNSPEC;
    struct sockaddr_nl to = {.nl_family = AF_NETLINK};
    CHECK_EQ(OK(sendto(nl, &req, sizeof req, 0, (struct sockaddr *)&to, sizeof to)),
             (long)sizeof req);
    static char buf[65536];
    int found = -1, done = 0, links = 0;
    while (!done) {
        CHECK(tl_poll1(nl, POLLIN, 5000) & POLLIN);
        ssize_t n = OK(recv(nl, buf, sizeof buf, 0));
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n);
             h = NLMSG_NEXT(h, n)) {
            CHECK_EQ(h->nlmsg_seq, 4242);
            if (h->nlmsg_type == NLMSG_DONE) {
                done = 1;
                break;
            }
            CHECK(h->nlmsg_type != NLMSG_ERROR);
            if (h->nlmsg_type != RTM_NEWLINK)
                continue;
            links++;
            struct ifinfomsg *ifi = NLMSG_DATA(h);
            int len = (int)h->nlmsg_len - (int)NLMSG_LENGTH(sizeof *ifi);
            for (struct rtattr *a = IFLA_RTA(ifi); RTA_OK(a, len); a = RTA_NEXT(a, len))
                if (a->rta_type == IFLA_IFNAME && strcmp(RTA_DATA(a), name) == 0)
                    found = ifi->ifi_index;
        }
    }
    CHECK(links >= 1);
    return found;
}

TEST(netlink_route_dump_lists_lo)
{
    int nl = (int)OK(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
    struct sockaddr_nl me = {.nl_family = AF_NETLINK};
    OK(bind(nl, (struct sockaddr *)&me, sizeof me));
    struct sockaddr_nl got;
    socklen_t gl = sizeof got;
    OK(getsockname(nl, (struct sockaddr *)&got, &gl));
    CHECK_EQ(gl, sizeof got);
    CHECK_EQ(got.nl_family, AF_NETLINK);
    CHECK(got.nl_pid != 0); /* the kernel assigned a port id */
    int idx = netlink_link_index(nl, "lo");
    CHECK(idx > 0);
    /* the same index as the kernel's SIOCGIFINDEX */
    int k = ksocket(AF_INET, SOCK_DGRAM, 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, "lo");
    OK(kioctl(k, SIOCGIFINDEX, &ifr));
    CHECK_EQ(idx, ifr.ifr_ifindex);
    kclose(k);
    OK(close(nl));
}

TEST(packet_socket_frame_on_lo)
{
    if (!tl_has_cap(CAP_NET_RAW))
        t_skip("root", "AF_PACKET needs CAP_NET_RAW");
    const uint16_t proto = 0x88b5; /* IEEE 802 local experimental ethertype */
    int rx = (int)OK(socket(AF_PACKET, SOCK_DGRAM, htons(proto)));
    int tx = (int)OK(socket(AF_PACKET, SOCK_DGRAM, htons(proto)));
    struct sockaddr_ll ll;
    memset(&ll, 0, sizeof ll);
    ll.sll_family = AF_PACKET;
    ll.sll_protocol = htons(proto);
    ll.sll_ifindex = (int)if_nametoindex("lo");
    CHECK(ll.sll_ifindex > 0);
    OK(bind(rx, (struct sockaddr *)&ll, sizeof ll));
    ll.sll_halen = 6; /* lo's all-zero address */
    CHECK_EQ(OK(sendto(tx, "usock-packet", 12, 0, (struct sockaddr *)&ll, sizeof ll)), 12);
    char buf[256];
    struct sockaddr_ll from;
    socklen_t fl = sizeof from;
    long deadline = tl_now_ms() + 5000;
    for (;;) {
        CHECK(tl_now_ms() < deadline);
        CHECK(tl_poll1(rx, POLLIN, 5000) & POLLIN);
        ssize_t n = OK(recvfrom(rx, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl));
        if (n >= 12 && memcmp(buf, "usock-packet", 12) == 0)
            break;
    }
    CHECK_EQ(from.sll_family, AF_PACKET);
    CHECK_EQ(ntohs(from.sll_protocol), proto);
    CHECK_EQ(from.sll_ifindex, ll.sll_ifindex);
    OK(close(rx));
    OK(close(tx));
}

static uint16_t icmp_cksum(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint32_t s = 0;
    for (size_t i = 0; i + 1 < n; i += 2)
        s += (uint32_t)(b[i] << 8 | b[i + 1]);
    if (n & 1)
        s += (uint32_t)(b[n - 1] << 8);
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return htons((uint16_t)~s);
}

TEST(raw_icmp_echo_to_loopback)
{
    if (!tl_has_cap(CAP_NET_RAW))
        t_skip("root", "SOCK_RAW needs CAP_NET_RAW");
    int fd = (int)OK(socket(AF_INET, SOCK_RAW, IPPROTO_ICMP));
    struct icmphdr req;
    memset(&req, 0, sizeof req);
    req.type = ICMP_ECHO;
    req.un.echo.id = htons((uint16_t)(getpid() & 0xffff));
    req.un.echo.sequence = htons(7);
    req.checksum = icmp_cksum(&req, sizeof req);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_EQ(OK(sendto(fd, &req, sizeof req, 0, (struct sockaddr *)&to, sizeof to)),
             (long)sizeof req);
    char buf[1500];
    long deadline = tl_now_ms() + 5000;
    for (;;) {
        CHECK(tl_now_ms() < deadline);
        CHECK(tl_poll1(fd, POLLIN, 5000) & POLLIN);
        ssize_t n = OK(recv(fd, buf, sizeof buf, 0));
        struct iphdr *ip = (struct iphdr *)buf; /* raw IPv4: with the header */
        CHECK(n >= (ssize_t)(ip->ihl * 4 + sizeof req));
        struct icmphdr *r = (struct icmphdr *)(buf + ip->ihl * 4);
        if (r->type == ICMP_ECHOREPLY && r->un.echo.id == req.un.echo.id &&
            r->un.echo.sequence == req.un.echo.sequence)
            break;
    }
    OK(close(fd));
}

TEST(raw_icmpv6_echo_to_loopback)
{
    if (!tl_has_cap(CAP_NET_RAW))
        t_skip("root", "SOCK_RAW needs CAP_NET_RAW");
    int fd = (int)OK(socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6));
    struct icmp6_hdr req;
    memset(&req, 0, sizeof req);
    req.icmp6_type = ICMP6_ECHO_REQUEST;
    req.icmp6_id = htons((uint16_t)(getpid() & 0xffff));
    req.icmp6_seq = htons(9); /* the kernel computes ICMPv6 checksums */
    struct sockaddr_in6 to = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    CHECK_EQ(OK(sendto(fd, &req, sizeof req, 0, (struct sockaddr *)&to, sizeof to)),
             (long)sizeof req);
    char buf[1500];
    long deadline = tl_now_ms() + 5000;
    for (;;) {
        CHECK(tl_now_ms() < deadline);
        CHECK(tl_poll1(fd, POLLIN, 5000) & POLLIN);
        ssize_t n = OK(recv(fd, buf, sizeof buf, 0)); /* raw IPv6: no header */
        CHECK(n >= (ssize_t)sizeof req);
        struct icmp6_hdr *r = (struct icmp6_hdr *)buf;
        if (r->icmp6_type == ICMP6_ECHO_REPLY && r->icmp6_id == req.icmp6_id &&
            r->icmp6_seq == req.icmp6_seq)
            break;
    }
    OK(close(fd));
}

/* A family/protocol the kernel here may lack: skip only if the kernel
 * itself refuses it. */
static void need_kernel_socket(const char *name, int d, int t, int p)
{
    int k = ksocket(d, t, p);
    if (k < 0)
        t_skip(name, "the kernel refuses socket(%d, %d, %d): %s", d, t, p, tl_errname(errno));
    kclose(k);
}

TEST_INET(udplite_exchange)
{
    int d = tl_domain(fam);
    need_kernel_socket("udplite", d, SOCK_DGRAM, IPPROTO_UDPLITE);
    int a = (int)OK(socket(d, SOCK_DGRAM, IPPROTO_UDPLITE));
    int b = (int)OK(socket(d, SOCK_DGRAM, IPPROTO_UDPLITE));
    CHECK_EQ(tl_getint(a, SOL_SOCKET, SO_PROTOCOL), IPPROTO_UDPLITE);
    struct sockaddr_storage ss;
    socklen_t l = tl_loop(fam, &ss, 0);
    OK(bind(b, (struct sockaddr *)&ss, l));
    l = tl_name(b, &ss);
    tl_setint(a, IPPROTO_UDPLITE, 10 /* UDPLITE_SEND_CSCOV */, 8);
    CHECK_EQ(tl_getint(a, IPPROTO_UDPLITE, 10), 8);
    CHECK_EQ(OK(sendto(a, "lite", 4, 0, (struct sockaddr *)&ss, l)), 4);
    char buf[16];
    CHECK(tl_poll1(b, POLLIN, 5000) & POLLIN);
    CHECK_EQ(OK(recv(b, buf, sizeof buf, 0)), 4);
    CHECK(memcmp(buf, "lite", 4) == 0);
    OK(close(a));
    OK(close(b));
}

TEST_INET(mptcp_exchange)
{
    int d = tl_domain(fam);
    need_kernel_socket("mptcp", d, SOCK_STREAM, IPPROTO_MPTCP);
    int l = (int)OK(socket(d, SOCK_STREAM, IPPROTO_MPTCP));
    struct sockaddr_storage ss;
    socklen_t sl = tl_loop(fam, &ss, 0);
    OK(bind(l, (struct sockaddr *)&ss, sl));
    OK(listen(l, 4));
    sl = tl_name(l, &ss);
    int c = (int)OK(socket(d, SOCK_STREAM, IPPROTO_MPTCP));
    OK(connect(c, (struct sockaddr *)&ss, sl));
    int s = (int)OK(accept(l, NULL, NULL));
    CHECK_EQ(tl_getint(s, SOL_SOCKET, SO_PROTOCOL), IPPROTO_MPTCP);
    CHECK_EQ(OK(send(c, "multipath", 9, 0)), 9);
    char buf[16];
    CHECK_EQ(tl_read_all(s, buf, 9), 9);
    CHECK(memcmp(buf, "multipath", 9) == 0);
    OK(close(c));
    OK(close(s));
    OK(close(l));
}

TEST(unix_seqpacket_keeps_boundaries)
{
    int sv[2];
    OK(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv));
    CHECK_EQ(tl_getint(sv[0], SOL_SOCKET, SO_TYPE), SOCK_SEQPACKET);
    CHECK_EQ(OK(send(sv[0], "first", 5, 0)), 5);
    CHECK_EQ(OK(send(sv[0], "second!", 7, 0)), 7);
    char buf[16];
    CHECK_EQ(OK(recv(sv[1], buf, 3, 0)), 3); /* the rest of "first" is dropped */
    CHECK(memcmp(buf, "fir", 3) == 0);
    CHECK_EQ(OK(recv(sv[1], buf, sizeof buf, 0)), 7);
    CHECK(memcmp(buf, "second!", 7) == 0);
    OK(close(sv[0]));
    CHECK_EQ(OK(recv(sv[1], buf, sizeof buf, 0)), 0);
    OK(close(sv[1]));

    /* and by name: listen, connect, accept */
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    tl_path(a.sun_path, sizeof a.sun_path);
    int l = (int)OK(socket(AF_UNIX, SOCK_SEQPACKET, 0));
    OK(bind(l, (struct sockaddr *)&a, sizeof a));
    OK(listen(l, 2));
    int c = (int)OK(socket(AF_UNIX, SOCK_SEQPACKET, 0));
    OK(connect(c, (struct sockaddr *)&a, sizeof a));
    int s = (int)OK(accept(l, NULL, NULL));
    CHECK_EQ(OK(send(s, "xy", 2, 0)), 2);
    CHECK_EQ(OK(recv(c, buf, sizeof buf, 0)), 2);
    OK(close(c));
    OK(close(s));
    OK(close(l));
}

TEST(unix_raw_is_a_datagram_socket)
{
    int fd = (int)OK(socket(AF_UNIX, SOCK_RAW, 0));
    CHECK_EQ(tl_getint(fd, SOL_SOCKET, SO_TYPE), SOCK_DGRAM);
    OK(close(fd));
}

TEST(unix_protocol_pf_unix_accepted)
{
    /* protocol PF_UNIX (1) is the same as 0 for the kernel */
    int sv[2];
    OK(socketpair(AF_UNIX, SOCK_STREAM, PF_UNIX, sv));
    CHECK_EQ(OK(send(sv[0], "p", 1, 0)), 1);
    char c;
    CHECK_EQ(OK(recv(sv[1], &c, 1, 0)), 1);
    OK(close(sv[0]));
    OK(close(sv[1]));
    int fd = (int)OK(socket(AF_UNIX, SOCK_DGRAM, PF_UNIX));
    OK(close(fd));
}

/* ---- interface ioctls: the kernel's answer ---------------------------- */

struct sockkind {
    const char *name;
    int domain, type;
};
static const struct sockkind kinds[] = {
    {"tcp4", AF_INET, SOCK_STREAM},
    {"udp4", AF_INET, SOCK_DGRAM},
    {"tcp6", AF_INET6, SOCK_STREAM},
    {"udp6", AF_INET6, SOCK_DGRAM},
};
#define NKINDS (int)(sizeof kinds / sizeof kinds[0])

/* The ioctl on a socket() of each kind and on a kernel socket of the same
 * kind: same result, same errno, same bytes. */
static void ifreq_same_as_kernel(unsigned long req, const char *ifname, int ifindex)
{
    for (int i = 0; i < NKINDS; i++) {
        int fd = (int)OK(socket(kinds[i].domain, kinds[i].type, 0));
        int k = ksocket(kinds[i].domain, kinds[i].type, 0);
        CHECK(k >= 0);
        struct ifreq mine, want;
        memset(&mine, 0, sizeof mine);
        memset(&want, 0, sizeof want);
        if (ifname)
            snprintf(mine.ifr_name, IFNAMSIZ, "%s", ifname);
        else
            mine.ifr_ifindex = ifindex;
        want = mine;
        errno = 0;
        long kr = kioctl(k, req, &want);
        int kerr = errno;
        errno = 0;
        long r = ioctl(fd, req, &mine);
        int e = errno;
        CHECK_MSG(r == kr && (r == 0 || e == kerr),
                  "%s: ioctl(%#lx, %s): got %ld/%s, the kernel %ld/%s", kinds[i].name, req,
                  ifname ? ifname : "(index)", r, r ? tl_errname(e) : "0", kr,
                  kr ? tl_errname(kerr) : "0");
        CHECK_MSG(memcmp(&mine, &want, sizeof mine) == 0,
                  "%s: ioctl(%#lx, %s): the ifreq differs from the kernel's", kinds[i].name,
                  req, ifname ? ifname : "(index)");
        kclose(k);
        OK(close(fd));
    }
}

/* Every interface's name, from the kernel. */
static int interfaces(char names[][IFNAMSIZ], int max)
{
    struct if_nameindex *ni = if_nameindex();
    CHECK(ni != NULL);
    int n = 0;
    for (struct if_nameindex *p = ni; p->if_index && n < max; p++)
        snprintf(names[n++], IFNAMSIZ, "%s", p->if_name);
    if_freenameindex(ni);
    CHECK(n >= 1);
    return n;
}

#define IFREQ_CASE(name, req)                                                 \
    TEST(ioctl_##name)                                                        \
    {                                                                         \
        char names[32][IFNAMSIZ];                                             \
        int n = interfaces(names, 32);                                        \
        for (int i = 0; i < n; i++)                                           \
            ifreq_same_as_kernel(req, names[i], 0);                           \
        ifreq_same_as_kernel(req, "nosuchif0", 0);                            \
    }

IFREQ_CASE(siocgifflags, SIOCGIFFLAGS)
IFREQ_CASE(siocgifindex, SIOCGIFINDEX)
IFREQ_CASE(siocgifaddr, SIOCGIFADDR)
IFREQ_CASE(siocgifnetmask, SIOCGIFNETMASK)
IFREQ_CASE(siocgifbrdaddr, SIOCGIFBRDADDR)
IFREQ_CASE(siocgifdstaddr, SIOCGIFDSTADDR)
IFREQ_CASE(siocgifmtu, SIOCGIFMTU)
IFREQ_CASE(siocgifhwaddr, SIOCGIFHWADDR)
IFREQ_CASE(siocgiftxqlen, SIOCGIFTXQLEN)
IFREQ_CASE(siocgifmetric, SIOCGIFMETRIC)
IFREQ_CASE(siocgifmap, SIOCGIFMAP)
IFREQ_CASE(siocgiwname, SIOCGIWNAME)

TEST(ioctl_siocgifname)
{
    for (int idx = 0; idx <= 4; idx++)
        ifreq_same_as_kernel(SIOCGIFNAME, NULL, idx);
    ifreq_same_as_kernel(SIOCGIFNAME, NULL, 99999);
}

TEST(ioctl_lo_is_loopback)
{
    int fd = (int)OK(socket(AF_INET, SOCK_DGRAM, 0));
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, "lo");
    OK(ioctl(fd, SIOCGIFFLAGS, &ifr));
    CHECK(ifr.ifr_flags & IFF_LOOPBACK);
    CHECK(ifr.ifr_flags & IFF_UP);
    OK(ioctl(fd, SIOCGIFADDR, &ifr));
    struct sockaddr_in *a = (struct sockaddr_in *)&ifr.ifr_addr;
    CHECK_EQ(a->sin_family, AF_INET);
    CHECK_EQ(ntohl(a->sin_addr.s_addr), INADDR_LOOPBACK);
    OK(ioctl(fd, SIOCGIFINDEX, &ifr));
    CHECK_EQ(ifr.ifr_ifindex, (int)if_nametoindex("lo"));
    OK(ioctl(fd, SIOCGIFMTU, &ifr));
    char path[64];
    snprintf(path, sizeof path, "/sys/class/net/lo/mtu");
    FILE *f = fopen(path, "r");
    if (f) {
        int mtu = 0;
        CHECK_EQ(fscanf(f, "%d", &mtu), 1);
        fclose(f);
        CHECK_EQ(ifr.ifr_mtu, mtu);
    }
    CHECK_ERRNO(ioctl(fd, SIOCGIFFLAGS, &(struct ifreq){.ifr_name = "nosuchif0"}), ENODEV);
    OK(close(fd));
}

static void ifconf_same_as_kernel(int domain, int type)
{
    int fd = (int)OK(socket(domain, type, 0));
    int k = ksocket(domain, type, 0);
    CHECK(k >= 0);
    /* the length needed, asked with no buffer */
    struct ifconf mine = {.ifc_len = 0, .ifc_buf = NULL}, want = mine;
    OK(kioctl(k, SIOCGIFCONF, &want));
    OK(ioctl(fd, SIOCGIFCONF, &mine));
    CHECK_EQ(mine.ifc_len, want.ifc_len);
    CHECK(want.ifc_len >= (int)sizeof(struct ifreq)); /* lo at least */
    /* the list */
    static struct ifreq mbuf[64], kbuf[64];
    memset(mbuf, 0, sizeof mbuf);
    memset(kbuf, 0, sizeof kbuf);
    mine.ifc_len = want.ifc_len = sizeof mbuf;
    mine.ifc_req = mbuf;
    want.ifc_req = kbuf;
    OK(kioctl(k, SIOCGIFCONF, &want));
    OK(ioctl(fd, SIOCGIFCONF, &mine));
    CHECK_EQ(mine.ifc_len, want.ifc_len);
    CHECK(memcmp(mbuf, kbuf, (size_t)want.ifc_len) == 0);
    int lo = 0;
    for (int i = 0; i < want.ifc_len / (int)sizeof(struct ifreq); i++)
        lo |= strcmp(mbuf[i].ifr_name, "lo") == 0;
    CHECK(lo);
    /* a buffer for one entry: one entry */
    mine.ifc_len = want.ifc_len = sizeof(struct ifreq);
    OK(kioctl(k, SIOCGIFCONF, &want));
    OK(ioctl(fd, SIOCGIFCONF, &mine));
    CHECK_EQ(mine.ifc_len, want.ifc_len);
    kclose(k);
    OK(close(fd));
}

TEST(ioctl_siocgifconf)
{
    for (int i = 0; i < NKINDS; i++)
        ifconf_same_as_kernel(kinds[i].domain, kinds[i].type);
}

TEST(ioctl_siocethtool_lo)
{
    for (int i = 0; i < NKINDS; i++) {
        int fd = (int)OK(socket(kinds[i].domain, kinds[i].type, 0));
        int k = ksocket(kinds[i].domain, kinds[i].type, 0);
        struct ethtool_value mv = {.cmd = ETHTOOL_GLINK}, kv = mv;
        struct ifreq mine, want;
        memset(&mine, 0, sizeof mine);
        strcpy(mine.ifr_name, "lo");
        want = mine;
        mine.ifr_data = (char *)&mv;
        want.ifr_data = (char *)&kv;
        errno = 0;
        long kr = kioctl(k, SIOCETHTOOL, &want);
        int kerr = errno;
        errno = 0;
        long r = ioctl(fd, SIOCETHTOOL, &mine);
        CHECK_MSG(r == kr && (r == 0 || errno == kerr), "%s: SIOCETHTOOL: %ld/%s, kernel %ld/%s",
                  kinds[i].name, r, tl_errname(errno), kr, tl_errname(kerr));
        CHECK_EQ(mv.data, kv.data);
        kclose(k);
        OK(close(fd));
    }
}

TEST(ioctl_siocgskns_gives_the_netns)
{
    if (!tl_has_cap(CAP_NET_ADMIN))
        t_skip("root", "SIOCGSKNS needs CAP_NET_ADMIN");
    struct stat want;
    OK(stat("/proc/self/ns/net", &want));
    for (int i = 0; i < NKINDS; i++) {
        int fd = (int)OK(socket(kinds[i].domain, kinds[i].type, 0));
        int ns = (int)OK(ioctl(fd, SIOCGSKNS, 0));
        struct stat st;
        OK(fstat(ns, &st));
        CHECK_EQ(st.st_ino, want.st_ino);
        CHECK_EQ(st.st_dev, want.st_dev);
        OK(close(ns));
        OK(close(fd));
    }
}

TEST(ioctl_unknown_requests_as_kernel)
{
    static const unsigned long reqs[] = {TCGETS, TIOCGWINSZ, 0x89ff, SIOCGIFCOUNT, SIOCGARP};
    for (int i = 0; i < NKINDS; i++) {
        for (size_t r = 0; r < sizeof reqs / sizeof reqs[0]; r++) {
            int fd = (int)OK(socket(kinds[i].domain, kinds[i].type, 0));
            int k = ksocket(kinds[i].domain, kinds[i].type, 0);
            char mbuf[256], kbuf[256];
            memset(mbuf, 0, sizeof mbuf);
            memset(kbuf, 0, sizeof kbuf);
            errno = 0;
            long kr = kioctl(k, reqs[r], kbuf);
            int kerr = errno;
            errno = 0;
            long got = ioctl(fd, reqs[r], mbuf);
            CHECK_MSG(got == kr && (got == 0 || errno == kerr),
                      "%s: ioctl(%#lx): %ld/%s, kernel %ld/%s", kinds[i].name, reqs[r], got,
                      tl_errname(errno), kr, tl_errname(kerr));
            kclose(k);
            OK(close(fd));
        }
    }
}

/* Unprivileged: a set-interface ioctl is refused with the kernel's errno
 * (nothing is changed: the request would not change lo's flags anyway). */
static void unprivileged_siocsifflags(void *arg)
{
    (void)arg;
    for (int i = 0; i < NKINDS; i++) {
        int fd = (int)OK(socket(kinds[i].domain, kinds[i].type, 0));
        struct ifreq ifr;
        memset(&ifr, 0, sizeof ifr);
        strcpy(ifr.ifr_name, "lo");
        OK(ioctl(fd, SIOCGIFFLAGS, &ifr));
        CHECK_ERRNO(ioctl(fd, SIOCSIFFLAGS, &ifr), EPERM);
        OK(close(fd));
    }
}

TEST(ioctl_siocsifflags_without_cap_net_admin)
{
    if (!tl_has_cap(CAP_NET_ADMIN))
        t_skip("root", "needs CAP_NET_ADMIN to drop it");
    tl_in_child(unprivileged_siocsifflags, NULL, 1ULL << CAP_NET_ADMIN, -1, 10);
}

/* ---- ioctls answered from the socket's own state ---------------------- */

static int ival(int fd, unsigned long req)
{
    int v = -12345;
    CHECK_MSG(ioctl(fd, req, &v) == 0, "ioctl(%#lx): -1/%s", req, tl_errname(errno));
    return v;
}

TEST_INET(ioctl_siocgstamp_udp)
{
    int a, b;
    tl_dgram_pair(fam, &a, &b);
    struct timeval tv;
    struct timespec ts;
    CHECK_ERRNO(ioctl(b, SIOCGSTAMP, &tv), ENOENT); /* nothing received yet */
    CHECK_ERRNO(ioctl(b, SIOCGSTAMPNS, &ts), ENOENT);
    struct timespec t0, t1;
    clock_gettime(CLOCK_REALTIME, &t0);
    CHECK_EQ(OK(send(a, "stamp", 5, 0)), 5);
    char buf[8];
    CHECK(tl_poll1(b, POLLIN, 5000) & POLLIN);
    CHECK_EQ(OK(recv(b, buf, sizeof buf, 0)), 5);
    clock_gettime(CLOCK_REALTIME, &t1);
    OK(ioctl(b, SIOCGSTAMP, &tv));
    OK(ioctl(b, SIOCGSTAMPNS, &ts));
    long long us0 = (long long)t0.tv_sec * 1000000 + t0.tv_nsec / 1000;
    long long us1 = (long long)t1.tv_sec * 1000000 + t1.tv_nsec / 1000;
    long long us = (long long)tv.tv_sec * 1000000 + tv.tv_usec;
    long long nsg = (long long)ts.tv_sec * 1000000000 + ts.tv_nsec;
    /* the datagram's arrival: between the send and the end of the recv */
    CHECK_MSG(us >= us0 - 1 && us <= us1 + 1, "SIOCGSTAMP %lld not in [%lld, %lld]", us, us0,
              us1);
    CHECK_EQ(nsg / 1000, us); /* the same instant */
    CHECK(tv.tv_usec >= 0 && tv.tv_usec < 1000000);
    OK(close(a));
    OK(close(b));
}

TEST_INET(ioctl_siocgstamp_tcp)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    struct timeval tv;
    struct timespec ts;
    CHECK_ERRNO(ioctl(s, SIOCGSTAMP, &tv), ENOENT);
    CHECK_EQ(OK(send(c, "x", 1, 0)), 1);
    char ch;
    CHECK_EQ(OK(recv(s, &ch, 1, 0)), 1);
    /* TCP never records a receive time for SIOCGSTAMP */
    CHECK_ERRNO(ioctl(s, SIOCGSTAMP, &tv), ENOENT);
    CHECK_ERRNO(ioctl(s, SIOCGSTAMPNS, &ts), ENOENT);
    OK(close(c));
    OK(close(s));
}

TEST_INET(ioctl_siocinq)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    CHECK_EQ(ival(s, SIOCINQ), 0);
    CHECK_EQ(OK(send(c, "0123456789", 10, 0)), 10);
    long deadline = tl_now_ms() + 5000;
    while (ival(s, SIOCINQ) != 10 && tl_now_ms() < deadline)
        tl_poll1(s, POLLIN, 100);
    CHECK_EQ(ival(s, SIOCINQ), 10);
    CHECK_EQ(ival(s, TIOCINQ), 10);
    char buf[4];
    CHECK_EQ(OK(recv(s, buf, 4, 0)), 4);
    CHECK_EQ(ival(s, SIOCINQ), 6);
    int l = tl_listener(fam, 1);
    int v;
    CHECK_ERRNO(ioctl(l, SIOCINQ, &v), EINVAL);
    OK(close(l));
    OK(close(c));
    OK(close(s));

    /* UDP: the size of the first datagram */
    int a, b;
    tl_dgram_pair(fam, &a, &b);
    CHECK_EQ(OK(send(a, "12345", 5, 0)), 5);
    CHECK_EQ(OK(send(a, "1234567", 7, 0)), 7);
    CHECK(tl_poll1(b, POLLIN, 5000) & POLLIN);
    CHECK_EQ(ival(b, SIOCINQ), 5);
    OK(close(a));
    OK(close(b));
}

/* SIOCOUTQ: bytes not yet acknowledged (sent or not); SIOCOUTQNSD: bytes
 * not yet sent. With the peer's window full both are > 0; once the peer
 * reads everything both return to 0. */
TEST_INET(ioctl_siocoutq_and_outqnsd)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    CHECK_EQ(ival(c, SIOCOUTQ), 0);
    CHECK_EQ(ival(c, SIOCOUTQNSD), 0);
    CHECK_EQ(ival(c, TIOCOUTQ), 0);
    OK(fcntl(c, F_SETFL, O_NONBLOCK));
    static char buf[65536];
    long total = 0;
    long deadline = tl_now_ms() + 10000;
    for (;;) {
        CHECK(tl_now_ms() < deadline);
        ssize_t n = send(c, buf, sizeof buf, 0);
        if (n < 0) {
            CHECK_EQ(errno, EAGAIN);
            /* only stop when the kernel's queue is full for good */
            if (!(tl_poll1(c, POLLOUT, 50) & POLLOUT))
                break;
            continue;
        }
        total += n;
    }
    int outq = ival(c, SIOCOUTQ), nsd = ival(c, SIOCOUTQNSD);
    CHECK(outq > 0);
    CHECK(nsd > 0);
    CHECK(nsd <= outq);
    CHECK(outq <= total);
    struct tl_tcp_info ti;
    socklen_t tl = sizeof ti;
    OK(getsockopt(c, IPPROTO_TCP, TCP_INFO, &ti, &tl));
    CHECK_EQ(ti.tcpi_notsent_bytes, (unsigned)ival(c, SIOCOUTQNSD));
    /* drain */
    long got = 0;
    static char rbuf[65536];
    while (got < total) {
        CHECK(tl_now_ms() < deadline);
        ssize_t n = recv(s, rbuf, sizeof rbuf, MSG_DONTWAIT);
        if (n > 0)
            got += n;
        else
            tl_poll1(s, POLLIN, 100);
    }
    while ((ival(c, SIOCOUTQ) != 0 || ival(c, SIOCOUTQNSD) != 0) && tl_now_ms() < deadline)
        tl_poll1(s, POLLIN, 20);
    CHECK_EQ(ival(c, SIOCOUTQ), 0);
    CHECK_EQ(ival(c, SIOCOUTQNSD), 0);
    int l = tl_listener(fam, 1);
    int v;
    CHECK_ERRNO(ioctl(l, SIOCOUTQ, &v), EINVAL);
    CHECK_ERRNO(ioctl(l, SIOCOUTQNSD, &v), EINVAL);
    OK(close(l));
    /* a fresh socket has nothing queued */
    int f = (int)OK(socket(tl_domain(fam), SOCK_STREAM, 0));
    CHECK_EQ(ival(f, SIOCOUTQ), 0);
    OK(close(f));
    OK(close(c));
    OK(close(s));
}

TEST_INET(ioctl_siocoutq_udp)
{
    int a, b;
    tl_dgram_pair(fam, &a, &b);
    CHECK_EQ(ival(a, SIOCOUTQ), 0);
    CHECK_EQ(OK(send(a, "abc", 3, 0)), 3);
    CHECK(tl_poll1(b, POLLIN, 5000) & POLLIN);
    /* the datagram left: nothing is queued on the sender */
    long deadline = tl_now_ms() + 5000;
    while (ival(a, SIOCOUTQ) != 0 && tl_now_ms() < deadline)
        tl_poll1(a, 0, 10);
    CHECK_EQ(ival(a, SIOCOUTQ), 0);
    OK(close(a));
    OK(close(b));
}

TEST_INET(ioctl_siocatmark)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    CHECK_EQ(ival(s, SIOCATMARK), 0);
    CHECK_EQ(OK(send(c, "abc", 3, 0)), 3);
    CHECK_EQ(OK(send(c, "!", 1, MSG_OOB)), 1);
    CHECK(tl_poll1(s, POLLPRI, 5000) & POLLPRI);
    CHECK_EQ(ival(s, SIOCATMARK), 0); /* "abc" comes before the mark */
    char buf[8];
    CHECK_EQ(OK(recv(s, buf, sizeof buf, 0)), 3); /* a read stops at the mark */
    CHECK_EQ(ival(s, SIOCATMARK), 1);
    CHECK_EQ(OK(recv(s, buf, 1, MSG_OOB)), 1);
    CHECK_EQ(buf[0], '!');
    OK(close(c));
    OK(close(s));
}

static volatile sig_atomic_t sigio_count;
static void on_sigio(int sig)
{
    (void)sig;
    sigio_count++;
}

TEST_INET(ioctl_fioasync_and_siocspgrp)
{
    int a, b;
    tl_dgram_pair(fam, &a, &b);
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigio;
    OK(sigaction(SIGIO, &sa, &old));
    int pid = getpid();
    OK(ioctl(b, SIOCSPGRP, &pid));
    CHECK_EQ(ival(b, SIOCGPGRP), pid);
    CHECK_EQ(OK(fcntl(b, F_GETOWN)), pid);
    CHECK_EQ(ival(b, FIOGETOWN), pid);
    int on = 1;
    OK(ioctl(b, FIOASYNC, &on));
    CHECK(OK(fcntl(b, F_GETFL)) & O_ASYNC);
    sigio_count = 0;
    CHECK_EQ(OK(send(a, "io", 2, 0)), 2);
    long deadline = tl_now_ms() + 5000;
    while (sigio_count == 0 && tl_now_ms() < deadline)
        tl_poll1(b, 0, 10);
    CHECK(sigio_count > 0);
    int off = 0;
    OK(ioctl(b, FIOASYNC, &off));
    CHECK_EQ(OK(fcntl(b, F_GETFL)) & O_ASYNC, 0);
    OK(sigaction(SIGIO, &old, NULL));
    OK(close(a));
    OK(close(b));
}

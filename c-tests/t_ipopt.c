/*
 * t_ipopt.c - issue 13, class 3: every SOL_SOCKET, IP, IPv6 and UDP option
 * Linux accepts on TCP and UDP sockets.
 *
 *  - opt_*: for each option, on the four kinds of socket (TCP/UDP, IPv4/
 *    IPv6), the default, and the result, errno and value read back after
 *    setting each of a range of values, compared with a kernel socket of
 *    the same kind made by raw system calls (tl_opt_like_kernel: the
 *    kernel is the oracle; no value is assumed).
 *  - the behaviour: SO_*BUFFORCE and the privileges SO_PRIORITY, SO_MARK,
 *    IP_TRANSPARENT, SO_BINDTODEVICE need; SO_TIMESTAMP(NS|ING) and their
 *    cmsgs; classic BPF filters (SO_ATTACH_FILTER/SO_DETACH_FILTER/
 *    SO_LOCK_FILTER) dropping and trimming datagrams; SO_RCVLOWAT;
 *    SO_PEEK_OFF; SO_RXQ_OVFL; SO_COOKIE; IP_TOS/TTL, IPV6_TCLASS/
 *    UNICAST_HOPS and the cmsgs that report them; IP_PKTINFO/
 *    IPV6_RECVPKTINFO (and IP_PKTINFO on send); IP_RECVORIGDSTADDR;
 *    IP_MTU(_DISCOVER); IP_RECVERR/IPV6_RECVERR with MSG_ERRQUEUE for a
 *    port unreachable; IP_FREEBIND; IPV6_V6ONLY; multicast (membership,
 *    delivery to every member, LOOP, TTL, IF, MULTICAST_ALL) and broadcast
 *    with SO_BROADCAST; UDP_CORK, MSG_MORE and UDP_SEGMENT on UDP.
 */
#include "testlib.h"

#include <net/if.h>
#include <linux/capability.h>
#include <linux/errqueue.h>
#include <linux/filter.h>
#include <linux/net_tstamp.h>
#include <linux/sock_diag.h>
#include <linux/sockios.h>
#include <netinet/udp.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#ifndef UDP_CORK
#define UDP_CORK 1
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef IP_LOCAL_PORT_RANGE
#define IP_LOCAL_PORT_RANGE 51
#endif
#ifndef IP_PROTOCOL
#define IP_PROTOCOL 52
#endif
#ifndef SO_RCVMARK
#define SO_RCVMARK 75
#endif

struct kind {
    const char *name;
    int fam, type;
};
static const struct kind kinds[4] = {
    {"tcp4", FAM_INET, SOCK_STREAM},
    {"udp4", FAM_INET, SOCK_DGRAM},
    {"tcp6", FAM_INET6, SOCK_STREAM},
    {"udp6", FAM_INET6, SOCK_DGRAM},
};

/* ---- every option against the kernel's ---------------------------------- */

static const int vals[] = {-1, 0, 1, 2, 5, 7, 64, 255, 256, 1500, 65536, 1 << 24, 0x7fffffff};
#define NVALS (int)(sizeof vals / sizeof vals[0])

static void like_kernel(int level, int opt, int values_too)
{
    for (int i = 0; i < 4; i++)
        tl_opt_like_kernel(tl_domain(kinds[i].fam), kinds[i].type, level, opt, vals, NVALS,
                           values_too);
}

#define OPT(level, name) \
    TEST(opt_##name) { like_kernel(level, name, 1); }

OPT(SOL_SOCKET, SO_DEBUG)
OPT(SOL_SOCKET, SO_REUSEADDR)
OPT(SOL_SOCKET, SO_REUSEPORT)
OPT(SOL_SOCKET, SO_KEEPALIVE)
OPT(SOL_SOCKET, SO_DONTROUTE)
OPT(SOL_SOCKET, SO_BROADCAST)
OPT(SOL_SOCKET, SO_OOBINLINE)
OPT(SOL_SOCKET, SO_NO_CHECK)
OPT(SOL_SOCKET, SO_PRIORITY)
OPT(SOL_SOCKET, SO_SNDBUF)
OPT(SOL_SOCKET, SO_RCVBUF)
OPT(SOL_SOCKET, SO_SNDBUFFORCE)
OPT(SOL_SOCKET, SO_RCVBUFFORCE)
OPT(SOL_SOCKET, SO_RCVLOWAT)
OPT(SOL_SOCKET, SO_SNDLOWAT)
OPT(SOL_SOCKET, SO_RCVTIMEO)
OPT(SOL_SOCKET, SO_SNDTIMEO)
OPT(SOL_SOCKET, SO_LINGER)
OPT(SOL_SOCKET, SO_TIMESTAMP)
OPT(SOL_SOCKET, SO_TIMESTAMPNS)
OPT(SOL_SOCKET, SO_TIMESTAMPING)
OPT(SOL_SOCKET, SO_MARK)
OPT(SOL_SOCKET, SO_RCVMARK)
OPT(SOL_SOCKET, SO_RXQ_OVFL)
OPT(SOL_SOCKET, SO_WIFI_STATUS)
OPT(SOL_SOCKET, SO_PEEK_OFF)
OPT(SOL_SOCKET, SO_NOFCS)
OPT(SOL_SOCKET, SO_LOCK_FILTER)
OPT(SOL_SOCKET, SO_SELECT_ERR_QUEUE)
OPT(SOL_SOCKET, SO_BUSY_POLL)
OPT(SOL_SOCKET, SO_PREFER_BUSY_POLL)
OPT(SOL_SOCKET, SO_MAX_PACING_RATE)
OPT(SOL_SOCKET, SO_INCOMING_CPU)
OPT(SOL_SOCKET, SO_INCOMING_NAPI_ID)
OPT(SOL_SOCKET, SO_ZEROCOPY)
OPT(SOL_SOCKET, SO_TXTIME)
OPT(SOL_SOCKET, SO_BINDTOIFINDEX)
OPT(SOL_SOCKET, SO_BUF_LOCK)
OPT(SOL_SOCKET, SO_TXREHASH)
OPT(SOL_SOCKET, SO_ATTACH_FILTER)
OPT(SOL_SOCKET, SO_DETACH_FILTER)
OPT(SOL_SOCKET, SO_PEERCRED)
OPT(SOL_SOCKET, SO_PEERNAME)
OPT(SOL_SOCKET, SO_PEERSEC)
OPT(SOL_SOCKET, SO_MEMINFO)
OPT(SOL_SOCKET, SO_ERROR)
OPT(SOL_SOCKET, SO_TYPE)
OPT(SOL_SOCKET, SO_PROTOCOL)
OPT(SOL_SOCKET, SO_DOMAIN)
OPT(SOL_SOCKET, SO_ACCEPTCONN)
OPT(IPPROTO_IP, IP_TOS)
OPT(IPPROTO_IP, IP_TTL)
OPT(IPPROTO_IP, IP_HDRINCL)
OPT(IPPROTO_IP, IP_OPTIONS)
OPT(IPPROTO_IP, IP_RECVOPTS)
OPT(IPPROTO_IP, IP_RETOPTS)
OPT(IPPROTO_IP, IP_PKTINFO)
OPT(IPPROTO_IP, IP_MTU_DISCOVER)
OPT(IPPROTO_IP, IP_MTU)
OPT(IPPROTO_IP, IP_RECVERR)
OPT(IPPROTO_IP, IP_RECVERR_RFC4884)
OPT(IPPROTO_IP, IP_RECVTTL)
OPT(IPPROTO_IP, IP_RECVTOS)
OPT(IPPROTO_IP, IP_FREEBIND)
OPT(IPPROTO_IP, IP_PASSSEC)
OPT(IPPROTO_IP, IP_TRANSPARENT)
OPT(IPPROTO_IP, IP_RECVORIGDSTADDR)
OPT(IPPROTO_IP, IP_MINTTL)
OPT(IPPROTO_IP, IP_NODEFRAG)
OPT(IPPROTO_IP, IP_CHECKSUM)
OPT(IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT)
OPT(IPPROTO_IP, IP_RECVFRAGSIZE)
OPT(IPPROTO_IP, IP_MULTICAST_IF)
OPT(IPPROTO_IP, IP_MULTICAST_TTL)
OPT(IPPROTO_IP, IP_MULTICAST_LOOP)
OPT(IPPROTO_IP, IP_MULTICAST_ALL)
OPT(IPPROTO_IP, IP_UNICAST_IF)
OPT(IPPROTO_IP, IP_LOCAL_PORT_RANGE)
OPT(IPPROTO_IP, IP_PROTOCOL)
OPT(IPPROTO_IPV6, IPV6_V6ONLY)
OPT(IPPROTO_IPV6, IPV6_UNICAST_HOPS)
OPT(IPPROTO_IPV6, IPV6_MULTICAST_HOPS)
OPT(IPPROTO_IPV6, IPV6_MULTICAST_LOOP)
OPT(IPPROTO_IPV6, IPV6_MULTICAST_IF)
OPT(IPPROTO_IPV6, IPV6_MULTICAST_ALL)
OPT(IPPROTO_IPV6, IPV6_RECVPKTINFO)
OPT(IPPROTO_IPV6, IPV6_RECVHOPLIMIT)
OPT(IPPROTO_IPV6, IPV6_RECVTCLASS)
OPT(IPPROTO_IPV6, IPV6_TCLASS)
OPT(IPPROTO_IPV6, IPV6_RECVERR)
OPT(IPPROTO_IPV6, IPV6_RECVERR_RFC4884)
OPT(IPPROTO_IPV6, IPV6_MTU_DISCOVER)
OPT(IPPROTO_IPV6, IPV6_MTU)
OPT(IPPROTO_IPV6, IPV6_RECVPATHMTU)
OPT(IPPROTO_IPV6, IPV6_DONTFRAG)
OPT(IPPROTO_IPV6, IPV6_AUTOFLOWLABEL)
OPT(IPPROTO_IPV6, IPV6_FREEBIND)
OPT(IPPROTO_IPV6, IPV6_TRANSPARENT)
OPT(IPPROTO_IPV6, IPV6_RECVORIGDSTADDR)
OPT(IPPROTO_IPV6, IPV6_MINHOPCOUNT)
OPT(IPPROTO_IPV6, IPV6_ADDR_PREFERENCES)
OPT(IPPROTO_IPV6, IPV6_UNICAST_IF)
OPT(IPPROTO_IPV6, IPV6_RECVRTHDR)
OPT(IPPROTO_IPV6, IPV6_RECVHOPOPTS)
OPT(IPPROTO_IPV6, IPV6_RECVDSTOPTS)
OPT(IPPROTO_UDP, UDP_CORK)
OPT(IPPROTO_UDP, UDP_SEGMENT)
OPT(IPPROTO_UDP, UDP_GRO)
OPT(IPPROTO_UDP, UDP_NO_CHECK6_TX)
OPT(IPPROTO_UDP, UDP_NO_CHECK6_RX)

/* SO_COOKIE: a number of its own for each socket (so only the results and
 * lengths are compared with the kernel's), the same on every read. */
TEST(opt_so_cookie)
{
    like_kernel(SOL_SOCKET, SO_COOKIE, 0);
    int a = (int)OK(socket(AF_INET, SOCK_DGRAM, 0));
    int b = (int)OK(socket(AF_INET6, SOCK_STREAM, 0));
    uint64_t ca = 0, ca2 = 0, cb = 0;
    socklen_t l = sizeof ca;
    OK(getsockopt(a, SOL_SOCKET, SO_COOKIE, &ca, &l));
    CHECK_EQ(l, 8);
    OK(getsockopt(a, SOL_SOCKET, SO_COOKIE, &ca2, &l));
    OK(getsockopt(b, SOL_SOCKET, SO_COOKIE, &cb, &l));
    CHECK(ca != 0 && cb != 0);
    CHECK(ca == ca2);
    CHECK(ca != cb);
    l = 4;
    CHECK_ERRNO(getsockopt(a, SOL_SOCKET, SO_COOKIE, &ca, &l), EINVAL);
    OK(close(a));
    OK(close(b));
}

/* IP options take a byte as well as an int, and give a byte back when
 * asked for less than an int. */
TEST(ip_options_take_and_give_a_byte)
{
    int fd = (int)OK(socket(AF_INET, SOCK_DGRAM, 0));
    unsigned char c = 33;
    OK(setsockopt(fd, IPPROTO_IP, IP_TTL, &c, 1));
    CHECK_EQ(tl_getint(fd, IPPROTO_IP, IP_TTL), 33);
    unsigned char out[4] = {0xee, 0xee, 0xee, 0xee};
    socklen_t l = 1;
    OK(getsockopt(fd, IPPROTO_IP, IP_TTL, out, &l));
    CHECK_EQ(l, 1);
    CHECK_EQ(out[0], 33);
    CHECK_EQ(out[1], 0xee);
    c = 0x28;
    OK(setsockopt(fd, IPPROTO_IP, IP_TOS, &c, 1));
    CHECK_EQ(tl_getint(fd, IPPROTO_IP, IP_TOS), 0x28);
    c = 1;
    OK(setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &c, 1));
    CHECK_EQ(tl_getint(fd, IPPROTO_IP, IP_PKTINFO), 1);
    CHECK_ERRNO(setsockopt(fd, IPPROTO_IP, IP_TTL, &c, 0), EINVAL);
    OK(close(fd));
}

/* ---- privileges ----------------------------------------------------------- */

static void unprivileged_options(void *arg)
{
    (void)arg;
    for (int i = 0; i < 4; i++) {
        int fd = (int)OK(socket(tl_domain(kinds[i].fam), kinds[i].type, 0));
        /* within the unprivileged range, and beyond */
        tl_setint(fd, SOL_SOCKET, SO_PRIORITY, 6);
        CHECK_EQ(tl_getint(fd, SOL_SOCKET, SO_PRIORITY), 6);
        CHECK_ERRNO(setsockopt(fd, SOL_SOCKET, SO_PRIORITY, &(int){7}, sizeof(int)), EPERM);
        CHECK_ERRNO(setsockopt(fd, SOL_SOCKET, SO_MARK, &(int){42}, sizeof(int)), EPERM);
        CHECK_ERRNO(setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &(int){1 << 20}, sizeof(int)),
                    EPERM);
        CHECK_ERRNO(setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &(int){1 << 20}, sizeof(int)),
                    EPERM);
        int tl = kinds[i].fam == FAM_INET ? IPPROTO_IP : IPPROTO_IPV6;
        int to = kinds[i].fam == FAM_INET ? IP_TRANSPARENT : IPV6_TRANSPARENT;
        CHECK_ERRNO(setsockopt(fd, tl, to, &(int){1}, sizeof(int)), EPERM);
        /* SO_BINDTODEVICE: an unbound socket may bind, but not change it */
        OK(setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, "lo", 3));
        CHECK_ERRNO(setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, "", 0), EPERM);
        OK(close(fd));
    }
}

TEST(privileged_options_refused_without_caps)
{
    if (!tl_has_cap(CAP_NET_ADMIN) || !tl_has_cap(CAP_NET_RAW))
        t_skip("root", "needs CAP_NET_ADMIN and CAP_NET_RAW to drop them");
    tl_in_child(unprivileged_options, NULL, (1ULL << CAP_NET_ADMIN) | (1ULL << CAP_NET_RAW), -1,
                10);
}

TEST(privileged_options_as_root)
{
    if (!tl_has_cap(CAP_NET_ADMIN) || !tl_has_cap(CAP_NET_RAW))
        t_skip("root", "needs CAP_NET_ADMIN and CAP_NET_RAW");
    long rmax = tl_sysctl("/proc/sys/net/core/rmem_max");
    long wmax = tl_sysctl("/proc/sys/net/core/wmem_max");
    for (int i = 0; i < 4; i++) {
        int fd = (int)OK(socket(tl_domain(kinds[i].fam), kinds[i].type, 0));
        /* the *FORCE options go past rmem_max/wmem_max, then double */
        int want = (int)(rmax + 4096);
        tl_setint(fd, SOL_SOCKET, SO_RCVBUFFORCE, want);
        CHECK_EQ(tl_getint(fd, SOL_SOCKET, SO_RCVBUF), 2 * want);
        want = (int)(wmax + 4096);
        tl_setint(fd, SOL_SOCKET, SO_SNDBUFFORCE, want);
        CHECK_EQ(tl_getint(fd, SOL_SOCKET, SO_SNDBUF), 2 * want);
        tl_setint(fd, SOL_SOCKET, SO_PRIORITY, 100);
        CHECK_EQ(tl_getint(fd, SOL_SOCKET, SO_PRIORITY), 100);
        tl_setint(fd, SOL_SOCKET, SO_MARK, 42);
        CHECK_EQ(tl_getint(fd, SOL_SOCKET, SO_MARK), 42);
        int tl = kinds[i].fam == FAM_INET ? IPPROTO_IP : IPPROTO_IPV6;
        int to = kinds[i].fam == FAM_INET ? IP_TRANSPARENT : IPV6_TRANSPARENT;
        tl_setint(fd, tl, to, 1);
        CHECK_EQ(tl_getint(fd, tl, to), 1);
        OK(close(fd));
    }
}

/* IP_TOS also sets the socket's priority (rt_tos2priority). */
TEST(ip_tos_sets_priority)
{
    int fd = (int)OK(socket(AF_INET, SOCK_DGRAM, 0));
    tl_setint(fd, IPPROTO_IP, IP_TOS, 0x10); /* IPTOS_LOWDELAY */
    CHECK_EQ(tl_getint(fd, SOL_SOCKET, SO_PRIORITY), 6); /* TC_PRIO_INTERACTIVE */
    tl_setint(fd, IPPROTO_IP, IP_TOS, 0x08); /* IPTOS_THROUGHPUT */
    CHECK_EQ(tl_getint(fd, SOL_SOCKET, SO_PRIORITY), 2); /* TC_PRIO_BULK */
    OK(close(fd));
    /* on TCP, the ECN bits of IP_TOS are the stack's */
    int t = (int)OK(socket(AF_INET, SOCK_STREAM, 0));
    tl_setint(t, IPPROTO_IP, IP_TOS, 0x13);
    CHECK_EQ(tl_getint(t, IPPROTO_IP, IP_TOS), 0x10);
    OK(close(t));
}

/* ---- SO_BINDTODEVICE -------------------------------------------------------- */

TEST(so_bindtodevice_lo)
{
    int lo = (int)if_nametoindex("lo");
    for (int i = 0; i < 4; i++) {
        int fd = (int)OK(socket(tl_domain(kinds[i].fam), kinds[i].type, 0));
        char name[IFNAMSIZ];
        socklen_t nl = sizeof name;
        OK(getsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, name, &nl));
        CHECK_EQ(nl, 0);
        OK(setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, "lo", 3));
        nl = sizeof name;
        OK(getsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, name, &nl));
        CHECK_EQ(nl, 3);
        CHECK(strcmp(name, "lo") == 0);
        CHECK_EQ(tl_getint(fd, SOL_SOCKET, SO_BINDTOIFINDEX), lo);
        CHECK_ERRNO(setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, "nosuchif0", 10), ENODEV);
        OK(setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, "", 0));
        CHECK_EQ(tl_getint(fd, SOL_SOCKET, SO_BINDTOIFINDEX), 0);
        OK(close(fd));
    }
    /* bound to lo, a connection over loopback still works */
    int l = (int)OK(socket(AF_INET, SOCK_STREAM, 0));
    OK(setsockopt(l, SOL_SOCKET, SO_BINDTODEVICE, "lo", 3));
    struct sockaddr_storage ss;
    socklen_t sl = tl_loop(FAM_INET, &ss, 0);
    OK(bind(l, (struct sockaddr *)&ss, sl));
    OK(listen(l, 2));
    sl = tl_name(l, &ss);
    int c = (int)OK(socket(AF_INET, SOCK_STREAM, 0));
    OK(setsockopt(c, SOL_SOCKET, SO_BINDTODEVICE, "lo", 3));
    OK(connect(c, (struct sockaddr *)&ss, sl));
    int s = (int)OK(accept(l, NULL, NULL));
    CHECK_EQ(tl_getint(s, SOL_SOCKET, SO_BINDTOIFINDEX), lo); /* inherited */
    OK(close(c));
    OK(close(s));
    OK(close(l));
}

/* ---- timestamps ------------------------------------------------------------ */

static long long ts_us(const struct timespec *t) { return (long long)t->tv_sec * 1000000 + t->tv_nsec / 1000; }

/* recvmsg with room for cmsgs; returns the byte count. */
static ssize_t recv_cmsg(int fd, void *buf, size_t n, void *ctl, size_t cn, struct msghdr *m,
                         struct sockaddr_storage *from)
{
    static struct iovec iov;
    iov.iov_base = buf;
    iov.iov_len = n;
    memset(m, 0, sizeof *m);
    m->msg_iov = &iov;
    m->msg_iovlen = 1;
    m->msg_control = ctl;
    m->msg_controllen = cn;
    if (from) {
        m->msg_name = from;
        m->msg_namelen = sizeof *from;
    }
    return OK(recvmsg(fd, m, 0));
}

static struct cmsghdr *find_cmsg(struct msghdr *m, int level, int type)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c))
        if (c->cmsg_level == level && c->cmsg_type == type)
            return c;
    return NULL;
}

static int count_cmsgs(struct msghdr *m)
{
    int n = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c))
        n++;
    return n;
}

/* The kernel turns receive timestamps on for the whole system a moment
 * after the first socket asks (net_enable_timestamp: a static key flipped
 * from a work queue); until then TCP and SO_TIMESTAMPING have no stamp to
 * report. Sends from a to b until a message carries the cmsg (bounded). */
static void warm_timestamps(int a, int b, int type)
{
    long deadline = tl_now_ms() + 5000;
    for (;;) {
        CHECK(tl_now_ms() < deadline);
        CHECK_EQ(OK(send(a, "w", 1, 0)), 1);
        CHECK(tl_poll1(b, POLLIN, 5000) & POLLIN);
        union {
            char b[512];
            struct cmsghdr align;
        } ctl;
        char buf[8];
        struct msghdr m;
        CHECK_EQ(recv_cmsg(b, buf, sizeof buf, ctl.b, sizeof ctl.b, &m, NULL), 1);
        if (find_cmsg(&m, SOL_SOCKET, type))
            return;
        tl_sleep_ms(10);
    }
}

TEST_INET(so_timestamp_cmsgs_udp)
{
    int a, b;
    tl_dgram_pair(fam, &a, &b);
    union {
        char b[256];
        struct cmsghdr align;
    } ctl;
    char buf[16];
    struct msghdr m;
    struct timespec t0, t1;
    /* SO_TIMESTAMP: a struct timeval */
    tl_setint(b, SOL_SOCKET, SO_TIMESTAMP, 1);
    clock_gettime(CLOCK_REALTIME, &t0);
    CHECK_EQ(OK(send(a, "t1", 2, 0)), 2);
    CHECK(tl_poll1(b, POLLIN, 5000) & POLLIN);
    CHECK_EQ(recv_cmsg(b, buf, sizeof buf, ctl.b, sizeof ctl.b, &m, NULL), 2);
    clock_gettime(CLOCK_REALTIME, &t1);
    struct cmsghdr *c = find_cmsg(&m, SOL_SOCKET, SCM_TIMESTAMP);
    CHECK(c != NULL);
    CHECK_EQ(c->cmsg_len, CMSG_LEN(sizeof(struct timeval)));
    struct timeval tv;
    memcpy(&tv, CMSG_DATA(c), sizeof tv);
    long long us = (long long)tv.tv_sec * 1000000 + tv.tv_usec;
    CHECK(us >= ts_us(&t0) - 1 && us <= ts_us(&t1) + 1);
    CHECK_EQ(count_cmsgs(&m), 1);
    /* SO_TIMESTAMPNS: a struct timespec (and SO_TIMESTAMP then reads 0) */
    tl_setint(b, SOL_SOCKET, SO_TIMESTAMPNS, 1);
    CHECK_EQ(tl_getint(b, SOL_SOCKET, SO_TIMESTAMP), 0);
    CHECK_EQ(tl_getint(b, SOL_SOCKET, SO_TIMESTAMPNS), 1);
    clock_gettime(CLOCK_REALTIME, &t0);
    CHECK_EQ(OK(send(a, "t2", 2, 0)), 2);
    CHECK(tl_poll1(b, POLLIN, 5000) & POLLIN);
    CHECK_EQ(recv_cmsg(b, buf, sizeof buf, ctl.b, sizeof ctl.b, &m, NULL), 2);
    clock_gettime(CLOCK_REALTIME, &t1);
    c = find_cmsg(&m, SOL_SOCKET, SCM_TIMESTAMPNS);
    CHECK(c != NULL);
    CHECK_EQ(c->cmsg_len, CMSG_LEN(sizeof(struct timespec)));
    struct timespec ts;
    memcpy(&ts, CMSG_DATA(c), sizeof ts);
    CHECK(ts_us(&ts) >= ts_us(&t0) - 1 && ts_us(&ts) <= ts_us(&t1) + 1);
    CHECK_EQ(count_cmsgs(&m), 1);
    /* no room for the cmsg: MSG_CTRUNC */
    CHECK_EQ(OK(send(a, "t3", 2, 0)), 2);
    CHECK(tl_poll1(b, POLLIN, 5000) & POLLIN);
    CHECK_EQ(recv_cmsg(b, buf, sizeof buf, ctl.b, CMSG_LEN(4), &m, NULL), 2);
    CHECK(m.msg_flags & MSG_CTRUNC);
    OK(close(a));
    OK(close(b));
}

TEST_INET(so_timestamp_cmsg_tcp)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    tl_setint(s, SOL_SOCKET, SO_TIMESTAMP, 1);
    warm_timestamps(c, s, SCM_TIMESTAMP);
    struct timespec t0, t1;
    clock_gettime(CLOCK_REALTIME, &t0);
    CHECK_EQ(OK(send(c, "stream", 6, 0)), 6);
    CHECK(tl_poll1(s, POLLIN, 5000) & POLLIN);
    union {
        char b[256];
        struct cmsghdr align;
    } ctl;
    char buf[16];
    struct msghdr m;
    CHECK_EQ(recv_cmsg(s, buf, sizeof buf, ctl.b, sizeof ctl.b, &m, NULL), 6);
    clock_gettime(CLOCK_REALTIME, &t1);
    struct cmsghdr *cm = find_cmsg(&m, SOL_SOCKET, SCM_TIMESTAMP);
    CHECK(cm != NULL);
    struct timeval tv;
    memcpy(&tv, CMSG_DATA(cm), sizeof tv);
    long long us = (long long)tv.tv_sec * 1000000 + tv.tv_usec;
    CHECK(us >= ts_us(&t0) - 1 && us <= ts_us(&t1) + 1);
    OK(close(c));
    OK(close(s));
}

TEST_INET(so_timestamping_rx_software)
{
    int a, b;
    tl_dgram_pair(fam, &a, &b);
    int flags = SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE;
    tl_setint(b, SOL_SOCKET, SO_TIMESTAMPING, flags);
    CHECK_EQ(tl_getint(b, SOL_SOCKET, SO_TIMESTAMPING), flags);
    CHECK_ERRNO(setsockopt(b, SOL_SOCKET, SO_TIMESTAMPING, &(int){1 << 30}, sizeof(int)),
                EINVAL);
    CHECK_EQ(tl_getint(b, SOL_SOCKET, SO_TIMESTAMPING), flags);
    warm_timestamps(a, b, SCM_TIMESTAMPING);
    struct timespec t0, t1;
    clock_gettime(CLOCK_REALTIME, &t0);
    CHECK_EQ(OK(send(a, "rx", 2, 0)), 2);
    CHECK(tl_poll1(b, POLLIN, 5000) & POLLIN);
    union {
        char b[256];
        struct cmsghdr align;
    } ctl;
    char buf[8];
    struct msghdr m;
    CHECK_EQ(recv_cmsg(b, buf, sizeof buf, ctl.b, sizeof ctl.b, &m, NULL), 2);
    clock_gettime(CLOCK_REALTIME, &t1);
    struct cmsghdr *c = find_cmsg(&m, SOL_SOCKET, SCM_TIMESTAMPING);
    CHECK(c != NULL);
    struct timespec tss[3];
    CHECK_EQ(c->cmsg_len, CMSG_LEN(sizeof tss));
    memcpy(tss, CMSG_DATA(c), sizeof tss);
    CHECK(ts_us(&tss[0]) >= ts_us(&t0) - 1 && ts_us(&tss[0]) <= ts_us(&t1) + 1);
    CHECK_EQ(tss[2].tv_sec, 0); /* no hardware stamp */
    OK(close(a));
    OK(close(b));
}

TEST_INET(so_timestamping_tx_software_on_error_queue)
{
    int a, b;
    tl_dgram_pair(fam, &a, &b);
    int flags = SOF_TIMESTAMPING_TX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE;
    tl_setint(a, SOL_SOCKET, SO_TIMESTAMPING, flags);
    CHECK_EQ(OK(send(a, "tx", 2, 0)), 2);
    CHECK(tl_poll1(a, POLLERR, 5000) & POLLERR);
    union {
        char b[512];
        struct cmsghdr align;
    } ctl;
    char buf[64];
    struct iovec iov = {buf, sizeof buf};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b,
                       .msg_controllen = sizeof ctl.b};
    OK(recvmsg(a, &m, MSG_ERRQUEUE));
    CHECK(m.msg_flags & MSG_ERRQUEUE);
    CHECK(find_cmsg(&m, SOL_SOCKET, SCM_TIMESTAMPING) != NULL);
    struct cmsghdr *e = find_cmsg(&m, fam == FAM_INET ? SOL_IP : SOL_IPV6,
                                  fam == FAM_INET ? IP_RECVERR : IPV6_RECVERR);
    CHECK(e != NULL);
    struct sock_extended_err ee;
    memcpy(&ee, CMSG_DATA(e), sizeof ee);
    CHECK_EQ(ee.ee_errno, ENOMSG);
    CHECK_EQ(ee.ee_origin, SO_EE_ORIGIN_TIMESTAMPING);
    CHECK_EQ(ee.ee_info, SCM_TSTAMP_SND);
    char r[4];
    CHECK_EQ(OK(recv(b, r, sizeof r, 0)), 2);
    OK(close(a));
    OK(close(b));
}

/* ---- classic BPF ----------------------------------------------------------- */

static void attach(int fd, struct sock_filter *code, unsigned short n)
{
    struct sock_fprog prog = {n, code};
    OK(setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog));
}

static void send_to(int from, int to, const char *msg)
{
    struct sockaddr_storage ss;
    socklen_t l = tl_name(to, &ss);
    CHECK_EQ(OK(sendto(from, msg, strlen(msg), 0, (struct sockaddr *)&ss, l)), (long)strlen(msg));
}

static void expect_dgram(int fd, const char *want)
{
    char buf[64];
    CHECK(tl_poll1(fd, POLLIN, 5000) & POLLIN);
    ssize_t n = OK(recv(fd, buf, sizeof buf, 0));
    CHECK_MSG(n == (ssize_t)strlen(want) && memcmp(buf, want, (size_t)n) == 0,
              "received '%.*s' (%zd bytes), expected '%s'", (int)(n > 0 ? n : 0), buf, n, want);
}

/* A filter sees the datagram from its UDP header: the payload starts at
 * offset 8. This one keeps datagrams whose first payload byte is 'A'. */
TEST_INET(so_attach_filter_drops_datagrams)
{
    int a = tl_bound(fam, SOCK_DGRAM), b = tl_bound(fam, SOCK_DGRAM);
    struct sock_filter keep_a[] = {
        BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 8),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 'A', 0, 1),
        BPF_STMT(BPF_RET | BPF_K, 0xffff),
        BPF_STMT(BPF_RET | BPF_K, 0),
    };
    attach(b, keep_a, 4);
    /* SO_GET_FILTER: with no room, the number of instructions */
    socklen_t n = 0;
    OK(getsockopt(b, SOL_SOCKET, SO_GET_FILTER, NULL, &n));
    CHECK_EQ(n, 4);
    send_to(a, b, "B1");
    send_to(a, b, "A2");
    send_to(a, b, "B3");
    send_to(a, b, "A4");
    OK(setsockopt(b, SOL_SOCKET, SO_DETACH_FILTER, &(int){0}, sizeof(int)));
    send_to(a, b, "Z5"); /* after the filter: kept */
    expect_dgram(b, "A2");
    expect_dgram(b, "A4");
    expect_dgram(b, "Z5");
    CHECK_ERRNO(setsockopt(b, SOL_SOCKET, SO_DETACH_FILTER, &(int){0}, sizeof(int)), ENOENT);
    OK(close(a));
    OK(close(b));
}

/* A filter returning a length keeps that much of the packet, counted from
 * the UDP header: 12 keeps 4 bytes of payload. */
TEST_INET(so_attach_filter_trims_datagrams)
{
    int a = tl_bound(fam, SOCK_DGRAM), b = tl_bound(fam, SOCK_DGRAM);
    struct sock_filter trim[] = {BPF_STMT(BPF_RET | BPF_K, 12)};
    attach(b, trim, 1);
    send_to(a, b, "abcdefgh");
    expect_dgram(b, "abcd");
    struct sock_filter drop_all[] = {BPF_STMT(BPF_RET | BPF_K, 0)};
    attach(b, drop_all, 1); /* replaces the first */
    send_to(a, b, "dropped");
    OK(setsockopt(b, SOL_SOCKET, SO_DETACH_FILTER, &(int){0}, sizeof(int)));
    send_to(a, b, "kept");
    expect_dgram(b, "kept");
    OK(close(a));
    OK(close(b));
}

TEST(so_attach_filter_errors_and_lock)
{
    int b = tl_bound(FAM_INET, SOCK_DGRAM);
    struct sock_fprog empty = {0, NULL};
    CHECK_ERRNO(setsockopt(b, SOL_SOCKET, SO_ATTACH_FILTER, &empty, sizeof empty), EINVAL);
    struct sock_filter bad_jump[] = {BPF_JUMP(BPF_JMP | BPF_JA, 5, 0, 0),
                                     BPF_STMT(BPF_RET | BPF_K, 0)};
    struct sock_fprog bad = {2, bad_jump};
    CHECK_ERRNO(setsockopt(b, SOL_SOCKET, SO_ATTACH_FILTER, &bad, sizeof bad), EINVAL);
    struct sock_filter no_ret[] = {BPF_STMT(BPF_LD | BPF_W | BPF_LEN, 0)};
    struct sock_fprog noret = {1, no_ret};
    CHECK_ERRNO(setsockopt(b, SOL_SOCKET, SO_ATTACH_FILTER, &noret, sizeof noret), EINVAL);
    CHECK_ERRNO(setsockopt(b, SOL_SOCKET, SO_ATTACH_FILTER, &empty, 4), EINVAL);
    struct sock_filter all[] = {BPF_STMT(BPF_RET | BPF_K, 0xffff)};
    attach(b, all, 1);
    tl_setint(b, SOL_SOCKET, SO_LOCK_FILTER, 1);
    CHECK_EQ(tl_getint(b, SOL_SOCKET, SO_LOCK_FILTER), 1);
    struct sock_fprog one = {1, all};
    CHECK_ERRNO(setsockopt(b, SOL_SOCKET, SO_ATTACH_FILTER, &one, sizeof one), EPERM);
    CHECK_ERRNO(setsockopt(b, SOL_SOCKET, SO_DETACH_FILTER, &(int){0}, sizeof(int)), EPERM);
    CHECK_ERRNO(setsockopt(b, SOL_SOCKET, SO_LOCK_FILTER, &(int){0}, sizeof(int)), EPERM);
    OK(close(b));
}

/* ---- SO_RCVLOWAT ------------------------------------------------------------ */

static int inq(int fd)
{
    int n = -1;
    OK(ioctl(fd, FIONREAD, &n));
    return n;
}

static void wait_inq(int fd, int n)
{
    long deadline = tl_now_ms() + 5000;
    while (inq(fd) < n) {
        CHECK(tl_now_ms() < deadline);
        tl_poll1(fd, 0, 5);
    }
}

TEST_INET(so_rcvlowat_tcp_readiness)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    tl_setint(s, SOL_SOCKET, SO_RCVLOWAT, 10);
    CHECK_EQ(tl_getint(s, SOL_SOCKET, SO_RCVLOWAT), 10);
    CHECK_EQ(OK(send(c, "12345", 5, 0)), 5);
    wait_inq(s, 5);
    CHECK_EQ(tl_poll1(s, POLLIN, 0), 0); /* 5 bytes waiting, fewer than 10 */
    CHECK_EQ(OK(send(c, "67890", 5, 0)), 5);
    wait_inq(s, 10);
    CHECK(tl_poll1(s, POLLIN, 0) & POLLIN);
    char buf[16];
    CHECK_EQ(OK(recv(s, buf, sizeof buf, 0)), 10);
    /* a blocking recv waits for the low-water mark */
    CHECK_EQ(OK(send(c, "abc", 3, 0)), 3);
    wait_inq(s, 3);
    CHECK_EQ(OK(send(c, "defghijk", 8, 0)), 8);
    CHECK_EQ(OK(recv(s, buf, sizeof buf, 0)), 11);
    /* EOF makes it readable whatever the mark */
    CHECK_EQ(OK(send(c, "xy", 2, 0)), 2);
    OK(shutdown(c, SHUT_WR));
    CHECK(tl_poll1(s, POLLIN, 5000) & POLLIN);
    CHECK_EQ(OK(recv(s, buf, sizeof buf, 0)), 2);
    CHECK_EQ(OK(recv(s, buf, sizeof buf, 0)), 0);
    OK(close(c));
    OK(close(s));
}

TEST_INET(so_rcvlowat_tcp_limits)
{
    long rmem2 = 0;
    char line[128];
    tl_sysctl_str("/proc/sys/net/ipv4/tcp_rmem", line, sizeof line);
    long r0, r1;
    CHECK(sscanf(line, "%ld %ld %ld", &r0, &r1, &rmem2) == 3);
    int fd = (int)OK(socket(tl_domain(fam), SOCK_STREAM, 0));
    CHECK_EQ(tl_getint(fd, SOL_SOCKET, SO_RCVLOWAT), 1);
    tl_setint(fd, SOL_SOCKET, SO_RCVLOWAT, 0x7fffffff); /* at most half of tcp_rmem[2] */
    CHECK_EQ(tl_getint(fd, SOL_SOCKET, SO_RCVLOWAT), rmem2 / 2);
    tl_setint(fd, SOL_SOCKET, SO_RCVLOWAT, -1); /* negative: INT_MAX, so the same */
    CHECK_EQ(tl_getint(fd, SOL_SOCKET, SO_RCVLOWAT), rmem2 / 2);
    tl_setint(fd, SOL_SOCKET, SO_RCVLOWAT, 0); /* 0: 1 */
    CHECK_EQ(tl_getint(fd, SOL_SOCKET, SO_RCVLOWAT), 1);
    /* with SO_RCVBUF set, half of it */
    tl_setint(fd, SOL_SOCKET, SO_RCVBUF, 100000);
    tl_setint(fd, SOL_SOCKET, SO_RCVLOWAT, 0x7fffffff);
    CHECK_EQ(tl_getint(fd, SOL_SOCKET, SO_RCVLOWAT), tl_getint(fd, SOL_SOCKET, SO_RCVBUF) / 2);
    OK(close(fd));
}

/* UDP readiness ignores SO_RCVLOWAT: one datagram is readable. */
TEST_INET(so_rcvlowat_udp_ignored)
{
    int a, b;
    tl_dgram_pair(fam, &a, &b);
    tl_setint(b, SOL_SOCKET, SO_RCVLOWAT, 100);
    CHECK_EQ(tl_getint(b, SOL_SOCKET, SO_RCVLOWAT), 100);
    CHECK_EQ(OK(send(a, "tiny", 4, 0)), 4);
    CHECK(tl_poll1(b, POLLIN, 5000) & POLLIN);
    char buf[8];
    CHECK_EQ(OK(recv(b, buf, sizeof buf, 0)), 4);
    OK(close(a));
    OK(close(b));
}

/* ---- SO_PEEK_OFF, SO_RXQ_OVFL, SO_PEERNAME, SO_MEMINFO, SO_INCOMING_CPU --- */

TEST_INET(so_peek_off_tcp)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    CHECK_EQ(tl_getint(s, SOL_SOCKET, SO_PEEK_OFF), -1);
    tl_setint(s, SOL_SOCKET, SO_PEEK_OFF, 0);
    CHECK_EQ(OK(send(c, "abcdefgh", 8, 0)), 8);
    wait_inq(s, 8);
    char buf[8];
    CHECK_EQ(OK(recv(s, buf, 2, MSG_PEEK)), 2);
    CHECK(memcmp(buf, "ab", 2) == 0);
    CHECK_EQ(OK(recv(s, buf, 2, MSG_PEEK)), 2);
    CHECK(memcmp(buf, "cd", 2) == 0); /* the peek offset moved */
    CHECK_EQ(tl_getint(s, SOL_SOCKET, SO_PEEK_OFF), 4);
    CHECK_EQ(OK(recv(s, buf, 3, 0)), 3); /* a read moves it back */
    CHECK(memcmp(buf, "abc", 3) == 0);
    CHECK_EQ(tl_getint(s, SOL_SOCKET, SO_PEEK_OFF), 1);
    CHECK_EQ(OK(recv(s, buf, 2, MSG_PEEK)), 2);
    CHECK(memcmp(buf, "ef", 2) == 0);
    OK(close(c));
    OK(close(s));
}

TEST_INET(so_peek_off_udp)
{
    int a, b;
    tl_dgram_pair(fam, &a, &b);
    tl_setint(b, SOL_SOCKET, SO_PEEK_OFF, 0);
    CHECK_EQ(OK(send(a, "0123456789", 10, 0)), 10);
    CHECK(tl_poll1(b, POLLIN, 5000) & POLLIN);
    char buf[16];
    CHECK_EQ(OK(recv(b, buf, 4, MSG_PEEK)), 4);
    CHECK(memcmp(buf, "0123", 4) == 0);
    CHECK_EQ(OK(recv(b, buf, 4, MSG_PEEK)), 4);
    CHECK(memcmp(buf, "4567", 4) == 0);
    CHECK_EQ(OK(recv(b, buf, sizeof buf, 0)), 10); /* the whole datagram */
    CHECK_EQ(tl_getint(b, SOL_SOCKET, SO_PEEK_OFF), 0);
    OK(close(a));
    OK(close(b));
}

/* SO_RXQ_OVFL: a datagram queued after drops carries the socket's drop
 * count so far (those queued before any drop carry no cmsg). */
TEST_INET(so_rxq_ovfl_counts_drops)
{
    int a, b;
    tl_dgram_pair(fam, &a, &b);
    tl_setint(b, SOL_SOCKET, SO_RCVBUF, 4096);
    tl_setint(b, SOL_SOCKET, SO_RXQ_OVFL, 1);
    static char payload[1000];
    const int sent = 200;
    for (int i = 0; i < sent; i++)
        CHECK_EQ(OK(send(a, payload, sizeof payload, 0)), (long)sizeof payload);
    union {
        char b[256];
        struct cmsghdr align;
    } ctl;
    char buf[1000];
    struct msghdr m;
    int got = 0;
    CHECK(tl_poll1(b, POLLIN, 5000) & POLLIN);
    while (tl_poll1(b, POLLIN, 200) & POLLIN) {
        CHECK_EQ(recv_cmsg(b, buf, sizeof buf, ctl.b, sizeof ctl.b, &m, NULL), 1000);
        CHECK(find_cmsg(&m, SOL_SOCKET, SO_RXQ_OVFL) == NULL);
        got++;
    }
    CHECK(got > 0 && got < sent);
    CHECK_EQ(OK(send(a, "last", 4, 0)), 4);
    CHECK(tl_poll1(b, POLLIN, 5000) & POLLIN);
    CHECK_EQ(recv_cmsg(b, buf, sizeof buf, ctl.b, sizeof ctl.b, &m, NULL), 4);
    struct cmsghdr *c = find_cmsg(&m, SOL_SOCKET, SO_RXQ_OVFL);
    CHECK(c != NULL);
    CHECK_EQ(c->cmsg_len, CMSG_LEN(sizeof(uint32_t)));
    uint32_t drops;
    memcpy(&drops, CMSG_DATA(c), sizeof drops);
    CHECK_EQ((long)drops, (long)(sent - got));
    OK(close(a));
    OK(close(b));
}

TEST_INET(so_peername_and_peercred)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    struct sockaddr_storage a, b;
    socklen_t bl = sizeof b;
    OK(getpeername(c, (struct sockaddr *)&b, &bl));
    /* SO_PEERNAME wants a buffer no larger than the address */
    socklen_t al = sizeof a;
    CHECK_ERRNO(getsockopt(c, SOL_SOCKET, SO_PEERNAME, &a, &al), EINVAL);
    al = bl;
    OK(getsockopt(c, SOL_SOCKET, SO_PEERNAME, &a, &al));
    CHECK_EQ(al, bl);
    CHECK(memcmp(&a, &b, al) == 0);
    int u = (int)OK(socket(tl_domain(fam), SOCK_STREAM, 0));
    al = sizeof a;
    CHECK_ERRNO(getsockopt(u, SOL_SOCKET, SO_PEERNAME, &a, &al), ENOTCONN);
    /* an inet socket has no peer credentials: pid 0, uid and gid -1 */
    struct ucred cr;
    socklen_t cl = sizeof cr;
    OK(getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cr, &cl));
    CHECK_EQ(cl, sizeof cr);
    CHECK_EQ(cr.pid, 0);
    CHECK_EQ(cr.uid, (uid_t)-1);
    CHECK_EQ(cr.gid, (gid_t)-1);
    OK(close(u));
    OK(close(c));
    OK(close(s));
}

TEST_INET(so_meminfo_counts_queued_bytes)
{
    int a, b;
    tl_dgram_pair(fam, &a, &b);
    uint32_t mi[SK_MEMINFO_VARS];
    socklen_t l = sizeof mi;
    OK(getsockopt(b, SOL_SOCKET, SO_MEMINFO, mi, &l));
    CHECK_EQ(l, sizeof mi);
    CHECK_EQ(mi[SK_MEMINFO_RMEM_ALLOC], 0);
    CHECK_EQ(mi[SK_MEMINFO_RCVBUF], (uint32_t)tl_getint(b, SOL_SOCKET, SO_RCVBUF));
    CHECK_EQ(mi[SK_MEMINFO_SNDBUF], (uint32_t)tl_getint(b, SOL_SOCKET, SO_SNDBUF));
    CHECK_EQ(OK(send(a, "queued", 6, 0)), 6);
    CHECK(tl_poll1(b, POLLIN, 5000) & POLLIN);
    OK(getsockopt(b, SOL_SOCKET, SO_MEMINFO, mi, &l));
    CHECK(mi[SK_MEMINFO_RMEM_ALLOC] > 0);
    char buf[8];
    CHECK_EQ(OK(recv(b, buf, sizeof buf, 0)), 6);
    OK(getsockopt(b, SOL_SOCKET, SO_MEMINFO, mi, &l));
    CHECK_EQ(mi[SK_MEMINFO_RMEM_ALLOC], 0);
    OK(close(a));
    OK(close(b));
}

TEST_INET(so_incoming_cpu_after_data)
{
    int a, b;
    tl_dgram_pair(fam, &a, &b);
    CHECK_EQ(tl_getint(b, SOL_SOCKET, SO_INCOMING_CPU), -1);
    CHECK_EQ(OK(send(a, "cpu", 3, 0)), 3);
    CHECK(tl_poll1(b, POLLIN, 5000) & POLLIN);
    int cpu = tl_getint(b, SOL_SOCKET, SO_INCOMING_CPU);
    CHECK(cpu >= 0 && cpu < (int)sysconf(_SC_NPROCESSORS_CONF));
    OK(close(a));
    OK(close(b));
}

/* ---- IP_TOS/IP_TTL/IPV6_TCLASS/IPV6_UNICAST_HOPS and their cmsgs -------- */

TEST(ip_recvtos_and_recvttl_cmsgs)
{
    int a, b;
    tl_dgram_pair(FAM_INET, &a, &b);
    tl_setint(a, IPPROTO_IP, IP_TOS, 0x28);
    tl_setint(a, IPPROTO_IP, IP_TTL, 33);
    tl_setint(b, IPPROTO_IP, IP_RECVTOS, 1);
    tl_setint(b, IPPROTO_IP, IP_RECVTTL, 1);
    CHECK_EQ(OK(send(a, "tos", 3, 0)), 3);
    CHECK(tl_poll1(b, POLLIN, 5000) & POLLIN);
    union {
        char b[256];
        struct cmsghdr align;
    } ctl;
    char buf[8];
    struct msghdr m;
    CHECK_EQ(recv_cmsg(b, buf, sizeof buf, ctl.b, sizeof ctl.b, &m, NULL), 3);
    struct cmsghdr *c = find_cmsg(&m, IPPROTO_IP, IP_TOS);
    CHECK(c != NULL);
    CHECK_EQ(c->cmsg_len, CMSG_LEN(1));
    CHECK_EQ(*(unsigned char *)CMSG_DATA(c), 0x28);
    c = find_cmsg(&m, IPPROTO_IP, IP_TTL);
    CHECK(c != NULL);
    CHECK_EQ(c->cmsg_len, CMSG_LEN(sizeof(int)));
    int ttl;
    memcpy(&ttl, CMSG_DATA(c), sizeof ttl);
    CHECK_EQ(ttl, 33);
    /* the default TTL is the sysctl; 0 and 256 are refused, -1 resets */
    long def = tl_sysctl("/proc/sys/net/ipv4/ip_default_ttl");
    CHECK_ERRNO(setsockopt(a, IPPROTO_IP, IP_TTL, &(int){0}, sizeof(int)), EINVAL);
    CHECK_ERRNO(setsockopt(a, IPPROTO_IP, IP_TTL, &(int){256}, sizeof(int)), EINVAL);
    tl_setint(a, IPPROTO_IP, IP_TTL, -1);
    CHECK_EQ(tl_getint(a, IPPROTO_IP, IP_TTL), def);
    CHECK_EQ(OK(send(a, "def", 3, 0)), 3);
    CHECK(tl_poll1(b, POLLIN, 5000) & POLLIN);
    recv_cmsg(b, buf, sizeof buf, ctl.b, sizeof ctl.b, &m, NULL);
    c = find_cmsg(&m, IPPROTO_IP, IP_TTL);
    CHECK(c != NULL);
    memcpy(&ttl, CMSG_DATA(c), sizeof ttl);
    CHECK_EQ(ttl, def);
    OK(close(a));
    OK(close(b));
}

TEST(ipv6_recvtclass_and_recvhoplimit_cmsgs)
{
    int a, b;
    tl_dgram_pair(FAM_INET6, &a, &b);
    tl_setint(a, IPPROTO_IPV6, IPV6_TCLASS, 0x28);
    tl_setint(a, IPPROTO_IPV6, IPV6_UNICAST_HOPS, 33);
    tl_setint(b, IPPROTO_IPV6, IPV6_RECVTCLASS, 1);
    tl_setint(b, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1);
    CHECK_EQ(OK(send(a, "tc", 2, 0)), 2);
    CHECK(tl_poll1(b, POLLIN, 5000) & POLLIN);
    union {
        char b[256];
        struct cmsghdr align;
    } ctl;
    char buf[8];
    struct msghdr m;
    CHECK_EQ(recv_cmsg(b, buf, sizeof buf, ctl.b, sizeof ctl.b, &m, NULL), 2);
    struct cmsghdr *c = find_cmsg(&m, IPPROTO_IPV6, IPV6_TCLASS);
    CHECK(c != NULL);
    int v;
    memcpy(&v, CMSG_DATA(c), sizeof v);
    CHECK_EQ(v, 0x28);
    c = find_cmsg(&m, IPPROTO_IPV6, IPV6_HOPLIMIT);
    CHECK(c != NULL);
    memcpy(&v, CMSG_DATA(c), sizeof v);
    CHECK_EQ(v, 33);
    /* per datagram, by cmsg on send */
    union {
        char b[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } sc;
    struct iovec iov = {"hl", 2};
    struct msghdr sm = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = sc.b,
                        .msg_controllen = sizeof sc.b};
    struct cmsghdr *h = CMSG_FIRSTHDR(&sm);
    h->cmsg_level = IPPROTO_IPV6;
    h->cmsg_type = IPV6_HOPLIMIT;
    h->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(h), &(int){7}, sizeof(int));
    CHECK_EQ(OK(sendmsg(a, &sm, 0)), 2);
    CHECK(tl_poll1(b, POLLIN, 5000) & POLLIN);
    recv_cmsg(b, buf, sizeof buf, ctl.b, sizeof ctl.b, &m, NULL);
    c = find_cmsg(&m, IPPROTO_IPV6, IPV6_HOPLIMIT);
    CHECK(c != NULL);
    memcpy(&v, CMSG_DATA(c), sizeof v);
    CHECK_EQ(v, 7);
    OK(close(a));
    OK(close(b));
}

/* ---- IP_PKTINFO / IPV6_RECVPKTINFO / IP_RECVORIGDSTADDR ----------------- */

static int bound_any_udp(int fam)
{
    int fd = (int)OK(socket(tl_domain(fam), SOCK_DGRAM, 0));
    struct sockaddr_storage ss;
    socklen_t l = tl_any(fam, &ss, 0);
    OK(bind(fd, (struct sockaddr *)&ss, l));
    return fd;
}

TEST(ip_pktinfo_receive_and_send)
{
    int r = bound_any_udp(FAM_INET);
    struct sockaddr_storage ss;
    tl_name(r, &ss);
    int port = tl_port(&ss);
    tl_setint(r, IPPROTO_IP, IP_PKTINFO, 1);
    int s = (int)OK(socket(AF_INET, SOCK_DGRAM, 0));
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_EQ(OK(sendto(s, "pi", 2, 0, (struct sockaddr *)&to, sizeof to)), 2);
    CHECK(tl_poll1(r, POLLIN, 5000) & POLLIN);
    union {
        char b[256];
        struct cmsghdr align;
    } ctl;
    char buf[8];
    struct msghdr m;
    struct sockaddr_storage from;
    CHECK_EQ(recv_cmsg(r, buf, sizeof buf, ctl.b, sizeof ctl.b, &m, &from), 2);
    struct cmsghdr *c = find_cmsg(&m, IPPROTO_IP, IP_PKTINFO);
    CHECK(c != NULL);
    CHECK_EQ(c->cmsg_len, CMSG_LEN(sizeof(struct in_pktinfo)));
    struct in_pktinfo pi;
    memcpy(&pi, CMSG_DATA(c), sizeof pi);
    CHECK_EQ(pi.ipi_ifindex, (int)if_nametoindex("lo"));
    CHECK_EQ(ntohl(pi.ipi_addr.s_addr), INADDR_LOOPBACK);     /* the destination */
    CHECK_EQ(ntohl(pi.ipi_spec_dst.s_addr), INADDR_LOOPBACK); /* the local address */
    /* IP_PKTINFO on send picks the source address: any 127/8 address is ours */
    union {
        char b[CMSG_SPACE(sizeof(struct in_pktinfo))];
        struct cmsghdr align;
    } sc;
    memset(&sc, 0, sizeof sc);
    struct iovec iov = {"src", 3};
    struct msghdr sm = {.msg_name = &to, .msg_namelen = sizeof to, .msg_iov = &iov,
                        .msg_iovlen = 1, .msg_control = sc.b, .msg_controllen = sizeof sc.b};
    struct cmsghdr *h = CMSG_FIRSTHDR(&sm);
    h->cmsg_level = IPPROTO_IP;
    h->cmsg_type = IP_PKTINFO;
    h->cmsg_len = CMSG_LEN(sizeof(struct in_pktinfo));
    struct in_pktinfo spi = {.ipi_spec_dst.s_addr = htonl(0x7f000002)};
    memcpy(CMSG_DATA(h), &spi, sizeof spi);
    CHECK_EQ(OK(sendmsg(s, &sm, 0)), 3);
    CHECK(tl_poll1(r, POLLIN, 5000) & POLLIN);
    CHECK_EQ(recv_cmsg(r, buf, sizeof buf, ctl.b, sizeof ctl.b, &m, &from), 3);
    CHECK_EQ(ntohl(((struct sockaddr_in *)&from)->sin_addr.s_addr), 0x7f000002);
    /* sent to 127.0.0.3: the cmsg says so */
    to.sin_addr.s_addr = htonl(0x7f000003);
    CHECK_EQ(OK(sendto(s, "pi", 2, 0, (struct sockaddr *)&to, sizeof to)), 2);
    CHECK(tl_poll1(r, POLLIN, 5000) & POLLIN);
    recv_cmsg(r, buf, sizeof buf, ctl.b, sizeof ctl.b, &m, &from);
    c = find_cmsg(&m, IPPROTO_IP, IP_PKTINFO);
    CHECK(c != NULL);
    memcpy(&pi, CMSG_DATA(c), sizeof pi);
    CHECK_EQ(ntohl(pi.ipi_addr.s_addr), 0x7f000003);
    OK(close(r));
    OK(close(s));
}

TEST(ipv6_recvpktinfo)
{
    int r = bound_any_udp(FAM_INET6);
    struct sockaddr_storage ss;
    tl_name(r, &ss);
    int port = tl_port(&ss);
    tl_setint(r, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1);
    int s = (int)OK(socket(AF_INET6, SOCK_DGRAM, 0));
    struct sockaddr_in6 to = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port),
                              .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    CHECK_EQ(OK(sendto(s, "p6", 2, 0, (struct sockaddr *)&to, sizeof to)), 2);
    CHECK(tl_poll1(r, POLLIN, 5000) & POLLIN);
    union {
        char b[256];
        struct cmsghdr align;
    } ctl;
    char buf[8];
    struct msghdr m;
    CHECK_EQ(recv_cmsg(r, buf, sizeof buf, ctl.b, sizeof ctl.b, &m, NULL), 2);
    struct cmsghdr *c = find_cmsg(&m, IPPROTO_IPV6, IPV6_PKTINFO);
    CHECK(c != NULL);
    CHECK_EQ(c->cmsg_len, CMSG_LEN(sizeof(struct in6_pktinfo)));
    struct in6_pktinfo pi;
    memcpy(&pi, CMSG_DATA(c), sizeof pi);
    CHECK_EQ(pi.ipi6_ifindex, if_nametoindex("lo"));
    CHECK(IN6_IS_ADDR_LOOPBACK(&pi.ipi6_addr));
    /* a v4 datagram on a dual-stack socket: IP_PKTINFO works there too */
    int d = bound_any_udp(FAM_INET6);
    tl_name(d, &ss);
    tl_setint(d, IPPROTO_IP, IP_PKTINFO, 1);
    int s4 = (int)OK(socket(AF_INET, SOCK_DGRAM, 0));
    struct sockaddr_in to4 = {.sin_family = AF_INET, .sin_port = htons((uint16_t)tl_port(&ss)),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_EQ(OK(sendto(s4, "v4", 2, 0, (struct sockaddr *)&to4, sizeof to4)), 2);
    CHECK(tl_poll1(d, POLLIN, 5000) & POLLIN);
    CHECK_EQ(recv_cmsg(d, buf, sizeof buf, ctl.b, sizeof ctl.b, &m, NULL), 2);
    c = find_cmsg(&m, IPPROTO_IP, IP_PKTINFO);
    CHECK(c != NULL);
    struct in_pktinfo pi4;
    memcpy(&pi4, CMSG_DATA(c), sizeof pi4);
    CHECK_EQ(ntohl(pi4.ipi_addr.s_addr), INADDR_LOOPBACK);
    OK(close(r));
    OK(close(s));
    OK(close(d));
    OK(close(s4));
}

TEST_INET(ip_recvorigdstaddr)
{
    int r = bound_any_udp(fam);
    struct sockaddr_storage ss;
    tl_name(r, &ss);
    int port = tl_port(&ss);
    if (fam == FAM_INET)
        tl_setint(r, IPPROTO_IP, IP_RECVORIGDSTADDR, 1);
    else
        tl_setint(r, IPPROTO_IPV6, IPV6_RECVORIGDSTADDR, 1);
    int s = (int)OK(socket(tl_domain(fam), SOCK_DGRAM, 0));
    struct sockaddr_storage to;
    socklen_t tl = tl_loop(fam, &to, port);
    CHECK_EQ(OK(sendto(s, "od", 2, 0, (struct sockaddr *)&to, tl)), 2);
    CHECK(tl_poll1(r, POLLIN, 5000) & POLLIN);
    union {
        char b[256];
        struct cmsghdr align;
    } ctl;
    char buf[8];
    struct msghdr m;
    CHECK_EQ(recv_cmsg(r, buf, sizeof buf, ctl.b, sizeof ctl.b, &m, NULL), 2);
    struct cmsghdr *c = fam == FAM_INET ? find_cmsg(&m, IPPROTO_IP, IP_ORIGDSTADDR)
                                        : find_cmsg(&m, IPPROTO_IPV6, IPV6_ORIGDSTADDR);
    CHECK(c != NULL);
    CHECK_EQ(c->cmsg_len, CMSG_LEN(tl));
    struct sockaddr_storage od;
    memset(&od, 0, sizeof od);
    memcpy(&od, CMSG_DATA(c), tl);
    CHECK_EQ(od.ss_family, tl_domain(fam));
    CHECK_EQ(tl_port(&od), port);
    if (fam == FAM_INET)
        CHECK_EQ(ntohl(((struct sockaddr_in *)&od)->sin_addr.s_addr), INADDR_LOOPBACK);
    else
        CHECK(IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&od)->sin6_addr));
    OK(close(r));
    OK(close(s));
}

/* ---- IP_MTU_DISCOVER / IP_MTU / IPV6_MTU ------------------------------------ */

TEST_INET(ip_mtu_of_a_connected_socket)
{
    int lvl = fam == FAM_INET ? IPPROTO_IP : IPPROTO_IPV6;
    int mtu_opt = fam == FAM_INET ? IP_MTU : IPV6_MTU;
    int disc = fam == FAM_INET ? IP_MTU_DISCOVER : IPV6_MTU_DISCOVER;
    long lo = tl_sysctl("/sys/class/net/lo/mtu");
    long want = fam == FAM_INET && lo > 65535 ? 65535 : lo; /* IPv4: at most 65535 */
    long nopmtu = tl_sysctl(fam == FAM_INET ? "/proc/sys/net/ipv4/ip_no_pmtu_disc" : "/proc/sys/net/ipv4/ip_no_pmtu_disc");
    for (int t = 0; t < 2; t++) {
        int type = t ? SOCK_STREAM : SOCK_DGRAM;
        int fd = (int)OK(socket(tl_domain(fam), type, 0));
        if (fam == FAM_INET)
            CHECK_EQ(tl_getint(fd, lvl, disc), nopmtu ? IP_PMTUDISC_DONT : IP_PMTUDISC_WANT);
        else
            CHECK_EQ(tl_getint(fd, lvl, disc), IPV6_PMTUDISC_WANT);
        int v;
        socklen_t vl = sizeof v;
        CHECK_ERRNO(getsockopt(fd, lvl, mtu_opt, &v, &vl), ENOTCONN);
        CHECK_ERRNO(setsockopt(fd, lvl, disc, &(int){6}, sizeof(int)), EINVAL);
        tl_setint(fd, lvl, disc, IP_PMTUDISC_DO);
        CHECK_EQ(tl_getint(fd, lvl, disc), IP_PMTUDISC_DO);
        OK(close(fd));
    }
    int a, b;
    tl_dgram_pair(fam, &a, &b);
    CHECK_EQ(tl_getint(a, lvl, mtu_opt), want);
    OK(close(a));
    OK(close(b));
    int c, s;
    tl_stream_pair(fam, &c, &s);
    CHECK_EQ(tl_getint(c, lvl, mtu_opt), want);
    OK(close(c));
    OK(close(s));
    if (fam == FAM_INET6) {
        int fd = (int)OK(socket(AF_INET6, SOCK_DGRAM, 0));
        CHECK_ERRNO(setsockopt(fd, IPPROTO_IPV6, IPV6_MTU, &(int){1279}, sizeof(int)), EINVAL);
        tl_setint(fd, IPPROTO_IPV6, IPV6_MTU, 1280);
        OK(close(fd));
    }
}

/* With IP_PMTUDISC_DO, a datagram larger than the path MTU: EMSGSIZE. */
TEST_INET(ip_pmtudisc_do_emsgsize)
{
    int a, b;
    tl_dgram_pair(fam, &a, &b);
    int lvl = fam == FAM_INET ? IPPROTO_IP : IPPROTO_IPV6;
    int mtu = tl_getint(a, lvl, fam == FAM_INET ? IP_MTU : IPV6_MTU);
    tl_setint(a, lvl, fam == FAM_INET ? IP_MTU_DISCOVER : IPV6_MTU_DISCOVER, IP_PMTUDISC_DO);
    if (fam == FAM_INET6)
        tl_setint(a, IPPROTO_IPV6, IPV6_DONTFRAG, 1);
    int hdr = fam == FAM_INET ? 28 : 48;
    size_t big = (size_t)(mtu - hdr + 1);
    if (big > 65507) {
        /* lo's MTU is above what one IPv4 datagram can carry */
        OK(close(a));
        OK(close(b));
        return;
    }
    char *buf = calloc(1, big);
    CHECK(buf != NULL);
    CHECK_ERRNO(send(a, buf, big, 0), EMSGSIZE);
    CHECK_EQ(OK(send(a, buf, big - 1, 0)), (long)(big - 1));
    free(buf);
    OK(close(a));
    OK(close(b));
}

/* ---- IP_RECVERR and MSG_ERRQUEUE ------------------------------------------ */

/* A UDP port nobody listens on (bound, then closed). */
static socklen_t closed_port(int fam, struct sockaddr_storage *ss)
{
    int t = tl_bound(fam, SOCK_DGRAM);
    socklen_t l = tl_name(t, ss);
    OK(close(t));
    return l;
}

TEST_INET(ip_recverr_port_unreachable)
{
    int lvl = fam == FAM_INET ? SOL_IP : SOL_IPV6;
    int opt = fam == FAM_INET ? IP_RECVERR : IPV6_RECVERR;
    int fd = tl_bound(fam, SOCK_DGRAM);
    tl_setint(fd, lvl, opt, 1);
    struct sockaddr_storage to;
    socklen_t tl = closed_port(fam, &to);
    /* unconnected: the error is queued, and reported */
    CHECK_EQ(OK(sendto(fd, "ping", 4, 0, (struct sockaddr *)&to, tl)), 4);
    CHECK(tl_poll1(fd, POLLERR, 5000) & POLLERR);
    char buf[64];
    union {
        char b[512];
        struct cmsghdr align;
    } ctl;
    struct sockaddr_storage name;
    struct iovec iov = {buf, sizeof buf};
    struct msghdr m = {.msg_name = &name, .msg_namelen = sizeof name, .msg_iov = &iov,
                       .msg_iovlen = 1, .msg_control = ctl.b, .msg_controllen = sizeof ctl.b};
    ssize_t n = OK(recvmsg(fd, &m, MSG_ERRQUEUE));
    CHECK_EQ(n, 4); /* the datagram that caused it */
    CHECK(memcmp(buf, "ping", 4) == 0);
    CHECK(m.msg_flags & MSG_ERRQUEUE);
    CHECK_EQ(tl_port(&name), tl_port(&to)); /* where it was sent */
    struct cmsghdr *c = find_cmsg(&m, lvl, opt);
    CHECK(c != NULL);
    union {
        struct sock_extended_err ee;
        char b[sizeof(struct sock_extended_err) + sizeof(struct sockaddr_in6)];
    } eb;
    memset(&eb, 0, sizeof eb);
    CHECK(c->cmsg_len >= CMSG_LEN(sizeof eb.ee));
    memcpy(&eb, CMSG_DATA(c), c->cmsg_len - CMSG_LEN(0) < sizeof eb ? c->cmsg_len - CMSG_LEN(0) : sizeof eb);
    struct sock_extended_err ee = eb.ee;
    CHECK_EQ(ee.ee_errno, ECONNREFUSED);
    if (fam == FAM_INET) {
        CHECK_EQ(ee.ee_origin, SO_EE_ORIGIN_ICMP);
        CHECK_EQ(ee.ee_type, 3); /* destination unreachable */
        CHECK_EQ(ee.ee_code, 3); /* port unreachable */
    } else {
        CHECK_EQ(ee.ee_origin, SO_EE_ORIGIN_ICMP6);
        CHECK_EQ(ee.ee_type, 1); /* ICMPV6_DEST_UNREACH */
        CHECK_EQ(ee.ee_code, 4); /* ICMPV6_PORT_UNREACH */
    }
    struct sockaddr_storage off;
    memset(&off, 0, sizeof off);
    memcpy(&off, eb.b + sizeof eb.ee, fam == FAM_INET ? sizeof(struct sockaddr_in)
                                                      : sizeof(struct sockaddr_in6));
    CHECK_EQ(off.ss_family, tl_domain(fam)); /* the host that said so: ours */
    /* the queue is empty again; so is the pending error */
    CHECK_ERRNO(recvmsg(fd, &m, MSG_ERRQUEUE | MSG_DONTWAIT), EAGAIN);
    CHECK_EQ(tl_so_error(fd), 0);
    CHECK_EQ(tl_poll1(fd, POLLERR, 0), 0);
    OK(close(fd));
}

/* Without IP_RECVERR, an unconnected socket ignores port unreachables;
 * a connected one gets ECONNREFUSED from its next call. */
TEST_INET(icmp_errors_without_recverr)
{
    struct sockaddr_storage to;
    socklen_t tl = closed_port(fam, &to);
    int u = tl_bound(fam, SOCK_DGRAM);
    CHECK_EQ(OK(sendto(u, "x", 1, 0, (struct sockaddr *)&to, tl)), 1);
    /* a sentinel from ourselves arrives after any error would have */
    struct sockaddr_storage me;
    socklen_t ml = tl_name(u, &me);
    CHECK_EQ(OK(sendto(u, "s", 1, 0, (struct sockaddr *)&me, ml)), 1);
    CHECK(tl_poll1(u, POLLIN, 5000) & POLLIN);
    char b;
    CHECK_EQ(OK(recv(u, &b, 1, 0)), 1);
    CHECK_EQ(tl_so_error(u), 0);
    int c = tl_bound(fam, SOCK_DGRAM);
    OK(connect(c, (struct sockaddr *)&to, tl));
    CHECK_EQ(OK(send(c, "x", 1, 0)), 1);
    CHECK(tl_poll1(c, POLLERR, 5000) & POLLERR);
    CHECK_ERRNO(recv(c, &b, 1, MSG_DONTWAIT), ECONNREFUSED);
    CHECK_ERRNO(recv(c, &b, 1, MSG_DONTWAIT), EAGAIN); /* reported once */
    struct msghdr m = {0};
    CHECK_ERRNO(recvmsg(c, &m, MSG_ERRQUEUE), EAGAIN); /* nothing queued */
    OK(close(u));
    OK(close(c));
}

/* ---- IP_FREEBIND, IPV6_V6ONLY --------------------------------------------- */

TEST_INET(ip_freebind_binds_a_foreign_address)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t l;
    if (fam == FAM_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(0xcb007105); /* 203.0.113.5, TEST-NET-3 */
        l = sizeof *a;
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        inet_pton(AF_INET6, "2001:db8::5", &a->sin6_addr);
        l = sizeof *a;
    }
    long nonlocal = tl_sysctl(fam == FAM_INET ? "/proc/sys/net/ipv4/ip_nonlocal_bind"
                                              : "/proc/sys/net/ipv6/ip_nonlocal_bind");
    for (int t = 0; t < 2; t++) {
        int type = t ? SOCK_STREAM : SOCK_DGRAM;
        int fd = (int)OK(socket(tl_domain(fam), type, 0));
        if (nonlocal)
            OK(bind(fd, (struct sockaddr *)&ss, l));
        else
            CHECK_ERRNO(bind(fd, (struct sockaddr *)&ss, l), EADDRNOTAVAIL);
        OK(close(fd));
        fd = (int)OK(socket(tl_domain(fam), type, 0));
        if (fam == FAM_INET)
            tl_setint(fd, IPPROTO_IP, IP_FREEBIND, 1);
        else
            tl_setint(fd, IPPROTO_IPV6, IPV6_FREEBIND, 1);
        OK(bind(fd, (struct sockaddr *)&ss, l));
        struct sockaddr_storage got;
        tl_name(fd, &got);
        CHECK(tl_port(&got) > 0);
        if (type == SOCK_STREAM)
            OK(listen(fd, 1));
        OK(close(fd));
    }
}

TEST(ipv6_v6only_rules)
{
    long def = tl_sysctl("/proc/sys/net/ipv6/bindv6only");
    for (int t = 0; t < 2; t++) {
        int type = t ? SOCK_STREAM : SOCK_DGRAM;
        int fd = (int)OK(socket(AF_INET6, type, 0));
        CHECK_EQ(tl_getint(fd, IPPROTO_IPV6, IPV6_V6ONLY), def ? 1 : 0);
        tl_setint(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1);
        CHECK_EQ(tl_getint(fd, IPPROTO_IPV6, IPV6_V6ONLY), 1);
        struct sockaddr_storage ss;
        socklen_t l = tl_loop(FAM_INET6, &ss, 0);
        OK(bind(fd, (struct sockaddr *)&ss, l));
        /* fixed once bound */
        CHECK_ERRNO(setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &(int){0}, sizeof(int)), EINVAL);
        CHECK_EQ(tl_getint(fd, IPPROTO_IPV6, IPV6_V6ONLY), 1);
        OK(close(fd));
        /* not an IPv4 socket's option */
        int v4 = (int)OK(socket(AF_INET, type, 0));
        int v;
        socklen_t vl = sizeof v;
        CHECK_ERRNO(setsockopt(v4, IPPROTO_IPV6, IPV6_V6ONLY, &(int){1}, sizeof(int)),
                    ENOPROTOOPT);
        CHECK_ERRNO(getsockopt(v4, IPPROTO_IPV6, IPV6_V6ONLY, &v, &vl), EOPNOTSUPP);
        OK(close(v4));
    }
}

/* ---- multicast and broadcast ------------------------------------------------ */

static int mc_receiver(int port, int join, const char *group)
{
    int fd = (int)OK(socket(AF_INET, SOCK_DGRAM, 0));
    tl_setint(fd, SOL_SOCKET, SO_REUSEADDR, 1);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    OK(bind(fd, (struct sockaddr *)&a, sizeof a));
    if (join) {
        struct ip_mreqn m = {.imr_multiaddr.s_addr = inet_addr(group),
                             .imr_address.s_addr = htonl(INADDR_LOOPBACK)};
        OK(setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &m, sizeof m));
    }
    return fd;
}

static int mc_sender(void)
{
    int s = (int)OK(socket(AF_INET, SOCK_DGRAM, 0));
    struct in_addr lo = {htonl(INADDR_LOOPBACK)};
    OK(setsockopt(s, IPPROTO_IP, IP_MULTICAST_IF, &lo, sizeof lo));
    return s;
}

static void mc_send(int s, const char *group, int port, const char *msg)
{
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = inet_addr(group)};
    CHECK_EQ(OK(sendto(s, msg, strlen(msg), 0, (struct sockaddr *)&to, sizeof to)),
             (long)strlen(msg));
}

/* An unused port for a group, both for the kernel and for us. */
static int free_udp_port(void)
{
    int t = bound_any_udp(FAM_INET);
    struct sockaddr_storage ss;
    tl_name(t, &ss);
    OK(close(t));
    return tl_port(&ss);
}

static void unicast_sentinel(int to_fd, const char *msg)
{
    int s = (int)OK(socket(AF_INET, SOCK_DGRAM, 0));
    struct sockaddr_storage ss;
    tl_name(to_fd, &ss);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)tl_port(&ss)),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_EQ(OK(sendto(s, msg, strlen(msg), 0, (struct sockaddr *)&to, sizeof to)),
             (long)strlen(msg));
    OK(close(s));
}

TEST(multicast_delivered_to_every_member)
{
    const char *g = "239.255.13.1";
    int port = free_udp_port();
    int r1 = mc_receiver(port, 1, g), r2 = mc_receiver(port, 1, g);
    int s = mc_sender();
    CHECK_EQ(tl_getint(s, IPPROTO_IP, IP_MULTICAST_TTL), 1);
    CHECK_EQ(tl_getint(s, IPPROTO_IP, IP_MULTICAST_LOOP), 1);
    struct in_addr ifa;
    socklen_t il = sizeof ifa;
    OK(getsockopt(s, IPPROTO_IP, IP_MULTICAST_IF, &ifa, &il));
    CHECK_EQ(il, sizeof ifa);
    CHECK_EQ(ntohl(ifa.s_addr), INADDR_LOOPBACK);
    mc_send(s, g, port, "to-all");
    expect_dgram(r1, "to-all");
    expect_dgram(r2, "to-all");
    /* and with the sender's address */
    mc_send(s, g, port, "from");
    struct sockaddr_in from;
    socklen_t fl = sizeof from;
    char buf[8];
    CHECK(tl_poll1(r1, POLLIN, 5000) & POLLIN);
    CHECK_EQ(OK(recvfrom(r1, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl)), 4);
    CHECK_EQ(ntohl(from.sin_addr.s_addr), INADDR_LOOPBACK);
    expect_dgram(r2, "from");
    OK(close(r1));
    OK(close(r2));
    OK(close(s));
}

TEST(multicast_drop_membership_and_errors)
{
    const char *g = "239.255.13.2";
    int port = free_udp_port();
    int r = mc_receiver(port, 1, g);
    struct ip_mreqn m = {.imr_multiaddr.s_addr = inet_addr(g),
                         .imr_address.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_ERRNO(setsockopt(r, IPPROTO_IP, IP_ADD_MEMBERSHIP, &m, sizeof m), EADDRINUSE);
    OK(setsockopt(r, IPPROTO_IP, IP_DROP_MEMBERSHIP, &m, sizeof m));
    CHECK_ERRNO(setsockopt(r, IPPROTO_IP, IP_DROP_MEMBERSHIP, &m, sizeof m), EADDRNOTAVAIL);
    struct ip_mreqn notmc = {.imr_multiaddr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_ERRNO(setsockopt(r, IPPROTO_IP, IP_ADD_MEMBERSHIP, &notmc, sizeof notmc), EINVAL);
    CHECK_ERRNO(setsockopt(r, IPPROTO_IP, IP_ADD_MEMBERSHIP, &m, 4), EINVAL);
    /* no longer a member (and IP_MULTICAST_ALL does not help: nobody is) */
    int s = mc_sender();
    mc_send(s, g, port, "gone");
    unicast_sentinel(r, "sentinel");
    expect_dgram(r, "sentinel");
    /* MCAST_JOIN_GROUP/MCAST_LEAVE_GROUP, by interface index */
    struct group_req gr;
    memset(&gr, 0, sizeof gr);
    gr.gr_interface = if_nametoindex("lo");
    struct sockaddr_in *ga = (struct sockaddr_in *)&gr.gr_group;
    ga->sin_family = AF_INET;
    ga->sin_addr.s_addr = inet_addr(g);
    OK(setsockopt(r, IPPROTO_IP, MCAST_JOIN_GROUP, &gr, sizeof gr));
    mc_send(s, g, port, "again");
    expect_dgram(r, "again");
    OK(setsockopt(r, IPPROTO_IP, MCAST_LEAVE_GROUP, &gr, sizeof gr));
    CHECK_ERRNO(setsockopt(r, IPPROTO_IP, MCAST_LEAVE_GROUP, &gr, sizeof gr), EADDRNOTAVAIL);
    OK(close(r));
    OK(close(s));
}

/* Out of lo, IP_MULTICAST_LOOP 0 changes nothing: lo itself brings the
 * datagram back to this host's members. */
TEST(multicast_loop_off_on_lo_still_delivers)
{
    const char *g = "239.255.13.3";
    int port = free_udp_port();
    int r = mc_receiver(port, 1, g);
    int s = mc_sender();
    tl_setint(s, IPPROTO_IP, IP_MULTICAST_LOOP, 0);
    CHECK_EQ(tl_getint(s, IPPROTO_IP, IP_MULTICAST_LOOP), 0);
    mc_send(s, g, port, "via-lo");
    expect_dgram(r, "via-lo");
    OK(close(r));
    OK(close(s));
}

/* A non-loopback interface with IFF_MULTICAST (and, for IPv4, an address),
 * or 0. */
static unsigned mc_ifindex(int need_v4, struct in_addr *addr)
{
    struct if_nameindex *ni = if_nameindex();
    CHECK(ni != NULL);
    unsigned found = 0;
    int fd = (int)OK(socket(AF_INET, SOCK_DGRAM, 0));
    for (struct if_nameindex *p = ni; p->if_index && !found; p++) {
        struct ifreq ifr;
        memset(&ifr, 0, sizeof ifr);
        snprintf(ifr.ifr_name, IFNAMSIZ, "%s", p->if_name);
        if (ioctl(fd, SIOCGIFFLAGS, &ifr) != 0 || !(ifr.ifr_flags & IFF_UP) ||
            !(ifr.ifr_flags & IFF_MULTICAST) || (ifr.ifr_flags & IFF_LOOPBACK))
            continue;
        if (need_v4) {
            if (ioctl(fd, SIOCGIFADDR, &ifr) != 0)
                continue;
            *addr = ((struct sockaddr_in *)&ifr.ifr_addr)->sin_addr;
        }
        found = p->if_index;
    }
    OK(close(fd));
    if_freenameindex(ni);
    return found;
}

/* Out of a real interface, IP_MULTICAST_LOOP decides whether this host's
 * members get a copy (the datagram also leaves on the link, TTL 1, to an
 * administratively scoped group). */
TEST(multicast_loop_off_on_an_interface)
{
    struct in_addr ifa;
    unsigned ifx = mc_ifindex(1, &ifa);
    if (!ifx)
        t_skip("multicast", "no interface up with IFF_MULTICAST and an IPv4 address");
    const char *g = "239.255.13.6";
    int port = free_udp_port();
    int r = (int)OK(socket(AF_INET, SOCK_DGRAM, 0));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    OK(bind(r, (struct sockaddr *)&a, sizeof a));
    struct ip_mreqn m = {.imr_multiaddr.s_addr = inet_addr(g), .imr_ifindex = (int)ifx};
    OK(setsockopt(r, IPPROTO_IP, IP_ADD_MEMBERSHIP, &m, sizeof m));
    int s = (int)OK(socket(AF_INET, SOCK_DGRAM, 0));
    struct ip_mreqn mi = {.imr_ifindex = (int)ifx};
    OK(setsockopt(s, IPPROTO_IP, IP_MULTICAST_IF, &mi, sizeof mi));
    tl_setint(s, IPPROTO_IP, IP_MULTICAST_LOOP, 0);
    mc_send(s, g, port, "no-loop");
    tl_setint(s, IPPROTO_IP, IP_MULTICAST_LOOP, 1);
    mc_send(s, g, port, "loop");
    expect_dgram(r, "loop"); /* the first was never looped back */
    struct sockaddr_in from;
    socklen_t fl = sizeof from;
    char buf[8];
    mc_send(s, g, port, "src");
    CHECK(tl_poll1(r, POLLIN, 5000) & POLLIN);
    CHECK_EQ(OK(recvfrom(r, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl)), 3);
    CHECK_EQ(from.sin_addr.s_addr, ifa.s_addr); /* the interface's address */
    OK(close(r));
    OK(close(s));
}

TEST(multicast_ttl_reaches_the_receiver)
{
    const char *g = "239.255.13.4";
    int port = free_udp_port();
    int r = mc_receiver(port, 1, g);
    tl_setint(r, IPPROTO_IP, IP_RECVTTL, 1);
    int s = mc_sender();
    tl_setint(s, IPPROTO_IP, IP_MULTICAST_TTL, 5);
    CHECK_EQ(tl_getint(s, IPPROTO_IP, IP_MULTICAST_TTL), 5);
    CHECK_ERRNO(setsockopt(s, IPPROTO_IP, IP_MULTICAST_TTL, &(int){256}, sizeof(int)), EINVAL);
    tl_setint(s, IPPROTO_IP, IP_MULTICAST_TTL, -1); /* the default again */
    CHECK_EQ(tl_getint(s, IPPROTO_IP, IP_MULTICAST_TTL), 1);
    tl_setint(s, IPPROTO_IP, IP_MULTICAST_TTL, 5);
    mc_send(s, g, port, "ttl");
    CHECK(tl_poll1(r, POLLIN, 5000) & POLLIN);
    union {
        char b[256];
        struct cmsghdr align;
    } ctl;
    char buf[8];
    struct msghdr m;
    CHECK_EQ(recv_cmsg(r, buf, sizeof buf, ctl.b, sizeof ctl.b, &m, NULL), 3);
    struct cmsghdr *c = find_cmsg(&m, IPPROTO_IP, IP_TTL);
    CHECK(c != NULL);
    int ttl;
    memcpy(&ttl, CMSG_DATA(c), sizeof ttl);
    CHECK_EQ(ttl, 5);
    /* IP_MULTICAST_IF: an address that is not ours */
    struct in_addr bad = {htonl(0xcb007105)};
    CHECK_ERRNO(setsockopt(s, IPPROTO_IP, IP_MULTICAST_IF, &bad, sizeof bad), EADDRNOTAVAIL);
    OK(close(r));
    OK(close(s));
}

/* IP_MULTICAST_ALL (on by default): a socket bound to the group's port
 * receives the group's datagrams when any socket of the host joined it;
 * off, only when it joined itself. */
TEST(multicast_all_and_non_members)
{
    const char *g = "239.255.13.5";
    int port = free_udp_port();
    int member = mc_receiver(port, 1, g);
    int other = mc_receiver(port, 0, g);
    int strict = mc_receiver(port, 0, g);
    CHECK_EQ(tl_getint(other, IPPROTO_IP, IP_MULTICAST_ALL), 1);
    tl_setint(strict, IPPROTO_IP, IP_MULTICAST_ALL, 0);
    int s = mc_sender();
    mc_send(s, g, port, "all");
    expect_dgram(member, "all");
    expect_dgram(other, "all");
    unicast_sentinel(strict, "only-this");
    /* the unicast sentinel goes to one socket of the three; strict got no
     * multicast: the first thing it may read is a sentinel or nothing */
    char buf[16];
    short ev = tl_poll1(strict, POLLIN, 500);
    if (ev & POLLIN) {
        ssize_t n = OK(recv(strict, buf, sizeof buf, 0));
        CHECK(n == 9 && memcmp(buf, "only-this", 9) == 0);
    }
    OK(close(member));
    OK(close(other));
    OK(close(strict));
    OK(close(s));
}

/* IPv6 multicast: on an interface that has IFF_MULTICAST (lo has not: the
 * kernel answers ENETUNREACH there), looped back to this host's members. */
TEST(ipv6_multicast_to_every_member)
{
    struct in_addr unused;
    unsigned ifx = mc_ifindex(0, &unused);
    if (!ifx)
        t_skip("multicast", "no interface up with IFF_MULTICAST");
    struct in6_addr grp;
    inet_pton(AF_INET6, "ff02::13:1", &grp);
    int r[2];
    int port = 0;
    for (int i = 0; i < 2; i++) {
        r[i] = (int)OK(socket(AF_INET6, SOCK_DGRAM, 0));
        tl_setint(r[i], SOL_SOCKET, SO_REUSEADDR, 1);
        struct sockaddr_storage ss;
        socklen_t l = tl_any(FAM_INET6, &ss, port);
        OK(bind(r[i], (struct sockaddr *)&ss, l));
        tl_name(r[i], &ss);
        port = tl_port(&ss);
        struct ipv6_mreq m = {.ipv6mr_multiaddr = grp, .ipv6mr_interface = ifx};
        OK(setsockopt(r[i], IPPROTO_IPV6, IPV6_JOIN_GROUP, &m, sizeof m));
    }
    int s = (int)OK(socket(AF_INET6, SOCK_DGRAM, 0));
    OK(setsockopt(s, IPPROTO_IPV6, IPV6_MULTICAST_IF, &ifx, sizeof ifx));
    CHECK_EQ(tl_getint(s, IPPROTO_IPV6, IPV6_MULTICAST_IF), (int)ifx);
    CHECK_EQ(tl_getint(s, IPPROTO_IPV6, IPV6_MULTICAST_LOOP), 1);
    CHECK_EQ(tl_getint(s, IPPROTO_IPV6, IPV6_MULTICAST_HOPS), 1);
    struct sockaddr_in6 to = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port),
                              .sin6_addr = grp, .sin6_scope_id = ifx};
    CHECK_EQ(OK(sendto(s, "six", 3, 0, (struct sockaddr *)&to, sizeof to)), 3);
    expect_dgram(r[0], "six");
    expect_dgram(r[1], "six");
    struct ipv6_mreq m = {.ipv6mr_multiaddr = grp, .ipv6mr_interface = ifx};
    OK(setsockopt(r[0], IPPROTO_IPV6, IPV6_LEAVE_GROUP, &m, sizeof m));
    CHECK_ERRNO(setsockopt(r[0], IPPROTO_IPV6, IPV6_LEAVE_GROUP, &m, sizeof m), EADDRNOTAVAIL);
    /* lo: no multicast route */
    int s2 = (int)OK(socket(AF_INET6, SOCK_DGRAM, 0));
    unsigned lo = if_nametoindex("lo");
    OK(setsockopt(s2, IPPROTO_IPV6, IPV6_MULTICAST_IF, &lo, sizeof lo));
    to.sin6_scope_id = lo;
    CHECK_ERRNO(sendto(s2, "x", 1, 0, (struct sockaddr *)&to, sizeof to), ENETUNREACH);
    OK(close(r[0]));
    OK(close(r[1]));
    OK(close(s));
    OK(close(s2));
}

/* IPv6 multicast always leaves by an interface other than lo (lo has no
 * multicast route): IPV6_MULTICAST_LOOP decides whether this host's
 * members get a copy, as IP_MULTICAST_LOOP does for IPv4 off lo. */
TEST(ipv6_multicast_loop_off_on_an_interface)
{
    struct in_addr unused;
    unsigned ifx = mc_ifindex(0, &unused);
    if (!ifx)
        t_skip("multicast", "no interface up with IFF_MULTICAST");
    struct in6_addr grp;
    inet_pton(AF_INET6, "ff02::13:2", &grp);
    int r = (int)OK(socket(AF_INET6, SOCK_DGRAM, 0));
    struct sockaddr_storage ss;
    socklen_t l = tl_any(FAM_INET6, &ss, 0);
    OK(bind(r, (struct sockaddr *)&ss, l));
    tl_name(r, &ss);
    int port = tl_port(&ss);
    struct ipv6_mreq m = {.ipv6mr_multiaddr = grp, .ipv6mr_interface = ifx};
    OK(setsockopt(r, IPPROTO_IPV6, IPV6_JOIN_GROUP, &m, sizeof m));
    int s = (int)OK(socket(AF_INET6, SOCK_DGRAM, 0));
    OK(setsockopt(s, IPPROTO_IPV6, IPV6_MULTICAST_IF, &ifx, sizeof ifx));
    struct sockaddr_in6 to = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port),
                              .sin6_addr = grp, .sin6_scope_id = ifx};
    tl_setint(s, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, 0);
    CHECK_EQ(tl_getint(s, IPPROTO_IPV6, IPV6_MULTICAST_LOOP), 0);
    CHECK_EQ(OK(sendto(s, "no-loop", 7, 0, (struct sockaddr *)&to, sizeof to)), 7);
    /* the member itself, with the loop off, does not get its own either */
    tl_setint(r, IPPROTO_IPV6, IPV6_MULTICAST_IF, (int)ifx);
    tl_setint(r, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, 0);
    CHECK_EQ(OK(sendto(r, "own", 3, 0, (struct sockaddr *)&to, sizeof to)), 3);
    tl_setint(s, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, 1);
    CHECK_EQ(OK(sendto(s, "loop", 4, 0, (struct sockaddr *)&to, sizeof to)), 4);
    expect_dgram(r, "loop"); /* the first two were never looped back */
    CHECK_EQ(tl_poll1(r, POLLIN, 100), 0);
    OK(close(r));
    OK(close(s));
}

static int mc_sender_from(const char *src)
{
    int s = mc_sender();
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = inet_addr(src)};
    OK(bind(s, (struct sockaddr *)&a, sizeof a));
    return s;
}

static void mc_source_opt(int fd, int name, const char *group, const char *src)
{
    struct ip_mreq_source m = {.imr_multiaddr.s_addr = inet_addr(group),
                               .imr_interface.s_addr = htonl(INADDR_LOOPBACK),
                               .imr_sourceaddr.s_addr = inet_addr(src)};
    OK(setsockopt(fd, IPPROTO_IP, name, &m, sizeof m));
}

static int mc_source_opt_errno(int fd, int name, const char *group, const char *src)
{
    struct ip_mreq_source m = {.imr_multiaddr.s_addr = inet_addr(group),
                               .imr_interface.s_addr = htonl(INADDR_LOOPBACK),
                               .imr_sourceaddr.s_addr = inet_addr(src)};
    return setsockopt(fd, IPPROTO_IP, name, &m, sizeof m) == 0 ? 0 : errno;
}

static void mc_source_req(int fd, int name, const char *group, const char *src)
{
    struct group_source_req r;
    memset(&r, 0, sizeof r);
    r.gsr_interface = if_nametoindex("lo");
    struct sockaddr_in *g = (struct sockaddr_in *)&r.gsr_group;
    struct sockaddr_in *so = (struct sockaddr_in *)&r.gsr_source;
    g->sin_family = so->sin_family = AF_INET;
    g->sin_addr.s_addr = inet_addr(group);
    so->sin_addr.s_addr = inet_addr(src);
    OK(setsockopt(fd, IPPROTO_IP, name, &r, sizeof r));
}

/* Source filters: a group joined for some sources (IP_ADD_SOURCE_MEMBERSHIP,
 * MCAST_JOIN_SOURCE_GROUP) takes only theirs, and leaving its last source
 * leaves it; a group joined for all (IP_ADD_MEMBERSHIP) takes every source
 * but those blocked (IP_BLOCK_SOURCE, MCAST_BLOCK_SOURCE) until unblocked;
 * the two modes do not mix once a source was listed (a join for every
 * source becomes one for some with its first IP_ADD_SOURCE_MEMBERSHIP). */
TEST(multicast_source_filters)
{
    const char *g = "239.255.13.7";
    int port = free_udp_port();
    int r = mc_receiver(port, 0, NULL);
    tl_setint(r, IPPROTO_IP, IP_MULTICAST_ALL, 0);
    int s1 = mc_sender_from("127.0.0.1"), s2 = mc_sender_from("127.0.0.2");
    /* for one source */
    mc_source_opt(r, IP_ADD_SOURCE_MEMBERSHIP, g, "127.0.0.1");
    CHECK_EQ(mc_source_opt_errno(r, IP_ADD_SOURCE_MEMBERSHIP, g, "127.0.0.1"), EADDRNOTAVAIL);
    CHECK_EQ(mc_source_opt_errno(r, IP_BLOCK_SOURCE, g, "127.0.0.2"), EINVAL);
    struct ip_mreqn all = {.imr_multiaddr.s_addr = inet_addr(g),
                           .imr_address.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_ERRNO(setsockopt(r, IPPROTO_IP, IP_ADD_MEMBERSHIP, &all, sizeof all), EADDRINUSE);
    mc_send(s2, g, port, "x2");
    mc_send(s1, g, port, "a1");
    expect_dgram(r, "a1");
    /* and a second */
    mc_source_opt(r, IP_ADD_SOURCE_MEMBERSHIP, g, "127.0.0.2");
    mc_send(s2, g, port, "b2");
    expect_dgram(r, "b2");
    mc_source_opt(r, IP_DROP_SOURCE_MEMBERSHIP, g, "127.0.0.1");
    CHECK_EQ(mc_source_opt_errno(r, IP_DROP_SOURCE_MEMBERSHIP, g, "127.0.0.1"), EADDRNOTAVAIL);
    mc_send(s1, g, port, "x1");
    mc_send(s2, g, port, "c2");
    expect_dgram(r, "c2");
    /* the last source out: out of the group */
    mc_source_opt(r, IP_DROP_SOURCE_MEMBERSHIP, g, "127.0.0.2");
    CHECK_ERRNO(setsockopt(r, IPPROTO_IP, IP_DROP_MEMBERSHIP, &all, sizeof all), EADDRNOTAVAIL);
    mc_send(s2, g, port, "x2");
    unicast_sentinel(r, "s1");
    expect_dgram(r, "s1");
    /* for every source but the blocked */
    OK(setsockopt(r, IPPROTO_IP, IP_ADD_MEMBERSHIP, &all, sizeof all));
    CHECK_EQ(mc_source_opt_errno(r, IP_UNBLOCK_SOURCE, g, "127.0.0.2"), EADDRNOTAVAIL);
    mc_source_opt(r, IP_BLOCK_SOURCE, g, "127.0.0.2");
    mc_send(s2, g, port, "x2");
    mc_send(s1, g, port, "d1");
    expect_dgram(r, "d1");
    CHECK_EQ(mc_source_opt_errno(r, IP_ADD_SOURCE_MEMBERSHIP, g, "127.0.0.1"), EINVAL);
    mc_source_opt(r, IP_UNBLOCK_SOURCE, g, "127.0.0.2");
    mc_send(s2, g, port, "e2");
    expect_dgram(r, "e2");
    /* a filter that listed a source keeps its mode, empty or not */
    CHECK_EQ(mc_source_opt_errno(r, IP_ADD_SOURCE_MEMBERSHIP, g, "127.0.0.1"), EINVAL);
    /* the group_source_req forms, blocking again */
    mc_source_req(r, MCAST_BLOCK_SOURCE, g, "127.0.0.1");
    mc_send(s1, g, port, "x1");
    mc_send(s2, g, port, "f2");
    expect_dgram(r, "f2");
    mc_source_req(r, MCAST_UNBLOCK_SOURCE, g, "127.0.0.1");
    mc_send(s1, g, port, "g1");
    expect_dgram(r, "g1");
    /* leaving drops the filter with the group */
    mc_source_req(r, MCAST_BLOCK_SOURCE, g, "127.0.0.1");
    OK(setsockopt(r, IPPROTO_IP, IP_DROP_MEMBERSHIP, &all, sizeof all));
    OK(setsockopt(r, IPPROTO_IP, IP_ADD_MEMBERSHIP, &all, sizeof all));
    mc_send(s1, g, port, "h1");
    expect_dgram(r, "h1");
    OK(setsockopt(r, IPPROTO_IP, IP_DROP_MEMBERSHIP, &all, sizeof all));
    /* MCAST_JOIN_SOURCE_GROUP and MCAST_LEAVE_SOURCE_GROUP */
    mc_source_req(r, MCAST_JOIN_SOURCE_GROUP, g, "127.0.0.2");
    mc_send(s1, g, port, "x1");
    mc_send(s2, g, port, "i2");
    expect_dgram(r, "i2");
    mc_source_req(r, MCAST_LEAVE_SOURCE_GROUP, g, "127.0.0.2");
    mc_send(s2, g, port, "x2");
    unicast_sentinel(r, "s2");
    expect_dgram(r, "s2");
    /* joined for every source, then for one: only that one */
    OK(setsockopt(r, IPPROTO_IP, IP_ADD_MEMBERSHIP, &all, sizeof all));
    mc_source_opt(r, IP_ADD_SOURCE_MEMBERSHIP, g, "127.0.0.1");
    mc_send(s2, g, port, "x2");
    mc_send(s1, g, port, "k1");
    expect_dgram(r, "k1");
    mc_source_opt(r, IP_DROP_SOURCE_MEMBERSHIP, g, "127.0.0.1");
    CHECK_ERRNO(setsockopt(r, IPPROTO_IP, IP_DROP_MEMBERSHIP, &all, sizeof all), EADDRNOTAVAIL);
    mc_send(s1, g, port, "x1");
    unicast_sentinel(r, "s3");
    expect_dgram(r, "s3");
    OK(close(r));
    OK(close(s1));
    OK(close(s2));
}

/* Source i of a filter's list. The headers declare the lists with one
 * element; the filters here are larger, and indexing past the declared
 * bound is undefined (UBSan: index out of bounds), so the address is
 * computed from the list's offset. */
static struct in_addr *msf_src(struct ip_msfilter *f, int i)
{
    return (struct in_addr *)((char *)f + offsetof(struct ip_msfilter, imsf_slist)) + i;
}

static struct sockaddr_storage *gf_src(struct group_filter *f, int i)
{
    return (struct sockaddr_storage *)((char *)f + offsetof(struct group_filter, gf_slist)) + i;
}

/* A whole IPv4 source filter as IP_MSFILTER takes and gives it. */
static void mc_msfilter(struct ip_msfilter *f, const char *group, uint32_t mode, int n,
                        const char *const *srcs)
{
    f->imsf_multiaddr.s_addr = inet_addr(group);
    f->imsf_interface.s_addr = htonl(INADDR_LOOPBACK);
    f->imsf_fmode = mode;
    f->imsf_numsrc = (uint32_t)n;
    for (int i = 0; i < n; i++)
        msf_src(f, i)->s_addr = inet_addr(srcs[i]);
}

/* The same through MCAST_MSFILTER's protocol-independent group_filter. */
static void mc_group_filter(struct group_filter *f, const char *group, uint32_t mode, int n,
                            const char *const *srcs)
{
    memset(f, 0, GROUP_FILTER_SIZE(n > 0 ? n : 1));
    f->gf_interface = if_nametoindex("lo");
    struct sockaddr_in *g = (struct sockaddr_in *)&f->gf_group;
    g->sin_family = AF_INET;
    g->sin_addr.s_addr = inet_addr(group);
    f->gf_fmode = mode;
    f->gf_numsrc = (uint32_t)n;
    for (int i = 0; i < n; i++) {
        struct sockaddr_in *s = (struct sockaddr_in *)gf_src(f, i);
        s->sin_family = AF_INET;
        s->sin_addr.s_addr = inet_addr(srcs[i]);
    }
}

/* IP_MSFILTER and MCAST_MSFILTER set a joined group's whole source filter
 * at once and read it back (Linux's ip_mc_msfilter and ip_mc_msfget): the
 * mode and the sources replace the filter's, later single-source changes
 * work on them, and an INCLUDE filter of no source leaves the group. */
TEST(multicast_msfilter)
{
    const char *g = "239.255.13.8";
    int port = free_udp_port();
    int r = mc_receiver(port, 0, NULL);
    tl_setint(r, IPPROTO_IP, IP_MULTICAST_ALL, 0);
    int s1 = mc_sender_from("127.0.0.1"), s2 = mc_sender_from("127.0.0.2");
    int s3 = mc_sender_from("127.0.0.3");
    union {
        struct ip_msfilter f;
        char b[IP_MSFILTER_SIZE(4)];
    } m;
    union {
        struct group_filter f;
        char b[GROUP_FILTER_SIZE(4)];
    } gm;
    const char *one_three[] = {"127.0.0.1", "127.0.0.3"};
    const char *three[] = {"127.0.0.3"};
    socklen_t len;
    /* not a member yet */
    memset(&m, 0, sizeof m);
    mc_msfilter(&m.f, g, MCAST_INCLUDE, 2, one_three);
    CHECK_ERRNO(setsockopt(r, IPPROTO_IP, IP_MSFILTER, &m, IP_MSFILTER_SIZE(2)), EINVAL);
    len = sizeof m;
    CHECK_ERRNO(getsockopt(r, IPPROTO_IP, IP_MSFILTER, &m, &len), EADDRNOTAVAIL);
    struct ip_mreqn all = {.imr_multiaddr.s_addr = inet_addr(g),
                           .imr_address.s_addr = htonl(INADDR_LOOPBACK)};
    OK(setsockopt(r, IPPROTO_IP, IP_ADD_MEMBERSHIP, &all, sizeof all));
    /* joined for every source: EXCLUDE, none */
    memset(&m, 0, sizeof m);
    mc_msfilter(&m.f, g, 0, 0, NULL);
    len = sizeof m;
    OK(getsockopt(r, IPPROTO_IP, IP_MSFILTER, &m, &len));
    CHECK_EQ(m.f.imsf_fmode, (uint32_t)MCAST_EXCLUDE);
    CHECK_EQ(m.f.imsf_numsrc, 0u);
    CHECK_EQ(len, (socklen_t)IP_MSFILTER_SIZE(0));
    /* INCLUDE 127.0.0.1 and 127.0.0.3 */
    mc_msfilter(&m.f, g, MCAST_INCLUDE, 2, one_three);
    OK(setsockopt(r, IPPROTO_IP, IP_MSFILTER, &m, IP_MSFILTER_SIZE(2)));
    mc_send(s2, g, port, "x2");
    mc_send(s1, g, port, "a1");
    expect_dgram(r, "a1");
    mc_send(s3, g, port, "b3");
    expect_dgram(r, "b3");
    memset(&m, 0, sizeof m);
    mc_msfilter(&m.f, g, 0, 2, one_three);
    m.f.imsf_numsrc = 4;
    len = sizeof m;
    OK(getsockopt(r, IPPROTO_IP, IP_MSFILTER, &m, &len));
    CHECK_EQ(m.f.imsf_fmode, (uint32_t)MCAST_INCLUDE);
    CHECK_EQ(m.f.imsf_numsrc, 2u);
    CHECK_EQ(len, (socklen_t)IP_MSFILTER_SIZE(2));
    CHECK(msf_src(&m.f, 0)->s_addr == inet_addr("127.0.0.1") ||
          msf_src(&m.f, 1)->s_addr == inet_addr("127.0.0.1"));
    CHECK(msf_src(&m.f, 0)->s_addr == inet_addr("127.0.0.3") ||
          msf_src(&m.f, 1)->s_addr == inet_addr("127.0.0.3"));
    /* room for one source: the count is the filter's, one is copied */
    memset(&m, 0, sizeof m);
    mc_msfilter(&m.f, g, 0, 1, one_three);
    len = IP_MSFILTER_SIZE(1);
    OK(getsockopt(r, IPPROTO_IP, IP_MSFILTER, &m, &len));
    CHECK_EQ(m.f.imsf_numsrc, 2u);
    CHECK_EQ(len, (socklen_t)IP_MSFILTER_SIZE(1));
    len = IP_MSFILTER_SIZE(0) - 1;
    CHECK_ERRNO(getsockopt(r, IPPROTO_IP, IP_MSFILTER, &m, &len), EINVAL);
    /* single-source changes work on the filter set */
    mc_source_opt(r, IP_DROP_SOURCE_MEMBERSHIP, g, "127.0.0.1");
    CHECK_EQ(mc_source_opt_errno(r, IP_BLOCK_SOURCE, g, "127.0.0.2"), EINVAL);
    mc_send(s1, g, port, "x1");
    mc_send(s3, g, port, "c3");
    expect_dgram(r, "c3");
    /* EXCLUDE 127.0.0.3, through MCAST_MSFILTER */
    mc_group_filter(&gm.f, g, MCAST_EXCLUDE, 1, three);
    OK(setsockopt(r, IPPROTO_IP, MCAST_MSFILTER, &gm, GROUP_FILTER_SIZE(1)));
    mc_send(s3, g, port, "x3");
    mc_send(s1, g, port, "d1");
    expect_dgram(r, "d1");
    mc_send(s2, g, port, "e2");
    expect_dgram(r, "e2");
    mc_group_filter(&gm.f, g, MCAST_INCLUDE, 0, NULL);
    gm.f.gf_numsrc = 4;
    len = sizeof gm;
    OK(getsockopt(r, IPPROTO_IP, MCAST_MSFILTER, &gm, &len));
    CHECK_EQ(gm.f.gf_fmode, (uint32_t)MCAST_EXCLUDE);
    CHECK_EQ(gm.f.gf_numsrc, 1u);
    CHECK_EQ(((struct sockaddr_in *)gf_src(&gm.f, 0))->sin_addr.s_addr, inet_addr("127.0.0.3"));
    mc_source_opt(r, IP_UNBLOCK_SOURCE, g, "127.0.0.3");
    mc_send(s3, g, port, "f3");
    expect_dgram(r, "f3");
    /* INCLUDE nothing: out of the group */
    mc_msfilter(&m.f, g, MCAST_INCLUDE, 0, NULL);
    OK(setsockopt(r, IPPROTO_IP, IP_MSFILTER, &m, IP_MSFILTER_SIZE(0)));
    CHECK_ERRNO(setsockopt(r, IPPROTO_IP, IP_DROP_MEMBERSHIP, &all, sizeof all), EADDRNOTAVAIL);
    mc_send(s1, g, port, "x1");
    unicast_sentinel(r, "s1");
    expect_dgram(r, "s1");
    OK(close(r));
    OK(close(s1));
    OK(close(s2));
    OK(close(s3));
}

/* A source taken out of a group's filter that never listed one fails
 * (EADDRNOTAVAIL) but has switched the filter's mode first, as Linux's
 * ip_mc_source allows mode switches for empty-set filters: a group joined
 * for every source then takes none, until a block switches it back. */
TEST(multicast_refused_change_switches_mode)
{
    const char *g = "239.255.13.9";
    int port = free_udp_port();
    int r = mc_receiver(port, 1, g);
    tl_setint(r, IPPROTO_IP, IP_MULTICAST_ALL, 0);
    int s1 = mc_sender_from("127.0.0.1"), s2 = mc_sender_from("127.0.0.2");
    CHECK_EQ(mc_source_opt_errno(r, IP_DROP_SOURCE_MEMBERSHIP, g, "127.0.0.1"), EADDRNOTAVAIL);
    union {
        struct ip_msfilter f;
        char b[IP_MSFILTER_SIZE(2)];
    } m;
    memset(&m, 0, sizeof m);
    m.f.imsf_multiaddr.s_addr = inet_addr(g);
    m.f.imsf_interface.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof m;
    OK(getsockopt(r, IPPROTO_IP, IP_MSFILTER, &m, &len));
    CHECK_EQ(m.f.imsf_fmode, (uint32_t)MCAST_INCLUDE);
    CHECK_EQ(m.f.imsf_numsrc, 0u);
    mc_send(s1, g, port, "x1");
    unicast_sentinel(r, "s1");
    expect_dgram(r, "s1");
    /* a block switches it back, and lists a source */
    mc_source_opt(r, IP_BLOCK_SOURCE, g, "127.0.0.2");
    mc_send(s2, g, port, "x2");
    mc_send(s1, g, port, "a1");
    expect_dgram(r, "a1");
    CHECK_EQ(mc_source_opt_errno(r, IP_DROP_SOURCE_MEMBERSHIP, g, "127.0.0.1"), EINVAL);
    mc_send(s1, g, port, "b1");
    expect_dgram(r, "b1");
    OK(close(r));
    OK(close(s1));
    OK(close(s2));
}

TEST(broadcast_needs_so_broadcast)
{
    int port = free_udp_port();
    int r1 = mc_receiver(port, 0, NULL), r2 = mc_receiver(port, 0, NULL);
    int s = (int)OK(socket(AF_INET, SOCK_DGRAM, 0));
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(0x7fffffff)}; /* 127.255.255.255 */
    CHECK_ERRNO(sendto(s, "b", 1, 0, (struct sockaddr *)&to, sizeof to), EACCES);
    to.sin_addr.s_addr = htonl(INADDR_BROADCAST);
    CHECK_ERRNO(sendto(s, "b", 1, 0, (struct sockaddr *)&to, sizeof to), EACCES);
    CHECK_ERRNO(connect(s, (struct sockaddr *)&to, sizeof to), EACCES);
    tl_setint(s, SOL_SOCKET, SO_BROADCAST, 1);
    to.sin_addr.s_addr = htonl(0x7fffffff);
    CHECK_EQ(OK(sendto(s, "bcast", 5, 0, (struct sockaddr *)&to, sizeof to)), 5);
    /* every socket bound to the port gets it */
    expect_dgram(r1, "bcast");
    expect_dgram(r2, "bcast");
    OK(close(r1));
    OK(close(r2));
    OK(close(s));
}

/* ---- multicast across processes -------------------------------------------- */

/* A member process: its own socket, made after fork, driven by one-letter
 * commands on a pipe ("b" bind the port with SO_REUSEADDR, "j" join the
 * group, "d" drop it, "a" IP_MULTICAST_ALL off, "rN" wait for N datagrams
 * then report everything read, "q" close and exit); each command answers
 * one line on the other pipe. */
struct mc_member {
    pid_t pid;
    int cmd, res;
};

struct mc_where {
    int fam; /* AF_INET or AF_INET6 */
    int port;
    const char *group; /* NULL: broadcast (SO_BROADCAST is the sender's) */
    unsigned ifindex;  /* the membership's interface (IPv6) */
};

static void mc_member_loop(const struct mc_where *w, int cmd, int res)
{
    int fd = -1;
    char c[8];
    for (;;) {
        ssize_t n = read(cmd, c, sizeof c - 1);
        if (n <= 0)
            _exit(0);
        c[n] = 0;
        char out[512];
        int rc = 0;
        out[0] = 0;
        if (c[0] == 'b') {
            fd = socket(w->fam, SOCK_DGRAM, 0);
            int one = 1;
            rc = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            struct sockaddr_storage ss;
            socklen_t l = tl_any(w->fam == AF_INET ? FAM_INET : FAM_INET6, &ss, w->port);
            if (!rc)
                rc = bind(fd, (struct sockaddr *)&ss, l);
        } else if (c[0] == 'j' || c[0] == 'd') {
            if (w->fam == AF_INET) {
                struct ip_mreqn m = {.imr_multiaddr.s_addr = inet_addr(w->group),
                                     .imr_address.s_addr = htonl(INADDR_LOOPBACK)};
                rc = setsockopt(fd, IPPROTO_IP, c[0] == 'j' ? IP_ADD_MEMBERSHIP : IP_DROP_MEMBERSHIP,
                                &m, sizeof m);
            } else {
                struct ipv6_mreq m = {.ipv6mr_interface = w->ifindex};
                inet_pton(AF_INET6, w->group, &m.ipv6mr_multiaddr);
                rc = setsockopt(fd, IPPROTO_IPV6, c[0] == 'j' ? IPV6_JOIN_GROUP : IPV6_LEAVE_GROUP,
                                &m, sizeof m);
            }
        } else if (c[0] == 'a') {
            int zero = 0;
            rc = w->fam == AF_INET
                     ? setsockopt(fd, IPPROTO_IP, IP_MULTICAST_ALL, &zero, sizeof zero)
                     : setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_ALL, &zero, sizeof zero);
        } else if (c[0] == 'r') {
            int want = atoi(c + 1), got = 0;
            size_t used = 0;
            for (;;) {
                /* what is due within 5 s, then anything more within 300 ms */
                struct pollfd p = {.fd = fd, .events = POLLIN};
                if (poll(&p, 1, got < want ? 5000 : 300) != 1)
                    break;
                char buf[64];
                ssize_t k = recv(fd, buf, sizeof buf - 1, 0);
                if (k < 0) {
                    rc = -1;
                    break;
                }
                buf[k] = 0;
                used += (size_t)snprintf(out + used, sizeof out - used, "%s%s", got ? "," : "", buf);
                if (used >= sizeof out - 1)
                    break;
                got++;
            }
        } else {
            close(fd);
            _exit(0);
        }
        char line[600];
        int len = rc ? snprintf(line, sizeof line, "err %d\n", errno)
                     : snprintf(line, sizeof line, "%s\n", out);
        if (write(res, line, (size_t)len) != len)
            _exit(1);
    }
}

/* The multicast members are fork children that make sockets of their
 * own (testlib.h). */
TL_TSAN_THREADS_AFTER_FORK

static struct mc_member mc_member_start(const struct mc_where *w)
{
    int cmd[2], res[2];
    OK(pipe(cmd));
    OK(pipe(res));
    struct mc_member m;
    m.pid = (pid_t)OK(fork());
    if (m.pid == 0) {
        close(cmd[1]);
        close(res[0]);
        mc_member_loop(w, cmd[0], res[1]);
    }
    OK(close(cmd[0]));
    OK(close(res[1]));
    m.cmd = cmd[1];
    m.res = res[0];
    return m;
}

/* Sends command c to member m and checks its answer. */
static void mc_member_do(struct mc_member *m, const char *c, const char *want)
{
    CHECK_EQ(OK(write(m->cmd, c, strlen(c))), (long)strlen(c));
    char line[600];
    size_t n = 0;
    while (n < sizeof line - 1) {
        CHECK(tl_poll1(m->res, POLLIN, 15000) & POLLIN);
        ssize_t k = OK(read(m->res, line + n, 1));
        CHECK(k == 1);
        if (line[n] == '\n')
            break;
        n++;
    }
    line[n] = 0;
    if (strcmp(line, want) != 0) {
        fprintf(stderr, "member %d: \"%s\" answered \"%s\", want \"%s\"\n", (int)m->pid, c, line,
                want);
        CHECK(strcmp(line, want) == 0);
    }
}

static void mc_member_end(struct mc_member *m, int kill_it)
{
    int st;
    if (kill_it)
        OK(kill(m->pid, SIGKILL));
    else
        OK(write(m->cmd, "q", 1));
    OK(waitpid(m->pid, &st, 0));
    OK(close(m->cmd));
    OK(close(m->res));
}

static void mc_send_to(int s, const struct mc_where *w, const char *msg)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t l;
    if (w->fam == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)w->port);
        a->sin_addr.s_addr = w->group ? inet_addr(w->group) : htonl(INADDR_BROADCAST);
        l = sizeof *a;
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)w->port);
        inet_pton(AF_INET6, w->group, &a->sin6_addr);
        a->sin6_scope_id = w->ifindex;
        l = sizeof *a;
    }
    CHECK_EQ(OK(sendto(s, msg, strlen(msg), 0, (struct sockaddr *)&ss, l)), (long)strlen(msg));
}

extern int usock_socket(int domain, int type, int protocol) __attribute__((weak));

/* Linked without a network (USOCK_NET), this program's sockets are on a
 * network of its process alone, which its children (sockets made after
 * fork are theirs) do not share: a case about other processes runs again,
 * in this program started anew on a cross-process network made for it.
 * Whether it did (the case is over). */
static int mc_on_a_network(const char *name)
{
    if (usock_socket == NULL || getenv("USOCK_NET"))
        return 0;
    char net[64], self[4096];
    snprintf(net, sizeof net, "/tmp/t_ipopt-net-XXXXXX");
    CHECK(mkdtemp(net) != NULL);
    ssize_t n = OK(readlink("/proc/self/exe", self, sizeof self - 1));
    self[n] = 0;
    pid_t p = (pid_t)OK(fork());
    if (p == 0) {
        setenv("USOCK_NET", net, 1);
        dup2(2, 1); /* its report is not this program's */
        char *argv[] = {self, (char *)name, NULL};
        execv(self, argv);
        _exit(127);
    }
    int st;
    OK(waitpid(p, &st, 0));
    char rm[128];
    snprintf(rm, sizeof rm, "rm -rf %s", net);
    CHECK(system(rm) == 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    return 1;
}

/* Two member processes and this one share the group's port (each socket
 * with SO_REUSEADDR, bound to the wildcard) and join the group; a third
 * process is bound there without joining (IP_MULTICAST_ALL off: with it
 * on, Linux gives it the group's datagrams too, as some socket of the
 * host joined). A datagram to the group reaches every member once, in
 * every process, this one's too (IP_MULTICAST_LOOP); a member that
 * leaves (with IP_MULTICAST_ALL off, as otherwise it still gets what the
 * host's other members do), and one killed, get nothing more and the
 * sender sees no error.
 * Unicast to the port goes to one socket: the last bound, also for a
 * sender that sent there before the later binds. */
static void mc_across_processes(struct mc_where *w)
{
    int me = (int)OK(socket(w->fam, SOCK_DGRAM, 0));
    tl_setint(me, SOL_SOCKET, SO_REUSEADDR, 1);
    struct sockaddr_storage ss;
    socklen_t l = tl_any(w->fam == AF_INET ? FAM_INET : FAM_INET6, &ss, w->port);
    OK(bind(me, (struct sockaddr *)&ss, l));
    struct sockaddr_storage to;
    socklen_t tol = tl_loop(w->fam == AF_INET ? FAM_INET : FAM_INET6, &to, w->port);
    int u = (int)OK(socket(w->fam, SOCK_DGRAM, 0));
    CHECK_EQ(OK(sendto(u, "u0", 2, 0, (struct sockaddr *)&to, tol)), 2);
    expect_dgram(me, "u0");
    if (w->fam == AF_INET) {
        struct ip_mreqn m = {.imr_multiaddr.s_addr = inet_addr(w->group),
                             .imr_address.s_addr = htonl(INADDR_LOOPBACK)};
        OK(setsockopt(me, IPPROTO_IP, IP_ADD_MEMBERSHIP, &m, sizeof m));
    } else {
        struct ipv6_mreq m = {.ipv6mr_interface = w->ifindex};
        inet_pton(AF_INET6, w->group, &m.ipv6mr_multiaddr);
        OK(setsockopt(me, IPPROTO_IPV6, IPV6_JOIN_GROUP, &m, sizeof m));
    }
    struct mc_member other = mc_member_start(w);
    mc_member_do(&other, "b", "");
    CHECK_EQ(OK(sendto(u, "u1", 2, 0, (struct sockaddr *)&to, tol)), 2);
    mc_member_do(&other, "r1", "u1");
    mc_member_do(&other, "a", "");
    struct mc_member m1 = mc_member_start(w), m2 = mc_member_start(w);
    mc_member_do(&m1, "b", "");
    mc_member_do(&m1, "a", "");
    mc_member_do(&m1, "j", "");
    mc_member_do(&m2, "b", "");
    mc_member_do(&m2, "j", "");
    int s = (int)OK(socket(w->fam, SOCK_DGRAM, 0));
    if (w->fam == AF_INET) {
        struct in_addr lo = {htonl(INADDR_LOOPBACK)};
        OK(setsockopt(s, IPPROTO_IP, IP_MULTICAST_IF, &lo, sizeof lo));
    } else {
        OK(setsockopt(s, IPPROTO_IPV6, IPV6_MULTICAST_IF, &w->ifindex, sizeof w->ifindex));
    }
    mc_send_to(s, w, "one");
    mc_send_to(s, w, "two");
    mc_member_do(&m1, "r2", "one,two");
    mc_member_do(&m2, "r2", "one,two");
    mc_member_do(&other, "r0", "");
    expect_dgram(me, "one");
    expect_dgram(me, "two");
    /* unicast: to the last bound */
    CHECK_EQ(OK(sendto(u, "uni", 3, 0, (struct sockaddr *)&to, tol)), 3);
    mc_member_do(&m2, "r1", "uni");
    mc_member_do(&m1, "r0", "");
    CHECK_EQ(tl_poll1(me, POLLIN, 0), 0);
    /* a member that leaves */
    mc_member_do(&m1, "d", "");
    mc_send_to(s, w, "three");
    mc_member_do(&m2, "r1", "three");
    mc_member_do(&m1, "r0", "");
    expect_dgram(me, "three");
    /* one killed: no error, the others still get theirs */
    mc_member_end(&m2, 1);
    mc_send_to(s, w, "four");
    mc_send_to(s, w, "five");
    expect_dgram(me, "four");
    expect_dgram(me, "five");
    /* unicast: to the last bound still there (after four and five, which
     * it does not take, as it sees them first) */
    CHECK_EQ(OK(sendto(u, "uni2", 4, 0, (struct sockaddr *)&to, tol)), 4);
    mc_member_do(&m1, "r1", "uni2");
    mc_member_do(&m1, "j", "");
    mc_send_to(s, w, "six");
    mc_member_do(&m1, "r1", "six");
    expect_dgram(me, "six");
    mc_member_do(&other, "r0", "");
    mc_member_end(&m1, 0);
    mc_member_end(&other, 0);
    mc_send_to(s, w, "seven");
    expect_dgram(me, "seven");
    CHECK_EQ(tl_poll1(me, POLLIN, 200), 0);
    /* the last member left: to the first again */
    CHECK_EQ(OK(sendto(u, "u2", 2, 0, (struct sockaddr *)&to, tol)), 2);
    expect_dgram(me, "u2");
    OK(close(me));
    OK(close(s));
    OK(close(u));
}

TEST(multicast_across_processes)
{
    if (mc_on_a_network("multicast_across_processes"))
        return;
    struct mc_where w = {.fam = AF_INET, .port = free_udp_port(), .group = "239.255.13.9"};
    mc_across_processes(&w);
}

TEST(ipv6_multicast_across_processes)
{
    if (mc_on_a_network("ipv6_multicast_across_processes"))
        return;
    struct in_addr unused;
    unsigned ifx = mc_ifindex(0, &unused);
    if (!ifx)
        t_skip("multicast", "no interface up with IFF_MULTICAST");
    int t = bound_any_udp(FAM_INET6);
    struct sockaddr_storage ss;
    tl_name(t, &ss);
    OK(close(t));
    struct mc_where w = {.fam = AF_INET6, .port = tl_port(&ss), .group = "ff02::13:9",
                         .ifindex = ifx};
    mc_across_processes(&w);
}

/* IP_MULTICAST_ALL (on by default): a socket of the port that is no member
 * takes a group's datagrams while some socket of this host is a member,
 * here one of another process; with the option off, or once that member
 * left, it does not. */
TEST(multicast_all_across_processes)
{
    if (mc_on_a_network("multicast_all_across_processes"))
        return;
    struct mc_where w = {.fam = AF_INET, .port = free_udp_port(), .group = "239.255.13.10"};
    struct mc_member m = mc_member_start(&w);
    mc_member_do(&m, "b", "");
    mc_member_do(&m, "j", "");
    int me = mc_receiver(w.port, 0, NULL);
    int off = mc_receiver(w.port, 0, NULL);
    tl_setint(off, IPPROTO_IP, IP_MULTICAST_ALL, 0);
    int s = mc_sender();
    mc_send_to(s, &w, "g1");
    mc_member_do(&m, "r1", "g1");
    expect_dgram(me, "g1");
    /* the member leaves: the host is no member any more */
    mc_member_do(&m, "d", "");
    mc_send_to(s, &w, "x");
    CHECK_EQ(tl_poll1(me, POLLIN, 300) & POLLIN, 0);
    char c;
    CHECK_ERRNO(recv(off, &c, 1, MSG_DONTWAIT), EAGAIN);
    mc_member_end(&m, 0);
    OK(close(me));
    OK(close(off));
    OK(close(s));
}

/* Broadcast with SO_BROADCAST reaches every process bound to the port. */
TEST(broadcast_across_processes)
{
    if (mc_on_a_network("broadcast_across_processes"))
        return;
    struct mc_where w = {.fam = AF_INET, .port = free_udp_port()};
    struct mc_member m1 = mc_member_start(&w), m2 = mc_member_start(&w);
    mc_member_do(&m1, "b", "");
    mc_member_do(&m2, "b", "");
    int me = mc_receiver(w.port, 0, NULL);
    int s = (int)OK(socket(AF_INET, SOCK_DGRAM, 0));
    tl_setint(s, SOL_SOCKET, SO_BROADCAST, 1);
    mc_send_to(s, &w, "all");
    struct sockaddr_in lb = {.sin_family = AF_INET, .sin_port = htons((uint16_t)w.port),
                             .sin_addr.s_addr = htonl(0x7fffffff)};
    CHECK_EQ(OK(sendto(s, "lo", 2, 0, (struct sockaddr *)&lb, sizeof lb)), 2);
    mc_member_do(&m1, "r2", "all,lo");
    mc_member_do(&m2, "r2", "all,lo");
    expect_dgram(me, "all");
    expect_dgram(me, "lo");
    mc_member_end(&m1, 1);
    mc_send_to(s, &w, "after");
    mc_member_do(&m2, "r1", "after");
    expect_dgram(me, "after");
    mc_member_end(&m2, 0);
    OK(close(me));
    OK(close(s));
}

/* ---- UDP: UDP_CORK, MSG_MORE, UDP_SEGMENT ------------------------------------ */

TEST_INET(udp_cork_and_msg_more_make_one_datagram)
{
    int a, b;
    tl_dgram_pair(fam, &a, &b);
    tl_setint(a, IPPROTO_UDP, UDP_CORK, 1);
    CHECK_EQ(tl_getint(a, IPPROTO_UDP, UDP_CORK), 1);
    CHECK_EQ(OK(send(a, "one,", 4, 0)), 4);
    CHECK_EQ(OK(send(a, "two", 3, 0)), 3);
    CHECK_EQ(tl_poll1(b, POLLIN, 0), 0);
    tl_setint(a, IPPROTO_UDP, UDP_CORK, 0);
    expect_dgram(b, "one,two");
    CHECK_EQ(OK(send(a, "x", 1, MSG_MORE)), 1);
    CHECK_EQ(OK(send(a, "y", 1, MSG_MORE)), 1);
    CHECK_EQ(tl_poll1(b, POLLIN, 0), 0);
    CHECK_EQ(OK(send(a, "z", 1, 0)), 1);
    expect_dgram(b, "xyz");
    OK(close(a));
    OK(close(b));
}

TEST_INET(udp_segment_splits_a_send)
{
    int a, b;
    tl_dgram_pair(fam, &a, &b);
    tl_setint(a, IPPROTO_UDP, UDP_SEGMENT, 1000);
    CHECK_EQ(tl_getint(a, IPPROTO_UDP, UDP_SEGMENT), 1000);
    static char buf[2500];
    tl_fill(buf, sizeof buf, 3);
    CHECK_EQ(OK(send(a, buf, sizeof buf, 0)), 2500);
    static char got[3000];
    for (int i = 0; i < 3; i++) {
        CHECK(tl_poll1(b, POLLIN, 5000) & POLLIN);
        ssize_t n = OK(recv(b, got, sizeof got, 0));
        CHECK_EQ(n, i < 2 ? 1000 : 500);
        CHECK(memcmp(got, buf + 1000 * i, (size_t)n) == 0);
    }
    CHECK_ERRNO(setsockopt(a, IPPROTO_UDP, UDP_SEGMENT, &(int){65536}, sizeof(int)), EINVAL);
    OK(close(a));
    OK(close(b));
}

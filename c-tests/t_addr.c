/*
 * t_addr.c - issue 13, class 4: addresses and ports as Linux keeps them.
 *
 *  - IPv4 and IPv6-only binds of one port coexist; a dual-stack bind
 *    conflicts with IPv4; v4-mapped addresses and the errnos of family
 *    mismatches (EINVAL, EAFNOSUPPORT, ENETUNREACH); the names a
 *    dual-stack socket reports.
 *  - TIME_WAIT after an active close holds the port (EADDRINUSE) and the
 *    4-tuple (EADDRNOTAVAIL); SO_REUSEADDR's rules around it.
 *  - ephemeral ports from net.ipv4.ip_local_port_range (and the
 *    IP_LOCAL_PORT_RANGE option), and the errnos when they run out.
 *  - SO_REUSEPORT spreading connections and datagrams, and its same-user
 *    rule; privileged ports without CAP_NET_BIND_SERVICE; self-connect;
 *    connecting to the wildcard address; local-address checks.
 */
#include "testlib.h"

#include <linux/capability.h>
#include <net/if.h>
#include <sys/syscall.h>

#ifndef IP_LOCAL_PORT_RANGE
#define IP_LOCAL_PORT_RANGE 51
#endif

static int sock(int fam, int type) { return (int)OK(socket(tl_domain(fam), type, 0)); }

static socklen_t addr4(struct sockaddr_storage *ss, const char *ip, int port)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    CHECK(inet_pton(AF_INET, ip, &a->sin_addr) == 1);
    return sizeof *a;
}

static socklen_t addr6(struct sockaddr_storage *ss, const char *ip, int port)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    CHECK(inet_pton(AF_INET6, ip, &a->sin6_addr) == 1);
    return sizeof *a;
}

static int v6sock(int type, int v6only)
{
    int fd = sock(FAM_INET6, type);
    tl_setint(fd, IPPROTO_IPV6, IPV6_V6ONLY, v6only);
    return fd;
}

static int bind_to(int fd, struct sockaddr_storage *ss, socklen_t l)
{
    return bind(fd, (struct sockaddr *)ss, l);
}

static int port_of(int fd)
{
    struct sockaddr_storage ss;
    tl_name(fd, &ss);
    return tl_port(&ss);
}

static const int types[2] = {SOCK_STREAM, SOCK_DGRAM};
static const char *tname(int t) { return t == SOCK_STREAM ? "tcp" : "udp"; }

/* ---- IPv4 and IPv6 on one port ------------------------------------------ */

/* Binds v4 to ip4:0, then v6 to ip6 on the same port; another program may
 * hold that port number in IPv6, so a few ports are tried. */
static int same_port_both(int v4, const char *ip4, int v6, const char *ip6, int type)
{
    struct sockaddr_storage ss;
    for (int attempt = 0; attempt < 20; attempt++) {
        socklen_t l = addr4(&ss, ip4, 0);
        OK(bind_to(v4, &ss, l));
        int port = port_of(v4);
        l = addr6(&ss, ip6, port);
        if (bind_to(v6, &ss, l) == 0)
            return port;
        CHECK_MSG(errno == EADDRINUSE, "%s: [%s]:%d next to %s:%d: %s", tname(type), ip6, port,
                  ip4, port, tl_errname(errno));
        /* start again with a fresh IPv4 socket */
        int fresh = sock(FAM_INET, type);
        OK(dup2(fresh, v4));
        OK(close(fresh));
    }
    tl_fail(__FILE__, __LINE__, "no port free in both families");
}

TEST(v4_wildcard_and_v6only_wildcard_coexist)
{
    for (int t = 0; t < 2; t++) {
        struct sockaddr_storage ss;
        socklen_t l;
        int v4 = sock(FAM_INET, types[t]);
        int v6 = v6sock(types[t], 1);
        int port = same_port_both(v4, "0.0.0.0", v6, "::", types[t]);
        if (types[t] == SOCK_STREAM) {
            OK(listen(v4, 4));
            OK(listen(v6, 4));
            /* each family's connections reach its own listener */
            int c4 = sock(FAM_INET, SOCK_STREAM), c6 = sock(FAM_INET6, SOCK_STREAM);
            l = addr4(&ss, "127.0.0.1", port);
            OK(connect(c4, (struct sockaddr *)&ss, l));
            l = addr6(&ss, "::1", port);
            OK(connect(c6, (struct sockaddr *)&ss, l));
            struct sockaddr_storage peer;
            socklen_t pl = sizeof peer;
            int a4 = (int)OK(accept(v4, (struct sockaddr *)&peer, &pl));
            CHECK_EQ(peer.ss_family, AF_INET);
            pl = sizeof peer;
            int a6 = (int)OK(accept(v6, (struct sockaddr *)&peer, &pl));
            CHECK_EQ(peer.ss_family, AF_INET6);
            OK(close(a4));
            OK(close(a6));
            OK(close(c4));
            OK(close(c6));
        }
        /* and a dual-stack one conflicts with the IPv4 bind */
        int dual = v6sock(types[t], 0);
        l = addr6(&ss, "::", port);
        CHECK_ERRNO(bind_to(dual, &ss, l), EADDRINUSE);
        OK(close(dual));
        OK(close(v4));
        OK(close(v6));
    }
}

TEST(dual_stack_wildcard_excludes_v4)
{
    for (int t = 0; t < 2; t++) {
        struct sockaddr_storage ss;
        int dual = v6sock(types[t], 0);
        socklen_t l = addr6(&ss, "::", 0);
        OK(bind_to(dual, &ss, l));
        int port = port_of(dual);
        if (types[t] == SOCK_STREAM)
            OK(listen(dual, 4));
        int v4 = sock(FAM_INET, types[t]);
        l = addr4(&ss, "0.0.0.0", port);
        CHECK_ERRNO(bind_to(v4, &ss, l), EADDRINUSE);
        l = addr4(&ss, "127.0.0.1", port);
        CHECK_ERRNO(bind_to(v4, &ss, l), EADDRINUSE);
        OK(close(v4));
        /* a v6-only socket of its own port is fine */
        int v6 = v6sock(types[t], 1);
        l = addr6(&ss, "::1", port);
        CHECK_ERRNO(bind_to(v6, &ss, l), EADDRINUSE);
        OK(close(v6));
        OK(close(dual));
    }
}

TEST(v4_loopback_and_v6_loopback_coexist)
{
    for (int t = 0; t < 2; t++) {
        struct sockaddr_storage ss;
        socklen_t l;
        int v4 = sock(FAM_INET, types[t]);
        int v6 = sock(FAM_INET6, types[t]); /* not v6-only: ::1 is not a v4 address */
        int port = same_port_both(v4, "127.0.0.1", v6, "::1", types[t]);
        /* but the v4-mapped form of the IPv4 address is the same address */
        int m = sock(FAM_INET6, types[t]);
        l = addr6(&ss, "::ffff:127.0.0.1", port);
        CHECK_ERRNO(bind_to(m, &ss, l), EADDRINUSE);
        OK(close(m));
        OK(close(v4));
        OK(close(v6));
    }
}

/* ---- v4-mapped addresses and family mismatches ---------------------------- */

TEST(v4_mapped_on_a_v6only_socket)
{
    for (int t = 0; t < 2; t++) {
        struct sockaddr_storage ss;
        int fd = v6sock(types[t], 1);
        socklen_t l = addr6(&ss, "::ffff:127.0.0.1", 0);
        CHECK_ERRNO(bind_to(fd, &ss, l), EINVAL);
        l = addr6(&ss, "::ffff:127.0.0.1", 9);
        CHECK_ERRNO(connect(fd, (struct sockaddr *)&ss, l), ENETUNREACH);
        OK(close(fd));
        if (types[t] == SOCK_DGRAM) {
            fd = v6sock(SOCK_DGRAM, 1);
            CHECK_ERRNO(sendto(fd, "x", 1, 0, (struct sockaddr *)&ss, l), ENETUNREACH);
            OK(close(fd));
        }
        /* a socket bound to ::1 cannot reach an IPv4 address */
        fd = sock(FAM_INET6, types[t]);
        struct sockaddr_storage me;
        socklen_t ml = addr6(&me, "::1", 0);
        OK(bind_to(fd, &me, ml));
        CHECK_ERRNO(connect(fd, (struct sockaddr *)&ss, l), ENETUNREACH);
        if (types[t] == SOCK_DGRAM)
            CHECK_ERRNO(sendto(fd, "x", 1, 0, (struct sockaddr *)&ss, l), ENETUNREACH);
        OK(close(fd));
    }
}

TEST(v4_mapped_connect_names)
{
    /* TCP: a dual-stack client to an IPv4 listener */
    int l4 = tl_listener(FAM_INET, 4);
    int port = port_of(l4);
    int c = sock(FAM_INET6, SOCK_STREAM);
    struct sockaddr_storage ss;
    socklen_t l = addr6(&ss, "::ffff:127.0.0.1", port);
    OK(connect(c, (struct sockaddr *)&ss, l));
    struct sockaddr_storage me, peer;
    socklen_t ml = sizeof me, pl = sizeof peer;
    OK(getsockname(c, (struct sockaddr *)&me, &ml));
    OK(getpeername(c, (struct sockaddr *)&peer, &pl));
    CHECK_EQ(ml, sizeof(struct sockaddr_in6));
    CHECK_EQ(me.ss_family, AF_INET6);
    CHECK(IN6_IS_ADDR_V4MAPPED(&((struct sockaddr_in6 *)&me)->sin6_addr));
    CHECK_EQ(((struct sockaddr_in6 *)&me)->sin6_addr.s6_addr[15], 1);
    CHECK_EQ(peer.ss_family, AF_INET6);
    CHECK(IN6_IS_ADDR_V4MAPPED(&((struct sockaddr_in6 *)&peer)->sin6_addr));
    CHECK_EQ(tl_port(&peer), port);
    /* the IPv4 side sees an IPv4 peer, with the client's port */
    pl = sizeof peer;
    int s = (int)OK(accept(l4, (struct sockaddr *)&peer, &pl));
    CHECK_EQ(pl, sizeof(struct sockaddr_in));
    CHECK_EQ(peer.ss_family, AF_INET);
    CHECK_EQ(tl_port(&peer), tl_port(&me));
    OK(close(s));
    OK(close(c));
    OK(close(l4));

    /* a dual-stack listener accepting an IPv4 client */
    int l6 = v6sock(SOCK_STREAM, 0);
    l = addr6(&ss, "::", 0);
    OK(bind_to(l6, &ss, l));
    OK(listen(l6, 4));
    port = port_of(l6);
    c = sock(FAM_INET, SOCK_STREAM);
    l = addr4(&ss, "127.0.0.1", port);
    OK(connect(c, (struct sockaddr *)&ss, l));
    pl = sizeof peer;
    s = (int)OK(accept(l6, (struct sockaddr *)&peer, &pl));
    CHECK_EQ(peer.ss_family, AF_INET6);
    CHECK(IN6_IS_ADDR_V4MAPPED(&((struct sockaddr_in6 *)&peer)->sin6_addr));
    ml = sizeof me;
    OK(getsockname(s, (struct sockaddr *)&me, &ml));
    CHECK_EQ(me.ss_family, AF_INET6);
    CHECK(IN6_IS_ADDR_V4MAPPED(&((struct sockaddr_in6 *)&me)->sin6_addr));
    CHECK_EQ(tl_port(&me), port);
    OK(close(s));
    OK(close(c));
    OK(close(l6));

    /* UDP: a dual-stack socket receives an IPv4 datagram from a mapped address */
    int u6 = v6sock(SOCK_DGRAM, 0);
    l = addr6(&ss, "::", 0);
    OK(bind_to(u6, &ss, l));
    int u4 = sock(FAM_INET, SOCK_DGRAM);
    l = addr4(&ss, "127.0.0.1", port_of(u6));
    CHECK_EQ(OK(sendto(u4, "m", 1, 0, (struct sockaddr *)&ss, l)), 1);
    CHECK(tl_poll1(u6, POLLIN, 5000) & POLLIN);
    char b;
    pl = sizeof peer;
    CHECK_EQ(OK(recvfrom(u6, &b, 1, 0, (struct sockaddr *)&peer, &pl)), 1);
    CHECK_EQ(pl, sizeof(struct sockaddr_in6));
    CHECK(IN6_IS_ADDR_V4MAPPED(&((struct sockaddr_in6 *)&peer)->sin6_addr));
    CHECK_EQ(tl_port(&peer), port_of(u4));
    /* and answers it through the mapped address */
    CHECK_EQ(OK(sendto(u6, "r", 1, 0, (struct sockaddr *)&peer, pl)), 1);
    CHECK(tl_poll1(u4, POLLIN, 5000) & POLLIN);
    CHECK_EQ(OK(recv(u4, &b, 1, 0)), 1);
    OK(close(u6));
    OK(close(u4));
}

TEST(family_mismatch_errnos)
{
    struct sockaddr_storage s6, s4;
    socklen_t l6 = addr6(&s6, "::1", 0), l4 = addr4(&s4, "127.0.0.1", 0);
    for (int t = 0; t < 2; t++) {
        /* an IPv4 socket given an IPv6 address */
        int v4 = sock(FAM_INET, types[t]);
        CHECK_ERRNO(bind_to(v4, &s6, l6), EAFNOSUPPORT);
        CHECK_ERRNO(connect(v4, (struct sockaddr *)&s6, l6), EAFNOSUPPORT);
        if (types[t] == SOCK_DGRAM)
            CHECK_ERRNO(sendto(v4, "x", 1, 0, (struct sockaddr *)&s6, l6), EAFNOSUPPORT);
        CHECK_ERRNO(bind_to(v4, &s4, sizeof(struct sockaddr_in) - 1), EINVAL);
        OK(close(v4));
        /* an IPv6 socket given an IPv4 address: too short, then wrong */
        int v6 = sock(FAM_INET6, types[t]);
        CHECK_ERRNO(bind_to(v6, &s4, l4), EINVAL);
        struct sockaddr_storage odd = s6;
        odd.ss_family = AF_INET;
        CHECK_ERRNO(bind_to(v6, &odd, l6), EAFNOSUPPORT);
        odd.ss_family = AF_UNSPEC;
        CHECK_ERRNO(bind_to(v6, &odd, l6), EAFNOSUPPORT);
        if (types[t] == SOCK_STREAM) {
            CHECK_ERRNO(connect(v6, (struct sockaddr *)&s4, l4), EINVAL);
            odd.ss_family = AF_INET;
            CHECK_ERRNO(connect(v6, (struct sockaddr *)&odd, l6), EAFNOSUPPORT);
        } else {
            CHECK_ERRNO(sendto(v6, "x", 1, 0, (struct sockaddr *)&s4, l4), EINVAL);
        }
        OK(close(v6));
    }
}

/* An IPv4 bind() accepts AF_UNSPEC for INADDR_ANY only (old programs). */
TEST(v4_bind_af_unspec_any)
{
    struct sockaddr_in a = {.sin_family = AF_UNSPEC};
    int fd = sock(FAM_INET, SOCK_STREAM);
    OK(bind(fd, (struct sockaddr *)&a, sizeof a));
    struct sockaddr_storage got;
    tl_name(fd, &got);
    CHECK_EQ(got.ss_family, AF_INET);
    CHECK(tl_port(&got) > 0);
    OK(close(fd));
    fd = sock(FAM_INET, SOCK_STREAM);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK_ERRNO(bind(fd, (struct sockaddr *)&a, sizeof a), EAFNOSUPPORT);
    OK(close(fd));
}

/* A UDP IPv6 socket connect()s to an IPv4 address given as AF_INET (the
 * dual-stack path); sendto() with one is EINVAL. */
TEST(udp6_connect_with_an_ipv4_sockaddr)
{
    int r = tl_bound(FAM_INET, SOCK_DGRAM);
    struct sockaddr_storage to;
    socklen_t tl = tl_name(r, &to);
    int fd = sock(FAM_INET6, SOCK_DGRAM);
    OK(connect(fd, (struct sockaddr *)&to, tl));
    struct sockaddr_storage peer;
    socklen_t pl = sizeof peer;
    OK(getpeername(fd, (struct sockaddr *)&peer, &pl));
    CHECK_EQ(peer.ss_family, AF_INET6);
    CHECK(IN6_IS_ADDR_V4MAPPED(&((struct sockaddr_in6 *)&peer)->sin6_addr));
    CHECK_EQ(OK(send(fd, "v4", 2, 0)), 2);
    CHECK(tl_poll1(r, POLLIN, 5000) & POLLIN);
    char b[2];
    CHECK_EQ(OK(recv(r, b, 2, 0)), 2);
    OK(close(fd));
    OK(close(r));
}

/* A UDP connect() binds the socket before it looks at the address: even a
 * connect that fails with EAFNOSUPPORT leaves it bound. */
TEST(udp_failed_connect_still_binds)
{
    int fd = sock(FAM_INET, SOCK_DGRAM);
    struct sockaddr_storage s6;
    socklen_t l6 = addr6(&s6, "::1", 9);
    CHECK_ERRNO(connect(fd, (struct sockaddr *)&s6, l6), EAFNOSUPPORT);
    CHECK(port_of(fd) > 0);
    struct sockaddr_storage any;
    socklen_t al = addr4(&any, "0.0.0.0", 0);
    CHECK_ERRNO(bind_to(fd, &any, al), EINVAL); /* already bound */
    OK(close(fd));
}

/* ---- local addresses ------------------------------------------------------- */

TEST(bind_local_and_foreign_addresses)
{
    struct sockaddr_storage ss;
    socklen_t l;
    for (int t = 0; t < 2; t++) {
        int fd = sock(FAM_INET, types[t]);
        l = addr4(&ss, "127.0.0.2", 0); /* all of 127/8 is local */
        OK(bind_to(fd, &ss, l));
        OK(close(fd));
        fd = sock(FAM_INET, types[t]);
        l = addr4(&ss, "203.0.113.5", 0);
        CHECK_ERRNO(bind_to(fd, &ss, l), EADDRNOTAVAIL);
        OK(close(fd));
        /* multicast and broadcast addresses can be bound (to receive) */
        fd = sock(FAM_INET, types[t]);
        l = addr4(&ss, "239.1.2.3", 0);
        OK(bind_to(fd, &ss, l));
        OK(close(fd));
        fd = sock(FAM_INET, types[t]);
        l = addr4(&ss, "255.255.255.255", 0);
        OK(bind_to(fd, &ss, l));
        OK(close(fd));
        fd = sock(FAM_INET6, types[t]);
        l = addr6(&ss, "2001:db8::1", 0);
        CHECK_ERRNO(bind_to(fd, &ss, l), EADDRNOTAVAIL);
        /* link-local and link-scope multicast need a scope id */
        l = addr6(&ss, "fe80::1", 0);
        CHECK_ERRNO(bind_to(fd, &ss, l), EINVAL);
        l = addr6(&ss, "ff02::1", 0);
        CHECK_ERRNO(bind_to(fd, &ss, l), EINVAL);
        /* with one, fe80::1 is still not an address of ours */
        l = addr6(&ss, "fe80::1", 0);
        ((struct sockaddr_in6 *)&ss)->sin6_scope_id = if_nametoindex("lo");
        CHECK_ERRNO(bind_to(fd, &ss, l), EADDRNOTAVAIL);
        OK(close(fd));
    }
}

/* Every address of this host (the kernel's list: SIOCGIFCONF on a kernel
 * socket, /proc/net/if_inet6) can be bound, and a listener there reached,
 * not only loopback's. */
static int host_addresses(struct sockaddr_storage *out, int max)
{
    int n = 0;
    int k = (int)syscall(SYS_socket, AF_INET, SOCK_DGRAM, 0);
    CHECK(k >= 0);
    struct ifreq buf[32];
    struct ifconf ifc = {.ifc_len = sizeof buf, .ifc_req = buf};
    CHECK(syscall(SYS_ioctl, k, SIOCGIFCONF, &ifc) == 0);
    syscall(SYS_close, k);
    for (int i = 0; i < ifc.ifc_len / (int)sizeof(struct ifreq) && n < max; i++) {
        if (buf[i].ifr_addr.sa_family != AF_INET)
            continue;
        memset(&out[n], 0, sizeof out[n]);
        memcpy(&out[n], &buf[i].ifr_addr, sizeof(struct sockaddr_in));
        n++;
    }
    FILE *f = fopen("/proc/net/if_inet6", "r");
    char hex[40], name[32];
    unsigned idx, plen, scope, flags;
    while (f && n < max &&
           fscanf(f, "%32s %x %x %x %x %31s", hex, &idx, &plen, &scope, &flags, name) == 6) {
        if (flags & 0x40 /* IFA_F_TENTATIVE */)
            continue;
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&out[n];
        memset(&out[n], 0, sizeof out[n]);
        a->sin6_family = AF_INET6;
        for (int b = 0; b < 16; b++) {
            unsigned byte;
            CHECK(sscanf(hex + 2 * b, "%2x", &byte) == 1);
            a->sin6_addr.s6_addr[b] = (uint8_t)byte;
        }
        if (scope == 0x20) /* link-local: with its interface */
            a->sin6_scope_id = idx;
        n++;
    }
    if (f)
        fclose(f);
    return n;
}

TEST(bind_every_address_of_this_host)
{
    struct sockaddr_storage addrs[48];
    int n = host_addresses(addrs, 48);
    CHECK(n >= 2); /* 127.0.0.1 and ::1 at least */
    for (int i = 0; i < n; i++) {
        int fam = addrs[i].ss_family == AF_INET ? FAM_INET : FAM_INET6;
        socklen_t al = fam == FAM_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
        char text[INET6_ADDRSTRLEN] = "?";
        inet_ntop(addrs[i].ss_family,
                  fam == FAM_INET ? (void *)&((struct sockaddr_in *)&addrs[i])->sin_addr
                                  : (void *)&((struct sockaddr_in6 *)&addrs[i])->sin6_addr,
                  text, sizeof text);
        int u = sock(fam, SOCK_DGRAM);
        CHECK_MSG(bind_to(u, &addrs[i], al) == 0, "UDP bind to %s: %s", text, tl_errname(errno));
        OK(close(u));
        int l = sock(fam, SOCK_STREAM);
        CHECK_MSG(bind_to(l, &addrs[i], al) == 0, "TCP bind to %s: %s", text, tl_errname(errno));
        OK(listen(l, 2));
        struct sockaddr_storage ls;
        socklen_t ll = tl_name(l, &ls);
        int c = sock(fam, SOCK_STREAM);
        CHECK_MSG(connect(c, (struct sockaddr *)&ls, ll) == 0, "connect to %s: %s", text,
                  tl_errname(errno));
        struct sockaddr_storage me;
        tl_name(c, &me);
        int s = (int)OK(accept(l, NULL, NULL));
        OK(close(s));
        OK(close(c));
        OK(close(l));
    }
}

/* connect() to the wildcard address reaches this host's loopback. */
TEST_INET(connect_to_the_wildcard_address)
{
    int l = tl_listener(fam, 4);
    int port = port_of(l);
    struct sockaddr_storage ss;
    socklen_t sl = tl_any(fam, &ss, port);
    int c = sock(fam, SOCK_STREAM);
    OK(connect(c, (struct sockaddr *)&ss, sl));
    struct sockaddr_storage peer;
    socklen_t pl = sizeof peer;
    OK(getpeername(c, (struct sockaddr *)&peer, &pl));
    struct sockaddr_storage lo;
    tl_loop(fam, &lo, port);
    CHECK(memcmp(&peer, &lo, pl) == 0);
    int s = (int)OK(accept(l, NULL, NULL));
    OK(close(s));
    OK(close(c));
    OK(close(l));
    /* UDP too */
    int r = tl_bound(fam, SOCK_DGRAM);
    int u = sock(fam, SOCK_DGRAM);
    sl = tl_any(fam, &ss, port_of(r));
    OK(connect(u, (struct sockaddr *)&ss, sl));
    pl = sizeof peer;
    OK(getpeername(u, (struct sockaddr *)&peer, &pl));
    tl_loop(fam, &lo, port_of(r));
    CHECK(memcmp(&peer, &lo, pl) == 0);
    CHECK_EQ(OK(send(u, "w", 1, 0)), 1);
    CHECK(tl_poll1(r, POLLIN, 5000) & POLLIN);
    OK(close(u));
    OK(close(r));
}

/* ---- self-connect -------------------------------------------------------------- */

TEST_INET(tcp_self_connect)
{
    int fd = tl_bound(fam, SOCK_STREAM);
    struct sockaddr_storage me;
    socklen_t ml = tl_name(fd, &me);
    /* a simultaneous open with itself */
    OK(connect(fd, (struct sockaddr *)&me, ml));
    struct sockaddr_storage peer;
    socklen_t pl = sizeof peer;
    OK(getpeername(fd, (struct sockaddr *)&peer, &pl));
    CHECK(memcmp(&peer, &me, ml) == 0);
    CHECK_EQ(OK(send(fd, "echo", 4, 0)), 4);
    char buf[4];
    CHECK(tl_poll1(fd, POLLIN, 5000) & POLLIN);
    CHECK_EQ(OK(recv(fd, buf, 4, 0)), 4);
    CHECK(memcmp(buf, "echo", 4) == 0);
    OK(close(fd));
}

TEST_INET(udp_self_connect)
{
    int fd = tl_bound(fam, SOCK_DGRAM);
    struct sockaddr_storage me;
    socklen_t ml = tl_name(fd, &me);
    OK(connect(fd, (struct sockaddr *)&me, ml));
    CHECK_EQ(OK(send(fd, "self", 4, 0)), 4);
    char buf[4];
    CHECK(tl_poll1(fd, POLLIN, 5000) & POLLIN);
    CHECK_EQ(OK(recv(fd, buf, 4, 0)), 4);
    OK(close(fd));
}

/* ---- TIME_WAIT ------------------------------------------------------------------ */

/* A connection from cl (bound to addr, SO_REUSEADDR if reuse) to a
 * listener on addr, closed first by the client: the client's end is in
 * TIME_WAIT when this returns. */
static void active_close(int fam, struct sockaddr_storage *addr, socklen_t al, int reuse,
                         struct sockaddr_storage *client, socklen_t *cl,
                         struct sockaddr_storage *server, socklen_t *sl, int *listener)
{
    int l = sock(fam, SOCK_STREAM);
    OK(bind_to(l, addr, al));
    OK(listen(l, 4));
    *sl = tl_name(l, server);
    int c = sock(fam, SOCK_STREAM);
    if (reuse)
        tl_setint(c, SOL_SOCKET, SO_REUSEADDR, 1);
    OK(bind_to(c, addr, al));
    OK(connect(c, (struct sockaddr *)server, *sl));
    *cl = tl_name(c, client);
    int s = (int)OK(accept(l, NULL, NULL));
    OK(close(c)); /* FIN from the client: it will be in TIME_WAIT */
    char b;
    CHECK_EQ(OK(recv(s, &b, 1, 0)), 0);
    OK(close(s)); /* the server's FIN, acknowledged by the client */
    *listener = l;
}

TEST_INET(time_wait_holds_the_port)
{
    struct sockaddr_storage addr, client, server;
    socklen_t al = tl_loop(fam, &addr, 0), cl, sl;
    int l;
    active_close(fam, &addr, al, 0, &client, &cl, &server, &sl, &l);
    /* without SO_REUSEADDR: in use */
    int n = sock(fam, SOCK_STREAM);
    CHECK_ERRNO(bind_to(n, &client, cl), EADDRINUSE);
    OK(close(n));
    /* with it, still in use: the closed socket did not set it */
    n = sock(fam, SOCK_STREAM);
    tl_setint(n, SOL_SOCKET, SO_REUSEADDR, 1);
    CHECK_ERRNO(bind_to(n, &client, cl), EADDRINUSE);
    OK(close(n));
    /* UDP's ports are another space */
    n = sock(fam, SOCK_DGRAM);
    OK(bind_to(n, &client, cl));
    OK(close(n));
    OK(close(l));
}

/* The 4-tuple of a TIME_WAIT: a socket explicitly bound to its port (both
 * with SO_REUSEADDR) connecting to the same peer takes the TIME_WAIT over
 * when it carried TCP timestamps (net/ipv4/tcp_ipv4.c, tcp_twsk_unique:
 * an explicit bind is the program's responsibility); without timestamps
 * the 4-tuple is taken: EADDRNOTAVAIL. */
TEST_INET(time_wait_and_the_four_tuple)
{
    struct sockaddr_storage addr, client, server;
    socklen_t al = tl_loop(fam, &addr, 0), cl, sl;
    int l;
    active_close(fam, &addr, al, 1, &client, &cl, &server, &sl, &l);
    /* both set SO_REUSEADDR: the port can be bound again */
    int n = sock(fam, SOCK_STREAM);
    tl_setint(n, SOL_SOCKET, SO_REUSEADDR, 1);
    OK(bind_to(n, &client, cl));
    if (tl_sysctl("/proc/sys/net/ipv4/tcp_timestamps")) {
        OK(connect(n, (struct sockaddr *)&server, sl));
        int s = (int)OK(accept(l, NULL, NULL));
        CHECK_EQ(OK(send(n, "again", 5, 0)), 5);
        char buf[5];
        CHECK_EQ(tl_read_all(s, buf, 5), 5);
        OK(close(s));
    } else {
        CHECK_ERRNO(connect(n, (struct sockaddr *)&server, sl), EADDRNOTAVAIL);
    }
    OK(close(n));
    /* the same port to another peer is always fine */
    int l2 = sock(fam, SOCK_STREAM);
    OK(bind_to(l2, &addr, al));
    OK(listen(l2, 4));
    struct sockaddr_storage other;
    socklen_t ol = tl_name(l2, &other);
    n = sock(fam, SOCK_STREAM);
    tl_setint(n, SOL_SOCKET, SO_REUSEADDR, 1);
    OK(bind_to(n, &client, cl));
    OK(connect(n, (struct sockaddr *)&other, ol));
    OK(close(n));
    OK(close(l2));
    OK(close(l));
}

/* The server closed first: its accepted connection is in TIME_WAIT on the
 * listening port. A restarted server needs SO_REUSEADDR, set on the old
 * listener too (the TIME_WAIT inherits it). */
TEST_INET(time_wait_on_the_server_port)
{
    for (int reuse = 0; reuse < 2; reuse++) {
        int l = sock(fam, SOCK_STREAM);
        if (reuse)
            tl_setint(l, SOL_SOCKET, SO_REUSEADDR, 1);
        struct sockaddr_storage ss;
        socklen_t sl = tl_loop(fam, &ss, 0);
        OK(bind_to(l, &ss, sl));
        OK(listen(l, 4));
        sl = tl_name(l, &ss);
        int c = sock(fam, SOCK_STREAM);
        OK(connect(c, (struct sockaddr *)&ss, sl));
        int s = (int)OK(accept(l, NULL, NULL));
        OK(close(s)); /* the server closes first */
        char b;
        CHECK_EQ(OK(recv(c, &b, 1, 0)), 0);
        OK(close(c));
        OK(close(l));
        /* the server's end (FIN_WAIT2 or TIME_WAIT) holds the port */
        int n = sock(fam, SOCK_STREAM);
        CHECK_ERRNO(bind_to(n, &ss, sl), EADDRINUSE);
        OK(close(n));
        n = sock(fam, SOCK_STREAM);
        tl_setint(n, SOL_SOCKET, SO_REUSEADDR, 1);
        if (reuse) {
            OK(bind_to(n, &ss, sl));
            OK(listen(n, 4));
        } else {
            CHECK_ERRNO(bind_to(n, &ss, sl), EADDRINUSE);
        }
        OK(close(n));
    }
}

/* A listener closed with no connection leaves nothing behind. */
TEST_INET(closed_listener_frees_its_port_at_once)
{
    int l = tl_listener(fam, 4);
    struct sockaddr_storage ss;
    socklen_t sl = tl_name(l, &ss);
    OK(close(l));
    int n = sock(fam, SOCK_STREAM);
    OK(bind_to(n, &ss, sl));
    OK(listen(n, 1));
    OK(close(n));
}

/* ---- SO_REUSEADDR without TIME_WAIT -------------------------------------------- */

TEST_INET(so_reuseaddr_rules)
{
    struct sockaddr_storage ss;
    socklen_t sl = tl_loop(fam, &ss, 0);
    /* TCP: two sockets with SO_REUSEADDR may share a port until one listens */
    int a = sock(fam, SOCK_STREAM), b = sock(fam, SOCK_STREAM);
    tl_setint(a, SOL_SOCKET, SO_REUSEADDR, 1);
    tl_setint(b, SOL_SOCKET, SO_REUSEADDR, 1);
    OK(bind_to(a, &ss, sl));
    sl = tl_name(a, &ss);
    OK(bind_to(b, &ss, sl));
    OK(listen(a, 1));
    CHECK_ERRNO(listen(b, 1), EADDRINUSE);
    int c = sock(fam, SOCK_STREAM);
    tl_setint(c, SOL_SOCKET, SO_REUSEADDR, 1);
    CHECK_ERRNO(bind_to(c, &ss, sl), EADDRINUSE); /* a listener holds it */
    OK(close(a));
    OK(close(b));
    OK(close(c));
    /* UDP: both with SO_REUSEADDR share it; without, EADDRINUSE */
    sl = tl_loop(fam, &ss, 0);
    a = sock(fam, SOCK_DGRAM);
    b = sock(fam, SOCK_DGRAM);
    c = sock(fam, SOCK_DGRAM);
    tl_setint(a, SOL_SOCKET, SO_REUSEADDR, 1);
    tl_setint(b, SOL_SOCKET, SO_REUSEADDR, 1);
    OK(bind_to(a, &ss, sl));
    sl = tl_name(a, &ss);
    OK(bind_to(b, &ss, sl));
    CHECK_ERRNO(bind_to(c, &ss, sl), EADDRINUSE);
    OK(close(a));
    OK(close(b));
    OK(close(c));
    /* wildcard and specific addresses of one port conflict without it */
    a = sock(fam, SOCK_STREAM);
    sl = tl_any(fam, &ss, 0);
    OK(bind_to(a, &ss, sl));
    int port = port_of(a);
    b = sock(fam, SOCK_STREAM);
    sl = tl_loop(fam, &ss, port);
    CHECK_ERRNO(bind_to(b, &ss, sl), EADDRINUSE);
    OK(close(a));
    OK(close(b));
}

/* ---- ephemeral ports ------------------------------------------------------------ */

static void port_range(int *lo, int *hi)
{
    char line[64];
    tl_sysctl_str("/proc/sys/net/ipv4/ip_local_port_range", line, sizeof line);
    CHECK(sscanf(line, "%d %d", lo, hi) == 2);
}

TEST_INET(ephemeral_ports_from_ip_local_port_range)
{
    int lo, hi;
    port_range(&lo, &hi);
    for (int t = 0; t < 2; t++) {
        for (int i = 0; i < 16; i++) {
            /* bind to port 0 */
            int fd = tl_bound(fam, types[t]);
            int p = port_of(fd);
            CHECK_MSG(p >= lo && p <= hi, "%s bind: port %d outside %d-%d", tname(types[t]), p,
                      lo, hi);
            OK(close(fd));
        }
    }
    /* autobind by connect, listen and sendto */
    int l = tl_listener(fam, 4);
    int p = port_of(l);
    CHECK(p >= lo && p <= hi);
    int unbound_listener = sock(fam, SOCK_STREAM);
    OK(listen(unbound_listener, 1));
    p = port_of(unbound_listener);
    CHECK(p >= lo && p <= hi);
    struct sockaddr_storage ss;
    socklen_t sl = tl_name(l, &ss);
    int c = sock(fam, SOCK_STREAM);
    OK(connect(c, (struct sockaddr *)&ss, sl));
    p = port_of(c);
    CHECK(p >= lo && p <= hi);
    int u = sock(fam, SOCK_DGRAM);
    CHECK_EQ(port_of(u), 0);
    CHECK_EQ(OK(sendto(u, "x", 1, 0, (struct sockaddr *)&ss, sl)), 1);
    p = port_of(u);
    CHECK(p >= lo && p <= hi);
    OK(close(c));
    OK(close(l));
    OK(close(u));
    OK(close(unbound_listener));
}

/* IP_LOCAL_PORT_RANGE narrows the range for one socket (Linux 6.3): a
 * range of two free ports runs out on the third socket, with bind()'s
 * EADDRINUSE, connect()'s EADDRNOTAVAIL and UDP's EAGAIN. */
static int two_free_ports(int fam, int type)
{
    int lo, hi;
    port_range(&lo, &hi);
    for (int attempt = 0; attempt < 50; attempt++) {
        int p = lo + rand() % (hi - lo - 1);
        int a = sock(fam, type), b = sock(fam, type);
        struct sockaddr_storage ss;
        socklen_t sl = tl_any(fam, &ss, p);
        int ok = bind_to(a, &ss, sl) == 0;
        sl = tl_any(fam, &ss, p + 1);
        ok = ok && bind_to(b, &ss, sl) == 0;
        OK(close(a));
        OK(close(b));
        if (ok)
            return p;
    }
    tl_fail(__FILE__, __LINE__, "no two free ports in a row");
}

static void narrow(int fd, int p)
{
    uint32_t range = (uint32_t)p | (uint32_t)(p + 1) << 16;
    OK(setsockopt(fd, IPPROTO_IP, IP_LOCAL_PORT_RANGE, &range, sizeof range));
}

/* The first two sockets get the two ports, the third the errno. Another
 * program may take one of the ports between the check and the use: then
 * the round starts again on other ports. op: 0 bind, 1 connect, 2 UDP
 * sendto; returns 1 when a round ran. */
static int run_out_round(int fam, int op, int err, struct sockaddr_storage *peer, socklen_t pl)
{
    int type = op == 2 ? SOCK_DGRAM : SOCK_STREAM;
    int p = two_free_ports(fam, type);
    int s[3], ok = 1;
    for (int i = 0; i < 3; i++) {
        s[i] = sock(fam, type);
        narrow(s[i], p);
        struct sockaddr_storage ss;
        socklen_t sl = tl_any(fam, &ss, 0);
        errno = 0;
        long r = op == 0 ? bind_to(s[i], &ss, sl)
               : op == 1 ? connect(s[i], (struct sockaddr *)peer, pl)
                         : sendto(s[i], "x", 1, 0, (struct sockaddr *)peer, pl);
        if (i < 2 && r < 0) {
            CHECK_MSG(errno == err, "socket %d of 2 ports: %s", i, tl_errname(errno));
            ok = 0; /* a port was taken meanwhile */
            for (int k = 0; k <= i; k++)
                OK(close(s[k]));
            return 0;
        }
        if (i < 2) {
            int got = port_of(s[i]);
            CHECK(got == p || got == p + 1);
        } else {
            CHECK_MSG(r == -1 && errno == err, "third socket on 2 ports: %ld/%s, expected -1/%s",
                      r, r ? tl_errname(errno) : "0", tl_errname(err));
        }
    }
    for (int i = 0; i < 3; i++)
        OK(close(s[i]));
    return ok;
}

TEST_INET(ephemeral_ports_run_out)
{
    int l = tl_listener(fam, 8);
    struct sockaddr_storage ls;
    socklen_t ll = tl_name(l, &ls);
    int r = tl_bound(fam, SOCK_DGRAM);
    struct sockaddr_storage rs;
    socklen_t rl = tl_name(r, &rs);
    /* bind(): EADDRINUSE; connect(): EADDRNOTAVAIL once both ports have a
     * connection to the peer; UDP's autobind: EAGAIN */
    static const int errs[3] = {EADDRINUSE, EADDRNOTAVAIL, EAGAIN};
    for (int op = 0; op < 3; op++) {
        int done = 0;
        for (int attempt = 0; attempt < 10 && !done; attempt++)
            done = run_out_round(fam, op, errs[op], op == 1 ? &ls : &rs, op == 1 ? ll : rl);
        CHECK_MSG(done, "op %d: never had two free ports", op);
    }
    OK(close(l));
    OK(close(r));
}

/* ---- SO_REUSEPORT -------------------------------------------------------------- */

TEST_INET(so_reuseport_spreads_connections)
{
    int l[2];
    struct sockaddr_storage ss;
    socklen_t sl = tl_loop(fam, &ss, 0);
    for (int i = 0; i < 2; i++) {
        l[i] = sock(fam, SOCK_STREAM);
        tl_setint(l[i], SOL_SOCKET, SO_REUSEPORT, 1);
        OK(bind_to(l[i], &ss, sl));
        sl = tl_name(l[i], &ss);
        OK(listen(l[i], 64));
    }
    /* a third socket without SO_REUSEPORT cannot join */
    int x = sock(fam, SOCK_STREAM);
    CHECK_ERRNO(bind_to(x, &ss, sl), EADDRINUSE);
    OK(close(x));
    int got[2] = {0, 0};
    for (int i = 0; i < 64; i++) {
        int c = sock(fam, SOCK_STREAM);
        OK(connect(c, (struct sockaddr *)&ss, sl));
        struct pollfd p[2] = {{l[0], POLLIN, 0}, {l[1], POLLIN, 0}};
        CHECK(OK(poll(p, 2, 5000)) >= 1);
        for (int k = 0; k < 2; k++) {
            if (p[k].revents & POLLIN) {
                OK(close((int)OK(accept(l[k], NULL, NULL))));
                got[k]++;
                break;
            }
        }
        OK(close(c));
    }
    CHECK_EQ(got[0] + got[1], 64);
    /* 64 connections hashed over two listeners: both get some */
    CHECK_MSG(got[0] > 0 && got[1] > 0, "listeners got %d and %d connections", got[0], got[1]);
    OK(close(l[0]));
    OK(close(l[1]));
}

/* nginx's master with `listen ... reuseport` and two workers: two
 * listeners of one process with SO_REUSEADDR and SO_REUSEPORT on one port,
 * the second bound after the first listens (SO_REUSEADDR alone would give
 * EADDRINUSE then); a connection reaches one of them. */
TEST_INET(so_reuseport_with_so_reuseaddr_after_listen)
{
    struct sockaddr_storage ss;
    socklen_t sl = tl_loop(fam, &ss, 0);
    int l[2];
    for (int i = 0; i < 2; i++) {
        l[i] = sock(fam, SOCK_STREAM);
        tl_setint(l[i], SOL_SOCKET, SO_REUSEADDR, 1);
        tl_setint(l[i], SOL_SOCKET, SO_REUSEPORT, 1);
        OK(bind_to(l[i], &ss, sl));
        sl = tl_name(l[i], &ss);
        OK(listen(l[i], 8));
    }
    int c = sock(fam, SOCK_STREAM);
    OK(connect(c, (struct sockaddr *)&ss, sl));
    struct pollfd p[2] = {{l[0], POLLIN, 0}, {l[1], POLLIN, 0}};
    CHECK_EQ(OK(poll(p, 2, 5000)), 1);
    OK(close(c));
    OK(close(l[0]));
    OK(close(l[1]));
}

TEST_INET(so_reuseport_spreads_datagrams)
{
    int r[2];
    struct sockaddr_storage ss;
    socklen_t sl = tl_loop(fam, &ss, 0);
    for (int i = 0; i < 2; i++) {
        r[i] = sock(fam, SOCK_DGRAM);
        tl_setint(r[i], SOL_SOCKET, SO_REUSEPORT, 1);
        OK(bind_to(r[i], &ss, sl));
        sl = tl_name(r[i], &ss);
    }
    /* from 64 source ports */
    for (int i = 0; i < 64; i++) {
        int s = sock(fam, SOCK_DGRAM);
        CHECK_EQ(OK(sendto(s, "d", 1, 0, (struct sockaddr *)&ss, sl)), 1);
        OK(close(s));
    }
    int got[2] = {0, 0};
    char b;
    while (got[0] + got[1] < 64) {
        struct pollfd p[2] = {{r[0], POLLIN, 0}, {r[1], POLLIN, 0}};
        CHECK(OK(poll(p, 2, 5000)) >= 1);
        for (int k = 0; k < 2; k++)
            if (p[k].revents & POLLIN) {
                CHECK_EQ(OK(recv(r[k], &b, 1, 0)), 1);
                got[k]++;
            }
    }
    CHECK_MSG(got[0] > 0 && got[1] > 0, "sockets got %d and %d datagrams", got[0], got[1]);
    OK(close(r[0]));
    OK(close(r[1]));
}

struct reuse_arg {
    int fam;
    struct sockaddr_storage ss;
    socklen_t sl;
};

static void reuseport_other_user(void *p)
{
    struct reuse_arg *a = p;
    int fd = sock(a->fam, SOCK_STREAM);
    tl_setint(fd, SOL_SOCKET, SO_REUSEPORT, 1);
    CHECK_ERRNO(bind_to(fd, &a->ss, a->sl), EADDRINUSE);
    OK(close(fd));
}

/* Sockets of another user cannot share the port. */
TEST_INET(so_reuseport_same_user_only)
{
    if (geteuid() != 0)
        t_skip("root", "needs root to run a child as another user");
    struct reuse_arg a = {.fam = fam};
    int l = sock(fam, SOCK_STREAM);
    tl_setint(l, SOL_SOCKET, SO_REUSEPORT, 1);
    a.sl = tl_loop(fam, &a.ss, 0);
    OK(bind_to(l, &a.ss, a.sl));
    OK(listen(l, 4));
    a.sl = tl_name(l, &a.ss);
    tl_in_child(reuseport_other_user, &a, 0, 65534, 10);
    OK(close(l));
}

/* ---- privileged ports -------------------------------------------------------------- */

static void privileged_ports_refused(void *arg)
{
    (void)arg;
    long start = tl_sysctl("/proc/sys/net/ipv4/ip_unprivileged_port_start");
    CHECK(!tl_has_cap(CAP_NET_BIND_SERVICE));
    for (int f = 0; f < 2; f++) {
        int fam = f ? FAM_INET6 : FAM_INET;
        for (int t = 0; t < 2; t++) {
            int ports[] = {1, 80, 443, (int)start - 1};
            for (size_t i = 0; i < sizeof ports / sizeof ports[0]; i++) {
                if (ports[i] < 1)
                    continue;
                int fd = sock(fam, types[t]);
                struct sockaddr_storage ss;
                socklen_t sl = tl_loop(fam, &ss, ports[i]);
                errno = 0;
                int r = bind_to(fd, &ss, sl);
                CHECK_MSG(r == -1 && errno == EACCES, "%s %s: bind to port %d: %d/%s",
                          tl_fam_names[fam], tname(types[t]), ports[i], r, tl_errname(errno));
                OK(close(fd));
            }
            /* from ip_unprivileged_port_start on: allowed */
            int fd = sock(fam, types[t]);
            struct sockaddr_storage ss;
            socklen_t sl = tl_loop(fam, &ss, 0);
            OK(bind_to(fd, &ss, sl));
            CHECK(port_of(fd) >= start);
            OK(close(fd));
        }
    }
}

TEST(privileged_ports_without_cap_net_bind_service)
{
    if (!tl_has_cap(CAP_NET_BIND_SERVICE))
        t_skip("root", "needs CAP_NET_BIND_SERVICE to drop it");
    if (tl_sysctl("/proc/sys/net/ipv4/ip_unprivileged_port_start") <= 1)
        t_skip("privports", "ip_unprivileged_port_start makes every port unprivileged");
    tl_in_child(privileged_ports_refused, NULL, 1ULL << CAP_NET_BIND_SERVICE, -1, 10);
}

TEST(privileged_ports_as_nobody)
{
    if (geteuid() != 0)
        t_skip("root", "needs root to run a child as nobody");
    if (tl_sysctl("/proc/sys/net/ipv4/ip_unprivileged_port_start") <= 1)
        t_skip("privports", "ip_unprivileged_port_start makes every port unprivileged");
    tl_in_child(privileged_ports_refused, NULL, 0, 65534, 10);
}

/* With the capability, a privileged port can be bound (one of these is
 * free). */
TEST(privileged_port_with_cap_net_bind_service)
{
    if (!tl_has_cap(CAP_NET_BIND_SERVICE))
        t_skip("root", "needs CAP_NET_BIND_SERVICE");
    int done = 0;
    for (int p = 1023; p > 900 && !done; p--) {
        int fd = sock(FAM_INET, SOCK_STREAM);
        struct sockaddr_storage ss;
        socklen_t sl = tl_loop(FAM_INET, &ss, p);
        if (bind_to(fd, &ss, sl) == 0) {
            CHECK_EQ(port_of(fd), p);
            done = 1;
        } else {
            CHECK_EQ(errno, EADDRINUSE);
        }
        OK(close(fd));
    }
    CHECK(done);
}

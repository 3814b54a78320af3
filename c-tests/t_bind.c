/* bind, listen, getsockname, getpeername. */
#include "testlib.h"

static int is_inet(int fam) { return fam == FAM_INET || fam == FAM_INET6; }

static unsigned short port_of(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)ss)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

TEST_FAM(bind_reports_address)
{
    int types[2] = {SOCK_STREAM, SOCK_DGRAM};
    for (int i = 0; i < 2; i++) {
        struct sockaddr_storage want, got;
        socklen_t wl;
        int fd = (int)OK(socket(tl_domain(fam), types[i], 0));
        tl_addr(fam, &want, &wl);
        OK(bind(fd, (struct sockaddr *)&want, wl));
        socklen_t gl = tl_name(fd, &got);
        CHECK_EQ(gl, wl);
        CHECK_EQ(got.ss_family, tl_domain(fam));
        if (fam == FAM_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&got;
            CHECK(port_of(&got) != 0); /* port 0 picked a port */
            CHECK_EQ(ntohl(a->sin_addr.s_addr), INADDR_LOOPBACK);
        } else if (fam == FAM_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&got;
            CHECK(port_of(&got) != 0);
            CHECK(memcmp(&a->sin6_addr, &in6addr_loopback, 16) == 0);
        } else {
            CHECK(memcmp(&got, &want, wl) == 0);
        }
        OK(close(fd));
    }
}

TEST(bind_port0_distinct_ports)
{
    int a = tl_bound(FAM_INET, SOCK_STREAM), b = tl_bound(FAM_INET, SOCK_STREAM);
    int c = tl_bound(FAM_INET, SOCK_DGRAM);
    struct sockaddr_storage sa, sb;
    tl_name(a, &sa);
    tl_name(b, &sb);
    CHECK(port_of(&sa) != port_of(&sb));
    close(a);
    close(b);
    close(c);
}

TEST_FAM(bind_twice_einval)
{
    int types[2] = {SOCK_STREAM, SOCK_DGRAM};
    for (int i = 0; i < 2; i++) {
        int fd = tl_bound(fam, types[i]);
        struct sockaddr_storage ss;
        socklen_t len;
        tl_addr(fam, &ss, &len);
        CHECK_ERRNO(bind(fd, (struct sockaddr *)&ss, len), EINVAL);
        OK(close(fd));
    }
}

TEST_FAM(bind_eaddrinuse)
{
    int types[2] = {SOCK_STREAM, SOCK_DGRAM};
    for (int i = 0; i < 2; i++) {
        int a = tl_bound(fam, types[i]);
        if (types[i] == SOCK_STREAM)
            OK(listen(a, 4));
        struct sockaddr_storage ss;
        socklen_t len = tl_name(a, &ss);
        int b = (int)OK(socket(tl_domain(fam), types[i], 0));
        CHECK_ERRNO(bind(b, (struct sockaddr *)&ss, len), EADDRINUSE);
        /* b is still usable: it can bind elsewhere */
        struct sockaddr_storage s2;
        socklen_t l2;
        tl_addr(fam, &s2, &l2);
        OK(bind(b, (struct sockaddr *)&s2, l2));
        OK(close(a));
        OK(close(b));
    }
}

TEST(bind_after_close_reuses_inet_port)
{
    /* a bound (not connected) socket releases its port on close */
    int a = tl_bound(FAM_INET, SOCK_DGRAM);
    struct sockaddr_storage ss;
    socklen_t len = tl_name(a, &ss);
    OK(close(a));
    int b = (int)OK(socket(AF_INET, SOCK_DGRAM, 0));
    OK(bind(b, (struct sockaddr *)&ss, len));
    OK(close(b));
    a = tl_listener(FAM_INET6, 1);
    len = tl_name(a, &ss);
    OK(close(a));
    b = (int)OK(socket(AF_INET6, SOCK_STREAM, 0));
    OK(bind(b, (struct sockaddr *)&ss, len));
    OK(close(b));
}

TEST(unix_path_creates_socket_file)
{
    int fd = tl_bound(FAM_UNIX, SOCK_STREAM);
    struct sockaddr_storage ss;
    tl_name(fd, &ss);
    struct stat st;
    OK(stat(((struct sockaddr_un *)&ss)->sun_path, &st));
    CHECK(S_ISSOCK(st.st_mode));
    OK(close(fd));
    /* the name outlives the socket: binding it again needs an unlink */
    int b = (int)OK(socket(AF_UNIX, SOCK_DGRAM, 0));
    CHECK_ERRNO(bind(b, (struct sockaddr *)&ss, sizeof(struct sockaddr_un)), EADDRINUSE);
    OK(unlink(((struct sockaddr_un *)&ss)->sun_path));
    OK(bind(b, (struct sockaddr *)&ss, sizeof(struct sockaddr_un)));
    OK(close(b));
}

TEST(unix_abstract_name_freed_on_close)
{
    int fd = tl_bound(FAM_ABSTRACT, SOCK_STREAM);
    struct sockaddr_storage ss;
    socklen_t len = tl_name(fd, &ss);
    CHECK_EQ(((struct sockaddr_un *)&ss)->sun_path[0], 0);
    OK(close(fd));
    int b = (int)OK(socket(AF_UNIX, SOCK_STREAM, 0));
    OK(bind(b, (struct sockaddr *)&ss, len));
    OK(close(b));
}

TEST(bind_bad_addrlen_einval)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int fd = (int)OK(socket(AF_INET, SOCK_STREAM, 0));
    tl_addr(FAM_INET, &ss, &len);
    CHECK_ERRNO(bind(fd, (struct sockaddr *)&ss, len - 1), EINVAL);
    CHECK_ERRNO(bind(fd, (struct sockaddr *)&ss, 0), EINVAL);
    OK(close(fd));
    fd = (int)OK(socket(AF_INET6, SOCK_DGRAM, 0));
    tl_addr(FAM_INET6, &ss, &len);
    CHECK_ERRNO(bind(fd, (struct sockaddr *)&ss, sizeof(struct sockaddr_in)), EINVAL);
    OK(close(fd));
    fd = (int)OK(socket(AF_UNIX, SOCK_STREAM, 0));
    tl_addr(FAM_UNIX, &ss, &len);
    CHECK_ERRNO(bind(fd, (struct sockaddr *)&ss, sizeof(struct sockaddr_un) + 1), EINVAL);
    CHECK_ERRNO(bind(fd, (struct sockaddr *)&ss, 1), EINVAL);
    OK(close(fd));
}

TEST(bind_wrong_family)
{
    struct sockaddr_storage s4, s6, su;
    socklen_t l4, l6, lu;
    tl_addr(FAM_INET, &s4, &l4);
    tl_addr(FAM_INET6, &s6, &l6);
    tl_addr(FAM_UNIX, &su, &lu);
    int fd = (int)OK(socket(AF_INET, SOCK_STREAM, 0));
    CHECK_ERRNO(bind(fd, (struct sockaddr *)&s6, l6), EAFNOSUPPORT);
    OK(close(fd));
    fd = (int)OK(socket(AF_INET, SOCK_DGRAM, 0));
    CHECK_ERRNO(bind(fd, (struct sockaddr *)&s6, l6), EAFNOSUPPORT);
    OK(close(fd));
    fd = (int)OK(socket(AF_INET6, SOCK_STREAM, 0));
    ((struct sockaddr_in6 *)&s6)->sin6_family = AF_INET;
    CHECK_ERRNO(bind(fd, (struct sockaddr *)&s6, l6), EAFNOSUPPORT);
    OK(close(fd));
    fd = (int)OK(socket(AF_UNIX, SOCK_STREAM, 0));
    ((struct sockaddr_un *)&su)->sun_family = AF_INET;
    CHECK_ERRNO(bind(fd, (struct sockaddr *)&su, lu), EINVAL);
    OK(close(fd));
}

TEST(bind_efault)
{
    int fd = (int)OK(socket(AF_INET, SOCK_STREAM, 0));
    CHECK_ERRNO(bind(fd, (struct sockaddr *)tl_bad_ptr(), sizeof(struct sockaddr_in)), EFAULT);
    OK(close(fd));
}

TEST_FAM(getsockname_unbound)
{
    int fd = (int)OK(socket(tl_domain(fam), SOCK_DGRAM, 0));
    struct sockaddr_storage ss;
    memset(&ss, 0xAA, sizeof ss);
    socklen_t len = sizeof ss;
    OK(getsockname(fd, (struct sockaddr *)&ss, &len));
    CHECK_EQ(ss.ss_family, tl_domain(fam));
    if (fam == FAM_INET) {
        CHECK_EQ(len, sizeof(struct sockaddr_in));
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        CHECK_EQ(a->sin_port, 0);
        CHECK_EQ(a->sin_addr.s_addr, htonl(INADDR_ANY));
    } else if (fam == FAM_INET6) {
        CHECK_EQ(len, sizeof(struct sockaddr_in6));
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        CHECK_EQ(a->sin6_port, 0);
        CHECK(memcmp(&a->sin6_addr, &in6addr_any, 16) == 0);
    } else {
        CHECK_EQ(len, sizeof(sa_family_t)); /* unnamed unix socket */
    }
    OK(close(fd));
}

TEST_FAM(getsockname_truncates)
{
    int fd = tl_bound(fam, SOCK_STREAM);
    struct sockaddr_storage full;
    socklen_t flen = tl_name(fd, &full);
    unsigned char buf[sizeof(struct sockaddr_storage)];
    memset(buf, 0xAA, sizeof buf);
    socklen_t len = 4;
    OK(getsockname(fd, (struct sockaddr *)buf, &len));
    CHECK_EQ(len, flen); /* the full length is reported */
    CHECK(memcmp(buf, &full, 4) == 0);
    for (size_t i = 4; i < sizeof buf; i++)
        CHECK_MSG(buf[i] == 0xAA, "byte %zu written past addrlen", i);
    len = 0;
    OK(getsockname(fd, (struct sockaddr *)buf, &len));
    CHECK_EQ(len, flen);
    OK(close(fd));
}

TEST_FAM(getpeername_connected_and_not)
{
    int l = tl_listener(fam, 4);
    struct sockaddr_storage la, ca, pa;
    socklen_t ll = tl_name(l, &la), pl = sizeof pa;
    CHECK_ERRNO(getpeername(l, (struct sockaddr *)&pa, &pl), ENOTCONN);
    int c = (int)OK(socket(tl_domain(fam), SOCK_STREAM, 0));
    pl = sizeof pa;
    CHECK_ERRNO(getpeername(c, (struct sockaddr *)&pa, &pl), ENOTCONN);
    OK(connect(c, (struct sockaddr *)&la, ll));
    struct sockaddr_storage aa;
    socklen_t al = sizeof aa;
    memset(&aa, 0, sizeof aa);
    int s = (int)OK(accept(l, (struct sockaddr *)&aa, &al));
    /* client's peer is the listener's address */
    pl = sizeof pa;
    memset(&pa, 0, sizeof pa);
    OK(getpeername(c, (struct sockaddr *)&pa, &pl));
    CHECK_EQ(pl, ll);
    CHECK(memcmp(&pa, &la, ll) == 0);
    /* server's peer is the client's name, and what accept returned */
    socklen_t cl = tl_name(c, &ca);
    pl = sizeof pa;
    memset(&pa, 0, sizeof pa);
    OK(getpeername(s, (struct sockaddr *)&pa, &pl));
    CHECK_EQ(pl, cl);
    CHECK(memcmp(&pa, &ca, cl) == 0);
    CHECK_EQ(al, cl);
    CHECK(memcmp(&aa, &ca, cl) == 0);
    if (is_inet(fam)) {
        CHECK(port_of(&ca) != 0); /* connect bound an ephemeral port */
        CHECK(port_of(&ca) != port_of(&la));
    } else {
        CHECK_EQ(cl, sizeof(sa_family_t)); /* unbound unix client */
    }
    /* accepted socket's name is the listener's */
    struct sockaddr_storage sn;
    socklen_t snl = tl_name(s, &sn);
    CHECK_EQ(snl, ll);
    CHECK(memcmp(&sn, &la, ll) == 0);
    /* truncation */
    unsigned char buf[sizeof(struct sockaddr_storage)];
    memset(buf, 0xAA, sizeof buf);
    pl = 3;
    OK(getpeername(c, (struct sockaddr *)buf, &pl));
    CHECK_EQ(pl, ll);
    CHECK(memcmp(buf, &la, 3) == 0);
    CHECK_EQ(buf[3], 0xAA);
    OK(close(c));
    OK(close(s));
    OK(close(l));
}

TEST(getpeername_dgram)
{
    for (int fam = 0; fam < FAM_COUNT; fam++) {
        int a = tl_bound(fam, SOCK_DGRAM), b = tl_bound(fam, SOCK_DGRAM);
        struct sockaddr_storage pa, bn;
        socklen_t pl = sizeof pa;
        CHECK_ERRNO(getpeername(a, (struct sockaddr *)&pa, &pl), ENOTCONN);
        socklen_t bl = tl_name(b, &bn);
        OK(connect(a, (struct sockaddr *)&bn, bl));
        pl = sizeof pa;
        OK(getpeername(a, (struct sockaddr *)&pa, &pl));
        CHECK_EQ(pl, bl);
        CHECK(memcmp(&pa, &bn, bl) == 0);
        close(a);
        close(b);
    }
}

TEST(getsockname_efault_einval)
{
    int fd = tl_bound(FAM_INET, SOCK_DGRAM);
    socklen_t len = sizeof(struct sockaddr_in);
    CHECK_ERRNO(getsockname(fd, (struct sockaddr *)tl_bad_ptr(), &len), EFAULT);
    struct sockaddr_in sin;
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    /* (the sanitizers' interceptors read *addrlen themselves and crash) */
    CHECK_ERRNO(getsockname(fd, (struct sockaddr *)&sin, (socklen_t *)tl_bad_ptr()), EFAULT);
#endif
    len = (socklen_t)-1;
    CHECK_ERRNO(getsockname(fd, (struct sockaddr *)&sin, &len), EINVAL);
    OK(close(fd));
}

TEST_FAM(listen_sets_acceptconn)
{
    int fd = tl_bound(fam, SOCK_STREAM);
    int v = -1;
    socklen_t l = sizeof v;
    OK(getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &l));
    CHECK_EQ(v, 0);
    OK(listen(fd, 5));
    OK(getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &l));
    CHECK_EQ(v, 1);
    OK(listen(fd, 10)); /* listen again only changes the backlog */
    OK(close(fd));
}

TEST_FAM(listen_errors)
{
    /* datagram sockets cannot listen */
    int d = tl_bound(fam, SOCK_DGRAM);
    CHECK_ERRNO(listen(d, 1), EOPNOTSUPP);
    OK(close(d));
    /* a connected stream socket cannot listen */
    int c, s;
    tl_stream_pair(fam, &c, &s);
    CHECK_ERRNO(listen(c, 1), EINVAL);
    CHECK_ERRNO(listen(s, 1), EINVAL);
    OK(close(c));
    OK(close(s));
    int u = (int)OK(socket(tl_domain(fam), SOCK_STREAM, 0));
    if (fam == FAM_INET || fam == FAM_INET6) {
        /* Linux: listen on an unbound TCP socket binds an ephemeral port */
        OK(listen(u, 1));
        struct sockaddr_storage ss;
        tl_name(u, &ss);
        CHECK(port_of(&ss) != 0);
    } else {
        CHECK_ERRNO(listen(u, 1), EINVAL); /* unbound unix socket */
    }
    OK(close(u));
}

TEST(listen_backlog_zero_and_negative)
{
    int fd = tl_bound(FAM_INET, SOCK_STREAM);
    OK(listen(fd, 0));
    OK(close(fd));
    fd = tl_bound(FAM_UNIX, SOCK_STREAM);
    OK(listen(fd, -1));
    OK(close(fd));
}

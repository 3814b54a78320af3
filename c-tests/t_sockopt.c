/* getsockopt / setsockopt. */
#include "testlib.h"

static int is_inet(int fam) { return fam == FAM_INET || fam == FAM_INET6; }

static int getint(int fd, int level, int opt)
{
    int v = -12345;
    socklen_t l = sizeof v;
    OK(getsockopt(fd, level, opt, &v, &l));
    CHECK_EQ(l, sizeof(int));
    return v;
}

static void setint(int fd, int level, int opt, int v)
{
    OK(setsockopt(fd, level, opt, &v, sizeof v));
}

TEST_FAM(so_type_domain_protocol_acceptconn)
{
    int l = tl_listener(fam, 2);
    CHECK_EQ(getint(l, SOL_SOCKET, SO_TYPE), SOCK_STREAM);
    CHECK_EQ(getint(l, SOL_SOCKET, SO_DOMAIN), tl_domain(fam));
    CHECK_EQ(getint(l, SOL_SOCKET, SO_PROTOCOL), is_inet(fam) ? IPPROTO_TCP : 0);
    CHECK_EQ(getint(l, SOL_SOCKET, SO_ACCEPTCONN), 1);
    /* read-only options */
    CHECK_ERRNO(setsockopt(l, SOL_SOCKET, SO_TYPE, &(int){1}, sizeof(int)), ENOPROTOOPT);
    CHECK_ERRNO(setsockopt(l, SOL_SOCKET, SO_ACCEPTCONN, &(int){1}, sizeof(int)), ENOPROTOOPT);
    int d = tl_bound(fam, SOCK_DGRAM);
    CHECK_EQ(getint(d, SOL_SOCKET, SO_TYPE), SOCK_DGRAM);
    CHECK_EQ(getint(d, SOL_SOCKET, SO_PROTOCOL), is_inet(fam) ? IPPROTO_UDP : 0);
    CHECK_EQ(getint(d, SOL_SOCKET, SO_ACCEPTCONN), 0);
    close(l);
    close(d);
}

/* A requested buffer size is clamped to net.core.rmem_max / wmem_max, then
 * doubled; an accepted TCP socket inherits its listener's SO_RCVBUF. */
static long sysctl_long(const char *path)
{
    /* Without the real limit the expected value is a guess: this case
     * cannot run rather than compare with Linux's default. */
    FILE *f = fopen(path, "r");
    if (!f)
        t_skip("procfs", "cannot read %s (%s)", path, tl_errname(errno));
    long v;
    int got = fscanf(f, "%ld", &v);
    fclose(f);
    CHECK_MSG(got == 1, "%s does not hold a number", path);
    return v;
}

TEST_FAM(so_rcvbuf_clamped_and_inherited)
{
    if (!is_inet(fam))
        return;
    long rmax = sysctl_long("/proc/sys/net/core/rmem_max");
    long wmax = sysctl_long("/proc/sys/net/core/wmem_max");
    int big = 8 << 20;
    int d = tl_bound(fam, SOCK_STREAM);
    setint(d, SOL_SOCKET, SO_RCVBUF, big);
    setint(d, SOL_SOCKET, SO_SNDBUF, big);
    CHECK_EQ(getint(d, SOL_SOCKET, SO_RCVBUF), 2 * (rmax < big ? rmax : big));
    CHECK_EQ(getint(d, SOL_SOCKET, SO_SNDBUF), 2 * (wmax < big ? wmax : big));
    close(d);

    int l = tl_bound(fam, SOCK_STREAM);
    setint(l, SOL_SOCKET, SO_RCVBUF, 100000);
    int want = getint(l, SOL_SOCKET, SO_RCVBUF);
    CHECK_EQ(want, 200000);
    OK(listen(l, 4));
    struct sockaddr_storage ss;
    socklen_t n = tl_name(l, &ss);
    int c = socket(tl_domain(fam), SOCK_STREAM, 0);
    OK(c);
    OK(connect(c, (struct sockaddr *)&ss, n));
    int s = accept(l, NULL, NULL);
    OK(s);
    CHECK_EQ(getint(s, SOL_SOCKET, SO_RCVBUF), want);
    close(s);
    close(c);
    close(l);
}

TEST_FAM(so_rcvbuf_sndbuf)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    CHECK(getint(c, SOL_SOCKET, SO_RCVBUF) > 0);
    CHECK(getint(c, SOL_SOCKET, SO_SNDBUF) > 0);
    setint(c, SOL_SOCKET, SO_RCVBUF, 65536);
    setint(c, SOL_SOCKET, SO_SNDBUF, 32768);
    CHECK(getint(c, SOL_SOCKET, SO_RCVBUF) >= 65536);
    CHECK(getint(c, SOL_SOCKET, SO_SNDBUF) >= 32768);
    /* data still flows with small buffers */
    setint(s, SOL_SOCKET, SO_RCVBUF, 16384);
    CHECK(getint(s, SOL_SOCKET, SO_RCVBUF) >= 16384);
    static char buf[100000];
    tl_fill(buf, sizeof buf, 3);
    uint32_t want = tl_cksum(2166136261u, buf, sizeof buf);
    OK(fcntl(c, F_SETFL, O_NONBLOCK));
    OK(fcntl(s, F_SETFL, O_NONBLOCK));
    size_t sent = 0, got = 0;
    uint32_t h = 2166136261u;
    static char rbuf[65536];
    long deadline = tl_now_ms() + 10000;
    while (got < sizeof buf) {
        CHECK(tl_now_ms() < deadline);
        if (sent < sizeof buf) {
            ssize_t r = send(c, buf + sent, sizeof buf - sent, 0);
            if (r > 0)
                sent += (size_t)r;
            else
                CHECK_EQ(errno, EAGAIN);
        }
        ssize_t r = recv(s, rbuf, sizeof rbuf, 0);
        if (r > 0) {
            h = tl_cksum(h, rbuf, (size_t)r);
            got += (size_t)r;
        } else {
            CHECK(r < 0 && errno == EAGAIN);
            struct pollfd p[2] = {{s, POLLIN, 0}, {c, sent < sizeof buf ? POLLOUT : 0, 0}};
            poll(p, 2, 100);
        }
    }
    CHECK_EQ(got, sizeof buf);
    CHECK_EQ(h, want);
    close(c);
    close(s);
}

TEST_FAM(so_rcvtimeo_times_out_with_eagain)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    struct timeval tv = {0, 200000}, got;
    OK(setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    socklen_t gl = sizeof got;
    OK(getsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &got, &gl));
    CHECK_EQ(gl, sizeof got);
    CHECK_EQ(got.tv_sec, 0);
    CHECK(got.tv_usec >= 190000 && got.tv_usec <= 210000);
    char buf[4];
    long t0 = tl_now_ms();
    CHECK_ERRNO(recv(s, buf, sizeof buf, 0), EAGAIN);
    long el = tl_now_ms() - t0;
    CHECK_MSG(el >= 150 && el < 2000, "recv timed out after %ld ms, expected ~200", el);
    t0 = tl_now_ms();
    CHECK_ERRNO(read(s, buf, sizeof buf), EAGAIN);
    el = tl_now_ms() - t0;
    CHECK_MSG(el >= 150 && el < 2000, "read timed out after %ld ms", el);
    /* data before the timeout is returned */
    CHECK_EQ(OK(send(c, "ok", 2, 0)), 2);
    CHECK_EQ(OK(recv(s, buf, sizeof buf, 0)), 2);
    /* zero disables the timeout */
    tv.tv_usec = 0;
    OK(setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    gl = sizeof got;
    OK(getsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &got, &gl));
    CHECK(got.tv_sec == 0 && got.tv_usec == 0);
    close(c);
    close(s);
}

TEST_FAM(so_rcvtimeo_on_accept_and_dgram)
{
    int l = tl_listener(fam, 2);
    struct timeval tv = {0, 150000};
    OK(setsockopt(l, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    long t0 = tl_now_ms();
    CHECK_ERRNO(accept(l, NULL, NULL), EAGAIN);
    long el = tl_now_ms() - t0;
    CHECK_MSG(el >= 100 && el < 2000, "accept timed out after %ld ms", el);
    close(l);
    int d = tl_bound(fam, SOCK_DGRAM);
    OK(setsockopt(d, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    char buf[4];
    t0 = tl_now_ms();
    CHECK_ERRNO(recvfrom(d, buf, sizeof buf, 0, NULL, NULL), EAGAIN);
    el = tl_now_ms() - t0;
    CHECK_MSG(el >= 100 && el < 2000, "recvfrom timed out after %ld ms", el);
    close(d);
}

TEST_FAM(so_sndtimeo_times_out_when_full)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    struct timeval tv = {0, 200000}, got;
    OK(setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv));
    socklen_t gl = sizeof got;
    OK(getsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &got, &gl));
    CHECK(got.tv_sec == 0 && got.tv_usec >= 190000 && got.tv_usec <= 210000);
    static char chunk[65536];
    size_t total = 0;
    long t0 = 0;
    int timed_out = 0;
    for (int i = 0; i < 20000; i++) {
        t0 = tl_now_ms();
        ssize_t r = send(c, chunk, sizeof chunk, 0);
        if (r < 0) {
            CHECK_EQ(errno, EAGAIN);
            timed_out = 1;
            break;
        }
        total += (size_t)r;
    }
    CHECK(timed_out);
    long el = tl_now_ms() - t0;
    CHECK_MSG(el >= 150 && el < 2000, "send timed out after %ld ms", el);
    CHECK(total > 0);
    close(c);
    close(s);
}

TEST(so_timeo_bad_values)
{
    int fd = (int)OK(socket(AF_INET, SOCK_STREAM, 0));
    struct timeval tv = {0, 1000000};
    CHECK_ERRNO(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), EDOM);
    CHECK_ERRNO(setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv), EDOM);
    tv.tv_usec = 0;
    CHECK_ERRNO(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, 4), EINVAL);
    close(fd);
}

TEST_FAM(bool_options_roundtrip)
{
    int fd = (int)OK(socket(tl_domain(fam), SOCK_STREAM, 0));
    int opts[] = {SO_REUSEADDR, SO_KEEPALIVE, SO_REUSEPORT};
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        if (opts[i] == SO_REUSEPORT && !is_inet(fam))
            continue;
        CHECK_EQ(getint(fd, SOL_SOCKET, opts[i]), 0);
        setint(fd, SOL_SOCKET, opts[i], 1);
        CHECK_EQ(getint(fd, SOL_SOCKET, opts[i]), 1);
        setint(fd, SOL_SOCKET, opts[i], 0);
        CHECK_EQ(getint(fd, SOL_SOCKET, opts[i]), 0);
        setint(fd, SOL_SOCKET, opts[i], 7); /* any non-zero is "on" */
        CHECK(getint(fd, SOL_SOCKET, opts[i]) != 0);
    }
    /* an int option needs an int */
    CHECK_ERRNO(setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &(int){1}, 2), EINVAL);
    close(fd);
}

TEST(tcp_nodelay)
{
    for (int fam = FAM_INET; fam <= FAM_INET6; fam++) {
        int c, s;
        tl_stream_pair(fam, &c, &s);
        CHECK_EQ(getint(c, IPPROTO_TCP, TCP_NODELAY), 0);
        setint(c, IPPROTO_TCP, TCP_NODELAY, 1);
        CHECK(getint(c, IPPROTO_TCP, TCP_NODELAY) != 0);
        CHECK_EQ(OK(send(c, "x", 1, 0)), 1);
        char ch;
        CHECK_EQ(OK(recv(s, &ch, 1, 0)), 1);
        close(c);
        close(s);
    }
    /* AF_UNIX has no TCP level */
    int u = (int)OK(socket(AF_UNIX, SOCK_STREAM, 0));
    CHECK_ERRNO(setsockopt(u, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int)), EOPNOTSUPP);
    close(u);
}

TEST_FAM(so_linger_roundtrip)
{
    int fd = (int)OK(socket(tl_domain(fam), SOCK_STREAM, 0));
    struct linger lg = {-1, -1};
    socklen_t l = sizeof lg;
    OK(getsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, &l));
    CHECK_EQ(l, sizeof lg);
    CHECK_EQ(lg.l_onoff, 0);
    struct linger set = {1, 5};
    OK(setsockopt(fd, SOL_SOCKET, SO_LINGER, &set, sizeof set));
    l = sizeof lg;
    OK(getsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, &l));
    CHECK(lg.l_onoff != 0);
    CHECK_EQ(lg.l_linger, 5);
    CHECK_ERRNO(setsockopt(fd, SOL_SOCKET, SO_LINGER, &set, sizeof(int)), EINVAL);
    close(fd);
}

TEST_FAM(unknown_options_enoprotoopt)
{
    int fd = (int)OK(socket(tl_domain(fam), SOCK_STREAM, 0));
    int v = 1;
    socklen_t l = sizeof v;
    CHECK_ERRNO(getsockopt(fd, SOL_SOCKET, 12345, &v, &l), ENOPROTOOPT);
    CHECK_ERRNO(setsockopt(fd, SOL_SOCKET, 12345, &v, sizeof v), ENOPROTOOPT);
    if (is_inet(fam)) {
        CHECK_ERRNO(getsockopt(fd, IPPROTO_TCP, 12345, &v, &l), ENOPROTOOPT);
        CHECK_ERRNO(setsockopt(fd, IPPROTO_TCP, 12345, &v, sizeof v), ENOPROTOOPT);
        CHECK_ERRNO(setsockopt(fd, 9999, 1, &v, sizeof v), ENOPROTOOPT);
    }
    close(fd);
    fd = (int)OK(socket(tl_domain(fam), SOCK_DGRAM, 0));
    CHECK_ERRNO(getsockopt(fd, SOL_SOCKET, 12345, &v, &l), ENOPROTOOPT);
    close(fd);
}

TEST_FAM(so_error_reads_and_clears)
{
    int fd = (int)OK(socket(tl_domain(fam), SOCK_STREAM, 0));
    CHECK_EQ(tl_so_error(fd), 0);
    CHECK_ERRNO(setsockopt(fd, SOL_SOCKET, SO_ERROR, &(int){1}, sizeof(int)), ENOPROTOOPT);
    int v;
    socklen_t l = sizeof v;
    CHECK_ERRNO(getsockopt(fd, SOL_SOCKET, SO_ERROR, tl_bad_ptr(), &l), EFAULT);
    CHECK_ERRNO(getsockopt(fd, SOL_SOCKET, SO_ERROR, &v, (socklen_t *)tl_bad_ptr()), EFAULT);
    close(fd);
}

TEST(so_reuseaddr_udp_shared_port)
{
    int a = (int)OK(socket(AF_INET, SOCK_DGRAM, 0));
    int b = (int)OK(socket(AF_INET, SOCK_DGRAM, 0));
    setint(a, SOL_SOCKET, SO_REUSEADDR, 1);
    struct sockaddr_storage ss;
    socklen_t len;
    tl_addr(FAM_INET, &ss, &len);
    OK(bind(a, (struct sockaddr *)&ss, len));
    len = tl_name(a, &ss);
    CHECK_ERRNO(bind(b, (struct sockaddr *)&ss, len), EADDRINUSE);
    setint(b, SOL_SOCKET, SO_REUSEADDR, 1);
    OK(bind(b, (struct sockaddr *)&ss, len));
    close(a);
    close(b);
}

TEST(so_reuseport_tcp_listeners)
{
    for (int fam = FAM_INET; fam <= FAM_INET6; fam++) {
        int a = (int)OK(socket(tl_domain(fam), SOCK_STREAM, 0));
        int b = (int)OK(socket(tl_domain(fam), SOCK_STREAM, 0));
        int c = (int)OK(socket(tl_domain(fam), SOCK_STREAM, 0));
        setint(a, SOL_SOCKET, SO_REUSEPORT, 1);
        setint(b, SOL_SOCKET, SO_REUSEPORT, 1);
        struct sockaddr_storage ss;
        socklen_t len;
        tl_addr(fam, &ss, &len);
        OK(bind(a, (struct sockaddr *)&ss, len));
        len = tl_name(a, &ss);
        OK(listen(a, 8));
        OK(bind(b, (struct sockaddr *)&ss, len));
        OK(listen(b, 8));
        CHECK_ERRNO(bind(c, (struct sockaddr *)&ss, len), EADDRINUSE);
        /* connections land on one of the two listeners */
        int k = (int)OK(socket(tl_domain(fam), SOCK_STREAM, 0));
        OK(connect(k, (struct sockaddr *)&ss, len));
        struct pollfd p[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
        CHECK_EQ(OK(poll(p, 2, 2000)), 1);
        int s = (int)OK(accept(p[0].revents ? a : b, NULL, NULL));
        close(s);
        close(k);
        close(a);
        close(b);
        close(c);
    }
}

TEST(so_reuseaddr_rebind_after_close_with_connection)
{
    /* the classic server restart: the old connection lingers (TIME_WAIT on
     * the side that closed first), SO_REUSEADDR lets a new listener bind */
    int l = (int)OK(socket(AF_INET, SOCK_STREAM, 0));
    setint(l, SOL_SOCKET, SO_REUSEADDR, 1);
    struct sockaddr_storage ss;
    socklen_t len;
    tl_addr(FAM_INET, &ss, &len);
    OK(bind(l, (struct sockaddr *)&ss, len));
    len = tl_name(l, &ss);
    OK(listen(l, 4));
    int c = (int)OK(socket(AF_INET, SOCK_STREAM, 0));
    OK(connect(c, (struct sockaddr *)&ss, len));
    int s = (int)OK(accept(l, NULL, NULL));
    close(s); /* server closes first */
    char ch;
    CHECK_EQ(OK(recv(c, &ch, 1, 0)), 0);
    close(c);
    close(l);
    int l2 = (int)OK(socket(AF_INET, SOCK_STREAM, 0));
    setint(l2, SOL_SOCKET, SO_REUSEADDR, 1);
    OK(bind(l2, (struct sockaddr *)&ss, len));
    OK(listen(l2, 4));
    close(l2);
}

TEST(getsockopt_truncates_int)
{
    int fd = (int)OK(socket(AF_INET, SOCK_DGRAM, 0));
    char small[2] = {0x55, 0x55};
    socklen_t l = 1;
    OK(getsockopt(fd, SOL_SOCKET, SO_TYPE, small, &l));
    CHECK_EQ(l, 1);
    CHECK_EQ(small[0], SOCK_DGRAM);
    CHECK_EQ(small[1], 0x55);
    close(fd);
}

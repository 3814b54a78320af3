/*
 * t_tcpopt.c - issue 13, class 2: every TCP option Linux accepts, with
 * Linux's defaults, ranges and errnos, get-after-set, inheritance by
 * accept(), and the behaviour of those that have one over a user-space
 * transport: TCP_CORK and MSG_MORE (partial segments held until uncork, a
 * full segment or 200 ms), TCP_NODELAY, TCP_DEFER_ACCEPT, TCP_NOTSENT_LOWAT,
 * TCP_INQ and its cmsg, TCP_FASTOPEN(_CONNECT) and MSG_FASTOPEN,
 * TCP_SAVED_SYN, TCP_INFO's fields, TCP_CONGESTION with the kernel's names.
 *
 * Defaults that are configuration are read from /proc/sys (tcp_keepalive_*,
 * tcp_syn_retries, tcp_fin_timeout, tcp_congestion_control, somaxconn,
 * tcp_fastopen, tcp_timestamps...), never assumed. The ranges are those of
 * net/ipv4/tcp.c (do_tcp_setsockopt/do_tcp_getsockopt), checked here
 * against this machine's kernel.
 */
#include "testlib.h"

#include <linux/capability.h>
#include <linux/sockios.h>
#include <netinet/ip.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/wait.h>

/* <linux/tcp.h> names glibc's <netinet/tcp.h> may lack */
#ifndef TCP_CC_INFO
#define TCP_CC_INFO 26
#endif
#ifndef TCP_SAVE_SYN
#define TCP_SAVE_SYN 27
#define TCP_SAVED_SYN 28
#endif
#ifndef TCP_FASTOPEN_CONNECT
#define TCP_FASTOPEN_CONNECT 30
#endif
#ifndef TCP_ULP
#define TCP_ULP 31
#endif
#ifndef TCP_FASTOPEN_KEY
#define TCP_FASTOPEN_KEY 33
#endif
#ifndef TCP_FASTOPEN_NO_COOKIE
#define TCP_FASTOPEN_NO_COOKIE 34
#endif
#ifndef TCP_INQ
#define TCP_INQ 36
#endif
#define TCP_CM_INQ TCP_INQ
#ifndef TCP_TX_DELAY
#define TCP_TX_DELAY 37
#endif
#ifndef MSG_FASTOPEN
#define MSG_FASTOPEN 0x20000000
#endif

enum { ST_ESTABLISHED = 1, ST_FIN_WAIT2 = 5, ST_CLOSE = 7, ST_CLOSE_WAIT = 8, ST_LISTEN = 10 };

static const int fams[2] = {FAM_INET, FAM_INET6};

static long sys_ipv4(const char *name)
{
    char p[128];
    snprintf(p, sizeof p, "/proc/sys/net/ipv4/%s", name);
    return tl_sysctl(p);
}

static int tcp_socket(int fam) { return (int)OK(socket(tl_domain(fam), SOCK_STREAM, 0)); }

static int geti(int fd, int opt) { return tl_getint(fd, IPPROTO_TCP, opt); }

/* On a fresh socket of each family: setting v succeeds and reads back as
 * want. */
static void set_reads(int opt, int v, int want)
{
    for (int f = 0; f < 2; f++) {
        int fd = tcp_socket(fams[f]);
        int r = setsockopt(fd, IPPROTO_TCP, opt, &v, sizeof v);
        CHECK_MSG(r == 0, "%s: setsockopt(TCP opt %d, %d): -1/%s", tl_fam_names[fams[f]], opt,
                  v, tl_errname(errno));
        int got = geti(fd, opt);
        CHECK_MSG(got == want, "%s: TCP opt %d set to %d reads %d, expected %d",
                  tl_fam_names[fams[f]], opt, v, got, want);
        OK(close(fd));
    }
}

/* On a fresh socket of each family: setting v fails with e, and the value
 * does not change. */
static void set_fails(int opt, int v, int e)
{
    for (int f = 0; f < 2; f++) {
        int fd = tcp_socket(fams[f]);
        int before = geti(fd, opt);
        errno = 0;
        int r = setsockopt(fd, IPPROTO_TCP, opt, &v, sizeof v);
        CHECK_MSG(r == -1 && errno == e, "%s: setsockopt(TCP opt %d, %d): %d/%s, expected -1/%s",
                  tl_fam_names[fams[f]], opt, v, r, r ? tl_errname(errno) : "0", tl_errname(e));
        CHECK_EQ(geti(fd, opt), before);
        OK(close(fd));
    }
}

static void default_is(int opt, int want)
{
    for (int f = 0; f < 2; f++) {
        int fd = tcp_socket(fams[f]);
        int got = geti(fd, opt);
        CHECK_MSG(got == want, "%s: TCP opt %d defaults to %d, expected %d",
                  tl_fam_names[fams[f]], opt, got, want);
        OK(close(fd));
    }
}

/* ---- every int option against the kernel's ----------------------------- */

/* On TCP and UDP sockets of both families: the default and the result of
 * setting each value, compared with a kernel socket (tl_opt_like_kernel). */
static void tcp_like_kernel(int opt)
{
    static const int v[] = {-2, -1, 0, 1, 2, 3, 5, 87, 88, 127, 128, 255, 256, 1000,
                            32767, 32768, 65536, 1 << 28, 0x7fffffff};
    static const int types[2] = {SOCK_STREAM, SOCK_DGRAM};
    for (int f = 0; f < 2; f++)
        for (int t = 0; t < 2; t++)
            tl_opt_like_kernel(tl_domain(fams[f]), types[t], IPPROTO_TCP, opt, v,
                               (int)(sizeof v / sizeof v[0]), 1);
}

#define LIKE_KERNEL(name) \
    TEST(kernel_##name) { tcp_like_kernel(name); }

LIKE_KERNEL(TCP_NODELAY)
LIKE_KERNEL(TCP_MAXSEG)
LIKE_KERNEL(TCP_CORK)
LIKE_KERNEL(TCP_KEEPIDLE)
LIKE_KERNEL(TCP_KEEPINTVL)
LIKE_KERNEL(TCP_KEEPCNT)
LIKE_KERNEL(TCP_SYNCNT)
LIKE_KERNEL(TCP_LINGER2)
LIKE_KERNEL(TCP_DEFER_ACCEPT)
LIKE_KERNEL(TCP_WINDOW_CLAMP)
LIKE_KERNEL(TCP_QUICKACK)
LIKE_KERNEL(TCP_THIN_LINEAR_TIMEOUTS)
LIKE_KERNEL(TCP_THIN_DUPACK)
LIKE_KERNEL(TCP_USER_TIMEOUT)
LIKE_KERNEL(TCP_REPAIR)
LIKE_KERNEL(TCP_REPAIR_QUEUE)
LIKE_KERNEL(TCP_QUEUE_SEQ)
LIKE_KERNEL(TCP_REPAIR_OPTIONS)
LIKE_KERNEL(TCP_FASTOPEN)
LIKE_KERNEL(TCP_NOTSENT_LOWAT)
LIKE_KERNEL(TCP_SAVE_SYN)
LIKE_KERNEL(TCP_FASTOPEN_CONNECT)
LIKE_KERNEL(TCP_FASTOPEN_NO_COOKIE)
LIKE_KERNEL(TCP_INQ)
LIKE_KERNEL(TCP_TX_DELAY)

/* ---- each option's default, range and errnos -------------------------- */

TEST(opt_nodelay)
{
    default_is(TCP_NODELAY, 0);
    set_reads(TCP_NODELAY, 1, 1);
    set_reads(TCP_NODELAY, 0, 0);
    set_reads(TCP_NODELAY, 5, 1); /* any non-zero value: on */
    set_reads(TCP_NODELAY, -1, 1);
}

TEST(opt_cork)
{
    default_is(TCP_CORK, 0);
    set_reads(TCP_CORK, 1, 1);
    set_reads(TCP_CORK, 0, 0);
    set_reads(TCP_CORK, 7, 1);
    set_reads(TCP_CORK, -3, 1);
}

TEST(opt_maxseg)
{
    default_is(TCP_MAXSEG, 536); /* TCP_MSS_DEFAULT before a connection */
    set_reads(TCP_MAXSEG, 88, 88); /* TCP_MIN_MSS */
    set_reads(TCP_MAXSEG, 1000, 1000);
    set_reads(TCP_MAXSEG, 32767, 32767); /* MAX_TCP_WINDOW */
    set_reads(TCP_MAXSEG, 0, 536); /* 0: no user limit */
    set_fails(TCP_MAXSEG, 87, EINVAL);
    set_fails(TCP_MAXSEG, 1, EINVAL);
    set_fails(TCP_MAXSEG, -1, EINVAL);
    set_fails(TCP_MAXSEG, 32768, EINVAL);
    set_fails(TCP_MAXSEG, 65536, EINVAL);
}

TEST(opt_keepidle)
{
    default_is(TCP_KEEPIDLE, (int)sys_ipv4("tcp_keepalive_time"));
    set_reads(TCP_KEEPIDLE, 1, 1);
    set_reads(TCP_KEEPIDLE, 600, 600);
    set_reads(TCP_KEEPIDLE, 32767, 32767); /* MAX_TCP_KEEPIDLE */
    set_fails(TCP_KEEPIDLE, 0, EINVAL);
    set_fails(TCP_KEEPIDLE, -1, EINVAL);
    set_fails(TCP_KEEPIDLE, 32768, EINVAL);
}

TEST(opt_keepintvl)
{
    default_is(TCP_KEEPINTVL, (int)sys_ipv4("tcp_keepalive_intvl"));
    set_reads(TCP_KEEPINTVL, 1, 1);
    set_reads(TCP_KEEPINTVL, 32767, 32767); /* MAX_TCP_KEEPINTVL */
    set_fails(TCP_KEEPINTVL, 0, EINVAL);
    set_fails(TCP_KEEPINTVL, -5, EINVAL);
    set_fails(TCP_KEEPINTVL, 32768, EINVAL);
}

TEST(opt_keepcnt)
{
    default_is(TCP_KEEPCNT, (int)sys_ipv4("tcp_keepalive_probes"));
    set_reads(TCP_KEEPCNT, 1, 1);
    set_reads(TCP_KEEPCNT, 127, 127); /* MAX_TCP_KEEPCNT */
    set_fails(TCP_KEEPCNT, 128, EINVAL);
    set_fails(TCP_KEEPCNT, 255, EINVAL);
    set_fails(TCP_KEEPCNT, 0, EINVAL);
    set_fails(TCP_KEEPCNT, -1, EINVAL);
}

TEST(opt_syncnt)
{
    default_is(TCP_SYNCNT, (int)sys_ipv4("tcp_syn_retries"));
    set_reads(TCP_SYNCNT, 1, 1);
    set_reads(TCP_SYNCNT, 127, 127); /* MAX_TCP_SYNCNT */
    set_fails(TCP_SYNCNT, 128, EINVAL);
    set_fails(TCP_SYNCNT, 0, EINVAL);
    set_fails(TCP_SYNCNT, -1, EINVAL);
}

TEST(opt_linger2)
{
    int fin = (int)sys_ipv4("tcp_fin_timeout");
    default_is(TCP_LINGER2, fin);
    set_reads(TCP_LINGER2, 30, 30);
    set_reads(TCP_LINGER2, 0, fin); /* 0: the sysctl */
    set_reads(TCP_LINGER2, -1, -1); /* negative: no FIN_WAIT2 wait at all */
    set_reads(TCP_LINGER2, -40, -1);
    set_reads(TCP_LINGER2, 120, 120); /* TCP_FIN_TIMEOUT_MAX */
    set_reads(TCP_LINGER2, 121, 120);
    set_reads(TCP_LINGER2, 1 << 30, 120);
}

/* The kernel stores TCP_DEFER_ACCEPT as a count of SYN-ACK retransmits
 * (1 s, doubling, at most 120 s each; at most 255) and reports the time
 * they take, so a value reads back rounded up (net/ipv4/tcp.c,
 * secs_to_retrans / retrans_to_secs). */
static int defer_readback(int secs)
{
    if (secs <= 0)
        return 0;
    int res = 1, timeout = 1, period = 1;
    while (secs > period && res < 255) {
        res++;
        timeout <<= 1;
        if (timeout > 120)
            timeout = 120;
        period += timeout;
    }
    return period;
}

TEST(opt_defer_accept)
{
    default_is(TCP_DEFER_ACCEPT, 0);
    static const int v[] = {1, 2, 3, 5, 10, 30, 60, 100, 1000, 100000};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        set_reads(TCP_DEFER_ACCEPT, v[i], defer_readback(v[i]));
    /* spot checks of the formula against the values the kernel gives */
    CHECK_EQ(defer_readback(5), 7);
    CHECK_EQ(defer_readback(128), 247);
    CHECK_EQ(defer_readback(1000000), 29887);
    set_reads(TCP_DEFER_ACCEPT, 0, 0);
    set_reads(TCP_DEFER_ACCEPT, -4, 0);
}

TEST(opt_window_clamp)
{
    /* the smallest clamp is half of SOCK_MIN_RCVBUF, which SO_RCVBUF 0
     * reveals (the kernel raises any smaller request to it) */
    int probe = tcp_socket(FAM_INET);
    tl_setint(probe, SOL_SOCKET, SO_RCVBUF, 0);
    int min_rcvbuf = tl_getint(probe, SOL_SOCKET, SO_RCVBUF);
    OK(close(probe));
    default_is(TCP_WINDOW_CLAMP, 0);
    set_reads(TCP_WINDOW_CLAMP, 40000, 40000);
    set_reads(TCP_WINDOW_CLAMP, 1, min_rcvbuf / 2);
    set_reads(TCP_WINDOW_CLAMP, -5, min_rcvbuf / 2);
    set_reads(TCP_WINDOW_CLAMP, 0, 0); /* allowed while closed */
    /* 0 on an open connection is refused */
    int c, s;
    tl_stream_pair(FAM_INET, &c, &s);
    CHECK(geti(c, TCP_WINDOW_CLAMP) > 0);
    CHECK_ERRNO(setsockopt(c, IPPROTO_TCP, TCP_WINDOW_CLAMP, &(int){0}, sizeof(int)), EINVAL);
    tl_setint(c, IPPROTO_TCP, TCP_WINDOW_CLAMP, 30000);
    CHECK_EQ(geti(c, TCP_WINDOW_CLAMP), 30000);
    OK(close(c));
    OK(close(s));
}

TEST(opt_quickack)
{
    default_is(TCP_QUICKACK, 1);
    set_reads(TCP_QUICKACK, 0, 0);
    set_reads(TCP_QUICKACK, 1, 1);
    int c, s;
    tl_stream_pair(FAM_INET, &c, &s);
    CHECK_EQ(geti(s, TCP_QUICKACK), 1);
    tl_setint(s, IPPROTO_TCP, TCP_QUICKACK, 0);
    CHECK_EQ(geti(s, TCP_QUICKACK), 0);
    tl_setint(s, IPPROTO_TCP, TCP_QUICKACK, 1);
    CHECK_EQ(geti(s, TCP_QUICKACK), 1);
    OK(close(c));
    OK(close(s));
}

TEST(opt_user_timeout)
{
    default_is(TCP_USER_TIMEOUT, 0);
    set_reads(TCP_USER_TIMEOUT, 1, 1);
    set_reads(TCP_USER_TIMEOUT, 30000, 30000);
    set_reads(TCP_USER_TIMEOUT, 1 << 30, 1 << 30);
    set_fails(TCP_USER_TIMEOUT, -1, EINVAL);
}

TEST(opt_notsent_lowat)
{
    /* reads back what was set; 0 (the default) means net.ipv4.tcp_notsent_lowat */
    default_is(TCP_NOTSENT_LOWAT, 0);
    set_reads(TCP_NOTSENT_LOWAT, 16384, 16384);
    set_reads(TCP_NOTSENT_LOWAT, 1, 1);
    set_reads(TCP_NOTSENT_LOWAT, -1, -1);
}

TEST(opt_thin_linear_timeouts_and_dupack)
{
    default_is(TCP_THIN_LINEAR_TIMEOUTS, 0);
    set_reads(TCP_THIN_LINEAR_TIMEOUTS, 1, 1);
    set_reads(TCP_THIN_LINEAR_TIMEOUTS, 0, 0);
    set_fails(TCP_THIN_LINEAR_TIMEOUTS, 2, EINVAL);
    set_fails(TCP_THIN_LINEAR_TIMEOUTS, -1, EINVAL);
    /* TCP_THIN_DUPACK: accepted (0 or 1) and always reads 0 */
    default_is(TCP_THIN_DUPACK, 0);
    set_reads(TCP_THIN_DUPACK, 1, 0);
    set_fails(TCP_THIN_DUPACK, 2, EINVAL);
}

TEST(opt_save_syn)
{
    default_is(TCP_SAVE_SYN, 0);
    set_reads(TCP_SAVE_SYN, 1, 1);
    set_reads(TCP_SAVE_SYN, 2, 2);
    set_fails(TCP_SAVE_SYN, 3, EINVAL);
    set_fails(TCP_SAVE_SYN, -1, EINVAL);
}

TEST(opt_inq)
{
    default_is(TCP_INQ, 0);
    set_reads(TCP_INQ, 1, 1);
    set_reads(TCP_INQ, 0, 0);
    set_fails(TCP_INQ, 2, EINVAL);
    set_fails(TCP_INQ, -1, EINVAL);
}

TEST(opt_tx_delay)
{
    default_is(TCP_TX_DELAY, 0);
    set_reads(TCP_TX_DELAY, 10, 10);
    set_reads(TCP_TX_DELAY, 0, 0);
    set_fails(TCP_TX_DELAY, -1, EINVAL);
}

TEST(opt_fastopen)
{
    int somax = (int)tl_sysctl("/proc/sys/net/core/somaxconn");
    default_is(TCP_FASTOPEN, 0);
    set_reads(TCP_FASTOPEN, 5, 5);
    set_reads(TCP_FASTOPEN, 0, 0);
    set_reads(TCP_FASTOPEN, 1 << 20, somax < (1 << 20) ? somax : (1 << 20));
    set_fails(TCP_FASTOPEN, -1, EINVAL);
    /* refused on an open connection */
    int c, s;
    tl_stream_pair(FAM_INET, &c, &s);
    CHECK_ERRNO(setsockopt(c, IPPROTO_TCP, TCP_FASTOPEN, &(int){5}, sizeof(int)), EINVAL);
    OK(close(c));
    OK(close(s));
}

TEST(opt_fastopen_connect_and_no_cookie)
{
    long tfo = sys_ipv4("tcp_fastopen");
    default_is(TCP_FASTOPEN_CONNECT, 0);
    if (tfo & 1) { /* TFO_CLIENT_ENABLE */
        set_reads(TCP_FASTOPEN_CONNECT, 1, 1);
        set_reads(TCP_FASTOPEN_CONNECT, 0, 0);
    } else {
        set_fails(TCP_FASTOPEN_CONNECT, 1, EOPNOTSUPP);
    }
    set_fails(TCP_FASTOPEN_CONNECT, 2, EINVAL);
    set_fails(TCP_FASTOPEN_CONNECT, -1, EINVAL);
    int c, s;
    tl_stream_pair(FAM_INET, &c, &s);
    if (tfo & 1)
        CHECK_ERRNO(setsockopt(c, IPPROTO_TCP, TCP_FASTOPEN_CONNECT, &(int){1}, sizeof(int)),
                    EINVAL);
    default_is(TCP_FASTOPEN_NO_COOKIE, 0);
    set_reads(TCP_FASTOPEN_NO_COOKIE, 1, 1);
    set_fails(TCP_FASTOPEN_NO_COOKIE, 2, EINVAL);
    CHECK_ERRNO(setsockopt(c, IPPROTO_TCP, TCP_FASTOPEN_NO_COOKIE, &(int){1}, sizeof(int)),
                EINVAL);
    OK(close(c));
    OK(close(s));
}

TEST(opt_fastopen_key)
{
    int l = tl_listener(FAM_INET, 4);
    char key[16], bad[10];
    tl_fill(key, sizeof key, 99);
    memset(bad, 1, sizeof bad);
    CHECK_ERRNO(setsockopt(l, IPPROTO_TCP, TCP_FASTOPEN_KEY, bad, sizeof bad), EINVAL);
    if (tl_has_cap(CAP_NET_ADMIN)) {
        OK(setsockopt(l, IPPROTO_TCP, TCP_FASTOPEN_KEY, key, sizeof key));
        char got[32];
        socklen_t gl = sizeof got;
        OK(getsockopt(l, IPPROTO_TCP, TCP_FASTOPEN_KEY, got, &gl));
        CHECK_EQ(gl, 16);
        CHECK(memcmp(got, key, 16) == 0);
    }
    OK(close(l));
}

TEST(opt_timestamp_and_repair_need_repair_mode)
{
    int fd = tcp_socket(FAM_INET);
    CHECK(geti(fd, TCP_TIMESTAMP) != 0); /* the clock, in ms */
    CHECK_ERRNO(setsockopt(fd, IPPROTO_TCP, TCP_TIMESTAMP, &(int){5}, sizeof(int)), EPERM);
    CHECK_EQ(geti(fd, TCP_REPAIR), 0);
    CHECK_ERRNO(setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, &(int){1}, sizeof(int)), EPERM);
    int v;
    socklen_t vl = sizeof v;
    CHECK_ERRNO(getsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, &v, &vl), EINVAL);
    CHECK_ERRNO(getsockopt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, &v, &vl), EINVAL);
    if (tl_has_cap(CAP_NET_ADMIN)) {
        tl_setint(fd, IPPROTO_TCP, TCP_REPAIR, 1);
        CHECK_EQ(geti(fd, TCP_REPAIR), 1);
        tl_setint(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, 1 /* TCP_RECV_QUEUE */);
        CHECK_EQ(geti(fd, TCP_REPAIR_QUEUE), 1);
        CHECK_ERRNO(setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, &(int){3}, sizeof(int)),
                    EINVAL);
        CHECK_ERRNO(setsockopt(fd, IPPROTO_TCP, TCP_REPAIR, &(int){2}, sizeof(int)), EINVAL);
        tl_setint(fd, IPPROTO_TCP, TCP_REPAIR, -1 /* TCP_REPAIR_OFF_NO_WP */);
        CHECK_EQ(geti(fd, TCP_REPAIR), 0);
    }
    OK(close(fd));
    /* never on a listener */
    if (tl_has_cap(CAP_NET_ADMIN)) {
        int l = tl_listener(FAM_INET, 1);
        CHECK_ERRNO(setsockopt(l, IPPROTO_TCP, TCP_REPAIR, &(int){1}, sizeof(int)), EPERM);
        OK(close(l));
    }
}

static void repair_unprivileged(void *arg)
{
    (void)arg;
    int fd = tcp_socket(FAM_INET);
    CHECK_ERRNO(setsockopt(fd, IPPROTO_TCP, TCP_REPAIR, &(int){1}, sizeof(int)), EPERM);
    OK(close(fd));
}

TEST(opt_repair_needs_cap_net_admin)
{
    if (!tl_has_cap(CAP_NET_ADMIN))
        t_skip("root", "needs CAP_NET_ADMIN to drop it");
    tl_in_child(repair_unprivileged, NULL, 1ULL << CAP_NET_ADMIN, -1, 10);
}

TEST(opt_ulp_md5sig_unknown)
{
    int fd = tcp_socket(FAM_INET);
    char name[16] = "x";
    socklen_t nl = sizeof name;
    OK(getsockopt(fd, IPPROTO_TCP, TCP_ULP, name, &nl));
    CHECK_EQ(nl, 0); /* no upper-layer protocol */
    CHECK_ERRNO(setsockopt(fd, IPPROTO_TCP, TCP_ULP, "nosuchulp", 9), ENOENT);
    CHECK_ERRNO(setsockopt(fd, IPPROTO_TCP, TCP_ULP, "", 0), EINVAL);
    char md5[8] = {0};
    CHECK_ERRNO(setsockopt(fd, IPPROTO_TCP, TCP_MD5SIG, md5, sizeof md5), EINVAL);
    int v;
    socklen_t vl = sizeof v;
    CHECK_ERRNO(getsockopt(fd, IPPROTO_TCP, 99, &v, &vl), ENOPROTOOPT);
    CHECK_ERRNO(setsockopt(fd, IPPROTO_TCP, 99, &v, sizeof v), ENOPROTOOPT);
    OK(close(fd));
}

TEST(opt_int_lengths)
{
    int fd = tcp_socket(FAM_INET);
    tl_setint(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, 0x0203);
    /* short and zero lengths read the value's first bytes; longer ones
     * report sizeof(int); a negative one is EINVAL */
    unsigned char b[8];
    memset(b, 0xee, sizeof b);
    socklen_t l = 1;
    OK(getsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, b, &l));
    CHECK_EQ(l, 1);
    CHECK_EQ(b[0], 0x03);
    CHECK_EQ(b[1], 0xee);
    l = 0;
    OK(getsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, b, &l));
    CHECK_EQ(l, 0);
    l = 8;
    OK(getsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, b, &l));
    CHECK_EQ(l, 4);
    l = (socklen_t)-1;
    CHECK_ERRNO(getsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, b, &l), EINVAL);
    /* a set needs a whole int; more is fine */
    CHECK_ERRNO(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, b, 2), EINVAL);
    CHECK_ERRNO(setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, b, 0), EINVAL);
    int big[2] = {5, 77};
    OK(setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, big, sizeof big));
    CHECK_EQ(geti(fd, TCP_KEEPCNT), 5);
    OK(close(fd));
}

/* ---- inherited by accept() -------------------------------------------- */

/* A listener with opt set to v: what an accepted connection reads. */
static void accepted_reads(int opt, int v, int want)
{
    for (int f = 0; f < 2; f++) {
        int l = (int)OK(socket(tl_domain(fams[f]), SOCK_STREAM, 0));
        struct sockaddr_storage ss;
        socklen_t sl = tl_loop(fams[f], &ss, 0);
        OK(bind(l, (struct sockaddr *)&ss, sl));
        tl_setint(l, IPPROTO_TCP, opt, v);
        OK(listen(l, 4));
        sl = tl_name(l, &ss);
        int c = (int)OK(socket(tl_domain(fams[f]), SOCK_STREAM, 0));
        OK(connect(c, (struct sockaddr *)&ss, sl));
        if (opt == TCP_DEFER_ACCEPT)
            CHECK_EQ(OK(send(c, "d", 1, 0)), 1);
        int s = (int)OK(accept(l, NULL, NULL));
        int got = geti(s, opt);
        CHECK_MSG(got == want, "%s: listener's TCP opt %d = %d: accepted reads %d, expected %d",
                  tl_fam_names[fams[f]], opt, v, got, want);
        OK(close(c));
        OK(close(s));
        OK(close(l));
    }
}

TEST(inherit_nodelay) { accepted_reads(TCP_NODELAY, 1, 1); }
TEST(inherit_cork) { accepted_reads(TCP_CORK, 1, 1); }
TEST(inherit_keepidle) { accepted_reads(TCP_KEEPIDLE, 100, 100); }
TEST(inherit_keepintvl) { accepted_reads(TCP_KEEPINTVL, 20, 20); }
TEST(inherit_keepcnt) { accepted_reads(TCP_KEEPCNT, 7, 7); }
TEST(inherit_syncnt) { accepted_reads(TCP_SYNCNT, 3, 3); }
TEST(inherit_linger2) { accepted_reads(TCP_LINGER2, 30, 30); }
TEST(inherit_window_clamp) { accepted_reads(TCP_WINDOW_CLAMP, 40000, 40000); }
TEST(inherit_user_timeout) { accepted_reads(TCP_USER_TIMEOUT, 1234, 1234); }
TEST(inherit_notsent_lowat) { accepted_reads(TCP_NOTSENT_LOWAT, 4000, 4000); }
TEST(inherit_thin_linear_timeouts) { accepted_reads(TCP_THIN_LINEAR_TIMEOUTS, 1, 1); }
TEST(inherit_inq) { accepted_reads(TCP_INQ, 1, 1); }
TEST(inherit_save_syn) { accepted_reads(TCP_SAVE_SYN, 1, 1); }
TEST(inherit_tx_delay) { accepted_reads(TCP_TX_DELAY, 10, 10); }
/* properties of the listening queue, not of connections */
TEST(inherit_not_defer_accept) { accepted_reads(TCP_DEFER_ACCEPT, 5, 0); }
TEST(inherit_not_fastopen) { accepted_reads(TCP_FASTOPEN, 5, 0); }

static int mss_overhead(void)
{
    /* the timestamp option takes 12 bytes of each segment when on */
    return sys_ipv4("tcp_timestamps") ? 12 : 0;
}

/* The listener's TCP_MAXSEG is the MSS it advertises: both ends then use
 * it, less the timestamp option. */
TEST_INET(maxseg_limits_both_ends)
{
    int l = (int)OK(socket(tl_domain(fam), SOCK_STREAM, 0));
    struct sockaddr_storage ss;
    socklen_t sl = tl_loop(fam, &ss, 0);
    OK(bind(l, (struct sockaddr *)&ss, sl));
    tl_setint(l, IPPROTO_TCP, TCP_MAXSEG, 1000);
    OK(listen(l, 4));
    sl = tl_name(l, &ss);
    int c = tcp_socket(fam);
    OK(connect(c, (struct sockaddr *)&ss, sl));
    int s = (int)OK(accept(l, NULL, NULL));
    CHECK_EQ(geti(c, TCP_MAXSEG), 1000 - mss_overhead());
    CHECK_EQ(geti(s, TCP_MAXSEG), 1000 - mss_overhead());
    struct tl_tcp_info ti;
    socklen_t tl = sizeof ti;
    OK(getsockopt(c, IPPROTO_TCP, TCP_INFO, &ti, &tl));
    CHECK_EQ(ti.tcpi_snd_mss, (uint32_t)(1000 - mss_overhead()));
    OK(close(c));
    OK(close(s));
    OK(close(l));
}

/* TCP_MAXSEG set on a listener after listen() limits the connections it
 * takes from then on: the listener's user_mss clamps each later SYN's MSS,
 * and the accepted socket inherits it. */
TEST_INET(maxseg_set_after_listen)
{
    int l = (int)OK(socket(tl_domain(fam), SOCK_STREAM, 0));
    struct sockaddr_storage ss;
    socklen_t sl = tl_loop(fam, &ss, 0);
    OK(bind(l, (struct sockaddr *)&ss, sl));
    OK(listen(l, 4));
    tl_setint(l, IPPROTO_TCP, TCP_MAXSEG, 1000);
    sl = tl_name(l, &ss);
    int c = tcp_socket(fam);
    OK(connect(c, (struct sockaddr *)&ss, sl));
    int s = (int)OK(accept(l, NULL, NULL));
    CHECK_EQ(geti(c, TCP_MAXSEG), 1000 - mss_overhead());
    CHECK_EQ(geti(s, TCP_MAXSEG), 1000 - mss_overhead());
    /* a lower limit set now reaches the next connection */
    tl_setint(l, IPPROTO_TCP, TCP_MAXSEG, 600);
    int c2 = tcp_socket(fam);
    OK(connect(c2, (struct sockaddr *)&ss, sl));
    int s2 = (int)OK(accept(l, NULL, NULL));
    CHECK_EQ(geti(c2, TCP_MAXSEG), 600 - mss_overhead());
    CHECK_EQ(geti(s2, TCP_MAXSEG), 600 - mss_overhead());
    CHECK_EQ(geti(s, TCP_MAXSEG), 1000 - mss_overhead());
    OK(close(c));
    OK(close(s));
    OK(close(c2));
    OK(close(s2));
    OK(close(l));
}

/* Without a limit, the MSS a loopback connection advertises follows lo's
 * MTU (IPv4 packets stop at 65535 bytes): less the IP and TCP headers and
 * the timestamp option. The MSS in use (TCP_MAXSEG, tcpi_snd_mss) is the
 * same value the kernel keeps in mss_cache, at most the advertised one
 * (the kernel also bounds it by half the peer's largest window). */
TEST_INET(maxseg_on_loopback_follows_mtu)
{
    long mtu = tl_sysctl("/sys/class/net/lo/mtu");
    long pmtu = fam == FAM_INET && mtu > 65535 ? 65535 : mtu;
    int hdrs = fam == FAM_INET ? 20 + 20 : 40 + 20;
    int c, s;
    tl_stream_pair(fam, &c, &s);
    struct tl_tcp_info ti;
    socklen_t tl = sizeof ti;
    OK(getsockopt(c, IPPROTO_TCP, TCP_INFO, &ti, &tl));
    CHECK_EQ(ti.tcpi_pmtu, (uint32_t)pmtu);
    CHECK_EQ(ti.tcpi_advmss, (uint32_t)(pmtu - hdrs - mss_overhead()));
    int mss = geti(c, TCP_MAXSEG);
    CHECK_EQ((uint32_t)mss, ti.tcpi_snd_mss);
    CHECK(mss >= 88 && (uint32_t)mss <= ti.tcpi_advmss);
    OK(close(c));
    OK(close(s));
}

/* ---- TCP_CONGESTION ---------------------------------------------------- */

static int cc_names(const char *file, char names[][16], int max)
{
    char line[512];
    tl_sysctl_str(file, line, sizeof line);
    int n = 0;
    for (char *save = NULL, *w = strtok_r(line, " \t", &save); w && n < max;
         w = strtok_r(NULL, " \t", &save))
        snprintf(names[n++], 16, "%s", w);
    return n;
}

static void cc_get(int fd, char *out)
{
    char buf[16];
    memset(buf, 0, sizeof buf);
    socklen_t l = sizeof buf;
    OK(getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, buf, &l));
    CHECK_EQ(l, 16); /* TCP_CA_NAME_MAX */
    memcpy(out, buf, 16);
}

TEST_INET(congestion_names_from_the_kernel)
{
    char avail[16][16], def[16], got[16];
    int n = cc_names("/proc/sys/net/ipv4/tcp_available_congestion_control", avail, 16);
    CHECK(n >= 1);
    tl_sysctl_str("/proc/sys/net/ipv4/tcp_congestion_control", def, sizeof def);
    int fd = tcp_socket(fam);
    cc_get(fd, got);
    CHECK_MSG(strcmp(got, def) == 0, "default '%s', expected '%s'", got, def);
    for (int i = 0; i < n; i++) {
        OK(setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, avail[i], (socklen_t)strlen(avail[i])));
        cc_get(fd, got);
        CHECK_MSG(strcmp(got, avail[i]) == 0, "set '%s', reads '%s'", avail[i], got);
    }
    CHECK_ERRNO(setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, "nosuchcc", 8), ENOENT);
    CHECK_ERRNO(setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, "reno", 0), EINVAL);
    /* a short buffer gets the name's first bytes */
    OK(setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, "reno", 4));
    char small[4];
    socklen_t sl = sizeof small;
    OK(getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, small, &sl));
    CHECK_EQ(sl, 2 + 2);
    CHECK(memcmp(small, "reno", 4) == 0);
    OK(close(fd));
}

TEST_INET(congestion_inherited_and_changed_when_connected)
{
    int l = (int)OK(socket(tl_domain(fam), SOCK_STREAM, 0));
    struct sockaddr_storage ss;
    socklen_t sl = tl_loop(fam, &ss, 0);
    OK(bind(l, (struct sockaddr *)&ss, sl));
    OK(setsockopt(l, IPPROTO_TCP, TCP_CONGESTION, "reno", 4));
    OK(listen(l, 4));
    sl = tl_name(l, &ss);
    int c = tcp_socket(fam);
    OK(connect(c, (struct sockaddr *)&ss, sl));
    int s = (int)OK(accept(l, NULL, NULL));
    char got[16];
    cc_get(s, got);
    CHECK_EQ(strcmp(got, "reno"), 0);
    /* TCP_CC_INFO: reno reports nothing */
    char info[64];
    socklen_t il = sizeof info;
    OK(getsockopt(s, IPPROTO_TCP, TCP_CC_INFO, info, &il));
    CHECK_EQ(il, 0);
    /* and on an open connection the algorithm can change */
    char def[16];
    tl_sysctl_str("/proc/sys/net/ipv4/tcp_congestion_control", def, sizeof def);
    OK(setsockopt(c, IPPROTO_TCP, TCP_CONGESTION, "reno", 4));
    cc_get(c, got);
    CHECK_EQ(strcmp(got, "reno"), 0);
    OK(setsockopt(c, IPPROTO_TCP, TCP_CONGESTION, def, (socklen_t)strlen(def)));
    cc_get(c, got);
    CHECK_EQ(strcmp(got, def), 0);
    OK(close(c));
    OK(close(s));
    OK(close(l));
}

static void cc_unprivileged(void *arg)
{
    (void)arg;
    char avail[16][16], allowed[16][16], got[16];
    int na = cc_names("/proc/sys/net/ipv4/tcp_available_congestion_control", avail, 16);
    int nl = cc_names("/proc/sys/net/ipv4/tcp_allowed_congestion_control", allowed, 16);
    int fd = tcp_socket(FAM_INET);
    for (int i = 0; i < na; i++) {
        int ok = 0;
        for (int j = 0; j < nl; j++)
            ok |= strcmp(avail[i], allowed[j]) == 0;
        if (ok) {
            OK(setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, avail[i],
                          (socklen_t)strlen(avail[i])));
            cc_get(fd, got);
            CHECK_EQ(strcmp(got, avail[i]), 0);
        } else {
            CHECK_ERRNO(setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, avail[i],
                                   (socklen_t)strlen(avail[i])),
                        EPERM);
        }
    }
    OK(close(fd));
}

TEST(congestion_unprivileged_only_allowed_names)
{
    if (!tl_has_cap(CAP_NET_ADMIN))
        t_skip("root", "needs CAP_NET_ADMIN to drop it");
    tl_in_child(cc_unprivileged, NULL, 1ULL << CAP_NET_ADMIN, -1, 10);
}

/* ---- TCP_INFO ----------------------------------------------------------- */

static void info(int fd, struct tl_tcp_info *ti)
{
    memset(ti, 0xa5, sizeof *ti);
    socklen_t l = sizeof *ti;
    OK(getsockopt(fd, IPPROTO_TCP, TCP_INFO, ti, &l));
    CHECK_EQ(l, sizeof *ti); /* the kernel's is at least as large */
}

/* Until everything fd sent is acknowledged (bounded). */
static void wait_acked(int fd)
{
    long deadline = tl_now_ms() + 5000;
    struct tl_tcp_info ti;
    for (;;) {
        memset(&ti, 0, sizeof ti);
        socklen_t l = sizeof ti;
        OK(getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &l));
        if (ti.tcpi_unacked == 0 && ti.tcpi_notsent_bytes == 0)
            break;
        CHECK(tl_now_ms() < deadline);
        tl_poll1(fd, 0, 10);
    }
}

TEST_INET(tcp_info_established)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    static char buf[10000];
    tl_fill(buf, sizeof buf, 5);
    CHECK_EQ(tl_write_all(c, buf, sizeof buf), (ssize_t)sizeof buf);
    CHECK_EQ(tl_read_all(s, buf, sizeof buf), (ssize_t)sizeof buf);
    CHECK_EQ(tl_write_all(s, buf, 300), 300);
    CHECK_EQ(tl_read_all(c, buf, 300), 300);
    wait_acked(c);
    wait_acked(s);
    struct tl_tcp_info ti;
    info(c, &ti);
    CHECK_EQ(ti.tcpi_state, ST_ESTABLISHED);
    CHECK_EQ(ti.tcpi_ca_state, 0);
    CHECK_EQ(ti.tcpi_retransmits, 0);
    CHECK_EQ(ti.tcpi_probes, 0);
    CHECK_EQ(ti.tcpi_backoff, 0);
    int opts = (sys_ipv4("tcp_timestamps") ? 1 : 0) | (sys_ipv4("tcp_sack") ? 2 : 0) |
               (sys_ipv4("tcp_window_scaling") ? 4 : 0);
    CHECK_EQ(ti.tcpi_options & 7, opts); /* TCPI_OPT_TIMESTAMPS|SACK|WSCALE */
    CHECK_EQ(ti.tcpi_snd_mss, (uint32_t)geti(c, TCP_MAXSEG));
    CHECK(ti.tcpi_rcv_mss > 0);
    CHECK_EQ(ti.tcpi_unacked, 0);
    CHECK_EQ(ti.tcpi_sacked, 0);
    CHECK_EQ(ti.tcpi_lost, 0);
    CHECK_EQ(ti.tcpi_retrans, 0);
    CHECK_EQ(ti.tcpi_total_retrans, 0);
    CHECK(ti.tcpi_rtt > 0);           /* measured round trips */
    CHECK(ti.tcpi_rtt < 1000000);     /* loopback: well under a second */
    CHECK(ti.tcpi_rto >= 200000);     /* TCP_RTO_MIN */
    CHECK(ti.tcpi_snd_cwnd >= 1);
    /* the connecting end counts the SYN-ACK's acknowledgement of its SYN */
    CHECK_EQ(ti.tcpi_bytes_acked, sizeof buf + 1);
    CHECK_EQ(ti.tcpi_bytes_received, 300);
    CHECK_EQ(ti.tcpi_bytes_sent, sizeof buf);
    CHECK_EQ(ti.tcpi_bytes_retrans, 0);
    CHECK_EQ(ti.tcpi_notsent_bytes, 0);
    CHECK(ti.tcpi_data_segs_out >= 1);
    CHECK(ti.tcpi_segs_out >= ti.tcpi_data_segs_out + 1); /* and the SYN */
    CHECK(ti.tcpi_data_segs_in >= 1);
    CHECK(ti.tcpi_segs_in >= ti.tcpi_data_segs_in);
    CHECK(ti.tcpi_snd_wnd > 0);
    CHECK(ti.tcpi_rcv_space > 0);
    CHECK(ti.tcpi_min_rtt > 0 && ti.tcpi_min_rtt <= ti.tcpi_rtt * 8 + 1000000);
    CHECK(ti.tcpi_delivered >= ti.tcpi_data_segs_out);
    /* the accepting end counts the other way round */
    info(s, &ti);
    CHECK_EQ(ti.tcpi_state, ST_ESTABLISHED);
    CHECK_EQ(ti.tcpi_bytes_received, sizeof buf);
    CHECK_EQ(ti.tcpi_bytes_acked, 300);
    CHECK_EQ(ti.tcpi_bytes_sent, 300);
    CHECK_EQ(ti.tcpi_unacked, 0);
    OK(close(c));
    OK(close(s));
}

TEST_INET(tcp_info_states)
{
    struct tl_tcp_info ti;
    int fd = tcp_socket(fam);
    info(fd, &ti);
    CHECK_EQ(ti.tcpi_state, ST_CLOSE);
    OK(close(fd));
    /* a listener: unacked = connections waiting, sacked = the backlog */
    int l = tl_listener(fam, 5);
    info(l, &ti);
    CHECK_EQ(ti.tcpi_state, ST_LISTEN);
    CHECK_EQ(ti.tcpi_unacked, 0);
    CHECK_EQ(ti.tcpi_sacked, 5);
    struct sockaddr_storage ss;
    socklen_t sl = tl_name(l, &ss);
    int c = tcp_socket(fam);
    OK(connect(c, (struct sockaddr *)&ss, sl));
    CHECK(tl_poll1(l, POLLIN, 5000) & POLLIN);
    info(l, &ti);
    CHECK_EQ(ti.tcpi_unacked, 1);
    int s = (int)OK(accept(l, NULL, NULL));
    info(l, &ti);
    CHECK_EQ(ti.tcpi_unacked, 0);
    /* the peer closed: CLOSE_WAIT; we shut down writing and it was
     * acknowledged: FIN_WAIT2 */
    OK(shutdown(c, SHUT_WR));
    char b;
    CHECK_EQ(OK(recv(s, &b, 1, 0)), 0);
    info(s, &ti);
    CHECK_EQ(ti.tcpi_state, ST_CLOSE_WAIT);
    long deadline = tl_now_ms() + 5000;
    do {
        info(c, &ti);
        if (ti.tcpi_state == ST_FIN_WAIT2)
            break;
        tl_poll1(c, 0, 10);
    } while (tl_now_ms() < deadline);
    CHECK_EQ(ti.tcpi_state, ST_FIN_WAIT2);
    OK(close(c));
    OK(close(s));
    OK(close(l));
}

TEST(tcp_info_lengths)
{
    int c, s;
    tl_stream_pair(FAM_INET, &c, &s);
    unsigned char b[512];
    memset(b, 0xee, sizeof b);
    socklen_t l = 1;
    OK(getsockopt(c, IPPROTO_TCP, TCP_INFO, b, &l));
    CHECK_EQ(l, 1);
    CHECK_EQ(b[0], ST_ESTABLISHED);
    CHECK_EQ(b[1], 0xee);
    l = 0;
    OK(getsockopt(c, IPPROTO_TCP, TCP_INFO, b, &l));
    CHECK_EQ(l, 0);
    /* a large buffer: the kernel's whole struct, at least what the
     * headers here know */
    l = sizeof b;
    OK(getsockopt(c, IPPROTO_TCP, TCP_INFO, b, &l));
    CHECK(l >= sizeof(struct tl_tcp_info));
    CHECK(l < sizeof b);
    l = (socklen_t)-1;
    CHECK_ERRNO(getsockopt(c, IPPROTO_TCP, TCP_INFO, b, &l), EINVAL);
    OK(close(c));
    OK(close(s));
}

/* ---- TCP_CORK, MSG_MORE, TCP_NODELAY ----------------------------------- */

static int inq(int fd)
{
    int n = -1;
    OK(ioctl(fd, FIONREAD, &n)); /* = SIOCINQ */
    return n;
}

static uint32_t data_segs_in(int fd)
{
    struct tl_tcp_info ti;
    info(fd, &ti);
    return ti.tcpi_data_segs_in;
}

/* Reads exactly n bytes (blocking, bounded). */
static void read_n(int fd, char *buf, size_t n)
{
    size_t got = 0;
    long deadline = tl_now_ms() + 10000;
    while (got < n) {
        CHECK(tl_now_ms() < deadline);
        if (!(tl_poll1(fd, POLLIN, 1000) & POLLIN))
            continue;
        ssize_t r = OK(recv(fd, buf + got, n - got, MSG_DONTWAIT));
        CHECK(r > 0);
        got += (size_t)r;
    }
}

/* The kernel holds corked partial data (for at most 200 ms: the check is
 * made microseconds after the send) until uncorked. */
TEST_INET(cork_holds_partial_data_until_uncork)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    tl_setint(c, IPPROTO_TCP, TCP_CORK, 1);
    CHECK_EQ(OK(send(c, "abc", 3, 0)), 3);
    CHECK_EQ(OK(send(c, "def", 3, 0)), 3);
    CHECK_EQ(OK(send(c, "ghi", 3, 0)), 3);
    CHECK_EQ(inq(s), 0);
    CHECK_EQ(tl_poll1(s, POLLIN, 0), 0);
    tl_setint(c, IPPROTO_TCP, TCP_CORK, 0);
    char buf[9];
    read_n(s, buf, 9);
    CHECK(memcmp(buf, "abcdefghi", 9) == 0);
    OK(close(c));
    OK(close(s));
}

/* ... and sends it as one segment (the peer's TCP_INFO counts it). */
TEST_INET(cork_coalesces_into_one_segment)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    tl_setint(c, IPPROTO_TCP, TCP_CORK, 1);
    uint32_t segs = data_segs_in(s);
    CHECK_EQ(OK(send(c, "abc", 3, 0)), 3);
    CHECK_EQ(OK(send(c, "def", 3, 0)), 3);
    CHECK_EQ(OK(send(c, "ghi", 3, 0)), 3);
    tl_setint(c, IPPROTO_TCP, TCP_CORK, 0);
    char buf[9];
    read_n(s, buf, 9);
    CHECK_EQ(data_segs_in(s) - segs, 1);
    OK(close(c));
    OK(close(s));
}

/* Corked data that is never uncorked goes out on its own (tcp(7): a
 * 200 ms ceiling). */
TEST_INET(cork_sends_partial_data_by_itself)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    tl_setint(c, IPPROTO_TCP, TCP_CORK, 1);
    CHECK_EQ(OK(send(c, "corked", 6, 0)), 6);
    char buf[6];
    read_n(s, buf, 6);
    CHECK(memcmp(buf, "corked", 6) == 0);
    CHECK_EQ(geti(c, TCP_CORK), 1);
    OK(close(c));
    OK(close(s));
}

/* Corked, whole segments go out at once; only the partial tail waits. */
TEST_INET(cork_sends_full_segments)
{
    int l = (int)OK(socket(tl_domain(fam), SOCK_STREAM, 0));
    struct sockaddr_storage ss;
    socklen_t sl = tl_loop(fam, &ss, 0);
    OK(bind(l, (struct sockaddr *)&ss, sl));
    tl_setint(l, IPPROTO_TCP, TCP_MAXSEG, 1000);
    OK(listen(l, 4));
    sl = tl_name(l, &ss);
    int c = tcp_socket(fam);
    OK(connect(c, (struct sockaddr *)&ss, sl));
    int s = (int)OK(accept(l, NULL, NULL));
    int mss = geti(c, TCP_MAXSEG);
    tl_setint(c, IPPROTO_TCP, TCP_CORK, 1);
    static char buf[4000];
    tl_fill(buf, sizeof buf, 1);
    size_t n = (size_t)(3 * mss + 36);
    CHECK_EQ(OK(send(c, buf, n, 0)), (long)n);
    long deadline = tl_now_ms() + 5000;
    int q;
    while ((q = inq(s)) == 0 && tl_now_ms() < deadline)
        tl_poll1(s, POLLIN, 1000);
    CHECK_EQ(q, 3 * mss); /* the 36-byte tail is held */
    tl_setint(c, IPPROTO_TCP, TCP_CORK, 0);
    static char got[4000];
    read_n(s, got, n);
    CHECK(memcmp(got, buf, n) == 0);
    OK(close(c));
    OK(close(s));
    OK(close(l));
}

/* TCP_NODELAY set while corked pushes what is queued; the cork stays. */
TEST_INET(nodelay_pushes_corked_data)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    tl_setint(c, IPPROTO_TCP, TCP_CORK, 1);
    CHECK_EQ(OK(send(c, "push", 4, 0)), 4);
    CHECK_EQ(inq(s), 0);
    tl_setint(c, IPPROTO_TCP, TCP_NODELAY, 1);
    char buf[4];
    read_n(s, buf, 4);
    CHECK(memcmp(buf, "push", 4) == 0);
    CHECK_EQ(geti(c, TCP_CORK), 1);
    CHECK_EQ(geti(c, TCP_NODELAY), 1);
    OK(close(c));
    OK(close(s));
}

TEST_INET(msg_more_holds_partial_data)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    tl_setint(c, IPPROTO_TCP, TCP_NODELAY, 1); /* MSG_MORE wins over it */
    CHECK_EQ(OK(send(c, "head", 4, MSG_MORE)), 4);
    CHECK_EQ(OK(send(c, "er: ", 4, MSG_MORE)), 4);
    CHECK_EQ(inq(s), 0);
    CHECK_EQ(tl_poll1(s, POLLIN, 0), 0);
    CHECK_EQ(OK(send(c, "body", 4, 0)), 4);
    char buf[12];
    read_n(s, buf, 12);
    CHECK(memcmp(buf, "header: body", 12) == 0);
    OK(close(c));
    OK(close(s));
}

TEST_INET(msg_more_coalesces_into_one_segment)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    tl_setint(c, IPPROTO_TCP, TCP_NODELAY, 1);
    uint32_t segs = data_segs_in(s);
    CHECK_EQ(OK(send(c, "head", 4, MSG_MORE)), 4);
    CHECK_EQ(OK(send(c, "er: ", 4, MSG_MORE)), 4);
    CHECK_EQ(OK(send(c, "body", 4, 0)), 4);
    char buf[12];
    read_n(s, buf, 12);
    CHECK_EQ(data_segs_in(s) - segs, 1);
    OK(close(c));
    OK(close(s));
}

/* Corked bytes are the socket's, not a process's: a fork child that
 * closes its copy sends none of them, and the parent's later bytes follow
 * them once, in order, when the cork comes off. */
TEST_INET(cork_survives_a_fork_childs_close)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    tl_setint(c, IPPROTO_TCP, TCP_CORK, 1);
    CHECK_EQ(OK(send(c, "ab", 2, 0)), 2);
    pid_t pid = (pid_t)OK(fork());
    if (pid == 0) {
        close(c);
        close(s);
        _exit(0);
    }
    int st;
    CHECK_EQ(OK(waitpid(pid, &st, 0)), pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK_EQ(OK(send(c, "cd", 2, 0)), 2);
    tl_setint(c, IPPROTO_TCP, TCP_CORK, 0);
    OK(shutdown(c, SHUT_WR));
    char buf[8];
    size_t got = 0;
    long deadline = tl_now_ms() + 5000;
    for (;;) {
        CHECK(tl_now_ms() < deadline);
        tl_poll1(s, POLLIN, 1000);
        ssize_t n = recv(s, buf + got, sizeof buf - got, MSG_DONTWAIT);
        if (n == 0)
            break;
        if (n < 0) {
            CHECK_EQ(errno, EAGAIN);
            continue;
        }
        got += (size_t)n;
    }
    CHECK_EQ(got, 4);
    CHECK(memcmp(buf, "abcd", 4) == 0);
    OK(close(c));
    OK(close(s));
}

struct corked_sender {
    int fd;
    long sent;
};

static void *send_corked_4m(void *arg)
{
    struct corked_sender *cs = arg;
    static char big[4 << 20];
    cs->sent = (long)send(cs->fd, big, sizeof big, 0);
    return NULL;
}

/* A corked send blocked for room holds up no other call on the socket:
 * poll, TCP_INFO, SIOCOUTQ and setting TCP_NODELAY answer while it
 * waits (the reader only reads after them; a call that waited for the
 * send would never return, and the watchdog fails the case). */
TEST_INET(blocked_corked_send_leaves_other_calls_free)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    tl_setint(c, IPPROTO_TCP, TCP_CORK, 1);
    struct corked_sender cs = {c, -2};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, send_corked_4m, &cs), 0);
    /* the sender fills what the peer takes, then blocks */
    long deadline = tl_now_ms() + 10000;
    while (inq(s) == 0) {
        CHECK(tl_now_ms() < deadline);
        tl_poll1(s, POLLIN, 100);
    }
    tl_sleep_ms(50);
    tl_poll1(c, POLLOUT, 0);
    struct tl_tcp_info ti;
    info(c, &ti);
    CHECK_EQ(ti.tcpi_state, ST_ESTABLISHED);
    int q = -1;
    OK(ioctl(c, SIOCOUTQ, &q));
    CHECK(q >= 0);
    tl_setint(c, IPPROTO_TCP, TCP_NODELAY, 1);
    static char buf[65536];
    long got = 0;
    while (got < (4 << 20)) {
        CHECK(tl_now_ms() < deadline + 20000);
        ssize_t n = recv(s, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0)
            got += n;
        else
            tl_poll1(s, POLLIN, 100);
    }
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_EQ(cs.sent, 4 << 20);
    CHECK_EQ(got, 4 << 20);
    OK(close(c));
    OK(close(s));
}

TEST_INET(msg_more_alone_is_sent_by_itself)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    CHECK_EQ(OK(send(c, "more", 4, MSG_MORE)), 4);
    char buf[4];
    read_n(s, buf, 4);
    CHECK(memcmp(buf, "more", 4) == 0);
    OK(close(c));
    OK(close(s));
}

TEST_INET(nodelay_sends_each_write)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    tl_setint(c, IPPROTO_TCP, TCP_NODELAY, 1);
    uint32_t segs = data_segs_in(s);
    char buf[3];
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(OK(send(c, "n", 1, 0)), 1);
        read_n(s, buf + i, 1);
    }
    CHECK_EQ(data_segs_in(s) - segs, 3);
    OK(close(c));
    OK(close(s));
}

/* ---- TCP_DEFER_ACCEPT ---------------------------------------------------- */

/* A loopback listener with TCP_DEFER_ACCEPT 1 s (backlog 4), and its
 * address. */
static int deferring_listener(int fam, struct sockaddr_storage *ss, socklen_t *sl)
{
    int l = (int)OK(socket(tl_domain(fam), SOCK_STREAM, 0));
    *sl = tl_loop(fam, ss, 0);
    OK(bind(l, (struct sockaddr *)ss, *sl));
    tl_setint(l, IPPROTO_TCP, TCP_DEFER_ACCEPT, 1);
    OK(listen(l, 4));
    *sl = tl_name(l, ss);
    return l;
}

TEST_INET(defer_accept_waits_for_data)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    int l = deferring_listener(fam, &ss, &sl);
    int c = tcp_socket(fam);
    OK(connect(c, (struct sockaddr *)&ss, sl)); /* the client's side is open */
    CHECK_EQ(tl_poll1(l, POLLIN, 0), 0);        /* but nothing to accept yet */
    OK(fcntl(l, F_SETFL, O_NONBLOCK));
    CHECK_ERRNO(accept(l, NULL, NULL), EAGAIN);
    CHECK_EQ(OK(send(c, "request", 7, 0)), 7);
    CHECK(tl_poll1(l, POLLIN, 5000) & POLLIN);
    int s = (int)OK(accept(l, NULL, NULL));
    char buf[8];
    CHECK_EQ(OK(recv(s, buf, sizeof buf, MSG_DONTWAIT)), 7); /* already there */
    OK(close(s));
    OK(close(c));
    OK(close(l));
}

/* The same through epoll: a set watching the listener reports nothing
 * until the connection's first bytes, then EPOLLIN. */
TEST_INET(defer_accept_epoll_waits_for_data)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    int l = deferring_listener(fam, &ss, &sl);
    int ep = (int)OK(epoll_create1(EPOLL_CLOEXEC));
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = l};
    OK(epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev));
    int c = tcp_socket(fam);
    OK(connect(c, (struct sockaddr *)&ss, sl));
    struct epoll_event out;
    CHECK_EQ(OK(epoll_wait(ep, &out, 1, 100)), 0);
    CHECK_EQ(OK(send(c, "request", 7, 0)), 7);
    CHECK_EQ(OK(epoll_wait(ep, &out, 1, 5000)), 1);
    CHECK(out.events & EPOLLIN);
    CHECK_EQ(out.data.fd, l);
    int s = (int)OK(accept(l, NULL, NULL));
    char buf[8];
    CHECK_EQ(OK(recv(s, buf, sizeof buf, MSG_DONTWAIT)), 7);
    OK(close(s));
    OK(close(c));
    OK(close(ep));
    OK(close(l));
}

/* A connection that never sends is accepted anyway once the deferral
 * (here 1 s: one SYN-ACK retransmit) has run out. */
TEST_INET(defer_accept_gives_up_waiting)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    int l = deferring_listener(fam, &ss, &sl);
    int c = tcp_socket(fam);
    OK(connect(c, (struct sockaddr *)&ss, sl));
    CHECK(tl_poll1(l, POLLIN, 15000) & POLLIN);
    int s = (int)OK(accept(l, NULL, NULL));
    CHECK_EQ(OK(send(s, "late", 4, 0)), 4);
    char buf[4];
    read_n(c, buf, 4);
    OK(close(s));
    OK(close(c));
    OK(close(l));
}

/* ---- TCP_NOTSENT_LOWAT --------------------------------------------------- */

/* Bytes a non-blocking writer gets queued before EAGAIN, to a peer that
 * reads nothing, with TCP_NOTSENT_LOWAT lowat (0: unset). */
static long queued_before_eagain(int fam, int lowat, int *c_out, int *s_out)
{
    int l = (int)OK(socket(tl_domain(fam), SOCK_STREAM, 0));
    struct sockaddr_storage ss;
    socklen_t sl = tl_loop(fam, &ss, 0);
    OK(bind(l, (struct sockaddr *)&ss, sl));
    tl_setint(l, SOL_SOCKET, SO_RCVBUF, 65536);
    OK(listen(l, 4));
    sl = tl_name(l, &ss);
    int c = tcp_socket(fam);
    tl_setint(c, SOL_SOCKET, SO_SNDBUF, 1 << 20);
    if (lowat)
        tl_setint(c, IPPROTO_TCP, TCP_NOTSENT_LOWAT, lowat);
    OK(connect(c, (struct sockaddr *)&ss, sl));
    int s = (int)OK(accept(l, NULL, NULL));
    OK(close(l));
    OK(fcntl(c, F_SETFL, O_NONBLOCK));
    long total = tl_fill_sndbuf(c, 100);
    *c_out = c;
    *s_out = s;
    return total;
}

TEST_INET(notsent_lowat_limits_unsent_bytes)
{
    int c1, s1, c2, s2;
    long plain = queued_before_eagain(fam, 0, &c1, &s1);
    long low = queued_before_eagain(fam, 1, &c2, &s2);
    /* with the limit, little more than what the peer's window took gets
     * queued; without it, the whole send buffer fills */
    CHECK_MSG(low < plain, "queued %ld with TCP_NOTSENT_LOWAT 1, %ld without", low, plain);
    struct tl_tcp_info ti;
    info(c2, &ti);
    CHECK(ti.tcpi_notsent_bytes > 0);
    CHECK_EQ(tl_poll1(c2, POLLOUT, 0), 0);
    /* once the peer reads everything the writer is writable again */
    static char buf[65536];
    long got = 0, deadline = tl_now_ms() + 10000;
    short ev = 0;
    while (!(ev & POLLOUT)) {
        CHECK(tl_now_ms() < deadline);
        ssize_t n = recv(s2, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0)
            got += n;
        ev = tl_poll1(c2, POLLOUT, 10);
    }
    CHECK(got > 0);
    OK(close(c1));
    OK(close(s1));
    OK(close(c2));
    OK(close(s2));
}

/* Bytes a send accepted beyond the peer's window still reach it, before
 * the end-of-stream, when the writer then shuts down (how = SHUT_WR) or
 * closes (how = -1): the FIN waits behind them (tcp_send_fin). */
static void queued_bytes_then_end(int fam, int how)
{
    int c, s;
    long total = queued_before_eagain(fam, 0, &c, &s);
    CHECK(tl_getint(c, SOL_SOCKET, SO_SNDBUF) > 0);
    int outq = -1;
    OK(ioctl(c, SIOCOUTQNSD, &outq));
    CHECK(outq > 0); /* some are still the writer's */
    if (how < 0)
        OK(close(c));
    else
        OK(shutdown(c, how));
    static char buf[65536];
    long got = 0, deadline = tl_now_ms() + 20000;
    for (;;) {
        CHECK(tl_now_ms() < deadline);
        ssize_t n = recv(s, buf, sizeof buf, MSG_DONTWAIT);
        if (n == 0)
            break;
        if (n > 0) {
            got += n;
            continue;
        }
        CHECK_EQ(errno, EAGAIN);
        tl_poll1(s, POLLIN, 100);
    }
    CHECK_EQ(got, total);
    if (how >= 0)
        OK(close(c));
    OK(close(s));
}

TEST_INET(queued_bytes_go_before_shutdowns_fin) { queued_bytes_then_end(fam, SHUT_WR); }
TEST_INET(queued_bytes_go_before_closes_fin) { queued_bytes_then_end(fam, -1); }

/* ---- TCP_INQ ---------------------------------------------------------- */

static int recv_inq(int fd, char *buf, size_t n, int *inq_out, int *flags)
{
    struct iovec iov = {buf, n};
    union {
        char b[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } cbuf;
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf.b,
                       .msg_controllen = sizeof cbuf.b};
    int r = (int)OK(recvmsg(fd, &m, 0));
    *inq_out = -1;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm)) {
        CHECK_EQ(cm->cmsg_level, SOL_TCP);
        CHECK_EQ(cm->cmsg_type, TCP_CM_INQ);
        CHECK_EQ(cm->cmsg_len, CMSG_LEN(sizeof(int)));
        memcpy(inq_out, CMSG_DATA(cm), sizeof(int));
    }
    *flags = m.msg_flags;
    return r;
}

TEST_INET(inq_cmsg_reports_bytes_left)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    char buf[16];
    int left, flags;
    CHECK_EQ(OK(send(c, "0123456789", 10, 0)), 10);
    long deadline = tl_now_ms() + 5000;
    while (inq(s) < 10 && tl_now_ms() < deadline)
        tl_poll1(s, POLLIN, 100);
    /* off: no cmsg */
    CHECK_EQ(recv_inq(s, buf, 2, &left, &flags), 2);
    CHECK_EQ(left, -1);
    tl_setint(s, IPPROTO_TCP, TCP_INQ, 1);
    CHECK_EQ(recv_inq(s, buf, 3, &left, &flags), 3);
    CHECK_EQ(left, 5);
    CHECK_EQ(recv_inq(s, buf, sizeof buf, &left, &flags), 5);
    CHECK_EQ(left, 0);
    CHECK_EQ(flags & MSG_CTRUNC, 0);
    OK(close(c));
    OK(close(s));
}

/* ---- TCP_FASTOPEN ------------------------------------------------------- */

TEST_INET(fastopen_connect_defers_to_first_write)
{
    long tfo = sys_ipv4("tcp_fastopen");
    if (!(tfo & 1))
        t_skip("tcp_fastopen", "net.ipv4.tcp_fastopen has no client bit (%ld)", tfo);
    int l = (int)OK(socket(tl_domain(fam), SOCK_STREAM, 0));
    struct sockaddr_storage ss;
    socklen_t sl = tl_loop(fam, &ss, 0);
    OK(bind(l, (struct sockaddr *)&ss, sl));
    tl_setint(l, IPPROTO_TCP, TCP_FASTOPEN, 5);
    OK(listen(l, 4));
    sl = tl_name(l, &ss);
    int c = tcp_socket(fam);
    tl_setint(c, IPPROTO_TCP, TCP_FASTOPEN_CONNECT, 1);
    OK(connect(c, (struct sockaddr *)&ss, sl)); /* returns at once */
    CHECK_EQ(OK(write(c, "tfo-data", 8)), 8);
    int s = (int)OK(accept(l, NULL, NULL));
    char buf[8];
    read_n(s, buf, 8);
    CHECK(memcmp(buf, "tfo-data", 8) == 0);
    OK(close(c));
    OK(close(s));
    OK(close(l));
}

TEST_INET(msg_fastopen_connects_and_sends)
{
    long tfo = sys_ipv4("tcp_fastopen");
    int l = tl_listener(fam, 4);
    struct sockaddr_storage ss;
    socklen_t sl = tl_name(l, &ss);
    int c = tcp_socket(fam);
    if (!(tfo & 1)) {
        CHECK_ERRNO(sendto(c, "x", 1, MSG_FASTOPEN, (struct sockaddr *)&ss, sl), EOPNOTSUPP);
    } else {
        CHECK_EQ(OK(sendto(c, "hello", 5, MSG_FASTOPEN, (struct sockaddr *)&ss, sl)), 5);
        int s = (int)OK(accept(l, NULL, NULL));
        char buf[5];
        read_n(s, buf, 5);
        CHECK(memcmp(buf, "hello", 5) == 0);
        struct sockaddr_storage peer;
        socklen_t pl = sizeof peer;
        OK(getpeername(c, (struct sockaddr *)&peer, &pl));
        CHECK_EQ(tl_port(&peer), tl_port(&ss));
        OK(close(s));
    }
    OK(close(c));
    OK(close(l));
}

/* ---- TCP_SAVED_SYN ------------------------------------------------------ */

TEST_INET(saved_syn_gives_the_syn_headers)
{
    int l = (int)OK(socket(tl_domain(fam), SOCK_STREAM, 0));
    struct sockaddr_storage ss;
    socklen_t sl = tl_loop(fam, &ss, 0);
    OK(bind(l, (struct sockaddr *)&ss, sl));
    tl_setint(l, IPPROTO_TCP, TCP_SAVE_SYN, 1);
    OK(listen(l, 4));
    sl = tl_name(l, &ss);
    int c = tcp_socket(fam);
    OK(connect(c, (struct sockaddr *)&ss, sl));
    int s = (int)OK(accept(l, NULL, NULL));
    unsigned char syn[512];
    socklen_t n = 10;
    /* too small: EINVAL, and the length needed */
    CHECK_ERRNO(getsockopt(s, IPPROTO_TCP, TCP_SAVED_SYN, syn, &n), EINVAL);
    CHECK(n > 10);
    socklen_t need = n;
    n = sizeof syn;
    OK(getsockopt(s, IPPROTO_TCP, TCP_SAVED_SYN, syn, &n));
    CHECK_EQ(n, need);
    unsigned char *tcp;
    if (fam == FAM_INET) {
        CHECK_EQ(syn[0] >> 4, 4);
        CHECK_EQ(syn[9], IPPROTO_TCP);
        tcp = syn + (syn[0] & 15) * 4;
    } else {
        CHECK_EQ(syn[0] >> 4, 6);
        CHECK_EQ(syn[6], IPPROTO_TCP); /* no extension header on loopback */
        tcp = syn + 40;
    }
    CHECK_EQ(tcp[2] << 8 | tcp[3], tl_port(&ss)); /* destination port */
    CHECK_EQ(tcp[13] & 0x12, 0x02);               /* SYN, no ACK */
    CHECK_EQ((long)(tcp - syn) + (tcp[12] >> 4) * 4, (long)n);
    /* read once: then it is gone */
    n = sizeof syn;
    OK(getsockopt(s, IPPROTO_TCP, TCP_SAVED_SYN, syn, &n));
    CHECK_EQ(n, 0);
    OK(close(c));
    OK(close(s));
    OK(close(l));
}

/* ---- options on the wrong socket ---------------------------------------- */

TEST_INET(tcp_level_on_udp_socket)
{
    int u = (int)OK(socket(tl_domain(fam), SOCK_DGRAM, 0));
    int v = 1;
    socklen_t l = sizeof v;
    CHECK_ERRNO(setsockopt(u, IPPROTO_TCP, TCP_NODELAY, &v, sizeof v), ENOPROTOOPT);
    /* getsockopt: ip_getsockopt's EOPNOTSUPP on IPv4, ipv6_getsockopt's
     * ENOPROTOOPT on IPv6 */
    int e = fam == FAM_INET ? EOPNOTSUPP : ENOPROTOOPT;
    CHECK_ERRNO(getsockopt(u, IPPROTO_TCP, TCP_NODELAY, &v, &l), e);
    CHECK_ERRNO(getsockopt(u, IPPROTO_TCP, TCP_INFO, &v, &l), e);
    OK(close(u));
}

/*
 * testlib.h - a tiny test harness for the libuserspacesock C tests.
 *
 * The same sources are built against the kernel's sockets (the reference)
 * and against libuserspacesock, so this file includes plain POSIX/Linux
 * headers only, never <userspacesock.h>.
 *
 *   TEST(name) { ... }            a test case, run once
 *   TEST_FAM(name) { ... fam ... } a test case run once per address family
 *                                  (inet, inet6, unix pathname, unix abstract)
 *   CHECK(cond)                    fails the case, printing file:line, cond, errno
 *   CHECK_EQ(a, b)                 fails printing both values
 *   CHECK_ERRNO(call, E)           call must return -1 with errno == E
 *   OK(call)                       call must not return -1; yields its value
 *   t_skip(NAME, fmt, ...)         the case cannot run here (a missing
 *                                  privilege, program or resource): see below
 *
 * A failing CHECK in the test's own thread ends the case (longjmp); in any
 * other thread it marks the case failed and ends that thread (pthread_exit).
 * Each case runs under an alarm() watchdog (TL_TIMEOUT seconds, default 20):
 * a hang prints the case as failed and exits the program.
 * The program always ends with a line "N passed, N failed, N skipped".
 *
 * t_skip follows the skip convention of tests/README.md: it prints
 * "SKIP NAME: reason", appends "c-tests VARIANT/PROG CASE: NAME: reason" to
 * $USOCK_SKIP_LOG if set, and ends the case (like a failing CHECK). The case
 * counts as skipped if $ALLOW_SKIP (space- or comma-separated) names NAME or
 * "all", and as FAILED otherwise: a check that could not run is not a pass.
 */
#ifndef USOCK_TESTLIB_H
#define USOCK_TESTLIB_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* ---- registration ---------------------------------------------------- */

enum tl_fam { FAM_INET, FAM_INET6, FAM_UNIX, FAM_ABSTRACT, FAM_COUNT };

typedef void (*tl_fn)(void);
typedef void (*tl_fam_fn)(int fam);

void tl_register(const char *name, tl_fn fn);
void tl_register_fam(const char *name, tl_fam_fn fn);

#define TEST(name)                                                            \
    static void name(void);                                                   \
    __attribute__((constructor)) static void tl_reg_##name(void)              \
    {                                                                         \
        tl_register(#name, name);                                             \
    }                                                                         \
    static void name(void)

/* Runs once for each of FAM_INET, FAM_INET6, FAM_UNIX, FAM_ABSTRACT; the case
 * is reported as name/inet, name/inet6, name/unix, name/abstract. */
#define TEST_FAM(name)                                                        \
    static void name(int fam);                                                \
    __attribute__((constructor)) static void tl_reg_##name(void)              \
    {                                                                         \
        tl_register_fam(#name, name);                                         \
    }                                                                         \
    static void name(int fam)

/* AF_UNIX cases run once per way of making a connected pair: from
 * socketpair(), through a pathname listener/receiver, through an abstract
 * one; reported as name/pair, name/path, name/abstract. */
enum tl_unix_how { UX_PAIR, UX_PATH, UX_ABSTRACT, UX_COUNT };
extern const char *const tl_unix_names[UX_COUNT];
void tl_register_unix(const char *name, tl_fam_fn fn);

/* Once per type (stream, dgram, seqpacket) and way (as TEST_UNIX):
 * name/stream/pair ... name/seqpacket/abstract; `type` is the SOCK_ type. */
typedef void (*tl_unix_fn)(int how, int type);
extern const int tl_unix_types[3];
void tl_register_unix_types(const char *name, tl_unix_fn fn);

#define TEST_UNIX_TYPES(name)                                                 \
    static void name(int how, int type);                                      \
    __attribute__((constructor)) static void tl_reg_##name(void)              \
    {                                                                         \
        tl_register_unix_types(#name, name);                                  \
    }                                                                         \
    static void name(int how, int type)

#define TEST_UNIX(name)                                                       \
    static void name(int how);                                                \
    __attribute__((constructor)) static void tl_reg_##name(void)              \
    {                                                                         \
        tl_register_unix(#name, name);                                        \
    }                                                                         \
    static void name(int how)

/* Runs once for FAM_INET and once for FAM_INET6 (reported as name/inet and
 * name/inet6): the cases that only have a meaning on TCP/UDP sockets. */
#define TEST_INET(name)                                                       \
    static void name(int fam);                                                \
    static void tl_inet_##name(void) { name(FAM_INET); }                      \
    static void tl_inet6_##name(void) { name(FAM_INET6); }                    \
    __attribute__((constructor)) static void tl_reg_##name(void)              \
    {                                                                         \
        tl_register(#name "/inet", tl_inet_##name);                           \
        tl_register(#name "/inet6", tl_inet6_##name);                         \
    }                                                                         \
    static void name(int fam)

/* ---- assertions ------------------------------------------------------ */

void tl_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));
long tl_ok(long r, const char *expr, const char *file, int line);
void t_skip(const char *name, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));
const char *tl_errname(int e);

#define CHECK(cond)                                                           \
    do {                                                                      \
        int tl_saved_errno_ = errno;                                          \
        if (!(cond))                                                          \
            tl_fail(__FILE__, __LINE__, "CHECK(%s) failed (errno %s)", #cond, \
                    tl_errname(tl_saved_errno_));                             \
    } while (0)

#define CHECK_MSG(cond, ...)                                                  \
    do {                                                                      \
        if (!(cond))                                                          \
            tl_fail(__FILE__, __LINE__, __VA_ARGS__);                         \
    } while (0)

#define CHECK_EQ(a, b)                                                        \
    do {                                                                      \
        long long tl_a_ = (long long)(a), tl_b_ = (long long)(b);             \
        int tl_saved_errno_ = errno;                                          \
        if (tl_a_ != tl_b_)                                                   \
            tl_fail(__FILE__, __LINE__,                                       \
                    "CHECK_EQ(%s, %s): got %lld, expected %lld (errno %s)",   \
                    #a, #b, tl_a_, tl_b_, tl_errname(tl_saved_errno_));       \
    } while (0)

#define CHECK_ERRNO(call, expected)                                           \
    do {                                                                      \
        errno = 0;                                                            \
        long tl_r_ = (long)(call);                                            \
        int tl_e_ = errno;                                                    \
        if (tl_r_ != -1 || tl_e_ != (expected))                               \
            tl_fail(__FILE__, __LINE__,                                       \
                    "%s: expected -1/%s, got %ld/%s", #call,                  \
                    tl_errname(expected), tl_r_,                              \
                    tl_r_ == -1 ? tl_errname(tl_e_) : "(no error)");          \
    } while (0)

#define OK(call) tl_ok((long)(call), #call, __FILE__, __LINE__)

/* ---- helpers --------------------------------------------------------- */

extern const char *const tl_fam_names[FAM_COUNT];
int tl_domain(int fam);
/* A loopback address of fam to bind to: 127.0.0.1:0, [::1]:0, a fresh
 * pathname in the test's private directory, or a fresh abstract name.
 * TL_INET_ADDR / TL_INET6_ADDR, when set, replace 127.0.0.1 / ::1 here and
 * in tl_loop (the cases run on a network address: tests/engine/ctests.sh). */
void tl_addr(int fam, struct sockaddr_storage *ss, socklen_t *len);
/* socket(type|flags) bound to tl_addr(fam). */
int tl_bound(int fam, int type);
/* getsockname of fd (to connect/sendto it). */
socklen_t tl_name(int fd, struct sockaddr_storage *ss);
/* a bound, listening stream socket. */
int tl_listener(int fam, int backlog);
/* connected stream pair: *c is the connecting end, *s the accepted one. */
void tl_stream_pair(int fam, int *c, int *s);
/* two bound datagram sockets connected to each other. */
void tl_dgram_pair(int fam, int *a, int *b);
/* a fresh pathname under the private temp dir. */
void tl_path(char *buf, size_t n);

/* A connected AF_UNIX pair of `type` (SOCK_STREAM, SOCK_SEQPACKET or
 * SOCK_DGRAM, optionally | SOCK_NONBLOCK / SOCK_CLOEXEC) made `how`
 * (enum tl_unix_how): *a is the connecting end, *b the accepted one (or
 * for datagrams two bound sockets connected to each other). */
void tl_unix_pair(int how, int type, int *a, int *b);
/* Runs fn(arg) in a forked child process and waits for it. A CHECK that
 * fails there (or a t_skip) ends the child and fails (or skips) the case
 * here with the child's message; so does a child that crashes, or that
 * has not finished after TL_TIMEOUT - 2 seconds (it is killed). The child
 * must not start threads (TSan). */
void tl_child(void (*fn)(void *arg), void *arg);
/* The directory of tl_path's names. */
const char *tl_tmpdir(void);

ssize_t tl_write_all(int fd, const void *buf, size_t n);
ssize_t tl_read_all(int fd, void *buf, size_t n); /* stops at EOF */
long tl_now_ms(void);
void tl_sleep_ms(long ms);
int tl_lowest_free_fd(void);
/* poll one fd, returning revents (0 on timeout). */
short tl_poll1(int fd, short events, int timeout_ms);
/* Sends 16 KiB at a time on stream socket fd, non-blocking, until it
 * takes nothing and stays unwritable for idle_ms (the peer reads
 * nothing): how many bytes it took. Fails the case after 10 s. The fd's
 * file status flags are as before afterwards. */
long tl_fill_sndbuf(int fd, int idle_ms);
/* read a socket's pending-error (SO_ERROR). */
int tl_so_error(int fd);
/* fills buf with a deterministic pseudo-random sequence from seed */
void tl_fill(void *buf, size_t n, uint32_t seed);
uint32_t tl_cksum(uint32_t h, const void *buf, size_t n);
void *tl_bad_ptr(void); /* a PROT_NONE page: deterministic EFAULT */

/* struct tcp_info as <linux/tcp.h> has it (glibc's <netinet/tcp.h> stops
 * at tcpi_total_retrans; the two headers cannot both be included). The
 * kernel copies min(its size, the caller's). */
struct tl_tcp_info {
	uint8_t	tcpi_state;
	uint8_t	tcpi_ca_state;
	uint8_t	tcpi_retransmits;
	uint8_t	tcpi_probes;
	uint8_t	tcpi_backoff;
	uint8_t	tcpi_options;
	uint8_t	tcpi_snd_wscale : 4, tcpi_rcv_wscale : 4;
	uint8_t	tcpi_delivery_rate_app_limited:1, tcpi_fastopen_client_fail:2;

	uint32_t	tcpi_rto;
	uint32_t	tcpi_ato;
	uint32_t	tcpi_snd_mss;
	uint32_t	tcpi_rcv_mss;

	uint32_t	tcpi_unacked;
	uint32_t	tcpi_sacked;
	uint32_t	tcpi_lost;
	uint32_t	tcpi_retrans;
	uint32_t	tcpi_fackets;

	/* Times. */
	uint32_t	tcpi_last_data_sent;
	uint32_t	tcpi_last_ack_sent;     /* Not remembered, sorry. */
	uint32_t	tcpi_last_data_recv;
	uint32_t	tcpi_last_ack_recv;

	/* Metrics. */
	uint32_t	tcpi_pmtu;
	uint32_t	tcpi_rcv_ssthresh;
	uint32_t	tcpi_rtt;
	uint32_t	tcpi_rttvar;
	uint32_t	tcpi_snd_ssthresh;
	uint32_t	tcpi_snd_cwnd;
	uint32_t	tcpi_advmss;
	uint32_t	tcpi_reordering;

	uint32_t	tcpi_rcv_rtt;
	uint32_t	tcpi_rcv_space;

	uint32_t	tcpi_total_retrans;

	uint64_t	tcpi_pacing_rate;
	uint64_t	tcpi_max_pacing_rate;
	uint64_t	tcpi_bytes_acked;    /* RFC4898 tcpEStatsAppHCThruOctetsAcked */
	uint64_t	tcpi_bytes_received; /* RFC4898 tcpEStatsAppHCThruOctetsReceived */
	uint32_t	tcpi_segs_out;	     /* RFC4898 tcpEStatsPerfSegsOut */
	uint32_t	tcpi_segs_in;	     /* RFC4898 tcpEStatsPerfSegsIn */

	uint32_t	tcpi_notsent_bytes;
	uint32_t	tcpi_min_rtt;
	uint32_t	tcpi_data_segs_in;	/* RFC4898 tcpEStatsDataSegsIn */
	uint32_t	tcpi_data_segs_out;	/* RFC4898 tcpEStatsDataSegsOut */

	uint64_t   tcpi_delivery_rate;

	uint64_t	tcpi_busy_time;      /* Time (usec) busy sending data */
	uint64_t	tcpi_rwnd_limited;   /* Time (usec) limited by receive window */
	uint64_t	tcpi_sndbuf_limited; /* Time (usec) limited by send buffer */

	uint32_t	tcpi_delivered;
	uint32_t	tcpi_delivered_ce;

	uint64_t	tcpi_bytes_sent;     /* RFC4898 tcpEStatsPerfHCDataOctetsOut */
	uint64_t	tcpi_bytes_retrans;  /* RFC4898 tcpEStatsPerfOctetsRetrans */
	uint32_t	tcpi_dsack_dups;     /* RFC4898 tcpEStatsStackDSACKDups */
	uint32_t	tcpi_reord_seen;     /* reordering events seen */

	uint32_t	tcpi_rcv_ooopack;    /* Out-of-order packets received */

	uint32_t	tcpi_snd_wnd;	     /* peer's advertised receive window after
				      * scaling (bytes)
				      */
};

/* getsockopt/setsockopt of an int option (OK and an int-sized result). */
int tl_getint(int fd, int level, int opt);
void tl_setint(int fd, int level, int opt, int v);
/* The first number in a /proc/sys file (t_skip "procfs" if unreadable);
 * tl_sysctl_str copies the file's first line (without newline). */
long tl_sysctl(const char *path);
void tl_sysctl_str(const char *path, char *buf, size_t n);
/* The loopback address of an inet family with a port (host order), or
 * TL_INET_ADDR / TL_INET6_ADDR's (see tl_addr). */
socklen_t tl_loop(int fam, struct sockaddr_storage *ss, int port);
/* The wildcard address of an inet family with a port (host order). */
socklen_t tl_any(int fam, struct sockaddr_storage *ss, int port);
/* The port of an AF_INET/AF_INET6 address, host order. */
int tl_port(const struct sockaddr_storage *ss);
/* Runs fn(arg) in a forked child (whose failing CHECK or t_skip ends the
 * child, not the program); the case fails or skips as the child did.
 * drop_caps: capability numbers (a bit mask, 1ULL << CAP_x) the child
 * removes from its effective and permitted sets before fn runs; uid: if
 * >= 0, the child's setresuid/setresgid target (dropping every capability).
 * A child that does not end within timeout_s fails the case. */
void tl_in_child(void (*fn)(void *), void *arg, unsigned long long drop_caps,
                 int uid, int timeout_s);
/* The kernel as the oracle for an option: on a socket(domain, type) and on
 * a kernel socket of the same kind made by raw system calls (which no
 * socket library interposes), getsockopt(level, opt) must give the same
 * result, errno, length and (values_too) bytes; then, on fresh sockets of
 * both, for each of vals: setsockopt(int) the same result and errno, and
 * the value read back the same. Fails the case naming the first
 * difference. */
void tl_opt_like_kernel(int domain, int type, int level, int opt, const int *vals,
                        int nvals, int values_too);
/* This thread's id, for tl_wait_blocked. */
int tl_gettid(void);
/* Waits (at most 10 s, else fails the case) until thread tid of this
 * process is asleep in the kernel ('S' in /proc/self/task/TID/stat): the
 * blocking call it was about to make is waiting. */
void tl_wait_blocked(int tid);
/* Whether this process has capability cap in its effective set. */
int tl_has_cap(int cap);

/* For a program whose fork children make or accept sockets of their own:
 * on a network the library then starts a thread in the child (the
 * cross-process transport, which answers usockstat, or a background
 * connect's), and TSan refuses a thread started after a multi-threaded
 * fork unless told otherwise. Only such programs use it, so TSan keeps
 * its default for the rest. */
#ifdef __SANITIZE_THREAD__
#define TL_TSAN_THREADS_AFTER_FORK                                                                 \
    const char *__tsan_default_options(void);                                                      \
    const char *__tsan_default_options(void) { return "die_after_fork=0"; }
#else
#define TL_TSAN_THREADS_AFTER_FORK
#endif

#endif

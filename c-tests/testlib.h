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
 * pathname in the test's private directory, or a fresh abstract name. */
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
/* Whether this process is the child of tl_child. */
int tl_in_child(void);
/* The integer in a /proc/sys file; t_skip("procfs") if unreadable. */
long tl_sysctl(const char *path);
/* The directory of tl_path's names. */
const char *tl_tmpdir(void);

ssize_t tl_write_all(int fd, const void *buf, size_t n);
ssize_t tl_read_all(int fd, void *buf, size_t n); /* stops at EOF */
long tl_now_ms(void);
void tl_sleep_ms(long ms);
int tl_lowest_free_fd(void);
/* poll one fd, returning revents (0 on timeout). */
short tl_poll1(int fd, short events, int timeout_ms);
/* read a socket's pending-error (SO_ERROR). */
int tl_so_error(int fd);
/* fills buf with a deterministic pseudo-random sequence from seed */
void tl_fill(void *buf, size_t n, uint32_t seed);
uint32_t tl_cksum(uint32_t h, const void *buf, size_t n);
void *tl_bad_ptr(void); /* a PROT_NONE page: deterministic EFAULT */

#endif

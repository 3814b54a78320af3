/*
 * t_sandbox.c - a process that installs a seccomp filter keeps using the
 * sockets it holds, as on Linux.
 *
 * OpenSSH's sshd is the model: its pre-authentication child inherits the
 * client's connection, installs a filter with prctl(PR_SET_SECCOMP) that
 * lists read, write, poll, futex, mmap and a few more and kills the
 * process at any other call, then speaks the protocol over the socket.
 * Each case forks such a child over a connection made before the fork;
 * the parent is the peer. The child must end with status 0, never killed
 * by SIGSYS: the library must make, on the program's behalf, only calls
 * the filter allows.
 *
 * Where the library cannot share a socket with a fork child (linked
 * without a network, or USOCK_SHM=0), the child's use is refused with
 * EOPNOTSUPP: under the filter too, and without being killed.
 *
 * Under a sanitizer the filter's default is ENOSYS instead of a kill: the
 * sanitizer's runtime makes calls of its own that no such filter lists.
 */
#include "testlib.h"

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern int usock_socket(int domain, int type, int protocol) __attribute__((weak));
#define USOCK() (usock_socket != NULL)

/* Whether a fork child can use a TCP socket its parent made: always on
 * the kernel; with the library, on a network where TCP goes through the
 * shared-memory backend (the default). */
static int shares_tcp(void)
{
    const char *shm = getenv("USOCK_SHM");
    return !USOCK() || (getenv("USOCK_NET") != NULL && !(shm && strcmp(shm, "0") == 0));
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define FILTER_DEFAULT (SECCOMP_RET_ERRNO | ENOSYS)
#else
#define FILTER_DEFAULT SECCOMP_RET_KILL_PROCESS
#endif

#if defined(__x86_64__)
#define THIS_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define THIS_ARCH AUDIT_ARCH_AARCH64
#endif

#define ALLOW(nr)                                                             \
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1),                          \
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)
#define DENY(nr, e)                                                           \
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1),                          \
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (e))

/* sshd's pre-authentication list (sandbox-seccomp-filter.c), for this
 * architecture: what it denies with an errno, what it allows, and
 * everything else the default. */
static void install_sshd_like_filter(void)
{
    struct sock_filter insns[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, THIS_ARCH, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, FILTER_DEFAULT),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        DENY(SYS_openat, EACCES),
        DENY(SYS_newfstatat, EACCES),
        DENY(SYS_fstat, EACCES),
#ifdef SYS_open
        DENY(SYS_open, EACCES),
        DENY(SYS_stat, EACCES),
        DENY(SYS_lstat, EACCES),
#endif
        ALLOW(SYS_brk),
        ALLOW(SYS_clock_gettime),
        ALLOW(SYS_clock_nanosleep),
        ALLOW(SYS_close),
        ALLOW(SYS_exit),
        ALLOW(SYS_exit_group),
        ALLOW(SYS_futex),
        ALLOW(SYS_geteuid),
        ALLOW(SYS_getpgid),
        ALLOW(SYS_getpid),
        ALLOW(SYS_getrandom),
        ALLOW(SYS_gettimeofday),
        ALLOW(SYS_getuid),
        ALLOW(SYS_madvise),
        ALLOW(SYS_mmap),
        ALLOW(SYS_mprotect),
        ALLOW(SYS_mremap),
        ALLOW(SYS_munmap),
        ALLOW(SYS_nanosleep),
#ifdef SYS_poll
        ALLOW(SYS_poll),
        ALLOW(SYS_select),
#endif
        ALLOW(SYS_ppoll),
        ALLOW(SYS_pselect6),
        ALLOW(SYS_read),
        ALLOW(SYS_rt_sigprocmask),
        ALLOW(SYS_rt_sigreturn),
        ALLOW(SYS_shutdown),
        ALLOW(SYS_write),
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
        /* The sanitizer's runtime, which checks its signal stack. */
        ALLOW(SYS_sigaltstack),
#endif
        BPF_STMT(BPF_RET | BPF_K, FILTER_DEFAULT),
    };
    struct sock_fprog prog = {(unsigned short)(sizeof insns / sizeof insns[0]), insns};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
        _exit(90);
}

/* The child's verdicts: 0 when every check held. */
enum { CHILD_OK = 0, CHILD_BAD_READ = 10, CHILD_BAD_DATA, CHILD_BAD_WRITE, CHILD_NO_EOF,
       CHILD_NOT_REFUSED, CHILD_BAD_POLL };

static const char *child_verdict(int code)
{
    switch (code) {
    case CHILD_BAD_READ: return "a read failed";
    case CHILD_BAD_DATA: return "the bytes read differ from the bytes sent";
    case CHILD_BAD_WRITE: return "a write failed";
    case CHILD_NO_EOF: return "no end-of-stream after the peer's close";
    case CHILD_NOT_REFUSED: return "a refused socket's read was not -1/EOPNOTSUPP";
    case CHILD_BAD_POLL: return "poll did not report the input";
    case 90: return "the filter could not be installed";
    default: return "an unexpected exit code";
    }
}

/* Forks a child that installs the filter, then runs fn(fd); the child
 * closes every other copy first. */
static pid_t spawn_filtered(int (*fn)(int), int fd, int other)
{
    fflush(stdout);
    pid_t pid = (pid_t)OK(fork());
    if (pid == 0) {
        close(other);
        install_sshd_like_filter();
        _exit(fn(fd));
    }
    return pid;
}

/* Waits for the child (at most 20 s, then kills it) and fails the case
 * unless it exited with 0. */
static void reap(pid_t pid)
{
    int st = 0;
    long deadline = tl_now_ms() + 20000;
    while (waitpid(pid, &st, WNOHANG) == 0) {
        if (tl_now_ms() > deadline) {
            kill(pid, SIGKILL);
            OK(waitpid(pid, &st, 0));
            CHECK_MSG(0, "the filtered child did not finish in 20 s");
        }
        tl_sleep_ms(5);
    }
    CHECK_MSG(!WIFSIGNALED(st), "the filtered child was killed by signal %d%s", WTERMSIG(st),
              WTERMSIG(st) == SIGSYS ? " (SIGSYS: a system call its filter forbids)" : "");
    CHECK_MSG(WEXITSTATUS(st) == 0, "the filtered child: %s (exit %d)",
              child_verdict(WEXITSTATUS(st)), WEXITSTATUS(st));
}

static int read_exactly(int fd, char *b, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, b + got, n - got);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

/* Child: poll for the question, read it, answer it upper-cased, then wait
 * for the end of the stream. */
static int answer_one(int s)
{
    if (!shares_tcp()) {
        char b;
        errno = 0;
        return read(s, &b, 1) == -1 && errno == EOPNOTSUPP ? CHILD_OK : CHILD_NOT_REFUSED;
    }
    struct pollfd p = {s, POLLIN, 0};
    if (poll(&p, 1, 10000) != 1 || !(p.revents & POLLIN))
        return CHILD_BAD_POLL;
    char q[6];
    if (read_exactly(s, q, sizeof q) != 0)
        return CHILD_BAD_READ;
    if (memcmp(q, "hello?", 6) != 0)
        return CHILD_BAD_DATA;
    if (write(s, "HELLO!", 6) != 6)
        return CHILD_BAD_WRITE;
    char b;
    return read(s, &b, 1) == 0 ? CHILD_OK : CHILD_NO_EOF;
}

/* A connection made before the fork: the filtered child runs child(s),
 * the parent peer(c) where the child can use the socket, then both ends
 * are closed and the child must end well. */
static void with_filtered_child(int fam, int (*child)(int), void (*peer)(int))
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    pid_t pid = spawn_filtered(child, s, c);
    OK(close(s));
    if (shares_tcp())
        peer(c);
    OK(close(c));
    reap(pid);
}

static void ask_one(int c)
{
    OK(tl_write_all(c, "hello?", 6));
    char a[6];
    CHECK_EQ(tl_read_all(c, a, sizeof a), 6);
    CHECK(memcmp(a, "HELLO!", 6) == 0);
}

TEST_INET(a_filtered_child_answers_over_its_inherited_connection)
{
    with_filtered_child(fam, answer_one, ask_one);
}

enum { BULK = 1 << 20 };

/* Child: reads BULK bytes (blocking reads, the sender often ahead), then
 * writes them back (blocking writes, often on a full buffer). */
static int echo_bulk(int s)
{
    if (!shares_tcp())
        return answer_one(s);
    char *b = malloc(BULK);
    if (!b || read_exactly(s, b, BULK) != 0)
        return CHILD_BAD_READ;
    if (tl_write_all(s, b, BULK) != BULK)
        return CHILD_BAD_WRITE;
    char x;
    return read(s, &x, 1) == 0 ? CHILD_OK : CHILD_NO_EOF;
}

static void send_bulk_and_check_the_echo(int c)
{
    char *out = malloc(BULK), *in = malloc(BULK);
    CHECK(out && in);
    tl_fill(out, BULK, 7);
    CHECK_EQ(tl_write_all(c, out, BULK), BULK);
    CHECK_EQ(tl_read_all(c, in, BULK), BULK);
    CHECK(memcmp(in, out, BULK) == 0);
    free(out);
    free(in);
}

TEST_INET(a_filtered_child_streams_a_megabyte_both_ways)
{
    with_filtered_child(fam, echo_bulk, send_bulk_and_check_the_echo);
}

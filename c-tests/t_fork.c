/*
 * t_fork.c - fork, vfork and exec with sockets open.
 *
 * Against the kernel a fork child shares its parent's sockets; against
 * libuserspacesock it does not (README, "fork and exec"): the child's use
 * of an inherited socket fails with EOPNOTSUPP and one line on stderr,
 * its close frees only its own fd, and an exec turns a socket fd left
 * without FD_CLOEXEC into an unconnected kernel socket (ENOTCONN) with one
 * line on stderr. Where the two differ, each case states both
 * expectations; USOCK() tells which one applies (the library defines
 * usock_socket, the kernel build does not).
 *
 * The exec cases run this same program again: with T_FORK_HELPER in the
 * environment it checks its fds before main() and exits (helper() below).
 */
#include "testlib.h"

#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/wait.h>

extern int usock_socket(int domain, int type, int protocol) __attribute__((weak));
#define USOCK() (usock_socket != NULL)

/* Whether the library shares TCP sockets between processes as the kernel
 * does: on a network directory (USOCK_NET) its shared-memory backend
 * carries them unless USOCK_SHM=0 (SHARED.md). Those sockets meet the
 * kernel's expectations here; the library's own in-process ones (and
 * those of the cross-process backend without shared memory) the
 * library's. */
static int shares_tcp(void)
{
    const char *shm = getenv("USOCK_SHM");
    return getenv("USOCK_NET") != NULL && !(shm && strcmp(shm, "0") == 0);
}
#define REFUSES() (USOCK() && !shares_tcp())

/* fstat of a socket fd says S_IFSOCK. TSan's own fstat interceptor calls
 * libc's directly, ahead of any library (see t_extra.c): there only
 * success is checked. */
static int is_socket_fd(int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return 0;
#ifdef __SANITIZE_THREAD__
    return 1;
#else
    return S_ISSOCK(st.st_mode);
#endif
}

/* ---- the exec helper ------------------------------------------------- */

/* Exit codes of the helper: 0 when every check held. */
enum {
    H_OK = 0,
    H_ARGS = 10,
    H_CLOEXEC_OPEN,   /* the SOCK_CLOEXEC socket's number is open */
    H_NOT_SOCKET,     /* the plain socket's number is not a socket */
    H_KERNEL_READ,    /* kernel: the inherited socket did not read "hi" */
    H_LIB_READ,       /* library: read did not fail with ENOTCONN */
    H_LIB_WRITE,      /* library: write did not fail with ENOTCONN */
};

/* T_FORK_HELPER="x c mode": x was a SOCK_CLOEXEC socket, c a plain one
 * whose peer wrote "hi". mode: "kernel" (c is the kernel's socket, data
 * and all) or "lib" (c is the library's stand-in: ENOTCONN). */
__attribute__((constructor(200))) static void helper(void)
{
    const char *h = getenv("T_FORK_HELPER");
    if (!h)
        return;
    int x, c;
    char mode[8];
    if (sscanf(h, "%d %d %7s", &x, &c, mode) != 3)
        _exit(H_ARGS);
    if (fcntl(x, F_GETFD) != -1 || errno != EBADF)
        _exit(H_CLOEXEC_OPEN);
    struct stat st;
    if (fstat(c, &st) != 0 || !S_ISSOCK(st.st_mode))
        _exit(H_NOT_SOCKET);
    char b[8] = {0};
    if (strcmp(mode, "kernel") == 0) {
        /* the kernel's socket came along, connected: its data is there */
        if (read(c, b, 2) != 2 || memcmp(b, "hi", 2) != 0)
            _exit(H_KERNEL_READ);
        _exit(H_OK);
    }
    errno = 0;
    if (read(c, b, sizeof b) != -1 || errno != ENOTCONN)
        _exit(H_LIB_READ);
    errno = 0;
    if (write(c, "x", 1) != -1 || errno != ENOTCONN)
        _exit(H_LIB_WRITE);
    errno = 0;
    if (recv(c, b, sizeof b, MSG_DONTWAIT) != -1 || errno != ENOTCONN)
        _exit(H_LIB_READ);
    _exit(H_OK);
}

/* ---- helpers ---------------------------------------------------------- */

/* Waits for `pid` (at most 20 s) and returns its exit status, or 1000 +
 * the signal that ended it. */
static int wait_child(pid_t pid)
{
    int st;
    for (int i = 0; i < 20000; i++) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 1000 + WTERMSIG(st);
        if (r < 0 && errno != EINTR)
            return 2000;
        tl_sleep_ms(1);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return 3000; /* hung */
}

/* Reads everything from `fd` until EOF into buf (NUL-terminated). */
static void slurp(int fd, char *buf, size_t n)
{
    size_t got = 0;
    for (;;) {
        ssize_t r = read(fd, buf + got, n - 1 - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
        if (got == n - 1)
            break;
    }
    buf[got] = 0;
}

static int count_lines_with(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

static void exchange(int a, int b, int rounds)
{
    char buf[64];
    for (int i = 0; i < rounds; i++) {
        int n = snprintf(buf, sizeof buf, "ping %d", i);
        CHECK_EQ(tl_write_all(a, buf, (size_t)n), n);
        char got[64];
        CHECK_EQ(tl_read_all(b, got, (size_t)n), n);
        CHECK(memcmp(got, buf, (size_t)n) == 0);
        n = snprintf(buf, sizeof buf, "pong %d", i);
        CHECK_EQ(tl_write_all(b, buf, (size_t)n), n);
        CHECK_EQ(tl_read_all(a, got, (size_t)n), n);
        CHECK(memcmp(got, buf, (size_t)n) == 0);
    }
}

/* ---- fork ------------------------------------------------------------- */

TEST_FAM(fork_child_closes_copies_parent_keeps_working)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    int l = tl_listener(fam, 8);
    struct sockaddr_storage ss;
    socklen_t len = tl_name(l, &ss);
    pid_t pid = OK(fork());
    if (pid == 0) {
        /* the child closes its copies, and exits */
        int bad = close(c) != 0 || close(s) != 0 || close(l) != 0;
        _exit(bad);
    }
    /* meanwhile, and after, the parent's sockets work both ways */
    exchange(c, s, 200);
    CHECK_EQ(wait_child(pid), 0);
    exchange(c, s, 10);
    /* a child's close is not the last close: no end-of-stream */
    CHECK_EQ(tl_poll1(s, POLLIN, 50), 0);
    CHECK_EQ(tl_poll1(c, POLLIN, 0), 0);
    /* the listener still accepts */
    int k = (int)OK(socket(tl_domain(fam), SOCK_STREAM, 0));
    OK(connect(k, (struct sockaddr *)&ss, len));
    int a = (int)OK(accept(l, NULL, NULL));
    exchange(k, a, 5);
    close(k);
    close(a);
    close(l);
    close(c);
    close(s);
}

TEST(fork_child_uses_inherited_socket)
{
    int c, s;
    tl_stream_pair(FAM_INET, &c, &s);
    int ep = (int)OK(epoll_create1(0));
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = s};
    OK(epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev));
    int errp[2];
    OK(pipe(errp));
    pid_t pid = OK(fork());
    if (pid == 0) {
        dup2(errp[1], 2);
        close(errp[0]);
        close(errp[1]);
        int code = 0;
        /* fd-level calls work on either */
        if (!is_socket_fd(c))
            code = 1;
        if (fcntl(c, F_GETFD) != 0)
            code = 2;
        errno = 0;
        ssize_t n = send(c, "x", 1, 0);
        if (REFUSES()) {
            /* refused: the socket's state is the parent's */
            if (n != -1 || errno != EOPNOTSUPP)
                code = 3;
            errno = 0;
            if (recv(c, &(char){0}, 1, MSG_DONTWAIT) != -1 || errno != EOPNOTSUPP)
                code = 4;
            errno = 0;
            if (getsockopt(c, SOL_SOCKET, SO_ERROR, &(int){0}, &(socklen_t){4}) != -1 ||
                errno != EOPNOTSUPP)
                code = 5;
            struct pollfd p = {c, POLLIN, 0};
            errno = 0;
            if (poll(&p, 1, 0) != -1 || errno != EOPNOTSUPP)
                code = 6;
            struct epoll_event out;
            errno = 0;
            if (epoll_wait(ep, &out, 1, 0) != -1 || errno != EOPNOTSUPP)
                code = 7;
            errno = 0;
            if (shutdown(c, SHUT_WR) != -1 || errno != EOPNOTSUPP)
                code = 8;
        } else {
            /* the kernel's socket is shared: the parent reads the byte */
            if (n != 1)
                code = 3;
            struct epoll_event out;
            if (epoll_wait(ep, &out, 1, 5000) != 1)
                code = 7;
        }
        /* close works on either, and the number is free after it */
        if (close(c) != 0 || close(s) != 0)
            code = 9;
        if (fcntl(c, F_GETFD) != -1 || errno != EBADF)
            code = 10;
        _exit(code);
    }
    close(errp[1]);
    char err[4096];
    slurp(errp[0], err, sizeof err);
    close(errp[0]);
    CHECK_EQ(wait_child(pid), 0);
    char want[256];
    snprintf(want, sizeof want,
             "usock: fd %d is a user-space socket inherited across fork; only the "
             "process that created it can use it (EOPNOTSUPP)\n",
             c);
    char want_ep[256];
    snprintf(want_ep, sizeof want_ep,
             "usock: fd %d is an epoll fd holding user-space sockets inherited across "
             "fork; only the process that created it can use it (EOPNOTSUPP)\n",
             ep);
    if (REFUSES()) {
        /* one line for the socket (for its first refused use only), one
         * for the epoll fd, nothing else */
        CHECK_MSG(count_lines_with(err, want) == 1, "child's stderr: [%s]", err);
        CHECK_MSG(count_lines_with(err, want_ep) == 1, "child's stderr: [%s]", err);
        CHECK_MSG(strlen(err) == strlen(want) + strlen(want_ep), "child's stderr: [%s]", err);
    } else {
        CHECK_MSG(err[0] == 0, "child's stderr: [%s]", err);
        char b;
        CHECK_EQ(recv(s, &b, 1, MSG_DONTWAIT), 1);
        CHECK_EQ(b, 'x');
    }
    /* the parent's sockets and epoll set are untouched */
    exchange(c, s, 10);
    OK(write(c, "y", 1));
    struct epoll_event out;
    CHECK_EQ(epoll_wait(ep, &out, 1, 2000), 1);
    CHECK_EQ(out.data.fd, s);
    char b;
    CHECK_EQ(read(s, &b, 1), 1);
    close(ep);
    close(c);
    close(s);
}

TEST(fork_child_makes_its_own_sockets)
{
    int c, s;
    tl_stream_pair(FAM_INET, &c, &s);
    pid_t pid = OK(fork());
    if (pid == 0) {
        int code = 0;
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
            _exit(1);
        if (write(sv[0], "abc", 3) != 3)
            code = 2;
        char b[8] = {0};
        if (read(sv[1], b, 3) != 3 || memcmp(b, "abc", 3) != 0)
            code = 3;
        /* a listener and a connection of its own, on an ephemeral port */
        int l = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t al = sizeof a;
        if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) != 0 || listen(l, 4) != 0 ||
            getsockname(l, (struct sockaddr *)&a, &al) != 0)
            _exit(4);
        int k = socket(AF_INET, SOCK_STREAM, 0);
        if (k < 0 || connect(k, (struct sockaddr *)&a, sizeof a) != 0)
            _exit(5);
        int acc = accept(l, NULL, NULL);
        if (acc < 0)
            _exit(6);
        if (write(k, "hello", 5) != 5 || tl_read_all(acc, b, 5) != 5 || memcmp(b, "hell", 4) != 0)
            code = 7;
        if (write(acc, "o!", 2) != 2 || read(k, b, 2) != 2 || memcmp(b, "o!", 2) != 0)
            code = 8;
        close(k);
        if (read(acc, b, 1) != 0) /* end-of-stream */
            code = 9;
        close(acc);
        close(l);
        close(sv[0]);
        close(sv[1]);
        _exit(code);
    }
    CHECK_EQ(wait_child(pid), 0);
    exchange(c, s, 5);
    close(c);
    close(s);
}

/* Threads making, binding and closing sockets, and a pair carrying data,
 * while the main thread forks 200 times: no fork deadlocks, in the parent
 * or in a child (which makes a socket of its own half of the time). */
static atomic_int stop_hammer;

static void *hammer_make(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop_hammer)) {
        int fd = socket(AF_INET, SOCK_DGRAM, 0);
        CHECK(fd >= 0);
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
        CHECK(close(fd) == 0);
    }
    return NULL;
}

struct pair {
    int a, b;
};

static void *hammer_io(void *arg)
{
    struct pair *p = arg;
    char buf[512];
    memset(buf, 7, sizeof buf);
    while (!atomic_load(&stop_hammer)) {
        CHECK(send(p->a, buf, sizeof buf, 0) == (ssize_t)sizeof buf);
        CHECK(tl_read_all(p->b, buf, sizeof buf) == (ssize_t)sizeof buf);
    }
    return NULL;
}

TEST(fork_while_threads_use_sockets)
{
    atomic_store(&stop_hammer, 0);
    struct pair p;
    tl_stream_pair(FAM_INET, &p.a, &p.b);
    pthread_t t1, t2;
    CHECK(pthread_create(&t1, NULL, hammer_make, NULL) == 0);
    CHECK(pthread_create(&t2, NULL, hammer_io, &p) == 0);
    int failed = 0;
    for (int i = 0; i < 200 && !failed; i++) {
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            alarm(10);
#ifdef __SANITIZE_ADDRESS__
            /* ASan's allocator (GCC 12) takes no lock around fork: a child
             * of a threaded process that allocates can wait for ever on a
             * lock another thread held at the fork. Not the library's
             * doing: under ASan the child only exits. */
            _exit(0);
#endif
            if (i % 2 == 0)
                _exit(0);
            int sv[2];
            if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
                _exit(1);
            char b;
            if (write(sv[0], "z", 1) != 1 || read(sv[1], &b, 1) != 1 || b != 'z')
                _exit(2);
            int fd = socket(AF_INET, SOCK_DGRAM, 0);
            _exit(fd < 0 ? 3 : 0);
        }
        int st = wait_child(pid);
        if (st != 0) {
            printf("  fork %d: child status %d\n", i, st);
            failed = 1;
        }
    }
    atomic_store(&stop_hammer, 1);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    CHECK(!failed);
    exchange(p.a, p.b, 5);
    close(p.a);
    close(p.b);
}

/* ---- FD_CLOEXEC --------------------------------------------------------- */

TEST(fd_cloexec_is_the_callers_flag)
{
    int a = (int)OK(socket(AF_INET, SOCK_STREAM, 0));
    CHECK_EQ(fcntl(a, F_GETFD), 0);
    int b = (int)OK(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    CHECK_EQ(fcntl(b, F_GETFD), FD_CLOEXEC);
    OK(fcntl(a, F_SETFD, FD_CLOEXEC));
    CHECK_EQ(fcntl(a, F_GETFD), FD_CLOEXEC);
    OK(fcntl(b, F_SETFD, 0));
    CHECK_EQ(fcntl(b, F_GETFD), 0);
    OK(ioctl(b, FIOCLEX));
    CHECK_EQ(fcntl(b, F_GETFD), FD_CLOEXEC);
    OK(ioctl(b, FIONCLEX));
    CHECK_EQ(fcntl(b, F_GETFD), 0);
    /* dup clears it, F_DUPFD_CLOEXEC and dup3(O_CLOEXEC) set it */
    int d = (int)OK(dup(a));
    CHECK_EQ(fcntl(d, F_GETFD), 0);
    int e = (int)OK(fcntl(b, F_DUPFD_CLOEXEC, 0));
    CHECK_EQ(fcntl(e, F_GETFD), FD_CLOEXEC);
    int f = tl_lowest_free_fd() + 20;
    OK(dup3(b, f, O_CLOEXEC));
    CHECK_EQ(fcntl(f, F_GETFD), FD_CLOEXEC);
    OK(dup2(a, f));
    CHECK_EQ(fcntl(f, F_GETFD), 0);
    int sv[2];
    OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
    CHECK_EQ(fcntl(sv[0], F_GETFD), FD_CLOEXEC);
    CHECK_EQ(fcntl(sv[1], F_GETFD), FD_CLOEXEC);
    /* accept and accept4 */
    int l = tl_listener(FAM_INET, 4);
    struct sockaddr_storage ss;
    socklen_t len = tl_name(l, &ss);
    int k1 = (int)OK(socket(AF_INET, SOCK_STREAM, 0));
    OK(connect(k1, (struct sockaddr *)&ss, len));
    int k2 = (int)OK(socket(AF_INET, SOCK_STREAM, 0));
    OK(connect(k2, (struct sockaddr *)&ss, len));
    int x1 = (int)OK(accept(l, NULL, NULL));
    CHECK_EQ(fcntl(x1, F_GETFD), 0);
    int x2 = (int)OK(accept4(l, NULL, NULL, SOCK_CLOEXEC));
    CHECK_EQ(fcntl(x2, F_GETFD), FD_CLOEXEC);
    int fds[] = {a, b, d, e, f, sv[0], sv[1], l, k1, k2, x1, x2};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        close(fds[i]);
}

/* ---- exec ----------------------------------------------------------------- */

enum how { VIA_EXECVE, VIA_EXECV, VIA_EXECVP, VIA_FEXECVE, VIA_EXECVEAT, VIA_EXECL, VIA_VFORK };

static const char *const how_names[] = {"execve", "execv", "execvp", "fexecve",
                                        "execveat", "execl", "vfork+execve"};

/* A plain socket c (its peer wrote "hi") and a SOCK_CLOEXEC one x cross
 * an exec of this program, which checks them (helper()). Returns the
 * child's stderr in err. */
static void exec_case(enum how how, char *err, size_t errn)
{
    int c, s;
    tl_stream_pair(FAM_INET, &c, &s);
    int x = (int)OK(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    CHECK_EQ(tl_write_all(s, "hi", 2), 2);
    const char *mode = !REFUSES() ? "kernel" : "lib";
    char env[96];
    snprintf(env, sizeof env, "T_FORK_HELPER=%d %d %s", x, c, mode);
    /* a shared socket is found again by the new program's library on its
     * network */
    char net[4200] = "", shm[32] = "";
    if (USOCK() && shares_tcp()) {
        snprintf(net, sizeof net, "USOCK_NET=%s", getenv("USOCK_NET"));
        if (getenv("USOCK_SHM"))
            snprintf(shm, sizeof shm, "USOCK_SHM=%s", getenv("USOCK_SHM"));
    }
    char *envp[] = {env, net[0] ? net : NULL, shm[0] ? shm : NULL, NULL};
    char *argv[] = {"t_fork-helper", NULL};
    char self[4096];
    ssize_t n = OK(readlink("/proc/self/exe", self, sizeof self - 1));
    self[n] = 0;
    int errp[2];
    OK(pipe2(errp, O_CLOEXEC));
    /* execvp searches PATH for a name without a slash */
    char *slash = strrchr(self, '/');
    *slash = 0;
    char path[4200];
    snprintf(path, sizeof path, "PATH=%s", self);
    *slash = '/';
    pid_t pid = how == VIA_VFORK ? vfork() : fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        /* (a vfork child only changes its fds before the exec) */
        dup2(errp[1], 2);
        if (how == VIA_EXECVP || how == VIA_EXECL)
            putenv(env);
        if (how == VIA_EXECVP)
            putenv(path);
        switch (how) {
        case VIA_EXECVE:
        case VIA_VFORK:
            execve(self, argv, envp);
            break;
        case VIA_EXECV:
            environ = envp;
            execv(self, argv);
            break;
        case VIA_EXECVP:
            execvp(slash + 1, argv);
            break;
        case VIA_FEXECVE: {
            int fd = open(self, O_RDONLY | O_CLOEXEC);
            fexecve(fd, argv, envp);
            break;
        }
        case VIA_EXECVEAT:
            execveat(AT_FDCWD, self, argv, envp, 0);
            break;
        case VIA_EXECL:
            execl(self, "t_fork-helper", (char *)NULL);
            break;
        }
        _exit(99);
    }
    close(errp[1]);
    slurp(errp[0], err, errn);
    close(errp[0]);
    int st = wait_child(pid);
    CHECK_MSG(st == 0, "%s: helper status %d, stderr [%s]", how_names[how], st, err);
    /* the parent's sockets are untouched: under the library the "hi" is
     * still there (the new program could not read it) */
    if (REFUSES()) {
        char hi[2];
        CHECK_EQ(tl_read_all(c, hi, 2), 2);
        CHECK(memcmp(hi, "hi", 2) == 0);
    }
    exchange(c, s, 3);
    CHECK_EQ(fcntl(c, F_GETFD), 0);
    CHECK_EQ(fcntl(x, F_GETFD), FD_CLOEXEC);
    char want[256];
    snprintf(want, sizeof want,
             "usock: fd %d is a user-space socket and cannot cross exec; the new "
             "program gets an unconnected socket there (ENOTCONN)\n",
             c);
    char not_x[64];
    snprintf(not_x, sizeof not_x, "usock: fd %d ", x);
    if (REFUSES()) {
        /* one line for c, none for x (execl too: the library has its own,
         * over its execve) */
        CHECK_MSG(count_lines_with(err, want) == 1 && !strstr(err, not_x),
                  "%s: child's stderr: [%s]", how_names[how], err);
    } else {
        /* the kernel says nothing */
        CHECK_MSG(err[0] == 0, "%s: child's stderr: [%s]", how_names[how], err);
    }
    close(c);
    close(s);
    close(x);
}

TEST(exec_cloexec_socket_closes_plain_socket_stays_a_socket)
{
    char err[4096];
    for (int h = VIA_EXECVE; h <= VIA_VFORK; h++)
        exec_case((enum how)h, err, sizeof err);
}

TEST(exec_that_fails_keeps_the_sockets)
{
    int c, s;
    tl_stream_pair(FAM_INET, &c, &s);
    int errp[2];
    OK(pipe(errp));
    int saved = (int)OK(dup(2));
    OK(dup2(errp[1], 2));
    char *argv[] = {"nothing", NULL};
    char *envp[] = {NULL};
    errno = 0;
    int r = execve("", argv, envp);
    int e = errno;
    OK(dup2(saved, 2));
    close(saved);
    close(errp[1]);
    char err[1024];
    slurp(errp[0], err, sizeof err);
    close(errp[0]);
    CHECK_EQ(r, -1);
    CHECK_EQ(e, ENOENT);
    /* still the same sockets, working, with the caller's flags */
    CHECK_EQ(fcntl(c, F_GETFD), 0);
    CHECK_EQ(fcntl(s, F_GETFD), 0);
    exchange(c, s, 5);
    CHECK(is_socket_fd(c));
    char want_c[64], want_s[64];
    snprintf(want_c, sizeof want_c, "usock: fd %d is a user-space socket and cannot", c);
    snprintf(want_s, sizeof want_s, "usock: fd %d is a user-space socket and cannot", s);
    if (REFUSES())
        CHECK_MSG(count_lines_with(err, want_c) == 1 && count_lines_with(err, want_s) == 1,
                  "stderr: [%s]", err);
    else
        CHECK_MSG(err[0] == 0, "stderr: [%s]", err);
    close(c);
    close(s);
}

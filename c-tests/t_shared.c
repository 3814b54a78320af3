/*
 * t_shared.c - TCP sockets that processes share after fork, as on Linux
 * (issue 15, SHARED.md). One expectation for the kernel and the library:
 * a fork child uses the sockets it inherited, a connection lasts until its
 * last holder closes it, a listener's queue is shared by the processes
 * that accept on it, and each byte is read once.
 *
 * Against the library the program needs the shared-memory backend: when
 * it is linked with the library and no network is given, it makes one
 * (USOCK_NET, a fresh directory) with USOCK_SHM=1 before its first
 * socket. Preloaded, the launcher's environment decides (run it with
 * USOCK_SHM=1).
 */
#include "testlib.h"

#include <spawn.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/wait.h>

/* Fork children here start the library's threads (testlib.h). */
TL_TSAN_THREADS_AFTER_FORK

extern int usock_socket(int domain, int type, int protocol) __attribute__((weak));
extern char **environ;

static char shared_net[64];

static void remove_net(void)
{
    if (shared_net[0])
        rmdir(shared_net);
}

__attribute__((constructor(101))) static void use_shared_backend(void)
{
    if (usock_socket == NULL || getenv("USOCK_NET"))
        return;
    snprintf(shared_net, sizeof shared_net, "/tmp/t_shared-XXXXXX");
    if (!mkdtemp(shared_net)) {
        perror("t_shared: mkdtemp");
        exit(2);
    }
    setenv("USOCK_NET", shared_net, 1);
    setenv("USOCK_SHM", "1", 1);
    atexit(remove_net);
}

/* ---- the exec helper --------------------------------------------------- */

/* T_SHARED_EXEC="listener": fd 3 is a listening socket handed on by exec
 * (systemd's LISTEN_FDS convention): accept one connection, answer.
 * T_SHARED_EXEC="conn": fds 0 and 1 are one connection: read five bytes
 * from 0, write them back upper-cased on 1. Exit status 0 when all held. */
__attribute__((constructor(200))) static void exec_helper(void)
{
    const char *mode = getenv("T_SHARED_EXEC");
    if (!mode)
        return;
    if (strcmp(mode, "listener") == 0) {
        int c = accept(3, NULL, NULL);
        if (c < 0)
            _exit(10);
        _exit(send(c, "accepted after exec", 19, 0) == 19 ? 0 : 11);
    }
    char b[5];
    size_t got = 0;
    while (got < sizeof b) {
        ssize_t r = read(0, b + got, sizeof b - got);
        if (r <= 0)
            _exit(20);
        got += (size_t)r;
    }
    for (size_t i = 0; i < sizeof b; i++)
        b[i] = (char)(b[i] >= 'a' && b[i] <= 'z' ? b[i] - 32 : b[i]);
    _exit(write(1, b, sizeof b) == (ssize_t)sizeof b ? 0 : 21);
}

/* The exec calls a forked child may run this program again with. */
enum exec_call { BY_EXECV, BY_EXECL, BY_EXECLP, BY_EXECLE };

/* Runs this program again with T_SHARED_EXEC=mode, as a child, by `how`. */
static pid_t exec_self_by(enum exec_call how, const char *mode, int fd_at_3, int fd_at_0_and_1)
{
    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        if (fd_at_3 >= 0 && dup2(fd_at_3, 3) != 3)
            _exit(30);
        if (fd_at_0_and_1 >= 0 && (dup2(fd_at_0_and_1, 0) != 0 || dup2(fd_at_0_and_1, 1) != 1))
            _exit(31);
        setenv("T_SHARED_EXEC", mode, 1);
        char *argv[] = {(char *)"t_shared", NULL};
        switch (how) {
        case BY_EXECV:
            execv("/proc/self/exe", argv);
            break;
        case BY_EXECL:
            execl("/proc/self/exe", "t_shared", (char *)NULL);
            break;
        case BY_EXECLP:
            execlp("/proc/self/exe", "t_shared", (char *)NULL);
            break;
        case BY_EXECLE:
            execle("/proc/self/exe", "t_shared", (char *)NULL, environ);
            break;
        }
        _exit(32);
    }
    return pid;
}

static pid_t exec_self(const char *mode, int fd_at_3, int fd_at_0_and_1)
{
    return exec_self_by(BY_EXECV, mode, fd_at_3, fd_at_0_and_1);
}

/* ---- processes -------------------------------------------------------- */

/* Runs fn(arg) in a child process, concurrently; its exit status is fn's
 * return value (0: every check held). */
static pid_t spawn(int (*fn)(void *), void *arg)
{
    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        alarm(30);
        _exit(fn(arg));
    }
    return pid;
}

/* Waits for child pid, which must have exited with 0. */
static void reap(pid_t pid)
{
    int st = 0;
    CHECK_EQ(waitpid(pid, &st, 0), pid);
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "child %d: %s %d", (int)pid, WIFEXITED(st) ? "exited" : "killed by signal",
              WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
}

static void kill_and_reap(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* Reads exactly n bytes, waiting at most 10 s in all: 0 on success. */
static int read_n(int fd, void *buf, size_t n)
{
    size_t got = 0;
    long deadline = tl_now_ms() + 10000;
    while (got < n) {
        struct pollfd p = {fd, POLLIN, 0};
        long left = deadline - tl_now_ms();
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            return -1;
        ssize_t r = recv(fd, (char *)buf + got, n - got, 0);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

/* A pipe the children wait on: the parent's go-ahead. */
struct gate {
    int r, w;
};

static void gate_open(struct gate *g)
{
    int p[2];
    OK(pipe(p));
    g->r = p[0];
    g->w = p[1];
}

static int gate_wait(struct gate *g)
{
    char c;
    return read(g->r, &c, 1) == 1 ? 0 : -1;
}

static void gate_go(struct gate *g)
{
    CHECK_EQ(write(g->w, "g", 1), 1);
}

/* Client c asks q (5 bytes) of the connection whose last holder is child
 * and expects a (5 bytes); once the child is gone, end-of-stream. */
static void ask_the_last_holder(int c, pid_t child, const char *q, const char *a)
{
    CHECK_EQ(send(c, q, 5, 0), 5);
    char b[8];
    CHECK_EQ(read_n(c, b, 5), 0);
    CHECK(memcmp(b, a, 5) == 0);
    reap(child);
    CHECK(tl_poll1(c, POLLIN, 5000) & POLLIN);
    CHECK_EQ(recv(c, b, sizeof b, 0), 0);
    OK(close(c));
}

/* ---- cases ------------------------------------------------------------ */

/* The fork-per-connection server: the parent accepts and closes its copy,
 * the child serves the connection, the client sees the child's answer,
 * then end-of-stream when the child exits. */
static int serve_one(void *arg)
{
    int s = *(int *)arg;
    char q[5];
    if (read_n(s, q, 5) || memcmp(q, "ping?", 5))
        return 1;
    if (send(s, "pong!", 5, 0) != 5)
        return 2;
    return 0;
}

TEST(fork_child_serves_the_connection_its_parent_accepted)
{
    int c, s;
    tl_stream_pair(FAM_INET, &c, &s);
    pid_t child = spawn(serve_one, &s);
    OK(close(s));
    ask_the_last_holder(c, child, "ping?", "pong!");
}

/* Pre-fork workers accept on the listener they inherited: each connection
 * is accepted by exactly one of them. */
static int worker(void *arg)
{
    int l = *(int *)arg;
    for (;;) {
        int c = accept(l, NULL, NULL);
        if (c < 0)
            return 1;
        uint32_t id;
        if (read_n(c, &id, 4))
            return 2;
        uint32_t reply[2] = {id, (uint32_t)getpid()};
        if (send(c, reply, sizeof reply, 0) != (ssize_t)sizeof reply)
            return 3;
        close(c);
    }
}

/* One connection to the workers' listener at ss: request `i` (sent
 * `pause_ms` after the connect), answered with it and the pid of the worker
 * that served it, one of w's. */
static void ask_a_worker(const struct sockaddr_storage *ss, socklen_t len, uint32_t i,
                         int pause_ms, const pid_t w[2])
{
    int c = OK(socket(AF_INET, SOCK_STREAM, 0));
    OK(connect(c, (const struct sockaddr *)ss, len));
    if (pause_ms)
        tl_sleep_ms(pause_ms);
    CHECK_EQ(send(c, &i, 4, 0), 4);
    uint32_t reply[2];
    CHECK_EQ(read_n(c, reply, sizeof reply), 0);
    CHECK_EQ(reply[0], i);
    CHECK_MSG(reply[1] == (uint32_t)w[0] || reply[1] == (uint32_t)w[1],
              "answered by %u, not a worker", reply[1]);
    OK(close(c));
}

/* Two forked workers running `work` on listener l answer n requests, one
 * connection each (ask_a_worker); then they are killed and l closed. */
static void serve_with_two_workers(int l, int (*work)(void *), uint32_t n, int pause_ms)
{
    struct sockaddr_storage ss;
    socklen_t len = tl_name(l, &ss);
    pid_t w[2] = {spawn(work, &l), spawn(work, &l)};
    for (uint32_t i = 0; i < n; i++)
        ask_a_worker(&ss, len, i, pause_ms, w);
    kill_and_reap(w[0]);
    kill_and_reap(w[1]);
    OK(close(l));
}

TEST(prefork_workers_share_the_listeners_queue)
{
    serve_with_two_workers(tl_listener(FAM_INET, 64), worker, 30, 0);
}

/* The same with TCP_DEFER_ACCEPT on the listener: a worker's accept hands
 * out a connection only once its request is there to read. */
static int deferring_worker(void *arg)
{
    int l = *(int *)arg;
    for (;;) {
        int c = accept(l, NULL, NULL);
        if (c < 0)
            return 1;
        uint32_t id;
        if (recv(c, &id, 4, MSG_DONTWAIT) != 4)
            return 4;
        uint32_t reply[2] = {id, (uint32_t)getpid()};
        if (send(c, reply, sizeof reply, 0) != (ssize_t)sizeof reply)
            return 3;
        close(c);
    }
}

TEST(prefork_workers_accept_deferred_connections_once_their_data_came)
{
    int l = OK(socket(AF_INET, SOCK_STREAM, 0));
    struct sockaddr_storage ss;
    socklen_t len = tl_loop(FAM_INET, &ss, 0);
    OK(bind(l, (struct sockaddr *)&ss, len));
    tl_setint(l, IPPROTO_TCP, TCP_DEFER_ACCEPT, 5);
    OK(listen(l, 64));
    /* The workers look at the listener before each request comes. */
    serve_with_two_workers(l, deferring_worker, 10, 20);
}

/* A child that closes its copy ends nothing; the parent's copy goes on. */
static int close_and_wait(void *arg)
{
    int *fds = arg;
    close(fds[0]);
    struct gate g = {fds[1], -1};
    return gate_wait(&g);
}

TEST(a_holder_closing_its_copy_leaves_the_connection_open)
{
    int c, s;
    tl_stream_pair(FAM_INET, &c, &s);
    struct gate g;
    gate_open(&g);
    int args[2] = {s, g.r};
    pid_t child = spawn(close_and_wait, args);
    tl_sleep_ms(100);
    CHECK_EQ(tl_poll1(c, POLLIN, 100), 0);
    CHECK_EQ(send(c, "still", 5, 0), 5);
    char b[8];
    CHECK_EQ(read_n(s, b, 5), 0);
    CHECK_EQ(send(s, "here", 4, 0), 4);
    CHECK_EQ(read_n(c, b, 4), 0);
    gate_go(&g);
    reap(child);
    OK(close(s));
    CHECK(tl_poll1(c, POLLIN, 5000) & POLLIN);
    CHECK_EQ(recv(c, b, sizeof b, 0), 0);
    OK(close(c));
    close(g.r);
    close(g.w);
}

/* A child polls the listener it inherited and accepts there. */
static int poll_and_accept(void *arg)
{
    int l = *(int *)arg;
    struct pollfd p = {l, POLLIN, 0};
    if (poll(&p, 1, 10000) != 1 || !(p.revents & POLLIN))
        return 1;
    int c = accept(l, NULL, NULL);
    if (c < 0)
        return 2;
    return send(c, "x", 1, 0) == 1 ? 0 : 3;
}

TEST(fork_child_polls_and_accepts_on_an_inherited_listener)
{
    int l = tl_listener(FAM_INET, 8);
    struct sockaddr_storage ss;
    socklen_t len = tl_name(l, &ss);
    pid_t child = spawn(poll_and_accept, &l);
    tl_sleep_ms(50);
    int c = OK(socket(AF_INET, SOCK_STREAM, 0));
    OK(connect(c, (struct sockaddr *)&ss, len));
    char b;
    CHECK_EQ(read_n(c, &b, 1), 0);
    CHECK_EQ(b, 'x');
    reap(child);
    OK(close(c));
    OK(close(l));
}

/* A child waits in epoll for its inherited connection's input. */
static int epoll_and_read(void *arg)
{
    int s = *(int *)arg;
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = s};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev) != 0)
        return 1;
    struct epoll_event out;
    if (epoll_wait(ep, &out, 1, 10000) != 1 || out.data.fd != s)
        return 2;
    char b[4];
    if (recv(s, b, 4, 0) != 4 || memcmp(b, "data", 4))
        return 3;
    return 0;
}

TEST(fork_child_waits_in_epoll_on_an_inherited_connection)
{
    int c, s;
    tl_stream_pair(FAM_INET, &c, &s);
    pid_t child = spawn(epoll_and_read, &s);
    OK(close(s));
    tl_sleep_ms(50);
    CHECK_EQ(send(c, "data", 4, 0), 4);
    reap(child);
    OK(close(c));
}

/* Two processes read one end: every byte is read once, in order within
 * each reader. */
struct readers {
    int s;
    int report; /* write end of a pipe for the child's count and sum */
};

static int count_numbers(int s, uint64_t *count, uint64_t *sum)
{
    uint64_t last = 0;
    *count = *sum = 0;
    for (;;) {
        uint64_t v;
        ssize_t r = recv(s, &v, sizeof v, MSG_WAITALL);
        if (r == 0)
            return 0;
        if (r != (ssize_t)sizeof v || v <= last)
            return -1;
        last = v;
        (*count)++;
        *sum += v;
    }
}

static int second_reader(void *arg)
{
    struct readers *r = arg;
    uint64_t res[2];
    if (count_numbers(r->s, &res[0], &res[1]))
        return 1;
    return write(r->report, res, sizeof res) == (ssize_t)sizeof res ? 0 : 2;
}

TEST(two_processes_reading_one_end_read_each_byte_once)
{
    int c, s;
    tl_stream_pair(FAM_INET, &c, &s);
    int p[2];
    OK(pipe(p));
    struct readers r = {s, p[1]};
    pid_t child = spawn(second_reader, &r);
    const uint64_t n = 100000;
    /* Writer: this process, then end-of-stream for both readers. A
     * thread reads as the first reader meanwhile. */
    pid_t writer = fork();
    CHECK(writer >= 0);
    if (writer == 0) {
        close(s);
        for (uint64_t v = 1; v <= n; v++)
            if (send(c, &v, sizeof v, 0) != (ssize_t)sizeof v)
                _exit(1);
        shutdown(c, SHUT_WR);
        _exit(0);
    }
    OK(close(c));
    uint64_t count, sum;
    CHECK_EQ(count_numbers(s, &count, &sum), 0);
    reap(writer);
    reap(child);
    uint64_t theirs[2];
    CHECK_EQ(read(p[0], theirs, sizeof theirs), (ssize_t)sizeof theirs);
    CHECK_EQ(count + theirs[0], n);
    CHECK_EQ(sum + theirs[1], n * (n + 1) / 2);
    OK(close(s));
    close(p[0]);
    close(p[1]);
}

/* SHUT_WR by one holder is the connection's: the peer reads end-of-stream
 * while the other holder still has it open. */
static int shut_write(void *arg)
{
    return shutdown(*(int *)arg, SHUT_WR) == 0 ? 0 : 1;
}

TEST(shutdown_by_a_child_ends_the_stream_for_the_peer)
{
    int c, s;
    tl_stream_pair(FAM_INET, &c, &s);
    reap(spawn(shut_write, &s));
    char b[4];
    CHECK(tl_poll1(c, POLLIN, 5000) & POLLIN);
    CHECK_EQ(recv(c, b, sizeof b, 0), 0);
    /* The other direction is open: the parent still reads what c sends. */
    CHECK_EQ(send(c, "back", 4, 0), 4);
    CHECK_EQ(read_n(s, b, 4), 0);
    OK(close(s));
    OK(close(c));
}

/* The last holder killed: the peer reads end-of-stream. */
static int hold_forever(void *arg)
{
    (void)arg;
    while (pause() != 0 || errno == EINTR)
        ;
    return 1;
}

TEST(the_last_holder_killed_ends_the_stream)
{
    int c, s;
    tl_stream_pair(FAM_INET, &c, &s);
    pid_t child = spawn(hold_forever, NULL);
    OK(close(s));
    CHECK_EQ(tl_poll1(c, POLLIN, 100), 0);
    kill_and_reap(child);
    CHECK(tl_poll1(c, POLLIN, 5000) & POLLIN);
    char b[4];
    CHECK_EQ(recv(c, b, sizeof b, 0), 0);
    OK(close(c));
}

/* The last close with bytes unread resets the connection (tcp_close's
 * RST), whichever process it happens in. */
static int close_unread(void *arg)
{
    int *a = arg;
    struct gate g = {a[1], -1};
    if (gate_wait(&g))
        return 1;
    return close(a[0]) == 0 ? 0 : 2;
}

TEST(the_last_close_with_bytes_unread_is_a_reset)
{
    int c, s;
    tl_stream_pair(FAM_INET, &c, &s);
    struct gate g;
    gate_open(&g);
    int args[2] = {s, g.r};
    pid_t child = spawn(close_unread, args);
    OK(close(s));
    CHECK_EQ(send(c, "unread", 6, 0), 6);
    tl_sleep_ms(50);
    gate_go(&g);
    reap(child);
    CHECK(tl_poll1(c, POLLIN, 5000) & (POLLIN | POLLERR | POLLHUP));
    char b[8];
    CHECK_ERRNO(recv(c, b, sizeof b, 0), ECONNRESET);
    OK(close(c));
    close(g.r);
    close(g.w);
}

/* Socket activation: a listener handed to a new program at fd 3 across
 * exec accepts there. */
TEST(an_exec_d_program_accepts_on_a_listener_it_inherited)
{
    int l = tl_listener(FAM_INET, 8);
    struct sockaddr_storage ss;
    socklen_t len = tl_name(l, &ss);
    pid_t child = exec_self("listener", l, -1);
    int c = OK(socket(AF_INET, SOCK_STREAM, 0));
    OK(connect(c, (struct sockaddr *)&ss, len));
    char b[32];
    CHECK_EQ(read_n(c, b, 19), 0);
    CHECK(memcmp(b, "accepted after exec", 19) == 0);
    reap(child);
    OK(close(c));
    OK(close(l));
}

/* inetd's way: a connection at the new program's stdin and stdout. */
TEST(an_exec_d_program_serves_a_connection_on_stdin_and_stdout)
{
    int c, s;
    tl_stream_pair(FAM_INET, &c, &s);
    pid_t child = exec_self("conn", -1, s);
    OK(close(s));
    ask_the_last_holder(c, child, "hello", "HELLO");
}

/* The same with the connecting end handed on (a client that execs a
 * helper on its connection, as ssh's ProxyCommand users do). */
TEST(an_exec_d_program_serves_the_connecting_end)
{
    int c, s;
    tl_stream_pair(FAM_INET, &c, &s);
    pid_t child = exec_self("conn", -1, c);
    OK(close(c));
    ask_the_last_holder(s, child, "hello", "HELLO");
}

/* inetd's way through execl, execlp and execle, which glibc builds on an
 * execve inside libc. */
TEST(a_connection_crosses_execl_execlp_and_execle)
{
    static const enum exec_call calls[] = {BY_EXECL, BY_EXECLP, BY_EXECLE};
    for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
        int c, s;
        tl_stream_pair(FAM_INET, &c, &s);
        pid_t child = exec_self_by(calls[i], "conn", -1, s);
        OK(close(s));
        ask_the_last_holder(c, child, "hello", "HELLO");
    }
}

/* The program's own path, for a shell command or posix_spawn. */
static const char *self_path(void)
{
    static char path[4096];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    CHECK(n > 0);
    path[n] = 0;
    return path;
}

/* posix_spawn with file actions that put the connection at 0 and 1; the
 * socket has FD_CLOEXEC, as a careful program's has: only the dup2 of the
 * file actions makes it cross. */
TEST(a_connection_crosses_posix_spawn_by_its_file_actions)
{
    int c, s;
    tl_stream_pair(FAM_INET, &c, &s);
    OK(fcntl(s, F_SETFD, FD_CLOEXEC));
    posix_spawn_file_actions_t fa;
    CHECK_EQ(posix_spawn_file_actions_init(&fa), 0);
    CHECK_EQ(posix_spawn_file_actions_adddup2(&fa, s, 0), 0);
    CHECK_EQ(posix_spawn_file_actions_adddup2(&fa, s, 1), 0);
    char *argv[] = {(char *)"t_shared", NULL};
    OK(setenv("T_SHARED_EXEC", "conn", 1));
    fflush(stdout);
    pid_t child;
    int r = posix_spawn(&child, self_path(), &fa, NULL, argv, environ);
    OK(unsetenv("T_SHARED_EXEC"));
    CHECK_EQ(r, 0);
    posix_spawn_file_actions_destroy(&fa);
    CHECK_EQ(fcntl(s, F_GETFD), FD_CLOEXEC);
    OK(close(s));
    ask_the_last_holder(c, child, "hello", "HELLO");
}

/* A shell that system() or popen() starts hands the connection on by its
 * redirections; the caller's socket works again when the call returns. */
static void check_after_a_shell(int c, int s)
{
    char b[8];
    CHECK_EQ(read_n(c, b, 5), 0);
    CHECK(memcmp(b, "HELLO", 5) == 0);
    CHECK_EQ(send(s, "after", 5, 0), 5);
    CHECK_EQ(read_n(c, b, 5), 0);
    CHECK(memcmp(b, "after", 5) == 0);
    OK(close(s));
    CHECK(tl_poll1(c, POLLIN, 5000) & POLLIN);
    CHECK_EQ(recv(c, b, sizeof b, 0), 0);
    OK(close(c));
}

TEST(a_connection_crosses_system_and_popen)
{
    for (int by_popen = 0; by_popen < 2; by_popen++) {
        int c, s;
        tl_stream_pair(FAM_INET, &c, &s);
        CHECK_EQ(send(c, "hello", 5, 0), 5);
        char cmd[4200];
        snprintf(cmd, sizeof cmd, "T_SHARED_EXEC=conn exec '%s' <&%d >&%d", self_path(), s, s);
        fflush(stdout);
        if (by_popen) {
            FILE *f = popen(cmd, "r");
            CHECK(f != NULL);
            CHECK_EQ(pclose(f), 0);
        } else {
            CHECK_EQ(system(cmd), 0);
        }
        check_after_a_shell(c, s);
    }
}

/* O_NONBLOCK belongs to the open file description, which fork shares: a
 * child's F_SETFL is the parent's too (a listener and a connection). */
static int set_nonblock(void *arg)
{
    int *fds = arg;
    for (int i = 0; i < 2; i++) {
        int fl = fcntl(fds[i], F_GETFL);
        if (fl < 0 || fcntl(fds[i], F_SETFL, fl | O_NONBLOCK) != 0)
            return 1;
    }
    return 0;
}

static int clear_nonblock(void *arg)
{
    int fd = *(int *)arg;
    int fl = fcntl(fd, F_GETFL);
    return fl >= 0 && fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) == 0 ? 0 : 1;
}

TEST(o_nonblock_set_by_a_child_is_the_parents_too)
{
    int c, s;
    tl_stream_pair(FAM_INET, &c, &s);
    int l = tl_listener(FAM_INET, 4);
    int fds[2] = {s, l};
    CHECK_EQ(fcntl(s, F_GETFL) & O_NONBLOCK, 0);
    reap(spawn(set_nonblock, fds));
    CHECK(fcntl(s, F_GETFL) & O_NONBLOCK);
    CHECK(fcntl(l, F_GETFL) & O_NONBLOCK);
    char b;
    CHECK_ERRNO(recv(s, &b, 1, 0), EAGAIN);
    CHECK_ERRNO(accept(l, NULL, NULL), EAGAIN);
    /* The peer's flag is its own. */
    CHECK_EQ(fcntl(c, F_GETFL) & O_NONBLOCK, 0);
    reap(spawn(clear_nonblock, &s));
    CHECK_EQ(fcntl(s, F_GETFL) & O_NONBLOCK, 0);
    CHECK_EQ(send(c, "x", 1, 0), 1);
    CHECK_EQ(recv(s, &b, 1, 0), 1);
    OK(close(l));
    OK(close(s));
    OK(close(c));
}


/* ---- SCM_RIGHTS ------------------------------------------------------- */

/* A kernel AF_UNIX pair, made by the raw call in both builds: the
 * library's own AF_UNIX sockets would carry the fds themselves, where this
 * is about sockets crossing the kernel's SCM_RIGHTS. */
static void kernel_unix_pair(int sv[2])
{
    CHECK_EQ(syscall(SYS_socketpair, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
}

static void send_fds(int u, const int *fds, int n)
{
    char byte = 'F';
    struct iovec iov = {&byte, 1};
    union {
        char buf[CMSG_SPACE(4 * sizeof(int))];
        struct cmsghdr align;
    } ctl;
    memset(&ctl, 0, sizeof ctl);
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                       .msg_controllen = CMSG_SPACE((size_t)n * sizeof(int))};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN((size_t)n * sizeof(int));
    memcpy(CMSG_DATA(c), fds, (size_t)n * sizeof(int));
    CHECK_EQ(sendmsg(u, &m, 0), 1);
}

/* Receives exactly n fds in one SCM_RIGHTS message, with FD_CLOEXEC
 * (MSG_CMSG_CLOEXEC): 0, or the number of the check that failed. The
 * control data is what the kernel writes for n fds, to the byte. */
static int recv_fds(int u, int *fds, int n)
{
    char byte;
    struct iovec iov = {&byte, 1};
    union {
        char buf[CMSG_SPACE(8 * sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                       .msg_controllen = sizeof ctl.buf};
    if (recvmsg(u, &m, MSG_CMSG_CLOEXEC) != 1 || (m.msg_flags & MSG_CTRUNC))
        return 101;
    if (m.msg_controllen != CMSG_SPACE((size_t)n * sizeof(int)))
        return 102;
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
        c->cmsg_len != CMSG_LEN((size_t)n * sizeof(int)) || CMSG_NXTHDR(&m, c))
        return 103;
    memcpy(fds, CMSG_DATA(c), (size_t)n * sizeof(int));
    for (int i = 0; i < n; i++)
        if (fcntl(fds[i], F_GETFD) != FD_CLOEXEC)
            return 104;
    return 0;
}

/* The receiving child: a connection and a pipe's write end, in that
 * order; it serves the connection, then says so on the pipe. */
static int serve_what_came(void *arg)
{
    int u = *(int *)arg, fds[2];
    int r = recv_fds(u, fds, 2);
    if (r)
        return r;
    struct stat st;
    if (fstat(fds[1], &st) || !S_ISFIFO(st.st_mode))
        return 3;
    int type = 0;
    socklen_t tl = sizeof type;
    if (getsockopt(fds[0], SOL_SOCKET, SO_TYPE, &type, &tl) || type != SOCK_STREAM)
        return 4;
    struct sockaddr_in peer;
    socklen_t pl = sizeof peer;
    if (getpeername(fds[0], (struct sockaddr *)&peer, &pl) || peer.sin_family != AF_INET)
        return 5;
    r = serve_one(&fds[0]);
    if (r)
        return 10 + r;
    return write(fds[1], "d", 1) == 1 ? 0 : 6;
}

/* A connection handed to a process that did not exist when it was made
 * (forked before it), beside a pipe: the receiver gets both fds in order,
 * serves the connection, and it ends when the receiver, its last holder,
 * exits. */
TEST(scm_rights_hands_a_connection_to_another_process)
{
    int u[2], p[2];
    kernel_unix_pair(u);
    pid_t child = spawn(serve_what_came, &u[1]);
    OK(pipe(p));
    int c, s;
    tl_stream_pair(FAM_INET, &c, &s);
    int fds[2] = {s, p[1]};
    send_fds(u[0], fds, 2);
    OK(close(s));
    OK(close(p[1]));
    CHECK_EQ(send(c, "ping?", 5, 0), 5);
    char b[8];
    CHECK_EQ(read_n(c, b, 5), 0);
    CHECK(memcmp(b, "pong!", 5) == 0);
    CHECK_EQ(read(p[0], b, 1), 1);
    reap(child);
    CHECK(tl_poll1(c, POLLIN, 5000) & POLLIN);
    CHECK_EQ(recv(c, b, sizeof b, 0), 0);
    OK(close(c));
    OK(close(p[0]));
    OK(close(u[0]));
    OK(close(u[1]));
}

static int accept_what_came(void *arg)
{
    int u = *(int *)arg, l;
    int r = recv_fds(u, &l, 1);
    if (r)
        return r;
    int acc = 0;
    socklen_t al = sizeof acc;
    if (getsockopt(l, SOL_SOCKET, SO_ACCEPTCONN, &acc, &al) || !acc)
        return 2;
    int c = accept(l, NULL, NULL);
    if (c < 0)
        return 3;
    return send(c, "accepted after scm!", 19, 0) == 19 ? 0 : 4;
}

/* A listener handed on and closed by its sender: it lives on in the
 * receiver, its only holder, and its port still leads there. */
TEST(scm_rights_hands_a_listener_to_another_process)
{
    int u[2];
    kernel_unix_pair(u);
    pid_t child = spawn(accept_what_came, &u[1]);
    int l = tl_listener(FAM_INET, 8);
    struct sockaddr_storage ss;
    socklen_t len = tl_name(l, &ss);
    send_fds(u[0], &l, 1);
    OK(close(l));
    int c = OK(socket(AF_INET, SOCK_STREAM, 0));
    OK(connect(c, (struct sockaddr *)&ss, len));
    char b[32];
    CHECK_EQ(read_n(c, b, 19), 0);
    CHECK(memcmp(b, "accepted after scm!", 19) == 0);
    reap(child);
    OK(close(c));
    OK(close(u[0]));
    OK(close(u[1]));
}

static int accept_after_the_gate(void *arg)
{
    int *a = arg;
    struct gate g = {a[1], -1};
    if (gate_wait(&g))
        return 1;
    int c = accept(a[0], NULL, NULL);
    if (c < 0)
        return 2;
    return send(c, "still listening", 15, 0) == 15 ? 0 : 3;
}

/* The process that made a listener closes it after a fork: the child's
 * copy still listens, at the same port. */
TEST(a_listener_closed_by_its_maker_listens_on_in_a_fork_child)
{
    int l = tl_listener(FAM_INET, 8);
    struct sockaddr_storage ss;
    socklen_t len = tl_name(l, &ss);
    struct gate g;
    gate_open(&g);
    int a[2] = {l, g.r};
    pid_t child = spawn(accept_after_the_gate, a);
    OK(close(l));
    gate_go(&g);
    int c = OK(socket(AF_INET, SOCK_STREAM, 0));
    OK(connect(c, (struct sockaddr *)&ss, len));
    char b[16];
    CHECK_EQ(read_n(c, b, 15), 0);
    CHECK(memcmp(b, "still listening", 15) == 0);
    reap(child);
    OK(close(c));
    close(g.r);
    close(g.w);
}

static int just_exit(void *arg)
{
    (void)arg;
    return 0;
}

/* A listener that a fork child also held: once both copies are closed the
 * port is free again, for a bind without SO_REUSEADDR. */
TEST(a_port_is_free_again_when_its_last_holder_closes)
{
    int l = tl_listener(FAM_INET, 8);
    struct sockaddr_storage ss;
    socklen_t len = tl_name(l, &ss);
    reap(spawn(just_exit, NULL));
    OK(close(l));
    int again = OK(socket(AF_INET, SOCK_STREAM, 0));
    OK(bind(again, (struct sockaddr *)&ss, len));
    OK(listen(again, 1));
    int c = OK(socket(AF_INET, SOCK_STREAM, 0));
    OK(connect(c, (struct sockaddr *)&ss, len));
    int s = OK(accept(again, NULL, NULL));
    OK(close(s));
    OK(close(c));
    OK(close(again));
}

/* A daemon's way: keep the connection at 0, close every other fd
 * (closefrom), then serve. The library's own fds behind the socket are
 * not the program's to close. */
static int serve_after_closefrom(void *arg)
{
    int s = *(int *)arg;
    if (dup2(s, 0) != 0)
        return 1;
    closefrom(1);
    if (send(0, "ready", 5, 0) != 5)
        return 2;
    int zero = 0;
    return serve_one(&zero) ? 3 : 0;
}

TEST(closefrom_leaves_the_connection_below_it_working)
{
    int c, s;
    tl_stream_pair(FAM_INET, &c, &s);
    pid_t child = spawn(serve_after_closefrom, &s);
    OK(close(s));
    char b[8];
    CHECK_EQ(read_n(c, b, 5), 0);
    CHECK(memcmp(b, "ready", 5) == 0);
    /* The child, the connection's last holder, lives: no end yet. */
    CHECK_EQ(tl_poll1(c, POLLIN, 300), 0);
    ask_the_last_holder(c, child, "ping?", "pong!");
}

/* A socket in an epoll set, closed while the set still names it (and
 * another whose set was closed first): its peer sees the end at once, as
 * Linux takes a closed file out of every set. */
TEST(a_close_ends_a_connection_that_an_epoll_set_names)
{
    for (int close_set_first = 0; close_set_first < 2; close_set_first++) {
        int c, s;
        tl_stream_pair(FAM_INET, &c, &s);
        int ep = OK(epoll_create1(EPOLL_CLOEXEC));
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = s};
        OK(epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev));
        if (close_set_first)
            OK(close(ep));
        OK(close(s));
        CHECK(tl_poll1(c, POLLIN, 5000) & POLLIN);
        char b;
        CHECK_EQ(recv(c, &b, 1, 0), 0);
        OK(close(c));
        if (!close_set_first)
            OK(close(ep));
    }
}

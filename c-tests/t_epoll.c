/* epoll over a mix of sockets and kernel fds: readiness of listening,
 * connected and datagram sockets, pipes in the same set, level vs edge
 * triggering, EPOLLONESHOT, EPOLLRDHUP, EPOLLOUT, timeouts, epoll_pwait and
 * epoll_pwait2, errors, an epoll fd in poll() and in another epoll set, and
 * a thread blocked in epoll_wait woken from another thread. */
#include "testlib.h"

#include <sys/epoll.h>
#include <sys/wait.h>

static void add(int ep, int fd, uint32_t events, uint64_t data)
{
    struct epoll_event ev = {.events = events, .data.u64 = data};
    OK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev));
}

static void mod(int ep, int fd, uint32_t events, uint64_t data)
{
    struct epoll_event ev = {.events = events, .data.u64 = data};
    OK(epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev));
}

/* Waits up to ms for exactly one event; returns it (events 0 on timeout). */
static struct epoll_event wait1(int ep, int ms)
{
    struct epoll_event ev[4];
    memset(ev, 0, sizeof ev);
    int n = (int)OK(epoll_wait(ep, ev, 4, ms));
    CHECK(n <= 1);
    if (n == 0)
        ev[0].events = 0;
    return ev[0];
}

/* Collects events for up to ms until every bit of want (one per data value
 * 0..63) was seen; returns the bits seen and or-s each event into evs. */
static uint64_t wait_all(int ep, uint64_t want, uint32_t *evs, int ms)
{
    uint64_t seen = 0;
    long deadline = tl_now_ms() + ms;
    while ((seen & want) != want) {
        long left = deadline - tl_now_ms();
        if (left < 0)
            break;
        struct epoll_event ev[16];
        int n = (int)OK(epoll_wait(ep, ev, 16, (int)left));
        for (int i = 0; i < n; i++) {
            CHECK(ev[i].data.u64 < 64);
            seen |= 1ull << ev[i].data.u64;
            if (evs)
                evs[ev[i].data.u64] |= ev[i].events;
        }
    }
    return seen;
}

TEST_FAM(epoll_listen_socket)
{
    int l = tl_listener(fam, 4);
    int ep = (int)OK(epoll_create1(EPOLL_CLOEXEC));
    add(ep, l, EPOLLIN, 7);
    struct epoll_event ev[4];
    CHECK_EQ(OK(epoll_wait(ep, ev, 4, 0)), 0);
    struct sockaddr_storage ss;
    socklen_t len = tl_name(l, &ss);
    int k = (int)OK(socket(tl_domain(fam), SOCK_STREAM, 0));
    OK(connect(k, (struct sockaddr *)&ss, len));
    struct epoll_event e = wait1(ep, 3000);
    CHECK_EQ(e.events, EPOLLIN);
    CHECK_EQ(e.data.u64, 7);
    /* level-triggered: again until accepted */
    e = wait1(ep, 0);
    CHECK_EQ(e.events, EPOLLIN);
    int a = (int)OK(accept(l, NULL, NULL));
    CHECK_EQ(OK(epoll_wait(ep, ev, 4, 0)), 0);
    close(a); close(k); close(l); close(ep);
}

TEST_FAM(epoll_stream_in_out)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    int ep = (int)OK(epoll_create(1));
    add(ep, s, EPOLLIN, 1);
    add(ep, c, EPOLLOUT, 2);
    /* the connected end is writable, nothing readable yet */
    struct epoll_event e = wait1(ep, 2000);
    CHECK_EQ(e.events, EPOLLOUT);
    CHECK_EQ(e.data.u64, 2);
    mod(ep, c, EPOLLIN, 2);
    CHECK_EQ(wait1(ep, 0).events, 0);
    CHECK_EQ(OK(send(c, "hello", 5, 0)), 5);
    e = wait1(ep, 3000);
    CHECK_EQ(e.events, EPOLLIN);
    CHECK_EQ(e.data.u64, 1);
    char buf[8];
    CHECK_EQ(OK(recv(s, buf, sizeof buf, 0)), 5);
    CHECK_EQ(wait1(ep, 0).events, 0);
    /* both directions at once */
    mod(ep, s, EPOLLIN | EPOLLOUT, 1);
    e = wait1(ep, 2000);
    CHECK_EQ(e.events, EPOLLOUT);
    CHECK_EQ(OK(send(c, "x", 1, 0)), 1);
    uint32_t evs[4] = {0};
    long deadline = tl_now_ms() + 3000;
    while (!(evs[1] & EPOLLIN) && tl_now_ms() < deadline) {
        evs[1] = 0;
        wait_all(ep, 1u << 1, evs, 1000);
    }
    CHECK_EQ(evs[1], EPOLLIN | EPOLLOUT);
    close(c); close(s); close(ep);
}

TEST_FAM(epoll_dgram)
{
    int a, b;
    tl_dgram_pair(fam, &a, &b);
    int ep = (int)OK(epoll_create1(0));
    add(ep, b, EPOLLIN, 3);
    CHECK_EQ(wait1(ep, 0).events, 0);
    CHECK_EQ(OK(send(a, "d1", 2, 0)), 2);
    CHECK_EQ(OK(send(a, "d2", 2, 0)), 2);
    struct epoll_event e = wait1(ep, 3000);
    CHECK_EQ(e.events, EPOLLIN);
    CHECK_EQ(e.data.u64, 3);
    char buf[4];
    CHECK_EQ(OK(recv(b, buf, sizeof buf, 0)), 2);
    long deadline = tl_now_ms() + 3000;
    do
        e = wait1(ep, 1000);
    while (!e.events && tl_now_ms() < deadline);
    CHECK_EQ(e.events, EPOLLIN);
    CHECK_EQ(OK(recv(b, buf, sizeof buf, 0)), 2);
    CHECK_EQ(wait1(ep, 0).events, 0);
    /* a datagram socket is always writable */
    add(ep, a, EPOLLOUT, 4);
    e = wait1(ep, 1000);
    CHECK_EQ(e.events, EPOLLOUT);
    CHECK_EQ(e.data.u64, 4);
    close(a); close(b); close(ep);
}

TEST_FAM(epoll_pipe_and_sockets)
{
    int p[2];
    OK(pipe(p));
    int c, s;
    tl_stream_pair(fam, &c, &s);
    int l = tl_listener(fam, 4);
    int da, db;
    tl_dgram_pair(fam, &da, &db);
    int ep = (int)OK(epoll_create1(0));
    add(ep, p[0], EPOLLIN, 0);
    add(ep, s, EPOLLIN, 1);
    add(ep, l, EPOLLIN, 2);
    add(ep, db, EPOLLIN, 3);
    add(ep, p[1], EPOLLOUT, 4);
    /* idle: only the pipe's write end */
    struct epoll_event ev[8];
    int n = (int)OK(epoll_wait(ep, ev, 8, 0));
    CHECK_EQ(n, 1);
    CHECK_EQ(ev[0].data.u64, 4);
    CHECK_EQ(ev[0].events, EPOLLOUT);
    OK(epoll_ctl(ep, EPOLL_CTL_DEL, p[1], NULL));
    CHECK_EQ(OK(epoll_wait(ep, ev, 8, 0)), 0);
    /* everything readable */
    CHECK_EQ(OK(write(p[1], "p", 1)), 1);
    CHECK_EQ(OK(send(c, "s", 1, 0)), 1);
    CHECK_EQ(OK(send(da, "d", 1, 0)), 1);
    struct sockaddr_storage ss;
    socklen_t len = tl_name(l, &ss);
    int k = (int)OK(socket(tl_domain(fam), SOCK_STREAM, 0));
    OK(connect(k, (struct sockaddr *)&ss, len));
    uint32_t evs[8] = {0};
    CHECK_EQ(wait_all(ep, 0xf, evs, 3000), 0xf);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(evs[i], EPOLLIN);
    /* all four at once (level-triggered), and a small buffer takes turns */
    CHECK_EQ(OK(epoll_wait(ep, ev, 8, 0)), 4);
    uint64_t seen = 0;
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(OK(epoll_wait(ep, ev, 1, 0)), 1);
        seen |= 1ull << ev[0].data.u64;
    }
    CHECK(__builtin_popcountll(seen) >= 2);
    /* consumed: nothing left */
    char ch;
    CHECK_EQ(OK(read(p[0], &ch, 1)), 1);
    CHECK_EQ(OK(recv(s, &ch, 1, 0)), 1);
    CHECK_EQ(OK(recv(db, &ch, 1, 0)), 1);
    int a = (int)OK(accept(l, NULL, NULL));
    CHECK_EQ(OK(epoll_wait(ep, ev, 8, 0)), 0);
    /* DEL of a socket: no longer reported */
    OK(epoll_ctl(ep, EPOLL_CTL_DEL, s, NULL));
    CHECK_EQ(OK(send(c, "s", 1, 0)), 1);
    CHECK_EQ(OK(epoll_wait(ep, ev, 8, 200)), 0);
    close(a); close(k); close(p[0]); close(p[1]); close(c); close(s);
    close(l); close(da); close(db); close(ep);
}

TEST_FAM(epoll_level_vs_edge)
{
    int c, s, c2, s2;
    tl_stream_pair(fam, &c, &s);
    tl_stream_pair(fam, &c2, &s2);
    int ep = (int)OK(epoll_create1(0));
    add(ep, s, EPOLLIN, 1);           /* level */
    add(ep, s2, EPOLLIN | EPOLLET, 2); /* edge */
    CHECK_EQ(OK(send(c, "a", 1, 0)), 1);
    CHECK_EQ(OK(send(c2, "a", 1, 0)), 1);
    uint32_t evs[4] = {0};
    CHECK_EQ(wait_all(ep, 6, evs, 3000), 6);
    CHECK_EQ(evs[1], EPOLLIN);
    CHECK_EQ(evs[2], EPOLLIN);
    /* no new data: level reports again, edge does not */
    for (int i = 0; i < 3; i++) {
        struct epoll_event e = wait1(ep, 0);
        CHECK_EQ(e.events, EPOLLIN);
        CHECK_EQ(e.data.u64, 1);
    }
    char buf[8];
    CHECK_EQ(OK(recv(s, buf, sizeof buf, 0)), 1);
    CHECK_EQ(wait1(ep, 100).events, 0);
    /* new data on the edge-triggered socket: reported once more, even
     * though the first byte was never read */
    CHECK_EQ(OK(send(c2, "b", 1, 0)), 1);
    struct epoll_event e = wait1(ep, 3000);
    CHECK_EQ(e.events, EPOLLIN);
    CHECK_EQ(e.data.u64, 2);
    CHECK_EQ(wait1(ep, 100).events, 0);
    CHECK_EQ(OK(recv(s2, buf, sizeof buf, 0)), 2);
    CHECK_EQ(wait1(ep, 0).events, 0);
    close(c); close(s); close(c2); close(s2); close(ep);
}

TEST(epoll_edge_pipe_and_socket)
{
    int p[2];
    OK(pipe(p));
    int sv[2];
    OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    int ep = (int)OK(epoll_create1(0));
    add(ep, p[0], EPOLLIN | EPOLLET, 0);
    add(ep, sv[1], EPOLLIN | EPOLLET, 1);
    CHECK_EQ(OK(write(p[1], "x", 1)), 1);
    CHECK_EQ(OK(write(sv[0], "x", 1)), 1);
    CHECK_EQ(wait_all(ep, 3, NULL, 3000), 3);
    struct epoll_event ev[4];
    CHECK_EQ(OK(epoll_wait(ep, ev, 4, 50)), 0);
    close(p[0]); close(p[1]); close(sv[0]); close(sv[1]); close(ep);
}

TEST_FAM(epoll_oneshot)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    int ep = (int)OK(epoll_create1(0));
    add(ep, s, EPOLLIN | EPOLLONESHOT, 5);
    CHECK_EQ(OK(send(c, "a", 1, 0)), 1);
    struct epoll_event e = wait1(ep, 3000);
    CHECK_EQ(e.events, EPOLLIN);
    CHECK_EQ(e.data.u64, 5);
    /* disabled: neither the unread byte nor new data is reported */
    CHECK_EQ(wait1(ep, 0).events, 0);
    CHECK_EQ(OK(send(c, "b", 1, 0)), 1);
    CHECK_EQ(wait1(ep, 100).events, 0);
    /* still registered: ADD again is EEXIST */
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 5};
    CHECK_ERRNO(epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev), EEXIST);
    /* MOD re-arms it, with new data */
    mod(ep, s, EPOLLIN | EPOLLONESHOT, 6);
    e = wait1(ep, 3000);
    CHECK_EQ(e.events, EPOLLIN);
    CHECK_EQ(e.data.u64, 6);
    CHECK_EQ(wait1(ep, 0).events, 0);
    /* MOD without the flag: level-triggered from now on */
    mod(ep, s, EPOLLIN, 8);
    CHECK_EQ(wait1(ep, 1000).data.u64, 8);
    CHECK_EQ(wait1(ep, 0).data.u64, 8);
    close(c); close(s); close(ep);
}

TEST_FAM(epoll_rdhup)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    int ep = (int)OK(epoll_create1(0));
    add(ep, s, EPOLLIN | EPOLLRDHUP, 1);
    CHECK_EQ(wait1(ep, 0).events, 0);
    OK(shutdown(c, SHUT_WR));
    struct epoll_event e = wait1(ep, 3000);
    CHECK_EQ(e.events, EPOLLIN | EPOLLRDHUP);
    char ch;
    CHECK_EQ(OK(recv(s, &ch, 1, 0)), 0);
    /* without EPOLLRDHUP asked: EPOLLIN only */
    mod(ep, s, EPOLLIN, 1);
    CHECK_EQ(wait1(ep, 0).events, EPOLLIN);
    /* both sides shut: EPOLLHUP always reported */
    OK(shutdown(s, SHUT_WR));
    mod(ep, s, EPOLLOUT, 1);
    e = wait1(ep, 1000);
    CHECK(e.events & EPOLLHUP);
    close(c); close(s); close(ep);
}

TEST(epoll_timeouts)
{
    int sv[2];
    OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    int p[2];
    OK(pipe(p));
    int ep = (int)OK(epoll_create1(0));
    add(ep, sv[0], EPOLLIN, 1);
    add(ep, p[0], EPOLLIN, 2);
    struct epoll_event ev[4];
    long t0 = tl_now_ms();
    CHECK_EQ(OK(epoll_wait(ep, ev, 4, 150)), 0);
    long el = tl_now_ms() - t0;
    CHECK_MSG(el >= 140 && el < 2000, "epoll_wait(150) took %ld ms", el);
    t0 = tl_now_ms();
    CHECK_EQ(OK(epoll_wait(ep, ev, 4, 0)), 0);
    CHECK(tl_now_ms() - t0 < 100);
    /* a bad maxevents */
    CHECK_ERRNO(epoll_wait(ep, ev, 0, 0), EINVAL);
    volatile int neg = -1;
    CHECK_ERRNO(epoll_wait(ep, ev, neg, 0), EINVAL);
    close(sv[0]); close(sv[1]); close(p[0]); close(p[1]); close(ep);
}

TEST(epoll_pwait2_timeouts)
{
    int sv[2];
    OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    int p[2];
    OK(pipe(p));
    int ep = (int)OK(epoll_create1(0));
    add(ep, sv[0], EPOLLIN, 1);
    add(ep, p[0], EPOLLIN, 2);
    struct epoll_event ev[4];
    struct timespec ts = {0, 120 * 1000 * 1000};
    long t0 = tl_now_ms();
    int r = epoll_pwait2(ep, ev, 4, &ts, NULL);
    if (r == -1 && errno == ENOSYS)
        t_skip("epoll_pwait2", "the kernel has no epoll_pwait2 (Linux < 5.11)");
    CHECK_EQ(r, 0);
    long el = tl_now_ms() - t0;
    CHECK_MSG(el >= 110 && el < 2000, "epoll_pwait2(120ms) took %ld ms", el);
    struct timespec bad = {0, 2000000000L};
    CHECK_ERRNO(epoll_pwait2(ep, ev, 4, &bad, NULL), EINVAL);
    CHECK_EQ(OK(send(sv[1], "x", 1, 0)), 1);
    CHECK_EQ(OK(epoll_pwait2(ep, ev, 4, NULL, NULL)), 1);
    CHECK_EQ(ev[0].data.u64, 1);
    char ch;
    CHECK_EQ(OK(recv(sv[0], &ch, 1, 0)), 1);
    close(sv[0]); close(sv[1]); close(p[0]); close(p[1]); close(ep);
}

static volatile sig_atomic_t got_usr1;
static void on_usr1(int sig) { (void)sig; got_usr1 = 1; }

struct kick { pthread_t target; int fd; int ms; };

static void *kick_thread(void *arg)
{
    struct kick *k = arg;
    tl_sleep_ms(k->ms);
    if (k->fd >= 0)
        CHECK_EQ(send(k->fd, "k", 1, 0), 1);
    else
        pthread_kill(k->target, SIGUSR1);
    return NULL;
}

/* A socketpair whose sv[0] is in a new epoll set (data 1), and on_usr1
 * as SIGUSR1's handler (no SA_RESTART); returns the set. */
static int usr1_set(int sv[2])
{
    OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    int ep = (int)OK(epoll_create1(0));
    add(ep, sv[0], EPOLLIN, 1);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigemptyset(&sa.sa_mask);
    OK(sigaction(SIGUSR1, &sa, NULL));
    return ep;
}

TEST(epoll_pwait_mask)
{
    int sv[2];
    int ep = usr1_set(sv);
    sigset_t block, old, during;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    OK(pthread_sigmask(SIG_BLOCK, &block, &old));
    /* the mask in effect during the wait unblocks SIGUSR1: EINTR */
    sigemptyset(&during);
    got_usr1 = 0;
    struct kick k = {pthread_self(), -1, 100};
    pthread_t t;
    OK(pthread_create(&t, NULL, kick_thread, &k) == 0 ? 0 : -1);
    struct epoll_event ev[4];
    CHECK_ERRNO(epoll_pwait(ep, ev, 4, 5000, &during), EINTR);
    CHECK(got_usr1);
    pthread_join(t, NULL);
    /* a mask that keeps it blocked: the wait ends on data, not on the signal */
    got_usr1 = 0;
    struct kick k2 = {pthread_self(), -1, 50};
    OK(pthread_create(&t, NULL, kick_thread, &k2) == 0 ? 0 : -1);
    struct kick k3 = {pthread_self(), sv[1], 250};
    pthread_t t3;
    OK(pthread_create(&t3, NULL, kick_thread, &k3) == 0 ? 0 : -1);
    CHECK_EQ(OK(epoll_pwait(ep, ev, 4, 5000, &block)), 1);
    CHECK_EQ(ev[0].data.u64, 1);
    CHECK(!got_usr1);
    pthread_join(t, NULL);
    pthread_join(t3, NULL);
    OK(pthread_sigmask(SIG_SETMASK, &old, NULL)); /* delivers it now */
    CHECK(got_usr1);
    signal(SIGUSR1, SIG_DFL);
    close(sv[0]); close(sv[1]); close(ep);
}

/* A signal handled while epoll_wait is about to sleep ends the wait with
 * EINTR: a program that learns of its signals that way (nginx's SIGTERM
 * with master_process off) must not sleep on. The library spins before it
 * sleeps (USOCK_SPIN_US): this case runs itself again in a child with a
 * spin of 400 ms and the signal sent at 100 ms, inside it. The kernel
 * ignores the variable; the same case is the reference. */
TEST(epoll_wait_signal_while_spinning)
{
    if (getenv("T_EPOLL_SPIN_CHILD")) {
        int sv[2];
        int ep = usr1_set(sv);
        got_usr1 = 0;
        struct kick k = {pthread_self(), -1, 100};
        pthread_t t;
        OK(pthread_create(&t, NULL, kick_thread, &k) == 0 ? 0 : -1);
        struct epoll_event ev[4];
        long t0 = tl_now_ms();
        CHECK_ERRNO(epoll_wait(ep, ev, 4, 3000), EINTR);
        long el = tl_now_ms() - t0;
        CHECK_MSG(el < 1500, "epoll_wait ended %ld ms after it began", el);
        CHECK(got_usr1);
        pthread_join(t, NULL);
        signal(SIGUSR1, SIG_DFL);
        close(sv[0]); close(sv[1]); close(ep);
        return;
    }
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    OK(n);
    self[n] = 0;
    pid_t pid = fork();
    OK(pid);
    if (pid == 0) {
        setenv("T_EPOLL_SPIN_CHILD", "1", 1);
        setenv("USOCK_SPIN_US", "400000", 1);
        execl(self, self, "epoll_wait_signal_while_spinning", (char *)NULL);
        _exit(127);
    }
    int st;
    OK(waitpid(pid, &st, 0));
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child's run failed (status %#x)", st);
}

TEST(epoll_errors)
{
    int sv[2];
    OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    int p[2];
    OK(pipe(p));
    int ep = (int)OK(epoll_create1(0));
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 1};
    int fds[2] = {sv[0], p[0]};
    for (int i = 0; i < 2; i++) {
        int fd = fds[i];
        CHECK_ERRNO(epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev), ENOENT);
        CHECK_ERRNO(epoll_ctl(ep, EPOLL_CTL_DEL, fd, &ev), ENOENT);
        OK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev));
        CHECK_ERRNO(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev), EEXIST);
        OK(epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev));
        CHECK_ERRNO(epoll_ctl(ep, 99, fd, &ev), EINVAL);
        OK(epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL));
        CHECK_ERRNO(epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL), ENOENT);
        /* epfd that is not an epoll fd, or is the fd itself */
        CHECK_ERRNO(epoll_ctl(sv[1], EPOLL_CTL_ADD, fd, &ev), EINVAL);
        CHECK_ERRNO(epoll_ctl(p[1], EPOLL_CTL_ADD, fd, &ev), EINVAL);
        CHECK_ERRNO(epoll_ctl(fd, EPOLL_CTL_ADD, fd, &ev), EINVAL);
        /* bad fds */
        int bad = tl_lowest_free_fd();
        CHECK_ERRNO(epoll_ctl(bad, EPOLL_CTL_ADD, fd, &ev), EBADF);
        CHECK_ERRNO(epoll_ctl(-1, EPOLL_CTL_ADD, fd, &ev), EBADF);
        /* EPOLLEXCLUSIVE: accepted on ADD, not on MOD nor with ONESHOT */
        struct epoll_event x = {.events = EPOLLIN | EPOLLEXCLUSIVE};
        CHECK_ERRNO(epoll_ctl(ep, EPOLL_CTL_MOD, fd, &x), EINVAL);
        struct epoll_event xo = {.events = EPOLLIN | EPOLLEXCLUSIVE | EPOLLONESHOT};
        CHECK_ERRNO(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &xo), EINVAL);
        OK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &x));
        CHECK_ERRNO(epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev), EINVAL);
        OK(epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL));
        /* a bad event pointer */
        CHECK_ERRNO(epoll_ctl(ep, EPOLL_CTL_ADD, fd, tl_bad_ptr()), EFAULT);
    }
    int bad = tl_lowest_free_fd();
    CHECK_ERRNO(epoll_ctl(ep, EPOLL_CTL_ADD, bad, &ev), EBADF);
    CHECK_ERRNO(epoll_ctl(ep, EPOLL_CTL_ADD, ep, &ev), EINVAL);
    /* a regular file cannot be polled */
    char path[256];
    tl_path(path, sizeof path);
    int f = (int)OK(open(path, O_CREAT | O_RDWR, 0600));
    CHECK_ERRNO(epoll_ctl(ep, EPOLL_CTL_ADD, f, &ev), EPERM);
    close(f);
    unlink(path);
    /* waits on things that are not epoll fds */
    struct epoll_event out[2];
    CHECK_ERRNO(epoll_wait(bad, out, 2, 0), EBADF);
    CHECK_ERRNO(epoll_wait(sv[0], out, 2, 0), EINVAL);
    CHECK_ERRNO(epoll_wait(p[0], out, 2, 0), EINVAL);
    CHECK_ERRNO(epoll_create(0), EINVAL);
    CHECK_ERRNO(epoll_create1(12345), EINVAL);
    close(sv[0]); close(sv[1]); close(p[0]); close(p[1]); close(ep);
}

TEST(epoll_close_removes)
{
    int sv[2], sv2[2];
    OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv2));
    int ep = (int)OK(epoll_create1(0));
    add(ep, sv[0], EPOLLIN, 1);
    add(ep, sv2[0], EPOLLIN, 2);
    CHECK_EQ(OK(send(sv[1], "x", 1, 0)), 1);
    CHECK_EQ(OK(send(sv2[1], "x", 1, 0)), 1);
    CHECK_EQ(wait_all(ep, 6, NULL, 3000), 6);
    /* a closed socket leaves the set */
    close(sv[0]);
    struct epoll_event e = wait1(ep, 0);
    CHECK_EQ(e.data.u64, 2);
    close(sv2[0]);
    CHECK_EQ(wait1(ep, 50).events, 0);
    /* a new socket under the same number is a new registration */
    int nv[2];
    OK(socketpair(AF_UNIX, SOCK_STREAM, 0, nv));
    add(ep, nv[0], EPOLLIN, 3);
    CHECK_EQ(OK(send(nv[1], "x", 1, 0)), 1);
    e = wait1(ep, 3000);
    CHECK_EQ(e.data.u64, 3);
    close(nv[0]); close(nv[1]); close(sv[1]); close(sv2[1]);
    /* a closed epoll fd's number reused by a new set: the new set is empty */
    close(ep);
    int ep2 = (int)OK(epoll_create1(0));
    CHECK_EQ(wait1(ep2, 0).events, 0);
    close(ep2);
}

TEST_FAM(epoll_fd_in_poll)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    int p[2];
    OK(pipe(p));
    int ep = (int)OK(epoll_create1(0));
    add(ep, s, EPOLLIN, 1);
    add(ep, p[0], EPOLLIN, 2);
    CHECK_EQ(tl_poll1(ep, POLLIN, 0), 0);
    CHECK_EQ(OK(send(c, "x", 1, 0)), 1);
    CHECK_EQ(tl_poll1(ep, POLLIN, 3000), POLLIN);
    struct epoll_event e = wait1(ep, 0);
    CHECK_EQ(e.data.u64, 1);
    /* still readable while the socket is (level-triggered) */
    CHECK_EQ(tl_poll1(ep, POLLIN, 0), POLLIN);
    char ch;
    CHECK_EQ(OK(recv(s, &ch, 1, 0)), 1);
    CHECK_EQ(wait1(ep, 0).events, 0);
    CHECK_EQ(tl_poll1(ep, POLLIN, 0), 0);
    /* the pipe wakes it too */
    CHECK_EQ(OK(write(p[1], "x", 1)), 1);
    CHECK_EQ(tl_poll1(ep, POLLIN, 3000), POLLIN);
    /* select() as well */
    fd_set r;
    FD_ZERO(&r);
    FD_SET(ep, &r);
    struct timeval tv = {1, 0};
    CHECK_EQ(OK(select(ep + 1, &r, NULL, NULL, &tv)), 1);
    close(c); close(s); close(p[0]); close(p[1]); close(ep);
}

TEST_FAM(epoll_nested)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    int inner = (int)OK(epoll_create1(0));
    int outer = (int)OK(epoll_create1(0));
    add(inner, s, EPOLLIN, 1);
    add(outer, inner, EPOLLIN, 42);
    int sv[2];
    OK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
    add(outer, sv[0], EPOLLIN, 43);
    CHECK_EQ(wait1(outer, 0).events, 0);
    CHECK_EQ(OK(send(c, "x", 1, 0)), 1);
    struct epoll_event e = wait1(outer, 3000);
    CHECK_EQ(e.events, EPOLLIN);
    CHECK_EQ(e.data.u64, 42);
    e = wait1(inner, 0);
    CHECK_EQ(e.events, EPOLLIN);
    CHECK_EQ(e.data.u64, 1);
    char ch;
    CHECK_EQ(OK(recv(s, &ch, 1, 0)), 1);
    CHECK_EQ(wait1(inner, 0).events, 0);
    /* a socket directly in the outer set, next to the inner set */
    CHECK_EQ(OK(send(sv[1], "y", 1, 0)), 1);
    e = wait1(outer, 3000);
    CHECK_EQ(e.data.u64, 43);
    CHECK_EQ(OK(recv(sv[0], &ch, 1, 0)), 1);
    /* a loop is refused */
    struct epoll_event ev = {.events = EPOLLIN};
    CHECK_ERRNO(epoll_ctl(inner, EPOLL_CTL_ADD, outer, &ev), ELOOP);
    close(c); close(s); close(sv[0]); close(sv[1]); close(inner); close(outer);
}

struct waiter { int ep; int n; struct epoll_event ev; long ms; };

static void *waiter_thread(void *arg)
{
    struct waiter *w = arg;
    w->n = epoll_wait(w->ep, &w->ev, 1, -1);
    w->ms = tl_now_ms(); /* when it returned */
    return NULL;
}

TEST_FAM(epoll_wakes_blocked_thread)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    int p[2];
    OK(pipe(p));
    int ep = (int)OK(epoll_create1(0));
    add(ep, s, EPOLLIN, 1);
    add(ep, p[0], EPOLLIN, 2);
    for (int round = 0; round < 2; round++) {
        struct waiter w = {ep, -2, {0, {0}}, 0};
        pthread_t t;
        OK(pthread_create(&t, NULL, waiter_thread, &w) == 0 ? 0 : -1);
        tl_sleep_ms(100);
        long sent = tl_now_ms();
        if (round == 0)
            CHECK_EQ(OK(send(c, "x", 1, 0)), 1);
        else
            CHECK_EQ(OK(write(p[1], "x", 1)), 1);
        pthread_join(t, NULL);
        CHECK_EQ(w.n, 1);
        CHECK_EQ(w.ev.events, EPOLLIN);
        CHECK_EQ(w.ev.data.u64, (uint64_t)round + 1);
        CHECK(w.ms >= sent); /* not before the data */
        char ch;
        if (round == 0)
            CHECK_EQ(OK(recv(s, &ch, 1, 0)), 1);
        else
            CHECK_EQ(OK(read(p[0], &ch, 1)), 1);
    }
    /* a socket added while a thread waits */
    int c2, s2;
    tl_stream_pair(fam, &c2, &s2);
    CHECK_EQ(OK(send(c2, "z", 1, 0)), 1);
    tl_sleep_ms(50);
    struct waiter w = {ep, -2, {0, {0}}, 0};
    pthread_t t;
    OK(pthread_create(&t, NULL, waiter_thread, &w) == 0 ? 0 : -1);
    tl_sleep_ms(100);
    add(ep, s2, EPOLLIN, 3);
    pthread_join(t, NULL);
    CHECK_EQ(w.n, 1);
    CHECK_EQ(w.ev.data.u64, 3);
    close(c); close(s); close(c2); close(s2); close(p[0]); close(p[1]); close(ep);
}

TEST(epoll_small_buffer_takes_turns)
{
    /* two sockets and a pipe always ready, one event per call: all three
     * come out, kernel fds are not starved by the sockets */
    int a[2], b[2], p[2];
    OK(socketpair(AF_UNIX, SOCK_STREAM, 0, a));
    OK(socketpair(AF_UNIX, SOCK_STREAM, 0, b));
    OK(pipe(p));
    int ep = (int)OK(epoll_create1(0));
    add(ep, a[0], EPOLLIN, 0);
    add(ep, b[0], EPOLLIN, 1);
    add(ep, p[0], EPOLLIN, 2);
    CHECK_EQ(OK(send(a[1], "x", 1, 0)), 1);
    CHECK_EQ(OK(send(b[1], "x", 1, 0)), 1);
    CHECK_EQ(OK(write(p[1], "x", 1)), 1);
    CHECK_EQ(wait_all(ep, 7, NULL, 3000), 7);
    uint64_t seen = 0;
    for (int i = 0; i < 6; i++) {
        struct epoll_event e;
        CHECK_EQ(OK(epoll_wait(ep, &e, 1, 0)), 1);
        seen |= 1ull << e.data.u64;
    }
    CHECK_EQ(seen, 7);
    close(a[0]); close(a[1]); close(b[0]); close(b[1]); close(p[0]); close(p[1]);
    close(ep);
}

#define NPAIRS 8
#define ROUNDS 200
#define NWORKERS 4

struct pool { int ep; int c[NPAIRS]; int s[NPAIRS]; _Atomic long got; };

static void *pool_worker(void *arg)
{
    struct pool *pl = arg;
    for (;;) {
        struct epoll_event ev[4];
        int n = epoll_wait(pl->ep, ev, 4, 5000);
        CHECK(n > 0);
        for (int i = 0; i < n; i++) {
            uint64_t d = ev[i].data.u64;
            if (d == 99)
                return NULL;
            CHECK(d < NPAIRS);
            char buf[64];
            for (;;) {
                ssize_t r = recv(pl->s[d], buf, sizeof buf, MSG_DONTWAIT);
                if (r < 0) {
                    CHECK(errno == EAGAIN);
                    break;
                }
                CHECK(r > 0);
                pl->got += r;
            }
            mod(pl->ep, pl->s[d], EPOLLIN | EPOLLONESHOT, d);
        }
    }
}

TEST(epoll_oneshot_thread_pool)
{
    struct pool pl;
    pl.got = 0;
    pl.ep = (int)OK(epoll_create1(0));
    for (int i = 0; i < NPAIRS; i++) {
        int sv[2];
        OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
        pl.c[i] = sv[0];
        pl.s[i] = sv[1];
        add(pl.ep, pl.s[i], EPOLLIN | EPOLLONESHOT, (uint64_t)i);
    }
    int stop[2];
    OK(pipe(stop));
    add(pl.ep, stop[0], EPOLLIN, 99);
    pthread_t t[NWORKERS];
    for (int i = 0; i < NWORKERS; i++)
        OK(pthread_create(&t[i], NULL, pool_worker, &pl) == 0 ? 0 : -1);
    for (int r = 0; r < ROUNDS; r++) {
        for (int i = 0; i < NPAIRS; i++)
            CHECK_EQ(OK(send(pl.c[i], "x", 1, 0)), 1);
        if (r % 16 == 0)
            tl_sleep_ms(1);
    }
    long deadline = tl_now_ms() + 10000;
    while (pl.got < NPAIRS * ROUNDS && tl_now_ms() < deadline)
        tl_sleep_ms(5);
    CHECK_EQ(pl.got, NPAIRS * ROUNDS);
    CHECK_EQ(OK(write(stop[1], "s", 1)), 1);
    for (int i = 0; i < NWORKERS; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < NPAIRS; i++) {
        close(pl.c[i]);
        close(pl.s[i]);
    }
    close(stop[0]); close(stop[1]); close(pl.ep);
}

TEST(epoll_kernel_only_set_beside_socket_set)
{
    /* a set of kernel fds only, while another set holds sockets */
    int sv[2], p[2];
    OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    OK(pipe(p));
    int eps = (int)OK(epoll_create1(0));
    int epk = (int)OK(epoll_create1(0));
    add(eps, sv[0], EPOLLIN, 1);
    add(epk, p[0], EPOLLIN | EPOLLET, 2);
    CHECK_EQ(wait1(epk, 0).events, 0);
    CHECK_EQ(OK(write(p[1], "x", 1)), 1);
    struct epoll_event e = wait1(epk, 3000);
    CHECK_EQ(e.events, EPOLLIN);
    CHECK_EQ(e.data.u64, 2);
    CHECK_EQ(wait1(epk, 0).events, 0); /* edge-triggered */
    CHECK_EQ(wait1(eps, 0).events, 0);
    CHECK_EQ(OK(send(sv[1], "x", 1, 0)), 1);
    CHECK_EQ(wait1(eps, 3000).data.u64, 1);
    CHECK_EQ(wait1(epk, 0).events, 0);
    close(sv[0]); close(sv[1]); close(p[0]); close(p[1]); close(eps); close(epk);
}

/* A socket of an epoll set, used in other ways too. Through the
 * cross-process backend (make test-c runs this program with USOCK_NET),
 * an epoll set's waits read its sockets' input themselves, as the kernel
 * does for TCP; each case below is a way of using the socket in which
 * nobody would read it if that were all. */

static void set_rcvtimeo(int fd, long ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    OK(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
}

/* A connected pair whose *s is in a new epoll set (data 1); returns it. */
static int member_pair(int fam, uint32_t events, int *c, int *s)
{
    tl_stream_pair(fam, c, s);
    int ep = (int)OK(epoll_create1(0));
    add(ep, *s, events, 1);
    return ep;
}

/* Starts kick_thread on *k. */
static pthread_t kick_later(struct kick *k)
{
    pthread_t t;
    OK(pthread_create(&t, NULL, kick_thread, k) == 0 ? 0 : -1);
    return t;
}

/* a blocking recv on a member, with no epoll_wait at all */
TEST_FAM(epoll_member_blocking_recv)
{
    int c, s;
    int ep = member_pair(fam, EPOLLIN | EPOLLET, &c, &s);
    struct kick k = {pthread_self(), c, 50};
    pthread_t t = kick_later(&k);
    set_rcvtimeo(s, 3000);
    char ch = 0;
    CHECK_EQ(OK(recv(s, &ch, 1, 0)), 1);
    CHECK_EQ(ch, 'k');
    pthread_join(t, NULL);
    close(c); close(s); close(ep);
}

/* poll() on a member */
TEST_FAM(epoll_member_poll)
{
    int c, s;
    int ep = member_pair(fam, EPOLLIN, &c, &s);
    struct kick k = {pthread_self(), c, 50};
    pthread_t t = kick_later(&k);
    CHECK_EQ(tl_poll1(s, POLLIN, 3000), POLLIN);
    pthread_join(t, NULL);
    close(c); close(s); close(ep);
}

/* input that came while nobody waited is there at the next epoll_wait,
 * even one that does not wait */
TEST_FAM(epoll_member_input_while_away)
{
    int c, s;
    int ep = member_pair(fam, EPOLLIN, &c, &s);
    CHECK_EQ(OK(send(c, "abc", 3, 0)), 3);
    tl_sleep_ms(50);
    struct epoll_event ev[4];
    CHECK_EQ(OK(epoll_wait(ep, ev, 4, 0)), 1);
    CHECK_EQ(ev[0].data.u64, 1);
    char b[8];
    CHECK_EQ(OK(recv(s, b, sizeof b, MSG_DONTWAIT)), 3);
    close(c); close(s); close(ep);
}

/* a socket deleted from the set: its input is not reported there, and
 * a reader still gets it */
TEST_FAM(epoll_deleted_member_still_reads)
{
    int c, s, c2, s2;
    tl_stream_pair(fam, &c, &s);
    tl_stream_pair(fam, &c2, &s2);
    int ep = (int)OK(epoll_create1(0));
    add(ep, s, EPOLLIN, 1);
    add(ep, s2, EPOLLIN, 2);
    OK(epoll_ctl(ep, EPOLL_CTL_DEL, s, NULL));
    CHECK_EQ(OK(send(c, "xy", 2, 0)), 2);
    struct epoll_event ev[4];
    CHECK_EQ(OK(epoll_wait(ep, ev, 4, 100)), 0);
    set_rcvtimeo(s, 3000);
    char b[4];
    CHECK_EQ(OK(recv(s, b, sizeof b, 0)), 2);
    /* and the set still reports the member it has */
    CHECK_EQ(OK(send(c2, "z", 1, 0)), 1);
    CHECK_EQ(OK(epoll_wait(ep, ev, 4, 3000)), 1);
    CHECK_EQ(ev[0].data.u64, 2);
    close(c); close(s); close(c2); close(s2); close(ep);
}

struct drain { int fd; size_t got; int eof; };

static void *drain_thread(void *arg)
{
    struct drain *d = arg;
    char buf[65536];
    for (;;) {
        ssize_t r = recv(d->fd, buf, sizeof buf, 0);
        if (r <= 0) {
            d->eof = r == 0;
            return NULL;
        }
        d->got += (size_t)r;
    }
}

/* a member closed with bytes still on their way: the peer gets them all,
 * then end-of-stream (the peer's window updates must still be read) */
TEST_FAM(epoll_member_close_delivers_everything)
{
    int c, s;
    int ep = member_pair(fam, EPOLLIN | EPOLLOUT, &c, &s);
    struct drain d = {c, 0, 0};
    set_rcvtimeo(c, 10000);
    pthread_t t;
    OK(pthread_create(&t, NULL, drain_thread, &d) == 0 ? 0 : -1);
    const size_t total = 8u << 20;
    char *buf = calloc(1, 1 << 20);
    CHECK(buf != NULL);
    for (size_t sent = 0; sent < total; sent += 1 << 20)
        CHECK_EQ(tl_write_all(s, buf, 1 << 20), 1 << 20);
    free(buf);
    close(s);
    pthread_join(t, NULL);
    CHECK_EQ(d.got, total);
    CHECK(d.eof);
    close(c); close(ep);
}

/* a socket deleted from its set and then only polled with non-blocking
 * calls (no wait anywhere) still gets its input */
TEST_FAM(epoll_deleted_member_nonblocking_reads)
{
    int c, s;
    int ep = member_pair(fam, EPOLLIN, &c, &s);
    OK(epoll_ctl(ep, EPOLL_CTL_DEL, s, NULL));
    CHECK_EQ(OK(send(c, "hello", 5, 0)), 5);
    char b[8];
    ssize_t r = -1;
    for (int i = 0; i < 3000 && r < 0; i++) {
        r = recv(s, b, sizeof b, MSG_DONTWAIT);
        if (r < 0) {
            CHECK(errno == EAGAIN || errno == EWOULDBLOCK);
            tl_sleep_ms(1);
        }
    }
    CHECK_EQ(r, 5);
    close(c); close(s); close(ep);
}

/* The time an epoll_wait with timeout `ms` took, in ms; it must return
 * `want` events. */
static long timed_wait(int ep, int ms, int want)
{
    struct epoll_event ev[4];
    long t0 = tl_now_ms();
    CHECK_EQ(OK(epoll_wait(ep, ev, 4, ms)), want);
    return tl_now_ms() - t0;
}

/* A member read to its end and then deleted from the set (asyncio's
 * transport on EOF) while a kernel fd stays: the peer's close is old news
 * to the set, whose waits return on time, the zero timeout at once
 * (CPython's test_asyncio hung here). */
TEST_FAM(epoll_deleted_member_after_the_peers_close)
{
    int c, s;
    int ep = member_pair(fam, EPOLLIN, &c, &s);
    int p[2];
    OK(pipe(p));
    add(ep, p[0], EPOLLIN, 2);
    CHECK_EQ(OK(send(c, "bye", 3, 0)), 3);
    close(c);
    struct epoll_event ev[4];
    CHECK_EQ(OK(epoll_wait(ep, ev, 4, 5000)), 1);
    CHECK_EQ(ev[0].data.u64, 1u);
    char b[8];
    CHECK_EQ(tl_read_all(s, b, 3), 3);
    CHECK_EQ(OK(recv(s, b, sizeof b, 0)), 0);
    OK(epoll_ctl(ep, EPOLL_CTL_DEL, s, NULL));
    CHECK(timed_wait(ep, 0, 0) < 1000);
    CHECK(timed_wait(ep, 100, 0) < 1000);
    /* the set still wakes for the fd it has */
    CHECK_EQ(OK(write(p[1], "x", 1)), 1);
    CHECK_EQ(OK(epoll_wait(ep, ev, 4, 5000)), 1);
    CHECK_EQ(ev[0].data.u64, 2u);
    close(p[0]); close(p[1]); close(s); close(ep);
}

/* An edge-triggered member whose peer closed, once that was reported:
 * later waits report nothing new and time out on time. */
TEST_FAM(epoll_edge_member_after_the_peers_close)
{
    int c, s;
    int ep = member_pair(fam, EPOLLIN | EPOLLRDHUP | EPOLLET, &c, &s);
    close(c);
    struct epoll_event ev[4];
    CHECK_EQ(OK(epoll_wait(ep, ev, 4, 5000)), 1);
    CHECK(ev[0].events & EPOLLRDHUP);
    CHECK(timed_wait(ep, 0, 0) < 1000);
    CHECK(timed_wait(ep, 100, 0) < 1000);
    close(s); close(ep);
}

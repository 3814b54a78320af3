/*
 * t_reuseport.c - SO_REUSEPORT across processes, as Linux does it (issue
 * 13's remaining gap): two programs each listen on one TCP port with
 * SO_REUSEPORT (nginx's `listen ... reuseport`, two python listeners) and
 * the port's connections spread over them, each accepted once; when one
 * listener closes, or its process is killed, the other takes every
 * connection; a reuseport socket of
 * another user cannot join. UDP: two programs bound with SO_REUSEPORT
 * share the port's datagrams, each exactly once, one client's datagrams
 * all to one socket (Linux hashes the 4-tuple).
 *
 * The members are separate programs: this one run again by exec
 * (T_REUSEPORT_EXEC), each making its own socket, not one it inherited.
 *
 * Against the library the processes need a network: linked with the
 * library and given none, the program makes one (USOCK_NET, a fresh
 * directory; as root one that admits nobody, as `usockrun --user nobody`
 * does, for the other-user case). USOCK_SHM=1 in the environment picks the
 * shared-memory backend.
 */
#include "testlib.h"

#include <signal.h>
#include <sys/wait.h>

/* Fork children here start the library's threads (testlib.h). */
TL_TSAN_THREADS_AFTER_FORK

extern int usock_socket(int domain, int type, int protocol) __attribute__((weak));

static char own_net[64];

static void remove_net(void)
{
    if (!own_net[0])
        return;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", own_net);
    if (system(cmd) != 0) { /* left in /tmp */ }
}

__attribute__((constructor(101))) static void make_network(void)
{
    if (usock_socket == NULL || getenv("USOCK_NET") || getenv("T_REUSEPORT_EXEC"))
        return;
    snprintf(own_net, sizeof own_net, "/tmp/t_reuseport-XXXXXX");
    if (!mkdtemp(own_net)) {
        perror("t_reuseport: mkdtemp");
        exit(2);
    }
    if (geteuid() == 0 && chown(own_net, 65534, (gid_t)-1) == 0)
        setenv("USOCK_NET_USERS", "0,65534", 1);
    setenv("USOCK_NET", own_net, 1);
    atexit(remove_net);
}

/* ---- the member program ------------------------------------------------- */

/* T_REUSEPORT_EXEC="tcp FAM PORT" or "udp FAM PORT": makes a socket of
 * family FAM (0 inet, 1 inet6) with SO_REUSEPORT on loopback PORT (TCP:
 * listening), writes "R" on fd 1 (or "E" and the errno), then reports on
 * fd 1 what arrives, as "N" and 4 bytes: TCP, each connection's first 4
 * bytes (the client's number); UDP, each datagram's 4 bytes. It stops when fd 0 (a pipe from
 * the test) ends: it closes its socket, writes "C" and exits. */
static void member_report(int fd, const void *b, size_t n)
{
    if (write(fd, b, n) != (ssize_t)n)
        _exit(12);
}

__attribute__((constructor(200))) static void member(void)
{
    const char *spec = getenv("T_REUSEPORT_EXEC");
    if (!spec)
        return;
    char kind[8];
    int fam, port;
    if (sscanf(spec, "%7s %d %d", kind, &fam, &port) != 3)
        _exit(10);
    int udp = strcmp(kind, "udp") == 0;
    int s = socket(fam ? AF_INET6 : AF_INET, udp ? SOCK_DGRAM : SOCK_STREAM, 0);
    if (s < 0)
        _exit(11);
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t sl;
    if (fam) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        a->sin6_addr = in6addr_loopback;
        sl = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        sl = sizeof *a;
    }
    if (bind(s, (struct sockaddr *)&ss, sl) < 0 || (!udp && listen(s, 128) < 0)) {
        char e[8] = "E";
        int err = errno;
        memcpy(e + 1, &err, sizeof err);
        member_report(1, e, 1 + sizeof err);
        _exit(0);
    }
    member_report(1, "R", 1);
    for (;;) {
        struct pollfd p[2] = {{0, POLLIN, 0}, {s, POLLIN, 0}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            _exit(13);
        }
        if (p[1].revents & POLLIN) {
            char b[4];
            if (udp) {
                if (recv(s, b, 4, 0) == 4) {
                    member_report(1, "N", 1);
                    member_report(1, b, 4);
                }
            } else {
                int c = accept(s, NULL, NULL);
                if (c >= 0) {
                    size_t got = 0;
                    while (got < 4) {
                        ssize_t n = recv(c, b + got, 4 - got, 0);
                        if (n <= 0)
                            break;
                        got += (size_t)n;
                    }
                    if (got == 4) {
                        member_report(1, "N", 1);
                        member_report(1, b, 4);
                    }
                    close(c);
                }
            }
            continue;
        }
        if (p[0].revents) {
            close(s);
            member_report(1, "C", 1);
            _exit(0);
        }
    }
}

/* ---- the test's side --------------------------------------------------- */

struct member {
    pid_t pid;
    int ctl;    /* its fd 0: closing it stops the member */
    int report; /* its fd 1 */
};

/* Runs this program again as a member: 0 and the member once it reported
 * ready, else the errno of its bind or listen. */
static int start_member(struct member *m, const char *kind, int fam, int port)
{
    int ctl[2], rep[2];
    OK(pipe2(ctl, O_CLOEXEC));
    OK(pipe2(rep, O_CLOEXEC));
    char spec[64];
    snprintf(spec, sizeof spec, "%s %d %d", kind, fam == FAM_INET6, port);
    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        dup2(ctl[0], 0);
        dup2(rep[1], 1);
        setenv("T_REUSEPORT_EXEC", spec, 1);
        execl("/proc/self/exe", "t_reuseport", (char *)NULL);
        _exit(127);
    }
    OK(close(ctl[0]));
    OK(close(rep[1]));
    m->pid = pid;
    m->ctl = ctl[1];
    m->report = rep[0];
    CHECK(tl_poll1(m->report, POLLIN, 10000) & POLLIN);
    char r;
    CHECK_EQ(OK(read(m->report, &r, 1)), 1);
    if (r == 'R')
        return 0;
    CHECK_EQ(r, 'E');
    int err = 0;
    CHECK_EQ(OK(read(m->report, &err, sizeof err)), (long)sizeof err);
    int st;
    OK(waitpid(pid, &st, 0));
    OK(close(m->ctl));
    OK(close(m->report));
    return err;
}

/* Stops member m: its socket closed, its exit status 0; the numbers it
 * reported meanwhile are counted in seen[] (per number, and which member:
 * owner[i] = who + 1). */
static void read_reports(struct member *m, int who, int *seen, int *owner, int n, int until_closed,
                         int want_total, int *total)
{
    for (;;) {
        if (!until_closed && *total >= want_total)
            return;
        if (!(tl_poll1(m->report, POLLIN, until_closed ? 5000 : 1000) & POLLIN))
            return;
        char b[4];
        ssize_t r = read(m->report, b, 1);
        if (r <= 0 || b[0] == 'C')
            return;
        CHECK_EQ(b[0], 'N');
        CHECK_EQ(OK(read(m->report, b, 4)), 4);
        int i;
        memcpy(&i, b, 4);
        CHECK_MSG(i >= 0 && i < n, "member %d reported %d", who, i);
        seen[i]++;
        if (owner)
            owner[i] = who + 1;
        (*total)++;
    }
}

static void stop_member(struct member *m, int who, int *seen, int *owner, int n, int *total)
{
    OK(close(m->ctl));
    read_reports(m, who, seen, owner, n, 1, 0, total);
    int st;
    OK(waitpid(m->pid, &st, 0));
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "member %d ended with status %#x", who, st);
    OK(close(m->report));
}

/* A port that was free a moment ago, for `type`. */
static int free_port(int fam, int type)
{
    int s = (int)OK(socket(tl_domain(fam), type, 0));
    struct sockaddr_storage ss;
    socklen_t sl = tl_loop(fam, &ss, 0);
    OK(bind(s, (struct sockaddr *)&ss, sl));
    sl = tl_name(s, &ss);
    OK(close(s));
    return tl_port(&ss);
}

/* Connects `n` clients to `port`, each sending its number i (from `base`). */
static void connect_clients(int fam, int port, int base, int n)
{
    struct sockaddr_storage ss;
    socklen_t sl = tl_loop(fam, &ss, port);
    for (int i = base; i < base + n; i++) {
        int c = (int)OK(socket(tl_domain(fam), SOCK_STREAM, 0));
        OK(connect(c, (struct sockaddr *)&ss, sl));
        CHECK_EQ(OK(send(c, &i, 4, 0)), 4);
        char b;
        /* the member closes after it read the number */
        CHECK(tl_poll1(c, POLLIN, 5000) & POLLIN);
        CHECK_EQ(OK(recv(c, &b, 1, 0)), 0);
        OK(close(c));
    }
}

#define CONNS 48

TEST_INET(tcp_listeners_in_two_processes_share_the_port)
{
    int port = free_port(fam, SOCK_STREAM);
    struct member m[2];
    for (int k = 0; k < 2; k++) {
        int err = start_member(&m[k], "tcp", fam, port);
        CHECK_MSG(err == 0, "member %d: bind/listen with SO_REUSEPORT: %s", k, tl_errname(err));
    }
    int seen[2 * CONNS] = {0}, owner[2 * CONNS] = {0}, got[2] = {0, 0}, total = 0;
    connect_clients(fam, port, 0, CONNS);
    /* each connection accepted exactly once, by one of the two */
    for (int k = 0; k < 2 && total < CONNS; k++)
        read_reports(&m[k], k, seen, owner, 2 * CONNS, 0, CONNS, &total);
    for (int k = 0; k < 2; k++)
        read_reports(&m[k], k, seen, owner, 2 * CONNS, 0, CONNS, &total);
    for (int i = 0; i < CONNS; i++) {
        CHECK_MSG(seen[i] == 1, "connection %d accepted %d times", i, seen[i]);
        got[owner[i] - 1]++;
    }
    CHECK_MSG(got[0] > 0 && got[1] > 0, "listeners accepted %d and %d of %d connections", got[0],
              got[1], CONNS);
    /* the first closes its listener: the other takes every connection */
    stop_member(&m[0], 0, seen, NULL, 2 * CONNS, &total);
    connect_clients(fam, port, CONNS, CONNS);
    int before = total;
    read_reports(&m[1], 1, seen, owner, 2 * CONNS, 0, before + CONNS, &total);
    for (int i = CONNS; i < 2 * CONNS; i++) {
        CHECK_MSG(seen[i] == 1 && owner[i] == 2, "connection %d after the close: %d times, by %d",
                  i, seen[i], owner[i] - 1);
    }
    /* a member killed (no close of its own) is passed over too: a new
     * member joins, the old one is killed, the new one takes them all */
    struct member k;
    CHECK_EQ(start_member(&k, "tcp", fam, port), 0);
    OK(kill(m[1].pid, SIGKILL));
    int st;
    OK(waitpid(m[1].pid, &st, 0));
    OK(close(m[1].ctl));
    OK(close(m[1].report));
    int seen2[CONNS] = {0}, owner2[CONNS] = {0}, total2 = 0;
    connect_clients(fam, port, 0, CONNS);
    read_reports(&k, 2, seen2, owner2, CONNS, 0, CONNS, &total2);
    for (int i = 0; i < CONNS; i++)
        CHECK_MSG(seen2[i] == 1, "connection %d after the kill: %d times", i, seen2[i]);
    stop_member(&k, 2, seen2, NULL, CONNS, &total2);
    CHECK_EQ(total, 2 * CONNS);
    CHECK_EQ(total2, CONNS);
}

/* A socket without SO_REUSEPORT cannot join another process's group. */
TEST_INET(tcp_without_so_reuseport_cannot_join)
{
    int port = free_port(fam, SOCK_STREAM);
    struct member m;
    CHECK_EQ(start_member(&m, "tcp", fam, port), 0);
    int s = (int)OK(socket(tl_domain(fam), SOCK_STREAM, 0));
    struct sockaddr_storage ss;
    socklen_t sl = tl_loop(fam, &ss, port);
    CHECK_ERRNO(bind(s, (struct sockaddr *)&ss, sl), EADDRINUSE);
    OK(close(s));
    int total = 0, seen[1];
    stop_member(&m, 0, seen, NULL, 1, &total);
}

struct other_arg {
    int fam, port;
};

static void join_as_other_user(void *p)
{
    struct other_arg *a = p;
    int s = (int)OK(socket(tl_domain(a->fam), SOCK_STREAM, 0));
    tl_setint(s, SOL_SOCKET, SO_REUSEPORT, 1);
    struct sockaddr_storage ss;
    socklen_t sl = tl_loop(a->fam, &ss, a->port);
    CHECK_ERRNO(bind(s, (struct sockaddr *)&ss, sl), EADDRINUSE);
    OK(close(s));
}

/* Another user's reuseport socket is refused (sk_reuseport_match: one
 * uid), while the listener of another process of ours is there. */
TEST_INET(tcp_another_users_reuseport_socket_is_refused)
{
    if (geteuid() != 0)
        t_skip("root", "needs root to run a child as another user");
    int port = free_port(fam, SOCK_STREAM);
    struct member m;
    CHECK_EQ(start_member(&m, "tcp", fam, port), 0);
    struct other_arg a = {fam, port};
    tl_in_child(join_as_other_user, &a, 0, 65534, 10);
    int total = 0, seen[1];
    stop_member(&m, 0, seen, NULL, 1, &total);
}

#define UCLIENTS 16
#define PER_CLIENT 4

TEST_INET(udp_sockets_in_two_processes_share_the_port)
{
    int port = free_port(fam, SOCK_DGRAM);
    struct member m[2];
    for (int k = 0; k < 2; k++) {
        int err = start_member(&m[k], "udp", fam, port);
        CHECK_MSG(err == 0, "member %d: bind with SO_REUSEPORT: %s", k, tl_errname(err));
    }
    struct sockaddr_storage ss;
    socklen_t sl = tl_loop(fam, &ss, port);
    int c[UCLIENTS];
    for (int i = 0; i < UCLIENTS; i++)
        c[i] = (int)OK(socket(tl_domain(fam), SOCK_DGRAM, 0));
    /* datagram number i * PER_CLIENT + j: client i's j-th */
    for (int j = 0; j < PER_CLIENT; j++)
        for (int i = 0; i < UCLIENTS; i++) {
            int d = i * PER_CLIENT + j;
            CHECK_EQ(OK(sendto(c[i], &d, 4, 0, (struct sockaddr *)&ss, sl)), 4);
        }
    enum { N = UCLIENTS * PER_CLIENT };
    int seen[N] = {0}, owner[N] = {0}, total = 0;
    for (int round = 0; round < 2 && total < N; round++)
        for (int k = 0; k < 2; k++)
            read_reports(&m[k], k, seen, owner, N, 0, N, &total);
    int got[2] = {0, 0};
    for (int d = 0; d < N; d++) {
        CHECK_MSG(seen[d] == 1, "datagram %d arrived %d times", d, seen[d]);
        CHECK_MSG(owner[d] == owner[d - d % PER_CLIENT],
                  "client %d's datagrams went to both sockets", d / PER_CLIENT);
        got[owner[d] - 1]++;
    }
    CHECK_MSG(got[0] > 0 && got[1] > 0, "sockets got %d and %d of %d datagrams", got[0], got[1],
              N);
    for (int i = 0; i < UCLIENTS; i++)
        OK(close(c[i]));
    for (int k = 0; k < 2; k++)
        stop_member(&m[k], k, seen, NULL, N, &total);
    CHECK_EQ(total, N);
}

/*
 * conns_client.c - many concurrent connections to conns_server from P
 * client processes, every byte checked, with memory per connection and the
 * server's fd counts measured from /proc (bench/conns.sh runs it against
 * the kernel and the library).
 *
 * A coordinator forks P client processes (-P, default 2) before any socket
 * exists; process k makes its share of the N connections (N/P, the first
 * N%P one more) and the coordinator steps all of them through each phase at
 * once (a command pipe and a result pipe each), so that every figure is
 * taken with every process in the same state. Splitting is what lets 10,000
 * connections fit a hard `ulimit -n` of 20,000 under the library (three
 * kernel fds per connection per process on its shm backend); the kernel
 * side runs the same way, so the comparison stays like for like.
 *
 * One round:
 *   start    each client process makes and closes one connection, so that
 *            what a process keeps for good after its first (the library's
 *            own fds) is in the base it checks its fds against
 *   base     every server process's fd count, the memory of every server
 *            and client process (Pss and RSS from /proc/PID/smaps_rollup)
 *            and the kernel's socket memory (/proc/net/sockstat TCP "mem"
 *            pages, /proc/meminfo Slab), /dev/shm; each client process
 *            notes its own fd count
 *   connect  each process makes its blocking connects, all processes at
 *            once (connections/s = N / the wall time until the last is
 *            done), then the coordinator waits until the server's counters
 *            show all N accepted and open
 *   idle     the same memory figures: per connection = delta / N
 *   traffic  R requests of S bytes on every connection, all connections of
 *            all processes at once (epoll in each): each echo is compared
 *            byte for byte with the pattern sent, which depends on the
 *            connection (numbered across processes), the request and the
 *            offset; requests/s over the wall time until the last process
 *            is done, CPU per request (each client's getrusage + every
 *            server process's /proc/PID/stat over the phase)
 *   after    the memory figures again (after traffic)
 *   close    every connection closed (SO_LINGER 0: no TIME_WAIT); each
 *            client process waits until its own fd count is back at its
 *            base; the coordinator waits until the server's counters show
 *            every connection closed and every server process's fd count
 *            is back at its base (else: fd leak, exit 1); every server
 *            process's memory after close is printed for the round-to-round
 *            leak check
 *
 * Result lines are "name value"; everything else starts with '#'. Exit 1
 * on any error in any process, a wrong byte, a count that does not add up
 * or an fd leak.
 *
 *   usage: conns_client -p PORT -c COUNTERFILE -S SERVER_PID[,PID...]
 *                       [-n CONNECTIONS] [-P PROCESSES] [-r REQUESTS]
 *                       [-s SIZE] [-q]
 *   -S: every process of the server (conns_server's "# ready" line: the
 *       master, then its workers)
 *   -q: correctness only (no figures printed beyond the checks)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "conns_common.h"

static long opt_n = 10000, opt_reqs = 20;
static size_t opt_size = 128;
static int opt_quiet;
static int srv_pids[CONNS_MAX_PROCS], nsrv;
static int cli_pids[CONNS_MAX_PROCS], ncli = 2;
static long id_base;   /* this client process's first connection number */
static struct conns_counters *ctr;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Byte k of request j on connection c: depends on all three, so a byte
 * from another connection, another request or another offset shows. */
static inline unsigned char pattern(long c, long j, size_t k)
{
    uint32_t x = (uint32_t)c * 2654435761u ^ (uint32_t)j * 40503u ^ (uint32_t)k * 2246822519u;
    x ^= x >> 15;
    return (unsigned char)(x ^ (x >> 8));
}

/* ---- /proc ------------------------------------------------------------ */

/* "Pss:" and "Rss:" of /proc/PID/smaps_rollup, kB; -1 if unreadable. */
static void mem_of(int pid, long *pss, long *rss)
{
    char path[64], line[256];
    *pss = *rss = -1;
    snprintf(path, sizeof path, "/proc/%d/smaps_rollup", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "Pss:", 4))
            *pss = strtol(line + 4, NULL, 10);
        else if (!strncmp(line, "Rss:", 4))
            *rss = strtol(line + 4, NULL, 10);
    }
    fclose(f);
}

/* A field of /proc/meminfo, kB. */
static long meminfo(const char *key)
{
    char line[256];
    size_t kl = strlen(key);
    long v = -1;
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl) && line[kl] == ':')
            v = strtol(line + kl + 1, NULL, 10);
    fclose(f);
    return v;
}

/* TCP "mem" of /proc/net/sockstat: pages charged to TCP sockets. */
static long sockstat_tcp_mem(void)
{
    char line[256];
    long v = -1;
    FILE *f = fopen("/proc/net/sockstat", "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f)) {
        char *m = strstr(line, " mem ");
        if (!strncmp(line, "TCP:", 4) && m)
            v = strtol(m + 5, NULL, 10);
    }
    fclose(f);
    return v;
}

/* kB used on /dev/shm (shared memory nobody maps is in no Pss). */
static long shm_used_kb(void)
{
    struct statvfs s;
    if (statvfs("/dev/shm", &s) != 0)
        return 0;
    return (long)((s.f_blocks - s.f_bfree) * s.f_frsize / 1024);
}

static int fd_count(int pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* What a process's fds are, counted by kind ("socket", "anon_inode:[eventfd]"). */
static void fd_kinds(int pid)
{
    char path[64], link[400], tgt[256];
    snprintf(path, sizeof path, "/proc/%d/fd", pid);
    DIR *d = opendir(path);
    if (!d)
        return;
    struct { char k[40]; int n; } kinds[16];
    int nk = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(link, sizeof link, "%s/%s", path, e->d_name);
        ssize_t l = readlink(link, tgt, sizeof tgt - 1);
        if (l < 0)
            continue;
        tgt[l] = 0;
        char *br = strchr(tgt, '[');
        if (!strncmp(tgt, "socket:", 7) || !strncmp(tgt, "pipe:", 5))
            *strchr(tgt, ':') = 0;
        else if (br && !strncmp(tgt, "anon_inode:", 11) && br == tgt + 11)
            ;  /* anon_inode:[eventfd] stays */
        else if (tgt[0] == '/')
            strcpy(tgt, "file");
        int i;
        for (i = 0; i < nk; i++)
            if (!strncmp(kinds[i].k, tgt, sizeof kinds[i].k - 1))
                break;
        if (i == nk && nk < 16) {
            snprintf(kinds[nk].k, sizeof kinds[nk].k, "%s", tgt);
            kinds[nk++].n = 0;
        }
        if (i < 16)
            kinds[i].n++;
    }
    closedir(d);
    fprintf(stderr, "conns_client: process %d's fds now:", pid);
    for (int i = 0; i < nk; i++)
        fprintf(stderr, " %s x%d", kinds[i].k, kinds[i].n);
    fprintf(stderr, "\n");
}

/* utime + stime of a process (all threads), seconds. */
static double proc_cpu(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    unsigned long ut = 0, st = 0;
    /* after ") ": state ppid pgrp session tty tpgid flags minflt cminflt
     * majflt cmajflt utime stime */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

struct mem {
    long srv_pss, srv_rss, cli_pss, cli_rss, slab, sock_pages, shm, avail;
};

/* Memory of every server and client process, and the machine's. */
static struct mem mem_now(void)
{
    struct mem m = {0};
    for (int i = 0; i < nsrv; i++) {
        long p, r;
        mem_of(srv_pids[i], &p, &r);
        m.srv_pss += p;
        m.srv_rss += r;
    }
    for (int i = 0; i < ncli; i++) {
        long p, r;
        mem_of(cli_pids[i], &p, &r);
        m.cli_pss += p;
        m.cli_rss += r;
    }
    m.slab = meminfo("Slab");
    m.sock_pages = sockstat_tcp_mem();
    m.shm = shm_used_kb();
    m.avail = meminfo("MemAvailable");
    return m;
}

/* Memory per connection from base to m: every process's Pss + the kernel's
 * Slab + TCP socket pages + /dev/shm, bytes per connection. */
static double mem_report(const char *phase, struct mem b, struct mem m)
{
    long page_kb = sysconf(_SC_PAGESIZE) / 1024;
    double n = (double)opt_n;
    long dpss = (m.srv_pss - b.srv_pss) + (m.cli_pss - b.cli_pss);
    long dslab = m.slab - b.slab, dsock = (m.sock_pages - b.sock_pages) * page_kb;
    long dshm = m.shm - b.shm;
    long total = dpss + dslab + dsock + dshm;
    if (!opt_quiet) {
        printf("# mem %s, bytes per connection: Pss server %.0f + client %.0f (RSS %.0f + %.0f; "
               "%d server, %d client processes), kernel Slab %.0f, TCP socket pages %.0f, "
               "/dev/shm %.0f; total %.0f (MemAvailable fell %.0f)\n", phase,
               (double)(m.srv_pss - b.srv_pss) * 1024 / n, (double)(m.cli_pss - b.cli_pss) * 1024 / n,
               (double)(m.srv_rss - b.srv_rss) * 1024 / n, (double)(m.cli_rss - b.cli_rss) * 1024 / n,
               nsrv, ncli, (double)dslab * 1024 / n, (double)dsock * 1024 / n,
               (double)dshm * 1024 / n, (double)total * 1024 / n,
               (double)(b.avail - m.avail) * 1024 / n);
    }
    return (double)total * 1024 / n;
}

/* Wait until cond() holds, up to secs; 0 = held. */
static int wait_for(int (*cond)(void), double secs)
{
    double t0 = now();
    while (!cond()) {
        if (now() - t0 > secs)
            return -1;
        sleep_ms(2);
    }
    return 0;
}

#define SUM(f) CONNS_SUM(ctr, CONNS_MAX_PROCS, f)
static uint64_t base_closed, base_accepted;
static uint64_t base_accepted_w[CONNS_MAX_PROCS];
static int all_accepted(void)
{
    return SUM(accepted) - base_accepted >= (uint64_t)opt_n && SUM(open) >= (uint64_t)opt_n;
}
static int all_closed(void)
{
    return SUM(closed) - base_closed >= (uint64_t)opt_n && SUM(open) == 0;
}
static int no_open(void)
{
    return SUM(open) == 0;
}
static int srv_fd_base[CONNS_MAX_PROCS];
static int fds_back(void)
{
    for (int i = 0; i < nsrv; i++)
        if (fd_count(srv_pids[i]) != srv_fd_base[i])
            return 0;
    return 1;
}
static int own_fd_base;
static int own_fds_back(void)
{
    return fd_count(getpid()) == own_fd_base;
}

/* ---- traffic ------------------------------------------------------------ */

struct cst {
    int fd;
    long req;          /* current request */
    size_t sent, got;  /* bytes of it sent, echoed */
};

static int send_some(struct cst *c, unsigned char *tmp, long id)
{
    size_t k0 = c->sent;
    for (size_t k = k0; k < opt_size; k++)
        tmp[k - k0] = pattern(id_base + id, c->req, k);
    ssize_t w = send(c->fd, tmp, opt_size - k0, MSG_NOSIGNAL);
    if (w < 0)
        return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -1;
    c->sent += (size_t)w;
    return 0;
}

static int traffic(struct cst *cs, int ep, double *secs)
{
    unsigned char *tmp = malloc(opt_size), *buf = malloc(65536);
    enum { MAXEV = 1024 };
    struct epoll_event *evs = malloc(sizeof *evs * MAXEV);
    if (!tmp || !buf || !evs) {
        perror("conns_client: malloc");
        return -1;
    }
    long done = 0, left = opt_n;
    double t0 = now();
    for (long i = 0; i < opt_n; i++) {
        if (send_some(&cs[i], tmp, i) < 0) {
            fprintf(stderr, "conns_client: send on connection %ld: %s\n", i, strerror(errno));
            return -1;
        }
        struct epoll_event ev = {.events = EPOLLIN | (cs[i].sent < opt_size ? EPOLLOUT : 0),
                                 .data.u64 = (uint64_t)i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev) < 0) {
            perror("conns_client: epoll_ctl");
            return -1;
        }
    }
    while (left > 0) {
        int n = epoll_wait(ep, evs, MAXEV, 30000);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, "conns_client: traffic: %s with %ld connections unfinished\n",
                    n == 0 ? "30 s without an event" : strerror(errno), left);
            return -1;
        }
        for (int e = 0; e < n; e++) {
            long id = (long)evs[e].data.u64;
            struct cst *c = &cs[id];
            if ((evs[e].events & EPOLLOUT) && c->sent < opt_size) {
                if (send_some(c, tmp, id) < 0) {
                    fprintf(stderr, "conns_client: send on connection %ld: %s\n", id, strerror(errno));
                    return -1;
                }
                if (c->sent == opt_size) {
                    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)id};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                }
            }
            if (!(evs[e].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                continue;
            size_t want = c->sent - c->got;   /* never more than was sent */
            if (want == 0)
                continue;
            ssize_t r = recv(c->fd, buf, want, 0);
            if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
                continue;
            if (r <= 0) {
                fprintf(stderr, "conns_client: connection %ld, request %ld: %s\n", id, c->req,
                        r == 0 ? "EOF from the server" : strerror(errno));
                return -1;
            }
            for (ssize_t k = 0; k < r; k++) {
                unsigned char exp = pattern(id_base + id, c->req, c->got + (size_t)k);
                if (buf[k] != exp) {
                    fprintf(stderr, "conns_client: WRONG BYTE: connection %ld, request %ld, "
                            "offset %zu: got 0x%02x, sent 0x%02x\n", id_base + id, c->req,
                            c->got + (size_t)k, buf[k], exp);
                    return -1;
                }
            }
            c->got += (size_t)r;
            if (c->got < opt_size)
                continue;
            done++;
            c->req++;
            c->sent = c->got = 0;
            if (c->req == opt_reqs) {
                left--;
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                continue;
            }
            if (send_some(c, tmp, id) < 0) {
                fprintf(stderr, "conns_client: send on connection %ld: %s\n", id, strerror(errno));
                return -1;
            }
            if (c->sent < opt_size) {
                struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u64 = (uint64_t)id};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
            }
        }
    }
    *secs = now() - t0;
    free(tmp);
    free(buf);
    free(evs);
    if (done != opt_n * opt_reqs) {
        fprintf(stderr, "conns_client: %ld requests answered, %ld expected\n", done, opt_n * opt_reqs);
        return -1;
    }
    return 0;
}

/* ---- client processes --------------------------------------------------- */

/* The coordinator's commands, one byte each, and a process's answer. */
enum { CMD_CONNECT = 'c', CMD_TRAFFIC = 't', CMD_CLOSE = 'x' };
struct answer {
    int ok;        /* 1: the phase passed its checks in this process */
    double secs;   /* the phase's time in this process */
    double cpu;    /* this process's CPU over the phase, seconds */
};

static int answer(int fd, int ok, double secs, double cpu)
{
    struct answer a = {.ok = ok, .secs = secs, .cpu = cpu};
    return write(fd, &a, sizeof a) == (ssize_t)sizeof a ? 0 : -1;
}

/* One client process: opt_n connections numbered from id_base, each phase
 * when the coordinator says so. Returns the exit status. */
static int client(int port, int cmdfd, int ansfd)
{
    struct cst *cs = calloc((size_t)opt_n, sizeof *cs);
    if (!cs) {
        perror("conns_client: calloc");
        return 1;
    }
    char cmd;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    int ep = -1;
    /* One connection made and closed first, as the others will be: what a
     * process holds for good after its first (the library's own fds) is
     * then in the base, and only what connections leave behind counts. */
    int wfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (wfd < 0 || connect(wfd, (struct sockaddr *)&a, sizeof a) < 0 ||
        setsockopt(wfd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) < 0 || close(wfd) < 0) {
        fprintf(stderr, "conns_client: the first connection: %s\n", strerror(errno));
        answer(ansfd, 0, 0, 0);
        return 1;
    }
    sleep_ms(50);
    own_fd_base = fd_count(getpid());
    if (answer(ansfd, 1, 0, 0) < 0)
        return 1;
    while (read(cmdfd, &cmd, 1) == 1) {
        double t0 = now(), c0 = self_cpu();
        int ok = 1;
        switch (cmd) {
        case CMD_CONNECT:
            for (long i = 0; i < opt_n && ok; i++) {
                int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (fd < 0) {
                    fprintf(stderr, "conns_client: socket #%ld: %s\n", id_base + i, strerror(errno));
                    ok = 0;
                    break;
                }
                if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
                    fprintf(stderr, "conns_client: connect #%ld: %s\n", id_base + i, strerror(errno));
                    ok = 0;
                    break;
                }
                int one = 1;
                if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0 ||
                    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) < 0) {
                    fprintf(stderr, "conns_client: setsockopt #%ld: %s\n", id_base + i, strerror(errno));
                    ok = 0;
                }
                cs[i].fd = fd;
            }
            break;
        case CMD_TRAFFIC: {
            for (long i = 0; i < opt_n && ok; i++) {
                int fl = 1;
                if (ioctl(cs[i].fd, FIONBIO, &fl) < 0) {
                    perror("conns_client: FIONBIO");
                    ok = 0;
                }
            }
            ep = epoll_create1(EPOLL_CLOEXEC);
            if (ep < 0) {
                perror("conns_client: epoll_create1");
                ok = 0;
            }
            double secs;
            t0 = now();
            c0 = self_cpu();
            if (ok && traffic(cs, ep, &secs) < 0)
                ok = 0;
            break;
        }
        case CMD_CLOSE:
            if (ep >= 0)
                close(ep);
            for (long i = 0; i < opt_n; i++) {
                if (close(cs[i].fd) < 0) {
                    fprintf(stderr, "conns_client: close #%ld: %s\n", id_base + i, strerror(errno));
                    ok = 0;
                }
            }
            /* the library may let go of a connection's fds a moment later */
            if (ok && wait_for(own_fds_back, 30) < 0) {
                fprintf(stderr, "conns_client: FD LEAK in client process %d: %d fds after every "
                        "connection closed, %d before\n", (int)getpid(), fd_count(getpid()), own_fd_base);
                fd_kinds(getpid());
                ok = 0;
            }
            break;
        default:
            fprintf(stderr, "conns_client: unknown command %d\n", cmd);
            ok = 0;
        }
        if (answer(ansfd, ok, now() - t0, self_cpu() - c0) < 0 || !ok)
            return 1;
        if (cmd == CMD_CLOSE)
            break;
    }
    free(cs);
    return 0;
}

static int ans_fd[CONNS_MAX_PROCS], cmd_fd[CONNS_MAX_PROCS];

/* Step every client process through one phase (cmd 0: collect the
 * answers to their start); their CPU summed into *cpu, *wall the
 * coordinator's wall time. 0 = every process passed. */
static int phase(char cmd, double *wall, double *cpu)
{
    double t0 = now();
    int ok = 1;
    *cpu = 0;
    for (int k = 0; k < ncli && cmd; k++)
        if (write(cmd_fd[k], &cmd, 1) != 1) {
            fprintf(stderr, "conns_client: client process %d is gone\n", k);
            ok = 0;
        }
    for (int k = 0; k < ncli; k++) {
        struct answer a;
        ssize_t r;
        do
            r = read(ans_fd[k], &a, sizeof a);
        while (r < 0 && errno == EINTR);
        if (r != (ssize_t)sizeof a) {
            fprintf(stderr, "conns_client: client process %d (pid %d) died in phase '%c'\n", k,
                    cli_pids[k], cmd ? cmd : 's');
            ok = 0;
            continue;
        }
        if (!a.ok)
            ok = 0;
        *cpu += a.cpu;
    }
    *wall = now() - t0;
    return ok ? 0 : -1;
}

static int parse_pids(const char *s)
{
    char *end;
    nsrv = 0;
    for (;;) {
        long v = strtol(s, &end, 10);
        if (end == s || v <= 0 || nsrv == CONNS_MAX_PROCS)
            return -1;
        srv_pids[nsrv++] = (int)v;
        if (*end == 0)
            return 0;
        if (*end != ',')
            return -1;
        s = end + 1;
    }
}

/* ---- main ------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    int port = 0;
    const char *ctrfile = NULL, *pids = NULL;
    int opt;
    while ((opt = getopt(argc, argv, "p:c:S:n:P:r:s:q")) != -1) {
        switch (opt) {
        case 'p': port = atoi(optarg); break;
        case 'c': ctrfile = optarg; break;
        case 'S': pids = optarg; break;
        case 'n': opt_n = atol(optarg); break;
        case 'P': ncli = atoi(optarg); break;
        case 'r': opt_reqs = atol(optarg); break;
        case 's': opt_size = (size_t)atol(optarg); break;
        case 'q': opt_quiet = 1; break;
        default: goto usage;
        }
    }
    if (optind != argc || port <= 0 || port > 65535 || !ctrfile || !pids || parse_pids(pids) < 0 ||
        opt_n <= 0 || ncli <= 0 || ncli > CONNS_MAX_PROCS || ncli > opt_n || opt_reqs <= 0 ||
        opt_size == 0 || opt_size > 65536) {
usage:
        fprintf(stderr, "usage: conns_client -p PORT -c COUNTERFILE -S SERVER_PID[,PID...] "
                "[-n CONNECTIONS] [-P PROCESSES (1..%d)] [-r REQUESTS] [-s SIZE] [-q]\n",
                CONNS_MAX_PROCS);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    long share = opt_n / ncli, extra = opt_n % ncli;
    conns_raise_nofile(share + 1, "conns_client");
    ctr = conns_map_counters(ctrfile, 0);
    if (SUM(open) != 0) {
        fprintf(stderr, "conns_client: the server has %llu connections open before we start\n",
                (unsigned long long)SUM(open));
        return 1;
    }

    /* the client processes, before any socket */
    long first = 0;
    for (int k = 0; k < ncli; k++) {
        int cp[2], ap[2];
        if (pipe2(cp, O_CLOEXEC) < 0 || pipe2(ap, O_CLOEXEC) < 0) {
            perror("conns_client: pipe2");
            return 1;
        }
        long mine = share + (k < extra);
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0) {
            perror("conns_client: fork");
            return 1;
        }
        if (pid == 0) {
            close(cp[1]);
            close(ap[0]);
            for (int j = 0; j < k; j++) {
                close(cmd_fd[j]);
                close(ans_fd[j]);
            }
            opt_n = mine;
            id_base = first;
            exit(client(port, cp[0], ap[1]));
        }
        close(cp[0]);
        close(ap[1]);
        cmd_fd[k] = cp[1];
        ans_fd[k] = ap[0];
        cli_pids[k] = pid;
        first += mine;
    }
    int failed = 0;
    double t_conn, ccpu, scpu, secs;
    /* started: each has made and closed its first connection */
    if (phase(0, &t_conn, &ccpu) < 0)
        goto fail;
    if (wait_for(no_open, 30) < 0) {
        fprintf(stderr, "conns_client: the server still has %llu connections open 30 s after "
                "the client processes' first\n", (unsigned long long)SUM(open));
        goto fail;
    }
    sleep_ms(100);   /* let the server let go of them */

    /* base */
    base_accepted = SUM(accepted);
    base_closed = SUM(closed);
    for (int w = 0; w < CONNS_MAX_PROCS; w++)
        base_accepted_w[w] = conns_get(&ctr[w].accepted);
    uint64_t base_errors = SUM(errors);
    for (int i = 0; i < nsrv; i++) {
        srv_fd_base[i] = fd_count(srv_pids[i]);
        if (srv_fd_base[i] < 0) {
            fprintf(stderr, "conns_client: cannot read /proc/%d/fd\n", srv_pids[i]);
            failed = 1;
        }
    }
    struct mem mb = mem_now();

    /* connect */
    if (failed || phase(CMD_CONNECT, &t_conn, &ccpu) < 0)
        goto fail;
    if (wait_for(all_accepted, 60) < 0) {
        fprintf(stderr, "conns_client: the server accepted %llu of %ld connections in 60 s\n",
                (unsigned long long)(SUM(accepted) - base_accepted), opt_n);
        goto fail;
    }
    int srv_fd_idle = 0, srv_fd_base_sum = 0;
    for (int i = 0; i < nsrv; i++) {
        srv_fd_idle += fd_count(srv_pids[i]);
        srv_fd_base_sum += srv_fd_base[i];
    }
    sleep_ms(200);                       /* let every process settle before measuring */
    struct mem mi = mem_now();
    if (!opt_quiet) {
        printf("# connect: %ld connections from %d processes at once in %.3f s; the server's %d "
               "processes hold %d fds (%d before); accepted by worker:", opt_n, ncli, t_conn,
               nsrv, srv_fd_idle, srv_fd_base_sum);
        for (int w = 0; w < CONNS_MAX_PROCS; w++) {
            uint64_t a = conns_get(&ctr[w].accepted) - base_accepted_w[w];
            if (a)
                printf(" %d:%llu", w, (unsigned long long)a);
        }
        printf("\nconnect_per_s %.0f\n", (double)opt_n / t_conn);
    }
    double mem_idle = mem_report("idle (all connected, no traffic)", mb, mi);

    /* traffic */
    double s0 = 0;
    for (int i = 0; i < nsrv; i++)
        s0 += proc_cpu(srv_pids[i]);
    if (phase(CMD_TRAFFIC, &secs, &ccpu) < 0)
        goto fail;
    scpu = -s0;
    for (int i = 0; i < nsrv; i++)
        scpu += proc_cpu(srv_pids[i]);
    long nreq = opt_n * opt_reqs;
    sleep_ms(200);
    struct mem mt = mem_now();
    if (!opt_quiet) {
        printf("# traffic: %ld requests of %zu bytes (%ld on each connection, all at once), "
               "every byte checked, in %.3f s; CPU clients %.2f s + server %.2f s\n",
               nreq, opt_size, opt_reqs, secs, ccpu, scpu);
        printf("req_per_s %.0f\n", (double)nreq / secs);
        printf("cpu_us_per_req %.2f\n", (ccpu + scpu) * 1e6 / (double)nreq);
    }
    double mem_traffic = mem_report("after traffic", mb, mt);

    /* close */
    double t_close;
    if (phase(CMD_CLOSE, &t_close, &ccpu) < 0)
        goto fail;
    if (wait_for(all_closed, 60) < 0) {
        fprintf(stderr, "conns_client: after close, the server still has %llu connections "
                "open (%llu of %ld closed) after 60 s\n", (unsigned long long)SUM(open),
                (unsigned long long)(SUM(closed) - base_closed), opt_n);
        goto fail;
    }
    int leak = wait_for(fds_back, 30) < 0;
    uint64_t errors = SUM(errors) - base_errors;
    printf("# close: %llu accepted, %llu closed this round, %llu errors; per server process "
           "(master first):", (unsigned long long)(SUM(accepted) - base_accepted),
           (unsigned long long)(SUM(closed) - base_closed), (unsigned long long)errors);
    for (int i = 0; i < nsrv; i++) {
        long spss, srss;
        mem_of(srv_pids[i], &spss, &srss);
        printf(" [pid %d: %d fds (%d before), Pss %ld kB, RSS %ld kB]", srv_pids[i],
               fd_count(srv_pids[i]), srv_fd_base[i], spss, srss);
    }
    printf("\n");
    if (!opt_quiet) {
        printf("mem_idle_B_per_conn %.0f\n", mem_idle);
        printf("mem_traffic_B_per_conn %.0f\n", mem_traffic);
    }
    for (int i = 0; i < nsrv; i++) {
        long spss, srss;
        mem_of(srv_pids[i], &spss, &srss);
        printf("server_fds_after_close.%d %d\n", i, fd_count(srv_pids[i]));
        printf("server_pss_kB_after_close.%d %ld\n", i, spss);
    }
    if (leak) {
        for (int i = 0; i < nsrv; i++) {
            int n = fd_count(srv_pids[i]);
            if (n == srv_fd_base[i])
                continue;
            fprintf(stderr, "conns_client: FD LEAK: server process %d holds %d fds after every "
                    "connection closed, %d before the round\n", srv_pids[i], n, srv_fd_base[i]);
            fd_kinds(srv_pids[i]);
        }
        failed = 1;
    }
    if (errors) {
        fprintf(stderr, "conns_client: the server counted %llu errors\n", (unsigned long long)errors);
        failed = 1;
    }
    for (int k = 0; k < ncli; k++) {
        int st;
        close(cmd_fd[k]);
        if (waitpid(cli_pids[k], &st, 0) != cli_pids[k] || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "conns_client: client process %d (pid %d) failed\n", k, cli_pids[k]);
            failed = 1;
        }
    }
    if (failed)
        return 1;
    printf("# round ok: %ld connections from %d processes, %ld requests, every byte checked, "
           "no fd left in any server or client process\n", opt_n, ncli, nreq);
    return 0;

fail:
    /* a process that failed said why; the others are told to stop */
    for (int k = 0; k < ncli; k++) {
        close(cmd_fd[k]);
        kill(cli_pids[k], SIGKILL);
        waitpid(cli_pids[k], NULL, 0);
    }
    return 1;
}

/*
 * conns_client.c - many concurrent connections to conns_server, every byte
 * checked, with memory per connection and the server's fd count measured
 * from /proc (bench/conns.sh runs it against the kernel and the library).
 *
 * One round:
 *   base     the server's fd count, both programs' memory (Pss and RSS
 *            from /proc/PID/smaps_rollup) and the kernel's socket memory
 *            (/proc/net/sockstat TCP "mem" pages, /proc/meminfo Slab)
 *   connect  N blocking connects (RLIMIT_NOFILE raised here), then waits
 *            until the server's counters show all N accepted and open
 *   idle     the same memory figures: per connection = delta / N
 *   traffic  R requests of S bytes on every connection, all connections at
 *            once (epoll): each echo is compared byte for byte with the
 *            pattern sent; requests/s and CPU per request (this process's
 *            getrusage + the server's /proc/PID/stat over the phase)
 *   after    the memory figures again (after traffic)
 *   close    every connection closed (SO_LINGER 0: no TIME_WAIT); waits
 *            until the server's counters show them closed and its fd count
 *            is back at base (else: fd leak, exit 1); the server's memory
 *            after close is printed for the round-to-round leak check
 *
 * Result lines are "name value"; everything else starts with '#'. Exit 1
 * on any error, a wrong byte, a count that does not add up or an fd leak.
 *
 *   usage: conns_client -p PORT -c COUNTERFILE -S SERVER_PID
 *                       [-n CONNECTIONS] [-r REQUESTS] [-s SIZE] [-q]
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
#include <time.h>
#include <unistd.h>

#include "conns_common.h"

static long opt_n = 10000, opt_reqs = 20;
static size_t opt_size = 128;
static int opt_quiet;
static int srv_pid;
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

/* What the server's fds are, counted by kind ("socket", "anon_inode:[eventfd]"). */
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
    fprintf(stderr, "conns_client: the server's fds now:");
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

static struct mem mem_now(void)
{
    struct mem m;
    mem_of(srv_pid, &m.srv_pss, &m.srv_rss);
    mem_of(getpid(), &m.cli_pss, &m.cli_rss);
    m.slab = meminfo("Slab");
    m.sock_pages = sockstat_tcp_mem();
    m.shm = shm_used_kb();
    m.avail = meminfo("MemAvailable");
    return m;
}

/* Memory per connection from base to m: both programs' Pss + the kernel's
 * Slab + TCP socket pages + /dev/shm, bytes per connection. */
static double mem_report(const char *phase, struct mem b, struct mem m)
{
    long page_kb = sysconf(_SC_PAGESIZE) / 1024;
    double n = (double)opt_n;
    long dpss = (m.srv_pss - b.srv_pss) + (m.cli_pss - b.cli_pss);
    long drss = (m.srv_rss - b.srv_rss) + (m.cli_rss - b.cli_rss);
    long dslab = m.slab - b.slab, dsock = (m.sock_pages - b.sock_pages) * page_kb;
    long dshm = m.shm - b.shm;
    long total = dpss + dslab + dsock + dshm;
    if (!opt_quiet) {
        printf("# mem %s, bytes per connection: Pss server %.0f + client %.0f (RSS %.0f + %.0f), "
               "kernel Slab %.0f, TCP socket pages %.0f, /dev/shm %.0f; total %.0f "
               "(MemAvailable fell %.0f)\n", phase,
               (double)(m.srv_pss - b.srv_pss) * 1024 / n, (double)(m.cli_pss - b.cli_pss) * 1024 / n,
               (double)(m.srv_rss - b.srv_rss) * 1024 / n, (double)(m.cli_rss - b.cli_rss) * 1024 / n,
               (double)dslab * 1024 / n, (double)dsock * 1024 / n, (double)dshm * 1024 / n,
               (double)total * 1024 / n, (double)(b.avail - m.avail) * 1024 / n);
    }
    (void)drss;
    return (double)total * 1024 / n;
}

/* Wait until cond(ctr) holds, up to secs; 0 = held. */
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

static uint64_t base_closed, base_accepted;
static int all_accepted(void)
{
    return conns_get(&ctr->accepted) - base_accepted >= (uint64_t)opt_n &&
           conns_get(&ctr->open) >= (uint64_t)opt_n;
}
static int all_closed(void)
{
    return conns_get(&ctr->closed) - base_closed >= (uint64_t)opt_n && conns_get(&ctr->open) == 0;
}
static int srv_fd_base;
static int fds_back(void)
{
    return fd_count(srv_pid) == srv_fd_base;
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
        tmp[k - k0] = pattern(id, c->req, k);
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
                unsigned char exp = pattern(id, c->req, c->got + (size_t)k);
                if (buf[k] != exp) {
                    fprintf(stderr, "conns_client: WRONG BYTE: connection %ld, request %ld, "
                            "offset %zu: got 0x%02x, sent 0x%02x\n", id, c->req,
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

/* ---- main ------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    int port = 0;
    const char *ctrfile = NULL;
    int opt;
    while ((opt = getopt(argc, argv, "p:c:S:n:r:s:q")) != -1) {
        switch (opt) {
        case 'p': port = atoi(optarg); break;
        case 'c': ctrfile = optarg; break;
        case 'S': srv_pid = atoi(optarg); break;
        case 'n': opt_n = atol(optarg); break;
        case 'r': opt_reqs = atol(optarg); break;
        case 's': opt_size = (size_t)atol(optarg); break;
        case 'q': opt_quiet = 1; break;
        default: goto usage;
        }
    }
    if (optind != argc || port <= 0 || port > 65535 || !ctrfile || srv_pid <= 0 ||
        opt_n <= 0 || opt_reqs <= 0 || opt_size == 0 || opt_size > 65536) {
usage:
        fprintf(stderr, "usage: conns_client -p PORT -c COUNTERFILE -S SERVER_PID "
                "[-n CONNECTIONS] [-r REQUESTS] [-s SIZE] [-q]\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    conns_raise_nofile(opt_n, "conns_client");
    ctr = conns_map_counters(ctrfile, 0);
    if (conns_get(&ctr->open) != 0) {
        fprintf(stderr, "conns_client: the server has %llu connections open before we start\n",
                (unsigned long long)conns_get(&ctr->open));
        return 1;
    }
    base_accepted = conns_get(&ctr->accepted);
    base_closed = conns_get(&ctr->closed);
    uint64_t base_errors = conns_get(&ctr->errors);
    struct cst *cs = calloc((size_t)opt_n, sizeof *cs);
    if (!cs) {
        perror("conns_client: calloc");
        return 1;
    }

    /* base */
    srv_fd_base = fd_count(srv_pid);
    if (srv_fd_base < 0) {
        fprintf(stderr, "conns_client: cannot read /proc/%d/fd\n", srv_pid);
        return 1;
    }
    struct mem mb = mem_now();

    /* connect */
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    double t0 = now();
    for (long i = 0; i < opt_n; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            fprintf(stderr, "conns_client: socket #%ld: %s\n", i, strerror(errno));
            return 1;
        }
        if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
            fprintf(stderr, "conns_client: connect #%ld: %s\n", i, strerror(errno));
            return 1;
        }
        int one = 1;
        if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0 ||
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) < 0) {
            fprintf(stderr, "conns_client: setsockopt #%ld: %s\n", i, strerror(errno));
            return 1;
        }
        cs[i].fd = fd;
    }
    double t_conn = now() - t0;
    if (wait_for(all_accepted, 60) < 0) {
        fprintf(stderr, "conns_client: the server accepted %llu of %ld connections in 60 s\n",
                (unsigned long long)(conns_get(&ctr->accepted) - base_accepted), opt_n);
        return 1;
    }
    int srv_fd_idle = fd_count(srv_pid);
    sleep_ms(200);                       /* let both settle before measuring */
    struct mem mi = mem_now();
    if (!opt_quiet) {
        printf("# connect: %ld connections in %.3f s; the server holds %d fds (%d before)\n",
               opt_n, t_conn, srv_fd_idle, srv_fd_base);
        printf("connect_per_s %.0f\n", (double)opt_n / t_conn);
    }
    double mem_idle = mem_report("idle (all connected, no traffic)", mb, mi);

    /* traffic */
    for (long i = 0; i < opt_n; i++) {
        int fl = 1;
        if (ioctl(cs[i].fd, FIONBIO, &fl) < 0) {
            perror("conns_client: FIONBIO");
            return 1;
        }
    }
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) {
        perror("conns_client: epoll_create1");
        return 1;
    }
    double secs = 0, c0 = self_cpu(), s0 = proc_cpu(srv_pid);
    if (traffic(cs, ep, &secs) < 0)
        return 1;
    double ccpu = self_cpu() - c0, scpu = proc_cpu(srv_pid) - s0;
    long nreq = opt_n * opt_reqs;
    sleep_ms(200);
    struct mem mt = mem_now();
    if (!opt_quiet) {
        printf("# traffic: %ld requests of %zu bytes (%ld on each connection, all at once), "
               "every byte checked, in %.3f s; CPU client %.2f s + server %.2f s\n",
               nreq, opt_size, opt_reqs, secs, ccpu, scpu);
        printf("req_per_s %.0f\n", (double)nreq / secs);
        printf("cpu_us_per_req %.2f\n", (ccpu + scpu) * 1e6 / (double)nreq);
    }
    double mem_traffic = mem_report("after traffic", mb, mt);

    /* close */
    close(ep);
    for (long i = 0; i < opt_n; i++) {
        if (close(cs[i].fd) < 0) {
            fprintf(stderr, "conns_client: close #%ld: %s\n", i, strerror(errno));
            return 1;
        }
    }
    if (wait_for(all_closed, 60) < 0) {
        fprintf(stderr, "conns_client: after close, the server still has %llu connections "
                "open (%llu of %ld closed) after 60 s\n",
                (unsigned long long)conns_get(&ctr->open),
                (unsigned long long)(conns_get(&ctr->closed) - base_closed), opt_n);
        return 1;
    }
    int leak = wait_for(fds_back, 30) < 0;
    int srv_fd_after = fd_count(srv_pid);
    long spss, srss;
    mem_of(srv_pid, &spss, &srss);
    uint64_t errors = conns_get(&ctr->errors) - base_errors;
    printf("# close: the server holds %d fds (%d before the round), Pss %ld kB, RSS %ld kB; "
           "its counters: %llu accepted, %llu closed this round, %llu errors\n",
           srv_fd_after, srv_fd_base, spss, srss,
           (unsigned long long)(conns_get(&ctr->accepted) - base_accepted),
           (unsigned long long)(conns_get(&ctr->closed) - base_closed),
           (unsigned long long)errors);
    if (!opt_quiet) {
        printf("mem_idle_B_per_conn %.0f\n", mem_idle);
        printf("mem_traffic_B_per_conn %.0f\n", mem_traffic);
    }
    printf("server_fds_after_close %d\n", srv_fd_after);
    printf("server_pss_kB_after_close %ld\n", spss);
    if (leak) {
        fprintf(stderr, "conns_client: FD LEAK: the server holds %d fds after every connection "
                "closed, %d before the round\n", srv_fd_after, srv_fd_base);
        fd_kinds(srv_pid);
        return 1;
    }
    if (errors) {
        fprintf(stderr, "conns_client: the server counted %llu errors\n", (unsigned long long)errors);
        return 1;
    }
    printf("# round ok: %ld connections, %ld requests, every byte checked, no fd left\n", opt_n, nreq);
    free(cs);
    return 0;
}

/*
 * conns_server.c - an epoll echo server for many concurrent connections
 * (bench/conns.sh; the client is conns_client.c).
 *
 * Pre-forked: a master process forks W worker processes (-w, default 2)
 * before any socket exists; each worker binds its own listener on
 * 127.0.0.1:PORT with SO_REUSEPORT (the connections spread between them by
 * the hash of the client's address and port) and runs its own loop: one
 * thread, level-triggered epoll, non-blocking sockets, every byte echoed
 * back (what the peer does not take at once is kept and sent on EPOLLOUT).
 * Pre-forking is what lets 10,000 connections fit a hard `ulimit -n` of
 * 20,000 under the library, whose connections hold three kernel fds each in
 * a process (shm backend) where the kernel's hold one: each worker holds
 * CONNS/W. Long-lived: it serves client after client until SIGTERM/SIGINT
 * (to the master, which passes it on), so the client can check that every
 * worker's fd count and memory come back after each round of connections.
 *
 * Counters (accepted, open, closed, bytes, errors), one slot per worker,
 * live in a small shared file (-c FILE, mapped by every process) so the
 * client knows when every connection has been accepted or closed without
 * sending anything. RLIMIT_NOFILE is raised here (-n: connections to plan
 * for in all, CONNS/W per worker).
 *
 *   usage: conns_server -p PORT -c COUNTERFILE [-n CONNECTIONS] [-w WORKERS]
 * Prints "# ready port P pid MASTER workers PID,PID,..." once every worker
 * listens; "# served worker I ..." per worker at exit. Exit status 1 if a
 * worker failed, counted an error or died.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "conns_common.h"

static volatile sig_atomic_t stop;
static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

struct conn {
    int fd;
    size_t plen, poff;      /* bytes waiting to be echoed: pend[poff..plen) */
    unsigned char *pend;
};

static struct conn **conns;   /* by fd */
static size_t nconns;
static struct conns_counters *ctr;
static int ep;
static int worker_idx;

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void conn_close(struct conn *c, int error)
{
    if (error)
        __atomic_add_fetch(&ctr->errors, 1, __ATOMIC_RELAXED);
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    conns[c->fd] = NULL;
    free(c->pend);
    free(c);
    __atomic_sub_fetch(&ctr->open, 1, __ATOMIC_RELEASE);
    __atomic_add_fetch(&ctr->closed, 1, __ATOMIC_RELEASE);
}

/* Send what is pending; 0 = all sent or waiting for EPOLLOUT, -1 = error. */
static int flush(struct conn *c)
{
    while (c->poff < c->plen) {
        ssize_t w = send(c->fd, c->pend + c->poff, c->plen - c->poff, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            return -1;
        }
        c->poff += (size_t)w;
        __atomic_add_fetch(&ctr->bytes, (uint64_t)w, __ATOMIC_RELAXED);
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (c->poff < c->plen)
        ev.events = EPOLLOUT;             /* stop reading until it drains */
    else {
        free(c->pend);
        c->pend = NULL;
        c->poff = c->plen = 0;
    }
    return epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void on_readable(struct conn *c, unsigned char *buf, size_t bufsize)
{
    ssize_t r = recv(c->fd, buf, bufsize, 0);
    if (r == 0) {
        conn_close(c, 0);
        return;
    }
    if (r < 0) {
        if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        /* ECONNRESET: the client closes with SO_LINGER 0 (no TIME_WAIT) */
        conn_close(c, errno != ECONNRESET);
        return;
    }
    ssize_t w = send(c->fd, buf, (size_t)r, MSG_NOSIGNAL);
    if (w < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            conn_close(c, errno != ECONNRESET && errno != EPIPE);
            return;
        }
        w = 0;
    }
    __atomic_add_fetch(&ctr->bytes, (uint64_t)w, __ATOMIC_RELAXED);
    if (w < r) {
        size_t rest = (size_t)(r - w);
        c->pend = malloc(rest);
        if (!c->pend) {
            conn_close(c, 1);
            return;
        }
        memcpy(c->pend, buf + w, rest);
        c->plen = rest;
        c->poff = 0;
        if (flush(c) < 0)
            conn_close(c, 1);
    }
}

/* One worker: its own SO_REUSEPORT listener and epoll loop until stop.
 * Writes its pid to readyfd once it listens. Returns the exit status. */
static int worker(int port, int readyfd)
{
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (lfd < 0) {
        perror("conns_server: socket");
        return 1;
    }
    int one = 1;
    if (setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        setsockopt(lfd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
        perror("conns_server: SO_REUSEADDR/SO_REUSEPORT");
        return 1;
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 65535) < 0) {
        perror("conns_server: bind/listen");
        return 1;
    }
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) {
        perror("conns_server: epoll_create1");
        return 1;
    }
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev) < 0) {
        perror("conns_server: epoll_ctl(listener)");
        return 1;
    }
    int me = (int)getpid();
    if (write(readyfd, &me, sizeof me) != (ssize_t)sizeof me) {
        perror("conns_server: ready pipe");
        return 1;
    }
    close(readyfd);

    enum { MAXEV = 1024, BUFSZ = 65536 };
    static struct epoll_event evs[MAXEV];
    static unsigned char buf[BUFSZ];
    int failed = 0;
    while (!stop) {
        /* a timeout, so that a signal taken by another thread (the
         * library's, under bin/usockrun) still ends the loop */
        int n = epoll_wait(ep, evs, MAXEV, 200);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("conns_server: epoll_wait");
            failed = 1;
            break;
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (!c) {
                for (;;) {
                    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0) {
                        if (errno == EINTR || errno == ECONNABORTED)
                            continue;
                        if (errno != EAGAIN && errno != EWOULDBLOCK) {
                            perror("conns_server: accept4");
                            __atomic_add_fetch(&ctr->errors, 1, __ATOMIC_RELAXED);
                        }
                        break;
                    }
                    if ((size_t)fd >= nconns) {
                        fprintf(stderr, "conns_server: fd %d beyond the table (%zu)\n", fd, nconns);
                        close(fd);
                        __atomic_add_fetch(&ctr->errors, 1, __ATOMIC_RELAXED);
                        continue;
                    }
                    struct conn *nc = calloc(1, sizeof *nc);
                    if (!nc) {
                        close(fd);
                        __atomic_add_fetch(&ctr->errors, 1, __ATOMIC_RELAXED);
                        continue;
                    }
                    nc->fd = fd;
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = nc};
                    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
                        perror("conns_server: epoll_ctl(add)");
                        close(fd);
                        free(nc);
                        __atomic_add_fetch(&ctr->errors, 1, __ATOMIC_RELAXED);
                        continue;
                    }
                    conns[fd] = nc;
                    __atomic_add_fetch(&ctr->open, 1, __ATOMIC_RELEASE);
                    __atomic_add_fetch(&ctr->accepted, 1, __ATOMIC_RELEASE);
                }
                continue;
            }
            if (evs[i].events & EPOLLOUT) {
                if (flush(c) < 0)
                    conn_close(c, 1);
            } else if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                on_readable(c, buf, BUFSZ);
            }
        }
    }
    size_t left = 0;
    for (size_t fd = 0; fd < nconns; fd++) {
        if (conns[fd]) {
            conn_close(conns[fd], 0);
            left++;
        }
    }
    close(lfd);
    close(ep);
    printf("# served worker %d (pid %d): %llu accepted, %llu closed (%zu still open at exit), "
           "%llu bytes echoed, %llu errors\n", worker_idx, me, (unsigned long long)ctr->accepted,
           (unsigned long long)ctr->closed, left, (unsigned long long)ctr->bytes,
           (unsigned long long)ctr->errors);
    free(conns);
    return failed || ctr->errors != 0;
}

int main(int argc, char **argv)
{
    int port = 0, nworkers = 2;
    long plan = 10000;
    const char *ctrfile = NULL;
    int opt;
    while ((opt = getopt(argc, argv, "p:c:n:w:")) != -1) {
        switch (opt) {
        case 'p': port = atoi(optarg); break;
        case 'c': ctrfile = optarg; break;
        case 'n': plan = atol(optarg); break;
        case 'w': nworkers = atoi(optarg); break;
        default: goto usage;
        }
    }
    if (optind != argc || port <= 0 || port > 65535 || !ctrfile || plan <= 0 || nworkers <= 0 ||
        nworkers > CONNS_MAX_PROCS) {
usage:
        fprintf(stderr, "usage: conns_server -p PORT -c COUNTERFILE [-n CONNECTIONS] "
                "[-w WORKERS (1..%d)]\n", CONNS_MAX_PROCS);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    /* per worker: its share, and some room for an uneven spread */
    long share = (plan + nworkers - 1) / nworkers;
    rlim_t want = conns_raise_nofile(share + share / 8, "conns_server");
    struct conns_counters *all = conns_map_counters(ctrfile, 1);
    nconns = (size_t)want;

    int rp[2];
    if (pipe2(rp, O_CLOEXEC) < 0) {
        perror("conns_server: pipe2");
        return 1;
    }
    pid_t pids[CONNS_MAX_PROCS];
    for (int i = 0; i < nworkers; i++) {
        pids[i] = fork();
        if (pids[i] < 0) {
            perror("conns_server: fork");
            stop = 1;
            nworkers = i;
            break;
        }
        if (pids[i] == 0) {
            close(rp[0]);
            worker_idx = i;
            ctr = &all[i];
            conns = calloc(nconns, sizeof *conns);
            if (!conns) {
                perror("conns_server: calloc");
                exit(1);
            }
            fflush(stdout);
            exit(worker(port, rp[1]));   /* exit: the library writes USOCK_STATS at exit */
        }
    }
    close(rp[1]);
    /* every worker listens (or one failed: its end of the pipe closes) */
    int ready = 0, wpid[CONNS_MAX_PROCS];
    while (!stop && ready < nworkers) {
        ssize_t r = read(rp[0], &wpid[ready], sizeof wpid[ready]);
        if (r < 0 && errno == EINTR)
            continue;
        if (r != (ssize_t)sizeof wpid[ready])
            break;
        ready++;
    }
    close(rp[0]);
    int failed = 0;
    if (ready == nworkers) {
        printf("# ready port %d pid %d workers ", port, (int)getpid());
        for (int i = 0; i < nworkers; i++)
            printf("%s%d", i ? "," : "", wpid[i]);
        printf("\n");
    } else {
        fprintf(stderr, "conns_server: %d of %d workers got ready\n", ready, nworkers);
        failed = 1;
        stop = 1;
    }
    /* until SIGTERM, or until a worker dies: then the run is over */
    int alive = nworkers;
    while (alive > 0) {
        if (stop) {
            for (int i = 0; i < nworkers; i++)
                if (pids[i] > 0)
                    kill(pids[i], SIGTERM);
        }
        int st;
        pid_t w = waitpid(-1, &st, stop ? 0 : WNOHANG);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            break;
        if (w == 0) {
            sleep_ms(100);
            continue;
        }
        for (int i = 0; i < nworkers; i++) {
            if (pids[i] != w)
                continue;
            pids[i] = 0;
            alive--;
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                fprintf(stderr, "conns_server: worker %d (pid %d) %s %d\n", i, (int)w,
                        WIFEXITED(st) ? "exited with status" : "died of signal",
                        WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
                failed = 1;
            } else if (!stop) {
                fprintf(stderr, "conns_server: worker %d (pid %d) exited before SIGTERM\n", i, (int)w);
                failed = 1;
            }
        }
        if (failed)
            stop = 1;
    }
    return failed;
}

/*
 * usockstat: list the sockets of one user-space network, in the spirit of
 * ss(8).
 *
 * Every process whose transport runs on the network serves its listing at
 * DIR/.stat/<pid> (src/backends/xproc/status.rs has the format): this
 * program connects to each at once, reads every answer until a common
 * deadline, and prints them. It never signals, traces or waits on a
 * process: a process that does not answer in time (stopped, busy) is named
 * on stderr and left out. A file whose process is gone refuses the
 * connection; it is left where it is (the next process with that pid
 * replaces it).
 *
 * Built without the library: its own sockets are the kernel's.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_FIELDS 8

static const char *usage_text =
    "usage: usockstat [-l|-a] [-t] [-u] [-x] [-p] [-n] [--json] [--net DIR] [--timeout MS]\n"
    "\n"
    "Lists the sockets of a user-space network (programs run under\n"
    "usockrun --net DIR): netid, state, Recv-Q, Send-Q, local and peer\n"
    "address, and with -p the process (name, pid, fd), as ss(8) does for the\n"
    "kernel's sockets.\n"
    "\n"
    "  -l, --listening  listening sockets only (LISTEN, unconnected datagram)\n"
    "  -a, --all        all sockets (default: all but the listening ones)\n"
    "  -t, --tcp        TCP sockets\n"
    "  -u, --udp        UDP sockets\n"
    "  -x, --unix       AF_UNIX sockets (those routed to user space)\n"
    "                   (none of -t, -u, -x: all of them)\n"
    "  -p, --processes  show the process using each socket\n"
    "  -n, --numeric    accepted for ss's sake: names are never resolved\n"
    "  --json           one JSON array of objects (netid, state, recv_q,\n"
    "                   send_q, local, peer, pid, comm, fds), every field\n"
    "                   always present\n"
    "  --net DIR        the network directory (default: $USOCK_NET, else\n"
    "                   usockrun's default: $XDG_RUNTIME_DIR/usock-net, else\n"
    "                   /tmp/usock-net-$UID)\n"
    "  --timeout MS     how long to wait for the processes' answers\n"
    "                   (default 500); one that does not answer is named on\n"
    "                   stderr and skipped\n"
    "  -h, --help       this text\n"
    "\n"
    "Example:\n"
    "  usockrun --net /tmp/demo -- python3 -m http.server --bind 127.0.0.1 8080 &\n"
    "  usockrun --net /tmp/demo -- socat - TCP:127.0.0.1:8080 &\n"
    "  usockstat --net /tmp/demo -atp\n"
    "\n"
    "Exit status: 0, or 2 for a usage error or a directory that cannot be\n"
    "used (the reason on stderr).\n";

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs("usockstat: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nTry 'usockstat --help'.\n", stderr);
    return 2;
}

/* One socket line of one process's answer. */
struct sock {
    int pid;
    char *comm;
    long id;
    char *netid;
    char *state;
    unsigned long long recv_q, send_q;
    char *local, *peer;
    int *fds;
    int nfds;
};

static struct sock *socks;
static size_t nsocks, capsocks;

/* One process being asked. */
struct ask {
    int pid;
    int fd;
    char *buf;
    size_t len, cap;
    int done;
};

static long long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p) {
        fputs("usockstat: out of memory\n", stderr);
        exit(1);
    }
    return p;
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(xrealloc(NULL, n), s, n);
}

/* The name /proc gives a pid (for messages about one that did not answer). */
static void proc_comm(int pid, char *out, size_t n)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/comm", pid);
    out[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    if (fgets(out, (int)n, f))
        out[strcspn(out, "\n")] = 0;
    fclose(f);
}

/* Splits `line` at tabs into at most `max` fields; how many. */
static int split(char *line, char **f, int max)
{
    int n = 0;
    f[n++] = line;
    for (char *p = line; *p && n < max; p++)
        if (*p == '\t') {
            *p = 0;
            f[n++] = p + 1;
        }
    return n;
}

static int parse_ull(const char *s, unsigned long long *v)
{
    char *end;
    errno = 0;
    *v = strtoull(s, &end, 10);
    return errno == 0 && end != s && *end == 0;
}

/* Takes in one process's complete answer; false when it is malformed. */
static int take_answer(struct ask *a)
{
    char *text = a->buf, *nl, *f[MAX_FIELDS];
    int pid = 0;
    char *comm = NULL;
    size_t first = nsocks;

    for (int lineno = 0; (nl = memchr(text, '\n', a->buf + a->len - text)); lineno++) {
        *nl = 0;
        char *line = text;
        text = nl + 1;
        if (lineno == 0) {
            if (split(line, f, 4) != 4 || strcmp(f[0], "usock-listing") != 0 ||
                strcmp(f[1], "1") != 0)
                return 0;
            pid = atoi(f[2]);
            comm = xstrdup(f[3]);
            continue;
        }
        if (strcmp(line, "end") == 0)
            return 1;
        if (split(line, f, 8) != 8)
            goto bad;
        unsigned long long fd, id, rq, sq;
        if (!parse_ull(f[0], &fd) || !parse_ull(f[1], &id) || !parse_ull(f[4], &rq) ||
            !parse_ull(f[5], &sq))
            goto bad;
        /* Two fds of one socket (dup) are one line, as in ss. */
        struct sock *s = NULL;
        for (size_t i = first; i < nsocks; i++)
            if (socks[i].id == (long)id)
                s = &socks[i];
        if (!s) {
            if (nsocks == capsocks) {
                capsocks = capsocks ? capsocks * 2 : 64;
                socks = xrealloc(socks, capsocks * sizeof *socks);
            }
            s = &socks[nsocks++];
            *s = (struct sock){
                .pid = pid,
                .comm = comm,
                .id = (long)id,
                .netid = xstrdup(f[2]),
                .state = xstrdup(f[3]),
                .recv_q = rq,
                .send_q = sq,
                .local = xstrdup(f[6]),
                .peer = xstrdup(f[7]),
            };
        }
        s->fds = xrealloc(s->fds, (s->nfds + 1) * sizeof *s->fds);
        s->fds[s->nfds++] = (int)fd;
    }
bad:
    nsocks = first;
    return 0;
}

static int netid_rank(const char *n)
{
    static const char *order[] = {"tcp", "udp", "u_str", "u_dgr", "u_seq"};
    for (int i = 0; i < 5; i++)
        if (strcmp(n, order[i]) == 0)
            return i;
    return 5;
}

static int by_netid_pid_fd(const void *x, const void *y)
{
    const struct sock *a = x, *b = y;
    int r = netid_rank(a->netid) - netid_rank(b->netid);
    if (r)
        return r;
    if (a->pid != b->pid)
        return a->pid < b->pid ? -1 : 1;
    return a->fds[0] - b->fds[0];
}

/* Whether ss would count the socket as listening: LISTEN, or a datagram
 * socket with no peer (UNCONN). */
static int is_listening(const struct sock *s)
{
    if (strcmp(s->state, "LISTEN") == 0)
        return 1;
    int dgram = strcmp(s->netid, "udp") == 0 || strcmp(s->netid, "u_dgr") == 0;
    return dgram && strcmp(s->state, "UNCONN") == 0;
}

static void json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            putchar('\\');
        putchar(*s);
    }
    putchar('"');
}

/* ss's process column: users:(("name",pid=N,fd=F),...), one entry per fd. */
static void process_column(const struct sock *s, char *out, size_t n)
{
    size_t used = (size_t)snprintf(out, n, "users:(");
    for (int i = 0; i < s->nfds && used < n; i++)
        used += (size_t)snprintf(out + used, n - used, "%s(\"%s\",pid=%d,fd=%d)", i ? "," : "",
                                 s->comm, s->pid, s->fds[i]);
    if (used < n)
        snprintf(out + used, n - used, ")");
}

int main(int argc, char **argv)
{
    int listening = 0, all = 0, tcp = 0, udp = 0, unx = 0, procs = 0, json = 0;
    long timeout = 500;
    const char *net = NULL;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(usage_text, stdout);
            return 0;
        } else if (strcmp(a, "--net") == 0 || strcmp(a, "--timeout") == 0) {
            if (i + 1 >= argc)
                return usage_error("%s needs an argument", a);
            if (strcmp(a, "--net") == 0) {
                net = argv[++i];
            } else {
                char *end;
                timeout = strtol(argv[++i], &end, 10);
                if (*argv[i] == 0 || *end || timeout <= 0 || timeout > 600000)
                    return usage_error("--timeout: not a number of milliseconds (1 to 600000): '%s'",
                                       argv[i]);
            }
        } else if (strncmp(a, "--net=", 6) == 0) {
            net = a + 6;
        } else if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if (strcmp(a, "--listening") == 0) {
            listening = 1;
        } else if (strcmp(a, "--all") == 0) {
            all = 1;
        } else if (strcmp(a, "--tcp") == 0) {
            tcp = 1;
        } else if (strcmp(a, "--udp") == 0) {
            udp = 1;
        } else if (strcmp(a, "--unix") == 0) {
            unx = 1;
        } else if (strcmp(a, "--processes") == 0) {
            procs = 1;
        } else if (strcmp(a, "--numeric") == 0) {
        } else if (a[0] == '-' && a[1] && a[1] != '-') {
            for (const char *c = a + 1; *c; c++) {
                switch (*c) {
                case 'l': listening = 1; break;
                case 'a': all = 1; break;
                case 't': tcp = 1; break;
                case 'u': udp = 1; break;
                case 'x': unx = 1; break;
                case 'p': procs = 1; break;
                case 'n': break;
                case 'h': fputs(usage_text, stdout); return 0;
                default: return usage_error("unknown option -%c", *c);
                }
            }
        } else if (a[0] == '-') {
            return usage_error("unknown option %s", a);
        } else {
            return usage_error("unexpected argument '%s' (the network is given with --net DIR)",
                               a);
        }
    }
    if (listening && all)
        return usage_error("-l and -a exclude each other");

    char defdir[PATH_MAX - 16];
    if (!net || !*net) {
        if (net)
            return usage_error("--net: empty directory name");
        net = getenv("USOCK_NET");
        if (!net || !*net) {
            const char *x = getenv("XDG_RUNTIME_DIR");
            if (x && *x)
                snprintf(defdir, sizeof defdir, "%s/usock-net", x);
            else
                snprintf(defdir, sizeof defdir, "/tmp/usock-net-%u", (unsigned)getuid());
            net = defdir;
        }
    }
    struct stat st;
    if (stat(net, &st) != 0) {
        fprintf(stderr, "usockstat: %s: cannot use the network directory: %s\n", net,
                strerror(errno));
        return 2;
    }
    if (!S_ISDIR(st.st_mode)) {
        fprintf(stderr, "usockstat: %s: not a directory\n", net);
        return 2;
    }
    if (access(net, R_OK | X_OK) != 0) {
        fprintf(stderr, "usockstat: %s: cannot read the network directory: %s\n", net,
                strerror(errno));
        return 2;
    }

    /* Ask every process at once: the deadline is one for all. */
    char statdir[PATH_MAX];
    if ((size_t)snprintf(statdir, sizeof statdir, "%s/.stat", net) >= sizeof statdir) {
        fprintf(stderr, "usockstat: %s: name too long\n", net);
        return 2;
    }
    struct ask *asks = NULL;
    size_t nasks = 0;
    DIR *d = opendir(statdir);
    if (!d && errno != ENOENT) {
        fprintf(stderr, "usockstat: %s: %s\n", statdir, strerror(errno));
        return 2;
    }
    for (struct dirent *e; d && (e = readdir(d));) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (e->d_name[0] < '0' || e->d_name[0] > '9' || *end || pid <= 0)
            continue;
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        if ((size_t)snprintf(sa.sun_path, sizeof sa.sun_path, "%s/%s", statdir, e->d_name) >=
            sizeof sa.sun_path) {
            fprintf(stderr, "usockstat: %s/%s: path too long for a socket address\n", statdir,
                    e->d_name);
            continue;
        }
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            fprintf(stderr, "usockstat: socket: %s\n", strerror(errno));
            break;
        }
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
            int err = errno;
            close(fd);
            /* A dead process's file (refused), or one going away now. */
            if (err == ECONNREFUSED || err == ENOENT)
                continue;
            char comm[64];
            proc_comm((int)pid, comm, sizeof comm);
            fprintf(stderr, "usockstat: process %ld (%s) cannot be asked: %s; skipped\n", pid,
                    comm[0] ? comm : "?", strerror(err));
            continue;
        }
        asks = xrealloc(asks, (nasks + 1) * sizeof *asks);
        asks[nasks++] = (struct ask){.pid = (int)pid, .fd = fd};
    }
    if (d)
        closedir(d);

    long long deadline = now_ms() + timeout;
    struct pollfd *pfd = xrealloc(NULL, nasks * sizeof *pfd);
    for (;;) {
        size_t n = 0;
        for (size_t i = 0; i < nasks; i++)
            if (!asks[i].done)
                pfd[n++] = (struct pollfd){.fd = asks[i].fd, .events = POLLIN};
        long long left = deadline - now_ms();
        if (n == 0 || left <= 0)
            break;
        if (poll(pfd, n, (int)left) < 0 && errno != EINTR)
            break;
        for (size_t i = 0; i < nasks; i++) {
            struct ask *a = &asks[i];
            if (a->done)
                continue;
            for (;;) {
                if (a->cap - a->len < 4096) {
                    a->cap = a->cap ? a->cap * 2 : 8192;
                    a->buf = xrealloc(a->buf, a->cap);
                }
                ssize_t r = read(a->fd, a->buf + a->len, a->cap - a->len - 1);
                if (r > 0) {
                    a->len += (size_t)r;
                    continue;
                }
                if (r < 0 && (errno == EAGAIN || errno == EINTR))
                    break;
                a->done = 1;
                a->buf[a->len] = 0;
                if (!take_answer(a))
                    fprintf(stderr,
                            "usockstat: process %d: incomplete or malformed answer; skipped\n",
                            a->pid);
                break;
            }
        }
    }
    for (size_t i = 0; i < nasks; i++) {
        if (!asks[i].done) {
            char comm[64];
            proc_comm(asks[i].pid, comm, sizeof comm);
            fprintf(stderr,
                    "usockstat: process %d (%s) did not answer within %ld ms (stopped or busy); "
                    "skipped\n",
                    asks[i].pid, comm[0] ? comm : "?", timeout);
        }
        close(asks[i].fd);
    }

    /* Filter, sort, print. */
    size_t kept = 0;
    int any_family = tcp || udp || unx;
    for (size_t i = 0; i < nsocks; i++) {
        struct sock *s = &socks[i];
        int lis = is_listening(s);
        if (listening && !lis)
            continue;
        /* ss's default leaves out the listening ones and the closed ones. */
        if (!listening && !all && (lis || strcmp(s->state, "UNCONN") == 0))
            continue;
        if (any_family) {
            int t = strcmp(s->netid, "tcp") == 0, u = strcmp(s->netid, "udp") == 0;
            int x = strncmp(s->netid, "u_", 2) == 0;
            if (!((tcp && t) || (udp && u) || (unx && x)))
                continue;
        }
        socks[kept++] = *s;
    }
    qsort(socks, kept, sizeof *socks, by_netid_pid_fd);

    if (json) {
        putchar('[');
        for (size_t i = 0; i < kept; i++) {
            struct sock *s = &socks[i];
            printf("%s\n{\"netid\":", i ? "," : "");
            json_string(s->netid);
            printf(",\"state\":");
            json_string(s->state);
            printf(",\"recv_q\":%llu,\"send_q\":%llu,\"local\":", s->recv_q, s->send_q);
            json_string(s->local);
            printf(",\"peer\":");
            json_string(s->peer);
            printf(",\"pid\":%d,\"comm\":", s->pid);
            json_string(s->comm);
            printf(",\"fds\":[");
            for (int k = 0; k < s->nfds; k++)
                printf("%s%d", k ? "," : "", s->fds[k]);
            printf("]}");
        }
        printf("%s]\n", kept ? "\n" : "");
        return 0;
    }

    int wl = (int)strlen("Local Address:Port"), wp = (int)strlen("Peer Address:Port");
    for (size_t i = 0; i < kept; i++) {
        int l = (int)strlen(socks[i].local), p = (int)strlen(socks[i].peer);
        wl = l > wl ? l : wl;
        wp = p > wp ? p : wp;
    }
    printf("%-6s %-11s %7s %7s %-*s %-*s%s\n", "Netid", "State", "Recv-Q", "Send-Q", wl,
           "Local Address:Port", wp, "Peer Address:Port", procs ? " Process" : "");
    for (size_t i = 0; i < kept; i++) {
        struct sock *s = &socks[i];
        char pc[512] = "";
        if (procs)
            process_column(s, pc, sizeof pc);
        printf("%-6s %-11s %7llu %7llu %-*s %-*s%s%s\n", s->netid, s->state, s->recv_q,
               s->send_q, wl, s->local, procs ? wp : 0, s->peer, procs ? " " : "", pc);
    }
    return 0;
}

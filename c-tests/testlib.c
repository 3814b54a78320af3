/* testlib.c - runner and helpers; see testlib.h. */
#include "testlib.h"

#include <ftw.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <grp.h>
#include <linux/capability.h>

#define TL_MAX 512

struct tl_case {
    char name[96];
    tl_fn fn;
    tl_fam_fn fam_fn;
    tl_unix_fn unix_fn;
    int fam;
};

static struct tl_case tl_cases[TL_MAX];
static int tl_ncases;
static sigjmp_buf tl_jmp;
static pthread_t tl_main_thread;
static atomic_int tl_cur_failed, tl_cur_skipped;
static const char *volatile tl_cur_name = "";
static int tl_passed, tl_failed, tl_skipped;
/* "variant/program" (the last two parts of argv[0]): names the suite in
 * the skip log. */
static const char *tl_prog = "?";
static char tl_dir[64];
static atomic_uint tl_counter;
static int tl_timeout = 20;

const char *const tl_fam_names[FAM_COUNT] = {"inet", "inet6", "unix", "abstract"};
const char *const tl_unix_names[UX_COUNT] = {"pair", "path", "abstract"};
/* In a tl_child child: the pipe its failure message goes to. */
static int tl_child_fd = -1;

void tl_register(const char *name, tl_fn fn)
{
    if (tl_ncases >= TL_MAX)
        abort();
    snprintf(tl_cases[tl_ncases].name, sizeof tl_cases[0].name, "%s", name);
    tl_cases[tl_ncases++].fn = fn;
}

void tl_register_fam(const char *name, tl_fam_fn fn)
{
    for (int f = 0; f < FAM_COUNT; f++) {
        if (tl_ncases >= TL_MAX)
            abort();
        snprintf(tl_cases[tl_ncases].name, sizeof tl_cases[0].name, "%s/%s",
                 name, tl_fam_names[f]);
        tl_cases[tl_ncases].fam_fn = fn;
        tl_cases[tl_ncases++].fam = f;
    }
}

void tl_register_unix(const char *name, tl_fam_fn fn)
{
    for (int h = 0; h < UX_COUNT; h++) {
        if (tl_ncases >= TL_MAX)
            abort();
        snprintf(tl_cases[tl_ncases].name, sizeof tl_cases[0].name, "%s/%s",
                 name, tl_unix_names[h]);
        tl_cases[tl_ncases].fam_fn = fn;
        tl_cases[tl_ncases++].fam = h;
    }
}

const int tl_unix_types[3] = {SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET};

void tl_register_unix_types(const char *name, tl_unix_fn fn)
{
    static const char *const tn[3] = {"stream", "dgram", "seqpacket"};
    for (int t = 0; t < 3; t++)
        for (int h = 0; h < UX_COUNT; h++) {
            if (tl_ncases >= TL_MAX)
                abort();
            snprintf(tl_cases[tl_ncases].name, sizeof tl_cases[0].name, "%s/%s/%s",
                     name, tn[t], tl_unix_names[h]);
            tl_cases[tl_ncases].unix_fn = fn;
            tl_cases[tl_ncases++].fam = t * UX_COUNT + h;
        }
}

const char *tl_errname(int e)
{
    const char *n = e ? strerrorname_np(e) : "0";
    return n ? n : "?";
}

/* Ends the current case: the test's own thread goes back to the runner,
 * any other thread ends (the case's outcome is already recorded). */
/* Set in a tl_in_child child: ending the case ends the child. */
static int tl_forked_child;

static __attribute__((noreturn)) void tl_end_case(void)
{
    if (tl_child_fd >= 0)
        _exit(1);
    if (tl_forked_child) {
        fflush(stdout);
        _exit(atomic_load(&tl_cur_failed) ? 1 : atomic_load(&tl_cur_skipped) ? 2 : 0);
    }
    if (pthread_equal(pthread_self(), tl_main_thread))
        siglongjmp(tl_jmp, 1);
    pthread_exit(NULL);
}

void tl_fail(const char *file, int line, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (tl_child_fd >= 0) {
        /* In tl_child's child: the parent prints it and fails the case. */
        char out[640];
        int n = snprintf(out, sizeof out, "F%s:%d: %s", file, line, msg);
        if (n >= (int)sizeof out)
            n = (int)sizeof out - 1;
        if (write(tl_child_fd, out, (size_t)n) < 0) { /* the exit status tells */ }
        _exit(1);
    }
    fprintf(stdout, "  %s:%d: [%s] %s\n", file, line, tl_cur_name, msg);
    fflush(stdout);
    atomic_store(&tl_cur_failed, 1);
    tl_end_case();
}

long tl_ok(long r, const char *expr, const char *file, int line)
{
    if (r == -1) {
        int e = errno;
        tl_fail(file, line, "%s: returned -1 (errno %s)", expr, tl_errname(e));
    }
    return r;
}

/* Whether $ALLOW_SKIP (space- or comma-separated) names `name` or "all". */
static int tl_skip_allowed(const char *name)
{
    const char *a = getenv("ALLOW_SKIP");
    size_t n = strlen(name);
    if (!a)
        return 0;
    for (a += strspn(a, " ,\t"); *a; a += strspn(a, " ,\t")) {
        size_t len = strcspn(a, " ,\t");
        if ((len == 3 && strncmp(a, "all", 3) == 0) ||
            (len == n && strncmp(a, name, n) == 0))
            return 1;
        a += len;
    }
    return 0;
}

void t_skip(const char *name, const char *fmt, ...)
{
    char reason[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    if (tl_child_fd >= 0) {
        /* In tl_child's child: the parent skips with this name and reason. */
        char out[400];
        int n = snprintf(out, sizeof out, "S%s\n%s", name, reason);
        if (n >= (int)sizeof out)
            n = (int)sizeof out - 1;
        if (write(tl_child_fd, out, (size_t)n) < 0) { /* the exit status tells */ }
        _exit(1);
    }
    printf("SKIP %s: %s\n", name, reason);
    const char *log = getenv("USOCK_SKIP_LOG");
    if (log && *log) {
        char line[512];
        int n = snprintf(line, sizeof line, "c-tests %s %s: %s: %s\n", tl_prog,
                         tl_cur_name, name, reason);
        if (n >= (int)sizeof line)
            n = (int)sizeof line - 1;
        int fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        /* A skip the log does not show would vanish from make test's
         * summary: that fails the case, allowed or not. */
        if (fd < 0 || write(fd, line, (size_t)n) != n) {
            printf("  [%s] cannot append to USOCK_SKIP_LOG=%s (errno %s)\n",
                   tl_cur_name, log, tl_errname(errno));
            atomic_store(&tl_cur_failed, 1);
        }
        if (fd >= 0)
            close(fd);
    }
    if (tl_skip_allowed(name)) {
        atomic_store(&tl_cur_skipped, 1);
    } else {
        printf("  [%s] skip not allowed (set ALLOW_SKIP=%s to allow)\n",
               tl_cur_name, name);
        atomic_store(&tl_cur_failed, 1);
    }
    fflush(stdout);
    tl_end_case();
}

static void tl_summary(void)
{
    printf("%d passed, %d failed, %d skipped\n", tl_passed, tl_failed, tl_skipped);
    fflush(stdout);
}

static int tl_rm(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb; (void)flag; (void)f;
    remove(p);
    return 0;
}

static void tl_cleanup(void)
{
    if (tl_dir[0])
        nftw(tl_dir, tl_rm, 16, FTW_DEPTH | FTW_PHYS);
}

static void tl_on_alarm(int sig)
{
    (void)sig;
    char buf[256];
    int n = snprintf(buf, sizeof buf,
                     "FAIL %s: timed out (watchdog)\n%d passed, %d failed, %d skipped\n",
                     tl_cur_name, tl_passed, tl_failed + 1, tl_skipped);
    if (write(1, buf, (size_t)n) < 0) { /* nothing to do */ }
    tl_cleanup();
    _exit(1);
}

static __attribute__((noinline)) void tl_run_case(struct tl_case *c)
{
    if (sigsetjmp(tl_jmp, 1) == 0) {
        if (c->fn)
            c->fn();
        else if (c->unix_fn)
            c->unix_fn(c->fam % UX_COUNT, tl_unix_types[c->fam / UX_COUNT]);
        else
            c->fam_fn(c->fam);
    }
}

/* TL_ONLY=FILE[:FILE...]: lists of "program/case" lines
 * (c-tests/conformance13.pass, conformance14.pass). A program named in them
 * runs (and lists with -l) only the cases they name (a line "program/"
 * alone names the program and no case); a program they do not name runs
 * all of its cases. The C tests of issue
 * 13 run this way against the library: the cases it passes, which must go
 * on passing, while the rest of the inventory is worked through
 * (CONFORMANCE-13.md). */
static char *tl_only;       /* the file's text, "\n"-separated, or NULL */
static int tl_only_governs; /* the file names this program */

static const char *tl_base(void)
{
    const char *b = strrchr(tl_prog, '/');
    return b ? b + 1 : tl_prog;
}

static void tl_load_only(void)
{
    const char *paths = getenv("TL_ONLY");
    if (!paths || !*paths)
        return;
    size_t cap = 1 << 16, n = 0;
    tl_only = malloc(cap + 2);
    tl_only[n++] = '\n';
    /* Several lists may be given, separated by ':' (one per issue). */
    for (const char *p = paths; *p;) {
        size_t len = strcspn(p, ":");
        char path[4096];
        snprintf(path, sizeof path, "%.*s", (int)len, p);
        p += len + (p[len] == ':');
        FILE *f = fopen(path, "r");
        if (!f) {
            fprintf(stderr, "TL_ONLY: cannot open %s\n", path);
            exit(2);
        }
        size_t got;
        while ((got = fread(tl_only + n, 1, cap - n, f)) > 0) {
            n += got;
            if (n == cap) {
                cap *= 2;
                tl_only = realloc(tl_only, cap + 2);
            }
        }
        fclose(f);
        if (n == cap) {
            cap *= 2;
            tl_only = realloc(tl_only, cap + 2);
        }
        tl_only[n++] = '\n';
    }
    tl_only[n] = 0;
    char key[256];
    snprintf(key, sizeof key, "\n%s/", tl_base());
    tl_only_governs = strstr(tl_only, key) != NULL;
}

static int tl_selected(const char *name)
{
    if (!tl_only || !tl_only_governs)
        return 1;
    char key[512];
    snprintf(key, sizeof key, "\n%s/%s\n", tl_base(), name);
    return strstr(tl_only, key) != NULL;
}

int main(int argc, char **argv)
{
    const char *t = getenv("TL_TIMEOUT");
    if (t && atoi(t) > 0)
        tl_timeout = atoi(t);
    setvbuf(stdout, NULL, _IOLBF, 0);
    tl_main_thread = pthread_self();
    if (argc > 0) {
        const char *p = argv[0] + strlen(argv[0]);
        int slashes = 0;
        while (p > argv[0] && !(p[-1] == '/' && ++slashes == 2))
            p--;
        tl_prog = p;
    }
    srand((unsigned)(getpid() ^ time(NULL)));
    snprintf(tl_dir, sizeof tl_dir, "/tmp/usock-ct-XXXXXX");
    if (!mkdtemp(tl_dir)) {
        perror("mkdtemp");
        return 2;
    }
    atexit(tl_cleanup);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = tl_on_alarm;
    sigaction(SIGALRM, &sa, NULL);

    tl_load_only();
    if (argc > 1 && strcmp(argv[1], "-l") == 0) {
        for (int i = 0; i < tl_ncases; i++)
            if (tl_selected(tl_cases[i].name))
                printf("%s\n", tl_cases[i].name);
        return 0;
    }
    for (int i = 0; i < tl_ncases; i++) {
        struct tl_case *c = &tl_cases[i];
        if (!tl_selected(c->name))
            continue;
        if (argc > 1) {
            int want = 0;
            for (int a = 1; a < argc; a++)
                if (strncmp(c->name, argv[a], strlen(argv[a])) == 0)
                    want = 1;
            if (!want)
                continue;
        }
        tl_cur_name = c->name;
        atomic_store(&tl_cur_failed, 0);
        atomic_store(&tl_cur_skipped, 0);
        signal(SIGPIPE, SIG_IGN);
        long t0 = tl_now_ms();
        alarm((unsigned)tl_timeout);
        tl_run_case(c);
        alarm(0);
        if (atomic_load(&tl_cur_failed)) {
            tl_failed++;
            printf("FAIL %s\n", c->name);
        } else if (atomic_load(&tl_cur_skipped)) {
            tl_skipped++;
            printf("skip %s\n", c->name);
        } else {
            tl_passed++;
            printf("ok   %s (%ld ms)\n", c->name, tl_now_ms() - t0);
        }
    }
    tl_summary();
    return tl_failed ? 1 : 0;
}

#if defined(__SANITIZE_THREAD__) && !defined(TL_LIB_SANITIZED)
/* The one suppression of the C tests, for usock-tsan only (README.md,
 * "Sanitizers"): there libuserspacesock is the stable, uninstrumented build,
 * its locks and atomics are invisible to TSan, so the interceptors it calls
 * (memcpy, malloc...) would report races TSan cannot judge; only the test
 * code is checked. usock-libtsan (TL_LIB_SANITIZED) links the instrumented
 * library and suppresses nothing. */
const char *__tsan_default_suppressions(void);
const char *__tsan_default_suppressions(void)
{
    return "called_from_lib:libuserspacesock.so\n";
}
#endif

/* ---- helpers --------------------------------------------------------- */

int tl_domain(int fam)
{
    switch (fam) {
    case FAM_INET: return AF_INET;
    case FAM_INET6: return AF_INET6;
    default: return AF_UNIX;
    }
}

void tl_path(char *buf, size_t n)
{
    snprintf(buf, n, "%s/s%u", tl_dir, atomic_fetch_add(&tl_counter, 1));
}

const char *tl_tmpdir(void)
{
    return tl_dir;
}

void tl_child(void (*fn)(void *arg), void *arg)
{
    int p[2];
    OK(pipe2(p, O_CLOEXEC));
    fflush(stdout);
    pid_t pid = (pid_t)OK(fork());
    if (pid == 0) {
        close(p[0]);
        tl_child_fd = p[1];
        fn(arg);
        _exit(0);
    }
    close(p[1]);
    char msg[700];
    size_t got = 0;
    long deadline = tl_now_ms() + (tl_timeout > 4 ? tl_timeout - 2 : 2) * 1000L;
    int hung = 0;
    for (;;) {
        long left = deadline - tl_now_ms();
        if (left <= 0) {
            hung = 1;
            break;
        }
        struct pollfd pf = {p[0], POLLIN, 0};
        int r = poll(&pf, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            hung = 1;
            break;
        }
        ssize_t n = read(p[0], msg + got, sizeof msg - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
        if (got == sizeof msg - 1)
            break;
    }
    msg[got] = 0;
    close(p[0]);
    if (hung)
        kill(pid, SIGKILL);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (hung)
        tl_fail(__FILE__, __LINE__, "child %d did not finish in time (killed)", (int)pid);
    if (msg[0] == 'S') {
        char *nl = strchr(msg, '\n');
        if (nl)
            *nl = 0;
        t_skip(msg + 1, "%s (in a child process)", nl ? nl + 1 : "");
    }
    if (msg[0] == 'F') {
        /* The child's own file:line, as a failure here would print it. */
        printf("  %s [%s] (in child %d)\n", msg + 1, tl_cur_name, (int)pid);
        fflush(stdout);
        atomic_store(&tl_cur_failed, 1);
        tl_end_case();
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        tl_fail(__FILE__, __LINE__, "child %d ended with %s %d and no message", (int)pid,
                WIFSIGNALED(st) ? "signal" : "status",
                WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
}

void tl_unix_pair(int how, int type, int *a, int *b)
{
    int base = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
    int flags = type & (SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (how == UX_PAIR) {
        int sv[2];
        OK(socketpair(AF_UNIX, type, 0, sv));
        *a = sv[0];
        *b = sv[1];
        return;
    }
    int fam = how == UX_PATH ? FAM_UNIX : FAM_ABSTRACT;
    struct sockaddr_storage ss;
    socklen_t len;
    if (base == SOCK_DGRAM) {
        struct sockaddr_storage sa;
        socklen_t la;
        *a = (int)OK(socket(AF_UNIX, type, 0));
        *b = (int)OK(socket(AF_UNIX, type, 0));
        tl_addr(fam, &sa, &la);
        tl_addr(fam, &ss, &len);
        OK(bind(*a, (struct sockaddr *)&sa, la));
        OK(bind(*b, (struct sockaddr *)&ss, len));
        OK(connect(*a, (struct sockaddr *)&ss, len));
        OK(connect(*b, (struct sockaddr *)&sa, la));
        return;
    }
    int l = (int)OK(socket(AF_UNIX, base, 0));
    tl_addr(fam, &ss, &len);
    OK(bind(l, (struct sockaddr *)&ss, len));
    OK(listen(l, 8));
    *a = (int)OK(socket(AF_UNIX, type, 0));
    OK(connect(*a, (struct sockaddr *)&ss, len));
    *b = (int)OK(accept4(l, NULL, NULL, flags));
    OK(close(l));
}

/* The test address of an inet family: the loopback one, or the one
 * TL_INET_ADDR / TL_INET6_ADDR name (a program run on a network device,
 * tests/engine/ctests.sh). A value that does not parse fails the case. */
static void tl_test_ip(int fam, void *dst)
{
    const char *name = fam == FAM_INET ? "TL_INET_ADDR" : "TL_INET6_ADDR";
    const char *v = getenv(name);
    if (v == NULL || *v == 0) {
        if (fam == FAM_INET)
            ((struct in_addr *)dst)->s_addr = htonl(INADDR_LOOPBACK);
        else
            *(struct in6_addr *)dst = in6addr_loopback;
        return;
    }
    CHECK_MSG(inet_pton(fam == FAM_INET ? AF_INET : AF_INET6, v, dst) == 1,
              "%s=%s is not an address", name, v);
}

void tl_addr(int fam, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof *ss);
    if (fam == FAM_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        a->sin_family = AF_INET;
        tl_test_ip(FAM_INET, &a->sin_addr);
        *len = sizeof *a;
    } else if (fam == FAM_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        tl_test_ip(FAM_INET6, &a->sin6_addr);
        *len = sizeof *a;
    } else if (fam == FAM_UNIX) {
        struct sockaddr_un *a = (struct sockaddr_un *)ss;
        a->sun_family = AF_UNIX;
        tl_path(a->sun_path, sizeof a->sun_path);
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
                           strlen(a->sun_path) + 1);
    } else {
        struct sockaddr_un *a = (struct sockaddr_un *)ss;
        a->sun_family = AF_UNIX;
        int n = snprintf(a->sun_path + 1, sizeof a->sun_path - 1,
                         "usock-ct-%d-%u-%08x", (int)getpid(),
                         atomic_fetch_add(&tl_counter, 1), (unsigned)rand());
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
    }
}

int tl_bound(int fam, int type)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int fd = (int)OK(socket(tl_domain(fam), type, 0));
    tl_addr(fam, &ss, &len);
    OK(bind(fd, (struct sockaddr *)&ss, len));
    return fd;
}

socklen_t tl_name(int fd, struct sockaddr_storage *ss)
{
    socklen_t len = sizeof *ss;
    memset(ss, 0, sizeof *ss);
    OK(getsockname(fd, (struct sockaddr *)ss, &len));
    return len;
}

int tl_listener(int fam, int backlog)
{
    int fd = tl_bound(fam, SOCK_STREAM);
    OK(listen(fd, backlog));
    return fd;
}

void tl_stream_pair(int fam, int *c, int *s)
{
    struct sockaddr_storage ss;
    int l = tl_listener(fam, 8);
    socklen_t len = tl_name(l, &ss);
    *c = (int)OK(socket(tl_domain(fam), SOCK_STREAM, 0));
    OK(connect(*c, (struct sockaddr *)&ss, len));
    *s = (int)OK(accept(l, NULL, NULL));
    OK(close(l));
}

void tl_dgram_pair(int fam, int *a, int *b)
{
    struct sockaddr_storage sa, sb;
    *a = tl_bound(fam, SOCK_DGRAM);
    *b = tl_bound(fam, SOCK_DGRAM);
    socklen_t la = tl_name(*a, &sa), lb = tl_name(*b, &sb);
    OK(connect(*a, (struct sockaddr *)&sb, lb));
    OK(connect(*b, (struct sockaddr *)&sa, la));
}

ssize_t tl_write_all(int fd, const void *buf, size_t n)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = write(fd, (const char *)buf + done, n - done);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        done += (size_t)r;
    }
    return (ssize_t)done;
}

ssize_t tl_read_all(int fd, void *buf, size_t n)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = read(fd, (char *)buf + done, n - done);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        done += (size_t)r;
    }
    return (ssize_t)done;
}

long tl_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

void tl_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

int tl_lowest_free_fd(void)
{
    for (int fd = 0;; fd++)
        if (fcntl(fd, F_GETFD) == -1 && errno == EBADF)
            return fd;
}

short tl_poll1(int fd, short events, int timeout_ms)
{
    struct pollfd p = {fd, events, 0};
    int r = poll(&p, 1, timeout_ms);
    if (r < 0)
        tl_fail(__FILE__, __LINE__, "poll: errno %s", tl_errname(errno));
    return r == 0 ? 0 : p.revents;
}

long tl_fill_sndbuf(int fd, int idle_ms)
{
    static char buf[16384];
    int fl = (int)OK(fcntl(fd, F_GETFL));
    OK(fcntl(fd, F_SETFL, fl | O_NONBLOCK));
    long total = 0, deadline = tl_now_ms() + 10000;
    for (;;) {
        CHECK(tl_now_ms() < deadline);
        ssize_t n = send(fd, buf, sizeof buf, 0);
        if (n > 0) {
            total += n;
            continue;
        }
        CHECK_EQ(errno, EAGAIN);
        if (!(tl_poll1(fd, POLLOUT, idle_ms) & POLLOUT))
            break;
    }
    OK(fcntl(fd, F_SETFL, fl));
    return total;
}

int tl_so_error(int fd)
{
    int e = -1;
    socklen_t l = sizeof e;
    OK(getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l));
    return e;
}

void tl_fill(void *buf, size_t n, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1;
    unsigned char *p = buf;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (unsigned char)x;
    }
}

uint32_t tl_cksum(uint32_t h, const void *buf, size_t n)
{
    const unsigned char *p = buf;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

void *tl_bad_ptr(void)
{
    static void *page;
    if (!page) {
        page = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (page == MAP_FAILED)
            abort();
    }
    return page;
}

int tl_getint(int fd, int level, int opt)
{
    int v = -12345;
    socklen_t l = sizeof v;
    OK(getsockopt(fd, level, opt, &v, &l));
    CHECK_EQ(l, sizeof(int));
    return v;
}

void tl_setint(int fd, int level, int opt, int v)
{
    OK(setsockopt(fd, level, opt, &v, sizeof v));
}

void tl_sysctl_str(const char *path, char *buf, size_t n)
{
    FILE *f = fopen(path, "r");
    if (!f)
        t_skip("procfs", "cannot read %s (%s)", path, tl_errname(errno));
    if (!fgets(buf, (int)n, f))
        buf[0] = 0;
    fclose(f);
    buf[strcspn(buf, "\n")] = 0;
}

long tl_sysctl(const char *path)
{
    char buf[256];
    tl_sysctl_str(path, buf, sizeof buf);
    char *end;
    errno = 0;
    long v = strtol(buf, &end, 10);
    CHECK_MSG(end != buf && errno == 0, "%s does not hold a number: '%s'", path, buf);
    return v;
}

socklen_t tl_loop(int fam, struct sockaddr_storage *ss, int port)
{
    memset(ss, 0, sizeof *ss);
    if (fam == FAM_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        a->sin_family = AF_INET;
        tl_test_ip(FAM_INET, &a->sin_addr);
        a->sin_port = htons((uint16_t)port);
        return sizeof *a;
    }
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
    a->sin6_family = AF_INET6;
    tl_test_ip(FAM_INET6, &a->sin6_addr);
    a->sin6_port = htons((uint16_t)port);
    return sizeof *a;
}

socklen_t tl_any(int fam, struct sockaddr_storage *ss, int port)
{
    memset(ss, 0, sizeof *ss);
    if (fam == FAM_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_ANY);
        a->sin_port = htons((uint16_t)port);
        return sizeof *a;
    }
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
    a->sin6_family = AF_INET6;
    a->sin6_addr = in6addr_any;
    a->sin6_port = htons((uint16_t)port);
    return sizeof *a;
}

int tl_port(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)ss)->sin_port);
    if (ss->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    return -1;
}

int tl_has_cap(int cap)
{
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    memset(d, 0, sizeof d);
    if (syscall(SYS_capget, &h, d) != 0)
        return 0;
    return (d[cap / 32].effective >> (cap % 32)) & 1;
}

void tl_in_child(void (*fn)(void *), void *arg, unsigned long long drop_caps,
                 int uid, int timeout_s)
{
    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        tl_forked_child = 1;
        alarm(0);
        if (drop_caps) {
            struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
            struct __user_cap_data_struct d[2];
            memset(d, 0, sizeof d);
            OK(syscall(SYS_capget, &h, d));
            for (int i = 0; i < 2; i++) {
                uint32_t m = (uint32_t)(drop_caps >> (32 * i));
                d[i].effective &= ~m;
                d[i].permitted &= ~m;
                d[i].inheritable &= ~m;
            }
            OK(syscall(SYS_capset, &h, d));
        }
        if (uid >= 0) {
            OK(setgroups(0, NULL));
            OK(setresgid((gid_t)uid, (gid_t)uid, (gid_t)uid));
            OK(setresuid((uid_t)uid, (uid_t)uid, (uid_t)uid));
        }
        fn(arg);
        fflush(stdout);
        _exit(atomic_load(&tl_cur_failed) ? 1 : 0);
    }
    long deadline = tl_now_ms() + timeout_s * 1000L;
    int st = 0;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            break;
        CHECK(r == 0 || errno == EINTR);
        if (tl_now_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            tl_fail(__FILE__, __LINE__, "child did not end within %d s", timeout_s);
        }
        tl_sleep_ms(5);
    }
    if (WIFSIGNALED(st))
        tl_fail(__FILE__, __LINE__, "child killed by signal %d (%s)", WTERMSIG(st),
                strsignal(WTERMSIG(st)));
    if (WEXITSTATUS(st) == 2) {
        atomic_store(&tl_cur_skipped, 1);
        tl_end_case();
    }
    CHECK_MSG(WEXITSTATUS(st) == 0, "child failed (exit %d)", WEXITSTATUS(st));
}

struct tl_get {
    long r;
    int e;
    socklen_t len;
    unsigned char v[64];
};

static void tl_get_both(int mine, int k, int level, int opt, struct tl_get *m, struct tl_get *kg)
{
    memset(m, 0, sizeof *m);
    memset(kg, 0, sizeof *kg);
    m->len = kg->len = sizeof m->v;
    errno = 0;
    kg->r = syscall(SYS_getsockopt, k, level, opt, kg->v, &kg->len);
    kg->e = kg->r ? errno : 0;
    errno = 0;
    m->r = getsockopt(mine, level, opt, m->v, &m->len);
    m->e = m->r ? errno : 0;
}

static const char *tl_kind(int domain, int type)
{
    if (domain == AF_INET)
        return type == SOCK_STREAM ? "tcp4" : type == SOCK_DGRAM ? "udp4" : "inet";
    if (domain == AF_INET6)
        return type == SOCK_STREAM ? "tcp6" : type == SOCK_DGRAM ? "udp6" : "inet6";
    return "other";
}

static void tl_cmp_get(const char *what, int domain, int type, int level, int opt,
                       const struct tl_get *m, const struct tl_get *k, int values_too)
{
    const char *kind = tl_kind(domain, type);
    if (m->r != k->r || m->e != k->e)
        tl_fail(__FILE__, __LINE__, "%s: getsockopt(%d, %d) %s: %ld/%s, the kernel %ld/%s", kind,
                level, opt, what, m->r, m->r ? tl_errname(m->e) : "0", k->r,
                k->r ? tl_errname(k->e) : "0");
    if (k->r != 0)
        return;
    if (m->len != k->len)
        tl_fail(__FILE__, __LINE__, "%s: getsockopt(%d, %d) %s: length %u, the kernel %u", kind,
                level, opt, what, (unsigned)m->len, (unsigned)k->len);
    if (values_too && memcmp(m->v, k->v, k->len) != 0) {
        int mv = 0, kv = 0;
        memcpy(&mv, m->v, k->len < 4 ? k->len : 4);
        memcpy(&kv, k->v, k->len < 4 ? k->len : 4);
        tl_fail(__FILE__, __LINE__, "%s: getsockopt(%d, %d) %s: value %d, the kernel %d", kind,
                level, opt, what, mv, kv);
    }
}

void tl_opt_like_kernel(int domain, int type, int level, int opt, const int *vals,
                        int nvals, int values_too)
{
    int mine = (int)OK(socket(domain, type, 0));
    int k = (int)syscall(SYS_socket, domain, type, 0);
    CHECK(k >= 0);
    struct tl_get m, kg;
    tl_get_both(mine, k, level, opt, &m, &kg);
    tl_cmp_get("default", domain, type, level, opt, &m, &kg, values_too);
    OK(close(mine));
    syscall(SYS_close, k);
    for (int i = 0; i < nvals; i++) {
        mine = (int)OK(socket(domain, type, 0));
        k = (int)syscall(SYS_socket, domain, type, 0);
        CHECK(k >= 0);
        int v = vals[i];
        errno = 0;
        long kr = syscall(SYS_setsockopt, k, level, opt, &v, sizeof v);
        int ke = kr ? errno : 0;
        errno = 0;
        long mr = setsockopt(mine, level, opt, &v, sizeof v);
        int me = mr ? errno : 0;
        if (mr != kr || me != ke)
            tl_fail(__FILE__, __LINE__, "%s: setsockopt(%d, %d, %d): %ld/%s, the kernel %ld/%s",
                    tl_kind(domain, type), level, opt, v, mr, mr ? tl_errname(me) : "0", kr,
                    kr ? tl_errname(ke) : "0");
        char what[48];
        snprintf(what, sizeof what, "after set %d", v);
        tl_get_both(mine, k, level, opt, &m, &kg);
        tl_cmp_get(what, domain, type, level, opt, &m, &kg, values_too);
        OK(close(mine));
        syscall(SYS_close, k);
    }
}

int tl_gettid(void) { return (int)syscall(SYS_gettid); }

void tl_wait_blocked(int tid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
    long deadline = tl_now_ms() + 10000;
    int asleep = 0;
    for (;;) {
        FILE *f = fopen(path, "r");
        CHECK_MSG(f != NULL, "thread %d ended instead of blocking (%s: %s)", tid, path,
                  tl_errname(errno));
        char buf[512];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        const char *p = strrchr(buf, ')');
        char st = p && p[1] == ' ' ? p[2] : '?';
        /* asleep twice in a row, a few ms apart: not just passing through */
        asleep = st == 'S' ? asleep + 1 : 0;
        if (asleep >= 2)
            return;
        CHECK_MSG(tl_now_ms() < deadline, "thread %d never blocked (state %c)", tid, st);
        tl_sleep_ms(5);
    }
}

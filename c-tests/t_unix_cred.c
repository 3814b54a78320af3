/*
 * t_unix_cred.c - AF_UNIX credentials as Linux has them (issue 14):
 * SO_PASSCRED (and its inheritance through accept), SCM_CREDENTIALS sent
 * explicitly (validated: another pid needs CAP_SYS_ADMIN, another uid
 * CAP_SETUID, another gid CAP_SETGID) or attached by the kernel when the
 * receiver asked, SO_PEERCRED as of connect()/listen()/socketpair(),
 * SO_PEERSEC's errno without a security module, SO_PASSSEC, SO_PEERPIDFD.
 * The kernel is the specification: net/core/scm.c (__scm_send,
 * scm_check_creds, put_cmsg), net/unix/af_unix.c (unix_maybe_add_creds,
 * unix_skb_scm_eq, unix_stream_connect, unix_accept), net/core/sock.c
 * (SO_PEERCRED, cred_to_ucred: the effective uid/gid; SCM_CREDENTIALS
 * carries the real ones).
 *
 * Cases that change credentials run in a child (tl_child); those that need
 * root skip as 'root' without it.
 */
#include "testlib.h"

#include <grp.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#ifndef SO_PASSPIDFD
#define SO_PASSPIDFD 76
#endif
#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif
#ifndef SCM_PIDFD
#define SCM_PIDFD 0x04
#endif

#define NOBODY 65534

/* seqpacket last: a library without it still shows the other two */
static const int types[3] = {SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET};

/* What a recvmsg brought. */
struct got {
    ssize_t r;
    int flags;
    size_t controllen;
    int ncred;
    struct ucred cred;
    size_t cred_cmsg_len;
    int nother; /* any other control message */
};

static struct got recv_ctl(int fd, void *buf, size_t n, int flags, size_t ctlspace)
{
    union {
        char b[512];
        struct cmsghdr align;
    } ctl;
    struct got g;
    memset(&g, 0, sizeof g);
    memset(&ctl, 0xEE, sizeof ctl);
    struct iovec v = {buf, n};
    struct msghdr mh;
    memset(&mh, 0, sizeof mh);
    mh.msg_iov = &v;
    mh.msg_iovlen = 1;
    mh.msg_control = ctlspace ? ctl.b : NULL;
    mh.msg_controllen = ctlspace;
    g.r = OK(recvmsg(fd, &mh, flags));
    g.flags = mh.msg_flags;
    g.controllen = mh.msg_controllen;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
            g.ncred++;
            g.cred_cmsg_len = c->cmsg_len;
            if (c->cmsg_len >= CMSG_LEN(sizeof(struct ucred)))
                memcpy(&g.cred, CMSG_DATA(c), sizeof g.cred);
        } else {
            g.nother++;
        }
    }
    return g;
}

static ssize_t send_cred_len(int fd, const void *buf, size_t n, pid_t pid, uid_t uid,
                             gid_t gid, size_t cmsg_len)
{
    union {
        char b[CMSG_SPACE(sizeof(struct ucred)) + 16];
        struct cmsghdr align;
    } ctl;
    memset(&ctl, 0, sizeof ctl);
    struct ucred u = {pid, uid, gid};
    struct iovec v = {(void *)buf, n};
    struct msghdr mh;
    memset(&mh, 0, sizeof mh);
    mh.msg_iov = &v;
    mh.msg_iovlen = 1;
    mh.msg_control = ctl.b;
    mh.msg_controllen = CMSG_SPACE(sizeof(struct ucred));
    if (cmsg_len > CMSG_SPACE(sizeof(struct ucred)))
        mh.msg_controllen = CMSG_SPACE(cmsg_len - CMSG_LEN(0));
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_CREDENTIALS;
    c->cmsg_len = cmsg_len;
    memcpy(CMSG_DATA(c), &u, sizeof u);
    return sendmsg(fd, &mh, 0);
}

static ssize_t send_cred(int fd, const void *buf, size_t n, pid_t pid, uid_t uid, gid_t gid)
{
    return send_cred_len(fd, buf, n, pid, uid, gid, CMSG_LEN(sizeof(struct ucred)));
}

static void set_int(int fd, int name, int v)
{
    OK(setsockopt(fd, SOL_SOCKET, name, &v, sizeof v));
}

static int get_int(int fd, int name)
{
    int v = -1;
    socklen_t l = sizeof v;
    OK(getsockopt(fd, SOL_SOCKET, name, &v, &l));
    CHECK_EQ(l, sizeof v);
    return v;
}

static struct ucred peercred(int fd)
{
    struct ucred u;
    memset(&u, 0x55, sizeof u);
    socklen_t l = sizeof u;
    OK(getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &u, &l));
    CHECK_EQ(l, sizeof u);
    return u;
}

#define CHECK_CRED(u, p, uu, gg)                                              \
    do {                                                                      \
        struct ucred cc_ = (u);                                               \
        CHECK_EQ(cc_.pid, (p));                                               \
        CHECK_EQ(cc_.uid, (uu));                                              \
        CHECK_EQ(cc_.gid, (gg));                                              \
    } while (0)

static int is_root(void)
{
    return geteuid() == 0;
}

/* In a tl_child: become uid/gid NOBODY for good (if root; else stay). */
static void drop_privileges(void)
{
    if (!is_root())
        return;
    OK(setgroups(0, NULL));
    OK(setresgid(NOBODY, NOBODY, NOBODY));
    OK(setresuid(NOBODY, NOBODY, NOBODY));
    CHECK_EQ(geteuid(), NOBODY);
}

/* ---- SO_PASSCRED and SO_PASSSEC as options ----------------------------- */

TEST(cred_passcred_passsec_options)
{
    for (int t = 0; t < 3; t++) {
        int fd = (int)OK(socket(AF_UNIX, types[t], 0));
        CHECK_EQ(get_int(fd, SO_PASSCRED), 0);
        set_int(fd, SO_PASSCRED, 1);
        CHECK_EQ(get_int(fd, SO_PASSCRED), 1);
        set_int(fd, SO_PASSCRED, 42); /* any non-zero is on, read back as 1 */
        CHECK_EQ(get_int(fd, SO_PASSCRED), 1);
        set_int(fd, SO_PASSCRED, 0);
        CHECK_EQ(get_int(fd, SO_PASSCRED), 0);
        CHECK_EQ(get_int(fd, SO_PASSSEC), 0);
        set_int(fd, SO_PASSSEC, 1);
        CHECK_EQ(get_int(fd, SO_PASSSEC), 1);
        set_int(fd, SO_PASSSEC, 0);
        CHECK_EQ(get_int(fd, SO_PASSSEC), 0);
        /* an option shorter than an int */
        char one = 1;
        CHECK_ERRNO(setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, 1), EINVAL);
        close(fd);
    }
}

/* ---- credentials attached by the kernel -------------------------------- */

TEST_UNIX_TYPES(cred_implicit_when_receiver_asks)
{
    int a, b;
    tl_unix_pair(how, type, &a, &b);
    set_int(b, SO_PASSCRED, 1);
    CHECK_EQ(OK(send(a, "hi", 2, 0)), 2);
    char buf[8];
    struct got g = recv_ctl(b, buf, sizeof buf, 0, 256);
    CHECK_EQ(g.r, 2);
    CHECK_EQ(g.ncred, 1);
    CHECK_EQ(g.nother, 0);
    CHECK_EQ(g.cred_cmsg_len, CMSG_LEN(sizeof(struct ucred)));
    CHECK_EQ(g.controllen, CMSG_SPACE(sizeof(struct ucred)));
    CHECK_EQ(g.flags & MSG_CTRUNC, 0);
    CHECK_CRED(g.cred, getpid(), getuid(), getgid());
    /* write() too: the credentials are the kernel's, not the call's */
    CHECK_EQ(OK(write(a, "w", 1)), 1);
    g = recv_ctl(b, buf, sizeof buf, 0, 256);
    CHECK_EQ(g.r, 1);
    CHECK_EQ(g.ncred, 1);
    CHECK_CRED(g.cred, getpid(), getuid(), getgid());
    /* the sender's own flag does not matter: a has none, b asked */
    CHECK_EQ(get_int(a, SO_PASSCRED), 0);
    close(a);
    close(b);
}

/* A datagram larger than the library's fragments (64 KiB) carries its
 * credentials whole, as a small one does. */
TEST(cred_on_a_datagram_of_many_fragments)
{
    int sv[2];
    OK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
    set_int(sv[1], SO_PASSCRED, 1);
    static char out[100000], in[150000];
    memset(out, 'x', sizeof out);
    CHECK_EQ(OK(send(sv[0], out, sizeof out, 0)), (ssize_t)sizeof out);
    CHECK(tl_poll1(sv[1], POLLIN, 5000) & POLLIN);
    struct got g = recv_ctl(sv[1], in, sizeof in, MSG_DONTWAIT, 256);
    CHECK_EQ(g.r, (ssize_t)sizeof out);
    CHECK_EQ(g.ncred, 1);
    CHECK_CRED(g.cred, getpid(), getuid(), getgid());
    CHECK(memcmp(in, out, sizeof out) == 0);
    close(sv[0]);
    close(sv[1]);
}

TEST_UNIX_TYPES(cred_none_unless_asked)
{
    int a, b;
    tl_unix_pair(how, type, &a, &b);
    /* the sender's SO_PASSCRED does not give the receiver any */
    set_int(a, SO_PASSCRED, 1);
    CHECK_EQ(OK(send(a, "hi", 2, 0)), 2);
    char buf[8];
    struct got g = recv_ctl(b, buf, sizeof buf, 0, 256);
    CHECK_EQ(g.r, 2);
    CHECK_EQ(g.ncred, 0);
    CHECK_EQ(g.nother, 0);
    CHECK_EQ(g.controllen, 0);
    CHECK_EQ(g.flags, 0);
    /* explicit credentials are not shown to a receiver who did not ask */
    CHECK_EQ(OK(send_cred(a, "ex", 2, getpid(), getuid(), getgid())), 2);
    g = recv_ctl(b, buf, sizeof buf, 0, 256);
    CHECK_EQ(g.r, 2);
    CHECK_EQ(g.ncred, 0);
    CHECK_EQ(g.controllen, 0);
    close(a);
    close(b);
}

TEST_UNIX_TYPES(cred_passcred_turned_on_after_send)
{
    int a, b;
    tl_unix_pair(how, type, &a, &b);
    /* sent while neither side asked: the message carries no
     * credentials; asked for later, they read as pid 0 and the
     * overflow uid/gid (65534) */
    CHECK_EQ(OK(send(a, "early", 5, 0)), 5);
    set_int(b, SO_PASSCRED, 1);
    char buf[8];
    struct got g = recv_ctl(b, buf, sizeof buf, 0, 256);
    CHECK_EQ(g.r, 5);
    CHECK_EQ(g.ncred, 1);
    CHECK_CRED(g.cred, 0, NOBODY, NOBODY);
    /* from then on, real ones */
    CHECK_EQ(OK(send(a, "late", 4, 0)), 4);
    g = recv_ctl(b, buf, sizeof buf, 0, 256);
    CHECK_EQ(g.r, 4);
    CHECK_CRED(g.cred, getpid(), getuid(), getgid());
    close(a);
    close(b);
}

TEST(cred_sent_before_accept_always_carry_credentials)
{
    /* data a client sends before its connection is accepted goes to a
     * socket with no file yet: the kernel attaches credentials whatever
     * the flags, so an accepted socket that asks later sees real ones */
    for (int fam = FAM_UNIX; fam <= FAM_ABSTRACT; fam++) {
        int l = tl_listener(fam, 4);
        struct sockaddr_storage ss;
        socklen_t len = tl_name(l, &ss);
        int c = (int)OK(socket(AF_UNIX, SOCK_STREAM, 0));
        OK(connect(c, (struct sockaddr *)&ss, len));
        CHECK_EQ(OK(send(c, "pre", 3, 0)), 3);
        int s = (int)OK(accept(l, NULL, NULL));
        CHECK_EQ(get_int(s, SO_PASSCRED), 0);
        set_int(s, SO_PASSCRED, 1);
        char buf[8];
        struct got g = recv_ctl(s, buf, sizeof buf, 0, 256);
        CHECK_EQ(g.r, 3);
        CHECK_EQ(g.ncred, 1);
        CHECK_CRED(g.cred, getpid(), getuid(), getgid());
        close(s);
        close(c);
        close(l);
    }
}

TEST(cred_passcred_inherited_through_accept)
{
    for (int fam = FAM_UNIX; fam <= FAM_ABSTRACT; fam++) {
        int types2[2] = {SOCK_STREAM, SOCK_SEQPACKET};
        for (int t = 0; t < 2; t++) {
            struct sockaddr_storage ss;
            socklen_t len;
            int l = (int)OK(socket(AF_UNIX, types2[t], 0));
            tl_addr(fam, &ss, &len);
            OK(bind(l, (struct sockaddr *)&ss, len));
            set_int(l, SO_PASSCRED, 1);
            set_int(l, SO_PASSSEC, 1);
            OK(listen(l, 4));
            int c = (int)OK(socket(AF_UNIX, types2[t], 0));
            OK(connect(c, (struct sockaddr *)&ss, len));
            int s = (int)OK(accept(l, NULL, NULL));
            CHECK_EQ(get_int(s, SO_PASSCRED), 1);
            CHECK_EQ(get_int(s, SO_PASSSEC), 1);
            CHECK_EQ(get_int(c, SO_PASSCRED), 0);
            CHECK_EQ(OK(send(c, "x", 1, 0)), 1);
            char buf[4];
            struct got g = recv_ctl(s, buf, sizeof buf, 0, 256);
            CHECK_EQ(g.ncred, 1);
            CHECK_CRED(g.cred, getpid(), getuid(), getgid());
            close(s);
            close(c);
            /* a listener without the flag: the accepted socket has none */
            set_int(l, SO_PASSCRED, 0);
            set_int(l, SO_PASSSEC, 0);
            c = (int)OK(socket(AF_UNIX, types2[t], 0));
            OK(connect(c, (struct sockaddr *)&ss, len));
            s = (int)OK(accept(l, NULL, NULL));
            CHECK_EQ(get_int(s, SO_PASSCRED), 0);
            CHECK_EQ(get_int(s, SO_PASSSEC), 0);
            close(s);
            close(c);
            close(l);
        }
    }
}

/* An autobound name: "\0" and five lowercase hex digits, length 8. */
static void check_autobind_name(const struct sockaddr_storage *ss, socklen_t len)
{
    const struct sockaddr_un *su = (const struct sockaddr_un *)ss;
    CHECK_EQ(len, offsetof(struct sockaddr_un, sun_path) + 6);
    CHECK_EQ(su->sun_family, AF_UNIX);
    CHECK_EQ(su->sun_path[0], 0);
    for (int i = 1; i <= 5; i++)
        CHECK((su->sun_path[i] >= '0' && su->sun_path[i] <= '9') ||
              (su->sun_path[i] >= 'a' && su->sun_path[i] <= 'f'));
}

TEST(cred_passcred_autobinds)
{
    for (int fam = FAM_UNIX; fam <= FAM_ABSTRACT; fam++) {
        /* a stream client with SO_PASSCRED is autobound by connect() */
        int l = tl_listener(fam, 4);
        struct sockaddr_storage ss, cn, pn;
        socklen_t len = tl_name(l, &ss);
        int c = (int)OK(socket(AF_UNIX, SOCK_STREAM, 0));
        set_int(c, SO_PASSCRED, 1);
        OK(connect(c, (struct sockaddr *)&ss, len));
        socklen_t cl = tl_name(c, &cn);
        check_autobind_name(&cn, cl);
        int s = (int)OK(accept(l, NULL, NULL));
        socklen_t pl = sizeof pn;
        memset(&pn, 0, sizeof pn);
        OK(getpeername(s, (struct sockaddr *)&pn, &pl));
        CHECK_EQ(pl, cl);
        CHECK(memcmp(&pn, &cn, cl) == 0);
        close(s);
        close(c);
        /* without it the client stays unnamed */
        c = (int)OK(socket(AF_UNIX, SOCK_STREAM, 0));
        OK(connect(c, (struct sockaddr *)&ss, len));
        CHECK_EQ(tl_name(c, &cn), sizeof(sa_family_t));
        close(c);
        close(l);

        /* a datagram sender with SO_PASSCRED is autobound by sendto() */
        int r = tl_bound(fam, SOCK_DGRAM);
        len = tl_name(r, &ss);
        int d = (int)OK(socket(AF_UNIX, SOCK_DGRAM, 0));
        set_int(d, SO_PASSCRED, 1);
        CHECK_EQ(OK(sendto(d, "d", 1, 0, (struct sockaddr *)&ss, len)), 1);
        cl = tl_name(d, &cn);
        check_autobind_name(&cn, cl);
        char buf[4];
        socklen_t fl = sizeof pn;
        memset(&pn, 0, sizeof pn);
        CHECK_EQ(OK(recvfrom(r, buf, sizeof buf, 0, (struct sockaddr *)&pn, &fl)), 1);
        CHECK_EQ(fl, cl);
        CHECK(memcmp(&pn, &cn, cl) == 0);
        close(d);
        /* and by connect() */
        d = (int)OK(socket(AF_UNIX, SOCK_DGRAM, 0));
        set_int(d, SO_PASSCRED, 1);
        OK(connect(d, (struct sockaddr *)&ss, len));
        cl = tl_name(d, &cn);
        check_autobind_name(&cn, cl);
        close(d);
        close(r);
    }
}

/* ---- explicit SCM_CREDENTIALS ------------------------------------------ */

TEST_UNIX_TYPES(cred_explicit_own_values)
{
    int a, b;
    tl_unix_pair(how, type, &a, &b);
    set_int(b, SO_PASSCRED, 1);
    CHECK_EQ(OK(send_cred(a, "own", 3, getpid(), getuid(), getgid())), 3);
    char buf[8];
    struct got g = recv_ctl(b, buf, sizeof buf, 0, 256);
    CHECK_EQ(g.r, 3);
    CHECK_EQ(g.ncred, 1);
    CHECK_CRED(g.cred, getpid(), getuid(), getgid());
    /* the effective ids are also one's own */
    CHECK_EQ(OK(send_cred(a, "eff", 3, getpid(), geteuid(), getegid())), 3);
    g = recv_ctl(b, buf, sizeof buf, 0, 256);
    CHECK_EQ(g.ncred, 1);
    CHECK_CRED(g.cred, getpid(), geteuid(), getegid());
    close(a);
    close(b);
}

TEST(cred_explicit_malformed)
{
    int sv[2];
    OK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
    set_int(sv[1], SO_PASSCRED, 1);
    /* cmsg_len must be exactly CMSG_LEN(sizeof(struct ucred)) */
    CHECK_ERRNO(send_cred_len(sv[0], "x", 1, getpid(), getuid(), getgid(),
                              CMSG_LEN(sizeof(struct ucred)) - 1),
                EINVAL);
    CHECK_ERRNO(send_cred_len(sv[0], "x", 1, getpid(), getuid(), getgid(),
                              CMSG_LEN(sizeof(struct ucred)) + 4),
                EINVAL);
    /* an invalid uid or gid */
    CHECK_ERRNO(send_cred(sv[0], "x", 1, getpid(), (uid_t)-1, getgid()), EINVAL);
    CHECK_ERRNO(send_cred(sv[0], "x", 1, getpid(), getuid(), (gid_t)-1), EINVAL);
    /* nothing was sent */
    char buf[4];
    CHECK_ERRNO(recv(sv[1], buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
    close(sv[0]);
    close(sv[1]);
}

static void explicit_unprivileged(void *arg)
{
    (void)arg;
    drop_privileges();
    uid_t other_uid = getuid() == 0 ? 1 : 0;
    gid_t other_gid = getgid() == 0 ? 1 : 0;
    pid_t other_pid = getppid();
    for (int t = 0; t < 3; t++) {
        int sv[2];
        OK(socketpair(AF_UNIX, types[t], 0, sv));
        set_int(sv[1], SO_PASSCRED, 1);
        /* another process's pid, another uid, another gid: EPERM */
        CHECK_ERRNO(send_cred(sv[0], "x", 1, other_pid, getuid(), getgid()), EPERM);
        CHECK_ERRNO(send_cred(sv[0], "x", 1, getpid(), other_uid, getgid()), EPERM);
        CHECK_ERRNO(send_cred(sv[0], "x", 1, getpid(), getuid(), other_gid), EPERM);
        /* a nonexistent pid is EPERM too (no capability to name it) */
        CHECK_ERRNO(send_cred(sv[0], "x", 1, 0, getuid(), getgid()), EPERM);
        /* nothing went out */
        char buf[4];
        CHECK_ERRNO(recv(sv[1], buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
        CHECK_EQ(OK(send_cred(sv[0], "y", 1, getpid(), getuid(), getgid())), 1);
        struct got g = recv_ctl(sv[1], buf, sizeof buf, 0, 256);
        CHECK_EQ(g.r, 1);
        CHECK_CRED(g.cred, getpid(), getuid(), getgid());
        close(sv[0]);
        close(sv[1]);
    }
}

TEST(cred_explicit_validated_unprivileged)
{
    tl_child(explicit_unprivileged, NULL);
}

/* A pid nobody has: a child's, once it is reaped. */
static pid_t dead_pid(void)
{
    pid_t p = (pid_t)OK(fork());
    if (p == 0)
        _exit(0);
    int st;
    OK(waitpid(p, &st, 0));
    return p;
}

TEST(cred_explicit_other_ids_as_root)
{
    if (!is_root())
        t_skip("root", "sending another pid/uid/gid needs CAP_SYS_ADMIN, CAP_SETUID, CAP_SETGID");
    for (int t = 0; t < 3; t++) {
        int sv[2];
        OK(socketpair(AF_UNIX, types[t], 0, sv));
        set_int(sv[1], SO_PASSCRED, 1);
        pid_t parent = getppid();
        CHECK_EQ(OK(send_cred(sv[0], "p", 1, parent, 12345, 23456)), 1);
        char buf[4];
        struct got g = recv_ctl(sv[1], buf, sizeof buf, 0, 256);
        CHECK_EQ(g.r, 1);
        CHECK_EQ(g.ncred, 1);
        CHECK_CRED(g.cred, parent, 12345, 23456);
        /* the pid must name a process: ESRCH */
        CHECK_ERRNO(send_cred(sv[0], "x", 1, dead_pid(), 0, 0), ESRCH);
        CHECK_ERRNO(send_cred(sv[0], "x", 1, 0, 0, 0), ESRCH);
        /* invalid ids stay EINVAL */
        CHECK_ERRNO(send_cred(sv[0], "x", 1, getpid(), (uid_t)-1, 0), EINVAL);
        CHECK_ERRNO(recv(sv[1], buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
        close(sv[0]);
        close(sv[1]);
    }
}

/* ---- control buffers too small ---------------------------------------- */

TEST(cred_control_truncated)
{
    int sv[2];
    OK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
    set_int(sv[1], SO_PASSCRED, 1);
    char buf[4];
    /* no room for even a header: MSG_CTRUNC, nothing written */
    CHECK_EQ(OK(send(sv[0], "a", 1, 0)), 1);
    struct got g = recv_ctl(sv[1], buf, sizeof buf, 0, sizeof(struct cmsghdr) - 1);
    CHECK_EQ(g.r, 1);
    CHECK_EQ(g.flags & MSG_CTRUNC, MSG_CTRUNC);
    CHECK_EQ(g.ncred, 0);
    /* no control buffer at all */
    CHECK_EQ(OK(send(sv[0], "b", 1, 0)), 1);
    g = recv_ctl(sv[1], buf, sizeof buf, 0, 0);
    CHECK_EQ(g.r, 1);
    CHECK_EQ(g.flags & MSG_CTRUNC, MSG_CTRUNC);
    CHECK_EQ(g.controllen, 0);
    /* room for the header and part of the data: cut, cmsg_len says so */
    CHECK_EQ(OK(send(sv[0], "c", 1, 0)), 1);
    g = recv_ctl(sv[1], buf, sizeof buf, 0, CMSG_LEN(4));
    CHECK_EQ(g.r, 1);
    CHECK_EQ(g.flags & MSG_CTRUNC, MSG_CTRUNC);
    CHECK_EQ(g.controllen, CMSG_LEN(4));
    CHECK_EQ(g.ncred, 1);
    CHECK_EQ(g.cred_cmsg_len, CMSG_LEN(4));
    /* exactly CMSG_LEN (no padding room): whole, no MSG_CTRUNC */
    CHECK_EQ(OK(send(sv[0], "d", 1, 0)), 1);
    g = recv_ctl(sv[1], buf, sizeof buf, 0, CMSG_LEN(sizeof(struct ucred)));
    CHECK_EQ(g.flags & MSG_CTRUNC, 0);
    CHECK_EQ(g.ncred, 1);
    CHECK_EQ(g.controllen, CMSG_LEN(sizeof(struct ucred)));
    CHECK_CRED(g.cred, getpid(), getuid(), getgid());
    close(sv[0]);
    close(sv[1]);
}

/* ---- credentials keep stream messages apart ---------------------------- */

static void stream_creds_split(void *arg)
{
    (void)arg;
    int sv[2];
    OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    set_int(sv[1], SO_PASSCRED, 1);
    CHECK_EQ(OK(send(sv[0], "ab", 2, 0)), 2);
    CHECK_EQ(OK(send(sv[0], "cd", 2, 0)), 2);
    /* a new real uid (root keeps its saved uid to come back) */
    OK(setresuid(NOBODY, 0, 0));
    CHECK_EQ(OK(send(sv[0], "ef", 2, 0)), 2);
    OK(setresuid(0, 0, 0));
    CHECK_EQ(OK(send(sv[0], "gh", 2, 0)), 2);
    char buf[16];
    /* same credentials join; different ones never do */
    struct got g = recv_ctl(sv[1], buf, sizeof buf, 0, 256);
    CHECK_EQ(g.r, 4);
    CHECK(memcmp(buf, "abcd", 4) == 0);
    CHECK_CRED(g.cred, getpid(), 0, 0);
    g = recv_ctl(sv[1], buf, sizeof buf, 0, 256);
    CHECK_EQ(g.r, 2);
    CHECK(memcmp(buf, "ef", 2) == 0);
    CHECK_CRED(g.cred, getpid(), NOBODY, 0);
    g = recv_ctl(sv[1], buf, sizeof buf, 0, 256);
    CHECK_EQ(g.r, 2);
    CHECK_CRED(g.cred, getpid(), 0, 0);
    /* without SO_PASSCRED the credentials do not split a read */
    set_int(sv[1], SO_PASSCRED, 0);
    CHECK_EQ(OK(send(sv[0], "ij", 2, 0)), 2);
    OK(setresuid(NOBODY, 0, 0));
    CHECK_EQ(OK(send(sv[0], "kl", 2, 0)), 2);
    OK(setresuid(0, 0, 0));
    CHECK_EQ(OK(recv(sv[1], buf, sizeof buf, 0)), 4);
    close(sv[0]);
    close(sv[1]);
}

TEST(cred_stream_reads_split_at_credential_changes)
{
    if (!is_root())
        t_skip("root", "changing the real uid needs CAP_SETUID");
    tl_child(stream_creds_split, NULL);
}

static void real_vs_effective(void *arg)
{
    (void)arg;
    /* real uid/gid NOBODY, effective 0 */
    OK(setresgid(NOBODY, 0, 0));
    OK(setresuid(NOBODY, 0, 0));
    int sv[2];
    OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    /* SO_PEERCRED has the effective ids... */
    CHECK_CRED(peercred(sv[0]), getpid(), 0, 0);
    /* ...SCM_CREDENTIALS the real ones */
    set_int(sv[1], SO_PASSCRED, 1);
    CHECK_EQ(OK(send(sv[0], "x", 1, 0)), 1);
    char buf[4];
    struct got g = recv_ctl(sv[1], buf, sizeof buf, 0, 256);
    CHECK_EQ(g.ncred, 1);
    CHECK_CRED(g.cred, getpid(), NOBODY, NOBODY);
    close(sv[0]);
    close(sv[1]);
}

TEST(cred_peercred_effective_scm_real)
{
    if (!is_root())
        t_skip("root", "distinct real and effective ids need CAP_SETUID");
    tl_child(real_vs_effective, NULL);
}

/* ---- SO_PEERCRED -------------------------------------------------------- */

TEST_UNIX_TYPES(cred_peercred_same_process)
{
    int a, b;
    tl_unix_pair(how, type, &a, &b);
    if (type == SOCK_DGRAM && how != UX_PAIR) {
        /* connect() of a datagram socket records no peer credentials */
        CHECK_CRED(peercred(a), 0, (uid_t)-1, (gid_t)-1);
        CHECK_CRED(peercred(b), 0, (uid_t)-1, (gid_t)-1);
    } else {
        CHECK_CRED(peercred(a), getpid(), geteuid(), getegid());
        CHECK_CRED(peercred(b), getpid(), geteuid(), getegid());
    }
    close(a);
    close(b);
}

static void *peercred_thread(void *p)
{
    int *sv = p;
    OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    return NULL;
}

TEST(cred_peercred_pid_is_the_process)
{
    /* made by another thread: the pid is the process's (tgid), not the
     * thread's id */
    int sv[2] = {-1, -1};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, peercred_thread, sv), 0);
    pthread_join(t, NULL);
    CHECK(sv[0] >= 0);
    CHECK_CRED(peercred(sv[0]), getpid(), geteuid(), getegid());
    close(sv[0]);
    close(sv[1]);
}

TEST(cred_peercred_unconnected_and_listener)
{
    for (int t = 0; t < 3; t++) {
        int fd = (int)OK(socket(AF_UNIX, types[t], 0));
        /* no peer: pid 0, uid and gid -1 (no error) */
        CHECK_CRED(peercred(fd), 0, (uid_t)-1, (gid_t)-1);
        close(fd);
    }
    /* a listener has its own credentials from listen() */
    int l = tl_listener(FAM_ABSTRACT, 1);
    CHECK_CRED(peercred(l), getpid(), geteuid(), getegid());
    close(l);
}

TEST(cred_peercred_optlen)
{
    int sv[2];
    OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    struct {
        struct ucred u;
        int guard;
    } big;
    memset(&big, 0x55, sizeof big);
    socklen_t l = sizeof big;
    OK(getsockopt(sv[0], SOL_SOCKET, SO_PEERCRED, &big, &l));
    CHECK_EQ(l, sizeof(struct ucred));
    CHECK_EQ(big.guard, 0x55555555);
    CHECK_CRED(big.u, getpid(), geteuid(), getegid());
    /* shorter: what fits (the pid) */
    int pid = -1, g2 = 0x55555555;
    struct {
        int pid;
        int guard;
    } small = {-1, 0x55555555};
    l = sizeof pid;
    OK(getsockopt(sv[0], SOL_SOCKET, SO_PEERCRED, &small, &l));
    CHECK_EQ(l, sizeof pid);
    CHECK_EQ(small.pid, getpid());
    CHECK_EQ(small.guard, g2);
    l = 0;
    OK(getsockopt(sv[0], SOL_SOCKET, SO_PEERCRED, &small, &l));
    CHECK_EQ(l, 0);
    /* read-only */
    struct ucred u = {1, 2, 3};
    CHECK_ERRNO(setsockopt(sv[0], SOL_SOCKET, SO_PEERCRED, &u, sizeof u), ENOPROTOOPT);
    close(sv[0]);
    close(sv[1]);
}

static void peercred_connect_time(void *arg)
{
    (void)arg;
    for (int fam = FAM_UNIX; fam <= FAM_ABSTRACT; fam++) {
        /* the listener: root's at listen() */
        int l = tl_listener(fam, 4);
        /* the sockets in tl_dir stay reachable: only the effective ids
         * change, and the directory is root's */
        struct sockaddr_storage ss;
        socklen_t len = tl_name(l, &ss);
        int sp[2];
        OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp)); /* as root */
        OK(setresgid(-1, NOBODY, -1));
        OK(setresuid(-1, NOBODY, -1));
        int c1 = (int)OK(socket(AF_UNIX, SOCK_STREAM, 0));
        if (fam == FAM_UNIX) {
            /* the pathname in root's 0700 directory: not for nobody */
            CHECK_ERRNO(connect(c1, (struct sockaddr *)&ss, len), EACCES);
            OK(setresuid(-1, 0, -1));
            OK(setresgid(-1, 0, -1));
            close(c1);
            close(l);
            close(sp[0]);
            close(sp[1]);
            continue;
        }
        OK(connect(c1, (struct sockaddr *)&ss, len));
        int sp2[2];
        OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp2)); /* as nobody */
        OK(setresuid(-1, 0, -1));
        OK(setresgid(-1, 0, -1));
        int c2 = (int)OK(socket(AF_UNIX, SOCK_STREAM, 0));
        OK(connect(c2, (struct sockaddr *)&ss, len));
        int s1 = (int)OK(accept(l, NULL, NULL));
        int s2 = (int)OK(accept(l, NULL, NULL));
        /* each accepted socket has its client's ids as of connect() */
        CHECK_CRED(peercred(s1), getpid(), NOBODY, NOBODY);
        CHECK_CRED(peercred(s2), getpid(), 0, 0);
        /* the clients have the listener's as of listen() */
        CHECK_CRED(peercred(c1), getpid(), 0, 0);
        CHECK_CRED(peercred(c2), getpid(), 0, 0);
        /* socketpair: its creator's, whoever asks later */
        CHECK_CRED(peercred(sp[0]), getpid(), 0, 0);
        CHECK_CRED(peercred(sp2[0]), getpid(), NOBODY, NOBODY);
        CHECK_CRED(peercred(sp2[1]), getpid(), NOBODY, NOBODY);
        close(s1);
        close(s2);
        close(c1);
        close(c2);
        close(l);
        close(sp[0]);
        close(sp[1]);
        close(sp2[0]);
        close(sp2[1]);
    }
}

TEST(cred_peercred_as_of_connect)
{
    if (!is_root())
        t_skip("root", "connecting with other ids needs CAP_SETUID");
    tl_child(peercred_connect_time, NULL);
}

/* ---- security labels ---------------------------------------------------- */

/* Whether a security module that labels sockets is active (then
 * SO_PEERSEC and SCM_SECURITY answer with its labels). */
static int lsm_labels(void)
{
    char buf[256] = {0};
    int fd = open("/sys/kernel/security/lsm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    return strstr(buf, "selinux") || strstr(buf, "smack") || strstr(buf, "apparmor");
}

TEST(cred_peersec_errno)
{
    if (lsm_labels())
        t_skip("lsm", "a security module labels sockets here: SO_PEERSEC answers with its label");
    for (int t = 0; t < 3; t++) {
        int sv[2];
        OK(socketpair(AF_UNIX, types[t], 0, sv));
        char label[256];
        socklen_t l = sizeof label;
        CHECK_ERRNO(getsockopt(sv[0], SOL_SOCKET, SO_PEERSEC, label, &l), ENOPROTOOPT);
        close(sv[0]);
        close(sv[1]);
    }
    int fd = (int)OK(socket(AF_UNIX, SOCK_STREAM, 0));
    char label[256];
    socklen_t l = sizeof label;
    CHECK_ERRNO(getsockopt(fd, SOL_SOCKET, SO_PEERSEC, label, &l), ENOPROTOOPT);
    close(fd);
}

TEST(cred_passsec_adds_nothing_without_labels)
{
    if (lsm_labels())
        t_skip("lsm", "a security module labels sockets here: SCM_SECURITY comes with them");
    for (int t = 0; t < 3; t++) {
        int sv[2];
        OK(socketpair(AF_UNIX, types[t], 0, sv));
        set_int(sv[1], SO_PASSSEC, 1);
        CHECK_EQ(OK(send(sv[0], "s", 1, 0)), 1);
        char buf[4];
        struct got g = recv_ctl(sv[1], buf, sizeof buf, 0, 256);
        CHECK_EQ(g.r, 1);
        CHECK_EQ(g.nother, 0);
        CHECK_EQ(g.controllen, 0);
        /* with SO_PASSCRED too: credentials only */
        set_int(sv[1], SO_PASSCRED, 1);
        CHECK_EQ(OK(send(sv[0], "s", 1, 0)), 1);
        g = recv_ctl(sv[1], buf, sizeof buf, 0, 256);
        CHECK_EQ(g.ncred, 1);
        CHECK_EQ(g.nother, 0);
        close(sv[0]);
        close(sv[1]);
    }
}

/* ---- pidfds (Linux 6.5) ------------------------------------------------- */

/* The pid a pidfd refers to, from /proc/self/fdinfo. */
static long pidfd_pid(int fd)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
    int f = open(path, O_RDONLY | O_CLOEXEC);
    if (f < 0)
        t_skip("procfs", "cannot read %s", path);
    ssize_t n = read(f, buf, sizeof buf - 1);
    close(f);
    CHECK(n > 0);
    buf[n] = 0;
    char *p = strstr(buf, "\nPid:");
    CHECK(p != NULL);
    return strtol(p + 5, NULL, 10);
}

TEST(cred_peerpidfd_and_scm_pidfd)
{
    int sv[2];
    OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    /* whether the kernel has it, asked of kernel sockets directly (not
     * through the library, whose answer is under test) */
    int kv[2], pfd = -1;
    socklen_t l = sizeof pfd;
    OK(syscall(SYS_socketpair, AF_UNIX, SOCK_STREAM, 0, kv));
    long kr = syscall(SYS_getsockopt, kv[0], SOL_SOCKET, SO_PEERPIDFD, &pfd, &l);
    int ke = errno;
    if (kr == 0)
        syscall(SYS_close, pfd);
    syscall(SYS_close, kv[0]);
    syscall(SYS_close, kv[1]);
    if (kr != 0 && ke == ENOPROTOOPT)
        t_skip("so_peerpidfd", "the kernel has no SO_PEERPIDFD (Linux 6.5)");
    pfd = -1;
    l = sizeof pfd;
    OK(getsockopt(sv[0], SOL_SOCKET, SO_PEERPIDFD, &pfd, &l));
    CHECK(pfd >= 0);
    CHECK_EQ(l, sizeof pfd);
    CHECK_EQ(pidfd_pid(pfd), getpid());
    CHECK(OK(fcntl(pfd, F_GETFD)) & FD_CLOEXEC);
    close(pfd);
    /* SO_PASSPIDFD: an SCM_PIDFD message with each read */
    set_int(sv[1], SO_PASSPIDFD, 1);
    CHECK_EQ(get_int(sv[1], SO_PASSPIDFD), 1);
    CHECK_EQ(OK(send(sv[0], "p", 1, 0)), 1);
    union {
        char b[256];
        struct cmsghdr align;
    } ctl;
    char c;
    struct iovec v = {&c, 1};
    struct msghdr mh;
    memset(&mh, 0, sizeof mh);
    mh.msg_iov = &v;
    mh.msg_iovlen = 1;
    mh.msg_control = ctl.b;
    mh.msg_controllen = sizeof ctl.b;
    CHECK_EQ(OK(recvmsg(sv[1], &mh, 0)), 1);
    int got = -1, n = 0;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
        n++;
        CHECK_EQ(cm->cmsg_level, SOL_SOCKET);
        CHECK_EQ(cm->cmsg_type, SCM_PIDFD);
        CHECK_EQ(cm->cmsg_len, CMSG_LEN(sizeof(int)));
        memcpy(&got, CMSG_DATA(cm), sizeof got);
    }
    CHECK_EQ(n, 1);
    CHECK(got >= 0);
    CHECK_EQ(pidfd_pid(got), getpid());
    close(got);
    close(sv[0]);
    close(sv[1]);
}

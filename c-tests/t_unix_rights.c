/*
 * t_unix_rights.c - SCM_RIGHTS over AF_UNIX as Linux has it (issue 14):
 * passing kernel fds (pipes, files, eventfds) and sockets, the receiver's
 * new fd numbers (lowest free, MSG_CMSG_CLOEXEC), EBADF, fds delivered with
 * the first byte of their message only, zero-length reads, MSG_CTRUNC and
 * the closing of fds that did not fit, SCM_MAX_FD, fds in flight closed
 * with the socket that held them (and by the garbage collector, for a
 * cycle), MSG_PEEK, malformed control messages, ETOOMANYREFS.
 * The kernel is the specification: net/core/scm.c (__scm_send,
 * scm_fp_copy, scm_detach_fds), net/unix/af_unix.c, net/unix/garbage.c.
 * "Closed" is observed without timing: a pipe's read end reports POLLHUP
 * once every write end is gone (the poll timeouts are upper bounds).
 */
#include "testlib.h"

#include <grp.h>
#include <limits.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/wait.h>

#define NOBODY 65534
#define MAXFDS 300

/* ---- helpers ------------------------------------------------------------ */

static ssize_t send_fds_flags(int fd, const void *buf, size_t n, const int *fds, int nfds,
                              int flags)
{
    static union {
        char b[CMSG_SPACE(sizeof(int) * MAXFDS)];
        struct cmsghdr align;
    } ctl;
    struct iovec v = {(void *)buf, n};
    struct msghdr mh;
    memset(&mh, 0, sizeof mh);
    memset(&ctl, 0, sizeof ctl);
    mh.msg_iov = &v;
    mh.msg_iovlen = 1;
    if (nfds > 0) {
        mh.msg_control = ctl.b;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
    }
    return sendmsg(fd, &mh, flags);
}

static ssize_t send_fds(int fd, const void *buf, size_t n, const int *fds, int nfds)
{
    return send_fds_flags(fd, buf, n, fds, nfds, 0);
}

struct rcvd {
    ssize_t r;
    int flags;
    int nfds;
    int fds[MAXFDS];
    int ncmsg;    /* SCM_RIGHTS messages */
    int nother;   /* other control messages */
    int first_type; /* type of the first control message */
    size_t controllen;
};

/* recvmsg with `ctlspace` bytes of control buffer (0: msg_control NULL). */
static struct rcvd recv_fds(int fd, void *buf, size_t n, int flags, size_t ctlspace)
{
    static union {
        char b[CMSG_SPACE(sizeof(int) * MAXFDS) + 256];
        struct cmsghdr align;
    } ctl;
    struct rcvd g;
    memset(&g, 0, sizeof g);
    g.first_type = -1;
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
    if (g.controllen < sizeof(struct cmsghdr))
        return g;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (g.first_type < 0)
            g.first_type = c->cmsg_type;
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            g.ncmsg++;
            int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            for (int i = 0; i < k && g.nfds < MAXFDS; i++)
                memcpy(&g.fds[g.nfds++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        } else {
            g.nother++;
        }
    }
    return g;
}

#define RECV_SPACE CMSG_SPACE(sizeof(int) * MAXFDS)

static void same_file(int a, int b)
{
    struct stat sa, sb;
    OK(fstat(a, &sa));
    OK(fstat(b, &sb));
    CHECK_EQ(sa.st_dev, sb.st_dev);
    CHECK_EQ(sa.st_ino, sb.st_ino);
}

/* Whether every write end of the pipe whose read end is rfd is closed:
 * POLLHUP (waits up to 10 s for it: an upper bound, not a timing). */
static int pipe_hup(int rfd, int wait_ms)
{
    return (tl_poll1(rfd, POLLIN, wait_ms) & POLLHUP) != 0;
}

static int is_open(int fd)
{
    return fcntl(fd, F_GETFD) != -1 || errno != EBADF;
}

static void closefds(const int *fds, int n)
{
    for (int i = 0; i < n; i++)
        close(fds[i]);
}

/* ---- passing fds ------------------------------------------------------ */

TEST_UNIX_TYPES(rights_pass_pipe)
{
    int a, b, p[2];
    tl_unix_pair(how, type, &a, &b);
    OK(pipe(p));
    CHECK_EQ(OK(send_fds(a, "P", 1, &p[1], 1)), 1);
    char c;
    struct rcvd g = recv_fds(b, &c, 1, 0, RECV_SPACE);
    CHECK_EQ(g.r, 1);
    CHECK_EQ(c, 'P');
    CHECK_EQ(g.ncmsg, 1);
    CHECK_EQ(g.nfds, 1);
    CHECK_EQ(g.nother, 0);
    CHECK_EQ(g.controllen, CMSG_SPACE(sizeof(int)));
    CHECK_EQ(g.flags, 0);
    int w = g.fds[0];
    CHECK(w != p[1]);
    same_file(w, p[1]);
    /* the same open pipe: what goes into the received end comes out */
    CHECK_EQ(OK(write(w, "via", 3)), 3);
    char buf[8];
    CHECK_EQ(OK(read(p[0], buf, sizeof buf)), 3);
    CHECK(memcmp(buf, "via", 3) == 0);
    /* both write ends must go for EOF */
    close(p[1]);
    CHECK(!pipe_hup(p[0], 0));
    close(w);
    CHECK(pipe_hup(p[0], 10000));
    close(p[0]);
    close(a);
    close(b);
}

TEST_UNIX_TYPES(rights_pass_socket)
{
    int a, b, x[2];
    tl_unix_pair(how, type, &a, &b);
    OK(socketpair(AF_UNIX, SOCK_STREAM, 0, x));
    CHECK_EQ(OK(send_fds(a, "S", 1, &x[1], 1)), 1);
    close(x[1]); /* the one in flight keeps the socket alive */
    char c;
    struct rcvd g = recv_fds(b, &c, 1, 0, RECV_SPACE);
    CHECK_EQ(g.nfds, 1);
    int y = g.fds[0];
    int v = 0;
    socklen_t l = sizeof v;
    OK(getsockopt(y, SOL_SOCKET, SO_TYPE, &v, &l));
    CHECK_EQ(v, SOCK_STREAM);
    CHECK_EQ(OK(send(y, "ping", 4, 0)), 4);
    char buf[8];
    CHECK_EQ(OK(recv(x[0], buf, sizeof buf, 0)), 4);
    CHECK_EQ(OK(send(x[0], "pong", 4, 0)), 4);
    CHECK_EQ(OK(recv(y, buf, sizeof buf, 0)), 4);
    CHECK(memcmp(buf, "pong", 4) == 0);
    close(y);
    CHECK_EQ(OK(recv(x[0], buf, sizeof buf, 0)), 0); /* the last reference */
    close(x[0]);
    close(a);
    close(b);
}

TEST(rights_pass_listener_then_accept)
{
    for (int fam = FAM_UNIX; fam <= FAM_ABSTRACT; fam++) {
        int sv[2];
        OK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
        int l = tl_listener(fam, 4);
        struct sockaddr_storage ss;
        socklen_t len = tl_name(l, &ss);
        CHECK_EQ(OK(send_fds(sv[0], "L", 1, &l, 1)), 1);
        close(l);
        char c;
        struct rcvd g = recv_fds(sv[1], &c, 1, 0, RECV_SPACE);
        CHECK_EQ(g.nfds, 1);
        int l2 = g.fds[0];
        int v = 0;
        socklen_t vl = sizeof v;
        OK(getsockopt(l2, SOL_SOCKET, SO_ACCEPTCONN, &v, &vl));
        CHECK_EQ(v, 1);
        int cl = (int)OK(socket(AF_UNIX, SOCK_STREAM, 0));
        OK(connect(cl, (struct sockaddr *)&ss, len));
        int s = (int)OK(accept(l2, NULL, NULL));
        CHECK_EQ(OK(send(cl, "hey", 3, 0)), 3);
        char buf[4];
        CHECK_EQ(OK(recv(s, buf, sizeof buf, 0)), 3);
        close(s);
        close(cl);
        close(l2);
        close(sv[0]);
        close(sv[1]);
    }
}

TEST(rights_pass_inet_and_datagram_sockets)
{
    int sv[2];
    OK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
    int u = tl_bound(FAM_INET, SOCK_DGRAM);
    int d = tl_bound(FAM_ABSTRACT, SOCK_DGRAM);
    struct sockaddr_storage un, dn;
    socklen_t ul = tl_name(u, &un), dl = tl_name(d, &dn);
    int two[2] = {u, d};
    CHECK_EQ(OK(send_fds(sv[0], "2", 1, two, 2)), 1);
    close(u);
    close(d);
    char c;
    struct rcvd g = recv_fds(sv[1], &c, 1, 0, RECV_SPACE);
    CHECK_EQ(g.nfds, 2);
    int s = (int)OK(socket(AF_INET, SOCK_DGRAM, 0));
    CHECK_EQ(OK(sendto(s, "udp", 3, 0, (struct sockaddr *)&un, ul)), 3);
    char buf[8];
    CHECK_EQ(OK(recv(g.fds[0], buf, sizeof buf, 0)), 3);
    close(s);
    s = (int)OK(socket(AF_UNIX, SOCK_DGRAM, 0));
    CHECK_EQ(OK(sendto(s, "unx", 3, 0, (struct sockaddr *)&dn, dl)), 3);
    CHECK_EQ(OK(recv(g.fds[1], buf, sizeof buf, 0)), 3);
    close(s);
    closefds(g.fds, g.nfds);
    close(sv[0]);
    close(sv[1]);
}

TEST(rights_pass_file_eventfd_opath)
{
    int sv[2];
    OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    char path[128];
    tl_path(path, sizeof path);
    int f = (int)OK(open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
    int e = (int)OK(eventfd(0, EFD_CLOEXEC));
    int o = (int)OK(open(path, O_PATH | O_CLOEXEC));
    int three[3] = {f, e, o};
    CHECK_EQ(OK(send_fds(sv[0], "F", 1, three, 3)), 1);
    char c;
    struct rcvd g = recv_fds(sv[1], &c, 1, 0, RECV_SPACE);
    CHECK_EQ(g.nfds, 3);
    /* one open file description: status flags and offset are shared */
    CHECK_EQ(OK(fcntl(g.fds[0], F_GETFL)), OK(fcntl(f, F_GETFL)));
    CHECK_EQ(OK(write(g.fds[0], "0123456789", 10)), 10);
    CHECK_EQ(OK(lseek(f, 0, SEEK_CUR)), 10);
    OK(lseek(f, 4, SEEK_SET));
    CHECK_EQ(OK(lseek(g.fds[0], 0, SEEK_CUR)), 4);
    /* FD_CLOEXEC is the fd's, not the file's: the new fds have none */
    CHECK_EQ(OK(fcntl(g.fds[0], F_GETFD)) & FD_CLOEXEC, 0);
    uint64_t one = 1, got = 0;
    CHECK_EQ(OK(write(g.fds[1], &one, sizeof one)), 8);
    CHECK_EQ(OK(read(e, &got, sizeof got)), 8);
    CHECK_EQ(got, 1);
    /* O_PATH fds pass too */
    same_file(g.fds[2], f);
    CHECK_EQ(OK(fcntl(g.fds[2], F_GETFL)) & O_PATH, O_PATH);
    closefds(g.fds, g.nfds);
    close(f);
    close(e);
    close(o);
    close(sv[0]);
    close(sv[1]);
}

TEST(rights_lowest_free_numbers_and_cloexec)
{
    int sv[2], p[2];
    OK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
    OK(pipe2(p, O_CLOEXEC));
    /* two holes below everything else */
    int h[4];
    for (int i = 0; i < 4; i++)
        h[i] = (int)OK(dup(p[0]));
    close(h[0]);
    close(h[2]);
    int low = tl_lowest_free_fd();
    CHECK_EQ(low, h[0]);
    int two[2] = {p[1], p[1]};
    CHECK_EQ(OK(send_fds(sv[0], "x", 1, two, 2)), 1);
    char c;
    struct rcvd g = recv_fds(sv[1], &c, 1, 0, RECV_SPACE);
    CHECK_EQ(g.nfds, 2);
    /* in order, each the lowest free number */
    CHECK_EQ(g.fds[0], h[0]);
    CHECK_EQ(g.fds[1], h[2]);
    CHECK_EQ(OK(fcntl(g.fds[0], F_GETFD)) & FD_CLOEXEC, 0);
    CHECK_EQ(OK(fcntl(g.fds[1], F_GETFD)) & FD_CLOEXEC, 0);
    closefds(g.fds, 2);
    /* MSG_CMSG_CLOEXEC: the new fds have FD_CLOEXEC */
    CHECK_EQ(OK(send_fds(sv[0], "y", 1, two, 2)), 1);
    g = recv_fds(sv[1], &c, 1, MSG_CMSG_CLOEXEC, RECV_SPACE);
    CHECK_EQ(g.nfds, 2);
    CHECK_EQ(g.fds[0], h[0]);
    CHECK_EQ(OK(fcntl(g.fds[0], F_GETFD)) & FD_CLOEXEC, FD_CLOEXEC);
    CHECK_EQ(OK(fcntl(g.fds[1], F_GETFD)) & FD_CLOEXEC, FD_CLOEXEC);
    closefds(g.fds, 2);
    close(h[1]);
    close(h[3]);
    close(p[0]);
    close(p[1]);
    close(sv[0]);
    close(sv[1]);
}

/* ---- errors at send ------------------------------------------------------ */

TEST_UNIX_TYPES(rights_bad_fd_ebadf)
{
    int a, b, p[2];
    tl_unix_pair(how, type, &a, &b);
    OK(pipe(p));
    int bad = tl_lowest_free_fd();
    int neg = -1;
    CHECK_ERRNO(send_fds(a, "x", 1, &neg, 1), EBADF);
    CHECK_ERRNO(send_fds(a, "x", 1, &bad, 1), EBADF);
    int mixed[3] = {p[1], bad, p[0]};
    CHECK_ERRNO(send_fds(a, "x", 1, mixed, 3), EBADF);
    /* nothing went out, and no reference to the good fds stayed behind */
    char c;
    CHECK_ERRNO(recv(b, &c, 1, MSG_DONTWAIT), EAGAIN);
    close(p[1]);
    CHECK(pipe_hup(p[0], 10000));
    close(p[0]);
    close(a);
    close(b);
}

TEST_UNIX(rights_over_stream_zero_bytes_sends_nothing)
{
    int a, b, p[2];
    tl_unix_pair(how, SOCK_STREAM, &a, &b);
    OK(pipe(p));
    /* a stream sendmsg of no bytes sends nothing, fds included */
    CHECK_EQ(OK(send_fds(a, "", 0, &p[1], 1)), 0);
    char c;
    CHECK_ERRNO(recv(b, &c, 1, MSG_DONTWAIT), EAGAIN);
    close(p[1]);
    CHECK(pipe_hup(p[0], 10000));
    close(p[0]);
    close(a);
    close(b);
}

TEST_UNIX(rights_in_empty_records)
{
    for (int t = 0; t < 2; t++) {
        int type = t ? SOCK_SEQPACKET : SOCK_DGRAM;
        int a, b, p[2];
        tl_unix_pair(how, type, &a, &b);
        OK(pipe(p));
        /* a datagram or record of no bytes carries fds */
        CHECK_EQ(OK(send_fds(a, "", 0, &p[1], 1)), 0);
        char c;
        struct rcvd g = recv_fds(b, &c, 1, MSG_DONTWAIT, RECV_SPACE);
        CHECK_EQ(g.r, 0);
        CHECK_EQ(g.nfds, 1);
        same_file(g.fds[0], p[1]);
        close(g.fds[0]);
        close(p[0]);
        close(p[1]);
        close(a);
        close(b);
    }
}

/* ---- what comes with which bytes ----------------------------------------- */

TEST_UNIX(rights_stream_fds_with_first_byte_only)
{
    int a, b, p[2];
    tl_unix_pair(how, SOCK_STREAM, &a, &b);
    OK(pipe(p));
    char buf[16];
    /* "abc" with an fd, then "def": the fd comes with 'a' */
    CHECK_EQ(OK(send_fds(a, "abc", 3, &p[1], 1)), 3);
    CHECK_EQ(OK(send(a, "def", 3, 0)), 3);
    struct rcvd g = recv_fds(b, buf, 1, 0, RECV_SPACE);
    CHECK_EQ(g.r, 1);
    CHECK_EQ(buf[0], 'a');
    CHECK_EQ(g.nfds, 1);
    close(g.fds[0]);
    /* the rest of its message has none, and the next message follows */
    g = recv_fds(b, buf, sizeof buf, 0, RECV_SPACE);
    CHECK_EQ(g.nfds, 0);
    CHECK_EQ(g.r, 5);
    CHECK(memcmp(buf, "bcdef", 5) == 0);
    /* a read goes on from a message without fds into one with fds, and
     * stops after it: fds are never joined to what follows */
    CHECK_EQ(OK(send(a, "xy", 2, 0)), 2);
    CHECK_EQ(OK(send_fds(a, "zw", 2, &p[1], 1)), 2);
    CHECK_EQ(OK(send_fds(a, "uv", 2, &p[0], 1)), 2);
    CHECK_EQ(OK(send(a, "st", 2, 0)), 2);
    g = recv_fds(b, buf, sizeof buf, 0, RECV_SPACE);
    CHECK_EQ(g.r, 4);
    CHECK(memcmp(buf, "xyzw", 4) == 0);
    CHECK_EQ(g.nfds, 1);
    same_file(g.fds[0], p[1]);
    close(g.fds[0]);
    g = recv_fds(b, buf, sizeof buf, 0, RECV_SPACE);
    CHECK_EQ(g.r, 2);
    CHECK(memcmp(buf, "uv", 2) == 0);
    CHECK_EQ(g.nfds, 1);
    same_file(g.fds[0], p[0]);
    close(g.fds[0]);
    g = recv_fds(b, buf, sizeof buf, 0, RECV_SPACE);
    CHECK_EQ(g.r, 2);
    CHECK(memcmp(buf, "st", 2) == 0);
    CHECK_EQ(g.nfds, 0);
    /* read() of a message with fds: the data, the fds are dropped (closed) */
    int q[2];
    OK(pipe(q));
    CHECK_EQ(OK(send_fds(a, "rd", 2, &q[1], 1)), 2);
    close(q[1]);
    CHECK_EQ(OK(read(b, buf, sizeof buf)), 2);
    CHECK(pipe_hup(q[0], 10000));
    close(q[0]);
    close(p[0]);
    close(p[1]);
    close(a);
    close(b);
}

TEST_UNIX_TYPES(rights_zero_length_read_still_receives)
{
    int a, b, p[2];
    tl_unix_pair(how, type, &a, &b);
    OK(pipe(p));
    CHECK_EQ(OK(send_fds(a, "abc", 3, &p[1], 1)), 3);
    char buf[8];
    struct rcvd g = recv_fds(b, buf, 0, 0, RECV_SPACE);
    CHECK_EQ(g.r, 0);
    CHECK_EQ(g.nfds, 1);
    same_file(g.fds[0], p[1]);
    close(g.fds[0]);
    if (type == SOCK_STREAM) {
        /* the bytes stay, without the fds */
        CHECK_EQ(g.flags, 0);
        g = recv_fds(b, buf, sizeof buf, 0, RECV_SPACE);
        CHECK_EQ(g.r, 3);
        CHECK_EQ(g.nfds, 0);
    } else {
        /* the datagram or record was read, truncated */
        CHECK_EQ(g.flags, MSG_TRUNC);
        CHECK_ERRNO(recv(b, buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
    }
    close(p[0]);
    close(p[1]);
    close(a);
    close(b);
}

TEST_UNIX_TYPES(rights_peek_installs_duplicates)
{
    int a, b, p[2];
    tl_unix_pair(how, type, &a, &b);
    OK(pipe(p));
    CHECK_EQ(OK(send_fds(a, "pk", 2, &p[1], 1)), 2);
    char buf[8];
    /* MSG_PEEK installs copies of the fds, and leaves them queued */
    struct rcvd g1 = recv_fds(b, buf, sizeof buf, MSG_PEEK, RECV_SPACE);
    CHECK_EQ(g1.r, 2);
    CHECK_EQ(g1.nfds, 1);
    struct rcvd g2 = recv_fds(b, buf, sizeof buf, 0, RECV_SPACE);
    CHECK_EQ(g2.r, 2);
    CHECK_EQ(g2.nfds, 1);
    CHECK(g1.fds[0] != g2.fds[0]);
    same_file(g1.fds[0], p[1]);
    same_file(g2.fds[0], p[1]);
    close(g1.fds[0]);
    close(g2.fds[0]);
    close(p[1]);
    CHECK(pipe_hup(p[0], 10000));
    close(p[0]);
    close(a);
    close(b);
}

TEST_UNIX(rights_truncated_record_still_receives)
{
    for (int t = 0; t < 2; t++) {
        int type = t ? SOCK_SEQPACKET : SOCK_DGRAM;
        int a, b, p[2];
        tl_unix_pair(how, type, &a, &b);
        OK(pipe(p));
        /* a datagram or record cut short still brings its fds */
        CHECK_EQ(OK(send_fds(a, "long record", 11, &p[1], 1)), 11);
        char buf[4];
        struct rcvd g = recv_fds(b, buf, 4, 0, RECV_SPACE);
        CHECK_EQ(g.r, 4);
        CHECK_EQ(g.flags, MSG_TRUNC);
        CHECK_EQ(g.nfds, 1);
        close(g.fds[0]);
        close(p[0]);
        close(p[1]);
        close(a);
        close(b);
    }
}

/* ---- too little room ----------------------------------------------------- */

TEST_UNIX_TYPES(rights_ctrunc_closes_what_did_not_fit)
{
    int a, b;
    tl_unix_pair(how, type, &a, &b);
    int r[4], w[4];
    for (int i = 0; i < 4; i++) {
        int p[2];
        OK(pipe(p));
        r[i] = p[0];
        w[i] = p[1];
    }
    CHECK_EQ(OK(send_fds(a, "4", 1, w, 4)), 1);
    for (int i = 0; i < 4; i++)
        close(w[i]);
    char c;
    /* room for two: the first two arrive, the others are closed */
    struct rcvd g = recv_fds(b, &c, 1, 0, CMSG_LEN(2 * sizeof(int)));
    CHECK_EQ(g.r, 1);
    CHECK_EQ(g.flags, MSG_CTRUNC);
    CHECK_EQ(g.nfds, 2);
    CHECK_EQ(g.controllen, CMSG_LEN(2 * sizeof(int)));
    /* the first two, in order: their pipes still have a write end */
    CHECK(!pipe_hup(r[0], 0));
    CHECK(!pipe_hup(r[1], 0));
    CHECK(pipe_hup(r[2], 10000));
    CHECK(pipe_hup(r[3], 10000));
    CHECK_EQ(OK(write(g.fds[0], "0", 1)), 1);
    CHECK_EQ(OK(write(g.fds[1], "1", 1)), 1);
    CHECK_EQ(OK(read(r[0], &c, 1)), 1);
    CHECK_EQ(c, '0');
    CHECK_EQ(OK(read(r[1], &c, 1)), 1);
    CHECK_EQ(c, '1');
    closefds(g.fds, 2);
    CHECK(pipe_hup(r[0], 10000));
    closefds(r, 4);
    close(a);
    close(b);
}

TEST_UNIX_TYPES(rights_no_room_closes_all)
{
    int a, b, p[2], q[2];
    tl_unix_pair(how, type, &a, &b);
    OK(pipe(p));
    OK(pipe(q));
    char c;
    /* no control buffer at all */
    CHECK_EQ(OK(send_fds(a, "n", 1, &p[1], 1)), 1);
    close(p[1]);
    int before = tl_lowest_free_fd();
    struct rcvd g = recv_fds(b, &c, 1, 0, 0);
    CHECK_EQ(g.r, 1);
    CHECK_EQ(g.flags, MSG_CTRUNC);
    CHECK_EQ(g.controllen, 0);
    CHECK(pipe_hup(p[0], 10000));
    CHECK(!is_open(before)); /* nothing was installed */
    /* a buffer with room for the header but not one fd */
    CHECK_EQ(OK(send_fds(a, "h", 1, &q[1], 1)), 1);
    close(q[1]);
    g = recv_fds(b, &c, 1, 0, CMSG_LEN(sizeof(int)) - 1);
    CHECK_EQ(g.r, 1);
    CHECK_EQ(g.flags, MSG_CTRUNC);
    CHECK_EQ(g.nfds, 0);
    CHECK(pipe_hup(q[0], 10000));
    CHECK_EQ(tl_lowest_free_fd(), before);
    close(p[0]);
    close(q[0]);
    close(a);
    close(b);
}

static void rlimit_ctrunc(void *arg)
{
    (void)arg;
    int sv[2], p[2];
    OK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
    OK(pipe(p));
    int three[3] = {p[1], p[1], p[1]};
    CHECK_EQ(OK(send_fds(sv[0], "r", 1, three, 3)), 1);
    close(p[1]);
    /* room for one more fd number only */
    int low = tl_lowest_free_fd();
    struct rlimit rl;
    OK(getrlimit(RLIMIT_NOFILE, &rl));
    rl.rlim_cur = (rlim_t)low + 1;
    OK(setrlimit(RLIMIT_NOFILE, &rl));
    char c;
    struct rcvd g = recv_fds(sv[1], &c, 1, 0, RECV_SPACE);
    CHECK_EQ(g.r, 1);
    CHECK_EQ(g.nfds, 1);
    CHECK_EQ(g.fds[0], low);
    CHECK_EQ(g.flags, MSG_CTRUNC);
    close(g.fds[0]);
    CHECK(pipe_hup(p[0], 10000));
}

TEST(rights_fd_limit_at_receive_ctrunc)
{
    tl_child(rlimit_ctrunc, NULL);
}

/* ---- SCM_MAX_FD ---------------------------------------------------------- */

TEST(rights_scm_max_fd)
{
    struct rlimit rl;
    OK(getrlimit(RLIMIT_NOFILE, &rl));
    if (rl.rlim_cur < 1024) {
        rl.rlim_cur = rl.rlim_max < 1024 ? rl.rlim_max : 1024;
        OK(setrlimit(RLIMIT_NOFILE, &rl));
    }
    if (rl.rlim_cur < 600)
        t_skip("nofile", "RLIMIT_NOFILE %ld is below the 600 fds this needs", (long)rl.rlim_cur);
    int sv[2], p[2];
    OK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
    OK(pipe(p));
    int fds[MAXFDS];
    for (int i = 0; i < MAXFDS; i++)
        fds[i] = p[1];
    /* SCM_MAX_FD (253) in one message */
    CHECK_EQ(OK(send_fds(sv[0], "m", 1, fds, 253)), 1);
    CHECK_ERRNO(send_fds(sv[0], "m", 1, fds, 254), EINVAL);
    char c;
    struct rcvd g = recv_fds(sv[1], &c, 1, 0, RECV_SPACE);
    CHECK_EQ(g.nfds, 253);
    CHECK_EQ(g.flags, 0);
    closefds(g.fds, g.nfds);
    /* the limit is per message: two SCM_RIGHTS of 200 and 100 are 300 */
    static union {
        char b[CMSG_SPACE(sizeof(int) * 200) + CMSG_SPACE(sizeof(int) * 100)];
        struct cmsghdr align;
    } ctl;
    memset(&ctl, 0, sizeof ctl);
    struct iovec v = {"2", 1};
    struct msghdr mh;
    memset(&mh, 0, sizeof mh);
    mh.msg_iov = &v;
    mh.msg_iovlen = 1;
    mh.msg_control = ctl.b;
    mh.msg_controllen = sizeof ctl.b;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int) * 200);
    memcpy(CMSG_DATA(cm), fds, sizeof(int) * 200);
    cm = CMSG_NXTHDR(&mh, cm);
    CHECK(cm != NULL);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int) * 100);
    memcpy(CMSG_DATA(cm), fds, sizeof(int) * 100);
    CHECK_ERRNO(sendmsg(sv[0], &mh, 0), EINVAL);
    CHECK_ERRNO(recv(sv[1], &c, 1, MSG_DONTWAIT), EAGAIN);
    close(p[1]);
    CHECK(pipe_hup(p[0], 10000));
    close(p[0]);
    close(sv[0]);
    close(sv[1]);
}

TEST(rights_two_cmsgs_arrive_as_one)
{
    int sv[2], p[2];
    OK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
    OK(pipe(p));
    union {
        char b[2 * CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctl;
    memset(&ctl, 0, sizeof ctl);
    struct iovec v = {"2", 1};
    struct msghdr mh;
    memset(&mh, 0, sizeof mh);
    mh.msg_iov = &v;
    mh.msg_iovlen = 1;
    mh.msg_control = ctl.b;
    mh.msg_controllen = sizeof ctl.b;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &p[0], sizeof(int));
    cm = CMSG_NXTHDR(&mh, cm);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &p[1], sizeof(int));
    CHECK_EQ(OK(sendmsg(sv[0], &mh, 0)), 1);
    char c;
    struct rcvd g = recv_fds(sv[1], &c, 1, 0, RECV_SPACE);
    CHECK_EQ(g.ncmsg, 1);
    CHECK_EQ(g.nfds, 2);
    same_file(g.fds[0], p[0]);
    same_file(g.fds[1], p[1]);
    closefds(g.fds, 2);
    close(p[0]);
    close(p[1]);
    close(sv[0]);
    close(sv[1]);
}

TEST(rights_with_credentials)
{
    int sv[2], p[2];
    OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    OK(pipe(p));
    int on = 1;
    OK(setsockopt(sv[1], SOL_SOCKET, SO_PASSCRED, &on, sizeof on));
    CHECK_EQ(OK(send_fds(sv[0], "c", 1, &p[1], 1)), 1);
    char c;
    struct rcvd g = recv_fds(sv[1], &c, 1, 0, RECV_SPACE);
    /* credentials first, then the fds */
    CHECK_EQ(g.first_type, SCM_CREDENTIALS);
    CHECK_EQ(g.nother, 1);
    CHECK_EQ(g.nfds, 1);
    CHECK_EQ(g.controllen, CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(sizeof(int)));
    close(g.fds[0]);
    close(p[0]);
    close(p[1]);
    close(sv[0]);
    close(sv[1]);
}

/* ---- fds in flight when their socket goes away ----------------------------- */

TEST_UNIX_TYPES(rights_inflight_closed_with_receiver)
{
    int a, b, p[2];
    tl_unix_pair(how, type, &a, &b);
    OK(pipe(p));
    CHECK_EQ(OK(send_fds(a, "f", 1, &p[1], 1)), 1);
    close(p[1]);
    /* the only write end is in b's queue */
    CHECK(!pipe_hup(p[0], 0));
    close(b);
    CHECK(pipe_hup(p[0], 10000));
    close(p[0]);
    close(a);
}

TEST_UNIX_TYPES(rights_inflight_survives_sender_close)
{
    int a, b, p[2];
    tl_unix_pair(how, type, &a, &b);
    OK(pipe(p));
    CHECK_EQ(OK(send_fds(a, "f", 1, &p[1], 1)), 1);
    close(p[1]);
    close(a);
    CHECK(!pipe_hup(p[0], 0));
    char c;
    struct rcvd g = recv_fds(b, &c, 1, 0, RECV_SPACE);
    CHECK_EQ(g.nfds, 1);
    CHECK_EQ(OK(write(g.fds[0], "k", 1)), 1);
    CHECK_EQ(OK(read(p[0], &c, 1)), 1);
    close(g.fds[0]);
    CHECK(pipe_hup(p[0], 10000));
    close(p[0]);
    close(b);
}

/* Makes the kernel run its AF_UNIX garbage collector: it is scheduled when
 * a socket is released while fds are in flight (unix_release_sock). */
static void nudge_gc(void)
{
    int sv[2], p[2];
    OK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
    OK(pipe(p));
    CHECK_EQ(OK(send_fds(sv[0], "g", 1, &p[0], 1)), 1);
    close(p[0]);
    close(p[1]);
    close(sv[0]);
    close(sv[1]);
}

TEST(rights_garbage_collected_cycle)
{
    /* a socket in flight in its own queue, with a pipe's write end: once
     * every fd is closed nothing can read it; the garbage collector frees
     * the cycle and the pipe sees its end */
    int types[2] = {SOCK_STREAM, SOCK_DGRAM};
    for (int t = 0; t < 2; t++) {
        int sv[2], p[2];
        OK(socketpair(AF_UNIX, types[t], 0, sv));
        OK(pipe(p));
        int two[2] = {sv[1], p[1]};
        CHECK_EQ(OK(send_fds(sv[0], "c", 1, two, 2)), 1);
        close(p[1]);
        /* sv[1] first: from then on only its own queue holds it, and the
         * release of sv[0] schedules a collection that finds the cycle */
        close(sv[1]);
        CHECK(!pipe_hup(p[0], 0));
        close(sv[0]);
        /* a collection that ran too early (another socket's release) is
         * followed by another: up to 10 of them, 1 s apart at most */
        int hup = 0;
        for (int i = 0; i < 10 && !hup; i++) {
            hup = pipe_hup(p[0], 1000);
            if (!hup)
                nudge_gc();
        }
        CHECK(hup);
        close(p[0]);
    }
}

/* ---- malformed control data ---------------------------------------------- */

static ssize_t send_raw_ctl(int fd, void *ctl, size_t ctllen)
{
    struct iovec v = {"m", 1};
    struct msghdr mh;
    memset(&mh, 0, sizeof mh);
    mh.msg_iov = &v;
    mh.msg_iovlen = 1;
    mh.msg_control = ctl;
    mh.msg_controllen = ctllen;
    return sendmsg(fd, &mh, MSG_DONTWAIT);
}

TEST(rights_malformed_cmsgs)
{
    int types[3] = {SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET};
    for (int t = 0; t < 3; t++) {
        int sv[2], p[2];
        OK(socketpair(AF_UNIX, types[t], 0, sv));
        OK(pipe(p));
        union {
            char b[256];
            struct cmsghdr align;
        } ctl;
        struct cmsghdr *cm = &ctl.align;
        char buf[8];
        /* cmsg_len shorter than a header */
        memset(&ctl, 0, sizeof ctl);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = sizeof(struct cmsghdr) - 1;
        CHECK_ERRNO(send_raw_ctl(sv[0], &ctl, CMSG_SPACE(sizeof(int))), EINVAL);
        /* cmsg_len past the end of the control buffer */
        cm->cmsg_len = CMSG_LEN(2 * sizeof(int));
        memcpy(CMSG_DATA(cm), &p[1], sizeof(int));
        memcpy(CMSG_DATA(cm) + sizeof(int), &p[1], sizeof(int));
        CHECK_ERRNO(send_raw_ctl(sv[0], &ctl, CMSG_LEN(sizeof(int))), EINVAL);
        /* an unknown SOL_SOCKET message type */
        cm->cmsg_type = 99;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        CHECK_ERRNO(send_raw_ctl(sv[0], &ctl, CMSG_SPACE(sizeof(int))), EINVAL);
        /* SCM_TIMESTAMP is not something a sender gives */
        cm->cmsg_type = SCM_TIMESTAMP;
        CHECK_ERRNO(send_raw_ctl(sv[0], &ctl, CMSG_SPACE(sizeof(int))), EINVAL);
        /* a bad control pointer */
        CHECK_ERRNO(send_raw_ctl(sv[0], tl_bad_ptr(), CMSG_SPACE(sizeof(int))), EFAULT);
        CHECK_ERRNO(send_raw_ctl(sv[0], NULL, CMSG_SPACE(sizeof(int))), EFAULT);
        /* an absurd control length */
        CHECK_ERRNO(send_raw_ctl(sv[0], &ctl, (size_t)INT_MAX + 1), ENOBUFS);
        CHECK_ERRNO(recv(sv[1], buf, sizeof buf, MSG_DONTWAIT), EAGAIN);

        /* accepted: another level is ignored by AF_UNIX */
        cm->cmsg_level = IPPROTO_IP;
        cm->cmsg_type = 1;
        CHECK_EQ(OK(send_raw_ctl(sv[0], &ctl, CMSG_SPACE(sizeof(int)))), 1);
        struct rcvd g = recv_fds(sv[1], buf, sizeof buf, 0, RECV_SPACE);
        CHECK_EQ(g.r, 1);
        CHECK_EQ(g.controllen, 0);
        /* a control buffer shorter than one header is no message at all */
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = 99;
        CHECK_EQ(OK(send_raw_ctl(sv[0], &ctl, sizeof(struct cmsghdr) - 1)), 1);
        g = recv_fds(sv[1], buf, sizeof buf, 0, RECV_SPACE);
        CHECK_EQ(g.r, 1);
        CHECK_EQ(g.controllen, 0);
        /* SCM_RIGHTS with no whole fd in it: nothing passed, no error */
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(0);
        CHECK_EQ(OK(send_raw_ctl(sv[0], &ctl, CMSG_SPACE(0))), 1);
        g = recv_fds(sv[1], buf, sizeof buf, 0, RECV_SPACE);
        CHECK_EQ(g.r, 1);
        CHECK_EQ(g.nfds, 0);
        CHECK_EQ(g.controllen, 0);
        cm->cmsg_len = CMSG_LEN(sizeof(int) - 1);
        CHECK_EQ(OK(send_raw_ctl(sv[0], &ctl, CMSG_SPACE(sizeof(int)))), 1);
        g = recv_fds(sv[1], buf, sizeof buf, 0, RECV_SPACE);
        CHECK_EQ(g.nfds, 0);
        /* a good message and then a bad one: EINVAL, nothing sent */
        union {
            char b[2 * CMSG_SPACE(sizeof(int))];
            struct cmsghdr align;
        } two;
        memset(&two, 0, sizeof two);
        struct msghdr mh;
        memset(&mh, 0, sizeof mh);
        mh.msg_control = two.b;
        mh.msg_controllen = sizeof two.b;
        struct cmsghdr *c1 = CMSG_FIRSTHDR(&mh);
        c1->cmsg_level = SOL_SOCKET;
        c1->cmsg_type = SCM_RIGHTS;
        c1->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c1), &p[1], sizeof(int));
        struct cmsghdr *c2 = CMSG_NXTHDR(&mh, c1);
        c2->cmsg_level = SOL_SOCKET;
        c2->cmsg_type = 99;
        c2->cmsg_len = CMSG_LEN(sizeof(int));
        CHECK_ERRNO(send_raw_ctl(sv[0], two.b, sizeof two.b), EINVAL);
        CHECK_ERRNO(recv(sv[1], buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
        close(p[1]);
        CHECK(pipe_hup(p[0], 10000));
        close(p[0]);
        close(sv[0]);
        close(sv[1]);
    }
}

TEST(rights_ignored_by_inet_sockets)
{
    /* SCM_RIGHTS and SCM_CREDENTIALS at SOL_SOCKET are accepted and
     * ignored by UDP and TCP (__sock_cmsg_send): no fd goes anywhere */
    int p[2];
    OK(pipe(p));
    for (int fam = FAM_INET; fam <= FAM_INET6; fam++) {
        int u = tl_bound(fam, SOCK_DGRAM), v = tl_bound(fam, SOCK_DGRAM);
        struct sockaddr_storage vn;
        socklen_t vl = tl_name(v, &vn);
        OK(connect(u, (struct sockaddr *)&vn, vl));
        CHECK_EQ(OK(send_fds(u, "x", 1, &p[1], 1)), 1);
        char buf[4];
        struct rcvd g = recv_fds(v, buf, sizeof buf, 0, RECV_SPACE);
        CHECK_EQ(g.r, 1);
        CHECK_EQ(g.controllen, 0);
        close(u);
        close(v);
        int c, s;
        tl_stream_pair(fam, &c, &s);
        CHECK_EQ(OK(send_fds(c, "y", 1, &p[1], 1)), 1);
        g = recv_fds(s, buf, sizeof buf, 0, RECV_SPACE);
        CHECK_EQ(g.r, 1);
        CHECK_EQ(g.controllen, 0);
        close(c);
        close(s);
    }
    close(p[1]);
    CHECK(pipe_hup(p[0], 10000));
    close(p[0]);
}

/* ---- ETOOMANYREFS --------------------------------------------------------- */

static void too_many_refs(void *arg)
{
    (void)arg;
    if (geteuid() == 0) {
        OK(setgroups(0, NULL));
        OK(setresgid(NOBODY, NOBODY, NOBODY));
        OK(setresuid(NOBODY, NOBODY, NOBODY));
    }
    int sv[2], p[2];
    OK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
    OK(pipe(p));
    /* the limit goes down only now: what counts is fds in flight */
    struct rlimit rl;
    OK(getrlimit(RLIMIT_NOFILE, &rl));
    rl.rlim_cur = 32;
    OK(setrlimit(RLIMIT_NOFILE, &rl));
    int fds[10];
    for (int i = 0; i < 10; i++)
        fds[i] = p[1];
    /* a user may have more fds in flight than RLIMIT_NOFILE only until
     * the count is above it: 10, 20, 30, 40 pass, the next is refused */
    for (int i = 0; i < 4; i++)
        CHECK_EQ(OK(send_fds(sv[0], "t", 1, fds, 10)), 1);
    CHECK_ERRNO(send_fds(sv[0], "t", 1, fds, 10), ETOOMANYREFS);
    /* receiving brings the count down */
    char c;
    struct rcvd g = recv_fds(sv[1], &c, 1, 0, 0); /* no room: closed */
    CHECK_EQ(g.flags, MSG_CTRUNC);
    CHECK_EQ(OK(send_fds(sv[0], "t", 1, fds, 10)), 1);
}

TEST(rights_etoomanyrefs_unprivileged)
{
    tl_child(too_many_refs, NULL);
}

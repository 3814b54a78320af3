/* socket, socketpair, close, fd numbering, EMFILE, EBADF, ENOTSOCK,
 * dup/dup2/dup3, fcntl and ioctl. */
#include "testlib.h"

#include <sys/resource.h>

static int getint(int fd, int level, int opt)
{
    int v = -12345;
    socklen_t l = sizeof v;
    OK(getsockopt(fd, level, opt, &v, &l));
    CHECK_EQ(l, sizeof(int));
    return v;
}

TEST_FAM(socket_types_and_protocols)
{
    int types[2] = {SOCK_STREAM, SOCK_DGRAM};
    for (int i = 0; i < 2; i++) {
        int fd = (int)OK(socket(tl_domain(fam), types[i], 0));
        CHECK(fd >= 0);
        CHECK_EQ(getint(fd, SOL_SOCKET, SO_TYPE), types[i]);
        CHECK_EQ(getint(fd, SOL_SOCKET, SO_DOMAIN), tl_domain(fam));
        int proto = 0;
        if (fam == FAM_INET || fam == FAM_INET6)
            proto = types[i] == SOCK_STREAM ? IPPROTO_TCP : IPPROTO_UDP;
        CHECK_EQ(getint(fd, SOL_SOCKET, SO_PROTOCOL), proto);
        CHECK_EQ(getint(fd, SOL_SOCKET, SO_ERROR), 0);
        CHECK_EQ(getint(fd, SOL_SOCKET, SO_ACCEPTCONN), 0);
        int fl = (int)OK(fcntl(fd, F_GETFL));
        CHECK_EQ(fl & O_ACCMODE, O_RDWR);
        CHECK_EQ(fl & O_NONBLOCK, 0);
        CHECK_EQ(OK(fcntl(fd, F_GETFD)) & FD_CLOEXEC, 0);
        OK(close(fd));
    }
    if (fam == FAM_INET || fam == FAM_INET6) {
        /* explicit protocol numbers are accepted */
        int fd = (int)OK(socket(tl_domain(fam), SOCK_STREAM, IPPROTO_TCP));
        OK(close(fd));
        fd = (int)OK(socket(tl_domain(fam), SOCK_DGRAM, IPPROTO_UDP));
        OK(close(fd));
    }
}

TEST_FAM(socket_nonblock_cloexec_flags)
{
    int fd = (int)OK(socket(tl_domain(fam), SOCK_STREAM | SOCK_NONBLOCK, 0));
    CHECK(OK(fcntl(fd, F_GETFL)) & O_NONBLOCK);
    CHECK_EQ(OK(fcntl(fd, F_GETFD)) & FD_CLOEXEC, 0);
    CHECK_EQ(getint(fd, SOL_SOCKET, SO_TYPE), SOCK_STREAM); /* flags not in type */
    OK(close(fd));
    fd = (int)OK(socket(tl_domain(fam), SOCK_DGRAM | SOCK_CLOEXEC, 0));
    CHECK_EQ(OK(fcntl(fd, F_GETFL)) & O_NONBLOCK, 0);
    CHECK(OK(fcntl(fd, F_GETFD)) & FD_CLOEXEC);
    OK(close(fd));
    fd = (int)OK(socket(tl_domain(fam), SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    CHECK(OK(fcntl(fd, F_GETFL)) & O_NONBLOCK);
    CHECK(OK(fcntl(fd, F_GETFD)) & FD_CLOEXEC);
    char c;
    CHECK_ERRNO(recv(fd, &c, 1, 0), EAGAIN);
    OK(close(fd));
}

TEST(socket_bad_arguments)
{
    CHECK_ERRNO(socket(12345, SOCK_STREAM, 0), EAFNOSUPPORT);
    CHECK_ERRNO(socket(-1, SOCK_STREAM, 0), EAFNOSUPPORT);
    CHECK_ERRNO(socket(AF_INET, 12345, 0), EINVAL);
    CHECK_ERRNO(socket(AF_INET, SOCK_STREAM | 0x10000000, 0), EINVAL);
    CHECK_ERRNO(socket(AF_UNIX, SOCK_DGRAM | 0x10000000, 0), EINVAL);
    CHECK_ERRNO(socket(AF_INET, SOCK_DGRAM, IPPROTO_TCP), EPROTONOSUPPORT);
    CHECK_ERRNO(socket(AF_INET6, SOCK_STREAM, IPPROTO_UDP), EPROTONOSUPPORT);
    CHECK_ERRNO(socket(AF_UNIX, SOCK_STREAM, 7), EPROTONOSUPPORT);
}

TEST(socketpair_unix_stream_and_dgram)
{
    int sv[2];
    OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    CHECK(sv[0] >= 0 && sv[1] >= 0 && sv[0] != sv[1]);
    CHECK_EQ(OK(write(sv[0], "ping", 4)), 4);
    char buf[16] = {0};
    CHECK_EQ(OK(read(sv[1], buf, sizeof buf)), 4);
    CHECK(memcmp(buf, "ping", 4) == 0);
    CHECK_EQ(OK(send(sv[1], "pong!", 5, 0)), 5);
    CHECK_EQ(OK(recv(sv[0], buf, sizeof buf, 0)), 5);
    CHECK(memcmp(buf, "pong!", 5) == 0);
    CHECK_EQ(getint(sv[0], SOL_SOCKET, SO_TYPE), SOCK_STREAM);
    OK(close(sv[0]));
    CHECK_EQ(OK(read(sv[1], buf, sizeof buf)), 0); /* EOF */
    OK(close(sv[1]));

    OK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
    CHECK_EQ(OK(send(sv[0], "a", 1, 0)), 1);
    CHECK_EQ(OK(send(sv[0], "bc", 2, 0)), 2);
    CHECK_EQ(OK(recv(sv[1], buf, sizeof buf, 0)), 1);
    CHECK_EQ(OK(recv(sv[1], buf, sizeof buf, 0)), 2);
    CHECK(memcmp(buf, "bc", 2) == 0);
    CHECK_EQ(getint(sv[1], SOL_SOCKET, SO_TYPE), SOCK_DGRAM);
    OK(close(sv[0]));
    OK(close(sv[1]));
}

TEST(socketpair_flags_and_errors)
{
    int sv[2];
    OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv));
    for (int i = 0; i < 2; i++) {
        CHECK(OK(fcntl(sv[i], F_GETFL)) & O_NONBLOCK);
        CHECK(OK(fcntl(sv[i], F_GETFD)) & FD_CLOEXEC);
    }
    char c;
    CHECK_ERRNO(recv(sv[0], &c, 1, 0), EAGAIN);
    OK(close(sv[0]));
    OK(close(sv[1]));
    CHECK_ERRNO(socketpair(AF_INET, SOCK_STREAM, 0, sv), EOPNOTSUPP);
    CHECK_ERRNO(socketpair(AF_INET6, SOCK_DGRAM, 0, sv), EOPNOTSUPP);
    CHECK_ERRNO(socketpair(12345, SOCK_STREAM, 0, sv), EAFNOSUPPORT);
    CHECK_ERRNO(socketpair(AF_UNIX, 12345, 0, sv), EINVAL);
}

TEST(fd_numbers_lowest_available)
{
    /* sockets take real fd numbers shared with kernel fds */
    int a = (int)OK(socket(AF_INET, SOCK_STREAM, 0));
    int b = (int)OK(socket(AF_INET6, SOCK_DGRAM, 0));
    int c = (int)OK(socket(AF_UNIX, SOCK_STREAM, 0));
    CHECK(a != b && b != c && a != c);
    OK(close(b));
    int expect = tl_lowest_free_fd();
    CHECK(expect <= b);
    int d = (int)OK(socket(AF_INET, SOCK_DGRAM, 0));
    CHECK_EQ(d, expect);
    /* a kernel fd reuses a closed socket's number, and vice versa */
    OK(close(d));
    int f = (int)OK(open("/dev/null", O_RDONLY));
    CHECK_EQ(f, expect);
    int ex = tl_lowest_free_fd();
    int e = (int)OK(socket(AF_INET, SOCK_STREAM, 0));
    CHECK_EQ(e, ex);
    CHECK(e != f);
    OK(close(f));
    int g = (int)OK(socket(AF_UNIX, SOCK_DGRAM, 0));
    CHECK_EQ(g, expect);
    int p[2];
    OK(close(g));
    OK(pipe(p));
    CHECK_EQ(p[0], expect);
    OK(close(p[0]));
    OK(close(p[1]));
    OK(close(a));
    OK(close(c));
    OK(close(e));
}

TEST(close_ebadf)
{
    int fd = (int)OK(socket(AF_INET, SOCK_STREAM, 0));
    OK(close(fd));
    CHECK_ERRNO(close(fd), EBADF);
    CHECK_ERRNO(close(-1), EBADF);
    CHECK_ERRNO(fcntl(fd, F_GETFD), EBADF);
}

TEST(ebadf_on_socket_calls)
{
    int fd = (int)OK(socket(AF_INET, SOCK_STREAM, 0));
    OK(close(fd));
    struct sockaddr_in sin = {.sin_family = AF_INET};
    socklen_t sl = sizeof sin;
    char buf[4];
    int v = 1;
    socklen_t vl = sizeof v;
    struct msghdr mh;
    memset(&mh, 0, sizeof mh);
    int bad[2] = {fd, -1};
    for (int i = 0; i < 2; i++) {
        int b = bad[i];
        CHECK_ERRNO(bind(b, (struct sockaddr *)&sin, sizeof sin), EBADF);
        CHECK_ERRNO(listen(b, 1), EBADF);
        CHECK_ERRNO(accept(b, NULL, NULL), EBADF);
        CHECK_ERRNO(accept4(b, NULL, NULL, 0), EBADF);
        CHECK_ERRNO(connect(b, (struct sockaddr *)&sin, sizeof sin), EBADF);
        CHECK_ERRNO(send(b, "x", 1, 0), EBADF);
        CHECK_ERRNO(sendto(b, "x", 1, 0, NULL, 0), EBADF);
        CHECK_ERRNO(sendmsg(b, &mh, 0), EBADF);
        CHECK_ERRNO(recv(b, buf, 1, 0), EBADF);
        CHECK_ERRNO(recvfrom(b, buf, 1, 0, NULL, NULL), EBADF);
        CHECK_ERRNO(recvmsg(b, &mh, 0), EBADF);
        CHECK_ERRNO(read(b, buf, 1), EBADF);
        CHECK_ERRNO(write(b, "x", 1), EBADF);
        CHECK_ERRNO(shutdown(b, SHUT_RDWR), EBADF);
        CHECK_ERRNO(getsockname(b, (struct sockaddr *)&sin, &sl), EBADF);
        CHECK_ERRNO(getpeername(b, (struct sockaddr *)&sin, &sl), EBADF);
        CHECK_ERRNO(getsockopt(b, SOL_SOCKET, SO_TYPE, &v, &vl), EBADF);
        CHECK_ERRNO(setsockopt(b, SOL_SOCKET, SO_KEEPALIVE, &v, sizeof v), EBADF);
        CHECK_ERRNO(fcntl(b, F_GETFL), EBADF);
        CHECK_ERRNO(ioctl(b, FIONREAD, &v), EBADF);
        CHECK_ERRNO(dup(b), EBADF);
        CHECK_ERRNO(dup2(b, 100), EBADF);
    }
}

static void check_enotsock(int fd)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    socklen_t sl = sizeof sin;
    char buf[4];
    int v = 1;
    socklen_t vl = sizeof v;
    struct msghdr mh;
    memset(&mh, 0, sizeof mh);
    CHECK_ERRNO(bind(fd, (struct sockaddr *)&sin, sizeof sin), ENOTSOCK);
    CHECK_ERRNO(listen(fd, 1), ENOTSOCK);
    CHECK_ERRNO(accept(fd, NULL, NULL), ENOTSOCK);
    CHECK_ERRNO(accept4(fd, NULL, NULL, SOCK_NONBLOCK), ENOTSOCK);
    CHECK_ERRNO(connect(fd, (struct sockaddr *)&sin, sizeof sin), ENOTSOCK);
    CHECK_ERRNO(send(fd, "x", 1, 0), ENOTSOCK);
    CHECK_ERRNO(sendto(fd, "x", 1, 0, (struct sockaddr *)&sin, sizeof sin), ENOTSOCK);
    CHECK_ERRNO(sendmsg(fd, &mh, 0), ENOTSOCK);
    CHECK_ERRNO(recv(fd, buf, 1, MSG_DONTWAIT), ENOTSOCK);
    CHECK_ERRNO(recvfrom(fd, buf, 1, MSG_DONTWAIT, NULL, NULL), ENOTSOCK);
    CHECK_ERRNO(recvmsg(fd, &mh, MSG_DONTWAIT), ENOTSOCK);
    CHECK_ERRNO(shutdown(fd, SHUT_RDWR), ENOTSOCK);
    CHECK_ERRNO(getsockname(fd, (struct sockaddr *)&sin, &sl), ENOTSOCK);
    CHECK_ERRNO(getpeername(fd, (struct sockaddr *)&sin, &sl), ENOTSOCK);
    CHECK_ERRNO(getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &vl), ENOTSOCK);
    CHECK_ERRNO(setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &v, sizeof v), ENOTSOCK);
}

TEST(enotsock_on_pipe_and_file)
{
    int p[2];
    OK(pipe(p));
    check_enotsock(p[0]);
    check_enotsock(p[1]);
    /* the pipe still works normally afterwards */
    CHECK_EQ(OK(write(p[1], "ab", 2)), 2);
    char buf[4];
    CHECK_EQ(OK(read(p[0], buf, sizeof buf)), 2);
    OK(close(p[0]));
    OK(close(p[1]));
    char path[128];
    tl_path(path, sizeof path);
    int f = (int)OK(open(path, O_RDWR | O_CREAT | O_TRUNC, 0600));
    check_enotsock(f);
    CHECK_EQ(OK(write(f, "hello", 5)), 5);
    CHECK_EQ(OK(lseek(f, 0, SEEK_SET)), 0);
    CHECK_EQ(OK(read(f, buf, 4)), 4);
    OK(close(f));
    OK(unlink(path));
}

TEST(emfile_when_rlimit_reached)
{
    struct rlimit old, lim;
    OK(getrlimit(RLIMIT_NOFILE, &old));
    int base = tl_lowest_free_fd();
    lim = old;
    lim.rlim_cur = (rlim_t)base + 16;
    OK(setrlimit(RLIMIT_NOFILE, &lim));
    int fds[64], n = 0, err = 0;
    for (; n < 64; n++) {
        fds[n] = socket(n % 2 ? AF_INET : AF_UNIX, SOCK_STREAM, 0);
        if (fds[n] < 0) {
            err = errno;
            break;
        }
    }
    int sv[2];
    int sp = socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    int sp_err = errno;
    int dp = n > 0 ? dup(fds[0]) : 0;
    int dp_err = errno;
    int d2 = n > 0 ? dup2(fds[0], (int)lim.rlim_cur + 5) : 0;
    int d2_err = errno;
    int fd3 = n > 0 ? fcntl(fds[0], F_DUPFD, (int)lim.rlim_cur + 5) : 0;
    int fd3_err = errno;
    for (int i = 0; i < n; i++)
        close(fds[i]);
    OK(setrlimit(RLIMIT_NOFILE, &old));
    CHECK(n > 0 && n <= 16);
    CHECK_EQ(err, EMFILE);
    CHECK_EQ(sp, -1);
    CHECK_EQ(sp_err, EMFILE);
    CHECK_EQ(dp, -1);
    CHECK_EQ(dp_err, EMFILE);
    CHECK_EQ(d2, -1);
    CHECK_EQ(d2_err, EBADF);
    CHECK_EQ(fd3, -1);
    CHECK_EQ(fd3_err, EINVAL);
    /* and sockets can be created again */
    int fd = (int)OK(socket(AF_INET, SOCK_STREAM, 0));
    OK(close(fd));
}

TEST(emfile_on_accept)
{
    struct sockaddr_storage ss;
    int l = tl_listener(FAM_INET, 8);
    socklen_t len = tl_name(l, &ss);
    int c = (int)OK(socket(AF_INET, SOCK_STREAM, 0));
    OK(connect(c, (struct sockaddr *)&ss, len));
    struct rlimit old, lim;
    OK(getrlimit(RLIMIT_NOFILE, &old));
    lim = old;
    lim.rlim_cur = (rlim_t)tl_lowest_free_fd();
    OK(setrlimit(RLIMIT_NOFILE, &lim));
    errno = 0;
    int a = accept(l, NULL, NULL);
    int e = errno;
    OK(setrlimit(RLIMIT_NOFILE, &old));
    CHECK_EQ(a, -1);
    CHECK_EQ(e, EMFILE);
    /* the connection is still pending and can be accepted now */
    a = (int)OK(accept(l, NULL, NULL));
    CHECK_EQ(OK(send(c, "x", 1, 0)), 1);
    char ch;
    CHECK_EQ(OK(recv(a, &ch, 1, 0)), 1);
    close(a);
    close(c);
    close(l);
}

TEST_FAM(dup_is_same_socket)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    int d = (int)OK(dup(c));
    CHECK(d != c);
    CHECK_EQ(getint(d, SOL_SOCKET, SO_TYPE), SOCK_STREAM);
    CHECK_EQ(OK(send(d, "abc", 3, 0)), 3);
    char buf[8];
    CHECK_EQ(OK(recv(s, buf, sizeof buf, 0)), 3);
    CHECK_EQ(OK(send(s, "xyz", 3, 0)), 3);
    CHECK_EQ(OK(recv(c, buf, 1, 0)), 1); /* one byte through c ... */
    CHECK_EQ(OK(recv(d, buf + 1, 2, 0)), 2); /* ... the rest through d */
    CHECK(memcmp(buf, "xyz", 3) == 0);
    /* file status flags are shared by dups (one open file description) */
    OK(fcntl(d, F_SETFL, O_NONBLOCK));
    CHECK(OK(fcntl(c, F_GETFL)) & O_NONBLOCK);
    CHECK_ERRNO(recv(c, buf, 1, 0), EAGAIN);
    OK(fcntl(c, F_SETFL, 0));
    CHECK_EQ(OK(fcntl(d, F_GETFL)) & O_NONBLOCK, 0);
    /* the fd flag FD_CLOEXEC is per fd */
    OK(fcntl(d, F_SETFD, FD_CLOEXEC));
    CHECK_EQ(OK(fcntl(c, F_GETFD)) & FD_CLOEXEC, 0);
    /* closing one keeps the other working, and no EOF reaches the peer */
    OK(close(c));
    CHECK_ERRNO(recv(s, buf, 1, MSG_DONTWAIT), EAGAIN);
    CHECK_EQ(OK(send(d, "q", 1, 0)), 1);
    CHECK_EQ(OK(recv(s, buf, sizeof buf, 0)), 1);
    CHECK_EQ(buf[0], 'q');
    /* closing the last one does */
    OK(close(d));
    CHECK_EQ(OK(recv(s, buf, sizeof buf, 0)), 0);
    OK(close(s));
}

TEST(dup2_dup3)
{
    int c, s;
    tl_stream_pair(FAM_INET, &c, &s);
    int p[2];
    OK(pipe(p));
    /* dup2 onto an open kernel fd closes it and makes it the socket */
    CHECK_EQ(OK(dup2(c, p[0])), p[0]);
    CHECK_EQ(getint(p[0], SOL_SOCKET, SO_TYPE), SOCK_STREAM);
    CHECK_EQ(OK(send(p[0], "hi", 2, 0)), 2);
    char buf[8];
    CHECK_EQ(OK(recv(s, buf, sizeof buf, 0)), 2);
    CHECK_EQ(OK(fcntl(p[0], F_GETFD)) & FD_CLOEXEC, 0);
    /* dup2(fd, fd) returns fd */
    CHECK_EQ(OK(dup2(c, c)), c);
    /* dup3 */
    CHECK_ERRNO(dup3(c, c, 0), EINVAL);
    CHECK_ERRNO(dup3(c, 200, 0x1234), EINVAL);
    int t = tl_lowest_free_fd() + 3;
    CHECK_EQ(OK(dup3(c, t, O_CLOEXEC)), t);
    CHECK(OK(fcntl(t, F_GETFD)) & FD_CLOEXEC);
    CHECK_EQ(OK(write(t, "z", 1)), 1);
    CHECK_EQ(OK(read(s, buf, sizeof buf)), 1);
    /* dup2 of a socket onto another socket */
    int u = (int)OK(socket(AF_INET, SOCK_DGRAM, 0));
    CHECK_EQ(OK(dup2(t, u)), u);
    CHECK_EQ(getint(u, SOL_SOCKET, SO_TYPE), SOCK_STREAM);
    OK(close(c));
    OK(close(p[0]));
    OK(close(t));
    /* u still holds the connection */
    CHECK_ERRNO(recv(s, buf, 1, MSG_DONTWAIT), EAGAIN);
    OK(close(u));
    CHECK_EQ(OK(recv(s, buf, sizeof buf, 0)), 0);
    OK(close(p[1]));
    OK(close(s));
}

TEST(fcntl_flags_and_dupfd)
{
    int c, s;
    tl_stream_pair(FAM_INET6, &c, &s);
    int fl = (int)OK(fcntl(c, F_GETFL));
    CHECK_EQ(fl & O_NONBLOCK, 0);
    OK(fcntl(c, F_SETFL, fl | O_NONBLOCK));
    CHECK(OK(fcntl(c, F_GETFL)) & O_NONBLOCK);
    char buf[4];
    CHECK_ERRNO(recv(c, buf, sizeof buf, 0), EAGAIN);
    CHECK_ERRNO(read(c, buf, sizeof buf), EAGAIN);
    OK(fcntl(c, F_SETFL, fl));
    CHECK_EQ(OK(fcntl(c, F_GETFL)) & O_NONBLOCK, 0);

    CHECK_EQ(OK(fcntl(c, F_GETFD)), 0);
    OK(fcntl(c, F_SETFD, FD_CLOEXEC));
    CHECK_EQ(OK(fcntl(c, F_GETFD)), FD_CLOEXEC);
    OK(fcntl(c, F_SETFD, 0));
    CHECK_EQ(OK(fcntl(c, F_GETFD)), 0);

    int min = tl_lowest_free_fd() + 10;
    int d = (int)OK(fcntl(c, F_DUPFD, min));
    CHECK_EQ(d, min);
    CHECK_EQ(OK(fcntl(d, F_GETFD)), 0);
    int d2 = (int)OK(fcntl(c, F_DUPFD, min));
    CHECK_EQ(d2, min + 1);
    int ex = tl_lowest_free_fd();
    int e = (int)OK(fcntl(c, F_DUPFD_CLOEXEC, 0));
    CHECK_EQ(e, ex);
    CHECK(e < min);
    CHECK_EQ(OK(fcntl(e, F_GETFD)), FD_CLOEXEC);
    CHECK_ERRNO(fcntl(c, F_DUPFD, -1), EINVAL);
    CHECK_EQ(OK(send(d, "1", 1, 0)), 1);
    CHECK_EQ(OK(send(d2, "2", 1, 0)), 1);
    CHECK_EQ(OK(send(e, "3", 1, 0)), 1);
    CHECK_EQ(tl_read_all(s, buf, 3), 3);
    CHECK(memcmp(buf, "123", 3) == 0);
    OK(close(c));
    OK(close(d));
    OK(close(d2));
    OK(close(e));
    OK(close(s));
}

TEST(ioctl_fionbio)
{
    int c, s;
    tl_stream_pair(FAM_UNIX, &c, &s);
    int on = 1, off = 0;
    OK(ioctl(c, FIONBIO, &on));
    CHECK(OK(fcntl(c, F_GETFL)) & O_NONBLOCK);
    char b;
    CHECK_ERRNO(recv(c, &b, 1, 0), EAGAIN);
    OK(ioctl(c, FIONBIO, &off));
    CHECK_EQ(OK(fcntl(c, F_GETFL)) & O_NONBLOCK, 0);
    OK(close(c));
    OK(close(s));
}

TEST_FAM(ioctl_fionread_stream)
{
    int c, s;
    tl_stream_pair(fam, &c, &s);
    int n = -1;
    OK(ioctl(s, FIONREAD, &n));
    CHECK_EQ(n, 0);
    CHECK_EQ(OK(send(c, "hello", 5, 0)), 5);
    CHECK_EQ(OK(send(c, "world!!", 7, 0)), 7);
    long deadline = tl_now_ms() + 2000;
    do {
        OK(ioctl(s, FIONREAD, &n));
        if (n == 12)
            break;
        tl_sleep_ms(5);
    } while (tl_now_ms() < deadline);
    CHECK_EQ(n, 12); /* every byte of both sends, no boundaries */
    char buf[16];
    CHECK_EQ(OK(recv(s, buf, 3, 0)), 3);
    OK(ioctl(s, FIONREAD, &n));
    CHECK_EQ(n, 9);
    OK(close(c));
    OK(close(s));
}

TEST_FAM(ioctl_fionread_dgram)
{
    int a, b;
    tl_dgram_pair(fam, &a, &b);
    int n = -1;
    OK(ioctl(b, FIONREAD, &n));
    CHECK_EQ(n, 0);
    CHECK_EQ(OK(send(a, "0123456789", 10, 0)), 10);
    CHECK_EQ(OK(send(a, "abc", 3, 0)), 3);
    CHECK(tl_poll1(b, POLLIN, 2000) & POLLIN);
    OK(ioctl(b, FIONREAD, &n));
    CHECK_EQ(n, 10); /* Linux: size of the first pending datagram */
    char buf[16];
    CHECK_EQ(OK(recv(b, buf, sizeof buf, 0)), 10);
    CHECK(tl_poll1(b, POLLIN, 2000) & POLLIN);
    OK(ioctl(b, FIONREAD, &n));
    CHECK_EQ(n, 3);
    OK(close(a));
    OK(close(b));
}

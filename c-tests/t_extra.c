/*
 * t_extra.c - Linux calls beyond POSIX that programs make on sockets:
 * sendfile, sendmmsg/recvmmsg, close_range/closefrom, fstat, and the
 * fortified read/recv/poll (this file is built with _FORTIFY_SOURCE).
 */
#define _FORTIFY_SOURCE 2
#include "testlib.h"

#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>

TEST_FAM(sendfile_from_a_file_into_a_socket)
{
    if (fam == FAM_ABSTRACT)
        return;
    char path[] = "/tmp/usock-sendfile-XXXXXX";
    int f = (int)OK(mkstemp(path));
    unlink(path);
    static char data[300000];
    tl_fill(data, sizeof data, 7);
    CHECK_EQ(tl_write_all(f, data, sizeof data), (ssize_t)sizeof data);
    int c, s;
    tl_stream_pair(fam, &c, &s);
    /* with an offset: the file position does not move */
    off_t off = 1000;
    OK(lseek(f, 5, SEEK_SET));
    size_t sent = 0;
    while (sent < 100000) {
        ssize_t n = OK(sendfile(c, f, &off, 100000 - sent));
        CHECK(n > 0);
        sent += (size_t)n;
    }
    CHECK_EQ((long)off, 101000L);
    CHECK_EQ((long)lseek(f, 0, SEEK_CUR), 5L);
    static char got[300000];
    CHECK_EQ(tl_read_all(s, got, 100000), 100000);
    CHECK(memcmp(got, data + 1000, 100000) == 0);
    /* without: from the file position, which moves */
    CHECK_EQ(OK(sendfile(c, f, NULL, 5000)), 5000);
    CHECK_EQ((long)lseek(f, 0, SEEK_CUR), 5005L);
    CHECK_EQ(tl_read_all(s, got, 5000), 5000);
    CHECK(memcmp(got, data + 5, 5000) == 0);
    /* a socket is not a source */
    CHECK_ERRNO(sendfile(c, s, NULL, 10), EINVAL);
    close(c);
    close(s);
    close(f);
}

TEST(sendmmsg_recvmmsg_udp)
{
    int a, b;
    tl_dgram_pair(FAM_INET, &a, &b);
    char bufs[4][32];
    struct iovec iov[4];
    struct mmsghdr m[4];
    memset(m, 0, sizeof m);
    for (int i = 0; i < 4; i++) {
        snprintf(bufs[i], sizeof bufs[i], "message %d", i);
        iov[i].iov_base = bufs[i];
        iov[i].iov_len = strlen(bufs[i]) + (size_t)i;
        m[i].msg_hdr.msg_iov = &iov[i];
        m[i].msg_hdr.msg_iovlen = 1;
    }
    CHECK_EQ(OK(sendmmsg(a, m, 4, 0)), 4);
    for (int i = 0; i < 4; i++)
        CHECK_EQ((size_t)m[i].msg_len, strlen(bufs[i]) + (size_t)i);
    char rb[5][64];
    struct iovec riov[5];
    struct mmsghdr r[5];
    memset(r, 0, sizeof r);
    for (int i = 0; i < 5; i++) {
        riov[i].iov_base = rb[i];
        riov[i].iov_len = sizeof rb[i];
        r[i].msg_hdr.msg_iov = &riov[i];
        r[i].msg_hdr.msg_iovlen = 1;
    }
    CHECK(tl_poll1(b, POLLIN, 2000) & POLLIN);
    tl_sleep_ms(20); /* all four queued */
    CHECK_EQ(OK(recvmmsg(b, r, 5, MSG_DONTWAIT, NULL)), 4);
    for (int i = 0; i < 4; i++) {
        CHECK_EQ((size_t)r[i].msg_len, strlen(bufs[i]) + (size_t)i);
        CHECK(memcmp(rb[i], bufs[i], strlen(bufs[i])) == 0);
    }
    CHECK_ERRNO(recvmmsg(b, r, 5, MSG_DONTWAIT, NULL), EAGAIN);
    close(a);
    close(b);
}

TEST(close_range_closes_sockets_and_other_fds)
{
    int lo = tl_lowest_free_fd();
    int p[2];
    OK(pipe(p));
    int s1 = (int)OK(socket(AF_INET, SOCK_STREAM, 0));
    int s2 = (int)OK(socket(AF_INET, SOCK_DGRAM, 0));
    int hi = s2 > p[1] ? s2 : p[1];
    CHECK(hi >= lo);
    OK(close_range((unsigned)lo, (unsigned)hi, 0));
    CHECK_ERRNO(send(s1, "x", 1, 0), EBADF);
    CHECK_ERRNO(send(s2, "x", 1, 0), EBADF);
    CHECK_ERRNO(write(p[1], "x", 1), EBADF);
    CHECK_EQ(tl_lowest_free_fd(), lo);
    CHECK_ERRNO(close_range(5, 4, 0), EINVAL);
}

TEST(fstat_reports_a_socket)
{
    int s = (int)OK(socket(AF_INET, SOCK_STREAM, 0));
    struct stat st;
    OK(fstat(s, &st));
#ifndef __SANITIZE_THREAD__
    /* TSan's own fstat interceptor calls libc's directly, ahead of any
     * other interposer: under TSan the library never sees this call. */
    CHECK(S_ISSOCK(st.st_mode));
#endif
    int p[2];
    OK(pipe(p));
    OK(fstat(p[0], &st));
    CHECK(S_ISFIFO(st.st_mode));
    close(p[0]);
    close(p[1]);
    close(s);
}

TEST(fortified_read_recv_poll)
{
    int c, s;
    tl_stream_pair(FAM_INET, &c, &s);
    CHECK_EQ(OK(send(c, "abcdef", 6, 0)), 6);
    struct pollfd pf[1] = {{s, POLLIN, 0}};
    CHECK_EQ(OK(poll(pf, 1, 2000)), 1);
    char buf[4];
    CHECK_EQ(OK(recv(s, buf, sizeof buf, 0)), 4);
    CHECK(memcmp(buf, "abcd", 4) == 0);
    CHECK_EQ(OK(read(s, buf, sizeof buf)), 2);
    CHECK(memcmp(buf, "ef", 2) == 0);
    close(c);
    close(s);
}

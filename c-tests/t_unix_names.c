/*
 * t_unix_names.c - AF_UNIX names as Linux keeps them (issue 14): the
 * peer of a connected datagram socket outlives its path; autobind; the
 * abstract namespace's exact lengths and embedded NULs; getsockname and
 * getpeername lengths; the socket file (mode, renames, links, symlinks);
 * EACCES from the file's and the directory's permissions (as an
 * unprivileged child), ECONNREFUSED, ENOENT, ENOTDIR, EADDRINUSE, EINVAL,
 * EISCONN. The kernel is the specification: net/unix/af_unix.c
 * (unix_validate_addr, unix_mkname_bsd, unix_bind_bsd/abstract,
 * unix_autobind, unix_find_bsd/abstract, unix_getname).
 */
#include "testlib.h"

#include <grp.h>
#include <sys/wait.h>

#define NOBODY 65534
#define OFF ((socklen_t)offsetof(struct sockaddr_un, sun_path))

static socklen_t path_addr(struct sockaddr_un *su, const char *path)
{
    memset(su, 0, sizeof *su);
    su->sun_family = AF_UNIX;
    snprintf(su->sun_path, sizeof su->sun_path, "%s", path);
    return OFF + (socklen_t)strlen(path) + 1;
}

/* An abstract name of exactly n bytes (after the leading NUL). */
static socklen_t abs_addr(struct sockaddr_un *su, const char *name, size_t n)
{
    memset(su, 0, sizeof *su);
    su->sun_family = AF_UNIX;
    memcpy(su->sun_path + 1, name, n);
    return OFF + 1 + (socklen_t)n;
}

static int sock_at(int type, const struct sockaddr_un *su, socklen_t len)
{
    int fd = (int)OK(socket(AF_UNIX, type, 0));
    OK(bind(fd, (const struct sockaddr *)su, len));
    return fd;
}

static socklen_t name_of(int fd, struct sockaddr_storage *ss)
{
    return tl_name(fd, ss);
}

static socklen_t peer_of(int fd, struct sockaddr_storage *ss)
{
    socklen_t l = sizeof *ss;
    memset(ss, 0, sizeof *ss);
    OK(getpeername(fd, (struct sockaddr *)ss, &l));
    return l;
}

/* ---- the peer of a connected datagram socket ------------------------------ */

TEST(names_dgram_connected_keeps_peer_after_unlink)
{
    char p[108];
    tl_path(p, sizeof p);
    struct sockaddr_un su;
    socklen_t len = path_addr(&su, p);
    int a = sock_at(SOCK_DGRAM, &su, len);
    int b = (int)OK(socket(AF_UNIX, SOCK_DGRAM, 0));
    OK(connect(b, (struct sockaddr *)&su, len));
    OK(unlink(p));
    /* the association is with the socket, not the path */
    CHECK_EQ(OK(send(b, "one", 3, 0)), 3);
    char buf[8];
    CHECK_EQ(OK(recv(a, buf, sizeof buf, MSG_DONTWAIT)), 3);
    struct sockaddr_storage ss;
    CHECK_EQ(peer_of(b, &ss), len);
    CHECK(memcmp(&ss, &su, len) == 0);
    /* a new socket at the same path is another peer */
    int c = sock_at(SOCK_DGRAM, &su, len);
    CHECK_EQ(OK(send(b, "two", 3, 0)), 3);
    CHECK_EQ(OK(recv(a, buf, sizeof buf, MSG_DONTWAIT)), 3);
    CHECK_ERRNO(recv(c, buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
    /* the path now names c */
    int d = (int)OK(socket(AF_UNIX, SOCK_DGRAM, 0));
    CHECK_EQ(OK(sendto(d, "new", 3, 0, (struct sockaddr *)&su, len)), 3);
    CHECK_EQ(OK(recv(c, buf, sizeof buf, MSG_DONTWAIT)), 3);
    CHECK_ERRNO(recv(a, buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
    /* a goes away: b's peer is gone, c at the same path does not stand in */
    close(a);
    CHECK_ERRNO(send(b, "x", 1, 0), ECONNREFUSED);
    CHECK_ERRNO(recv(c, buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
    /* after which b is no longer connected */
    CHECK_ERRNO(send(b, "x", 1, 0), ENOTCONN);
    close(b);
    close(c);
    close(d);
}

TEST(names_new_file_after_unlink_is_another_socket)
{
    /* a socket whose file was unlinked holds no name: a new socket file,
     * even one the file system gives the old inode number (ext4 reuses
     * it at once), is a different socket */
    for (int i = 0; i < 8; i++) {
        char p[108], q[108];
        tl_path(p, sizeof p);
        tl_path(q, sizeof q);
        struct sockaddr_un pu, qu;
        socklen_t pl = path_addr(&pu, p), ql = path_addr(&qu, q);
        int a = sock_at(SOCK_DGRAM, &pu, pl);
        struct stat st;
        OK(stat(p, &st));
        OK(unlink(p));
        int b = sock_at(SOCK_DGRAM, &qu, ql);
        int s = (int)OK(socket(AF_UNIX, SOCK_DGRAM, 0));
        CHECK_EQ(OK(sendto(s, "q", 1, 0, (struct sockaddr *)&qu, ql)), 1);
        char c;
        CHECK_EQ(OK(recv(b, &c, 1, MSG_DONTWAIT)), 1);
        CHECK_ERRNO(recv(a, &c, 1, MSG_DONTWAIT), EAGAIN);
        /* the old path is free again */
        int a2 = sock_at(SOCK_DGRAM, &pu, pl);
        close(a2);
        close(s);
        close(b);
        close(a);
        OK(unlink(p));
        OK(unlink(q));
    }
}

TEST(names_stream_connection_survives_unlink)
{
    char p[108];
    tl_path(p, sizeof p);
    struct sockaddr_un su;
    socklen_t len = path_addr(&su, p);
    int l = sock_at(SOCK_STREAM, &su, len);
    OK(listen(l, 4));
    int c = (int)OK(socket(AF_UNIX, SOCK_STREAM, 0));
    OK(connect(c, (struct sockaddr *)&su, len));
    OK(unlink(p));
    int s = (int)OK(accept(l, NULL, NULL));
    CHECK_EQ(OK(send(c, "still", 5, 0)), 5);
    char buf[8];
    CHECK_EQ(OK(recv(s, buf, sizeof buf, 0)), 5);
    /* the names stay what they were bound as */
    struct sockaddr_storage ss;
    CHECK_EQ(name_of(l, &ss), len);
    CHECK(memcmp(&ss, &su, len) == 0);
    CHECK_EQ(name_of(s, &ss), len);
    CHECK_EQ(peer_of(c, &ss), len);
    /* but nobody new finds the listener */
    int c2 = (int)OK(socket(AF_UNIX, SOCK_STREAM, 0));
    CHECK_ERRNO(connect(c2, (struct sockaddr *)&su, len), ENOENT);
    close(c2);
    close(c);
    close(s);
    close(l);
}

TEST(names_dgram_reconnect_and_disconnect)
{
    int a = tl_bound(FAM_ABSTRACT, SOCK_DGRAM), b = tl_bound(FAM_ABSTRACT, SOCK_DGRAM);
    struct sockaddr_storage an, bn, ss;
    socklen_t al = name_of(a, &an), bl = name_of(b, &bn);
    int s = (int)OK(socket(AF_UNIX, SOCK_DGRAM, 0));
    OK(connect(s, (struct sockaddr *)&an, al));
    OK(connect(s, (struct sockaddr *)&bn, bl)); /* a new peer replaces the old */
    CHECK_EQ(peer_of(s, &ss), bl);
    CHECK_EQ(OK(send(s, "b", 1, 0)), 1);
    char c;
    CHECK_EQ(OK(recv(b, &c, 1, MSG_DONTWAIT)), 1);
    CHECK_ERRNO(recv(a, &c, 1, MSG_DONTWAIT), EAGAIN);
    /* AF_UNSPEC dissolves the association */
    struct sockaddr unspec = {.sa_family = AF_UNSPEC};
    OK(connect(s, &unspec, sizeof unspec));
    socklen_t l = sizeof ss;
    CHECK_ERRNO(getpeername(s, (struct sockaddr *)&ss, &l), ENOTCONN);
    CHECK_ERRNO(send(s, "x", 1, 0), ENOTCONN);
    CHECK_EQ(OK(sendto(s, "a", 1, 0, (struct sockaddr *)&an, al)), 1);
    CHECK_EQ(OK(recv(a, &c, 1, MSG_DONTWAIT)), 1);
    close(s);
    close(a);
    close(b);
}

/* ---- autobind ------------------------------------------------------------ */

static void check_autobind_name(const struct sockaddr_storage *ss, socklen_t len)
{
    const struct sockaddr_un *su = (const struct sockaddr_un *)ss;
    CHECK_EQ(len, OFF + 6);
    CHECK_EQ(su->sun_family, AF_UNIX);
    CHECK_EQ(su->sun_path[0], 0);
    for (int i = 1; i <= 5; i++)
        CHECK((su->sun_path[i] >= '0' && su->sun_path[i] <= '9') ||
              (su->sun_path[i] >= 'a' && su->sun_path[i] <= 'f'));
}

TEST(names_autobind)
{
    int types[3] = {SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET};
    for (int t = 0; t < 3; t++) {
        struct sockaddr_un su = {.sun_family = AF_UNIX};
        int a = (int)OK(socket(AF_UNIX, types[t], 0));
        int b = (int)OK(socket(AF_UNIX, types[t], 0));
        OK(bind(a, (struct sockaddr *)&su, sizeof(sa_family_t)));
        OK(bind(b, (struct sockaddr *)&su, sizeof(sa_family_t)));
        struct sockaddr_storage an, bn;
        socklen_t al = name_of(a, &an), bl = name_of(b, &bn);
        check_autobind_name(&an, al);
        check_autobind_name(&bn, bl);
        CHECK(memcmp(&an, &bn, al) != 0);
        /* autobind of a bound socket does nothing (and succeeds); a
         * name for it is EINVAL */
        OK(bind(a, (struct sockaddr *)&su, sizeof(sa_family_t)));
        struct sockaddr_storage again;
        CHECK_EQ(name_of(a, &again), al);
        CHECK(memcmp(&again, &an, al) == 0);
        struct sockaddr_un other;
        socklen_t ol = abs_addr(&other, "usock-names-other", 17);
        CHECK_ERRNO(bind(a, (struct sockaddr *)&other, ol), EINVAL);
        /* the name works like any abstract name */
        if (types[t] == SOCK_DGRAM) {
            CHECK_EQ(OK(sendto(b, "d", 1, 0, (struct sockaddr *)&an, al)), 1);
            struct sockaddr_storage from;
            socklen_t fl = sizeof from;
            char c;
            CHECK_EQ(OK(recvfrom(a, &c, 1, 0, (struct sockaddr *)&from, &fl)), 1);
            CHECK_EQ(fl, bl);
            CHECK(memcmp(&from, &bn, bl) == 0);
        } else {
            OK(listen(a, 1));
            int c = (int)OK(socket(AF_UNIX, types[t], 0));
            OK(connect(c, (struct sockaddr *)&an, al));
            int s = (int)OK(accept(a, NULL, NULL));
            close(s);
            close(c);
        }
        close(a);
        close(b);
    }
    /* autobind takes the family into account */
    struct sockaddr_un bad = {.sun_family = AF_INET};
    int fd = (int)OK(socket(AF_UNIX, SOCK_STREAM, 0));
    CHECK_ERRNO(bind(fd, (struct sockaddr *)&bad, sizeof(sa_family_t)), EINVAL);
    close(fd);
}

TEST(names_unbound_senders_stay_unnamed)
{
    /* without SO_PASSCRED, neither connect() nor sendto() autobinds */
    int r = tl_bound(FAM_ABSTRACT, SOCK_DGRAM);
    struct sockaddr_storage rn, ss;
    socklen_t rl = name_of(r, &rn);
    int s = (int)OK(socket(AF_UNIX, SOCK_DGRAM, 0));
    CHECK_EQ(OK(sendto(s, "x", 1, 0, (struct sockaddr *)&rn, rl)), 1);
    CHECK_EQ(name_of(s, &ss), sizeof(sa_family_t));
    socklen_t fl = sizeof ss;
    char c;
    CHECK_EQ(OK(recvfrom(r, &c, 1, 0, (struct sockaddr *)&ss, &fl)), 1);
    CHECK_EQ(fl, 0); /* a sender without a name: no address at all */
    OK(connect(s, (struct sockaddr *)&rn, rl));
    CHECK_EQ(name_of(s, &ss), sizeof(sa_family_t));
    close(s);
    close(r);
}

/* ---- abstract names ------------------------------------------------------- */

TEST(names_abstract_exact_lengths_and_nuls)
{
    char base[64];
    int n = snprintf(base, sizeof base, "usock-names-%d-%d", (int)getpid(), rand());
    char nm[80];
    memcpy(nm, base, (size_t)n);
    /* an embedded NUL: "base\0x" */
    nm[n] = 0;
    nm[n + 1] = 'x';
    struct sockaddr_un su, probe;
    socklen_t len = abs_addr(&su, nm, (size_t)n + 2);
    int l = sock_at(SOCK_STREAM, &su, len);
    OK(listen(l, 4));
    struct sockaddr_storage ss;
    CHECK_EQ(name_of(l, &ss), len);
    CHECK(memcmp(&ss, &su, len) == 0);
    /* only the exact bytes and length connect */
    int c = (int)OK(socket(AF_UNIX, SOCK_STREAM, 0));
    OK(connect(c, (struct sockaddr *)&su, len));
    int s = (int)OK(accept(l, NULL, NULL));
    CHECK_EQ(name_of(s, &ss), len);
    CHECK_EQ(peer_of(c, &ss), len);
    CHECK(memcmp(&ss, &su, len) == 0);
    close(s);
    close(c);
    c = (int)OK(socket(AF_UNIX, SOCK_STREAM, 0));
    socklen_t pl = abs_addr(&probe, nm, (size_t)n); /* "base" */
    CHECK_ERRNO(connect(c, (struct sockaddr *)&probe, pl), ECONNREFUSED);
    pl = abs_addr(&probe, nm, (size_t)n + 1); /* "base\0" */
    CHECK_ERRNO(connect(c, (struct sockaddr *)&probe, pl), ECONNREFUSED);
    char longer[80];
    memcpy(longer, nm, (size_t)n + 2);
    longer[n + 2] = 0;
    pl = abs_addr(&probe, longer, (size_t)n + 3); /* "base\0x\0" */
    CHECK_ERRNO(connect(c, (struct sockaddr *)&probe, pl), ECONNREFUSED);
    close(c);
    /* "base" and "base\0" are two names, both free alongside "base\0x" */
    int b1 = sock_at(SOCK_STREAM, &probe, abs_addr(&probe, nm, (size_t)n));
    int b2 = sock_at(SOCK_STREAM, &probe, abs_addr(&probe, nm, (size_t)n + 1));
    CHECK_EQ(name_of(b2, &ss), OFF + 1 + (socklen_t)n + 1);
    close(b1);
    close(b2);
    close(l);
}

TEST(names_abstract_full_and_empty)
{
    /* the whole of sun_path: 107 bytes of name */
    char nm[107];
    int n = snprintf(nm, sizeof nm, "usock-names-full-%d-%d-", (int)getpid(), rand());
    memset(nm + n, 'z', sizeof nm - (size_t)n);
    struct sockaddr_un su;
    socklen_t len = abs_addr(&su, nm, sizeof nm);
    CHECK_EQ(len, sizeof(struct sockaddr_un));
    int d = sock_at(SOCK_DGRAM, &su, len);
    struct sockaddr_storage ss;
    CHECK_EQ(name_of(d, &ss), sizeof(struct sockaddr_un));
    CHECK(memcmp(&ss, &su, len) == 0);
    int s = (int)OK(socket(AF_UNIX, SOCK_DGRAM, 0));
    CHECK_EQ(OK(sendto(s, "f", 1, 0, (struct sockaddr *)&su, len)), 1);
    char c;
    CHECK_EQ(OK(recv(d, &c, 1, MSG_DONTWAIT)), 1);
    close(s);
    close(d);
    /* the empty abstract name: sun_path[0] = 0 and nothing after it */
    len = abs_addr(&su, "", 0);
    CHECK_EQ(len, OFF + 1);
    int e = (int)OK(socket(AF_UNIX, SOCK_SEQPACKET, 0));
    if (bind(e, (struct sockaddr *)&su, len) != 0) {
        /* another program holds it: still, it is a name like any other */
        CHECK_EQ(errno, EADDRINUSE);
    } else {
        CHECK_EQ(name_of(e, &ss), OFF + 1);
        int e2 = (int)OK(socket(AF_UNIX, SOCK_SEQPACKET, 0));
        CHECK_ERRNO(bind(e2, (struct sockaddr *)&su, len), EADDRINUSE);
        close(e2);
    }
    close(e);
}

TEST(names_abstract_namespace_per_type)
{
    /* the same abstract name bound by a socket of each type: three names
     * (the abstract namespace is looked up per type) */
    struct sockaddr_storage ss;
    socklen_t len;
    tl_addr(FAM_ABSTRACT, &ss, &len);
    int s = (int)OK(socket(AF_UNIX, SOCK_STREAM, 0));
    int d = (int)OK(socket(AF_UNIX, SOCK_DGRAM, 0));
    int q = (int)OK(socket(AF_UNIX, SOCK_SEQPACKET, 0));
    OK(bind(s, (struct sockaddr *)&ss, len));
    OK(bind(d, (struct sockaddr *)&ss, len));
    OK(bind(q, (struct sockaddr *)&ss, len));
    int s2 = (int)OK(socket(AF_UNIX, SOCK_STREAM, 0));
    CHECK_ERRNO(bind(s2, (struct sockaddr *)&ss, len), EADDRINUSE);
    close(s2);
    /* each type reaches its own */
    OK(listen(s, 1));
    OK(listen(q, 1));
    int c = (int)OK(socket(AF_UNIX, SOCK_STREAM, 0));
    OK(connect(c, (struct sockaddr *)&ss, len));
    int a = (int)OK(accept(s, NULL, NULL));
    close(a);
    close(c);
    int u = (int)OK(socket(AF_UNIX, SOCK_DGRAM, 0));
    CHECK_EQ(OK(sendto(u, "d", 1, 0, (struct sockaddr *)&ss, len)), 1);
    char ch;
    CHECK_EQ(OK(recv(d, &ch, 1, MSG_DONTWAIT)), 1);
    close(u);
    c = (int)OK(socket(AF_UNIX, SOCK_SEQPACKET, 0));
    OK(connect(c, (struct sockaddr *)&ss, len));
    a = (int)OK(accept(q, NULL, NULL));
    close(a);
    close(c);
    close(s);
    close(d);
    close(q);
    /* freed at close: bound again at once */
    s = (int)OK(socket(AF_UNIX, SOCK_STREAM, 0));
    OK(bind(s, (struct sockaddr *)&ss, len));
    close(s);
}

/* ---- pathname lengths ----------------------------------------------------- */

TEST(names_pathname_lengths)
{
    char p[108];
    tl_path(p, sizeof p);
    size_t pl = strlen(p);
    struct sockaddr_un su;
    path_addr(&su, p);
    /* bound without the NUL in the length: the name has it anyway */
    int d = sock_at(SOCK_DGRAM, &su, OFF + (socklen_t)pl);
    struct sockaddr_storage ss;
    CHECK_EQ(name_of(d, &ss), OFF + pl + 1);
    CHECK(strcmp(((struct sockaddr_un *)&ss)->sun_path, p) == 0);
    /* reached with or without it */
    int s = (int)OK(socket(AF_UNIX, SOCK_DGRAM, 0));
    CHECK_EQ(OK(sendto(s, "a", 1, 0, (struct sockaddr *)&su, OFF + (socklen_t)pl)), 1);
    CHECK_EQ(OK(sendto(s, "b", 1, 0, (struct sockaddr *)&su, OFF + (socklen_t)pl + 1)), 1);
    /* and with junk after the NUL, inside the length */
    struct sockaddr_un junk;
    path_addr(&junk, p);
    memset(junk.sun_path + pl + 1, 'J', sizeof junk.sun_path - pl - 1);
    CHECK_EQ(OK(sendto(s, "c", 1, 0, (struct sockaddr *)&junk, sizeof junk)), 1);
    char c;
    for (int i = 0; i < 3; i++)
        CHECK_EQ(OK(recv(d, &c, 1, MSG_DONTWAIT)), 1);
    close(s);
    close(d);
    OK(unlink(p));
    /* bound with junk after the NUL: the name stops at the NUL */
    d = sock_at(SOCK_DGRAM, &junk, sizeof junk);
    CHECK_EQ(name_of(d, &ss), OFF + pl + 1);
    close(d);
    OK(unlink(p));
    /* a buffer too small: the length is the whole name's, the copy cut */
    d = sock_at(SOCK_DGRAM, &su, OFF + (socklen_t)pl + 1);
    unsigned char small[16];
    memset(small, 0xAA, sizeof small);
    socklen_t sl = 8;
    OK(getsockname(d, (struct sockaddr *)small, &sl));
    CHECK_EQ(sl, OFF + pl + 1);
    CHECK(memcmp(small + 2, p, 6) == 0);
    CHECK_EQ(small[8], 0xAA);
    close(d);
}

TEST(names_pathname_108_bytes_without_nul)
{
    /* a path filling sun_path with no room for the NUL: Linux takes it,
     * and getsockname reports 111 bytes (one more than sockaddr_un) */
    char p[109];
    const char *dir = tl_tmpdir();
    size_t dl = strlen(dir);
    CHECK(dl + 2 < 108);
    memcpy(p, dir, dl);
    p[dl] = '/';
    memset(p + dl + 1, 'n', 108 - dl - 1);
    p[108] = 0;
    struct sockaddr_un su;
    memset(&su, 0, sizeof su);
    su.sun_family = AF_UNIX;
    memcpy(su.sun_path, p, 108);
    int l = sock_at(SOCK_STREAM, &su, sizeof su);
    OK(listen(l, 1));
    struct stat st;
    OK(stat(p, &st));
    CHECK(S_ISSOCK(st.st_mode));
    struct sockaddr_storage ss;
    CHECK_EQ(name_of(l, &ss), sizeof su + 1);
    CHECK(memcmp(((struct sockaddr_un *)&ss)->sun_path, p, 108) == 0);
    CHECK_EQ(((struct sockaddr_un *)&ss)->sun_path[108], 0);
    int c = (int)OK(socket(AF_UNIX, SOCK_STREAM, 0));
    OK(connect(c, (struct sockaddr *)&su, sizeof su));
    CHECK_EQ(peer_of(c, &ss), sizeof su + 1);
    close(c);
    close(l);
    OK(unlink(p));
}

TEST(names_unnamed_lengths)
{
    int types[3] = {SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET};
    for (int t = 0; t < 3; t++) {
        int sv[2];
        OK(socketpair(AF_UNIX, types[t], 0, sv));
        struct sockaddr_storage ss;
        CHECK_EQ(name_of(sv[0], &ss), sizeof(sa_family_t));
        CHECK_EQ(((struct sockaddr_un *)&ss)->sun_family, AF_UNIX);
        CHECK_EQ(peer_of(sv[0], &ss), sizeof(sa_family_t));
        CHECK_EQ(peer_of(sv[1], &ss), sizeof(sa_family_t));
        close(sv[0]);
        close(sv[1]);
        int fd = (int)OK(socket(AF_UNIX, types[t], 0));
        CHECK_EQ(name_of(fd, &ss), sizeof(sa_family_t));
        socklen_t l = sizeof ss;
        CHECK_ERRNO(getpeername(fd, (struct sockaddr *)&ss, &l), ENOTCONN);
        close(fd);
    }
}

TEST(names_accept_reports_client_name)
{
    for (int fam = FAM_UNIX; fam <= FAM_ABSTRACT; fam++) {
        int l = tl_listener(fam, 4);
        struct sockaddr_storage ln, cn, from;
        socklen_t ll = name_of(l, &ln);
        /* an unbound client: just the family */
        int c = (int)OK(socket(AF_UNIX, SOCK_STREAM, 0));
        OK(connect(c, (struct sockaddr *)&ln, ll));
        socklen_t fl = sizeof from;
        memset(&from, 0x55, sizeof from);
        int s = (int)OK(accept(l, (struct sockaddr *)&from, &fl));
        CHECK_EQ(fl, sizeof(sa_family_t));
        CHECK_EQ(((struct sockaddr_un *)&from)->sun_family, AF_UNIX);
        close(s);
        close(c);
        /* a bound one: its name */
        c = tl_bound(fam, SOCK_STREAM);
        socklen_t cl = name_of(c, &cn);
        OK(connect(c, (struct sockaddr *)&ln, ll));
        fl = sizeof from;
        s = (int)OK(accept(l, (struct sockaddr *)&from, &fl));
        CHECK_EQ(fl, cl);
        CHECK(memcmp(&from, &cn, cl) == 0);
        /* the peer's name stays readable after the peer has gone */
        close(c);
        CHECK_EQ(peer_of(s, &from), cl);
        close(s);
        close(l);
    }
}

/* ---- the socket file ------------------------------------------------------ */

TEST(names_socket_file_mode_and_lifetime)
{
    char p[108];
    tl_path(p, sizeof p);
    struct sockaddr_un su;
    socklen_t len = path_addr(&su, p);
    mode_t old = umask(027);
    int fd = (int)OK(socket(AF_UNIX, SOCK_STREAM, 0));
    int r = bind(fd, (struct sockaddr *)&su, len);
    umask(old);
    OK(r);
    struct stat st;
    OK(lstat(p, &st));
    CHECK(S_ISSOCK(st.st_mode));
    CHECK_EQ(st.st_mode & 07777, 0750);
    CHECK_EQ(st.st_uid, geteuid());
    /* the file outlives the socket, and keeps its name taken */
    close(fd);
    OK(lstat(p, &st));
    fd = (int)OK(socket(AF_UNIX, SOCK_STREAM, 0));
    CHECK_ERRNO(bind(fd, (struct sockaddr *)&su, len), EADDRINUSE);
    OK(unlink(p));
    OK(bind(fd, (struct sockaddr *)&su, len));
    close(fd);
    OK(unlink(p));
}

TEST(names_socket_file_rename_link_symlink)
{
    char p[108], q[108], h[108], s[108];
    tl_path(p, sizeof p);
    tl_path(q, sizeof q);
    tl_path(h, sizeof h);
    tl_path(s, sizeof s);
    struct sockaddr_un su;
    socklen_t len = path_addr(&su, p);
    int l = sock_at(SOCK_STREAM, &su, len);
    OK(listen(l, 8));
    /* the listener is the file's inode, wherever its name goes */
    OK(rename(p, q));
    OK(link(q, h));
    OK(symlink(q, s));
    const char *via[3] = {q, h, s};
    for (int i = 0; i < 3; i++) {
        struct sockaddr_un vu;
        socklen_t vl = path_addr(&vu, via[i]);
        int c = (int)OK(socket(AF_UNIX, SOCK_STREAM, 0));
        OK(connect(c, (struct sockaddr *)&vu, vl));
        int a = (int)OK(accept(l, NULL, NULL));
        /* the listener's name is still the one it was bound with */
        struct sockaddr_storage ss;
        CHECK_EQ(peer_of(c, &ss), len);
        CHECK(strcmp(((struct sockaddr_un *)&ss)->sun_path, p) == 0);
        close(a);
        close(c);
    }
    int c = (int)OK(socket(AF_UNIX, SOCK_STREAM, 0));
    CHECK_ERRNO(connect(c, (struct sockaddr *)&su, len), ENOENT);
    /* a symlink where a socket would be bound: the name is taken */
    struct sockaddr_un sl;
    socklen_t sll = path_addr(&sl, s);
    CHECK_ERRNO(bind(c, (struct sockaddr *)&sl, sll), EADDRINUSE);
    close(c);
    close(l);
    unlink(q);
    unlink(h);
    unlink(s);
}

TEST(names_relative_paths)
{
    char here[4096];
    CHECK(getcwd(here, sizeof here) != NULL);
    OK(chdir(tl_tmpdir()));
    struct sockaddr_un su;
    socklen_t len = path_addr(&su, "relative-sock");
    int fd = (int)OK(socket(AF_UNIX, SOCK_DGRAM, 0));
    int r = bind(fd, (struct sockaddr *)&su, len);
    int e = errno;
    int r2 = chdir(here);
    errno = e;
    OK(r);
    OK(r2);
    /* the name is what was given; the file is where the cwd was */
    struct sockaddr_storage ss;
    CHECK_EQ(name_of(fd, &ss), len);
    CHECK(strcmp(((struct sockaddr_un *)&ss)->sun_path, "relative-sock") == 0);
    char abs[256];
    snprintf(abs, sizeof abs, "%s/relative-sock", tl_tmpdir());
    struct sockaddr_un au;
    socklen_t al = path_addr(&au, abs);
    int s = (int)OK(socket(AF_UNIX, SOCK_DGRAM, 0));
    CHECK_EQ(OK(sendto(s, "r", 1, 0, (struct sockaddr *)&au, al)), 1);
    char c;
    CHECK_EQ(OK(recv(fd, &c, 1, MSG_DONTWAIT)), 1);
    close(s);
    close(fd);
    OK(unlink(abs));
}

/* ---- permissions ----------------------------------------------------------- */

struct perm_arg {
    char dir[108]; /* a directory the child may write in */
};

static void perms_unprivileged(void *arg)
{
    struct perm_arg *pa = arg;
    if (geteuid() == 0) {
        OK(setgroups(0, NULL));
        OK(setresgid(NOBODY, NOBODY, NOBODY));
        OK(setresuid(NOBODY, NOBODY, NOBODY));
    }
    char p[120], sub[120], r[120];
    snprintf(p, sizeof p, "%s/s", pa->dir);
    snprintf(sub, sizeof sub, "%s/d", pa->dir);
    snprintf(r, sizeof r, "%s/d/t", pa->dir);
    struct sockaddr_un su, ru;
    socklen_t len = path_addr(&su, p), rl = path_addr(&ru, r);
    /* connecting needs write permission on the socket file */
    int l = sock_at(SOCK_STREAM, &su, len);
    OK(listen(l, 8));
    OK(chmod(p, 0555));
    int c = (int)OK(socket(AF_UNIX, SOCK_STREAM, 0));
    CHECK_ERRNO(connect(c, (struct sockaddr *)&su, len), EACCES);
    OK(chmod(p, 0200)); /* write alone is enough */
    OK(connect(c, (struct sockaddr *)&su, len));
    close(c);
    close(l);
    /* datagrams: sendto and connect need it too */
    OK(mkdir(sub, 0700));
    int d = sock_at(SOCK_DGRAM, &ru, rl);
    OK(chmod(r, 0444));
    int s = (int)OK(socket(AF_UNIX, SOCK_DGRAM, 0));
    CHECK_ERRNO(sendto(s, "x", 1, 0, (struct sockaddr *)&ru, rl), EACCES);
    CHECK_ERRNO(connect(s, (struct sockaddr *)&ru, rl), EACCES);
    OK(chmod(r, 0666));
    CHECK_EQ(OK(sendto(s, "y", 1, 0, (struct sockaddr *)&ru, rl)), 1);
    /* search permission on every directory on the way */
    OK(chmod(sub, 0600));
    CHECK_ERRNO(sendto(s, "x", 1, 0, (struct sockaddr *)&ru, rl), EACCES);
    CHECK_ERRNO(connect(s, (struct sockaddr *)&ru, rl), EACCES);
    OK(chmod(sub, 0100)); /* search alone is enough */
    CHECK_EQ(OK(sendto(s, "z", 1, 0, (struct sockaddr *)&ru, rl)), 1);
    /* binding needs write (and search) permission on the directory */
    int b = (int)OK(socket(AF_UNIX, SOCK_STREAM, 0));
    struct sockaddr_un nu;
    char n[120];
    snprintf(n, sizeof n, "%s/d/new", pa->dir);
    socklen_t nl = path_addr(&nu, n);
    CHECK_ERRNO(bind(b, (struct sockaddr *)&nu, nl), EACCES);
    OK(chmod(sub, 0500));
    CHECK_ERRNO(bind(b, (struct sockaddr *)&nu, nl), EACCES);
    OK(chmod(sub, 0700));
    OK(bind(b, (struct sockaddr *)&nu, nl));
    char got[4];
    CHECK_EQ(OK(recv(d, got, sizeof got, MSG_DONTWAIT)), 1);
    CHECK_EQ(got[0], 'y');
    CHECK_EQ(OK(recv(d, got, sizeof got, MSG_DONTWAIT)), 1);
    CHECK_EQ(got[0], 'z');
    close(b);
    close(s);
    close(d);
}

TEST(names_eacces_unprivileged)
{
    struct perm_arg pa;
    tl_path(pa.dir, sizeof pa.dir);
    OK(mkdir(pa.dir, 0700));
    if (geteuid() == 0) {
        /* the child, uid NOBODY, must reach and own its directory */
        OK(chown(pa.dir, NOBODY, NOBODY));
        OK(chmod(tl_tmpdir(), 0711));
    }
    tl_child(perms_unprivileged, &pa);
}

TEST(names_root_passes_permissions)
{
    if (geteuid() != 0)
        t_skip("root", "connecting without write permission needs CAP_DAC_OVERRIDE");
    char p[108];
    tl_path(p, sizeof p);
    struct sockaddr_un su;
    socklen_t len = path_addr(&su, p);
    int l = sock_at(SOCK_STREAM, &su, len);
    OK(listen(l, 1));
    OK(chmod(p, 0));
    int c = (int)OK(socket(AF_UNIX, SOCK_STREAM, 0));
    OK(connect(c, (struct sockaddr *)&su, len));
    close(c);
    close(l);
}

/* ---- errors ----------------------------------------------------------------- */

TEST(names_econnrefused)
{
    char p[108];
    struct sockaddr_un su;
    socklen_t len;
    int c = (int)OK(socket(AF_UNIX, SOCK_STREAM, 0));
    int u = (int)OK(socket(AF_UNIX, SOCK_DGRAM, 0));
    /* a bound stream socket that is not listening */
    tl_path(p, sizeof p);
    len = path_addr(&su, p);
    int b = sock_at(SOCK_STREAM, &su, len);
    CHECK_ERRNO(connect(c, (struct sockaddr *)&su, len), ECONNREFUSED);
    /* a listener closed, its file left */
    OK(listen(b, 1));
    close(b);
    struct stat st;
    OK(stat(p, &st));
    CHECK_ERRNO(connect(c, (struct sockaddr *)&su, len), ECONNREFUSED);
    /* a datagram socket's file left behind */
    tl_path(p, sizeof p);
    len = path_addr(&su, p);
    close(sock_at(SOCK_DGRAM, &su, len));
    CHECK_ERRNO(sendto(u, "x", 1, 0, (struct sockaddr *)&su, len), ECONNREFUSED);
    CHECK_ERRNO(connect(u, (struct sockaddr *)&su, len), ECONNREFUSED);
    /* a file that is no socket: a regular file, a fifo */
    tl_path(p, sizeof p);
    len = path_addr(&su, p);
    close((int)OK(open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0666)));
    CHECK_ERRNO(connect(c, (struct sockaddr *)&su, len), ECONNREFUSED);
    CHECK_ERRNO(sendto(u, "x", 1, 0, (struct sockaddr *)&su, len), ECONNREFUSED);
    tl_path(p, sizeof p);
    len = path_addr(&su, p);
    OK(mkfifo(p, 0666));
    CHECK_ERRNO(connect(c, (struct sockaddr *)&su, len), ECONNREFUSED);
    /* an abstract name nobody has */
    struct sockaddr_storage ss;
    socklen_t sl;
    tl_addr(FAM_ABSTRACT, &ss, &sl);
    CHECK_ERRNO(connect(c, (struct sockaddr *)&ss, sl), ECONNREFUSED);
    CHECK_ERRNO(sendto(u, "x", 1, 0, (struct sockaddr *)&ss, sl), ECONNREFUSED);
    close(c);
    close(u);
}

TEST(names_enoent_enotdir)
{
    char p[108], f[108];
    struct sockaddr_un su;
    socklen_t len;
    int c = (int)OK(socket(AF_UNIX, SOCK_STREAM, 0));
    int u = (int)OK(socket(AF_UNIX, SOCK_DGRAM, 0));
    tl_path(p, sizeof p);
    len = path_addr(&su, p);
    CHECK_ERRNO(connect(c, (struct sockaddr *)&su, len), ENOENT);
    CHECK_ERRNO(sendto(u, "x", 1, 0, (struct sockaddr *)&su, len), ENOENT);
    CHECK_ERRNO(connect(u, (struct sockaddr *)&su, len), ENOENT);
    /* a missing directory on the way */
    char deep[120];
    snprintf(deep, sizeof deep, "%s/missing/s", p);
    len = path_addr(&su, deep);
    CHECK_ERRNO(connect(c, (struct sockaddr *)&su, len), ENOENT);
    CHECK_ERRNO(bind(c, (struct sockaddr *)&su, len), ENOENT);
    /* a file where a directory should be */
    tl_path(f, sizeof f);
    close((int)OK(open(f, O_CREAT | O_WRONLY | O_CLOEXEC, 0666)));
    snprintf(deep, sizeof deep, "%s/s", f);
    len = path_addr(&su, deep);
    CHECK_ERRNO(connect(c, (struct sockaddr *)&su, len), ENOTDIR);
    CHECK_ERRNO(bind(c, (struct sockaddr *)&su, len), ENOTDIR);
    CHECK_ERRNO(sendto(u, "x", 1, 0, (struct sockaddr *)&su, len), ENOTDIR);
    close(c);
    close(u);
}

TEST(names_eaddrinuse)
{
    char p[108];
    struct sockaddr_un su;
    socklen_t len;
    int types[3] = {SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET};
    for (int t = 0; t < 3; t++) {
        int fd = (int)OK(socket(AF_UNIX, types[t], 0));
        /* a live socket's path (of any type) */
        tl_path(p, sizeof p);
        len = path_addr(&su, p);
        int other = sock_at(types[(t + 1) % 3], &su, len);
        CHECK_ERRNO(bind(fd, (struct sockaddr *)&su, len), EADDRINUSE);
        close(other);
        /* a stale one */
        CHECK_ERRNO(bind(fd, (struct sockaddr *)&su, len), EADDRINUSE);
        /* a regular file, a directory, a dangling symlink */
        tl_path(p, sizeof p);
        len = path_addr(&su, p);
        close((int)OK(open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0666)));
        CHECK_ERRNO(bind(fd, (struct sockaddr *)&su, len), EADDRINUSE);
        tl_path(p, sizeof p);
        len = path_addr(&su, p);
        OK(mkdir(p, 0700));
        CHECK_ERRNO(bind(fd, (struct sockaddr *)&su, len), EADDRINUSE);
        tl_path(p, sizeof p);
        len = path_addr(&su, p);
        OK(symlink("/nonexistent/usock-target", p));
        CHECK_ERRNO(bind(fd, (struct sockaddr *)&su, len), EADDRINUSE);
        /* an abstract name in use by the same type */
        struct sockaddr_storage ss;
        socklen_t sl;
        tl_addr(FAM_ABSTRACT, &ss, &sl);
        other = (int)OK(socket(AF_UNIX, types[t], 0));
        OK(bind(other, (struct sockaddr *)&ss, sl));
        CHECK_ERRNO(bind(fd, (struct sockaddr *)&ss, sl), EADDRINUSE);
        close(other);
        OK(bind(fd, (struct sockaddr *)&ss, sl)); /* free at once */
        close(fd);
    }
}

TEST(names_einval)
{
    int fd = (int)OK(socket(AF_UNIX, SOCK_STREAM, 0));
    struct sockaddr_storage big;
    memset(&big, 0, sizeof big);
    struct sockaddr_un *su = (struct sockaddr_un *)&big;
    su->sun_family = AF_UNIX;
    snprintf(su->sun_path, sizeof su->sun_path, "%s/einval", tl_tmpdir());
    /* lengths: shorter than the family, longer than sockaddr_un */
    CHECK_ERRNO(bind(fd, (struct sockaddr *)su, 1), EINVAL);
    CHECK_ERRNO(bind(fd, (struct sockaddr *)su, 0), EINVAL);
    CHECK_ERRNO(bind(fd, (struct sockaddr *)su, sizeof(struct sockaddr_un) + 1), EINVAL);
    CHECK_ERRNO(connect(fd, (struct sockaddr *)su, sizeof(sa_family_t)), EINVAL);
    CHECK_ERRNO(connect(fd, (struct sockaddr *)su, sizeof(struct sockaddr_un) + 1), EINVAL);
    /* another family */
    su->sun_family = AF_INET;
    CHECK_ERRNO(bind(fd, (struct sockaddr *)su, sizeof(struct sockaddr_un)), EINVAL);
    CHECK_ERRNO(connect(fd, (struct sockaddr *)su, sizeof(struct sockaddr_un)), EINVAL);
    su->sun_family = AF_UNIX;
    /* bound twice */
    struct sockaddr_storage ss;
    socklen_t sl;
    tl_addr(FAM_ABSTRACT, &ss, &sl);
    OK(bind(fd, (struct sockaddr *)&ss, sl));
    tl_addr(FAM_ABSTRACT, &ss, &sl);
    CHECK_ERRNO(bind(fd, (struct sockaddr *)&ss, sl), EINVAL);
    /* a datagram socket cannot listen */
    int d = (int)OK(socket(AF_UNIX, SOCK_DGRAM, 0));
    CHECK_ERRNO(listen(d, 1), EOPNOTSUPP);
    close(d);
    /* a listener cannot connect; a connected socket is connected */
    OK(listen(fd, 1));
    int l2 = tl_listener(FAM_ABSTRACT, 1);
    socklen_t l2l = name_of(l2, &ss);
    CHECK_ERRNO(connect(fd, (struct sockaddr *)&ss, l2l), EINVAL);
    int c = (int)OK(socket(AF_UNIX, SOCK_STREAM, 0));
    OK(connect(c, (struct sockaddr *)&ss, l2l));
    CHECK_ERRNO(connect(c, (struct sockaddr *)&ss, l2l), EISCONN);
    /* listen() again on a connected socket */
    CHECK_ERRNO(listen(c, 1), EINVAL);
    close(c);
    close(l2);
    close(fd);
}

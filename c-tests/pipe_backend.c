/*
 * pipe_backend.c - a libuserspacesock backend written in C that carries
 * fragments over kernel pipes, and a test that drives it through the plain
 * POSIX calls.
 *
 * This program only makes sense linked with libuserspacesock (it registers
 * a backend through <userspacesock.h>); it is not one of the t_*.c programs
 * that are also built against the kernel's sockets.
 *
 * The backend
 * -----------
 * It claims AF_INET sockets whose address (at bind, connect or sendto) lies
 * in 127.77.0.0/16 and declines everything else, so the built-in loopback
 * backend still carries 127.0.0.1 and the rest.
 *
 * Transport: two "wires", each a kernel byte channel with a writer thread and
 * a reader thread:
 *   wire 0: a pipe (pipe2),
 *   wire 1: an AF_UNIX stream socketpair made with the raw syscall (the
 *           program is linked with the library, whose socketpair() would make
 *           a user-space pair).
 * Every fragment the frontend hands to the `write` op is encoded with
 * usock_frag_encode (its `conn` field set to the handle of the receiving
 * socket), queued in memory and signalled to the wire's writer thread, so the
 * op never blocks. The writer thread writes frames into the kernel channel;
 * the reader thread reads bytes back, decodes them with usock_frag_decode and
 * hands each fragment to the receiver with usock_upcall_deliver. Stream
 * fragments are only written within the credit the receiver granted, so the
 * in-memory queue is bounded by the receive windows.
 *
 * A stream connection's two directions use different wires (the connecting
 * side writes on its own wire, the accepted side on the other one), so both
 * kernel transports carry data in the test.
 *
 * Connections: a connect looks the listener up by address in the backend's
 * socket list, creates the accepted socket with usock_upcall_incoming,
 * exchanges the two handles, grants each side the other's receive window as
 * credit (usock_upcall_window + usock_upcall_credit) and completes both with
 * usock_upcall_connected. The `window` op forwards a receiver's new window to
 * its peer as credit. Datagrams are routed by destination address; the
 * encoded frame carries the sender's address as the source.
 *
 * Locking: one backend mutex protects the socket list and every socket's
 * addressing fields; it is never held across an upcall (an upcall may call
 * back into the backend, e.g. `close` of an aborted connection). A socket's
 * context is freed only by its own `close` op, after it left the list, so
 * code that finds a socket by handle under the mutex may use it while it
 * holds the mutex.
 */
#include "testlib.h"

#include <stdatomic.h>
#include <sys/syscall.h>
#include <userspacesock.h>

/* ---- the backend ------------------------------------------------------- */

#define PB_NET 0x7f4d0000u     /* 127.77.0.0 */
#define PB_MASK 0xffff0000u    /* /16 */
#define PB_NWIRES 2
#define PB_READBUF (2u << 20)  /* > the largest frame: 40 + 128 + 1 MiB */
#define PB_MAXPENDING 64       /* connectors parked on a full accept queue */

struct pb_frame {
    struct pb_frame *next;
    size_t len;
    uint8_t bytes[];
};

struct pb_stats {
    atomic_ullong frames_out;  /* frames written to the kernel channel */
    atomic_ullong bytes_out;   /* bytes written to the kernel channel */
    atomic_ullong frames_in;   /* frames decoded from the kernel channel */
    atomic_ullong bytes_in;    /* bytes read from the kernel channel */
    atomic_ullong payload_in;  /* payload bytes of the decoded frames */
};

struct pb_wire {
    const char *kind;
    int wfd, rfd;
    pthread_t writer, reader;
    pthread_mutex_t mu;        /* the queue */
    pthread_cond_t cv;
    struct pb_frame *head, *tail;
    int stop;
    struct pb_stats st;
};

struct pb_sock {
    struct pb_sock *next;      /* backend list */
    uint64_t handle;
    int type;
    int wire;                  /* the wire this socket writes on */
    /* under pb.mu: */
    int bound, listening, has_peer;
    struct sockaddr_in local, peer;
    uint64_t pending[PB_MAXPENDING];
    int npending;
    unsigned accept_gen;
    /* read without the lock on the data path: */
    _Atomic uint64_t peer_h;   /* stream: handle of the connected peer */
};

static struct {
    pthread_mutex_t mu;
    struct pb_sock *socks;
    unsigned next_port;
    unsigned next_wire;
    int64_t reg_id;
    struct pb_wire wire[PB_NWIRES];
    atomic_ullong claims_taken, claims_declined;
    atomic_ullong stream_frags, stream_bytes;  /* delivered */
    atomic_ullong dgram_frags, dgram_bytes;    /* delivered */
    atomic_ullong dgram_dropped;               /* no receiver, or full */
    atomic_ullong deliver_retries;             /* stream ENOBUFS (never expected) */
    atomic_ullong stale;                       /* receiver gone (EBADF) */
    atomic_ullong credits;                     /* windows forwarded as credit */
    atomic_ullong errors;                      /* decode/encode/IO errors */
    atomic_llong live;                         /* pb_sock contexts alive */
} pb = {.mu = PTHREAD_MUTEX_INITIALIZER};

static int pb_ours(const uint8_t *addr, uint32_t len)
{
    struct sockaddr_in sin;
    if (!addr || len < sizeof sin)
        return 0;
    memcpy(&sin, addr, sizeof sin);
    return sin.sin_family == AF_INET &&
           (ntohl(sin.sin_addr.s_addr) & PB_MASK) == PB_NET;
}

static int pb_same(const struct sockaddr_in *a, const struct sockaddr_in *b)
{
    return a->sin_addr.s_addr == b->sin_addr.s_addr && a->sin_port == b->sin_port;
}

/* Under pb.mu. */
static struct pb_sock *pb_find(uint64_t h)
{
    for (struct pb_sock *s = pb.socks; s; s = s->next)
        if (s->handle == h)
            return s;
    return NULL;
}

/* Under pb.mu: the socket of `type` bound to `a` (listening only if asked). */
static struct pb_sock *pb_lookup(const struct sockaddr_in *a, int type, int listening)
{
    for (struct pb_sock *s = pb.socks; s; s = s->next)
        if (s->bound && s->type == type && pb_same(&s->local, a) &&
            (!listening || s->listening))
            return s;
    return NULL;
}

static struct pb_sock *pb_new(uint64_t handle, int type, int wire)
{
    struct pb_sock *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->handle = handle;
    s->type = type;
    s->wire = wire;
    atomic_store(&s->peer_h, 0);
    atomic_fetch_add(&pb.live, 1);
    return s;
}

/* Under pb.mu: binds s to ip:port, choosing a port for port 0. */
static int pb_bind_locked(struct pb_sock *s, struct sockaddr_in want)
{
    if (s->bound)
        return -EINVAL;
    if ((ntohl(want.sin_addr.s_addr) & PB_MASK) != PB_NET)
        return -EADDRNOTAVAIL;
    if (want.sin_port == 0) {
        int found = 0;
        for (unsigned i = 0; i < 16384 && !found; i++) {
            unsigned p = 49152 + (pb.next_port++ % 16384);
            want.sin_port = htons((uint16_t)p);
            found = !pb_lookup(&want, s->type, 0);
        }
        if (!found)
            return -EADDRINUSE;
    } else if (pb_lookup(&want, s->type, 0)) {
        return -EADDRINUSE;
    }
    memset(&s->local, 0, sizeof s->local);
    s->local.sin_family = AF_INET;
    s->local.sin_addr = want.sin_addr;
    s->local.sin_port = want.sin_port;
    s->bound = 1;
    return 0;
}

/* Under pb.mu: what Linux does at connect/first sendto of an unbound socket
 * (the source address is the destination's: this is a host-local network). */
static int pb_autobind_locked(struct pb_sock *s, const struct sockaddr_in *dest)
{
    if (s->bound)
        return 0;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr = dest->sin_addr};
    return pb_bind_locked(s, a);
}

/* Queues an encoded frame on wire w; never blocks beyond a short lock. */
static int pb_send_frame(int w, const struct usock_fragment *f)
{
    size_t cap = 40 + (size_t)f->addr_len + f->len;
    struct pb_frame *fr = malloc(sizeof *fr + cap);
    if (!fr)
        return -ENOBUFS;
    int64_t n = usock_frag_encode(f, fr->bytes, cap);
    if (n <= 0) {
        free(fr);
        atomic_fetch_add(&pb.errors, 1);
        return n < 0 ? (int)n : -EINVAL;
    }
    fr->len = (size_t)n;
    fr->next = NULL;
    struct pb_wire *wi = &pb.wire[w];
    pthread_mutex_lock(&wi->mu);
    if (wi->tail)
        wi->tail->next = fr;
    else
        wi->head = fr;
    wi->tail = fr;
    pthread_cond_signal(&wi->cv);
    pthread_mutex_unlock(&wi->mu);
    return 0;
}

static void *pb_writer(void *arg)
{
    struct pb_wire *wi = arg;
    for (;;) {
        pthread_mutex_lock(&wi->mu);
        while (!wi->head && !wi->stop)
            pthread_cond_wait(&wi->cv, &wi->mu);
        struct pb_frame *list = wi->head;
        wi->head = wi->tail = NULL;
        int stop = wi->stop;
        pthread_mutex_unlock(&wi->mu);
        if (!list && stop)
            break;
        while (list) {
            struct pb_frame *fr = list;
            list = fr->next;
            size_t off = 0;
            while (off < fr->len) {
                ssize_t k = write(wi->wfd, fr->bytes + off, fr->len - off);
                if (k < 0 && errno == EINTR)
                    continue;
                if (k <= 0) {
                    atomic_fetch_add(&pb.errors, 1);
                    break;
                }
                off += (size_t)k;
                atomic_fetch_add(&wi->st.bytes_out, (unsigned long long)k);
            }
            atomic_fetch_add(&wi->st.frames_out, 1);
            free(fr);
        }
    }
    return NULL;
}

/* A stream fragment reached a receiver that is gone: its sender learns of it
 * as from a TCP reset. */
static void pb_peer_gone(uint64_t dead)
{
    uint64_t writer = 0;
    pthread_mutex_lock(&pb.mu);
    for (struct pb_sock *s = pb.socks; s; s = s->next) {
        uint64_t exp = dead;
        if (s->type == SOCK_STREAM &&
            atomic_compare_exchange_strong(&s->peer_h, &exp, 0)) {
            writer = s->handle;
            break;
        }
    }
    pthread_mutex_unlock(&pb.mu);
    if (writer)
        usock_upcall_reset(writer, ECONNRESET);
}

static void pb_dispatch(const struct usock_fragment *f)
{
    uint64_t h = f->conn;
    if (f->kind == USOCK_FRAG_STREAM) {
        for (;;) {
            int r = usock_upcall_deliver(h, f);
            if (r == 0) {
                atomic_fetch_add(&pb.stream_frags, 1);
                atomic_fetch_add(&pb.stream_bytes, f->len);
            } else if (r == -ENOBUFS) {
                /* Beyond the window: offer it again (reliable transport).
                 * Credit keeps senders inside the window, so this is not
                 * expected; the reader thread may wait, an op may not. */
                atomic_fetch_add(&pb.deliver_retries, 1);
                struct timespec ts = {0, 200000};
                nanosleep(&ts, NULL);
                continue;
            } else if (r == -EBADF) {
                atomic_fetch_add(&pb.stale, 1);
                if (f->len > 0)
                    pb_peer_gone(h);
            } else {
                atomic_fetch_add(&pb.errors, 1);
            }
            return;
        }
    }
    int r = usock_upcall_deliver(h, f);
    if (r == 0) {
        atomic_fetch_add(&pb.dgram_frags, 1);
        atomic_fetch_add(&pb.dgram_bytes, f->len);
    } else if (r == -ENOBUFS || r == -EBADF) {
        atomic_fetch_add(&pb.dgram_dropped, 1); /* as UDP does */
    } else {
        atomic_fetch_add(&pb.errors, 1);
    }
}

static void *pb_reader(void *arg)
{
    struct pb_wire *wi = arg;
    uint8_t *buf = malloc(PB_READBUF);
    size_t have = 0;
    if (!buf) {
        atomic_fetch_add(&pb.errors, 1);
        return NULL;
    }
    for (;;) {
        ssize_t k = read(wi->rfd, buf + have, PB_READBUF - have);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            if (k < 0 || have)
                atomic_fetch_add(&pb.errors, 1);
            break;
        }
        atomic_fetch_add(&wi->st.bytes_in, (unsigned long long)k);
        have += (size_t)k;
        size_t pos = 0;
        for (;;) {
            struct usock_fragment f;
            int64_t n = usock_frag_decode(buf + pos, have - pos, &f);
            if (n == 0)
                break;
            if (n < 0) {
                /* No resynchronisation on a byte stream: give up. */
                atomic_fetch_add(&pb.errors, 1);
                free(buf);
                return NULL;
            }
            atomic_fetch_add(&wi->st.frames_in, 1);
            atomic_fetch_add(&wi->st.payload_in, f.len);
            pb_dispatch(&f);
            pos += (size_t)n;
        }
        memmove(buf, buf + pos, have - pos);
        have -= pos;
    }
    free(buf);
    return NULL;
}

/* -- ops -- */

static struct pb_sock *PS(const struct usock_sock *s)
{
    return (struct pb_sock *)s->ctx;
}

static int pb_supports(void *ctx, const struct usock_sock_info *info)
{
    (void)ctx;
    return info->domain == AF_INET &&
           (info->ty == SOCK_STREAM || info->ty == SOCK_DGRAM);
}

static int pb_claim(void *ctx, uint64_t handle, const struct usock_sock_info *info,
                    int op, const uint8_t *addr, uint32_t addr_len, void **sock_ctx)
{
    (void)ctx;
    (void)op; /* LISTEN on an unbound socket comes with 0.0.0.0: declined */
    if (info->domain != AF_INET || !pb_ours(addr, addr_len)) {
        atomic_fetch_add(&pb.claims_declined, 1);
        return 0;
    }
    pthread_mutex_lock(&pb.mu);
    struct pb_sock *s = pb_new(handle, info->ty, (int)(pb.next_wire++ % PB_NWIRES));
    if (s) {
        s->next = pb.socks;
        pb.socks = s;
    }
    pthread_mutex_unlock(&pb.mu);
    if (!s)
        return -ENOMEM;
    atomic_fetch_add(&pb.claims_taken, 1);
    *sock_ctx = s;
    return 1;
}

static int pb_op_bind(void *ctx, const struct usock_sock *us, const uint8_t *addr,
                      uint32_t addr_len, uint8_t *out, uint32_t *out_len)
{
    (void)ctx;
    struct pb_sock *s = PS(us);
    struct sockaddr_in want;
    if (!s || addr_len < sizeof want || *out_len < sizeof want)
        return -EINVAL;
    memcpy(&want, addr, sizeof want);
    pthread_mutex_lock(&pb.mu);
    int r = pb_bind_locked(s, want);
    if (r == 0) {
        memcpy(out, &s->local, sizeof s->local);
        *out_len = sizeof s->local;
    }
    pthread_mutex_unlock(&pb.mu);
    return r;
}

static int pb_op_listen(void *ctx, const struct usock_sock *us, uint32_t backlog)
{
    (void)ctx;
    (void)backlog; /* the frontend keeps the accept queue and its limit */
    struct pb_sock *s = PS(us);
    int r = 0;
    pthread_mutex_lock(&pb.mu);
    if (!s->bound)
        r = -EINVAL; /* never happens: an unbound listen is not claimed */
    else if (s->type != SOCK_STREAM)
        r = -EOPNOTSUPP;
    else {
        struct pb_sock *o = pb_lookup(&s->local, SOCK_STREAM, 1);
        if (o && o != s)
            r = -EADDRINUSE;
        else
            s->listening = 1;
    }
    pthread_mutex_unlock(&pb.mu);
    return r;
}

/*
 * Offers connector `ch` (bound at `caddr`) to the listener `lh` (bound at
 * `laddr`). Called with no lock held. Returns 1 when the accept queue was
 * full and the connector was parked on the listener, 0 otherwise.
 */
static int pb_offer(uint64_t lh, const struct sockaddr_in *laddr, uint64_t ch,
                    const struct sockaddr_in *caddr, int cwire)
{
    struct pb_sock *child = pb_new(0, SOCK_STREAM, (cwire + 1) % PB_NWIRES);
    if (!child) {
        usock_upcall_refused(ch, ENOBUFS);
        return 0;
    }
    child->bound = 1;
    child->local = *laddr;
    child->peer = *caddr;
    child->has_peer = 1;
    atomic_store(&child->peer_h, ch);
    uint64_t acc = 0;
    int r = usock_upcall_incoming(lh, child, &acc);
    if (r != 0) {
        free(child);
        atomic_fetch_sub(&pb.live, 1);
        if (r == -EAGAIN)
            return 1;
        usock_upcall_refused(ch, ECONNREFUSED);
        return 0;
    }
    /* Publish the child, then point the connector at it. */
    pthread_mutex_lock(&pb.mu);
    child->handle = acc;
    child->next = pb.socks;
    pb.socks = child;
    struct pb_sock *c = pb_find(ch);
    if (c) {
        c->peer = *laddr;
        c->has_peer = 1;
        atomic_store(&c->peer_h, acc);
    }
    pthread_mutex_unlock(&pb.mu);
    if (!c) {
        /* The connector closed meanwhile: the child was never acceptable;
         * dropping it through `refused` makes the frontend close it. */
        usock_upcall_refused(acc, ECONNREFUSED);
        return 0;
    }
    /* Each side may send up to the other's receive window. */
    uint64_t w;
    if (usock_upcall_window(ch, &w) == 0)
        usock_upcall_credit(acc, w);
    if (usock_upcall_window(acc, &w) == 0)
        usock_upcall_credit(ch, w);
    if (usock_upcall_connected(acc) != 0) {
        /* The listener went away: the frontend dropped the child. */
        pthread_mutex_lock(&pb.mu);
        if ((c = pb_find(ch)) != NULL)
            atomic_store(&c->peer_h, 0);
        pthread_mutex_unlock(&pb.mu);
        usock_upcall_refused(ch, ECONNREFUSED);
        return 0;
    }
    usock_upcall_connected(ch);
    return 0;
}

/* Offers parked connectors to listener `lh` while its queue has room. */
static void pb_drain(uint64_t lh)
{
    for (;;) {
        pthread_mutex_lock(&pb.mu);
        struct pb_sock *l = pb_find(lh);
        if (!l || !l->npending) {
            pthread_mutex_unlock(&pb.mu);
            return;
        }
        uint64_t ch = l->pending[0];
        memmove(l->pending, l->pending + 1, (size_t)(--l->npending) * sizeof l->pending[0]);
        unsigned gen = l->accept_gen;
        struct sockaddr_in laddr = l->local;
        struct pb_sock *c = pb_find(ch);
        struct sockaddr_in caddr;
        int cwire = 0;
        if (c) {
            caddr = c->local;
            cwire = c->wire;
        }
        pthread_mutex_unlock(&pb.mu);
        if (!c)
            continue; /* the connector gave up */
        if (!pb_offer(lh, &laddr, ch, &caddr, cwire))
            continue;
        /* Still full: park it again at the front; if an accept happened
         * meanwhile (its drain may have found the list empty), retry. */
        int again = 0, refuse = 0;
        pthread_mutex_lock(&pb.mu);
        l = pb_find(lh);
        if (!l || !l->listening) {
            refuse = 1;
        } else {
            memmove(l->pending + 1, l->pending, (size_t)l->npending * sizeof l->pending[0]);
            l->pending[0] = ch;
            l->npending++;
            again = l->accept_gen != gen;
        }
        pthread_mutex_unlock(&pb.mu);
        if (refuse)
            usock_upcall_refused(ch, ECONNREFUSED);
        if (!again)
            return;
    }
}

static int pb_op_connect(void *ctx, const struct usock_sock *us, const uint8_t *addr,
                         uint32_t addr_len)
{
    (void)ctx;
    struct pb_sock *s = PS(us);
    struct sockaddr_in dest;
    if (addr_len < sizeof(sa_family_t))
        return -EINVAL;
    sa_family_t fam;
    memcpy(&fam, addr, sizeof fam);
    if (s->type == SOCK_DGRAM && fam == AF_UNSPEC) {
        pthread_mutex_lock(&pb.mu);
        s->has_peer = 0;
        pthread_mutex_unlock(&pb.mu);
        return 0;
    }
    if (addr_len < sizeof dest || fam != AF_INET)
        return -EAFNOSUPPORT;
    memcpy(&dest, addr, sizeof dest);
    if ((ntohl(dest.sin_addr.s_addr) & PB_MASK) != PB_NET)
        return -ENETUNREACH; /* a socket of ours cannot reach other nets */
    pthread_mutex_lock(&pb.mu);
    int r = pb_autobind_locked(s, &dest);
    if (r != 0 || s->type == SOCK_DGRAM) {
        if (r == 0) {
            memset(&s->peer, 0, sizeof s->peer);
            s->peer.sin_family = AF_INET;
            s->peer.sin_addr = dest.sin_addr;
            s->peer.sin_port = dest.sin_port;
            s->has_peer = 1;
        }
        pthread_mutex_unlock(&pb.mu);
        return r;
    }
    struct pb_sock *l = pb_lookup(&dest, SOCK_STREAM, 1);
    uint64_t lh = l ? l->handle : 0;
    struct sockaddr_in laddr = l ? l->local : dest;
    struct sockaddr_in caddr = s->local;
    pthread_mutex_unlock(&pb.mu);
    if (!lh) {
        usock_upcall_refused(s->handle, ECONNREFUSED);
        return 0;
    }
    if (pb_offer(lh, &laddr, s->handle, &caddr, s->wire)) {
        pthread_mutex_lock(&pb.mu);
        l = pb_find(lh);
        int parked = l && l->listening && l->npending < PB_MAXPENDING;
        if (parked)
            l->pending[l->npending++] = s->handle;
        pthread_mutex_unlock(&pb.mu);
        if (!parked)
            usock_upcall_refused(s->handle, ECONNREFUSED);
        else
            pb_drain(lh); /* an accept may have made room meanwhile */
    }
    return 0;
}

static void pb_op_accepted(void *ctx, const struct usock_sock *us)
{
    (void)ctx;
    pthread_mutex_lock(&pb.mu);
    PS(us)->accept_gen++;
    pthread_mutex_unlock(&pb.mu);
    pb_drain(us->handle);
}

static int pb_op_write(void *ctx, const struct usock_sock *us, const struct usock_fragment *f)
{
    (void)ctx;
    struct pb_sock *s = PS(us);
    if (!s)
        return -EINVAL;
    struct usock_fragment out = *f;
    if (f->kind == USOCK_FRAG_STREAM) {
        uint64_t peer = atomic_load(&s->peer_h);
        if (!peer) {
            if (f->len > 0)
                usock_upcall_reset(us->handle, ECONNRESET);
            return 0;
        }
        out.conn = peer;
        int r = pb_send_frame(s->wire, &out);
        if (r == 0 && (f->flags & USOCK_FLAG_RST))
            atomic_store(&s->peer_h, 0);
        return r;
    }
    /* Datagram: route by destination, carry the source address. */
    struct sockaddr_in dest;
    pthread_mutex_lock(&pb.mu);
    if (f->addr_len >= sizeof dest) {
        memcpy(&dest, f->addr, sizeof dest);
    } else if (s->has_peer) {
        dest = s->peer;
    } else {
        pthread_mutex_unlock(&pb.mu);
        return -EDESTADDRREQ;
    }
    int r = pb_autobind_locked(s, &dest);
    if (r != 0) {
        pthread_mutex_unlock(&pb.mu);
        return r;
    }
    struct sockaddr_in src = s->local;
    struct pb_sock *t = pb_lookup(&dest, SOCK_DGRAM, 0);
    /* A connected receiver takes datagrams from its peer only. */
    if (t && t->has_peer && !pb_same(&t->peer, &src))
        t = NULL;
    uint64_t th = t ? t->handle : 0;
    int connected = f->addr_len == 0;
    pthread_mutex_unlock(&pb.mu);
    if (!th) {
        atomic_fetch_add(&pb.dgram_dropped, 1);
        if (connected) /* the ICMP port unreachable a kernel would get */
            usock_upcall_error(us->handle, ECONNREFUSED);
        return 0;
    }
    out.conn = th;
    out.addr = (const uint8_t *)&src;
    out.addr_len = sizeof src;
    return pb_send_frame(s->wire, &out);
}

static void pb_op_window(void *ctx, const struct usock_sock *us, uint64_t limit)
{
    (void)ctx;
    uint64_t peer = atomic_load(&PS(us)->peer_h);
    if (peer && usock_upcall_credit(peer, limit) == 0)
        atomic_fetch_add(&pb.credits, 1);
}

static int pb_addr_out(const struct sockaddr_in *a, int have, uint8_t *out, uint32_t *out_len)
{
    if (!have)
        return -ENOTCONN;
    if (*out_len < sizeof *a)
        return -EINVAL;
    memcpy(out, a, sizeof *a);
    *out_len = sizeof *a;
    return 0;
}

static int pb_op_local_addr(void *ctx, const struct usock_sock *us, uint8_t *out, uint32_t *out_len)
{
    (void)ctx;
    struct pb_sock *s = PS(us);
    pthread_mutex_lock(&pb.mu);
    struct sockaddr_in a = s->local;
    int have = s->bound;
    pthread_mutex_unlock(&pb.mu);
    return pb_addr_out(&a, have, out, out_len);
}

static int pb_op_peer_addr(void *ctx, const struct usock_sock *us, uint8_t *out, uint32_t *out_len)
{
    (void)ctx;
    struct pb_sock *s = PS(us);
    pthread_mutex_lock(&pb.mu);
    struct sockaddr_in a = s->peer;
    int have = s->has_peer;
    pthread_mutex_unlock(&pb.mu);
    return pb_addr_out(&a, have, out, out_len);
}

static void pb_op_close(void *ctx, const struct usock_sock *us)
{
    (void)ctx;
    struct pb_sock *s = PS(us);
    if (!s)
        return;
    uint64_t refuse[PB_MAXPENDING];
    int nrefuse = 0;
    pthread_mutex_lock(&pb.mu);
    for (struct pb_sock **pp = &pb.socks; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    nrefuse = s->npending;
    memcpy(refuse, s->pending, (size_t)nrefuse * sizeof refuse[0]);
    pthread_mutex_unlock(&pb.mu);
    for (int i = 0; i < nrefuse; i++)
        usock_upcall_refused(refuse[i], ECONNREFUSED);
    free(s);
    atomic_fetch_sub(&pb.live, 1);
}

static const struct usock_backend_ops pb_ops = {
    .abi_version = USOCK_BACKEND_ABI_VERSION,
    .name = "pipe",
    .supports = pb_supports,
    .claim = pb_claim,
    .bind = pb_op_bind,
    .listen = pb_op_listen,
    .connect = pb_op_connect,
    .accepted = pb_op_accepted,
    .write = pb_op_write,
    .window = pb_op_window,
    .local_addr = pb_op_local_addr,
    .peer_addr = pb_op_peer_addr,
    .close = pb_op_close,
    /* shutdown, setsockopt: accepted as they are (NULL); socketpair: not
     * ours (AF_UNIX). */
};

static int pb_start(void)
{
    for (int i = 0; i < PB_NWIRES; i++) {
        struct pb_wire *wi = &pb.wire[i];
        int fds[2];
        if (i == 0) {
            wi->kind = "pipe";
            if (pipe2(fds, O_CLOEXEC) != 0)
                return -1;
            (void)fcntl(fds[1], F_SETPIPE_SZ, 1 << 20); /* fewer wakeups */
            wi->rfd = fds[0];
            wi->wfd = fds[1];
        } else {
            wi->kind = "kernel AF_UNIX socketpair";
            if (syscall(SYS_socketpair, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
                return -1;
            wi->wfd = fds[0];
            wi->rfd = fds[1];
        }
        pthread_mutex_init(&wi->mu, NULL);
        pthread_cond_init(&wi->cv, NULL);
        if (pthread_create(&wi->writer, NULL, pb_writer, wi) != 0 ||
            pthread_create(&wi->reader, NULL, pb_reader, wi) != 0)
            return -1;
    }
    pb.next_port = (unsigned)rand();
    pb.reg_id = usock_backend_register(&pb_ops, NULL, 100);
    return pb.reg_id > 0 ? 0 : -1;
}

/* Unregisters, flushes and stops the wires, joins the threads. */
static int pb_stop(void)
{
    int r = usock_backend_unregister(pb.reg_id);
    for (int i = 0; i < PB_NWIRES; i++) {
        struct pb_wire *wi = &pb.wire[i];
        pthread_mutex_lock(&wi->mu);
        wi->stop = 1;
        pthread_cond_signal(&wi->cv);
        pthread_mutex_unlock(&wi->mu);
        pthread_join(wi->writer, NULL);
        close(wi->wfd); /* the reader sees end-of-file after the last frame */
        pthread_join(wi->reader, NULL);
        close(wi->rfd);
        pthread_mutex_destroy(&wi->mu);
        pthread_cond_destroy(&wi->cv);
    }
    return r;
}

/* ---- the tests --------------------------------------------------------- */

#define STREAM_A (4u << 20)          /* client -> server */
#define STREAM_B ((3u << 20) + 12345) /* server -> client */

static int pb_started;

static struct sockaddr_in pb_addr(const char *ip, uint16_t port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

static struct sockaddr_in pb_name(int fd)
{
    struct sockaddr_in a;
    socklen_t l = sizeof a;
    memset(&a, 0, sizeof a);
    OK(getsockname(fd, (struct sockaddr *)&a, &l));
    CHECK_EQ(l, sizeof a);
    return a;
}

/* Waits up to 2 s for the counters of the kernel channels to agree: every
 * byte and frame written was read back. */
static int pb_quiet(void)
{
    for (int t = 0; t < 2000; t++) {
        int ok = 1;
        for (int i = 0; i < PB_NWIRES; i++) {
            struct pb_stats *st = &pb.wire[i].st;
            if (atomic_load(&st->bytes_out) != atomic_load(&st->bytes_in) ||
                atomic_load(&st->frames_out) != atomic_load(&st->frames_in))
                ok = 0;
        }
        if (ok)
            return 1;
        tl_sleep_ms(1);
    }
    return 0;
}

TEST(pipe_register)
{
    CHECK_EQ(pb_start(), 0);
    pb_started = 1;
    /* A table the library must refuse. */
    struct usock_backend_ops bad = pb_ops;
    bad.abi_version = 999;
    CHECK_EQ(usock_backend_register(&bad, NULL, 1), -EINVAL);
    bad = pb_ops;
    bad.write = NULL;
    CHECK_EQ(usock_backend_register(&bad, NULL, 1), -EINVAL);
}

struct sender {
    int fd;
    const uint8_t *buf;
    size_t len;
    unsigned seed;
};

static void *send_all(void *arg)
{
    struct sender *sd = arg;
    size_t off = 0;
    unsigned x = sd->seed;
    while (off < sd->len) {
        x = x * 1103515245u + 12345u;
        size_t n = 1 + (x >> 8) % 200000; /* odd sizes: several fragments, partial credit */
        if (n > sd->len - off)
            n = sd->len - off;
        ssize_t k = send(sd->fd, sd->buf + off, n, MSG_NOSIGNAL);
        CHECK(k > 0);
        off += (size_t)k;
    }
    OK(shutdown(sd->fd, SHUT_WR));
    return NULL;
}

TEST(pipe_stream_exchange)
{
    CHECK(pb_started);
    unsigned long long s0 = atomic_load(&pb.stream_bytes);
    unsigned long long cr0 = atomic_load(&pb.credits);
    unsigned long long p0[PB_NWIRES];
    for (int i = 0; i < PB_NWIRES; i++)
        p0[i] = atomic_load(&pb.wire[i].st.payload_in);

    int l = (int)OK(socket(AF_INET, SOCK_STREAM, 0));
    struct sockaddr_in la = pb_addr("127.77.0.1", 0), got;
    OK(bind(l, (struct sockaddr *)&la, sizeof la));
    socklen_t gl = sizeof got;
    OK(getsockname(l, (struct sockaddr *)&got, &gl));
    CHECK_EQ(gl, sizeof got);
    CHECK_EQ(got.sin_addr.s_addr, la.sin_addr.s_addr);
    CHECK(got.sin_port != 0); /* the backend chose a port */
    la = got;
    OK(listen(l, 8));
    /* The address is taken, by our backend's table. */
    int l2 = (int)OK(socket(AF_INET, SOCK_STREAM, 0));
    CHECK_ERRNO(bind(l2, (struct sockaddr *)&la, sizeof la), EADDRINUSE);
    OK(close(l2));

    int c = (int)OK(socket(AF_INET, SOCK_STREAM, 0));
    OK(connect(c, (struct sockaddr *)&la, sizeof la));
    struct sockaddr_in peer;
    socklen_t pl = sizeof peer;
    int s = (int)OK(accept(l, (struct sockaddr *)&peer, &pl));

    /* Names: the client was bound in 127.77/16 by the backend; each side
     * sees the other. */
    struct sockaddr_in cl, cp, sl, sp;
    socklen_t n1 = sizeof cl, n2 = sizeof cp, n3 = sizeof sl, n4 = sizeof sp;
    OK(getsockname(c, (struct sockaddr *)&cl, &n1));
    OK(getpeername(c, (struct sockaddr *)&cp, &n2));
    OK(getsockname(s, (struct sockaddr *)&sl, &n3));
    OK(getpeername(s, (struct sockaddr *)&sp, &n4));
    CHECK_EQ(ntohl(cl.sin_addr.s_addr) & PB_MASK, PB_NET);
    CHECK(cl.sin_port != 0);
    CHECK(pb_same(&cp, &la));
    CHECK(pb_same(&sl, &la));
    CHECK(pb_same(&sp, &cl));
    CHECK(pb_same(&peer, &cl));
    CHECK_EQ(pl, sizeof peer);

    uint8_t *a = malloc(STREAM_A), *b = malloc(STREAM_B);
    uint8_t *ra = malloc(STREAM_A + 1), *rb = malloc(STREAM_B + 1);
    CHECK(a && b && ra && rb);
    tl_fill(a, STREAM_A, 11);
    tl_fill(b, STREAM_B, 22);
    struct sender sa = {c, a, STREAM_A, 1}, sb = {s, b, STREAM_B, 2};
    pthread_t ta, tb;
    CHECK_EQ(pthread_create(&ta, NULL, send_all, &sa), 0);
    CHECK_EQ(pthread_create(&tb, NULL, send_all, &sb), 0);

    /* Receive both directions with poll until both ends report EOF; the
     * buffers have one spare byte so that excess data would be seen. */
    size_t gota = 0, gotb = 0;
    int eofa = 0, eofb = 0;
    while (!eofa || !eofb) {
        struct pollfd pf[2] = {{s, POLLIN, 0}, {c, POLLIN, 0}};
        CHECK(OK(poll(pf, 2, 10000)) > 0);
        if (!eofa && pf[0].revents) {
            ssize_t k = OK(recv(s, ra + gota, STREAM_A + 1 - gota, MSG_DONTWAIT));
            eofa = k == 0;
            gota += (size_t)k;
            CHECK(gota <= STREAM_A);
        }
        if (!eofb && pf[1].revents) {
            ssize_t k = OK(recv(c, rb + gotb, STREAM_B + 1 - gotb, MSG_DONTWAIT));
            eofb = k == 0;
            gotb += (size_t)k;
            CHECK(gotb <= STREAM_B);
        }
    }
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    CHECK_EQ(gota, STREAM_A);
    CHECK_EQ(gotb, STREAM_B);
    CHECK_EQ(tl_cksum(0, ra, STREAM_A), tl_cksum(0, a, STREAM_A));
    CHECK_EQ(tl_cksum(0, rb, STREAM_B), tl_cksum(0, b, STREAM_B));
    CHECK(memcmp(ra, a, STREAM_A) == 0);
    CHECK(memcmp(rb, b, STREAM_B) == 0);
    /* EOF stays EOF. */
    CHECK_EQ(recv(s, ra, 1, 0), 0);
    CHECK_EQ(recv(c, rb, 1, 0), 0);

    /* Every byte went through the kernel channels: the streams' payload was
     * decoded from them and delivered, each direction on its own wire. */
    CHECK(pb_quiet());
    CHECK_EQ(atomic_load(&pb.stream_bytes) - s0, (unsigned long long)STREAM_A + STREAM_B);
    unsigned long long pw[PB_NWIRES], ptotal = 0;
    for (int i = 0; i < PB_NWIRES; i++) {
        pw[i] = atomic_load(&pb.wire[i].st.payload_in) - p0[i];
        ptotal += pw[i];
    }
    CHECK_EQ(ptotal, (unsigned long long)STREAM_A + STREAM_B);
    CHECK((pw[0] == STREAM_A && pw[1] == STREAM_B) || (pw[0] == STREAM_B && pw[1] == STREAM_A));
    CHECK_EQ(atomic_load(&pb.errors), 0);
    /* Much more than one receive window went each way: the receivers'
     * windows reached the senders through the backend's `window` op. */
    CHECK(atomic_load(&pb.credits) - cr0 >= 2);
    printf("  stream: %u + %u bytes; wire %s carried %llu, wire %s carried %llu payload bytes\n",
           STREAM_A, STREAM_B, pb.wire[0].kind, pw[0], pb.wire[1].kind, pw[1]);

    OK(close(c));
    OK(close(s));
    OK(close(l));
    free(a);
    free(b);
    free(ra);
    free(rb);
}

TEST(pipe_refused)
{
    CHECK(pb_started);
    struct sockaddr_in nobody = pb_addr("127.77.9.9", 1);
    int c = (int)OK(socket(AF_INET, SOCK_STREAM, 0));
    CHECK_ERRNO(connect(c, (struct sockaddr *)&nobody, sizeof nobody), ECONNREFUSED);
    OK(close(c));
    /* Non-blocking: EINPROGRESS or the refusal at once; then SO_ERROR. */
    c = (int)OK(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
    int r = connect(c, (struct sockaddr *)&nobody, sizeof nobody);
    if (r == -1 && errno == EINPROGRESS) {
        CHECK(tl_poll1(c, POLLOUT, 5000) != 0);
        CHECK_EQ(tl_so_error(c), ECONNREFUSED);
    } else {
        CHECK_EQ(r, -1);
        CHECK_EQ(errno, ECONNREFUSED);
    }
    OK(close(c));
}

TEST(pipe_dgram_exchange)
{
    CHECK(pb_started);
    unsigned long long d0 = atomic_load(&pb.dgram_bytes);
    unsigned long long drop0 = atomic_load(&pb.dgram_dropped);
    unsigned long long total = 0;

    int a = (int)OK(socket(AF_INET, SOCK_DGRAM, 0));
    int b = (int)OK(socket(AF_INET, SOCK_DGRAM, 0));
    struct sockaddr_in aa = pb_addr("127.77.0.2", 0), ba = pb_addr("127.77.1.3", 5555);
    OK(bind(a, (struct sockaddr *)&aa, sizeof aa));
    OK(bind(b, (struct sockaddr *)&ba, sizeof ba));
    aa = pb_name(a);
    CHECK(aa.sin_port != 0);

    enum { N = 120, MAXD = 65000 };
    uint8_t *out = malloc(MAXD), *in = malloc(MAXD + 1);
    CHECK(out && in);
    for (int i = 0; i < N; i++) {
        size_t len = i == 7 ? 0 : (size_t)((i * 7919u) % MAXD);
        if (i == N - 1)
            len = MAXD; /* two fragments */
        tl_fill(out, len, (uint32_t)i);
        /* a -> b */
        CHECK_EQ(sendto(a, out, len, 0, (struct sockaddr *)&ba, sizeof ba), (ssize_t)len);
        CHECK(tl_poll1(b, POLLIN, 5000) & POLLIN);
        struct sockaddr_in from;
        socklen_t fl = sizeof from;
        ssize_t k = recvfrom(b, in, MAXD + 1, 0, (struct sockaddr *)&from, &fl);
        CHECK_EQ(k, (ssize_t)len);
        CHECK(memcmp(in, out, len) == 0);
        CHECK_EQ(fl, sizeof from);
        CHECK(pb_same(&from, &aa));
        /* echo b -> a, to the address it came from */
        CHECK_EQ(sendto(b, in, (size_t)k, 0, (struct sockaddr *)&from, fl), k);
        CHECK(tl_poll1(a, POLLIN, 5000) & POLLIN);
        fl = sizeof from;
        k = recvfrom(a, in, MAXD + 1, 0, (struct sockaddr *)&from, &fl);
        CHECK_EQ(k, (ssize_t)len);
        CHECK(memcmp(in, out, len) == 0);
        CHECK(pb_same(&from, &ba));
        total += 2 * len;
    }

    /* An unbound sender: claimed at sendto, bound by the backend. */
    int c = (int)OK(socket(AF_INET, SOCK_DGRAM, 0));
    CHECK_EQ(sendto(c, "hello", 5, 0, (struct sockaddr *)&ba, sizeof ba), 5);
    struct sockaddr_in from, cn;
    socklen_t fl = sizeof from;
    CHECK(tl_poll1(b, POLLIN, 5000) & POLLIN);
    CHECK_EQ(recvfrom(b, in, MAXD, 0, (struct sockaddr *)&from, &fl), 5);
    CHECK(memcmp(in, "hello", 5) == 0);
    cn = pb_name(c);
    CHECK(pb_same(&from, &cn));
    CHECK_EQ(ntohl(cn.sin_addr.s_addr) & PB_MASK, PB_NET);
    total += 5;

    /* Connected datagram sockets: send/recv, and getpeername. */
    OK(connect(c, (struct sockaddr *)&ba, sizeof ba));
    OK(connect(b, (struct sockaddr *)&cn, sizeof cn));
    struct sockaddr_in pn;
    socklen_t pnl = sizeof pn;
    OK(getpeername(b, (struct sockaddr *)&pn, &pnl));
    CHECK(pb_same(&pn, &cn));
    CHECK_EQ(send(c, "ping", 4, 0), 4);
    CHECK(tl_poll1(b, POLLIN, 5000) & POLLIN);
    CHECK_EQ(recv(b, in, MAXD, 0), 4);
    CHECK_EQ(send(b, "pong!", 5, 0), 5);
    CHECK(tl_poll1(c, POLLIN, 5000) & POLLIN);
    CHECK_EQ(recv(c, in, MAXD, 0), 5);
    CHECK(memcmp(in, "pong!", 5) == 0);
    total += 9;
    /* b is connected to c now: a's datagrams are not for it. */
    CHECK_EQ(sendto(a, "x", 1, 0, (struct sockaddr *)&ba, sizeof ba), 1);
    CHECK_EQ(tl_poll1(b, POLLIN, 100), 0);

    CHECK(pb_quiet());
    CHECK_EQ(atomic_load(&pb.dgram_bytes) - d0, total);
    CHECK_EQ(atomic_load(&pb.dgram_dropped) - drop0, 1); /* the "x" */
    CHECK_EQ(atomic_load(&pb.errors), 0);
    printf("  dgram: %llu payload bytes through the kernel channels\n", total);

    OK(close(a));
    OK(close(b));
    OK(close(c));
    free(out);
    free(in);
}

/* 127.0.0.1 is declined by the pipe backend: loopback carries it, and no byte
 * of it appears in the kernel channels. */
TEST(pipe_declines_loopback)
{
    CHECK(pb_started);
    unsigned long long dec0 = atomic_load(&pb.claims_declined);
    unsigned long long taken0 = atomic_load(&pb.claims_taken);
    unsigned long long bytes0[PB_NWIRES];
    for (int i = 0; i < PB_NWIRES; i++)
        bytes0[i] = atomic_load(&pb.wire[i].st.bytes_out);

    int c, s;
    tl_stream_pair(FAM_INET, &c, &s);
    struct sockaddr_in n;
    socklen_t nl = sizeof n;
    OK(getsockname(s, (struct sockaddr *)&n, &nl));
    CHECK_EQ(ntohl(n.sin_addr.s_addr), INADDR_LOOPBACK);
    enum { M = 256 * 1024 };
    uint8_t *buf = malloc(M), *got = malloc(M);
    CHECK(buf && got);
    tl_fill(buf, M, 99);
    struct sender sd = {c, buf, M, 3};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, send_all, &sd), 0);
    CHECK_EQ(tl_read_all(s, got, M), M);
    pthread_join(t, NULL);
    CHECK(memcmp(got, buf, M) == 0);
    OK(close(c));
    OK(close(s));

    int a, b;
    tl_dgram_pair(FAM_INET, &a, &b);
    CHECK_EQ(send(a, "lo", 2, 0), 2);
    CHECK(tl_poll1(b, POLLIN, 5000) & POLLIN);
    CHECK_EQ(recv(b, got, M, 0), 2);
    OK(close(a));
    OK(close(b));

    CHECK(atomic_load(&pb.claims_declined) > dec0); /* it was asked, and declined */
    CHECK_EQ(atomic_load(&pb.claims_taken), taken0);
    for (int i = 0; i < PB_NWIRES; i++)
        CHECK_EQ(atomic_load(&pb.wire[i].st.bytes_out), bytes0[i]);
    free(buf);
    free(got);
}

/* Last: every socket context was closed, the wires drained, the threads end. */
TEST(pipe_teardown)
{
    CHECK(pb_started);
    for (int t = 0; t < 2000 && atomic_load(&pb.live) != 0; t++)
        tl_sleep_ms(1);
    CHECK_EQ(atomic_load(&pb.live), 0);
    CHECK(pb_quiet());
    CHECK_EQ(pb_stop(), 0);
    pb_started = 0;
    unsigned long long frames = 0, bytes = 0;
    for (int i = 0; i < PB_NWIRES; i++) {
        struct pb_stats *st = &pb.wire[i].st;
        CHECK_EQ(atomic_load(&st->frames_out), atomic_load(&st->frames_in));
        CHECK_EQ(atomic_load(&st->bytes_out), atomic_load(&st->bytes_in));
        frames += atomic_load(&st->frames_in);
        bytes += atomic_load(&st->bytes_in);
    }
    CHECK_EQ(atomic_load(&pb.errors), 0);
    CHECK_EQ(atomic_load(&pb.deliver_retries), 0);
    printf("  %llu frames, %llu bytes through the kernel pipe and socketpair; "
           "%llu stream, %llu dgram payload bytes delivered\n",
           frames, bytes, (unsigned long long)atomic_load(&pb.stream_bytes),
           (unsigned long long)atomic_load(&pb.dgram_bytes));
}

/* Under TSan: libuserspacesock is not instrumented, so TSan cannot see the
 * atomics that order its Socket Buffer's producer (our reader threads,
 * delivering) and consumer (recv in the application thread), yet it
 * intercepts the library's memcpy/calloc and reports those as races. Only
 * calls from instrumented code (this program) are checked. */
#if defined(__SANITIZE_THREAD__)
#define PB_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define PB_TSAN 1
#endif
#endif
#ifdef PB_TSAN
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
    return "ignore_noninstrumented_modules=1";
}
#endif

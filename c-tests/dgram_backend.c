/*
 * dgram_backend.c - a second libuserspacesock backend written in C, from
 * <userspacesock.h> alone, and a test that drives it through the plain POSIX
 * calls. Linked with the library only (it registers a backend).
 *
 * The backend
 * -----------
 * Claims AF_INET sockets (SOCK_STREAM and SOCK_DGRAM) whose address at bind,
 * connect or sendto lies in 127.88.0.0/16; everything else is declined and
 * stays with the built-in loopback backend.
 *
 * Transport: ONE kernel AF_UNIX SOCK_DGRAM socketpair, made with the raw
 * syscall (the program is linked with the library, whose socketpair() would
 * make a user-space pair), used in both directions as two "wires":
 *   wire 0: sent on sv[0], received on sv[1]
 *   wire 1: sent on sv[1], received on sv[0]
 * Each wire has a sender thread (the `write` op only queues, it never
 * blocks) and a receiver thread. Every kernel datagram is one frame:
 *   envelope (struct db_env: magic, type, src id, dst id, seq, arg)
 *   + a fragment in the portable encoding (usock_frag_encode) or an address.
 *
 * Ordering is the backend's own: a "flow" is (source socket, destination
 * socket); each flow numbers its frames from 0 and frame n goes on wire n&1,
 * and each sender thread swaps adjacent frames of its queue (DB_SHUFFLE), so
 * frames do arrive out of order. The receiving side keeps, per flow, the next
 * expected sequence number and a hold-back list; frames are handed to the
 * library (usock_upcall_*) strictly in sequence, by one thread at a time per
 * socket. Duplicates (seq below the expected one) are dropped.
 *
 * Connections: connect() sends a REQ frame carrying the destination address
 * and the connector's receive window. The receiving thread plays the remote
 * side: it finds the listener by address (none, or not listening: a REFUSE
 * frame back, so the connector gets ECONNREFUSED), creates the accepted socket
 * with usock_upcall_incoming, grants it the connector's window as credit,
 * sends ACK (seq 0 of the flow accepted->connector, so no data can overtake
 * it) carrying the accepted socket's window, and completes it with
 * usock_upcall_connected. The ACK, received, gives the connector its credit
 * and completes its connect. A `window` op sends a CREDIT frame to the peer,
 * whose receiver raises the peer's credit.
 *
 * Datagrams are routed by destination address (resolved in the backend's
 * socket table at send time); the frame's fragment carries the sender's
 * address as source. Datagram ids are renumbered per receiving socket (two
 * senders may use the same id). A datagram the receiver cannot hold
 * (-ENOBUFS) is dropped and counted, as the header says. The send queue is
 * bounded for datagrams: `write` returns -EAGAIN above DB_DGRAM_QMAX queued
 * bytes and usock_upcall_writable is called when it drains.
 *
 * Locking: db.mu (the socket table) and each socket's mu are never held
 * across an upcall. A socket context has a reference count; the `close` op
 * takes it out of the table and drops the table's reference.
 */
#include "testlib.h"

#include <stdatomic.h>
#include <sys/syscall.h>
#include <userspacesock.h>

#define DB_MAGIC 0x55444231u /* "UDB1" */
#define DB_CHUNK 32768u      /* payload bytes per kernel datagram at most */
#define DB_FRAME_MAX (sizeof(struct db_env) + 40 + 128 + DB_CHUNK)
#define DB_DGRAM_QMAX (1u << 20)
#define DB_NET 0x7f580000u /* 127.88.0.0/16 */
#define DB_SHUFFLE 1

enum { T_FRAG = 1, T_ACK, T_CREDIT, T_REQ, T_REFUSE, T_RESET, T_STOP };
/* Frames in a flow's sequence: FRAG and ACK. The others carry no sequence. */

struct db_env {
    uint32_t magic;
    uint16_t type;
    uint16_t pad;
    uint64_t src, dst, seq, arg;
};

struct db_frame {
    struct db_frame *next;
    size_t len;
    int dgram; /* counts against the datagram queue limit */
    uint8_t buf[];
};

struct db_wire {
    int sfd, rfd;
    pthread_t sender, receiver;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct db_frame *head, *tail;
    int stop;
};

struct db_txflow {
    struct db_txflow *next;
    uint64_t dst, next_seq;
};

struct db_held {
    struct db_held *next;
    struct db_env env;
    size_t len; /* payload after the envelope */
    uint8_t *p;
};

#define DB_DGMAP 8
struct db_rxflow {
    struct db_rxflow *next;
    uint64_t src, next_seq;
    int stalled;
    struct db_held *held; /* sorted by seq */
    uint64_t map_from[DB_DGMAP], map_to[DB_DGMAP];
    unsigned map_i;
};

struct db_sock {
    struct db_sock *next; /* in db.socks */
    pthread_mutex_t mu;
    int refs;             /* under db.mu */
    uint64_t id, handle;
    int type;
    int bound, listening, has_peer;
    struct sockaddr_in local, peer;
    uint64_t peer_id; /* stream: the connected socket's id */
    struct db_txflow *tx;
    struct db_rxflow *rx;
    int draining;
    uint64_t wgen;
    uint64_t next_dgram_id;
};

static struct {
    pthread_mutex_t mu;
    struct db_sock *socks;
    uint64_t next_id;
    unsigned next_port;
    struct db_wire wire[2];
    int64_t reg_id;
    atomic_size_t dgram_queued;
    atomic_ullong published; /* see db_ctx */
    uint64_t blocked[64]; /* dgram sockets refused with -EAGAIN */
    int nblocked;
    /* statistics, checked by the tests */
    atomic_ullong frames_out[2], frames_in[2], out_of_order, delivered, dgram_dropped,
        credits, refused, stream_bytes, dgram_frames;
} db = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* ---- kernel calls (raw: the library's names would route to itself) ---- */

static long k_send(int fd, const void *b, size_t n)
{
    return syscall(SYS_sendto, fd, b, n, 0, NULL, 0);
}
static long k_recv(int fd, void *b, size_t n)
{
    return syscall(SYS_recvfrom, fd, b, n, 0, NULL, NULL);
}

/* ---- socket table ------------------------------------------------------ */

static int db_in_net(const uint8_t *addr, uint32_t len)
{
    struct sockaddr_in a;
    if (!addr || len < sizeof a)
        return 0;
    memcpy(&a, addr, sizeof a);
    return a.sin_family == AF_INET && (ntohl(a.sin_addr.s_addr) & 0xffff0000u) == DB_NET;
}

static struct db_sock *db_get(uint64_t id) /* a reference, or NULL */
{
    pthread_mutex_lock(&db.mu);
    struct db_sock *s = db.socks;
    while (s && s->id != id)
        s = s->next;
    if (s)
        s->refs++;
    pthread_mutex_unlock(&db.mu);
    return s;
}

/* The socket bound to a, of type ty (listening only if want_listen). */
static struct db_sock *db_find_addr(const struct sockaddr_in *a, int ty, int want_listen)
{
    pthread_mutex_lock(&db.mu);
    struct db_sock *s, *r = NULL;
    for (s = db.socks; s; s = s->next) {
        pthread_mutex_lock(&s->mu);
        int m = s->bound && s->type == ty && s->local.sin_port == a->sin_port &&
                s->local.sin_addr.s_addr == a->sin_addr.s_addr &&
                (!want_listen || s->listening);
        pthread_mutex_unlock(&s->mu);
        if (m) {
            r = s;
            r->refs++;
            break;
        }
    }
    pthread_mutex_unlock(&db.mu);
    return r;
}

static void db_put(struct db_sock *s)
{
    pthread_mutex_lock(&db.mu);
    int last = --s->refs == 0;
    pthread_mutex_unlock(&db.mu);
    if (!last)
        return;
    while (s->tx) {
        struct db_txflow *t = s->tx;
        s->tx = t->next;
        free(t);
    }
    while (s->rx) {
        struct db_rxflow *r = s->rx;
        s->rx = r->next;
        while (r->held) {
            struct db_held *h = r->held;
            r->held = h->next;
            free(h);
        }
        free(r);
    }
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static struct db_sock *db_new_sock(uint64_t handle, int type)
{
    struct db_sock *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    pthread_mutex_init(&s->mu, NULL);
    s->handle = handle;
    s->type = type;
    s->refs = 1; /* the table's */
    pthread_mutex_lock(&db.mu);
    s->id = ++db.next_id;
    s->next = db.socks;
    db.socks = s;
    pthread_mutex_unlock(&db.mu);
    atomic_fetch_add(&db.published, 1); /* release: see db_ctx */
    return s;
}

/* A socket's context, as an operation sees it. A context made by a receiver
 * thread (the accepted side) reaches the application's thread through the
 * library; the library's own synchronisation is invisible to TSan when it is
 * not instrumented (usock-tsan), so the acquire here pairs with the release
 * in db_new_sock to make the hand-over visible. */
static struct db_sock *db_ctx(const struct usock_sock *so)
{
    (void)atomic_load(&db.published);
    return so->ctx;
}

/* Binds s to ip:port (port 0: a free one). Caller holds no lock. */
static int db_do_bind(struct db_sock *s, uint32_t ip, uint16_t port)
{
    pthread_mutex_lock(&db.mu);
    for (int tries = 0; tries < 16384; tries++) {
        uint16_t p = port ? port : (uint16_t)(49152 + (db.next_port++ % 16384));
        int used = 0;
        for (struct db_sock *o = db.socks; o && !used; o = o->next) {
            if (o == s)
                continue;
            pthread_mutex_lock(&o->mu);
            used = o->bound && o->type == s->type && o->local.sin_port == htons(p) &&
                   o->local.sin_addr.s_addr == ip;
            pthread_mutex_unlock(&o->mu);
        }
        if (!used) {
            pthread_mutex_lock(&s->mu);
            s->local = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(p)};
            s->local.sin_addr.s_addr = ip;
            s->bound = 1;
            pthread_mutex_unlock(&s->mu);
            pthread_mutex_unlock(&db.mu);
            return 0;
        }
        if (port)
            break;
    }
    pthread_mutex_unlock(&db.mu);
    return port ? -EADDRINUSE : -EAGAIN;
}

/* ---- sending ----------------------------------------------------------- */

static void db_queue(int w, struct db_frame *fr)
{
    struct db_wire *wi = &db.wire[w];
    pthread_mutex_lock(&wi->mu);
    fr->next = NULL;
    if (wi->tail)
        wi->tail->next = fr;
    else
        wi->head = fr;
    wi->tail = fr;
    pthread_cond_signal(&wi->cv);
    pthread_mutex_unlock(&wi->mu);
}

static struct db_frame *db_frame_new(int type, uint64_t src, uint64_t dst, uint64_t seq,
                                     uint64_t arg, size_t cap)
{
    struct db_frame *fr = malloc(sizeof *fr + sizeof(struct db_env) + cap);
    if (!fr)
        return NULL;
    struct db_env e = {.magic = DB_MAGIC, .type = (uint16_t)type, .src = src, .dst = dst,
                       .seq = seq, .arg = arg};
    memcpy(fr->buf, &e, sizeof e);
    fr->len = sizeof e;
    fr->dgram = 0;
    return fr;
}

/* Next sequence number of the flow s -> dst. */
static uint64_t db_next_seq(struct db_sock *s, uint64_t dst)
{
    pthread_mutex_lock(&s->mu);
    struct db_txflow *t = s->tx;
    while (t && t->dst != dst)
        t = t->next;
    if (!t) {
        t = calloc(1, sizeof *t);
        if (!t) {
            pthread_mutex_unlock(&s->mu);
            abort();
        }
        t->dst = dst;
        t->next = s->tx;
        s->tx = t;
    }
    uint64_t q = t->next_seq++;
    pthread_mutex_unlock(&s->mu);
    return q;
}

/* An unsequenced control frame (REQ, REFUSE, RESET, CREDIT) on wire 0. */
static void db_send_ctl(int type, uint64_t src, uint64_t dst, uint64_t arg, const void *p,
                        size_t n)
{
    struct db_frame *fr = db_frame_new(type, src, dst, 0, arg, n);
    if (!fr)
        return;
    if (n)
        memcpy(fr->buf + fr->len, p, n);
    fr->len += n;
    db_queue((int)(dst & 1), fr);
}

static void *db_sender(void *arg)
{
    struct db_wire *wi = arg;
    int w = (int)(wi - db.wire);
    for (;;) {
        pthread_mutex_lock(&wi->mu);
        while (!wi->head && !wi->stop)
            pthread_cond_wait(&wi->cv, &wi->mu);
        struct db_frame *a = wi->head;
        if (!a) {
            pthread_mutex_unlock(&wi->mu);
            break;
        }
        wi->head = a->next;
        struct db_frame *b = NULL;
        if (DB_SHUFFLE && wi->head) { /* send the next one first */
            b = wi->head;
            wi->head = b->next;
        }
        if (!wi->head)
            wi->tail = NULL;
        pthread_mutex_unlock(&wi->mu);
        struct db_frame *order[2] = {b ? b : a, b ? a : NULL};
        for (int i = 0; i < 2 && order[i]; i++) {
            struct db_frame *fr = order[i];
            while (k_send(wi->sfd, fr->buf, fr->len) < 0 && errno == EINTR)
                ;
            atomic_fetch_add(&db.frames_out[w], 1);
            if (fr->dgram) {
                size_t left = atomic_fetch_sub(&db.dgram_queued, fr->len) - fr->len;
                if (left < DB_DGRAM_QMAX / 2) {
                    uint64_t wake[64];
                    int n;
                    pthread_mutex_lock(&db.mu);
                    n = db.nblocked;
                    memcpy(wake, db.blocked, sizeof wake);
                    db.nblocked = 0;
                    pthread_mutex_unlock(&db.mu);
                    for (int k = 0; k < n; k++)
                        usock_upcall_writable(wake[k]);
                }
            }
            free(fr);
        }
    }
    /* end marker for the receiver of this wire */
    struct db_env e = {.magic = DB_MAGIC, .type = T_STOP};
    k_send(wi->sfd, &e, sizeof e);
    return NULL;
}

/* ---- receiving: in-order hand-over to the library ----------------------- */

static void db_reset_peer(uint64_t src, uint64_t dst)
{
    /* A frame for a socket that is gone: tell the sender, like an RST. */
    db_send_ctl(T_RESET, dst, src, ECONNRESET, NULL, 0);
}

/* Handles one in-sequence frame of s; returns -ENOBUFS to keep it. */
static int db_apply(struct db_sock *s, struct db_rxflow *r, const struct db_held *h)
{
    if (h->env.type == T_ACK) {
        pthread_mutex_lock(&s->mu);
        s->peer_id = h->env.src;
        pthread_mutex_unlock(&s->mu);
        usock_upcall_credit(s->handle, h->env.arg);
        usock_upcall_connected(s->handle);
        return 0;
    }
    struct usock_fragment f;
    if (usock_frag_decode(h->p, h->len, &f) <= 0)
        return 0; /* cannot happen: we encoded it */
    if (f.kind == USOCK_FRAG_DGRAM) {
        /* renumber: ids are the sender's, the receiver needs its own */
        uint64_t id = 0;
        pthread_mutex_lock(&s->mu);
        for (unsigned i = 0; i < DB_DGMAP; i++)
            if (r->map_to[i] && r->map_from[i] == f.offset)
                id = r->map_to[i];
        if (!id) {
            id = ++s->next_dgram_id;
            r->map_from[r->map_i % DB_DGMAP] = f.offset;
            r->map_to[r->map_i++ % DB_DGMAP] = id;
        }
        pthread_mutex_unlock(&s->mu);
        f.offset = id;
    }
    f.conn = 0;
    int rc = usock_upcall_deliver(s->handle, &f);
    if (rc == -ENOBUFS && f.kind == USOCK_FRAG_DGRAM) {
        atomic_fetch_add(&db.dgram_dropped, 1);
        return 0;
    }
    if (rc == 0)
        atomic_fetch_add(&db.delivered, 1);
    return rc == -ENOBUFS ? rc : 0;
}

/* Delivers every frame of s that is next in its flow; one thread at a time. */
static void db_drain(struct db_sock *s)
{
    pthread_mutex_lock(&s->mu);
    if (s->draining) {
        s->wgen++; /* the drainer looks again */
        pthread_mutex_unlock(&s->mu);
        return;
    }
    s->draining = 1;
    for (;;) {
        struct db_rxflow *r;
        for (r = s->rx; r; r = r->next)
            if (!r->stalled && r->held && r->held->env.seq == r->next_seq)
                break;
        if (!r)
            break;
        struct db_held *h = r->held;
        r->held = h->next;
        uint64_t gen = s->wgen;
        pthread_mutex_unlock(&s->mu);
        int rc = db_apply(s, r, h);
        pthread_mutex_lock(&s->mu);
        if (rc == -ENOBUFS) {
            h->next = r->held;
            r->held = h;
            if (gen == s->wgen)
                r->stalled = 1; /* until the window moves */
            continue;
        }
        r->next_seq++;
        free(h);
    }
    s->draining = 0;
    pthread_mutex_unlock(&s->mu);
}

static void db_rx_seq(struct db_sock *s, const struct db_env *e, const uint8_t *p, size_t n)
{
    struct db_held *h = malloc(sizeof *h + n);
    if (!h)
        return;
    h->env = *e;
    h->len = n;
    h->p = (uint8_t *)(h + 1);
    memcpy(h->p, p, n);
    pthread_mutex_lock(&s->mu);
    struct db_rxflow *r = s->rx;
    while (r && r->src != e->src)
        r = r->next;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r)
            abort();
        r->src = e->src;
        r->next = s->rx;
        s->rx = r;
    }
    if (e->seq < r->next_seq) { /* a duplicate */
        pthread_mutex_unlock(&s->mu);
        free(h);
        return;
    }
    if (e->seq != r->next_seq)
        atomic_fetch_add(&db.out_of_order, 1);
    struct db_held **pp = &r->held;
    while (*pp && (*pp)->env.seq < e->seq)
        pp = &(*pp)->next;
    if (*pp && (*pp)->env.seq == e->seq) {
        pthread_mutex_unlock(&s->mu);
        free(h);
        return;
    }
    h->next = *pp;
    *pp = h;
    pthread_mutex_unlock(&s->mu);
    db_drain(s);
}

/* A connection request reached "the remote side". */
static void db_rx_req(const struct db_env *e, const uint8_t *p, size_t n)
{
    struct sockaddr_in dst, src;
    if (n < 2 * sizeof dst)
        return;
    memcpy(&dst, p, sizeof dst);
    memcpy(&src, p + sizeof dst, sizeof src);
    struct db_sock *l = db_find_addr(&dst, SOCK_STREAM, 1);
    if (!l) {
        atomic_fetch_add(&db.refused, 1);
        db_send_ctl(T_REFUSE, 0, e->src, ECONNREFUSED, NULL, 0);
        return;
    }
    struct db_sock *a = db_new_sock(0, SOCK_STREAM);
    if (!a) {
        db_put(l);
        db_send_ctl(T_REFUSE, 0, e->src, ENOMEM, NULL, 0);
        return;
    }
    pthread_mutex_lock(&l->mu);
    struct sockaddr_in la = l->local;
    pthread_mutex_unlock(&l->mu);
    pthread_mutex_lock(&a->mu);
    a->local = la; /* not "bound": the port stays the listener's */
    a->has_peer = 1;
    a->peer = src;
    a->peer_id = e->src;
    pthread_mutex_unlock(&a->mu);
    uint64_t h;
    int rc = usock_upcall_incoming(l->handle, a, &h);
    db_put(l);
    if (rc != 0) {
        atomic_fetch_add(&db.refused, 1);
        /* out of the table again; the library never saw it */
        pthread_mutex_lock(&db.mu);
        for (struct db_sock **pp = &db.socks; *pp; pp = &(*pp)->next)
            if (*pp == a) {
                *pp = a->next;
                break;
            }
        pthread_mutex_unlock(&db.mu);
        db_put(a);
        db_send_ctl(T_REFUSE, 0, e->src, rc == -EAGAIN ? ECONNREFUSED : (uint64_t)-rc, NULL,
                    0);
        return;
    }
    pthread_mutex_lock(&a->mu);
    a->handle = h;
    pthread_mutex_unlock(&a->mu);
    usock_upcall_credit(h, e->arg); /* the connector's window */
    uint64_t win = 0;
    usock_upcall_window(h, &win);
    struct db_frame *fr = db_frame_new(T_ACK, a->id, e->src, db_next_seq(a, e->src), win, 0);
    if (fr)
        db_queue(0, fr); /* seq 0 */
    usock_upcall_connected(h);
}

static void db_rx_frame(const uint8_t *buf, size_t n)
{
    struct db_env e;
    if (n < sizeof e)
        return;
    memcpy(&e, buf, sizeof e);
    if (e.magic != DB_MAGIC)
        return;
    const uint8_t *p = buf + sizeof e;
    size_t pn = n - sizeof e;
    if (e.type == T_REQ) {
        db_rx_req(&e, p, pn);
        return;
    }
    struct db_sock *s = db_get(e.dst);
    if (!s) {
        if (e.type == T_FRAG || e.type == T_ACK) {
            struct usock_fragment f;
            if (e.type == T_ACK ||
                (usock_frag_decode(p, pn, &f) > 0 && f.kind == USOCK_FRAG_STREAM &&
                 !(f.flags & USOCK_FLAG_RST)))
                db_reset_peer(e.src, e.dst);
        }
        return;
    }
    switch (e.type) {
    case T_FRAG:
    case T_ACK:
        db_rx_seq(s, &e, p, pn);
        break;
    case T_CREDIT:
        atomic_fetch_add(&db.credits, 1);
        usock_upcall_credit(s->handle, e.arg);
        break;
    case T_REFUSE:
        usock_upcall_refused(s->handle, (int)e.arg);
        break;
    case T_RESET:
        usock_upcall_reset(s->handle, (int)e.arg);
        break;
    }
    db_put(s);
}

static void *db_receiver(void *arg)
{
    struct db_wire *wi = arg;
    int w = (int)(wi - db.wire);
    uint8_t *buf = malloc(DB_FRAME_MAX);
    if (!buf)
        abort();
    for (;;) {
        long n = k_recv(wi->rfd, buf, DB_FRAME_MAX);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        struct db_env e;
        if ((size_t)n >= sizeof e) {
            memcpy(&e, buf, sizeof e);
            if (e.type == T_STOP)
                break;
        }
        atomic_fetch_add(&db.frames_in[w], 1);
        db_rx_frame(buf, (size_t)n);
    }
    free(buf);
    return NULL;
}

/* ---- the operations ---------------------------------------------------- */

static int op_supports(void *ctx, const struct usock_sock_info *info)
{
    (void)ctx;
    return info->domain == AF_INET && (info->ty == SOCK_STREAM || info->ty == SOCK_DGRAM);
}

static int op_claim(void *ctx, uint64_t handle, const struct usock_sock_info *info, int op,
                    const uint8_t *addr, uint32_t addr_len, void **sock_ctx)
{
    (void)ctx;
    (void)op;
    if (!op_supports(NULL, info) || !db_in_net(addr, addr_len))
        return 0;
    struct db_sock *s = db_new_sock(handle, info->ty);
    if (!s)
        return -ENOMEM;
    *sock_ctx = s;
    return 1;
}

static int op_bind(void *ctx, const struct usock_sock *so, const uint8_t *addr,
                   uint32_t addr_len, uint8_t *out, uint32_t *out_len)
{
    (void)ctx;
    struct db_sock *s = db_ctx(so);
    struct sockaddr_in a;
    if (!db_in_net(addr, addr_len))
        return -EADDRNOTAVAIL;
    memcpy(&a, addr, sizeof a);
    if (s->bound)
        return -EINVAL;
    int rc = db_do_bind(s, a.sin_addr.s_addr, ntohs(a.sin_port));
    if (rc)
        return rc;
    pthread_mutex_lock(&s->mu);
    memcpy(out, &s->local, sizeof s->local);
    pthread_mutex_unlock(&s->mu);
    *out_len = sizeof(struct sockaddr_in);
    return 0;
}

static int op_listen(void *ctx, const struct usock_sock *so, uint32_t backlog)
{
    (void)ctx;
    (void)backlog; /* the library keeps the accept queue */
    struct db_sock *s = db_ctx(so);
    pthread_mutex_lock(&s->mu);
    int ok = s->bound;
    if (ok)
        s->listening = 1;
    pthread_mutex_unlock(&s->mu);
    return ok ? 0 : -EINVAL;
}

static int op_connect(void *ctx, const struct usock_sock *so, const uint8_t *addr,
                      uint32_t addr_len)
{
    (void)ctx;
    struct db_sock *s = db_ctx(so);
    struct sockaddr_in dst;
    if (!db_in_net(addr, addr_len))
        return -EAFNOSUPPORT;
    memcpy(&dst, addr, sizeof dst);
    if (!s->bound) {
        int rc = db_do_bind(s, dst.sin_addr.s_addr, 0);
        if (rc)
            return rc;
    }
    pthread_mutex_lock(&s->mu);
    s->peer = dst;
    s->has_peer = 1;
    struct sockaddr_in local = s->local;
    pthread_mutex_unlock(&s->mu);
    if (s->type == SOCK_DGRAM)
        return 0;
    uint64_t win = 0;
    usock_upcall_window(so->handle, &win);
    uint8_t p[2 * sizeof dst];
    memcpy(p, &dst, sizeof dst);
    memcpy(p + sizeof dst, &local, sizeof local);
    db_send_ctl(T_REQ, s->id, 0, win, p, sizeof p);
    return 0;
}

static int op_write(void *ctx, const struct usock_sock *so, const struct usock_fragment *f)
{
    (void)ctx;
    struct db_sock *s = db_ctx(so);
    uint64_t dst;
    struct sockaddr_in src;
    if (f->kind == USOCK_FRAG_STREAM) {
        pthread_mutex_lock(&s->mu);
        dst = s->peer_id;
        pthread_mutex_unlock(&s->mu);
        if (!dst)
            return -ENOTCONN;
        atomic_fetch_add(&db.stream_bytes, f->len);
    } else {
        struct sockaddr_in to;
        if (f->addr_len >= sizeof to && f->addr) {
            memcpy(&to, f->addr, sizeof to);
        } else {
            pthread_mutex_lock(&s->mu);
            int hp = s->has_peer;
            to = s->peer;
            pthread_mutex_unlock(&s->mu);
            if (!hp)
                return -EDESTADDRREQ;
        }
        if (!db_in_net((const uint8_t *)&to, sizeof to))
            return -ENETUNREACH;
        if (!s->bound && db_do_bind(s, to.sin_addr.s_addr, 0) != 0)
            return -EAGAIN;
        if (atomic_load(&db.dgram_queued) > DB_DGRAM_QMAX) {
            pthread_mutex_lock(&db.mu);
            int dup = 0;
            for (int i = 0; i < db.nblocked; i++)
                dup |= db.blocked[i] == so->handle;
            if (!dup && db.nblocked < 64)
                db.blocked[db.nblocked++] = so->handle;
            pthread_mutex_unlock(&db.mu);
            if (atomic_load(&db.dgram_queued) > DB_DGRAM_QMAX)
                return -EAGAIN;
        }
        struct db_sock *d = db_find_addr(&to, SOCK_DGRAM, 0);
        if (!d)
            return 0; /* nobody there: the datagram is lost, as UDP's */
        dst = d->id;
        db_put(d);
        atomic_fetch_add(&db.dgram_frames, 1);
    }
    pthread_mutex_lock(&s->mu);
    src = s->local;
    pthread_mutex_unlock(&s->mu);
    /* split into kernel-datagram-sized pieces, one sequence number each */
    uint32_t done = 0;
    do {
        uint32_t n = f->len - done < DB_CHUNK ? f->len - done : DB_CHUNK;
        struct usock_fragment g = *f;
        g.conn = 0;
        g.len = n;
        g.data = f->data + done;
        if (f->kind == USOCK_FRAG_STREAM) {
            g.offset = f->offset + done;
            g.addr = NULL;
            g.addr_len = 0;
            if (done + n < f->len)
                g.flags &= ~(uint32_t)USOCK_FLAG_FIN;
        } else {
            g.dgram_offset = f->dgram_offset + done;
            g.addr = (const uint8_t *)&src;
            g.addr_len = sizeof src;
        }
        uint64_t seq = db_next_seq(s, dst);
        struct db_frame *fr = db_frame_new(T_FRAG, s->id, dst, seq, 0, 40 + 128 + n);
        if (!fr)
            return -ENOMEM; /* a lost piece: the flow stalls, never corrupts */
        int64_t k = usock_frag_encode(&g, fr->buf + fr->len, 40 + 128 + n);
        if (k < 0) {
            free(fr);
            return (int)k;
        }
        fr->len += (size_t)k;
        if (f->kind == USOCK_FRAG_DGRAM) {
            fr->dgram = 1;
            atomic_fetch_add(&db.dgram_queued, fr->len);
        }
        db_queue((int)(seq & 1), fr);
        done += n;
    } while (done < f->len);
    return 0;
}

static void op_window(void *ctx, const struct usock_sock *so, uint64_t limit)
{
    (void)ctx;
    struct db_sock *s = db_ctx(so);
    pthread_mutex_lock(&s->mu);
    uint64_t peer = s->type == SOCK_STREAM ? s->peer_id : 0;
    for (struct db_rxflow *r = s->rx; r; r = r->next)
        r->stalled = 0;
    s->wgen++;
    pthread_mutex_unlock(&s->mu);
    if (peer)
        db_send_ctl(T_CREDIT, s->id, peer, limit, NULL, 0);
    db_drain(s);
}

static int op_local_addr(void *ctx, const struct usock_sock *so, uint8_t *out,
                         uint32_t *out_len)
{
    (void)ctx;
    struct db_sock *s = db_ctx(so);
    pthread_mutex_lock(&s->mu);
    int b = s->bound || s->has_peer;
    memcpy(out, &s->local, sizeof s->local);
    pthread_mutex_unlock(&s->mu);
    if (!b)
        return -EINVAL;
    *out_len = sizeof(struct sockaddr_in);
    return 0;
}

static int op_peer_addr(void *ctx, const struct usock_sock *so, uint8_t *out,
                        uint32_t *out_len)
{
    (void)ctx;
    struct db_sock *s = db_ctx(so);
    pthread_mutex_lock(&s->mu);
    int p = s->has_peer;
    memcpy(out, &s->peer, sizeof s->peer);
    pthread_mutex_unlock(&s->mu);
    if (!p)
        return -ENOTCONN;
    *out_len = sizeof(struct sockaddr_in);
    return 0;
}

static void op_close(void *ctx, const struct usock_sock *so)
{
    (void)ctx;
    struct db_sock *s = db_ctx(so);
    if (!s)
        return;
    pthread_mutex_lock(&db.mu);
    for (struct db_sock **pp = &db.socks; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    pthread_mutex_unlock(&db.mu);
    db_put(s);
}

static const struct usock_backend_ops db_ops = {
    .abi_version = USOCK_BACKEND_ABI_VERSION,
    .name = "c-dgram",
    .supports = op_supports,
    .claim = op_claim,
    .bind = op_bind,
    .listen = op_listen,
    .connect = op_connect,
    .accepted = NULL,
    .shutdown = NULL,
    .setsockopt = NULL,
    .write = op_write,
    .window = op_window,
    .local_addr = op_local_addr,
    .peer_addr = op_peer_addr,
    .socketpair = NULL,
    .close = op_close,
};

static int db_start(void)
{
    int sv[2];
    if (syscall(SYS_socketpair, AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) != 0)
        return -1;
    int big = 4 << 20;
    for (int i = 0; i < 2; i++) {
        syscall(SYS_setsockopt, sv[i], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
        syscall(SYS_setsockopt, sv[i], SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    }
    db.wire[0].sfd = sv[0];
    db.wire[0].rfd = sv[1];
    db.wire[1].sfd = sv[1];
    db.wire[1].rfd = sv[0];
    db.next_port = (unsigned)rand();
    for (int i = 0; i < 2; i++) {
        struct db_wire *wi = &db.wire[i];
        pthread_mutex_init(&wi->mu, NULL);
        pthread_cond_init(&wi->cv, NULL);
        if (pthread_create(&wi->sender, NULL, db_sender, wi) != 0 ||
            pthread_create(&wi->receiver, NULL, db_receiver, wi) != 0)
            return -1;
    }
    db.reg_id = usock_backend_register(&db_ops, NULL, 50);
    return db.reg_id > 0 ? 0 : -1;
}

static int db_stop(void)
{
    int r = usock_backend_unregister(db.reg_id);
    for (int i = 0; i < 2; i++) {
        struct db_wire *wi = &db.wire[i];
        pthread_mutex_lock(&wi->mu);
        wi->stop = 1;
        pthread_cond_signal(&wi->cv);
        pthread_mutex_unlock(&wi->mu);
        pthread_join(wi->sender, NULL);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(db.wire[i].receiver, NULL);
        pthread_mutex_destroy(&db.wire[i].mu);
        pthread_cond_destroy(&db.wire[i].cv);
    }
    syscall(SYS_close, db.wire[0].sfd);
    syscall(SYS_close, db.wire[1].sfd);
    return r;
}

/* ---- the tests --------------------------------------------------------- */

static int db_started;

static struct sockaddr_in db_addr(const char *ip, uint16_t port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

static struct sockaddr_in db_sockname(int fd)
{
    struct sockaddr_in a;
    socklen_t l = sizeof a;
    memset(&a, 0, sizeof a);
    OK(getsockname(fd, (struct sockaddr *)&a, &l));
    CHECK_EQ(l, sizeof a);
    return a;
}

static int db_listener(const char *ip)
{
    int l = (int)OK(socket(AF_INET, SOCK_STREAM, 0));
    struct sockaddr_in a = db_addr(ip, 0);
    OK(bind(l, (struct sockaddr *)&a, sizeof a));
    OK(listen(l, 64));
    return l;
}

/* A connected pair through the backend: *c connected, *s accepted. */
static void db_pair(const char *ip, int *c, int *s)
{
    int l = db_listener(ip);
    struct sockaddr_in a = db_sockname(l);
    *c = (int)OK(socket(AF_INET, SOCK_STREAM, 0));
    OK(connect(*c, (struct sockaddr *)&a, sizeof a));
    *s = (int)OK(accept(l, NULL, NULL));
    OK(close(l));
}

TEST(dg_register)
{
    CHECK_EQ(db_start(), 0);
    db_started = 1;
    struct usock_backend_ops bad = db_ops;
    bad.abi_version = USOCK_BACKEND_ABI_VERSION + 1;
    CHECK_EQ(usock_backend_register(&bad, NULL, 1), -EINVAL);
    bad = db_ops;
    bad.write = NULL;
    CHECK_EQ(usock_backend_register(&bad, NULL, 1), -EINVAL);
    CHECK_EQ(usock_backend_register(NULL, NULL, 1), -EINVAL);
}

TEST(dg_stream_basic)
{
    CHECK(db_started);
    unsigned long long in0 = atomic_load(&db.frames_in[0]) + atomic_load(&db.frames_in[1]);
    int l = db_listener("127.88.0.1");
    struct sockaddr_in la = db_sockname(l);
    CHECK_EQ(la.sin_addr.s_addr, db_addr("127.88.0.1", 0).sin_addr.s_addr);
    CHECK(ntohs(la.sin_port) != 0);
    int c = (int)OK(socket(AF_INET, SOCK_STREAM, 0));
    OK(connect(c, (struct sockaddr *)&la, sizeof la));
    struct sockaddr_in peer;
    socklen_t pl = sizeof peer;
    int s = (int)OK(accept(l, (struct sockaddr *)&peer, &pl));
    struct sockaddr_in cn = db_sockname(c);
    CHECK_EQ(pl, sizeof peer);
    CHECK_EQ(peer.sin_port, cn.sin_port);
    CHECK_EQ(peer.sin_addr.s_addr, cn.sin_addr.s_addr);
    pl = sizeof peer;
    OK(getpeername(c, (struct sockaddr *)&peer, &pl));
    CHECK_EQ(peer.sin_port, la.sin_port);

    char buf[64];
    CHECK_EQ(send(c, "hello, ", 7, 0), 7);
    CHECK_EQ(send(c, "world", 5, 0), 5);
    CHECK_EQ(tl_read_all(s, buf, 12), 12);
    CHECK(memcmp(buf, "hello, world", 12) == 0);
    CHECK_EQ(write(s, "back", 4), 4);
    CHECK_EQ(tl_read_all(c, buf, 4), 4);
    CHECK(memcmp(buf, "back", 4) == 0);
    /* shutdown(SHUT_WR): the peer reads what was sent, then end-of-stream */
    CHECK_EQ(send(c, "last", 4, 0), 4);
    OK(shutdown(c, SHUT_WR));
    CHECK_EQ(tl_read_all(s, buf, sizeof buf), 4);
    CHECK(memcmp(buf, "last", 4) == 0);
    CHECK_EQ(recv(s, buf, sizeof buf, 0), 0);
    CHECK_ERRNO(send(c, "x", 1, MSG_NOSIGNAL), EPIPE);
    /* the other direction still works, then close: end-of-stream */
    CHECK_EQ(send(s, "tail", 4, 0), 4);
    OK(close(s));
    CHECK_EQ(tl_read_all(c, buf, sizeof buf), 4);
    CHECK(memcmp(buf, "tail", 4) == 0);
    CHECK_EQ(recv(c, buf, sizeof buf, 0), 0);
    OK(close(c));
    OK(close(l));
    /* it went through the kernel datagram wires */
    CHECK(atomic_load(&db.frames_in[0]) + atomic_load(&db.frames_in[1]) >= in0 + 6);
}

TEST(dg_refused)
{
    CHECK(db_started);
    unsigned long long r0 = atomic_load(&db.refused);
    /* nobody at that address */
    int c = (int)OK(socket(AF_INET, SOCK_STREAM, 0));
    struct sockaddr_in a = db_addr("127.88.0.9", 9);
    CHECK_ERRNO(connect(c, (struct sockaddr *)&a, sizeof a), ECONNREFUSED);
    OK(close(c));
    /* bound but not listening */
    int b = (int)OK(socket(AF_INET, SOCK_STREAM, 0));
    struct sockaddr_in ba = db_addr("127.88.0.1", 0);
    OK(bind(b, (struct sockaddr *)&ba, sizeof ba));
    ba = db_sockname(b);
    c = (int)OK(socket(AF_INET, SOCK_STREAM, 0));
    CHECK_ERRNO(connect(c, (struct sockaddr *)&ba, sizeof ba), ECONNREFUSED);
    OK(close(c));
    /* the same port twice */
    int b2 = (int)OK(socket(AF_INET, SOCK_STREAM, 0));
    CHECK_ERRNO(bind(b2, (struct sockaddr *)&ba, sizeof ba), EADDRINUSE);
    OK(close(b2));
    OK(close(b));
    /* both refusals were the backend's */
    CHECK_EQ(atomic_load(&db.refused), r0 + 2);
    /* a non-blocking connect: EINPROGRESS, then SO_ERROR says refused */
    c = (int)OK(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
    a = db_addr("127.88.0.9", 10);
    int r = connect(c, (struct sockaddr *)&a, sizeof a);
    CHECK(r == -1 && errno == EINPROGRESS);
    CHECK(tl_poll1(c, POLLOUT, 2000) & (POLLOUT | POLLERR));
    CHECK_EQ(tl_so_error(c), ECONNREFUSED);
    OK(close(c));
    /* an address nobody claims but the built-in loopback: refused there */
    c = (int)OK(socket(AF_INET, SOCK_STREAM, 0));
    a = db_addr("127.0.0.1", 9);
    CHECK_ERRNO(connect(c, (struct sockaddr *)&a, sizeof a), ECONNREFUSED);
    OK(close(c));
    CHECK_EQ(atomic_load(&db.refused), r0 + 3);
    /* misuse on a connection the backend carries: a second connect, listen
     * on a connected socket; send on a never-connected one (EPIPE, as
     * Linux's TCP) */
    int s;
    db_pair("127.88.0.1", &c, &s);
    CHECK_ERRNO(connect(c, (struct sockaddr *)&ba, sizeof ba), EISCONN);
    CHECK_ERRNO(listen(c, 1), EINVAL);
    OK(close(c));
    OK(close(s));
    c = (int)OK(socket(AF_INET, SOCK_STREAM, 0));
    CHECK_ERRNO(send(c, "x", 1, MSG_NOSIGNAL), EPIPE);
    OK(close(c));
}

struct xfer {
    int fd;
    uint8_t *buf;
    size_t len;
    uint32_t seed;
    int close_after;
};

static void *xfer_send(void *arg)
{
    struct xfer *x = arg;
    size_t off = 0;
    uint32_t r = x->seed;
    while (off < x->len) {
        r = r * 1103515245u + 12345u;
        size_t n = 1 + (r >> 8) % 150000; /* odd sizes */
        if (n > x->len - off)
            n = x->len - off;
        ssize_t k = send(x->fd, x->buf + off, n, MSG_NOSIGNAL);
        CHECK(k > 0);
        off += (size_t)k;
    }
    OK(shutdown(x->fd, SHUT_WR));
    return NULL;
}

static void *xfer_recv(void *arg)
{
    struct xfer *x = arg;
    size_t off = 0;
    for (;;) {
        size_t want = x->len + 1 - off; /* one more: end-of-stream must follow */
        if (want > 70000)
            want = 70000;
        ssize_t k = recv(x->fd, x->buf + off, want, 0);
        CHECK(k >= 0);
        if (k == 0)
            break;
        off += (size_t)k;
        CHECK(off <= x->len);
    }
    CHECK_EQ(off, x->len);
    return NULL;
}

/* Both directions at once, checked byte for byte. */
static void db_exchange(int c, int s, size_t len_a, size_t len_b, uint32_t seed)
{
    uint8_t *a = malloc(len_a), *ra = malloc(len_a + 1), *b = malloc(len_b),
            *rb = malloc(len_b + 1);
    CHECK(a && ra && b && rb);
    tl_fill(a, len_a, seed);
    tl_fill(b, len_b, seed + 1);
    struct xfer x[4] = {{c, a, len_a, seed, 0}, {s, ra, len_a, 0, 0},
                        {s, b, len_b, seed * 7, 0}, {c, rb, len_b, 0, 0}};
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        CHECK_EQ(pthread_create(&t[i], NULL, i % 2 ? xfer_recv : xfer_send, &x[i]), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    CHECK(memcmp(a, ra, len_a) == 0);
    CHECK(memcmp(b, rb, len_b) == 0);
    free(a);
    free(ra);
    free(b);
    free(rb);
}

TEST(dg_stream_4mb)
{
    CHECK(db_started);
    unsigned long long b0 = atomic_load(&db.stream_bytes), o0 = atomic_load(&db.out_of_order),
                       cr0 = atomic_load(&db.credits),
                       f0 = atomic_load(&db.frames_in[0]), f1 = atomic_load(&db.frames_in[1]);
    int c, s;
    db_pair("127.88.0.2", &c, &s);
    size_t la = 4u << 20, lb = (3u << 20) + 4321;
    db_exchange(c, s, la, lb, 77);
    OK(close(c));
    OK(close(s));
    /* all of it through the backend, over both wires, re-ordered on the way
     * and put back in order by the backend, with credit from `window` */
    CHECK(atomic_load(&db.stream_bytes) - b0 >= la + lb);
    CHECK(atomic_load(&db.frames_in[0]) - f0 >= (la + lb) / DB_CHUNK / 2);
    CHECK(atomic_load(&db.frames_in[1]) - f1 >= (la + lb) / DB_CHUNK / 2);
    CHECK(atomic_load(&db.out_of_order) > o0);
    CHECK(atomic_load(&db.credits) > cr0);
}

struct conn_job {
    int c, s;
    uint32_t seed;
};

static void *conn_job(void *arg)
{
    struct conn_job *j = arg;
    db_exchange(j->c, j->s, 300000 + j->seed * 1000, 200000 + j->seed, j->seed);
    return NULL;
}

TEST(dg_concurrent)
{
    CHECK(db_started);
    enum { N = 8 };
    int l = db_listener("127.88.0.3");
    struct sockaddr_in a = db_sockname(l);
    struct conn_job j[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        j[i].c = (int)OK(socket(AF_INET, SOCK_STREAM, 0));
        OK(connect(j[i].c, (struct sockaddr *)&a, sizeof a));
    }
    for (int i = 0; i < N; i++) {
        struct sockaddr_in p;
        socklen_t pl = sizeof p;
        int s = (int)OK(accept(l, (struct sockaddr *)&p, &pl));
        /* pair it with its connector by port */
        int k;
        for (k = 0; k < N; k++)
            if (db_sockname(j[k].c).sin_port == p.sin_port)
                break;
        CHECK(k < N);
        j[k].s = s;
        j[k].seed = (uint32_t)k + 1;
    }
    for (int i = 0; i < N; i++)
        CHECK_EQ(pthread_create(&t[i], NULL, conn_job, &j[i]), 0);
    for (int i = 0; i < N; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < N; i++) {
        OK(close(j[i].c));
        OK(close(j[i].s));
    }
    OK(close(l));
}

TEST(dg_poll)
{
    CHECK(db_started);
    int c, s;
    db_pair("127.88.0.4", &c, &s);
    CHECK_EQ(tl_poll1(s, POLLIN, 50), 0); /* nothing yet */
    CHECK(tl_poll1(c, POLLOUT, 1000) & POLLOUT);
    CHECK_EQ(send(c, "ping", 4, 0), 4);
    CHECK(tl_poll1(s, POLLIN, 2000) & POLLIN);
    int avail = 0;
    OK(ioctl(s, FIONREAD, &avail));
    CHECK_EQ(avail, 4);
    char buf[8];
    CHECK_EQ(recv(s, buf, sizeof buf, 0), 4);
    CHECK_EQ(tl_poll1(s, POLLIN, 50), 0);
    /* a kernel pipe and our socket in one poll() */
    int p[2];
    OK(pipe(p));
    CHECK_EQ(write(p[1], "k", 1), 1);
    CHECK_EQ(send(c, "u", 1, 0), 1);
    struct pollfd pf[2] = {{.fd = p[0], .events = POLLIN}, {.fd = s, .events = POLLIN}};
    long t0 = tl_now_ms();
    int n = 0;
    while (n < 2 && tl_now_ms() - t0 < 2000) {
        n = (int)OK(poll(pf, 2, 2000));
        if (n < 2)
            tl_sleep_ms(1);
    }
    CHECK_EQ(n, 2);
    CHECK(pf[0].revents & POLLIN);
    CHECK(pf[1].revents & POLLIN);
    CHECK_EQ(recv(s, buf, sizeof buf, 0), 1);
    OK(close(p[0]));
    OK(close(p[1]));
    /* end-of-stream is readable */
    OK(close(c));
    CHECK(tl_poll1(s, POLLIN, 2000) & POLLIN);
    CHECK_EQ(recv(s, buf, sizeof buf, 0), 0);
    OK(close(s));
}

TEST(dg_dgram)
{
    CHECK(db_started);
    unsigned long long d0 = atomic_load(&db.dgram_frames);
    int a = (int)OK(socket(AF_INET, SOCK_DGRAM, 0));
    int b = (int)OK(socket(AF_INET, SOCK_DGRAM, 0));
    struct sockaddr_in aa = db_addr("127.88.0.5", 0), ba = db_addr("127.88.0.6", 0);
    OK(bind(a, (struct sockaddr *)&aa, sizeof aa));
    OK(bind(b, (struct sockaddr *)&ba, sizeof ba));
    aa = db_sockname(a);
    ba = db_sockname(b);
    /* a burst of datagrams of different sizes: each intact, in order,
     * from the right source */
    enum { N = 40 };
    static uint8_t out[N][9000], in[9100];
    for (int i = 0; i < N; i++) {
        size_t len = 1 + (size_t)(i * 211) % 9000;
        tl_fill(out[i], len, (uint32_t)i);
        out[i][0] = (uint8_t)i;
        CHECK_EQ(sendto(a, out[i], len, 0, (struct sockaddr *)&ba, sizeof ba), (ssize_t)len);
    }
    for (int i = 0; i < N; i++) {
        size_t len = 1 + (size_t)(i * 211) % 9000;
        struct sockaddr_in from;
        socklen_t fl = sizeof from;
        CHECK(tl_poll1(b, POLLIN, 2000) & POLLIN);
        ssize_t k = recvfrom(b, in, sizeof in, 0, (struct sockaddr *)&from, &fl);
        CHECK_EQ(k, (ssize_t)len);
        CHECK_EQ(in[0], i);
        CHECK(memcmp(in, out[i], len) == 0);
        CHECK_EQ(fl, sizeof from);
        CHECK_EQ(from.sin_port, aa.sin_port);
        CHECK_EQ(from.sin_addr.s_addr, aa.sin_addr.s_addr);
    }
    CHECK_EQ(tl_poll1(b, POLLIN, 20), 0);
    /* a datagram larger than one kernel frame (split and put together) */
    size_t big = 60000;
    uint8_t *bo = malloc(big), *bi = malloc(big + 1);
    CHECK(bo && bi);
    tl_fill(bo, big, 5);
    CHECK_EQ(sendto(a, bo, big, 0, (struct sockaddr *)&ba, sizeof ba), (ssize_t)big);
    CHECK(tl_poll1(b, POLLIN, 2000) & POLLIN);
    CHECK_EQ(recv(b, bi, big + 1, 0), (ssize_t)big);
    CHECK(memcmp(bo, bi, big) == 0);
    free(bo);
    free(bi);
    /* connected: send/recv without addresses, both ways */
    OK(connect(a, (struct sockaddr *)&ba, sizeof ba));
    OK(connect(b, (struct sockaddr *)&aa, sizeof aa));
    CHECK_EQ(send(a, "one", 3, 0), 3);
    CHECK_EQ(send(b, "two", 3, 0), 3);
    char buf[8];
    CHECK(tl_poll1(b, POLLIN, 2000) & POLLIN);
    CHECK_EQ(recv(b, buf, sizeof buf, 0), 3);
    CHECK(memcmp(buf, "one", 3) == 0);
    CHECK(tl_poll1(a, POLLIN, 2000) & POLLIN);
    CHECK_EQ(recv(a, buf, sizeof buf, 0), 3);
    CHECK(memcmp(buf, "two", 3) == 0);
    /* truncation: the rest of the datagram is gone */
    CHECK_EQ(send(a, "abcdef", 6, 0), 6);
    CHECK(tl_poll1(b, POLLIN, 2000) & POLLIN);
    CHECK_EQ(recv(b, buf, 2, 0), 2);
    CHECK_EQ(send(a, "g", 1, 0), 1);
    CHECK(tl_poll1(b, POLLIN, 2000) & POLLIN);
    CHECK_EQ(recv(b, buf, sizeof buf, 0), 1);
    CHECK_EQ(buf[0], 'g');
    OK(close(a));
    OK(close(b));
    CHECK(atomic_load(&db.dgram_frames) - d0 >= N + 4);
}

TEST(dg_declines_others)
{
    CHECK(db_started);
    /* 127.0.0.1 stays with the built-in loopback: no frame on our wires */
    unsigned long long f0 = atomic_load(&db.frames_out[0]) + atomic_load(&db.frames_out[1]);
    int l = (int)OK(socket(AF_INET, SOCK_STREAM, 0));
    struct sockaddr_in a = db_addr("127.0.0.1", 0);
    OK(bind(l, (struct sockaddr *)&a, sizeof a));
    OK(listen(l, 4));
    a = db_sockname(l);
    int c = (int)OK(socket(AF_INET, SOCK_STREAM, 0));
    OK(connect(c, (struct sockaddr *)&a, sizeof a));
    int s = (int)OK(accept(l, NULL, NULL));
    char buf[4];
    CHECK_EQ(send(c, "lo", 2, 0), 2);
    CHECK_EQ(tl_read_all(s, buf, 2), 2);
    OK(close(c));
    OK(close(s));
    OK(close(l));
    CHECK_EQ(atomic_load(&db.frames_out[0]) + atomic_load(&db.frames_out[1]), f0);
}

TEST(dg_teardown)
{
    CHECK(db_started);
    /* every socket closed: the table is empty */
    pthread_mutex_lock(&db.mu);
    int empty = db.socks == NULL;
    pthread_mutex_unlock(&db.mu);
    CHECK(empty);
    CHECK_EQ(db_stop(), 0);
    db_started = 0;
    CHECK_EQ(usock_backend_unregister(db.reg_id), -ENOENT);
    CHECK_EQ(atomic_load(&db.frames_out[0]), atomic_load(&db.frames_in[0]));
    CHECK_EQ(atomic_load(&db.frames_out[1]), atomic_load(&db.frames_in[1]));
}

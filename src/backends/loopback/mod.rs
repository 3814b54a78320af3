//! The loopback backend: carries traffic between sockets of one process.
//!
//! A stream connection is a pair of sockets that know each other's handle;
//! a write delivers straight into the peer's Socket Buffer (one copy, from
//! the sender's buffer into the receiver's ring), and the receiver's window
//! becomes the sender's credit. Datagrams find their receiver in the table
//! of bound addresses, which is sharded by port so that senders on different
//! ports never share a lock.
//!
//! It claims every AF_INET, AF_INET6 and AF_UNIX socket: a connection to an
//! address nothing in the process listens on is refused, as the kernel
//! refuses a connection to a closed local port.
#![deny(unsafe_code)]

/// AF_UNIX pathnames as socket files (the cross-process backend uses them too).
pub(crate) mod fs;
mod table;

use alloc::collections::VecDeque;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::any::Any;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use crate::addr::SockAddr;
use crate::addr::{IpEp, UnixName};
use crate::backend::contract::*;
use crate::backend::upcall;
use crate::consts::*;
use crate::sync::Mutex;
use table::{BindEntry, BindKey, Table};

/// Linux's TCP_TIMEWAIT_LEN: how long a TIME_WAIT holds its port.
const TIME_WAIT_NS: u64 = 60_000_000_000;

/// Where a socket is bound.
#[derive(Clone, Debug)]
enum Local {
    Ip(IpEp),
    Unix(UnixName),
}

impl Local {
    fn to_sockaddr(&self, family: i32) -> SockAddr {
        match self {
            Local::Ip(ep) => ep.to_sockaddr(family),
            Local::Unix(n) => n.to_sockaddr(),
        }
    }
}

#[derive(Default)]
struct Inner {
    local: Option<Local>,
    key: Option<BindKey>,
    peer_addr: Option<SockAddr>,
    /// Default destination of a connected datagram socket.
    dgram_peer: Option<SockAddr>,
    /// Connectors waiting for room in this listener's accept queue.
    pending: VecDeque<(Arc<LoSock>, SockAddr)>,
    /// The program bound a port (bind() with one: Linux's
    /// SOCK_BINDPORT_LOCK): a disconnect keeps it.
    user_port: bool,
    /// The listener whose `pending` list this connector was put on last.
    parked_at: Weak<LoSock>,
    /// An AF_UNIX listener's credentials as of listen(): what its
    /// clients' SO_PEERCRED reports.
    listen_cred: Option<PeerCred>,
    /// Where this socket's TIME_WAIT would hold its port, and with which
    /// flags: its own binding's, or for an accepted socket its listener's
    /// (it inherits SO_REUSEADDR and SO_REUSEPORT).
    tw: Option<TwPlace>,
}

/// The key and flags of a TIME_WAIT record (see `Loopback::close`).
#[derive(Clone, Debug)]
struct TwPlace {
    key: BindKey,
    v6only: bool,
    reuseaddr: bool,
    reuseport: bool,
    uid: u32,
}

/// Loopback's state of one socket.
pub struct LoSock {
    info: SockInfo,
    handle: AtomicU64,
    /// Handle of the connected peer (streams); 0 when none.
    peer: AtomicU64,
    /// The connected peer's state (the handle says whom to deliver to;
    /// this, whether it is still there and what it knows).
    peer_sock: Mutex<Weak<LoSock>>,
    /// The frontend closed this socket (`Backend::close`).
    closed: AtomicBool,
    /// End-of-stream arrived from the peer: a later write to a vanished peer
    /// is EPIPE rather than ECONNRESET, as on Linux.
    got_fin: AtomicBool,
    /// This end sent its FIN before the peer's arrived: the active close,
    /// which leaves a TIME_WAIT behind.
    fin_first: AtomicBool,
    /// This end reset its connection: no TIME_WAIT.
    rst_sent: AtomicBool,
    listening: AtomicBool,
    /// Shut for reading (SHUT_RD): AF_UNIX senders get EPIPE.
    rd_shut: AtomicBool,
    /// AF_UNIX datagram senders turned away because this receiver was
    /// full: told `upcall::writable` when a read makes room.
    blocked: Mutex<Vec<SockHandle>>,
    /// `blocked` is not empty (read without its lock on every receive).
    has_blocked: AtomicBool,
    /// AF_UNIX datagrams: bytes this socket sent that their receivers hold
    /// unread (SIOCOUTQ; Linux's sk_wmem_alloc, counted in bytes).
    outq: AtomicU64,
    /// AF_UNIX datagrams queued here, oldest first: the sender and the
    /// length of each, so that a read gives the sender its bytes back.
    inflight: Mutex<VecDeque<(Weak<LoSock>, u64)>>,
    /// The MSS this socket advertises (`SockOpts::maxseg` as of connect
    /// or listen; an accepted socket, its listener's).
    maxseg: AtomicU32,
    /// The MSS its peer advertised when they connected.
    peer_maxseg: AtomicU32,
    inner: Mutex<Inner>,
}

impl LoSock {
    fn new(info: SockInfo, handle: SockHandle) -> Arc<LoSock> {
        Arc::new(LoSock {
            info,
            handle: AtomicU64::new(handle.0),
            peer: AtomicU64::new(0),
            peer_sock: Mutex::new(Weak::new()),
            closed: AtomicBool::new(false),
            got_fin: AtomicBool::new(false),
            fin_first: AtomicBool::new(false),
            rst_sent: AtomicBool::new(false),
            listening: AtomicBool::new(false),
            rd_shut: AtomicBool::new(false),
            blocked: Mutex::new(Vec::new()),
            has_blocked: AtomicBool::new(false),
            outq: AtomicU64::new(0),
            inflight: Mutex::new(VecDeque::new()),
            maxseg: AtomicU32::new(0),
            peer_maxseg: AtomicU32::new(0),
            inner: Mutex::new(Inner::default()),
        })
    }

    fn handle(&self) -> SockHandle {
        SockHandle(self.handle.load(Ordering::Acquire))
    }

    fn is_listening(&self) -> bool {
        self.listening.load(Ordering::Acquire)
    }

    /// Connects `a` and `b` to each other.
    fn link(a: &Arc<LoSock>, b: &Arc<LoSock>) {
        *a.peer_sock.lock() = Arc::downgrade(b);
        *b.peer_sock.lock() = Arc::downgrade(a);
        a.peer.store(b.handle().0, Ordering::Release);
        b.peer.store(a.handle().0, Ordering::Release);
    }

    /// Sender `h` waits for room in this receiver.
    fn add_blocked(&self, h: SockHandle) {
        let mut b = self.blocked.lock();
        if !b.contains(&h) {
            b.push(h);
        }
        self.has_blocked.store(true, Ordering::Release);
    }

    /// Room was made (or the receiver is gone): every waiting sender may
    /// try again.
    fn wake_blocked(&self) {
        if !self.has_blocked.swap(false, Ordering::AcqRel) {
            return;
        }
        let waiting = core::mem::take(&mut *self.blocked.lock());
        for h in waiting {
            let _ = upcall::writable(h);
        }
    }

    /// Datagrams left this receiver's queue (read, or all of them when it
    /// closes: `keep` 0, else the count the frontend holds, asked under the
    /// lock): their senders' `outq` goes down, oldest first, as reads take
    /// them.
    fn settle_inflight(&self, keep: Option<usize>) {
        let mut q = self.inflight.lock();
        let keep = match keep {
            Some(k) => k,
            None => match upcall::window(self.handle()) {
                Ok(n) => n as usize,
                Err(_) => return,
            },
        };
        while q.len() > keep {
            let Some((from, n)) = q.pop_front() else {
                break;
            };
            if let Some(f) = from.upgrade() {
                let _ = f
                    .outq
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                        Some(v.saturating_sub(n))
                    });
            }
        }
    }

    /// The connected peer, while its socket is open.
    fn live_peer(&self) -> Option<Arc<LoSock>> {
        self.peer_sock
            .lock()
            .upgrade()
            .filter(|p| !p.closed.load(Ordering::Acquire))
    }
}

fn lo<'a>(sock: &SockRef<'a>) -> Result<&'a LoSock, Errno> {
    (sock.state.as_ref() as &dyn Any)
        .downcast_ref::<LoSock>()
        .ok_or(EINVAL)
}

/// The loopback backend.
pub struct Loopback {
    /// Leaked, one small table per backend (a process makes one or two):
    /// the fork hooks keep its locks' guards, which need it `'static`.
    table: &'static Table,
}

impl Default for Loopback {
    fn default() -> Self {
        Self::new()
    }
}

impl Loopback {
    /// A loopback backend with an empty address table.
    pub fn new() -> Loopback {
        Loopback {
            table: alloc::boxed::Box::leak(alloc::boxed::Box::new(Table::new())),
        }
    }

    /// Binds `s` to `want` (port 0 or an unnamed AF_UNIX address picks
    /// one; `for_connect`, one that may be in TIME_WAIT).
    fn do_bind(
        &self,
        s: &Arc<LoSock>,
        h: SockHandle,
        want: &SockAddr,
        opts: SockOpts,
        for_connect: bool,
    ) -> Result<SockAddr, Errno> {
        let info = s.info;
        let (local, key) = match info.domain {
            AF_INET | AF_INET6 => {
                let ep = IpEp::parse(want, info.domain)?;
                if !ep.bindable() && !opts.freebind && !crate::platform::is_host_address(&ep.ip) {
                    return Err(EADDRNOTAVAIL);
                }
                let entry = BindEntry {
                    handle: h,
                    sock: s.clone(),
                    ep: Some(ep),
                    v6only: opts.v6only || info.domain == AF_INET,
                    reuseaddr: opts.reuseaddr,
                    reuseport: opts.reuseport,
                    uid: own_cred().map_or(0, |c| c.uid),
                    tw_until: 0,
                };
                let tw = TwPlace {
                    key: BindKey::Ip { ty: 0, port: 0 },
                    v6only: entry.v6only,
                    reuseaddr: entry.reuseaddr,
                    reuseport: entry.reuseport,
                    uid: entry.uid,
                };
                let (port, key) =
                    self.table
                        .bind_ip(info.ty, entry, for_connect, opts.ephemeral_range())?;
                s.inner.lock().tw = Some(TwPlace {
                    key: key.clone(),
                    ..tw
                });
                (Local::Ip(IpEp { port, ..ep }), key)
            }
            AF_UNIX => {
                let name = UnixName::parse(want)?;
                let entry = BindEntry {
                    handle: h,
                    sock: s.clone(),
                    ep: None,
                    v6only: false,
                    reuseaddr: false,
                    reuseport: false,
                    uid: 0,
                    tw_until: 0,
                };
                let (name, key) = self.table.bind_unix(info.ty, name, entry)?;
                (Local::Unix(name), key)
            }
            _ => return Err(EAFNOSUPPORT),
        };
        let sa = local.to_sockaddr(info.domain);
        let mut inner = s.inner.lock();
        inner.local = Some(local);
        inner.key = Some(key);
        Ok(sa)
    }

    /// Binds to an ephemeral port on the wildcard address if not bound yet
    /// (what Linux does at connect or the first sendto). `exhausted`: the
    /// errno when no port of the range is free, which depends on the call
    /// as on Linux: EADDRNOTAVAIL for a TCP connect (`__inet_hash_connect`),
    /// EAGAIN for a datagram's autobind (`inet_autobind`), EADDRINUSE for
    /// listen (`inet_csk_get_port`).
    fn autobind(
        &self,
        s: &Arc<LoSock>,
        opts: SockOpts,
        for_connect: bool,
        exhausted: Errno,
    ) -> Result<(), Errno> {
        if s.inner.lock().local.is_some() {
            return Ok(());
        }
        match s.info.domain {
            AF_INET | AF_INET6 => {
                let any = IpEp {
                    family: s.info.domain,
                    ip: if s.info.domain == AF_INET {
                        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0]
                    } else {
                        [0; 16]
                    },
                    port: 0,
                };
                match self.do_bind(
                    s,
                    s.handle(),
                    &any.to_sockaddr(s.info.domain),
                    opts,
                    for_connect,
                ) {
                    Ok(_) => Ok(()),
                    Err(EADDRINUSE) => Err(exhausted),
                    Err(e) => Err(e),
                }
            }
            // Linux does not name an AF_UNIX socket at connect or send.
            _ => Ok(()),
        }
    }

    /// The local address as seen from a peer reaching `dest`: a wildcard
    /// bound address is replaced by the address the connection came from.
    fn concrete_local(s: &LoSock, dest: Option<&IpEp>) -> SockAddr {
        let inner = s.inner.lock();
        match (&inner.local, dest) {
            (Some(Local::Ip(ep)), Some(d)) if ep.is_wild() => {
                let mut c = *ep;
                c.ip = d.source_for();
                c.to_sockaddr(s.info.domain)
            }
            (Some(l), _) => l.to_sockaddr(s.info.domain),
            (None, _) => SockAddr::unnamed(s.info.domain),
        }
    }

    /// Resolves a stream destination to a listening socket, or the errno
    /// Linux gives when there is none.
    fn find_listener(
        &self,
        c: &LoSock,
        dest: &SockAddr,
    ) -> Result<(BindEntry, Option<IpEp>), Errno> {
        let info = &c.info;
        match info.domain {
            AF_INET | AF_INET6 => {
                let ep = IpEp::parse(dest, info.domain)?;
                let from = IpEp::parse(&Self::concrete_local(c, Some(&ep)), info.domain).ok();
                let e = self
                    .table
                    .lookup_ip(info.ty, &ep, from.as_ref(), |e| e.sock.is_listening())
                    .ok_or(ECONNREFUSED)?;
                Ok((e, Some(ep)))
            }
            _ => {
                let e = self.unix_target(info.ty, &UnixName::parse(dest)?)?;
                if !e.sock.is_listening() {
                    return Err(ECONNREFUSED);
                }
                Ok((e, None))
            }
        }
    }

    /// The socket bound to an AF_UNIX name for a connect. A pathname bound
    /// by a socket of the other type is EPROTOTYPE, as on Linux (abstract
    /// names are per type, so simply not found).
    fn unix_target(&self, ty: i32, name: &UnixName) -> Result<BindEntry, Errno> {
        if let Some(e) = self.table.lookup_unix(ty, name)? {
            return Ok(e);
        }
        // Any other type at the path: EPROTOTYPE.
        if matches!(name, UnixName::Path(_)) {
            for other in [SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET] {
                if other != ty && self.table.lookup_unix(other, name)?.is_some() {
                    return Err(EPROTOTYPE);
                }
            }
        }
        // A kernel socket of another type at the path (one a program
        // routed to the kernel): Linux's unix_find_other says EPROTOTYPE.
        #[cfg(feature = "std")]
        if let UnixName::Path(p) = name {
            if crate::platform::unix_ipc::kernel_unix_type(p).is_some_and(|t| t != ty) {
                return Err(EPROTOTYPE);
            }
        }
        Err(ECONNREFUSED)
    }

    /// Offers connector `c` to the listener; on a full accept queue, parks it
    /// in the listener's pending list.
    fn offer(
        &self,
        listener: &BindEntry,
        c: &Arc<LoSock>,
        dest: &SockAddr,
        ep: Option<IpEp>,
    ) -> Result<(), Errno> {
        let l = &listener.sock;
        let child = LoSock::new(l.info, SockHandle(0));
        let child_local = Self::concrete_local(l, ep.as_ref());
        let client_local = Self::concrete_local(c, ep.as_ref());
        // An IPv4 client reaching a dual-stack IPv6 listener is seen as a
        // v4-mapped IPv6 address.
        let client_seen = if l.info.domain != c.info.domain {
            match IpEp::parse(&client_local, c.info.domain) {
                Ok(e) => e.to_sockaddr(l.info.domain),
                Err(_) => client_local,
            }
        } else {
            client_local
        };
        {
            let mut ci = child.inner.lock();
            let li = l.inner.lock();
            ci.local = li.local.clone();
            ci.tw = li.tw.clone();
            drop(li);
            ci.peer_addr = Some(client_seen);
        }
        let child_state: SockState = child.clone();
        let ch = match upcall::incoming(listener.handle, child_state) {
            Ok(h) => h,
            Err(EAGAIN) if c.info.domain == AF_UNIX => {
                // AF_UNIX does not queue a connect: EAGAIN, and a blocking
                // caller tries again.
                return Err(EAGAIN);
            }
            Err(EAGAIN) => {
                l.inner.lock().pending.push_back((c.clone(), *dest));
                c.inner.lock().parked_at = Arc::downgrade(l);
                return Ok(());
            }
            Err(e) => {
                let _ = upcall::refused(c.handle(), if e == EBADF { ECONNREFUSED } else { e });
                return Ok(());
            }
        };
        child.handle.store(ch.0, Ordering::Release);
        // The accepted side reports the address the client asked for, with
        // the family of the listener.
        let child_local_seen = match (ep, l.info.domain) {
            (Some(d), fam) if fam != c.info.domain => {
                let mut d = d;
                d.ip = d.source_for();
                d.to_sockaddr(fam)
            }
            _ => child_local,
        };
        child.inner.lock().local = match child.info.domain {
            AF_UNIX => child.inner.lock().local.clone(),
            _ => IpEp::parse(&child_local_seen, child.info.domain)
                .ok()
                .map(Local::Ip),
        };
        {
            let mut ci = c.inner.lock();
            // A dual-stack client of an IPv4 listener sees it v4-mapped.
            ci.peer_addr = Some(if l.info.domain != c.info.domain {
                match IpEp::parse(&child_local, l.info.domain) {
                    Ok(e) => e.to_sockaddr(c.info.domain),
                    Err(_) => child_local,
                }
            } else {
                child_local
            });
            // A client bound to the wildcard now has a concrete address.
            if let (Some(Local::Ip(mine)), Some(d)) = (ci.local.as_mut(), ep.as_ref()) {
                if mine.is_wild() {
                    mine.ip = d.source_for();
                }
            }
        }
        LoSock::link(&child, c);
        // The MSS each end advertised (the SYN's and the SYN-ACK's).
        let (cm, lm) = (
            c.maxseg.load(Ordering::Acquire),
            l.maxseg.load(Ordering::Acquire),
        );
        child.maxseg.store(lm, Ordering::Release);
        child.peer_maxseg.store(cm, Ordering::Release);
        c.peer_maxseg.store(lm, Ordering::Release);
        if c.info.domain == AF_UNIX {
            // The connector's as of connect() for the accepted socket, the
            // listener's as of listen() for the connector.
            tell_cred(ch, own_cred());
            let lc = l.inner.lock().listen_cred;
            tell_cred(c.handle(), lc);
        }
        if let Ok(w) = upcall::window(c.handle()) {
            let _ = upcall::credit(ch, w);
        }
        if let Ok(w) = upcall::window(ch) {
            let _ = upcall::credit(c.handle(), w);
        }
        if upcall::connected(ch).is_err() {
            c.peer.store(0, Ordering::Release);
            let _ = upcall::refused(c.handle(), ECONNREFUSED);
            return Ok(());
        }
        let _ = upcall::connected(c.handle());
        Ok(())
    }

    /// A TCP socket connecting to its own address and port: Linux's
    /// simultaneous open connects it to itself (its SYN meets its own
    /// SYN_SENT socket), and it reads what it writes. `Ok(false)` when
    /// `dest` is another address.
    fn connect_self(&self, s: &Arc<LoSock>, dest: &SockAddr) -> Result<bool, Errno> {
        if !matches!(s.info.domain, AF_INET | AF_INET6) {
            return Ok(false);
        }
        let d = IpEp::parse(dest, s.info.domain)?;
        let me = Self::concrete_local(s, Some(&d));
        if !IpEp::parse(&me, s.info.domain).is_ok_and(|m| m.port == d.port && m.ip == d.ip) {
            return Ok(false);
        }
        {
            let mut inner = s.inner.lock();
            if let Some(Local::Ip(l)) = inner.local.as_mut() {
                l.ip = d.ip;
            }
            inner.peer_addr = Some(me);
        }
        LoSock::link(s, s);
        s.peer_maxseg
            .store(s.maxseg.load(Ordering::Acquire), Ordering::Release);
        let h = s.handle();
        if let Ok(w) = upcall::window(h) {
            let _ = upcall::credit(h, w);
        }
        let _ = upcall::connected(h);
        Ok(true)
    }

    /// The TIME_WAIT record a closing socket leaves, and where: a TCP end
    /// that closed first (sent its FIN before the peer's came, and did not
    /// reset) holds its port for Linux's TCP_TIMEWAIT_LEN, FIN_WAIT2
    /// included, at its concrete address, with its SO_REUSEADDR and
    /// SO_REUSEPORT (an accepted socket's, its listener's).
    fn time_wait_record(
        s: &Arc<LoSock>,
        inner: &Inner,
        h: SockHandle,
    ) -> Option<(BindKey, BindEntry)> {
        if s.info.ty != SOCK_STREAM
            || !s.fin_first.load(Ordering::Acquire)
            || s.rst_sent.load(Ordering::Acquire)
        {
            return None;
        }
        let (Some(Local::Ip(ep)), Some(tw)) = (inner.local.as_ref(), inner.tw.as_ref()) else {
            return None;
        };
        let rec = BindEntry {
            handle: h,
            sock: s.clone(),
            ep: Some(*ep),
            v6only: tw.v6only,
            reuseaddr: tw.reuseaddr,
            reuseport: tw.reuseport,
            uid: tw.uid,
            tw_until: crate::platform::mono_ns()
                .saturating_add(TIME_WAIT_NS)
                .max(1),
        };
        Some((tw.key.clone(), rec))
    }

    /// A write reached a peer that is gone: the writer learns of it as it
    /// would from a TCP reset.
    fn peer_gone(s: &LoSock) {
        s.peer.store(0, Ordering::Release);
        let err = if s.got_fin.load(Ordering::Acquire) {
            EPIPE
        } else {
            ECONNRESET
        };
        let _ = upcall::reset(s.handle(), err);
    }

    fn write_stream(&self, s: &LoSock, frag: &Fragment<'_>, scm: Option<u64>) -> Result<(), Errno> {
        let peer = s.peer.load(Ordering::Acquire);
        // An empty record (seqpacket) is data too.
        let data = !frag.payload.is_empty() || frag.header.flags & FLAG_EOR != 0;
        // AF_UNIX knows at once that its peer is gone: EPIPE, no reset dance.
        if s.info.domain == AF_UNIX && data {
            // Gone, or shut for reading (unix_shutdown's SEND_SHUTDOWN).
            match s.live_peer() {
                Some(p) if peer != 0 && !p.rd_shut.load(Ordering::Acquire) => {}
                _ => return Err(EPIPE),
            }
        }
        if peer == 0 {
            if data {
                Self::peer_gone(s);
            }
            return Ok(());
        }
        match deliver_unix(SockHandle(peer), frag, scm) {
            Ok(()) => {
                if frag.header.flags & FLAG_RST != 0 {
                    s.peer.store(0, Ordering::Release);
                }
                Ok(())
            }
            Err(EBADF) => {
                if data {
                    Self::peer_gone(s);
                }
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// A datagram to a multicast or broadcast address `ep` (`dest` as
    /// sent): a copy to every socket of the port that reaches the address
    /// and takes it (`upcall::takes_group` holds the memberships), never
    /// one connected to another peer (`__udp_is_mcast_sock`). A full
    /// receiver drops its copy, as UDP does. The source is lo's address:
    /// over lo the datagram leaves from there.
    fn fan_out(
        &self,
        s: &LoSock,
        frag: &Fragment<'_>,
        dest: &SockAddr,
        ep: &IpEp,
        attrs: Option<&DgramAttrs>,
    ) -> Result<(), Errno> {
        let attrs = attrs.map(|a| with_dst(a, ep));
        // A group or broadcast address is no source: lo's address is
        // (127.0.0.1, or ::1 as `source_for` gives for ::).
        let mut via = *ep;
        if ep.is_v4() {
            via.ip[12..].copy_from_slice(&[127, 0, 0, 1]);
        } else {
            via.ip = [0; 16];
        }
        let mut src = Self::concrete_local(s, Some(&via));
        // The sender chose the source (IP_PKTINFO, or the address of the
        // interface its group datagram leaves by).
        if let (Some(ip), Ok(mut me)) = (
            attrs.as_ref().and_then(|a| a.src()),
            IpEp::parse(&src, s.info.domain),
        ) {
            me.ip = ip;
            src = me.to_sockaddr(s.info.domain);
        }
        let from = IpEp::parse(&src, s.info.domain).ok();
        for t in self.table.lookup_all_ip(s.info.ty, ep) {
            let peer = t.sock.inner.lock().dgram_peer;
            if let Some(p) = peer {
                if !from.as_ref().is_some_and(|f| same_ep(&p, f)) {
                    continue;
                }
            }
            if !upcall::takes_group_from(t.handle, dest, &src) {
                continue;
            }
            let seen = match &from {
                Some(f) if t.sock.info.domain != s.info.domain => f.to_sockaddr(t.sock.info.domain),
                _ => src,
            };
            let _ = deliver(t.handle, &frag.with_addr(seen.as_bytes()), attrs.as_ref());
        }
        Ok(())
    }

    fn write_dgram(
        &self,
        s: &Arc<LoSock>,
        sock: &SockRef<'_>,
        frag: &Fragment<'_>,
        attrs: Option<&DgramAttrs>,
        scm: Option<u64>,
    ) -> Result<(), Errno> {
        if s.info.domain == AF_UNIX {
            return self.write_unix_dgram(s, sock, frag, scm);
        }
        let dest = if frag.addr.is_empty() {
            let p = s.inner.lock().dgram_peer;
            match p {
                Some(p) => p,
                None if s.peer.load(Ordering::Acquire) != 0 => SockAddr::unnamed(AF_UNIX),
                None => return Err(EDESTADDRREQ),
            }
        } else {
            SockAddr::from_bytes(frag.addr).ok_or(EINVAL)?
        };
        let connected = frag.addr.is_empty();
        let pair_peer = s.peer.load(Ordering::Acquire);
        if connected && pair_peer != 0 {
            let unnamed = SockAddr::unnamed(AF_UNIX);
            let out = frag.with_addr(unnamed.as_bytes());
            return match deliver_unix(SockHandle(pair_peer), &out, scm) {
                Err(ENOBUFS) => Err(EAGAIN),
                Err(EBADF) => Err(ECONNREFUSED),
                r => r,
            };
        }
        self.autobind(s, sock.opts, false, EAGAIN)?;
        let (target, ep, src) = match s.info.domain {
            AF_INET | AF_INET6 => {
                let ep = IpEp::parse(&dest, s.info.domain)?;
                // Linux's UDP refuses destination port 0; a socket
                // connected to port 0 sends where nothing can listen (the
                // datagram is lost, the send succeeds).
                if ep.port == 0 {
                    return if frag.addr.is_empty() {
                        Ok(())
                    } else {
                        Err(EINVAL)
                    };
                }
                if ep.is_multicast() || ep.is_broadcast() {
                    return self.fan_out(s, frag, &dest, &ep, attrs);
                }
                let mut src = Self::concrete_local(s, Some(&ep));
                // IP_PKTINFO on sendmsg chose this datagram's source.
                if let (Some(ip), Ok(mut me)) = (
                    attrs.and_then(|a| a.src()),
                    IpEp::parse(&src, s.info.domain),
                ) {
                    me.ip = ip;
                    src = me.to_sockaddr(s.info.domain);
                }
                let from = IpEp::parse(&src, s.info.domain).ok();
                // As Linux scores UDP sockets: one connected to the sender
                // first, then the unconnected ones; a socket connected to
                // another peer never receives it.
                let peer_is = |e: &BindEntry, want: Option<&IpEp>| {
                    let p = e.sock.inner.lock().dgram_peer;
                    match (p, want) {
                        (None, None) => true,
                        (Some(p), Some(w)) => same_ep(&p, w),
                        _ => false,
                    }
                };
                let t = from
                    .as_ref()
                    .and_then(|f| {
                        self.table
                            .lookup_ip(s.info.ty, &ep, None, |e| peer_is(e, Some(f)))
                    })
                    .or_else(|| {
                        self.table
                            .lookup_ip(s.info.ty, &ep, from.as_ref(), |e| peer_is(e, None))
                    });
                (t, Some(ep), src)
            }
            _ => {
                let name = UnixName::parse(&dest)?;
                let t = self.table.lookup_unix(s.info.ty, &name)?;
                (t, None, Self::concrete_local(s, None))
            }
        };
        let Some(t) = target else {
            if s.info.domain == AF_UNIX {
                return Err(ECONNREFUSED);
            }
            // The ICMP "port unreachable" a kernel would get back.
            if frag.header.dgram_offset == 0 {
                upcall::unreachable(s.handle(), &dest, frag.payload);
            }
            return Ok(());
        };
        // A connected receiver only takes datagrams from its peer; AF_UNIX
        // tells the sender (EPERM), UDP drops silently. An IP peer is
        // compared as an endpoint: a dual-stack AF_INET6 sender is the
        // AF_INET peer its receiver connected to.
        let peer = t.sock.inner.lock().dgram_peer;
        if let Some(p) = peer {
            let from = match ep {
                Some(_) => IpEp::parse(&src, s.info.domain)
                    .map(|f| same_ep(&p, &f))
                    .unwrap_or(false),
                None => p == src,
            };
            if !from {
                return if s.info.domain == AF_UNIX {
                    Err(EPERM)
                } else {
                    Ok(())
                };
            }
        }
        let src_seen = match (ep, t.sock.info.domain) {
            (Some(_), fam) if fam != s.info.domain => IpEp::parse(&src, s.info.domain)
                .map(|e| e.to_sockaddr(fam))
                .unwrap_or(src),
            _ => src,
        };
        // An unnamed AF_UNIX sender has no address to report.
        let out = frag.with_addr(if s.info.domain == AF_UNIX && src_seen.len() <= 2 {
            &[]
        } else {
            src_seen.as_bytes()
        });
        let attrs = match (attrs, &ep) {
            (Some(a), Some(ep)) => Some(with_dst(a, ep)),
            _ => None,
        };
        let r = match scm {
            Some(_) => deliver_unix(t.handle, &out, scm),
            None => deliver(t.handle, &out, attrs.as_ref()),
        };
        match r {
            Ok(()) => Ok(()),
            // A full receiver drops the datagram, as UDP does; AF_UNIX makes
            // the sender wait instead.
            Err(ENOBUFS) if s.info.domain == AF_UNIX => Err(EAGAIN),
            Err(ENOBUFS) | Err(EBADF) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// net.unix.max_dgram_qlen, read once (10 where there is no kernel).
fn max_dgram_qlen() -> usize {
    static QLEN: AtomicUsize = AtomicUsize::new(usize::MAX);
    let q = QLEN.load(Ordering::Relaxed);
    if q != usize::MAX {
        return q;
    }
    #[cfg(feature = "std")]
    let q = crate::platform::kernel_number("/proc/sys/net/unix/max_dgram_qlen")
        .and_then(|v| usize::try_from(v).ok())
        .unwrap_or(10);
    #[cfg(not(feature = "std"))]
    let q = 10;
    QLEN.store(q, Ordering::Relaxed);
    q
}

impl Loopback {
    /// An AF_UNIX datagram, as unix_dgram_sendmsg sends it: to the
    /// connected peer *socket* (not whatever its name reaches now) or to
    /// the socket a name reaches; EPERM when that one is connected to
    /// another, EPIPE when it is shut for reading; a receiver not connected
    /// back to the sender takes `max_dgram_qlen` + 1 datagrams, then the
    /// sender is turned away (EAGAIN) until a read makes room (as it is
    /// when the receiver's buffer is full).
    fn write_unix_dgram(
        &self,
        s: &Arc<LoSock>,
        sock: &SockRef<'_>,
        frag: &Fragment<'_>,
        scm: Option<u64>,
    ) -> Result<(), Errno> {
        let connected = frag.addr.is_empty();
        let (t, th) = if connected {
            if s.peer.load(Ordering::Acquire) == 0 {
                return Err(ENOTCONN);
            }
            match s.live_peer() {
                Some(p) => {
                    let h = p.handle();
                    (p, h)
                }
                None => {
                    // The peer closed: refused once, then no longer
                    // connected (unix_dgram_disconnected).
                    s.peer.store(0, Ordering::Release);
                    *s.peer_sock.lock() = Weak::new();
                    s.inner.lock().dgram_peer = None;
                    return Err(ECONNREFUSED);
                }
            }
        } else {
            let dest = SockAddr::from_bytes(frag.addr).ok_or(EINVAL)?;
            let e = self
                .table
                .lookup_unix(s.info.ty, &UnixName::parse(&dest)?)?
                .ok_or(ECONNREFUSED)?;
            (e.sock, e.handle)
        };
        self.autobind(s, sock.opts, false, EAGAIN)?;
        if t.closed.load(Ordering::Acquire) {
            return Err(ECONNREFUSED);
        }
        let mine = |x: &Arc<LoSock>| Arc::ptr_eq(x, s);
        let its_peer = t.peer_sock.lock().upgrade();
        let back = its_peer.as_ref().is_some_and(mine);
        // unix_may_send: a receiver connected elsewhere takes nothing.
        if t.peer.load(Ordering::Acquire) != 0 && !back {
            return Err(EPERM);
        }
        if t.rd_shut.load(Ordering::Acquire) {
            return Err(EPIPE);
        }
        let first = frag.header.dgram_offset == 0;
        if first && !mine(&t) && !back {
            // unix_recvq_full: more than max_dgram_qlen queued. Waiting
            // first, then looking: a read in between wakes this sender.
            if upcall::window(th).unwrap_or(0) as usize > max_dgram_qlen() {
                t.add_blocked(s.handle());
                if upcall::window(th).unwrap_or(0) as usize > max_dgram_qlen() {
                    return Err(EAGAIN);
                }
            }
        }
        // A socketpair's end reports the unnamed address; an unnamed
        // sender otherwise none.
        let src = Self::concrete_local(s, None);
        let pair = matches!(s.inner.lock().local, Some(Local::Unix(UnixName::Unnamed)));
        let out = frag.with_addr(if src.len() <= 2 && !pair {
            &[]
        } else {
            src.as_bytes()
        });
        let r = deliver_unix(th, &out, scm);
        // The datagram, once complete, counts as the sender's while the
        // receiver holds it. Recorded after the delivery (no lock held
        // across an upcall), then settled at once against what the
        // receiver holds: a read that came in between is not missed.
        let h = &frag.header;
        if r.is_ok()
            && u64::from(h.dgram_offset) + frag.payload.len() as u64 >= u64::from(h.dgram_total)
        {
            let n = u64::from(h.dgram_total);
            s.outq.fetch_add(n, Ordering::AcqRel);
            t.inflight.lock().push_back((Arc::downgrade(s), n));
            t.settle_inflight(None);
        }
        match r {
            Ok(()) => Ok(()),
            Err(ENOBUFS) => {
                t.add_blocked(s.handle());
                Err(EAGAIN)
            }
            Err(EBADF) => Err(ECONNREFUSED),
            Err(e) => Err(e),
        }
    }
}

/// The attributes a datagram reaches `ep` with: the sender's, and the
/// destination it was sent to.
fn with_dst(a: &DgramAttrs, ep: &IpEp) -> DgramAttrs {
    let mut a = *a;
    a.dst = ep.ip;
    a.flags |= crate::backend::attrs::ATTR_DST;
    a
}

/// The calling process's credentials as SO_PEERCRED records them (the
/// effective ids), `None` without a kernel to ask.
fn own_cred() -> Option<PeerCred> {
    crate::platform::scm::ids().map(|i| PeerCred {
        pid: i.pid,
        uid: i.euid,
        gid: i.egid,
    })
}

/// Tells the frontend the peer credentials of AF_UNIX socket `h`.
fn tell_cred(h: SockHandle, cred: Option<PeerCred>) {
    if let Some(c) = cred {
        let _ = upcall::peer_cred(h, c);
    }
}

/// Delivers an AF_UNIX message's first fragment with its attachment
/// (`scm`), any other fragment alone.
fn deliver_unix(h: SockHandle, frag: &Fragment<'_>, scm: Option<u64>) -> Result<(), Errno> {
    match scm {
        Some(id) => upcall::deliver_scm(h, frag, id),
        None => upcall::deliver(h, frag),
    }
}

/// Delivers, with the datagram's attributes when there are any.
fn deliver(h: SockHandle, frag: &Fragment<'_>, attrs: Option<&DgramAttrs>) -> Result<(), Errno> {
    match attrs {
        Some(a) => upcall::deliver_attrs(h, frag, a),
        None => upcall::deliver(h, frag),
    }
}

impl Backend for Loopback {
    fn name(&self) -> &str {
        "loopback"
    }

    fn supports(&self, info: &SockInfo) -> bool {
        matches!(info.domain, AF_INET | AF_INET6 | AF_UNIX)
            && (matches!(info.ty, SOCK_STREAM | SOCK_DGRAM)
                || (info.domain == AF_UNIX && info.ty == SOCK_SEQPACKET))
    }

    fn claim(
        &self,
        handle: SockHandle,
        info: &SockInfo,
        _op: ClaimOp,
        _addr: &SockAddr,
    ) -> Result<Option<SockState>, Errno> {
        Ok(Some(LoSock::new(*info, handle)))
    }

    fn bind(&self, sock: SockRef<'_>, addr: &SockAddr) -> Result<SockAddr, Errno> {
        let s = arc(&sock)?;
        if s.inner.lock().local.is_some() {
            return Err(EINVAL);
        }
        let bound = self.do_bind(&s, sock.handle, addr, sock.opts, false)?;
        s.inner.lock().user_port = addr.inet_port().is_some_and(|p| p != 0);
        Ok(bound)
    }

    fn disconnect(&self, sock: SockRef<'_>) -> Result<(), Errno> {
        let s = arc(&sock)?;
        if s.info.ty != SOCK_STREAM || s.info.domain == AF_UNIX {
            return Err(EOPNOTSUPP);
        }
        // Neither end reaches the other any more: the peer's next write
        // finds nobody (a reset), never this socket's next connection.
        s.peer.store(0, Ordering::Release);
        let p = core::mem::take(&mut *s.peer_sock.lock()).upgrade();
        if let Some(p) = p.filter(|p| !Arc::ptr_eq(p, &s)) {
            let _ = p
                .peer
                .compare_exchange(sock.handle.0, 0, Ordering::AcqRel, Ordering::Acquire);
        }
        for f in [&s.got_fin, &s.fin_first, &s.rst_sent] {
            f.store(false, Ordering::Release);
        }
        s.maxseg.store(0, Ordering::Release);
        s.peer_maxseg.store(0, Ordering::Release);
        // A connect still waiting for room in a listener's queue is given
        // up there.
        let parked = core::mem::take(&mut s.inner.lock().parked_at).upgrade();
        if let Some(l) = parked {
            l.inner.lock().pending.retain(|(c, _)| !Arc::ptr_eq(c, &s));
        }
        let key = {
            let mut inner = s.inner.lock();
            inner.peer_addr = None;
            if inner.user_port {
                None
            } else {
                // The port goes back (tcp_set_state's inet_put_port).
                inner.local = None;
                inner.tw = None;
                inner.key.take()
            }
        };
        if let Some(k) = key {
            self.table.unbind(&k, sock.handle);
        }
        Ok(())
    }

    fn listen(&self, sock: SockRef<'_>, _backlog: u32) -> Result<(), Errno> {
        let s = arc(&sock)?;
        self.autobind(&s, sock.opts, false, EADDRINUSE)?;
        // Lock order: a shard's lock, then a socket's; never the reverse
        // (a datagram lookup reads the bound sockets' peers under the shard).
        let key = s.inner.lock().key.clone();
        if let Some(key) = key {
            self.table.check_listen(&key, &s)?;
        }
        s.maxseg.store(sock.opts.maxseg, Ordering::Release);
        s.listening.store(true, Ordering::Release);
        if s.info.domain == AF_UNIX {
            // A listener's SO_PEERCRED is its own, as of listen().
            let me = own_cred();
            s.inner.lock().listen_cred = me;
            tell_cred(sock.handle, me);
        }
        Ok(())
    }

    fn connect(&self, sock: SockRef<'_>, dest: &SockAddr) -> Result<(), Errno> {
        let s = arc(&sock)?;
        if s.info.ty == SOCK_DGRAM {
            if dest.family() == AF_UNSPEC {
                s.inner.lock().dgram_peer = None;
                s.peer.store(0, Ordering::Release);
                *s.peer_sock.lock() = Weak::new();
                return Ok(());
            }
            match s.info.domain {
                AF_UNIX => {
                    // The peer is the socket the name reaches now, kept
                    // after the name goes (unix_peer); the name stays for
                    // getpeername.
                    let t = self.unix_target(s.info.ty, &UnixName::parse(dest)?)?;
                    *s.peer_sock.lock() = Arc::downgrade(&t.sock);
                    s.peer.store(t.handle.0, Ordering::Release);
                }
                fam => {
                    IpEp::parse(dest, fam)?;
                    self.autobind(&s, sock.opts, false, EAGAIN)?;
                }
            }
            s.inner.lock().dgram_peer = Some(*dest);
            return Ok(());
        }
        self.autobind(&s, sock.opts, true, EADDRNOTAVAIL)?;
        s.maxseg.store(sock.opts.maxseg, Ordering::Release);
        if self.connect_self(&s, dest)? {
            return Ok(());
        }
        match self.find_listener(&s, dest) {
            Ok((l, ep)) => self.offer(&l, &s, dest, ep)?,
            Err(ECONNREFUSED) => {
                let _ = upcall::refused(sock.handle, ECONNREFUSED);
            }
            Err(e) => return Err(e),
        }
        Ok(())
    }

    fn accepted(&self, listener: SockRef<'_>) {
        let Ok(l) = lo(&listener) else { return };
        let next = l.inner.lock().pending.pop_front();
        if let Some((c, dest)) = next {
            if let Ok((entry, ep)) = self.find_listener(&c, &dest) {
                let _ = self.offer(&entry, &c, &dest, ep);
            } else {
                let _ = upcall::refused(c.handle(), ECONNREFUSED);
            }
        }
    }

    fn shutdown(&self, sock: SockRef<'_>, how: i32) -> Result<(), Errno> {
        let s = lo(&sock)?;
        if s.info.domain != AF_UNIX || how == SHUT_WR {
            return Ok(());
        }
        s.rd_shut.store(true, Ordering::Release);
        // unix_shutdown: the stream or seqpacket peer may send no more
        // (EPIPE, and SIGPIPE for a stream); what it wrote before stays
        // readable.
        if s.info.ty != SOCK_DGRAM {
            if let Some(p) = s.live_peer() {
                let _ = upcall::hangup(p.handle());
            }
        }
        Ok(())
    }

    fn write(&self, sock: SockRef<'_>, frag: &Fragment<'_>) -> Result<(), Errno> {
        match frag.header.kind {
            FragKind::Stream => {
                let s = lo(&sock)?;
                if frag.header.flags & FLAG_RST != 0 {
                    s.rst_sent.store(true, Ordering::Release);
                }
                if frag.header.flags & FLAG_FIN != 0 {
                    if !s.got_fin.load(Ordering::Acquire) {
                        s.fin_first.store(true, Ordering::Release);
                    }
                    // Tell the peer's loopback state too, for EPIPE vs ECONNRESET.
                    if let Some(p) = s.live_peer() {
                        p.got_fin.store(true, Ordering::Release);
                    }
                }
                self.write_stream(s, frag, None)
            }
            FragKind::Dgram => {
                let s = arc(&sock)?;
                self.write_dgram(&s, &sock, frag, None, None)
            }
        }
    }

    fn write_scm(&self, sock: SockRef<'_>, frag: &Fragment<'_>, scm: u64) -> Result<(), Errno> {
        match frag.header.kind {
            FragKind::Stream if frag.header.flags & (FLAG_FIN | FLAG_RST) == 0 => {
                self.write_stream(lo(&sock)?, frag, Some(scm))
            }
            FragKind::Stream => self.write(sock, frag),
            FragKind::Dgram => {
                let s = arc(&sock)?;
                self.write_dgram(&s, &sock, frag, None, Some(scm))
            }
        }
    }

    fn write_attrs(
        &self,
        sock: SockRef<'_>,
        frag: &Fragment<'_>,
        attrs: &DgramAttrs,
    ) -> Result<(), Errno> {
        match frag.header.kind {
            FragKind::Dgram => {
                let s = arc(&sock)?;
                self.write_dgram(&s, &sock, frag, Some(attrs), None)
            }
            FragKind::Stream => self.write(sock, frag),
        }
    }

    fn window(&self, sock: SockRef<'_>, limit: u64) {
        if let Ok(s) = lo(&sock) {
            if s.info.domain == AF_UNIX && s.info.ty == SOCK_DGRAM {
                // A read: what is still queued (the frontend's count) stays
                // accounted to its senders, what left is theirs again.
                s.settle_inflight(None);
                s.wake_blocked();
                return;
            }
            let peer = s.peer.load(Ordering::Acquire);
            if peer != 0 {
                let _ = upcall::credit(SockHandle(peer), limit);
            }
        }
    }

    fn unread(&self, sock: SockRef<'_>) -> Option<u64> {
        let s = lo(&sock).ok()?;
        if s.info.domain != AF_UNIX {
            return None;
        }
        if s.info.ty == SOCK_DGRAM {
            return Some(s.outq.load(Ordering::Acquire));
        }
        // A stream's unread bytes are all in its peer's buffer.
        match s.live_peer() {
            Some(p) => upcall::held(p.handle()).ok(),
            None => Some(0),
        }
    }

    /// TCP_MAXSEG on a listener after listen() (see `store_maxseg`).
    fn setsockopt(
        &self,
        sock: SockRef<'_>,
        level: i32,
        name: i32,
        value: &[u8],
    ) -> Result<(), Errno> {
        store_maxseg(level, name, value, lo(&sock).ok().map(|x| &x.maxseg));
        Ok(())
    }

    fn peer_maxseg(&self, sock: SockRef<'_>) -> u32 {
        lo(&sock).map_or(0, |s| s.peer_maxseg.load(Ordering::Acquire))
    }

    fn local_addr(&self, sock: SockRef<'_>) -> Option<SockAddr> {
        let s = lo(&sock).ok()?;
        let inner = s.inner.lock();
        inner.local.as_ref().map(|l| l.to_sockaddr(s.info.domain))
    }

    fn peer_addr(&self, sock: SockRef<'_>) -> Option<SockAddr> {
        let s = lo(&sock).ok()?;
        let inner = s.inner.lock();
        inner.peer_addr.or(inner.dgram_peer)
    }

    fn socketpair(
        &self,
        a: SockHandle,
        b: SockHandle,
        info: &SockInfo,
    ) -> Result<(SockState, SockState), Errno> {
        if info.domain != AF_UNIX {
            return Err(EOPNOTSUPP);
        }
        let (sa, sb) = (LoSock::new(*info, a), LoSock::new(*info, b));
        let unnamed = SockAddr::unnamed(AF_UNIX);
        for s in [&sa, &sb] {
            let mut i = s.inner.lock();
            i.local = Some(Local::Unix(UnixName::Unnamed));
            i.peer_addr = Some(unnamed);
        }
        // Datagram pairs have no names either: they know each other.
        LoSock::link(&sa, &sb);
        // Both ends: their creator's.
        let me = own_cred();
        tell_cred(a, me);
        tell_cred(b, me);
        if info.ty != SOCK_DGRAM {
            let _ = upcall::credit(a, upcall::window(b)?);
            let _ = upcall::credit(b, upcall::window(a)?);
        }
        upcall::connected(a)?;
        upcall::connected(b)?;
        Ok((sa, sb))
    }

    fn close(&self, sock: SockRef<'_>) {
        let Ok(s) = arc(&sock) else { return };
        s.closed.store(true, Ordering::Release);
        // Senders waiting for room learn the receiver is gone; what it
        // held is no longer theirs to count.
        s.wake_blocked();
        s.settle_inflight(Some(0));
        s.listening.store(false, Ordering::Release);
        let peer = s.peer.swap(0, Ordering::AcqRel);
        if peer != 0 && s.info.domain == AF_UNIX && s.info.ty != SOCK_DGRAM {
            // Linux shuts both directions of the survivor of an AF_UNIX pair.
            let _ = upcall::hangup(SockHandle(peer));
        }
        let (key, pending, tw) = {
            let mut inner = s.inner.lock();
            let tw = Self::time_wait_record(&s, &inner, sock.handle);
            (inner.key.take(), core::mem::take(&mut inner.pending), tw)
        };
        if let Some((place, rec)) = tw {
            self.table.time_wait(&place, sock.handle, rec);
        } else if let Some(k) = key {
            self.table.unbind(&k, sock.handle);
        }
        for (c, _) in pending {
            let _ = upcall::refused(c.handle(), ECONNREFUSED);
        }
    }

    #[cfg(feature = "std")]
    fn fork(&self) -> Option<&dyn ForkAware> {
        Some(self)
    }
}

#[cfg(feature = "std")]
impl ForkAware for Loopback {
    fn fork_prepare(&self) {
        self.table.fork_lock();
    }

    fn fork_parent(&self) {
        self.table.fork_unlock();
    }

    fn fork_child(&self) {
        // On the thread that forked, the child's only thread.
        self.table.fork_unlock();
    }
}

/// Whether the IP address `a` (either family) is the endpoint `ep`: same
/// address (IPv4 and its v4-mapped IPv6 form are one) and port.
fn same_ep(a: &SockAddr, ep: &IpEp) -> bool {
    IpEp::parse(a, a.family()).is_ok_and(|e| e.ip == ep.ip && e.port == ep.port)
}

fn arc(sock: &SockRef<'_>) -> Result<Arc<LoSock>, Errno> {
    sock.state.clone().downcast::<LoSock>().map_err(|_| EINVAL)
}

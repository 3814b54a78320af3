//! The cross-process backend: user-space sockets of different processes
//! that share a network directory reach each other.
//!
//! Transport: kernel AF_UNIX stream sockets in the directory. Why: they are
//! local only, carry the owner's permissions (the directory is 0700, and
//! both ends check the other's credentials with SO_PEERCRED, so another
//! user's processes cannot reach in), report a dead peer at once (EOF or
//! ECONNRESET on its socket: the frontend turns that into end-of-stream or
//! a reset, never a hang), cannot corrupt bytes (frames go unsummed), and
//! need no shared-memory bookkeeping. Measured against the kernel's
//! loopback (`make bench-preload`), bulk transfer is on par once windows
//! autotune.
//!
//! - A bound stream port is a listening AF_UNIX stream socket `DIR/t<port>`,
//!   a datagram port one at `DIR/u<port>`, for the port's IPv4 addresses;
//!   its IPv6 addresses have their own, `DIR/t<port>.v6` and
//!   `DIR/u<port>.v6`, so an IPv4 bind and an IPV6_V6ONLY bind of one port
//!   coexist as on Linux. A bind to `::` without IPV6_V6ONLY takes both
//!   names: the socket at the IPv4 one and a symbolic link at the IPv6
//!   one. (Within a family every address is local and one.)
//! - A stream port that processes share by SO_REUSEPORT is a directory at
//!   `t<port>` with a listening socket per process (`ports::join_group`;
//!   a process's sockets in the group share its one): a connect that
//!   finds the directory picks one by the hash of its own address and
//!   port, passing over members that refuse.
//! - A stream connection is one AF_UNIX stream connection carrying xproc's
//!   own messages (`envelope`: an 8-byte envelope naming the type, then the
//!   body): DATA (one fragment in the portable encoding, `backend::wire`,
//!   as the frontend built it: data with FIN/RST flags), and the control
//!   messages HELLO (client address), ACCEPT (initial window, server
//!   address), WINDOW (new receive window end).
//! - Datagrams to a port travel on a link: one AF_UNIX stream from this
//!   process to that port, shared by all our sockets sending there, each
//!   a DATA message whose fragment names its source (see `DGRAM_LINKS` for why not AF_UNIX
//!   datagrams). A receiver whose buffer is full holds its senders back
//!   (its link pauses: nothing is lost), unless it set SO_RXQ_OVFL, which
//!   asks for Linux's UDP: what does not fit is dropped and counted, in
//!   the receiving process, against its frontend's buffer
//!   (`receive::read_datagrams`). The senders need not know.
//! - Processes share a datagram port (its sockets all with SO_REUSEADDR,
//!   or all SO_REUSEPORT) through a member file each, the port's file a
//!   symbolic link to the last bound one's; a datagram to a group or
//!   broadcast address goes to every member process, once (`shared`).
//! - One transport thread per process reads every kernel socket through
//!   epoll and makes the upcalls; writes go out from the caller's thread and
//!   what the kernel cannot take at once is queued and flushed by the
//!   transport thread (operations never block).
//! - A stream socket in a program's epoll set has its connection's input
//!   read by the program's threads when they wait there (`Backend::
//!   input_fd`, `input_watched`, `pump`), as the kernel does for TCP: the
//!   kernel wakes the waiting thread directly, and nobody while the
//!   program is busy, instead of the transport thread each time, which
//!   then wakes the program's. The transport takes the input back when a
//!   thread blocks on the socket in any other way (`input_wanted`), and at
//!   close.
//! - A thread that blocks receiving on a UDP socket reads one of its
//!   port's links itself (`dgram::direct_link`): the kernel wakes it when
//!   a datagram comes, one wake-up per datagram as for a kernel UDP
//!   socket, instead of the transport thread's and then the program's.
//!   The transport takes the link back for good once the receiver is full
//!   (it then holds the sender back as before) or a thread waits where it
//!   cannot read it (poll, select), and for a while once nobody has read
//!   it for `receive::DIRECT_IDLE_MS` (so what comes while no thread
//!   receives is delivered, or with SO_RXQ_OVFL dropped, as before).
//! - A TCP connect that finds its listener's accept queue full waits (its
//!   HELLO is parked on the listener, `Transport::admit_waiting`) until
//!   accept() makes room, as Linux drops the SYN until then; the
//!   listener's close refuses it.
//! - Within one process, a send is in its receiver's buffer when it
//!   returns, as over Linux's lo: a datagram to a port of this process is
//!   read by its sender, and the two ends of a connection are twins
//!   (`unix::pump_twin`), each reading the other's writes.
//! - A socket file left by a dead process refuses connections: it is
//!   removed and the name reused.
//! - A stream port in TIME_WAIT (an active close of a connection on a
//!   port some file held) has a record beside its file, `DIR/t<port>.tw`
//!   or `DIR/t<port>.v6.tw`: when it ends and which SO_REUSEADDR and
//!   SO_REUSEPORT it had. A bind of the port checks it; it expires lazily
//!   (`ports::time_wait`).
//! - A malformed message, or one against the protocol, ends that connection
//!   (or link) and nothing else.
//! - AF_UNIX stream and datagram sockets ride the same connections and
//!   links; a pathname or abstract name leads to a rendezvous socket in the
//!   directory instead of a port file (the design, and why, is in `unix`).
//!
//! Here: the backend's operations. `envelope` is the message format,
//! `conn` holds a kernel socket of the transport and its output, `thread`
//! the transport thread and what it watches, `receive` messages coming in
//! and the connection protocol, `dgram` datagram ports and links, `ports`
//! the socket files, `shared` datagram ports several processes hold,
//! `unix` AF_UNIX names, `fork` the locks around
//! fork(), `status` the endpoint `usockstat` lists the sockets through
//! (`DIR/.stat/<pid>`). Its system calls are
//! `platform::unix_ipc`'s safe functions.
#![deny(unsafe_code)]

mod conn;
mod dgram;
mod envelope;
mod fork;
pub(crate) mod ports;
mod receive;
pub(crate) mod shared;
mod state;
mod status;
mod thread;
mod unix;

use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::any::Any;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::path::PathBuf;

use crate::addr::IpEp;
use crate::addr::SockAddr;
use crate::backend::attrs::ATTR_LEN;
use crate::backend::contract::*;
use crate::backend::upcall;
use crate::consts::*;
use crate::platform::unix_ipc as kernel;
use crate::sync::Mutex;
use conn::*;
use dgram::*;
use kernel::*;
use thread::*;

/// An address as a socket of `family` sees it: IPv4 as v4-mapped IPv6 for
/// an AF_INET6 socket (a dual-stack peer), v4-mapped IPv6 as IPv4 for an
/// AF_INET one.
fn seen_as(a: &SockAddr, family: i32) -> SockAddr {
    if a.family() == family {
        return *a;
    }
    match IpEp::parse(a, a.family()) {
        Ok(ep) if family == AF_INET6 || ep.is_v4() => ep.to_sockaddr(family),
        _ => *a,
    }
}

/// The backend's state of one socket.
pub struct XSock {
    info: SockInfo,
    /// Itself, for the records that name it without keeping it alive
    /// (a port's members, a connection's socket).
    me: Weak<XSock>,
    local: Mutex<Option<SockAddr>>,
    peer: Mutex<Option<SockAddr>>,
    /// The stream connection, the datagram socket, or the listener.
    conn: Mutex<Option<Arc<Conn>>>,
    /// The socket files this socket owns (removed at close).
    paths: Mutex<alloc::vec::Vec<PathBuf>>,
    /// A stream connected to itself (see `XProc::connect_self`): what it
    /// writes is delivered to it in place, with no kernel socket between.
    to_self: core::sync::atomic::AtomicBool,
    /// This end sent its FIN before the peer's arrived (the active close:
    /// a TIME_WAIT record at close, see `ports::time_wait`).
    fin_first: core::sync::atomic::AtomicBool,
    /// This end reset its connection: no TIME_WAIT.
    rst_sent: core::sync::atomic::AtomicBool,
    /// The kernel socket at the port files of a stream socket bound before
    /// it connected: it holds the port while the connection lives.
    bound: Mutex<Option<Arc<Conn>>>,
    /// A stream connect's ephemeral port and the destination it reaches
    /// (`ports::connect_port`), given back at close.
    eph: Mutex<Option<(u16, [u8; 16], u16)>>,
    /// The SO_REUSEPORT group of stream sockets this one shares its port's
    /// kernel listener with (`ports::stream_group_key`).
    group: Mutex<Option<u32>>,
    /// AF_UNIX: where its name's rendezvous is (see `unix`).
    unix: Mutex<Option<unix::Place>>,
    /// AF_UNIX datagrams: the rendezvous of the peer it is connected to,
    /// found at connect() (it outlives the peer's path, as on Linux).
    target: Mutex<Option<PathBuf>>,
    /// AF_UNIX listeners: this process's credentials at listen(), which
    /// its clients' SO_PEERCRED reports.
    cred: Mutex<Option<PeerCred>>,
    /// TCP listeners: connections that found the accept queue full, in
    /// the order they came (see `Transport::admit_waiting`).
    waiting: Mutex<alloc::collections::VecDeque<receive::Waiting>>,
    /// The MSS this socket advertises (`SockOpts::maxseg` as of connect
    /// or listen; an accepted socket, its listener's): HELLO and ACCEPT
    /// carry it.
    maxseg: AtomicU32,
    /// The MSS the other end's HELLO or ACCEPT carried.
    peer_maxseg: AtomicU32,
}

impl XSock {
    fn new(info: SockInfo) -> Arc<XSock> {
        Arc::new_cyclic(|me| XSock {
            info,
            me: me.clone(),
            local: Mutex::new(None),
            peer: Mutex::new(None),
            conn: Mutex::new(None),
            paths: Mutex::new(alloc::vec::Vec::new()),
            to_self: core::sync::atomic::AtomicBool::new(false),
            fin_first: core::sync::atomic::AtomicBool::new(false),
            rst_sent: core::sync::atomic::AtomicBool::new(false),
            bound: Mutex::new(None),
            eph: Mutex::new(None),
            group: Mutex::new(None),
            unix: Mutex::new(None),
            target: Mutex::new(None),
            cred: Mutex::new(None),
            waiting: Mutex::new(alloc::collections::VecDeque::new()),
            maxseg: AtomicU32::new(0),
            peer_maxseg: AtomicU32::new(0),
        })
    }
}

fn xs<'a>(s: &SockRef<'a>) -> Result<&'a XSock, Errno> {
    (s.state.as_ref() as &dyn Any)
        .downcast_ref::<XSock>()
        .ok_or(EINVAL)
}

/// The stream connection of `sock`, if it has one (not a listener's or a
/// datagram port's socket: their input is the transport thread's).
fn stream_conn(sock: &SockRef<'_>) -> Option<Arc<Conn>> {
    let c = xs(sock).ok()?.conn.lock().clone()?;
    matches!(c.role, Role::Stream).then_some(c)
}

impl XProc {
    /// A stream socket bound to the address and port it connects to:
    /// Linux's simultaneous open connects it to itself, and it reads what
    /// it writes. Nothing crosses a process, so no connection is made:
    /// `write` delivers in place. False when `dest` is another address.
    fn connect_self(x: &XSock, h: SockHandle, dest: &IpEp) -> bool {
        let Some(me) = *x.local.lock() else {
            return false;
        };
        let Ok(mut m) = IpEp::parse(&me, x.info.domain) else {
            return false;
        };
        if m.is_wild() {
            m.ip = dest.source_for();
        }
        if m.port != dest.port || m.ip != dest.ip {
            return false;
        }
        let me = m.to_sockaddr(x.info.domain);
        *x.local.lock() = Some(me);
        *x.peer.lock() = Some(me);
        x.peer_maxseg
            .store(x.maxseg.load(Ordering::Acquire), Ordering::Release);
        x.to_self.store(true, Ordering::Release);
        if let Ok(w) = upcall::window(h) {
            let _ = upcall::credit(h, w);
        }
        let _ = upcall::connected(h);
        true
    }
}

/// The cross-process backend over a network directory.
pub struct XProc {
    dir: PathBuf,
    next_port: AtomicU64,
    /// The network's count of changes to datagram ports' files
    /// (`shared::PortsGen`), mapped at first use.
    ports_gen: std::sync::OnceLock<Option<crate::platform::shared_mem::SharedMem>>,
    /// Shared ports' last-bound members as read at a count of
    /// `ports_gen` (`shared::last_bound`).
    last_bound: Mutex<alloc::collections::BTreeMap<u32, (u64, shared::LastBound)>>,
}

impl XProc {
    /// A datagram fragment, with its attributes when the frontend gave
    /// them: they ride at the end of the DATA frame's address
    /// (`dgram::split_addr`).
    fn write_dgram(
        &self,
        sock: SockRef<'_>,
        x: &XSock,
        frag: &Fragment<'_>,
        attrs: Option<&DgramAttrs>,
    ) -> Result<(), Errno> {
        self.autobind(x, sock.handle, sock.opts)?;
        let dest = if frag.addr.is_empty() {
            x.peer.lock().ok_or(EDESTADDRREQ)?
        } else {
            SockAddr::from_bytes(frag.addr).ok_or(EINVAL)?
        };
        let ep = IpEp::parse(&dest, x.info.domain)?;
        // Port 0: refused as a destination; a socket connected there sends
        // where nothing can listen (lost, as on Linux).
        if ep.port == 0 {
            return if frag.addr.is_empty() {
                Ok(())
            } else {
                Err(EINVAL)
            };
        }
        let group = ep.is_multicast() || ep.is_broadcast();
        let src = {
            let mut l = x.local.lock().ok_or(EINVAL)?;
            if let Ok(mut me) = IpEp::parse(&l, x.info.domain) {
                // IP_PKTINFO on sendmsg chose this datagram's source.
                if let Some(ip) = attrs.and_then(|a| a.src()) {
                    me.ip = ip;
                    l = me.to_sockaddr(x.info.domain);
                } else if me.is_wild() {
                    me.ip = if group {
                        dgram::group_source(&ep)
                    } else {
                        ep.source_for()
                    };
                    l = me.to_sockaddr(x.info.domain);
                }
            }
            l
        };
        // A datagram to a group or broadcast address carries the
        // destination after its source: the receiving process
        // gives a copy to each socket of the port that takes it. The
        // attributes, with the destination the sender used, come last.
        let mut both = [0u8; 2 * crate::addr::ADDR_MAX + ATTR_LEN];
        let to = ep.to_sockaddr(x.info.domain);
        let a = src.as_bytes();
        both[..a.len()].copy_from_slice(a);
        let mut n = a.len();
        if group {
            let d = to.as_bytes();
            both[n..n + d.len()].copy_from_slice(d);
            n += d.len();
        }
        if let Some(at) = attrs {
            let mut at = *at;
            at.dst = ep.ip;
            at.flags |= crate::backend::attrs::ATTR_DST;
            both[n..n + ATTR_LEN].copy_from_slice(&at.to_bytes());
            n += ATTR_LEN;
        }
        let addr = &both[..n];
        let out = frag.with_addr(addr);
        let hdr = envelope::data_header(&out)?;
        // Nobody bound there, or the link is gone: dropped, as UDP
        // does, and told as the ICMP port unreachable a kernel would
        // get back (the frontend decides who sees it).
        let dest = if ep.is_v4() {
            ports::Space::V4
        } else {
            ports::Space::V6
        };
        let key = ports::port_key(ep.port, dest);
        let first = out.header.dgram_offset == 0;
        let last = u64::from(out.header.dgram_offset) + out.payload.len() as u64
            >= u64::from(out.header.dgram_total);
        let parts = [&hdr[..], out.addr, out.payload];
        if group {
            // Processes sharing the port get a copy each.
            if let Some(links) = self.member_links(key) {
                for link in links {
                    match link.datagram(transport(), sock.handle, first, &parts) {
                        // A member with no room drops its copy, as UDP does.
                        Ok(()) | Err(EAGAIN) => {}
                        Err(_) => {
                            drop_link(&link);
                            transport().remove(&link);
                        }
                    }
                }
                if last {
                    self.settle_local(key);
                }
                return Ok(());
            }
        }
        // SO_REUSEPORT's hash across processes: the source's.
        let from = IpEp::parse(&src, x.info.domain).map_or(0, |e| e.flow_hash());
        let Some(link) = self.link(key, from) else {
            if out.header.dgram_offset == 0 {
                upcall::unreachable(sock.handle, &ep.to_sockaddr(sock.info.domain), frag.payload);
            }
            return Ok(());
        };
        let mut link = link;
        for again in [true, false] {
            match link.datagram(transport(), sock.handle, first, &parts) {
                Ok(()) if last => self.settle_local(key),
                Ok(()) => {}
                Err(EAGAIN) => return Err(EAGAIN),
                Err(_) => {
                    drop_link(&link);
                    transport().remove(&link);
                    // Its process ended before we saw the link close: a
                    // port that processes share has another to take it.
                    if let Some(l) = self.link(key, from).filter(|_| again && first) {
                        link = l;
                        continue;
                    }
                }
            }
            break;
        }
        Ok(())
    }
}

impl XProc {
    /// After a send to datagram port `key` (a `port_key`): when a socket
    /// of this process is there, the datagram is delivered before the send
    /// returns, as over Linux's lo, where a readiness wait, a SIGIO or a
    /// recv after SHUT_RD sees it at once.
    fn settle_local(&self, key: u32) {
        let local = DGRAM_PORTS.lock().get(&key).map(|p| p.conn.clone());
        if let Some(p) = local {
            transport().settle_port(&p);
        }
    }
}

impl Backend for XProc {
    fn name(&self) -> &str {
        "xproc"
    }

    fn supports(&self, info: &SockInfo) -> bool {
        matches!(info.domain, AF_INET | AF_INET6 | AF_UNIX)
            && (matches!(info.ty, SOCK_STREAM | SOCK_DGRAM)
                || (info.domain == AF_UNIX && info.ty == SOCK_SEQPACKET))
    }

    fn claim(
        &self,
        _h: SockHandle,
        info: &SockInfo,
        _op: ClaimOp,
        _addr: &SockAddr,
    ) -> Result<Option<SockState>, Errno> {
        Ok(Some(XSock::new(*info)))
    }

    fn bind(&self, sock: SockRef<'_>, addr: &SockAddr) -> Result<SockAddr, Errno> {
        let x = xs(&sock)?;
        if x.info.domain == AF_UNIX {
            return self.unix_bind(x, sock.handle, addr);
        }
        let ep = IpEp::parse(addr, x.info.domain)?;
        if !ep.bindable() && !sock.opts.freebind && !crate::platform::is_host_address(&ep.ip) {
            return Err(EADDRNOTAVAIL);
        }
        self.bind_ep(x, sock.handle, ep, sock.opts)
    }

    fn listen(&self, sock: SockRef<'_>, backlog: u32) -> Result<(), Errno> {
        let x = xs(&sock)?;
        if x.info.domain == AF_UNIX {
            self.unix_listen(x, backlog)?;
            // A listener's own SO_PEERCRED is its credentials as of
            // listen() (Linux's init_peercred in unix_listen).
            let _ = upcall::peer_cred(sock.handle, unix::own_cred());
            return Ok(());
        }
        self.autobind(x, sock.handle, sock.opts)?;
        x.maxseg.store(sock.opts.maxseg, Ordering::Release);
        self.join_listeners(x, sock.handle, sock.opts)?;
        let c = x.conn.lock().clone().ok_or(EINVAL)?;
        kernel::listen(c.kfd, backlog.clamp(1, i32::MAX as u32) as i32)?;
        transport().add(c)?;
        // A listen() again may have made room.
        transport().admit_waiting(x);
        Ok(())
    }

    fn accepted(&self, listener: SockRef<'_>) {
        if let Ok(x) = xs(&listener) {
            transport().admit_waiting(x);
        }
    }

    fn connect(&self, sock: SockRef<'_>, dest: &SockAddr) -> Result<(), Errno> {
        let x = xs(&sock)?;
        if x.info.ty == SOCK_DGRAM && dest.family() == AF_UNSPEC {
            // Dissolve the association (the frontend cleared its flag).
            *x.peer.lock() = None;
            x.target.lock().take();
            return Ok(());
        }
        if x.info.domain == AF_UNIX {
            return if x.info.ty == SOCK_DGRAM {
                self.unix_connect_dgram(x, dest)
            } else {
                self.unix_connect(sock, x, dest)
            };
        }
        let ep = IpEp::parse(dest, x.info.domain)?;
        if x.info.ty == SOCK_DGRAM {
            // inet_autobind: EAGAIN when the range has no free port.
            match self.autobind(x, sock.handle, sock.opts) {
                Err(EADDRINUSE) => return Err(EAGAIN),
                r => r?,
            }
            *x.peer.lock() = Some(*dest);
            return Ok(());
        }
        x.maxseg.store(sock.opts.maxseg, Ordering::Release);
        if Self::connect_self(x, sock.handle, &ep) {
            return Ok(());
        }
        // A socket bound first keeps its port (its files stay bound, see
        // `bound`); otherwise an ephemeral one, held by no file.
        let bound = x
            .local
            .lock()
            .and_then(|l| IpEp::parse(&l, x.info.domain).ok());
        let port = match bound {
            Some(b) if b.port != 0 => b.port,
            _ => self.connect_port(x, &ep, sock.opts)?,
        };
        let path = self.path(SOCK_STREAM, ep.port, !ep.is_v4());
        let (a, len) = unix_addr(&path)?;
        let reached = connect_unix(&a, len).or_else(|e| {
            if !path.is_dir() {
                return Err(e);
            }
            // An SO_REUSEPORT group of processes: the member the hash of
            // this end picks, or the next that listens.
            let from = IpEp {
                ip: ep.source_for(),
                port,
                ..ep
            };
            let reach = |m: &std::path::Path| {
                let (a, len) = unix_addr(m)?;
                connect_unix(&a, len)
            };
            ports::connect_group(&path, &from, reach, |m| self.stale(m)).ok_or(ECONNREFUSED)
        });
        let k = match reached {
            Ok(k) if peer_is_us(k) => k,
            Ok(k) => {
                // Another user's listener: as if nobody listened.
                close_kfd(k);
                let _ = upcall::refused(sock.handle, ECONNREFUSED);
                return Ok(());
            }
            Err(e) => {
                if e == ECONNREFUSED && self.stale(&path) {
                    let _ = std::fs::remove_file(&path);
                }
                let _ = upcall::refused(sock.handle, ECONNREFUSED);
                return Ok(());
            }
        };
        let mut me = ep;
        me.ip = ep.source_for();
        me.port = port;
        let mine = me.to_sockaddr(x.info.domain);
        *x.local.lock() = Some(mine);
        *x.peer.lock() = Some(*dest);
        let c = Arc::new(Conn::new(k, Role::Stream, sock.handle, sock.handle));
        *c.sock.lock() = x.me.clone();
        let was = x.conn.lock().replace(c.clone());
        if let Some(b) = was.filter(|b| matches!(b.role, Role::Listener)) {
            *x.bound.lock() = Some(b);
        }
        unix::await_ip_twin(&c, mine.as_bytes());
        transport().add(c.clone())?;
        c.control(
            transport(),
            &envelope::Msg::Hello {
                window: upcall::window(sock.handle).unwrap_or(0),
                mss: sock.opts.maxseg,
                addr: mine.as_bytes(),
            },
        )
    }

    /// The first fragment of an AF_UNIX message: what it carries reaches a
    /// receiver in this process whole (credentials, fds); across processes
    /// only the bytes cross, with the sender's credentials taken from the
    /// transport at the other end.
    fn write_scm(&self, sock: SockRef<'_>, frag: &Fragment<'_>, scm: u64) -> Result<(), Errno> {
        let x = xs(&sock)?;
        match frag.header.kind {
            FragKind::Dgram if x.info.domain == AF_UNIX => {
                self.unix_write_dgram(sock, x, frag, scm)
            }
            FragKind::Stream if x.to_self.load(Ordering::Acquire) => {
                match upcall::deliver_scm(sock.handle, frag, scm) {
                    Err(EBADF) => Ok(()),
                    r => r,
                }
            }
            FragKind::Stream if scm != 0 && x.info.domain == AF_UNIX => {
                // The other end in this process (its twin connection)
                // takes what the message carries when it reads the
                // fragment at this offset from the transport.
                let twin = x.conn.lock().as_ref().and_then(|c| c.twin.lock().upgrade());
                let to = twin.as_ref().map(|t| t.handle());
                if let Some(to) = to {
                    unix::scm_pending(to, frag.header.offset, scm);
                }
                let r = self.write(sock, frag);
                if let (Err(_), Some(to)) = (&r, to) {
                    // Not sent: the frontend still holds it and closes it.
                    unix::scm_take(to, frag.header.offset);
                }
                r
            }
            _ => self.write(sock, frag),
        }
    }

    fn write(&self, sock: SockRef<'_>, frag: &Fragment<'_>) -> Result<(), Errno> {
        let x = xs(&sock)?;
        match frag.header.kind {
            FragKind::Stream if x.to_self.load(Ordering::Acquire) => {
                match upcall::deliver(sock.handle, frag) {
                    Err(EBADF) => Ok(()),
                    r => r,
                }
            }
            FragKind::Stream => {
                let Some(c) = x.conn.lock().clone() else {
                    return Err(ENOTCONN);
                };
                if frag.header.flags & crate::backend::wire::FLAG_RST != 0 {
                    x.rst_sent.store(true, Ordering::Release);
                }
                if frag.header.flags & crate::backend::wire::FLAG_FIN != 0 && !c.state.got_fin() {
                    x.fin_first.store(true, Ordering::Release);
                }
                if c.state.is_closed() {
                    // An empty record (seqpacket) is data too.
                    let data = !frag.payload.is_empty()
                        || frag.header.flags & crate::backend::wire::FLAG_EOR != 0;
                    if x.info.domain == AF_UNIX && data {
                        // AF_UNIX knows its peer is gone: EPIPE at once.
                        return Err(EPIPE);
                    }
                    if !frag.payload.is_empty() {
                        let _ = upcall::reset(
                            sock.handle,
                            if c.state.got_fin() { EPIPE } else { ECONNRESET },
                        );
                    }
                    return Ok(());
                }
                c.frame(transport(), frag)?;
                unix::pump_twin(&c);
                Ok(())
            }
            FragKind::Dgram if x.info.domain == AF_UNIX => self.unix_write_dgram(sock, x, frag, 0),
            FragKind::Dgram => self.write_dgram(sock, x, frag, None),
        }
    }

    fn shutdown(&self, sock: SockRef<'_>, how: i32) -> Result<(), Errno> {
        let x = xs(&sock)?;
        if x.info.domain == AF_UNIX && x.info.ty != SOCK_DGRAM && how != SHUT_WR {
            unix::shut_rd(x);
        }
        Ok(())
    }

    fn keeps_refused_datagrams(&self) -> bool {
        // A full receiver pauses its link (`receive::read_datagrams`),
        // unless it set SO_RXQ_OVFL: the frontend then drops and counts
        // what it has no room for, and the link goes on.
        true
    }

    fn unread(&self, sock: SockRef<'_>) -> Option<u64> {
        let x = xs(&sock).ok()?;
        if x.info.domain != AF_UNIX || x.info.ty == SOCK_DGRAM {
            return None;
        }
        unix::unread(x)
    }

    fn write_attrs(
        &self,
        sock: SockRef<'_>,
        frag: &Fragment<'_>,
        attrs: &DgramAttrs,
    ) -> Result<(), Errno> {
        match frag.header.kind {
            FragKind::Dgram => self.write_dgram(sock, xs(&sock)?, frag, Some(attrs)),
            FragKind::Stream => self.write(sock, frag),
        }
    }

    fn window(&self, sock: SockRef<'_>, limit: u64) {
        if let Ok(x) = xs(&sock) {
            if x.to_self.load(Ordering::Acquire) {
                let _ = upcall::credit(sock.handle, limit);
                return;
            }
            if let Some(c) = x.conn.lock().clone() {
                match c.role {
                    Role::Stream => {
                        let _ = c.control(transport(), &envelope::Msg::Window(limit));
                        unix::pump_twin(&c);
                    }
                    // A datagram socket read after refusing one: its links
                    // may go on.
                    // The reader's thread offers the paused links' next
                    // datagrams itself: no wake-up of the transport thread
                    // (iperf3 -u -b 0: 15.5 -> 19-22 Gbit/s).
                    Role::Dgram => transport().resume_paused(),
                    _ => {}
                }
            }
        }
    }

    fn disconnect(&self, sock: SockRef<'_>) -> Result<(), Errno> {
        let x = xs(&sock)?;
        if x.info.ty != SOCK_STREAM || x.info.domain == AF_UNIX {
            return Err(EOPNOTSUPP);
        }
        x.to_self.store(false, Ordering::Release);
        let was = x.conn.lock().take();
        match was {
            Some(c) if matches!(c.role, Role::Stream) => {
                // The connection goes as at close (its reset, queued, goes
                // first), but names the socket no more: what still comes on
                // it reaches nobody, never the socket's next connection.
                c.handle.store(0, Ordering::Release);
                *c.sock.lock() = Weak::new();
                c.state.start_closing();
                transport().delegate(&c, false);
                transport().flush(&c);
                unix::pump_twin(&c);
            }
            other => *x.conn.lock() = other,
        }
        // A port the program bound stays (its files: `bound`, which held
        // it while connected); an ephemeral one goes back.
        match x.bound.lock().take() {
            Some(b) => *x.conn.lock() = Some(b),
            None => {
                self.release_connect_port(x);
                *x.local.lock() = None;
            }
        }
        *x.peer.lock() = None;
        x.fin_first.store(false, Ordering::Release);
        x.rst_sent.store(false, Ordering::Release);
        x.maxseg.store(0, Ordering::Release);
        x.peer_maxseg.store(0, Ordering::Release);
        Ok(())
    }

    /// TCP_MAXSEG on a listener after listen() (see `store_maxseg`).
    fn setsockopt(
        &self,
        sock: SockRef<'_>,
        level: i32,
        name: i32,
        value: &[u8],
    ) -> Result<(), Errno> {
        store_maxseg(level, name, value, xs(&sock).ok().map(|x| &x.maxseg));
        Ok(())
    }

    fn host_group(&self, group: &[u8; 16], joined: bool) {
        self.publish_group(group, joined);
    }

    fn group_joined_elsewhere(&self, group: &[u8; 16]) -> bool {
        self.group_elsewhere(group)
    }

    fn peer_maxseg(&self, sock: SockRef<'_>) -> u32 {
        xs(&sock).map_or(0, |x| x.peer_maxseg.load(Ordering::Acquire))
    }

    fn local_addr(&self, sock: SockRef<'_>) -> Option<SockAddr> {
        *xs(&sock).ok()?.local.lock()
    }

    fn peer_addr(&self, sock: SockRef<'_>) -> Option<SockAddr> {
        *xs(&sock).ok()?.peer.lock()
    }

    fn input(&self) -> Option<&dyn InputDelegation> {
        Some(self)
    }

    fn fork(&self) -> Option<&dyn ForkAware> {
        Some(self)
    }

    fn close(&self, sock: SockRef<'_>) {
        let Ok(x) = xs(&sock) else { return };
        if x.info.domain == AF_UNIX {
            unix::scm_forget(sock.handle);
            self.unix_close(x);
        }
        if x.info.ty == SOCK_DGRAM {
            let Some(port) = x.conn.lock().take().map(|c| c.port) else {
                return;
            };
            // The port's socket and file go with its last socket.
            if let Some((c, paths, shared)) = self.leave_port(port, sock.handle) {
                for p in paths {
                    let _ = std::fs::remove_file(p);
                }
                // The port's file goes to the processes sharing it.
                if let Some((num, space)) = shared {
                    self.unshare(num, space);
                }
                // The senders' links end too: their next datagram finds
                // nobody there.
                let port = c.port;
                let links: Vec<Arc<Conn>> = transport()
                    .conns
                    .lock()
                    .values()
                    .filter(|l| matches!(l.role, Role::DgramIn) && l.port == port)
                    .cloned()
                    .collect();
                for l in links.iter().chain(core::iter::once(&c)) {
                    transport().remove(l);
                }
            }
            return;
        }
        self.time_wait(x, sock.opts);
        self.release_connect_port(x);
        transport().refuse_waiting(x);
        // A member of an SO_REUSEPORT group leaves the port's listener and
        // files to the others, if any.
        let group = self.leave_stream_group(x, sock.handle);
        let shared = group.as_ref().and_then(|(c, paths)| {
            if let Some(paths) = paths {
                x.paths.lock().extend(paths.iter().cloned());
            }
            paths.is_none().then(|| c.clone())
        });
        let is_shared = |c: &Arc<Conn>| shared.as_ref().is_some_and(|g| Arc::ptr_eq(g, c));
        if let Some(b) = x.bound.lock().take() {
            if !is_shared(&b) {
                transport().remove(&b);
            }
        }
        if let Some(c) = x.conn.lock().take().filter(|c| !is_shared(c)) {
            // Queued bytes (the FIN among them) go out first: the transport
            // thread closes the kernel socket when its queue is empty, and
            // reads it meanwhile (nobody pumps a closed socket).
            c.state.start_closing();
            transport().delegate(&c, false);
            transport().flush(&c);
            // Its end, when its queue is out, is read by an end in this
            // process now.
            unix::pump_twin(&c);
        }
        for p in core::mem::take(&mut *x.paths.lock()) {
            ports::remove_port_file(&p);
        }
    }
}

/// The input a thread waiting on `sock` reads itself: a stream socket's
/// connection, or a link to a datagram socket's port (`direct_link`).
fn input_conn(sock: &SockRef<'_>) -> Option<Arc<Conn>> {
    let x = xs(sock).ok()?;
    if x.info.ty == SOCK_DGRAM {
        direct_link(x)
    } else {
        stream_conn(sock)
    }
}

/// A thread reads input `c` itself from now on (`input_watched`).
fn watched(c: &Arc<Conn>) {
    match c.role {
        Role::DgramIn => transport().hand_out(c),
        _ => transport().delegate(c, true),
    }
}

impl InputDelegation for XProc {
    fn input_fd(&self, sock: SockRef<'_>) -> Option<i32> {
        let c = input_conn(&sock)?;
        (!c.state.is_closed()).then_some(c.kfd)
    }

    fn input_watched(&self, sock: SockRef<'_>) {
        if let Some(c) = input_conn(&sock) {
            watched(&c);
        }
    }

    fn watch_input_fd(&self, sock: SockRef<'_>) -> Option<i32> {
        let c = input_conn(&sock).filter(|c| !c.state.is_closed())?;
        watched(&c);
        Some(c.kfd)
    }

    fn input_wanted(&self, sock: SockRef<'_>) {
        if let Some(c) = stream_conn(&sock) {
            if c.state.keep() {
                transport().delegate(&c, false);
            }
            return;
        }
        // A datagram port's links: all the transport's again, for good.
        let Some(p) = xs(&sock).ok().and_then(port_of) else {
            return;
        };
        let links = p.links.lock().clone();
        for l in links {
            if l.state.keep() {
                transport().delegate(&l, false);
            }
        }
    }

    fn pump(&self, sock: SockRef<'_>) {
        let Some(x) = xs(&sock).ok() else { return };
        if x.info.ty != SOCK_DGRAM {
            if let Some(c) = stream_conn(&sock) {
                transport().read_stream(&c);
            }
            return;
        }
        let Some(p) = x.conn.lock().clone() else {
            return;
        };
        if !matches!(p.role, Role::Dgram) {
            return;
        }
        // A waiting thread reads the link it watches (`direct_link`): one
        // system call, where the whole port's would cost an accept() and
        // a read of each link. With several links, all are read, as
        // before a socket filter changes; an AF_UNIX name's always (the
        // port `port_of` would not give).
        let only = if x.info.domain == AF_UNIX {
            None
        } else {
            match live_links(&p).as_slice() {
                [l] if !l.state.is_kept() => Some(l.clone()),
                _ => None,
            }
        };
        match only {
            Some(l) => transport().pump_link(&l),
            None => transport().settle_port(&p),
        }
    }
}

impl ForkAware for XProc {
    fn fork_prepare(&self) {
        fork::atfork_prepare();
    }

    fn fork_parent(&self) {
        fork::atfork_parent();
    }

    fn fork_child(&self) {
        fork::atfork_child();
    }
}

/// Makes this process answer `usockstat` on its network: the status
/// endpoint is served by the transport's thread, which a process whose
/// sockets all go through another backend of the network (shm) would not
/// start otherwise. An idle thread in epoll_wait, once per process.
pub fn serve_status() {
    let _ = transport().epfd();
}

/// The default network directory: `$XDG_RUNTIME_DIR/usock-net`, else
/// `/tmp/usock-net-<uid>`.
pub fn default_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) => PathBuf::from(d).join("usock-net"),
        None => PathBuf::from(alloc::format!("/tmp/usock-net-{}", kernel::uid())),
    }
}

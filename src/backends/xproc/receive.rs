//! Messages coming in: streams, datagram links, and the connection protocol.
#![deny(unsafe_code)]

use alloc::sync::Arc;
use core::sync::atomic::Ordering;

use super::envelope::{self, Msg};
use super::*;
use crate::addr::SockAddr;
use crate::backend::contract::*;
use crate::backend::upcall;
use crate::backend::wire;
use crate::consts::*;

impl Transport {
    pub(super) fn read_stream(&self, c: &Arc<Conn>) {
        // A stream frame with no room broke the window: against the
        // protocol, not a reason to wait.
        let on = |m: &Msg<'_>| match self.on_msg(c, m) {
            Err(ENOBUFS) => Err(libc::EPROTO),
            r => r,
        };
        match self.read_frames(c, on) {
            ReadEnd::Again | ReadEnd::Gone => {}
            ReadEnd::Closed => self.lost(c),
            // Malformed, or against the protocol: this connection only.
            ReadEnd::Bad | ReadEnd::Full => self.fail(c),
        }
    }

    /// Hands every whole frame of `c` to `on`, first those already read,
    /// then what the kernel holds, until the kernel socket is empty, ends,
    /// a frame is bad (a decoding error, or an error from `on`), or `on`
    /// has no room for one (`ENOBUFS`: that frame is kept for later).
    ///
    /// Where the bytes land: a connection with nothing pending is read into
    /// the calling thread's scratch buffer, and only what is left over (an
    /// unfinished frame, or frames kept for later) is copied into the
    /// connection's own buffer. An idle connection then holds no input
    /// memory at all (a 256 KiB buffer per connection, touched by its first
    /// frame, cost a page per connection at ten thousand connections). A
    /// connection with bytes pending is read straight behind them, so a
    /// bulk transfer copies nothing twice.
    pub(super) fn read_frames(
        &self,
        c: &Conn,
        mut on: impl FnMut(&Msg<'_>) -> Result<(), Errno>,
    ) -> ReadEnd {
        let mut inb = c.inbuf.lock();
        // A read that filled less than it asked for emptied the kernel
        // socket: asking again would only hear EAGAIN, a system call per
        // message for nothing. Whoever waits on the socket waits level-
        // triggered (the transport's set, a program's set, a blocked
        // reader's poll), so bytes that come after are seen there.
        let mut drained = false;
        loop {
            if let Some(end) = deliver_frames(&mut inb, &mut on) {
                return end;
            }
            if drained {
                return idle(&mut inb);
            }
            let r = if inb.is_empty() {
                SCRATCH.with(|cell| match cell.try_borrow_mut() {
                    Ok(mut scratch) => {
                        scratch.clear();
                        let r = recv_more(c, &mut scratch);
                        if r > 0 {
                            // Whole frames are taken from the scratch buffer;
                            // only a remainder is kept.
                            let end = deliver_frames(&mut scratch, &mut on);
                            inb.extend_from_slice(&scratch);
                            if let Some(end) = end {
                                return Err(end);
                            }
                        }
                        Ok(r)
                    }
                    // A frame's upcall read another connection in this
                    // thread: the connection's own buffer then.
                    Err(_) => Ok(recv_more(c, &mut inb)),
                })
            } else {
                Ok(recv_more(c, &mut inb))
            };
            match r {
                Err(end) => return end,
                Ok(RECV_GONE) => return ReadEnd::Gone,
                Ok(0) => return ReadEnd::Closed,
                Ok(r) if r < 0 => return idle(&mut inb),
                Ok(r) => drained = (r as usize) < READ,
            }
        }
    }

    /// Datagrams on a sender's link to one of our ports. When the receiving
    /// socket's buffer is full the link pauses (its sender's queue, then
    /// the sender itself, wait: see `Conn::datagram`) until a read of that
    /// socket offers its next datagram again, in the reader's thread
    /// (`window`), or the transport thread does, every millisecond.
    /// A socket with SO_RXQ_OVFL never pauses a link: the frontend drops
    /// and counts a datagram it has no room for and the delivery succeeds
    /// (`keeps_refused_datagrams`). Setting the option releases a link
    /// paused before at the next of those offers. A port shared by sockets
    /// with and without it (SO_REUSEADDR) has one link per sender: a full
    /// socket without it pauses the link, and the datagrams behind on it
    /// wait too, whichever socket they are for.
    pub(super) fn read_datagrams(&self, c: &Arc<Conn>) {
        let end = self.read_frames(c, |m| {
            let Msg::Data(f) = m else {
                return Err(libc::EPROTO);
            };
            if f.header.kind != wire::FragKind::Dgram {
                return Err(libc::EPROTO);
            }
            if c.port & super::unix::UNIX_KEY != 0 {
                // AF_UNIX: one socket per name; the address is the
                // sender's name, or none.
                let sender = link_sender(c);
                let to = |h| match sender {
                    Some(cr) => upcall::deliver_from(h, f, cr),
                    None => upcall::deliver(h, f),
                };
                return match super::unix::unix_receiver(c.port).map(to) {
                    Some(Err(ENOBUFS)) => Err(ENOBUFS),
                    _ => Ok(()),
                };
            }
            let (src, group, attrs) = split_addr(f.addr).ok_or(libc::EPROTO)?;
            let deliver = |h, f: &wire::Fragment<'_>| match &attrs {
                Some(a) => upcall::deliver_attrs(h, f, a),
                None => upcall::deliver(h, f),
            };
            if let Some(g) = group {
                // A copy for each socket of the port that takes it; a
                // full one drops its copy, as UDP does.
                for (h, family) in dgram_group_receivers(c.port, &src, &g) {
                    if upcall::takes_group_from(h, &g, &src) {
                        let seen = seen_as(&src, family);
                        let _ = deliver(h, &f.with_addr(seen.as_bytes()));
                    }
                }
                return Ok(());
            }
            // Nobody on the port takes it: dropped, as UDP does.
            if let Some((h, family)) = dgram_receiver(c.port, &src) {
                let src = seen_as(&src, family);
                return match deliver(h, &f.with_addr(src.as_bytes())) {
                    Err(ENOBUFS) => Err(ENOBUFS),
                    _ => Ok(()),
                };
            }
            Ok(())
        });
        match end {
            ReadEnd::Again | ReadEnd::Gone => {}
            ReadEnd::Full => {
                // A waiting thread that read it (`direct_link`) would find
                // it readable again at once, and again, while the
                // receiver is full: the transport keeps it from now on,
                // and holds it back as any link.
                if c.state.keep() {
                    self.delegate(c, false);
                }
                self.pause(c)
            }
            ReadEnd::Closed | ReadEnd::Bad => self.remove(c),
        }
    }

    /// Delivers, in the calling thread, every datagram the links to port
    /// `p` (its `Role::Dgram` kernel socket) hold now, accepting links not
    /// yet accepted: a datagram whose sendto() returned before this call
    /// is then in its receiver's buffer, as over Linux's lo, where the send
    /// delivers before it returns (the frontend asks this before a socket
    /// filter changes, so that the datagram meets the filter it was sent
    /// under). A link's reads are serialised by its input buffer's lock, so
    /// the transport thread reading it meanwhile delivers first.
    pub(super) fn settle_port(&self, p: &Conn) {
        self.accept(p);
        let links: Vec<Arc<Conn>> = self
            .conns
            .lock()
            .values()
            .filter(|c| matches!(c.role, Role::DgramIn) && c.port == p.port)
            .cloned()
            .collect();
        for c in links {
            if !c.state.is_closed() {
                self.read_datagrams(&c);
            }
        }
    }

    /// A thread about to wait on a socket of link `c`'s port reads `c`
    /// itself (`direct_link`) from now on, until it is idle.
    pub(super) fn hand_out(&self, c: &Arc<Conn>) {
        c.pumps.fetch_add(1, Ordering::AcqRel);
        if c.state.is_delegated() {
            return;
        }
        self.delegate(c, true);
        if c.state.is_delegated() {
            let mut d = self.direct.lock();
            if !d.iter().any(|x| Arc::ptr_eq(x, c)) {
                d.push(c.clone());
                if d.len() == 1 {
                    // The transport may sleep with no timeout: it must
                    // come back to take the link back (`reclaim_direct`).
                    drop(d);
                    self.ring();
                }
            }
        }
    }

    /// Reads link `c` in a program thread (`InputDelegation::pump`).
    pub(super) fn pump_link(&self, c: &Arc<Conn>) {
        if c.state.is_delegated() {
            c.pumps.fetch_add(1, Ordering::AcqRel);
        }
        self.read_datagrams(c);
    }

    /// Takes back the links program threads have not read since the last
    /// look, [`DIRECT_IDLE_MS`] or more ago: while nobody waits in a receive, what comes on
    /// a link is delivered by the transport again, as before it was
    /// handed out (readiness, FIONREAD, SO_RXQ_OVFL's drops see it; a
    /// sender is held back only by a full receiver), a few milliseconds
    /// late at most. The next wait hands it out again.
    pub(super) fn reclaim_direct(&self) {
        let now = crate::platform::mono_ns();
        let idle = DIRECT_IDLE_MS as u64 * 1_000_000;
        if now.saturating_sub(self.direct_looked.load(Ordering::Acquire)) < idle {
            return;
        }
        self.direct_looked.store(now, Ordering::Release);
        let mut back = Vec::new();
        self.direct.lock().retain(|c| {
            if c.state.is_closed() || !c.state.is_delegated() {
                return false;
            }
            // Read since the last look (or handed out again).
            let n = c.pumps.load(Ordering::Acquire);
            if c.pumps_seen.swap(n, Ordering::AcqRel) != n {
                return true;
            }
            back.push(c.clone());
            false
        });
        for c in back {
            self.delegate(&c, false);
            self.read_datagrams(&c);
        }
    }

    /// Stops reading link `c` until `resume_paused` finds room for its
    /// next datagram.
    pub(super) fn pause(&self, c: &Arc<Conn>) {
        let mut p = self.paused.lock();
        if !p.iter().any(|x| Arc::ptr_eq(x, c)) {
            self.watch(c, false);
            p.push(c.clone());
        }
    }

    /// Offers the paused links' next datagrams again.
    pub(super) fn resume_paused(&self) {
        let links = core::mem::take(&mut *self.paused.lock());
        for c in links {
            if c.state.is_closed() {
                continue;
            }
            self.watch(&c, true);
            self.read_datagrams(&c);
        }
    }

    /// A link of ours to another datagram port became readable: its
    /// receiver sends nothing, so it closed (or broke the protocol). The
    /// link goes; the next datagram to that port opens a new one.
    pub(super) fn link_readable(&self, c: &Arc<Conn>) {
        drop_link(c);
        super::unix::drop_unix_link(c);
        self.remove(c);
    }

    /// One message of connection `c`. An error means the peer broke the
    /// protocol (or the frontend refused what it sent): the caller ends the
    /// connection. The protocol: the client's first message is HELLO, the
    /// server's first is ACCEPT; DATA and WINDOW only after them.
    pub(super) fn on_msg(&self, c: &Arc<Conn>, m: &Msg<'_>) -> Result<(), Errno> {
        let up = c.state.is_up();
        // A client's connection carries its socket from the start; an
        // accepted one gets its socket at HELLO.
        let server_side = c.handle().0 != c.listener.0;
        match *m {
            Msg::Hello {
                window: peer_window,
                mss,
                addr,
            } if server_side && c.handle().0 == 0 => {
                let ls = c.listener_sock.upgrade().ok_or(ECONNREFUSED)?;
                if ls.info.domain != AF_UNIX {
                    super::unix::pair_ip_twin(c, addr);
                }
                // Behind connections already waiting for room: they go
                // first, as the listener's queue takes them in order (and
                // those whose clients left meanwhile make way).
                if !ls.waiting.lock().is_empty() {
                    self.admit_waiting(&ls);
                }
                let waiting = !ls.waiting.lock().is_empty();
                let r = if waiting && ls.info.domain != AF_UNIX {
                    Err(EAGAIN)
                } else {
                    self.hello(c, &ls, peer_window, mss, addr)
                };
                match r {
                    // A full accept queue keeps a TCP connect waiting, as
                    // Linux drops its SYNs until accept() makes room
                    // (`admit_waiting`); AF_UNIX refuses (`hello`).
                    Err(EAGAIN) if ls.info.domain != AF_UNIX => {
                        ls.waiting.lock().push_back(Waiting {
                            conn: c.clone(),
                            window: peer_window,
                            mss,
                            addr: addr.to_vec(),
                        });
                    }
                    r => r?,
                }
            }
            Msg::Accept { window, mss, addr } if !server_side && !up => {
                let ch = c.handle();
                if !self.is_unix(c) {
                    super::unix::forget_ip_twin(c);
                }
                if let Some(x) = c.sock.lock().upgrade() {
                    x.peer_maxseg.store(mss, Ordering::Release);
                    if let Some(a) = SockAddr::from_bytes(addr) {
                        x.peer.lock().replace(seen_as(&a, x.info.domain));
                    }
                }
                if let Some(cr) = c.cred.lock().take() {
                    let _ = c.sender.set(cr);
                    let _ = upcall::peer_cred(ch, cr);
                }
                c.state.go_up();
                upcall::credit(ch, window)?;
                // Our window goes before the program can send anything:
                // on the wire it then precedes our first DATA, so the
                // accepted socket can answer the first request at once
                // (lighttpd looped on EAGAIN when a request overtook it).
                if let Ok(w) = upcall::window(ch) {
                    let _ = c.control(self, &Msg::Window(w));
                }
                // Connected before anything else can fail: a server that
                // is already gone shows as end-of-stream or a reset, never
                // as a connect that waits forever.
                upcall::connected(ch)?;
            }
            // AF_UNIX: the peer's credentials, before HELLO or ACCEPT.
            Msg::Cred(cr, token) if !up => {
                *c.cred.lock() = Some(cr);
                if server_side {
                    *c.token.lock() = token;
                    super::unix::pair_twin(c, token);
                }
            }
            Msg::Window(limit) if up => match upcall::credit(c.handle(), limit) {
                // EBADF: the socket was closed here while its last bytes
                // still leave; the peer's window no longer matters.
                Ok(()) | Err(EBADF) => {}
                Err(e) => return Err(e),
            },
            // Stream fragments only: a datagram fragment on a connection
            // is against the protocol.
            Msg::Data(ref f) if up && f.header.kind == wire::FragKind::Stream => {
                if f.header.flags & wire::FLAG_FIN != 0 {
                    c.state.fin_in();
                }
                if f.header.flags & wire::FLAG_RST != 0 {
                    c.state.rst_in();
                }
                c.rx_end
                    .fetch_max(f.header.offset + f.payload.len() as u64, Ordering::AcqRel);
                let sender = c.sender.get().copied();
                let r = match (super::unix::scm_take(c.handle(), f.header.offset), sender) {
                    (Some(id), _) => upcall::deliver_scm(c.handle(), f, id),
                    (None, Some(cr)) => upcall::deliver_from(c.handle(), f, cr),
                    (None, None) => upcall::deliver(c.handle(), f),
                };
                match r {
                    // EBADF: the socket was closed here; its peer learns of it.
                    Ok(()) | Err(EBADF) => {}
                    Err(e) => return Err(e),
                }
            }
            _ => return Err(libc::EPROTO),
        }
        Ok(())
    }
}

impl Transport {
    /// A client's HELLO on accepted connection `c` of listener `ls`: makes
    /// the socket accept() returns and answers ACCEPT. `Err(EAGAIN)`: the
    /// accept queue is full, and nothing was done (an AF_UNIX client is
    /// told BUSY: its connect() sees EAGAIN).
    fn hello(
        &self,
        c: &Arc<Conn>,
        ls: &XSock,
        peer_window: u64,
        peer_mss: u32,
        addr: &[u8],
    ) -> Result<(), Errno> {
        // A client: make the accepted socket.
        let st = XSock::new(ls.info);
        // The MSS each end advertised: the client's SYN's, the listener's.
        let mss = ls.maxseg.load(Ordering::Acquire);
        st.maxseg.store(mss, Ordering::Release);
        st.peer_maxseg.store(peer_mss, Ordering::Release);
        *st.conn.lock() = Some(c.clone());
        *c.sock.lock() = st.me.clone();
        if let Some(a) = SockAddr::from_bytes(addr) {
            st.peer.lock().replace(seen_as(&a, ls.info.domain));
        }
        *st.local.lock() = accepted_local(*ls.local.lock(), *st.peer.lock());
        let state: SockState = st.clone();
        let ch = match incoming(c, ls, addr, state) {
            // AF_UNIX does not queue a connect beyond the backlog:
            // the client's connect() sees EAGAIN.
            Err(EAGAIN) if ls.info.domain == AF_UNIX => {
                let _ = c.control(self, &Msg::Busy);
                return Err(EAGAIN);
            }
            r => r?,
        };
        // From here a failure refuses `ch` (see `fail`).
        c.handle.store(ch.0, Ordering::Release);
        // The client's window, before the socket can be accepted:
        // a just accepted socket can send at once.
        upcall::credit(ch, peer_window)?;
        if ls.info.domain == AF_UNIX {
            // SO_PEERCRED both ways: the client's as of its
            // connect(), the listener's as of its listen().
            if let Some(cr) = c.cred.lock().take() {
                let _ = c.sender.set(cr);
                let _ = upcall::peer_cred(ch, cr);
            }
            let mine = ls.cred.lock().unwrap_or_else(super::unix::own_cred);
            let token = *c.token.lock();
            c.control_queued(self, &Msg::Cred(mine, token))?;
        }
        let local = *st.local.lock();
        let local = local.as_ref().map_or(&[][..], |a| a.as_bytes());
        // In the accept queue before the client learns of it, as
        // on Linux, where a connect() that returned has its
        // connection ready to accept: ACCEPT leaves after.
        let window = upcall::window(ch)?;
        c.control_queued(
            self,
            &Msg::Accept {
                window,
                mss,
                addr: local,
            },
        )?;
        c.state.go_up();
        upcall::connected(ch)?;
        self.flush(c);
        Ok(())
    }

    /// Room in listener `ls`'s accept queue (an accept(), a larger
    /// backlog): the connections waiting for it are admitted in the order
    /// they came, until the queue is full again. One closed meanwhile by
    /// its client is dropped.
    pub(super) fn admit_waiting(&self, ls: &XSock) {
        loop {
            let Some(w) = ls.waiting.lock().pop_front() else {
                return;
            };
            if w.conn.state.is_closed() {
                continue;
            }
            // Serialised with a read of the connection, as its frames are.
            let inb = w.conn.inbuf.lock();
            let r = self.hello(&w.conn, ls, w.window, w.mss, &w.addr);
            drop(inb);
            match r {
                Ok(()) => {}
                Err(EAGAIN) => {
                    ls.waiting.lock().push_front(w);
                    return;
                }
                Err(_) => self.fail(&w.conn),
            }
        }
    }

    /// Listener `ls` closed: the connections still waiting for room are
    /// refused (their clients see the connection end before ACCEPT), as
    /// Linux answers their next SYN with a reset.
    pub(super) fn refuse_waiting(&self, ls: &XSock) {
        let all = core::mem::take(&mut *ls.waiting.lock());
        for w in all {
            self.fail(&w.conn);
        }
    }
}

/// A connection whose HELLO found its listener's accept queue full: its
/// client's connect() waits until `Transport::admit_waiting` lets it in.
pub(super) struct Waiting {
    conn: Arc<Conn>,
    window: u64,
    /// The MSS the client advertised.
    mss: u32,
    addr: Vec<u8>,
}

/// How long a datagram link handed out to program threads
/// (`Transport::hand_out`) may go unread before the transport takes it back.
pub(super) const DIRECT_IDLE_MS: i32 = 10;

/// How much a connection read at once.
const READ: usize = 256 * 1024;

/// A connection with nothing pending keeps at most this much input buffer.
const KEEP_IDLE: usize = 4096;

/// [`recv_more`]'s result when the connection was closed by another thread.
const RECV_GONE: isize = isize::MIN;

std::thread_local! {
    /// Each reading thread's landing place for a connection's input.
    static SCRATCH: core::cell::RefCell<alloc::vec::Vec<u8>> =
        const { core::cell::RefCell::new(alloc::vec::Vec::new()) };
}

/// Hands the whole messages at the front of `buf` to `on` and drops them
/// from it. `None`: they were all taken and what is left is an unfinished
/// message (or nothing); else how the read ends (a bad message, or `on`
/// full).
fn deliver_frames(
    buf: &mut Vec<u8>,
    on: &mut impl FnMut(&Msg<'_>) -> Result<(), Errno>,
) -> Option<ReadEnd> {
    let mut used = 0;
    let end = loop {
        match envelope::decode(&buf[used..]) {
            Ok(Some((m, n))) => match on(&m) {
                Ok(()) => used += n,
                Err(ENOBUFS) => break Some(ReadEnd::Full),
                Err(_) => return Some(ReadEnd::Bad),
            },
            Ok(None) => break None,
            Err(envelope::BadMsg) => return Some(ReadEnd::Bad),
        }
    };
    buf.drain(..used);
    end
}

/// Nothing more to read for now: an input buffer left empty gives its
/// memory back if it grew large.
fn idle(inb: &mut Vec<u8>) -> ReadEnd {
    if inb.is_empty() && inb.capacity() > KEEP_IDLE {
        *inb = Vec::new();
    }
    ReadEnd::Again
}

/// Reads what the kernel holds for `c` (up to [`READ`] bytes) behind the
/// bytes of `buf`. Returns the system call's result: bytes read, 0 at the
/// end or on an error, negative with nothing there (EAGAIN), or
/// [`RECV_GONE`].
fn recv_more(c: &Conn, buf: &mut Vec<u8>) -> isize {
    buf.reserve(READ);
    // The fd's life lock: another thread pumping this connection (see
    // `Backend::pump`) may have closed it, and its number may already name
    // another connection.
    let fd_life = c.out.lock();
    if c.state.is_closed() {
        return RECV_GONE;
    }
    let r = kernel::recv_append(c.kfd, buf);
    drop(fd_life);
    match r {
        Ok(n) => n as isize,
        Err(EAGAIN) => -1,
        // An error other than "nothing there" ends the connection.
        Err(_) => 0,
    }
}

/// The local address of an accepted socket: the listener's, with a
/// wildcard made concrete. On loopback a connection comes from the address
/// it was sent to (`IpEp::source_for`), so the client's address (as the
/// listener's family sees it) is the one the client reached.
fn accepted_local(listener: Option<SockAddr>, peer: Option<SockAddr>) -> Option<SockAddr> {
    let (Some(l), Some(p)) = (listener, peer) else {
        return listener;
    };
    let fam = l.family();
    match (IpEp::parse(&l, fam), IpEp::parse(&p, fam)) {
        (Ok(mut me), Ok(them)) if me.is_wild() => {
            me.ip = them.ip;
            Some(me.to_sockaddr(fam))
        }
        _ => listener,
    }
}

/// Offers an accepted connection to its listener: with an SO_REUSEPORT
/// group on the port, to the member the client's hash picks, or the next
/// one that listens (`reuseport_select_sock` spreads connections so).
fn incoming(c: &Conn, ls: &XSock, client: &[u8], state: SockState) -> Result<SockHandle, Errno> {
    let members: alloc::vec::Vec<SockHandle> = ls
        .group
        .lock()
        .and_then(|key| {
            let ports = DGRAM_PORTS.lock();
            Some(ports.get(&key)?.members.iter().map(|m| m.0).collect())
        })
        .unwrap_or_default();
    let from = SockAddr::from_bytes(client).and_then(|a| IpEp::parse(&a, a.family()).ok());
    let (Some(from), true) = (from, members.len() > 1) else {
        return upcall::incoming(c.listener, state);
    };
    let first = (from.flow_hash() % members.len() as u64) as usize;
    let mut last = Err(ECONNREFUSED);
    for i in 0..members.len() {
        last = upcall::incoming(members[(first + i) % members.len()], state.clone());
        if last != Err(ECONNREFUSED) {
            break;
        }
    }
    last
}

/// The process at the other end of AF_UNIX datagram link `c`, as the
/// kernel's SO_PEERCRED of the link reports it (asked once).
fn link_sender(c: &Conn) -> Option<PeerCred> {
    if let Some(cr) = c.sender.get() {
        return Some(*cr);
    }
    let (pid, uid, gid) = crate::platform::unix_ipc::peer_cred(c.kfd)?;
    let _ = c.sender.set(PeerCred { pid, uid, gid });
    Some(PeerCred { pid, uid, gid })
}

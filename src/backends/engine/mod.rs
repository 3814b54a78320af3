//! The engine backend: AF_INET and AF_INET6 stream and datagram sockets
//! carried by a real TCP/IP stack (smoltcp) over an Ethernet device, so
//! that user-space sockets talk to any host on a real network.
//!
//! smoltcp supplies the transport semantics (ordering, retransmission,
//! windows, ARP and NDP); the frontend keeps the POSIX ones. Fragments the
//! frontend writes go into smoltcp sockets' send buffers, and their credit
//! is the room left there; bytes smoltcp receives go up as fragments into
//! the socket's Socket Buffer, never beyond its window, so what the reader
//! has not taken stays in smoltcp's receive buffer and shrinks the window
//! the peer sees.
//!
//! Selection: the engine claims every AF_INET/AF_INET6 TCP or UDP socket
//! whose address is not a loopback one (127/8, ::1; a connect or sendto
//! to the wildcard is one too): those stay with the other backends. The
//! routing rules (`USOCK_ROUTE`) are asked before any backend.
//!
//! The engine runs whenever a frame or a timer wants it: on its own thread
//! on a hosted system (`thread`), which sleeps in poll(2) on the device and
//! an eventfd that a write or a reader's window kicks, for as long as
//! smoltcp's `poll_delay` allows. The rest is core + alloc: over a host's
//! device table (`usock_netif_attach`) no thread is started, and the host
//! runs the engine from its tick or its network task
//! (`usock_netif_poll`), or the library's own waits run it (`driven`), so
//! a blocking call on a single-threaded RTOS makes progress.
//!
//! Limits, for now: one engine per process, configured by `USOCK_NETIF*`
//! or `usock_netif_configure` (static addresses, or IPv4 from DHCP:
//! `dhcp`; no resolver of the engine's own: glibc's resolver sockets are
//! the kernel's, a program's own go where the rules send port 53); a fork
//! child's engine is a dead copy (its new sockets
//! fail with EOPNOTSUPP); no IP fragments (a UDP datagram over the MTU is
//! EMSGSIZE); TCP_NODELAY, TCP_USER_TIMEOUT and SO_KEEPALIVE reach the
//! engine only once it carries the socket (after bind, or on an accepted
//! one through its listener); a closed connection's TIME_WAIT ends with
//! smoltcp's, and its port is free at once; SO_REUSEADDR and
//! SO_REUSEPORT only let binds share a port.
#![deny(unsafe_code)]

pub mod config;
pub mod device;
#[cfg(feature = "dhcp")]
pub mod dhcp;
pub mod driven;
pub mod impair;
mod stack;
#[cfg(feature = "std")]
mod tap;
#[cfg(feature = "std")]
mod thread;
#[cfg(feature = "std")]
mod tso;

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::addr::{IpEp, SockAddr};
use crate::backend::contract::*;
use crate::backend::upcall;
use crate::consts::*;
use crate::sync::Mutex;
use stack::{Ev, Stack};

#[cfg(feature = "std")]
pub use thread::{configure, install_from_env};

/// Priority of the engine: asked before shm, xproc and loopback, which
/// keep the loopback addresses it declines.
pub const ENGINE_PRIORITY: i32 = 20;

/// A socket's state as the frontend holds it: its id in the engine.
struct ESock {
    id: u64,
}

/// The engine backend.
pub struct Engine {
    /// Shared with the fork hook that holds it across a fork.
    stack: Arc<Mutex<Stack>>,
    /// Wakes whatever runs [`Engine::pump`] (the poll thread's eventfd).
    wake: Box<dyn Fn() + Send + Sync>,
    /// This is a fork child's copy: the engine's thread and its device
    /// stayed with the parent.
    forked: AtomicBool,
    /// When it started ([`crate::platform::mono_ns`]): the first DHCP
    /// lease is awaited until a while after.
    #[cfg(all(feature = "dhcp", feature = "std"))]
    born: u64,
    /// The first lease may still be awaited (DHCP, and neither a lease
    /// nor the end of the wait seen yet): past it, a send does not take
    /// the engine's lock to ask.
    #[cfg(all(feature = "dhcp", feature = "std"))]
    first_lease: AtomicBool,
}

fn id_of(sock: &SockRef<'_>) -> Result<u64, Errno> {
    let any: &(dyn core::any::Any + Send + Sync) = &**sock.state;
    any.downcast_ref::<ESock>().map(|s| s.id).ok_or(EINVAL)
}

/// Whether `ep` is a loopback address (127/8, ::1, v4-mapped 127/8).
fn is_loopback(ep: &IpEp) -> bool {
    (ep.is_v4() && ep.ip[12] == 127) || ep.ip == core::net::Ipv6Addr::LOCALHOST.octets()
}

impl Engine {
    /// An engine with the interface `cfg` describes, over `frames`; `wake`
    /// is called when [`Engine::pump`] should run soon.
    pub fn new(
        cfg: &config::NetifConfig,
        frames: Box<dyn device::Frames>,
        seed: u64,
        wake: Box<dyn Fn() + Send + Sync>,
    ) -> Engine {
        Engine {
            stack: Arc::new(Mutex::new(Stack::new(cfg, frames, seed))),
            wake,
            forked: AtomicBool::new(false),
            #[cfg(all(feature = "dhcp", feature = "std"))]
            born: crate::platform::mono_ns(),
            #[cfg(all(feature = "dhcp", feature = "std"))]
            first_lease: AtomicBool::new(cfg.dhcp),
        }
    }

    /// Before a call that needs an IPv4 address to reach `ep` (connect,
    /// sendto): while the address is to come from DHCP and no lease is in
    /// force yet, waits for one, up to [`dhcp::FIRST_LEASE_WAIT_NS`] after
    /// the engine started. After that, or when a lease went away, the call
    /// goes on at once and fails as Linux's does on an interface without
    /// an address (ENETUNREACH: no route).
    fn await_lease(&self, ep: &IpEp) {
        #[cfg(all(feature = "dhcp", feature = "std"))]
        if ep.is_v4() && !is_loopback(ep) && self.first_lease.load(Ordering::Acquire) {
            let end = self.born.saturating_add(dhcp::FIRST_LEASE_WAIT_NS);
            while self.stack.lock().awaits_lease() {
                if crate::platform::mono_ns() >= end {
                    self.first_lease.store(false, Ordering::Release);
                    return;
                }
                // A host-driven engine (usock_netif_attach) has no thread
                // of its own to take the server's answer in: run it here
                // (a no-op beside the engine's thread, or another runner).
                let _ = driven::run();
                std::thread::sleep(core::time::Duration::from_millis(5));
            }
            self.first_lease.store(false, Ordering::Release);
        }
        #[cfg(not(all(feature = "dhcp", feature = "std")))]
        let _ = ep;
    }

    /// The DHCP lease, when it changed since the last look (`Some(None)`:
    /// it ended): for the runner to tell (`USOCK_NETIF_LEASE_FILE`).
    #[cfg(feature = "dhcp")]
    pub fn take_lease_news(&self) -> Option<Option<dhcp::Lease>> {
        self.stack.lock().take_lease_news()
    }

    /// Runs the engine once: frames in and out, timers, and the upcalls
    /// that follow. Returns how long it may sleep until the next run, in
    /// nanoseconds (None: until a frame or a kick comes).
    pub fn pump(&self) -> Option<u64> {
        let evs = {
            let mut st = self.stack.lock();
            st.poll();
            st.gather()
        };
        let again = self.run(evs);
        if again {
            return Some(0);
        }
        self.stack
            .lock()
            .plan()
            .map(|d| d.total_micros().saturating_mul(1000))
    }

    /// Makes the upcalls, with no lock held; true when their answers
    /// changed what the engine may do now (a new connection's window).
    fn run(&self, evs: Vec<Ev>) -> bool {
        let mut adopted = Vec::new();
        let mut back = Vec::new();
        for ev in evs {
            match ev {
                Ev::Data { h, off, fin, data } => {
                    let flags = if fin { FLAG_FIN } else { 0 };
                    if upcall::deliver(h, &Fragment::stream(off, flags, &data)) == Err(ENOBUFS) {
                        // Kept, and offered again after `window`: a
                        // stream loses nothing.
                        back.push((h, off, fin, data));
                    }
                }
                Ev::Dgram { h, id, src, data } => {
                    let len = data.len() as u32;
                    let _ = upcall::deliver(h, &Fragment::dgram(id, 0, len, src.as_bytes(), &data));
                }
                Ev::Connected { h, credit } => {
                    let _ = upcall::credit(h, credit);
                    let _ = upcall::connected(h);
                }
                Ev::Refused { h, err } => {
                    let _ = upcall::refused(h, err);
                }
                Ev::Reset { h, err } => {
                    let _ = upcall::reset(h, err);
                }
                Ev::Credit { h, limit } => {
                    let _ = upcall::credit(h, limit);
                }
                Ev::Writable { h } => {
                    let _ = upcall::writable(h);
                }
                Ev::Incoming {
                    listener,
                    lid,
                    child,
                    credit,
                } => {
                    let state: SockState = Arc::new(ESock { id: child });
                    let r = upcall::incoming(listener, state).and_then(|ch| {
                        let win = upcall::window(ch)?;
                        let _ = upcall::credit(ch, credit);
                        Ok((ch, win))
                    });
                    adopted.push((lid, child, r));
                }
            }
        }
        if !back.is_empty() {
            self.stack.lock().refused_data(back);
        }
        if adopted.is_empty() {
            return false;
        }
        let mut connect = Vec::new();
        {
            let mut st = self.stack.lock();
            for (lid, child, r) in adopted {
                if let Ok((ch, _)) = r {
                    connect.push(ch);
                }
                st.incoming_done(lid, child, r);
            }
        }
        // In the accept queue only now: its handle is known to the engine
        // before a byte of it can go up.
        for ch in connect {
            let _ = upcall::connected(ch);
        }
        true
    }

    fn with<R>(
        &self,
        sock: &SockRef<'_>,
        f: impl FnOnce(&mut Stack, u64) -> R,
    ) -> Result<R, Errno> {
        let id = id_of(sock)?;
        let mut st = self.stack.lock();
        Ok(f(&mut st, id))
    }
}

impl Backend for Engine {
    fn name(&self) -> &str {
        "engine"
    }

    fn supports(&self, info: &SockInfo) -> bool {
        matches!(info.domain, AF_INET | AF_INET6)
            && match info.ty {
                SOCK_STREAM => matches!(info.protocol, 0 | IPPROTO_TCP),
                SOCK_DGRAM => matches!(info.protocol, 0 | IPPROTO_UDP),
                _ => false,
            }
    }

    fn claim(
        &self,
        handle: SockHandle,
        info: &SockInfo,
        op: ClaimOp,
        addr: &SockAddr,
    ) -> Result<Option<SockState>, Errno> {
        let Ok(ep) = IpEp::parse(addr, info.domain) else {
            return Ok(None);
        };
        let mine = match op {
            ClaimOp::Pair => false,
            // A wildcard bind is the engine's: it listens on its interface.
            ClaimOp::Bind | ClaimOp::Listen => !is_loopback(&ep),
            // Linux connects to the wildcard as to loopback.
            ClaimOp::Connect | ClaimOp::SendTo => !ep.is_local(),
        };
        if !mine {
            return Ok(None);
        }
        if self.forked.load(Ordering::Acquire) {
            // Two engines on one device would take each other's frames:
            // the parent's keeps it.
            #[cfg(feature = "std")]
            static SAID: AtomicBool = AtomicBool::new(false);
            #[cfg(feature = "std")]
            if !SAID.swap(true, Ordering::AcqRel) {
                crate::platform::diag(
                    b"libuserspacesock: the engine (USOCK_NETIF) stays with the process that \
                      started it; a fork child's new AF_INET/AF_INET6 sockets fail with \
                      EOPNOTSUPP\n",
                );
            }
            return Err(EOPNOTSUPP);
        }
        let id = self.stack.lock().add(handle, *info);
        Ok(Some(Arc::new(ESock { id })))
    }

    fn bind(&self, sock: SockRef<'_>, addr: &SockAddr) -> Result<SockAddr, Errno> {
        self.with(&sock, |st, id| st.bind(id, addr, sock.opts))?
    }

    fn listen(&self, sock: SockRef<'_>, backlog: u32) -> Result<(), Errno> {
        self.with(&sock, |st, id| st.listen(id, sock.opts, backlog))??;
        (self.wake)();
        Ok(())
    }

    fn connect(&self, sock: SockRef<'_>, addr: &SockAddr) -> Result<(), Errno> {
        if let Ok(ep) = IpEp::parse(addr, sock.info.domain) {
            self.await_lease(&ep);
        }
        let win = if sock.info.ty == SOCK_STREAM {
            upcall::window(sock.handle)?
        } else {
            0
        };
        self.with(&sock, |st, id| {
            st.connect(id, addr, sock.opts, win)?;
            st.egress();
            Ok::<(), Errno>(())
        })??;
        (self.wake)();
        Ok(())
    }

    fn setsockopt(
        &self,
        sock: SockRef<'_>,
        level: i32,
        name: i32,
        value: &[u8],
    ) -> Result<(), Errno> {
        /// Linux's TCP_USER_TIMEOUT.
        const TCP_USER_TIMEOUT: i32 = 18;
        let Some(v) = value
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .map(i32::from_ne_bytes)
        else {
            return Ok(());
        };
        let set: fn(&mut stack::TcpOpts, i32) = match (level, name) {
            (IPPROTO_TCP, TCP_NODELAY) => |o, v| o.nagle = v == 0,
            (IPPROTO_TCP, TCP_USER_TIMEOUT) => |o, v| {
                o.user_timeout = (v > 0).then(|| smoltcp::time::Duration::from_millis(v as u64))
            },
            (SOL_SOCKET, SO_KEEPALIVE) => |o, v| o.keepalive = v != 0,
            _ => return Ok(()),
        };
        self.with(&sock, |st, id| st.set_tcp_opts(id, |o| set(o, v)))?;
        (self.wake)();
        Ok(())
    }

    fn accepted(&self, listener: SockRef<'_>) {
        if self.with(&listener, |st, id| st.accepted(id)) == Ok(true) {
            (self.wake)();
        }
    }

    fn write(&self, sock: SockRef<'_>, frag: &Fragment<'_>) -> Result<(), Errno> {
        let hd = &frag.header;
        if hd.kind == FragKind::Dgram && !frag.addr.is_empty() {
            if let Some(ep) =
                SockAddr::from_bytes(frag.addr).and_then(|a| IpEp::parse(&a, sock.info.domain).ok())
            {
                self.await_lease(&ep);
            }
        }
        let wake = self.with(&sock, |st, id| {
            match hd.kind {
                FragKind::Stream => st.write_stream(
                    id,
                    hd.offset,
                    frag.payload,
                    hd.flags & FLAG_FIN != 0,
                    hd.flags & FLAG_RST != 0,
                )?,
                FragKind::Dgram => {
                    let dest = if frag.addr.is_empty() {
                        None
                    } else {
                        Some(SockAddr::from_bytes(frag.addr).ok_or(EINVAL)?)
                    };
                    st.write_dgram(id, hd, dest.as_ref(), frag.payload, sock.opts)?
                }
            }
            st.egress();
            Ok::<bool, Errno>(st.needs_run())
        })??;
        if wake {
            // A timer (retransmission) the runner's sleep would miss.
            (self.wake)();
        }
        Ok(())
    }

    fn window(&self, sock: SockRef<'_>, limit: u64) {
        if self.with(&sock, |st, id| st.window(id, limit)) == Ok(true) {
            (self.wake)();
        }
    }

    fn unread(&self, sock: SockRef<'_>) -> Option<u64> {
        self.with(&sock, |st, id| st.unread(id)).ok().flatten()
    }

    fn local_addr(&self, sock: SockRef<'_>) -> Option<SockAddr> {
        self.with(&sock, |st, id| st.local_addr(id)).ok().flatten()
    }

    fn peer_addr(&self, sock: SockRef<'_>) -> Option<SockAddr> {
        self.with(&sock, |st, id| st.peer_addr(id)).ok().flatten()
    }

    fn disconnect(&self, sock: SockRef<'_>) -> Result<(), Errno> {
        self.with(&sock, |st, id| st.disconnect(id))??;
        (self.wake)();
        Ok(())
    }

    fn close(&self, sock: SockRef<'_>) {
        if self.with(&sock, |st, id| st.close(id)).is_ok() {
            (self.wake)();
        }
    }

    #[cfg(feature = "std")]
    fn fork(&self) -> Option<&dyn ForkAware> {
        Some(self)
    }
}

/// The engine's lock is held across a fork (a child must not find it
/// taken by the poll thread, which does not come along); the child's
/// engine is a dead copy (see `claim`).
#[cfg(feature = "std")]
impl ForkAware for Engine {
    fn fork_prepare(&self) {
        crate::sync::fork_hold::hold_in(self.stack.clone(), |m| m);
    }

    fn fork_parent(&self) {}

    fn fork_child(&self) {
        self.forked.store(true, Ordering::Release);
    }
}

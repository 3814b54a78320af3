//! A backend written in Rust against `backend::contract::Backend`, for an
//! address family of its own, carrying stream and datagram traffic between
//! sockets of this process through the frontend; and backend selection
//! (decline, refuse, priority, unregister).
//!
//! The registry is global to the test process: each test uses its own
//! address family (or its own AF_INET port) and unregisters at the end.
#![cfg(feature = "std")]

use std::any::Any;
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use userspacesock::addr::SockAddr;
use userspacesock::backend::contract::*;
use userspacesock::backend::registry;
use userspacesock::backend::upcall;
use userspacesock::backend::wire;
use userspacesock::backends::loopback::LoSock;
use userspacesock::consts::*;
use userspacesock::net::{to_sockaddr, UsockDatagram, UsockListener, UsockStream};

/// An address of family `fam`: the family field, then opaque bytes.
fn addr(fam: i32, name: &[u8]) -> SockAddr {
    let mut b = (fam as u16).to_ne_bytes().to_vec();
    b.extend_from_slice(name);
    SockAddr::from_bytes(&b).unwrap()
}

/// Unregisters a backend when the test ends, even on a failed assertion.
struct Registered(u64);

impl Drop for Registered {
    fn drop(&mut self) {
        registry::unregister(self.0);
    }
}

// ---------------------------------------------------------------------------
// TinyNet: a loopback-like backend for one address family.

/// Per-socket state of TinyNet.
struct TinySock {
    ty: i32,
    handle: AtomicU64,
    /// Handle of the connected stream peer, 0 when none.
    peer: AtomicU64,
    local: Mutex<Option<SockAddr>>,
    remote: Mutex<Option<SockAddr>>,
}

impl TinySock {
    fn new(ty: i32, h: SockHandle) -> Arc<TinySock> {
        Arc::new(TinySock {
            ty,
            handle: AtomicU64::new(h.0),
            peer: AtomicU64::new(0),
            local: Mutex::new(None),
            remote: Mutex::new(None),
        })
    }

    fn handle(&self) -> SockHandle {
        SockHandle(self.handle.load(Ordering::Acquire))
    }
}

fn tiny<'a>(s: &SockRef<'a>) -> Result<&'a TinySock, Errno> {
    (s.state.as_ref() as &dyn Any)
        .downcast_ref::<TinySock>()
        .ok_or(EINVAL)
}

#[derive(Default)]
struct Counters {
    /// Stream fragments that carried payload, and their bytes.
    stream_writes: AtomicUsize,
    stream_bytes: AtomicUsize,
    fins: AtomicUsize,
    rsts: AtomicUsize,
    /// Datagram fragments carried.
    dgram_writes: AtomicUsize,
    claims: AtomicUsize,
    closes: AtomicUsize,
    windows: AtomicUsize,
}

struct TinyNet {
    family: i32,
    /// Listening stream sockets by address bytes.
    listeners: Mutex<HashMap<Vec<u8>, SockHandle>>,
    /// Bound datagram sockets by address bytes.
    dgrams: Mutex<HashMap<Vec<u8>, SockHandle>>,
    next_auto: AtomicUsize,
    n: Counters,
}

impl TinyNet {
    fn new(family: i32) -> Arc<TinyNet> {
        Arc::new(TinyNet {
            family,
            listeners: Mutex::new(HashMap::new()),
            dgrams: Mutex::new(HashMap::new()),
            next_auto: AtomicUsize::new(1),
            n: Counters::default(),
        })
    }

    /// Names an unnamed socket (what a connect or first send does).
    fn autobind(&self, s: &TinySock) -> Result<SockAddr, Errno> {
        let mut local = s.local.lock().unwrap();
        if let Some(a) = *local {
            return Ok(a);
        }
        let n = self.next_auto.fetch_add(1, Ordering::Relaxed);
        let a = addr(self.family, format!("auto-{n}").as_bytes());
        if s.ty == SOCK_DGRAM {
            self.dgrams
                .lock()
                .unwrap()
                .insert(a.as_bytes().to_vec(), s.handle());
        }
        *local = Some(a);
        Ok(a)
    }

    /// Ships a fragment "over the wire": encodes it with the portable
    /// encoding, decodes it on the far side and hands it to `to`.
    fn carry(&self, to: SockHandle, frag: &Fragment<'_>) -> Result<(), Errno> {
        let bytes = wire::encode_vec(frag).map_err(|_| EINVAL)?;
        let (f, used) = wire::decode(&bytes).map_err(|_| EINVAL)?;
        assert_eq!(used, bytes.len());
        assert_eq!(&f, frag);
        upcall::deliver(to, &f)
    }
}

impl Backend for TinyNet {
    fn name(&self) -> &str {
        "tinynet"
    }

    fn supports(&self, info: &SockInfo) -> bool {
        info.domain == self.family && (info.ty == SOCK_STREAM || info.ty == SOCK_DGRAM)
    }

    fn claim(
        &self,
        handle: SockHandle,
        info: &SockInfo,
        _op: ClaimOp,
        _addr: &SockAddr,
    ) -> Result<Option<SockState>, Errno> {
        if info.domain != self.family {
            return Ok(None);
        }
        self.n.claims.fetch_add(1, Ordering::Relaxed);
        Ok(Some(TinySock::new(info.ty, handle)))
    }

    fn bind(&self, sock: SockRef<'_>, a: &SockAddr) -> Result<SockAddr, Errno> {
        let s = tiny(&sock)?;
        if s.local.lock().unwrap().is_some() {
            return Err(EINVAL);
        }
        if s.ty == SOCK_DGRAM {
            let mut t = self.dgrams.lock().unwrap();
            if t.contains_key(a.as_bytes()) {
                return Err(EADDRINUSE);
            }
            t.insert(a.as_bytes().to_vec(), sock.handle);
        }
        *s.local.lock().unwrap() = Some(*a);
        Ok(*a)
    }

    fn listen(&self, sock: SockRef<'_>, _backlog: u32) -> Result<(), Errno> {
        let s = tiny(&sock)?;
        let a = self.autobind(s)?;
        let mut t = self.listeners.lock().unwrap();
        if t.get(a.as_bytes()).is_some_and(|&h| h != sock.handle) {
            return Err(EADDRINUSE);
        }
        t.insert(a.as_bytes().to_vec(), sock.handle);
        Ok(())
    }

    fn connect(&self, sock: SockRef<'_>, dest: &SockAddr) -> Result<(), Errno> {
        let s = tiny(&sock)?;
        if s.ty == SOCK_DGRAM {
            self.autobind(s)?;
            *s.remote.lock().unwrap() = if dest.family() == AF_UNSPEC {
                None
            } else {
                Some(*dest)
            };
            return Ok(());
        }
        let me = self.autobind(s)?;
        let listener = self.listeners.lock().unwrap().get(dest.as_bytes()).copied();
        let Some(lh) = listener else {
            upcall::refused(sock.handle, ECONNREFUSED)?;
            return Ok(());
        };
        // The accepted side: named by the listener's address, peer = us.
        let child = TinySock::new(SOCK_STREAM, SockHandle(0));
        *child.local.lock().unwrap() = Some(*dest);
        *child.remote.lock().unwrap() = Some(me);
        let state: SockState = child.clone();
        let ch = match upcall::incoming(lh, state) {
            Ok(h) => h,
            Err(e) => {
                upcall::refused(sock.handle, if e == EAGAIN { ECONNREFUSED } else { e })?;
                return Ok(());
            }
        };
        child.handle.store(ch.0, Ordering::Release);
        *s.remote.lock().unwrap() = Some(*dest);
        child.peer.store(sock.handle.0, Ordering::Release);
        s.peer.store(ch.0, Ordering::Release);
        // Each side may send up to the other's receive window.
        upcall::credit(ch, upcall::window(sock.handle)?)?;
        upcall::credit(sock.handle, upcall::window(ch)?)?;
        upcall::connected(ch)?;
        upcall::connected(sock.handle)?;
        Ok(())
    }

    fn write(&self, sock: SockRef<'_>, frag: &Fragment<'_>) -> Result<(), Errno> {
        let s = tiny(&sock)?;
        match frag.header.kind {
            FragKind::Stream => {
                if !frag.payload.is_empty() {
                    self.n.stream_writes.fetch_add(1, Ordering::Relaxed);
                    self.n
                        .stream_bytes
                        .fetch_add(frag.payload.len(), Ordering::Relaxed);
                }
                if frag.header.flags & FLAG_FIN != 0 {
                    self.n.fins.fetch_add(1, Ordering::Relaxed);
                }
                if frag.header.flags & FLAG_RST != 0 {
                    self.n.rsts.fetch_add(1, Ordering::Relaxed);
                }
                let peer = s.peer.load(Ordering::Acquire);
                if peer == 0 {
                    return Ok(());
                }
                match self.carry(SockHandle(peer), frag) {
                    Err(EBADF) if !frag.payload.is_empty() => {
                        // The peer is gone: as a TCP reset would tell us.
                        s.peer.store(0, Ordering::Release);
                        let _ = upcall::reset(sock.handle, ECONNRESET);
                        Ok(())
                    }
                    Err(EBADF) => Ok(()),
                    r => r,
                }
            }
            FragKind::Dgram => {
                self.n.dgram_writes.fetch_add(1, Ordering::Relaxed);
                let src = self.autobind(s)?;
                let dest = if frag.addr.is_empty() {
                    s.remote.lock().unwrap().ok_or(EDESTADDRREQ)?
                } else {
                    SockAddr::from_bytes(frag.addr).ok_or(EINVAL)?
                };
                let Some(to) = self.dgrams.lock().unwrap().get(dest.as_bytes()).copied() else {
                    return Ok(()); // nobody there: dropped, as UDP does
                };
                let mut out = *frag;
                out.addr = src.as_bytes();
                out.header.addr_len = out.addr.len() as u16;
                match self.carry(to, &out) {
                    Err(ENOBUFS) | Err(EBADF) => Ok(()),
                    r => r,
                }
            }
        }
    }

    fn window(&self, sock: SockRef<'_>, limit: u64) {
        self.n.windows.fetch_add(1, Ordering::Relaxed);
        if let Ok(s) = tiny(&sock) {
            let peer = s.peer.load(Ordering::Acquire);
            if peer != 0 {
                let _ = upcall::credit(SockHandle(peer), limit);
            }
        }
    }

    fn local_addr(&self, sock: SockRef<'_>) -> Option<SockAddr> {
        *tiny(&sock).ok()?.local.lock().unwrap()
    }

    fn peer_addr(&self, sock: SockRef<'_>) -> Option<SockAddr> {
        *tiny(&sock).ok()?.remote.lock().unwrap()
    }

    fn close(&self, sock: SockRef<'_>) {
        self.n.closes.fetch_add(1, Ordering::Relaxed);
        let Ok(s) = tiny(&sock) else { return };
        s.peer.store(0, Ordering::Release);
        if let Some(a) = *s.local.lock().unwrap() {
            for t in [&self.listeners, &self.dgrams] {
                let mut t = t.lock().unwrap();
                if t.get(a.as_bytes()) == Some(&sock.handle) {
                    t.remove(a.as_bytes());
                }
            }
        }
    }
}

fn register_tiny(family: i32) -> (Arc<TinyNet>, Registered) {
    let net = TinyNet::new(family);
    let id = registry::register(net.clone(), 100);
    (net, Registered(id))
}

#[test]
fn stream_exchange_over_a_custom_family() {
    const FAM: i32 = 0x7e7e;
    let server_addr = addr(FAM, b"\x00server\xff");
    // Before registration no backend carries the family.
    let e = UsockStream::connect_sockaddr(&server_addr).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(EAFNOSUPPORT));

    let (net, _reg) = register_tiny(FAM);
    let l = UsockListener::bind_sockaddr(&server_addr, 4).unwrap();
    assert_eq!(l.local_sockaddr(), server_addr);
    assert!(l.local_addr().is_err(), "not an IP address");

    // Nobody listens at another name: refused, as the backend says.
    let e = UsockStream::connect_sockaddr(&addr(FAM, b"nobody")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused);

    let up: usize = 1 << 20; // beyond one receive window: credit must flow
    let down = 3000usize;
    let server = thread::spawn(move || {
        let (mut s, peer) = l.accept_sockaddr().unwrap();
        assert_eq!(s.peer_sockaddr().unwrap(), peer);
        assert_eq!(s.local_sockaddr(), addr(FAM, b"\x00server\xff"));
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap(); // ends at the client's FIN
        let reply: Vec<u8> = (0..down).map(|i| (i % 251) as u8).collect();
        s.write_all(&reply).unwrap();
        (got, peer)
    });
    let mut c = UsockStream::connect_sockaddr(&server_addr).unwrap();
    assert_eq!(c.peer_sockaddr().unwrap(), server_addr);
    let data: Vec<u8> = (0..up).map(|i| (i * 7 % 256) as u8).collect();
    c.write_all(&data).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let mut reply = Vec::new();
    c.read_to_end(&mut reply).unwrap(); // ends when the server's socket closes
    let (got, peer) = server.join().unwrap();
    assert_eq!(got, data);
    assert_eq!(peer, c.local_sockaddr());
    assert_eq!(reply.len(), down);
    assert!(reply.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));

    // The backend carried every byte, and both ends of stream.
    assert!(net.n.stream_writes.load(Ordering::Relaxed) >= 2);
    assert_eq!(net.n.stream_bytes.load(Ordering::Relaxed), up + down);
    assert_eq!(net.n.fins.load(Ordering::Relaxed), 2);
    assert_eq!(net.n.rsts.load(Ordering::Relaxed), 0);
    assert!(
        net.n.windows.load(Ordering::Relaxed) > 0,
        "the window never moved"
    );
    drop(c);
    // Listener, refused connector, client and accepted socket were closed.
    assert!(net.n.closes.load(Ordering::Relaxed) >= 4);
}

#[test]
fn closing_with_unread_data_sends_a_reset_through_a_custom_backend() {
    const FAM: i32 = 0x7e7d;
    let (net, _reg) = register_tiny(FAM);
    let a = addr(FAM, b"rst");
    let l = UsockListener::bind_sockaddr(&a, 1).unwrap();
    let c = UsockStream::connect_sockaddr(&a).unwrap();
    let (s, _) = l.accept_sockaddr().unwrap();
    (&c).write_all(b"unread").unwrap();
    drop(s);
    assert_eq!(net.n.rsts.load(Ordering::Relaxed), 1);
    let e = (&c).read(&mut [0u8; 8]).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(ECONNRESET));
}

#[test]
fn datagram_exchange_over_a_custom_family() {
    const FAM: i32 = 0x7e7f;
    let (net, _reg) = register_tiny(FAM);
    let (na, nb) = (addr(FAM, &[1, 2, 3]), addr(FAM, &[9; 40]));
    let a = UsockDatagram::bind_sockaddr(&na).unwrap();
    let b = UsockDatagram::bind_sockaddr(&nb).unwrap();
    assert_eq!(b.local_sockaddr(), nb);
    let e = UsockDatagram::bind_sockaddr(&nb).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(EADDRINUSE));

    assert_eq!(a.send_to_sockaddr(b"ping", &nb).unwrap(), 4);
    let big = vec![0x5a; 50_000];
    a.send_to_sockaddr(&big, &nb).unwrap();
    let mut buf = vec![0u8; 60_000];
    let (n, from) = b.recv_from_sockaddr(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"ping"[..], na));
    let (n, _) = b.recv_from_sockaddr(&mut buf).unwrap();
    assert_eq!(&buf[..n], &big[..]);

    b.send_to_sockaddr(b"pong", &from).unwrap();
    let (n, from) = a.recv_from_sockaddr(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"pong"[..], nb));

    // Connected: send() goes to the peer; an unbound socket gets a name.
    let c = UsockDatagram::unbound(FAM).unwrap();
    c.connect_sockaddr(&na).unwrap();
    assert_eq!(c.peer_sockaddr().unwrap(), na);
    c.send(b"hello").unwrap();
    let (n, from) = a.recv_from_sockaddr(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello");
    assert_eq!(from, c.local_sockaddr());
    assert_ne!(from.len(), 2, "the sender was named");

    // A non-IP address has no SocketAddr form.
    b.send_to_sockaddr(b"x", &na).unwrap();
    let e = a.recv_from(&mut buf).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(EAFNOSUPPORT));

    assert!(net.n.dgram_writes.load(Ordering::Relaxed) >= 5);
    assert_eq!(net.n.stream_writes.load(Ordering::Relaxed), 0);
}

#[test]
fn unregister_removes_the_backend() {
    const FAM: i32 = 0x7e80;
    let (net, reg) = register_tiny(FAM);
    let a = UsockDatagram::bind_sockaddr(&addr(FAM, b"before")).unwrap();
    assert!(registry::unregister(reg.0));
    assert!(!registry::unregister(reg.0), "already gone");
    std::mem::forget(reg);
    // No new socket of the family can be made...
    let e = UsockDatagram::bind_sockaddr(&addr(FAM, b"after")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(EAFNOSUPPORT));
    // ...while a socket it already carries keeps it until closed.
    a.send_to_sockaddr(b"self", &addr(FAM, b"before")).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(a.recv(&mut buf).unwrap(), 4);
    drop(a);
    assert_eq!(net.n.closes.load(Ordering::Relaxed), 1);
}

#[test]
fn higher_priority_backend_is_asked_first() {
    const FAM: i32 = 0x7e81;
    let low = TinyNet::new(FAM);
    let high = TinyNet::new(FAM);
    let _r1 = Registered(registry::register(low.clone(), 50));
    let _r2 = Registered(registry::register(high.clone(), 150));
    let s = UsockDatagram::bind_sockaddr(&addr(FAM, b"p")).unwrap();
    assert_eq!(high.n.claims.load(Ordering::Relaxed), 1);
    assert_eq!(low.n.claims.load(Ordering::Relaxed), 0);
    drop(s);
}

// ---------------------------------------------------------------------------
// Selection for AF_INET: a backend that declines, one that refuses.

/// Supports AF_INET sockets; declines every claim, recording the addresses
/// it was asked about.
#[derive(Default)]
struct Decliner {
    asked: Mutex<Vec<SockAddr>>,
}

impl Backend for Decliner {
    fn name(&self) -> &str {
        "decliner"
    }
    fn supports(&self, info: &SockInfo) -> bool {
        info.domain == AF_INET
    }
    fn claim(
        &self,
        _: SockHandle,
        _: &SockInfo,
        _: ClaimOp,
        a: &SockAddr,
    ) -> Result<Option<SockState>, Errno> {
        self.asked.lock().unwrap().push(*a);
        Ok(None)
    }
    fn bind(&self, _: SockRef<'_>, _: &SockAddr) -> Result<SockAddr, Errno> {
        unreachable!("never claims")
    }
    fn listen(&self, _: SockRef<'_>, _: u32) -> Result<(), Errno> {
        unreachable!("never claims")
    }
    fn connect(&self, _: SockRef<'_>, _: &SockAddr) -> Result<(), Errno> {
        unreachable!("never claims")
    }
    fn write(&self, _: SockRef<'_>, _: &Fragment<'_>) -> Result<(), Errno> {
        unreachable!("never claims")
    }
    fn local_addr(&self, _: SockRef<'_>) -> Option<SockAddr> {
        None
    }
    fn peer_addr(&self, _: SockRef<'_>) -> Option<SockAddr> {
        None
    }
    fn close(&self, _: SockRef<'_>) {}
}

/// Refuses any AF_INET address with port `port` (EACCES); declines others.
struct Refuser {
    port: u16,
}

impl Backend for Refuser {
    fn name(&self) -> &str {
        "refuser"
    }
    fn supports(&self, info: &SockInfo) -> bool {
        info.domain == AF_INET
    }
    fn claim(
        &self,
        _: SockHandle,
        _: &SockInfo,
        _: ClaimOp,
        a: &SockAddr,
    ) -> Result<Option<SockState>, Errno> {
        let b = a.as_bytes();
        if b.len() >= 4 && u16::from_be_bytes([b[2], b[3]]) == self.port {
            return Err(EACCES);
        }
        Ok(None)
    }
    fn bind(&self, _: SockRef<'_>, _: &SockAddr) -> Result<SockAddr, Errno> {
        unreachable!("never claims")
    }
    fn listen(&self, _: SockRef<'_>, _: u32) -> Result<(), Errno> {
        unreachable!("never claims")
    }
    fn connect(&self, _: SockRef<'_>, _: &SockAddr) -> Result<(), Errno> {
        unreachable!("never claims")
    }
    fn write(&self, _: SockRef<'_>, _: &Fragment<'_>) -> Result<(), Errno> {
        unreachable!("never claims")
    }
    fn local_addr(&self, _: SockRef<'_>) -> Option<SockAddr> {
        None
    }
    fn peer_addr(&self, _: SockRef<'_>) -> Option<SockAddr> {
        None
    }
    fn close(&self, _: SockRef<'_>) {}
}

#[test]
fn a_declining_backend_lets_loopback_carry_the_socket() {
    // A fixed port below the ephemeral range, used by no other test here.
    let want: std::net::SocketAddr = "127.0.0.1:23101".parse().unwrap();
    let d = Arc::new(Decliner::default());
    let reg = Registered(registry::register(d.clone(), 100));
    let l = UsockListener::bind(want).unwrap();
    assert!(d.asked.lock().unwrap().contains(&to_sockaddr(&want)));
    assert!(
        l.raw().backend_state::<LoSock>().is_some(),
        "loopback carries it"
    );
    let mut c = UsockStream::connect(want).unwrap();
    assert!(c.raw().backend_state::<LoSock>().is_some());
    let (mut s, _) = l.accept().unwrap();
    c.write_all(b"via loopback").unwrap();
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"via loopback");
    drop(reg);
}

#[test]
fn a_refusing_backend_makes_bind_fail_until_unregistered() {
    let port = 23102;
    let want: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let reg = Registered(registry::register(Arc::new(Refuser { port }), 100));
    let e = UsockListener::bind(want).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(EACCES));
    assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    let e = UsockDatagram::bind(want).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(EACCES));
    let e = UsockStream::connect(want).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(EACCES));
    // Another port is declined and carried by loopback.
    let other = UsockDatagram::bind("127.0.0.1:23103").unwrap();
    assert!(other.raw().backend_state::<LoSock>().is_some());
    drop(reg);
    // Unregistered: the same bind now succeeds.
    let l = UsockListener::bind(want).unwrap();
    assert_eq!(l.local_addr().unwrap(), want);
}

fn stream_frag(offset: u64, flags: u16, payload: &[u8]) -> Fragment<'_> {
    Fragment {
        header: FragHeader {
            kind: FragKind::Stream,
            flags,
            conn: 0,
            offset,
            dgram_offset: 0,
            dgram_total: 0,
            len: payload.len() as u32,
            addr_len: 0,
        },
        addr: &[],
        payload,
    }
}

#[test]
fn upcalls_reject_bad_input_and_ignore_closed_handles() {
    const FAM: i32 = 0x7e82;
    let (_net, _reg) = register_tiny(FAM);
    let a = addr(FAM, b"up");
    let l = UsockListener::bind_sockaddr(&a, 1).unwrap();
    let c = UsockStream::connect_sockaddr(&a).unwrap();
    let (s, _) = l.accept_sockaddr().unwrap();
    let h = s.raw().handle();
    // Beyond the receive window: ENOBUFS, nothing buffered.
    let w = upcall::window(h).unwrap();
    assert_eq!(upcall::deliver(h, &stream_frag(w, 0, b"x")), Err(ENOBUFS));
    // Length field disagreeing with the payload: EINVAL.
    let mut bad = stream_frag(0, 0, b"abc");
    bad.header.len = 2;
    assert_eq!(upcall::deliver(h, &bad), Err(EINVAL));
    // A datagram fragment to a stream socket: EPROTOTYPE.
    let mut dg = stream_frag(0, 0, b"abc");
    dg.header.kind = FragKind::Dgram;
    dg.header.dgram_total = 3;
    assert_eq!(upcall::deliver(h, &dg), Err(EPROTOTYPE));
    // Out of order: the later fragment waits for the hole to fill.
    upcall::deliver(h, &stream_frag(3, 0, b"def")).unwrap();
    s.set_nonblocking(true).unwrap();
    assert_eq!(
        (&s).read(&mut [0u8; 8]).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    upcall::deliver(h, &stream_frag(0, 0, b"abc")).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!((&s).read(&mut buf).unwrap(), 6);
    assert_eq!(&buf[..6], b"abcdef");
    // After close, the handle names nothing: upcalls get EBADF and change
    // nothing, even once the slot is reused.
    drop(s);
    assert_eq!(upcall::deliver(h, &stream_frag(6, 0, b"late")), Err(EBADF));
    assert_eq!(upcall::credit(h, 1 << 30), Err(EBADF));
    assert_eq!(upcall::reset(h, ECONNRESET), Err(EBADF));
    assert_eq!(upcall::window(h), Err(EBADF));
    drop(c);
    drop(l);
}

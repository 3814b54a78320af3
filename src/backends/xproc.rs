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
//!   a datagram port one at `DIR/u<port>`. Ports are shared by AF_INET and
//!   AF_INET6 (every address is local).
//! - A stream connection is one AF_UNIX stream connection carrying frames in
//!   the portable encoding (`backend::wire`): data with FIN/RST flags, and
//!   control frames (datagram-kind frames whose `conn` field names them):
//!   HELLO (client address), ACCEPT (initial window, server address),
//!   WINDOW (new receive window end).
//! - Datagrams to a port travel on a link: one AF_UNIX stream from this
//!   process to that port, shared by all our sockets sending there, each
//!   frame naming its source (see `DGRAM_LINKS` for why not AF_UNIX
//!   datagrams).
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
//! - A socket file left by a dead process refuses connections: it is
//!   removed and the name reused.
//! - A malformed frame, or one against the protocol, ends that connection
//!   (or link) and nothing else.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::any::Any;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering};
use std::ffi::CString;
use std::path::PathBuf;

use super::loopback::IpEp;
use crate::addr::SockAddr;
use crate::backend::contract::*;
use crate::backend::wire;
use crate::consts::*;
use crate::socket::upcall;
use crate::sync::Mutex;

const CTL_HELLO: u64 = 1;
const CTL_ACCEPT: u64 = 2;
const CTL_WINDOW: u64 = 3;

fn errno() -> Errno {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(EIO)
}

fn sys(r: libc::c_long) -> Result<i32, Errno> {
    if r < 0 {
        Err(errno())
    } else {
        Ok(r as i32)
    }
}

/// A new non-blocking AF_UNIX stream socket: every kernel socket of the
/// transport is one.
fn unix_stream() -> Result<i32, Errno> {
    // SAFETY: socket() with integer arguments.
    sys(unsafe {
        libc::syscall(
            libc::SYS_socket,
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    })
}

/// A new transport socket connected to the socket file at `a`, or the
/// connect's errno (the socket is closed then).
fn connect_unix(a: &libc::sockaddr_un, len: u32) -> Result<i32, Errno> {
    let k = unix_stream()?;
    // SAFETY: connect with a valid address.
    if unsafe { libc::syscall(libc::SYS_connect, k, a as *const libc::sockaddr_un, len) } != 0 {
        let e = errno();
        close_kfd(k);
        return Err(e);
    }
    Ok(k)
}

/// Closes a kernel fd of the transport.
fn close_kfd(k: i32) {
    // SAFETY: closes a descriptor this module made and no longer uses.
    unsafe { libc::syscall(libc::SYS_close, k) };
}

/// One non-blocking sendmsg of `parts` with the first `skip` bytes left
/// out; returns how many bytes the kernel took.
fn send_gather(kfd: i32, parts: &[&[u8]], mut skip: usize) -> Result<usize, Errno> {
    let mut iov = [libc::iovec {
        iov_base: core::ptr::null_mut(),
        iov_len: 0,
    }; 4];
    let mut n = 0;
    for p in parts {
        if skip >= p.len() {
            skip -= p.len();
            continue;
        }
        if n == iov.len() {
            break;
        }
        iov[n] = libc::iovec {
            iov_base: p[skip..].as_ptr() as *mut libc::c_void,
            iov_len: p.len() - skip,
        };
        skip = 0;
        n += 1;
    }
    if n == 0 {
        return Ok(0);
    }
    // SAFETY: all-zero is a valid msghdr (no name, no control data).
    let mut msg: libc::msghdr = unsafe { core::mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = n;
    // SAFETY: the iovecs point into live slices the caller holds; the kernel
    // only reads them.
    sys(unsafe {
        libc::syscall(
            libc::SYS_sendmsg,
            kfd,
            &msg as *const libc::msghdr,
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
        )
    })
    .map(|n| n as usize)
}

/// The send buffer asked for a link's kernel socket (the kernel caps it at
/// `wmem_max` and doubles it): what may be on its way to a receiver before
/// its senders wait, like a UDP socket's send buffer.
const DGRAM_LINK_SNDBUF: usize = 1 << 20;

/// A datagram port of this process: its kernel socket and file, and the
/// frontend sockets bound to it (several when all set SO_REUSEADDR, or all
/// SO_REUSEPORT, as Linux allows: iperf3's UDP server connects its socket
/// to the first client and binds a new one on the same port). Sharing a
/// port between processes is refused (EADDRINUSE).
struct DgramPort {
    conn: Arc<Conn>,
    path: PathBuf,
    /// In bind order.
    members: Vec<(SockHandle, SockOpts)>,
}

/// This process's datagram ports. Lock order: before the transport's
/// `conns`.
static DGRAM_PORTS: Mutex<BTreeMap<u16, DgramPort>> = Mutex::new(BTreeMap::new());

/// Which socket on `port` receives a datagram from `src`, as Linux scores
/// them: one connected to `src` (compared as an endpoint, so IPv4 and its
/// v4-mapped form are the same), else the most recently bound unconnected
/// one, never one connected to another peer.
fn dgram_receiver(port: u16, src: &SockAddr) -> Option<SockHandle> {
    let from = IpEp::parse(src, src.family()).ok()?;
    let ports = DGRAM_PORTS.lock();
    let mut unconnected = None;
    for &(h, _) in &ports.get(&port)?.members {
        let Some(s) = crate::socket::slab::lookup(h) else {
            continue;
        };
        let Some(x) = s.backend_state::<XSock>() else {
            continue;
        };
        let peer = *x.peer.lock();
        match peer.and_then(|p| IpEp::parse(&p, p.family()).ok()) {
            Some(p) if (p.ip, p.port) == (from.ip, from.port) => return Some(h),
            Some(_) => {}
            None => unconnected = Some(h),
        }
    }
    unconnected
}

/// Whether the process at the other end of the connected AF_UNIX socket
/// `kfd` runs as our effective user. The network directory is 0700, so this
/// is the second wall: a socket file made reachable by hand (or a
/// directory shared on purpose) still admits no other user's process.
fn peer_is_us(kfd: i32) -> bool {
    // SAFETY: all-zero is a valid ucred.
    let mut cred: libc::ucred = unsafe { core::mem::zeroed() };
    let mut len = core::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `cred`.
    let r = unsafe {
        libc::syscall(
            libc::SYS_getsockopt,
            kfd,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            &mut cred as *mut libc::ucred,
            &mut len as *mut libc::socklen_t,
        )
    };
    // SAFETY: geteuid has no preconditions.
    r == 0 && cred.uid == unsafe { libc::geteuid() }
}

/// Links of this process to other sockets' datagram ports, by port: one
/// AF_UNIX stream each, shared by all our sockets sending there (a frame
/// names its source). A stream, not an AF_UNIX datagram socket: the kernel
/// queues only `net.unix.max_dgram_qlen` datagrams (10 by default) on one
/// of those, while a stream holds a socket buffer's worth and is read in
/// batches. Lock order: after `DGRAM_PORTS`, before the transport's
/// `conns`.
static DGRAM_LINKS: Mutex<BTreeMap<u16, Arc<Conn>>> = Mutex::new(BTreeMap::new());

/// Forgets link `c` if it is still the link to its port.
fn drop_link(c: &Conn) -> Option<u16> {
    let mut links = DGRAM_LINKS.lock();
    match links.get(&c.port) {
        Some(l) if core::ptr::eq(Arc::as_ptr(l), c) => {
            links.remove(&c.port);
            Some(c.port)
        }
        _ => None,
    }
}

/// How a read of a kernel socket's frames ended.
enum ReadEnd {
    /// Nothing more to read now.
    Again,
    /// The connection was already removed (by another thread).
    Gone,
    /// The peer closed, or the socket failed.
    Closed,
    /// A malformed frame, or one its handler refused.
    Bad,
    /// The handler has no room for the next frame now.
    Full,
}

/// What a kernel fd watched by the transport thread is for.
enum Role {
    /// A listening stream port.
    Listener,
    /// A stream connection.
    Stream,
    /// A datagram port: a listener for links from senders.
    Dgram,
    /// A link from a sender to one of our datagram ports.
    DgramIn,
    /// A link to another socket's datagram port (read only to see it end).
    DgramOut,
}

/// One kernel socket of the transport.
struct Conn {
    kfd: i32,
    role: Role,
    /// The port of a datagram socket (0 for the others).
    port: u16,
    /// The frontend socket it serves (0 until known, for an accepted one).
    handle: AtomicU64,
    /// The listener an accepted connection came through.
    listener: SockHandle,
    /// Bytes the kernel has not taken yet.
    out: Mutex<VecDeque<u8>>,
    /// A link's senders turned away for want of room: told when the
    /// kernel socket takes bytes again (`upcall::writable`).
    blocked: Mutex<Vec<SockHandle>>,
    /// Bytes read but not yet a whole frame (transport thread only).
    inbuf: Mutex<Vec<u8>>,
    /// The peer sent end-of-stream (its socket closing after it is normal).
    got_fin: AtomicBool,
    /// Established (ACCEPT seen or sent).
    up: AtomicBool,
    closed: AtomicBool,
    /// The events the transport's epoll set watches (0: not in it).
    watching: AtomicU32,
    /// Program threads read the input (see `Backend::input_watched`): the
    /// transport does not watch it.
    delegated: AtomicBool,
    /// A thread blocked on the socket other than in epoll_wait: the
    /// transport reads the input from then on.
    keep_input: AtomicBool,
    /// A program's epoll set watches the input too (see `register`).
    shared: AtomicBool,
    /// The connection was ended by `lost` or `fail` (once, whichever
    /// thread read its end first).
    ended: AtomicBool,
    /// The socket was closed: the kernel socket goes once its queue is out.
    closing: AtomicBool,
}

impl Conn {
    fn handle(&self) -> SockHandle {
        SockHandle(self.handle.load(Ordering::Acquire))
    }

    /// Sends a frame's parts (header, address, payload) with one gather
    /// write, without blocking; what the kernel cannot take is queued and
    /// the transport thread flushes it.
    fn send(&self, t: &Transport, parts: &[&[u8]]) -> Result<(), Errno> {
        // The queue's lock also guards the kernel fd's life: `remove` closes
        // it under this lock, so a send never reaches a number the kernel
        // has already given to another connection.
        let mut out = self.out.lock();
        if self.closed.load(Ordering::Acquire) {
            return Err(EPIPE);
        }
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let mut off = 0;
        if out.is_empty() {
            while off < total {
                match send_gather(self.kfd, parts, off) {
                    Ok(n) => off += n,
                    Err(EAGAIN) => break,
                    Err(e) => return Err(e),
                }
            }
        }
        if off < total {
            let mut skip = off;
            for p in parts {
                let from = skip.min(p.len());
                out.extend(&p[from..]);
                skip -= from;
            }
            t.watch_out(self, true);
        }
        drop(out);
        Ok(())
    }

    fn frame(&self, t: &Transport, f: &wire::Fragment<'_>) -> Result<(), Errno> {
        // Unsummed: an AF_UNIX stream between processes of one user cannot
        // corrupt bytes (see wire's "Transports that guarantee integrity").
        let hdr = wire::encode_header(f, false).map_err(|_| EINVAL)?;
        self.send(t, &[&hdr, f.addr, f.payload])
    }

    /// Sends a datagram's frame on a link, straight into its kernel socket
    /// (sized by [`DGRAM_LINK_SNDBUF`]). When none of it fits (the
    /// receiver is slow, or paused), or the rest of an earlier frame still
    /// waits, the datagram gets `EAGAIN` and its sender is told when there
    /// is room (`upcall::writable`, from `flush`): the frontend makes a
    /// blocking sender wait and offer it again, a non-blocking one sees
    /// EAGAIN, as a UDP socket whose send buffer is full. A frame begun is
    /// ended (its rest waits in the queue), and the later fragments of a
    /// datagram larger than one fragment always go: no datagram is cut.
    fn datagram(
        &self,
        t: &Transport,
        from: SockHandle,
        first: bool,
        parts: &[&[u8]],
    ) -> Result<(), Errno> {
        if !first {
            return self.send(t, parts);
        }
        // Under the queue's lock, as `flush` looks at the queue: a sender
        // turned away is always woken once there is room.
        let mut out = self.out.lock();
        if self.closed.load(Ordering::Acquire) {
            return Err(EPIPE);
        }
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let mut off = 0;
        if out.is_empty() {
            while off < total {
                match send_gather(self.kfd, parts, off) {
                    Ok(n) => off += n,
                    Err(EAGAIN) => break,
                    Err(e) => return Err(e),
                }
            }
            if off == total {
                return Ok(());
            }
        }
        if off == 0 {
            let mut b = self.blocked.lock();
            if !b.contains(&from) {
                b.push(from);
            }
            drop(b);
            t.watch_out(self, true);
            return Err(EAGAIN);
        }
        let mut skip = off;
        for p in parts {
            let from = skip.min(p.len());
            out.extend(&p[from..]);
            skip -= from;
        }
        t.watch_out(self, true);
        Ok(())
    }

    fn control(&self, t: &Transport, what: u64, value: u64, payload: &[u8]) -> Result<(), Errno> {
        self.frame(
            t,
            &wire::Fragment {
                header: wire::FragHeader {
                    kind: wire::FragKind::Dgram,
                    flags: 0,
                    conn: what,
                    offset: value,
                    dgram_offset: 0,
                    dgram_total: payload.len() as u32,
                    len: payload.len() as u32,
                    addr_len: 0,
                },
                addr: &[],
                payload,
            },
        )
    }
}

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

/// The family of the frontend socket `h` (AF_INET when it is gone).
fn family_of(h: SockHandle) -> i32 {
    crate::socket::slab::lookup(h).map_or(AF_INET, |s| s.info.domain)
}

/// The transport: an epoll set of kernel sockets and its thread.
struct Transport {
    epfd: AtomicI32,
    conns: Mutex<BTreeMap<i32, Arc<Conn>>>,
    /// Datagram links waiting for room at their receiving socket.
    paused: Mutex<Vec<Arc<Conn>>>,
}

const EV_IN: u32 = libc::EPOLLIN as u32;
const EV_OUT: u32 = libc::EPOLLOUT as u32;

impl Transport {
    fn epfd(&self) -> Result<i32, Errno> {
        let e = self.epfd.load(Ordering::Acquire);
        if e >= 0 {
            return Ok(e);
        }
        // SAFETY: epoll_create1 with a flag.
        let fd = sys(unsafe { libc::syscall(libc::SYS_epoll_create1, libc::EPOLL_CLOEXEC) })?;
        match self
            .epfd
            .compare_exchange(-1, fd, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {
                // SAFETY: registers a plain function with no preconditions.
                unsafe { libc::atexit(flush_at_exit) };
                let t: &'static Transport = transport();
                std::thread::Builder::new()
                    .name("usock-xproc".into())
                    .spawn(move || t.run(fd))
                    .map_err(|_| EAGAIN)?;
                Ok(fd)
            }
            Err(other) => {
                close_kfd(fd);
                Ok(other)
            }
        }
    }

    fn add(&self, c: Arc<Conn>) -> Result<(), Errno> {
        self.epfd()?;
        self.conns.lock().insert(c.kfd, c.clone());
        let _fd_life = c.out.lock();
        self.register(&c, EV_IN)
    }

    /// Sets what the transport's epoll set watches on `c`'s kernel socket
    /// (`0`: nothing). Called with `c.out` locked (it guards the fd's life).
    ///
    /// Once a program's epoll set watches the socket too (`shared`, see
    /// `Backend::input_fd`), the registration is EPOLLEXCLUSIVE, and so
    /// made anew each time (the kernel refuses EPOLL_CTL_MOD on one): when
    /// both watch the input, the kernel wakes the one registered first,
    /// the program's, while it waits. Before, a plain EPOLL_CTL_MOD saves a
    /// system call each time room to write is watched or no longer.
    fn register(&self, c: &Conn, events: u32) -> Result<(), Errno> {
        let epfd = self.epfd()?;
        if c.closed.load(Ordering::Acquire) {
            return Ok(());
        }
        let was = c.watching.swap(events, Ordering::AcqRel);
        if was == events {
            return Ok(());
        }
        let shared = c.shared.load(Ordering::Acquire);
        let ctl = |op: i32, events: u32| {
            let mut ev = libc::epoll_event {
                events,
                u64: c.kfd as u64,
            };
            // SAFETY: epoll_ctl on our own set with a live event.
            sys(unsafe { libc::syscall(libc::SYS_epoll_ctl, epfd, op, c.kfd, &mut ev as *mut _) })
                .map(|_| ())
        };
        if was != 0 && events != 0 && !shared {
            return ctl(libc::EPOLL_CTL_MOD, events);
        }
        if was != 0 {
            let _ = ctl(libc::EPOLL_CTL_DEL, 0);
        }
        if events == 0 {
            return Ok(());
        }
        let excl = if shared {
            libc::EPOLLEXCLUSIVE as u32
        } else {
            0
        };
        ctl(libc::EPOLL_CTL_ADD, events | excl)
    }

    /// What the transport watches on a connection that is not paused: its
    /// input unless a program thread pumps it, room to write while bytes
    /// wait (`out`).
    fn events_for(c: &Conn, out: bool) -> u32 {
        let input = if c.delegated.load(Ordering::Acquire) {
            0
        } else {
            EV_IN
        };
        input | if out { EV_OUT } else { 0 }
    }

    /// Watches `c` for room to write (`on`) or no longer. Called with
    /// `c.out` locked.
    fn watch_out(&self, c: &Conn, on: bool) {
        let _ = self.register(c, Self::events_for(c, on));
    }

    /// Gives `c`'s input to the program threads that watch it (`on`, see
    /// `Backend::input_watched`), or takes it back. Under the fd's life
    /// lock, as `keep_input`: a thread that blocks on the socket while
    /// another adds it to an epoll set never sleeps with nobody reading.
    fn delegate(&self, c: &Conn, on: bool) {
        let out = c.out.lock();
        if on && !c.shared.swap(true, Ordering::AcqRel) {
            // From now on exclusive (see `register`): made anew.
            let w = c.watching.load(Ordering::Acquire);
            if w != 0 {
                let _ = self.register(c, 0);
                let _ = self.register(c, w);
            }
        }
        if on && c.keep_input.load(Ordering::Acquire) {
            return;
        }
        if c.delegated.swap(on, Ordering::AcqRel) != on {
            let _ = self.register(c, Self::events_for(c, !out.is_empty()));
        }
    }

    /// Starts (`on`) or stops watching `c`'s kernel socket.
    fn watch(&self, c: &Conn, on: bool) {
        let out = c.out.lock();
        let events = match (on, out.is_empty()) {
            (false, _) => 0,
            (true, true) => EV_IN,
            (true, false) => EV_IN | EV_OUT,
        };
        let _ = self.register(c, events);
    }

    fn remove(&self, c: &Conn) {
        let fd_life = c.out.lock();
        if c.closed.load(Ordering::Acquire) {
            return;
        }
        let _ = self.register(c, 0);
        c.closed.store(true, Ordering::Release);
        self.conns.lock().remove(&c.kfd);
        close_kfd(c.kfd);
        drop(fd_life);
        // Senders waiting for room on a link that is gone offer their
        // datagram again (and find nobody there: dropped, as UDP does).
        for h in core::mem::take(&mut *c.blocked.lock()) {
            let _ = upcall::writable(h);
        }
    }

    fn run(&self, epfd: i32) {
        let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 64];
        loop {
            let ms = if self.paused.lock().is_empty() { -1 } else { 1 };
            // SAFETY: epoll_wait into our own array.
            let n = unsafe { libc::syscall(libc::SYS_epoll_wait, epfd, evs.as_mut_ptr(), 64, ms) };
            if ms >= 0 {
                self.resume_paused();
            }
            if n < 0 {
                continue;
            }
            for ev in &evs[..n as usize] {
                let fd = ev.u64 as i32;
                let Some(c) = self.conns.lock().get(&fd).cloned() else {
                    continue;
                };
                if ev.events & libc::EPOLLOUT as u32 != 0 {
                    self.flush(&c);
                }
                if ev.events
                    & (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32
                    != 0
                {
                    match c.role {
                        Role::Listener | Role::Dgram => self.accept(&c),
                        Role::Stream => self.read_stream(&c),
                        Role::DgramIn => self.read_datagrams(&c),
                        Role::DgramOut => self.link_readable(&c),
                    }
                }
            }
        }
    }

    fn flush(&self, c: &Conn) {
        let mut out = c.out.lock();
        if c.closed.load(Ordering::Acquire) {
            return;
        }
        while !out.is_empty() {
            let (a, b) = out.as_slices();
            match send_gather(c.kfd, &[a, b], 0) {
                Ok(n) if n > 0 => {
                    out.drain(..n);
                }
                Err(EAGAIN) | Ok(_) => break,
                Err(_) => {
                    out.clear();
                    break;
                }
            }
        }
        if out.is_empty() {
            let woken = core::mem::take(&mut *c.blocked.lock());
            if !woken.is_empty() {
                drop(out);
                for h in woken {
                    let _ = upcall::writable(h);
                }
                out = c.out.lock();
                if c.closed.load(Ordering::Acquire) {
                    return;
                }
            }
        }
        if out.is_empty() {
            if c.closing.load(Ordering::Acquire) {
                drop(out);
                self.remove(c);
            } else {
                // Still under the lock: the fd is ours.
                self.watch_out(c, false);
            }
        }
    }

    fn accept(&self, l: &Conn) {
        loop {
            // SAFETY: accept4 without an address.
            let k = unsafe {
                libc::syscall(
                    libc::SYS_accept4,
                    l.kfd,
                    0usize,
                    0usize,
                    libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                )
            };
            if k < 0 {
                return;
            }
            if !peer_is_us(k as i32) {
                // Another user's process: it sees its connection closed.
                close_kfd(k as i32);
                continue;
            }
            let c = if matches!(l.role, Role::Dgram) {
                // A sender's link to this datagram port.
                Conn {
                    port: l.port,
                    ..Conn::new(k as i32, Role::DgramIn, SockHandle(0), SockHandle(0))
                }
            } else {
                Conn::new(k as i32, Role::Stream, SockHandle(0), l.handle())
            };
            let _ = self.add(Arc::new(c));
        }
    }

    /// The peer's socket went away: end-of-stream if it had said so,
    /// otherwise a reset.
    fn lost(&self, c: &Conn) {
        if c.ended.swap(true, Ordering::AcqRel) {
            return;
        }
        if c.got_fin.load(Ordering::Acquire) {
            self.remove(c);
        } else {
            self.refuse_or_reset(c);
        }
    }

    /// Ends connection `c` on a peer's fault (it vanished, or broke the
    /// protocol): an established connection is reset, one still being set
    /// up is refused (which also frees its place in a listener's backlog).
    fn fail(&self, c: &Conn) {
        if !c.ended.swap(true, Ordering::AcqRel) {
            self.refuse_or_reset(c);
        }
    }

    fn refuse_or_reset(&self, c: &Conn) {
        let h = c.handle();
        if c.up.load(Ordering::Acquire) {
            let _ = upcall::reset(h, ECONNRESET);
        } else if h.0 != 0 {
            let _ = upcall::refused(h, ECONNREFUSED);
        }
        self.remove(c);
    }

    fn read_stream(&self, c: &Arc<Conn>) {
        // A stream frame with no room broke the window: against the
        // protocol, not a reason to wait.
        let on = |f: &wire::Fragment<'_>| match self.on_frame(c, f) {
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
    fn read_frames(
        &self,
        c: &Conn,
        mut on: impl FnMut(&wire::Fragment<'_>) -> Result<(), Errno>,
    ) -> ReadEnd {
        // Reads land straight behind the bytes of an unfinished frame, and
        // frames are decoded where they lie.
        const READ: usize = 256 * 1024;
        let mut inb = c.inbuf.lock();
        loop {
            let mut used = 0;
            loop {
                match wire::decode_unsummed(&inb[used..]) {
                    Ok((f, n)) => match on(&f) {
                        Ok(()) => used += n,
                        Err(ENOBUFS) => {
                            inb.drain(..used);
                            return ReadEnd::Full;
                        }
                        Err(_) => return ReadEnd::Bad,
                    },
                    Err(wire::WireError::Short { .. }) => break,
                    Err(_) => return ReadEnd::Bad,
                }
            }
            inb.drain(..used);
            inb.reserve(READ);
            let spare = inb.spare_capacity_mut();
            // The fd's life lock: another thread pumping this connection
            // (see `Backend::pump`) may have closed it, and its number may
            // already name another connection.
            let fd_life = c.out.lock();
            if c.closed.load(Ordering::Acquire) {
                return ReadEnd::Gone;
            }
            // SAFETY: reads at most `spare.len()` bytes into the vector's
            // spare capacity, which is ours.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_recvfrom,
                    c.kfd,
                    spare.as_mut_ptr(),
                    spare.len(),
                    libc::MSG_DONTWAIT,
                    0usize,
                    0usize,
                )
            };
            drop(fd_life);
            if r == 0 || (r < 0 && errno() != EAGAIN) {
                return ReadEnd::Closed;
            }
            if r < 0 {
                return ReadEnd::Again;
            }
            let len = inb.len() + r as usize;
            // SAFETY: the kernel initialised the `r` bytes after the old end.
            unsafe { inb.set_len(len) };
        }
    }

    /// Datagrams on a sender's link to one of our ports. When the receiving
    /// socket's buffer is full the link pauses (its sender's queue, then
    /// the sender itself, wait: see `Conn::datagram`) until a read of that
    /// socket offers its next datagram again, in the reader's thread
    /// (`window`), or the transport thread does, every millisecond.
    fn read_datagrams(&self, c: &Arc<Conn>) {
        let end = self.read_frames(c, |f| {
            if f.header.kind != wire::FragKind::Dgram {
                return Err(libc::EPROTO);
            }
            let src = SockAddr::from_bytes(f.addr).ok_or(libc::EPROTO)?;
            // Nobody on the port takes it: dropped, as UDP does.
            if let Some(h) = dgram_receiver(c.port, &src) {
                let src = seen_as(&src, family_of(h));
                let mut f = *f;
                f.addr = src.as_bytes();
                f.header.addr_len = f.addr.len() as u16;
                return match upcall::deliver(h, &f) {
                    Err(ENOBUFS) => Err(ENOBUFS),
                    _ => Ok(()),
                };
            }
            Ok(())
        });
        match end {
            ReadEnd::Again | ReadEnd::Gone => {}
            ReadEnd::Full => self.pause(c),
            ReadEnd::Closed | ReadEnd::Bad => self.remove(c),
        }
    }

    /// Stops reading link `c` until `resume_paused` finds room for its
    /// next datagram.
    fn pause(&self, c: &Arc<Conn>) {
        let mut p = self.paused.lock();
        if !p.iter().any(|x| Arc::ptr_eq(x, c)) {
            self.watch(c, false);
            p.push(c.clone());
        }
    }

    /// Offers the paused links' next datagrams again.
    fn resume_paused(&self) {
        let links = core::mem::take(&mut *self.paused.lock());
        for c in links {
            if c.closed.load(Ordering::Acquire) {
                continue;
            }
            self.watch(&c, true);
            self.read_datagrams(&c);
        }
    }

    /// A link of ours to another datagram port became readable: its
    /// receiver sends nothing, so it closed (or broke the protocol). The
    /// link goes; the next datagram to that port opens a new one.
    fn link_readable(&self, c: &Arc<Conn>) {
        drop_link(c);
        self.remove(c);
    }

    /// One frame of connection `c`. An error means the peer broke the
    /// protocol (or the frontend refused what it sent): the caller ends the
    /// connection. The protocol: the client's first frame is HELLO, the
    /// server's first is ACCEPT; data and WINDOW frames only after them.
    fn on_frame(&self, c: &Arc<Conn>, f: &wire::Fragment<'_>) -> Result<(), Errno> {
        let h = &f.header;
        let up = c.up.load(Ordering::Acquire);
        // A client's connection carries its socket from the start; an
        // accepted one gets its socket at HELLO.
        let server_side = c.handle().0 != c.listener.0;
        if h.kind == wire::FragKind::Dgram {
            match h.conn {
                CTL_HELLO if server_side && c.handle().0 == 0 => {
                    // A client: make the accepted socket.
                    let ls = crate::socket::slab::lookup(c.listener).ok_or(ECONNREFUSED)?;
                    let st = XSock::new(ls.info);
                    *st.conn.lock() = Some(c.clone());
                    if let Some(a) = SockAddr::from_bytes(f.payload) {
                        st.peer.lock().replace(seen_as(&a, ls.info.domain));
                    }
                    if let Some(l) = ls.backend_state::<XSock>() {
                        *st.local.lock() = *l.local.lock();
                    }
                    let state: SockState = st.clone();
                    let ch = upcall::incoming(c.listener, state)?;
                    // From here a failure refuses `ch` (see `fail`).
                    c.handle.store(ch.0, Ordering::Release);
                    let local = st
                        .local
                        .lock()
                        .map(|a| a.as_bytes().to_vec())
                        .unwrap_or_default();
                    c.control(self, CTL_ACCEPT, upcall::window(ch)?, &local)?;
                    c.up.store(true, Ordering::Release);
                    upcall::connected(ch)?;
                }
                CTL_ACCEPT if !server_side && !up => {
                    let ch = c.handle();
                    if let Some(s) = crate::socket::slab::lookup(ch) {
                        if let Some(x) = s.backend_state::<XSock>() {
                            if let Some(a) = SockAddr::from_bytes(f.payload) {
                                x.peer.lock().replace(seen_as(&a, x.info.domain));
                            }
                        }
                    }
                    c.up.store(true, Ordering::Release);
                    upcall::credit(ch, h.offset)?;
                    // Connected before anything else can fail: a server
                    // that is already gone shows as end-of-stream or a
                    // reset, never as a connect that waits forever.
                    upcall::connected(ch)?;
                    let _ = c.control(self, CTL_WINDOW, upcall::window(ch)?, &[]);
                }
                CTL_WINDOW if up => match upcall::credit(c.handle(), h.offset) {
                    // EBADF: the socket was closed here while its last bytes
                    // still leave; the peer's window no longer matters.
                    Ok(()) | Err(EBADF) => {}
                    Err(e) => return Err(e),
                },
                _ => return Err(libc::EPROTO),
            }
            return Ok(());
        }
        if !up {
            return Err(libc::EPROTO);
        }
        if h.flags & wire::FLAG_FIN != 0 {
            c.got_fin.store(true, Ordering::Release);
        }
        match upcall::deliver(c.handle(), f) {
            // EBADF: the socket was closed here; its peer learns of it.
            Ok(()) | Err(EBADF) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl Conn {
    fn new(kfd: i32, role: Role, handle: SockHandle, listener: SockHandle) -> Conn {
        Conn {
            kfd,
            role,
            port: 0,
            handle: AtomicU64::new(handle.0),
            listener,
            out: Mutex::new(VecDeque::new()),
            blocked: Mutex::new(Vec::new()),

            inbuf: Mutex::new(Vec::new()),
            got_fin: AtomicBool::new(false),
            up: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            watching: AtomicU32::new(0),
            delegated: AtomicBool::new(false),
            keep_input: AtomicBool::new(false),
            shared: AtomicBool::new(false),
            ended: AtomicBool::new(false),
            closing: AtomicBool::new(false),
        }
    }
}

/// How long a process that exits waits for its queued bytes to leave.
const EXIT_FLUSH: core::time::Duration = core::time::Duration::from_secs(5);

/// At exit(): the transport thread dies with the process, so bytes still
/// queued for a peer (a sender may queue up to the peer's window, several
/// MiB, more than the kernel socket holds) are written out here, with the
/// FINs of closed sockets among them; the kernel then delivers what it
/// holds before the end-of-stream, as it does after a TCP close.
extern "C" fn flush_at_exit() {
    crate::api::ffi::guard((), || {
        transport().flush_all(crate::platform::deadline_after(EXIT_FLUSH))
    })
}

impl Transport {
    /// Writes out every queued byte, waiting for room until `deadline`.
    fn flush_all(&self, deadline: Option<crate::platform::Deadline>) {
        // Not under `conns`: a queue's lock is taken before it (`remove`).
        let all: Vec<Arc<Conn>> = self.conns.lock().values().cloned().collect();
        for c in all {
            if c.out.lock().is_empty() {
                continue;
            }
            loop {
                self.flush(&c);
                if c.out.lock().is_empty() || c.closed.load(Ordering::Acquire) {
                    break;
                }
                let left = deadline.map_or(core::time::Duration::ZERO, crate::platform::time_left);
                if left.is_zero() {
                    return;
                }
                let mut p = libc::pollfd {
                    fd: c.kfd,
                    events: libc::POLLOUT,
                    revents: 0,
                };
                let ms = left.as_millis().clamp(1, 100) as i32;
                // SAFETY: poll on one live pollfd.
                unsafe { libc::syscall(libc::SYS_poll, &mut p as *mut libc::pollfd, 1, ms) };
            }
        }
    }
}

static TRANSPORT: Transport = Transport {
    epfd: AtomicI32::new(-1),
    conns: Mutex::new(BTreeMap::new()),
    paused: Mutex::new(Vec::new()),
};

fn transport() -> &'static Transport {
    &TRANSPORT
}

/// The backend's state of one socket.
pub struct XSock {
    info: SockInfo,
    local: Mutex<Option<SockAddr>>,
    peer: Mutex<Option<SockAddr>>,
    /// The stream connection, the datagram socket, or the listener.
    conn: Mutex<Option<Arc<Conn>>>,
    /// The socket file this socket owns (removed at close).
    path: Mutex<Option<PathBuf>>,
}

impl XSock {
    fn new(info: SockInfo) -> Arc<XSock> {
        Arc::new(XSock {
            info,
            local: Mutex::new(None),
            peer: Mutex::new(None),
            conn: Mutex::new(None),
            path: Mutex::new(None),
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

/// The cross-process backend over a network directory.
pub struct XProc {
    dir: PathBuf,
    next_port: AtomicU64,
}

fn unix_addr(path: &std::path::Path) -> Result<(libc::sockaddr_un, u32), Errno> {
    use std::os::unix::ffi::OsStrExt;
    let b = path.as_os_str().as_bytes();
    // SAFETY: all-zero is a valid sockaddr_un.
    let mut a: libc::sockaddr_un = unsafe { core::mem::zeroed() };
    if b.len() >= a.sun_path.len() {
        return Err(ENAMETOOLONG);
    }
    a.sun_family = libc::AF_UNIX as u16;
    for (d, s) in a.sun_path.iter_mut().zip(b) {
        *d = *s as libc::c_char;
    }
    Ok((a, (2 + b.len() + 1) as u32))
}

impl XProc {
    /// A backend over `dir` (created 0700 when missing).
    pub fn new(dir: PathBuf) -> Result<XProc, Errno> {
        let c = CString::new(dir.as_os_str().as_encoded_bytes()).map_err(|_| EINVAL)?;
        // SAFETY: mkdir with a NUL-terminated path.
        let r = unsafe { libc::mkdir(c.as_ptr(), 0o700) };
        if r != 0 && errno() != EEXIST {
            return Err(errno());
        }
        let seed = std::process::id() as u64 * 7919;
        Ok(XProc {
            dir,
            next_port: AtomicU64::new(seed),
        })
    }

    fn path(&self, ty: i32, port: u16) -> PathBuf {
        self.dir.join(alloc::format!(
            "{}{}",
            if ty == SOCK_STREAM { 't' } else { 'u' },
            port
        ))
    }

    /// Binds a kernel AF_UNIX socket at the port's file; a file left by a
    /// dead process is removed first.
    fn bind_port(&self, ty: i32, port: u16) -> Result<(i32, PathBuf), Errno> {
        let path = self.path(ty, port);
        let (a, len) = unix_addr(&path)?;
        // A datagram port too is a stream listener: senders' links connect
        // to it (see `DGRAM_LINKS`).
        let k = unix_stream()?;
        for attempt in 0..2 {
            // SAFETY: bind with a valid address.
            let r = unsafe { libc::syscall(libc::SYS_bind, k, &a as *const _, len) };
            if r == 0 {
                // SAFETY: listen on our own socket.
                if ty == SOCK_DGRAM && unsafe { libc::syscall(libc::SYS_listen, k, 128) } != 0 {
                    let e = errno();
                    close_kfd(k);
                    let _ = std::fs::remove_file(&path);
                    return Err(e);
                }
                return Ok((k, path));
            }
            let e = errno();
            if e == EADDRINUSE && attempt == 0 && self.stale(&a, len) {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            close_kfd(k);
            return Err(if e == EADDRINUSE { EADDRINUSE } else { e });
        }
        close_kfd(k);
        Err(EADDRINUSE)
    }

    /// Is the socket file at `a` left by a dead process (nobody answers)?
    fn stale(&self, a: &libc::sockaddr_un, len: u32) -> bool {
        match connect_unix(a, len) {
            Ok(p) => {
                close_kfd(p);
                false
            }
            Err(e) => e == ECONNREFUSED,
        }
    }

    fn bind_ep(
        &self,
        x: &XSock,
        h: SockHandle,
        ep: IpEp,
        opts: SockOpts,
    ) -> Result<SockAddr, Errno> {
        let dgram = x.info.ty == SOCK_DGRAM;
        // Held across the bind so two binds of one port cannot both miss
        // the table.
        let mut ports = DGRAM_PORTS.lock();
        if dgram && ep.port != 0 {
            if let Some(p) = ports.get_mut(&ep.port) {
                let shareable = p.members.iter().all(|(_, o)| {
                    (o.reuseaddr && opts.reuseaddr) || (o.reuseport && opts.reuseport)
                });
                if !shareable {
                    return Err(EADDRINUSE);
                }
                p.members.push((h, opts));
                *x.conn.lock() = Some(p.conn.clone());
                let a = ep.to_sockaddr(x.info.domain);
                *x.local.lock() = Some(a);
                return Ok(a);
            }
        }
        let (port, k, path) = if ep.port != 0 {
            let (k, p) = self.bind_port(x.info.ty, ep.port)?;
            (ep.port, k, p)
        } else {
            let mut found = None;
            for _ in 0..4096 {
                let n = self.next_port.fetch_add(1, Ordering::Relaxed);
                let port = 32768 + (n % 28232) as u16;
                if dgram && ports.contains_key(&port) {
                    continue;
                }
                if let Ok((k, p)) = self.bind_port(x.info.ty, port) {
                    found = Some((port, k, p));
                    break;
                }
            }
            found.ok_or(EADDRINUSE)?
        };
        let c = if dgram {
            let c = Arc::new(Conn {
                port,
                ..Conn::new(k, Role::Dgram, h, h)
            });
            transport().add(c.clone())?;
            ports.insert(
                port,
                DgramPort {
                    conn: c.clone(),
                    path,
                    members: alloc::vec![(h, opts)],
                },
            );
            c
        } else {
            *x.path.lock() = Some(path);
            Arc::new(Conn::new(k, Role::Listener, h, h))
        };
        *x.conn.lock() = Some(c);
        let a = IpEp { port, ..ep }.to_sockaddr(x.info.domain);
        *x.local.lock() = Some(a);
        Ok(a)
    }

    /// Takes datagram socket `h` off its port; returns the port's kernel
    /// socket and file when it was the last one there.
    fn leave_port(&self, x: &XSock, h: SockHandle) -> Option<(Arc<Conn>, PathBuf)> {
        let local = (*x.local.lock())?;
        let port = IpEp::parse(&local, local.family()).ok()?.port;
        let mut ports = DGRAM_PORTS.lock();
        let p = ports.get_mut(&port)?;
        p.members.retain(|(m, _)| *m != h);
        if let Some(&(next, _)) = p.members.first() {
            p.conn.handle.store(next.0, Ordering::Release);
            return None;
        }
        ports.remove(&port).map(|p| (p.conn, p.path))
    }

    /// The link to datagram port `port`, opened on first use; `None` when
    /// nobody (of ours) is bound there.
    fn link(&self, port: u16) -> Option<Arc<Conn>> {
        let mut links = DGRAM_LINKS.lock();
        if let Some(l) = links.get(&port) {
            if !l.closed.load(Ordering::Acquire) {
                return Some(l.clone());
            }
            links.remove(&port);
        }
        let path = self.path(SOCK_DGRAM, port);
        let (a, len) = unix_addr(&path).ok()?;
        let k = connect_unix(&a, len).ok()?;
        if !peer_is_us(k) {
            close_kfd(k);
            return None;
        }
        let size = DGRAM_LINK_SNDBUF as libc::c_int;
        // SAFETY: setsockopt on our own socket with a live int.
        unsafe {
            libc::setsockopt(
                k,
                libc::SOL_SOCKET,
                libc::SO_SNDBUF,
                &size as *const libc::c_int as *const libc::c_void,
                core::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        let c = Arc::new(Conn {
            port,
            ..Conn::new(k, Role::DgramOut, SockHandle(0), SockHandle(0))
        });
        transport().add(c.clone()).ok()?;
        links.insert(port, c.clone());
        Some(c)
    }

    fn autobind(&self, x: &XSock, h: SockHandle) -> Result<(), Errno> {
        if x.local.lock().is_some() {
            return Ok(());
        }
        let any = IpEp::parse(
            &crate::socket::unspecified_addr(x.info.domain),
            x.info.domain,
        )?;
        self.bind_ep(x, h, any, SockOpts::default()).map(|_| ())
    }
}

impl Backend for XProc {
    fn name(&self) -> &str {
        "xproc"
    }

    fn supports(&self, info: &SockInfo) -> bool {
        matches!(info.domain, AF_INET | AF_INET6) && matches!(info.ty, SOCK_STREAM | SOCK_DGRAM)
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
        let ep = IpEp::parse(addr, x.info.domain)?;
        if !ep.is_local() {
            return Err(EADDRNOTAVAIL);
        }
        self.bind_ep(x, sock.handle, ep, sock.opts)
    }

    fn listen(&self, sock: SockRef<'_>, backlog: u32) -> Result<(), Errno> {
        let x = xs(&sock)?;
        self.autobind(x, sock.handle)?;
        let c = x.conn.lock().clone().ok_or(EINVAL)?;
        // SAFETY: listen on our own kernel socket.
        sys(unsafe { libc::syscall(libc::SYS_listen, c.kfd, backlog.max(1) as i32) })?;
        transport().add(c)
    }

    fn connect(&self, sock: SockRef<'_>, dest: &SockAddr) -> Result<(), Errno> {
        let x = xs(&sock)?;
        if x.info.ty == SOCK_DGRAM && dest.family() == AF_UNSPEC {
            // Dissolve the association (the frontend cleared its flag).
            *x.peer.lock() = None;
            return Ok(());
        }
        let ep = IpEp::parse(dest, x.info.domain)?;
        if x.info.ty == SOCK_DGRAM {
            self.autobind(x, sock.handle)?;
            *x.peer.lock() = Some(*dest);
            return Ok(());
        }
        let path = self.path(SOCK_STREAM, ep.port);
        let (a, len) = unix_addr(&path)?;
        let k = match connect_unix(&a, len) {
            Ok(k) if peer_is_us(k) => k,
            Ok(k) => {
                // Another user's listener: as if nobody listened.
                close_kfd(k);
                let _ = upcall::refused(sock.handle, ECONNREFUSED);
                return Ok(());
            }
            Err(e) => {
                if e == ECONNREFUSED && self.stale(&a, len) {
                    let _ = std::fs::remove_file(&path);
                }
                let _ = upcall::refused(sock.handle, ECONNREFUSED);
                return Ok(());
            }
        };
        let mut me = ep;
        me.ip = ep.source_for();
        me.port = 32768 + (self.next_port.fetch_add(1, Ordering::Relaxed) % 28232) as u16;
        let mine = me.to_sockaddr(x.info.domain);
        *x.local.lock() = Some(mine);
        *x.peer.lock() = Some(*dest);
        let c = Arc::new(Conn::new(k, Role::Stream, sock.handle, sock.handle));
        *x.conn.lock() = Some(c.clone());
        transport().add(c.clone())?;
        c.control(transport(), CTL_HELLO, 0, mine.as_bytes())
    }

    fn write(&self, sock: SockRef<'_>, frag: &Fragment<'_>) -> Result<(), Errno> {
        let x = xs(&sock)?;
        match frag.header.kind {
            FragKind::Stream => {
                let Some(c) = x.conn.lock().clone() else {
                    return Err(ENOTCONN);
                };
                if c.closed.load(Ordering::Acquire) {
                    if !frag.payload.is_empty() {
                        let _ = upcall::reset(
                            sock.handle,
                            if c.got_fin.load(Ordering::Acquire) {
                                EPIPE
                            } else {
                                ECONNRESET
                            },
                        );
                    }
                    return Ok(());
                }
                c.frame(transport(), frag)
            }
            FragKind::Dgram => {
                self.autobind(x, sock.handle)?;
                let dest = if frag.addr.is_empty() {
                    x.peer.lock().ok_or(EDESTADDRREQ)?
                } else {
                    SockAddr::from_bytes(frag.addr).ok_or(EINVAL)?
                };
                let ep = IpEp::parse(&dest, x.info.domain)?;
                if ep.port == 0 {
                    return Err(EINVAL);
                }
                let src = {
                    let mut l = x.local.lock().ok_or(EINVAL)?;
                    if let Ok(mut me) = IpEp::parse(&l, x.info.domain) {
                        if me.is_wild() {
                            me.ip = ep.source_for();
                            l = me.to_sockaddr(x.info.domain);
                        }
                    }
                    l
                };
                let mut out = *frag;
                out.addr = src.as_bytes();
                out.header.addr_len = out.addr.len() as u16;
                let hdr = wire::encode_header(&out, false).map_err(|_| EINVAL)?;
                // Nobody bound there, or the link is gone: dropped, as
                // UDP does; a connected socket learns of it as of an ICMP
                // port unreachable (ECONNREFUSED on a later call).
                let Some(link) = self.link(ep.port) else {
                    if frag.addr.is_empty() && out.header.dgram_offset == 0 {
                        let _ = upcall::error(sock.handle, ECONNREFUSED);
                    }
                    return Ok(());
                };
                let first = out.header.dgram_offset == 0;
                let parts = [&hdr[..], out.addr, out.payload];
                match link.datagram(transport(), sock.handle, first, &parts) {
                    Ok(()) => {}
                    Err(EAGAIN) => return Err(EAGAIN),
                    Err(_) => {
                        drop_link(&link);
                        transport().remove(&link);
                    }
                }
                Ok(())
            }
        }
    }

    fn window(&self, sock: SockRef<'_>, limit: u64) {
        if let Ok(x) = xs(&sock) {
            if let Some(c) = x.conn.lock().clone() {
                match c.role {
                    Role::Stream => {
                        let _ = c.control(transport(), CTL_WINDOW, limit, &[]);
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

    fn input_fd(&self, sock: SockRef<'_>) -> Option<i32> {
        let c = stream_conn(&sock)?;
        (!c.closed.load(Ordering::Acquire)).then_some(c.kfd)
    }

    fn input_watched(&self, sock: SockRef<'_>) {
        if let Some(c) = stream_conn(&sock) {
            transport().delegate(&c, true);
        }
    }

    fn input_wanted(&self, sock: SockRef<'_>) {
        if let Some(c) = stream_conn(&sock) {
            if !c.keep_input.swap(true, Ordering::AcqRel) {
                transport().delegate(&c, false);
            }
        }
    }

    fn pump(&self, sock: SockRef<'_>) {
        if let Some(c) = stream_conn(&sock) {
            transport().read_stream(&c);
        }
    }

    fn local_addr(&self, sock: SockRef<'_>) -> Option<SockAddr> {
        *xs(&sock).ok()?.local.lock()
    }

    fn peer_addr(&self, sock: SockRef<'_>) -> Option<SockAddr> {
        *xs(&sock).ok()?.peer.lock()
    }

    fn close(&self, sock: SockRef<'_>) {
        let Ok(x) = xs(&sock) else { return };
        if x.info.ty == SOCK_DGRAM {
            x.conn.lock().take();
            // The port's socket and file go with its last socket.
            if let Some((c, path)) = self.leave_port(x, sock.handle) {
                let _ = std::fs::remove_file(path);
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
        if let Some(c) = x.conn.lock().take() {
            // Queued bytes (the FIN among them) go out first: the transport
            // thread closes the kernel socket when its queue is empty, and
            // reads it meanwhile (nobody pumps a closed socket).
            c.closing.store(true, Ordering::Release);
            transport().delegate(&c, false);
            transport().flush(&c);
        }
        if let Some(p) = x.path.lock().take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The default network directory: `$XDG_RUNTIME_DIR/usock-net`, else
/// `/tmp/usock-net-<uid>`.
pub fn default_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) => PathBuf::from(d).join("usock-net"),
        // SAFETY: getuid has no preconditions.
        None => PathBuf::from(alloc::format!("/tmp/usock-net-{}", unsafe {
            libc::getuid()
        })),
    }
}

/// fork() support, step 1 (in the parent, before fork): takes the
/// backend's global locks (ports, links, the transport's tables) so that
/// the child does not inherit one held by another thread. Must be followed
/// by [`atfork_parent`] or [`atfork_child`].
pub fn atfork_prepare() {
    core::mem::forget(DGRAM_PORTS.lock());
    core::mem::forget(DGRAM_LINKS.lock());
    core::mem::forget(TRANSPORT.conns.lock());
    core::mem::forget(TRANSPORT.paused.lock());
}

/// Releases the locks [`atfork_prepare`] took, innermost first.
fn atfork_release(in_child: bool) {
    // SAFETY: atfork_prepare left these locks held by this thread (in the
    // child: the thread that forked), their guards forgotten; fork_release
    // also takes the parent's waiters off them in the child.
    unsafe {
        crate::sync::fork_release(&TRANSPORT.paused, in_child);
        crate::sync::fork_release(&TRANSPORT.conns, in_child);
        crate::sync::fork_release(&DGRAM_LINKS, in_child);
        crate::sync::fork_release(&DGRAM_PORTS, in_child);
    }
}

/// fork() support, in the parent after fork: releases the locks taken by
/// [`atfork_prepare`]; the parent's transport goes on unchanged.
pub fn atfork_parent() {
    atfork_release(false);
}

/// fork() support, in the child after fork: the parent's transport thread
/// did not come along, and the kernel sockets it served belong to the
/// parent's connections, so the child closes its copies of them (a child
/// holding them would keep a dead parent's peers from seeing the reset) and
/// starts an empty transport; the child's own new sockets get a new thread.
pub fn atfork_child() {
    atfork_release(true);
    core::mem::take(&mut *TRANSPORT.paused.lock());
    // The parent's ports and links stay the parent's: the child's copies of
    // their kernel sockets are closed below, their files are not touched.
    core::mem::take(&mut *DGRAM_PORTS.lock());
    core::mem::take(&mut *DGRAM_LINKS.lock());
    let old = core::mem::take(&mut *TRANSPORT.conns.lock());
    for (kfd, c) in old {
        c.closed.store(true, Ordering::Release);
        close_kfd(kfd);
    }
    let ep = TRANSPORT.epfd.swap(-1, Ordering::AcqRel);
    if ep >= 0 {
        close_kfd(ep);
    }
}

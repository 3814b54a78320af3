//! The `shm` backend (SHARED.md): TCP sockets of the programs on one
//! network directory, connected through [`super::conn`]: the bytes in
//! shared rings, the connection's life in kernel anchors. Its sockets are
//! [`SharedStreams`]: the frontend keeps no buffer for them, so a fork child
//! uses the sockets it inherited as Linux's would (a pre-fork server's
//! workers accept on their master's listener, a fork-per-connection server's
//! child serves the connection it was handed).
//!
//! The default for TCP on a network (`USOCK_NET`; `USOCK_SHM=0` turns it
//! off): stream sockets only (UDP and AF_UNIX stay with the cross-process
//! backend), every process of a network in the same mode. A socket crosses exec (the
//! interposed exec calls) and SCM_RIGHTS on a kernel AF_UNIX socket as its
//! anchor with its segment's memfd beside it ([`Shm::recognise`] adopts
//! them). SHARED.md lists what it lacks.
#![deny(unsafe_code)]

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::path::{Path, PathBuf};

use super::conn::{Conn, Listener};
use super::defer::Deferrals;
use super::segment::Side;
use crate::addr::{IpEp, SockAddr};
use crate::backend::contract::{
    store_maxseg, Backend, Block, ClaimOp, ForkAware, InputDelegation, SharedStreams, SockHandle,
    SockInfo, SockRef, SockState,
};
use crate::backend::upcall;
use crate::backends::xproc::ports::Space;
use crate::consts::*;
use crate::platform::anchor_ipc;
use crate::sync::{Mutex, SetOnce};

mod groups;
mod ports;

/// Priority of the shm backend: above the cross-process backend, which
/// then carries only what this one declines (datagrams, AF_UNIX), and
/// below the engine, which takes the addresses outside the loopback
/// ranges when a network interface is configured (`USOCK_NETIF`).
pub const SHM_PRIORITY: i32 = 15;

/// Each direction's ring: the kernel's default TCP window, about.
const RING: usize = 256 << 10;

/// Bytes of a connection's offer body: family, the connecting end's
/// address, the address it connected to, the MSS it advertises (u32,
/// big-endian: its TCP_MAXSEG, 0 for none).
const BODY: usize = 1 + 18 + 18 + 4;

/// The backend: one network directory.
pub struct Shm {
    dir: PathBuf,
    /// Where the next search for a free port starts.
    next_port: AtomicU64,
    /// fork()s this process made: a socket made before one may be held by
    /// a child too.
    forks: AtomicU32,
    /// Port names a connect found to be SO_REUSEPORT groups (directories):
    /// the next connect there goes to the group at once, without first
    /// building a connection for the directory's name, which fails; and
    /// their member listings.
    groups: groups::Groups,
}

/// The file a socket bound at its port's name, until the socket closes.
struct PortFile {
    main: PathBuf,
    /// The IPv6 name, a symbolic link to `main` (a dual-stack socket).
    link: Option<PathBuf>,
    /// An SO_REUSEPORT member (`main` is its name in the group): the
    /// group's directory and IPv6 link, which its last member removes.
    group: Option<(PathBuf, Option<PathBuf>)>,
}

/// A socket of the backend.
struct ShmSock {
    info: SockInfo,
    local: Mutex<Option<IpEp>>,
    peer: Mutex<Option<IpEp>>,
    /// The kernel socket bound at the port's file, until listen() makes it
    /// the listener (a connecting socket keeps it as its port's claim).
    bound: Mutex<Option<i32>>,
    /// The port file this socket made. Its close removes it when no other
    /// process can hold the socket; otherwise the file stays until a bind
    /// finds it left over (`Shm::reclaim`).
    file: Mutex<Option<PortFile>>,
    /// The socket went to another process by exec or SCM_RIGHTS.
    handed_on: core::sync::atomic::AtomicBool,
    /// Closed in this process: a connect waiting for room gives up.
    abandoned: core::sync::atomic::AtomicBool,
    listener: SetOnce<Listener>,
    /// The connection, in slot `gen`: connect(AF_UNSPEC) lets go of one
    /// and moves on to the next slot (a slot is set once, so that a
    /// connection is reached with one load while the socket lives).
    conns: [SetOnce<Conn>; CONNS],
    gen: core::sync::atomic::AtomicUsize,
    /// The program bound the port itself (Linux's SOCK_BINDPORT_LOCK):
    /// connect(AF_UNSPEC) keeps it.
    port_locked: core::sync::atomic::AtomicBool,
    /// A socket connected to itself (Linux's simultaneous open): the
    /// other end of its connection, where what it sends arrives and it
    /// reads (`Shm::connect_self`).
    echo: SetOnce<Conn>,
    /// O_NONBLOCK until the socket has a listener or a connection, which
    /// then keep it where every holder sees it.
    nonblock: core::sync::atomic::AtomicBool,
    /// The port this socket took (by bind, or listen's autobind) and in
    /// which space.
    space: Mutex<Option<(u16, Space)>>,
    /// A connect port (no file holds it; see `ports`).
    eph: Mutex<Option<crate::backends::xproc::ports::ConnectKey>>,
    /// An accepted socket: its listener's port space and SO_REUSEADDR and
    /// SO_REUSEPORT, which its TIME_WAIT takes. A listener: its own, as of
    /// listen().
    listened: Mutex<Option<(Space, bool, bool)>>,
    /// The process that made the socket, and its [`Shm::forks`] then: no
    /// other process can hold a socket its maker has not forked or handed
    /// on since.
    origin: Mutex<(u32, u32)>,
    /// A listener's advertised MSS (`SockOpts::maxseg` as of listen()),
    /// which its accepted ends record in their segments.
    maxseg: AtomicU32,
    /// SO_RCVBUF as the frontend sized it (0: never set): the window its
    /// connection's receiving ring gives the peer; a listener's, its
    /// accepted ends'.
    rcvbuf: AtomicU32,
    /// TCP_DEFER_ACCEPT, and what a deferring listener holds here.
    defer: Deferrals,
}

impl ShmSock {
    fn new(info: SockInfo) -> ShmSock {
        ShmSock {
            info,
            local: Mutex::new(None),
            peer: Mutex::new(None),
            bound: Mutex::new(None),
            file: Mutex::new(None),
            listener: SetOnce::new(),
            conns: core::array::from_fn(|_| SetOnce::new()),
            gen: core::sync::atomic::AtomicUsize::new(0),
            port_locked: core::sync::atomic::AtomicBool::new(false),
            echo: SetOnce::new(),
            handed_on: core::sync::atomic::AtomicBool::new(false),
            abandoned: core::sync::atomic::AtomicBool::new(false),
            nonblock: core::sync::atomic::AtomicBool::new(false),
            maxseg: AtomicU32::new(0),
            rcvbuf: AtomicU32::new(0),
            defer: Deferrals::new(),
            space: Mutex::new(None),
            eph: Mutex::new(None),
            listened: Mutex::new(None),
            // Inherited, until `Shm::made` says otherwise.
            origin: Mutex::new((0, 0)),
        }
    }
}

/// How many connections one socket may have in turn (connect(AF_UNSPEC)
/// and connect again); after that a disconnect leaves it reset.
const CONNS: usize = 4;

impl ShmSock {
    /// The socket's connection, if it has one.
    fn conn(&self) -> Option<&Conn> {
        self.conns.get(self.gen.load(Ordering::Acquire))?.get()
    }

    /// Gives the socket its connection; Err when it has one.
    fn set_conn(&self, c: Conn) -> Result<(), Conn> {
        let slot = match self.conns.get(self.gen.load(Ordering::Acquire)) {
            Some(slot) => slot,
            None => return Err(c),
        };
        slot.set(c)?;
        let rcvbuf = self.rcvbuf.load(Ordering::Acquire);
        if let (Some(c), true) = (slot.get(), rcvbuf != 0) {
            c.set_window(rcvbuf as usize);
        }
        Ok(())
    }
}

fn ss<'a>(s: &SockRef<'a>) -> Result<&'a ShmSock, Errno> {
    (s.state.as_ref() as &dyn core::any::Any)
        .downcast_ref::<ShmSock>()
        .ok_or(EINVAL)
}

fn put_ep(out: &mut [u8], ep: &IpEp) {
    out[..16].copy_from_slice(&ep.ip);
    out[16..18].copy_from_slice(&ep.port.to_be_bytes());
}

fn get_ep(b: &[u8], family: i32) -> IpEp {
    let mut ip = [0u8; 16];
    ip.copy_from_slice(&b[..16]);
    IpEp {
        family,
        ip,
        port: u16::from_be_bytes([b[16], b[17]]),
    }
}

impl Shm {
    /// Whether no other process can hold socket `x`: this process made
    /// it, has not forked since, and never handed it on (exec, SCM_RIGHTS).
    fn alone(&self, x: &ShmSock) -> bool {
        let (pid, forks) = *x.origin.lock();
        pid == this_pid()
            && forks == self.forks.load(Ordering::Relaxed)
            && !x.handed_on.load(Ordering::Relaxed)
    }

    /// The socket of connection `c`, which listener `x` took with offer
    /// `body`.
    fn accepted_end(&self, x: &ShmSock, c: Conn, body: &[u8; BODY]) -> ShmSock {
        let family = if body[0] == 1 { AF_INET6 } else { AF_INET };
        let child = self.made(x.info);
        *child.listened.lock() = *x.listened.lock();
        child
            .rcvbuf
            .store(x.rcvbuf.load(Ordering::Acquire), Ordering::Release);
        *child.peer.lock() = Some(get_ep(&body[1..19], family));
        *child.local.lock() = Some(get_ep(&body[19..37], family));
        // Each end's advertised MSS, where both ends (and whoever inherits
        // one) find the other's: the connector's from its offer, the
        // listener's.
        let seg = c.segment();
        let theirs = u32::from_be_bytes([body[37], body[38], body[39], body[40]]);
        seg.mss(Side::Connector).store(theirs, Ordering::Release);
        seg.mss(Side::Acceptor)
            .store(x.maxseg.load(Ordering::Relaxed), Ordering::Release);
        let _ = child.set_conn(c);
        // A fork child that only accepts is listed too.
        crate::backends::xproc::serve_status();
        child
    }

    /// A socket this process makes (not one it inherits).
    fn made(&self, info: SockInfo) -> ShmSock {
        let x = ShmSock::new(info);
        *x.origin.lock() = (this_pid(), self.forks.load(Ordering::Relaxed));
        x
    }

    /// connect() of a socket to its own address and port: Linux's
    /// simultaneous open connects it to itself. A connection made through
    /// a listening anchor of its own for the moment: the socket sends on
    /// one end and reads at the other (`ShmSock::echo`). `body`: its
    /// offer, with itself at both ends.
    fn connect_self(&self, sock: SockRef<'_>, x: &ShmSock, body: &[u8]) -> Result<(), Errno> {
        static SELF: AtomicU32 = AtomicU32::new(0);
        let n = SELF.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .dir
            .join(alloc::format!(".self{}.{n}", std::process::id()));
        let l = Listener::bind(&tmp, 1)?;
        let mut me = [0u8; 19];
        me[0] = body[0];
        me[1..].copy_from_slice(&body[1..19]);
        let c = Conn::connect(&tmp, RING, RING, body, false, [&me, &me]);
        let _ = std::fs::remove_file(&tmp);
        let c = c?;
        let mut b = [0u8; BODY];
        let (e, _) = l.accept(&mut b)?;
        let here = *x.local.lock();
        *x.peer.lock() = here;
        let nb = x.nonblock.load(Ordering::Relaxed);
        c.set_nonblocking(nb);
        e.set_nonblocking(nb);
        if x.set_conn(c).is_err() || x.echo.set(e).is_err() {
            return Err(EISCONN);
        }
        let _ = upcall::connected(sock.handle);
        Ok(())
    }

    /// The backend over network directory `dir` (which must exist and be
    /// this user's: the cross-process backend's checks come first).
    pub fn new(dir: PathBuf) -> Shm {
        let seed = u64::from(std::process::id()).wrapping_mul(7919);
        Shm {
            dir,
            next_port: AtomicU64::new(seed),
            forks: AtomicU32::new(0),
            groups: groups::Groups::new(),
        }
    }
}

/// Whether a live socket is bound at socket file (or symbolic link to one)
/// `p`: Linux lists every bound AF_UNIX socket of the network namespace,
/// with the path it was bound at, in /proc/net/unix. Read only when a bind
/// finds its name taken.
fn live_name(p: &Path) -> bool {
    let target = match std::fs::read_link(p) {
        Ok(t) => t,
        Err(_) => p.to_path_buf(),
    };
    let Ok(table) = std::fs::read_to_string("/proc/net/unix") else {
        // Not known: taken, as it was.
        return true;
    };
    let want = target.to_string_lossy();
    table.lines().any(|l| {
        l.strip_suffix(&*want)
            .is_some_and(|head| head.ends_with(' '))
    })
}

/// A kernel socket bound at `main`, with a symbolic link to it at `link`;
/// EADDRINUSE when either name is taken.
fn bind_at(main: &std::path::Path, link: Option<&std::path::Path>) -> Result<i32, Errno> {
    let (a, len) = crate::platform::unix_ipc::unix_addr(main)?;
    let k = anchor_ipc::seqpacket()?;
    if let Err(e) = crate::platform::unix_ipc::bind_unix(k, &a, len) {
        crate::platform::unix_ipc::close_kfd(k);
        return Err(e);
    }
    if let Some(l) = link {
        if let Err(e) = std::os::unix::fs::symlink(main, l) {
            crate::platform::unix_ipc::close_kfd(k);
            let _ = std::fs::remove_file(main);
            return Err(if e.kind() == std::io::ErrorKind::AlreadyExists {
                EADDRINUSE
            } else {
                e.raw_os_error().unwrap_or(EINVAL)
            });
        }
    }
    Ok(k)
}

/// What a connect offers the listener: where, and the offer's body and
/// the two ends' recorded addresses.
struct Offer {
    path: PathBuf,
    body: [u8; BODY],
    mine: [u8; 19],
    theirs: [u8; 19],
}

impl Offer {
    /// One non-blocking attempt: EAGAIN while the accept queue is full.
    fn try_once(&self) -> Result<Conn, Errno> {
        Conn::connect(
            &self.path,
            RING,
            RING,
            &self.body,
            true,
            [&self.mine, &self.theirs],
        )
    }
}

/// The connection is up: the socket keeps it and the frontend hears of it.
/// False when the socket already had one.
fn established(x: &ShmSock, handle: SockHandle, c: Conn) -> bool {
    c.set_nonblocking(x.nonblock.load(Ordering::Relaxed));
    if x.set_conn(c).is_err() {
        return false;
    }
    let _ = upcall::connected(handle);
    true
}

/// A connect that failed: the frontend reports it by its rules (EINPROGRESS
/// first for a non-blocking one, then SO_ERROR or connect() again). Errors
/// other than a refusal fail the call itself.
fn refused(handle: SockHandle, e: Errno) -> Result<(), Errno> {
    match e {
        // No file (nobody ever bound the port), or nobody listens there.
        ENOENT | ECONNREFUSED => {
            let _ = upcall::refused(handle, ECONNREFUSED);
            Ok(())
        }
        e => Err(e),
    }
}

/// How often a connect waiting for room in a full accept queue asks
/// again (Linux's SYN retransmits are seconds apart; this is sooner).
const RETRY: std::time::Duration = std::time::Duration::from_millis(5);

/// A connect waiting for room in a full accept queue, on a thread of its
/// own (signals blocked there: they are the program's threads'), until it
/// gets in, is refused (the listener closed or stopped), or the socket is
/// closed.
fn wait_for_room(state: SockState, handle: SockHandle, offer: Offer) -> Result<(), Errno> {
    let run = move || {
        let _held = crate::platform::shared_mem::SignalsHeld::new();
        let Some(x) = (state.as_ref() as &dyn core::any::Any).downcast_ref::<ShmSock>() else {
            return;
        };
        let gen = x.gen.load(Ordering::Acquire);
        loop {
            std::thread::sleep(RETRY);
            // Closed, or given up by connect(AF_UNSPEC).
            if x.abandoned.load(Ordering::Acquire) || x.gen.load(Ordering::Acquire) != gen {
                return;
            }
            match offer.try_once() {
                Ok(c) => {
                    established(x, handle, c);
                    return;
                }
                Err(EAGAIN) => {}
                Err(e) => {
                    let _ = refused(handle, e).map_err(|e| upcall::refused(handle, e));
                    return;
                }
            }
        }
    };
    std::thread::Builder::new()
        .name("usock-connect".into())
        .spawn(run)
        .map(|_| ())
        .map_err(|_| ENOBUFS)
}

/// A socket of this backend that the process inherited across exec (or
/// that [`Shm::inherited`] found at start-up): the fd number the program
/// holds it at, and what the frontend needs to make it a socket again.
pub struct Inherited {
    /// The program's fd numbers for it (each a duplicate of the anchor:
    /// `dup2` onto 0 and 1 before exec gives two).
    pub fds: Vec<i32>,
    /// Domain, type and protocol.
    pub info: SockInfo,
    /// The backend's state for it.
    pub state: SockState,
    /// A listener (else a connected end).
    pub listening: bool,
}

fn decode_end(b: &[u8]) -> Option<(i32, IpEp)> {
    let family = match b[0] {
        0 => AF_INET,
        1 => AF_INET6,
        _ => return None,
    };
    Some((family, get_ep(&b[1..19], family)))
}

impl Shm {
    /// The sockets of this network the process holds at start-up, handed
    /// on by an exec: see [`Shm::recognise`], over every fd the process
    /// has. Every segment memfd is closed: those numbers go back to the
    /// program (a spawn may hand on the memfd of a socket that its file
    /// actions did not hand on).
    pub fn inherited(&self) -> Vec<Inherited> {
        let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
            return Vec::new();
        };
        let fds: Vec<i32> = dir
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
            .collect();
        let (found, used, unused) = self.recognise(&fds);
        for memfd in used.into_iter().chain(unused) {
            crate::platform::kfd_close(memfd).ok();
        }
        found
    }

    /// Which of `fds` are sockets of this network: connected ends (an
    /// anchor whose inode a segment memfd among `fds` records) and
    /// listeners (a listening anchor bound at one of this directory's port
    /// files). Each keeps its number (every number of one socket is in
    /// its `fds`); the library works on its own duplicates. Also gives the
    /// segment memfds among `fds` whose sockets were found (the library
    /// holds its own copy of each: the caller disposes of these numbers),
    /// and those whose sockets were not.
    pub fn recognise(&self, fds: &[i32]) -> (Vec<Inherited>, Vec<i32>, Vec<i32>) {
        let mut memfds = Vec::new();
        let mut socks = Vec::new();
        for &fd in fds {
            let Ok(target) = std::fs::read_link(alloc::format!("/proc/self/fd/{fd}")) else {
                continue;
            };
            let t = target.to_string_lossy();
            if t.starts_with("/memfd:usock-segment") {
                memfds.push(fd);
            } else if let Some(ino) = t
                .strip_prefix("socket:[")
                .and_then(|r| r.strip_suffix(']'))
                .and_then(|n| n.parse::<u64>().ok())
            {
                socks.push((fd, ino));
            }
        }
        let mut found = Vec::new();
        let (mut used, mut unused) = (Vec::new(), Vec::new());
        for memfd in memfds {
            let before = found.len();
            self.adopt_ends(memfd, &socks, &mut found);
            if found.len() > before {
                used.push(memfd);
            } else {
                unused.push(memfd);
            }
        }
        let mut listeners: Vec<(u64, usize)> = Vec::new();
        for (fd, ino) in socks {
            if found.iter().any(|f| f.fds.contains(&fd)) {
                continue;
            }
            // Another number for a listener already found.
            if let Some(&(_, at)) = listeners.iter().find(|&&(i, _)| i == ino) {
                found[at].fds.push(fd);
                continue;
            }
            if let Some((family, port)) = self.listener_port(fd) {
                let Ok(private) = crate::platform::kfd_dup_min(fd, 0, true) else {
                    continue;
                };
                let private = anchor_ipc::keep(private);
                let info = SockInfo {
                    domain: family,
                    ty: SOCK_STREAM,
                    protocol: 0,
                };
                let x = ShmSock::new(info);
                let wild = IpEp::parse(&SockAddr::unspecified(family), family).ok();
                *x.local.lock() = wild.map(|w| IpEp { port, ..w });
                let _ = x.listener.set(Listener::adopt(private));
                listeners.push((ino, found.len()));
                found.push(Inherited {
                    fds: alloc::vec![fd],
                    info,
                    state: Arc::new(x),
                    listening: true,
                });
            }
        }
        (found, used, unused)
    }

    /// The connection ends of segment `memfd` whose anchors are among
    /// `socks` (fd, inode), each adopted into `found`.
    fn adopt_ends(&self, memfd: i32, socks: &[(i32, u64)], found: &mut Vec<Inherited>) {
        let Ok(seg) = super::segment::Segment::attach(memfd) else {
            return;
        };
        for side in [Side::Connector, Side::Acceptor] {
            let ino = seg.anchor_ino(side);
            let fds: Vec<i32> = socks
                .iter()
                .filter(|&&(_, i)| ino != 0 && i == ino)
                .map(|&(fd, _)| fd)
                .collect();
            let Some(&fd) = fds.first() else {
                continue;
            };
            let (Some((family, local)), Some((_, peer))) = (
                decode_end(&seg.addr(side)),
                decode_end(&seg.addr(side.peer())),
            ) else {
                continue;
            };
            let Ok(private) = crate::platform::kfd_dup_min(fd, 0, true) else {
                continue;
            };
            let Ok(mine) = crate::platform::kfd_dup_min(memfd, 0, true) else {
                crate::platform::kfd_close(private).ok();
                continue;
            };
            let Ok(c) = Conn::adopt(anchor_ipc::keep(private), anchor_ipc::keep(mine)) else {
                continue;
            };
            let info = SockInfo {
                domain: family,
                ty: SOCK_STREAM,
                protocol: 0,
            };
            let x = ShmSock::new(info);
            *x.local.lock() = Some(local);
            *x.peer.lock() = Some(peer);
            let _ = x.set_conn(c);
            found.push(Inherited {
                fds,
                info,
                state: Arc::new(x),
                listening: false,
            });
        }
    }

    /// Whether kernel socket `fd` is a listening anchor at one of this
    /// network's port files: its family (the file's: `.v6` for IPv6) and
    /// port.
    fn listener_port(&self, fd: i32) -> Option<(i32, u16)> {
        let mut path = anchor_ipc::listening_path(fd)?;
        // A member of an SO_REUSEPORT group: its port is the group's.
        if path.parent()? != self.dir.as_path() {
            path = path.parent()?.to_path_buf();
        }
        if path.parent()? != self.dir.as_path() {
            return None;
        }
        let name = path.file_name()?.to_str()?.strip_prefix('s')?;
        let (port, family) = match name.strip_suffix(".v6") {
            Some(p) => (p, AF_INET6),
            None => (name, AF_INET),
        };
        Some((family, port.parse().ok()?))
    }
}

/// Only counts forks (see `PortFile::forks`): the sockets' state is in
/// shared memory and kernel fds, which a child reaches as they are.
impl ForkAware for Shm {
    fn fork_prepare(&self) {
        self.forks.fetch_add(1, Ordering::Relaxed);
    }

    fn fork_parent(&self) {}

    fn fork_child(&self) {
        PID.store(0, Ordering::Relaxed);
    }
}

/// This process's id, asked of the kernel once per process (0: not yet,
/// or a fork child's, which [`ForkAware::fork_child`] clears): every
/// socket made and closed looks at it.
static PID: AtomicU32 = AtomicU32::new(0);

fn this_pid() -> u32 {
    match PID.load(Ordering::Relaxed) {
        0 => {
            let p = std::process::id();
            PID.store(p, Ordering::Relaxed);
            p
        }
        p => p,
    }
}

impl Backend for Shm {
    fn name(&self) -> &str {
        "shm"
    }

    fn supports(&self, info: &SockInfo) -> bool {
        matches!(info.domain, AF_INET | AF_INET6) && info.ty == SOCK_STREAM
    }

    fn claim(
        &self,
        _h: SockHandle,
        info: &SockInfo,
        _op: ClaimOp,
        _addr: &SockAddr,
    ) -> Result<Option<SockState>, Errno> {
        if !self.supports(info) {
            return Ok(None);
        }
        crate::backends::xproc::serve_status();
        Ok(Some(Arc::new(self.made(*info))))
    }

    fn bind(&self, sock: SockRef<'_>, addr: &SockAddr) -> Result<SockAddr, Errno> {
        let x = ss(&sock)?;
        let ep = IpEp::parse(addr, x.info.domain)?;
        if !ep.bindable() && !sock.opts.freebind && !crate::platform::is_host_address(&ep.ip) {
            return Err(EADDRNOTAVAIL);
        }
        self.bind_port(x, ep, sock.opts)?;
        if ep.port != 0 {
            x.port_locked.store(true, Ordering::Relaxed);
        }
        let bound = x.local.lock().ok_or(EINVAL)?;
        Ok(bound.to_sockaddr(x.info.domain))
    }

    fn listen(&self, sock: SockRef<'_>, backlog: u32) -> Result<(), Errno> {
        let x = ss(&sock)?;
        if x.listener.get().is_some() {
            return Ok(());
        }
        self.autobind(x, sock.opts)?;
        self.may_listen(x)?;
        x.maxseg.store(sock.opts.maxseg, Ordering::Relaxed);
        if let Some((_, space)) = *x.space.lock() {
            *x.listened.lock() = Some((space, sock.opts.reuseaddr, sock.opts.reuseport));
        }
        let k = x.bound.lock().take().ok_or(EINVAL)?;
        // The kernel admits backlog + 1, as Linux's TCP listen queue.
        let backlog = backlog.min(i32::MAX as u32) as i32;
        // The listening anchor's own O_NONBLOCK is the socket's: shared by
        // every holder, as the open file description's flag on Linux.
        let made = crate::platform::unix_ipc::listen(k, backlog)
            .and_then(|()| anchor_ipc::set_nonblocking(k, x.nonblock.load(Ordering::Relaxed)));
        if let Err(e) = made {
            *x.bound.lock() = Some(k);
            return Err(e);
        }
        // Listening twice is idempotent above; a race of two listen()s on
        // one socket is the frontend's to prevent (its phase).
        let _ = x.listener.set(Listener::adopt(k));
        Ok(())
    }

    fn connect(&self, sock: SockRef<'_>, addr: &SockAddr) -> Result<(), Errno> {
        let x = ss(&sock)?;
        let mut dest = IpEp::parse(addr, x.info.domain)?;
        if dest.port == 0 {
            return Err(ECONNREFUSED);
        }
        // The wildcard address is this host: Linux connects to loopback.
        if dest.is_wild() {
            dest.ip = dest.source_for();
        }
        // A socket bound first keeps its port (its file stays bound);
        // otherwise a connect port, which no file holds.
        if x.local.lock().is_none() {
            let port = self.connect_port(x, &dest, sock.opts)?;
            *x.local.lock() = Some(IpEp {
                family: dest.family,
                ip: dest.source_for(),
                port,
            });
        }
        let local = {
            let mut l = x.local.lock();
            let mut ep = l.ok_or(EINVAL)?;
            // A wildcard or unbound address becomes the source the route
            // to `dest` gives, as getsockname() shows after Linux's connect.
            if ep.is_wild() {
                ep.ip = dest.source_for();
                *l = Some(ep);
            }
            ep
        };
        let mut body = [0u8; BODY];
        body[0] = u8::from(x.info.domain == AF_INET6);
        put_ep(&mut body[1..19], &local);
        if local.port == dest.port && local.ip == dest.ip {
            put_ep(&mut body[19..37], &dest);
            return self.connect_self(sock, x, &body);
        }
        put_ep(&mut body[19..37], &dest);
        body[37..].copy_from_slice(&sock.opts.maxseg.to_be_bytes());
        let v6 = x.info.domain == AF_INET6 && !dest.is_v4();
        // The ends' addresses, also in the segment's header: a process that
        // inherits an end across exec learns them there.
        let mut mine = [0u8; 19];
        let mut theirs = [0u8; 19];
        mine[0] = body[0];
        mine[1..].copy_from_slice(&body[1..19]);
        theirs[0] = body[0];
        theirs[1..].copy_from_slice(&body[19..37]);
        let path = self.path(dest.port, v6);
        let offer = Offer {
            path,
            body,
            mine,
            theirs,
        };
        *x.peer.lock() = Some(dest);
        // As TCP's, the outcome may come later: a refusal is reported as
        // the frontend's connect rules say (EINPROGRESS first when
        // non-blocking), and a full accept queue keeps the connect
        // waiting, as Linux's dropped SYNs do, until accept() makes room.
        // An SO_REUSEPORT group: the member the hash picks, or the next
        // that listens.
        let group = |meta: std::fs::Metadata, asked| {
            let members = self.groups.members(&offer.path, &meta, asked);
            let each = |p: &Path| Conn::connect(p, RING, RING, &body, false, [&mine, &theirs]);
            crate::backends::xproc::ports::connect_members(
                crate::backends::xproc::ports::order_members(members, &local),
                each,
                |m| !live_name(m),
            )
            .ok_or(ECONNREFUSED)
        };
        // The directory's stat, after the clock: see `groups`.
        let dir = || {
            let asked = std::time::SystemTime::now();
            std::fs::metadata(&offer.path)
                .ok()
                .filter(|m| m.is_dir())
                .map(|m| (m, asked))
        };
        let known_group = self.groups.known(&offer.path);
        let made = match known_group.then(dir).flatten() {
            Some((meta, asked)) => group(meta, asked),
            None => {
                if known_group {
                    // The group ended; the port may be a single listener's.
                    self.groups.forget(&offer.path);
                }
                match offer.try_once() {
                    Err(EAGAIN) => return wait_for_room(sock.state.clone(), sock.handle, offer),
                    Err(e) => match dir() {
                        Some((meta, asked)) => group(meta, asked),
                        None => Err(e),
                    },
                    r => r,
                }
            }
        };
        match made {
            Ok(c) => {
                if established(x, sock.handle, c) {
                    Ok(())
                } else {
                    Err(EISCONN)
                }
            }
            Err(e) => refused(sock.handle, e),
        }
    }

    fn shutdown(&self, sock: SockRef<'_>, how: i32) -> Result<(), Errno> {
        let x = ss(&sock)?;
        if let Some(l) = x.listener.get() {
            // Linux disconnects a listener (inet_csk_listen_stop) for every
            // holder: the anchor's own shutdown (which refuses connects and
            // wakes each blocked accept), and what was queued is reset.
            if how != SHUT_WR {
                l.stop();
                x.defer.drop_all();
            }
            return Ok(());
        }
        if let Some(c) = x.conn() {
            if how != SHUT_RD {
                c.shutdown_write();
            }
            if how != SHUT_WR {
                c.shutdown_read();
            }
        }
        Ok(())
    }

    /// connect(AF_UNSPEC): the connection is reset (the peer reads
    /// ECONNRESET once this process's hold, and any other's, is gone), a
    /// connect waiting for room gives up, and the port goes back unless
    /// the program bound it.
    fn disconnect(&self, sock: SockRef<'_>) -> Result<(), Errno> {
        let x = ss(&sock)?;
        let gen = x.gen.load(Ordering::Acquire);
        if gen + 1 >= CONNS {
            return Err(EOPNOTSUPP);
        }
        if let Some(c) = x.conn() {
            c.abort();
            c.release();
        }
        x.gen.store(gen + 1, Ordering::Release);
        *x.peer.lock() = None;
        if !x.port_locked.load(Ordering::Relaxed) {
            if let Some(k) = x.bound.lock().take() {
                crate::platform::unix_ipc::close_kfd(k);
            }
            self.leave_port(x, self.alone(x));
            *x.local.lock() = None;
        }
        Ok(())
    }

    fn write(
        &self,
        _sock: SockRef<'_>,
        _frag: &crate::backend::contract::Fragment<'_>,
    ) -> Result<(), Errno> {
        // Every byte goes through SharedStreams::send.
        Err(EOPNOTSUPP)
    }

    /// TCP_MAXSEG on a listener after listen() (see `store_maxseg`), and
    /// TCP_DEFER_ACCEPT, which the listener's accept applies here.
    fn setsockopt(
        &self,
        sock: SockRef<'_>,
        level: i32,
        name: i32,
        value: &[u8],
    ) -> Result<(), Errno> {
        store_maxseg(level, name, value, ss(&sock).ok().map(|x| &x.maxseg));
        if (level, name) == (IPPROTO_TCP, TCP_DEFER_ACCEPT) {
            if let (Ok(x), Some(v)) = (ss(&sock), value.first_chunk::<4>()) {
                x.defer.set_secs(i32::from_ne_bytes(*v));
            }
        }
        Ok(())
    }

    fn peer_maxseg(&self, sock: SockRef<'_>) -> u32 {
        // The acceptor's is 0 until it took the connection.
        ss(&sock).ok().and_then(|x| x.conn()).map_or(0, |c| {
            c.segment().mss(c.side().peer()).load(Ordering::Acquire)
        })
    }

    fn local_addr(&self, sock: SockRef<'_>) -> Option<SockAddr> {
        let x = ss(&sock).ok()?;
        let ep = (*x.local.lock())?;
        Some(ep.to_sockaddr(x.info.domain))
    }

    fn peer_addr(&self, sock: SockRef<'_>) -> Option<SockAddr> {
        let x = ss(&sock).ok()?;
        let ep = (*x.peer.lock())?;
        Some(ep.to_sockaddr(x.info.domain))
    }

    fn close(&self, sock: SockRef<'_>) {
        let Ok(x) = ss(&sock) else {
            return;
        };
        x.abandoned.store(true, Ordering::Release);
        if let Some(k) = x.bound.lock().take() {
            crate::platform::unix_ipc::close_kfd(k);
        }
        // A fork child or another program may still hold the socket, and
        // its name with it: the file then stays for a later bind to find
        // left over, and the connection leaves no TIME_WAIT yet.
        let alone = self.alone(x);
        if alone {
            let tw = match (*x.listened.lock(), *x.space.lock()) {
                (Some((space, a, p)), _) => Some((space, (a, p))),
                (None, Some((_, space))) => {
                    Some((space, (sock.opts.reuseaddr, sock.opts.reuseport)))
                }
                _ => None,
            };
            if let Some((space, flags)) = tw {
                self.time_wait(x, space, flags);
            }
        }
        self.leave_port(x, alone);
        // This process's last fd of the socket closed: its hold on the
        // connection or listener ends now, even if the state lives on in
        // an epoll set's table until the set is next looked at.
        if let Some(c) = x.conn() {
            c.release();
        }
        if let Some(e) = x.echo.get() {
            e.release();
        }
        if let Some(l) = x.listener.get() {
            x.defer.drop_all();
            l.release();
        }
    }

    fn fork(&self) -> Option<&dyn ForkAware> {
        Some(self)
    }

    fn shared(&self) -> Option<&dyn SharedStreams> {
        Some(self)
    }

    fn input(&self) -> Option<&dyn InputDelegation> {
        Some(self)
    }
}

/// epoll waits on a shared socket's anchor: its doorbells (asked for
/// whenever the anchor is handed out or pumped) and its hangup wake the
/// waiting thread, and a listener's anchor is readable when a connection
/// waits, so the kernel set holds the socket itself and no thread of ours
/// stands between.
impl InputDelegation for Shm {
    fn input_fd(&self, sock: SockRef<'_>) -> Option<i32> {
        // Room is asked for by the frontend when a poller wants POLLOUT
        // (`Socket::arm_shared`).
        self.wait_fd(sock, true, false)
    }

    fn input_watched(&self, _sock: SockRef<'_>) {}

    fn input_wanted(&self, _sock: SockRef<'_>) {}

    fn input_released(&self, sock: SockRef<'_>, kfd: i32) -> bool {
        // A connection's anchor (the echo end's, for a socket connected to
        // itself: `wait_fd`); a listener's input may be its deferral set,
        // which closes for real, so it is not answered for.
        let Ok(x) = ss(&sock) else {
            return false;
        };
        x.listener.get().is_none()
            && x.echo
                .get()
                .or(x.conn())
                .is_some_and(|c| c.anchor() == kfd && c.released())
    }

    fn pump(&self, sock: SockRef<'_>) {
        // Spends the doorbells and asks for the next ones (the frontend's
        // `Socket::pump` asks for room only when a poller wants it); the
        // frontend then looks at the socket's readiness again.
        let _ = self.wait_fd(sock, true, true);
    }
}

impl SharedStreams for Shm {
    fn is_shared(&self, _sock: SockRef<'_>) -> bool {
        true
    }

    fn recv(
        &self,
        sock: SockRef<'_>,
        buf: &mut [u8],
        peek: bool,
        block: Block,
    ) -> Result<usize, Errno> {
        let x = ss(&sock)?;
        let c = x.echo.get().or(x.conn()).ok_or(ENOTCONN)?;
        c.recv(buf, peek, block)
    }

    fn send(&self, sock: SockRef<'_>, buf: &[u8], block: Block) -> Result<usize, Errno> {
        let c = ss(&sock)?.conn().ok_or(EPIPE)?;
        c.send(buf, block)
    }

    fn readiness(&self, sock: SockRef<'_>) -> i16 {
        let Ok(x) = ss(&sock) else {
            return POLLNVAL;
        };
        if let Some(l) = x.listener.get() {
            return match anchor_ipc::anchor_poll(l.anchor(), true, 0) {
                // Shut down: no longer listening, as an unconnected socket.
                Ok(s) if s.hung_up => POLLOUT | POLLWRNORM | POLLHUP,
                // A deferring listener: readable when accept() would hand
                // out a connection.
                Ok(_) if x.defer.on() && x.defer.ready(l) => POLLIN | POLLRDNORM,
                Ok(_) if x.defer.on() => 0,
                Ok(s) if s.readable => POLLIN | POLLRDNORM,
                _ => 0,
            };
        }
        let Some(c) = x.conn() else {
            // Neither listening nor connected: as tcp_poll, POLLOUT and
            // POLLHUP (no connection).
            return POLLOUT | POLLWRNORM | POLLHUP;
        };
        let mut r = c.readiness();
        if let Some(e) = x.echo.get() {
            // Connected to itself: it reads the other end's ring.
            let rx = e.readiness();
            (r.readable, r.rdhup) = (rx.readable, rx.rdhup);
        }
        let mut ev = 0;
        if r.readable {
            ev |= POLLIN | POLLRDNORM;
        }
        if r.writable {
            ev |= POLLOUT | POLLWRNORM;
        }
        if r.rdhup {
            ev |= POLLRDHUP;
        }
        if r.hup {
            ev |= POLLHUP;
        }
        if r.err {
            ev |= POLLERR;
        }
        if r.pri {
            ev |= POLLPRI;
        }
        ev
    }

    fn queued(&self, sock: SockRef<'_>) -> (u64, u64) {
        let Ok(x) = ss(&sock) else {
            return (0, 0);
        };
        let q = x.conn().and_then(|c| c.queued().ok()).unwrap_or((0, 0));
        match x.echo.get().and_then(|e| e.queued().ok()) {
            Some((inq, _)) => (inq, q.1),
            None => q,
        }
    }

    fn accept(&self, sock: SockRef<'_>, block: Block) -> Result<SockState, Errno> {
        let x = ss(&sock)?;
        let l = x.listener.get().ok_or(EINVAL)?;
        let mut body = [0u8; BODY];
        loop {
            if x.defer.on() {
                // TCP_DEFER_ACCEPT: a connection with something to read,
                // or whose deferral ran out (`defer`).
                if anchor_ipc::anchor_poll(l.anchor(), true, 0)?.hung_up {
                    return Err(EINVAL);
                }
                if let Some((c, b)) = x.defer.take(l) {
                    if b.len() == BODY {
                        body.copy_from_slice(&b);
                        return Ok(Arc::new(self.accepted_end(x, c, &body)));
                    }
                    continue;
                }
                if block == Block::Never {
                    return Err(EAGAIN);
                }
            }
            if block != Block::Never {
                // Wait here, not in the kernel's accept: its anchor may be
                // blocking (the program's flag) and this call has a
                // deadline. Another holder may still win the connection:
                // the accept below then waits for the next, as a blocking
                // accept does. A signal handler ends a timed wait, and an
                // untimed one unless it has SA_RESTART.
                let ms = match block {
                    Block::Until(d) => {
                        let left = d.saturating_duration_since(crate::platform::now());
                        if left.is_zero() {
                            return Err(EAGAIN);
                        }
                        left.as_millis().clamp(1, i32::MAX as u128) as i32
                    }
                    _ => -1,
                };
                // A deferring listener's set wakes for its held
                // connections too.
                let fd = x.defer.wait_fd(l).unwrap_or(l.anchor());
                let ready = if ms < 0 {
                    l.wait_untimed_on(fd)?
                } else {
                    let woke = anchor_ipc::anchor_poll(fd, true, ms)?;
                    if fd == l.anchor() {
                        woke
                    } else {
                        anchor_ipc::anchor_poll(l.anchor(), true, 0)?
                    }
                };
                if ready.hung_up {
                    // Shut down by a holder: no longer listening.
                    return Err(EINVAL);
                }
                if x.defer.on() || !ready.readable {
                    continue;
                }
            }
            match l.accept(&mut body) {
                Ok((c, n)) => {
                    if n != BODY {
                        // Not this backend's offer: dropped, as a failed
                        // handshake is.
                        continue;
                    }
                    return Ok(Arc::new(self.accepted_end(x, c, &body)));
                }
                Err(EAGAIN) if block != Block::Never => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn nonblocking(&self, sock: SockRef<'_>) -> Option<bool> {
        let x = ss(&sock).ok()?;
        if let Some(c) = x.conn() {
            return Some(c.nonblocking());
        }
        if let Some(l) = x.listener.get() {
            // The anchor's flag is the one every holder sets; with no other
            // holder it is the one this process set (`set_nonblocking`,
            // listen), kept here too: an fcntl saved per accept.
            if self.alone(x) {
                return Some(x.nonblock.load(Ordering::Relaxed));
            }
            return anchor_ipc::is_nonblocking(l.anchor()).ok();
        }
        Some(x.nonblock.load(Ordering::Relaxed))
    }

    fn set_nonblocking(&self, sock: SockRef<'_>, on: bool) {
        let Ok(x) = ss(&sock) else {
            return;
        };
        x.nonblock.store(on, Ordering::Relaxed);
        if let Some(c) = x.conn() {
            c.set_nonblocking(on);
        }
        if let Some(l) = x.listener.get() {
            let _ = anchor_ipc::set_nonblocking(l.anchor(), on);
        }
    }

    fn exec_fds(&self, sock: SockRef<'_>) -> Option<(i32, i32)> {
        let x = ss(&sock).ok()?;
        // Asked when the socket goes to another process.
        x.handed_on.store(true, Ordering::Relaxed);
        if let Some(l) = x.listener.get() {
            return Some((l.anchor(), -1));
        }
        let c = x.conn()?;
        c.note_anchor();
        Some((c.anchor(), c.memfd()))
    }

    fn send_urgent(&self, sock: SockRef<'_>, buf: &[u8], block: Block) -> Result<usize, Errno> {
        let c = ss(&sock)?.conn().ok_or(EPIPE)?;
        c.send_urgent(buf, block)
    }

    fn recv_urgent(&self, sock: SockRef<'_>, peek: bool) -> Result<u8, Errno> {
        let c = ss(&sock)?.conn().ok_or(EINVAL)?;
        c.recv_urgent(peek)
    }

    fn has_urgent(&self, sock: SockRef<'_>) -> bool {
        ss(&sock)
            .ok()
            .and_then(|x| x.conn())
            .is_some_and(|c| c.has_urgent())
    }

    fn at_mark(&self, sock: SockRef<'_>) -> bool {
        ss(&sock)
            .ok()
            .and_then(|x| x.conn())
            .is_some_and(|c| c.at_mark())
    }

    fn set_owner(&self, sock: SockRef<'_>, pid: i32) {
        if let Some(c) = ss(&sock).ok().and_then(|x| x.conn()) {
            c.set_owner(pid);
        }
    }

    fn set_oob_inline(&self, sock: SockRef<'_>, on: bool) {
        if let Some(c) = ss(&sock).ok().and_then(|x| x.conn()) {
            c.set_oob_inline(on);
        }
    }

    fn abort(&self, sock: SockRef<'_>) {
        if let Some(c) = ss(&sock).ok().and_then(|x| x.conn()) {
            c.abort();
        }
    }

    fn take_error(&self, sock: SockRef<'_>) -> Option<Errno> {
        ss(&sock).ok()?.conn()?.take_error()
    }

    fn was_reset(&self, sock: SockRef<'_>) -> bool {
        ss(&sock)
            .ok()
            .and_then(|x| x.conn())
            .is_some_and(|c| c.was_reset())
    }

    fn waiting(&self, sock: SockRef<'_>) -> Option<u32> {
        let l = ss(&sock).ok()?.listener.get()?;
        let path = anchor_ipc::listening_path(l.anchor())?;
        crate::platform::unix_ipc::unix_waiting(&path)
    }

    fn windows(&self, sock: SockRef<'_>) -> (u64, u64) {
        let Some(c) = ss(&sock).ok().and_then(|x| x.conn()) else {
            return (0, 0);
        };
        let (rx, tx) = c.segment().rings(c.side());
        (rx.room().unwrap_or(0), tx.room().unwrap_or(0))
    }

    fn wait_fd(&self, sock: SockRef<'_>, in_: bool, out: bool) -> Option<i32> {
        let x = ss(&sock).ok()?;
        if let Some(l) = x.listener.get() {
            return in_.then(|| x.defer.wait_fd(l).unwrap_or(l.anchor()));
        }
        let mut c = x.conn()?;
        if let Some(e) = x.echo.get().filter(|_| in_) {
            // Connected to itself: its bytes ring at the other end.
            c.drain_bells();
            c.arm(false, out);
            c = e;
        }
        // The doorbells of an earlier sleep are spent: the anchor must turn
        // readable only at the next one.
        c.drain_armed();
        c.arm(in_, out);
        Some(c.anchor())
    }

    fn kick_writers(&self, sock: SockRef<'_>) {
        if let Some(c) = ss(&sock).ok().and_then(|x| x.conn()) {
            c.kick_writers();
        }
    }

    fn set_rcvbuf(&self, sock: SockRef<'_>, bytes: usize) {
        let Ok(x) = ss(&sock) else { return };
        let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
        x.rcvbuf.store(bytes, Ordering::Release);
        if let Some(c) = x.conn() {
            c.set_window(bytes as usize);
        }
    }

    fn changes(&self, sock: SockRef<'_>) -> Option<u64> {
        Some(ss(&sock).ok()?.conn()?.changes())
    }
}

//! AF_UNIX sockets between the processes of one network directory.
//!
//! # Design: a name and its rendezvous
//!
//! A program's AF_UNIX name lives where Linux keeps it: a pathname is a
//! socket file at that path (made by `mknod` with the socket file mode and
//! the umask, so EADDRINUSE, ENOENT, ENOTDIR and EACCES come from the file
//! system as on Linux: `loopback::fs`), an abstract name is in a namespace
//! of its own per socket type. What a name leads to is a *rendezvous*: a
//! kernel AF_UNIX socket of the transport in the network directory, bound
//! by the process that owns the socket:
//!
//! - a pathname's: `DIR/x<s|d><dev>-<ino>` (hex), keyed by the socket
//!   file's identity, not its path: a renamed or hard-linked file still
//!   leads to its socket, an unlinked one to nothing (ENOENT), a new file
//!   at the same path to the new socket, as on Linux, and a connect finds
//!   its listener with one `stat` and one `connect`, no table to read;
//! - an abstract name's: `DIR/a<s|d><hash>`, 128 bits of hash of the name
//!   (a name of up to 107 bytes, NULs included, does not fit in a path of
//!   108): binding it is the cross-process test of EADDRINUSE, atomic in
//!   the kernel;
//! - `s` for SOCK_STREAM, `d` for SOCK_DGRAM and `q` for SOCK_SEQPACKET:
//!   one namespace per type, and a pathname bound by another type is told
//!   apart (EPROTOTYPE).
//!
//! The rendezvous is bound at bind(): a stream socket's listens from
//! listen() on (a connect before that is refused, as Linux refuses one to
//! a bound socket that does not listen), a datagram socket's at once, for
//! the links of its senders. Behind it everything is the transport's as
//! for IP: a stream connection is one kernel connection carrying
//! envelopes (CRED then HELLO from the client, CRED then ACCEPT or BUSY
//! from the server: see `envelope`), a datagram travels on the sender
//! process's link to the receiver's rendezvous with its sender's name as
//! its address (none for an unbound sender).
//!
//! Why a socket in the directory rather than a table file: the kernel
//! keeps it exactly as long as its process lives (a dead owner's is found
//! stale, `XProc::stale`, and removed), its bind is the atomic
//! name-taking, its listen backlog and permissions are the transport's
//! own, and another user cannot reach it (the directory is 0700, and both
//! ends check `peer_is_us`).
//!
//! Linux's connect() of AF_UNIX completes at once or fails (EAGAIN when
//! the listener's queue is full); the client here waits for the server
//! process's answer in connect() (`HANDSHAKE_MS`), so that it returns as on
//! Linux. A server that does not answer in that time (stopped) leaves the
//! connect to complete later, as a TCP one.
//!
//! Within one process, Linux's synchronous delivery is kept: the two ends
//! of a connection read each other after each write (`pump_twin`), and a
//! datagram to a socket of this process is delivered in place.
//!
//! Left as they are: a datagram from another process to a socket
//! connected to a third one is delivered (Linux refuses it at the sender
//! with EPERM, as this process's own sends are refused); a peer process
//! that dies without closing (SIGKILL) gives end-of-file (Linux resets
//! instead when the dead socket left data unread); abstract names
//! are shared by the network directory's processes, not by the network
//! namespace; SCM_RIGHTS and SCM_CREDENTIALS do not cross processes;
//! socketpair() stays in-process (loopback).
//!
//! A SOCK_SEQPACKET socket is a stream socket here (its rendezvous, its
//! connection, its envelopes): its records are the frontend's, marked in
//! the DATA fragments it sends (`wire::FLAG_EOR` on each record's last
//! fragment), which the kernel connection carries as they are.
#![deny(unsafe_code)]

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU32, Ordering};
use std::path::{Path, PathBuf};

use super::envelope::Msg;
use super::*;
use crate::addr::{SockAddr, UnixName};
use crate::backend::contract::*;
use crate::backends::loopback::fs;
use crate::consts::*;
use crate::sync::Mutex;

/// Datagram port keys of AF_UNIX sockets in `DGRAM_PORTS` have this bit
/// (IP ones use the bits below it) and a number of this process's.
pub(super) const UNIX_KEY: u32 = 1 << 20;

static NEXT_KEY: AtomicU32 = AtomicU32::new(0);

/// How long connect() waits for the server process's answer.
const HANDSHAKE_MS: u64 = 2000;

/// Where a bound AF_UNIX socket's rendezvous is, and which file it was:
/// removed at close only while it is still that file (a pathname's may
/// have been taken over by a new socket file with the same inode).
pub(super) struct Place {
    rdv: PathBuf,
    id: (u64, u64),
    /// A datagram socket's port key (0 for a stream socket).
    key: u32,
}

/// Links of this process to other sockets' AF_UNIX datagram rendezvous
/// (see `DGRAM_LINKS`, the same for IP ports). Lock order: before the
/// transport's `conns`.
pub(super) static UNIX_LINKS: Mutex<BTreeMap<PathBuf, Arc<Conn>>> = Mutex::new(BTreeMap::new());

/// This process's AF_UNIX datagram sockets by rendezvous (their port
/// keys): a datagram to one of them is delivered in place, as loopback
/// does, so that it is in the receiver's buffer when its send returns (as
/// on Linux) and a full receiver makes its sender wait at once. Lock
/// order: after `DGRAM_PORTS`.
pub(super) static UNIX_LOCAL: Mutex<BTreeMap<PathBuf, u32>> = Mutex::new(BTreeMap::new());

/// Client connections of this process still in their handshake, by
/// token (see `envelope`'s CRED): a server of this process pairs its end
/// with the client's (`Conn::twin`).
pub(super) static TWINS: Mutex<BTreeMap<u64, alloc::sync::Weak<Conn>>> =
    Mutex::new(BTreeMap::new());

static NEXT_TOKEN: AtomicU32 = AtomicU32::new(1);

/// The `TWINS` key of an IP client connection: its HELLO's address,
/// hashed (FNV-1a), with the top bit set, which no AF_UNIX token has (a
/// pid is below 2^22). Two clients of this process with one address
/// share a key: the later one is paired, the earlier is read as any
/// connection of another process.
fn ip_twin_key(addr: &[u8]) -> u64 {
    let h = addr.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    h | 1 << 63
}

/// IP client connection `c`, whose HELLO names `addr`, waits for its
/// server: one of this process pairs with it (`pair_ip_twin`), and each
/// end then reads the other's writes before they return, as Linux's lo
/// delivers inside the send (the protocol carries no token for IP).
pub(super) fn await_ip_twin(c: &Arc<Conn>, addr: &[u8]) {
    TWINS.lock().insert(ip_twin_key(addr), Arc::downgrade(c));
}

/// IP client connection `c`'s handshake ended (ACCEPT, or the end):
/// it is no longer to be paired.
pub(super) fn forget_ip_twin(c: &Conn) {
    TWINS
        .lock()
        .retain(|k, w| k >> 63 == 0 || !core::ptr::eq(w.as_ptr(), c));
}

/// Server connection `c` got HELLO naming `addr`: when a client of this
/// process waits under that address and the kernel says the other end is
/// this process, each end becomes the other's twin.
pub(super) fn pair_ip_twin(c: &Arc<Conn>, addr: &[u8]) {
    let Some(client) = TWINS
        .lock()
        .get(&ip_twin_key(addr))
        .and_then(|w| w.upgrade())
    else {
        return;
    };
    match kernel::peer_cred(c.kfd) {
        Some((pid, _, _)) if pid == std::process::id() as i32 => {}
        _ => return,
    }
    *client.twin.lock() = Arc::downgrade(c);
    *c.twin.lock() = Arc::downgrade(&client);
}

/// Server connection `c` got CRED with `token`: when the client is of
/// this process, each end becomes the other's twin.
pub(super) fn pair_twin(c: &Arc<Conn>, token: u64) {
    if token >> 32 != u64::from(std::process::id()) {
        return;
    }
    let Some(client) = TWINS.lock().get(&token).and_then(|w| w.upgrade()) else {
        return;
    };
    *client.twin.lock() = Arc::downgrade(c);
    *c.twin.lock() = Arc::downgrade(&client);
}

/// After a write (or the end) on connection `c`: the other end, when it
/// is in this process, reads it now. On Linux an AF_UNIX send is in its
/// receiver's queue when it returns, and programs (and tests) poll with
/// no wait after it; between two processes only the kernel's own timing
/// can be had.
pub(super) fn pump_twin(c: &Conn) {
    let Some(t) = c.twin.lock().upgrade() else {
        return;
    };
    // What the kernel socket could not take waits in `c`'s queue: it goes
    // as the twin makes room, until all is across or nothing moves.
    let mut left = usize::MAX;
    loop {
        transport().read_stream(&t);
        let now = c.out.lock().len();
        if now == 0 || now >= left {
            return;
        }
        left = now;
        transport().flush(c);
    }
}

/// SHUT_RD of AF_UNIX stream or seqpacket socket `x`: its peer may send
/// no more (EPIPE), as unix_shutdown tells it. Told in place when the peer
/// is of this process (the twin); a peer in another process is not told
/// (no message of the protocol says it) and its sends are dropped here.
pub(super) fn shut_rd(x: &XSock) {
    let Some(c) = x.conn.lock().clone() else {
        return;
    };
    let twin = c.twin.lock().upgrade();
    if let Some(t) = twin {
        let _ = upcall::hangup(t.handle());
    }
}

/// SIOCOUTQ of AF_UNIX stream or seqpacket socket `x`: what its peer holds
/// unread, when the peer is of this process (the twin's buffer); `None`
/// for a peer in another process.
pub(super) fn unread(x: &XSock) -> Option<u64> {
    let c = x.conn.lock().clone()?;
    if !matches!(c.role, Role::Stream) {
        return None;
    }
    let twin = c.twin.lock().upgrade()?;
    upcall::held(twin.handle()).ok()
}

/// Forgets link `c` if it is one of the AF_UNIX links.
pub(super) fn drop_unix_link(c: &Conn) {
    UNIX_LINKS
        .lock()
        .retain(|_, l| !core::ptr::eq(Arc::as_ptr(l), c));
}

/// This process's credentials, as SO_PEERCRED reports them to its peer.
pub(super) fn own_cred() -> PeerCred {
    let (pid, uid, gid) = kernel::own_cred();
    PeerCred { pid, uid, gid }
}

/// The receiving socket of AF_UNIX datagram port `key`.
pub(super) fn unix_receiver(key: u32) -> Option<SockHandle> {
    DGRAM_PORTS
        .lock()
        .get(&key)
        .and_then(|p| p.members.first().map(|m| m.0))
}

/// Whether datagram socket `x` may send to this process's datagram
/// socket at port `key`: unless that one is connected to another socket
/// (Linux's `unix_may_send`; the sender then sees EPERM). Its peer is
/// told by rendezvous, as the sender's own name leads to.
fn may_send(x: &XSock, key: u32) -> bool {
    let receiver = DGRAM_PORTS
        .lock()
        .get(&key)
        .and_then(|p| p.members.first().and_then(|m| m.2.upgrade()));
    let Some(r) = receiver else {
        return true;
    };
    let Some(peer) = r.target.lock().clone() else {
        return true;
    };
    let mine = x.unix.lock().as_ref().map(|p| p.rdv.clone());
    mine.is_some_and(|m| m == peer)
}

fn type_char(ty: i32) -> char {
    match ty {
        SOCK_STREAM => 's',
        SOCK_SEQPACKET => 'q',
        _ => 'd',
    }
}

/// The AF_UNIX types other than `ty`.
fn other_types(ty: i32) -> impl Iterator<Item = i32> {
    [SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET]
        .into_iter()
        .filter(move |&t| t != ty)
}

/// FNV-1a over `name` from `basis`.
fn hash(name: &[u8], basis: u64) -> u64 {
    name.iter().fold(basis, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The identity (device, inode) of the file at `p`, not following a
/// symbolic link.
fn file_id(p: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(p)
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

fn path_of(p: &[u8]) -> &Path {
    use std::os::unix::ffi::OsStrExt;
    Path::new(std::ffi::OsStr::from_bytes(p))
}

/// How a client's wait for the server's answer ended.
enum Handshake {
    /// Connected; whether the connection still stands (else it ended
    /// already and was removed).
    Up(bool),
    /// The listener's queue is full.
    Busy,
    /// Nobody accepted it.
    Refused,
    /// No answer yet: it completes later, through the transport.
    Slow,
}

impl XProc {
    /// The rendezvous of a pathname whose socket file is `id`.
    fn rdv_file(&self, ty: i32, id: fs::FileId) -> PathBuf {
        self.dir
            .join(alloc::format!("x{}{:x}-{:x}", type_char(ty), id.0, id.1))
    }

    /// The rendezvous of abstract name `name`.
    fn rdv_abstract(&self, ty: i32, name: &[u8]) -> PathBuf {
        self.dir.join(alloc::format!(
            "a{}{:016x}{:016x}",
            type_char(ty),
            hash(name, 0xcbf2_9ce4_8422_2325),
            hash(name, 0x6c62_272e_07bb_0142)
        ))
    }

    /// The rendezvous a socket of type `ty` reaching `name` connects to:
    /// for a pathname, ENOENT, ENOTDIR or EACCES from the path, or
    /// ECONNREFUSED when the file is no socket.
    pub(super) fn unix_target(&self, ty: i32, name: &UnixName) -> Result<PathBuf, Errno> {
        match name {
            UnixName::Path(p) => Ok(self.rdv_file(ty, fs::lookup(p)?)),
            UnixName::Abstract(n) => Ok(self.rdv_abstract(ty, n)),
            UnixName::Unnamed => Err(EINVAL),
        }
    }

    /// Nobody answers at `rdv` (the connect's errno was `e`): the errno
    /// the program sees. EPROTOTYPE when a socket of the other type has
    /// the pathname, else ECONNREFUSED. A rendezvous left by a dead
    /// process goes.
    fn refusal(&self, ty: i32, name: &UnixName, rdv: &Path, e: Errno) -> Errno {
        if e == ECONNREFUSED && self.stale(rdv) {
            let _ = std::fs::remove_file(rdv);
        }
        if let UnixName::Path(p) = name {
            for other in other_types(ty) {
                if let Ok(other) = self.unix_target(other, name) {
                    if file_id(&other).is_some() {
                        return EPROTOTYPE;
                    }
                }
            }
            // A kernel socket of another type at the path (one a program
            // routed to the kernel).
            if crate::platform::unix_ipc::kernel_unix_type(p).is_some_and(|t| t != ty) {
                return EPROTOTYPE;
            }
        }
        ECONNREFUSED
    }

    /// A kernel socket bound at rendezvous `rdv`. One there already is
    /// replaced when `replace` (a pathname's: the socket file was just
    /// made, so a rendezvous for its inode belongs to an unlinked file's
    /// socket, which nobody can reach by name any more) or stale.
    fn bind_rdv(&self, rdv: &Path, replace: bool) -> Result<i32, Errno> {
        let (a, len) = unix_addr(rdv)?;
        let k = unix_stream()?;
        for attempt in 0..2 {
            match kernel::bind_unix(k, &a, len) {
                Ok(()) => return Ok(k),
                Err(EADDRINUSE) if attempt == 0 && (replace || self.stale(rdv)) => {
                    let _ = std::fs::remove_file(rdv);
                }
                Err(e) => {
                    close_kfd(k);
                    return Err(e);
                }
            }
        }
        close_kfd(k);
        Err(EADDRINUSE)
    }

    /// Autobind: the first free abstract name of five hex digits.
    fn autobind_unix(&self, ty: i32) -> Result<(UnixName, i32, PathBuf), Errno> {
        for _ in 0..0x10_0000 {
            let v = self.next_port.fetch_add(1, Ordering::Relaxed) & 0xf_ffff;
            let n: alloc::vec::Vec<u8> = alloc::format!("{v:05x}").into_bytes();
            let rdv = self.rdv_abstract(ty, &n);
            match self.bind_rdv(&rdv, false) {
                Ok(k) => return Ok((UnixName::Abstract(n), k, rdv)),
                Err(EADDRINUSE) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(ENOSPC)
    }

    /// bind() of AF_UNIX socket `x` (handle `h`): its name, then the
    /// name's rendezvous; an unnamed address autobinds.
    pub(super) fn unix_bind(
        &self,
        x: &XSock,
        h: SockHandle,
        addr: &SockAddr,
    ) -> Result<SockAddr, Errno> {
        if x.unix.lock().is_some() {
            return Err(EINVAL);
        }
        let ty = x.info.ty;
        let name = UnixName::parse(addr)?;
        let (name, k, rdv, file) = match name {
            UnixName::Unnamed => {
                let (n, k, rdv) = self.autobind_unix(ty)?;
                (n, k, rdv, None)
            }
            UnixName::Abstract(ref n) => {
                let rdv = self.rdv_abstract(ty, n);
                let k = self.bind_rdv(&rdv, false)?;
                (name, k, rdv, None)
            }
            UnixName::Path(ref p) => {
                let id = fs::create(p)?;
                let rdv = self.rdv_file(ty, id);
                match self.bind_rdv(&rdv, true) {
                    Ok(k) => (name.clone(), k, rdv, Some(p.clone())),
                    Err(e) => {
                        let _ = std::fs::remove_file(path_of(p));
                        return Err(e);
                    }
                }
            }
        };
        let undo = |k: i32, e: Errno| {
            close_kfd(k);
            let _ = std::fs::remove_file(&rdv);
            if let Some(p) = &file {
                let _ = std::fs::remove_file(path_of(p));
            }
            e
        };
        let c = if ty == SOCK_DGRAM {
            // Held until the port is in the table: a link accepted before
            // would find nobody to deliver to.
            let mut ports = DGRAM_PORTS.lock();
            if let Err(e) = kernel::listen(k, 128) {
                return Err(undo(k, e));
            }
            let key = UNIX_KEY | (NEXT_KEY.fetch_add(1, Ordering::Relaxed) & 0xf_ffff);
            let c = Arc::new(Conn {
                port: key,
                ..Conn::new(k, Role::Dgram, h, h)
            });
            if let Err(e) = transport().add(c.clone()) {
                // The kernel socket goes with the connection; the files
                // as `undo` removes them.
                transport().remove(&c);
                let _ = std::fs::remove_file(&rdv);
                if let Some(p) = &file {
                    let _ = std::fs::remove_file(path_of(p));
                }
                return Err(e);
            }
            ports.insert(
                key,
                DgramPort {
                    conn: c.clone(),
                    paths: alloc::vec::Vec::new(),
                    members: alloc::vec![(h, SockOpts::default(), x.me.clone())],
                    listening: alloc::vec::Vec::new(),
                    shared: None,
                },
            );
            UNIX_LOCAL.lock().insert(rdv.clone(), key);
            c
        } else {
            let c = Arc::new(Conn::new(k, Role::Listener, h, h));
            *c.sock.lock() = x.me.clone();
            c
        };
        let id = file_id(&rdv).unwrap_or_default();
        let key = if ty == SOCK_DGRAM { c.port } else { 0 };
        *x.unix.lock() = Some(Place { rdv, id, key });
        *x.conn.lock() = Some(c);
        let a = name.to_sockaddr();
        *x.local.lock() = Some(a);
        Ok(a)
    }

    /// listen() of a bound AF_UNIX stream socket: its rendezvous takes
    /// connections, and its clients will see this process's credentials.
    pub(super) fn unix_listen(&self, x: &XSock, backlog: u32) -> Result<(), Errno> {
        let c = x.conn.lock().clone().ok_or(EINVAL)?;
        kernel::listen(c.kfd, backlog.clamp(1, i32::MAX as u32) as i32)?;
        *x.cred.lock() = Some(own_cred());
        transport().add(c)
    }

    /// connect() of an AF_UNIX stream socket: the kernel connection to
    /// the name's rendezvous, CRED and HELLO, then the server's answer
    /// (see the module docs).
    pub(super) fn unix_connect(
        &self,
        sock: SockRef<'_>,
        x: &XSock,
        dest: &SockAddr,
    ) -> Result<(), Errno> {
        let h = sock.handle;
        let name = UnixName::parse(dest)?;
        let ty = x.info.ty;
        let rdv = self.unix_target(ty, &name)?;
        let (a, len) = unix_addr(&rdv)?;
        let k = match connect_unix(&a, len) {
            Ok(k) if peer_is_us(k) => k,
            Ok(k) => {
                // Another user's: as if nobody listened.
                close_kfd(k);
                let _ = upcall::refused(h, ECONNREFUSED);
                return Ok(());
            }
            Err(EAGAIN) => return Err(EAGAIN),
            Err(e) => {
                return match self.refusal(ty, &name, &rdv, e) {
                    ECONNREFUSED => {
                        let _ = upcall::refused(h, ECONNREFUSED);
                        Ok(())
                    }
                    e => Err(e),
                };
            }
        };
        let mine = x.local.lock().unwrap_or(SockAddr::unnamed(AF_UNIX));
        // Until ACCEPT names the listener as it bound itself.
        *x.peer.lock() = Some(*dest);
        let c = Arc::new(Conn::new(k, Role::Stream, h, h));
        *c.sock.lock() = x.me.clone();
        let token = u64::from(std::process::id()) << 32
            | u64::from(NEXT_TOKEN.fetch_add(1, Ordering::Relaxed));
        *c.token.lock() = token;
        TWINS.lock().insert(token, Arc::downgrade(&c));
        let was = x.conn.lock().replace(c.clone());
        // A bound socket keeps its name's rendezvous while it is connected.
        let was = match was {
            Some(b) if matches!(b.role, Role::Listener) => {
                *x.bound.lock() = Some(b.clone());
                Some(b)
            }
            w => w,
        };
        let sent = c
            .control(transport(), &Msg::Cred(own_cred(), token))
            .and_then(|()| {
                c.control(
                    transport(),
                    &Msg::Hello {
                        window: upcall::window(sock.handle).unwrap_or(0),
                        mss: 0,
                        addr: mine.as_bytes(),
                    },
                )
            });
        let end = match sent {
            Ok(()) => self.handshake(&c),
            Err(_) => Handshake::Refused,
        };
        TWINS.lock().remove(&token);
        match end {
            Handshake::Up(true) => {
                transport().add(c.clone())?;
                // A server of this process has the client's window now
                // (its accepted socket is writable at once, as on Linux).
                pump_twin(&c);
                Ok(())
            }
            Handshake::Slow => transport().add(c),
            Handshake::Up(false) => Ok(()),
            Handshake::Busy | Handshake::Refused => {
                transport().remove(&c);
                *x.conn.lock() = was;
                x.bound.lock().take();
                *x.peer.lock() = None;
                if matches!(end, Handshake::Busy) {
                    return Err(EAGAIN);
                }
                let _ = upcall::refused(h, ECONNREFUSED);
                Ok(())
            }
        }
    }

    /// Waits for the server's answer to the client connection `c` (not
    /// yet watched by the transport), reading it in this thread: ACCEPT
    /// (with whatever follows it), BUSY, or the end.
    fn handshake(&self, c: &Arc<Conn>) -> Handshake {
        let t = transport();
        let deadline = crate::platform::mono_ns().saturating_add(HANDSHAKE_MS * 1_000_000);
        loop {
            let mut busy = false;
            let end = t.read_frames(c, |m| match m {
                Msg::Busy if !c.state.is_up() => {
                    busy = true;
                    Err(libc::EPROTO)
                }
                m => match t.on_msg(c, m) {
                    Err(ENOBUFS) => Err(libc::EPROTO),
                    r => r,
                },
            });
            if c.state.is_up() {
                return match end {
                    ReadEnd::Bad | ReadEnd::Full => {
                        t.fail(c);
                        Handshake::Up(false)
                    }
                    // The end itself (EOF) is read again by the transport.
                    _ => Handshake::Up(true),
                };
            }
            if busy {
                return Handshake::Busy;
            }
            if !matches!(end, ReadEnd::Again) {
                return Handshake::Refused;
            }
            let now = crate::platform::mono_ns();
            if now >= deadline {
                return Handshake::Slow;
            }
            let ms = ((deadline - now) / 1_000_000).clamp(1, 100) as i32;
            kernel::poll_in(c.kfd, ms);
        }
    }

    /// connect() of an AF_UNIX datagram socket: the peer must be there
    /// (ENOENT, ECONNREFUSED, EPROTOTYPE as Linux); its rendezvous is
    /// kept, so that the association outlives the peer's pathname.
    pub(super) fn unix_connect_dgram(&self, x: &XSock, dest: &SockAddr) -> Result<(), Errno> {
        let name = UnixName::parse(dest)?;
        let rdv = self.unix_target(SOCK_DGRAM, &name)?;
        let local = UNIX_LOCAL.lock().contains_key(&rdv);
        if !local && self.unix_link(&rdv).is_none() {
            return Err(self.refusal(SOCK_DGRAM, &name, &rdv, ECONNREFUSED));
        }
        *x.target.lock() = Some(rdv);
        *x.peer.lock() = Some(*dest);
        Ok(())
    }

    /// A datagram fragment of AF_UNIX socket `x`: on this process's link
    /// to the receiver's rendezvous, named by the sender's name (none for
    /// an unbound sender). A receiver in this process gets it in place,
    /// with what the message carries (`scm`, credentials and fds: see
    /// `Backend::write_scm`); one in another process gets the bytes, and
    /// the sender's credentials from the link.
    pub(super) fn unix_write_dgram(
        &self,
        sock: SockRef<'_>,
        x: &XSock,
        frag: &Fragment<'_>,
        scm: u64,
    ) -> Result<(), Errno> {
        let (rdv, name) = if frag.addr.is_empty() {
            let rdv = x.target.lock().clone().ok_or(ENOTCONN)?;
            (rdv, None)
        } else {
            let dest = SockAddr::from_bytes(frag.addr).ok_or(EINVAL)?;
            let name = UnixName::parse(&dest)?;
            (self.unix_target(SOCK_DGRAM, &name)?, Some(name))
        };
        let src = *x.local.lock();
        let out = frag.with_addr(src.as_ref().map_or(&[][..], |a| a.as_bytes()));
        let local = UNIX_LOCAL.lock().get(&rdv).copied();
        if let Some(key) = local {
            if !may_send(x, key) {
                return Err(EPERM);
            }
            return match unix_receiver(key).map(|h| upcall::deliver_scm(h, &out, scm)) {
                Some(Ok(())) => Ok(()),
                // A full receiver: the sender waits (or sees EAGAIN).
                Some(Err(ENOBUFS)) => Err(EAGAIN),
                Some(Err(EBADF)) | None => Err(ECONNREFUSED),
                Some(Err(e)) => Err(e),
            };
        }
        let Some(link) = self.unix_link(&rdv) else {
            return Err(match name {
                Some(n) => self.refusal(SOCK_DGRAM, &n, &rdv, ECONNREFUSED),
                None => ECONNREFUSED,
            });
        };
        let hdr = envelope::data_header(&out)?;
        let first = out.header.dgram_offset == 0;
        let parts = [&hdr[..], out.addr, out.payload];
        match link.datagram(transport(), sock.handle, first, &parts) {
            Ok(()) => Ok(()),
            Err(EAGAIN) => Err(EAGAIN),
            Err(_) => {
                drop_unix_link(&link);
                transport().remove(&link);
                Err(ECONNREFUSED)
            }
        }
    }

    /// The link to AF_UNIX datagram rendezvous `rdv`, opened on first
    /// use; `None` when nobody (of ours) is bound there.
    fn unix_link(&self, rdv: &Path) -> Option<Arc<Conn>> {
        let mut links = UNIX_LINKS.lock();
        if let Some(l) = links.get(rdv) {
            if !l.state.is_closed() {
                return Some(l.clone());
            }
            links.remove(rdv);
        }
        let (a, len) = unix_addr(rdv).ok()?;
        let k = connect_unix(&a, len).ok()?;
        if !peer_is_us(k) {
            close_kfd(k);
            return None;
        }
        kernel::set_sndbuf(k, DGRAM_LINK_SNDBUF as i32);
        let c = Arc::new(Conn::new(k, Role::DgramOut, SockHandle(0), SockHandle(0)));
        transport().add(c.clone()).ok()?;
        links.insert(rdv.to_path_buf(), c.clone());
        Some(c)
    }

    /// At close: the socket's rendezvous goes (while it is still its
    /// own); its socket file stays, as on Linux.
    pub(super) fn unix_close(&self, x: &XSock) {
        if let Some(p) = x.unix.lock().take() {
            let mut local = UNIX_LOCAL.lock();
            if p.key != 0 && local.get(&p.rdv) == Some(&p.key) {
                local.remove(&p.rdv);
            }
            drop(local);
            if file_id(&p.rdv) == Some(p.id) {
                let _ = std::fs::remove_file(&p.rdv);
            }
        }
        x.target.lock().take();
    }
}

/// What AF_UNIX stream messages between two ends of this process carry
/// (`Backend::write_scm`'s ids), keyed by the receiving socket's handle and
/// the message's first offset: the bytes cross the transport, the
/// attachment waits here for the receiver's read of that fragment.
static SCM_PENDING: Mutex<BTreeMap<(u64, u64), u64>> = Mutex::new(BTreeMap::new());
/// Entries in `SCM_PENDING`: none, and a receive does not look.
static SCM_PENDING_N: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// Records that the fragment at `offset` arriving for socket `to`
/// carries attachment `scm`.
pub(super) fn scm_pending(to: SockHandle, offset: u64, scm: u64) {
    if SCM_PENDING.lock().insert((to.0, offset), scm).is_none() {
        SCM_PENDING_N.fetch_add(1, Ordering::AcqRel);
    }
}

/// The attachment of the fragment at `offset` arriving for socket `h`.
pub(super) fn scm_take(h: SockHandle, offset: u64) -> Option<u64> {
    if SCM_PENDING_N.load(Ordering::Acquire) == 0 {
        return None;
    }
    let id = SCM_PENDING.lock().remove(&(h.0, offset))?;
    SCM_PENDING_N.fetch_sub(1, Ordering::AcqRel);
    Some(id)
}

/// Socket `h` is closed: what waited for it is dropped (the frontend
/// closes the fds it held).
pub(super) fn scm_forget(h: SockHandle) {
    if SCM_PENDING_N.load(Ordering::Acquire) == 0 {
        return;
    }
    let gone: Vec<u64> = {
        let mut m = SCM_PENDING.lock();
        let keys: Vec<(u64, u64)> = m
            .range((h.0, 0)..=(h.0, u64::MAX))
            .map(|(k, _)| *k)
            .collect();
        keys.iter().filter_map(|k| m.remove(k)).collect()
    };
    SCM_PENDING_N.fetch_sub(gone.len(), Ordering::AcqRel);
    for id in gone {
        upcall::scm_drop(id);
    }
}

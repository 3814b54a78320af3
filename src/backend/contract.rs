//! The backend contract as a Rust trait.
//!
//! A backend carries a socket's fragments over some transport and supplies
//! its transport semantics. The frontend calls it in three roles:
//! - **semantics**: hooks on socket calls (bind, listen, connect, accept,
//!   shutdown, setsockopt) that accept, refuse with an errno, or take over;
//! - **selection**: [`Backend::claim`] is asked, in priority order, at the first
//!   call that names an address (bind, connect, sendto); the first backend that
//!   claims the socket carries it until it is closed;
//! - **fragmented I/O**: [`Backend::write`] receives the frontend's fragments;
//!   the backend hands fragments and events back through the upcalls in
//!   [`crate::backend::upcall`].
//!
//! Rules every backend keeps, in short (the full statement, one for C and
//! Rust backends alike, is the documentation of
//! [`usock_backend_ops`](crate::backend::c_table::usock_backend_ops), which
//! the C header carries):
//! - No operation blocks. Work that takes time (connect, a full peer) completes
//!   later through an upcall.
//! - Upcalls may be made from any thread, including from inside an operation
//!   (a loopback backend completes a connect from within `connect`). The
//!   frontend holds none of its locks while it calls a backend operation.
//! - A backend never delivers stream bytes at or beyond the receiver's window
//!   (the limit passed to [`Backend::window`]); for datagrams the receiver
//!   drops what it cannot hold, as UDP does.
//! - Order and reliability are the backend's job: fragments may arrive out of
//!   order or repeated (the Socket Buffer sorts), but not lost or corrupted.
//!
//! An IP datagram also has header fields its receiver may ask about
//! (IP_PKTINFO, IP_TTL, IP_TOS and the IPv6 ones): the frontend hands them
//! to [`Backend::write_attrs`] and a backend that carries them delivers
//! them with `upcall::deliver_attrs`. Both are optional: see
//! [`crate::backend::attrs`].

use alloc::sync::Arc;
use core::any::Any;

use crate::addr::SockAddr;
pub use crate::backend::attrs::DgramAttrs;
pub use crate::backend::wire::{
    FragHeader, FragKind, Fragment, FLAG_EOR, FLAG_FIN, FLAG_RST, FLAG_URG,
};

pub use crate::consts::Errno;

/// Largest payload of one fragment the frontend hands [`Backend::write`]
/// (a larger send() becomes several fragments).
pub const FRAG_MAX: usize = 64 * 1024;

/// Names a socket across the backend boundary: a slot index in the low 32
/// bits and the slot's generation in the high 32 bits, so that an upcall that
/// arrives after the socket was closed is recognised and ignored instead of
/// being applied to a reused slot.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
#[repr(transparent)]
pub struct SockHandle(pub u64);

/// A backend's own per-socket state, returned when it claims a socket and
/// handed back to every later operation on it.
pub type SockState = Arc<dyn Any + Send + Sync>;

/// What a socket is, as given to socket().
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct SockInfo {
    /// Address family (`AF_*`).
    pub domain: i32,
    /// `SOCK_STREAM` or `SOCK_DGRAM` (flags removed).
    pub ty: i32,
    /// Protocol as given (0 when the default was asked for).
    pub protocol: i32,
}

/// The call at which a backend is asked to claim a socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum ClaimOp {
    /// bind() with the given local address.
    Bind = 1,
    /// connect() to the given remote address.
    Connect = 2,
    /// sendto()/sendmsg() to the given remote address on an unclaimed socket.
    SendTo = 3,
    /// listen() on a socket that was never bound (the address is the
    /// family's unspecified address).
    Listen = 4,
    /// socketpair(): the address is the family's unspecified address.
    Pair = 5,
}

impl ClaimOp {
    /// Converts the integer a C backend sees; `None` for an unknown value.
    pub fn from_i32(v: i32) -> Option<ClaimOp> {
        Some(match v {
            1 => ClaimOp::Bind,
            2 => ClaimOp::Connect,
            3 => ClaimOp::SendTo,
            4 => ClaimOp::Listen,
            5 => ClaimOp::Pair,
            _ => return None,
        })
    }
}

/// A claimed socket as a backend operation sees it.
#[derive(Clone, Copy)]
pub struct SockRef<'a> {
    /// The socket's handle, for upcalls.
    pub handle: SockHandle,
    /// What the backend returned when it claimed the socket.
    pub state: &'a SockState,
    /// Domain, type and protocol of the socket.
    pub info: SockInfo,
    /// The options that matter to addressing, as set now.
    pub opts: SockOpts,
}

/// Socket options a backend needs for addressing decisions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct SockOpts {
    /// SO_REUSEADDR is set.
    pub reuseaddr: bool,
    /// SO_REUSEPORT is set.
    pub reuseport: bool,
    /// IPV6_V6ONLY is set.
    pub v6only: bool,
    /// bind() may take an IP address the host does not have: IP_FREEBIND,
    /// IPV6_FREEBIND or IP(V6)_TRANSPARENT is set, or the family's
    /// net.ipv4/ipv6 ip_nonlocal_bind is on (Linux's
    /// `inet_can_nonlocal_bind`).
    pub freebind: bool,
    /// IP_LOCAL_PORT_RANGE as Linux keeps it: the lowest port in the low
    /// 16 bits, the highest in the high 16, 0 for either when unset.
    pub port_range: u32,
    /// TCP_MAXSEG as set (0: not set): the MSS a TCP socket advertises at
    /// connection setup when it limits it, as Linux's SYN and SYN-ACK
    /// carry `user_mss`. A backend that makes connections takes the
    /// connecting socket's at `connect` and a listener's at `listen`, and
    /// carries it to the other end (whose Rust backend answers
    /// `Backend::peer_maxseg` with it; the C table has no such entry, and
    /// a C backend's connections use the path's MSS).
    pub maxseg: u32,
}

/// The MSS a TCP_MAXSEG setsockopt() sets, for a backend's
/// [`Backend::setsockopt`] hook: a listener's later connections advertise
/// it (the frontend has checked it: 0, no limit, or 88..=32767).
pub(crate) fn maxseg_arg(value: &[u8]) -> Option<u32> {
    let b: [u8; 4] = value.get(..4)?.try_into().ok()?;
    Some(i32::from_ne_bytes(b).max(0) as u32)
}

/// A backend's [`Backend::setsockopt`] hook for TCP_MAXSEG: a value set on
/// a listener after listen() is the MSS the connections it takes from then
/// on advertise, as Linux's listener clamps each later SYN's MSS with its
/// `user_mss`; elsewhere the value stored in `mss` is replaced at connect()
/// or listen(). Other options are none of the backend's business.
pub(crate) fn store_maxseg(
    level: i32,
    name: i32,
    value: &[u8],
    mss: Option<&core::sync::atomic::AtomicU32>,
) {
    use crate::consts::{IPPROTO_TCP, TCP_MAXSEG};
    if let (IPPROTO_TCP, TCP_MAXSEG, Some(v), Some(mss)) = (level, name, maxseg_arg(value), mss) {
        mss.store(v, core::sync::atomic::Ordering::Release);
    }
}

impl SockOpts {
    /// The ports this socket's ephemeral binds pick from: the system's
    /// `ip_local_port_range`, narrowed by IP_LOCAL_PORT_RANGE where its
    /// bounds fall inside it (Linux's `inet_sk_get_local_port_range`).
    pub fn ephemeral_range(&self) -> (u16, u16) {
        let (mut lo, mut hi) = crate::platform::local_port_range();
        if self.port_range != 0 {
            let (sk_lo, sk_hi) = (self.port_range as u16, (self.port_range >> 16) as u16);
            if (lo..=hi).contains(&sk_lo) {
                lo = sk_lo;
            }
            if (lo..=hi).contains(&sk_hi) {
                hi = sk_hi;
            }
        }
        (lo, hi)
    }
}

/// A backend: see the module documentation for the rules.
pub trait Backend: Send + Sync {
    /// A short name for diagnostics.
    fn name(&self) -> &str;

    /// Whether the backend can carry sockets of this domain and type at all.
    /// socket() fails with `EAFNOSUPPORT` when no registered backend can.
    fn supports(&self, info: &SockInfo) -> bool;

    /// Selection: `Ok(Some(state))` claims the socket, `Ok(None)` declines (the
    /// next backend is asked), `Err(errno)` refuses the call outright.
    fn claim(
        &self,
        handle: SockHandle,
        info: &SockInfo,
        op: ClaimOp,
        addr: &SockAddr,
    ) -> Result<Option<SockState>, Errno>;

    /// Binds to `addr` and returns the address actually bound (a port chosen
    /// for port 0, for example).
    fn bind(&self, sock: SockRef<'_>, addr: &SockAddr) -> Result<SockAddr, Errno>;

    /// Starts listening; incoming connections arrive through
    /// [`crate::backend::upcall::incoming`].
    fn listen(&self, sock: SockRef<'_>, backlog: u32) -> Result<(), Errno>;

    /// Stream sockets: starts connecting; the outcome arrives through
    /// `upcall::connected` or `upcall::refused`, possibly before this returns.
    /// Datagram sockets: sets the default peer; done when it returns `Ok`.
    fn connect(&self, sock: SockRef<'_>, addr: &SockAddr) -> Result<(), Errno>;

    /// TCP's connect(AF_UNSPEC) on a connected or connecting stream socket
    /// (Linux's `tcp_disconnect`): the frontend has sent the reset of a
    /// connection (a `FLAG_RST` fragment). The backend drops the
    /// connection, and no upcall of it reaches the socket any more; the
    /// socket stays claimed and unconnected, and may `connect` again. Its
    /// port stays bound if the program bound it (bind() with a port:
    /// Linux's SOCK_BINDPORT_LOCK), else it is given back, and
    /// `local_addr` then says None. `EOPNOTSUPP` by default: a connection
    /// the frontend reset then stays a reset connection (a later connect()
    /// is EISCONN), a connect in progress goes on (connect(AF_UNSPEC) is
    /// EISCONN).
    fn disconnect(&self, _sock: SockRef<'_>) -> Result<(), Errno> {
        Err(crate::consts::EOPNOTSUPP)
    }

    /// The application accepted a connection from this listener, making room
    /// in its accept queue.
    fn accepted(&self, _listener: SockRef<'_>) {}

    /// A hook on shutdown(); the frontend has already sent end-of-stream for
    /// the write side when `how` includes it.
    fn shutdown(&self, _sock: SockRef<'_>, _how: i32) -> Result<(), Errno> {
        Ok(())
    }

    /// A hook on setsockopt(); `Err` refuses the option with that errno.
    fn setsockopt(
        &self,
        _sock: SockRef<'_>,
        _level: i32,
        _name: i32,
        _value: &[u8],
    ) -> Result<(), Errno> {
        Ok(())
    }

    /// Carries one fragment. Stream fragments lie within the credit the
    /// backend granted; datagram fragments carry the destination in `addr`
    /// unless the socket is connected. Never blocks. A datagram it cannot
    /// take now (its receiver keeps datagrams and is full) is refused with
    /// `EAGAIN`; a blocking sender then waits for
    /// [`crate::backend::upcall::writable`], or a millisecond.
    fn write(&self, sock: SockRef<'_>, frag: &Fragment<'_>) -> Result<(), Errno>;

    /// [`Self::write`] of an IP datagram fragment with its header fields
    /// (see [`crate::backend::attrs`]): a backend that carries them hands
    /// them to the receiver through `upcall::deliver_attrs`. By default
    /// they are forgotten: the receiver reads Linux's defaults.
    fn write_attrs(
        &self,
        sock: SockRef<'_>,
        frag: &Fragment<'_>,
        _attrs: &DgramAttrs,
    ) -> Result<(), Errno> {
        self.write(sock, frag)
    }

    /// [`Self::write`] of the first fragment of an AF_UNIX message with
    /// what travels with it (SCM_RIGHTS, SCM_CREDENTIALS): `scm` names it
    /// in the frontend's in-flight table (0: nothing but the start of a
    /// message). A backend that carries it in-process hands it to the
    /// receiver through `upcall::deliver_scm`; by default it is forgotten
    /// (the sender's frontend then closes what it held).
    fn write_scm(&self, sock: SockRef<'_>, frag: &Fragment<'_>, _scm: u64) -> Result<(), Errno> {
        self.write(sock, frag)
    }

    /// The receiver's window moved: stream bytes may be delivered up to
    /// (excluding) absolute offset `limit`. On a datagram socket: a read
    /// made room after a delivery was refused with `ENOBUFS` (`limit` is the
    /// buffer's size): a backend that kept the datagram may offer it again;
    /// an AF_UNIX datagram socket says so after every read (its backend
    /// may have turned senders away for a queue limit of its own, and
    /// `upcall::window` then tells how many datagrams are still queued).
    fn window(&self, _sock: SockRef<'_>, _limit: u64) {}

    /// Whether a datagram refused with `ENOBUFS` is kept and offered again
    /// (after [`Backend::window`]) rather than dropped as UDP drops it.
    /// The frontend counts a refusal as a drop (SO_RXQ_OVFL) only for a
    /// backend that drops; but a socket with SO_RXQ_OVFL set asked to see
    /// drops, so under a backend that keeps datagrams it drops and counts
    /// one it has no room for itself, and the delivery answers `Ok`.
    fn keeps_refused_datagrams(&self) -> bool {
        false
    }

    /// Whether this process now has a socket that is a member of multicast
    /// `group` (IPv6 bytes, v4-mapped for IPv4), told after each change of
    /// its sockets' memberships: a backend shared with other processes
    /// keeps it where they see it ([`Backend::group_joined_elsewhere`]).
    /// Nothing by default.
    fn host_group(&self, _group: &[u8; 16], _joined: bool) {}

    /// Whether a socket of another process of this backend's network is a
    /// member of `group`: IP_MULTICAST_ALL's "some socket of this host
    /// joined", beyond this process. False by default.
    fn group_joined_elsewhere(&self, _group: &[u8; 16]) -> bool {
        false
    }

    /// SIOCOUTQ: the bytes this socket sent that their receiver holds
    /// unread, when the backend can tell (`None`: it cannot, and the
    /// frontend reports 0).
    fn unread(&self, _sock: SockRef<'_>) -> Option<u64> {
        None
    }

    /// The MSS the peer of a connected TCP socket advertised at connection
    /// setup (its [`SockOpts::maxseg`]; 0: none, or unknown): the frontend
    /// uses segments no larger, as Linux's `tcp_sync_mss` takes the
    /// smaller of its own and the peer's. 0 by default.
    fn peer_maxseg(&self, _sock: SockRef<'_>) -> u32 {
        0
    }

    /// The local address of a claimed socket, if it has one.
    fn local_addr(&self, sock: SockRef<'_>) -> Option<SockAddr>;

    /// The peer address of a connected socket.
    fn peer_addr(&self, sock: SockRef<'_>) -> Option<SockAddr>;

    /// socketpair(): connect two fresh sockets to each other, returning the
    /// backend state of each.
    fn socketpair(
        &self,
        _a: SockHandle,
        _b: SockHandle,
        _info: &SockInfo,
    ) -> Result<(SockState, SockState), Errno> {
        Err(crate::consts::EOPNOTSUPP)
    }

    /// The socket is gone: the last fd was closed (after end-of-stream or a
    /// reset was sent), or an accepted connection was never accepted. No
    /// upcall naming it has any effect after this.
    fn close(&self, sock: SockRef<'_>);

    /// The backend's input delegation, if it has one (see
    /// [`InputDelegation`]); none by default.
    fn input(&self) -> Option<&dyn InputDelegation> {
        None
    }

    /// The backend's fork hooks, if it has global state a fork must
    /// respect (see [`ForkAware`]); none by default.
    fn fork(&self) -> Option<&dyn ForkAware> {
        None
    }

    /// The backend's shared buffers, if it keeps a stream socket's bytes
    /// itself, where every process holding the socket reaches them (see
    /// [`SharedStreams`]); none by default.
    fn shared(&self) -> Option<&dyn SharedStreams> {
        None
    }
}

/// How long a [`SharedStreams`] call may wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Block {
    /// Not at all: EAGAIN instead (O_NONBLOCK, MSG_DONTWAIT).
    Never,
    /// Until this instant (SO_RCVTIMEO, SO_SNDTIMEO): then EAGAIN, or
    /// what was done so far.
    Until(crate::platform::Deadline),
    /// As long as it takes.
    Forever,
}

/// Extension: the backend owns a stream socket's buffers (SHARED.md's
/// `SharedBuffers`). Its bytes live where every process that holds the
/// socket (after fork) reaches them, so the frontend's Socket Buffer stays
/// empty and recv, send, readiness and accept go to the backend (SHUT_WR is
/// its `Backend::shutdown`);
/// the frontend keeps what is per call (flags, timeouts, errno order,
/// SIGPIPE). A socket the backend carries this way is no fork child's
/// dead copy: its child may use it. Reached through [`Backend::shared`].
/// The C table has no such entries.
pub trait SharedStreams: Send + Sync {
    /// Whether this socket is carried this way (a backend may carry some
    /// of its sockets through fragments and others not).
    fn is_shared(&self, sock: SockRef<'_>) -> bool;

    /// recv() of a connected socket into `buf` (with `peek`, the bytes
    /// stay): 0 at end-of-stream, or the connection's error once.
    fn recv(
        &self,
        sock: SockRef<'_>,
        buf: &mut [u8],
        peek: bool,
        block: Block,
    ) -> Result<usize, Errno>;

    /// send() of a connected socket: the bytes taken (all of them unless
    /// `block` ran out), EAGAIN when none, EPIPE after SHUT_WR or when the
    /// peer is gone.
    fn send(&self, sock: SockRef<'_>, buf: &[u8], block: Block) -> Result<usize, Errno>;

    /// The POLL* bits poll() would report for a connected socket, or a
    /// listener (POLLIN: a connection waits).
    fn readiness(&self, sock: SockRef<'_>) -> i16;

    /// Bytes waiting to be read (SIOCINQ) and bytes sent that the peer has
    /// not read (SIOCOUTQ).
    fn queued(&self, sock: SockRef<'_>) -> (u64, u64);

    /// The next connection of listener `sock` as the accepted socket's
    /// state (its addresses are the backend's `local_addr` and
    /// `peer_addr`), waiting as `block` allows; EAGAIN when it may not.
    fn accept(&self, sock: SockRef<'_>, block: Block) -> Result<SockState, Errno>;

    /// The socket's O_NONBLOCK where every holder sees it (None: the
    /// frontend's own flag stands).
    fn nonblocking(&self, sock: SockRef<'_>) -> Option<bool>;

    /// Sets the socket's O_NONBLOCK for every holder (the frontend keeps its
    /// own copy too: it is also told before the socket has a connection).
    fn set_nonblocking(&self, sock: SockRef<'_>, on: bool);

    /// What carries the socket to another process, across exec or in
    /// SCM_RIGHTS: its anchor and, for a connection, its segment's memfd
    /// (-1 for a listener). The caller puts a duplicate of the anchor at
    /// the program's fd number (or in the message) and lets the memfd
    /// cross beside it; the receiving library adopts them. Asking tells
    /// the backend the socket may now live on in another process.
    fn exec_fds(&self, sock: SockRef<'_>) -> Option<(i32, i32)>;

    /// Before a sleep in poll/select: the kernel fd to wait on (readable
    /// when the socket's readiness may have changed, after the backend was
    /// asked to signal it: `in_` for input, `out` for room), or None when
    /// the socket has nothing a sleep could wait for.
    fn wait_fd(&self, sock: SockRef<'_>, in_: bool, out: bool) -> Option<i32>;

    /// A number that moves whenever the socket's readiness may have
    /// changed (None: unknown, every look may be news). Edge-triggered
    /// epoll reports a socket again only when it moved.
    fn changes(&self, _sock: SockRef<'_>) -> Option<u64> {
        None
    }

    /// A send of this process blocked for room returns to the frontend
    /// (with what it sent, or EAGAIN) to look again: SO_SNDBUF grew, and
    /// its send queue may now take the rest.
    fn kick_writers(&self, _sock: SockRef<'_>) {}

    /// The connection is to end in a reset, not end-of-stream, when this
    /// holder lets go of it (SO_LINGER 0 at close: Linux's RST).
    fn abort(&self, _sock: SockRef<'_>) {}

    /// Takes the connection's pending error (SO_ERROR), kept where every
    /// holder sees it; None when there is none.
    fn take_error(&self, _sock: SockRef<'_>) -> Option<Errno> {
        None
    }

    /// Whether the connection was reset (then closed: no peer name).
    fn was_reset(&self, _sock: SockRef<'_>) -> bool {
        false
    }

    /// send(MSG_OOB): as `send`, the last byte sent urgent.
    fn send_urgent(&self, _sock: SockRef<'_>, _buf: &[u8], _block: Block) -> Result<usize, Errno> {
        Err(crate::consts::EOPNOTSUPP)
    }

    /// recv(MSG_OOB): the urgent byte (`peek`: left for the next); EINVAL
    /// when there is none to read out of band.
    fn recv_urgent(&self, _sock: SockRef<'_>, _peek: bool) -> Result<u8, Errno> {
        Err(crate::consts::EINVAL)
    }

    /// An urgent mark lies ahead of the reader (or under it): the
    /// frontend then tells `set_oob_inline` the socket's SO_OOBINLINE.
    fn has_urgent(&self, _sock: SockRef<'_>) -> bool {
        false
    }

    /// SIOCATMARK: the reader is on the urgent mark.
    fn at_mark(&self, _sock: SockRef<'_>) -> bool {
        false
    }

    /// The socket's SO_RCVBUF as the frontend sized it (what getsockopt
    /// reports), for every holder: the peer may keep at most that many
    /// bytes unread for it, as Linux's receive window holds a sender back.
    /// Told when the program sets it, and when the socket joins the
    /// backend with it set; an accepted socket takes its listener's.
    fn set_rcvbuf(&self, _sock: SockRef<'_>, _bytes: usize) {}

    /// The socket's SO_OOBINLINE, for every holder.
    fn set_oob_inline(&self, _sock: SockRef<'_>, _on: bool) {}

    /// The socket's F_SETOWN owner, for every holder: the peer's urgent
    /// data sends it SIGURG.
    fn set_owner(&self, _sock: SockRef<'_>, _pid: i32) {}

    /// How many connections wait to be accepted on listener `sock`
    /// (TCP_INFO's `tcpi_unacked`), or None when the backend does not tell.
    fn waiting(&self, _sock: SockRef<'_>) -> Option<u32> {
        None
    }

    /// The room left in what this socket reads from and in what it writes
    /// to (TCP_INFO's receive and send windows); (0, 0) when the backend
    /// does not tell.
    fn windows(&self, _sock: SockRef<'_>) -> (u64, u64) {
        (0, 0)
    }
}

/// Extension: a waiting thread may process a socket's input itself (hosted
/// Linux). A backend whose input arrives on a kernel fd (the cross-process
/// backend's AF_UNIX connections) lets the thread that sleeps on the socket
/// sleep on that fd instead, and read it when it fires: one wake-up per
/// message, as the kernel's own TCP has, instead of the backend thread's
/// and then the program's. Reached through [`Backend::input`]. The C table
/// has no such entries: a C backend's input is always its own business.
pub trait InputDelegation: Send + Sync {
    /// A kernel fd that turns readable when the backend has input to
    /// process for this socket. A thread about to sleep on the socket (in
    /// epoll_wait, or in a blocking connect, send or recv) may watch it
    /// itself and call [`Self::pump`] when it fires, instead of waiting for
    /// the backend's own thread to process the input and wake it. The fd stays the backend's (the frontend
    /// never reads or closes it) and may close at any time. `None`: the
    /// backend alone processes this socket's input.
    fn input_fd(&self, sock: SockRef<'_>) -> Option<i32>;

    /// The frontend now watches [`Self::input_fd`] (in an epoll set, or in
    /// a blocking call) and pumps the socket whenever a thread waits there:
    /// the backend's own thread may leave the input alone (as the kernel
    /// leaves TCP input in the socket until the program reads it) until
    /// [`Self::input_wanted`] or close. A non-blocking call that finds
    /// nothing pumps too, once no epoll set watches the socket.
    fn input_watched(&self, sock: SockRef<'_>);

    /// [`Self::input_fd`], then, when there is one, [`Self::input_watched`]:
    /// what a thread about to block on the socket asks. A backend may
    /// answer both with one look-up (a blocking receive asks per message).
    fn watch_input_fd(&self, sock: SockRef<'_>) -> Option<i32> {
        let fd = self.input_fd(sock)?;
        self.input_watched(sock);
        Some(fd)
    }

    /// A thread is about to wait on the socket where it cannot pump it
    /// (poll, select, an epoll set nested in another): the backend's own
    /// thread must process its input again, from now on.
    fn input_wanted(&self, sock: SockRef<'_>);

    /// Processes what waits on [`Self::input_fd`] in the calling thread,
    /// making the upcalls the backend's own thread would have made. Called
    /// with no lock of the frontend held, at any time, concurrently with
    /// the backend's thread. Also called on a datagram socket (which may
    /// have no input fd) before its socket filter changes: the datagrams
    /// sent to it that the backend holds are to be delivered now.
    fn pump(&self, sock: SockRef<'_>);

    /// Whether the socket's close already took input fd `kfd` from this
    /// process (its number now names something else): an epoll set then
    /// leaves out its EPOLL_CTL_DEL, which could only fail. Asked with an
    /// epoll set's lock held, so it must take no lock. Default: no.
    fn input_released(&self, _sock: SockRef<'_>, _kfd: i32) -> bool {
        false
    }
}

/// Extension: fork() support for a backend with process-global state (its
/// locks, a transport thread, kernel sockets of its own). Reached through
/// [`Backend::fork`]; called in the order the crate's lock order gives
/// (LOCKING.md), with the registry locked. The C table has no such
/// entries: a C backend that needs them registers its own
/// `pthread_atfork` handlers.
pub trait ForkAware: Send + Sync {
    /// fork() support, before the fork: take the backend's global locks
    /// that a fork child may need (each is released by [`Self::fork_parent`]
    /// or [`Self::fork_child`]), so that the child finds none held by a
    /// thread that did not come along. Called with the registry locked.
    fn fork_prepare(&self);

    /// fork() support, in the parent after the fork: release what
    /// [`Self::fork_prepare`] took.
    fn fork_parent(&self);

    /// fork() support, in the child after the fork (one thread, nothing
    /// else of the library running yet): release what
    /// [`Self::fork_prepare`] took and forget the parent's sockets, which
    /// the child can never use (their `close` is never called in the
    /// child).
    fn fork_child(&self);
}

/// The credentials of the process at the other end of an AF_UNIX
/// connection, as Linux records them for SO_PEERCRED: the connecting
/// process's as of connect() for the accepted socket, the listener's as of
/// listen() for the connecting one, the creator's for both ends of a
/// socketpair. Ids are the effective ones; `pid` the thread group's.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerCred {
    /// Process id (the thread group id).
    pub pid: i32,
    /// Effective user id.
    pub uid: u32,
    /// Effective group id.
    pub gid: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(lo: u16, hi: u16) -> SockOpts {
        SockOpts {
            port_range: u32::from(lo) | u32::from(hi) << 16,
            ..SockOpts::default()
        }
    }

    #[test]
    fn ip_local_port_range_narrows_the_systems_range() {
        let (lo, hi) = crate::platform::local_port_range();
        assert_eq!(SockOpts::default().ephemeral_range(), (lo, hi));
        assert_eq!(opts(lo + 10, lo + 11).ephemeral_range(), (lo + 10, lo + 11));
        // A bound of 0, or one outside the system's range, leaves that end.
        assert_eq!(opts(0, lo + 5).ephemeral_range(), (lo, lo + 5));
        assert_eq!(opts(lo + 5, 0).ephemeral_range(), (lo + 5, hi));
        assert_eq!(opts(1, lo + 5).ephemeral_range(), (lo, lo + 5));
        assert_eq!(opts(lo + 5, 65535).ephemeral_range(), (lo + 5, hi));
    }
}

//! The frontend core: one [`Socket`] per socket() call, its state machine,
//! blocking and non-blocking waits, readiness and options.
//!
//! Locking: `ctl` guards control state and is held only for short sections,
//! never across a backend call; the receive side is serialised by `rx_lock`
//! and the send side by `tx`, neither of which an upcall ever takes. Status
//! bits that readiness and the data path need are atomics in `flags`.

#[cfg(feature = "std")]
mod kernel_opts;
pub mod mux;
pub mod options;
pub mod slab;
pub mod spin;
pub mod wait;

pub(crate) mod bpf;
mod capture;
pub mod cmsg;
mod connect;
mod cork;
mod defer;
pub mod dgram_attrs;
pub mod errqueue;
pub(crate) mod filter;
mod frontend;
mod inet_args;
pub(crate) mod inflight;
mod inherit;
mod io;
pub(crate) mod listing;
mod mcast;
pub(crate) mod pcap;
mod records;
mod saved_syn;
pub mod scm;
mod shared;
mod shared_send;
mod sndq;
pub(crate) mod state;
mod sysctl;
mod tcp_info;
mod timer;
mod urgent;

#[cfg(feature = "std")]
pub(crate) use mcast::fork_lock as mcast_fork_lock;
#[cfg(feature = "std")]
pub(crate) use timer::{fork_child as timer_fork_child, fork_lock as timer_fork_lock};

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use crate::addr::SockAddr;
use crate::backend::contract::{
    Backend, Errno, Fragment, InputDelegation, SockHandle, SockInfo, SockRef, SockState,
};
use crate::backend::wire::{FragKind, FLAG_EOR, FLAG_FIN, FLAG_RST, FLAG_URG};
use crate::consts::*;
use crate::sockbuf::{DgramBuf, StreamBuf};
use crate::sync::{Mutex, SetOnce};
#[cfg(feature = "std")]
pub use io::RecvInfo;
use options::Options;
pub(crate) use state::*;
use wait::{WaitQueue, Waited};

/// Default receive window of a stream socket (what SO_RCVBUF reports).
pub const DEFAULT_STREAM_RCVBUF: usize = crate::config::STREAM_RCVBUF;
/// Default receive capacity of a datagram socket (Linux's rmem_default).
pub const DEFAULT_DGRAM_RCVBUF: usize = crate::config::DGRAM_RCVBUF;
/// Default SO_SNDBUF reported (the frontend keeps no send buffer).
pub const DEFAULT_SNDBUF: usize = 212_992;
/// Cap on partial datagrams per socket.
pub const MAX_PARTIAL_DGRAMS: usize = crate::config::MAX_PARTIALS;
pub use crate::backend::contract::FRAG_MAX;

/// A reader that consumes a window's worth within this long of the previous
/// one is held back by the window (see `Socket::autotune`): 128 MB/s for
/// the default 256 KiB.
const AUTOTUNE_PERIOD: core::time::Duration = core::time::Duration::from_millis(2);

/// The backend that carries a socket, set once at selection.
pub(crate) struct Binding {
    pub backend: Arc<dyn Backend>,
    pub state: SockState,
}

// Both variants live inline in the socket, which is allocated once; boxing
// the larger would add an indirection on every receive.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Rx {
    Stream(StreamBuf),
    Dgram(DgramBuf),
}

pub(crate) struct Tx {
    /// Next stream offset to send.
    next: u64,
    /// The last datagram id used: the socket's base (`io::dgram_id_base`)
    /// in the high half, a count in the low half.
    dgram_id: u64,
    /// Stream bytes accepted from the caller but held back by TCP_CORK or
    /// MSG_MORE (`cork`); they come before `next`'s bytes. On a UDP socket,
    /// the pending datagram UDP_CORK or MSG_MORE builds.
    held: Vec<u8>,
    /// A UDP datagram is pending in `held`, to this destination (None:
    /// the connected peer).
    /// Boxed: UDP_CORK is rare and an address is 129 bytes of every socket.
    held_dgram: Option<Box<Option<SockAddr>>>,
    /// Some of `held` went in beyond the peer's window (the send queue,
    /// `sndq`): it goes out as credit comes, not when a call ends.
    queueing: bool,
    /// The fork generation `held` began in: a fork child's copy of its
    /// parent's held bytes is the parent's to send (`shared_send`).
    held_gen: u32,
    /// shutdown(SHUT_WR) or close() came with bytes queued: the FIN
    /// goes after the last of them (`sndq`).
    fin_pending: bool,
    /// close() came with bytes queued: the socket stays in the slab,
    /// and its backend open, until they are gone (`sndq`).
    close_pending: bool,
}

pub(crate) struct Ctl {
    so_error: i32,
    /// A connect failed after connect() returned (a refusal or reset while
    /// connecting) and no connect() has reported it yet: as on Linux, where
    /// the socket stays SS_CONNECTING until then, the next connect() of a
    /// TCP socket reports it (its SO_ERROR, or ECONNABORTED when SO_ERROR
    /// took that) instead of starting a new attempt.
    connect_failed: bool,
    /// A TCP connect() returned before the connection was up (EINPROGRESS,
    /// EINTR) and no connect() has seen it since: Linux's sock->state is
    /// still SS_CONNECTING, so once the connection is up the next connect()
    /// returns 0 (and moves it to SS_CONNECTED), and only later ones
    /// EISCONN.
    connect_unreported: bool,
    /// What getsockname shows of a TCP socket whose connect(AF_UNSPEC)
    /// gave back the port it had not bound: the wildcard address and that
    /// port, as Linux's `inet_sport` outlives `tcp_disconnect` (`sockname`).
    /// Boxed: rare, and an address is 129 bytes of every socket.
    released: Option<Box<SockAddr>>,
    /// The address an IP socket's bind() named, when not the wildcard:
    /// Linux's SOCK_BINDADDR_LOCK, which keeps it through
    /// connect(AF_UNSPEC).
    bound_ip: Option<[u8; 16]>,
    accept_q: VecDeque<Arc<Socket>>,
    /// Accepted-side sockets announced by the backend but not yet established.
    pending: u32,
    backlog: u32,
    parent: Option<Weak<Socket>>,
    /// Queued on a TCP_DEFER_ACCEPT listener, until data or the deadline
    /// (`defer`).
    deferred_on: defer::DeferredOn,
    pub(crate) opts: Options,
    /// The settings of options the kernel keeps for this socket
    /// (`kernel_opts`), in the order they were made.
    #[cfg(feature = "std")]
    kernel_opts: Vec<kernel_opts::KernelOpt>,
}

/// (datagram id, attachment key) of the last AF_UNIX datagrams in pieces.
pub(crate) type SplitKeys = [(u64, u64); 4];

/// One user-space socket.
pub struct Socket {
    /// Names the socket to backends and upcalls.
    pub handle: SockHandle,
    /// Domain, type and protocol.
    pub info: SockInfo,
    binding: SetOnce<Binding>,
    pub(crate) ctl: Mutex<Ctl>,
    /// The receive Socket Buffer, made at its first use (`Socket::rx`): a
    /// shared-memory connection's stays unused, and it is the largest part
    /// of a socket (issue 15's memory per idle connection).
    rx_buf: SetOnce<Rx>,
    /// Where the records a seqpacket socket received end (`records`).
    records: records::Records,
    rx_lock: Mutex<()>,
    tx: Mutex<Tx>,
    /// Mirror of `Tx::next` for readiness checks without the send lock.
    tx_next: AtomicU64,
    /// Send credit: stream bytes may be sent below this absolute offset.
    tx_limit: AtomicU64,
    /// Mirror of `Tx::held`'s length (a stream's unsent bytes: corked or
    /// queued), for poll, SIOCOUTQ and the credit upcall.
    tx_held: AtomicU64,
    /// Bumped when SO_SNDBUF or TCP_NOTSENT_LOWAT changes: a sender
    /// waiting for room in its send queue looks again.
    tx_bump: core::sync::atomic::AtomicU32,
    /// Senders in a stream send that found the window full: they push the
    /// send queue themselves when credit comes (`sndq::Sender`).
    tx_senders: core::sync::atomic::AtomicU32,
    /// Bumped by `upcall::writable`: a datagram sender the backend turned
    /// away with EAGAIN waits for it to move.
    pub(crate) tx_room: core::sync::atomic::AtomicU32,
    /// How many epoll registrations the socket has (see `pump_orphan`).
    #[cfg_attr(not(feature = "std"), allow(dead_code))]
    pub(crate) epoll_regs: core::sync::atomic::AtomicU32,
    /// A shared socket's `SharedStreams::changes` when its readiness was
    /// last looked at or announced: a pump announces only what moved.
    pub(crate) shared_seen: core::sync::atomic::AtomicU64,
    /// Window end last told to the backend.
    pub(crate) advertised: AtomicU64,
    /// Receive-window autotuning: bytes read since `tune_start`.
    tune_bytes: AtomicUsize,
    /// When the current autotuning measurement began.
    tune_start: Mutex<Option<crate::platform::Deadline>>,
    /// Where the connection stands, and the other conditions (`state`).
    state: State,
    nonblock: AtomicBool,
    accept_len: AtomicU32,
    /// Timeouts in nanoseconds, 0 = none.
    rcvtimeo: AtomicU64,
    sndtimeo: AtomicU64,
    /// Number of fds (or native handles) referring to this socket.
    refs: AtomicU32,
    /// The fork generation of the process that created the socket: a
    /// different one now means this is a fork child's copy.
    fork_gen: u32,
    /// The fork generation in which a refused use was last reported.
    #[cfg(feature = "std")]
    warned_gen: AtomicU32,
    /// The socket's waiters.
    pub wait: WaitQueue,
    /// When the last datagram read was taken, wall-clock ns (0: none yet),
    /// for SIOCGSTAMP.
    stamp_ns: AtomicU64,
    /// What TCP_INFO reports that the buffers do not count.
    tcp: tcp_info::TcpCounters,
    /// SO_RCVLOWAT (mirrors the option, for the data path): a stream
    /// read returns, and TCP reads as readable, from this many bytes.
    rcv_lowat: AtomicU32,
    /// SO_PEEK_OFF: where the next MSG_PEEK starts (-1: off).
    pub(crate) peek_off: core::sync::atomic::AtomicI32,
    /// SO_INCOMING_CPU: the CPU the last data arrived on (-1: none yet).
    pub(crate) incoming_cpu: core::sync::atomic::AtomicI32,
    /// SO_COOKIE, given at the first ask (0: not yet).
    cookie: AtomicU64,
    /// TCP urgent data received (`urgent`).
    urg: urgent::Urgent,
    /// The error queue (`errqueue`).
    errq: errqueue::ErrQueue,
    /// UDP_SEGMENT: a send is cut into datagrams of this size (0: off).
    udp_gso: AtomicU32,
    /// What a datagram sent leaves with (IP_TOS, IP_TTL, ...), cached
    /// from the options (`dgram_attrs`).
    tx_attrs: AtomicU64,
    /// The datagram cmsgs a receive reports (`dgram_attrs::RX_*`).
    rx_attrs: AtomicU32,
    /// Datagrams refused for want of room (Linux's `sk_drops`), which
    /// SO_RXQ_OVFL reports.
    rx_drops: AtomicU32,
    /// TCP_DEFER_ACCEPT of a listener, seconds (0: off).
    defer_secs: AtomicU32,
    /// The socket filter (SO_ATTACH_FILTER) and its lock.
    pub(crate) filter: filter::SockFilter,
    /// AF_UNIX datagrams in pieces whose first piece brought an attachment
    /// (credentials, fds): (datagram id, attachment key), so that their
    /// later pieces join the same partial datagram (`frontend`).
    /// Allocated at the first such datagram (72 bytes no stream needs).
    pub(crate) split_keys: Mutex<Option<Box<SplitKeys>>>,
}

/// The last SO_COOKIE given (the kernel's start from 1 as well).
static COOKIES: AtomicU64 = AtomicU64::new(0);

/// The fork generation of this process: 0 in the process that loaded the
/// library, one more in each fork child (bumped by the child's fork
/// handler before any other code of the child runs).
static FORK_GEN: AtomicU32 = AtomicU32::new(0);

/// This process's fork generation (see [`Socket::inherited`]).
#[inline]
pub fn fork_generation() -> u32 {
    FORK_GEN.load(Ordering::Relaxed)
}

/// Starts a new fork generation: called once in a fork child, so that every
/// socket that existed before the fork reads as inherited.
#[cfg(feature = "std")]
pub fn new_fork_generation() {
    FORK_GEN.fetch_add(1, Ordering::Relaxed);
    crate::platform::shared_mem::forked();
}

/// Validates socket() arguments the way Linux does; returns the cleaned
/// info.
pub fn check_args(domain: i32, ty: i32, protocol: i32) -> Result<SockInfo, Errno> {
    let base = ty & !(SOCK_NONBLOCK | SOCK_CLOEXEC);
    if !(0..=10).contains(&base) || base == 0 {
        return Err(EINVAL);
    }
    let info = SockInfo {
        domain,
        ty: base,
        protocol,
    };
    match domain {
        AF_INET | AF_INET6 => {
            let ok = match base {
                SOCK_STREAM => protocol == 0 || protocol == IPPROTO_TCP,
                SOCK_DGRAM => protocol == 0 || protocol == IPPROTO_UDP,
                _ => return Err(ESOCKTNOSUPPORT),
            };
            if !ok {
                return Err(EPROTONOSUPPORT);
            }
        }
        AF_UNIX => {
            if !matches!(base, SOCK_STREAM | SOCK_DGRAM | SOCK_SEQPACKET) {
                return Err(ESOCKTNOSUPPORT);
            }
            // Linux takes PF_UNIX (1) as well as 0 (unix_create).
            if protocol != 0 && protocol != AF_UNIX {
                return Err(EPROTONOSUPPORT);
            }
        }
        _ => {}
    }
    crate::backend::registry::usable_for(info.domain)?;
    if !crate::backend::registry::any_supports(&info) {
        return Err(EAFNOSUPPORT);
    }
    Ok(info)
}

/// Whether the library implements no socket of this domain, type and
/// protocol, so that the C API hands the call to the kernel (issue 13: a
/// netlink, packet or raw socket, UDP-Lite, SCTP, MPTCP... is the kernel's, with the kernel's errno if it
/// refuses). A family the library implements but whose backend is missing
/// (a broken configuration) is not handed over: that stays a loud
/// EAFNOSUPPORT rather than a silent escape to the kernel.
/// `e` is the error [`check_args`] gave for `domain`: the caller asks the
/// kernel instead, so the arguments are checked once.
#[cfg(feature = "std")]
pub fn kernel_takes(domain: i32, e: Errno) -> bool {
    match e {
        EAFNOSUPPORT => !matches!(domain, AF_INET | AF_INET6 | AF_UNIX),
        e => matches!(e, EINVAL | ESOCKTNOSUPPORT | EPROTONOSUPPORT),
    }
}

impl Socket {
    /// Creates a socket (arguments already checked by [`check_args`]).
    pub fn new(info: SockInfo, nonblock: bool) -> Result<Arc<Socket>, Errno> {
        // Before any backend can name a socket in an upcall.
        crate::backend::upcall::install(&frontend::FRONTEND);
        let handle = slab::reserve().ok_or(ENOBUFS)?;
        let sock = Arc::new(Socket::build(handle, info, nonblock));
        slab::publish(sock.clone());
        Ok(sock)
    }

    /// The receive Socket Buffer, made at the first call: one load after.
    #[inline]
    pub(crate) fn rx(&self) -> &Rx {
        self.rx_buf.get_or_init(|| Self::new_rx(&self.info))
    }

    /// The receive Socket Buffer's state at socket(): every change to it
    /// goes through `rx`, so making it later is the same as making it then.
    #[cold]
    fn new_rx(info: &SockInfo) -> Rx {
        if info.ty == SOCK_STREAM {
            Rx::Stream(StreamBuf::new(0, DEFAULT_STREAM_RCVBUF))
        } else if info.ty == SOCK_SEQPACKET {
            // Records on a stream connection (`records`).
            Rx::Stream(StreamBuf::new(
                0,
                records::RECORD_RCVBUF.max(DEFAULT_STREAM_RCVBUF),
            ))
        } else {
            // AF_UNIX: room for the largest datagram the default SO_SNDBUF
            // lets a sender make (sndbuf - 32) with its longest name.
            let slack = if info.domain == AF_UNIX {
                crate::sockbuf::MAX_ADDR_LEN
            } else {
                0
            };
            Rx::Dgram(DgramBuf::new(
                DEFAULT_DGRAM_RCVBUF + slack,
                MAX_PARTIAL_DGRAMS,
            ))
        }
    }

    fn build(handle: SockHandle, info: SockInfo, nonblock: bool) -> Socket {
        let opts = Options::new(&info);
        let records = records::Records::new(opts.sndbuf());
        Socket {
            handle,
            info,
            binding: SetOnce::new(),
            ctl: Mutex::new(Ctl {
                so_error: 0,
                connect_failed: false,
                connect_unreported: false,
                released: None,
                bound_ip: None,
                accept_q: VecDeque::new(),
                pending: 0,
                backlog: 0,
                parent: None,
                deferred_on: None,
                opts,
                #[cfg(feature = "std")]
                kernel_opts: Vec::new(),
            }),
            rx_buf: SetOnce::new(),
            records,
            rx_lock: Mutex::new(()),
            tx: Mutex::new(Tx {
                next: 0,
                dgram_id: io::dgram_id_base(),
                held: Vec::new(),
                held_dgram: None,
                queueing: false,
                held_gen: 0,
                fin_pending: false,
                close_pending: false,
            }),
            tx_next: AtomicU64::new(0),
            tx_limit: AtomicU64::new(0),
            tx_held: AtomicU64::new(0),
            tx_bump: core::sync::atomic::AtomicU32::new(0),
            tx_senders: core::sync::atomic::AtomicU32::new(0),
            tx_room: core::sync::atomic::AtomicU32::new(0),
            epoll_regs: core::sync::atomic::AtomicU32::new(0),
            shared_seen: core::sync::atomic::AtomicU64::new(0),
            advertised: AtomicU64::new(0),
            tune_bytes: AtomicUsize::new(0),
            tune_start: Mutex::new(None),
            state: State::new(),
            nonblock: AtomicBool::new(nonblock),
            accept_len: AtomicU32::new(0),
            rcvtimeo: AtomicU64::new(0),
            sndtimeo: AtomicU64::new(0),
            refs: AtomicU32::new(1),
            fork_gen: fork_generation(),
            #[cfg(feature = "std")]
            warned_gen: AtomicU32::new(fork_generation()),
            stamp_ns: AtomicU64::new(0),
            tcp: tcp_info::TcpCounters::new(),
            rcv_lowat: AtomicU32::new(1),
            peek_off: core::sync::atomic::AtomicI32::new(-1),
            incoming_cpu: core::sync::atomic::AtomicI32::new(-1),
            cookie: AtomicU64::new(0),
            urg: urgent::Urgent::new(),
            errq: errqueue::ErrQueue::new(),
            udp_gso: AtomicU32::new(0),
            tx_attrs: AtomicU64::new(0),
            rx_attrs: AtomicU32::new(0),
            rx_drops: AtomicU32::new(0),
            defer_secs: AtomicU32::new(0),
            filter: filter::SockFilter::new(),
            split_keys: Mutex::new(None),
            wait: WaitQueue::new(),
        }
    }

    /// Whether this is a fork child's copy of a socket its parent created:
    /// the socket's state (buffers, accept queue, the backend's transport)
    /// belongs to the parent, so the child may only close it. One atomic
    /// load.
    #[inline]
    pub fn inherited(&self) -> bool {
        // A shared socket's state is where the child reaches it (SHARED.md):
        // the child's copy acts.
        self.fork_gen != FORK_GEN.load(Ordering::Relaxed) && !self.is_shared()
    }

    /// For an inherited socket: true the first time it is refused in this
    /// process (the caller reports it once).
    #[cfg(feature = "std")]
    pub fn first_refusal(&self) -> bool {
        let g = fork_generation();
        self.warned_gen.swap(g, Ordering::Relaxed) != g
    }

    /// Whether the socket is connection-oriented: a stream socket, or an
    /// AF_UNIX seqpacket socket (a stream connection that keeps records,
    /// see [`Socket::keeps_records`]).
    pub fn is_stream(&self) -> bool {
        matches!(self.info.ty, SOCK_STREAM | SOCK_SEQPACKET)
    }

    /// The state word now (phase and flags at one instant).
    pub(crate) fn flags(&self) -> Snapshot {
        self.state.load()
    }

    /// The connection's phase now.
    pub(crate) fn phase(&self) -> Phase {
        self.state.phase()
    }

    /// Moves the connection to `to` from one of `from` (see `state`).
    pub(crate) fn go(&self, from: &[Phase], to: Phase) -> Result<(), Phase> {
        self.state.go(from, to)
    }

    pub(crate) fn has(&self, f: u32) -> bool {
        self.state.has(f)
    }

    pub(crate) fn set(&self, f: u32) {
        self.state.set(f);
    }

    pub(crate) fn clear(&self, f: u32) {
        self.state.clear(f);
    }

    /// O_NONBLOCK on this socket (shared by all its fds, like an open file
    /// description).
    pub fn nonblocking(&self) -> bool {
        // A shared socket's flag is where every holder sees it.
        if let Some(v) = self.shared().and_then(|(sh, r)| sh.nonblocking(r)) {
            return v;
        }
        self.nonblock.load(Ordering::Relaxed)
    }

    /// Sets or clears O_NONBLOCK.
    pub fn set_nonblocking(&self, on: bool) {
        self.nonblock.store(on, Ordering::Relaxed);
        if let Some((sh, r)) = self.shared() {
            sh.set_nonblocking(r, on);
        }
    }

    pub(crate) fn binding(&self) -> Option<&Binding> {
        self.binding.get()
    }

    pub(crate) fn sref<'a>(&'a self, b: &'a Binding) -> SockRef<'a> {
        SockRef {
            handle: self.handle,
            state: &b.state,
            info: self.info,
            opts: self.ctl.lock().opts.backend_view(),
        }
    }

    /// The socket's backend and its input delegation, if it has one.
    fn input_delegation(&self) -> Option<(&Binding, &dyn InputDelegation)> {
        let b = self.binding()?;
        Some((b, b.backend.input()?))
    }

    /// The backend's input fd for this socket (see
    /// `InputDelegation::input_fd`).
    #[cfg(feature = "std")]
    pub(crate) fn input_fd(&self) -> Option<i32> {
        let b = self.binding()?;
        b.backend.input()?.input_fd(self.sref(b))
    }

    /// Whether the socket's close already took input fd `kfd` from this
    /// process (see `InputDelegation::input_released`).
    #[cfg(feature = "std")]
    pub(crate) fn input_released(&self, kfd: i32) -> bool {
        self.input_delegation()
            .is_some_and(|(b, i)| i.input_released(self.sref(b), kfd))
    }

    /// Tells the backend the frontend watches its input fd.
    #[cfg(feature = "std")]
    pub(crate) fn input_watched(&self) {
        self.set(F_INPUT_WATCHED);
        if let Some((b, i)) = self.input_delegation() {
            i.input_watched(self.sref(b));
        }
    }

    /// A non-blocking call found nothing to do: if an epoll set took the
    /// socket's input over but the socket is in no set now, nobody may be
    /// waiting where its input would be read (a program that deleted it
    /// from its set and polls it with non-blocking calls), so it is read
    /// here. Returns whether it was; the caller looks again then.
    pub(crate) fn pump_orphan(&self) -> bool {
        #[cfg(feature = "std")]
        if self.has(F_INPUT_WATCHED) && self.epoll_regs.load(Ordering::Acquire) == 0 {
            self.pump();
            return true;
        }
        false
    }

    /// [`Socket::input_fd`], then, when there is one,
    /// [`Socket::input_watched`], with one look-up in the backend: a
    /// thread about to block on the socket.
    #[cfg(feature = "std")]
    fn watch_input_fd(&self) -> Option<i32> {
        let (b, i) = self.input_delegation()?;
        let fd = i.watch_input_fd(self.sref(b))?;
        self.set(F_INPUT_WATCHED);
        Some(fd)
    }

    /// Has the backend process this socket's input in this thread.
    #[cfg(feature = "std")]
    pub(crate) fn pump(&self) {
        if let Some((b, i)) = self.input_delegation() {
            if !self.arm_shared(self.wait.polled_events()) {
                i.pump(self.sref(b));
            }
            // A shared socket's changes make no upcall that would announce
            // them: announce here, for edge-triggered registrations, what
            // moved since readiness was last looked at (the doorbell of
            // data already reported is no news).
            if self.shared_moved() {
                self.wait.notify(-1);
            }
        }
    }

    /// A thread is about to block on this socket (not in epoll_wait): the
    /// backend processes its input again (see `Backend::input_wanted`).
    pub(crate) fn before_block(&self) {
        if let Some((b, i)) = self.input_delegation() {
            i.input_wanted(self.sref(b));
        }
    }

    /// Installs the backend chosen at selection. `false` if one was already
    /// installed (a concurrent call won).
    pub(crate) fn bind_backend(&self, backend: Arc<dyn Backend>, state: SockState) -> bool {
        let set = self.binding.set(Binding { backend, state }).is_ok();
        // A backend that keeps the flag for every holder starts from ours
        // when we set it (its own starts clear; a socket adopted after
        // exec keeps the one its holders left).
        if self.nonblock.load(Ordering::Relaxed) {
            if let Some((sh, r)) = self.shared() {
                sh.set_nonblocking(r, true);
            }
        }
        // So does SO_RCVBUF, the window the peer will get.
        let rcvbuf = self.ctl.lock().opts.rcvbuf;
        if let (Some(bytes), Some((sh, r))) = (rcvbuf, self.shared()) {
            sh.set_rcvbuf(r, bytes);
        }
        set
    }

    /// Records a pending error (SO_ERROR) and wakes everyone.
    pub(crate) fn set_error(&self, err: Errno) {
        self.ctl.lock().so_error = err;
        self.set(F_ERROR);
        self.wait.notify(POLLIN | POLLOUT | POLLERR);
    }

    /// Takes the pending error, as SO_ERROR and the data calls do.
    pub(crate) fn take_error(&self) -> Option<Errno> {
        if !self.has(F_ERROR) {
            return self.shared_take_error();
        }
        let mut ctl = self.ctl.lock();
        let e = core::mem::take(&mut ctl.so_error);
        self.clear(F_ERROR);
        if e == 0 {
            None
        } else {
            Some(e)
        }
    }

    fn rcv_deadline(&self) -> Option<crate::platform::Deadline> {
        timeout_deadline(self.rcvtimeo.load(Ordering::Relaxed))
    }

    fn snd_deadline(&self) -> Option<crate::platform::Deadline> {
        timeout_deadline(self.sndtimeo.load(Ordering::Relaxed))
    }

    /// SO_COOKIE: a number no other socket of the process has, the same
    /// for the socket's life.
    pub(crate) fn cookie(&self) -> u64 {
        let c = self.cookie.load(Ordering::Relaxed);
        if c != 0 {
            return c;
        }
        let fresh = COOKIES.fetch_add(1, Ordering::Relaxed) + 1;
        match self
            .cookie
            .compare_exchange(0, fresh, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => fresh,
            Err(other) => other,
        }
    }

    /// Sets the SO_RCVLOWAT the data path reads (at least 1).
    pub(crate) fn set_rcv_lowat(&self, v: i32) {
        self.rcv_lowat.store(v.max(1) as u32, Ordering::Relaxed);
    }

    /// The readiness poll() would report now (POLL* bits).
    pub fn readiness(&self) -> i16 {
        if let Some(ev) = self.shared_readiness() {
            return ev;
        }
        let f = self.flags();
        let mut ev: i16 = 0;
        if f.has(F_ERROR) || self.errq.pending() {
            ev |= POLLERR;
        }
        if f.is(Phase::Listening) {
            if self.accept_len.load(Ordering::Acquire) > 0 {
                ev |= POLLIN | POLLRDNORM;
            }
            return ev;
        }
        let rd_done = f.has(F_RD_SHUT | F_RESET);
        let wr_done = f.has(F_WR_SHUT | F_RESET);
        match self.rx() {
            Rx::Stream(sb) => {
                if f.is(Phase::Connecting) {
                    return ev;
                }
                let peer_fin = sb.fin_received();
                // tcp_poll: readable from SO_RCVLOWAT's bytes on, or once
                // the peer's FIN is in; unix_poll: from one byte.
                let lowat = if self.info.domain == AF_UNIX {
                    1
                } else {
                    self.rcv_lowat.load(Ordering::Relaxed) as usize + self.urgent_extra_target(sb)
                };
                if self.urgent_pending() {
                    ev |= POLLPRI;
                }
                // A seqpacket socket: from one whole record.
                let data = if self.keeps_records() {
                    self.records.ready(sb)
                } else {
                    sb.readable() >= lowat
                };
                if data || peer_fin || rd_done || f.has(F_ERROR) {
                    ev |= POLLIN | POLLRDNORM;
                }
                if peer_fin || rd_done {
                    ev |= POLLRDHUP;
                }
                // Both directions shut (Linux: sk_shutdown == SHUTDOWN_MASK;
                // the read side by our SHUT_RD or the peer's FIN), or no
                // connection: POLLHUP.
                if !f.is(Phase::Connected) || f.has(F_RESET) || ((peer_fin || rd_done) && wr_done) {
                    ev |= POLLHUP;
                }
                if f.has(F_RESET) {
                    ev |= POLLIN | POLLRDNORM;
                }
                let credit = self
                    .tx_limit
                    .load(Ordering::Acquire)
                    .saturating_sub(self.tx_next.load(Ordering::Acquire));
                // A seqpacket socket: once the largest record it may send
                // fits (`Records::fits_any`).
                let held = self.tx_held.load(Ordering::Acquire);
                let room = if self.keeps_records() {
                    self.records.fits_any(credit)
                } else if held <= credit {
                    credit > 0
                } else {
                    // Bytes queued past the window (`sndq`).
                    self.queue_writable(held, held - credit)
                };
                if wr_done || !f.is(Phase::Connected) || room {
                    ev |= POLLOUT | POLLWRNORM;
                    // unix_poll adds it; tcp_poll does not.
                    if self.info.domain == AF_UNIX {
                        ev |= POLLWRBAND;
                    }
                }
            }
            Rx::Dgram(db) => {
                // A pending error is POLLERR alone (datagram_poll,
                // unix_dgram_poll): readable only with a datagram queued.
                if db.pending() > 0 {
                    ev |= POLLIN | POLLRDNORM;
                }
                if f.has(F_RD_SHUT) {
                    ev |= POLLIN | POLLRDNORM | POLLRDHUP;
                }
                if f.has(F_RD_SHUT) && f.has(F_WR_SHUT) {
                    ev |= POLLHUP;
                }
                // datagram_poll and unix_dgram_poll: writable is all three;
                // not while a connected send was turned away for a full
                // receiver and no room was reported since (`tx_next` holds
                // `tx_room` + 1 as of the refusal: `Socket::write_datagram_ctl`).
                if self.tx_next.load(Ordering::Acquire)
                    != u64::from(self.tx_room.load(Ordering::Acquire)) + 1
                {
                    ev |= POLLOUT | POLLWRNORM | POLLWRBAND;
                }
            }
        }
        ev
    }

    /// Blocks until readiness intersects `events` or the state changes in a
    /// way the caller must look at.
    fn wait_for(&self, events: i16, deadline: Option<crate::platform::Deadline>) -> Waited {
        self.block_until(
            || self.readiness() & (events | POLLERR | POLLHUP) != 0 || self.has(F_CLOSED),
            deadline,
        )
    }

    /// Blocks the calling thread (a blocking call: connect, send, recv)
    /// until `ready()` holds or `deadline` passes. Where the backend lets a
    /// waiting thread read the socket's input itself (`Backend::input_fd`),
    /// the thread sleeps in the kernel on that input and reads it: one
    /// wake-up per message (see [`WaitQueue::wait_on_input`]). Else the
    /// backend reads it, and the thread sleeps on the socket.
    pub(crate) fn block_until(
        &self,
        ready: impl FnMut() -> bool,
        deadline: Option<crate::platform::Deadline>,
    ) -> Waited {
        #[cfg(feature = "std")]
        if self.watch_input_fd().is_some() {
            return self
                .wait
                .wait_on_input(|| self.input_fd(), || self.pump(), ready, deadline);
        }
        self.before_block();
        self.wait.wait_until(ready, deadline)
    }

    /// One more fd (or handle) refers to this socket.
    pub fn add_ref(&self) {
        self.refs.fetch_add(1, Ordering::AcqRel);
    }

    /// One fd (or handle) fewer; the last one closes the socket. A fork
    /// child's copy is never closed: closing it would act on the parent's
    /// connection (end-of-stream, the backend's close).
    pub fn drop_ref(self: &Arc<Self>) {
        if self.inherited() {
            return;
        }
        if self.refs.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.close();
        }
    }

    /// Closes the socket: end-of-stream (or a reset when unread data is
    /// discarded or SO_LINGER 0 asks for it) to the peer, the backend told,
    /// every blocked thread woken, pending connections reset.
    fn close(self: &Arc<Self>) {
        let prev = self.state.set(F_CLOSED);
        if prev.has(F_CLOSED) {
            return;
        }
        #[cfg(feature = "std")]
        if prev.has(F_INPUT_WATCHED) || self.epoll_regs.load(Ordering::Acquire) > 0 {
            crate::socket::mux::epoll::watched_socket_closed();
        }
        self.wait.notify(-1);
        let children: VecDeque<Arc<Socket>> = core::mem::take(&mut self.ctl.lock().accept_q);
        for c in children {
            c.abort();
        }
        if prev.is(Phase::Connected) && self.ctl.lock().opts.linger_zero() {
            self.abort_shared();
        }
        if let Some(b) = self.binding() {
            // A shared socket's end goes with its last holder's anchor, in
            // whichever process that is (the backend's close).
            if self.is_stream()
                && prev.is(Phase::Connected)
                && !prev.has(F_RESET)
                && !self.is_shared()
            {
                let unread =
                    matches!(self.rx(), Rx::Stream(sb) if sb.readable() > 0 || sb.has_hole());
                let linger0 = self.ctl.lock().opts.linger_zero();
                if unread || linger0 {
                    // What the send queue held goes unsent.
                    self.queue_drop();
                    self.send_control(b, FLAG_RST);
                } else if !prev.has(F_FIN_SENT) {
                    self.send_fin(b);
                }
                if self.close_waits() {
                    // The queued bytes and the FIN go first (`sndq`).
                    return;
                }
            }
        }
        if self.is_shared() && prev.is(Phase::Connected) && !prev.has(F_RESET) {
            if self.shared_close_waits() {
                // What TCP_CORK, MSG_MORE or the send queue held goes
                // before the end (`shared_send`), and its FIN after.
                return;
            }
            if self.capturing() && !prev.has(F_FIN_SENT) {
                // The backend ends it (at the last holder's close); a
                // capture shows this process's close as its FIN, or RST.
                let unread = self.shared().is_some_and(|(sh, r)| sh.queued(r).0 > 0);
                let reset = unread || self.ctl.lock().opts.linger_zero();
                self.capture_end(self.tx_next.load(Ordering::Acquire), reset);
            }
        }
        // What its queue held goes with it (AF_UNIX fds in flight).
        self.close_end();
    }

    /// Drops a connection that was never accepted: reset to its peer.
    fn abort(self: &Arc<Self>) {
        self.ctl.lock().opts.set_linger_zero();
        self.close();
    }

    fn send_control(&self, b: &Binding, flags: u16) {
        let off = if self.is_shared() {
            // Its bytes are counted where they went into the ring.
            self.tx_next.load(Ordering::Acquire)
        } else {
            self.tx.lock().next
        };
        let frag = Fragment::stream(off, flags, &[]);
        if self.capturing() {
            self.capture_end(off, flags & FLAG_RST != 0);
        }
        let _ = b.backend.write(self.sref(b), &frag);
    }

    /// Sends end-of-stream once, after any bytes TCP_CORK or MSG_MORE
    /// held.
    pub(crate) fn send_fin(&self, b: &Binding) {
        self.push_held();
        if self.fin_waits() {
            // Behind bytes queued past the window (`sndq`).
            return;
        }
        let prev = self.state.set(F_FIN_SENT);
        if !prev.has(F_FIN_SENT) {
            self.send_control(b, FLAG_FIN);
        }
    }

    /// Tells the backend the receive window moved, when it moved by half
    /// the buffer or more (fewer window updates; a small message exchange
    /// makes none at all). This cannot stall a sender: one that ran out of
    /// credit sent up to the advertised end, and reading that data moves
    /// the window by a whole buffer.
    fn advertise_window(&self) {
        let Rx::Stream(sb) = self.rx() else { return };
        if self.has(F_RCVBUF_PENDING) {
            // No further grant until the SO_RCVBUF shrink is done (see
            // `follow_rcvbuf`).
            return;
        }
        let end = sb.window_end();
        let adv = self.advertised.load(Ordering::Relaxed);
        if end == adv {
            return;
        }
        let moved = end.wrapping_sub(adv);
        if moved < (sb.capacity() / 2) as u64 {
            return;
        }
        self.advertised.store(end, Ordering::Relaxed);
        if let Some(b) = self.binding() {
            b.backend.window(self.sref(b), end);
        }
    }

    /// Receive-window autotuning, a simplified form of Linux's dynamic
    /// right-sizing: when the reader consumed a whole window within
    /// [`AUTOTUNE_PERIOD`] of the previous whole window, the window, not the
    /// reader, limits the sender, so it doubles, up to
    /// [`STREAM_RCVBUF_MAX`](crate::config::STREAM_RCVBUF_MAX). Off once
    /// SO_RCVBUF was set, as on Linux (then a shrink SO_RCVBUF could not
    /// finish at once is finished here when room allows). Called with
    /// `rx_lock` held after `n` bytes were read; returns whether the window
    /// changed (the caller then advertises it).
    pub(crate) fn autotune(&self, sb: &StreamBuf, n: usize) -> bool {
        let cap = sb.capacity();
        if self.has(F_RCVBUF_SET) {
            // A shrink that waited for room, done now: the caller
            // advertises the new window.
            return self.has(F_RCVBUF_PENDING) && self.follow_rcvbuf(false);
        }
        if cap >= crate::config::STREAM_RCVBUF_MAX {
            return false;
        }
        if self.tune_bytes.fetch_add(n, Ordering::Relaxed) + n < cap {
            return false;
        }
        self.tune_bytes.store(0, Ordering::Relaxed);
        let now = crate::platform::now();
        let fast = {
            let mut start = self.tune_start.lock();
            let fast =
                start.is_some_and(|s| crate::platform::time_between(s, now) < AUTOTUNE_PERIOD);
            *start = Some(now);
            fast
        };
        let grown = cap.saturating_mul(2).min(crate::config::STREAM_RCVBUF_MAX);
        fast && sb.set_capacity(grown).is_ok()
    }

    /// Current receive window end (stream sockets), for a backend's initial
    /// credit.
    pub fn window_end(&self) -> u64 {
        match self.rx() {
            Rx::Stream(sb) => sb.window_end(),
            // A datagram socket has no window: the datagrams it holds, so
            // that a backend may bound the queue (AF_UNIX's
            // max_dgram_qlen).
            Rx::Dgram(db) => db.pending() as u64,
        }
    }
}

fn timeout_deadline(nanos: u64) -> Option<crate::platform::Deadline> {
    if nanos == 0 {
        None
    } else {
        crate::platform::deadline_after(core::time::Duration::from_nanos(nanos))
    }
}

impl core::fmt::Debug for Socket {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "Socket({:?}, {:?}, {:?})",
            self.handle,
            self.info,
            self.flags()
        )
    }
}

impl Socket {
    /// Whether the socket is listening.
    pub fn has_listen_flag(&self) -> bool {
        self.phase() == Phase::Listening
    }

    /// The backend's per-socket state, if the socket is carried by a
    /// backend whose state is a `T`.
    #[cfg(feature = "std")]
    pub fn backend_state<T: core::any::Any>(&self) -> Option<&T> {
        let b = self.binding()?;
        (b.state.as_ref() as &dyn core::any::Any).downcast_ref::<T>()
    }
}

#[cfg(test)]
mod idle_memory {
    use super::*;

    #[test]
    fn a_socket_makes_its_receive_buffer_at_its_first_use() {
        let tcp = Socket::build(
            SockHandle(1),
            SockInfo {
                domain: AF_INET,
                ty: SOCK_STREAM,
                protocol: 0,
            },
            false,
        );
        assert!(tcp.rx_buf.get().is_none(), "socket() made a receive buffer");
        match tcp.rx() {
            Rx::Stream(sb) => assert_eq!(sb.capacity(), DEFAULT_STREAM_RCVBUF),
            Rx::Dgram(_) => panic!("a TCP socket got a datagram buffer"),
        }
        assert!(tcp.rx_buf.get().is_some());
        let udp = Socket::build(
            SockHandle(2),
            SockInfo {
                domain: AF_INET,
                ty: SOCK_DGRAM,
                protocol: 0,
            },
            false,
        );
        assert!(matches!(udp.rx(), Rx::Dgram(_)));
    }
}

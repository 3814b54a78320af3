//! Socket options: storage, and getsockopt/setsockopt with Linux's rules.

use core::sync::atomic::Ordering;

use super::filter::{
    SO_ATTACH_FILTER as ATTACH_FILTER, SO_DETACH_FILTER as DETACH_FILTER,
    SO_LOCK_FILTER as LOCK_FILTER,
};
use super::{Phase, Rx, Socket, DEFAULT_SNDBUF, F_RCVBUF_PENDING, F_RCVBUF_SET};
use crate::backend::contract::{Errno, SockInfo, SockOpts};
use crate::consts::*;

/// The clamp of SO_RCVBUF (`rcv`) or SO_SNDBUF requests: net.core's
/// rmem_max / wmem_max (a requested size is clamped to it, then doubled).
fn buf_max(rcv: bool) -> usize {
    let limit = if rcv {
        &super::sysctl::RMEM_MAX
    } else {
        &super::sysctl::WMEM_MAX
    };
    limit.get().min(i32::MAX as usize / 2)
}

/// tcp_rmem[2], the largest TCP receive buffer.
fn tcp_rmem_max() -> usize {
    super::sysctl::TCP_RMEM_MAX.get()
}

/// net.core.rmem_default: a UDP or AF_UNIX socket's SO_RCVBUF until set.
static RMEM_DEFAULT: super::sysctl::Sysctl =
    super::sysctl::Sysctl::new("/proc/sys/net/core/rmem_default", 0, 212_992);
/// net.core.wmem_default: a UDP or AF_UNIX socket's SO_SNDBUF until set.
static WMEM_DEFAULT: super::sysctl::Sysctl =
    super::sysctl::Sysctl::new("/proc/sys/net/core/wmem_default", 0, DEFAULT_SNDBUF);

/// SO_SNDBUF before it is set: tcp_wmem[1] for TCP (tcp_init_sock),
/// wmem_default for the rest (sock_init_data).
fn default_sndbuf(info: &SockInfo) -> usize {
    if is_tcp(info) {
        super::sysctl::TCP_WMEM_DEFAULT.get()
    } else {
        WMEM_DEFAULT.get()
    }
}

/// Whether the caller may pass net.core's maxima with SO_SNDBUFFORCE or
/// SO_RCVBUFFORCE (CAP_NET_ADMIN), as the kernel judges it: the same
/// request on a kernel AF_UNIX socket, whose answer (EPERM, or EINVAL for
/// a short value) is the one given.
#[cfg(feature = "std")]
fn kernel_allows(name: i32, val: &[u8]) -> Result<(), Errno> {
    let k = crate::platform::kernel_socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)?;
    let r = crate::platform::kernel_setsockopt(k, SOL_SOCKET, name, val);
    let _ = crate::platform::kfd_close(k);
    r
}

/// Without a kernel to ask, nobody holds CAP_NET_ADMIN.
#[cfg(not(feature = "std"))]
fn kernel_allows(_name: i32, _val: &[u8]) -> Result<(), Errno> {
    Err(EPERM)
}

/// SOCK_MIN_RCVBUF on 64-bit Linux (2048 plus an `sk_buff`'s truesize):
/// what any smaller SO_RCVBUF request reads back as (0 -> 2304, measured).
const RCVBUF_MIN: usize = 2304;
/// SOCK_MIN_SNDBUF: twice SOCK_MIN_RCVBUF (0 -> 4608, measured).
const SNDBUF_MIN: usize = 4608;

/// The buffer size Linux's `sk_setsockopt` gives an SO_RCVBUF or SO_SNDBUF
/// request of `v`, with `max` its `rmem_max`/`wmem_max` and `min` its
/// SOCK_MIN_*BUF: `min_t(u32, v, max)`, so a negative request is a huge
/// unsigned one and gets the maximum (-1 -> 2 * max, not the minimum);
/// then doubled ("to account for struct sk_buff etc. overhead"), kept
/// below `INT_MAX`, and raised to `min`.
fn linux_buf_size(v: i32, max: usize, min: usize) -> usize {
    let v = (v as u32 as usize).min(max).min(i32::MAX as usize / 2);
    (v * 2).max(min)
}

/// net.ipv4.ip_nonlocal_bind (net.ipv6's for an IPv6 socket): any socket
/// of the family may bind an address the host does not have.
fn nonlocal_bind(info: &SockInfo) -> bool {
    static V4: super::sysctl::Sysctl =
        super::sysctl::Sysctl::switch("/proc/sys/net/ipv4/ip_nonlocal_bind", false);
    static V6: super::sysctl::Sysctl =
        super::sysctl::Sysctl::switch("/proc/sys/net/ipv6/ip_nonlocal_bind", false);
    match info.domain {
        AF_INET => V4.on(),
        AF_INET6 => V6.on(),
        _ => false,
    }
}

/// SO_RXQ_OVFL (`asm-generic/socket.h`).
pub(crate) const SO_RXQ_OVFL: i32 = 40;

/// Option values stored per socket.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    reuseaddr: bool,
    reuseport: bool,
    keepalive: bool,
    broadcast: bool,
    oobinline: bool,
    dontroute: bool,
    nodelay: bool,
    v6only: bool,
    /// IP_LOCAL_PORT_RANGE as given (see `SockOpts::port_range`).
    port_range: u32,
    linger_on: bool,
    linger_secs: i32,
    sndbuf: usize,
    /// SO_RCVBUF as set (what getsockopt reports, as Linux reports
    /// `sk_rcvbuf`); None until set, when the receive window is reported.
    /// The window itself follows it as soon as it may (see
    /// `Socket::follow_rcvbuf`).
    pub(crate) rcvbuf: Option<usize>,
    rcvlowat: i32,
    keepidle: i32,
    keepintvl: i32,
    keepcnt: i32,
    /// TCP_CORK as set (the send path reads `F_CORKED`).
    cork: bool,
    /// An accepted connection whose listener had TCP_SAVE_SYN on, whose
    /// SYN was not read yet (`saved_syn`).
    pub(crate) syn_saved: bool,
    /// IP_FREEBIND, IPV6_FREEBIND or IP(V6)_TRANSPARENT is on (kept by
    /// `kernel_opts`, mirrored here for the backends' bind).
    pub(crate) freebind: bool,
    /// The family's ip_nonlocal_bind sysctl is on.
    nonlocal_bind: bool,
    /// TCP_MAXSEG as set (0: none).
    maxseg: i32,
    /// TCP_INQ: receives report the bytes left (`cmsg`).
    inq: bool,
    /// SO_TIMESTAMP (`TS_RCV`) and SO_TIMESTAMPNS (`TS_RCV | TS_NS`), as
    /// Linux's SOCK_RCVTSTAMP and SOCK_RCVTSTAMPNS flags.
    tstamp: u8,
    /// SO_TIMESTAMPING's flags (the kernel checked them).
    tsflags: u32,
    /// SO_PASSCRED, SO_PASSSEC, SO_PASSPIDFD (AF_UNIX; inherited through
    /// accept with the rest).
    passcred: bool,
    passsec: bool,
    passpidfd: bool,
    /// An accepted-side socket not yet accepted: messages to it always
    /// get credentials (`scm`).
    unaccepted: bool,
    /// SO_PEERCRED's record (`scm`), from the backend's `peer_cred`.
    peer_cred: Option<crate::backend::contract::PeerCred>,
}

/// SOCK_RCVTSTAMP: receives carry their time.
const TS_RCV: u8 = 1;
/// SOCK_RCVTSTAMPNS: as a timespec (SCM_TIMESTAMPNS).
const TS_NS: u8 = 2;

/// The transmit-stamp request of SO_TIMESTAMPING (`errqueue`).
const SOF_TIMESTAMPING_TX_SOFTWARE: u32 = 1 << 1;

/// The receive timestamps a socket's options ask for (`cmsg`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RxStamps {
    /// SCM_TIMESTAMP (a timeval) or, with `ns`, SCM_TIMESTAMPNS.
    pub(crate) plain: bool,
    /// SCM_TIMESTAMPNS rather than SCM_TIMESTAMP.
    pub(crate) ns: bool,
    /// SCM_TIMESTAMPING's software stamp.
    pub(crate) software: bool,
}

impl Options {
    /// Linux's defaults.
    pub fn new(info: &SockInfo) -> Options {
        Options {
            reuseaddr: false,
            reuseport: false,
            keepalive: false,
            broadcast: false,
            oobinline: false,
            dontroute: false,
            nodelay: false,
            v6only: false,
            port_range: 0,
            linger_on: false,
            linger_secs: 0,
            sndbuf: default_sndbuf(info),
            rcvbuf: None,
            rcvlowat: 1,
            keepidle: 7200,
            keepintvl: 75,
            keepcnt: 9,
            cork: false,
            syn_saved: false,
            freebind: false,
            nonlocal_bind: nonlocal_bind(info),
            maxseg: 0,
            inq: false,
            tstamp: 0,
            tsflags: 0,
            passcred: false,
            passsec: false,
            passpidfd: false,
            unaccepted: false,
            peer_cred: None,
        }
    }

    /// SO_SNDBUF as set (or wmem_default).
    pub(crate) fn sndbuf(&self) -> usize {
        self.sndbuf
    }

    /// SO_PASSCRED as set.
    pub(crate) fn passcred(&self) -> bool {
        self.passcred
    }

    /// SO_PASSPIDFD as set.
    pub(crate) fn passpidfd(&self) -> bool {
        self.passpidfd
    }

    /// Not yet accepted (see the field).
    pub(crate) fn unaccepted(&self) -> bool {
        self.unaccepted
    }

    /// Marks an accepted-side socket as queued (`true`) or accepted.
    pub(crate) fn set_unaccepted(&mut self, on: bool) {
        self.unaccepted = on;
    }

    /// SO_PEERCRED's record.
    pub(crate) fn peer_cred(&self) -> Option<crate::backend::contract::PeerCred> {
        self.peer_cred
    }

    /// Sets SO_PEERCRED's record.
    pub(crate) fn set_peer_cred(&mut self, c: Option<crate::backend::contract::PeerCred>) {
        self.peer_cred = c;
    }

    /// TCP_MAXSEG as set (0: none).
    pub(crate) fn maxseg(&self) -> i32 {
        self.maxseg
    }

    /// TCP_CORK as set.
    pub(crate) fn cork(&self) -> bool {
        self.cork
    }

    /// SO_OOBINLINE as set.
    pub(crate) fn oobinline(&self) -> bool {
        self.oobinline
    }

    /// SO_RCVLOWAT as set.
    pub(crate) fn rcvlowat(&self) -> i32 {
        self.rcvlowat
    }

    /// TCP_INQ as set.
    pub(crate) fn inq(&self) -> bool {
        self.inq
    }

    /// The receive timestamps asked for (as Linux's
    /// `__sock_recv_timestamp` decides: SO_TIMESTAMPING's software stamp
    /// needs SOF_TIMESTAMPING_SOFTWARE, and SOF_TIMESTAMPING_RX_SOFTWARE
    /// unless SOF_TIMESTAMPING_OPT_RX_FILTER is off).
    pub(crate) fn rx_stamps(&self) -> RxStamps {
        let f = self.tsflags;
        RxStamps {
            plain: self.tstamp & TS_RCV != 0,
            ns: self.tstamp & TS_NS != 0,
            software: f & SOF_TIMESTAMPING_SOFTWARE != 0
                && (f & SOF_TIMESTAMPING_RX_SOFTWARE != 0
                    || f & SOF_TIMESTAMPING_OPT_RX_FILTER == 0),
        }
    }

    /// What a backend sees.
    pub fn backend_view(&self) -> SockOpts {
        SockOpts {
            reuseaddr: self.reuseaddr,
            reuseport: self.reuseport,
            v6only: self.v6only,
            freebind: self.freebind || self.nonlocal_bind,
            port_range: self.port_range,
            maxseg: self.maxseg.max(0) as u32,
        }
    }

    /// SO_LINGER on with a zero timeout: close() resets the connection.
    pub fn linger_zero(&self) -> bool {
        self.linger_on && self.linger_secs == 0
    }

    /// Forces a reset on close.
    pub fn set_linger_zero(&mut self) {
        self.linger_on = true;
        self.linger_secs = 0;
    }
}

/// An option value: an int, a timeval or a linger, as bytes Linux would copy.
pub enum OptVal {
    /// An `int`.
    Int(i32),
    /// A `struct timeval` (seconds, microseconds).
    Timeval(i64, i64),
    /// A `struct linger` (on, seconds).
    Linger(i32, i32),
    /// Bytes as the kernel wrote them (an option whose reference is the
    /// kernel: `kernel_opts`, hosted only).
    #[cfg_attr(not(feature = "std"), allow(dead_code))]
    Bytes(alloc::vec::Vec<u8>),
}

impl OptVal {
    /// The most bytes [`OptVal::write`] writes.
    pub fn size(&self) -> usize {
        match self {
            OptVal::Int(_) => 4,
            OptVal::Timeval(..) => 16,
            OptVal::Linger(..) => 8,
            OptVal::Bytes(b) => b.len(),
        }
    }

    /// Writes the value in C layout into `out`, truncating like Linux; returns
    /// the length to report.
    pub fn write(&self, out: &mut [u8]) -> usize {
        let mut buf = [0u8; 16];
        let len = match *self {
            OptVal::Bytes(ref b) => {
                let n = b.len().min(out.len());
                out[..n].copy_from_slice(&b[..n]);
                return n;
            }
            OptVal::Int(v) => {
                buf[..4].copy_from_slice(&v.to_ne_bytes());
                4
            }
            OptVal::Timeval(s, us) => {
                buf[..8].copy_from_slice(&s.to_ne_bytes());
                buf[8..].copy_from_slice(&us.to_ne_bytes());
                16
            }
            OptVal::Linger(on, secs) => {
                buf[..4].copy_from_slice(&on.to_ne_bytes());
                buf[4..8].copy_from_slice(&secs.to_ne_bytes());
                8
            }
        };
        let n = len.min(out.len());
        out[..n].copy_from_slice(&buf[..n]);
        n
    }
}

fn int_arg(val: &[u8]) -> Result<i32, Errno> {
    let b: [u8; 4] = val.get(..4).ok_or(EINVAL)?.try_into().map_err(|_| EINVAL)?;
    Ok(i32::from_ne_bytes(b))
}

fn timeval_arg(val: &[u8]) -> Result<u64, Errno> {
    let s: [u8; 8] = val.get(..8).ok_or(EINVAL)?.try_into().map_err(|_| EINVAL)?;
    let us: [u8; 8] = val
        .get(8..16)
        .ok_or(EINVAL)?
        .try_into()
        .map_err(|_| EINVAL)?;
    let (s, us) = (i64::from_ne_bytes(s), i64::from_ne_bytes(us));
    if !(0..1_000_000).contains(&us) {
        return Err(crate::consts::EDOM);
    }
    if s < 0 {
        // Linux treats a negative timeout as "return at once".
        return Ok(1);
    }
    Ok((s as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(us as u64 * 1000))
}

fn nanos_to_timeval(n: u64) -> OptVal {
    OptVal::Timeval(
        (n / 1_000_000_000) as i64,
        ((n % 1_000_000_000) / 1000) as i64,
    )
}

fn is_tcp(info: &SockInfo) -> bool {
    (info.domain == AF_INET || info.domain == AF_INET6) && info.ty == SOCK_STREAM
}

/// net.ipv4.tcp_fastopen has its client bit (TFO_CLIENT_ENABLE; on by
/// default).
pub(crate) fn tfo_client_enabled() -> bool {
    super::sysctl::TCP_FASTOPEN.get() & 1 != 0
}

/// Errno for an option level that does not apply to this socket.
fn wrong_level(info: &SockInfo) -> Errno {
    if info.domain == AF_UNIX {
        EOPNOTSUPP
    } else {
        ENOPROTOOPT
    }
}

impl Socket {
    /// getsockopt(): the value, or the errno Linux gives (the Rust API's
    /// and the hosted fd moves').
    #[cfg_attr(not(feature = "std"), allow(dead_code))]
    pub fn getsockopt(&self, level: i32, name: i32) -> Result<OptVal, Errno> {
        self.getsockopt_len(level, name, 16)
    }

    /// getsockopt() for a caller's buffer of `cap` bytes (an option the
    /// kernel answers writes what it writes for that length).
    pub fn getsockopt_len(&self, level: i32, name: i32, cap: usize) -> Result<OptVal, Errno> {
        let o = self.ctl.lock().opts;
        let b = |v: bool| Ok(OptVal::Int(v as i32));
        match level {
            SOL_SOCKET => match name {
                SO_ERROR => Ok(OptVal::Int(self.take_error().unwrap_or(0))),
                SO_TYPE => Ok(OptVal::Int(self.info.ty)),
                SO_DOMAIN => Ok(OptVal::Int(self.info.domain)),
                SO_PROTOCOL => Ok(OptVal::Int(match (self.info.domain, self.info.ty) {
                    (AF_INET | AF_INET6, SOCK_STREAM) => IPPROTO_TCP,
                    (AF_INET | AF_INET6, SOCK_DGRAM) => IPPROTO_UDP,
                    // unix_create keeps no protocol: PF_UNIX reads back 0.
                    (AF_UNIX, _) => 0,
                    _ => self.info.protocol,
                })),
                SO_ACCEPTCONN => b(self.phase() == Phase::Listening),
                SO_REUSEADDR => b(o.reuseaddr),
                SO_REUSEPORT => b(o.reuseport),
                SO_KEEPALIVE => b(o.keepalive),
                SO_BROADCAST => b(o.broadcast),
                SO_OOBINLINE => b(o.oobinline),
                SO_DONTROUTE => b(o.dontroute),
                SO_RCVBUF => Ok(OptVal::Int(o.rcvbuf.unwrap_or_else(|| {
                    // TCP's sk_rcvbuf starts at tcp_rmem[1] and grows with
                    // autotuning (here: once the window grew past its
                    // default); UDP's and AF_UNIX's stays rmem_default.
                    if !is_tcp(&self.info) {
                        RMEM_DEFAULT.get()
                    } else if self.rcvbuf() > super::DEFAULT_STREAM_RCVBUF {
                        self.rcvbuf()
                    } else {
                        super::sysctl::TCP_RMEM_DEFAULT.get()
                    }
                }) as i32)),
                SO_SNDBUF => Ok(OptVal::Int(o.sndbuf as i32)),
                SO_RCVLOWAT => Ok(OptVal::Int(o.rcvlowat)),
                SO_SNDLOWAT => Ok(OptVal::Int(1)),
                SO_RCVTIMEO => Ok(nanos_to_timeval(self.rcvtimeo.load(Ordering::Relaxed))),
                SO_SNDTIMEO => Ok(nanos_to_timeval(self.sndtimeo.load(Ordering::Relaxed))),
                SO_LINGER => Ok(OptVal::Linger(o.linger_on as i32, o.linger_secs)),
                SO_PEEK_OFF => Ok(OptVal::Int(self.peek_off.load(Ordering::Relaxed))),
                SO_COOKIE => {
                    if cap < 8 {
                        return Err(EINVAL);
                    }
                    Ok(OptVal::Bytes(self.cookie().to_ne_bytes().to_vec()))
                }
                SO_PEERNAME => {
                    // sk_getsockopt: the buffer may not be larger than the
                    // address; as many bytes as it holds are copied.
                    let a = self.peer_addr()?;
                    let a = a.as_bytes();
                    if a.len() < cap {
                        return Err(EINVAL);
                    }
                    Ok(OptVal::Bytes(a[..cap].to_vec()))
                }
                SO_MEMINFO => self.meminfo(&o, cap),
                SO_INCOMING_CPU => Ok(OptVal::Int(self.incoming_cpu.load(Ordering::Relaxed))),
                SO_TIMESTAMP => b(o.tstamp == TS_RCV),
                SO_TIMESTAMPNS => b(o.tstamp & TS_NS != 0),
                super::scm::SO_PASSCRED if self.info.domain == AF_UNIX => b(o.passcred),
                super::scm::SO_PASSSEC if self.info.domain == AF_UNIX => b(o.passsec),
                super::scm::SO_PASSPIDFD if self.info.domain == AF_UNIX => b(o.passpidfd),
                super::scm::SO_PEERCRED if self.info.domain == AF_UNIX => {
                    Ok(OptVal::Bytes(self.peer_cred_bytes().to_vec()))
                }
                super::scm::SO_PEERPIDFD if self.info.domain == AF_UNIX => self.peer_pidfd(),
                ATTACH_FILTER | DETACH_FILTER | LOCK_FILTER => self.filter_getsockopt(name),
                _ => self.kernel_get(level, name, cap, ENOPROTOOPT),
            },
            IPPROTO_TCP if is_tcp(&self.info) => match name {
                TCP_NODELAY => b(o.nodelay),
                TCP_KEEPIDLE => Ok(OptVal::Int(o.keepidle)),
                TCP_KEEPINTVL => Ok(OptVal::Int(o.keepintvl)),
                TCP_KEEPCNT => Ok(OptVal::Int(o.keepcnt)),
                TCP_MAXSEG => Ok(OptVal::Int(self.tcp_maxseg(o.maxseg))),
                TCP_CORK => b(o.cork),
                TCP_INQ => b(o.inq),
                super::saved_syn::TCP_SAVED_SYN => self
                    .take_saved_syn(cap)
                    .map(OptVal::Bytes)
                    .map_err(|_| EINVAL),
                TCP_INFO => {
                    let info = self.tcp_info(o.maxseg, self.held_bytes());
                    Ok(OptVal::Bytes(info[..cap.min(info.len())].to_vec()))
                }
                TCP_WINDOW_CLAMP if self.phase() == Phase::Connected => {
                    // A connection has a clamp (tcp_select_initial_window):
                    // the one set, else the receive window's largest.
                    match self.kernel_get(level, name, cap, ENOPROTOOPT)? {
                        OptVal::Bytes(b) if b.iter().any(|&x| x != 0) => Ok(OptVal::Bytes(b)),
                        _ => Ok(OptVal::Int(self.rcvbuf().min(i32::MAX as usize) as i32)),
                    }
                }
                _ => self.kernel_get(level, name, cap, ENOPROTOOPT),
            },
            IPPROTO_IPV6 if self.info.domain == AF_INET6 => match name {
                IPV6_V6ONLY => b(o.v6only),
                IPV6_MTU => self.ip_mtu(),
                _ => self.kernel_get(level, name, cap, ENOPROTOOPT),
            },
            IPPROTO_IP if self.info.domain != AF_UNIX && name == IP_MTU => self.ip_mtu(),
            _ => self.kernel_get(level, name, cap, wrong_level(&self.info)),
        }
    }

    /// The errno do_tcp_setsockopt gives an option that the socket's TCP
    /// state forbids (the kernel twin that checks the rest is always
    /// closed, so it cannot tell).
    fn tcp_state_refuses(&self, name: i32, val: &[u8]) -> Option<Errno> {
        let v = int_arg(val).ok()?;
        let phase = self.phase();
        let closed_or_listening = matches!(phase, Phase::Idle | Phase::Listening);
        match name {
            // Only while closed or listening (the NO_COOKIE and CONNECT
            // forms check their value first).
            TCP_FASTOPEN if v >= 0 && !closed_or_listening => Some(EINVAL),
            TCP_FASTOPEN_NO_COOKIE if (0..=1).contains(&v) && !closed_or_listening => Some(EINVAL),
            TCP_FASTOPEN_CONNECT
                if (0..=1).contains(&v) && phase != Phase::Idle && tfo_client_enabled() =>
            {
                Some(EINVAL)
            }
            // tcp_can_repair_sock: closed or established only.
            TCP_REPAIR if phase == Phase::Listening => Some(EPERM),
            // A clamp of 0 only while closed.
            TCP_WINDOW_CLAMP if v == 0 && phase != Phase::Idle => Some(EINVAL),
            _ => None,
        }
    }

    /// IP_MTU, IPV6_MTU: the path's (lo's) MTU once connected.
    fn ip_mtu(&self) -> Result<OptVal, Errno> {
        if self.phase() != Phase::Connected {
            return Err(ENOTCONN);
        }
        Ok(OptVal::Int(
            super::tcp_info::path_mtu(self.info.domain) as i32
        ))
    }

    /// SO_MEMINFO's counters (`SK_MEMINFO_*`): the kernel's for a socket
    /// like this one (its memory accounting has no counterpart here),
    /// with the bytes queued to read and the buffer sizes set here.
    fn meminfo(&self, o: &Options, cap: usize) -> Result<OptVal, Errno> {
        const VARS: usize = 9;
        let mut b = match self.kernel_get(SOL_SOCKET, SO_MEMINFO, VARS * 4, ENOPROTOOPT) {
            Ok(OptVal::Bytes(b)) if b.len() == VARS * 4 => b,
            _ => alloc::vec![0u8; VARS * 4],
        };
        let mut put = |i: usize, v: usize| {
            b[i * 4..i * 4 + 4].copy_from_slice(&(v.min(u32::MAX as usize) as u32).to_ne_bytes())
        };
        put(
            0, // SK_MEMINFO_RMEM_ALLOC
            match self.rx() {
                Rx::Stream(sb) => sb.readable(),
                Rx::Dgram(db) => db.used(),
            },
        );
        if let Some(r) = o.rcvbuf {
            put(1, r); // SK_MEMINFO_RCVBUF
        }
        if o.sndbuf != default_sndbuf(&self.info) {
            put(3, o.sndbuf); // SK_MEMINFO_SNDBUF
        }
        b.truncate(cap);
        Ok(OptVal::Bytes(b))
    }

    /// IP_MTU_DISCOVER (or IPV6_MTU_DISCOVER) at DO or PROBE, or
    /// IPV6_DONTFRAG on: a datagram over the path MTU is EMSGSIZE rather
    /// than fragmented.
    pub(crate) fn dont_fragment(&self) -> bool {
        #[cfg(feature = "std")]
        {
            let c = self.ctl.lock();
            let int = |level, name| super::kernel_opts::int_value(&c.kernel_opts, level, name);
            let pmtu_do = |v: Option<i32>| matches!(v, Some(IP_PMTUDISC_DO | IP_PMTUDISC_PROBE));
            if self.info.domain == AF_INET {
                pmtu_do(int(IPPROTO_IP, IP_MTU_DISCOVER))
            } else {
                pmtu_do(int(IPPROTO_IPV6, IPV6_MTU_DISCOVER))
                    || int(IPPROTO_IPV6, IPV6_DONTFRAG).is_some_and(|v| v != 0)
            }
        }
        #[cfg(not(feature = "std"))]
        false
    }

    /// Calls `f` with each setting the kernel keeps for this socket, in
    /// the order they were made (to move them to a kernel socket).
    #[cfg(feature = "std")]
    pub(crate) fn replay_kernel_opts(&self, mut f: impl FnMut(i32, i32, &[u8])) {
        let (record, opts) = {
            let c = self.ctl.lock();
            (c.kernel_opts.clone(), c.opts)
        };
        for o in &record {
            f(o.level, o.name, &o.val);
        }
        if self.info.domain == AF_UNIX {
            self.replay_unix_opts(&opts, &mut f);
        }
        self.replay_filter(f);
    }

    /// The AF_UNIX settings the kernel would keep (a socket still unrouted
    /// under the launcher's rules is the library's until it moves): the
    /// buffer sizes as set, asked again halved (the kernel doubles them
    /// back), with the FORCE form past net.core's maxima, which takes as
    /// far as the caller's privilege goes; SO_PEEK_OFF as set.
    #[cfg(feature = "std")]
    fn replay_unix_opts(&self, o: &Options, f: &mut impl FnMut(i32, i32, &[u8])) {
        let sizes = [
            (
                Some(o.sndbuf).filter(|&v| v != default_sndbuf(&self.info)),
                SO_SNDBUF,
                SO_SNDBUFFORCE,
                false,
            ),
            (o.rcvbuf, SO_RCVBUF, SO_RCVBUFFORCE, true),
        ];
        for (set, name, force, rcv) in sizes {
            let Some(v) = set else { continue };
            let half = (v / 2).min(i32::MAX as usize) as i32;
            f(SOL_SOCKET, name, &half.to_ne_bytes());
            if half as usize > buf_max(rcv) {
                f(SOL_SOCKET, force, &half.to_ne_bytes());
            }
        }
        let peek = self.peek_off.load(Ordering::Relaxed);
        if peek != -1 {
            f(SOL_SOCKET, SO_PEEK_OFF, &peek.to_ne_bytes());
        }
    }

    /// An option without a behaviour here: the kernel's value for it
    /// (`kernel_opts`), or `otherwise` where the kernel is not the
    /// reference.
    fn kernel_get(
        &self,
        level: i32,
        name: i32,
        cap: usize,
        otherwise: Errno,
    ) -> Result<OptVal, Errno> {
        #[cfg(feature = "std")]
        if super::kernel_opts::applies(&self.info, level, name) {
            let record = self.ctl.lock().kernel_opts.clone();
            return super::kernel_opts::get(&self.info, &record, level, name, cap)
                .map(OptVal::Bytes);
        }
        let _ = (level, name, cap);
        Err(otherwise)
    }

    /// As [`Socket::kernel_get`], for setsockopt: the kernel checks the
    /// value and the socket records it.
    #[allow(clippy::type_complexity)]
    fn kernel_set(
        &self,
        level: i32,
        name: i32,
        val: &[u8],
        otherwise: Errno,
    ) -> Result<alloc::boxed::Box<dyn FnOnce(&Socket) -> Result<(), Errno>>, Errno> {
        #[cfg(feature = "std")]
        if super::kernel_opts::applies(&self.info, level, name) {
            // The kernel checks it now, before the backend sees it.
            let record = self.ctl.lock().kernel_opts.clone();
            if let Err(e) = super::kernel_opts::check(&self.info, &record, level, name, val) {
                // A refused source filter change may still have switched
                // the filter's mode, as Linux's does.
                super::mcast::refused(self, level, name, val, e);
                return Err(e);
            }
            let val = val.to_vec();
            return Ok(alloc::boxed::Box::new(move |s: &Socket| {
                super::kernel_opts::record(s, level, name, val);
                Ok(())
            }));
        }
        let _ = (level, name, val);
        Err(otherwise)
    }

    /// Keeps `F_RCVTSTAMP` (stream arrivals stamped) and `F_TXSTAMP`
    /// (transmit stamps queued) with the options.
    fn follow_rx_stamps(&self, o: &Options) {
        let st = o.rx_stamps();
        for (on, flag) in [
            (st.plain || st.software, super::F_RCVTSTAMP),
            (
                o.tsflags & SOF_TIMESTAMPING_TX_SOFTWARE != 0,
                super::F_TXSTAMP,
            ),
        ] {
            if on {
                self.set(flag);
            } else {
                self.clear(flag);
            }
        }
    }

    /// SO_TIMESTAMPING's flags.
    pub(crate) fn timestamping_flags(&self) -> u32 {
        self.ctl.lock().opts.tsflags
    }

    pub(super) fn rcvbuf(&self) -> usize {
        match self.rx() {
            Rx::Stream(sb) => sb.capacity(),
            Rx::Dgram(db) => db.capacity(),
        }
    }

    /// setsockopt(): stores the value, after the backend's hook agreed.
    pub fn setsockopt(&self, level: i32, name: i32, val: &[u8]) -> Result<(), Errno> {
        // Validate first, so a backend never sees a value Linux would refuse.
        let apply = self.check_opt(level, name, val)?;
        if let Some(b) = self.binding() {
            b.backend.setsockopt(self.sref(b), level, name, val)?;
        }
        apply(self)?;
        if (level == SOL_SOCKET && (name == SO_SNDBUF || name == SO_SNDBUFFORCE))
            || (level == IPPROTO_TCP && name == 25)
        {
            // SO_SNDBUF or TCP_NOTSENT_LOWAT (25) moved the send queue's
            // limits: a sender waiting for room, and pollers, look again
            // (`sndq`).
            self.tx_bump.fetch_add(1, Ordering::AcqRel);
            self.wait.notify(POLLOUT);
            if let Some((sh, r)) = self.shared() {
                // One blocked on a shared socket's full ring, too.
                sh.kick_writers(r);
            }
        }
        if self.keeps_records() && level == SOL_SOCKET {
            // SO_SNDBUF(FORCE) bounds its records (`records`).
            let sndbuf = self.ctl.lock().opts.sndbuf();
            self.records.sndbuf_is(sndbuf);
        }
        Ok(())
    }

    #[allow(clippy::type_complexity)]
    fn check_opt(
        &self,
        level: i32,
        name: i32,
        val: &[u8],
    ) -> Result<alloc::boxed::Box<dyn FnOnce(&Socket) -> Result<(), Errno>>, Errno> {
        use alloc::boxed::Box;
        let flag = |f: fn(&mut Options, bool)| -> Result<Box<dyn FnOnce(&Socket) -> Result<(), Errno>>, Errno> {
            let v = int_arg(val)? != 0;
            Ok(Box::new(move |s: &Socket| {
                f(&mut s.ctl.lock().opts, v);
                Ok(())
            }))
        };
        let int = |f: fn(&mut Options, i32)| -> Result<Box<dyn FnOnce(&Socket) -> Result<(), Errno>>, Errno> {
            let v = int_arg(val)?;
            Ok(Box::new(move |s: &Socket| {
                f(&mut s.ctl.lock().opts, v);
                Ok(())
            }))
        };
        match level {
            SOL_SOCKET => match name {
                SO_REUSEADDR => flag(|o, v| o.reuseaddr = v),
                SO_REUSEPORT => flag(|o, v| o.reuseport = v),
                SO_KEEPALIVE => flag(|o, v| o.keepalive = v),
                SO_BROADCAST => flag(|o, v| o.broadcast = v),
                SO_OOBINLINE => flag(|o, v| o.oobinline = v),
                SO_DONTROUTE => flag(|o, v| o.dontroute = v),
                // The kernel keeps it; UDP's receives report the drops.
                SO_RXQ_OVFL if self.info.ty == SOCK_DGRAM && self.info.domain != AF_UNIX => {
                    self.kernel_checked(level, name, val, |s, v| s.note_rxq_ovfl(v != 0))
                }
                super::scm::SO_PASSCRED if self.info.domain == AF_UNIX => {
                    flag(|o, v| o.passcred = v)
                }
                super::scm::SO_PASSSEC if self.info.domain == AF_UNIX => flag(|o, v| o.passsec = v),
                super::scm::SO_PASSPIDFD if self.info.domain == AF_UNIX => {
                    flag(|o, v| o.passpidfd = v)
                }
                SO_RCVLOWAT => {
                    // sk_setsockopt: negative is INT_MAX, 0 is 1; TCP's
                    // tcp_set_rcvlowat caps it at half the receive buffer
                    // (SO_RCVBUF's when set, else tcp_rmem[2]).
                    let v = int_arg(val)?;
                    let v = if v < 0 { i32::MAX } else { v };
                    let v = if is_tcp(&self.info) {
                        let cap = if self.has(F_RCVBUF_SET) {
                            self.ctl.lock().opts.rcvbuf.unwrap_or(0) / 2
                        } else {
                            tcp_rmem_max() / 2
                        };
                        v.min(cap.min(i32::MAX as usize) as i32)
                    } else {
                        v
                    };
                    Ok(Box::new(move |s: &Socket| {
                        s.ctl.lock().opts.rcvlowat = v.max(1);
                        s.set_rcv_lowat(v.max(1));
                        Ok(())
                    }))
                }
                SO_SNDLOWAT => Err(ENOPROTOOPT),
                SO_SNDBUF => int(|o, v| o.sndbuf = linux_buf_size(v, buf_max(false), SNDBUF_MIN)),
                SO_RCVBUF | SO_RCVBUFFORCE | SO_SNDBUFFORCE if self.info.domain == AF_UNIX => {
                    // Recorded only: AF_UNIX has no receive buffer of its
                    // own to size (a stream's writer fills its peer's ring,
                    // a datagram's size is checked against SO_SNDBUF).
                    let v = int_arg(val)?;
                    let force = name != SO_RCVBUF;
                    if force {
                        kernel_allows(name, val)?;
                    }
                    let (v, max) = match (force, name == SO_SNDBUFFORCE) {
                        (true, _) => (v.max(0), i32::MAX as usize / 2),
                        (false, _) => (v, buf_max(true)),
                    };
                    let snd = name == SO_SNDBUFFORCE;
                    let size = linux_buf_size(v, max, if snd { SNDBUF_MIN } else { RCVBUF_MIN });
                    Ok(Box::new(move |s: &Socket| {
                        let mut c = s.ctl.lock();
                        if snd {
                            c.opts.sndbuf = size;
                        } else {
                            c.opts.rcvbuf = Some(size);
                        }
                        Ok(())
                    }))
                }
                SO_RCVBUF | SO_RCVBUFFORCE | SO_SNDBUFFORCE => {
                    let v = int_arg(val)?;
                    let force = name != SO_RCVBUF;
                    // The *FORCE forms need CAP_NET_ADMIN (the kernel twin
                    // says EPERM without it) and pass rmem_max/wmem_max;
                    // a negative one counts as 0 (sk_setsockopt).
                    let record = if force {
                        Some(self.kernel_set(level, name, val, ENOPROTOOPT)?)
                    } else {
                        None
                    };
                    let (v, max) = if force {
                        (v.max(0), i32::MAX as usize / 2)
                    } else {
                        (v, buf_max(true))
                    };
                    if name == SO_SNDBUFFORCE {
                        let size = linux_buf_size(v, max, SNDBUF_MIN);
                        return Ok(Box::new(move |s: &Socket| {
                            if let Some(r) = record {
                                r(s)?;
                            }
                            s.ctl.lock().opts.sndbuf = size;
                            Ok(())
                        }));
                    }
                    let cap = linux_buf_size(v, max, RCVBUF_MIN);
                    Ok(Box::new(move |s: &Socket| {
                        if let Some(r) = record {
                            r(s)?;
                        }
                        s.ctl.lock().opts.rcvbuf = Some(cap);
                        if let Some((sh, r)) = s.shared() {
                            sh.set_rcvbuf(r, cap);
                        }
                        s.set(F_RCVBUF_SET | F_RCVBUF_PENDING);
                        let _g = s.rx_lock.lock();
                        s.follow_rcvbuf(true);
                        drop(_g);
                        s.advertise_window_now();
                        Ok(())
                    }))
                }
                SO_RCVTIMEO | SO_SNDTIMEO => {
                    let n = timeval_arg(val)?;
                    Ok(Box::new(move |s: &Socket| {
                        let t = if name == SO_RCVTIMEO {
                            &s.rcvtimeo
                        } else {
                            &s.sndtimeo
                        };
                        t.store(n, Ordering::Relaxed);
                        Ok(())
                    }))
                }
                SO_LINGER => {
                    let on = int_arg(val)?;
                    let secs = int_arg(val.get(4..).ok_or(EINVAL)?)?;
                    Ok(Box::new(move |s: &Socket| {
                        let mut c = s.ctl.lock();
                        c.opts.linger_on = on != 0;
                        c.opts.linger_secs = secs.max(0);
                        Ok(())
                    }))
                }
                SO_INCOMING_CPU => self.kernel_checked(level, name, val, |s, v| {
                    s.incoming_cpu.store(v, Ordering::Relaxed)
                }),
                // The receive paths move it.
                // unix_set_peek_off takes any value; a negative one reads
                // back as set and peeks from the start.
                SO_PEEK_OFF if self.info.domain == AF_UNIX => {
                    let v = int_arg(val)?;
                    Ok(Box::new(move |s: &Socket| {
                        s.peek_off.store(v, Ordering::Relaxed);
                        Ok(())
                    }))
                }
                SO_PEEK_OFF => self.kernel_checked(level, name, val, |s, v| {
                    s.peek_off.store(v.max(-1), Ordering::Relaxed)
                }),
                SO_TIMESTAMP | SO_TIMESTAMPNS => {
                    // sock_set_timestamp: on sets RCVTSTAMP (and RCVTSTAMPNS
                    // for the NS form, clears it for the other); off
                    // clears both.
                    let on = int_arg(val)? != 0;
                    let ts = match (on, name) {
                        (false, _) => 0,
                        (true, SO_TIMESTAMPNS) => TS_RCV | TS_NS,
                        (true, _) => TS_RCV,
                    };
                    Ok(Box::new(move |s: &Socket| {
                        let mut c = s.ctl.lock();
                        c.opts.tstamp = ts;
                        s.follow_rx_stamps(&c.opts);
                        Ok(())
                    }))
                }
                SO_TIMESTAMPING => self.kernel_checked(level, name, val, |s, flags| {
                    let mut c = s.ctl.lock();
                    c.opts.tsflags = flags as u32;
                    s.follow_rx_stamps(&c.opts);
                }),
                SO_ERROR | SO_TYPE | SO_DOMAIN | SO_PROTOCOL | SO_ACCEPTCONN => Err(ENOPROTOOPT),
                ATTACH_FILTER | DETACH_FILTER | LOCK_FILTER => self.filter_setsockopt(name, val),
                _ => self.kernel_set(level, name, val, ENOPROTOOPT),
            },
            IPPROTO_TCP if is_tcp(&self.info) => match name {
                TCP_NODELAY => {
                    let on = int_arg(val)? != 0;
                    Ok(Box::new(move |s: &Socket| {
                        s.ctl.lock().opts.nodelay = on;
                        if on {
                            // Linux pushes what is queued (corked or not).
                            s.push_held();
                        }
                        Ok(())
                    }))
                }
                TCP_CORK => {
                    let on = int_arg(val)? != 0;
                    Ok(Box::new(move |s: &Socket| {
                        s.ctl.lock().opts.cork = on;
                        s.set_cork(on);
                        Ok(())
                    }))
                }
                TCP_INQ => {
                    if !(0..=1).contains(&int_arg(val)?) {
                        return Err(EINVAL);
                    }
                    flag(|o, v| o.inq = v)
                }
                TCP_DEFER_ACCEPT => {
                    self.kernel_checked(level, name, val, |s, v| s.set_defer_accept(v))
                }
                TCP_MAXSEG => {
                    let v = int_arg(val)?;
                    if v != 0 && !super::tcp_info::MSS_SETTABLE.contains(&v) {
                        return Err(EINVAL);
                    }
                    int(|o, v| o.maxseg = v)
                }
                TCP_KEEPIDLE | TCP_KEEPINTVL | TCP_KEEPCNT => {
                    let v = int_arg(val)?;
                    // MAX_TCP_KEEPIDLE, MAX_TCP_KEEPINTVL, MAX_TCP_KEEPCNT.
                    let max = if name == TCP_KEEPCNT { 127 } else { 32767 };
                    if !(1..=max).contains(&v) {
                        return Err(EINVAL);
                    }
                    Ok(Box::new(move |s: &Socket| {
                        let mut c = s.ctl.lock();
                        match name {
                            TCP_KEEPIDLE => c.opts.keepidle = v,
                            TCP_KEEPINTVL => c.opts.keepintvl = v,
                            _ => c.opts.keepcnt = v,
                        }
                        Ok(())
                    }))
                }
                _ => {
                    if let Some(e) = self.tcp_state_refuses(name, val) {
                        return Err(e);
                    }
                    self.kernel_set(level, name, val, ENOPROTOOPT)
                }
            },
            IPPROTO_UDP if self.info.ty == SOCK_DGRAM && self.info.domain != AF_UNIX => {
                match name {
                    UDP_CORK => self.kernel_checked(level, name, val, |s, v| s.set_cork(v != 0)),
                    UDP_SEGMENT => self.kernel_checked(level, name, val, |s, v| {
                        s.udp_gso.store(v.max(0) as u32, Ordering::Relaxed)
                    }),
                    _ => self.kernel_set(level, name, val, ENOPROTOOPT),
                }
            }
            IPPROTO_IP | IPPROTO_IPV6
                if self.info.ty == SOCK_DGRAM
                    && (self.info.domain == AF_INET6
                        || (self.info.domain == AF_INET && level == IPPROTO_IP))
                    && super::dgram_attrs::is_attr_opt(level, name) =>
            {
                // Cached for the datagram paths (`dgram_attrs`), once the
                // kernel twin took it; a value shorter than an int is a
                // byte (do_ip_setsockopt).
                let record = self.kernel_set(level, name, val, ENOPROTOOPT)?;
                let v = match val.len() {
                    0 => 0,
                    1..=3 => i32::from(val[0]),
                    _ => int_arg(val)?,
                };
                Ok(alloc::boxed::Box::new(move |s: &Socket| {
                    record(s)?;
                    s.note_attr_opt(level, name, v);
                    Ok(())
                }))
            }
            IPPROTO_IP
                if name == IP_LOCAL_PORT_RANGE
                    && matches!(self.info.domain, AF_INET | AF_INET6) =>
            {
                // do_ip_setsockopt's checks; the backends pick ephemeral
                // ports from it (`SockOpts::ephemeral_range`), and the
                // kernel twin, where there is one, answers getsockopt.
                let v = u32::from_ne_bytes(val.try_into().map_err(|_| EINVAL)?);
                let (lo, hi) = (v as u16, (v >> 16) as u16);
                if lo != 0 && hi != 0 && lo > hi {
                    return Err(EINVAL);
                }
                let record = self.kernel_set(level, name, val, ENOPROTOOPT).ok();
                Ok(alloc::boxed::Box::new(move |s: &Socket| {
                    if let Some(record) = record {
                        record(s)?;
                    }
                    s.ctl.lock().opts.port_range = v;
                    Ok(())
                }))
            }
            IPPROTO_IPV6 if self.info.domain == AF_INET6 => match name {
                IPV6_V6ONLY => {
                    if self.has(super::F_BOUND) {
                        return Err(EINVAL);
                    }
                    flag(|o, v| o.v6only = v)
                }
                _ => self.kernel_set(level, name, val, ENOPROTOOPT),
            },
            _ => self.kernel_set(level, name, val, wrong_level(&self.info)),
        }
    }

    /// An option the kernel checks and keeps (for getsockopt and for a move
    /// to a kernel socket) and this socket acts on: once the kernel twin
    /// took the value, `act` applies its int here.
    #[allow(clippy::type_complexity)]
    fn kernel_checked(
        &self,
        level: i32,
        name: i32,
        val: &[u8],
        act: fn(&Socket, i32),
    ) -> Result<alloc::boxed::Box<dyn FnOnce(&Socket) -> Result<(), Errno>>, Errno> {
        let record = self.kernel_set(level, name, val, ENOPROTOOPT)?;
        let v = int_arg(val)?;
        Ok(alloc::boxed::Box::new(move |s: &Socket| {
            record(s)?;
            act(s, v);
            Ok(())
        }))
    }

    /// Brings the receive buffer to the SO_RCVBUF last set, as far as it
    /// may go; clears `F_RCVBUF_PENDING` once it is there. Linux applies a
    /// new size to future data only and never fails the call, while here
    /// the size is the ring's: it cannot drop below what is buffered, and a
    /// stream window already granted to the sender is never taken back (as
    /// TCP never shrinks its advertised window). So `setting` (the
    /// setsockopt itself) shrinks as far as that allows, and the rest waits
    /// until reads have made room for the whole shrink: the read paths call
    /// this while the flag is set, and resize only then, not a step per
    /// read. Meanwhile a stream's window is not advertised further (see
    /// `Socket::advertise_window`), so the sender uses up what it was
    /// granted and the shrink completes; it cannot stall, as a sender
    /// waits only after sending all it was granted, and reading that brings
    /// the grant within `want`. Returns whether the buffer is at the size
    /// set. Called with `rx_lock` held.
    pub(crate) fn follow_rcvbuf(&self, setting: bool) -> bool {
        let Some(want) = self.ctl.lock().opts.rcvbuf else {
            return false;
        };
        let there = match self.rx() {
            Rx::Stream(sb) => {
                let granted = self
                    .advertised
                    .load(Ordering::Relaxed)
                    .wrapping_sub(sb.read_offset());
                // Beyond u32: the difference wrapped, nothing is granted
                // past the reads.
                let floor = if granted > u64::from(u32::MAX) {
                    0
                } else {
                    granted as usize
                };
                let cap = want.max(floor);
                let mut refused = false;
                if (setting || cap == want) && sb.capacity() != cap {
                    refused = sb.set_capacity(cap).is_err();
                }
                // Refused at `want` (no memory for the new ring; nothing
                // buffered exceeds the grant): keep the ring as it is
                // rather than hold the window shut.
                sb.capacity() == want || (refused && cap == want)
            }
            // Refused while more than `want` is buffered: tried again after
            // the next read.
            Rx::Dgram(db) => db.capacity() == want || db.set_capacity(want).is_ok(),
        };
        if there {
            self.clear(F_RCVBUF_PENDING);
        }
        there
    }

    /// Tells the backend the window now, whatever it moved by.
    pub(crate) fn advertise_window_now(&self) {
        if let Rx::Stream(sb) = self.rx() {
            let end = sb.window_end();
            self.advertised.store(end, Ordering::Relaxed);
            if let Some(b) = self.binding() {
                b.backend.window(self.sref(b), end);
            }
        }
    }
}

impl Socket {
    /// SO_PEERPIDFD: a new pidfd of the peer's process (ENODATA without a
    /// peer, as Linux); the hosted platform only.
    fn peer_pidfd(&self) -> Result<OptVal, Errno> {
        let Some(c) = self.ctl.lock().opts.peer_cred else {
            return Err(super::scm::ENODATA);
        };
        #[cfg(feature = "std")]
        {
            crate::platform::scm::pidfd_open(c.pid).map(OptVal::Int)
        }
        #[cfg(not(feature = "std"))]
        {
            let _ = c;
            Err(ENOPROTOOPT)
        }
    }
}

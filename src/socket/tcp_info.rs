//! What TCP would say about a user-space connection: `TCP_INFO` and
//! `TCP_MAXSEG`, from the socket's own state and counters.
//!
//! A user-space connection has no segments on a wire, but it has their
//! counterparts: a fragment the backend carries is a segment (one per
//! send, or per corked flush), bytes handed to the backend are sent and,
//! since a backend either delivers them or resets the connection, acked.
//! The path is the loopback interface's: its MTU (`/sys/class/net/lo/mtu`),
//! the IP and TCP headers of the family, and the timestamp option when the
//! machine's `tcp_timestamps` has it on, give the MSS Linux computes. Where
//! the platform publishes no kernel numbers (no_std), Linux's defaults
//! stand in.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use super::{Phase, Rx, Socket, F_FIN_SENT, F_RESET};
use crate::consts::*;
use crate::platform;

/// The bytes of `struct tcp_info` this library fills: Linux 6.18's length
/// (older kernels copy fewer; a caller gets at most its own buffer's).
pub(crate) const TCP_INFO_LEN: usize = 280;

/// TCP_MSS_DEFAULT: the MSS of a socket that never connected.
const MSS_DEFAULT: i32 = 536;
/// TCP_MIN_MSS and MAX_TCP_WINDOW: the range of a TCP_MAXSEG setting.
pub(crate) const MSS_SETTABLE: core::ops::RangeInclusive<i32> = 88..=32767;
/// TCP_RTO_MIN, microseconds.
const RTO_MIN_US: u32 = 200_000;
/// TCP_DELACK_MIN, microseconds (what `tcpi_ato` reads on a quiet
/// connection).
const ATO_US: u32 = 40_000;
/// TCP_INIT_CWND.
const INIT_CWND: u32 = 10;
/// TCP_INFINITE_SSTHRESH.
const INFINITE_SSTHRESH: u32 = 0x7fff_ffff;

// Linux's TCP states (include/net/tcp_states.h).
const ST_ESTABLISHED: u8 = 1;
const ST_SYN_SENT: u8 = 2;
const ST_FIN_WAIT2: u8 = 5;
pub(super) const ST_CLOSE: u8 = 7;
const ST_CLOSE_WAIT: u8 = 8;
const ST_LISTEN: u8 = 10;

// Offsets of the fields filled in `struct tcp_info`.
const RTO: usize = 8;
const ATO: usize = 12;
const SND_MSS: usize = 16;
const RCV_MSS: usize = 20;
const UNACKED: usize = 24;
const SACKED: usize = 28;
const PMTU: usize = 60;
const RCV_SSTHRESH: usize = 64;
const RTT: usize = 68;
const RTTVAR: usize = 72;
const SND_SSTHRESH: usize = 76;
const SND_CWND: usize = 80;
const ADVMSS: usize = 84;
const REORDERING: usize = 88;
const RCV_SPACE: usize = 96;
const PACING_RATE: usize = 104;
const MAX_PACING_RATE: usize = 112;
const BYTES_ACKED: usize = 120;
const BYTES_RECEIVED: usize = 128;
const SEGS_OUT: usize = 136;
const SEGS_IN: usize = 140;
const NOTSENT_BYTES: usize = 144;
const MIN_RTT: usize = 148;
const DATA_SEGS_IN: usize = 152;
const DATA_SEGS_OUT: usize = 156;
const DELIVERED: usize = 192;
const BYTES_SENT: usize = 200;
const SND_WND: usize = 228;
const RCV_WND: usize = 232;

// tcpi_options bits.
const OPT_TIMESTAMPS: u8 = 1;
const OPT_SACK: u8 = 2;
const OPT_WSCALE: u8 = 4;

/// The counters `TCP_INFO` reads that the Socket Buffer does not keep.
pub(crate) struct TcpCounters {
    /// Fragments with data handed to the backend.
    data_segs_out: AtomicU32,
    /// This end called connect() (it counts its SYN as acked data).
    active: AtomicBool,
    /// When the handshake began (realtime ns), until it completed.
    started_ns: AtomicU64,
    /// The handshake's round trip, microseconds (0: not measured).
    rtt_us: AtomicU32,
    /// When stream data last arrived, wall-clock ns, while a receive
    /// timestamp option is on (`F_RCVTSTAMP`; 0: none).
    arrival_ns: AtomicU64,
    /// A shared socket (`shared.rs`): the stream bytes this process saw
    /// arrive (read here or found waiting), and how many arrivals brought
    /// them (its data segments in: the bytes one publish put in the ring,
    /// or several that came together, as GRO merges segments).
    rx_seen: AtomicU64,
    /// A shared socket: the stream bytes this process read.
    rx_read: AtomicU64,
    /// A shared socket: arrivals of new bytes seen (`rx_seen`).
    rx_arrivals: AtomicU32,
}

impl TcpCounters {
    pub(crate) const fn new() -> TcpCounters {
        TcpCounters {
            data_segs_out: AtomicU32::new(0),
            active: AtomicBool::new(false),
            started_ns: AtomicU64::new(0),
            rtt_us: AtomicU32::new(0),
            arrival_ns: AtomicU64::new(0),
            rx_seen: AtomicU64::new(0),
            rx_read: AtomicU64::new(0),
            rx_arrivals: AtomicU32::new(0),
        }
    }

    /// A new connection on the same socket (connect(AF_UNSPEC), then
    /// connect()): every counter back to a new socket's.
    pub(crate) fn restart(&self) {
        self.data_segs_out.store(0, Ordering::Relaxed);
        self.active.store(false, Ordering::Relaxed);
        self.started_ns.store(0, Ordering::Relaxed);
        self.rtt_us.store(0, Ordering::Relaxed);
        self.arrival_ns.store(0, Ordering::Relaxed);
        self.rx_seen.store(0, Ordering::Relaxed);
        self.rx_read.store(0, Ordering::Relaxed);
        self.rx_arrivals.store(0, Ordering::Relaxed);
    }

    /// A shared socket: `inq` bytes wait unread now (or, with `read`,
    /// `read` more were just read); bytes past those seen before are a new
    /// arrival, and the result says whether they were.
    pub(crate) fn shared_arrived(&self, inq: u64, read: u64) -> bool {
        let total = if read > 0 {
            self.rx_read.fetch_add(read, Ordering::Relaxed) + read
        } else {
            self.rx_read.load(Ordering::Relaxed) + inq
        };
        let before = self.rx_seen.fetch_max(total, Ordering::Relaxed);
        if total > before {
            self.rx_arrivals.fetch_add(1, Ordering::Relaxed);
        }
        total > before
    }

    /// A shared socket: arrivals and bytes seen (`shared_arrived`).
    pub(crate) fn shared_rx(&self) -> (u32, u64) {
        (
            self.rx_arrivals.load(Ordering::Relaxed),
            self.rx_seen.load(Ordering::Relaxed),
        )
    }

    /// A fragment with data went to the backend.
    #[inline]
    pub(crate) fn sent_segment(&self) {
        self.data_segs_out.fetch_add(1, Ordering::Relaxed);
    }

    /// Stream data arrived (recorded for SO_TIMESTAMP*, as the kernel
    /// stamps each segment it queues).
    pub(crate) fn arrived_now(&self) {
        self.arrival_ns
            .store(platform::realtime_ns(), Ordering::Relaxed);
    }

    /// When stream data last arrived (0: not recorded).
    pub(crate) fn last_arrival_ns(&self) -> u64 {
        self.arrival_ns.load(Ordering::Relaxed)
    }

    /// A handshake begins: connect() (`active`) or a connection announced
    /// to a listener.
    pub(crate) fn handshake_started(&self, active: bool) {
        self.active.store(active, Ordering::Relaxed);
        self.started_ns
            .store(platform::realtime_ns(), Ordering::Relaxed);
    }

    /// The handshake completed: its duration is the first round trip
    /// measured (at least 1 µs: the kernel's `tcpi_rtt` is never 0 once a
    /// segment was acked).
    pub(crate) fn handshake_done(&self) {
        let t0 = self.started_ns.swap(0, Ordering::Relaxed);
        let us = platform::realtime_ns().saturating_sub(t0) / 1000;
        let us = if t0 == 0 { 1 } else { us.clamp(1, 1_000_000) };
        self.rtt_us.store(us as u32, Ordering::Relaxed);
    }
}

/// The path MTU of a loopback connection: lo's MTU, which an IPv4 packet
/// cannot exceed past 65535 bytes (IP_MTU, IPV6_MTU).
pub(crate) fn path_mtu(domain: i32) -> u32 {
    // Read once: the send path asks for every datagram.
    let mtu = u32::try_from(super::sysctl::LO_MTU.get())
        .ok()
        .filter(|&v| v >= 1280)
        .unwrap_or(65536);
    if domain == AF_INET {
        mtu.min(65535)
    } else {
        mtu
    }
}

/// IP and TCP header bytes of the family.
fn headers(domain: i32) -> u32 {
    if domain == AF_INET {
        20 + 20
    } else {
        40 + 20
    }
}

/// Bytes of each segment the timestamp option takes.
fn option_bytes() -> u32 {
    if super::sysctl::TCP_TIMESTAMPS.on() {
        12
    } else {
        0
    }
}

impl Socket {
    /// TCP_MAXSEG as Linux reads it: the value set while the socket is
    /// closed or listening (else 536 until it connects); on a connection,
    /// the MSS in use: the path's, or the one set or the one the peer
    /// advertised (`Backend::peer_maxseg`) if smaller, less the timestamp
    /// option (Linux's `tcp_sync_mss` with `mss_clamp`).
    pub(crate) fn tcp_maxseg(&self, user_mss: i32) -> i32 {
        match self.phase() {
            Phase::Connected => {
                let path = path_mtu(self.info.domain) - headers(self.info.domain);
                let peer = self
                    .binding()
                    .map_or(0, |b| b.backend.peer_maxseg(self.sref(b)));
                let clamp = [user_mss.max(0) as u32, peer]
                    .into_iter()
                    .filter(|&v| v > 0)
                    .fold(path, u32::min);
                clamp.saturating_sub(option_bytes()) as i32
            }
            _ if user_mss > 0 => user_mss,
            _ => MSS_DEFAULT,
        }
    }

    pub(super) fn tcp_state(&self) -> u8 {
        let f = self.flags();
        match self.phase() {
            Phase::Idle => ST_CLOSE,
            Phase::Listening => ST_LISTEN,
            Phase::Connecting => ST_SYN_SENT,
            Phase::Connected => {
                let fin_in = match self.shared_fin_received() {
                    Some(fin) => fin,
                    None => matches!(self.rx(), Rx::Stream(sb) if sb.fin_received()),
                };
                match (f.has(F_RESET), f.has(F_FIN_SENT), fin_in) {
                    (true, ..) | (false, true, true) => ST_CLOSE,
                    (false, true, false) => ST_FIN_WAIT2,
                    (false, false, true) => ST_CLOSE_WAIT,
                    (false, false, false) => ST_ESTABLISHED,
                }
            }
        }
    }

    /// `struct tcp_info` in the kernel's layout (`include/uapi/linux/tcp.h`).
    /// `held` is the bytes corked in the send path (`tcpi_notsent_bytes`).
    pub(crate) fn tcp_info(&self, user_mss: i32, held: usize) -> [u8; TCP_INFO_LEN] {
        let mut b = [0u8; TCP_INFO_LEN];
        let mut put32 = |off: usize, v: u32| b[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        let state = self.tcp_state();
        let connected = self.phase() == Phase::Connected;
        // Deferred connections (TCP_DEFER_ACCEPT) are not yet in Linux's
        // accept queue.
        let (backlog, queued) = {
            let c = self.ctl.lock();
            (c.backlog, self.accept_len.load(Ordering::Acquire))
        };
        let queued = match state {
            ST_LISTEN => self.shared_waiting().unwrap_or(queued),
            _ => queued,
        };
        let rtt = self.tcp.rtt_us.load(Ordering::Relaxed);
        let mss = self.tcp_maxseg(user_mss) as u32;
        let pmtu = path_mtu(self.info.domain);
        // The MSS this end advertised: the path's, or the one set if
        // smaller (tcp_advertise_mss), less the timestamp option.
        let path_mss = pmtu - headers(self.info.domain);
        let advmss = if user_mss > 0 {
            path_mss.min(user_mss as u32)
        } else {
            path_mss
        }
        .saturating_sub(option_bytes());
        let (segs_in, bytes_in, rcv_wnd) = match (self.shared_counts(), self.rx()) {
            (Some(counts), _) => counts,
            (None, Rx::Stream(sb)) => {
                let st = sb.stats();
                let wnd = sb.window_end().saturating_sub(sb.read_offset());
                (st.fragments as u32, st.bytes_in, wnd)
            }
            (None, Rx::Dgram(_)) => (0, 0, 0),
        };
        let sent = self.tx_next.load(Ordering::Acquire);
        let segs_out = self.tcp.data_segs_out.load(Ordering::Relaxed);
        let snd_wnd = self
            .shared_snd_wnd()
            .unwrap_or_else(|| self.tx_limit.load(Ordering::Acquire).saturating_sub(sent));
        let active = self.tcp.active.load(Ordering::Relaxed);
        let rcvbuf = self.rcvbuf() as u32;

        if state == ST_LISTEN {
            put32(UNACKED, queued); // connections waiting
            put32(SACKED, backlog);
        }
        put32(SND_MSS, mss);
        put32(SND_SSTHRESH, INFINITE_SSTHRESH);
        put32(SND_CWND, INIT_CWND);
        put32(REORDERING, 3);
        put32(RCV_SPACE, rcvbuf);
        if connected {
            let rcv_wnd = rcv_wnd.min(u64::from(u32::MAX)) as u32;
            put32(RTO, RTO_MIN_US + rtt);
            put32(ATO, ATO_US);
            put32(RCV_MSS, mss);
            put32(PMTU, pmtu);
            put32(RCV_SSTHRESH, rcv_wnd);
            put32(RTT, rtt);
            put32(RTTVAR, rtt / 2);
            put32(ADVMSS, advmss);
            // Each side's SYN or SYN-ACK is a segment without data.
            put32(SEGS_OUT, segs_out + 1);
            put32(SEGS_IN, segs_in + 1);
            put32(NOTSENT_BYTES, held as u32);
            put32(MIN_RTT, rtt);
            put32(DATA_SEGS_IN, segs_in);
            put32(DATA_SEGS_OUT, segs_out);
            put32(DELIVERED, segs_out + 1);
            put32(SND_WND, snd_wnd.min(u64::from(u32::MAX)) as u32);
            put32(RCV_WND, rcv_wnd);
        } else {
            put32(RCV_MSS, MSS_DEFAULT as u32);
            put32(ADVMSS, MSS_DEFAULT as u32);
        }
        let mut put64 = |off: usize, v: u64| b[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        if connected {
            // bytes_acked (the connecting end's SYN is acked data too),
            // bytes_received, bytes_sent.
            put64(BYTES_ACKED, sent + u64::from(active));
            put64(BYTES_RECEIVED, bytes_in);
            put64(BYTES_SENT, sent);
            put64(PACING_RATE, u64::MAX); // unlimited
            put64(MAX_PACING_RATE, u64::MAX);
        }
        b[0] = state;
        if connected {
            let mut o = 0;
            if super::sysctl::TCP_TIMESTAMPS.on() {
                o |= OPT_TIMESTAMPS;
            }
            if super::sysctl::TCP_SACK.on() {
                o |= OPT_SACK;
            }
            if super::sysctl::TCP_WINDOW_SCALING.on() {
                o |= OPT_WSCALE;
                b[6] = 0x77; // snd_wscale 7, rcv_wscale 7: Linux's for lo
            }
            b[5] = o;
        }
        b
    }
}

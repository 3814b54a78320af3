//! Socket filters on a socket: SO_ATTACH_FILTER, SO_DETACH_FILTER,
//! SO_LOCK_FILTER and SO_GET_FILTER with Linux's rules (`sk_setsockopt`,
//! `sk_attach_filter`, `sk_detach_filter`, `sk_get_filter`), and the
//! filter's run over each datagram delivered to the socket, with the bytes
//! Linux's filter sees (`udp_queue_rcv_one_skb`: the UDP header at offset
//! 0, the IP header before it, then the link-layer header of lo).
//!
//! On a stream socket the options behave as on Linux (attached, read back,
//! locked, inherited by accepted sockets) but the program is not run: Linux
//! runs it per TCP segment, and a segment it drops is sent again by the
//! peer's TCP, while a backend here delivers each fragment once.

use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use super::bpf::{Meta, Packet, Program, INSN_SIZE};
use super::Socket;
use crate::backend::contract::{Errno, Fragment};
use crate::backend::wire::FragHeader;
use crate::consts::*;
use crate::sync::Mutex;

/// SO_ATTACH_FILTER, also SO_GET_FILTER.
pub(crate) const SO_ATTACH_FILTER: i32 = 26;
/// SO_DETACH_FILTER.
pub(crate) const SO_DETACH_FILTER: i32 = 27;
/// SO_LOCK_FILTER.
pub(crate) const SO_LOCK_FILTER: i32 = 44;

/// net.core.optmem_max: an attached program's translation is charged
/// against it.
fn optmem_max() -> usize {
    super::sysctl::OPTMEM_MAX.get()
}

#[derive(Default)]
struct State {
    prog: Option<Arc<Program>>,
    locked: bool,
}

/// A socket's filter and its lock.
pub(crate) struct SockFilter {
    state: Mutex<State>,
    /// Whether a program is attached: the delivery path's one load when
    /// none is.
    present: AtomicBool,
}

impl SockFilter {
    /// No program, unlocked.
    pub(crate) fn new() -> SockFilter {
        SockFilter {
            state: Mutex::new(State::default()),
            present: AtomicBool::new(false),
        }
    }

    /// The program attached, if any.
    fn program(&self) -> Option<Arc<Program>> {
        if !self.present.load(Ordering::Acquire) {
            return None;
        }
        self.state.lock().prog.clone()
    }

    /// Whether SO_LOCK_FILTER is set.
    pub(crate) fn locked(&self) -> bool {
        self.state.lock().locked
    }

    /// What an accepted socket gets of its listener's (Linux's
    /// `sk_clone_lock` shares the filter and copies the lock flag).
    pub(crate) fn inherit(&self, from: &SockFilter) {
        let (prog, locked) = {
            let s = from.state.lock();
            (s.prog.clone(), s.locked)
        };
        let mut s = self.state.lock();
        self.present.store(prog.is_some(), Ordering::Release);
        s.prog = prog;
        s.locked = locked;
    }
}

/// What a filter decided for one datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Deliver this many bytes of the payload (all, or fewer).
    Keep(usize),
    /// Drop it.
    Drop,
}

/// The verdict of a program that returned `n` on a packet of `header`
/// bytes and `len` of payload, Linux keeping at least `cap` bytes of the
/// packet (`pskb_trim(skb, max(cap, n))`): 0 drops; a length within the
/// header keeps an empty datagram.
fn verdict(n: usize, cap: usize, header: usize, len: usize) -> Verdict {
    if n == 0 {
        return Verdict::Drop;
    }
    Verdict::Keep(n.max(cap).saturating_sub(header).min(len))
}

/// A cheap source of SKF_AD_RANDOM values (Linux's is `prandom`).
fn random() -> u32 {
    static SEED: AtomicU32 = AtomicU32::new(0x9e37_79b9);
    let mut x = SEED.fetch_add(0x9e37_79b9, Ordering::Relaxed);
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^ (x >> 16)
}

/// The one's-complement sum of `b` as 16-bit big-endian words, unfolded.
fn sum16(b: &[u8]) -> u32 {
    b.chunks(2)
        .map(|c| u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0)))
        .sum()
}

fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// The prefix of an IPv4 address seen as IPv6 (::ffff:a.b.c.d).
const V4_MAPPED: [u8; 12] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

/// An IPv4 or IPv6 address and port out of a sockaddr.
fn endpoint(a: &[u8], domain: i32) -> Option<([u8; 16], u16)> {
    let family = i32::from(u16::from_ne_bytes([*a.first()?, *a.get(1)?]));
    let port = u16::from_be_bytes([*a.get(2)?, *a.get(3)?]);
    let mut ip = [0u8; 16];
    match (family, domain) {
        (AF_INET, AF_INET) => ip[..4].copy_from_slice(a.get(4..8)?),
        (AF_INET6, AF_INET6) => ip.copy_from_slice(a.get(8..24)?),
        _ => return None,
    }
    Some((ip, port))
}

/// The headers Linux's filter sees before and at offset 0 of a UDP
/// datagram received on lo: an Ethernet header of zero addresses, the IP
/// header (TTL or hop limit 64, DF, no options, id 0) and the UDP header,
/// whose checksum holds what lo leaves there (the pseudo-header's sum: the
/// sum is offloaded and never completed).
struct Headers {
    before: [u8; 14 + 40],
    before_len: usize,
    udp: [u8; 8],
}

fn udp_headers(domain: i32, src: ([u8; 16], u16), dst: ([u8; 16], u16), len: usize) -> Headers {
    let mut h = Headers {
        before: [0; 54],
        before_len: 0,
        udp: [0; 8],
    };
    let udp_len = (8 + len) as u16;
    let v4 = domain == AF_INET;
    let (ethertype, ip_len) = if v4 { (0x0800u16, 20) } else { (0x86dd, 40) };
    h.before[12..14].copy_from_slice(&ethertype.to_be_bytes());
    let ip = &mut h.before[14..14 + ip_len];
    let alen = if v4 { 4 } else { 16 };
    if v4 {
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&(20 + udp_len).to_be_bytes());
        ip[6] = 0x40;
        ip[8] = 64;
        ip[9] = IPPROTO_UDP as u8;
        ip[12..16].copy_from_slice(&src.0[..4]);
        ip[16..20].copy_from_slice(&dst.0[..4]);
        let c = !fold(sum16(ip));
        ip[10..12].copy_from_slice(&c.to_be_bytes());
    } else {
        ip[0] = 0x60;
        ip[4..6].copy_from_slice(&udp_len.to_be_bytes());
        ip[6] = IPPROTO_UDP as u8;
        ip[7] = 64;
        ip[8..24].copy_from_slice(&src.0);
        ip[24..40].copy_from_slice(&dst.0);
    }
    h.before_len = 14 + ip_len;
    h.udp[..2].copy_from_slice(&src.1.to_be_bytes());
    h.udp[2..4].copy_from_slice(&dst.1.to_be_bytes());
    h.udp[4..6].copy_from_slice(&udp_len.to_be_bytes());
    let pseudo =
        sum16(&src.0[..alen]) + sum16(&dst.0[..alen]) + u32::from(udp_len) + IPPROTO_UDP as u32;
    h.udp[6..8].copy_from_slice(&fold(pseudo).to_be_bytes());
    h
}

impl Socket {
    /// getsockopt() of the filter options: SO_LOCK_FILTER as an int, the
    /// program (SO_GET_FILTER) as its instructions in C layout (empty
    /// without one; the C API turns this into Linux's count of
    /// instructions), SO_DETACH_FILTER not readable.
    pub(crate) fn filter_getsockopt(&self, name: i32) -> Result<super::options::OptVal, Errno> {
        use super::options::OptVal;
        match name {
            SO_LOCK_FILTER => Ok(OptVal::Int(i32::from(self.filter.locked()))),
            SO_ATTACH_FILTER => Ok(OptVal::Bytes(
                self.filter
                    .program()
                    .map(|p| p.to_bytes())
                    .unwrap_or_default(),
            )),
            _ => Err(ENOPROTOOPT),
        }
    }

    /// setsockopt() of the filter options, checked now and applied by the
    /// returned step. SO_ATTACH_FILTER's value is the program's
    /// instructions in C layout (the C API reads them from the caller's
    /// `struct sock_fprog`); an empty one is EINVAL, as Linux's NULL or
    /// zero-length program. With SO_LOCK_FILTER set, attaching, detaching
    /// and unlocking are EPERM.
    #[allow(clippy::type_complexity)]
    pub(crate) fn filter_setsockopt(
        &self,
        name: i32,
        val: &[u8],
    ) -> Result<alloc::boxed::Box<dyn FnOnce(&Socket) -> Result<(), Errno>>, Errno> {
        use alloc::boxed::Box;
        // sk_setsockopt reads an int first, whatever the option (the C API
        // checked SO_ATTACH_FILTER's length before reading its program).
        let int = || -> Result<i32, Errno> {
            let b = val.get(..4).ok_or(EINVAL)?;
            Ok(i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        };
        match name {
            SO_LOCK_FILTER => {
                let on = int()?;
                if self.filter.locked() && on == 0 {
                    return Err(EPERM);
                }
                Ok(Box::new(move |s: &Socket| {
                    let mut st = s.filter.state.lock();
                    if st.locked && on == 0 {
                        return Err(EPERM);
                    }
                    st.locked = on != 0;
                    Ok(())
                }))
            }
            SO_DETACH_FILTER => {
                int()?;
                {
                    let st = self.filter.state.lock();
                    if st.locked {
                        return Err(EPERM);
                    }
                    if st.prog.is_none() {
                        return Err(ENOENT);
                    }
                }
                Ok(Box::new(|s: &Socket| {
                    s.settle_input();
                    let mut st = s.filter.state.lock();
                    if st.locked {
                        return Err(EPERM);
                    }
                    if st.prog.take().is_none() {
                        return Err(ENOENT);
                    }
                    s.filter.present.store(false, Ordering::Release);
                    Ok(())
                }))
            }
            _ => {
                if self.filter.locked() {
                    return Err(EPERM);
                }
                let prog = Arc::new(Program::from_bytes(val)?);
                Ok(Box::new(move |s: &Socket| {
                    s.settle_input();
                    let mut st = s.filter.state.lock();
                    if st.locked {
                        return Err(EPERM);
                    }
                    // Charged before the old one is released, as
                    // `__sk_attach_prog` does.
                    let old = st.prog.as_ref().map_or(0, |p| p.charge());
                    let max = optmem_max();
                    if prog.charge() > max || old + prog.charge() >= max {
                        return Err(ENOMEM);
                    }
                    st.prog = Some(prog);
                    s.filter.present.store(true, Ordering::Release);
                    Ok(())
                }))
            }
        }
    }

    /// Before the filter changes: datagrams already sent to this socket
    /// that its backend holds undelivered (the cross-process backend's,
    /// in its kernel sockets) are delivered first and meet the filter they
    /// were sent under, as on Linux, where a send over lo delivers before
    /// it returns. Called with no lock held.
    fn settle_input(&self) {
        #[cfg(feature = "std")]
        if matches!(self.rx(), super::Rx::Dgram(_)) {
            self.pump();
        }
    }

    /// Calls `f` with the kernel's setsockopt arguments that give a kernel
    /// socket this socket's filter and lock (when a routing rule hands the
    /// socket to the kernel): a `struct sock_fprog` pointing at the
    /// program, valid during the call.
    #[cfg(feature = "std")]
    pub(crate) fn replay_filter(&self, mut f: impl FnMut(i32, i32, &[u8])) {
        let (prog, locked) = {
            let st = self.filter.state.lock();
            (st.prog.clone(), st.locked)
        };
        if let Some(p) = prog {
            let insns = p.to_bytes();
            // struct sock_fprog: an unsigned short, then a pointer.
            let w = core::mem::size_of::<usize>();
            let mut fprog = alloc::vec![0u8; 2 * w];
            let n = (insns.len() / INSN_SIZE) as u16;
            fprog[..2].copy_from_slice(&n.to_ne_bytes());
            fprog[w..].copy_from_slice(&(insns.as_ptr() as usize).to_ne_bytes());
            f(SOL_SOCKET, SO_ATTACH_FILTER, &fprog);
        }
        if locked {
            f(SOL_SOCKET, SO_LOCK_FILTER, &1i32.to_ne_bytes());
        }
    }

    /// Whether SO_LOCK_FILTER is set (the C API's order of errors needs
    /// it before the program is read).
    pub(crate) fn filter_locked(&self) -> bool {
        self.filter.locked()
    }

    /// Runs the socket's filter over a datagram of `payload` from `src`
    /// (its sockaddr bytes), as Linux runs it at delivery: on AF_INET and
    /// AF_INET6 over the UDP header and payload, keeping at least the
    /// header (`sk_filter_trim_cap(sk, skb, sizeof(struct udphdr))`); on
    /// AF_UNIX over the payload alone, keeping at least a byte
    /// (`sk_filter`).
    pub(crate) fn filter_datagram(&self, payload: &[u8], src: &[u8]) -> Verdict {
        let Some(prog) = self.filter.program() else {
            return Verdict::Keep(payload.len());
        };
        let domain = self.info.domain;
        let mut meta = Meta {
            ifindex: 1,
            hatype: 772,
            random: random(),
            ..Meta::default()
        };
        let (n, cap) = if domain == AF_INET || domain == AF_INET6 {
            let local = self.local_addr();
            let zero = ([0u8; 16], 0);
            let mut from = endpoint(src, domain).unwrap_or(zero);
            let mut to = endpoint(local.as_bytes(), domain).unwrap_or(zero);
            // An IPv4 datagram to an IPv6 socket (a v4-mapped sender) came
            // in IPv4.
            let mut wire = domain;
            if domain == AF_INET6 && from.0[..12] == V4_MAPPED {
                wire = AF_INET;
                from.0.copy_within(12.., 0);
                if to.0[..12] == V4_MAPPED {
                    to.0.copy_within(12.., 0);
                }
            }
            let unspecified = if wire == AF_INET {
                &to.0[..4]
            } else {
                &to.0[..]
            };
            if unspecified.iter().all(|&b| b == 0) {
                // Bound to the wildcard: the datagram went to an address of
                // this host; the sender's is the best guess of which.
                to.0 = from.0;
            }
            meta.protocol = if wire == AF_INET { 0x0800 } else { 0x86dd };
            let h = udp_headers(wire, from, to, payload.len());
            let pkt = Packet {
                before: &h.before[..h.before_len],
                ll_at: Some(0),
                net_at: 14,
                header: &h.udp,
                payload,
                meta,
            };
            (prog.run(&pkt) as usize, 8)
        } else {
            let pkt = Packet {
                before: &[],
                ll_at: None,
                net_at: 0,
                header: &[],
                payload,
                meta,
            };
            (prog.run(&pkt) as usize, 1)
        };
        verdict(n, cap, if cap == 8 { 8 } else { 0 }, payload.len())
    }
}

impl Socket {
    /// The datagram fragment `frag` as the filter leaves it: its total
    /// length and payload, or None when the filter drops it. A datagram
    /// a backend hands over in pieces is not filtered (the program needs
    /// it whole; the built-in backends deliver each datagram in one piece,
    /// as the frontend sends them).
    pub(crate) fn filter_fragment<'a>(
        &self,
        hd: &FragHeader,
        frag: &Fragment<'a>,
    ) -> Option<(u32, &'a [u8])> {
        let whole = hd.dgram_offset == 0 && frag.payload.len() == hd.dgram_total as usize;
        if !whole || !self.filter.present.load(Ordering::Acquire) {
            return Some((hd.dgram_total, frag.payload));
        }
        match self.filter_datagram(frag.payload, frag.addr) {
            Verdict::Drop => None,
            Verdict::Keep(n) => Some((n as u32, &frag.payload[..n])),
        }
    }
}

/// The program bytes for a C caller's SO_GET_FILTER with room for `cap`
/// instructions: Linux's `sk_get_filter` reports the count of
/// instructions (0 without a program; with `cap` 0, only the count) and
/// refuses a smaller nonzero room with EINVAL.
pub(crate) fn get_filter_for(prog: &[u8], cap: usize) -> Result<(usize, &[u8]), Errno> {
    let n = prog.len() / INSN_SIZE;
    if n == 0 || cap == 0 {
        return Ok((n, &[]));
    }
    if cap < n {
        return Err(EINVAL);
    }
    Ok((n, prog))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_as_linux_counts() {
        // UDP: the header's 8 bytes count, and are always kept.
        assert_eq!(verdict(0, 8, 8, 10), Verdict::Drop);
        assert_eq!(verdict(12, 8, 8, 10), Verdict::Keep(4));
        assert_eq!(verdict(5, 8, 8, 10), Verdict::Keep(0));
        assert_eq!(verdict(0xffff, 8, 8, 10), Verdict::Keep(10));
        // AF_UNIX: the payload alone, at least a byte.
        assert_eq!(verdict(3, 1, 0, 10), Verdict::Keep(3));
        assert_eq!(verdict(1, 1, 0, 0), Verdict::Keep(0));
    }

    #[test]
    fn headers_as_lo_gives_them() {
        let lo = {
            let mut a = [0u8; 16];
            a[..4].copy_from_slice(&[127, 0, 0, 1]);
            a
        };
        // Measured on Linux: 1000 bytes from 127.0.0.1 to 127.0.0.1 leave
        // 0x0204 in the UDP checksum field.
        let h = udp_headers(AF_INET, (lo, 0xbb4b), (lo, 0xdf17), 1000);
        assert_eq!(h.udp, [0xbb, 0x4b, 0xdf, 0x17, 0x03, 0xf0, 0x02, 0x04]);
        assert_eq!(h.before_len, 34);
        assert_eq!(&h.before[12..16], &[0x08, 0x00, 0x45, 0x00]);
        // A valid IPv4 header checksum.
        assert_eq!(fold(sum16(&h.before[14..34])), 0xffff);
        let h6 = udp_headers(AF_INET6, ([0; 16], 1), ([0; 16], 2), 0);
        assert_eq!(h6.before_len, 54);
        assert_eq!(&h6.before[12..15], &[0x86, 0xdd, 0x60]);
        assert_eq!(&h6.udp[..6], &[0, 1, 0, 2, 0, 8]);
    }
}

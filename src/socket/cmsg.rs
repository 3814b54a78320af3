//! Control messages a receive produces (`recvmsg`'s `msg_control`), laid
//! out as Linux's `put_cmsg` lays them: a `struct cmsghdr` (a `size_t`
//! length, the level, the type), the data, padding to the next header.
//! Safe code over the caller's control buffer, which the FFI edge hands in
//! as a slice.

use super::{Rx, Socket};
use crate::consts::*;

/// `sizeof(struct cmsghdr)` on LP64 Linux.
const HDR: usize = 16;
/// CMSG_ALIGN's unit.
const ALIGN: usize = core::mem::size_of::<usize>();

/// `CMSG_SPACE(len)`.
const fn space(len: usize) -> usize {
    HDR + len.div_ceil(ALIGN) * ALIGN
}

/// Control messages written into a caller's buffer.
pub struct CmsgOut<'a> {
    buf: &'a mut [u8],
    used: usize,
    truncated: bool,
}

impl<'a> CmsgOut<'a> {
    /// An empty list over `buf` (the caller's `msg_control`).
    pub fn new(buf: &'a mut [u8]) -> CmsgOut<'a> {
        CmsgOut {
            buf,
            used: 0,
            truncated: false,
        }
    }

    /// Appends one message. As Linux: no room for even a header drops it;
    /// a message that does not fit is cut to what room is left (its
    /// `cmsg_len` says so); either way MSG_CTRUNC is reported.
    pub fn put(&mut self, level: i32, ty: i32, data: &[u8]) {
        let room = self.buf.len() - self.used;
        if room < HDR {
            self.truncated = true;
            return;
        }
        let mut len = HDR + data.len();
        if room < len {
            self.truncated = true;
            len = room;
        }
        let out = &mut self.buf[self.used..];
        out[..8].copy_from_slice(&(len as u64).to_ne_bytes());
        out[8..12].copy_from_slice(&level.to_ne_bytes());
        out[12..16].copy_from_slice(&ty.to_ne_bytes());
        out[HDR..len].copy_from_slice(&data[..len - HDR]);
        self.used += space(data.len()).min(room);
    }

    /// The room left, for a writer that lays out its own messages there
    /// (the kernel, installing passed fds); [`Self::advance`] then
    /// counts them.
    pub fn rest(&mut self) -> &mut [u8] {
        &mut self.buf[self.used..]
    }

    /// `n` more bytes were written into [`Self::rest`]; `truncated`: some
    /// did not fit (MSG_CTRUNC).
    pub fn advance(&mut self, n: usize, truncated: bool) {
        self.used = (self.used + n).min(self.buf.len());
        self.truncated |= truncated;
    }

    /// The bytes used (the `msg_controllen` to report).
    pub fn used(&self) -> usize {
        self.used
    }

    /// Whether a message was cut or dropped (MSG_CTRUNC).
    pub fn truncated(&self) -> bool {
        self.truncated
    }
}

/// A `struct timespec` (or, with `micro`, a `struct timeval`) of
/// wall-clock `ns`, as LP64 Linux lays them out.
fn time_bytes(ns: u64, micro: bool) -> [u8; 16] {
    let sec = (ns / 1_000_000_000) as i64;
    let sub = (ns % 1_000_000_000) as i64;
    let sub = if micro { sub / 1000 } else { sub };
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&sec.to_ne_bytes());
    b[8..].copy_from_slice(&sub.to_ne_bytes());
    b
}

impl Socket {
    /// The control messages a receive that just returned (`info`) adds,
    /// as the socket's options ask: receive timestamps (SO_TIMESTAMP,
    /// SO_TIMESTAMPNS, SO_TIMESTAMPING's software stamp), a UDP
    /// datagram's IP header fields (IP_PKTINFO and the like, after the
    /// stamps as udp_recvmsg puts them) and TCP_INQ's count of bytes left
    /// to read.
    pub fn recv_control(&self, info: &super::io::RecvInfo, out: &mut CmsgOut<'_>) {
        // recvmsg is a data path: the options are looked at only where a
        // flag says one may ask for something.
        let stamps = if info.err.is_some() || self.has(super::F_RCVTSTAMP) {
            self.ctl.lock().opts.rx_stamps()
        } else {
            super::options::RxStamps::default()
        };
        let inq = self.is_stream() && self.ctl.lock().opts.inq();
        if let Some(e) = info.err {
            self.errqueue_control(&e, stamps.software, out);
            return;
        }
        let t = info.stamp_ns;
        // Data received before the option was set carries no time.
        if t != 0 {
            if stamps.plain {
                if stamps.ns {
                    out.put(SOL_SOCKET, SCM_TIMESTAMPNS, &time_bytes(t, false));
                } else {
                    out.put(SOL_SOCKET, SCM_TIMESTAMP, &time_bytes(t, true));
                }
            }
            if stamps.software {
                // Three timespecs: software, (deprecated), hardware.
                let mut three = [0u8; 48];
                three[..16].copy_from_slice(&time_bytes(t, false));
                out.put(SOL_SOCKET, SCM_TIMESTAMPING, &three);
            }
        }
        if let Rx::Dgram(_) = self.rx() {
            let want = self.rx_attrs_wanted();
            // sock_recv_drops: after the stamps, before the IP cmsgs.
            if want & super::dgram_attrs::RX_OVFL != 0 && info.drops != 0 {
                out.put(
                    SOL_SOCKET,
                    super::options::SO_RXQ_OVFL,
                    &info.drops.to_ne_bytes(),
                );
            }
            if want != 0 && self.info.domain != AF_UNIX {
                self.put_dgram_attrs(want, info, out);
            }
        }
        if let (true, Rx::Stream(sb)) = (inq, self.rx()) {
            // tcp_inq_hint: the bytes queued, or 1 once the peer's FIN
            // is in and nothing is left (a read would return 0). A
            // shared socket's bytes are the backend's.
            let left = match self.shared_inq() {
                Some(0) if self.shared_fin_received() == Some(true) => 1,
                Some(q) => q as usize,
                None if sb.readable() == 0 && sb.fin_received() => 1,
                None => sb.readable(),
            };
            out.put(
                SOL_TCP,
                TCP_CM_INQ,
                &(left.min(i32::MAX as usize) as i32).to_ne_bytes(),
            );
        }
    }
}

impl Socket {
    /// An AF_UNIX receive's own control messages, after the timestamps
    /// (`__scm_recv_common`): SCM_CREDENTIALS under SO_PASSCRED (pid 0
    /// and the overflow ids for a message that carried none), SCM_PIDFD
    /// under SO_PASSPIDFD. Returns the fds to install after them (`true`:
    /// copies, for a MSG_PEEK), which the C edge does.
    pub(crate) fn unix_control(
        &self,
        info: &super::io::RecvInfo,
        out: &mut CmsgOut<'_>,
    ) -> Option<(alloc::sync::Arc<super::inflight::Fds>, bool)> {
        use super::inflight::{taken, Cred};
        if self.info.domain != AF_UNIX || info.err.is_some() {
            return None;
        }
        let t = taken(info.scm);
        let (passcred, passpidfd) = {
            let o = &self.ctl.lock().opts;
            (o.passcred(), o.passpidfd())
        };
        let cred = t.as_ref().and_then(|t| t.cred);
        if passcred {
            out.put(
                SOL_SOCKET,
                super::scm::SCM_CREDENTIALS,
                &cred.unwrap_or(Cred::NONE).bytes(),
            );
        }
        #[cfg(feature = "std")]
        if passpidfd {
            if let Some(c) = cred {
                if let Ok(fd) = crate::platform::scm::pidfd_open(c.pid) {
                    out.put(SOL_SOCKET, super::scm::SCM_PIDFD, &fd.to_ne_bytes());
                }
            }
        }
        #[cfg(not(feature = "std"))]
        let _ = (passpidfd, super::scm::SCM_PIDFD);
        let t = t?;
        let peek = t.peek;
        t.fds.map(|f| (f, peek))
    }

    /// An error-queue entry's control messages (ip_recv_error,
    /// ipv6_recv_error): its software stamp when SO_TIMESTAMPING reports
    /// them, then the extended error with an offender address of the
    /// socket's family (unspecified: a timestamp has none).
    fn errqueue_control(
        &self,
        e: &super::errqueue::ErrInfo,
        software: bool,
        out: &mut CmsgOut<'_>,
    ) {
        if software && e.stamp_ns != 0 {
            let mut three = [0u8; 48];
            three[..16].copy_from_slice(&time_bytes(e.stamp_ns, false));
            out.put(SOL_SOCKET, SCM_TIMESTAMPING, &three);
        }
        let v6 = self.info.domain == AF_INET6;
        let (level, ty, addr_len) = if v6 {
            (IPPROTO_IPV6, IPV6_RECVERR, 28)
        } else {
            (IPPROTO_IP, IP_RECVERR, 16)
        };
        let mut b = [0u8; 16 + 28];
        b[..16].copy_from_slice(&e.ee.bytes());
        // SO_EE_OFFENDER: for an ICMP error, the host that sent it (this
        // one: the loopback address); none for a timestamp.
        if e.ee.errno != ENOMSG as u32 {
            let off = &mut b[16..];
            if v6 {
                off[..2].copy_from_slice(&(AF_INET6 as u16).to_ne_bytes());
                off[23] = 1; // sin6_addr ::1
            } else {
                off[..2].copy_from_slice(&(AF_INET as u16).to_ne_bytes());
                off[4..8].copy_from_slice(&[127, 0, 0, 1]);
            }
        }
        out.put(level, ty, &b[..16 + addr_len]);
    }

    /// A datagram's IP cmsgs, in Linux's order: for an IPv4 datagram
    /// ip_cmsg_recv_offset's (IP_PKTINFO, IP_TTL, IP_TOS, IP_ORIGDSTADDR),
    /// then on an IPv6 socket ip6_datagram_recv_specific_ctl's
    /// (IPV6_PKTINFO, IPV6_HOPLIMIT, IPV6_TCLASS, IPV6_ORIGDSTADDR; the
    /// last for IPv6 datagrams only). A datagram whose backend told no
    /// attributes (or that arrived before the option was set) reads as
    /// Linux's defaults: sent to this socket's address, TOS 0, the
    /// default TTL.
    fn put_dgram_attrs(&self, want: u32, info: &super::io::RecvInfo, out: &mut CmsgOut<'_>) {
        use super::dgram_attrs::*;
        use crate::addr::IpEp;
        /// lo's interface index: every datagram here comes over lo.
        const LO_IFINDEX: i32 = 1;
        let Some(from) = info.addr.and_then(|a| IpEp::parse(&a, a.family()).ok()) else {
            return;
        };
        let v4 = from.is_v4();
        let local = IpEp::parse(&self.local_addr(), self.info.domain).ok();
        let a = info.attrs.unwrap_or_default();
        let dst = a.dst().unwrap_or_else(|| match local {
            Some(l) if !l.is_wild() => l.ip,
            // A wildcard-bound socket reached over lo: lo's address.
            _ if v4 => [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1],
            _ => {
                let mut one = [0u8; 16];
                one[15] = 1;
                one
            }
        });
        let port = local.map(|l| l.port).unwrap_or(0);
        let ttl = if info.attrs.is_some() {
            a.ttl
        } else if v4 {
            super::sysctl::IP_DEFAULT_TTL.get().min(255) as u8
        } else {
            super::sysctl::IPV6_LO_HOP_LIMIT.get().min(255) as u8
        };
        let tos = a.tos;
        if v4 {
            if want & RX_PKTINFO != 0 {
                // struct in_pktinfo: ifindex, the local address (here the
                // destination: lo delivers to it), the destination.
                let mut p = [0u8; 12];
                p[..4].copy_from_slice(&LO_IFINDEX.to_ne_bytes());
                p[4..8].copy_from_slice(&dst[12..]);
                p[8..].copy_from_slice(&dst[12..]);
                out.put(IPPROTO_IP, IP_PKTINFO, &p);
            }
            if want & RX_TTL != 0 {
                out.put(IPPROTO_IP, IP_TTL, &i32::from(ttl).to_ne_bytes());
            }
            if want & RX_TOS != 0 {
                out.put(IPPROTO_IP, IP_TOS, &[tos]);
            }
            if want & RX_ORIGDST != 0 {
                let mut sa = [0u8; 16];
                sa[..2].copy_from_slice(&(AF_INET as u16).to_ne_bytes());
                sa[2..4].copy_from_slice(&port.to_be_bytes());
                sa[4..8].copy_from_slice(&dst[12..]);
                out.put(IPPROTO_IP, IP_ORIGDSTADDR, &sa);
            }
        }
        if self.info.domain != AF_INET6 {
            return;
        }
        if want & RX6_PKTINFO != 0 {
            // struct in6_pktinfo: the destination, ifindex.
            let mut p = [0u8; 20];
            p[..16].copy_from_slice(&dst);
            p[16..].copy_from_slice(&LO_IFINDEX.to_ne_bytes());
            out.put(IPPROTO_IPV6, IPV6_PKTINFO, &p);
        }
        if want & RX6_HOPLIMIT != 0 {
            out.put(IPPROTO_IPV6, IPV6_HOPLIMIT, &i32::from(ttl).to_ne_bytes());
        }
        if want & RX6_TCLASS != 0 {
            out.put(IPPROTO_IPV6, IPV6_TCLASS, &i32::from(tos).to_ne_bytes());
        }
        if want & RX6_ORIGDST != 0 && !v4 {
            let mut sa = [0u8; 28];
            sa[..2].copy_from_slice(&(AF_INET6 as u16).to_ne_bytes());
            sa[2..4].copy_from_slice(&port.to_be_bytes());
            sa[8..24].copy_from_slice(&dst);
            out.put(IPPROTO_IPV6, IPV6_ORIGDSTADDR, &sa);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_fits_and_is_padded() {
        let mut b = [0xeeu8; 64];
        let mut c = CmsgOut::new(&mut b);
        c.put(6, 36, &5i32.to_ne_bytes());
        assert_eq!(c.used(), 24);
        assert!(!c.truncated());
        assert_eq!(u64::from_ne_bytes(b[..8].try_into().unwrap()), 20);
        assert_eq!(i32::from_ne_bytes(b[16..20].try_into().unwrap()), 5);
    }

    #[test]
    fn too_little_room_cuts_or_drops_with_ctrunc() {
        let mut b = [0u8; 18];
        let mut c = CmsgOut::new(&mut b);
        c.put(1, 2, &[1, 2, 3, 4]);
        assert!(c.truncated());
        assert_eq!(c.used(), 18);
        assert_eq!(u64::from_ne_bytes(b[..8].try_into().unwrap()), 18);
        let mut small = [0u8; 8];
        let mut c = CmsgOut::new(&mut small);
        c.put(1, 2, &[1]);
        assert!(c.truncated() && c.used() == 0);
    }
}

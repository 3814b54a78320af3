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
    /// SO_TIMESTAMPNS, SO_TIMESTAMPING's software stamp) and TCP_INQ's
    /// count of bytes left to read.
    pub fn recv_control(&self, info: &super::io::RecvInfo, out: &mut CmsgOut<'_>) {
        let (stamps, inq) = {
            let c = self.ctl.lock();
            (c.opts.rx_stamps(), c.opts.inq())
        };
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
        if let Rx::Stream(sb) = &self.rx {
            if inq {
                // tcp_inq_hint: the bytes queued, or 1 once the peer's FIN
                // is in and nothing is left (a read would return 0).
                let left = sb.readable();
                let left = if left == 0 && sb.fin_received() {
                    1
                } else {
                    left
                };
                out.put(
                    SOL_TCP,
                    TCP_CM_INQ,
                    &(left.min(i32::MAX as usize) as i32).to_ne_bytes(),
                );
            }
        }
    }
}

impl Socket {
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

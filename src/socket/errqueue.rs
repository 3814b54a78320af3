//! The socket error queue (`recvmsg(MSG_ERRQUEUE)`), as Linux keeps it.
//!
//! An entry is what the kernel queues as an skb on `sk_error_queue`: the
//! bytes it concerns, a `struct sock_extended_err` (errno, origin, type,
//! code, info, data) and, for a timestamp, when it was taken. The only
//! source here is SO_TIMESTAMPING's transmit stamp (SOF_TIMESTAMPING_TX_
//! SOFTWARE): each send queues one, with SO_EE_ORIGIN_TIMESTAMPING and
//! SCM_TSTAMP_SND, as Linux does when the packet leaves. A queued entry
//! makes the socket POLLERR (datagram_poll, tcp_poll); a read takes the
//! oldest, never waits (EAGAIN when empty), and sets MSG_ERRQUEUE. The
//! queue is bounded by the receive buffer, as sock_queue_err_skb bounds
//! it: an entry past it is dropped.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};

use super::Socket;
use crate::addr::SockAddr;
use crate::backend::contract::Errno;
use crate::consts::*;
use crate::sync::Mutex;

/// `sock_extended_err.ee_origin` of a timestamp.
const SO_EE_ORIGIN_TIMESTAMPING: u8 = 4;
/// `ee_info` of a stamp taken when the data left (SCM_TSTAMP_SND).
const SCM_TSTAMP_SND: u32 = 0;
/// SOF_TIMESTAMPING_OPT_ID: `ee_data` counts the sends.
const SOF_TIMESTAMPING_OPT_ID: u32 = 1 << 7;
/// SOF_TIMESTAMPING_OPT_TSONLY: the entry carries no data.
const SOF_TIMESTAMPING_OPT_TSONLY: u32 = 1 << 11;

/// `struct sock_extended_err`'s fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExtendedErr {
    /// `ee_errno`.
    pub errno: u32,
    /// `ee_origin`.
    pub origin: u8,
    /// `ee_type`.
    pub ty: u8,
    /// `ee_code`.
    pub code: u8,
    /// `ee_info`.
    pub info: u32,
    /// `ee_data`.
    pub data: u32,
}

impl ExtendedErr {
    /// The C layout (16 bytes).
    pub fn bytes(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&self.errno.to_ne_bytes());
        b[4] = self.origin;
        b[5] = self.ty;
        b[6] = self.code;
        b[8..12].copy_from_slice(&self.info.to_ne_bytes());
        b[12..].copy_from_slice(&self.data.to_ne_bytes());
        b
    }
}

/// `ee_origin` of an ICMP (IPv4) and an ICMPv6 error.
const SO_EE_ORIGIN_ICMP: u8 = 2;
const SO_EE_ORIGIN_ICMP6: u8 = 3;

/// One queued error.
struct Entry {
    data: Vec<u8>,
    ee: ExtendedErr,
    stamp_ns: u64,
    /// Where the datagram was sent (msg_name of the read).
    addr: Option<SockAddr>,
}

impl Entry {
    fn icmp(&self) -> bool {
        matches!(self.ee.origin, SO_EE_ORIGIN_ICMP | SO_EE_ORIGIN_ICMP6)
    }
}

/// A socket's error queue.
pub(crate) struct ErrQueue {
    /// Made at the first entry: most sockets never queue one, and an empty
    /// queue inline was 24 bytes more of every socket.
    // The box is the point: 8 bytes inline instead of the deque's 32.
    #[allow(clippy::box_collection)]
    q: Mutex<Option<Box<VecDeque<Entry>>>>,
    /// Entries queued (readiness reads it without the lock).
    len: AtomicU32,
    /// SOF_TIMESTAMPING_OPT_ID's counter.
    sends: AtomicU32,
}

impl ErrQueue {
    pub(crate) const fn new() -> ErrQueue {
        ErrQueue {
            q: Mutex::new(None),
            len: AtomicU32::new(0),
            sends: AtomicU32::new(0),
        }
    }

    /// Whether an entry waits (POLLERR).
    #[inline]
    pub(crate) fn pending(&self) -> bool {
        self.len.load(Ordering::Acquire) != 0
    }
}

/// What an error-queue read returns beside the bytes: the control
/// messages `Socket::recv_control` writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ErrInfo {
    /// The extended error (IP_RECVERR / IPV6_RECVERR).
    pub ee: ExtendedErr,
    /// A timestamp's time, wall-clock ns (0: none).
    pub stamp_ns: u64,
}

impl Socket {
    /// A send of `data` left (SO_TIMESTAMPING with TX_SOFTWARE): its
    /// transmit stamp is queued.
    pub(crate) fn queue_tx_stamp(&self, data: &[u8], tsflags: u32) {
        let id = self.errq.sends.fetch_add(1, Ordering::Relaxed);
        let data = if tsflags & SOF_TIMESTAMPING_OPT_TSONLY != 0 {
            Vec::new()
        } else {
            data.to_vec()
        };
        let ee = ExtendedErr {
            errno: ENOMSG as u32,
            origin: SO_EE_ORIGIN_TIMESTAMPING,
            info: SCM_TSTAMP_SND,
            data: if tsflags & SOF_TIMESTAMPING_OPT_ID != 0 {
                id
            } else {
                0
            },
            ..ExtendedErr::default()
        };
        self.queue_error(Entry {
            data,
            ee,
            stamp_ns: crate::platform::realtime_ns(),
            addr: None,
        });
    }

    /// A datagram to `dest` found nobody there (`upcall::unreachable`):
    /// under IP_RECVERR (IPV6_RECVERR) the port-unreachable error is
    /// queued with the datagram and becomes the pending error; without
    /// it only a connected socket's next call reports ECONNREFUSED
    /// (__udp4_lib_err, __udp6_lib_err).
    pub(crate) fn port_unreachable(&self, dest: &SockAddr, payload: &[u8]) {
        if !self.recverr() {
            if self.phase() == super::Phase::Connected {
                self.set_error(ECONNREFUSED);
            }
            return;
        }
        let v6 = self.info.domain == AF_INET6;
        let ee = ExtendedErr {
            errno: ECONNREFUSED as u32,
            // Destination unreachable, port unreachable.
            origin: if v6 {
                SO_EE_ORIGIN_ICMP6
            } else {
                SO_EE_ORIGIN_ICMP
            },
            ty: if v6 { 1 } else { 3 },
            code: if v6 { 4 } else { 3 },
            ..ExtendedErr::default()
        };
        self.queue_error(Entry {
            data: payload.to_vec(),
            ee,
            stamp_ns: 0,
            addr: Some(*dest),
        });
        self.set_error(ECONNREFUSED);
    }

    /// IP_RECVERR (IPV6_RECVERR on an IPv6 socket) is on.
    fn recverr(&self) -> bool {
        #[cfg(feature = "std")]
        {
            let (level, name) = if self.info.domain == AF_INET6 {
                (IPPROTO_IPV6, IPV6_RECVERR)
            } else {
                (IPPROTO_IP, IP_RECVERR)
            };
            let c = self.ctl.lock();
            super::kernel_opts::int_value(&c.kernel_opts, level, name).is_some_and(|v| v != 0)
        }
        #[cfg(not(feature = "std"))]
        false
    }

    fn queue_error(&self, e: Entry) {
        {
            let mut q = self.errq.q.lock();
            let q = q.get_or_insert_with(Box::default);
            let used: usize = q.iter().map(|x| x.data.len() + 64).sum();
            if used + e.data.len() + 64 > self.rcvbuf() {
                return;
            }
            q.push_back(e);
            self.errq.len.store(q.len() as u32, Ordering::Release);
        }
        self.wait.notify(POLLERR);
    }

    /// recvmsg(MSG_ERRQUEUE): the oldest entry's bytes into `bufs` (cut
    /// to fit: `truncated`), and what its control messages say; EAGAIN
    /// with none queued (it never waits).
    pub(crate) fn recv_errqueue(
        &self,
        bufs: &mut [&mut [u8]],
        peek: bool,
    ) -> Result<(usize, bool, ErrInfo, Option<SockAddr>), Errno> {
        let mut q = self.errq.q.lock();
        let q = q.as_deref_mut().ok_or(EAGAIN)?;
        let e = q.front().ok_or(EAGAIN)?;
        let mut copied = 0;
        for b in bufs.iter_mut() {
            let n = b.len().min(e.data.len() - copied);
            b[..n].copy_from_slice(&e.data[copied..copied + n]);
            copied += n;
        }
        let out = (
            copied,
            copied < e.data.len(),
            ErrInfo {
                ee: e.ee,
                stamp_ns: e.stamp_ns,
            },
            e.addr,
        );
        if !peek {
            let icmp = e.icmp();
            q.pop_front();
            self.errq.len.store(q.len() as u32, Ordering::Release);
            // sock_dequeue_err_skb: the pending error follows the ICMP
            // errors left queued.
            if icmp {
                match q.front().filter(|n| n.icmp()) {
                    Some(n) => self.set_error(n.ee.errno as i32),
                    None => {
                        let _ = self.take_error();
                    }
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extended_err_is_laid_out_as_linux_s() {
        let ee = ExtendedErr {
            errno: 42,
            origin: 4,
            ty: 3,
            code: 2,
            info: 7,
            data: 9,
        };
        let b = ee.bytes();
        assert_eq!(u32::from_ne_bytes(b[..4].try_into().unwrap()), 42);
        assert_eq!(&b[4..8], &[4, 3, 2, 0]);
        assert_eq!(u32::from_ne_bytes(b[8..12].try_into().unwrap()), 7);
        assert_eq!(u32::from_ne_bytes(b[12..].try_into().unwrap()), 9);
    }
}

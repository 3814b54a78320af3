//! A UDP socket's side of the datagram attributes (`backend::attrs`): what
//! its sends carry (IP_TOS, IP_TTL, IP_MULTICAST_TTL, IPV6_TCLASS,
//! IPV6_UNICAST_HOPS, IPV6_MULTICAST_HOPS, or a per-send cmsg) and which
//! of them its receives report (IP_PKTINFO, IP_RECVTTL, IP_RECVTOS,
//! IP_RECVORIGDSTADDR and the IPv6 ones).
//!
//! The options stay recorded where the kernel checks them
//! (`kernel_opts`); the send path must not read that record per datagram
//! (a lock and a scan), so setting one also caches what sends need in the
//! socket's `tx_attrs` word, and what receives report in `rx_attrs`,
//! atomics read without a lock.

use core::sync::atomic::Ordering;

use super::Socket;
use crate::addr::{IpEp, SockAddr};
use crate::backend::attrs::{DgramAttrs, ATTR_SRC};
use crate::consts::*;

pub(crate) const IP_TOS: i32 = 1;
pub(crate) const IP_TTL: i32 = 2;
pub(crate) const IP_PKTINFO: i32 = 8;
pub(crate) const IP_RECVTTL: i32 = 12;
pub(crate) const IP_RECVTOS: i32 = 13;
pub(crate) const IP_RECVORIGDSTADDR: i32 = 20;
/// The cmsg of IP_RECVORIGDSTADDR (the same number).
pub(crate) const IP_ORIGDSTADDR: i32 = 20;
pub(crate) const IP_MULTICAST_TTL: i32 = 33;
pub(crate) const IPV6_UNICAST_HOPS: i32 = 16;
pub(crate) const IPV6_MULTICAST_HOPS: i32 = 18;
pub(crate) const IPV6_RECVPKTINFO: i32 = 49;
pub(crate) const IPV6_PKTINFO: i32 = 50;
pub(crate) const IPV6_RECVHOPLIMIT: i32 = 51;
pub(crate) const IPV6_HOPLIMIT: i32 = 52;
pub(crate) const IPV6_RECVTCLASS: i32 = 66;
pub(crate) const IPV6_TCLASS: i32 = 67;
pub(crate) const IPV6_RECVORIGDSTADDR: i32 = 74;
/// The cmsg of IPV6_RECVORIGDSTADDR (the same number).
pub(crate) const IPV6_ORIGDSTADDR: i32 = 74;

/// `rx_attrs` bits: the cmsgs a receive reports.
pub(crate) const RX_PKTINFO: u32 = 1;
pub(crate) const RX_TTL: u32 = 2;
pub(crate) const RX_TOS: u32 = 4;
pub(crate) const RX_ORIGDST: u32 = 8;
pub(crate) const RX6_PKTINFO: u32 = 16;
pub(crate) const RX6_HOPLIMIT: u32 = 32;
pub(crate) const RX6_TCLASS: u32 = 64;
pub(crate) const RX6_ORIGDST: u32 = 128;
/// SO_RXQ_OVFL: a datagram queued after drops tells their count.
pub(crate) const RX_OVFL: u32 = 256;

// `tx_attrs` fields, a byte each; a TTL or hop limit of 0 in a field that
// cannot hold 0 means "not set" (the default), the hop limits (which may
// be 0) keep a "set" bit.
const TX_TOS: u32 = 0;
const TX_TTL: u32 = 8;
const TX_MTTL: u32 = 16;
const TX_TCLASS: u32 = 24;
const TX_HOPS: u32 = 32;
const TX_MHOPS: u32 = 40;
const TX_HOPS_SET: u64 = 1 << 48;
const TX_MHOPS_SET: u64 = 1 << 49;
const TX_MTTL_SET: u64 = 1 << 50;

/// Which option sets which `rx_attrs` bit, or `tx_attrs` field.
enum Slot {
    Rx(u32),
    Tx(u32, u64),
}

fn slot(level: i32, name: i32) -> Option<Slot> {
    Some(match (level, name) {
        (IPPROTO_IP, IP_PKTINFO) => Slot::Rx(RX_PKTINFO),
        (IPPROTO_IP, IP_RECVTTL) => Slot::Rx(RX_TTL),
        (IPPROTO_IP, IP_RECVTOS) => Slot::Rx(RX_TOS),
        (IPPROTO_IP, IP_RECVORIGDSTADDR) => Slot::Rx(RX_ORIGDST),
        (IPPROTO_IPV6, IPV6_RECVPKTINFO) => Slot::Rx(RX6_PKTINFO),
        (IPPROTO_IPV6, IPV6_RECVHOPLIMIT) => Slot::Rx(RX6_HOPLIMIT),
        (IPPROTO_IPV6, IPV6_RECVTCLASS) => Slot::Rx(RX6_TCLASS),
        (IPPROTO_IPV6, IPV6_RECVORIGDSTADDR) => Slot::Rx(RX6_ORIGDST),
        (IPPROTO_IP, IP_TOS) => Slot::Tx(TX_TOS, 0),
        (IPPROTO_IP, IP_TTL) => Slot::Tx(TX_TTL, 0),
        (IPPROTO_IP, IP_MULTICAST_TTL) => Slot::Tx(TX_MTTL, TX_MTTL_SET),
        (IPPROTO_IPV6, IPV6_TCLASS) => Slot::Tx(TX_TCLASS, 0),
        (IPPROTO_IPV6, IPV6_UNICAST_HOPS) => Slot::Tx(TX_HOPS, TX_HOPS_SET),
        (IPPROTO_IPV6, IPV6_MULTICAST_HOPS) => Slot::Tx(TX_MHOPS, TX_MHOPS_SET),
        _ => return None,
    })
}

/// Whether option `level`/`name` is one a UDP socket caches here.
pub(crate) fn is_attr_opt(level: i32, name: i32) -> bool {
    slot(level, name).is_some()
}

impl Socket {
    /// SO_RXQ_OVFL set to `on` (the kernel checked it).
    pub(crate) fn note_rxq_ovfl(&self, on: bool) {
        if on {
            self.rx_attrs.fetch_or(RX_OVFL, Ordering::Relaxed);
        } else {
            self.rx_attrs.fetch_and(!RX_OVFL, Ordering::Relaxed);
        }
    }

    /// A datagram was refused for want of room.
    pub(crate) fn count_drop(&self) {
        self.rx_drops.fetch_add(1, Ordering::Relaxed);
    }

    /// The datagrams refused so far.
    pub(crate) fn drops(&self) -> u32 {
        self.rx_drops.load(Ordering::Relaxed)
    }

    /// Caches option `level`/`name`, just set to `v` (the kernel checked
    /// it), where sends and receives read it.
    pub(crate) fn note_attr_opt(&self, level: i32, name: i32, v: i32) {
        match slot(level, name) {
            Some(Slot::Rx(bit)) => {
                if v != 0 {
                    self.rx_attrs.fetch_or(bit, Ordering::Relaxed);
                } else {
                    self.rx_attrs.fetch_and(!bit, Ordering::Relaxed);
                }
            }
            Some(Slot::Tx(shift, set_bit)) => {
                // -1 resets to the default (every one of these options).
                let (byte, set) = if v < 0 {
                    (0u64, 0)
                } else {
                    ((v as u64) & 0xff, set_bit)
                };
                let mask = (0xffu64 << shift) | set_bit;
                let mut cur = self.tx_attrs.load(Ordering::Relaxed);
                loop {
                    let new = (cur & !mask) | (byte << shift) | set;
                    match self.tx_attrs.compare_exchange_weak(
                        cur,
                        new,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => break,
                        Err(c) => cur = c,
                    }
                }
            }
            None => {}
        }
    }

    /// The cmsgs this socket's receives report (`RX_*` bits).
    pub(crate) fn rx_attrs_wanted(&self) -> u32 {
        self.rx_attrs.load(Ordering::Relaxed)
    }

    /// The attributes a datagram to `dest` (None: the connected peer)
    /// leaves with: the socket's options, then what `per_send` (the
    /// sendmsg cmsgs) overrides.
    pub(crate) fn send_attrs(&self, dest: Option<&SockAddr>, per_send: &SendCtl) -> DgramAttrs {
        let w = self.tx_attrs.load(Ordering::Relaxed);
        let field = |shift: u32| ((w >> shift) & 0xff) as u8;
        let to = dest.and_then(|d| IpEp::parse(d, self.info.domain).ok());
        let group = to.is_some_and(|e| e.is_multicast());
        // An IPv6 socket's datagram to an IPv4 (mapped) address is sent
        // by IPv4, with the socket's IPv4 options.
        let v4 = self.info.domain == AF_INET || to.is_some_and(|e| e.is_v4());
        let mut a = DgramAttrs::default();
        if v4 {
            a.tos = field(TX_TOS);
            a.ttl = if group {
                if w & TX_MTTL_SET != 0 {
                    field(TX_MTTL)
                } else {
                    1
                }
            } else {
                match field(TX_TTL) {
                    0 => super::sysctl::IP_DEFAULT_TTL.get().min(255) as u8,
                    t => t,
                }
            };
        } else {
            a.tos = field(TX_TCLASS);
            a.ttl = if group {
                if w & TX_MHOPS_SET != 0 {
                    field(TX_MHOPS)
                } else {
                    1
                }
            } else if w & TX_HOPS_SET != 0 {
                field(TX_HOPS)
            } else {
                super::sysctl::IPV6_LO_HOP_LIMIT.get().min(255) as u8
            };
        }
        if let Some(t) = per_send.tos {
            a.tos = t;
        }
        if let Some(t) = per_send.ttl {
            a.ttl = t;
        }
        if let Some(s) = per_send.src {
            a.src = s;
            a.flags |= ATTR_SRC;
        }
        a
    }
}

/// What a sendmsg's control messages ask of one datagram: its TOS or
/// traffic class, TTL or hop limit, and source address (IP_PKTINFO's
/// `ipi_spec_dst`, IPV6_PKTINFO's `ipi6_addr`; the wildcard: none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendCtl {
    /// IP_TOS, IPV6_TCLASS.
    pub tos: Option<u8>,
    /// IP_TTL, IPV6_HOPLIMIT.
    pub ttl: Option<u8>,
    /// The source IP (v4-mapped for IPv4).
    pub src: Option<[u8; 16]>,
    /// AF_UNIX: the message's SCM_RIGHTS/SCM_CREDENTIALS, staged in the
    /// in-flight table (`inflight`; 0: none).
    pub scm: u64,
}

impl SendCtl {
    /// Reads one control message of a sendmsg on a socket of `domain`:
    /// `Err` is the errno Linux gives for it (ip_cmsg_send,
    /// ip6_datagram_send_ctl); messages of other levels and types are left
    /// to their readers.
    pub fn take(&mut self, domain: i32, level: i32, ty: i32, data: &[u8]) -> Result<(), Errno> {
        let int = || -> Result<i32, Errno> {
            let b: [u8; 4] = data
                .get(..4)
                .ok_or(EINVAL)?
                .try_into()
                .map_err(|_| EINVAL)?;
            if data.len() != 4 {
                return Err(EINVAL);
            }
            Ok(i32::from_ne_bytes(b))
        };
        match (level, ty) {
            (IPPROTO_IP, IP_PKTINFO) => {
                // struct in_pktinfo: ifindex, spec_dst, addr.
                if data.len() != 12 {
                    return Err(EINVAL);
                }
                let spec: [u8; 4] = [data[4], data[5], data[6], data[7]];
                if spec != [0; 4] {
                    let mut ip = [0u8; 16];
                    ip[10] = 0xff;
                    ip[11] = 0xff;
                    ip[12..].copy_from_slice(&spec);
                    self.src = Some(ip);
                }
            }
            (IPPROTO_IP, IP_TTL) => {
                let v = int()?;
                if !(1..=255).contains(&v) {
                    return Err(EINVAL);
                }
                self.ttl = Some(v as u8);
            }
            (IPPROTO_IP, IP_TOS) => {
                // An int or a byte (ip_cmsg_send).
                let v = match data.len() {
                    1 => i32::from(data[0]),
                    _ => int()?,
                };
                if !(0..=255).contains(&v) {
                    return Err(EINVAL);
                }
                self.tos = Some(v as u8);
            }
            (IPPROTO_IPV6, IPV6_PKTINFO) if domain == AF_INET6 => {
                // struct in6_pktinfo: addr, ifindex.
                if data.len() < 20 {
                    return Err(EINVAL);
                }
                let mut ip = [0u8; 16];
                ip.copy_from_slice(&data[..16]);
                if ip != [0; 16] {
                    self.src = Some(ip);
                }
            }
            (IPPROTO_IPV6, IPV6_HOPLIMIT) if domain == AF_INET6 => {
                let v = int()?;
                if !(-1..=255).contains(&v) {
                    return Err(EINVAL);
                }
                if v >= 0 {
                    self.ttl = Some(v as u8);
                }
            }
            (IPPROTO_IPV6, IPV6_TCLASS) if domain == AF_INET6 => {
                let v = int()?;
                if !(-1..=255).contains(&v) {
                    return Err(EINVAL);
                }
                if v >= 0 {
                    self.tos = Some(v as u8);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_cmsgs_read_as_linux_checks_them() {
        let mut c = SendCtl::default();
        let mut pi = [0u8; 12];
        pi[4..8].copy_from_slice(&[127, 0, 0, 2]);
        c.take(AF_INET, IPPROTO_IP, IP_PKTINFO, &pi).unwrap();
        assert_eq!(c.src.unwrap()[12..], [127, 0, 0, 2]);
        assert_eq!(
            c.take(AF_INET, IPPROTO_IP, IP_PKTINFO, &pi[..8]),
            Err(EINVAL)
        );
        c.take(AF_INET, IPPROTO_IP, IP_TTL, &9i32.to_ne_bytes())
            .unwrap();
        assert_eq!(c.ttl, Some(9));
        assert_eq!(
            c.take(AF_INET, IPPROTO_IP, IP_TTL, &0i32.to_ne_bytes()),
            Err(EINVAL)
        );
        c.take(AF_INET, IPPROTO_IP, IP_TOS, &[0x10]).unwrap();
        assert_eq!(c.tos, Some(0x10));
        c.take(AF_INET6, IPPROTO_IPV6, IPV6_HOPLIMIT, &7i32.to_ne_bytes())
            .unwrap();
        assert_eq!(c.ttl, Some(7));
        assert_eq!(
            c.take(AF_INET6, IPPROTO_IPV6, IPV6_TCLASS, &256i32.to_ne_bytes()),
            Err(EINVAL)
        );
        // Another level's message is not ours to read.
        c.take(AF_INET, SOL_SOCKET, 1, &[]).unwrap();
    }
}

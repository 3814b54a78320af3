//! What travels with an IP datagram besides its payload and source: the
//! parts of the IP header a receiver may ask about in control messages.
//!
//! On Linux the receiver of a UDP datagram can learn, per datagram, the
//! destination address its sender used (IP_PKTINFO's `ipi_addr`,
//! IPV6_PKTINFO, IP_ORIGDSTADDR/IPV6_ORIGDSTADDR), the sender's TOS or
//! traffic class (IP_RECVTOS, IPV6_RECVTCLASS) and the TTL or hop limit it
//! left with (IP_RECVTTL, IPV6_RECVHOPLIMIT). A sender may choose its
//! source address for one datagram (an IP_PKTINFO or IPV6_PKTINFO cmsg on
//! sendmsg). [`DgramAttrs`] carries these:
//!
//! - **sender to backend**: the frontend fills `tos` and `ttl` from the
//!   socket's IP_TOS/IP_TTL (IPV6_TCLASS/IPV6_UNICAST_HOPS; a multicast
//!   destination takes IP_MULTICAST_TTL), cached in the socket when the
//!   option is set, or from a per-send cmsg, and `src` from an
//!   IP_PKTINFO/IPV6_PKTINFO cmsg ([`ATTR_SRC`]). It hands them to
//!   [`Backend::write_attrs`](crate::backend::contract::Backend::write_attrs),
//!   whose default forgets them and calls `write`: a backend that does not
//!   know them carries datagrams as before.
//! - **backend to receiver**: the backend fills `dst` (the address the
//!   datagram was sent to, [`ATTR_DST`]) and passes `tos` and `ttl` on, by
//!   [`upcall::deliver_attrs`](crate::backend::upcall::deliver_attrs).
//!   A delivery without them (`upcall::deliver`, every C backend) reads as
//!   Linux's defaults: TOS 0, the default TTL, the receiver's own address
//!   as destination.
//! - **C backends** deliver them with `usock_upcall_deliver_attrs`, in
//!   the byte form below; the C table's `write` does not see a sender's
//!   attributes (its datagrams leave with the defaults).
//! - **byte-moving backends** carry them as [`ATTR_LEN`] opaque bytes
//!   ([`DgramAttrs::to_bytes`], [`DgramAttrs::from_bytes`]); the
//!   cross-process backend appends them to a DATA frame's address (see its
//!   envelope). The wire encoding itself is unchanged.
//! - **receiver**: the Socket Buffer keeps the bytes in the datagram's
//!   record, only while the socket asks for one of these cmsgs, and
//!   `recvmsg` turns them into control messages.
//!
//! # Byte form ([`ATTR_LEN`] bytes)
//!
//! | Offset | Size | Field   | Meaning                                        |
//! |-------:|-----:|---------|------------------------------------------------|
//! |      0 |    1 | `flags` | [`ATTR_DST`], [`ATTR_SRC`]; other bits 0       |
//! |      1 |    1 | `tos`   | TOS (IPv4) or traffic class (IPv6)             |
//! |      2 |    1 | `ttl`   | TTL or hop limit                               |
//! |      3 |    1 |         | 0                                              |
//! |      4 |   16 | `dst`   | destination IP (IPv4 as v4-mapped IPv6)        |
//!
//! `src` is the sender's business and never travels.

/// `dst` holds the destination the sender used.
pub const ATTR_DST: u8 = 1;
/// `src` holds the source address the sender chose for this datagram.
pub const ATTR_SRC: u8 = 2;

/// Length of the byte form.
pub const ATTR_LEN: usize = 20;

/// The TTL and hop limit a datagram leaves with when its sender set none
/// (`net.ipv4.ip_default_ttl`, `net.ipv6.conf.*.hop_limit`: 64 unless the
/// administrator changed them; the hosted platform reads the sysctl once).
pub const DEFAULT_TTL: u8 = 64;

/// A datagram's IP header fields a receiver may ask about: see the module
/// documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DgramAttrs {
    /// [`ATTR_DST`], [`ATTR_SRC`].
    pub flags: u8,
    /// TOS or traffic class.
    pub tos: u8,
    /// TTL or hop limit.
    pub ttl: u8,
    /// The destination IP (v4-mapped for IPv4), with [`ATTR_DST`].
    pub dst: [u8; 16],
    /// The chosen source IP (v4-mapped for IPv4), with [`ATTR_SRC`].
    pub src: [u8; 16],
}

impl Default for DgramAttrs {
    fn default() -> Self {
        DgramAttrs {
            flags: 0,
            tos: 0,
            ttl: DEFAULT_TTL,
            dst: [0; 16],
            src: [0; 16],
        }
    }
}

impl DgramAttrs {
    /// The byte form (without `src`).
    pub fn to_bytes(&self) -> [u8; ATTR_LEN] {
        let mut b = [0u8; ATTR_LEN];
        b[0] = self.flags & ATTR_DST;
        b[1] = self.tos;
        b[2] = self.ttl;
        b[4..].copy_from_slice(&self.dst);
        b
    }

    /// Reads the byte form; `None` unless it is exactly that.
    pub fn from_bytes(b: &[u8]) -> Option<DgramAttrs> {
        if b.len() != ATTR_LEN || b[0] & !ATTR_DST != 0 || b[3] != 0 {
            return None;
        }
        let mut dst = [0u8; 16];
        dst.copy_from_slice(&b[4..]);
        Some(DgramAttrs {
            flags: b[0],
            tos: b[1],
            ttl: b[2],
            dst,
            src: [0; 16],
        })
    }

    /// The destination, if the sender's backend said.
    pub fn dst(&self) -> Option<[u8; 16]> {
        (self.flags & ATTR_DST != 0).then_some(self.dst)
    }

    /// The source the sender chose, if it did.
    pub fn src(&self) -> Option<[u8; 16]> {
        (self.flags & ATTR_SRC != 0).then_some(self.src)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_without_src() {
        let a = DgramAttrs {
            flags: ATTR_DST | ATTR_SRC,
            tos: 0x28,
            ttl: 33,
            dst: [7; 16],
            src: [9; 16],
        };
        let b = DgramAttrs::from_bytes(&a.to_bytes()).unwrap();
        assert_eq!(b.dst(), Some([7; 16]));
        assert_eq!((b.tos, b.ttl, b.src()), (0x28, 33, None));
        assert!(DgramAttrs::from_bytes(&[0xff; ATTR_LEN]).is_none());
        assert!(DgramAttrs::from_bytes(&[0; 3]).is_none());
    }
}

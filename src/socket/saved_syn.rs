//! TCP_SAVED_SYN: the IP and TCP headers of the SYN that opened an
//! accepted connection, when its listener had TCP_SAVE_SYN on.
//!
//! A user-space connection has no SYN on a wire: the headers are the ones
//! Linux's loopback would have carried for it, built from the connection's
//! addresses and the machine's TCP settings (the MSS of lo's MTU, the
//! timestamp, SACK and window-scaling options as the sysctls have them, in
//! `tcp_options_write`'s order). As on Linux they are read once: a second
//! read finds none (length 0).

use alloc::vec::Vec;

use super::Socket;
use crate::addr::IpEp;
use crate::consts::*;

/// TCP_SAVE_SYN (on the listener; read from the kernel options' record,
/// hosted only) and TCP_SAVED_SYN (on the child).
#[cfg_attr(not(feature = "std"), allow(dead_code))]
pub(crate) const TCP_SAVE_SYN: i32 = 27;
pub(crate) const TCP_SAVED_SYN: i32 = 28;

/// The one's-complement sum of `b` (16-bit big-endian words) added to `acc`.
fn sum16(mut acc: u32, b: &[u8]) -> u32 {
    for w in b.chunks(2) {
        let hi = u32::from(w[0]) << 8;
        acc += hi | w.get(1).map_or(0, |&lo| u32::from(lo));
    }
    acc
}

/// Folds a sum to the 16-bit Internet checksum.
fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// The window scale Linux offers (`tcp_select_initial_window`): the
/// shift that brings the largest receive buffer under 64 KiB, at most 14.
fn wscale() -> u8 {
    let mut space = super::sysctl::TCP_RMEM_MAX
        .get()
        .max(super::sysctl::RMEM_MAX.get());
    let mut ws = 0u8;
    while space > 65535 && ws < 14 {
        space >>= 1;
        ws += 1;
    }
    ws
}

/// The SYN's TCP header from `src` to `dst`, checksum left 0.
fn tcp_header(src: &IpEp, dst: &IpEp, mss: u16, isn: u32) -> Vec<u8> {
    let ts = super::sysctl::TCP_TIMESTAMPS.on();
    let sack = super::sysctl::TCP_SACK.on();
    let ws = super::sysctl::TCP_WINDOW_SCALING.on();
    let mut t = Vec::with_capacity(40);
    t.extend_from_slice(&src.port.to_be_bytes());
    t.extend_from_slice(&dst.port.to_be_bytes());
    t.extend_from_slice(&isn.to_be_bytes());
    t.extend_from_slice(&[0; 4]); // no ACK
    t.extend_from_slice(&[0, 0x02]); // data offset (below), SYN
    t.extend_from_slice(&mss.to_be_bytes()); // window: one segment's worth
    t.extend_from_slice(&[0; 4]); // checksum, urgent pointer
    t.extend_from_slice(&[2, 4]);
    t.extend_from_slice(&mss.to_be_bytes());
    if ts {
        if sack {
            t.extend_from_slice(&[4, 2]);
        } else {
            t.extend_from_slice(&[1, 1]);
        }
        t.extend_from_slice(&[8, 10]);
        let now = (crate::platform::mono_ns() / 1_000_000) as u32;
        t.extend_from_slice(&now.to_be_bytes());
        t.extend_from_slice(&[0; 4]);
    } else if sack {
        t.extend_from_slice(&[1, 1, 4, 2]);
    }
    if ws {
        t.extend_from_slice(&[1, 3, 3, wscale()]);
    }
    t[12] = ((t.len() / 4) as u8) << 4;
    t
}

/// Whether `ip` is an IPv4 address (as `::ffff:a.b.c.d`).
fn is_v4(ip: &[u8; 16]) -> bool {
    ip[..12] == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]
}

/// The SYN `src` sent to `dst`: its IP header (IPv4 for an IPv4 or
/// v4-mapped address, else IPv6 without extension headers) and its TCP
/// header, checksums filled in.
fn syn_headers(src: &IpEp, dst: &IpEp, mss: u16, isn: u32) -> Vec<u8> {
    let mut tcp = tcp_header(src, dst, mss, isn);
    let len = tcp.len() as u16;
    let mut out = Vec::with_capacity(60 + tcp.len());
    let pseudo = if is_v4(&src.ip) {
        let total = 20 + len;
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        ip[6] = 0x40; // DF
        ip[8] = super::sysctl::IP_DEFAULT_TTL.get().min(255) as u8;
        ip[9] = IPPROTO_TCP as u8;
        ip[12..16].copy_from_slice(&src.ip[12..]);
        ip[16..20].copy_from_slice(&dst.ip[12..]);
        let c = fold(sum16(0, &ip));
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        out.extend_from_slice(&ip);
        sum16(sum16(0, &ip[12..20]), &[0, IPPROTO_TCP as u8])
    } else {
        let mut ip = [0u8; 40];
        ip[0] = 0x60;
        ip[4..6].copy_from_slice(&len.to_be_bytes());
        ip[6] = IPPROTO_TCP as u8;
        ip[7] = super::sysctl::IPV6_LO_HOP_LIMIT.get().min(255) as u8;
        ip[8..24].copy_from_slice(&src.ip);
        ip[24..40].copy_from_slice(&dst.ip);
        out.extend_from_slice(&ip);
        sum16(sum16(0, &ip[8..40]), &[0, IPPROTO_TCP as u8])
    };
    let c = fold(sum16(sum16(pseudo, &len.to_be_bytes()), &tcp));
    tcp[16..18].copy_from_slice(&c.to_be_bytes());
    out.extend_from_slice(&tcp);
    out
}

impl Socket {
    /// The saved SYN's headers, or None when none is kept (never saved,
    /// or read already).
    fn saved_syn_bytes(&self) -> Option<Vec<u8>> {
        if !self.ctl.lock().opts.syn_saved {
            return None;
        }
        let d = self.info.domain;
        let peer = IpEp::parse(&self.peer_addr().ok()?, d).ok()?;
        let local = IpEp::parse(&self.local_addr(), d).ok()?;
        let mss = if is_v4(&peer.ip) {
            super::tcp_info::path_mtu(AF_INET) - 40
        } else {
            super::tcp_info::path_mtu(AF_INET6) - 60
        };
        let isn = (self.cookie() as u32).wrapping_mul(2_654_435_761);
        Some(syn_headers(&peer, &local, mss.min(65535) as u16, isn))
    }

    /// getsockopt(TCP_SAVED_SYN) into `cap` bytes: the headers, once (then
    /// an empty answer); `Err(need)` when they do not fit, which the caller
    /// reports as EINVAL with `need` as the length (do_tcp_getsockopt).
    pub(crate) fn take_saved_syn(&self, cap: usize) -> Result<Vec<u8>, usize> {
        let Some(b) = self.saved_syn_bytes() else {
            return Ok(Vec::new());
        };
        if cap < b.len() {
            return Err(b.len());
        }
        self.ctl.lock().opts.syn_saved = false;
        Ok(b)
    }

    /// getsockopt's TCP_SAVED_SYN on a TCP socket (None for any other
    /// option or socket): see [`Socket::take_saved_syn`]. The C ABI asks
    /// this first, as only it can report the length an EINVAL needs.
    pub(crate) fn saved_syn_opt(
        &self,
        level: i32,
        name: i32,
        cap: usize,
    ) -> Option<Result<Vec<u8>, usize>> {
        let tcp = matches!(self.info.domain, AF_INET | AF_INET6) && self.info.ty == SOCK_STREAM;
        if level != IPPROTO_TCP || name != TCP_SAVED_SYN || !tcp {
            return None;
        }
        Some(self.take_saved_syn(cap))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(ip4: [u8; 4], port: u16) -> IpEp {
        let mut ip = [0u8; 16];
        ip[10] = 0xff;
        ip[11] = 0xff;
        ip[12..].copy_from_slice(&ip4);
        IpEp {
            family: AF_INET,
            ip,
            port,
        }
    }

    #[test]
    fn ipv4_syn_headers_check_and_say_syn() {
        let b = syn_headers(
            &ep([127, 0, 0, 1], 40000),
            &ep([127, 0, 0, 1], 80),
            65495,
            7,
        );
        assert_eq!(b[0], 0x45);
        assert_eq!(b[9], IPPROTO_TCP as u8);
        // The IP header sums to zero with its checksum in.
        assert_eq!(fold(sum16(0, &b[..20])), 0);
        let tcp = &b[20..];
        assert_eq!(u16::from_be_bytes([tcp[2], tcp[3]]), 80);
        assert_eq!(tcp[13] & 0x12, 0x02);
        assert_eq!(20 + usize::from(tcp[12] >> 4) * 4, b.len());
        assert_eq!(usize::from(u16::from_be_bytes([b[2], b[3]])), b.len());
        // The TCP checksum over the pseudo-header and segment is zero.
        let len = tcp.len() as u16;
        let pseudo = sum16(sum16(0, &b[12..20]), &[0, IPPROTO_TCP as u8]);
        assert_eq!(fold(sum16(sum16(pseudo, &len.to_be_bytes()), tcp)), 0);
    }
}

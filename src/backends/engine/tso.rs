//! TCP segmentation offload on a TAP device (`tap`): the engine sends TCP
//! segments of up to 64 KiB, which the kernel cuts to the link's MTU (or
//! takes whole, for its own sockets), as a veth peer's TSO frames are.
//! The link's MTU stays what it is: every segment on the wire fits it.
//!
//! smoltcp sizes its segments by the peer's MSS, so a SYN from a peer
//! whose MSS fits the link's MTU is shown to smoltcp with [`BIG_MSS`]
//! ([`widen_syn_mss`]); every TCP frame longer than the MTU then goes out
//! with a `virtio_net_hdr` asking for segments of the link's MSS
//! ([`offload_header`]), never more than the peer announced. A peer with a
//! smaller MSS keeps it, and smoltcp's segments fit the MTU.

/// The MSS smoltcp is shown for a peer on the link: its segments (with
/// up to 40 bytes of options and the headers) stay within 64 KiB of IP.
pub(crate) const BIG_MSS: u16 = 64_000;
/// The longest frame smoltcp may send: 64 KiB of IP after the Ethernet
/// header.
pub(crate) const MAX_FRAME: usize = 65_535 + ETH;

const ETH: usize = 14;
const TCP: u8 = 6;
/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`.
const NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_GSO_TCPV4`, `VIRTIO_NET_HDR_GSO_TCPV6`.
const GSO_TCPV4: u8 = 1;
const GSO_TCPV6: u8 = 4;

/// Where a frame's TCP header is: its offset, the IP header's length and
/// whether it is IPv6. None for anything but TCP over IPv4 (unfragmented)
/// or IPv6 (no extension header).
fn tcp_at(frame: &[u8]) -> Option<(usize, usize, bool)> {
    let ty = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let (ip_len, v6) = match ty {
        0x0800 => {
            let ihl = usize::from(frame.get(ETH)? & 0x0f) * 4;
            let frag = u16::from_be_bytes([*frame.get(ETH + 6)?, *frame.get(ETH + 7)?]);
            if ihl < 20 || *frame.get(ETH + 9)? != TCP || frag & 0x3fff != 0 {
                return None;
            }
            (ihl, false)
        }
        0x86dd if *frame.get(ETH + 6)? == TCP => (40, true),
        _ => return None,
    };
    let at = ETH + ip_len;
    (frame.len() >= at + 20).then_some((at, ip_len, v6))
}

/// Shows smoltcp [`BIG_MSS`] in place of a SYN's MSS option when that
/// MSS is at least what the link's MTU allows (the peer takes full-sized
/// segments, which is all the kernel's cutting makes). The checksum is
/// left stale: with the TAP's offloads, received checksums are not
/// verified.
pub(crate) fn widen_syn_mss(frame: &mut [u8], mtu: usize) {
    let Some((at, ip_len, _)) = tcp_at(frame) else {
        return;
    };
    let hl = usize::from(frame[at + 12] >> 4) * 4;
    if frame[at + 13] & 0x02 == 0 || hl < 20 || frame.len() < at + hl {
        return;
    }
    let link_mss = mtu.saturating_sub(ip_len + 20);
    let mut i = at + 20;
    while i < at + hl {
        match frame[i] {
            0 => return,
            1 => i += 1,
            kind => {
                let Some(&len) = frame.get(i + 1) else { return };
                if len < 2 || i + usize::from(len) > at + hl {
                    return;
                }
                if kind == 2 && len == 4 {
                    let mss = u16::from_be_bytes([frame[i + 2], frame[i + 3]]);
                    if usize::from(mss) >= link_mss && mss < BIG_MSS {
                        frame[i + 2..i + 4].copy_from_slice(&BIG_MSS.to_be_bytes());
                    }
                    return;
                }
                i += usize::from(len);
            }
        }
    }
}

/// What a TCP frame goes out with: the `virtio_net_hdr` that has the
/// kernel fill its checksum (smoltcp does not: a TAP device's own
/// sockets then do not verify it either, as for a veth peer's) and, for
/// a frame longer than the MTU, cut it into segments of the link's MSS;
/// and the TCP checksum field's offset in the frame with what it must
/// hold then (the pseudo-header's sum, uncomplemented). None for a frame
/// that is not TCP: it goes as it is, its checksums filled by smoltcp.
pub(crate) fn offload_header(frame: &[u8], mtu: usize) -> Option<([u8; 10], usize, [u8; 2])> {
    let (at, ip_len, v6) = tcp_at(frame)?;
    let hl = usize::from(frame[at + 12] >> 4) * 4;
    let seg = if frame.len() > mtu + ETH {
        mtu.checked_sub(ip_len + hl).filter(|&s| s > 0)?
    } else {
        0
    };
    let tcp_len = frame.len() - at;
    let mut sum: u32 = u32::from(TCP);
    let addrs = if v6 {
        sum += (tcp_len >> 16) as u32 + (tcp_len & 0xffff) as u32;
        &frame[ETH + 8..ETH + 40]
    } else {
        sum += tcp_len as u32;
        &frame[ETH + 12..ETH + 20]
    };
    for w in addrs.chunks_exact(2) {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let mut hdr = [0u8; 10];
    hdr[0] = NEEDS_CSUM;
    if seg > 0 {
        hdr[1] = if v6 { GSO_TCPV6 } else { GSO_TCPV4 };
        hdr[2..4].copy_from_slice(&((at + hl) as u16).to_ne_bytes());
    }
    hdr[4..6].copy_from_slice(&(seg as u16).to_ne_bytes());
    hdr[6..8].copy_from_slice(&(at as u16).to_ne_bytes());
    hdr[8..10].copy_from_slice(&16u16.to_ne_bytes());
    Some((hdr, at + 16, (sum as u16).to_be_bytes()))
}

const UDP: u8 = 17;

/// Whether a received frame's TCP or UDP checksum is right (true for any
/// other frame, and for an IPv4 UDP datagram without one). The segment's
/// length is the IP header's, not the frame's (a short frame is padded).
pub(crate) fn l4_checksum_ok(frame: &[u8]) -> bool {
    let Some(ty) = frame.get(12..14) else {
        return true;
    };
    let ip = &frame[ETH.min(frame.len())..];
    let (proto, l4, addrs) = match u16::from_be_bytes([ty[0], ty[1]]) {
        0x0800 if ip.len() >= 20 => {
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            let frag = u16::from_be_bytes([ip[6], ip[7]]);
            if frag & 0x3fff != 0 || ihl < 20 || total < ihl || total > ip.len() {
                return true;
            }
            (ip[9], &ip[ihl..total], &ip[12..20])
        }
        0x86dd if ip.len() >= 40 => {
            let len = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
            if 40 + len > ip.len() {
                return true;
            }
            (ip[6], &ip[40..40 + len], &ip[8..40])
        }
        _ => return true,
    };
    let sum_at = match proto {
        TCP => 16,
        UDP => 6,
        _ => return true,
    };
    if l4.len() < sum_at + 2 {
        return false;
    }
    if proto == UDP && addrs.len() == 8 && l4[6..8] == [0, 0] {
        return true;
    }
    let mut sum = u64::from(proto) + l4.len() as u64;
    for w in addrs.chunks_exact(2).chain(l4.chunks(2)) {
        sum += u64::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum == 0xffff
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    /// An IPv4 TCP frame from 10.0.0.1 to 10.0.0.2 with `opts` and
    /// `payload` bytes, SYN as asked.
    fn v4(opts: &[u8], payload: usize, syn: bool) -> Vec<u8> {
        let hl = 20 + opts.len();
        let mut f = vec![0u8; ETH + 20 + hl + payload];
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        f[ETH] = 0x45;
        f[ETH + 9] = TCP;
        f[ETH + 12..ETH + 16].copy_from_slice(&[10, 0, 0, 1]);
        f[ETH + 16..ETH + 20].copy_from_slice(&[10, 0, 0, 2]);
        let t = ETH + 20;
        f[t + 12] = ((hl / 4) as u8) << 4;
        f[t + 13] = if syn { 0x12 } else { 0x10 };
        f[t + 20..t + hl].copy_from_slice(opts);
        f
    }

    /// Fills the TCP checksum of `f` (from `v4`) and returns it.
    fn with_checksum(mut f: Vec<u8>) -> Vec<u8> {
        let t = ETH + 20;
        let len = f.len() - ETH;
        f[ETH + 2..ETH + 4].copy_from_slice(&(len as u16).to_be_bytes());
        let mut sum = u64::from(TCP) + (f.len() - t) as u64;
        for w in f[ETH + 12..ETH + 20]
            .chunks_exact(2)
            .chain(f[t..].chunks(2))
        {
            sum += u64::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        f[t + 16..t + 18].copy_from_slice(&(!(sum as u16)).to_be_bytes());
        f
    }

    #[test]
    fn a_tcp_checksum_is_checked_over_the_ip_length_not_the_padding() {
        let f = with_checksum(v4(&[], 5, false));
        assert!(l4_checksum_ok(&f));
        let mut padded = f.clone();
        padded.extend_from_slice(&[0xab; 7]);
        assert!(l4_checksum_ok(&padded));
        let mut bad = f.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0x40;
        assert!(!l4_checksum_ok(&bad));
        let mut short = f;
        short.truncate(ETH + 20 + 10);
        short[ETH + 2..ETH + 4].copy_from_slice(&30u16.to_be_bytes());
        assert!(!l4_checksum_ok(&short));
    }

    #[test]
    fn a_syn_with_the_links_mss_is_widened_and_a_smaller_one_kept() {
        let mut f = v4(&[1, 1, 2, 4, 0x05, 0xb4, 1, 1], 0, true);
        widen_syn_mss(&mut f, 1500);
        assert_eq!(&f[ETH + 20 + 22..ETH + 20 + 26], &[2, 4, 0xfa, 0x00]);
        let mut f = v4(&[2, 4, 0x05, 0x78], 0, true);
        widen_syn_mss(&mut f, 1500);
        assert_eq!(&f[ETH + 20 + 20..ETH + 20 + 24], &[2, 4, 0x05, 0x78]);
        let mut f = v4(&[2, 4, 0x05, 0xb4], 0, false);
        widen_syn_mss(&mut f, 1500);
        assert_eq!(&f[ETH + 20 + 20..ETH + 20 + 24], &[2, 4, 0x05, 0xb4]);
    }

    #[test]
    fn a_long_tcp_frame_asks_for_segments_of_the_links_mss() {
        let (hdr, at, _) = offload_header(&v4(&[], 1460, false), 1500).unwrap();
        assert_eq!(&hdr[..6], &[NEEDS_CSUM, 0, 0, 0, 0, 0]);
        assert_eq!(at, 50);
        let f = v4(&[], 60_000, false);
        let (hdr, at, sum) = offload_header(&f, 1500).unwrap();
        assert_eq!((hdr[0], hdr[1]), (NEEDS_CSUM, GSO_TCPV4));
        assert_eq!(u16::from_ne_bytes([hdr[2], hdr[3]]), 54);
        assert_eq!(u16::from_ne_bytes([hdr[4], hdr[5]]), 1460);
        assert_eq!(u16::from_ne_bytes([hdr[6], hdr[7]]), 34);
        assert_eq!(u16::from_ne_bytes([hdr[8], hdr[9]]), 16);
        assert_eq!(at, 50);
        // 0x0a00 + 0x0001 + 0x0a00 + 0x0002 + 6 + 60020, folded.
        let s: u32 = 0x0a00 + 1 + 0x0a00 + 2 + 6 + 60_020;
        let s = (s & 0xffff) + (s >> 16);
        assert_eq!(sum, (s as u16).to_be_bytes());
    }
}

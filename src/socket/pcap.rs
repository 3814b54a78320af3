//! Packets synthesized for capture (`USOCK_PCAP`, issue 16): the traffic of
//! user-space TCP and UDP sockets as the IPv4/IPv6 packets a kernel would
//! have put on lo, in pcap's record format, so that `tcpdump -r` and
//! Wireshark show a conversation as if it had crossed an interface.
//!
//! Each process records what its own sockets send (and the handshake, by
//! the connecting end), so that the processes of one network, appending to
//! one file, record every packet once. Sequence numbers are the stream
//! offsets plus an initial number both ends derive from the connection's
//! addresses ([`isn`]), so the two directions agree without talking.
//! Nothing here does I/O: the hosted platform's `capture` module writes
//! the file (its header, then these records).

use alloc::vec::Vec;

use crate::addr::IpEp;

/// TCP header flags.
pub mod flags {
    /// FIN: no more data from the sender.
    pub const FIN: u8 = 0x01;
    /// SYN: synchronise sequence numbers.
    pub const SYN: u8 = 0x02;
    /// RST: reset the connection.
    pub const RST: u8 = 0x04;
    /// PSH: push the data to the application.
    pub const PSH: u8 = 0x08;
    /// ACK: the acknowledgement number is valid.
    pub const ACK: u8 = 0x10;
}

/// The most payload one synthesized packet carries: a send larger than this
/// is recorded as several segments, as lo's MTU would cut it.
pub const MAX_PAYLOAD: usize = 65_000;

const V4_MAPPED: [u8; 12] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

fn is_v4(e: &IpEp) -> bool {
    e.ip[..12] == V4_MAPPED
}

/// The initial sequence number of the direction `src` → `dst`: a hash of
/// the two endpoints, so each end computes the other's.
pub fn isn(src: &IpEp, dst: &IpEp) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in src
        .ip
        .iter()
        .chain(&src.port.to_be_bytes())
        .chain(&dst.ip)
        .chain(&dst.port.to_be_bytes())
    {
        h = (h ^ u32::from(*b)).wrapping_mul(0x0100_0193);
    }
    h
}

/// The Internet checksum of `parts` (RFC 1071), as the final 16 bits.
fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    let mut odd: Option<u8> = None;
    for p in parts {
        for &b in p.iter() {
            match odd.take() {
                Some(hi) => sum += u32::from(u16::from_be_bytes([hi, b])),
                None => odd = Some(b),
            }
        }
    }
    if let Some(hi) = odd {
        sum += u32::from(u16::from_be_bytes([hi, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Appends the IP header for `proto` (6 TCP, 17 UDP) carrying `l4_len`
/// bytes, and returns the pseudo-header the transport checksum covers.
fn ip_header(out: &mut Vec<u8>, src: &IpEp, dst: &IpEp, proto: u8, l4_len: usize) -> Vec<u8> {
    let mut pseudo = Vec::with_capacity(40);
    if is_v4(src) && is_v4(dst) {
        let start = out.len();
        let total = (20 + l4_len) as u16;
        out.extend_from_slice(&[0x45, 0]);
        out.extend_from_slice(&total.to_be_bytes());
        out.extend_from_slice(&[0, 0, 0x40, 0, 64, proto, 0, 0]);
        out.extend_from_slice(&src.ip[12..]);
        out.extend_from_slice(&dst.ip[12..]);
        let c = checksum(&[&out[start..start + 20]]);
        out[start + 10..start + 12].copy_from_slice(&c.to_be_bytes());
        pseudo.extend_from_slice(&src.ip[12..]);
        pseudo.extend_from_slice(&dst.ip[12..]);
        pseudo.extend_from_slice(&[0, proto]);
        pseudo.extend_from_slice(&(l4_len as u16).to_be_bytes());
    } else {
        out.extend_from_slice(&[0x60, 0, 0, 0]);
        out.extend_from_slice(&(l4_len as u16).to_be_bytes());
        out.extend_from_slice(&[proto, 64]);
        out.extend_from_slice(&src.ip);
        out.extend_from_slice(&dst.ip);
        pseudo.extend_from_slice(&src.ip);
        pseudo.extend_from_slice(&dst.ip);
        pseudo.extend_from_slice(&(l4_len as u32).to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, proto]);
    }
    pseudo
}

/// Appends one TCP packet (IP header included) from `src` to `dst`.
pub fn tcp_packet(
    out: &mut Vec<u8>,
    src: &IpEp,
    dst: &IpEp,
    seq: u32,
    ack: u32,
    fl: u8,
    payload: &[u8],
) {
    let l4_len = 20 + payload.len();
    let pseudo = ip_header(out, src, dst, 6, l4_len);
    let start = out.len();
    out.extend_from_slice(&src.port.to_be_bytes());
    out.extend_from_slice(&dst.port.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&ack.to_be_bytes());
    out.extend_from_slice(&[0x50, fl]);
    out.extend_from_slice(&65_535u16.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(payload);
    let c = checksum(&[&pseudo, &out[start..]]);
    out[start + 16..start + 18].copy_from_slice(&c.to_be_bytes());
}

/// Appends one UDP packet (IP header included) from `src` to `dst`.
pub fn udp_packet(out: &mut Vec<u8>, src: &IpEp, dst: &IpEp, payload: &[u8]) {
    let l4_len = 8 + payload.len();
    let pseudo = ip_header(out, src, dst, 17, l4_len);
    let start = out.len();
    out.extend_from_slice(&src.port.to_be_bytes());
    out.extend_from_slice(&dst.port.to_be_bytes());
    out.extend_from_slice(&(l4_len as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(payload);
    let c = match checksum(&[&pseudo, &out[start..]]) {
        0 => 0xffff,
        c => c,
    };
    out[start + 6..start + 8].copy_from_slice(&c.to_be_bytes());
}

/// Wraps `packet` in a pcap record stamped `realtime_ns` (since the epoch)
/// and appends it to `out`.
pub fn record(out: &mut Vec<u8>, realtime_ns: u64, packet: &[u8]) {
    let secs = (realtime_ns / 1_000_000_000) as u32;
    let usecs = ((realtime_ns % 1_000_000_000) / 1000) as u32;
    let len = packet.len() as u32;
    out.extend_from_slice(&secs.to_le_bytes());
    out.extend_from_slice(&usecs.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(packet);
}

/// The records of a TCP data send: `data` at stream offset `offset` of the
/// direction `src` → `dst`, after `acked` bytes received the other way, cut
/// into segments of at most [`MAX_PAYLOAD`].
pub fn tcp_data(
    out: &mut Vec<u8>,
    now_ns: u64,
    src: &IpEp,
    dst: &IpEp,
    offset: u64,
    acked: u64,
    data: &[u8],
) {
    let seq0 = isn(src, dst).wrapping_add(1).wrapping_add(offset as u32);
    let ack = isn(dst, src).wrapping_add(1).wrapping_add(acked as u32);
    let mut pkt = Vec::new();
    let mut done = 0;
    for chunk in data.chunks(MAX_PAYLOAD) {
        pkt.clear();
        tcp_packet(
            &mut pkt,
            src,
            dst,
            seq0.wrapping_add(done as u32),
            ack,
            flags::ACK | flags::PSH,
            chunk,
        );
        record(out, now_ns, &pkt);
        done += chunk.len();
    }
}

/// The records of a connection's three-way handshake, `client` connecting
/// to `server` (recorded by the connecting end when connect() succeeds).
pub fn tcp_handshake(out: &mut Vec<u8>, now_ns: u64, client: &IpEp, server: &IpEp) {
    let (c, s) = (isn(client, server), isn(server, client));
    let mut pkt = Vec::new();
    tcp_packet(&mut pkt, client, server, c, 0, flags::SYN, &[]);
    record(out, now_ns, &pkt);
    pkt.clear();
    tcp_packet(
        &mut pkt,
        server,
        client,
        s,
        c.wrapping_add(1),
        flags::SYN | flags::ACK,
        &[],
    );
    record(out, now_ns, &pkt);
    pkt.clear();
    tcp_packet(
        &mut pkt,
        client,
        server,
        c.wrapping_add(1),
        s.wrapping_add(1),
        flags::ACK,
        &[],
    );
    record(out, now_ns, &pkt);
}

/// The record of a FIN (or, with `reset`, a RST) from `src` after `sent`
/// bytes, having received `acked`.
pub fn tcp_end(
    out: &mut Vec<u8>,
    now_ns: u64,
    src: &IpEp,
    dst: &IpEp,
    sent: u64,
    acked: u64,
    reset: bool,
) {
    let seq = isn(src, dst).wrapping_add(1).wrapping_add(sent as u32);
    let ack = isn(dst, src).wrapping_add(1).wrapping_add(acked as u32);
    let fl = if reset {
        flags::RST | flags::ACK
    } else {
        flags::FIN | flags::ACK
    };
    let mut pkt = Vec::new();
    tcp_packet(&mut pkt, src, dst, seq, ack, fl, &[]);
    record(out, now_ns, &pkt);
}

/// The record of one UDP datagram.
pub fn udp_datagram(out: &mut Vec<u8>, now_ns: u64, src: &IpEp, dst: &IpEp, data: &[u8]) {
    // A datagram larger than an IP packet is recorded cut to fit (the
    // record says so by its length); it cannot be on lo whole either.
    let data = &data[..data.len().min(65_507)];
    let mut pkt = Vec::new();
    udp_packet(&mut pkt, src, dst, data);
    record(out, now_ns, &pkt);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: [u8; 4], port: u16) -> IpEp {
        let mut ip = [0u8; 16];
        ip[..12].copy_from_slice(&V4_MAPPED);
        ip[12..].copy_from_slice(&a);
        IpEp {
            family: crate::consts::AF_INET,
            ip,
            port,
        }
    }

    #[test]
    fn ipv4_header_checksum_verifies() {
        let mut out = Vec::new();
        udp_packet(
            &mut out,
            &v4([127, 0, 0, 1], 1000),
            &v4([127, 0, 0, 1], 2000),
            b"hello",
        );
        assert_eq!(out.len(), 20 + 8 + 5);
        assert_eq!(
            checksum(&[&out[..20]]),
            0,
            "a header with its checksum sums to zero"
        );
        assert_eq!(&out[20..22], &1000u16.to_be_bytes());
        assert_eq!(&out[28..], b"hello");
    }

    #[test]
    fn tcp_checksum_covers_the_pseudo_header() {
        let (a, b) = (v4([127, 0, 0, 1], 40000), v4([127, 0, 0, 2], 80));
        let mut out = Vec::new();
        tcp_packet(&mut out, &a, &b, 7, 9, flags::ACK, b"xyz");
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&[127, 0, 0, 1, 127, 0, 0, 2, 0, 6]);
        pseudo.extend_from_slice(&(23u16).to_be_bytes());
        assert_eq!(checksum(&[&pseudo, &out[20..]]), 0);
    }

    #[test]
    fn both_ends_derive_the_same_sequence_numbers() {
        let (a, b) = (v4([127, 0, 0, 1], 40000), v4([127, 0, 0, 1], 80));
        assert_ne!(isn(&a, &b), isn(&b, &a));
        let mut out = Vec::new();
        tcp_handshake(&mut out, 0, &a, &b);
        // Three records of 16 + 40 bytes.
        assert_eq!(out.len(), 3 * 56);
        let syn_ack_ack = u32::from_be_bytes(out[56 + 16 + 28..56 + 16 + 32].try_into().unwrap());
        assert_eq!(syn_ack_ack, isn(&a, &b).wrapping_add(1));
    }

    #[test]
    fn a_large_send_is_cut_into_segments_with_consecutive_sequence_numbers() {
        let (a, b) = (v4([127, 0, 0, 1], 1), v4([127, 0, 0, 1], 2));
        let data = alloc::vec![5u8; MAX_PAYLOAD + 10];
        let mut out = Vec::new();
        tcp_data(&mut out, 0, &a, &b, 100, 0, &data);
        let first_len = u32::from_le_bytes(out[8..12].try_into().unwrap()) as usize;
        assert_eq!(first_len, 40 + MAX_PAYLOAD);
        let second = 16 + first_len;
        let seq1 = u32::from_be_bytes(out[16 + 24..16 + 28].try_into().unwrap());
        let seq2 = u32::from_be_bytes(out[second + 16 + 24..second + 16 + 28].try_into().unwrap());
        assert_eq!(seq2.wrapping_sub(seq1), MAX_PAYLOAD as u32);
        assert_eq!(seq1, isn(&a, &b).wrapping_add(101));
    }
}

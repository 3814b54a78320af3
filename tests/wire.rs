//! Tests of the fragment wire encoding (`backend::wire`) through its public API.
//!
//! Frames are also built independently here (`Raw`, with a bitwise CRC-32C), so
//! the tests check the documented layout, not just that `encode` and `decode`
//! agree with each other.

use proptest::prelude::*;
use userspacesock::backend::wire::{
    decode, decode_header, encode, encode_vec, encoded_len, FragHeader, FragKind, Fragment,
    WireError, FLAG_EOR, FLAG_FIN, FLAG_RST, HEADER_LEN, MAX_ADDR, MAX_FRAME_LEN, MAX_PAYLOAD,
    WIRE_VERSION,
};

// ---------------------------------------------------------------------------
// An independent encoder of raw frames.

/// Bitwise CRC-32C (Castagnoli, reflected 0x82F63B78), the reference the
/// table-driven one in the library must match.
fn crc32c(parts: &[&[u8]]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for part in parts {
        for &b in *part {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0x82F6_3B78
                } else {
                    c >> 1
                };
            }
        }
    }
    !c
}

/// A frame's fields as raw numbers, any of which may be invalid.
#[derive(Clone, Debug)]
struct Raw {
    magic: [u8; 2],
    version: u8,
    kind: u8,
    flags: u16,
    addr_len: u16,
    conn: u64,
    offset: u64,
    dgram_offset: u32,
    dgram_total: u32,
    len: u32,
    /// `None`: the correct CRC-32C.
    checksum: Option<u32>,
    addr: Vec<u8>,
    payload: Vec<u8>,
}

impl Raw {
    fn from_frag(f: &Fragment) -> Raw {
        let h = &f.header;
        Raw {
            magic: *b"US",
            version: WIRE_VERSION,
            kind: match h.kind {
                FragKind::Stream => 1,
                FragKind::Dgram => 2,
            },
            flags: h.flags,
            addr_len: h.addr_len,
            conn: h.conn,
            offset: h.offset,
            dgram_offset: h.dgram_offset,
            dgram_total: h.dgram_total,
            len: h.len,
            checksum: None,
            addr: f.addr.to_vec(),
            payload: f.payload.to_vec(),
        }
    }

    /// The header with the given checksum value.
    fn header(&self, checksum: u32) -> Vec<u8> {
        let mut v = Vec::with_capacity(HEADER_LEN);
        v.extend_from_slice(&self.magic);
        v.push(self.version);
        v.push(self.kind);
        v.extend_from_slice(&self.flags.to_be_bytes());
        v.extend_from_slice(&self.addr_len.to_be_bytes());
        v.extend_from_slice(&self.conn.to_be_bytes());
        v.extend_from_slice(&self.offset.to_be_bytes());
        v.extend_from_slice(&self.dgram_offset.to_be_bytes());
        v.extend_from_slice(&self.dgram_total.to_be_bytes());
        v.extend_from_slice(&self.len.to_be_bytes());
        v.extend_from_slice(&checksum.to_be_bytes());
        assert_eq!(v.len(), HEADER_LEN);
        v
    }

    /// Header, address and payload as they are (whatever the length fields
    /// say), with the correct checksum unless overridden.
    fn bytes(&self) -> Vec<u8> {
        let crc = self
            .checksum
            .unwrap_or_else(|| crc32c(&[&self.header(0), &self.addr, &self.payload]));
        let mut v = self.header(crc);
        v.extend_from_slice(&self.addr);
        v.extend_from_slice(&self.payload);
        v
    }
}

// ---------------------------------------------------------------------------
// Sample fragments.

fn stream(offset: u64, flags: u16, payload: &[u8]) -> Fragment<'_> {
    Fragment {
        header: FragHeader {
            kind: FragKind::Stream,
            flags,
            conn: 7,
            offset,
            dgram_offset: 0,
            dgram_total: 0,
            len: payload.len() as u32,
            addr_len: 0,
        },
        addr: &[],
        payload,
    }
}

fn dgram<'a>(id: u64, at: u32, total: u32, addr: &'a [u8], payload: &'a [u8]) -> Fragment<'a> {
    Fragment {
        header: FragHeader {
            kind: FragKind::Dgram,
            flags: 0,
            conn: u64::MAX,
            offset: id,
            dgram_offset: at,
            dgram_total: total,
            len: payload.len() as u32,
            addr_len: addr.len() as u16,
        },
        addr,
        payload,
    }
}

const ADDR6: [u8; 28] = [
    10, 0, 0x1f, 0x90, 0, 0, 0, 0, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 1,
];

/// Valid fragments of many shapes (payloads are `'static`).
fn samples() -> Vec<Fragment<'static>> {
    static DATA: [u8; 300] = {
        let mut d = [0u8; 300];
        let mut i = 0;
        while i < 300 {
            d[i] = (i * 7 + 3) as u8;
            i += 1;
        }
        d
    };
    static ADDR_MAX: [u8; MAX_ADDR] = [0xA5; MAX_ADDR];
    vec![
        stream(0, 0, b"hello"),
        stream(0, 0, &DATA[..1]),
        stream(1 << 40, 0, &DATA),
        stream(12, FLAG_FIN, b"bye"),
        stream(99, FLAG_FIN, b""),
        stream(5, FLAG_RST, b""),
        stream(u64::MAX - 300, FLAG_FIN, &DATA),
        stream(u64::MAX, FLAG_FIN, b""),
        Fragment {
            addr: &ADDR6,
            header: FragHeader {
                addr_len: ADDR6.len() as u16,
                ..stream(3, 0, b"x").header
            },
            ..stream(3, 0, b"x")
        },
        dgram(0, 0, 5, &[], b"whole"),
        dgram(1, 0, 0, &[], b""),
        dgram(2, 0, 300, &ADDR6, &DATA[..100]),
        dgram(2, 100, 300, &ADDR6, &DATA[100..250]),
        dgram(2, 250, 300, &ADDR6, &DATA[250..]),
        dgram(u64::MAX, u32::MAX - 3, u32::MAX, &ADDR_MAX, b"end"),
        dgram(3, 0, 1, &ADDR_MAX, &DATA[..1]),
    ]
}

// ---------------------------------------------------------------------------
// Round trips and layout.

#[test]
fn samples_round_trip_and_match_the_documented_layout() {
    for f in samples() {
        let bytes = encode_vec(&f).unwrap();
        assert_eq!(bytes.len(), encoded_len(&f.header));
        assert_eq!(bytes, Raw::from_frag(&f).bytes(), "layout of {f:?}");
        let (g, used) = decode(&bytes).unwrap();
        assert_eq!(g, f);
        assert_eq!(used, bytes.len());
        assert_eq!(decode_header(&bytes), Ok(f.header));
    }
}

#[test]
fn max_payload_and_max_addr_round_trip() {
    let payload: Vec<u8> = (0..MAX_PAYLOAD).map(|i| (i % 251) as u8).collect();
    let addr = [0x5Au8; MAX_ADDR];
    let f = Fragment {
        header: FragHeader {
            addr_len: MAX_ADDR as u16,
            ..stream(0, FLAG_FIN, &payload).header
        },
        addr: &addr,
        payload: &payload,
    };
    let bytes = encode_vec(&f).unwrap();
    assert_eq!(bytes.len(), MAX_FRAME_LEN);
    let (g, used) = decode(&bytes).unwrap();
    assert_eq!((g, used), (f, MAX_FRAME_LEN));
}

#[test]
fn encode_into_caller_buffer() {
    let f = dgram(9, 0, 4, &ADDR6, b"abcd");
    let n = encoded_len(&f.header);
    assert_eq!(n, HEADER_LEN + ADDR6.len() + 4);

    // Larger buffer: the frame at the start, the rest untouched.
    let mut big = vec![0xEEu8; n + 10];
    assert_eq!(encode(&f, &mut big), Ok(n));
    assert_eq!(&big[..n], &encode_vec(&f).unwrap()[..]);
    assert!(big[n..].iter().all(|&b| b == 0xEE));

    // Too small by any amount: Short with the frame length, nothing written.
    for len in 0..n {
        let mut small = vec![0xEEu8; len];
        assert_eq!(encode(&f, &mut small), Err(WireError::Short { need: n }));
        assert!(small.iter().all(|&b| b == 0xEE));
    }
}

#[test]
fn encode_rejects_slices_that_disagree_with_the_header() {
    let mut f = stream(0, 0, b"abc");
    f.header.len = 2;
    assert_eq!(encode_vec(&f), Err(WireError::Inconsistent));
    let mut f = stream(0, 0, b"abc");
    f.header.addr_len = 1;
    assert_eq!(encode_vec(&f), Err(WireError::Inconsistent));
    let mut f = dgram(0, 0, 3, &ADDR6, b"abc");
    f.addr = &ADDR6[..4];
    let mut out = [0u8; 200];
    assert_eq!(encode(&f, &mut out), Err(WireError::Inconsistent));
    assert!(out.iter().all(|&b| b == 0));
}

#[test]
fn encode_vec_validates_before_allocating() {
    // A 4 GiB length must be refused, not allocated.
    let mut f = stream(0, 0, b"");
    f.header.len = u32::MAX;
    assert_eq!(encode_vec(&f), Err(WireError::TooLong));
}

// ---------------------------------------------------------------------------
// Every error, from a crafted input.

fn base_stream() -> Raw {
    Raw::from_frag(&stream(1000, 0, b"payload"))
}

fn base_dgram() -> Raw {
    Raw::from_frag(&dgram(4, 8, 20, &ADDR6, b"payload"))
}

/// Decodes the raw frame; when a header field is at fault, decode_header
/// must agree, and encode must refuse the same header.
fn check(raw: &Raw, want: WireError) {
    let bytes = raw.bytes();
    assert_eq!(decode(&bytes).map(|_| ()), Err(want), "decode {raw:?}");
    if want != WireError::BadChecksum && !matches!(want, WireError::Short { .. }) {
        assert_eq!(decode_header(&bytes), Err(want), "decode_header {raw:?}");
        // The header alone is enough to be rejected: a stream reader need not
        // wait for the body of a frame whose header is already bad.
        assert_eq!(decode(&bytes[..HEADER_LEN]).map(|_| ()), Err(want));
    }
}

/// Encoding this header (with slices of the right length) must fail.
fn check_encode(h: FragHeader, want: WireError) {
    let addr = vec![0u8; usize::from(h.addr_len)];
    let payload = vec![0u8; (h.len as usize).min(MAX_PAYLOAD + 1)];
    let f = Fragment {
        header: h,
        addr: &addr,
        payload: &payload,
    };
    assert_eq!(encode_vec(&f), Err(want), "encode {h:?}");
    let mut out = vec![0u8; MAX_FRAME_LEN + 16];
    assert_eq!(encode(&f, &mut out), Err(want), "encode {h:?}");
}

#[test]
fn short() {
    let bytes = base_stream().bytes();
    assert_eq!(
        decode(&[]).map(|_| ()),
        Err(WireError::Short { need: HEADER_LEN })
    );
    assert_eq!(
        decode_header(&[]),
        Err(WireError::Short { need: HEADER_LEN })
    );
    assert_eq!(
        decode(&bytes[..bytes.len() - 1]).map(|_| ()),
        Err(WireError::Short { need: bytes.len() })
    );
}

#[test]
fn bad_magic() {
    for magic in [*b"SU", *b"Us", [0, 0], [0xFF, 0xFF], *b"UT"] {
        check(
            &Raw {
                magic,
                ..base_stream()
            },
            WireError::BadMagic,
        );
    }
    // Reported as soon as the byte is there, before the header is complete.
    assert_eq!(decode(b"X").map(|_| ()), Err(WireError::BadMagic));
    assert_eq!(decode_header(b"UX"), Err(WireError::BadMagic));
    assert_eq!(
        decode(b"U").map(|_| ()),
        Err(WireError::Short { need: HEADER_LEN })
    );
}

#[test]
fn bad_version() {
    for version in [0, 2, 0x81, 0xFF] {
        check(
            &Raw {
                version,
                ..base_stream()
            },
            WireError::BadVersion,
        );
    }
    assert_eq!(decode_header(b"US\x02"), Err(WireError::BadVersion));
}

#[test]
fn bad_kind() {
    for kind in [0, 3, 0x80, 0xFF] {
        check(
            &Raw {
                kind,
                ..base_dgram()
            },
            WireError::BadKind,
        );
    }
    assert_eq!(decode_header(b"US\x01\x00"), Err(WireError::BadKind));
    assert_eq!(
        decode_header(b"US\x01\x01"),
        Err(WireError::Short { need: HEADER_LEN })
    );
}

/// EOR ends a record: on a stream fragment with bytes or alone (an empty
/// record), also with FIN; each encodes and decodes back.
#[test]
fn eor_marks_records() {
    for (flags, payload) in [
        (FLAG_EOR, &b"rec"[..]),
        (FLAG_EOR, &b""[..]),
        (FLAG_EOR | FLAG_FIN, &b"last"[..]),
    ] {
        let f = stream(40, flags, payload);
        let bytes = encode_vec(&f).expect("encodes");
        let (g, n) = decode(&bytes).expect("decodes");
        assert_eq!(n, bytes.len());
        assert_eq!(g.header.flags, flags);
        assert_eq!(g.payload, payload);
    }
}

#[test]
fn bad_flags() {
    for flags in [0x10, 0x20, 0x8000, 0xFFFF, FLAG_FIN | 0x10] {
        check(
            &Raw {
                flags,
                ..base_stream()
            },
            WireError::BadFlags,
        );
        check(
            &Raw {
                flags,
                ..base_dgram()
            },
            WireError::BadFlags,
        );
        check_encode(
            FragHeader {
                flags,
                ..stream(0, 0, b"a").header
            },
            WireError::BadFlags,
        );
    }
}

#[test]
fn too_long() {
    for len in [MAX_PAYLOAD as u32 + 1, u32::MAX] {
        // The header alone is rejected; no body needs to arrive.
        let raw = Raw {
            len,
            ..base_stream()
        };
        assert_eq!(decode_header(&raw.bytes()), Err(WireError::TooLong));
        check(&raw, WireError::TooLong);
        check_encode(
            FragHeader {
                len,
                ..stream(0, 0, b"").header
            },
            WireError::TooLong,
        );
        let raw = Raw {
            len,
            dgram_total: u32::MAX,
            dgram_offset: 0,
            ..base_dgram()
        };
        check(&raw, WireError::TooLong);
    }
}

#[test]
fn addr_too_long() {
    for addr_len in [MAX_ADDR as u16 + 1, u16::MAX] {
        check(
            &Raw {
                addr_len,
                ..base_dgram()
            },
            WireError::AddrTooLong,
        );
        check_encode(
            FragHeader {
                addr_len,
                ..dgram(0, 0, 1, &[], b"a").header
            },
            WireError::AddrTooLong,
        );
    }
}

#[test]
fn bad_checksum() {
    let raw = base_dgram();
    let good = crc32c(&[&raw.header(0), &raw.addr, &raw.payload]);
    for checksum in [0, good ^ 1, good ^ 0x8000_0000, !good] {
        check(
            &Raw {
                checksum: Some(checksum),
                ..raw.clone()
            },
            WireError::BadChecksum,
        );
    }
    let mut payload = raw.payload.clone();
    payload[3] ^= 0x20;
    check(
        &Raw {
            payload,
            checksum: Some(good),
            ..raw.clone()
        },
        WireError::BadChecksum,
    );
    let mut addr = raw.addr.clone();
    addr[0] ^= 1;
    check(
        &Raw {
            addr,
            checksum: Some(good),
            ..raw.clone()
        },
        WireError::BadChecksum,
    );
}

/// Each inconsistency, rejected by decode (with a correct checksum) and by
/// encode.
#[test]
fn inconsistent() {
    let s = stream(1000, 0, b"payload").header;
    let d = dgram(4, 8, 20, &[], b"payload").header;
    let cases: Vec<(&str, FragHeader)> = vec![
        (
            "stream with dgram_offset",
            FragHeader {
                dgram_offset: 1,
                ..s
            },
        ),
        (
            "stream with dgram_total",
            FragHeader {
                dgram_total: 7,
                ..s
            },
        ),
        (
            "stream with both dgram fields",
            FragHeader {
                dgram_offset: 1,
                dgram_total: 9,
                ..s
            },
        ),
        (
            "stream offset+len overflows",
            FragHeader {
                offset: u64::MAX - 6,
                ..s
            },
        ),
        (
            "stream offset+len overflows, FIN",
            FragHeader {
                offset: u64::MAX,
                flags: FLAG_FIN,
                ..s
            },
        ),
        ("zero-length stream without FIN", FragHeader { len: 0, ..s }),
        (
            "RST with payload",
            FragHeader {
                flags: FLAG_RST,
                ..s
            },
        ),
        (
            "RST with FIN",
            FragHeader {
                flags: FLAG_RST | FLAG_FIN,
                len: 0,
                ..s
            },
        ),
        (
            "RST with EOR",
            FragHeader {
                flags: FLAG_RST | FLAG_EOR,
                len: 0,
                ..s
            },
        ),
        (
            "EOR on a dgram",
            FragHeader {
                flags: FLAG_EOR,
                ..d
            },
        ),
        (
            "FIN on a dgram",
            FragHeader {
                flags: FLAG_FIN,
                ..d
            },
        ),
        (
            "RST on a dgram",
            FragHeader {
                flags: FLAG_RST,
                ..d
            },
        ),
        (
            "dgram offset+len > total",
            FragHeader {
                dgram_offset: 14,
                ..d
            },
        ),
        (
            "dgram len > total",
            FragHeader {
                dgram_offset: 0,
                dgram_total: 6,
                ..d
            },
        ),
        (
            "dgram offset+len overflows u32",
            FragHeader {
                dgram_offset: u32::MAX - 2,
                dgram_total: u32::MAX,
                ..d
            },
        ),
        (
            "dgram offset beyond an empty dgram",
            FragHeader {
                dgram_offset: 1,
                dgram_total: 0,
                len: 0,
                ..d
            },
        ),
        (
            "zero-length piece of a non-empty dgram",
            FragHeader { len: 0, ..d },
        ),
    ];
    for (what, h) in cases {
        let addr = vec![0u8; usize::from(h.addr_len)];
        let payload = vec![0x61u8; h.len as usize];
        let f = Fragment {
            header: h,
            addr: &addr,
            payload: &payload,
        };
        let raw = Raw::from_frag(&f);
        assert_eq!(
            decode(&raw.bytes()).map(|_| ()),
            Err(WireError::Inconsistent),
            "{what}"
        );
        assert_eq!(
            decode_header(&raw.bytes()),
            Err(WireError::Inconsistent),
            "{what}"
        );
        check_encode(h, WireError::Inconsistent);
    }
}

/// The boundary cases next to each inconsistency are valid.
#[test]
fn boundaries_are_valid() {
    let ok = [
        stream(u64::MAX - 7, 0, b"payload"),
        stream(u64::MAX, FLAG_RST, b""),
        dgram(0, 13, 20, &[], b"payload"),
        dgram(0, u32::MAX - 7, u32::MAX, &[], b"payload"),
        dgram(0, 0, 0, &[], b""),
    ];
    for f in ok {
        let bytes = encode_vec(&f).unwrap();
        assert_eq!(decode(&bytes).unwrap().0, f);
    }
}

// ---------------------------------------------------------------------------
// Corruption, truncation, sequences.

/// Flipping any single bit of a frame makes it rejected; when the flip made
/// the frame look longer, supplying the extra bytes still does not make it
/// acceptable.
#[test]
fn every_single_bit_flip_is_rejected() {
    for f in samples() {
        let good = encode_vec(&f).unwrap();
        for bit in 0..good.len() * 8 {
            let mut bad = good.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            match decode(&bad) {
                Ok(_) => panic!("bit {bit} of {f:?} accepted"),
                Err(WireError::Short { need }) => {
                    assert!(need > bad.len() && need <= MAX_FRAME_LEN);
                    bad.resize(need, 0);
                    assert!(decode(&bad).is_err(), "bit {bit} of {f:?}, padded");
                }
                Err(_) => {}
            }
        }
    }
}

#[test]
fn truncation_at_every_length_is_short() {
    for f in samples() {
        let bytes = encode_vec(&f).unwrap();
        for n in 0..bytes.len() {
            let need = if n < HEADER_LEN {
                HEADER_LEN
            } else {
                bytes.len()
            };
            assert_eq!(
                decode(&bytes[..n]).map(|_| ()),
                Err(WireError::Short { need }),
                "{n}"
            );
            if n < HEADER_LEN {
                assert_eq!(decode_header(&bytes[..n]), Err(WireError::Short { need }));
            } else {
                assert_eq!(decode_header(&bytes[..n]), Ok(f.header));
            }
        }
    }
}

#[test]
fn concatenated_frames_decode_in_sequence() {
    let frags = samples();
    let mut stream_bytes = Vec::new();
    for f in &frags {
        stream_bytes.extend_from_slice(&encode_vec(f).unwrap());
    }
    let mut rest = &stream_bytes[..];
    for f in &frags {
        let (g, used) = decode(rest).unwrap();
        assert_eq!(&g, f);
        rest = &rest[used..];
    }
    assert!(rest.is_empty());
    assert_eq!(
        decode(rest).map(|_| ()),
        Err(WireError::Short { need: HEADER_LEN })
    );
}

/// A byte-stream reader that receives the bytes in chunks of every size
/// from 1 to 97 recovers every frame, guided only by `Short { need }`.
#[test]
fn chunked_stream_reader() {
    let frags = samples();
    let mut wire = Vec::new();
    for f in &frags {
        wire.extend_from_slice(&encode_vec(f).unwrap());
    }
    for chunk in 1..98 {
        let mut buf: Vec<u8> = Vec::new();
        let mut got = Vec::new();
        for piece in wire.chunks(chunk) {
            buf.extend_from_slice(piece);
            loop {
                match decode(&buf) {
                    Ok((g, used)) => {
                        got.push((g.header, g.addr.to_vec(), g.payload.to_vec()));
                        buf.drain(..used);
                    }
                    Err(WireError::Short { need }) => {
                        assert!(need > buf.len());
                        break;
                    }
                    Err(e) => panic!("chunk {chunk}: {e}"),
                }
            }
        }
        assert!(buf.is_empty());
        let want: Vec<_> = frags
            .iter()
            .map(|f| (f.header, f.addr.to_vec(), f.payload.to_vec()))
            .collect();
        assert_eq!(got, want, "chunk {chunk}");
    }
}

#[test]
fn errors_display() {
    assert_eq!(
        WireError::Short { need: 40 }.to_string(),
        "short frame: need 40 bytes"
    );
    assert!(!WireError::Inconsistent.to_string().is_empty());
}

// ---------------------------------------------------------------------------
// Properties.

/// The validity rules of the module doc, written out independently.
fn model_valid(r: &Raw) -> Result<(), WireError> {
    if r.magic != *b"US" {
        return Err(WireError::BadMagic);
    }
    if r.version != 1 {
        return Err(WireError::BadVersion);
    }
    if r.kind != 1 && r.kind != 2 {
        return Err(WireError::BadKind);
    }
    if r.flags & !15 != 0 {
        return Err(WireError::BadFlags);
    }
    if r.len as usize > MAX_PAYLOAD {
        return Err(WireError::TooLong);
    }
    if r.addr_len as usize > MAX_ADDR {
        return Err(WireError::AddrTooLong);
    }
    let (fin, rst, eor) = (r.flags & 1 != 0, r.flags & 2 != 0, r.flags & 8 != 0);
    let ok = if r.kind == 1 {
        r.dgram_offset == 0
            && r.dgram_total == 0
            && u128::from(r.offset) + u128::from(r.len) <= u128::from(u64::MAX)
            && (r.len > 0 || fin || rst || eor)
            && !(rst && (fin || eor || r.len > 0))
            && (r.flags & 4 == 0 || r.len > 0)
    } else {
        r.flags == 0
            && u64::from(r.dgram_offset) + u64::from(r.len) <= u64::from(r.dgram_total)
            && (r.len > 0 || r.dgram_total == 0)
    };
    if ok {
        Ok(())
    } else {
        Err(WireError::Inconsistent)
    }
}

prop_compose! {
    fn valid_fragment()(
        is_stream in any::<bool>(),
        fin in any::<bool>(),
        rst in any::<bool>(),
        conn in any::<u64>(),
        offset in prop_oneof![any::<u64>(), 0..1000u64, (u64::MAX - 1000)..=u64::MAX],
        addr in prop::collection::vec(any::<u8>(), 0..=MAX_ADDR),
        payload in prop::collection::vec(any::<u8>(), 0..300),
        lead in any::<u32>(),
        tail in any::<u32>(),
    ) -> (FragHeader, Vec<u8>, Vec<u8>) {
        let len = payload.len() as u32;
        let header = if is_stream {
            let (flags, payload_len) = if rst { (FLAG_RST, 0) } else { (if fin || len == 0 { FLAG_FIN } else { 0 }, len) };
            FragHeader {
                kind: FragKind::Stream,
                flags,
                conn,
                offset: offset.min(u64::MAX - u64::from(payload_len)),
                dgram_offset: 0,
                dgram_total: 0,
                len: payload_len,
                addr_len: addr.len() as u16,
            }
        } else {
            let room = u32::MAX - len;
            let at = if len == 0 { 0 } else { lead % room.saturating_add(1).max(1) };
            let total = if len == 0 { 0 } else { at + len + tail % (u32::MAX - at - len).saturating_add(1).max(1) };
            FragHeader {
                kind: FragKind::Dgram,
                flags: 0,
                conn,
                offset,
                dgram_offset: at,
                dgram_total: total,
                len,
                addr_len: addr.len() as u16,
            }
        };
        let payload = if header.len == 0 { Vec::new() } else { payload };
        (header, addr, payload)
    }
}

fn small_or_edge_u32() -> impl Strategy<Value = u32> {
    prop_oneof![
        0..40u32,
        Just(u32::MAX),
        (u32::MAX - 40)..=u32::MAX,
        Just(MAX_PAYLOAD as u32),
        Just(MAX_PAYLOAD as u32 + 1),
        any::<u32>(),
    ]
}

prop_compose! {
    /// Frames whose fields are drawn near the validity boundaries, with a
    /// correct checksum and a body as long as the (small) lengths say.
    fn edgy_raw()(
        magic in prop_oneof![8 => Just(*b"US"), 1 => any::<[u8; 2]>()],
        version in prop_oneof![8 => Just(1u8), 1 => any::<u8>()],
        kind in prop_oneof![4 => 1u8..=2, 1 => any::<u8>()],
        flags in prop_oneof![8 => 0u16..4, 1 => any::<u16>()],
        addr_len in prop_oneof![8 => 0u16..=(MAX_ADDR as u16 + 2), 1 => any::<u16>()],
        conn in any::<u64>(),
        offset in prop_oneof![0..100u64, (u64::MAX - 100)..=u64::MAX, any::<u64>()],
        dgram_offset in prop_oneof![3 => Just(0u32), 2 => small_or_edge_u32()],
        dgram_total in prop_oneof![3 => Just(0u32), 2 => small_or_edge_u32()],
        len in prop_oneof![4 => 0u32..60, 1 => small_or_edge_u32()],
        seed in any::<u8>(),
    ) -> Raw {
        let body = |n: usize, k: u8| (0..n.min(400)).map(|i| (i as u8).wrapping_mul(k)).collect::<Vec<u8>>();
        Raw {
            magic, version, kind, flags, addr_len, conn, offset, dgram_offset, dgram_total, len,
            checksum: None,
            addr: body(usize::from(addr_len), seed),
            payload: body(len as usize, seed ^ 0x5A),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn prop_valid_fragments_round_trip((header, addr, payload) in valid_fragment()) {
        let f = Fragment { header, addr: &addr, payload: &payload };
        let bytes = encode_vec(&f).unwrap();
        prop_assert_eq!(&bytes, &Raw::from_frag(&f).bytes());
        let (g, used) = decode(&bytes).unwrap();
        prop_assert_eq!(g, f);
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(decode_header(&bytes), Ok(header));
    }

    #[test]
    fn prop_arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        check_reencodes(&bytes)?;
        // The same bytes behind a valid magic, version and kind get further in.
        let mut framed = b"US\x01\x01".to_vec();
        framed.extend_from_slice(&bytes);
        check_reencodes(&framed)?;
        framed[3] = 2;
        check_reencodes(&framed)?;
    }

    #[test]
    fn prop_edge_headers_follow_the_rules(raw in edgy_raw(), trailing in prop::collection::vec(any::<u8>(), 0..8)) {
        let mut bytes = raw.bytes();
        let want = model_valid(&raw);
        let body_complete = raw.addr.len() == usize::from(raw.addr_len) && raw.payload.len() == raw.len as usize;
        bytes.extend_from_slice(&trailing);
        let got = decode(&bytes);
        match (want, got) {
            (Ok(()), Ok((f, used))) => {
                prop_assert!(body_complete);
                prop_assert_eq!(used, bytes.len() - trailing.len());
                prop_assert_eq!(f.addr, &raw.addr[..]);
                prop_assert_eq!(f.payload, &raw.payload[..]);
                prop_assert_eq!(&encode_vec(&f).unwrap()[..], &bytes[..used]);
            }
            (Ok(()), Err(e)) => {
                // Only possible when the body would be longer than we built.
                prop_assert!(!body_complete, "valid frame rejected: {:?}", e);
            }
            (Err(w), got) => prop_assert_eq!(got.map(|_| ()), Err(w)),
        }
        check_reencodes(&bytes)?;
    }

    #[test]
    fn prop_corrupted_frames_are_rejected(
        (header, addr, payload) in valid_fragment(),
        at in any::<prop::sample::Index>(),
        xor in 1u8..=255,
    ) {
        let f = Fragment { header, addr: &addr, payload: &payload };
        let mut bytes = encode_vec(&f).unwrap();
        let i = at.index(bytes.len());
        bytes[i] ^= xor;
        // CRC-32C detects every error burst of up to 32 bits, so a single
        // corrupted byte is always caught.
        prop_assert!(decode(&bytes).is_err());
    }
}

/// Decoding never panics; when it succeeds, re-encoding gives back exactly
/// the bytes it consumed, and decode_header agrees.
fn check_reencodes(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok((f, used)) = decode(bytes) {
        prop_assert_eq!(&encode_vec(&f).unwrap()[..], &bytes[..used]);
        prop_assert_eq!(decode_header(bytes), Ok(f.header));
    }
    let _ = decode_header(bytes);
    Ok(())
}

//! The portable byte encoding of a fragment.
//!
//! A *fragment* is the unit the frontend hands a backend and a backend hands
//! back: a piece of a stream (at an absolute byte offset) or of a datagram (id,
//! offset inside the datagram, total length), with flags and, for unconnected
//! datagrams, an address. A backend that only moves bytes (a pipe, a serial
//! line, a datagram link, shared memory) ships fragments in the encoding below,
//! and [`decode`] rejects every malformed or corrupted frame.
//!
//! This module uses only `core` and `alloc`, has no `unsafe`, and never panics
//! on any input.
//!
//! # Frame layout (version 1)
//!
//! A frame is a fixed 40-byte header, then `addr_len` address bytes, then `len`
//! payload bytes. Every integer is big-endian (network byte order). There is
//! no padding and no alignment requirement.
//!
//! | Offset | Size | Field          | Meaning                                                          |
//! |-------:|-----:|----------------|------------------------------------------------------------------|
//! |      0 |    2 | `magic`        | the bytes `0x55 0x53` (ASCII `"US"`)                             |
//! |      2 |    1 | `version`      | `1` ([`WIRE_VERSION`])                                           |
//! |      3 |    1 | `kind`         | `1` = stream, `2` = datagram; any other value is invalid         |
//! |      4 |    2 | `flags`        | bit 0 = FIN (`0x0001`), bit 1 = RST (`0x0002`), bit 2 = URG (`0x0004`), bit 3 = EOR (`0x0008`); others 0 |
//! |      6 |    2 | `addr_len`     | address bytes after the header, `0..=128` ([`MAX_ADDR`])         |
//! |      8 |    8 | `conn`         | opaque connection/channel id (any value)                         |
//! |     16 |    8 | `offset`       | stream: absolute byte offset; datagram: datagram id              |
//! |     24 |    4 | `dgram_offset` | datagram: offset of this piece inside the datagram; stream: 0    |
//! |     28 |    4 | `dgram_total`  | datagram: total datagram length; stream: 0                       |
//! |     32 |    4 | `len`          | payload bytes after the address, `0..=1048576` ([`MAX_PAYLOAD`]) |
//! |     36 |    4 | `checksum`     | CRC-32C, see below                                               |
//! |     40 | `addr_len` | `addr`   | address bytes (opaque to this layer)                             |
//! | 40 + `addr_len` | `len` | `payload` | payload bytes                                          |
//!
//! **Checksum**: CRC-32C (Castagnoli; reflected polynomial `0x82F63B78`,
//! initial value `0xFFFFFFFF`, final XOR `0xFFFFFFFF`; the check value of the
//! ASCII bytes `"123456789"` is `0xE3069283`) computed over the 40 header bytes
//! with the checksum field set to zero, followed by the address bytes, followed
//! by the payload bytes. It is the same CRC as iSCSI/SCTP/ext4, so a C backend
//! may use a hardware instruction (SSE4.2 `crc32`, ARMv8 `crc32c*`).
//!
//! # Transports that guarantee integrity
//!
//! The checksum exists for carriers that can corrupt bytes (a serial line, a
//! lossy link). A carrier that cannot, such as a kernel AF_UNIX stream or
//! shared memory between processes of one user, may agree at both ends to
//! write the checksum field as zero ([`encode_header`] with `summed` false)
//! and read frames with [`decode_unsummed`], which applies every header rule
//! but not the checksum. It is a property of the transport, never announced
//! inside a frame: a frame never tells its reader to trust it.
//!
//! # Validity rules
//!
//! A header is valid when all of the following hold; [`decode`],
//! [`decode_header`] and [`encode`] all apply them, so nothing [`encode`]
//! writes is rejected by [`decode`] and everything [`decode`] accepts
//! re-encodes to the same bytes.
//!
//! - magic, version and kind as above ([`WireError::BadMagic`],
//!   [`WireError::BadVersion`], [`WireError::BadKind`]);
//! - no flag bits other than FIN, RST, URG and EOR ([`WireError::BadFlags`]);
//! - `len <= MAX_PAYLOAD` ([`WireError::TooLong`]);
//! - `addr_len <= MAX_ADDR` ([`WireError::AddrTooLong`]);
//! - otherwise [`WireError::Inconsistent`] unless:
//!   - **stream**: `dgram_offset == 0` and `dgram_total == 0`;
//!     `offset + len` does not overflow a `u64`; a zero-length fragment carries
//!     FIN, RST or EOR (an empty fragment without any means nothing; an empty
//!     one with EOR is an empty record); RST is alone: no payload, no FIN and
//!     no EOR (a reset carries no data, so whether such data was delivered
//!     is never ambiguous); URG marks the last payload byte, so it needs one
//!     (`len > 0`);
//!   - **datagram**: no flags (FIN, RST and URG are stream notions);
//!     `dgram_offset + len <= dgram_total` (computed without overflow); a
//!     zero-length fragment only for the empty datagram (`dgram_total == 0`,
//!     hence `dgram_offset == 0`). `dgram_total` itself is not bounded here;
//!     the receiver's Socket Buffer bounds it.
//!
//! An address is allowed on either kind; `conn` is never interpreted.
//!
//! # Reading frames from a byte stream
//!
//! [`decode`] returns [`WireError::Short`] with `need`, the total buffer
//! length required to make progress: first [`HEADER_LEN`], then the whole
//! frame. A reader keeps appending bytes until it has `need` of them and
//! decodes again; on success it drops the consumed bytes and continues with
//! the next frame. [`decode_header`] validates the header alone (not the
//! checksum, which covers the whole frame) so a reader can learn the frame
//! length with [`encoded_len`] before the body arrives.
//!
//! Bad magic, version or kind are reported as soon as the bytes holding them
//! are present, even before a full header has arrived.
//!
//! Limitation: the single checksum sits at the end of the header and covers
//! the whole frame, so a corrupted `len` or `addr_len` that still passes the
//! header checks makes a stream reader wait for (at most
//! `HEADER_LEN + MAX_ADDR + MAX_PAYLOAD`) bytes before [`WireError::BadChecksum`]
//! reports the corruption. A stream transport should treat any error other than
//! `Short` as fatal for the byte stream (there is no resynchronisation marker).

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use super::crc32c::Crc32c;

/// Version of the encoding written into every frame; a frame with another
/// version is rejected with [`WireError::BadVersion`].
pub const WIRE_VERSION: u8 = 1;

/// Length in bytes of the fixed frame header.
pub const HEADER_LEN: usize = 40;

/// Largest payload a single fragment may carry (1 MiB); a longer `len` is
/// rejected with [`WireError::TooLong`].
pub const MAX_PAYLOAD: usize = 1 << 20;

/// Largest address a fragment may carry, in bytes; a longer `addr_len` is
/// rejected with [`WireError::AddrTooLong`].
pub const MAX_ADDR: usize = crate::addr::ADDR_MAX;

/// Largest possible frame: header, maximal address and maximal payload.
pub const MAX_FRAME_LEN: usize = HEADER_LEN + MAX_ADDR + MAX_PAYLOAD;

/// Flag: end of stream (stream fragments only). The fragment's end
/// (`offset + len`) is the end of the stream.
pub const FLAG_FIN: u16 = 1;

/// Flag: the connection was reset (stream fragments only, no payload, not
/// combined with [`FLAG_FIN`]).
pub const FLAG_RST: u16 = 2;

/// Flag: the fragment's last byte is urgent data (stream fragments with
/// payload only): TCP's urgent pointer, from a send() with MSG_OOB.
pub const FLAG_URG: u16 = 4;

/// Flag: a record ends with this fragment's last byte (stream fragments
/// of a record-keeping connection, AF_UNIX `SOCK_SEQPACKET`): the receiver
/// returns the bytes up to here, and no later ones, in one read. Each
/// record's last fragment carries it; a record of no bytes is an empty
/// fragment with it. Added after [`FLAG_URG`]: a stream that keeps no
/// records never sets it, so older peers see the same frames.
pub const FLAG_EOR: u16 = 8;

/// Every flag bit this version defines; any other bit set is
/// [`WireError::BadFlags`].
pub const FLAGS_KNOWN: u16 = FLAG_FIN | FLAG_RST | FLAG_URG | FLAG_EOR;

/// The magic bytes that start every frame (ASCII `"US"`).
pub const MAGIC: [u8; 2] = *b"US";

/// Wire value of [`FragKind::Stream`].
const KIND_STREAM: u8 = 1;
/// Wire value of [`FragKind::Dgram`].
const KIND_DGRAM: u8 = 2;

// Byte offsets of the header fields (see the table in the module doc).
const OFF_MAGIC: usize = 0;
const OFF_VERSION: usize = 2;
const OFF_KIND: usize = 3;
const OFF_FLAGS: usize = 4;
const OFF_ADDR_LEN: usize = 6;
const OFF_CONN: usize = 8;
const OFF_OFFSET: usize = 16;
const OFF_DGRAM_OFFSET: usize = 24;
const OFF_DGRAM_TOTAL: usize = 28;
const OFF_LEN: usize = 32;
const OFF_CHECKSUM: usize = 36;
const _: () = assert!(OFF_CHECKSUM + 4 == HEADER_LEN);

/// Whether a fragment belongs to a byte stream or to a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FragKind {
    /// A piece of a byte stream at an absolute offset.
    Stream,
    /// A piece of a datagram (id, offset inside the datagram, total length).
    Dgram,
}

impl FragKind {
    /// The byte that encodes this kind.
    const fn to_wire(self) -> u8 {
        match self {
            FragKind::Stream => KIND_STREAM,
            FragKind::Dgram => KIND_DGRAM,
        }
    }

    /// The kind a byte encodes, if any.
    const fn from_wire(b: u8) -> Option<Self> {
        match b {
            KIND_STREAM => Some(FragKind::Stream),
            KIND_DGRAM => Some(FragKind::Dgram),
            _ => None,
        }
    }
}

/// The fixed header of a fragment, as numbers (the checksum is not kept: it
/// is computed by [`encode`] and verified by [`decode`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragHeader {
    /// Stream or datagram.
    pub kind: FragKind,
    /// [`FLAG_FIN`], [`FLAG_RST`], [`FLAG_URG`] (stream only).
    pub flags: u16,
    /// Opaque connection/channel id, for byte-moving backends that multiplex.
    pub conn: u64,
    /// Stream: absolute byte offset of the payload; datagram: datagram id.
    pub offset: u64,
    /// Datagram: offset of this payload inside the datagram (0 for a stream).
    pub dgram_offset: u32,
    /// Datagram: total length of the datagram (0 for a stream).
    pub dgram_total: u32,
    /// Payload length in bytes (at most [`MAX_PAYLOAD`]).
    pub len: u32,
    /// Length of the address bytes that follow the header (at most
    /// [`MAX_ADDR`]).
    pub addr_len: u16,
}

/// A fragment: its header and borrowed address and payload bytes.
///
/// `addr.len()` must equal `header.addr_len` and `payload.len()` must equal
/// `header.len`; [`encode`] rejects a mismatch as
/// [`WireError::Inconsistent`], and [`decode`] always returns matching slices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fragment<'a> {
    /// The header.
    pub header: FragHeader,
    /// The address bytes (empty when `header.addr_len == 0`).
    pub addr: &'a [u8],
    /// The payload bytes.
    pub payload: &'a [u8],
}

impl<'a> Fragment<'a> {
    /// Stream bytes `payload` at absolute offset `offset`, with `flags`
    /// ([`FLAG_FIN`], [`FLAG_RST`]; an empty payload with a flag is a
    /// control fragment). A payload longer than `u32::MAX` is cut.
    pub fn stream(offset: u64, flags: u16, payload: &'a [u8]) -> Fragment<'a> {
        Fragment {
            header: FragHeader {
                kind: FragKind::Stream,
                flags,
                conn: 0,
                offset,
                dgram_offset: 0,
                dgram_total: 0,
                len: payload.len().min(u32::MAX as usize) as u32,
                addr_len: 0,
            },
            addr: &[],
            payload,
        }
    }

    /// Bytes `payload` at `at` in datagram `id` of `total` bytes, to (or,
    /// from a backend, from) address `addr` (empty: the connected peer).
    pub fn dgram(id: u64, at: u32, total: u32, addr: &'a [u8], payload: &'a [u8]) -> Fragment<'a> {
        Fragment {
            header: FragHeader {
                kind: FragKind::Dgram,
                flags: 0,
                conn: 0,
                offset: id,
                dgram_offset: at,
                dgram_total: total,
                len: payload.len().min(u32::MAX as usize) as u32,
                addr_len: addr.len().min(u16::MAX as usize) as u16,
            },
            addr,
            payload,
        }
    }

    /// The same fragment naming another address (a datagram's source as
    /// its receiver sees it, say).
    pub fn with_addr<'b>(&self, addr: &'b [u8]) -> Fragment<'b>
    where
        'a: 'b,
    {
        let mut f: Fragment<'b> = *self;
        f.addr = addr;
        f.header.addr_len = addr.len().min(u16::MAX as usize) as u16;
        f
    }
}

/// Why a frame could not be encoded or decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// The buffer is too short. `need` is the total buffer length required to
    /// make progress (not the number of missing bytes): when decoding, first
    /// [`HEADER_LEN`], then the whole frame; when encoding, the frame length.
    Short {
        /// Total buffer length needed.
        need: usize,
    },
    /// The frame does not start with [`MAGIC`].
    BadMagic,
    /// The version byte is not [`WIRE_VERSION`].
    BadVersion,
    /// The kind byte is neither stream (1) nor datagram (2).
    BadKind,
    /// A flag bit outside [`FLAGS_KNOWN`] is set.
    BadFlags,
    /// `len` exceeds [`MAX_PAYLOAD`].
    TooLong,
    /// `addr_len` exceeds [`MAX_ADDR`].
    AddrTooLong,
    /// The CRC-32C does not match the frame's contents.
    BadChecksum,
    /// The fields contradict each other (see "Validity rules" in the module
    /// doc), or a [`Fragment`]'s slices do not match its header's lengths.
    Inconsistent,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Short { need } => write!(f, "short frame: need {need} bytes"),
            WireError::BadMagic => f.write_str("bad frame magic"),
            WireError::BadVersion => f.write_str("unsupported wire version"),
            WireError::BadKind => f.write_str("unknown fragment kind"),
            WireError::BadFlags => f.write_str("unknown fragment flags"),
            WireError::TooLong => f.write_str("fragment payload too long"),
            WireError::AddrTooLong => f.write_str("fragment address too long"),
            WireError::BadChecksum => f.write_str("frame checksum mismatch"),
            WireError::Inconsistent => f.write_str("inconsistent fragment fields"),
        }
    }
}

/// Total encoded length of a frame with this header: [`HEADER_LEN`] +
/// `addr_len` + `len`. Saturates at `usize::MAX` instead of overflowing (only
/// possible for invalid headers on targets with a narrow `usize`).
pub fn encoded_len(h: &FragHeader) -> usize {
    let len = usize::try_from(h.len).unwrap_or(usize::MAX);
    HEADER_LEN
        .saturating_add(usize::from(h.addr_len))
        .saturating_add(len)
}

/// Checks the header rules that do not need the frame's bytes (flags,
/// lengths, consistency; see "Validity rules" in the module doc).
fn validate(h: &FragHeader) -> Result<(), WireError> {
    if h.flags & !FLAGS_KNOWN != 0 {
        return Err(WireError::BadFlags);
    }
    if usize::try_from(h.len).map_or(true, |l| l > MAX_PAYLOAD) {
        return Err(WireError::TooLong);
    }
    if usize::from(h.addr_len) > MAX_ADDR {
        return Err(WireError::AddrTooLong);
    }
    let consistent = match h.kind {
        FragKind::Stream => {
            let fin = h.flags & FLAG_FIN != 0;
            let rst = h.flags & FLAG_RST != 0;
            let urg = h.flags & FLAG_URG != 0;
            let eor = h.flags & FLAG_EOR != 0;
            h.dgram_offset == 0
                && h.dgram_total == 0
                && h.offset.checked_add(u64::from(h.len)).is_some()
                && (h.len != 0 || fin || rst || eor)
                && !(rst && (fin || eor || h.len != 0))
                && !(urg && h.len == 0)
        }
        FragKind::Dgram => {
            h.flags == 0
                && h.dgram_offset
                    .checked_add(h.len)
                    .is_some_and(|end| end <= h.dgram_total)
                && (h.len != 0 || h.dgram_total == 0)
        }
    };
    if consistent {
        Ok(())
    } else {
        Err(WireError::Inconsistent)
    }
}

/// Reads `N` bytes at header offset `AT`. The bounds are checked at compile
/// time, so the fallback is unreachable.
fn field<const AT: usize, const N: usize>(h: &[u8; HEADER_LEN]) -> [u8; N] {
    const { assert!(AT + N <= HEADER_LEN) };
    let mut out = [0u8; N];
    if let Some(src) = h.get(AT..AT + N) {
        for (d, s) in out.iter_mut().zip(src) {
            *d = *s;
        }
    }
    out
}

/// Writes `N` bytes at header offset `AT`. The bounds are checked at compile
/// time.
fn put<const AT: usize, const N: usize>(h: &mut [u8; HEADER_LEN], v: [u8; N]) {
    const { assert!(AT + N <= HEADER_LEN) };
    if let Some(dst) = h.get_mut(AT..AT + N) {
        for (d, s) in dst.iter_mut().zip(v) {
            *d = s;
        }
    }
}

/// Checks magic, version and kind on whatever prefix of a frame is present.
fn check_prefix(buf: &[u8]) -> Result<(), WireError> {
    if buf.iter().zip(MAGIC).any(|(got, want)| *got != want) {
        return Err(WireError::BadMagic);
    }
    if let Some(&v) = buf.get(OFF_VERSION) {
        if v != WIRE_VERSION {
            return Err(WireError::BadVersion);
        }
    }
    if let Some(&k) = buf.get(OFF_KIND) {
        if FragKind::from_wire(k).is_none() {
            return Err(WireError::BadKind);
        }
    }
    Ok(())
}

/// Parses and validates the fixed header at the start of `buf` (which may be
/// longer). Returns the header, the stored checksum, the raw header bytes and
/// the bytes after the header.
fn parse_header(buf: &[u8]) -> Result<Parsed<'_>, WireError> {
    check_prefix(buf)?;
    let Some((raw, rest)) = buf.split_first_chunk::<HEADER_LEN>() else {
        return Err(WireError::Short { need: HEADER_LEN });
    };
    let kind = FragKind::from_wire(field::<OFF_KIND, 1>(raw)[0]).ok_or(WireError::BadKind)?;
    let h = FragHeader {
        kind,
        flags: u16::from_be_bytes(field::<OFF_FLAGS, 2>(raw)),
        conn: u64::from_be_bytes(field::<OFF_CONN, 8>(raw)),
        offset: u64::from_be_bytes(field::<OFF_OFFSET, 8>(raw)),
        dgram_offset: u32::from_be_bytes(field::<OFF_DGRAM_OFFSET, 4>(raw)),
        dgram_total: u32::from_be_bytes(field::<OFF_DGRAM_TOTAL, 4>(raw)),
        len: u32::from_be_bytes(field::<OFF_LEN, 4>(raw)),
        addr_len: u16::from_be_bytes(field::<OFF_ADDR_LEN, 2>(raw)),
    };
    validate(&h)?;
    let checksum = u32::from_be_bytes(field::<OFF_CHECKSUM, 4>(raw));
    Ok(Parsed {
        header: h,
        checksum,
        raw,
        rest,
    })
}

/// A validated header and where it came from.
struct Parsed<'a> {
    /// The decoded header.
    header: FragHeader,
    /// The checksum stored in the frame.
    checksum: u32,
    /// The raw header bytes.
    raw: &'a [u8; HEADER_LEN],
    /// The bytes after the header.
    rest: &'a [u8],
}

/// The header bytes for `h` with the checksum field zero.
fn header_bytes(h: &FragHeader) -> [u8; HEADER_LEN] {
    let mut raw = [0u8; HEADER_LEN];
    put::<OFF_MAGIC, 2>(&mut raw, MAGIC);
    put::<OFF_VERSION, 1>(&mut raw, [WIRE_VERSION]);
    put::<OFF_KIND, 1>(&mut raw, [h.kind.to_wire()]);
    put::<OFF_FLAGS, 2>(&mut raw, h.flags.to_be_bytes());
    put::<OFF_ADDR_LEN, 2>(&mut raw, h.addr_len.to_be_bytes());
    put::<OFF_CONN, 8>(&mut raw, h.conn.to_be_bytes());
    put::<OFF_OFFSET, 8>(&mut raw, h.offset.to_be_bytes());
    put::<OFF_DGRAM_OFFSET, 4>(&mut raw, h.dgram_offset.to_be_bytes());
    put::<OFF_DGRAM_TOTAL, 4>(&mut raw, h.dgram_total.to_be_bytes());
    put::<OFF_LEN, 4>(&mut raw, h.len.to_be_bytes());
    raw
}

/// The frame checksum: CRC-32C of the header (checksum field zero), the
/// address and the payload.
fn frame_checksum(zeroed_header: &[u8; HEADER_LEN], addr: &[u8], payload: &[u8]) -> u32 {
    let mut c = Crc32c::new();
    c.update(zeroed_header);
    c.update(addr);
    c.update(payload);
    c.finish()
}

/// Validates the header of the frame at the start of `buf` without checking
/// the checksum (which covers the whole frame), so that a byte-stream reader
/// can learn the frame length ([`encoded_len`]) before the rest arrives.
///
/// Errors: [`WireError::Short`] with `need == HEADER_LEN` when fewer than
/// [`HEADER_LEN`] bytes are present (after reporting any bad magic, version
/// or kind already visible), and every header error [`decode`] reports except
/// [`WireError::BadChecksum`]. A header that passes may still belong to a
/// corrupted frame.
pub fn decode_header(buf: &[u8]) -> Result<FragHeader, WireError> {
    parse_header(buf).map(|p| p.header)
}

/// Decodes the frame at the start of `buf`, which may hold more bytes after
/// it (the next frames of a byte stream). Returns the fragment, borrowing its
/// address and payload from `buf`, and the number of bytes the frame took.
///
/// Errors: [`WireError::Short`] when `buf` does not yet hold the whole frame
/// (`need` is the total length required: [`HEADER_LEN`] first, then the frame
/// length); otherwise the first rule the frame breaks, header rules before
/// the checksum. Never panics, whatever the bytes.
pub fn decode(buf: &[u8]) -> Result<(Fragment<'_>, usize), WireError> {
    let (frag, total, parsed) = split_frame(buf)?;
    let mut zeroed = *parsed.raw;
    put::<OFF_CHECKSUM, 4>(&mut zeroed, [0; 4]);
    if frame_checksum(&zeroed, frag.addr, frag.payload) != parsed.checksum {
        return Err(WireError::BadChecksum);
    }
    Ok((frag, total))
}

/// The frame at the start of `buf` cut into its parts, every header rule
/// applied, the checksum not yet checked.
fn split_frame(buf: &[u8]) -> Result<(Fragment<'_>, usize, Parsed<'_>), WireError> {
    let parsed = parse_header(buf)?;
    let header = parsed.header;
    let total = encoded_len(&header);
    let (addr, rest) = parsed
        .rest
        .split_at_checked(usize::from(header.addr_len))
        .ok_or(WireError::Short { need: total })?;
    let payload_len = usize::try_from(header.len).map_err(|_| WireError::TooLong)?;
    let (payload, _) = rest
        .split_at_checked(payload_len)
        .ok_or(WireError::Short { need: total })?;
    let frag = Fragment {
        header,
        addr,
        payload,
    };
    Ok((frag, total, parsed))
}

/// Encodes `frag` into the start of `out` and returns the number of bytes
/// written ([`encoded_len`] of its header). Bytes of `out` past that are left
/// untouched.
///
/// Errors: any header rule the fragment breaks (see "Validity rules" in the
/// module doc); [`WireError::Inconsistent`] when `frag.addr` or
/// `frag.payload` does not have the length the header states;
/// [`WireError::Short`] (with the frame length) when `out` is too small. On
/// error nothing is written.
pub fn encode(frag: &Fragment, out: &mut [u8]) -> Result<usize, WireError> {
    let h = &frag.header;
    validate(h)?;
    if frag.addr.len() != usize::from(h.addr_len)
        || usize::try_from(h.len) != Ok(frag.payload.len())
    {
        return Err(WireError::Inconsistent);
    }
    let total = encoded_len(h);
    let short = WireError::Short { need: total };
    let frame = out.get_mut(..total).ok_or(short)?;
    let (hdr_out, rest) = frame.split_first_chunk_mut::<HEADER_LEN>().ok_or(short)?;
    let (addr_out, payload_out) = rest.split_at_mut_checked(frag.addr.len()).ok_or(short)?;
    let mut raw = header_bytes(h);
    let crc = frame_checksum(&raw, frag.addr, frag.payload);
    put::<OFF_CHECKSUM, 4>(&mut raw, crc.to_be_bytes());
    *hdr_out = raw;
    for (d, s) in addr_out.iter_mut().zip(frag.addr) {
        *d = *s;
    }
    for (d, s) in payload_out.iter_mut().zip(frag.payload) {
        *d = *s;
    }
    Ok(total)
}

/// Encodes the header of `frag` alone, for a transport that sends the
/// address and payload from where they lie (a gather write) instead of
/// copying them behind the header. With `summed` the checksum covers the
/// whole frame, as [`encode`] writes it; without, the checksum field is zero
/// and the receiver must read the frame with [`decode_unsummed`] (see
/// "Transports that guarantee integrity" in the module doc).
///
/// Errors: as [`encode`] (never [`WireError::Short`]).
pub fn encode_header(frag: &Fragment, summed: bool) -> Result<[u8; HEADER_LEN], WireError> {
    let h = &frag.header;
    validate(h)?;
    if frag.addr.len() != usize::from(h.addr_len)
        || usize::try_from(h.len) != Ok(frag.payload.len())
    {
        return Err(WireError::Inconsistent);
    }
    let mut raw = header_bytes(h);
    if summed {
        let crc = frame_checksum(&raw, frag.addr, frag.payload);
        put::<OFF_CHECKSUM, 4>(&mut raw, crc.to_be_bytes());
    }
    Ok(raw)
}

/// Decodes the frame at the start of `buf` like [`decode`], with every
/// header rule applied, but without verifying the checksum: for a transport
/// whose carrier already guarantees integrity end to end (see the module
/// doc). A peer that writes garbage still gets [`WireError`]s for every
/// malformed header; only corruption inside a valid frame goes unseen, which
/// such a carrier cannot produce.
pub fn decode_unsummed(buf: &[u8]) -> Result<(Fragment<'_>, usize), WireError> {
    split_frame(buf).map(|(frag, total, _)| (frag, total))
}

/// Encodes `frag` into a new vector of exactly [`encoded_len`] bytes.
///
/// Errors: as [`encode`] (never [`WireError::Short`]). The fragment is
/// validated before anything is allocated, so an invalid length never causes
/// a large allocation.
pub fn encode_vec(frag: &Fragment) -> Result<Vec<u8>, WireError> {
    validate(&frag.header)?;
    let mut out = vec![0u8; encoded_len(&frag.header)];
    encode(frag, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample<'a>(addr: &'a [u8], payload: &'a [u8]) -> Fragment<'a> {
        Fragment {
            header: FragHeader {
                kind: FragKind::Dgram,
                flags: 0,
                conn: 9,
                offset: 77,
                dgram_offset: 0,
                dgram_total: payload.len() as u32,
                len: payload.len() as u32,
                addr_len: addr.len() as u16,
            },
            addr,
            payload,
        }
    }

    #[test]
    fn summed_header_equals_the_full_encoding() {
        let f = sample(b"addr", b"some payload");
        let full = encode_vec(&f).unwrap();
        assert_eq!(&full[..HEADER_LEN], &encode_header(&f, true).unwrap());
    }

    #[test]
    fn unsummed_frames_pass_only_the_unsummed_decoder() {
        let f = sample(b"addr", b"some payload");
        let mut frame = encode_header(&f, false).unwrap().to_vec();
        assert_eq!(&frame[OFF_CHECKSUM..OFF_CHECKSUM + 4], &[0; 4]);
        frame.extend_from_slice(f.addr);
        frame.extend_from_slice(f.payload);
        assert_eq!(decode(&frame).err(), Some(WireError::BadChecksum));
        let (g, used) = decode_unsummed(&frame).unwrap();
        assert_eq!(
            (g.header, g.addr, g.payload, used),
            (f.header, f.addr, f.payload, frame.len())
        );
        // Header rules still apply: a bad flag, a short frame.
        let mut bad = frame.clone();
        bad[OFF_FLAGS + 1] = 0x80;
        assert_eq!(decode_unsummed(&bad).err(), Some(WireError::BadFlags));
        assert_eq!(
            decode_unsummed(&frame[..frame.len() - 1]).err(),
            Some(WireError::Short { need: frame.len() })
        );
        // And an inconsistent fragment is refused at encode time.
        let mut wrong = f;
        wrong.header.len += 1;
        assert_eq!(
            encode_header(&wrong, false).err(),
            Some(WireError::Inconsistent)
        );
    }

    #[test]
    fn header_bytes_follow_the_documented_layout() {
        let h = FragHeader {
            kind: FragKind::Dgram,
            flags: 0,
            conn: 0x0102_0304_0506_0708,
            offset: 0x1112_1314_1516_1718,
            dgram_offset: 0x2122_2324,
            dgram_total: 0x3132_3334,
            len: 0x0000_0005,
            addr_len: 0x0007,
        };
        let raw = header_bytes(&h);
        let want: [u8; HEADER_LEN] = [
            b'U', b'S', 1, 2, 0, 0, 0, 7, // magic, version, kind, flags, addr_len
            1, 2, 3, 4, 5, 6, 7, 8, // conn
            0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, // offset
            0x21, 0x22, 0x23, 0x24, // dgram_offset
            0x31, 0x32, 0x33, 0x34, // dgram_total
            0, 0, 0, 5, // len
            0, 0, 0, 0, // checksum (zero before it is computed)
        ];
        assert_eq!(raw, want);
    }

    #[test]
    fn kind_wire_values_round_trip() {
        for k in [FragKind::Stream, FragKind::Dgram] {
            assert_eq!(FragKind::from_wire(k.to_wire()), Some(k));
        }
        assert_eq!(FragKind::from_wire(0), None);
        assert_eq!(FragKind::from_wire(3), None);
    }

    #[test]
    fn max_frame_len_is_encoded_len_of_largest_header() {
        let h = FragHeader {
            kind: FragKind::Stream,
            flags: 0,
            conn: 0,
            offset: 0,
            dgram_offset: 0,
            dgram_total: 0,
            len: MAX_PAYLOAD as u32,
            addr_len: MAX_ADDR as u16,
        };
        assert_eq!(validate(&h), Ok(()));
        assert_eq!(encoded_len(&h), MAX_FRAME_LEN);
    }
}

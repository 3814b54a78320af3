//! Rejection reasons and per-buffer statistics.
//!
//! Every rejection is a distinct [`SbError`] value so that a backend (or a
//! test) can tell *why* a fragment was refused, and every rejection is counted
//! in [`SbStats::rejected`] under that same value.

use core::fmt;

/// Why the Socket Buffer refused an operation.
///
/// A rejection never changes what was already buffered: the caller may treat
/// it as a dropped packet and carry on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SbError {
    /// Stream: the fragment reaches beyond `read_offset + capacity`.
    /// It is rejected whole, never truncated.
    BeyondWindow,
    /// Stream: a FIN at an offset different from the FIN already received.
    ConflictingFin,
    /// Stream: data beyond the FIN, or a FIN below data already buffered/read.
    DataBeyondFin,
    /// The fragment would create one more out-of-order segment than the hole
    /// bookkeeping can track. Never returned for a fragment that starts at or
    /// below the contiguous edge (smoltcp issue #452).
    TooManyHoles,
    /// Datagram: the fragment's total length disagrees with earlier fragments.
    ConflictingLength,
    /// Datagram: the fragment's bytes lie outside `[0, total)`.
    OutsideDatagram,
    /// Datagram: a new partial datagram was needed but `max_partials` is 0.
    TooManyPartials,
    /// An empty fragment (only a zero-length datagram may be empty).
    ZeroLength,
    /// Datagram: the datagram could never fit, even in an empty buffer.
    Oversized,
    /// Datagram: the source address is longer than
    /// [`MAX_ADDR_LEN`](super::MAX_ADDR_LEN).
    AddrTooLong,
    /// Datagram: no room even after evicting every partial datagram (the
    /// completed datagrams fill the buffer); the caller treats it as a drop.
    NoRoom,
    /// `set_capacity` would drop buffered bytes (in-order, out-of-order or
    /// partial datagrams); the capacity is unchanged.
    ShrinkBelowBuffered,
    /// The allocator refused the ring or a partial datagram's storage.
    OutOfMemory,
}

impl SbError {
    /// Number of variants: the length of [`SbStats::rejected`].
    pub const COUNT: usize = 13;

    /// Every variant, in the order of [`SbError::index`].
    pub const ALL: [SbError; SbError::COUNT] = [
        SbError::BeyondWindow,
        SbError::ConflictingFin,
        SbError::DataBeyondFin,
        SbError::TooManyHoles,
        SbError::ConflictingLength,
        SbError::OutsideDatagram,
        SbError::TooManyPartials,
        SbError::ZeroLength,
        SbError::Oversized,
        SbError::AddrTooLong,
        SbError::NoRoom,
        SbError::ShrinkBelowBuffered,
        SbError::OutOfMemory,
    ];

    /// Stable index of this variant into [`SbStats::rejected`].
    pub const fn index(self) -> usize {
        match self {
            SbError::BeyondWindow => 0,
            SbError::ConflictingFin => 1,
            SbError::DataBeyondFin => 2,
            SbError::TooManyHoles => 3,
            SbError::ConflictingLength => 4,
            SbError::OutsideDatagram => 5,
            SbError::TooManyPartials => 6,
            SbError::ZeroLength => 7,
            SbError::Oversized => 8,
            SbError::AddrTooLong => 9,
            SbError::NoRoom => 10,
            SbError::ShrinkBelowBuffered => 11,
            SbError::OutOfMemory => 12,
        }
    }

    /// A short static description (no allocation, usable from C glue).
    pub const fn as_str(self) -> &'static str {
        match self {
            SbError::BeyondWindow => "fragment beyond the receive window",
            SbError::ConflictingFin => "FIN at a different offset than an earlier FIN",
            SbError::DataBeyondFin => "data beyond the FIN",
            SbError::TooManyHoles => "too many out-of-order holes",
            SbError::ConflictingLength => "datagram fragments disagree on the length",
            SbError::OutsideDatagram => "fragment outside its datagram",
            SbError::TooManyPartials => "no partial datagrams allowed",
            SbError::ZeroLength => "empty fragment",
            SbError::Oversized => "datagram larger than the buffer",
            SbError::AddrTooLong => "source address too long",
            SbError::NoRoom => "no room for the datagram",
            SbError::ShrinkBelowBuffered => "capacity below the buffered bytes",
            SbError::OutOfMemory => "allocation failed",
        }
    }
}

impl fmt::Display for SbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Per-buffer counters, a snapshot taken by `stats()`.
///
/// Counters only grow (wrapping at `u64::MAX`). Fields that do not apply to a
/// kind of buffer stay 0 (e.g. `evicted_partials` for a stream).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SbStats {
    /// Insert calls that were accepted (including all-duplicate ones).
    pub fragments: u64,
    /// New bytes stored (the first copy of each byte).
    pub bytes_in: u64,
    /// Accepted fragments that carried no new byte at all.
    pub duplicate_fragments: u64,
    /// Bytes ignored because a copy was already buffered or already read.
    pub duplicate_bytes: u64,
    /// Bytes dequeued by `read` (for datagrams: full datagram lengths).
    pub bytes_read: u64,
    /// Datagrams that became complete (readable).
    pub datagrams_completed: u64,
    /// Datagrams dequeued by `read`.
    pub datagrams_read: u64,
    /// Datagram reads whose buffer was shorter than the datagram (MSG_TRUNC).
    pub truncated_reads: u64,
    /// Partial datagrams evicted to make room for newer ones.
    pub evicted_partials: u64,
    /// Bytes (accounted size) released by evicting partial datagrams.
    pub evicted_bytes: u64,
    /// Rejections, indexed by [`SbError::index`].
    pub rejected: [u64; SbError::COUNT],
}

impl SbStats {
    /// How many operations were rejected for reason `e`.
    pub fn rejected_for(&self, e: SbError) -> u64 {
        // `index()` is always < COUNT; `get` keeps this panic-free regardless.
        self.rejected.get(e.index()).copied().unwrap_or(0)
    }

    /// Total number of rejections, all reasons together.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().fold(0u64, |a, &b| a.wrapping_add(b))
    }
}

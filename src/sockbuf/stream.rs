//! Stream reassembly: [`StreamBuf`].
//!
//! # How it works
//! Bytes live in one ring of `capacity` bytes (the receive window), indexed by
//! absolute `u64` stream offsets with wrapping (serial-number) arithmetic.
//! Three offsets describe it: `head` (the read offset, written only by the
//! consumer), `tail` (the contiguous edge: every byte in `[head, tail)` is
//! present, written only by the producer) and the window end
//! `head + capacity`. Bytes beyond `tail` that arrived early are written
//! straight into their ring slots; a bounded [`Assembler`] remembers which.
//!
//! The producer writes only in `[tail, head + capacity)` and publishes bytes by
//! a `Release` store of `tail`; the consumer reads only in `[head, tail)` and
//! frees space by a `Release` store of `head`. Those two ranges never overlap,
//! so on the in-order path neither side waits for the other: each takes only
//! its own (never contended) spin lock. The out-of-order bookkeeping belongs
//! to the producer alone. Only `set_capacity` takes both locks, because it
//! moves the ring. The offsets, the locks and the memory belong to the
//! [`Ring`], which enforces those ranges; this module is safe code.

use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::assembler::{Assembler, MAX_HOLES};
use super::counters::Counters;
use super::ring::Ring;
use super::{SbError, SbStats};

/// Producer-private state (under the producer lock).
struct Producer {
    /// Out-of-order segments beyond `tail`.
    asm: Assembler,
}

/// Fields the producer publishes beside `tail` (one cache line group).
struct ProdSide {
    /// FIN offset, meaningful once `fin_set` is true.
    fin: AtomicU64,
    /// Set (Release) after `fin` is stored.
    fin_set: AtomicBool,
    /// True while out-of-order bytes are buffered beyond a hole.
    ooo: AtomicBool,
}

/// Receive buffer of a byte stream: reassembles fragments that arrive in any
/// order, overlapping or repeated, into the ordered byte stream `read` returns.
///
/// Shared between one producer (the transport thread calling [`insert`],
/// [`insert_fin`]) and one consumer (the application thread calling [`read`],
/// [`peek`], [`set_capacity`]), typically through an `Arc`. Every method takes
/// `&self`. On the in-order fast path the two sides never wait on each other
/// and nothing is allocated; the ring itself is allocated lazily, on the first
/// insert, so an idle socket costs only this header (about 1 KiB, most of it
/// the fixed out-of-order table).
///
/// Offsets are absolute and wrap at `u64::MAX` (serial-number arithmetic):
/// a stream may start anywhere and cross the wrap. An offset is taken to be
/// *behind* the read offset when it is less than 2^63 before it.
///
/// [`insert`]: StreamBuf::insert
/// [`insert_fin`]: StreamBuf::insert_fin
/// [`read`]: StreamBuf::read
/// [`peek`]: StreamBuf::peek
/// [`set_capacity`]: StreamBuf::set_capacity
pub struct StreamBuf {
    /// The ring: `tail` (the contiguous edge) with [`ProdSide`], `head`
    /// (the read offset), each side's lock, the producer's [`Producer`],
    /// the receive window (the ring length once allocated) and the bytes.
    ring: Ring<ProdSide, (), Producer>,
    counters: Counters,
}

impl StreamBuf {
    /// A stream buffer whose read offset starts at `start` (any `u64`) with a
    /// receive window of `capacity` bytes. Allocates nothing: the ring is
    /// allocated on the first insert.
    pub fn new(start: u64, capacity: usize) -> Self {
        Self::with_max_holes(start, capacity, MAX_HOLES)
    }

    /// Like [`new`](StreamBuf::new), tracking at most `max_holes` distinct
    /// out-of-order segments (clamped to `1..=MAX_HOLES`); past that, a
    /// fragment that would open one more hole is refused with
    /// [`SbError::TooManyHoles`].
    pub fn with_max_holes(start: u64, capacity: usize, max_holes: usize) -> Self {
        StreamBuf {
            ring: Ring::new(
                start,
                capacity,
                ProdSide {
                    fin: AtomicU64::new(0),
                    fin_set: AtomicBool::new(false),
                    ooo: AtomicBool::new(false),
                },
                (),
                Producer {
                    asm: Assembler::new(max_holes),
                },
            ),
            counters: Counters::default(),
        }
    }

    // ------------------------------------------------------------ producer

    /// Insert `data` at absolute stream offset `offset`.
    ///
    /// `Ok(n)`: `n` bytes became newly readable (0 if the fragment landed
    /// beyond a hole or was entirely duplicate). Bytes below the read offset,
    /// or already buffered, are ignored as duplicates: the first copy of a
    /// byte wins. Errors (each counted, each leaving the buffer unchanged):
    /// [`ZeroLength`](SbError::ZeroLength) for empty `data`;
    /// [`BeyondWindow`](SbError::BeyondWindow) if any byte lies at or beyond
    /// [`window_end`](StreamBuf::window_end) (the fragment is refused whole);
    /// [`DataBeyondFin`](SbError::DataBeyondFin) if any byte lies at or beyond
    /// the FIN; [`TooManyHoles`](SbError::TooManyHoles) if it would open one
    /// hole too many (never for a fragment starting at or below the
    /// contiguous edge); [`OutOfMemory`](SbError::OutOfMemory) if the ring
    /// could not be allocated.
    pub fn insert(&self, offset: u64, data: &[u8]) -> Result<usize, SbError> {
        let c = &self.counters;
        if data.is_empty() {
            return Err(c.reject(SbError::ZeroLength));
        }
        let mut p = self.ring.producer();
        let px = self.ring.prod_ext();
        let head = p.head();
        let tail = p.tail();
        let cap = p.capacity() as u64;
        let len = data.len() as u64;

        // Position relative to the read offset; `skip` bytes lie behind it.
        let rel = offset.wrapping_sub(head);
        let (skip, s) = if (rel as i64) < 0 {
            (head.wrapping_sub(offset), 0u64)
        } else {
            (0u64, rel)
        };
        if skip >= len {
            self.count_accepted(len, 0);
            return Ok(0);
        }
        let e = match s.checked_add(len - skip) {
            Some(e) if e <= cap => e,
            _ => return Err(c.reject(SbError::BeyondWindow)),
        };
        if px.fin_set.load(Ordering::Relaxed) {
            let fin_rel = px.fin.load(Ordering::Relaxed).wrapping_sub(head);
            if e > fin_rel {
                return Err(c.reject(SbError::DataBeyondFin));
            }
        }
        let tail_rel = tail.wrapping_sub(head);
        if e <= tail_rel {
            self.count_accepted(len, 0);
            return Ok(0);
        }
        // First insert (or first since the ring was released while empty).
        if let Err(err) = p.allocate() {
            return Err(c.reject(err));
        }

        // Relative to the contiguous edge from here on.
        let a = s.saturating_sub(tail_rel);
        let b = e - tail_rel;
        // data index of tail-relative position r (r >= a, so no underflow).
        let idx = |r: u64| -> usize { (tail_rel + r + skip - s) as usize };
        let (ring, st) = p.writer();
        // Tail-relative [r, r + n) lies within [tail, head + cap): the ring
        // writes it (and refuses anything outside the free space).
        let write = |r: u64, n: u64| {
            let i = idx(r);
            if let Some(src) = data.get(i..i.wrapping_add(n as usize)) {
                ring.write(r, src);
            }
        };
        let (advance, new_bytes) = if a == 0 && st.asm.is_empty() {
            // Fast path: in order, nothing buffered beyond the edge.
            write(0, b);
            (b, b)
        } else {
            match st.asm.insert(a, b, write) {
                Ok(added) => (added.advance, added.new_bytes),
                Err(err) => return Err(c.reject(err)),
            }
        };
        let ooo = !st.asm.is_empty();
        if advance > 0 {
            // Release: publishes the ring bytes just written.
            p.publish(advance);
        }
        // Store only on change: the consumer polls this cache line.
        if px.ooo.load(Ordering::Relaxed) != ooo {
            px.ooo.store(ooo, Ordering::Release);
        }
        self.count_accepted(len, new_bytes);
        Ok(advance as usize)
    }

    fn count_accepted(&self, len: u64, new_bytes: u64) {
        let pc = &self.counters.prod;
        pc.fragments.add(1);
        pc.bytes_in.add(new_bytes);
        pc.duplicate_bytes.add(len - new_bytes);
        if new_bytes == 0 {
            pc.duplicate_fragments.add(1);
        }
    }

    /// Mark the end of the stream at absolute offset `offset`.
    ///
    /// Idempotent for the same offset. Refused (counted, nothing changes) with
    /// [`ConflictingFin`](SbError::ConflictingFin) if a FIN at another offset
    /// was received, [`DataBeyondFin`](SbError::DataBeyondFin) if bytes at or
    /// beyond `offset` were already buffered or read, and
    /// [`BeyondWindow`](SbError::BeyondWindow) if `offset` lies beyond
    /// [`window_end`](StreamBuf::window_end).
    pub fn insert_fin(&self, offset: u64) -> Result<(), SbError> {
        let c = &self.counters;
        let p = self.ring.producer();
        let px = self.ring.prod_ext();
        if px.fin_set.load(Ordering::Relaxed) {
            return if px.fin.load(Ordering::Relaxed) == offset {
                Ok(())
            } else {
                Err(c.reject(SbError::ConflictingFin))
            };
        }
        let head = p.head();
        let tail = p.tail();
        let rel = offset.wrapping_sub(head);
        if (rel as i64) < 0 {
            return Err(c.reject(SbError::DataBeyondFin));
        }
        let buffered_end = tail
            .wrapping_sub(head)
            .wrapping_add(p.state().asm.last_end());
        if rel < buffered_end {
            return Err(c.reject(SbError::DataBeyondFin));
        }
        if rel > p.capacity() as u64 {
            return Err(c.reject(SbError::BeyondWindow));
        }
        px.fin.store(offset, Ordering::Relaxed);
        px.fin_set.store(true, Ordering::Release);
        drop(p);
        Ok(())
    }

    /// `read_offset + capacity`: the producer must not deliver bytes at or
    /// beyond this offset (the window left is `window_end - offset`).
    pub fn window_end(&self) -> u64 {
        self.ring.head().wrapping_add(self.ring.capacity() as u64)
    }

    // ------------------------------------------------------------ consumer

    /// Dequeue up to `buf.len()` readable bytes; returns how many were copied
    /// (0 = nothing readable now: check [`at_eof`](StreamBuf::at_eof)).
    pub fn read(&self, buf: &mut [u8]) -> usize {
        self.copy_out(buf, true)
    }

    /// Copy up to `buf.len()` readable bytes without consuming them.
    pub fn peek(&self, buf: &mut [u8]) -> usize {
        self.copy_out(buf, false)
    }

    /// Copy up to `buf.len()` readable bytes from `skip` bytes past the
    /// read offset, without consuming anything (SO_PEEK_OFF's peek).
    pub fn peek_at(&self, skip: usize, buf: &mut [u8]) -> usize {
        let mut cs = self.ring.consumer();
        let avail = cs.available();
        let Some(left) = avail.checked_sub(skip as u64) else {
            return 0;
        };
        let n = core::cmp::min(left, buf.len() as u64) as usize;
        match buf.get_mut(..n) {
            // [head + skip, head + skip + n) lies below the published tail.
            Some(out) if n > 0 => {
                cs.read(skip as u64, out);
                n
            }
            _ => 0,
        }
    }

    fn copy_out(&self, buf: &mut [u8], consume: bool) -> usize {
        let mut cs = self.ring.consumer();
        let avail = cs.available();
        let n = core::cmp::min(avail, buf.len() as u64) as usize;
        let Some(out) = buf.get_mut(..n) else {
            return 0;
        };
        if n == 0 {
            return 0;
        }
        // [head, head + n) lies below the published `tail`.
        cs.read(0, out);
        if consume {
            // Release: the producer may reuse these slots once it sees this.
            cs.consume(n as u64);
            self.counters.cons.bytes_read.add(n as u64);
        }
        n
    }

    /// Bytes readable now (FIONREAD): from the read offset up to the first
    /// hole or the FIN.
    pub fn readable(&self) -> usize {
        // Load head first: tail only grows and is never behind any head.
        let head = self.ring.head();
        let tail = self.ring.tail();
        tail.wrapping_sub(head) as usize
    }

    /// True when bytes are buffered beyond a hole (a reader waiting for more
    /// data is blocked by a missing fragment, not by an empty buffer).
    pub fn has_hole(&self) -> bool {
        self.ring.prod_ext().ooo.load(Ordering::Acquire)
    }

    /// True once the reader has consumed everything up to the FIN.
    pub fn at_eof(&self) -> bool {
        let px = self.ring.prod_ext();
        px.fin_set.load(Ordering::Acquire) && px.fin.load(Ordering::Relaxed) == self.ring.head()
    }

    /// True once a FIN has been accepted (data before it may still be unread).
    pub fn fin_received(&self) -> bool {
        self.ring.prod_ext().fin_set.load(Ordering::Acquire)
    }

    /// The FIN offset, once a FIN has been accepted.
    pub fn fin_offset(&self) -> Option<u64> {
        if self.fin_received() {
            Some(self.ring.prod_ext().fin.load(Ordering::Relaxed))
        } else {
            None
        }
    }

    /// The read offset: absolute offset of the next byte `read` returns.
    pub fn read_offset(&self) -> u64 {
        self.ring.head()
    }

    /// The receive window in bytes.
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }

    /// Resize the window (SO_RCVBUF), between reads.
    ///
    /// Refused with [`ShrinkBelowBuffered`](SbError::ShrinkBelowBuffered) if
    /// `capacity` is smaller than the span from the read offset to the end of
    /// the last buffered byte (out-of-order bytes included); with
    /// [`Oversized`](SbError::Oversized) above `isize::MAX`; with
    /// [`OutOfMemory`](SbError::OutOfMemory) if the new ring cannot be
    /// allocated. On success buffered bytes are kept; an empty ring is simply
    /// released (it is allocated again, at the new size, by the next insert).
    /// Takes both locks (consumer, then producer): briefly waits for an
    /// insert in progress.
    pub fn set_capacity(&self, capacity: usize) -> Result<(), SbError> {
        let c = &self.counters;
        if capacity > isize::MAX as usize {
            return Err(c.reject(SbError::Oversized));
        }
        let mut both = self.ring.both();
        let tail_rel = both.tail().wrapping_sub(both.head());
        let buffered = tail_rel.wrapping_add(both.state().asm.last_end());
        if (capacity as u64) < buffered {
            return Err(c.reject(SbError::ShrinkBelowBuffered));
        }
        // Keeps the buffered bytes, out-of-order ones included; an empty
        // ring is released.
        both.resize(capacity, buffered).map_err(|err| c.reject(err))
    }

    /// Discards everything (buffered bytes, out-of-order ones, the FIN and
    /// the counters) and starts a new stream whose read offset is `start`,
    /// with the same window: a connection dissolved and made again on one
    /// socket (TCP's connect(AF_UNSPEC), then connect()). Takes both
    /// locks, as [`set_capacity`](StreamBuf::set_capacity).
    pub fn restart(&self, start: u64) {
        let mut both = self.ring.both();
        both.restart(start);
        both.state_mut().asm.clear();
        let px = self.ring.prod_ext();
        px.fin_set.store(false, Ordering::Release);
        px.fin.store(0, Ordering::Relaxed);
        px.ooo.store(false, Ordering::Release);
        self.counters.zero();
    }

    /// A snapshot of this buffer's counters.
    pub fn stats(&self) -> SbStats {
        self.counters.snapshot()
    }
}

impl fmt::Debug for StreamBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamBuf")
            .field("read_offset", &self.read_offset())
            .field("readable", &self.readable())
            .field("capacity", &self.capacity())
            .field("has_hole", &self.has_hole())
            .field("fin", &self.fin_offset())
            .finish()
    }
}

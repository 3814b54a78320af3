//! Datagram reassembly: [`DgramBuf`].
//!
//! # How it works
//! Completed datagrams are records in one ring of `capacity` bytes, in
//! completion order: a 16-byte header (payload length and address length,
//! little-endian `u32`s, and the receive time, a little-endian `u64`), the
//! source address, the payload. The producer appends
//! a record at `tail` and publishes it by a `Release` store of the completed
//! count; the consumer removes records at `head`. As for streams, the two
//! sides only touch disjoint ring bytes, so a datagram that arrives whole
//! (one fragment: the fast path) is queued without waiting on the reader and
//! without allocating.
//!
//! A fragmented datagram is assembled in its own buffer (allocated once, at
//! its first fragment, with room for its `total` length) using the same
//! bounded [`Assembler`] as streams; when complete it is copied into the ring.
//! A partial datagram is identified by `(id, source address)`, like IP
//! reassembly keys on the source. So a sender's ids must not repeat while a
//! partial of theirs may still wait here, even after the sender is gone:
//! senders that share a source (unnamed AF_UNIX ones share the empty one)
//! would complete each other's pieces. The frontend's ids are unique in the
//! process (`socket::io::dgram_id_base`).
//!
//! # Accounting
//! Each datagram, partial or complete, is charged
//! [`DGRAM_HEADER`]` + address length + total length` bytes from the moment
//! its first fragment arrives, so complete + partial never exceed `capacity`
//! and completing a partial always finds room in the ring. When a new
//! datagram needs room (or a partial slot), the oldest partials are evicted
//! (counted); if evicting every partial would still not make room, the
//! fragment is refused with [`SbError::NoRoom`] and nothing is evicted.
//!
//! A fragment for a datagram that already completed starts a new partial
//! (as in IP reassembly): a repeated whole datagram is delivered twice, and a
//! stale fragment eventually gets evicted.
//!
//! The offsets, the locks and the memory belong to the [`Ring`], which
//! enforces the two sides' ranges; this module is safe code.

use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

use super::assembler::{Added, Assembler, MAX_HOLES};
use super::counters::Counters;
use super::ring::{self, Ring};
use super::{SbError, SbStats, MAX_ADDR_LEN};

/// Bytes of per-datagram overhead charged against the capacity (the record
/// header in the ring: payload length, address length, receive time).
pub const DGRAM_HEADER: usize = 16;

/// The bytes a datagram is charged: `DGRAM_HEADER + src_len + total`.
pub const fn dgram_charge(total: u32, src_len: usize) -> u64 {
    DGRAM_HEADER as u64 + src_len as u64 + total as u64
}

/// What `read`/`peek` report about the datagram they returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DgramMeta {
    /// Full datagram length (may exceed what was copied: MSG_TRUNC).
    pub len: usize,
    /// Payload bytes copied into the caller's buffer.
    pub copied: usize,
    /// Full source address length (the copy is truncated to the caller's
    /// address buffer).
    pub src_len: usize,
    /// When the datagram completed, as given to
    /// [`insert_stamped`](DgramBuf::insert_stamped) (0: not given).
    pub stamp: u64,
}

/// A datagram still missing fragments.
struct Partial {
    id: u64,
    src: [u8; MAX_ADDR_LEN],
    src_len: usize,
    total: u32,
    charge: u64,
    /// Contiguous prefix filled so far.
    edge: u64,
    data: Vec<u8>,
    asm: Assembler,
}

impl Partial {
    fn new(id: u64, src: &[u8], total: u32, max_holes: usize) -> Result<Partial, SbError> {
        let mut data = Vec::new();
        data.try_reserve_exact(total as usize)
            .map_err(|_| SbError::OutOfMemory)?;
        data.resize(total as usize, 0);
        let mut a = [0u8; MAX_ADDR_LEN];
        if let Some(dst) = a.get_mut(..src.len()) {
            dst.copy_from_slice(src);
        }
        Ok(Partial {
            id,
            src: a,
            src_len: src.len(),
            total,
            charge: dgram_charge(total, src.len()),
            edge: 0,
            data,
            asm: Assembler::new(max_holes),
        })
    }

    fn src(&self) -> &[u8] {
        self.src.get(..self.src_len).unwrap_or(&[])
    }

    fn is_complete(&self) -> bool {
        self.edge >= u64::from(self.total)
    }

    /// Add bytes `[offset, offset + data.len())` (already checked to lie in
    /// `[0, total)`); first copy wins.
    fn add(&mut self, offset: u64, data: &[u8]) -> Result<Added, SbError> {
        let s = offset;
        let e = s.wrapping_add(data.len() as u64);
        if e <= self.edge {
            return Ok(Added {
                advance: 0,
                new_bytes: 0,
            });
        }
        let base = self.edge;
        let a = s.saturating_sub(base);
        let b = e - base;
        let store = &mut self.data;
        let added = self.asm.insert(a, b, |r, n| {
            let abs = (base + r) as usize;
            let from = abs.wrapping_sub(s as usize);
            if let (Some(dst), Some(src)) = (
                store.get_mut(abs..abs.wrapping_add(n as usize)),
                data.get(from..from.wrapping_add(n as usize)),
            ) {
                dst.copy_from_slice(src);
            }
        })?;
        self.edge += added.advance;
        Ok(added)
    }
}

type DgramProducer<'a> = ring::Producer<'a, ProdSide, ConsSide, Producer>;
type DgramConsumer<'a> = ring::Consumer<'a, ProdSide, ConsSide, Producer>;

/// Producer-private state.
struct Producer {
    /// Partial datagrams, oldest first.
    partials: Vec<Partial>,
    /// Sum of the partials' charges.
    partial_bytes: u64,
}

/// Published by the producer beside the ring's `tail` (ring bytes ever
/// appended, wrapping; `tail - head` = bytes in the ring).
struct ProdSide {
    /// Datagrams ever completed; stored (Release) after the record is written.
    done: AtomicU64,
}

/// Published by the consumer beside the ring's `head` (ring bytes ever
/// consumed, wrapping).
struct ConsSide {
    /// Datagrams ever dequeued.
    taken: AtomicU64,
}

/// Receive buffer of a datagram socket: reassembles fragmented datagrams and
/// queues complete ones, with their source address, in completion order.
///
/// Shared between one producer ([`insert`](DgramBuf::insert)) and one consumer
/// (`read`, `peek`, `next_len`, `set_capacity`) like [`StreamBuf`]; every
/// method takes `&self`. The ring is allocated lazily, on the first insert.
///
/// [`StreamBuf`]: super::StreamBuf
pub struct DgramBuf {
    /// The ring: `tail` with [`ProdSide`], `head` with [`ConsSide`], each
    /// side's lock, the producer's [`Producer`], the bound on charged bytes
    /// (complete + partial; the ring length once allocated) and the records.
    ring: Ring<ProdSide, ConsSide, Producer>,
    max_partials: usize,
    max_holes: usize,
    counters: Counters,
}

impl DgramBuf {
    /// A datagram buffer bounding the charged bytes of complete and partial
    /// datagrams by `capacity` (see the module docs for the charge) and the
    /// number of partial datagrams by `max_partials` (0: only datagrams that
    /// arrive whole are accepted). Allocates nothing until the first insert.
    pub fn new(capacity: usize, max_partials: usize) -> Self {
        Self::with_max_holes(capacity, max_partials, MAX_HOLES)
    }

    /// Like [`new`](DgramBuf::new), each partial datagram tracking at most
    /// `max_holes` holes (clamped to `1..=MAX_HOLES`).
    pub fn with_max_holes(capacity: usize, max_partials: usize, max_holes: usize) -> Self {
        DgramBuf {
            ring: Ring::new(
                0,
                capacity,
                ProdSide {
                    done: AtomicU64::new(0),
                },
                ConsSide {
                    taken: AtomicU64::new(0),
                },
                Producer {
                    partials: Vec::new(),
                    partial_bytes: 0,
                },
            ),
            max_partials,
            max_holes,
            counters: Counters::default(),
        }
    }

    // ------------------------------------------------------------ producer

    /// Insert bytes `[offset, offset + data.len())` of datagram `id` from
    /// source address `src` (opaque bytes, at most [`MAX_ADDR_LEN`]), whose
    /// full length is `total`.
    ///
    /// `Ok(true)`: this fragment completed the datagram, which is now
    /// readable. `Ok(false)`: accepted, the datagram is still incomplete (or
    /// the fragment was a duplicate). A zero-length datagram is one empty
    /// fragment with `offset == 0` and `total == 0`.
    ///
    /// Errors (each counted; buffered datagrams stay intact):
    /// [`AddrTooLong`](SbError::AddrTooLong),
    /// [`OutsideDatagram`](SbError::OutsideDatagram) (bytes beyond `total`),
    /// [`ZeroLength`](SbError::ZeroLength) (an empty fragment of a non-empty
    /// datagram), [`Oversized`](SbError::Oversized) (could never fit),
    /// [`ConflictingLength`](SbError::ConflictingLength) (disagrees with the
    /// total of earlier fragments), [`TooManyHoles`](SbError::TooManyHoles),
    /// [`TooManyPartials`](SbError::TooManyPartials) (`max_partials == 0`),
    /// [`NoRoom`](SbError::NoRoom) (even evicting every partial would not
    /// make room: the caller drops it, like UDP) and
    /// [`OutOfMemory`](SbError::OutOfMemory).
    pub fn insert(
        &self,
        id: u64,
        offset: u32,
        total: u32,
        data: &[u8],
        src: &[u8],
    ) -> Result<bool, SbError> {
        self.insert_stamped(id, offset, total, data, src, 0)
    }

    /// [`insert`](DgramBuf::insert), with the time the fragment arrived:
    /// the fragment that completes a datagram gives the datagram its
    /// receive time ([`DgramMeta::stamp`]; SO_TIMESTAMP's, as the
    /// reassembled packet's on Linux).
    pub fn insert_stamped(
        &self,
        id: u64,
        offset: u32,
        total: u32,
        data: &[u8],
        src: &[u8],
        stamp: u64,
    ) -> Result<bool, SbError> {
        let c = &self.counters;
        if src.len() > MAX_ADDR_LEN {
            return Err(c.reject(SbError::AddrTooLong));
        }
        let len = data.len() as u64;
        let offset = u64::from(offset);
        match offset.checked_add(len) {
            Some(end) if end <= u64::from(total) => {}
            _ => return Err(c.reject(SbError::OutsideDatagram)),
        }
        if len == 0 && total != 0 {
            return Err(c.reject(SbError::ZeroLength));
        }
        let charge = dgram_charge(total, src.len());
        let mut pr = self.ring.producer();
        let cap = pr.capacity() as u64;
        if charge > cap {
            return Err(c.reject(SbError::Oversized));
        }
        // Nothing is in the ring if it is not allocated (never, or released
        // while empty).
        if let Err(err) = pr.allocate() {
            return Err(c.reject(err));
        }
        let pc = &c.prod;

        let p = pr.state_mut();
        if let Some(i) = p.partials.iter().position(|q| q.id == id && q.src() == src) {
            let Some(part) = p.partials.get_mut(i) else {
                return Err(c.reject(SbError::OutOfMemory));
            };
            if part.total != total {
                return Err(c.reject(SbError::ConflictingLength));
            }
            let added = match part.add(offset, data) {
                Ok(a) => a,
                Err(err) => return Err(c.reject(err)),
            };
            pc.fragments.add(1);
            pc.bytes_in.add(added.new_bytes);
            pc.duplicate_bytes.add(len - added.new_bytes);
            if added.new_bytes == 0 {
                pc.duplicate_fragments.add(1);
            }
            if !part.is_complete() {
                return Ok(false);
            }
            let part = p.partials.remove(i);
            p.partial_bytes -= part.charge;
            // Room was reserved when the partial was created.
            self.push_record(&mut pr, &part.data, part.src(), stamp);
            return Ok(true);
        }

        // A new datagram: find room for its charge.
        let alone = offset == 0 && len == u64::from(total);
        let in_ring = pr.tail().wrapping_sub(pr.head());
        let p = pr.state_mut();
        let free = cap.saturating_sub(in_ring.saturating_add(p.partial_bytes));
        if free < charge && free.saturating_add(p.partial_bytes) < charge {
            return Err(c.reject(SbError::NoRoom));
        }
        let mut fresh = None;
        if !alone {
            if self.max_partials == 0 {
                return Err(c.reject(SbError::TooManyPartials));
            }
            match Partial::new(id, src, total, self.max_holes) {
                Ok(q) => fresh = Some(q),
                Err(err) => return Err(c.reject(err)),
            }
        }
        // Evict the oldest partials until there is room (and a slot).
        while !p.partials.is_empty()
            && (cap.saturating_sub(in_ring.saturating_add(p.partial_bytes)) < charge
                || (fresh.is_some() && p.partials.len() >= self.max_partials))
        {
            let old = p.partials.remove(0);
            p.partial_bytes -= old.charge;
            pc.evicted_partials.add(1);
            pc.evicted_bytes.add(old.charge);
        }
        pc.fragments.add(1);
        pc.bytes_in.add(len);
        match fresh {
            None => {
                self.push_record(&mut pr, data, src, stamp);
                Ok(true)
            }
            Some(mut q) => {
                // The first fragment of an empty assembler is never refused
                // (max_holes >= 1), and carries only new bytes.
                if let Err(err) = q.add(offset, data) {
                    return Err(c.reject(err));
                }
                let p = pr.state_mut();
                p.partial_bytes += q.charge;
                p.partials.push(q);
                Ok(false)
            }
        }
    }

    /// Append a complete datagram record at the tail and publish it.
    /// The caller has checked that its charge fits.
    fn push_record(&self, pr: &mut DgramProducer<'_>, data: &[u8], src: &[u8], stamp: u64) {
        let mut hdr = [0u8; DGRAM_HEADER];
        hdr[..4].copy_from_slice(&(data.len() as u32).to_le_bytes());
        hdr[4..8].copy_from_slice(&(src.len() as u32).to_le_bytes());
        hdr[8..].copy_from_slice(&stamp.to_le_bytes());
        // The record's charge fits in `capacity - (tail - head)` (checked by
        // the caller): the ring writes it in bytes the consumer does not
        // read until `done` is published below.
        let h = DGRAM_HEADER as u64;
        let (w, _) = pr.writer();
        w.write(0, &hdr);
        w.write(h, src);
        w.write(h + src.len() as u64, data);
        pr.publish(dgram_charge(data.len() as u32, src.len()));
        let px = self.ring.prod_ext();
        let done = px.done.load(Ordering::Relaxed);
        // Release: publishes the record to the consumer.
        px.done.store(done.wrapping_add(1), Ordering::Release);
        self.counters.prod.datagrams_completed.add(1);
    }

    // ------------------------------------------------------------ consumer

    /// Dequeue the oldest completed datagram (completion order): its payload
    /// into `buf` and its source address into `src`, each truncated to fit.
    /// `None` when no datagram is complete.
    pub fn read(&self, buf: &mut [u8], src: &mut [u8]) -> Option<DgramMeta> {
        self.copy_out(buf, src, true)
    }

    /// Like [`read`](DgramBuf::read) but leaves the datagram queued.
    pub fn peek(&self, buf: &mut [u8], src: &mut [u8]) -> Option<DgramMeta> {
        self.copy_out(buf, src, false)
    }

    /// The consumer's handle with `tail` loaded, if a completed datagram is
    /// queued (its record starts at `head`).
    fn first(&self) -> Option<(DgramConsumer<'_>, u64)> {
        let mut cs = self.ring.consumer();
        let taken = self.ring.cons_ext().taken.load(Ordering::Relaxed);
        // Acquire: the records counted by `done` are fully written; `tail`,
        // loaded after it, covers them.
        if self.ring.prod_ext().done.load(Ordering::Acquire) == taken {
            return None;
        }
        cs.available();
        Some((cs, taken))
    }

    /// Read the header of the record at `head`: (payload length, address
    /// length, receive time).
    fn header(cs: &DgramConsumer<'_>) -> (usize, usize, u64) {
        let mut hdr = [0u8; DGRAM_HEADER];
        cs.read(0, &mut hdr);
        let len = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
        let alen = u32::from_le_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]);
        let mut t = [0u8; 8];
        t.copy_from_slice(&hdr[8..]);
        (len as usize, alen as usize, u64::from_le_bytes(t))
    }

    /// Like [`peek`](DgramBuf::peek), from `skip` bytes into the payload
    /// (SO_PEEK_OFF): `copied` counts from there, `len` stays the whole
    /// datagram's.
    pub fn peek_at(&self, skip: usize, buf: &mut [u8], src: &mut [u8]) -> Option<DgramMeta> {
        self.copy_from(skip, buf, src, false)
    }

    fn copy_out(&self, buf: &mut [u8], src: &mut [u8], consume: bool) -> Option<DgramMeta> {
        self.copy_from(0, buf, src, consume)
    }

    fn copy_from(
        &self,
        skip: usize,
        buf: &mut [u8],
        src: &mut [u8],
        consume: bool,
    ) -> Option<DgramMeta> {
        let (mut cs, taken) = self.first()?;
        let (len, alen, stamp) = Self::header(&cs);
        let h = DGRAM_HEADER as u64;
        let skip = skip.min(len);
        let copied = core::cmp::min(len - skip, buf.len());
        let acopied = core::cmp::min(alen, src.len());
        if let (Some(b), Some(s)) = (buf.get_mut(..copied), src.get_mut(..acopied)) {
            // The record is published and not yet released.
            cs.read(h, s);
            cs.read(h + (alen + skip) as u64, b);
        }
        if consume {
            // Release: the producer may reuse the record's bytes.
            cs.consume((DGRAM_HEADER + alen + len) as u64);
            self.ring
                .cons_ext()
                .taken
                .store(taken.wrapping_add(1), Ordering::Release);
            let cc = &self.counters.cons;
            cc.datagrams_read.add(1);
            cc.bytes_read.add(len as u64);
            if copied < len - skip {
                cc.truncated_reads.add(1);
            }
        }
        Some(DgramMeta {
            len,
            copied,
            src_len: alen,
            stamp,
        })
    }

    /// Length of the next complete datagram (FIONREAD for datagram sockets),
    /// `None` if none is complete.
    pub fn next_len(&self) -> Option<usize> {
        let (cs, _) = self.first()?;
        Some(Self::header(&cs).0)
    }

    /// Number of complete datagrams queued.
    pub fn pending(&self) -> usize {
        // Load `taken` first: `done` never falls behind it.
        let taken = self.ring.cons_ext().taken.load(Ordering::Acquire);
        let done = self.ring.prod_ext().done.load(Ordering::Acquire);
        done.wrapping_sub(taken) as usize
    }

    /// Number of partial (incomplete) datagrams held. Producer side: takes
    /// the producer lock.
    pub fn partials(&self) -> usize {
        self.ring.producer().state().partials.len()
    }

    /// Charged bytes of the complete datagrams queued now (partial ones
    /// are charged too, but not counted here). A snapshot: the other side
    /// may be moving it.
    pub fn used(&self) -> usize {
        // `head` first: `tail` never falls behind it.
        let head = self.ring.head();
        let tail = self.ring.tail();
        tail.wrapping_sub(head) as usize
    }

    /// The capacity in charged bytes.
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }

    /// The cap on partial datagrams given at creation.
    pub fn max_partials(&self) -> usize {
        self.max_partials
    }

    /// Resize (SO_RCVBUF), between reads. Refused with
    /// [`ShrinkBelowBuffered`](SbError::ShrinkBelowBuffered) below the bytes
    /// charged now (complete and partial datagrams), with
    /// [`Oversized`](SbError::Oversized) above `isize::MAX`, with
    /// [`OutOfMemory`](SbError::OutOfMemory) if the new ring cannot be
    /// allocated. Takes both locks (consumer, then producer).
    pub fn set_capacity(&self, capacity: usize) -> Result<(), SbError> {
        let c = &self.counters;
        if capacity > isize::MAX as usize {
            return Err(c.reject(SbError::Oversized));
        }
        let mut both = self.ring.both();
        let in_ring = both.tail().wrapping_sub(both.head());
        if (capacity as u64) < in_ring.saturating_add(both.state().partial_bytes) {
            return Err(c.reject(SbError::ShrinkBelowBuffered));
        }
        // Keeps the complete records (partials live outside the ring); an
        // empty ring is released.
        both.resize(capacity, in_ring).map_err(|err| c.reject(err))
    }

    /// A snapshot of this buffer's counters.
    pub fn stats(&self) -> SbStats {
        self.counters.snapshot()
    }
}

impl fmt::Debug for DgramBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DgramBuf")
            .field("pending", &self.pending())
            .field("capacity", &self.capacity())
            .field("max_partials", &self.max_partials)
            .finish()
    }
}

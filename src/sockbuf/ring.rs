//! The ring shared by the producer and the consumer, with a safe interface.
//!
//! This is the one place that touches raw memory. [`Ring`] owns everything
//! that decides who may touch which bytes: the absolute offsets `tail`
//! (published by the producer) and `head` (published by the consumer), each
//! side's lock and physical index, the capacity and the memory. The buffers
//! (`stream`, `dgram`) reach the bytes only through a side's handle:
//!
//! - [`Producer`] (the producer lock held) writes at offsets relative to
//!   `tail`, only inside the free space `[tail, head + len)`, and publishes
//!   bytes by advancing `tail` (a `Release` store) by at most that free space.
//! - [`Consumer`] (the consumer lock held) reads at offsets relative to
//!   `head`, only inside `[head, tail)` for a `tail` it loaded (`Acquire`),
//!   and frees bytes by advancing `head` (a `Release` store) within it.
//! - [`Both`] (consumer lock, then producer lock) resizes the ring, keeping
//!   the first bytes from `head`: the migration both buffers share.
//!
//! The two ranges never overlap, so the sides never race on a byte whatever
//! the buffers do; a request outside its side's range is refused (`false`)
//! and a bug elsewhere can at worst garble bytes, never reach outside the
//! allocation or race. Each side's extra published words (`PX`, `CX`) and
//! the producer's private state (`PS`) live beside `tail`, `head` and the
//! producer's index, on the same cache lines as before.
//!
//! The memory is allocated lazily (the producer's [`Producer::allocate`], on
//! the first insert) so that an idle socket costs only the buffer's header,
//! and zeroed, so no byte is ever uninitialised. It comes from the platform
//! (`platform::pages_alloc`): on the hosted platform whole pages from the
//! kernel, which cost only once touched and all go back at free; the
//! allocator is the fallback (the `heap` flag says which frees it).
#![allow(unsafe_code)]

use alloc::alloc::{alloc_zeroed, dealloc, Layout};
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};

use super::counters::Padded;
use super::lock::{SpinGuard, SpinLock};
use super::SbError;
use crate::platform;

/// An owned, zeroed block of `len` bytes (`len > 0`).
struct RingMem {
    ptr: NonNull<u8>,
    len: usize,
    /// From the allocator (the platform's pages were refused: too many
    /// mappings, say), not from `platform::pages_alloc`.
    heap: bool,
}

impl RingMem {
    /// Allocate `len` zeroed bytes; `OutOfMemory` if neither the platform
    /// nor the allocator has them, or `len` is zero or too large.
    fn new(len: usize) -> Result<RingMem, SbError> {
        let layout = Layout::array::<u8>(len).map_err(|_| SbError::OutOfMemory)?;
        if layout.size() == 0 {
            return Err(SbError::OutOfMemory);
        }
        if let Some(ptr) = platform::pages_alloc(len) {
            return Ok(RingMem {
                ptr,
                len,
                heap: false,
            });
        }
        // SAFETY: the layout has a non-zero size (checked above).
        let raw = unsafe { alloc_zeroed(layout) };
        let ptr = NonNull::new(raw).ok_or(SbError::OutOfMemory)?;
        Ok(RingMem {
            ptr,
            len,
            heap: true,
        })
    }
}

impl Drop for RingMem {
    fn drop(&mut self) {
        if !self.heap {
            // SAFETY: `ptr`/`len` came from one `pages_alloc` in `new` and
            // are given back exactly once (RingMem is not Clone).
            unsafe { platform::pages_free(self.ptr, self.len) };
        } else if let Ok(layout) = Layout::array::<u8>(self.len) {
            // SAFETY: `ptr` came from `alloc_zeroed(layout)` with the same
            // layout and is freed exactly once.
            unsafe { dealloc(self.ptr.as_ptr(), layout) };
        }
    }
}

// SAFETY: RingMem is a uniquely owned heap block of plain bytes.
unsafe impl Send for RingMem {}

/// A ring of bytes, possibly not yet allocated (`len() == 0`).
///
/// `ptr`/`len` are atomics so the consumer may load them while the producer
/// installs the ring lazily; they are only *replaced* while both sides' locks
/// are held ([`Both::resize`]) or on first install by the producer
/// ([`Producer::allocate`]).
struct RawRing {
    ptr: AtomicPtr<u8>,
    len: AtomicUsize,
    /// The memory's [`RingMem::heap`] (read only by `replace`, under the
    /// same exclusion as the pointer's replacement).
    heap: AtomicBool,
}

impl RawRing {
    /// An unallocated ring.
    const fn empty() -> RawRing {
        RawRing {
            ptr: AtomicPtr::new(ptr::null_mut()),
            len: AtomicUsize::new(0),
            heap: AtomicBool::new(false),
        }
    }

    /// Length of the allocated ring, 0 if none.
    #[inline]
    fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Install `mem` as the ring, returning the previous memory (if any).
    ///
    /// Callers: the producer when the ring is unallocated (the consumer never
    /// dereferences an unallocated ring, and it only learns that bytes exist
    /// through a later `Release` of the tail), or [`Both::resize`] holding
    /// both locks.
    fn replace(&self, mem: Option<RingMem>) -> Option<RingMem> {
        let (p, l, h) = match mem {
            Some(m) => {
                let m = core::mem::ManuallyDrop::new(m);
                (m.ptr.as_ptr(), m.len, m.heap)
            }
            None => (ptr::null_mut(), 0, false),
        };
        // Publish the length before the pointer: a reader that sees the new
        // pointer (Acquire) also sees the new length.
        let old_heap = self.heap.swap(h, Ordering::AcqRel);
        let old_len = self.len.swap(l, Ordering::AcqRel);
        let old_ptr = self.ptr.swap(p, Ordering::AcqRel);
        NonNull::new(old_ptr).map(|ptr| RingMem {
            ptr,
            len: old_len,
            heap: old_heap,
        })
    }

    /// Position `n` bytes after `pos`, modulo the ring length.
    #[inline]
    fn advance(&self, pos: usize, n: usize) -> usize {
        let len = self.len();
        if len == 0 {
            return 0;
        }
        // pos < len and n <= len in every caller; reduce anyway (off the hot
        // path: a division costs more than the rest of a small insert) so
        // that nothing can overflow or panic.
        let p = if pos < len { pos } else { pos % len };
        let n = if n <= len { n } else { n % len };
        let room = len - p;
        if n >= room {
            n - room
        } else {
            p + n
        }
    }

    /// Copy `data` into the ring starting at physical position `pos`,
    /// wrapping at the end.
    ///
    /// # Safety
    /// No other thread may read or write these ring bytes concurrently, and
    /// the ring must not be replaced concurrently.
    #[inline]
    unsafe fn write(&self, pos: usize, data: &[u8]) {
        let len = self.len();
        let base = self.ptr.load(Ordering::Acquire);
        if base.is_null() || pos >= len || data.len() > len {
            debug_assert!(data.is_empty(), "ring write out of bounds");
            return;
        }
        let first = core::cmp::min(len - pos, data.len());
        // SAFETY: `base` points to `len` bytes; `pos + first <= len` and
        // `data.len() - first <= pos <= len` keep both copies in bounds; the
        // caller guarantees exclusive access to these bytes. `data` cannot
        // alias the ring (it is a shared borrow the caller owns, and the ring
        // is never handed out as a slice).
        unsafe {
            ptr::copy_nonoverlapping(data.as_ptr(), base.add(pos), first);
            ptr::copy_nonoverlapping(data.as_ptr().add(first), base, data.len() - first);
        }
    }

    /// Copy `out.len()` ring bytes starting at physical position `pos` into
    /// `out`, wrapping at the end.
    ///
    /// # Safety
    /// No other thread may write these ring bytes concurrently, and the ring
    /// must not be replaced concurrently.
    #[inline]
    unsafe fn read(&self, pos: usize, out: &mut [u8]) {
        let len = self.len();
        let base = self.ptr.load(Ordering::Acquire);
        if base.is_null() || pos >= len || out.len() > len {
            debug_assert!(out.is_empty(), "ring read out of bounds");
            return;
        }
        let first = core::cmp::min(len - pos, out.len());
        let rest = out.len() - first;
        // SAFETY: bounds as in `write`; the caller guarantees nobody writes
        // these bytes meanwhile; `out` is a unique borrow distinct from the
        // ring allocation.
        unsafe {
            ptr::copy_nonoverlapping(base.add(pos), out.as_mut_ptr(), first);
            ptr::copy_nonoverlapping(base, out.as_mut_ptr().add(first), rest);
        }
    }

    /// Copy `n` bytes starting at physical `pos` of this ring into `dst`
    /// starting at physical position 0 (used when resizing).
    ///
    /// # Safety
    /// Both rings must be quiescent (both sides' locks held).
    unsafe fn copy_to(&self, pos: usize, n: usize, dst: &RingMem) {
        let len = self.len();
        let base = self.ptr.load(Ordering::Acquire);
        if base.is_null() || pos >= len || n > len || n > dst.len {
            debug_assert!(n == 0, "ring copy out of bounds");
            return;
        }
        let first = core::cmp::min(len - pos, n);
        // SAFETY: in bounds of both allocations (checked above); distinct
        // allocations never overlap; the caller guarantees quiescence.
        unsafe {
            ptr::copy_nonoverlapping(base.add(pos), dst.ptr.as_ptr(), first);
            ptr::copy_nonoverlapping(base, dst.ptr.as_ptr().add(first), n - first);
        }
    }
}

impl Drop for RawRing {
    fn drop(&mut self) {
        drop(self.replace(None));
    }
}

/// What the producer publishes: `tail` and the buffer's own words (`PX`).
struct ProdPub<PX> {
    /// Absolute offset one past the last published byte.
    tail: AtomicU64,
    ext: PX,
}

/// What the consumer publishes: `head` and the buffer's own words (`CX`).
struct ConsPub<CX> {
    /// Absolute offset of the first byte not yet consumed.
    head: AtomicU64,
    ext: CX,
}

/// The capacity and the memory's pointer and length: read by both sides on
/// every operation, changed only under both locks (or on the producer's
/// first allocation). On a line of their own: beside `head`, every store of
/// the consumer's took the line from the producer's next write, and an
/// in-process TCP ping-pong round trip cost 0.3 us more (2.7 against 2.4,
/// bench/run.sh medians of 5, twice).
struct Shared {
    /// The capacity; equals the memory's length once allocated. Changed only
    /// with both locks held.
    cap: AtomicUsize,
    mem: RawRing,
}

/// Producer-private state (under the producer lock).
struct ProdPriv<PS> {
    /// Physical ring index of `tail`.
    tail_pos: usize,
    state: PS,
}

/// Consumer-private state (under the consumer lock).
struct ConsPriv {
    /// Physical ring index of `head`.
    head_pos: usize,
}

/// A single-producer single-consumer byte ring (see the module docs): the
/// published offsets with each side's extra words `PX`/`CX`, each side's
/// lock (the producer's guarding its private state `PS`), the capacity and
/// the lazily allocated memory.
///
/// Invariants: `tail - head <= len` once allocated, and `tail == head`
/// while unallocated; `tail_pos`/`head_pos` are `tail`/`head` modulo `len`
/// (0 while unallocated).
pub(crate) struct Ring<PX, CX, PS> {
    /// What the producer publishes (read by the consumer).
    prod: Padded<ProdPub<PX>>,
    /// What the consumer publishes (read by the producer).
    cons: Padded<ConsPub<CX>>,
    /// Capacity and memory.
    shared: Padded<Shared>,
    /// Producer-private state behind the producer's lock. On its own cache
    /// line, so taking the lock never disturbs the line the other side polls.
    prod_state: Padded<SpinLock<ProdPriv<PS>>>,
    /// Consumer-private state behind the consumer's lock.
    cons_state: Padded<SpinLock<ConsPriv>>,
}

impl<PX, CX, PS> Ring<PX, CX, PS> {
    /// An unallocated ring of `capacity` bytes whose `head` and `tail` start
    /// at `start`.
    pub(crate) fn new(start: u64, capacity: usize, px: PX, cx: CX, ps: PS) -> Self {
        Ring {
            prod: Padded(ProdPub {
                tail: AtomicU64::new(start),
                ext: px,
            }),
            cons: Padded(ConsPub {
                head: AtomicU64::new(start),
                ext: cx,
            }),
            shared: Padded(Shared {
                cap: AtomicUsize::new(capacity),
                mem: RawRing::empty(),
            }),
            prod_state: Padded(SpinLock::new(ProdPriv {
                tail_pos: 0,
                state: ps,
            })),
            cons_state: Padded(SpinLock::new(ConsPriv { head_pos: 0 })),
        }
    }

    /// `head` (Acquire): the consumer's published offset.
    #[inline]
    pub(crate) fn head(&self) -> u64 {
        self.cons.head.load(Ordering::Acquire)
    }

    /// `tail` (Acquire): the producer's published offset.
    #[inline]
    pub(crate) fn tail(&self) -> u64 {
        self.prod.tail.load(Ordering::Acquire)
    }

    /// The capacity (Acquire).
    #[inline]
    pub(crate) fn capacity(&self) -> usize {
        self.shared.cap.load(Ordering::Acquire)
    }

    /// The producer's extra published words.
    #[inline]
    pub(crate) fn prod_ext(&self) -> &PX {
        &self.prod.ext
    }

    /// The consumer's extra published words.
    #[inline]
    pub(crate) fn cons_ext(&self) -> &CX {
        &self.cons.ext
    }

    /// Take the producer lock; the handle holds a snapshot of `head`.
    #[inline]
    pub(crate) fn producer(&self) -> Producer<'_, PX, CX, PS> {
        let g = self.prod_state.lock();
        // Acquire: bytes the consumer released before this head are free.
        let head = self.cons.head.load(Ordering::Acquire);
        let tail = self.prod.tail.load(Ordering::Relaxed);
        Producer {
            ring: self,
            g,
            head,
            tail,
        }
    }

    /// Take the consumer lock. Nothing is readable through the handle until
    /// [`Consumer::available`] loads `tail`.
    #[inline]
    pub(crate) fn consumer(&self) -> Consumer<'_, PX, CX, PS> {
        let g = self.cons_state.lock();
        let head = self.cons.head.load(Ordering::Relaxed);
        Consumer {
            ring: self,
            g,
            head,
            tail: head,
        }
    }

    /// Take both locks (consumer, then producer: the only order anything
    /// takes both in): neither side moves while the handle lives.
    pub(crate) fn both(&self) -> Both<'_, PX, CX, PS> {
        let mut cons = self.consumer();
        let prod = self.producer();
        cons.tail = prod.tail;
        Both { cons, prod }
    }
}

/// The producer's side of a [`Ring`]: the producer lock is held.
pub(crate) struct Producer<'a, PX, CX, PS> {
    ring: &'a Ring<PX, CX, PS>,
    g: SpinGuard<'a, ProdPriv<PS>>,
    /// `head` when the lock was taken (it only moves on, so the free space
    /// computed from it is never too large).
    head: u64,
    /// `tail` (only this side writes it).
    tail: u64,
}

impl<PX, CX, PS> Producer<'_, PX, CX, PS> {
    /// The snapshot of `head` taken with the lock.
    #[inline]
    pub(crate) fn head(&self) -> u64 {
        self.head
    }

    /// `tail` (the producer's own).
    #[inline]
    pub(crate) fn tail(&self) -> u64 {
        self.tail
    }

    /// The capacity (stable while this side's lock is held).
    #[inline]
    pub(crate) fn capacity(&self) -> usize {
        self.ring.shared.cap.load(Ordering::Relaxed)
    }

    /// The producer's private state.
    #[inline]
    pub(crate) fn state(&self) -> &PS {
        &self.g.state
    }

    /// The producer's private state, mutably.
    #[inline]
    pub(crate) fn state_mut(&mut self) -> &mut PS {
        &mut self.g.state
    }

    /// Allocate the memory (the capacity's worth) if it is not yet; the
    /// ring is then empty and both indexes are 0.
    #[inline]
    pub(crate) fn allocate(&mut self) -> Result<(), SbError> {
        if self.ring.shared.mem.len() == 0 {
            let mem = RingMem::new(self.capacity())?;
            // Unallocated means `tail == head` and both indexes 0 (the
            // invariants): the consumer has nothing to read, and it learns
            // of bytes only through a later Release of `tail`.
            drop(self.ring.shared.mem.replace(Some(mem)));
        }
        Ok(())
    }

    /// Bytes writable from `tail`: `len - (tail - head)` (0 unallocated).
    #[inline]
    fn free(&self) -> u64 {
        (self.ring.shared.mem.len() as u64).saturating_sub(self.tail.wrapping_sub(self.head))
    }

    /// A writer into the free space, beside the private state (so a write
    /// may run inside a callback that updates the state).
    #[inline]
    pub(crate) fn writer(&mut self) -> (Writer<'_>, &mut PS) {
        let w = Writer {
            mem: &self.ring.shared.mem,
            pos: self.g.tail_pos,
            free: self.free(),
        };
        (w, &mut self.g.state)
    }

    /// Publish the `n` bytes after `tail` (a Release store of `tail + n`);
    /// `false` (nothing changes) if `n` exceeds the free space.
    #[inline]
    pub(crate) fn publish(&mut self, n: u64) -> bool {
        if n > self.free() {
            debug_assert!(false, "ring publish beyond the free space");
            return false;
        }
        self.g.tail_pos = self.ring.shared.mem.advance(self.g.tail_pos, n as usize);
        self.tail = self.tail.wrapping_add(n);
        // Release: publishes the ring bytes written before it.
        self.ring.prod.tail.store(self.tail, Ordering::Release);
        true
    }
}

/// Writes into a producer's free space (see [`Producer::writer`]).
pub(crate) struct Writer<'a> {
    mem: &'a RawRing,
    /// Physical index of `tail`.
    pos: usize,
    /// Free space from `tail`.
    free: u64,
}

impl Writer<'_> {
    /// Write `data` at `rel` bytes after `tail`; `false` (nothing written)
    /// unless it lies in the free space.
    #[inline]
    pub(crate) fn write(&self, rel: u64, data: &[u8]) -> bool {
        match rel.checked_add(data.len() as u64) {
            Some(end) if end <= self.free => {}
            _ => {
                debug_assert!(false, "ring write beyond the free space");
                return false;
            }
        }
        // SAFETY: the bytes lie in `[tail, head + len)` for a `head` no newer
        // than the consumer's: the consumer reads only in `[head, tail)`
        // (`tail` is ours, under the producer lock we hold through `'a`), so
        // nobody reads or writes them meanwhile; the memory is replaced only
        // under both locks or by this producer (`allocate`).
        unsafe {
            self.mem
                .write(self.mem.advance(self.pos, rel as usize), data)
        };
        true
    }
}

/// The consumer's side of a [`Ring`]: the consumer lock is held.
pub(crate) struct Consumer<'a, PX, CX, PS> {
    ring: &'a Ring<PX, CX, PS>,
    g: SpinGuard<'a, ConsPriv>,
    /// `head` (only this side writes it).
    head: u64,
    /// `tail` as last loaded by `available` (`head` until then).
    tail: u64,
}

impl<PX, CX, PS> Consumer<'_, PX, CX, PS> {
    /// Load `tail` (Acquire: the bytes below it were written before it was
    /// stored) and return the bytes readable from `head`.
    #[inline]
    pub(crate) fn available(&mut self) -> u64 {
        self.tail = self.ring.prod.tail.load(Ordering::Acquire);
        self.tail.wrapping_sub(self.head)
    }

    /// Copy the `out.len()` bytes at `rel` bytes after `head` into `out`;
    /// `false` (nothing copied) unless they lie below the loaded `tail`.
    #[inline]
    pub(crate) fn read(&self, rel: u64, out: &mut [u8]) -> bool {
        let avail = self.tail.wrapping_sub(self.head);
        match rel.checked_add(out.len() as u64) {
            Some(end) if end <= avail => {}
            _ => {
                debug_assert!(false, "ring read beyond the published bytes");
                return false;
            }
        }
        let mem = &self.ring.shared.mem;
        // SAFETY: the bytes lie in `[head, tail)` for a `tail` the producer
        // published (Acquire): it never writes there again until `head`
        // moves past them, which only this side does, under the consumer lock
        // we hold; the memory is replaced only under both locks, or while
        // unallocated (and then `avail` is 0 and nothing is read).
        unsafe { mem.read(mem.advance(self.g.head_pos, rel as usize), out) };
        true
    }

    /// Free the `n` bytes after `head` (a Release store of `head + n`);
    /// `false` (nothing changes) unless they lie below the loaded `tail`.
    #[inline]
    pub(crate) fn consume(&mut self, n: u64) -> bool {
        if n > self.tail.wrapping_sub(self.head) {
            debug_assert!(false, "ring consume beyond the published bytes");
            return false;
        }
        self.g.head_pos = self.ring.shared.mem.advance(self.g.head_pos, n as usize);
        self.head = self.head.wrapping_add(n);
        // Release: the producer may reuse these bytes once it sees this.
        self.ring.cons.head.store(self.head, Ordering::Release);
        true
    }
}

/// Both sides of a [`Ring`]: both locks are held.
pub(crate) struct Both<'a, PX, CX, PS> {
    // Field order is drop order: the producer lock goes first.
    prod: Producer<'a, PX, CX, PS>,
    cons: Consumer<'a, PX, CX, PS>,
}

impl<PX, CX, PS> Both<'_, PX, CX, PS> {
    /// `head` (stable while both locks are held).
    #[inline]
    pub(crate) fn head(&self) -> u64 {
        self.cons.head
    }

    /// `tail` (stable while both locks are held).
    #[inline]
    pub(crate) fn tail(&self) -> u64 {
        self.prod.tail
    }

    /// The producer's private state.
    #[inline]
    pub(crate) fn state(&self) -> &PS {
        self.prod.state()
    }

    /// The producer's private state, to change.
    #[inline]
    pub(crate) fn state_mut(&mut self) -> &mut PS {
        self.prod.state_mut()
    }

    /// Empties the ring and starts `head` and `tail` at `start`, keeping
    /// the capacity: the memory is released (allocated again by the next
    /// `allocate`), as an unallocated ring has `tail == head`.
    pub(crate) fn restart(&mut self, start: u64) {
        let ring = self.prod.ring;
        drop(ring.shared.mem.replace(None));
        self.cons.g.head_pos = 0;
        self.prod.g.tail_pos = 0;
        self.cons.head = start;
        self.cons.tail = start;
        self.prod.head = start;
        self.prod.tail = start;
        ring.prod.tail.store(start, Ordering::Release);
        ring.cons.head.store(start, Ordering::Release);
    }

    /// Set the capacity, keeping the `keep` bytes from `head` (published or
    /// not: a stream's out-of-order bytes count) at the start of the new
    /// memory. An allocated ring of another length moves to new memory, or,
    /// when `keep` is 0, is released (allocated again, at the new capacity,
    /// by the next `allocate`). `ShrinkBelowBuffered` (nothing changes) if
    /// `keep` is below `tail - head` or above either length;
    /// `OutOfMemory` if the new memory cannot be had.
    pub(crate) fn resize(&mut self, capacity: usize, keep: u64) -> Result<(), SbError> {
        let ring = self.prod.ring;
        let in_ring = self.prod.tail.wrapping_sub(self.cons.head);
        let len = ring.shared.mem.len();
        if keep < in_ring || keep > capacity as u64 || (len != 0 && keep > len as u64) {
            return Err(SbError::ShrinkBelowBuffered);
        }
        if len != 0 && len != capacity {
            if keep == 0 {
                drop(ring.shared.mem.replace(None));
            } else {
                let mem = RingMem::new(capacity)?;
                // SAFETY: both locks are held (through `self`), so neither
                // side touches the memory; `keep` fits in both lengths
                // (checked above).
                unsafe {
                    ring.shared
                        .mem
                        .copy_to(self.cons.g.head_pos, keep as usize, &mem)
                };
                drop(ring.shared.mem.replace(Some(mem)));
            }
            self.cons.g.head_pos = 0;
            // A full ring's write position is its start, not its end.
            self.prod.g.tail_pos = ring.shared.mem.advance(0, in_ring as usize);
        }
        ring.shared.cap.store(capacity, Ordering::Release);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type R = Ring<(), (), ()>;

    fn put(r: &R, data: &[u8]) -> bool {
        let mut p = r.producer();
        p.allocate().unwrap();
        p.writer().0.write(0, data) && p.publish(data.len() as u64)
    }

    fn take(r: &R, n: usize) -> Option<alloc::vec::Vec<u8>> {
        let mut c = r.consumer();
        let mut out = alloc::vec![0u8; n];
        (c.available() >= n as u64 && c.read(0, &mut out) && c.consume(n as u64)).then_some(out)
    }

    #[test]
    fn wraps_and_refuses_outside_each_side() {
        let r = R::new(u64::MAX - 2, 8, (), (), ());
        assert_eq!(r.consumer().available(), 0);
        assert!(put(&r, b"abcdef"));
        assert_eq!(take(&r, 4).unwrap(), b"abcd");
        // 2 buffered: 6 free, wrapping at the end of the memory.
        assert!(put(&r, b"ghijkl"));
        assert_eq!(r.producer().free(), 0);
        assert_eq!(take(&r, 8).unwrap(), b"efghijkl");
        assert_eq!(r.head(), r.tail());
        assert_eq!(r.tail(), (u64::MAX - 2).wrapping_add(12));
    }

    #[test]
    fn resize_keeps_bytes_and_releases_empty() {
        let r = R::new(0, 8, (), (), ());
        assert!(put(&r, b"0123456"));
        assert_eq!(take(&r, 5).unwrap(), b"01234");
        assert!(put(&r, b"789abc"));
        // 8 bytes "56789abc", wrapped: grow to 12.
        assert_eq!(r.both().resize(4, 8), Err(SbError::ShrinkBelowBuffered));
        assert_eq!(r.both().resize(12, 7), Err(SbError::ShrinkBelowBuffered));
        r.both().resize(12, 8).unwrap();
        assert_eq!(r.capacity(), 12);
        assert!(put(&r, b"defg"));
        assert_eq!(take(&r, 12).unwrap(), b"56789abcdefg");
        // Empty: released, and allocated again at the new size.
        r.both().resize(3, 0).unwrap();
        assert_eq!(r.shared.mem.len(), 0);
        assert!(put(&r, b"xyz"));
        assert_eq!(r.shared.mem.len(), 3);
        assert_eq!(take(&r, 3).unwrap(), b"xyz");
    }
}

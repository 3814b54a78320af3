//! Internal counters behind [`SbStats`].
//!
//! Each side bumps its own cache-line-aligned block, so the producer and the
//! consumer never write to a shared cache line on the fast path. A block has
//! one writer at a time (its side's lock), so a counter is bumped with a plain
//! load + store instead of a read-modify-write; rejections may come from
//! either side (`set_capacity` is consumer-side) and use `fetch_add`.

use core::sync::atomic::{AtomicU64, Ordering};

use super::{SbError, SbStats};

/// A counter with a single writer at a time.
#[derive(Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub(crate) fn add(&self, n: u64) {
        let v = self.0.load(Ordering::Relaxed);
        self.0.store(v.wrapping_add(n), Ordering::Relaxed);
    }
    #[inline]
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
    fn zero(&self) {
        self.0.store(0, Ordering::Relaxed);
    }
}

/// Counters written by the producer side.
#[derive(Default)]
#[repr(align(64))]
pub(crate) struct ProducerCounters {
    pub(crate) fragments: Counter,
    pub(crate) bytes_in: Counter,
    pub(crate) duplicate_fragments: Counter,
    pub(crate) duplicate_bytes: Counter,
    pub(crate) datagrams_completed: Counter,
    pub(crate) evicted_partials: Counter,
    pub(crate) evicted_bytes: Counter,
}

/// Counters written by the consumer side.
#[derive(Default)]
#[repr(align(64))]
pub(crate) struct ConsumerCounters {
    pub(crate) bytes_read: Counter,
    pub(crate) datagrams_read: Counter,
    pub(crate) truncated_reads: Counter,
}

/// All counters of one buffer.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) prod: ProducerCounters,
    pub(crate) cons: ConsumerCounters,
    rejected: [AtomicU64; SbError::COUNT],
}

impl Counters {
    /// Count a rejection and hand the error back (for `return Err(c.reject(e))`).
    #[cold]
    pub(crate) fn reject(&self, e: SbError) -> SbError {
        if let Some(c) = self.rejected.get(e.index()) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        e
    }

    /// Every counter back to 0 (a stream that starts anew), with both
    /// sides' locks held.
    pub(crate) fn zero(&self) {
        let p = &self.prod;
        for c in [
            &p.fragments,
            &p.bytes_in,
            &p.duplicate_fragments,
            &p.duplicate_bytes,
            &p.datagrams_completed,
            &p.evicted_partials,
            &p.evicted_bytes,
            &self.cons.bytes_read,
            &self.cons.datagrams_read,
            &self.cons.truncated_reads,
        ] {
            c.zero();
        }
        for r in &self.rejected {
            r.store(0, Ordering::Relaxed);
        }
    }

    /// A snapshot (each counter read once; not atomic as a whole).
    pub(crate) fn snapshot(&self) -> SbStats {
        let mut rejected = [0u64; SbError::COUNT];
        for (dst, src) in rejected.iter_mut().zip(self.rejected.iter()) {
            *dst = src.load(Ordering::Relaxed);
        }
        SbStats {
            fragments: self.prod.fragments.get(),
            bytes_in: self.prod.bytes_in.get(),
            duplicate_fragments: self.prod.duplicate_fragments.get(),
            duplicate_bytes: self.prod.duplicate_bytes.get(),
            bytes_read: self.cons.bytes_read.get(),
            datagrams_completed: self.prod.datagrams_completed.get(),
            datagrams_read: self.cons.datagrams_read.get(),
            truncated_reads: self.cons.truncated_reads.get(),
            evicted_partials: self.prod.evicted_partials.get(),
            evicted_bytes: self.prod.evicted_bytes.get(),
            rejected,
        }
    }
}

/// Pads and aligns `T` to a cache line so the producer's and the consumer's
/// hot fields never share one (false sharing would make the two ends wait on
/// each other through the cache even without a lock).
#[repr(align(64))]
pub(crate) struct Padded<T>(pub(crate) T);

impl<T> core::ops::Deref for Padded<T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.0
    }
}

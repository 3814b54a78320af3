//! A table of slots made in chunks on first use and never freed while the
//! table lives: the fd table and the socket slab.
//!
//! A lookup is one `Acquire` load of the chunk's pointer (null for a chunk
//! never made), then an index: no lock, no allocation, so the "is this fd
//! ours?" test of every interposed `read`/`write`/`close` stays one atomic
//! load. A chunk is made once (the first `get_or_make` that reaches it; a
//! racing maker's chunk is dropped unpublished) and lives as long as the
//! table (for the statics that use it: the process).
//!
//! This module holds the raw pointers; the tables built on it are safe code.
#![allow(unsafe_code)]

use alloc::boxed::Box;
use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};

/// `CHUNKS` chunks of `CHUNK` slots of `T`, made on first use.
pub(crate) struct ChunkTable<T, const CHUNK: usize, const CHUNKS: usize> {
    chunks: [AtomicPtr<[T; CHUNK]>; CHUNKS],
}

// SAFETY: the table owns its chunks (boxes of `T`) and hands out only shared
// references to slots; sending the table sends the `T`s (`T: Send`) and
// sharing it shares them (`T: Sync`), exactly as for a `Box<[T]>`.
unsafe impl<T: Send, const CHUNK: usize, const CHUNKS: usize> Send
    for ChunkTable<T, CHUNK, CHUNKS>
{
}
// SAFETY: as for `Send`: through `&ChunkTable` other threads reach only
// `&T` (which needs `T: Sync`) and may make a chunk of fresh `T`s that the
// table then owns and may drop on another thread (which needs `T: Send`).
unsafe impl<T: Send + Sync, const CHUNK: usize, const CHUNKS: usize> Sync
    for ChunkTable<T, CHUNK, CHUNKS>
{
}

impl<T, const CHUNK: usize, const CHUNKS: usize> ChunkTable<T, CHUNK, CHUNKS> {
    /// Number of slots: indexes `0..CAPACITY`.
    pub(crate) const CAPACITY: usize = CHUNK * CHUNKS;

    /// An empty table (no chunk made).
    pub(crate) const fn new() -> Self {
        ChunkTable {
            chunks: [const { AtomicPtr::new(ptr::null_mut()) }; CHUNKS],
        }
    }

    /// The chunk at `ci`, if made.
    #[inline]
    fn chunk(&self, ci: usize) -> Option<&[T; CHUNK]> {
        let p = self.chunks.get(ci)?.load(Ordering::Acquire);
        // SAFETY: a non-null pointer came from `Box::into_raw` in
        // `get_or_make`, was published once by a Release exchange that this
        // Acquire load pairs with (so the chunk is fully initialised), and is
        // freed only in `Drop`, which needs `&mut self`: it outlives `&self`.
        unsafe { p.as_ref() }
    }

    /// Slot `i`, if its chunk was made (`None` also beyond the table).
    #[inline]
    pub(crate) fn get(&self, i: usize) -> Option<&T> {
        if CHUNK == 0 {
            return None;
        }
        self.chunk(i / CHUNK)?.get(i % CHUNK)
    }

    /// Slot `i`, making its chunk (every slot from `make`) if it was not
    /// made yet; `None` only beyond the table.
    pub(crate) fn get_or_make(&self, i: usize, make: impl FnMut(usize) -> T) -> Option<&T> {
        if i >= Self::CAPACITY {
            return None;
        }
        let cell = self.chunks.get(i / CHUNK)?;
        if cell.load(Ordering::Acquire).is_null() {
            let fresh: Box<[T; CHUNK]> = Box::new(core::array::from_fn(make));
            let p = Box::into_raw(fresh);
            if cell
                .compare_exchange(ptr::null_mut(), p, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                // SAFETY: `p` came from `Box::into_raw` above and the failed
                // exchange did not publish it: this is its only owner.
                drop(unsafe { Box::from_raw(p) });
            }
        }
        self.get(i)
    }

    /// Every slot of every chunk made so far, with its index, in increasing
    /// order. Takes no lock and allocates nothing (for the fork and exec
    /// of a child, hosted only).
    #[cfg(any(test, feature = "std"))]
    pub(crate) fn iter(&self) -> impl Iterator<Item = (usize, &T)> {
        (0..CHUNKS)
            .filter_map(move |ci| Some((ci, self.chunk(ci)?)))
            .flat_map(|(ci, c)| {
                c.iter()
                    .enumerate()
                    .map(move |(si, s)| (ci * CHUNK + si, s))
            })
    }
}

impl<T, const CHUNK: usize, const CHUNKS: usize> Drop for ChunkTable<T, CHUNK, CHUNKS> {
    fn drop(&mut self) {
        for cell in &mut self.chunks {
            let p = core::mem::replace(cell.get_mut(), ptr::null_mut());
            if !p.is_null() {
                // SAFETY: `p` came from `Box::into_raw` in `get_or_make` and
                // was published once; `&mut self` means no reference into
                // the chunk is live, and the pointer was just cleared, so it
                // is freed once.
                drop(unsafe { Box::from_raw(p) });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::sync::atomic::AtomicUsize;

    #[test]
    fn lookup_make_iterate() {
        let t: ChunkTable<AtomicUsize, 4, 3> = ChunkTable::new();
        assert_eq!(ChunkTable::<AtomicUsize, 4, 3>::CAPACITY, 12);
        assert!(t.get(0).is_none());
        assert!(t.get_or_make(12, |_| AtomicUsize::new(0)).is_none());
        let s = t.get_or_make(5, |i| AtomicUsize::new(100 + i)).unwrap();
        assert_eq!(s.load(Ordering::Relaxed), 101);
        s.store(7, Ordering::Relaxed);
        // The chunk is made once: a second maker does not replace it.
        let s2 = t.get_or_make(6, |_| AtomicUsize::new(0)).unwrap();
        assert_eq!(s2.load(Ordering::Relaxed), 102);
        assert_eq!(t.get(5).unwrap().load(Ordering::Relaxed), 7);
        assert!(t.get(3).is_none());
        assert!(t.get(8).is_none());
        assert!(t.get(usize::MAX).is_none());
        t.get_or_make(11, |_| AtomicUsize::new(0)).unwrap();
        let idx: alloc::vec::Vec<usize> = t.iter().map(|(i, _)| i).collect();
        assert_eq!(idx, [4, 5, 6, 7, 8, 9, 10, 11]);
    }

    #[cfg(feature = "std")]
    #[test]
    fn racing_makers_publish_one_chunk() {
        extern crate std;
        let t: ChunkTable<AtomicUsize, 8, 2> = ChunkTable::new();
        std::thread::scope(|sc| {
            for k in 0..4 {
                let t = &t;
                sc.spawn(move || {
                    let s = t.get_or_make(3, |_| AtomicUsize::new(0)).unwrap();
                    s.fetch_add(k + 1, Ordering::Relaxed);
                });
            }
        });
        assert_eq!(t.get(3).unwrap().load(Ordering::Relaxed), 10);
    }
}

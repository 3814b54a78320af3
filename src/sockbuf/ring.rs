//! The raw byte ring shared by the producer and the consumer.
//!
//! This is the one place that touches raw memory. The ring does not know who
//! owns which bytes: the stream and datagram buffers guarantee, through their
//! head/tail protocol, that the producer only writes bytes the consumer will
//! not read until they are published (a `Release` store of the tail), and that
//! the consumer only reads bytes the producer will not write until they are
//! released (a `Release` store of the head). Every copy is bounds-checked here
//! anyway, so a logic error elsewhere can at worst garble bytes, never reach
//! outside the allocation.
//!
//! The memory is allocated lazily (on the first insert) so that an idle socket
//! costs only the buffer's header, and zeroed, so no byte is ever
//! uninitialised. It comes from the platform (`platform::pages_alloc`): on
//! the hosted platform whole pages from the kernel, which cost only once
//! touched and all go back at free.
#![allow(unsafe_code)]

use alloc::alloc::{alloc_zeroed, dealloc, Layout};
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

use super::SbError;
use crate::platform;

/// An owned, zeroed block of `len` bytes (`len > 0`).
pub(crate) struct RingMem {
    ptr: NonNull<u8>,
    len: usize,
    /// From the allocator (the platform's pages were refused: too many
    /// mappings, say), not from `platform::pages_alloc`.
    heap: bool,
}

impl RingMem {
    /// Allocate `len` zeroed bytes; `OutOfMemory` if neither the platform
    /// nor the allocator has them, or `len` is zero or too large.
    pub(crate) fn new(len: usize) -> Result<RingMem, SbError> {
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
/// are held (`set_capacity`) or on first install by the producer.
pub(crate) struct RawRing {
    ptr: AtomicPtr<u8>,
    len: AtomicUsize,
    /// The memory's [`RingMem::heap`] (read only by `replace`, under the
    /// same exclusion as the pointer's replacement).
    heap: AtomicBool,
}

impl RawRing {
    /// An unallocated ring.
    pub(crate) const fn empty() -> RawRing {
        RawRing {
            ptr: AtomicPtr::new(ptr::null_mut()),
            len: AtomicUsize::new(0),
            heap: AtomicBool::new(false),
        }
    }

    /// Length of the allocated ring, 0 if none.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Install `mem` as the ring, returning the previous memory (if any).
    ///
    /// Callers: the producer when the ring is unallocated (the consumer never
    /// dereferences an unallocated ring, and it only learns that bytes exist
    /// through a later `Release` of the tail), or `set_capacity` holding both
    /// locks.
    pub(crate) fn replace(&self, mem: Option<RingMem>) -> Option<RingMem> {
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
    pub(crate) fn advance(&self, pos: usize, n: usize) -> usize {
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
    pub(crate) unsafe fn write(&self, pos: usize, data: &[u8]) {
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
    pub(crate) unsafe fn read(&self, pos: usize, out: &mut [u8]) {
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
    pub(crate) unsafe fn copy_to(&self, pos: usize, n: usize, dst: &RingMem) {
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

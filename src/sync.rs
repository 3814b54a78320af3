//! Synchronisation primitives of the core.
//!
//! The hosted build uses `parking_lot`; the no_std build will supply its
//! locks through the platform table.

pub use parking_lot::{Mutex, MutexGuard};

use alloc::boxed::Box;
use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};

/// A value set at most once and then read without a lock (one atomic load):
/// the data path reads a socket's backend through it.
pub struct SetOnce<T> {
    ptr: AtomicPtr<T>,
}

impl<T> SetOnce<T> {
    /// An empty cell.
    pub const fn new() -> Self {
        SetOnce {
            ptr: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// The value, if set.
    pub fn get(&self) -> Option<&T> {
        let p = self.ptr.load(Ordering::Acquire);
        // SAFETY: a non-null pointer came from Box::into_raw in `set` and is
        // freed only in Drop, which needs `&mut self`; the Acquire load pairs
        // with the Release exchange, so the value is fully written.
        unsafe { p.as_ref() }
    }

    /// Sets the value; gives it back if the cell was already set.
    pub fn set(&self, value: T) -> Result<(), T> {
        let p = Box::into_raw(Box::new(value));
        match self
            .ptr
            .compare_exchange(ptr::null_mut(), p, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Ok(()),
            Err(_) => {
                // SAFETY: `p` came from Box::into_raw above and was never
                // published, so this is its only owner.
                Err(*unsafe { Box::from_raw(p) })
            }
        }
    }
}

impl<T> Default for SetOnce<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Drop for SetOnce<T> {
    fn drop(&mut self) {
        let p = *self.ptr.get_mut();
        if !p.is_null() {
            // SAFETY: the pointer came from Box::into_raw in `set` and `&mut
            // self` proves no reader holds a reference to it.
            drop(unsafe { Box::from_raw(p) });
        }
    }
}

// SAFETY: SetOnce owns a T like a Box<T> does, and hands out only `&T`.
unsafe impl<T: Send + Sync> Sync for SetOnce<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for SetOnce<T> {}

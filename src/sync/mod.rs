//! Synchronisation primitives of the core.
//!
//! The hosted build uses its own futex mutex ([`futex_mutex`]: nothing
//! outside the lock's word, so a fork child can release what the fork
//! held); the no_std build uses the host's locks from the platform table,
//! or spins on an atomic flag when the host gives none.

pub(crate) mod chunk_table;
#[cfg(feature = "std")]
pub(crate) mod fork_hold;
#[cfg(feature = "std")]
pub mod futex_mutex;
#[cfg(feature = "std")]
pub use futex_mutex::{Mutex, MutexGuard};
#[cfg(not(feature = "std"))]
pub use host_lock::{Mutex, MutexGuard};

pub(crate) use chunk_table::ChunkTable;

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

    /// The value, made by `make` if the cell is empty. Racing callers may
    /// each make one; the first set wins and the others are dropped.
    #[inline]
    pub fn get_or_init(&self, make: impl FnOnce() -> T) -> &T {
        match self.get() {
            Some(v) => v,
            None => self.init_slow(make),
        }
    }

    #[cold]
    fn init_slow(&self, make: impl FnOnce() -> T) -> &T {
        let p = Box::into_raw(Box::new(make()));
        let won =
            match self
                .ptr
                .compare_exchange(ptr::null_mut(), p, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => p,
                Err(cur) => {
                    // SAFETY: `p` came from Box::into_raw above and was never
                    // published, so this is its only owner.
                    drop(unsafe { Box::from_raw(p) });
                    cur
                }
            };
        // SAFETY: `won` is the published pointer (ours, or the winner's that
        // the Acquire failure load read), non-null, from Box::into_raw, and
        // freed only in Drop, which needs `&mut self`.
        unsafe { &*won }
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

#[cfg(not(feature = "std"))]
mod host_lock {
    use core::cell::UnsafeCell;
    use core::ops::{Deref, DerefMut};
    use core::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

    use crate::platform::embedded::ops;

    /// A mutex over the host's lock (created on first use, so that `new` is
    /// const and statics need no initialisation), or over an atomic flag.
    pub struct Mutex<T> {
        host: AtomicPtr<core::ffi::c_void>,
        flag: AtomicBool,
        value: UnsafeCell<T>,
    }

    // SAFETY: access to `value` is serialised by the lock.
    unsafe impl<T: Send> Sync for Mutex<T> {}
    // SAFETY: as above.
    unsafe impl<T: Send> Send for Mutex<T> {}

    /// Proof the lock is held; releases it on drop.
    pub struct MutexGuard<'a, T> {
        m: &'a Mutex<T>,
    }

    impl<T> Mutex<T> {
        /// An unlocked mutex.
        pub const fn new(value: T) -> Self {
            Mutex {
                host: AtomicPtr::new(core::ptr::null_mut()),
                flag: AtomicBool::new(false),
                value: UnsafeCell::new(value),
            }
        }

        fn host_lock(&self) -> Option<(*mut core::ffi::c_void, *mut core::ffi::c_void)> {
            let o = ops()?;
            let create = o.lock_create?;
            let mut l = self.host.load(Ordering::Acquire);
            if l.is_null() {
                // SAFETY: a registered host function.
                let fresh = unsafe { create(o.ctx) };
                l = match self.host.compare_exchange(
                    core::ptr::null_mut(),
                    fresh,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => fresh,
                    // Another thread installed one first; ours is leaked
                    // (the table has no destroy entry for a lock never used).
                    Err(other) => other,
                };
            }
            Some((o.ctx, l))
        }

        /// Takes the lock.
        pub fn lock(&self) -> MutexGuard<'_, T> {
            if let Some((ctx, l)) = self.host_lock() {
                if let Some(f) = ops().and_then(|o| o.lock) {
                    // SAFETY: a registered host function on its own lock.
                    unsafe { f(ctx, l) };
                    return MutexGuard { m: self };
                }
            }
            while self
                .flag
                .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                core::hint::spin_loop();
            }
            MutexGuard { m: self }
        }
    }

    impl<T> Drop for MutexGuard<'_, T> {
        fn drop(&mut self) {
            let l = self.m.host.load(Ordering::Acquire);
            if !l.is_null() {
                if let Some(o) = ops() {
                    if let Some(f) = o.unlock {
                        // SAFETY: the lock was taken by this guard.
                        unsafe { f(o.ctx, l) };
                        return;
                    }
                }
            }
            self.m.flag.store(false, Ordering::Release);
        }
    }

    impl<T> Deref for MutexGuard<'_, T> {
        type Target = T;
        fn deref(&self) -> &T {
            // SAFETY: the guard proves exclusive access.
            unsafe { &*self.m.value.get() }
        }
    }

    impl<T> DerefMut for MutexGuard<'_, T> {
        fn deref_mut(&mut self) -> &mut T {
            // SAFETY: the guard proves exclusive access.
            unsafe { &mut *self.m.value.get() }
        }
    }
}

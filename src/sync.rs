//! Synchronisation primitives of the core.
//!
//! The hosted build uses `parking_lot`; the no_std build uses the host's
//! locks from the platform table, or spins on an atomic flag when the host
//! gives none.

#[cfg(not(feature = "std"))]
pub use host_lock::{Mutex, MutexGuard};
#[cfg(feature = "std")]
pub use parking_lot::{Mutex, MutexGuard};

/// fork() support: makes parking_lot's table of wait queues now (it is
/// made at the first wait otherwise), so that a fork child never has to:
/// a child of a threaded process had better not allocate, and the table
/// being made by another thread at the instant of the fork would leave the
/// child without one.
#[cfg(feature = "std")]
pub fn fork_support_init() {
    // SAFETY: not in a signal handler; no thread waits under key 0 (an
    // address nothing has), so this wakes nobody.
    unsafe { parking_lot_core::unpark_all(0, parking_lot_core::DEFAULT_UNPARK_TOKEN) };
}

/// fork() support for a table of lazily made chunks of locks (the fd table,
/// the socket slab): `lock` takes every lock of each chunk made so far,
/// forgetting the guards, and the chunk is marked in `locked`.
///
/// # Safety
/// A non-null pointer of `chunks` points to a chunk that is never freed.
#[cfg(feature = "std")]
pub unsafe fn fork_lock_chunks<C>(
    chunks: &[core::sync::atomic::AtomicPtr<C>],
    locked: &[core::sync::atomic::AtomicBool],
    lock: impl Fn(&C),
) {
    use core::sync::atomic::Ordering;
    for (cell, mark) in chunks.iter().zip(locked) {
        // SAFETY: published once, never freed (per the caller).
        if let Some(c) = unsafe { cell.load(Ordering::Acquire).as_ref() } {
            lock(c);
            mark.store(true, Ordering::Relaxed);
        }
    }
}

/// fork() support: `release` gives back the locks of each chunk that
/// [`fork_lock_chunks`] marked in `locked`, and the mark is cleared.
///
/// # Safety
/// As for [`fork_lock_chunks`], which this thread (in a fork child: the
/// thread that forked) called before, once.
#[cfg(feature = "std")]
pub unsafe fn fork_unlock_chunks<C>(
    chunks: &[core::sync::atomic::AtomicPtr<C>],
    locked: &[core::sync::atomic::AtomicBool],
    release: impl Fn(&C),
) {
    use core::sync::atomic::Ordering;
    for (cell, mark) in chunks.iter().zip(locked) {
        if !mark.swap(false, Ordering::Relaxed) {
            continue;
        }
        // SAFETY: published once, never freed (per the caller).
        if let Some(c) = unsafe { cell.load(Ordering::Acquire).as_ref() } {
            release(c);
        }
    }
}

/// fork() support: releases a mutex that the forking thread locked before
/// the fork, forgetting the guard. In the parent this is an unlock. In the
/// child (`in_child`), the threads that were parked on the mutex in the
/// parent (waiting while the fork held it) did not come along, but
/// parking_lot's wait queue still lists them: they are dequeued first, else
/// the unlock could hand the mutex to one of them, and it would stay locked
/// for ever.
///
/// # Safety
/// The calling thread (in the child: the thread that forked) took `m` and
/// forgot the guard, and nothing else releases it.
#[cfg(feature = "std")]
pub unsafe fn fork_release<T: ?Sized>(m: &Mutex<T>, in_child: bool) {
    // parking_lot's RawMutex is one byte, its state: bit 0 locked, bit 1
    // some thread parked (see parking_lot's raw_mutex.rs). A one-byte
    // struct holds its one-byte field at offset 0.
    const _: () = assert!(core::mem::size_of::<parking_lot::RawMutex>() == 1);
    const PARKED_BIT: u8 = 2;
    // SAFETY: only the address is used.
    let raw = unsafe { m.raw() } as *const parking_lot::RawMutex;
    // SAFETY: the RawMutex is a live AtomicU8 (asserted above).
    let state = unsafe { &*(raw as *const core::sync::atomic::AtomicU8) };
    if in_child && state.load(core::sync::atomic::Ordering::Relaxed) & PARKED_BIT != 0 {
        // The key under which parking_lot queues the mutex's waiters is
        // its RawMutex's address. (Only when some thread parked: then the
        // queue's table exists, and the child allocates nothing here.)
        // SAFETY: not in a signal handler; the dequeued "threads" are
        // copies of the parent's: waking them writes their parker word in
        // the child's copy of their memory, which nothing else uses.
        unsafe {
            parking_lot_core::unpark_all(raw as usize, parking_lot_core::DEFAULT_UNPARK_TOKEN)
        };
    }
    // SAFETY: the caller's guarantee: this thread holds `m`, guard forgotten.
    unsafe { m.force_unlock() };
}

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

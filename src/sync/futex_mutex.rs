//! The hosted build's mutex: a futex word, nothing else.
//!
//! Why not `parking_lot` (which the crate used before): its waiters queue
//! in a process-wide hash table whose bucket locks another thread may hold
//! at the instant of a `fork()`; the child then deadlocks the first time it
//! touches that bucket (seen in `t_fork`: a child stuck in `unpark_all`
//! while releasing the locks the fork held). And a contended parking_lot
//! lock calls `sched_yield`, which on a busy machine hands the core away
//! for a whole time slice. Here the whole state is one word in the mutex:
//! a fork child releases a lock by storing 0, and a waiter spins briefly,
//! then sleeps on the word in the kernel.
//!
//! The protocol is the classic three-state futex mutex (Drepper, "Futexes
//! Are Tricky", mutex 2): 0 unlocked, 1 locked, 2 locked with (possible)
//! sleepers; an unlock that finds 2 wakes one sleeper.
#![allow(unsafe_code)]

use core::cell::UnsafeCell;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicU32, Ordering};

use crate::platform;

const UNLOCKED: u32 = 0;
const LOCKED: u32 = 1;
const CONTENDED: u32 = 2;

/// How many times a locker looks at a held lock before it sleeps: the
/// critical sections here are short, so a holder running on another core
/// usually lets go within this; no yield (see the module docs).
const SPINS: u32 = 100;

/// A mutual-exclusion lock over a futex word.
pub struct Mutex<T: ?Sized> {
    state: AtomicU32,
    value: UnsafeCell<T>,
}

// SAFETY: the lock hands out access to `value` to one thread at a time.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Send> Send for Mutex<T> {}

/// Proof the lock is held; releases it on drop. Not `Send`: it is released
/// by the thread that took it.
pub struct MutexGuard<'a, T: ?Sized> {
    m: &'a Mutex<T>,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: a shared guard only hands out `&T`.
unsafe impl<T: ?Sized + Sync> Sync for MutexGuard<'_, T> {}

impl<T> Mutex<T> {
    /// An unlocked mutex.
    pub const fn new(value: T) -> Self {
        Mutex {
            state: AtomicU32::new(UNLOCKED),
            value: UnsafeCell::new(value),
        }
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Takes the lock, waiting as long as it takes.
    #[inline]
    pub fn lock(&self) -> MutexGuard<'_, T> {
        if self
            .state
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
        self.guard()
    }

    /// Takes the lock if it is free.
    #[inline]
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        self.state
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| self.guard())
    }

    fn guard(&self) -> MutexGuard<'_, T> {
        MutexGuard {
            m: self,
            _not_send: PhantomData,
        }
    }

    #[cold]
    fn lock_contended(&self) {
        for _ in 0..SPINS {
            if self.state.load(Ordering::Relaxed) == UNLOCKED
                && self
                    .state
                    .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return;
            }
            core::hint::spin_loop();
        }
        // From here on the lock is taken as CONTENDED: an unlock cannot
        // tell whether this thread still sleeps, so it must wake one.
        while self.state.swap(CONTENDED, Ordering::Acquire) != UNLOCKED {
            platform::futex_wait(&self.state, CONTENDED, None);
        }
    }

    #[inline]
    fn unlock(&self) {
        if self.state.swap(UNLOCKED, Ordering::Release) == CONTENDED {
            platform::futex_wake_one(&self.state);
        }
    }

    /// Releases the lock without a guard.
    ///
    /// # Safety
    /// The calling thread holds the lock and forgot its guard (the fork
    /// handlers do this: they take locks before a fork and release them in
    /// both processes after it). In a fork child the word may still say
    /// CONTENDED for the parent's waiters, who did not come along: the
    /// wake-up then finds nobody, and the lock is free.
    pub unsafe fn force_unlock(&self) {
        self.unlock();
    }

    /// The protected value, through exclusive access (no locking needed).
    pub fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.m.unlock();
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the guard proves this thread holds the lock.
        unsafe { &*self.m.value.get() }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard proves this thread holds the lock; `&mut self`
        // makes this the only borrow.
        unsafe { &mut *self.m.value.get() }
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Mutex::new(T::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn counts_under_contention() {
        let m = Arc::new(Mutex::new(0u64));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for _ in 0..100_000 {
                        *m.lock() += 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*m.lock(), 400_000);
    }

    #[test]
    fn try_lock_fails_while_held() {
        let m = Mutex::new(());
        let g = m.lock();
        assert!(m.try_lock().is_none());
        drop(g);
        assert!(m.try_lock().is_some());
    }

    #[test]
    fn force_unlock_frees_a_forgotten_lock() {
        let m = Mutex::new(5);
        core::mem::forget(m.lock());
        assert!(m.try_lock().is_none());
        // SAFETY: this thread holds it, guard forgotten.
        unsafe { m.force_unlock() };
        assert_eq!(*m.try_lock().unwrap(), 5);
    }

    #[test]
    fn force_unlock_of_a_contended_word_frees_it() {
        // What a fork child finds: the word says sleepers that do not
        // exist here.
        let m = Mutex::new(());
        core::mem::forget(m.lock());
        m.state.store(CONTENDED, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { m.force_unlock() };
        assert!(m.try_lock().is_some());
    }
}

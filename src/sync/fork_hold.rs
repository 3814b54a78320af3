//! Locks held across fork(): a fork hook takes them before the fork, with
//! no access to their data, and the same thread releases them after it, in
//! the parent and (as the child's only thread) in the child.
//!
//! A lock whose guard would have to outlive the hook (the fd table's and
//! the slab's slots, each epoll set's lock) is held here instead: taken
//! with its guard forgotten, released once by the record that took it.
//! This module is where that release, an `unsafe` call, lives; the tables
//! that use it stay safe code.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::cell::RefCell;

use super::Mutex;

/// Releases one held lock, once.
type Release = Box<dyn FnOnce()>;

std::thread_local! {
    /// The locks this thread holds for a fork, in the order it took them.
    static HELD: RefCell<Vec<Release>> = const { RefCell::new(Vec::new()) };
}

/// Locks `m` and keeps it locked, with no guard, until this thread calls
/// [`release_held`].
pub(crate) fn hold<T: ?Sized + 'static>(m: &'static Mutex<T>) {
    hold_with(m, |_| ());
}

/// As [`hold`], first calling `f` with the data while the guard lives (to
/// hold the locks it leads to, in the lock order: this one first).
pub(crate) fn hold_with<T: ?Sized + 'static>(m: &'static Mutex<T>, f: impl FnOnce(&T)) {
    let g = m.lock();
    f(&g);
    core::mem::forget(g);
    // SAFETY: this thread took `m` just above and forgot the guard, so
    // no reference to the data is live; the record runs once.
    push(Box::new(move || unsafe { m.force_unlock() }));
}

/// As [`hold`], for the lock `field(&owner)` inside a shared value, which
/// the record keeps alive until the lock is released.
pub(crate) fn hold_in<O: 'static, T: ?Sized + 'static>(owner: Arc<O>, field: fn(&O) -> &Mutex<T>) {
    core::mem::forget(field(&owner).lock());
    // SAFETY: as in `hold`; `owner` lives in the record, so the mutex
    // outlives it.
    push(Box::new(move || unsafe { field(&owner).force_unlock() }));
}

fn push(r: Release) {
    HELD.with(|h| h.borrow_mut().push(r));
}

/// Releases every lock this thread took by [`hold`] or [`hold_in`], last
/// taken first. In a fork child the records are the forking thread's own
/// (the child's memory is a copy), so each process releases its own locks.
pub(crate) fn release_held() {
    let held = HELD.with(|h| core::mem::take(&mut *h.borrow_mut()));
    for release in held.into_iter().rev() {
        release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static A: Mutex<u32> = Mutex::new(0);

    #[test]
    fn held_locks_are_released_once_by_the_thread_that_took_them() {
        struct Owner(Mutex<u32>);
        let owner = Arc::new(Owner(Mutex::new(0)));
        hold(&A);
        hold_in(owner.clone(), |o| &o.0);
        assert!(A.try_lock().is_none());
        assert!(owner.0.try_lock().is_none());
        // Another thread has nothing to release.
        std::thread::spawn(release_held).join().unwrap();
        assert!(A.try_lock().is_none());
        release_held();
        assert!(A.try_lock().is_some());
        assert!(owner.0.try_lock().is_some());
        assert_eq!(Arc::strong_count(&owner), 1, "the record let go of it");
        release_held();
        hold_with(&A, |a| assert_eq!(*a, 0));
        release_held();
        *A.lock() += 1;
    }
}

//! A lock word in shared memory that survives the death of its holder.
//!
//! The word holds the owner's thread id (0: free), with [`WAITERS`] set
//! while someone sleeps on it. A process killed while holding it leaves its
//! id behind: a waiter that has waited [`CHECK_AFTER`] looks whether that
//! thread still exists and takes the lock over if not. That is safe for the
//! rings because a ring's writer publishes with one store of its counter
//! after copying: a holder that died halfway published nothing.

use core::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::Corrupt;
use crate::platform::shared_mem::{futex_wait_shared, futex_wake_shared, thread_alive, thread_id};

/// Set in the word while a thread sleeps waiting for it.
pub const WAITERS: u32 = 1 << 31;

/// How long a waiter sleeps before it checks that the owner lives.
pub const CHECK_AFTER: Duration = Duration::from_millis(2);

/// The longest a live owner may hold the lock: it is held for one copy into
/// or out of a ring, microseconds. A word still held by a live thread after
/// this was written by someone who does not follow the protocol.
pub const HELD_AT_MOST: Duration = Duration::from_secs(1);

/// Spins before sleeping: a holder copying a few kilobytes is done sooner
/// than a futex round trip.
const SPINS: u32 = 64;

/// A lock over a word in shared memory.
pub struct SharedLock<'m> {
    word: &'m AtomicU32,
}

/// Holds a [`SharedLock`] until dropped.
pub struct LockGuard<'a, 'm> {
    lock: &'a SharedLock<'m>,
}

impl<'m> SharedLock<'m> {
    /// The lock whose state is `word` (zero: free).
    pub fn new(word: &'m AtomicU32) -> Self {
        SharedLock { word }
    }

    /// Takes the lock, taking it over from a holder that no longer exists.
    /// [`Corrupt`] when the word names this very thread (this thread holds
    /// no lock it asks for again) or a live holder keeps it past
    /// [`HELD_AT_MOST`].
    pub fn lock(&self) -> Result<LockGuard<'_, 'm>, Corrupt> {
        let me = thread_id() & !WAITERS;
        let start = Instant::now();
        let mut spins = 0;
        // Once this thread has slept, it takes the lock with WAITERS set:
        // others may still sleep on the word, and the next release must
        // wake one of them (the contended state of Drepper's mutex).
        let mut slept = false;
        loop {
            let cur = self.word.load(Ordering::Relaxed);
            if cur == 0 {
                let want = if slept { me | WAITERS } else { me };
                if self
                    .word
                    .compare_exchange(0, want, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return Ok(LockGuard { lock: self });
                }
                continue;
            }
            let owner = cur & !WAITERS;
            if owner == me || owner == 0 {
                return Err(Corrupt);
            }
            if spins < SPINS {
                spins += 1;
                core::hint::spin_loop();
                continue;
            }
            if cur & WAITERS == 0
                && self
                    .word
                    .compare_exchange(cur, cur | WAITERS, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            slept = true;
            if futex_wait_shared(self.word, cur | WAITERS, Some(Instant::now() + CHECK_AFTER)) {
                continue;
            }
            // The sleep ran out: is the holder still there?
            if !thread_alive(owner) {
                // Keep the waiters bit: others may sleep on the word.
                let seen = self.word.load(Ordering::Relaxed);
                if seen & !WAITERS == owner
                    && self
                        .word
                        .compare_exchange(seen, me | WAITERS, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                {
                    return Ok(LockGuard { lock: self });
                }
                continue;
            }
            if start.elapsed() > HELD_AT_MOST {
                return Err(Corrupt);
            }
        }
    }

    /// Whether the word says some thread holds the lock.
    pub fn is_held(&self) -> bool {
        self.word.load(Ordering::Relaxed) & !WAITERS != 0
    }
}

impl Drop for LockGuard<'_, '_> {
    fn drop(&mut self) {
        // A word that no longer names this thread was rewritten by someone
        // outside the protocol; freeing it is still the way forward.
        let prev = self.lock.word.swap(0, Ordering::Release);
        if prev & WAITERS != 0 {
            futex_wake_shared(self.lock.word, 1);
        }
    }
}

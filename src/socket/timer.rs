//! Socket timers: a socket asks to be looked at again at a deadline, when
//! no call of the program may come (TCP_CORK's 200 ms ceiling, the end of
//! a TCP_DEFER_ACCEPT deferral), or at once, from a thread of its own (the
//! send queue's push when credit comes in an upcall, `sndq`).
//!
//! Hosted, one thread per process, started at the first arming, sleeps
//! until the earliest deadline and calls [`Socket::on_timer`] on each
//! socket that is due (a socket that was closed meanwhile is gone from the
//! slab and skipped). The no_std build has no such thread: [`running`] is
//! false there, and the features that need a timer act without one.

use super::Socket;

impl Socket {
    /// A deadline this socket armed passed: send what TCP_CORK held past
    /// its ceiling or the send queue holds (as far as the credit goes),
    /// and let a listener's deferred connections whose deferral ran out
    /// be accepted. Either may find nothing to do (a deadline is armed per
    /// event and not cancelled).
    #[cfg_attr(not(feature = "std"), allow(dead_code))]
    pub(crate) fn on_timer(&self) {
        self.push_queue();
        self.end_deferrals();
    }
}

#[cfg(feature = "std")]
pub(crate) use clock::{arm, fork_child, fork_lock, running, start};

/// Without a thread, no timer.
#[cfg(not(feature = "std"))]
pub(crate) fn running() -> bool {
    false
}

#[cfg(feature = "std")]
mod clock {
    use alloc::vec::Vec;
    use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
    use core::time::Duration;

    use crate::backend::contract::SockHandle;
    use crate::platform::{self, Deadline};
    use crate::socket::slab;
    use crate::sync::Mutex;

    /// Sockets to look at again, with when.
    static DUE: Mutex<Vec<(Deadline, SockHandle)>> = Mutex::new(Vec::new());
    /// Bumped at each arming: the thread's futex word.
    static BELL: AtomicU32 = AtomicU32::new(0);
    static STARTED: AtomicBool = AtomicBool::new(false);
    /// The earliest deadline the sleeping thread will wake for
    /// (`platform::mono_ns`; u64::MAX: none; 0 while it is awake).
    static SLEEPS_UNTIL: AtomicU64 = AtomicU64::new(0);

    /// Calls `h`'s [`on_timer`](crate::socket::Socket::on_timer) `after`
    /// from now (or soon after).
    pub(crate) fn arm(h: SockHandle, after: Duration) {
        let Some(at) = platform::deadline_after(after) else {
            return;
        };
        let at_ns = platform::mono_ns().saturating_add(after.as_nanos() as u64);
        DUE.lock().push((at, h));
        start();
        // The bump alone makes a thread that has not gone to sleep yet look
        // again; the wake-up system call is only for one asleep until
        // later than this deadline (a corked send every few microseconds
        // then wakes it once per ceiling, not once per send).
        BELL.fetch_add(1, Ordering::SeqCst);
        if at_ns < SLEEPS_UNTIL.load(Ordering::SeqCst) {
            platform::futex_wake_one(&BELL);
        }
    }

    /// Starts the thread if it is not running; whether it runs now.
    pub(crate) fn start() -> bool {
        if STARTED.load(Ordering::Acquire) {
            return true;
        }
        if !STARTED.swap(true, Ordering::AcqRel)
            && platform::spawn_quiet("usock-timer", run).is_err()
        {
            // Without the thread, nothing waits for a timer: see
            // `running`'s callers.
            STARTED.store(false, Ordering::Release);
            return false;
        }
        true
    }

    /// Whether the timer thread runs (an armed deadline will be kept).
    pub(crate) fn running() -> bool {
        STARTED.load(Ordering::Acquire)
    }

    fn run() {
        loop {
            let seen = BELL.load(Ordering::SeqCst);
            let now = platform::now();
            let (due, next) = {
                let mut list = DUE.lock();
                let (due, rest): (Vec<_>, Vec<_>) = list.drain(..).partition(|&(at, _)| at <= now);
                *list = rest;
                (due, list.iter().map(|&(at, _)| at).min())
            };
            for (_, h) in due {
                if let Some(s) = slab::lookup(h).filter(|s| !s.inherited()) {
                    s.on_timer();
                }
            }
            let until = next.map_or(u64::MAX, |d| {
                platform::mono_ns().saturating_add(platform::time_left(d).as_nanos() as u64)
            });
            SLEEPS_UNTIL.store(until, Ordering::SeqCst);
            // An arming after `seen` changed BELL: this returns at once.
            platform::futex_wait(&BELL, seen, next);
            SLEEPS_UNTIL.store(0, Ordering::SeqCst);
        }
    }

    /// Before a fork: no thread may hold the list's lock in the child.
    pub(crate) fn fork_lock() {
        crate::sync::fork_hold::hold(&DUE);
    }

    /// In a fork child (after the locks are released): the thread did not
    /// come along and the sockets listed are the parent's.
    pub(crate) fn fork_child() {
        DUE.lock().clear();
        STARTED.store(false, Ordering::Release);
    }
}

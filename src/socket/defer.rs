//! TCP_DEFER_ACCEPT: a listener hands out a connection only once data
//! has arrived on it, or once the deferral has run out.
//!
//! Linux keeps such a connection half-open (its final ACK dropped) until
//! a data segment comes, and accepts it anyway after the deferral's
//! retransmissions. Here the connection is in the listener's accept queue
//! from the start, marked `F_DEFERRED` and not counted in `accept_len`:
//! poll sees no POLLIN for it and accept() passes it over. Its first data
//! (or its end, or a reset) promotes it; so does the socket timer at the
//! deadline. Promotion happens under the listener's `ctl` lock, so it is
//! counted once. Without a timer (no_std) nothing is deferred.

use alloc::sync::{Arc, Weak};
use core::sync::atomic::Ordering;

use super::{Ctl, Socket, F_DEFERRED};

impl Socket {
    /// TCP_DEFER_ACCEPT on this listener, in seconds (0: off).
    pub(crate) fn set_defer_accept(&self, secs: i32) {
        self.defer_secs.store(secs.max(0) as u32, Ordering::Relaxed);
    }

    /// Queues an established connection on this listener (its `ctl` is
    /// held by the caller). Returns whether it can be accepted now; a
    /// deferred one waits for its data or its deadline.
    pub(super) fn queue_connection(self: &Arc<Self>, ctl: &mut Ctl, child: &Arc<Socket>) -> bool {
        ctl.accept_q.push_back(child.clone());
        let secs = self.defer_secs.load(Ordering::Relaxed);
        let after = core::time::Duration::from_secs(u64::from(secs));
        let until = if secs > 0 && cfg!(feature = "std") {
            crate::platform::deadline_after(after)
        } else {
            None
        };
        let Some(until) = until else {
            self.accept_len.fetch_add(1, Ordering::AcqRel);
            return true;
        };
        child.set(F_DEFERRED);
        child.ctl.lock().deferred_on = Some((Arc::downgrade(self), until));
        #[cfg(feature = "std")]
        super::timer::arm(self.handle, after);
        false
    }

    /// Data, its end or a reset arrived on this deferred connection: its
    /// listener may hand it out now.
    pub(super) fn deferral_ends(&self) {
        let Some((l, _)) = self.ctl.lock().deferred_on.take() else {
            return;
        };
        if let Some(l) = l.upgrade() {
            l.promote(self);
        }
    }

    /// The timer: this listener's deferred connections whose deadline
    /// passed can be accepted.
    #[cfg_attr(not(feature = "std"), allow(dead_code))]
    pub(super) fn end_deferrals(&self) {
        let now = crate::platform::now();
        let expired: alloc::vec::Vec<Arc<Socket>> = {
            let ctl = self.ctl.lock();
            ctl.accept_q
                .iter()
                .filter(|c| c.has(F_DEFERRED))
                .cloned()
                .collect()
        };
        for c in expired {
            let due = c
                .ctl
                .lock()
                .deferred_on
                .as_ref()
                .is_some_and(|(_, until)| *until <= now);
            if due {
                c.ctl.lock().deferred_on = None;
                self.promote(&c);
            }
        }
    }

    /// Counts deferred connection `c` as acceptable (once) and wakes
    /// accept() and poll.
    fn promote(&self, c: &Socket) {
        {
            let _ctl = self.ctl.lock();
            if !c.has(F_DEFERRED) {
                return;
            }
            c.clear(F_DEFERRED);
            self.accept_len.fetch_add(1, Ordering::AcqRel);
        }
        self.wait.notify(super::POLLIN);
    }

    /// Takes the first connection accept() may hand out (not deferred).
    pub(super) fn take_acceptable(ctl: &mut Ctl) -> Option<Arc<Socket>> {
        let i = ctl.accept_q.iter().position(|c| !c.has(F_DEFERRED))?;
        ctl.accept_q.remove(i)
    }
}

/// A weak reference to the listener a deferred connection waits on, and
/// when its deferral ends.
pub(crate) type DeferredOn = Option<(Weak<Socket>, crate::platform::Deadline)>;

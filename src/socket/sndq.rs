//! TCP's send queue: bytes a send() accepted beyond the peer's window.
//!
//! Linux keeps up to SO_SNDBUF of unsent (and unacknowledged) bytes in
//! the sender; on lo, bytes in the receiver's queue count as acknowledged,
//! so what the sender holds is what the receiver's window did not take.
//! A program sees it: send() accepts that much more before EAGAIN (or
//! blocking), raising SO_SNDBUF lets a blocked send finish without the
//! reader reading, TCP_NOTSENT_LOWAT caps the unsent bytes (and POLLOUT),
//! SIOCOUTQ and SIOCOUTQNSD count them, and close() still delivers them.
//!
//! Here the queue is `Tx::held`, the bytes TCP_CORK holds, grown past the
//! window: they have no stream offsets yet, and every later byte goes
//! through them. Only a send that finds the window full queues, so an
//! exchange that never fills the window never comes here. Queued bytes go
//! out as credit comes: by a sender blocked in a send (it is woken by the
//! credit), or else by the timer's thread (`timer::arm` at once), since
//! the credit upcall may come from inside a backend holding its own locks
//! and must not call the backend. A FIN (shutdown, close) waits behind
//! them; a close() with bytes queued leaves the socket in the slab until
//! they are gone (or a reset drops them). At exit() the process waits a
//! while for its queues to drain (`exit`), as xproc's transport flushes
//! its own. No queue without the timer's
//! thread (the no_std build) and on AF_UNIX (the writer fills the reader's
//! ring, as unix_stream_sendmsg does). A shared socket queues when the
//! peer's ring is full (`shared_send`).

use core::sync::atomic::{fence, Ordering};

use super::{inflight, slab, Socket, F_CLOSED, F_FIN_SENT, F_RESET};
use crate::consts::*;

/// TCP_NOTSENT_LOWAT (kept with the kernel's options, `kernel_opts`).
#[cfg(feature = "std")]
const TCP_NOTSENT_LOWAT: i32 = 25;

impl Socket {
    /// The send queue's budget (SO_SNDBUF, in bytes beyond the window)
    /// and TCP_NOTSENT_LOWAT (u64::MAX: unset), or None where the socket
    /// keeps no queue.
    fn queue_limits(&self) -> Option<(u64, u64)> {
        if self.info.domain == AF_UNIX || !self.is_stream() || self.keeps_records() {
            return None;
        }
        self.queue_limits_hosted()
    }

    #[cfg(feature = "std")]
    fn queue_limits_hosted(&self) -> Option<(u64, u64)> {
        if !super::timer::start() {
            return None;
        }
        let c = self.ctl.lock();
        let lowat = super::kernel_opts::int_value(&c.kernel_opts, IPPROTO_TCP, TCP_NOTSENT_LOWAT)
            .filter(|&v| v > 0)
            .map_or(u64::MAX, |v| v as u64);
        Some((c.opts.sndbuf() as u64, lowat))
    }

    /// No thread to push the queue: none.
    #[cfg(not(feature = "std"))]
    fn queue_limits_hosted(&self) -> Option<(u64, u64)> {
        None
    }

    /// How many bytes a send may queue now beyond the window, with `held`
    /// unsent of which `beyond` are past the window: up to SO_SNDBUF, and
    /// none once the unsent bytes reach TCP_NOTSENT_LOWAT
    /// (`sk_stream_memory_free`).
    pub(super) fn queue_room(&self, held: u64, beyond: u64) -> u64 {
        match self.queue_limits() {
            Some((budget, lowat)) if held < lowat => budget.saturating_sub(beyond),
            _ => 0,
        }
    }

    /// POLLOUT with `beyond` bytes queued past the window (`held` unsent
    /// in all): TCP_NOTSENT_LOWAT not reached and a third of the budget
    /// free (`sk_stream_is_writeable`).
    pub(super) fn queue_writable(&self, held: u64, beyond: u64) -> bool {
        match self.queue_limits() {
            Some((budget, lowat)) => held < lowat && budget.saturating_sub(beyond) >= beyond / 2,
            None => false,
        }
    }

    /// SIOCOUTQ and SIOCOUTQNSD of a TCP socket: the bytes it accepted and
    /// has not sent (corked or queued); on lo what was sent counts as
    /// acknowledged once the receiver holds it.
    pub fn unsent(&self) -> u64 {
        if self.has(F_RESET) {
            return 0;
        }
        self.tx_held.load(Ordering::Acquire)
    }

    /// Credit came (`grant`) from `prev` to a larger limit: bytes queued
    /// past the old window go now, from the timer's thread unless a sender
    /// is blocked in a send (it pushes them). The upcall itself never
    /// calls the backend.
    pub(super) fn queue_credit(&self, prev: u64) {
        let held = self.tx_held.load(Ordering::Acquire);
        if held == 0 {
            return;
        }
        let window = prev.saturating_sub(self.tx_next.load(Ordering::Acquire));
        if held <= window {
            return;
        }
        // Against `Sender::drop`: the new limit is seen there, or the
        // sender's leaving here.
        fence(Ordering::SeqCst);
        if self.tx_senders.load(Ordering::Relaxed) == 0 || self.has(F_CLOSED) {
            self.queue_kick();
        }
    }

    /// Has the timer's thread look at the queue (credit, a reset, a
    /// deferred close).
    pub(crate) fn queue_kick(&self) {
        #[cfg(feature = "std")]
        if self.tx_held.load(Ordering::Acquire) > 0 {
            super::timer::arm(self.handle, core::time::Duration::ZERO);
        }
    }

    /// Sends what the window takes of the held bytes; then, the queue
    /// empty, a FIN and the end of a close() that waited for it. A reset
    /// drops the queue. Wakes pollers when the queue shrank.
    pub(crate) fn push_queue(&self) {
        let before = self.tx_held.load(Ordering::Acquire);
        self.push_held();
        let (fin, close) = {
            let mut tx = self.tx.lock();
            if self.has(F_RESET) && !tx.held.is_empty() {
                tx.held.clear();
                tx.queueing = false;
                self.tx_held.store(0, Ordering::Release);
            }
            if !tx.held.is_empty() {
                (false, false)
            } else {
                (
                    core::mem::take(&mut tx.fin_pending),
                    core::mem::take(&mut tx.close_pending),
                )
            }
        };
        if fin && !self.has(F_RESET) {
            if let Some(b) = self.binding() {
                if self.is_shared() && !close {
                    // The end a shutdown(SHUT_WR) put off (`shared_send`).
                    let _ = b.backend.shutdown(self.sref(b), SHUT_WR);
                }
                if !self.state.set(F_FIN_SENT).has(F_FIN_SENT) {
                    self.send_control(b, crate::backend::contract::FLAG_FIN);
                }
            }
        }
        if close {
            self.close_end();
        }
        if self.tx_held.load(Ordering::Acquire) < before {
            self.wait.notify(POLLOUT);
            self.wake_async();
        }
    }

    /// Whether a FIN must wait behind queued bytes (then it is marked to
    /// follow them).
    pub(super) fn fin_waits(&self) -> bool {
        let mut tx = self.tx.lock();
        if tx.held.is_empty() || self.has(F_RESET) {
            return false;
        }
        tx.fin_pending = true;
        true
    }

    /// close() found bytes still queued behind which its FIN waits: the
    /// socket stays until they are gone. Whether it does.
    pub(super) fn close_waits(&self) -> bool {
        let mut tx = self.tx.lock();
        if !tx.fin_pending || tx.held.is_empty() {
            return false;
        }
        tx.close_pending = true;
        drop(tx);
        // No program thread will read its input (credit) now: the backend
        // takes it back from them (xproc's delegation to a waiting thread
        // or an epoll set).
        self.before_block();
        // Credit may have come meanwhile with nobody to push.
        self.queue_kick();
        true
    }

    /// Drops the queued bytes (a reset, SO_LINGER 0).
    pub(super) fn queue_drop(&self) {
        let mut tx = self.tx.lock();
        if self.is_stream() && !tx.held.is_empty() {
            tx.held.clear();
            tx.queueing = false;
            tx.fin_pending = false;
            self.tx_held.store(0, Ordering::Release);
        }
    }

    /// Bytes went into the queue: the first time in this process, the
    /// flush at exit is registered.
    pub(super) fn queue_started(&self) {
        #[cfg(feature = "std")]
        exit::register();
    }

    /// The end of a close: the backend told, what was in flight purged, the
    /// slot given back.
    pub(super) fn close_end(&self) {
        // A close leaves every group (this process's other members stay).
        #[cfg(feature = "std")]
        super::mcast::closed(self);
        if let Some(b) = self.binding() {
            b.backend.close(self.sref(b));
        }
        inflight::purge(self.handle);
        slab::release(self.handle);
    }
}

/// A thread in a stream send that found the window full: while it is
/// there, credit that comes is its to push (the loop of `send_stream`
/// looks at the queue each time round), not the timer's. Leaving, it
/// pushes what credit came meanwhile.
pub(super) struct Sender<'a>(&'a Socket);

impl<'a> Sender<'a> {
    pub(super) fn new(s: &'a Socket) -> Self {
        s.tx_senders.fetch_add(1, Ordering::Relaxed);
        Sender(s)
    }
}

impl Drop for Sender<'_> {
    fn drop(&mut self) {
        let s = self.0;
        s.tx_senders.fetch_sub(1, Ordering::Relaxed);
        // Against `queue_credit`: a grant that saw this sender is seen
        // here.
        fence(Ordering::SeqCst);
        if s.tx_held.load(Ordering::Acquire) == 0 {
            return;
        }
        let pushable = {
            let tx = s.tx.lock();
            tx.queueing && s.tx_limit.load(Ordering::Acquire) > tx.next
        };
        if pushable {
            s.push_queue();
        }
    }
}

/// The flush at exit: the kernel would go on delivering a dead process's
/// queued bytes; here they leave before the process ends, while the peer
/// takes them.
#[cfg(feature = "std")]
mod exit {
    use core::sync::atomic::{AtomicBool, Ordering};
    use core::time::Duration;

    use crate::platform;
    use crate::socket::wait::Waited;
    use crate::socket::{slab, Socket, F_RESET};

    /// The whole flush's limit (as xproc's `EXIT_FLUSH`).
    const LIMIT: Duration = Duration::from_secs(5);
    /// The flush gives up once no peer has given credit for this long (a
    /// peer in this process that does not read, one that is stuck or
    /// gone): over all the queues, so that many stuck ones cost it once.
    const STALL: Duration = Duration::from_secs(1);

    static REGISTERED: AtomicBool = AtomicBool::new(false);

    pub(super) fn register() {
        if !REGISTERED.load(Ordering::Relaxed) && !REGISTERED.swap(true, Ordering::AcqRel) {
            platform::at_exit(flush_at_exit);
        }
    }

    extern "C" fn flush_at_exit() {
        platform::guard((), || {
            let Some(end) = platform::deadline_after(LIMIT) else {
                return;
            };
            let mut stall = platform::deadline_after(STALL).map_or(end, |d| d.min(end));
            for s in slab::live() {
                if !s.inherited() {
                    drain(&s, end, &mut stall);
                }
            }
        })
    }

    /// Pushes `s`'s queue as credit comes, until it is empty, `end`, or
    /// `stall` (moved on by each credit that comes).
    fn drain(s: &Socket, end: platform::Deadline, stall: &mut platform::Deadline) {
        loop {
            s.push_queue();
            if s.tx_held.load(Ordering::Acquire) == 0 || s.has(F_RESET) {
                return;
            }
            let next = s.tx_next.load(Ordering::Acquire);
            let held = s.tx_held.load(Ordering::Acquire);
            // Credit, or (a shared socket, whose ring gives none) the
            // timer's thread moved some of the queue on.
            let w = s.block_until(
                || {
                    s.tx_limit.load(Ordering::Acquire) > next
                        || s.tx_held.load(Ordering::Acquire) < held
                        || s.has(F_RESET)
                },
                Some(*stall),
            );
            if w != Waited::Ready {
                return;
            }
            *stall = platform::deadline_after(STALL).map_or(end, |d| d.min(end));
        }
    }
}

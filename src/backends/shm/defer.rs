//! TCP_DEFER_ACCEPT on a shared listener: accept() and the listener's
//! readability pass over a connection until data (or the peer's end, or
//! a reset) has arrived on it, or the deferral has run out, when it is
//! handed out anyway (Linux keeps such a connection half-open, outside
//! the accept queue, and accepts it after its retransmissions).
//!
//! The accept queue is the kernel's, where a connection's bytes cannot be
//! seen. So a process that looks at a deferring listener (accept, poll)
//! takes what is queued there and holds each connection that has nothing
//! yet, its data doorbell armed. Such a process then waits on an epoll set
//! of its own ([`Deferrals::wait_fd`]): the listening anchor, a timerfd at
//! the earliest deadline and each held connection's anchor, so that a poll
//! or epoll of the program that sleeps in the kernel wakes for a new
//! connection, a held one's first bytes or its deadline alike.
//!
//! Held connections are this process's: one another holder of the
//! listener did not take stays with this one (as it would after Linux's
//! accept). A fork child lets go of its copies of the parent's (the
//! parent hands them out), and a process that lets go of the listener
//! resets those it held, as Linux drops a closed listener's half-open
//! connections.
#![deny(unsafe_code)]

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};
use core::time::Duration;

use super::conn::{Conn, Listener};
use crate::consts::*;
use crate::platform::{self, anchor_ipc, unix_ipc, Deadline};
use crate::sync::Mutex;

/// The most connections one look takes from the kernel's queue (a queue
/// holds at most its backlog; this bounds a look against a flood).
const PULL_MAX: usize = 4096;

/// A deferring listener's state in this process.
pub struct Deferrals {
    /// TCP_DEFER_ACCEPT, in seconds (0: off).
    secs: AtomicU32,
    held: Mutex<Option<Held>>,
}

/// What this process holds for a deferring listener.
struct Held {
    /// The process that made the set and timer (a fork child's copies
    /// are its parent's).
    pid: u32,
    /// epoll set: the listening anchor, the timer, each held anchor.
    set: i32,
    timer: i32,
    conns: Vec<Waiting>,
}

/// A connection taken from the kernel's queue and not handed out yet.
struct Waiting {
    conn: Conn,
    body: Vec<u8>,
    until: Deadline,
}

impl Waiting {
    /// Whether accept() may hand it out: bytes or the peer's end or a
    /// reset arrived, or the deferral ran out.
    fn due(&self, now: Deadline) -> bool {
        let r = self.conn.readiness();
        r.readable || r.hup || r.err || self.until <= now
    }
}

impl Held {
    fn new(anchor: i32) -> Result<Held, Errno> {
        let set = anchor_ipc::keep(unix_ipc::epoll_create()?);
        let timer = match anchor_ipc::timer() {
            Ok(t) => t,
            Err(e) => {
                platform::kfd_close(set).ok();
                return Err(e);
            }
        };
        // A look's accept never waits for a connection another holder won.
        let made = anchor_ipc::short_accepts(anchor)
            .and_then(|()| unix_ipc::epoll_ctl(set, libc::EPOLL_CTL_ADD, anchor, EP_IN))
            .and_then(|()| unix_ipc::epoll_ctl(set, libc::EPOLL_CTL_ADD, timer, EP_IN));
        let held = Held {
            pid: std::process::id(),
            set,
            timer,
            conns: Vec::new(),
        };
        made.map(|()| held)
    }

    /// Takes what the kernel queued on `l` into the hold, each with its
    /// deadline `secs` from now and its data doorbell asked for.
    fn pull(&mut self, l: &Listener, secs: u32) {
        for _ in 0..PULL_MAX {
            let mut body = [0u8; 64];
            let Ok((conn, n)) = l.accept_now(&mut body) else {
                break;
            };
            let now = platform::now();
            let mut until =
                platform::deadline_after(Duration::from_secs(u64::from(secs))).unwrap_or(now);
            conn.arm(true, false);
            if unix_ipc::epoll_ctl(self.set, libc::EPOLL_CTL_ADD, conn.anchor(), EP_IN).is_err() {
                // Nothing would wake a poller for its bytes: not deferred.
                until = now;
            }
            self.conns.push(Waiting {
                conn,
                body: body[..n].to_vec(),
                until,
            });
        }
    }

    /// The timer at the earliest deadline held, or off; also clears an
    /// expiry already read as due.
    fn rearm(&self) {
        let now = platform::now();
        let next = self.conns.iter().map(|w| w.until).min();
        anchor_ipc::timer_set(self.timer, next.map(|d| d.saturating_duration_since(now)));
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        platform::kfd_close(self.set).ok();
        platform::kfd_close(self.timer).ok();
    }
}

/// epoll's readable event.
const EP_IN: u32 = libc::EPOLLIN as u32;

impl Default for Deferrals {
    fn default() -> Self {
        Deferrals::new()
    }
}

impl Deferrals {
    /// Off.
    pub const fn new() -> Deferrals {
        Deferrals {
            secs: AtomicU32::new(0),
            held: Mutex::new(None),
        }
    }

    /// TCP_DEFER_ACCEPT's value, in seconds (0 or less: off).
    pub fn set_secs(&self, secs: i32) {
        self.secs.store(secs.max(0) as u32, Ordering::Relaxed);
    }

    /// Whether the listener defers.
    pub fn on(&self) -> bool {
        self.secs.load(Ordering::Relaxed) > 0
    }

    /// Runs `f` on this process's state of listener `l`, made at first
    /// need (a fork child lets go of its parent's copy first). None when
    /// the listener does not defer or the state cannot be made.
    fn with<R>(&self, l: &Listener, f: impl FnOnce(&mut Held) -> R) -> Option<R> {
        if !self.on() {
            return None;
        }
        let mut g = self.held.lock();
        if g.as_ref().is_some_and(|h| h.pid != std::process::id()) {
            // The parent's: its connections are the parent's to hand out
            // (its anchors close here only, with no reset).
            *g = None;
        }
        if g.is_none() {
            *g = Some(Held::new(l.anchor()).ok()?);
        }
        g.as_mut().map(f)
    }

    /// The fd a poller of the listener sleeps on: the set (see the module
    /// doc), when the listener defers.
    pub fn wait_fd(&self, l: &Listener) -> Option<i32> {
        self.with(l, |h| h.set)
    }

    /// Takes every connection queued in the kernel into this process's
    /// hold, then hands out the first that is due, if any (with its offer
    /// body). None, too, when the listener does not defer.
    pub fn take(&self, l: &Listener) -> Option<(Conn, Vec<u8>)> {
        let secs = self.secs.load(Ordering::Relaxed);
        self.with(l, |h| {
            h.pull(l, secs);
            let now = platform::now();
            let out = h.conns.iter().position(|w| w.due(now)).map(|i| {
                let w = h.conns.remove(i);
                let _ = unix_ipc::epoll_ctl(h.set, libc::EPOLL_CTL_DEL, w.conn.anchor(), 0);
                // Its own pollers ask for their doorbells afresh.
                w.conn.drain_bells();
                (w.conn, w.body)
            });
            h.rearm();
            out
        })
        .flatten()
    }

    /// Whether accept() would hand out a connection now (what the
    /// listener's POLLIN says), having taken what the kernel queued.
    pub fn ready(&self, l: &Listener) -> bool {
        let secs = self.secs.load(Ordering::Relaxed);
        self.with(l, |h| {
            h.pull(l, secs);
            let now = platform::now();
            let any = h.conns.iter().any(|w| w.due(now));
            h.rearm();
            any
        })
        .unwrap_or(false)
    }

    /// This process lets go of the listener (its close, or shutdown):
    /// every connection it held is reset.
    pub fn drop_all(&self) {
        let held = self.held.lock().take();
        let Some(mut h) = held else {
            return;
        };
        if h.pid != std::process::id() {
            return;
        }
        for w in h.conns.drain(..) {
            w.conn.abort();
        }
    }
}

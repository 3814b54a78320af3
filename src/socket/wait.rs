//! Waiting for a socket's state to change, and waking the waiters.
//!
//! Two kinds of waiter: threads blocked in a call on this socket (they spin
//! for a moment when that pays, see [`super::spin`], then sleep on a futex
//! word that every state change bumps), and poll()/select() calls that may
//! also wait on kernel fds (they register an eventfd that a state change
//! signals, so the kernel's poll wakes up).
//!
//! Streams and datagrams wait and wake here alike (one futex word per
//! socket, a wake-up only when `sleepers` says someone sleeps). On a busy
//! machine a round trip's time is then the scheduler's: with a busy
//! thread on the same core, it is about the CPU a round trip costs over
//! the share of the core the two threads get (about half), and two
//! threads left on different cores, each beside a busy thread, take three
//! to four times longer, the kernel's own sockets as much (issue 11:
//! 55 µs against the kernel's 69, pinned so). A kernel pipe's wake-up
//! (a "sync" one, which pulls the woken thread to the waker's core) was
//! tried in place of the futex in a bare two-thread ping-pong: slower
//! under load (median 15 µs against 8), so the futex stays.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use super::spin::{self, Plan, SpinLearner};
use crate::platform::{self, Deadline};
use crate::sync::Mutex;

/// Why a wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Waited {
    /// The condition holds.
    Ready,
    /// The deadline passed first.
    TimedOut,
    /// A signal handler ran and the wait is not restarted (no SA_RESTART,
    /// or a deadline): the call fails with EINTR.
    Interrupted,
}

/// What a poll() waits on: a futex word bumped on every signal, and on the
/// hosted platform an eventfd as well, so that a kernel poll waiting on it
/// wakes up too.
pub struct PollSignal {
    /// Bumped by every signal.
    pub word: AtomicU32,
    /// An eventfd to signal as well, or -1.
    pub efd: i32,
    /// The signal of the epoll set this one belongs to, raised too (in
    /// place of `efd`).
    pub shared: Option<Arc<SetSignal>>,
    /// Whether a signal writes `efd`: its owner may be asleep in the
    /// kernel. A thread that waits on a socket's input clears it while it
    /// runs (its own deliveries need not wake it: three system calls per
    /// message saved) and sets it again, then looks once more, before it
    /// sleeps.
    pub armed: AtomicBool,
    /// A signal wrote `efd` since its waiter last looked: a waiter that
    /// sleeps on an eventfd it does not make per wait drains it first only
    /// then (a write this misses shows as a wake-up, which drains it).
    written: AtomicBool,
}

/// What the registrations of one epoll set share: a counter its waiter
/// spins on before it sleeps in the kernel, and its eventfd, which a
/// sleeping waiter (or a poll() of the epoll fd) sees. Epoll sets exist on
/// the hosted platform only.
#[cfg_attr(not(feature = "std"), allow(dead_code))]
pub struct SetSignal {
    /// Bumped by every signal of the set's registrations.
    pub activity: AtomicU32,
    efd: i32,
    /// The eventfd was written and not drained since: a state change
    /// writes it only when it is not. Many changes between two waits (a
    /// busy server's sockets) then cost one write, not one each.
    raised: AtomicBool,
    /// How long the set's waits take, spinning and sleeping, and so
    /// whether to spin.
    pub learner: SpinLearner,
}

#[cfg_attr(not(feature = "std"), allow(dead_code))]
impl SetSignal {
    /// The signal of a set whose eventfd is `efd`.
    pub fn new(efd: i32) -> SetSignal {
        SetSignal {
            activity: AtomicU32::new(0),
            efd,
            raised: AtomicBool::new(false),
            learner: SpinLearner::new(),
        }
    }

    /// Makes the eventfd readable, unless it is already.
    pub fn raise(&self) {
        #[cfg(feature = "std")]
        if !self.raised.swap(true, Ordering::SeqCst) {
            platform::eventfd_signal(self.efd);
        }
    }

    /// Empties the eventfd. The waiter must look at its sockets after
    /// this: a change made before it may have left the eventfd empty.
    pub fn drain(&self) {
        #[cfg(feature = "std")]
        platform::eventfd_drain(self.efd);
        self.raised.store(false, Ordering::SeqCst);
    }
}

impl PollSignal {
    /// A signal with an optional eventfd (-1 for none).
    pub fn new(efd: i32) -> PollSignal {
        PollSignal {
            word: AtomicU32::new(0),
            efd,
            shared: None,
            armed: AtomicBool::new(true),
            written: AtomicBool::new(false),
        }
    }

    /// A registration's signal in an epoll set: it raises the set's.
    #[cfg(feature = "std")]
    pub fn in_set(set: Arc<SetSignal>) -> PollSignal {
        PollSignal {
            shared: Some(set),
            ..PollSignal::new(-1)
        }
    }

    /// Wakes the poller.
    pub fn signal(&self) {
        self.word.fetch_add(1, Ordering::SeqCst);
        if let Some(s) = &self.shared {
            // Nobody sleeps on `word`: the set's waiter spins on the
            // activity counter and sleeps in the kernel.
            s.activity.fetch_add(1, Ordering::SeqCst);
            s.raise();
            return;
        }
        if self.efd < 0 {
            // A waiter without an eventfd sleeps on `word`.
            platform::futex_wake_all(&self.word);
        } else if self.armed.load(Ordering::SeqCst) {
            self.written.store(true, Ordering::SeqCst);
            #[cfg(feature = "std")]
            platform::eventfd_signal(self.efd);
        }
    }
}

struct PollReg {
    id: u64,
    sig: Arc<PollSignal>,
    events: i16,
}

/// The waiters of one socket.
pub struct WaitQueue {
    /// Bumped on every state change; blocked threads sleep on it.
    seq: AtomicU32,
    /// Threads asleep (or about to be) on `seq`: a notify makes a system call
    /// only when there is someone to wake.
    sleepers: AtomicU32,
    /// How long waits here take, spinning and sleeping, and so whether to
    /// spin.
    learner: SpinLearner,
    /// Number of poll registrations, read without the lock by notify.
    npollers: AtomicU32,
    pollers: Mutex<Vec<PollReg>>,
}

static NEXT_POLL_ID: AtomicU64 = AtomicU64::new(1);

impl WaitQueue {
    /// An empty queue.
    pub const fn new() -> Self {
        WaitQueue {
            seq: AtomicU32::new(0),
            sleepers: AtomicU32::new(0),
            learner: SpinLearner::new(),
            npollers: AtomicU32::new(0),
            pollers: Mutex::new(Vec::new()),
        }
    }

    /// Announces a state change that may have made `events` true. Called
    /// after the change is visible.
    pub fn notify(&self, events: i16) {
        self.seq.fetch_add(1, Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) != 0 {
            platform::futex_wake_all(&self.seq);
        }
        if self.npollers.load(Ordering::SeqCst) != 0 {
            for p in self.pollers.lock().iter() {
                if p.events & events != 0 {
                    p.sig.signal();
                }
            }
        }
    }

    /// Blocks until `ready()` holds or `deadline` passes. `ready` is checked
    /// after every state change; it must read state with at least Acquire.
    pub fn wait_until(
        &self,
        mut ready: impl FnMut() -> bool,
        deadline: Option<Deadline>,
    ) -> Waited {
        // How this wait goes and when it began, once it must wait at all.
        let mut plan: Option<(Plan, u64)> = None;
        loop {
            let seen = self.seq.load(Ordering::SeqCst);
            if ready() {
                self.learn(plan);
                return Waited::Ready;
            }
            let (p, _) = *plan.get_or_insert_with(|| self.learner.plan_now());
            if p.budget != 0 && spin::spin(p.budget, || self.seq.load(Ordering::Acquire) != seen) {
                continue;
            }
            self.sleepers.fetch_add(1, Ordering::SeqCst);
            let slept = if self.seq.load(Ordering::SeqCst) == seen {
                platform::futex_sleep(&self.seq, seen, deadline)
            } else {
                platform::Slept::Woken
            };
            self.sleepers.fetch_sub(1, Ordering::SeqCst);
            let ended = match slept {
                platform::Slept::Woken => continue,
                platform::Slept::TimedOut => Waited::TimedOut,
                platform::Slept::Interrupted => Waited::Interrupted,
            };
            self.learn(plan);
            return if ready() { Waited::Ready } else { ended };
        }
    }

    /// Tells the learner how long a wait that went by `plan` took. A wait
    /// that did not spin teaches nothing, and reads no clock.
    fn learn(&self, plan: Option<(Plan, u64)>) {
        if let Some((p, began)) = plan.filter(|(p, _)| p.budget != 0) {
            let now = platform::mono_ns();
            self.learner.record(p, now.saturating_sub(began), now);
        }
    }

    /// Registers a poller to be signalled when any of `events` may have
    /// become true; returns the registration id.
    pub fn register_poller(&self, sig: &Arc<PollSignal>, events: i16) -> u64 {
        let id = NEXT_POLL_ID.fetch_add(1, Ordering::Relaxed);
        let mut p = self.pollers.lock();
        p.push(PollReg {
            id,
            sig: sig.clone(),
            events,
        });
        self.npollers.store(p.len() as u32, Ordering::SeqCst);
        id
    }

    /// The events the registered pollers wait for, together.
    #[cfg(feature = "std")]
    pub fn polled_events(&self) -> i16 {
        if self.npollers.load(Ordering::Acquire) == 0 {
            return 0;
        }
        self.pollers.lock().iter().fold(0, |ev, r| ev | r.events)
    }

    /// Removes a registration made by [`WaitQueue::register_poller`].
    pub fn unregister_poller(&self, id: u64) {
        let mut p = self.pollers.lock();
        p.retain(|r| r.id != id);
        self.npollers.store(p.len() as u32, Ordering::SeqCst);
    }
}

impl Default for WaitQueue {
    fn default() -> Self {
        Self::new()
    }
}

/// The thread's two signals, on one eventfd: poll()'s, always armed, and
/// [`WaitQueue::wait_on_input`]'s, armed only while it may sleep.
#[cfg(feature = "std")]
struct Waker(Option<(Arc<PollSignal>, Arc<PollSignal>)>);

#[cfg(feature = "std")]
impl Drop for Waker {
    fn drop(&mut self) {
        if let Some((s, _)) = &self.0 {
            let _ = platform::kfd_close(s.efd);
        }
    }
}

#[cfg(feature = "std")]
std::thread_local! {
    static WAKER: core::cell::RefCell<Waker> = const { core::cell::RefCell::new(Waker(None)) };
}

/// This thread's signals, with their eventfd, made on first use: FD_CLOEXEC,
/// high and the library's own (`private_fds`: a program that closes every
/// fd it does not know leaves it alone), as it lives as long as the thread.
#[cfg(feature = "std")]
fn thread_signals() -> Result<(Arc<PollSignal>, Arc<PollSignal>), crate::backend::contract::Errno> {
    WAKER
        .try_with(|w| {
            let mut w = w.try_borrow_mut().map_err(|_| crate::consts::EBUSY)?;
            if w.0.is_none() {
                if !platform::sandbox::allows(libc::SYS_eventfd2, [0; 6]) {
                    return Err(crate::consts::EPERM);
                }
                let efd = platform::scm::move_high(platform::eventfd_new()?);
                let poll = Arc::new(PollSignal::new(efd));
                let input = Arc::new(PollSignal::new(efd));
                w.0 = Some((poll, input));
            }
            Ok(w.0.clone().expect("set above"))
        })
        .unwrap_or(Err(crate::consts::EBUSY))
}

/// This thread's poll signal, with its eventfd, made on first use: what a
/// thread that sleeps in the kernel in poll() registers on the sockets it
/// waits for.
#[cfg(feature = "std")]
pub(crate) fn thread_waker() -> Result<Arc<PollSignal>, crate::backend::contract::Errno> {
    thread_signals().map(|(poll, _)| poll)
}

/// fork() support, in the child: the forking thread's waker is the
/// parent's eventfd (a kernel object the fork shares), and a wait of the
/// child's draining it could swallow a wake-up meant for the parent. The
/// child's copy is closed; its next wait makes a fresh one.
#[cfg(feature = "std")]
pub(crate) fn thread_waker_fork_child() {
    let _ = WAKER.try_with(|w| {
        if let Ok(mut w) = w.try_borrow_mut() {
            *w = Waker(None);
        }
    });
}

#[cfg(feature = "std")]
impl WaitQueue {
    /// As [`WaitQueue::wait_until`], for a socket whose input a waiting
    /// thread may read itself (`Backend::input_fd`): the thread sleeps in
    /// the kernel on that input (`input()` gives its fd, or `None` once
    /// there is none) and on its waker (any state change), and runs
    /// `pump()` whenever the input turned readable. A message then costs
    /// one wake-up, of this thread by the kernel, as the kernel's own TCP
    /// does, instead of the backend's thread's and then this one's. A
    /// signal handler ends the wait as in `wait_until`: always with a
    /// deadline, else unless it has SA_RESTART.
    ///
    /// System calls: none made per wait. The waker is the thread's eventfd
    /// (drained before a sleep only when something wrote it), the untimed
    /// sleep's signalfd is the thread's (`platform::poll_pair_restartable`),
    /// and the input is read only once the sleep says it is readable:
    /// its fd is level-triggered, so what came before the sleep ends it at
    /// once, and nothing is read for nothing (an EAGAIN per receive).
    pub fn wait_on_input(
        &self,
        mut input: impl FnMut() -> Option<i32>,
        mut pump: impl FnMut(),
        mut ready: impl FnMut() -> bool,
        deadline: Option<Deadline>,
    ) -> Waited {
        // Where a spin pays (see `spin`), the input is looked at again and
        // again before sleeping: on an idle machine the kernel's wake-up of
        // a sleeper on another core costs tens of microseconds.
        let (plan, began) = self.learner.plan_now();
        let mut spun = plan.budget == 0;
        // Registered at the first sleep, unregistered when the wait ends.
        let mut waker: Option<InputWaker<'_>> = None;
        // The last sleep saw the input readable: it is read now.
        let mut unread = false;
        // The last sleep saw the eventfd readable: it is drained before
        // the next (a write the `written` flags missed, or poll()'s).
        let mut stale = false;
        let r = loop {
            if let Some(w) = &waker {
                w.sig.armed.store(false, Ordering::SeqCst);
            }
            if ready() {
                break Waited::Ready;
            }
            if core::mem::take(&mut unread) {
                pump();
                if ready() {
                    break Waited::Ready;
                }
            }
            if !spun {
                spun = true;
                if spin::spin(plan.budget, || {
                    pump();
                    ready()
                }) {
                    break Waited::Ready;
                }
            }
            // Looked up only to sleep on it: a wait that its first
            // wake-up ends (a ping-pong's every receive) asks once. A
            // pump above of an input that went meanwhile is harmless: it
            // reads what is left, or nothing.
            let Some(kfd) = input() else {
                // The input went (the connection ended): its last frames
                // were read, and what follows is the frontend's alone.
                drop(waker.take());
                break self.wait_until(&mut ready, deadline);
            };
            let left = deadline.map(platform::time_left);
            if left.is_some_and(|l| l.is_zero()) {
                break Waited::TimedOut;
            }
            let w = match &waker {
                Some(w) => w,
                None => match InputWaker::new(self) {
                    Some(w) => waker.insert(w),
                    None => break self.wait_until(&mut ready, deadline),
                },
            };
            // Emptied only when written: a wait whose first wake-up ends
            // it (a ping-pong's every receive) never reads it.
            let written = w.sig.written.swap(false, Ordering::SeqCst)
                | w.poll.written.swap(false, Ordering::SeqCst);
            if written || core::mem::take(&mut stale) {
                platform::eventfd_drain(w.sig.efd);
            }
            // Armed before the last look: a change after it writes the
            // eventfd, and the sleep below returns at once.
            w.sig.armed.store(true, Ordering::SeqCst);
            if ready() {
                break Waited::Ready;
            }
            // Untimed, a handler with SA_RESTART restarts the wait and one
            // without ends it (EINTR); timed, every handler ends it.
            let woke = match left {
                None => match platform::poll_pair_restartable(kfd, w.sig.efd) {
                    Ok(woke) => woke,
                    Err(_) => {
                        drop(waker.take());
                        break self.wait_until(&mut ready, deadline);
                    }
                },
                Some(l) => platform::poll_pair(kfd, w.sig.efd, Some(l)),
            };
            if woke.b_gone {
                // The thread's eventfd is no longer open (a fork child's,
                // forked in a signal handler during this wait): the plain
                // wait, which needs none.
                drop(waker.take());
                break self.wait_until(&mut ready, deadline);
            }
            unread = woke.a;
            stale = woke.b;
            if woke.interrupted && !ready() {
                break Waited::Interrupted;
            }
        };
        drop(waker);
        if plan.budget != 0 {
            let now = platform::mono_ns();
            self.learner.record(plan, now.saturating_sub(began), now);
        }
        r
    }
}

/// The thread's input signal, registered on one queue for one
/// [`WaitQueue::wait_on_input`]; unregistered when dropped.
#[cfg(feature = "std")]
struct InputWaker<'a> {
    queue: &'a WaitQueue,
    sig: Arc<PollSignal>,
    /// The thread's poll() signal, on the same eventfd: its writes too
    /// leave it readable.
    poll: Arc<PollSignal>,
    id: u64,
}

#[cfg(feature = "std")]
impl<'a> InputWaker<'a> {
    fn new(queue: &'a WaitQueue) -> Option<Self> {
        let (poll, sig) = thread_signals().ok()?;
        let id = queue.register_poller(&sig, -1);
        Some(InputWaker {
            queue,
            sig,
            poll,
            id,
        })
    }
}

#[cfg(feature = "std")]
impl Drop for InputWaker<'_> {
    fn drop(&mut self) {
        // Disarmed: a notify between here and the next wait's arming
        // need not write the eventfd (that wait looks before it sleeps).
        self.sig.armed.store(false, Ordering::SeqCst);
        self.queue.unregister_poller(self.id);
    }
}

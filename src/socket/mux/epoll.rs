//! The epoll engine: epoll over any mix of our sockets and kernel fds
//! (hosted). The C entry points, their checks and the passthrough of sets
//! without our sockets are in `api::epoll`.
//!
//! The epoll fd stays a real kernel epoll fd: kernel fds are added to it for
//! real, so it can be polled and nested like any other. Our sockets live in
//! a side table kept per epoll fd: each registration asks the socket's wait
//! queue to signal a [`PollSignal`] of its own whose eventfd (one per epoll
//! fd) sits in the kernel set under a reserved data value. epoll_wait first
//! collects our ready sockets, then asks the kernel (without waiting when
//! some were found); when nothing is ready it sleeps in the kernel, where a
//! state change of one of our sockets wakes it through the eventfd.
//!
//! A socket whose backend has an input fd (`Backend::input_fd`: the
//! cross-process backend's kernel socket of a connection) also has that fd
//! in the kernel set, EPOLLEXCLUSIVE, under a key of its own: a sleeping
//! wait is woken by the socket's input itself, has the backend process it
//! in this thread (`pump`), then finds the socket ready as any other. Such
//! an fd stays in the set until its socket closes, even when the socket
//! leaves the set: programs that delete and add a socket per request would
//! otherwise pay three epoll_ctl calls each time.
//!
//! Edge-triggered registrations report a socket when its signal's counter
//! moved since the last report (every state change the socket announces for
//! the registered events bumps it) and the socket is ready; level-triggered
//! ones whenever it is ready. EPOLLONESHOT disables a registration once
//! reported, until EPOLL_CTL_MOD re-arms it.
//!
//! While level-triggered sockets were just reported (and so may still be
//! ready), the eventfd is left signalled, so that the epoll fd reads as
//! readable to poll() and to an enclosing epoll; such a readiness may be
//! spurious (the program may have drained the socket since), as an
//! epoll_wait then finds nothing.
//!
//! Registrations of a closed socket are dropped lazily (on the next
//! epoll_ctl or epoll_wait of the set). Sets without any socket of ours go
//! straight to libc (a bitmap of the epoll fds that have a side table keeps
//! the lock off their path).
//!
//! Limits: the side table is keyed by the epoll fd's number. close() of the
//! epoll fd is not seen (close() of a kernel fd stays one load and libc):
//! the side table, its eventfd and its references to sockets stay until
//! epoll_create hands out the same number again, which drops them. An epoll
//! fd reached through a dup() of it has a side table of its own.

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use core::time::Duration;

use libc::{epoll_event, sigset_t};

use crate::consts::*;
use crate::platform;
use crate::socket::spin;
use crate::socket::wait::{PollSignal, SetSignal};
use crate::socket::{Socket, F_CLOSED};
use crate::sync::Mutex;

/// The data value of our eventfd in the kernel set: the address of this
/// static, which no program stores as its own data.
static RESERVED: u8 = 0;

fn reserved() -> u64 {
    &RESERVED as *const u8 as u64
}

/// The backend input fds (see `Backend::input_fd`) a set can watch: those
/// numbered below this.
const INPUT_FDS: usize = 65536;
/// The data values of backend input fds in the kernel set: the address of
/// byte `fd` of this static (never touched, so it costs no memory), which
/// no program stores as its own data.
static INPUT_KEYS: [u8; INPUT_FDS] = [0; INPUT_FDS];

fn input_key(kfd: i32) -> u64 {
    INPUT_KEYS.as_ptr() as u64 + kfd as u64
}

/// The input fd whose key `data` is, if it is one.
fn input_of(data: u64) -> Option<i32> {
    let k = data.wrapping_sub(INPUT_KEYS.as_ptr() as u64);
    (k < INPUT_FDS as u64).then_some(k as i32)
}

const EP_IN: u32 = libc::EPOLLIN as u32;
const EP_ERR: u32 = libc::EPOLLERR as u32;
const EP_HUP: u32 = libc::EPOLLHUP as u32;
const EP_ET: u32 = libc::EPOLLET as u32;
const EP_ONESHOT: u32 = libc::EPOLLONESHOT as u32;
const EP_EXCLUSIVE: u32 = libc::EPOLLEXCLUSIVE as u32;
const EP_WAKEUP: u32 = libc::EPOLLWAKEUP as u32;
/// The flags EPOLLEXCLUSIVE may come with (as the kernel checks).
const EXCLUSIVE_OK: u32 = libc::EPOLLIN as u32
    | libc::EPOLLOUT as u32
    | EP_ERR
    | EP_HUP
    | EP_WAKEUP
    | EP_ET
    | EP_EXCLUSIVE;
/// The largest maxevents the kernel accepts.
pub const EP_MAX_EVENTS: i32 = (i32::MAX as usize / core::mem::size_of::<epoll_event>()) as i32;

/// One socket of ours in one epoll set.
struct Reg {
    fd: i32,
    sock: Arc<Socket>,
    sig: Arc<PollSignal>,
    id: u64,
    /// The events asked for, with EPOLLERR and EPOLLHUP, and the flags.
    events: u32,
    data: u64,
    /// Edge-triggered: the signal's counter when last reported.
    seen: u32,
    /// Cleared once a one-shot registration reported.
    armed: bool,
    /// The backend input fd this set watches for the socket, if any.
    input: Option<i32>,
}

impl Reg {
    fn poll_mask(events: u32) -> i16 {
        (events & 0xffff) as u16 as i16 | POLLERR | POLLHUP
    }

    fn ready(&self) -> u32 {
        self.sock.readiness() as u16 as u32 & self.events & 0xffff
    }
}

struct Inner {
    regs: Vec<Reg>,
    /// The backend input fds in the kernel set, and whose they are.
    inputs: BTreeMap<i32, Arc<Socket>>,
    /// Where the next scan starts, so that a full buffer does not starve the
    /// registrations at the end.
    next: usize,
    /// [`CLOSES`] as of the last purge (u64::MAX: none yet).
    purged: u64,
}

/// Bumped each time a socket that some set registers or watches closes
/// ([`watched_socket_closed`]): a set scans its registrations for closed
/// sockets only after enough did (`EpSet::purge`), not at every epoll_ctl
/// and epoll_wait (a server that adds thousands of connections paid a
/// scan of all of them per call).
static CLOSES: AtomicU64 = AtomicU64::new(0);

/// A socket registered in a set, or whose input fd a set watches, closed:
/// the sets purge it at their next call.
pub(crate) fn watched_socket_closed() {
    CLOSES.fetch_add(1, Ordering::AcqRel);
}

/// The side table of one epoll fd.
pub struct EpSet {
    epfd: i32,
    /// Our eventfd, in the kernel set under [`reserved`]; every
    /// registration's signal writes it.
    efd: i32,
    /// The last wait was filled by our sockets alone: the next one asks
    /// the kernel first, so that kernel fds are not starved.
    kernel_first: AtomicBool,
    /// Raised by every registration's signal: a wait spins on its
    /// activity counter for a moment before it sleeps in the kernel, where
    /// its eventfd wakes it.
    sig: Arc<SetSignal>,
    inner: Mutex<Inner>,
    /// The fork generation that made the side table (see
    /// [`Socket::inherited`]): a fork child's copy is refused.
    fork_gen: u32,
    /// The fork generation in which a refused use was last reported.
    warned_gen: core::sync::atomic::AtomicU32,
    /// The epoll fd is watched by another set or a poll (see `nest`).
    nested: AtomicBool,
}

impl Drop for EpSet {
    fn drop(&mut self) {
        // Unregister first: once unregister_poller returns, no socket can
        // write the eventfd number any more, so closing it is safe.
        for r in self.inner.get_mut().regs.drain(..) {
            r.sock.wait.unregister_poller(r.id);
            r.sock.epoll_regs.fetch_sub(1, Ordering::AcqRel);
        }
        let _ = platform::kfd_close(self.efd);
    }
}

impl EpSet {
    /// A fork child's copy of its parent's side table: its eventfd and its
    /// kernel epoll set are shared with the parent, its sockets are the
    /// parent's. Refused (EOPNOTSUPP) unless every socket in it is shared
    /// (SHARED.md: the child's copies act, their anchors are in the kernel
    /// set): `Err(true)` the first time, when the caller says so on stderr.
    pub fn refused(&self) -> Result<(), bool> {
        let g = crate::socket::fork_generation();
        if self.fork_gen == g || self.inner.lock().regs.iter().all(|r| r.sock.is_shared()) {
            return Ok(());
        }
        Err(self.warned_gen.swap(g, Ordering::Relaxed) != g)
    }

    /// Drops the registrations of closed sockets, and stops watching their
    /// input fds. Called with the lock held.
    fn purge(&self, inner: &mut Inner) {
        // After enough closes (of any set's sockets) to make the scan
        // worth it: a sixteenth of the set, so that closing every socket
        // of a large set costs each close a few steps, not a scan. The
        // registrations of closed sockets meanwhile report nothing
        // (`collect` passes over them).
        let closes = CLOSES.load(Ordering::Acquire);
        let due = 1 + inner.regs.len() as u64 / 16;
        if inner.purged != u64::MAX && closes.wrapping_sub(inner.purged) < due {
            return;
        }
        inner.purged = closes;
        inner.regs.retain(|r| {
            if r.sock.has(F_CLOSED) {
                r.sock.wait.unregister_poller(r.id);
                r.sock.epoll_regs.fetch_sub(1, Ordering::AcqRel);
                false
            } else {
                true
            }
        });
        if inner.inputs.is_empty() {
            return;
        }
        inner.inputs.retain(|&kfd, s| {
            if !s.has(F_CLOSED) {
                return true;
            }
            // The backend may have closed that fd already (the kernel
            // dropped it from the set) and given its number to another
            // socket's input, which `inputs` would then name: this DEL
            // then fails, or removes an input nobody watches any more. A
            // shared socket's anchor is a stand-in once its close let go
            // of it: no DEL then (a system call per close).
            if !s.input_released(kfd) {
                let _ = platform::kernel_epoll_ctl(self.epfd, libc::EPOLL_CTL_DEL, kfd, None);
            }
            false
        });
    }

    /// Tells the set's learner how long a wait that went by `plan` took
    /// (nothing for a call that never had to wait).
    fn learn(&self, plan: Option<(spin::Plan, u64)>) {
        if let Some((p, began)) = plan {
            let now = platform::mono_ns();
            self.sig.learner.record(p, now.saturating_sub(began), now);
        }
    }

    /// Whether a wait spins before it sleeps: while the set holds sockets
    /// of ours and no backend input fd. A socket whose input the waiting
    /// thread pumps itself becomes ready only once that thread is woken by
    /// the kernel: spinning would only delay it.
    fn spins(&self) -> bool {
        let g = self.inner.lock();
        !g.regs.is_empty() && g.inputs.is_empty()
    }

    /// Has the kernel set watch the backend input fd of `inner.regs[i]`'s
    /// socket, if it has one: a wait that sleeps in the kernel is then
    /// woken by the socket's input itself and pumps it (see
    /// `Backend::input_fd`), instead of by the backend's thread after it.
    /// EPOLLEXCLUSIVE: when several sets watch it, one waiter is woken.
    ///
    /// Called without the set's lock: asking the backend for the fd and
    /// handing it the input are backend operations, which no frontend lock
    /// is held across.
    fn watch_input(&self, sock: &Arc<Socket>) {
        if self.nested.load(Ordering::Acquire) && !sock.is_shared() {
            return;
        }
        let Some(kfd) = sock.input_fd() else { return };
        if kfd < 0 || kfd as usize >= INPUT_FDS {
            return;
        }
        let fresh = {
            let mut g = self.inner.lock();
            if !g.regs.iter().any(|r| Arc::ptr_eq(&r.sock, sock)) {
                // Deleted meanwhile.
                return;
            }
            let fresh = match g.inputs.get(&kfd) {
                Some(s) if Arc::ptr_eq(s, sock) => false,
                _ => {
                    let ev = epoll_event {
                        events: EP_IN | EP_EXCLUSIVE,
                        u64: input_key(kfd),
                    };
                    // An input fd that is itself an epoll set (a deferring
                    // shm listener's) cannot be EPOLLEXCLUSIVE.
                    let plain = epoll_event {
                        events: EP_IN,
                        ..ev
                    };
                    match platform::kernel_epoll_ctl(self.epfd, libc::EPOLL_CTL_ADD, kfd, Some(ev))
                        .or_else(|e| match e {
                            EINVAL => platform::kernel_epoll_ctl(
                                self.epfd,
                                libc::EPOLL_CTL_ADD,
                                kfd,
                                Some(plain),
                            ),
                            e => Err(e),
                        }) {
                        Ok(()) | Err(libc::EEXIST) => {}
                        Err(_) => return,
                    }
                    g.inputs.insert(kfd, sock.clone());
                    true
                }
            };
            for r in g.regs.iter_mut().filter(|r| Arc::ptr_eq(&r.sock, sock)) {
                r.input = Some(kfd);
            }
            fresh
        };
        if fresh {
            sock.input_watched();
        }
    }

    /// The set's epoll fd is watched by another epoll set (or a poll): its
    /// kernel set must be readable only when the set has events, as a
    /// Linux epoll fd is, and a backend input fd in it is readable on
    /// input no program would see (a window update, say). The backends
    /// read those inputs again, and the set watches none from now on,
    /// but a shared socket's anchor: no thread of ours reads for it, its
    /// doorbells ring only for what a waiter asked for, so it stays.
    fn nest(&self) {
        if self.nested.swap(true, Ordering::AcqRel) {
            return;
        }
        let inputs = {
            let mut g = self.inner.lock();
            let (keep, drop): (BTreeMap<_, _>, BTreeMap<_, _>) = core::mem::take(&mut g.inputs)
                .into_iter()
                .partition(|(_, s): &(i32, Arc<Socket>)| s.is_shared());
            for r in g.regs.iter_mut() {
                if !r.input.is_some_and(|k| keep.contains_key(&k)) {
                    r.input = None;
                }
            }
            g.inputs = keep;
            drop
        };
        for (kfd, sock) in inputs {
            let _ = platform::kernel_epoll_ctl(self.epfd, libc::EPOLL_CTL_DEL, kfd, None);
            sock.before_block();
        }
    }

    /// The kernel reported backend input fd `kfd`: its socket's input is
    /// processed here, in the waiting thread.
    fn pump(&self, kfd: i32, events: u32) {
        let sock = {
            let mut g = self.inner.lock();
            match g.inputs.get(&kfd) {
                // Closed, and not purged yet (`purge` waits for enough
                // closes): its input fd leaves the kernel set now, or its
                // input (a hangup, say) would wake every wait until then.
                Some(s) if s.has(F_CLOSED) => {
                    g.inputs.remove(&kfd);
                    let _ = platform::kernel_epoll_ctl(self.epfd, libc::EPOLL_CTL_DEL, kfd, None);
                    None
                }
                s => s.cloned(),
            }
        };
        if let Some(s) = sock {
            s.pump();
            if events & (EP_HUP | EP_ERR) != 0 {
                self.unwatch_ended(kfd, &s);
            }
        }
    }

    /// Input fd `kfd` of `sock` hung up (the peer's every holder is gone):
    /// its end was just pumped, and nothing can follow. Left in the kernel
    /// set it would report the hangup to every wait from now on, which
    /// would pump it again and look for events the socket no longer has,
    /// for as long as the socket lives (a member deleted after its end, an
    /// edge-triggered one): the set stops watching it, and the backend's
    /// thread takes its input again.
    fn unwatch_ended(&self, kfd: i32, sock: &Arc<Socket>) {
        {
            let mut g = self.inner.lock();
            if !g.inputs.get(&kfd).is_some_and(|s| Arc::ptr_eq(s, sock)) {
                return;
            }
            g.inputs.remove(&kfd);
            let _ = platform::kernel_epoll_ctl(self.epfd, libc::EPOLL_CTL_DEL, kfd, None);
            for r in g.regs.iter_mut().filter(|r| r.input == Some(kfd)) {
                r.input = None;
            }
        }
        sock.before_block();
    }

    /// Writes ready sockets to `out`, as many as fit; returns how many, and
    /// whether a level-triggered one was among them.
    fn collect(&self, out: &mut [epoll_event]) -> (usize, bool) {
        let max = out.len();
        let mut g = self.inner.lock();
        self.purge(&mut g);
        let n = g.regs.len();
        if n == 0 || max == 0 {
            return (0, false);
        }
        let start = g.next % n;
        let mut count = 0;
        let mut level = false;
        for k in 0..n {
            let i = (start + k) % n;
            let r = &mut g.regs[i];
            if !r.armed || r.sock.has(F_CLOSED) {
                continue;
            }
            let et = r.events & EP_ET != 0;
            // The counter before the readiness: a change in between is
            // reported again next time, never lost.
            let mut w = r.sig.word.load(Ordering::SeqCst);
            if et && w == r.seen {
                continue;
            }
            if et && r.sock.shared_moved() {
                // A shared socket's changes are announced by the pump that
                // finds them (`Socket::pump`); what moved since the last
                // one is in the readiness reported now, so the next pump
                // must not announce it again. Announced here instead, for
                // the socket's other registrations.
                r.sock.wait.notify(-1);
                w = r.sig.word.load(Ordering::SeqCst);
            }
            let ready = r.ready();
            if et {
                r.seen = w;
            }
            if ready == 0 {
                continue;
            }
            if r.events & EP_ONESHOT != 0 {
                r.armed = false;
            } else if !et {
                level = true;
            }
            out[count] = epoll_event {
                events: ready,
                u64: r.data,
            };
            count += 1;
            if count == max {
                g.next = i + 1;
                break;
            }
        }
        (count, level)
    }

    fn ctl(&self, op: i32, fdn: i32, sock: Arc<Socket>, ev: u32, data: u64) -> Result<(), Errno> {
        self.refused()?;
        let mut g = self.inner.lock();
        self.purge(&mut g);
        // A socket no set registers is not in this one: an epoll server's
        // ADD of each new connection need not look through all the others.
        let pos = if op == libc::EPOLL_CTL_ADD && sock.epoll_regs.load(Ordering::Acquire) == 0 {
            None
        } else {
            g.regs
                .iter()
                .position(|r| r.fd == fdn && Arc::ptr_eq(&r.sock, &sock))
        };
        let events = (ev & !EP_WAKEUP) | EP_ERR | EP_HUP;
        let mut watch = None;
        let shared = sock.is_shared().then(|| sock.clone());
        let mut wake = match op {
            libc::EPOLL_CTL_ADD => {
                if pos.is_some() {
                    return Err(libc::EEXIST);
                }
                let sig = Arc::new(PollSignal::in_set(self.sig.clone()));
                let id = sock.wait.register_poller(&sig, Reg::poll_mask(events));
                let r = Reg {
                    fd: fdn,
                    seen: sig.word.load(Ordering::SeqCst).wrapping_sub(1),
                    sock,
                    sig,
                    id,
                    events,
                    data,
                    armed: true,
                    input: None,
                };
                let ready = r.ready() != 0;
                r.sock.epoll_regs.fetch_add(1, Ordering::AcqRel);
                watch = Some(r.sock.clone());
                g.regs.push(r);
                ready
            }
            libc::EPOLL_CTL_MOD => {
                let Some(i) = pos else {
                    return Err(libc::ENOENT);
                };
                let r = &mut g.regs[i];
                if r.events & EP_EXCLUSIVE != 0 {
                    return Err(EINVAL);
                }
                r.sock.wait.unregister_poller(r.id);
                r.id = r.sock.wait.register_poller(&r.sig, Reg::poll_mask(events));
                r.events = events;
                r.data = data;
                r.armed = true;
                r.seen = r.sig.word.load(Ordering::SeqCst).wrapping_sub(1);
                let ready = r.ready() != 0;
                // A socket that had no input fd at EPOLL_CTL_ADD (not yet
                // connected) may have one now.
                if r.input.is_none() {
                    watch = Some(r.sock.clone());
                }
                ready
            }
            libc::EPOLL_CTL_DEL => {
                let Some(i) = pos else {
                    return Err(libc::ENOENT);
                };
                // Order only rotates fairness (`next`): the last takes its place.
                let r = g.regs.swap_remove(i);
                r.sock.wait.unregister_poller(r.id);
                r.sock.epoll_regs.fetch_sub(1, Ordering::AcqRel);
                // Its input fd stays watched until the socket closes:
                // programs that delete and add a socket again per request
                // (redis-benchmark) would pay three epoll_ctl calls more
                // each time. Input that comes meanwhile is read by this
                // set's waits, by a thread that blocks on the socket
                // (`Socket::before_block`), or by a non-blocking call that
                // finds nothing (`Socket::pump_orphan`).
                false
            }
            _ => return Err(EINVAL),
        };
        drop(g);
        if let Some(sock) = watch {
            self.watch_input(&sock);
        }
        if let (Some(s), libc::EPOLL_CTL_ADD | libc::EPOLL_CTL_MOD) = (&shared, op) {
            // Its doorbells for what the registrations now want, then a
            // look: what came before they were asked for shows now.
            s.arm_shared(s.wait.polled_events());
            wake |= s.readiness() as u16 as u32 & events & 0xffff != 0;
        }
        if wake {
            // A waiter (in this process, or polling the epoll fd) sees it.
            self.sig.raise();
        }
        Ok(())
    }
}

/// The side tables, by epoll fd number; few, so a vector.
static SETS: Mutex<Vec<Arc<EpSet>>> = Mutex::new(Vec::new());
/// `SETS.len()`, read without the lock: 0 sends every call to libc.
static NSETS: AtomicUsize = AtomicUsize::new(0);

/// One bit per epoll fd number below `MARKED_FDS` that has a side table, so
/// that a wait on any other epoll fd goes to libc without taking the lock.
const MARKED_FDS: usize = 65536;
static MARKS: [AtomicU64; MARKED_FDS / 64] = [const { AtomicU64::new(0) }; MARKED_FDS / 64];

fn set_mark(epfd: i32, on: bool) {
    if let Some(w) = MARKS.get(epfd as usize / 64) {
        let bit = 1u64 << (epfd as usize % 64);
        if on {
            w.fetch_or(bit, Ordering::Release);
        } else {
            w.fetch_and(!bit, Ordering::Release);
        }
    }
}

/// Whether `epfd` may have a side table (always, beyond the bitmap).
pub(crate) fn marked(epfd: i32) -> bool {
    match MARKS.get(epfd as usize / 64) {
        Some(w) => w.load(Ordering::Acquire) & (1u64 << (epfd as usize % 64)) != 0,
        None => true,
    }
}

/// poll() or select() watches these fds: those that are epoll fds of ours
/// are nested (see `EpSet::nest`). One atomic load with no set.
pub(crate) fn nest_polled(fds: impl Iterator<Item = i32>) {
    if NSETS.load(Ordering::Acquire) == 0 {
        return;
    }
    for fd in fds {
        if fd >= 0 && marked(fd) {
            if let Some(s) = lookup(fd) {
                s.nest();
            }
        }
    }
}

pub(crate) fn lookup(epfd: i32) -> Option<Arc<EpSet>> {
    if NSETS.load(Ordering::Acquire) == 0 || epfd < 0 || !marked(epfd) {
        return None;
    }
    SETS.lock().iter().find(|s| s.epfd == epfd).cloned()
}

/// fork() support: takes the side tables' lock, then each table's (a
/// table's lock is never held while the list's is taken). They are released
/// by `sync::fork_hold::release_held`.
pub fn fork_lock() {
    crate::sync::fork_hold::hold_with(&SETS, |sets| {
        for set in sets {
            crate::sync::fork_hold::hold_in(set.clone(), |s| &s.inner);
        }
    });
}

/// The side table of `epfd`, made on first use: our eventfd goes into the
/// kernel set, which also tells whether `epfd` is an epoll fd (EBADF,
/// EINVAL from the kernel otherwise).
fn get_or_create(epfd: i32) -> Result<Arc<EpSet>, Errno> {
    let mut t = SETS.lock();
    if let Some(s) = t.iter().find(|s| s.epfd == epfd) {
        return Ok(s.clone());
    }
    let e0 = platform::eventfd_new()?;
    // Out of the way of the program's lowest-numbered fds, when possible.
    let efd = match platform::kfd_dup_min(e0, 1000, true) {
        Ok(h) => {
            let _ = platform::kfd_close(e0);
            h
        }
        Err(_) => e0,
    };
    let ev = epoll_event {
        events: EP_IN,
        u64: reserved(),
    };
    if let Err(e) = platform::kernel_epoll_ctl(epfd, libc::EPOLL_CTL_ADD, efd, Some(ev)) {
        let _ = platform::kfd_close(efd);
        return Err(e);
    }
    let s = Arc::new(EpSet {
        epfd,
        efd,
        kernel_first: AtomicBool::new(false),
        sig: Arc::new(SetSignal::new(efd)),
        inner: Mutex::new(Inner {
            regs: Vec::new(),
            inputs: BTreeMap::new(),
            next: 0,
            // Looks at the first call (a set made after closes).
            purged: u64::MAX,
        }),
        fork_gen: crate::socket::fork_generation(),
        warned_gen: core::sync::atomic::AtomicU32::new(crate::socket::fork_generation()),
        nested: AtomicBool::new(false),
    });
    t.push(s.clone());
    set_mark(epfd, true);
    NSETS.store(t.len(), Ordering::Release);
    Ok(s)
}

/// Drops the side table of epoll fd `epfd`, at its close (or, for a close
/// the library did not see, when a new epoll fd gets its number). Every
/// passthrough close() asks: a load and a bit of the marks, no lock, for
/// an fd that is no epoll set of ours.
pub fn forget(epfd: i32) {
    if NSETS.load(Ordering::Acquire) == 0 || !marked(epfd) {
        return;
    }
    let old = {
        let mut t = SETS.lock();
        let old = t
            .iter()
            .position(|s| s.epfd == epfd)
            .map(|i| t.swap_remove(i));
        if old.is_some() {
            set_mark(epfd, false);
        }
        NSETS.store(t.len(), Ordering::Release);
        old
    };
    drop(old);
}

/// Whether any epoll fd has a side table (one load: epoll calls on sets
/// without our sockets go straight to the kernel).
pub fn any_sets() -> bool {
    NSETS.load(Ordering::Acquire) != 0
}

/// Takes our entries (the eventfd's, and backend input fds', each of which
/// goes to `on_input` with its events) out of `ev`, moving the rest down; returns how many
/// are left, whether the eventfd was there (it stays signalled until
/// drained) and whether any backend input was.
pub fn strip_reserved(
    ev: &mut [epoll_event],
    on_input: &mut dyn FnMut(i32, u32),
) -> (usize, bool, bool) {
    let mut kept = 0;
    let mut raised = false;
    let mut input = false;
    for k in 0..ev.len() {
        let e = ev[k];
        if e.u64 == reserved() {
            raised = true;
            continue;
        }
        if let Some(kfd) = input_of(e.u64) {
            on_input(kfd, e.events);
            input = true;
            continue;
        }
        ev[kept] = e;
        kept += 1;
    }
    (kept, raised, input)
}

/// epoll_ctl of one of our sockets (`sock`, fd `fdn`) on the epoll fd
/// `epfd` (the caller checked that `epfd` is not one of our sockets);
/// `event` for ADD and MOD.
pub fn ctl(
    epfd: i32,
    op: i32,
    fdn: i32,
    sock: Arc<Socket>,
    event: Option<epoll_event>,
) -> Result<(), Errno> {
    let (ev, data) = event.map_or((0, 0), |e| (e.events, e.u64));
    // EPOLLEXCLUSIVE: only at ADD, only with the events it allows.
    if event.is_some()
        && ev & EP_EXCLUSIVE != 0
        && (op == libc::EPOLL_CTL_MOD || ev & !EXCLUSIVE_OK != 0 || ev & EP_ONESHOT != 0)
    {
        return Err(EINVAL);
    }
    get_or_create(epfd)?.ctl(op, fdn, sock, ev, data)
}

/// A kernel epoll fd `fdn` goes into another set: if it is one of ours, its
/// sockets' readiness must reach the enclosing set.
pub fn nest_if_ours(fdn: i32) {
    if marked(fdn) {
        if let Some(set) = lookup(fdn) {
            set.nest();
        }
    }
}

fn ceil_ms(d: Duration) -> i32 {
    d.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32
}

/// epoll_wait on a set with a side table (not [`EpSet::refused`]): our
/// ready sockets and the kernel's events into `ev` (not empty), waiting up to `timeout` (`None`: no limit)
/// with the signal mask `mask`. Returns how many events were written.
pub fn wait(
    set: &EpSet,
    ev: &mut [epoll_event],
    timeout: Option<Duration>,
    mask: Option<&sigset_t>,
) -> Result<usize, Errno> {
    let maxu = ev.len();
    let deadline = timeout.and_then(platform::deadline_after);
    // After a call that our sockets filled, the kernel's events go first.
    let mut first = set.kernel_first.swap(false, Ordering::Relaxed);
    // How this wait goes and when it began, once nothing was ready: what
    // the set's spin learner is told at the end.
    let mut plan: Option<(spin::Plan, u64)> = None;
    loop {
        let mut n = 0;
        let mut level = false;
        // Whether the kernel reported our eventfd: a socket changed (or a
        // level-triggered one was left signalled).
        let mut woke = false;
        // Whether that was the eventfd, which then stays signalled.
        let mut raised = false;
        // Read before our sockets are looked at: a change after it shows.
        let seen = set.sig.activity.load(Ordering::SeqCst);
        if first {
            let (k, r, i) = kernel_wait(set, ev, 0, mask)?;
            n = k;
            woke = r || i;
            raised = r;
        }
        if n < maxu {
            let (m, l) = set.collect(&mut ev[n..]);
            if !first && m == maxu {
                set.kernel_first.store(true, Ordering::Relaxed);
            }
            n += m;
            level = l;
        }
        if !first && n < maxu {
            let ms = if n > 0 {
                0
            } else {
                match (timeout, deadline) {
                    (None, _) => -1,
                    (Some(_), Some(d)) => ceil_ms(platform::time_left(d)),
                    (Some(t), None) => ceil_ms(t),
                }
            };
            // Nothing yet: where the set's learner finds spinning faster
            // (socket::spin), a socket of ours that changes within the spin
            // is taken without a sleep and wake-up in the kernel. Kernel
            // fds wait that long at most; a set left with none of our
            // sockets, or whose input the kernel wakes it for, does not
            // spin.
            //
            // Signals stay blocked while it spins: a handler that ran then
            // would not end the kernel wait that follows with EINTR, and a
            // program that learns of its signals that way (nginx's SIGTERM)
            // would sleep on. The kernel wait unblocks them atomically.
            let mut blocked = None;
            if n == 0 && ms != 0 {
                let (p, _) = *plan.get_or_insert_with(|| {
                    let p = if set.spins() {
                        set.sig.learner.plan()
                    } else {
                        spin::Plan::SLEEP
                    };
                    (p, platform::mono_ns())
                });
                if p.budget != 0 {
                    let old = platform::block_signals();
                    let activity = || set.sig.activity.load(Ordering::Acquire) != seen;
                    if spin::spin(p.budget, activity) {
                        platform::restore_signals(&old);
                        continue;
                    }
                    blocked = Some(old);
                }
            }
            let during = match (&blocked, mask) {
                (Some(old), None) => Some(old),
                _ => mask,
            };
            let r = kernel_wait(set, &mut ev[n..], ms, during);
            if let Some(old) = &blocked {
                platform::restore_signals(old);
            }
            match r {
                Ok((k, r, i)) => {
                    n += k;
                    woke |= r || i;
                    raised |= r;
                }
                Err(e) if n == 0 => return Err(e),
                Err(_) => {}
            }
        }
        first = false;
        if n > 0 {
            set.learn(plan);
            if level && !raised {
                // Those sockets may still be ready: keep the epoll fd
                // readable for poll() and enclosing epoll sets.
                set.sig.raise();
            }
            return Ok(n);
        }
        if woke {
            // Empty it only now: a stale signal costs one more turn, never
            // a lost wake-up (the sockets are looked at again after this).
            set.sig.drain();
            continue;
        }
        let expired = match (timeout, deadline) {
            (Some(t), _) => {
                t.is_zero() || deadline.is_some_and(|d| platform::time_left(d).is_zero())
            }
            _ => false,
        };
        if expired {
            set.learn(plan);
            return Ok(0);
        }
    }
}

/// The kernel's part of a wait: events into `ev`, our eventfd's taken out
/// (and backend input pumped). Returns how many are left, whether the
/// eventfd was there and whether backend input was.
fn kernel_wait(
    set: &EpSet,
    ev: &mut [epoll_event],
    ms: i32,
    mask: Option<&sigset_t>,
) -> Result<(usize, bool, bool), Errno> {
    let r = platform::kernel_epoll_pwait(set.epfd, ev, ms, mask)?;
    Ok(strip_reserved(&mut ev[..r], &mut |kfd, events| {
        set.pump(kfd, events)
    }))
}

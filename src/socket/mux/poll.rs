//! poll() over any mix of our sockets and (hosted) kernel fds: the engine
//! under poll, ppoll, select and pselect.
//!
//! Our sockets' readiness is computed by the frontend. Every polled socket
//! registers the calling thread's signal; a state change on one of them
//! bumps it and readiness is computed again. Hosted, the thread sleeps in
//! the kernel's ppoll on the kernel fds and the signal's eventfd together;
//! without an OS every fd is ours or invalid (POLLNVAL), and the thread
//! sleeps on the signal's word through the host's wait (in the cooperative
//! mode, with no wait, a poll that finds nothing ready returns 0 at once).

use alloc::sync::Arc;
use alloc::vec::Vec;
#[cfg(not(feature = "std"))]
use core::sync::atomic::Ordering;
use core::time::Duration;

use libc::{pollfd, sigset_t};

use crate::consts::*;
use crate::platform;
use crate::socket::wait::PollSignal;
use crate::socket::Socket;

/// Polls `fds`, where `socks[i]` is the socket behind `fds[i]` when it is
/// ours. Returns how many entries have a non-zero `revents`. `mask` is the
/// signal mask to wait with (ppoll, pselect).
pub fn poll(
    fds: &mut [pollfd],
    socks: &[Option<Arc<Socket>>],
    timeout: Option<Duration>,
    mask: Option<&sigset_t>,
) -> Result<usize, Errno> {
    // Our sockets alone (and ignored negative fds), one of them ready: no
    // registration and no kernel call (select on an always-writable UDP
    // socket before each datagram, as iperf3 does, cost two).
    if socks
        .iter()
        .zip(fds.iter())
        .all(|(s, p)| s.is_some() || p.fd < 0)
    {
        let ready = our_readiness(fds, socks);
        if ready > 0 {
            return Ok(ready);
        }
    }
    let mut sleeper = Sleeper::new(fds, socks, mask)?;
    let regs: Vec<Option<u64>> = socks
        .iter()
        .zip(fds.iter())
        .map(|(s, p)| {
            s.as_ref().map(|s| {
                s.before_block();
                s.wait
                    .register_poller(&sleeper.sig, p.events | POLLERR | POLLHUP)
            })
        })
        .collect();
    let deadline = timeout.and_then(platform::deadline_after);
    let result = loop {
        let seen = sleeper.arm();
        let ready = our_readiness(fds, socks);
        let wait = if ready > 0 || !platform::can_block() {
            Some(Duration::ZERO)
        } else {
            match (timeout, deadline) {
                (None, _) => None,
                (Some(_), Some(d)) => Some(platform::time_left(d)),
                (Some(t), None) => Some(t),
            }
        };
        let kready = match sleeper.sleep(fds, wait, deadline, seen) {
            Ok(n) => n,
            Err(e) => break Err(e),
        };
        if ready + kready > 0 {
            break Ok(ready + kready);
        }
        if wait == Some(Duration::ZERO)
            || deadline.is_some_and(|d| platform::time_left(d).is_zero())
        {
            break Ok(0);
        }
    };
    for (s, id) in socks.iter().zip(regs.iter()) {
        if let (Some(s), Some(id)) = (s, id) {
            s.wait.unregister_poller(*id);
        }
    }
    result
}

/// Sets `revents` of the entries that are ours (and, without an OS, of the
/// others: POLLNVAL); returns how many are non-zero.
fn our_readiness(fds: &mut [pollfd], socks: &[Option<Arc<Socket>>]) -> usize {
    let mut ready = 0;
    for (p, s) in fds.iter_mut().zip(socks) {
        match s {
            Some(s) => p.revents = s.readiness() & (p.events | POLLERR | POLLHUP),
            // Hosted, the kernel answers for the fds that are not ours.
            #[cfg(feature = "std")]
            None => continue,
            #[cfg(not(feature = "std"))]
            None => p.revents = if p.fd >= 0 { POLLNVAL } else { 0 },
        }
        ready += (p.revents != 0) as usize;
    }
    ready
}

/// Where a poll sleeps: hosted, in the kernel's ppoll on the kernel fds and
/// the thread's waker eventfd.
#[cfg(feature = "std")]
struct Sleeper<'m> {
    sig: Arc<PollSignal>,
    /// The kernel fds, the anchors of shared sockets, then the waker's
    /// eventfd.
    kfds: Vec<pollfd>,
    /// The shared sockets (their state changes reach no waker: the sleep
    /// waits on their anchors), with the events asked for.
    shared: Vec<(Arc<Socket>, i16)>,
    /// For each kernel fd, its index in the caller's array.
    kidx: Vec<usize>,
    mask: Option<&'m sigset_t>,
    /// No waker watches our unshared sockets: sleep in short slices.
    slices: bool,
}

/// How long a sleep without a waker goes before it looks at our sockets
/// again.
#[cfg(feature = "std")]
const SLICE: Duration = Duration::from_millis(10);

#[cfg(feature = "std")]
impl<'m> Sleeper<'m> {
    fn new(
        fds: &[pollfd],
        socks: &[Option<Arc<Socket>>],
        mask: Option<&'m sigset_t>,
    ) -> Result<Sleeper<'m>, Errno> {
        // Without the thread's eventfd (a sandbox that forbids making one,
        // as sshd's pre-authentication child's: `thread_waker` asks it; or
        // no fd left) the sleep waits on the kernel fds and the shared
        // sockets' anchors, and looks at our other sockets again every few
        // milliseconds.
        let waker = crate::socket::wait::thread_waker().ok();
        let slices = waker.is_none() && socks.iter().flatten().any(|s| !s.is_shared());
        let sig = waker.unwrap_or_else(|| Arc::new(PollSignal::new(-1)));
        let mut kfds = Vec::with_capacity(fds.len() + 1);
        let mut kidx = Vec::with_capacity(fds.len());
        for (i, (p, s)) in fds.iter().zip(socks).enumerate() {
            if s.is_none() {
                kfds.push(pollfd {
                    fd: p.fd,
                    events: p.events,
                    revents: 0,
                });
                kidx.push(i);
            }
        }
        let mut shared = Vec::new();
        for (p, s) in fds.iter().zip(socks) {
            if let Some(s) = s.as_ref().filter(|s| s.is_shared()) {
                if let Some(fd) = s.shared_wait_fd(p.events) {
                    kfds.push(pollfd {
                        fd,
                        events: POLLIN,
                        revents: 0,
                    });
                    shared.push((s.clone(), p.events));
                }
            }
        }
        if sig.efd >= 0 {
            kfds.push(pollfd {
                fd: sig.efd,
                events: POLLIN,
                revents: 0,
            });
        }
        Ok(Sleeper {
            sig,
            kfds,
            shared,
            kidx,
            mask,
            slices,
        })
    }

    /// Before readiness is computed: a signal after this wakes the sleep,
    /// and so does a doorbell on a shared socket's anchor.
    fn arm(&mut self) -> u32 {
        if self.sig.efd >= 0 {
            platform::eventfd_drain(self.sig.efd);
        }
        for (s, events) in &self.shared {
            s.shared_wait_fd(*events);
        }
        0
    }

    /// Sleeps up to `wait` (`None`: until something happens) in the
    /// kernel; copies the kernel fds' `revents` to `fds` and returns how
    /// many are non-zero.
    fn sleep(
        &mut self,
        fds: &mut [pollfd],
        wait: Option<Duration>,
        _deadline: Option<platform::Deadline>,
        _seen: u32,
    ) -> Result<usize, Errno> {
        for k in self.kfds.iter_mut() {
            k.revents = 0;
        }
        let wait = match wait {
            _ if !self.slices => wait,
            Some(w) => Some(w.min(SLICE)),
            None => Some(SLICE),
        };
        platform::kernel_ppoll(&mut self.kfds, wait, self.mask)?;
        let mut kready = 0;
        for (k, &i) in self.kfds.iter().zip(&self.kidx) {
            fds[i].revents = k.revents;
            kready += (k.revents != 0) as usize;
        }
        Ok(kready)
    }
}

/// Where a poll sleeps without an OS: on a signal's word, through the
/// host's wait.
#[cfg(not(feature = "std"))]
struct Sleeper {
    sig: Arc<PollSignal>,
}

#[cfg(not(feature = "std"))]
impl Sleeper {
    fn new(
        _fds: &[pollfd],
        _socks: &[Option<Arc<Socket>>],
        _mask: Option<&sigset_t>,
    ) -> Result<Sleeper, Errno> {
        Ok(Sleeper {
            sig: Arc::new(PollSignal::new(-1)),
        })
    }

    /// Before readiness is computed: the word a signal after this changes.
    fn arm(&mut self) -> u32 {
        self.sig.word.load(Ordering::SeqCst)
    }

    /// Sleeps until the word moves past `seen` or `deadline` passes; no fd
    /// is the kernel's.
    fn sleep(
        &mut self,
        _fds: &mut [pollfd],
        wait: Option<Duration>,
        deadline: Option<platform::Deadline>,
        seen: u32,
    ) -> Result<usize, Errno> {
        if wait != Some(Duration::ZERO) {
            platform::futex_wait(&self.sig.word, seen, deadline);
        }
        Ok(0)
    }
}

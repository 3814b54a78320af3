//! The transport thread: its epoll set, what it watches, output flushing,
//! connections ending, and the flush at exit.
#![deny(unsafe_code)]

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicI32, Ordering};

use super::*;
use crate::backend::contract::*;
use crate::backend::upcall;
use crate::consts::*;
use crate::sync::Mutex;

/// Held while a datagram port's links are accepted (see `Transport::accept`).
pub(super) static LINK_ACCEPT: Mutex<()> = Mutex::new(());

/// The transport: an epoll set of kernel sockets and its thread.
pub(super) struct Transport {
    pub(super) epfd: AtomicI32,
    pub(super) conns: Mutex<BTreeMap<i32, Arc<Conn>>>,
    /// Datagram links waiting for room at their receiving socket.
    pub(super) paused: Mutex<Vec<Arc<Conn>>>,
    /// Datagram links program threads read (`direct_link`), which the
    /// transport takes back once nobody has for a while.
    pub(super) direct: Mutex<Vec<Arc<Conn>>>,
    /// When `reclaim_direct` last looked at them (monotonic ns).
    pub(super) direct_looked: core::sync::atomic::AtomicU64,
    /// An eventfd in the epoll set, rung when the thread must work out its
    /// timeout again: the first link handed out (`hand_out`) needs it to
    /// wake up to take links back, where it slept with none before. Made
    /// at the first ring: a process that never waits in a UDP receive has
    /// no such fd.
    pub(super) bell: AtomicI32,
}

pub(super) const EV_IN: u32 = libc::EPOLLIN as u32;
pub(super) const EV_OUT: u32 = libc::EPOLLOUT as u32;

impl Transport {
    pub(super) fn epfd(&self) -> Result<i32, Errno> {
        let e = self.epfd.load(Ordering::Acquire);
        if e >= 0 {
            return Ok(e);
        }
        let fd = kernel::epoll_create()?;
        match self
            .epfd
            .compare_exchange(-1, fd, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {
                crate::platform::at_exit(flush_at_exit);
                let t: &'static Transport = transport();
                crate::platform::spawn_quiet("usock-xproc", move || t.run(fd))
                    .map_err(|_| EAGAIN)?;
                super::status::started(fd);
                Ok(fd)
            }
            Err(other) => {
                close_kfd(fd);
                Ok(other)
            }
        }
    }

    /// Wakes the thread to work out its epoll timeout again (see `bell`).
    pub(super) fn ring(&self) {
        let mut b = self.bell.load(Ordering::Acquire);
        if b < 0 {
            let (Ok(epfd), Ok(new)) = (self.epfd(), crate::platform::eventfd_new()) else {
                return;
            };
            // Known as the bell before the thread can see it fire.
            b = match self
                .bell
                .compare_exchange(-1, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    if kernel::epoll_ctl(epfd, libc::EPOLL_CTL_ADD, new, EV_IN).is_err() {
                        return;
                    }
                    new
                }
                Err(other) => {
                    close_kfd(new);
                    other
                }
            };
        }
        crate::platform::eventfd_signal(b);
    }

    pub(super) fn add(&self, c: Arc<Conn>) -> Result<(), Errno> {
        self.epfd()?;
        self.conns.lock().insert(c.kfd, c.clone());
        let fd_life = c.out.lock();
        // Bytes queued before (an AF_UNIX client's handshake) go out too.
        let out = if fd_life.is_empty() { 0 } else { EV_OUT };
        self.register(&c, EV_IN | out)
    }

    /// Sets what the transport's epoll set watches on `c`'s kernel socket
    /// (`0`: nothing). Called with `c.out` locked (it guards the fd's life).
    ///
    /// Once a program's epoll set watches the socket too (`shared`, see
    /// `Backend::input_fd`), the registration is EPOLLEXCLUSIVE, and so
    /// made anew each time (the kernel refuses EPOLL_CTL_MOD on one): when
    /// both watch the input, the kernel wakes the one registered first,
    /// the program's, while it waits. Before, a plain EPOLL_CTL_MOD saves a
    /// system call each time room to write is watched or no longer.
    pub(super) fn register(&self, c: &Conn, events: u32) -> Result<(), Errno> {
        let epfd = self.epfd()?;
        if c.state.is_closed() {
            return Ok(());
        }
        let was = c.watching.swap(events, Ordering::AcqRel);
        if was == events {
            return Ok(());
        }
        let shared = c.state.is_shared();
        let ctl = |op: i32, events: u32| kernel::epoll_ctl(epfd, op, c.kfd, events);
        if was != 0 && events != 0 && !shared {
            return ctl(libc::EPOLL_CTL_MOD, events);
        }
        if was != 0 {
            let _ = ctl(libc::EPOLL_CTL_DEL, 0);
        }
        if events == 0 {
            return Ok(());
        }
        let excl = if shared {
            libc::EPOLLEXCLUSIVE as u32
        } else {
            0
        };
        ctl(libc::EPOLL_CTL_ADD, events | excl)
    }

    /// What the transport watches on a connection that is not paused: its
    /// input unless a program thread pumps it, room to write while bytes
    /// wait (`out`).
    pub(super) fn events_for(c: &Conn, out: bool) -> u32 {
        let input = if c.state.is_delegated() { 0 } else { EV_IN };
        input | if out { EV_OUT } else { 0 }
    }

    /// Watches `c` for room to write (`on`) or no longer. Called with
    /// `c.out` locked.
    pub(super) fn watch_out(&self, c: &Conn, on: bool) {
        let _ = self.register(c, Self::events_for(c, on));
    }

    /// Gives `c`'s input to the program threads that watch it (`on`, see
    /// `Backend::input_watched`), or takes it back. Under the fd's life
    /// lock, as `ConnState::keep`: a thread that blocks on the socket while
    /// another adds it to an epoll set never sleeps with nobody reading.
    pub(super) fn delegate(&self, c: &Conn, on: bool) {
        let out = c.out.lock();
        if on && c.state.share() {
            // From now on exclusive (see `register`): made anew.
            let w = c.watching.load(Ordering::Acquire);
            if w != 0 {
                let _ = self.register(c, 0);
                let _ = self.register(c, w);
            }
        }
        if c.state.delegate(on) {
            let _ = self.register(c, Self::events_for(c, !out.is_empty()));
        }
    }

    /// Starts (`on`) or stops watching `c`'s kernel socket.
    pub(super) fn watch(&self, c: &Conn, on: bool) {
        let out = c.out.lock();
        let events = match (on, out.is_empty()) {
            (false, _) => 0,
            (true, true) => EV_IN,
            (true, false) => EV_IN | EV_OUT,
        };
        let _ = self.register(c, events);
    }

    pub(super) fn remove(&self, c: &Conn) {
        let fd_life = c.out.lock();
        if c.state.is_closed() {
            return;
        }
        let _ = self.register(c, 0);
        c.state.close();
        // An IP client that never heard ACCEPT is no longer to be paired.
        if matches!(c.role, Role::Stream) && c.handle() == c.listener && !c.state.is_up() {
            super::unix::forget_ip_twin(c);
        }
        self.conns.lock().remove(&c.kfd);
        close_kfd(c.kfd);
        drop(fd_life);
        // Senders waiting for room on a link that is gone offer their
        // datagram again (and find nobody there: dropped, as UDP does).
        for h in core::mem::take(&mut *c.blocked.lock()) {
            let _ = upcall::writable(h);
        }
    }

    pub(super) fn run(&self, epfd: i32) {
        let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 64];
        loop {
            let ms = if !self.paused.lock().is_empty() {
                1
            } else if !self.direct.lock().is_empty() {
                super::receive::DIRECT_IDLE_MS
            } else {
                -1
            };
            let n = kernel::epoll_wait(epfd, &mut evs, ms);
            if ms >= 0 {
                self.resume_paused();
                self.reclaim_direct();
            }
            let Ok(n) = n else {
                continue;
            };
            for ev in &evs[..n] {
                let fd = ev.u64 as i32;
                if fd == self.bell.load(Ordering::Acquire) {
                    crate::platform::eventfd_drain(fd);
                    continue;
                }
                if super::status::is_endpoint(fd) {
                    super::status::answer(fd);
                    continue;
                }
                let Some(c) = self.conns.lock().get(&fd).cloned() else {
                    continue;
                };
                if ev.events & libc::EPOLLOUT as u32 != 0 {
                    self.flush(&c);
                }
                if ev.events
                    & (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32
                    != 0
                {
                    match c.role {
                        Role::Listener | Role::Dgram => self.accept(&c),
                        Role::Stream => self.read_stream(&c),
                        Role::DgramIn => self.read_datagrams(&c),
                        Role::DgramOut => self.link_readable(&c),
                    }
                }
            }
        }
    }

    pub(super) fn flush(&self, c: &Conn) {
        let mut out = c.out.lock();
        if c.state.is_closed() {
            return;
        }
        while !out.is_empty() {
            let (a, b) = out.as_slices();
            match send_gather(c.kfd, &[a, b], 0) {
                Ok(n) if n > 0 => {
                    out.drain(..n);
                }
                Err(EAGAIN) | Ok(_) => break,
                Err(_) => {
                    out.clear();
                    break;
                }
            }
        }
        if out.is_empty() {
            let woken = core::mem::take(&mut *c.blocked.lock());
            if !woken.is_empty() {
                drop(out);
                for h in woken {
                    let _ = upcall::writable(h);
                }
                out = c.out.lock();
                if c.state.is_closed() {
                    return;
                }
            }
        }
        if out.is_empty() {
            if c.state.is_closing() {
                drop(out);
                self.remove(c);
            } else {
                // Still under the lock: the fd is ours.
                self.watch_out(c, false);
            }
        }
    }

    pub(super) fn accept(&self, l: &Conn) {
        // A datagram port's links are accepted one thread at a time, each
        // added before the lock goes: `settle_port` then finds every link
        // accepted before it looked.
        let _one = matches!(l.role, Role::Dgram).then(|| LINK_ACCEPT.lock());
        loop {
            let Ok(k) = kernel::accept(l.kfd) else {
                return;
            };
            if !peer_is_us(k) {
                // Another user's process: it sees its connection closed.
                close_kfd(k);
                continue;
            }
            let c = if matches!(l.role, Role::Dgram) {
                // A sender's link to this datagram port.
                let c = Arc::new(Conn {
                    port: l.port,
                    ..Conn::new(k, Role::DgramIn, SockHandle(0), SockHandle(0))
                });
                let mut links = l.links.lock();
                links.retain(|x| !x.state.is_closed());
                links.push(c.clone());
                c
            } else {
                Arc::new(Conn {
                    listener_sock: l.sock.lock().clone(),
                    ..Conn::new(k, Role::Stream, SockHandle(0), l.handle())
                })
            };
            let _ = self.add(c);
        }
    }

    /// The peer's socket went away: end-of-stream if it had said so,
    /// otherwise a reset.
    pub(super) fn lost(&self, c: &Conn) {
        if !c.state.end_once() {
            return;
        }
        if c.state.got_fin() {
            if matches!(c.role, Role::Stream) && self.is_unix(c) {
                // The peer's socket closed (its FIN, then its end): Linux
                // shuts the survivor of an AF_UNIX connection both ways.
                let _ = upcall::hangup(c.handle());
            }
            self.remove(c);
        } else if c.state.is_up()
            && !c.state.got_rst()
            && matches!(c.role, Role::Stream)
            && self.is_unix(c)
        {
            // The peer's process ended without closing (killed): Linux
            // closes its sockets then, so the survivor reads end-of-file
            // (a reset only if the dead one left data unread, which
            // nobody here can know) and is shut both ways.
            let h = c.handle();
            let end = c.rx_end.load(Ordering::Acquire);
            let fin =
                crate::backend::wire::Fragment::stream(end, crate::backend::wire::FLAG_FIN, &[]);
            let _ = upcall::deliver(h, &fin);
            let _ = upcall::hangup(h);
            self.remove(c);
        } else {
            self.refuse_or_reset(c);
        }
    }

    /// Ends connection `c` on a peer's fault (it vanished, or broke the
    /// protocol): an established connection is reset, one still being set
    /// up is refused (which also frees its place in a listener's backlog).
    pub(super) fn fail(&self, c: &Conn) {
        if c.state.end_once() {
            self.refuse_or_reset(c);
        }
    }

    /// Whether connection `c` serves an AF_UNIX socket.
    pub(super) fn is_unix(&self, c: &Conn) -> bool {
        c.sock
            .lock()
            .upgrade()
            .is_some_and(|x| x.info.domain == AF_UNIX)
    }

    pub(super) fn refuse_or_reset(&self, c: &Conn) {
        let h = c.handle();
        if c.state.is_up() {
            let _ = upcall::reset(h, ECONNRESET);
        } else if h.0 != 0 {
            let _ = upcall::refused(h, ECONNREFUSED);
        }
        self.remove(c);
    }
}

/// How long a process that exits waits for its queued bytes to leave.
pub(super) const EXIT_FLUSH: core::time::Duration = core::time::Duration::from_secs(5);

/// At exit(): the transport thread dies with the process, so bytes still
/// queued for a peer (a sender may queue up to the peer's window, several
/// MiB, more than the kernel socket holds) are written out here, with the
/// FINs of closed sockets among them; the kernel then delivers what it
/// holds before the end-of-stream, as it does after a TCP close.
extern "C" fn flush_at_exit() {
    crate::platform::guard((), || {
        transport().flush_all(crate::platform::deadline_after(EXIT_FLUSH))
    })
}

impl Transport {
    /// Writes out every queued byte, waiting for room until `deadline`.
    pub(super) fn flush_all(&self, deadline: Option<crate::platform::Deadline>) {
        // Not under `conns`: a queue's lock is taken before it (`remove`).
        let all: Vec<Arc<Conn>> = self.conns.lock().values().cloned().collect();
        for c in all {
            if c.out.lock().is_empty() {
                continue;
            }
            loop {
                self.flush(&c);
                if c.out.lock().is_empty() || c.state.is_closed() {
                    break;
                }
                let left = deadline.map_or(core::time::Duration::ZERO, crate::platform::time_left);
                if left.is_zero() {
                    return;
                }
                kernel::poll_out(c.kfd, left.as_millis().clamp(1, 100) as i32);
            }
        }
    }
}

pub(super) static TRANSPORT: Transport = Transport {
    epfd: AtomicI32::new(-1),
    conns: Mutex::new(BTreeMap::new()),
    paused: Mutex::new(Vec::new()),
    direct: Mutex::new(Vec::new()),
    direct_looked: core::sync::atomic::AtomicU64::new(0),
    bell: AtomicI32::new(-1),
};

pub(super) fn transport() -> &'static Transport {
    &TRANSPORT
}

//! Sockets whose backend keeps their bytes (`SharedStreams`, SHARED.md):
//! the frontend's Socket Buffer stays empty and recv, send, accept and
//! readiness ask the backend, which waits as the call allows. What stays
//! here is per call: the flags, the socket's timeouts and O_NONBLOCK,
//! scatter/gather, MSG_WAITALL, SHUT_RD, and the errno rules.

use alloc::sync::Arc;
use core::sync::atomic::Ordering;

use super::io::RecvInfo;
use super::*;
use crate::backend::contract::{Block, SharedStreams};

/// What a stream read of `n` bytes produced, stamped when `stamp_ns` is
/// the arrival SO_TIMESTAMP* reports.
fn bytes_at(n: usize, stamp_ns: u64) -> RecvInfo {
    RecvInfo {
        ret: n,
        stamp_ns,
        ..Default::default()
    }
}

impl Socket {
    /// The backend's shared buffers and this socket's view for them, when
    /// the socket is carried that way (one load for every other socket).
    #[inline]
    pub(crate) fn shared(&self) -> Option<(&dyn SharedStreams, SockRef<'_>)> {
        let b = self.binding()?;
        let sh = b.backend.shared()?;
        let r = self.sref(b);
        sh.is_shared(r).then_some((sh, r))
    }

    /// Whether the socket's state lives where a fork child reaches it.
    pub(crate) fn is_shared(&self) -> bool {
        self.shared().is_some()
    }

    pub(super) fn block_for(
        &self,
        flags: i32,
        deadline: Option<crate::platform::Deadline>,
    ) -> Block {
        if flags & MSG_DONTWAIT != 0 || self.nonblocking() {
            Block::Never
        } else {
            deadline.map_or(Block::Forever, Block::Until)
        }
    }

    /// recv() of a shared socket, or None when it is not one.
    pub(crate) fn recv_shared(
        &self,
        bufs: &mut [&mut [u8]],
        flags: i32,
    ) -> Option<Result<RecvInfo, Errno>> {
        let (sh, r) = self.shared()?;
        let stamp = self.has(F_RCVTSTAMP);
        let bytes = |n: usize| {
            let at = if stamp && n > 0 {
                self.tcp.last_arrival_ns()
            } else {
                0
            };
            bytes_at(n, at)
        };
        if flags & MSG_ERRQUEUE != 0 {
            return Some(Err(EINVAL));
        }
        if !self.flags().is(Phase::Connected) {
            return Some(Err(ENOTCONN));
        }
        self.urgent_sync(sh, r);
        if flags & MSG_OOB != 0 {
            return Some(self.recv_urgent_shared(sh, r, bufs, flags));
        }
        let peek = flags & MSG_PEEK != 0;
        let waitall = flags & MSG_WAITALL != 0 && !peek;
        let deadline = self.rcv_deadline();
        let first = self.block_for(flags, deadline);
        if peek {
            let off = self.peek_off.load(Ordering::Relaxed);
            if off >= 0 {
                return Some(self.peek_shared_at(sh, r, bufs, off as usize, first));
            }
        }
        // A read waits for SO_RCVLOWAT's bytes (or as many as fit), as
        // tcp_recvmsg's target; MSG_WAITALL for all of them.
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let target = if waitall {
            total
        } else {
            (self.rcv_lowat.load(Ordering::Relaxed) as usize).min(total)
        };
        let mut got = 0;
        for buf in bufs.iter_mut().filter(|b| !b.is_empty()) {
            let mut at = 0;
            while at < buf.len() {
                // Only the first piece waits, unless MSG_WAITALL or the
                // low-water mark asks for more; a peek looks at the first
                // buffer's bytes only.
                let block = if got == 0 || got < target {
                    first
                } else {
                    Block::Never
                };
                if self.has(F_RD_SHUT) && block == Block::Never && got > 0 {
                    break;
                }
                let n = match sh.recv(r, &mut buf[at..], peek, block) {
                    Ok(0) => return Some(Ok(bytes(got))),
                    Ok(n) => n,
                    Err(EAGAIN) if got > 0 => return Some(Ok(bytes(got))),
                    Err(EAGAIN) if self.has(F_RD_SHUT) => return Some(Ok(bytes(0))),
                    Err(e) => return Some(if got > 0 { Ok(bytes(got)) } else { Err(e) }),
                };
                at += n;
                got += n;
                if peek {
                    self.shared_arrived(n as u64, 0);
                    return Some(Ok(bytes(got)));
                }
                self.shared_arrived(0, n as u64);
                self.peek_off_back(n);
                if got >= target && at < buf.len() {
                    // What was there is taken; the rest of this buffer
                    // need not wait.
                    break;
                }
            }
        }
        Some(Ok(bytes(got)))
    }

    /// A MSG_PEEK under SO_PEEK_OFF: the bytes from `off` past the next
    /// one, into the first buffer; the offset then moves past them. The
    /// ring's peek starts at its head, so this peeks `off` more and drops
    /// them; a wait for bytes past `off` naps (1 ms) between looks.
    fn peek_shared_at(
        &self,
        sh: &dyn SharedStreams,
        r: SockRef<'_>,
        bufs: &mut [&mut [u8]],
        off: usize,
        block: Block,
    ) -> Result<RecvInfo, Errno> {
        let Some(buf) = bufs.iter_mut().find(|b| !b.is_empty()) else {
            return Ok(bytes_at(0, 0));
        };
        let mut tmp = alloc::vec![0u8; off + buf.len()];
        loop {
            let n = sh.recv(r, &mut tmp, true, block)?;
            if n == 0 || n > off {
                let n = n.saturating_sub(off);
                buf[..n].copy_from_slice(&tmp[off..off + n]);
                self.peek_off.fetch_add(n as i32, Ordering::Relaxed);
                let at = if n > 0 && self.has(F_RCVTSTAMP) {
                    self.tcp.last_arrival_ns()
                } else {
                    0
                };
                return Ok(bytes_at(n, at));
            }
            let until = match block {
                Block::Never => return Err(EAGAIN),
                Block::Until(d) if crate::platform::now() >= d => return Err(EAGAIN),
                Block::Until(d) => Some(d),
                Block::Forever => None,
            };
            let nap = crate::platform::deadline_after(core::time::Duration::from_millis(1));
            let nap = match (nap, until) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let word = core::sync::atomic::AtomicU32::new(0);
            if crate::platform::futex_sleep(&word, 0, nap) == crate::platform::Slept::Interrupted {
                return Err(EINTR);
            }
        }
    }

    /// Notes what a shared socket's reader found (`TcpCounters::
    /// shared_arrived`); new bytes are stamped for SO_TIMESTAMP* when this
    /// process first sees them, the nearest it can come to the kernel's
    /// stamp at queueing.
    fn shared_arrived(&self, inq: u64, read: u64) {
        if self.tcp.shared_arrived(inq, read) && self.has(F_RCVTSTAMP) {
            self.tcp.arrived_now();
        }
    }

    /// TCP_INFO's receive counters of a shared socket (data segments in,
    /// bytes received, the receive window left), or None when it is not
    /// one.
    pub(super) fn shared_counts(&self) -> Option<(u32, u64, u64)> {
        let (sh, r) = self.shared()?;
        let (inq, _) = sh.queued(r);
        self.shared_arrived(inq, 0);
        let (arrivals, seen) = self.tcp.shared_rx();
        Some((arrivals, seen, sh.windows(r).0))
    }

    /// TCP_INFO's send window of a shared socket: the room in the peer's
    /// ring (None when it is not one).
    pub(super) fn shared_snd_wnd(&self) -> Option<u64> {
        let (sh, r) = self.shared()?;
        Some(sh.windows(r).1)
    }

    /// Connections waiting on a shared listener (TCP_INFO), or None when
    /// it is not one or its backend does not tell.
    pub(super) fn shared_waiting(&self) -> Option<u32> {
        let (sh, r) = self.shared()?;
        sh.waiting(r)
    }

    /// Whether a shared socket's peer shut its writing (TCP_INFO's state),
    /// or None when it is not one.
    pub(super) fn shared_fin_received(&self) -> Option<bool> {
        let (sh, r) = self.shared()?;
        Some(sh.readiness(r) & POLLRDHUP != 0)
    }

    /// SIOCINQ of a shared socket, or None when it is not one.
    pub(super) fn shared_inq(&self) -> Option<u64> {
        let (sh, r) = self.shared()?;
        let (inq, _) = sh.queued(r);
        self.shared_arrived(inq, 0);
        Some(inq)
    }

    /// accept() on a shared listener, or None when it is not one.
    pub(crate) fn accept_shared(
        self: &Arc<Self>,
        nonblock: bool,
    ) -> Option<Result<Arc<Socket>, Errno>> {
        let (sh, r) = self.shared()?;
        if self.phase() != Phase::Listening {
            return Some(Err(EINVAL));
        }
        let block = if nonblock || self.nonblocking() {
            Block::Never
        } else {
            self.rcv_deadline().map_or(Block::Forever, Block::Until)
        };
        let state = match sh.accept(r, block) {
            Ok(s) => s,
            Err(e) => return Some(Err(e)),
        };
        let backend = self.binding()?.backend.clone();
        Some(Socket::new(self.info, false).inspect(|child| {
            child.bind_backend(backend, state);
            child.set(F_BOUND);
            child.inherit_from(self);
            // Its handshake was the kernel's accept and the segment's offer:
            // TCP_INFO's round trip is the least it reports (1 us).
            child.tcp.handshake_done();
            let _ = child.go(&[Phase::Idle], Phase::Connected);
        }))
    }

    /// A shared socket watched by poll or epoll for `events`: spends its
    /// doorbells and asks for the next ones, for input always and for room
    /// only when a poller waits for POLLOUT (a room doorbell nobody waits
    /// for costs its reader a system call and this process a wake-up per
    /// message). False when the socket is not shared.
    #[cfg(feature = "std")]
    pub(crate) fn arm_shared(&self, events: i16) -> bool {
        let Some((sh, r)) = self.shared() else {
            return false;
        };
        let _ = sh.wait_fd(r, true, events & (POLLOUT | POLLWRNORM) != 0);
        true
    }

    /// Whether a shared socket's state moved since its readiness was last
    /// looked at (or this was last asked); false for any other socket.
    #[cfg(feature = "std")]
    pub(crate) fn shared_moved(&self) -> bool {
        let Some((sh, r)) = self.shared() else {
            return false;
        };
        match sh.changes(r) {
            Some(now) => self.shared_seen.swap(now, Ordering::AcqRel) != now,
            None => true,
        }
    }

    /// Tells the backend the socket's SO_OOBINLINE while an urgent mark
    /// is ahead (the option is the frontend's; only then does it matter).
    fn urgent_sync(&self, sh: &dyn SharedStreams, r: SockRef<'_>) {
        if sh.has_urgent(r) {
            sh.set_oob_inline(r, self.ctl.lock().opts.oobinline());
        }
    }

    /// recv(MSG_OOB) of a shared socket (tcp_recv_urg): the urgent byte
    /// into the first buffer that has room.
    fn recv_urgent_shared(
        &self,
        sh: &dyn SharedStreams,
        r: SockRef<'_>,
        bufs: &mut [&mut [u8]],
        flags: i32,
    ) -> Result<RecvInfo, Errno> {
        if self.ctl.lock().opts.oobinline() {
            return Err(EINVAL);
        }
        let b = sh.recv_urgent(r, flags & MSG_PEEK != 0)?;
        match bufs.iter_mut().find(|b| !b.is_empty()) {
            Some(buf) => {
                buf[0] = b;
                Ok(bytes_at(1, 0))
            }
            None => Ok(bytes_at(0, 0)),
        }
    }

    /// F_SETOWN of a shared socket: the backend keeps it where the peer's
    /// urgent data finds it (SIGURG).
    pub(crate) fn shared_set_owner(&self, pid: i32) {
        if let Some((sh, r)) = self.shared() {
            sh.set_owner(r, pid);
        }
    }

    /// SIOCATMARK of a shared socket, or None when it is not one.
    pub(crate) fn shared_at_mark(&self) -> Option<bool> {
        let (sh, r) = self.shared()?;
        Some(sh.at_mark(r))
    }

    /// recv() with MSG_TRUNC of a shared socket (the caller's buffer may
    /// be NULL): the bytes go through a scratch buffer and are dropped,
    /// or only counted with MSG_PEEK. None when it is not one.
    pub(crate) fn recv_shared_trunc(&self, len: usize, flags: i32) -> Option<Result<usize, Errno>> {
        self.shared()?;
        let mut scratch = alloc::vec![0u8; len.min(1 << 16)];
        let mut bufs = [&mut scratch[..]];
        Some(
            self.recv_shared(&mut bufs, flags & !MSG_TRUNC)?
                .map(|i| i.ret),
        )
    }

    /// SO_LINGER 0 at close of a shared connection: its end resets.
    pub(crate) fn abort_shared(&self) {
        if let Some((sh, r)) = self.shared() {
            sh.abort(r);
        }
    }

    /// A shared connection's pending error (kept by the backend).
    pub(crate) fn shared_take_error(&self) -> Option<Errno> {
        let (sh, r) = self.shared()?;
        sh.take_error(r)
    }

    /// Whether a shared connection was reset.
    pub(crate) fn shared_was_reset(&self) -> bool {
        self.shared().is_some_and(|(sh, r)| sh.was_reset(r))
    }

    /// poll()'s bits for a shared socket, or None when it is not one.
    pub(crate) fn shared_readiness(&self) -> Option<i16> {
        let (sh, r) = self.shared()?;
        if !matches!(self.phase(), Phase::Connected | Phase::Listening) {
            // Connecting, refused, or never connected: the frontend's own
            // state says it (the backend has no connection yet).
            return None;
        }
        self.urgent_sync(sh, r);
        let queued = self.push_shared_queue();
        // Before the look: a change after it is news to the next pump.
        if let Some(now) = sh.changes(r) {
            self.shared_seen.store(now, Ordering::Release);
        }
        let mut ev = sh.readiness(r);
        if queued && ev & (POLLERR | POLLHUP) == 0 {
            // Bytes wait for the ring: writable while the send queue has
            // room and TCP_NOTSENT_LOWAT is not reached.
            let held = self.unsent();
            if self.queue_writable(held, held) {
                ev |= POLLOUT | POLLWRNORM;
            } else {
                ev &= !(POLLOUT | POLLWRNORM);
            }
        }
        if ev & POLLIN != 0 {
            // Bytes that wait count as arrived (TCP_INFO's segments in).
            let inq = sh.queued(r).0;
            self.shared_arrived(inq, 0);
            // Readable below SO_RCVLOWAT only at the end or an error
            // (tcp_stream_is_readable).
            let lowat = u64::from(self.rcv_lowat.load(Ordering::Relaxed));
            if inq > 0 && inq < lowat && ev & (POLLRDHUP | POLLHUP | POLLERR) == 0 {
                ev &= !(POLLIN | POLLRDNORM);
            }
        }
        if self.has(F_RD_SHUT) {
            ev |= POLLIN | POLLRDNORM | POLLRDHUP;
            // tcp_poll: shut both ways here is hung up.
            if self.has(F_WR_SHUT) {
                ev |= POLLHUP;
            }
        }
        Some(ev)
    }

    /// The kernel fd a poll of a shared socket sleeps on (see
    /// `SharedStreams::wait_fd`), having asked the backend to signal it.
    #[cfg(feature = "std")]
    pub(crate) fn shared_wait_fd(&self, events: i16) -> Option<i32> {
        let (sh, r) = self.shared()?;
        sh.wait_fd(
            r,
            events & (POLLIN | POLLRDNORM) != 0,
            events & (POLLOUT | POLLWRNORM) != 0,
        )
    }

    /// What carries this shared socket across exec (see
    /// `SharedStreams::exec_fds`).
    #[cfg(feature = "std")]
    pub(crate) fn shared_exec_fds(&self) -> Option<(i32, i32)> {
        let (sh, r) = self.shared()?;
        sh.exec_fds(r)
    }

    /// A socket its backend found inherited across exec, bound to it and
    /// connected (or listening), holding one reference for its fd.
    #[cfg(feature = "std")]
    pub(crate) fn adopted(
        info: SockInfo,
        backend: Arc<dyn crate::backend::contract::Backend>,
        state: crate::backend::contract::SockState,
        listening: bool,
    ) -> Result<Arc<Socket>, Errno> {
        let s = Socket::new(info, false)?;
        s.bind_backend(backend, state);
        s.set(F_BOUND);
        let to = if listening {
            Phase::Listening
        } else {
            Phase::Connected
        };
        let _ = s.go(&[Phase::Idle], to);
        Ok(s)
    }
}

//! Sockets whose backend keeps their bytes (`SharedStreams`, SHARED.md):
//! the frontend's Socket Buffer stays empty and recv, send, accept and
//! readiness ask the backend, which waits as the call allows. What stays
//! here is per call: the flags, the socket's timeouts and O_NONBLOCK,
//! scatter/gather, MSG_WAITALL, SHUT_RD, and the errno rules.

use alloc::sync::Arc;

use super::io::RecvInfo;
use super::*;
use crate::backend::contract::{Block, SharedStreams};

/// What a stream read of `n` bytes produced.
fn bytes(n: usize) -> RecvInfo {
    RecvInfo {
        ret: n,
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

    fn block_for(&self, flags: i32, deadline: Option<crate::platform::Deadline>) -> Block {
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
        // After SHUT_RD nothing more is waited for: what is there, then 0.
        let first = if self.has(F_RD_SHUT) {
            Block::Never
        } else {
            self.block_for(flags, self.rcv_deadline())
        };
        let mut got = 0;
        for buf in bufs.iter_mut().filter(|b| !b.is_empty()) {
            let mut at = 0;
            while at < buf.len() {
                // Only the first piece waits, unless MSG_WAITALL asks for
                // everything; a peek looks at the first buffer's bytes only.
                let block = if got == 0 || waitall {
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
                    return Some(Ok(bytes(got)));
                }
                if !waitall && at < buf.len() {
                    // What was there is taken; the rest of this buffer
                    // need not wait.
                    break;
                }
            }
        }
        Some(Ok(bytes(got)))
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
                Ok(bytes(1))
            }
            None => Ok(bytes(0)),
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

    /// send() of a shared socket, or None when it is not one.
    pub(crate) fn send_shared(&self, bufs: &[&[u8]], flags: i32) -> Option<Result<usize, Errno>> {
        let (sh, r) = self.shared()?;
        let f = self.flags();
        if f.has(F_WR_SHUT) {
            return Some(Err(EPIPE));
        }
        if !f.is(Phase::Connected) {
            // sk_stream_wait_connect: a pending error first (a connection
            // connect(AF_UNSPEC) reset is ECONNRESET once).
            return Some(Err(self.take_error().unwrap_or(EPIPE)));
        }
        let block = self.block_for(flags, self.snd_deadline());
        let mut sent = 0;
        // MSG_OOB: the call's last byte is the urgent one.
        let last = bufs.iter().rposition(|b| !b.is_empty());
        for (i, buf) in bufs.iter().enumerate().filter(|(_, b)| !b.is_empty()) {
            let went = if flags & MSG_OOB != 0 && Some(i) == last {
                sh.send_urgent(r, buf, block)
            } else {
                sh.send(r, buf, block)
            };
            match went {
                Ok(n) => {
                    sent += n;
                    if n < buf.len() {
                        break;
                    }
                }
                Err(e) => return Some(if sent > 0 { Ok(sent) } else { Err(e) }),
            }
        }
        Some(Ok(sent))
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
            // Its handshake was the kernel's accept and the segment's offer:
            // TCP_INFO's round trip is the least it reports (1 us).
            child.tcp.handshake_done();
            let _ = child.go(&[Phase::Idle], Phase::Connected);
        }))
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
        let mut ev = sh.readiness(r);
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

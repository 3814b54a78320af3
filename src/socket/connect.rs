//! Addressing and connection management: bind, listen, connect, accept,
//! shutdown, and the names of a socket.

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::sync::atomic::Ordering;

use super::*;
use crate::backend::contract::ClaimOp;
use crate::backend::registry;

/// Linux's net.core.somaxconn: the largest backlog listen() honours.
pub const SOMAXCONN: u32 = 4096;

impl Socket {
    /// Selects a backend for this socket at `op` with `addr` if none carries
    /// it yet; returns the binding.
    pub(crate) fn select(&self, op: ClaimOp, addr: &SockAddr) -> Result<&Binding, Errno> {
        if let Some(b) = self.binding() {
            return Ok(b);
        }
        let (backend, state) = registry::select(self.handle, &self.info, op, addr)?;
        if !self.bind_backend(backend.clone(), state.clone()) {
            // Another thread selected first; the loser tells its backend the
            // claim is void, with the state it returned so it can free it.
            backend.close(SockRef {
                handle: self.handle,
                state: &state,
                info: self.info,
                opts: Default::default(),
            });
        }
        self.binding().ok_or(EINVAL)
    }

    fn check_family(&self, addr: &SockAddr) -> Result<(), Errno> {
        if addr.family() != self.info.domain {
            return Err(if self.info.domain == AF_UNIX {
                EINVAL
            } else {
                EAFNOSUPPORT
            });
        }
        Ok(())
    }

    /// bind().
    pub fn bind(&self, addr: &SockAddr) -> Result<(), Errno> {
        let checked;
        let addr = if !self.is_ip() {
            self.check_family(addr)?;
            if self.has(F_BOUND) {
                // unix_autobind of a bound socket does nothing and
                // succeeds: an address of the family alone asks for one.
                if self.info.domain == AF_UNIX && addr.len() == 2 {
                    return Ok(());
                }
                return Err(EINVAL);
            }
            addr
        } else {
            checked = self.inet_bind_addr(addr)?;
            &checked
        };
        let b = self.select(ClaimOp::Bind, addr)?;
        if self.has(F_BOUND) {
            return Err(EINVAL);
        }
        b.backend.bind(self.sref(b), addr)?;
        if self.is_ip() {
            let ep = crate::addr::IpEp::parse(addr, self.info.domain).ok();
            self.ctl.lock().bound_ip = ep.filter(|e| !e.is_wild()).map(|e| e.ip);
        }
        self.set(F_BOUND);
        Ok(())
    }

    /// listen().
    pub fn listen(&self, backlog: i32) -> Result<(), Errno> {
        if !self.is_stream() {
            return Err(EOPNOTSUPP);
        }
        let f = self.flags();
        if f.is(Phase::Connected) || f.is(Phase::Connecting) {
            return Err(EINVAL);
        }
        let backlog = if backlog < 0 {
            SOMAXCONN
        } else {
            (backlog as u32).min(SOMAXCONN)
        };
        if f.is(Phase::Listening) {
            self.ctl.lock().backlog = backlog;
            return Ok(());
        }
        let b = self.select(ClaimOp::Listen, &SockAddr::unspecified(self.info.domain))?;
        if self.info.domain == AF_UNIX && !self.has(F_BOUND) {
            // Linux: listen() on an unbound AF_UNIX socket is EINVAL.
            return Err(EINVAL);
        }
        self.ctl.lock().backlog = backlog;
        b.backend.listen(self.sref(b), backlog)?;
        self.set(F_BOUND);
        // A concurrent connect() that got here first keeps its phase.
        self.go(&[Phase::Idle, Phase::Listening], Phase::Listening)
            .map_err(|_| EINVAL)
    }

    /// connect(). Stream sockets wait (or return EINPROGRESS); datagram
    /// sockets set their default peer.
    pub fn connect(&self, addr: &SockAddr) -> Result<(), Errno> {
        if !self.is_stream() {
            return self.connect_dgram(addr);
        }
        // AF_UNIX validates the address first (unix_stream_connect); TCP
        // looks at the socket's state first (__inet_stream_connect), so a
        // listening or connected socket is EISCONN whatever the address.
        let ip = self.info.domain != AF_UNIX;
        if !ip {
            self.check_family(addr)?;
            self.passcred_autobind();
        } else if addr.family() == AF_UNSPEC {
            // __inet_stream_connect: AF_UNSPEC disconnects, in any state.
            return self.disconnect();
        }
        self.ctl.lock().released = None;
        let f = self.flags();
        if f.is(Phase::Listening) {
            return Err(if self.info.domain == AF_UNIX {
                EINVAL
            } else {
                EISCONN
            });
        }
        if f.is(Phase::Connected) {
            if ip && core::mem::take(&mut self.ctl.lock().connect_unreported) {
                return Ok(());
            }
            return Err(EISCONN);
        }
        if f.is(Phase::Connecting) {
            if self.nonblocking() {
                return Err(EALREADY);
            }
            return self.finish_connect();
        }
        if ip && {
            let mut c = self.ctl.lock();
            c.connect_unreported = false;
            core::mem::take(&mut c.connect_failed)
        } {
            // Reported, the socket is disconnected (tcp_disconnect): no
            // longer shut, only hung up as any unconnected TCP socket.
            self.clear(F_RD_SHUT | F_WR_SHUT);
            // Linux's __inet_stream_connect on a socket whose connect
            // failed meanwhile: sock_error(), or ECONNABORTED; the next
            // connect() starts anew.
            return Err(self.take_error().unwrap_or(ECONNABORTED));
        }
        let checked;
        let addr = if self.is_ip() {
            checked = self.inet_connect_addr(addr)?;
            &checked
        } else {
            if ip {
                self.check_family(addr)?;
            }
            addr
        };
        let b = self.select(ClaimOp::Connect, addr)?;
        // A refusal left over from an earlier attempt belongs to that one,
        // and so does the shutdown it left (see `connect_failed`).
        self.clear(F_ERROR | F_RD_SHUT | F_WR_SHUT);
        {
            let mut ctl = self.ctl.lock();
            ctl.so_error = 0;
            ctl.connect_failed = false;
        }
        match self.go(&[Phase::Idle], Phase::Connecting) {
            Ok(()) => self.tcp.handshake_started(true),
            // Another thread's connect() got there first.
            Err(Phase::Connecting) => return Err(EALREADY),
            Err(_) => return Err(EISCONN),
        }
        let deadline = self.snd_deadline();
        loop {
            match b.backend.connect(self.sref(b), addr) {
                Ok(()) => break,
                Err(EAGAIN) if !self.nonblocking() && self.info.domain == AF_UNIX => {
                    // A full AF_UNIX listener: wait a little and ask again.
                    let step =
                        crate::platform::deadline_after(core::time::Duration::from_millis(1));
                    self.wait.wait_until(|| self.has(F_CLOSED), step);
                    if self.has(F_CLOSED) || deadline.is_some_and(|d| crate::platform::now() >= d) {
                        let _ = self.go(&[Phase::Connecting], Phase::Idle);
                        return Err(if self.has(F_CLOSED) { EBADF } else { EAGAIN });
                    }
                }
                Err(e) => {
                    let _ = self.go(&[Phase::Connecting], Phase::Idle);
                    return Err(e);
                }
            }
        }
        self.set(F_BOUND);
        if self.nonblocking() {
            if self.info.domain == AF_UNIX {
                // AF_UNIX connects synchronously on Linux.
                if self.phase() == Phase::Connected {
                    return Ok(());
                }
                self.ctl.lock().connect_failed = false;
                if let Some(e) = self.take_error() {
                    return Err(e);
                }
                return Err(EINPROGRESS);
            }
            self.ctl.lock().connect_unreported = true;
            return Err(EINPROGRESS);
        }
        self.finish_connect()
    }

    /// TCP's connect(AF_UNSPEC), Linux's `tcp_disconnect`: a listener
    /// stops listening (as shutdown() of it); a connection is reset (the
    /// peer reads ECONNRESET, then end-of-stream) and a connect in
    /// progress given up, the socket's own next call reports ECONNRESET
    /// (`sk_err`), and it is a new, unconnected socket that may connect
    /// again: its stream, send offsets, credit, flags and TCP counters
    /// start anew, and its port stays only if the program bound it
    /// (`Backend::disconnect`).
    fn disconnect(&self) -> Result<(), Errno> {
        let f = self.flags();
        let b = match (f.phase(), self.binding()) {
            (Phase::Listening, _) => return self.shutdown(SHUT_RD),
            (Phase::Idle, _) | (_, None) => return Ok(()),
            (_, Some(b)) => b,
        };
        let connected = f.is(Phase::Connected);
        // tcp_need_reset: an established connection, or one half closed;
        // not one already reset, or closed both ways.
        let reset = connected && self.tcp_state() != super::tcp_info::ST_CLOSE;
        // A shared socket's connection is its backend's alone (its reset
        // too): it stays as it is unless the backend can make it new.
        let shared = self.is_shared();
        if reset && !shared {
            self.send_control(b, FLAG_RST);
        }
        let was = b.backend.local_addr(self.sref(b));
        if let Err(e) = b.backend.disconnect(self.sref(b)) {
            if reset && !shared {
                // The backend cannot make the socket new: it stays a reset
                // connection (connect() again is EISCONN).
                self.ctl.lock().so_error = ECONNRESET;
                self.set(F_RESET | F_ERROR);
                self.wait.notify(-1);
                return Ok(());
            }
            return Err(if e == EOPNOTSUPP { EISCONN } else { e });
        }
        self.restart_stream();
        {
            let mut c = self.ctl.lock();
            c.connect_failed = false;
            c.connect_unreported = false;
            c.so_error = if reset || f.is(Phase::Connecting) {
                ECONNRESET
            } else {
                0
            };
        }
        let mut gone = F_RESET | F_FIN_SENT | F_RD_SHUT | F_WR_SHUT | F_ERROR;
        if b.backend.local_addr(self.sref(b)).is_none() {
            // The port went back (not the program's own: SOCK_BINDPORT_LOCK).
            gone |= F_BOUND;
            // The address goes too (inet_reset_saddr) unless the program
            // bound it; the port is still the name's.
            let fam = self.info.domain;
            let mut c = self.ctl.lock();
            let bound_ip = c.bound_ip;
            c.released = was.and_then(|w| {
                let port = crate::addr::IpEp::parse(&w, fam).ok()?.port;
                let mut any = crate::addr::IpEp::parse(&SockAddr::unspecified(fam), fam).ok()?;
                if let Some(ip) = bound_ip {
                    any.ip = ip;
                }
                Some(Box::new(crate::addr::IpEp { port, ..any }.to_sockaddr(fam)))
            });
        }
        self.clear(gone);
        let err = if self.ctl.lock().so_error != 0 {
            F_ERROR
        } else {
            0
        };
        let _ = self
            .state
            .go_setting(&[Phase::Connected, Phase::Connecting], Phase::Idle, err);
        self.wait.notify(-1);
        Ok(())
    }

    /// The connection's stream state as a new socket's: the receive
    /// buffer, the send offsets (what TCP_CORK held goes too) and credit,
    /// the window told, the TCP counters.
    fn restart_stream(&self) {
        {
            let mut tx = self.tx.lock();
            tx.next = 0;
            tx.held.clear();
            self.tx_next.store(0, Ordering::Release);
            self.tx_limit.store(0, Ordering::Release);
        }
        if let Rx::Stream(sb) = self.rx() {
            let _rx = self.rx_lock.lock();
            sb.restart(0);
        }
        self.advertised.store(0, Ordering::Relaxed);
        self.tcp.restart();
    }

    fn finish_connect(&self) -> Result<(), Errno> {
        let deadline = self.snd_deadline();
        let w = self.block_until(
            || {
                let f = self.flags();
                !f.is(Phase::Connecting) || f.has(F_CLOSED)
            },
            deadline,
        );
        if self.phase() == Phase::Connected {
            self.ctl.lock().connect_unreported = false;
            return Ok(());
        }
        if self.phase() != Phase::Connecting {
            // This call reports the failure: the next connect() starts anew,
            // and the socket is disconnected, as in connect() above.
            self.ctl.lock().connect_failed = false;
            if self.info.domain != AF_UNIX {
                self.clear(F_RD_SHUT | F_WR_SHUT);
            }
        }
        if let Some(e) = self.take_error() {
            return Err(e);
        }
        if w != Waited::Ready && self.info.domain != AF_UNIX {
            // The connection goes on: poll, then connect() reports it.
            self.ctl.lock().connect_unreported = true;
        }
        if w == Waited::TimedOut {
            return Err(EINPROGRESS);
        }
        if w == Waited::Interrupted {
            return Err(EINTR);
        }
        if self.has(F_CLOSED) {
            return Err(EBADF);
        }
        Err(ECONNREFUSED)
    }

    fn connect_dgram(&self, addr: &SockAddr) -> Result<(), Errno> {
        if addr.family() == AF_UNSPEC {
            // Dissolve the association.
            let _ = self.go(&[Phase::Connected], Phase::Idle);
            if let Some(b) = self.binding() {
                b.backend.connect(self.sref(b), addr)?;
            }
            return Ok(());
        }
        let checked;
        let addr = if !self.is_ip() {
            self.check_family(addr)?;
            self.passcred_autobind();
            addr
        } else {
            match self
                .inet_connect_addr(addr)
                .and_then(|a| self.check_group_dest(&a).map(|()| a))
            {
                Ok(a) => checked = a,
                Err(e) => {
                    self.autobind_anyway();
                    return Err(e);
                }
            }
            &checked
        };
        let b = self.select(ClaimOp::Connect, addr)?;
        b.backend.connect(self.sref(b), addr)?;
        self.set(F_BOUND);
        let _ = self.go(&[Phase::Idle, Phase::Connected], Phase::Connected);
        Ok(())
    }

    /// accept(): the next established connection.
    pub fn accept(self: &Arc<Self>, nonblock: bool) -> Result<Arc<Socket>, Errno> {
        if !self.is_stream() {
            return Err(EOPNOTSUPP);
        }
        if let Some(r) = self.accept_shared(nonblock) {
            return r;
        }
        let deadline = self.rcv_deadline();
        loop {
            if self.phase() != Phase::Listening {
                return Err(EINVAL);
            }
            let child = {
                let mut ctl = self.ctl.lock();
                let c = Socket::take_acceptable(&mut ctl);
                if c.is_some() {
                    self.accept_len.fetch_sub(1, Ordering::AcqRel);
                }
                c
            };
            if let Some(c) = child {
                c.ctl.lock().opts.set_unaccepted(false);
                if let Some(b) = self.binding() {
                    b.backend.accepted(self.sref(b));
                }
                return Ok(c);
            }
            if self.has(F_CLOSED) {
                return Err(EBADF);
            }
            if nonblock || self.nonblocking() {
                return Err(EAGAIN);
            }
            let w = self.wait.wait_until(
                || {
                    self.accept_len.load(Ordering::Acquire) > 0 || {
                        let f = self.flags();
                        !f.is(Phase::Listening) || f.has(F_CLOSED)
                    }
                },
                deadline,
            );
            match w {
                Waited::TimedOut => return Err(EAGAIN),
                Waited::Interrupted => return Err(EINTR),
                Waited::Ready => {}
            }
        }
    }

    /// shutdown().
    pub fn shutdown(&self, how: i32) -> Result<(), Errno> {
        if !(SHUT_RD..=SHUT_RDWR).contains(&how) {
            return Err(EINVAL);
        }
        let f = self.flags();
        if f.is(Phase::Listening) {
            if how != SHUT_WR {
                // Linux disconnects a listener (inet_csk_listen_stop): it
                // stops listening, the connections queued on it are reset,
                // blocked accept()s return.
                let _ = self.go(&[Phase::Listening], Phase::Idle);
                if self.is_shared() {
                    if let Some(b) = self.binding() {
                        let _ = b.backend.shutdown(self.sref(b), how);
                    }
                }
                let queued = core::mem::take(&mut self.ctl.lock().accept_q);
                self.accept_len.store(0, Ordering::Release);
                for c in queued {
                    c.abort();
                }
                self.wait.notify(-1);
            }
            return Ok(());
        }
        let rd = how == SHUT_RD || how == SHUT_RDWR;
        let wr = how == SHUT_WR || how == SHUT_RDWR;
        let connected = f.is(Phase::Connected);
        if rd {
            self.set(F_RD_SHUT);
        }
        if wr {
            self.set(F_WR_SHUT);
            // Wake a sender blocked for credit first: it holds the send
            // side, which send_fin below needs.
            self.wait.notify(-1);
        }
        if !connected {
            self.wait.notify(-1);
            // Linux's AF_UNIX does not check; TCP and UDP report ENOTCONN.
            if self.info.domain != AF_UNIX {
                return Err(ENOTCONN);
            }
            // The backend still hears of it: a datagram receiver shut for
            // reading refuses senders (EPIPE).
            if let Some(b) = self.binding() {
                b.backend.shutdown(self.sref(b), how)?;
            }
            return Ok(());
        }
        if let Some(b) = self.binding() {
            if wr && self.is_stream() && !f.has(F_RESET) {
                self.send_fin(b);
            }
            // A shared socket's end waits behind its held bytes.
            let how = match (how, wr && self.shared_fin_waits()) {
                (SHUT_WR, true) => return Ok(()),
                (SHUT_RDWR, true) => SHUT_RD,
                (h, _) => h,
            };
            let r = b.backend.shutdown(self.sref(b), how);
            self.wait.notify(-1);
            r?;
        }
        Ok(())
    }

    /// getsockname(): [`Self::local_addr`], or the port a TCP socket's
    /// connect(AF_UNSPEC) gave back (see `Ctl::released`).
    pub fn sockname(&self) -> SockAddr {
        match self
            .binding()
            .and_then(|b| b.backend.local_addr(self.sref(b)))
        {
            Some(a) => a,
            None => self
                .ctl
                .lock()
                .released
                .as_deref()
                .copied()
                .unwrap_or_else(|| SockAddr::unspecified(self.info.domain)),
        }
    }

    /// The socket's local address (the unspecified one when it has none).
    pub fn local_addr(&self) -> SockAddr {
        self.binding()
            .and_then(|b| b.backend.local_addr(self.sref(b)))
            .unwrap_or_else(|| SockAddr::unspecified(self.info.domain))
    }

    /// The address an accepted connection came from, even if it was reset
    /// since (accept() reports it; getpeername() then does not), or the
    /// unspecified address if the backend kept none.
    pub fn accepted_from(&self) -> SockAddr {
        self.binding()
            .and_then(|b| b.backend.peer_addr(self.sref(b)))
            .unwrap_or_else(|| SockAddr::unspecified(self.info.domain))
    }

    /// getpeername().
    pub fn peer_addr(&self) -> Result<SockAddr, Errno> {
        if self.phase() != Phase::Connected {
            return Err(ENOTCONN);
        }
        // A reset TCP connection is closed (inet_getname: TCP_CLOSE has
        // no peer); an AF_UNIX socket keeps its peer's name.
        if self.info.domain != AF_UNIX && (self.has(F_RESET) || self.shared_was_reset()) {
            return Err(ENOTCONN);
        }
        let peer = self
            .binding()
            .and_then(|b| b.backend.peer_addr(self.sref(b)))
            .ok_or(ENOTCONN)?;
        // A UDP socket connected to port 0 has a destination but no peer
        // name (inet_getname: no inet_dport).
        if peer.inet_port() == Some(0) {
            return Err(ENOTCONN);
        }
        Ok(peer)
    }

    /// socketpair(): two connected sockets of one backend.
    pub fn pair(info: SockInfo, nonblock: bool) -> Result<(Arc<Socket>, Arc<Socket>), Errno> {
        let a = Socket::new(info, nonblock)?;
        let b = match Socket::new(info, nonblock) {
            Ok(b) => b,
            Err(e) => {
                a.drop_ref();
                return Err(e);
            }
        };
        let r = (|| {
            for e in registry::snapshot().iter() {
                if !e.backend.supports(&info) {
                    continue;
                }
                match e.backend.socketpair(a.handle, b.handle, &info) {
                    Ok((sa, sb)) => {
                        a.bind_backend(e.backend.clone(), sa);
                        b.bind_backend(e.backend.clone(), sb);
                        return Ok(());
                    }
                    Err(EOPNOTSUPP) => continue,
                    Err(err) => return Err(err),
                }
            }
            Err(EOPNOTSUPP)
        })();
        if let Err(e) = r {
            a.drop_ref();
            b.drop_ref();
            return Err(e);
        }
        Ok((a, b))
    }
}

//! The frontend's side of the upcalls: what a backend's fragments and
//! events do to a socket. The contract of each upcall is written in
//! `backend::upcall`, where backends call them.

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::sync::atomic::Ordering;

use super::*;
use crate::backend::attrs::{DgramAttrs, ATTR_LEN};
use crate::backend::upcall::Frontend;
use crate::sockbuf::SbError;
use crate::sockbuf::MAX_ADDR_LEN;

/// The live socket `h`. A fork child's copy of its parent's socket is
/// gone as far as upcalls are concerned: its state belongs to the parent.
fn sock(h: SockHandle) -> Result<Arc<Socket>, Errno> {
    slab::lookup(h).filter(|s| !s.inherited()).ok_or(EBADF)
}

fn sb_errno(e: SbError) -> Errno {
    match e {
        // No room now (also a full datagram buffer, or no memory for the
        // ring): the fragment may be offered again, or dropped by UDP.
        SbError::BeyondWindow
        | SbError::TooManyHoles
        | SbError::TooManyPartials
        | SbError::NoRoom
        | SbError::OutOfMemory => ENOBUFS,
        _ => EINVAL,
    }
}

/// The frontend the upcalls reach (`backend::upcall::install`): each
/// method is the upcall of the same name.
pub(crate) struct SocketFrontend;

/// The one instance.
pub(crate) static FRONTEND: SocketFrontend = SocketFrontend;

impl SocketFrontend {
    /// `deliver` and `deliver_attrs`: the fragment, and for an IP
    /// datagram the header fields its receiver may ask about.
    fn deliver_with(
        &self,
        h: SockHandle,
        frag: &Fragment<'_>,
        attrs: Option<&DgramAttrs>,
        scm_key: Option<u64>,
    ) -> Result<(), Errno> {
        let s = sock(h)?;
        let hd = &frag.header;
        if hd.len as usize != frag.payload.len() {
            return Err(EINVAL);
        }
        s.incoming_cpu
            .store(crate::platform::current_cpu(), Ordering::Relaxed);
        match (s.rx(), hd.kind) {
            (Rx::Stream(sb), FragKind::Stream) => {
                if hd.flags & FLAG_RST != 0 {
                    return self.reset(h, ECONNRESET);
                }
                let mut ev = 0;
                if !frag.payload.is_empty()
                    && sb.insert(hd.offset, frag.payload).map_err(sb_errno)? > 0
                {
                    ev |= POLLIN;
                    if s.has(F_RCVTSTAMP) {
                        s.tcp.arrived_now();
                    }
                }
                if s.has(F_DEFERRED) {
                    s.deferral_ends();
                }
                if let (true, Some(&last)) = (hd.flags & FLAG_URG != 0, frag.payload.last()) {
                    s.urgent_arrived(hd.offset + frag.payload.len() as u64 - 1, last);
                }
                if hd.flags & FLAG_EOR != 0 && s.keeps_records() {
                    // A record ends here, its bytes are in: readable.
                    let end = hd.offset.wrapping_add(frag.payload.len() as u64);
                    let key = scm_key.unwrap_or(0);
                    s.records
                        .mark(end, frag.payload.is_empty(), sb.read_offset(), key);
                    ev |= POLLIN;
                }
                if hd.flags & FLAG_FIN != 0 {
                    sb.insert_fin(hd.offset.wrapping_add(frag.payload.len() as u64))
                        .map_err(sb_errno)?;
                    ev |= POLLIN | POLLRDHUP | POLLHUP;
                }
                if ev != 0 {
                    s.wait.notify(ev);
                    s.wake_async();
                }
                Ok(())
            }
            (Rx::Dgram(db), FragKind::Dgram) => {
                // A UDP socket shut for reading still takes datagrams
                // (udp_rcv looks at no shutdown); AF_UNIX drops them.
                if s.has(F_RD_SHUT) && s.info.domain == AF_UNIX {
                    return Ok(());
                }
                let (total, payload) = match s.filter_fragment(hd, frag) {
                    Some(kept) => kept,
                    None => return Ok(()),
                };
                // A datagram's attachment comes with its first piece only:
                // its other pieces take the same key, or they would make a
                // partial datagram of their own (another source).
                let scm_key = if s.info.domain != AF_UNIX || hd.dgram_total == hd.len {
                    scm_key
                } else {
                    let mut keys = s.split_keys.lock();
                    match scm_key {
                        Some(k) => {
                            let keys = keys.get_or_insert_with(|| Box::new([(0, 0); 4]));
                            keys.rotate_right(1);
                            keys[0] = (hd.offset, k);
                            Some(k)
                        }
                        None => keys
                            .iter()
                            .flat_map(|k| k.iter())
                            .find(|&&(id, k)| id == hd.offset && k != 0)
                            .map(|&(_, k)| k),
                    }
                };
                // The attributes the socket's cmsgs report ride behind the
                // source, in the record's address bytes (`io::split_attrs`
                // takes them apart).
                let mut held = [0u8; MAX_ADDR_LEN];
                let src = match attrs {
                    // An AF_UNIX message's attachment: its key in front.
                    _ if scm_key.is_some() => {
                        let n =
                            super::inflight::keyed_src(scm_key.unwrap_or(0), frag.addr, &mut held);
                        &held[..n]
                    }
                    Some(a)
                        if s.rx_attrs_wanted() != 0
                            && matches!(frag.addr.len(), 16 | 28)
                            && frag.addr.len() + ATTR_LEN + 4 <= MAX_ADDR_LEN =>
                    {
                        let n = frag.addr.len();
                        held[..n].copy_from_slice(frag.addr);
                        held[n..n + ATTR_LEN].copy_from_slice(&a.to_bytes());
                        // SO_RXQ_OVFL: the drops so far ride behind them
                        // (sock_skb_set_dropcount), when there are any.
                        let drops = s.drops();
                        if s.rx_attrs_wanted() & super::dgram_attrs::RX_OVFL != 0 && drops != 0 {
                            held[n + ATTR_LEN..n + ATTR_LEN + 4]
                                .copy_from_slice(&drops.to_ne_bytes());
                            &held[..n + ATTR_LEN + 4]
                        } else {
                            &held[..n + ATTR_LEN]
                        }
                    }
                    _ => frag.addr,
                };
                let done = match db
                    .insert_stamped(
                        hd.offset,
                        hd.dgram_offset,
                        total,
                        payload,
                        src,
                        crate::platform::realtime_ns(),
                    )
                    .map_err(sb_errno)
                {
                    Ok(done) => done,
                    Err(ENOBUFS) => {
                        // No room: a backend with UDP's semantics drops it.
                        // One that keeps it (offers it again after a read:
                        // its sender waits meanwhile) does so only for a
                        // socket that has not asked to see drops: one with
                        // SO_RXQ_OVFL drops it here and counts it, as
                        // Linux's UDP, and the upcall answers that it was
                        // taken, so that the backend goes on.
                        let keeps = s
                            .binding()
                            .is_some_and(|b| b.backend.keeps_refused_datagrams());
                        let lossy = s.rx_attrs_wanted() & super::dgram_attrs::RX_OVFL != 0;
                        if hd.dgram_offset == 0 && (!keeps || lossy) {
                            s.count_drop();
                        }
                        if keeps && lossy {
                            return Ok(());
                        }
                        s.set(F_DGRAM_REFUSED);
                        return Err(ENOBUFS);
                    }
                    Err(e) => return Err(e),
                };
                if done {
                    s.wait.notify(POLLIN);
                    s.wake_async();
                }
                Ok(())
            }
            _ => Err(EPROTOTYPE),
        }
    }
}

impl Frontend for SocketFrontend {
    fn deliver(&self, h: SockHandle, frag: &Fragment<'_>) -> Result<(), Errno> {
        // No credentials are added here: a backend that delivers this way
        // may be running in the receiver's process, not the sender's.
        self.deliver_with(h, frag, None, None)
    }

    fn deliver_scm(&self, h: SockHandle, frag: &Fragment<'_>, scm: u64) -> Result<(), Errno> {
        let s = match sock(h) {
            Ok(s) => s,
            Err(e) => {
                super::scm::send_done(scm);
                return Err(e);
            }
        };
        s.deliver_scm_from(frag, scm, None, |k| self.deliver_with(h, frag, None, k))
    }

    fn scm_drop(&self, scm: u64) {
        super::scm::send_done(scm);
    }

    fn deliver_from(
        &self,
        h: SockHandle,
        frag: &Fragment<'_>,
        sender: crate::backend::contract::PeerCred,
    ) -> Result<(), Errno> {
        let s = sock(h)?;
        let from = super::inflight::Cred {
            pid: sender.pid,
            uid: sender.uid,
            gid: sender.gid,
        };
        s.deliver_scm_from(frag, 0, Some(from), |k| self.deliver_with(h, frag, None, k))
    }

    fn peer_cred(
        &self,
        h: SockHandle,
        cred: crate::backend::contract::PeerCred,
    ) -> Result<(), Errno> {
        sock(h)?.set_peer_cred(cred);
        Ok(())
    }

    fn deliver_attrs(
        &self,
        h: SockHandle,
        frag: &Fragment<'_>,
        attrs: &DgramAttrs,
    ) -> Result<(), Errno> {
        self.deliver_with(h, frag, Some(attrs), None)
    }

    fn incoming(&self, listener: SockHandle, state: SockState) -> Result<SockHandle, Errno> {
        let l = sock(listener)?;
        let lf = l.flags();
        if !lf.is(Phase::Listening) || lf.has(F_CLOSED) {
            return Err(ECONNREFUSED);
        }
        let backend = l.binding().ok_or(EINVAL)?.backend.clone();
        {
            let mut ctl = l.ctl.lock();
            // Linux accepts backlog + 1 connections before the queue is full.
            if ctl.accept_q.len() as u32 + ctl.pending > ctl.backlog {
                return Err(EAGAIN);
            }
            ctl.pending += 1;
        }
        let child = match Socket::new(l.info, false) {
            Ok(c) => c,
            Err(e) => {
                l.ctl.lock().pending -= 1;
                return Err(e);
            }
        };
        child.bind_backend(backend, state);
        child.set(F_BOUND);
        child.inherit_from(&l);
        child.tcp.handshake_started(false);
        {
            let mut c = child.ctl.lock();
            c.parent = Some(Arc::downgrade(&l));
            c.opts.set_unaccepted(true);
        }
        Ok(child.handle)
    }

    fn connected(&self, h: SockHandle) -> Result<(), Errno> {
        let s = sock(h)?;
        let parent = s.ctl.lock().parent.take();
        // Connected before no longer connecting: a waiting connect() that saw
        // neither flag would report a refusal.
        s.set(F_BOUND);
        // One step: a waiting connect() never sees "not connecting" before
        // "connected".
        let _ = s.go(&[Phase::Idle, Phase::Connecting], Phase::Connected);
        s.tcp.handshake_done();
        // The connecting end records the handshake (once per connection).
        if parent.is_none() && s.is_stream() && s.capturing() {
            s.capture_handshake();
        }
        if let Some(p) = parent {
            let Some(l) = p.upgrade() else {
                s.abort();
                return Err(ECONNABORTED);
            };
            {
                let mut ctl = l.ctl.lock();
                ctl.pending = ctl.pending.saturating_sub(1);
                if l.phase() != Phase::Listening || l.has(F_CLOSED) {
                    drop(ctl);
                    s.abort();
                    return Err(ECONNABORTED);
                }
                if !l.queue_connection(&mut ctl, &s) {
                    // Deferred: accept() and poll see it once data comes.
                    return Ok(());
                }
            }
            l.wait.notify(POLLIN);
        } else {
            s.wait.notify(POLLOUT);
        }
        Ok(())
    }

    fn refused(&self, h: SockHandle, err: Errno) -> Result<(), Errno> {
        let s = sock(h)?;
        let parent = s.ctl.lock().parent.take();
        if let Some(p) = parent {
            if let Some(l) = p.upgrade() {
                let mut ctl = l.ctl.lock();
                ctl.pending = ctl.pending.saturating_sub(1);
            }
            s.drop_ref();
            return Ok(());
        }
        if s.phase() != Phase::Connecting {
            return Err(EINVAL);
        }
        s.connect_failed(if err > 0 { err } else { ECONNREFUSED });
        Ok(())
    }

    fn reset(&self, h: SockHandle, err: Errno) -> Result<(), Errno> {
        let s = sock(h)?;
        if s.has(F_RESET) {
            return Ok(());
        }
        if s.phase() == Phase::Connecting && s.ctl.lock().parent.is_none() {
            // A reset before the connection was up ends the connect, as a
            // reset answering a SYN does on Linux: ECONNREFUSED.
            s.connect_failed(ECONNREFUSED);
            return Ok(());
        }
        s.ctl.lock().so_error = if err > 0 { err } else { ECONNRESET };
        s.set(F_RESET | F_ERROR);
        s.wait.notify(-1);
        // Queued bytes go unsent; a close that waited for them ends.
        s.queue_kick();
        Ok(())
    }

    fn credit(&self, h: SockHandle, limit: u64) -> Result<(), Errno> {
        sock(h)?.grant(limit);
        Ok(())
    }

    fn writable(&self, h: SockHandle) -> Result<(), Errno> {
        let s = sock(h)?;
        s.tx_room.fetch_add(1, Ordering::SeqCst);
        s.wait.notify(POLLOUT);
        Ok(())
    }

    fn window(&self, h: SockHandle) -> Result<u64, Errno> {
        let s = sock(h)?;
        let end = s.window_end();
        // The backend grants this as credit: it counts as advertised.
        s.advertised.fetch_max(end, Ordering::Relaxed);
        Ok(end)
    }

    fn held(&self, h: SockHandle) -> Result<u64, Errno> {
        match sock(h)?.rx() {
            Rx::Stream(sb) => Ok(sb.readable() as u64),
            Rx::Dgram(_) => Err(EOPNOTSUPP),
        }
    }

    fn error(&self, h: SockHandle, err: Errno) -> Result<(), Errno> {
        if err <= 0 {
            return Err(EINVAL);
        }
        sock(h)?.set_error(err);
        Ok(())
    }

    fn unreachable(&self, h: SockHandle, dest: &SockAddr, payload: &[u8]) {
        if let Ok(s) = sock(h) {
            s.port_unreachable(dest, payload);
        }
    }

    fn hangup(&self, h: SockHandle) -> Result<(), Errno> {
        let s = sock(h)?;
        s.set(F_WR_SHUT);
        s.wait.notify(-1);
        Ok(())
    }

    fn takes_group(&self, h: SockHandle, dest: &SockAddr) -> bool {
        sock(h).is_ok_and(|s| s.takes_group(dest, None))
    }

    fn takes_group_from(&self, h: SockHandle, dest: &SockAddr, src: &SockAddr) -> bool {
        sock(h).is_ok_and(|s| s.takes_group(dest, Some(src)))
    }
}

impl Socket {
    /// A connect failed after connect() returned: the error, back to idle,
    /// and the next connect() reports it (`Ctl::connect_failed`).
    fn connect_failed(&self, err: Errno) {
        self.ctl.lock().connect_failed = true;
        if self.info.domain != AF_UNIX {
            // Linux's tcp_done: a refused or reset connect is shut both
            // ways (POLLHUP|POLLRDHUP, reads 0, writes EPIPE) until the
            // next connect() starts anew.
            self.set(F_RD_SHUT | F_WR_SHUT);
        }
        // The error with the end of connecting, in one step: a waiting
        // connect() that sees it no longer connecting finds the error (as
        // in `connected`), and poll never sees the error while it is still
        // connecting (POLLERR alone), as Linux's tcp_done sets both under
        // the socket's lock.
        self.ctl.lock().so_error = err;
        if self
            .state
            .go_setting(&[Phase::Connecting], Phase::Idle, F_ERROR)
            .is_err()
        {
            self.set(F_ERROR);
        }
        self.wait.notify(POLLIN | POLLOUT | POLLERR);
    }
}

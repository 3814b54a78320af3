//! send() of a shared socket (`SharedStreams`, SHARED.md): bytes go
//! straight into the peer's ring, except what TCP_CORK and MSG_MORE hold
//! (`cork`) and what the send queue takes once the ring is full (`sndq`).
//!
//! Both wait in this process's `Tx::held`, in front of every later byte:
//! the ring is the peer's receive buffer, so on lo (where bytes the
//! receiver holds count as acknowledged) what is held is what Linux would
//! still have unsent. A non-blocking writer that fills the ring has
//! SO_SNDBUF more accepted (up to TCP_NOTSENT_LOWAT), SIOCOUTQ and
//! TCP_INFO count them, and they go on as the ring empties: no upcall
//! tells of room in a ring, so the timer's thread looks again every few
//! milliseconds while bytes are queued, as does poll, and so does the
//! next send before its own bytes.
//!
//! Held bytes are this process's: a fork child's copy of them is the
//! parent's to send, and the child drops them (`Tx::held_gen`).

use core::sync::atomic::Ordering;

use super::*;
use crate::backend::contract::{Block, SharedStreams};
use crate::sync::MutexGuard;

impl Socket {
    /// send() of a shared socket, or None when it is not one.
    pub(crate) fn send_shared(&self, bufs: &[&[u8]], flags: i32) -> Option<Result<usize, Errno>> {
        let (sh, r) = self.shared()?;
        let f = self.flags();
        if f.has(F_ERROR) {
            // tcp_sendmsg: a pending error (a reset a push of queued bytes
            // met) before the shutdown's EPIPE.
            if let Some(e) = self.take_error() {
                return Some(Err(e));
            }
        }
        if f.has(F_WR_SHUT) {
            return Some(Err(EPIPE));
        }
        if !f.is(Phase::Connected) {
            // sk_stream_wait_connect: a pending error first (a connection
            // connect(AF_UNSPEC) reset is ECONNRESET once).
            return Some(Err(self.take_error().unwrap_or(EPIPE)));
        }
        let block = self.block_for(flags, self.snd_deadline());
        if flags & MSG_OOB != 0 {
            return Some(self.send_shared_urgent(sh, r, bufs, block));
        }
        if self.corking(flags) || self.tx_held.load(Ordering::Acquire) > 0 {
            return Some(self.send_shared_held(sh, r, bufs, flags, block));
        }
        let mut sent = 0;
        for (i, buf) in bufs.iter().enumerate().filter(|(_, b)| !b.is_empty()) {
            let bump = self.tx_bump.load(Ordering::Acquire);
            let n = match sh.send(r, buf, block) {
                Ok(n) => n,
                Err(EAGAIN) => 0,
                Err(e) => return Some(if sent > 0 { Ok(sent) } else { Err(e) }),
            };
            self.shared_sent(&buf[..n]);
            sent += n;
            if n < buf.len() {
                // The ring is full and the call may not wait longer (or
                // SO_SNDBUF grew under a blocked send): the send queue
                // takes what it allows, in order.
                let tx = self.tx.lock();
                let took = self.queue_shared(tx, &buf[n..], &bufs[i + 1..]);
                sent += took;
                let kicked = block != Block::Never && self.tx_bump.load(Ordering::Acquire) != bump;
                let rest_len = bufs[i..].iter().map(|b| b.len()).sum::<usize>() - n;
                if kicked && took < rest_len {
                    // A blocking send goes on with what the queue did not
                    // take, behind it.
                    let rest = skip_bytes(&bufs[i..], n + took);
                    return Some(match self.send_shared(&rest, flags)? {
                        Ok(more) => Ok(sent + more),
                        Err(_) if sent > 0 => Ok(sent),
                        Err(e) => Err(e),
                    });
                }
                break;
            }
        }
        Some(if sent > 0 || bufs.iter().all(|b| b.is_empty()) {
            Ok(sent)
        } else {
            Err(EAGAIN)
        })
    }

    /// send(MSG_OOB) of a shared socket: the call's last byte is the
    /// urgent one. Urgent data goes now, straight to the ring (not behind
    /// a cork); what does not fit is not sent (the count says it).
    fn send_shared_urgent(
        &self,
        sh: &dyn SharedStreams,
        r: SockRef<'_>,
        bufs: &[&[u8]],
        block: Block,
    ) -> Result<usize, Errno> {
        let mut sent = 0;
        let last = bufs.iter().rposition(|b| !b.is_empty());
        for (i, buf) in bufs.iter().enumerate().filter(|(_, b)| !b.is_empty()) {
            let went = if Some(i) == last {
                sh.send_urgent(r, buf, block)
            } else {
                sh.send(r, buf, block)
            };
            match went {
                Ok(n) => {
                    self.shared_sent(&buf[..n]);
                    sent += n;
                    if n < buf.len() {
                        break;
                    }
                }
                Err(e) => return if sent > 0 { Ok(sent) } else { Err(e) },
            }
        }
        Ok(sent)
    }

    /// `bytes` went into the peer's ring in one publish: TCP_INFO's
    /// bytes sent and data segments out, and a capture's segment.
    fn shared_sent(&self, bytes: &[u8]) {
        if !bytes.is_empty() {
            let off = self.tx_next.fetch_add(bytes.len() as u64, Ordering::AcqRel);
            self.tcp.sent_segment();
            if self.capturing() {
                self.capture_stream(off, bytes);
            }
        }
    }

    /// Queues what SO_SNDBUF and TCP_NOTSENT_LOWAT allow of `first` and
    /// then `rest` behind the held bytes (`sndq`); the bytes taken.
    fn queue_shared(&self, mut tx: MutexGuard<'_, Tx>, first: &[u8], rest: &[&[u8]]) -> usize {
        let held = tx.held.len() as u64;
        let mut room = self.queue_room(held, held).min(usize::MAX as u64) as usize;
        let mut took = 0;
        for piece in core::iter::once(first).chain(rest.iter().copied()) {
            let n = piece.len().min(room);
            if n == 0 {
                break;
            }
            if !tx.queueing {
                tx.queueing = true;
                self.queue_started();
            }
            self.hold(&mut tx, &piece[..n]);
            room -= n;
            took += n;
        }
        if took > 0 {
            self.retry_held();
        }
        took
    }

    /// The timer's thread looks at the held bytes again soon.
    fn retry_held(&self) {
        #[cfg(feature = "std")]
        super::timer::arm(self.handle, RETRY);
    }

    /// A fork child's copy of its parent's held bytes: dropped (the
    /// parent sends them).
    fn drop_parents_held(&self, tx: &mut Tx) {
        if !tx.held.is_empty() && tx.held_gen != fork_generation() {
            tx.held.clear();
            tx.queueing = false;
            self.tx_held.store(0, Ordering::Release);
        }
    }

    /// send() of a shared socket under TCP_CORK or MSG_MORE, or behind
    /// held bytes: those and these go on together, whole segments (the
    /// MSS) under a cork, everything otherwise, in one publish; a corked
    /// partial tail is held until the cork comes off, the segment fills,
    /// or the 200 ms ceiling passes. The peer then reads one write, not
    /// one per call, as it gets one segment from Linux. What the ring does
    /// not take goes to the send queue as far as it allows.
    ///
    /// A call that may wait for room waits without the send lock: poll,
    /// TCP_INFO, the timer's thread and a fork child must never wait for
    /// a reader to read.
    fn send_shared_held(
        &self,
        sh: &dyn SharedStreams,
        r: SockRef<'_>,
        bufs: &[&[u8]],
        flags: i32,
        block: Block,
    ) -> Result<usize, Errno> {
        let corking = self.corking(flags);
        let mss = if corking {
            let user_mss = self.ctl.lock().opts.maxseg();
            self.tcp_maxseg(user_mss).max(1) as usize
        } else {
            1
        };
        let mut tx = self.tx.lock();
        self.drop_parents_held(&mut tx);
        let held = tx.held.len();
        let queueing = tx.queueing;
        let mut all = core::mem::take(&mut tx.held);
        tx.queueing = false;
        self.tx_held.store(0, Ordering::Release);
        for b in bufs {
            all.extend_from_slice(b);
        }
        let new = all.len() - held;
        let go = all.len() / mss * mss;
        let mut out = 0;
        let mut err = None;
        // What the ring takes now.
        if go > 0 {
            match sh.send(r, &all[..go], Block::Never) {
                Ok(n) => {
                    self.shared_sent(&all[..n]);
                    out = n;
                }
                Err(EAGAIN) => {}
                Err(e) => err = Some(e),
            }
        }
        if out < go && err.is_none() && block != Block::Never {
            // The rest as room comes, without the send lock.
            drop(tx);
            match sh.send(r, &all[out..go], block) {
                Ok(n) => {
                    self.shared_sent(&all[out..out + n]);
                    out += n;
                }
                Err(EAGAIN) => {}
                Err(e) => err = Some(e),
            }
            tx = self.tx.lock();
        }
        if out == go {
            // Everything before the tail went: the tail is held (and this
            // call took every byte).
            self.hold_first(&mut tx, &all[go..], false);
            return Ok(new);
        }
        // Bytes held before this call that did not go stay first.
        let old_end = held.max(out);
        self.hold_first(&mut tx, &all[out..old_end], queueing);
        if let Some(e) = err.filter(|&e| e != EAGAIN) {
            // The connection's error: this call took nothing more.
            return match out.saturating_sub(held) {
                0 => Err(e),
                n => Ok(n),
            };
        }
        // The ring is full: the send queue takes what it allows of the
        // rest of this call's bytes.
        let went = out.saturating_sub(held);
        let queued = self.queue_shared(tx, &all[old_end..], &[]);
        match went + queued {
            0 => Err(EAGAIN),
            n => Ok(n),
        }
    }

    /// Puts `bytes` in front of what is held (another call may have added
    /// some while this one waited without the lock), as held by a cork
    /// (the ceiling runs) or, with `queued`, by the send queue.
    fn hold_first(&self, tx: &mut Tx, bytes: &[u8], queued: bool) {
        if bytes.is_empty() {
            return;
        }
        if tx.held.is_empty() {
            tx.queueing = queued;
            self.hold(tx, bytes);
            return;
        }
        let mut v = Vec::with_capacity(bytes.len() + tx.held.len());
        v.extend_from_slice(bytes);
        v.extend_from_slice(&tx.held);
        tx.held = v;
        tx.queueing |= queued;
        self.tx_held.store(tx.held.len() as u64, Ordering::Release);
    }

    /// `send_held` of a shared socket: one publish of what the peer's ring
    /// takes now of the first `n` held bytes; the rest stays held and the
    /// timer looks again soon.
    pub(super) fn send_held_shared(
        &self,
        mut tx: MutexGuard<'_, Tx>,
        n: usize,
    ) -> Result<(), Errno> {
        self.drop_parents_held(&mut tx);
        let n = n.min(tx.held.len());
        let Some((sh, r)) = self.shared().filter(|_| n > 0) else {
            return Ok(());
        };
        let res = sh.send(r, &tx.held[..n], Block::Never);
        let took = *res.as_ref().unwrap_or(&0);
        self.shared_sent(&tx.held[..took]);
        tx.held.drain(..took);
        if tx.held.is_empty() {
            tx.queueing = false;
        }
        self.tx_held.store(tx.held.len() as u64, Ordering::Release);
        match res {
            Ok(_) | Err(EAGAIN) => {
                if !tx.held.is_empty() {
                    self.retry_held();
                }
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Before poll looks at a shared socket: queued bytes the ring now
    /// takes go (not what a cork holds). Whether bytes remain queued.
    pub(super) fn push_shared_queue(&self) -> bool {
        if self.tx_held.load(Ordering::Acquire) == 0 {
            return false;
        }
        let tx = self.tx.lock();
        if !tx.queueing {
            return false;
        }
        let n = tx.held.len();
        self.keep_push_error(self.send_held_shared(tx, n));
        let tx = self.tx.lock();
        tx.queueing && !tx.held.is_empty()
    }
}

/// How soon held bytes that found the peer's ring full are tried again.
#[cfg(feature = "std")]
const RETRY: core::time::Duration = core::time::Duration::from_millis(5);

impl Socket {
    /// close() of a shared connection: held bytes go first; those the
    /// ring does not take now keep the socket (and its end) until they
    /// are gone, as `sndq`'s close does. Whether the close waits.
    pub(super) fn shared_close_waits(&self) -> bool {
        self.push_held();
        let mut tx = self.tx.lock();
        self.drop_parents_held(&mut tx);
        if tx.held.is_empty() {
            return false;
        }
        tx.queueing = true;
        tx.fin_pending = true;
        tx.close_pending = true;
        drop(tx);
        self.retry_held();
        true
    }

    /// shutdown(SHUT_WR) of a shared connection with bytes still held:
    /// the backend's end waits behind them (`push_queue` gives it).
    /// Whether it does.
    pub(crate) fn shared_fin_waits(&self) -> bool {
        self.is_shared() && self.tx.lock().fin_pending
    }
}

/// `bufs` without their first `n` bytes.
fn skip_bytes<'a>(bufs: &[&'a [u8]], mut n: usize) -> Vec<&'a [u8]> {
    let mut out = Vec::with_capacity(bufs.len());
    for b in bufs {
        if n >= b.len() {
            n -= b.len();
        } else {
            out.push(&b[n..]);
            n = 0;
        }
    }
    out
}

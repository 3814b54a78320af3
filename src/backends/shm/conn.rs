//! One end of a stream connection over shared memory (SHARED.md): the
//! end's anchor and the connection's segment, and the stream calls on
//! them. A process holds a `Conn` per end it uses; a fork child inherits
//! the anchor fd and the mapping, so both processes' `Conn`s are the same
//! end, and every word they decide by is in the segment or the kernel:
//! bytes and FIN in the rings, the peer's presence in the anchor.
//!
//! Rules, as Linux's for a TCP or AF_UNIX stream:
//! - a send copies into the peer's ring; blocking, it waits for room
//!   until every byte went or the deadline passed (then the bytes sent so
//!   far, or EAGAIN); after this end's SHUT_WR, or once the peer is gone,
//!   EPIPE;
//! - a recv takes what is there (one holder at a time, under the ring's
//!   reader lock, so each byte is read once and a recv's bytes are
//!   contiguous); end-of-stream after the peer's SHUT_WR or its last
//!   holder's close once the bytes are read;
//! - the peer's last holder gone with bytes of ours unread is a reset
//!   (`tcp_close`'s rule: a close that discards data sends RST): the data
//!   already here is read first, then one ECONNRESET, then end-of-stream;
//! - a blocked call sleeps on the ring's futex. The kernel knows when the
//!   peer's last holder is gone (its anchor hangs up), but asking costs a
//!   system call, so a call asks only when a holder of the peer closed it
//!   (each close counts in the segment and wakes the ring's sleepers) or a
//!   [`TICK`] passed asleep: a peer that closes is seen at once, one that
//!   died without closing (SIGKILL) within a tick, and a busy connection
//!   makes no system call beyond the futex wake-ups.

use core::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use super::anchor;
use super::ring::{Ring, BELL_ON_DATA, BELL_ON_ROOM, URG_READ, URG_VALID};
pub use super::segment::Side;
use super::segment::{Segment, ANCHOR_UNNOTED};
use super::Corrupt;
use crate::consts::*;
use crate::platform::anchor_ipc;
use crate::platform::shared_mem::{poll_pair, SignalsHeld};
use crate::platform::Slept;

/// The longest a blocked call sleeps before it looks whether the peer is
/// still there: the bound on noticing a peer that died without a word.
pub const TICK: Duration = Duration::from_millis(100);

/// The longest an untimed call sleeps on its futex with the signals held
/// back (see `Conn::wait_untimed`), the most a signal's handler is held
/// up by it; then the call sleeps in poll, where a signal ends the sleep.
const HELD: Duration = Duration::from_millis(10);

pub use crate::backend::contract::Block;

/// What poll would report for an end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Readiness {
    /// A recv would not block: bytes, end-of-stream or a reset are there.
    pub readable: bool,
    /// A send would not block: room in the peer's ring, or an error.
    pub writable: bool,
    /// The peer will send nothing more (POLLRDHUP).
    pub rdhup: bool,
    /// Both directions are over, or the connection was reset (POLLHUP).
    pub hup: bool,
    /// A reset waits to be reported (POLLERR).
    pub err: bool,
    /// An urgent byte waits to be read out of band (POLLPRI).
    pub pri: bool,
}

const OPEN: u8 = 0;
const GONE: u8 = 1;
const RESET: u8 = 2;
const RESET_TOLD: u8 = 3;
/// The peer had closed cleanly and a send went to it anyway: the reset it
/// draws is pending, reported as EPIPE (tcp_reset in CLOSE_WAIT).
const PIPE: u8 = 4;

/// One end of a connection: its anchor (a kernel fd of this process) and
/// the mapped segment.
pub struct Conn {
    seg: Segment,
    anchor: i32,
    /// The segment's memfd, kept to hand the end on across exec or with
    /// SCM_RIGHTS (-1: none).
    memfd: i32,
    side: Side,
    /// What this process learnt of the peer: OPEN until its anchor hung
    /// up; then GONE, or RESET (and RESET_TOLD once a recv reported it).
    peer: AtomicU8,
    /// The peer's close count when this process last asked the kernel.
    seen_closes: AtomicU32,
    /// When this process last asked the kernel about the peer
    /// (`platform::mono_ns`).
    looked_ns: core::sync::atomic::AtomicU64,
    /// This process let go of the end ([`Conn::release`]).
    released: core::sync::atomic::AtomicBool,
    /// Bumped by [`Conn::kick_writers`]: a blocked send of this process
    /// returns to its caller to look again.
    kicks: AtomicU32,
    /// Whether this process asked for doorbells ([`Conn::arm`]): until
    /// then [`Conn::drain_armed`] has nothing of its own to take
    /// (`UNARMED`); `ARMED_ONCE` while its only request so far was one
    /// for data and no drain came since (an epoll registration's, which
    /// the frontend's look right after would drain for nothing).
    armed: AtomicU8,
}

/// [`Conn::armed`]: no doorbell asked for yet.
const UNARMED: u8 = 0;
/// [`Conn::armed`]: one request, for data only, and no drain since.
const ARMED_ONCE: u8 = 1;
/// [`Conn::armed`]: doorbells asked for.
const ARMED: u8 = 2;

/// How a wait ended.
enum Waited {
    /// The call may not wait (longer).
    No,
    /// Something changed, or may have: look again.
    Woken,
    /// A tick passed asleep: look again, and ask the kernel about the peer.
    Tick,
    /// A signal handler ran that ends the call (EINTR, or what was done).
    Interrupted,
}

impl Conn {
    /// Connects to the listening anchor at `path` and offers it a new
    /// segment with rings of `to_peer` and `to_me` bytes and `body` (what
    /// the accepting end is to learn: addresses...). Errors are the
    /// kernel's connect's (ECONNREFUSED, ENOENT, EAGAIN when `nonblocking`
    /// and the accept queue is full) or EINVAL for ring sizes a segment
    /// cannot have.
    pub fn connect(
        path: &std::path::Path,
        to_peer: usize,
        to_me: usize,
        body: &[u8],
        nonblocking: bool,
        addrs: [&[u8]; 2],
    ) -> Result<Conn, Errno> {
        let (seg, seg_fd) = Segment::create(to_peer, to_me)?;
        let seg_fd = anchor_ipc::keep(seg_fd);
        seg.set_addr(Side::Connector, addrs[0]);
        seg.set_addr(Side::Acceptor, addrs[1]);
        let k = anchor_ipc::connect_to(path, nonblocking);
        // The connecting end's anchor inode is recorded when the end is
        // first handed on ([`Conn::note_anchor`]): only a process that
        // adopts it across exec or SCM_RIGHTS looks for it.
        let offered = k.and_then(|k| {
            // Only a listener of the network's users (or root's: a daemon
            // that binds before it drops its privileges) gets the
            // segment; another user's is refused as no listener. So is an
            // offer the listener did not take: it refused this user, or
            // went away.
            let ours = crate::platform::unix_ipc::peer_cred(k).is_some_and(|(_, uid, _)| uid == 0)
                || crate::platform::unix_ipc::peer_is_us(k);
            let r = if ours {
                anchor::offer(k, seg_fd, body).map_err(|e| match e {
                    EPIPE | ECONNRESET => ECONNREFUSED,
                    e => e,
                })
            } else {
                Err(ECONNREFUSED)
            };
            match r {
                Ok(()) => Ok(k),
                Err(e) => {
                    crate::platform::kfd_close(k).ok();
                    Err(e)
                }
            }
        });
        match offered {
            Ok(k) => Ok(Conn::new(seg, k, seg_fd, Side::Connector)),
            Err(e) => {
                crate::platform::kfd_close(seg_fd).ok();
                Err(e)
            }
        }
    }

    /// The accepting end of anchor `kfd`, which a listener's accept just
    /// returned: takes the connecting end's offer and copies its body into
    /// `body`, returning the body's length too. On error `kfd` is closed
    /// (`anchor::take_offer`'s errors: the connection is dropped).
    pub fn accepted(kfd: i32, body: &mut [u8]) -> Result<(Conn, usize), Errno> {
        match anchor::take_offer_keep(kfd, body) {
            Ok((seg, n, memfd)) => {
                seg.set_anchor_ino(Side::Acceptor, ANCHOR_UNNOTED);
                Ok((Conn::new(seg, kfd, memfd, Side::Acceptor), n))
            }
            Err(e) => {
                crate::platform::kfd_close(kfd).ok();
                Err(e)
            }
        }
    }

    /// The end whose anchor is `kfd` and whose segment is in `memfd`, both
    /// inherited across exec or received with SCM_RIGHTS (the `Conn` owns
    /// both from now on, also on error, when it closes them): the segment
    /// must attach and record `kfd`'s inode as one of its ends. EPROTO
    /// otherwise.
    pub fn adopt(kfd: i32, memfd: i32) -> Result<Conn, Errno> {
        let found = Segment::attach(memfd).and_then(|seg| {
            let ino = anchor_ipc::inode(kfd)?;
            let side = [Side::Connector, Side::Acceptor]
                .into_iter()
                .find(|&s| ino != 0 && seg.anchor_ino(s) == ino)
                .ok_or(EPROTO)?;
            Ok((seg, side))
        });
        match found {
            Ok((seg, side)) => Ok(Conn::new(seg, kfd, memfd, side)),
            Err(e) => {
                crate::platform::kfd_close(kfd).ok();
                crate::platform::kfd_close(memfd).ok();
                Err(e)
            }
        }
    }

    fn new(seg: Segment, anchor: i32, memfd: i32, side: Side) -> Conn {
        Conn {
            seg,
            anchor,
            memfd,
            side,
            peer: AtomicU8::new(OPEN),
            seen_closes: AtomicU32::new(0),
            looked_ns: core::sync::atomic::AtomicU64::new(crate::platform::mono_ns()),
            released: core::sync::atomic::AtomicBool::new(false),
            kicks: AtomicU32::new(0),
            armed: AtomicU8::new(UNARMED),
        }
    }

    /// A send of this process blocked for room returns what it sent so far
    /// (EAGAIN when nothing), so that its caller looks again: SO_SNDBUF
    /// grew, and the caller's send queue may now take the rest. Other
    /// processes' writers wake and sleep on.
    pub fn kick_writers(&self) {
        self.kicks.fetch_add(1, Ordering::AcqRel);
        let (_, tx) = self.rings();
        tx.wake_all();
    }

    /// The end's anchor: the kernel fd that stands for it (what poll and
    /// epoll wait on, what fork and SCM_RIGHTS hand on).
    pub fn anchor(&self) -> i32 {
        self.anchor
    }

    /// Which end this is.
    pub fn side(&self) -> Side {
        self.side
    }

    /// This end's O_NONBLOCK, as every holder sees it.
    pub fn nonblocking(&self) -> bool {
        self.seg.nonblock(self.side).load(Ordering::Relaxed) != 0
    }

    /// Sets or clears this end's O_NONBLOCK for every holder.
    pub fn set_nonblocking(&self, on: bool) {
        self.seg
            .nonblock(self.side)
            .store(u32::from(on), Ordering::Relaxed);
    }

    /// Before the end goes to another process (exec, SCM_RIGHTS): its
    /// anchor's inode is in the segment, where the adopting process pairs
    /// the anchor with the segment. A system call the first time only.
    pub fn note_anchor(&self) {
        if matches!(self.seg.anchor_ino(self.side), 0 | ANCHOR_UNNOTED) {
            if let Ok(ino) = anchor_ipc::inode(self.anchor) {
                self.seg.set_anchor_ino(self.side, ino);
            }
        }
    }

    /// Whether this process let go of the end ([`Conn::release`]): its
    /// anchor's number is a stand-in from then on.
    pub fn released(&self) -> bool {
        self.released.load(Ordering::Acquire)
    }

    /// The segment's memfd (-1: none kept).
    pub fn memfd(&self) -> i32 {
        self.memfd
    }

    /// The connection's segment (the ends' recorded addresses).
    pub fn segment(&self) -> &Segment {
        &self.seg
    }

    /// The ring this end reads and the ring it writes.
    fn rings(&self) -> (Ring<'_>, Ring<'_>) {
        self.seg.rings(self.side)
    }

    /// The peer's close count now.
    fn peer_closes(&self) -> u32 {
        self.seg.closes(self.side.peer()).load(Ordering::Acquire)
    }

    /// Whether a call that does not wait should ask the kernel about the
    /// peer: a tick since the last time. A peer that died without closing
    /// is then seen within a tick by a program that only polls with
    /// non-blocking calls, at one system call per tick instead of one per
    /// call.
    fn due(&self) -> bool {
        crate::platform::mono_ns().saturating_sub(self.looked_ns.load(Ordering::Relaxed))
            >= TICK.as_nanos() as u64
    }

    /// The peer's state, asking the kernel only when `look` or when a
    /// holder of the peer closed it since the last time (`closes`, read
    /// before the ring was looked at).
    fn peer_now(&self, look: bool, closes: u32) -> u8 {
        if look || self.seen_closes.swap(closes, Ordering::AcqRel) != closes {
            self.peer_state()
        } else {
            self.peer.load(Ordering::Acquire)
        }
    }

    /// What this process knows of the peer, looking at the anchor when it
    /// is not known to be gone yet. The peer's going is a reset when bytes
    /// it was sent are still unread: nobody can read them any more.
    fn peer_state(&self) -> u8 {
        let s = self.peer.load(Ordering::Acquire);
        if s != OPEN {
            return s;
        }
        self.looked_ns
            .store(crate::platform::mono_ns(), Ordering::Relaxed);
        if !anchor::peer_gone(self.anchor, 0) {
            return s;
        }
        let (_, tx) = self.rings();
        // The peer reset, or (its anchor gone before any acceptor took it
        // over) the listener dropped the connection from its queue.
        let aborted = self.seg.reset(self.side.peer()).load(Ordering::Acquire) != 0
            || (self.side == Side::Connector && self.seg.anchor_ino(Side::Acceptor) == 0);
        let now = if aborted || tx.used().map_or(true, |n| n > 0) {
            RESET
        } else {
            GONE
        };
        match self
            .peer
            .compare_exchange(OPEN, now, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => now,
            Err(cur) => cur,
        }
    }

    /// A segment word made no sense: the connection resets.
    fn corrupt(&self, _: Corrupt) -> Errno {
        self.peer.store(RESET_TOLD, Ordering::Release);
        ECONNRESET
    }

    /// Sends from `buf` (see the module doc for the rules) and returns how
    /// many bytes went.
    pub fn send(&self, buf: &[u8], block: Block) -> Result<usize, Errno> {
        let (_, tx) = self.rings();
        let mut sent = 0;
        let mut interrupted = false;
        let mut look = block == Block::Never && self.due();
        let kicks = self.kicks.load(Ordering::Acquire);
        loop {
            let closes = self.peer_closes();
            if tx.flags() & super::ring::FIN != 0 {
                return if sent > 0 { Ok(sent) } else { Err(EPIPE) };
            }
            match self.peer_now(look, closes) {
                OPEN => {}
                _ if sent > 0 => return Ok(sent),
                // The first send after the peer's clean close goes (to
                // nobody); the reset it draws fails the next one.
                GONE if self
                    .peer
                    .compare_exchange(GONE, PIPE, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok() =>
                {
                    return Ok(buf.len());
                }
                _ => return Err(self.take_error().unwrap_or(EPIPE)),
            }
            let n = {
                let lock = tx.writer_lock();
                let _g = lock.lock().map_err(|c| self.corrupt(c))?;
                tx.write(&buf[sent..]).map_err(|c| self.corrupt(c))?
            };
            if n > 0 && tx.take_bell(BELL_ON_DATA) {
                anchor::ring_bell(self.anchor);
            }
            sent += n;
            if sent == buf.len() {
                return Ok(sent);
            }
            if interrupted {
                return if sent > 0 { Ok(sent) } else { Err(EINTR) };
            }
            match self
                .wait(&tx, block, false, closes)
                .map_err(|c| self.corrupt(c))?
            {
                Waited::No => return if sent > 0 { Ok(sent) } else { Err(EAGAIN) },
                Waited::Woken if self.kicks.load(Ordering::Acquire) != kicks => {
                    return if sent > 0 { Ok(sent) } else { Err(EAGAIN) };
                }
                Waited::Woken => look = false,
                Waited::Tick => look = true,
                // One more look, without waiting: what came meanwhile goes.
                Waited::Interrupted => interrupted = true,
            }
        }
    }

    /// Receives into `buf` (with `peek`, leaving the bytes) and returns
    /// how many came: 0 at end-of-stream (or for an empty `buf`).
    pub fn recv(&self, buf: &mut [u8], peek: bool, block: Block) -> Result<usize, Errno> {
        if buf.is_empty() {
            return Ok(0);
        }
        let (rx, _) = self.rings();
        let mut interrupted = false;
        // A call that may not wait asks the kernel before its EAGAIN, once
        // a tick (a hangup its poller saw was taken by `drain_bells`).
        let mut look = block == Block::Never && self.due();
        loop {
            let closes = self.peer_closes();
            let n = {
                let lock = rx.reader_lock();
                let _g = lock.lock().map_err(|c| self.corrupt(c))?;
                let limit = self.urgent_limit(&rx, buf.len(), peek)?;
                rx.read(&mut buf[..limit], 0, !peek)
                    .map_err(|c| self.corrupt(c))?
                    .1
            };
            if n > 0 {
                if !peek && rx.take_bell(BELL_ON_ROOM) {
                    anchor::ring_bell(self.anchor);
                }
                return Ok(n);
            }
            if rx.flags() & (super::ring::FIN | super::ring::RD_SHUT) != 0 {
                return Ok(0);
            }
            match self.peer_now(look, closes) {
                OPEN => {}
                RESET => {
                    let told = self.peer.compare_exchange(
                        RESET,
                        RESET_TOLD,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    );
                    return if told.is_ok() { Err(ECONNRESET) } else { Ok(0) };
                }
                _ => return Ok(0),
            }
            if interrupted {
                return Err(EINTR);
            }
            match self
                .wait(&rx, block, true, closes)
                .map_err(|c| self.corrupt(c))?
            {
                Waited::No => return Err(EAGAIN),
                Waited::Woken => look = false,
                Waited::Tick => look = true,
                Waited::Interrupted => interrupted = true,
            }
        }
    }

    /// Waits on `ring` for data (`for_data`) or room, or a close by a
    /// holder of the peer (its count moving from `closes`), at most a
    /// [`TICK`] at a time. A signal handler's run ends a timed wait
    /// (`Waited::Interrupted`: Linux never restarts a call with
    /// SO_RCVTIMEO/SO_SNDTIMEO), and an untimed one unless every handler
    /// that ran has SA_RESTART.
    fn wait(
        &self,
        ring: &Ring<'_>,
        block: Block,
        for_data: bool,
        closes: u32,
    ) -> Result<Waited, Corrupt> {
        let now = Instant::now();
        let tick = now + TICK;
        let until = match block {
            Block::Never => return Ok(Waited::No),
            Block::Until(d) if now >= d => return Ok(Waited::No),
            Block::Until(d) => d.min(tick),
            Block::Forever => return self.wait_untimed(ring, for_data, closes),
        };
        let closed = || self.peer_closes() != closes;
        Ok(match ring.sleep(for_data, Some(until), closed)? {
            Slept::Interrupted => Waited::Interrupted,
            Slept::Woken => Waited::Woken,
            Slept::TimedOut if until < tick => Waited::Woken,
            Slept::TimedOut => Waited::Tick,
        })
    }

    /// An untimed [`Conn::wait`]. The signals are held back meanwhile, so
    /// that the handlers of those that come can be looked at before they
    /// run (SA_RESTART or not): first on the ring's futex for a moment
    /// ([`HELD`], the most a signal waits), then in poll on the anchor,
    /// which a doorbell or the peer's hangup makes readable, beside a
    /// signalfd of the held signals.
    fn wait_untimed(
        &self,
        ring: &Ring<'_>,
        for_data: bool,
        closes: u32,
    ) -> Result<Waited, Corrupt> {
        let held = SignalsHeld::new();
        let closed = || self.peer_closes() != closes;
        let slept = ring.sleep(for_data, Some(Instant::now() + HELD), closed)?;
        let signalled = |held: SignalsHeld| match held.pending() {
            Some(true) => Waited::Interrupted,
            // The handlers run as the mask goes back; the call goes on.
            _ => Waited::Woken,
        };
        let ready = |r: &Ring<'_>| -> Result<bool, Corrupt> {
            Ok(if for_data {
                r.used()? > 0 || r.flags() & (super::ring::FIN | super::ring::RD_SHUT) != 0
            } else {
                r.room()? > 0
            })
        };
        if slept != Slept::TimedOut {
            // Woken with what it waited for: the call goes on, whatever
            // signal came meanwhile (its handler runs as the mask goes
            // back), as Linux's returns the data that came first.
            if ready(ring)? {
                return Ok(Waited::Woken);
            }
            return Ok(signalled(held));
        }
        let Ok(sigs) = held.watch() else {
            drop(held);
            return Ok(Waited::Tick);
        };
        let (rx, tx) = self.rings();
        if for_data {
            rx.arm_bell(BELL_ON_DATA);
        } else {
            tx.arm_bell(BELL_ON_ROOM);
        }
        let waited = if ready(ring)? || closed() {
            Waited::Woken
        } else {
            let ms = TICK.as_millis() as i32;
            let (anchor, signal) = poll_pair(self.anchor, sigs, ms);
            if anchor {
                self.drain_bells();
            }
            if signal {
                held.pending().map_or(Waited::Woken, |stop| {
                    if stop {
                        Waited::Interrupted
                    } else {
                        Waited::Woken
                    }
                })
            } else if anchor {
                Waited::Woken
            } else {
                Waited::Tick
            }
        };
        crate::platform::kfd_close(sigs).ok();
        drop(held);
        Ok(waited)
    }

    /// shutdown(SHUT_WR) by any holder: the peer reads end-of-stream after
    /// the bytes already sent; this end's sends are EPIPE from now on.
    pub fn shutdown_write(&self) {
        let (_, tx) = self.rings();
        tx.finish();
        if tx.take_bell(BELL_ON_DATA) {
            anchor::ring_bell(self.anchor);
        }
    }

    /// Before a read of up to `want` bytes, under the reader lock: how many
    /// it may take (a read stops at the urgent mark), having skipped the
    /// urgent byte when the read starts on it out of line (SO_OOBINLINE
    /// off; skipped whether or not MSG_OOB took it) or forgotten the mark
    /// once the reader is past it.
    fn urgent_limit(&self, rx: &Ring<'_>, want: usize, peek: bool) -> Result<usize, Errno> {
        let (mark, st) = rx.urgent();
        if st == 0 {
            return Ok(want);
        }
        let head = rx.head();
        if head > mark {
            rx.change_urgent(st, 0);
            return Ok(want);
        }
        if head < mark {
            return Ok(want.min((mark - head).min(usize::MAX as u64) as usize));
        }
        if rx.oob_inline() || peek || rx.used().map_err(|c| self.corrupt(c))? == 0 {
            return Ok(want);
        }
        let mut one = [0u8; 1];
        rx.read(&mut one, 0, true).map_err(|c| self.corrupt(c))?;
        if st & URG_VALID == 0 {
            rx.change_urgent(st, 0);
        }
        Ok(want)
    }

    /// send(MSG_OOB): sends `buf` as [`Conn::send`] does, its last byte sent
    /// urgent (the mark), and wakes the peer's readers and pollers.
    pub fn send_urgent(&self, buf: &[u8], block: Block) -> Result<usize, Errno> {
        let n = self.send(buf, block)?;
        if n > 0 {
            let (_, tx) = self.rings();
            let mark = {
                let lock = tx.writer_lock();
                let _g = lock.lock().map_err(|c| self.corrupt(c))?;
                // The byte just written is the last one before the tail
                // (another holder's send may have followed: then its mark
                // is as near as this process can tell).
                let (head, used) = (tx.head(), tx.used().map_err(|c| self.corrupt(c))?);
                head.wrapping_add(used).wrapping_sub(1)
            };
            tx.set_urgent(mark, buf[n - 1]);
            let owner = tx.owner();
            if owner != 0 {
                crate::platform::send_owner_signal(owner, SIGURG);
            }
            tx.wake_all();
            if tx.take_bell(BELL_ON_DATA) {
                anchor::ring_bell(self.anchor);
            }
            // The peer's pollers look again: a doorbell even if unasked.
            anchor::ring_bell(self.anchor);
        }
        Ok(n)
    }

    /// recv(MSG_OOB): the urgent byte, once (`peek` leaves it); EINVAL with
    /// SO_OOBINLINE on, without urgent data, or once it was read or the
    /// reader passed it.
    pub fn recv_urgent(&self, peek: bool) -> Result<u8, Errno> {
        let (rx, _) = self.rings();
        let (mark, st) = rx.urgent();
        if rx.oob_inline() || st & URG_VALID == 0 || rx.head() > mark {
            return Err(EINVAL);
        }
        if !peek {
            rx.change_urgent(st, URG_READ);
        }
        Ok(st as u8)
    }

    /// SIOCATMARK: the reader is on the urgent mark.
    pub fn at_mark(&self) -> bool {
        let (rx, _) = self.rings();
        let (mark, st) = rx.urgent();
        st != 0 && rx.head() == mark
    }

    /// Whether an urgent mark lies ahead of (or at) the reader.
    pub fn has_urgent(&self) -> bool {
        let (rx, _) = self.rings();
        let (mark, st) = rx.urgent();
        st != 0 && rx.head() <= mark
    }

    /// This end's F_SETOWN owner, where the peer's urgent data sends
    /// SIGURG.
    pub fn set_owner(&self, pid: i32) {
        let (rx, _) = self.rings();
        rx.set_owner(pid);
    }

    /// SO_OOBINLINE of this end, for every holder.
    pub fn set_oob_inline(&self, on: bool) {
        let (rx, _) = self.rings();
        rx.set_oob_inline(on);
    }

    /// Bytes a read may take now: up to the mark while an out-of-line
    /// urgent byte lies ahead, or the bytes past it when the reader is on
    /// it (FIONREAD, and readiness).
    fn inq(&self, rx: &Ring<'_>) -> Result<u64, Corrupt> {
        let used = rx.used()?;
        let (mark, st) = rx.urgent();
        let head = rx.head();
        if st == 0 || rx.oob_inline() || head > mark {
            return Ok(used);
        }
        Ok(if head == mark {
            used.saturating_sub(1)
        } else {
            used.min(mark - head)
        })
    }

    /// Takes the pending error of a reset (SO_ERROR, or a call that
    /// reports it): ECONNRESET, or EPIPE after a send to a closed peer.
    pub fn take_error(&self) -> Option<Errno> {
        let now = self.peer_now(self.due(), self.peer_closes());
        let e = match now {
            RESET => ECONNRESET,
            PIPE => EPIPE,
            _ => return None,
        };
        self.peer
            .compare_exchange(now, RESET_TOLD, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| e)
    }

    /// Whether the connection was reset (a closed TCP connection: no peer).
    pub fn was_reset(&self) -> bool {
        matches!(
            self.peer_now(false, self.peer_closes()),
            RESET | RESET_TOLD | PIPE
        )
    }

    /// This holder's close is to reset the connection (SO_LINGER 0):
    /// the peer reads a reset once the end's last holder is gone.
    pub fn abort(&self) {
        self.seg.reset(self.side).store(1, Ordering::Release);
    }

    /// shutdown(SHUT_RD) by any holder: every reader of this end, blocked
    /// or not, finds end-of-stream after the bytes already here.
    pub fn shutdown_read(&self) {
        let (rx, _) = self.rings();
        rx.shut_read();
    }

    /// Bytes waiting to be read (SIOCINQ) and bytes sent that the peer has
    /// not read yet (SIOCOUTQ).
    pub fn queued(&self) -> Result<(u64, u64), Errno> {
        let (rx, tx) = self.rings();
        let c = |r: Result<u64, Corrupt>| r.map_err(|c| self.corrupt(c));
        Ok((c(self.inq(&rx))?, c(tx.used())?))
    }

    /// What poll would report now.
    pub fn readiness(&self) -> Readiness {
        let (rx, tx) = self.rings();
        let peer = self.peer_now(self.due(), self.peer_closes());
        let (Ok(inq), Ok(room)) = (self.inq(&rx), tx.room()) else {
            return Readiness {
                readable: true,
                writable: true,
                rdhup: true,
                hup: true,
                err: true,
                pri: false,
            };
        };
        let rx_fin = rx.flags() & (super::ring::FIN | super::ring::RD_SHUT) != 0 || peer != OPEN;
        let tx_fin = tx.flags() & super::ring::FIN != 0;
        Readiness {
            readable: inq > 0 || rx_fin,
            writable: room > 0 || peer != OPEN,
            rdhup: rx_fin,
            // As tcp_poll: hung up once reset, or both directions are
            // over; a peer that closed cleanly is only end-of-stream.
            hup: matches!(peer, RESET | RESET_TOLD | PIPE) || (rx_fin && tx_fin),
            err: matches!(peer, RESET | PIPE),
            pri: {
                let (mark, st) = rx.urgent();
                st & URG_VALID != 0 && rx.head() <= mark && !rx.oob_inline()
            },
        }
    }

    /// A number that moves whenever something poll could report moved:
    /// bytes arrived, the peer took bytes (room), a FIN, the peer's
    /// closes. Edge-triggered epoll reports the socket again only when it
    /// moved (a doorbell taken after its data was reported is no news).
    pub fn changes(&self) -> u64 {
        // Read before the ring, as `readiness` does: the peer's going that
        // its closes reveal is taken in now, so that the readiness reported
        // with this number already shows it (an edge-triggered registration
        // would otherwise be told of it a second time).
        let closes = self.peer_closes();
        let peer = self.peer_now(false, closes);
        let (rx, tx) = self.rings();
        // Every byte the peer wrote, and every byte it took.
        let arrived = rx.head().wrapping_add(rx.used().unwrap_or(0));
        // What the peer's state adds to the ring's words, as readiness
        // shows it: its going after its FIN, with room left, adds nothing
        // (the hangup of its anchor that follows its close is no event),
        // and a reset is one event whether or not a recv reported it yet.
        let fin = rx.flags() & (super::ring::FIN | super::ring::RD_SHUT) != 0;
        let shown = match peer {
            OPEN => OPEN,
            GONE if fin && tx.room().is_ok_and(|n| n > 0) => OPEN,
            RESET_TOLD => RESET,
            p => p,
        };
        let odd = |v: u64, k: u64| v.wrapping_mul(k);
        odd(arrived, 0x9e37_79b9_7f4a_7c15)
            ^ odd(tx.head(), 0xc2b2_ae3d_27d4_eb4f)
            ^ odd(u64::from(rx.flags()), 0x1656_67b1_9e37_79f9)
            ^ odd(
                u64::from(closes) << 8 | u64::from(shown),
                0x85eb_ca77_c2b2_ae63,
            )
            ^ odd(
                u64::from(self.seg.reset(self.side.peer()).load(Ordering::Acquire)),
                0x27d4_eb2f_1656_67c5,
            )
    }

    /// This end's receive buffer (SO_RCVBUF): the peer keeps at most
    /// `bytes` unread in the ring this end reads. A peer waiting for room
    /// that a larger window gives is woken.
    pub fn set_window(&self, bytes: usize) {
        let (rx, _) = self.rings();
        if rx.set_window(bytes) {
            anchor::ring_bell(self.anchor);
        }
    }

    /// Before a sleep in poll/epoll on the anchor: asks the peer for a
    /// doorbell when data (`data`) or room (`room`) appears. The caller
    /// looks at [`Conn::readiness`] again afterwards, then sleeps.
    pub fn arm(&self, data: bool, room: bool) {
        let first = data
            && !room
            && self
                .armed
                .compare_exchange(UNARMED, ARMED_ONCE, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        if !first {
            self.armed.store(ARMED, Ordering::Relaxed);
        }
        let (rx, tx) = self.rings();
        if data {
            rx.arm_bell(BELL_ON_DATA);
        }
        if room {
            tx.arm_bell(BELL_ON_ROOM);
        }
    }

    /// [`Conn::drain_bells`] before a poller's sleep: a system call saved
    /// at the first, which no doorbell of this process's asking can
    /// precede (one another holder asked for, an unasked urgent one, or
    /// the peer's hangup makes the anchor readable: that sleep then ends
    /// at once and the next drain takes it).
    ///
    /// The first drain after a first request for data only is left out
    /// too while that request still stands (the peer took no doorbell
    /// since, so it rang none): a registration's arm and look, as epoll's
    /// EPOLL_CTL_ADD makes them, then cost no system call. A hangup or a
    /// doorbell another holder asked for wakes the sleep at once, and the
    /// next drain takes it.
    pub fn drain_armed(&self) -> bool {
        match self.armed.load(Ordering::Relaxed) {
            UNARMED => false,
            ARMED_ONCE
                if self
                    .armed
                    .compare_exchange(ARMED_ONCE, ARMED, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
                    && self.rings().0.bell_asked(BELL_ON_DATA) =>
            {
                false
            }
            _ => self.drain_bells(),
        }
    }

    /// After a wake-up: takes the doorbells off the anchor, so that it is
    /// readable again only at the next one.
    pub fn drain_bells(&self) -> bool {
        let (any, eof) = anchor::drain_bells_or_eof(self.anchor);
        if eof {
            // The peer's last holder is gone: the authoritative look.
            self.peer_state();
        }
        any
    }
}

impl Conn {
    /// This process's hold on the end ends now (the socket's last fd here
    /// closed), though the `Conn` may live on a while (an epoll set's
    /// table still names the socket): the anchor's number becomes a
    /// stand-in, so the kernel's count of holders drops and nothing done
    /// on the number later reaches another file. The connection itself
    /// ends when the last holder's hold does, which the peer sees on its
    /// anchor. Once; also at drop.
    pub fn release(&self) {
        if self.released.swap(true, Ordering::AcqRel) {
            return;
        }
        if crate::platform::kfd_anchor_at(self.anchor).is_err() {
            // No stand-in to be had: the number closes now (and at drop,
            // harmlessly, unless reused meanwhile: hence the stand-in).
            crate::platform::kfd_close(self.anchor).ok();
        }
        // After the close, so that a peer that wakes and asks the kernel
        // finds the anchor hung up when this was the last holder.
        self.seg.closes(self.side).fetch_add(1, Ordering::AcqRel);
        let (rx, tx) = self.rings();
        rx.wake_all();
        tx.wake_all();
    }
}

impl Drop for Conn {
    /// Lets go of the end (if not yet done) and closes the numbers; the
    /// mapping goes with the segment.
    fn drop(&mut self) {
        self.release();
        crate::platform::kfd_close(self.anchor).ok();
        if self.memfd >= 0 {
            crate::platform::kfd_close(self.memfd).ok();
        }
    }
}

/// A listening anchor: its accept queue is the kernel's, shared by every
/// process that holds the fd (after fork, or received by exec or
/// SCM_RIGHTS), and each connection is accepted by one of them.
pub struct Listener {
    kfd: i32,
    /// This process let go of it ([`Listener::release`]).
    released: core::sync::atomic::AtomicBool,
}

impl Listener {
    /// Listens at `path` with the kernel's accept queue of `backlog`.
    pub fn bind(path: &std::path::Path, backlog: i32) -> Result<Listener, Errno> {
        Ok(Listener::adopt(anchor_ipc::listen_at(path, backlog)?))
    }

    /// The listener of an anchor already bound and listening (its fd is
    /// the listener's from now on).
    pub fn adopt(kfd: i32) -> Listener {
        Listener {
            kfd,
            released: core::sync::atomic::AtomicBool::new(false),
        }
    }

    /// This process's hold on the listener ends now, as [`Conn::release`]:
    /// the number becomes a stand-in, and the queue lives on only in the
    /// processes that still hold the anchor.
    pub fn release(&self) {
        if !self.released.swap(true, Ordering::AcqRel)
            && crate::platform::kfd_anchor_at(self.kfd).is_err()
        {
            crate::platform::kfd_close(self.kfd).ok();
        }
    }

    /// The listening anchor's fd.
    pub fn anchor(&self) -> i32 {
        self.kfd
    }

    /// shutdown(SHUT_RD) of the listener, for every holder: the anchor's
    /// own shutdown refuses new connects and wakes each blocked accept
    /// (the anchor polls hung up from now on), and each connection still
    /// queued is taken and reset, as Linux resets a stopped listener's
    /// queue.
    pub fn stop(&self) {
        anchor_ipc::shutdown(self.kfd);
        // After the shutdown the kernel's accept still gives what was
        // queued, then says EINVAL instead of waiting (so this never
        // blocks, whatever the anchor's O_NONBLOCK). Bounded: the queue
        // holds at most the backlog.
        for _ in 0..4096 {
            let Ok(k) = anchor_ipc::accept_nonblocking(self.kfd) else {
                break;
            };
            let mut body = [0u8; 64];
            if let Ok((c, _)) = Conn::accepted(k, &mut body) {
                c.abort();
            }
        }
    }

    /// An untimed wait for a connection (or the listener's shutdown): in
    /// poll on the anchor beside a signalfd of the held signals, so that
    /// a signal's handler is looked at before it runs. EINTR unless every
    /// handler that ran has SA_RESTART.
    pub fn wait_untimed(&self) -> Result<anchor_ipc::AnchorState, Errno> {
        self.wait_untimed_on(self.kfd)
    }

    /// As [`Listener::wait_untimed`], sleeping on `fd` (which wakes for
    /// the anchor and more: a deferring listener's set); what the anchor
    /// says after it.
    pub fn wait_untimed_on(&self, fd: i32) -> Result<anchor_ipc::AnchorState, Errno> {
        let held = SignalsHeld::new();
        let sigs = held.watch()?;
        let (_, signal) = poll_pair(fd, sigs, -1);
        crate::platform::kfd_close(sigs).ok();
        if signal && held.pending() == Some(true) {
            return Err(EINTR);
        }
        drop(held);
        anchor_ipc::anchor_poll(self.kfd, true, 0)
    }

    /// Accepts the next connection, with the anchor's own blocking mode,
    /// timeout and signal rules (the kernel's accept), and takes its offer
    /// (its body is copied into `body`). A connecting end that breaks the
    /// protocol, or another user's, is dropped and the next one taken, as
    /// Linux drops a handshake that fails before accept.
    pub fn accept(&self, body: &mut [u8]) -> Result<(Conn, usize), Errno> {
        loop {
            let k = anchor_ipc::accept(self.kfd)?;
            match Conn::accepted(k, body) {
                Err(EPROTO | EACCES | ECONNRESET) => continue,
                r => return r,
            }
        }
    }

    /// As [`Listener::accept`], without waiting for a connection whatever
    /// the anchor's O_NONBLOCK: EAGAIN when none is queued (after a jiffy
    /// at most, when another holder took the one a look found, once
    /// [`anchor_ipc::short_accepts`] bounded the kernel's accept). The
    /// end's anchor is blocking, as one [`Listener::accept`] gives.
    pub fn accept_now(&self, body: &mut [u8]) -> Result<(Conn, usize), Errno> {
        loop {
            if !anchor_ipc::anchor_poll(self.kfd, true, 0)?.readable {
                return Err(EAGAIN);
            }
            let k = anchor_ipc::accept_nonblocking(self.kfd)?;
            if let Err(e) = anchor_ipc::set_nonblocking(k, false) {
                crate::platform::kfd_close(k).ok();
                return Err(e);
            }
            match Conn::accepted(k, body) {
                Err(EPROTO | EACCES | ECONNRESET) => continue,
                r => return r,
            }
        }
    }
}

impl Drop for Listener {
    /// Lets go of the listener (if not yet done) and closes the number.
    fn drop(&mut self) {
        self.release();
        crate::platform::kfd_close(self.kfd).ok();
    }
}

//! The data path: send and receive, stream and datagram, with Linux's
//! blocking, timeout and error rules.

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use super::dgram_attrs::SendCtl;
use super::*;
use crate::backend::attrs::{DgramAttrs, ATTR_LEN};
use crate::backend::contract::ClaimOp;
use crate::sockbuf::MAX_ADDR_LEN;

/// Sockets made so far in this process: the next one's datagram ids.
static DGRAM_ID_BASES: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// The high half of a new socket's datagram ids. A receiver keys the
/// fragments of a datagram by (id, source), and unnamed AF_UNIX senders
/// share one source: ids must differ between every two sockets of the
/// process, including a closed socket and a later one in the same slot of
/// the socket table (its pieces of a datagram that never completed may
/// still wait in a receiver), so they come from a count of sockets made,
/// not from the slot. Unique for 2^32 sockets.
pub(super) fn dgram_id_base() -> u64 {
    DGRAM_ID_BASES.fetch_add(1, Ordering::Relaxed) << 32
}

/// What a receive produced.
#[derive(Clone, Copy, Debug, Default)]
pub struct RecvInfo {
    /// The value recv() returns: bytes copied, or with MSG_TRUNC on a
    /// datagram socket the datagram's full length.
    pub ret: usize,
    /// The datagram did not fit (MSG_TRUNC in msg_flags).
    pub truncated: bool,
    /// The sender's address (datagram sockets).
    pub addr: Option<SockAddr>,
    /// When the data returned was received, wall-clock ns (0: not
    /// recorded): the datagram's, or a stream's latest arrival.
    pub stamp_ns: u64,
    /// An error-queue read (MSG_ERRQUEUE): what its entry says.
    pub err: Option<super::errqueue::ErrInfo>,
    /// The datagram's IP header fields, when the socket asked for a cmsg
    /// of theirs as it arrived and its backend told them.
    pub attrs: Option<DgramAttrs>,
    /// AF_UNIX: what the read took (credentials, fds), for recvmsg
    /// (`inflight::taken`; 0: nothing).
    pub scm: u64,
    /// SO_RXQ_OVFL: the socket's drops when the datagram was queued (0:
    /// none, or not asked).
    pub drops: u32,
}

/// Largest datagram accepted (UDP over IPv4's limit; Linux gives EMSGSIZE
/// beyond it).
pub const DGRAM_MAX: usize = 65_507;

fn total_len(bufs: &[&mut [u8]]) -> usize {
    bufs.iter().map(|b| b.len()).sum()
}

impl Socket {
    pub(super) fn blocking(&self, flags: i32) -> bool {
        flags & MSG_DONTWAIT == 0 && !self.nonblocking()
    }

    /// recv()/recvfrom()/recvmsg() into one or more buffers.
    pub fn recv(&self, bufs: &mut [&mut [u8]], flags: i32) -> Result<RecvInfo, Errno> {
        let collect = flags & super::scm::MSG_TAKES_CONTROL != 0;
        let flags = flags & !super::scm::MSG_TAKES_CONTROL;
        if let Some(r) = self.recv_shared(bufs, flags) {
            return r;
        }
        if flags & MSG_ERRQUEUE != 0 {
            // The error queue never waits (sock_recv_errqueue).
            let (ret, truncated, err, addr) = self.recv_errqueue(bufs, flags & MSG_PEEK != 0)?;
            return Ok(RecvInfo {
                ret,
                truncated,
                err: Some(err),
                addr,
                ..Default::default()
            });
        }
        if flags & MSG_OOB != 0 {
            if !self.is_stream() || self.keeps_records() {
                return Err(EOPNOTSUPP);
            }
            let first = bufs.iter_mut().find(|b| !b.is_empty()).map(|b| &mut b[0]);
            let ret = self.recv_urgent(first, flags & MSG_PEEK != 0)?;
            return Ok(RecvInfo {
                ret,
                truncated: ret == 0,
                ..Default::default()
            });
        }
        match self.rx() {
            Rx::Stream(sb) if self.keeps_records() => self.recv_record(sb, bufs, flags, collect),
            Rx::Stream(sb) => {
                let want = total_len(bufs);
                let mut scm = super::inflight::StreamRead::default();
                let r = self.recv_stream(sb, bufs, flags, want, &mut scm);
                let scm = scm.finish(collect && r.is_ok());
                r.map(|ret| RecvInfo {
                    ret,
                    stamp_ns: self.tcp.last_arrival_ns(),
                    scm,
                    ..Default::default()
                })
            }
            Rx::Dgram(db) => self.recv_dgram(db, bufs, flags, collect),
        }
    }

    /// recv() with MSG_TRUNC on a stream socket: up to `len` bytes
    /// discarded (or, with MSG_PEEK, counted), no buffer touched, so the
    /// caller's may be NULL (as Linux's tcp_recvmsg allows).
    pub fn recv_stream_trunc(&self, len: usize, flags: i32) -> Result<usize, Errno> {
        if flags & MSG_OOB != 0 {
            return Err(EINVAL);
        }
        if let Some(r) = self.recv_shared_trunc(len, flags) {
            return r;
        }
        match self.rx() {
            Rx::Stream(sb) => {
                self.recv_stream(sb, &mut [], flags | MSG_TRUNC, len, &mut Default::default())
            }
            Rx::Dgram(_) => Err(EOPNOTSUPP),
        }
    }

    /// `want`: the bytes asked for (the buffers' total, or a MSG_TRUNC
    /// length with no buffer).
    fn recv_stream(
        &self,
        sb: &StreamBuf,
        bufs: &mut [&mut [u8]],
        flags: i32,
        want: usize,
        scm: &mut super::inflight::StreamRead,
    ) -> Result<usize, Errno> {
        let unconnected = if self.info.domain == AF_UNIX {
            EINVAL
        } else {
            ENOTCONN
        };
        if self.phase() == Phase::Listening {
            return Err(unconnected);
        }
        let unix = self.info.domain == AF_UNIX;
        if want == 0 {
            if unix && super::inflight::any_queued() {
                // A read of no bytes still takes a message's fds.
                let _g = self.rx_lock.lock();
                let at = sb.read_offset();
                let avail = sb.readable();
                if avail > 0 {
                    scm.cap(self.handle, at, avail, false);
                    scm.took(self.handle, at, 0, flags & MSG_PEEK != 0);
                }
            }
            return Ok(0);
        }
        // AF_UNIX: a read stops where credentials change (when asked
        // for) and after a message with fds (`inflight::StreamRead`).
        let passcred = unix && super::inflight::any_queued() && self.ctl.lock().opts.passcred();
        let peek = flags & MSG_PEEK != 0;
        let waitall = flags & MSG_WAITALL != 0 && !peek;
        let deadline = self.rcv_deadline();
        // What was read so far, or `e` if nothing was.
        let so_far = |got: usize, e: Errno| if got > 0 { Ok(got) } else { Err(e) };
        // sock_rcvlowat: a read returns once it has SO_RCVLOWAT's bytes
        // (all of them with MSG_WAITALL), or fewer at end of stream.
        let target = if waitall {
            want
        } else if peek {
            1
        } else {
            (self.rcv_lowat.load(Ordering::Relaxed) as usize).min(want)
        };
        let mut got = 0usize;
        let mut pumped = false;
        loop {
            let (n, grew, at_mark) = {
                let _g = self.rx_lock.lock();
                // Urgent data: a read stops at the mark (and skips an
                // out-of-band byte it starts on).
                let limit = if peek {
                    None
                } else {
                    self.urgent_read_limit(sb)
                };
                let at = sb.read_offset();
                let scm_cap = if unix {
                    scm.cap(self.handle, at, sb.readable(), passcred)
                } else {
                    None
                };
                if scm_cap == Some(0) {
                    return Ok(got);
                }
                let limit = match (limit, scm_cap) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                let room = limit.map_or(want - got, |l| l.min(want - got));
                let n = if peek && flags & MSG_TRUNC != 0 && self.info.domain != AF_UNIX {
                    // Linux's tcp_recvmsg copies nothing under MSG_TRUNC,
                    // peeking or not: it says how much there is.
                    sb.readable().min(want - got)
                } else if peek {
                    let off = self.peek_off.load(Ordering::Relaxed);
                    if off >= 0 {
                        let n = peek_into_at(sb, off as usize, bufs);
                        self.peek_off.fetch_add(n as i32, Ordering::Relaxed);
                        n
                    } else {
                        peek_into(sb, bufs)
                    }
                } else if flags & MSG_TRUNC != 0 {
                    self.peek_off_back(discard(sb, room))
                } else {
                    self.peek_off_back(read_capped(sb, bufs, got, room))
                };
                if unix && n > 0 {
                    scm.took(self.handle, at, n, peek);
                }
                (
                    n,
                    n > 0 && !peek && self.autotune(sb, n),
                    limit == Some(n) || scm.stop,
                )
            };
            if n > 0 {
                got += n;
                if grew {
                    self.advertise_window_now();
                } else if !peek {
                    self.advertise_window();
                }
                if got >= target || at_mark {
                    return Ok(got);
                }
                continue;
            }
            let f = self.flags();
            if sb.at_eof() || f.has(F_RD_SHUT) {
                return Ok(got);
            }
            if f.has(F_RESET) {
                // Data first, then the one error report, then the
                // connection reads as shut.
                return match (got, self.take_error()) {
                    (0, Some(e)) => Err(e),
                    _ => Ok(got),
                };
            }
            if f.has(F_CLOSED) {
                return so_far(got, EBADF);
            }
            if f.is(Phase::Idle) || f.is(Phase::Listening) {
                // tcp_recvmsg: a pending error (one connect(AF_UNSPEC)
                // left) before TCP_CLOSE's ENOTCONN.
                if self.info.domain != AF_UNIX && f.has(F_ERROR) {
                    return Err(self.take_error().unwrap_or(unconnected));
                }
                return Err(unconnected);
            }
            if !self.blocking(flags) {
                if !pumped && self.pump_orphan() {
                    pumped = true;
                    continue;
                }
                return so_far(got, EAGAIN);
            }
            // Any new byte, not SO_RCVLOWAT's worth: the read takes it and
            // counts on towards its target.
            let more = || {
                sb.readable() > 0
                    || self.readiness() & (POLLIN | POLLERR | POLLHUP) != 0
                    || self.has(F_CLOSED)
            };
            match self.block_until(more, deadline) {
                Waited::TimedOut => return so_far(got, EAGAIN),
                Waited::Interrupted => return so_far(got, EINTR),
                Waited::Ready => {}
            }
        }
    }

    fn recv_dgram(
        &self,
        db: &DgramBuf,
        bufs: &mut [&mut [u8]],
        flags: i32,
        collect: bool,
    ) -> Result<RecvInfo, Errno> {
        let peek = flags & MSG_PEEK != 0;
        // SO_RCVTIMEO's deadline, fixed at the first wait: a datagram
        // already queued costs no clock read.
        let mut deadline = None;
        let mut src = [0u8; MAX_ADDR_LEN];
        loop {
            // UDP reports a pending error before queued datagrams
            // (__skb_recv_udp looks at sock_error first).
            if self.info.domain != AF_UNIX {
                if let Some(e) = self.take_error() {
                    return Err(e);
                }
            }
            // SO_PEEK_OFF: a peek starts that far into the datagram and
            // moves it on; a read moves it back by the datagram.
            let off = self.peek_off.load(Ordering::Relaxed);
            let meta = {
                let _g = self.rx_lock.lock();
                let take = |b: &mut [u8], src: &mut [u8]| {
                    if !peek {
                        db.read(b, src)
                    } else if off >= 0 {
                        db.peek_at(off as usize, b, src)
                    } else {
                        db.peek(b, src)
                    }
                };
                let m = if bufs.len() == 1 {
                    take(&mut *bufs[0], &mut src)
                } else {
                    let mut tmp = vec![0u8; total_len(bufs)];
                    let m = take(&mut tmp, &mut src);
                    if let Some(m) = m {
                        scatter(&tmp[..m.copied], bufs);
                    }
                    m
                };
                if let (Some(m), true) = (m, off >= 0) {
                    if peek {
                        self.peek_off.fetch_add(m.copied as i32, Ordering::Relaxed);
                    } else {
                        self.peek_off_back(m.len);
                    }
                }
                // A datagram read made room for a shrink SO_RCVBUF had to
                // leave pending.
                if m.is_some() && !peek && self.has(F_RCVBUF_PENDING) {
                    self.follow_rcvbuf(false);
                }
                m
            };
            if let Some(m) = meta {
                // Told once half the buffer is free, not at the first
                // read: a backend that offers its datagrams again then
                // fills it with several, not one per read. AF_UNIX: at
                // every read, which may let a sender its backend turned
                // away (a full queue, max_dgram_qlen) go on, as
                // unix_dgram_recvmsg wakes the peer's writers.
                let room = self.info.domain == AF_UNIX
                    || (self.flags().has(F_DGRAM_REFUSED) && db.used() <= db.capacity() / 2);
                if !peek && room {
                    self.clear(F_DGRAM_REFUSED);
                    if let Some(b) = self.binding() {
                        b.backend.window(self.sref(b), db.capacity() as u64);
                    }
                }
                // An IP source may be followed by the datagram's
                // attributes (`SocketFrontend::deliver_attrs` kept them).
                let held = &src[..m.src_len.min(MAX_ADDR_LEN)];
                // AF_UNIX: the key of what the datagram carries
                // (`inflight`), taken with it (truncated or not).
                let (held, key) = super::inflight::split_key(held);
                let scm = key.map_or(0, |k| {
                    super::inflight::take_dgram(self.handle, k, peek, collect)
                });
                let (held, attrs, drops) = split_attrs(held);
                let addr = SockAddr::from_bytes(held);
                let skipped = if peek && off >= 0 {
                    (off as usize).min(m.len)
                } else {
                    0
                };
                let truncated = m.len - skipped > m.copied;
                let stamp_ns = if m.stamp != 0 {
                    m.stamp
                } else {
                    crate::platform::realtime_ns().max(1)
                };
                self.stamp_ns.store(stamp_ns, Ordering::Relaxed);
                return Ok(RecvInfo {
                    stamp_ns,
                    ret: if flags & MSG_TRUNC != 0 {
                        m.len
                    } else {
                        m.copied
                    },
                    truncated,
                    addr,
                    err: None,
                    attrs,
                    scm,
                    drops,
                });
            }
            if let Some(e) = self.take_error() {
                return Err(e);
            }
            let f = self.flags();
            if f.has(F_CLOSED) {
                return Err(EBADF);
            }
            // Read side shut and nothing queued: a call that would wait
            // returns 0 at once (__skb_wait_for_more_packets), one that
            // would not is EAGAIN; datagrams still arrive.
            if !self.blocking(flags) {
                return Err(EAGAIN);
            }
            if f.has(F_RD_SHUT) {
                return Ok(RecvInfo::default());
            }
            let until = *deadline.get_or_insert_with(|| self.rcv_deadline());
            match self.wait_for(POLLIN, until) {
                Waited::TimedOut => return Err(EAGAIN),
                Waited::Interrupted => return Err(EINTR),
                Waited::Ready => {}
            }
        }
    }

    /// A read took `n` bytes: SO_PEEK_OFF, when on, moves back by as
    /// many (not below 0: sk_peek_offset_bwd). Returns `n`.
    pub(super) fn peek_off_back(&self, n: usize) -> usize {
        let n32 = n.min(i32::MAX as usize) as i32;
        let mut o = self.peek_off.load(Ordering::Relaxed);
        // Reads are serialised by rx_lock; the loop only meets a
        // concurrent setsockopt(SO_PEEK_OFF).
        while o >= 0 {
            match self.peek_off.compare_exchange_weak(
                o,
                (o - n32).max(0),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => o = now,
            }
        }
        n
    }

    /// SIOCGSTAMP(NS): when the last datagram read was received (its
    /// arrival), in wall-clock ns; ENOENT before any, and always on a
    /// stream socket (as Linux's TCP, which records none).
    pub fn last_stamp_ns(&self) -> Result<u64, Errno> {
        match self.stamp_ns.load(Ordering::Relaxed) {
            0 => Err(ENOENT),
            t => Ok(t),
        }
    }

    /// SIOCOUTQ/TIOCOUTQ of an AF_UNIX socket: what it sent that the
    /// receiver has not read yet, as its backend tells (0 when it cannot,
    /// and for a listener or an unconnected socket); a TCP socket's
    /// [`unsent`](Self::unsent) bytes (usockstat's Send-Q).
    pub fn unread_by_peer(&self) -> u64 {
        match self.binding() {
            Some(b) if self.info.domain == AF_UNIX => b.backend.unread(self.sref(b)).unwrap_or(0),
            Some(_) if self.is_stream() => self.unsent(),
            _ => 0,
        }
    }

    /// Bytes a FIONREAD would report: readable stream bytes, or the size of
    /// the next datagram.
    pub fn pending_bytes(&self) -> usize {
        if let Some(inq) = self.shared_inq() {
            return inq as usize;
        }
        match self.rx() {
            Rx::Stream(sb) if self.keeps_records() => self.records.queued_bytes(sb),
            Rx::Stream(sb) => self.urgent_inq(sb, sb.readable()),
            Rx::Dgram(db) => db.next_len().unwrap_or(0),
        }
    }

    /// send()/sendto()/sendmsg() from one or more buffers. Raises SIGPIPE on
    /// EPIPE unless MSG_NOSIGNAL.
    pub fn send(
        &self,
        bufs: &[&[u8]],
        flags: i32,
        dest: Option<&SockAddr>,
    ) -> Result<usize, Errno> {
        self.send_with(bufs, flags, dest, &SendCtl::default())
    }

    /// send(), with what a sendmsg's control messages ask of a datagram
    /// (`ctl`; a stream socket ignores it, as TCP does these).
    pub fn send_with(
        &self,
        bufs: &[&[u8]],
        flags: i32,
        dest: Option<&SockAddr>,
        ctl: &SendCtl,
    ) -> Result<usize, Errno> {
        if flags & MSG_FASTOPEN != 0 && self.is_stream() && self.info.domain != AF_UNIX {
            // sendto(MSG_FASTOPEN) connects, then sends (tcp_sendmsg_fastopen;
            // the data goes after the handshake rather than in the SYN).
            if let (Some(d), Phase::Idle) = (dest, self.phase()) {
                if !super::options::tfo_client_enabled() {
                    return Err(EOPNOTSUPP);
                }
                self.connect(d)?;
            }
        }
        // The buffers of one call go to a stream's peer as one piece where
        // they fit: Linux queues a small sendmsg/writev as one buffer, and
        // a reader woken by its first part must find all of it.
        let gathered;
        let one: [&[u8]; 1];
        let bufs = if self.is_stream()
            && !self.keeps_records()
            && bufs.iter().filter(|b| !b.is_empty()).count() > 1
            && bufs.iter().map(|b| b.len()).sum::<usize>() <= FRAG_MAX
        {
            gathered = bufs.concat();
            one = [&gathered];
            &one[..]
        } else {
            bufs
        };
        let r = if let Some(r) = self.send_shared(bufs, flags) {
            r
        } else if self.keeps_records() {
            // An address is ignored (unix_seqpacket_sendmsg).
            self.send_record(bufs, flags, ctl.scm)
        } else if self.is_stream() {
            self.send_stream(bufs, flags, dest, ctl.scm)
        } else {
            self.send_dgram(bufs, flags, dest, ctl)
        };
        if let (Ok(n), true) = (r, self.has(F_TXSTAMP)) {
            // SO_TIMESTAMPING's transmit stamp: the data left now.
            let sent: Vec<u8> = bufs
                .iter()
                .flat_map(|b| b.iter().copied())
                .take(n)
                .collect();
            self.queue_tx_stamp(&sent, self.timestamping_flags());
        }
        // AF_UNIX signals for streams only (unix_stream_sendmsg); its
        // datagram and seqpacket sockets return EPIPE alone.
        if r == Err(EPIPE)
            && flags & MSG_NOSIGNAL == 0
            && ((self.is_stream() && !self.keeps_records()) || self.info.domain != AF_UNIX)
        {
            crate::platform::raise_sigpipe();
        }
        r
    }

    fn stream_send_error(&self) -> Option<Errno> {
        let f = self.flags();
        if f.has(F_CLOSED) {
            return Some(EBADF);
        }
        if f.has(F_RESET) {
            return Some(self.take_error().unwrap_or(EPIPE));
        }
        if f.has(F_WR_SHUT) {
            return Some(EPIPE);
        }
        if !f.is(Phase::Connected) {
            // Linux: TCP reports EPIPE on a socket that never connected,
            // AF_UNIX reports ENOTCONN.
            // A pending error comes first (sk_stream_wait_connect: one
            // that connect(AF_UNSPEC) left).
            return Some(if f.is(Phase::Connecting) {
                EAGAIN
            } else if self.info.domain == AF_UNIX {
                ENOTCONN
            } else {
                self.take_error().unwrap_or(EPIPE)
            });
        }
        None
    }

    fn send_stream(
        &self,
        bufs: &[&[u8]],
        flags: i32,
        dest: Option<&SockAddr>,
        scm: u64,
    ) -> Result<usize, Errno> {
        // AF_UNIX streams keep one out-of-band byte as TCP does
        // (CONFIG_AF_UNIX_OOB): the same marking serves both.
        let urgent = flags & MSG_OOB != 0;
        if urgent {
            // Urgent data goes now, after anything corked.
            self.push_held();
        }
        // unix_stream_sendmsg: an address is EISCONN when connected, else
        // EOPNOTSUPP (a stream socket cannot send to a name).
        if dest.is_some() && self.info.domain == AF_UNIX {
            return Err(if self.phase() == Phase::Connected {
                EISCONN
            } else {
                EOPNOTSUPP
            });
        }
        let want: usize = bufs.iter().map(|b| b.len()).sum();
        let deadline = self.snd_deadline();
        // TCP_CORK or MSG_MORE: whole segments go out, the tail waits.
        let hold_mss = if !urgent && self.corking(flags) {
            let user_mss = self.ctl.lock().opts.maxseg();
            Some(self.tcp_maxseg(user_mss).max(1) as usize)
        } else {
            None
        };
        // Declared before the send lock's guard: dropped after it.
        let mut sender: Option<super::sndq::Sender<'_>> = None;
        let mut tx = self.tx.lock();
        let mut sent = 0usize;
        let mut pumped = false;
        let (mut bi, mut bo) = (0usize, 0usize);
        loop {
            // After a partial send, a reset or shutdown ends the call with
            // the count; the pending error stays for the next call, as on
            // Linux (stream_send_error would consume it).
            if sent > 0 && self.flags().has(F_RESET | F_WR_SHUT | F_CLOSED) {
                return Ok(sent);
            }
            if let Some(e) = self.stream_send_error() {
                if e == EAGAIN && self.blocking(flags) {
                    // Still connecting: wait for the outcome.
                    drop(tx);
                    self.wait_for(POLLOUT, deadline);
                    tx = self.tx.lock();
                    if self.phase() == Phase::Connecting {
                        return Err(EAGAIN);
                    }
                    continue;
                }
                return if sent > 0 { Ok(sent) } else { Err(e) };
            }
            if sent == want {
                return Ok(sent);
            }
            let limit = self.tx_limit.load(Ordering::Acquire);
            let room = limit.saturating_sub(tx.next);
            let held = tx.held.len() as u64;
            let mut credit = room.saturating_sub(held);
            if room > 0 && held > 0 && (credit == 0 || (tx.queueing && hold_mss.is_none())) {
                // Held bytes took the credit, or bytes queued past the
                // window (`sndq`) can go: they go now, or the wait for
                // credit would wait on them.
                let n = tx.held.len();
                let r = self.send_held(tx, n);
                tx = self.tx.lock();
                if let Err(e) = r {
                    return if sent > 0 { Ok(sent) } else { Err(e) };
                }
                continue;
            }
            let mut queue = false;
            if credit == 0 && sender.is_none() {
                // From now on this thread pushes the queue when credit
                // comes (`sndq::Sender`).
                sender = Some(super::sndq::Sender::new(self));
            }
            if credit == 0 && !urgent {
                // The window is full: the send queue (`sndq`) takes what
                // SO_SNDBUF allows (not urgent data, whose mark goes with
                // a fragment).
                credit = self.queue_room(held, held.saturating_sub(room));
                queue = credit > 0;
            }
            if credit == 0 {
                if !self.blocking(flags) {
                    if sent == 0 && !pumped {
                        drop(tx);
                        pumped = self.pump_orphan();
                        tx = self.tx.lock();
                        if pumped {
                            continue;
                        }
                    }
                    return if sent > 0 { Ok(sent) } else { Err(EAGAIN) };
                }
                let next = tx.next;
                let bump = self.tx_bump.load(Ordering::Acquire);
                // Not across the wait: it may process the backend's input.
                drop(tx);
                let w = self.block_until(
                    || {
                        self.tx_limit.load(Ordering::Acquire) > next
                            || self.tx_bump.load(Ordering::Acquire) != bump
                            || self.flags().has(F_RESET | F_WR_SHUT | F_CLOSED)
                    },
                    deadline,
                );
                if w != Waited::Ready {
                    let e = if w == Waited::TimedOut { EAGAIN } else { EINTR };
                    return if sent > 0 { Ok(sent) } else { Err(e) };
                }
                tx = self.tx.lock();
                continue;
            }
            while bi < bufs.len() && bo == bufs[bi].len() {
                bi += 1;
                bo = 0;
            }
            let chunk = &bufs[bi][bo..];
            let n = chunk
                .len()
                .min(FRAG_MAX)
                .min(credit.min(usize::MAX as u64) as usize);
            if queue || hold_mss.is_some() || !tx.held.is_empty() {
                // Through the held bytes, which come first.
                if queue && !tx.queueing {
                    tx.queueing = true;
                    self.queue_started();
                }
                self.hold(&mut tx, &chunk[..n]);
                sent += n;
                bo += n;
                let push = match hold_mss {
                    Some(mss) if super::cork::ceiling_runs() => tx.held.len() / mss * mss,
                    _ if sent == want => tx.held.len(),
                    _ => 0,
                };
                if push > 0 {
                    // The bytes were accepted: a connection that fails
                    // meanwhile shows on the next call, as on Linux.
                    let _ = self.send_held(tx, push);
                    tx = self.tx.lock();
                }
                continue;
            }
            let Some(b) = self.binding() else {
                return Err(ENOTCONN);
            };
            // The range is reserved under the send lock and written after
            // it: no frontend lock is held across a backend operation, so a
            // backend may make any upcall from inside `write`. Another
            // sender may reserve the next range meanwhile and reach the
            // backend first; the receiver's Socket Buffer orders by offset.
            let off = tx.next;
            tx.next += n as u64;
            self.tx_next.store(tx.next, Ordering::Release);
            drop(tx);
            // MSG_OOB: the call's last byte is the urgent one.
            let f = if urgent && sent + n == want {
                FLAG_URG
            } else {
                0
            };
            // Recorded before it goes, so that a capture shows it before
            // the peer's answer (a refused write is a lost connection).
            if self.capturing() {
                self.capture_stream(off, &chunk[..n]);
            }
            let frag = Fragment::stream(off, f, &chunk[..n]);
            let r = if self.info.domain == AF_UNIX && sent == 0 {
                // An AF_UNIX message starts here, with what it carries.
                b.backend.write_scm(self.sref(b), &frag, scm)
            } else {
                b.backend.write(self.sref(b), &frag)
            };
            tx = self.tx.lock();
            if let Err(e) = r {
                // Refused: the range is given back if nobody took a later
                // one (a backend refuses stream bytes when its connection
                // is gone, when nothing after them matters).
                if tx.next == off + n as u64 {
                    tx.next = off;
                    self.tx_next.store(off, Ordering::Release);
                }
                return if sent > 0 { Ok(sent) } else { Err(e) };
            }
            self.tcp.sent_segment();
            sent += n;
            bo += n;
        }
    }

    fn send_dgram(
        &self,
        bufs: &[&[u8]],
        flags: i32,
        dest: Option<&SockAddr>,
        ctl: &SendCtl,
    ) -> Result<usize, Errno> {
        // UDP has no urgent data: IPv4 refuses MSG_OOB, IPv6 ignores it
        // (udpv6_sendmsg does not look).
        if flags & MSG_OOB != 0 && self.info.domain != AF_INET6 {
            return Err(EOPNOTSUPP);
        }
        if let Some(e) = self.take_error() {
            return Err(e);
        }
        let f = self.flags();
        if f.has(F_CLOSED) {
            return Err(EBADF);
        }
        if f.has(F_WR_SHUT) {
            return Err(EPIPE);
        }
        let mapped;
        let dest = match dest {
            Some(d) if self.info.domain == AF_INET6 && d.family() != AF_UNSPEC => {
                mapped = self.inet6_send_addr(d)?;
                Some(&mapped)
            }
            Some(d) => {
                if self.info.domain == AF_UNIX && f.is(Phase::Connected) {
                    return Err(EISCONN);
                }
                if d.family() != self.info.domain
                    && !(d.family() == AF_UNSPEC && f.is(Phase::Connected))
                {
                    return Err(if self.info.domain == AF_UNIX {
                        EINVAL
                    } else {
                        EAFNOSUPPORT
                    });
                }
                // udp_sendmsg: a destination needs a port.
                if d.inet_port() == Some(0) {
                    return Err(EINVAL);
                }
                Some(d)
            }
            None => {
                if !f.is(Phase::Connected) {
                    return Err(if self.info.domain == AF_UNIX {
                        ENOTCONN
                    } else {
                        EDESTADDRREQ
                    });
                }
                None
            }
        };
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        // AF_UNIX takes what its send buffer can hold, less 32 bytes
        // (unix_dgram_sendmsg); IP, UDP's limit.
        let max = if self.info.domain == AF_UNIX {
            self.ctl.lock().opts.sndbuf().saturating_sub(32)
        } else {
            DGRAM_MAX
        };
        if len > max {
            return Err(EMSGSIZE);
        }
        if let Some(d) = dest {
            self.check_group_dest(d)?;
        }
        // IP and UDP headers: a datagram over the path MTU would be
        // fragmented, which IP_PMTUDISC_DO and IPV6_DONTFRAG forbid.
        let headers = if self.info.domain == AF_INET6 { 48 } else { 28 };
        if self.info.domain != AF_UNIX
            && len + headers > super::tcp_info::path_mtu(self.info.domain) as usize
            && self.dont_fragment()
        {
            return Err(EMSGSIZE);
        }
        if dest.is_some() && self.info.domain == AF_UNIX {
            self.passcred_autobind();
        }
        let b = match (self.binding(), dest) {
            (Some(b), _) => b,
            (None, Some(d)) => self.select(ClaimOp::SendTo, d)?,
            (None, None) => return Err(EDESTADDRREQ),
        };
        self.autobind_to_send(b)?;
        let joined;
        let data: &[u8] = if bufs.len() == 1 {
            bufs[0]
        } else {
            joined = bufs.concat();
            &joined
        };
        if self.info.domain != AF_UNIX {
            // UDP_CORK and MSG_MORE: the data joins the pending datagram,
            // which goes when a send without MSG_MORE ends it or the cork
            // comes off (udp_sendmsg's corkreq).
            let mut tx = self.tx.lock();
            if self.corking(flags) || tx.held_dgram.is_some() {
                if tx.held.len() + data.len() > DGRAM_MAX {
                    return Err(EMSGSIZE);
                }
                if tx.held_dgram.is_none() {
                    // The first piece's destination is the datagram's.
                    tx.held_dgram = Some(Box::new(dest.copied()));
                }
                tx.held.extend_from_slice(data);
                if self.corking(flags) {
                    return Ok(len);
                }
                let whole = core::mem::take(&mut tx.held);
                let to = tx.held_dgram.take().and_then(|t| *t);
                drop(tx);
                return self
                    .write_datagram_ctl(b, &whole, to.as_ref(), flags, ctl)
                    .map(|()| len);
            }
        }
        // UDP_SEGMENT: one send, datagrams of that size (the last shorter).
        let gso = self.udp_gso.load(Ordering::Relaxed) as usize;
        if gso > 0 && data.len() > gso {
            for piece in data.chunks(gso) {
                self.write_datagram_ctl(b, piece, dest, flags, ctl)?;
            }
            return Ok(len);
        }
        self.write_datagram_ctl(b, data, dest, flags, ctl)
            .map(|()| len)
    }

    /// Sends one datagram through the backend, in fragments of at most
    /// FRAG_MAX: waits (blocking) while a backend that keeps datagrams
    /// has no room.
    pub(super) fn write_datagram(
        &self,
        b: &Binding,
        data: &[u8],
        dest: Option<&SockAddr>,
        flags: i32,
    ) -> Result<(), Errno> {
        self.write_datagram_ctl(b, data, dest, flags, &SendCtl::default())
    }

    /// [`Self::write_datagram`] with a sendmsg's per-datagram asks: an IP
    /// datagram goes with its attributes (`backend::attrs`), the socket's
    /// cached options overridden by `ctl`.
    fn write_datagram_ctl(
        &self,
        b: &Binding,
        data: &[u8],
        dest: Option<&SockAddr>,
        flags: i32,
        ctl: &SendCtl,
    ) -> Result<(), Errno> {
        // A group datagram out of another interface than lo (`mcast`).
        let routed;
        let ctl = match dest.map(|d| self.group_route(d)) {
            Some(super::mcast::GroupRoute::NotLooped) => return Ok(()),
            Some(super::mcast::GroupRoute::Looped(src)) if ctl.src.is_none() => {
                routed = SendCtl { src, ..*ctl };
                &routed
            }
            _ => ctl,
        };
        let attrs = (self.info.domain != AF_UNIX).then(|| self.send_attrs(dest, ctl));
        let id = {
            let mut tx = self.tx.lock();
            // The high half is the socket's own (`dgram_id_base`), the low
            // half counts its datagrams.
            let next = tx.dgram_id.wrapping_add(1) & 0xffff_ffff;
            tx.dgram_id = (tx.dgram_id & !0xffff_ffff) | next;
            tx.dgram_id
        };
        let addr: &[u8] = dest.map(|d| d.as_bytes()).unwrap_or(&[]);
        // SO_SNDTIMEO's deadline, fixed at the first wait (most sends
        // never wait: no clock read for them).
        let mut deadline = None;
        // Recorded before it goes (a capture shows it before the answer);
        // a UDP datagram nobody takes is on the wire all the same.
        if self.capturing() {
            self.capture_dgram(dest, data);
        }
        let mut off = 0usize;
        loop {
            let n = (data.len() - off).min(FRAG_MAX);
            let frag =
                Fragment::dgram(id, off as u32, data.len() as u32, addr, &data[off..off + n]);
            // Read before the write: room made after it is seen.
            let room = self.tx_room.load(Ordering::SeqCst);
            let wrote = match &attrs {
                Some(a) => b.backend.write_attrs(self.sref(b), &frag, a),
                // An AF_UNIX datagram, with what it carries: the frontend
                // that receives it in-process adds credentials.
                None if off == 0 && self.info.domain == AF_UNIX => {
                    b.backend.write_scm(self.sref(b), &frag, ctl.scm)
                }
                None => b.backend.write(self.sref(b), &frag),
            };
            if self.info.domain == AF_UNIX && dest.is_none() {
                match wrote {
                    // A connected sender is not writable while its receiver
                    // is full (unix_dgram_poll), until the backend reports
                    // room (`upcall::writable` moves `tx_room` on).
                    Err(EAGAIN) => self.tx_next.store(u64::from(room) + 1, Ordering::Release),
                    Ok(()) => self.tx_next.store(0, Ordering::Release),
                    Err(_) => {}
                }
            }
            match wrote {
                Ok(()) => {}
                Err(EAGAIN) if off == 0 && self.blocking(flags) => {
                    // The receiver is full and the backend keeps datagrams
                    // (AF_UNIX semantics): offer it again when the backend
                    // says there is room (`upcall::writable`), or in a
                    // millisecond for a backend that does not.
                    let deadline = *deadline.get_or_insert_with(|| self.snd_deadline());
                    let step =
                        crate::platform::deadline_after(core::time::Duration::from_millis(1));
                    let until = match (deadline, step) {
                        (Some(d), Some(s)) if d < s => Some(d),
                        (_, s) => s,
                    };
                    self.wait.wait_until(
                        || self.has(F_CLOSED) || self.tx_room.load(Ordering::SeqCst) != room,
                        until,
                    );
                    if let Some(d) = deadline {
                        if crate::platform::now() >= d {
                            return Err(EAGAIN);
                        }
                    }
                    continue;
                }
                Err(e) => return Err(e),
            }
            off += n;
            if off >= data.len() {
                return Ok(());
            }
        }
    }

    /// Raises the send credit (from the backend's credit upcall).
    pub(crate) fn grant(&self, limit: u64) {
        let prev = self.tx_limit.fetch_max(limit, Ordering::AcqRel);
        // Only a sender that had run out of credit can be waiting for it;
        // waking on every window update would wake a thread blocked in
        // recv() on the same socket for nothing. A seqpacket sender may
        // wait with credit left, too little for its whole record.
        if limit > prev && (prev <= self.tx_next.load(Ordering::Acquire) || self.keeps_records()) {
            self.wait.notify(POLLOUT);
            self.wake_async();
        }
        if limit > prev {
            self.queue_credit(prev);
        }
    }
}

/// A datagram's source as the Socket Buffer holds it: the address, then,
/// for an IP source, possibly its attributes' bytes (`backend::attrs`),
/// and after them possibly SO_RXQ_OVFL's drop count (0: none).
pub(super) fn split_attrs(held: &[u8]) -> (&[u8], Option<DgramAttrs>, u32) {
    let fam = match held {
        [a, b, ..] => i32::from(u16::from_ne_bytes([*a, *b])),
        _ => return (held, None, 0),
    };
    let n = match fam {
        AF_INET => 16,
        AF_INET6 => 28,
        _ => return (held, None, 0),
    };
    let drops = match held.len().checked_sub(n) {
        Some(ATTR_LEN) => 0,
        Some(l) if l == ATTR_LEN + 4 => {
            let d = &held[n + ATTR_LEN..];
            u32::from_ne_bytes([d[0], d[1], d[2], d[3]])
        }
        _ => return (held, None, 0),
    };
    (
        &held[..n],
        DgramAttrs::from_bytes(&held[n..n + ATTR_LEN]),
        drops,
    )
}

fn read_into(sb: &StreamBuf, bufs: &mut [&mut [u8]], skip: usize) -> usize {
    // Fill the buffers from byte `skip` of the whole vector onwards.
    let mut skip = skip;
    let mut n = 0;
    for b in bufs.iter_mut() {
        if skip >= b.len() {
            skip -= b.len();
            continue;
        }
        let dst = &mut b[skip..];
        skip = 0;
        let r = sb.read(dst);
        n += r;
        if r < dst.len() {
            break;
        }
    }
    n
}

fn peek_into(sb: &StreamBuf, bufs: &mut [&mut [u8]]) -> usize {
    if bufs.len() == 1 {
        return sb.peek(bufs[0]);
    }
    let mut tmp = vec![0u8; total_len(bufs)];
    let n = sb.peek(&mut tmp);
    scatter(&tmp[..n], bufs);
    n
}

/// [`read_into`] taking at most `cap` bytes (a read that stops at the
/// urgent mark).
pub(super) fn read_capped(
    sb: &StreamBuf,
    bufs: &mut [&mut [u8]],
    skip: usize,
    cap: usize,
) -> usize {
    let space = total_len(bufs) - skip;
    if cap >= space {
        return read_into(sb, bufs, skip);
    }
    let mut tmp = vec![0u8; cap];
    let n = sb.read(&mut tmp);
    let mut rest = &tmp[..n];
    let mut skip = skip;
    for b in bufs.iter_mut() {
        if skip >= b.len() {
            skip -= b.len();
            continue;
        }
        let k = rest.len().min(b.len() - skip);
        b[skip..skip + k].copy_from_slice(&rest[..k]);
        rest = &rest[k..];
        skip = 0;
        if rest.is_empty() {
            break;
        }
    }
    n
}

/// [`peek_into`] from `skip` bytes on of at most `cap` bytes (one record),
/// writing no byte past them.
pub(super) fn peek_capped(
    sb: &StreamBuf,
    skip: usize,
    bufs: &mut [&mut [u8]],
    cap: usize,
) -> usize {
    let mut tmp = vec![0u8; cap.min(total_len(bufs))];
    let n = sb.peek_at(skip, &mut tmp);
    scatter(&tmp[..n], bufs);
    n
}

fn peek_into_at(sb: &StreamBuf, skip: usize, bufs: &mut [&mut [u8]]) -> usize {
    if bufs.len() == 1 {
        return sb.peek_at(skip, bufs[0]);
    }
    let mut tmp = vec![0u8; total_len(bufs)];
    let n = sb.peek_at(skip, &mut tmp);
    scatter(&tmp[..n], bufs);
    n
}

pub(super) fn discard(sb: &StreamBuf, max: usize) -> usize {
    let mut scratch = [0u8; 4096];
    let mut n = 0;
    while n < max {
        let step = (max - n).min(scratch.len());
        let r = sb.read(&mut scratch[..step]);
        n += r;
        if r < step {
            break;
        }
    }
    n
}

fn scatter(src: &[u8], bufs: &mut [&mut [u8]]) {
    let mut off = 0;
    for b in bufs.iter_mut() {
        if off >= src.len() {
            break;
        }
        let n = b.len().min(src.len() - off);
        b[..n].copy_from_slice(&src[off..off + n]);
        off += n;
    }
}

#[allow(dead_code)]
fn _assert_vec_used(_: Vec<u8>) {}

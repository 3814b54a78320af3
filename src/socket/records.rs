//! AF_UNIX `SOCK_SEQPACKET`: records over a stream connection.
//!
//! A seqpacket socket is a stream socket in everything but its data: it
//! connects, listens, accepts, shuts down and hangs up through the stream
//! machinery (`connect`, `state`), and its bytes travel as stream
//! fragments at offsets into the receiver's [`StreamBuf`], within the
//! window the receiver grants. What it adds is where records end: each
//! send is one record, reserved whole under the send lock, and the
//! fragment holding its last byte carries [`FLAG_EOR`] (a record of no
//! bytes is an empty fragment with it). The receiver keeps the end offsets
//! ([`Records`]) and a read takes at most one record, discarding what does
//! not fit (Linux's `unix_seqpacket_sendmsg`/`unix_seqpacket_recvmsg`,
//! which go through `unix_dgram_sendmsg`/`unix_dgram_recvmsg`).
//!
//! A record only goes once the window has room for all of it, so that the
//! receiver never holds part of a record it cannot complete: the receive
//! ring of a seqpacket socket ([`RECORD_RCVBUF`]) holds the largest record
//! an unprivileged sender may make (SO_SNDBUF's ceiling less 32).

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use core::sync::atomic::{AtomicUsize, Ordering};

use super::io::{peek_capped, read_capped, RecvInfo};
use super::*;

/// The receive ring of a seqpacket socket: room for the largest record
/// (twice net.core.wmem_max's default, less 32) with the default stream
/// window's slack.
pub const RECORD_RCVBUF: usize = 512 * 1024;

/// The end offsets of the records a seqpacket socket has received and not
/// yet read, in stream order (an empty record repeats its predecessor's
/// end), each with the key of an empty record's attachment (0: none; a
/// record with bytes has its attachment at its first offset, as a stream
/// message has, but an empty one shares that offset with the next record,
/// so its attachment is keyed apart: `inflight::queue_record`). Written by
/// the upcall that delivers a record's last fragment, after its bytes are
/// in the buffer; read under `rx_lock`.
pub(crate) struct Records {
    /// Made at the first record: only `SOCK_SEQPACKET` has any, and an
    /// empty queue inline was 24 bytes more of every socket.
    // The box is the point: 8 bytes inline instead of the deque's 32.
    #[allow(clippy::box_collection)]
    ends: Mutex<Option<Box<VecDeque<Mark>>>>,
    /// The largest record the socket may send (SO_SNDBUF less 32), for
    /// readiness, which takes no lock.
    max: AtomicUsize,
}

/// Where one record ends.
#[derive(Clone, Copy)]
struct Mark {
    end: u64,
    /// An empty record's attachment key (0: none).
    key: u64,
    empty: bool,
}

/// Where a read finds its record: its start relative to the read offset,
/// its length, the bytes of it a peek skips (SO_PEEK_OFF), and its empty
/// record's attachment key.
struct Found {
    start: usize,
    len: usize,
    skip: usize,
    key: u64,
}

impl Records {
    /// No records; a socket whose SO_SNDBUF is `sndbuf`.
    pub(crate) fn new(sndbuf: usize) -> Self {
        let r = Records {
            ends: Mutex::new(None),
            max: AtomicUsize::new(0),
        };
        r.sndbuf_is(sndbuf);
        r
    }

    /// SO_SNDBUF is `sndbuf` now.
    pub(crate) fn sndbuf_is(&self, sndbuf: usize) {
        self.max.store(
            sndbuf.saturating_sub(32).clamp(1, RECORD_RCVBUF),
            Ordering::Relaxed,
        );
    }

    /// Whether `credit` holds the largest record the socket may send: a
    /// seqpacket socket's POLLOUT (a record goes whole or not at all, so
    /// a POLLOUT with less room could be answered by EAGAIN, again and
    /// again).
    pub(crate) fn fits_any(&self, credit: u64) -> bool {
        credit >= self.max.load(Ordering::Relaxed) as u64
    }

    /// A record ends at `end`. `empty`: the fragment that says so has no
    /// bytes (an empty record, never a repeat; `key` its attachment's); a
    /// non-empty one repeated by its backend, or one already read, is not
    /// counted twice.
    pub(crate) fn mark(&self, end: u64, empty: bool, read_offset: u64, key: u64) {
        let mut q = self.ends.lock();
        let q = q.get_or_insert_with(Box::default);
        if !empty && (end <= read_offset || q.iter().any(|m| m.end == end && !m.empty)) {
            return;
        }
        // Fragments may arrive out of order (two senders' records): keep
        // the records in stream order. At one end offset a record with
        // bytes comes first (it started before), then the empty records
        // that start there, in arrival order.
        let at = if empty {
            q.partition_point(|m| m.end <= end)
        } else {
            q.partition_point(|m| m.end < end)
        };
        q.insert(at, Mark { end, key, empty });
    }

    /// The length of the first record, when all of its bytes are in.
    pub(crate) fn next_len(&self, sb: &StreamBuf) -> Option<usize> {
        self.find(sb, 0).map(|f| f.len)
    }

    /// The whole record a read (`skip` 0) or a peek `skip` bytes on
    /// (SO_PEEK_OFF) takes: as `__skb_try_recv_from_queue` skips whole
    /// records the offset passes, the empty ones with them once it is
    /// past zero.
    fn find(&self, sb: &StreamBuf, skip: usize) -> Option<Found> {
        let q = self.ends.lock();
        let q = q.as_deref()?;
        let base = sb.read_offset();
        let avail = sb.readable() as u64;
        let (mut start, mut skip) = (0u64, skip as u64);
        for &Mark { end, key, .. } in q.iter() {
            let rel = end.wrapping_sub(base);
            if rel > avail {
                return None;
            }
            let len = rel - start;
            if skip >= len && (len > 0 || skip > 0) {
                skip -= len;
                start = rel;
                continue;
            }
            return Some(Found {
                start: start as usize,
                len: len as usize,
                skip: skip as usize,
                key,
            });
        }
        None
    }

    /// Whether a whole record is waiting (a seqpacket socket's POLLIN).
    pub(crate) fn ready(&self, sb: &StreamBuf) -> bool {
        self.next_len(sb).is_some()
    }

    /// The bytes of all whole records waiting (SIOCINQ).
    pub(crate) fn queued_bytes(&self, sb: &StreamBuf) -> usize {
        let q = self.ends.lock();
        let at = sb.read_offset();
        let avail = sb.readable() as u64;
        q.iter()
            .flat_map(|q| q.iter())
            .rev()
            .map(|m| m.end.wrapping_sub(at))
            .find(|&n| n <= avail)
            .unwrap_or(0) as usize
    }

    /// The first record was read.
    fn pop(&self) {
        if let Some(q) = self.ends.lock().as_deref_mut() {
            q.pop_front();
        }
    }
}

impl Socket {
    /// Whether the socket keeps record boundaries on a connection
    /// (AF_UNIX `SOCK_SEQPACKET`).
    #[inline]
    pub fn keeps_records(&self) -> bool {
        self.info.ty == SOCK_SEQPACKET
    }

    /// A seqpacket receive (`unix_seqpacket_recvmsg`): one record, the
    /// part that fits in `bufs` (the rest is discarded: `truncated`); with
    /// MSG_TRUNC its full length is returned. A pending error comes first,
    /// then a record, then end of file (a peer that is gone or shut, or
    /// our SHUT_RD).
    pub(super) fn recv_record(
        &self,
        sb: &StreamBuf,
        bufs: &mut [&mut [u8]],
        flags: i32,
        collect: bool,
    ) -> Result<RecvInfo, Errno> {
        if self.phase() != Phase::Connected {
            return Err(ENOTCONN);
        }
        if flags & MSG_OOB != 0 {
            return Err(EOPNOTSUPP);
        }
        let peek = flags & MSG_PEEK != 0;
        let deadline = self.rcv_deadline();
        let passcred = super::inflight::any_queued() && self.ctl.lock().opts.passcred();
        let mut pumped = false;
        loop {
            // __skb_try_recv_datagram: sock_error before the queue.
            if let Some(e) = self.take_error() {
                return Err(e);
            }
            // SO_PEEK_OFF: a peek starts that far on, in this record or
            // a later one, and moves it on; a read moves it back by the
            // record (sk_peek_offset_fwd/bwd).
            let off = self.peek_off.load(Ordering::Relaxed);
            let skip = if peek && off > 0 { off as usize } else { 0 };
            let got = {
                let _g = self.rx_lock.lock();
                self.records.find(sb, skip).map(|r| {
                    let at = sb.read_offset() + r.start as u64;
                    let mut scm = super::inflight::StreamRead::default();
                    let taken = if r.len == 0 {
                        // An empty record's attachment is keyed apart.
                        (r.key != 0)
                            .then(|| super::inflight::take_dgram(self.handle, r.key, peek, collect))
                    } else {
                        let _ = scm.cap(self.handle, at, r.len, passcred);
                        None
                    };
                    let n = if peek {
                        let n = peek_capped(sb, r.start + r.skip, bufs, r.len - r.skip);
                        if off >= 0 {
                            self.peek_off.fetch_add(n as i32, Ordering::Relaxed);
                        }
                        n
                    } else {
                        let n = read_capped(sb, bufs, 0, r.len);
                        super::io::discard(sb, r.len - n);
                        self.records.pop();
                        self.peek_off_back(r.len);
                        n
                    };
                    let scm = match taken {
                        Some(id) => id,
                        None => {
                            if r.len > 0 {
                                scm.took(self.handle, at, if peek { n } else { r.len }, peek);
                            }
                            scm.finish(collect)
                        }
                    };
                    (r.len - r.skip, n, scm)
                })
            };
            if let Some((len, n, scm)) = got {
                if !peek {
                    // A sender waits for room for a whole record: tell it
                    // of the room once the queue is drained, not only
                    // after half the ring (`advertise_window`).
                    if sb.readable() == 0 {
                        self.advertise_window_now();
                    } else {
                        self.advertise_window();
                    }
                }
                // unix_copy_addr: the sender's name (the peer's), if any.
                let addr = self.peer_addr().ok().filter(|a| a.as_bytes().len() > 2);
                return Ok(RecvInfo {
                    ret: if flags & MSG_TRUNC != 0 { len } else { n },
                    truncated: n < len,
                    addr,
                    stamp_ns: self.tcp.last_arrival_ns(),
                    scm,
                    ..Default::default()
                });
            }
            let f = self.flags();
            if sb.fin_received() || f.has(F_RD_SHUT | F_RESET) {
                return Ok(RecvInfo::default());
            }
            if f.has(F_CLOSED) {
                return Err(EBADF);
            }
            if !self.blocking(flags) {
                if !pumped && self.pump_orphan() {
                    pumped = true;
                    continue;
                }
                return Err(EAGAIN);
            }
            let more = || {
                self.records.ready(sb)
                    || self.readiness() & (POLLIN | POLLERR | POLLHUP) != 0
                    || self.has(F_CLOSED)
            };
            match self.block_until(more, deadline) {
                Waited::TimedOut => return Err(EAGAIN),
                Waited::Interrupted => return Err(EINTR),
                Waited::Ready => {}
            }
        }
    }

    /// A seqpacket send (`unix_seqpacket_sendmsg` over
    /// `unix_dgram_sendmsg`): the whole of `bufs` as one record, or
    /// nothing. An address is ignored. EMSGSIZE beyond SO_SNDBUF less 32;
    /// EPIPE (and no SIGPIPE) once the peer is gone or shut for reading.
    pub(super) fn send_record(&self, bufs: &[&[u8]], flags: i32, scm: u64) -> Result<usize, Errno> {
        if let Some(e) = self.take_error() {
            return Err(e);
        }
        let deadline = self.snd_deadline();
        loop {
            match self.phase() {
                Phase::Connected => break,
                Phase::Connecting if self.blocking(flags) => {
                    // The backend has not answered yet: wait for it.
                    self.wait_for(POLLOUT, deadline);
                    if self.phase() == Phase::Connecting {
                        return Err(EAGAIN);
                    }
                }
                Phase::Connecting => return Err(EAGAIN),
                _ => return Err(ENOTCONN),
            }
        }
        if flags & MSG_OOB != 0 {
            return Err(EOPNOTSUPP);
        }
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        let sndbuf = self.ctl.lock().opts.sndbuf();
        if len > sndbuf.saturating_sub(32) {
            return Err(EMSGSIZE);
        }
        let mut pumped = false;
        let mut tx = self.tx.lock();
        let off = loop {
            let f = self.flags();
            if f.has(F_CLOSED) {
                return Err(EBADF);
            }
            if f.has(F_RESET | F_WR_SHUT) {
                return Err(EPIPE);
            }
            let limit = self.tx_limit.load(Ordering::Acquire);
            if limit.saturating_sub(tx.next) >= len as u64 {
                // The record's range, reserved whole: a record another
                // thread sends meanwhile goes after it, not inside it.
                let off = tx.next;
                tx.next += len as u64;
                self.tx_next.store(tx.next, Ordering::Release);
                break off;
            }
            drop(tx);
            if !self.blocking(flags) {
                if !pumped && self.pump_orphan() {
                    pumped = true;
                    tx = self.tx.lock();
                    continue;
                }
                return Err(EAGAIN);
            }
            let want = self.tx_next.load(Ordering::Acquire) + len as u64;
            let w = self.block_until(
                || {
                    self.tx_limit.load(Ordering::Acquire) >= want
                        || self.flags().has(F_RESET | F_WR_SHUT | F_CLOSED)
                },
                deadline,
            );
            match w {
                Waited::TimedOut => return Err(EAGAIN),
                Waited::Interrupted => return Err(EINTR),
                Waited::Ready => {}
            }
            tx = self.tx.lock();
        };
        drop(tx);
        let Some(b) = self.binding() else {
            return Err(ENOTCONN);
        };
        // The record in fragments of at most FRAG_MAX, the last marked.
        let whole;
        let data: &[u8] = match bufs {
            [] => &[],
            [one] => one,
            _ => {
                whole = bufs.concat();
                &whole
            }
        };
        let mut at = 0usize;
        loop {
            let n = (data.len() - at).min(FRAG_MAX);
            let last = at + n == data.len();
            let frag = Fragment::stream(
                off + at as u64,
                if last { FLAG_EOR } else { 0 },
                &data[at..at + n],
            );
            let r = if at == 0 {
                // The record's attachments ride with its first fragment.
                b.backend.write_scm(self.sref(b), &frag, scm)
            } else {
                b.backend.write(self.sref(b), &frag)
            };
            if let Err(e) = r {
                // The connection went away under the record (a backend
                // refuses stream bytes only then).
                if at == 0 {
                    let mut tx = self.tx.lock();
                    if tx.next == off + len as u64 {
                        tx.next = off;
                        self.tx_next.store(off, Ordering::Release);
                    }
                }
                return Err(if e == EAGAIN { EPIPE } else { e });
            }
            at += n;
            if last {
                break;
            }
        }
        self.tcp.sent_segment();
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two senders' records arriving out of order: an empty record at
    /// offset 3 announced before the 3-byte record that ends there still
    /// reads after it, and a repeated mark of a record with bytes counts
    /// once.
    #[test]
    fn marks_keep_stream_order() {
        let sb = StreamBuf::new(0, 64);
        let r = Records::new(1024);
        r.mark(3, true, 0, 7);
        sb.insert(0, b"abc").unwrap();
        r.mark(3, false, 0, 0);
        r.mark(3, false, 0, 0);
        let f = r.find(&sb, 0).unwrap();
        assert_eq!((f.start, f.len, f.key), (0, 3, 0));
        assert_eq!(sb.read(&mut [0u8; 3]), 3);
        r.pop();
        let f = r.find(&sb, 0).unwrap();
        assert_eq!((f.len, f.key), (0, 7));
        r.pop();
        assert!(r.find(&sb, 0).is_none());
    }
}

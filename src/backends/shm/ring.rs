//! A byte ring in shared memory: one direction of a stream connection.
//!
//! `tail` counts every byte ever written, `head` every byte ever consumed
//! (absolute u64 offsets, as the Socket Buffer's). Writers copy into the
//! free space and publish with one release store of `tail`; readers copy
//! out and publish `head`. One writer and one reader need no lock; two
//! holders of one end (after fork) take the side's [`SharedLock`] around
//! each call ([`Ring::writer_lock`], [`Ring::reader_lock`]).
//!
//! The counters come from shared memory and are not trusted: a ring whose
//! `tail - head` exceeds its size is [`Corrupt`], every copy is bounded by
//! the ring and the caller's buffer, and no loop depends on a shared value.

use core::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use super::lock::SharedLock;
use super::Corrupt;
use crate::platform::shared_mem::{futex_sleep_shared, futex_wake_shared, SharedMem};
use crate::platform::Slept;

/// Bytes of a ring's header, before its data.
pub const RING_HEADER: usize = 64;
const TAIL: usize = 0;
const HEAD: usize = 8;
const WRITER_LOCK: usize = 16;
const READER_LOCK: usize = 20;
const READER_WAITING: usize = 24;
const WRITER_WAITING: usize = 28;
const FLAGS: usize = 32;
const BELL: usize = 36;
/// The stream offset of the newest urgent byte (MSG_OOB), while
/// `URG_STATE` is not 0.
const URG_MARK: usize = 40;
/// 0 (no urgent byte), `URG_VALID | byte` or `URG_READ` (Linux's
/// `urg_data`).
const URG_STATE: usize = 48;
/// The reading end's SO_OOBINLINE (non-zero: on), shared by its holders.
const URG_INLINE: usize = 52;
/// The reading end's F_SETOWN owner (0: none; negative: a process group),
/// which SIGURG goes to when an urgent byte is written.
const URG_OWNER: usize = 56;
/// The reading end's receive buffer (SO_RCVBUF) in bytes: writers keep at
/// most that many unread (0, or more than the ring: the whole ring).
const WINDOW: usize = 60;

/// [`Ring::flags`]: the writing end shut down; nothing follows `tail`.
pub const FIN: u32 = 1;
/// [`Ring::flags`]: the reading end shut down for reading (SHUT_RD, by any
/// holder): its readers take what is there, then end-of-stream.
pub const RD_SHUT: u32 = 2;

/// [`Ring::arm_bell`]: a reader of this ring sleeps in poll/epoll on its
/// anchor and wants a doorbell when bytes (or FIN) arrive.
pub const BELL_ON_DATA: u32 = 1;
/// [`Ring::arm_bell`]: a writer of this ring sleeps in poll/epoll on its
/// anchor and wants a doorbell when room appears.
pub const BELL_ON_ROOM: u32 = 2;

/// [`Ring::urgent`]: the urgent byte (low 8 bits) waits to be read with
/// MSG_OOB.
pub const URG_VALID: u32 = 0x100;
/// [`Ring::urgent`]: the urgent byte was read with MSG_OOB.
pub const URG_READ: u32 = 0x200;

/// The smallest data size a ring may have.
pub const MIN_SIZE: usize = 64;

/// One direction's ring: `size` data bytes after a [`RING_HEADER`] at byte
/// `base` of a shared mapping.
pub struct Ring<'m> {
    mem: &'m SharedMem,
    /// The ring's header.
    base: usize,
    /// Its data bytes.
    data: usize,
    size: u64,
}

impl<'m> Ring<'m> {
    /// The ring at `base` with `size` data bytes: `None` unless `size` is a
    /// power of two of at least [`MIN_SIZE`], `base` is 64-aligned and the
    /// whole ring lies inside `mem`.
    pub fn new(mem: &'m SharedMem, base: usize, size: usize) -> Option<Ring<'m>> {
        Ring::apart(mem, base, base.checked_add(RING_HEADER)?, size)
    }

    /// The ring whose header is at `base` and whose `size` data bytes are
    /// at `data` (elsewhere in the mapping: a segment keeps its rings'
    /// headers together in its first page). The same checks as
    /// [`Ring::new`], and the header and data must not overlap.
    pub fn apart(mem: &'m SharedMem, base: usize, data: usize, size: usize) -> Option<Ring<'m>> {
        let inside = |at: usize, len: usize| at.checked_add(len).is_some_and(|e| e <= mem.len());
        let apart = base.checked_add(RING_HEADER).is_some_and(|e| e <= data)
            || data.checked_add(size).is_some_and(|e| e <= base);
        if !size.is_power_of_two()
            || size < MIN_SIZE
            || base % 64 != 0
            || !inside(base, RING_HEADER)
            || !inside(data, size)
            || !apart
        {
            return None;
        }
        Some(Ring {
            mem,
            base,
            data,
            size: size as u64,
        })
    }

    /// Bytes a ring of `size` data bytes takes in a segment.
    pub fn footprint(size: usize) -> usize {
        RING_HEADER + size
    }

    /// The ring's data size.
    pub fn size(&self) -> u64 {
        self.size
    }

    fn u64(&self, off: usize) -> &'m AtomicU64 {
        // `new` checked that the header lies inside the mapping.
        self.mem
            .u64_at(self.base + off)
            .expect("ring header inside its mapping")
    }

    fn u32(&self, off: usize) -> &'m AtomicU32 {
        self.mem
            .u32_at(self.base + off)
            .expect("ring header inside its mapping")
    }

    /// Head and tail, checked: `tail - head` never exceeds the size.
    fn counters(&self) -> Result<(u64, u64), Corrupt> {
        let head = self.u64(HEAD).load(Ordering::Acquire);
        let tail = self.u64(TAIL).load(Ordering::Acquire);
        if tail.wrapping_sub(head) > self.size {
            return Err(Corrupt);
        }
        Ok((head, tail))
    }

    /// Bytes written and not yet consumed.
    pub fn used(&self) -> Result<u64, Corrupt> {
        let (head, tail) = self.counters()?;
        Ok(tail.wrapping_sub(head))
    }

    /// Bytes a writer may add now: the ring's free space, within the
    /// reading end's window.
    pub fn room(&self) -> Result<u64, Corrupt> {
        Ok(self.capacity().saturating_sub(self.used()?))
    }

    /// How many unread bytes writers may keep in the ring: its size, or
    /// the reading end's window when smaller. The word is untrusted: at
    /// worst it stops writers, whom the peer could stop anyway.
    fn capacity(&self) -> u64 {
        match u64::from(self.u32(WINDOW).load(Ordering::Acquire)) {
            0 => self.size,
            w => w.min(self.size),
        }
    }

    /// Sets the reading end's window to `bytes` (SO_RCVBUF; 0: the whole
    /// ring) and wakes writers waiting for room, which a larger window
    /// may have made. Returns whether a writer had asked for a doorbell
    /// when room appears (the caller rings it).
    pub fn set_window(&self, bytes: usize) -> bool {
        let w = u32::try_from(bytes).unwrap_or(u32::MAX);
        if self.u32(WINDOW).swap(w, Ordering::AcqRel) == w {
            return false;
        }
        self.wake(WRITER_WAITING);
        self.take_bell(BELL_ON_ROOM)
    }

    /// The offset of the next byte to consume.
    pub fn head(&self) -> u64 {
        self.u64(HEAD).load(Ordering::Acquire)
    }

    /// The ring's flags ([`FIN`]).
    pub fn flags(&self) -> u32 {
        self.u32(FLAGS).load(Ordering::Acquire)
    }

    /// The urgent mark and state (`URG_VALID | byte`, `URG_READ`, or 0:
    /// none). Untrusted: the caller only bounds reads by the mark.
    pub fn urgent(&self) -> (u64, u32) {
        let st = self.u32(URG_STATE).load(Ordering::Acquire);
        (self.u64(URG_MARK).load(Ordering::Acquire), st)
    }

    /// The byte at stream offset `mark` (written already) is urgent: the
    /// newest mark replaces an older one, as TCP's urgent pointer.
    pub fn set_urgent(&self, mark: u64, byte: u8) {
        self.u64(URG_MARK).store(mark, Ordering::Release);
        self.u32(URG_STATE)
            .store(URG_VALID | u32::from(byte), Ordering::Release);
    }

    /// Moves the urgent state from `from` to `to` (URG_READ, or 0 once the
    /// reader passed the mark), unless another holder changed it first.
    pub fn change_urgent(&self, from: u32, to: u32) {
        let _ = self
            .u32(URG_STATE)
            .compare_exchange(from, to, Ordering::AcqRel, Ordering::Relaxed);
    }

    /// The reading end's SO_OOBINLINE.
    pub fn oob_inline(&self) -> bool {
        self.u32(URG_INLINE).load(Ordering::Relaxed) != 0
    }

    /// Sets the reading end's SO_OOBINLINE for every holder.
    pub fn set_oob_inline(&self, on: bool) {
        self.u32(URG_INLINE).store(u32::from(on), Ordering::Relaxed);
    }

    /// The reading end's F_SETOWN owner (untrusted: a signal number the
    /// library sends is SIGURG only).
    pub fn owner(&self) -> i32 {
        self.u32(URG_OWNER).load(Ordering::Relaxed) as i32
    }

    /// Sets the reading end's F_SETOWN owner for every holder.
    pub fn set_owner(&self, pid: i32) {
        self.u32(URG_OWNER).store(pid as u32, Ordering::Relaxed);
    }

    /// The lock two writers of this direction share.
    pub fn writer_lock(&self) -> SharedLock<'m> {
        SharedLock::new(self.u32(WRITER_LOCK))
    }

    /// The lock two readers of this direction share.
    pub fn reader_lock(&self) -> SharedLock<'m> {
        SharedLock::new(self.u32(READER_LOCK))
    }

    /// The data byte offset in the mapping of stream offset `pos`, and how
    /// many bytes follow it before the ring wraps.
    fn slot(&self, pos: u64) -> (usize, usize) {
        let i = pos & (self.size - 1);
        (self.data + i as usize, (self.size - i) as usize)
    }

    /// Appends as much of `src` as there is room for and returns how much
    /// (0 when full, or after [`Ring::finish`]: no byte follows FIN). Wakes
    /// a reader that sleeps in [`Ring::wait_readable`].
    pub fn write(&self, src: &[u8]) -> Result<usize, Corrupt> {
        if self.flags() & FIN != 0 {
            return Ok(0);
        }
        let (head, tail) = self.counters()?;
        let room = self.capacity().saturating_sub(tail.wrapping_sub(head));
        let n = src.len().min(room as usize);
        if n == 0 {
            return Ok(0);
        }
        let (at, before_wrap) = self.slot(tail);
        let first = n.min(before_wrap);
        let ok = self.mem.write_bytes(at, &src[..first])
            && self.mem.write_bytes(self.slot(0).0, &src[first..n]);
        if !ok {
            return Err(Corrupt);
        }
        self.u64(TAIL)
            .store(tail.wrapping_add(n as u64), Ordering::Release);
        self.wake(READER_WAITING);
        Ok(n)
    }

    /// Copies up to `dst.len()` bytes starting `skip` bytes past the head
    /// into `dst`; with `consume` (and `skip` 0) they are gone for every
    /// reader. Returns the stream offset of the first byte copied and the
    /// count (0 when nothing is there past `skip`). Wakes a writer that
    /// sleeps in [`Ring::wait_room`].
    pub fn read(&self, dst: &mut [u8], skip: u64, consume: bool) -> Result<(u64, usize), Corrupt> {
        let (head, tail) = self.counters()?;
        let used = tail.wrapping_sub(head);
        let skip = if consume { 0 } else { skip.min(used) };
        let start = head.wrapping_add(skip);
        let n = dst.len().min((used - skip) as usize);
        if n > 0 {
            let (at, before_wrap) = self.slot(start);
            let first = n.min(before_wrap);
            let (a, b) = dst[..n].split_at_mut(first);
            if !(self.mem.read_bytes(at, a) && self.mem.read_bytes(self.slot(0).0, b)) {
                return Err(Corrupt);
            }
        }
        if consume && n > 0 {
            // A head that moved under us (a reader that did not take the
            // reader lock) means the bytes were not ours to take.
            if self
                .u64(HEAD)
                .compare_exchange(
                    head,
                    head.wrapping_add(n as u64),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_err()
            {
                return Err(Corrupt);
            }
            self.wake(WRITER_WAITING);
        }
        Ok((start, n))
    }

    /// The writing end is done: readers see end-of-stream after the bytes
    /// already written. Wakes every reader.
    pub fn finish(&self) {
        self.u32(FLAGS).fetch_or(FIN, Ordering::AcqRel);
        self.wake(READER_WAITING);
    }

    /// shutdown(SHUT_RD) of the reading end: wakes every reader, which
    /// then finds end-of-stream after the bytes already here.
    pub fn shut_read(&self) {
        self.u32(FLAGS).fetch_or(RD_SHUT, Ordering::AcqRel);
        self.wake(READER_WAITING);
    }

    /// Whether a reader would find end-of-stream: FIN and nothing left.
    pub fn at_end(&self) -> Result<bool, Corrupt> {
        Ok(self.flags() & FIN != 0 && self.used()? == 0)
    }

    /// Waits until there is a byte to read or end-of-stream, `also` holds
    /// (another reason to look again, checked after the announcement as the
    /// ring's own state is), or `deadline` passes (false). Spurious returns
    /// are allowed; the caller looks again.
    pub fn wait_readable(
        &self,
        deadline: Option<Instant>,
        also: impl Fn() -> bool,
    ) -> Result<bool, Corrupt> {
        Ok(self.sleep(true, deadline, also)? != Slept::TimedOut)
    }

    /// Waits until a writer would find room, `also` holds, or `deadline`
    /// passes (false).
    pub fn wait_room(
        &self,
        deadline: Option<Instant>,
        also: impl Fn() -> bool,
    ) -> Result<bool, Corrupt> {
        Ok(self.sleep(false, deadline, also)? != Slept::TimedOut)
    }

    /// [`Ring::wait_readable`] (`for_data`) or [`Ring::wait_room`], telling
    /// a signal handler's run apart (`Slept::Interrupted`).
    pub fn sleep(
        &self,
        for_data: bool,
        deadline: Option<Instant>,
        also: impl Fn() -> bool,
    ) -> Result<Slept, Corrupt> {
        if for_data {
            self.wait(READER_WAITING, deadline, |r| {
                Ok(r.used()? > 0 || r.flags() & (FIN | RD_SHUT) != 0 || also())
            })
        } else {
            self.wait(WRITER_WAITING, deadline, |r| Ok(r.room()? > 0 || also()))
        }
    }

    /// Wakes every thread asleep on this ring, readers and writers: one of
    /// the ends changed in a way the ring's counters do not show (a holder
    /// closed it).
    pub fn wake_all(&self) {
        self.wake(READER_WAITING);
        self.wake(WRITER_WAITING);
    }

    /// Announces a sleeper in `flag`, then sleeps unless `ready` already
    /// holds. The announcement and the re-check are ordered against the
    /// other side's publication and its look at the flag (both SeqCst
    /// fences), so a wake-up cannot fall between them.
    fn wait(
        &self,
        flag: usize,
        deadline: Option<Instant>,
        ready: impl Fn(&Self) -> Result<bool, Corrupt>,
    ) -> Result<Slept, Corrupt> {
        if ready(self)? {
            return Ok(Slept::Woken);
        }
        let word = self.u32(flag);
        word.store(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if ready(self)? {
            return Ok(Slept::Woken);
        }
        Ok(match futex_sleep_shared(word, 1, deadline) {
            Slept::TimedOut if ready(self)? => Slept::Woken,
            s => s,
        })
    }

    /// Asks for a doorbell (`BELL_ON_DATA` or `BELL_ON_ROOM`) before a
    /// sleep in poll/epoll. The caller re-checks readiness after this and
    /// before it sleeps: the fence orders the request before that look,
    /// as the other side's publication is ordered before its
    /// [`Ring::take_bell`], so either the caller sees the change or the
    /// other side sees the request.
    pub fn arm_bell(&self, which: u32) {
        self.u32(BELL).fetch_or(which, Ordering::AcqRel);
        fence(Ordering::SeqCst);
    }

    /// Whether doorbell `which` is still asked for: no writer (reader, for
    /// room) has taken it since it was armed.
    pub fn bell_asked(&self, which: u32) -> bool {
        self.u32(BELL).load(Ordering::Acquire) & which != 0
    }

    /// After publishing: whether a sleeper asked for doorbell `which`
    /// (cleared here, so one doorbell per request); the caller rings it
    /// on its anchor.
    pub fn take_bell(&self, which: u32) -> bool {
        fence(Ordering::SeqCst);
        let word = self.u32(BELL);
        word.load(Ordering::Relaxed) & which != 0
            && word.fetch_and(!which, Ordering::AcqRel) & which != 0
    }

    /// Wakes the sleepers announced in `flag`, if any: a system call only
    /// when someone sleeps.
    fn wake(&self, flag: usize) {
        fence(Ordering::SeqCst);
        let word = self.u32(flag);
        if word.load(Ordering::Relaxed) != 0 && word.swap(0, Ordering::AcqRel) != 0 {
            futex_wake_shared(word, i32::MAX);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring_mem(size: usize) -> SharedMem {
        SharedMem::anonymous(Ring::footprint(size)).unwrap()
    }

    #[test]
    fn bytes_come_out_in_order_across_the_wrap() {
        let mem = ring_mem(64);
        let r = Ring::new(&mem, 0, 64).unwrap();
        let mut next = 0u8;
        let mut want = 0u8;
        for round in 0..50 {
            let chunk: Vec<u8> = (0..(round % 37 + 1))
                .map(|_| {
                    next = next.wrapping_add(1);
                    next
                })
                .collect();
            let n = r.write(&chunk).unwrap();
            next = next.wrapping_sub((chunk.len() - n) as u8);
            let mut out = [0u8; 50];
            let (_, got) = r.read(&mut out, 0, true).unwrap();
            for &b in &out[..got] {
                want = want.wrapping_add(1);
                assert_eq!(b, want);
            }
        }
    }

    #[test]
    fn write_stops_at_the_size_and_after_fin() {
        let mem = ring_mem(64);
        let r = Ring::new(&mem, 0, 64).unwrap();
        assert_eq!(r.write(&[7; 100]).unwrap(), 64);
        assert_eq!(r.write(&[7; 1]).unwrap(), 0);
        assert_eq!(r.room().unwrap(), 0);
        let mut out = [0u8; 10];
        assert_eq!(r.read(&mut out, 0, true).unwrap(), (0, 10));
        r.finish();
        assert_eq!(r.write(&[1]).unwrap(), 0);
        assert!(!r.at_end().unwrap());
        let mut rest = [0u8; 64];
        assert_eq!(r.read(&mut rest, 0, true).unwrap(), (10, 54));
        assert!(r.at_end().unwrap());
    }

    #[test]
    fn peek_with_skip_leaves_the_bytes() {
        let mem = ring_mem(64);
        let r = Ring::new(&mem, 0, 64).unwrap();
        r.write(b"abcdef").unwrap();
        let mut out = [0u8; 3];
        assert_eq!(r.read(&mut out, 2, false).unwrap(), (2, 3));
        assert_eq!(&out, b"cde");
        assert_eq!(r.read(&mut out, 10, false).unwrap(), (6, 0));
        assert_eq!(r.used().unwrap(), 6);
    }

    #[test]
    fn bad_geometry_is_refused() {
        let mem = ring_mem(64);
        assert!(Ring::new(&mem, 0, 63).is_none());
        assert!(Ring::new(&mem, 0, 32).is_none());
        assert!(Ring::new(&mem, 8, 64).is_none());
        assert!(Ring::new(&mem, 64, 64).is_none());
    }

    #[test]
    fn counters_out_of_range_are_corrupt_not_a_crash() {
        let mem = ring_mem(64);
        let r = Ring::new(&mem, 0, 64).unwrap();
        mem.u64_at(TAIL).unwrap().store(65, Ordering::Relaxed);
        assert_eq!(r.used(), Err(Corrupt));
        assert_eq!(r.write(b"x"), Err(Corrupt));
        let mut out = [0u8; 4];
        assert_eq!(r.read(&mut out, 0, true), Err(Corrupt));
        // Wrapped counters that stay within the size are fine.
        mem.u64_at(HEAD)
            .unwrap()
            .store(u64::MAX - 3, Ordering::Relaxed);
        mem.u64_at(TAIL).unwrap().store(2, Ordering::Relaxed);
        assert_eq!(r.used(), Ok(6));
        assert_eq!(r.read(&mut out, 0, true).unwrap().1, 4);
    }

    #[test]
    fn a_sleeping_reader_is_woken_by_a_write_from_another_thread() {
        let mem = ring_mem(64);
        std::thread::scope(|s| {
            let r = Ring::new(&mem, 0, 64).unwrap();
            s.spawn(|| {
                std::thread::sleep(std::time::Duration::from_millis(20));
                Ring::new(&mem, 0, 64).unwrap().write(b"hi").unwrap();
            });
            let deadline = Instant::now() + std::time::Duration::from_secs(10);
            while r.used().unwrap() == 0 {
                assert!(
                    r.wait_readable(Some(deadline), || false).unwrap(),
                    "no wake-up in 10 s"
                );
            }
        });
    }
}

//! A connection's segment: a header, then one ring per direction, in one
//! shared mapping (a memfd the connecting side makes and passes to the
//! accepting side, or an anonymous mapping shared with fork children).
//!
//! The header says what the segment holds; a process that maps a segment
//! another made checks it against the file's size before it trusts a ring
//! ([`Segment::attach`]), and the rings check their own counters.

use core::sync::atomic::Ordering;

use super::ring::Ring;
use super::Corrupt;
use crate::consts::*;
use crate::platform::shared_mem::SharedMem;

/// "USOCKSEG" as a little-endian word: a segment of this library.
pub const MAGIC: u64 = u64::from_le_bytes(*b"USOCKSEG");
/// The layout described here (2: each ring's header has its doorbell
/// word, the segment's header the ends' close counts; 3: and each end's
/// anchor inode and address; 4: and the MSS each end advertises; 5: the
/// two rings' headers follow the segment's, then their data, so that a
/// connection that carries nothing touches one page).
pub const VERSION: u64 = 5;
/// Bytes of the segment header; the rings' headers follow.
pub const HEADER: usize = 128;
/// Where the first ring's data starts: after the segment's header and the
/// two rings' headers; the second ring's follows it.
pub const DATA: usize = HEADER + 2 * super::ring::RING_HEADER;
const MAGIC_AT: usize = 0;
const VERSION_AT: usize = 8;
const SIZE_A_AT: usize = 16;
const SIZE_B_AT: usize = 24;
/// Per end (connector, acceptor): how many times one of its holders closed
/// it. A waiting peer looks at its anchor only when this moved.
const CLOSES_AT: [usize; 2] = [32, 36];
/// Per end: the inode of its anchor (fstat), by which a process that
/// inherited an anchor and this segment across exec, or received them with
/// SCM_RIGHTS, knows which end it holds.
const ANCHOR_INO_AT: [usize; 2] = [40, 48];
/// Per end: its O_NONBLOCK (non-zero: set). Linux keeps it in the socket's
/// one open file description, which every holder of the end shares across
/// fork, exec and dup: here, in the end's word.
const NONBLOCK_AT: [usize; 2] = [56, 60];
/// Per end: its address, as the backend encodes it ([`ADDR_LEN`] bytes).
const ADDR_AT: [usize; 2] = [64, 96];
/// Bytes of an end's address in the header.
pub const ADDR_LEN: usize = 24;
/// Per end: the MSS it advertises (its TCP_MAXSEG, 0: none), after its
/// address: written by the accepting end when it takes the connection.
const MSS_AT: [usize; 2] = [88, 120];

/// Per end: non-zero once it reset the connection (an SO_LINGER 0 close,
/// a connection a listener's shutdown dropped): the peer reads a reset,
/// not end-of-stream, when the end's last holder is gone. In the header's
/// spare words after each end's MSS (zero in every earlier segment).
const RESET_AT: [usize; 2] = [92, 124];

/// The largest ring a segment may declare: a corrupt size must not make a
/// process map gigabytes.
pub const MAX_RING: usize = 64 << 20;

/// The two ends of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The end that called connect and made the segment.
    Connector = 0,
    /// The end a listener accepted.
    Acceptor = 1,
}

impl Side {
    /// The other end.
    pub fn peer(self) -> Side {
        match self {
            Side::Connector => Side::Acceptor,
            Side::Acceptor => Side::Connector,
        }
    }
}

/// Which way a ring carries bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// From the connecting end to the accepting end.
    ToAcceptor,
    /// From the accepting end to the connecting end.
    ToConnector,
}

/// A mapped connection segment.
pub struct Segment {
    mem: SharedMem,
    size_a: usize,
    size_b: usize,
}

/// The accepting end's anchor-inode word before the inode is recorded:
/// that end was accepted (the connecting end's mark that the listener took
/// the connection, not dropped it from its queue), and its inode is
/// recorded only when the end is first handed on (`Conn::note_anchor`),
/// which saves an fstat per accept. No socket inode is this (the kernel's
/// are 32-bit numbers).
pub const ANCHOR_UNNOTED: u64 = u64::MAX;

impl Segment {
    /// Bytes of a segment with rings of `size_a` (to the acceptor) and
    /// `size_b` (to the connector) data bytes.
    pub fn footprint(size_a: usize, size_b: usize) -> usize {
        HEADER + Ring::footprint(size_a) + Ring::footprint(size_b)
    }

    fn check_sizes(size_a: usize, size_b: usize) -> Result<(), Errno> {
        let ok = |s: usize| s.is_power_of_two() && (super::ring::MIN_SIZE..=MAX_RING).contains(&s);
        if ok(size_a) && ok(size_b) {
            Ok(())
        } else {
            Err(EINVAL)
        }
    }

    fn init(mem: SharedMem, size_a: usize, size_b: usize) -> Segment {
        let word = |at| mem.u64_at(at).expect("segment header inside its mapping");
        word(SIZE_A_AT).store(size_a as u64, Ordering::Relaxed);
        word(SIZE_B_AT).store(size_b as u64, Ordering::Relaxed);
        word(VERSION_AT).store(VERSION, Ordering::Relaxed);
        // Last, with release: a process that sees the magic sees the rest.
        word(MAGIC_AT).store(MAGIC, Ordering::Release);
        Segment {
            mem,
            size_a,
            size_b,
        }
    }

    /// A new segment in a memfd (named for /proc/PID/fd), and the memfd
    /// to hand to the other end (close-on-exec; the caller closes it).
    /// EINVAL for a ring size that is not a power of two between 64 bytes
    /// and [`MAX_RING`].
    pub fn create(size_a: usize, size_b: usize) -> Result<(Segment, i32), Errno> {
        Self::check_sizes(size_a, size_b)?;
        let (mem, fd) = SharedMem::memfd(c"usock-segment", Self::footprint(size_a, size_b))?;
        Ok((Self::init(mem, size_a, size_b), fd))
    }

    /// A new segment in anonymous shared memory: shared with the children
    /// this process forks, and with nobody else (tests, and the fork case
    /// before a memfd is needed).
    pub fn anonymous(size_a: usize, size_b: usize) -> Result<Segment, Errno> {
        Self::check_sizes(size_a, size_b)?;
        let mem = SharedMem::anonymous(Self::footprint(size_a, size_b))?;
        Ok(Self::init(mem, size_a, size_b))
    }

    /// Maps the segment in memfd `fd`, made by another process: its header
    /// must name this layout and sizes that fit the file; EPROTO otherwise
    /// (the connection is refused, as for a handshake that makes no sense).
    pub fn attach(fd: i32) -> Result<Segment, Errno> {
        // One mapping of the whole file (one fstat, one mmap), checked
        // before any ring is trusted: its header must name this layout and
        // sizes whose footprint the file holds.
        let most = Self::footprint(MAX_RING, MAX_RING);
        let mem =
            SharedMem::map_file(fd, most).map_err(|e| if e == EINVAL { EPROTO } else { e })?;
        if mem.len() < HEADER {
            return Err(EPROTO);
        }
        let word = |at| mem.u64_at(at).map_or(0, |w| w.load(Ordering::Acquire));
        if word(MAGIC_AT) != MAGIC || word(VERSION_AT) != VERSION {
            return Err(EPROTO);
        }
        let (a, b) = (word(SIZE_A_AT), word(SIZE_B_AT));
        let (a, b) = (
            usize::try_from(a).map_err(|_| EPROTO)?,
            usize::try_from(b).map_err(|_| EPROTO)?,
        );
        Self::check_sizes(a, b).map_err(|_| EPROTO)?;
        if mem.len() < Self::footprint(a, b) {
            return Err(EPROTO);
        }
        Ok(Segment {
            mem,
            size_a: a,
            size_b: b,
        })
    }

    /// The ring carrying bytes in direction `dir`. The sizes were checked
    /// when the segment was made or attached, and are this process's copy:
    /// a later write to the header does not move a ring.
    pub fn ring(&self, dir: Dir) -> Ring<'_> {
        let (base, data, size) = match dir {
            Dir::ToAcceptor => (HEADER, DATA, self.size_a),
            Dir::ToConnector => (
                HEADER + super::ring::RING_HEADER,
                DATA + self.size_a,
                self.size_b,
            ),
        };
        Ring::apart(&self.mem, base, data, size).expect("ring sizes checked at create or attach")
    }

    /// The ring end `side` reads and the ring it writes.
    pub fn rings(&self, side: Side) -> (Ring<'_>, Ring<'_>) {
        match side {
            Side::Connector => (self.ring(Dir::ToConnector), self.ring(Dir::ToAcceptor)),
            Side::Acceptor => (self.ring(Dir::ToAcceptor), self.ring(Dir::ToConnector)),
        }
    }

    /// How many times a holder of end `side` closed it (untrusted: a wrong
    /// value only makes the peer look at its anchor once more or once
    /// less often than needed, and its tick bounds the latter).
    pub fn closes(&self, side: Side) -> &core::sync::atomic::AtomicU32 {
        let at = CLOSES_AT[side as usize];
        self.mem
            .u32_at(at)
            .expect("segment header inside its mapping")
    }

    /// End `side`'s O_NONBLOCK word (any value but 0: set).
    pub fn nonblock(&self, side: Side) -> &core::sync::atomic::AtomicU32 {
        self.mem
            .u32_at(NONBLOCK_AT[side as usize])
            .expect("segment header inside its mapping")
    }

    /// End `side`'s advertised MSS word (0: none, or not yet known;
    /// untrusted: a wrong value only sizes the peer's TCP_CORK segments).
    pub fn mss(&self, side: Side) -> &core::sync::atomic::AtomicU32 {
        self.mem
            .u32_at(MSS_AT[side as usize])
            .expect("segment header inside its mapping")
    }

    /// End `side`'s reset word (see `RESET_AT`).
    pub fn reset(&self, side: Side) -> &core::sync::atomic::AtomicU32 {
        self.mem
            .u32_at(RESET_AT[side as usize])
            .expect("segment header inside its mapping")
    }

    /// Records the inode of end `side`'s anchor (or [`ANCHOR_UNNOTED`]).
    pub fn set_anchor_ino(&self, side: Side, ino: u64) {
        self.word(ANCHOR_INO_AT[side as usize])
            .store(ino, Ordering::Release);
    }

    /// The inode recorded for end `side`'s anchor (0: none;
    /// [`ANCHOR_UNNOTED`]: accepted, not recorded yet; untrusted).
    pub fn anchor_ino(&self, side: Side) -> u64 {
        self.word(ANCHOR_INO_AT[side as usize])
            .load(Ordering::Acquire)
    }

    /// Records end `side`'s address (at most [`ADDR_LEN`] bytes).
    pub fn set_addr(&self, side: Side, addr: &[u8]) {
        let n = addr.len().min(ADDR_LEN);
        self.mem.write_bytes(ADDR_AT[side as usize], &addr[..n]);
    }

    /// End `side`'s address as recorded (untrusted: the caller parses it).
    pub fn addr(&self, side: Side) -> [u8; ADDR_LEN] {
        let mut out = [0u8; ADDR_LEN];
        self.mem.read_bytes(ADDR_AT[side as usize], &mut out);
        out
    }

    fn word(&self, at: usize) -> &core::sync::atomic::AtomicU64 {
        self.mem
            .u64_at(at)
            .expect("segment header inside its mapping")
    }

    /// The shared mapping (for tests and tools that inspect a segment).
    pub fn mem(&self) -> &SharedMem {
        &self.mem
    }

    /// Whether the header still names this layout: a segment whose header
    /// was overwritten is [`Corrupt`].
    pub fn check(&self) -> Result<(), Corrupt> {
        let word = |at| self.mem.u64_at(at).map_or(0, |w| w.load(Ordering::Acquire));
        if word(MAGIC_AT) == MAGIC && word(VERSION_AT) == VERSION {
            Ok(())
        } else {
            Err(Corrupt)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_memfd_segment_attaches_in_another_mapping_and_shares_its_rings() {
        let (seg, fd) = Segment::create(4096, 1024).unwrap();
        let other = Segment::attach(fd).unwrap();
        crate::platform::kfd_close(fd).unwrap();
        assert_eq!(seg.ring(Dir::ToAcceptor).write(b"hello").unwrap(), 5);
        let mut out = [0u8; 8];
        assert_eq!(
            other.ring(Dir::ToAcceptor).read(&mut out, 0, true).unwrap(),
            (0, 5)
        );
        assert_eq!(&out[..5], b"hello");
        assert_eq!(other.ring(Dir::ToConnector).size(), 1024);
        assert_eq!(other.ring(Dir::ToConnector).used().unwrap(), 0);
    }

    #[test]
    fn sizes_that_are_not_powers_of_two_or_too_large_are_refused() {
        assert_eq!(Segment::anonymous(100, 64).err(), Some(EINVAL));
        assert_eq!(Segment::anonymous(64, MAX_RING * 2).err(), Some(EINVAL));
        assert_eq!(Segment::anonymous(32, 64).err(), Some(EINVAL));
    }

    #[test]
    fn a_header_that_lies_is_refused_at_attach() {
        let (seg, fd) = Segment::create(64, 64).unwrap();
        let w = |at| seg.mem().u64_at(at).unwrap();
        // A size larger than the file: mapping it would fault on access.
        w(SIZE_B_AT).store(1 << 20, Ordering::Relaxed);
        assert_eq!(Segment::attach(fd).err(), Some(EPROTO));
        w(SIZE_B_AT).store(96, Ordering::Relaxed);
        assert_eq!(Segment::attach(fd).err(), Some(EPROTO));
        w(SIZE_B_AT).store(64, Ordering::Relaxed);
        w(MAGIC_AT).store(0, Ordering::Relaxed);
        assert_eq!(Segment::attach(fd).err(), Some(EPROTO));
        assert_eq!(seg.check(), Err(Corrupt));
        crate::platform::kfd_close(fd).unwrap();
    }
}

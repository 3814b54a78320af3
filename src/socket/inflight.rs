//! What AF_UNIX messages carry besides their bytes while they are in
//! flight: credentials (SCM_CREDENTIALS) and passed fds (SCM_RIGHTS), in
//! one process-wide table, and the collector of unreachable cycles.
//!
//! An [`Attach`] is made by the sender (`scm`), *staged* here under an id
//! that travels through the backend with the message's first fragment
//! (`Backend::write_scm`, `upcall::deliver_scm`), and *queued* by the
//! receiving frontend: for a stream at the message's first byte offset,
//! for a datagram under a key its record carries (`split_key`). A read
//! *takes* it (a recvmsg then installs the fds; any other read drops
//! them), a close of the receiver drops what is still queued.
//!
//! Stream records mark where the credentials or the fds change: a byte
//! belongs to the last record at or before its offset (none: no
//! credentials). A read joins messages of equal credentials, stops where
//! they change (when the receiver asks for them) and after a message with
//! fds (`StreamRead`).
//!
//! The collector is `net/unix/garbage.c`'s idea: a socket whose every
//! reference is a queued fd, in queues that only such sockets hold, can
//! never be read again; their queues are dropped, which frees them.

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};

use super::Socket;
use crate::backend::contract::SockHandle;
use crate::sync::Mutex;

/// SCM_CREDENTIALS's `struct ucred` (real ids).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cred {
    /// Process id.
    pub pid: i32,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

impl Cred {
    /// What a message without credentials reads as: pid 0 and the
    /// overflow ids.
    pub(crate) const NONE: Cred = Cred {
        pid: 0,
        uid: 65534,
        gid: 65534,
    };

    /// The calling thread's, as the kernel attaches them (`None` without a
    /// kernel to ask).
    pub(crate) fn own() -> Option<Cred> {
        crate::platform::scm::ids().map(|i| Cred {
            pid: i.pid,
            uid: i.uid,
            gid: i.gid,
        })
    }

    /// The `struct ucred` bytes.
    pub(crate) fn bytes(&self) -> [u8; 12] {
        let mut b = [0u8; 12];
        b[..4].copy_from_slice(&self.pid.to_ne_bytes());
        b[4..8].copy_from_slice(&self.uid.to_ne_bytes());
        b[8..].copy_from_slice(&self.gid.to_ne_bytes());
        b
    }
}

/// Passed fds: a kernel carrier holding them (`platform::scm`) and, for
/// those that are our sockets, a reference to each (as an fd would hold)
/// with its index in the message's list. Dropping it closes the carrier
/// (the kernel closes the files) and drops the references.
pub(crate) struct Fds {
    /// The carrier's fd (-1: none).
    pub carrier: i32,
    /// Our sockets among the fds: (index, socket).
    pub socks: Vec<(usize, Arc<Socket>)>,
}

impl Drop for Fds {
    fn drop(&mut self) {
        if self.carrier >= 0 {
            let _ = crate::platform::kfd_close(self.carrier);
        }
        for (_, s) in self.socks.drain(..) {
            s.drop_ref();
        }
    }
}

/// What one message carries.
#[derive(Clone, Default)]
pub(crate) struct Attach {
    /// Its credentials (None: none attached).
    pub cred: Option<Cred>,
    /// Its fds.
    pub fds: Option<Arc<Fds>>,
}

impl Attach {
    fn is_empty(&self) -> bool {
        self.cred.is_none() && self.fds.is_none()
    }
}

/// What a read took, for recvmsg to report.
pub(crate) struct Taken {
    /// The credentials of the first byte read (None: none attached).
    pub cred: Option<Cred>,
    /// The fds to install.
    pub fds: Option<Arc<Fds>>,
    /// A MSG_PEEK: the fds stay queued, copies are installed.
    pub peek: bool,
}

#[derive(Default)]
struct Table {
    next: u64,
    staged: BTreeMap<u64, Attach>,
    /// (receiver handle, offset or key).
    queued: BTreeMap<(u64, u64), Attach>,
    taken: BTreeMap<u64, Taken>,
}

static TABLE: Mutex<Option<Table>> = Mutex::new(None);
/// Queued records: none means no read needs to look.
static QUEUED: AtomicUsize = AtomicUsize::new(0);
/// Queued records holding our sockets: the collector has work.
static QUEUED_SOCKS: AtomicUsize = AtomicUsize::new(0);

/// Before a fork: no thread may hold the table's lock in the child (a
/// leaf: nothing is locked under it).
#[cfg(feature = "std")]
pub(crate) fn fork_lock() {
    crate::sync::fork_hold::hold(&TABLE);
}

fn with<R>(f: impl FnOnce(&mut Table) -> R) -> R {
    let mut g = TABLE.lock();
    f(g.get_or_insert_with(Table::default))
}

fn counted(a: &Attach, up: bool) {
    let socks = a.fds.as_ref().is_some_and(|f| !f.socks.is_empty());
    if up {
        QUEUED.fetch_add(1, Ordering::AcqRel);
        if socks {
            QUEUED_SOCKS.fetch_add(1, Ordering::AcqRel);
        }
    } else {
        QUEUED.fetch_sub(1, Ordering::AcqRel);
        if socks {
            QUEUED_SOCKS.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Stages a sender's attachment; returns the id that travels.
pub(crate) fn stage(a: Attach) -> u64 {
    with(|t| {
        t.next += 1;
        let id = t.next;
        t.staged.insert(id, a);
        id
    })
}

/// Takes a staged attachment back (the receiver's delivery, or the
/// sender once its send is over: what nobody took is dropped).
pub(crate) fn unstage(id: u64) -> Option<Attach> {
    if id == 0 {
        return None;
    }
    with(|t| t.staged.remove(&id))
}

/// Puts an attachment a delivery could not take back under its id (the
/// sender offers the message again).
pub(crate) fn restage(id: u64, a: Attach) {
    if id != 0 {
        with(|t| t.staged.insert(id, a));
    }
}

/// Queues a stream message's attachment at its first byte `off` for
/// receiver `h`, unless nothing changes there.
pub(crate) fn mark_stream(h: SockHandle, off: u64, a: Attach) {
    // The common case, no global lock: nothing to mark, nothing marked.
    if a.is_empty() && !any_queued() {
        return;
    }
    let dropped = with(|t| {
        let tail = t.queued.range((h.0, 0)..(h.0, RECORD_KEY)).next_back();
        let (cred, fds) = tail.map_or((None, false), |(_, r)| (r.cred, r.fds.is_some()));
        if a.fds.is_none() && !fds && a.cred == cred {
            return Some(a);
        }
        counted(&a, true);
        t.queued
            .insert((h.0, off), a)
            .inspect(|old| counted(old, false))
    });
    drop(dropped);
}

/// Queues a datagram's attachment for receiver `h`; returns the key its
/// record carries.
pub(crate) fn queue_dgram(h: SockHandle, a: Attach) -> u64 {
    with(|t| {
        t.next += 1;
        let key = t.next;
        counted(&a, true);
        t.queued.insert((h.0, key), a);
        key
    })
}

/// Keys of empty seqpacket records' attachments ([`queue_record`]) have
/// this bit: above any stream offset a read range reaches, so a stream
/// read never meets one.
const RECORD_KEY: u64 = 1 << 63;

/// Queues the attachment of an empty seqpacket record for receiver `h`;
/// returns its key (the record, which has no offset of its own, keeps
/// it; a read takes it with [`take_dgram`]).
pub(crate) fn queue_record(h: SockHandle, a: Attach) -> u64 {
    with(|t| {
        t.next += 1;
        let key = RECORD_KEY | t.next;
        counted(&a, true);
        t.queued.insert((h.0, key), a);
        key
    })
}

/// Drops a datagram attachment whose record was refused.
pub(crate) fn unqueue_dgram(h: SockHandle, key: u64) -> Option<Attach> {
    with(|t| {
        let a = t.queued.remove(&(h.0, key));
        if let Some(a) = &a {
            counted(a, false);
        }
        a
    })
}

/// A datagram read took (or, with `peek`, looked at) the record keyed
/// `key`: its attachment, registered for recvmsg when `collect` (the id
/// to report), dropped otherwise.
pub(crate) fn take_dgram(h: SockHandle, key: u64, peek: bool, collect: bool) -> u64 {
    let (id, dropped) = with(|t| {
        let a = if peek {
            t.queued.get(&(h.0, key)).cloned()
        } else {
            let a = t.queued.remove(&(h.0, key));
            if let Some(a) = &a {
                counted(a, false);
            }
            a
        };
        let Some(a) = a else { return (0, None) };
        if !collect {
            return (0, Some(a));
        }
        t.next += 1;
        let id = t.next;
        t.taken.insert(
            id,
            Taken {
                cred: a.cred,
                fds: a.fds,
                peek,
            },
        );
        (id, None)
    });
    drop(dropped);
    id
}

/// The attachment a read took, for its recvmsg.
pub(crate) fn taken(id: u64) -> Option<Taken> {
    if id == 0 {
        return None;
    }
    with(|t| t.taken.remove(&id))
}

/// Whether any record is queued anywhere (the read path's fast check).
pub(crate) fn any_queued() -> bool {
    QUEUED.load(Ordering::Acquire) > 0
}

/// How a stream read goes through the records: one per read call.
#[derive(Default)]
pub(crate) struct StreamRead {
    /// The credentials of the read's first byte, once it has one.
    first: Option<Option<Cred>>,
    /// The fds taken (at most one message's).
    fds: Option<Arc<Fds>>,
    /// The read took fds or met a change: it ends here.
    pub stop: bool,
    /// The fds were looked at (MSG_PEEK), not taken.
    peek: bool,
}

impl StreamRead {
    /// How many bytes from read offset `at` (with `avail` readable) the
    /// read may take: `None` for all. `Some(0)` once it must stop.
    pub(crate) fn cap(
        &mut self,
        h: SockHandle,
        at: u64,
        avail: usize,
        passcred: bool,
    ) -> Option<usize> {
        if self.stop {
            return Some(0);
        }
        if avail == 0 {
            // Nothing to read yet: the first byte's record may not be in.
            return None;
        }
        if !any_queued() {
            if self.first.is_none() {
                self.first = Some(None);
            }
            return None;
        }
        with(|t| {
            let recs = &t.queued;
            let cur = recs
                .range((h.0, 0)..=(h.0, at))
                .next_back()
                .map(|(_, r)| (r.cred, r.fds.is_some()));
            let (cred0, mut fds) = cur.unwrap_or((None, false));
            let first = *self.first.get_or_insert(cred0);
            if passcred && cred0 != first {
                return Some(0);
            }
            let end = at + avail as u64;
            for (&(_, off), r) in recs.range((h.0, at + 1)..(h.0, end.max(at + 1))) {
                let n = (off - at) as usize;
                if fds || (passcred && r.cred != first) {
                    return Some(n);
                }
                fds = r.fds.is_some();
            }
            None
        })
    }

    /// The read took bytes `[at, at + n)`: the fds of a message starting
    /// there come with it (copies with `peek`), and records the read
    /// left behind go.
    pub(crate) fn took(&mut self, h: SockHandle, at: u64, n: usize, peek: bool) {
        if !any_queued() {
            return;
        }
        let dropped = with(|t| {
            let end = at + n.max(1) as u64;
            let mut got = None;
            let keys: Vec<u64> = t
                .queued
                .range((h.0, at)..(h.0, end))
                .filter(|(_, r)| r.fds.is_some())
                .map(|(&(_, k), _)| k)
                .collect();
            for k in keys {
                let r = t.queued.get_mut(&(h.0, k)).expect("listed");
                got = if peek { r.fds.clone() } else { r.fds.take() };
            }
            if got.is_some() {
                self.fds = got;
                self.stop = true;
                self.peek = peek;
            }
            if peek || n == 0 {
                return Vec::new();
            }
            // Records wholly behind the new read offset.
            let new_at = at + n as u64;
            let behind: Vec<u64> = t
                .queued
                .range((h.0, 0)..=(h.0, new_at))
                .map(|(&(_, k), _)| k)
                .collect();
            let mut out = Vec::new();
            let last = behind.last().copied();
            for k in behind {
                let keep_last = Some(k) == last && {
                    let r = &t.queued[&(h.0, k)];
                    !r.is_empty()
                };
                if !keep_last {
                    if let Some(r) = t.queued.remove(&(h.0, k)) {
                        counted(&r, false);
                        out.push(r);
                    }
                }
            }
            out
        });
        drop(dropped);
    }

    /// The read is over: what it took, registered for recvmsg when
    /// `collect` (the id to report), dropped otherwise.
    pub(crate) fn finish(self, collect: bool) -> u64 {
        if !collect {
            return 0;
        }
        let cred = self.first.flatten();
        if cred.is_none() && self.fds.is_none() {
            return 0;
        }
        with(|t| {
            t.next += 1;
            let id = t.next;
            t.taken.insert(
                id,
                Taken {
                    cred,
                    fds: self.fds,
                    peek: self.peek,
                },
            );
            id
        })
    }
}

/// Receiver `h` is closed: what its queue holds goes (closing the fds),
/// then unreachable cycles are collected.
pub(crate) fn purge(h: SockHandle) {
    if any_queued() {
        let dropped: Vec<Attach> = with(|t| {
            let keys: Vec<u64> = t
                .queued
                .range((h.0, 0)..=(h.0, u64::MAX))
                .map(|(&(_, k), _)| k)
                .collect();
            keys.into_iter()
                .filter_map(|k| t.queued.remove(&(h.0, k)))
                .inspect(|a| counted(a, false))
                .collect()
        });
        drop(dropped);
    }
    collect();
}

/// The garbage collector: finds the sockets only queued fds refer to, in
/// queues that no other socket can reach, and drops those queues.
pub(crate) fn collect() {
    if QUEUED_SOCKS.load(Ordering::Acquire) == 0 {
        return;
    }
    let dead: Vec<u64> = with(|t| {
        // In-flight references per socket, and who holds them.
        let mut inflight: BTreeMap<u64, (u32, Arc<Socket>)> = BTreeMap::new();
        let mut edges: Vec<(u64, u64)> = Vec::new();
        for (&(owner, _), r) in &t.queued {
            if let Some(f) = &r.fds {
                for (_, s) in &f.socks {
                    let e = inflight.entry(s.handle.0).or_insert((0, s.clone()));
                    e.0 += 1;
                    edges.push((owner, s.handle.0));
                }
            }
        }
        let candidate = |h: u64| {
            inflight
                .get(&h)
                .is_some_and(|(n, s)| s.refs.load(Ordering::Acquire) <= *n)
        };
        // Reachable: held in the queue of a socket that is not a
        // candidate, or of one reachable.
        let mut reach: BTreeMap<u64, ()> = BTreeMap::new();
        let mut changed = true;
        while changed {
            changed = false;
            for &(owner, s) in &edges {
                if (!candidate(owner) || reach.contains_key(&owner)) && !reach.contains_key(&s) {
                    reach.insert(s, ());
                    changed = true;
                }
            }
        }
        inflight
            .keys()
            .copied()
            .filter(|h| candidate(*h) && !reach.contains_key(h))
            .collect()
    });
    for h in dead {
        let dropped: Vec<Attach> = with(|t| {
            let keys: Vec<u64> = t
                .queued
                .range((h, 0)..=(h, u64::MAX))
                .map(|(&(_, k), _)| k)
                .collect();
            keys.into_iter()
                .filter_map(|k| t.queued.remove(&(h, k)))
                .inspect(|a| counted(a, false))
                .collect()
        });
        drop(dropped);
    }
}

/// A datagram record's source bytes with the key of its attachment in
/// front: a family no address has, then the key.
const KEY_TAG: [u8; 2] = [0xff, 0xfe];

/// The source bytes a datagram with attachment `key` is held under.
pub(crate) fn keyed_src(key: u64, src: &[u8], out: &mut [u8]) -> usize {
    out[..2].copy_from_slice(&KEY_TAG);
    out[2..10].copy_from_slice(&key.to_ne_bytes());
    let n = src.len().min(out.len() - 10);
    out[10..10 + n].copy_from_slice(&src[..n]);
    10 + n
}

/// Takes a datagram record's source bytes apart: the source, and the key
/// of its attachment if it has one.
pub(crate) fn split_key(held: &[u8]) -> (&[u8], Option<u64>) {
    match held {
        [0xff, 0xfe, rest @ ..] if rest.len() >= 8 => {
            let mut k = [0u8; 8];
            k.copy_from_slice(&rest[..8]);
            (&rest[8..], Some(u64::from_ne_bytes(k)))
        }
        _ => (held, None),
    }
}

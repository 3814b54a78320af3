//! The table of bound addresses: who is bound where, conflicts
//! (EADDRINUSE, SO_REUSEADDR, SO_REUSEPORT), ephemeral ports, and lookup of
//! the socket an address reaches. Sharded by port, so that datagram sends
//! to different ports take different locks.
#![deny(unsafe_code)]

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};

use super::{fs, LoSock};
use crate::addr::{IpEp, UnixName};
use crate::backend::contract::{Errno, SockHandle};
use crate::consts::*;
use crate::sync::Mutex;

/// Where a bound socket sits in the table.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum BindKey {
    /// An IP port (both families share it, as dual-stack sockets do).
    Ip { ty: i32, port: u16 },
    /// An AF_UNIX socket file.
    UnixFile { ty: i32, id: fs::FileId },
    /// An AF_UNIX abstract name.
    UnixAbstract { ty: i32, name: Vec<u8> },
}

/// One bound socket.
#[derive(Clone)]
pub struct BindEntry {
    pub handle: SockHandle,
    pub sock: Arc<LoSock>,
    pub ep: Option<IpEp>,
    /// Takes only its own family (always true for AF_INET).
    pub v6only: bool,
    pub reuseaddr: bool,
    pub reuseport: bool,
    /// The effective user that bound it: an SO_REUSEPORT group is one
    /// user's (Linux compares the sockets' `sk_uid`).
    pub uid: u32,
    /// 0 for a bound socket; for a TIME_WAIT record (a closed connection's
    /// end that closed first), the monotonic time in ns it ends at.
    pub tw_until: u64,
}

impl BindEntry {
    /// A bound socket, not a TIME_WAIT record.
    fn live(&self) -> bool {
        self.tw_until == 0
    }

    /// Does this entry receive traffic for `dest`?
    fn reaches(&self, dest: &IpEp) -> bool {
        let Some(ep) = self.ep else { return false };
        if ep.family == AF_INET6 && self.v6only && dest.is_v4() {
            return false;
        }
        if ep.family == AF_INET && !dest.is_v4() {
            return false;
        }
        ep.is_wild() || ep.ip == dest.ip || (dest.is_wild() && ep.is_local())
    }

    /// Do two bound IP endpoints overlap?
    fn overlaps(&self, other: &BindEntry) -> bool {
        let (Some(a), Some(b)) = (self.ep, other.ep) else {
            return false;
        };
        let fam_meet = |x: &BindEntry, y: &BindEntry| {
            x.ep.map(|e| e.family) == y.ep.map(|e| e.family)
                || (!x.v6only && y.ep.is_some_and(|e| e.is_v4()))
                || (!y.v6only && x.ep.is_some_and(|e| e.is_v4()))
        };
        if !fam_meet(self, other) {
            return false;
        }
        let a_v6wild = a.family == AF_INET6 && a.ip == [0; 16];
        let b_v6wild = b.family == AF_INET6 && b.ip == [0; 16];
        a.is_wild() || b.is_wild() || a.ip == b.ip || a_v6wild || b_v6wild
    }

    /// May `self` bind next to the existing `other`?
    fn compatible(&self, other: &BindEntry, ty: i32) -> bool {
        if self.reuseport && other.reuseport && self.uid == other.uid {
            return true;
        }
        self.reuseaddr && other.reuseaddr && (ty == SOCK_DGRAM || !other.sock.is_listening())
    }
}

const SHARDS: usize = 16;

type Shard = Mutex<BTreeMap<BindKey, Vec<BindEntry>>>;

/// The shards' guards a fork holds, by table (its address), in the thread
/// that forks (see [`Table::fork_lock`]).
#[cfg(feature = "std")]
type ForkHeld = (
    usize,
    [crate::sync::MutexGuard<'static, BTreeMap<BindKey, Vec<BindEntry>>>; SHARDS],
);

#[cfg(feature = "std")]
std::thread_local! {
    static FORK_HELD: core::cell::RefCell<Vec<ForkHeld>> =
        const { core::cell::RefCell::new(Vec::new()) };
}

/// The table.
pub struct Table {
    shards: [Shard; SHARDS],
    next_port: AtomicU32,
    next_autobind: AtomicU32,
}

fn shard_of(key: &BindKey) -> usize {
    match key {
        BindKey::Ip { port, .. } => *port as usize % SHARDS,
        BindKey::UnixFile { id, .. } => (id.1 as usize) % SHARDS,
        BindKey::UnixAbstract { name, .. } => {
            name.iter()
                .fold(0usize, |h, &b| h.wrapping_mul(31).wrapping_add(b as usize))
                % SHARDS
        }
    }
}

impl Table {
    /// An empty table.
    pub fn new() -> Table {
        Table {
            shards: core::array::from_fn(|_| Mutex::new(BTreeMap::new())),
            next_port: AtomicU32::new(0),
            next_autobind: AtomicU32::new(0),
        }
    }

    fn shard(&self, key: &BindKey) -> &Shard {
        &self.shards[shard_of(key)]
    }

    /// Adds `entry` unless it conflicts; TIME_WAIT records conflict too
    /// unless `past_time_wait` (a connect's ephemeral port: Linux's
    /// `__inet_hash_connect` reuses a port in TIME_WAIT for another
    /// 4-tuple). Records that have run out go first: they expire here,
    /// lazily, with no timer.
    fn try_insert(
        &self,
        key: BindKey,
        entry: &BindEntry,
        ty: i32,
        past_time_wait: bool,
    ) -> Result<(), Errno> {
        let now = crate::platform::mono_ns();
        let mut sh = self.shard(&key).lock();
        let list = sh.entry(key).or_default();
        list.retain(|e| e.live() || e.tw_until > now);
        if list
            .iter()
            .any(|e| (e.live() || !past_time_wait) && entry.overlaps(e) && !entry.compatible(e, ty))
        {
            return Err(EADDRINUSE);
        }
        list.push(entry.clone());
        Ok(())
    }

    /// Binds an IP socket; port 0 picks a free ephemeral port from
    /// `range` (for a connect, `past_time_wait`: one in TIME_WAIT will do),
    /// EADDRINUSE when none is. Returns the port and the key.
    pub fn bind_ip(
        &self,
        ty: i32,
        entry: BindEntry,
        past_time_wait: bool,
        range: (u16, u16),
    ) -> Result<(u16, BindKey), Errno> {
        let ep = entry.ep.ok_or(EINVAL)?;
        if ep.port != 0 {
            let key = BindKey::Ip { ty, port: ep.port };
            self.try_insert(key.clone(), &entry, ty, false)?;
            return Ok((ep.port, key));
        }
        let (lo, hi) = range;
        let span = u32::from(hi.max(lo) - lo) + 1;
        // Where the last search left off, so that successive binds spread
        // over the range instead of retrying the same ports.
        let start = self.next_port.fetch_add(1, Ordering::Relaxed);
        for i in 0..span {
            let port = lo + (start.wrapping_add(i) % span) as u16;
            let mut e = entry.clone();
            e.ep = Some(IpEp { port, ..ep });
            // An ephemeral port is never shared.
            e.reuseaddr = false;
            e.reuseport = false;
            let key = BindKey::Ip { ty, port };
            if self.try_insert(key.clone(), &e, ty, past_time_wait).is_ok() {
                if let Some(last) = self
                    .shard(&key)
                    .lock()
                    .get_mut(&key)
                    .and_then(|l| l.iter_mut().find(|x| x.live() && x.handle == e.handle))
                {
                    last.reuseaddr = entry.reuseaddr;
                    last.reuseport = entry.reuseport;
                }
                return Ok((port, key));
            }
        }
        Err(EADDRINUSE)
    }

    /// Binds an AF_UNIX socket; an unnamed address autobinds to an abstract
    /// name of five hex digits, as Linux does.
    pub fn bind_unix(
        &self,
        ty: i32,
        name: UnixName,
        entry: BindEntry,
    ) -> Result<(UnixName, BindKey), Errno> {
        match name {
            UnixName::Path(ref p) => {
                let id = fs::create(p)?;
                let key = BindKey::UnixFile { ty, id };
                // The file is new, so a socket still keyed by its inode
                // number lost its own file (unlinked; the file system
                // reused the number): it keeps its binding until closed but
                // is no longer reached by this name. Without a file system
                // the key is the name's, and taken is taken.
                #[cfg(feature = "std")]
                self.shard(&key)
                    .lock()
                    .insert(key.clone(), alloc::vec![entry]);
                #[cfg(not(feature = "std"))]
                self.try_insert_unix(key.clone(), &entry)?;
                Ok((name, key))
            }
            UnixName::Abstract(ref n) => {
                let key = BindKey::UnixAbstract {
                    ty,
                    name: n.clone(),
                };
                self.try_insert_unix(key.clone(), &entry)?;
                Ok((name, key))
            }
            UnixName::Unnamed => {
                for _ in 0..0x100000 {
                    let v = self.next_autobind.fetch_add(1, Ordering::Relaxed) & 0xfffff;
                    let mut n = Vec::with_capacity(5);
                    for shift in [16, 12, 8, 4, 0] {
                        n.push(b"0123456789abcdef"[((v >> shift) & 0xf) as usize]);
                    }
                    let key = BindKey::UnixAbstract {
                        ty,
                        name: n.clone(),
                    };
                    if self.try_insert_unix(key.clone(), &entry).is_ok() {
                        return Ok((UnixName::Abstract(n), key));
                    }
                }
                Err(ENOSPC)
            }
        }
    }

    fn try_insert_unix(&self, key: BindKey, entry: &BindEntry) -> Result<(), Errno> {
        let mut sh = self.shard(&key).lock();
        let list = sh.entry(key).or_default();
        if !list.is_empty() {
            return Err(EADDRINUSE);
        }
        list.push(entry.clone());
        Ok(())
    }

    /// listen() on a bound port: refused when another socket already listens
    /// on an overlapping address without SO_REUSEPORT on both.
    pub fn check_listen(&self, key: &BindKey, s: &Arc<LoSock>) -> Result<(), Errno> {
        let sh = self.shard(key).lock();
        let Some(list) = sh.get(key) else {
            return Ok(());
        };
        let Some(me) = list.iter().find(|e| Arc::ptr_eq(&e.sock, s)) else {
            return Ok(());
        };
        for e in list.iter().filter(|e| e.live()) {
            if !Arc::ptr_eq(&e.sock, s)
                && e.sock.is_listening()
                && me.overlaps(e)
                && !(me.reuseport && e.reuseport && me.uid == e.uid)
            {
                return Err(EADDRINUSE);
            }
        }
        Ok(())
    }

    /// fork() support: takes every shard's lock (a shard's lock is held
    /// only inside this table's methods) and keeps the guards in this
    /// thread (the child's copy of it, in a fork child). Released by
    /// [`Self::fork_unlock`] on the same thread.
    #[cfg(feature = "std")]
    pub fn fork_lock(&'static self) {
        let guards = core::array::from_fn(|i| self.shards[i].lock());
        FORK_HELD.with(|h| h.borrow_mut().push((self as *const Table as usize, guards)));
    }

    /// fork() support: releases what [`Self::fork_lock`] took on this
    /// thread (nothing if it took nothing), in the parent and in the child
    /// alike. The child keeps the bindings: each belongs to a socket the
    /// child holds too (its copies of the parent's descriptors), and on
    /// Linux the child shares those sockets, so their ports stay taken in
    /// its network (a bind there is refused, SO_REUSEPORT only for the
    /// same user) until the child closes its copy. Dropping a guard in
    /// the child is how the crate's mutex is released there (a futex word:
    /// a waiter of the parent's that did not come along is woken in vain).
    #[cfg(feature = "std")]
    pub fn fork_unlock(&'static self) {
        let me = self as *const Table as usize;
        let held = FORK_HELD.with(|h| {
            let mut h = h.borrow_mut();
            let i = h.iter().position(|(t, _)| *t == me)?;
            Some(h.swap_remove(i).1)
        });
        drop(held);
    }

    /// Removes a socket's binding.
    pub fn unbind(&self, key: &BindKey, h: SockHandle) {
        let mut sh = self.shard(key).lock();
        if let Some(list) = sh.get_mut(key) {
            list.retain(|e| e.handle != h || !e.live());
            if list.is_empty() {
                sh.remove(key);
            }
        }
    }

    /// Removes socket `h`'s binding (if it has one at `key`: an accepted
    /// socket has none of its own) and leaves the TIME_WAIT record `tw` in
    /// its place, under one lock. A record like it already there (same
    /// address and flags) is extended instead: the table keeps the ports
    /// held, not every connection.
    pub fn time_wait(&self, key: &BindKey, h: SockHandle, tw: BindEntry) {
        let mut sh = self.shard(key).lock();
        let list = sh.entry(key.clone()).or_default();
        list.retain(|e| e.handle != h || !e.live());
        let same = |e: &&mut BindEntry| {
            !e.live()
                && e.ep == tw.ep
                && e.v6only == tw.v6only
                && e.reuseaddr == tw.reuseaddr
                && e.reuseport == tw.reuseport
        };
        match list.iter_mut().find(same) {
            Some(e) => e.tw_until = e.tw_until.max(tw.tw_until),
            None => list.push(tw),
        }
    }

    /// The socket that receives traffic for `dest` from `from` among those
    /// passing `filter`: an exact address beats a wildcard, and among
    /// equals the most recently bound wins (SO_REUSEADDR datagram
    /// semantics), unless it belongs to an SO_REUSEPORT group: then the
    /// flow's hash picks one of the group, as Linux's
    /// `reuseport_select_sock` spreads connections and datagrams.
    pub fn lookup_ip(
        &self,
        ty: i32,
        dest: &IpEp,
        from: Option<&IpEp>,
        filter: impl Fn(&BindEntry) -> bool,
    ) -> Option<BindEntry> {
        let key = BindKey::Ip {
            ty,
            port: dest.port,
        };
        let sh = self.shard(&key).lock();
        let list = sh.get(&key)?;
        let mut best: Option<&BindEntry> = None;
        for e in list
            .iter()
            .filter(|e| e.live() && e.reaches(dest) && filter(e))
        {
            let exact = e.ep.is_some_and(|ep| ep.ip == dest.ip);
            let better = match best {
                None => true,
                Some(b) => exact || !b.ep.is_some_and(|ep| ep.ip == dest.ip),
            };
            if better {
                best = Some(e);
            }
        }
        let best = best?;
        let (Some(from), true) = (from, best.reuseport) else {
            return Some(best.clone());
        };
        let exact = |e: &BindEntry| e.ep.is_some_and(|ep| ep.ip == dest.ip);
        let group: Vec<&BindEntry> = list
            .iter()
            .filter(|e| {
                e.live() && e.reuseport && e.reaches(dest) && exact(e) == exact(best) && filter(e)
            })
            .collect();
        let pick = (from.flow_hash() % group.len().max(1) as u64) as usize;
        Some(group.get(pick).copied().unwrap_or(best).clone())
    }

    /// Every bound socket a datagram to `dest` reaches, in bind order: a
    /// datagram to a multicast or broadcast address goes to each that
    /// takes it, as Linux's `__udp4_lib_mcast_deliver` walks the port.
    pub fn lookup_all_ip(&self, ty: i32, dest: &IpEp) -> Vec<BindEntry> {
        let key = BindKey::Ip {
            ty,
            port: dest.port,
        };
        let sh = self.shard(&key).lock();
        sh.get(&key)
            .map(|l| {
                l.iter()
                    .filter(|e| e.live() && e.reaches(dest))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The socket bound to an AF_UNIX name. ENOENT when a pathname has no
    /// file, as connect() and sendto() report it.
    pub fn lookup_unix(&self, ty: i32, name: &UnixName) -> Result<Option<BindEntry>, Errno> {
        let key = match name {
            UnixName::Path(p) => BindKey::UnixFile {
                ty,
                id: fs::lookup(p)?,
            },
            UnixName::Abstract(n) => BindKey::UnixAbstract {
                ty,
                name: n.clone(),
            },
            UnixName::Unnamed => return Err(EINVAL),
        };
        let sh = self.shard(&key).lock();
        Ok(sh.get(&key).and_then(|l| l.first().cloned()))
    }
}

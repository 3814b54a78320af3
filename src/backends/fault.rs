//! Fault injection: a backend that wraps another and mistreats its
//! fragments the way a real transport may.
//!
//! [`FaultBackend::wrap`] puts it around any `Arc<dyn Backend>`; the
//! `USOCK_FAULT` environment variable puts it around the default (loopback)
//! backend when the registry installs it (see [`FaultConfig::parse`] for the
//! syntax). Every decision comes from a small seeded PRNG (SplitMix64), one
//! stream per socket, so a seed reproduces a run up to thread scheduling.
//!
//! What it does to the fragments the frontend writes (each with its own
//! probability):
//! - **split**: cuts a fragment in two at a random point (again and again,
//!   up to 8 pieces); a FIN stays on the last piece;
//! - **dup**: sends a piece twice;
//! - **reorder**: holds a piece back so that later ones overtake it; it is
//!   released at the next write on the socket or by the timer (<= 1 ms);
//! - **delay**: holds a piece for a random time up to `delay_ms`, released by
//!   a later write or by the wrapper's own timer thread;
//! - **coalesce**: when held pieces are released, merges contiguous ones (of
//!   one stream, or of one datagram) into one fragment;
//! - **drop**: datagram pieces only. Stream data is never dropped: order and
//!   reliability are the backend's job, and this one keeps them.
//!
//! Stream pieces stay inside the credit the frontend was granted, which is
//! inside the receiver's window (contract rule); a piece the receiver cannot
//! take yet (`ENOBUFS`: its Socket Buffer is out of hole slots because of the
//! reordering) is kept and offered again, lowest offset first, as a reliable
//! backend must. Before a reset (RST) and at close, everything held for the
//! socket is released in offset order, so nothing sent is lost. A second copy
//! of a piece is not sent once the socket's FIN went out: after that the
//! receiver may have read everything and closed, and a stray duplicate would
//! reset the sender as data to a closed TCP port does.
//!
//! Backend-side faults (for tests of what the application sees):
//! - **refuse** (probability): a stream connect is refused (`ECONNREFUSED`);
//! - **blackhole**: a stream connect never completes;
//! - **reset_after** (bytes): a connection is reset when its sender passes
//!   that many bytes: the receiver reads what arrived, then `ECONNRESET`;
//!   the sender gets `ECONNRESET` too;
//! - **no_credit**: window updates are swallowed, so a sender gets the first
//!   window and no more (sends block, time out, or give `EAGAIN`).
//!
//! Datagram ids and sources are left alone, so the receiver reassembles
//! split datagrams by (id, source): it delivers whole datagrams or nothing.
#![deny(unsafe_code)]

use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::collections::HashMap;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::addr::SockAddr;
use crate::backend::contract::*;
use crate::backend::upcall;
use crate::consts::*;

/// Largest fragment coalescing builds (the wire format allows 1 MiB).
const COALESCE_MAX: usize = 256 * 1024;
/// Most pieces one fragment is split into.
const SPLIT_MAX: usize = 8;
/// How often the timer looks at held pieces while some are held.
const TICK: Duration = Duration::from_millis(1);

/// What the wrapper does, with which probability (0.0 ..= 1.0).
#[derive(Clone, Debug, PartialEq)]
pub struct FaultConfig {
    /// PRNG seed.
    pub seed: u64,
    /// Probability that a piece is held back and overtaken.
    pub reorder: f64,
    /// Probability that a piece is sent twice.
    pub dup: f64,
    /// Probability that a fragment (and each piece again) is split.
    pub split: f64,
    /// Probability that a piece is held for up to `max_delay`.
    pub delay: f64,
    /// Probability that contiguous held pieces are merged on release.
    pub coalesce: f64,
    /// Probability that a datagram piece is dropped.
    pub drop: f64,
    /// Longest delay of a delayed piece.
    pub max_delay: Duration,
    /// Probability that a stream connect is refused.
    pub refuse: f64,
    /// Stream connects never complete.
    pub blackhole: bool,
    /// Reset each connection when its sender passes this many bytes.
    pub reset_after: Option<u64>,
    /// Swallow window updates (no credit after the first window).
    pub no_credit: bool,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            seed: 1,
            reorder: 0.0,
            dup: 0.0,
            split: 0.0,
            delay: 0.0,
            coalesce: 0.0,
            drop: 0.0,
            max_delay: Duration::from_millis(2),
            refuse: 0.0,
            blackhole: false,
            reset_after: None,
            no_credit: false,
        }
    }
}

impl FaultConfig {
    /// Parses `key=value` pairs separated by commas (spaces around them
    /// ignored), e.g. `seed=7,reorder=0.2,dup=0.05,split=0.3,delay=0.1,drop=0.01`.
    ///
    /// Keys: `seed` (u64), `reorder`, `dup`, `split`, `delay`, `coalesce`,
    /// `drop`, `refuse` (probabilities in `0..=1`), `delay_ms` (u64, the
    /// longest delay, default 2), `blackhole` and `no_credit` (`0`/`1`),
    /// `reset_after` (bytes). An empty string is the default (no faults).
    /// Errors name the offending pair: unknown key, bad number, probability
    /// outside `0..=1`, missing `=`, a key given twice.
    pub fn parse(s: &str) -> Result<FaultConfig, alloc::string::String> {
        use alloc::format;
        let mut c = FaultConfig::default();
        let mut seen: Vec<&str> = Vec::new();
        for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((k, v)) = pair.split_once('=') else {
                return Err(format!("`{pair}`: expected key=value"));
            };
            let (k, v) = (k.trim(), v.trim());
            if seen.contains(&k) {
                return Err(format!("`{k}` given twice"));
            }
            seen.push(k);
            let prob = || -> Result<f64, alloc::string::String> {
                match v.parse::<f64>() {
                    Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
                    _ => Err(format!("`{pair}`: {k} must be a probability in 0..=1")),
                }
            };
            let int = || -> Result<u64, alloc::string::String> {
                v.parse::<u64>()
                    .map_err(|_| format!("`{pair}`: {k} must be a non-negative integer"))
            };
            let flag = || -> Result<bool, alloc::string::String> {
                match v {
                    "0" => Ok(false),
                    "1" => Ok(true),
                    _ => Err(format!("`{pair}`: {k} must be 0 or 1")),
                }
            };
            match k {
                "seed" => c.seed = int()?,
                "reorder" => c.reorder = prob()?,
                "dup" => c.dup = prob()?,
                "split" => c.split = prob()?,
                "delay" => c.delay = prob()?,
                "coalesce" => c.coalesce = prob()?,
                "drop" => c.drop = prob()?,
                "refuse" => c.refuse = prob()?,
                "delay_ms" => c.max_delay = Duration::from_millis(int()?),
                "blackhole" => c.blackhole = flag()?,
                "no_credit" => c.no_credit = flag()?,
                "reset_after" => c.reset_after = Some(int()?),
                _ => return Err(format!("unknown key `{k}`")),
            }
        }
        Ok(c)
    }

    /// The configuration in `USOCK_FAULT`: `Ok(None)` when unset or empty.
    pub fn from_env() -> Result<Option<FaultConfig>, alloc::string::String> {
        match std::env::var("USOCK_FAULT") {
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err("not valid UTF-8".into()),
            Ok(s) if s.trim().is_empty() => Ok(None),
            Ok(s) => FaultConfig::parse(&s).map(Some),
        }
    }
}

/// The registry's hook: the default backend, wrapped when `USOCK_FAULT` is
/// set. A malformed `USOCK_FAULT` is reported on stderr and no default
/// backend is installed (every socket() then fails with EAFNOSUPPORT):
/// running with a fault configuration other than the one asked for would
/// make a test prove nothing.
pub fn wrap_default(inner: Arc<dyn Backend>) -> Option<Arc<dyn Backend>> {
    match FaultConfig::from_env() {
        Ok(None) => Some(inner),
        Ok(Some(cfg)) => Some(FaultBackend::wrap(inner, cfg)),
        Err(msg) => {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "libuserspacesock: USOCK_FAULT: {msg}; refusing to start: no default \
                 backend installed (socket() fails with EAFNOSUPPORT)"
            );
            None
        }
    }
}

/// Counts of what the wrapper did (for tests and reports).
#[derive(Default, Debug)]
pub struct FaultStats {
    /// Pieces made by splitting (beyond the first of each fragment).
    pub splits: AtomicU64,
    /// Extra copies sent.
    pub dups: AtomicU64,
    /// Extra copies not sent because the FIN had gone out.
    pub dups_skipped: AtomicU64,
    /// Pieces held to be overtaken.
    pub reorders: AtomicU64,
    /// Pieces held for a delay.
    pub delays: AtomicU64,
    /// Merges of two held pieces.
    pub coalesced: AtomicU64,
    /// Datagram pieces dropped.
    pub drops: AtomicU64,
    /// Pieces the receiver refused for now (ENOBUFS) and that were kept.
    pub retries: AtomicU64,
    /// Pieces released by the timer thread.
    pub timer_releases: AtomicU64,
    /// Connects refused.
    pub refused: AtomicU64,
    /// Connections reset.
    pub resets: AtomicU64,
    /// Window updates swallowed.
    pub windows_swallowed: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && ((self.next() >> 11) as f64) < p * (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// An owned piece of a fragment.
struct Piece {
    header: FragHeader,
    addr: Vec<u8>,
    payload: Vec<u8>,
    due: Instant,
    /// Shared by the two copies of a duplicated piece: set when one of them
    /// was delivered.
    twin: Option<Arc<AtomicBool>>,
}

impl Piece {
    fn from(f: &Fragment<'_>) -> Piece {
        Piece {
            header: f.header,
            addr: f.addr.to_vec(),
            payload: f.payload.to_vec(),
            due: Instant::now(),
            twin: None,
        }
    }

    fn frag(&self) -> Fragment<'_> {
        Fragment {
            header: self.header,
            addr: &self.addr,
            payload: &self.payload,
        }
    }

    fn stream(&self) -> bool {
        self.header.kind == FragKind::Stream
    }

    /// Sort key: stream offset, or (datagram id, offset inside it).
    fn key(&self) -> (u64, u32) {
        (self.header.offset, self.header.dgram_offset)
    }

    /// Splits at `at` (0 < at < len) into two pieces.
    fn split(mut self, at: usize) -> (Piece, Piece) {
        let tail = self.payload.split_off(at);
        let mut h2 = self.header;
        h2.len = tail.len() as u32;
        self.header.len = at as u32;
        match self.header.kind {
            FragKind::Stream => {
                h2.offset = self.header.offset + at as u64;
                // The FIN belongs after the last byte, URG and EOR mark it.
                self.header.flags &= !(FLAG_FIN | FLAG_URG | FLAG_EOR);
            }
            FragKind::Dgram => h2.dgram_offset = self.header.dgram_offset + at as u32,
        }
        let second = Piece {
            header: h2,
            addr: self.addr.clone(),
            payload: tail,
            due: self.due,
            twin: None,
        };
        (self, second)
    }

    /// Whether `next` continues this piece (same stream, or same datagram
    /// from the same source) and may be merged into it.
    fn continued_by(&self, next: &Piece) -> bool {
        let (a, b) = (&self.header, &next.header);
        if a.kind != b.kind
            || self.twin.is_some()
            || next.twin.is_some()
            || self.payload.len() + next.payload.len() > COALESCE_MAX
        {
            return false;
        }
        match a.kind {
            FragKind::Stream => {
                a.flags == 0 && b.flags & FLAG_RST == 0 && a.offset + u64::from(a.len) == b.offset
            }
            FragKind::Dgram => {
                a.offset == b.offset
                    && a.dgram_total == b.dgram_total
                    && self.addr == next.addr
                    && a.dgram_offset + a.len == b.dgram_offset
            }
        }
    }

    fn merge(&mut self, next: Piece) {
        self.payload.extend_from_slice(&next.payload);
        self.header.len = self.payload.len() as u32;
        self.header.flags |= next.header.flags;
    }
}

/// Per-socket state of the wrapper.
struct FSock {
    handle: SockHandle,
    info: SockInfo,
    state: SockState,
    q: Mutex<Q>,
}

struct Q {
    rng: Rng,
    opts: SockOpts,
    held: Vec<Piece>,
    /// Something of this socket was held or split: an ENOBUFS from the
    /// receiver is then ours to retry, not the application's to see.
    disordered: bool,
    fin_out: bool,
    reset_done: bool,
    closed: bool,
}

impl FSock {
    fn sref(&self, opts: SockOpts) -> SockRef<'_> {
        SockRef {
            handle: self.handle,
            state: &self.state,
            info: self.info,
            opts,
        }
    }
}

struct Timer {
    pending: Mutex<Vec<Weak<FSock>>>,
    cv: Condvar,
    started: AtomicBool,
}

struct Shared {
    inner: Arc<dyn Backend>,
    cfg: FaultConfig,
    socks: Vec<Mutex<HashMap<u64, Arc<FSock>>>>,
    next_seq: AtomicU64,
    timer: Arc<Timer>,
    stats: FaultStats,
}

const SHARDS: usize = 16;

/// A backend that wraps another and injects faults; see the module
/// documentation.
pub struct FaultBackend {
    shared: Arc<Shared>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl FaultBackend {
    /// Wraps `inner` with the faults of `cfg`.
    pub fn wrap(inner: Arc<dyn Backend>, cfg: FaultConfig) -> Arc<FaultBackend> {
        Arc::new(FaultBackend {
            shared: Arc::new(Shared {
                inner,
                cfg,
                socks: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
                next_seq: AtomicU64::new(0),
                timer: Arc::new(Timer {
                    pending: Mutex::new(Vec::new()),
                    cv: Condvar::new(),
                    started: AtomicBool::new(false),
                }),
                stats: FaultStats::default(),
            }),
        })
    }

    /// What the wrapper did so far.
    pub fn stats(&self) -> &FaultStats {
        &self.shared.stats
    }

    /// The configuration in force.
    pub fn config(&self) -> &FaultConfig {
        &self.shared.cfg
    }
}

impl Shared {
    fn shard(&self, h: SockHandle) -> &Mutex<HashMap<u64, Arc<FSock>>> {
        &self.socks[(h.0 as usize ^ (h.0 >> 32) as usize) % SHARDS]
    }

    fn fsock(&self, sock: &SockRef<'_>) -> Arc<FSock> {
        let mut m = lock(self.shard(sock.handle));
        m.entry(sock.handle.0)
            .or_insert_with(|| {
                let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
                let mut seed = Rng(self.cfg.seed ^ seq.wrapping_mul(0xA076_1D64_78BD_642F));
                Arc::new(FSock {
                    handle: sock.handle,
                    info: sock.info,
                    state: sock.state.clone(),
                    q: Mutex::new(Q {
                        rng: Rng(seed.next()),
                        opts: sock.opts,
                        held: Vec::new(),
                        disordered: false,
                        fin_out: false,
                        reset_done: false,
                        closed: false,
                    }),
                })
            })
            .clone()
    }

    /// Cuts `f` into pieces (split, dup, drop).
    fn pieces(&self, q: &mut Q, f: &Fragment<'_>) -> Vec<Piece> {
        let c = &self.cfg;
        let mut out = Vec::new();
        let mut todo = alloc::vec![Piece::from(f)];
        while let Some(p) = todo.pop() {
            let n = p.payload.len();
            if n >= 2 && out.len() + todo.len() + 1 < SPLIT_MAX && q.rng.chance(c.split) {
                let at = 1 + q.rng.below(n as u64 - 1) as usize;
                let (a, b) = p.split(at);
                bump(&self.stats.splits);
                q.disordered = true;
                todo.push(b);
                todo.push(a);
                continue;
            }
            out.push(p);
        }
        let mut res = Vec::with_capacity(out.len());
        for mut p in out {
            if !p.stream() && q.rng.chance(c.drop) {
                bump(&self.stats.drops);
                continue;
            }
            if q.rng.chance(c.dup) {
                let t = Arc::new(AtomicBool::new(false));
                p.twin = Some(t.clone());
                let copy = Piece {
                    header: p.header,
                    addr: p.addr.clone(),
                    payload: p.payload.clone(),
                    due: p.due,
                    twin: Some(t),
                };
                bump(&self.stats.dups);
                res.push(p);
                res.push(copy);
            } else {
                res.push(p);
            }
        }
        res
    }

    /// Hands one piece to the inner backend. Stream pieces the receiver
    /// cannot take yet are kept (`Ok`); other errors are returned.
    fn emit(&self, fs: &FSock, q: &mut Q, p: Piece) -> Result<(), Errno> {
        if let Some(t) = &p.twin {
            if t.load(Ordering::Acquire) && q.fin_out && p.stream() {
                bump(&self.stats.dups_skipped);
                return Ok(());
            }
        }
        match self.inner.write(fs.sref(q.opts), &p.frag()) {
            Ok(()) => {
                if let Some(t) = &p.twin {
                    t.store(true, Ordering::Release);
                }
                if p.stream() && p.header.flags & FLAG_FIN != 0 {
                    q.fin_out = true;
                }
                Ok(())
            }
            Err(ENOBUFS) if p.stream() && q.disordered => {
                bump(&self.stats.retries);
                let mut p = p;
                p.due = Instant::now();
                q.held.push(p);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Releases the held pieces that are due (all of them with `all`):
    /// contiguous ones may be merged, then they go out in random order
    /// (`all`: in offset order, so that each stream piece meets the
    /// receiver's edge). Returns how many went out.
    fn release(&self, fs: &FSock, q: &mut Q, now: Instant, all: bool) -> usize {
        if q.held.is_empty() {
            return 0;
        }
        let (mut due, keep): (Vec<Piece>, Vec<Piece>) = core::mem::take(&mut q.held)
            .into_iter()
            .partition(|p| all || p.due <= now);
        q.held = keep;
        if due.is_empty() {
            return 0;
        }
        due.sort_by_key(Piece::key);
        let mut merged: Vec<Piece> = Vec::with_capacity(due.len());
        for p in due {
            match merged.last_mut() {
                Some(last) if last.continued_by(&p) && q.rng.chance(self.cfg.coalesce) => {
                    bump(&self.stats.coalesced);
                    last.merge(p);
                }
                _ => merged.push(p),
            }
        }
        if !all {
            for i in (1..merged.len()).rev() {
                let j = q.rng.below(i as u64 + 1) as usize;
                merged.swap(i, j);
            }
        }
        let n = merged.len();
        let retry_before = q.held.len();
        for p in merged {
            // A delayed piece has no caller to report to: a peer that is
            // gone already told the sender through the inner backend.
            let _ = self.emit(fs, q, p);
        }
        if all && q.held.len() > retry_before {
            // Offered in offset order, each stream piece met the edge; one
            // more pass for anything refused anyway.
            let again = core::mem::take(&mut q.held);
            for p in again {
                let _ = self.emit(fs, q, p);
            }
        }
        n
    }

    /// Puts the socket on the timer's list and makes sure the timer runs.
    fn arm(self: &Arc<Self>, fs: &Arc<FSock>) {
        let t = &self.timer;
        {
            let w = Arc::downgrade(fs);
            let mut pending = lock(&t.pending);
            if !pending.iter().any(|x| x.ptr_eq(&w)) {
                pending.push(w);
            }
        }
        t.cv.notify_one();
        if !t.started.swap(true, Ordering::AcqRel) {
            let weak = Arc::downgrade(self);
            let timer = self.timer.clone();
            let spawned =
                crate::platform::spawn_quiet("usock-fault", move || timer_loop(weak, timer));
            if spawned.is_err() {
                self.timer.started.store(false, Ordering::Release);
            }
        }
    }

    fn write(self: &Arc<Self>, sock: SockRef<'_>, frag: &Fragment<'_>) -> Result<(), Errno> {
        let fs = self.fsock(&sock);
        let mut q = lock(&fs.q);
        q.opts = sock.opts;
        if q.closed {
            drop(q);
            return self.inner.write(sock, frag);
        }
        let stream = frag.header.kind == FragKind::Stream;
        if stream && frag.header.flags & FLAG_RST != 0 {
            // Everything held goes out before the reset.
            self.release(&fs, &mut q, Instant::now(), true);
            return self.inner.write(sock, frag);
        }
        if stream {
            if let Some(limit) = self.cfg.reset_after {
                if q.reset_done {
                    return Ok(());
                }
                let end = frag.header.offset + u64::from(frag.header.len);
                if end > limit {
                    return self.reset_at(&fs, q, sock, frag, limit);
                }
            }
        }
        let r = self.inject(&fs, &mut q, frag);
        let armed = !q.held.is_empty();
        drop(q);
        if armed {
            self.arm(&fs);
        }
        r
    }

    /// The faults proper on one fragment; then releases what is due.
    fn inject(&self, fs: &FSock, q: &mut Q, frag: &Fragment<'_>) -> Result<(), Errno> {
        let c = &self.cfg;
        let now = Instant::now();
        let pieces = self.pieces(q, frag);
        let untouched = pieces.len() == 1;
        let mut result = Ok(());
        for mut p in pieces {
            if q.rng.chance(c.reorder) {
                bump(&self.stats.reorders);
                q.disordered = true;
                p.due = now;
                q.held.push(p);
            } else if q.rng.chance(c.delay) {
                bump(&self.stats.delays);
                q.disordered = true;
                let ns = c.max_delay.as_nanos().min(u64::MAX as u128) as u64;
                p.due = now + Duration::from_nanos(if ns == 0 { 0 } else { q.rng.below(ns + 1) });
                q.held.push(p);
            } else {
                let held = !q.held.is_empty();
                let r = self.emit(fs, q, p);
                // Only an untouched fragment reports the inner backend's
                // answer (EAGAIN of a full AF_UNIX receiver, EPIPE, ...).
                if untouched && !held && result.is_ok() {
                    result = r;
                }
            }
        }
        self.release(fs, q, now, false);
        result
    }

    /// Reset when the sender passes `limit` bytes: what lies below goes out
    /// (with faults), then everything held, then RST; the sender is reset
    /// too.
    fn reset_at(
        self: &Arc<Self>,
        fs: &Arc<FSock>,
        mut q: std::sync::MutexGuard<'_, Q>,
        sock: SockRef<'_>,
        frag: &Fragment<'_>,
        limit: u64,
    ) -> Result<(), Errno> {
        let keep = limit.saturating_sub(frag.header.offset) as usize;
        if keep > 0 && keep <= frag.payload.len() {
            let mut part = *frag;
            part.payload = &frag.payload[..keep];
            part.header.len = keep as u32;
            part.header.flags = 0;
            let _ = self.inject(fs, &mut q, &part);
        }
        self.release(fs, &mut q, Instant::now(), true);
        q.reset_done = true;
        bump(&self.stats.resets);
        let rst = Fragment::stream(limit.max(frag.header.offset), FLAG_RST, &[]);
        let _ = self.inner.write(fs.sref(q.opts), &rst);
        drop(q);
        let _ = upcall::reset(sock.handle, ECONNRESET);
        Ok(())
    }

    fn flush_and_forget(&self, sock: &SockRef<'_>) {
        let fs = lock(self.shard(sock.handle)).remove(&sock.handle.0);
        if let Some(fs) = fs {
            let mut q = lock(&fs.q);
            self.release(&fs, &mut q, Instant::now(), true);
            q.held.clear();
            q.closed = true;
        }
    }
}

/// The timer: while pieces are held, releases the due ones every tick.
/// Exits when the backend is gone.
fn timer_loop(weak: Weak<Shared>, timer: Arc<Timer>) {
    loop {
        let list = {
            let mut pending = lock(&timer.pending);
            let wait = if pending.is_empty() {
                Duration::from_millis(100)
            } else {
                TICK
            };
            pending = timer
                .cv
                .wait_timeout(pending, wait)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
            core::mem::take(&mut *pending)
        };
        let Some(shared) = weak.upgrade() else { return };
        let now = Instant::now();
        let mut again: Vec<Weak<FSock>> = Vec::new();
        for w in list {
            let Some(fs) = w.upgrade() else { continue };
            let mut q = lock(&fs.q);
            if q.closed {
                continue;
            }
            let n = shared.release(&fs, &mut q, now, false);
            shared
                .stats
                .timer_releases
                .fetch_add(n as u64, Ordering::Relaxed);
            if !q.held.is_empty() && !again.iter().any(|x| x.ptr_eq(&w)) {
                again.push(w);
            }
        }
        if !again.is_empty() {
            let mut pending = lock(&timer.pending);
            for w in again {
                if !pending.iter().any(|x| x.ptr_eq(&w)) {
                    pending.push(w);
                }
            }
        }
    }
}

impl Backend for FaultBackend {
    fn name(&self) -> &str {
        "fault"
    }

    // The injector's own queues use std locks, which cannot be released in
    // a fork child: only the wrapped backend takes part in fork.
    fn fork(&self) -> Option<&dyn ForkAware> {
        self.shared.inner.fork()
    }

    // The wrapped backend's input delegation goes through untouched: the
    // injector works on what is written, and a pumping thread's upcalls
    // are the wrapped backend's deliveries, as its own thread's would be.
    fn input(&self) -> Option<&dyn InputDelegation> {
        self.shared.inner.input()
    }

    fn supports(&self, info: &SockInfo) -> bool {
        self.shared.inner.supports(info)
    }

    fn claim(
        &self,
        handle: SockHandle,
        info: &SockInfo,
        op: ClaimOp,
        addr: &SockAddr,
    ) -> Result<Option<SockState>, Errno> {
        // The inner backend's own state: the wrapper keeps its per-socket
        // data on the side, so that sockets the inner backend creates itself
        // (accepted connections) work the same.
        self.shared.inner.claim(handle, info, op, addr)
    }

    fn bind(&self, sock: SockRef<'_>, addr: &SockAddr) -> Result<SockAddr, Errno> {
        self.shared.inner.bind(sock, addr)
    }

    fn listen(&self, sock: SockRef<'_>, backlog: u32) -> Result<(), Errno> {
        self.shared.inner.listen(sock, backlog)
    }

    fn connect(&self, sock: SockRef<'_>, addr: &SockAddr) -> Result<(), Errno> {
        let s = &self.shared;
        if sock.info.ty == SOCK_STREAM {
            if s.cfg.blackhole {
                return Ok(());
            }
            if s.cfg.refuse > 0.0 {
                let fs = s.fsock(&sock);
                let refuse = lock(&fs.q).rng.chance(s.cfg.refuse);
                if refuse {
                    bump(&s.stats.refused);
                    let _ = upcall::refused(sock.handle, ECONNREFUSED);
                    return Ok(());
                }
            }
        }
        s.inner.connect(sock, addr)
    }

    fn accepted(&self, listener: SockRef<'_>) {
        self.shared.inner.accepted(listener)
    }

    fn shutdown(&self, sock: SockRef<'_>, how: i32) -> Result<(), Errno> {
        self.shared.inner.shutdown(sock, how)
    }

    fn setsockopt(
        &self,
        sock: SockRef<'_>,
        level: i32,
        name: i32,
        value: &[u8],
    ) -> Result<(), Errno> {
        self.shared.inner.setsockopt(sock, level, name, value)
    }

    fn write(&self, sock: SockRef<'_>, frag: &Fragment<'_>) -> Result<(), Errno> {
        self.shared.write(sock, frag)
    }

    fn window(&self, sock: SockRef<'_>, limit: u64) {
        if self.shared.cfg.no_credit {
            bump(&self.shared.stats.windows_swallowed);
            return;
        }
        self.shared.inner.window(sock, limit)
    }

    fn disconnect(&self, sock: SockRef<'_>) -> Result<(), Errno> {
        self.shared.inner.disconnect(sock)
    }

    fn peer_maxseg(&self, sock: SockRef<'_>) -> u32 {
        self.shared.inner.peer_maxseg(sock)
    }

    fn host_group(&self, group: &[u8; 16], joined: bool) {
        self.shared.inner.host_group(group, joined)
    }

    fn group_joined_elsewhere(&self, group: &[u8; 16]) -> bool {
        self.shared.inner.group_joined_elsewhere(group)
    }

    fn local_addr(&self, sock: SockRef<'_>) -> Option<SockAddr> {
        self.shared.inner.local_addr(sock)
    }

    fn peer_addr(&self, sock: SockRef<'_>) -> Option<SockAddr> {
        self.shared.inner.peer_addr(sock)
    }

    fn socketpair(
        &self,
        a: SockHandle,
        b: SockHandle,
        info: &SockInfo,
    ) -> Result<(SockState, SockState), Errno> {
        self.shared.inner.socketpair(a, b, info)
    }

    fn close(&self, sock: SockRef<'_>) {
        self.shared.flush_and_forget(&sock);
        self.shared.inner.close(sock)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_the_documented_keys() {
        let c = FaultConfig::parse(
            " seed=7, reorder=0.2,dup=0.05,split=0.3,delay=0.1,drop=0.01,coalesce=1,\
             delay_ms=5,refuse=0,blackhole=0,no_credit=1,reset_after=1000",
        )
        .unwrap();
        assert_eq!(c.seed, 7);
        assert_eq!(
            (c.reorder, c.dup, c.split, c.delay, c.drop),
            (0.2, 0.05, 0.3, 0.1, 0.01)
        );
        assert_eq!(c.coalesce, 1.0);
        assert_eq!(c.max_delay, Duration::from_millis(5));
        assert!(c.no_credit && !c.blackhole);
        assert_eq!(c.reset_after, Some(1000));
        assert_eq!(FaultConfig::parse("").unwrap(), FaultConfig::default());
    }

    #[test]
    fn parse_rejects_bad_input_naming_it() {
        for (s, want) in [
            ("reordr=0.1", "unknown key `reordr`"),
            ("reorder=1.5", "probability"),
            ("reorder=-0.1", "probability"),
            ("reorder=x", "probability"),
            ("seed=-1", "integer"),
            ("seed", "key=value"),
            ("dup=0.1,dup=0.2", "twice"),
            ("blackhole=2", "0 or 1"),
        ] {
            let e = FaultConfig::parse(s).unwrap_err();
            assert!(e.contains(want), "{s}: {e}");
        }
    }

    #[test]
    fn rng_chance_extremes() {
        let mut r = Rng(3);
        assert!((0..1000).all(|_| !r.chance(0.0)));
        assert!((0..1000).all(|_| r.chance(1.0)));
        let hits = (0..10_000).filter(|_| r.chance(0.25)).count();
        assert!((2000..3000).contains(&hits), "{hits}");
    }
}

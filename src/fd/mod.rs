//! The fd table: which fd numbers are user-space sockets.
//!
//! "Is this fd ours?" is asked by every read(), write() and close() of a
//! program that links or preloads the library, so it must cost about one
//! atomic load: a fixed top-level array of chunk pointers, null for every
//! chunk that never held one of our fds, then a flag per slot. Only a slot
//! that holds a socket is locked, to take a reference to it.

pub mod lifecycle;

use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::socket::Socket;
use crate::sync::{ChunkTable, Mutex};

// Hosted: fd numbers up to 1 Mi, in chunks of 1024 allocated on first use.
// Without std the table only needs the emulated numbers.
#[cfg(feature = "std")]
const CHUNK: usize = 1024;
#[cfg(feature = "std")]
const CHUNKS: usize = 1024;
#[cfg(not(feature = "std"))]
const CHUNK: usize = 64;
#[cfg(not(feature = "std"))]
const CHUNKS: usize = crate::config::EMBEDDED_MAX_FDS.div_ceil(CHUNK);

/// Largest fd number the table can hold, plus one.
pub const MAX_FDS: usize = Table::CAPACITY;

struct Slot {
    ours: AtomicBool,
    /// The caller's FD_CLOEXEC (the kernel fd holding the number always
    /// has it, so that no socket number crosses exec as an eventfd).
    cloexec: AtomicBool,
    sock: Mutex<Option<Arc<Socket>>>,
}

impl Slot {
    fn empty(_: usize) -> Slot {
        Slot {
            ours: AtomicBool::new(false),
            cloexec: AtomicBool::new(false),
            sock: Mutex::new(None),
        }
    }
}

type Table = ChunkTable<Slot, CHUNK, CHUNKS>;

static TABLE: Table = Table::new();

#[inline]
fn slot(fd: i32) -> Option<&'static Slot> {
    TABLE.get(usize::try_from(fd).ok()?)
}

/// Whether `fd` is one of our sockets (a hint: it may change concurrently,
/// as the kernel's answer may).
#[inline]
pub fn is_ours(fd: i32) -> bool {
    match slot(fd) {
        Some(s) => s.ours.load(Ordering::Acquire),
        None => false,
    }
}

/// The socket behind `fd`, if it is ours.
#[inline]
pub fn get(fd: i32) -> Option<Arc<Socket>> {
    let s = slot(fd)?;
    if !s.ours.load(Ordering::Acquire) {
        return None;
    }
    s.sock.lock().clone()
}

/// Maps `fd` (a kernel fd number we own) to `sock`, with the caller's
/// FD_CLOEXEC. Returns false when the number is beyond the table.
pub fn insert(fd: i32, sock: Arc<Socket>, cloexec: bool) -> bool {
    let Some(s) = usize::try_from(fd)
        .ok()
        .and_then(|i| TABLE.get_or_make(i, Slot::empty))
    else {
        return false;
    };
    let mut g = s.sock.lock();
    *g = Some(sock);
    s.cloexec.store(cloexec, Ordering::Relaxed);
    s.ours.store(true, Ordering::Release);
    true
}

/// The caller's FD_CLOEXEC of our `fd` (false when it is not ours).
pub fn cloexec(fd: i32) -> bool {
    slot(fd).is_some_and(|s| s.cloexec.load(Ordering::Relaxed))
}

/// Sets the caller's FD_CLOEXEC of our `fd`.
pub fn set_cloexec(fd: i32, on: bool) {
    if let Some(s) = slot(fd) {
        s.cloexec.store(on, Ordering::Relaxed);
    }
}

/// Calls `f(fd, cloexec)` for every fd that is ours now, in increasing
/// order. Takes no lock and allocates nothing (it runs before exec, in a
/// fork child that may hold no other lock safely).
#[cfg(feature = "std")]
pub fn for_each_ours(mut f: impl FnMut(i32, bool)) {
    for (fd, s) in TABLE.iter() {
        if s.ours.load(Ordering::Acquire) {
            f(fd as i32, s.cloexec.load(Ordering::Relaxed));
        }
    }
}

/// fork() support: takes every slot's lock (they are leaves: nothing else is
/// locked while one is held), so that the child finds none held by a thread
/// that did not come along. They are released by
/// `sync::fork_hold::release_held`.
#[cfg(feature = "std")]
pub fn fork_lock() {
    for (_, s) in TABLE.iter() {
        crate::sync::fork_hold::hold(&s.sock);
    }
}

/// Unmaps `fd`; returns the socket it held.
pub fn remove(fd: i32) -> Option<Arc<Socket>> {
    let s = slot(fd)?;
    if !s.ours.load(Ordering::Acquire) {
        return None;
    }
    let mut g = s.sock.lock();
    s.ours.store(false, Ordering::Release);
    g.take()
}

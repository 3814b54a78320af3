//! Live sockets by handle, for upcalls.
//!
//! A handle is a slot index plus the slot's generation; a freed slot bumps
//! its generation, so a late upcall naming a closed socket finds a
//! different generation and is ignored. Lookups lock only the one slot.

use alloc::sync::Arc;
use alloc::vec::Vec;

use super::Socket;
use crate::backend::contract::SockHandle;
use crate::sync::{ChunkTable, Mutex};

const CHUNK: usize = 256;
const CHUNKS: usize = crate::config::MAX_SOCKETS / CHUNK;

struct Slot {
    gen: u32,
    sock: Option<Arc<Socket>>,
}

static SLOTS: ChunkTable<Mutex<Slot>, CHUNK, CHUNKS> = ChunkTable::new();

struct Alloc {
    free: Vec<u32>,
    next: u32,
}

static ALLOC: Mutex<Alloc> = Mutex::new(Alloc {
    free: Vec::new(),
    next: 0,
});

fn slot(idx: u32) -> Option<&'static Mutex<Slot>> {
    SLOTS.get(idx as usize)
}

/// Reserves a handle for a socket about to be built. `None` when the table
/// is full.
pub fn reserve() -> Option<SockHandle> {
    let idx = {
        let mut a = ALLOC.lock();
        match a.free.pop() {
            Some(i) => i,
            None => {
                if a.next as usize >= CHUNK * CHUNKS {
                    return None;
                }
                a.next += 1;
                a.next - 1
            }
        }
    };
    let s = SLOTS.get_or_make(idx as usize, |_| Mutex::new(Slot { gen: 1, sock: None }))?;
    let gen = s.lock().gen;
    Some(SockHandle(((gen as u64) << 32) | idx as u64))
}

/// Publishes a socket under the handle [`reserve`] gave.
pub fn publish(sock: Arc<Socket>) {
    let idx = sock.handle.0 as u32;
    if let Some(s) = slot(idx) {
        s.lock().sock = Some(sock);
    }
}

/// The live socket with this handle, if any.
pub fn lookup(h: SockHandle) -> Option<Arc<Socket>> {
    let idx = h.0 as u32;
    let gen = (h.0 >> 32) as u32;
    let s = slot(idx)?.lock();
    if s.gen != gen {
        return None;
    }
    s.sock.clone()
}

/// Frees a handle: later lookups of it fail, and the slot is reused with a
/// new generation.
pub fn release(h: SockHandle) {
    let idx = h.0 as u32;
    let gen = (h.0 >> 32) as u32;
    let Some(s) = slot(idx) else { return };
    let old = {
        let mut s = s.lock();
        if s.gen != gen {
            return;
        }
        s.gen = s.gen.wrapping_add(1).max(1);
        s.sock.take()
    };
    drop(old);
    ALLOC.lock().free.push(idx);
}

/// fork() support: takes the allocator's lock, then every slot's lock (slot
/// locks are leaves; the allocator's is never held while a slot's is
/// taken), so that the child finds none held by a thread that did not come
/// along. Must be followed by [`fork_unlock`].
#[cfg(feature = "std")]
pub fn fork_lock() {
    core::mem::forget(ALLOC.lock());
    SLOTS.fork_lock(|s| core::mem::forget(s.lock()));
}

/// fork() support, in the parent and in the child: releases
/// what [`fork_lock`] took.
///
/// # Safety
/// Only after [`fork_lock`] on this thread (or, in the child, on the thread
/// that forked), once.
#[cfg(feature = "std")]
pub unsafe fn fork_unlock() {
    SLOTS.fork_unlock(|s| {
        // SAFETY: the caller's contract: fork_lock took this slot's lock on
        // this thread (its chunk is marked) and forgot the guard.
        unsafe { crate::sync::fork_release(s) }
    });
    // SAFETY: fork_lock took it and forgot its guard.
    unsafe { crate::sync::fork_release(&ALLOC) };
}

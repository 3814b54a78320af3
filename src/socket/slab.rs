//! Live sockets by handle, for upcalls.
//!
//! A handle is a slot index plus the slot's generation; a freed slot bumps
//! its generation, so a late upcall naming a closed socket finds a
//! different generation and is ignored. Lookups lock only the one slot.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicPtr, Ordering};

use super::Socket;
use crate::backend::contract::SockHandle;
use crate::sync::Mutex;

const CHUNK: usize = 256;
const CHUNKS: usize = crate::config::MAX_SOCKETS / CHUNK;

struct Slot {
    gen: u32,
    sock: Option<Arc<Socket>>,
}

type Chunk = [Mutex<Slot>; CHUNK];

static CHUNK_PTRS: [AtomicPtr<Chunk>; CHUNKS] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; CHUNKS];

struct Alloc {
    free: Vec<u32>,
    next: u32,
}

static ALLOC: Mutex<Alloc> = Mutex::new(Alloc {
    free: Vec::new(),
    next: 0,
});

fn chunk(idx: u32) -> Option<&'static Chunk> {
    let p = CHUNK_PTRS
        .get(idx as usize / CHUNK)?
        .load(Ordering::Acquire);
    // SAFETY: chunks are leaked boxes published once with Release and never
    // freed, so a non-null pointer is valid for 'static.
    unsafe { p.as_ref() }
}

fn chunk_or_create(idx: u32) -> Option<&'static Chunk> {
    let cell = CHUNK_PTRS.get(idx as usize / CHUNK)?;
    if cell.load(Ordering::Acquire).is_null() {
        let fresh: Box<Chunk> = Box::new(core::array::from_fn(|_| {
            Mutex::new(Slot { gen: 1, sock: None })
        }));
        let p = Box::into_raw(fresh);
        if cell
            .compare_exchange(
                core::ptr::null_mut(),
                p,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
        {
            // SAFETY: `p` was never published; we own it.
            drop(unsafe { Box::from_raw(p) });
        }
    }
    chunk(idx)
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
    let c = chunk_or_create(idx)?;
    let gen = c[idx as usize % CHUNK].lock().gen;
    Some(SockHandle(((gen as u64) << 32) | idx as u64))
}

/// Publishes a socket under the handle [`reserve`] gave.
pub fn publish(sock: Arc<Socket>) {
    let idx = sock.handle.0 as u32;
    if let Some(c) = chunk(idx) {
        c[idx as usize % CHUNK].lock().sock = Some(sock);
    }
}

/// The live socket with this handle, if any.
pub fn lookup(h: SockHandle) -> Option<Arc<Socket>> {
    let idx = h.0 as u32;
    let gen = (h.0 >> 32) as u32;
    let slot = chunk(idx)?[idx as usize % CHUNK].lock();
    if slot.gen != gen {
        return None;
    }
    slot.sock.clone()
}

/// Frees a handle: later lookups of it fail, and the slot is reused with a
/// new generation.
pub fn release(h: SockHandle) {
    let idx = h.0 as u32;
    let gen = (h.0 >> 32) as u32;
    let Some(c) = chunk(idx) else { return };
    let old = {
        let mut slot = c[idx as usize % CHUNK].lock();
        if slot.gen != gen {
            return;
        }
        slot.gen = slot.gen.wrapping_add(1).max(1);
        slot.sock.take()
    };
    drop(old);
    ALLOC.lock().free.push(idx);
}

/// Chunks whose slot locks [`fork_lock`] holds.
#[cfg(feature = "std")]
static FORK_LOCKED: [core::sync::atomic::AtomicBool; CHUNKS] =
    [const { core::sync::atomic::AtomicBool::new(false) }; CHUNKS];

/// fork() support: takes the allocator's lock, then every slot's lock (slot
/// locks are leaves; the allocator's is never held while a slot's is
/// taken), so that the child finds none held by a thread that did not come
/// along. Must be followed by [`fork_unlock`].
#[cfg(feature = "std")]
pub fn fork_lock() {
    core::mem::forget(ALLOC.lock());
    // SAFETY: as in `chunk`: published once, never freed.
    unsafe {
        crate::sync::fork_lock_chunks(&CHUNK_PTRS, &FORK_LOCKED, |c| {
            c.iter().for_each(|s| core::mem::forget(s.lock()))
        })
    };
}

/// fork() support, in the parent and in the child: releases
/// what [`fork_lock`] took.
///
/// # Safety
/// Only after [`fork_lock`] on this thread (or, in the child, on the thread
/// that forked), once.
#[cfg(feature = "std")]
pub unsafe fn fork_unlock() {
    // SAFETY: as in `chunk`; fork_lock took each of these locks and forgot
    // its guard.
    unsafe {
        crate::sync::fork_unlock_chunks(&CHUNK_PTRS, &FORK_LOCKED, |c| {
            c.iter().for_each(|s| crate::sync::fork_release(s))
        })
    };
    // SAFETY: fork_lock took it and forgot its guard.
    unsafe { crate::sync::fork_release(&ALLOC) };
}

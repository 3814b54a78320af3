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

/// Every live socket (the send queues' flush at exit, `sndq`).
#[cfg(feature = "std")]
pub(crate) fn live() -> Vec<Arc<Socket>> {
    SLOTS
        .iter()
        .filter_map(|(_, s)| s.lock().sock.clone())
        .collect()
}

/// fork() support: takes the allocator's lock, then every slot's lock (slot
/// locks are leaves; the allocator's is never held while a slot's is
/// taken), so that the child finds none held by a thread that did not come
/// along. They are released by `sync::fork_hold::release_held`.
#[cfg(feature = "std")]
pub fn fork_lock() {
    crate::sync::fork_hold::hold(&ALLOC);
    for (_, s) in SLOTS.iter() {
        crate::sync::fork_hold::hold(s);
    }
}

//! The registry of backends and selection in priority order.

use alloc::sync::Arc;
use alloc::vec::Vec;

use super::contract::{Backend, ClaimOp, Errno, SockHandle, SockInfo, SockState};
use crate::addr::SockAddr;
use crate::sync::Mutex;

/// A registered backend.
#[derive(Clone)]
pub struct Entry {
    /// Registration id, for unregistering.
    pub id: u64,
    /// Higher is asked first.
    pub priority: i32,
    /// The backend.
    pub backend: Arc<dyn Backend>,
}

struct Registry {
    next_id: u64,
    /// Sorted by descending priority, then registration order. Replaced whole
    /// on change so that selection iterates a snapshot without a lock.
    entries: Option<Arc<Vec<Entry>>>,
    defaults_installed: bool,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    next_id: 1,
    entries: None,
    defaults_installed: false,
});

/// Priority of the built-in loopback backend; registered backends default
/// above it, so they are asked first.
pub const LOOPBACK_PRIORITY: i32 = 0;

/// Priority of the cross-process backend, above loopback.
pub const XPROC_PRIORITY: i32 = 10;

/// Registers a backend; returns its id.
pub fn register(backend: Arc<dyn Backend>, priority: i32) -> u64 {
    let mut reg = REGISTRY.lock();
    install_defaults(&mut reg);
    insert(&mut reg, backend, priority)
}

fn insert(reg: &mut Registry, backend: Arc<dyn Backend>, priority: i32) -> u64 {
    let id = reg.next_id;
    reg.next_id += 1;
    let mut v: Vec<Entry> = reg.entries.as_deref().cloned().unwrap_or_default();
    let pos = v
        .iter()
        .position(|e| e.priority < priority)
        .unwrap_or(v.len());
    v.insert(
        pos,
        Entry {
            id,
            priority,
            backend,
        },
    );
    reg.entries = Some(Arc::new(v));
    id
}

fn install_defaults(reg: &mut Registry) {
    if !reg.defaults_installed {
        reg.defaults_installed = true;
        if let Some(lo) = crate::backends::default_backend() {
            // USOCK_FAULT wraps it in the fault injector; a malformed value
            // installs nothing (reported on stderr).
            #[cfg(feature = "std")]
            let Some(lo) = crate::backends::fault::wrap_default(lo) else {
                return;
            };
            insert(reg, lo, LOOPBACK_PRIORITY);
        }
        // USOCK_NET names the directory of a cross-process network: its
        // backend is asked before loopback (the launcher sets it).
        #[cfg(feature = "std")]
        if let Some(dir) = std::env::var_os("USOCK_NET") {
            match crate::backends::xproc::XProc::new(dir.into()) {
                Ok(x) => {
                    insert(reg, Arc::new(x), XPROC_PRIORITY);
                }
                Err(e) => {
                    let msg = alloc::format!(
                        "libuserspacesock: USOCK_NET: cannot use the directory (errno {e})\n"
                    );
                    // SAFETY: writes a buffer to stderr with the raw call.
                    unsafe { libc::syscall(libc::SYS_write, 2, msg.as_ptr(), msg.len()) };
                }
            }
        }
    }
}

/// fork() support: locks the registry, then calls every backend's
/// [`Backend::fork_prepare`]. Must be followed by [`fork_parent`] or
/// [`fork_child`].
#[cfg(feature = "std")]
pub fn fork_prepare() {
    let reg = REGISTRY.lock();
    if let Some(v) = reg.entries.as_deref() {
        for e in v {
            e.backend.fork_prepare();
        }
    }
    core::mem::forget(reg);
}

/// fork() support, in the parent: the backends' [`Backend::fork_parent`],
/// then the registry's lock released.
///
/// # Safety
/// Only after [`fork_prepare`] on this thread, once.
#[cfg(feature = "std")]
pub unsafe fn fork_parent() {
    fork_after(false, |b| b.fork_parent());
}

/// fork() support, in the child: the backends' [`Backend::fork_child`],
/// then the registry's lock released.
///
/// # Safety
/// Only in the child of a fork that [`fork_prepare`] preceded, once.
#[cfg(feature = "std")]
pub unsafe fn fork_child() {
    fork_after(true, |b| b.fork_child());
}

#[cfg(feature = "std")]
fn fork_after(in_child: bool, f: impl Fn(&dyn Backend)) {
    // SAFETY: fork_prepare holds the lock with its guard forgotten, and no
    // other thread touches the registry until it is released below (this
    // thread holds it), so reading the entries is race-free.
    let reg = unsafe { &*REGISTRY.data_ptr() };
    if let Some(v) = reg.entries.as_deref() {
        for e in v {
            f(e.backend.as_ref());
        }
    }
    // SAFETY: fork_prepare took the lock and forgot its guard.
    unsafe { crate::sync::fork_release(&REGISTRY, in_child) };
}

/// Removes a backend. Sockets it already carries keep it until they close.
pub fn unregister(id: u64) -> bool {
    let mut reg = REGISTRY.lock();
    let mut v: Vec<Entry> = reg.entries.as_deref().cloned().unwrap_or_default();
    let before = v.len();
    v.retain(|e| e.id != id);
    let found = v.len() != before;
    reg.entries = Some(Arc::new(v));
    found
}

/// A snapshot of the registered backends in the order they are asked.
pub fn snapshot() -> Arc<Vec<Entry>> {
    let mut reg = REGISTRY.lock();
    install_defaults(&mut reg);
    reg.entries.clone().unwrap_or_default()
}

/// Whether any backend can carry sockets like `info`.
pub fn any_supports(info: &SockInfo) -> bool {
    snapshot().iter().any(|e| e.backend.supports(info))
}

/// Asks each backend that supports the socket to claim it, in priority
/// order; the first claim wins. `Err(EADDRNOTAVAIL)` when none claims it
/// (the caller maps that per call), or the errno of a refusal.
pub fn select(
    handle: SockHandle,
    info: &SockInfo,
    op: ClaimOp,
    addr: &SockAddr,
) -> Result<(Arc<dyn Backend>, SockState), Errno> {
    for e in snapshot().iter() {
        if !e.backend.supports(info) {
            continue;
        }
        if let Some(state) = e.backend.claim(handle, info, op, addr)? {
            return Ok((e.backend.clone(), state));
        }
    }
    Err(crate::consts::EADDRNOTAVAIL)
}

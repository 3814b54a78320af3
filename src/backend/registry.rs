//! The registry of backends and selection in priority order.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

#[cfg(feature = "std")]
use super::contract::ForkAware;
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
    /// Sockets this backend has claimed (`USOCK_STATS` reports it).
    pub claims: Arc<AtomicU64>,
}

struct Registry {
    next_id: u64,
    /// Sorted by descending priority, then registration order. Replaced whole
    /// on change so that selection iterates a snapshot without a lock.
    entries: Option<Arc<Vec<Entry>>>,
    defaults_installed: bool,
    /// A default backend the environment asked for could not be set up:
    /// every socket() fails with this errno rather than running on a
    /// different network than the one asked for.
    unusable: Option<Errno>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    next_id: 1,
    entries: None,
    defaults_installed: false,
    unusable: None,
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
            claims: Arc::new(AtomicU64::new(0)),
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
            match crate::backends::xproc::XProc::new(dir.clone().into()) {
                Ok(x) => {
                    insert(reg, Arc::new(x), XPROC_PRIORITY);
                }
                Err(e) => {
                    // Falling back to the in-process loopback would put the
                    // program on a private network where its peers never
                    // answer; refusing its sockets says what is wrong.
                    reg.unusable = Some(e);
                    let msg = alloc::format!(
                        "libuserspacesock: USOCK_NET={}: cannot use the directory: {}; \
                         socket() fails with that errno\n",
                        dir.to_string_lossy(),
                        std::io::Error::from_raw_os_error(e)
                    );
                    crate::platform::diag(msg.as_bytes());
                }
            }
        }
        #[cfg(feature = "std")]
        stats::install();
    }
}

/// Whether sockets can be made: `Err` with the errno of a default backend
/// the environment asked for and that could not be set up (`USOCK_NET`).
pub fn usable() -> Result<(), Errno> {
    let mut reg = REGISTRY.lock();
    install_defaults(&mut reg);
    reg.unusable.map_or(Ok(()), Err)
}

/// `USOCK_STATS=FILE`: at exit, one line per backend appended to FILE,
/// `<pid> <backend> claims=<sockets claimed>`, so that a test run through a
/// backend can check that this backend, and not another, carried its
/// sockets.
#[cfg(feature = "std")]
mod stats {
    use super::REGISTRY;
    use core::sync::atomic::Ordering;

    pub(super) fn install() {
        if std::env::var_os("USOCK_STATS").is_some() {
            // SAFETY: registers a function with no preconditions; atexit
            // only fails when out of slots, and then nothing is reported.
            unsafe { libc::atexit(report) };
        }
    }

    extern "C" fn report() {
        // A panic must not unwind out of an atexit handler.
        crate::platform::guard((), || {
            use std::io::Write as _;
            let Some(path) = std::env::var_os("USOCK_STATS") else {
                return;
            };
            let Some(reg) = REGISTRY.try_lock() else {
                return;
            };
            let Some(v) = reg.entries.as_deref() else {
                return;
            };
            let mut out = std::string::String::new();
            for e in v {
                out.push_str(&std::format!(
                    "{} {} claims={}\n",
                    std::process::id(),
                    e.backend.name(),
                    e.claims.load(Ordering::Relaxed)
                ));
            }
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(&path)
            {
                let _ = f.write_all(out.as_bytes());
            }
        })
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
            if let Some(f) = e.backend.fork() {
                f.fork_prepare();
            }
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
    fork_after(|f| f.fork_parent());
}

/// fork() support, in the child: the backends' [`Backend::fork_child`],
/// then the registry's lock released.
///
/// # Safety
/// Only in the child of a fork that [`fork_prepare`] preceded, once.
#[cfg(feature = "std")]
pub unsafe fn fork_child() {
    fork_after(|f| f.fork_child());
}

#[cfg(feature = "std")]
fn fork_after(f: impl Fn(&dyn ForkAware)) {
    // SAFETY: fork_prepare holds the lock with its guard forgotten, and no
    // other thread touches the registry until it is released below (this
    // thread holds it), so reading the entries is race-free.
    let reg = unsafe { &*REGISTRY.data_ptr() };
    if let Some(v) = reg.entries.as_deref() {
        for e in v {
            if let Some(fa) = e.backend.fork() {
                f(fa);
            }
        }
    }
    // SAFETY: fork_prepare took the lock and forgot its guard.
    unsafe { crate::sync::fork_release(&REGISTRY) };
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
            e.claims.fetch_add(1, Ordering::Relaxed);
            return Ok((e.backend.clone(), state));
        }
    }
    Err(crate::consts::EADDRNOTAVAIL)
}

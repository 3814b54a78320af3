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
    /// A default backend the environment asked for could not be set up:
    /// every socket() of the families it was to carry (`unusable_domains`,
    /// a bit per address family) fails with this errno rather than running
    /// on a different network than the one asked for.
    unusable: Option<Errno>,
    unusable_domains: u64,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    next_id: 1,
    entries: None,
    unusable: None,
    unusable_domains: 0,
});

/// Registers a backend; returns its id.
pub fn register(backend: Arc<dyn Backend>, priority: i32) -> u64 {
    let mut reg = REGISTRY.lock();
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

/// Whether sockets can be made: `Err` with the errno of a default backend
/// the environment asked for and that could not be set up (`USOCK_NET`).
pub fn usable() -> Result<(), Errno> {
    REGISTRY.lock().unusable.map_or(Ok(()), Err)
}

/// Whether sockets of address family `domain` can be made: `Err` with the
/// errno of a default backend that was to carry that family and could not
/// be set up. Other families do not depend on it.
pub fn usable_for(domain: i32) -> Result<(), Errno> {
    let reg = REGISTRY.lock();
    match reg.unusable {
        Some(e) if domain_bit(domain) & reg.unusable_domains != 0 => Err(e),
        _ => Ok(()),
    }
}

/// The bit of `domain` in `unusable_domains` (families past 63 share the
/// last one).
fn domain_bit(domain: i32) -> u64 {
    1u64 << domain.clamp(0, 63)
}

/// A default backend the environment asked for could not be set up: every
/// socket() fails with `e` from now on (`backends::install_defaults` says
/// why on stderr).
pub fn set_unusable(e: Errno) {
    let mut reg = REGISTRY.lock();
    reg.unusable = Some(e);
    reg.unusable_domains = u64::MAX;
}

/// [`set_unusable`] for the address families `domains` only (those the
/// backend was to carry): a socket of another family, which that backend
/// would never have carried, is made as usual.
pub fn set_unusable_for(e: Errno, domains: &[i32]) {
    let mut reg = REGISTRY.lock();
    reg.unusable = Some(e);
    reg.unusable_domains |= domains.iter().fold(0, |m, &d| m | domain_bit(d));
}

/// `USOCK_STATS=FILE`: at exit, one line per backend appended to FILE,
/// `<pid> <backend> claims=<sockets claimed>`, so that a test run through a
/// backend can check that this backend, and not another, carried its
/// sockets.
#[cfg(feature = "std")]
pub(crate) mod stats {
    use super::REGISTRY;
    use core::sync::atomic::Ordering;

    pub(crate) fn install() {
        if std::env::var_os("USOCK_STATS").is_some() {
            // Out of atexit slots: nothing is reported.
            let _ = crate::platform::at_exit(report);
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

#[cfg(feature = "std")]
std::thread_local! {
    /// The registry's guard from [`fork_prepare`] to [`fork_parent`] or
    /// [`fork_child`] (the same thread runs both, in the child the thread
    /// that forked): the lock is held across the fork by a real guard.
    static FORK_GUARD: core::cell::RefCell<Option<crate::sync::MutexGuard<'static, Registry>>> =
        const { core::cell::RefCell::new(None) };
}

/// fork() support: locks the registry, then calls every backend's
/// [`Backend::fork_prepare`]. Must be followed by [`fork_parent`] or
/// [`fork_child`] on this thread.
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
    FORK_GUARD.with(|g| *g.borrow_mut() = Some(reg));
}

/// fork() support, in the parent: the backends' [`Backend::fork_parent`],
/// then the registry's lock released.
#[cfg(feature = "std")]
pub fn fork_parent() {
    fork_after(|f| f.fork_parent());
}

/// fork() support, in the child: the backends' [`Backend::fork_child`],
/// then the registry's lock released.
#[cfg(feature = "std")]
pub fn fork_child() {
    fork_after(|f| f.fork_child());
}

#[cfg(feature = "std")]
fn fork_after(f: impl Fn(&dyn ForkAware)) {
    let Some(reg) = FORK_GUARD.with(|g| g.borrow_mut().take()) else {
        return; // no fork_prepare on this thread: nothing is held
    };
    if let Some(v) = reg.entries.as_deref() {
        for e in v {
            if let Some(fa) = e.backend.fork() {
                f(fa);
            }
        }
    }
    drop(reg);
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
    REGISTRY.lock().entries.clone().unwrap_or_default()
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

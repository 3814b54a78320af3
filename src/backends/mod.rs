//! Built-in backends.
#![deny(unsafe_code)]

use alloc::sync::Arc;
use core::sync::atomic::{AtomicU8, Ordering};

use crate::backend::contract::Backend;
use crate::backend::registry;

pub mod engine;
#[cfg(feature = "std")]
pub mod fault;
pub mod loopback;
#[cfg(feature = "std")]
pub mod shm;
#[cfg(feature = "std")]
pub mod xproc;

/// Priority of the built-in loopback backend; registered backends default
/// above it, so they are asked first.
pub const LOOPBACK_PRIORITY: i32 = 0;

/// Priority of the cross-process backend, above loopback.
pub const XPROC_PRIORITY: i32 = 10;

/// The shm backend, unless the environment turned it off (`USOCK_SHM=0`).
#[cfg(feature = "std")]
static SHM: crate::sync::SetOnce<Arc<shm::backend::Shm>> = crate::sync::SetOnce::new();

/// Whether TCP on a network directory goes through shared memory: the
/// default; `USOCK_SHM=0` keeps it on the cross-process backend's AF_UNIX
/// streams (whose sockets a fork child cannot use).
#[cfg(feature = "std")]
pub fn shm_enabled() -> bool {
    !std::env::var_os("USOCK_SHM").is_some_and(|v| v == "0")
}

/// The shm backend registered for this process, if any (installing the
/// defaults first).
#[cfg(feature = "std")]
pub fn shm_backend() -> Option<Arc<shm::backend::Shm>> {
    install_defaults();
    SHM.get().cloned()
}

/// Registers the built-in backends the environment asks for, once per
/// process, before its first socket (the api and net layers call it; the
/// registry itself knows no backend):
/// - loopback, wrapped in the fault injector when `USOCK_FAULT` is set (a
///   malformed value installs no default backend, and says why);
/// - the cross-process backend over `USOCK_NET`, asked before loopback (an
///   unusable directory makes every socket() fail with its errno rather
///   than run on a private network, and says why);
/// - the TCP/IP engine over `USOCK_NETIF`, asked before both (see
///   `engine`; a malformed value stops the process at its first socket
///   call, an unusable device fails AF_INET/AF_INET6 socket() calls);
/// - the `USOCK_STATS` report at exit.
pub fn install_defaults() {
    const NONE: u8 = 0;
    const BUSY: u8 = 1;
    const DONE: u8 = 2;
    static STATE: AtomicU8 = AtomicU8::new(NONE);
    match STATE.compare_exchange(NONE, BUSY, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => {}
        Err(DONE) => return,
        Err(_) => {
            // Another thread installs them: its sockets and ours must find
            // them in place.
            while STATE.load(Ordering::Acquire) != DONE {
                core::hint::spin_loop();
            }
            return;
        }
    }
    install();
    STATE.store(DONE, Ordering::Release);
}

fn install() {
    let lo: Arc<dyn Backend> = Arc::new(loopback::Loopback::new());
    #[cfg(feature = "std")]
    let lo = fault::wrap_default(lo);
    #[cfg(not(feature = "std"))]
    let lo = Some(lo);
    if let Some(lo) = lo {
        registry::register(lo, LOOPBACK_PRIORITY);
    }
    #[cfg(feature = "std")]
    {
        if let Some(dir) = std::env::var_os("USOCK_NET") {
            match xproc::XProc::new(dir.clone().into()) {
                Ok(x) => {
                    registry::register(Arc::new(x), XPROC_PRIORITY);
                    // TCP through shared memory, the rest through xproc
                    // (SHARED.md).
                    if shm_enabled() {
                        let s = Arc::new(shm::backend::Shm::new(dir.clone().into()));
                        let _ = SHM.set(s.clone());
                        registry::register(s, shm::backend::SHM_PRIORITY);
                    }
                }
                Err(e) => {
                    // Falling back to the in-process loopback would put the
                    // program on a private network where its peers never
                    // answer; refusing its sockets says what is wrong.
                    // Its families only: AF_UNIX sockets, in-process or
                    // the kernel's by the routes, never needed it (nor a
                    // program that changed its uid and cannot open it).
                    registry::set_unusable_for(
                        e,
                        &[crate::consts::AF_INET, crate::consts::AF_INET6],
                    );
                    // A process that changed its user cannot enter the
                    // launching user's 0700 directory: say who owns it.
                    let hint = match std::fs::metadata(&dir) {
                        Ok(m) if e == crate::consts::EACCES => {
                            use std::os::unix::fs::MetadataExt as _;
                            alloc::format!(
                                " (it belongs to uid {}; a program that switches to another \
                                 user needs the network prepared for that user: usockrun --user NAME)",
                                m.uid()
                            )
                        }
                        _ => alloc::string::String::new(),
                    };
                    let msg = alloc::format!(
                        "libuserspacesock: USOCK_NET={}: cannot use the directory: {}{hint}; \
                         socket() fails with that errno\n",
                        dir.to_string_lossy(),
                        std::io::Error::from_raw_os_error(e)
                    );
                    crate::platform::diag(msg.as_bytes());
                }
            }
        }
        engine::install_from_env();
        registry::stats::install();
    }
}

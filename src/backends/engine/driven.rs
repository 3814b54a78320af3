//! The engine without a thread of its own: over a device table the host
//! supplies (`usock_netif_attach`), whoever has time runs it. That is the
//! host's network task or tick (`usock_netif_poll`), and, on the no_std
//! build, every wait of the library before it sleeps (the platform's idle
//! hook), so that a blocking call on a single-threaded RTOS takes its own
//! frames in and keeps its own timers.
//!
//! One runner at a time: a second one finds the engine busy and leaves
//! it to the first (two runners could hand a stream's fragments up out of
//! order).

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, Ordering};

use super::config::NetifConfig;
use super::device::Frames;
use super::{Engine, ENGINE_PRIORITY};
use crate::backend::registry;
use crate::consts::*;
use crate::sync::SetOnce;

/// The host-driven engine, once attached (one engine per process).
static ENGINE: SetOnce<Arc<Engine>> = SetOnce::new();

/// Someone runs the engine now.
static RUNNING: AtomicBool = AtomicBool::new(false);

/// Runs after a write or a reader's window wants the engine soon: the
/// host's kick (it wakes the task that calls `usock_netif_poll`).
type Kick = Box<dyn Fn() + Send + Sync>;

/// The attached engine, if any.
pub fn engine() -> Option<&'static Arc<Engine>> {
    ENGINE.get()
}

/// Attaches the engine `cfg` describes over the host's `frames` and
/// registers it; `EBUSY` when the process has an engine already.
pub fn attach(
    cfg: &NetifConfig,
    frames: Box<dyn Frames>,
    seed: u64,
    kick: Kick,
) -> Result<(), Errno> {
    #[cfg(feature = "std")]
    if super::thread::configured() {
        return Err(EBUSY);
    }
    let engine = Arc::new(Engine::new(cfg, frames, seed, kick));
    if ENGINE.set(engine.clone()).is_err() {
        return Err(EBUSY);
    }
    registry::register(engine, ENGINE_PRIORITY);
    #[cfg(not(feature = "std"))]
    crate::platform::set_idle_hook(idle);
    Ok(())
}

/// At most this many runs back to back in one call: a peer that keeps
/// the engine busy must not starve the caller.
const MAX_RUNS: u32 = 64;

/// Runs the engine until it has nothing left to do now. `None`: no engine
/// is attached. Otherwise how long until it must run again, in
/// nanoseconds (`u64::MAX`: not before a frame arrives or a write kicks
/// it; 0: at once, it was busy or had more to do).
pub fn run() -> Option<u64> {
    let engine = ENGINE.get()?;
    if RUNNING.swap(true, Ordering::Acquire) {
        // The other runner sees what came in meanwhile when it looks again.
        return Some(0);
    }
    let mut wait = Some(0);
    for _ in 0..MAX_RUNS {
        wait = engine.pump();
        if wait != Some(0) {
            break;
        }
    }
    #[cfg(feature = "dhcp")]
    if let Some(lease) = engine.take_lease_news() {
        tell_lease(lease.as_ref());
    }
    RUNNING.store(false, Ordering::Release);
    Some(wait.unwrap_or(u64::MAX))
}

/// A new or ended DHCP lease: on a hosted build to the file
/// `USOCK_NETIF_LEASE_FILE` names, as the engine's thread does; on the
/// no_std build to the platform's log, where the host reads its address.
#[cfg(feature = "dhcp")]
fn tell_lease(lease: Option<&super::dhcp::Lease>) {
    #[cfg(feature = "std")]
    super::thread::tell_lease(lease);
    #[cfg(not(feature = "std"))]
    {
        let mut m = alloc::string::String::from("libuserspacesock: DHCP lease: ");
        m.push_str(&super::dhcp::describe(lease).replace('\n', " "));
        crate::platform::log(m.trim_end());
    }
}

/// The platform's idle hook: [`run`] before a wait, whose sleep then ends
/// by the engine's next timer.
#[cfg(not(feature = "std"))]
fn idle() -> u64 {
    run().unwrap_or(u64::MAX)
}

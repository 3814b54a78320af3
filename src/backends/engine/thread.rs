//! The hosted engine: its configuration from the environment or from
//! `usock_netif_configure`, its device, and the thread that runs it,
//! sleeping in poll(2) on the device's fd and an eventfd (a write or a
//! reader's window kicks it) for as long as smoltcp's timers allow: no
//! spinning, so a loaded machine's cores go to the programs.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use core::time::Duration;

use super::config::{self, NetifConfig};
use super::device::Frames;
use super::impair::Impair;
use super::tap::FdFrames;
use super::{Engine, ENGINE_PRIORITY};
use crate::backend::registry;
use crate::consts::*;
use crate::sync::SetOnce;

/// The process's engine, once configured (one per process).
static ENGINE: SetOnce<Arc<Engine>> = SetOnce::new();

/// Whether the process has an engine: this thread's, or one the host
/// drives (`usock_netif_attach`).
pub(crate) fn configured() -> bool {
    ENGINE.get().is_some() || super::driven::engine().is_some()
}

/// Sets up and registers the engine `cfg` describes: opens the device,
/// starts the poll thread. The error is a message and its errno
/// (`EBUSY`: the process has an engine already).
pub fn configure(cfg: &NetifConfig) -> Result<Arc<Engine>, (String, Errno)> {
    if configured() {
        return Err(("an engine is configured already".into(), libc::EBUSY));
    }
    let fd_frames = FdFrames::open(&cfg.kind)?;
    let dev_fd = fd_frames.fd();
    let frames: Box<dyn Frames> = match cfg.impair {
        Some(spec) => Box::new(Impair::new(
            Box::new(fd_frames),
            spec,
            Box::new(crate::platform::mono_ns),
        )),
        None => Box::new(fd_frames),
    };
    if let config::NetifKind::Tap(name) = &cfg.kind {
        await_carrier(name);
    }
    let kick = match crate::platform::eventfd_new() {
        Ok(fd) => crate::platform::scm::move_high(fd),
        Err(e) => {
            let _ = crate::platform::kfd_close(dev_fd);
            return Err(("cannot make its eventfd".into(), e));
        }
    };
    let seed = crate::platform::mono_ns() ^ (u64::from(std::process::id()) << 32);
    let engine = Arc::new(Engine::new(
        cfg,
        frames,
        seed,
        Box::new(move || crate::platform::eventfd_signal(kick)),
    ));
    if ENGINE.set(engine.clone()).is_err() {
        let _ = crate::platform::kfd_close(dev_fd);
        let _ = crate::platform::kfd_close(kick);
        return Err(("an engine is configured already".into(), libc::EBUSY));
    }
    let runner = engine.clone();
    if let Err(e) = crate::platform::spawn_quiet("usock-engine", move || run(&runner, dev_fd, kick))
    {
        return Err((
            format!("cannot start its thread: {e}"),
            e.raw_os_error().unwrap_or(EAGAIN),
        ));
    }
    registry::register(engine.clone(), ENGINE_PRIORITY);
    Ok(engine)
}

/// Waits (a little) for the kernel to see the TAP device's carrier, which
/// our attach turned on: until its link watch runs (up to a second later)
/// the kernel drops what it sends there, and the engine's first ARP
/// request would go unanswered for smoltcp's one-second retry. Only when
/// the kernel's side is up: a device nobody brought up stays down.
fn await_carrier(name: &str) {
    let base = format!("/sys/class/net/{name}");
    let read = |f: &str| std::fs::read_to_string(format!("{base}/{f}")).unwrap_or_default();
    let admin_up = u32::from_str_radix(read("flags").trim().trim_start_matches("0x"), 16)
        .is_ok_and(|f| f & 1 != 0);
    if !admin_up {
        return;
    }
    let end = crate::platform::mono_ns() + 1_500_000_000;
    while read("operstate").trim() != "up" && crate::platform::mono_ns() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The poll loop: run the engine, then sleep until a frame, a kick or
/// smoltcp's next timer.
fn run(engine: &Engine, dev_fd: i32, kick: i32) {
    loop {
        let wait = engine.pump();
        #[cfg(feature = "dhcp")]
        if let Some(lease) = engine.take_lease_news() {
            tell_lease(lease.as_ref());
        }
        if wait == Some(0) {
            continue;
        }
        // The eventfd is emptied only when a kick ended the sleep (before
        // the run it asks for): not a read per run of the engine.
        let woke = crate::platform::poll_pair(dev_fd, kick, wait.map(Duration::from_nanos));
        if woke.b {
            crate::platform::eventfd_drain(kick);
        }
    }
}

/// Writes a new or ended DHCP lease (address, router, DNS servers) to the
/// file `USOCK_NETIF_LEASE_FILE` names, if set: whole, by a rename, so a
/// reader never sees half of one. The engine does not touch
/// /etc/resolv.conf; this is for whoever sets up the program's resolver.
#[cfg(feature = "dhcp")]
pub(super) fn tell_lease(lease: Option<&super::dhcp::Lease>) {
    let Some(path) = std::env::var_os("USOCK_NETIF_LEASE_FILE") else {
        return;
    };
    let mut tmp = path.clone();
    tmp.push(".tmp");
    let text = super::dhcp::describe(lease);
    if std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .is_err()
    {
        let msg = format!(
            "libuserspacesock: USOCK_NETIF_LEASE_FILE={}: cannot write the DHCP lease there\n",
            path.to_string_lossy()
        );
        crate::platform::diag(msg.as_bytes());
    }
}

/// `USOCK_NETIF` and its companions, read at the first socket call
/// (`backends::install_defaults`). A value that does not parse stops the
/// process there, with the reason on stderr, as a bad `USOCK_ROUTE` does:
/// sockets sent to the wrong network are worse than no program. A device
/// that cannot be used says why, and AF_INET/AF_INET6 socket() calls fail
/// with its errno (as xproc's unusable directory does).
pub fn install_from_env() {
    let var = |k: &str| std::env::var_os(k).map(|v| v.to_string_lossy().into_owned());
    let Some(netif) = var("USOCK_NETIF") else {
        return;
    };
    if configured() {
        // usock_netif_configure or usock_netif_attach came first.
        return;
    }
    let addrs = var("USOCK_NETIF_ADDR");
    let gws = var("USOCK_NETIF_GW");
    let mac = var("USOCK_NETIF_MAC");
    let impair = var("USOCK_NETIF_IMPAIR");
    let cfg = match config::parse(&netif, addrs.as_deref(), gws.as_deref(), mac.as_deref())
        .and_then(|c| {
            Ok(NetifConfig {
                impair: config::parse_impair_var(impair.as_deref())?,
                ..c
            })
        }) {
        Ok(c) => c,
        Err(e) => {
            let msg = format!("libuserspacesock: {e}\n");
            crate::platform::diag(msg.as_bytes());
            crate::platform::exit_now(2);
        }
    };
    if let Err((why, e)) = configure(&cfg) {
        registry::set_unusable_for(e, &[AF_INET, AF_INET6]);
        let msg = format!(
            "libuserspacesock: USOCK_NETIF={netif}: {why}; AF_INET and AF_INET6 socket() \
             fail with that errno\n"
        );
        crate::platform::diag(msg.as_bytes());
    }
}

//! The engine over a device the host supplies: a C table of its Ethernet
//! driver (`usock_netif_ops`: send a frame, receive a frame, MTU, MAC,
//! link state), so that an RTOS gives the library its driver and gets
//! POSIX sockets over real TCP/IP. The same table works on a hosted build
//! (a program with its own driver, or a test's TAP device).
//!
//! No thread runs it: the host calls [`usock_netif_poll`] from its
//! network task or tick, and on the no_std build every wait of the
//! library runs it too (`backends::engine::driven`).

#![allow(non_camel_case_types)]

use alloc::boxed::Box;
use core::ffi::{c_char, c_int, c_void, CStr};

use super::ffi::{guard, set_errno};
use crate::backends::engine::config::{self, NetifConfig, NetifKind};
use crate::backends::engine::device::Frames;
use crate::backends::engine::driven;
use crate::consts::*;

/// Version of `struct usock_netif_ops` this library understands.
pub const USOCK_NETIF_ABI_VERSION: u32 = 1;

/// A host's Ethernet device. Every entry is called with `ctx`, from
/// whichever thread runs the engine (one at a time), and must not block.
/// Entries marked optional may be NULL.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct usock_netif_ops {
    /// Must be `USOCK_NETIF_ABI_VERSION`.
    pub abi_version: u32,
    /// Passed back to every entry.
    pub ctx: *mut c_void,
    /// Sends one Ethernet frame (`len` bytes, header included, no FCS).
    /// Returns 0, or -1 when the device cannot take it now: it is dropped
    /// (TCP resends it).
    pub send: Option<unsafe extern "C" fn(ctx: *mut c_void, frame: *const u8, len: usize) -> c_int>,
    /// Copies the next received frame into `buf` (room for `cap` bytes:
    /// the MTU plus 14) and returns its length, or 0 when no frame waits.
    pub recv: Option<unsafe extern "C" fn(ctx: *mut c_void, buf: *mut u8, cap: usize) -> usize>,
    /// The IP MTU (1500 on Ethernet), read once at attach.
    pub mtu: Option<unsafe extern "C" fn(ctx: *mut c_void) -> u32>,
    /// Writes the device's MAC address (6 bytes) to `mac`, read once at
    /// attach.
    pub mac: Option<unsafe extern "C" fn(ctx: *mut c_void, mac: *mut u8)>,
    /// Optional: non-zero while the link is up (NULL: always up). While
    /// it is down the engine neither sends nor receives.
    pub link_up: Option<unsafe extern "C" fn(ctx: *mut c_void) -> c_int>,
    /// Optional: the engine wants to run soon (a write queued data, a
    /// reader made room): a host whose network task sleeps wakes it to
    /// call `usock_netif_poll`.
    pub kick: Option<unsafe extern "C" fn(ctx: *mut c_void)>,
}

/// The interface's addresses, as `usock_netif_configure` takes them.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct usock_netif_config {
    /// One or more `ADDR/PREFIX`, comma-separated
    /// (`"10.77.0.2/24,fd77::2/64"`), or `dhcp` (with IPv6 ones beside
    /// it, `"dhcp,fd77::2/64"`) on a build with the DHCP client (feature
    /// dhcp: the hosted library; not the no_std archive unless built with
    /// it): the IPv4 address and default route come from a lease, told
    /// as `USOCK_NETIF_LEASE_FILE` (hosted) or the platform's log (no_std).
    pub addrs: *const c_char,
    /// NULL, or default routes, at most one per family
    /// (`"10.77.0.1,fd77::1"`).
    pub gws: *const c_char,
    /// A random number from the host: TCP's initial sequence numbers and
    /// the ephemeral ports vary by it (0: the clock stands in).
    pub seed: u64,
}

/// The host's table as the engine's [`Frames`]. The required entries
/// were checked at attach.
struct OpsFrames {
    ops: usock_netif_ops,
    mtu: usize,
    mac: [u8; 6],
}

// SAFETY: the host's contract (usock_netif_attach): the table's entries
// may be called from any thread that runs the engine, one at a time
// (the engine's lock orders them).
unsafe impl Send for OpsFrames {}

impl Frames for OpsFrames {
    fn recv(&mut self, buf: &mut [u8]) -> Option<usize> {
        let f = self.ops.recv?;
        // SAFETY: a host function given a buffer of `buf.len()` bytes.
        let n = unsafe { f(self.ops.ctx, buf.as_mut_ptr(), buf.len()) };
        (n > 0).then_some(n.min(buf.len()))
    }

    fn send(&mut self, frame: &[u8]) {
        if let Some(f) = self.ops.send {
            // SAFETY: a host function given `frame.len()` readable bytes.
            let _ = unsafe { f(self.ops.ctx, frame.as_ptr(), frame.len()) };
        }
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn mac(&self) -> Option<[u8; 6]> {
        Some(self.mac)
    }

    fn link_up(&self) -> bool {
        match self.ops.link_up {
            Some(f) => {
                // SAFETY: a host function.
                let up = unsafe { f(self.ops.ctx) };
                up != 0
            }
            None => true,
        }
    }
}

/// Diagnostics where this build writes them (no `format!` here: see
/// `config`'s).
fn say(msg: &str) {
    #[cfg(feature = "std")]
    crate::platform::diag(msg.as_bytes());
    #[cfg(not(feature = "std"))]
    crate::platform::log(msg.trim_end());
}

/// Attaches this process's user-space AF_INET/AF_INET6 sockets to a real
/// network through the TCP/IP engine (smoltcp) over the host's Ethernet
/// device `ops` (copied), with the addresses of `cfg`.
///
/// Sockets are claimed as with `usock_netif_configure`: a TCP or UDP
/// socket whose first bind, connect or sendto names an address other
/// than a loopback one. No thread is started: the engine runs when the
/// host calls `usock_netif_poll` (from its network task, woken by its
/// driver's receive interrupt and by `kick`, or from its tick), and on
/// the no_std build whenever the library is about to wait, where the
/// sleep also ends by the engine's next timer; the platform's `wait` must
/// then return when a frame arrives too (spurious returns are allowed),
/// so that a blocking call on a single-threaded host makes progress.
///
/// Returns 0, or -1 with errno: `EINVAL` for a bad table (wrong
/// version, a required entry NULL, an MTU below 576 or above 9000, a
/// multicast MAC) or addresses that do not parse (the reason is logged),
/// `EBUSY` when the process has an engine already, `ENOSYS` on the no_std
/// build before `usock_platform_init`.
///
/// # Safety
/// `ops` and `cfg` are NULL or valid; `cfg`'s strings are NULL (only
/// `gws` may be) or NUL-terminated; the table's functions behave as
/// documented for as long as the process runs.
#[no_mangle]
pub unsafe extern "C" fn usock_netif_attach(
    ops: *const usock_netif_ops,
    cfg: *const usock_netif_config,
) -> c_int {
    guard(-1, || {
        // SAFETY: same contract.
        let r = unsafe { attach(ops, cfg) };
        match r {
            Ok(()) => 0,
            Err(e) => {
                set_errno(e);
                -1
            }
        }
    })
}

/// # Safety
/// As [`usock_netif_attach`].
unsafe fn attach(ops: *const usock_netif_ops, cfg: *const usock_netif_config) -> Result<(), Errno> {
    // SAFETY: NULL or valid per the contract.
    let (Some(o), Some(c)) = (unsafe { ops.as_ref() }, unsafe { cfg.as_ref() }) else {
        return Err(EINVAL);
    };
    let (Some(mtu_f), Some(mac_f)) = (o.mtu, o.mac) else {
        return Err(EINVAL);
    };
    if o.abi_version != USOCK_NETIF_ABI_VERSION || o.send.is_none() || o.recv.is_none() {
        return Err(EINVAL);
    }
    // Before anything is allocated: on the no_std build the allocator is
    // the platform table's.
    super::ready()?;
    // SAFETY: each non-null pointer is a NUL-terminated string per the
    // contract.
    let text = |p: *const c_char| -> Option<Result<&str, Errno>> {
        (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_str().map_err(|_| EINVAL))
    };
    let addrs = text(c.addrs).ok_or(EINVAL)??;
    let gws = text(c.gws).transpose()?;
    let parsed = config::parse_addr_words(addrs).and_then(|(a, dhcp)| {
        let g = gws.map_or(Ok(alloc::vec::Vec::new()), |g| {
            config::parse_gws(g, &a, dhcp)
        })?;
        if a.is_empty() && !dhcp {
            return Err("usock_netif_attach: no address".into());
        }
        Ok((a, g, dhcp))
    });
    let (addrs, gws, dhcp) = parsed.map_err(|e| {
        let mut m = alloc::string::String::from("libuserspacesock: usock_netif_attach: ");
        m.push_str(&e);
        m.push('\n');
        say(&m);
        EINVAL
    })?;
    // SAFETY: host functions; `mac` has room for the 6 bytes written.
    let (mtu, mac) = unsafe {
        let mut mac = [0u8; 6];
        mac_f(o.ctx, mac.as_mut_ptr());
        (mtu_f(o.ctx) as usize, mac)
    };
    if !(576..=9000).contains(&mtu) || mac[0] & 1 != 0 || mac == [0; 6] {
        say("libuserspacesock: usock_netif_attach: the device's MTU or MAC is not usable\n");
        return Err(EINVAL);
    }
    let cfg = NetifConfig {
        kind: NetifKind::Host,
        addrs,
        dhcp,
        gws,
        mac: Some(mac),
        impair: None,
    };
    let seed = if c.seed != 0 {
        c.seed
    } else {
        crate::platform::mono_ns()
    };
    let kick = o.kick.map(|f| (f, o.ctx as usize));
    let frames = OpsFrames { ops: *o, mtu, mac };
    driven::attach(
        &cfg,
        Box::new(frames),
        seed,
        Box::new(move || {
            if let Some((f, ctx)) = kick {
                // SAFETY: a host function with its own ctx.
                unsafe { f(ctx as *mut c_void) }
            }
        }),
    )
}

/// Runs the engine attached by `usock_netif_attach`: takes in the frames
/// the device holds, sends what is due, keeps the timers, and makes the
/// sockets' upcalls. Call it from the network task when the driver has a
/// frame, after `kick`, and when the time it returned has passed.
///
/// Returns how long, in milliseconds, until it must run again if no frame
/// arrives and nothing kicks it (0: at once; `INT_MAX`: no timer is
/// armed), or -1 with errno `ENODEV` when no device is attached.
#[no_mangle]
pub extern "C" fn usock_netif_poll() -> c_int {
    guard(-1, || match driven::run() {
        None => {
            set_errno(ENODEV);
            -1
        }
        Some(ns) => c_int::try_from(ns.div_ceil(1_000_000)).unwrap_or(c_int::MAX),
    })
}

//! The engine backend's configuration from C: what `USOCK_NETIF`,
//! `USOCK_NETIF_ADDR` and `USOCK_NETIF_GW` say, for a linked program that
//! sets its network itself.

use core::ffi::{c_char, c_int, CStr};

use super::ffi::{guard, set_errno};
use crate::consts::*;

/// Attaches this process's user-space AF_INET/AF_INET6 sockets to a real
/// network through the TCP/IP engine (smoltcp), as `USOCK_NETIF`,
/// `USOCK_NETIF_ADDR` and `USOCK_NETIF_GW` do, and starts it.
///
/// - `netif`: `"tap:NAME"` (a Linux TAP device, made if absent, which
///   needs CAP_NET_ADMIN) or `"packet:IFNAME"` (a raw AF_PACKET socket on
///   an existing interface);
/// - `addrs`: one or more `ADDR/PREFIX`, comma-separated
///   (`"10.77.0.2/24,fd77::2/64"`), or `"dhcp"` (with IPv6 ones or
///   alone): the IPv4 address and default route from a DHCPv4 server;
/// - `gws`: NULL, or default routes, at most one per family
///   (`"10.77.0.1,fd77::1"`).
///
/// The MAC is `USOCK_NETIF_MAC` when set, else a locally administered one
/// made up for the process; `USOCK_NETIF_IMPAIR`, when set, puts a bad
/// link on purpose between the engine and its device. From then on, a TCP or UDP socket whose first
/// bind, connect or sendto names an address other than a loopback one
/// goes to the engine (the routing rules are asked first); loopback
/// addresses stay with the in-process backends. Call it before the sockets
/// it is for; sockets already carried keep their backend.
///
/// Returns 0, or -1 with errno: `EINVAL` for a value that does not parse
/// (the reason is written to stderr), `EBUSY` when the process has an
/// engine already (from the environment or an earlier call), or the errno
/// of the device (`ENOENT`: no /dev/net/tun; `EPERM`: no CAP_NET_ADMIN;
/// `ENODEV`: no such interface).
///
/// # Safety
/// Each argument is NULL (only `gws` may be) or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn usock_netif_configure(
    netif: *const c_char,
    addrs: *const c_char,
    gws: *const c_char,
) -> c_int {
    // SAFETY: same contract.
    guard(-1, || unsafe { configure(netif, addrs, gws) })
}

/// # Safety
/// As [`usock_netif_configure`].
unsafe fn configure(netif: *const c_char, addrs: *const c_char, gws: *const c_char) -> c_int {
    // SAFETY: each non-null pointer is a NUL-terminated string per the
    // contract of usock_netif_configure.
    let text = |p: *const c_char| -> Option<Result<&str, ()>> {
        (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_str().map_err(|_| ()))
    };
    let (Some(Ok(netif)), Some(Ok(addrs))) = (text(netif), text(addrs)) else {
        set_errno(EINVAL);
        return -1;
    };
    let gws = match text(gws) {
        None => None,
        Some(Ok(g)) => Some(g),
        Some(Err(())) => {
            set_errno(EINVAL);
            return -1;
        }
    };
    let mac = std::env::var("USOCK_NETIF_MAC").ok();
    let impair = std::env::var("USOCK_NETIF_IMPAIR").ok();
    let cfg = match crate::backends::engine::config::parse(netif, Some(addrs), gws, mac.as_deref())
        .and_then(|c| {
            Ok(crate::backends::engine::config::NetifConfig {
                impair: crate::backends::engine::config::parse_impair_var(impair.as_deref())?,
                ..c
            })
        }) {
        Ok(c) => c,
        Err(e) => {
            let msg = alloc::format!("libuserspacesock: usock_netif_configure: {e}\n");
            crate::platform::diag(msg.as_bytes());
            set_errno(EINVAL);
            return -1;
        }
    };
    // The built-in backends first, so that the environment's engine (if
    // any) is found and this call answers EBUSY rather than race it.
    if let Err(e) = super::ready() {
        set_errno(e);
        return -1;
    }
    match crate::backends::engine::configure(&cfg) {
        Ok(_) => 0,
        Err((_, e)) => {
            set_errno(e);
            -1
        }
    }
}

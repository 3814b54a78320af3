//! Numbers the kernel publishes (under /proc/sys, and lo's MTU) that a
//! socket's limits and defaults follow (rmem_max, tcp_rmem, optmem_max,
//! tcp_timestamps...), each read once (a change after the first use is not
//! seen): the kernel's configuration is the reference, and Linux's default
//! stands in where the platform publishes none (no_std).

use core::sync::atomic::{AtomicUsize, Ordering};

/// One such number: field `field` (whitespace-separated) of `path`.
pub(crate) struct Sysctl {
    path: &'static str,
    field: usize,
    default: usize,
    /// A 0 in the file is a value (a switch), not a missing limit.
    zero_ok: bool,
    /// The value plus one, once read (0: not yet).
    known: AtomicUsize,
}

impl Sysctl {
    /// A limit: the number in `path`'s field `field`, or `default` (also
    /// for a 0, as none of these limits may be 0).
    pub(crate) const fn new(path: &'static str, field: usize, default: usize) -> Sysctl {
        Sysctl {
            path,
            field,
            default,
            zero_ok: false,
            known: AtomicUsize::new(0),
        }
    }

    /// A switch: on unless the file says 0 (`default` without a file).
    pub(crate) const fn switch(path: &'static str, default: bool) -> Sysctl {
        Sysctl {
            path,
            field: 0,
            default: default as usize,
            zero_ok: true,
            known: AtomicUsize::new(0),
        }
    }

    /// The value (read at the first call).
    pub(crate) fn get(&self) -> usize {
        let v = self.known.load(Ordering::Relaxed);
        if v != 0 {
            return v - 1;
        }
        let v = crate::platform::kernel_field(self.path, self.field)
            .and_then(|v| usize::try_from(v).ok())
            .filter(|&v| v > 0 || self.zero_ok)
            .unwrap_or(self.default)
            .min(usize::MAX - 1);
        self.known.store(v + 1, Ordering::Relaxed);
        v
    }

    /// A switch's state.
    pub(crate) fn on(&self) -> bool {
        self.get() != 0
    }
}

/// net.core.rmem_max: SO_RCVBUF's clamp.
pub(crate) static RMEM_MAX: Sysctl = Sysctl::new("/proc/sys/net/core/rmem_max", 0, 212_992);
/// net.core.wmem_max: SO_SNDBUF's clamp.
pub(crate) static WMEM_MAX: Sysctl = Sysctl::new("/proc/sys/net/core/wmem_max", 0, 212_992);
/// tcp_rmem[2]: the largest TCP receive buffer.
pub(crate) static TCP_RMEM_MAX: Sysctl =
    Sysctl::new("/proc/sys/net/ipv4/tcp_rmem", 2, 6 * 1024 * 1024);
/// tcp_rmem[1]: a TCP socket's SO_RCVBUF until set.
pub(crate) static TCP_RMEM_DEFAULT: Sysctl = Sysctl::new("/proc/sys/net/ipv4/tcp_rmem", 1, 131_072);
/// tcp_wmem[1]: a TCP socket's SO_SNDBUF until set.
pub(crate) static TCP_WMEM_DEFAULT: Sysctl = Sysctl::new("/proc/sys/net/ipv4/tcp_wmem", 1, 16_384);
/// net.core.optmem_max: what a socket's attached filter may take.
pub(crate) static OPTMEM_MAX: Sysctl = Sysctl::new("/proc/sys/net/core/optmem_max", 0, 131_072);
/// lo's MTU: the path MTU of every connection here (IP_MTU, TCP's MSS, the
/// datagram size IP_PMTUDISC_DO allows).
pub(crate) static LO_MTU: Sysctl = Sysctl::new("/sys/class/net/lo/mtu", 0, 65536);
/// TCP's options as the kernel would negotiate them (TCP_INFO, the MSS).
pub(crate) static TCP_TIMESTAMPS: Sysctl =
    Sysctl::switch("/proc/sys/net/ipv4/tcp_timestamps", true);
pub(crate) static TCP_SACK: Sysctl = Sysctl::switch("/proc/sys/net/ipv4/tcp_sack", true);
pub(crate) static TCP_WINDOW_SCALING: Sysctl =
    Sysctl::switch("/proc/sys/net/ipv4/tcp_window_scaling", true);
/// net.ipv4.tcp_fastopen (its bit 0: clients may use TCP Fast Open).
pub(crate) static TCP_FASTOPEN: Sysctl = Sysctl::switch("/proc/sys/net/ipv4/tcp_fastopen", true);
/// net.ipv4.ip_default_ttl: the TTL of a datagram whose sender set none.
pub(crate) static IP_DEFAULT_TTL: Sysctl = Sysctl::new("/proc/sys/net/ipv4/ip_default_ttl", 0, 64);
/// lo's IPv6 hop limit: the hop limit of a datagram whose sender set none.
pub(crate) static IPV6_LO_HOP_LIMIT: Sysctl =
    Sysctl::new("/proc/sys/net/ipv6/conf/lo/hop_limit", 0, 64);

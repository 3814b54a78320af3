//! Numbers the kernel publishes under /proc/sys that a socket's limits
//! and defaults follow (rmem_max, tcp_rmem, optmem_max...), each read
//! once: the kernel's configuration is the reference, and Linux's default
//! stands in where the platform publishes none (no_std).

use core::sync::atomic::{AtomicUsize, Ordering};

/// One such number: field `field` (whitespace-separated) of `path`.
pub(crate) struct Sysctl {
    path: &'static str,
    field: usize,
    default: usize,
    /// The value once read (0: not yet; a 0 in the file reads as the
    /// default, as none of these limits may be 0).
    known: AtomicUsize,
}

impl Sysctl {
    /// The number in `path`'s field `field`, or `default`.
    pub(crate) const fn new(path: &'static str, field: usize, default: usize) -> Sysctl {
        Sysctl {
            path,
            field,
            default,
            known: AtomicUsize::new(0),
        }
    }

    /// The value (read at the first call).
    pub(crate) fn get(&self) -> usize {
        let v = self.known.load(Ordering::Relaxed);
        if v != 0 {
            return v;
        }
        let v = crate::platform::kernel_field(self.path, self.field)
            .and_then(|v| usize::try_from(v).ok())
            .filter(|&v| v > 0)
            .unwrap_or(self.default);
        self.known.store(v, Ordering::Relaxed);
        v
    }
}

/// net.core.rmem_max: SO_RCVBUF's clamp.
pub(crate) static RMEM_MAX: Sysctl = Sysctl::new("/proc/sys/net/core/rmem_max", 0, 212_992);
/// net.core.wmem_max: SO_SNDBUF's clamp.
pub(crate) static WMEM_MAX: Sysctl = Sysctl::new("/proc/sys/net/core/wmem_max", 0, 212_992);
/// tcp_rmem[2]: the largest TCP receive buffer.
pub(crate) static TCP_RMEM_MAX: Sysctl =
    Sysctl::new("/proc/sys/net/ipv4/tcp_rmem", 2, 6 * 1024 * 1024);
/// net.core.optmem_max: what a socket's attached filter may take.
pub(crate) static OPTMEM_MAX: Sysctl = Sysctl::new("/proc/sys/net/core/optmem_max", 0, 131_072);

//! What the host supplies: waiting and waking, a monotonic clock, fd
//! numbers, errno. The hosted platform (Linux, std) uses futexes and
//! eventfds; the embedded platform (no_std) calls a table the host
//! registers with `usock_platform_init`.

/// cbindgen:ignore
#[cfg(feature = "std")]
pub mod anchor_ipc;
/// cbindgen:ignore
#[cfg(feature = "std")]
pub mod capture;
/// cbindgen:ignore
pub mod cpu;
/// cbindgen:ignore
#[cfg(feature = "std")]
pub mod netif;
/// cbindgen:ignore
#[cfg(feature = "std")]
pub mod private_fds;
/// cbindgen:ignore
pub mod real;
/// cbindgen:ignore
#[cfg(feature = "std")]
pub mod sandbox;
/// cbindgen:ignore
pub mod scm;
/// cbindgen:ignore
#[cfg(feature = "std")]
pub mod shared_mem;
/// cbindgen:ignore
#[cfg(feature = "std")]
pub mod trace;
/// cbindgen:ignore
#[cfg(feature = "std")]
pub mod unix_ipc;

#[cfg(not(feature = "std"))]
pub mod embedded;
#[cfg(not(feature = "std"))]
pub use embedded::*;
/// cbindgen:ignore
#[cfg(feature = "std")]
mod hosted;
#[cfg(feature = "std")]
pub use hosted::*;

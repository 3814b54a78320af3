//! libuserspacesock: a user-space implementation of the POSIX socket API.
//!
//! The layers, top to bottom (see `DESIGN.md` in the shared folder):
//! - [`api`]: the C veneers (POSIX names, `usock_*` names, errno, C structs);
//! - [`net`]: the native Rust API over the same core;
//! - [`fd`]: the fd table mapping `int` to socket;
//! - [`socket`]: the frontend core (state machine, waiting, readiness, options);
//! - [`backend`]: the backend contract, registry, selection, wire encoding;
//! - [`sockbuf`]: the receive-side Socket Buffer (reassembly, no I/O);
//! - [`backends`]: built-in backends (loopback);
//! - [`platform`]: what the host supplies (waiting, clock, fd numbers).
//!
//! `sockbuf` and `backend::wire` use only `core` and `alloc`; the rest still
//! sits on the hosted platform.
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]
// `unsafe` is allowed only where a module says why: the C ABI (`api`,
// `backend::c_table`), the platform, the sync primitives (with the chunk
// table behind the fd table and the socket slab, the locks held across a
// fork), and the Socket Buffer's ring and spin lock. The CPU's CRC
// instruction and the cross-process backend's kernel calls are platform
// functions.
#![deny(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

// The no_std code paths are tested on the host: there the library links std
// only for its allocator and panic handler (no module imports from it, and
// `make embedded`, built with `embedded-runtime` instead, proves that no std
// or libc symbol is referenced).
#[cfg(all(not(feature = "std"), not(feature = "embedded-runtime")))]
extern crate std;

/// cbindgen:ignore
pub mod addr;
#[allow(unsafe_code)]
pub mod api;
pub mod backend;
/// cbindgen:ignore
pub mod backends;
/// cbindgen:ignore
pub mod config;
/// cbindgen:ignore
pub mod consts;
/// cbindgen:ignore
pub(crate) mod fd;
#[cfg(feature = "std")]
/// cbindgen:ignore
pub mod net;
#[allow(unsafe_code)]
pub mod platform;
/// cbindgen:ignore
pub mod route;
/// cbindgen:ignore
pub mod sockbuf;
/// cbindgen:ignore
pub(crate) mod socket;
/// cbindgen:ignore
#[allow(unsafe_code)]
pub(crate) mod sync;

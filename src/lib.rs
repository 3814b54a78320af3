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
#![warn(missing_docs)]

extern crate alloc;

/// cbindgen:ignore
pub mod addr;
#[cfg(feature = "std")]
pub mod api;
pub mod backend;
/// cbindgen:ignore
pub mod backends;
/// cbindgen:ignore
pub mod consts;
/// cbindgen:ignore
pub mod fd;
#[cfg(feature = "std")]
/// cbindgen:ignore
pub mod net;
/// cbindgen:ignore
pub mod platform;
/// cbindgen:ignore
pub mod sockbuf;
/// cbindgen:ignore
pub mod socket;
/// cbindgen:ignore
pub mod sync;

//! libuserspacesock: a user-space implementation of the POSIX socket API.
//!
//! The layers, top to bottom (see `DESIGN.md` in the shared folder):
//! - [`api`]: the C veneers (POSIX names, `usock_*` names, errno, C structs);
//! - [`fd`]: the fd table mapping `int` to socket;
//! - [`socket`]: the frontend core (state machine, waiting, readiness, options);
//! - [`backend`]: the backend contract, registry, selection, wire encoding;
//! - [`sockbuf`]: the receive-side Socket Buffer (reassembly, no I/O);
//! - [`backends`]: built-in backends (loopback);
//! - [`platform`]: what the host supplies (locks, waiting, clock, fds).
//!
//! `sockbuf` and `backend::wire` only use `core` and `alloc`; the rest sits on
//! the hosted platform for now.
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

extern crate alloc;

pub mod sockbuf;

//! The C veneers: POSIX names and `usock_*` names, errno, C structs, and the
//! backend registration and upcalls for C backends. No socket logic lives
//! here: each call checks its pointers and hands over to the core.

pub mod backend_ffi;
/// cbindgen:ignore
pub mod fdops;
/// cbindgen:ignore
pub mod ffi;
/// cbindgen:ignore
pub mod poll;
pub mod posix;
/// cbindgen:ignore
pub mod real;

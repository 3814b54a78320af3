//! The backend side: the contract (Rust trait; the C table adapter lives in
//! `api::backend_ffi`), the upcalls, the registry and selection, and the
//! portable fragment encoding.

pub mod contract;
/// cbindgen:ignore
pub mod crc32c;
/// cbindgen:ignore
pub mod registry;
/// cbindgen:ignore
pub mod upcall;
/// cbindgen:ignore
pub mod wire;

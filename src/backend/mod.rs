//! The contract room: everything a backend author needs and nothing else.
//! The Rust trait and its extensions (`contract`), the C function table and
//! its adapter (`c_table`), the upcalls (`upcall`), the fragment and its
//! portable encoding (`wire`), and the registry that asks backends in
//! priority order (`registry`). See ARCHITECTURE.md.

/// cbindgen:ignore
pub mod attrs;
#[allow(unsafe_code)] // calls the C functions of a registered table
pub mod c_table;
pub mod contract;
/// cbindgen:ignore
pub mod crc32c;
/// cbindgen:ignore
pub mod registry;
/// cbindgen:ignore
pub mod upcall;
/// cbindgen:ignore
pub mod wire;

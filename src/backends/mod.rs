//! Built-in backends.

use alloc::sync::Arc;

use crate::backend::contract::Backend;

#[cfg(feature = "std")]
pub mod fault;
pub mod loopback;
#[cfg(feature = "std")]
pub mod xproc;

/// The backend registered when nothing else is: loopback.
pub fn default_backend() -> Option<Arc<dyn Backend>> {
    Some(Arc::new(loopback::Loopback::new()))
}

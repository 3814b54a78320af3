//! What the host supplies: waiting and waking, a monotonic clock, kernel fd
//! numbers. The hosted platform (Linux, std) is the only one so far.

#[cfg(feature = "std")]
mod hosted;
#[cfg(feature = "std")]
pub use hosted::*;

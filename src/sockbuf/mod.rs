//! The Socket Buffer: the receive side of every socket (reassembly, no I/O).
//!
//! `no_std + alloc`: this module uses only `core` and `alloc`.
//!
//! - [`StreamBuf`] reassembles a byte stream from fragments at absolute `u64`
//!   offsets (any order, overlapping, repeated; first copy of a byte wins)
//!   into a ring of fixed capacity, the receive window.
//! - [`DgramBuf`] reassembles datagrams, each a fixed-length stream of its
//!   own, and queues complete ones in completion order with their source
//!   address.
//!
//! Both are shared by one producer (the transport thread inserting) and one
//! consumer (the application thread reading), each method taking `&self`.
//! On the in-order path neither side waits for a lock the other holds and
//! nothing is allocated per fragment; out-of-order bookkeeping is bounded
//! ([`MAX_HOLES`]). Every refusal is a distinct [`SbError`], counted in
//! [`SbStats`], and leaves what was buffered intact. No input panics.
//!
//! Layout: `lock` (the per-side spin lock), `ring` (the only raw memory,
//! behind a safe producer/consumer interface that also resizes),
//! `assembler` (hole bookkeeping), `stream` and `dgram` (the two buffers),
//! `counters` (statistics), `error` (the public error and stats types).
#![deny(unsafe_code)]

mod assembler;
mod counters;
mod dgram;
mod error;
mod lock;
mod ring;
mod stream;

pub use assembler::MAX_HOLES;
pub use dgram::{dgram_charge, DgramBuf, DgramMeta, DGRAM_HEADER};
pub use error::{SbError, SbStats};
pub use stream::StreamBuf;

/// Longest source address a datagram may carry (opaque bytes).
pub const MAX_ADDR_LEN: usize = 128;

#[cfg(test)]
mod send_sync {
    use super::*;
    fn assert_send_sync<T: Send + Sync>() {}
    #[test]
    fn buffers_are_send_and_sync() {
        assert_send_sync::<StreamBuf>();
        assert_send_sync::<DgramBuf>();
    }

    /// An idle socket's buffer costs its header only (the ring is lazy).
    #[test]
    fn idle_buffers_are_small() {
        let s = core::mem::size_of::<StreamBuf>();
        let d = core::mem::size_of::<DgramBuf>();
        assert!(s <= 1152, "StreamBuf is {s} bytes");
        assert!(d <= 640, "DgramBuf is {d} bytes");
    }
}

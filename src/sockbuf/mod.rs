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
pub const MAX_ADDR_LEN: usize = crate::addr::ADDR_MAX;

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

/// Both sides on two threads, wrapping and resizing under way: small enough
/// for Miri's data-race detector.
#[cfg(all(test, feature = "std"))]
mod two_threads {
    extern crate std;
    use super::{DgramBuf, StreamBuf};
    use alloc::vec::Vec;
    #[test]
    fn stream_two_threads() {
        let b = StreamBuf::new(u64::MAX - 50, 64);
        let total = 400u64;
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut off = u64::MAX - 50;
                let mut sent = 0u64;
                while sent < total {
                    let chunk: Vec<u8> = (0..7).map(|i| ((sent + i) % 251) as u8).collect();
                    let n = chunk.len().min((total - sent) as usize);
                    match b.insert(off, &chunk[..n]) {
                        Ok(_) => {
                            off = off.wrapping_add(n as u64);
                            sent += n as u64;
                        }
                        Err(_) => std::thread::yield_now(),
                    }
                }
                b.insert_fin(off).unwrap();
            });
            s.spawn(|| {
                let mut got = 0u64;
                let mut buf = [0u8; 13];
                let mut resized = false;
                while !b.at_eof() {
                    let n = b.read(&mut buf);
                    for (i, &x) in buf[..n].iter().enumerate() {
                        assert_eq!(x as u64, (got + i as u64) % 251);
                    }
                    got += n as u64;
                    if got > 150 && !resized {
                        resized = b.set_capacity(97).is_ok();
                    }
                    if n == 0 {
                        std::thread::yield_now();
                    }
                }
                assert_eq!(got, total);
            });
        });
    }
    #[test]
    fn dgram_two_threads() {
        let b = DgramBuf::new(100, 2);
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut id = 0u64;
                while id < 40 {
                    let d = [id as u8; 5];
                    if id % 3 == 0 {
                        let r1 = b.insert(id, 0, 5, &d[..2], b"a");
                        if r1.is_err() {
                            std::thread::yield_now();
                            continue;
                        }
                        while b.insert(id, 2, 5, &d[2..], b"a").is_err() {
                            std::thread::yield_now();
                        }
                    } else if b.insert(id, 0, 5, &d, b"a").is_err() {
                        std::thread::yield_now();
                        continue;
                    }
                    id += 1;
                }
            });
            s.spawn(|| {
                let mut n = 0u64;
                let mut buf = [0u8; 8];
                let mut src = [0u8; 4];
                while n < 40 {
                    if let Some(m) = b.read(&mut buf, &mut src) {
                        assert_eq!((m.len, m.copied, m.src_len), (5, 5, 1));
                        assert_eq!(buf[..5], [n as u8; 5]);
                        n += 1;
                        if n == 20 {
                            let _ = b.set_capacity(161);
                        }
                    } else {
                        std::thread::yield_now();
                    }
                }
            });
        });
    }
}

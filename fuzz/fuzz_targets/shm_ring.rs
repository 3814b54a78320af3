//! Fuzz the shared-memory ring (`backends::shm`) against a hostile peer:
//! the input is a program of operations on one segment, mixing this
//! process's reads, peeks and writes with arbitrary stores into the
//! segment's shared words and bytes (what another process of the same user
//! could do at any time).
//!
//! For every input: nothing panics or touches memory outside the mapping;
//! every operation returns a bounded result or `Corrupt`; a read never
//! returns more than asked or more than the ring holds; while nobody but
//! this program's own writes and reads touched the ring, bytes come out as
//! they went in (a model queue checks them); no wait blocks (waits are
//! given a past deadline).
#![no_main]

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use userspacesock::backends::shm::segment::{Dir, Segment};

fuzz_target!(|data: &[u8]| {
    let Ok(seg) = Segment::anonymous(64, 128) else { return };
    let len = seg.mem().len();
    // The model is valid until the fuzzer writes into the segment.
    let mut model: Option<VecDeque<u8>> = Some(VecDeque::new());
    let mut it = data.iter().copied();
    let mut next = 0u8;
    while let Some(op) = it.next() {
        let dir = if op & 0x80 == 0 { Dir::ToAcceptor } else { Dir::ToConnector };
        let r = seg.ring(dir);
        let arg = it.next().unwrap_or(0) as usize;
        match op & 0x7 {
            0 | 1 => {
                let src: Vec<u8> = (0..arg % 200).map(|_| { next = next.wrapping_add(1); next }).collect();
                if let Ok(n) = r.write(&src) {
                    assert!(n <= src.len() && n as u64 <= r.size());
                    if dir == Dir::ToAcceptor {
                        if let Some(m) = model.as_mut() {
                            m.extend(&src[..n]);
                        }
                    }
                }
            }
            2 | 3 => {
                let consume = op & 1 == 0;
                let skip = if consume { 0 } else { (arg / 16) as u64 };
                let mut dst = vec![0u8; arg % 150];
                if let Ok((_, n)) = r.read(&mut dst, skip, consume) {
                    assert!(n <= dst.len() && n as u64 <= r.size());
                    if dir == Dir::ToAcceptor {
                        if let Some(m) = model.as_mut() {
                            let want: Vec<u8> = m.iter().skip(skip as usize).take(n).copied().collect();
                            assert_eq!(&dst[..n], &want[..]);
                            if consume {
                                m.drain(..n);
                            }
                        }
                    }
                }
            }
            4 => {
                // A hostile 64-bit store into any aligned word.
                let mut v = [0u8; 8];
                for b in v.iter_mut() {
                    *b = it.next().unwrap_or(0);
                }
                if let Some(w) = seg.mem().u64_at((arg * 8) % len) {
                    w.store(u64::from_le_bytes(v), Ordering::Relaxed);
                    model = None;
                }
            }
            5 => {
                // A hostile byte anywhere.
                seg.mem().write_bytes((arg * 7) % len, &[it.next().unwrap_or(0)]);
                model = None;
            }
            6 => {
                let past = Some(Instant::now());
                let _ = r.wait_readable(past, || false);
                let _ = r.wait_room(past, || false);
                let _ = (r.used(), r.room(), r.at_end(), seg.check());
            }
            _ => {
                if op & 0x40 != 0 {
                    r.finish();
                }
                // A lock the fuzzer has not filled with a live id is free
                // or ours to take; a hostile id of a live thread would
                // make lock() wait up to a second, which the harness
                // does not need to see.
                let lock = r.reader_lock();
                if !lock.is_held() {
                    let g = lock.lock();
                    assert!(g.is_ok());
                }
            }
        }
    }
});

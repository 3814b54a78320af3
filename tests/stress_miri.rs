//! The Socket Buffer's two sides on two threads, sized for Miri: a
//! producer inserting stream fragments out of order (with repeats) and
//! datagram fragments, a consumer reading, with the ring wrapping many
//! times and a resize in between. Under Miri (`make miri`) this checks the
//! unsafe ring code and the atomics between the two sides for undefined
//! behaviour and data races; in a normal run it is a quick functional test.
//!
//! Only `sockbuf` is used (core + alloc), so it runs with
//! `--no-default-features`, where Miri needs no foreign calls.

use std::sync::Arc;
use std::thread;

use userspacesock::sockbuf::{DgramBuf, StreamBuf};

const fn scale(miri: usize, native: usize) -> usize {
    if cfg!(miri) {
        miri
    } else {
        native
    }
}

fn byte(o: u64) -> u8 {
    (o.wrapping_mul(0x9E37_79B9) >> 11) as u8
}

#[test]
fn stream_two_threads_out_of_order() {
    let total = scale(6 << 10, 4 << 20) as u64;
    let cap = 512usize;
    let sb = Arc::new(StreamBuf::new(0, cap));
    let p = sb.clone();
    let producer = thread::spawn(move || {
        let mut seed = 0x1234_5678u64;
        let mut next = 0u64; // everything below was offered at least once
        while next < total {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let win = p.window_end();
            if next >= win {
                thread::yield_now();
                continue;
            }
            // A fragment a little ahead (a hole), then the one at the edge,
            // sometimes a repeat of old bytes.
            let len = 1 + seed % 64;
            let ahead = next + len + seed % 32;
            if ahead + len <= win.min(total) {
                let d: Vec<u8> = (ahead..ahead + len).map(byte).collect();
                let _ = p.insert(ahead, &d);
            }
            let end = (next + len).min(win).min(total);
            let d: Vec<u8> = (next..end).map(byte).collect();
            p.insert(next, &d).unwrap();
            if seed % 5 == 0 && next > 16 {
                let d: Vec<u8> = (next - 16..next).map(byte).collect();
                p.insert(next - 16, &d).unwrap();
            }
            next = end;
        }
        p.insert_fin(total).unwrap();
    });
    let mut got = 0u64;
    let mut buf = [0u8; 97];
    let mut resized = false;
    loop {
        let n = sb.read(&mut buf);
        for (i, b) in buf[..n].iter().enumerate() {
            assert_eq!(*b, byte(got + i as u64), "offset {}", got + i as u64);
        }
        got += n as u64;
        if n == 0 {
            if sb.at_eof() {
                break;
            }
            thread::yield_now();
        }
        if !resized && got > total / 2 {
            resized = sb.set_capacity(cap * 2).is_ok();
        }
    }
    producer.join().unwrap();
    assert_eq!(got, total);
}

#[test]
fn datagrams_two_threads() {
    let count = scale(60, 20_000) as u64;
    let db = Arc::new(DgramBuf::new(2048, 4));
    let p = db.clone();
    let producer = thread::spawn(move || {
        let mut id = 0u64;
        while id < count {
            let total = 1 + (id * 37 % 300) as u32;
            let d: Vec<u8> = (0..u64::from(total)).map(|o| byte(o ^ id)).collect();
            // Two fragments, second first.
            let cut = total / 2;
            let src = [id as u8; 4];
            let a = if cut < total {
                p.insert(id, cut, total, &d[cut as usize..], &src)
            } else {
                Ok(false)
            };
            let b = if cut > 0 {
                p.insert(id, 0, total, &d[..cut as usize], &src)
            } else {
                Ok(false)
            };
            if a.is_err() || b.is_err() {
                thread::yield_now(); // full: the datagram is dropped, as UDP
            }
            id += 1;
        }
    });
    let mut buf = [0u8; 400];
    let mut src = [0u8; 16];
    let mut seen = 0u64;
    let mut last = None;
    loop {
        match db.read(&mut buf, &mut src) {
            Some(m) => {
                let id = u64::from(src[0]);
                assert_eq!(m.src_len, 4);
                // The id's low byte is the source; check the whole datagram.
                let total = m.len;
                let ok = (0..=u64::from(u8::MAX))
                    .map(|hi| (hi << 8) | id)
                    .filter(|cand| *cand < count)
                    .any(|cand| {
                        1 + (cand * 37 % 300) as usize == total
                            && (0..total as u64).all(|o| buf[o as usize] == byte(o ^ cand))
                    });
                assert!(ok, "a datagram that was never sent (len {total})");
                assert!(last != Some(buf[..total].to_vec()) || total < 4);
                last = Some(buf[..total].to_vec());
                seen += 1;
            }
            None => {
                if producer.is_finished() && db.pending() == 0 {
                    break;
                }
                thread::yield_now();
            }
        }
    }
    producer.join().unwrap();
    assert!(seen > 0);
}

//! Two threads, one `StreamBuf`: a producer inserting slightly out of order
//! within the window (with duplicates), a consumer reading random sizes.
//!
//! SIZE: `cargo test --release` moves **1 GiB** (the figure the issue asks
//! for). A debug build (`cargo test`) moves 64 MiB instead, because debug
//! code is ~30x slower; the logic is identical. Override with
//! `SOCKBUF_THREADS_MIB=<n>`.

use std::sync::Arc;
use std::thread;

use userspacesock::sockbuf::{DgramBuf, StreamBuf};

fn total_bytes() -> u64 {
    if let Some(m) = std::env::var("SOCKBUF_THREADS_MIB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        return m << 20;
    }
    if cfg!(debug_assertions) {
        64 << 20
    } else {
        1 << 30
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// FNV-1a over the stream, byte by byte (independent of chunking).
fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}
const FNV0: u64 = 0xcbf2_9ce4_8422_2325;

const SRC_LEN: usize = (1 << 20) + 7; // not a multiple of the window
const MAX_FRAG: usize = 16 << 10;
const WINDOW: usize = 256 << 10;

fn source() -> Arc<Vec<u8>> {
    // Byte at stream position p is src[p % SRC_LEN]; the tail repeats the
    // head so a fragment is always one contiguous slice.
    let mut r = Rng(0x1234_5678_9abc_def1);
    let mut v: Vec<u8> = (0..SRC_LEN).map(|_| r.next() as u8).collect();
    v.extend_from_within(..MAX_FRAG);
    Arc::new(v)
}

#[test]
fn two_threads_move_a_gib_with_matching_checksum() {
    let total = total_bytes();
    // Start near the top so the stream crosses the u64 wrap.
    let start = u64::MAX - 12345;
    let sb = Arc::new(StreamBuf::new(start, WINDOW));
    let src = source();

    let producer = {
        let sb = Arc::clone(&sb);
        let src = Arc::clone(&src);
        thread::spawn(move || {
            let mut rng = Rng(0xfeed_beef_cafe_f00d);
            let mut pos = 0u64; // stream position of the next new byte
            let mut sum = FNV0;
            let mut newly = 0u64;
            let mut batch: Vec<(u64, usize)> = Vec::with_capacity(16);
            while pos < total {
                // A batch of up to 8 consecutive fragments spanning at most
                // half the window, sent shuffled with a few duplicates.
                batch.clear();
                let mut span = 0usize;
                let k = 1 + rng.below(8) as usize;
                while batch.len() < k && pos < total {
                    let l = (1 + rng.below(MAX_FRAG as u64)).min(total - pos) as usize;
                    if span + l > WINDOW / 2 {
                        break;
                    }
                    let s = (pos % SRC_LEN as u64) as usize;
                    sum = fnv(sum, &src[s..s + l]);
                    batch.push((pos, l));
                    pos += l as u64;
                    span += l;
                }
                for i in (1..batch.len()).rev() {
                    let j = rng.below(i as u64 + 1) as usize;
                    batch.swap(i, j);
                }
                if rng.below(16) == 0 {
                    let d = batch[rng.below(batch.len() as u64) as usize];
                    batch.push(d);
                }
                let end = start.wrapping_add(pos);
                // Wait for the window to cover the whole batch.
                while (end.wrapping_sub(sb.window_end()) as i64) > 0 {
                    std::hint::spin_loop();
                    thread::yield_now();
                }
                for &(p, l) in &batch {
                    let s = (p % SRC_LEN as u64) as usize;
                    let n = sb
                        .insert(start.wrapping_add(p), &src[s..s + l])
                        .expect("insert refused");
                    newly += n as u64;
                }
            }
            sb.insert_fin(start.wrapping_add(total)).unwrap();
            (sum, newly)
        })
    };

    let consumer = {
        let sb = Arc::clone(&sb);
        let src = Arc::clone(&src);
        thread::spawn(move || {
            let mut rng = Rng(0x0bad_5eed_1234_4321);
            let mut buf = vec![0u8; 64 << 10];
            let mut got = 0u64;
            let mut sum = FNV0;
            let mut mismatch = None;
            loop {
                let want = 1 + rng.below(buf.len() as u64) as usize;
                let n = sb.read(&mut buf[..want]);
                if n == 0 {
                    if sb.at_eof() {
                        break;
                    }
                    std::hint::spin_loop();
                    thread::yield_now();
                    continue;
                }
                sum = fnv(sum, &buf[..n]);
                if mismatch.is_none() {
                    // Direct comparison too, to locate a failure.
                    let s = (got % SRC_LEN as u64) as usize;
                    let first = n.min(SRC_LEN - s);
                    if buf[..first] != src[s..s + first] || buf[first..n] != src[..n - first] {
                        mismatch = Some(got);
                    }
                }
                got += n as u64;
            }
            (sum, got, mismatch)
        })
    };

    let (sent_sum, newly) = producer.join().unwrap();
    let (got_sum, got, mismatch) = consumer.join().unwrap();
    eprintln!(
        "moved {} MiB through one StreamBuf; checksum {:016x}",
        got >> 20,
        got_sum
    );
    assert_eq!(mismatch, None, "first wrong byte at stream position");
    assert_eq!(got, total);
    assert_eq!(newly, total, "sum of insert() results");
    assert_eq!(got_sum, sent_sum, "checksum");
    assert!(sb.at_eof());
    assert_eq!(sb.read_offset(), start.wrapping_add(total));
    let st = sb.stats();
    assert_eq!(st.bytes_in, total);
    assert_eq!(st.bytes_read, total);
    assert_eq!(st.rejected_total(), 0);
}

/// The same for datagrams (smaller: 1/16 of the stream volume): whole and
/// fragmented datagrams from one thread, read by another, in order.
#[test]
fn two_threads_datagrams() {
    let count: u64 = if cfg!(debug_assertions) {
        20_000
    } else {
        200_000
    };
    let db = Arc::new(DgramBuf::new(256 << 10, 8));
    let producer = {
        let db = Arc::clone(&db);
        thread::spawn(move || {
            let mut rng = Rng(77);
            let mut payload = vec![0u8; 4000];
            for id in 0..count {
                let len = rng.below(4000) as usize;
                for (i, b) in payload[..len].iter_mut().enumerate() {
                    *b = (id as usize + i) as u8;
                }
                let src = id.to_le_bytes();
                let cut = if len > 1 {
                    rng.below(len as u64) as usize
                } else {
                    0
                };
                loop {
                    // Fragmented in reverse order when cut > 0; retry on NoRoom.
                    let r = if cut > 0 {
                        db.insert(id, cut as u32, len as u32, &payload[cut..len], &src)
                            .and_then(|_| db.insert(id, 0, len as u32, &payload[..cut], &src))
                    } else {
                        db.insert(id, 0, len as u32, &payload[..len], &src)
                    };
                    match r {
                        Ok(true) => break,
                        Ok(false) => panic!("datagram {id} not complete"),
                        Err(_) => thread::yield_now(),
                    }
                }
            }
        })
    };
    let mut buf = vec![0u8; 4000];
    let mut src = [0u8; 8];
    let mut next = 0u64;
    let mut rng = Rng(77);
    while next < count {
        match db.read(&mut buf, &mut src) {
            None => thread::yield_now(),
            Some(m) => {
                let len = rng.below(4000) as usize;
                if len > 1 {
                    rng.below(len as u64);
                }
                assert_eq!(u64::from_le_bytes(src), next);
                assert_eq!(m.len, len);
                for (i, &b) in buf[..m.len].iter().enumerate() {
                    assert_eq!(b, (next as usize + i) as u8);
                }
                next += 1;
            }
        }
    }
    producer.join().unwrap();
    assert_eq!(db.pending(), 0);
}

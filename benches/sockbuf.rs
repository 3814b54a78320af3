//! Socket Buffer throughput (not a test). Run: `cargo bench --bench sockbuf`.
//!
//! 1. In-order 64 KiB fragments through a `StreamBuf` (insert, then read)
//!    against a plain memcpy of the same bytes from the same source to the
//!    same destination, in the same run. Two working sets:
//!    - "cold": a 256 MiB payload into a 256 MiB destination (larger than the
//!      caches: what a receive path sees, packets in, application buffer out);
//!    - "hot": one 64 KiB source and destination reused (all in cache: the
//!      buffer's two copies against memcpy's one, the worst case for the ratio).
//!
//!    Each through one thread (insert then read) and two (producer/consumer),
//!    with a 256 KiB and a 1 MiB receive window. For reference, also the
//!    floor of any copy-in/copy-out buffer: two plain memcpys per chunk
//!    through a scratch ring, without any bookkeeping.
//! 2. Reversed-order 1 KiB fragments within a 256 KiB window: each window is
//!    filled back to front (every fragment lands beyond a hole until the last
//!    one), then read out.
//!
//! The cases run interleaved, round after round, and each figure is the
//! median over the rounds: MB/s = 10^6 bytes per second of payload delivered
//! to the destination; ratio = that round's MB/s over that round's memcpy.

use std::hint::black_box;
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use userspacesock::sockbuf::StreamBuf;

const FRAG: usize = 64 << 10;
const COLD: usize = 256 << 20;
const WINDOW: usize = 256 << 10;
/// A second, larger receive window for the in-order cases (a TCP receive
/// buffer is commonly 1 MiB or more); the two-thread case needs the slack.
const BIG_WINDOW: usize = 1 << 20;
const RUNS: usize = 11;

/// Wait politely: spin a little, then yield (the machine has 2 cores and may
/// be shared, and a spinning waiter would steal the other side's core).
fn backoff(spins: &mut u32) {
    *spins += 1;
    if *spins < 64 {
        std::hint::spin_loop();
    } else {
        thread::yield_now();
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn mbps(bytes: usize, secs: f64) -> f64 {
    bytes as f64 / secs / 1e6
}

/// Time one call of `f`, in MB/s.
fn once(bytes: usize, f: &mut dyn FnMut()) -> f64 {
    let t = Instant::now();
    f();
    mbps(bytes, t.elapsed().as_secs_f64())
}

/// Run the cases interleaved (baseline first), RUNS rounds after one
/// warm-up round, so that a change of load on the (shared, 2-core) machine
/// hits every case alike. Returns each case's median MB/s and median ratio
/// to the baseline of the same round.
fn measure(bytes: usize, cases: &mut [&mut dyn FnMut()]) -> Vec<(f64, f64)> {
    for f in cases.iter_mut() {
        f();
    }
    let mut speed = vec![Vec::new(); cases.len()];
    let mut ratio = vec![Vec::new(); cases.len()];
    for _ in 0..RUNS {
        let mut base = 0.0;
        for (i, f) in cases.iter_mut().enumerate() {
            let v = once(bytes, *f);
            if i == 0 {
                base = v;
            }
            speed[i].push(v);
            ratio[i].push(v / base);
        }
    }
    speed
        .into_iter()
        .map(median)
        .zip(ratio.into_iter().map(median))
        .collect()
}

fn payload(n: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// memcpy in FRAG chunks: src[i] -> dst[i] (`hot`: the same chunk each time).
fn memcpy_run(src: &[u8], dst: &mut [u8], total: usize, hot: bool) {
    let mut done = 0;
    while done < total {
        let o = if hot { 0 } else { done };
        dst[o..o + FRAG].copy_from_slice(black_box(&src[o..o + FRAG]));
        done += FRAG;
    }
    black_box(dst);
}

/// The floor for any copy-in/copy-out buffer: two plain memcpys per chunk,
/// src -> a scratch ring of `window` bytes -> dst, with no bookkeeping.
fn two_memcpy_run(src: &[u8], ring: &mut [u8], dst: &mut [u8], total: usize, hot: bool) {
    let mut done = 0;
    let mut pos = 0;
    while done < total {
        let o = if hot { 0 } else { done };
        ring[pos..pos + FRAG].copy_from_slice(black_box(&src[o..o + FRAG]));
        dst[o..o + FRAG].copy_from_slice(black_box(&ring[pos..pos + FRAG]));
        pos = (pos + FRAG) % ring.len();
        done += FRAG;
    }
    black_box(dst);
}

/// One thread: insert a fragment, then read it out.
fn stream_run_1t(sb: &StreamBuf, src: &[u8], dst: &mut [u8], total: usize, hot: bool) {
    let mut done = 0;
    while done < total {
        let o = if hot { 0 } else { done };
        let off = sb.read_offset();
        let n = sb.insert(off, &src[o..o + FRAG]).unwrap();
        assert_eq!(n, FRAG);
        let r = sb.read(&mut dst[o..o + FRAG]);
        assert_eq!(r, FRAG);
        done += FRAG;
    }
    black_box(dst);
}

/// Two threads: a producer inserts as the window allows, a consumer reads.
fn stream_run_2t(src: Arc<Vec<u8>>, dst: &mut [u8], total: usize, hot: bool, window: usize) {
    let sb = Arc::new(StreamBuf::new(0, window));
    let prod = {
        let sb = Arc::clone(&sb);
        thread::spawn(move || {
            let mut done = 0usize;
            while done < total {
                let o = if hot { 0 } else { done };
                let mut spins = 0;
                while sb.window_end().wrapping_sub(done as u64) < FRAG as u64 {
                    backoff(&mut spins);
                }
                sb.insert(done as u64, &src[o..o + FRAG]).unwrap();
                done += FRAG;
            }
        })
    };
    let mut done = 0usize;
    let mut spins = 0;
    while done < total {
        let o = if hot { 0 } else { done % total };
        let n = sb.read(&mut dst[o..o + FRAG]);
        if n == 0 {
            backoff(&mut spins);
            continue;
        }
        spins = 0;
        // Reads are FRAG-sized into FRAG-aligned slots; a short read (only
        // part of a fragment published) continues in the same slot.
        if n < FRAG {
            let mut got = n;
            while got < FRAG {
                got += sb.read(&mut dst[o + got..o + FRAG]);
                backoff(&mut spins);
            }
        }
        done += FRAG;
    }
    prod.join().unwrap();
    black_box(dst);
}

/// Reversed 1 KiB fragments: each 256 KiB window filled back to front.
fn reversed_run(sb: &StreamBuf, src: &[u8], dst: &mut [u8], total: usize) {
    const F: usize = 1 << 10;
    let mut done = 0;
    while done < total {
        let base = sb.read_offset();
        let mut k = WINDOW;
        while k > 0 {
            k -= F;
            sb.insert(base + k as u64, &src[done + k..done + k + F])
                .unwrap();
        }
        let r = sb.read(&mut dst[done..done + WINDOW]);
        assert_eq!(r, WINDOW);
        done += WINDOW;
    }
    black_box(dst);
}

fn main() {
    let src = Arc::new(payload(COLD));
    let mut dst = vec![0u8; COLD];
    println!("Socket Buffer benchmark: median of {RUNS} interleaved rounds");
    println!("{:<58} {:>10} {:>8}", "case", "MB/s", "ratio");
    let row = |name: &str, (v, r): (f64, f64)| println!("  {name:<56} {v:>10.0} {r:>8.2}");

    for (label, hot) in [
        ("cold: 256 MiB payload -> 256 MiB destination", false),
        ("hot: one 64 KiB chunk, reused (in cache)", true),
    ] {
        let total = COLD;
        let d = std::cell::RefCell::new(&mut dst);
        let sb = StreamBuf::new(0, WINDOW);
        let big = StreamBuf::new(0, BIG_WINDOW);
        let mut scratch = vec![0u8; WINDOW];
        let r = measure(
            total,
            &mut [
                &mut || memcpy_run(&src, &mut d.borrow_mut(), total, hot),
                &mut || two_memcpy_run(&src, &mut scratch, &mut d.borrow_mut(), total, hot),
                &mut || stream_run_1t(&sb, &src, &mut d.borrow_mut(), total, hot),
                &mut || stream_run_2t(Arc::clone(&src), &mut d.borrow_mut(), total, hot, WINDOW),
                &mut || stream_run_1t(&big, &src, &mut d.borrow_mut(), total, hot),
                &mut || {
                    stream_run_2t(
                        Arc::clone(&src),
                        &mut d.borrow_mut(),
                        total,
                        hot,
                        BIG_WINDOW,
                    )
                },
            ],
        );
        println!("{label}");
        let rows = [
            "memcpy (baseline)",
            "two memcpys via a 256 KiB scratch ring (the floor)",
            "StreamBuf 64 KiB in order, 256 KiB window, one thread",
            "StreamBuf 64 KiB in order, 256 KiB window, two threads",
            "StreamBuf 64 KiB in order, 1 MiB window, one thread",
            "StreamBuf 64 KiB in order, 1 MiB window, two threads",
        ];
        for (name, v) in rows.iter().zip(r) {
            row(name, v);
        }
    }

    let total = COLD;
    let d = std::cell::RefCell::new(&mut dst);
    let sb = StreamBuf::new(0, WINDOW);
    let r = measure(
        total,
        &mut [
            &mut || memcpy_run(&src, &mut d.borrow_mut(), total, false),
            &mut || reversed_run(&sb, &src, &mut d.borrow_mut(), total),
        ],
    );
    println!("reversed order (vs the cold memcpy)");
    row("StreamBuf reversed 1 KiB fragments, 256 KiB window", r[1]);
}

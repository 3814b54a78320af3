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
//!    Each through one thread (insert then read) and two (producer/consumer).
//! 2. Reversed-order 1 KiB fragments within a 256 KiB window: each window is
//!    filled back to front (every fragment lands beyond a hole until the last
//!    one), then read out.
//!
//! Each figure is the median of several runs; MB/s = 10^6 bytes per second of
//! payload delivered to the destination.

use std::hint::black_box;
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use userspacesock::sockbuf::StreamBuf;

const FRAG: usize = 64 << 10;
const COLD: usize = 256 << 20;
const WINDOW: usize = 256 << 10;
const RUNS: usize = 9;

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

/// Time `f` RUNS times (after one warm-up) and return the median MB/s.
fn measure(bytes: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut v = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        f();
        v.push(mbps(bytes, t.elapsed().as_secs_f64()));
    }
    median(v)
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
fn stream_run_2t(src: Arc<Vec<u8>>, dst: &mut [u8], total: usize, hot: bool) {
    let sb = Arc::new(StreamBuf::new(0, WINDOW));
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
    println!(
        "Socket Buffer benchmark: median of {RUNS} runs, window {} KiB",
        WINDOW >> 10
    );
    println!("{:<58} {:>10} {:>8}", "case", "MB/s", "ratio");

    for (label, total, hot) in [
        ("cold: 256 MiB payload -> 256 MiB destination", COLD, false),
        ("hot: one 64 KiB chunk, reused (in cache)", COLD, true),
    ] {
        let base = measure(total, || memcpy_run(&src, &mut dst, total, hot));
        let sb = StreamBuf::new(0, WINDOW);
        let one = measure(total, || stream_run_1t(&sb, &src, &mut dst, total, hot));
        let two = measure(total, || {
            stream_run_2t(Arc::clone(&src), &mut dst, total, hot)
        });
        println!("{label}");
        println!("  {:<56} {:>10.0} {:>8}", "memcpy (baseline)", base, "1.00");
        println!(
            "  {:<56} {:>10.0} {:>8.2}",
            "StreamBuf in-order 64 KiB, one thread (insert, read)",
            one,
            one / base
        );
        println!(
            "  {:<56} {:>10.0} {:>8.2}",
            "StreamBuf in-order 64 KiB, producer + consumer threads",
            two,
            two / base
        );
    }

    let sb = StreamBuf::new(0, WINDOW);
    let total = COLD;
    let base = measure(total, || memcpy_run(&src, &mut dst, total, false));
    let rev = measure(total, || reversed_run(&sb, &src, &mut dst, total));
    println!("reversed order");
    println!(
        "  {:<56} {:>10.0} {:>8.2}",
        "StreamBuf reversed 1 KiB fragments, 256 KiB window",
        rev,
        rev / base
    );
}

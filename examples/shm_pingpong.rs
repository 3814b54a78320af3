//! 64-byte ping-pong between two processes over the shared-memory rings of
//! issue 15 (SHARED.md): the parent writes into one ring, the forked child
//! echoes into the other, each sleeping on the rings' shared futexes when
//! there is nothing to read (no spinning). Prints the mean round trip and
//! the CPU time of both processes per round trip, in netbench's key=value
//! form: `shm_rtt_us=... shm_cpu_us=...`.
//!
//! Usage: shm_pingpong [SECONDS] [SIZE]   (defaults 2 and 64)

use std::time::{Duration, Instant};

use userspacesock::backends::shm::ring::Ring;
use userspacesock::backends::shm::segment::{Dir, Segment};

fn cpu_us(who: i32) -> f64 {
    // SAFETY: all-zero is a valid rusage; getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::getrusage(who, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 * 1e6 + tv.tv_usec as f64;
    t(ru.ru_utime) + t(ru.ru_stime)
}

/// Reads exactly `buf.len()` bytes (or returns false at end-of-stream).
fn read_exact(r: &Ring<'_>, buf: &mut [u8]) -> bool {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..], 0, true) {
            Ok((_, 0)) => {
                if r.at_end().unwrap_or(true) {
                    return false;
                }
                let _ = r.wait_readable(None);
            }
            Ok((_, n)) => got += n,
            Err(_) => return false,
        }
    }
    true
}

fn write_all(r: &Ring<'_>, buf: &[u8]) {
    let mut done = 0;
    while done < buf.len() {
        match r.write(&buf[done..]) {
            Ok(0) => {
                let _ = r.wait_room(None);
            }
            Ok(n) => done += n,
            Err(_) => std::process::exit(3),
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let secs: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(2.0);
    let size: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(64);
    let seg = Segment::anonymous(1 << 16, 1 << 16).expect("segment");
    // SAFETY: the child only echoes through the rings, then _exits.
    let child = unsafe { libc::fork() };
    if child == 0 {
        let (inp, out) = (seg.ring(Dir::ToAcceptor), seg.ring(Dir::ToConnector));
        let mut buf = vec![0u8; size];
        while read_exact(&inp, &mut buf) {
            write_all(&out, &buf);
        }
        out.finish();
        // SAFETY: ends the child.
        unsafe { libc::_exit(0) };
    }
    let (out, inp) = (seg.ring(Dir::ToAcceptor), seg.ring(Dir::ToConnector));
    let mut msg = vec![0u8; size];
    let mut echo = vec![0u8; size];
    let mut round = |i: u64| {
        msg[..8].copy_from_slice(&i.to_le_bytes());
        write_all(&out, &msg);
        assert!(read_exact(&inp, &mut echo) && echo == msg, "echo differs");
    };
    let warm = Instant::now();
    let mut i = 0;
    while i < 2000 && warm.elapsed() < Duration::from_secs_f64(secs / 5.0) {
        round(i);
        i += 1;
    }
    let (c0, k0) = (cpu_us(libc::RUSAGE_SELF), Instant::now());
    let mut n = 0u64;
    while k0.elapsed() < Duration::from_secs_f64(secs) {
        round(n);
        n += 1;
    }
    let wall = k0.elapsed().as_secs_f64() * 1e6;
    let mine = cpu_us(libc::RUSAGE_SELF) - c0;
    out.finish();
    let mut st = 0;
    // SAFETY: our child.
    unsafe { libc::waitpid(child, &mut st, 0) };
    // The child's CPU over its whole life: it idles outside the interval,
    // so this slightly overstates its share.
    let child_cpu = cpu_us(libc::RUSAGE_CHILDREN);
    println!(
        "shm_rtt_us={:.2} shm_cpu_us={:.2} rounds={}",
        wall / n as f64,
        (mine + child_cpu) / n as f64,
        n
    );
}

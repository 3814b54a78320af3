//! 64-byte ping-pong between two processes over a shared-memory stream
//! connection of issue 15 (SHARED.md, `shm::conn`): the forked child
//! connects to the parent's listening anchor, the parent accepts, and the
//! parent's messages come back through the connection's two rings, each
//! end sleeping on the rings' shared futexes when there is nothing to read
//! (no spinning), looking at its anchor every tick as every blocked call
//! does. Prints the mean round trip and
//! the CPU time of both processes per round trip, in netbench's key=value
//! form: `shm_rtt_us=... shm_cpu_us=...`.
//!
//! Usage: shm_pingpong [SECONDS] [SIZE]   (defaults 2 and 64)

use std::time::{Duration, Instant};

use userspacesock::backends::shm::conn::{Block, Conn, Listener};

fn cpu_us(who: i32) -> f64 {
    // SAFETY: all-zero is a valid rusage; getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::getrusage(who, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 * 1e6 + tv.tv_usec as f64;
    t(ru.ru_utime) + t(ru.ru_stime)
}

/// Reads exactly `buf.len()` bytes (or returns false at end-of-stream or
/// on an error).
fn read_exact(c: &Conn, buf: &mut [u8]) -> bool {
    let mut got = 0;
    while got < buf.len() {
        match c.recv(&mut buf[got..], false, Block::Forever) {
            Ok(0) | Err(_) => return false,
            Ok(n) => got += n,
        }
    }
    true
}

fn write_all(c: &Conn, buf: &[u8]) {
    if c.send(buf, Block::Forever) != Ok(buf.len()) {
        std::process::exit(3);
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let secs: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(2.0);
    let size: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(64);
    let dir = std::env::temp_dir().join(format!("usock-shm-pingpong-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch directory");
    let path = dir.join("listener");
    let listener = Listener::bind(&path, 4).expect("listening anchor");
    // SAFETY: the child only connects and echoes, then _exits.
    let child = unsafe { libc::fork() };
    if child == 0 {
        let c = Conn::connect(&path, 1 << 16, 1 << 16, b"", false, [b"", b""]).expect("connect");
        let mut buf = vec![0u8; size];
        while read_exact(&c, &mut buf) {
            write_all(&c, &buf);
        }
        c.shutdown_write();
        // SAFETY: ends the child.
        unsafe { libc::_exit(0) };
    }
    let (conn, _) = listener.accept(&mut [0u8; 8]).expect("accept");
    drop(listener);
    let _ = std::fs::remove_dir_all(&dir);
    let mut msg = vec![0u8; size];
    let mut echo = vec![0u8; size];
    let mut round = |i: u64| {
        msg[..8].copy_from_slice(&i.to_le_bytes());
        write_all(&conn, &msg);
        assert!(read_exact(&conn, &mut echo) && echo == msg, "echo differs");
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
    conn.shutdown_write();
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

//! Stream connections over shared memory between processes (SHARED.md,
//! issue 15): a listener whose accept queue the kernel shares between the
//! processes that hold it, ends that two processes hold after fork (each
//! byte read once, the connection lasting until the last holder closes),
//! Linux's end-of-connection rules (FIN, reset on a close that leaves bytes
//! unread, a killed peer), deadlines and doorbells.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use userspacesock::backends::shm::conn::{Block, Conn, Listener, Side};
use userspacesock::platform::anchor_ipc;

mod common;
use common::{fork_child, wait_child};

/// One case at a time: a fork child inherits every fd of the process, and
/// a child of one case holding another case's anchors would delay the
/// hangup that case waits for.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A fresh directory for a case's listening anchors.
fn dir(case: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("usock-shm-conn-{}-{case}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

const RING: usize = 64 << 10;

/// A connected pair in this process: (connector, acceptor).
fn pair(case: &str) -> (Conn, Conn) {
    let path = dir(case).join("l");
    let l = Listener::bind(&path, 4).unwrap();
    let c = Conn::connect(&path, RING, RING, b"hi", false, [b"", b""]).unwrap();
    let mut body = [0u8; 8];
    let (a, n) = l.accept(&mut body).unwrap();
    assert_eq!(&body[..n], b"hi");
    assert_eq!((c.side(), a.side()), (Side::Connector, Side::Acceptor));
    (c, a)
}

fn soon() -> Block {
    Block::Until(Instant::now() + Duration::from_secs(10))
}

/// Reads until end-of-stream, failing on any error or a stall.
fn read_all(c: &Conn, out: &mut Vec<u8>) {
    let mut buf = vec![0u8; 7000];
    loop {
        match c.recv(&mut buf, false, soon()) {
            Ok(0) => return,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => panic!("recv failed: errno {e} after {} bytes", out.len()),
        }
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

#[test]
fn a_stream_crosses_processes_byte_for_byte() {
    let _serial = serial();
    let path = dir("stream").join("l");
    let l = Listener::bind(&path, 4).unwrap();
    let data = pattern(8 << 20);
    let child = fork_child(|| {
        let Ok(c) = Conn::connect(&path, RING, RING, b"from the child", false, [b"", b""]) else {
            return 1;
        };
        // 8 MiB through a 64 KiB ring, in uneven pieces.
        let mut at = 0;
        while at < data.len() {
            let end = (at + 100_003).min(data.len());
            match c.send(&data[at..end], soon()) {
                Ok(n) => at += n,
                Err(_) => return 2,
            }
        }
        c.shutdown_write();
        // The parent answers with the byte count it read.
        let mut got = [0u8; 8];
        let mut n = 0;
        while n < 8 {
            match c.recv(&mut got[n..], false, soon()) {
                Ok(0) | Err(_) => return 3,
                Ok(k) => n += k,
            }
        }
        i32::from(u64::from_le_bytes(got) != data.len() as u64) * 4
    });
    let mut body = [0u8; 32];
    let (a, n) = l.accept(&mut body).unwrap();
    assert_eq!(&body[..n], b"from the child");
    let mut got = Vec::new();
    read_all(&a, &mut got);
    assert_eq!(got.len(), data.len());
    assert!(got == data, "the bytes differ from what was sent");
    assert_eq!(
        a.send(&(got.len() as u64).to_le_bytes(), soon()).unwrap(),
        8
    );
    assert_eq!(wait_child(child), 0);
}

#[test]
fn a_shared_listener_gives_each_connection_to_exactly_one_process() {
    let _serial = serial();
    let path = dir("shared-listener").join("l");
    let l = Listener::bind(&path, 64).unwrap();
    // Two workers accept on the listener they inherited, as a pre-fork
    // server's workers do; each answers with its pid and the number sent.
    let worker = || {
        fork_child(|| loop {
            let mut body = [0u8; 4];
            let Ok((c, _)) = l.accept(&mut body) else {
                return 1;
            };
            let mut id = [0u8; 4];
            if c.recv(&mut id, false, soon()) != Ok(4) {
                return 2;
            }
            let mut reply = std::process::id().to_le_bytes().to_vec();
            reply.extend_from_slice(&id);
            if c.send(&reply, soon()) != Ok(8) {
                return 3;
            }
        })
    };
    let workers = [worker(), worker()];
    let mut seen = std::collections::HashMap::new();
    for i in 0u32..40 {
        let c = Conn::connect(&path, 4096, 4096, b"", false, [b"", b""]).unwrap();
        assert_eq!(c.send(&i.to_le_bytes(), soon()), Ok(4));
        let mut reply = [0u8; 8];
        let mut n = 0;
        while n < 8 {
            let k = c.recv(&mut reply[n..], false, soon()).unwrap();
            assert!(k > 0, "connection {i}: end-of-stream before the answer");
            n += k;
        }
        let pid = u32::from_le_bytes(reply[..4].try_into().unwrap()) as i32;
        assert_eq!(u32::from_le_bytes(reply[4..].try_into().unwrap()), i);
        assert!(workers.contains(&pid), "answered by {pid}, not a worker");
        *seen.entry(pid).or_insert(0) += 1;
    }
    assert_eq!(seen.values().sum::<i32>(), 40);
    for w in workers {
        // SAFETY: kills our own child.
        unsafe { libc::kill(w, libc::SIGKILL) };
        wait_child(w);
    }
}

#[test]
fn two_holders_of_one_end_read_each_byte_once() {
    let _serial = serial();
    let (c, a) = pair("two-readers");
    const N: u64 = 200_000;
    // Which numbers the child read, summed and counted, come back on a
    // kernel pair the child inherits.
    let (report_r, report_w) = anchor_ipc::seqpacket_pair().unwrap();
    let read_numbers = |a: &Conn| {
        let (mut count, mut sum, mut last) = (0u64, 0u64, 0u64);
        let mut b = [0u8; 8];
        loop {
            match a.recv(&mut b, false, soon()) {
                Ok(0) => return Ok((count, sum)),
                // Every send is 8 bytes into a ring of a multiple of 8, so
                // a recv of 8 takes one number whole.
                Ok(8) => {
                    let v = u64::from_le_bytes(b);
                    if v <= last {
                        return Err("a reader saw the numbers out of order");
                    }
                    last = v;
                    count += 1;
                    sum += v;
                }
                Ok(_) => return Err("a number was split"),
                Err(_) => return Err("recv failed"),
            }
        }
    };
    let reader = fork_child(|| {
        let Ok((count, sum)) = read_numbers(&a) else {
            return 1;
        };
        let mut msg = count.to_le_bytes().to_vec();
        msg.extend_from_slice(&sum.to_le_bytes());
        i32::from(anchor_ipc::send_with_fds(report_w, &msg, &[]).is_err()) * 2
    });
    let writer = fork_child(|| {
        for v in 1..=N {
            if c.send(&v.to_le_bytes(), soon()) != Ok(8) {
                return 1;
            }
        }
        c.shutdown_write();
        0
    });
    // The parent's copy of the connecting end must not keep it alive.
    drop(c);
    let (count, sum) = read_numbers(&a).unwrap();
    assert_eq!(wait_child(writer), 0);
    assert_eq!(wait_child(reader), 0);
    let mut msg = [0u8; 16];
    let (n, _) = anchor_ipc::recv_with_fds(report_r, &mut msg, &mut [], 0).unwrap();
    assert_eq!(n, 16);
    let theirs = (
        u64::from_le_bytes(msg[..8].try_into().unwrap()),
        u64::from_le_bytes(msg[8..].try_into().unwrap()),
    );
    assert_eq!(count + theirs.0, N, "each number read once");
    assert_eq!(sum + theirs.1, N * (N + 1) / 2, "each number read once");
}

#[test]
fn the_end_lasts_until_its_last_holder_closes() {
    let _serial = serial();
    let (c, a) = pair("last-holder");
    let (go_r, go_w) = anchor_ipc::seqpacket_pair().unwrap();
    let child = fork_child(|| {
        let mut b = [0u8; 1];
        if anchor_ipc::recv_with_fds(go_r, &mut b, &mut [], 0).is_err() {
            return 1;
        }
        let mut q = [0u8; 5];
        if a.recv(&mut q, false, soon()) != Ok(5) || &q != b"ping?" {
            return 2;
        }
        i32::from(a.send(b"pong!", soon()) != Ok(5)) * 3
    });
    // The parent's hold ends; the child's keeps the end open.
    drop(a);
    std::thread::sleep(Duration::from_millis(50));
    let r = c.readiness();
    assert!(!r.hup && !r.rdhup && r.writable, "{r:?}");
    assert_eq!(c.send(b"ping?", soon()), Ok(5));
    anchor_ipc::send_with_fds(go_w, b"g", &[]).unwrap();
    let mut reply = [0u8; 5];
    assert_eq!(c.recv(&mut reply, false, soon()), Ok(5));
    assert_eq!(&reply, b"pong!");
    assert_eq!(wait_child(child), 0);
    // The last holder left having read everything: end-of-stream, no reset.
    assert_eq!(c.recv(&mut reply, false, soon()), Ok(0));
    let r = c.readiness();
    // As Linux after the peer's FIN: end-of-stream, not hung up.
    assert!(r.readable && !r.hup && r.rdhup && !r.err, "{r:?}");
    // As Linux (t_connlife's write_to_a_closed_peer): the first send after
    // the peer's close goes, to nobody; the reset it draws is pending
    // (POLLERR) and fails the next send with EPIPE.
    assert_eq!(c.send(b"x", Block::Never), Ok(1));
    let r = c.readiness();
    assert!(r.err && r.hup, "{r:?}");
    assert_eq!(c.send(b"x", Block::Never), Err(libc::EPIPE));
    c.shutdown_write();
    assert!(c.readiness().hup, "both directions over");
}

#[test]
fn a_close_that_leaves_bytes_unread_is_a_reset_after_the_data() {
    let _serial = serial();
    let (c, a) = pair("reset");
    assert_eq!(c.send(b"never read", soon()), Ok(10));
    assert_eq!(a.send(b"last", soon()), Ok(4));
    drop(a);
    let mut b = [0u8; 16];
    assert_eq!(c.recv(&mut b, false, soon()), Ok(4));
    assert!(c.readiness().err);
    assert_eq!(c.recv(&mut b, false, soon()), Err(libc::ECONNRESET));
    assert_eq!(c.recv(&mut b, false, soon()), Ok(0));
    assert_eq!(c.send(b"x", soon()), Err(libc::EPIPE));
}

#[test]
fn shutdown_write_ends_one_direction_after_its_bytes() {
    let _serial = serial();
    let (c, a) = pair("shutdown");
    assert_eq!(c.send(b"data", soon()), Ok(4));
    c.shutdown_write();
    assert_eq!(c.send(b"more", soon()), Err(libc::EPIPE));
    let r = a.readiness();
    assert!(r.readable && r.rdhup && !r.hup, "{r:?}");
    let mut b = [0u8; 8];
    assert_eq!(a.recv(&mut b, true, soon()), Ok(4), "peek");
    assert_eq!(a.queued(), Ok((4, 0)));
    assert_eq!(a.recv(&mut b, false, soon()), Ok(4));
    assert_eq!(&b[..4], b"data");
    assert_eq!(a.recv(&mut b, false, soon()), Ok(0));
    // The other direction still works.
    assert_eq!(a.send(b"back", soon()), Ok(4));
    assert_eq!(c.queued(), Ok((4, 0)));
    assert_eq!(c.recv(&mut b, false, soon()), Ok(4));
    a.shutdown_write();
    assert!(c.readiness().hup, "both directions over");
}

#[test]
fn calls_that_may_not_wait_say_eagain() {
    let _serial = serial();
    let (c, a) = pair("eagain");
    let mut b = [0u8; 8];
    assert_eq!(a.recv(&mut b, false, Block::Never), Err(libc::EAGAIN));
    let t = Instant::now();
    let until = t + Duration::from_millis(50);
    assert_eq!(
        a.recv(&mut b, false, Block::Until(until)),
        Err(libc::EAGAIN)
    );
    assert!(Instant::now() >= until, "returned before its deadline");
    // A full ring takes what fits, then nothing.
    let big = vec![1u8; 1 << 20];
    assert_eq!(c.send(&big, Block::Never), Ok(RING));
    assert!(!c.readiness().writable);
    assert_eq!(c.send(&big, Block::Never), Err(libc::EAGAIN));
    let until = Instant::now() + Duration::from_millis(20);
    assert_eq!(c.send(&big, Block::Until(until)), Err(libc::EAGAIN));
    assert_eq!(c.queued(), Ok((0, RING as u64)));
}

#[test]
fn a_killed_peer_ends_a_blocked_recv() {
    let _serial = serial();
    let path = dir("killed").join("l");
    let l = Listener::bind(&path, 4).unwrap();
    let child = fork_child(|| {
        let Ok(_c) = Conn::connect(&path, RING, RING, b"", false, [b"", b""]) else {
            return 1;
        };
        std::thread::sleep(Duration::from_millis(200));
        // SAFETY: the child kills itself, holding its end.
        unsafe { libc::raise(libc::SIGKILL) };
        2
    });
    let mut body = [0u8; 4];
    let (a, _) = l.accept(&mut body).unwrap();
    let mut b = [0u8; 8];
    // It sent nothing and read all it was sent (nothing): end-of-stream.
    assert_eq!(a.recv(&mut b, false, soon()), Ok(0));
    let st = wait_child(child);
    assert!(libc::WIFSIGNALED(st) && libc::WTERMSIG(st) == libc::SIGKILL);
}

#[test]
fn a_doorbell_wakes_a_poller_only_when_asked_for() {
    let _serial = serial();
    let (c, a) = pair("doorbell");
    // Not asked for: a send rings nothing.
    assert_eq!(c.send(b"1", soon()), Ok(1));
    assert!(
        !anchor_ipc::anchor_poll(a.anchor(), true, 0)
            .unwrap()
            .readable
    );
    let mut b = [0u8; 8];
    assert_eq!(a.recv(&mut b, false, soon()), Ok(1));
    // Asked for, then a send from another process.
    a.arm(true, false);
    assert!(!a.readiness().readable);
    let child = fork_child(|| {
        std::thread::sleep(Duration::from_millis(30));
        i32::from(c.send(b"2", soon()) != Ok(1))
    });
    let s = anchor_ipc::anchor_poll(a.anchor(), true, 10_000).unwrap();
    assert!(s.readable && !s.hung_up, "{s:?}");
    assert!(a.drain_bells());
    assert!(a.readiness().readable);
    assert_eq!(wait_child(child), 0);
    // One doorbell per request.
    assert_eq!(a.recv(&mut b, false, soon()), Ok(1));
    assert_eq!(c.send(b"3", soon()), Ok(1));
    assert!(
        !anchor_ipc::anchor_poll(a.anchor(), true, 0)
            .unwrap()
            .readable
    );
}

#[test]
fn connecting_where_nobody_listens_is_the_kernels_error() {
    let _serial = serial();
    let d = dir("refused");
    let missing = Conn::connect(&d.join("none"), RING, RING, b"", false, [b"", b""]);
    assert_eq!(missing.err(), Some(libc::ENOENT));
    let path = d.join("l");
    drop(Listener::bind(&path, 4).unwrap());
    let refused = Conn::connect(&path, RING, RING, b"", false, [b"", b""]);
    assert_eq!(refused.err(), Some(libc::ECONNREFUSED));
    assert_eq!(
        Listener::bind(&path, 4).err(),
        Some(libc::EADDRINUSE),
        "the file stays, as a socket file does"
    );
    let bad = Conn::connect(&path, 100, RING, b"", false, [b"", b""]);
    assert_eq!(bad.err(), Some(libc::EINVAL));
}

/// A tiny deterministic generator for the kill points (the test must be
/// repeatable: the same points every run).
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[test]
fn a_peer_killed_at_any_point_of_a_transfer_never_hangs_the_other_end() {
    let _serial = serial();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for round in 0..40 {
        let (c, a) = pair(&format!("kill-{round}"));
        // Odd rounds kill the writer, even ones the reader; each after a
        // different time, so the kill lands inside a copy, a wait, a lock.
        let kill_writer = round % 2 == 1;
        let after = Duration::from_micros(next(&mut seed) % 20_000);
        let child = if kill_writer {
            fork_child(|| {
                let chunk = [7u8; 3000];
                loop {
                    if c.send(&chunk, soon()).is_err() {
                        return 1;
                    }
                }
            })
        } else {
            fork_child(|| {
                let mut b = [0u8; 2500];
                loop {
                    if a.recv(&mut b, false, soon()).is_err() {
                        return 1;
                    }
                }
            })
        };
        // This process keeps only the other end.
        let (mine, theirs) = if kill_writer { (a, c) } else { (c, a) };
        drop(theirs);
        let until = Instant::now() + after;
        let mut b = [0u8; 4096];
        while Instant::now() < until {
            if kill_writer {
                let _ = mine.recv(&mut b, false, Block::Never);
            } else {
                let _ = mine.send(&b, Block::Never);
            }
        }
        // SAFETY: kills our own child.
        unsafe { libc::kill(child, libc::SIGKILL) };
        wait_child(child);
        // The other end finishes: what was published is read, then
        // end-of-stream or a reset; a sender gets EPIPE. Never a hang.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = if kill_writer {
                mine.recv(&mut b, false, Block::Until(deadline))
            } else {
                mine.send(&b, Block::Until(deadline))
            };
            match r {
                Ok(n) if n > 0 => continue,
                Ok(0) | Err(libc::ECONNRESET) | Err(libc::EPIPE) => break,
                other => panic!("round {round}: {other:?} after the peer was killed"),
            }
        }
        let r = mine.readiness();
        assert!(r.rdhup, "round {round}: {r:?}");
    }
}

#[test]
fn a_reader_killed_while_it_holds_the_lock_leaves_the_other_holder_reading() {
    let _serial = serial();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for round in 0..30 {
        let (c, a) = pair(&format!("lock-{round}"));
        // A second holder of the accepting end reads as fast as it can,
        // so the kill often lands inside its reader lock.
        let child = fork_child(|| {
            let mut b = [0u8; 1];
            loop {
                let _ = a.recv(&mut b, false, Block::Never);
            }
        });
        let until = Instant::now() + Duration::from_micros(next(&mut seed) % 10_000);
        while Instant::now() < until {
            let _ = c.send(&[1u8; 64], Block::Never);
        }
        // SAFETY: kills our own child.
        unsafe { libc::kill(child, libc::SIGKILL) };
        wait_child(child);
        // Whatever is left, then 100 kB more, all readable here.
        let mut b = vec![0u8; 1 << 16];
        while a.recv(&mut b, false, Block::Never).is_ok_and(|n| n > 0) {}
        let data = pattern(100_000);
        let mut got = Vec::new();
        let mut at = 0;
        let deadline = Instant::now() + Duration::from_secs(10);
        while got.len() < data.len() {
            assert!(
                Instant::now() < deadline,
                "round {round}: stalled at {}",
                got.len()
            );
            if at < data.len() {
                at += c.send(&data[at..], Block::Never).unwrap_or(0);
            }
            match a.recv(
                &mut b,
                false,
                Block::Until(Instant::now() + Duration::from_millis(50)),
            ) {
                Ok(n) => got.extend_from_slice(&b[..n]),
                Err(libc::EAGAIN) => {}
                Err(e) => panic!("round {round}: recv failed with {e}"),
            }
        }
        assert!(got == data, "round {round}: the bytes differ");
    }
}

#[test]
fn an_abort_is_a_reset_after_the_data_even_with_nothing_unread() {
    let _serial = serial();
    let (c, a) = pair("abort");
    assert_eq!(c.send(b"sent", soon()), Ok(4));
    // The peer read nothing of ours: a plain close would be end-of-stream.
    c.abort();
    drop(c);
    let mut b = [0u8; 8];
    assert_eq!(a.recv(&mut b, false, soon()), Ok(4));
    assert_eq!(a.recv(&mut b, false, soon()), Err(libc::ECONNRESET));
    assert_eq!(a.recv(&mut b, false, soon()), Ok(0));
    assert!(a.was_reset());
}

#[test]
fn a_stopped_listener_resets_what_it_had_queued_and_refuses_more() {
    let _serial = serial();
    let path = dir("stop").join("l");
    let l = Listener::bind(&path, 4).unwrap();
    let c = Conn::connect(&path, RING, RING, b"hi", false, [b"", b""]).unwrap();
    l.stop();
    let mut b = [0u8; 1];
    assert_eq!(c.recv(&mut b, false, soon()), Err(libc::ECONNRESET));
    assert!(
        Conn::connect(&path, RING, RING, b"hi", true, [b"", b""]).is_err(),
        "a stopped listener takes no connection"
    );
    assert!(
        anchor_ipc::anchor_poll(l.anchor(), true, 0)
            .unwrap()
            .hung_up
    );
}

#[test]
fn urgent_data_stops_a_read_at_the_mark_and_is_read_out_of_band_once() {
    let _serial = serial();
    let (c, a) = pair("urgent");
    assert_eq!(c.send(b"ab", soon()), Ok(2));
    assert_eq!(c.send_urgent(b"X", soon()), Ok(1));
    assert_eq!(c.send(b"cd", soon()), Ok(2));
    assert!(a.readiness().pri);
    assert_eq!(a.queued(), Ok((2, 0)), "FIONREAD counts up to the mark");
    let mut b = [0u8; 16];
    assert_eq!(a.recv(&mut b, false, soon()), Ok(2));
    assert_eq!(&b[..2], b"ab");
    assert!(a.at_mark());
    assert_eq!(a.recv_urgent(true), Ok(b'X'));
    assert_eq!(a.recv_urgent(false), Ok(b'X'));
    assert_eq!(a.recv_urgent(false), Err(libc::EINVAL));
    assert!(!a.readiness().pri);
    // Out of line, the urgent byte is skipped in the stream.
    assert_eq!(a.recv(&mut b, false, soon()), Ok(2));
    assert_eq!(&b[..2], b"cd");
    assert!(!a.at_mark());
}

#[test]
fn urgent_data_in_line_stays_in_the_stream() {
    let _serial = serial();
    let (c, a) = pair("urgent-inline");
    a.set_oob_inline(true);
    assert_eq!(c.send(b"ab", soon()), Ok(2));
    assert_eq!(c.send_urgent(b"X", soon()), Ok(1));
    assert_eq!(c.send(b"cd", soon()), Ok(2));
    let mut b = [0u8; 16];
    assert_eq!(a.recv(&mut b, false, soon()), Ok(2));
    assert!(a.at_mark());
    assert_eq!(a.recv_urgent(false), Err(libc::EINVAL));
    let mut got = Vec::new();
    while got.len() < 3 {
        let n = a.recv(&mut b, false, soon()).unwrap();
        got.extend_from_slice(&b[..n]);
    }
    assert_eq!(got, b"Xcd");
}

#[test]
fn shutdown_read_wakes_a_blocked_reader_with_end_of_stream() {
    let _serial = serial();
    let (c, a) = pair("shut-rd");
    assert_eq!(c.send(b"here", soon()), Ok(4));
    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut b = [0u8; 8];
            let first = a.recv(&mut b, false, Block::Forever);
            (first, a.recv(&mut b, false, Block::Forever))
        });
        std::thread::sleep(Duration::from_millis(50));
        a.shutdown_read();
        // What was there comes first, then end-of-stream, never a hang.
        assert_eq!(reader.join().unwrap(), (Ok(4), Ok(0)));
    });
    assert!(a.readiness().readable && a.readiness().rdhup);
}

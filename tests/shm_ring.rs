//! The shared-memory ring between processes (SHARED.md, issue 15's first
//! step): bytes cross a fork intact and in order with both sides sleeping
//! on shared futexes; two readers of one end after a fork get each byte
//! once; a lock holder killed with SIGKILL does not stop the others; bytes
//! a killed writer copied but did not publish are never read.
//!
//! Each case forks; the child does only ring operations (atomics, copies,
//! futex calls) and leaves with `_exit`.

use std::time::{Duration, Instant};

use userspacesock::backends::shm::ring::Ring;
use userspacesock::backends::shm::segment::{Dir, Segment};

fn pattern(off: u64) -> u8 {
    (off.wrapping_mul(2654435761) >> 13) as u8
}

mod common;
use common::{fork_child, wait_child};

fn write_all(r: &Ring<'_>, start: u64, len: u64, chunk: usize) -> bool {
    let mut buf = vec![0u8; chunk];
    let mut off = start;
    let deadline = Instant::now() + Duration::from_secs(60);
    while off < start + len {
        let n = ((start + len - off) as usize).min(chunk);
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = pattern(off + i as u64);
        }
        let mut done = 0;
        while done < n {
            match r.write(&buf[done..n]) {
                Ok(0) => {
                    if !matches!(r.wait_room(Some(deadline), || false), Ok(true))
                        && Instant::now() > deadline
                    {
                        return false;
                    }
                }
                Ok(k) => done += k,
                Err(_) => return false,
            }
        }
        off += n as u64;
    }
    true
}

#[test]
fn a_stream_crosses_a_fork_through_a_small_ring_intact() {
    const TOTAL: u64 = 32 << 20;
    let seg = Segment::anonymous(1 << 16, 1 << 12).unwrap();
    let child = fork_child(|| {
        let r = seg.ring(Dir::ToAcceptor);
        let ok = write_all(&r, 0, TOTAL, 5000);
        r.finish();
        if ok {
            0
        } else {
            1
        }
    });
    let r = seg.ring(Dir::ToAcceptor);
    let mut buf = vec![0u8; 7000];
    let mut got = 0u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (at, n) = r.read(&mut buf, 0, true).unwrap();
        if n == 0 {
            if r.at_end().unwrap() {
                break;
            }
            r.wait_readable(Some(deadline), || false).unwrap();
            assert!(Instant::now() < deadline, "stalled at {got} of {TOTAL}");
            continue;
        }
        assert_eq!(at, got);
        for (i, &b) in buf[..n].iter().enumerate() {
            assert_eq!(b, pattern(got + i as u64), "byte {}", got + i as u64);
        }
        got += n as u64;
    }
    assert_eq!(got, TOTAL);
    assert_eq!(wait_child(child), 0);
}

#[test]
fn two_readers_after_a_fork_get_each_byte_once() {
    const TOTAL: u64 = 8 << 20;
    let seg = Segment::anonymous(1 << 14, 1 << 12).unwrap();
    // The child's count comes back through the other ring.
    let read_share = |seg: &Segment| -> u64 {
        let r = seg.ring(Dir::ToAcceptor);
        let lock = r.reader_lock();
        let mut buf = [0u8; 3000];
        let mut mine = 0u64;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (at, n) = {
                let _g = lock.lock().expect("reader lock");
                r.read(&mut buf, 0, true).expect("ring intact")
            };
            if n == 0 {
                if r.at_end().unwrap() {
                    return mine;
                }
                r.wait_readable(Some(Instant::now() + Duration::from_millis(50)), || false)
                    .unwrap();
                assert!(Instant::now() < deadline);
                continue;
            }
            for (i, &b) in buf[..n].iter().enumerate() {
                assert_eq!(b, pattern(at + i as u64));
            }
            mine += n as u64;
        }
    };
    let child = fork_child(|| {
        let mine = read_share(&seg);
        let back = seg.ring(Dir::ToConnector);
        i32::from(back.write(&mine.to_le_bytes()) != Ok(8))
    });
    std::thread::scope(|s| {
        s.spawn(|| {
            let r = seg.ring(Dir::ToAcceptor);
            assert!(write_all(&r, 0, TOTAL, 1000));
            r.finish();
        });
        let mine = read_share(&seg);
        assert_eq!(wait_child(child), 0);
        let mut b = [0u8; 8];
        assert_eq!(
            seg.ring(Dir::ToConnector).read(&mut b, 0, true).unwrap().1,
            8
        );
        let theirs = u64::from_le_bytes(b);
        assert_eq!(mine + theirs, TOTAL, "parent {mine} + child {theirs}");
        assert!(
            mine > 0 && theirs > 0,
            "both readers read: parent {mine}, child {theirs}"
        );
    });
}

#[test]
fn a_lock_whose_holder_was_killed_is_taken_over() {
    let seg = Segment::anonymous(64, 64).unwrap();
    let r = seg.ring(Dir::ToAcceptor);
    let child = fork_child(|| {
        let r = seg.ring(Dir::ToAcceptor);
        let lock = r.writer_lock();
        std::mem::forget(lock.lock().expect("free lock"));
        // SAFETY: kills this (child) process while it holds the lock.
        unsafe { libc::raise(libc::SIGKILL) };
        1
    });
    let st = wait_child(child);
    assert!(libc::WIFSIGNALED(st) && libc::WTERMSIG(st) == libc::SIGKILL);
    assert!(
        r.writer_lock().is_held(),
        "the dead child's id is in the word"
    );
    let t = Instant::now();
    let lock = r.writer_lock();
    let g = lock.lock().expect("taken over");
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(r.write(b"after").unwrap(), 5);
    drop(g);
    assert!(!r.writer_lock().is_held());
}

#[test]
fn bytes_a_killed_writer_did_not_publish_are_never_read() {
    let seg = Segment::anonymous(64, 64).unwrap();
    let child = fork_child(|| {
        let r = seg.ring(Dir::ToAcceptor);
        if r.write(b"published") != Ok(9) {
            return 1;
        }
        // What a writer killed in the middle of its copy leaves: bytes in
        // the free space, the tail not moved.
        let data = userspacesock::backends::shm::segment::DATA;
        seg.mem().write_bytes(data + 9, b"torn");
        // SAFETY: kills this (child) process.
        unsafe { libc::raise(libc::SIGKILL) };
        1
    });
    wait_child(child);
    let r = seg.ring(Dir::ToAcceptor);
    let mut out = [0u8; 64];
    let (_, n) = r.read(&mut out, 0, true).unwrap();
    assert_eq!(&out[..n], b"published");
    assert_eq!(r.write(b"next").unwrap(), 4);
    let (_, n) = r.read(&mut out, 0, true).unwrap();
    assert_eq!(&out[..n], b"next");
}

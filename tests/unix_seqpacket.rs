//! AF_UNIX SOCK_SEQPACKET is the library's own (linked, AF_UNIX in user
//! space): socket() and socketpair() give user-space sockets, not kernel
//! ones handed through (a kernel socket's fd links to `socket:[...]`, the
//! library's to its own wait object), and their records keep their
//! boundaries under load: senders on several threads, records from empty
//! to the largest Linux allows by default, a reader that takes them one
//! by one (which also shows a sender waiting for room for a whole record
//! is woken as the reader drains).
#![cfg(feature = "std")]

use libc::{c_int, c_void};
use userspacesock::api::posix::*;

fn kernel_socket_link(fd: c_int) -> bool {
    std::fs::read_link(format!("/proc/self/fd/{fd}"))
        .map(|l| l.to_string_lossy().starts_with("socket:"))
        .unwrap_or(false)
}

fn pair() -> (c_int, c_int) {
    let mut sv = [-1; 2];
    // SAFETY: `sv` holds two ints.
    let r = unsafe { usock_socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET, 0, sv.as_mut_ptr()) };
    assert_eq!(r, 0, "socketpair: {}", std::io::Error::last_os_error());
    (sv[0], sv[1])
}

#[test]
fn seqpacket_sockets_are_the_librarys() {
    // SAFETY: integer arguments.
    let s = unsafe { usock_socket(libc::AF_UNIX, libc::SOCK_SEQPACKET, 0) };
    assert!(s >= 0);
    assert_eq!(usock_is_userspace(s), 1, "socket(): a library socket");
    assert!(!kernel_socket_link(s), "socket(): not a kernel socket");
    let (a, b) = pair();
    for fd in [a, b] {
        assert_eq!(usock_is_userspace(fd), 1, "socketpair(): a library socket");
        assert!(!kernel_socket_link(fd), "socketpair(): not a kernel socket");
    }
    // The check itself tells a kernel socket apart.
    // SAFETY: integer arguments.
    let k = unsafe { libc::syscall(libc::SYS_socket, libc::AF_UNIX, libc::SOCK_SEQPACKET, 0) };
    assert!(k >= 0 && kernel_socket_link(k as c_int));
    // SAFETY: our fds.
    unsafe {
        libc::syscall(libc::SYS_close, k);
        usock_close(s);
        usock_close(a);
        usock_close(b);
    }
}

/// Record `i` of sender `t`: its length (0 to 212960, sndbuf less 32 by
/// default) and its bytes, which name it.
fn record(t: usize, i: usize) -> Vec<u8> {
    let len = match i % 5 {
        0 => 0,
        1 => 1,
        2 => 100_000,
        3 => 212_960,
        _ => 7_000 + i,
    };
    let mut v = vec![(t * 64 + i % 64) as u8; len];
    if len >= 4 {
        v[..2].copy_from_slice(&(t as u16).to_be_bytes());
        v[2..4].copy_from_slice(&(i as u16).to_be_bytes());
    }
    v
}

#[test]
fn records_keep_their_boundaries_under_load() {
    const THREADS: usize = 3;
    const EACH: usize = 40;
    let (a, b) = pair();
    let senders: Vec<_> = (0..THREADS)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..EACH {
                    let r = record(t, i);
                    // SAFETY: `r` is live for its length.
                    let n = unsafe { usock_send(a, r.as_ptr() as *const c_void, r.len(), 0) };
                    assert_eq!(n, r.len() as isize, "{}", std::io::Error::last_os_error());
                }
            })
        })
        .collect();
    // Each sender's named records in its order; the empty ones counted.
    let mut last: [Option<usize>; THREADS] = [None; THREADS];
    let mut buf = vec![0u8; 300_000];
    let mut empty = 0;
    for _ in 0..THREADS * EACH {
        // SAFETY: `buf` is live for its length.
        let n = unsafe { usock_recv(b, buf.as_mut_ptr() as *mut c_void, buf.len(), 0) };
        assert!(n >= 0, "{}", std::io::Error::last_os_error());
        let got = &buf[..n as usize];
        let (t, i) = match got.len() {
            0 => {
                empty += 1;
                continue;
            }
            1..=3 => (got[0] as usize / 64, got[0] as usize % 64),
            _ => (
                u16::from_be_bytes([got[0], got[1]]) as usize,
                u16::from_be_bytes([got[2], got[3]]) as usize,
            ),
        };
        assert!(
            last[t].map_or(true, |l| l < i),
            "sender {t}'s records in order"
        );
        assert!(got == record(t, i), "sender {t}'s record {i} whole");
        last[t] = Some(i);
    }
    assert_eq!(empty, THREADS * EACH / 5, "every empty record");
    for s in senders {
        s.join().unwrap();
    }
    // SAFETY: our fds.
    unsafe {
        usock_close(a);
        usock_close(b);
    }
}

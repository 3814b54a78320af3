//! Receive-window autotuning: a stream whose reader keeps up with a bulk
//! sender grows its receive buffer, and SO_RCVBUF reports the growth; once
//! SO_RCVBUF is set the size is the one set (growth stops, and a later
//! request reads back exactly as on Linux). Those run on kernel sockets and
//! on the library's and are compared (`common::dual`). A reader that does
//! not keep up does not grow it: the library's own policy (Linux grows by
//! what is read per round trip), checked on the library alone.
#![cfg(feature = "std")]

use std::thread;
use std::time::Duration;

use libc::{AF_INET, SOCK_STREAM, SOL_SOCKET, SO_RCVBUF};

mod common;
use common::dual::{compare, Addr, Kernel, Lib, Sys, Trace};

fn rcvbuf<S: Sys>(fd: i32) -> i32 {
    S::get_int(fd, SOL_SOCKET, SO_RCVBUF).unwrap()
}

/// A connected pair over 127.0.0.1: (client, accepted).
fn pair<S: Sys>() -> (i32, i32) {
    let l = S::socket(AF_INET, SOCK_STREAM, 0).unwrap();
    S::bind(l, &Addr::v4(0)).unwrap();
    S::listen(l, 4).unwrap();
    let a = S::getsockname(l).unwrap();
    let c = S::socket(AF_INET, SOCK_STREAM, 0).unwrap();
    S::connect(c, &a).unwrap();
    let (s, _) = S::accept(l, 0).unwrap();
    S::close(l).unwrap();
    (c, s)
}

/// Sends `total` bytes from `c` while `s` reads them in reads of at most
/// `chunk` bytes, sleeping `pause` after each; returns `s`'s SO_RCVBUF at
/// the end.
fn transfer<S: Sys>(c: i32, s: i32, total: usize, chunk: usize, pause: Duration) -> i32 {
    let w = thread::spawn(move || {
        let buf = vec![7u8; 1 << 16];
        let mut sent = 0;
        while sent < total {
            let n = (total - sent).min(buf.len());
            sent += S::sendto(c, &buf[..n], libc::MSG_NOSIGNAL, None).expect("send");
        }
    });
    let mut buf = vec![0u8; chunk];
    let mut got = 0;
    while got < total {
        let (n, _) = S::recvfrom(s, &mut buf, 0).expect("recv");
        assert!(n > 0, "end of stream after {got} bytes");
        got += n;
        if !pause.is_zero() {
            thread::sleep(pause);
        }
    }
    w.join().unwrap();
    rcvbuf::<S>(s)
}

/// Bulk transfers of 32 MiB with a reader that keeps up, until SO_RCVBUF
/// grows past `start` (at most 1 GiB: growth depends on how fast this
/// machine moves data, so the test waits for it rather than guessing an
/// amount); returns SO_RCVBUF then.
fn until_grown<S: Sys>(c: i32, s: i32, start: i32) -> i32 {
    for _ in 0..32 {
        let now = transfer::<S>(c, s, 32 << 20, 1 << 17, Duration::ZERO);
        if now > start {
            return now;
        }
    }
    rcvbuf::<S>(s)
}

fn grows_unless_set<S: Sys>() -> Trace {
    let mut t = Trace::new(S::NAME);
    let (c, s) = pair::<S>();
    let start = rcvbuf::<S>(s);
    let grown = until_grown::<S>(c, s, start);
    t.see("a reader that keeps up grows SO_RCVBUF", grown > start);
    if S::NAME == Lib::NAME {
        assert!(
            grown as usize <= userspacesock::config::STREAM_RCVBUF_MAX,
            "{grown}"
        );
    }
    // After autotuning a request sets the size, shrinking included, and
    // growth stops.
    for v in [5000, 0, 100_000] {
        S::set_int(s, SOL_SOCKET, SO_RCVBUF, v).unwrap();
        t.see(
            format!("after autotuning, SO_RCVBUF = {v} reads"),
            rcvbuf::<S>(s),
        );
    }
    let after = transfer::<S>(c, s, 16 << 20, 1 << 17, Duration::ZERO);
    t.see("and stays after another bulk transfer", after);
    for fd in [c, s] {
        S::close(fd).unwrap();
    }

    // Set before any data: never grows.
    let (c, s) = pair::<S>();
    S::set_int(s, SOL_SOCKET, SO_RCVBUF, 100_000).unwrap();
    t.see("SO_RCVBUF = 100000 reads", rcvbuf::<S>(s));
    let after = transfer::<S>(c, s, 64 << 20, 1 << 17, Duration::ZERO);
    t.see("after a 64 MiB bulk transfer", after);
    for fd in [c, s] {
        S::close(fd).unwrap();
    }
    t
}

#[test]
fn a_bulk_stream_grows_its_window_unless_so_rcvbuf_was_set() {
    compare(
        "a_bulk_stream_grows_its_window_unless_so_rcvbuf_was_set",
        grows_unless_set::<Kernel>,
        grows_unless_set::<Lib>,
    );
}

/// The library's own policy (`Socket::autotune`): the window doubles only
/// when a whole window was read within 2 ms of the previous whole window.
/// A reader that reads at most half the 256 KiB window at a time and
/// sleeps 2 ms after each read takes at least 4 ms per window, however
/// loaded the machine (a sleep is never shorter than asked, and load only
/// slows the reader more), so the outcome does not depend on timing luck.
#[test]
fn a_reader_slower_than_the_window_does_not_grow_it() {
    let (c, s) = pair::<Lib>();
    let before = rcvbuf::<Lib>(s);
    // Linux's default report for TCP: tcp_rmem's middle value (the window
    // itself is the library's STREAM_RCVBUF until it grows).
    let tcp_rmem = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_rmem").unwrap();
    let default: i32 = tcp_rmem.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert_eq!(before, default);
    let after = transfer::<Lib>(c, s, 8 << 20, 1 << 17, Duration::from_millis(2));
    assert_eq!(after, before, "slow reader");
    for fd in [c, s] {
        Lib::close(fd).unwrap();
    }
}

//! Receive-window autotuning: a stream whose reader keeps up with a bulk
//! sender grows its receive buffer (SO_RCVBUF reports it, as Linux's does
//! after autotuning); one whose SO_RCVBUF was set keeps that size; a reader
//! that does not keep up does not grow it.
#![cfg(feature = "std")]

use std::thread;
use std::time::Duration;

use libc::{c_void, sockaddr, sockaddr_in, socklen_t};
use userspacesock::api::posix::*;

fn rcvbuf(fd: i32) -> i32 {
    let mut v: i32 = 0;
    let mut l = 4 as socklen_t;
    // SAFETY: getsockopt into a live int.
    let r = unsafe {
        usock_getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &mut v as *mut i32 as *mut c_void,
            &mut l,
        )
    };
    assert_eq!(r, 0);
    v
}

/// A connected pair over the default (loopback) backend: (client, accepted).
fn pair() -> (i32, i32) {
    // SAFETY: plain socket calls on values this function owns.
    unsafe {
        let l = usock_socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        let mut a: sockaddr_in = std::mem::zeroed();
        a.sin_family = libc::AF_INET as u16;
        a.sin_addr.s_addr = u32::from_be_bytes([127, 0, 0, 1]).to_be();
        let len = std::mem::size_of::<sockaddr_in>() as socklen_t;
        assert_eq!(usock_bind(l, &a as *const _ as *const sockaddr, len), 0);
        assert_eq!(usock_listen(l, 4), 0);
        let mut n = len;
        assert_eq!(
            usock_getsockname(l, &mut a as *mut _ as *mut sockaddr, &mut n),
            0
        );
        let c = usock_socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert_eq!(usock_connect(c, &a as *const _ as *const sockaddr, len), 0);
        let s = usock_accept(l, std::ptr::null_mut(), std::ptr::null_mut());
        assert!(s >= 0);
        usock_close(l);
        (c, s)
    }
}

/// Sends `total` bytes from `c` while `s` reads them (sleeping `pause`
/// between reads); returns `s`'s SO_RCVBUF at the end.
fn transfer(c: i32, s: i32, total: usize, pause: Duration) -> i32 {
    let w = thread::spawn(move || {
        let buf = vec![7u8; 1 << 16];
        let mut sent = 0;
        while sent < total {
            let n = (total - sent).min(buf.len());
            // SAFETY: sends from a live buffer.
            let r = unsafe { usock_send(c, buf.as_ptr() as *const c_void, n, 0) };
            assert!(r > 0, "send");
            sent += r as usize;
        }
    });
    let mut buf = vec![0u8; 1 << 17];
    let mut got = 0;
    while got < total {
        // SAFETY: receives into a live buffer.
        let r = unsafe { usock_recv(s, buf.as_mut_ptr() as *mut c_void, buf.len(), 0) };
        assert!(r > 0, "recv");
        got += r as usize;
        if !pause.is_zero() {
            thread::sleep(pause);
        }
    }
    w.join().unwrap();
    rcvbuf(s)
}

#[test]
fn a_bulk_stream_grows_its_window_unless_so_rcvbuf_was_set() {
    let (c, s) = pair();
    let start = rcvbuf(s);
    let end = transfer(c, s, 256 << 20, Duration::ZERO);
    assert!(
        end > start,
        "SO_RCVBUF {start} -> {end}: the window did not grow"
    );
    assert!(
        end as usize <= userspacesock::config::STREAM_RCVBUF_MAX,
        "{end}"
    );

    let (c2, s2) = pair();
    let v: i32 = 100_000;
    // SAFETY: setsockopt from a live int.
    let r = unsafe {
        usock_setsockopt(
            s2,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &v as *const i32 as *const c_void,
            4,
        )
    };
    assert_eq!(r, 0);
    let set = rcvbuf(s2);
    assert_eq!(
        transfer(c2, s2, 64 << 20, Duration::ZERO),
        set,
        "SO_RCVBUF was set"
    );

    // A reader slower than the window: 2 ms a read of at most 128 KiB.
    let (c3, s3) = pair();
    let before = rcvbuf(s3);
    assert_eq!(
        transfer(c3, s3, 8 << 20, Duration::from_millis(2)),
        before,
        "slow reader"
    );
    for fd in [c, s, c2, s2, c3, s3] {
        // SAFETY: closing our own sockets.
        unsafe { usock_close(fd) };
    }
}

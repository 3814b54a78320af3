//! The F_SETOWN owner's signals, as Linux sends them: SIGIO when O_ASYNC
//! (FIOASYNC) is on and data arrives, none when it is off, and SIGURG when
//! urgent data (MSG_OOB) arrives. The C cases (t_passthrough
//! ioctl_fioasync_and_siocspgrp, t_connlife sigurg_to_the_owner) check the
//! same in process; across processes the signal comes after send()
//! returns, so they are not in conformance13.pass, and this test keeps the
//! behaviour under `make test`. One test function: the signal counters
//! are the process's.
#![cfg(feature = "std")]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use libc::{c_int, c_ulong, c_void, sockaddr, sockaddr_in, socklen_t};
use userspacesock::api::posix::*;

static SIGIOS: AtomicU32 = AtomicU32::new(0);
static SIGURGS: AtomicU32 = AtomicU32::new(0);

extern "C" fn on_signal(sig: c_int) {
    let n = if sig == libc::SIGIO {
        &SIGIOS
    } else {
        &SIGURGS
    };
    n.fetch_add(1, Ordering::SeqCst);
}

fn handle(sig: c_int) {
    // SAFETY: installs a handler that only touches atomics.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as extern "C" fn(c_int) as usize;
        sa.sa_flags = libc::SA_RESTART;
        assert_eq!(libc::sigaction(sig, &sa, std::ptr::null_mut()), 0);
    }
}

/// Waits up to 5 s for `n` to move past `from`.
fn wait_past(n: &AtomicU32, from: u32) -> bool {
    let end = Instant::now() + Duration::from_secs(5);
    while Instant::now() < end {
        if n.load(Ordering::SeqCst) > from {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}

fn loopback() -> sockaddr_in {
    // SAFETY: plain data.
    let mut a: sockaddr_in = unsafe { std::mem::zeroed() };
    a.sin_family = libc::AF_INET as u16;
    a.sin_addr.s_addr = u32::to_be(0x7f00_0001);
    a
}

/// A socket of `ty` bound to 127.0.0.1 on a free port, and its address.
fn bound(ty: c_int) -> (c_int, sockaddr_in) {
    // SAFETY: the library's calls with valid pointers and lengths.
    unsafe {
        let fd = usock_socket(libc::AF_INET, ty, 0);
        assert!(fd >= 0);
        let mut a = loopback();
        let len = std::mem::size_of::<sockaddr_in>() as socklen_t;
        assert_eq!(usock_bind(fd, &a as *const _ as *const sockaddr, len), 0);
        let mut l = len;
        assert_eq!(
            usock_getsockname(fd, &mut a as *mut _ as *mut sockaddr, &mut l),
            0
        );
        (fd, a)
    }
}

#[test]
fn owner_gets_sigio_under_o_async_and_sigurg_for_urgent_data() {
    handle(libc::SIGIO);
    handle(libc::SIGURG);
    let len = std::mem::size_of::<sockaddr_in>() as socklen_t;
    // SAFETY: the library's calls with valid pointers and lengths.
    unsafe {
        let pid = libc::getpid();
        // SIGIO: a datagram to a socket with O_ASYNC and an owner.
        let (b, addr) = bound(libc::SOCK_DGRAM);
        let a = usock_socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
        assert_eq!(
            usock_connect(a, &addr as *const _ as *const sockaddr, len),
            0
        );
        assert_eq!(usock_fcntl(b, libc::F_SETOWN, pid as c_ulong), 0);
        let before = SIGIOS.load(Ordering::SeqCst);
        assert_eq!(usock_send(a, b"x".as_ptr() as *const c_void, 1, 0), 1);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            SIGIOS.load(Ordering::SeqCst),
            before,
            "SIGIO without O_ASYNC"
        );
        let mut on: c_int = 1;
        assert_eq!(
            usock_ioctl(b, libc::FIOASYNC, &mut on as *mut c_int as *mut c_void),
            0
        );
        assert_ne!(usock_fcntl(b, libc::F_GETFL, 0) & libc::O_ASYNC, 0);
        let before = SIGIOS.load(Ordering::SeqCst);
        assert_eq!(usock_send(a, b"y".as_ptr() as *const c_void, 1, 0), 1);
        assert!(wait_past(&SIGIOS, before), "no SIGIO for a datagram");
        assert_eq!(usock_fcntl(b, libc::F_SETFL, 0), 0);
        assert_eq!(usock_fcntl(b, libc::F_GETFL, 0) & libc::O_ASYNC, 0);
        usock_close(a);
        usock_close(b);

        // SIGURG: urgent data on an accepted connection with an owner.
        let (l, addr) = bound(libc::SOCK_STREAM);
        assert_eq!(usock_listen(l, 4), 0);
        let c = usock_socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert_eq!(
            usock_connect(c, &addr as *const _ as *const sockaddr, len),
            0
        );
        let s = usock_accept(l, std::ptr::null_mut(), std::ptr::null_mut());
        assert!(s >= 0);
        assert_eq!(usock_fcntl(s, libc::F_SETOWN, pid as c_ulong), 0);
        let before = SIGURGS.load(Ordering::SeqCst);
        assert_eq!(
            usock_send(c, b"!".as_ptr() as *const c_void, 1, libc::MSG_OOB),
            1
        );
        assert!(wait_past(&SIGURGS, before), "no SIGURG for urgent data");
        let mut byte = 0u8;
        let mut got = 0;
        for _ in 0..500 {
            got = usock_recv(s, &mut byte as *mut u8 as *mut c_void, 1, libc::MSG_OOB);
            if got == 1 {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        assert_eq!((got, byte), (1, b'!'));
        for fd in [c, s, l] {
            usock_close(fd);
        }
    }
}

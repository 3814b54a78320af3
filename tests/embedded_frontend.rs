//! The frontend through its C API on the no_std build, single-threaded, in
//! the cooperative mode (the host supplies no wait): run with
//! `cargo test --no-default-features --test embedded_frontend`.
//! (With the hosted default features this file compiles to nothing.)
#![cfg(not(feature = "std"))]

use std::alloc::{alloc, dealloc, Layout};
use std::ffi::c_void;
use std::sync::OnceLock;
use std::time::Instant;

use userspacesock::api::posix::*;

mod common;
use common::sin;
use userspacesock::platform::embedded::{
    usock_errno, usock_platform_init, usock_platform_ops, USOCK_PLATFORM_ABI_VERSION,
};

unsafe extern "C" fn h_alloc(_: *mut c_void, size: usize, align: usize) -> *mut c_void {
    // SAFETY: a non-zero size and a power-of-two alignment, as Rust asks.
    unsafe { alloc(Layout::from_size_align(size.max(1), align).unwrap()) as *mut c_void }
}
unsafe extern "C" fn h_free(_: *mut c_void, p: *mut c_void, size: usize, align: usize) {
    // SAFETY: `p` came from h_alloc with this layout.
    unsafe {
        dealloc(
            p as *mut u8,
            Layout::from_size_align(size.max(1), align).unwrap(),
        )
    }
}
unsafe extern "C" fn h_now(_: *mut c_void) -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

fn init() {
    let ops = usock_platform_ops {
        abi_version: USOCK_PLATFORM_ABI_VERSION,
        ctx: std::ptr::null_mut(),
        alloc: Some(h_alloc),
        free: Some(h_free),
        lock_create: None,
        lock: None,
        unlock: None,
        wait: None,
        wake: None,
        now_ns: Some(h_now),
        errno_location: None,
        log: None,
        abort: None,
    };
    // SAFETY: a valid table.
    assert_eq!(unsafe { usock_platform_init(&ops) }, 0);
}

fn bound(ty: i32) -> (i32, libc::sockaddr_in) {
    // SAFETY: plain calls with valid pointers throughout.
    unsafe {
        let fd = usock_socket(libc::AF_INET, ty | libc::SOCK_NONBLOCK, 0);
        assert!(fd >= 0);
        let mut a = sin(0);
        let len = std::mem::size_of_val(&a) as u32;
        assert_eq!(
            usock_bind(fd, &a as *const _ as *const libc::sockaddr, len),
            0
        );
        let mut l = len;
        assert_eq!(
            usock_getsockname(fd, &mut a as *mut _ as *mut libc::sockaddr, &mut l),
            0
        );
        assert_ne!(a.sin_port, 0);
        (fd, a)
    }
}

#[test]
fn cooperative_stream_and_datagram_exchange() {
    // SAFETY: plain calls with valid pointers throughout.
    unsafe {
        assert_eq!(usock_socket(libc::AF_INET, libc::SOCK_STREAM, 0), -1);
        assert_eq!(
            usock_errno(),
            libc::ENOSYS,
            "a clear error before the platform exists"
        );
        init();

        let (l, a) = bound(libc::SOCK_STREAM);
        assert_eq!(usock_listen(l, 4), 0);
        let c = usock_socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0);
        let r = usock_connect(c, &a as *const _ as *const libc::sockaddr, 16);
        assert!(r == 0 || usock_errno() == libc::EINPROGRESS);
        let s = usock_accept(l, std::ptr::null_mut(), std::ptr::null_mut());
        assert!(s >= 0);
        let mut buf = [0u8; 4096];
        assert_eq!(
            usock_recv(s, buf.as_mut_ptr() as *mut c_void, buf.len(), 0),
            -1
        );
        assert_eq!(usock_errno(), libc::EAGAIN);

        let data: Vec<u8> = (0..1_000_000u32)
            .map(|i| (i * 7 + (i >> 11)) as u8)
            .collect();
        let (mut sent, mut got) = (0usize, Vec::new());
        for _ in 0..1_000_000 {
            if got.len() == data.len() {
                break;
            }
            if sent < data.len() {
                let n = usock_send(
                    c,
                    data[sent..].as_ptr() as *const c_void,
                    (data.len() - sent).min(7000),
                    0,
                );
                if n > 0 {
                    sent += n as usize;
                } else {
                    assert_eq!(usock_errno(), libc::EAGAIN);
                }
            }
            let mut p = [libc::pollfd {
                fd: s,
                events: libc::POLLIN,
                revents: 0,
            }];
            assert!(usock_poll(p.as_mut_ptr(), 1, 0) >= 0);
            if p[0].revents & libc::POLLIN != 0 {
                let n = usock_recv(s, buf.as_mut_ptr() as *mut c_void, buf.len(), 0);
                assert!(n > 0);
                got.extend_from_slice(&buf[..n as usize]);
            }
        }
        assert!(got == data, "every byte once, in order");
        assert_eq!(usock_shutdown(c, libc::SHUT_WR), 0);
        assert_eq!(
            usock_recv(s, buf.as_mut_ptr() as *mut c_void, buf.len(), 0),
            0
        );

        let (d, da) = bound(libc::SOCK_DGRAM);
        let (e, ea) = bound(libc::SOCK_DGRAM);
        for i in 0..50u32 {
            let m = i.to_le_bytes().repeat(i as usize + 1);
            let n = usock_sendto(
                e,
                m.as_ptr() as *const c_void,
                m.len(),
                0,
                &da as *const _ as *const libc::sockaddr,
                16,
            );
            assert_eq!(n, m.len() as isize);
            let mut from = sin(0);
            let mut fl = 16u32;
            let n = usock_recvfrom(
                d,
                buf.as_mut_ptr() as *mut c_void,
                buf.len(),
                0,
                &mut from as *mut _ as *mut libc::sockaddr,
                &mut fl,
            );
            assert_eq!(&buf[..n as usize], &m[..]);
            assert_eq!(from.sin_port, ea.sin_port);
        }
        for fd in [c, s, l, d, e] {
            assert_eq!(usock_close(fd), 0);
        }
        assert_eq!(usock_close(c), -1);
        assert_eq!(usock_errno(), libc::EBADF);
    }
}

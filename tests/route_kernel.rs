//! Routing rules send a socket to the kernel when its address is known: the
//! fd number stays, the socket becomes a real kernel socket and reaches a
//! kernel server outside user space; other addresses stay in user space.
#![cfg(feature = "std")]

use std::ffi::{c_void, CString};

use userspacesock::api::posix::*;

mod common;
use common::{sin, sys};

#[test]
fn a_rule_sends_the_socket_to_a_kernel_server_with_the_same_fd() {
    // SAFETY: raw system calls and library calls with valid pointers.
    unsafe {
        // A kernel listener, made with raw system calls (the library's own
        // socket() would make a user-space one).
        let l = sys(libc::syscall(
            libc::SYS_socket,
            libc::AF_INET,
            libc::SOCK_STREAM,
            0,
        ));
        let mut a = sin(0);
        sys(libc::syscall(libc::SYS_bind, l, &a as *const _, 16));
        sys(libc::syscall(libc::SYS_listen, l, 4));
        let mut al: libc::socklen_t = 16;
        sys(libc::syscall(
            libc::SYS_getsockname,
            l,
            &mut a as *mut _,
            &mut al as *mut _,
        ));
        let port = u16::from_be(a.sin_port);

        let bad = CString::new("kernel 127.0.0.1/40").unwrap();
        assert_eq!(usock_route_set(bad.as_ptr()), -libc::EINVAL);
        let rule = CString::new(format!("kernel tcp 127.0.0.1:{port}")).unwrap();
        assert_eq!(usock_route_set(rule.as_ptr()), 0);

        let fd = usock_socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert_eq!(userspacesock::api::posix::usock_is_userspace(fd), 1);
        let one: libc::c_int = 1;
        assert_eq!(
            usock_setsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                &one as *const _ as *const c_void,
                4
            ),
            0
        );
        assert_eq!(
            usock_connect(fd, &a as *const _ as *const libc::sockaddr, 16),
            0
        );
        assert!(
            userspacesock::api::posix::usock_is_userspace(fd) == 0,
            "the same number is a kernel socket now"
        );
        let mut v: libc::c_int = 0;
        let mut vl: libc::socklen_t = 4;
        sys(libc::syscall(
            libc::SYS_getsockopt,
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            &mut v as *mut _,
            &mut vl as *mut _,
        ));
        assert_eq!(v, 1, "options set before the routing carry over");

        let s = sys(libc::syscall(libc::SYS_accept4, l, 0usize, 0usize, 0));
        assert_eq!(usock_write(fd, b"ping".as_ptr() as *const c_void, 4), 4);
        let mut buf = [0u8; 8];
        assert_eq!(
            sys(libc::syscall(libc::SYS_read, s, buf.as_mut_ptr(), 8)),
            4
        );
        assert_eq!(&buf[..4], b"ping");
        sys(libc::syscall(libc::SYS_write, s, b"pong".as_ptr(), 4));
        assert_eq!(usock_read(fd, buf.as_mut_ptr() as *mut c_void, 8), 4);
        assert_eq!(&buf[..4], b"pong");
        assert_eq!(usock_close(fd), 0);

        // Another port: no rule, so user space, where nobody listens.
        let u = usock_socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        let other = sin(if port == 65535 { 1 } else { port + 1 });
        assert_eq!(
            usock_connect(u, &other as *const _ as *const libc::sockaddr, 16),
            -1
        );
        assert_eq!(*libc::__errno_location(), libc::ECONNREFUSED);
        assert_eq!(userspacesock::api::posix::usock_is_userspace(u), 1);
        usock_close(u);
        libc::syscall(libc::SYS_close, s);
        libc::syscall(libc::SYS_close, l);
    }
}

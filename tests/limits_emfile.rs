//! Past RLIMIT_NOFILE: socket(), socketpair(), accept() and dup() fail with
//! EMFILE (an accepted connection stays queued and is accepted once an fd
//! is free, as on Linux), nothing panics, and everything works again once
//! fds are closed. Its own test binary: the lowered limit is process-wide.

use libc::{c_int, sockaddr, socklen_t};
use userspacesock::api::posix::*;

fn errno() -> c_int {
    std::io::Error::last_os_error().raw_os_error().unwrap()
}

#[test]
fn past_rlimit_nofile_calls_fail_with_emfile() {
    const LIMIT: u64 = 64;
    // SAFETY: plain calls with valid arguments.
    unsafe {
        // The library's process-wide anchor fd first (made at the first
        // socket, above the limit's reach otherwise).
        usock_close(usock_socket(libc::AF_INET, libc::SOCK_STREAM, 0));
        let mut r: libc::rlimit = std::mem::zeroed();
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut r), 0);
        r.rlim_cur = LIMIT;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &r), 0);

        let l = usock_socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        let mut sin: libc::sockaddr_in = std::mem::zeroed();
        sin.sin_family = libc::AF_INET as u16;
        sin.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
        assert_eq!(usock_bind(l, &sin as *const _ as *const sockaddr, 16), 0);
        assert_eq!(usock_listen(l, 8), 0);
        let mut addr = [0u8; 16];
        let mut alen = 16 as socklen_t;
        usock_getsockname(l, addr.as_mut_ptr() as *mut sockaddr, &mut alen);

        let mut fds = Vec::new();
        loop {
            let fd = usock_socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            if fd < 0 {
                assert_eq!(errno(), libc::EMFILE);
                break;
            }
            assert!((fd as u64) < LIMIT, "fd {fd} beyond the limit");
            fds.push(fd);
            assert!(fds.len() < 1000);
        }
        // Every other way to make an fd: EMFILE too.
        let mut sv = [0; 2];
        assert_eq!(
            usock_socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, sv.as_mut_ptr()),
            -1
        );
        assert_eq!(errno(), libc::EMFILE);
        assert_eq!(usock_dup(l), -1);
        assert_eq!(errno(), libc::EMFILE);
        // A connection made with the last fd of the client side...
        let client = fds.pop().unwrap();
        assert_eq!(usock_close(client), 0);
        let c = usock_socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(c >= 0);
        assert_eq!(usock_connect(c, addr.as_ptr() as *const sockaddr, 16), 0);
        // ...cannot be accepted without an fd: EMFILE, and it stays queued.
        let a = usock_accept(l, std::ptr::null_mut(), std::ptr::null_mut());
        assert_eq!((a, errno()), (-1, libc::EMFILE));
        assert_eq!(usock_close(fds.pop().unwrap()), 0);
        let a = usock_accept(l, std::ptr::null_mut(), std::ptr::null_mut());
        assert!(a >= 0, "errno {}", errno());
        assert_eq!(usock_send(c, b"ok".as_ptr() as *const _, 2, 0), 2);
        let mut buf = [0u8; 2];
        assert_eq!(usock_recv(a, buf.as_mut_ptr() as *mut _, 2, 0), 2);
        assert_eq!(&buf, b"ok");
        for fd in fds.into_iter().chain([a, c, l]) {
            assert_eq!(usock_close(fd), 0);
        }
        // All usable again.
        let fd = usock_socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        usock_close(fd);
    }
}

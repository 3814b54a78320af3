//! Fds in flight over the library's AF_UNIX sockets (issue 14), through
//! the C veneers: the in-flight table holds what a message carries until
//! it is read, drops it with a receiver closed unread, and collects a
//! socket that is in flight only in its own queue (net/unix/garbage.c's
//! cycle). "Closed" is observed as the kernel shows it: a pipe's read end
//! reports POLLHUP once no write end is left.
#![cfg(feature = "std")]

use libc::{c_int, AF_UNIX, SOCK_DGRAM, SOCK_STREAM};
use userspacesock::api::posix::*;

fn pair(ty: c_int) -> [c_int; 2] {
    let mut sv = [-1; 2];
    // SAFETY: `sv` has room for two fds.
    assert_eq!(
        unsafe { usock_socketpair(AF_UNIX, ty, 0, sv.as_mut_ptr()) },
        0
    );
    sv
}

fn pipe() -> [c_int; 2] {
    let mut p = [-1; 2];
    // SAFETY: `p` has room for two fds.
    assert_eq!(unsafe { libc::pipe(p.as_mut_ptr()) }, 0);
    p
}

/// Whether every write end of the pipe whose read end is `r` is closed.
fn hup(r: c_int) -> bool {
    let mut p = libc::pollfd {
        fd: r,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one pollfd.
    unsafe { libc::poll(&mut p, 1, 1000) };
    p.revents & libc::POLLHUP != 0
}

/// sendmsg of one byte with `fds` in an SCM_RIGHTS message.
fn send_fds(fd: c_int, fds: &[c_int]) -> isize {
    let mut ctl = [0u64; 8];
    let data_len = 4 * fds.len();
    // SAFETY: CMSG_LEN is arithmetic.
    let len = unsafe { libc::CMSG_LEN(data_len as u32) } as usize;
    let mut byte = b'x';
    let mut iov = libc::iovec {
        iov_base: (&mut byte as *mut u8).cast(),
        iov_len: 1,
    };
    // SAFETY: an all-zero msghdr is valid.
    let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
    mh.msg_iov = &mut iov;
    mh.msg_iovlen = 1;
    mh.msg_control = ctl.as_mut_ptr().cast();
    mh.msg_controllen = len.div_ceil(8) * 8;
    // SAFETY: the header lies within `ctl`.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&mh);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = len;
        std::ptr::copy_nonoverlapping(fds.as_ptr().cast::<u8>(), libc::CMSG_DATA(c), data_len);
        usock_sendmsg(fd, &mh, 0)
    }
}

#[test]
fn fds_queued_in_a_closed_receiver_are_closed() {
    for ty in [SOCK_STREAM, SOCK_DGRAM] {
        let sv = pair(ty);
        let p = pipe();
        assert_eq!(send_fds(sv[0], &[p[1]]), 1);
        // SAFETY: closing fds of this test.
        unsafe { libc::close(p[1]) };
        assert!(!hup(p[0]), "the fd in flight keeps the pipe open");
        // SAFETY: as above.
        unsafe { usock_close(sv[1]) };
        assert!(hup(p[0]), "closed with the receiver's queue");
        // SAFETY: as above.
        unsafe {
            usock_close(sv[0]);
            libc::close(p[0]);
        }
    }
}

#[test]
fn a_socket_in_flight_in_its_own_queue_is_collected() {
    for ty in [SOCK_STREAM, SOCK_DGRAM] {
        let sv = pair(ty);
        let p = pipe();
        assert_eq!(send_fds(sv[0], &[sv[1], p[1]]), 1);
        // SAFETY: closing fds of this test.
        unsafe {
            libc::close(p[1]);
            usock_close(sv[1]);
        }
        // From here only sv[1]'s own queue holds it: garbage, which any
        // collection (another test's close may run one) frees.
        // SAFETY: as above.
        unsafe { usock_close(sv[0]) };
        assert!(hup(p[0]), "the cycle was collected");
        // SAFETY: as above.
        unsafe { libc::close(p[0]) };
    }
}

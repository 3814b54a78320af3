//! A buffer that starts in mapped memory and ends in unmapped memory gives
//! EFAULT, as the kernel does, instead of a fault inside the library.
//! Regression: `ffi::probe` took a partial `process_vm_readv` (first byte
//! read, last not: it returns 1) for success (found by the `calls` fuzz
//! target, through socketpair's `sv` 3 bytes before an unmapped page).
// The EFAULT probe of unmapped memory is the hosted platform's.
#![cfg(feature = "std")]

use libc::{c_int, c_void};
use userspacesock::api::posix::*;

/// A read-write page followed by an inaccessible one; returns the start of
/// the second.
fn page_then_guard() -> *mut u8 {
    // SAFETY: an anonymous mapping of two pages, the second made PROT_NONE.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            8192,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert_ne!(p, libc::MAP_FAILED);
        let g = (p as *mut u8).add(4096);
        assert_eq!(libc::mprotect(g as *mut c_void, 4096, libc::PROT_NONE), 0);
        g
    }
}

fn errno() -> c_int {
    std::io::Error::last_os_error().raw_os_error().unwrap()
}

#[test]
fn straddling_buffers_give_efault() {
    let guard = page_then_guard();
    // SAFETY: every pointer is either valid or meant to give EFAULT.
    unsafe {
        let sv = guard.sub(3) as *mut c_int;
        assert_eq!(
            usock_socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, sv),
            -1
        );
        assert_eq!(errno(), libc::EFAULT);

        let mut pair = [0; 2];
        assert_eq!(
            usock_socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, pair.as_mut_ptr()),
            0
        );
        let msg = [7u8; 64];
        assert_eq!(
            usock_send(pair[0], msg.as_ptr() as *const c_void, 64, 0),
            64
        );
        // 16 readable bytes, then the guard page: EFAULT, nothing consumed.
        let r = usock_recv(pair[1], guard.sub(16) as *mut c_void, 64, 0);
        assert_eq!((r, errno()), (-1, libc::EFAULT));
        let mut buf = [0u8; 64];
        assert_eq!(
            usock_recv(pair[1], buf.as_mut_ptr() as *mut c_void, 64, 0),
            64
        );
        // Sending from a straddling buffer.
        let r = usock_send(pair[0], guard.sub(8) as *const c_void, 64, 0);
        assert_eq!((r, errno()), (-1, libc::EFAULT));
        usock_close(pair[0]);
        usock_close(pair[1]);
    }
}

/// Regression: the per-thread cache of probed pages took every page
/// between a probe's first and last byte as mapped, so after a call with a
/// buffer spanning an unmapped hole (getsockopt with a long optlen: only
/// 16 bytes written), a later pointer into the hole skipped the probe and
/// faulted inside the library (found by the `calls` fuzz target).
#[test]
fn a_pointer_into_a_hole_after_a_spanning_probe_gives_efault() {
    // SAFETY: three anonymous pages, the middle one made PROT_NONE; every
    // pointer handed over is valid or meant to give EFAULT.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            3 * 4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        ) as *mut u8;
        assert_ne!(p as *mut c_void, libc::MAP_FAILED);
        let hole = p.add(4096);
        assert_eq!(
            libc::mprotect(hole as *mut c_void, 4096, libc::PROT_NONE),
            0
        );
        let fd = usock_socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        // optval spans [page 0, page 2]: both ends mapped.
        let mut len = (2 * 4096 + 100) as libc::socklen_t;
        let r = usock_getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            p as *mut c_void,
            &mut len,
        );
        assert_eq!(r, 0);
        let sv = hole.add(100) as *mut c_int;
        assert_eq!(
            usock_socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, sv),
            -1
        );
        assert_eq!(errno(), libc::EFAULT);
        usock_close(fd);
    }
}

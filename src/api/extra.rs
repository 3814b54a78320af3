//! More calls a Linux program makes on sockets, interposed under their
//! libc names only (no `usock_` twins: they are Linux extensions):
//! `sendfile`, `sendmmsg`/`recvmmsg`, `close_range`/`closefrom`, the
//! fortified `__read_chk`/`__recv_chk`/`__recvfrom_chk`/`__poll_chk`, and
//! `fstat` reporting a socket for our fds.

#![allow(clippy::missing_safety_doc)]

use libc::{
    c_int, c_uint, c_void, mmsghdr, nfds_t, off64_t, off_t, pollfd, sockaddr, socklen_t, ssize_t,
};

use super::ffi::{self, guard, ret_int, set_errno};
use super::posix;
use crate::consts::*;
use crate::fd;
use crate::fd::lifecycle;
use crate::platform::real;

/// Bytes read from the file per step of a sendfile into a socket.
const SENDFILE_CHUNK: usize = 64 * 1024;

/// sendfile into one of our sockets: reads the file (at `*off` with pread
/// when `off` is given, else from its position) and sends what it read.
unsafe fn sendfile_ours(out: c_int, inf: c_int, off: Option<&mut i64>, count: usize) -> ssize_t {
    if fd::is_ours(inf) {
        // Linux needs an mmap-able source: a socket is EINVAL.
        set_errno(EINVAL);
        return -1;
    }
    let mut buf = alloc::vec![0u8; SENDFILE_CHUNK.min(count.max(1))];
    let mut done = 0usize;
    let mut pos = off.as_ref().map(|o| **o);
    while done < count {
        let want = buf.len().min(count - done);
        let n = match pos {
            // SAFETY: libc's pread into our own buffer.
            Some(p) => unsafe {
                real::pread(inf, buf.as_mut_ptr() as *mut c_void, want, p as off_t)
            },
            // SAFETY: libc's read into our own buffer.
            None => unsafe { real::read(inf, buf.as_mut_ptr() as *mut c_void, want) },
        };
        if n < 0 {
            if done > 0 {
                break;
            }
            return -1;
        }
        if n == 0 {
            break;
        }
        // SAFETY: our own buffer of `n` bytes.
        let w = unsafe { posix::usock_send(out, buf.as_ptr() as *const c_void, n as usize, 0) };
        if w < 0 {
            if done > 0 {
                break;
            }
            return -1;
        }
        done += w as usize;
        if let Some(p) = pos.as_mut() {
            *p += w as i64;
        }
        if (w as usize) < n as usize {
            // A partial send: the file position must say what was sent.
            if pos.is_none() {
                // SAFETY: lseek on the caller's file back over the unsent tail.
                unsafe { libc::lseek(inf, -((n as usize - w as usize) as off_t), libc::SEEK_CUR) };
            }
            break;
        }
    }
    if let (Some(o), Some(p)) = (off, pos) {
        *o = p;
    }
    done as ssize_t
}

/// sendfile(2): a file into one of our sockets; other fds go to libc.
#[no_mangle]
pub unsafe extern "C" fn sendfile(
    out: c_int,
    inf: c_int,
    off: *mut off_t,
    count: usize,
) -> ssize_t {
    if !fd::is_ours(out) && !fd::is_ours(inf) {
        // SAFETY: passthrough.
        return unsafe { real::sendfile(out, inf, off, count) };
    }
    guard(-1, || {
        // SAFETY: NULL or valid per the sendfile contract.
        let mut o = unsafe { off.as_mut() }.map(|p| *p);
        let r = unsafe { sendfile_ours(out, inf, o.as_mut(), count) };
        if let (Some(v), false) = (o, off.is_null()) {
            // SAFETY: non-null and valid per the contract.
            unsafe { *off = v };
        }
        r
    })
}

/// sendfile64: the same as [`sendfile`] on 64-bit Linux.
#[no_mangle]
pub unsafe extern "C" fn sendfile64(
    out: c_int,
    inf: c_int,
    off: *mut off64_t,
    count: usize,
) -> ssize_t {
    if !fd::is_ours(out) && !fd::is_ours(inf) {
        // SAFETY: passthrough.
        return unsafe { real::sendfile64(out, inf, off, count) };
    }
    // SAFETY: off_t and off64_t are the same type on 64-bit Linux.
    unsafe { sendfile(out, inf, off as *mut off_t, count) }
}

/// sendmmsg(2): sendmsg for each message, stopping at the first error
/// (reported only when nothing was sent, as Linux does).
#[no_mangle]
pub unsafe extern "C" fn sendmmsg(fd_: c_int, v: *mut mmsghdr, n: c_uint, flags: c_int) -> c_int {
    if !fd::is_ours(fd_) {
        // SAFETY: passthrough.
        return unsafe { real::sendmmsg(fd_, v, n, flags) };
    }
    guard(-1, || {
        let n = n.min(1024);
        if let Err(e) = ffi::probe(v as *const u8, n as usize * core::mem::size_of::<mmsghdr>()) {
            return ret_int(Err(e));
        }
        for i in 0..n as usize {
            // SAFETY: `v` is valid for `n` entries (probed above).
            let m = unsafe { &mut *v.add(i) };
            // SAFETY: the message header is valid per the contract.
            let r = unsafe { posix::usock_sendmsg(fd_, &m.msg_hdr, flags) };
            if r < 0 {
                return if i > 0 { i as c_int } else { -1 };
            }
            m.msg_len = r as c_uint;
        }
        n as c_int
    })
}

/// recvmmsg(2) as Linux's do_recvmmsg: a pending socket error first; then
/// recvmsg for each message (MSG_WAITFORONE: no waiting after the first);
/// the timeout, checked only after each datagram (recvmmsg(2), BUGS), ends
/// the call when it has passed, and what is left of it is written back;
/// an error after some datagrams returns those and becomes the socket's
/// pending error (unless it is EAGAIN).
#[no_mangle]
pub unsafe extern "C" fn recvmmsg(
    fd_: c_int,
    v: *mut mmsghdr,
    n: c_uint,
    flags: c_int,
    t: *mut libc::timespec,
) -> c_int {
    let Some(s) = fd::get(fd_) else {
        // SAFETY: passthrough.
        return unsafe { real::recvmmsg(fd_, v, n, flags, t) };
    };
    guard(-1, || {
        // SAFETY: `t` is NULL or the caller's timespec (probed there).
        let deadline = match unsafe { mmsg_deadline(t) } {
            Ok(d) => d,
            Err(e) => return ret_int(Err(e)),
        };
        let n = n.min(ffi::IOV_MAX as c_uint);
        if let Err(e) = ffi::probe(v as *const u8, n as usize * core::mem::size_of::<mmsghdr>()) {
            return ret_int(Err(e));
        }
        if let Some(e) = s.take_error() {
            return ret_int(Err(e));
        }
        const MSG_WAITFORONE: c_int = 0x10000;
        let mut f = flags & !MSG_WAITFORONE;
        let mut got = 0usize;
        while got < n as usize {
            // SAFETY: `v` is valid for `n` entries (probed above).
            let m = unsafe { &mut *v.add(got) };
            // SAFETY: the message header is valid per the contract.
            let r = unsafe { posix::usock_recvmsg(fd_, &mut m.msg_hdr, f) };
            if r < 0 {
                if got == 0 {
                    return -1;
                }
                let e = crate::platform::errno();
                if e == EFAULT && !s.is_stream() {
                    // Linux took the datagram off the queue before the copy
                    // failed: it is lost.
                    let _ = s.recv(&mut [], MSG_DONTWAIT | MSG_TRUNC);
                }
                if e != EAGAIN {
                    s.set_error(e);
                }
                break;
            }
            m.msg_len = r as c_uint;
            got += 1;
            if flags & MSG_WAITFORONE != 0 {
                f |= MSG_DONTWAIT;
            }
            if let Some(d) = deadline {
                let left = crate::platform::time_left(d);
                // SAFETY: probed by mmsg_deadline.
                unsafe {
                    (*t).tv_sec = left.as_secs() as libc::time_t;
                    (*t).tv_nsec = left.subsec_nanos() as libc::c_long;
                }
                if left.is_zero() {
                    break;
                }
            }
        }
        got as c_int
    })
}

/// The deadline of recvmmsg's `t`: EFAULT for a bad pointer, EINVAL for a
/// negative time or nanoseconds out of range (poll_select_set_timeout).
///
/// # Safety
/// `t` is NULL or the caller's pointer (probed here).
unsafe fn mmsg_deadline(
    t: *const libc::timespec,
) -> Result<Option<crate::platform::Deadline>, crate::consts::Errno> {
    if t.is_null() {
        return Ok(None);
    }
    ffi::probe(t as *const u8, core::mem::size_of::<libc::timespec>())?;
    // SAFETY: probed just above.
    let ts = unsafe { *t };
    if ts.tv_sec < 0 || !(0..1_000_000_000).contains(&ts.tv_nsec) {
        return Err(EINVAL);
    }
    // Beyond the clock's range: no deadline, as good as one.
    Ok(crate::platform::deadline_after(core::time::Duration::new(
        ts.tv_sec as u64,
        ts.tv_nsec as u32,
    )))
}

/// close_range(2): our sockets in the range are closed (or marked
/// close-on-exec) by us, the rest by the kernel, around the library's own
/// fds, which stay open (`platform::private_fds`).
#[no_mangle]
pub unsafe extern "C" fn close_range(first: c_uint, last: c_uint, flags: c_int) -> c_int {
    guard(-1, || {
        if first > last {
            return ret_int(Err(EINVAL));
        }
        const CLOSE_RANGE_CLOEXEC: c_int = 4;
        if flags & CLOSE_RANGE_CLOEXEC == 0 {
            let top = (last as usize).min(fd::MAX_FDS.saturating_sub(1));
            for f in first as usize..=top {
                if fd::is_ours(f as i32) {
                    let _ = lifecycle::close(f as i32);
                }
            }
        }
        let mut r = 0;
        crate::platform::private_fds::gaps(first, last, |lo, hi| {
            if r == 0 {
                // SAFETY: passthrough for what is left.
                r = unsafe { real::close_range(lo, hi, flags) };
            }
        });
        r
    })
}

/// closefrom(3): close_range(lowfd, ~0U, 0).
#[no_mangle]
pub unsafe extern "C" fn closefrom(low: c_int) {
    // SAFETY: same contract.
    unsafe { close_range(low.max(0) as c_uint, c_uint::MAX, 0) };
}

/// The fortified read(): checks the buffer length, then read().
#[no_mangle]
pub unsafe extern "C" fn __read_chk(fd_: c_int, b: *mut c_void, n: usize, bl: usize) -> ssize_t {
    if !fd::is_ours(fd_) || n > bl {
        // SAFETY: passthrough (libc aborts on an overflow, as it should).
        return unsafe { real::read_chk(fd_, b, n, bl) };
    }
    // SAFETY: same contract.
    unsafe { posix::usock_read(fd_, b, n) }
}

/// The fortified recv().
#[no_mangle]
pub unsafe extern "C" fn __recv_chk(
    fd_: c_int,
    b: *mut c_void,
    n: usize,
    bl: usize,
    f: c_int,
) -> ssize_t {
    if !fd::is_ours(fd_) || n > bl {
        // SAFETY: passthrough.
        return unsafe { real::recv_chk(fd_, b, n, bl, f) };
    }
    // SAFETY: same contract.
    unsafe { posix::usock_recv(fd_, b, n, f) }
}

/// The fortified recvfrom().
#[no_mangle]
pub unsafe extern "C" fn __recvfrom_chk(
    fd_: c_int,
    b: *mut c_void,
    n: usize,
    bl: usize,
    f: c_int,
    a: *mut sockaddr,
    l: *mut socklen_t,
) -> ssize_t {
    if !fd::is_ours(fd_) || n > bl {
        // SAFETY: passthrough.
        return unsafe { real::recvfrom_chk(fd_, b, n, bl, f, a, l) };
    }
    // SAFETY: same contract.
    unsafe { posix::usock_recvfrom(fd_, b, n, f, a, l) }
}

/// The fortified poll().
#[no_mangle]
pub unsafe extern "C" fn __poll_chk(fds: *mut pollfd, n: nfds_t, t: c_int, fl: usize) -> c_int {
    if (fl / core::mem::size_of::<pollfd>()) < n as usize {
        // SAFETY: passthrough: libc reports the overflow.
        return unsafe { real::poll_chk(fds, n, t, fl) };
    }
    // SAFETY: same contract.
    unsafe { posix::usock_poll(fds, n, t) }
}

/// fstat(2): our fds are sockets (S_IFSOCK, like the kernel's sockfs).
#[no_mangle]
pub unsafe extern "C" fn fstat(fd_: c_int, st: *mut libc::stat) -> c_int {
    if !fd::is_ours(fd_) {
        // SAFETY: passthrough.
        return unsafe { real::fstat(fd_, st) };
    }
    guard(-1, || {
        if let Err(e) = ffi::probe(st as *const u8, core::mem::size_of::<libc::stat>()) {
            return ret_int(Err(e));
        }
        // SAFETY: probed; all-zero is a valid `struct stat`.
        unsafe {
            *st = core::mem::zeroed();
            (*st).st_mode = libc::S_IFSOCK | 0o777;
            (*st).st_ino = fd_ as libc::ino_t;
            (*st).st_blksize = 4096;
            (*st).st_nlink = 1;
        }
        0
    })
}

/// fstat64: the same as [`fstat`] on 64-bit Linux.
#[no_mangle]
pub unsafe extern "C" fn fstat64(fd_: c_int, st: *mut libc::stat64) -> c_int {
    if !fd::is_ours(fd_) {
        // SAFETY: passthrough.
        return unsafe { real::fstat64(fd_, st) };
    }
    // SAFETY: stat and stat64 have the same layout on 64-bit Linux.
    unsafe { fstat(fd_, st as *mut libc::stat) }
}

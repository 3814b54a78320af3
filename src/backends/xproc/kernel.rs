//! Kernel calls of the transport: its AF_UNIX sockets, gather writes,
//! peer credentials.

use crate::backend::contract::*;
use crate::consts::*;

pub(super) fn errno() -> Errno {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(EIO)
}

pub(super) fn sys(r: libc::c_long) -> Result<i32, Errno> {
    if r < 0 {
        Err(errno())
    } else {
        Ok(r as i32)
    }
}

/// A new non-blocking AF_UNIX stream socket: every kernel socket of the
/// transport is one.
pub(super) fn unix_stream() -> Result<i32, Errno> {
    // SAFETY: socket() with integer arguments.
    sys(unsafe {
        libc::syscall(
            libc::SYS_socket,
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    })
}

/// A new transport socket connected to the socket file at `a`, or the
/// connect's errno (the socket is closed then).
pub(super) fn connect_unix(a: &libc::sockaddr_un, len: u32) -> Result<i32, Errno> {
    let k = unix_stream()?;
    // SAFETY: connect with a valid address.
    if unsafe { libc::syscall(libc::SYS_connect, k, a as *const libc::sockaddr_un, len) } != 0 {
        let e = errno();
        close_kfd(k);
        return Err(e);
    }
    Ok(k)
}

/// Closes a kernel fd of the transport.
pub(super) fn close_kfd(k: i32) {
    // SAFETY: closes a descriptor this module made and no longer uses.
    unsafe { libc::syscall(libc::SYS_close, k) };
}

/// One non-blocking sendmsg of `parts` with the first `skip` bytes left
/// out; returns how many bytes the kernel took.
pub(super) fn send_gather(kfd: i32, parts: &[&[u8]], mut skip: usize) -> Result<usize, Errno> {
    let mut iov = [libc::iovec {
        iov_base: core::ptr::null_mut(),
        iov_len: 0,
    }; 4];
    let mut n = 0;
    for p in parts {
        if skip >= p.len() {
            skip -= p.len();
            continue;
        }
        if n == iov.len() {
            break;
        }
        iov[n] = libc::iovec {
            iov_base: p[skip..].as_ptr() as *mut libc::c_void,
            iov_len: p.len() - skip,
        };
        skip = 0;
        n += 1;
    }
    if n == 0 {
        return Ok(0);
    }
    // SAFETY: all-zero is a valid msghdr (no name, no control data).
    let mut msg: libc::msghdr = unsafe { core::mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = n;
    // SAFETY: the iovecs point into live slices the caller holds; the kernel
    // only reads them.
    sys(unsafe {
        libc::syscall(
            libc::SYS_sendmsg,
            kfd,
            &msg as *const libc::msghdr,
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
        )
    })
    .map(|n| n as usize)
}
/// Whether the process at the other end of the connected AF_UNIX socket
/// `kfd` runs as our effective user. The network directory is 0700, so this
/// is the second wall: a socket file made reachable by hand (or a
/// directory shared on purpose) still admits no other user's process.
pub(super) fn peer_is_us(kfd: i32) -> bool {
    // SAFETY: all-zero is a valid ucred.
    let mut cred: libc::ucred = unsafe { core::mem::zeroed() };
    let mut len = core::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `cred`.
    let r = unsafe {
        libc::syscall(
            libc::SYS_getsockopt,
            kfd,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            &mut cred as *mut libc::ucred,
            &mut len as *mut libc::socklen_t,
        )
    };
    // SAFETY: geteuid has no preconditions.
    r == 0 && cred.uid == unsafe { libc::geteuid() }
}

pub(super) fn unix_addr(path: &std::path::Path) -> Result<(libc::sockaddr_un, u32), Errno> {
    use std::os::unix::ffi::OsStrExt;
    let b = path.as_os_str().as_bytes();
    // SAFETY: all-zero is a valid sockaddr_un.
    let mut a: libc::sockaddr_un = unsafe { core::mem::zeroed() };
    if b.len() >= a.sun_path.len() {
        return Err(ENAMETOOLONG);
    }
    a.sun_family = libc::AF_UNIX as u16;
    for (d, s) in a.sun_path.iter_mut().zip(b) {
        *d = *s as libc::c_char;
    }
    Ok((a, (2 + b.len() + 1) as u32))
}

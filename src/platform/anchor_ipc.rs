//! Kernel AF_UNIX `SOCK_SEQPACKET` sockets as anchors of shared sockets
//! (SHARED.md): listening, connecting, passing a segment's memfd with
//! `SCM_RIGHTS`, one-byte doorbells, and reading the anchor's hangup. Every
//! fd made here is close-on-exec. Raw system calls throughout: the
//! library's own `socket`, `sendmsg`, `poll`... interpose the libc names.

use alloc::vec::Vec;

use crate::consts::*;

// The raw-call helpers are the transport's: one errno rule for both.
use super::unix_ipc::sys as check;

/// A new, unbound `SOCK_SEQPACKET` AF_UNIX socket, at a high number (out
/// of the way of the program's lowest free ones, as every fd the library
/// keeps for itself).
pub fn seqpacket() -> Result<i32, Errno> {
    seqpacket_with(0)
}

/// [`seqpacket`] with more of socket()'s type flags (`SOCK_NONBLOCK`).
fn seqpacket_with(flags: i32) -> Result<i32, Errno> {
    // SAFETY: plain system call.
    check(unsafe {
        libc::syscall(
            libc::SYS_socket,
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC | flags,
            0,
        )
    })
    .map(super::scm::move_high)
}

/// A connected pair of `SOCK_SEQPACKET` anchors.
pub fn seqpacket_pair() -> Result<(i32, i32), Errno> {
    let mut sv = [0i32; 2];
    // SAFETY: socketpair writes two fds into `sv`.
    check(unsafe {
        libc::syscall(
            libc::SYS_socketpair,
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            sv.as_mut_ptr(),
        )
    })?;
    Ok((sv[0], sv[1]))
}

/// A listening anchor bound at `path` (a socket file the caller's
/// directory holds), with the kernel's accept queue of `backlog`.
/// EADDRINUSE when a file is already there.
pub fn listen_at(path: &std::path::Path, backlog: i32) -> Result<i32, Errno> {
    let (a, len) = super::unix_ipc::unix_addr(path)?;
    let k = seqpacket()?;
    let made =
        super::unix_ipc::bind_unix(k, &a, len).and_then(|()| super::unix_ipc::listen(k, backlog));
    match made {
        Ok(()) => Ok(k),
        Err(e) => {
            super::unix_ipc::close_kfd(k);
            Err(e)
        }
    }
}

/// A new anchor connected to the listening anchor at `path`. Blocking, a
/// full accept queue keeps the caller waiting as Linux keeps a TCP client
/// waiting; with `nonblocking` it is EAGAIN. ECONNREFUSED when nobody
/// listens there, ENOENT when there is no file.
pub fn connect_to(path: &std::path::Path, nonblocking: bool) -> Result<i32, Errno> {
    let (a, len) = super::unix_ipc::unix_addr(path)?;
    let k = seqpacket_with(if nonblocking { libc::SOCK_NONBLOCK } else { 0 })?;
    // SAFETY: connect reads `len` bytes of the live address `a`.
    let r =
        check(unsafe { libc::syscall(libc::SYS_connect, k, &a as *const libc::sockaddr_un, len) });
    match r {
        Ok(_) => Ok(k),
        Err(e) => {
            super::unix_ipc::close_kfd(k);
            Err(e)
        }
    }
}

/// Whether anchor `kfd` has `O_NONBLOCK`.
pub fn is_nonblocking(kfd: i32) -> Result<bool, Errno> {
    // SAFETY: fcntl with integer arguments.
    let flags = check(unsafe { libc::syscall(libc::SYS_fcntl, kfd, libc::F_GETFL) })?;
    Ok(flags & libc::O_NONBLOCK != 0)
}

/// Sets or clears `O_NONBLOCK` on anchor `kfd`: a flag of its open file
/// description, which fork and dup share, as a socket's is on Linux.
pub fn set_nonblocking(kfd: i32, on: bool) -> Result<(), Errno> {
    // SAFETY: fcntl with integer arguments.
    let flags = check(unsafe { libc::syscall(libc::SYS_fcntl, kfd, libc::F_GETFL) })? as i32;
    let want = if on {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    if want != flags {
        // SAFETY: as above.
        check(unsafe { libc::syscall(libc::SYS_fcntl, kfd, libc::F_SETFL, want) })?;
    }
    Ok(())
}

/// Accepts one connection on listening anchor `kfd` (blocking unless the
/// socket is non-blocking), at a high number.
pub fn accept(kfd: i32) -> Result<i32, Errno> {
    accept_flags(kfd, libc::SOCK_CLOEXEC)
}

/// As [`accept`], never waiting (EAGAIN when nothing is queued).
pub fn accept_nonblocking(kfd: i32) -> Result<i32, Errno> {
    accept_flags(kfd, libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK)
}

fn accept_flags(kfd: i32, flags: i32) -> Result<i32, Errno> {
    // SAFETY: no address wanted.
    check(unsafe {
        libc::syscall(
            libc::SYS_accept4,
            kfd,
            core::ptr::null_mut::<libc::sockaddr>(),
            core::ptr::null_mut::<libc::socklen_t>(),
            flags,
        )
    })
    .map(super::scm::move_high)
}

/// shutdown(SHUT_RDWR) of anchor `kfd`: for a listening anchor, the
/// kernel refuses connects to it from now on and its pollers see it hung
/// up. Errors are ignored (a socket not connected stays as it is).
pub fn shutdown(kfd: i32) {
    // SAFETY: an integer fd and flag.
    unsafe { libc::syscall(libc::SYS_shutdown, kfd, libc::SHUT_RDWR) };
}

/// Waits for an exclusive flock(2) on `fd`, a file of the network
/// directory; it is released when the file closes. EINTR is waited out.
pub fn lock_exclusive(fd: i32) -> Result<(), Errno> {
    loop {
        // SAFETY: flock with integer arguments.
        match check(unsafe { libc::syscall(libc::SYS_flock, fd, libc::LOCK_EX) }) {
            Err(EINTR) => continue,
            r => return r.map(drop),
        }
    }
}

/// The path a listening AF_UNIX `SOCK_SEQPACKET` socket `fd` is bound at;
/// None for anything else (another type, not listening, unnamed).
pub fn listening_path(fd: i32) -> Option<std::path::PathBuf> {
    let int_opt = |opt: libc::c_int| {
        let mut v: libc::c_int = 0;
        let mut len = core::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes one int and its length.
        let r = unsafe {
            libc::syscall(
                libc::SYS_getsockopt,
                fd,
                libc::SOL_SOCKET,
                opt,
                &mut v as *mut libc::c_int,
                &mut len as *mut libc::socklen_t,
            )
        };
        (r == 0).then_some(v)
    };
    if int_opt(libc::SO_TYPE)? != libc::SOCK_SEQPACKET || int_opt(libc::SO_ACCEPTCONN)? != 1 {
        return None;
    }
    // SAFETY: all-zero is a valid sockaddr_un.
    let mut a: libc::sockaddr_un = unsafe { core::mem::zeroed() };
    let mut len = core::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    // SAFETY: getsockname writes at most `len` bytes into `a`.
    let r = unsafe {
        libc::syscall(
            libc::SYS_getsockname,
            fd,
            &mut a as *mut libc::sockaddr_un,
            &mut len as *mut libc::socklen_t,
        )
    };
    if r != 0 || a.sun_family != libc::AF_UNIX as u16 || a.sun_path[0] == 0 {
        return None;
    }
    let bytes: Vec<u8> = a
        .sun_path
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    use std::os::unix::ffi::OsStringExt;
    Some(std::ffi::OsString::from_vec(bytes).into())
}

/// Keeps `fd` for the library: close-on-exec, at a high number.
pub fn keep(fd: i32) -> i32 {
    super::scm::move_high(fd)
}

/// The inode of kernel fd `fd` (what tells an anchor apart).
pub fn inode(fd: i32) -> Result<u64, Errno> {
    // SAFETY: an all-zero stat is valid; fstat fills it.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: fstat writes one stat.
    check(unsafe { libc::syscall(libc::SYS_fstat, fd, &mut st as *mut libc::stat) })?;
    Ok(st.st_ino)
}

/// Sends one message: `body`, with `fds` attached (`SCM_RIGHTS`) when not
/// empty. `MSG_NOSIGNAL`: a gone peer is EPIPE, not a signal.
pub fn send_with_fds(kfd: i32, body: &[u8], fds: &[i32]) -> Result<usize, Errno> {
    const MAX_FDS: usize = 4;
    if fds.len() > MAX_FDS {
        return Err(EINVAL);
    }
    // A buffer aligned for cmsghdr, large enough for MAX_FDS fds.
    let mut ctl = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: body.as_ptr() as *mut libc::c_void,
        iov_len: body.len(),
    };
    // SAFETY: all-zero is a valid msghdr.
    let mut msg: libc::msghdr = unsafe { core::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        let data_len = core::mem::size_of_val(fds) as u32;
        // SAFETY: CMSG_SPACE is arithmetic.
        let space = unsafe { libc::CMSG_SPACE(data_len) } as usize;
        msg.msg_control = ctl.as_mut_ptr().cast();
        msg.msg_controllen = space;
        // SAFETY: the control buffer is `space` bytes (<= 64) and aligned;
        // CMSG_FIRSTHDR/CMSG_DATA point inside it.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(data_len) as usize;
            core::ptr::copy_nonoverlapping(
                fds.as_ptr(),
                libc::CMSG_DATA(c).cast::<i32>(),
                fds.len(),
            );
        }
    }
    // SAFETY: `msg` points at `iov` and `ctl`, both live for the call.
    check(unsafe {
        libc::syscall(
            libc::SYS_sendmsg,
            kfd,
            &msg as *const libc::msghdr,
            libc::MSG_NOSIGNAL,
        )
    })
    .map(|n| n as usize)
}

/// Takes every one-byte message (doorbell) waiting on anchor `kfd`, up to
/// eight per system call, without waiting: how many there were, and
/// whether the anchor read end-of-file (every holder of the peer anchor is
/// gone). One call when fewer than eight wait, where reading them one by
/// one costs a call more for the EAGAIN that ends it. A message carrying
/// fds has them closed by the kernel (no control buffer is given).
pub fn drain_messages(kfd: i32) -> (usize, bool) {
    const N: usize = 8;
    if !super::sandbox::allows(
        libc::SYS_recvmmsg,
        [kfd as u64, 0, N as u64, libc::MSG_DONTWAIT as u64, 0, 0],
    ) {
        return drain_plainly(kfd);
    }
    let mut bufs = [[0u8; 16]; N];
    let mut total = 0;
    loop {
        // SAFETY: all-zero is a valid iovec and mmsghdr.
        let mut iov: [libc::iovec; N] = unsafe { core::mem::zeroed() };
        // SAFETY: as above.
        let mut msgs: [libc::mmsghdr; N] = unsafe { core::mem::zeroed() };
        for ((m, v), b) in msgs.iter_mut().zip(iov.iter_mut()).zip(bufs.iter_mut()) {
            v.iov_base = b.as_mut_ptr().cast();
            v.iov_len = b.len();
            m.msg_hdr.msg_iov = v;
            m.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: `msgs` points at `iov` and `bufs`, all live for the call.
        let r = unsafe {
            libc::syscall(
                libc::SYS_recvmmsg,
                kfd,
                msgs.as_mut_ptr(),
                N as u32,
                libc::MSG_DONTWAIT,
                core::ptr::null_mut::<libc::timespec>(),
            )
        };
        if r <= 0 {
            return (total, false);
        }
        let got = &msgs[..r as usize];
        if got.iter().any(|m| m.msg_len == 0) {
            // An empty read on a SOCK_SEQPACKET anchor is its end: doorbells
            // are one byte.
            return (total + got.iter().filter(|m| m.msg_len > 0).count(), true);
        }
        total += got.len();
        if got.len() < N {
            return (total, false);
        }
    }
}

/// Receives one message into `body` and the fds attached to it (at most
/// `fds.len()`; any beyond are closed, as is everything when the message
/// was truncated). Returns the body's length (0 at end of file: every
/// holder of the peer anchor is gone) and the number of fds.
pub fn recv_with_fds(
    kfd: i32,
    body: &mut [u8],
    fds: &mut [i32],
    flags: i32,
) -> Result<(usize, usize), Errno> {
    let mut ctl = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: body.as_mut_ptr().cast(),
        iov_len: body.len(),
    };
    // SAFETY: all-zero is a valid msghdr.
    let mut msg: libc::msghdr = unsafe { core::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctl.as_mut_ptr().cast();
    msg.msg_controllen = core::mem::size_of_val(&ctl);
    // SAFETY: `msg` points at `iov` and `ctl`, both live for the call.
    let r = check(unsafe {
        libc::syscall(
            libc::SYS_recvmsg,
            kfd,
            &mut msg as *mut libc::msghdr,
            flags | libc::MSG_CMSG_CLOEXEC,
        )
    })?;
    let truncated = msg.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0;
    let mut got = 0;
    // SAFETY: the kernel filled `ctl` with well-formed cmsgs up to
    // msg_controllen; CMSG_NXTHDR stays within it.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let n = ((*c).cmsg_len - libc::CMSG_LEN(0) as usize) / core::mem::size_of::<i32>();
                let p = libc::CMSG_DATA(c).cast::<i32>();
                for i in 0..n {
                    let fd = p.add(i).read_unaligned();
                    if got < fds.len() && !truncated {
                        fds[got] = fd;
                        got += 1;
                    } else {
                        libc::syscall(libc::SYS_close, fd);
                    }
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    if truncated {
        return Err(EPROTO);
    }
    Ok((r as usize, got))
}

/// Rings the peer's doorbell: a one-byte message that makes its anchor
/// readable. A full queue already holds a doorbell, so EAGAIN is success;
/// a gone peer is ignored (its hangup tells the rest).
pub fn ring_bell(kfd: i32) {
    if !super::sandbox::allows(
        libc::SYS_sendto,
        [
            kfd as u64,
            0,
            1,
            (libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) as u64,
            0,
            0,
        ],
    ) {
        return ring_bell_plainly(kfd);
    }
    // SAFETY: sends one byte from a local.
    unsafe {
        libc::syscall(
            libc::SYS_sendto,
            kfd,
            b"!".as_ptr(),
            1usize,
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            core::ptr::null::<libc::sockaddr>(),
            0u32,
        )
    };
}

/// `ring_bell` for a sandbox that allows write and poll but not sendto
/// (sshd's): poll says whether the bell fits and the peer is there (no
/// MSG_DONTWAIT, no MSG_NOSIGNAL for write), then one byte is written. A
/// bell that does not fit is not needed: the peer has one unread.
fn ring_bell_plainly(kfd: i32) {
    let mut p = libc::pollfd {
        fd: kfd,
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one pollfd on the stack.
    let r = unsafe { libc::syscall(libc::SYS_poll, &mut p as *mut libc::pollfd, 1u64, 0) };
    if r != 1 || p.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
        return;
    }
    // SAFETY: writes one byte from a static.
    unsafe { libc::syscall(libc::SYS_write, kfd, b"!".as_ptr(), 1usize) };
}

/// `drain_messages` for a sandbox that allows read and poll but not
/// recvmmsg: one message per read, for as long as poll says one waits.
fn drain_plainly(kfd: i32) -> (usize, bool) {
    let mut total = 0;
    loop {
        let mut p = libc::pollfd {
            fd: kfd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd on the stack.
        let r = unsafe { libc::syscall(libc::SYS_poll, &mut p as *mut libc::pollfd, 1u64, 0) };
        if r != 1 || p.revents & libc::POLLIN == 0 {
            return (total, p.revents & libc::POLLHUP != 0);
        }
        let mut b = [0u8; 16];
        // SAFETY: reads at most 16 bytes into a local.
        let n = unsafe { libc::syscall(libc::SYS_read, kfd, b.as_mut_ptr(), b.len()) };
        match n {
            0 => return (total, true),
            n if n < 0 => return (total, false),
            _ => total += 1,
        }
    }
}

/// What an anchor's kernel state says, without taking any message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnchorState {
    /// A message (a doorbell, or control) is waiting.
    pub readable: bool,
    /// Every holder of the peer anchor has closed it (or died).
    pub hung_up: bool,
}

/// Polls anchor `kfd` for up to `ms` milliseconds (0: just look; -1: wait)
/// for a message (when `input`) or the hangup.
pub fn anchor_poll(kfd: i32, input: bool, ms: i32) -> Result<AnchorState, Errno> {
    let mut p = libc::pollfd {
        fd: kfd,
        events: if input {
            libc::POLLIN | libc::POLLRDHUP
        } else {
            libc::POLLRDHUP
        },
        revents: 0,
    };
    // SAFETY: one pollfd.
    check(unsafe { libc::syscall(libc::SYS_poll, &mut p as *mut libc::pollfd, 1u64, ms) })?;
    Ok(AnchorState {
        readable: p.revents & libc::POLLIN != 0,
        hung_up: p.revents & (libc::POLLHUP | libc::POLLRDHUP) != 0,
    })
}

/// A monotonic timerfd (non-blocking, close-on-exec, at a high number):
/// readable once the time [`timer_set`] gave it has come, until set again.
pub fn timer() -> Result<i32, Errno> {
    // SAFETY: plain system call.
    check(unsafe {
        libc::syscall(
            libc::SYS_timerfd_create,
            libc::CLOCK_MONOTONIC,
            libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
        )
    })
    .map(super::scm::move_high)
}

/// Sets timerfd `tfd` to fire once, `after` from now (at least 1 ns, so
/// that a time already passed fires at once), or disarms it (`None`).
/// Setting it again clears an expiry not yet read.
pub fn timer_set(tfd: i32, after: Option<core::time::Duration>) {
    let value = match after {
        Some(d) => {
            let d = d.max(core::time::Duration::from_nanos(1));
            libc::timespec {
                tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
                tv_nsec: d.subsec_nanos() as libc::c_long,
            }
        }
        None => libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
    };
    let spec = libc::itimerspec {
        it_interval: libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
        it_value: value,
    };
    // SAFETY: timerfd_settime reads one itimerspec; no old value asked.
    unsafe {
        libc::syscall(
            libc::SYS_timerfd_settime,
            tfd,
            0,
            &spec as *const libc::itimerspec,
            core::ptr::null_mut::<libc::itimerspec>(),
        )
    };
}

/// Bounds a blocking accept on listening anchor `kfd` (for every holder:
/// SO_RCVTIMEO is the socket's) to the shortest wait the kernel keeps (a
/// jiffy), after which it fails with EAGAIN: for a holder that accepts
/// after a poll said a connection waits, and may lose it to another.
pub fn short_accepts(kfd: i32) -> Result<(), Errno> {
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 1,
    };
    // SAFETY: setsockopt reads one timeval.
    check(unsafe {
        libc::syscall(
            libc::SYS_setsockopt,
            kfd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const libc::timeval,
            core::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

//! The life of a socket's fd number: creating, duplicating and closing the
//! kernel fds that give user-space sockets their numbers, and handing a
//! socket over to the kernel under the same number.
#![deny(unsafe_code)]

use alloc::sync::Arc;

use crate::consts::Errno;
use crate::consts::*;
use crate::fd;
use crate::platform;
use crate::socket::Socket;

/// A new kernel fd to hold a socket's number. It always carries FD_CLOEXEC
/// in the kernel, whatever the caller asked for (the fd table keeps that):
/// no eventfd standing in for a socket ever crosses exec into a new image.
pub fn new_kfd() -> Result<i32, Errno> {
    platform::kfd_new(true)
}

/// Gives `sock` (holding one reference) an fd, with the caller's
/// FD_CLOEXEC. On failure the reference is dropped.
pub fn install(sock: Arc<Socket>, cloexec: bool) -> Result<i32, Errno> {
    let fdn = match new_kfd() {
        Ok(f) => f,
        Err(e) => {
            sock.drop_ref();
            return Err(e);
        }
    };
    install_at(fdn, sock, cloexec)
}

/// Maps an fd number made beforehand with [`new_kfd`] (so that running out
/// of fds is reported before a connection is taken off the accept queue).
pub fn install_at(fdn: i32, sock: Arc<Socket>, cloexec: bool) -> Result<i32, Errno> {
    if !fd::insert(fdn, sock.clone(), cloexec) {
        let _ = platform::kfd_close(fdn);
        sock.drop_ref();
        return Err(EMFILE);
    }
    Ok(fdn)
}

/// socket().
pub fn socket(domain: i32, ty: i32, protocol: i32) -> Result<i32, Errno> {
    let info = crate::socket::check_args(domain, ty, protocol)?;
    let sock = Socket::new(info, ty & SOCK_NONBLOCK != 0)?;
    install(sock, ty & SOCK_CLOEXEC != 0)
}

/// socketpair().
pub fn socketpair(domain: i32, ty: i32, protocol: i32) -> Result<(i32, i32), Errno> {
    let info = crate::socket::check_args(domain, ty, protocol)?;
    let (a, b) = Socket::pair(info, ty & SOCK_NONBLOCK != 0)?;
    let cloexec = ty & SOCK_CLOEXEC != 0;
    let fa = match install(a, cloexec) {
        Ok(f) => f,
        Err(e) => {
            b.drop_ref();
            return Err(e);
        }
    };
    match install(b, cloexec) {
        Ok(fb) => Ok((fa, fb)),
        Err(e) => {
            let _ = close(fa);
            Err(e)
        }
    }
}

/// close() of one of our fds. `None` when the fd is not ours.
pub fn close(fdn: i32) -> Option<Result<(), Errno>> {
    let sock = fd::remove(fdn)?;
    let r = platform::kfd_close(fdn);
    sock.drop_ref();
    Some(r)
}

/// fcntl(F_DUPFD / F_DUPFD_CLOEXEC) and dup() of one of our fds.
pub fn dup_min(sock: &Arc<Socket>, fdn: i32, min: i32, cloexec: bool) -> Result<i32, Errno> {
    if min < 0 {
        return Err(EINVAL);
    }
    let newfd = platform::kfd_dup_min(fdn, min, true)?;
    sock.add_ref();
    if !fd::insert(newfd, sock.clone(), cloexec) {
        let _ = platform::kfd_close(newfd);
        sock.drop_ref();
        return Err(EMFILE);
    }
    Ok(newfd)
}

/// dup2()/dup3() where `old` or `new` is ours. `None` when neither is.
pub fn dup3(old: i32, new: i32, flags: i32, is_dup2: bool) -> Option<Result<i32, Errno>> {
    let src = fd::get(old);
    if src.is_none() && !fd::is_ours(new) {
        return None;
    }
    Some((|| {
        if old == new {
            if is_dup2 {
                return if src.is_some() { Ok(new) } else { Err(EBADF) };
            }
            return Err(EINVAL);
        }
        if flags & !libc::O_CLOEXEC != 0 {
            return Err(EINVAL);
        }
        let displaced = fd::remove(new);
        // Our sockets' kernel fds keep FD_CLOEXEC (the table has the
        // caller's flag); a kernel fd duplicated over one of ours gets the
        // caller's flags.
        let kflags = if src.is_some() {
            libc::O_CLOEXEC
        } else {
            flags
        };
        let r = platform::kfd_dup3(old, new, kflags);
        if let Some(d) = displaced {
            d.drop_ref();
        }
        let n = r?;
        if let Some(s) = src {
            s.add_ref();
            if !fd::insert(n, s.clone(), flags & libc::O_CLOEXEC != 0) {
                s.drop_ref();
                return Err(EMFILE);
            }
        }
        Ok(n)
    })())
}

/// Turns user-space socket `sock`, not yet carried by any backend, into a
/// real kernel socket with the same fd number (a routing rule sent its
/// address to the kernel): a kernel socket of the same kind takes over the
/// number with dup3, the options set so far are copied to it, and the
/// user-space socket is dropped. Other fds that `dup` made of the socket stay
/// user-space sockets.
#[cfg(feature = "std")]
pub fn to_kernel(fdn: i32, sock: &Arc<Socket>) -> Result<(), Errno> {
    let ty = sock.info.ty | if sock.nonblocking() { SOCK_NONBLOCK } else { 0 };
    let k = platform::kernel_socket(sock.info.domain, ty | SOCK_CLOEXEC, sock.info.protocol)?;
    let mut opts: alloc::vec::Vec<(i32, i32)> = alloc::vec![
        (SOL_SOCKET, SO_REUSEADDR),
        (SOL_SOCKET, SO_REUSEPORT),
        (SOL_SOCKET, SO_KEEPALIVE),
        (SOL_SOCKET, SO_BROADCAST),
        (SOL_SOCKET, SO_RCVTIMEO),
        (SOL_SOCKET, SO_SNDTIMEO),
        (SOL_SOCKET, SO_LINGER),
        (SOL_SOCKET, crate::socket::scm::SO_PASSCRED),
        (SOL_SOCKET, crate::socket::scm::SO_PASSSEC),
        (SOL_SOCKET, crate::socket::scm::SO_PASSPIDFD),
    ];
    if sock.info.ty == SOCK_STREAM && sock.info.domain != AF_UNIX {
        opts.extend([
            (IPPROTO_TCP, TCP_NODELAY),
            (IPPROTO_TCP, TCP_CORK),
            (IPPROTO_TCP, TCP_MAXSEG),
            (IPPROTO_TCP, TCP_KEEPIDLE),
            (IPPROTO_TCP, TCP_KEEPINTVL),
            (IPPROTO_TCP, TCP_KEEPCNT),
        ]);
    }
    if sock.info.domain == AF_INET6 {
        opts.push((IPPROTO_IPV6, IPV6_V6ONLY));
    }
    for (level, name) in opts {
        if let Ok(v) = sock.getsockopt(level, name) {
            let mut buf = [0u8; 16];
            let n = v.write(&mut buf);
            let _ = platform::kernel_setsockopt(k, level, name, &buf[..n]);
        }
    }
    sock.replay_kernel_opts(|level, name, val| {
        let _ = platform::kernel_setsockopt(k, level, name, val);
    });
    // The caller's FD_CLOEXEC of the number being replaced carries over.
    let cloexec = fd::cloexec(fdn);
    let r = platform::kfd_dup3(k, fdn, if cloexec { libc::O_CLOEXEC } else { 0 });
    let _ = platform::kfd_close(k);
    r?;
    if let Some(s) = fd::remove(fdn) {
        s.drop_ref();
    }
    Ok(())
}

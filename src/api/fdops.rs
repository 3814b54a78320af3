//! Operations on fd numbers: creating, duplicating and closing the kernel
//! fds that give user-space sockets their numbers.

use alloc::sync::Arc;

use crate::backend::contract::Errno;
use crate::consts::*;
use crate::fd;
use crate::platform;
use crate::socket::Socket;

/// Gives `sock` (holding one reference) an fd. On failure the reference is
/// dropped.
pub fn install(sock: Arc<Socket>, cloexec: bool) -> Result<i32, Errno> {
    let fdn = match platform::kfd_new(cloexec) {
        Ok(f) => f,
        Err(e) => {
            sock.drop_ref();
            return Err(e);
        }
    };
    if !fd::insert(fdn, sock.clone()) {
        let _ = platform::kfd_close(fdn);
        sock.drop_ref();
        return Err(EMFILE);
    }
    Ok(fdn)
}

/// Maps an fd number made beforehand (so that running out of fds is
/// reported before a connection is taken off the accept queue).
pub fn install_at(fdn: i32, sock: Arc<Socket>) -> Result<i32, Errno> {
    if !fd::insert(fdn, sock.clone()) {
        let _ = platform::kfd_close(fdn);
        sock.drop_ref();
        return Err(EMFILE);
    }
    Ok(fdn)
}

/// Before the host registered its platform table there is nothing to run
/// on: the calls that create sockets fail with ENOSYS.
fn platform_ready() -> Result<(), Errno> {
    #[cfg(not(feature = "std"))]
    if !platform::ready() {
        return Err(crate::consts::ENOSYS);
    }
    Ok(())
}

/// socket().
pub fn socket(domain: i32, ty: i32, protocol: i32) -> Result<i32, Errno> {
    platform_ready()?;
    let info = crate::socket::check_args(domain, ty, protocol)?;
    let sock = Socket::new(info, ty & SOCK_NONBLOCK != 0)?;
    install(sock, ty & SOCK_CLOEXEC != 0)
}

/// socketpair().
pub fn socketpair(domain: i32, ty: i32, protocol: i32) -> Result<(i32, i32), Errno> {
    platform_ready()?;
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
    let newfd = platform::kfd_dup_min(fdn, min, cloexec)?;
    sock.add_ref();
    if !fd::insert(newfd, sock.clone()) {
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
        let r = platform::kfd_dup3(old, new, flags);
        if let Some(d) = displaced {
            d.drop_ref();
        }
        let n = r?;
        if let Some(s) = src {
            s.add_ref();
            if !fd::insert(n, s.clone()) {
                s.drop_ref();
                return Err(EMFILE);
            }
        }
        Ok(n)
    })())
}

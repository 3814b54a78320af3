//! Kernel calls for a backend whose transport is the host's AF_UNIX
//! sockets (the cross-process backend): stream sockets on paths, gather
//! writes, peer credentials, an epoll set, the network directory. Each
//! system call is behind a safe function, so that the backends themselves
//! deny `unsafe_code`.

use crate::consts::*;

/// The calling thread's errno.
pub(super) fn errno() -> Errno {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(EIO)
}

/// A raw system call's result: its errno when negative.
pub(super) fn sys(r: libc::c_long) -> Result<i32, Errno> {
    if r < 0 {
        Err(errno())
    } else {
        Ok(r as i32)
    }
}

/// A new non-blocking AF_UNIX stream socket: every kernel socket of the
/// transport is one.
pub fn unix_stream() -> Result<i32, Errno> {
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
pub fn connect_unix(a: &libc::sockaddr_un, len: u32) -> Result<i32, Errno> {
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
pub fn close_kfd(k: i32) {
    super::private_fds::unmark(k);
    // SAFETY: closes a descriptor this module made and no longer uses.
    unsafe { libc::syscall(libc::SYS_close, k) };
}

/// One non-blocking sendmsg of `parts` with the first `skip` bytes left
/// out; returns how many bytes the kernel took.
pub fn send_gather(kfd: i32, parts: &[&[u8]], mut skip: usize) -> Result<usize, Errno> {
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
/// Users besides our own whose processes share the network
/// (`USOCK_NET_USERS`, set by `usockrun --user`: root and the user a daemon
/// switches to); u32::MAX: an empty slot.
static NET_USERS: [core::sync::atomic::AtomicU32; 4] = [
    core::sync::atomic::AtomicU32::new(u32::MAX),
    core::sync::atomic::AtomicU32::new(u32::MAX),
    core::sync::atomic::AtomicU32::new(u32::MAX),
    core::sync::atomic::AtomicU32::new(u32::MAX),
];

/// Reads `USOCK_NET_USERS` (uids separated by commas; at most four are
/// kept; anything else in it is ignored) into the users [`peer_is_us`]
/// admits besides our own.
pub fn load_network_users() {
    let Ok(v) = std::env::var("USOCK_NET_USERS") else {
        return;
    };
    let uids = v.split(',').filter_map(|u| u.trim().parse::<u32>().ok());
    for (slot, uid) in NET_USERS.iter().zip(uids) {
        slot.store(uid, core::sync::atomic::Ordering::Relaxed);
    }
}

/// Whether the process at the other end of the connected AF_UNIX socket
/// `kfd` may share our network: it runs as our effective user, or as one
/// of the users `USOCK_NET_USERS` names. The network directory is 0700, so
/// this is the second wall: a socket file made reachable by hand (or a
/// directory shared on purpose) still admits no other user's process.
pub fn peer_is_us(kfd: i32) -> bool {
    let Some((_, uid, _)) = peer_cred(kfd) else {
        return false;
    };
    // SAFETY: geteuid has no preconditions.
    uid == unsafe { libc::geteuid() }
        || NET_USERS
            .iter()
            .any(|u| u.load(core::sync::atomic::Ordering::Relaxed) == uid)
}

/// The `sockaddr_un` of `path` and its length; ENAMETOOLONG when the path
/// does not fit.
pub fn unix_addr(path: &std::path::Path) -> Result<(libc::sockaddr_un, u32), Errno> {
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

/// listen() on our own transport socket.
pub fn listen(kfd: i32, backlog: i32) -> Result<(), Errno> {
    // SAFETY: listen with integer arguments.
    sys(unsafe { libc::syscall(libc::SYS_listen, kfd, backlog) }).map(|_| ())
}

/// bind() of our own transport socket to the socket file at `a`.
pub fn bind_unix(kfd: i32, a: &libc::sockaddr_un, len: u32) -> Result<(), Errno> {
    // SAFETY: bind reads at most `len` bytes of the live address `a`
    // (`unix_addr` made `len` fit it).
    sys(unsafe {
        libc::syscall(
            libc::SYS_bind,
            kfd,
            a as *const libc::sockaddr_un,
            len.min(core::mem::size_of::<libc::sockaddr_un>() as u32),
        )
    })
    .map(|_| ())
}

/// Asks for a send buffer of `size` bytes on our own socket (the kernel
/// caps and doubles it; a failure leaves the default).
pub fn set_sndbuf(kfd: i32, size: i32) {
    // SAFETY: setsockopt reads one live int.
    unsafe {
        libc::syscall(
            libc::SYS_setsockopt,
            kfd,
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            &size as *const libc::c_int,
            core::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
}

/// A connection waiting on listener `kfd`, as a non-blocking transport
/// socket.
pub fn accept(kfd: i32) -> Result<i32, Errno> {
    // SAFETY: accept4 without an address (no pointers).
    sys(unsafe {
        libc::syscall(
            libc::SYS_accept4,
            kfd,
            0usize,
            0usize,
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    })
}

/// A new epoll set (close-on-exec).
pub fn epoll_create() -> Result<i32, Errno> {
    // SAFETY: epoll_create1 with a flag.
    sys(unsafe { libc::syscall(libc::SYS_epoll_create1, libc::EPOLL_CLOEXEC) })
}

/// epoll_ctl of `fd` in our set `epfd`, the event's data being `fd`.
pub fn epoll_ctl(epfd: i32, op: i32, fd: i32, events: u32) -> Result<(), Errno> {
    let mut ev = libc::epoll_event {
        events,
        u64: fd as u64,
    };
    // SAFETY: epoll_ctl reads one live event.
    sys(unsafe {
        libc::syscall(
            libc::SYS_epoll_ctl,
            epfd,
            op,
            fd,
            &mut ev as *mut libc::epoll_event,
        )
    })
    .map(|_| ())
}

/// Waits up to `ms` (-1: forever) for events of set `epfd`; how many of
/// `evs` were filled.
pub fn epoll_wait(epfd: i32, evs: &mut [libc::epoll_event], ms: i32) -> Result<usize, Errno> {
    let max = evs.len().min(i32::MAX as usize) as i32;
    // SAFETY: the kernel writes at most `max` events into `evs`.
    sys(unsafe { libc::syscall(libc::SYS_epoll_wait, epfd, evs.as_mut_ptr(), max, ms) })
        .map(|n| n as usize)
}

/// Waits up to `ms` for room to write on `kfd`.
pub fn poll_out(kfd: i32, ms: i32) {
    let mut p = libc::pollfd {
        fd: kfd,
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: poll on one live pollfd.
    unsafe { libc::syscall(libc::SYS_poll, &mut p as *mut libc::pollfd, 1, ms) };
}

/// Reads what `kfd` holds (without blocking) into the spare capacity of
/// `buf`, behind its bytes; returns how many bytes came (0: the end).
pub fn recv_append(kfd: i32, buf: &mut Vec<u8>) -> Result<usize, Errno> {
    let spare = buf.spare_capacity_mut();
    // SAFETY: reads at most `spare.len()` bytes into the vector's spare
    // capacity, which is ours.
    let r = sys(unsafe {
        libc::syscall(
            libc::SYS_recvfrom,
            kfd,
            spare.as_mut_ptr(),
            spare.len(),
            libc::MSG_DONTWAIT,
            0usize,
            0usize,
        )
    })? as usize;
    let len = buf.len() + r;
    // SAFETY: the kernel initialised the `r` bytes after the old end.
    unsafe { buf.set_len(len) };
    Ok(r)
}

/// The real user id of this process.
pub fn uid() -> u32 {
    // SAFETY: getuid has no preconditions.
    unsafe { libc::getuid() }
}

/// Whether this process may create and reach files in directory `dir`
/// (write and search permission), else why not.
pub fn may_use_dir(dir: &std::ffi::CStr) -> Result<(), Errno> {
    // SAFETY: access with a NUL-terminated path.
    if unsafe { libc::access(dir.as_ptr(), libc::W_OK | libc::X_OK) } != 0 {
        return Err(errno());
    }
    Ok(())
}

/// Whether some live AF_UNIX socket is bound to `path` (the kernel lists
/// it in /proc/net/unix as long as the socket exists, listening or not).
/// When that cannot be read, true: a file is then never taken for stale.
pub fn unix_path_bound(path: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(table) = std::fs::read("/proc/net/unix") else {
        return true;
    };
    let want = path.as_os_str().as_bytes();
    table.split(|&b| b == b'\n').any(|line| {
        line.len() > want.len() && line.ends_with(want) && line[line.len() - want.len() - 1] == b' '
    })
}

/// How many connections wait to be accepted on the AF_UNIX listener bound
/// at `path`: /proc/net/unix lists each with the listener's path, in state
/// SS_CONNECTING (02) until accept() gives it a socket. None when the
/// table cannot be read.
pub fn unix_waiting(path: &std::path::Path) -> Option<u32> {
    use std::os::unix::ffi::OsStrExt;
    let table = std::fs::read("/proc/net/unix").ok()?;
    let want = path.as_os_str().as_bytes();
    let n = table
        .split(|&b| b == b'\n')
        .skip(1)
        .filter(|line| {
            // Num RefCount Protocol Flags Type St Inode Path
            let named = line.len() > want.len()
                && line.ends_with(want)
                && line[line.len() - want.len() - 1] == b' ';
            named
                && line
                    .split(|&b| b == b' ')
                    .filter(|w| !w.is_empty())
                    .nth(5)
                    .is_some_and(|st| st == b"02")
        })
        .count();
    Some(n as u32)
}

/// Waits up to `ms` for input (or the end) on `kfd`; whether it came.
pub fn poll_in(kfd: i32, ms: i32) -> bool {
    let mut p = libc::pollfd {
        fd: kfd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll on one live pollfd.
    let r = unsafe { libc::syscall(libc::SYS_poll, &mut p as *mut libc::pollfd, 1, ms) };
    r > 0
}

/// The pid and effective uid and gid of the process at the other end of
/// the connected AF_UNIX socket `kfd` (SO_PEERCRED), if the kernel says.
pub fn peer_cred(kfd: i32) -> Option<(i32, u32, u32)> {
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
    (r == 0).then_some((cred.pid, cred.uid, cred.gid))
}

/// This process's id and effective user and group ids: what SO_PEERCRED
/// reports to the peer of an AF_UNIX socket it connects or listens on.
pub fn own_cred() -> (i32, u32, u32) {
    // SAFETY: getpid, geteuid and getegid have no preconditions.
    unsafe { (libc::getpid(), libc::geteuid(), libc::getegid()) }
}

/// The type (SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET) of a kernel AF_UNIX
/// socket bound at `path`, as /proc/net/unix lists it (the socket types
/// the library leaves to the kernel, e.g. SOCK_SEQPACKET, are only there);
/// `None` when none is, or the table cannot be read.
pub fn kernel_unix_type(path: &[u8]) -> Option<i32> {
    let table = std::fs::read("/proc/net/unix").ok()?;
    table.split(|&b| b == b'\n').skip(1).find_map(|line| {
        // Num RefCount Protocol Flags Type St Inode Path
        let mut f = line.split(|&b| b == b' ').filter(|w| !w.is_empty());
        let ty = f.nth(4)?;
        let ends = line.len() > path.len()
            && line.ends_with(path)
            && line[line.len() - path.len() - 1] == b' ';
        if !ends {
            return None;
        }
        let ty = core::str::from_utf8(ty).ok()?;
        i32::from_str_radix(ty, 16).ok()
    })
}

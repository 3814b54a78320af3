//! What AF_UNIX credentials and fd passing need of the host: the calling
//! process's ids, and kernel "carriers" that hold passed fds while they
//! are in flight.
//!
//! A carrier is the receiving end of a private kernel AF_UNIX datagram
//! pair into which a sendmsg's SOL_SOCKET control messages were sent as
//! they came: the kernel validates them exactly as it would for a kernel
//! socket (`__scm_send`: cmsg lengths, types, EBADF, SCM_MAX_FD, O_PATH,
//! `scm_check_creds`, ETOOMANYREFS), keeps the open files referenced while
//! they wait (without taking fd numbers of the program), and at the
//! receive installs them (lowest free numbers, MSG_CMSG_CLOEXEC,
//! MSG_PEEK's duplicates, MSG_CTRUNC and closing what does not fit or
//! passes RLIMIT_NOFILE), all as `scm_detach_fds` does. Without `std`
//! there is no kernel: no ids, no carriers.

/// The calling thread's ids (`getpid` is the thread group's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ids {
    /// Process id (thread group).
    pub pid: i32,
    /// Real user id.
    pub uid: u32,
    /// Real group id.
    pub gid: u32,
    /// Effective user id.
    pub euid: u32,
    /// Effective group id.
    pub egid: u32,
}

/// The calling thread's ids now; `None` without a kernel.
#[cfg(feature = "std")]
pub fn ids() -> Option<Ids> {
    // SAFETY: these system calls take no arguments and cannot fail. Raw
    // calls: setresuid changes them under glibc's feet per thread first.
    unsafe {
        Some(Ids {
            pid: libc::syscall(libc::SYS_getpid) as i32,
            uid: libc::syscall(libc::SYS_getuid) as u32,
            gid: libc::syscall(libc::SYS_getgid) as u32,
            euid: libc::syscall(libc::SYS_geteuid) as u32,
            egid: libc::syscall(libc::SYS_getegid) as u32,
        })
    }
}

/// The calling thread's ids now; `None` without a kernel.
#[cfg(not(feature = "std"))]
pub fn ids() -> Option<Ids> {
    None
}

#[cfg(feature = "std")]
fn errno_now() -> crate::consts::Errno {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// Sends `ctl` (a sendmsg's control buffer, as the caller gave it) into a
/// new carrier and returns the carrier's fd, placed high so that it takes
/// no number the program expects. `Err` is the kernel's errno for the
/// control messages.
#[cfg(feature = "std")]
pub fn carrier_send(ctl: &[u8]) -> Result<i32, crate::consts::Errno> {
    let mut sv = [-1i32; 2];
    // SAFETY: socketpair writes two ints into `sv`.
    let r = unsafe {
        libc::syscall(
            libc::SYS_socketpair,
            libc::AF_UNIX,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            0,
            sv.as_mut_ptr(),
        )
    };
    if r < 0 {
        return Err(errno_now());
    }
    let mut byte = 0u8;
    let mut iov = libc::iovec {
        iov_base: (&mut byte as *mut u8).cast(),
        iov_len: 1,
    };
    // SAFETY: an all-zero msghdr is valid; the fields are set below.
    let mut mh: libc::msghdr = unsafe { core::mem::zeroed() };
    mh.msg_iov = &mut iov;
    mh.msg_iovlen = 1;
    mh.msg_control = ctl.as_ptr() as *mut libc::c_void;
    mh.msg_controllen = ctl.len();
    // SAFETY: `mh` points at live buffers; the kernel only reads them.
    let r = unsafe { libc::syscall(libc::SYS_sendmsg, sv[0], &mh, libc::MSG_DONTWAIT) };
    let e = errno_now();
    let _ = super::kfd_close(sv[0]);
    if r < 0 {
        let _ = super::kfd_close(sv[1]);
        return Err(e);
    }
    Ok(move_high(sv[1]))
}

/// `fd` again at a number at least half RLIMIT_NOFILE (and at most 1000
/// up), out of the way of a program's lowest free numbers; `fd` itself
/// when there is no such room. Either way the library's own from now on
/// (`private_fds`): the program's closefrom and close leave it alone.
#[cfg(feature = "std")]
pub(crate) fn move_high(fd: i32) -> i32 {
    let kept = move_high_unmarked(fd);
    super::private_fds::mark(kept);
    kept
}

#[cfg(feature = "std")]
fn move_high_unmarked(fd: i32) -> i32 {
    use core::sync::atomic::{AtomicI32, Ordering};
    // Once RLIMIT_NOFILE allowed the ceiling, the limit is not asked
    // again (a system call per kept fd): should the program lower it
    // later, the dup below fails and `fd` stays where it is, as when
    // there is no room.
    static CEILING: AtomicI32 = AtomicI32::new(0);
    let min = match CEILING.load(Ordering::Relaxed) {
        0 => {
            // SAFETY: an all-zero rlimit is valid; getrlimit fills it.
            let mut rl: libc::rlimit = unsafe { core::mem::zeroed() };
            // SAFETY: getrlimit writes one rlimit.
            let r = unsafe { libc::syscall(libc::SYS_getrlimit, libc::RLIMIT_NOFILE, &mut rl) };
            if r < 0 {
                return fd;
            }
            let min = (rl.rlim_cur / 2).min(1000) as i32;
            if min == 1000 {
                CEILING.store(min, Ordering::Relaxed);
            }
            min
        }
        m => m,
    };
    if min <= fd {
        return fd;
    }
    match super::kfd_dup_min(fd, min, true) {
        Ok(high) => {
            let _ = super::kfd_close(fd);
            high
        }
        Err(_) => fd,
    }
}

/// Receives a carrier's fds into `ctl` (the free part of a recvmsg's
/// control buffer) as one SCM_RIGHTS message, with recvmsg's `peek` and
/// `cloexec` (MSG_CMSG_CLOEXEC). Returns the bytes used and whether the
/// kernel reported MSG_CTRUNC.
#[cfg(feature = "std")]
pub fn carrier_recv(
    carrier: i32,
    ctl: &mut [u8],
    peek: bool,
    cloexec: bool,
) -> Result<(usize, bool), crate::consts::Errno> {
    let mut byte = 0u8;
    let mut iov = libc::iovec {
        iov_base: (&mut byte as *mut u8).cast(),
        iov_len: 1,
    };
    // SAFETY: an all-zero msghdr is valid; the fields are set below.
    let mut mh: libc::msghdr = unsafe { core::mem::zeroed() };
    mh.msg_iov = &mut iov;
    mh.msg_iovlen = 1;
    if !ctl.is_empty() {
        mh.msg_control = ctl.as_mut_ptr().cast();
        mh.msg_controllen = ctl.len();
    }
    let mut flags = libc::MSG_DONTWAIT;
    if peek {
        flags |= libc::MSG_PEEK;
    }
    if cloexec {
        flags |= libc::MSG_CMSG_CLOEXEC;
    }
    // SAFETY: `mh` points at live buffers the kernel may write.
    let r = unsafe { libc::syscall(libc::SYS_recvmsg, carrier, &mut mh, flags) };
    if r < 0 {
        return Err(errno_now());
    }
    Ok((
        mh.msg_controllen.min(ctl.len()),
        mh.msg_flags & libc::MSG_CTRUNC != 0,
    ))
}

/// A pidfd of process `pid` (with FD_CLOEXEC, as SO_PEERPIDFD gives).
#[cfg(feature = "std")]
pub fn pidfd_open(pid: i32) -> Result<i32, crate::consts::Errno> {
    // SAFETY: pidfd_open takes two integers.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if r < 0 {
        Err(errno_now())
    } else {
        Ok(r as i32)
    }
}

/// No kernel to hold fds: SCM_RIGHTS cannot be carried.
#[cfg(not(feature = "std"))]
pub fn carrier_send(_ctl: &[u8]) -> Result<i32, crate::consts::Errno> {
    Err(crate::consts::EOPNOTSUPP)
}

/// No kernel to hold fds: nothing to receive.
#[cfg(not(feature = "std"))]
pub fn carrier_recv(
    _carrier: i32,
    _ctl: &mut [u8],
    _peek: bool,
    _cloexec: bool,
) -> Result<(usize, bool), crate::consts::Errno> {
    Err(crate::consts::EOPNOTSUPP)
}

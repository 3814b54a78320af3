//! The exported calls. Each is defined once under its `usock_` name (which
//! the generated header declares) and exported again under its POSIX name
//! by `posix_alias!` (which the header leaves to the system headers).
//!
//! Every call first asks the fd table whether the fd is ours; if not, it
//! goes straight to libc's definition with no lock and no allocation.

#![allow(clippy::missing_safety_doc)]

use libc::{
    c_int, c_ulong, c_void, iovec, msghdr, nfds_t, pollfd, sigset_t, sockaddr, socklen_t, ssize_t,
    timespec, timeval,
};

use super::ffi::{self, guard, ret_int, ret_size};
use super::poll;
use super::trace::arg;
use crate::consts::*;
use crate::fd;
use crate::fd::lifecycle;
use crate::platform::real;
use crate::socket::cmsg::CmsgOut;
use crate::socket::dgram_attrs::SendCtl;
use crate::socket::filter;
use crate::socket::options::OptVal;
use crate::socket::scm;

posix_alias! {
    socket = usock_socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int;
    socketpair = usock_socketpair(domain: c_int, ty: c_int, protocol: c_int, sv: *mut c_int) -> c_int;
    bind = usock_bind(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int;
    listen = usock_listen(fd: c_int, backlog: c_int) -> c_int;
    accept = usock_accept(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int;
    accept4 = usock_accept4(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t, flags: c_int) -> c_int;
    connect = usock_connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int;
    send = usock_send(fd: c_int, buf: *const c_void, len: usize, flags: c_int) -> ssize_t;
    sendto = usock_sendto(fd: c_int, buf: *const c_void, len: usize, flags: c_int, addr: *const sockaddr, alen: socklen_t) -> ssize_t;
    sendmsg = usock_sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t;
    recv = usock_recv(fd: c_int, buf: *mut c_void, len: usize, flags: c_int) -> ssize_t;
    recvfrom = usock_recvfrom(fd: c_int, buf: *mut c_void, len: usize, flags: c_int, addr: *mut sockaddr, alen: *mut socklen_t) -> ssize_t;
    recvmsg = usock_recvmsg(fd: c_int, msg: *mut msghdr, flags: c_int) -> ssize_t;
    read = usock_read(fd: c_int, buf: *mut c_void, len: usize) -> ssize_t;
    write = usock_write(fd: c_int, buf: *const c_void, len: usize) -> ssize_t;
    readv = usock_readv(fd: c_int, iov: *const iovec, n: c_int) -> ssize_t;
    writev = usock_writev(fd: c_int, iov: *const iovec, n: c_int) -> ssize_t;
    shutdown = usock_shutdown(fd: c_int, how: c_int) -> c_int;
    close = usock_close(fd: c_int) -> c_int;
    getsockname = usock_getsockname(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int;
    getpeername = usock_getpeername(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int;
    getsockopt = usock_getsockopt(fd: c_int, level: c_int, name: c_int, val: *mut c_void, len: *mut socklen_t) -> c_int;
    setsockopt = usock_setsockopt(fd: c_int, level: c_int, name: c_int, val: *const c_void, len: socklen_t) -> c_int;
    fcntl = usock_fcntl(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int;
    fcntl64 = usock_fcntl64(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int;
    ioctl = usock_ioctl(fd: c_int, req: c_ulong, arg: *mut c_void) -> c_int;
    dup = usock_dup(fd: c_int) -> c_int;
    dup2 = usock_dup2(old: c_int, new: c_int) -> c_int;
    dup3 = usock_dup3(old: c_int, new: c_int, flags: c_int) -> c_int;
    poll = usock_poll(fds: *mut pollfd, n: nfds_t, timeout: c_int) -> c_int;
    ppoll = usock_ppoll(fds: *mut pollfd, n: nfds_t, ts: *const timespec, mask: *const sigset_t) -> c_int;
    select = usock_select(n: c_int, r: *mut libc::fd_set, w: *mut libc::fd_set, e: *mut libc::fd_set, t: *mut timeval) -> c_int;
    pselect = usock_pselect(n: c_int, r: *mut libc::fd_set, w: *mut libc::fd_set, e: *mut libc::fd_set, t: *const timespec, mask: *const sigset_t) -> c_int;
}

/// Whether `s`, reached through `fd`, is a fork child's copy of a socket
/// its parent created: then the call is refused with EOPNOTSUPP (errno
/// set), and the first refused use of the socket prints one line on stderr
/// naming the fd. The sockets' state lives in the parent's memory and
/// transport; only close (and the fd-level calls: dup, F_GETFD/F_SETFD,
/// FIOCLEX/FIONCLEX, F_GETFL, fstat) work on such a copy.
#[inline]
pub(crate) fn refused(fd: c_int, s: &crate::socket::Socket) -> bool {
    if !s.inherited() {
        return false;
    }
    #[cfg(feature = "std")]
    if s.first_refusal() {
        super::fork::report_inherited(fd, super::fork::Kind::Socket);
    }
    let _ = fd;
    ffi::set_errno(EOPNOTSUPP);
    true
}

/// Routing at the first call that names an address: when the rules send
/// this socket to the kernel (and no backend carries it yet), it becomes a
/// kernel socket with the same fd number; true then, and the caller makes
/// libc's call on the fd.
fn routed_to_kernel(
    fd: c_int,
    s: &alloc::sync::Arc<crate::socket::Socket>,
    a: &crate::addr::SockAddr,
) -> Result<bool, crate::backend::contract::Errno> {
    #[cfg(feature = "std")]
    if s.binding().is_none()
        && super::fork::route_gate(|| crate::route::decide(&s.info, a))
            == crate::route::Route::Kernel
    {
        lifecycle::to_kernel(fd, s)?;
        return Ok(true);
    }
    let _ = (fd, s, a);
    Ok(false)
}

/// Creates a user-space socket, like socket(2). `SOCK_NONBLOCK` and
/// `SOCK_CLOEXEC` may be or-ed into `ty`. A domain, type or protocol the
/// library does not implement (AF_NETLINK, SOCK_RAW, IPPROTO_SCTP, ...) is
/// the kernel's socket, or the kernel's errno (hosted); without the kernel,
/// EAFNOSUPPORT when no registered backend carries the domain.
#[no_mangle]
pub unsafe extern "C" fn usock_socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int {
    guard(-1, || {
        #[allow(clippy::redundant_closure_call)]
        let r = (|| {
            if let Err(e) = super::ready() {
                return ret_int(Err(e));
            }
            match lifecycle::socket(domain, ty, protocol) {
                #[cfg(feature = "std")]
                Err(e) if crate::socket::kernel_takes(domain, e) => {
                    // SAFETY: libc's socket, same integer arguments.
                    unsafe { real::socket(domain, ty, protocol) }
                }
                r => ret_int(r),
            }
        })();
        // Traced when the socket is the library's (or the library refused).
        if r < 0 || fd::is_ours(r) {
            super::trace::call("socket", || [arg(domain), arg(ty), arg(protocol)], r.into());
        }
        r
    })
}

/// Creates a connected pair of sockets, like socketpair(2) (AF_UNIX).
#[no_mangle]
pub unsafe extern "C" fn usock_socketpair(
    domain: c_int,
    ty: c_int,
    protocol: c_int,
    sv: *mut c_int,
) -> c_int {
    guard(-1, || {
        if let Err(e) = ffi::probe(sv as *const u8, 2 * core::mem::size_of::<c_int>()) {
            return ret_int(Err(e));
        }
        #[cfg(feature = "std")]
        {
            // A socketpair has no address: the rules decide on the family's
            // unspecified one ("kernel unix" keeps AF_UNIX pairs real).
            let info = crate::backend::contract::SockInfo {
                domain,
                ty: ty & !(SOCK_NONBLOCK | SOCK_CLOEXEC),
                protocol,
            };
            let unspec = crate::addr::SockAddr::unspecified(domain);
            if super::fork::route_gate(|| crate::route::decide(&info, &unspec))
                == crate::route::Route::Kernel
            {
                // SAFETY: `sv` was probed above; libc's socketpair.
                return unsafe { real::socketpair(domain, ty, protocol, sv) };
            }
        }
        match super::ready().and_then(|()| lifecycle::socketpair(domain, ty, protocol)) {
            Ok((a, b)) => {
                // SAFETY: `sv` is non-null and points at two ints per the
                // socketpair contract.
                unsafe {
                    *sv = a;
                    *sv.add(1) = b;
                }
                0
            }
            #[cfg(feature = "std")]
            Err(e) if crate::socket::kernel_takes(domain, e) => {
                // SAFETY: `sv` was probed above; libc's socketpair.
                unsafe { real::socketpair(domain, ty, protocol, sv) }
            }
            Err(e) => ret_int(Err(e)),
        }
    })
}

/// Binds a socket to a local address, like bind(2).
#[no_mangle]
pub unsafe extern "C" fn usock_bind(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    on_socket!(fd, s, real::bind(fd, addr, len), {
        // SAFETY: `addr` is valid for `len` bytes per the bind contract.
        let a = match unsafe { ffi::read_addr(addr, len) } {
            Ok(a) => a,
            Err(e) => return ret_int(Err(e)),
        };
        match routed_to_kernel(fd, &s, &a) {
            // SAFETY: the fd is a kernel socket now: libc's call.
            Ok(true) => unsafe { real::bind(fd, addr, len) },
            Ok(false) => ret_int(s.bind(&a).map(|_| 0)),
            Err(e) => ret_int(Err(e)),
        }
    })
}

/// Marks a stream socket as accepting connections, like listen(2).
#[no_mangle]
pub unsafe extern "C" fn usock_listen(fd: c_int, backlog: c_int) -> c_int {
    on_socket!(fd, s, real::listen(fd, backlog), {
        ret_int(s.listen(backlog).map(|_| 0))
    })
}

/// Accepts a connection, like accept(2).
#[no_mangle]
pub unsafe extern "C" fn usock_accept(
    fd: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
) -> c_int {
    on_socket!(fd, s, real::accept(fd, addr, len), {
        // SAFETY: the caller's contract, passed on.
        unsafe { accept_on(&s, addr, len, 0) }
    })
}

/// accept4's work on one of our sockets (accept, accept4).
///
/// # Safety
/// `addr`/`len` are NULL or valid, as accept(2) requires.
unsafe fn accept_on(
    s: &alloc::sync::Arc<crate::socket::Socket>,
    addr: *mut sockaddr,
    len: *mut socklen_t,
    flags: c_int,
) -> c_int {
    if flags & !(SOCK_NONBLOCK | SOCK_CLOEXEC) != 0 {
        return ret_int(Err(EINVAL));
    }
    if !addr.is_null() && len.is_null() {
        return ret_int(Err(EFAULT));
    }
    // The fd first: with none left, accept() fails with EMFILE and the
    // connection stays queued, as on Linux.
    let kfd = match lifecycle::new_kfd() {
        Ok(k) => k,
        Err(e) => return ret_int(Err(e)),
    };
    let child = match s.accept(false) {
        Ok(c) => c,
        Err(e) => {
            let _ = crate::platform::kfd_close(kfd);
            return ret_int(Err(e));
        }
    };
    child.set_nonblocking(flags & SOCK_NONBLOCK != 0);
    let peer = child.accepted_from();
    let nfd = match lifecycle::install_at(kfd, child, flags & SOCK_CLOEXEC != 0) {
        Ok(n) => n,
        Err(e) => return ret_int(Err(e)),
    };
    // SAFETY: `addr`/`len` are NULL or valid per the accept contract.
    if let Err(e) = unsafe { ffi::write_addr(&peer, addr, len) } {
        let _ = lifecycle::close(nfd);
        return ret_int(Err(e));
    }
    nfd
}

/// Accepts a connection, like accept4(2) (`SOCK_NONBLOCK`, `SOCK_CLOEXEC`).
#[no_mangle]
pub unsafe extern "C" fn usock_accept4(
    fd: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
    flags: c_int,
) -> c_int {
    on_socket!(fd, s, real::accept4(fd, addr, len, flags), {
        // SAFETY: the caller's contract, passed on.
        unsafe { accept_on(&s, addr, len, flags) }
    })
}

/// Connects a socket, like connect(2).
#[no_mangle]
pub unsafe extern "C" fn usock_connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    on_socket!(fd, s, real::connect(fd, addr, len), {
        // SAFETY: `addr` is valid for `len` bytes per the connect contract.
        let a = match unsafe { ffi::read_addr(addr, len) } {
            Ok(a) => a,
            Err(e) => return ret_int(Err(e)),
        };
        match routed_to_kernel(fd, &s, &a) {
            // SAFETY: the fd is a kernel socket now: libc's call.
            Ok(true) => unsafe { real::connect(fd, addr, len) },
            Ok(false) => ret_int(s.connect(&a).map(|_| 0)),
            Err(e) => ret_int(Err(e)),
        }
    })
}

/// Sends on a connected socket, like send(2).
#[no_mangle]
pub unsafe extern "C" fn usock_send(
    fd: c_int,
    buf: *const c_void,
    len: usize,
    flags: c_int,
) -> ssize_t {
    on_socket!(fd, s, real::send(fd, buf, len, flags), {
        // SAFETY: the caller's contract, passed on.
        unsafe { sendto_on(fd, &s, buf, len, flags, core::ptr::null(), 0) }
    })
}

/// sendto's work on one of our sockets (send, sendto, write).
///
/// # Safety
/// `buf` valid for `len` bytes, `addr` NULL or valid for `alen`, as
/// sendto(2) requires.
unsafe fn sendto_on(
    fd: c_int,
    s: &alloc::sync::Arc<crate::socket::Socket>,
    buf: *const c_void,
    len: usize,
    flags: c_int,
    addr: *const sockaddr,
    alen: socklen_t,
) -> ssize_t {
    // SAFETY: `buf` is valid for `len` bytes per the send contract.
    let data = match unsafe { ffi::buf(buf, len) } {
        Ok(d) => d,
        Err(e) => return ret_size(Err(e)),
    };
    let dest = if addr.is_null() {
        None
    } else {
        // SAFETY: `addr` is valid for `alen` bytes per the contract.
        match unsafe { ffi::read_addr(addr, alen) } {
            Ok(a) => Some(a),
            Err(e) => return ret_size(Err(e)),
        }
    };
    if let Some(a) = &dest {
        match routed_to_kernel(fd, s, a) {
            // SAFETY: the fd is a kernel socket now: libc's call.
            Ok(true) => return unsafe { real::sendto(fd, buf, len, flags, addr, alen) },
            Ok(false) => {}
            Err(e) => return ret_size(Err(e)),
        }
    }
    ret_size(s.send(&[data], flags, dest.as_ref()))
}

/// Sends, to `addr` when given, like sendto(2).
#[no_mangle]
pub unsafe extern "C" fn usock_sendto(
    fd: c_int,
    buf: *const c_void,
    len: usize,
    flags: c_int,
    addr: *const sockaddr,
    alen: socklen_t,
) -> ssize_t {
    on_socket!(fd, s, real::sendto(fd, buf, len, flags, addr, alen), {
        // SAFETY: the caller's contract, passed on.
        unsafe { sendto_on(fd, &s, buf, len, flags, addr, alen) }
    })
}

/// sendmsg(2) on a kernel socket: shared sockets in its SCM_RIGHTS cross
/// to the receiving process (`scm_kernel`).
unsafe fn kernel_sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t {
    #[cfg(feature = "std")]
    // SAFETY: the caller's contract, passed on.
    return unsafe { super::scm_kernel::sendmsg(fd, msg, flags) };
    #[cfg(not(feature = "std"))]
    // SAFETY: the caller's contract, passed on.
    unsafe {
        real::sendmsg(fd, msg, flags)
    }
}

/// recvmsg(2) on a kernel socket: shared sockets that arrive in its
/// SCM_RIGHTS become the library's (`scm_kernel`).
unsafe fn kernel_recvmsg(fd: c_int, msg: *mut msghdr, flags: c_int) -> ssize_t {
    #[cfg(feature = "std")]
    // SAFETY: the caller's contract, passed on.
    return unsafe { super::scm_kernel::recvmsg(fd, msg, flags) };
    #[cfg(not(feature = "std"))]
    // SAFETY: the caller's contract, passed on.
    unsafe {
        real::recvmsg(fd, msg, flags)
    }
}

/// Sends a message, like sendmsg(2). Of the control data, a UDP socket
/// reads what one datagram may ask (IP_PKTINFO, IP_TTL, IP_TOS,
/// IPV6_PKTINFO, IPV6_HOPLIMIT, IPV6_TCLASS: `SendCtl`); the rest is
/// ignored.
#[no_mangle]
pub unsafe extern "C" fn usock_sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t {
    on_socket!(fd, s, real::sendmsg(fd, msg, flags) via kernel_sendmsg, {
        if let Err(e) = ffi::probe(msg as *const u8, core::mem::size_of::<msghdr>()) {
            return ret_size(Err(e));
        }
        // SAFETY: `msg` is non-null and valid per the sendmsg contract.
        let m = unsafe { &*msg };
        // More entries than UIO_MAXIOV: EMSGSIZE for the msghdr calls
        // (__copy_msghdr), where readv/writev say EINVAL.
        if m.msg_iovlen > ffi::IOV_MAX {
            return ret_size(Err(EMSGSIZE));
        }
        // Linux copies the whole control buffer in before reading it
        // (ENOBUFS beyond INT_MAX).
        if m.msg_controllen > i32::MAX as usize {
            return ret_size(Err(ENOBUFS));
        }
        if m.msg_controllen > 0 {
            if let Err(e) = ffi::probe(m.msg_control as *const u8, m.msg_controllen) {
                return ret_size(Err(e));
            }
        }
        // SAFETY: the iovec array is valid per the contract.
        let bufs = match unsafe { ffi::iov(m.msg_iov, m.msg_iovlen as i32) } {
            Ok(b) => b,
            Err(e) => return ret_size(Err(e)),
        };
        let dest = if m.msg_name.is_null() || m.msg_namelen == 0 {
            None
        } else {
            // A longer msg_namelen is cut to a sockaddr_storage, as Linux's
            // __copy_msghdr does (sendto's EINVAL is not sendmsg's).
            let len = m
                .msg_namelen
                .min(core::mem::size_of::<libc::sockaddr_storage>() as u32);
            // SAFETY: msg_name is valid for msg_namelen bytes.
            match unsafe { ffi::read_addr(m.msg_name as *const sockaddr, len) } {
                Ok(a) => Some(a),
                Err(e) => return ret_size(Err(e)),
            }
        };
        if let Some(a) = &dest {
            match routed_to_kernel(fd, &s, a) {
                // SAFETY: the fd is a kernel socket now: libc's call.
                Ok(true) => return unsafe { real::sendmsg(fd, msg, flags) },
                Ok(false) => {}
                Err(e) => return ret_size(Err(e)),
            }
        }
        let mut ctl = SendCtl::default();
        if m.msg_controllen > 0 && s.info.ty == libc::SOCK_DGRAM && s.info.domain != libc::AF_UNIX {
            // SAFETY: msg_control was probed for msg_controllen bytes above.
            let cbuf = match unsafe { ffi::buf(m.msg_control, m.msg_controllen) } {
                Ok(b) => b,
                Err(e) => return ret_size(Err(e)),
            };
            if let Err(e) = read_send_cmsgs(cbuf, s.info.domain, &mut ctl) {
                return ret_size(Err(e));
            }
        }
        if m.msg_controllen > 0 && s.info.domain == AF_UNIX {
            // SAFETY: msg_control was probed for msg_controllen bytes above.
            let cbuf = match unsafe { ffi::buf(m.msg_control, m.msg_controllen) } {
                Ok(b) => b,
                Err(e) => return ret_size(Err(e)),
            };
            match stage_unix_control(cbuf) {
                Ok(id) => ctl.scm = id,
                Err(e) => return ret_size(Err(e)),
            }
        }
        let r = s.send_with(&bufs, flags, dest.as_ref(), &ctl);
        scm::send_done(ctl.scm);
        ret_size(r)
    })
}

/// An AF_UNIX sendmsg's SCM_RIGHTS and SCM_CREDENTIALS (`socket::scm`):
/// checked as `__scm_send` checks them, the fds held by a kernel carrier
/// (which checks them again, as the kernel's own sockets would, and holds
/// the files), our sockets among them referenced, all staged for the
/// message. Returns the staged id (0: nothing to carry).
fn stage_unix_control(cbuf: &[u8]) -> Result<u64, Errno> {
    let parsed = scm::parse_send(cbuf)?;
    if !parsed.needs_carrier() {
        return Ok(0);
    }
    // EBADF before the carrier takes a number a bad fd may name.
    for &f in &parsed.rights {
        crate::platform::kfd_fcntl(f, libc::F_GETFD, 0)?;
    }
    let carrier = crate::platform::scm::carrier_send(cbuf)?;
    let carrier = if parsed.rights.is_empty() {
        // Credentials only: the kernel checked them; nothing to hold.
        let _ = crate::platform::kfd_close(carrier);
        -1
    } else {
        carrier
    };
    let mut socks = alloc::vec::Vec::new();
    for (i, &f) in parsed.rights.iter().enumerate() {
        if let Some(sock) = fd::get(f) {
            // The fd in flight holds the socket as an fd would.
            sock.add_ref();
            socks.push((i, sock));
        }
    }
    Ok(scm::stage_send(&parsed, carrier, socks))
}

/// Installs the fds a received AF_UNIX message carried, after the other
/// control messages in `out`: the kernel carrier installs them (lowest
/// free numbers, MSG_CMSG_CLOEXEC, MSG_CTRUNC closing what does not fit),
/// then each of our sockets among them gets its new number in the fd
/// table, as dup() would give it.
fn install_rights(fds: &scm::InflightFds, peek: bool, cloexec: bool, out: &mut CmsgOut<'_>) {
    let Ok((n, truncated)) =
        crate::platform::scm::carrier_recv(fds.carrier, out.rest(), peek, cloexec)
    else {
        return;
    };
    let rest = out.rest();
    if n >= 16 && !fds.socks.is_empty() {
        let len = (u64::from_ne_bytes(rest[..8].try_into().unwrap_or([0; 8])) as usize).min(n);
        let nums: alloc::vec::Vec<i32> = rest[16..len]
            .chunks_exact(4)
            .map(|c| i32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        for (i, sock) in &fds.socks {
            let Some(&newfd) = nums.get(*i) else { continue };
            // Our sockets' kernel fds always have FD_CLOEXEC; the table
            // keeps the caller's.
            let _ = crate::platform::kfd_fcntl(newfd, libc::F_SETFD, libc::FD_CLOEXEC as u64);
            sock.add_ref();
            if !fd::insert(newfd, sock.clone(), cloexec) {
                sock.drop_ref();
            }
        }
    }
    out.advance(n, truncated);
}

/// Walks a sendmsg's control messages as Linux's `for_each_cmsghdr` and
/// `__cmsg_nxthdr` do (LP64 headers: a `size_t` length, the level, the
/// type), handing each to `ctl`. A header whose length is shorter than a
/// header or runs past the buffer is EINVAL (`cmsghdr_from_user_compat`
/// aside, as in `ip_cmsg_send`).
fn read_send_cmsgs(buf: &[u8], domain: i32, ctl: &mut SendCtl) -> Result<(), Errno> {
    const HDR: usize = 16;
    let align = |n: usize| n.div_ceil(8) * 8;
    let mut at = 0usize;
    while buf.len() >= at + HDR {
        let len = u64::from_ne_bytes(buf[at..at + 8].try_into().map_err(|_| EINVAL)?) as usize;
        if len < HDR || len > buf.len() - at {
            return Err(EINVAL);
        }
        let level = i32::from_ne_bytes(buf[at + 8..at + 12].try_into().map_err(|_| EINVAL)?);
        let ty = i32::from_ne_bytes(buf[at + 12..at + 16].try_into().map_err(|_| EINVAL)?);
        ctl.take(domain, level, ty, &buf[at + HDR..at + len])?;
        at += align(len);
    }
    Ok(())
}

/// Receives, like recv(2).
#[no_mangle]
pub unsafe extern "C" fn usock_recv(
    fd: c_int,
    buf: *mut c_void,
    len: usize,
    flags: c_int,
) -> ssize_t {
    on_socket!(fd, s, real::recv(fd, buf, len, flags), {
        // SAFETY: the caller's contract, passed on.
        unsafe {
            recvfrom_on(
                &s,
                buf,
                len,
                flags,
                core::ptr::null_mut(),
                core::ptr::null_mut(),
            )
        }
    })
}

/// recvfrom's work on one of our sockets (recv, recvfrom, read).
///
/// # Safety
/// `buf` valid for `len` bytes, `addr`/`alen` NULL or valid, as
/// recvfrom(2) requires.
unsafe fn recvfrom_on(
    s: &alloc::sync::Arc<crate::socket::Socket>,
    buf: *mut c_void,
    len: usize,
    flags: c_int,
    addr: *mut sockaddr,
    alen: *mut socklen_t,
) -> ssize_t {
    if flags & MSG_TRUNC != 0 && s.is_stream() && s.info.domain != AF_UNIX {
        // TCP copies nothing: the buffer may be NULL.
        return ret_size(s.recv_stream_trunc(len, flags));
    }
    // SAFETY: `buf` is valid for `len` bytes per the recv contract.
    let b = match unsafe { ffi::buf_mut(buf, len) } {
        Ok(b) => b,
        Err(e) => return ret_size(Err(e)),
    };
    let mut bufs = [b];
    match s.recv(&mut bufs, flags) {
        Ok(info) => {
            if let Some(a) = info.addr {
                // SAFETY: `addr`/`alen` NULL or valid per the contract.
                if let Err(e) = unsafe { ffi::write_addr(&a, addr, alen) } {
                    return ret_size(Err(e));
                }
            } else if !addr.is_null() && !alen.is_null() && (!s.is_stream() || s.keeps_records()) {
                // SAFETY: as above.
                unsafe { *alen = 0 };
            }
            info.ret as ssize_t
        }
        Err(e) => ret_size(Err(e)),
    }
}

/// Receives with the sender's address, like recvfrom(2).
#[no_mangle]
pub unsafe extern "C" fn usock_recvfrom(
    fd: c_int,
    buf: *mut c_void,
    len: usize,
    flags: c_int,
    addr: *mut sockaddr,
    alen: *mut socklen_t,
) -> ssize_t {
    on_socket!(fd, s, real::recvfrom(fd, buf, len, flags, addr, alen), {
        // SAFETY: the caller's contract, passed on.
        unsafe { recvfrom_on(&s, buf, len, flags, addr, alen) }
    })
}

/// Receives a message, like recvmsg(2): `msg_flags` reports MSG_TRUNC and
/// MSG_CTRUNC; the control data is what the socket's options ask for
/// (`Socket::recv_control`).
#[no_mangle]
pub unsafe extern "C" fn usock_recvmsg(fd: c_int, msg: *mut msghdr, flags: c_int) -> ssize_t {
    on_socket!(fd, s, real::recvmsg(fd, msg, flags) via kernel_recvmsg, {
        if let Err(e) = ffi::probe(msg as *const u8, core::mem::size_of::<msghdr>()) {
            return ret_size(Err(e));
        }
        // SAFETY: `msg` is non-null and valid per the recvmsg contract.
        let m = unsafe { &mut *msg };
        // As in usock_sendmsg.
        if m.msg_iovlen > ffi::IOV_MAX {
            return ret_size(Err(EMSGSIZE));
        }
        // SAFETY: the iovec array is valid per the contract.
        let mut bufs = match unsafe { ffi::iov_mut(m.msg_iov, m.msg_iovlen as i32) } {
            Ok(b) => b,
            Err(e) => return ret_size(Err(e)),
        };
        let flags = flags & !scm::MSG_TAKES_CONTROL;
        let cloexec = flags & libc::MSG_CMSG_CLOEXEC != 0;
        match s.recv(&mut bufs, flags | scm::MSG_TAKES_CONTROL) {
            Ok(info) => {
                if !m.msg_name.is_null() {
                    match info.addr {
                        Some(a) => {
                            // SAFETY: msg_name is valid for msg_namelen bytes.
                            let _ = unsafe {
                                ffi::write_addr(&a, m.msg_name as *mut sockaddr, &mut m.msg_namelen)
                            };
                        }
                        None => m.msg_namelen = 0,
                    }
                }
                let mut flags = if info.truncated { MSG_TRUNC } else { 0 };
                if info.err.is_some() {
                    flags |= MSG_ERRQUEUE;
                }
                // SAFETY: msg_control is valid for msg_controllen bytes per
                // the contract (probed: a bad pointer writes nothing).
                let ctl = unsafe { ffi::buf_mut(m.msg_control, m.msg_controllen) };
                let mut out = CmsgOut::new(ctl.unwrap_or(&mut []));
                s.recv_control(&info, &mut out);
                if let Some((fds, peek)) = s.unix_control(&info, &mut out) {
                    install_rights(&fds, peek, cloexec, &mut out);
                }
                if out.truncated() {
                    flags |= MSG_CTRUNC;
                }
                m.msg_controllen = out.used();
                m.msg_flags = flags;
                info.ret as ssize_t
            }
            Err(e) => ret_size(Err(e)),
        }
    })
}

/// read(2): recv() with no flags on our sockets, libc's read otherwise.
#[no_mangle]
pub unsafe extern "C" fn usock_read(fd: c_int, buf: *mut c_void, len: usize) -> ssize_t {
    on_socket!(fd, s, real::read(fd, buf, len), {
        // SAFETY: the caller's contract, passed on.
        unsafe {
            recvfrom_on(
                &s,
                buf,
                len,
                0,
                core::ptr::null_mut(),
                core::ptr::null_mut(),
            )
        }
    })
}

/// write(2): send() with no flags on our sockets, libc's write otherwise.
#[no_mangle]
pub unsafe extern "C" fn usock_write(fd: c_int, buf: *const c_void, len: usize) -> ssize_t {
    on_socket!(fd, s, real::write(fd, buf, len), {
        // SAFETY: the caller's contract, passed on.
        unsafe { sendto_on(fd, &s, buf, len, 0, core::ptr::null(), 0) }
    })
}

/// readv(2).
#[no_mangle]
pub unsafe extern "C" fn usock_readv(fd: c_int, iov: *const iovec, n: c_int) -> ssize_t {
    on_socket!(fd, s, real::readv(fd, iov, n), {
        // SAFETY: the iovec array is valid per the readv contract.
        let mut bufs = match unsafe { ffi::iov_mut(iov, n) } {
            Ok(b) => b,
            Err(e) => return ret_size(Err(e)),
        };
        ret_size(s.recv(&mut bufs, 0).map(|i| i.ret))
    })
}

/// writev(2).
#[no_mangle]
pub unsafe extern "C" fn usock_writev(fd: c_int, iov: *const iovec, n: c_int) -> ssize_t {
    on_socket!(fd, s, real::writev(fd, iov, n), {
        // SAFETY: the iovec array is valid per the writev contract.
        let bufs = match unsafe { ffi::iov(iov, n) } {
            Ok(b) => b,
            Err(e) => return ret_size(Err(e)),
        };
        ret_size(s.send(&bufs, 0, None))
    })
}

/// shutdown(2).
#[no_mangle]
pub unsafe extern "C" fn usock_shutdown(fd: c_int, how: c_int) -> c_int {
    on_socket!(fd, s, real::shutdown(fd, how), {
        ret_int(s.shutdown(how).map(|_| 0))
    })
}

/// Whether `fd` is one the library keeps for itself
/// (`platform::private_fds`): one load.
#[inline]
fn library_fd(fd: c_int) -> bool {
    #[cfg(feature = "std")]
    return crate::platform::private_fds::is_private(fd);
    #[cfg(not(feature = "std"))]
    {
        let _ = fd;
        false
    }
}

/// close(2): the last fd of a socket closes it (end-of-stream or reset to
/// its peer, blocked threads woken); the library's own fds are EBADF, as if
/// not open (`platform::private_fds`); other fds go to libc.
#[no_mangle]
pub unsafe extern "C" fn usock_close(fd: c_int) -> c_int {
    if !fd::is_ours(fd) && !library_fd(fd) {
        guard((), || {
            // An epoll fd's side table holds its sockets: it goes with the fd.
            #[cfg(feature = "std")]
            crate::socket::mux::epoll::forget(fd);
        });
        // SAFETY: passthrough.
        return unsafe { real::close(fd) };
    }
    guard(-1, || {
        if library_fd(fd) {
            return ret_int(Err(EBADF));
        }
        let r = match lifecycle::close(fd) {
            Some(r) => ret_int(r.map(|_| 0)),
            // SAFETY: passthrough (closed concurrently by another thread).
            None => unsafe { real::close(fd) },
        };
        super::trace::call("close", || [arg(fd)], r.into());
        r
    })
}

/// getsockname(2).
#[no_mangle]
pub unsafe extern "C" fn usock_getsockname(
    fd: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
) -> c_int {
    on_socket!(fd, s, real::getsockname(fd, addr, len), {
        if addr.is_null() || len.is_null() {
            return ret_int(Err(EFAULT));
        }
        // SAFETY: valid per the getsockname contract.
        ret_int(unsafe { ffi::write_addr(&s.sockname(), addr, len) }.map(|_| 0))
    })
}

/// getpeername(2).
#[no_mangle]
pub unsafe extern "C" fn usock_getpeername(
    fd: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
) -> c_int {
    on_socket!(fd, s, real::getpeername(fd, addr, len), {
        if addr.is_null() || len.is_null() {
            return ret_int(Err(EFAULT));
        }
        match s.peer_addr() {
            // SAFETY: valid per the getpeername contract.
            Ok(a) => ret_int(unsafe { ffi::write_addr(&a, addr, len) }.map(|_| 0)),
            Err(e) => ret_int(Err(e)),
        }
    })
}

/// getsockopt(2): see the README for the options supported.
#[no_mangle]
pub unsafe extern "C" fn usock_getsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *mut c_void,
    len: *mut socklen_t,
) -> c_int {
    on_socket!(fd, s, real::getsockopt(fd, level, name, val, len), {
        if let Err(e) = ffi::probe(len as *const u8, core::mem::size_of::<socklen_t>()) {
            return ret_int(Err(e));
        }
        // SAFETY: `len` is non-null and valid per the contract.
        let cap = unsafe { *len } as i32;
        if cap < 0 {
            return ret_int(Err(EINVAL));
        }
        // TCP_SAVED_SYN's EINVAL reports the length it needs.
        let v = match s.saved_syn_opt(level, name, cap as usize) {
            Some(Err(need)) => {
                // SAFETY: `len` was probed above.
                unsafe { *len = need as socklen_t };
                return ret_int(Err(EINVAL));
            }
            Some(Ok(b)) => Ok(OptVal::Bytes(b)),
            // IP_MSFILTER and MCAST_MSFILTER read their request (the group)
            // from the buffer they answer in.
            None if crate::socket::Socket::whole_source_filter(level, name) => {
                // SAFETY: `val` is valid for `cap` bytes per the contract.
                match unsafe { ffi::buf(val, cap as usize) } {
                    Err(e) => Err(e),
                    Ok(input) => match s.source_filter_opt(level, name, input) {
                        Some(r) => r.map(OptVal::Bytes),
                        None => s.getsockopt_len(level, name, cap as usize),
                    },
                }
            }
            None => s.getsockopt_len(level, name, cap as usize),
        };
        let v: OptVal = match v {
            Ok(v) => v,
            Err(e) => return ret_int(Err(e)),
        };
        if (level, name) == (SOL_SOCKET, filter::SO_ATTACH_FILTER) {
            // SAFETY: as for any option; `optlen` counts instructions.
            return ret_int(unsafe { get_filter(&v, val, len, cap as usize) });
        }
        // Only the bytes the option has are written: view just those, not
        // the whole `optlen` the caller claims.
        let want = (cap as usize).min(v.size());
        // SAFETY: `val` is valid for `cap >= want` bytes per the contract.
        let out = match unsafe { ffi::buf_mut(val, want) } {
            Ok(o) => o,
            Err(e) => return ret_int(Err(e)),
        };
        let n = v.write(out);
        // SAFETY: as above.
        unsafe { *len = n as socklen_t };
        0
    })
}

/// setsockopt(2): see the README for the options supported.
#[no_mangle]
pub unsafe extern "C" fn usock_setsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *const c_void,
    len: socklen_t,
) -> c_int {
    on_socket!(fd, s, real::setsockopt(fd, level, name, val, len), {
        if (len as i32) < 0 {
            return ret_int(Err(EINVAL));
        }
        if let Err(e) = ffi::probe(val as *const u8, len as usize) {
            return ret_int(Err(e));
        }
        if (level, name) == (SOL_SOCKET, filter::SO_ATTACH_FILTER) {
            // SAFETY: `val` is valid for `len` bytes per the contract.
            return ret_int(unsafe { attach_filter(&s, val, len as usize) });
        }
        // SAFETY: `val` is valid for `len` bytes per the contract.
        match unsafe { ffi::buf(val, len as usize) } {
            Ok(v) => ret_int(s.setsockopt(level, name, v).map(|_| 0)),
            Err(e) => ret_int(Err(e)),
        }
    })
}

/// SO_ATTACH_FILTER's `struct sock_fprog` (a count and a pointer to the
/// instructions): the socket is given the instructions, read here, with
/// Linux's order of errors: EINVAL for another length, EPERM on a locked
/// socket before the program is looked at, EINVAL for a NULL, empty or
/// oversized one (given as empty), EFAULT for a bad pointer.
///
/// # Safety
/// `val` is valid for `len` bytes; the pointer in it is NULL or valid for
/// the count of instructions it gives.
unsafe fn attach_filter(
    s: &crate::socket::Socket,
    val: *const c_void,
    len: usize,
) -> Result<i32, Errno> {
    if len != core::mem::size_of::<libc::sock_fprog>() {
        return Err(EINVAL);
    }
    // SAFETY: probed for `len` bytes by the caller; read unaligned.
    let fprog = unsafe { core::ptr::read_unaligned(val as *const libc::sock_fprog) };
    let n = usize::from(fprog.len);
    let bytes = n * core::mem::size_of::<libc::sock_filter>();
    let prog: &[u8] = if fprog.filter.is_null() || n > 4096 {
        &[]
    } else {
        if ffi::probe(fprog.filter as *const u8, bytes).is_err() {
            return Err(if s.filter_locked() { EPERM } else { EFAULT });
        }
        // SAFETY: non-null and valid for `n` instructions per the caller.
        unsafe { ffi::buf(fprog.filter as *const c_void, bytes)? }
    };
    s.setsockopt(SOL_SOCKET, filter::SO_ATTACH_FILTER, prog)
        .map(|_| 0)
}

/// SO_GET_FILTER: `v` holds the program's instructions (none without
/// one); `optlen` is in instructions, as in Linux's `sk_get_filter`.
///
/// # Safety
/// `len` is valid; `val` is NULL or valid for `cap` instructions.
unsafe fn get_filter(
    v: &OptVal,
    val: *mut c_void,
    len: *mut socklen_t,
    cap: usize,
) -> Result<i32, Errno> {
    let OptVal::Bytes(prog) = v else {
        return Err(EINVAL);
    };
    let (n, copy) = filter::get_filter_for(prog, cap)?;
    // SAFETY: the caller gave room for `cap >= n` instructions.
    let out = unsafe { ffi::buf_mut(val, copy.len())? };
    out.copy_from_slice(copy);
    // SAFETY: valid per the contract.
    unsafe { *len = n as socklen_t };
    Ok(0)
}

/// fcntl(2). Declared here with a fixed third argument: on the Linux ABIs
/// this library supports (x86-64, AArch64) a variadic caller passes it in
/// the same register.
#[no_mangle]
pub unsafe extern "C" fn usock_fcntl(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    let Some(s) = fd::get(fd) else {
        // SAFETY: passthrough.
        return unsafe { real::fcntl(fd, cmd, arg) };
    };
    guard(-1, || {
        #[allow(clippy::redundant_closure_call)]
        let r = (|| match cmd {
            libc::F_GETFL => {
                O_RDWR
                    | if s.nonblocking() { O_NONBLOCK } else { 0 }
                    | if s.async_io() { libc::O_ASYNC } else { 0 }
            }
            // The caller's FD_CLOEXEC lives in the fd table (the kernel fd
            // always has it: see lifecycle::new_kfd).
            libc::F_GETFD => {
                if fd::cloexec(fd) {
                    libc::FD_CLOEXEC
                } else {
                    0
                }
            }
            libc::F_SETFD => {
                fd::set_cloexec(fd, arg as c_int & libc::FD_CLOEXEC != 0);
                0
            }
            libc::F_DUPFD | libc::F_DUPFD_CLOEXEC => ret_int(lifecycle::dup_min(
                &s,
                fd,
                arg as c_int,
                cmd == libc::F_DUPFD_CLOEXEC,
            )),
            _ if refused(fd, &s) => -1,
            libc::F_SETFL => {
                s.set_nonblocking(arg as c_int & O_NONBLOCK != 0);
                s.set_async_io(arg as c_int & libc::O_ASYNC != 0);
                0
            }
            // The owner lives on the kernel fd that holds the number; the
            // socket keeps a copy for SIGURG.
            libc::F_SETOWN => {
                let r = crate::platform::kfd_fcntl(fd, cmd, arg);
                if r.is_ok() {
                    s.set_owner(arg as c_int);
                }
                ret_int(r)
            }
            F_SETOWN_EX => {
                let r = crate::platform::kfd_fcntl(fd, cmd, arg);
                if r.is_ok() {
                    // SAFETY: the kernel just read a struct f_owner_ex (type,
                    // pid: two ints) there.
                    let [ty, pid] = unsafe { core::ptr::read_unaligned(arg as *const [c_int; 2]) };
                    s.set_owner(if ty == F_OWNER_PGRP { -pid } else { pid });
                }
                ret_int(r)
            }
            // The rest live on the kernel fd that holds the number.
            _ => ret_int(crate::platform::kfd_fcntl(fd, cmd, arg)),
        })();
        super::trace::call(
            "fcntl",
            || {
                [
                    super::trace::arg(fd),
                    super::trace::arg(cmd),
                    super::trace::arg(arg),
                ]
            },
            r.into(),
        );
        r
    })
}

/// fcntl F_SETOWN_EX and its owner type for a process group
/// (<linux/fcntl.h>; not in the libc crate).
const F_SETOWN_EX: c_int = 15;
const F_OWNER_PGRP: c_int = 2;

/// fcntl64: the same as [`usock_fcntl`] on 64-bit Linux.
#[no_mangle]
pub unsafe extern "C" fn usock_fcntl64(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    if !fd::is_ours(fd) {
        // SAFETY: passthrough.
        return unsafe { real::fcntl64(fd, cmd, arg) };
    }
    // SAFETY: same contract.
    unsafe { usock_fcntl(fd, cmd, arg) }
}

/// ioctl(2). Answered from the socket's state: FIONBIO, FIONREAD/SIOCINQ,
/// FIOCLEX/FIONCLEX, SIOCOUTQ/TIOCOUTQ and SIOCOUTQNSD (a TCP socket's
/// unsent bytes), SIOCGSTAMP(NS), SIOCATMARK on a stream (at the
/// urgent mark), and the owner (SIOCSPGRP/FIOSETOWN, SIOCGPGRP/FIOGETOWN, as
/// fcntl F_SETOWN/F_GETOWN). Any other request (the interface ioctls
/// SIOCGIFCONF, SIOCGIFFLAGS, ..., and those the kernel refuses) is asked
/// of a fresh kernel socket of the same family and type, so the bytes and
/// the errno are the kernel's (hosted; ENOTTY without a kernel). FIOASYNC
/// (as fcntl O_ASYNC) has the owner sent SIGIO when the socket becomes
/// readable or writable.
#[no_mangle]
pub unsafe extern "C" fn usock_ioctl(fd: c_int, req: c_ulong, arg: *mut c_void) -> c_int {
    let Some(s) = fd::get(fd) else {
        // SAFETY: passthrough.
        return unsafe { real::ioctl(fd, req, arg) };
    };
    guard(-1, || {
        #[allow(clippy::redundant_closure_call)]
        let r = (|| {
            // FD_CLOEXEC, the caller's, in the fd table (as fcntl F_SETFD).
            if req == libc::FIOCLEX || req == libc::FIONCLEX {
                fd::set_cloexec(fd, req == libc::FIOCLEX);
                return 0;
            }
            if refused(fd, &s) {
                return -1;
            }
            // SAFETY: `arg` is the request's argument per the ioctl contract.
            ret_int(unsafe { socket_ioctl(fd, &s, req, arg) })
        })();
        super::trace::call(
            "ioctl",
            || {
                [
                    super::trace::arg(fd),
                    super::trace::arg(req),
                    super::trace::arg(arg),
                ]
            },
            r.into(),
        );
        r
    })
}

/// Writes `v` through the request's `int *` argument.
///
/// # Safety
/// `p` is the caller's argument (probed here).
unsafe fn put_int(p: *mut c_void, v: c_int) -> Result<c_int, Errno> {
    ffi::probe(p as *const u8, 4)?;
    // SAFETY: probed for an int just above.
    unsafe { *(p as *mut c_int) = v };
    Ok(0)
}

/// The `int` behind the request's `int *` argument.
///
/// # Safety
/// `p` is the caller's argument (probed here).
unsafe fn get_int(p: *mut c_void) -> Result<c_int, Errno> {
    ffi::probe(p as *const u8, 4)?;
    // SAFETY: probed for an int just above.
    Ok(unsafe { *(p as *const c_int) })
}

/// The requests of [`usock_ioctl`] on one of our sockets.
///
/// # Safety
/// `arg` is the caller's argument for `req`.
unsafe fn socket_ioctl(
    fd: c_int,
    s: &crate::socket::Socket,
    req: c_ulong,
    arg: *mut c_void,
) -> Result<c_int, Errno> {
    let tcp_listener = s.is_stream() && s.info.domain != AF_UNIX && s.has_listen_flag();
    // SAFETY (each call below): `arg` is the caller's, probed by the
    // helpers before any access.
    match req {
        libc::FIONBIO => {
            s.set_nonblocking(unsafe { get_int(arg) }? != 0);
            Ok(0)
        }
        // A listener has no queue to count: EINVAL (TCP's and
        // unix_ioctl's alike).
        libc::FIONREAD if s.is_stream() && s.has_listen_flag() => Err(EINVAL),
        libc::FIONREAD => unsafe {
            put_int(arg, s.pending_bytes().min(i32::MAX as usize) as c_int)
        },
        libc::TIOCOUTQ | SIOCOUTQNSD if tcp_listener => Err(EINVAL),
        libc::TIOCOUTQ if s.info.domain == AF_UNIX => unsafe {
            put_int(arg, s.unread_by_peer().min(i32::MAX as u64) as c_int)
        },
        // TCP: the bytes not sent yet (corked or queued past the peer's
        // window); on lo what was sent counts as acknowledged.
        libc::TIOCOUTQ | SIOCOUTQNSD => unsafe {
            put_int(arg, s.unsent().min(i32::MAX as u64) as c_int)
        },
        SIOCATMARK if s.is_stream() => unsafe { put_int(arg, i32::from(s.at_mark())) },
        SIOCGSTAMP | SIOCGSTAMPNS => {
            let ns = if s.is_stream() {
                Err(ENOENT)
            } else {
                s.last_stamp_ns()
            }?;
            let frac = if req == SIOCGSTAMP {
                (ns % 1_000_000_000) / 1000
            } else {
                ns % 1_000_000_000
            };
            let v = [(ns / 1_000_000_000) as i64, frac as i64];
            ffi::probe(arg as *const u8, 16)?;
            // SAFETY: probed for a struct timeval/timespec (two 64-bit
            // fields on the 64-bit ABIs) just above.
            unsafe { core::ptr::copy_nonoverlapping(v.as_ptr(), arg as *mut i64, 2) };
            Ok(0)
        }
        SIOCSPGRP | FIOSETOWN => {
            let pid = unsafe { get_int(arg) }?;
            let r = crate::platform::kfd_fcntl(fd, libc::F_SETOWN, pid as i64 as u64);
            if r.is_ok() {
                s.set_owner(pid);
            }
            r
        }
        SIOCGPGRP | FIOGETOWN => {
            let pid = crate::platform::kfd_fcntl(fd, libc::F_GETOWN, 0)?;
            unsafe { put_int(arg, pid) }
        }
        libc::FIOASYNC => {
            let on = unsafe { get_int(arg) }?;
            s.set_async_io(on != 0);
            Ok(0)
        }
        #[cfg(feature = "std")]
        _ => {
            // SAFETY: the caller's argument for `req`, as it passed it.
            unsafe { crate::platform::kernel_twin_ioctl(s.info.domain, s.info.ty, req, arg) }
        }
        #[cfg(not(feature = "std"))]
        _ => Err(libc::ENOTTY),
    }
}

/// dup(2).
#[no_mangle]
pub unsafe extern "C" fn usock_dup(fd: c_int) -> c_int {
    let Some(s) = fd::get(fd) else {
        // SAFETY: passthrough.
        return unsafe { real::dup(fd) };
    };
    guard(-1, || ret_int(lifecycle::dup_min(&s, fd, 0, false)))
}

/// dup2(2).
#[no_mangle]
pub unsafe extern "C" fn usock_dup2(old: c_int, new: c_int) -> c_int {
    guard(-1, || match lifecycle::dup3(old, new, 0, true) {
        Some(r) => ret_int(r),
        // SAFETY: passthrough.
        None => unsafe { real::dup2(old, new) },
    })
}

/// dup3(2).
#[no_mangle]
pub unsafe extern "C" fn usock_dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
    guard(-1, || match lifecycle::dup3(old, new, flags, false) {
        Some(r) => ret_int(r),
        // SAFETY: passthrough.
        None => unsafe { real::dup3(old, new, flags) },
    })
}

/// poll(2) over any mix of our sockets and kernel fds.
#[no_mangle]
pub unsafe extern "C" fn usock_poll(fds: *mut pollfd, n: nfds_t, timeout: c_int) -> c_int {
    // SAFETY: `fds` is valid for `n` entries per the poll contract.
    guard(-1, || unsafe {
        poll::poll(fds, n, poll::ms_timeout(timeout), None)
    })
}

/// ppoll(2) over any mix of our sockets and kernel fds.
#[no_mangle]
pub unsafe extern "C" fn usock_ppoll(
    fds: *mut pollfd,
    n: nfds_t,
    ts: *const timespec,
    mask: *const sigset_t,
) -> c_int {
    guard(-1, || {
        // SAFETY: `ts` is NULL or valid per the ppoll contract.
        let t = match unsafe { poll::ts_timeout(ts) } {
            Ok(t) => t,
            Err(e) => return ret_int(Err(e)),
        };
        // SAFETY: as above for `fds` and `mask`.
        unsafe { poll::poll(fds, n, t, if mask.is_null() { None } else { Some(mask) }) }
    })
}

/// select(2) over any mix of our sockets and kernel fds.
#[no_mangle]
pub unsafe extern "C" fn usock_select(
    n: c_int,
    r: *mut libc::fd_set,
    w: *mut libc::fd_set,
    e: *mut libc::fd_set,
    t: *mut timeval,
) -> c_int {
    // SAFETY: pointers valid per the select contract.
    guard(-1, || unsafe {
        poll::select(n, r, w, e, poll::Timeout::Timeval(t), None)
    })
}

/// pselect(2) over any mix of our sockets and kernel fds.
#[no_mangle]
pub unsafe extern "C" fn usock_pselect(
    n: c_int,
    r: *mut libc::fd_set,
    w: *mut libc::fd_set,
    e: *mut libc::fd_set,
    t: *const timespec,
    mask: *const sigset_t,
) -> c_int {
    // SAFETY: pointers valid per the pselect contract.
    guard(-1, || unsafe {
        poll::select(
            n,
            r,
            w,
            e,
            poll::Timeout::Timespec(t),
            if mask.is_null() { None } else { Some(mask) },
        )
    })
}

/// Sets the routing rules from C (NUL-terminated text, the syntax of
/// `USOCK_ROUTE`). Returns 0, or -EINVAL for a rule set that does not parse
/// (the old rules stay).
///
/// # Safety
/// `text` must be NULL or a NUL-terminated string.
#[cfg(feature = "std")]
#[no_mangle]
pub unsafe extern "C" fn usock_route_set(text: *const core::ffi::c_char) -> core::ffi::c_int {
    // SAFETY: same contract.
    guard(-EIO, || unsafe { route_set(text) })
}

/// # Safety
/// As [`usock_route_set`].
#[cfg(feature = "std")]
unsafe fn route_set(text: *const core::ffi::c_char) -> core::ffi::c_int {
    if text.is_null() {
        return -EINVAL;
    }
    // SAFETY: NUL-terminated per the contract of usock_route_set.
    let s = unsafe { core::ffi::CStr::from_ptr(text) };
    match s
        .to_str()
        .map_err(|_| ())
        .and_then(|t| super::fork::route_gate(|| crate::route::set(t)).map_err(|_| ()))
    {
        Ok(()) => 0,
        Err(_) => -EINVAL,
    }
}

/// Whether `fd` is one of the library's sockets or epoll sets (1) or not
/// (0: a kernel fd, a closed fd, or a negative number). Under the launcher
/// this tells which side a routing rule sent a socket to. Like the kernel's
/// fd table, the answer may change at once if another thread closes `fd`.
#[no_mangle]
pub extern "C" fn usock_is_userspace(fd: c_int) -> c_int {
    guard(0, || crate::fd::is_ours(fd) as c_int)
}

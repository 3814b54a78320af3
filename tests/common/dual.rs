//! The same case on the kernel's sockets and on the library's, compared.
//!
//! A case that claims Linux behaviour is written once, generic over where
//! its sockets live, and run twice: on kernel sockets and on the library's.
//! It records what it observes (return values, errnos, data, relations
//! between addresses) in a [`Trace`]; [`compare`] runs both and fails at
//! the first observation where the library differs from the kernel. The
//! case's own assertions run on both sides too, so an expectation copied
//! wrongly from Linux fails on the kernel first.
//!
//! Two levels:
//! - [`Sys`], the C API: [`Kernel`] makes raw system calls, [`Lib`] calls
//!   the library's `usock_*` functions. A test binary links the library,
//!   whose exported POSIX names (`socket`, `read`, ...) take the place of
//!   libc's, so libc's wrappers and `std::net` reach the library, not the
//!   kernel (`nm` on a test binary lists `T socket`); only raw
//!   `syscall(2)` is sure to reach the kernel.
//! - [`Stack`], the native Rust API: [`Usock`] is `userspacesock::net`;
//!   [`Kernel`] is a thin twin of it over raw system calls ([`KStream`],
//!   [`KListener`], [`KDgram`]) that does what `std::net` does on Linux
//!   (SO_REUSEADDR before a listener's bind, MSG_NOSIGNAL on writes,
//!   SOCK_CLOEXEC), so that both sides make the same calls.
#![allow(dead_code)]

use std::fmt::Debug;
use std::io::{self, ErrorKind, IoSlice, IoSliceMut};
use std::net::{Shutdown, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::time::Duration;

use libc::{sockaddr, sockaddr_storage, socklen_t};
use userspacesock::api::posix::*;

// ------------------------------------------------------------- the trace

/// What one run of a case observed, in order: (what, value).
pub struct Trace {
    /// The side it ran on.
    pub side: &'static str,
    seen: Vec<(String, String)>,
}

impl Trace {
    /// An empty trace for side `side`.
    pub fn new(side: &'static str) -> Trace {
        Trace {
            side,
            seen: Vec::new(),
        }
    }

    /// Records that `what` was `v` (its `Debug` form).
    pub fn see(&mut self, what: impl Into<String>, v: impl Debug) {
        self.seen.push((what.into(), format!("{v:?}")));
    }

    /// Records an `io::Result` as `Ok(value)` or `Err(ERRNO)`.
    pub fn res<T: Debug>(&mut self, what: impl Into<String>, r: &io::Result<T>) {
        let v = match r {
            Ok(v) => format!("Ok({v:?})"),
            Err(e) => format!("Err({})", io_name(e)),
        };
        self.seen.push((what.into(), v));
    }

    /// Records an `io::Result` as `Ok` or `Err(ERRNO)`, ignoring the value
    /// (a port number, a socket).
    pub fn ok<T>(&mut self, what: impl Into<String>, r: &io::Result<T>) {
        let v = match r {
            Ok(_) => "Ok".to_string(),
            Err(e) => format!("Err({})", io_name(e)),
        };
        self.seen.push((what.into(), v));
    }

    /// Records a C-style result: `Ok(value)` or `Err(ERRNO)`.
    pub fn sys<T: Debug>(&mut self, what: impl Into<String>, r: &R<T>) {
        let v = match r {
            Ok(v) => format!("Ok({v:?})"),
            Err(e) => format!("Err({})", errno_name(*e)),
        };
        self.seen.push((what.into(), v));
    }
}

/// Runs `kernel` then `library` (the same case on each side) and fails at
/// the first observation where they differ; a panic inside either run is
/// reported with the side it happened on.
pub fn compare(case: &str, kernel: impl FnOnce() -> Trace, library: impl FnOnce() -> Trace) {
    let k = run_side(case, "the kernel", kernel);
    let l = run_side(case, "the library", library);
    let n = k.seen.len().max(l.seen.len());
    for i in 0..n {
        let a = k.seen.get(i);
        let b = l.seen.get(i);
        if a != b {
            let show = |t: Option<&(String, String)>| {
                t.map_or("(nothing)".to_string(), |(w, v)| format!("{w} = {v}"))
            };
            let mut all = String::new();
            for (j, (w, v)) in k.seen.iter().enumerate() {
                all += &format!("\n  {j:3} kernel: {w} = {v}");
            }
            panic!(
                "{case}: observation {i} differs\n  {}: {}\n  {}: {}\nthe kernel's trace:{all}",
                k.side,
                show(a),
                l.side,
                show(b),
            );
        }
    }
    // Shown with --nocapture: what was compared.
    println!("{case}: {n} observations agree");
    for (w, v) in &k.seen {
        println!("  {w} = {v}");
    }
}

/// A divergence from Linux that is known and not fixed yet: runs both
/// sides like [`compare`], and fails if they agree (the divergence is gone:
/// drop the exception and compare again). Either way it says so on stderr
/// past libtest's capture, so that it shows in every run.
pub fn known_divergence(
    case: &str,
    note: &str,
    kernel: impl FnOnce() -> Trace,
    library: impl FnOnce() -> Trace,
) {
    use std::io::Write;
    let k = run_side(case, "the kernel", kernel);
    let l = run_side(case, "the library", library);
    assert!(
        k.seen != l.seen,
        "{case}: the known divergence ({note}) is gone: compare this case again"
    );
    let first = k.seen.iter().zip(&l.seen).position(|(a, b)| a != b);
    let show = |t: &Trace, i: Option<usize>| {
        i.and_then(|i| t.seen.get(i))
            .map_or("(nothing)".to_string(), |(w, v)| format!("{w} = {v}"))
    };
    let _ = writeln!(
        std::io::stderr(),
        "KNOWN DIVERGENCE {case}: {note}\n  kernel: {}\n  library: {}",
        show(&k, first),
        show(&l, first)
    );
}

fn run_side(case: &str, side: &str, f: impl FnOnce() -> Trace) -> Trace {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(t) => t,
        Err(p) => {
            eprintln!("{case}: failed on {side}");
            std::panic::resume_unwind(p)
        }
    }
}

/// The name of errno `e` (`EAGAIN`), or its number.
pub fn errno_name(e: i32) -> String {
    let names = [
        (libc::EAGAIN, "EAGAIN"),
        (libc::EADDRINUSE, "EADDRINUSE"),
        (libc::EADDRNOTAVAIL, "EADDRNOTAVAIL"),
        (libc::EAFNOSUPPORT, "EAFNOSUPPORT"),
        (libc::EBADF, "EBADF"),
        (libc::ECONNABORTED, "ECONNABORTED"),
        (libc::ECONNREFUSED, "ECONNREFUSED"),
        (libc::ECONNRESET, "ECONNRESET"),
        (libc::EDESTADDRREQ, "EDESTADDRREQ"),
        (libc::EINPROGRESS, "EINPROGRESS"),
        (libc::EINVAL, "EINVAL"),
        (libc::EISCONN, "EISCONN"),
        (libc::EMSGSIZE, "EMSGSIZE"),
        (libc::ENOBUFS, "ENOBUFS"),
        (libc::ENOPROTOOPT, "ENOPROTOOPT"),
        (libc::ENOTCONN, "ENOTCONN"),
        (libc::EOPNOTSUPP, "EOPNOTSUPP"),
        (libc::EPIPE, "EPIPE"),
        (libc::EPERM, "EPERM"),
    ];
    names
        .iter()
        .find(|(n, _)| *n == e)
        .map_or_else(|| format!("errno {e}"), |(_, s)| s.to_string())
}

/// An `io::Error` by its errno name, or its kind when it has none (an
/// error std or the Rust API made up, such as InvalidInput).
pub fn io_name(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => errno_name(n),
        None => format!("{:?}", e.kind()),
    }
}

// ------------------------------------------------------------- addresses

/// A socket address in C layout, any family.
#[derive(Clone, Copy)]
pub struct Addr {
    raw: sockaddr_storage,
    len: socklen_t,
}

impl Addr {
    /// Room for any address (for calls that fill one in).
    pub fn room() -> Addr {
        Addr {
            // SAFETY: all-zero is a valid sockaddr_storage.
            raw: unsafe { std::mem::zeroed() },
            len: std::mem::size_of::<sockaddr_storage>() as socklen_t,
        }
    }

    /// From a `std` address (sockaddr_in or sockaddr_in6).
    pub fn ip(a: SocketAddr) -> Addr {
        let b = userspacesock::net::to_sockaddr(&a);
        Addr::bytes(b.as_bytes())
    }

    /// 127.0.0.1:`port`.
    pub fn v4(port: u16) -> Addr {
        Addr::ip(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    /// `[::]:port`, the IPv6 wildcard.
    pub fn any6(port: u16) -> Addr {
        Addr::ip(SocketAddr::from(([0u16; 8], port)))
    }

    /// An AF_UNSPEC address (connect() with it dissolves an association).
    pub fn unspec() -> Addr {
        Addr::bytes(&(libc::AF_UNSPEC as u16).to_ne_bytes())
    }

    /// A filesystem AF_UNIX address.
    pub fn unix(path: &str) -> Addr {
        let mut b = (libc::AF_UNIX as u16).to_ne_bytes().to_vec();
        b.extend_from_slice(path.as_bytes());
        b.push(0);
        Addr::bytes(&b)
    }

    /// From the bytes of a C address.
    pub fn bytes(b: &[u8]) -> Addr {
        let mut a = Addr::room();
        assert!(b.len() <= std::mem::size_of::<sockaddr_storage>());
        // SAFETY: `b` fits in the storage (checked above); both are plain
        // bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(
                b.as_ptr(),
                &mut a.raw as *mut sockaddr_storage as *mut u8,
                b.len(),
            )
        };
        a.len = b.len() as socklen_t;
        a
    }

    /// The address family.
    pub fn family(&self) -> i32 {
        i32::from(self.raw.ss_family)
    }

    /// The length in bytes.
    pub fn len(&self) -> socklen_t {
        self.len
    }

    fn ptr(&self) -> *const sockaddr {
        &self.raw as *const sockaddr_storage as *const sockaddr
    }

    fn mut_ptr(&mut self) -> *mut sockaddr {
        &mut self.raw as *mut sockaddr_storage as *mut sockaddr
    }

    /// As a `std` address; None for other families.
    pub fn to_std(self) -> Option<SocketAddr> {
        // SAFETY: the family says which layout the storage holds.
        unsafe {
            match self.family() {
                libc::AF_INET => {
                    let s = &*(self.ptr() as *const libc::sockaddr_in);
                    Some(SocketAddr::V4(SocketAddrV4::new(
                        u32::from_be(s.sin_addr.s_addr).into(),
                        u16::from_be(s.sin_port),
                    )))
                }
                libc::AF_INET6 => {
                    let s = &*(self.ptr() as *const libc::sockaddr_in6);
                    Some(SocketAddr::V6(SocketAddrV6::new(
                        s.sin6_addr.s6_addr.into(),
                        u16::from_be(s.sin6_port),
                        s.sin6_flowinfo,
                        s.sin6_scope_id,
                    )))
                }
                _ => None,
            }
        }
    }

    /// The port (0 for families without one).
    pub fn port(&self) -> u16 {
        self.to_std().map_or(0, |a| a.port())
    }
}

impl Debug for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.to_std() {
            Some(a) => write!(f, "{a}"),
            None => write!(f, "family {} ({} bytes)", self.family(), self.len),
        }
    }
}

// ------------------------------------------------------------- the C API

/// A C call's result: the value, or the errno it failed with.
pub type R<T> = Result<T, i32>;

fn errno() -> i32 {
    // SAFETY: reads this thread's errno.
    unsafe { *libc::__errno_location() }
}

/// `r` as a result: the errno when negative.
fn ret(r: isize) -> R<usize> {
    if r < 0 {
        Err(errno())
    } else {
        Ok(r as usize)
    }
}

/// The socket calls of one side. Every fd a test gets from one side is
/// used with that side's calls only.
pub trait Sys: 'static {
    /// "kernel" or "library", for messages.
    const NAME: &'static str;
    /// socket(2).
    fn socket(domain: i32, ty: i32, protocol: i32) -> R<i32>;
    /// bind(2).
    fn bind(fd: i32, a: &Addr) -> R<()>;
    /// listen(2).
    fn listen(fd: i32, backlog: i32) -> R<()>;
    /// accept4(2): the new fd and the peer's address.
    fn accept(fd: i32, flags: i32) -> R<(i32, Addr)>;
    /// connect(2).
    fn connect(fd: i32, a: &Addr) -> R<()>;
    /// sendto(2); `to` None is send(2).
    fn sendto(fd: i32, data: &[u8], flags: i32, to: Option<&Addr>) -> R<usize>;
    /// recvfrom(2): the length and the source.
    fn recvfrom(fd: i32, buf: &mut [u8], flags: i32) -> R<(usize, Addr)>;
    /// sendmsg(2) from several buffers, to `to` if given.
    fn sendmsg(fd: i32, bufs: &[IoSlice<'_>], flags: i32, to: Option<&Addr>) -> R<usize>;
    /// recvmsg(2) into several buffers: (returned length, source, msg_flags).
    fn recvmsg(fd: i32, bufs: &mut [IoSliceMut<'_>], flags: i32) -> R<(usize, Addr, i32)>;
    /// setsockopt(2).
    fn setsockopt(fd: i32, level: i32, name: i32, val: &[u8]) -> R<()>;
    /// getsockopt(2) into `out`: the length reported.
    fn getsockopt(fd: i32, level: i32, name: i32, out: &mut [u8]) -> R<usize>;
    /// getsockname(2).
    fn getsockname(fd: i32) -> R<Addr>;
    /// getpeername(2).
    fn getpeername(fd: i32) -> R<Addr>;
    /// shutdown(2).
    fn shutdown(fd: i32, how: i32) -> R<()>;
    /// close(2).
    fn close(fd: i32) -> R<()>;
    /// poll(2).
    fn poll(fds: &mut [libc::pollfd], ms: i32) -> R<usize>;
    /// fcntl(2) with an integer argument.
    fn fcntl(fd: i32, cmd: i32, arg: i32) -> R<i32>;
    /// dup(2).
    fn dup(fd: i32) -> R<i32>;

    /// An int option.
    fn set_int(fd: i32, level: i32, name: i32, v: i32) -> R<()> {
        Self::setsockopt(fd, level, name, &v.to_ne_bytes())
    }

    /// An int option's value.
    fn get_int(fd: i32, level: i32, name: i32) -> R<i32> {
        let mut b = [0u8; 4];
        let n = Self::getsockopt(fd, level, name, &mut b)?;
        assert_eq!(n, 4, "getsockopt({level}, {name}) length");
        Ok(i32::from_ne_bytes(b))
    }

    /// Sets or clears O_NONBLOCK.
    fn set_nonblocking(fd: i32, on: bool) -> R<()> {
        let fl = Self::fcntl(fd, libc::F_GETFL, 0)?;
        let fl = if on {
            fl | libc::O_NONBLOCK
        } else {
            fl & !libc::O_NONBLOCK
        };
        Self::fcntl(fd, libc::F_SETFL, fl).map(|_| ())
    }

    /// Whether `fd` is readable within `ms` milliseconds (POLLIN).
    fn readable(fd: i32, ms: i32) -> bool {
        let mut p = [libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        }];
        Self::poll(&mut p, ms).expect("poll") == 1 && p[0].revents & libc::POLLIN != 0
    }
}

/// Kernel sockets, through raw system calls.
pub struct Kernel;

/// A raw system call's result as an `R`.
fn sc(r: libc::c_long) -> R<usize> {
    ret(r as isize)
}

impl Sys for Kernel {
    const NAME: &'static str = "kernel";
    fn socket(domain: i32, ty: i32, protocol: i32) -> R<i32> {
        // SAFETY: a system call with integer arguments.
        sc(unsafe { libc::syscall(libc::SYS_socket, domain, ty, protocol) }).map(|v| v as i32)
    }
    fn bind(fd: i32, a: &Addr) -> R<()> {
        // SAFETY: a valid address and its length.
        sc(unsafe { libc::syscall(libc::SYS_bind, fd, a.ptr(), a.len) }).map(|_| ())
    }
    fn listen(fd: i32, backlog: i32) -> R<()> {
        // SAFETY: a system call with integer arguments.
        sc(unsafe { libc::syscall(libc::SYS_listen, fd, backlog) }).map(|_| ())
    }
    fn accept(fd: i32, flags: i32) -> R<(i32, Addr)> {
        let mut a = Addr::room();
        // SAFETY: room for any address, and its length.
        let r = unsafe { libc::syscall(libc::SYS_accept4, fd, a.mut_ptr(), &mut a.len, flags) };
        sc(r).map(|v| (v as i32, a))
    }
    fn connect(fd: i32, a: &Addr) -> R<()> {
        // SAFETY: a valid address and its length.
        sc(unsafe { libc::syscall(libc::SYS_connect, fd, a.ptr(), a.len) }).map(|_| ())
    }
    fn sendto(fd: i32, data: &[u8], flags: i32, to: Option<&Addr>) -> R<usize> {
        let (p, l) = to.map_or((std::ptr::null(), 0), |a| (a.ptr(), a.len));
        // SAFETY: a valid buffer; a valid address or none.
        sc(unsafe { libc::syscall(libc::SYS_sendto, fd, data.as_ptr(), data.len(), flags, p, l) })
    }
    fn recvfrom(fd: i32, buf: &mut [u8], flags: i32) -> R<(usize, Addr)> {
        let mut a = Addr::room();
        // SAFETY: a valid buffer; room for any address, and its length.
        let r = unsafe {
            libc::syscall(
                libc::SYS_recvfrom,
                fd,
                buf.as_mut_ptr(),
                buf.len(),
                flags,
                a.mut_ptr(),
                &mut a.len,
            )
        };
        sc(r).map(|n| (n, a))
    }
    fn sendmsg(fd: i32, bufs: &[IoSlice<'_>], flags: i32, to: Option<&Addr>) -> R<usize> {
        let m = msghdr_out(bufs, to);
        // SAFETY: the header points at live buffers (IoSlice is iovec).
        sc(unsafe { libc::syscall(libc::SYS_sendmsg, fd, &m, flags) })
    }
    fn recvmsg(fd: i32, bufs: &mut [IoSliceMut<'_>], flags: i32) -> R<(usize, Addr, i32)> {
        let mut a = Addr::room();
        let mut m = msghdr_in(bufs, &mut a);
        // SAFETY: the header points at live buffers and address room.
        let r = unsafe { libc::syscall(libc::SYS_recvmsg, fd, &mut m, flags) };
        let (len, fl) = (m.msg_namelen, m.msg_flags);
        a.len = len;
        sc(r).map(|n| (n, a, fl))
    }
    fn setsockopt(fd: i32, level: i32, name: i32, val: &[u8]) -> R<()> {
        // SAFETY: a valid buffer and its length.
        sc(unsafe {
            libc::syscall(
                libc::SYS_setsockopt,
                fd,
                level,
                name,
                val.as_ptr(),
                val.len() as socklen_t,
            )
        })
        .map(|_| ())
    }
    fn getsockopt(fd: i32, level: i32, name: i32, out: &mut [u8]) -> R<usize> {
        let mut l = out.len() as socklen_t;
        // SAFETY: a valid buffer and its length.
        sc(unsafe {
            libc::syscall(
                libc::SYS_getsockopt,
                fd,
                level,
                name,
                out.as_mut_ptr(),
                &mut l,
            )
        })
        .map(|_| l as usize)
    }
    fn getsockname(fd: i32) -> R<Addr> {
        let mut a = Addr::room();
        // SAFETY: room for any address, and its length.
        sc(unsafe { libc::syscall(libc::SYS_getsockname, fd, a.mut_ptr(), &mut a.len) }).map(|_| a)
    }
    fn getpeername(fd: i32) -> R<Addr> {
        let mut a = Addr::room();
        // SAFETY: room for any address, and its length.
        sc(unsafe { libc::syscall(libc::SYS_getpeername, fd, a.mut_ptr(), &mut a.len) }).map(|_| a)
    }
    fn shutdown(fd: i32, how: i32) -> R<()> {
        // SAFETY: a system call with integer arguments.
        sc(unsafe { libc::syscall(libc::SYS_shutdown, fd, how) }).map(|_| ())
    }
    fn close(fd: i32) -> R<()> {
        // SAFETY: closes an fd the caller owns.
        sc(unsafe { libc::syscall(libc::SYS_close, fd) }).map(|_| ())
    }
    fn poll(fds: &mut [libc::pollfd], ms: i32) -> R<usize> {
        // SAFETY: valid pollfds and their count.
        sc(unsafe { libc::syscall(libc::SYS_poll, fds.as_mut_ptr(), fds.len(), ms) })
    }
    fn fcntl(fd: i32, cmd: i32, arg: i32) -> R<i32> {
        // SAFETY: a system call with integer arguments.
        sc(unsafe { libc::syscall(libc::SYS_fcntl, fd, cmd, arg) }).map(|v| v as i32)
    }
    fn dup(fd: i32) -> R<i32> {
        // SAFETY: a system call with an integer argument.
        sc(unsafe { libc::syscall(libc::SYS_dup, fd) }).map(|v| v as i32)
    }
}

fn msghdr_out(bufs: &[IoSlice<'_>], to: Option<&Addr>) -> libc::msghdr {
    // SAFETY: all-zero is a valid msghdr (no buffers, no address).
    let mut m: libc::msghdr = unsafe { std::mem::zeroed() };
    m.msg_iov = bufs.as_ptr() as *mut libc::iovec;
    m.msg_iovlen = bufs.len();
    if let Some(a) = to {
        m.msg_name = a.ptr() as *mut libc::c_void;
        m.msg_namelen = a.len;
    }
    m
}

fn msghdr_in(bufs: &mut [IoSliceMut<'_>], a: &mut Addr) -> libc::msghdr {
    // SAFETY: all-zero is a valid msghdr.
    let mut m: libc::msghdr = unsafe { std::mem::zeroed() };
    m.msg_iov = bufs.as_mut_ptr() as *mut libc::iovec;
    m.msg_iovlen = bufs.len();
    m.msg_name = a.mut_ptr() as *mut libc::c_void;
    m.msg_namelen = a.len;
    m
}

/// The library's sockets, through its `usock_*` C functions.
pub struct Lib;

/// A C int result as an `R`.
fn ci(r: i32) -> R<i32> {
    if r < 0 {
        Err(errno())
    } else {
        Ok(r)
    }
}

impl Sys for Lib {
    const NAME: &'static str = "library";
    fn socket(domain: i32, ty: i32, protocol: i32) -> R<i32> {
        // SAFETY: a library call with integer arguments.
        ci(unsafe { usock_socket(domain, ty, protocol) })
    }
    fn bind(fd: i32, a: &Addr) -> R<()> {
        // SAFETY: a valid address and its length.
        ci(unsafe { usock_bind(fd, a.ptr(), a.len) }).map(|_| ())
    }
    fn listen(fd: i32, backlog: i32) -> R<()> {
        // SAFETY: a library call with integer arguments.
        ci(unsafe { usock_listen(fd, backlog) }).map(|_| ())
    }
    fn accept(fd: i32, flags: i32) -> R<(i32, Addr)> {
        let mut a = Addr::room();
        // SAFETY: room for any address, and its length.
        ci(unsafe { usock_accept4(fd, a.mut_ptr(), &mut a.len, flags) }).map(|v| (v, a))
    }
    fn connect(fd: i32, a: &Addr) -> R<()> {
        // SAFETY: a valid address and its length.
        ci(unsafe { usock_connect(fd, a.ptr(), a.len) }).map(|_| ())
    }
    fn sendto(fd: i32, data: &[u8], flags: i32, to: Option<&Addr>) -> R<usize> {
        let (p, l) = to.map_or((std::ptr::null(), 0), |a| (a.ptr(), a.len));
        // SAFETY: a valid buffer; a valid address or none.
        ret(unsafe { usock_sendto(fd, data.as_ptr().cast(), data.len(), flags, p, l) })
    }
    fn recvfrom(fd: i32, buf: &mut [u8], flags: i32) -> R<(usize, Addr)> {
        let mut a = Addr::room();
        // SAFETY: a valid buffer; room for any address, and its length.
        let r = unsafe {
            usock_recvfrom(
                fd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                flags,
                a.mut_ptr(),
                &mut a.len,
            )
        };
        ret(r).map(|n| (n, a))
    }
    fn sendmsg(fd: i32, bufs: &[IoSlice<'_>], flags: i32, to: Option<&Addr>) -> R<usize> {
        let m = msghdr_out(bufs, to);
        // SAFETY: the header points at live buffers.
        ret(unsafe { usock_sendmsg(fd, &m, flags) })
    }
    fn recvmsg(fd: i32, bufs: &mut [IoSliceMut<'_>], flags: i32) -> R<(usize, Addr, i32)> {
        let mut a = Addr::room();
        let mut m = msghdr_in(bufs, &mut a);
        // SAFETY: the header points at live buffers and address room.
        let r = unsafe { usock_recvmsg(fd, &mut m, flags) };
        let (len, fl) = (m.msg_namelen, m.msg_flags);
        a.len = len;
        ret(r).map(|n| (n, a, fl))
    }
    fn setsockopt(fd: i32, level: i32, name: i32, val: &[u8]) -> R<()> {
        // SAFETY: a valid buffer and its length.
        ci(unsafe {
            usock_setsockopt(fd, level, name, val.as_ptr().cast(), val.len() as socklen_t)
        })
        .map(|_| ())
    }
    fn getsockopt(fd: i32, level: i32, name: i32, out: &mut [u8]) -> R<usize> {
        let mut l = out.len() as socklen_t;
        // SAFETY: a valid buffer and its length.
        ci(unsafe { usock_getsockopt(fd, level, name, out.as_mut_ptr().cast(), &mut l) })
            .map(|_| l as usize)
    }
    fn getsockname(fd: i32) -> R<Addr> {
        let mut a = Addr::room();
        // SAFETY: room for any address, and its length.
        ci(unsafe { usock_getsockname(fd, a.mut_ptr(), &mut a.len) }).map(|_| a)
    }
    fn getpeername(fd: i32) -> R<Addr> {
        let mut a = Addr::room();
        // SAFETY: room for any address, and its length.
        ci(unsafe { usock_getpeername(fd, a.mut_ptr(), &mut a.len) }).map(|_| a)
    }
    fn shutdown(fd: i32, how: i32) -> R<()> {
        // SAFETY: a library call with integer arguments.
        ci(unsafe { usock_shutdown(fd, how) }).map(|_| ())
    }
    fn close(fd: i32) -> R<()> {
        // SAFETY: closes an fd the caller owns.
        ci(unsafe { usock_close(fd) }).map(|_| ())
    }
    fn poll(fds: &mut [libc::pollfd], ms: i32) -> R<usize> {
        // SAFETY: valid pollfds and their count.
        ci(unsafe { usock_poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) })
            .map(|v| v as usize)
    }
    fn fcntl(fd: i32, cmd: i32, arg: i32) -> R<i32> {
        // SAFETY: a library call with integer arguments.
        ci(unsafe { usock_fcntl(fd, cmd, arg as libc::c_ulong) })
    }
    fn dup(fd: i32) -> R<i32> {
        // SAFETY: a library call with an integer argument.
        ci(unsafe { usock_dup(fd) })
    }
}

// ------------------------------------------------------------- the Rust API

/// One side's native Rust API: the library's `userspacesock::net`, or its
/// twin over kernel sockets.
pub trait Stack: 'static {
    /// "kernel" or "library".
    const NAME: &'static str;
    /// A listening stream socket.
    type Listener: Listener<Stream = Self::Stream>;
    /// A connected stream socket.
    type Stream: Stream;
    /// A datagram socket.
    type Dgram: Dgram;
    /// SO_REUSEADDR, bind and listen with `backlog`, as
    /// `UsockListener::bind_sockaddr` (and `std`, with 128) does.
    fn listen(addr: SocketAddr, backlog: i32) -> io::Result<Self::Listener>;
    /// A blocking connect.
    fn connect(addr: SocketAddr) -> io::Result<Self::Stream>;
    /// A datagram socket bound to `addr`.
    fn bind_dgram(addr: SocketAddr) -> io::Result<Self::Dgram>;
    /// A datagram socket of `domain`, not bound.
    fn unbound_dgram(domain: i32) -> io::Result<Self::Dgram>;
    /// A stream socket bound to `addr` and not listening, with its address;
    /// dropping the box closes it.
    fn bound_stream(addr: SocketAddr) -> io::Result<(Box<dyn Send>, SocketAddr)>;

    /// [`Stack::listen`] with std's backlog, 128.
    fn bind_listener(addr: &str) -> io::Result<Self::Listener> {
        Self::listen(addr.parse().expect("an address"), 128)
    }
}

/// A listening socket's calls.
pub trait Listener: Send + Sync + Sized {
    /// What accept() returns.
    type Stream;
    /// accept(): the connection and the peer's address.
    fn accept(&self) -> io::Result<(Self::Stream, SocketAddr)>;
    /// getsockname().
    fn local_addr(&self) -> io::Result<SocketAddr>;
    /// getpeername() (ENOTCONN on a listener).
    fn peer_addr(&self) -> io::Result<SocketAddr>;
    /// O_NONBLOCK.
    fn set_nonblocking(&self, on: bool) -> io::Result<()>;
    /// shutdown().
    fn shutdown(&self, how: Shutdown) -> io::Result<()>;
    /// SO_RCVTIMEO (accept() honours it).
    fn set_read_timeout(&self, d: Duration) -> io::Result<()>;
    /// connect() on the listening socket itself.
    fn connect(&self, addr: SocketAddr) -> io::Result<()>;
}

/// A connected stream socket's calls.
pub trait Stream: Send + Sync + Sized {
    /// recv().
    fn read(&self, buf: &mut [u8]) -> io::Result<usize>;
    /// send() without SIGPIPE.
    fn write(&self, buf: &[u8]) -> io::Result<usize>;
    /// readv().
    fn read_vectored(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize>;
    /// writev().
    fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
    /// recv(MSG_PEEK).
    fn peek(&self, buf: &mut [u8]) -> io::Result<usize>;
    /// shutdown().
    fn shutdown(&self, how: Shutdown) -> io::Result<()>;
    /// getsockname().
    fn local_addr(&self) -> io::Result<SocketAddr>;
    /// getpeername().
    fn peer_addr(&self) -> io::Result<SocketAddr>;
    /// SO_RCVTIMEO (`None`: none).
    fn set_read_timeout(&self, d: Option<Duration>) -> io::Result<()>;
    /// SO_RCVTIMEO as read back.
    fn read_timeout(&self) -> io::Result<Option<Duration>>;
    /// SO_SNDTIMEO.
    fn set_write_timeout(&self, d: Option<Duration>) -> io::Result<()>;
    /// SO_SNDTIMEO as read back.
    fn write_timeout(&self) -> io::Result<Option<Duration>>;
    /// O_NONBLOCK.
    fn set_nonblocking(&self, on: bool) -> io::Result<()>;
    /// Whether O_NONBLOCK is set.
    fn is_nonblocking(&self) -> bool;
    /// Another handle to the socket (dup()).
    fn try_clone(&self) -> io::Result<Self>;
    /// SO_LINGER.
    fn set_linger(&self, d: Option<Duration>) -> io::Result<()>;
    /// SO_LINGER as read back.
    fn linger(&self) -> io::Result<Option<Duration>>;
    /// TCP_NODELAY.
    fn set_nodelay(&self, on: bool) -> io::Result<()>;
    /// TCP_NODELAY as read back.
    fn nodelay(&self) -> io::Result<bool>;
    /// SO_ERROR.
    fn take_error(&self) -> io::Result<Option<io::Error>>;
    /// connect() again.
    fn connect(&self, addr: SocketAddr) -> io::Result<()>;

    /// std's `write_all`.
    fn write_all(&self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            match self.write(buf) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => buf = &buf[n..],
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// std's `read_exact`.
    fn read_exact(&self, mut buf: &mut [u8]) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read(buf) {
                Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
                Ok(n) => buf = &mut buf[n..],
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// std's `read_to_end`.
    fn read_to_end(&self, out: &mut Vec<u8>) -> io::Result<usize> {
        let mut buf = [0u8; 8192];
        let start = out.len();
        loop {
            match self.read(&mut buf) {
                Ok(0) => return Ok(out.len() - start),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// A datagram socket's calls.
pub trait Dgram: Send + Sync + Sized {
    /// sendto().
    fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize>;
    /// recvfrom().
    fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)>;
    /// recvfrom(MSG_PEEK).
    fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)>;
    /// send() to the connected peer.
    fn send(&self, buf: &[u8]) -> io::Result<usize>;
    /// recv().
    fn recv(&self, buf: &mut [u8]) -> io::Result<usize>;
    /// recv(MSG_PEEK).
    fn peek(&self, buf: &mut [u8]) -> io::Result<usize>;
    /// recv(MSG_TRUNC): what it returns, and whether it says truncated.
    fn recv_trunc(&self, buf: &mut [u8]) -> io::Result<(usize, bool)>;
    /// connect().
    fn connect(&self, to: SocketAddr) -> io::Result<()>;
    /// connect() to AF_UNSPEC: no peer any more.
    fn disconnect(&self) -> io::Result<()>;
    /// getsockname().
    fn local_addr(&self) -> io::Result<SocketAddr>;
    /// getpeername().
    fn peer_addr(&self) -> io::Result<SocketAddr>;
    /// O_NONBLOCK.
    fn set_nonblocking(&self, on: bool) -> io::Result<()>;
    /// SO_RCVTIMEO.
    fn set_read_timeout(&self, d: Option<Duration>) -> io::Result<()>;
}

/// The library's native Rust API.
pub struct Usock;

use userspacesock::net::{to_sockaddr, to_socket_addr, UsockDatagram, UsockListener, UsockStream};

/// A stream socket bound, not listening (the Rust API has no type for it:
/// a library fd, closed at the end).
struct BoundOnly(i32);
impl Drop for BoundOnly {
    fn drop(&mut self) {
        // SAFETY: the fd is this value's own.
        unsafe { usock_close(self.0) };
    }
}

impl Stack for Usock {
    const NAME: &'static str = "library";
    type Listener = UsockListener;
    type Stream = UsockStream;
    type Dgram = UsockDatagram;
    fn listen(addr: SocketAddr, backlog: i32) -> io::Result<UsockListener> {
        UsockListener::bind_sockaddr(&to_sockaddr(&addr), backlog)
    }
    fn connect(addr: SocketAddr) -> io::Result<UsockStream> {
        UsockStream::connect(addr)
    }
    fn bind_dgram(addr: SocketAddr) -> io::Result<UsockDatagram> {
        UsockDatagram::bind(addr)
    }
    fn unbound_dgram(domain: i32) -> io::Result<UsockDatagram> {
        UsockDatagram::unbound(domain)
    }
    fn bound_stream(addr: SocketAddr) -> io::Result<(Box<dyn Send>, SocketAddr)> {
        let domain = if addr.is_ipv4() {
            libc::AF_INET
        } else {
            libc::AF_INET6
        };
        let b = BoundOnly(io(Lib::socket(domain, libc::SOCK_STREAM, 0))?);
        io(Lib::bind(b.0, &Addr::ip(addr)))?;
        let a = std_addr(Lib::getsockname(b.0))?;
        Ok((Box::new(b), a))
    }
}

impl Listener for UsockListener {
    type Stream = UsockStream;
    fn accept(&self) -> io::Result<(UsockStream, SocketAddr)> {
        UsockListener::accept(self)
    }
    fn local_addr(&self) -> io::Result<SocketAddr> {
        UsockListener::local_addr(self)
    }
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        to_socket_addr(&self.raw().peer_addr()?)
    }
    fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        UsockListener::set_nonblocking(self, on)
    }
    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.raw().shutdown(how)
    }
    fn set_read_timeout(&self, d: Duration) -> io::Result<()> {
        self.raw()
            .setsockopt(libc::SOL_SOCKET, libc::SO_RCVTIMEO, &timeval(Some(d)))
    }
    fn connect(&self, addr: SocketAddr) -> io::Result<()> {
        self.raw().connect(&to_sockaddr(&addr))
    }
}

impl Stream for UsockStream {
    fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        io::Read::read(&mut &*self, buf)
    }
    fn write(&self, buf: &[u8]) -> io::Result<usize> {
        io::Write::write(&mut &*self, buf)
    }
    fn read_vectored(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        io::Read::read_vectored(&mut &*self, bufs)
    }
    fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        io::Write::write_vectored(&mut &*self, bufs)
    }
    fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        UsockStream::peek(self, buf)
    }
    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        UsockStream::shutdown(self, how)
    }
    fn local_addr(&self) -> io::Result<SocketAddr> {
        UsockStream::local_addr(self)
    }
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        UsockStream::peer_addr(self)
    }
    fn set_read_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        UsockStream::set_read_timeout(self, d)
    }
    fn read_timeout(&self) -> io::Result<Option<Duration>> {
        UsockStream::read_timeout(self)
    }
    fn set_write_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        UsockStream::set_write_timeout(self, d)
    }
    fn write_timeout(&self) -> io::Result<Option<Duration>> {
        UsockStream::write_timeout(self)
    }
    fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        UsockStream::set_nonblocking(self, on)
    }
    fn is_nonblocking(&self) -> bool {
        self.raw().nonblocking()
    }
    fn try_clone(&self) -> io::Result<Self> {
        UsockStream::try_clone(self)
    }
    fn set_linger(&self, d: Option<Duration>) -> io::Result<()> {
        UsockStream::set_linger(self, d)
    }
    fn linger(&self) -> io::Result<Option<Duration>> {
        UsockStream::linger(self)
    }
    fn set_nodelay(&self, on: bool) -> io::Result<()> {
        UsockStream::set_nodelay(self, on)
    }
    fn nodelay(&self) -> io::Result<bool> {
        UsockStream::nodelay(self)
    }
    fn take_error(&self) -> io::Result<Option<io::Error>> {
        UsockStream::take_error(self)
    }
    fn connect(&self, addr: SocketAddr) -> io::Result<()> {
        self.raw().connect(&to_sockaddr(&addr))
    }
    fn write_all(&self, buf: &[u8]) -> io::Result<()> {
        io::Write::write_all(&mut &*self, buf)
    }
    fn read_exact(&self, buf: &mut [u8]) -> io::Result<()> {
        io::Read::read_exact(&mut &*self, buf)
    }
    fn read_to_end(&self, out: &mut Vec<u8>) -> io::Result<usize> {
        io::Read::read_to_end(&mut &*self, out)
    }
}

impl Dgram for UsockDatagram {
    fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        UsockDatagram::send_to(self, buf, to)
    }
    fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        UsockDatagram::recv_from(self, buf)
    }
    fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        UsockDatagram::peek_from(self, buf)
    }
    fn send(&self, buf: &[u8]) -> io::Result<usize> {
        UsockDatagram::send(self, buf)
    }
    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        UsockDatagram::recv(self, buf)
    }
    fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        UsockDatagram::peek(self, buf)
    }
    fn recv_trunc(&self, buf: &mut [u8]) -> io::Result<(usize, bool)> {
        let r = self.raw().recv(buf, libc::MSG_TRUNC)?;
        Ok((r.len, r.truncated))
    }
    fn connect(&self, to: SocketAddr) -> io::Result<()> {
        UsockDatagram::connect(self, to)
    }
    fn disconnect(&self) -> io::Result<()> {
        self.connect_sockaddr(&userspacesock::addr::SockAddr::unnamed(libc::AF_UNSPEC))
    }
    fn local_addr(&self) -> io::Result<SocketAddr> {
        UsockDatagram::local_addr(self)
    }
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        UsockDatagram::peer_addr(self)
    }
    fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        UsockDatagram::set_nonblocking(self, on)
    }
    fn set_read_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        UsockDatagram::set_read_timeout(self, d)
    }
}

fn shut(how: Shutdown) -> i32 {
    match how {
        Shutdown::Read => libc::SHUT_RD,
        Shutdown::Write => libc::SHUT_WR,
        Shutdown::Both => libc::SHUT_RDWR,
    }
}

/// A `struct timeval` of `d`, as bytes (`None`: zero, no timeout). Below a
/// microsecond rounds up to one, as std and the Rust API do.
fn timeval(d: Option<Duration>) -> [u8; 16] {
    let (s, us) = match d {
        None => (0i64, 0i64),
        Some(d) => {
            let s = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            let us = i64::from(d.subsec_micros());
            (s, if s == 0 && us == 0 { 1 } else { us })
        }
    };
    let mut tv = [0u8; 16];
    tv[..8].copy_from_slice(&s.to_ne_bytes());
    tv[8..].copy_from_slice(&us.to_ne_bytes());
    tv
}

fn from_timeval(tv: &[u8; 16]) -> Option<Duration> {
    let s = i64::from_ne_bytes(tv[..8].try_into().unwrap());
    let us = i64::from_ne_bytes(tv[8..].try_into().unwrap());
    (s != 0 || us != 0)
        .then(|| Duration::from_secs(s.max(0) as u64) + Duration::from_micros(us.max(0) as u64))
}

// ------------------------------------------------------------- kernel twin

/// A kernel socket fd, closed on drop.
#[derive(Debug)]
pub struct Fd(pub i32);

impl Drop for Fd {
    fn drop(&mut self) {
        let _ = Kernel::close(self.0);
    }
}

fn os(e: i32) -> io::Error {
    io::Error::from_raw_os_error(e)
}

fn io<T>(r: R<T>) -> io::Result<T> {
    r.map_err(os)
}

fn std_addr(a: R<Addr>) -> io::Result<SocketAddr> {
    io(a)?
        .to_std()
        .ok_or_else(|| io::Error::new(ErrorKind::InvalidInput, "not an IP address"))
}

fn domain(a: &SocketAddr) -> i32 {
    if a.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    }
}

impl Fd {
    fn set_timeout(&self, name: i32, d: Option<Duration>) -> io::Result<()> {
        // The Rust API (as std) refuses a zero Duration; the kernel twin
        // does the same so that a case makes the same calls on both sides.
        if d == Some(Duration::ZERO) {
            return Err(io::Error::new(
                ErrorKind::InvalidInput,
                "cannot set a 0 duration timeout",
            ));
        }
        io(Kernel::setsockopt(
            self.0,
            libc::SOL_SOCKET,
            name,
            &timeval(d),
        ))
    }
    fn timeout(&self, name: i32) -> io::Result<Option<Duration>> {
        let mut tv = [0u8; 16];
        io(Kernel::getsockopt(self.0, libc::SOL_SOCKET, name, &mut tv))?;
        Ok(from_timeval(&tv))
    }
    fn nonblocking(&self, on: bool) -> io::Result<()> {
        io(Kernel::set_nonblocking(self.0, on))
    }
    fn recv(&self, buf: &mut [u8], flags: i32) -> io::Result<(usize, Addr)> {
        io(Kernel::recvfrom(self.0, buf, flags))
    }
}

/// A kernel listening socket.
#[derive(Debug)]
pub struct KListener(Fd);
/// A kernel connected stream socket.
#[derive(Debug)]
pub struct KStream(Fd);
/// A kernel datagram socket.
#[derive(Debug)]
pub struct KDgram(Fd);

impl Stack for Kernel {
    const NAME: &'static str = "kernel";
    type Listener = KListener;
    type Stream = KStream;
    type Dgram = KDgram;
    fn listen(addr: SocketAddr, backlog: i32) -> io::Result<KListener> {
        let fd = Fd(io(Kernel::socket(
            domain(&addr),
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
        ))?);
        io(Kernel::set_int(
            fd.0,
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            1,
        ))?;
        io(Kernel::bind(fd.0, &Addr::ip(addr)))?;
        io(<Kernel as Sys>::listen(fd.0, backlog))?;
        Ok(KListener(fd))
    }
    fn connect(addr: SocketAddr) -> io::Result<KStream> {
        let fd = Fd(io(Kernel::socket(
            domain(&addr),
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
        ))?);
        io(<Kernel as Sys>::connect(fd.0, &Addr::ip(addr)))?;
        Ok(KStream(fd))
    }
    fn bind_dgram(addr: SocketAddr) -> io::Result<KDgram> {
        let fd = Fd(io(Kernel::socket(
            domain(&addr),
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            0,
        ))?);
        io(Kernel::bind(fd.0, &Addr::ip(addr)))?;
        Ok(KDgram(fd))
    }
    fn unbound_dgram(d: i32) -> io::Result<KDgram> {
        Ok(KDgram(Fd(io(Kernel::socket(
            d,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            0,
        ))?)))
    }
    fn bound_stream(addr: SocketAddr) -> io::Result<(Box<dyn Send>, SocketAddr)> {
        let fd = Fd(io(Kernel::socket(
            domain(&addr),
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
        ))?);
        io(Kernel::bind(fd.0, &Addr::ip(addr)))?;
        let a = std_addr(Kernel::getsockname(fd.0))?;
        Ok((Box::new(fd), a))
    }
}

impl Listener for KListener {
    type Stream = KStream;
    fn accept(&self) -> io::Result<(KStream, SocketAddr)> {
        let (fd, a) = io(Kernel::accept(self.0 .0, libc::SOCK_CLOEXEC))?;
        let fd = Fd(fd);
        Ok((KStream(fd), std_addr(Ok(a))?))
    }
    fn local_addr(&self) -> io::Result<SocketAddr> {
        std_addr(Kernel::getsockname(self.0 .0))
    }
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        std_addr(Kernel::getpeername(self.0 .0))
    }
    fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        self.0.nonblocking(on)
    }
    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        io(Kernel::shutdown(self.0 .0, shut(how)))
    }
    fn set_read_timeout(&self, d: Duration) -> io::Result<()> {
        self.0.set_timeout(libc::SO_RCVTIMEO, Some(d))
    }
    fn connect(&self, addr: SocketAddr) -> io::Result<()> {
        io(<Kernel as Sys>::connect(self.0 .0, &Addr::ip(addr)))
    }
}

impl Stream for KStream {
    fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.recv(buf, 0).map(|(n, _)| n)
    }
    fn write(&self, buf: &[u8]) -> io::Result<usize> {
        io(Kernel::sendto(self.0 .0, buf, libc::MSG_NOSIGNAL, None))
    }
    fn read_vectored(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        io(Kernel::recvmsg(self.0 .0, bufs, 0)).map(|(n, _, _)| n)
    }
    fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        io(Kernel::sendmsg(self.0 .0, bufs, libc::MSG_NOSIGNAL, None))
    }
    fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.recv(buf, libc::MSG_PEEK).map(|(n, _)| n)
    }
    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        io(Kernel::shutdown(self.0 .0, shut(how)))
    }
    fn local_addr(&self) -> io::Result<SocketAddr> {
        std_addr(Kernel::getsockname(self.0 .0))
    }
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        std_addr(Kernel::getpeername(self.0 .0))
    }
    fn set_read_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        self.0.set_timeout(libc::SO_RCVTIMEO, d)
    }
    fn read_timeout(&self) -> io::Result<Option<Duration>> {
        self.0.timeout(libc::SO_RCVTIMEO)
    }
    fn set_write_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        self.0.set_timeout(libc::SO_SNDTIMEO, d)
    }
    fn write_timeout(&self) -> io::Result<Option<Duration>> {
        self.0.timeout(libc::SO_SNDTIMEO)
    }
    fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        self.0.nonblocking(on)
    }
    fn is_nonblocking(&self) -> bool {
        Kernel::fcntl(self.0 .0, libc::F_GETFL, 0).expect("F_GETFL") & libc::O_NONBLOCK != 0
    }
    fn try_clone(&self) -> io::Result<Self> {
        Ok(KStream(Fd(io(Kernel::fcntl(
            self.0 .0,
            libc::F_DUPFD_CLOEXEC,
            0,
        ))?)))
    }
    fn set_linger(&self, d: Option<Duration>) -> io::Result<()> {
        let (on, secs) = match d {
            None => (0i32, 0i32),
            Some(d) => (1, i32::try_from(d.as_secs()).unwrap_or(i32::MAX)),
        };
        let mut v = [0u8; 8];
        v[..4].copy_from_slice(&on.to_ne_bytes());
        v[4..].copy_from_slice(&secs.to_ne_bytes());
        io(Kernel::setsockopt(
            self.0 .0,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &v,
        ))
    }
    fn linger(&self) -> io::Result<Option<Duration>> {
        let mut v = [0u8; 8];
        io(Kernel::getsockopt(
            self.0 .0,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &mut v,
        ))?;
        let on = i32::from_ne_bytes(v[..4].try_into().unwrap());
        let secs = i32::from_ne_bytes(v[4..].try_into().unwrap());
        Ok((on != 0).then(|| Duration::from_secs(secs.max(0) as u64)))
    }
    fn set_nodelay(&self, on: bool) -> io::Result<()> {
        io(Kernel::set_int(
            self.0 .0,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            on as i32,
        ))
    }
    fn nodelay(&self) -> io::Result<bool> {
        io(Kernel::get_int(
            self.0 .0,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
        ))
        .map(|v| v != 0)
    }
    fn take_error(&self) -> io::Result<Option<io::Error>> {
        let e = io(Kernel::get_int(self.0 .0, libc::SOL_SOCKET, libc::SO_ERROR))?;
        Ok((e != 0).then(|| os(e)))
    }
    fn connect(&self, addr: SocketAddr) -> io::Result<()> {
        io(<Kernel as Sys>::connect(self.0 .0, &Addr::ip(addr)))
    }
}

impl Dgram for KDgram {
    fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        io(Kernel::sendto(
            self.0 .0,
            buf,
            libc::MSG_NOSIGNAL,
            Some(&Addr::ip(to)),
        ))
    }
    fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let (n, a) = self.0.recv(buf, 0)?;
        Ok((n, std_addr(Ok(a))?))
    }
    fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let (n, a) = self.0.recv(buf, libc::MSG_PEEK)?;
        Ok((n, std_addr(Ok(a))?))
    }
    fn send(&self, buf: &[u8]) -> io::Result<usize> {
        io(Kernel::sendto(self.0 .0, buf, libc::MSG_NOSIGNAL, None))
    }
    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.recv(buf, 0).map(|(n, _)| n)
    }
    fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.recv(buf, libc::MSG_PEEK).map(|(n, _)| n)
    }
    fn recv_trunc(&self, buf: &mut [u8]) -> io::Result<(usize, bool)> {
        let (n, _, fl) = io(Kernel::recvmsg(
            self.0 .0,
            &mut [IoSliceMut::new(buf)],
            libc::MSG_TRUNC,
        ))?;
        Ok((n, fl & libc::MSG_TRUNC != 0))
    }
    fn connect(&self, to: SocketAddr) -> io::Result<()> {
        io(<Kernel as Sys>::connect(self.0 .0, &Addr::ip(to)))
    }
    fn disconnect(&self) -> io::Result<()> {
        io(<Kernel as Sys>::connect(self.0 .0, &Addr::unspec()))
    }
    fn local_addr(&self) -> io::Result<SocketAddr> {
        std_addr(Kernel::getsockname(self.0 .0))
    }
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        std_addr(Kernel::getpeername(self.0 .0))
    }
    fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        self.0.nonblocking(on)
    }
    fn set_read_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        self.0.set_timeout(libc::SO_RCVTIMEO, d)
    }
}

// ------------------------------------------------------------- waiting

/// This thread's kernel id (for [`wait_until_blocked`]).
pub fn gettid() -> i32 {
    // SAFETY: gettid has no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

/// Waits until thread `tid` of this process sleeps in a system call (its
/// state in /proc is S, and it stays so over a few looks), so that what the
/// caller does next happens while that thread is blocked, not before it
/// got there. Panics after 10 s.
pub fn wait_until_blocked(tid: i32) {
    let path = format!("/proc/self/task/{tid}/stat");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut asleep = 0;
    while asleep < 5 {
        assert!(
            std::time::Instant::now() < deadline,
            "thread {tid} never blocked"
        );
        let stat = std::fs::read_to_string(&path).unwrap_or_default();
        // The state follows the command name, which is in parentheses.
        let state = stat.rsplit_once(") ").map(|(_, r)| r.as_bytes()[0]);
        asleep = if state == Some(b'S') { asleep + 1 } else { 0 };
        std::thread::sleep(Duration::from_millis(1));
    }
}

//! Fuzz sequences of C-level socket calls (`usock_*`) from two threads.
//!
//! The input is two lists of calls, one per thread, run concurrently on a
//! shared, small set of fds: the sockets the calls create (socket,
//! socketpair, accept, dup, ...) plus a non-blocking kernel pipe (the
//! passthrough path), and bad fd numbers (-1, beyond the fd table,
//! `i32::MAX`, never-opened high numbers). Arguments include bad lengths,
//! bad flags, bad addresses of every family, NULL and unmapped pointers.
//!
//! Checked: every call returns a value in its range or -1 with an errno from
//! the set Linux's socket calls can return; EIO (the library's panic
//! fallback) is not in it, and a panic aborts the fuzzer anyway
//! (libfuzzer-sys installs an aborting panic hook). At the end of each input
//! every fd the calls created is closed, so a leak would run the process out
//! of fds.
//!
//! What the harness keeps in bounds so that a run cannot hang or corrupt its
//! own memory (these are the caller's duties in C too): every user-space
//! socket gets SO_RCVTIMEO/SO_SNDTIMEO of 1 ms (and a timeout set by the
//! input is replaced by 1 ms), poll/select timeouts are at most 2 ms and
//! never infinite, "valid" pointers point into the thread's own buffers
//! (followed by an unmapped guard region so too-long lengths give EFAULT),
//! the kernel pipe stays non-blocking (F_SETFL and FIONBIO always set
//! O_NONBLOCK: the other thread may dup the pipe onto any number), O_ASYNC
//! is never set, and fd
//! arguments are only numbers the input created or never-opened numbers.
#![no_main]

use std::sync::{Mutex, Once};

use arbitrary::Arbitrary;
use libc::{c_int, c_void, sockaddr, socklen_t};
use libfuzzer_sys::fuzz_target;
use userspacesock::api::posix::*;

const REGION: usize = 64 << 10;

/// Whether pointer arguments may name a range that starts in mapped memory
/// and ends in the unmapped guard (EFAULT expected). Was off while the
/// core's `ffi::probe` took a partial `process_vm_readv` for success (a
/// fault inside the library; fixed, regression in `tests/limits_efault.rs`).
const PARTIAL_RANGES: bool = true;

/// A read-write region followed by an unmapped (PROT_NONE) guard twice its
/// size: every length the harness makes (at most `REGION + 4096`) from a
/// pointer in the region ends inside the guard, never in a mapping beyond
/// it. (The library probes a buffer's first and last byte only, as its
/// README says; a buffer whose ends are mapped but whose middle is not
/// would fault, as in any library that copies user memory.)
struct Region {
    base: *mut u8,
}

impl Region {
    fn new() -> Region {
        // SAFETY: anonymous mapping; the second half is made inaccessible.
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                3 * REGION,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert_ne!(p, libc::MAP_FAILED);
            assert_eq!(libc::mprotect((p as *mut u8).add(REGION) as *mut c_void, 2 * REGION, libc::PROT_NONE), 0);
            Region { base: p as *mut u8 }
        }
    }
    fn at(&self, off: usize) -> *mut u8 {
        self.base.wrapping_add(off % REGION)
    }
    fn guard(&self) -> *mut u8 {
        self.base.wrapping_add(REGION)
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`.
        unsafe { libc::munmap(self.base as *mut c_void, 3 * REGION) };
    }
}

/// A pointer argument.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Ptr {
    Good,
    Null,
    Unmapped,
    /// Inside the buffer, `n` bytes before the guard: a length beyond `n`
    /// runs into it.
    NearEnd(u8),
}

/// An fd argument.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Fd {
    Slot(u8),
    Minus1,
    TableEnd,
    Max,
    /// One of four high numbers (900..904) no call opened yet.
    High(u8),
}

#[derive(Arbitrary, Debug, Clone)]
enum Addr {
    V4 { ip: u8, port: u8 },
    V6 { ip: u8, port: u8, scope: u8 },
    UnixAbstract(u8),
    UnixBadPath,
    Unspec,
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Len {
    Exact,
    Minus(u8),
    Plus(u8),
    Zero,
    Huge,
}

#[derive(Arbitrary, Debug, Clone)]
struct AddrArg {
    addr: Addr,
    len: Len,
    ptr: Ptr,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
struct OutAddr {
    ptr: Ptr,
    lenptr: Ptr,
    len: u16,
}

#[derive(Arbitrary, Debug, Clone)]
enum Op {
    Socket { domain: u8, ty: u8, flags: u8 },
    Socketpair { domain: u8, ty: u8, sv: Ptr },
    Bind { fd: Fd, a: AddrArg },
    Listen { fd: Fd, backlog: i16 },
    Accept { fd: Fd, out: OutAddr, flags: Option<u8> },
    Connect { fd: Fd, a: AddrArg },
    Send { fd: Fd, ptr: Ptr, len: u32, flags: u32, to: Option<AddrArg> },
    SendMsg { fd: Fd, msg: Ptr, iov: Ptr, iovlen: u16, lens: Vec<u16>, to: Option<AddrArg>, flags: u32 },
    Recv { fd: Fd, ptr: Ptr, len: u32, flags: u32, from: Option<OutAddr> },
    RecvMsg { fd: Fd, msg: Ptr, iov: Ptr, iovlen: u16, lens: Vec<u16>, flags: u32 },
    Read { fd: Fd, ptr: Ptr, len: u32 },
    Write { fd: Fd, ptr: Ptr, len: u32 },
    Readv { fd: Fd, iov: Ptr, n: i16, lens: Vec<u16> },
    Writev { fd: Fd, iov: Ptr, n: i16, lens: Vec<u16> },
    Shutdown { fd: Fd, how: i8 },
    Close { fd: Fd },
    GetName { fd: Fd, out: OutAddr, peer: bool },
    GetOpt { fd: Fd, level: u8, name: u8, val: Ptr, lenptr: Ptr, len: u16 },
    SetOpt { fd: Fd, level: u8, name: u8, val: Ptr, bytes: Vec<u8>, len: Len },
    Fcntl { fd: Fd, cmd: u8, arg: u32 },
    Ioctl { fd: Fd, req: u8, arg: Ptr, val: i32 },
    Dup { fd: Fd },
    Dup2 { fd: Fd, to: Fd, flags: Option<i32> },
    Poll { fds: Vec<(Fd, i16)>, ptr: Ptr, timeout_ms: u8, ppoll: bool },
    Select { n: i16, fds: Vec<(Fd, u8)>, tv: Ptr, pselect: bool },
}

#[derive(Arbitrary, Debug)]
struct Input {
    a: Vec<Op>,
    b: Vec<Op>,
}

/// fds created by this input (closed at its end); the pipe is slots 0, 1.
static FDS: Mutex<Vec<c_int>> = Mutex::new(Vec::new());

fn errno() -> c_int {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn set_errno(e: c_int) {
    // SAFETY: the calling thread's errno.
    unsafe { *libc::__errno_location() = e };
}

/// Every errno a Linux socket call (or the passthrough on a pipe) may give.
const ALLOWED: &[c_int] = &[
    libc::EBADF, libc::ENOTSOCK, libc::EINVAL, libc::EAFNOSUPPORT, libc::EFAULT,
    libc::EADDRINUSE, libc::EADDRNOTAVAIL, libc::ECONNREFUSED, libc::EISCONN,
    libc::ENOTCONN, libc::EPIPE, libc::EOPNOTSUPP, libc::EMFILE, libc::ENFILE,
    libc::EAGAIN, libc::EINPROGRESS, libc::EALREADY, libc::ENOPROTOOPT,
    libc::EDESTADDRREQ, libc::EMSGSIZE, libc::ECONNRESET, libc::ECONNABORTED,
    libc::EPROTOTYPE, libc::EPROTONOSUPPORT, libc::ESOCKTNOSUPPORT, libc::ENOENT,
    libc::EACCES, libc::EPERM, libc::ENOBUFS, libc::ENOMEM, libc::ENOTTY,
    libc::ENOTDIR, libc::ENAMETOOLONG, libc::ELOOP, libc::EROFS, libc::EEXIST,
    libc::ETIMEDOUT, libc::ESPIPE, libc::EISDIR, libc::ENETUNREACH,
    libc::EHOSTUNREACH, libc::EINTR,
    // SO_RCVTIMEO/SO_SNDTIMEO with tv_usec out of range.
    libc::EDOM,
];

/// As [`check`], for a call whose answer may be the kernel's: an option or
/// an ioctl the library has no behaviour for is asked of a kernel socket
/// (socket/kernel_opts.rs, platform::kernel_twin_ioctl), and then any errno
/// the kernel gives is right (ENODATA, ENODEV, ERANGE...); it must still be
/// an errno.
fn check_kernel(call: &str, ret: isize, max: isize) {
    if ret == -1 {
        let e = errno();
        assert!((1..=133).contains(&e), "{call}: -1 with errno {e}, not an errno");
    } else {
        assert!(ret >= 0 && ret <= max, "{call}: returned {ret} (max {max})");
    }
}

fn check(call: &str, ret: isize, max: isize) {
    if ret == -1 {
        let e = errno();
        assert!(ALLOWED.contains(&e), "{call}: -1 with errno {e} ({})", std::io::Error::from_raw_os_error(e));
    } else {
        assert!(ret >= 0 && ret <= max, "{call}: returned {ret} (max {max})");
    }
}

struct Ctx {
    data: Region,
    ctl: Region,
}

// Offsets in the control region.
const O_ADDR: usize = 0;
const O_ALEN: usize = 512;
const O_MSG: usize = 1024;
const O_TS: usize = 2048;
const O_OPT: usize = 4096;
const O_OLEN: usize = 8192;
const O_SETS: usize = 12288;
const O_POLL: usize = 16384;
const O_SV: usize = 24576;
const O_IOV: usize = 32768;

impl Ctx {
    fn ptr(&self, r: &Region, p: Ptr, off: usize) -> *mut u8 {
        match p {
            Ptr::Good => r.at(off),
            Ptr::Null => std::ptr::null_mut(),
            Ptr::Unmapped => r.guard(),
            Ptr::NearEnd(n) if PARTIAL_RANGES => r.guard().wrapping_sub(usize::from(n) + 1),
            Ptr::NearEnd(_) => r.guard(),
        }
    }

    fn fd(&self, f: Fd) -> c_int {
        match f {
            Fd::Slot(i) => {
                let v = FDS.lock().unwrap();
                if v.is_empty() { -1 } else { v[usize::from(i) % v.len()] }
            }
            Fd::Minus1 => -1,
            Fd::TableEnd => 1 << 20,
            Fd::Max => c_int::MAX,
            Fd::High(i) => 900 + c_int::from(i % 4),
        }
    }

    /// Writes an address into the control region; returns pointer and length.
    fn addr(&self, a: &AddrArg) -> (*const sockaddr, socklen_t) {
        let mut b = [0u8; 128];
        let n = match &a.addr {
            Addr::V4 { ip, port } => {
                b[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
                b[2..4].copy_from_slice(&(u16::from(*port % 8) + 40000).to_be_bytes());
                let ip = match ip % 4 { 0 => [127, 0, 0, 1], 1 => [0, 0, 0, 0], 2 => [127, 1, 2, 3], _ => [10, 0, 0, *ip] };
                b[4..8].copy_from_slice(&ip);
                if *port >= 250 { b[2..4].copy_from_slice(&[0, 0]); }
                16
            }
            Addr::V6 { ip, port, scope } => {
                b[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
                b[2..4].copy_from_slice(&(u16::from(*port % 8) + 40000).to_be_bytes());
                match ip % 4 {
                    0 => b[23] = 1,
                    1 => {}
                    2 => { b[18] = 0xff; b[19] = 0xff; b[20] = 127; b[23] = 1; }
                    _ => { b[8] = 0xfe; b[9] = 0x80; b[23] = *ip; }
                }
                b[24] = *scope;
                28
            }
            Addr::UnixAbstract(i) => {
                b[..2].copy_from_slice(&(libc::AF_UNIX as u16).to_ne_bytes());
                let name = format!("usock-fuzz-{}-{}", std::process::id(), i % 4);
                b[3..3 + name.len()].copy_from_slice(name.as_bytes());
                3 + name.len()
            }
            Addr::UnixBadPath => {
                b[..2].copy_from_slice(&(libc::AF_UNIX as u16).to_ne_bytes());
                let p = b"/nonexistent-usock-fuzz/dir/sock";
                b[2..2 + p.len()].copy_from_slice(p);
                2 + p.len() + 1
            }
            Addr::Unspec => 16,
            Addr::Raw(r) => {
                let n = r.len().min(128);
                b[..n].copy_from_slice(&r[..n]);
                // Never a pathname: bind would create a file wherever it says.
                if u16::from_ne_bytes([b[0], b[1]]) == libc::AF_UNIX as u16 {
                    b[2] = 0;
                }
                n
            }
        };
        let len = match a.len {
            Len::Exact => n,
            Len::Minus(k) => n.saturating_sub(usize::from(k % 32)),
            Len::Plus(k) => n + usize::from(k),
            Len::Zero => 0,
            Len::Huge => 1 << 31,
        };
        let p = self.ptr(&self.ctl, a.ptr, O_ADDR);
        if matches!(a.ptr, Ptr::Good) {
            // SAFETY: our control region, 512 bytes at O_ADDR.
            unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), p, 128) };
        }
        (p as *const sockaddr, len as socklen_t)
    }

    fn out_addr(&self, o: &OutAddr) -> (*mut sockaddr, *mut socklen_t) {
        let lp = self.ptr(&self.ctl, o.lenptr, O_ALEN) as *mut socklen_t;
        if matches!(o.lenptr, Ptr::Good) {
            // SAFETY: our control region.
            unsafe { *lp = socklen_t::from(o.len % 512) };
        }
        (self.ptr(&self.ctl, o.ptr, O_ADDR) as *mut sockaddr, lp)
    }

    /// Room (in bytes) for a structure at pointer `p` of the control
    /// region: all of the slot for `Good`, the bytes before the guard for
    /// `NearEnd`, none otherwise.
    fn room(p: Ptr) -> usize {
        match p {
            Ptr::Good => 4096,
            Ptr::NearEnd(n) if PARTIAL_RANGES => usize::from(n) + 1,
            _ => 0,
        }
    }

    /// An iovec array at `p`: every entry that fits before the guard is
    /// written (the rest of the room zeroed), so the library never reads a
    /// stale or arbitrary pointer from it; entries that would straddle the
    /// guard make the array's own probe fail (EFAULT).
    fn iov(&self, p: Ptr, lens: &[u16]) -> *mut libc::iovec {
        let iov = self.ptr(&self.ctl, p, O_IOV) as *mut libc::iovec;
        let fit = (Self::room(p) / 16).min(100);
        if fit > 0 {
            // Consecutive, non-overlapping pieces of the data region; the
            // last may run into its guard (EFAULT).
            let mut off = 0usize;
            for i in 0..fit {
                let l = lens.get(i).map_or(0, |l| usize::from(*l));
                let (base, len) = if l == 0xffff {
                    (std::ptr::null_mut(), 1)
                } else if off >= REGION || i >= lens.len() {
                    (std::ptr::null_mut(), 0)
                } else {
                    (self.data.base.wrapping_add(off), l.min(if PARTIAL_RANGES { REGION + 4096 } else { REGION } - off))
                };
                // SAFETY: entry i lies in the room before the guard.
                unsafe { *iov.add(i) = libc::iovec { iov_base: base as *mut c_void, iov_len: len } };
                off += len;
            }
        }
        iov
    }

    /// A length for a data buffer at `p`: within the buffer plus its guard.
    fn dlen(&self, len: u32) -> usize {
        len as usize % (if PARTIAL_RANGES { REGION + 4096 } else { REGION + 1 })
    }

    fn track(&self, fd: c_int) {
        if fd >= 0 {
            set_timeouts(fd);
            FDS.lock().unwrap().push(fd);
        }
    }

    fn run(&self, op: &Op) {
        set_errno(0);
        unsafe { self.run_unsafe(op) }
    }

    unsafe fn run_unsafe(&self, op: &Op) {
        match op {
            Op::Socket { domain, ty, flags } => {
                let domain = [libc::AF_INET, libc::AF_INET6, libc::AF_UNIX, libc::AF_UNSPEC, libc::AF_NETLINK, libc::AF_PACKET, c_int::from(*domain)][usize::from(*domain % 7)];
                let ty = [libc::SOCK_STREAM, libc::SOCK_DGRAM, libc::SOCK_RAW, libc::SOCK_SEQPACKET, c_int::from(*ty)][usize::from(*ty % 5)];
                let fl = match flags % 4 { 0 => 0, 1 => libc::SOCK_NONBLOCK, 2 => libc::SOCK_CLOEXEC, _ => c_int::from(*flags) << 8 };
                let proto = if flags & 0x80 != 0 { c_int::from(*flags & 0x1f) } else { 0 };
                let r = usock_socket(domain, ty | fl, proto);
                check("socket", r as isize, i32::MAX as isize);
                // A socket the library does not implement is the kernel's
                // (netlink, packet, raw...): not what this target drives,
                // and a raw socket of root's must send nothing.
                if r >= 0 && userspacesock::api::posix::usock_is_userspace(r) == 0 {
                    libc::close(r);
                    return;
                }
                self.track(r);
            }
            Op::Socketpair { domain, ty, sv } => {
                let domain = if domain % 3 == 0 { c_int::from(*domain) } else { libc::AF_UNIX };
                let ty = [libc::SOCK_STREAM, libc::SOCK_DGRAM, c_int::from(*ty)][usize::from(*ty % 3)];
                let p = self.ptr(&self.ctl, *sv, O_SV) as *mut c_int;
                let r = usock_socketpair(domain, ty, 0, p);
                check("socketpair", r as isize, 0);
                if r == 0 && userspacesock::api::posix::usock_is_userspace(*p) == 0 {
                    // The kernel's pair (as for socket above).
                    libc::close(*p);
                    libc::close(*p.add(1));
                    return;
                }
                if r == 0 {
                    self.track(*p);
                    self.track(*p.add(1));
                }
            }
            Op::Bind { fd, a } => {
                let (p, l) = self.addr(a);
                check("bind", usock_bind(self.fd(*fd), p, l) as isize, 0);
            }
            Op::Listen { fd, backlog } => {
                check("listen", usock_listen(self.fd(*fd), c_int::from(*backlog)) as isize, 0)
            }
            Op::Accept { fd, out, flags } => {
                let (p, l) = self.out_addr(out);
                let r = match flags {
                    None => usock_accept(self.fd(*fd), p, l),
                    Some(f) => usock_accept4(self.fd(*fd), p, l, c_int::from(*f) << 11),
                };
                check("accept", r as isize, i32::MAX as isize);
                self.track(r);
            }
            Op::Connect { fd, a } => {
                let (p, l) = self.addr(a);
                check("connect", usock_connect(self.fd(*fd), p, l) as isize, 0);
            }
            Op::Send { fd, ptr, len, flags, to } => {
                let b = self.ptr(&self.data, *ptr, 0) as *const c_void;
                let n = self.dlen(*len);
                let fl = (*flags as c_int) | libc::MSG_NOSIGNAL;
                let r = match to {
                    None => usock_send(self.fd(*fd), b, n, fl),
                    Some(a) => {
                        let (p, l) = self.addr(a);
                        usock_sendto(self.fd(*fd), b, n, fl, p, l)
                    }
                };
                check("send", r, n as isize);
            }
            Op::SendMsg { fd, msg, iov, iovlen, lens, to, flags } => {
                let m = self.ptr(&self.ctl, *msg, O_MSG) as *mut libc::msghdr;
                let total: usize = lens.iter().take(64).map(|l| usize::from(*l)).sum();
                if Self::room(*msg) >= std::mem::size_of::<libc::msghdr>() {
                    let (np, nl) = match to { Some(a) => self.addr(a), None => (std::ptr::null(), 0) };
                    let mut h: libc::msghdr = std::mem::zeroed();
                    h.msg_name = np as *mut c_void;
                    h.msg_namelen = nl;
                    h.msg_iov = self.iov(*iov, lens);
                    h.msg_iovlen = usize::from(*iovlen % 80);
                    *m = h;
                }
                let r = usock_sendmsg(self.fd(*fd), m, (*flags as c_int) | libc::MSG_NOSIGNAL);
                check("sendmsg", r, total.max(1 << 20) as isize);
            }
            Op::Recv { fd, ptr, len, flags, from } => {
                let b = self.ptr(&self.data, *ptr, 0) as *mut c_void;
                let n = self.dlen(*len);
                let r = match from {
                    None => usock_recv(self.fd(*fd), b, n, *flags as c_int),
                    Some(o) => {
                        let (p, l) = self.out_addr(o);
                        usock_recvfrom(self.fd(*fd), b, n, *flags as c_int, p, l)
                    }
                };
                // MSG_TRUNC reports a datagram's full length.
                check("recv", r, if *flags as c_int & libc::MSG_TRUNC != 0 { 1 << 20 } else { n as isize });
            }
            Op::RecvMsg { fd, msg, iov, iovlen, lens, flags } => {
                let m = self.ptr(&self.ctl, *msg, O_MSG) as *mut libc::msghdr;
                if Self::room(*msg) >= std::mem::size_of::<libc::msghdr>() {
                    let mut h: libc::msghdr = std::mem::zeroed();
                    h.msg_name = self.ctl.at(O_ADDR) as *mut c_void;
                    h.msg_namelen = (*iovlen % 200) as socklen_t;
                    h.msg_iov = self.iov(*iov, lens);
                    h.msg_iovlen = usize::from(*iovlen % 80);
                    *m = h;
                }
                let r = usock_recvmsg(self.fd(*fd), m, *flags as c_int);
                check("recvmsg", r, 1 << 20);
            }
            Op::Read { fd, ptr, len } => {
                let n = self.dlen(*len);
                let r = usock_read(self.fd(*fd), self.ptr(&self.data, *ptr, 0) as *mut c_void, n);
                check("read", r, n as isize);
            }
            Op::Write { fd, ptr, len } => {
                let n = self.dlen(*len);
                // Plain write() raises SIGPIPE on a shut socket: ignored.
                let r = usock_write(self.fd(*fd), self.ptr(&self.data, *ptr, 0) as *const c_void, n);
                check("write", r, n as isize);
            }
            Op::Readv { fd, iov, n, lens } => {
                let v = self.iov(*iov, lens);
                check("readv", usock_readv(self.fd(*fd), v, c_int::from(*n % 100)), 1 << 22);
            }
            Op::Writev { fd, iov, n, lens } => {
                let v = self.iov(*iov, lens);
                check("writev", usock_writev(self.fd(*fd), v, c_int::from(*n % 100)), 1 << 22);
            }
            Op::Shutdown { fd, how } => {
                check("shutdown", usock_shutdown(self.fd(*fd), c_int::from(*how)) as isize, 0)
            }
            Op::Close { fd } => {
                let f = self.fd(*fd);
                check("close", usock_close(f) as isize, 0);
            }
            Op::GetName { fd, out, peer } => {
                let (p, l) = self.out_addr(out);
                let r = if *peer { usock_getpeername(self.fd(*fd), p, l) } else { usock_getsockname(self.fd(*fd), p, l) };
                check("getname", r as isize, 0);
            }
            Op::GetOpt { fd, level, name, val, lenptr, len } => {
                let level = [libc::SOL_SOCKET, libc::IPPROTO_TCP, libc::IPPROTO_IP, libc::IPPROTO_IPV6, c_int::from(*level)][usize::from(level % 5)];
                let lp = self.ptr(&self.ctl, *lenptr, O_OLEN) as *mut socklen_t;
                if matches!(lenptr, Ptr::Good) {
                    *lp = socklen_t::from(*len % 4200);
                }
                let r = usock_getsockopt(self.fd(*fd), level, c_int::from(*name % 80), self.ptr(&self.ctl, *val, O_OPT) as *mut c_void, lp);
                check_kernel("getsockopt", r as isize, 0);
            }
            Op::SetOpt { fd, level, name, val, bytes, len } => {
                let level = [libc::SOL_SOCKET, libc::IPPROTO_TCP, libc::IPPROTO_IP, libc::IPPROTO_IPV6, c_int::from(*level)][usize::from(level % 5)];
                let name = c_int::from(*name % 80);
                let p = self.ptr(&self.ctl, *val, O_OPT);
                let room = Self::room(*val);
                let mut n = bytes.len().min(256).min(room);
                if room > 0 {
                    std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, n);
                    // SO_RCVTIMEO/SO_SNDTIMEO, old (20, 21) and new (66, 67) numbers.
                    if level == libc::SOL_SOCKET && matches!(name, 20 | 21 | 66 | 67) && room >= 16 {
                        // Keep blocking calls bounded: 1 ms, whatever was asked.
                        let tv = libc::timeval { tv_sec: 0, tv_usec: 1000 };
                        std::ptr::copy_nonoverlapping(&tv as *const _ as *const u8, p, 16);
                        n = n.max(16);
                    }
                }
                let l = match len { Len::Exact => n, Len::Minus(k) => n.saturating_sub(usize::from(*k)), Len::Plus(k) => n + usize::from(*k % 64), Len::Zero => 0, Len::Huge => 1 << 31 };
                let r = usock_setsockopt(self.fd(*fd), level, name, p as *const c_void, l as socklen_t);
                check_kernel("setsockopt", r as isize, 0);
            }
            Op::Fcntl { fd, cmd, arg } => {
                let f = self.fd(*fd);
                let cmd = [libc::F_GETFL, libc::F_SETFL, libc::F_GETFD, libc::F_SETFD, libc::F_DUPFD, libc::F_DUPFD_CLOEXEC, 1000 + c_int::from(*cmd)][usize::from(cmd % 7)];
                let mut arg = *arg as libc::c_ulong;
                if cmd == libc::F_SETFL {
                    // Never O_ASYNC (SIGIO), always O_NONBLOCK: the other
                    // thread may turn this number into a dup of the pipe
                    // between any check here and the call, and a blocking
                    // pipe would hang the run. (Sockets are blocking by
                    // default anyway, with 1 ms timeouts.)
                    arg &= !(libc::O_ASYNC as libc::c_ulong);
                    arg |= libc::O_NONBLOCK as libc::c_ulong;
                }
                if cmd == libc::F_DUPFD || cmd == libc::F_DUPFD_CLOEXEC {
                    arg %= 2000;
                }
                let r = usock_fcntl(f, cmd, arg);
                check("fcntl", r as isize, i32::MAX as isize);
                if cmd == libc::F_DUPFD || cmd == libc::F_DUPFD_CLOEXEC {
                    self.track(r);
                }
            }
            Op::Ioctl { fd, req, arg, val } => {
                let f = self.fd(*fd);
                let req = [libc::FIONBIO, libc::FIONREAD, libc::TCGETS, 0x7fde][usize::from(req % 4)];
                let p = self.ptr(&self.ctl, *arg, O_OPT) as *mut c_int;
                if matches!(arg, Ptr::Good) {
                    // FIONBIO only ever sets non-blocking (see F_SETFL).
                    *p = if req == libc::FIONBIO { 1 } else { *val };
                }
                check_kernel("ioctl", usock_ioctl(f, req, p as *mut c_void) as isize, i32::MAX as isize);
            }
            Op::Dup { fd } => {
                let r = usock_dup(self.fd(*fd));
                check("dup", r as isize, i32::MAX as isize);
                self.track(r);
            }
            Op::Dup2 { fd, to, flags } => {
                let (a, b) = (self.fd(*fd), self.fd(*to));
                let r = match flags {
                    None => usock_dup2(a, b),
                    Some(f) => usock_dup3(a, b, *f & (libc::O_CLOEXEC | 0x7)),
                };
                check("dup2", r as isize, i32::MAX as isize);
                if r >= 0 {
                    self.track(r);
                }
            }
            Op::Poll { fds, ptr, timeout_ms, ppoll } => {
                let p = self.ptr(&self.ctl, *ptr, O_POLL) as *mut libc::pollfd;
                let mut n = fds.len().min(64);
                if matches!(ptr, Ptr::Good) {
                    for (i, (f, ev)) in fds.iter().take(64).enumerate() {
                        *p.add(i) = libc::pollfd { fd: self.fd(*f), events: *ev, revents: 0 };
                    }
                } else if !fds.is_empty() && fds[0].1 < 0 {
                    n = 1 << 21;
                }
                let ms = c_int::from(timeout_ms % 3);
                let r = if *ppoll {
                    let ts = self.ctl.at(O_TS) as *mut libc::timespec;
                    *ts = libc::timespec { tv_sec: 0, tv_nsec: i64::from(ms) * 1_000_000 };
                    usock_ppoll(p, n as libc::nfds_t, ts, std::ptr::null())
                } else {
                    usock_poll(p, n as libc::nfds_t, ms)
                };
                check("poll", r as isize, n as isize);
            }
            Op::Select { n, fds, tv, pselect } => {
                let sets = self.ctl.at(O_SETS);
                std::ptr::write_bytes(sets, 0, 3 * 128);
                for (f, which) in fds.iter().take(16) {
                    let fd = self.fd(*f);
                    if (0..1024).contains(&fd) {
                        let set = sets.add(128 * usize::from(which % 3));
                        *set.add(fd as usize / 8) |= 1 << (fd % 8);
                    }
                }
                let n = c_int::from(*n) % 1100;
                // The timeout is always valid: glibc's select/pselect read
                // it in user space (a bad pointer faults inside glibc, with
                // or without this library), and NULL would wait forever.
                let _ = tv;
                let t = self.ctl.at(O_TS);
                let (r, w, e) = (sets as *mut libc::fd_set, sets.add(128) as *mut libc::fd_set, sets.add(256) as *mut libc::fd_set);
                let r = if *pselect {
                    *(t as *mut libc::timespec) = libc::timespec { tv_sec: 0, tv_nsec: 1_000_000 };
                    usock_pselect(n, r, w, e, t as *const libc::timespec, std::ptr::null())
                } else {
                    *(t as *mut libc::timeval) = libc::timeval { tv_sec: 0, tv_usec: 1000 };
                    usock_select(n, r, w, e, t as *mut libc::timeval)
                };
                check("select", r as isize, 3 * 1024);
            }
        }
    }
}

/// 1 ms receive and send timeouts on a user-space socket, so that no
/// blocking call of the input waits long.
fn set_timeouts(fd: c_int) {
    if userspacesock::api::posix::usock_is_userspace(fd) == 0 {
        return;
    }
    let tv = libc::timeval { tv_sec: 0, tv_usec: 1000 };
    for name in [libc::SO_RCVTIMEO, libc::SO_SNDTIMEO] {
        // SAFETY: a valid timeval.
        unsafe {
            usock_setsockopt(fd, libc::SOL_SOCKET, name, &tv as *const _ as *const c_void, 16);
        }
    }
}

thread_local! {
    static CTX: Ctx = Ctx { data: Region::new(), ctl: Region::new() };
}

fn run_all(ops: &[Op]) {
    CTX.with(|c| {
        for op in ops.iter().take(48) {
            c.run(op);
        }
    });
}

/// A worker thread that runs one op list per input, so that its per-thread
/// state (the poll eventfd) is made once, before any input's fds exist.
struct Worker {
    tx: std::sync::mpsc::SyncSender<Vec<Op>>,
    done: std::sync::mpsc::Receiver<()>,
}

fn worker() -> Worker {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Op>>(0);
    let (dtx, done) = std::sync::mpsc::sync_channel(0);
    std::thread::spawn(move || {
        warm_up();
        dtx.send(()).unwrap();
        for ops in rx {
            run_all(&ops);
            dtx.send(()).unwrap();
        }
    });
    done.recv().unwrap();
    Worker { tx, done }
}

/// Creates this thread's poll eventfd and data regions.
fn warm_up() {
    CTX.with(|_| {});
    let mut sv = [0; 2];
    // SAFETY: valid pointers.
    unsafe {
        assert_eq!(usock_socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, sv.as_mut_ptr()), 0);
        let mut p = libc::pollfd { fd: sv[0], events: libc::POLLIN, revents: 0 };
        usock_poll(&mut p, 1, 1);
        usock_close(sv[0]);
        usock_close(sv[1]);
    }
}

static INIT: Once = Once::new();
static WORKER: Mutex<Option<Worker>> = Mutex::new(None);

fuzz_target!(|inp: Input| {
    INIT.call_once(|| {
        // SAFETY: ignoring SIGPIPE, as servers do.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
        warm_up();
        *WORKER.lock().unwrap() = Some(worker());
    });
    {
        let mut p = [0; 2];
        // SAFETY: valid pointer.
        assert_eq!(unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) }, 0);
        *FDS.lock().unwrap() = vec![p[0], p[1]];
    }
    let w = WORKER.lock().unwrap();
    let w = w.as_ref().unwrap();
    w.tx.send(inp.b).unwrap();
    run_all(&inp.a);
    w.done.recv().unwrap();
    let fds = std::mem::take(&mut *FDS.lock().unwrap());
    for fd in fds.into_iter().chain(900..904) {
        // SAFETY: numbers this input opened (or never-opened ones): EBADF
        // for those already closed.
        unsafe { usock_close(fd) };
    }
});

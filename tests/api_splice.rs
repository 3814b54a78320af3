//! splice(2) between a socket and a pipe when one end takes less than the
//! other offers: a pipe with less room than the socket holds (its buffers
//! part-used, so its byte count promises more than it takes), a socket
//! that takes nothing (its send buffer full), a datagram longer than the
//! length asked for. Each case runs on kernel sockets and on the
//! library's (its built-in loopback backend) and compares what they saw.
//!
//! How many bytes one splice moves into a part-used pipe depends on the
//! kernel's pipe buffers and skbs, which the library does not model: those
//! cases record only the library's promise, that the bytes the call did
//! not move are still where they were (no byte lost, none reordered).
#![cfg(feature = "std")]

use libc::{AF_INET, SOCK_DGRAM, SOCK_STREAM};

mod common;
use common::dual::{compare, Addr, Kernel, Lib, Sys, Trace, R};

/// SPLICE_F_NONBLOCK.
const NONBLOCK: u32 = 2;

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// splice(2) with no offsets, on each side.
trait Splice: Sys {
    fn splice(fd_in: i32, fd_out: i32, len: usize, flags: u32) -> R<usize>;
}

impl Splice for Kernel {
    fn splice(fd_in: i32, fd_out: i32, len: usize, flags: u32) -> R<usize> {
        // SAFETY: the raw system call with NULL offsets.
        let r = unsafe {
            libc::syscall(
                libc::SYS_splice,
                fd_in,
                std::ptr::null_mut::<libc::loff_t>(),
                fd_out,
                std::ptr::null_mut::<libc::loff_t>(),
                len,
                flags,
            )
        };
        if r < 0 {
            Err(errno())
        } else {
            Ok(r as usize)
        }
    }
}

impl Splice for Lib {
    fn splice(fd_in: i32, fd_out: i32, len: usize, flags: u32) -> R<usize> {
        // SAFETY: the library's splice with NULL offsets.
        let r = unsafe {
            userspacesock::api::splice::splice(
                fd_in,
                std::ptr::null_mut(),
                fd_out,
                std::ptr::null_mut(),
                len,
                flags,
            )
        };
        if r < 0 {
            Err(errno())
        } else {
            Ok(r as usize)
        }
    }
}

/// A connected TCP pair over 127.0.0.1: (client, server).
fn tcp_pair<S: Sys>() -> (i32, i32) {
    let l = S::socket(AF_INET, SOCK_STREAM, 0).unwrap();
    S::bind(l, &Addr::v4(0)).unwrap();
    S::listen(l, 1).unwrap();
    let port = S::getsockname(l).unwrap().port();
    let c = S::socket(AF_INET, SOCK_STREAM, 0).unwrap();
    S::connect(c, &Addr::v4(port)).unwrap();
    let (s, _) = S::accept(l, 0).unwrap();
    S::close(l).unwrap();
    (c, s)
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

/// A kernel pipe of `size` bytes: [read end, write end].
fn pipe(size: i32) -> [i32; 2] {
    let mut p = [-1; 2];
    // SAFETY: pipe writes two fds.
    assert_eq!(unsafe { libc::pipe(p.as_mut_ptr()) }, 0);
    // SAFETY: F_SETPIPE_SZ takes an int.
    assert!(unsafe { libc::fcntl(p[1], libc::F_SETPIPE_SZ, size) } >= size);
    p
}

fn set_nonblocking(fd: i32) {
    // SAFETY: F_GETFL/F_SETFL on a kernel fd.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        assert_eq!(libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK), 0);
    }
}

fn kwrite(fd: i32, data: &[u8]) {
    // SAFETY: our own buffer.
    let n = unsafe { libc::write(fd, data.as_ptr() as *const libc::c_void, data.len()) };
    assert_eq!(n, data.len() as isize);
}

/// All a non-blocking pipe holds.
fn drain_pipe(fd: i32) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: our own buffer.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
        if n <= 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n as usize]);
    }
}

fn pipe_bytes(fd: i32) -> i32 {
    let mut n = 0;
    // SAFETY: FIONREAD writes one int.
    assert_eq!(unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) }, 0);
    n
}

/// Receives exactly `n` bytes (waiting up to 10 s for them).
fn recv_exactly<S: Sys>(fd: i32, n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    let mut got = 0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while got < n {
        assert!(std::time::Instant::now() < deadline, "{got} of {n} bytes");
        match S::recvfrom(fd, &mut out[got..], libc::MSG_DONTWAIT) {
            Ok((k, _)) if k > 0 => got += k,
            Ok(_) => panic!("EOF after {got} of {n} bytes"),
            Err(libc::EAGAIN) => {
                S::readable(fd, 100);
            }
            Err(e) => panic!("recv: errno {e}"),
        }
    }
    out
}

/// Waits until `fd` has `n` bytes queued (peeking).
fn wait_queued<S: Sys>(fd: i32, n: usize) {
    let mut buf = vec![0u8; n];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Ok((k, _)) = S::recvfrom(fd, &mut buf, libc::MSG_PEEK | libc::MSG_DONTWAIT) {
            if k >= n {
                return;
            }
        }
        assert!(std::time::Instant::now() < deadline, "{n} bytes never came");
        S::readable(fd, 10);
    }
}

/// TCP into a pipe of 4 buffers, two of them part-used (96 bytes at the
/// end of one, 100 at the start of the next): it takes fewer bytes than
/// its size less its byte count. With `flags` SPLICE_F_NONBLOCK the pipe
/// is blocking and the call must not wait on it; without, the pipe is
/// O_NONBLOCK.
fn stream_into_a_part_used_pipe<S: Splice>(flags: u32) -> Trace {
    let mut t = Trace::new(S::NAME);
    let (c, s) = tcp_pair::<S>();
    let p = pipe(16384);
    if flags & NONBLOCK == 0 {
        set_nonblocking(p[1]);
    }
    set_nonblocking(p[0]);
    kwrite(p[1], &[b'x'; 4096]);
    kwrite(p[1], &[b'y'; 100]);
    let mut skip = [0u8; 4000];
    // SAFETY: our own buffer.
    assert_eq!(
        unsafe { libc::read(p[0], skip.as_mut_ptr() as *mut libc::c_void, 4000) },
        4000
    );
    let data = pattern(20000);
    assert_eq!(S::sendto(c, &data, 0, None), Ok(data.len()));
    wait_queued::<S>(s, data.len());
    let n = S::splice(s, p[1], data.len(), flags);
    let n = match n {
        Ok(n) => n,
        Err(e) => panic!("splice: errno {e}"),
    };
    t.see("the splice moved some, not all", n > 0 && n < data.len());
    let mut want = vec![b'x'; 96];
    want.extend_from_slice(&[b'y'; 100]);
    want.extend_from_slice(&data[..n]);
    t.see(
        "the pipe holds what it held, then the moved bytes",
        drain_pipe(p[0]) == want,
    );
    t.see(
        "the socket holds the rest",
        recv_exactly::<S>(s, data.len() - n) == data[n..],
    );
    for f in [c, s] {
        S::close(f).unwrap();
    }
    for f in p {
        // SAFETY: our own pipe.
        unsafe { libc::close(f) };
    }
    t
}

#[test]
fn splice_into_a_part_used_nonblocking_pipe_loses_nothing() {
    compare(
        "nonblocking pipe",
        || stream_into_a_part_used_pipe::<Kernel>(0),
        || stream_into_a_part_used_pipe::<Lib>(0),
    );
}

#[test]
fn splice_f_nonblock_into_a_part_used_blocking_pipe_loses_nothing() {
    compare(
        "SPLICE_F_NONBLOCK",
        || stream_into_a_part_used_pipe::<Kernel>(NONBLOCK),
        || stream_into_a_part_used_pipe::<Lib>(NONBLOCK),
    );
}

/// A pipe into a non-blocking TCP socket whose send buffer is full: EAGAIN
/// and the pipe keeps every byte; once the peer has read, the same bytes
/// go, in order.
fn pipe_into_a_full_socket<S: Splice>() -> Trace {
    let mut t = Trace::new(S::NAME);
    let (c, s) = tcp_pair::<S>();
    S::set_nonblocking(c, true).unwrap();
    let chunk = vec![0u8; 65536];
    let mut filled = 0usize;
    loop {
        match S::sendto(c, &chunk, libc::MSG_DONTWAIT, None) {
            Ok(k) => filled += k,
            Err(libc::EAGAIN) => break,
            Err(e) => panic!("filling: errno {e}"),
        }
        assert!(filled < 256 << 20, "the socket never filled");
    }
    let p = pipe(65536);
    let data = pattern(1000);
    kwrite(p[1], &data);
    t.sys("splice into the full socket", &S::splice(p[0], c, 1000, 0));
    t.see("the pipe still holds", pipe_bytes(p[0]));
    let _ = recv_exactly::<S>(s, filled);
    let mut w = [libc::pollfd {
        fd: c,
        events: libc::POLLOUT,
        revents: 0,
    }];
    t.sys("the socket is writable again", &S::poll(&mut w, 10000));
    t.sys("splice once the peer read", &S::splice(p[0], c, 1000, 0));
    t.see(
        "the peer gets the pipe's bytes",
        recv_exactly::<S>(s, 1000) == data,
    );
    t.see("the pipe holds", pipe_bytes(p[0]));
    for f in [c, s] {
        S::close(f).unwrap();
    }
    for f in p {
        // SAFETY: our own pipe.
        unsafe { libc::close(f) };
    }
    t
}

#[test]
fn splice_into_a_full_socket_keeps_the_pipe() {
    compare(
        "full socket",
        pipe_into_a_full_socket::<Kernel>,
        pipe_into_a_full_socket::<Lib>,
    );
}

/// UDP into a pipe with a length shorter than the datagram: the datagram
/// is cut and gone, the next one whole.
fn datagram_cut_to_the_length<S: Splice>() -> Trace {
    let mut t = Trace::new(S::NAME);
    let b = S::socket(AF_INET, SOCK_DGRAM, 0).unwrap();
    S::bind(b, &Addr::v4(0)).unwrap();
    let port = S::getsockname(b).unwrap().port();
    let a = S::socket(AF_INET, SOCK_DGRAM, 0).unwrap();
    S::connect(a, &Addr::v4(port)).unwrap();
    assert_eq!(S::sendto(a, b"0123456789", 0, None), Ok(10));
    assert_eq!(S::sendto(a, b"abc", 0, None), Ok(3));
    let p = pipe(65536);
    set_nonblocking(p[0]);
    assert!(S::readable(b, 5000));
    t.sys("splice 4 of a 10-byte datagram", &S::splice(b, p[1], 4, 0));
    t.see("the pipe", String::from_utf8(drain_pipe(p[0])).unwrap());
    assert!(S::readable(b, 5000));
    t.sys("splice the next datagram", &S::splice(b, p[1], 100, 0));
    t.see("the pipe", String::from_utf8(drain_pipe(p[0])).unwrap());
    for f in [a, b] {
        S::close(f).unwrap();
    }
    for f in p {
        // SAFETY: our own pipe.
        unsafe { libc::close(f) };
    }
    t
}

#[test]
fn splice_cuts_a_datagram_to_the_length() {
    compare(
        "datagram",
        datagram_cut_to_the_length::<Kernel>,
        datagram_cut_to_the_length::<Lib>,
    );
}

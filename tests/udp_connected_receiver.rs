//! Which UDP socket receives a datagram, over the built-in loopback backend,
//! as Linux decides it (each case checked against the kernel):
//! - a connected socket takes datagrams from its peer, compared as an
//!   endpoint: a dual-stack AF_INET6 server replying from `[::]:P` is the
//!   `127.0.0.1:P` an AF_INET client connected to;
//! - with several sockets on one port (SO_REUSEADDR on all), the one
//!   connected to the sender gets its datagrams, the most recently bound
//!   unconnected one gets the others, and one connected to another peer
//!   none. iperf3's UDP server relies on both: it connects its listening
//!   socket to the first client and binds a new one on the same port.
//!
//! A receive waits up to 2 s for a datagram that should come and 200 ms
//! for one that should not, so the cases also run through the cross-process
//! backend, whose delivery is asynchronous: `USOCK_NET=DIR cargo test --test
//! udp_connected_receiver`.
#![cfg(feature = "std")]

use std::ffi::c_void;

use libc::{sockaddr, sockaddr_in, sockaddr_in6, socklen_t};
use userspacesock::api::posix::*;

fn v4(port: u16) -> sockaddr_in {
    sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_be_bytes([127, 0, 0, 1]).to_be(),
        },
        sin_zero: [0; 8],
    }
}

fn any6(port: u16) -> sockaddr_in6 {
    // SAFETY: all-zero is a valid sockaddr_in6 (the wildcard address).
    let mut a: sockaddr_in6 = unsafe { core::mem::zeroed() };
    a.sin6_family = libc::AF_INET6 as u16;
    a.sin6_port = port.to_be();
    a
}

fn ok(r: i32, what: &str) -> i32 {
    assert!(
        r >= 0,
        "{what}: {}",
        // SAFETY: reads this thread's errno.
        unsafe { *libc::__errno_location() }
    );
    r
}

/// A dual-stack UDP socket, SO_REUSEADDR on, bound to `[::]:port`
/// (0: any), as iperf3's netannounce makes it; returns (fd, port).
fn server(port: u16) -> Result<(i32, u16), i32> {
    // SAFETY: library calls with valid pointers and lengths.
    unsafe {
        let s = ok(usock_socket(libc::AF_INET6, libc::SOCK_DGRAM, 0), "socket");
        let one: i32 = 1;
        let zero: i32 = 0;
        let p = &one as *const i32 as *const c_void;
        ok(
            usock_setsockopt(s, libc::SOL_SOCKET, libc::SO_REUSEADDR, p, 4),
            "SO_REUSEADDR",
        );
        let z = &zero as *const i32 as *const c_void;
        ok(
            usock_setsockopt(s, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, z, 4),
            "IPV6_V6ONLY",
        );
        let a = any6(port);
        if usock_bind(s, &a as *const _ as *const sockaddr, 28) != 0 {
            let e = *libc::__errno_location();
            usock_close(s);
            return Err(e);
        }
        let mut got = any6(0);
        let mut len: socklen_t = 28;
        ok(
            usock_getsockname(s, &mut got as *mut _ as *mut sockaddr, &mut len),
            "getsockname",
        );
        Ok((s, u16::from_be(got.sin6_port)))
    }
}

/// An AF_INET UDP socket connected to 127.0.0.1:`port`.
fn client(port: u16) -> i32 {
    // SAFETY: library calls with valid pointers and lengths.
    unsafe {
        let c = ok(usock_socket(libc::AF_INET, libc::SOCK_DGRAM, 0), "socket");
        let a = v4(port);
        ok(
            usock_connect(c, &a as *const _ as *const sockaddr, 16),
            "connect",
        );
        c
    }
}

fn send(fd: i32, data: &[u8]) {
    // SAFETY: a valid buffer.
    let n = unsafe { usock_send(fd, data.as_ptr() as *const c_void, data.len(), 0) };
    assert_eq!(n, data.len() as isize);
}

/// Whether a datagram is there within `ms` milliseconds.
fn readable(fd: i32, ms: i32) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { usock_poll(&mut p, 1, ms) };
    assert!(n >= 0, "poll");
    n == 1 && p.revents & libc::POLLIN != 0
}

/// The next datagram within 2 s: (bytes, source as AF_INET6), or None.
fn recv_from(fd: i32) -> Option<(Vec<u8>, sockaddr_in6)> {
    recv_within(fd, 2000)
}

/// The next datagram within `ms` milliseconds, with its source.
fn recv_within(fd: i32, ms: i32) -> Option<(Vec<u8>, sockaddr_in6)> {
    if !readable(fd, ms) {
        return None;
    }
    let mut buf = [0u8; 64];
    let mut from = any6(0);
    let mut len: socklen_t = 28;
    // SAFETY: valid buffers and lengths.
    let n = unsafe {
        usock_recvfrom(
            fd,
            buf.as_mut_ptr() as *mut c_void,
            buf.len(),
            libc::MSG_DONTWAIT,
            &mut from as *mut _ as *mut sockaddr,
            &mut len,
        )
    };
    if n < 0 {
        // SAFETY: reads this thread's errno.
        assert_eq!(unsafe { *libc::__errno_location() }, libc::EAGAIN);
        return None;
    }
    Some((buf[..n as usize].to_vec(), from))
}

/// The next datagram: within 2 s when one is `expected`, else within
/// 200 ms; None when none came.
fn recv(fd: i32, expected: bool) -> Option<Vec<u8>> {
    recv_within(fd, if expected { 2000 } else { 200 }).map(|(d, _)| d)
}

fn connect6(fd: i32, to: &sockaddr_in6) {
    // SAFETY: a valid address.
    ok(
        unsafe { usock_connect(fd, to as *const _ as *const sockaddr, 28) },
        "connect",
    );
}

fn close(fd: i32) {
    // SAFETY: closes an fd this test owns.
    assert_eq!(unsafe { usock_close(fd) }, 0);
}

#[test]
fn a_dual_stack_reply_reaches_a_connected_ipv4_client() {
    let (s, port) = server(0).unwrap();
    let c = client(port);
    send(c, b"hello");
    let (d, from) = recv_from(s).expect("the client's datagram");
    assert_eq!(d, b"hello");
    // SAFETY: sends from a valid buffer to a valid address.
    let n = unsafe {
        usock_sendto(
            s,
            b"reply".as_ptr() as *const c_void,
            5,
            0,
            &from as *const _ as *const sockaddr,
            28,
        )
    };
    assert_eq!(n, 5);
    assert_eq!(
        recv(c, true).as_deref(),
        Some(&b"reply"[..]),
        "from [::]:P, the peer 127.0.0.1:P"
    );
    connect6(s, &from);
    send(s, b"connected");
    assert_eq!(recv(c, true).as_deref(), Some(&b"connected"[..]));
    close(c);
    close(s);
}

#[test]
fn the_socket_connected_to_the_sender_receives_its_datagrams() {
    // iperf3's UDP server: the listening socket learns the first client...
    let (l1, port) = server(0).unwrap();
    let c1 = client(port);
    send(c1, b"hello");
    let (_, peer) = recv_from(l1).unwrap();
    // ...is connected to it, and a new socket takes the port.
    connect6(l1, &peer);
    let (l2, p2) = server(port).expect("a second bind with SO_REUSEADDR on both");
    assert_eq!(p2, port);
    send(l1, b"ready");
    assert_eq!(recv(c1, true).as_deref(), Some(&b"ready"[..]));

    // The first client's data goes to the connected socket, not the newer.
    send(c1, b"data");
    assert_eq!(recv(l1, true).as_deref(), Some(&b"data"[..]));
    assert_eq!(recv(l2, false), None);

    // Another client's to the unconnected one; never to l1.
    let c2 = client(port);
    send(c2, b"second client");
    assert_eq!(recv(l2, true).as_deref(), Some(&b"second client"[..]));
    assert_eq!(recv(l1, false), None);

    // Without SO_REUSEADDR the port stays taken.
    // SAFETY: library calls with valid pointers and lengths.
    unsafe {
        let l3 = ok(usock_socket(libc::AF_INET6, libc::SOCK_DGRAM, 0), "socket");
        let a = any6(port);
        assert_eq!(usock_bind(l3, &a as *const _ as *const sockaddr, 28), -1);
        assert_eq!(*libc::__errno_location(), libc::EADDRINUSE);
        close(l3);
    }

    // With l2 gone, the second client reaches nobody: the only socket left
    // is connected to another peer (Linux answers "port unreachable").
    close(l2);
    send(c2, b"nobody");
    assert_eq!(recv(l1, false), None);
    for fd in [c1, c2, l1] {
        close(fd);
    }
}

//! Stream sockets through the native Rust API (`userspacesock::net`), over
//! the built-in loopback backend. Each test asserts what Linux's TCP over
//! loopback does (checked against the kernel with `std::net`).
#![cfg(feature = "std")]

use std::io::{ErrorKind, IoSlice, IoSliceMut, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use userspacesock::addr::SockAddr;
use userspacesock::consts::*;
use userspacesock::net::{to_sockaddr, UsockListener, UsockStream};
use userspacesock::socket::{check_args, Socket};

/// A connected pair: (client, accepted server side, listener).
fn pair(host: &str) -> (UsockStream, UsockStream, UsockListener) {
    let l = UsockListener::bind(format!("{host}:0")).unwrap();
    let c = UsockStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, peer) = l.accept().unwrap();
    assert_eq!(peer, c.local_addr().unwrap());
    assert_eq!(s.local_addr().unwrap(), c.peer_addr().unwrap());
    (c, s, l)
}

fn echo_over(host: &str) {
    let l = UsockListener::bind(format!("{host}:0")).unwrap();
    let laddr = l.local_addr().unwrap();
    assert_ne!(laddr.port(), 0);
    let server = thread::spawn(move || {
        let (mut s, peer) = l.accept().unwrap();
        assert_eq!(s.peer_addr().unwrap(), peer);
        assert_eq!(s.local_addr().unwrap(), laddr);
        let mut buf = [0u8; 1000];
        loop {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            s.write_all(&buf[..n]).unwrap();
        }
        peer
    });
    let mut c = UsockStream::connect(laddr).unwrap();
    assert_eq!(c.peer_addr().unwrap(), laddr);
    let local = c.local_addr().unwrap();
    assert_ne!(local.port(), 0);
    for msg in [
        &b"hello"[..],
        b"",
        b"a longer line of text\n",
        &[0xffu8; 3000][..],
    ] {
        c.write_all(msg).unwrap();
        let mut back = vec![0u8; msg.len()];
        c.read_exact(&mut back).unwrap();
        assert_eq!(back, msg);
    }
    c.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    let seen = server.join().unwrap();
    assert_eq!(seen.port(), local.port());
    assert_eq!(seen.ip(), laddr.ip());
}

/// Linux: getsockname() on a connected client gives the concrete source
/// address (127.0.0.1 / ::1), the one the server sees as its peer.
fn client_name_is_concrete(host: &str) {
    let l = UsockListener::bind(format!("{host}:0")).unwrap();
    let laddr = l.local_addr().unwrap();
    let c = UsockStream::connect(laddr).unwrap();
    let (_s, peer) = l.accept().unwrap();
    let local = c.local_addr().unwrap();
    assert_eq!(local.ip(), laddr.ip());
    assert_eq!(local, peer);
}

#[test]
fn connected_client_local_addr_is_the_concrete_address_v4() {
    client_name_is_concrete("127.0.0.1");
}

#[test]
fn connected_client_local_addr_is_the_concrete_address_v6() {
    client_name_is_concrete("[::1]");
}

#[test]
fn echo_over_ipv4_loopback() {
    echo_over("127.0.0.1");
}

#[test]
fn echo_over_ipv6_loopback() {
    echo_over("[::1]");
}

#[test]
fn shutdown_write_gives_peer_eof_and_half_close_still_carries_data() {
    let (c, mut s, _l) = pair("127.0.0.1");
    (&c).write_all(b"request").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"request");
    // EOF stays EOF.
    assert_eq!(s.read(&mut [0u8; 8]).unwrap(), 0);
    // The other direction is still open.
    s.write_all(b"reply").unwrap();
    drop(s);
    let mut got = Vec::new();
    (&c).read_to_end(&mut got).unwrap();
    assert_eq!(got, b"reply");
    // Linux: writing after shutdown(SHUT_WR) is EPIPE.
    let e = (&c).write(b"x").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(EPIPE));
}

/// A stream socket bound to a port but not listening: nobody listens there.
struct BoundOnly(Arc<Socket>);
impl Drop for BoundOnly {
    fn drop(&mut self) {
        self.0.drop_ref();
    }
}

#[test]
fn connect_to_a_port_nobody_listens_on_is_refused() {
    let info = check_args(AF_INET, SOCK_STREAM, 0).unwrap();
    let b = BoundOnly(Socket::new(info, false).unwrap());
    b.0.bind(&to_sockaddr(&"127.0.0.1:0".parse().unwrap()))
        .unwrap();
    let addr = userspacesock::net::to_socket_addr(&b.0.local_addr()).unwrap();
    assert_ne!(addr.port(), 0);
    let e = UsockStream::connect(addr).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused);
    assert_eq!(e.raw_os_error(), Some(ECONNREFUSED));

    // A port that was listened on and closed again refuses too.
    let l = UsockListener::bind("127.0.0.1:0").unwrap();
    let gone = l.local_addr().unwrap();
    drop(l);
    let e = UsockStream::connect(gone).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(ECONNREFUSED));

    // The same over IPv6.
    let l = UsockListener::bind("[::1]:0").unwrap();
    let gone = l.local_addr().unwrap();
    drop(l);
    let e = UsockStream::connect(gone).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(ECONNREFUSED));
}

#[test]
fn second_listener_on_a_port_is_addr_in_use() {
    let l = UsockListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let e = UsockListener::bind(addr).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AddrInUse);
    assert_eq!(e.raw_os_error(), Some(EADDRINUSE));
    // The wildcard address overlaps the bound loopback address.
    let e = UsockListener::bind(SocketAddr::from(([0, 0, 0, 0], addr.port()))).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(EADDRINUSE));
    // Once the first listener is gone the port is free again.
    drop(l);
    let l2 = UsockListener::bind(addr).unwrap();
    assert_eq!(l2.local_addr().unwrap(), addr);
}

#[test]
fn port_zero_picks_distinct_free_ports() {
    let a = UsockListener::bind("127.0.0.1:0").unwrap();
    let b = UsockListener::bind("127.0.0.1:0").unwrap();
    let c = UsockListener::bind("[::1]:0").unwrap();
    let (pa, pb, pc) = (
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
        c.local_addr().unwrap().port(),
    );
    assert!(pa != 0 && pb != 0 && pc != 0);
    assert_ne!(pa, pb);
    // Linux's ephemeral range (net.ipv4.ip_local_port_range default).
    for p in [pa, pb, pc] {
        assert!((32768..=60999).contains(&p), "port {p}");
    }
    // Each reaches its own listener.
    let _c = UsockStream::connect(b.local_addr().unwrap()).unwrap();
    b.set_nonblocking(true).unwrap();
    a.set_nonblocking(true).unwrap();
    assert!(b.accept().is_ok());
    assert_eq!(a.accept().unwrap_err().kind(), ErrorKind::WouldBlock);
}

#[test]
fn read_timeout_gives_would_block_after_the_timeout() {
    let (c, _s, _l) = pair("127.0.0.1");
    assert_eq!(c.read_timeout().unwrap(), None);
    let t = Duration::from_millis(150);
    c.set_read_timeout(Some(t)).unwrap();
    assert_eq!(c.read_timeout().unwrap(), Some(t));
    let start = Instant::now();
    let e = (&c).read(&mut [0u8; 16]).unwrap_err();
    let took = start.elapsed();
    assert_eq!(e.kind(), ErrorKind::WouldBlock);
    assert_eq!(e.raw_os_error(), Some(EAGAIN));
    assert!(
        took >= Duration::from_millis(140),
        "returned after {took:?}"
    );
    assert!(took < Duration::from_secs(3), "returned after {took:?}");
    // A zero timeout is refused as std refuses it; None clears it.
    let e = c.set_read_timeout(Some(Duration::ZERO)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    c.set_read_timeout(None).unwrap();
    assert_eq!(c.read_timeout().unwrap(), None);
}

#[test]
fn write_timeout_returns_partial_count_then_would_block() {
    let (c, s, _l) = pair("127.0.0.1");
    let t = Duration::from_millis(100);
    c.set_write_timeout(Some(t)).unwrap();
    assert_eq!(c.write_timeout().unwrap(), Some(t));
    // Nobody reads: the window fills. A blocked write that sent some bytes
    // returns their count after the timeout; one that sent none fails with
    // EAGAIN after the timeout (Linux's sk_stream_wait_memory).
    let big = vec![7u8; 8 << 20];
    let mut n = 0;
    let mut tries = 0;
    let e = loop {
        tries += 1;
        assert!(tries < 100, "writes never time out");
        let start = Instant::now();
        match (&c).write(&big) {
            Ok(k) => {
                assert!(k > 0 && k < big.len(), "wrote {k}");
                n += k;
            }
            Err(e) => {
                assert!(start.elapsed() >= Duration::from_millis(90));
                break e;
            }
        }
    };
    assert_eq!(e.kind(), ErrorKind::WouldBlock);
    assert_eq!(e.raw_os_error(), Some(EAGAIN));
    // Everything counted as written arrives.
    drop(c);
    let mut got = Vec::new();
    (&s).read_to_end(&mut got).unwrap();
    assert_eq!(got.len(), n);
}

fn blocked_reader_woken_by(how: Shutdown) {
    let (c, _s, _l) = pair("127.0.0.1");
    let start = Instant::now();
    thread::scope(|sc| {
        let r = sc.spawn(|| (&c).read(&mut [0u8; 64]));
        thread::sleep(Duration::from_millis(100));
        assert!(!r.is_finished());
        c.shutdown(how).unwrap();
        // Linux: the blocked read returns 0 (end of file).
        assert_eq!(r.join().unwrap().unwrap(), 0);
    });
    assert!(start.elapsed() < Duration::from_secs(5));
    // Reads keep returning 0.
    assert_eq!((&c).read(&mut [0u8; 4]).unwrap(), 0);
    // Linux: after SHUT_RD writing still works; after SHUT_RDWR it is EPIPE.
    let w = (&c).write(b"q");
    match how {
        Shutdown::Read => assert_eq!(w.unwrap(), 1),
        _ => assert_eq!(w.unwrap_err().raw_os_error(), Some(EPIPE)),
    }
}

#[test]
fn shutdown_read_from_another_thread_wakes_a_blocked_reader() {
    blocked_reader_woken_by(Shutdown::Read);
}

#[test]
fn shutdown_both_from_another_thread_wakes_a_blocked_reader() {
    blocked_reader_woken_by(Shutdown::Both);
}

#[test]
fn shutdown_from_another_thread_wakes_a_blocked_accept() {
    let l = UsockListener::bind("127.0.0.1:0").unwrap();
    thread::scope(|sc| {
        let a = sc.spawn(|| l.accept().map(|_| ()));
        thread::sleep(Duration::from_millis(100));
        assert!(!a.is_finished());
        // Linux: shutdown(SHUT_RD) on a listener makes accept() return EINVAL.
        l.socket().shutdown(SHUT_RDWR).unwrap();
        let e = a.join().unwrap().unwrap_err();
        assert_eq!(e.raw_os_error(), Some(EINVAL));
    });
}

#[test]
fn nonblocking_read_gives_would_block_then_data() {
    let (c, s, _l) = pair("127.0.0.1");
    c.set_nonblocking(true).unwrap();
    let e = (&c).read(&mut [0u8; 16]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock);
    assert_eq!(e.raw_os_error(), Some(EAGAIN));
    (&s).write_all(b"now").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 16];
    let n = loop {
        match (&c).read(&mut buf) {
            Ok(n) => break n,
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(1))
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(&buf[..n], b"now");
    let e = (&c).read(&mut buf).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock);
    // Back to blocking: the read waits for the EOF.
    c.set_nonblocking(false).unwrap();
    drop(s);
    assert_eq!((&c).read(&mut buf).unwrap(), 0);
}

#[test]
fn nonblocking_accept_gives_would_block() {
    let l = UsockListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let e = l.accept().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock);
    let c = UsockStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, peer) = l.accept().unwrap();
    assert_eq!(peer.port(), c.local_addr().unwrap().port());
    // The accepted socket does not inherit O_NONBLOCK (Linux's accept()).
    assert!(!s.socket().nonblocking());
}

#[test]
fn peek_leaves_the_data_queued() {
    let (c, s, _l) = pair("127.0.0.1");
    (&s).write_all(b"peekaboo").unwrap();
    let mut buf = [0u8; 4];
    assert_eq!(c.peek(&mut buf).unwrap(), 4);
    assert_eq!(&buf, b"peek");
    let mut all = [0u8; 8];
    (&c).read_exact(&mut all).unwrap();
    assert_eq!(&all, b"peekaboo");
}

#[test]
fn vectored_read_and_write() {
    let (c, s, _l) = pair("[::1]");
    let n = (&c)
        .write_vectored(&[
            IoSlice::new(b"abc"),
            IoSlice::new(b""),
            IoSlice::new(b"defg"),
        ])
        .unwrap();
    assert_eq!(n, 7);
    let (mut a, mut b) = ([0u8; 2], [0u8; 10]);
    let mut got = 0;
    while got < 7 {
        let mut bufs = [
            IoSliceMut::new(&mut a[got.min(2)..]),
            IoSliceMut::new(&mut b[got.saturating_sub(2)..]),
        ];
        got += (&s).read_vectored(&mut bufs).unwrap();
    }
    assert_eq!(&a, b"ab");
    assert_eq!(&b[..5], b"cdefg");
}

#[test]
fn dropping_the_last_handle_gives_the_peer_eof() {
    let (c, s, _l) = pair("127.0.0.1");
    let c2 = c.try_clone().unwrap();
    (&c).write_all(b"bye").unwrap();
    drop(c);
    // One handle is still open: no EOF yet.
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!((&s).read(&mut buf).unwrap(), 3);
    assert_eq!(
        (&s).read(&mut buf).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    (&c2).write_all(b"!").unwrap();
    drop(c2);
    assert_eq!((&s).read(&mut buf).unwrap(), 1);
    assert_eq!(buf[0], b'!');
    assert_eq!((&s).read(&mut buf).unwrap(), 0);
}

#[test]
fn writing_to_a_closed_peer_succeeds_once_then_is_broken_pipe() {
    let (c, s, _l) = pair("127.0.0.1");
    drop(s);
    assert_eq!((&c).read(&mut [0u8; 4]).unwrap(), 0);
    // Linux: the first write goes out (and draws a reset), later ones fail
    // with EPIPE since the peer had sent its FIN.
    assert_eq!((&c).write(b"z").unwrap(), 1);
    let deadline = Instant::now() + Duration::from_secs(5);
    let e = loop {
        match (&c).write(b"z") {
            Ok(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
            Ok(_) => panic!("writes to a closed peer keep succeeding"),
            Err(e) => break e,
        }
    };
    assert_eq!(e.kind(), ErrorKind::BrokenPipe);
    assert_eq!(e.raw_os_error(), Some(EPIPE));
    assert_eq!((&c).read(&mut [0u8; 4]).unwrap(), 0);
}

/// B sends data to A, A sends data to B, B closes without reading it: Linux
/// resets the connection. A reads B's data first, then ECONNRESET once.
fn reset_with_unread_data() -> UsockStream {
    let (a, b, _l) = pair("127.0.0.1");
    (&b).write_all(b"hello").unwrap();
    (&a).write_all(b"x").unwrap();
    drop(b);
    let mut buf = [0u8; 16];
    assert_eq!((&a).read(&mut buf).unwrap(), 5);
    assert_eq!(&buf[..5], b"hello");
    let e = (&a).read(&mut buf).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionReset);
    assert_eq!(e.raw_os_error(), Some(ECONNRESET));
    a
}

#[test]
fn closing_with_unread_data_resets_the_peer_after_its_data() {
    let a = reset_with_unread_data();
    // Linux: after the reset was reported, writes are EPIPE.
    let e = (&a).write(b"z").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(EPIPE));
    let e = (&a).write(b"z").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(EPIPE));
}

#[test]
fn read_after_reported_reset_is_eof() {
    let a = reset_with_unread_data();
    // Linux (tcp_reset -> tcp_done sets RCV_SHUTDOWN): read returns 0.
    assert_eq!((&a).read(&mut [0u8; 4]).unwrap(), 0);
}

#[test]
fn write_to_a_reset_connection_reports_econnreset_first() {
    let (a, b, _l) = pair("127.0.0.1");
    (&a).write_all(b"x").unwrap();
    drop(b); // unread "x": reset
    let e = (&a).write(b"z").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionReset);
    // The reset is reported once; then writes are EPIPE.
    let e = (&a).write(b"z").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(EPIPE));
}

#[test]
fn linger_zero_resets_on_close() {
    let (a, b, _l) = pair("127.0.0.1");
    b.set_linger(Some(Duration::ZERO)).unwrap();
    assert_eq!(b.linger().unwrap(), Some(Duration::ZERO));
    drop(b);
    let e = (&a).read(&mut [0u8; 4]).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(ECONNRESET));
}

#[test]
fn options_round_trip() {
    let (c, _s, _l) = pair("127.0.0.1");
    assert!(!c.nodelay().unwrap());
    c.set_nodelay(true).unwrap();
    assert!(c.nodelay().unwrap());
    assert_eq!(c.linger().unwrap(), None);
    assert!(c.take_error().unwrap().is_none());
    c.set_write_timeout(Some(Duration::from_micros(2_500_000)))
        .unwrap();
    assert_eq!(
        c.write_timeout().unwrap(),
        Some(Duration::from_micros(2_500_000))
    );
}

#[test]
fn peer_addr_of_a_listener_is_not_connected() {
    let l = UsockListener::bind("127.0.0.1:0").unwrap();
    let e = l.socket().peer_addr().unwrap_err();
    assert_eq!(e, ENOTCONN);
    // Connecting a listener's family to a sockaddr of another family.
    let v6 = to_sockaddr(&"[::1]:1".parse().unwrap());
    assert_eq!(l.socket().connect(&v6).unwrap_err(), EAFNOSUPPORT);
    let _ = SockAddr::unnamed(AF_INET);
}

#[test]
fn accept_honours_the_read_timeout() {
    let l = UsockListener::bind("127.0.0.1:0").unwrap();
    l.socket()
        .setsockopt(SOL_SOCKET, SO_RCVTIMEO, &{
            let mut tv = [0u8; 16];
            tv[8..].copy_from_slice(&100_000i64.to_ne_bytes());
            tv
        })
        .unwrap();
    let start = Instant::now();
    let e = l.accept().unwrap_err();
    assert_eq!(e.raw_os_error(), Some(EAGAIN));
    assert!(start.elapsed() >= Duration::from_millis(90));
}

#[test]
fn closing_a_listener_resets_connections_not_yet_accepted() {
    let l = UsockListener::bind("127.0.0.1:0").unwrap();
    let c = UsockStream::connect(l.local_addr().unwrap()).unwrap();
    drop(l);
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let e = (&c).read(&mut [0u8; 4]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionReset);
}

#[test]
fn ipv4_client_of_a_dual_stack_listener_is_seen_as_v4_mapped() {
    let l = UsockListener::bind("[::]:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let c = UsockStream::connect(("127.0.0.1", port)).unwrap();
    let (s, peer) = l.accept().unwrap();
    let SocketAddr::V6(p6) = peer else {
        panic!("{peer}")
    };
    assert_eq!(p6.ip().to_ipv4_mapped(), Some([127, 0, 0, 1].into()));
    assert_eq!(p6.port(), c.local_addr().unwrap().port());
    (&c).write_all(b"46").unwrap();
    let mut b = [0u8; 2];
    (&s).read_exact(&mut b).unwrap();
    assert_eq!(&b, b"46");
}

#[test]
fn connect_resolves_host_and_port_pairs() {
    let l = UsockListener::bind(("127.0.0.1", 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    let c = UsockStream::connect(format!("127.0.0.1:{port}")).unwrap();
    assert_eq!(c.peer_addr().unwrap().port(), port);
    let e = UsockStream::connect(&[][..] as &[SocketAddr]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
}

#[test]
fn connecting_a_connected_stream_is_eisconn() {
    let (c, _s, l) = pair("127.0.0.1");
    let a = to_sockaddr(&l.local_addr().unwrap());
    assert_eq!(c.socket().connect(&a).unwrap_err(), EISCONN);
}

#[test]
fn a_connection_closed_before_accept_is_accepted_then_reads_eof() {
    let l = UsockListener::bind("127.0.0.1:0").unwrap();
    let mut c = UsockStream::connect(l.local_addr().unwrap()).unwrap();
    c.write_all(b"early").unwrap();
    drop(c);
    let (mut s, _) = l.accept().unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"early");
}

#[test]
fn connects_beyond_the_backlog_wait_until_accepted() {
    // Linux does not refuse a connect to a full accept queue: the SYN is
    // dropped and retried, and connect() completes once there is room.
    let l = UsockListener::bind_sockaddr(&to_sockaddr(&"127.0.0.1:0".parse().unwrap()), 1).unwrap();
    let addr = l.local_addr().unwrap();
    let n = 5;
    thread::scope(|sc| {
        let clients: Vec<_> = (0..n)
            .map(|i| {
                sc.spawn(move || {
                    let mut c = UsockStream::connect(addr).unwrap();
                    c.write_all(&[i as u8]).unwrap();
                    let mut b = [0u8; 1];
                    c.read_exact(&mut b).unwrap();
                    assert_eq!(b[0], i as u8 + 100);
                })
            })
            .collect();
        thread::sleep(Duration::from_millis(100));
        for _ in 0..n {
            let (mut s, _) = l.accept().unwrap();
            let mut b = [0u8; 1];
            s.read_exact(&mut b).unwrap();
            s.write_all(&[b[0] + 100]).unwrap();
        }
        for c in clients {
            c.join().unwrap();
        }
    });
}

//! Datagram sockets through the native Rust API (`userspacesock::net`),
//! over the built-in loopback backend. Each test asserts what Linux's UDP
//! over loopback does (checked against the kernel with `std::net`).
#![cfg(feature = "std")]

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use userspacesock::consts::*;
use userspacesock::net::UsockDatagram;

fn bound(host: &str) -> (UsockDatagram, SocketAddr) {
    let s = UsockDatagram::bind(format!("{host}:0")).unwrap();
    let a = s.local_addr().unwrap();
    assert_ne!(a.port(), 0);
    (s, a)
}

fn exchange_with_source(host: &str) {
    let (a, aa) = bound(host);
    let (b, ba) = bound(host);
    assert_eq!(a.send_to(b"ping", ba).unwrap(), 4);
    let mut buf = [0u8; 64];
    let (n, from) = b.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"ping");
    assert_eq!(from, aa);
    assert_eq!(b.send_to(b"pong!", from).unwrap(), 5);
    let (n, from) = a.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"pong!");
    assert_eq!(from, ba);
}

#[test]
fn send_to_and_recv_from_report_the_source_ipv4() {
    exchange_with_source("127.0.0.1");
}

#[test]
fn send_to_and_recv_from_report_the_source_ipv6() {
    exchange_with_source("[::1]");
}

#[test]
fn a_long_datagram_is_truncated_and_its_rest_discarded() {
    let (a, aa) = bound("127.0.0.1");
    let (b, ba) = bound("127.0.0.1");
    a.send_to(b"0123456789", ba).unwrap();
    a.send_to(b"ab", ba).unwrap();
    let mut four = [0u8; 4];
    let (n, from) = b.recv_from(&mut four).unwrap();
    assert_eq!((n, from), (4, aa));
    assert_eq!(&four, b"0123");
    // The rest of the first datagram is gone: the next read is the second.
    let (n, _) = b.recv_from(&mut four).unwrap();
    assert_eq!(&four[..n], b"ab");
    // MSG_TRUNC on the core reports the full length, as Linux's recv does.
    a.send_to(b"0123456789", ba).unwrap();
    let r = b.socket().recv(&mut [&mut four[..]], MSG_TRUNC).unwrap();
    assert_eq!(r.ret, 10);
    assert!(r.truncated);
}

#[test]
fn datagram_boundaries_and_order_are_kept() {
    let (a, aa) = bound("127.0.0.1");
    let (b, ba) = bound("127.0.0.1");
    let sizes = [1usize, 100, 0, 1472, 9000, 3, 65_507];
    for (i, &len) in sizes.iter().enumerate() {
        let d: Vec<u8> = (0..len).map(|j| (i * 31 + j) as u8).collect();
        assert_eq!(a.send_to(&d, ba).unwrap(), len);
    }
    let mut buf = vec![0u8; 70_000];
    for (i, &len) in sizes.iter().enumerate() {
        let (n, from) = b.recv_from(&mut buf).unwrap();
        assert_eq!(from, aa);
        assert_eq!(n, len, "datagram {i}");
        assert!(buf[..n]
            .iter()
            .enumerate()
            .all(|(j, &x)| x == (i * 31 + j) as u8));
    }
    b.set_nonblocking(true).unwrap();
    assert_eq!(
        b.recv_from(&mut buf).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
}

#[test]
fn a_datagram_over_the_udp_limit_is_emsgsize() {
    let (a, _) = bound("127.0.0.1");
    let (_b, ba) = bound("127.0.0.1");
    let e = a.send_to(&vec![0u8; 65_508], ba).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(EMSGSIZE));
}

#[test]
fn an_empty_datagram_is_delivered() {
    let (a, aa) = bound("127.0.0.1");
    let (b, ba) = bound("127.0.0.1");
    assert_eq!(a.send_to(b"", ba).unwrap(), 0);
    b.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let (n, from) = b.recv_from(&mut [0u8; 8]).unwrap();
    assert_eq!((n, from), (0, aa));
}

#[test]
fn peek_from_leaves_the_datagram_queued() {
    let (a, aa) = bound("[::1]");
    let (b, ba) = bound("[::1]");
    a.send_to(b"first", ba).unwrap();
    a.send_to(b"second", ba).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(b.peek_from(&mut buf).unwrap(), (5, aa));
    assert_eq!(b.peek(&mut buf).unwrap(), 5);
    assert_eq!(b.recv_from(&mut buf).unwrap(), (5, aa));
    assert_eq!(&buf[..5], b"first");
    assert_eq!(b.recv(&mut buf).unwrap(), 6);
    assert_eq!(&buf[..6], b"second");
}

#[test]
fn connect_sets_the_default_peer_and_filters_senders() {
    let (r, ra) = bound("127.0.0.1");
    let (s1, s1a) = bound("127.0.0.1");
    let (s2, _) = bound("127.0.0.1");
    assert_eq!(r.peer_addr().unwrap_err().kind(), ErrorKind::NotConnected);
    r.connect(s1a).unwrap();
    assert_eq!(r.peer_addr().unwrap(), s1a);
    // A stranger's datagram is dropped; the peer's is received.
    s2.send_to(b"stranger", ra).unwrap();
    s1.send_to(b"friend", ra).unwrap();
    let mut buf = [0u8; 32];
    let (n, from) = r.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"friend"[..], s1a));
    r.set_nonblocking(true).unwrap();
    assert_eq!(r.recv(&mut buf).unwrap_err().kind(), ErrorKind::WouldBlock);
    // send() goes to the peer.
    assert_eq!(r.send(b"hi s1").unwrap(), 5);
    let (n, from) = s1.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"hi s1"[..], ra));
    // Dissolving the association (AF_UNSPEC) lets anyone in again.
    let unspec = userspacesock::addr::SockAddr::unnamed(AF_UNSPEC);
    r.connect_sockaddr(&unspec).unwrap();
    assert_eq!(r.peer_addr().unwrap_err().kind(), ErrorKind::NotConnected);
    assert_eq!(r.send(b"x").unwrap_err().raw_os_error(), Some(EDESTADDRREQ));
    s2.send_to(b"again", ra).unwrap();
    let (n, _) = r.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"again");
}

#[test]
fn send_without_a_destination_is_edestaddrreq() {
    let (a, _) = bound("127.0.0.1");
    let e = a.send(b"x").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(EDESTADDRREQ));
}

#[test]
fn an_unbound_sender_is_bound_to_an_ephemeral_port() {
    let (b, ba) = bound("127.0.0.1");
    let a = UsockDatagram::unbound(AF_INET).unwrap();
    a.send_to(b"who", ba).unwrap();
    let mut buf = [0u8; 8];
    let (_, from) = b.recv_from(&mut buf).unwrap();
    assert_ne!(from.port(), 0);
    assert_eq!(from.ip(), ba.ip());
    assert_eq!(a.local_addr().unwrap().port(), from.port());
}

#[test]
fn connected_to_a_port_nobody_uses_reports_econnrefused() {
    let (gone, ga) = bound("127.0.0.1");
    drop(gone);
    let (a, _) = bound("127.0.0.1");
    a.connect(ga).unwrap();
    // Linux: the send succeeds; the ICMP port-unreachable makes a later
    // receive (or send) fail with ECONNREFUSED, once.
    assert_eq!(a.send(b"anyone?").unwrap(), 7);
    a.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let e = a.recv(&mut [0u8; 8]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused);
    a.set_nonblocking(true).unwrap();
    assert_eq!(
        a.recv(&mut [0u8; 8]).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
}

#[test]
fn second_bind_on_a_port_is_addr_in_use() {
    let (_a, aa) = bound("127.0.0.1");
    let e = UsockDatagram::bind(aa).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AddrInUse);
    // A stream socket may use the same port number.
    let _l = userspacesock::net::UsockListener::bind(aa).unwrap();
}

#[test]
fn read_timeout_gives_would_block() {
    let (a, _) = bound("127.0.0.1");
    a.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let start = Instant::now();
    let e = a.recv_from(&mut [0u8; 8]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock);
    assert!(start.elapsed() >= Duration::from_millis(90));
    assert!(start.elapsed() < Duration::from_secs(3));
}

#[test]
fn a_blocked_receiver_is_woken_by_a_datagram_from_another_thread() {
    let (a, aa) = bound("127.0.0.1");
    let (b, _) = bound("127.0.0.1");
    thread::scope(|s| {
        let r = s.spawn(|| {
            let mut buf = [0u8; 8];
            let (n, _) = a.recv_from(&mut buf).unwrap();
            buf[..n].to_vec()
        });
        thread::sleep(Duration::from_millis(50));
        b.send_to(b"wake", aa).unwrap();
        assert_eq!(r.join().unwrap(), b"wake");
    });
}

#[test]
fn many_threads_send_to_one_receiver() {
    let (r, ra) = bound("127.0.0.1");
    let threads = 4;
    let per = 200;
    thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || {
                let (a, _) = bound("127.0.0.1");
                for i in 0..per {
                    let msg = [t as u8, (i >> 8) as u8, i as u8];
                    a.send_to(&msg, ra).unwrap();
                    // Pace the senders so the receiver's buffer never fills
                    // (a full UDP receiver drops, as Linux does).
                    if i % 50 == 49 {
                        thread::sleep(Duration::from_millis(5));
                    }
                }
            });
        }
        let mut next = vec![0u32; threads];
        let mut buf = [0u8; 8];
        r.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        for _ in 0..threads * per {
            let n = r.recv(&mut buf).unwrap();
            assert_eq!(n, 3);
            let t = buf[0] as usize;
            let i = u32::from(buf[1]) << 8 | u32::from(buf[2]);
            // Per sender, order is kept.
            assert_eq!(i, next[t]);
            next[t] += 1;
        }
    });
}

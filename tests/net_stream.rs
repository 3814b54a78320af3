//! Stream sockets through the native Rust API (`userspacesock::net`), over
//! the built-in loopback backend, against Linux's TCP over loopback: each
//! case runs on kernel sockets (a twin of the API over raw system calls,
//! `common::dual::Kernel`) and on the library's, and compares what they
//! observed. Cases that check what only the Rust API decides (std's rules
//! for timeouts and address lists) say so and run on the library alone.
#![cfg(feature = "std")]

use std::io::{ErrorKind, IoSlice, IoSliceMut};
use std::net::{Shutdown, SocketAddr};
use std::thread;
use std::time::{Duration, Instant};

mod common;
use common::dual::{
    compare, gettid, wait_until_blocked, Kernel, Listener, Stack, Stream, Trace, Usock,
};
use userspacesock::net::{UsockListener, UsockStream};

/// `#[test] fn $test` runs `$case` on the kernel and on the library and
/// compares.
macro_rules! on_both {
    ($test:ident, $case:ident) => {
        #[test]
        fn $test() {
            compare(stringify!($test), $case::<Kernel>, $case::<Usock>);
        }
    };
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A connected pair: (client, accepted server side, listener).
fn pair<S: Stack>(host: &str) -> (S::Stream, S::Stream, S::Listener) {
    let l = S::bind_listener(&format!("{host}:0")).unwrap();
    let c = S::connect(l.local_addr().unwrap()).unwrap();
    let (s, peer) = l.accept().unwrap();
    assert_eq!(peer, c.local_addr().unwrap());
    assert_eq!(s.local_addr().unwrap(), c.peer_addr().unwrap());
    (c, s, l)
}

fn echo_over<S: Stack>(host: &str) -> Trace {
    let mut t = Trace::new(S::NAME);
    let l = S::bind_listener(&format!("{host}:0")).unwrap();
    let laddr = l.local_addr().unwrap();
    t.see("the listener has a port", laddr.port() != 0);
    let server = thread::spawn(move || {
        let (s, peer) = l.accept().unwrap();
        let names = (
            s.peer_addr().unwrap() == peer,
            s.local_addr().unwrap() == laddr,
        );
        let mut buf = [0u8; 1000];
        loop {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            s.write_all(&buf[..n]).unwrap();
        }
        (peer, names)
    });
    let c = S::connect(laddr).unwrap();
    t.see(
        "the client's peer is the listener",
        c.peer_addr().unwrap() == laddr,
    );
    let local = c.local_addr().unwrap();
    t.see("the client has a port", local.port() != 0);
    for msg in [
        &b"hello"[..],
        b"",
        b"a longer line of text\n",
        &[0xffu8; 3000][..],
    ] {
        c.write_all(msg).unwrap();
        let mut back = vec![0u8; msg.len()];
        c.read_exact(&mut back).unwrap();
        t.see(format!("{} bytes echoed", msg.len()), back == msg);
    }
    t.res("shutdown(Write)", &c.shutdown(Shutdown::Write));
    let mut rest = Vec::new();
    t.res("then reading to the end", &c.read_to_end(&mut rest));
    let (seen, names) = server.join().unwrap();
    t.see("the server's peer and local names", names);
    t.see("the server saw the client's address", seen == local);
    t
}

fn echo_v4<S: Stack>() -> Trace {
    echo_over::<S>("127.0.0.1")
}
fn echo_v6<S: Stack>() -> Trace {
    echo_over::<S>("[::1]")
}
on_both!(echo_over_ipv4_loopback, echo_v4);
on_both!(echo_over_ipv6_loopback, echo_v6);

/// getsockname() on a connected client gives the concrete source address
/// (127.0.0.1 / ::1), the one the server sees as its peer.
fn client_name_is_concrete<S: Stack>(host: &str) -> Trace {
    let mut t = Trace::new(S::NAME);
    let l = S::bind_listener(&format!("{host}:0")).unwrap();
    let laddr = l.local_addr().unwrap();
    let c = S::connect(laddr).unwrap();
    let (_s, peer) = l.accept().unwrap();
    let local = c.local_addr().unwrap();
    t.see("the client's address", local.ip());
    t.see("is the server's peer", local == peer);
    t
}
fn concrete_v4<S: Stack>() -> Trace {
    client_name_is_concrete::<S>("127.0.0.1")
}
fn concrete_v6<S: Stack>() -> Trace {
    client_name_is_concrete::<S>("[::1]")
}
on_both!(
    connected_client_local_addr_is_the_concrete_address_v4,
    concrete_v4
);
on_both!(
    connected_client_local_addr_is_the_concrete_address_v6,
    concrete_v6
);

fn half_close<S: Stack>() -> Trace {
    let mut t = Trace::new(S::NAME);
    let (c, s, _l) = pair::<S>("127.0.0.1");
    c.write_all(b"request").unwrap();
    t.res("shutdown(Write)", &c.shutdown(Shutdown::Write));
    let mut got = Vec::new();
    t.res("the peer reads to the end", &s.read_to_end(&mut got));
    t.see("what it read", String::from_utf8(got).unwrap());
    // EOF stays EOF.
    t.res("and again", &s.read(&mut [0u8; 8]));
    // The other direction is still open.
    t.res("the peer writes", &s.write(b"reply"));
    drop(s);
    let mut got = Vec::new();
    t.res("reading to the end", &c.read_to_end(&mut got));
    t.see("what it read", String::from_utf8(got).unwrap());
    // Writing after shutdown(SHUT_WR).
    t.res("a write", &c.write(b"x"));
    t
}
on_both!(
    shutdown_write_gives_peer_eof_and_half_close_still_carries_data,
    half_close
);

fn refused<S: Stack>() -> Trace {
    let mut t = Trace::new(S::NAME);
    // A stream socket bound to a port but not listening: nobody listens.
    let (_b, addr) = S::bound_stream(addr("127.0.0.1:0")).unwrap();
    t.see("bound to a port", addr.port() != 0);
    t.ok("connect to it", &S::connect(addr));
    // A port that was listened on and closed again refuses too.
    let l = S::bind_listener("127.0.0.1:0").unwrap();
    let gone = l.local_addr().unwrap();
    drop(l);
    t.ok("connect to a closed listener's port", &S::connect(gone));
    // The same over IPv6.
    let l = S::bind_listener("[::1]:0").unwrap();
    let gone = l.local_addr().unwrap();
    drop(l);
    t.ok("the same over IPv6", &S::connect(gone));
    t
}
on_both!(connect_to_a_port_nobody_listens_on_is_refused, refused);

fn second_listener<S: Stack>() -> Trace {
    let mut t = Trace::new(S::NAME);
    let l = S::bind_listener("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    t.ok("a second listener on the address", &S::listen(a, 128));
    // The wildcard address overlaps the bound loopback address.
    let w = SocketAddr::from(([0, 0, 0, 0], a.port()));
    t.ok("one on the wildcard address", &S::listen(w, 128));
    // Once the first listener is gone the port is free again.
    drop(l);
    let l2 = S::listen(a, 128);
    t.ok("after the first is closed", &l2);
    t.see(
        "at the same address",
        l2.unwrap().local_addr().unwrap() == a,
    );
    t
}
on_both!(second_listener_on_a_port_is_addr_in_use, second_listener);

/// Linux's ephemeral port range (net.ipv4.ip_local_port_range).
fn ephemeral_range() -> std::ops::RangeInclusive<u16> {
    let s = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
    let mut it = s.split_whitespace().map(|w| w.parse::<u16>().unwrap());
    it.next().unwrap()..=it.next().unwrap()
}

fn port_zero<S: Stack>() -> Trace {
    let mut t = Trace::new(S::NAME);
    let a = S::bind_listener("127.0.0.1:0").unwrap();
    let b = S::bind_listener("127.0.0.1:0").unwrap();
    let c = S::bind_listener("[::1]:0").unwrap();
    let ports = [&a, &b, &c].map(|l| l.local_addr().unwrap().port());
    t.see("two IPv4 ports differ", ports[0] != ports[1]);
    for (i, p) in ports.iter().enumerate() {
        t.see(
            format!("port {i} in the ephemeral range"),
            ephemeral_range().contains(p),
        );
    }
    // Each reaches its own listener.
    let _c = S::connect(b.local_addr().unwrap()).unwrap();
    b.set_nonblocking(true).unwrap();
    a.set_nonblocking(true).unwrap();
    t.ok("accept on the one connected to", &b.accept());
    t.ok("accept on the other", &a.accept());
    t
}
on_both!(port_zero_picks_distinct_free_ports, port_zero);

fn read_timeout<S: Stack>() -> Trace {
    let mut t = Trace::new(S::NAME);
    let (c, _s, _l) = pair::<S>("127.0.0.1");
    t.res("SO_RCVTIMEO at first", &c.read_timeout());
    // A whole number of jiffies at any CONFIG_HZ (100, 250, 300, 1000):
    // Linux keeps the timeout in jiffies (see
    // `a_timeout_reads_back_in_whole_jiffies`).
    let d = Duration::from_millis(200);
    c.set_read_timeout(Some(d)).unwrap();
    t.res("SO_RCVTIMEO", &c.read_timeout());
    let start = Instant::now();
    t.ok("a read with nothing to read", &c.read(&mut [0u8; 16]));
    let took = start.elapsed();
    t.see("after the timeout", took >= Duration::from_millis(190));
    assert!(took < Duration::from_secs(3), "returned after {took:?}");
    c.set_read_timeout(None).unwrap();
    t.res("SO_RCVTIMEO cleared", &c.read_timeout());
    t
}
on_both!(
    read_timeout_gives_would_block_after_the_timeout,
    read_timeout
);

fn odd_timeout<S: Stack>() -> Trace {
    let mut t = Trace::new(S::NAME);
    let (c, _s, _l) = pair::<S>("127.0.0.1");
    // 150.5 ms is no whole number of jiffies at any CONFIG_HZ.
    c.set_read_timeout(Some(Duration::from_micros(150_500)))
        .unwrap();
    t.res("SO_RCVTIMEO of 150.5 ms reads back as", &c.read_timeout());
    t
}

#[test]
fn a_timeout_reads_back_in_whole_jiffies() {
    // Linux stores SO_RCVTIMEO/SO_SNDTIMEO in jiffies, rounded up, and
    // reads them back so (152 ms at CONFIG_HZ=250); the library keeps the
    // microseconds it was given. Found by the comparison, not fixed: the
    // step is the kernel's build-time CONFIG_HZ, which a process cannot
    // read (sysconf's clock tick is USER_HZ), and no program relies on the
    // rounding; the timeout itself is honoured on both.
    common::dual::known_divergence(
        "a_timeout_reads_back_in_whole_jiffies",
        "SO_RCVTIMEO reads back rounded up to jiffies on Linux, exact in the library",
        odd_timeout::<Kernel>,
        odd_timeout::<Usock>,
    );
}

/// The Rust API's own rule, with no Linux counterpart (std's): a zero
/// timeout is refused rather than taken as "none".
#[test]
fn rust_api_a_zero_timeout_is_invalid_input() {
    let (c, _s, _l) = pair::<Usock>("127.0.0.1");
    let e = c.set_read_timeout(Some(Duration::ZERO)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    let e = c.set_write_timeout(Some(Duration::ZERO)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
}

fn write_timeout<S: Stack>() -> Trace {
    let mut t = Trace::new(S::NAME);
    let (c, s, _l) = pair::<S>("127.0.0.1");
    let d = Duration::from_millis(100);
    c.set_write_timeout(Some(d)).unwrap();
    t.res("SO_SNDTIMEO", &c.write_timeout());
    // Nobody reads: the buffers fill. A blocked write that sent some bytes
    // returns their count after the timeout; one that sent none fails
    // with EAGAIN after the timeout (Linux's sk_stream_wait_memory).
    let big = vec![7u8; 8 << 20];
    let mut n = 0;
    let mut tries = 0;
    let (e, waited) = loop {
        tries += 1;
        assert!(tries < 100, "writes never time out");
        let start = Instant::now();
        match c.write(&big) {
            Ok(k) => {
                assert!(k > 0, "wrote 0");
                n += k;
            }
            Err(e) => break (e, start.elapsed() >= Duration::from_millis(90)),
        }
    };
    t.res("the write that sends nothing", &Err::<(), _>(e));
    t.see("came after the timeout", waited);
    // Everything counted as written arrives.
    drop(c);
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    t.see("all bytes counted as written arrived", got.len() == n);
    t
}
on_both!(
    write_timeout_returns_partial_count_then_would_block,
    write_timeout
);

fn blocked_reader_woken_by<S: Stack>(how: Shutdown) -> Trace {
    let mut t = Trace::new(S::NAME);
    let (c, _s, _l) = pair::<S>("127.0.0.1");
    thread::scope(|sc| {
        let (tx, rx) = std::sync::mpsc::channel();
        let c = &c;
        let r = sc.spawn(move || {
            tx.send(gettid()).unwrap();
            c.read(&mut [0u8; 64])
        });
        // The reader is asleep in its read before the shutdown.
        wait_until_blocked(rx.recv().unwrap());
        t.res("shutdown from another thread", &c.shutdown(how));
        t.res("the blocked read", &r.join().unwrap());
    });
    t.res("reads after it", &c.read(&mut [0u8; 4]));
    // After SHUT_RD writing still works; after SHUT_RDWR it is EPIPE.
    t.res("a write", &c.write(b"q"));
    t
}
fn woken_by_shut_rd<S: Stack>() -> Trace {
    blocked_reader_woken_by::<S>(Shutdown::Read)
}
fn woken_by_shut_rdwr<S: Stack>() -> Trace {
    blocked_reader_woken_by::<S>(Shutdown::Both)
}
on_both!(
    shutdown_read_from_another_thread_wakes_a_blocked_reader,
    woken_by_shut_rd
);
on_both!(
    shutdown_both_from_another_thread_wakes_a_blocked_reader,
    woken_by_shut_rdwr
);

fn blocked_accept<S: Stack>() -> Trace {
    let mut t = Trace::new(S::NAME);
    let l = S::bind_listener("127.0.0.1:0").unwrap();
    thread::scope(|sc| {
        let (tx, rx) = std::sync::mpsc::channel();
        let l = &l;
        let a = sc.spawn(move || {
            tx.send(gettid()).unwrap();
            l.accept().map(|_| ())
        });
        wait_until_blocked(rx.recv().unwrap());
        // shutdown(SHUT_RD) on a listener disconnects it: accept() ends.
        t.res(
            "shutdown(SHUT_RDWR) of the listener",
            &l.shutdown(Shutdown::Both),
        );
        t.res("the blocked accept", &a.join().unwrap());
    });
    t
}
on_both!(
    shutdown_from_another_thread_wakes_a_blocked_accept,
    blocked_accept
);

fn nonblocking_read<S: Stack>() -> Trace {
    let mut t = Trace::new(S::NAME);
    let (c, s, _l) = pair::<S>("127.0.0.1");
    c.set_nonblocking(true).unwrap();
    t.res("a non-blocking read of nothing", &c.read(&mut [0u8; 16]));
    s.write_all(b"now").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 16];
    // Retried until the data is there (it need not be at once), bounded.
    let n = loop {
        match c.read(&mut buf) {
            Ok(n) => break n,
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(1))
            }
            Err(e) => panic!("{e}"),
        }
    };
    t.see("then the data", String::from_utf8_lossy(&buf[..n]));
    t.res("then nothing", &c.read(&mut buf));
    // Back to blocking: the read waits for the EOF.
    c.set_nonblocking(false).unwrap();
    drop(s);
    t.res("a blocking read, after the peer closed", &c.read(&mut buf));
    t
}
on_both!(
    nonblocking_read_gives_would_block_then_data,
    nonblocking_read
);

fn nonblocking_accept<S: Stack>() -> Trace {
    let mut t = Trace::new(S::NAME);
    let l = S::bind_listener("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    t.ok("accept with nobody connecting", &l.accept());
    let c = S::connect(l.local_addr().unwrap()).unwrap();
    // The connection may be queued a moment after connect() returns.
    let deadline = Instant::now() + Duration::from_secs(5);
    let (s, peer) = loop {
        match l.accept() {
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(1))
            }
            r => break r.unwrap(),
        }
    };
    t.see(
        "the peer is the client",
        peer.port() == c.local_addr().unwrap().port(),
    );
    // The accepted socket does not inherit O_NONBLOCK (accept(), not
    // accept4 with SOCK_NONBLOCK).
    t.see("the accepted socket is non-blocking", s.is_nonblocking());
    t
}
on_both!(nonblocking_accept_gives_would_block, nonblocking_accept);

fn peek<S: Stack>() -> Trace {
    let mut t = Trace::new(S::NAME);
    let (c, s, _l) = pair::<S>("127.0.0.1");
    s.write_all(b"peekaboo").unwrap();
    let mut buf = [0u8; 4];
    t.res("peek 4", &c.peek(&mut buf));
    t.see("peeked", buf);
    let mut all = [0u8; 8];
    c.read_exact(&mut all).unwrap();
    t.see("then read", all);
    t
}
on_both!(peek_leaves_the_data_queued, peek);

fn vectored<S: Stack>() -> Trace {
    let mut t = Trace::new(S::NAME);
    let (c, s, _l) = pair::<S>("[::1]");
    let n = c.write_vectored(&[
        IoSlice::new(b"abc"),
        IoSlice::new(b""),
        IoSlice::new(b"defg"),
    ]);
    t.res("writev of 3 + 0 + 4 bytes", &n);
    let (mut a, mut b) = ([0u8; 2], [0u8; 10]);
    let mut got = 0;
    while got < 7 {
        let mut bufs = [
            IoSliceMut::new(&mut a[got.min(2)..]),
            IoSliceMut::new(&mut b[got.saturating_sub(2)..]),
        ];
        got += s.read_vectored(&mut bufs).unwrap();
    }
    t.see("readv into 2 + 10 bytes", (a, &b[..5]));
    t
}
on_both!(vectored_read_and_write, vectored);

fn last_handle<S: Stack>() -> Trace {
    let mut t = Trace::new(S::NAME);
    let (c, s, _l) = pair::<S>("127.0.0.1");
    let c2 = c.try_clone().unwrap();
    c.write_all(b"bye").unwrap();
    drop(c);
    // One handle is still open: no EOF yet.
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut buf = [0u8; 8];
    t.res("read", &s.read(&mut buf));
    t.ok("read again, one handle still open", &s.read(&mut buf));
    c2.write_all(b"!").unwrap();
    drop(c2);
    t.res("read after the last handle wrote", &s.read(&mut buf));
    t.see("what", buf[0]);
    t.res("then", &s.read(&mut buf));
    t
}
on_both!(dropping_the_last_handle_gives_the_peer_eof, last_handle);

fn closed_peer<S: Stack>() -> Trace {
    let mut t = Trace::new(S::NAME);
    let (c, s, _l) = pair::<S>("127.0.0.1");
    drop(s);
    t.res("read", &c.read(&mut [0u8; 4]));
    // The first write goes out (and draws a reset), later ones fail with
    // EPIPE since the peer had sent its FIN.
    t.res("the first write", &c.write(b"z"));
    let deadline = Instant::now() + Duration::from_secs(5);
    // The reset comes back asynchronously: written until refused, bounded.
    let e = loop {
        match c.write(b"z") {
            Ok(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
            Ok(_) => panic!("writes to a closed peer keep succeeding"),
            Err(e) => break e,
        }
    };
    t.res("a later write", &Err::<(), _>(e));
    t.res("then a read", &c.read(&mut [0u8; 4]));
    t
}
on_both!(
    writing_to_a_closed_peer_succeeds_once_then_is_broken_pipe,
    closed_peer
);

/// B sends data to A, A sends data to B, B closes without reading it: the
/// connection is reset. A reads B's data first, then ECONNRESET once.
fn reset_with_unread_data<S: Stack>(t: &mut Trace) -> S::Stream {
    let (a, b, _l) = pair::<S>("127.0.0.1");
    b.write_all(b"hello").unwrap();
    a.write_all(b"x").unwrap();
    drop(b);
    let mut buf = [0u8; 16];
    t.res("read", &a.read(&mut buf));
    t.see("data", String::from_utf8_lossy(&buf[..5]));
    t.res("read again", &a.read(&mut buf));
    a
}

fn reset_then_write<S: Stack>() -> Trace {
    let mut t = Trace::new(S::NAME);
    let a = reset_with_unread_data::<S>(&mut t);
    t.res("write after the reset was reported", &a.write(b"z"));
    t.res("again", &a.write(b"z"));
    t
}
on_both!(
    closing_with_unread_data_resets_the_peer_after_its_data,
    reset_then_write
);

fn reset_then_read<S: Stack>() -> Trace {
    let mut t = Trace::new(S::NAME);
    let a = reset_with_unread_data::<S>(&mut t);
    // tcp_reset -> tcp_done sets RCV_SHUTDOWN: reads return 0.
    t.res("read after the reset was reported", &a.read(&mut [0u8; 4]));
    t
}
on_both!(read_after_reported_reset_is_eof, reset_then_read);

fn reset_write_first<S: Stack>() -> Trace {
    let mut t = Trace::new(S::NAME);
    let (a, b, _l) = pair::<S>("127.0.0.1");
    a.write_all(b"x").unwrap();
    drop(b); // unread "x": reset
    t.res("write", &a.write(b"z"));
    t.res("write again", &a.write(b"z"));
    t
}
on_both!(
    write_to_a_reset_connection_reports_econnreset_first,
    reset_write_first
);

fn linger_zero<S: Stack>() -> Trace {
    let mut t = Trace::new(S::NAME);
    let (a, b, _l) = pair::<S>("127.0.0.1");
    b.set_linger(Some(Duration::ZERO)).unwrap();
    t.res("SO_LINGER", &b.linger());
    drop(b);
    t.res("the peer's read", &a.read(&mut [0u8; 4]));
    t
}
on_both!(linger_zero_resets_on_close, linger_zero);

fn options<S: Stack>() -> Trace {
    let mut t = Trace::new(S::NAME);
    let (c, _s, _l) = pair::<S>("127.0.0.1");
    t.res("TCP_NODELAY", &c.nodelay());
    t.res("set TCP_NODELAY", &c.set_nodelay(true));
    t.res("TCP_NODELAY", &c.nodelay());
    t.res("SO_LINGER", &c.linger());
    t.see("SO_ERROR", c.take_error().unwrap().is_none());
    c.set_write_timeout(Some(Duration::from_micros(2_500_000)))
        .unwrap();
    t.res("SO_SNDTIMEO", &c.write_timeout());
    t
}
on_both!(options_round_trip, options);

fn listener_calls<S: Stack>() -> Trace {
    let mut t = Trace::new(S::NAME);
    let l = S::bind_listener("127.0.0.1:0").unwrap();
    t.res("getpeername of a listener", &l.peer_addr());
    // connect() on a listener, to an address of another family.
    t.res("connect to an IPv6 address", &l.connect(addr("[::1]:1")));
    t
}
on_both!(peer_addr_of_a_listener_is_not_connected, listener_calls);

fn accept_timeout<S: Stack>() -> Trace {
    let mut t = Trace::new(S::NAME);
    let l = S::bind_listener("127.0.0.1:0").unwrap();
    l.set_read_timeout(Duration::from_millis(100)).unwrap();
    let start = Instant::now();
    t.ok("accept", &l.accept());
    t.see(
        "after SO_RCVTIMEO",
        start.elapsed() >= Duration::from_millis(90),
    );
    t
}
on_both!(accept_honours_the_read_timeout, accept_timeout);

fn listener_closed<S: Stack>() -> Trace {
    let mut t = Trace::new(S::NAME);
    let l = S::bind_listener("127.0.0.1:0").unwrap();
    let c = S::connect(l.local_addr().unwrap()).unwrap();
    drop(l);
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    t.res("the client's read", &c.read(&mut [0u8; 4]));
    t
}
on_both!(
    closing_a_listener_resets_connections_not_yet_accepted,
    listener_closed
);

fn dual_stack<S: Stack>() -> Trace {
    let mut t = Trace::new(S::NAME);
    let l = S::bind_listener("[::]:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let c = S::connect(SocketAddr::from(([127, 0, 0, 1], port))).unwrap();
    let (s, peer) = l.accept().unwrap();
    let SocketAddr::V6(p6) = peer else {
        panic!("{peer}")
    };
    t.see("the peer, v4-mapped", p6.ip().to_ipv4_mapped());
    t.see(
        "its port is the client's",
        p6.port() == c.local_addr().unwrap().port(),
    );
    c.write_all(b"46").unwrap();
    let mut b = [0u8; 2];
    s.read_exact(&mut b).unwrap();
    t.see("data", b);
    t
}
on_both!(
    ipv4_client_of_a_dual_stack_listener_is_seen_as_v4_mapped,
    dual_stack
);

/// The Rust API's own address resolution (std's `ToSocketAddrs`), no Linux
/// counterpart: a "host:port" string connects; no address at all is
/// InvalidInput.
#[test]
fn rust_api_connect_resolves_host_and_port_pairs() {
    let l = UsockListener::bind(("127.0.0.1", 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    let c = UsockStream::connect(format!("127.0.0.1:{port}")).unwrap();
    assert_eq!(c.peer_addr().unwrap().port(), port);
    let e = UsockStream::connect(&[][..] as &[SocketAddr]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
}

fn connect_twice<S: Stack>() -> Trace {
    let mut t = Trace::new(S::NAME);
    let (c, _s, l) = pair::<S>("127.0.0.1");
    t.res("connect again", &c.connect(l.local_addr().unwrap()));
    // The state is looked at before the address.
    t.res("connect to an IPv6 address", &c.connect(addr("[::1]:1")));
    t
}
on_both!(connecting_a_connected_stream_is_eisconn, connect_twice);

fn closed_before_accept<S: Stack>() -> Trace {
    let mut t = Trace::new(S::NAME);
    let l = S::bind_listener("127.0.0.1:0").unwrap();
    let c = S::connect(l.local_addr().unwrap()).unwrap();
    c.write_all(b"early").unwrap();
    drop(c);
    let (s, _) = l.accept().unwrap();
    let mut got = Vec::new();
    t.res("reading to the end", &s.read_to_end(&mut got));
    t.see("data", String::from_utf8(got).unwrap());
    t
}
on_both!(
    a_connection_closed_before_accept_is_accepted_then_reads_eof,
    closed_before_accept
);

fn beyond_backlog<S: Stack>() -> Trace {
    let mut t = Trace::new(S::NAME);
    // Linux does not refuse a connect to a full accept queue: the SYN is
    // dropped and retried, and connect() completes once there is room.
    let l = S::listen(addr("127.0.0.1:0"), 1).unwrap();
    let a = l.local_addr().unwrap();
    let n = 5;
    let mut all = true;
    thread::scope(|sc| {
        let clients: Vec<_> = (0..n)
            .map(|i| {
                sc.spawn(move || {
                    let c = S::connect(a).unwrap();
                    c.write_all(&[i as u8]).unwrap();
                    let mut b = [0u8; 1];
                    c.read_exact(&mut b).unwrap();
                    b[0] == i as u8 + 100
                })
            })
            .collect();
        for _ in 0..n {
            let (s, _) = l.accept().unwrap();
            let mut b = [0u8; 1];
            s.read_exact(&mut b).unwrap();
            s.write_all(&[b[0] + 100]).unwrap();
        }
        for c in clients {
            all &= c.join().unwrap();
        }
    });
    t.see("every client connected and got its answer", all);
    t
}
on_both!(
    connects_beyond_the_backlog_wait_until_accepted,
    beyond_backlog
);

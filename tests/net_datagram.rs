//! Datagram sockets through the native Rust API (`userspacesock::net`),
//! over the built-in loopback backend, against Linux's UDP over loopback:
//! each case runs on kernel sockets (a twin of the API over raw system
//! calls, `common::dual::Kernel`) and on the library's, and compares what
//! they observed. A case that checks what only the Rust API decides says
//! so and runs on the library alone.
#![cfg(feature = "std")]

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

mod common;
use common::dual::{compare, gettid, wait_until_blocked, Dgram, Kernel, Stack, Trace, Usock};

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

fn bound<S: Stack>(host: &str) -> (S::Dgram, SocketAddr) {
    let s = S::bind_dgram(format!("{host}:0").parse().unwrap()).unwrap();
    let a = s.local_addr().unwrap();
    assert_ne!(a.port(), 0);
    (s, a)
}

fn exchange_with_source<S: Stack>(host: &str) -> Trace {
    let mut t = Trace::new(S::NAME);
    let (a, aa) = bound::<S>(host);
    let (b, ba) = bound::<S>(host);
    t.res("send_to", &a.send_to(b"ping", ba));
    let mut buf = [0u8; 64];
    let (n, from) = b.recv_from(&mut buf).unwrap();
    t.see("received", &buf[..n]);
    t.see("from the sender's address", from == aa);
    t.res("reply", &b.send_to(b"pong!", from));
    let (n, from) = a.recv_from(&mut buf).unwrap();
    t.see("received", &buf[..n]);
    t.see("from the replier's address", from == ba);
    t
}

fn exchange_v4<S: Stack>() -> Trace {
    exchange_with_source::<S>("127.0.0.1")
}
fn exchange_v6<S: Stack>() -> Trace {
    exchange_with_source::<S>("[::1]")
}
on_both!(send_to_and_recv_from_report_the_source_ipv4, exchange_v4);
on_both!(send_to_and_recv_from_report_the_source_ipv6, exchange_v6);

fn truncation<S: Stack>() -> Trace {
    let mut t = Trace::new(S::NAME);
    let (a, aa) = bound::<S>("127.0.0.1");
    let (b, ba) = bound::<S>("127.0.0.1");
    a.send_to(b"0123456789", ba).unwrap();
    a.send_to(b"ab", ba).unwrap();
    let mut four = [0u8; 4];
    let (n, from) = b.recv_from(&mut four).unwrap();
    t.see("a 10-byte datagram into 4 bytes", (n, from == aa, four));
    // The rest of the first datagram is gone: the next read is the second.
    let (n, _) = b.recv_from(&mut four).unwrap();
    t.see("the next read", &four[..n]);
    // MSG_TRUNC reports the full length and flags the truncation.
    a.send_to(b"0123456789", ba).unwrap();
    t.res("recv(MSG_TRUNC) into 4 bytes", &b.recv_trunc(&mut four));
    t
}
on_both!(
    a_long_datagram_is_truncated_and_its_rest_discarded,
    truncation
);

fn boundaries<S: Stack>() -> Trace {
    let mut t = Trace::new(S::NAME);
    let (a, aa) = bound::<S>("127.0.0.1");
    let (b, ba) = bound::<S>("127.0.0.1");
    let sizes = [1usize, 100, 0, 1472, 9000, 3, 65_507];
    for (i, &len) in sizes.iter().enumerate() {
        let d: Vec<u8> = (0..len).map(|j| (i * 31 + j) as u8).collect();
        t.res(format!("send {len}"), &a.send_to(&d, ba));
    }
    let mut buf = vec![0u8; 70_000];
    for (i, &len) in sizes.iter().enumerate() {
        let (n, from) = b.recv_from(&mut buf).unwrap();
        let intact = buf[..n]
            .iter()
            .enumerate()
            .all(|(j, &x)| x == (i * 31 + j) as u8);
        t.see(format!("datagram {i}"), (n == len, from == aa, intact));
    }
    b.set_nonblocking(true).unwrap();
    t.ok("then nothing", &b.recv_from(&mut buf));
    t
}
on_both!(datagram_boundaries_and_order_are_kept, boundaries);

fn over_the_limit<S: Stack>() -> Trace {
    let mut t = Trace::new(S::NAME);
    let (a, _) = bound::<S>("127.0.0.1");
    let (_b, ba) = bound::<S>("127.0.0.1");
    t.res("65507 bytes", &a.send_to(&vec![0u8; 65_507], ba));
    t.res("65508 bytes", &a.send_to(&vec![0u8; 65_508], ba));
    t
}
on_both!(a_datagram_over_the_udp_limit_is_emsgsize, over_the_limit);

fn empty<S: Stack>() -> Trace {
    let mut t = Trace::new(S::NAME);
    let (a, aa) = bound::<S>("127.0.0.1");
    let (b, ba) = bound::<S>("127.0.0.1");
    t.res("send an empty datagram", &a.send_to(b"", ba));
    b.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let r = b.recv_from(&mut [0u8; 8]).map(|(n, from)| (n, from == aa));
    t.res("received (length, from the sender)", &r);
    t
}
on_both!(an_empty_datagram_is_delivered, empty);

fn peek_from<S: Stack>() -> Trace {
    let mut t = Trace::new(S::NAME);
    let (a, aa) = bound::<S>("[::1]");
    let (b, ba) = bound::<S>("[::1]");
    a.send_to(b"first", ba).unwrap();
    a.send_to(b"second", ba).unwrap();
    let mut buf = [0u8; 16];
    t.res(
        "peek_from",
        &b.peek_from(&mut buf).map(|(n, f)| (n, f == aa)),
    );
    t.res("peek", &b.peek(&mut buf));
    t.res(
        "recv_from",
        &b.recv_from(&mut buf).map(|(n, f)| (n, f == aa)),
    );
    t.see("data", &buf[..5]);
    t.res("recv", &b.recv(&mut buf));
    t.see("data", &buf[..6]);
    t
}
on_both!(peek_from_leaves_the_datagram_queued, peek_from);

/// A datagram socket bound to a port given explicitly (one just free): a
/// disconnect keeps such a port on Linux, and drops one it chose (see
/// `disconnect_releases_an_ephemeral_port`).
fn bound_to_a_fixed_port<S: Stack>() -> (S::Dgram, SocketAddr) {
    let port = bound::<S>("127.0.0.1").1.port();
    let a = SocketAddr::from(([127, 0, 0, 1], port));
    (S::bind_dgram(a).unwrap(), a)
}

fn connect_filters<S: Stack>() -> Trace {
    let mut t = Trace::new(S::NAME);
    let (r, ra) = bound_to_a_fixed_port::<S>();
    let (s1, s1a) = bound::<S>("127.0.0.1");
    let (s2, _) = bound::<S>("127.0.0.1");
    t.res("peer_addr before connect", &r.peer_addr());
    t.res("connect", &r.connect(s1a));
    t.see("peer_addr", r.peer_addr().unwrap() == s1a);
    // A stranger's datagram is dropped; the peer's is received.
    s2.send_to(b"stranger", ra).unwrap();
    s1.send_to(b"friend", ra).unwrap();
    let mut buf = [0u8; 32];
    let (n, from) = r.recv_from(&mut buf).unwrap();
    t.see("received", (&buf[..n], from == s1a));
    r.set_nonblocking(true).unwrap();
    t.res("then", &r.recv(&mut buf));
    // send() goes to the peer.
    t.res("send", &r.send(b"hi s1"));
    let (n, from) = s1.recv_from(&mut buf).unwrap();
    t.see("the peer got", (&buf[..n], from == ra));
    // Dissolving the association (AF_UNSPEC) lets anyone in again.
    t.res("connect(AF_UNSPEC)", &r.disconnect());
    t.res("peer_addr", &r.peer_addr());
    t.res("send", &r.send(b"x"));
    t.see("keeps its port", r.local_addr().unwrap() == ra);
    s2.send_to(b"again", ra).unwrap();
    r.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    r.set_nonblocking(false).unwrap();
    let got = r.recv_from(&mut buf).map(|(n, _)| buf[..n].to_vec());
    t.res("received", &got);
    t
}
on_both!(
    connect_sets_the_default_peer_and_filters_senders,
    connect_filters
);

fn disconnect_ephemeral<S: Stack>() -> Trace {
    let mut t = Trace::new(S::NAME);
    // Bound to port 0: the port is the system's choice, and Linux's
    // udp_disconnect gives it back (no SOCK_BINDPORT_LOCK): the socket
    // reads as 127.0.0.1:0 and datagrams to the old port reach nobody.
    let (r, _) = bound::<S>("127.0.0.1");
    let (_p, pa) = bound::<S>("127.0.0.1");
    r.connect(pa).unwrap();
    t.res("connect(AF_UNSPEC)", &r.disconnect());
    t.res("local address", &r.local_addr());
    // Bound by connect() itself: the address goes too (0.0.0.0:0).
    let a = S::unbound_dgram(libc::AF_INET).unwrap();
    a.connect(pa).unwrap();
    t.see("bound by connect", a.local_addr().unwrap().port() != 0);
    t.res("connect(AF_UNSPEC)", &a.disconnect());
    t.res("local address", &a.local_addr());
    t
}

#[test]
fn disconnect_releases_an_ephemeral_port() {
    // The library keeps the port (its backends hold the binding until
    // close); found by comparing with the kernel, not fixed yet.
    common::dual::known_divergence(
        "disconnect_releases_an_ephemeral_port",
        "connect(AF_UNSPEC) keeps a port the system chose; Linux releases it",
        disconnect_ephemeral::<Kernel>,
        disconnect_ephemeral::<Usock>,
    );
}

fn no_destination<S: Stack>() -> Trace {
    let mut t = Trace::new(S::NAME);
    let (a, _) = bound::<S>("127.0.0.1");
    t.res("send on an unconnected socket", &a.send(b"x"));
    t
}
on_both!(send_without_a_destination_is_edestaddrreq, no_destination);

fn unbound_sender<S: Stack>() -> Trace {
    let mut t = Trace::new(S::NAME);
    let (b, ba) = bound::<S>("127.0.0.1");
    let a = S::unbound_dgram(libc::AF_INET).unwrap();
    t.res("send_to from an unbound socket", &a.send_to(b"who", ba));
    let mut buf = [0u8; 8];
    let (_, from) = b.recv_from(&mut buf).unwrap();
    t.see("the source has a port", from.port() != 0);
    t.see("the source address", from.ip());
    t.see(
        "the sender is bound to that port",
        a.local_addr().unwrap().port() == from.port(),
    );
    t
}
on_both!(
    an_unbound_sender_is_bound_to_an_ephemeral_port,
    unbound_sender
);

fn refused<S: Stack>() -> Trace {
    let mut t = Trace::new(S::NAME);
    let (gone, ga) = bound::<S>("127.0.0.1");
    drop(gone);
    let (a, _) = bound::<S>("127.0.0.1");
    a.connect(ga).unwrap();
    // Linux: the send succeeds; the ICMP port-unreachable makes a later
    // receive (or send) fail with ECONNREFUSED, once.
    t.res("send", &a.send(b"anyone?"));
    a.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    t.res("receive", &a.recv(&mut [0u8; 8]));
    a.set_nonblocking(true).unwrap();
    t.res("receive again", &a.recv(&mut [0u8; 8]));
    t
}
on_both!(
    connected_to_a_port_nobody_uses_reports_econnrefused,
    refused
);

fn second_bind<S: Stack>() -> Trace {
    let mut t = Trace::new(S::NAME);
    let (_a, aa) = bound::<S>("127.0.0.1");
    t.ok("a second bind", &S::bind_dgram(aa));
    // A stream socket may use the same port number.
    t.ok(
        "a TCP listener on the port",
        &S::bind_listener(&aa.to_string()),
    );
    t
}
on_both!(second_bind_on_a_port_is_addr_in_use, second_bind);

fn read_timeout<S: Stack>() -> Trace {
    let mut t = Trace::new(S::NAME);
    let (a, _) = bound::<S>("127.0.0.1");
    a.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let start = Instant::now();
    t.ok("recv_from", &a.recv_from(&mut [0u8; 8]));
    let took = start.elapsed();
    t.see("after the timeout", took >= Duration::from_millis(90));
    assert!(took < Duration::from_secs(3), "{took:?}");
    t
}
on_both!(read_timeout_gives_would_block, read_timeout);

fn woken<S: Stack>() -> Trace {
    let mut t = Trace::new(S::NAME);
    let (a, aa) = bound::<S>("127.0.0.1");
    let (b, _) = bound::<S>("127.0.0.1");
    thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::channel();
        let a = &a;
        let r = s.spawn(move || {
            tx.send(gettid()).unwrap();
            let mut buf = [0u8; 8];
            let (n, _) = a.recv_from(&mut buf).unwrap();
            buf[..n].to_vec()
        });
        // The receiver is asleep in its receive before the datagram goes.
        wait_until_blocked(rx.recv().unwrap());
        b.send_to(b"wake", aa).unwrap();
        t.see("the blocked receiver got", r.join().unwrap());
    });
    t
}
on_both!(
    a_blocked_receiver_is_woken_by_a_datagram_from_another_thread,
    woken
);

fn many_senders<S: Stack>() -> Trace {
    let mut t = Trace::new(S::NAME);
    let (r, ra) = bound::<S>("127.0.0.1");
    const THREADS: usize = 4;
    const PER: usize = 200;
    // Rounds of BATCH datagrams per sender, the next round only once the
    // receiver has read the last one: at most THREADS * BATCH are queued,
    // well within the receive buffer on both sides, so none is dropped (a
    // full UDP receiver drops, as Linux does) whatever the scheduling.
    const BATCH: usize = 25;
    let round = Barrier::new(THREADS + 1);
    let mut order_kept = true;
    thread::scope(|s| {
        for th in 0..THREADS {
            let round = &round;
            s.spawn(move || {
                let (a, _) = bound::<S>("127.0.0.1");
                for i in 0..PER {
                    let msg = [th as u8, (i >> 8) as u8, i as u8];
                    a.send_to(&msg, ra).unwrap();
                    if i % BATCH == BATCH - 1 {
                        round.wait();
                    }
                }
            });
        }
        let mut next = [0u32; THREADS];
        let mut buf = [0u8; 8];
        r.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        for k in 0..THREADS * PER {
            let n = r.recv(&mut buf).unwrap();
            assert_eq!(n, 3);
            let th = buf[0] as usize;
            let i = u32::from(buf[1]) << 8 | u32::from(buf[2]);
            // Per sender, order is kept.
            order_kept &= i == next[th];
            next[th] += 1;
            if k % (THREADS * BATCH) == THREADS * BATCH - 1 {
                round.wait();
            }
        }
    });
    t.see("every datagram came, each sender's in order", order_kept);
    t
}
on_both!(many_threads_send_to_one_receiver, many_senders);

/// The Rust API's own rule, with no Linux counterpart (std's): a zero
/// timeout is refused, not taken as "none".
#[test]
fn rust_api_a_zero_read_timeout_is_invalid_input() {
    let (a, _) = bound::<Usock>("127.0.0.1");
    let e = a.set_read_timeout(Some(Duration::ZERO)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
}

//! Buffers that cannot grow: a full receiver makes a UDP sender's datagrams
//! vanish (as Linux's UDP does), makes an AF_UNIX datagram sender and a
//! stream sender block, time out with SO_SNDTIMEO, or get EAGAIN when
//! non-blocking; nothing panics, nothing is corrupted.

use std::io::{ErrorKind, Read, Write};
use std::thread;
use std::time::{Duration, Instant};

use userspacesock::consts::*;
use userspacesock::net::{UsockDatagram, UsockListener, UsockStream};

#[test]
fn a_full_udp_receiver_drops_datagrams_silently() {
    let rx = UsockDatagram::bind("127.0.0.1:0").unwrap();
    let tx = UsockDatagram::bind("127.0.0.1:0").unwrap();
    let to = rx.local_addr().unwrap();
    let big = vec![0x42u8; 65_507];
    // The receive buffer (212992 bytes) holds three of these; the rest are
    // dropped, and every send still reports success, as on Linux.
    for i in 0..10 {
        let r = tx.send_to(&big, to);
        assert_eq!(r.as_ref().ok(), Some(&big.len()), "send {i}: {r:?}");
    }
    for i in 0..200 {
        assert_eq!(tx.send_to(&[i as u8; 1000], to).unwrap(), 1000);
    }
    rx.set_nonblocking(true).unwrap();
    let mut buf = vec![0u8; 70_000];
    let (mut n, mut bytes) = (0, 0);
    while let Ok((len, _)) = rx.recv_from(&mut buf) {
        bytes += len;
        assert!(len == big.len() || len == 1000);
        if len == big.len() {
            assert!(buf[..len].iter().all(|&b| b == 0x42));
        }
        n += 1;
    }
    assert!((3..210).contains(&n), "{n} datagrams kept");
    assert!(
        bytes <= userspacesock::socket::DEFAULT_DGRAM_RCVBUF,
        "{bytes} bytes kept"
    );
}

#[test]
fn a_full_unix_datagram_receiver_blocks_times_out_or_gives_eagain() {
    let dir = std::env::temp_dir().join(format!("usock-limits-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("rx");
    let _ = std::fs::remove_file(&path);
    let rx = userspacesock::net::UsockDatagram::unbound(AF_UNIX).unwrap();
    let sa = unix_addr(path.to_str().unwrap());
    rx.socket().bind(&sa).unwrap();
    let tx = userspacesock::net::UsockDatagram::unbound(AF_UNIX).unwrap();
    tx.set_nonblocking(true).unwrap();
    let big = vec![7u8; 60_000];
    let mut sent = 0;
    let err = loop {
        match tx.send_to_sockaddr(&big, &sa) {
            Ok(_) => sent += 1,
            Err(e) => break e,
        }
        assert!(sent < 1000, "never full");
    };
    assert_eq!(err.kind(), ErrorKind::WouldBlock);
    assert!(sent >= 1);
    // Blocking with SO_SNDTIMEO: waits about that long, then EAGAIN.
    tx.set_nonblocking(false).unwrap();
    tx.set_write_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let t0 = Instant::now();
    let e = tx.send_to_sockaddr(&big, &sa).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock);
    assert!(t0.elapsed() >= Duration::from_millis(90));
    // Reading makes room: the next send goes through.
    let mut buf = vec![0u8; 65_536];
    assert_eq!(rx.recv(&mut buf).unwrap(), big.len());
    tx.send_to_sockaddr(&big, &sa).unwrap();
    drop(rx);
    let _ = std::fs::remove_dir_all(&dir);
}

fn unix_addr(path: &str) -> userspacesock::net::SockAddr {
    let mut b = (AF_UNIX as u16).to_ne_bytes().to_vec();
    b.extend_from_slice(path.as_bytes());
    b.push(0);
    userspacesock::net::SockAddr::from_bytes(&b).unwrap()
}

#[test]
fn a_stream_whose_reader_stops_blocks_then_times_out_then_eagain() {
    let l = UsockListener::bind("127.0.0.1:0").unwrap();
    let c = UsockStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    c.set_write_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let chunk = vec![1u8; 1 << 16];
    let mut total = 0usize;
    let t0 = Instant::now();
    let e = loop {
        match (&c).write(&chunk) {
            Ok(n) => total += n,
            Err(e) => break e,
        }
        assert!(total < 64 << 20, "the window never closed");
    };
    assert_eq!(e.kind(), ErrorKind::WouldBlock);
    assert!(t0.elapsed() >= Duration::from_millis(90));
    // Exactly the receive window went through.
    assert_eq!(total, userspacesock::socket::DEFAULT_STREAM_RCVBUF);
    c.set_nonblocking(true).unwrap();
    assert_eq!(
        (&c).write(&chunk).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    // A blocked writer in another thread is released by reading.
    c.set_nonblocking(false).unwrap();
    c.set_write_timeout(None).unwrap();
    let c2 = c.try_clone().unwrap();
    let w = thread::spawn(move || (&c2).write(&[9u8; 1000]).unwrap());
    thread::sleep(Duration::from_millis(50));
    let mut buf = vec![0u8; 1 << 20];
    let mut got = 0;
    while got < total {
        got += (&s).read(&mut buf).unwrap();
    }
    assert_eq!(w.join().unwrap(), 1000);
}

#[test]
fn huge_buffer_requests_are_capped_not_allocated() {
    let l = UsockListener::bind("127.0.0.1:0").unwrap();
    let c = UsockStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    for v in [i32::MAX, -1, 0, 1] {
        let r = s
            .socket()
            .setsockopt(SOL_SOCKET, SO_RCVBUF, &v.to_ne_bytes());
        assert!(
            r.is_ok() || r == Err(EINVAL) || r == Err(ENOBUFS),
            "{v}: {r:?}"
        );
    }
    (&c).write_all(&[5u8; 100_000]).unwrap();
    let mut buf = vec![0u8; 100_000];
    (&s).read_exact(&mut buf).unwrap();
    assert!(buf.iter().all(|&b| b == 5));
    let hwm = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap();
    assert!(
        hwm < 1 << 20,
        "peak RSS {hwm} kB after asking for a 2 GiB buffer"
    );
}

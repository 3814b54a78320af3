//! Over the fault injector (`backends::fault`) wrapped around a loopback
//! backend: streams still deliver every byte exactly once and in order,
//! datagrams arrive whole or not at all (never a mix of two).
//!
//! Each test registers its own `FaultBackend(Loopback)` above the default
//! loopback, so it claims every IP socket of the process while it is
//! registered; a lock runs the tests of this file one at a time.

use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use userspacesock::backend::registry;
use userspacesock::backends::fault::{FaultBackend, FaultConfig};
use userspacesock::backends::loopback::Loopback;
use userspacesock::net::{UsockDatagram, UsockListener, UsockStream};

static SERIAL: Mutex<()> = Mutex::new(());

/// The fault backend, registered above the default loopback until dropped.
struct Faulty {
    fb: Arc<FaultBackend>,
    id: u64,
    _serial: MutexGuard<'static, ()>,
}

impl Faulty {
    fn new(cfg: FaultConfig) -> Faulty {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let fb = FaultBackend::wrap(Arc::new(Loopback::new()), cfg);
        let id = registry::register(fb.clone(), 100);
        Faulty {
            fb,
            id,
            _serial: serial,
        }
    }
}

impl Drop for Faulty {
    fn drop(&mut self) {
        registry::unregister(self.id);
    }
}

fn chaos(seed: u64) -> FaultConfig {
    FaultConfig {
        seed,
        reorder: 0.3,
        dup: 0.15,
        split: 0.3,
        delay: 0.1,
        coalesce: 0.5,
        drop: 0.0,
        max_delay: Duration::from_millis(2),
        ..FaultConfig::default()
    }
}

/// SplitMix64: the byte stream of connection `c` is `byte(c, 0..)`.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn fill(c: u64, off: u64, buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        let o = off + i as u64;
        *b = (mix((c << 40) ^ (o / 8)) >> (8 * (o % 8))) as u8;
    }
}

/// Sends `total` bytes of stream `c` in chunks of varying size, then ends
/// the stream; returns nothing, the reader checks.
fn send_stream(s: &UsockStream, c: u64, total: u64) {
    let mut off = 0u64;
    let mut buf = vec![0u8; 100_000];
    let mut k = c;
    while off < total {
        k = mix(k);
        let n = (1 + k % 99_999).min(total - off) as usize;
        fill(c, off, &mut buf[..n]);
        (&*s).write_all(&buf[..n]).unwrap();
        off += n as u64;
    }
    s.shutdown(Shutdown::Write).unwrap();
}

/// Reads stream `c` to its end and checks every byte; returns its length.
fn check_stream(s: &UsockStream, c: u64) -> u64 {
    let mut off = 0u64;
    let mut buf = vec![0u8; 70_000];
    let mut want = vec![0u8; 70_000];
    loop {
        let n = (&*s).read(&mut buf).unwrap();
        if n == 0 {
            return off;
        }
        fill(c, off, &mut want[..n]);
        if buf[..n] != want[..n] {
            let i = (0..n).find(|&i| buf[i] != want[i]).unwrap();
            panic!("stream {c}: wrong byte at offset {}", off + i as u64);
        }
        off += n as u64;
    }
}

#[test]
fn streams_deliver_every_byte_once_in_order_under_faults() {
    const CONNS: u64 = 4;
    const BYTES: u64 = 3 << 20;
    for seed in [1u64, 2, 3, 0xdead_beef] {
        let f = Faulty::new(chaos(seed));
        let l = UsockListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let server = thread::spawn(move || {
            let mut hs = Vec::new();
            for _ in 0..CONNS {
                let (s, _) = l.accept().unwrap();
                hs.push(thread::spawn(move || {
                    // The client says which stream it is in its first byte.
                    let mut id = [0u8; 1];
                    (&s).read_exact(&mut id).unwrap();
                    let c = u64::from(id[0]);
                    let got = check_stream(&s, c);
                    // Echo the stream back: both directions under faults.
                    send_stream(&s, c + 100, got);
                    (c, got)
                }));
            }
            hs.into_iter()
                .map(|h| h.join().unwrap())
                .collect::<Vec<_>>()
        });
        let clients: Vec<_> = (0..CONNS)
            .map(|c| {
                thread::spawn(move || {
                    let s = UsockStream::connect(addr).unwrap();
                    (&s).write_all(&[c as u8]).unwrap();
                    let r = s.try_clone().unwrap();
                    let reader = thread::spawn(move || check_stream(&r, c + 100));
                    send_stream(&s, c, BYTES);
                    assert_eq!(reader.join().unwrap(), BYTES);
                })
            })
            .collect();
        for c in clients {
            c.join().unwrap();
        }
        let mut got = server.join().unwrap();
        got.sort();
        assert_eq!(got, (0..CONNS).map(|c| (c, BYTES)).collect::<Vec<_>>());
        let st = f.fb.stats();
        eprintln!("seed {seed:#x}: {st:?}");
        for (what, n) in [
            ("splits", &st.splits),
            ("dups", &st.dups),
            ("reorders", &st.reorders),
            ("delays", &st.delays),
            ("coalesced", &st.coalesced),
        ] {
            assert!(
                n.load(std::sync::atomic::Ordering::Relaxed) > 0,
                "no {what}"
            );
        }
    }
}

#[test]
fn a_small_receive_window_still_gets_every_byte() {
    // 8 KiB receive buffer: the reordering runs into the window edge and
    // the Socket Buffer's hole limit, and held pieces must be offered again.
    let f = Faulty::new(FaultConfig {
        reorder: 0.5,
        split: 0.6,
        ..chaos(77)
    });
    let l = UsockListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let c = UsockStream::connect(addr).unwrap();
    let (s, _) = l.accept().unwrap();
    userspacesock_set_rcvbuf(&s, 8192);
    let t = thread::spawn(move || send_stream(&c, 9, 1 << 20));
    assert_eq!(check_stream(&s, 9), 1 << 20);
    t.join().unwrap();
    eprintln!("{:?}", f.fb.stats());
}

fn userspacesock_set_rcvbuf(s: &UsockStream, n: i32) {
    s.raw()
        .setsockopt(
            userspacesock::consts::SOL_SOCKET,
            userspacesock::consts::SO_RCVBUF,
            &n.to_ne_bytes(),
        )
        .unwrap();
}

/// A datagram: 16-byte header (sender, id, length, checksum of the body),
/// then a body derived from (sender, id).
fn datagram(sender: u64, id: u64, len: usize) -> Vec<u8> {
    let mut d = vec![0u8; len.max(16)];
    fill((sender << 20) | id, 0, &mut d[16..]);
    d[0..4].copy_from_slice(&(sender as u32).to_le_bytes());
    d[4..8].copy_from_slice(&(id as u32).to_le_bytes());
    let n = d.len() as u32;
    d[8..12].copy_from_slice(&n.to_le_bytes());
    d
}

/// Checks a received datagram is exactly one whole datagram some sender
/// sent; returns (sender, id).
fn check_datagram(d: &[u8]) -> (u64, u64) {
    assert!(d.len() >= 16, "short datagram {}", d.len());
    let sender = u64::from(u32::from_le_bytes(d[0..4].try_into().unwrap()));
    let id = u64::from(u32::from_le_bytes(d[4..8].try_into().unwrap()));
    let len = u32::from_le_bytes(d[8..12].try_into().unwrap()) as usize;
    assert_eq!(len, d.len(), "datagram {sender}/{id}: length");
    assert_eq!(
        datagram(sender, id, len),
        d,
        "datagram {sender}/{id}: a mix or corruption"
    );
    (sender, id)
}

fn dgram_len(sender: u64, id: u64) -> usize {
    // Sizes up to the largest datagram; split makes several fragments.
    match mix((sender << 32) | id) % 4 {
        0 => 65_507,
        1 => 16 + (mix(id) % 100) as usize,
        _ => 16 + (mix(id ^ 7) % 65_000) as usize,
    }
}

#[test]
fn datagrams_arrive_whole_or_not_at_all_under_faults() {
    const SENDERS: u64 = 3;
    const EACH: u64 = 300;
    for seed in [5u64, 6] {
        let f = Faulty::new(FaultConfig {
            drop: 0.05,
            ..chaos(seed)
        });
        let rx = UsockDatagram::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let to = rx.local_addr().unwrap();
        let senders: Vec<_> = (0..SENDERS)
            .map(|s| {
                thread::spawn(move || {
                    let tx = UsockDatagram::bind("127.0.0.1:0").unwrap();
                    for id in 0..EACH {
                        tx.send_to(&datagram(s, id, dgram_len(s, id)), to).unwrap();
                        if id % 8 == 0 {
                            // Let the receiver keep up (a full receiver drops).
                            thread::sleep(Duration::from_micros(300));
                        }
                    }
                    // Keep the socket (its address) until held pieces drain.
                    thread::sleep(Duration::from_millis(50));
                })
            })
            .collect();
        let mut seen = std::collections::HashMap::<(u64, u64), u32>::new();
        let mut buf = vec![0u8; 70_000];
        loop {
            match rx.recv_from(&mut buf) {
                Ok((n, _)) => *seen.entry(check_datagram(&buf[..n])).or_default() += 1,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        for s in senders {
            s.join().unwrap();
        }
        let total = SENDERS * EACH;
        let dups = seen.values().filter(|&&n| n > 1).count();
        eprintln!(
            "seed {seed}: {} of {total} datagrams arrived, {dups} more than once; {:?}",
            seen.len(),
            f.fb.stats()
        );
        // Drops (injected, and a full receiver's, as UDP) are allowed;
        // what arrived was checked whole above.
        assert!(seen.len() as u64 > total / 10, "almost nothing arrived");
        assert!(
            f.fb.stats()
                .drops
                .load(std::sync::atomic::Ordering::Relaxed)
                > 0
        );
    }
}

#[test]
fn faults_off_is_a_transparent_wrapper() {
    let f = Faulty::new(FaultConfig::default());
    let l = UsockListener::bind("127.0.0.1:0").unwrap();
    let c = UsockStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    let t0 = Instant::now();
    let t = thread::spawn(move || send_stream(&c, 1, 8 << 20));
    assert_eq!(check_stream(&s, 1), 8 << 20);
    t.join().unwrap();
    assert!(t0.elapsed() < Duration::from_secs(20));
    let st = f.fb.stats();
    assert_eq!(st.splits.load(std::sync::atomic::Ordering::Relaxed), 0);
    assert_eq!(
        st.timer_releases.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

/// Unnamed AF_UNIX datagram senders have no source address, and partial
/// datagrams are keyed by (id, source): two such senders whose datagrams
/// get split (by a backend that fragments) and share an id can have their
/// pieces joined into one datagram.
#[test]

fn unnamed_unix_senders_never_mix_split_datagrams() {
    let _f = Faulty::new(FaultConfig {
        split: 1.0,
        reorder: 0.5,
        ..FaultConfig::default()
    });
    let path = std::env::temp_dir().join(format!("usock-fault-mix-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let mut b = (userspacesock::consts::AF_UNIX as u16)
        .to_ne_bytes()
        .to_vec();
    b.extend_from_slice(path.to_str().unwrap().as_bytes());
    b.push(0);
    let sa = userspacesock::net::SockAddr::from_bytes(&b).unwrap();
    let rx = UsockDatagram::unbound(userspacesock::consts::AF_UNIX).unwrap();
    rx.raw().bind(&sa).unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let senders: Vec<_> = (0..2u64)
        .map(|s| {
            thread::spawn(move || {
                let tx = UsockDatagram::unbound(userspacesock::consts::AF_UNIX).unwrap();
                for id in 0..200u64 {
                    // Same length for both senders: only the content differs.
                    let d = datagram(s, id, 2000);
                    let _ = tx.send_to_sockaddr(&d, &sa);
                }
            })
        })
        .collect();
    let mut buf = vec![0u8; 4096];
    let mut n = 0;
    while let Ok((len, _)) = rx.recv_from_sockaddr(&mut buf) {
        check_datagram(&buf[..len]);
        n += 1;
    }
    for s in senders {
        s.join().unwrap();
    }
    let _ = std::fs::remove_file(&path);
    assert!(n > 0);
}

/// The socket table reuses a closed socket's slot for the next socket
/// made. An unnamed AF_UNIX sender whose datagrams lost their first piece
/// (the receiver's queue was full: `max_dgram_qlen`) leaves their other
/// pieces behind as partial datagrams; once it is closed, the datagrams of
/// the next unnamed sender, in the same slot, must not complete them.
#[test]
fn a_new_senders_datagrams_never_complete_a_closed_senders_pieces() {
    let _f = Faulty::new(FaultConfig {
        split: 1.0,
        ..FaultConfig::default()
    });
    let path = std::env::temp_dir().join(format!("usock-fault-reuse-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let mut b = (userspacesock::consts::AF_UNIX as u16)
        .to_ne_bytes()
        .to_vec();
    b.extend_from_slice(path.to_str().unwrap().as_bytes());
    b.push(0);
    let sa = userspacesock::net::SockAddr::from_bytes(&b).unwrap();
    let rx = UsockDatagram::unbound(userspacesock::consts::AF_UNIX).unwrap();
    rx.raw().bind(&sa).unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    const EACH: u64 = 40;
    {
        // More than the receiver's queue takes while nobody reads.
        let tx = UsockDatagram::unbound(userspacesock::consts::AF_UNIX).unwrap();
        for id in 0..EACH {
            let _ = tx.send_to_sockaddr(&datagram(0, id, 2000), &sa);
        }
    }
    let mut buf = vec![0u8; 4096];
    while let Ok((len, _)) = rx.recv_from_sockaddr(&mut buf) {
        assert_eq!(check_datagram(&buf[..len]).0, 0);
    }
    // In the closed sender's slot; read as it sends: every datagram fits.
    let tx = UsockDatagram::unbound(userspacesock::consts::AF_UNIX).unwrap();
    for id in 0..EACH {
        tx.send_to_sockaddr(&datagram(1, id, 2000), &sa).unwrap();
        let (len, _) = rx.recv_from_sockaddr(&mut buf).unwrap();
        assert_eq!(check_datagram(&buf[..len]), (1, id));
    }
    let _ = std::fs::remove_file(&path);
}

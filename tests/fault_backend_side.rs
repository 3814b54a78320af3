//! Backend-side faults, through the fault injector's modes, as the
//! application sees them: a refused connect (ECONNREFUSED), a connect that
//! never completes (times out, or is ended by close from another thread), a
//! reset mid-transfer (the data already in order, then ECONNRESET once,
//! then end of file / EPIPE, as Linux), and a backend that stops granting
//! credit (send blocks, times out with SO_SNDTIMEO, EAGAIN when
//! non-blocking). close() never hangs in any of these: every test runs
//! under a watchdog.

use std::io::{ErrorKind, Read, Write};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use libc::{c_int, c_void, sockaddr, socklen_t};
use userspacesock::api::posix::*;
use userspacesock::backend::registry;
use userspacesock::backends::fault::{FaultBackend, FaultConfig};
use userspacesock::backends::loopback::Loopback;
use userspacesock::net::{to_sockaddr, UsockListener, UsockStream};

static SERIAL: Mutex<()> = Mutex::new(());

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

/// Runs `f` in a thread and fails the test if it takes longer than `secs`.
fn watchdog<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(v) => v,
        Err(_) => panic!("hung for {secs} s"),
    }
}

fn errno() -> c_int {
    std::io::Error::last_os_error().raw_os_error().unwrap()
}

#[test]
fn a_refused_connect_is_econnrefused() {
    let _f = Faulty::new(FaultConfig {
        refuse: 1.0,
        ..FaultConfig::default()
    });
    watchdog(20, || {
        let l = UsockListener::bind("127.0.0.1:0").unwrap();
        let e = UsockStream::connect(l.local_addr().unwrap()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionRefused);
        // Through the C API: blocking, then non-blocking (SO_ERROR).
        let sa = to_sockaddr(&l.local_addr().unwrap());
        unsafe {
            let fd = usock_socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            let r = usock_connect(fd, sa.as_bytes().as_ptr() as *const sockaddr, 16);
            assert_eq!((r, errno()), (-1, libc::ECONNREFUSED));
            assert_eq!(usock_close(fd), 0);
            let fd = usock_socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0);
            let r = usock_connect(fd, sa.as_bytes().as_ptr() as *const sockaddr, 16);
            if r == -1 && errno() == libc::EINPROGRESS {
                let mut e: c_int = 0;
                let mut len = 4 as socklen_t;
                usock_getsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_ERROR,
                    &mut e as *mut c_int as *mut c_void,
                    &mut len,
                );
                assert_eq!(e, libc::ECONNREFUSED);
            } else {
                assert_eq!((r, errno()), (-1, libc::ECONNREFUSED));
            }
            assert_eq!(usock_close(fd), 0);
        }
    });
}

#[test]
fn a_connect_that_never_completes_times_out_and_close_ends_it() {
    let _f = Faulty::new(FaultConfig {
        blackhole: true,
        ..FaultConfig::default()
    });
    watchdog(20, || {
        let l = UsockListener::bind("127.0.0.1:0").unwrap();
        let sa = to_sockaddr(&l.local_addr().unwrap());
        unsafe {
            // SO_SNDTIMEO bounds a blocking connect: EINPROGRESS, as Linux.
            let fd = usock_socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            let tv = libc::timeval {
                tv_sec: 0,
                tv_usec: 100_000,
            };
            usock_setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_SNDTIMEO,
                &tv as *const _ as *const c_void,
                16,
            );
            let t0 = Instant::now();
            let r = usock_connect(fd, sa.as_bytes().as_ptr() as *const sockaddr, 16);
            assert_eq!((r, errno()), (-1, libc::EINPROGRESS));
            assert!(t0.elapsed() >= Duration::from_millis(90));
            assert_eq!(usock_close(fd), 0);

            // A connect blocked forever is ended by close() from another
            // thread.
            let fd = usock_socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            let addr = sa;
            let t = thread::spawn(move || {
                let r = usock_connect(fd, addr.as_bytes().as_ptr() as *const sockaddr, 16);
                (r, errno())
            });
            thread::sleep(Duration::from_millis(50));
            assert_eq!(usock_close(fd), 0);
            let (r, e) = t.join().unwrap();
            assert_eq!(r, -1);
            assert!(
                [libc::EBADF, libc::ECONNABORTED, libc::EINTR].contains(&e),
                "{e}"
            );
        }
    });
}

fn pattern(off: u64) -> u8 {
    (off.wrapping_mul(2_654_435_761) >> 13) as u8
}

#[test]
fn a_reset_mid_transfer_delivers_the_data_in_order_then_econnreset_once() {
    const LIMIT: u64 = 300_000; // beyond one receive window
    for (seed, reorder) in [(1u64, 0.0), (2, 0.3), (3, 0.5)] {
        let f = Faulty::new(FaultConfig {
            seed,
            reorder,
            split: reorder,
            dup: reorder / 3.0,
            reset_after: Some(LIMIT),
            ..FaultConfig::default()
        });
        watchdog(30, move || {
            let l = UsockListener::bind("127.0.0.1:0").unwrap();
            let c = UsockStream::connect(l.local_addr().unwrap()).unwrap();
            let (s, _) = l.accept().unwrap();
            let writer = thread::spawn(move || {
                let data: Vec<u8> = (0..1u64 << 20).map(pattern).collect();
                let mut off = 0;
                let err = loop {
                    match (&c).write(&data[off..]) {
                        Ok(n) => off += n,
                        Err(e) => break e,
                    }
                    assert!(off < data.len(), "all sent: no reset");
                };
                assert_eq!(err.raw_os_error(), Some(libc::ECONNRESET));
                // After the one report: EPIPE.
                let e = (&c).write(b"x").unwrap_err();
                assert_eq!(e.raw_os_error(), Some(libc::EPIPE));
                drop(c); // close() after a reset: no hang
            });
            let mut got = 0u64;
            let mut buf = vec![0u8; 50_000];
            let err = loop {
                match (&s).read(&mut buf) {
                    Ok(0) => panic!("end of file before the reset"),
                    Ok(n) => {
                        for (i, b) in buf[..n].iter().enumerate() {
                            assert_eq!(*b, pattern(got + i as u64), "byte {}", got + i as u64);
                        }
                        got += n as u64;
                    }
                    Err(e) => break e,
                }
            };
            assert_eq!(err.raw_os_error(), Some(libc::ECONNRESET));
            assert_eq!(got, LIMIT, "every byte before the reset, and no more");
            // Then end of file, as Linux after ECONNRESET; sends: EPIPE.
            assert_eq!((&s).read(&mut buf).unwrap(), 0);
            assert_eq!(
                (&s).write(b"x").unwrap_err().raw_os_error(),
                Some(libc::EPIPE)
            );
            writer.join().unwrap();
        });
        assert_eq!(
            f.fb.stats()
                .resets
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }
}

#[test]
fn a_backend_that_stops_granting_credit_blocks_times_out_and_closes() {
    let f = Faulty::new(FaultConfig {
        no_credit: true,
        ..FaultConfig::default()
    });
    watchdog(30, || {
        let l = UsockListener::bind("127.0.0.1:0").unwrap();
        let c = UsockStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        // The reader reads everything, but the credit never comes back.
        let s2 = s.try_clone().unwrap();
        let reader = thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 16];
            let mut n = 0;
            loop {
                match (&s2).read(&mut buf) {
                    Ok(0) | Err(_) => return n,
                    Ok(k) => n += k,
                }
            }
        });
        c.set_write_timeout(Some(Duration::from_millis(150)))
            .unwrap();
        let chunk = vec![3u8; 1 << 16];
        let mut sent = 0usize;
        let t0 = Instant::now();
        let e = loop {
            match (&c).write(&chunk) {
                Ok(n) => sent += n,
                Err(e) => break e,
            }
            assert!(sent < 16 << 20, "credit kept coming");
        };
        assert_eq!(e.kind(), ErrorKind::WouldBlock, "SO_SNDTIMEO: EAGAIN");
        assert!(t0.elapsed() >= Duration::from_millis(140));
        // The window, then SO_SNDBUF's bytes in the send queue.
        let mut sndbuf = [0u8; 4];
        c.raw()
            .getsockopt(libc::SOL_SOCKET, libc::SO_SNDBUF, &mut sndbuf)
            .unwrap();
        let queued = i32::from_ne_bytes(sndbuf) as usize;
        assert_eq!(sent, userspacesock::config::STREAM_RCVBUF + queued);
        c.set_nonblocking(true).unwrap();
        assert_eq!(
            (&c).write(&chunk).unwrap_err().kind(),
            ErrorKind::WouldBlock
        );
        // A writer blocked without a timeout is woken by shutdown from
        // another thread, and close() of everything returns.
        c.set_nonblocking(false).unwrap();
        c.set_write_timeout(None).unwrap();
        let c2 = c.try_clone().unwrap();
        let w = thread::spawn(move || (&c2).write(&chunk));
        thread::sleep(Duration::from_millis(50));
        c.shutdown(std::net::Shutdown::Both).unwrap();
        let r = w.join().unwrap();
        assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::EPIPE));
        // The queued bytes (and the FIN behind them) wait for credit that
        // never comes, as a Linux sender's would: the reader has the
        // window's bytes, then the reset of a close with SO_LINGER 0.
        c.set_linger(Some(Duration::ZERO)).unwrap();
        drop(c);
        drop(s);
        assert_eq!(reader.join().unwrap(), sent - queued);
    });
    assert!(
        f.fb.stats()
            .windows_swallowed
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    );
}

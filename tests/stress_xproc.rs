//! Load through the cross-process backend (USOCK_NET): many threads and
//! connections, every byte checked, and no fd or socket file left behind.
//! Both ends live in this process (the backend does not know): every
//! connection still crosses its AF_UNIX transport and transport thread.
#![cfg(feature = "std")]

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread;

use userspacesock::net::{UsockListener, UsockStream};

const THREADS: usize = 8;
const CONNS_PER_THREAD: usize = 40;
const BYTES: usize = 256 << 10;

fn byte(conn: usize, i: usize) -> u8 {
    ((i as u64).wrapping_mul(2654435761) >> 7) as u8 ^ conn as u8
}

fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn threads_and_connections_through_the_cross_process_backend() {
    let dir = std::env::temp_dir().join(format!("usock-xproc-stress-{}", std::process::id()));
    // Read by the registry at the first socket call of this process.
    std::env::set_var("USOCK_NET", &dir);
    // TCP through xproc's own streams (its frames and port files are
    // what is tested), not the shm backend that carries it by default.
    std::env::set_var("USOCK_SHM", "0");
    let before = fd_count();
    let l = Arc::new(UsockListener::bind("127.0.0.1:0".parse::<SocketAddr>().unwrap()).unwrap());
    let addr = l.local_addr().unwrap();
    assert!(
        dir.join(format!("t{}", addr.port())).exists(),
        "the port is a socket file in the network directory"
    );
    let total = THREADS * CONNS_PER_THREAD;
    let server = {
        let l = l.clone();
        thread::spawn(move || {
            let mut workers = Vec::new();
            for _ in 0..total {
                let (mut s, _) = l.accept().unwrap();
                workers.push(thread::spawn(move || {
                    // Echo everything back until end-of-stream.
                    let mut buf = vec![0u8; 32 << 10];
                    loop {
                        let n = s.read(&mut buf).unwrap();
                        if n == 0 {
                            break;
                        }
                        s.write_all(&buf[..n]).unwrap();
                    }
                }));
                if workers.len() >= 64 {
                    for w in workers.drain(..) {
                        w.join().unwrap();
                    }
                }
            }
            for w in workers {
                w.join().unwrap();
            }
        })
    };
    let clients: Vec<_> = (0..THREADS)
        .map(|t| {
            thread::spawn(move || {
                for k in 0..CONNS_PER_THREAD {
                    let id = t * CONNS_PER_THREAD + k;
                    let c = UsockStream::connect(addr).unwrap();
                    let data: Vec<u8> = (0..BYTES).map(|i| byte(id, i)).collect();
                    let writer = {
                        let mut c2 = c.try_clone().unwrap();
                        thread::spawn(move || {
                            c2.write_all(&data).unwrap();
                            c2.shutdown(std::net::Shutdown::Write).unwrap();
                        })
                    };
                    let mut got = Vec::with_capacity(BYTES);
                    (&c).read_to_end(&mut got).unwrap();
                    writer.join().unwrap();
                    assert_eq!(got.len(), BYTES, "connection {id}");
                    assert!(
                        got.iter().enumerate().all(|(i, &b)| b == byte(id, i)),
                        "connection {id}: bytes differ"
                    );
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    server.join().unwrap();
    drop(l);
    // The transport closes a connection's kernel socket once its queue is
    // out: give it a moment.
    for _ in 0..100 {
        if fd_count() <= before + 2 {
            break;
        }
        thread::sleep(std::time::Duration::from_millis(20));
    }
    // The transport thread's epoll fd and the eventfd behind the socket
    // numbers stay for the life of the process.
    assert!(
        fd_count() <= before + 2,
        "fds left: {} before, {} after",
        before,
        fd_count()
    );
    // `.stat` holds this process's listing endpoint (usockstat's) until
    // it exits.
    assert_eq!(
        std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name() != ".stat")
            .count(),
        0,
        "socket files left in the network directory"
    );
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "xproc stress: {total} connections x {} KiB echoed and checked",
        BYTES >> 10
    );
}

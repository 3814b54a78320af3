//! Many short connections in a row through the cross-process backend: every
//! blocking connect succeeds. (A connect woken between "no longer
//! connecting" and "connected" used to report ECONNREFUSED: netbench's
//! connection test failed in most runs through this backend.)
#![cfg(feature = "std")]

use std::io::Read;
use std::net::SocketAddr;
use std::thread;

use userspacesock::net::{UsockListener, UsockStream};

const CONNS: usize = 30_000;

#[test]
fn thirty_thousand_connects_in_a_row_all_succeed() {
    let dir = std::env::temp_dir().join(format!("usock-xproc-connect-{}", std::process::id()));
    // Read by the registry at the first socket call of this process.
    std::env::set_var("USOCK_NET", &dir);
    let l = UsockListener::bind("127.0.0.1:0".parse::<SocketAddr>().unwrap()).unwrap();
    let addr = l.local_addr().unwrap();
    let server = thread::spawn(move || {
        for _ in 0..CONNS {
            // The server closes first, as in netbench.
            drop(l.accept().unwrap());
        }
    });
    for i in 0..CONNS {
        let mut s = UsockStream::connect(addr).unwrap_or_else(|e| panic!("connect {i}: {e}"));
        let mut b = [0u8; 1];
        assert_eq!(
            s.read(&mut b).unwrap(),
            0,
            "end-of-stream on connection {i}"
        );
    }
    server.join().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

//! A backend that reports a reset while a stream connect is still waiting
//! for its outcome ends that connect with ECONNREFUSED (a reset answering a
//! SYN does so on Linux), instead of leaving it blocked forever.
#![cfg(feature = "std")]

use std::io::ErrorKind;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use userspacesock::addr::SockAddr;
use userspacesock::backend::contract::*;
use userspacesock::backend::registry;
use userspacesock::backend::upcall;
use userspacesock::consts::*;
use userspacesock::net::UsockStream;

/// Claims AF_INET streams to port 9 and answers every connect with a reset,
/// from another thread, a moment after the connect has started waiting.
struct ResetsConnects;

impl Backend for ResetsConnects {
    fn name(&self) -> &str {
        "resets-connects"
    }
    fn supports(&self, info: &SockInfo) -> bool {
        info.domain == AF_INET && info.ty == SOCK_STREAM
    }
    fn claim(
        &self,
        _h: SockHandle,
        _info: &SockInfo,
        _op: ClaimOp,
        addr: &SockAddr,
    ) -> Result<Option<SockState>, Errno> {
        let to_port_9 = addr.as_bytes().get(2..4) == Some(&[0, 9]);
        Ok(to_port_9.then(|| Arc::new(()) as SockState))
    }
    fn bind(&self, _s: SockRef<'_>, a: &SockAddr) -> Result<SockAddr, Errno> {
        Ok(*a)
    }
    fn listen(&self, _s: SockRef<'_>, _b: u32) -> Result<(), Errno> {
        Err(EOPNOTSUPP)
    }
    fn connect(&self, s: SockRef<'_>, _a: &SockAddr) -> Result<(), Errno> {
        let h = s.handle;
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(50));
            let _ = upcall::reset(h, ECONNRESET);
        });
        Ok(())
    }
    fn write(&self, _s: SockRef<'_>, _f: &Fragment<'_>) -> Result<(), Errno> {
        Err(ENOTCONN)
    }
    fn local_addr(&self, _s: SockRef<'_>) -> Option<SockAddr> {
        None
    }
    fn peer_addr(&self, _s: SockRef<'_>) -> Option<SockAddr> {
        None
    }
    fn close(&self, _s: SockRef<'_>) {}
}

#[test]
fn a_reset_during_connect_refuses_it() {
    let id = registry::register(Arc::new(ResetsConnects), 1000);
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(UsockStream::connect("127.0.0.1:9").map(|_| ()));
    });
    let r = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("connect still blocked 10 s after the backend's reset");
    registry::unregister(id);
    assert_eq!(r.unwrap_err().kind(), ErrorKind::ConnectionRefused);
}

//! SO_RXQ_OVFL under a backend that keeps the datagrams a receiver
//! refuses (`Backend::keeps_refused_datagrams`, the cross-process
//! backend's lossless flow control), issue 13: the library's own
//! contract, played here by a mock backend through the upcalls.
//! - Without the option, a datagram the receive buffer cannot hold is
//!   refused with ENOBUFS (the backend keeps it and offers it again) and
//!   is no drop.
//! - With it the socket asked to see drops: the frontend drops the
//!   datagram, counts it, and answers the delivery `Ok`, so the backend
//!   goes on; the next datagram queued reports the count in its
//!   SO_RXQ_OVFL cmsg, as Linux's UDP does.
#![cfg(feature = "std")]

mod common;

use std::sync::{Arc, Mutex};

use common::dual::{Addr, Lib, Sys};
use userspacesock::addr::SockAddr;
use userspacesock::api::posix::usock_recvmsg;
use userspacesock::backend::attrs::DgramAttrs;
use userspacesock::backend::contract::*;
use userspacesock::backend::registry;
use userspacesock::backend::upcall;
use userspacesock::consts::*;

/// Above loopback and xproc (`backends::LOOPBACK_PRIORITY`, ...).
const MOCK_PRIORITY: i32 = 1000;

/// The port the mock claims (below the ephemeral range; the test binary's
/// own).
const PORT: u16 = 23871;

/// A backend for AF_INET datagram sockets bound to 127.0.0.1:[`PORT`]
/// that keeps refused datagrams; it records the handle it was given.
struct Keeper {
    handle: Mutex<Option<SockHandle>>,
}

impl Backend for Keeper {
    fn name(&self) -> &str {
        "keeper"
    }
    fn supports(&self, info: &SockInfo) -> bool {
        info.domain == AF_INET && info.ty == SOCK_DGRAM
    }
    fn claim(
        &self,
        h: SockHandle,
        _info: &SockInfo,
        _op: ClaimOp,
        addr: &SockAddr,
    ) -> Result<Option<SockState>, Errno> {
        if addr.as_bytes().get(2..4) != Some(&PORT.to_be_bytes()[..]) {
            return Ok(None);
        }
        *self.handle.lock().unwrap() = Some(h);
        Ok(Some(Arc::new(()) as SockState))
    }
    fn bind(&self, _s: SockRef<'_>, a: &SockAddr) -> Result<SockAddr, Errno> {
        Ok(*a)
    }
    fn listen(&self, _s: SockRef<'_>, _b: u32) -> Result<(), Errno> {
        Err(EOPNOTSUPP)
    }
    fn connect(&self, _s: SockRef<'_>, _a: &SockAddr) -> Result<(), Errno> {
        Ok(())
    }
    fn write(&self, _s: SockRef<'_>, _f: &Fragment<'_>) -> Result<(), Errno> {
        Ok(())
    }
    fn keeps_refused_datagrams(&self) -> bool {
        true
    }
    fn local_addr(&self, _s: SockRef<'_>) -> Option<SockAddr> {
        None
    }
    fn peer_addr(&self, _s: SockRef<'_>) -> Option<SockAddr> {
        None
    }
    fn close(&self, _s: SockRef<'_>) {}
}

/// Unregisters the mock at the end of the test, even a failed one.
struct Registered(u64);

impl Drop for Registered {
    fn drop(&mut self) {
        registry::unregister(self.0);
    }
}

/// Datagram `id` (its payload: 1000 bytes, or `last`) from 127.0.0.1:9 to
/// socket `h`, with attributes (the drop count rides with them).
fn offer(h: SockHandle, id: u64, payload: &[u8]) -> Result<(), Errno> {
    let src = userspacesock::net::to_sockaddr(&"127.0.0.1:9".parse().unwrap());
    let f = Fragment::dgram(id, 0, payload.len() as u32, src.as_bytes(), payload);
    upcall::deliver_attrs(h, &f, &DgramAttrs::default())
}

/// The next datagram's length and SO_RXQ_OVFL count (None: no such cmsg);
/// None when nothing is queued.
fn recv_counted(fd: i32) -> Option<(usize, Option<u32>)> {
    let mut buf = [0u8; 2048];
    let mut ctl = [0u64; 32];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: all-zero is a valid msghdr.
    let mut m: libc::msghdr = unsafe { std::mem::zeroed() };
    m.msg_iov = &mut iov;
    m.msg_iovlen = 1;
    m.msg_control = ctl.as_mut_ptr().cast();
    m.msg_controllen = std::mem::size_of_val(&ctl);
    // SAFETY: the header points at a live buffer and control room.
    let n = unsafe { usock_recvmsg(fd, &mut m, libc::MSG_DONTWAIT) };
    if n < 0 {
        return None;
    }
    let mut drops = None;
    // SAFETY: recvmsg filled the control buffer; the CMSG macros walk it
    // within its length.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&m);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SO_RXQ_OVFL {
                drops = Some(std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const u32));
            }
            c = libc::CMSG_NXTHDR(&m, c);
        }
    }
    Some((n as usize, drops))
}

#[test]
fn issue13_a_keeping_backends_refusal_is_a_counted_drop_only_with_so_rxq_ovfl() {
    let keeper = Arc::new(Keeper {
        handle: Mutex::new(None),
    });
    let _reg = Registered(registry::register(keeper.clone(), MOCK_PRIORITY));
    let fd = Lib::socket(AF_INET, SOCK_DGRAM, 0).unwrap();
    Lib::set_int(fd, SOL_SOCKET, SO_RCVBUF, 4096).unwrap();
    Lib::bind(fd, &Addr::v4(PORT)).unwrap();
    let h = keeper
        .handle
        .lock()
        .unwrap()
        .expect("the mock claimed the bind");
    let payload = [7u8; 1000];
    // Lossless: filled, then refused (kept by the backend), no drop.
    let mut id = 1;
    let mut queued = 0;
    loop {
        match offer(h, id, &payload) {
            Ok(()) => queued += 1,
            Err(ENOBUFS) => break,
            Err(e) => panic!("deliver: errno {e}"),
        }
        id += 1;
        assert!(queued < 1000, "a 4 KiB buffer took 1000 datagrams");
    }
    assert!(queued > 0);
    assert_eq!(offer(h, id, &payload), Err(ENOBUFS), "still kept");
    // Asked to see drops: taken, as drops.
    Lib::set_int(fd, SOL_SOCKET, libc::SO_RXQ_OVFL, 1).unwrap();
    for k in 0..5 {
        assert_eq!(offer(h, id + k, &payload), Ok(()), "dropped and counted");
    }
    id += 5;
    for _ in 0..queued {
        assert_eq!(
            recv_counted(fd),
            Some((1000, None)),
            "queued before any drop"
        );
    }
    assert_eq!(recv_counted(fd), None, "the drops were not queued");
    assert_eq!(offer(h, id, b"last"), Ok(()));
    assert_eq!(
        recv_counted(fd),
        Some((4, Some(5))),
        "the drops, not the refusals"
    );
    // Lossless again without the option.
    Lib::set_int(fd, SOL_SOCKET, libc::SO_RXQ_OVFL, 0).unwrap();
    id += 1;
    let mut refused = false;
    for k in 0..1000 {
        if offer(h, id + k, &payload) == Err(ENOBUFS) {
            refused = true;
            break;
        }
    }
    assert!(refused, "refused again once the option is off");
    Lib::close(fd).unwrap();
}

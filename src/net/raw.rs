//! [`RawSocket`]: the socket calls the typed API does not wrap, as
//! `socket2::SockRef` offers them for `std::net`'s types.

use std::io;
use std::net::Shutdown;

use super::os_err;
use crate::addr::SockAddr;
use crate::backend::contract::SockHandle;
use crate::consts::*;
use crate::socket::Socket;

/// A borrowed view of one socket of the Rust API (from `raw()` on
/// [`UsockStream`](super::UsockStream), [`UsockListener`](super::UsockListener)
/// or [`UsockDatagram`](super::UsockDatagram)) with the POSIX calls in
/// their raw form: C-layout option values, `MSG_*` flags, [`SockAddr`].
/// It holds no reference of its own: it closes nothing when dropped.
#[derive(Clone, Copy)]
pub struct RawSocket<'a> {
    sock: &'a Socket,
}

/// What [`RawSocket::recv`] received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// What recv() returns: bytes copied, or with MSG_TRUNC on a datagram
    /// socket the datagram's full length.
    pub len: usize,
    /// The datagram did not fit (MSG_TRUNC in `msg_flags`).
    pub truncated: bool,
}

impl<'a> RawSocket<'a> {
    pub(super) fn new(sock: &'a Socket) -> Self {
        RawSocket { sock }
    }

    /// bind(2).
    pub fn bind(&self, addr: &SockAddr) -> io::Result<()> {
        self.sock.bind(addr).map_err(os_err)
    }

    /// connect(2), with its errno for a socket in any state (EISCONN,
    /// EINVAL on a listener, ...).
    pub fn connect(&self, addr: &SockAddr) -> io::Result<()> {
        self.sock.connect(addr).map_err(os_err)
    }

    /// shutdown(2) on any socket, listeners included.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        let how = match how {
            Shutdown::Read => SHUT_RD,
            Shutdown::Write => SHUT_WR,
            Shutdown::Both => SHUT_RDWR,
        };
        self.sock.shutdown(how).map_err(os_err)
    }

    /// setsockopt(2): `value` in the option's C layout.
    pub fn setsockopt(&self, level: i32, name: i32, value: &[u8]) -> io::Result<()> {
        self.sock.setsockopt(level, name, value).map_err(os_err)
    }

    /// getsockopt(2): writes the value in C layout into `out`, truncated as
    /// Linux truncates it, and returns the length getsockopt reports.
    pub fn getsockopt(&self, level: i32, name: i32, out: &mut [u8]) -> io::Result<usize> {
        let v = self.sock.getsockopt(level, name).map_err(os_err)?;
        Ok(v.write(out))
    }

    /// recv(2) with `MSG_*` flags into one buffer.
    pub fn recv(&self, buf: &mut [u8], flags: i32) -> io::Result<Received> {
        let r = self.sock.recv(&mut [buf], flags).map_err(os_err)?;
        Ok(Received {
            len: r.ret,
            truncated: r.truncated,
        })
    }

    /// getpeername(2).
    pub fn peer_addr(&self) -> io::Result<SockAddr> {
        self.sock.peer_addr().map_err(os_err)
    }

    /// getsockname(2).
    pub fn local_addr(&self) -> SockAddr {
        self.sock.local_addr()
    }

    /// Whether O_NONBLOCK is set.
    pub fn nonblocking(&self) -> bool {
        self.sock.nonblocking()
    }

    /// The handle the socket's backend knows it by (the contract's
    /// [`SockHandle`]), for driving upcalls in a backend's tests.
    pub fn handle(&self) -> SockHandle {
        self.sock.handle
    }

    /// The state the socket's backend keeps for it, if it is a `T`: which
    /// backend carries the socket (`T` is that backend's own state type).
    pub fn backend_state<T: core::any::Any>(&self) -> Option<&'a T> {
        self.sock.backend_state::<T>()
    }
}

//! The native Rust API: socket types over the same core as the C API, with
//! no fds and no C in between.
//!
//! - [`UsockStream`]: a connected stream socket (`std::io::Read`/`Write`, for
//!   the value and for a shared reference, like `std::net::TcpStream`);
//! - [`UsockListener`]: a listening stream socket that accepts connections;
//! - [`UsockDatagram`]: a datagram socket (`send_to`/`recv_from`, or
//!   `connect` then `send`/`recv`).
//!
//! Addresses are `std::net::SocketAddr` for AF_INET and AF_INET6 (converted
//! to and from `struct sockaddr_in`/`sockaddr_in6` bytes by [`to_sockaddr`]
//! and [`to_socket_addr`]); every type also has a `*_sockaddr` variant that
//! takes or returns a raw [`SockAddr`], for address families of other
//! backends.
//!
//! Errors are `std::io::Error::from_raw_os_error(errno)` with Linux's errno,
//! so `raw_os_error()` and `kind()` read as they would for the kernel's
//! sockets (a timeout is `ErrorKind::WouldBlock`, EAGAIN, as on Linux).
//!
//! Each value holds one reference to its core socket, as one fd would:
//! `try_clone` adds one (like `dup`), and dropping the last one closes the
//! socket (end-of-stream, or a reset when unread data is discarded).
//! Writes never raise SIGPIPE (they pass MSG_NOSIGNAL, as `std` does).

#![forbid(unsafe_code)]

mod addr;
mod datagram;
mod listener;
mod raw;
mod stream;

use alloc::sync::Arc;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use crate::backend::contract::Errno;
use crate::consts::*;
use crate::socket::options::OptVal;
use crate::socket::Socket;

pub use crate::addr::SockAddr;
pub use addr::{to_sockaddr, to_socket_addr};
pub use datagram::UsockDatagram;
pub use listener::{Incoming, UsockListener};
pub use raw::{RawSocket, Received};
pub use stream::UsockStream;

/// An errno as an `io::Error`.
fn os_err(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e)
}

/// One reference to a core socket; dropping it drops the reference (the last
/// one closes the socket), as closing an fd does.
struct Handle {
    sock: Arc<Socket>,
}

impl Handle {
    /// A fresh socket of `domain` and `ty` (protocol 0), blocking.
    fn new(domain: i32, ty: i32) -> io::Result<Handle> {
        crate::backends::install_defaults();
        let info = crate::socket::check_args(domain, ty, 0).map_err(os_err)?;
        let sock = Socket::new(info, false).map_err(os_err)?;
        Ok(Handle { sock })
    }

    /// Takes over the one reference `sock` already holds (an accepted
    /// socket).
    fn adopt(sock: Arc<Socket>) -> Handle {
        Handle { sock }
    }

    /// Another reference to the same socket, as dup() makes.
    fn try_clone(&self) -> Handle {
        self.sock.add_ref();
        Handle {
            sock: self.sock.clone(),
        }
    }

    fn setsockopt(&self, level: i32, name: i32, val: &[u8]) -> io::Result<()> {
        self.sock.setsockopt(level, name, val).map_err(os_err)
    }

    fn getsockopt(&self, level: i32, name: i32) -> io::Result<OptVal> {
        self.sock.getsockopt(level, name).map_err(os_err)
    }

    fn get_int(&self, level: i32, name: i32) -> io::Result<i32> {
        match self.getsockopt(level, name)? {
            OptVal::Int(v) => Ok(v),
            _ => Err(os_err(EINVAL)),
        }
    }

    fn set_int(&self, level: i32, name: i32, v: i32) -> io::Result<()> {
        self.setsockopt(level, name, &v.to_ne_bytes())
    }

    /// SO_RCVTIMEO / SO_SNDTIMEO from a `Duration` (`None` = no timeout). A
    /// zero duration is refused as `std` refuses it (InvalidInput); one below
    /// a microsecond is rounded up to one.
    fn set_timeout(&self, name: i32, dur: Option<Duration>) -> io::Result<()> {
        let (secs, usecs) = match dur {
            None => (0i64, 0i64),
            Some(d) if d.is_zero() => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "cannot set a 0 duration timeout",
                ))
            }
            Some(d) => {
                let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
                let mut usecs = i64::from(d.subsec_micros());
                if secs == 0 && usecs == 0 {
                    usecs = 1;
                }
                (secs, usecs)
            }
        };
        let mut tv = [0u8; 16];
        tv[..8].copy_from_slice(&secs.to_ne_bytes());
        tv[8..].copy_from_slice(&usecs.to_ne_bytes());
        self.setsockopt(SOL_SOCKET, name, &tv)
    }

    fn timeout(&self, name: i32) -> io::Result<Option<Duration>> {
        match self.getsockopt(SOL_SOCKET, name)? {
            OptVal::Timeval(0, 0) => Ok(None),
            OptVal::Timeval(s, us) => Ok(Some(
                Duration::from_secs(s.max(0) as u64) + Duration::from_micros(us.max(0) as u64),
            )),
            _ => Err(os_err(EINVAL)),
        }
    }

    /// SO_ERROR: the pending error, cleared by reading it.
    fn take_error(&self) -> io::Result<Option<io::Error>> {
        let e = self.get_int(SOL_SOCKET, SO_ERROR)?;
        Ok(if e == 0 { None } else { Some(os_err(e)) })
    }

    fn set_nonblocking(&self, on: bool) {
        self.sock.set_nonblocking(on);
    }

    /// recv() into one buffer; returns what the core returned.
    fn recv(&self, buf: &mut [u8], flags: i32) -> io::Result<crate::socket::RecvInfo> {
        self.sock.recv(&mut [buf], flags).map_err(os_err)
    }

    /// recv() into several buffers.
    fn recv_vectored(&self, bufs: &mut [io::IoSliceMut<'_>], flags: i32) -> io::Result<usize> {
        let mut v: Vec<&mut [u8]> = bufs.iter_mut().map(|b| &mut **b).collect();
        self.sock.recv(&mut v, flags).map(|r| r.ret).map_err(os_err)
    }

    /// send() without SIGPIPE.
    fn send(&self, bufs: &[&[u8]], dest: Option<&SockAddr>) -> io::Result<usize> {
        self.sock.send(bufs, MSG_NOSIGNAL, dest).map_err(os_err)
    }

    fn local_addr(&self) -> SockAddr {
        self.sock.local_addr()
    }

    fn peer_addr(&self) -> io::Result<SockAddr> {
        self.sock.peer_addr().map_err(os_err)
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.sock.drop_ref();
    }
}

impl core::fmt::Debug for Handle {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.sock.fmt(f)
    }
}

/// The socket domain of an IP address.
fn domain_of(a: &SocketAddr) -> i32 {
    if a.is_ipv4() {
        AF_INET
    } else {
        AF_INET6
    }
}

/// Calls `f` on each address `addr` resolves to until one succeeds, as
/// `std::net` does; the last error otherwise.
fn each_addr<A: ToSocketAddrs, T>(
    addr: A,
    mut f: impl FnMut(&SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let mut last = None;
    for a in addr.to_socket_addrs()? {
        match f(&a) {
            Ok(v) => return Ok(v),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any addresses",
        )
    }))
}

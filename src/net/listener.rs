//! [`UsockListener`]: a listening stream socket.

use alloc::sync::Arc;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

use super::{
    domain_of, each_addr, os_err, to_sockaddr, to_socket_addr, Handle, RawSocket, UsockStream,
};
use crate::addr::SockAddr;
use crate::consts::*;
use crate::socket::Socket;

/// Backlog of [`UsockListener::bind`], the one `std` uses.
const DEFAULT_BACKLOG: i32 = 128;

/// A listening stream socket, the user-space twin of
/// `std::net::TcpListener`.
#[derive(Debug)]
pub struct UsockListener {
    h: Handle,
}

impl UsockListener {
    /// Binds to `addr` (port 0 picks a free port) and listens with a backlog
    /// of 128, trying each address it resolves to in turn. Like `std`, sets
    /// SO_REUSEADDR first (a port held by another listener is still
    /// `AddrInUse`, EADDRINUSE).
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<UsockListener> {
        each_addr(addr, |a| {
            Self::bind_in(domain_of(a), &to_sockaddr(a), DEFAULT_BACKLOG)
        })
    }

    /// Binds a new stream socket of the address's own family to `addr`, an
    /// address in `struct sockaddr` layout of any family some backend
    /// carries, and listens with `backlog`.
    pub fn bind_sockaddr(addr: &SockAddr, backlog: i32) -> io::Result<UsockListener> {
        Self::bind_in(addr.family(), addr, backlog)
    }

    fn bind_in(domain: i32, addr: &SockAddr, backlog: i32) -> io::Result<UsockListener> {
        let h = Handle::new(domain, SOCK_STREAM)?;
        if domain == AF_INET || domain == AF_INET6 {
            h.set_int(SOL_SOCKET, SO_REUSEADDR, 1)?;
        }
        h.sock.bind(addr).map_err(os_err)?;
        h.sock.listen(backlog).map_err(os_err)?;
        Ok(UsockListener { h })
    }

    /// Waits for a connection and returns it with the peer's address.
    /// `WouldBlock` when non-blocking (or after SO_RCVTIMEO) with none
    /// pending.
    pub fn accept(&self) -> io::Result<(UsockStream, SocketAddr)> {
        let (s, a) = self.accept_sockaddr()?;
        let a = to_socket_addr(&a)?;
        Ok((s, a))
    }

    /// [`UsockListener::accept`] with the peer's address as raw bytes (any
    /// family).
    pub fn accept_sockaddr(&self) -> io::Result<(UsockStream, SockAddr)> {
        let child: Arc<Socket> = self.h.sock.accept(false).map_err(os_err)?;
        // A connection reset after it was queued still has the address it
        // came from.
        let peer = child.accepted_from();
        Ok((UsockStream::adopt(child), peer))
    }

    /// An endless iterator over [`UsockListener::accept`]'s connections.
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// The address listened on (with the port chosen for port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        to_socket_addr(&self.h.local_addr())
    }

    /// The address listened on, as raw bytes (any family).
    pub fn local_sockaddr(&self) -> SockAddr {
        self.h.local_addr()
    }

    /// Sets or clears O_NONBLOCK: accept() with nothing pending then fails
    /// with `WouldBlock` (EAGAIN).
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.h.set_nonblocking(nonblocking);
        Ok(())
    }

    /// Another handle to the same listener (like dup()).
    pub fn try_clone(&self) -> io::Result<UsockListener> {
        Ok(UsockListener {
            h: self.h.try_clone(),
        })
    }

    /// SO_ERROR: the pending error, if any, cleared by reading it.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.h.take_error()
    }

    /// The calls this API does not wrap (options, flags, shutdown of a
    /// listener, ...), in their raw POSIX form.
    pub fn raw(&self) -> RawSocket<'_> {
        RawSocket::new(&self.h.sock)
    }
}

/// Iterator returned by [`UsockListener::incoming`]; never ends.
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a UsockListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<UsockStream>;

    fn next(&mut self) -> Option<io::Result<UsockStream>> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}

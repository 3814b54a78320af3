//! [`UsockDatagram`]: a datagram socket.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use super::{domain_of, each_addr, os_err, to_sockaddr, to_socket_addr, Handle, RawSocket};
use crate::addr::SockAddr;
use crate::consts::*;

/// A datagram socket (UDP-like), the user-space twin of
/// `std::net::UdpSocket`. Message boundaries are kept; a datagram longer
/// than the receive buffer is truncated and its rest discarded, as UDP does.
#[derive(Debug)]
pub struct UsockDatagram {
    h: Handle,
}

impl UsockDatagram {
    /// Binds a datagram socket to `addr` (port 0 picks a free port), trying
    /// each address it resolves to in turn.
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<UsockDatagram> {
        each_addr(addr, |a| Self::bind_in(domain_of(a), &to_sockaddr(a)))
    }

    /// Binds a new datagram socket of the address's own family to `addr`, an
    /// address in `struct sockaddr` layout of any family some backend
    /// carries.
    pub fn bind_sockaddr(addr: &SockAddr) -> io::Result<UsockDatagram> {
        Self::bind_in(addr.family(), addr)
    }

    fn bind_in(domain: i32, addr: &SockAddr) -> io::Result<UsockDatagram> {
        let h = Handle::new(domain, SOCK_DGRAM)?;
        h.sock.bind(addr).map_err(os_err)?;
        Ok(UsockDatagram { h })
    }

    /// A datagram socket of `domain` (`AF_INET`, `AF_INET6`, or another
    /// backend's family) that is not bound yet: the first send or connect
    /// binds it where the backend chooses (an ephemeral port for IP).
    pub fn unbound(domain: i32) -> io::Result<UsockDatagram> {
        Ok(UsockDatagram {
            h: Handle::new(domain, SOCK_DGRAM)?,
        })
    }

    /// Sends one datagram to the first address `addr` resolves to; returns
    /// its length.
    pub fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], addr: A) -> io::Result<usize> {
        let a = addr.to_socket_addrs()?.next().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "no addresses to send data to")
        })?;
        self.send_to_sockaddr(buf, &to_sockaddr(&a))
    }

    /// Sends one datagram to a raw address (any family).
    pub fn send_to_sockaddr(&self, buf: &[u8], addr: &SockAddr) -> io::Result<usize> {
        self.h.send(&[buf], Some(addr))
    }

    /// Receives one datagram and its sender's address. A datagram longer
    /// than `buf` is truncated; its rest is lost.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let (n, a) = self.recv_from_sockaddr(buf)?;
        Ok((n, to_socket_addr(&a)?))
    }

    /// [`UsockDatagram::recv_from`] with the sender's address as raw bytes
    /// (the family's unnamed address when the backend gave none).
    pub fn recv_from_sockaddr(&self, buf: &mut [u8]) -> io::Result<(usize, SockAddr)> {
        self.recv_flags(buf, 0)
    }

    /// Like [`UsockDatagram::recv_from`] but leaves the datagram queued
    /// (MSG_PEEK).
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let (n, a) = self.recv_flags(buf, MSG_PEEK)?;
        Ok((n, to_socket_addr(&a)?))
    }

    fn recv_flags(&self, buf: &mut [u8], flags: i32) -> io::Result<(usize, SockAddr)> {
        let r = self.h.recv(buf, flags)?;
        let a = r
            .addr
            .unwrap_or_else(|| SockAddr::unnamed(self.h.sock.info.domain));
        Ok((r.ret, a))
    }

    /// Sets the default destination: [`UsockDatagram::send`] goes there, and
    /// only datagrams from that address are received (others are dropped).
    pub fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        each_addr(addr, |a| self.connect_sockaddr(&to_sockaddr(a)))
    }

    /// [`UsockDatagram::connect`] with a raw address (any family); an
    /// `AF_UNSPEC` address dissolves the association.
    pub fn connect_sockaddr(&self, addr: &SockAddr) -> io::Result<()> {
        self.h.sock.connect(addr).map_err(os_err)
    }

    /// Sends one datagram to the connected peer; EDESTADDRREQ when not
    /// connected.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.h.send(&[buf], None)
    }

    /// Receives one datagram (from the connected peer, once connected).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.h.recv(buf, 0).map(|r| r.ret)
    }

    /// Like [`UsockDatagram::recv`] but leaves the datagram queued.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.h.recv(buf, MSG_PEEK).map(|r| r.ret)
    }

    /// The local address (with the port chosen for port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        to_socket_addr(&self.h.local_addr())
    }

    /// The connected peer's address; `NotConnected` (ENOTCONN) when not
    /// connected.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        to_socket_addr(&self.h.peer_addr()?)
    }

    /// The local address as raw bytes (any family).
    pub fn local_sockaddr(&self) -> SockAddr {
        self.h.local_addr()
    }

    /// The connected peer's address as raw bytes (any family).
    pub fn peer_sockaddr(&self) -> io::Result<SockAddr> {
        self.h.peer_addr()
    }

    /// Sets or clears O_NONBLOCK: a receive with nothing queued then fails
    /// with `WouldBlock` (EAGAIN).
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.h.set_nonblocking(nonblocking);
        Ok(())
    }

    /// Sets SO_RCVTIMEO: a receive that waits longer fails with
    /// `WouldBlock` (EAGAIN). `None` waits forever; zero is `InvalidInput`.
    pub fn set_read_timeout(&self, dur: Option<Duration>) -> io::Result<()> {
        self.h.set_timeout(SO_RCVTIMEO, dur)
    }

    /// Sets SO_SNDTIMEO.
    pub fn set_write_timeout(&self, dur: Option<Duration>) -> io::Result<()> {
        self.h.set_timeout(SO_SNDTIMEO, dur)
    }

    /// SO_RCVTIMEO; `None` when receives wait forever.
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        self.h.timeout(SO_RCVTIMEO)
    }

    /// SO_SNDTIMEO; `None` when sends wait forever.
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        self.h.timeout(SO_SNDTIMEO)
    }

    /// Another handle to the same socket (like dup()).
    pub fn try_clone(&self) -> io::Result<UsockDatagram> {
        Ok(UsockDatagram {
            h: self.h.try_clone(),
        })
    }

    /// SO_ERROR: the pending error (an ECONNREFUSED reported for a
    /// connected peer that has no socket, for example), cleared by reading.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.h.take_error()
    }

    /// The calls this API does not wrap (options, flags, shutdown of a
    /// listener, ...), in their raw POSIX form.
    pub fn raw(&self) -> RawSocket<'_> {
        RawSocket::new(&self.h.sock)
    }
}

//! [`UsockStream`]: a connected stream socket.

use alloc::sync::Arc;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use super::{domain_of, each_addr, os_err, to_sockaddr, to_socket_addr, Handle, RawSocket};
use crate::addr::SockAddr;
use crate::consts::*;
use crate::socket::options::OptVal;
use crate::socket::Socket;

/// A connected stream socket (TCP-like), the user-space twin of
/// `std::net::TcpStream`.
///
/// Reads and writes go through `std::io::Read` and `std::io::Write`, which
/// are implemented both for `UsockStream` and for `&UsockStream`, so one
/// thread may read while another writes. Dropping the last handle (see
/// [`UsockStream::try_clone`]) closes the socket: the peer reads end of
/// stream, or gets ECONNRESET if data sent to this socket was left unread.
#[derive(Debug)]
pub struct UsockStream {
    h: Handle,
}

impl UsockStream {
    /// Connects to `addr`, trying each address it resolves to in turn.
    /// Blocks until the connection is established or refused
    /// (`ErrorKind::ConnectionRefused` when nothing listens there).
    pub fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<UsockStream> {
        each_addr(addr, |a| Self::connect_in(domain_of(a), &to_sockaddr(a)))
    }

    /// Connects a new stream socket of the address's own family to `addr`,
    /// an address in `struct sockaddr` layout of any family some backend
    /// carries.
    pub fn connect_sockaddr(addr: &SockAddr) -> io::Result<UsockStream> {
        Self::connect_in(addr.family(), addr)
    }

    fn connect_in(domain: i32, addr: &SockAddr) -> io::Result<UsockStream> {
        let h = Handle::new(domain, SOCK_STREAM)?;
        h.sock.connect(addr).map_err(os_err)?;
        Ok(UsockStream { h })
    }

    /// Wraps a socket returned by the core's accept, taking over the one
    /// reference it holds.
    pub(crate) fn adopt(sock: Arc<Socket>) -> UsockStream {
        UsockStream {
            h: Handle::adopt(sock),
        }
    }

    /// The calls this API does not wrap (options, flags, shutdown of a
    /// listener, ...), in their raw POSIX form.
    pub fn raw(&self) -> RawSocket<'_> {
        RawSocket::new(&self.h.sock)
    }

    /// The local address, as getsockname() reports it.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        to_socket_addr(&self.h.local_addr())
    }

    /// The peer's address, as getpeername() reports it; `NotConnected`
    /// (ENOTCONN) when not connected.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        to_socket_addr(&self.h.peer_addr()?)
    }

    /// The local address as raw bytes (any family).
    pub fn local_sockaddr(&self) -> SockAddr {
        self.h.local_addr()
    }

    /// The peer's address as raw bytes (any family).
    pub fn peer_sockaddr(&self) -> io::Result<SockAddr> {
        self.h.peer_addr()
    }

    /// Shuts down the read side, the write side (the peer reads end of
    /// stream) or both. Threads blocked on the socket are woken.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        let how = match how {
            Shutdown::Read => SHUT_RD,
            Shutdown::Write => SHUT_WR,
            Shutdown::Both => SHUT_RDWR,
        };
        self.h.sock.shutdown(how).map_err(os_err)
    }

    /// Another handle to the same socket (like dup()): the socket closes
    /// when the last handle is dropped.
    pub fn try_clone(&self) -> io::Result<UsockStream> {
        Ok(UsockStream {
            h: self.h.try_clone(),
        })
    }

    /// Sets or clears O_NONBLOCK: a read or write that would block then
    /// fails with `ErrorKind::WouldBlock` (EAGAIN).
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.h.set_nonblocking(nonblocking);
        Ok(())
    }

    /// Sets SO_RCVTIMEO: a read that waits longer fails with
    /// `ErrorKind::WouldBlock` (EAGAIN, as on Linux). `None` waits forever;
    /// a zero duration is `InvalidInput`, as in `std`.
    pub fn set_read_timeout(&self, dur: Option<Duration>) -> io::Result<()> {
        self.h.set_timeout(SO_RCVTIMEO, dur)
    }

    /// Sets SO_SNDTIMEO, the write-side twin of
    /// [`UsockStream::set_read_timeout`].
    pub fn set_write_timeout(&self, dur: Option<Duration>) -> io::Result<()> {
        self.h.set_timeout(SO_SNDTIMEO, dur)
    }

    /// SO_RCVTIMEO; `None` when reads wait forever.
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        self.h.timeout(SO_RCVTIMEO)
    }

    /// SO_SNDTIMEO; `None` when writes wait forever.
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        self.h.timeout(SO_SNDTIMEO)
    }

    /// Reads without consuming (MSG_PEEK): the next read returns the same
    /// bytes.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.h.recv(buf, MSG_PEEK).map(|r| r.ret)
    }

    /// Sets TCP_NODELAY (stored and reported; the core never delays sends).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.h.set_int(IPPROTO_TCP, TCP_NODELAY, nodelay as i32)
    }

    /// TCP_NODELAY as set.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.h.get_int(IPPROTO_TCP, TCP_NODELAY).map(|v| v != 0)
    }

    /// Sets SO_LINGER. `Some(Duration::ZERO)` makes dropping the last handle
    /// reset the connection (the peer gets ECONNRESET) instead of ending it.
    pub fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        let (on, secs) = match linger {
            None => (0i32, 0i32),
            Some(d) => (1, i32::try_from(d.as_secs()).unwrap_or(i32::MAX)),
        };
        let mut v = [0u8; 8];
        v[..4].copy_from_slice(&on.to_ne_bytes());
        v[4..].copy_from_slice(&secs.to_ne_bytes());
        self.h.setsockopt(SOL_SOCKET, SO_LINGER, &v)
    }

    /// SO_LINGER as set; `None` when off.
    pub fn linger(&self) -> io::Result<Option<Duration>> {
        match self.h.getsockopt(SOL_SOCKET, SO_LINGER)? {
            OptVal::Linger(0, _) => Ok(None),
            OptVal::Linger(_, s) => Ok(Some(Duration::from_secs(s.max(0) as u64))),
            _ => Err(os_err(EINVAL)),
        }
    }

    /// SO_ERROR: the pending error, if any, cleared by reading it.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.h.take_error()
    }
}

impl Read for &UsockStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.h.recv(buf, 0).map(|r| r.ret)
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.h.recv_vectored(bufs, 0)
    }
}

impl Read for UsockStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        (&*self).read_vectored(bufs)
    }
}

impl Write for &UsockStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.h.send(&[buf], None)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let v: Vec<&[u8]> = bufs.iter().map(|b| &**b).collect();
        self.h.send(&v, None)
    }

    /// Nothing to flush: a write hands its bytes to the backend before it
    /// returns.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for UsockStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        (&*self).write_vectored(bufs)
    }

    /// Nothing to flush (see the `&UsockStream` impl).
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

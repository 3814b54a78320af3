//! One kernel socket of the transport (a connection, a port, a link) and
//! how frames go out on it.
#![deny(unsafe_code)]

use alloc::collections::VecDeque;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::envelope::{self, Msg};
use super::state::ConnState;
use super::*;
use crate::backend::contract::*;
use crate::backend::wire;
use crate::consts::*;
use crate::sync::Mutex;

/// How a read of a kernel socket's frames ended.
pub(super) enum ReadEnd {
    /// Nothing more to read now.
    Again,
    /// The connection was already removed (by another thread).
    Gone,
    /// The peer closed, or the socket failed.
    Closed,
    /// A malformed frame, or one its handler refused.
    Bad,
    /// The handler has no room for the next frame now.
    Full,
}

/// What a kernel fd watched by the transport thread is for.
pub(super) enum Role {
    /// A listening stream port.
    Listener,
    /// A stream connection.
    Stream,
    /// A datagram port: a listener for links from senders.
    Dgram,
    /// A link from a sender to one of our datagram ports.
    DgramIn,
    /// A link to another socket's datagram port (read only to see it end).
    DgramOut,
}

/// One kernel socket of the transport.
pub(super) struct Conn {
    pub(super) kfd: i32,
    pub(super) role: Role,
    /// The port of a datagram socket, with its family space
    /// (`ports::port_key`; 0 for the others).
    pub(super) port: u32,
    /// The frontend socket it serves (0 until known, for an accepted one).
    pub(super) handle: AtomicU64,
    /// The listener an accepted connection came through.
    pub(super) listener: SockHandle,
    /// The backend state of the socket it serves (set with `handle`), and
    /// of the listener an accepted connection came through: the backend's
    /// own record of its sockets, so that a frame names no frontend table.
    pub(super) sock: Mutex<Weak<XSock>>,
    pub(super) listener_sock: Weak<XSock>,
    /// Bytes the kernel has not taken yet.
    pub(super) out: Mutex<VecDeque<u8>>,
    /// A link's senders turned away for want of room: told when the
    /// kernel socket takes bytes again (`upcall::writable`).
    pub(super) blocked: Mutex<Vec<SockHandle>>,
    /// Bytes read but not yet a whole frame (transport thread only).
    pub(super) inbuf: Mutex<Vec<u8>>,
    /// Its life and who reads its input (see `state`).
    pub(super) state: ConnState,
    /// The events the transport's epoll set watches (0: not in it).
    pub(super) watching: AtomicU32,
    /// AF_UNIX: the peer's credentials from its CRED message, until the
    /// socket they belong to is known (HELLO, ACCEPT).
    pub(super) cred: Mutex<Option<PeerCred>>,
    /// AF_UNIX: the process at the other end (its CRED for a connection,
    /// the kernel's SO_PEERCRED for a datagram link): the sender whose
    /// credentials a receiver with SO_PASSCRED reads
    /// (`upcall::deliver_from`).
    pub(super) sender: crate::sync::SetOnce<PeerCred>,
    /// AF_UNIX: the client's token for the connection (see `envelope`).
    pub(super) token: Mutex<u64>,
    /// AF_UNIX: the other end's connection when it is in this process,
    /// read after each write here so that a send is in its receiver's
    /// buffer when it returns, as on Linux (see `unix::pump_twin`).
    pub(super) twin: Mutex<Weak<Conn>>,
    /// The end of the stream bytes received so far (where an end-of-file
    /// the peer could not send goes, see `Transport::lost`).
    pub(super) rx_end: AtomicU64,
    /// A datagram port's links from senders, in the order they were
    /// accepted (closed ones are dropped lazily): a thread waiting on a
    /// socket of the port reads one of them itself (`direct_link`).
    pub(super) links: Mutex<Vec<Arc<Conn>>>,
    /// A link program threads read (`direct_link`): how often they did,
    /// or were asked to, and that count at the transport's last look
    /// (`Transport::reclaim_direct`). A count, not a time: no clock read
    /// per datagram.
    pub(super) pumps: AtomicU64,
    pub(super) pumps_seen: AtomicU64,
}

impl Conn {
    pub(super) fn handle(&self) -> SockHandle {
        SockHandle(self.handle.load(Ordering::Acquire))
    }

    /// Sends a frame's parts (header, address, payload) with one gather
    /// write, without blocking; what the kernel cannot take is queued and
    /// the transport thread flushes it.
    pub(super) fn send(&self, t: &Transport, parts: &[&[u8]]) -> Result<(), Errno> {
        // The queue's lock also guards the kernel fd's life: `remove` closes
        // it under this lock, so a send never reaches a number the kernel
        // has already given to another connection.
        let mut out = self.out.lock();
        if self.state.is_closed() {
            return Err(EPIPE);
        }
        let off = self.write_now(&out, parts)?;
        self.queue_rest(t, &mut out, parts, off);
        Ok(())
    }

    /// Writes what the kernel takes of `parts` now, unless queued bytes
    /// must go first; returns how many went. Called with `out` locked.
    fn write_now(&self, out: &VecDeque<u8>, parts: &[&[u8]]) -> Result<usize, Errno> {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let mut off = 0;
        if out.is_empty() {
            while off < total {
                match send_gather(self.kfd, parts, off) {
                    Ok(n) => off += n,
                    Err(EAGAIN) => break,
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(off)
    }

    /// Queues what is left of `parts` after the first `off` bytes, for the
    /// transport thread to flush. Called with `out` locked.
    fn queue_rest(&self, t: &Transport, out: &mut VecDeque<u8>, parts: &[&[u8]], off: usize) {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if off >= total {
            return;
        }
        let mut skip = off;
        for p in parts {
            let from = skip.min(p.len());
            out.extend(&p[from..]);
            skip -= from;
        }
        t.watch_out(self, true);
    }

    /// Sends fragment `f` as a DATA message (see `envelope`).
    pub(super) fn frame(&self, t: &Transport, f: &wire::Fragment<'_>) -> Result<(), Errno> {
        let hdr = envelope::data_header(f)?;
        self.send(t, &[&hdr, f.addr, f.payload])
    }

    /// Sends a datagram's frame on a link, straight into its kernel socket
    /// (sized by [`DGRAM_LINK_SNDBUF`]). When none of it fits (the
    /// receiver is slow, or paused), or the rest of an earlier frame still
    /// waits, the datagram gets `EAGAIN` and its sender is told when there
    /// is room (`upcall::writable`, from `flush`): the frontend makes a
    /// blocking sender wait and offer it again, a non-blocking one sees
    /// EAGAIN, as a UDP socket whose send buffer is full. A frame begun is
    /// ended (its rest waits in the queue), and the later fragments of a
    /// datagram larger than one fragment always go: no datagram is cut.
    pub(super) fn datagram(
        &self,
        t: &Transport,
        from: SockHandle,
        first: bool,
        parts: &[&[u8]],
    ) -> Result<(), Errno> {
        if !first {
            return self.send(t, parts);
        }
        // Under the queue's lock, as `flush` looks at the queue: a sender
        // turned away is always woken once there is room.
        let mut out = self.out.lock();
        if self.state.is_closed() {
            return Err(EPIPE);
        }
        let off = self.write_now(&out, parts)?;
        if off == 0 {
            let mut b = self.blocked.lock();
            if !b.contains(&from) {
                b.push(from);
            }
            drop(b);
            t.watch_out(self, true);
            return Err(EAGAIN);
        }
        // A frame begun is ended: its rest waits (nothing, if all went).
        self.queue_rest(t, &mut out, parts, off);
        Ok(())
    }

    /// Sends control message `m` (HELLO, ACCEPT, WINDOW).
    pub(super) fn control(&self, t: &Transport, m: &Msg<'_>) -> Result<(), Errno> {
        let (b, len) = envelope::control(m)?;
        self.send(t, &[&b[..len]])
    }

    /// Queues a control message without sending it: it leaves at the next
    /// [`Transport::flush`], and every message sent meanwhile goes after it.
    /// (ACCEPT: the accepted socket must join its listener's queue before
    /// the client can see its connect complete, and the program may write
    /// on it as soon as it has.)
    pub(super) fn control_queued(&self, t: &Transport, m: &Msg<'_>) -> Result<(), Errno> {
        let (b, len) = envelope::control(m)?;
        let mut out = self.out.lock();
        if self.state.is_closed() {
            return Err(EPIPE);
        }
        self.queue_rest(t, &mut out, &[&b[..len]], 0);
        Ok(())
    }
}

impl Conn {
    pub(super) fn new(kfd: i32, role: Role, handle: SockHandle, listener: SockHandle) -> Conn {
        Conn {
            kfd,
            role,
            port: 0,
            handle: AtomicU64::new(handle.0),
            listener,
            sock: Mutex::new(Weak::new()),
            listener_sock: Weak::new(),
            out: Mutex::new(VecDeque::new()),
            blocked: Mutex::new(Vec::new()),

            inbuf: Mutex::new(Vec::new()),
            state: ConnState::new(),
            watching: AtomicU32::new(0),
            cred: Mutex::new(None),
            sender: crate::sync::SetOnce::new(),
            token: Mutex::new(0),
            twin: Mutex::new(Weak::new()),
            rx_end: AtomicU64::new(0),
            links: Mutex::new(Vec::new()),
            pumps: AtomicU64::new(0),
            pumps_seen: AtomicU64::new(0),
        }
    }
}

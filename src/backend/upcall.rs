//! Upcalls: how a backend hands fragments and events to the frontend.
//!
//! Each takes the socket's handle; a handle whose socket is gone (closed, or
//! its slot reused) gets `EBADF` and changes nothing. Upcalls take only
//! short locks and may be called from any thread, including from inside a
//! backend operation.
//!
//! They reach the frontend through [`Frontend`], a narrow handle the
//! frontend installs when it makes its first socket: a backend names
//! nothing of the frontend but these functions.

use super::contract::{DgramAttrs, Errno, Fragment, PeerCred, SockHandle, SockState};
use crate::addr::SockAddr;
use crate::consts::EBADF;
use crate::sync::SetOnce;

/// What the frontend does for each upcall (implemented by the socket
/// layer; a backend calls the free functions below, never this).
pub trait Frontend: Send + Sync {
    /// See [`deliver`].
    fn deliver(&self, h: SockHandle, frag: &Fragment<'_>) -> Result<(), Errno>;
    /// See [`deliver_attrs`]. A frontend that keeps no attributes
    /// delivers the fragment alone.
    fn deliver_attrs(
        &self,
        h: SockHandle,
        frag: &Fragment<'_>,
        _attrs: &DgramAttrs,
    ) -> Result<(), Errno> {
        self.deliver(h, frag)
    }
    /// See [`deliver_scm`]. A frontend that keeps no attachments
    /// delivers the fragment alone.
    fn deliver_scm(&self, h: SockHandle, frag: &Fragment<'_>, _scm: u64) -> Result<(), Errno> {
        self.deliver(h, frag)
    }
    /// See [`incoming`].
    fn incoming(&self, listener: SockHandle, state: SockState) -> Result<SockHandle, Errno>;
    /// See [`connected`].
    fn connected(&self, h: SockHandle) -> Result<(), Errno>;
    /// See [`refused`].
    fn refused(&self, h: SockHandle, err: Errno) -> Result<(), Errno>;
    /// See [`reset`].
    fn reset(&self, h: SockHandle, err: Errno) -> Result<(), Errno>;
    /// See [`credit`].
    fn credit(&self, h: SockHandle, limit: u64) -> Result<(), Errno>;
    /// See [`writable`].
    fn writable(&self, h: SockHandle) -> Result<(), Errno>;
    /// See [`window`].
    fn window(&self, h: SockHandle) -> Result<u64, Errno>;
    /// See [`error`].
    fn error(&self, h: SockHandle, err: Errno) -> Result<(), Errno>;
    /// See [`hangup`].
    fn hangup(&self, h: SockHandle) -> Result<(), Errno>;
    /// See [`unreachable`]. A frontend without an error queue reports it
    /// as [`error`] on a connected socket.
    fn unreachable(&self, _h: SockHandle, _dest: &SockAddr, _payload: &[u8]) {}
    /// See [`takes_group`]. A frontend that keeps no memberships takes
    /// every such datagram.
    fn takes_group(&self, _h: SockHandle, _dest: &SockAddr) -> bool {
        true
    }
    /// See [`takes_group_from`]. A frontend without source filters answers
    /// as [`takes_group`].
    fn takes_group_from(&self, h: SockHandle, dest: &SockAddr, _src: &SockAddr) -> bool {
        self.takes_group(h, dest)
    }
    /// See [`held`]. A frontend that cannot tell says `EOPNOTSUPP`.
    fn held(&self, _h: SockHandle) -> Result<u64, Errno> {
        Err(crate::consts::EOPNOTSUPP)
    }
    /// See [`deliver_from`]. A frontend without credentials delivers the
    /// fragment alone.
    fn deliver_from(
        &self,
        h: SockHandle,
        frag: &Fragment<'_>,
        _sender: PeerCred,
    ) -> Result<(), Errno> {
        self.deliver(h, frag)
    }
    /// See [`scm_drop`]. A frontend that stages nothing has nothing to drop.
    fn scm_drop(&self, _scm: u64) {}
    /// See [`peer_cred`]. A frontend without SO_PEERCRED ignores it.
    fn peer_cred(&self, _h: SockHandle, _cred: PeerCred) -> Result<(), Errno> {
        Ok(())
    }
}

static FRONTEND: SetOnce<&'static dyn Frontend> = SetOnce::new();

/// Installs the frontend the upcalls reach (the socket layer does, once;
/// later calls change nothing).
pub fn install(f: &'static dyn Frontend) {
    if FRONTEND.get().is_none() {
        let _ = FRONTEND.set(f);
    }
}

/// The installed frontend: none before the first socket, when no handle
/// can name a socket anyway.
fn frontend() -> Result<&'static dyn Frontend, Errno> {
    FRONTEND.get().copied().ok_or(EBADF)
}

/// A fragment for socket `h`. Stream bytes must lie below the receiver's
/// window end; a FIN flag marks end-of-stream after the fragment's bytes; an
/// RST flag resets the connection. `Err(ENOBUFS)` when the Socket Buffer
/// cannot take the fragment now (offer it again after the window grows),
/// `Err(EINVAL)` when it is malformed.
pub fn deliver(h: SockHandle, frag: &Fragment<'_>) -> Result<(), Errno> {
    frontend()?.deliver(h, frag)
}

/// [`deliver`] for an IP datagram fragment, with the header fields its
/// receiver may ask about (`crate::backend::attrs`): the destination the
/// sender used, its TOS and TTL. The fragment that completes a datagram
/// gives the datagram its attributes.
pub fn deliver_attrs(h: SockHandle, frag: &Fragment<'_>, attrs: &DgramAttrs) -> Result<(), Errno> {
    frontend()?.deliver_attrs(h, frag, attrs)
}

/// [`deliver`] of the first fragment of an AF_UNIX message, with what the
/// sender attached (`scm`, from
/// [`Backend::write_scm`](crate::backend::contract::Backend::write_scm);
/// 0: nothing): the receiving frontend takes it over, queued with the
/// message's first byte, and adds the credentials Linux attaches.
pub fn deliver_scm(h: SockHandle, frag: &Fragment<'_>, scm: u64) -> Result<(), Errno> {
    frontend()?.deliver_scm(h, frag, scm)
}

/// A connection request reached listener `listener`: creates the socket that
/// accept() will return, carried by the same backend with `state`, and
/// returns its handle. It becomes acceptable when the backend calls
/// [`connected`] on it. `Err(EAGAIN)` when the accept queue is full (ask
/// again after [`crate::backend::contract::Backend::accepted`]),
/// `Err(ECONNREFUSED)` when the socket is not listening.
pub fn incoming(listener: SockHandle, state: SockState) -> Result<SockHandle, Errno> {
    frontend()?.incoming(listener, state)
}

/// The connection of socket `h` is established: a connect() completes, or an
/// accepted-side socket joins its listener's accept queue.
pub fn connected(h: SockHandle) -> Result<(), Errno> {
    frontend()?.connected(h)
}

/// The connect() of socket `h` failed with `err` (ECONNREFUSED, ETIMEDOUT,
/// ENETUNREACH, ...). For an accepted-side socket not yet established, drops
/// it.
pub fn refused(h: SockHandle, err: Errno) -> Result<(), Errno> {
    frontend()?.refused(h, err)
}

/// The connection of socket `h` was reset: data already in order is still
/// read, then recv() and send() report `err` once (ECONNRESET, or EPIPE when
/// the peer had already closed), then ENOTCONN / EPIPE. A reset that comes
/// while a connect still waits for its outcome ends it with ECONNREFUSED.
pub fn reset(h: SockHandle, err: Errno) -> Result<(), Errno> {
    frontend()?.reset(h, err)
}

/// Socket `h` may send stream bytes below absolute offset `limit`.
pub fn credit(h: SockHandle, limit: u64) -> Result<(), Errno> {
    frontend()?.credit(h, limit)
}

/// Datagram socket `h`, turned away from `Backend::write` with `EAGAIN`,
/// may send again: a blocked sender offers its datagram now.
pub fn writable(h: SockHandle) -> Result<(), Errno> {
    frontend()?.writable(h)
}

/// The receive window end of socket `h`: what a backend may deliver up to
/// (a datagram socket: how many datagrams it holds).
pub fn window(h: SockHandle) -> Result<u64, Errno> {
    frontend()?.window(h)
}

/// The stream bytes socket `h` holds unread (its SIOCINQ): what its peer
/// sent and it has not read, for the peer's SIOCOUTQ (`Backend::unread`).
pub fn held(h: SockHandle) -> Result<u64, Errno> {
    frontend()?.held(h)
}

/// An asynchronous error for socket `h` (an ICMP-like "port unreachable" on
/// a connected datagram socket): the next send or receive reports it once.
pub fn error(h: SockHandle, err: Errno) -> Result<(), Errno> {
    frontend()?.error(h, err)
}

/// A datagram socket `h` sent to `dest` found nobody there: the ICMP "port
/// unreachable" a kernel would get back, with the datagram's first bytes
/// (`payload`). The frontend decides what the program sees: an entry on
/// the error queue under IP_RECVERR, ECONNREFUSED from the next call of a
/// connected socket, nothing otherwise (udp_err).
pub fn unreachable(h: SockHandle, dest: &SockAddr, payload: &[u8]) {
    if let Ok(f) = frontend() {
        f.unreachable(h, dest, payload);
    }
}

/// The peer of socket `h` is gone for good (AF_UNIX semantics): no more data
/// either way; sends fail with EPIPE, poll reports POLLHUP.
pub fn hangup(h: SockHandle) -> Result<(), Errno> {
    frontend()?.hangup(h)
}

/// A datagram sent to `dest`, a multicast or broadcast address, reached
/// socket `h` (bound to its port, at the wildcard or at `dest` itself):
/// whether `h` takes it, as Linux's `__udp_is_mcast_sock` and
/// `ip_mc_sf_allow` decide (a member of the group, or not a member with
/// IP_MULTICAST_ALL on while this host is; every socket for a broadcast).
/// A backend fans such a datagram out to every socket of the port it
/// reaches and calls [`deliver`] for those that take it; memberships stay
/// the frontend's. `false` for a socket that is gone.
pub fn takes_group(h: SockHandle, dest: &SockAddr) -> bool {
    frontend().is_ok_and(|f| f.takes_group(h, dest))
}

/// [`takes_group`] from a backend that knows the datagram's source `src`:
/// a member's source filter (IP_ADD_SOURCE_MEMBERSHIP, IP_BLOCK_SOURCE,
/// ...) decides too, as Linux's `ip_mc_sf_allow`.
pub fn takes_group_from(h: SockHandle, dest: &SockAddr, src: &SockAddr) -> bool {
    frontend().is_ok_and(|f| f.takes_group_from(h, dest, src))
}

/// The peer of AF_UNIX socket `h` is the process `cred` describes (see
/// [`PeerCred`] for which process and as of when): what SO_PEERCRED
/// reports. A backend calls it when it makes the association (at
/// connect, accept or socketpair), before [`connected`] for a connection,
/// so that the program never sees a connected socket without it.
pub fn peer_cred(h: SockHandle, cred: PeerCred) -> Result<(), Errno> {
    frontend()?.peer_cred(h, cred)
}

/// [`deliver`] of an AF_UNIX fragment that another process sent, from a
/// backend that knows who sent it (its connection's or link's peer) but
/// carries nothing else with it: the receiving frontend attaches `sender`
/// as SCM_CREDENTIALS where a receiver with SO_PASSCRED asks for them, as
/// Linux attaches the sending process's credentials.
pub fn deliver_from(h: SockHandle, frag: &Fragment<'_>, sender: PeerCred) -> Result<(), Errno> {
    frontend()?.deliver_from(h, frag, sender)
}

/// What an AF_UNIX message carried (`Backend::write_scm`'s `scm`) will
/// never be delivered: the backend lost the message (its connection went
/// away with it unread). The frontend closes the fds it held for it.
pub fn scm_drop(scm: u64) {
    if let Ok(f) = frontend() {
        f.scm_drop(scm);
    }
}

/// What [`listing`] answers, installed by the layer that knows the fd
/// table (the C ABI's, before its first socket).
static LISTING: SetOnce<fn() -> alloc::string::String> = SetOnce::new();

/// Installs the function behind [`listing`] (once; later calls change
/// nothing).
pub fn install_listing(f: fn() -> alloc::string::String) {
    if LISTING.get().is_none() {
        let _ = LISTING.set(f);
    }
}

/// This process's user-space sockets, one line per fd, in the format
/// `socket::listing` writes (for a backend that serves the socket listing
/// of its network, `usockstat`); empty when nothing installed a lister.
pub fn listing() -> alloc::string::String {
    LISTING.get().map(|f| f()).unwrap_or_default()
}

//! A connection end's anchor (SHARED.md): the kernel AF_UNIX
//! `SOCK_SEQPACKET` socket at the program's fd number. Over it, once per
//! connection, the connecting end hands the accepting end the segment
//! ([`offer`], [`take_offer`]); afterwards it carries only doorbells
//! ([`ring_bell`]) for a peer asleep in poll/epoll. Its hangup is how an
//! end learns that every holder of the other end has closed it or died
//! ([`peer_gone`]): the kernel counts the holders.

use super::segment::Segment;
use crate::consts::*;
use crate::platform::anchor_ipc;

/// The first bytes of an offer's body: this protocol, version 1.
pub const OFFER_MAGIC: &[u8; 4] = b"USH1";

/// How long an accepting end waits for the offer of a connection the
/// kernel already accepted; a connecting end that has not offered by then
/// breaks the protocol (EPROTO).
pub const OFFER_WAIT_MS: i32 = 1000;

/// Sends the segment (its memfd) and `body` (what the accepting end needs
/// besides the rings: the connecting end's addresses...) over the freshly
/// connected anchor `kfd`. The caller closes `seg_fd` afterwards: the
/// message holds its own reference until received.
pub fn offer(kfd: i32, seg_fd: i32, body: &[u8]) -> Result<(), Errno> {
    let mut msg = alloc::vec::Vec::with_capacity(OFFER_MAGIC.len() + body.len());
    msg.extend_from_slice(OFFER_MAGIC);
    msg.extend_from_slice(body);
    anchor_ipc::send_with_fds(kfd, &msg, &[seg_fd]).map(|_| ())
}

/// Receives the offer on accepted anchor `kfd`: maps its segment and copies
/// its body into `body`, returning the body's length. The peer must run as
/// this user; the message must carry this protocol's magic and exactly one
/// fd, a segment that [`Segment::attach`] accepts, within [`OFFER_WAIT_MS`].
/// EPROTO otherwise (the caller drops the connection), EACCES for a user
/// outside the network's (and not root), ECONNRESET when the peer left before offering.
pub fn take_offer(kfd: i32, body: &mut [u8]) -> Result<(Segment, usize), Errno> {
    let (seg, n, fd) = take_offer_keep(kfd, body)?;
    crate::platform::kfd_close(fd).ok();
    Ok((seg, n))
}

/// [`take_offer`], keeping the segment's memfd (close-on-exec, at a high
/// number) for the caller, who may hand it on across exec or with
/// SCM_RIGHTS.
pub fn take_offer_keep(kfd: i32, body: &mut [u8]) -> Result<(Segment, usize, i32), Errno> {
    let (_, uid, _) = crate::platform::unix_ipc::peer_cred(kfd).ok_or(ENOTCONN)?;
    // The network's users (this one, USOCK_NET_USERS), and root, who
    // reaches every directory anyway: a daemon's worker that dropped to
    // another user accepts on the listener its root master made.
    if uid != 0 && !crate::platform::unix_ipc::peer_is_us(kfd) {
        return Err(EACCES);
    }
    let mut msg = alloc::vec![0u8; OFFER_MAGIC.len() + body.len()];
    let mut fds = [-1i32; 2];
    // The connecting end offers right after its connect(), which the
    // kernel completes before accept() returns here: the offer is there
    // already, or at most a moment behind, whatever the anchor's
    // O_NONBLOCK says.
    let (n, nfds) = match anchor_ipc::recv_with_fds(kfd, &mut msg, &mut fds, libc::MSG_DONTWAIT) {
        Err(EAGAIN) => {
            let state = anchor_ipc::anchor_poll(kfd, true, OFFER_WAIT_MS)?;
            if !state.readable {
                return Err(if state.hung_up { ECONNRESET } else { EPROTO });
            }
            anchor_ipc::recv_with_fds(kfd, &mut msg, &mut fds, libc::MSG_DONTWAIT)?
        }
        r => r?,
    };
    let close_all = |fds: &[i32]| {
        for &fd in fds {
            crate::platform::kfd_close(fd).ok();
        }
    };
    if n == 0 && nfds == 0 {
        return Err(ECONNRESET);
    }
    if nfds != 1 || n < OFFER_MAGIC.len() || &msg[..OFFER_MAGIC.len()] != OFFER_MAGIC {
        close_all(&fds[..nfds]);
        return Err(EPROTO);
    }
    let seg = match Segment::attach(fds[0]) {
        Ok(s) => s,
        Err(e) => {
            close_all(&fds[..1]);
            return Err(e);
        }
    };
    let len = n - OFFER_MAGIC.len();
    body[..len].copy_from_slice(&msg[OFFER_MAGIC.len()..n]);
    Ok((seg, len, anchor_ipc::keep(fds[0])))
}

/// Makes the peer's anchor readable, for a peer asleep in poll/epoll on
/// it. At most one doorbell is ever needed per sleep; a full queue already
/// holds one.
pub fn ring_bell(kfd: i32) {
    anchor_ipc::ring_bell(kfd);
}

/// Takes every waiting doorbell off anchor `kfd` (non-blocking); true when
/// there was at least one.
pub fn drain_bells(kfd: i32) -> bool {
    drain_bells_or_eof(kfd).0
}

/// [`drain_bells`], also telling whether the anchor read end-of-file (a
/// doorbell is one byte, so an empty read is the peer's last holder gone):
/// the hangup comes for free with the drain.
pub fn drain_bells_or_eof(kfd: i32) -> (bool, bool) {
    let (n, eof) = anchor_ipc::drain_messages(kfd);
    (n > 0, eof)
}

/// Whether every holder of the other end's anchor has closed it or died,
/// waiting up to `ms` milliseconds for that (0: look only).
pub fn peer_gone(kfd: i32, ms: i32) -> bool {
    anchor_ipc::anchor_poll(kfd, false, ms).map_or(true, |s| s.hung_up)
}

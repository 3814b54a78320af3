//! AF_UNIX control messages: a sendmsg's SCM_RIGHTS and SCM_CREDENTIALS
//! read as Linux's `__scm_send` reads them, the credentials the receiver
//! gets (`unix_maybe_add_creds`), and SO_PEERCRED's record.
//!
//! The fds themselves are the kernel's business: the C edge sends the
//! control buffer into a carrier (`platform::scm`), which validates it as
//! the kernel validates a kernel socket's; what is parsed here decides
//! whether a carrier is needed and which fds are our sockets.

use alloc::vec::Vec;

use super::inflight::{self, Attach, Cred};
use super::{Rx, Socket};
use crate::backend::contract::{Errno, Fragment, PeerCred};
use crate::backend::wire::{FragKind, FLAG_EOR};
use crate::consts::*;

/// SO_PASSCRED.
pub const SO_PASSCRED: i32 = 16;
/// SO_PEERCRED.
pub const SO_PEERCRED: i32 = 17;
/// SO_PASSSEC.
pub const SO_PASSSEC: i32 = 34;
/// SO_PASSPIDFD (Linux 6.5).
pub const SO_PASSPIDFD: i32 = 76;
/// SO_PEERPIDFD (Linux 6.5).
pub const SO_PEERPIDFD: i32 = 77;
/// SCM_RIGHTS.
pub const SCM_RIGHTS: i32 = 1;
/// SCM_CREDENTIALS.
pub const SCM_CREDENTIALS: i32 = 2;
/// SCM_PIDFD.
pub const SCM_PIDFD: i32 = 4;
/// ENODATA (SO_PEERPIDFD without a peer).
pub const ENODATA: i32 = 61;
/// SCM_MAX_FD: fds one message may pass.
pub const SCM_MAX_FD: usize = 253;
/// A flag recvmsg adds to its receive (never a caller's: Linux refuses
/// MSG_CMSG_COMPAT from user space): the caller takes the message's
/// attachments; any other read drops them.
pub const MSG_TAKES_CONTROL: i32 = i32::MIN;

/// A message's passed fds, as recvmsg installs them.
pub(crate) use super::inflight::Fds as InflightFds;

/// `sizeof(struct cmsghdr)` on LP64 Linux.
const HDR: usize = 16;

/// What a sendmsg's control buffer asks of an AF_UNIX message.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SendScm {
    /// The fds of every SCM_RIGHTS, in order.
    pub rights: Vec<i32>,
    /// SCM_CREDENTIALS's values, if given.
    pub cred: Option<(i32, u32, u32)>,
}

impl SendScm {
    /// Whether the kernel must see the buffer (fds to hold, credentials
    /// to check).
    pub fn needs_carrier(&self) -> bool {
        !self.rights.is_empty() || self.cred.is_some()
    }
}

/// Reads a sendmsg's control buffer as `__scm_send` does (for_each_cmsghdr,
/// CMSG_OK): a header whose length is shorter than a header or runs past
/// the buffer is EINVAL; other levels are ignored; at SOL_SOCKET only
/// SCM_RIGHTS (at most SCM_MAX_FD fds over the message) and
/// SCM_CREDENTIALS (exactly a `struct ucred`) are allowed.
pub fn parse_send(buf: &[u8]) -> Result<SendScm, Errno> {
    let mut out = SendScm::default();
    let mut at = 0usize;
    while buf.len() >= at + HDR {
        let word = |i: usize, n: usize| -> &[u8] { &buf[at + i..at + i + n] };
        let len = u64::from_ne_bytes(word(0, 8).try_into().map_err(|_| EINVAL)?) as usize;
        if len < HDR || len > buf.len() - at {
            return Err(EINVAL);
        }
        let level = i32::from_ne_bytes(word(8, 4).try_into().map_err(|_| EINVAL)?);
        let ty = i32::from_ne_bytes(word(12, 4).try_into().map_err(|_| EINVAL)?);
        let data = &buf[at + HDR..at + len];
        if level == SOL_SOCKET {
            match ty {
                SCM_RIGHTS => {
                    let n = data.len() / 4;
                    if out.rights.len() + n > SCM_MAX_FD {
                        return Err(EINVAL);
                    }
                    out.rights.extend(
                        data.chunks_exact(4)
                            .map(|c| i32::from_ne_bytes([c[0], c[1], c[2], c[3]])),
                    );
                }
                SCM_CREDENTIALS => {
                    if data.len() != 12 {
                        return Err(EINVAL);
                    }
                    let f = |i: usize| [data[i], data[i + 1], data[i + 2], data[i + 3]];
                    out.cred = Some((
                        i32::from_ne_bytes(f(0)),
                        u32::from_ne_bytes(f(4)),
                        u32::from_ne_bytes(f(8)),
                    ));
                }
                _ => return Err(EINVAL),
            }
        }
        at += len.div_ceil(8) * 8;
    }
    Ok(out)
}

impl Socket {
    /// SO_PASSCRED (or SO_PASSPIDFD) on, or not yet accepted: a message
    /// delivered now gets its sender's credentials (`unix_maybe_add_creds`:
    /// a socket with no file yet always does).
    fn wants_cred(&self) -> bool {
        let o = &self.ctl.lock().opts;
        o.passcred() || o.passpidfd() || o.unaccepted()
    }

    /// A message whose attachment is queued apart from the stream offsets
    /// (a datagram, an empty record) by `queue`: delivered with its key,
    /// and given back to the sender (staged under `id`; its implicit
    /// credentials dropped) when the delivery is refused for lack of room.
    fn queue_and_deliver(
        &self,
        a: inflight::Attach,
        explicit: bool,
        id: u64,
        queue: fn(crate::backend::contract::SockHandle, inflight::Attach) -> u64,
        deliver: impl FnOnce(Option<u64>) -> Result<(), Errno>,
    ) -> Result<(), Errno> {
        if a.cred.is_none() && a.fds.is_none() {
            return deliver(None);
        }
        let key = queue(self.handle, a);
        let r = deliver(Some(key));
        if r.is_err() {
            if let Some(mut back) = inflight::unqueue_dgram(self.handle, key) {
                if !explicit {
                    back.cred = None;
                }
                // Nothing was staged for a message from another process:
                // there is nothing to give back.
                if id != 0 {
                    inflight::restage(id, back);
                }
            }
        }
        r
    }

    /// The first fragment of an AF_UNIX message arrived, with what its
    /// sender attached (staged under `id`): the attachment, with the
    /// credentials Linux adds, goes to the queue with the message's first
    /// byte, then the fragment is delivered. A delivery that fails gives
    /// the attachment back to the sender.
    ///
    /// `sender`: the sending process's credentials when it is another
    /// process (`upcall::deliver_from`); in-process, the sender is this
    /// process.
    pub(super) fn deliver_scm_from(
        &self,
        frag: &Fragment<'_>,
        id: u64,
        sender: Option<Cred>,
        deliver: impl FnOnce(Option<u64>) -> Result<(), Errno>,
    ) -> Result<(), Errno> {
        let staged = inflight::unstage(id);
        if self.info.domain != AF_UNIX {
            drop(staged);
            return deliver(None);
        }
        let mut a = staged.unwrap_or_default();
        let explicit = a.cred.is_some();
        if !explicit && self.wants_cred() {
            a.cred = sender.or_else(Cred::own);
        }
        match (self.rx(), frag.header.kind) {
            (Rx::Stream(_), FragKind::Stream)
                if frag.payload.is_empty()
                    && frag.header.flags & FLAG_EOR != 0
                    && self.keeps_records() =>
            {
                // An empty record: its attachment is keyed apart
                // (`records`), not at the offset the next record starts.
                self.queue_and_deliver(a, explicit, id, inflight::queue_record, deliver)
            }
            (Rx::Stream(_), FragKind::Stream) => {
                if !frag.payload.is_empty() {
                    inflight::mark_stream(self.handle, frag.header.offset, a);
                }
                deliver(None)
            }
            (Rx::Dgram(_), FragKind::Dgram) => {
                self.queue_and_deliver(a, explicit, id, inflight::queue_dgram, deliver)
            }
            _ => deliver(None),
        }
    }

    /// An AF_UNIX socket with SO_PASSCRED that has no name gets one at
    /// connect() and sendto() (unix_autobind), so that its peer can tell
    /// who sent: bind() with the family alone.
    pub(super) fn passcred_autobind(&self) {
        if self.info.domain != AF_UNIX || self.has(super::F_BOUND) {
            return;
        }
        if !self.ctl.lock().opts.passcred() {
            return;
        }
        let _ = self.bind(&crate::addr::SockAddr::unnamed(AF_UNIX));
    }

    /// The upcall `peer_cred`: what SO_PEERCRED reports from now on.
    pub(super) fn set_peer_cred(&self, c: PeerCred) {
        self.ctl.lock().opts.set_peer_cred(Some(c));
    }

    /// SO_PEERCRED's `struct ucred`: the peer's, or pid 0 and ids -1 when
    /// the socket has none.
    pub(super) fn peer_cred_bytes(&self) -> [u8; 12] {
        let c = self.ctl.lock().opts.peer_cred().unwrap_or(PeerCred {
            pid: 0,
            uid: u32::MAX,
            gid: u32::MAX,
        });
        Cred {
            pid: c.pid,
            uid: c.uid,
            gid: c.gid,
        }
        .bytes()
    }
}

/// Builds the attachment of a message from what `parse_send` read, the
/// carrier the C edge made (-1: none) and our sockets among the fds
/// (each holding a reference): staged, its id returned (0: nothing).
pub fn stage_send(
    scm: &SendScm,
    carrier: i32,
    socks: Vec<(usize, alloc::sync::Arc<Socket>)>,
) -> u64 {
    let fds = (carrier >= 0).then(|| alloc::sync::Arc::new(inflight::Fds { carrier, socks }));
    let a = Attach {
        cred: scm.cred.map(|(pid, uid, gid)| Cred { pid, uid, gid }),
        fds,
    };
    if a.cred.is_none() && a.fds.is_none() {
        return 0;
    }
    inflight::stage(a)
}

/// The sender's send is over: what no receiver took is dropped.
pub fn send_done(id: u64) {
    drop(inflight::unstage(id));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmsg(level: i32, ty: i32, data: &[u8], len: Option<usize>) -> Vec<u8> {
        let l = len.unwrap_or(HDR + data.len());
        let mut v = Vec::new();
        v.extend_from_slice(&(l as u64).to_ne_bytes());
        v.extend_from_slice(&level.to_ne_bytes());
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(data);
        while v.len() % 8 != 0 {
            v.push(0);
        }
        v
    }

    #[test]
    fn send_cmsgs_read_as_scm_send() {
        let fds: Vec<u8> = [3i32, 4].iter().flat_map(|f| f.to_ne_bytes()).collect();
        let s = parse_send(&cmsg(SOL_SOCKET, SCM_RIGHTS, &fds, None)).unwrap();
        assert_eq!(s.rights, [3, 4]);
        assert!(s.needs_carrier());
        assert_eq!(parse_send(&cmsg(SOL_SOCKET, 99, &fds, None)), Err(EINVAL));
        assert_eq!(
            parse_send(&cmsg(SOL_SOCKET, SCM_RIGHTS, &fds, Some(15))),
            Err(EINVAL)
        );
        assert_eq!(
            parse_send(&cmsg(SOL_SOCKET, SCM_RIGHTS, &fds, Some(64))),
            Err(EINVAL)
        );
        assert!(!parse_send(&cmsg(IPPROTO_IP, 1, &fds, None))
            .unwrap()
            .needs_carrier());
        assert_eq!(
            parse_send(&cmsg(SOL_SOCKET, SCM_CREDENTIALS, &fds, None)),
            Err(EINVAL)
        );
        // Shorter than a header: no message at all.
        assert_eq!(parse_send(&[0u8; 15]), Ok(SendScm::default()));
        let many = alloc::vec![0u8; 4 * 254];
        assert_eq!(
            parse_send(&cmsg(SOL_SOCKET, SCM_RIGHTS, &many, None)),
            Err(EINVAL)
        );
    }
}

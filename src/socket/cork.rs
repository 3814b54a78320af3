//! TCP_CORK and MSG_MORE: partial segments held back in the send path.
//!
//! Linux holds a corked socket's partial segment until the cork comes off,
//! the segment fills (the MSS), TCP_NODELAY is set, the write side shuts,
//! or 200 ms pass (tcp(7)); MSG_MORE holds the same way for one send. A
//! program that corks means "these writes are one message": its peer then
//! gets one segment, not one per write, and its wakeups and reads follow.
//!
//! Here the held bytes wait in `Tx::held`, with no stream offsets reserved
//! yet: they have been accepted by send() and count against the send
//! credit, and every later byte of the socket goes through them, so the
//! stream's order holds. They leave as one fragment (a segment) per flush.
//!
//! The 200 ms ceiling needs a clock that fires without a call. Hosted, one
//! thread per process, started at the first hold, sleeps until the
//! earliest deadline. The no_std build has no such thread, so it holds
//! nothing: the cork is stored and reported, and data goes out at once.

use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use super::{Socket, Tx, F_CORKED};
use crate::backend::contract::{Errno, Fragment, FRAG_MAX};
use crate::consts::*;
use crate::sync::MutexGuard;

impl Socket {
    /// Whether a send with `flags` holds its partial tail back (a stream)
    /// or adds to a pending datagram (UDP: no ceiling there, the datagram
    /// waits for the cork to come off).
    #[inline]
    pub(super) fn corking(&self, flags: i32) -> bool {
        self.info.domain != AF_UNIX
            && (cfg!(feature = "std") || !self.is_stream())
            && (flags & MSG_MORE != 0 || self.has(F_CORKED))
    }

    /// Holds `data` after the bytes already held; the first byte held
    /// starts the 200 ms ceiling (not a byte queued past the window: credit
    /// sends those, `sndq`).
    pub(super) fn hold(&self, tx: &mut Tx, data: &[u8]) {
        if tx.held.is_empty() && !data.is_empty() {
            tx.held_gen = super::fork_generation();
            if !tx.queueing {
                #[cfg(feature = "std")]
                super::timer::arm(self.handle, CEILING);
            }
        }
        tx.held.extend_from_slice(data);
        self.tx_held.store(tx.held.len() as u64, Ordering::Release);
    }

    /// Sends the first `n` held bytes as one segment (fragments of at most
    /// FRAG_MAX), at the next offsets, as far as the peer's window goes
    /// (the rest stays queued, `sndq`). Takes the send lock's guard: the
    /// backend is called without it, as on the send path.
    pub(super) fn send_held(&self, mut tx: MutexGuard<'_, Tx>, n: usize) -> Result<(), Errno> {
        if self.is_shared() {
            return self.send_held_shared(tx, n);
        }
        let room = self
            .tx_limit
            .load(Ordering::Acquire)
            .saturating_sub(tx.next);
        let n = n
            .min(tx.held.len())
            .min(room.min(usize::MAX as u64) as usize);
        if n == 0 {
            return Ok(());
        }
        let data: Vec<u8> = tx.held.drain(..n).collect();
        if tx.held.is_empty() {
            tx.queueing = false;
        }
        self.tx_held.store(tx.held.len() as u64, Ordering::Release);
        let off = tx.next;
        tx.next += n as u64;
        self.tx_next.store(tx.next, Ordering::Release);
        drop(tx);
        let b = self.binding().ok_or(ENOTCONN)?;
        for (i, piece) in data.chunks(FRAG_MAX).enumerate() {
            let at = off + (i * FRAG_MAX) as u64;
            if self.capturing() {
                self.capture_stream(at, piece);
            }
            b.backend
                .write(self.sref(b), &Fragment::stream(at, 0, piece))?;
            self.tcp.sent_segment();
        }
        Ok(())
    }

    /// Sends every held byte the peer's window takes: the cork came off,
    /// TCP_NODELAY was set, the write side is shutting, or the ceiling
    /// passed. A failure is the connection's and shows on the next call.
    pub(crate) fn push_held(&self) {
        let mut tx = self.tx.lock();
        if !self.is_stream() {
            // UDP_CORK off: the pending datagram goes (its error, if any,
            // shows on the next call as the kernel's would).
            if let Some(to) = tx.held_dgram.take().map(|t| *t) {
                let data = core::mem::take(&mut tx.held);
                drop(tx);
                if let Some(b) = self.binding() {
                    if let Err(e) = self.write_datagram(b, &data, to.as_ref(), 0) {
                        self.set_error(e);
                    }
                }
            }
            return;
        }
        let n = tx.held.len();
        if n > 0 {
            self.keep_push_error(self.send_held(tx, n));
        }
    }

    /// A push of held bytes that no caller waits for failed: a shared
    /// connection's backend told the error once (its reset), so it is kept
    /// for the next call, as Linux's sk_err is (a fragment backend's
    /// connection shows its end in the socket's flags).
    pub(super) fn keep_push_error(&self, r: Result<(), Errno>) {
        if let (Err(e), true) = (r, self.is_shared()) {
            if e != EAGAIN {
                self.set_error(e);
            }
        }
    }

    /// Bytes held now (TCP_INFO's `tcpi_notsent_bytes`).
    pub(super) fn held_bytes(&self) -> usize {
        self.tx.lock().held.len()
    }

    /// TCP_CORK set or cleared; clearing it sends what it held.
    pub(crate) fn set_cork(&self, on: bool) {
        if on {
            self.set(F_CORKED);
        } else {
            self.clear(F_CORKED);
            self.push_held();
        }
    }
}

/// How long a partial segment may be held (tcp(7): TCP_CORK's ceiling).
#[cfg(feature = "std")]
const CEILING: core::time::Duration = core::time::Duration::from_millis(200);

/// Whether held bytes will be sent by the ceiling's clock.
pub(super) fn ceiling_runs() -> bool {
    super::timer::running()
}

//! TCP urgent data: send(MSG_OOB), recv(MSG_OOB), SO_OOBINLINE,
//! SIOCATMARK, POLLPRI and SIGURG, as Linux's TCP keeps them. AF_UNIX
//! streams keep their out-of-band byte (CONFIG_AF_UNIX_OOB) the same way.
//!
//! A send with MSG_OOB marks its last byte urgent (`FLAG_URG` on the
//! fragment that carries it). The receiver keeps what Linux keeps in
//! `urg_seq` and `urg_data`: the stream offset of the newest urgent byte
//! (the mark), the byte itself, and whether it is still to be read out of
//! band. The byte stays in the stream: a read stops at the mark, and one
//! that starts there skips it unless SO_OOBINLINE is on; recv(MSG_OOB)
//! returns it once. Once the reader is past the mark the state is gone.
//! Everything is atomics read with one load on the receive path.
//!
//! The F_SETOWN owner kept here also gets SIGIO, when O_ASYNC (FIOASYNC)
//! is on and the socket becomes readable or writable (sock_wake_async).

use core::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};

use super::{Rx, Socket, F_ASYNC};
use crate::backend::contract::Errno;
use crate::consts::*;
use crate::sockbuf::StreamBuf;

/// No mark.
const NONE: u64 = u64::MAX;
/// `state`: the urgent byte waits to be read with MSG_OOB (Linux's
/// TCP_URG_VALID; the byte is in the low 8 bits).
const VALID: u32 = 0x100;
/// `state`: the urgent byte was read with MSG_OOB (TCP_URG_READ).
const READ: u32 = 0x200;

/// A socket's urgent data.
pub(crate) struct Urgent {
    /// Stream offset of the urgent byte (`NONE`: none).
    mark: AtomicU64,
    /// `VALID | byte`, `READ`, or 0.
    state: AtomicU32,
    /// The F_SETOWN owner SIGURG goes to (0: none; negative: a group).
    owner: AtomicI32,
}

impl Urgent {
    pub(crate) const fn new() -> Urgent {
        Urgent {
            mark: AtomicU64::new(NONE),
            state: AtomicU32::new(0),
            owner: AtomicI32::new(0),
        }
    }
}

impl Socket {
    /// The stream's byte at `off` is urgent and arrived: it is the mark
    /// now (a newer one replaces an older, as TCP's urgent pointer), POLLPRI
    /// readers are woken and the owner gets SIGURG.
    pub(crate) fn urgent_arrived(&self, off: u64, byte: u8) {
        self.urg.mark.store(off, Ordering::Release);
        self.urg
            .state
            .store(VALID | u32::from(byte), Ordering::Release);
        let owner = self.urg.owner.load(Ordering::Relaxed);
        if owner != 0 {
            crate::platform::send_owner_signal(owner, SIGURG);
        }
        self.wait.notify(POLLPRI);
    }

    /// F_SETOWN (SIOCSPGRP, FIOSETOWN): where SIGURG and SIGIO go.
    pub fn set_owner(&self, pid: i32) {
        self.urg.owner.store(pid, Ordering::Relaxed);
        self.shared_set_owner(pid);
    }

    /// O_ASYNC (fcntl F_SETFL, FIOASYNC).
    pub fn set_async_io(&self, on: bool) {
        if on {
            self.set(F_ASYNC);
        } else {
            self.clear(F_ASYNC);
        }
    }

    /// O_ASYNC is on.
    pub fn async_io(&self) -> bool {
        self.has(F_ASYNC)
    }

    /// I/O became possible: SIGIO to the owner under O_ASYNC.
    #[inline]
    pub(crate) fn wake_async(&self) {
        if self.has(F_ASYNC) {
            let owner = self.urg.owner.load(Ordering::Relaxed);
            if owner != 0 {
                crate::platform::send_owner_signal(owner, SIGIO);
            }
        }
    }

    /// The mark's distance from the read offset, while the reader has not
    /// passed it (after that the urgent state is forgotten).
    fn urgent_ahead(&self, sb: &StreamBuf) -> Option<u64> {
        let mark = self.urg.mark.load(Ordering::Acquire);
        if mark == NONE {
            return None;
        }
        let ro = sb.read_offset();
        if ro > mark {
            let _ = self
                .urg
                .mark
                .compare_exchange(mark, NONE, Ordering::AcqRel, Ordering::Relaxed);
            return None;
        }
        Some(mark - ro)
    }

    fn oob_inline(&self) -> bool {
        self.ctl.lock().opts.oobinline()
    }

    /// Before a read: how many bytes it may take (the mark stops it), after
    /// skipping the urgent byte if the read starts on it out of line.
    /// `None`: no limit.
    pub(super) fn urgent_read_limit(&self, sb: &StreamBuf) -> Option<usize> {
        match self.urgent_ahead(sb)? {
            0 if !self.oob_inline() => {
                // The byte is out of band: skipped in the stream, whether
                // or not MSG_OOB took it.
                let mut one = [0u8; 1];
                if sb.read(&mut one) == 1 {
                    self.urg.mark.store(NONE, Ordering::Release);
                }
                None
            }
            0 => None,
            n => Some(n as usize),
        }
    }

    /// Whether the read offset is on the mark (SIOCATMARK).
    pub fn at_mark(&self) -> bool {
        if let Some(at) = self.shared_at_mark() {
            return at;
        }
        match self.rx() {
            Rx::Stream(sb) => self.urgent_ahead(sb) == Some(0),
            Rx::Dgram(_) => false,
        }
    }

    /// The urgent byte is still to be read out of band (POLLPRI).
    pub(super) fn urgent_pending(&self) -> bool {
        self.urg.mark.load(Ordering::Relaxed) != NONE
            && self.urg.state.load(Ordering::Acquire) & VALID != 0
    }

    /// tcp_poll's readability target: one more byte when the reader sits
    /// on an out-of-band byte (it is not data a read would return).
    pub(super) fn urgent_extra_target(&self, sb: &StreamBuf) -> usize {
        usize::from(self.urgent_ahead(sb) == Some(0) && !self.oob_inline())
    }

    /// FIONREAD/SIOCINQ (tcp_inq): up to the mark while an out-of-band
    /// urgent byte lies ahead.
    pub(super) fn urgent_inq(&self, sb: &StreamBuf, readable: usize) -> usize {
        match self.urgent_ahead(sb) {
            Some(n) if !self.oob_inline() && (n as usize) < readable => n as usize,
            _ => readable,
        }
    }

    /// recv(MSG_OOB) (tcp_recv_urg): the urgent byte once; EINVAL with
    /// SO_OOBINLINE, without urgent data or once it was read; EAGAIN while
    /// it has not arrived. AF_UNIX streams keep theirs the same way
    /// (CONFIG_AF_UNIX_OOB's `oob_skb`).
    pub(super) fn recv_urgent(&self, buf: Option<&mut u8>, peek: bool) -> Result<usize, Errno> {
        if !self.is_stream() {
            return Err(EOPNOTSUPP);
        }
        let st = self.urg.state.load(Ordering::Acquire);
        if self.oob_inline() || self.urg.mark.load(Ordering::Acquire) == NONE || st & VALID == 0 {
            return Err(EINVAL);
        }
        if !peek {
            self.urg.state.store(READ, Ordering::Release);
        }
        match buf {
            Some(b) => {
                *b = st as u8;
                Ok(1)
            }
            None => Ok(0),
        }
    }
}

//! A transport connection's state in one atomic word: how far its life has
//! gone and who reads its input, each change one named, checked step.
//!
//! Life: opening → up (ACCEPT sent or seen) → the socket closing (its last
//! bytes still leaving) → closed (the kernel socket gone). Independently:
//! the peer's FIN came; the end was handled (by `lost` or `fail`, once,
//! whichever thread read it first).
//!
//! Input: the transport thread reads it, unless program threads took it
//! over (`delegated`, see `InputDelegation`); once a thread waited where it
//! cannot read it (`kept`), the transport keeps it for good; `shared` once
//! a program's epoll set watches the kernel socket beside the transport's.
#![deny(unsafe_code)]

use core::sync::atomic::{AtomicU32, Ordering};

const UP: u32 = 1 << 0;
const FIN_IN: u32 = 1 << 1;
const ENDED: u32 = 1 << 2;
const CLOSING: u32 = 1 << 3;
const CLOSED: u32 = 1 << 4;
const DELEGATED: u32 = 1 << 5;
const KEPT: u32 = 1 << 6;
const SHARED: u32 = 1 << 7;
const RST_IN: u32 = 1 << 8;

/// The state word of one connection (see the module docs).
pub(super) struct ConnState(AtomicU32);

impl ConnState {
    /// Opening, input read by the transport.
    pub(super) const fn new() -> Self {
        ConnState(AtomicU32::new(0))
    }

    fn has(&self, bit: u32) -> bool {
        self.0.load(Ordering::Acquire) & bit != 0
    }

    /// Sets `bit`; whether it was set before.
    fn latch(&self, bit: u32) -> bool {
        self.0.fetch_or(bit, Ordering::AcqRel) & bit != 0
    }

    /// Established: ACCEPT sent (server side) or seen (client side).
    pub(super) fn is_up(&self) -> bool {
        self.has(UP)
    }

    /// The connection is established.
    pub(super) fn go_up(&self) {
        self.latch(UP);
    }

    /// The peer sent end-of-stream: its socket closing after that is normal.
    pub(super) fn got_fin(&self) -> bool {
        self.has(FIN_IN)
    }

    /// The peer's FIN arrived.
    pub(super) fn fin_in(&self) {
        self.latch(FIN_IN);
    }

    /// The peer reset the connection (its RST arrived).
    pub(super) fn got_rst(&self) -> bool {
        self.has(RST_IN)
    }

    /// The peer's RST arrived.
    pub(super) fn rst_in(&self) {
        self.latch(RST_IN);
    }

    /// Claims the handling of the connection's end: true for the first
    /// caller only.
    pub(super) fn end_once(&self) -> bool {
        !self.latch(ENDED)
    }

    /// The socket was closed: the kernel socket goes once its queue is out.
    pub(super) fn is_closing(&self) -> bool {
        self.has(CLOSING)
    }

    /// The frontend closed the socket.
    pub(super) fn start_closing(&self) {
        self.latch(CLOSING);
    }

    /// The kernel socket is closed (its number may name another file).
    pub(super) fn is_closed(&self) -> bool {
        self.has(CLOSED)
    }

    /// Marks the kernel socket closed; whether it already was. Called with
    /// the connection's fd-life lock (`Conn::out`) held.
    pub(super) fn close(&self) -> bool {
        self.latch(CLOSED)
    }

    /// Program threads read the input (the transport does not watch it).
    pub(super) fn is_delegated(&self) -> bool {
        self.has(DELEGATED)
    }

    /// Hands the input to program threads (`on`) or back to the transport;
    /// whether that changed anything. Delegation is refused once the input
    /// was kept (see [`ConnState::keep`]).
    pub(super) fn delegate(&self, on: bool) -> bool {
        let mut cur = self.0.load(Ordering::Acquire);
        loop {
            if on && cur & KEPT != 0 {
                return false;
            }
            let next = if on {
                cur | DELEGATED
            } else {
                cur & !DELEGATED
            };
            if next == cur {
                return false;
            }
            match self
                .0
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(seen) => cur = seen,
            }
        }
    }

    /// The transport keeps the input for good (see [`ConnState::keep`]).
    pub(super) fn is_kept(&self) -> bool {
        self.has(KEPT)
    }

    /// The transport keeps the input for good; true the first time.
    pub(super) fn keep(&self) -> bool {
        !self.latch(KEPT)
    }

    /// A program's epoll set watches the kernel socket too.
    pub(super) fn is_shared(&self) -> bool {
        self.has(SHARED)
    }

    /// Marks the kernel socket shared; true the first time.
    pub(super) fn share(&self) -> bool {
        !self.latch(SHARED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_input_is_never_delegated_again() {
        let s = ConnState::new();
        assert!(s.delegate(true));
        assert!(!s.delegate(true), "no change");
        assert!(s.keep());
        assert!(s.delegate(false));
        assert!(!s.delegate(true), "kept for good");
        assert!(!s.is_delegated());
        assert!(!s.keep(), "once");
    }

    #[test]
    fn the_end_is_handled_once() {
        let s = ConnState::new();
        assert!(s.end_once());
        assert!(!s.end_once());
    }

    #[test]
    fn life_steps_are_independent_bits() {
        let s = ConnState::new();
        s.go_up();
        s.fin_in();
        s.start_closing();
        assert!(s.is_up() && s.got_fin() && s.is_closing() && !s.is_closed());
        assert!(!s.got_rst());
        s.rst_in();
        assert!(s.got_rst() && s.got_fin());
        assert!(!s.close());
        assert!(s.close(), "already closed");
    }
}

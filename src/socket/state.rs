//! A socket's state: where its connection stands, and the conditions that
//! are independent of it, in one atomic word.
//!
//! The connection is one [`Phase`] at a time. It changes only through
//! [`State::go`], which names the phases it may leave (a compare-and-swap:
//! a transition that finds another phase changes nothing and says which).
//! Readiness, errors and what each call may do are derived from a
//! [`Snapshot`] of the word, so a reader never sees half of a change (the
//! old flags had to be written in a given order: "connected" before "not
//! connecting", or a waiting connect() saw neither and reported a refusal).
//!
//! The transitions:
//!
//! | from | to | by |
//! |---|---|---|
//! | Idle | Listening | listen() |
//! | Listening | Idle | shutdown() of a listener (Linux disconnects it) |
//! | Idle | Connecting | connect() of a stream socket |
//! | Connecting | Connected | the backend's `connected` upcall |
//! | Connecting | Idle | a refusal, a reset while connecting, a failed start |
//! | Idle | Connected | a datagram connect(), an accepted socket or a pair joining |
//! | Connected | Idle | a datagram connect(AF_UNSPEC) |
//!
//! The other conditions are flags: set once and never cleared (bound,
//! shut down for reading or writing, FIN sent, reset, closed) or set and
//! taken (a pending error, a refused datagram delivery, an SO_RCVBUF change
//! not yet applied).

use core::sync::atomic::{AtomicU32, Ordering};

/// Where a socket's connection stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Neither listening nor connected (new, refused, or dissolved).
    Idle,
    /// listen() was called: connections arrive in its accept queue.
    Listening,
    /// A stream connect() waits for the backend's answer.
    Connecting,
    /// A stream connection is established, or a datagram socket has a
    /// default peer.
    Connected,
}

const PHASE_MASK: u32 = 0b11;

impl Phase {
    const fn bits(self) -> u32 {
        match self {
            Phase::Idle => 0,
            Phase::Listening => 1,
            Phase::Connecting => 2,
            Phase::Connected => 3,
        }
    }

    const fn from_bits(b: u32) -> Phase {
        match b & PHASE_MASK {
            0 => Phase::Idle,
            1 => Phase::Listening,
            2 => Phase::Connecting,
            _ => Phase::Connected,
        }
    }
}

/// Bound to an address (by bind(), or implicitly).
pub(crate) const F_BOUND: u32 = 1 << 2;
/// shutdown(SHUT_RD), or the peer hung up (AF_UNIX).
pub(crate) const F_RD_SHUT: u32 = 1 << 3;
/// shutdown(SHUT_WR).
pub(crate) const F_WR_SHUT: u32 = 1 << 4;
/// The connection was reset.
pub(crate) const F_RESET: u32 = 1 << 5;
/// The socket was closed (its last fd went).
pub(crate) const F_CLOSED: u32 = 1 << 6;
/// A pending error waits in `so_error` (taken by SO_ERROR or a call).
pub(crate) const F_ERROR: u32 = 1 << 7;
/// End-of-stream went to the peer.
pub(crate) const F_FIN_SENT: u32 = 1 << 9;
/// SO_RCVBUF was set: the receive window is not autotuned (as on Linux).
pub(crate) const F_RCVBUF_SET: u32 = 1 << 10;
/// A datagram delivery was refused for want of room: the next read tells
/// the backend there is room again.
pub(crate) const F_DGRAM_REFUSED: u32 = 1 << 11;
/// An epoll set or a blocking call watches the backend's input fd of the
/// socket (see `InputDelegation::input_watched`); never cleared.
#[cfg_attr(not(feature = "std"), allow(dead_code))]
pub(crate) const F_INPUT_WATCHED: u32 = 1 << 12;
/// SO_RCVBUF was set to a size the receive buffer could not take at once
/// (see `Socket::follow_rcvbuf`): reads try again.
pub(crate) const F_RCVBUF_PENDING: u32 = 1 << 13;

/// The state word as it was at one instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Snapshot(u32);

impl Snapshot {
    /// The connection's phase.
    pub(crate) fn phase(self) -> Phase {
        Phase::from_bits(self.0)
    }

    /// Whether any of `flags` is set.
    pub(crate) fn has(self, flags: u32) -> bool {
        self.0 & flags != 0
    }

    /// Whether the phase is `p`.
    pub(crate) fn is(self, p: Phase) -> bool {
        self.phase() == p
    }
}

/// The state word of one socket.
pub(crate) struct State(AtomicU32);

impl State {
    /// A new socket: idle, no flag set.
    pub(crate) const fn new() -> Self {
        State(AtomicU32::new(Phase::Idle.bits()))
    }

    /// The word now.
    pub(crate) fn load(&self) -> Snapshot {
        Snapshot(self.0.load(Ordering::Acquire))
    }

    /// The connection's phase now.
    pub(crate) fn phase(&self) -> Phase {
        self.load().phase()
    }

    /// Moves the connection to `to` if it is in one of `from`; otherwise
    /// changes nothing and returns the phase it found.
    pub(crate) fn go(&self, from: &[Phase], to: Phase) -> Result<(), Phase> {
        let mut cur = self.0.load(Ordering::Acquire);
        loop {
            let p = Phase::from_bits(cur);
            if !from.contains(&p) {
                return Err(p);
            }
            let next = (cur & !PHASE_MASK) | to.bits();
            match self
                .0
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(()),
                Err(seen) => cur = seen,
            }
        }
    }

    /// Sets `flags`; returns the word before.
    pub(crate) fn set(&self, flags: u32) -> Snapshot {
        debug_assert_eq!(flags & PHASE_MASK, 0);
        Snapshot(self.0.fetch_or(flags, Ordering::AcqRel))
    }

    /// Clears `flags`; returns the word before.
    pub(crate) fn clear(&self, flags: u32) -> Snapshot {
        debug_assert_eq!(flags & PHASE_MASK, 0);
        Snapshot(self.0.fetch_and(!flags, Ordering::AcqRel))
    }

    /// Whether any of `flags` is set now.
    pub(crate) fn has(&self, flags: u32) -> bool {
        self.load().has(flags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Phase::*;

    #[test]
    fn a_new_socket_is_idle_with_no_flag() {
        let s = State::new();
        assert_eq!(s.phase(), Idle);
        assert!(!s.has(!PHASE_MASK));
    }

    #[test]
    fn a_transition_from_elsewhere_changes_nothing() {
        let s = State::new();
        assert_eq!(s.go(&[Connecting], Connected), Err(Idle));
        assert_eq!(s.phase(), Idle);
        s.go(&[Idle], Connecting).unwrap();
        assert_eq!(s.go(&[Idle], Listening), Err(Connecting));
        s.go(&[Connecting], Connected).unwrap();
        assert_eq!(s.phase(), Connected);
    }

    #[test]
    fn flags_and_phase_do_not_disturb_each_other() {
        let s = State::new();
        s.set(F_BOUND | F_ERROR);
        s.go(&[Idle], Listening).unwrap();
        assert!(s.has(F_BOUND) && s.has(F_ERROR));
        s.clear(F_ERROR);
        assert_eq!(s.phase(), Listening);
        assert!(s.has(F_BOUND) && !s.has(F_ERROR));
    }

    #[test]
    fn concurrent_connects_and_answers_land_in_one_phase() {
        // Many threads race Idle -> Connecting -> Connected | Idle: every
        // transition either happens whole or reports what it found.
        use std::sync::Arc;
        let s = Arc::new(State::new());
        let t: Vec<_> = (0..4)
            .map(|i| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        let _ = s.go(&[Idle], Connecting);
                        let to = if i % 2 == 0 { Connected } else { Idle };
                        let _ = s.go(&[Connecting], to);
                        let _ = s.go(&[Connected], Idle);
                        s.set(F_BOUND);
                    }
                })
            })
            .collect();
        for t in t {
            t.join().unwrap();
        }
        assert!(s.has(F_BOUND));
        assert!(matches!(s.phase(), Idle | Connecting | Connected));
    }
}

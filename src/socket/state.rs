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
//! | Connected, Connecting | Idle | a TCP connect(AF_UNSPEC) (`tcp_disconnect`: the flags go too) |
//!
//! The other conditions are flags: set once and never cleared (bound,
//! shut down for reading or writing, FIN sent, reset, closed; but a TCP
//! connect(AF_UNSPEC) makes the socket new: all but closed) or set and
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
/// TCP_CORK is on: partial segments wait in the send path (`cork`).
pub(crate) const F_CORKED: u32 = 1 << 14;
/// A receive timestamp option (SO_TIMESTAMP, SO_TIMESTAMPNS,
/// SO_TIMESTAMPING) is on: stream arrivals are stamped.
pub(crate) const F_RCVTSTAMP: u32 = 1 << 15;
/// Queued on a TCP_DEFER_ACCEPT listener and not yet acceptable (`defer`).
pub(crate) const F_DEFERRED: u32 = 1 << 16;
/// O_ASYNC: SIGIO to the owner when I/O becomes possible (`urgent`).
pub(crate) const F_ASYNC: u32 = 1 << 17;
/// SO_TIMESTAMPING asks for transmit stamps (`errqueue`).
pub(crate) const F_TXSTAMP: u32 = 1 << 18;

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
        self.go_setting(from, to, 0)
    }

    /// As [`State::go`], setting `flags` in the same step: nobody sees
    /// one without the other.
    pub(crate) fn go_setting(&self, from: &[Phase], to: Phase, flags: u32) -> Result<(), Phase> {
        debug_assert_eq!(flags & PHASE_MASK, 0);
        let mut cur = self.0.load(Ordering::Acquire);
        loop {
            let p = Phase::from_bits(cur);
            if !from.contains(&p) {
                return Err(p);
            }
            let next = (cur & !PHASE_MASK) | to.bits() | flags;
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
    use alloc::vec::Vec;
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

    // ------------------------------------------------------------------
    // Transitions, one by one.

    const ALL: [Phase; 4] = [Idle, Listening, Connecting, Connected];

    /// Every flag the word carries.
    const FLAGS: [u32; 16] = [
        F_BOUND,
        F_RD_SHUT,
        F_WR_SHUT,
        F_RESET,
        F_CLOSED,
        F_ERROR,
        F_FIN_SENT,
        F_RCVBUF_SET,
        F_DGRAM_REFUSED,
        F_INPUT_WATCHED,
        F_RCVBUF_PENDING,
        F_CORKED,
        F_RCVTSTAMP,
        F_DEFERRED,
        F_ASYNC,
        F_TXSTAMP,
    ];

    /// A state in phase `p` with `flags` set, reached through transitions
    /// the table allows.
    fn at(p: Phase, flags: u32) -> State {
        let s = State::new();
        s.set(flags);
        match p {
            Idle => {}
            Listening => s.go(&[Idle], Listening).unwrap(),
            Connecting => s.go(&[Idle], Connecting).unwrap(),
            Connected => {
                s.go(&[Idle], Connecting).unwrap();
                s.go(&[Connecting], Connected).unwrap();
            }
        }
        assert_eq!(s.phase(), p);
        s
    }

    #[test]
    fn every_transition_of_the_table_is_taken() {
        // (from, to, what takes it): the module documentation's table.
        let table = [
            (Idle, Listening, "listen()"),
            (Listening, Idle, "shutdown() of a listener"),
            (Idle, Connecting, "stream connect()"),
            (Connecting, Connected, "the connected upcall"),
            (Connecting, Idle, "a refusal or a reset while connecting"),
            (Idle, Connected, "datagram connect(), accepted socket, pair"),
            (Connected, Idle, "datagram or TCP connect(AF_UNSPEC)"),
            (Connecting, Idle, "TCP connect(AF_UNSPEC)"),
        ];
        for (from, to, by) in table {
            let s = at(from, F_BOUND);
            assert_eq!(s.go(&[from], to), Ok(()), "{from:?} -> {to:?} by {by}");
            assert_eq!(s.phase(), to, "{from:?} -> {to:?} by {by}");
            assert!(s.has(F_BOUND), "{from:?} -> {to:?} lost a flag");
        }
    }

    #[test]
    fn a_transition_from_any_other_phase_is_refused_and_changes_nothing() {
        // Every (current, expected, target) where current != expected: the
        // word, flags included, is exactly as before, and the phase found
        // is reported.
        for cur in ALL {
            for from in ALL {
                for to in ALL {
                    let s = at(cur, F_BOUND | F_ERROR);
                    let before = s.load();
                    let r = s.go(&[from], to);
                    if cur == from {
                        assert_eq!(r, Ok(()));
                        assert_eq!(s.phase(), to);
                    } else {
                        assert_eq!(r, Err(cur), "go([{from:?}], {to:?}) in {cur:?}");
                        assert_eq!(s.load(), before, "go([{from:?}], {to:?}) in {cur:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn the_refusals_the_callers_rely_on() {
        // connect() on a listener or a connected socket.
        assert_eq!(at(Listening, 0).go(&[Idle], Connecting), Err(Listening));
        assert_eq!(at(Connected, 0).go(&[Idle], Connecting), Err(Connected));
        // A second connect() while the first waits (EALREADY).
        assert_eq!(at(Connecting, 0).go(&[Idle], Connecting), Err(Connecting));
        // listen() on a connecting or connected socket.
        let listen_from = [Idle, Listening];
        assert_eq!(
            at(Connecting, 0).go(&listen_from, Listening),
            Err(Connecting)
        );
        assert_eq!(at(Connected, 0).go(&listen_from, Listening), Err(Connected));
        // A refusal or a reset that comes after the connect was answered.
        assert_eq!(at(Connected, 0).go(&[Connecting], Idle), Err(Connected));
        assert_eq!(at(Idle, 0).go(&[Connecting], Idle), Err(Idle));
        // A connected upcall for a listener.
        assert_eq!(
            at(Listening, 0).go(&[Idle, Connecting], Connected),
            Err(Listening)
        );
        // shutdown() of a listener, on a socket that is not one.
        assert_eq!(at(Connected, 0).go(&[Listening], Idle), Err(Connected));
    }

    #[test]
    fn a_transition_from_several_phases_takes_any_of_them() {
        // listen() again on a listener keeps it listening.
        let s = at(Listening, 0);
        assert_eq!(s.go(&[Idle, Listening], Listening), Ok(()));
        assert_eq!(s.phase(), Listening);
        // A datagram connect() to another peer stays connected.
        let s = at(Connected, 0);
        assert_eq!(s.go(&[Idle, Connected], Connected), Ok(()));
        assert_eq!(s.phase(), Connected);
        // The connected upcall: an accepted socket (idle) or a connect().
        for from in [Idle, Connecting] {
            let s = at(from, 0);
            assert_eq!(s.go(&[Idle, Connecting], Connected), Ok(()));
            assert_eq!(s.phase(), Connected);
        }
    }

    #[test]
    fn no_phase_is_accepted_from_an_empty_set() {
        for cur in ALL {
            let s = at(cur, 0);
            assert_eq!(s.go(&[], Idle), Err(cur));
            assert_eq!(s.phase(), cur);
        }
    }

    #[test]
    fn a_transition_to_the_same_phase_succeeds_and_keeps_it() {
        for p in ALL {
            let s = at(p, F_RESET);
            assert_eq!(s.go(&[p], p), Ok(()));
            assert_eq!(s.load(), at(p, F_RESET).load());
        }
    }

    // ------------------------------------------------------------------
    // Flags, independent of the phase.

    #[test]
    fn the_flags_are_distinct_bits_outside_the_phase() {
        let mut seen = 0u32;
        for f in FLAGS {
            assert_eq!(f.count_ones(), 1, "{f:#x} is one bit");
            assert_eq!(f & PHASE_MASK, 0, "{f:#x} overlaps the phase");
            assert_eq!(seen & f, 0, "{f:#x} is used twice");
            seen |= f;
        }
    }

    #[test]
    fn each_flag_is_set_and_cleared_alone_in_every_phase() {
        for p in ALL {
            for f in FLAGS {
                let s = at(p, 0);
                let before = s.set(f);
                assert_eq!(before, at(p, 0).load(), "set returns the word before");
                assert!(s.has(f));
                assert_eq!(s.phase(), p, "setting {f:#x} moved the phase");
                for g in FLAGS.iter().filter(|&&g| g != f) {
                    assert!(!s.has(*g), "setting {f:#x} set {g:#x}");
                }
                let before = s.clear(f);
                assert!(before.has(f) && before.is(p));
                assert!(!s.has(f));
                assert_eq!(s.load(), at(p, 0).load());
            }
        }
    }

    #[test]
    fn every_transition_keeps_every_flag() {
        let all = FLAGS.iter().fold(0, |a, f| a | f);
        for from in ALL {
            for to in ALL {
                let s = at(from, all);
                s.go(&[from], to).unwrap();
                for f in FLAGS {
                    assert!(s.has(f), "{from:?} -> {to:?} cleared {f:#x}");
                }
                assert_eq!(s.phase(), to);
            }
        }
    }

    #[test]
    fn shutdown_reset_and_error_are_independent_of_each_other() {
        let s = at(Connected, 0);
        s.set(F_WR_SHUT);
        assert!(s.has(F_WR_SHUT) && !s.has(F_RD_SHUT | F_RESET | F_ERROR));
        s.set(F_RESET | F_ERROR);
        assert!(s.has(F_RESET) && s.has(F_ERROR) && !s.has(F_RD_SHUT));
        // Taking the error leaves the reset (and the phase) in place.
        s.clear(F_ERROR);
        assert!(s.has(F_RESET) && s.has(F_WR_SHUT) && !s.has(F_ERROR));
        assert_eq!(s.phase(), Connected);
    }

    #[test]
    fn setting_a_flag_twice_reports_it_was_set() {
        // send_fin and close rely on this: only the first sets it.
        let s = at(Connected, 0);
        assert!(!s.set(F_FIN_SENT).has(F_FIN_SENT));
        assert!(s.set(F_FIN_SENT).has(F_FIN_SENT));
        assert!(!s.set(F_CLOSED).has(F_CLOSED));
        assert!(s.set(F_CLOSED).has(F_CLOSED));
    }

    #[test]
    fn clearing_a_flag_that_is_not_set_changes_nothing() {
        let s = at(Listening, F_BOUND);
        let before = s.clear(F_ERROR);
        assert_eq!(s.load(), before);
    }

    #[test]
    fn has_is_true_when_any_of_several_flags_is_set() {
        let s = at(Idle, F_RESET);
        assert!(s.has(F_RESET | F_WR_SHUT | F_CLOSED));
        assert!(!s.has(F_RD_SHUT | F_WR_SHUT | F_CLOSED));
        assert!(!s.has(0));
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic]
    fn setting_phase_bits_as_flags_is_caught() {
        State::new().set(PHASE_MASK);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic]
    fn clearing_phase_bits_as_flags_is_caught() {
        at(Connected, 0).clear(1);
    }

    // ------------------------------------------------------------------
    // Snapshots.

    #[test]
    fn a_snapshot_does_not_follow_later_changes() {
        let s = at(Connecting, 0);
        let snap = s.load();
        s.go(&[Connecting], Connected).unwrap();
        s.set(F_RESET);
        assert!(snap.is(Connecting) && !snap.has(F_RESET));
        assert_eq!(snap.phase(), Connecting);
        let now = s.load();
        assert!(now.is(Connected) && now.has(F_RESET));
        assert_ne!(snap, now);
    }

    #[test]
    fn a_snapshot_reads_each_phase_back() {
        for p in ALL {
            let snap = at(p, F_ERROR).load();
            assert_eq!(snap.phase(), p);
            for q in ALL {
                assert_eq!(snap.is(q), p == q);
            }
            assert!(snap.has(F_ERROR));
        }
    }

    // ------------------------------------------------------------------
    // Concurrent transitions.

    use std::sync::{Arc, Barrier};

    /// Runs `a` and `b` at once on a fresh state prepared by `prep`, `n`
    /// times; hands each round's results and final state to `check`.
    fn race<A, B>(
        n: usize,
        prep: impl Fn() -> State,
        a: impl Fn(&State) -> A + Send + Sync + 'static,
        b: impl Fn(&State) -> B + Send + Sync + 'static,
        check: impl Fn(A, B, &State),
    ) where
        A: Send + 'static,
        B: Send + 'static,
    {
        let (a, b) = (Arc::new(a), Arc::new(b));
        for _ in 0..n {
            let s = Arc::new(prep());
            let bar = Arc::new(Barrier::new(2));
            let ta = {
                let (s, bar, a) = (s.clone(), bar.clone(), a.clone());
                std::thread::spawn(move || {
                    bar.wait();
                    a(&s)
                })
            };
            let tb = {
                let (s, bar, b) = (s.clone(), bar.clone(), b.clone());
                std::thread::spawn(move || {
                    bar.wait();
                    b(&s)
                })
            };
            let (ra, rb) = (ta.join().unwrap(), tb.join().unwrap());
            check(ra, rb, &s);
        }
    }

    #[test]
    fn connected_and_reset_race_one_wins() {
        // The backend's connected upcall against a reset while connecting:
        // exactly one moves the socket, and the phase is the winner's.
        race(
            500,
            || at(Connecting, F_BOUND),
            |s| s.go(&[Connecting], Connected),
            |s| s.go(&[Connecting], Idle),
            |a, b, s| match (a, b) {
                (Ok(()), Err(Connected)) => assert_eq!(s.phase(), Connected),
                (Err(Idle), Ok(())) => assert_eq!(s.phase(), Idle),
                other => panic!("both or neither won: {other:?}"),
            },
        );
    }

    #[test]
    fn two_connects_race_one_wins() {
        race(
            500,
            || at(Idle, 0),
            |s| s.go(&[Idle], Connecting),
            |s| s.go(&[Idle], Connecting),
            |a, b, s| {
                assert!(
                    matches!(
                        (a, b),
                        (Ok(()), Err(Connecting)) | (Err(Connecting), Ok(()))
                    ),
                    "{a:?} {b:?}"
                );
                assert_eq!(s.phase(), Connecting);
            },
        );
    }

    #[test]
    fn listen_and_connect_race_one_wins() {
        race(
            500,
            || at(Idle, 0),
            |s| s.go(&[Idle, Listening], Listening),
            |s| s.go(&[Idle], Connecting),
            |a, b, s| match (a, b) {
                (Ok(()), Err(Listening)) => assert_eq!(s.phase(), Listening),
                (Err(Connecting), Ok(())) => assert_eq!(s.phase(), Connecting),
                other => panic!("both or neither won: {other:?}"),
            },
        );
    }

    #[test]
    fn many_threads_one_transition_exactly_one_winner() {
        let s = Arc::new(at(Connecting, 0));
        let bar = Arc::new(Barrier::new(8));
        let t: Vec<_> = (0..8)
            .map(|i| {
                let (s, bar) = (s.clone(), bar.clone());
                std::thread::spawn(move || {
                    bar.wait();
                    let to = if i % 2 == 0 { Connected } else { Idle };
                    (to, s.go(&[Connecting], to))
                })
            })
            .collect();
        let r: Vec<_> = t.into_iter().map(|t| t.join().unwrap()).collect();
        let won: Vec<_> = r.iter().filter(|(_, r)| r.is_ok()).collect();
        assert_eq!(won.len(), 1, "{r:?}");
        let to = won[0].0;
        assert_eq!(s.phase(), to);
        for (_, res) in r.iter().filter(|(_, r)| r.is_err()) {
            assert_eq!(*res, Err(to), "a loser reports the winner's phase");
        }
    }

    #[test]
    fn flags_set_during_transitions_are_never_lost() {
        // One thread cycles the phase as fast as it can; another sets, one
        // by one, every flag; a third sets and clears F_ERROR. At the end
        // every flag of the second is set and the phase is where the first
        // left it.
        let s = Arc::new(State::new());
        let bar = Arc::new(Barrier::new(3));
        let cycler = {
            let (s, bar) = (s.clone(), bar.clone());
            std::thread::spawn(move || {
                bar.wait();
                for _ in 0..20_000 {
                    s.go(&[Idle], Connecting).unwrap();
                    s.go(&[Connecting], Connected).unwrap();
                    s.go(&[Connected], Idle).unwrap();
                }
            })
        };
        let setter = {
            let (s, bar) = (s.clone(), bar.clone());
            std::thread::spawn(move || {
                bar.wait();
                for _ in 0..1000 {
                    for f in FLAGS.iter().filter(|&&f| f != F_ERROR) {
                        s.set(*f);
                    }
                }
            })
        };
        let toggler = {
            let (s, bar) = (s.clone(), bar.clone());
            std::thread::spawn(move || {
                bar.wait();
                for _ in 0..20_000 {
                    s.set(F_ERROR);
                    s.clear(F_ERROR);
                }
            })
        };
        // Every transition of the cycler succeeded (an unwrap above would
        // have panicked): neither flag thread moved the phase.
        cycler.join().unwrap();
        setter.join().unwrap();
        toggler.join().unwrap();
        assert_eq!(s.phase(), Idle);
        for f in FLAGS.iter().filter(|&&f| f != F_ERROR) {
            assert!(s.has(*f), "{f:#x} lost");
        }
        assert!(!s.has(F_ERROR));
    }

    #[test]
    fn a_waiter_never_sees_neither_connecting_nor_connected() {
        // The bug the one word fixed: "connected" and "no longer
        // connecting" were two writes, and a connect() waiting between
        // them saw a refusal. Here a reader watching a socket that only
        // goes Connecting -> Connected must see one or the other.
        for _ in 0..200 {
            let s = Arc::new(at(Connecting, 0));
            let r = {
                let s = s.clone();
                std::thread::spawn(move || loop {
                    let f = s.load();
                    assert!(f.is(Connecting) || f.is(Connected), "saw {f:?}");
                    if f.is(Connected) {
                        break;
                    }
                })
            };
            s.set(F_BOUND);
            s.go(&[Connecting], Connected).unwrap();
            r.join().unwrap();
        }
    }

    // ------------------------------------------------------------------
    // Readiness, derived from a snapshot (`Socket::readiness`). Expected
    // values are Linux's (tcp_poll, udp_poll), checked on the kernel.

    use super::super::{Rx, Socket};
    use crate::backend::contract::{SockHandle, SockInfo};
    use crate::consts::*;

    fn sock(ty: i32) -> Socket {
        let info = SockInfo {
            domain: AF_INET,
            ty,
            protocol: 0,
        };
        Socket::build(SockHandle(1), info, false)
    }

    /// A stream socket in phase `p` with `flags`.
    fn stream(p: Phase, flags: u32) -> Socket {
        let s = sock(SOCK_STREAM);
        let a = at(p, flags);
        s.state
            .0
            .store(a.0.into_inner(), core::sync::atomic::Ordering::Release);
        s
    }

    fn credit(s: &Socket, limit: u64) {
        s.tx_limit
            .store(limit, core::sync::atomic::Ordering::Release);
    }

    const IN: i16 = POLLIN | POLLRDNORM;
    const OUT: i16 = POLLOUT | POLLWRNORM;
    /// A writable datagram socket (datagram_poll adds POLLWRBAND).
    const DOUT: i16 = OUT | POLLWRBAND;

    #[test]
    fn a_fresh_stream_socket_is_writable_and_hung_up() {
        // Linux: 0x114 for a new TCP socket.
        assert_eq!(stream(Idle, 0).readiness(), OUT | POLLHUP);
    }

    #[test]
    fn a_connecting_socket_reports_nothing_but_an_error() {
        assert_eq!(stream(Connecting, 0).readiness(), 0);
        assert_eq!(stream(Connecting, F_ERROR).readiness(), POLLERR);
        // Even with credit granted early.
        let s = stream(Connecting, 0);
        credit(&s, 100);
        assert_eq!(s.readiness(), 0);
    }

    #[test]
    fn a_connected_socket_is_writable_only_with_credit() {
        let s = stream(Connected, F_BOUND);
        assert_eq!(s.readiness(), 0);
        credit(&s, 1);
        assert_eq!(s.readiness(), OUT);
        // Credit used up: not writable again.
        s.tx_next.store(1, core::sync::atomic::Ordering::Release);
        assert_eq!(s.readiness(), 0);
    }

    #[test]
    fn data_in_order_makes_a_connected_socket_readable() {
        let s = stream(Connected, 0);
        let Rx::Stream(sb) = s.rx() else {
            unreachable!()
        };
        // A hole first: nothing readable yet.
        sb.insert(3, b"def").unwrap();
        assert_eq!(s.readiness(), 0);
        sb.insert(0, b"abc").unwrap();
        assert_eq!(s.readiness(), IN);
    }

    #[test]
    fn the_peers_end_of_stream_is_readable_and_rdhup() {
        let s = stream(Connected, 0);
        credit(&s, 10);
        let Rx::Stream(sb) = s.rx() else {
            unreachable!()
        };
        sb.insert_fin(0).unwrap();
        assert_eq!(s.readiness(), IN | POLLRDHUP | OUT);
        // ... and, after our own SHUT_WR, hung up.
        s.state.set(F_WR_SHUT);
        assert_eq!(s.readiness(), IN | POLLRDHUP | OUT | POLLHUP);
    }

    #[test]
    fn a_reset_connection_is_readable_writable_hung_up_and_in_error() {
        // Linux: 0x215d after an RST.
        let s = stream(Connected, F_RESET | F_ERROR);
        assert_eq!(s.readiness(), IN | OUT | POLLERR | POLLHUP | POLLRDHUP);
        // Once the error is taken, everything but POLLERR stays.
        s.state.clear(F_ERROR);
        assert_eq!(s.readiness(), IN | OUT | POLLHUP | POLLRDHUP);
    }

    #[test]
    fn shut_rd_is_readable_and_rdhup() {
        // Linux: 0x2145.
        let s = stream(Connected, F_RD_SHUT);
        credit(&s, 1);
        assert_eq!(s.readiness(), IN | POLLRDHUP | OUT);
    }

    #[test]
    fn shut_wr_is_writable_without_credit() {
        // Linux: 0x104 (a write fails at once, with EPIPE).
        let s = stream(Connected, F_WR_SHUT);
        assert_eq!(s.readiness(), OUT);
    }

    #[test]
    fn shut_rdwr_is_hung_up() {
        let s = stream(Connected, F_RD_SHUT | F_WR_SHUT);
        assert_eq!(s.readiness(), IN | POLLRDHUP | OUT | POLLHUP);
    }

    #[test]
    fn a_refused_connect_is_in_error_and_shut() {
        // Back to idle with the pending refusal, shut both ways as Linux's
        // tcp_done leaves it (the frontend's connect_failed sets both):
        // 0x215d, and 0x2155 once SO_ERROR is taken.
        let s = stream(Idle, F_ERROR | F_RD_SHUT | F_WR_SHUT);
        assert_eq!(s.readiness(), IN | OUT | POLLERR | POLLHUP | POLLRDHUP);
        s.state.clear(F_ERROR);
        assert_eq!(s.readiness(), IN | OUT | POLLHUP | POLLRDHUP);
    }

    #[test]
    fn a_listener_is_readable_only_with_a_connection_queued() {
        let s = stream(Listening, F_BOUND);
        assert_eq!(s.readiness(), 0);
        s.accept_len.store(1, core::sync::atomic::Ordering::Release);
        assert_eq!(s.readiness(), IN);
        s.state.set(F_ERROR);
        assert_eq!(s.readiness(), IN | POLLERR);
    }

    #[test]
    fn a_datagram_socket_is_always_writable() {
        let s = sock(SOCK_DGRAM);
        assert_eq!(s.readiness(), DOUT);
        s.state.go(&[Idle], Connected).unwrap();
        assert_eq!(s.readiness(), DOUT);
        // A pending error is POLLERR, not readable (datagram_poll).
        s.state.set(F_ERROR);
        assert_eq!(s.readiness(), DOUT | POLLERR);
    }

    #[test]
    fn datagram_shutdowns_read_as_rdhup_then_hup() {
        let s = sock(SOCK_DGRAM);
        s.state.set(F_RD_SHUT);
        assert_eq!(s.readiness(), IN | POLLRDHUP | DOUT);
        s.state.set(F_WR_SHUT);
        assert_eq!(s.readiness(), IN | POLLRDHUP | DOUT | POLLHUP);
    }

    #[test]
    fn readiness_follows_a_whole_connect() {
        // idle (writable, hung up) -> connecting (nothing) -> connected
        // without credit (nothing) -> credit (writable) -> reset.
        let s = stream(Idle, 0);
        assert_eq!(s.readiness(), OUT | POLLHUP);
        s.state.go(&[Idle], Connecting).unwrap();
        assert_eq!(s.readiness(), 0);
        s.state.go(&[Connecting], Connected).unwrap();
        assert_eq!(s.readiness(), 0);
        credit(&s, 4096);
        assert_eq!(s.readiness(), OUT);
        s.state.set(F_RESET | F_ERROR);
        assert_eq!(s.readiness(), IN | OUT | POLLERR | POLLHUP | POLLRDHUP);
    }
}

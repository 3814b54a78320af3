//! Spinning before sleeping: whether a waiter spins, learned from whether
//! its spins were answered, and from how busy the machine is.
//!
//! A thread that must wait can spin (keeping its core, and catching the
//! event the moment it happens) or sleep in the kernel (giving the core
//! away, and paying a sleep and a wake-up). Which is faster depends on the
//! machine more than on the program: measured here, with a core idle the
//! kernel wakes a sleeper on that idle core, which costs tens of
//! microseconds on a virtual machine (and now and then milliseconds, when
//! the host is slow to run the halted virtual core again), and a spin
//! answered from the other core wins tenfold; with every core busy a woken
//! thread takes the sleeper's own core at once, and a spin only keeps it
//! from running (a 64-byte round trip: 3 µs sleeping, 8 µs spinning, 4,000
//! µs with the old spin-and-yield). So nothing is assumed:
//!
//! - **Spins are scored.** A [`SpinLearner`] keeps, for one queue, how
//!   often a spin ended with the event rather than in a sleep. While a
//!   quarter or more are answered, waits spin; below that they sleep at
//!   once, and now and then ([`PROBE_MIN_NS`], doubling while the probes go
//!   unanswered, up to [`PROBE_MAX_NS`]) one wait spins to see whether it
//!   pays again. (Comparing the average length of spun and slept waits
//!   instead was unstable: two peers that each slept now and then made
//!   each other's spins fail, and both drifted to sleeping, 2.3 µs round
//!   trips becoming 5 to 12 µs on an idle machine.)
//! - **A lost core stops every spin.** A spin reads the clock every few
//!   dozen checks; a gap between two reads means the thread was
//!   descheduled: the machine has more runnable threads than cores, and a
//!   spin would keep them (the thread that would wake us among them) from
//!   running. Every spin of the process then stops for [`CONTENDED_NS`].
//! - **No spin without a spare core.** Where the machine has more runnable
//!   threads than cores (the platform's `core_spare`), nothing spins: the
//!   spinner would keep a thread waiting for a core from running, and the
//!   CPU it burns costs it the scheduler's favour at its next wake-up. (A
//!   spin may still look faster to the one waiter; the whole exchange is
//!   slower.)
//! - **Never yield.** `sched_yield` on a busy machine hands the core to
//!   another process for a whole time slice at every turn of the loop.
//!
//! The spin's length is the platform's cap (`USOCK_SPIN_US` on the hosted
//! platform; zero disables spinning, as on a single core). Time comes from
//! the platform's monotonic clock in nanoseconds; the policy itself
//! ([`SpinLearner::plan_at`], [`SpinLearner::record`]) takes the time as an
//! argument, so tests drive it without a clock.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::platform;

/// The shortest interval between two probes of the way not taken (ns).
pub const PROBE_MIN_NS: u64 = 1_000_000;

/// The longest interval between two probes (ns).
pub const PROBE_MAX_NS: u64 = 256_000_000;

/// How long every spin of the process stays off after a spinner lost its
/// core.
pub const CONTENDED_NS: u64 = 20_000_000;

/// A gap this long between two clock reads of a spin means the spinning
/// thread was descheduled (a few dozen checks take a few microseconds).
pub const PREEMPT_GAP_NS: u64 = 50_000;

/// Checks of the condition between two clock reads.
const CHECKS_PER_CLOCK: u32 = 32;

/// Spins of the whole process are off until this time (ns on the
/// platform's clock): a spinner lost its core.
static QUIET_UNTIL: AtomicU64 = AtomicU64::new(0);

/// How one wait goes: spin for `budget` ns first (0: sleep at once).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Spin this long before sleeping (ns); 0 sleeps at once.
    pub budget: u64,
    /// This wait spins to see whether spinning pays again.
    probe: bool,
}

impl Plan {
    /// Sleep at once, learn nothing (no spinning on this platform).
    pub const SLEEP: Plan = Plan {
        budget: 0,
        probe: false,
    };
}

/// A spin counts as paying while at least this share of the spins ended
/// with the event (out of [`HITS_ONE`]).
const HIT_MIN: u32 = HITS_ONE / 4;

/// [`SpinLearner`]'s hit rate scale: all spins ended with the event.
const HITS_ONE: u32 = 1024;

/// What one queue's waits taught. Shared by every thread waiting on the
/// queue; updates race benignly (it is a hint, not an invariant).
pub struct SpinLearner {
    /// How often a spin ended with the event rather than in a sleep: an
    /// average over the last few spins, out of [`HITS_ONE`]. Starts full:
    /// the first waits spin.
    hits: AtomicU32,
    /// When the next probe is due (platform clock, ns).
    next_probe: AtomicU64,
    /// log2 of the probe interval over [`PROBE_MIN_NS`].
    probe_shift: AtomicU32,
}

impl SpinLearner {
    /// A learner that knows nothing yet: its first waits spin.
    pub const fn new() -> Self {
        SpinLearner {
            hits: AtomicU32::new(HITS_ONE),
            next_probe: AtomicU64::new(0),
            probe_shift: AtomicU32::new(0),
        }
    }

    /// Whether spinning pays here (and the machine lets it) at `now`.
    fn prefers_spin(&self, now: u64) -> bool {
        self.hits.load(Ordering::Relaxed) >= HIT_MIN && now >= QUIET_UNTIL.load(Ordering::Relaxed)
    }

    /// How the next wait goes, at time `now`, with the platform's cap
    /// `cap_ns` (0: never spin).
    pub fn plan_at(&self, now: u64, cap_ns: u64) -> Plan {
        if cap_ns == 0 {
            return Plan::SLEEP;
        }
        if self.prefers_spin(now) {
            return Plan {
                budget: cap_ns,
                probe: false,
            };
        }
        // Sleeping: one spin now and then tells whether it pays again.
        let probe = now >= self.next_probe.load(Ordering::Relaxed);
        if probe {
            // Claimed by this wait: no other waiter probes at the same time.
            self.next_probe.store(now + PROBE_MIN_NS, Ordering::Relaxed);
        }
        Plan {
            budget: if probe { cap_ns } else { 0 },
            probe,
        }
    }

    /// How the next wait goes, now (epoll and the engine ask this way).
    #[cfg_attr(not(feature = "std"), allow(dead_code))]
    pub fn plan(&self) -> Plan {
        self.plan_now().0
    }

    /// As [`SpinLearner::plan`], with the time it was made ([`platform::mono_ns`];
    /// 0 where nothing spins, so that the clock is not read at all): the
    /// start of a wait that [`SpinLearner::record`] is told of.
    pub fn plan_now(&self) -> (Plan, u64) {
        let cap = platform::spin_cap_ns();
        if cap == 0 {
            return (Plan::SLEEP, 0);
        }
        let now = platform::mono_ns();
        if !platform::core_spare(now) {
            return (Plan::SLEEP, now);
        }
        (self.plan_at(now, cap), now)
    }

    /// Records that a wait that went by `plan` took `took_ns` until its
    /// waiter ran again, at time `now`. A wait that spun hit if it ended
    /// within its spin; the hit rate moves an eighth of the way to it, so
    /// a few waits follow a change. A probe that finds spinning still
    /// useless doubles the time to the next one; one that finds it paying
    /// brings spinning back at once.
    pub fn record(&self, plan: Plan, took_ns: u64, now: u64) {
        if plan.budget == 0 {
            return;
        }
        let hit = if took_ns <= plan.budget { HITS_ONE } else { 0 };
        let h = self.hits.load(Ordering::Relaxed);
        let h = h - h / 8 + hit / 8;
        let h = if plan.probe && hit != 0 {
            h.max(HIT_MIN)
        } else {
            h
        };
        self.hits.store(h, Ordering::Relaxed);
        if plan.probe {
            let shift = if hit != 0 {
                0
            } else {
                let max = (PROBE_MAX_NS / PROBE_MIN_NS).ilog2();
                (self.probe_shift.load(Ordering::Relaxed) + 1).min(max)
            };
            self.probe_shift.store(shift, Ordering::Relaxed);
            self.next_probe
                .store(now + (PROBE_MIN_NS << shift), Ordering::Relaxed);
        }
    }

    /// The hit rate, out of 1024 (read by the unit tests).
    #[cfg(test)]
    fn hit_rate(&self) -> u32 {
        self.hits.load(Ordering::Relaxed)
    }
}

impl Default for SpinLearner {
    fn default() -> Self {
        Self::new()
    }
}

/// Spins until `done()` holds or `budget_ns` has passed; returns whether it
/// holds. Gives up at once (and stops every spin of the process for
/// [`CONTENDED_NS`]) when the thread loses its core meanwhile.
pub fn spin(budget_ns: u64, mut done: impl FnMut() -> bool) -> bool {
    if budget_ns == 0 {
        return done();
    }
    let start = platform::mono_ns();
    let mut last = start;
    loop {
        for _ in 0..CHECKS_PER_CLOCK {
            if done() {
                return true;
            }
            core::hint::spin_loop();
        }
        let now = platform::mono_ns();
        if now.saturating_sub(last) > PREEMPT_GAP_NS {
            QUIET_UNTIL.fetch_max(now + CONTENDED_NS, Ordering::Relaxed);
            return done();
        }
        if now.saturating_sub(start) >= budget_ns {
            return done();
        }
        last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAP: u64 = 50_000;
    /// Far beyond any QUIET_UNTIL a real spin of another test may set.
    const T0: u64 = u64::MAX / 2;

    /// Runs waits from `t` on, each taking `spun` or `slept` ns as it
    /// spins or sleeps, `gap` ns apart; returns how many spun and the time
    /// after them.
    fn run(l: &SpinLearner, mut t: u64, waits: u32, spun: u64, slept: u64, gap: u64) -> (u32, u64) {
        let mut n = 0;
        for _ in 0..waits {
            let p = l.plan_at(t, CAP);
            let took = if p.budget != 0 {
                n += 1;
                spun
            } else {
                slept
            };
            t += took;
            l.record(p, took, t);
            t += gap;
        }
        (n, t)
    }

    #[test]
    fn no_cap_means_no_spin() {
        assert_eq!(SpinLearner::new().plan_at(T0, 0), Plan::SLEEP);
    }

    #[test]
    fn spins_where_spins_are_answered() {
        // An idle machine: the peer answers a spinning waiter in 2 µs.
        let l = SpinLearner::new();
        let (n, _) = run(&l, T0, 10_000, 2_000, 40_000, 1_000);
        assert_eq!(n, 10_000);
    }

    #[test]
    fn sleeps_where_spins_are_not_answered() {
        // The answer comes only after the spin (50 µs) gave up.
        let l = SpinLearner::new();
        let (n, _) = run(&l, T0, 10_000, 80_000, 3_000, 1_000);
        assert!(n < 100, "{n} of 10000 spun");
    }

    #[test]
    fn an_answer_now_and_then_is_not_enough_to_spin() {
        // One spin in ten answered: spinning burns more than it saves.
        let l = SpinLearner::new();
        let mut t = T0;
        let mut spun = 0;
        for i in 0..10_000u64 {
            let p = l.plan_at(t, CAP);
            let took = if p.budget == 0 {
                30_000
            } else {
                spun += 1;
                if i % 10 == 0 {
                    2_000
                } else {
                    80_000
                }
            };
            t += took;
            l.record(p, took, t);
        }
        assert!(spun < 1_000, "{spun} of 10000 spun");
    }

    #[test]
    fn follows_a_change_of_load() {
        let l = SpinLearner::new();
        let (_, t) = run(&l, T0, 10_000, 2_000, 40_000, 1_000);
        // Spins stop being answered: within a few waits, spinning stops.
        let (_, t) = run(&l, t, 20, 80_000, 3_000, 27_000);
        let (n, t) = run(&l, t, 1_000, 80_000, 3_000, 27_000);
        assert!(n < 30, "{n} of 1000 still spun");
        // And back: the next probe finds spins answered again.
        let (_, t) = run(&l, t, 10_000, 2_000, 40_000, 30_000);
        let (n, _) = run(&l, t, 1_000, 2_000, 40_000, 1_000);
        assert_eq!(n, 1_000);
    }

    #[test]
    fn probes_back_off_while_they_fail() {
        let l = SpinLearner::new();
        // Slow waits (1 ms) that spinning never helps: once the probes have
        // backed off, they (the only spins) come every PROBE_MAX_NS.
        let (_, t) = run(&l, T0, 5_000, 1_050_000, 1_000_000, 0);
        let (n, _) = run(&l, t, 5_000, 1_050_000, 1_000_000, 0);
        let most = 5_000_000_000 / PROBE_MAX_NS + 1;
        assert!(n as u64 <= most, "{n} probes in about 5 s (at most {most})");
    }

    #[test]
    fn a_sleep_teaches_nothing() {
        let l = SpinLearner::new();
        l.record(Plan::SLEEP, u64::MAX, T0);
        assert_eq!(l.hit_rate(), HITS_ONE);
    }

    #[test]
    fn a_spin_that_holds_at_once_returns_true() {
        assert!(spin(0, || true));
        assert!(spin(CAP, || true));
        assert!(!spin(0, || false));
    }
}

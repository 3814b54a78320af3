//! A bad link on purpose: a [`Frames`] wrapper that loses, duplicates,
//! reorders and delays frames in both directions (what the engine sends,
//! before the device has it, so the far side's TCP sees the same bad
//! link; what the device received, before the engine sees it). For tests
//! on kernels without netem. Its randomness is a xorshift seeded from the
//! configuration, so a failing run can be replayed with the same seed.
//! Configured by `USOCK_NETIF_IMPAIR=loss=5,dup=1,reorder=5,delay=50[,seed=N]`.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::device::Frames;

/// What the link does to frames; rates in percent of the frames, each
/// direction on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImpairSpec {
    /// Frames dropped.
    pub loss: u8,
    /// Frames sent twice.
    pub dup: u8,
    /// Frames held back ([`REORDER_HOLD_NS`] more) so that later ones
    /// overtake them.
    pub reorder: u8,
    /// Every frame's delay, in milliseconds, in each direction (a round
    /// trip takes twice as long more).
    pub delay_ms: u32,
    /// The pseudo-random generator's seed.
    pub seed: u64,
}

/// How much longer a reordered frame waits than the others: the frames
/// behind it within that time overtake it.
pub const REORDER_HOLD_NS: u64 = 10_000_000;
/// At most this many frames wait in each direction; more are dropped, as
/// a full queue of a real link drops them.
const QUEUE_MAX: usize = 4096;
/// The seed when the configuration gives none.
const DEFAULT_SEED: u64 = 1;

/// Parses `loss=P,dup=P,reorder=P,delay=MS[,seed=N]` (any subset, any
/// order; percentages 0 to 100, the delay at most 10 s).
pub fn parse_impair(s: &str) -> Result<ImpairSpec, String> {
    let bad = |word: &str, why: &str| {
        format!(
            "USOCK_NETIF_IMPAIR={s}: {word:?}: {why} \
             (expected loss=P,dup=P,reorder=P,delay=MS[,seed=N])"
        )
    };
    let mut spec = ImpairSpec {
        loss: 0,
        dup: 0,
        reorder: 0,
        delay_ms: 0,
        seed: DEFAULT_SEED,
    };
    let mut seen = Vec::new();
    for word in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        let (k, v) = word.split_once('=').ok_or_else(|| bad(word, "no value"))?;
        if seen.contains(&k) {
            return Err(bad(word, "given twice"));
        }
        seen.push(k);
        let pct = || match v.parse::<u8>() {
            Ok(p) if p <= 100 => Ok(p),
            _ => Err(bad(word, "not a percentage from 0 to 100")),
        };
        match k {
            "loss" => spec.loss = pct()?,
            "dup" => spec.dup = pct()?,
            "reorder" => spec.reorder = pct()?,
            "delay" => match v.parse::<u32>() {
                Ok(ms) if ms <= 10_000 => spec.delay_ms = ms,
                _ => return Err(bad(word, "not a delay from 0 to 10000 ms")),
            },
            "seed" => spec.seed = v.parse().map_err(|_| bad(word, "not a number"))?,
            _ => return Err(bad(word, "unknown setting")),
        }
    }
    if seen.is_empty() {
        return Err(bad(s, "no setting"));
    }
    Ok(spec)
}

/// A frame waiting for its time.
struct Held {
    due: u64,
    frame: Vec<u8>,
}

/// One direction of the link: its frames in order of their due times.
#[derive(Default)]
struct Queue {
    q: VecDeque<Held>,
}

impl Queue {
    /// Adds a frame, after every frame due no later (a stable order, so
    /// frames of the same delay keep theirs).
    fn put(&mut self, due: u64, frame: Vec<u8>) {
        if self.q.len() >= QUEUE_MAX {
            return;
        }
        let at = self
            .q
            .iter()
            .rposition(|h| h.due <= due)
            .map_or(0, |i| i + 1);
        self.q.insert(at, Held { due, frame });
    }

    /// The first frame if it is due at `now`.
    fn take(&mut self, now: u64) -> Option<Vec<u8>> {
        if self.q.front()?.due <= now {
            self.q.pop_front().map(|h| h.frame)
        } else {
            None
        }
    }

    fn next_due(&self) -> Option<u64> {
        self.q.front().map(|h| h.due)
    }
}

/// A seed spread over all 64 bits (splitmix64's finalizer), so that
/// neighbouring seeds give unrelated runs; never zero, where xorshift
/// would stay.
fn mix(seed: u64) -> u64 {
    let mut x = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (x ^ (x >> 31)).max(1)
}

/// The wrapper: any device, behind the bad link `spec` describes.
pub struct Impair {
    inner: Box<dyn Frames>,
    spec: ImpairSpec,
    /// The monotonic clock, in nanoseconds.
    clock: Box<dyn Fn() -> u64 + Send>,
    rng: u64,
    /// Frames the engine sent, on their way to the device.
    tx: Queue,
    /// Frames the device received, on their way to the engine.
    rx: Queue,
    /// Room for a frame read from the device.
    buf: Vec<u8>,
}

impl Impair {
    /// `inner` behind the link `spec` describes; `clock` says the time in
    /// nanoseconds (monotonic).
    pub fn new(
        inner: Box<dyn Frames>,
        spec: ImpairSpec,
        clock: Box<dyn Fn() -> u64 + Send>,
    ) -> Impair {
        let buf = alloc::vec![0; inner.max_rx_frame()];
        Impair {
            inner,
            spec,
            clock,
            rng: mix(spec.seed),
            tx: Queue::default(),
            rx: Queue::default(),
            buf,
        }
    }

    /// The next pseudo-random number (xorshift64).
    fn next(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    /// True `pct` percent of the time.
    fn chance(&mut self, pct: u8) -> bool {
        pct > 0 && self.next() % 100 < u64::from(pct)
    }

    /// What the link does to one frame: its copies' due times (none when
    /// it is lost, two when duplicated).
    fn fate(&mut self, now: u64) -> ([u64; 2], usize) {
        if self.chance(self.spec.loss) {
            return ([0; 2], 0);
        }
        let mut due = now + u64::from(self.spec.delay_ms) * 1_000_000;
        if self.chance(self.spec.reorder) {
            due += REORDER_HOLD_NS;
        }
        if self.chance(self.spec.dup) {
            ([due, due], 2)
        } else {
            ([due, 0], 1)
        }
    }

    /// Passes the device the frames the engine sent that are due.
    fn flush_tx(&mut self, now: u64) {
        while let Some(f) = self.tx.take(now) {
            self.inner.send(&f);
        }
    }

    /// Takes every frame the device has into the receive queue, each with
    /// its fate.
    fn pull_rx(&mut self, now: u64) {
        while self.rx.q.len() < QUEUE_MAX {
            let Some(n) = self.inner.recv(&mut self.buf) else {
                break;
            };
            let (dues, copies) = self.fate(now);
            for &due in &dues[..copies] {
                self.rx.put(due, self.buf[..n].to_vec());
            }
        }
    }
}

impl Frames for Impair {
    fn recv(&mut self, buf: &mut [u8]) -> Option<usize> {
        let now = (self.clock)();
        self.flush_tx(now);
        self.pull_rx(now);
        let f = self.rx.take(now)?;
        let n = f.len().min(buf.len());
        buf[..n].copy_from_slice(&f[..n]);
        Some(n)
    }

    fn send(&mut self, frame: &[u8]) {
        let now = (self.clock)();
        let (dues, copies) = self.fate(now);
        for &due in &dues[..copies] {
            self.tx.put(due, frame.to_vec());
        }
        self.flush_tx(now);
    }

    fn mtu(&self) -> usize {
        self.inner.mtu()
    }

    fn rx_checksums_partial(&self) -> bool {
        self.inner.rx_checksums_partial()
    }

    fn max_rx_frame(&self) -> usize {
        self.inner.max_rx_frame()
    }

    fn max_tx_frame(&self) -> usize {
        self.inner.max_tx_frame()
    }

    fn tx_tcp_checksums_offloaded(&self) -> bool {
        self.inner.tx_tcp_checksums_offloaded()
    }

    fn next_due(&self) -> Option<u64> {
        let (a, b) = (self.tx.next_due(), self.rx.next_due());
        let due = match (a, b) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        Some(due.saturating_sub((self.clock)()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::Mutex;
    use alloc::sync::Arc;
    use alloc::vec;
    use core::sync::atomic::{AtomicU64, Ordering};

    /// A device that records what is sent and hands out what is queued.
    #[derive(Clone)]
    struct Wire {
        sent: Arc<Mutex<Vec<Vec<u8>>>>,
        incoming: Arc<Mutex<VecDeque<Vec<u8>>>>,
    }

    // Not derived: the no_std build's Mutex has no Default.
    impl Wire {
        fn new() -> Wire {
            Wire {
                sent: Arc::new(Mutex::new(Vec::new())),
                incoming: Arc::new(Mutex::new(VecDeque::new())),
            }
        }
    }

    impl Frames for Wire {
        fn recv(&mut self, buf: &mut [u8]) -> Option<usize> {
            let f = self.incoming.lock().pop_front()?;
            buf[..f.len()].copy_from_slice(&f);
            Some(f.len())
        }
        fn send(&mut self, frame: &[u8]) {
            self.sent.lock().push(frame.to_vec());
        }
        fn mtu(&self) -> usize {
            1500
        }
    }

    fn link(spec: &str) -> (Impair, Wire, Arc<AtomicU64>) {
        let wire = Wire::new();
        let t = Arc::new(AtomicU64::new(1_000_000_000));
        let tc = t.clone();
        let imp = Impair::new(
            Box::new(wire.clone()),
            parse_impair(spec).unwrap(),
            Box::new(move || tc.load(Ordering::Relaxed)),
        );
        (imp, wire, t)
    }

    /// Numbered frames (4 bytes), sent one per millisecond, then all the
    /// time needed: what came out of the device, in order.
    fn send_through(spec: &str, n: u32) -> Vec<u32> {
        let (mut imp, wire, t) = link(spec);
        for i in 0..n {
            imp.send(&i.to_be_bytes());
            t.fetch_add(1_000_000, Ordering::Relaxed);
        }
        t.fetch_add(20_000_000_000, Ordering::Relaxed);
        let mut buf = [0u8; 2000];
        assert_eq!(imp.recv(&mut buf), None);
        assert_eq!(imp.next_due(), None);
        let sent = wire.sent.lock();
        sent.iter()
            .map(|f| u32::from_be_bytes([f[0], f[1], f[2], f[3]]))
            .collect()
    }

    #[test]
    fn specs_parse_and_bad_ones_name_the_variable() {
        assert_eq!(
            parse_impair("loss=5,dup=1,reorder=5,delay=50,seed=7").unwrap(),
            ImpairSpec {
                loss: 5,
                dup: 1,
                reorder: 5,
                delay_ms: 50,
                seed: 7
            }
        );
        assert_eq!(parse_impair("delay=3").unwrap().loss, 0);
        for bad in [
            "",
            "loss",
            "loss=101",
            "loss=-1",
            "jitter=5",
            "delay=20000",
            "seed=x",
            "loss=1,loss=2",
        ] {
            let e = parse_impair(bad).unwrap_err();
            assert!(e.starts_with("USOCK_NETIF_IMPAIR="), "{bad}: {e}");
        }
    }

    #[test]
    fn rates_are_near_the_spec() {
        let n = 20_000;
        let out = send_through("loss=5,dup=1,reorder=5,seed=3", n);
        let mut seen = vec![0u32; n as usize];
        for &i in &out {
            seen[i as usize] += 1;
        }
        let lost = seen.iter().filter(|&&c| c == 0).count() as f64 / f64::from(n);
        let dup = seen.iter().filter(|&&c| c == 2).count() as f64 / f64::from(n);
        let late = out.windows(2).filter(|w| w[0] > w[1]).count() as f64 / f64::from(n);
        assert!((0.04..0.06).contains(&lost), "loss {lost}");
        assert!((0.005..0.015).contains(&dup), "dup {dup}");
        // A held frame is overtaken by the ~10 sent in its 10 ms.
        assert!((0.035..0.065).contains(&late), "reordered {late}");
        assert!(seen.iter().all(|&c| c <= 2));
    }

    #[test]
    fn a_clean_link_keeps_order_and_delays_each_frame() {
        let (mut imp, wire, t) = link("delay=50");
        imp.send(b"a");
        t.fetch_add(10_000_000, Ordering::Relaxed);
        imp.send(b"b");
        assert!(wire.sent.lock().is_empty());
        assert_eq!(imp.next_due(), Some(40_000_000));
        t.fetch_add(40_000_000, Ordering::Relaxed);
        let mut buf = [0u8; 64];
        assert_eq!(imp.recv(&mut buf), None);
        assert_eq!(*wire.sent.lock(), vec![b"a".to_vec()]);
        assert_eq!(imp.next_due(), Some(10_000_000));
        t.fetch_add(10_000_000, Ordering::Relaxed);
        imp.recv(&mut buf);
        assert_eq!(*wire.sent.lock(), vec![b"a".to_vec(), b"b".to_vec()]);
        // The other way: the engine sees a frame only after the delay.
        wire.incoming.lock().push_back(b"in".to_vec());
        assert_eq!(imp.recv(&mut buf), None);
        assert_eq!(imp.next_due(), Some(50_000_000));
        t.fetch_add(50_000_000, Ordering::Relaxed);
        assert_eq!(imp.recv(&mut buf), Some(2));
        assert_eq!(&buf[..2], b"in");
        assert_eq!(imp.next_due(), None);
        let order = send_through("delay=50", 500);
        assert_eq!(order, (0..500).collect::<Vec<_>>());
    }

    #[test]
    fn a_seed_replays_a_run() {
        let spec = "loss=20,dup=10,reorder=10,delay=5,seed=42";
        assert_eq!(send_through(spec, 2000), send_through(spec, 2000));
        assert_ne!(
            send_through(spec, 2000),
            send_through("loss=20,dup=10,reorder=10,delay=5,seed=43", 2000)
        );
    }
}

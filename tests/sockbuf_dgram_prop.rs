//! Property tests of `DgramBuf` against a trivial model.
//!
//! The model keeps the partial datagrams (oldest first) as byte maps, the
//! queue of complete datagrams in completion order, and the charged bytes,
//! and predicts every result: completion, content, boundaries, truncation,
//! completion order, eviction and each rejection reason.

use proptest::prelude::*;
use userspacesock::sockbuf::{DgramBuf, DgramMeta, MAX_ADDR_LEN};

#[path = "sockbuf_model.rs"]
mod model;
use model::DgramModel as Model;

/// A datagram the test "sends": id, source, payload.
#[derive(Debug, Clone)]
struct Dgram {
    id: u64,
    src: Vec<u8>,
    payload: Vec<u8>,
}

#[derive(Debug, Clone)]
enum Op {
    /// Fragment `[s, e)` (taken modulo the datagram's length) of datagram `d`.
    Frag {
        d: usize,
        s: u16,
        e: u16,
    },
    /// A malformed fragment of datagram `d`: wrong total, out of range, ...
    Bad {
        d: usize,
        kind: u8,
        x: u16,
    },
    Read {
        buf: u16,
        src: u8,
    },
    Peek {
        buf: u16,
        src: u8,
    },
    Resize(u16),
    /// Resize to the bytes charged now plus 0..=2 (exactly full is an edge).
    ResizeTight(u8),
}

fn dgrams() -> impl Strategy<Value = Vec<Dgram>> {
    prop::collection::vec(
        (
            0u64..6,
            prop::collection::vec(any::<u8>(), 0..4),
            prop::collection::vec(any::<u8>(), 0..120),
        ),
        1..12,
    )
    .prop_map(|v| {
        v.into_iter()
            .map(|(id, src, payload)| Dgram { id, src, payload })
            .collect()
    })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (0usize..12, any::<u16>(), any::<u16>()).prop_map(|(d, s, e)| Op::Frag { d, s, e }),
        1 => (0usize..12, 0u8..5, any::<u16>()).prop_map(|(d, kind, x)| Op::Bad { d, kind, x }),
        4 => (0u16..140, 0u8..6).prop_map(|(buf, src)| Op::Read { buf, src }),
        1 => (0u16..140, 0u8..6).prop_map(|(buf, src)| Op::Peek { buf, src }),
        1 => (0u16..1200).prop_map(Op::Resize),
        1 => (0u8..3).prop_map(Op::ResizeTight),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn dgram_matches_model(
        cap in 0usize..1200,
        max_partials in 0usize..5,
        holes in 1usize..5,
        dgrams in dgrams(),
        ops in prop::collection::vec(op(), 1..250),
    ) {
        let db = DgramBuf::with_max_holes(cap, max_partials, holes);
        let mut m = Model::new(cap, max_partials, holes);
        for op in ops {
            match op {
                Op::Frag { d, s, e } => {
                    let g = &dgrams[d % dgrams.len()];
                    let n = g.payload.len();
                    let (mut s, mut e) = (s as usize % (n + 1), e as usize % (n + 1));
                    if s > e { std::mem::swap(&mut s, &mut e); }
                    if n > 0 && s == e { e = (s + 1).min(n); s = e - 1; }
                    let total = n as u32;
                    let got = db.insert(g.id, s as u32, total, &g.payload[s..e], &g.src);
                    prop_assert_eq!(got, m.insert(g.id, s as u32, total, &g.payload[s..e], &g.src));
                }
                Op::Bad { d, kind, x } => {
                    let g = &dgrams[d % dgrams.len()];
                    let n = g.payload.len() as u32;
                    let (off, total, data, src): (u32, u32, Vec<u8>, Vec<u8>) = match kind {
                        0 => (0, n + 1 + x as u32 % 5, vec![1], g.src.clone()), // other total
                        1 => (n.saturating_sub(1), n, vec![2, 3], g.src.clone()), // outside
                        2 => (x as u32 % (n + 1), n, vec![], g.src.clone()),    // empty
                        3 => (0, 1, vec![4], vec![0; MAX_ADDR_LEN + 1 + x as usize % 3]),
                        _ => (0, 2000 + x as u32, vec![5], g.src.clone()),      // oversized
                    };
                    let got = db.insert(g.id, off, total, &data, &src);
                    prop_assert_eq!(got, m.insert(g.id, off, total, &data, &src));
                }
                Op::Read { buf, src } | Op::Peek { buf, src } => {
                    let consume = matches!(op, Op::Read { .. });
                    let mut b = vec![0u8; buf as usize];
                    let mut a = vec![0u8; src as usize];
                    let got = if consume { db.read(&mut b, &mut a) } else { db.peek(&mut b, &mut a) };
                    let want = if consume { m.done.pop_front() } else { m.done.front().cloned() };
                    match (got, want) {
                        (None, None) => {}
                        (Some(meta), Some((p, s))) => {
                            let copied = p.len().min(buf as usize);
                            prop_assert_eq!(meta, DgramMeta { len: p.len(), copied, src_len: s.len(), stamp: 0 });
                            prop_assert_eq!(&b[..copied], &p[..copied]);
                            let ac = s.len().min(src as usize);
                            prop_assert_eq!(&a[..ac], &s[..ac]);
                            if consume && copied < p.len() { m.truncated += 1; }
                        }
                        (g, w) => prop_assert!(false, "got {:?} want {:?}", g, w),
                    }
                }
                Op::Resize(c) => {
                    prop_assert_eq!(db.set_capacity(c as usize), m.set_capacity(c as usize));
                }
                Op::ResizeTight(x) => {
                    let c = m.used() as usize + x as usize;
                    prop_assert_eq!(db.set_capacity(c), m.set_capacity(c));
                }
            }
            prop_assert_eq!(db.pending(), m.done.len());
            prop_assert_eq!(db.next_len(), m.done.front().map(|(p, _)| p.len()));
            prop_assert_eq!(db.partials(), m.partials.len());
            prop_assert_eq!(db.capacity() as u64, m.cap);
            prop_assert_eq!(db.used() as u64, m.used() - m.partial_bytes());
            let st = db.stats();
            prop_assert_eq!(st.rejected, m.rejected);
            prop_assert_eq!(st.evicted_partials, m.evicted);
            prop_assert_eq!(st.datagrams_completed, m.completed);
            prop_assert_eq!(st.truncated_reads, m.truncated);
        }
    }

    /// Datagrams cut into fragments, duplicated and shuffled, with room for
    /// all: each is delivered exactly once, whole, in the order in which its
    /// last missing fragment arrived.
    #[test]
    fn dgram_reassembles_in_completion_order(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..20),
        seed in any::<u64>(),
    ) {
        let mut rng = seed | 1;
        let mut next = move || { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; rng };
        let mut frags = Vec::new();
        for (id, p) in payloads.iter().enumerate() {
            let mut s = 0;
            loop {
                let l = if p.is_empty() { 0 } else { 1 + (next() as usize) % p.len() };
                let e = (s + l).min(p.len());
                frags.push((id, s, e));
                if (next() % 4) == 0 { frags.push((id, s, e)); }
                if e == p.len() { break; }
                s = e.saturating_sub((next() as usize) % 3); // overlap a little
            }
        }
        for i in (1..frags.len()).rev() {
            let j = (next() as usize) % (i + 1);
            frags.swap(i, j);
        }
        let db = DgramBuf::new(1 << 20, payloads.len());
        let mut order = Vec::new();
        let mut seen = vec![false; payloads.len()];
        for &(id, s, e) in &frags {
            let p = &payloads[id];
            let src = [id as u8, 0xAA];
            if seen[id] { continue; } // the duplicate of a done datagram would start afresh
            let done = db.insert(id as u64, s as u32, p.len() as u32, &p[s..e], &src).unwrap();
            if done { order.push(id); seen[id] = true; }
        }
        prop_assert_eq!(order.len(), payloads.len());
        for &id in &order {
            let mut b = vec![0u8; 300];
            let mut a = [0u8; 2];
            let meta = db.read(&mut b, &mut a).unwrap();
            prop_assert_eq!(&b[..meta.len], &payloads[id][..]);
            prop_assert_eq!(a, [id as u8, 0xAA]);
        }
        prop_assert!(db.read(&mut [], &mut []).is_none());
    }
}

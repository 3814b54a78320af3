//! Property tests of `StreamBuf` against a trivial model.
//!
//! The model keeps one `Option<u8>` per stream position (relative to the
//! start), the read position, the FIN and the capacity, and predicts the
//! exact result of every call, including each rejection reason and counter.

use proptest::prelude::*;
use userspacesock::sockbuf::{SbError, StreamBuf, MAX_HOLES};

#[path = "sockbuf_model.rs"]
mod model;
use model::StreamModel as Model;

#[derive(Debug, Clone)]
enum Op {
    /// Insert `len` bytes valued `fill, fill+1, ...` at `rel` from the read offset.
    Insert {
        rel: i16,
        len: u8,
        fill: u8,
    },
    Read(u8),
    Peek(u8),
    Fin(i16),
    Resize(u16),
    /// Resize to the span buffered now plus 0..=2 (exactly full is an edge).
    ResizeTight(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (-40i16..180, 0u8..70, any::<u8>()).prop_map(|(rel, len, fill)| Op::Insert { rel, len, fill }),
        4 => any::<u8>().prop_map(Op::Read),
        2 => any::<u8>().prop_map(Op::Peek),
        1 => (-10i16..220).prop_map(Op::Fin),
        1 => (0u16..260).prop_map(Op::Resize),
        1 => (0u8..3).prop_map(Op::ResizeTight),
    ]
}

fn start() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(u64::MAX),
        (0u64..400).prop_map(|d| u64::MAX - d),
        any::<u64>(),
    ]
}

fn check(sb: &StreamBuf, m: &Model, start: u64) {
    let edge = m.edge();
    assert_eq!(sb.readable(), edge - m.head, "readable");
    assert_eq!(
        sb.read_offset(),
        start.wrapping_add(m.head as u64),
        "read_offset"
    );
    assert_eq!(sb.capacity(), m.cap, "capacity");
    assert_eq!(sb.window_end(), start.wrapping_add((m.head + m.cap) as u64));
    assert_eq!(
        sb.has_hole(),
        Model::segments(&m.bytes, edge) > 0,
        "has_hole"
    );
    assert_eq!(sb.fin_received(), m.fin.is_some());
    assert_eq!(sb.at_eof(), m.fin == Some(m.head), "at_eof");
    let st = sb.stats();
    assert_eq!(st.rejected, m.rejected, "rejection counters");
    assert_eq!(st.bytes_in, m.bytes_in, "bytes_in");
    assert_eq!(st.bytes_read, m.bytes_read, "bytes_read");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    /// Every call on a `StreamBuf` gives exactly the model's answer.
    #[test]
    fn stream_matches_model(
        start in start(),
        cap in 0usize..200,
        holes in prop_oneof![1usize..6, Just(MAX_HOLES)],
        ops in prop::collection::vec(op(), 1..250),
    ) {
        let sb = StreamBuf::with_max_holes(start, cap, holes);
        let mut m = Model::new(cap, holes);
        for op in ops {
            match op {
                Op::Insert { rel, len, fill } => {
                    let pos = m.head as i64 + rel as i64;
                    if pos < 0 { continue; }
                    let pos = pos as usize;
                    let data: Vec<u8> = (0..len).map(|i| fill.wrapping_add(i)).collect();
                    let got = sb.insert(start.wrapping_add(pos as u64), &data);
                    prop_assert_eq!(got, m.insert(pos, &data), "insert at {} len {}", pos, len);
                }
                Op::Read(n) | Op::Peek(n) => {
                    let consume = matches!(op, Op::Read(_));
                    let mut buf = vec![0u8; n as usize];
                    let k = if consume { sb.read(&mut buf) } else { sb.peek(&mut buf) };
                    let want = m.take(n as usize, consume);
                    prop_assert_eq!(&buf[..k], &want[..]);
                }
                Op::Fin(rel) => {
                    let pos = m.head as i64 + rel as i64;
                    if pos < 0 { continue; }
                    let got = sb.insert_fin(start.wrapping_add(pos as u64));
                    prop_assert_eq!(got, m.insert_fin(pos as usize));
                }
                Op::Resize(c) => {
                    prop_assert_eq!(sb.set_capacity(c as usize), m.set_capacity(c as usize));
                }
                Op::ResizeTight(x) => {
                    let c = m.buffered_end() - m.head + x as usize;
                    prop_assert_eq!(sb.set_capacity(c), m.set_capacity(c));
                }
            }
            check(&sb, &m, start);
        }
    }

    /// A random stream, cut into random fragments, with extra overlapping and
    /// duplicated fragments, delivered in a random order (refused fragments
    /// are "retransmitted" later) and read back in random sizes with peeks,
    /// equals the input; the FIN then reads as EOF. Also shows the stream
    /// never stalls on the hole cap (smoltcp #452).
    #[test]
    fn stream_reassembles_permuted_fragments(
        start in start(),
        data in prop::collection::vec(any::<u8>(), 0..3000),
        cuts in prop::collection::vec(any::<u16>(), 0..80),
        extras in prop::collection::vec((any::<u16>(), 1u16..300), 0..40),
        dups in 0usize..20,
        cap_extra in 0usize..2000,
        holes in prop_oneof![1usize..4, Just(MAX_HOLES)],
        seed in any::<u64>(),
    ) {
        let mut rng = seed | 1;
        let mut next = move || { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; rng };
        let n = data.len();
        // Cut points -> a tiling of [0, n).
        let mut pts: Vec<usize> = cuts.iter().map(|&c| c as usize % (n + 1)).collect();
        pts.push(0);
        pts.push(n);
        pts.sort();
        pts.dedup();
        let mut frags: Vec<(usize, usize)> = pts.windows(2).map(|w| (w[0], w[1])).collect();
        // Overlapping extras and duplicates.
        for &(s, l) in &extras {
            if n == 0 { break; }
            let s = s as usize % n;
            frags.push((s, (s + l as usize).min(n)));
        }
        for _ in 0..dups {
            if frags.is_empty() { break; }
            let f = frags[(next() as usize) % frags.len()];
            frags.push(f);
        }
        // Shuffle (Fisher-Yates).
        for i in (1..frags.len()).rev() {
            let j = (next() as usize) % (i + 1);
            frags.swap(i, j);
        }
        let max_frag = frags.iter().map(|&(s, e)| e - s).max().unwrap_or(0);
        let cap = max_frag.max(1) + cap_extra;
        let sb = StreamBuf::with_max_holes(start, cap, holes);
        let fin = start.wrapping_add(n as u64);
        let mut queue: std::collections::VecDeque<(usize, usize)> = frags.into();
        let mut out = Vec::new();
        let mut fin_sent = false;
        let mut stalled = 0usize;
        let mut steps = 0usize;
        while !sb.at_eof() {
            steps += 1;
            prop_assert!(steps < 200_000, "no progress");
            let r = next();
            if r % 4 == 0 || queue.is_empty() || stalled > queue.len() {
                // Read or peek a random amount (everything when stalled).
                let want = if stalled > queue.len() { usize::MAX >> 1 } else { (r >> 8) as usize % 500 };
                let mut buf = vec![0u8; want.min(cap + 1)];
                if r % 3 == 0 && stalled <= queue.len() {
                    let k = sb.peek(&mut buf);
                    prop_assert_eq!(&buf[..k], &data[out.len()..out.len() + k]);
                } else {
                    let k = sb.read(&mut buf);
                    out.extend_from_slice(&buf[..k]);
                }
                stalled = 0;
                if queue.is_empty() && !fin_sent {
                    prop_assert_eq!(sb.insert_fin(fin), Ok(()));
                    fin_sent = true;
                }
                continue;
            }
            let (s, e) = queue.pop_front().unwrap();
            if s == e { continue; }
            match sb.insert(start.wrapping_add(s as u64), &data[s..e]) {
                Ok(_) => stalled = 0,
                Err(SbError::BeyondWindow) | Err(SbError::TooManyHoles) => {
                    // Refused: retransmitted later. Never at the read edge.
                    let edge = (sb.read_offset().wrapping_sub(start)) as usize + sb.readable();
                    prop_assert!(s > edge || e - edge.min(e) > cap - sb.readable(),
                        "refused a fragment at the edge: {}..{} edge {}", s, e, edge);
                    queue.push_back((s, e));
                    stalled += 1;
                }
                Err(other) => prop_assert!(false, "unexpected {:?}", other),
            }
        }
        prop_assert_eq!(out, data);
        prop_assert!(!sb.has_hole());
        prop_assert_eq!(sb.stats().bytes_in, n as u64);
    }
}

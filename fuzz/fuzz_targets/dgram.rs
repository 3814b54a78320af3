//! Fuzz `DgramBuf`: arbitrary fragment/read/peek/resize sequences, each
//! result checked against the shared reference model. Fragments are either
//! cut from a few "true" datagrams (so datagrams do complete) or raw
//! arbitrary (id, offset, total, bytes, source) tuples.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use userspacesock::sockbuf::{DgramBuf, DgramMeta};

#[path = "../../tests/sockbuf_model.rs"]
mod model;
use model::DgramModel;

#[derive(Arbitrary, Debug)]
enum Op {
    Frag {
        d: u8,
        s: u16,
        e: u16,
    },
    Raw {
        id: u8,
        off: u16,
        total: u16,
        len: u8,
        src_len: u8,
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
}

#[derive(Arbitrary, Debug)]
struct Input {
    cap: u16,
    max_partials: u8,
    holes: u8,
    /// (id, source length, payload length) of the "true" datagrams.
    dgrams: Vec<(u8, u8, u16)>,
    ops: Vec<Op>,
}

fuzz_target!(|inp: Input| {
    let cap = inp.cap as usize;
    let max_partials = inp.max_partials as usize % 8;
    let holes = 1 + inp.holes as usize % 6;
    let db = DgramBuf::with_max_holes(cap, max_partials, holes);
    let mut m = DgramModel::new(cap, max_partials, holes);
    let dgrams: Vec<(u64, Vec<u8>, Vec<u8>)> = inp
        .dgrams
        .iter()
        .take(16)
        .map(|&(id, sl, pl)| {
            let src = (0..sl % 140).map(|i| i ^ id).collect();
            let payload = (0..pl % 2000)
                .map(|i| (i as u8) ^ id.wrapping_mul(7))
                .collect();
            (id as u64 % 8, src, payload)
        })
        .collect();
    for op in inp.ops.iter().take(2000) {
        match *op {
            Op::Frag { d, s, e } => {
                let Some((id, src, p)) = dgrams.get(d as usize % dgrams.len().max(1)) else {
                    continue;
                };
                let n = p.len();
                let (mut s, mut e) = (s as usize % (n + 1), e as usize % (n + 1));
                if s > e {
                    std::mem::swap(&mut s, &mut e);
                }
                let got = db.insert(*id, s as u32, n as u32, &p[s..e], src);
                assert_eq!(got, m.insert(*id, s as u32, n as u32, &p[s..e], src));
            }
            Op::Raw {
                id,
                off,
                total,
                len,
                src_len,
            } => {
                let data: Vec<u8> = (0..len).map(|i| i.wrapping_mul(3)).collect();
                let src: Vec<u8> = (0..src_len % 140).collect();
                let (off, total) = (off as u32 % 600, total as u32 % 600);
                let got = db.insert(id as u64 % 8, off, total, &data, &src);
                assert_eq!(got, m.insert(id as u64 % 8, off, total, &data, &src));
            }
            Op::Read { buf, src } | Op::Peek { buf, src } => {
                let consume = matches!(op, Op::Read { .. });
                let (bl, al) = (buf as usize % 2100, src as usize % 140);
                let mut b = vec![0u8; bl];
                let mut a = vec![0u8; al];
                let got = if consume {
                    db.read(&mut b, &mut a)
                } else {
                    db.peek(&mut b, &mut a)
                };
                let want = if consume {
                    m.done.pop_front()
                } else {
                    m.done.front().cloned()
                };
                match (got, want) {
                    (None, None) => {}
                    (Some(meta), Some((p, s))) => {
                        let copied = p.len().min(bl);
                        assert_eq!(
                            meta,
                            DgramMeta {
                                len: p.len(),
                                copied,
                                src_len: s.len(),
                                stamp: 0
                            }
                        );
                        assert_eq!(&b[..copied], &p[..copied]);
                        let ac = s.len().min(al);
                        assert_eq!(&a[..ac], &s[..ac]);
                        if consume && copied < p.len() {
                            m.truncated += 1;
                        }
                    }
                    (g, w) => panic!("got {g:?} want {w:?}"),
                }
            }
            Op::Resize(c) => {
                assert_eq!(db.set_capacity(c as usize), m.set_capacity(c as usize));
            }
        }
        assert_eq!(db.pending(), m.done.len());
        assert_eq!(db.next_len(), m.done.front().map(|(p, _)| p.len()));
        assert_eq!(db.partials(), m.partials.len());
        let st = db.stats();
        assert_eq!(st.rejected, m.rejected);
        assert_eq!(st.evicted_partials, m.evicted);
        assert_eq!(st.datagrams_completed, m.completed);
        assert_eq!(st.truncated_reads, m.truncated);
    }
});

//! Fuzz `StreamBuf`: arbitrary insert/FIN/read/peek/resize sequences, each
//! result checked against the shared reference model.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use userspacesock::sockbuf::{StreamBuf, MAX_HOLES};

#[path = "../../tests/sockbuf_model.rs"]
mod model;
use model::StreamModel;

#[derive(Arbitrary, Debug)]
enum Op {
    Insert { rel: i16, len: u8, fill: u8 },
    Read(u8),
    Peek(u8),
    Fin(i16),
    Resize(u16),
}

#[derive(Arbitrary, Debug)]
struct Input {
    start: u64,
    near_wrap: bool,
    cap: u16,
    holes: u8,
    ops: Vec<Op>,
}

fuzz_target!(|inp: Input| {
    let start = if inp.near_wrap {
        u64::MAX - (inp.start % 512)
    } else {
        inp.start
    };
    let cap = inp.cap as usize % 1024;
    let holes = 1 + inp.holes as usize % MAX_HOLES;
    let sb = StreamBuf::with_max_holes(start, cap, holes);
    let mut m = StreamModel::new(cap, holes);
    for op in inp.ops.iter().take(2000) {
        match *op {
            Op::Insert { rel, len, fill } => {
                let pos = m.head as i64 + rel as i64;
                if pos < 0 {
                    continue;
                }
                let pos = pos as usize;
                let data: Vec<u8> = (0..len).map(|i| fill.wrapping_add(i)).collect();
                let got = sb.insert(start.wrapping_add(pos as u64), &data);
                assert_eq!(got, m.insert(pos, &data), "insert at {pos} len {len}");
            }
            Op::Read(n) | Op::Peek(n) => {
                let consume = matches!(op, Op::Read(_));
                let mut buf = vec![0u8; n as usize];
                let k = if consume {
                    sb.read(&mut buf)
                } else {
                    sb.peek(&mut buf)
                };
                assert_eq!(&buf[..k], &m.take(n as usize, consume)[..]);
            }
            Op::Fin(rel) => {
                let pos = m.head as i64 + rel as i64;
                if pos < 0 {
                    continue;
                }
                let got = sb.insert_fin(start.wrapping_add(pos as u64));
                assert_eq!(got, m.insert_fin(pos as usize));
            }
            Op::Resize(c) => {
                let c = c as usize % 1100;
                assert_eq!(sb.set_capacity(c), m.set_capacity(c));
            }
        }
        let edge = m.edge();
        assert_eq!(sb.readable(), edge - m.head);
        assert_eq!(sb.read_offset(), start.wrapping_add(m.head as u64));
        assert_eq!(sb.capacity(), m.cap);
        assert_eq!(sb.has_hole(), StreamModel::segments(&m.bytes, edge) > 0);
        assert_eq!(sb.at_eof(), m.fin == Some(m.head));
        let st = sb.stats();
        assert_eq!(st.rejected, m.rejected);
        assert_eq!((st.bytes_in, st.bytes_read), (m.bytes_in, m.bytes_read));
    }
});

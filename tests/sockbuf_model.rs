//! Trivial reference models of `StreamBuf` and `DgramBuf`, shared by the
//! property tests (`#[path]` module) and the fuzz targets in `fuzz/`.
//!
//! They are deliberately naive (a byte map per stream or datagram, linear
//! scans, recomputation from scratch) so that they are obviously right; each
//! predicts the exact result of every call, including the rejection reason.
//! Also built on its own as a test target: its few tests check the models
//! against hand-worked answers.
#![allow(dead_code)]

use std::collections::VecDeque;

use userspacesock::sockbuf::SbError;

/// Longest source address a datagram may carry (src/sockbuf/README.md:
/// `AddrTooLong` above 128). The model's own copy: only the error
/// vocabulary comes from the implementation.
pub const ADDR_MAX: usize = 128;

/// What a datagram of `total` bytes from a `src_len`-byte address costs in
/// the receive buffer, worked out here from the record the README
/// documents (`[len u32][src_len u32][stamp u64][src][payload]`): a
/// 4-byte payload length, a 4-byte address length, an 8-byte receive time,
/// the address, the payload. A partial
/// datagram is charged its whole record from its first fragment, so that
/// completing it never needs more room. Independent of the
/// implementation's `dgram_charge` on purpose: a model that borrowed it
/// would agree with any mistake in it.
pub fn record_charge(total: u32, src_len: usize) -> u64 {
    4 + 4 + 8 + src_len as u64 + u64::from(total)
}

/// Stream model: one `Option<u8>` per position relative to the start,
/// recomputed from scratch on every question.
pub struct StreamModel {
    pub bytes: Vec<Option<u8>>,
    pub head: usize,
    pub cap: usize,
    pub fin: Option<usize>,
    pub max_holes: usize,
    pub rejected: [u64; SbError::COUNT],
    pub bytes_in: u64,
    pub bytes_read: u64,
}

impl StreamModel {
    /// An empty model with window `cap` and hole cap `max_holes`.
    pub fn new(cap: usize, max_holes: usize) -> Self {
        StreamModel {
            bytes: Vec::new(),
            head: 0,
            cap,
            fin: None,
            max_holes,
            rejected: [0; SbError::COUNT],
            bytes_in: 0,
            bytes_read: 0,
        }
    }
    pub fn get(&self, i: usize) -> Option<u8> {
        self.bytes.get(i).copied().flatten()
    }
    /// First missing position at or after the read position.
    pub fn edge(&self) -> usize {
        let mut e = self.head;
        while self.get(e).is_some() {
            e += 1;
        }
        e
    }
    /// One past the last present position (at least the read position).
    pub fn buffered_end(&self) -> usize {
        let last = self
            .bytes
            .iter()
            .rposition(|b| b.is_some())
            .map_or(0, |i| i + 1);
        last.max(self.head)
    }
    /// Number of present runs beyond the contiguous edge.
    pub fn segments(bytes: &[Option<u8>], edge: usize) -> usize {
        let mut n = 0;
        let mut prev = false;
        for b in bytes.iter().skip(edge) {
            let cur = b.is_some();
            if cur && !prev {
                n += 1;
            }
            prev = cur;
        }
        n
    }
    pub fn reject(&mut self, e: SbError) -> Result<usize, SbError> {
        self.rejected[e.index()] += 1;
        Err(e)
    }
    pub fn insert(&mut self, pos: usize, data: &[u8]) -> Result<usize, SbError> {
        if data.is_empty() {
            return self.reject(SbError::ZeroLength);
        }
        let end = pos + data.len();
        if end <= self.head {
            return Ok(0);
        }
        if end - self.head > self.cap {
            return self.reject(SbError::BeyondWindow);
        }
        if let Some(f) = self.fin {
            if end > f {
                return self.reject(SbError::DataBeyondFin);
            }
        }
        let old_edge = self.edge();
        let mut next = self.bytes.clone();
        if next.len() < end {
            next.resize(end, None);
        }
        let mut new = 0;
        for (i, &b) in data.iter().enumerate() {
            let p = pos + i;
            if p >= self.head && next[p].is_none() {
                next[p] = Some(b);
                new += 1;
            }
        }
        let saved = std::mem::replace(&mut self.bytes, next);
        let new_edge = self.edge();
        if Self::segments(&self.bytes, new_edge) > self.max_holes {
            self.bytes = saved;
            return self.reject(SbError::TooManyHoles);
        }
        self.bytes_in += new;
        Ok(new_edge - old_edge)
    }
    pub fn insert_fin(&mut self, pos: usize) -> Result<(), SbError> {
        if let Some(f) = self.fin {
            return if f == pos {
                Ok(())
            } else {
                self.reject(SbError::ConflictingFin).map(|_| ())
            };
        }
        if pos < self.buffered_end() {
            return self.reject(SbError::DataBeyondFin).map(|_| ());
        }
        if pos - self.head > self.cap {
            return self.reject(SbError::BeyondWindow).map(|_| ());
        }
        self.fin = Some(pos);
        Ok(())
    }
    pub fn take(&mut self, n: usize, consume: bool) -> Vec<u8> {
        let k = n.min(self.edge() - self.head);
        let out: Vec<u8> = (self.head..self.head + k)
            .map(|i| self.get(i).unwrap())
            .collect();
        if consume {
            self.head += k;
            self.bytes_read += k as u64;
        }
        out
    }
    pub fn set_capacity(&mut self, c: usize) -> Result<(), SbError> {
        if c < self.buffered_end() - self.head {
            return self.reject(SbError::ShrinkBelowBuffered).map(|_| ());
        }
        self.cap = c;
        Ok(())
    }
}

pub struct PartialModel {
    pub id: u64,
    pub src: Vec<u8>,
    pub total: u32,
    pub bytes: Vec<Option<u8>>,
}

impl PartialModel {
    pub fn charge(&self) -> u64 {
        record_charge(self.total, self.src.len())
    }
    pub fn edge(&self) -> usize {
        self.bytes
            .iter()
            .position(|b| b.is_none())
            .unwrap_or(self.bytes.len())
    }
    pub fn segments(bytes: &[Option<u8>]) -> usize {
        let edge = bytes
            .iter()
            .position(|b| b.is_none())
            .unwrap_or(bytes.len());
        let mut n = 0;
        let mut prev = false;
        for b in &bytes[edge..] {
            if b.is_some() && !prev {
                n += 1;
            }
            prev = b.is_some();
        }
        n
    }
}

pub struct DgramModel {
    pub cap: u64,
    pub max_partials: usize,
    pub max_holes: usize,
    pub partials: Vec<PartialModel>,
    pub done: VecDeque<(Vec<u8>, Vec<u8>)>,
    pub rejected: [u64; SbError::COUNT],
    pub evicted: u64,
    pub completed: u64,
    pub truncated: u64,
}

/// Datagram model: partials oldest first as byte maps, complete datagrams in
/// completion order, charged bytes recomputed from scratch.
impl DgramModel {
    /// An empty model.
    pub fn new(cap: usize, max_partials: usize, max_holes: usize) -> Self {
        DgramModel {
            cap: cap as u64,
            max_partials,
            max_holes,
            partials: Vec::new(),
            done: VecDeque::new(),
            rejected: [0; SbError::COUNT],
            evicted: 0,
            completed: 0,
            truncated: 0,
        }
    }
    pub fn used(&self) -> u64 {
        let d: u64 = self
            .done
            .iter()
            .map(|(p, s)| record_charge(p.len() as u32, s.len()))
            .sum();
        d + self.partial_bytes()
    }
    pub fn partial_bytes(&self) -> u64 {
        self.partials.iter().map(|p| p.charge()).sum()
    }
    pub fn reject(&mut self, e: SbError) -> Result<bool, SbError> {
        self.rejected[e.index()] += 1;
        Err(e)
    }
    pub fn insert(
        &mut self,
        id: u64,
        off: u32,
        total: u32,
        data: &[u8],
        src: &[u8],
    ) -> Result<bool, SbError> {
        if src.len() > ADDR_MAX {
            return self.reject(SbError::AddrTooLong);
        }
        if off as u64 + data.len() as u64 > total as u64 {
            return self.reject(SbError::OutsideDatagram);
        }
        if data.is_empty() && total != 0 {
            return self.reject(SbError::ZeroLength);
        }
        let charge = record_charge(total, src.len());
        if charge > self.cap {
            return self.reject(SbError::Oversized);
        }
        if let Some(i) = self
            .partials
            .iter()
            .position(|p| p.id == id && p.src == src)
        {
            if self.partials[i].total != total {
                return self.reject(SbError::ConflictingLength);
            }
            let mut next = self.partials[i].bytes.clone();
            for (k, &b) in data.iter().enumerate() {
                let slot = &mut next[off as usize + k];
                if slot.is_none() {
                    *slot = Some(b);
                }
            }
            if PartialModel::segments(&next) > self.max_holes {
                return self.reject(SbError::TooManyHoles);
            }
            self.partials[i].bytes = next;
            if self.partials[i].edge() == total as usize {
                let p = self.partials.remove(i);
                self.done
                    .push_back((p.bytes.into_iter().map(|b| b.unwrap()).collect(), p.src));
                self.completed += 1;
                return Ok(true);
            }
            return Ok(false);
        }
        let alone = off == 0 && data.len() == total as usize;
        let free = self.cap.saturating_sub(self.used());
        if free < charge && free + self.partial_bytes() < charge {
            return self.reject(SbError::NoRoom);
        }
        if !alone && self.max_partials == 0 {
            return self.reject(SbError::TooManyPartials);
        }
        while !self.partials.is_empty()
            && (self.cap.saturating_sub(self.used()) < charge
                || (!alone && self.partials.len() >= self.max_partials))
        {
            self.partials.remove(0);
            self.evicted += 1;
        }
        if alone {
            self.done.push_back((data.to_vec(), src.to_vec()));
            self.completed += 1;
            return Ok(true);
        }
        let mut bytes = vec![None; total as usize];
        for (k, &b) in data.iter().enumerate() {
            bytes[off as usize + k] = Some(b);
        }
        self.partials.push(PartialModel {
            id,
            src: src.to_vec(),
            total,
            bytes,
        });
        Ok(false)
    }
    pub fn set_capacity(&mut self, c: usize) -> Result<(), SbError> {
        if (c as u64) < self.used() {
            return self.reject(SbError::ShrinkBelowBuffered).map(|_| ());
        }
        self.cap = c as u64;
        Ok(())
    }
}

#[test]
fn models_agree_with_hand_worked_answers() {
    let mut m = StreamModel::new(10, 1);
    assert_eq!(m.insert(3, b"de"), Ok(0));
    assert_eq!(m.insert(7, b"h"), Err(SbError::TooManyHoles));
    assert_eq!(m.insert(0, b"abc"), Ok(5));
    assert_eq!(m.insert(6, b"0123456"), Err(SbError::BeyondWindow));
    assert_eq!(m.take(9, true), b"abcde");
    assert_eq!(m.insert_fin(4), Err(SbError::DataBeyondFin));
    let mut d = DgramModel::new(100, 1, 4);
    assert_eq!(d.insert(1, 2, 4, b"cd", b"s"), Ok(false));
    assert_eq!(d.insert(2, 0, 4, b"ab", b"s"), Ok(false));
    assert_eq!(d.evicted, 1);
    assert_eq!(d.insert(2, 2, 4, b"cd", b"s"), Ok(true));
    assert_eq!(d.done.front().map(|x| x.0.clone()), Some(b"abcd".to_vec()));
    // A 5-byte datagram from a 16-byte sockaddr_in: 4 + 4 + 8 + 16 + 5.
    assert_eq!(record_charge(5, 16), 37);
    // Room for exactly one such record: a second is NoRoom, not evicted.
    let mut d = DgramModel::new(37, 4, 4);
    assert_eq!(d.insert(1, 0, 5, b"hello", &[0; 16]), Ok(true));
    assert_eq!(d.used(), 37);
    assert_eq!(d.insert(2, 0, 1, b"x", &[]), Err(SbError::NoRoom));
}

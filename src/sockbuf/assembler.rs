//! Bounded out-of-order bookkeeping (offsets and sizes only).
//!
//! Modelled on smoltcp's `storage/assembler.rs`: the payload is written
//! straight into its final place (the ring, or a partial datagram's storage);
//! the assembler only remembers which ranges beyond the contiguous edge are
//! filled. Coordinates are relative to the contiguous edge (0 = the first
//! byte not yet contiguous), so the segments never need serial arithmetic.
//!
//! The list is allocated (`max` entries, once) when the first hole
//! appears: an in-order stream, and every idle socket, never has one, and
//! a fixed array cost each Socket Buffer 512 bytes (issue 15's memory per
//! idle connection).
//!
//! Invariant: `segs` (its length is `n`) is sorted, non-empty, non-adjacent, and each
//! starts strictly after 0 (a segment touching the edge is merged into it).
//! So each segment is preceded by exactly one hole, and `n` is the number of
//! holes. When a fragment would need one more segment than `max`, it is
//! refused with `TooManyHoles` and nothing changes. A fragment starting at the
//! contiguous edge (relative 0) never adds a segment and is never refused:
//! refusing it could stall the stream for good (smoltcp issue #452).

use alloc::vec::Vec;

use super::SbError;

/// The most out-of-order segments (holes) one assembler can track.
pub const MAX_HOLES: usize = crate::config::MAX_HOLES;

/// Bounded segment list; see the module docs.
#[derive(Clone)]
pub(crate) struct Assembler {
    /// The segments; its capacity is 0 until the first hole, then `max`.
    segs: Vec<(u64, u64)>,
    max: usize,
}

/// Outcome of a successful [`Assembler::insert`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Added {
    /// How far the contiguous edge moved (bytes that became contiguous).
    pub(crate) advance: u64,
    /// Bytes that were not present before (the gaps that were written).
    pub(crate) new_bytes: u64,
}

impl Assembler {
    /// An empty assembler tracking at most `max` segments (clamped to
    /// `1..=MAX_HOLES`).
    pub(crate) fn new(max: usize) -> Assembler {
        Assembler {
            segs: Vec::new(),
            max: max.clamp(1, MAX_HOLES),
        }
    }

    /// True when no out-of-order data is tracked.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.segs.is_empty()
    }

    /// Relative end of the last out-of-order segment (0 if none).
    pub(crate) fn last_end(&self) -> u64 {
        self.segs.last().map_or(0, |&(_, e)| e)
    }

    /// Number of segments (= holes) tracked.
    #[allow(dead_code)]
    pub(crate) fn holes(&self) -> usize {
        self.segs.len()
    }

    /// Add the range `[a, b)` (relative to the contiguous edge, `a < b`).
    ///
    /// Calls `write(rel_start, len)` for every gap of `[a, b)` not already
    /// filled (first copy wins: filled bytes are never written again), in
    /// increasing order, *after* checking that the range can be accepted, and
    /// then records it. On `Err(TooManyHoles)` nothing was written or changed.
    pub(crate) fn insert(
        &mut self,
        a: u64,
        b: u64,
        mut write: impl FnMut(u64, u64),
    ) -> Result<Added, SbError> {
        if a >= b {
            return Ok(Added {
                advance: 0,
                new_bytes: 0,
            });
        }
        let segs = self.segs.as_slice();
        // First segment ending at or after `a` (overlapping or adjacent on
        // the left), and one past the last segment starting at or before `b`.
        let i = segs.iter().position(|&(_, e)| e >= a).unwrap_or(segs.len());
        let j = segs.iter().rposition(|&(s, _)| s <= b).map_or(0, |k| k + 1);
        let merged = j.saturating_sub(i);
        if a > 0 && merged == 0 {
            if segs.len() >= self.max {
                return Err(SbError::TooManyHoles);
            }
            // The first hole allocates the list, before anything is written
            // (once: `clear` keeps it, so no later call allocates).
            if self.segs.capacity() == 0 && self.segs.try_reserve_exact(self.max).is_err() {
                return Err(SbError::OutOfMemory);
            }
        }
        let segs = self.segs.as_slice();

        // Write the gaps of [a, b) between the segments i..j.
        let mut cursor = a;
        let mut new_bytes = 0u64;
        for &(s, e) in segs.get(i..j).unwrap_or(&[]) {
            if s > cursor {
                let gap_end = core::cmp::min(s, b);
                write(cursor, gap_end - cursor);
                new_bytes += gap_end - cursor;
            }
            cursor = core::cmp::max(cursor, e);
        }
        if cursor < b {
            write(cursor, b - cursor);
            new_bytes += b - cursor;
        }

        // The union of [a, b) with segments i..j.
        let (ms, me) = match (segs.get(i), j.checked_sub(1).and_then(|k| segs.get(k))) {
            (Some(&(fs, _)), Some(&(_, le))) if merged > 0 => {
                (core::cmp::min(a, fs), core::cmp::max(b, le))
            }
            _ => (a, b),
        };

        if ms == 0 {
            // Joined the contiguous edge: drop segments 0..j (i is 0 here,
            // since every segment ends after 0) and rebase the rest.
            let advance = me;
            self.remove_range(0, j);
            for seg in self.segs.iter_mut() {
                seg.0 -= advance;
                seg.1 -= advance;
            }
            Ok(Added { advance, new_bytes })
        } else {
            if merged > 0 {
                // Replace segments i..j by the single merged one.
                if let Some(seg) = self.segs.get_mut(i) {
                    *seg = (ms, me);
                }
                self.remove_range(i + 1, j);
            } else {
                // A new isolated segment at index i (room checked above).
                self.insert_at(i, (ms, me));
            }
            Ok(Added {
                advance: 0,
                new_bytes,
            })
        }
    }

    /// Remove `segs[from..to]`.
    fn remove_range(&mut self, from: usize, to: usize) {
        let to = core::cmp::min(to, self.segs.len());
        if from < to {
            self.segs.drain(from..to);
        }
    }

    /// Insert `seg` at index `at`, within the capacity `insert` reserved
    /// (so it never allocates).
    fn insert_at(&mut self, at: usize, seg: (u64, u64)) {
        if self.segs.len() >= self.segs.capacity() || at > self.segs.len() {
            return;
        }
        self.segs.insert(at, seg);
    }

    /// Forget everything (a stream that starts anew), keeping the list's
    /// memory.
    pub(crate) fn clear(&mut self) {
        self.segs.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    /// Bitmap model: byte i filled or not; the edge is the first unfilled.
    #[test]
    fn the_list_is_made_at_the_first_hole_and_kept() {
        let mut asm = Assembler::new(4);
        asm.insert(0, 10, |_, _| {}).unwrap();
        assert_eq!(asm.segs.capacity(), 0, "in-order bytes made a list");
        asm.insert(5, 8, |_, _| {}).unwrap();
        assert_eq!(asm.holes(), 1);
        assert_eq!(asm.segs.capacity(), 4);
        for k in 0..3 {
            asm.insert(10 + 3 * k, 11 + 3 * k, |_, _| {}).unwrap();
        }
        assert_eq!(asm.holes(), 4);
        assert!(matches!(
            asm.insert(20, 21, |_, _| {}),
            Err(SbError::TooManyHoles)
        ));
        assert_eq!(asm.segs.capacity(), 4, "the list grew past its bound");
        asm.clear();
        assert!(asm.is_empty());
        assert_eq!(asm.segs.capacity(), 4, "clear gave the list back");
    }

    #[test]
    fn against_bitmap() {
        // Deterministic pseudo-random ranges (xorshift), checked byte by byte.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for round in 0..200 {
            let mut asm = Assembler::new(1 + round % 6);
            let mut filled = vec![false; 256];
            let mut edge = 0u64; // absolute contiguous edge
            for _ in 0..60 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let s = x % 200;
                let l = 1 + (x >> 20) % 40;
                let (s, e) = (s, s + l);
                if e <= edge {
                    continue;
                }
                let a = s.saturating_sub(edge);
                let b = e - edge;
                let before = filled.clone();
                let mut wrote: Vec<(u64, u64)> = Vec::new();
                match asm.insert(a, b, |r, n| wrote.push((r + edge, n))) {
                    Ok(added) => {
                        let mut newb = 0;
                        for &(p, n) in &wrote {
                            for k in p..p + n {
                                assert!(!filled[k as usize], "rewrote a filled byte");
                                filled[k as usize] = true;
                                newb += 1;
                            }
                        }
                        for k in s.max(edge)..e {
                            assert!(filled[k as usize]);
                        }
                        assert_eq!(newb, added.new_bytes);
                        let mut ne = edge;
                        while filled[ne as usize] {
                            ne += 1;
                        }
                        assert_eq!(ne - edge, added.advance);
                        edge = ne;
                    }
                    Err(SbError::TooManyHoles) => {
                        assert!(a > 0, "refused a fragment at the edge (#452)");
                        assert!(wrote.is_empty());
                        assert_eq!(before, filled);
                    }
                    Err(e) => panic!("unexpected {e:?}"),
                }
                // Segments must mirror the bitmap beyond the edge.
                let mut segs = Vec::new();
                let mut k = edge as usize;
                while k < filled.len() {
                    if filled[k] {
                        let st = k;
                        while k < filled.len() && filled[k] {
                            k += 1;
                        }
                        segs.push(((st as u64) - edge, (k as u64) - edge));
                    } else {
                        k += 1;
                    }
                }
                assert_eq!(&asm.segs[..], &segs[..]);
                assert!(asm.segs.len() <= asm.max);
            }
        }
    }
}

//! CRC-32C (Castagnoli), the checksum of the fragment encoding.
//!
//! Every byte a frame-carrying backend ships is summed twice (encode and
//! decode), so a byte-at-a-time table (about 0.5 GB/s) capped the
//! cross-process transport. This module uses the CPU's CRC-32C instruction
//! (`platform::cpu`: SSE4.2 `crc32`, about 8 bytes every 3 cycles) when
//! there is one, else slice-by-8
//! tables (several GB/s); both compute exactly the same function, which the
//! tests check against each other and against the standard check values.

/// Slice-by-8 tables: `T[0]` is the classic byte table; `T[k][i]` is the CRC
/// of byte `i` followed by `k` zero bytes (reflected polynomial
/// `0x82F63B78`). Built at compile time.
const TABLES: [[u32; 256]; 8] = {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut bit = 0;
        while bit < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82F6_3B78
            } else {
                c >> 1
            };
            bit += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[k - 1][i];
            t[k][i] = (prev >> 8) ^ t[0][(prev & 0xFF) as usize];
            i += 1;
        }
        k += 1;
    }
    t
};

/// One table lookup per byte; the reference the fast paths are tested
/// against.
fn bytewise(mut c: u32, bytes: &[u8]) -> u32 {
    for &b in bytes {
        c = (c >> 8) ^ TABLES[0][usize::from((c as u8) ^ b)];
    }
    c
}

/// Slice-by-8: eight independent lookups per 8 bytes.
fn slice8(mut c: u32, bytes: &[u8]) -> u32 {
    let mut chunks = bytes.chunks_exact(8);
    for ch in &mut chunks {
        let lo = u32::from_le_bytes([ch[0], ch[1], ch[2], ch[3]]) ^ c;
        let hi = u32::from_le_bytes([ch[4], ch[5], ch[6], ch[7]]);
        c = TABLES[7][(lo & 0xFF) as usize]
            ^ TABLES[6][((lo >> 8) & 0xFF) as usize]
            ^ TABLES[5][((lo >> 16) & 0xFF) as usize]
            ^ TABLES[4][(lo >> 24) as usize]
            ^ TABLES[3][(hi & 0xFF) as usize]
            ^ TABLES[2][((hi >> 8) & 0xFF) as usize]
            ^ TABLES[1][((hi >> 16) & 0xFF) as usize]
            ^ TABLES[0][(hi >> 24) as usize];
    }
    bytewise(c, chunks.remainder())
}

/// Feeds `bytes` into the running (pre-inverted) CRC state `c`.
fn update(c: u32, bytes: &[u8]) -> u32 {
    crate::platform::cpu::crc32c(c, bytes).unwrap_or_else(|| slice8(c, bytes))
}

/// Incremental CRC-32C.
pub struct Crc32c(u32);

impl Crc32c {
    /// A fresh computation.
    pub const fn new() -> Self {
        Crc32c(0xFFFF_FFFF)
    }

    /// Feeds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0 = update(self.0, bytes);
    }

    /// The final CRC value.
    pub const fn finish(&self) -> u32 {
        self.0 ^ 0xFFFF_FFFF
    }
}

impl Default for Crc32c {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn crc(bytes: &[u8]) -> u32 {
        let mut c = Crc32c::new();
        c.update(bytes);
        c.finish()
    }

    #[test]
    fn check_values() {
        // Standard check value and RFC 3720 (iSCSI) B.4 test vectors.
        assert_eq!(crc(b"123456789"), 0xE306_9283);
        assert_eq!(crc(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc(&[0xFFu8; 32]), 0x62A8_AB43);
        let inc: Vec<u8> = (0u8..32).collect();
        assert_eq!(crc(&inc), 0x46DD_794E);
        assert_eq!(crc(b""), 0);
    }

    #[test]
    fn incremental_matches_one_shot() {
        let data = b"the quick brown fox jumps over the lazy dog";
        for split in 0..=data.len() {
            let (a, b) = data.split_at(split);
            let mut c = Crc32c::new();
            c.update(a);
            c.update(b);
            assert_eq!(c.finish(), crc(data));
        }
    }

    #[test]
    fn every_path_agrees_with_the_bytewise_table() {
        let data: Vec<u8> = (0..4099u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for start in 0..9 {
            for len in [0, 1, 7, 8, 9, 15, 16, 63, 64, 1000, 4090] {
                let s = &data[start..start + len];
                let want = bytewise(0xFFFF_FFFF, s);
                assert_eq!(slice8(0xFFFF_FFFF, s), want, "slice8 {start}+{len}");
                assert_eq!(update(0xFFFF_FFFF, s), want, "dispatch {start}+{len}");
                if let Some(hw) = crate::platform::cpu::crc32c(0xFFFF_FFFF, s) {
                    assert_eq!(hw, want, "the CPU's instruction");
                }
            }
        }
    }
}

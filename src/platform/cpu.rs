//! The CPU's own instructions that the core uses when it has them.

/// CRC-32C (Castagnoli) of `bytes` fed into the running, pre-inverted state
/// `c`, by the CPU's instruction (x86-64 SSE4.2 `crc32`); `None` when the
/// CPU has none, and the caller computes it in software.
pub fn crc32c(c: u32, bytes: &[u8]) -> Option<u32> {
    #[cfg(target_arch = "x86_64")]
    if have_sse42() {
        // SAFETY: the CPU has SSE4.2 (checked just above), the only
        // requirement of this target_feature function.
        return Some(unsafe { sse42(c, bytes) });
    }
    let _ = (c, bytes);
    None
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
fn sse42(c: u32, bytes: &[u8]) -> u32 {
    use core::arch::x86_64::{_mm_crc32_u64, _mm_crc32_u8};
    let mut chunks = bytes.chunks_exact(8);
    let mut c64 = u64::from(c);
    for ch in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(ch);
        c64 = _mm_crc32_u64(c64, u64::from_le_bytes(w));
    }
    // The instruction leaves the CRC in the low 32 bits.
    let mut c = c64 as u32;
    for &b in chunks.remainder() {
        c = _mm_crc32_u8(c, b);
    }
    c
}

/// Whether the CPU has SSE4.2 (asked once; the answer is cached).
#[cfg(all(target_arch = "x86_64", feature = "std"))]
fn have_sse42() -> bool {
    use core::sync::atomic::{AtomicU8, Ordering};
    static KNOWN: AtomicU8 = AtomicU8::new(0);
    match KNOWN.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => {
            let yes = std::is_x86_feature_detected!("sse4.2");
            KNOWN.store(if yes { 1 } else { 2 }, Ordering::Relaxed);
            yes
        }
    }
}

/// Without std there is no run-time detection: the build's target features
/// decide (`-C target-feature=+sse4.2` or a target CPU that has it).
#[cfg(all(target_arch = "x86_64", not(feature = "std")))]
fn have_sse42() -> bool {
    cfg!(target_feature = "sse4.2")
}

//! The kernel fds the library keeps for itself: its anchor eventfd and
//! every fd it moves out of the program's way (the shm backend's anchors
//! and segment memfds, SCM carriers). A program that closes the fds it
//! does not know of (`closefrom(3)` in a daemon or a re-exec'd sshd,
//! `close_range`, a loop of `close`) would otherwise break the sockets it
//! still uses; those calls leave these fds alone, and `close` of one says
//! EBADF, as if it were not open. A bitmap of the first 65,536 numbers
//! (the library keeps its fds at about 1,000 and up: `scm::move_high`).

use core::sync::atomic::{AtomicU64, Ordering};

const WORDS: usize = 1024;

/// Bit `fd % 64` of word `fd / 64`: fd is the library's.
static BITS: [AtomicU64; WORDS] = [const { AtomicU64::new(0) }; WORDS];

fn at(fd: i32) -> Option<(&'static AtomicU64, u64)> {
    let i = usize::try_from(fd).ok()?;
    Some((BITS.get(i / 64)?, 1u64 << (i % 64)))
}

/// `fd` is the library's from now on.
pub fn mark(fd: i32) {
    if let Some((w, b)) = at(fd) {
        w.fetch_or(b, Ordering::Release);
    }
}

/// `fd` is closed (or no longer the library's).
pub fn unmark(fd: i32) {
    if let Some((w, b)) = at(fd) {
        if w.load(Ordering::Relaxed) & b != 0 {
            w.fetch_and(!b, Ordering::Release);
        }
    }
}

/// Whether `fd` is one of the library's own. One load.
#[inline]
pub fn is_private(fd: i32) -> bool {
    at(fd).is_some_and(|(w, b)| w.load(Ordering::Acquire) & b != 0)
}

/// Calls `f(lo, hi)` for each stretch of `first..=last` that holds none
/// of the library's fds, in order.
pub fn gaps(first: u32, last: u32, mut f: impl FnMut(u32, u32)) {
    let mut lo = first;
    let top = last.min((WORDS * 64 - 1) as u32);
    let mut fd = first;
    while fd <= top {
        let word = BITS[fd as usize / 64].load(Ordering::Acquire) >> (fd % 64);
        if word == 0 {
            // Nothing more in this word.
            fd = (fd / 64 + 1) * 64;
            continue;
        }
        fd += word.trailing_zeros();
        if fd > top {
            break;
        }
        if fd > lo {
            f(lo, fd - 1);
        }
        if fd == u32::MAX {
            return;
        }
        lo = fd + 1;
        fd += 1;
    }
    if lo <= last {
        f(lo, last);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(first: u32, last: u32) -> alloc::vec::Vec<(u32, u32)> {
        let mut v = alloc::vec::Vec::new();
        gaps(first, last, |a, b| v.push((a, b)));
        v
    }

    #[test]
    fn gaps_skip_the_librarys_fds() {
        // Numbers no other test uses.
        for fd in [60_000, 60_001, 60_130] {
            mark(fd);
        }
        assert!(is_private(60_001) && !is_private(60_002));
        assert_eq!(
            collect(59_990, 60_200),
            [(59_990, 59_999), (60_002, 60_129), (60_131, 60_200)]
        );
        assert_eq!(collect(60_000, 60_001), []);
        assert_eq!(
            collect(60_100, u32::MAX),
            [(60_100, 60_129), (60_131, u32::MAX)]
        );
        for fd in [60_000, 60_001, 60_130] {
            unmark(fd);
        }
        assert_eq!(collect(59_990, 60_200), [(59_990, 60_200)]);
        // Beyond the bitmap: never private.
        mark(1 << 20);
        assert!(!is_private(1 << 20));
    }
}

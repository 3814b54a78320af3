//! Living under a seccomp filter: which of the system calls the library
//! makes on a program's behalf the program's sandbox still allows.
//!
//! A sandboxed process (OpenSSH's pre-authentication child, browsers'
//! renderers) lists the calls it needs and is killed at the first other
//! one. It keeps using its sockets, so the library must not make a call
//! the filter would kill it for when a plainer one does the job: a pointer
//! is trusted rather than probed with process_vm_readv, a doorbell is
//! written rather than sent. [`allows`] answers, before such a call,
//! whether the filters installed so far let it through.
//!
//! The filters are learnt where the program installs them (the api layer
//! interposes `prctl(PR_SET_SECCOMP)` and evaluates the programs: see
//! [`filtered`]). A process that was already filtered when it started
//! (an exec under a filter) cannot read its filters back: then every
//! optional call is assumed refused ([`filtered_unknown`]).

use core::sync::atomic::{AtomicPtr, AtomicU8, Ordering};

/// The arguments of a system call, as seccomp's `struct seccomp_data`
/// shows them to a filter.
pub type Args = [u64; 6];

/// Evaluates the installed filters for one system call: true when every
/// one of them allows it.
pub type Checker = fn(nr: i64, args: &Args) -> bool;

const NONE: u8 = 0;
const KNOWN: u8 = 1;
const UNKNOWN: u8 = 2;

/// What is known of a process's filters.
struct Filters {
    state: AtomicU8,
    checker: AtomicPtr<()>,
}

impl Filters {
    const fn new() -> Filters {
        Filters {
            state: AtomicU8::new(NONE),
            checker: AtomicPtr::new(core::ptr::null_mut()),
        }
    }

    #[inline]
    fn allows(&self, nr: i64, args: &Args) -> bool {
        match self.state.load(Ordering::Acquire) {
            NONE => true,
            KNOWN => {
                let p = self.checker.load(Ordering::Acquire);
                if p.is_null() {
                    return false;
                }
                // SAFETY: `checker` only ever holds a `Checker` (`known`).
                let check: Checker = unsafe { core::mem::transmute::<*mut (), Checker>(p) };
                check(nr, args)
            }
            _ => false,
        }
    }

    fn known(&self, check: Checker) {
        self.checker.store(check as *mut (), Ordering::Release);
        // An unknown filter stays unknown: a known one stacked on it does
        // not say what the first allows.
        let _ = self
            .state
            .compare_exchange(NONE, KNOWN, Ordering::AcqRel, Ordering::Acquire);
    }

    fn unknown(&self) {
        self.state.store(UNKNOWN, Ordering::Release);
    }
}

static FILTERS: Filters = Filters::new();

/// Whether system call `nr` with `args` would pass this process's seccomp
/// filters. One load for a process without filters.
#[inline]
pub fn allows(nr: i64, args: Args) -> bool {
    FILTERS.allows(nr, &args)
}

/// The program installed a filter; `check` computes the verdicts of every
/// filter installed so far (they stack).
pub fn filtered(check: Checker) {
    FILTERS.known(check);
}

/// This process runs under filters it cannot read (it was exec'd under
/// them): from now on only the plainest calls are made.
pub fn filtered_unknown() {
    FILTERS.unknown();
}

/// Whether the kernel says this process runs under a seccomp filter
/// (`Seccomp: 2` in /proc/self/status). Asked once where it matters, at
/// load in a process that inherited sockets.
pub fn kernel_says_filtered() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.strip_prefix("Seccomp:").map(str::trim) == Some("2"))
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only_write(nr: i64, _: &Args) -> bool {
        nr == libc::SYS_write
    }

    #[test]
    fn answers_from_the_checker_then_refuses_when_unknown() {
        let f = Filters::new();
        assert!(f.allows(libc::SYS_sendto, &[0; 6]));
        f.known(only_write);
        assert!(f.allows(libc::SYS_write, &[0; 6]));
        assert!(!f.allows(libc::SYS_sendto, &[0; 6]));
        f.unknown();
        assert!(!f.allows(libc::SYS_write, &[0; 6]));
        f.known(only_write);
        assert!(!f.allows(libc::SYS_write, &[0; 6]));
    }
}

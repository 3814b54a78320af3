//! prctl(2), interposed to learn the seccomp filters a program installs
//! (`platform::sandbox`): the library then makes, on the program's
//! behalf, only the system calls those filters let through.
//!
//! OpenSSH's sshd is the case in point: its pre-authentication child
//! talks to the client over its socket after
//! `prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ...)` installed a filter
//! that kills it at process_vm_readv or sendto. The filters are classic
//! BPF programs over `struct seccomp_data`; the library keeps a copy of
//! each and runs them itself on the call it is about to make.
//!
//! Filters installed with the raw seccomp(2) system call (libseccomp's
//! `seccomp_load`) are not seen: no libc function stands for it.

#![allow(clippy::missing_safety_doc)]

use alloc::vec::Vec;

use libc::{c_int, c_ulong};

use super::ffi::guard;
use crate::platform::real;
use crate::platform::sandbox;
use crate::socket::bpf::Program;
use crate::sync::Mutex;

/// SECCOMP_MODE_STRICT: read, write, exit and sigreturn only.
const MODE_STRICT: c_ulong = 1;
/// SECCOMP_MODE_FILTER: a BPF program decides.
const MODE_FILTER: c_ulong = 2;
/// SECCOMP_RET_ACTION_FULL: the action part of a verdict.
const RET_ACTION: u32 = 0xffff_0000;
/// SECCOMP_RET_ALLOW and SECCOMP_RET_LOG: the call goes through.
const RET_ALLOW: u32 = 0x7fff_0000;
const RET_LOG: u32 = 0x7ffc_0000;

/// The audit architecture a filter checks `seccomp_data.arch` against.
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const AUDIT_ARCH: u32 = 0;

/// Every filter this process installed, oldest first (a strict mode is
/// kept as `strict`).
struct Installed {
    programs: Vec<Program>,
    strict: bool,
}

static INSTALLED: Mutex<Installed> = Mutex::new(Installed {
    programs: Vec::new(),
    strict: false,
});

/// `struct seccomp_data` for one call, as its bytes.
fn seccomp_data(nr: i64, args: &sandbox::Args) -> [u8; 64] {
    let mut d = [0u8; 64];
    d[0..4].copy_from_slice(&(nr as i32).to_ne_bytes());
    d[4..8].copy_from_slice(&AUDIT_ARCH.to_ne_bytes());
    // instruction_pointer (8..16) stays 0: no filter of a library's
    // callers can know where the library's code is.
    for (i, a) in args.iter().enumerate() {
        d[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
    }
    d
}

/// Whether every filter installed so far allows the call: the verdict of
/// each is ALLOW or LOG (anything else, from an error to a kill, means the
/// library must not make it).
fn verdict(nr: i64, args: &sandbox::Args) -> bool {
    let installed = INSTALLED.lock();
    if installed.strict
        && ![
            libc::SYS_read,
            libc::SYS_write,
            libc::SYS_exit,
            libc::SYS_rt_sigreturn,
        ]
        .contains(&nr)
    {
        return false;
    }
    let data = seccomp_data(nr, args);
    installed.programs.iter().all(|p| {
        let action = p.run_seccomp(&data) & RET_ACTION;
        action == RET_ALLOW || action == RET_LOG
    })
}

/// Copies the filter program that `fprog` (a `struct sock_fprog *`)
/// points at.
///
/// # Safety
/// The kernel accepted `fprog`: it points at a valid `struct sock_fprog`.
unsafe fn copy_program(fprog: c_ulong) -> Option<Program> {
    // SAFETY: the kernel read the same struct without fault.
    let prog = unsafe { &*(fprog as *const libc::sock_fprog) };
    let len = usize::from(prog.len) * core::mem::size_of::<libc::sock_filter>();
    // SAFETY: as above, `len` bytes of instructions.
    let raw = unsafe { core::slice::from_raw_parts(prog.filter as *const u8, len) };
    Program::from_bytes(raw).ok()
}

/// Records a filter the kernel just installed.
///
/// # Safety
/// As `copy_program` for a filter.
unsafe fn installed(mode: c_ulong, fprog: c_ulong) {
    let program = match mode {
        // SAFETY: per this function's contract.
        MODE_FILTER => match unsafe { copy_program(fprog) } {
            Some(p) => Some(p),
            None => {
                // One we cannot run (it passed the kernel's check, not
                // ours): nothing optional from now on.
                sandbox::filtered_unknown();
                return;
            }
        },
        MODE_STRICT => None,
        _ => return,
    };
    {
        let mut i = INSTALLED.lock();
        match program {
            Some(p) => i.programs.push(p),
            None => i.strict = true,
        }
    }
    sandbox::filtered(verdict);
}

/// prctl(2). Declared with its five arguments fixed: on the Linux ABIs
/// this library supports (x86-64, AArch64) a variadic caller passes them
/// in the same registers. Only a successful PR_SET_SECCOMP is looked at.
#[no_mangle]
pub unsafe extern "C" fn prctl(
    option: c_int,
    a2: c_ulong,
    a3: c_ulong,
    a4: c_ulong,
    a5: c_ulong,
) -> c_int {
    guard(-1, || {
        // SAFETY: libc's prctl, the same arguments.
        let r = unsafe { real::prctl(option, a2, a3, a4, a5) };
        if r == 0 && option == libc::PR_SET_SECCOMP {
            // SAFETY: the kernel accepted the filter `a3` points at.
            unsafe { installed(a2, a3) };
        }
        r
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// sshd's shape: check the architecture, then allow a list of calls
    /// and kill everything else.
    fn allow_list(calls: &[i64]) -> Program {
        let ins = |code: u16, jt: u8, jf: u8, k: u32| {
            let mut b = Vec::new();
            b.extend_from_slice(&code.to_ne_bytes());
            b.push(jt);
            b.push(jf);
            b.extend_from_slice(&k.to_ne_bytes());
            b
        };
        let mut raw = Vec::new();
        raw.extend(ins(0x20, 0, 0, 4)); // A = arch
        raw.extend(ins(0x15, 1, 0, AUDIT_ARCH)); // if A == arch skip the kill
        raw.extend(ins(0x06, 0, 0, 0)); // kill
        raw.extend(ins(0x20, 0, 0, 0)); // A = nr
        for &c in calls {
            raw.extend(ins(0x15, 0, 1, c as u32)); // if A == c
            raw.extend(ins(0x06, 0, 0, RET_ALLOW)); // allow
        }
        raw.extend(ins(0x06, 0, 0, 0x0005_0000 | 13)); // ERRNO(EACCES)
        Program::from_bytes(&raw).unwrap()
    }

    #[test]
    fn a_filter_allows_what_it_lists_and_nothing_else() {
        let p = allow_list(&[libc::SYS_write, libc::SYS_futex]);
        let run = |nr| p.run_seccomp(&seccomp_data(nr, &[0; 6])) & RET_ACTION;
        assert_eq!(run(libc::SYS_write), RET_ALLOW);
        assert_eq!(run(libc::SYS_futex), RET_ALLOW);
        assert_eq!(run(libc::SYS_sendto), 0x0005_0000);
        assert_eq!(run(libc::SYS_process_vm_readv), 0x0005_0000);
    }

    #[test]
    fn arguments_reach_the_filter_as_native_words() {
        // A = args[1] (low word); allow if it is 7.
        let mut raw = Vec::new();
        for (code, jt, jf, k) in [
            (0x20u16, 0u8, 0u8, 24u32),
            (0x15, 0, 1, 7),
            (0x06, 0, 0, RET_ALLOW),
            (0x06, 0, 0, 0),
        ] {
            raw.extend_from_slice(&code.to_ne_bytes());
            raw.extend_from_slice(&[jt, jf]);
            raw.extend_from_slice(&k.to_ne_bytes());
        }
        let p = Program::from_bytes(&raw).unwrap();
        let at = |v| p.run_seccomp(&seccomp_data(1, &[0, v, 0, 0, 0, 0]));
        assert_eq!(at(7), RET_ALLOW);
        assert_eq!(at(8), 0);
        assert_eq!(at(7 | 1 << 32), RET_ALLOW);
    }
}

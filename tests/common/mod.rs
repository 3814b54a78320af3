//! Helpers shared by several integration tests (`mod common;`). Each test
//! uses some of them only.
#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Output};

#[cfg(feature = "std")]
pub mod dual;

/// The result of a raw system call, which must have succeeded.
pub fn sys(r: libc::c_long) -> i32 {
    assert!(
        r >= 0,
        "system call failed: {}",
        std::io::Error::last_os_error()
    );
    r as i32
}

/// 127.0.0.1:`port`.
pub fn sin(port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_be_bytes([127, 0, 0, 1]).to_be(),
        },
        sin_zero: [0; 8],
    }
}

/// A command that runs this binary's test `test` alone in a child process
/// with `var=case` in its environment. The test, finding `var` set (see
/// [`child_case`]), runs the child's part of `case` instead of its own, so
/// the child's code is no test of its own (one that would pass, doing
/// nothing, whenever it ran without the variable).
pub fn child_command(test: &str, var: &str, case: &str) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(var, case);
    c
}

/// The case this process was started for by [`child_command`], if it is
/// such a child.
pub fn child_case(var: &str) -> Option<String> {
    std::env::var(var).ok()
}

/// A child run of a test binary (one case with its own environment)
/// exited well and printed `CHILD-OK`; else both its outputs are shown.
pub fn assert_child_ok(out: &Output) {
    let so = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && so.contains("CHILD-OK"),
        "{so}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The skip convention of tests/README.md, Rust side: a check that cannot
/// run here (a program missing, a limit too low, ...) says so and fails,
/// unless `ALLOW_SKIP` names `name` (or says `all`); then it returns and
/// the test must return at once. Either way the line `SKIP <name>:
/// <reason>` goes straight to stderr (libtest captures only the print
/// macros, so it shows even for a test that passes) and
/// `<suite>: <name>: <reason>` is appended to the file `USOCK_SKIP_LOG`
/// names. libtest has no "skipped" outcome: an allowed skip is listed as
/// `ok`, which is why the line and the log entry exist.
pub fn skip(name: &str, reason: &str) {
    let _ = writeln!(std::io::stderr(), "SKIP {name}: {reason}");
    if let Some(log) = std::env::var_os("USOCK_SKIP_LOG") {
        let line = format!("{}: {name}: {reason}\n", suite());
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut f| f.write_all(line.as_bytes()))
            .unwrap_or_else(|e| panic!("USOCK_SKIP_LOG {log:?}: {e}"));
    }
    if !skip_allowed(name, &std::env::var("ALLOW_SKIP").unwrap_or_default()) {
        panic!("SKIP {name}: {reason}: skip not allowed (set ALLOW_SKIP={name} to allow)");
    }
}

/// Whether the `ALLOW_SKIP` list `allow` (names separated by spaces or
/// commas; `all` for every one) allows skipping `name`.
pub fn skip_allowed(name: &str, allow: &str) -> bool {
    allow
        .split([' ', ',', '\t'])
        .any(|w| w == name || w == "all")
}

/// This test binary's name without cargo's hash: `stress_load`.
fn suite() -> String {
    let exe = std::env::current_exe().unwrap_or_default();
    let stem = exe
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    match stem.rsplit_once('-') {
        Some((name, hash)) if hash.chars().all(|c| c.is_ascii_hexdigit()) => name.to_string(),
        _ => stem,
    }
}

/// Forks; the child runs `f` (only system calls and code that does not
/// allocate on its path: the parent may have other threads) and exits
/// with its status (99 if it panicked).
pub fn fork_child(f: impl FnOnce() -> i32) -> libc::pid_t {
    // SAFETY: the child runs only `f`, then _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(99);
        // SAFETY: ends the child without running the parent's exit hooks.
        unsafe { libc::_exit(code) };
    }
    pid
}

/// Waits for child `pid`; its wait status.
pub fn wait_child(pid: libc::pid_t) -> i32 {
    let mut st = 0;
    // SAFETY: waits for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut st, 0) }, pid);
    st
}

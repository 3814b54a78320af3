//! Helpers shared by several integration tests (`mod common;`). Each test
//! uses some of them only.
#![allow(dead_code)]

use std::process::Output;

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

//! An unusable `USOCK_NET` is an error, not a silent fall-back to the
//! in-process loopback (which would put the program on a private network
//! whose peers never answer): socket() fails with the directory's errno and
//! one line on stderr says why. A usable one carries the sockets, and
//! `USOCK_STATS` says so.
//!
//! The variable is read once per process, so each case runs this test
//! binary again as a child (`NET_DIR_CHILD` names the case); the child's
//! entry is `#[ignore]`d so that it never counts as a test of its own.

use std::process::Command;

mod common;

fn child(case: &str, env: &[(&str, &str)]) -> std::process::Output {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["--exact", "child_entry", "--ignored", "--nocapture"])
        .env("NET_DIR_CHILD", case)
        .env_remove("USOCK_NET")
        .env_remove("USOCK_STATS");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

#[test]
#[ignore = "the child's side of the cases below"]
fn child_entry() {
    let case = std::env::var("NET_DIR_CHILD").expect("run by the tests below");
    // SAFETY: socket() with integer arguments (the library's, linked in).
    let fd =
        unsafe { userspacesock::api::posix::usock_socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
    let errno = std::io::Error::last_os_error().raw_os_error().unwrap();
    match case.as_str() {
        "missing" => assert_eq!((fd, errno), (-1, libc::ENOENT)),
        "file" => assert_eq!((fd, errno), (-1, libc::ENOTDIR)),
        "good" => {
            assert!(fd >= 0, "socket() on a usable network: errno {errno}");
            let a = common::sin(0);
            // SAFETY: a live sockaddr_in and its size.
            let r = unsafe {
                userspacesock::api::posix::usock_bind(
                    fd,
                    &a as *const _ as *const libc::sockaddr,
                    core::mem::size_of_val(&a) as u32,
                )
            };
            assert_eq!(r, 0);
        }
        other => panic!("unknown case {other}"),
    }
    println!("CHILD-OK");
}

#[test]
fn missing_directory_fails_socket_with_enoent() {
    let out = child("missing", &[("USOCK_NET", "/nonexistent/usock-net")]);
    common::assert_child_ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("USOCK_NET=/nonexistent/usock-net: cannot use the directory"),
        "{err}"
    );
}

#[test]
fn a_file_fails_socket_with_enotdir() {
    let f = std::env::temp_dir().join(format!("usock-net-file-{}", std::process::id()));
    std::fs::write(&f, b"").unwrap();
    let out = child("file", &[("USOCK_NET", f.to_str().unwrap())]);
    std::fs::remove_file(&f).unwrap();
    common::assert_child_ok(&out);
}

#[test]
fn a_usable_directory_carries_the_sockets_and_stats_say_so() {
    let dir = std::env::temp_dir().join(format!("usock-net-ok-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let stats = dir.with_extension("stats");
    let out = child(
        "good",
        &[
            ("USOCK_NET", dir.to_str().unwrap()),
            ("USOCK_STATS", stats.to_str().unwrap()),
        ],
    );
    let report = std::fs::read_to_string(&stats).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&stats);
    common::assert_child_ok(&out);
    assert!(report.contains(" xproc claims=1\n"), "{report}");
    assert!(report.contains(" loopback claims=0\n"), "{report}");
}

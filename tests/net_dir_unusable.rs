//! An unusable `USOCK_NET` is an error, not a silent fall-back to the
//! in-process loopback (which would put the program on a private network
//! whose peers never answer): socket() fails with the directory's errno and
//! one line on stderr says why. A usable one carries the sockets, and
//! `USOCK_STATS` says so.
//!
//! The variable is read once per process, so each test runs itself again
//! as a child with the variable set (`NET_DIR_CHILD` names the case, which
//! the child runs instead of the parent's part).

mod common;

const CHILD: &str = "NET_DIR_CHILD";

/// Runs `test` again in a child, for `case`, with `env` set.
fn child(test: &str, case: &str, env: &[(&str, &str)]) -> std::process::Output {
    let mut c = common::child_command(test, CHILD, case);
    c.env_remove("USOCK_NET").env_remove("USOCK_STATS");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// What `case` checks, in the child: socket(), and for a usable network a
/// bind it carries.
fn in_child(case: &str) {
    // SAFETY: socket() with integer arguments (the library's, linked in).
    let fd =
        unsafe { userspacesock::api::posix::usock_socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
    let errno = std::io::Error::last_os_error().raw_os_error().unwrap();
    match case {
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
    if let Some(case) = common::child_case(CHILD) {
        return in_child(&case);
    }
    // A parent that no test creates (a fixed path such as /nonexistent
    // may have been left behind by another program).
    let dir = std::env::temp_dir()
        .join(format!("usock-missing-{}", std::process::id()))
        .join("usock-net");
    let dir = dir.to_str().unwrap();
    let out = child(
        "missing_directory_fails_socket_with_enoent",
        "missing",
        &[("USOCK_NET", dir)],
    );
    common::assert_child_ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("USOCK_NET={dir}: cannot use the directory")),
        "{err}"
    );
}

#[test]
fn a_file_fails_socket_with_enotdir() {
    if let Some(case) = common::child_case(CHILD) {
        return in_child(&case);
    }
    let f = std::env::temp_dir().join(format!("usock-net-file-{}", std::process::id()));
    std::fs::write(&f, b"").unwrap();
    let out = child(
        "a_file_fails_socket_with_enotdir",
        "file",
        &[("USOCK_NET", f.to_str().unwrap())],
    );
    std::fs::remove_file(&f).unwrap();
    common::assert_child_ok(&out);
}

#[test]
fn a_usable_directory_carries_the_sockets_and_stats_say_so() {
    if let Some(case) = common::child_case(CHILD) {
        return in_child(&case);
    }
    let dir = std::env::temp_dir().join(format!("usock-net-ok-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let stats = dir.with_extension("stats");
    let out = child(
        "a_usable_directory_carries_the_sockets_and_stats_say_so",
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
    // A TCP socket: the shm backend's (the default on a network), or
    // xproc's with USOCK_SHM=0.
    let shm_off = std::env::var_os("USOCK_SHM").is_some_and(|v| v == "0");
    let carrier = if shm_off { "xproc" } else { "shm" };
    assert!(
        report.contains(&format!(" {carrier} claims=1\n")),
        "{report}"
    );
    assert!(report.contains(" loopback claims=0\n"), "{report}");
}

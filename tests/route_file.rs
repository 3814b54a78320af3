//! `USOCK_ROUTE_FILE` names a file of routing rules, read with the
//! environment at the first routing decision: a rule in it sends a socket to
//! a kernel server; `USOCK_ROUTE`'s rules come before the file's, the
//! defaults (`kernel :53`, or `USOCK_ROUTE_DEFAULT`) after them and only when
//! `USOCK_ROUTE` is unset; a file that cannot be read, or a rule in it that
//! does not parse, stops the process at its first socket call with a message
//! naming the file, the line and the rule.
//!
//! The rules are read once per process, so each test runs itself again as
//! a child with the variables set (`ROUTE_FILE_CHILD` names the case, which
//! the child runs instead of the parent's part; `ROUTE_FILE_PORT` the
//! kernel server's port).
#![cfg(feature = "std")]

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Output;

use userspacesock::api::posix::*;

mod common;
use common::{sin, sys};

/// A non-blocking kernel TCP listener on 127.0.0.1, made with raw system
/// calls (the library's socket() would make a user-space one): (fd, port).
fn kernel_listener() -> (i32, u16) {
    // SAFETY: raw system calls with valid pointers and lengths.
    unsafe {
        let l = sys(libc::syscall(
            libc::SYS_socket,
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        ));
        let mut a = sin(0);
        sys(libc::syscall(libc::SYS_bind, l, &a as *const _, 16));
        sys(libc::syscall(libc::SYS_listen, l, 4));
        let mut al: libc::socklen_t = 16;
        sys(libc::syscall(
            libc::SYS_getsockname,
            l,
            &mut a as *mut _,
            &mut al as *mut _,
        ));
        (l, u16::from_be(a.sin_port))
    }
}

/// A fresh directory for this test's rule files.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("usock-route-file-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

const CHILD: &str = "ROUTE_FILE_CHILD";

/// Runs `test` again in a child, for `case`, with only the given routing
/// variables set.
fn child(
    test: &str,
    case: &str,
    port: u16,
    vars: &[(&str, &OsStr)],
    route: Option<&str>,
) -> Output {
    let mut c = common::child_command(test, CHILD, case);
    c.env("ROUTE_FILE_PORT", port.to_string())
        .env_remove("USOCK_ROUTE")
        .env_remove("USOCK_ROUTE_FILE")
        .env_remove("USOCK_ROUTE_DEFAULT")
        .env_remove("USOCK_NET");
    for (k, v) in vars {
        c.env(k, v);
    }
    if let Some(r) = route {
        c.env("USOCK_ROUTE", r);
    }
    c.output().unwrap()
}

/// A child's socket: connects `ty` to 127.0.0.1:`port`; returns whether the
/// socket is still a user-space one, and connect's result and errno.
fn connect(ty: i32, port: u16) -> (i32, bool, i32, i32) {
    // SAFETY: library calls with valid pointers.
    unsafe {
        let fd = usock_socket(libc::AF_INET, ty, 0);
        assert!(fd >= 0 && userspacesock::api::posix::usock_is_userspace(fd) == 1);
        let a = sin(port);
        let r = usock_connect(fd, &a as *const _ as *const libc::sockaddr, 16);
        let e = *libc::__errno_location();
        (
            fd,
            userspacesock::api::posix::usock_is_userspace(fd) == 1,
            r,
            e,
        )
    }
}

fn close(fd: i32) {
    // SAFETY: closes an fd this test owns.
    assert_eq!(unsafe { usock_close(fd) }, 0);
}

fn kernel(ty: i32, port: u16) -> bool {
    let (fd, ours, r, e) = connect(ty, port);
    assert!(ours || r == 0, "a kernel connect failed: errno {e}");
    close(fd);
    !ours
}

/// What `case` checks, in the child.
fn in_child(case: &str) {
    let port: u16 = std::env::var("ROUTE_FILE_PORT").unwrap().parse().unwrap();
    let (tcp, udp) = (libc::SOCK_STREAM, libc::SOCK_DGRAM);
    match case {
        // The file alone: its rules, then the default `kernel :53`.
        "file" => {
            let (fd, ours, r, e) = connect(tcp, port);
            assert_eq!((r, ours), (0, false), "routed to the kernel server ({e})");
            // SAFETY: a valid buffer.
            assert_eq!(
                unsafe { usock_write(fd, b"ping".as_ptr() as *const libc::c_void, 4) },
                4
            );
            close(fd);
            // Another port: no rule, so user space, where nobody listens.
            let (fd, ours, r, e) = connect(tcp, port.wrapping_add(1).max(1));
            assert_eq!((r, e, ours), (-1, libc::ECONNREFUSED, true));
            close(fd);
            assert!(kernel(udp, 5354), "a second rule on a line");
            assert!(!kernel(udp, 5353), "a first rule on a line");
            assert!(!kernel(udp, 5355), "a commented rule is no rule");
            assert!(kernel(udp, 53), "the default follows the file's rules");
            println!("CHILD-OK");
        }
        // USOCK_ROUTE before the file's rules, and no defaults.
        "both" => {
            assert!(!kernel(udp, 5354), "USOCK_ROUTE's `user` comes first");
            assert!(kernel(udp, 5356), "the file's rules follow");
            assert!(!kernel(udp, 53), "USOCK_ROUTE replaces the defaults");
            println!("CHILD-OK");
        }
        // USOCK_ROUTE_DEFAULT instead of `kernel :53`, after the file.
        "defaults" => {
            assert!(kernel(udp, 5354));
            assert!(!kernel(udp, 53), "not the built-in default");
            assert!(kernel(udp, 5357), "USOCK_ROUTE_DEFAULT");
            println!("CHILD-OK");
        }
        // The process must stop at the first socket call.
        "stops" => {
            let _ = connect(tcp, port);
            println!("CHILD-NOT-STOPPED");
        }
        other => panic!("unknown case {other}"),
    }
}

#[test]
fn a_rule_from_the_file_routes_an_address_to_a_kernel_server() {
    if let Some(case) = common::child_case(CHILD) {
        return in_child(&case);
    }
    let (l, port) = kernel_listener();
    let d = scratch("good");
    let f = d.join("rules");
    std::fs::write(
        &f,
        format!(
            "# routes for route_file.rs\n\
             \n\
             kernel tcp 127.0.0.1:{port}    # the kernel server\n\
             user udp :5353; kernel udp 127.0.0.1:5354\n\
             # kernel udp :5355\n"
        ),
    )
    .unwrap();
    let out = child(
        "a_rule_from_the_file_routes_an_address_to_a_kernel_server",
        "file",
        port,
        &[("USOCK_ROUTE_FILE", f.as_os_str())],
        None,
    );
    common::assert_child_ok(&out);
    // The child connected to the kernel server and wrote before exiting:
    // the connection waits in the backlog with its bytes.
    // SAFETY: raw system calls with valid pointers.
    unsafe {
        let s = sys(libc::syscall(libc::SYS_accept4, l, 0usize, 0usize, 0));
        let mut buf = [0u8; 8];
        assert_eq!(
            sys(libc::syscall(libc::SYS_read, s, buf.as_mut_ptr(), 8)),
            4
        );
        assert_eq!(&buf[..4], b"ping");
        libc::syscall(libc::SYS_close, s);
        libc::syscall(libc::SYS_close, l);
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn usock_route_comes_before_the_file_and_usock_route_default_after() {
    if let Some(case) = common::child_case(CHILD) {
        return in_child(&case);
    }
    let d = scratch("order");
    let f = d.join("rules");
    std::fs::write(&f, "kernel udp :5354\nkernel udp :5356\n").unwrap();
    let test = "usock_route_comes_before_the_file_and_usock_route_default_after";
    common::assert_child_ok(&child(
        test,
        "both",
        1,
        &[("USOCK_ROUTE_FILE", f.as_os_str())],
        Some("user udp :5354"),
    ));
    common::assert_child_ok(&child(
        test,
        "defaults",
        1,
        &[
            ("USOCK_ROUTE_FILE", f.as_os_str()),
            ("USOCK_ROUTE_DEFAULT", OsStr::new("kernel udp :5357")),
        ],
        None,
    ));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_bad_rule_file_stops_the_program_naming_the_file_and_the_line() {
    if let Some(case) = common::child_case(CHILD) {
        return in_child(&case);
    }
    let d = scratch("bad");
    let f = d.join("rules");
    std::fs::write(
        &f,
        "# a typo on line 4\n\nkernel udp :53\nkernel tcp :80; kernal 10.0.0.0/8\n",
    )
    .unwrap();
    let test = "a_bad_rule_file_stops_the_program_naming_the_file_and_the_line";
    let out = child(
        test,
        "stops",
        9,
        &[("USOCK_ROUTE_FILE", f.as_os_str())],
        None,
    );
    let so = String::from_utf8_lossy(&out.stdout);
    let se = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{so}\n{se}");
    assert!(!so.contains("CHILD-NOT-STOPPED"), "{so}");
    let want = format!(
        "libuserspacesock: USOCK_ROUTE_FILE {}: line 4: rule \"kernal 10.0.0.0/8\": \
         \"kernal\" is not an action (kernel or user)\n",
        f.display()
    );
    assert!(se.contains(&want), "stderr: {se}\nwanted: {want}");

    // A file that cannot be read stops it the same way.
    let missing = d.join("missing");
    let out = child(
        test,
        "stops",
        9,
        &[("USOCK_ROUTE_FILE", missing.as_os_str())],
        None,
    );
    let se = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{se}");
    let want = format!(
        "libuserspacesock: USOCK_ROUTE_FILE {}: cannot read: No such file or directory",
        missing.display()
    );
    assert!(se.contains(&want), "stderr: {se}\nwanted: {want}");
    std::fs::remove_dir_all(&d).unwrap();
}

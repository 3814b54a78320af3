//! `USOCK_FAULT` selects the fault injector around the default backend when
//! the registry installs it; a malformed value is reported on stderr and no
//! default backend is installed (socket() fails with EAFNOSUPPORT).
//!
//! The variable is read once per process, so each test runs itself again
//! as a child with the variable set (`FAULT_ENV_CHILD` names the case,
//! which the child runs instead of the parent's part).

use std::io::{Read, Write};
use std::thread;

mod common;

use userspacesock::backend::registry;
use userspacesock::net::{UsockListener, UsockStream};

const CHILD: &str = "FAULT_ENV_CHILD";

/// Runs `test` again in a child, for `case`, with `USOCK_FAULT=fault`.
fn child(test: &str, case: &str, fault: &str) -> std::process::Output {
    common::child_command(test, CHILD, case)
        .env("USOCK_FAULT", fault)
        .output()
        .unwrap()
}

/// What `case` checks, in the child.
fn in_child(case: &str) {
    match case {
        "good" => {
            userspacesock::backends::install_defaults();
            let names: Vec<String> = registry::snapshot()
                .iter()
                .map(|e| e.backend.name().to_string())
                .collect();
            assert_eq!(names, ["fault"], "the default backend is wrapped");
            // Data still arrives whole and in order.
            let l = UsockListener::bind("127.0.0.1:0").unwrap();
            let a = l.local_addr().unwrap();
            let t = thread::spawn(move || {
                let mut c = UsockStream::connect(a).unwrap();
                let data: Vec<u8> = (0..2_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
                c.write_all(&data).unwrap();
            });
            let (mut s, _) = l.accept().unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).unwrap();
            t.join().unwrap();
            assert_eq!(got.len(), 2_000_000);
            assert!(got
                .iter()
                .enumerate()
                .all(|(i, &b)| b == (i as u32 * 7 % 251) as u8));
            println!("CHILD-OK");
        }
        "bad" => {
            let e = UsockStream::connect("127.0.0.1:9").unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EAFNOSUPPORT));
            assert!(registry::snapshot().is_empty());
            println!("CHILD-OK");
        }
        other => panic!("unknown case {other}"),
    }
}

#[test]
fn a_good_usock_fault_wraps_the_default_backend() {
    if let Some(case) = common::child_case(CHILD) {
        return in_child(&case);
    }
    let out = child(
        "a_good_usock_fault_wraps_the_default_backend",
        "good",
        "seed=9, reorder=0.3, dup=0.1, split=0.3, delay=0.1, coalesce=0.5, drop=0.1",
    );
    common::assert_child_ok(&out);
}

#[test]
fn a_malformed_usock_fault_is_reported_and_refused() {
    if let Some(case) = common::child_case(CHILD) {
        return in_child(&case);
    }
    let out = child(
        "a_malformed_usock_fault_is_reported_and_refused",
        "bad",
        "seed=9,reordr=0.3",
    );
    let so = String::from_utf8_lossy(&out.stdout);
    let se = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && so.contains("CHILD-OK"),
        "{so}\n{se}"
    );
    assert!(
        se.contains("USOCK_FAULT: unknown key `reordr`"),
        "stderr: {se}"
    );
}

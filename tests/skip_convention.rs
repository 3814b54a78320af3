//! The Rust side of the skip convention (tests/README.md): `common::skip`
//! fails the test unless `ALLOW_SKIP` names the skip, prints the `SKIP`
//! line either way and appends it to `USOCK_SKIP_LOG`. Each outcome is
//! checked in a child run of this test, whose environment the parent sets.

use std::process::Output;

mod common;

const CHILD: &str = "SKIP_CONVENTION_CHILD";
const TEST: &str = "a_skip_fails_unless_allow_skip_names_it";

fn run(allow: Option<&str>, log: &std::path::Path) -> Output {
    let mut c = common::child_command(TEST, CHILD, "skip");
    c.env_remove("ALLOW_SKIP").env("USOCK_SKIP_LOG", log);
    if let Some(a) = allow {
        c.env("ALLOW_SKIP", a);
    }
    c.output().unwrap()
}

#[test]
fn a_skip_fails_unless_allow_skip_names_it() {
    if common::child_case(CHILD).is_some() {
        common::skip("demo-tool", "the demo tool is never installed");
        println!("RETURNED-AFTER-SKIP");
        return;
    }
    let dir = std::env::temp_dir().join(format!("usock-skip-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("skips.log");
    for (allow, allowed) in [
        (None, false),
        (Some(""), false),
        (Some("demo"), false),
        (Some("iperf3 python3"), false),
        (Some("demo-tool"), true),
        (Some("iperf3,demo-tool"), true),
        (Some("iperf3 demo-tool"), true),
        (Some("all"), true),
    ] {
        let _ = std::fs::remove_file(&log);
        let out = run(allow, &log);
        let so = String::from_utf8_lossy(&out.stdout);
        let se = String::from_utf8_lossy(&out.stderr);
        assert!(
            se.contains("SKIP demo-tool: the demo tool is never installed"),
            "ALLOW_SKIP={allow:?}: no SKIP line: {se}"
        );
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "skip_convention: demo-tool: the demo tool is never installed\n",
            "ALLOW_SKIP={allow:?}: the log"
        );
        if allowed {
            assert!(
                out.status.success() && so.contains("RETURNED-AFTER-SKIP"),
                "ALLOW_SKIP={allow:?}: an allowed skip returns: {so}\n{se}"
            );
        } else {
            assert!(
                !out.status.success()
                    && !so.contains("RETURNED-AFTER-SKIP")
                    && (so.contains("skip not allowed (set ALLOW_SKIP=demo-tool to allow)")
                        || se.contains("skip not allowed (set ALLOW_SKIP=demo-tool to allow)")),
                "ALLOW_SKIP={allow:?}: a skip not allowed fails: {so}\n{se}"
            );
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

//! `cargo test` runs the generated ABI check (the binary) and fails if it does.
use std::process::Command;

#[test]
fn header_matches_rust_definitions() {
    let out = Command::new(env!("CARGO_BIN_EXE_userspacesock-abi-test"))
        .output()
        .expect("running the ABI check");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    print!("{text}");
    assert!(out.status.success(), "ABI check failed:\n{text}");
    assert!(text.contains("PASSED"), "no PASSED line:\n{text}");
}

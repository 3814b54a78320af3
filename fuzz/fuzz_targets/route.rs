//! Fuzz the routing-rule parsers (`route::parse`, `route::parse_file`) and
//! the matcher.
//!
//! For every input: parsing never panics; it is deterministic; an accepted
//! rule set decides, without panicking, for arbitrary socket kinds and
//! arbitrary address bytes (any length, any family); an error names a rule
//! (a file's error its name and line); a file of one line without `#`
//! gives what `parse` gives for the same text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use userspacesock::addr::SockAddr;
use userspacesock::backend::contract::SockInfo;
use userspacesock::route::{decide_with, parse, parse_file};

fuzz_target!(|data: &[u8]| {
    // The first bytes pick the rule text's length; the rest is an address.
    let split = data.first().map_or(0, |&b| b as usize).min(data.len().saturating_sub(1));
    let (text, addr) = data.get(1..).unwrap_or(&[]).split_at(split.min(data.len().saturating_sub(1)));
    let raw = text;
    let text = String::from_utf8_lossy(raw);
    let first = parse(&text);
    assert_eq!(first, parse(&text), "parsing is deterministic");
    let file = parse_file("f", raw);
    assert_eq!(file, parse_file("f", raw), "parsing a file is deterministic");
    match &file {
        Ok(_) => {}
        Err(e) => assert!(e.0.starts_with("f: line "), "a file's error names its line: {e:?}"),
    }
    if !raw.contains(&b'\n') && !raw.contains(&b'#') && std::str::from_utf8(raw).is_ok() {
        assert_eq!(
            file.as_ref().ok(),
            first.as_ref().ok(),
            "one line without a comment is a USOCK_ROUTE rule set"
        );
    }
    match first {
        Ok(rules) => {
            let Some(a) = SockAddr::from_bytes(addr) else { return };
            for domain in [1, 2, 10, a.family()] {
                for ty in [1, 2] {
                    let info = SockInfo { domain, ty, protocol: 0 };
                    let _ = decide_with(&rules, &info, &a);
                }
            }
        }
        Err(e) => assert!(e.0.starts_with("rule "), "an error names its rule: {e:?}"),
    }
});

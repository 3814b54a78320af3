//! Fuzz the routing-rule parser (`route::parse`) and the matcher.
//!
//! For every input: parsing never panics; it is deterministic; an accepted
//! rule set decides, without panicking, for arbitrary socket kinds and
//! arbitrary address bytes (any length, any family); an error names a rule.
#![no_main]

use libfuzzer_sys::fuzz_target;
use userspacesock::addr::SockAddr;
use userspacesock::backend::contract::SockInfo;
use userspacesock::route::{decide_with, parse};

fuzz_target!(|data: &[u8]| {
    // The first bytes pick the rule text's length; the rest is an address.
    let split = data.first().map_or(0, |&b| b as usize).min(data.len().saturating_sub(1));
    let (text, addr) = data.get(1..).unwrap_or(&[]).split_at(split.min(data.len().saturating_sub(1)));
    let text = String::from_utf8_lossy(text);
    let first = parse(&text);
    assert_eq!(first, parse(&text), "parsing is deterministic");
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

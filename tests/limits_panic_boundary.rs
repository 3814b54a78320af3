//! No Rust panic crosses into C: every `extern "C" fn` the crate defines
//! (exports, the C backend table's trampolines, handlers) either runs its
//! body inside `ffi::guard(...)` (a panic becomes -1/EIO, -EIO, or the
//! function's documented fallback), or is a pure delegation to another
//! exported function that does, or is listed below with the reason it
//! cannot panic. Before `guard(`, only the passthrough prefix is allowed:
//! `fd::get`/`fd::is_ours` (checked indexing into fixed arrays, a
//! non-poisoning lock) and the `real::` call to libc. (rustls-ffi carries
//! the same test since an export without a boundary shipped: its #286.)
//!
//! A new export without a boundary fails this test.

use std::path::Path;

/// Functions allowed without `guard(`, and why they cannot unwind into C.
const EXEMPT: &[(&str, &str)] = &[
    (
        "forget_pid",
        "pthread_atfork child handler: one atomic store",
    ),
    (
        "forked_child",
        "pthread_atfork child handler: one atomic add",
    ),
    (
        "resolve_at_load",
        "load-time constructor: dlsym of the next definitions, no unwinding code",
    ),
    (
        "usock_platform_init",
        "no_std build only, built with panic=abort (nothing unwinds)",
    ),
    ("usock_errno", "no_std build only: one atomic load"),
    ("rust_eh_personality", "no_std build only: empty"),
];

/// Exports known to run code outside a boundary (core bugs, reported;
/// `known_gaps_are_closed` fails until they are fixed). Each is skipped by
/// the main test so that a new gap is still caught.
const KNOWN_GAPS: &[(&str, &str)] = &[];

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The body of the function whose signature starts at byte `at`: from the
/// first `{` after the parameter list to its matching `}`.
fn body(src: &str, at: usize) -> &str {
    let bytes = src.as_bytes();
    // Skip the parameter list (balanced parentheses).
    let mut i = at + src[at..].find('(').unwrap();
    let mut depth = 0i32;
    loop {
        match bytes[i] {
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            _ => {}
        }
        i += 1;
    }
    let open = i + src[i..].find('{').unwrap();
    let mut depth = 0i32;
    for (j, &b) in bytes.iter().enumerate().skip(open) {
        match b {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return &src[open + 1..j];
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced braces");
}

/// Code lines of a body, comments removed.
fn code_lines(b: &str) -> Vec<&str> {
    b.lines()
        .map(|l| l.split("//").next().unwrap().trim())
        .filter(|l| !l.is_empty())
        .collect()
}

/// A line of the passthrough prefix: the fd-table lookup and the call to
/// libc's definition for an fd that is not ours.
fn is_prefix(l: &str) -> bool {
    (l.starts_with("let Some(") && l.contains(") = fd::get("))
        // A condition choosing the passthrough (fd::is_ours, length checks);
        // its body may only be the `return ... real::` line.
        || (l.starts_with("if ") && l.ends_with('{') && !l.contains("guard("))
        || l.starts_with("if !fd::is_ours(")
        || l.starts_with("return unsafe { real::")
        || l == "}"
        || l == "};"
}

fn check(name: &str, b: &str) -> Result<(), String> {
    check_with(name, b, &[])
}

/// As [`check`]; a delegation may also target any of `exports`.
fn check_with(name: &str, b: &str, exports: &[String]) -> Result<(), String> {
    let lines = code_lines(b);
    // `on_socket!` (api/mod.rs) is the guard of the per-fd prologue; that
    // its expansion has one is checked by
    // `the_per_fd_prologue_macro_has_the_boundary`.
    if let Some(gi) = lines
        .iter()
        .position(|l| l.contains("guard(") || l.starts_with("on_socket!("))
    {
        // Only the passthrough prefix before the boundary.
        for l in &lines[..gi] {
            if !is_prefix(l) {
                return Err(format!("`{l}` runs before guard("));
            }
        }
        return Ok(());
    }
    // A pure delegation, `unsafe { usock_x(...) }` (possibly multi-line),
    // after the passthrough prefix if any.
    let start = lines
        .iter()
        .position(|l| !is_prefix(l))
        .unwrap_or(lines.len());
    let joined: String = lines[start..].join(" ");
    let joined = joined.trim();
    let joined = joined.strip_suffix(';').unwrap_or(joined).trim();
    let inner = joined
        .strip_prefix("unsafe {")
        .and_then(|s| s.strip_suffix('}'))
        .map(str::trim)
        .unwrap_or(joined);
    let inner = inner.strip_suffix(';').map_or(inner, str::trim);
    let inner = inner
        .strip_prefix("crate::api::posix::")
        .or_else(|| inner.strip_prefix("posix::"))
        .unwrap_or(inner);
    let callee: String = inner
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '$')
        .collect();
    let to_export = callee.starts_with("usock_")
        || callee == "$usock"
        || exports.iter().any(|e| *e == callee && e != name);
    if to_export && inner[callee.len()..].starts_with('(') && !inner.contains(';') {
        return Ok(());
    }
    if let Some((_, why)) = EXEMPT.iter().find(|(n, _)| *n == name) {
        eprintln!("exempt: {name}: {why}");
        return Ok(());
    }
    Err("no guard( and not a delegation".into())
}

/// Names and offsets of the `extern "C" fn` definitions in `src`.
fn definitions(src: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(k) = src[from..].find("extern \"C\" fn ") {
        let at = from + k;
        from = at + 14;
        let line_start = src[..at].rfind('\n').map_or(0, |i| i + 1);
        let before = src[line_start..at].trim();
        if !["", "pub", "unsafe", "pub unsafe"].contains(&before) {
            continue;
        }
        let name: String = src[from..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '$')
            .collect();
        out.push((name, at));
    }
    out
}

#[test]
fn every_extern_c_function_has_a_panic_boundary() {
    audit();
}

#[test]
fn known_gaps_are_closed() {
    let gaps = audit();
    assert!(gaps.is_empty(), "still without a boundary: {gaps:?}");
}

fn audit() -> Vec<String> {
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let mut checked = 0;
    let mut bad = Vec::new();
    let mut gaps = Vec::new();
    let defs: Vec<(std::path::PathBuf, String, usize)> = files
        .iter()
        .flat_map(|f| {
            let src = std::fs::read_to_string(f).unwrap();
            definitions(&src)
                .into_iter()
                .map(|(n, at)| (f.clone(), n, at))
                .collect::<Vec<_>>()
        })
        .collect();
    let exports: Vec<String> = defs.iter().map(|(_, n, _)| n.clone()).collect();
    for f in files {
        let src = std::fs::read_to_string(&f).unwrap();
        let mut from = 0;
        while let Some(k) = src[from..].find("extern \"C\" fn ") {
            let at = from + k;
            from = at + 14;
            // A definition starts its line (`pub unsafe extern "C" fn x(`);
            // function pointer types sit inside `Option<...>` or after `:`.
            let line_start = src[..at].rfind('\n').map_or(0, |i| i + 1);
            let before = src[line_start..at].trim();
            if !["", "pub", "unsafe", "pub unsafe"].contains(&before) {
                continue;
            }
            let name: String = src[from..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '$')
                .collect();
            let b = body(&src, at);
            checked += 1;
            if let Err(why) = check_with(&name, b, &exports) {
                if let Some((_, gap)) = KNOWN_GAPS.iter().find(|(n, _)| *n == name) {
                    eprintln!("KNOWN GAP (core bug): {name}: {gap}");
                    gaps.push(name);
                    continue;
                }
                bad.push(format!("{}: {name}: {why}", f.display()));
            }
        }
    }
    assert!(checked > 40, "only {checked} extern \"C\" functions found");
    assert!(
        bad.is_empty(),
        "without a panic boundary:\n{}",
        bad.join("\n")
    );
    eprintln!("{checked} extern \"C\" functions checked");
    gaps
}

/// `on_socket!` counts as a boundary for the checker: its expansion must
/// guard the body and let only libc's call run outside the guard.
#[test]
fn the_per_fd_prologue_macro_has_the_boundary() {
    let src = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api/mod.rs"))
        .unwrap();
    let start = src
        .find("macro_rules! on_socket")
        .expect("on_socket! defined");
    let end = start + src[start..].find("\n}\n").expect("end of the macro");
    let m = &src[start..end];
    let guard_at = m
        .find("super::ffi::guard(-1, || {")
        .expect("the body runs in guard");
    let body_at = m.rfind("$body").expect("the body");
    assert!(guard_at < body_at, "the body runs outside the guard");
    let before: Vec<&str> = m[..guard_at]
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("//"))
        .collect();
    assert!(
        before.iter().all(|l| l.starts_with("macro_rules!")
            || l.starts_with("($fd")
            || l.starts_with("let Some($s) = crate::fd::get(")
            || l.starts_with("return unsafe { crate::platform::real::")
            || l.starts_with(
                "on_socket!($fd, $s, real::$name($($a),*) via crate::platform::real::"
            )
            || l.starts_with("return unsafe { $kernel(")
            || *l == "};"),
        "runs before the guard: {before:?}"
    );
    // A `via` function runs outside the guard: it must guard its own work.
    let scm = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api/scm_kernel.rs"),
    )
    .unwrap();
    for f in ["fn sendmsg(", "fn recvmsg("] {
        let at = scm.find(f).expect("scm_kernel's via functions");
        let body = &scm[at..at + scm[at..].find("\n}\n").expect("end of the function")];
        assert!(
            body.contains("ffi::guard("),
            "scm_kernel::{f} has no panic boundary"
        );
    }
    assert!(check("f", "on_socket!(fd, s, real::x(fd), {\nret_int(s.x())\n})").is_ok());
}

#[test]
fn the_checker_rejects_a_missing_boundary() {
    assert!(check("f", "ret_int(lifecycle::socket(a, b, c))").is_err());
    assert!(check("f", "let x = s.thing();\nguard(-1, || 0)").is_err());
    assert!(check("f", "guard(-1, || ret_int(Ok(0)))").is_ok());
    assert!(check(
        "f",
        "// SAFETY: same.\nunsafe { usock_recv(fd, buf, len, 0) }"
    )
    .is_ok());
    assert!(check("f", "unsafe { usock_recv(fd, buf, len, 0) };\nlet _ = 1;").is_err());
}

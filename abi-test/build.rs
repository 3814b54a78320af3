//! Generates the ABI test of include/userspacesock.h with ctest2.
//!
//! ctest2 reads Rust *source* to learn the items to check, but its parser
//! (garando, a fork of an old rustc) cannot parse this crate (2018 paths,
//! let-else, ...). So this script extracts the FFI items, verbatim, from the
//! real sources into `$OUT_DIR/ffi_items.rs`, which ctest2 then reads:
//!
//! - the `#[repr(C)]` structs `usock_fragment`, `usock_sock`,
//!   `usock_backend_ops` (src/backend/c_table.rs), `SockInfo`, `SockOpts`
//!   (src/backend/contract.rs);
//! - every `extern "C" fn usock_*` under src/ (as a declaration);
//! - every `pub const USOCK_*` of src/backend/c_table.rs.
//!
//! The generated test (src/main.rs includes it) then compares, for each
//! struct, the C and Rust size, alignment, field offsets and field sizes
//! (using the real Rust types of the `userspacesock` crate), and the field
//! types and function signatures (the C shim is compiled with -Werror and
//! returns `&b->field` / `&usock_fn` as the C type spelled from the Rust
//! declaration, so a mismatch fails the build); constants are compared by
//! value. As a cross-check the script also fails if the set of `usock_*`
//! functions declared in the header differs from the set defined in Rust.
//!
//! The header is taken from `USOCK_ABI_INCLUDE` (a directory) when set,
//! `../include` otherwise; `USOCK_ABI_INCLUDE` is how the negative test
//! (`negative.sh`, run by `make test-abi`) points it at modified copies and
//! asserts that each fails.

use std::collections::BTreeSet;
use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

const STRUCTS: &[(&str, &str)] = &[
    ("src/backend/c_table.rs", "usock_fragment"),
    ("src/backend/c_table.rs", "usock_sock"),
    ("src/backend/c_table.rs", "usock_backend_ops"),
    ("src/backend/contract.rs", "SockInfo"),
    ("src/backend/contract.rs", "SockOpts"),
    ("src/api/netif_ops.rs", "usock_netif_ops"),
    ("src/api/netif_ops.rs", "usock_netif_config"),
];

const CONST_FILES: &[&str] = &["src/backend/c_table.rs", "src/api/netif_ops.rs"];

fn read(p: &Path) -> String {
    println!("cargo:rerun-if-changed={}", p.display());
    fs::read_to_string(p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

/// Index just past the bracket that closes the one at `open`.
fn matching(s: &str, open: usize, o: u8, c: u8) -> usize {
    let b = s.as_bytes();
    let mut depth = 0usize;
    for (i, &ch) in b.iter().enumerate().skip(open) {
        if ch == o {
            depth += 1;
        } else if ch == c {
            depth -= 1;
            if depth == 0 {
                return i + 1;
            }
        }
    }
    panic!("unbalanced {}", o as char);
}

/// `pub struct NAME { ... }` with the attributes right above it (derives
/// dropped: garando cannot expand them, and they do not affect layout).
fn extract_struct(src: &str, file: &str, name: &str) -> String {
    let pat = format!("pub struct {name} {{");
    let start = src
        .find(&pat)
        .unwrap_or_else(|| panic!("{file}: `{pat}` not found"));
    let mut attrs = Vec::new();
    for line in src[..start].lines().rev() {
        let t = line.trim();
        if t.starts_with("///") {
            continue;
        }
        if t.starts_with("#[") {
            if !t.starts_with("#[derive") {
                attrs.push(t.to_string());
            }
            continue;
        }
        break;
    }
    attrs.reverse();
    if !attrs.iter().any(|a| a.replace(' ', "").starts_with("#[repr(C")) {
        panic!("{file}: struct {name} is not #[repr(C)]");
    }
    let open = start + pat.len() - 1;
    let end = matching(src, open, b'{', b'}');
    format!("{}\n{}\n", attrs.join("\n"), &src[start..end])
}

/// Every `extern "C" fn usock_*(...) -> T` of `src`, as a declaration.
fn extract_fns(src: &str, out: &mut Vec<(String, String)>) {
    let mut from = 0;
    while let Some(i) = src[from..].find("extern \"C\" fn usock_") {
        let at = from + i;
        from = at + 1;
        // Only definitions: `pub [unsafe] extern "C" fn` at the start of a line.
        let line_start = src[..at].rfind('\n').map_or(0, |n| n + 1);
        let prefix = src[line_start..at].trim();
        if prefix != "pub" && prefix != "pub unsafe" {
            continue;
        }
        let name_start = at + "extern \"C\" fn ".len();
        let open = name_start + src[name_start..].find('(').unwrap();
        let name = src[name_start..open].trim().to_string();
        let close = matching(src, open, b'(', b')');
        let body = close + src[close..].find('{').unwrap();
        let ret = src[close..body].trim();
        let args = src[open..close].split_whitespace().collect::<Vec<_>>().join(" ");
        let args = args.replace("( ", "(").replace(", )", ")");
        out.push((name.clone(), format!("    pub fn {name}{args} {ret};\n")));
    }
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The `usock_*` functions the header declares.
fn header_fns(h: &str) -> BTreeSet<String> {
    let mut set = BTreeSet::new();
    for line in h.lines() {
        let t = line.trim_start();
        if t.starts_with('#') || t.starts_with('*') || t.starts_with("/*") || line.starts_with(' ') {
            continue;
        }
        if let Some(p) = t.find("usock_") {
            let rest = &t[p..];
            if let Some(q) = rest.find('(') {
                let name = &rest[..q];
                if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !t.contains("(*") {
                    set.insert(name.to_string());
                }
            }
        }
    }
    set
}

fn main() {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap()).join("..");
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    println!("cargo:rerun-if-env-changed=USOCK_ABI_INCLUDE");
    let include = env::var("USOCK_ABI_INCLUDE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("include"));
    let header = read(&include.join("userspacesock.h"));

    // -- the items, extracted from the real sources
    let mut items = String::from(
        "// Extracted by abi-test/build.rs from the userspacesock sources: do not edit.\n\n",
    );
    for (file, name) in STRUCTS {
        let src = read(&root.join(file));
        items.push_str(&extract_struct(&src, file, name));
        items.push('\n');
    }
    for file in CONST_FILES {
        let src = read(&root.join(file));
        for line in src.lines() {
            let t = line.trim();
            if t.starts_with("pub const USOCK_") {
                let _ = writeln!(items, "{t}");
            }
        }
    }
    let mut files = Vec::new();
    rs_files(&root.join("src"), &mut files);
    let mut fns = Vec::new();
    for f in &files {
        extract_fns(&read(f), &mut fns);
    }
    fns.sort();
    items.push_str("\nextern \"C\" {\n");
    for (_, decl) in &fns {
        items.push_str(decl);
    }
    items.push_str("}\n");
    let items_path = out_dir.join("ffi_items.rs");
    fs::write(&items_path, &items).unwrap();

    // -- the header declares exactly the functions Rust defines
    let rust_set: BTreeSet<String> = fns.iter().map(|(n, _)| n.clone()).collect();
    let c_set = header_fns(&header);
    let only_rust: Vec<_> = rust_set.difference(&c_set).collect();
    let only_c: Vec<_> = c_set.difference(&rust_set).collect();
    if !only_rust.is_empty() || !only_c.is_empty() {
        panic!(
            "usock_* functions differ: defined in Rust but not declared in the header: {only_rust:?}; \
             declared in the header but not defined in Rust: {only_c:?}"
        );
    }

    // -- the test
    let mut cfg = ctest2::TestGenerator::new();
    cfg.header("userspacesock.h")
        .include(&include)
        .flag("-Wno-unused-function")
        // C names of the Rust types: the two renamed by cbindgen, the POSIX
        // structs that C spells with `struct`, our structs (typedef'd and
        // tagged: `struct X` is always right), the rest as they are.
        .type_name(|ty, is_struct, is_union| match ty {
            "SockInfo" => "struct usock_sock_info".to_string(),
            "SockOpts" => "struct usock_sock_opts".to_string(),
            "sockaddr" | "msghdr" | "iovec" | "pollfd" | "timeval" | "timespec" | "epoll_event" => {
                format!("struct {ty}")
            }
            t if is_struct => format!("struct {t}"),
            t if is_union => format!("union {t}"),
            t => t.to_string(),
        })
        // The header keeps the Rust field names.
        .field_name(|_struct, field| field.to_string())
        // Only our prefixed names are declared by our header; the POSIX
        // names are the system headers' business.
        // The no_std build's platform entry points exist only in the
        // embedded archive (declared under USOCK_EMBEDDED); c-tests/
        // embedded_host.c exercises them against that archive.
        .skip_fn(|name| !name.starts_with("usock_") || matches!(name, "usock_platform_init" | "usock_errno"))
        .skip_const(|name| !name.starts_with("USOCK_"))
        .skip_struct(|name| !STRUCTS.iter().any(|(_, n)| *n == name))
        .skip_type(|_| true);
    cfg.generate(&items_path, "all.rs");
}

//! The layering written in ARCHITECTURE.md holds in the code: every
//! `crate::<module>` path in `src/<layer>` (outside comments) names a module
//! the table lets that layer use. The table is read from ARCHITECTURE.md, so
//! the document and the check cannot drift apart.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// layer → the modules it may use, from the table between the markers.
fn allowed() -> BTreeMap<String, BTreeSet<String>> {
    let doc = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md"))
        .expect("ARCHITECTURE.md");
    let begin = doc.find("<!-- layering:begin -->").expect("begin marker");
    let end = doc.find("<!-- layering:end -->").expect("end marker");
    let mut map = BTreeMap::new();
    for line in doc[begin..end].lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // | `module` | holds | may use |
        if cells.len() < 4 || !cells[1].starts_with('`') {
            continue;
        }
        let layer = cells[1].trim_matches('`').to_string();
        let uses: BTreeSet<String> = cells[3].split_whitespace().map(String::from).collect();
        map.insert(layer, uses);
    }
    assert!(
        map.len() >= 10,
        "layering table not found or too short: {map:?}"
    );
    map
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level modules `line` names through `crate::` (also inside
/// `crate::{a, b::c}`).
fn crate_refs(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            // Names at brace depth 0 of the group.
            let mut depth = 0;
            let mut word = String::new();
            let mut at_start = true;
            for ch in group.chars() {
                match ch {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => at_start = true,
                    c if depth == 0 && at_start && (c.is_alphanumeric() || c == '_') => {
                        word.push(c)
                    }
                    _ => {
                        if !word.is_empty() {
                            out.push(std::mem::take(&mut word));
                        }
                        if depth == 0 && ch != ' ' {
                            at_start = false;
                        }
                    }
                }
            }
            if !word.is_empty() {
                out.push(word);
            }
        } else {
            let name: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.push(name);
            }
        }
        rest = after;
    }
    out
}

/// The layer a file under src/ belongs to: its first path component
/// without `.rs` (lib.rs is the crate root and belongs to none).
fn layer_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    let first = first.trim_end_matches(".rs").to_string();
    (first != "lib").then_some(first)
}

#[test]
fn every_crate_path_in_src_follows_the_written_layering() {
    let allowed = allowed();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut bad = Vec::new();
    for f in &files {
        let Some(layer) = layer_of(&src, f) else {
            continue;
        };
        let Some(ok) = allowed.get(&layer) else {
            bad.push(format!(
                "{}: layer `{layer}` is not in ARCHITECTURE.md's table",
                f.display()
            ));
            continue;
        };
        for (n, line) in fs::read_to_string(f).unwrap().lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for m in crate_refs(code) {
                if m != layer && !ok.contains(&m) {
                    bad.push(format!(
                        "{}:{}: `{layer}` uses crate::{m}",
                        f.display(),
                        n + 1
                    ));
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "imports against ARCHITECTURE.md's layering:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_reference_parser_finds_plain_and_grouped_paths() {
    assert_eq!(crate_refs("use crate::socket::Socket;"), ["socket"]);
    assert_eq!(
        crate_refs("use crate::{api::ffi, socket::{a, b}, fd};"),
        ["api", "socket", "fd"]
    );
    assert_eq!(
        crate_refs("x(crate::platform::now(), crate::sync::M)"),
        ["platform", "sync"]
    );
}

/// The paths (a directory, or one file) ARCHITECTURE.md lets allow `unsafe`.
fn unsafe_allowed() -> Vec<String> {
    let doc = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md"))
        .expect("ARCHITECTURE.md");
    let begin = doc.find("<!-- unsafe:begin -->").expect("begin marker");
    let end = doc.find("<!-- unsafe:end -->").expect("end marker");
    let list: Vec<String> = doc[begin..end]
        .lines()
        .filter_map(|l| l.strip_prefix("- `"))
        .filter_map(|l| l.split('`').next())
        .map(String::from)
        .collect();
    assert!(list.len() >= 5, "unsafe list not found: {list:?}");
    list
}

/// The module a `#[allow(unsafe_code)]` line opens up: the file itself for
/// an inner attribute (`#![allow..]`), else the module declared on the next
/// item line (`mod x;` → `dir/x.rs` or `dir/x/`).
fn opened_by(file: &Path, lines: &[&str], at: usize) -> String {
    let here = file.to_str().unwrap().to_string();
    if lines[at].trim_start().starts_with("#![") {
        return here;
    }
    let dir = if file.ends_with("lib.rs") || file.ends_with("mod.rs") {
        file.parent().unwrap().to_path_buf()
    } else {
        file.with_extension("")
    };
    for l in &lines[at + 1..] {
        let t = l.trim_start();
        if t.starts_with("#[") || t.starts_with("///") || t.starts_with("//") {
            continue;
        }
        let name = t
            .split("mod ")
            .nth(1)
            .map(|r| r.trim_end_matches(';').trim().to_string());
        return match name {
            Some(n) if dir.join(format!("{n}.rs")).exists() => {
                dir.join(format!("{n}.rs")).to_str().unwrap().to_string()
            }
            Some(n) => dir.join(n).to_str().unwrap().to_string(),
            // On an item other than a module: that item, in this file.
            None => here,
        };
    }
    here
}

#[test]
fn unsafe_is_allowed_only_where_architecture_md_lists_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let ok = unsafe_allowed();
    let src = root.join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let lib = fs::read_to_string(src.join("lib.rs")).unwrap();
    assert!(
        lib.lines().any(|l| l.trim() == "#![deny(unsafe_code)]"),
        "the crate root denies unsafe_code"
    );
    let mut bad = Vec::new();
    for f in &files {
        let text = fs::read_to_string(f).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (n, line) in lines.iter().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if !code.contains("allow(unsafe_code)") {
                continue;
            }
            let opened = opened_by(f, &lines, n);
            let rel = Path::new(&opened)
                .strip_prefix(root)
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            if !ok
                .iter()
                .any(|p| rel == *p || rel.starts_with(&format!("{p}/")))
            {
                bad.push(format!("{}:{}: allows unsafe in {rel}", f.display(), n + 1));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "unsafe allowed outside ARCHITECTURE.md's list:\n{}",
        bad.join("\n")
    );
}

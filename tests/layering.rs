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

//! Build script: generates the C header `include/userspacesock.h` with
//! cbindgen (the header is committed; CI rebuilds and fails on a
//! difference), and compiles the hosted library's one C file.

use std::env;
use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    // The hosted library's C part: execl, execlp and execle, C-variadic
    // functions that stable Rust cannot define (src/api/exec_variadic.c).
    if env::var_os("CARGO_FEATURE_STD").is_some()
        && env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux")
    {
        cc::Build::new()
            .file(dir.join("src/api/exec_variadic.c"))
            .warnings(true)
            .extra_warnings(true)
            .warnings_into_errors(true)
            // Nothing in Rust calls them: whole, or the linker drops them.
            .link_lib_modifier("+whole-archive")
            .compile("usock_exec_variadic");
        let map = dir.join("src/api/exec_variadic.map");
        println!("cargo:rerun-if-changed={}", map.display());
        println!(
            "cargo:rustc-cdylib-link-arg=-Wl,--version-script={}",
            map.display()
        );
    }
    let config =
        cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml is valid");
    match cbindgen::Builder::new()
        .with_crate(&dir)
        .with_config(config)
        .generate()
    {
        Ok(bindings) => {
            bindings.write_to_file(dir.join("include/userspacesock.h"));
        }
        Err(e) => {
            // A header that cannot be generated is a build error, not a
            // silent stale header.
            panic!("cbindgen failed: {e}");
        }
    }
}

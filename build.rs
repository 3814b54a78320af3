//! Build script: generates the C header `include/userspacesock.h` with
//! cbindgen. The header is committed; CI rebuilds and fails on a difference.

use std::env;
use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
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

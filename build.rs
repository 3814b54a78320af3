//! Build script: generates the C header (filled in by the library work).
fn main() {}

//! Native Rust API (placeholder).

//! The Socket Buffer (placeholder; implemented on the `sockbuf` branch).

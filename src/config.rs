//! Capacities fixed at build time. Each can be set by an environment
//! variable when the library is compiled (for example
//! `USOCK_STREAM_RCVBUF=16384 make embedded`); the README lists the defaults
//! and what each costs in memory.

/// Parses a decimal `usize` at compile time; `default` when unset.
/// A malformed value stops the build.
const fn parse(v: Option<&str>, default: usize) -> usize {
    let Some(s) = v else { return default };
    let b = s.as_bytes();
    assert!(!b.is_empty(), "empty capacity setting");
    let mut n: usize = 0;
    let mut i = 0;
    while i < b.len() {
        assert!(
            b[i].is_ascii_digit(),
            "a capacity setting must be a decimal number"
        );
        n = n * 10 + (b[i] - b'0') as usize;
        i += 1;
    }
    n
}

/// Receive window of a stream socket (`USOCK_STREAM_RCVBUF`, bytes).
pub const STREAM_RCVBUF: usize = parse(option_env!("USOCK_STREAM_RCVBUF"), 256 * 1024);
/// Largest receive window autotuning grows a stream socket to
/// (`USOCK_STREAM_RCVBUF_MAX`, bytes): Linux's `tcp_rmem` maximum (6 MiB)
/// hosted; without std the window stays at [`STREAM_RCVBUF`] unless this is
/// set.
pub const STREAM_RCVBUF_MAX: usize = parse(
    option_env!("USOCK_STREAM_RCVBUF_MAX"),
    if cfg!(feature = "std") {
        6 << 20
    } else {
        STREAM_RCVBUF
    },
);
/// Receive buffer of a datagram socket (`USOCK_DGRAM_RCVBUF`, bytes).
pub const DGRAM_RCVBUF: usize = parse(option_env!("USOCK_DGRAM_RCVBUF"), 212_992);
/// Partial datagrams kept per socket (`USOCK_MAX_PARTIALS`).
pub const MAX_PARTIALS: usize = parse(option_env!("USOCK_MAX_PARTIALS"), 64);
/// Distinct holes a Socket Buffer tracks (`USOCK_MAX_HOLES`).
pub const MAX_HOLES: usize = parse(option_env!("USOCK_MAX_HOLES"), 32);
/// Live sockets at most (`USOCK_MAX_SOCKETS`, a multiple of 256): sizes
/// the handle table. Default 1 Mi hosted, 1024 without std.
pub const MAX_SOCKETS: usize = parse(
    option_env!("USOCK_MAX_SOCKETS"),
    if cfg!(feature = "std") { 1 << 20 } else { 1024 },
);
/// fd numbers of the no_std build (`USOCK_MAX_FDS`, a multiple of 32).
pub const EMBEDDED_MAX_FDS: usize = parse(option_env!("USOCK_MAX_FDS"), 256);

const _: () = assert!(
    STREAM_RCVBUF >= 1024 && DGRAM_RCVBUF >= 1024,
    "buffers below 1 KiB"
);
const _: () = assert!(
    EMBEDDED_MAX_FDS % 32 == 0 && EMBEDDED_MAX_FDS > 0,
    "USOCK_MAX_FDS: a multiple of 32"
);
const _: () = assert!(
    MAX_HOLES >= 1 && MAX_PARTIALS >= 1,
    "at least one hole and one partial"
);

//! The capture file of `USOCK_PCAP` (issue 16): where the socket layer's
//! synthesized packets (`socket::pcap`) go. Every process of a network may
//! append to one file: the file appears with its pcap header already in
//! it (written to a private file first, then linked into place, which
//! fails for all but the first process), and each call appends whole
//! records with one `write` on an `O_APPEND` descriptor, which the kernel
//! does not interleave with other processes' writes.
//!
//! Off (no `USOCK_PCAP`), [`enabled`] is one relaxed load.

use core::sync::atomic::{AtomicI32, AtomicU64, AtomicU8, Ordering};

/// pcap's file header: microsecond timestamps, version 2.4, snap length
/// 262144, link type RAW (101: each packet starts with its IP header).
pub const FILE_HEADER: [u8; 24] = [
    0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 101, 0, 0, 0,
];

const UNKNOWN: u8 = 0;
const OFF: u8 = 1;
const ON: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(UNKNOWN);
static FD: AtomicI32 = AtomicI32::new(-1);
/// The file's device and inode: a program that closes every descriptor
/// (a daemon) may reuse our number for a file of its own, which a capture
/// must never write into.
static DEV: AtomicU64 = AtomicU64::new(0);
static INO: AtomicU64 = AtomicU64::new(0);

/// Whether packets are being captured (`USOCK_PCAP` names a file that
/// could be opened).
#[inline]
pub fn enabled() -> bool {
    match STATE.load(Ordering::Relaxed) {
        ON => true,
        OFF => false,
        _ => open(),
    }
}

#[cold]
fn open() -> bool {
    let on = match std::env::var_os("USOCK_PCAP") {
        Some(p) if !p.is_empty() => match open_file(std::path::Path::new(&p)) {
            Ok(fd) => {
                let (dev, ino) = identity(fd).unwrap_or((0, 0));
                DEV.store(dev, Ordering::Relaxed);
                INO.store(ino, Ordering::Relaxed);
                FD.store(fd, Ordering::Relaxed);
                true
            }
            Err(e) => {
                super::diag(
                    alloc::format!(
                        "libuserspacesock: USOCK_PCAP={}: cannot write the capture file: {e}; nothing is captured\n",
                        p.to_string_lossy()
                    )
                    .as_bytes(),
                );
                false
            }
        },
        _ => false,
    };
    // Another thread may have opened it too: the first store wins, and a
    // loser's descriptor is closed.
    match STATE.compare_exchange(
        UNKNOWN,
        if on { ON } else { OFF },
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        Ok(_) => on,
        Err(now) => now == ON,
    }
}

fn open_file(path: &std::path::Path) -> std::io::Result<i32> {
    use std::io::Write as _;
    use std::os::fd::IntoRawFd as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    if std::fs::metadata(path).is_err() {
        // A private file with the header, linked into place: whoever links
        // first made the file, and nobody ever sees it without its header.
        let tmp = path.with_extension(alloc::format!("usock-{}.tmp", std::process::id()));
        let made = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)
            .and_then(|mut f| f.write_all(&FILE_HEADER))
            .and_then(|_| match std::fs::hard_link(&tmp, path) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
                _ => Ok(()),
            });
        let _ = std::fs::remove_file(&tmp);
        made?;
    }
    let f = std::fs::OpenOptions::new()
        .append(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)?;
    Ok(f.into_raw_fd())
}

fn identity(fd: i32) -> Option<(u64, u64)> {
    // SAFETY: all-zero is a valid stat.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: fstat writes into `st` (the raw call: the library interposes
    // libc's fstat).
    let r = unsafe { libc::syscall(libc::SYS_fstat, fd, &mut st as *mut libc::stat) };
    (r == 0).then_some((st.st_dev, st.st_ino))
}

/// Appends `records` (whole pcap records) to the capture file, if the
/// descriptor still is that file.
pub fn append(records: &[u8]) {
    let fd = FD.load(Ordering::Relaxed);
    if fd < 0 || records.is_empty() {
        return;
    }
    if identity(fd) != Some((DEV.load(Ordering::Relaxed), INO.load(Ordering::Relaxed))) {
        return;
    }
    // SAFETY: writes from a live slice to our own descriptor (the raw
    // call: the library interposes libc's write).
    unsafe { libc::syscall(libc::SYS_write, fd, records.as_ptr(), records.len()) };
}

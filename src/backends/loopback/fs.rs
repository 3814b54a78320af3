//! AF_UNIX pathnames: the socket file in the file system, as Linux makes
//! one, so that EADDRINUSE and ENOENT behave as on Linux and a name is
//! identified by its inode (a renamed or unlinked file behaves as on Linux).

use alloc::vec::Vec;

use crate::backend::contract::Errno;
#[allow(unused_imports)]
use crate::consts::*;

/// Identity of a socket file.
pub type FileId = (u64, u64);

#[cfg(feature = "std")]
fn cpath(p: &[u8]) -> Result<std::ffi::CString, Errno> {
    std::ffi::CString::new(Vec::from(p)).map_err(|_| EINVAL)
}

#[cfg(feature = "std")]
fn errno() -> Errno {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(EINVAL)
}

/// Creates the socket file for bind(); EADDRINUSE when the name exists.
#[cfg(feature = "std")]
pub fn create(path: &[u8]) -> Result<FileId, Errno> {
    let c = cpath(path)?;
    // SAFETY: `c` is a NUL-terminated string that outlives the call.
    let r = unsafe { libc::mknod(c.as_ptr(), libc::S_IFSOCK | 0o777, 0) };
    if r != 0 {
        let e = errno();
        return Err(if e == EEXIST { EADDRINUSE } else { e });
    }
    lookup(path)
}

/// Finds the socket file for connect(); ENOENT when there is none,
/// ECONNREFUSED when the name is not a socket.
#[cfg(feature = "std")]
pub fn lookup(path: &[u8]) -> Result<FileId, Errno> {
    let c = cpath(path)?;
    // SAFETY: all-zero is a valid `struct stat`.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and `st` is a live out-parameter.
    if unsafe { libc::stat(c.as_ptr(), &mut st) } != 0 {
        return Err(errno());
    }
    if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(ECONNREFUSED);
    }
    Ok((st.st_dev, st.st_ino))
}

/// Without a file system, a pathname is only a name.
#[cfg(not(feature = "std"))]
pub fn create(path: &[u8]) -> Result<FileId, Errno> {
    lookup(path)
}

/// Without a file system, a pathname is only a name: its hash.
#[cfg(not(feature = "std"))]
pub fn lookup(path: &[u8]) -> Result<FileId, Errno> {
    let mut h: u64 = 0xcbf29ce484222325;
    for &b in path {
        h = (h ^ b as u64).wrapping_mul(0x100000001b3);
    }
    Ok((0, h))
}

#[allow(dead_code)]
fn _uses(_: Vec<u8>) {}

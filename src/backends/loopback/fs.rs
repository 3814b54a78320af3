//! AF_UNIX pathnames: the socket file in the file system, as Linux makes
//! one, so that EADDRINUSE and ENOENT behave as on Linux and a name is
//! identified by its inode (a renamed or unlinked file behaves as on Linux).
#![deny(unsafe_code)]

use alloc::vec::Vec;

use crate::backend::contract::Errno;
#[allow(unused_imports)]
use crate::consts::*;

/// Identity of a socket file.
pub type FileId = (u64, u64);

/// Creates the socket file for bind(); EADDRINUSE when the name exists.
/// The file is new: a socket still holding its inode number had its file
/// unlinked (see `Table::bind_unix`).
#[cfg(feature = "std")]
pub fn create(path: &[u8]) -> Result<FileId, Errno> {
    match crate::platform::mknod_socket(path) {
        Ok(()) => identify(path),
        Err(EEXIST) => Err(EADDRINUSE),
        Err(e) => Err(e),
    }
}

/// Finds the socket file for connect() and sendto(): ENOENT when there is
/// none, EACCES without write permission on it (unix_find_bsd's
/// path_permission(MAY_WRITE); root passes), ECONNREFUSED when the name is
/// not a socket.
#[cfg(feature = "std")]
pub fn lookup(path: &[u8]) -> Result<FileId, Errno> {
    if path.contains(&0) {
        return Err(EINVAL);
    }
    // The search permission of the directories (and ENOENT) first, as
    // the path walk finds them.
    identify_any(path)?;
    crate::platform::may_write_file(path)?;
    identify(path)
}

/// The socket file's identity; ECONNREFUSED when the name is not a socket.
#[cfg(feature = "std")]
fn identify(path: &[u8]) -> Result<FileId, Errno> {
    use std::os::unix::fs::FileTypeExt;
    let (st, id) = identify_any(path)?;
    if !st.file_type().is_socket() {
        return Err(ECONNREFUSED);
    }
    Ok(id)
}

/// stat() of `path`.
#[cfg(feature = "std")]
fn identify_any(path: &[u8]) -> Result<(std::fs::Metadata, FileId), Errno> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    if path.contains(&0) {
        return Err(EINVAL);
    }
    let st = std::fs::metadata(std::ffi::OsStr::from_bytes(path))
        .map_err(|e| e.raw_os_error().unwrap_or(EINVAL))?;
    let id = (st.dev(), st.ino());
    Ok((st, id))
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

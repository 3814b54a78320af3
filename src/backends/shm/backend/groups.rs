//! The SO_REUSEPORT groups a connect of this process found (directories
//! at a port's name, `ports`), each with its member listing kept while
//! the directory is unchanged: a connect to a group then costs the
//! directory's stat alone instead of an open, a stat, two getdents and a
//! close (five system calls of about twenty per connect).
//!
//! A directory's mtime changes with every name added or removed, but it
//! is the kernel's coarse clock (a tick, up to 10 ms), so two changes
//! within one tick may leave it the same. A listing is therefore kept only
//! when the directory's mtime was already older than [`SETTLED`] before
//! the listing was read (as git's racy-index rule): a change after that
//! gets a later mtime, which the next connect's stat sees.
#![deny(unsafe_code)]

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::sync::Mutex;

/// How far a directory's mtime must lie behind the clock for its listing
/// to be kept: many ticks, and more than any clock step between a stat
/// and the read that follows it.
const SETTLED: Duration = Duration::from_millis(100);

/// Which directory, in which state: device, inode, mtime (s, ns), ctime
/// (s, ns).
type DirState = (u64, u64, i64, i64, i64, i64);

fn state(m: &std::fs::Metadata) -> DirState {
    (
        m.dev(),
        m.ino(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
    )
}

/// A group's member listing and the state of its directory it was read in.
type Listing = (DirState, Vec<PathBuf>);

/// The groups known to this process, by port name: the listing kept for
/// the directory's state, if one was settled enough to keep.
pub(super) struct Groups {
    known: Mutex<BTreeMap<PathBuf, Option<Listing>>>,
}

impl Groups {
    /// None known yet.
    pub(super) fn new() -> Groups {
        Groups {
            known: Mutex::new(BTreeMap::new()),
        }
    }

    /// Whether a connect found a group at `p` before.
    pub(super) fn known(&self, p: &Path) -> bool {
        self.known.lock().contains_key(p)
    }

    /// The group at `p` ended (its name is something else now).
    pub(super) fn forget(&self, p: &Path) {
        self.known.lock().remove(p);
    }

    /// The members of the group at `dir`, sorted (`xproc::ports::
    /// list_members`): the kept listing when `meta` (the directory's, as a
    /// stat taken at or after `asked`) shows it unchanged, else a fresh
    /// listing, kept when settled. Marks `dir` known.
    pub(super) fn members(
        &self,
        dir: &Path,
        meta: &std::fs::Metadata,
        asked: SystemTime,
    ) -> Vec<PathBuf> {
        let now = state(meta);
        if let Some(Some((was, m))) = self.known.lock().get(dir) {
            if *was == now {
                return m.clone();
            }
        }
        let members = crate::backends::xproc::ports::list_members(dir);
        let mtime = SystemTime::UNIX_EPOCH
            + Duration::new(now.2.max(0) as u64, now.3.clamp(0, 999_999_999) as u32);
        let settled = mtime + SETTLED < asked;
        self.known
            .lock()
            .insert(dir.to_path_buf(), settled.then(|| (now, members.clone())));
        members
    }
}

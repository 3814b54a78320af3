//! Datagram ports that several processes share (every socket on the port
//! with SO_REUSEADDR, or every one with SO_REUSEPORT, as Linux requires),
//! and the copies of a datagram to a multicast group or broadcast address
//! that go to each of them.
//!
//! - A process holding port P shareably listens at a member file of its
//!   own, `DIR/u<P>.m<pid><flags>-<when>` (`.v6` after the port for the
//!   IPv6 space; the flags, `a` and/or `p`, are its first socket's
//!   SO_REUSEADDR and SO_REUSEPORT, which a process binding P later checks
//!   against its own; when: the bind's CLOCK_MONOTONIC nanoseconds, which
//!   order the members as they bound). A bind to `::` without IPV6_V6ONLY has a symbolic link to it in
//!   the IPv6 space as well.
//! - The port's file `DIR/u<P>` is then a symbolic link to the member file
//!   of the process that bound last: unicast goes there (unless all share
//!   by SO_REUSEPORT: see below), as Linux gives a
//!   datagram to the last socket bound among equals. When that process
//!   leaves, the link moves to the member that bound last of those left; a sender that
//!   finds it dead (the process was killed) moves it before it gives up.
//! - A datagram to a group or broadcast address goes to every member file
//!   of the port, one copy per process, on a link per member process
//!   (`DGRAM_LINKS`, keyed with the member's pid); each process gives it
//!   to its sockets that take it, as for a port of its own
//!   (`dgram_group_receivers`). A member gone (its file refuses) is
//!   skipped and its file removed: the sender sees no error.
//! - A port held by one process whose sockets do not share (the port's
//!   file is its socket, no member files) is as before: its process alone.
//! - A process with a socket that is a member of group G has the file
//!   `DIR/g<G in hex>.<pid>` (`publish_group`): a socket of another
//!   process that is no member takes G's datagrams with IP_MULTICAST_ALL
//!   while such a file of a live process is there (`group_elsewhere`;
//!   those of processes gone are removed). A forked child's memberships
//!   count under its parent's file until the child changes one.
//!
//! - `DIR/.ports-gen` holds a word every process of the network maps: a
//!   count of changes to datagram ports' files, bumped by each move or
//!   removal of a shared port's link and each datagram bind, so that a
//!   sender reads a shared port's link only when it changed, not per
//!   datagram (`last_bound`).
//!
//! The files are the network's own (the directory is 0700, and every link
//! checks its peer's credentials), so the users allowed are as for any
//! port. Unicast to a port that every process holds with SO_REUSEPORT goes
//! to the process the hash of the datagram's source picks
//! (`hashed_member`), and within it by the hash. Not done: a process
//! whose later sockets on the port share less than its first (its flags
//! name the first's).
#![deny(unsafe_code)]

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use std::path::PathBuf;

use super::ports::Space;
use super::*;
use crate::backend::contract::*;
use crate::consts::*;

/// The member a shared port's file points at (`XProc::last_bound`).
#[derive(Clone)]
pub(super) struct LastBound {
    pid: u32,
    path: Arc<PathBuf>,
    /// Its file's flags say SO_REUSEPORT.
    reuseport: bool,
}

/// A process holding a datagram port shareably, as its member file says.
pub(super) struct Member {
    pub(super) pid: u32,
    reuseaddr: bool,
    reuseport: bool,
    /// When it bound (CLOCK_MONOTONIC nanoseconds).
    when: u64,
    pub(super) path: PathBuf,
}

/// The IPv4 and IPv6 spaces a bind in `space` takes (false: IPv4).
pub(crate) fn halves(space: Space) -> &'static [bool] {
    match space {
        Space::V4 => &[false],
        Space::V6 => &[true],
        Space::Both => &[false, true],
    }
}

/// Whether a socket with `opts` may share a port with a process whose
/// member file says `m`.
fn compatible(m: &Member, opts: SockOpts) -> bool {
    (m.reuseaddr && opts.reuseaddr) || (m.reuseport && opts.reuseport)
}

/// The key of a member process's link in `DGRAM_LINKS`: the port's key,
/// with the pid above it.
pub(super) fn member_link_key(port: u32, pid: u32) -> u64 {
    u64::from(port) | u64::from(pid) << 32
}

impl XProc {
    /// The name of the port's file (`u<port>` or `u<port>.v6`).
    fn port_name(&self, port: u16, v6: bool) -> String {
        let p = self.path(SOCK_DGRAM, port, v6);
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// The member file of process `pid` on `port` with `opts`' flags,
    /// bound at `when`.
    fn member_path(&self, port: u16, v6: bool, pid: u32, opts: SockOpts, when: u64) -> PathBuf {
        let a = if opts.reuseaddr { "a" } else { "" };
        let p = if opts.reuseport { "p" } else { "" };
        self.dir.join(alloc::format!(
            "{}.m{pid}{a}{p}-{when}",
            self.port_name(port, v6)
        ))
    }

    /// Every member file of `port` in one space (live or not).
    pub(super) fn members(&self, port: u16, v6: bool) -> Vec<Member> {
        let prefix = alloc::format!("{}.m", self.port_name(port, v6));
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in rd.flatten() {
            let name = e.file_name();
            let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(prefix.as_str())) else {
                continue;
            };
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            let (pid, rest) = rest.split_at(digits);
            let Some((flags, when)) = rest.split_once('-') else {
                continue;
            };
            let (Ok(pid), Ok(when)) = (pid.parse::<u32>(), when.parse::<u64>()) else {
                continue;
            };
            let (reuseaddr, reuseport) = match flags {
                "a" => (true, false),
                "p" => (false, true),
                "ap" => (true, true),
                _ => continue,
            };
            out.push(Member {
                pid,
                reuseaddr,
                reuseport,
                when,
                path: e.path(),
            });
        }
        out
    }

    /// Points the port's file at member file `target` (a name in the
    /// directory): a new link renamed over it, so that a sender never
    /// finds no file there.
    fn point(&self, port: u16, v6: bool, target: &std::ffi::OsStr) {
        let file = self.path(SOCK_DGRAM, port, v6);
        let mut tmp = file.clone().into_os_string();
        tmp.push(alloc::format!(".n{}", std::process::id()));
        let tmp = PathBuf::from(tmp);
        let _ = std::fs::remove_file(&tmp);
        if std::os::unix::fs::symlink(target, &tmp).is_err()
            || std::fs::rename(&tmp, &file).is_err()
        {
            let _ = std::fs::remove_file(&tmp);
        }
        self.ports_changed();
    }

    /// The network's count of changes to the datagram ports' files (a
    /// word in `DIR/.ports-gen`, mapped by every process of the network):
    /// a process that moves a shared port's link bumps it before its bind
    /// or close returns, so a sender that reads it unchanged may send
    /// where it sent before (`last_bound`) without reading the link.
    /// `None`: no such file (the sender reads the link every time).
    fn ports_gen(&self) -> Option<&AtomicU64> {
        self.ports_gen
            .get_or_init(|| {
                use std::os::unix::fs::OpenOptionsExt;
                use std::os::unix::io::AsRawFd;
                // A sandbox that would refuse (or kill for) the calls:
                // the link is read per datagram, as before.
                let calls = [libc::SYS_openat, libc::SYS_ftruncate, libc::SYS_mmap];
                if !calls
                    .iter()
                    .all(|&nr| crate::platform::sandbox::allows(nr, [0; 6]))
                {
                    return None;
                }
                let f = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .mode(0o600)
                    .open(self.dir.join(".ports-gen"))
                    .ok()?;
                // Grown to a word once; a file already that long keeps
                // its count.
                if f.metadata().ok()?.len() < 8 {
                    f.set_len(8).ok()?;
                }
                crate::platform::shared_mem::SharedMem::map_file(f.as_raw_fd(), 8).ok()
            })
            .as_ref()?
            .u64_at(0)
    }

    /// A datagram port's file changed: senders of every process read the
    /// shared ports' links again.
    pub(super) fn ports_changed(&self) {
        if let Some(g) = self.ports_gen() {
            g.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// The port's file points at a member that is gone (or at ours, which
    /// goes): points it at the member left that bound last, or removes it
    /// when none is; dead members' files go. Whether a member is left.
    pub(super) fn repoint(&self, port: u16, v6: bool) -> bool {
        let mut newest: Option<Member> = None;
        for m in self.members(port, v6) {
            if self.stale(&m.path) {
                let _ = std::fs::remove_file(&m.path);
                continue;
            }
            if !newest.as_ref().is_some_and(|n| m.when < n.when) {
                newest = Some(m);
            }
        }
        match newest.and_then(|m| m.path.file_name().map(|n| n.to_os_string())) {
            Some(name) => {
                self.point(port, v6, &name);
                true
            }
            None => {
                let file = self.path(SOCK_DGRAM, port, v6);
                if std::fs::symlink_metadata(&file).is_ok_and(|m| m.file_type().is_symlink()) {
                    let _ = std::fs::remove_file(&file);
                    self.ports_changed();
                }
                false
            }
        }
    }

    /// Whether the port's file is a link to a member file (a shared port),
    /// rather than a socket, or a dual-stack port's IPv6 name.
    pub(super) fn is_shared_link(&self, port: u16, v6: bool) -> bool {
        let prefix = alloc::format!("{}.m", self.port_name(port, v6));
        std::fs::read_link(self.path(SOCK_DGRAM, port, v6))
            .is_ok_and(|t| t.to_str().is_some_and(|t| t.starts_with(prefix.as_str())))
    }

    /// Binds datagram port `port` in `space` to be shared with other
    /// processes: checks the processes there (EADDRINUSE for one that does
    /// not share, or shares by the other option; `fresh`, for a port the
    /// kernel picks, wants nobody there), then listens at this process's
    /// member file and points the port's file at it. The kernel socket and
    /// the files this process owns.
    pub(super) fn bind_shared(
        &self,
        port: u16,
        space: Space,
        opts: SockOpts,
        fresh: bool,
    ) -> Result<(i32, Vec<PathBuf>), Errno> {
        let me = std::process::id();
        for &v6 in halves(space) {
            let file = self.path(SOCK_DGRAM, port, v6);
            if std::fs::symlink_metadata(&file).is_ok() && !self.is_shared_link(port, v6) {
                // A process holding the port alone (or a dual-stack one's
                // IPv6 name).
                if !self.stale(&file) {
                    return Err(EADDRINUSE);
                }
                let _ = std::fs::remove_file(&file);
            }
            for m in self.members(port, v6) {
                if m.pid == me {
                    // A dead process's, with our pid.
                    let _ = std::fs::remove_file(&m.path);
                    continue;
                }
                if !fresh && compatible(&m, opts) {
                    continue;
                }
                if !self.stale(&m.path) {
                    return Err(EADDRINUSE);
                }
                let _ = std::fs::remove_file(&m.path);
            }
        }
        let when = crate::platform::mono_ns();
        let own = self.member_path(port, space == Space::V6, me, opts, when);
        let (a, len) = unix_addr(&own)?;
        let k = unix_stream()?;
        if let Err(e) = kernel::bind_unix(k, &a, len).and_then(|_| kernel::listen(k, 128)) {
            close_kfd(k);
            return Err(e);
        }
        let mut paths = alloc::vec![own.clone()];
        if space == Space::Both {
            let alias = self.member_path(port, true, me, opts, when);
            let target = own.file_name().unwrap_or_default();
            if std::os::unix::fs::symlink(target, &alias).is_ok() {
                paths.push(alias);
            }
        }
        for &v6 in halves(space) {
            let m = self.member_path(port, v6, me, opts, when);
            self.point(port, v6, m.file_name().unwrap_or_default());
        }
        Ok((k, paths))
    }

    /// This process left shared port `port` in `space` (its member files
    /// are gone): the port's file goes to another member, if it pointed
    /// at ours.
    pub(super) fn unshare(&self, port: u16, space: Space) {
        let me = std::process::id();
        for &v6 in halves(space) {
            let prefix = alloc::format!("{}.m{me}", self.port_name(port, v6));
            let ours = std::fs::read_link(self.path(SOCK_DGRAM, port, v6)).is_ok_and(|t| {
                t.to_str().is_some_and(|t| {
                    t.strip_prefix(prefix.as_str())
                        .is_some_and(|f| !f.starts_with(|c: char| c.is_ascii_digit()))
                })
            });
            if ours {
                self.repoint(port, v6);
            }
        }
    }

    /// The links to every process sharing datagram port `key` (a
    /// `port_key`), opened on first use; `None` when nobody shares it
    /// (it has one process at most: `link`). A member that refuses is
    /// gone: skipped, and its file removed.
    pub(super) fn member_links(&self, key: u32) -> Option<Vec<Arc<Conn>>> {
        let (port, v6) = (key as u16, key >> 16 & 1 != 0);
        // The port's file says whether it is shared: no look through the
        // directory for a port that is not.
        if !self.is_shared_link(port, v6) {
            return None;
        }
        let members = self.members(port, v6);
        if members.is_empty() {
            return None;
        }
        Some(
            members
                .iter()
                .filter_map(|m| self.member_link(key, m.pid, &m.path))
                .collect(),
        )
    }

    /// The link to process `pid`'s member file `path` of datagram port
    /// `key`, opened on first use; `None` when it refuses (the process is
    /// gone: its file is removed) or is another user's.
    fn member_link(&self, key: u32, pid: u32, path: &std::path::Path) -> Option<Arc<Conn>> {
        let lk = member_link_key(key, pid);
        let cached = DGRAM_LINKS.lock().get(&lk).cloned();
        if let Some(l) = cached.filter(|l| !l.state.is_closed()) {
            return Some(l);
        }
        let (a, len) = unix_addr(path).ok()?;
        let k = match connect_unix(&a, len) {
            Ok(k) => k,
            Err(_) => {
                if self.stale(path) {
                    let _ = std::fs::remove_file(path);
                }
                return None;
            }
        };
        if !peer_is_us(k) {
            close_kfd(k);
            return None;
        }
        kernel::set_sndbuf(k, DGRAM_LINK_SNDBUF as i32);
        let c = Arc::new(Conn {
            port: key,
            ..Conn::new(k, Role::DgramOut, SockHandle(0), SockHandle(0))
        });
        transport().add(c.clone()).ok()?;
        DGRAM_LINKS.lock().insert(lk, c.clone());
        Some(c)
    }

    /// The process the port's file of a shared port points at (the last
    /// bound), its member file, and whether that member shares by
    /// SO_REUSEPORT (its file's flags); `None` for a port not shared.
    /// Read from the link once per change of the network's ports
    /// (`ports_gen`), unless `fresh`: a readlink per datagram saved.
    fn last_bound(&self, port: u16, v6: bool, fresh: bool) -> Option<LastBound> {
        let key = u32::from(port) | u32::from(v6) << 16;
        // Read before the link: a change after it shows at the next look.
        let gen = self.ports_gen().map(|g| g.load(Ordering::SeqCst));
        if let Some(g) = gen.filter(|_| !fresh) {
            if let Some((seen, lb)) = self.last_bound.lock().get(&key) {
                if *seen == g {
                    return Some(lb.clone());
                }
            }
        }
        let prefix = alloc::format!("{}.m", self.port_name(port, v6));
        let read = || -> Option<LastBound> {
            let t = std::fs::read_link(self.path(SOCK_DGRAM, port, v6)).ok()?;
            let rest = t.to_str()?.strip_prefix(prefix.as_str())?;
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            let pid = rest[..digits].parse().ok()?;
            let flags = rest[digits..].split_once('-').map_or("", |(f, _)| f);
            Some(LastBound {
                pid,
                path: Arc::new(self.dir.join(&t)),
                reuseport: flags.contains('p'),
            })
        };
        let lb = read();
        let mut cache = self.last_bound.lock();
        match (&lb, gen) {
            (Some(lb), Some(g)) => {
                cache.insert(key, (g, lb.clone()));
            }
            _ => {
                cache.remove(&key);
            }
        }
        lb
    }

    /// The link for a unicast datagram to shared port `key`: when every
    /// process there shares it by SO_REUSEPORT, to the one `from` (the
    /// hash of the datagram's source) picks, as Linux's
    /// `reuseport_select_sock` spreads flows and keeps each on one socket;
    /// otherwise to the process that bound last. One link per process,
    /// which group datagrams to it take too, so that one sender's
    /// datagrams keep their order. When that one is gone, to the newest
    /// left. `None` for a port not shared, `Some(None)` for one whose
    /// processes are all gone.
    pub(super) fn shared_link(&self, key: u32, from: u64) -> Option<Option<Arc<Conn>>> {
        let (port, v6) = (key as u16, key >> 16 & 1 != 0);
        let lb = self.last_bound(port, v6, false)?;
        // The hash needs every member sharing by SO_REUSEPORT: when the
        // last bound does not, no look through the directory (five system
        // calls a datagram to a port shared by SO_REUSEADDR paid before).
        if let Some(l) = lb
            .reuseport
            .then(|| self.hashed_member(key, from))
            .flatten()
        {
            return Some(Some(l));
        }
        if let Some(l) = self.member_link(key, lb.pid, &lb.path) {
            return Some(Some(l));
        }
        // Gone: as the link says now, then the members left.
        // (no longer a shared port's: not shared, `None`).
        let lb = self.last_bound(port, v6, true)?;
        if let Some(l) = self.member_link(key, lb.pid, &lb.path) {
            return Some(Some(l));
        }
        if !self.repoint(port, v6) {
            return Some(None);
        }
        let lb = self.last_bound(port, v6, true)?;
        Some(self.member_link(key, lb.pid, &lb.path))
    }

    /// The link to the member process of SO_REUSEPORT port `key` that
    /// hash `from` picks (one order in every sender: by when they bound);
    /// `None` when a process there shares it otherwise, or the one picked
    /// is gone (its file is removed: the next datagram picks again).
    fn hashed_member(&self, key: u32, from: u64) -> Option<Arc<Conn>> {
        let (port, v6) = (key as u16, key >> 16 & 1 != 0);
        let mut members = self.members(port, v6);
        if members.len() < 2 || !members.iter().all(|m| m.reuseport) {
            return None;
        }
        members.sort_by_key(|m| (m.when, m.pid));
        let m = &members[(from % members.len() as u64) as usize];
        self.member_link(key, m.pid, &m.path)
    }

    /// The file saying process `pid` has a member of `group`:
    /// `DIR/g<group in hex>.<pid>`.
    fn group_path(&self, group: &[u8; 16], pid: u32) -> PathBuf {
        let mut name = String::from("g");
        for b in group {
            name.push_str(&alloc::format!("{b:02x}"));
        }
        self.dir.join(alloc::format!("{name}.{pid}"))
    }

    /// `Backend::host_group`: this process's file for `group` is there
    /// while one of its sockets is a member.
    pub(super) fn publish_group(&self, group: &[u8; 16], joined: bool) {
        let path = self.group_path(group, std::process::id());
        if joined {
            if !path.exists() {
                let _ = std::fs::File::create(&path);
            }
        } else {
            let _ = std::fs::remove_file(&path);
        }
    }

    /// `Backend::group_joined_elsewhere`: another live process has a file
    /// for `group`; the files of processes gone (killed, or exited without
    /// leaving) are removed.
    pub(super) fn group_elsewhere(&self, group: &[u8; 16]) -> bool {
        let mine = self.group_path(group, std::process::id());
        let Some(prefix) = mine
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.split_once('.'))
            .map(|(g, _)| alloc::format!("{g}."))
        else {
            return false;
        };
        let me = std::process::id();
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return false;
        };
        let mut found = false;
        for e in rd.flatten() {
            let name = e.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|n| n.strip_prefix(prefix.as_str()))
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            if pid == me {
                continue;
            }
            if std::path::Path::new(&alloc::format!("/proc/{pid}")).exists() {
                found = true;
            } else {
                let _ = std::fs::remove_file(e.path());
            }
        }
        found
    }
}

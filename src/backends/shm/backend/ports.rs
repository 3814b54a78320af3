//! The shm backend's ports: which bind may take which port, with the
//! cross-process backend's rules (`xproc::ports`: the family spaces,
//! TIME_WAIT records, SO_REUSEADDR, connect ports), and SO_REUSEPORT groups
//! that span processes.
//!
//! - A port bound alone is a kernel socket at `s<port>` (`.v6` for the
//!   IPv6 space; a dual-stack bind has a symbolic link at the IPv6 name).
//! - An SO_REUSEPORT group is a directory at that name, 0700 and its
//!   user's, holding one anchor per member socket (`<pid>.<n>`), whatever
//!   process it is in. A connect finds the directory where a socket would
//!   be and picks a listening member by the hash of its own address and
//!   port (`IpEp::flow_hash`), as Linux's `reuseport_select_sock`: one
//!   client keeps its member, many clients spread; a member that refuses
//!   (closed, not listening, its process gone) is passed over. A socket
//!   of another user cannot join (the directory is not theirs:
//!   EADDRINUSE, as `sk_reuseport_match` asks for one uid), nor can one
//!   without SO_REUSEPORT (the name is taken).
//! - Sockets of one process with SO_REUSEADDR share a port until one of
//!   them listens (`REUSEADDR`): the first holds the file, the others
//!   only the right.
//! - A connect from a socket not bound first holds no file: its port is
//!   the cross-process backend's kind of connect port, unique per
//!   destination in this process.
#![deny(unsafe_code)]

use alloc::vec::Vec;
use core::sync::atomic::Ordering;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::{bind_at, live_name, PortFile, Shm, ShmSock};
use crate::addr::IpEp;
use crate::backend::contract::SockOpts;
use crate::backends::xproc::ports::{self as rules, Space};
use crate::backends::xproc::shared::halves;
use crate::consts::*;
use crate::platform::anchor_ipc;
use crate::sync::Mutex;

/// This process's sockets that share a port by SO_REUSEADDR, by port and
/// space: each socket (its address as an id) and whether it listens. The
/// first holds the port's file. Lock order: alone.
static REUSEADDR: Mutex<Vec<(u16, Space, Vec<Sharer>)>> = Mutex::new(Vec::new());

/// A socket sharing a port by SO_REUSEADDR: its id, and whether it
/// listens.
type Sharer = (usize, bool);

fn id(x: &ShmSock) -> usize {
    x as *const ShmSock as usize
}

fn errno(e: &std::io::Error) -> Errno {
    e.raw_os_error().unwrap_or(EIO)
}

/// A port taken: the kernel socket bound there (none for a socket that
/// shares another's file by SO_REUSEADDR) and the file to remove at close.
struct Taken {
    kfd: Option<i32>,
    file: Option<PortFile>,
}

impl Shm {
    /// A port's name: `s<port>` for its IPv4 addresses, `s<port>.v6` for
    /// its IPv6 ones (xproc's rule, so an IPv4 and an IPV6_V6ONLY socket
    /// share a port number as on Linux).
    pub(super) fn path(&self, port: u16, v6: bool) -> PathBuf {
        self.dir.join(if v6 {
            alloc::format!("s{port}.v6")
        } else {
            alloc::format!("s{port}")
        })
    }

    /// The names a bind in `space` takes: the main one, and the IPv6 link
    /// of a dual-stack bind.
    fn names(&self, port: u16, space: Space) -> (PathBuf, Option<PathBuf>) {
        match space {
            Space::V4 => (self.path(port, false), None),
            Space::V6 => (self.path(port, true), None),
            Space::Both => (self.path(port, false), Some(self.path(port, true))),
        }
    }

    /// Binds socket `x` at `ep` (port 0: an ephemeral one from `opts`'
    /// range, EADDRINUSE when none is free, as `inet_csk_find_open_port`
    /// ends).
    pub(super) fn bind_port(&self, x: &ShmSock, ep: IpEp, opts: SockOpts) -> Result<(), Errno> {
        let mut bound = x.bound.lock();
        if bound.is_some() || x.listener.get().is_some() || x.file.lock().is_some() {
            return Err(EINVAL);
        }
        let space = Space::of(x.info.domain, &ep, opts.v6only);
        let (port, taken) = if ep.port != 0 {
            (ep.port, self.take(x, ep.port, space, opts, false)?)
        } else {
            let (lo, hi) = opts.ephemeral_range();
            let span = u32::from(hi.max(lo) - lo) + 1;
            let start = self.next_port.fetch_add(1, Ordering::Relaxed) as u32;
            let mut found = None;
            for i in 0..span {
                let port = lo + (start.wrapping_add(i) % span) as u16;
                match self.take(x, port, space, opts, true) {
                    Ok(t) => {
                        self.next_port.fetch_add(u64::from(i), Ordering::Relaxed);
                        found = Some((port, t));
                        break;
                    }
                    Err(EADDRINUSE) => {}
                    Err(e) => return Err(e),
                }
            }
            found.ok_or(EADDRINUSE)?
        };
        *bound = taken.kfd;
        *x.file.lock() = taken.file;
        *x.space.lock() = Some((port, space));
        *x.local.lock() = Some(IpEp { port, ..ep });
        Ok(())
    }

    /// Takes `port` in `space` for `x`, by the rules in the module's
    /// documentation; `fresh`: a port the library picks, which must be
    /// nobody's.
    fn take(
        &self,
        x: &ShmSock,
        port: u16,
        space: Space,
        opts: SockOpts,
        fresh: bool,
    ) -> Result<Taken, Errno> {
        let (main, link) = self.names(port, space);
        let bases: Vec<PathBuf> = halves(space)
            .iter()
            .map(|&v6| self.path(port, v6))
            .collect();
        rules::tw_check(&bases, opts)?;
        let mut shared = REUSEADDR.lock();
        if let Some((_, _, members)) = shared
            .iter_mut()
            .find(|(p, s, _)| (*p, *s) == (port, space))
        {
            // inet_csk_bind_conflict, pair by pair: both SO_REUSEADDR and
            // the other not listening.
            if fresh || !opts.reuseaddr || members.iter().any(|&(_, l)| l) {
                return Err(EADDRINUSE);
            }
            members.push((id(x), false));
            return Ok(Taken {
                kfd: None,
                file: None,
            });
        }
        let taken = if opts.reuseport {
            let (k, member, group) = rules::join_group(
                &main,
                link.as_deref(),
                fresh,
                |p| !live_name(p),
                |m| {
                    let (a, len) = crate::platform::unix_ipc::unix_addr(m)?;
                    let k = anchor_ipc::seqpacket()?;
                    match crate::platform::unix_ipc::bind_unix(k, &a, len) {
                        Ok(()) => Ok(k),
                        Err(e) => {
                            crate::platform::unix_ipc::close_kfd(k);
                            Err(e)
                        }
                    }
                },
            )?;
            Taken {
                kfd: Some(k),
                file: Some(PortFile {
                    main: member,
                    link: None,
                    group: Some(group),
                }),
            }
        } else {
            let mut made = bind_at(&main, link.as_deref());
            // An ephemeral bind just takes the next port: reading the
            // kernel's list of sockets at every taken one would cost each
            // bind time in proportion to the sockets open.
            if made == Err(EADDRINUSE) && !fresh {
                made = self.reclaim(&main, link.as_deref());
            }
            Taken {
                kfd: Some(made?),
                file: Some(PortFile {
                    main,
                    link,
                    group: None,
                }),
            }
        };
        if opts.reuseaddr && !opts.reuseport {
            // (an SO_REUSEPORT member shares through its group, listening or not)
            shared.push((port, space, alloc::vec![(id(x), false)]));
        }
        Ok(taken)
    }

    /// A port's names are taken, but perhaps only by files left over: the
    /// socket bound there closed in a process that could not know it was
    /// the last holder (see `ShmSock::file`), or a group's members all
    /// did. Under the network's lock, so that two binds never both take
    /// one leftover, each leftover name is removed and the bind tried
    /// again; EADDRINUSE when a name is live (or the lock is another
    /// user's: so is the port).
    pub(super) fn reclaim(&self, main: &Path, link: Option<&Path>) -> Result<i32, Errno> {
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(self.dir.join(".ports.lock"))
            .map_err(|e| {
                if errno(&e) == EACCES {
                    EADDRINUSE
                } else {
                    errno(&e)
                }
            })?;
        use std::os::fd::AsRawFd;
        anchor_ipc::lock_exclusive(lock.as_raw_fd())?;
        let names = [Some(main), link];
        for p in names.into_iter().flatten() {
            let Ok(m) = std::fs::symlink_metadata(p) else {
                continue;
            };
            if m.is_dir() {
                // A group: left over when no member is live.
                let members: Vec<PathBuf> = std::fs::read_dir(p)
                    .map(|rd| rd.flatten().map(|e| e.path()).collect())
                    .unwrap_or_default();
                if members.iter().all(|m| !live_name(m)) {
                    for m in &members {
                        let _ = std::fs::remove_file(m);
                    }
                    let _ = std::fs::remove_dir(p);
                }
            } else if !live_name(p) {
                let _ = std::fs::remove_file(p);
            }
        }
        // The lock goes with the file's close, after the bind.
        bind_at(main, link)
    }

    /// The socket's port for a listen() or connect() of one never bound.
    pub(super) fn autobind(&self, x: &ShmSock, opts: SockOpts) -> Result<(), Errno> {
        if x.local.lock().is_some() {
            return Ok(());
        }
        let family = x.info.domain;
        let any = IpEp::parse(&crate::addr::SockAddr::unspecified(family), family)?;
        self.bind_port(x, any, opts)
    }

    /// The port of a connect to `dest` from a socket never bound: a
    /// connect port (no file; see the module's documentation).
    pub(super) fn connect_port(
        &self,
        x: &ShmSock,
        dest: &IpEp,
        opts: SockOpts,
    ) -> Result<u16, Errno> {
        self.release_connect_port(x);
        let v6 = !dest.is_v4();
        let key = rules::pick_connect_port(&self.next_port, dest, opts, |port| {
            std::fs::symlink_metadata(self.path(port, v6)).is_ok()
        })?;
        *x.eph.lock() = Some(key);
        Ok(key.0)
    }

    /// Gives back `x`'s connect port, if it has one.
    pub(super) fn release_connect_port(&self, x: &ShmSock) {
        if let Some(key) = x.eph.lock().take() {
            rules::release_connect_port(key);
        }
    }

    /// listen() of `x`: EADDRINUSE when it shares its port by SO_REUSEADDR
    /// with a socket that listens already (Linux checks the bind conflict
    /// again at listen, `inet_csk_listen_start`), or holds no file of its
    /// own to listen on.
    pub(super) fn may_listen(&self, x: &ShmSock) -> Result<(), Errno> {
        let Some((port, space)) = *x.space.lock() else {
            return Ok(());
        };
        let mut shared = REUSEADDR.lock();
        let Some((_, _, members)) = shared
            .iter_mut()
            .find(|(p, s, _)| (*p, *s) == (port, space))
        else {
            return Ok(());
        };
        let me = id(x);
        if members.iter().any(|&(m, l)| l && m != me) || x.bound.lock().is_none() {
            return Err(EADDRINUSE);
        }
        for m in members.iter_mut().filter(|m| m.0 == me) {
            m.1 = true;
        }
        Ok(())
    }

    /// The close of `x`: it leaves its port (and the SO_REUSEADDR sharing
    /// of it) and gives back its connect port; its files go if `alone`
    /// (no other process can hold the socket).
    pub(super) fn leave_port(&self, x: &ShmSock, alone: bool) {
        self.release_connect_port(x);
        if let Some((port, space)) = x.space.lock().take() {
            let mut shared = REUSEADDR.lock();
            let me = id(x);
            for (_, _, members) in shared
                .iter_mut()
                .filter(|(p, s, _)| (*p, *s) == (port, space))
            {
                members.retain(|&(m, _)| m != me);
            }
            // The sharing ends with the file's holder: the others keep the
            // right to a name that is gone.
            if x.file.lock().is_some() {
                shared.retain(|(p, s, _)| (*p, *s) != (port, space));
            }
        }
        let Some(f) = x.file.lock().take() else {
            return;
        };
        if !alone {
            return;
        }
        let _ = std::fs::remove_file(&f.main);
        if let Some(l) = f.link {
            let _ = std::fs::remove_file(l);
        }
        if let Some((dir, link)) = f.group {
            rules::leave_group(&dir, link.as_deref());
        }
    }

    /// At close: a connection this end closed first (the peer had not
    /// ended its side, and the close is no reset) leaves a TIME_WAIT on
    /// its port in `space` (one a file held: bound, or a listener's), with
    /// `flags`' SO_REUSEADDR and SO_REUSEPORT.
    pub(super) fn time_wait(&self, x: &ShmSock, space: Space, flags: (bool, bool)) {
        let Some(c) = x.conn() else {
            return;
        };
        let r = c.readiness();
        let unread = c.queued().map_or(true, |(inq, _)| inq > 0);
        if r.rdhup || r.err || unread {
            return;
        }
        let Some(local) = *x.local.lock() else {
            return;
        };
        let bases: Vec<PathBuf> = halves(space)
            .iter()
            .map(|&v6| self.path(local.port, v6))
            .collect();
        rules::tw_leave(&bases, flags.0, flags.1);
    }
}

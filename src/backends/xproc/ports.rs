//! Binding ports, opening links, and the socket files behind them.
#![deny(unsafe_code)]

use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};
use std::ffi::CString;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;

use super::*;
use crate::addr::IpEp;
use crate::addr::SockAddr;
use crate::backend::contract::*;
use crate::consts::*;

impl XProc {
    /// A backend over `dir` (created 0700 when missing).
    pub fn new(dir: PathBuf) -> Result<XProc, Errno> {
        let c = CString::new(dir.as_os_str().as_encoded_bytes()).map_err(|_| EINVAL)?;
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                return Err(e.raw_os_error().unwrap_or(EIO))
            }
            _ => {}
        }
        // Found, not made: it must be a directory this process can bind in,
        // or every bind() would fail later with no word on why.
        match std::fs::metadata(&dir) {
            Ok(m) if !m.is_dir() => return Err(ENOTDIR),
            Ok(_) => crate::platform::unix_ipc::load_network_users(),
            Err(e) => return Err(e.raw_os_error().unwrap_or(EIO)),
        }
        kernel::may_use_dir(&c)?;
        super::status::joined(&dir);
        let seed = std::process::id() as u64 * 7919;
        Ok(XProc {
            dir,
            next_port: AtomicU64::new(seed),
            ports_gen: std::sync::OnceLock::new(),
            last_bound: Mutex::new(alloc::collections::BTreeMap::new()),
        })
    }

    /// The socket file of a port: `t<port>` (stream) or `u<port>`
    /// (datagram) for its IPv4 addresses, with `.v6` for its IPv6 ones.
    pub(super) fn path(&self, ty: i32, port: u16, v6: bool) -> PathBuf {
        let t = if ty == SOCK_STREAM { 't' } else { 'u' };
        self.dir.join(if v6 {
            alloc::format!("{t}{port}.v6")
        } else {
            alloc::format!("{t}{port}")
        })
    }

    /// Binds a kernel AF_UNIX socket at the port's file(s) for `space`; a
    /// file left by a dead process is removed first. A bind to the IPv6
    /// wildcard without IPV6_V6ONLY takes both of the port's files, as
    /// Linux's takes the port for both families: the socket at the IPv4
    /// name and a symbolic link to it at the IPv6 one.
    pub(super) fn bind_port(
        &self,
        ty: i32,
        port: u16,
        space: Space,
        opts: SockOpts,
    ) -> Result<(i32, alloc::vec::Vec<PathBuf>), Errno> {
        if ty == SOCK_STREAM {
            self.check_time_wait(port, space, opts)?;
        }
        let (k, path) = self.bind_file(ty, port, space == Space::V6)?;
        if space != Space::Both {
            return Ok((k, alloc::vec![path]));
        }
        let link = self.path(ty, port, true);
        let target = self.path(ty, port, false);
        for attempt in 0..2 {
            match std::os::unix::fs::symlink(&target, &link) {
                Ok(()) => return Ok((k, alloc::vec![path, link])),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt == 0 => {
                    // A dangling link, or one to a socket nobody answers.
                    let dangling = std::fs::metadata(&link).is_err();
                    if dangling || self.stale(&target) {
                        let _ = std::fs::remove_file(&link);
                        continue;
                    }
                    break;
                }
                Err(_) => break,
            }
        }
        close_kfd(k);
        let _ = std::fs::remove_file(&path);
        Err(EADDRINUSE)
    }

    /// Binds stream port `port` in `space` as (or into) an SO_REUSEPORT
    /// group that processes share ([`join_group`]): this process's
    /// member socket, and its files (the member, the group's directory and
    /// IPv6 link, which the last member removes: [`remove_port_file`]).
    fn bind_group(
        &self,
        port: u16,
        space: Space,
        opts: SockOpts,
        fresh: bool,
    ) -> Result<(i32, alloc::vec::Vec<PathBuf>), Errno> {
        self.check_time_wait(port, space, opts)?;
        let (main, link) = match space {
            Space::V4 => (self.path(SOCK_STREAM, port, false), None),
            Space::V6 => (self.path(SOCK_STREAM, port, true), None),
            Space::Both => (
                self.path(SOCK_STREAM, port, false),
                Some(self.path(SOCK_STREAM, port, true)),
            ),
        };
        let (k, member, (dir, link)) = join_group(
            &main,
            link.as_deref(),
            fresh,
            |p| self.stale(p),
            |m| {
                let (a, len) = unix_addr(m)?;
                let k = unix_stream()?;
                match kernel::bind_unix(k, &a, len) {
                    Ok(()) => Ok(k),
                    Err(e) => {
                        close_kfd(k);
                        Err(e)
                    }
                }
            },
        )?;
        let mut paths = alloc::vec![member, dir];
        paths.extend(link);
        Ok((k, paths))
    }

    /// Binds a kernel AF_UNIX socket at one port file.
    fn bind_file(&self, ty: i32, port: u16, v6: bool) -> Result<(i32, PathBuf), Errno> {
        let path = self.path(ty, port, v6);
        let (a, len) = unix_addr(&path)?;
        // A datagram port too is a stream listener: senders' links connect
        // to it (see `DGRAM_LINKS`).
        let k = unix_stream()?;
        for attempt in 0..2 {
            let r = kernel::bind_unix(k, &a, len);
            if r.is_ok() {
                if ty == SOCK_DGRAM {
                    if let Err(e) = kernel::listen(k, 128) {
                        close_kfd(k);
                        let _ = std::fs::remove_file(&path);
                        return Err(e);
                    }
                    // It may replace a shared port's link left by
                    // processes gone: senders look again.
                    self.ports_changed();
                }
                return Ok((k, path));
            }
            let e = r.err().unwrap_or(EADDRINUSE);
            if e == EADDRINUSE && attempt == 0 && ty == SOCK_DGRAM && self.is_shared_link(port, v6)
            {
                // Processes share the port: taken, unless the last of
                // them is gone (then the link went too).
                if self.repoint(port, v6) {
                    break;
                }
                continue;
            }
            if e == EADDRINUSE && attempt == 0 && self.stale(&path) {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            close_kfd(k);
            return Err(if e == EADDRINUSE { EADDRINUSE } else { e });
        }
        close_kfd(k);
        Err(EADDRINUSE)
    }

    /// Is the socket file at `path` left by a dead process? Nobody answers
    /// there, and no socket is bound to it: a port bound but not listening
    /// refuses too, but the kernel still lists its socket. A symbolic link
    /// to no file is too.
    pub(super) fn stale(&self, path: &std::path::Path) -> bool {
        let Ok((a, len)) = unix_addr(path) else {
            return false;
        };
        // The IPv6 name of a dual-stack port is a link to its IPv4 one:
        // the kernel lists the socket under the name it was bound to.
        let real = match std::fs::read_link(path) {
            Ok(t) => path.parent().map(|d| d.join(&t)).unwrap_or(t),
            Err(_) => path.to_path_buf(),
        };
        match connect_unix(&a, len) {
            Ok(p) => {
                close_kfd(p);
                false
            }
            Err(ENOENT) => {
                std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
                    && std::fs::metadata(path).is_err()
            }
            Err(e) => e == ECONNREFUSED && !kernel::unix_path_bound(&real),
        }
    }

    pub(super) fn bind_ep(
        &self,
        x: &XSock,
        h: SockHandle,
        ep: IpEp,
        opts: SockOpts,
    ) -> Result<SockAddr, Errno> {
        let dgram = x.info.ty == SOCK_DGRAM;
        // Held across the bind so two binds of one port cannot both miss
        // the table.
        let mut ports = DGRAM_PORTS.lock();
        let space = Space::of(x.info.domain, &ep, opts.v6only);
        if dgram && ep.port != 0 {
            if let Some(p) = ports.get_mut(&port_key(ep.port, space)) {
                let shareable = p.members.iter().all(|(_, o, _)| {
                    (o.reuseaddr && opts.reuseaddr) || (o.reuseport && opts.reuseport)
                });
                if !shareable {
                    return Err(EADDRINUSE);
                }
                p.members.push((h, opts, x.me.clone()));
                *x.conn.lock() = Some(p.conn.clone());
                let a = ep.to_sockaddr(x.info.domain);
                *x.local.lock() = Some(a);
                return Ok(a);
            }
        }
        if !dgram && ep.port != 0 && (opts.reuseport || opts.reuseaddr) {
            let key = stream_group_key(ep.port, space);
            if let Some(p) = ports.get_mut(&key) {
                // A group of this process's stream sockets shares the
                // port's kernel listener: all with SO_REUSEPORT, or with
                // SO_REUSEADDR while none listens (`inet_csk_bind_conflict`
                // pair by pair).
                let shareable = p.members.iter().all(|(m, o, _)| {
                    (o.reuseport && opts.reuseport)
                        || (o.reuseaddr && opts.reuseaddr && !p.listening.contains(m))
                });
                if !shareable {
                    return Err(EADDRINUSE);
                }
                p.members.push((h, opts, x.me.clone()));
                *x.conn.lock() = Some(p.conn.clone());
                *x.group.lock() = Some(key);
                let a = ep.to_sockaddr(x.info.domain);
                *x.local.lock() = Some(a);
                return Ok(a);
            }
        }
        // A datagram socket that may share its port with other processes
        // holds it through a member file (`shared`).
        let share = dgram && (opts.reuseaddr || opts.reuseport);
        let take = |port: u16| {
            if share {
                self.bind_shared(port, space, opts, ep.port == 0)
            } else if !dgram && opts.reuseport {
                self.bind_group(port, space, opts, ep.port == 0)
            } else {
                self.bind_port(x.info.ty, port, space, opts)
            }
        };
        let (port, k, paths) = if ep.port != 0 {
            let (k, p) = take(ep.port)?;
            (ep.port, k, p)
        } else {
            // Every port of the range is tried once, from where the last
            // search left off; none free: EADDRINUSE, as
            // `inet_csk_find_open_port` ends.
            let (lo, hi) = opts.ephemeral_range();
            let span = u64::from(hi.max(lo) - lo) + 1;
            let start = self.next_port.fetch_add(1, Ordering::Relaxed);
            let mut found = None;
            for i in 0..span {
                let port = lo + (start.wrapping_add(i) % span) as u16;
                if dgram && ports.contains_key(&port_key(port, space)) {
                    continue;
                }
                match take(port) {
                    Ok((k, p)) => {
                        self.next_port.fetch_add(i, Ordering::Relaxed);
                        found = Some((port, k, p));
                        break;
                    }
                    Err(EADDRINUSE) => {}
                    // Not the port's fault (a directory this process may
                    // not write in: EACCES): no other port does better.
                    Err(e) => return Err(e),
                }
            }
            found.ok_or(EADDRINUSE)?
        };
        let c = if dgram {
            let c = Arc::new(Conn {
                port: port_key(port, space),
                ..Conn::new(k, Role::Dgram, h, h)
            });
            transport().add(c.clone())?;
            ports.insert(
                port_key(port, space),
                DgramPort {
                    conn: c.clone(),
                    paths,
                    members: alloc::vec![(h, opts, x.me.clone())],
                    listening: alloc::vec::Vec::new(),
                    shared: share.then_some((port, space)),
                },
            );
            c
        } else {
            let c = Arc::new(Conn::new(k, Role::Listener, h, h));
            *c.sock.lock() = x.me.clone();
            if opts.reuseport || opts.reuseaddr {
                // Others may join (see above); the group owns the files:
                // they go with its last member.
                let key = stream_group_key(port, space);
                ports.insert(
                    key,
                    DgramPort {
                        conn: c.clone(),
                        paths,
                        members: alloc::vec![(h, opts, x.me.clone())],
                        listening: alloc::vec::Vec::new(),
                        shared: None,
                    },
                );
                *x.group.lock() = Some(key);
            } else {
                *x.paths.lock() = paths;
            }
            c
        };
        *x.conn.lock() = Some(c);
        let a = IpEp { port, ..ep }.to_sockaddr(x.info.domain);
        *x.local.lock() = Some(a);
        Ok(a)
    }

    /// Takes stream socket `x` (handle `h`) off its SO_REUSEPORT group, if
    /// it is in one: the group's kernel listener, and the group's files
    /// when it was the last member (otherwise the listener serves the next
    /// member from now on).
    pub(super) fn leave_stream_group(
        &self,
        x: &XSock,
        h: SockHandle,
    ) -> Option<(Arc<Conn>, Option<alloc::vec::Vec<PathBuf>>)> {
        let key = x.group.lock().take()?;
        let mut ports = DGRAM_PORTS.lock();
        let p = ports.get_mut(&key)?;
        p.members.retain(|(m, _, _)| *m != h);
        p.listening.retain(|m| *m != h);
        // A listener left: the port's connections go to one that listens
        // still, if any.
        let next = p
            .listening
            .first()
            .and_then(|l| p.members.iter().find(|(m, _, _)| m == l))
            .or(p.members.first());
        if let Some((next, _, w)) = next {
            if p.conn.handle() == h {
                p.conn.handle.store(next.0, Ordering::Release);
                *p.conn.sock.lock() = w.clone();
            }
            return Some((p.conn.clone(), None));
        }
        ports.remove(&key).map(|p| (p.conn, Some(p.paths)))
    }

    /// listen() of stream socket `x` (handle `h`) in a group sharing its
    /// port: EADDRINUSE when another member listens and the two do not
    /// both have SO_REUSEPORT (Linux checks the bind conflict again at
    /// listen, `inet_csk_listen_start`); otherwise the port's connections
    /// come to it unless another listener has them already. Nothing to do
    /// for a socket in no group.
    pub(super) fn join_listeners(
        &self,
        x: &XSock,
        h: SockHandle,
        opts: SockOpts,
    ) -> Result<(), Errno> {
        let Some(key) = *x.group.lock() else {
            return Ok(());
        };
        let mut ports = DGRAM_PORTS.lock();
        let Some(p) = ports.get_mut(&key) else {
            return Ok(());
        };
        if p.listening.contains(&h) {
            return Ok(());
        }
        let clash = p.members.iter().any(|(m, o, _)| {
            *m != h && p.listening.contains(m) && !(o.reuseport && opts.reuseport)
        });
        if clash {
            return Err(EADDRINUSE);
        }
        if p.listening.is_empty() {
            p.conn.handle.store(h.0, Ordering::Release);
            *p.conn.sock.lock() = x.me.clone();
        }
        p.listening.push(h);
        Ok(())
    }

    /// Takes datagram socket `h` off its port (a `port_key`); returns the
    /// port's kernel socket and files, and which port it shared with other
    /// processes if it did, when it was the last one there.
    #[allow(clippy::type_complexity)]
    pub(super) fn leave_port(
        &self,
        port: u32,
        h: SockHandle,
    ) -> Option<(Arc<Conn>, alloc::vec::Vec<PathBuf>, Option<(u16, Space)>)> {
        let mut ports = DGRAM_PORTS.lock();
        let p = ports.get_mut(&port)?;
        p.members.retain(|(m, _, _)| *m != h);
        if let Some(&(next, _, _)) = p.members.first() {
            p.conn.handle.store(next.0, Ordering::Release);
            return None;
        }
        ports.remove(&port).map(|p| (p.conn, p.paths, p.shared))
    }

    /// The link to datagram port `port` (a `port_key`), opened on first
    /// use; `None` when nobody (of ours) is bound there. A port that
    /// processes share: the link to the one that bound last, or the one
    /// `from` (the hash of the datagram's source) picks among processes
    /// that share it by SO_REUSEPORT (`shared_link`), looked up at each
    /// datagram.
    pub(super) fn link(&self, port: u32, from: u64) -> Option<Arc<Conn>> {
        let mut links = DGRAM_LINKS.lock();
        if let Some(l) = links.get(&u64::from(port)) {
            if !l.state.is_closed() {
                return Some(l.clone());
            }
            links.remove(&u64::from(port));
        }
        drop(links);
        if let Some(l) = self.shared_link(port, from) {
            return l;
        }
        let mut links = DGRAM_LINKS.lock();
        // Opened by another thread meanwhile.
        if let Some(l) = links.get(&u64::from(port)).filter(|l| !l.state.is_closed()) {
            return Some(l.clone());
        }
        let (num, v6) = (port as u16, port >> 16 != 0);
        let path = self.path(SOCK_DGRAM, num, v6);
        let (a, len) = unix_addr(&path).ok()?;
        let k = connect_unix(&a, len).ok()?;
        if !peer_is_us(k) {
            close_kfd(k);
            return None;
        }
        kernel::set_sndbuf(k, DGRAM_LINK_SNDBUF as i32);
        let c = Arc::new(Conn {
            port,
            ..Conn::new(k, Role::DgramOut, SockHandle(0), SockHandle(0))
        });
        transport().add(c.clone()).ok()?;
        links.insert(u64::from(port), c.clone());
        Some(c)
    }

    /// The port files of a stream port's space, whose TIME_WAIT records
    /// (`tw_check`) are beside them.
    fn tw_bases(&self, port: u16, space: Space) -> alloc::vec::Vec<PathBuf> {
        super::shared::halves(space)
            .iter()
            .map(|&v6| self.path(SOCK_STREAM, port, v6))
            .collect()
    }

    /// A bind of a stream port in `space` against the TIME_WAIT records
    /// there (`tw_check`).
    fn check_time_wait(&self, port: u16, space: Space, opts: SockOpts) -> Result<(), Errno> {
        tw_check(&self.tw_bases(port, space), opts)
    }

    /// At close: a stream socket that closed first (sent its FIN before
    /// the peer's came, and did not reset) leaves a TIME_WAIT record on its
    /// port for Linux's TCP_TIMEWAIT_LEN, with its SO_REUSEADDR and
    /// SO_REUSEPORT (an accepted socket's are its listener's). A record
    /// already there is extended, and keeps a flag only if both have it:
    /// the directory holds ports, not every connection.
    pub(super) fn time_wait(&self, x: &XSock, opts: SockOpts) {
        if x.info.ty != SOCK_STREAM
            || !x.fin_first.load(Ordering::Acquire)
            || x.rst_sent.load(Ordering::Acquire)
        {
            return;
        }
        let Some(ep) = x
            .local
            .lock()
            .and_then(|l| IpEp::parse(&l, x.info.domain).ok())
        else {
            return;
        };
        // Only a port some file held: a bound one, or a listener's.
        let accepted = x
            .conn
            .lock()
            .as_ref()
            .is_some_and(|c| c.listener != c.handle());
        if x.bound.lock().is_none() && !accepted {
            return;
        }
        let space = Space::of(x.info.domain, &ep, opts.v6only);
        tw_leave(
            &self.tw_bases(ep.port, space),
            opts.reuseaddr,
            opts.reuseport,
        );
    }

    /// The ephemeral port of a stream connect to `dest` from a socket
    /// not bound first: one of `opts`' range that no file of this space
    /// holds (a bound or listening port) and that has no connection of
    /// this process to `dest` yet, as `__inet_hash_connect` keeps the
    /// 4-tuple unique; EADDRNOTAVAIL when there is none. Kept until
    /// [`Self::release_connect_port`].
    pub(super) fn connect_port(
        &self,
        x: &XSock,
        dest: &IpEp,
        opts: SockOpts,
    ) -> Result<u16, Errno> {
        // A connect again after a refused one: its old port goes first.
        self.release_connect_port(x);
        let v6 = !dest.is_v4();
        let key = pick_connect_port(&self.next_port, dest, opts, |port| {
            std::fs::symlink_metadata(self.path(SOCK_STREAM, port, v6)).is_ok()
        })?;
        *x.eph.lock() = Some(key);
        Ok(key.0)
    }

    /// Gives back the connect port of stream socket `x` (its close).
    pub(super) fn release_connect_port(&self, x: &XSock) {
        if let Some(key) = x.eph.lock().take() {
            release_connect_port(key);
        }
    }

    pub(super) fn autobind(&self, x: &XSock, h: SockHandle, opts: SockOpts) -> Result<(), Errno> {
        if x.local.lock().is_some() {
            return Ok(());
        }
        let any = IpEp::parse(
            &crate::addr::SockAddr::unspecified(x.info.domain),
            x.info.domain,
        )?;
        self.bind_ep(x, h, any, opts).map(|_| ())
    }
}

/// The ephemeral ports this process's stream connects use, each with the
/// destination it reaches (address, port): a port may serve several
/// destinations, one connection each. Lock order: alone (nothing is taken
/// under it but the file system's).
pub(super) static CONNECT_PORTS: crate::sync::Mutex<
    alloc::collections::BTreeSet<(u16, [u8; 16], u16)>,
> = crate::sync::Mutex::new(alloc::collections::BTreeSet::new());

/// A datagram port with its family space, as the tables key it: the port,
/// plus 1 << 16 for its IPv6 addresses (a bind to both is kept under the
/// IPv4 key; a sender to an IPv6 address reaches it through the link at
/// the IPv6 name).
pub(super) fn port_key(port: u16, space: Space) -> u32 {
    u32::from(port) | if space == Space::V6 { 1 << 16 } else { 0 }
}

/// The key of a stream port's SO_REUSEPORT group in `DGRAM_PORTS` (which
/// keeps this process's shared ports of both types): its `port_key` with
/// bit 17 set.
pub(super) fn stream_group_key(port: u16, space: Space) -> u32 {
    port_key(port, space) | 1 << 17
}

/// Which addresses of a port a bind takes (Linux's bind conflicts, by
/// family: an IPv4 bind and an IPv6 one of the same port coexist, unless
/// the IPv6 one is the wildcard without IPV6_V6ONLY).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Space {
    /// IPv4 addresses (an AF_INET socket, or a v4-mapped address).
    V4,
    /// IPv6 addresses.
    V6,
    /// Both: `::` on an AF_INET6 socket without IPV6_V6ONLY.
    Both,
}

impl Space {
    /// The space a bind of `ep` on a socket of `domain` takes.
    pub(crate) fn of(domain: i32, ep: &IpEp, v6only: bool) -> Space {
        if domain == AF_INET || ep.is_v4() {
            Space::V4
        } else if ep.ip == [0; 16] && !v6only {
            Space::Both
        } else {
            Space::V6
        }
    }
}

/// Linux's TCP_TIMEWAIT_LEN: how long a TIME_WAIT holds its port.
const TIME_WAIT_NS: u64 = 60_000_000_000;
/// A record is extended only when that moves its end by this much: the
/// port is held a second less at most, and a port whose connections
/// close by the thousand costs one file write a second.
const TW_REWRITE_NS: u64 = 1_000_000_000;

/// A TIME_WAIT record file: one line, `<end> <reuseaddr> <reuseport>`, the
/// end in CLOCK_MONOTONIC nanoseconds (one clock for every process of the
/// machine).
struct TwRecord {
    until: u64,
    reuseaddr: bool,
    reuseport: bool,
}

impl TwRecord {
    /// The record at `path`; `None` when there is none or it is not one.
    fn read(path: &std::path::Path) -> Option<TwRecord> {
        let text = std::fs::read_to_string(path).ok()?;
        let mut it = text.split_ascii_whitespace();
        let until = it.next()?.parse().ok()?;
        let reuseaddr = it.next()? == "1";
        let reuseport = it.next()? == "1";
        Some(TwRecord {
            until,
            reuseaddr,
            reuseport,
        })
    }

    /// Writes the record at `path` whole (a file beside it, renamed over
    /// it), so that a reader never sees half of one.
    fn write(&self, path: &std::path::Path) {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(alloc::format!(".{}", std::process::id()));
        let line = alloc::format!(
            "{} {} {}\n",
            self.until,
            u8::from(self.reuseaddr),
            u8::from(self.reuseport)
        );
        if std::fs::write(&tmp, line).is_ok() && std::fs::rename(&tmp, path).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

/// A connect port: the port, and the destination (address, port) it
/// reaches from there.
pub(crate) type ConnectKey = (u16, [u8; 16], u16);

/// The ephemeral port of a stream connect to `dest` from a socket not
/// bound first: one of `opts`' range that `held` (a bound or listening
/// port of the backend's files) does not name and that has no connection
/// of this process to `dest` yet, as `__inet_hash_connect` keeps the
/// 4-tuple unique; EADDRNOTAVAIL when there is none. The search starts
/// where `next` says. Kept until [`release_connect_port`].
pub(crate) fn pick_connect_port(
    next: &AtomicU64,
    dest: &IpEp,
    opts: SockOpts,
    held: impl Fn(u16) -> bool,
) -> Result<ConnectKey, Errno> {
    let (lo, hi) = opts.ephemeral_range();
    let span = u64::from(hi.max(lo) - lo) + 1;
    let start = next.fetch_add(1, Ordering::Relaxed);
    let mut used = CONNECT_PORTS.lock();
    for i in 0..span {
        let port = lo + (start.wrapping_add(i) % span) as u16;
        let key = (port, dest.ip, dest.port);
        if used.contains(&key) || held(port) {
            continue;
        }
        used.insert(key);
        return Ok(key);
    }
    Err(EADDRNOTAVAIL)
}

/// Gives back a connect port [`pick_connect_port`] gave.
pub(crate) fn release_connect_port(key: ConnectKey) {
    CONNECT_PORTS.lock().remove(&key);
}

/// The TIME_WAIT record beside port file `base` (`t<port>.tw`...).
fn tw_path(base: &std::path::Path) -> PathBuf {
    let mut p = base.as_os_str().to_owned();
    p.push(".tw");
    PathBuf::from(p)
}

/// A bind of a stream port whose files are `bases` against the TIME_WAIT
/// records beside them: EADDRINUSE unless both the record and this socket
/// have SO_REUSEADDR (or both SO_REUSEPORT), as `inet_csk_bind_conflict`
/// treats a TIME_WAIT socket. A record that has run out is removed:
/// records expire lazily, here, with no timer.
pub(crate) fn tw_check(bases: &[PathBuf], opts: SockOpts) -> Result<(), Errno> {
    let now = crate::platform::mono_ns();
    for base in bases {
        let path = tw_path(base);
        let Some(rec) = TwRecord::read(&path) else {
            continue;
        };
        if rec.until <= now {
            let _ = std::fs::remove_file(&path);
            continue;
        }
        let shared = (rec.reuseaddr && opts.reuseaddr) || (rec.reuseport && opts.reuseport);
        if !shared {
            return Err(EADDRINUSE);
        }
    }
    Ok(())
}

/// A connection on the port whose files are `bases` closed first: its
/// TIME_WAIT holds the port for Linux's TCP_TIMEWAIT_LEN, with the
/// closing socket's SO_REUSEADDR and SO_REUSEPORT. A record already there
/// is extended, and keeps a flag only if both have it: the directory
/// holds ports, not every connection.
pub(crate) fn tw_leave(bases: &[PathBuf], reuseaddr: bool, reuseport: bool) {
    let now = crate::platform::mono_ns();
    for base in bases {
        let path = tw_path(base);
        let mut rec = TwRecord {
            until: now.saturating_add(TIME_WAIT_NS),
            reuseaddr,
            reuseport,
        };
        if let Some(old) = TwRecord::read(&path).filter(|o| o.until > now) {
            rec.until = rec.until.max(old.until);
            rec.reuseaddr &= old.reuseaddr;
            rec.reuseport &= old.reuseport;
            // A busy server closing first: at most one write a second
            // for its port.
            let same = (rec.reuseaddr, rec.reuseport) == (old.reuseaddr, old.reuseport);
            if same && rec.until - old.until < TW_REWRITE_NS {
                continue;
            }
        }
        rec.write(&path);
    }
}

/// Members made by this process, for unique member names.
static MEMBERS: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

/// Joins (or founds) the SO_REUSEPORT group of stream port files `main`
/// (and `link`, the IPv6 name of a dual-stack bind): a directory at the
/// port's name, 0700 and its user's, holding one kernel socket per member
/// (`<pid>.<n>`, of any process), which `bind_member` binds at the name it
/// is given. A connect finds the directory where a socket would be and
/// picks a member ([`group_members`]). Gives the member's kernel socket,
/// its name, and the group's names. EADDRINUSE when a socket that is not
/// `leftover` holds the name (it has no SO_REUSEPORT), for a `fresh` port
/// (one the library picks) that anyone holds, or when the group is another
/// user's (`sk_reuseport_match` asks for one uid).
#[allow(clippy::type_complexity)]
pub(crate) fn join_group(
    main: &std::path::Path,
    link: Option<&std::path::Path>,
    fresh: bool,
    leftover: impl Fn(&std::path::Path) -> bool,
    bind_member: impl Fn(&std::path::Path) -> Result<i32, Errno>,
) -> Result<(i32, PathBuf, (PathBuf, Option<PathBuf>)), Errno> {
    use std::os::unix::fs::MetadataExt;
    let euid = crate::platform::unix_ipc::own_cred().1;
    let err = |e: &std::io::Error| e.raw_os_error().unwrap_or(EIO);
    for _ in 0..4 {
        let founded = match std::fs::DirBuilder::new().mode(0o700).create(main) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if fresh {
                    return Err(EADDRINUSE);
                }
                match std::fs::symlink_metadata(main) {
                    Ok(m) if m.is_dir() => {
                        if m.uid() != euid {
                            return Err(EADDRINUSE);
                        }
                    }
                    Ok(_) => {
                        // A socket alone there, perhaps one left over.
                        if !leftover(main) {
                            return Err(EADDRINUSE);
                        }
                        let _ = std::fs::remove_file(main);
                        continue;
                    }
                    Err(_) => continue,
                }
                false
            }
            // Another user's network directory: the port is theirs.
            Err(e) if err(&e) == EACCES => return Err(EADDRINUSE),
            Err(e) => return Err(err(&e)),
        };
        if let Some(l) = link {
            let ok = match std::os::unix::fs::symlink(main, l) {
                Ok(()) => true,
                // Another member's link to this group is as good.
                Err(_) => std::fs::read_link(l).is_ok_and(|t| t == main),
            };
            if !ok {
                if founded {
                    let _ = std::fs::remove_dir(main);
                }
                return Err(EADDRINUSE);
            }
        }
        let n = MEMBERS.fetch_add(1, Ordering::Relaxed);
        let member = main.join(alloc::format!("{}.{n}", std::process::id()));
        match bind_member(&member) {
            Ok(k) => return Ok((k, member, (main.to_path_buf(), link.map(PathBuf::from)))),
            // The last member left meanwhile, with the directory.
            Err(ENOENT) => continue,
            Err(EACCES) => return Err(EADDRINUSE),
            // A dead process's member with our pid.
            Err(EADDRINUSE) => {
                let _ = std::fs::remove_file(&member);
                continue;
            }
            Err(e) => return Err(e),
        }
    }
    Err(EADDRINUSE)
}

/// A member of the SO_REUSEPORT group at `dir` left (its name is gone):
/// the last takes the group's names (a member joining meanwhile finds no
/// directory and founds it again).
pub(crate) fn leave_group(dir: &std::path::Path, link: Option<&std::path::Path>) {
    if std::fs::remove_dir(dir).is_ok() {
        if let Some(l) = link.filter(|l| std::fs::read_link(l).is_ok_and(|t| t == dir)) {
            let _ = std::fs::remove_file(l);
        }
    }
}

/// A connect from `from` to the SO_REUSEPORT group at `dir`: `reach` on
/// each of [`group_members`] until one answers. A member that refuses and
/// is `leftover` (its process died without a close) loses its name, so
/// that its hash's clients stop trying it first.
pub(crate) fn connect_group<T>(
    dir: &std::path::Path,
    from: &IpEp,
    reach: impl Fn(&std::path::Path) -> Result<T, Errno>,
    leftover: impl Fn(&std::path::Path) -> bool,
) -> Option<T> {
    connect_members(group_members(dir, from), reach, leftover)
}

/// [`connect_group`] over `members` as [`group_members`] orders them
/// (the shm backend keeps a group's listing while its directory is
/// unchanged).
pub(crate) fn connect_members<T>(
    members: alloc::vec::Vec<PathBuf>,
    reach: impl Fn(&std::path::Path) -> Result<T, Errno>,
    leftover: impl Fn(&std::path::Path) -> bool,
) -> Option<T> {
    members.iter().find_map(|m| match reach(m) {
        Ok(t) => Some(t),
        Err(e) => {
            if e == ECONNREFUSED && leftover(m) {
                let _ = std::fs::remove_file(m);
            }
            None
        }
    })
}

/// The members of the SO_REUSEPORT group at `dir` a connect from `from`
/// tries, in order: the one the hash of its address and port picks first
/// (as Linux's `reuseport_select_sock`: one client keeps its member, many
/// spread), then the others (one that refuses is passed over: closed, not
/// listening, or its process gone).
pub(crate) fn group_members(dir: &std::path::Path, from: &IpEp) -> alloc::vec::Vec<PathBuf> {
    order_members(list_members(dir), from)
}

/// The names in the SO_REUSEPORT group's directory `dir`, sorted: one
/// order in every process, so that one hash picks one member.
pub(crate) fn list_members(dir: &std::path::Path) -> alloc::vec::Vec<PathBuf> {
    let mut members: alloc::vec::Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    members.sort();
    members
}

/// `members` ([`list_members`]) in the order a connect from `from` tries
/// them: the hash's pick first.
pub(crate) fn order_members(
    mut members: alloc::vec::Vec<PathBuf>,
    from: &IpEp,
) -> alloc::vec::Vec<PathBuf> {
    if !members.is_empty() {
        let first = (from.flow_hash() % members.len() as u64) as usize;
        members.rotate_left(first);
    }
    members
}

/// Removes a file a port's socket held at its close: a socket's name; an
/// SO_REUSEPORT group's directory once no member is left in it; a
/// symbolic link once what it names is gone (a dual-stack port's IPv6
/// name, after the socket or group it names).
pub(crate) fn remove_port_file(p: &std::path::Path) {
    let Ok(m) = std::fs::symlink_metadata(p) else {
        return;
    };
    if m.is_dir() {
        let _ = std::fs::remove_dir(p);
    } else if !m.file_type().is_symlink() || std::fs::metadata(p).is_err() {
        let _ = std::fs::remove_file(p);
    }
}

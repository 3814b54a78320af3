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
            Ok(_) => {}
            Err(e) => return Err(e.raw_os_error().unwrap_or(EIO)),
        }
        kernel::may_use_dir(&c)?;
        let seed = std::process::id() as u64 * 7919;
        Ok(XProc {
            dir,
            next_port: AtomicU64::new(seed),
        })
    }

    pub(super) fn path(&self, ty: i32, port: u16) -> PathBuf {
        self.dir.join(alloc::format!(
            "{}{}",
            if ty == SOCK_STREAM { 't' } else { 'u' },
            port
        ))
    }

    /// Binds a kernel AF_UNIX socket at the port's file; a file left by a
    /// dead process is removed first.
    pub(super) fn bind_port(&self, ty: i32, port: u16) -> Result<(i32, PathBuf), Errno> {
        let path = self.path(ty, port);
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
                }
                return Ok((k, path));
            }
            let e = r.err().unwrap_or(EADDRINUSE);
            if e == EADDRINUSE && attempt == 0 && self.stale(&a, len) {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            close_kfd(k);
            return Err(if e == EADDRINUSE { EADDRINUSE } else { e });
        }
        close_kfd(k);
        Err(EADDRINUSE)
    }

    /// Is the socket file at `a` left by a dead process (nobody answers)?
    pub(super) fn stale(&self, a: &libc::sockaddr_un, len: u32) -> bool {
        match connect_unix(a, len) {
            Ok(p) => {
                close_kfd(p);
                false
            }
            Err(e) => e == ECONNREFUSED,
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
        if dgram && ep.port != 0 {
            if let Some(p) = ports.get_mut(&ep.port) {
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
        let (port, k, path) = if ep.port != 0 {
            let (k, p) = self.bind_port(x.info.ty, ep.port)?;
            (ep.port, k, p)
        } else {
            let mut found = None;
            for _ in 0..4096 {
                let n = self.next_port.fetch_add(1, Ordering::Relaxed);
                let port = 32768 + (n % 28232) as u16;
                if dgram && ports.contains_key(&port) {
                    continue;
                }
                if let Ok((k, p)) = self.bind_port(x.info.ty, port) {
                    found = Some((port, k, p));
                    break;
                }
            }
            found.ok_or(EADDRINUSE)?
        };
        let c = if dgram {
            let c = Arc::new(Conn {
                port,
                ..Conn::new(k, Role::Dgram, h, h)
            });
            transport().add(c.clone())?;
            ports.insert(
                port,
                DgramPort {
                    conn: c.clone(),
                    path,
                    members: alloc::vec![(h, opts, x.me.clone())],
                },
            );
            c
        } else {
            *x.path.lock() = Some(path);
            let c = Arc::new(Conn::new(k, Role::Listener, h, h));
            *c.sock.lock() = x.me.clone();
            c
        };
        *x.conn.lock() = Some(c);
        let a = IpEp { port, ..ep }.to_sockaddr(x.info.domain);
        *x.local.lock() = Some(a);
        Ok(a)
    }

    /// Takes datagram socket `h` off its port; returns the port's kernel
    /// socket and file when it was the last one there.
    pub(super) fn leave_port(&self, x: &XSock, h: SockHandle) -> Option<(Arc<Conn>, PathBuf)> {
        let local = (*x.local.lock())?;
        let port = IpEp::parse(&local, local.family()).ok()?.port;
        let mut ports = DGRAM_PORTS.lock();
        let p = ports.get_mut(&port)?;
        p.members.retain(|(m, _, _)| *m != h);
        if let Some(&(next, _, _)) = p.members.first() {
            p.conn.handle.store(next.0, Ordering::Release);
            return None;
        }
        ports.remove(&port).map(|p| (p.conn, p.path))
    }

    /// The link to datagram port `port`, opened on first use; `None` when
    /// nobody (of ours) is bound there.
    pub(super) fn link(&self, port: u16) -> Option<Arc<Conn>> {
        let mut links = DGRAM_LINKS.lock();
        if let Some(l) = links.get(&port) {
            if !l.state.is_closed() {
                return Some(l.clone());
            }
            links.remove(&port);
        }
        let path = self.path(SOCK_DGRAM, port);
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
        links.insert(port, c.clone());
        Some(c)
    }

    pub(super) fn autobind(&self, x: &XSock, h: SockHandle) -> Result<(), Errno> {
        if x.local.lock().is_some() {
            return Ok(());
        }
        let any = IpEp::parse(
            &crate::addr::SockAddr::unspecified(x.info.domain),
            x.info.domain,
        )?;
        self.bind_ep(x, h, any, SockOpts::default()).map(|_| ())
    }
}

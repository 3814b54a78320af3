//! The status endpoint: how `usockstat` lists a network's sockets.
//!
//! Each process whose transport runs serves a listening AF_UNIX socket at
//! `DIR/.stat/<pid>`, made when the transport starts and removed at exit.
//! Whoever connects (and passes the transport's own check, [`peer_is_us`])
//! is sent the process's socket listing (`backend::upcall::listing`) and
//! the connection is closed:
//!
//! ```text
//! usock-listing<TAB>1<TAB><pid><TAB><comm>
//! <fd><TAB><id><TAB><netid><TAB><state><TAB><recv_q><TAB><send_q><TAB><local><TAB><peer>
//! ...
//! end
//! ```
//!
//! (one line per fd, see `socket::listing`; `end` tells a complete answer
//! from a cut one). Why an endpoint per process rather than files the
//! processes keep up to date: nothing is written while nobody asks, the
//! answer is the state of the moment (queues included), and a process that
//! does not answer (stopped, or its transport thread busy) costs the
//! lister a timeout, never the process anything. Why the transport thread
//! serves it: it already watches its kernel sockets, so listing needs no
//! thread of its own, and a program's calls never wait for it (it takes
//! each socket's locks only as a getsockname or SIOCINQ would).
//!
//! The endpoint lives in the directory of the first network the process
//! joined (a process on several networks, which only a program that
//! makes its own backends can be, lists all its sockets there). A fork
//! child closes its copy of its parent's endpoint and makes its own when
//! its transport starts; a process that execs leaves its file behind, and
//! the new image binds its own over it (the name is its pid's).
#![deny(unsafe_code)]

use alloc::string::String;
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};
use std::path::{Path, PathBuf};

use super::*;
use crate::sync::SetOnce;

/// The network directory the endpoint goes in (the first one joined).
static DIR: SetOnce<PathBuf> = SetOnce::new();
/// The endpoint's listening socket (-1: none; -2: being made).
static KFD: AtomicI32 = AtomicI32::new(-1);
/// The process that made it: only that process removes its file at exit
/// (a fork child exiting must not remove its parent's).
static OWNER: AtomicU32 = AtomicU32::new(0);
/// The transport's epoll set, once it runs (-1: not yet).
static EPFD: AtomicI32 = AtomicI32::new(-1);

/// `remove_at_exit` is registered (a fork child inherits the registration).
static AT_EXIT: AtomicBool = AtomicBool::new(false);

/// How long a lister that does not read may hold the transport thread.
const WRITE_LIMIT: core::time::Duration = core::time::Duration::from_millis(100);

/// The backend joined network `dir`; serves the endpoint there if the
/// transport already runs.
pub(super) fn joined(dir: &Path) {
    if DIR.get().is_none() {
        let _ = DIR.set(dir.to_path_buf());
    }
    let ep = EPFD.load(Ordering::SeqCst);
    if ep >= 0 {
        started(ep);
    }
}

/// The transport started with epoll set `epfd`: serves the endpoint.
pub(super) fn started(epfd: i32) {
    EPFD.store(epfd, Ordering::SeqCst);
    let Some(dir) = DIR.get() else {
        return;
    };
    if KFD
        .compare_exchange(-1, -2, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return;
    }
    match listen_at(dir) {
        Some(k) => {
            OWNER.store(std::process::id(), Ordering::Release);
            KFD.store(k, Ordering::Release);
            if !AT_EXIT.swap(true, Ordering::AcqRel) {
                crate::platform::at_exit(remove_at_exit);
            }
            if kernel::epoll_ctl(epfd, libc::EPOLL_CTL_ADD, k, EV_IN).is_err() {
                // Nobody would answer: better no endpoint at all.
                KFD.store(-1, Ordering::Release);
                let _ = std::fs::remove_file(path(dir, std::process::id()));
                close_kfd(k);
            }
        }
        None => KFD.store(-1, Ordering::Release),
    }
}

/// `DIR/.stat/<pid>`.
fn path(dir: &Path, pid: u32) -> PathBuf {
    dir.join(".stat").join(alloc::format!("{pid}"))
}

/// A listening socket at this process's endpoint name in `dir`.
fn listen_at(dir: &Path) -> Option<i32> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let stat = dir.join(".stat");
    if std::fs::DirBuilder::new().mode(0o700).create(&stat).is_ok() {
        // Made by root on a network prepared for another user (`usockrun
        // --user`): the directory is that user's, as the network's is, or
        // the daemon that switches to the user could not serve its own.
        if let Ok(m) = std::fs::metadata(dir) {
            if m.uid() != kernel::own_cred().1 {
                let _ = std::os::unix::fs::chown(&stat, Some(m.uid()), Some(m.gid()));
            }
        }
    }
    let p = path(dir, std::process::id());
    // Our pid's name: left by an earlier image of this process (before an
    // exec) or by a dead process whose pid we got.
    let _ = std::fs::remove_file(&p);
    let (a, len) = unix_addr(&p).ok()?;
    let k = unix_stream().ok()?;
    if bind_unix(k, &a, len).is_err() || kernel::listen(k, 16).is_err() {
        close_kfd(k);
        return None;
    }
    Some(k)
}

/// Whether `fd` is the endpoint (an event of the transport's set).
pub(super) fn is_endpoint(fd: i32) -> bool {
    fd >= 0 && KFD.load(Ordering::Acquire) == fd
}

/// Answers every lister waiting on the endpoint `lfd`.
pub(super) fn answer(lfd: i32) {
    while let Ok(k) = kernel::accept(lfd) {
        if peer_is_us(k) {
            let text = report();
            send_all(k, text.as_bytes());
        }
        close_kfd(k);
    }
}

/// The whole answer: header, listing, end.
fn report() -> String {
    let comm = std::fs::read("/proc/self/comm").unwrap_or_default();
    let comm = comm.strip_suffix(b"\n").unwrap_or(&comm);
    let mut out = String::new();
    let _ = write!(out, "usock-listing\t1\t{}\t", std::process::id());
    for &b in comm {
        if b > b' ' && b < 0x7f && b != b'\\' {
            out.push(b as char);
        } else {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out.push('\n');
    out.push_str(&crate::backend::upcall::listing());
    out.push_str("end\n");
    out
}

/// Writes `bytes` to the non-blocking `k`, waiting for room at most
/// [`WRITE_LIMIT`] in all (a lister that does not read gets a cut answer,
/// with no `end`).
fn send_all(k: i32, bytes: &[u8]) {
    let deadline = crate::platform::deadline_after(WRITE_LIMIT);
    let mut done = 0;
    while done < bytes.len() {
        match send_gather(k, &[bytes], done) {
            Ok(n) if n > 0 => done += n,
            Err(EAGAIN) => {
                let left = deadline.map_or(core::time::Duration::ZERO, crate::platform::time_left);
                if left.is_zero() {
                    return;
                }
                kernel::poll_out(k, left.as_millis().clamp(1, 100) as i32);
            }
            _ => return,
        }
    }
}

/// At exit: the endpoint's file goes with the process that made it.
extern "C" fn remove_at_exit() {
    crate::platform::guard((), || {
        let Some(dir) = DIR.get() else {
            return;
        };
        let me = std::process::id();
        if OWNER.load(Ordering::Acquire) == me && KFD.load(Ordering::Acquire) >= 0 {
            let _ = std::fs::remove_file(path(dir, me));
        }
    })
}

/// fork() support, in the child: the parent's endpoint stays the
/// parent's (its file untouched); the child's transport makes its own.
pub(super) fn fork_child() {
    EPFD.store(-1, Ordering::Release);
    let k = KFD.swap(-1, Ordering::AcqRel);
    if k >= 0 {
        close_kfd(k);
    }
}

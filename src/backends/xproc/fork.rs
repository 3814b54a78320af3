//! fork() support: the backend's global locks around a fork.
#![deny(unsafe_code)]

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::sync::atomic::Ordering;

use super::*;
use crate::sync::MutexGuard;

/// The guards of the backend's global locks, held across a fork by the
/// thread that forks (in the child: its only thread, with its copy of
/// this thread-local). Released by dropping them, innermost first: the
/// crate's mutex is a futex word that a fork child may release (a waiter
/// of the parent's that did not come along is woken in vain).
struct Held {
    link_accept: MutexGuard<'static, ()>,
    ports: MutexGuard<'static, BTreeMap<u32, DgramPort>>,
    unix_local: MutexGuard<'static, BTreeMap<std::path::PathBuf, u32>>,
    twins: MutexGuard<'static, BTreeMap<u64, alloc::sync::Weak<Conn>>>,
    links: MutexGuard<'static, BTreeMap<u64, Arc<Conn>>>,
    unix_links: MutexGuard<'static, BTreeMap<std::path::PathBuf, Arc<Conn>>>,
    conns: MutexGuard<'static, BTreeMap<i32, Arc<Conn>>>,
    paused: MutexGuard<'static, Vec<Arc<Conn>>>,
    direct: MutexGuard<'static, Vec<Arc<Conn>>>,
    connect_ports: MutexGuard<'static, alloc::collections::BTreeSet<(u16, [u8; 16], u16)>>,
}

std::thread_local! {
    static HELD: RefCell<Option<Held>> = const { RefCell::new(None) };
}

/// fork() support, step 1 (in the parent, before fork): takes the
/// backend's global locks (link acceptance, ports, AF_UNIX names, links, the transport's
/// tables) so that
/// the child does not inherit one held by another thread. Must be followed
/// by [`atfork_parent`] or [`atfork_child`] on the same thread.
pub fn atfork_prepare() {
    let held = Held {
        // Outermost: `Transport::accept` takes the others under it.
        link_accept: super::thread::LINK_ACCEPT.lock(),
        ports: DGRAM_PORTS.lock(),
        unix_local: super::unix::UNIX_LOCAL.lock(),
        twins: super::unix::TWINS.lock(),
        links: DGRAM_LINKS.lock(),
        unix_links: super::unix::UNIX_LINKS.lock(),
        conns: TRANSPORT.conns.lock(),
        paused: TRANSPORT.paused.lock(),
        direct: TRANSPORT.direct.lock(),
        // Alone: taken last, released first.
        connect_ports: super::ports::CONNECT_PORTS.lock(),
    };
    HELD.with(|h| *h.borrow_mut() = Some(held));
}

/// Releases the locks [`atfork_prepare`] took, innermost first (nothing
/// if it did not run on this thread).
pub(super) fn atfork_release() {
    if let Some(h) = HELD.with(|h| h.borrow_mut().take()) {
        let Held {
            link_accept,
            ports,
            unix_local,
            twins,
            links,
            unix_links,
            conns,
            paused,
            direct,
            connect_ports,
        } = h;
        drop(connect_ports);
        drop(direct);
        drop(paused);
        drop(conns);
        drop(unix_links);
        drop(links);
        drop(twins);
        drop(unix_local);
        drop(ports);
        drop(link_accept);
    }
}

/// fork() support, in the parent after fork: releases the locks taken by
/// [`atfork_prepare`]; the parent's transport goes on unchanged.
pub fn atfork_parent() {
    atfork_release();
}

/// fork() support, in the child after fork: the parent's transport thread
/// did not come along, and the kernel sockets it served belong to the
/// parent's connections, so the child closes its copies of them (a child
/// holding them would keep a dead parent's peers from seeing the reset) and
/// starts an empty transport; the child's own new sockets get a new thread.
pub fn atfork_child() {
    atfork_release();
    core::mem::take(&mut *TRANSPORT.paused.lock());
    core::mem::take(&mut *TRANSPORT.direct.lock());
    // The parent's ports and links stay the parent's: the child's copies of
    // their kernel sockets are closed below, their files are not touched.
    core::mem::take(&mut *DGRAM_PORTS.lock());
    core::mem::take(&mut *DGRAM_LINKS.lock());
    core::mem::take(&mut *super::unix::UNIX_LINKS.lock());
    // The parent's AF_UNIX sockets are reached through their rendezvous,
    // as any other process's.
    core::mem::take(&mut *super::unix::UNIX_LOCAL.lock());
    core::mem::take(&mut *super::unix::TWINS.lock());
    let old = core::mem::take(&mut *TRANSPORT.conns.lock());
    for (kfd, c) in old {
        c.state.close();
        close_kfd(kfd);
    }
    super::status::fork_child();
    let bell = TRANSPORT.bell.swap(-1, Ordering::AcqRel);
    if bell >= 0 {
        close_kfd(bell);
    }
    let ep = TRANSPORT.epfd.swap(-1, Ordering::AcqRel);
    if ep >= 0 {
        close_kfd(ep);
    }
}

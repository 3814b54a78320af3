//! fork() support: the backend's global locks around a fork.

use core::sync::atomic::Ordering;

use super::*;

/// fork() support, step 1 (in the parent, before fork): takes the
/// backend's global locks (ports, links, the transport's tables) so that
/// the child does not inherit one held by another thread. Must be followed
/// by [`atfork_parent`] or [`atfork_child`].
pub fn atfork_prepare() {
    core::mem::forget(DGRAM_PORTS.lock());
    core::mem::forget(DGRAM_LINKS.lock());
    core::mem::forget(TRANSPORT.conns.lock());
    core::mem::forget(TRANSPORT.paused.lock());
}

/// Releases the locks [`atfork_prepare`] took, innermost first.
pub(super) fn atfork_release() {
    // SAFETY: atfork_prepare left these locks held by this thread (in the
    // child: the thread that forked), their guards forgotten.
    unsafe {
        crate::sync::fork_release(&TRANSPORT.paused);
        crate::sync::fork_release(&TRANSPORT.conns);
        crate::sync::fork_release(&DGRAM_LINKS);
        crate::sync::fork_release(&DGRAM_PORTS);
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
    // The parent's ports and links stay the parent's: the child's copies of
    // their kernel sockets are closed below, their files are not touched.
    core::mem::take(&mut *DGRAM_PORTS.lock());
    core::mem::take(&mut *DGRAM_LINKS.lock());
    let old = core::mem::take(&mut *TRANSPORT.conns.lock());
    for (kfd, c) in old {
        c.state.close();
        close_kfd(kfd);
    }
    let ep = TRANSPORT.epfd.swap(-1, Ordering::AcqRel);
    if ep >= 0 {
        close_kfd(ep);
    }
}

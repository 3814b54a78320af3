//! SCM_RIGHTS on the program's kernel sockets (an AF_UNIX socket the
//! library passes through) carrying sockets of the shm backend. Such a
//! socket's fd number holds only a stand-in; what is the socket is its
//! anchor and its segment (SHARED.md). So the sender's message carries the
//! anchor in the socket's place and the segment's memfd after the fds the
//! program gave, and the receiving library adopts each pair at the number
//! the anchor arrived at, taking the memfds out of the message: the
//! receiver sees the fds the sender gave, in their order, as on Linux.
//! With the shm backend off, each call costs one load; with it on, a
//! message carries nothing of ours unless a walk of its control data finds
//! one, and only then is anything allocated. Both calls are
//! `on_socket!`'s way to the kernel (`via`): their own work runs inside
//! the panic boundary, the kernel's call outside it.

use alloc::vec::Vec;
use core::ffi::c_int;

use libc::{msghdr, ssize_t};

use super::ffi;
use crate::platform::real;

/// An LP64 `cmsghdr`: a `size_t` length, the level, the type.
const HDR: usize = 16;

fn align(n: usize) -> usize {
    n.div_ceil(8) * 8
}

/// One control message of a buffer: its level, type and data.
struct Cmsg<'a> {
    level: i32,
    ty: i32,
    data: &'a [u8],
}

/// The control messages of `buf` as the kernel walks them
/// (`__cmsg_nxthdr`); None when a header is malformed, which the kernel
/// refuses (EINVAL) or never writes.
fn cmsgs(buf: &[u8]) -> Option<Vec<Cmsg<'_>>> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while buf.len() >= at + HDR {
        let len = u64::from_ne_bytes(buf[at..at + 8].try_into().ok()?) as usize;
        if len < HDR || len > buf.len() - at {
            return None;
        }
        out.push(Cmsg {
            level: i32::from_ne_bytes(buf[at + 8..at + 12].try_into().ok()?),
            ty: i32::from_ne_bytes(buf[at + 12..at + 16].try_into().ok()?),
            data: &buf[at + HDR..at + len],
        });
        at += align(len);
    }
    Some(out)
}

/// Whether `hit` holds for any fd of `buf`'s SCM_RIGHTS messages, walked
/// as [`cmsgs`] walks them but without allocating: the check that keeps a
/// message with nothing of ours off the allocating path.
fn any_rights_fd(buf: &[u8], mut hit: impl FnMut(i32) -> bool) -> bool {
    let mut at = 0usize;
    while buf.len() >= at + HDR {
        let word = |i: usize| {
            buf[i..i + 4]
                .try_into()
                .map(i32::from_ne_bytes)
                .unwrap_or(0)
        };
        let len = buf[at..at + 8]
            .try_into()
            .map(u64::from_ne_bytes)
            .unwrap_or(0) as usize;
        if len < HDR || len > buf.len() - at {
            return false;
        }
        if word(at + 8) == libc::SOL_SOCKET
            && word(at + 12) == libc::SCM_RIGHTS
            && fds_of(&buf[at + HDR..at + len]).any(&mut hit)
        {
            return true;
        }
        at += align(len);
    }
    false
}

fn is_rights(c: &Cmsg<'_>) -> bool {
    c.level == libc::SOL_SOCKET && c.ty == libc::SCM_RIGHTS
}

fn fds_of(data: &[u8]) -> impl Iterator<Item = i32> + '_ {
    data.chunks_exact(4)
        .map(|c| i32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
}

/// Appends one control message, padded as the kernel pads it.
fn put(out: &mut Vec<u8>, level: i32, ty: i32, data: &[u8]) {
    out.extend_from_slice(&((HDR + data.len()) as u64).to_ne_bytes());
    out.extend_from_slice(&level.to_ne_bytes());
    out.extend_from_slice(&ty.to_ne_bytes());
    out.extend_from_slice(data);
    out.resize(align(out.len()), 0);
}

fn fd_bytes(fds: &[i32]) -> Vec<u8> {
    fds.iter().flat_map(|f| f.to_ne_bytes()).collect()
}

/// sendmsg(2) on a kernel socket.
///
/// # Safety
/// sendmsg's contract.
pub(crate) unsafe fn sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t {
    // SAFETY: the caller's msghdr, probed before it is read.
    let ctl = ffi::guard(None, || unsafe { translated(msg) });
    if let Some(mut ctl) = ctl {
        // SAFETY: probed by `translated`.
        let mut m = unsafe { *msg };
        m.msg_control = ctl.as_mut_ptr().cast();
        m.msg_controllen = ctl.len();
        // SAFETY: the caller's message with our control buffer, which
        // lives across the call.
        return unsafe { real::sendmsg(fd, &m, flags) };
    }
    // SAFETY: not changed: libc's call, same arguments.
    unsafe { real::sendmsg(fd, msg, flags) }
}

/// The control buffer to send instead of `msg`'s, when its SCM_RIGHTS
/// name shared sockets. A bad pointer or buffer is left for the kernel to
/// refuse.
unsafe fn translated(msg: *const msghdr) -> Option<Vec<u8>> {
    crate::backends::shm_backend()?;
    ffi::probe(msg as *const u8, core::mem::size_of::<msghdr>()).ok()?;
    // SAFETY: probed.
    let m = unsafe { &*msg };
    if m.msg_controllen < HDR || m.msg_controllen > i32::MAX as usize {
        return None;
    }
    ffi::probe(m.msg_control as *const u8, m.msg_controllen).ok()?;
    // SAFETY: probed for msg_controllen bytes.
    let buf = unsafe { ffi::buf(m.msg_control, m.msg_controllen) }.ok()?;
    if !any_rights_fd(buf, |f| crate::fd::get(f).is_some()) {
        return None;
    }
    let list = cmsgs(buf)?;
    let mut changed = false;
    let mut out = Vec::with_capacity(buf.len() + 64);
    for c in &list {
        if !is_rights(c) {
            put(&mut out, c.level, c.ty, c.data);
            continue;
        }
        let mut fds: Vec<i32> = fds_of(c.data).collect();
        let mut memfds = Vec::new();
        for f in fds.iter_mut() {
            if let Some((anchor, memfd)) = crate::fd::get(*f).and_then(|s| s.shared_exec_fds()) {
                *f = anchor;
                if memfd >= 0 {
                    memfds.push(memfd);
                }
                changed = true;
            }
        }
        fds.extend(memfds);
        put(&mut out, c.level, c.ty, &fd_bytes(&fds));
    }
    changed.then_some(out)
}

/// recvmsg(2) on a kernel socket.
///
/// # Safety
/// recvmsg's contract.
pub(crate) unsafe fn recvmsg(fd: c_int, msg: *mut msghdr, flags: c_int) -> ssize_t {
    // SAFETY: libc's call, same arguments.
    let r = unsafe { real::recvmsg(fd, msg, flags) };
    if r >= 0 {
        // A panic here leaves the message as the kernel gave it.
        // SAFETY: the kernel just wrote through `msg`: it is valid.
        ffi::guard((), || unsafe { adopt_received(&mut *msg, flags) });
    }
    r
}

/// Adopts the shared sockets among the fds a message brought and takes
/// their memfds out of its control data.
unsafe fn adopt_received(m: &mut msghdr, flags: c_int) {
    let Some(shm) = crate::backends::shm_backend() else {
        return;
    };
    if m.msg_controllen < HDR || m.msg_control.is_null() {
        return;
    }
    // SAFETY: the kernel wrote msg_controllen bytes there.
    let Ok(buf) = (unsafe { ffi::buf_mut(m.msg_control, m.msg_controllen) }) else {
        return;
    };
    if !any_rights_fd(buf, |_| true) {
        return;
    }
    let Some(list) = cmsgs(buf) else {
        return;
    };
    let fds: Vec<i32> = list
        .iter()
        .filter(|c| is_rights(c))
        .flat_map(|c| fds_of(c.data))
        .collect();
    if fds.is_empty() {
        return;
    }
    let (found, used, _) = shm.recognise(&fds);
    if found.is_empty() {
        return;
    }
    let mut out = Vec::with_capacity(buf.len());
    for c in &list {
        if is_rights(c) {
            let kept: Vec<i32> = fds_of(c.data).filter(|f| !used.contains(f)).collect();
            put(&mut out, c.level, c.ty, &fd_bytes(&kept));
        } else {
            put(&mut out, c.level, c.ty, c.data);
        }
    }
    super::fork::adopt(found, flags & libc::MSG_CMSG_CLOEXEC != 0);
    for memfd in used {
        let _ = crate::platform::kfd_close(memfd);
    }
    // Never longer than what the kernel wrote: only fds were taken out.
    let n = out.len().min(buf.len());
    buf[..n].copy_from_slice(&out[..n]);
    m.msg_controllen = n;
}

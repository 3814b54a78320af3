//! Options the frontend gives no behaviour of its own (IP_TTL, IP_TOS,
//! TCP_CORK, TCP_USER_TIMEOUT, SO_PRIORITY, IPV6_TCLASS, ...) on AF_INET
//! and AF_INET6 sockets: the kernel is their reference. A setsockopt is
//! made on a fresh kernel socket of the same family and type, after this
//! socket's earlier such settings (some options' checks depend on others),
//! so the range checks, privileges and errnos are the kernel's; what it
//! accepts is recorded on the socket. A getsockopt asks a fresh kernel
//! socket given the same record, with the caller's length, so defaults,
//! normalised values and truncation are the kernel's too; so is the errno
//! of a level the socket lacks. Accepted sockets inherit the record, as
//! Linux's inherit the listener's settings.
//!
//! Multicast joins, leaves and source filter changes (one source at a
//! time, or the whole filter: IP_MSFILTER, MCAST_MSFILTER) are checked
//! here too and kept in the record (a leave takes its join out), and
//! `socket::mcast` acts on them; a whole filter is read back from the
//! kernel socket given the caller's request (`get_in`).
//!
//! Not handed over, because the kernel socket would accept them while this
//! socket would silently not act on them: eBPF programs (SO_ATTACH_BPF
//! and the reuseport programs). Those stay ENOPROTOOPT. Classic socket
//! filters are the frontend's own (`socket::filter`).

use alloc::vec;
use alloc::vec::Vec;

use super::Socket;
use crate::backend::contract::{Errno, SockInfo};
use crate::consts::*;
use crate::platform;

/// One setting the kernel accepted for this socket.
#[derive(Clone, Debug)]
pub(crate) struct KernelOpt {
    pub(crate) level: i32,
    pub(crate) name: i32,
    pub(crate) val: Vec<u8>,
}

/// Whether (`level`, `name`) on a socket of `info` is the kernel's.
pub(super) fn applies(info: &SockInfo, level: i32, name: i32) -> bool {
    if info.domain != AF_INET && info.domain != AF_INET6 {
        return false;
    }
    // SO_ATTACH_BPF and the reuseport programs (50..=52). The joins,
    // leaves and source filter changes (`mcast::group_opt`) are taken.
    !(level == SOL_SOCKET && matches!(name, 50..=52))
}

/// The int last set for (`level`, `name`) in `record`, if any.
pub(super) fn int_value(record: &[KernelOpt], level: i32, name: i32) -> Option<i32> {
    let o = record
        .iter()
        .rev()
        .find(|o| o.level == level && o.name == name)?;
    match o.val.len() {
        0 => None,
        // IP options take a byte as well as an int.
        1..=3 => Some(i32::from(o.val[0])),
        _ => Some(i32::from_ne_bytes([o.val[0], o.val[1], o.val[2], o.val[3]])),
    }
}

/// A fresh kernel socket like `info` with `record` applied (a setting the
/// kernel took before it takes again; one refused now, for example after a
/// privilege was dropped, is left out).
fn twin(info: &SockInfo, record: &[KernelOpt]) -> Result<Twin, Errno> {
    let k = platform::kernel_socket(info.domain, info.ty | SOCK_CLOEXEC, 0)?;
    let t = Twin(k);
    for o in record {
        let _ = platform::kernel_setsockopt(k, o.level, o.name, &o.val);
    }
    Ok(t)
}

/// Closes the kernel socket when dropped.
struct Twin(i32);

impl Drop for Twin {
    fn drop(&mut self) {
        let _ = platform::kfd_close(self.0);
    }
}

/// What an accepted socket inherits of its listener's `record`: all but
/// TCP_DEFER_ACCEPT (9) and TCP_FASTOPEN (23), which Linux keeps on the
/// listener (its accepted sockets read 0), and multicast memberships.
pub(crate) fn inherited(record: &[KernelOpt]) -> Vec<KernelOpt> {
    record
        .iter()
        .filter(|o| !(o.level == IPPROTO_TCP && (o.name == 9 || o.name == 23)))
        // Nor memberships: inet_csk_clone_lock starts the child's list empty.
        .filter(|o| !super::mcast::group_opt(o.level, o.name))
        .cloned()
        .collect()
}

/// setsockopt's check: the kernel's answer for a socket with `record`.
pub(super) fn check(
    info: &SockInfo,
    record: &[KernelOpt],
    level: i32,
    name: i32,
    val: &[u8],
) -> Result<(), Errno> {
    let t = twin(info, record)?;
    platform::kernel_setsockopt(t.0, level, name, val)
}

/// A setting the kernel accepted joins `s`'s record, replacing an earlier
/// one of the same option; a multicast join or leave goes to
/// `mcast::record` instead (a socket may join many groups).
pub(super) fn record(s: &Socket, level: i32, name: i32, val: Vec<u8>) {
    let mut c = s.ctl.lock();
    let record = &mut c.kernel_opts;
    if super::mcast::group_opt(level, name) {
        return super::mcast::record(s, record, level, name, val);
    }
    record.retain(|o| (o.level, o.name) != (level, name));
    record.push(KernelOpt { level, name, val });
    let on = |level, name| int_value(record, level, name).is_some_and(|v| v != 0);
    let freebind = on(IPPROTO_IP, IP_FREEBIND)
        || on(IPPROTO_IP, IP_TRANSPARENT)
        || on(IPPROTO_IPV6, IPV6_FREEBIND)
        || on(IPPROTO_IPV6, IPV6_TRANSPARENT);
    c.opts.freebind = freebind;
}

/// The options that let bind() take a foreign address (Linux's
/// `inet_can_nonlocal_bind`), which the backends' bind must know of.
const IP_TRANSPARENT: i32 = 19;
const IP_FREEBIND: i32 = 15;
const IPV6_TRANSPARENT: i32 = 75;
const IPV6_FREEBIND: i32 = 78;

/// getsockopt with a buffer of `cap` bytes: the bytes the kernel writes.
pub(super) fn get(
    info: &SockInfo,
    record: &[KernelOpt],
    level: i32,
    name: i32,
    cap: usize,
) -> Result<Vec<u8>, Errno> {
    let t = twin(info, record)?;
    // Options are small but some are structs (TCP_INFO, IP_PKTOPTIONS);
    // the kernel writes at most what it is given.
    let mut buf = vec![0u8; cap.min(64 * 1024)];
    let n = platform::kernel_getsockopt(t.0, level, name, &mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

/// getsockopt of an option whose buffer is also its request (IP_MSFILTER
/// and MCAST_MSFILTER name the group in it): the bytes the kernel writes
/// over `input` for a socket with `record`.
pub(super) fn get_in(
    info: &SockInfo,
    record: &[KernelOpt],
    level: i32,
    name: i32,
    input: &[u8],
) -> Result<Vec<u8>, Errno> {
    let t = twin(info, record)?;
    let mut buf = input[..input.len().min(64 * 1024)].to_vec();
    let n = platform::kernel_getsockopt(t.0, level, name, &mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

//! Datagram ports of this process and its links to other processes' ports.
#![deny(unsafe_code)]

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use std::path::PathBuf;

use super::*;
use crate::addr::IpEp;
use crate::addr::SockAddr;
use crate::backend::contract::*;
use crate::sync::Mutex;

/// The send buffer asked for a link's kernel socket (the kernel caps it at
/// `wmem_max` and doubles it): what may be on its way to a receiver before
/// its senders wait, like a UDP socket's send buffer.
pub(super) const DGRAM_LINK_SNDBUF: usize = 1 << 20;

/// A datagram port of this process: its kernel socket and file, and the
/// frontend sockets bound to it (several when all set SO_REUSEADDR, or all
/// SO_REUSEPORT, as Linux allows: iperf3's UDP server connects its socket
/// to the first client and binds a new one on the same port). Sharing a
/// port between processes is refused (EADDRINUSE).
pub(super) struct DgramPort {
    pub(super) conn: Arc<Conn>,
    /// Its file, and the link to it at the IPv6 name for a port bound to
    /// `::` without IPV6_V6ONLY.
    pub(super) paths: Vec<PathBuf>,
    /// In bind order: each member's handle, options and state.
    pub(super) members: Vec<(SockHandle, SockOpts, Weak<XSock>)>,
}

/// This process's datagram ports. Lock order: before the transport's
/// `conns`.
/// Keyed by `ports::port_key` (the port and its family space).
pub(super) static DGRAM_PORTS: Mutex<BTreeMap<u32, DgramPort>> = Mutex::new(BTreeMap::new());

/// Which socket on `port` receives a datagram from `src`, as Linux scores
/// them: one connected to `src` (compared as an endpoint, so IPv4 and its
/// v4-mapped form are the same), else the most recently bound unconnected
/// one, never one connected to another peer; when that one is of an
/// SO_REUSEPORT group, the source's hash picks one of the group's
/// unconnected members (`reuseport_select_sock`).
/// Returns its handle and family.
pub(super) fn dgram_receiver(port: u32, src: &SockAddr) -> Option<(SockHandle, i32)> {
    let from = IpEp::parse(src, src.family()).ok()?;
    let ports = DGRAM_PORTS.lock();
    let mut unconnected = Vec::new();
    for (h, o, x) in &ports.get(&port)?.members {
        let Some(x) = x.upgrade() else {
            continue;
        };
        let peer = *x.peer.lock();
        match peer.and_then(|p| IpEp::parse(&p, p.family()).ok()) {
            Some(p) if (p.ip, p.port) == (from.ip, from.port) => return Some((*h, x.info.domain)),
            Some(_) => {}
            None => unconnected.push((*h, x.info.domain, o.reuseport)),
        }
    }
    let &(h, fam, reuseport) = unconnected.last()?;
    if !reuseport {
        return Some((h, fam));
    }
    let group: Vec<(SockHandle, i32)> = unconnected
        .iter()
        .filter(|m| m.2)
        .map(|m| (m.0, m.1))
        .collect();
    group
        .get((from.flow_hash() % group.len() as u64) as usize)
        .copied()
}

/// Links of this process to other sockets' datagram ports, by port: one
/// AF_UNIX stream each, shared by all our sockets sending there (a frame
/// names its source). A stream, not an AF_UNIX datagram socket: the kernel
/// queues only `net.unix.max_dgram_qlen` datagrams (10 by default) on one
/// of those, while a stream holds a socket buffer's worth and is read in
/// batches. Lock order: after `DGRAM_PORTS`, before the transport's
/// `conns`.
pub(super) static DGRAM_LINKS: Mutex<BTreeMap<u32, Arc<Conn>>> = Mutex::new(BTreeMap::new());

/// Forgets link `c` if it is still the link to its port.
pub(super) fn drop_link(c: &Conn) -> Option<u32> {
    let mut links = DGRAM_LINKS.lock();
    match links.get(&c.port) {
        Some(l) if core::ptr::eq(Arc::as_ptr(l), c) => {
            links.remove(&c.port);
            Some(c.port)
        }
        _ => None,
    }
}

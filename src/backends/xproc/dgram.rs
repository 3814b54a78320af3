//! Datagram ports of this process and its links to other processes' ports.
#![deny(unsafe_code)]

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use std::path::PathBuf;

use super::*;
use crate::addr::IpEp;
use crate::addr::SockAddr;
use crate::backend::attrs::ATTR_LEN;
use crate::backend::contract::*;
use crate::sync::{Mutex, MutexGuard};

/// The send buffer asked for a link's kernel socket (the kernel caps it at
/// `wmem_max` and doubles it): what may be on its way to a receiver before
/// its senders wait, like a UDP socket's send buffer.
pub(super) const DGRAM_LINK_SNDBUF: usize = 1 << 20;

/// A datagram port of this process: its kernel socket and file, and the
/// frontend sockets bound to it (several when all set SO_REUSEADDR, or all
/// SO_REUSEPORT, as Linux allows: iperf3's UDP server connects its socket
/// to the first client and binds a new one on the same port). Other
/// processes may hold the port too when its sockets share (`shared`).
pub(super) struct DgramPort {
    pub(super) conn: Arc<Conn>,
    /// Its file, and the link to it at the IPv6 name for a port bound to
    /// `::` without IPV6_V6ONLY.
    pub(super) paths: Vec<PathBuf>,
    /// In bind order: each member's handle, options and state.
    pub(super) members: Vec<(SockHandle, SockOpts, Weak<XSock>)>,
    /// A stream port's members that listen (see `ports::join_listeners`).
    pub(super) listening: Vec<SockHandle>,
    /// A datagram port held through a member file, which other processes
    /// may hold too (`shared`): its number and the spaces of its bind.
    pub(super) shared: Option<(u16, ports::Space)>,
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

/// The source of a datagram to a group or broadcast address `ep` from a
/// socket bound to the wildcard: lo's address (127.0.0.1, or ::1), as the
/// datagram leaves over lo.
pub(super) fn group_source(ep: &IpEp) -> [u8; 16] {
    let mut lo = *ep;
    if ep.is_v4() {
        lo.ip[12..].copy_from_slice(&[127, 0, 0, 1]);
    } else {
        lo.ip = [0; 16];
    }
    lo.source_for()
}

/// A DATA frame's address: the source, then, for a datagram to a group or
/// broadcast address, that destination, then, when the sender gave them,
/// the datagram's attributes (`backend::attrs`, [`ATTR_LEN`] bytes). The
/// lengths tell the parts apart: a sockaddr_in is 16 bytes, a
/// sockaddr_in6 28, the attributes 20. `None` when the bytes name no
/// address.
pub(super) fn split_addr(addr: &[u8]) -> Option<(SockAddr, Option<SockAddr>, Option<DgramAttrs>)> {
    let fam = i32::from(u16::from_ne_bytes([*addr.first()?, *addr.get(1)?]));
    let n = match fam {
        AF_INET => 16,
        AF_INET6 => 28,
        _ => addr.len(),
    };
    if addr.len() <= n {
        return Some((SockAddr::from_bytes(addr)?, None, None));
    }
    let src = SockAddr::from_bytes(&addr[..n])?;
    let rest = &addr[n..];
    let (group, attrs) = match rest.len() {
        ATTR_LEN => (&[][..], Some(DgramAttrs::from_bytes(rest)?)),
        l if l > ATTR_LEN && matches!(l - ATTR_LEN, 16 | 28) => {
            let (g, a) = rest.split_at(l - ATTR_LEN);
            (g, Some(DgramAttrs::from_bytes(a)?))
        }
        _ => (rest, None),
    };
    let group = if group.is_empty() {
        None
    } else {
        Some(SockAddr::from_bytes(group)?)
    };
    Some((src, group, attrs))
}

/// Every socket on `port` that a datagram from `src` to the group or
/// broadcast address `group` reaches (bound to the wildcard or to that
/// address; not connected to another peer, `__udp_is_mcast_sock`), with
/// its family, in bind order.
pub(super) fn dgram_group_receivers(
    port: u32,
    src: &SockAddr,
    group: &SockAddr,
) -> Vec<(SockHandle, i32)> {
    let (Ok(from), Ok(to)) = (
        IpEp::parse(src, src.family()),
        IpEp::parse(group, group.family()),
    ) else {
        return Vec::new();
    };
    let ports = DGRAM_PORTS.lock();
    let Some(p) = ports.get(&port) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (h, _, x) in &p.members {
        let Some(x) = x.upgrade() else {
            continue;
        };
        let local = *x.local.lock();
        let bound = local.and_then(|l| IpEp::parse(&l, l.family()).ok());
        if !bound.is_some_and(|b| b.is_wild() || b.ip == to.ip) {
            continue;
        }
        let peer = *x.peer.lock();
        match peer.and_then(|p| IpEp::parse(&p, p.family()).ok()) {
            Some(p) if (p.ip, p.port) != (from.ip, from.port) => continue,
            _ => {}
        }
        out.push((*h, x.info.domain));
    }
    out
}

/// The port of datagram socket `x` (its `Role::Dgram` kernel socket), if
/// it has one. AF_UNIX datagram sockets have none here: their names'
/// input stays the transport's.
pub(super) fn port_of(x: &XSock) -> Option<Arc<Conn>> {
    if x.info.ty != SOCK_DGRAM || x.info.domain == AF_UNIX {
        return None;
    }
    let p = x.conn.lock().clone()?;
    matches!(p.role, Role::Dgram).then_some(p)
}

/// The link from a sender that a thread waiting on datagram socket `x`
/// reads itself (`InputDelegation`): the oldest of its port's links that
/// the transport has not kept for good. The kernel then wakes the waiting
/// thread itself when a datagram comes, which reads it and returns: one
/// wake-up per datagram, as a UDP socket's, instead of the transport
/// thread's and then the program's (a two-program ping-pong's round trip
/// cost four wake-ups). The other links stay the transport's, so a port
/// with several senders is read wholly either way.
pub(super) fn direct_link(x: &XSock) -> Option<Arc<Conn>> {
    let p = port_of(x)?;
    let links = live_links(&p);
    links.iter().find(|l| !l.state.is_kept()).cloned()
}

/// The links to port `p`, without those that closed. They are purged only
/// when one did: a blocking receive asks for them more than once per
/// datagram, and a scan costs less than a rewrite of the list.
pub(super) fn live_links(p: &Conn) -> MutexGuard<'_, Vec<Arc<Conn>>> {
    let mut links = p.links.lock();
    if links.iter().any(|l| l.state.is_closed()) {
        links.retain(|l| !l.state.is_closed());
    }
    links
}

/// Links of this process to other sockets' datagram ports, by port: one
/// AF_UNIX stream each, shared by all our sockets sending there (a frame
/// names its source). A stream, not an AF_UNIX datagram socket: the kernel
/// queues only `net.unix.max_dgram_qlen` datagrams (10 by default) on one
/// of those, while a stream holds a socket buffer's worth and is read in
/// batches. Keyed by the port's `port_key`; a link to one process of a
/// port that several share by `shared::member_link_key`. Lock order: after
/// `DGRAM_PORTS`, before the transport's `conns`.
pub(super) static DGRAM_LINKS: Mutex<BTreeMap<u64, Arc<Conn>>> = Mutex::new(BTreeMap::new());

/// Forgets link `c` if it is still a link of ours (to its port, or to one
/// of the processes sharing it).
pub(super) fn drop_link(c: &Conn) -> Option<u32> {
    let mut links = DGRAM_LINKS.lock();
    let is_c = |l: &Arc<Conn>| core::ptr::eq(Arc::as_ptr(l), c);
    if links.get(&u64::from(c.port)).is_some_and(is_c) {
        links.remove(&u64::from(c.port));
        return Some(c.port);
    }
    let key = links.iter().find(|(_, l)| is_c(l)).map(|(k, _)| *k)?;
    links.remove(&key);
    Some(c.port)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::attrs::ATTR_DST;

    fn v4(port: u16) -> SockAddr {
        IpEp {
            family: AF_INET,
            ip: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1],
            port,
        }
        .to_sockaddr(AF_INET)
    }

    #[test]
    fn an_address_splits_into_source_group_and_attributes() {
        let src = v4(1);
        let group = v4(2);
        let at = DgramAttrs {
            flags: ATTR_DST,
            tos: 0x28,
            ttl: 5,
            ..DgramAttrs::default()
        };
        let cat = |parts: &[&[u8]]| parts.concat();
        let only = split_addr(src.as_bytes()).unwrap();
        assert_eq!((only.0, only.1, only.2), (src, None, None));
        let g = split_addr(&cat(&[src.as_bytes(), group.as_bytes()])).unwrap();
        assert_eq!((g.1, g.2), (Some(group), None));
        let a = split_addr(&cat(&[src.as_bytes(), &at.to_bytes()])).unwrap();
        assert_eq!((a.0, a.1, a.2), (src, None, Some(at)));
        let ga = split_addr(&cat(&[src.as_bytes(), group.as_bytes(), &at.to_bytes()])).unwrap();
        assert_eq!((ga.1, ga.2), (Some(group), Some(at)));
        // Bad attribute bytes name no datagram.
        assert!(split_addr(&cat(&[src.as_bytes(), &[0xff; ATTR_LEN]])).is_none());
    }
}

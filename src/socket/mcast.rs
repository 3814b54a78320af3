//! IP multicast membership and broadcast on UDP sockets, as Linux keeps
//! them over lo.
//!
//! A membership (IP_ADD_MEMBERSHIP, MCAST_JOIN_GROUP, IPV6_JOIN_GROUP and
//! their leaves) is checked by the kernel twin like any option the kernel
//! is the reference for (`kernel_opts`): the joins stay in the socket's
//! record and the twin replays them, so a second join of a group is the
//! kernel's EADDRINUSE, a leave of a group not joined its EADDRNOTAVAIL,
//! and a bad value its EINVAL. A leave takes its join out of the record.
//!
//! Delivery: a backend fans a datagram sent to a multicast or broadcast
//! address out to every socket of the port that reaches the address (bound
//! to the wildcard or to the address itself) and asks each
//! (`upcall::takes_group`, answered here) whether it takes it, as Linux's
//! `__udp4_lib_mcast_deliver` asks `__udp_is_mcast_sock` and
//! `ip_mc_sf_allow`: a member takes the group's datagrams; a socket that is
//! not a member takes them when IP_MULTICAST_ALL is on (the default) and
//! some socket of this host is a member (otherwise the host never received
//! the datagram). "This host" is this process's sockets: a membership made
//! in another process does not let a non-member here take the group's
//! datagrams (its members get them all the same).
//!
//! Sending: an IPv4 datagram to a group leaves by lo unless IP_MULTICAST_IF
//! names another interface (by index or address). Out of another interface
//! it would go on that link, which a user-space socket cannot reach: this
//! host's members get it only with IP_MULTICAST_LOOP on (the default), from
//! the interface's address, as Linux loops it back; with the loop off
//! nobody here gets it. Over lo, IP_MULTICAST_LOOP changes nothing (lo
//! itself brings the datagram back).
//!
//! Not done: source filters (IP_ADD_SOURCE_MEMBERSHIP, MCAST_MSFILTER, ...:
//! still ENOPROTOOPT), the interface of a membership (every datagram here
//! comes over lo), the source address of an IPv6 datagram looped back
//! from another interface (lo's, not the interface's), and the datagram's
//! copy on the real link.

#[cfg(feature = "std")]
pub(crate) use with_record::fork_lock;
#[cfg(feature = "std")]
use with_record::{host_joined, member, IPV6_MULTICAST_ALL, IPV6_MULTICAST_IF, IP_MULTICAST_ALL};
#[cfg(feature = "std")]
pub(super) use with_record::{membership, record};

use super::options::OptVal;
use super::Socket;
use crate::addr::{IpEp, SockAddr};
use crate::backend::contract::Errno;
use crate::consts::*;

/// lo's interface index (the first interface of every network namespace).
const LO_IFINDEX: u32 = 1;

/// IP_MULTICAST_IF and IP_MULTICAST_LOOP (`linux/in.h`).
#[cfg(feature = "std")]
const IP_MULTICAST_IF: i32 = 32;
#[cfg(feature = "std")]
const IP_MULTICAST_LOOP: i32 = 34;
/// IPV6_MULTICAST_LOOP (`linux/in6.h`).
#[cfg(feature = "std")]
const IPV6_MULTICAST_LOOP: i32 = 19;

/// Where a datagram to a group goes (see the module documentation).
/// Without the kernel options' record (no_std) always over lo.
#[cfg_attr(not(feature = "std"), allow(dead_code))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum GroupRoute {
    /// Over lo (or not a group): as any datagram.
    Lo,
    /// Out of another interface with IP_MULTICAST_LOOP off: not to this
    /// host's members.
    NotLooped,
    /// Out of another interface, looped back: from this source address
    /// (v4-mapped), when the interface has one.
    Looped(Option<[u8; 16]>),
}

/// The memberships, kept in the kernel options' record (hosted only, as
/// that record is).
#[cfg(feature = "std")]
mod with_record {
    use alloc::vec::Vec;

    use super::super::kernel_opts::KernelOpt;
    use super::super::{slab, Socket};
    use crate::backend::contract::SockHandle;
    use crate::consts::*;
    use crate::sync::Mutex;

    pub(super) const IPV6_MULTICAST_IF: i32 = 17;
    const IPV6_ADD_MEMBERSHIP: i32 = 20;
    const IPV6_DROP_MEMBERSHIP: i32 = 21;
    pub(super) const IPV6_MULTICAST_ALL: i32 = 29;
    const IP_ADD_MEMBERSHIP: i32 = 35;
    const IP_DROP_MEMBERSHIP: i32 = 36;
    const MCAST_JOIN_GROUP: i32 = 42;
    const MCAST_LEAVE_GROUP: i32 = 45;
    pub(super) const IP_MULTICAST_ALL: i32 = 49;

    /// Where `struct group_req`'s `gr_group` starts: after the interface
    /// index, at the alignment of a `sockaddr_storage` (a long's).
    const GR_GROUP: usize = core::mem::size_of::<usize>();

    /// `Some(true)` for an option that joins a group, `Some(false)` for one
    /// that leaves it, `None` for any other.
    pub(in crate::socket) fn membership(level: i32, name: i32) -> Option<bool> {
        match (level, name) {
            (IPPROTO_IP, IP_ADD_MEMBERSHIP | MCAST_JOIN_GROUP)
            | (IPPROTO_IPV6, IPV6_ADD_MEMBERSHIP | MCAST_JOIN_GROUP) => Some(true),
            (IPPROTO_IP, IP_DROP_MEMBERSHIP | MCAST_LEAVE_GROUP)
            | (IPPROTO_IPV6, IPV6_DROP_MEMBERSHIP | MCAST_LEAVE_GROUP) => Some(false),
            _ => None,
        }
    }

    /// An IPv4 address as IPv6 bytes (v4-mapped), as `IpEp` keeps it.
    fn mapped(b: &[u8]) -> [u8; 16] {
        let mut ip = [0u8; 16];
        ip[10] = 0xff;
        ip[11] = 0xff;
        ip[12..].copy_from_slice(&b[..4]);
        ip
    }

    fn v6(b: &[u8]) -> [u8; 16] {
        let mut ip = [0u8; 16];
        ip.copy_from_slice(&b[..16]);
        ip
    }

    /// The group and the interface (index or IPv4 address, as given) that a
    /// membership option's value names; `None` for a value too short (which
    /// the kernel refused before this is asked).
    fn group_of(level: i32, name: i32, val: &[u8]) -> Option<([u8; 16], [u8; 4])> {
        match (level, name) {
            // struct ip_mreq / ip_mreqn: the group, then the interface's
            // address (and ip_mreqn's index after it).
            (IPPROTO_IP, IP_ADD_MEMBERSHIP | IP_DROP_MEMBERSHIP) => {
                let g = val.get(..4)?;
                let mut itf = [0u8; 4];
                if let Some(i) = val.get(8..12).or_else(|| val.get(4..8)) {
                    itf.copy_from_slice(i);
                }
                Some((mapped(g), itf))
            }
            // struct ipv6_mreq: the group, then the interface index.
            (IPPROTO_IPV6, IPV6_ADD_MEMBERSHIP | IPV6_DROP_MEMBERSHIP) => {
                let mut itf = [0u8; 4];
                itf.copy_from_slice(val.get(16..20)?);
                Some((v6(val.get(..16)?), itf))
            }
            // struct group_req: the interface index, then a sockaddr.
            (_, MCAST_JOIN_GROUP | MCAST_LEAVE_GROUP) => {
                let mut itf = [0u8; 4];
                itf.copy_from_slice(val.get(..4)?);
                let g = val.get(GR_GROUP..)?;
                match i32::from(u16::from_ne_bytes([*g.first()?, *g.get(1)?])) {
                    AF_INET => Some((mapped(g.get(4..8)?), itf)),
                    AF_INET6 => Some((v6(g.get(8..24)?), itf)),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// Every (socket, group) joined in this process: whether this host is a
    /// member of a group, for IP_MULTICAST_ALL. An entry whose socket is gone
    /// (closed without leaving, as a close leaves every group) is dropped at
    /// the next join. A leaf lock: the slab is looked at with it released.
    static JOINED: Mutex<Vec<(SockHandle, [u8; 16])>> = Mutex::new(Vec::new());

    /// Whether a live socket of this process is a member of `group`.
    pub(super) fn host_joined(group: &[u8; 16]) -> bool {
        let joined: Vec<SockHandle> = JOINED
            .lock()
            .iter()
            .filter(|(_, g)| g == group)
            .map(|(h, _)| *h)
            .collect();
        joined.into_iter().any(|h| slab::lookup(h).is_some())
    }

    /// `h` joined `group`; the entries of sockets that are gone go.
    fn joined(h: SockHandle, group: [u8; 16]) {
        let all: Vec<SockHandle> = JOINED.lock().iter().map(|(h, _)| *h).collect();
        let gone: Vec<SockHandle> = all
            .into_iter()
            .filter(|h| slab::lookup(*h).is_none())
            .collect();
        let mut j = JOINED.lock();
        j.retain(|(h, _)| !gone.contains(h));
        j.push((h, group));
    }

    /// Before a fork: no thread may hold the list's lock in the child (the
    /// child keeps the list: its sockets are the parent's, still members).
    pub(crate) fn fork_lock() {
        crate::sync::fork_hold::hold(&JOINED);
    }

    /// A membership change (`join` or leave) the kernel accepted for `s`:
    /// a join joins the socket's `record`; a leave takes out the join of its
    /// group (made on the same interface when there is one such).
    pub(in crate::socket) fn record(
        s: &Socket,
        record: &mut Vec<KernelOpt>,
        level: i32,
        name: i32,
        val: Vec<u8>,
    ) {
        let (Some(join), Some((g, itf))) = (membership(level, name), group_of(level, name, &val))
        else {
            return;
        };
        if join {
            record.push(KernelOpt { level, name, val });
            joined(s.handle, g);
            return;
        }
        let join_of_g = |o: &KernelOpt| {
            membership(o.level, o.name) == Some(true)
                && group_of(o.level, o.name, &o.val).is_some_and(|(og, _)| og == g)
        };
        let same_itf =
            |o: &KernelOpt| group_of(o.level, o.name, &o.val).is_some_and(|x| x.1 == itf);
        let at = record
            .iter()
            .position(|o| join_of_g(o) && same_itf(o))
            .or_else(|| record.iter().position(join_of_g));
        if let Some(i) = at {
            record.remove(i);
            let mut j = JOINED.lock();
            if let Some(k) = j.iter().position(|e| *e == (s.handle, g)) {
                j.swap_remove(k);
            }
        }
    }

    /// Whether `record` holds a join of `group`.
    pub(super) fn member(record: &[KernelOpt], group: &[u8; 16]) -> bool {
        record.iter().any(|o| {
            membership(o.level, o.name) == Some(true)
                && group_of(o.level, o.name, &o.val).is_some_and(|(g, _)| g == *group)
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use alloc::vec;

        #[test]
        fn group_of_reads_each_request_form() {
            // ip_mreqn: 239.1.2.3 on interface index 7.
            let mut v = vec![239, 1, 2, 3, 127, 0, 0, 1];
            v.extend_from_slice(&7i32.to_ne_bytes());
            let want = Some((mapped(&[239, 1, 2, 3]), 7i32.to_ne_bytes()));
            assert_eq!(group_of(IPPROTO_IP, IP_ADD_MEMBERSHIP, &v), want);
            // ip_mreq: the interface by its address.
            let want = Some((mapped(&[239, 1, 2, 3]), [127, 0, 0, 1]));
            assert_eq!(group_of(IPPROTO_IP, IP_DROP_MEMBERSHIP, &v[..8]), want);
            // group_req: ff02::1 on interface 2.
            let mut g = vec![0u8; GR_GROUP + 128];
            g[..4].copy_from_slice(&2u32.to_ne_bytes());
            g[GR_GROUP..GR_GROUP + 2].copy_from_slice(&(AF_INET6 as u16).to_ne_bytes());
            g[GR_GROUP + 8] = 0xff;
            g[GR_GROUP + 9] = 2;
            g[GR_GROUP + 23] = 1;
            let mut ff = [0u8; 16];
            ff[0] = 0xff;
            ff[1] = 2;
            ff[15] = 1;
            let want = Some((ff, 2u32.to_ne_bytes()));
            assert_eq!(group_of(IPPROTO_IPV6, MCAST_JOIN_GROUP, &g), want);
            // Too short: nothing (the kernel said EINVAL first).
            assert_eq!(group_of(IPPROTO_IP, IP_ADD_MEMBERSHIP, &[239, 1]), None);
            assert_eq!(group_of(IPPROTO_IPV6, IPV6_ADD_MEMBERSHIP, &ff), None);
        }
    }
}

impl Socket {
    /// `upcall::takes_group`: whether this socket takes a datagram sent
    /// to `dest`, a multicast or broadcast address of its port (see the
    /// module documentation).
    pub(super) fn takes_group(&self, dest: &SockAddr) -> bool {
        let Ok(ep) = IpEp::parse(dest, dest.family()) else {
            return false;
        };
        if !ep.is_multicast() {
            // Broadcast: every socket of the port.
            return true;
        }
        self.takes_multicast(&ep)
    }

    /// A datagram to multicast group `ep`: a member takes it, and so does
    /// a socket with IP_MULTICAST_ALL on while this host is a member.
    #[cfg(feature = "std")]
    fn takes_multicast(&self, ep: &IpEp) -> bool {
        use super::kernel_opts::int_value;
        let (is_member, all) = {
            let c = self.ctl.lock();
            let all = if ep.is_v4() {
                int_value(&c.kernel_opts, IPPROTO_IP, IP_MULTICAST_ALL)
            } else {
                int_value(&c.kernel_opts, IPPROTO_IPV6, IPV6_MULTICAST_ALL)
            };
            (member(&c.kernel_opts, &ep.ip), all.unwrap_or(1) != 0)
        };
        is_member || (all && host_joined(&ep.ip))
    }

    /// Without the kernel's record no socket joins a group.
    #[cfg(not(feature = "std"))]
    fn takes_multicast(&self, _ep: &IpEp) -> bool {
        false
    }

    /// How an IPv4 datagram to `dest` leaves: Linux's `ip_route_output`
    /// for a group with the socket's IP_MULTICAST_IF (`ip_mreqn`,
    /// `ip_mreq` or `in_addr`, as do_ip_setsockopt reads each) and
    /// IP_MULTICAST_LOOP. An IPv6 group is never reached over lo (lo has
    /// no multicast route: `check_group_dest`), so its datagram always
    /// leaves by another interface, and IPV6_MULTICAST_LOOP decides
    /// whether this host's members get it (`ip6_finish_output2`).
    #[cfg(feature = "std")]
    pub(super) fn group_route(&self, dest: &SockAddr) -> GroupRoute {
        use super::kernel_opts::int_value;
        let Ok(ep) = IpEp::parse(dest, self.info.domain) else {
            return GroupRoute::Lo;
        };
        if !ep.is_multicast() {
            return GroupRoute::Lo;
        }
        if !ep.is_v4() {
            let looped = {
                let c = self.ctl.lock();
                int_value(&c.kernel_opts, IPPROTO_IPV6, IPV6_MULTICAST_LOOP)
            };
            return if looped.unwrap_or(1) != 0 {
                GroupRoute::Lo
            } else {
                GroupRoute::NotLooped
            };
        }
        let (mc_if, looped) = {
            let c = self.ctl.lock();
            let mc_if = c
                .kernel_opts
                .iter()
                .rev()
                .find(|o| (o.level, o.name) == (IPPROTO_IP, IP_MULTICAST_IF))
                .map(|o| o.val.clone());
            let looped = int_value(&c.kernel_opts, IPPROTO_IP, IP_MULTICAST_LOOP);
            (mc_if, looped.unwrap_or(1) != 0)
        };
        let Some(v) = mc_if else {
            return GroupRoute::Lo;
        };
        let word = |at: usize| -> Option<[u8; 4]> { v.get(at..at + 4)?.try_into().ok() };
        let (addr, ifindex) = match v.len() {
            n if n >= 12 => (word(4), word(8).map(u32::from_ne_bytes).unwrap_or(0)),
            n if n >= 8 => (word(4), 0),
            _ => (word(0), 0),
        };
        let addr = addr.filter(|a| *a != [0; 4]);
        let src = match (ifindex, addr) {
            (0, None) => return GroupRoute::Lo,
            (0, Some(a)) if a[0] == 127 => return GroupRoute::Lo,
            (LO_IFINDEX, _) => return GroupRoute::Lo,
            (_, Some(a)) => Some(a),
            (i, None) => crate::platform::interface_addr4(i),
        };
        if !looped {
            return GroupRoute::NotLooped;
        }
        GroupRoute::Looped(src.map(|a| {
            let mut ip = [0u8; 16];
            ip[10] = 0xff;
            ip[11] = 0xff;
            ip[12..].copy_from_slice(&a);
            ip
        }))
    }

    /// Without the kernel's record every group datagram goes over lo.
    #[cfg(not(feature = "std"))]
    pub(super) fn group_route(&self, _dest: &SockAddr) -> GroupRoute {
        GroupRoute::Lo
    }

    /// IPV6_MULTICAST_IF as set, or 0.
    #[cfg(feature = "std")]
    fn multicast_if6(&self) -> u32 {
        let c = self.ctl.lock();
        super::kernel_opts::int_value(&c.kernel_opts, IPPROTO_IPV6, IPV6_MULTICAST_IF).unwrap_or(0)
            as u32
    }

    #[cfg(not(feature = "std"))]
    fn multicast_if6(&self) -> u32 {
        0
    }

    /// sendto() or connect() of a UDP socket to `dest`: a broadcast
    /// address without SO_BROADCAST is EACCES (the route's RTCF_BROADCAST
    /// in udp_sendmsg and ip4_datagram_connect); an IPv6 multicast
    /// address out of lo is ENETUNREACH (lo has no multicast route).
    pub(super) fn check_group_dest(&self, dest: &SockAddr) -> Result<(), Errno> {
        if !self.is_ip() || self.info.ty != SOCK_DGRAM {
            return Ok(());
        }
        let Ok(ep) = IpEp::parse(dest, dest.family()) else {
            return Ok(());
        };
        if ep.is_broadcast() {
            let on =
                matches!(self.getsockopt(SOL_SOCKET, SO_BROADCAST), Ok(OptVal::Int(v)) if v != 0);
            return if on { Ok(()) } else { Err(EACCES) };
        }
        if ep.is_multicast() && !ep.is_v4() {
            let b = dest.as_bytes();
            let scope = b
                .get(24..28)
                .map_or(0, |s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]));
            let oif = if scope != 0 {
                scope
            } else {
                self.multicast_if6()
            };
            if oif == LO_IFINDEX {
                return Err(ENETUNREACH);
            }
        }
        Ok(())
    }
}

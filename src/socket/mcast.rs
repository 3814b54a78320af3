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
//! the datagram). "This host" is this process's sockets, and those of the
//! other processes of its network that its backend sees
//! (`Backend::group_joined_elsewhere`; this process's are told to it at
//! each change, `Backend::host_group`).
//!
//! Sending: an IPv4 datagram to a group leaves by lo unless IP_MULTICAST_IF
//! names another interface (by index or address). Out of another interface
//! it would go on that link, which a user-space socket cannot reach: this
//! host's members get it only with IP_MULTICAST_LOOP on (the default), from
//! the interface's address, as Linux loops it back; with the loop off
//! nobody here gets it. Over lo, IP_MULTICAST_LOOP changes nothing (lo
//! itself brings the datagram back).
//!
//! Source filters (IP_ADD_SOURCE_MEMBERSHIP, IP_BLOCK_SOURCE,
//! MCAST_JOIN_SOURCE_GROUP, ... and their drops, and IP_MSFILTER and
//! MCAST_MSFILTER, which set the whole filter at once) are checked and
//! kept the same way, and a member takes a datagram only from a source its
//! filter lets in (`allows`), when the backend names the source
//! (`upcall::takes_group_from`). A whole filter is read back from the
//! kernel twin, which replays the record (`Socket::source_filter_opt`).
//!
//! Not done: the interface of a membership (every datagram here
//! comes over lo), the source address of an IPv6 datagram looped back
//! from another interface (lo's, not the interface's), and the datagram's
//! copy on the real link.

#[cfg(feature = "std")]
pub(crate) use with_record::{closed, fork_lock};
#[cfg(feature = "std")]
pub(super) use with_record::{group_opt, record, refused};
#[cfg(feature = "std")]
use with_record::{host_joined, member, IPV6_MULTICAST_ALL, IPV6_MULTICAST_IF, IP_MULTICAST_ALL};

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
    const IP_UNBLOCK_SOURCE: i32 = 37;
    const IP_BLOCK_SOURCE: i32 = 38;
    const IP_ADD_SOURCE_MEMBERSHIP: i32 = 39;
    const IP_DROP_SOURCE_MEMBERSHIP: i32 = 40;
    const MCAST_JOIN_GROUP: i32 = 42;
    const MCAST_BLOCK_SOURCE: i32 = 43;
    const MCAST_UNBLOCK_SOURCE: i32 = 44;
    const MCAST_LEAVE_GROUP: i32 = 45;
    const MCAST_JOIN_SOURCE_GROUP: i32 = 46;
    const MCAST_LEAVE_SOURCE_GROUP: i32 = 47;
    const IP_MSFILTER: i32 = 41;
    const MCAST_MSFILTER: i32 = 48;
    /// `gf_fmode`/`imsf_fmode`'s MCAST_INCLUDE (only the sources listed).
    const MCAST_INCLUDE: u32 = 1;
    /// `struct sockaddr_storage`'s size: where `group_source_req`'s source
    /// starts after its group.
    const SS_SIZE: usize = 128;

    /// A source filter change: `Add` joins the group for that source
    /// (Linux's INCLUDE mode), `Drop` takes it out again, `Block` and
    /// `Unblock` keep a source out of a group joined for every source
    /// (EXCLUDE mode).
    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    enum SourceOp {
        Add,
        Drop,
        Block,
        Unblock,
    }

    fn source_op(level: i32, name: i32) -> Option<SourceOp> {
        let ip = level == IPPROTO_IP;
        let any = level == IPPROTO_IP || level == IPPROTO_IPV6;
        match name {
            IP_ADD_SOURCE_MEMBERSHIP if ip => Some(SourceOp::Add),
            IP_DROP_SOURCE_MEMBERSHIP if ip => Some(SourceOp::Drop),
            IP_BLOCK_SOURCE if ip => Some(SourceOp::Block),
            IP_UNBLOCK_SOURCE if ip => Some(SourceOp::Unblock),
            MCAST_JOIN_SOURCE_GROUP if any => Some(SourceOp::Add),
            MCAST_LEAVE_SOURCE_GROUP if any => Some(SourceOp::Drop),
            MCAST_BLOCK_SOURCE if any => Some(SourceOp::Block),
            MCAST_UNBLOCK_SOURCE if any => Some(SourceOp::Unblock),
            _ => None,
        }
    }

    /// Whether the option is one the record keeps as a group's
    /// (`record`): a join, a leave or a source filter change.
    pub(in crate::socket) fn group_opt(level: i32, name: i32) -> bool {
        membership(level, name).is_some()
            || source_op(level, name).is_some()
            || whole_filter(level, name)
    }

    /// Whether the option sets (or reads) a group's whole source filter:
    /// IP_MSFILTER, or MCAST_MSFILTER at either IP level.
    pub(in crate::socket) fn whole_filter(level: i32, name: i32) -> bool {
        matches!(
            (level, name),
            (IPPROTO_IP, IP_MSFILTER) | (IPPROTO_IP | IPPROTO_IPV6, MCAST_MSFILTER)
        )
    }

    /// A whole filter's group, mode (true: INCLUDE) and sources: an
    /// `ip_msfilter` (group, interface, mode, count, IPv4 sources) or a
    /// `group_filter` (interface, group, mode, count, sockaddr_storage
    /// sources at a sockaddr_storage's alignment). `None` for a value the
    /// kernel refused before this is asked.
    fn msfilter_of(level: i32, name: i32, val: &[u8]) -> Option<([u8; 16], bool, Vec<[u8; 16]>)> {
        let word = |at: usize| -> Option<u32> {
            Some(u32::from_ne_bytes(val.get(at..at + 4)?.try_into().ok()?))
        };
        if !whole_filter(level, name) {
            return None;
        }
        let mut list = Vec::new();
        if name == IP_MSFILTER {
            let n = word(12)? as usize;
            for i in 0..n {
                list.push(mapped(val.get(16 + 4 * i..20 + 4 * i)?));
            }
            return Some((mapped(val.get(..4)?), word(8)? == MCAST_INCLUDE, list));
        }
        let at = GR_GROUP + SS_SIZE;
        let g = sockaddr_ip(val.get(GR_GROUP..at)?)?;
        let first = at + 8;
        for i in 0..word(at + 4)? as usize {
            list.push(sockaddr_ip(
                val.get(first + SS_SIZE * i..first + SS_SIZE * (i + 1))?,
            )?);
        }
        Some((g, word(at)? == MCAST_INCLUDE, list))
    }

    /// The address of a `sockaddr_in` or `sockaddr_in6` (v4-mapped for
    /// IPv4).
    fn sockaddr_ip(g: &[u8]) -> Option<[u8; 16]> {
        match i32::from(u16::from_ne_bytes([*g.first()?, *g.get(1)?])) {
            AF_INET => Some(mapped(g.get(4..8)?)),
            AF_INET6 => Some(v6(g.get(8..24)?)),
            _ => None,
        }
    }

    /// The group and source a source filter option's value names
    /// (`ip_mreq_source`, or `group_source_req`).
    fn source_of(level: i32, name: i32, val: &[u8]) -> Option<([u8; 16], [u8; 16])> {
        if level == IPPROTO_IP && (IP_UNBLOCK_SOURCE..=IP_DROP_SOURCE_MEMBERSHIP).contains(&name) {
            // The group, the interface's address, the source.
            return Some((mapped(val.get(..4)?), mapped(val.get(8..12)?)));
        }
        source_op(level, name)?;
        let g = sockaddr_ip(val.get(GR_GROUP..GR_GROUP + SS_SIZE)?)?;
        let s = sockaddr_ip(val.get(GR_GROUP + SS_SIZE..)?)?;
        Some((g, s))
    }

    /// The group a kept option (a join or a source filter change) is of.
    fn group_in(o: &KernelOpt) -> Option<[u8; 16]> {
        group_of(o.level, o.name, &o.val)
            .map(|g| g.0)
            .or_else(|| source_of(o.level, o.name, &o.val).map(|g| g.0))
            .or_else(|| msfilter_of(o.level, o.name, &o.val).map(|g| g.0))
    }
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
                Some((sockaddr_ip(val.get(GR_GROUP..)?)?, itf))
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

    /// Tells `s`'s backend whether this process still has a member of
    /// `group` after a change of `s`'s memberships: a backend shared with
    /// other processes lets them see it (`Backend::host_group`).
    fn publish(s: &Socket, group: [u8; 16]) {
        if let Some(b) = s.binding() {
            b.backend.host_group(&group, host_joined(&group));
        }
    }

    /// `s` is closing: it is no member of any group any more (its backend
    /// hears of each group this process no longer has a member of).
    pub(crate) fn closed(s: &Socket) {
        let mut gone = Vec::new();
        JOINED.lock().retain(|(h, g)| {
            let mine = *h == s.handle;
            if mine && !gone.contains(g) {
                gone.push(*g);
            }
            !mine
        });
        for g in gone {
            publish(s, g);
        }
    }

    /// `s` joined `group`; the entries of sockets that are gone go.
    fn joined(s: &Socket, group: [u8; 16]) {
        let h = s.handle;
        let all: Vec<SockHandle> = JOINED.lock().iter().map(|(h, _)| *h).collect();
        let gone: Vec<SockHandle> = all
            .into_iter()
            .filter(|h| slab::lookup(*h).is_none())
            .collect();
        let mut j = JOINED.lock();
        j.retain(|(h, _)| !gone.contains(h));
        j.push((h, group));
        drop(j);
        publish(s, group);
    }

    /// Before a fork: no thread may hold the list's lock in the child (the
    /// child keeps the list: its sockets are the parent's, still members).
    pub(crate) fn fork_lock() {
        crate::sync::fork_hold::hold(&JOINED);
    }

    /// A membership change (`join` or leave, or of a source filter) the
    /// kernel accepted for `s`: a join joins the socket's `record`; a leave
    /// takes out the join of its group (made on the same interface when
    /// there is one such), and with the group's last join its source
    /// filter. The record stays one the kernel takes again in order (the
    /// twin replays it): a source taken out, or unblocked, takes out the
    /// change that put it in, and the last source of a group joined for
    /// some sources only leaves it, as Linux's `ip_mc_source` does.
    pub(in crate::socket) fn record(
        s: &Socket,
        record: &mut Vec<KernelOpt>,
        level: i32,
        name: i32,
        val: Vec<u8>,
    ) {
        if let Some(op) = source_op(level, name) {
            return record_source(s, record, op, KernelOpt { level, name, val });
        }
        if let Some((g, include, list)) = msfilter_of(level, name, &val) {
            // INCLUDE of no source leaves the group (ip_mc_msfilter's
            // leavegroup); any other replaces the filter of a group joined.
            if include && list.is_empty() {
                return leave_all(s, record, g);
            }
            return record.push(KernelOpt { level, name, val });
        }
        let (Some(join), Some((g, itf))) = (membership(level, name), group_of(level, name, &val))
        else {
            return;
        };
        if join {
            record.push(KernelOpt { level, name, val });
            joined(s, g);
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
            drop(j);
            publish(s, g);
        }
        if !record.iter().any(join_of_g) {
            leave_all(s, record, g);
        }
    }

    /// Every change of group `g` goes from `record`: the socket is no
    /// member of it any more.
    fn leave_all(s: &Socket, record: &mut Vec<KernelOpt>, g: [u8; 16]) {
        let had = record.len();
        record.retain(|o| !(group_opt(o.level, o.name) && group_in(o) == Some(g)));
        if record.len() != had {
            JOINED.lock().retain(|e| *e != (s.handle, g));
            publish(s, g);
        }
    }

    /// The source filter of group `g` that `record` gives its socket, as
    /// Linux's `ip_mc_source` builds it change by change: `None` when it
    /// is no member; else whether the filter includes (true: only the
    /// sources listed get in) or excludes (every source but those), and
    /// the sources. A join for every source excludes none; a filter that
    /// never listed a source takes the mode of the next change.
    fn filter(record: &[KernelOpt], g: &[u8; 16]) -> Option<(bool, Vec<[u8; 16]>)> {
        filter_full(record, g).map(|(include, list, _)| (include, list))
    }

    /// `filter`, and whether the filter ever listed a source.
    fn filter_full(record: &[KernelOpt], g: &[u8; 16]) -> Option<(bool, Vec<[u8; 16]>, bool)> {
        // (includes, sources, listed one ever)
        let mut state: Option<(bool, Vec<[u8; 16]>, bool)> = None;
        for o in record.iter().filter(|o| group_in(o) == Some(*g)) {
            if membership(o.level, o.name) == Some(true) {
                state = Some((false, Vec::new(), false));
                continue;
            }
            if let Some((_, include, list)) = msfilter_of(o.level, o.name, &o.val) {
                // The filter replaced: a list of none leaves the mode free
                // again, as ip_mc_msfilter keeps no source list then.
                let listed = !list.is_empty();
                state = Some((include, list, listed));
                continue;
            }
            let (Some(op), Some((_, src))) = (
                source_op(o.level, o.name),
                source_of(o.level, o.name, &o.val),
            ) else {
                continue;
            };
            let include = matches!(op, SourceOp::Add | SourceOp::Drop);
            let st = state.get_or_insert((include, Vec::new(), false));
            if !st.2 {
                st.0 = include;
            }
            match op {
                SourceOp::Add | SourceOp::Block => {
                    st.1.push(src);
                    st.2 = true;
                }
                SourceOp::Drop | SourceOp::Unblock => {
                    let last = st.1.len() == 1 && include;
                    st.1.retain(|x| *x != src);
                    if last {
                        state = None;
                    }
                }
            }
        }
        state
    }

    /// A source filter change the kernel refused with `err`: taking a
    /// source out of a group whose filter never listed one, in the other
    /// mode, fails (EADDRNOTAVAIL) after Linux's `ip_mc_source` switched
    /// the empty filter's mode. The change joins the record as it is: the
    /// twin's replay fails the same way, and `filter` switches the mode.
    pub(in crate::socket) fn refused(s: &Socket, level: i32, name: i32, val: &[u8], err: i32) {
        let Some(op @ (SourceOp::Drop | SourceOp::Unblock)) = source_op(level, name) else {
            return;
        };
        let Some((g, _)) = source_of(level, name, val) else {
            return;
        };
        if err != EADDRNOTAVAIL {
            return;
        }
        let mut c = s.ctl.lock();
        let record = &mut c.kernel_opts;
        // A member whose filter never listed a source, in the other mode.
        if let Some((include, _, false)) = filter_full(record, &g) {
            if include != (op == SourceOp::Drop) {
                record.push(KernelOpt {
                    level,
                    name,
                    val: val.to_vec(),
                });
            }
        }
    }

    /// A source filter change (see `record`).
    fn record_source(s: &Socket, record: &mut Vec<KernelOpt>, op: SourceOp, o: KernelOpt) {
        let Some((g, src)) = source_of(o.level, o.name, &o.val) else {
            return;
        };
        let before = filter(record, &g);
        let undo = match op {
            SourceOp::Add | SourceOp::Block => {
                record.push(o);
                if before.is_none() {
                    joined(s, g);
                }
                return;
            }
            SourceOp::Drop => SourceOp::Add,
            SourceOp::Unblock => SourceOp::Block,
        };
        // The last source of a group joined for some only: out of it.
        if before.is_some_and(|(include, l)| include && l.len() == 1) {
            return leave_all(s, record, g);
        }
        // Taken out with the change that put the source in, unless that was
        // the group's only one: a filter that listed a source keeps its
        // mode when it lists none any more, which the twin must see.
        // Only the changes since the group's last whole filter can be
        // taken out: the ones before it no longer count.
        let since = record
            .iter()
            .rposition(|x| whole_filter(x.level, x.name) && group_in(x) == Some(g))
            .map_or(0, |i| i + 1);
        let whole_listed = since > 0
            && msfilter_of(
                record[since - 1].level,
                record[since - 1].name,
                &record[since - 1].val,
            )
            .is_some_and(|f| !f.2.is_empty());
        let listing = |x: &&KernelOpt| {
            matches!(
                source_op(x.level, x.name),
                Some(SourceOp::Add | SourceOp::Block)
            ) && group_in(x) == Some(g)
        };
        let undone = record[since..]
            .iter()
            .rposition(|x| {
                source_op(x.level, x.name) == Some(undo)
                    && source_of(x.level, x.name, &x.val) == Some((g, src))
            })
            .map(|i| i + since);
        let listings = record[since..].iter().filter(listing).count() + usize::from(whole_listed);
        match undone {
            Some(i) if listings > 1 => {
                record.remove(i);
            }
            _ => record.push(o),
        }
    }

    /// Whether a member of `group` per `record` takes a datagram from
    /// `src` (Linux's `ip_mc_sf_allow`): `None` when it is no member. An
    /// unknown source passes a filter that excludes.
    pub(super) fn allows(
        record: &[KernelOpt],
        group: &[u8; 16],
        src: Option<&[u8; 16]>,
    ) -> Option<bool> {
        let (include, list) = filter(record, group)?;
        Some(match src {
            Some(s) => list.contains(s) == include,
            None => !include,
        })
    }

    /// Whether `record` makes its socket a member of `group` (and, with
    /// `src`, whether the group's source filter lets that source in):
    /// `None` when it is no member.
    pub(super) fn member(
        record: &[KernelOpt],
        group: &[u8; 16],
        src: Option<&[u8; 16]>,
    ) -> Option<bool> {
        allows(record, group, src)
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use alloc::vec;

        /// An `ip_mreq_source` option on group 239.1.2.3 from 10.0.0.`src`.
        fn src_opt(name: i32, src: u8) -> KernelOpt {
            KernelOpt {
                level: IPPROTO_IP,
                name,
                val: vec![239, 1, 2, 3, 127, 0, 0, 1, 10, 0, 0, src],
            }
        }

        #[test]
        fn filter_follows_linux_change_by_change() {
            let g = mapped(&[239, 1, 2, 3]);
            let s = |n: u8| mapped(&[10, 0, 0, n]);
            let join = KernelOpt {
                level: IPPROTO_IP,
                name: IP_ADD_MEMBERSHIP,
                val: vec![239, 1, 2, 3, 127, 0, 0, 1],
            };
            assert_eq!(filter(&[], &g), None);
            // every source; a block keeps one out
            assert_eq!(
                filter(core::slice::from_ref(&join), &g),
                Some((false, vec![]))
            );
            let blocked = [join.clone(), src_opt(IP_BLOCK_SOURCE, 1)];
            assert_eq!(allows(&blocked, &g, Some(&s(1))), Some(false));
            assert_eq!(allows(&blocked, &g, Some(&s(2))), Some(true));
            // unblocked: none listed, but the mode stays
            let mut r = blocked.to_vec();
            r.push(src_opt(IP_UNBLOCK_SOURCE, 1));
            assert_eq!(filter(&r, &g), Some((false, vec![])));
            // a join for every source switches to some with its first add
            let some = [join, src_opt(IP_ADD_SOURCE_MEMBERSHIP, 1)];
            assert_eq!(filter(&some, &g), Some((true, vec![s(1)])));
            assert_eq!(allows(&some, &g, Some(&s(2))), Some(false));
            // its last source out: no member
            let mut r = some.to_vec();
            r.push(src_opt(IP_DROP_SOURCE_MEMBERSHIP, 1));
            assert_eq!(filter(&r, &g), None);
        }

        #[test]
        fn whole_filter_replaces_the_filter() {
            let g = mapped(&[239, 1, 2, 3]);
            let s = |n: u8| mapped(&[10, 0, 0, n]);
            let join = KernelOpt {
                level: IPPROTO_IP,
                name: IP_ADD_MEMBERSHIP,
                val: vec![239, 1, 2, 3, 127, 0, 0, 1],
            };
            // ip_msfilter: INCLUDE 10.0.0.1 and 10.0.0.2.
            let mut v = vec![239, 1, 2, 3, 127, 0, 0, 1];
            v.extend_from_slice(&MCAST_INCLUDE.to_ne_bytes());
            v.extend_from_slice(&2u32.to_ne_bytes());
            v.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
            let whole = KernelOpt {
                level: IPPROTO_IP,
                name: IP_MSFILTER,
                val: v,
            };
            let r = [join.clone(), src_opt(IP_BLOCK_SOURCE, 3), whole];
            assert_eq!(filter(&r, &g), Some((true, vec![s(1), s(2)])));
            assert_eq!(allows(&r, &g, Some(&s(3))), Some(false));
            // a drop after it works on its sources
            let mut r = r.to_vec();
            r.push(src_opt(IP_DROP_SOURCE_MEMBERSHIP, 1));
            assert_eq!(filter(&r, &g), Some((true, vec![s(2)])));
            // group_filter: EXCLUDE 10.0.0.4
            let mut gf = vec![0u8; GR_GROUP + 2 * SS_SIZE + 8];
            gf[GR_GROUP..GR_GROUP + 2].copy_from_slice(&(AF_INET as u16).to_ne_bytes());
            gf[GR_GROUP + 4..GR_GROUP + 8].copy_from_slice(&[239, 1, 2, 3]);
            let at = GR_GROUP + SS_SIZE;
            gf[at + 4..at + 8].copy_from_slice(&1u32.to_ne_bytes());
            gf[at + 8..at + 10].copy_from_slice(&(AF_INET as u16).to_ne_bytes());
            gf[at + 12..at + 16].copy_from_slice(&[10, 0, 0, 4]);
            let want = Some((g, false, vec![s(4)]));
            assert_eq!(msfilter_of(IPPROTO_IP, MCAST_MSFILTER, &gf), want);
            r.push(KernelOpt {
                level: IPPROTO_IP,
                name: MCAST_MSFILTER,
                val: gf,
            });
            assert_eq!(allows(&r, &g, Some(&s(1))), Some(true));
            assert_eq!(allows(&r, &g, Some(&s(4))), Some(false));
        }

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
    /// to `dest`, a multicast or broadcast address of its port, from `src`
    /// when the backend says (see the module documentation).
    pub(super) fn takes_group(&self, dest: &SockAddr, src: Option<&SockAddr>) -> bool {
        let Ok(ep) = IpEp::parse(dest, dest.family()) else {
            return false;
        };
        if !ep.is_multicast() {
            // Broadcast: every socket of the port.
            return true;
        }
        let src = src.and_then(|s| IpEp::parse(s, s.family()).ok());
        self.takes_multicast(&ep, src.as_ref().map(|s| &s.ip))
    }

    /// A datagram to multicast group `ep` from `src`: a member takes it
    /// when its source filter lets `src` in, and a socket that is no member
    /// when IP_MULTICAST_ALL is on while this host is a member.
    #[cfg(feature = "std")]
    fn takes_multicast(&self, ep: &IpEp, src: Option<&[u8; 16]>) -> bool {
        use super::kernel_opts::int_value;
        let (is_member, all) = {
            let c = self.ctl.lock();
            let all = if ep.is_v4() {
                int_value(&c.kernel_opts, IPPROTO_IP, IP_MULTICAST_ALL)
            } else {
                int_value(&c.kernel_opts, IPPROTO_IPV6, IPV6_MULTICAST_ALL)
            };
            (member(&c.kernel_opts, &ep.ip, src), all.unwrap_or(1) != 0)
        };
        // This host: this process's sockets, or another process's of its
        // network when the backend sees them.
        match is_member {
            Some(allowed) => allowed,
            None => {
                all && (host_joined(&ep.ip)
                    || self
                        .binding()
                        .is_some_and(|b| b.backend.group_joined_elsewhere(&ep.ip)))
            }
        }
    }

    /// getsockopt of a group's whole source filter (IP_MSFILTER,
    /// MCAST_MSFILTER) on an IP socket, whose buffer `input` names the
    /// group: the kernel twin's answer, as it replays this socket's
    /// record (Linux's `ip_mc_msfget`, `ip_mc_gsfget`). `None` for any
    /// other option or socket. The C ABI asks this first, as only it
    /// has the caller's buffer.
    /// Whether (`level`, `name`) reads a group's whole source filter,
    /// which takes its request in the caller's buffer
    /// ([`Socket::source_filter_opt`]).
    #[cfg(feature = "std")]
    pub(crate) fn whole_source_filter(level: i32, name: i32) -> bool {
        with_record::whole_filter(level, name)
    }

    #[cfg(feature = "std")]
    pub(crate) fn source_filter_opt(
        &self,
        level: i32,
        name: i32,
        input: &[u8],
    ) -> Option<Result<alloc::vec::Vec<u8>, Errno>> {
        if !self.is_ip() || !Self::whole_source_filter(level, name) {
            return None;
        }
        let record = self.ctl.lock().kernel_opts.clone();
        Some(super::kernel_opts::get_in(
            &self.info, &record, level, name, input,
        ))
    }

    /// Without the kernel's record there is no source filter to read.
    #[cfg(not(feature = "std"))]
    pub(crate) fn whole_source_filter(_level: i32, _name: i32) -> bool {
        false
    }

    #[cfg(not(feature = "std"))]
    pub(crate) fn source_filter_opt(
        &self,
        _level: i32,
        _name: i32,
        _input: &[u8],
    ) -> Option<Result<alloc::vec::Vec<u8>, Errno>> {
        None
    }

    /// Without the kernel's record no socket joins a group.
    #[cfg(not(feature = "std"))]
    fn takes_multicast(&self, _ep: &IpEp, _src: Option<&[u8; 16]>) -> bool {
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

//! Parsed forms of the addresses the built-in backends carry (AF_INET,
//! AF_INET6, AF_UNIX), for any backend that wants them: the frontend itself
//! never looks past an address's family.

use alloc::vec::Vec;

use crate::addr::SockAddr;
use crate::consts::Errno;
use crate::consts::*;

/// An IP endpoint, IPv4 kept as an IPv4-mapped IPv6 address so that a
/// dual-stack listener can be matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct IpEp {
    /// AF_INET or AF_INET6: the family the address was given in.
    pub family: i32,
    /// IPv6 bytes (IPv4 as ::ffff:a.b.c.d).
    pub ip: [u8; 16],
    /// Port, host order.
    pub port: u16,
}

const V4_MAPPED: [u8; 12] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

impl IpEp {
    /// Parses a sockaddr_in / sockaddr_in6 of `family`.
    pub fn parse(a: &SockAddr, family: i32) -> Result<IpEp, Errno> {
        let b = a.as_bytes();
        if a.family() != family {
            return Err(EAFNOSUPPORT);
        }
        let port = |b: &[u8]| u16::from_be_bytes([b[2], b[3]]);
        match family {
            AF_INET => {
                if b.len() < 16 {
                    return Err(EINVAL);
                }
                let mut ip = [0u8; 16];
                ip[..12].copy_from_slice(&V4_MAPPED);
                ip[12..].copy_from_slice(&b[4..8]);
                Ok(IpEp {
                    family,
                    ip,
                    port: port(b),
                })
            }
            AF_INET6 => {
                if b.len() < 24 {
                    return Err(EINVAL);
                }
                let mut ip = [0u8; 16];
                ip.copy_from_slice(&b[8..24]);
                Ok(IpEp {
                    family,
                    ip,
                    port: port(b),
                })
            }
            _ => Err(EAFNOSUPPORT),
        }
    }

    /// Is this an IPv4 address (given as AF_INET or v4-mapped)?
    pub fn is_v4(&self) -> bool {
        self.ip[..12] == V4_MAPPED
    }

    /// 0.0.0.0 or ::.
    pub fn is_wild(&self) -> bool {
        self.ip == [0; 16] || (self.is_v4() && self.ip[12..] == [0; 4])
    }

    /// A multicast address: 224.0.0.0/4 or ff00::/8.
    pub fn is_multicast(&self) -> bool {
        if self.is_v4() {
            self.ip[12] & 0xf0 == 0xe0
        } else {
            self.ip[0] == 0xff
        }
    }

    /// A broadcast address of lo's routes: the limited broadcast
    /// 255.255.255.255 and lo's own 127.255.255.255 (`ip route show table
    /// local`).
    pub fn is_broadcast(&self) -> bool {
        self.is_v4() && (self.ip[12..] == [255; 4] || self.ip[12..] == [127, 255, 255, 255])
    }

    /// An address this host answers on: loopback (127/8, ::1) or wildcard.
    pub fn is_local(&self) -> bool {
        self.is_wild() || (self.is_v4() && self.ip[12] == 127) || self.ip == LOOPBACK6
    }

    /// An address a socket of this host may bind: a local one, or one it
    /// receives on without owning it (IPv4 multicast and the limited
    /// broadcast address, IPv6 multicast), as `inet_bind` and
    /// `__inet6_bind` allow.
    pub fn bindable(&self) -> bool {
        self.is_local()
            || if self.is_v4() {
                (224..240).contains(&self.ip[12]) || self.ip[12..] == [255; 4]
            } else {
                self.is_multicast6()
            }
    }

    /// An IPv6 multicast address (ff00::/8).
    pub fn is_multicast6(&self) -> bool {
        !self.is_v4() && self.ip[0] == 0xff
    }

    /// An IPv6 address that means nothing without an interface
    /// (`__ipv6_addr_needs_scope_id`): link-local unicast (fe80::/10), or
    /// interface- or link-scope multicast (ff01::/16, ff02::/16).
    pub fn needs_scope_id(&self) -> bool {
        !self.is_v4()
            && ((self.ip[0] == 0xfe && self.ip[1] & 0xc0 == 0x80)
                || (self.ip[0] == 0xff && matches!(self.ip[1] & 0x0f, 1 | 2)))
    }

    /// The address a connection to `self` comes from: itself when it is a
    /// loopback address, otherwise the loopback address of its family.
    pub fn source_for(&self) -> [u8; 16] {
        if self.is_v4() {
            if self.ip[12] == 127 {
                self.ip
            } else {
                let mut ip = [0u8; 16];
                ip[..12].copy_from_slice(&V4_MAPPED);
                ip[12..].copy_from_slice(&[127, 0, 0, 1]);
                ip
            }
        } else if self.is_wild() {
            LOOPBACK6
        } else {
            self.ip
        }
    }

    /// A hash of the endpoint, for spreading the flows it starts over an
    /// SO_REUSEPORT group: the same endpoint always picks the same member,
    /// and neighbouring ports (ephemeral ones, given in turn) land apart.
    pub fn flow_hash(&self) -> u64 {
        let mut h = u64::from(self.port);
        for chunk in self.ip.chunks(8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            h = h.rotate_left(29) ^ u64::from_ne_bytes(w);
        }
        // splitmix64's finaliser
        h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        h ^ (h >> 31)
    }

    /// The sockaddr in `family` (AF_INET6 shows IPv4 as v4-mapped).
    pub fn to_sockaddr(&self, family: i32) -> SockAddr {
        let mut b = [0u8; 28];
        b[..2].copy_from_slice(&(family as u16).to_ne_bytes());
        b[2..4].copy_from_slice(&self.port.to_be_bytes());
        if family == AF_INET {
            b[4..8].copy_from_slice(&self.ip[12..]);
            SockAddr::from_bytes(&b[..16])
        } else {
            b[8..24].copy_from_slice(&self.ip);
            SockAddr::from_bytes(&b[..28])
        }
        .unwrap_or_else(|| SockAddr::unnamed(family))
    }
}

const LOOPBACK6: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

/// An AF_UNIX address.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum UnixName {
    /// No name (length 2): unbound, or bind asks for an autobind.
    Unnamed,
    /// A pathname (without the terminating NUL).
    Path(Vec<u8>),
    /// An abstract name (the bytes after the leading NUL).
    Abstract(Vec<u8>),
}

/// Offset of sun_path in sockaddr_un.
const SUN_PATH: usize = 2;
/// Size of sun_path.
const SUN_PATH_LEN: usize = 108;

impl UnixName {
    /// Parses a sockaddr_un.
    pub fn parse(a: &SockAddr) -> Result<UnixName, Errno> {
        if a.family() != AF_UNIX {
            return Err(EINVAL);
        }
        let b = a.as_bytes();
        if b.len() > SUN_PATH + SUN_PATH_LEN {
            return Err(EINVAL);
        }
        let path = &b[SUN_PATH..];
        if path.is_empty() {
            return Ok(UnixName::Unnamed);
        }
        if path[0] == 0 {
            return Ok(UnixName::Abstract(path[1..].to_vec()));
        }
        let end = path.iter().position(|&c| c == 0).unwrap_or(path.len());
        Ok(UnixName::Path(path[..end].to_vec()))
    }

    /// The sockaddr_un for this name, as Linux reports it.
    pub fn to_sockaddr(&self) -> SockAddr {
        let mut b = Vec::with_capacity(SUN_PATH + SUN_PATH_LEN);
        b.extend_from_slice(&(AF_UNIX as u16).to_ne_bytes());
        match self {
            UnixName::Unnamed => {}
            UnixName::Path(p) => {
                b.extend_from_slice(p);
                b.push(0);
            }
            UnixName::Abstract(n) => {
                b.push(0);
                b.extend_from_slice(n);
            }
        }
        SockAddr::from_bytes(&b).unwrap_or_else(|| SockAddr::unnamed(AF_UNIX))
    }
}

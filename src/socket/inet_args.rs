//! Linux's checks of an IP address handed to bind(), connect() and
//! sendto(), in the kernel's order, before any backend sees the address.
//!
//! The kernel checks the length before the family, and each family's entry
//! point has its own errno for the other family: an IPv4 socket refuses an
//! IPv6 address with EAFNOSUPPORT (inet_bind, tcp_v4_connect,
//! ip4_datagram_connect), an IPv6 socket refuses a `sockaddr_in` as too
//! short (EINVAL) unless it is a UDP socket, which takes one as the
//! dual-stack path (`__ip6_datagram_connect`, `udpv6_sendmsg`). A
//! v4-mapped address on a v6-only socket, or on one bound to an IPv6
//! address, has no route (ENETUNREACH). Backends then see an IPv4
//! destination of an IPv6 socket only in its v4-mapped form.

use super::*;
use crate::addr::IpEp;
use crate::backend::contract::ClaimOp;

/// `sizeof(struct sockaddr_in)`.
const SIN_LEN: usize = 16;
/// `SIN6_LEN_RFC2133`: a `sockaddr_in6` without its scope id.
const SIN6_LEN_RFC2133: usize = 24;

/// The address with another family field.
fn with_family(a: &SockAddr, family: i32) -> SockAddr {
    let mut b = [0u8; crate::addr::ADDR_MAX];
    let n = a.len();
    b[..n].copy_from_slice(a.as_bytes());
    b[..2].copy_from_slice(&(family as u16).to_ne_bytes());
    SockAddr::from_bytes(&b[..n]).unwrap_or(*a)
}

/// A `sockaddr_in` as the v4-mapped `sockaddr_in6` an IPv6 socket sees.
fn v4_as_mapped(a: &SockAddr) -> Result<SockAddr, Errno> {
    Ok(IpEp::parse(a, AF_INET)?.to_sockaddr(AF_INET6))
}

/// True for a v4-mapped `sockaddr_in6` (its length already checked).
fn is_mapped(a: &SockAddr) -> bool {
    IpEp::parse(a, AF_INET6).is_ok_and(|e| e.is_v4())
}

/// A link-scope `sockaddr_in6` without its scope id (`sin6_scope_id`,
/// bytes 24..28, absent from an RFC 2133 address).
fn needs_interface(a: &SockAddr) -> bool {
    let b = a.as_bytes();
    let scope = b
        .get(24..28)
        .map_or(0, |s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]));
    scope == 0 && IpEp::parse(a, AF_INET6).is_ok_and(|e| e.needs_scope_id())
}

impl Socket {
    /// An AF_INET or AF_INET6 socket.
    pub(crate) fn is_ip(&self) -> bool {
        matches!(self.info.domain, AF_INET | AF_INET6)
    }

    fn v6only(&self) -> bool {
        self.ctl.lock().opts.backend_view().v6only
    }

    /// bind()'s checks of an IP address up to the port table, in
    /// `inet_bind`/`__inet6_bind`'s order: length, family (an IPv4 socket
    /// takes AF_UNSPEC with INADDR_ANY, for old programs), the privileged
    /// port, a second bind, a v4-mapped address on a v6-only socket, a
    /// link-scope address without its interface (and, first, an IPv6
    /// multicast address on a stream socket).
    /// Returns the address the backend binds.
    pub(crate) fn inet_bind_addr(&self, addr: &SockAddr) -> Result<SockAddr, Errno> {
        let addr = match self.info.domain {
            AF_INET => {
                if addr.len() < SIN_LEN {
                    return Err(EINVAL);
                }
                match addr.family() {
                    AF_INET => *addr,
                    AF_UNSPEC if addr.as_bytes()[4..8] == [0; 4] => with_family(addr, AF_INET),
                    _ => return Err(EAFNOSUPPORT),
                }
            }
            _ => {
                if addr.len() < SIN6_LEN_RFC2133 {
                    return Err(EINVAL);
                }
                if addr.family() != AF_INET6 {
                    return Err(EAFNOSUPPORT);
                }
                if self.is_stream() && IpEp::parse(addr, AF_INET6).is_ok_and(|e| e.is_multicast6())
                {
                    return Err(EINVAL);
                }
                *addr
            }
        };
        let port = addr.inet_port().unwrap_or(0);
        if port != 0 && !crate::platform::may_bind_port(port) {
            return Err(EACCES);
        }
        if self.has(F_BOUND) {
            return Err(EINVAL);
        }
        if self.info.domain == AF_INET6 && is_mapped(&addr) && self.v6only() {
            return Err(EINVAL);
        }
        if self.info.domain == AF_INET6 && needs_interface(&addr) {
            // Binding a link-scope address requires an interface: the
            // scope id, or SO_BINDTODEVICE, which this library has not.
            return Err(EINVAL);
        }
        Ok(addr)
    }

    /// connect()'s checks of an IP destination (after the socket's own
    /// state, which TCP looks at first): the address the backend connects
    /// to, IPv4 given to an IPv6 datagram socket made v4-mapped.
    pub(crate) fn inet_connect_addr(&self, addr: &SockAddr) -> Result<SockAddr, Errno> {
        if self.info.domain == AF_INET {
            if addr.len() < SIN_LEN {
                return Err(EINVAL);
            }
            if addr.family() != AF_INET {
                return Err(EAFNOSUPPORT);
            }
            if self.is_stream() {
                return Ok(*addr);
            }
            return Ok(self.wildcard_to_loopback(*addr));
        }
        let addr = if !self.is_stream() && addr.family() == AF_INET {
            // __ip6_datagram_connect: the dual-stack path.
            if self.v6only() {
                return Err(EAFNOSUPPORT);
            }
            if addr.len() < SIN_LEN {
                return Err(EINVAL);
            }
            v4_as_mapped(addr)?
        } else {
            if addr.len() < SIN6_LEN_RFC2133 {
                return Err(EINVAL);
            }
            if addr.family() != AF_INET6 {
                return Err(EAFNOSUPPORT);
            }
            *addr
        };
        self.v4_reachable(&addr)?;
        if self.is_stream() {
            return Ok(addr);
        }
        Ok(self.wildcard_to_loopback(addr))
    }

    /// A UDP connect() to the wildcard address connects to this host: the
    /// socket's own address when it is bound to one, else loopback, as the
    /// route lookup fills in a zero destination (`ip_route_output_key_hash`,
    /// `ip6_datagram_connect`'s `::` made `::1`); getpeername() says so.
    fn wildcard_to_loopback(&self, addr: SockAddr) -> SockAddr {
        let fam = self.info.domain;
        let Ok(mut d) = IpEp::parse(&addr, fam) else {
            return addr;
        };
        if !d.is_wild() {
            return addr;
        }
        let me = self
            .has(F_BOUND)
            .then(|| IpEp::parse(&self.local_addr(), fam).ok())
            .flatten()
            .filter(|m| !m.is_wild() && m.is_v4() == d.is_v4());
        d.ip = match me {
            Some(m) => m.ip,
            None => d.source_for(),
        };
        d.to_sockaddr(fam)
    }

    /// sendto()'s checks of an IPv6 datagram socket's destination other
    /// than AF_UNSPEC (`udpv6_sendmsg`): the address the backend sends to.
    pub(crate) fn inet6_send_addr(&self, addr: &SockAddr) -> Result<SockAddr, Errno> {
        let addr = match addr.family() {
            AF_INET6 => {
                if addr.len() < SIN6_LEN_RFC2133 {
                    return Err(EINVAL);
                }
                *addr
            }
            AF_INET => {
                if self.v6only() {
                    return Err(ENETUNREACH);
                }
                // udp_sendmsg's checks, then the mapped form.
                if addr.len() < SIN_LEN {
                    return Err(EINVAL);
                }
                if addr.inet_port() == Some(0) {
                    return Err(EINVAL);
                }
                v4_as_mapped(addr)?
            }
            _ => return Err(EINVAL),
        };
        self.v4_reachable(&addr)?;
        Ok(addr)
    }

    /// A v4-mapped destination of an IPv6 socket: no route from a v6-only
    /// socket, nor from one bound to an IPv6 address (it has no IPv4
    /// source).
    fn v4_reachable(&self, dest: &SockAddr) -> Result<(), Errno> {
        if !is_mapped(dest) {
            return Ok(());
        }
        if self.v6only() {
            return Err(ENETUNREACH);
        }
        if self.has(F_BOUND) {
            let me = self.local_addr();
            if IpEp::parse(&me, AF_INET6).is_ok_and(|e| !e.is_v4() && !e.is_wild()) {
                return Err(ENETUNREACH);
            }
        }
        Ok(())
    }

    /// A UDP socket's first send binds it to an ephemeral port
    /// (`inet_autobind`): EAGAIN, even for a blocking socket, when its
    /// range has no free port. Done here rather than left to the
    /// backend's write, whose EAGAIN means a full receiver to wait for.
    pub(crate) fn autobind_to_send(&self, b: &Binding) -> Result<(), Errno> {
        if self.is_stream() || !self.is_ip() || self.has(F_BOUND) {
            return Ok(());
        }
        // Bound already, by the backend (a connect()'s autobind).
        if b.backend.local_addr(self.sref(b)).is_some() {
            return Ok(());
        }
        let any = SockAddr::unspecified(self.info.domain);
        match b.backend.bind(self.sref(b), &any) {
            Ok(_) => {
                self.set(F_BOUND);
                Ok(())
            }
            Err(EADDRINUSE) => Err(EAGAIN),
            // Anything else is the backend's to say at the write (a C
            // backend may bind nothing before it sends).
            Err(_) => Ok(()),
        }
    }

    /// A UDP connect() binds the socket before it looks at the address
    /// (`inet_dgram_connect`'s autobind): after a refused address the
    /// socket is bound all the same.
    pub(crate) fn autobind_anyway(&self) {
        if self.is_stream() || !self.is_ip() || self.has(F_BOUND) {
            return;
        }
        let any = SockAddr::unspecified(self.info.domain);
        if let Ok(b) = self.select(ClaimOp::Bind, &any) {
            if b.backend.bind(self.sref(b), &any).is_ok() {
                self.set(F_BOUND);
            }
        }
    }
}

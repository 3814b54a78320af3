//! Routing rules: which sockets stay in user space and which become kernel
//! sockets, decided when the address is known (bind, connect, sendto), not
//! at socket().
//!
//! Rules come from the `USOCK_ROUTE` environment variable (read once, at
//! the first decision) or from `usock_route_set`. The first rule that
//! matches decides; with no match the socket stays in user space.
//!
//! ```text
//! rules  := rule (';' rule)*
//! rule   := ('kernel' | 'user') match*
//! match  := 'tcp' | 'udp' | 'unix' | 'inet' | 'inet6'
//!         | ADDR ['/' PREFIX] [':' PORT]     IPv4, or IPv6 in brackets: [::1]/128:80
//!         | ':' PORT                          any address, this port
//!         | 'path=' PREFIX                    AF_UNIX pathnames starting with PREFIX
//! ```
//! For example `USOCK_ROUTE="kernel udp :53; kernel 10.0.0.0/8"`. A rule
//! that does not parse is an error reported with its position: from the
//! environment the process stops at the first socket call (a wrong rule
//! silently ignored would send traffic where it was not meant to go).

use alloc::string::String;
use alloc::vec::Vec;

use crate::addr::SockAddr;
use crate::backend::contract::SockInfo;
use crate::consts::*;
use crate::sync::Mutex;

/// Where a socket goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// A user-space socket (the backends are asked in priority order).
    User,
    /// A real kernel socket with the same fd number.
    Kernel,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Match {
    Type(i32),
    Family(i32),
    /// IPv6 bytes (IPv4 as v4-mapped), prefix length over those 128 bits,
    /// optional port.
    Net([u8; 16], u8, Option<u16>),
    Port(u16),
    PathPrefix(Vec<u8>),
}

/// One parsed rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    route: Route,
    matches: Vec<Match>,
}

/// A rule set that did not parse: which rule, which word, why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleError(pub String);

fn v4_mapped(b: [u8; 4]) -> [u8; 16] {
    let mut ip = [0u8; 16];
    ip[10] = 0xff;
    ip[11] = 0xff;
    ip[12..].copy_from_slice(&b);
    ip
}

fn parse_v4(s: &str) -> Option<[u8; 4]> {
    let mut out = [0u8; 4];
    let mut parts = s.split('.');
    for o in out.iter_mut() {
        *o = parts.next()?.parse().ok()?;
    }
    parts.next().is_none().then_some(out)
}

fn parse_v6(s: &str) -> Option<[u8; 16]> {
    // Groups of hex separated by ':', at most one '::'.
    let (head, tail) = match s.find("::") {
        Some(i) => (&s[..i], Some(&s[i + 2..])),
        None => (s, None),
    };
    let groups = |t: &str| -> Option<Vec<u16>> {
        if t.is_empty() {
            return Some(Vec::new());
        }
        t.split(':')
            .map(|g| u16::from_str_radix(g, 16).ok().filter(|_| g.len() <= 4))
            .collect()
    };
    let h = groups(head)?;
    let t = match tail {
        Some(t) => groups(t)?,
        None => Vec::new(),
    };
    if (tail.is_none() && h.len() != 8) || h.len() + t.len() > 8 {
        return None;
    }
    let mut all = h.clone();
    all.resize(8 - t.len(), 0);
    all.extend_from_slice(&t);
    let mut ip = [0u8; 16];
    for (i, g) in all.iter().enumerate() {
        ip[2 * i..2 * i + 2].copy_from_slice(&g.to_be_bytes());
    }
    Some(ip)
}

fn parse_port(s: &str) -> Result<u16, String> {
    s.parse::<u16>()
        .map_err(|_| alloc::format!("bad port {s:?}"))
}

fn parse_match(w: &str) -> Result<Match, String> {
    Ok(match w {
        "tcp" => Match::Type(SOCK_STREAM),
        "udp" => Match::Type(SOCK_DGRAM),
        "unix" => Match::Family(AF_UNIX),
        "inet" => Match::Family(AF_INET),
        "inet6" => Match::Family(AF_INET6),
        _ if w.starts_with("path=") => Match::PathPrefix(w.as_bytes()[5..].to_vec()),
        _ if w.starts_with(':') => Match::Port(parse_port(&w[1..])?),
        _ => {
            // ADDR[/PREFIX][:PORT], IPv6 in brackets.
            let (addr, rest, v6) = if let Some(r) = w.strip_prefix('[') {
                let end = r.find(']').ok_or("missing ']'")?;
                (&r[..end], &r[end + 1..], true)
            } else {
                let end = w.find(['/', ':']).unwrap_or(w.len());
                (&w[..end], &w[end..], false)
            };
            let ip = if v6 {
                parse_v6(addr).ok_or_else(|| alloc::format!("bad IPv6 address {addr:?}"))?
            } else {
                v4_mapped(parse_v4(addr).ok_or_else(|| alloc::format!("bad address {addr:?}"))?)
            };
            let (prefix, port_s) = match rest.strip_prefix('/') {
                Some(p) => match p.find(':') {
                    Some(i) => (Some(&p[..i]), Some(&p[i + 1..])),
                    None => (Some(p), None),
                },
                None => (None, rest.strip_prefix(':')),
            };
            if prefix.is_none() && port_s.is_none() && !rest.is_empty() {
                return Err(alloc::format!("unexpected {rest:?}"));
            }
            let max = if v6 { 128 } else { 32 };
            let plen = match prefix {
                Some(p) => p
                    .parse::<u8>()
                    .ok()
                    .filter(|&n| n <= max)
                    .ok_or_else(|| alloc::format!("bad prefix {p:?}"))?,
                None => max,
            };
            let port = port_s.map(parse_port).transpose()?;
            Match::Net(ip, if v6 { plen } else { plen + 96 }, port)
        }
    })
}

/// Parses a rule set.
pub fn parse(text: &str) -> Result<Vec<Rule>, RuleError> {
    let mut rules = Vec::new();
    for (i, r) in text.split(';').enumerate() {
        let mut words = r.split_whitespace();
        let Some(action) = words.next() else { continue };
        let route = match action {
            "kernel" => Route::Kernel,
            "user" => Route::User,
            other => {
                return Err(RuleError(alloc::format!(
                    "rule {}: {other:?} is not an action (kernel or user)",
                    i + 1
                )))
            }
        };
        let matches = words
            .map(|w| {
                parse_match(w).map_err(|e| RuleError(alloc::format!("rule {}: {w:?}: {e}", i + 1)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        rules.push(Rule { route, matches });
    }
    Ok(rules)
}

fn in_net(ip: &[u8; 16], net: &[u8; 16], plen: u8) -> bool {
    let full = (plen / 8) as usize;
    if ip[..full] != net[..full] {
        return false;
    }
    let rem = plen % 8;
    rem == 0 || (ip[full] ^ net[full]) & (0xffu8 << (8 - rem)) == 0
}

/// The IP and port of an AF_INET/AF_INET6 address.
fn ip_port(a: &SockAddr) -> Option<([u8; 16], u16)> {
    let b = a.as_bytes();
    match a.family() {
        AF_INET if b.len() >= 8 => Some((
            v4_mapped([b[4], b[5], b[6], b[7]]),
            u16::from_be_bytes([b[2], b[3]]),
        )),
        AF_INET6 if b.len() >= 24 => {
            let mut ip = [0u8; 16];
            ip.copy_from_slice(&b[8..24]);
            Some((ip, u16::from_be_bytes([b[2], b[3]])))
        }
        _ => None,
    }
}

impl Rule {
    fn matches(&self, info: &SockInfo, addr: &SockAddr) -> bool {
        self.matches.iter().all(|m| match m {
            Match::Type(t) => info.ty == *t,
            Match::Family(f) => info.domain == *f,
            Match::Port(p) => ip_port(addr).is_some_and(|(_, port)| port == *p),
            Match::Net(net, plen, port) => ip_port(addr).is_some_and(|(ip, p)| {
                in_net(&ip, net, *plen) && port.map_or(true, |want| want == p)
            }),
            Match::PathPrefix(pre) => {
                info.domain == AF_UNIX
                    && addr.as_bytes().get(2..).is_some_and(|p| p.starts_with(pre))
            }
        })
    }
}

/// The route of the first matching rule, or User.
pub fn decide_with(rules: &[Rule], info: &SockInfo, addr: &SockAddr) -> Route {
    rules
        .iter()
        .find(|r| r.matches(info, addr))
        .map_or(Route::User, |r| r.route)
}

static RULES: Mutex<Option<Vec<Rule>>> = Mutex::new(None);

/// Replaces the rules.
pub fn set(text: &str) -> Result<(), RuleError> {
    let rules = parse(text)?;
    *RULES.lock() = Some(rules);
    Ok(())
}

/// Where a socket like `info` goes for `addr`, by the current rules.
pub fn decide(info: &SockInfo, addr: &SockAddr) -> Route {
    let mut g = RULES.lock();
    if g.is_none() {
        *g = Some(from_env());
    }
    match g.as_deref() {
        Some(r) if !r.is_empty() => decide_with(r, info, addr),
        _ => Route::User,
    }
}

/// The rules when `USOCK_ROUTE` is unset: DNS stays on the kernel, so a
/// program's name lookups (glibc's resolver calls the interposed socket())
/// still reach the system's resolver.
pub const DEFAULT_RULES: &str = "kernel :53";

#[cfg(feature = "std")]
fn from_env() -> Vec<Rule> {
    let text = std::env::var("USOCK_ROUTE").unwrap_or_else(|_| DEFAULT_RULES.into());
    match parse(&text) {
        Ok(r) => r,
        Err(RuleError(e)) => {
            let msg = alloc::format!("libuserspacesock: USOCK_ROUTE: {e}\n");
            // SAFETY: writes a buffer to stderr with the raw system call, then
            // ends the process: a mis-routed socket is worse than no program.
            unsafe {
                libc::syscall(libc::SYS_write, 2, msg.as_ptr(), msg.len());
                libc::_exit(2);
            }
        }
    }
}

#[cfg(not(feature = "std"))]
fn from_env() -> Vec<Rule> {
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa4(ip: [u8; 4], port: u16) -> SockAddr {
        let mut b = [0u8; 16];
        b[..2].copy_from_slice(&(AF_INET as u16).to_ne_bytes());
        b[2..4].copy_from_slice(&port.to_be_bytes());
        b[4..8].copy_from_slice(&ip);
        SockAddr::from_bytes(&b).unwrap()
    }

    fn sa6(ip: [u8; 16], port: u16) -> SockAddr {
        let mut b = [0u8; 28];
        b[..2].copy_from_slice(&(AF_INET6 as u16).to_ne_bytes());
        b[2..4].copy_from_slice(&port.to_be_bytes());
        b[8..24].copy_from_slice(&ip);
        SockAddr::from_bytes(&b).unwrap()
    }

    const TCP4: SockInfo = SockInfo {
        domain: AF_INET,
        ty: SOCK_STREAM,
        protocol: 0,
    };
    const UDP4: SockInfo = SockInfo {
        domain: AF_INET,
        ty: SOCK_DGRAM,
        protocol: 0,
    };
    const TCP6: SockInfo = SockInfo {
        domain: AF_INET6,
        ty: SOCK_STREAM,
        protocol: 0,
    };

    #[test]
    fn first_matching_rule_decides() {
        let r = parse("kernel udp :53; kernel 10.0.0.0/8; user 10.1.0.0/16:80").unwrap();
        assert_eq!(
            decide_with(&r, &UDP4, &sa4([8, 8, 8, 8], 53)),
            Route::Kernel
        );
        assert_eq!(decide_with(&r, &TCP4, &sa4([8, 8, 8, 8], 53)), Route::User);
        assert_eq!(
            decide_with(&r, &TCP4, &sa4([10, 1, 2, 3], 80)),
            Route::Kernel,
            "order matters"
        );
        assert_eq!(decide_with(&r, &TCP4, &sa4([11, 0, 0, 1], 80)), Route::User);
    }

    #[test]
    fn prefixes_ports_and_ipv6() {
        let r = parse("kernel 192.168.1.128/25:443; kernel [fd00::]/8; kernel inet6 :22").unwrap();
        assert_eq!(
            decide_with(&r, &TCP4, &sa4([192, 168, 1, 200], 443)),
            Route::Kernel
        );
        assert_eq!(
            decide_with(&r, &TCP4, &sa4([192, 168, 1, 100], 443)),
            Route::User
        );
        assert_eq!(
            decide_with(&r, &TCP4, &sa4([192, 168, 1, 200], 80)),
            Route::User
        );
        let mut fd = [0u8; 16];
        fd[0] = 0xfd;
        fd[15] = 1;
        assert_eq!(decide_with(&r, &TCP6, &sa6(fd, 1)), Route::Kernel);
        let mut lo = [0u8; 16];
        lo[15] = 1;
        assert_eq!(decide_with(&r, &TCP6, &sa6(lo, 22)), Route::Kernel);
        assert_eq!(
            decide_with(&r, &TCP4, &sa4([1, 2, 3, 4], 22)),
            Route::User,
            "inet6 only"
        );
    }

    #[test]
    fn errors_name_the_rule_and_the_word() {
        for bad in [
            "kernal",
            "kernel 10.0.0.0/33",
            "kernel 1.2.3",
            "kernel :99999",
            "kernel [::1",
            "user 10.0.0.1x",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.0.starts_with("rule 1"), "{bad}: {e:?}");
        }
        assert!(parse("kernel tcp; user; kernel 1.2.3.4:80 inet").is_ok());
        assert_eq!(parse("").unwrap(), Vec::new());
    }
}

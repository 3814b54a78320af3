//! Routing rules: which sockets stay in user space and which become kernel
//! sockets, decided when the address is known (bind, connect, sendto), not
//! at socket().
//!
//! Rules come from the environment (read once, at the first decision) or
//! from `usock_route_set`, which replaces them all. The first rule that
//! matches decides; with no match the socket stays in user space. From the
//! environment, in this order (first match wins):
//!
//! 1. `USOCK_ROUTE`: rules separated by `;`;
//! 2. the file named by `USOCK_ROUTE_FILE`: the same rules, separated by `;`
//!    or newlines, `#` starting a comment to the end of its line;
//! 3. only when `USOCK_ROUTE` is unset, the defaults: `USOCK_ROUTE_DEFAULT`
//!    if set, else [`DEFAULT_RULES`] (`kernel :53`). So a file alone adds to
//!    the defaults (and can override them, its rules coming first), while
//!    `USOCK_ROUTE` replaces them, as it did before the file existed.
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
//! that does not parse is an error reported with its position (for the file:
//! its name, line and text), and so is a file that cannot be read: from the
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

/// Parses one rule (`r` holds no `;`): `None` for a blank one, or the
/// reason it does not parse, naming the word.
fn parse_rule(r: &str) -> Result<Option<Rule>, String> {
    let mut words = r.split_whitespace();
    let Some(action) = words.next() else {
        return Ok(None);
    };
    let route = match action {
        "kernel" => Route::Kernel,
        "user" => Route::User,
        other => {
            return Err(alloc::format!(
                "{other:?} is not an action (kernel or user)"
            ))
        }
    };
    let matches = words
        .map(|w| parse_match(w).map_err(|e| alloc::format!("{w:?}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(Rule { route, matches }))
}

/// Parses a rule set (the `USOCK_ROUTE` syntax: rules separated by `;`).
/// An error starts with `rule N:`, N counting from 1.
pub fn parse(text: &str) -> Result<Vec<Rule>, RuleError> {
    let mut rules = Vec::new();
    for (i, r) in text.split(';').enumerate() {
        match parse_rule(r) {
            Ok(rule) => rules.extend(rule),
            Err(e) => return Err(RuleError(alloc::format!("rule {}: {e}", i + 1))),
        }
    }
    Ok(rules)
}

/// Parses a rule file (`USOCK_ROUTE_FILE`): the rules of [`parse`],
/// separated by `;` or newlines; `#` starts a comment that runs to the end
/// of its line (so a `path=` prefix cannot hold a `#`); blank lines and
/// blank rules are allowed. `name` is the file's name for the errors, which
/// read `NAME: line L: rule "TEXT": REASON` (L counting from 1), or
/// `NAME: line L: not UTF-8`.
pub fn parse_file(name: &str, text: &[u8]) -> Result<Vec<Rule>, RuleError> {
    let mut rules = Vec::new();
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        let line = core::str::from_utf8(line)
            .map_err(|_| RuleError(alloc::format!("{name}: line {}: not UTF-8", i + 1)))?;
        let line = line.split('#').next().unwrap_or("");
        for r in line.split(';') {
            match parse_rule(r) {
                Ok(rule) => rules.extend(rule),
                Err(e) => {
                    return Err(RuleError(alloc::format!(
                        "{name}: line {}: rule {:?}: {e}",
                        i + 1,
                        r.trim()
                    )))
                }
            }
        }
    }
    Ok(rules)
}

/// Where the start-up rules come from (see the module documentation).
#[derive(Clone, Copy, Debug, Default)]
pub struct Sources<'a> {
    /// `USOCK_ROUTE`, if set.
    pub route: Option<&'a str>,
    /// `USOCK_ROUTE_FILE`, if set: its name, and its contents or why they
    /// could not be read.
    pub file: Option<(&'a str, Result<&'a [u8], &'a str>)>,
    /// `USOCK_ROUTE_DEFAULT`, if set: the defaults instead of
    /// [`DEFAULT_RULES`].
    pub defaults: Option<&'a str>,
}

/// The start-up rules from their sources: `route`, then the file's, then
/// (only when `route` is `None`) the defaults. An error names its source:
/// `USOCK_ROUTE: rule N: ...`, `USOCK_ROUTE_FILE NAME: line L: rule ...`,
/// `USOCK_ROUTE_FILE NAME: cannot read: ...` or `USOCK_ROUTE_DEFAULT: ...`.
pub fn compose(src: &Sources<'_>) -> Result<Vec<Rule>, RuleError> {
    fn ctx(what: &'static str) -> impl Fn(RuleError) -> RuleError {
        move |RuleError(e)| RuleError(alloc::format!("{what}: {e}"))
    }
    let mut rules = match src.route {
        Some(t) => parse(t).map_err(ctx("USOCK_ROUTE"))?,
        None => Vec::new(),
    };
    if let Some((name, contents)) = src.file {
        let text = contents
            .map_err(|e| RuleError(alloc::format!("USOCK_ROUTE_FILE {name}: cannot read: {e}")))?;
        rules.extend(
            parse_file(name, text)
                .map_err(|RuleError(e)| RuleError(alloc::format!("USOCK_ROUTE_FILE {e}")))?,
        );
    }
    if src.route.is_none() {
        match src.defaults {
            Some(t) => rules.extend(parse(t).map_err(ctx("USOCK_ROUTE_DEFAULT"))?),
            None => rules.extend(parse(DEFAULT_RULES).map_err(ctx("DEFAULT_RULES"))?),
        }
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

/// Replaces the rules, all of them: after it the environment's
/// (`USOCK_ROUTE`, `USOCK_ROUTE_FILE`, defaults) are not read.
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

/// The defaults when neither `USOCK_ROUTE` nor `USOCK_ROUTE_DEFAULT` is
/// set: DNS stays on the kernel, so a program's name lookups (glibc's
/// resolver calls the interposed socket()) still reach the system's
/// resolver.
pub const DEFAULT_RULES: &str = "kernel :53";

/// The largest rule file read (a larger one is an error, so that a wrong
/// path such as `/dev/zero` stops the program instead of filling memory).
pub const MAX_FILE: usize = 1 << 20;

/// Reads the rules file; the error is the reason.
#[cfg(feature = "std")]
fn read_file(path: &std::ffi::OsStr) -> Result<Vec<u8>, String> {
    crate::platform::read_file_raw(path, MAX_FILE).map_err(|e| match e {
        Some(e) => std::io::Error::from_raw_os_error(e).to_string(),
        None => alloc::format!("larger than {MAX_FILE} bytes"),
    })
}

/// The rules from `USOCK_ROUTE`, `USOCK_ROUTE_FILE` and `USOCK_ROUTE_DEFAULT`
/// ([`compose`]); one that does not parse, or a file that cannot be read,
/// ends the process with status 2 and a message on stderr.
#[cfg(feature = "std")]
fn from_env() -> Vec<Rule> {
    let var = |k: &str| std::env::var_os(k).map(|v| v.to_string_lossy().into_owned());
    let route = var("USOCK_ROUTE");
    let defaults = var("USOCK_ROUTE_DEFAULT");
    let path = std::env::var_os("USOCK_ROUTE_FILE");
    let contents = path.as_deref().map(read_file);
    let path = path.map(|p| p.to_string_lossy().into_owned());
    let src = Sources {
        route: route.as_deref(),
        file: path
            .as_deref()
            .zip(contents.as_ref())
            .map(|(p, c)| (p, c.as_ref().map(|v| v.as_slice()).map_err(|e| e.as_str()))),
        defaults: defaults.as_deref(),
    };
    match compose(&src) {
        Ok(r) => r,
        Err(RuleError(e)) => {
            let msg = alloc::format!("libuserspacesock: {e}\n");
            crate::platform::diag(msg.as_bytes());
            // A mis-routed socket is worse than no program.
            crate::platform::exit_now(2);
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
    const UDP6: SockInfo = SockInfo {
        domain: AF_INET6,
        ty: SOCK_DGRAM,
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

    #[test]
    fn a_file_has_comments_blank_lines_and_rules_per_line() {
        let text = b"# routes for the test\n\
            \n\
            kernel 10.0.0.0/8   # the lab\n\
            \t  \r\n\
            user tcp 10.1.0.0/16:80; kernel udp :5353 ;\r\n\
            ;;\n\
            # kernel tcp :22\n\
            kernel [fd00::]/8";
        let r = parse_file("f", text).unwrap();
        assert_eq!(
            r,
            parse(
                "kernel 10.0.0.0/8; user tcp 10.1.0.0/16:80; kernel udp :5353; kernel [fd00::]/8"
            )
            .unwrap()
        );
        assert_eq!(parse_file("f", b"").unwrap(), Vec::new());
        assert_eq!(parse_file("f", b"# nothing\n\n").unwrap(), Vec::new());
        assert_eq!(
            decide_with(&r, &TCP4, &sa4([10, 9, 9, 9], 22)),
            Route::Kernel,
            "a rule after a comment"
        );
        assert_eq!(
            decide_with(&r, &TCP4, &sa4([1, 2, 3, 4], 22)),
            Route::User,
            "a commented rule is no rule"
        );
    }

    #[test]
    fn file_errors_name_the_file_the_line_and_the_rule() {
        let text = b"# comment\n\nkernel 10.0.0.0/8\nkernel tcp :80;  kernal 1.2.3.4 # typo\n";
        let e = parse_file("/etc/usock.rules", text).unwrap_err();
        assert_eq!(
            e.0,
            r#"/etc/usock.rules: line 4: rule "kernal 1.2.3.4": "kernal" is not an action (kernel or user)"#
        );
        let e = parse_file("r", b"\n\n\nkernel udp 10.0.0.0/33\n").unwrap_err();
        assert_eq!(
            e.0,
            r#"r: line 4: rule "kernel udp 10.0.0.0/33": "10.0.0.0/33": bad prefix "33""#
        );
        let e = parse_file("r", b"kernel :53\nkernel \xff\n").unwrap_err();
        assert_eq!(e.0, "r: line 2: not UTF-8");
        // The line is the file's, counted from 1, comments and blanks included.
        for (n, bad) in [(1, "kernel :x"), (2, "kernel [::1"), (3, "user 1.2.3")] {
            let mut text = String::new();
            for i in 1..=3 {
                text.push_str(if i == n { bad } else { "# ok" });
                text.push('\n');
            }
            let e = parse_file("f", text.as_bytes()).unwrap_err();
            assert!(
                e.0.starts_with(&alloc::format!("f: line {n}: rule {bad:?}: ")),
                "{e:?}"
            );
        }
    }

    #[test]
    fn route_comes_first_then_the_file_then_the_defaults() {
        let dns = sa4([9, 9, 9, 9], 53);
        let lab = sa4([10, 0, 0, 1], 80);
        let file: &[u8] = b"user udp :53\nkernel 10.0.0.0/8\n";

        // Nothing set: the defaults.
        let r = compose(&Sources::default()).unwrap();
        assert_eq!(r, parse(DEFAULT_RULES).unwrap());
        assert_eq!(decide_with(&r, &UDP4, &dns), Route::Kernel);

        // A file alone: its rules, then the defaults (which it overrides).
        let only_file = Sources {
            file: Some(("f", Ok(b"kernel 10.0.0.0/8"))),
            ..Sources::default()
        };
        let r = compose(&only_file).unwrap();
        assert_eq!(decide_with(&r, &TCP4, &lab), Route::Kernel);
        assert_eq!(
            decide_with(&r, &UDP4, &dns),
            Route::Kernel,
            "defaults follow"
        );
        let r = compose(&Sources {
            file: Some(("f", Ok(file))),
            ..Sources::default()
        })
        .unwrap();
        assert_eq!(
            decide_with(&r, &UDP4, &dns),
            Route::User,
            "the file comes before the defaults"
        );
        assert_eq!(decide_with(&r, &TCP4, &dns), Route::Kernel);

        // USOCK_ROUTE_DEFAULT replaces the built-in defaults.
        let r = compose(&Sources {
            file: Some(("f", Ok(b"kernel 10.0.0.0/8"))),
            defaults: Some("kernel unix; kernel udp6"),
            ..Sources::default()
        });
        assert!(r.is_err(), "udp6 is no condition");
        let r = compose(&Sources {
            file: Some(("f", Ok(b"kernel 10.0.0.0/8"))),
            defaults: Some("kernel inet6 udp"),
            ..Sources::default()
        })
        .unwrap();
        assert_eq!(r, parse("kernel 10.0.0.0/8; kernel inet6 udp").unwrap());
        assert_eq!(decide_with(&r, &UDP4, &dns), Route::User);
        let mut lo = [0u8; 16];
        lo[15] = 1;
        assert_eq!(decide_with(&r, &UDP6, &sa6(lo, 53)), Route::Kernel);

        // USOCK_ROUTE first, then the file; no defaults (as before the file).
        let r = compose(&Sources {
            route: Some("user 10.0.0.1; kernel udp :53"),
            file: Some(("f", Ok(file))),
            defaults: Some("kernel :80"),
        })
        .unwrap();
        assert_eq!(
            r,
            parse("user 10.0.0.1; kernel udp :53; user udp :53; kernel 10.0.0.0/8").unwrap()
        );
        assert_eq!(
            decide_with(&r, &TCP4, &lab),
            Route::User,
            "USOCK_ROUTE wins"
        );
        assert_eq!(
            decide_with(&r, &TCP4, &sa4([10, 0, 0, 2], 80)),
            Route::Kernel
        );
        assert_eq!(
            decide_with(&r, &UDP4, &dns),
            Route::Kernel,
            "USOCK_ROUTE wins"
        );
        assert_eq!(decide_with(&r, &TCP4, &dns), Route::User, "no defaults");
        let r = compose(&Sources {
            route: Some(""),
            ..Sources::default()
        })
        .unwrap();
        assert!(
            r.is_empty(),
            "an empty USOCK_ROUTE still replaces the defaults"
        );
    }

    #[test]
    fn compose_errors_name_their_source() {
        let e = |s: Sources<'_>| compose(&s).unwrap_err().0;
        assert_eq!(
            e(Sources {
                route: Some("kernel; kernal"),
                file: Some(("f", Ok(b"kernal"))),
                ..Sources::default()
            }),
            r#"USOCK_ROUTE: rule 2: "kernal" is not an action (kernel or user)"#
        );
        assert_eq!(
            e(Sources {
                route: Some("kernel"),
                file: Some(("/r", Ok(b"kernel\nuser :0x"))),
                ..Sources::default()
            }),
            r#"USOCK_ROUTE_FILE /r: line 2: rule "user :0x": ":0x": bad port "0x""#
        );
        assert_eq!(
            e(Sources {
                file: Some(("/nope", Err("No such file or directory (os error 2)"))),
                ..Sources::default()
            }),
            "USOCK_ROUTE_FILE /nope: cannot read: No such file or directory (os error 2)"
        );
        assert!(e(Sources {
            defaults: Some("kernel 1.2.3.4/99"),
            ..Sources::default()
        })
        .starts_with("USOCK_ROUTE_DEFAULT: rule 1: "));
    }

    #[cfg(feature = "std")]
    #[test]
    fn read_file_reads_whole_files_and_reports_errors() {
        let dir = std::env::temp_dir().join(alloc::format!("usock-route-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("rules");
        let big: Vec<u8> = (0..10_000u32)
            .map(|i| b"kernel :53\n"[i as usize % 11])
            .collect();
        std::fs::write(&f, &big).unwrap();
        assert_eq!(read_file(f.as_os_str()).unwrap(), big);
        let e = read_file(dir.join("missing").as_os_str()).unwrap_err();
        assert!(e.contains("No such file"), "{e}");
        let e = read_file(dir.as_os_str()).unwrap_err();
        assert!(e.contains("Is a directory"), "{e}");
        std::fs::write(&f, vec![b'#'; MAX_FILE + 1]).unwrap();
        assert!(read_file(f.as_os_str())
            .unwrap_err()
            .contains("larger than"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

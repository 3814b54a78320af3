//! The engine's configuration: which device, which addresses, which
//! default routes, which MAC. Parsed from the strings of `USOCK_NETIF`,
//! `USOCK_NETIF_ADDR`, `USOCK_NETIF_GW` and `USOCK_NETIF_MAC` (or the same
//! strings given to `usock_netif_configure`). Pure parsing: no device is
//! touched here, and every error names the variable and the word.

use alloc::string::String;
use alloc::vec::Vec;
use core::net::IpAddr;

use super::impair::ImpairSpec;

/// `format!` without `alloc::fmt::format`, whose precompiled code has an
/// unwinding landing pad (`_Unwind_Resume`, a symbol of the C runtime's
/// unwinder) that the no_std archive must not reference: these parsers
/// are reached from `usock_netif_attach` there.
macro_rules! format {
    ($($t:tt)*) => {{
        let mut s = String::new();
        let _ = core::fmt::Write::write_fmt(&mut s, format_args!($($t)*));
        s
    }};
}

/// At most this many addresses (smoltcp's interface holds as many).
pub const MAX_ADDRS: usize = 4;

/// Which device carries the frames.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetifKind {
    /// `tap:NAME`: a Linux TAP device (made if absent).
    Tap(String),
    /// `packet:IFNAME`: a raw AF_PACKET socket on an existing interface.
    Packet(String),
    /// A device table the host supplies (`usock_netif_attach`): its
    /// driver, which the engine reaches through function pointers.
    Host,
}

/// An address with its prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    /// The address.
    pub ip: IpAddr,
    /// The prefix length (at most 32 for IPv4, 128 for IPv6).
    pub prefix: u8,
}

/// A whole configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetifConfig {
    /// The device.
    pub kind: NetifKind,
    /// The interface's static addresses (at least one, unless `dhcp`).
    pub addrs: Vec<Cidr>,
    /// The IPv4 address, its prefix and the IPv4 default route come from
    /// a DHCPv4 server (`USOCK_NETIF_ADDR=dhcp`), renewed while the
    /// engine runs.
    pub dhcp: bool,
    /// Default routes: at most one per family, each of a family that has
    /// an address.
    pub gws: Vec<IpAddr>,
    /// The MAC address; `None`: the device's own, else a locally
    /// administered one made up.
    pub mac: Option<[u8; 6]>,
    /// A bad link on purpose (`USOCK_NETIF_IMPAIR`, for tests): `parse`
    /// leaves it `None`, [`parse_impair_var`] says it.
    pub impair: Option<ImpairSpec>,
}

/// Parses the device: `tap:NAME` or `packet:IFNAME` (a Linux interface
/// name: 1 to 15 bytes, no `/`, no white space).
pub fn parse_netif(s: &str) -> Result<NetifKind, String> {
    let bad = |why: &str| format!("USOCK_NETIF={s}: {why} (expected tap:NAME or packet:IFNAME)");
    let (kind, name) = s.split_once(':').ok_or_else(|| bad("no device kind"))?;
    if name.is_empty() || name.len() > 15 {
        return Err(bad("an interface name has 1 to 15 characters"));
    }
    if name
        .bytes()
        .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0)
    {
        return Err(bad("the interface name has a character Linux refuses"));
    }
    match kind {
        "tap" => Ok(NetifKind::Tap(name.into())),
        "packet" => Ok(NetifKind::Packet(name.into())),
        _ => Err(bad("unknown device kind")),
    }
}

/// Parses `ADDR/PREFIX[,ADDR/PREFIX...]`.
pub fn parse_addrs(s: &str) -> Result<Vec<Cidr>, String> {
    let mut out = Vec::new();
    for (i, word) in s.split(',').map(str::trim).enumerate() {
        let bad = |why: &str| format!("USOCK_NETIF_ADDR={s}: address {}, {word:?}: {why}", i + 1);
        let (ip, prefix) = word
            .split_once('/')
            .ok_or_else(|| bad("expected ADDR/PREFIX"))?;
        let ip: IpAddr = ip.parse().map_err(|_| bad("not an IP address"))?;
        let prefix: u8 = prefix.parse().map_err(|_| bad("not a prefix length"))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(bad("prefix length too long"));
        }
        if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() {
            return Err(bad("not a unicast address an interface can have"));
        }
        out.push(Cidr { ip, prefix });
    }
    if out.len() > MAX_ADDRS {
        return Err(format!(
            "USOCK_NETIF_ADDR={s}: more than {MAX_ADDRS} addresses"
        ));
    }
    Ok(out)
}

/// Parses `GW[,GW]`: at most one per family, each of a family `addrs`
/// has (IPv4 none when `dhcp`: the lease names the router).
pub fn parse_gws(s: &str, addrs: &[Cidr], dhcp: bool) -> Result<Vec<IpAddr>, String> {
    let mut out: Vec<IpAddr> = Vec::new();
    for word in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        let bad = |why: &str| format!("USOCK_NETIF_GW={s}: {word:?}: {why}");
        let ip: IpAddr = word.parse().map_err(|_| bad("not an IP address"))?;
        if ip.is_unspecified() || ip.is_multicast() || ip.is_loopback() {
            return Err(bad("not a gateway address"));
        }
        if out.iter().any(|g| g.is_ipv4() == ip.is_ipv4()) {
            return Err(bad("a second default route of the same family"));
        }
        if dhcp && ip.is_ipv4() {
            return Err(bad(
                "with USOCK_NETIF_ADDR=dhcp the lease gives the IPv4 default route",
            ));
        }
        if !addrs.iter().any(|a| a.ip.is_ipv4() == ip.is_ipv4()) {
            return Err(bad("no address of its family in USOCK_NETIF_ADDR"));
        }
        out.push(ip);
    }
    Ok(out)
}

/// Parses `xx:xx:xx:xx:xx:xx` (hex), a unicast MAC.
pub fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let bad = || format!("USOCK_NETIF_MAC={s}: expected a unicast MAC, xx:xx:xx:xx:xx:xx");
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in mac.iter_mut() {
        let p = parts.next().ok_or_else(bad)?;
        if p.is_empty() || p.len() > 2 {
            return Err(bad());
        }
        *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    if parts.next().is_some() || mac[0] & 1 != 0 || mac == [0; 6] {
        return Err(bad());
    }
    Ok(mac)
}

/// Splits `dhcp` off `USOCK_NETIF_ADDR`'s words (or
/// `usock_netif_attach`'s addresses): `dhcp` alone, or with static IPv6
/// addresses (`dhcp,fd77::2/64`); a static IPv4 address beside it is
/// refused (two sources for one family's address). The static addresses,
/// and whether DHCP gives the IPv4 one.
pub fn parse_addr_words(s: &str) -> Result<(Vec<Cidr>, bool), String> {
    let words: Vec<&str> = s.split(',').map(str::trim).collect();
    let dhcp = words.iter().any(|w| w.eq_ignore_ascii_case("dhcp"));
    if !dhcp {
        return Ok((parse_addrs(s)?, false));
    }
    if !cfg!(feature = "dhcp") {
        return Err(format!(
            "USOCK_NETIF_ADDR={s}: this build has no DHCP client (cargo feature dhcp)"
        ));
    }
    let rest: Vec<&str> = words
        .iter()
        .copied()
        .filter(|w| !w.eq_ignore_ascii_case("dhcp"))
        .collect();
    if rest.len() + 1 != words.len() {
        return Err(format!("USOCK_NETIF_ADDR={s}: dhcp given twice"));
    }
    if rest.is_empty() {
        return Ok((Vec::new(), true));
    }
    let addrs = parse_addrs(&rest.join(","))?;
    if addrs.iter().any(|a| a.ip.is_ipv4()) {
        return Err(format!(
            "USOCK_NETIF_ADDR={s}: a static IPv4 address beside dhcp (the lease gives it)"
        ));
    }
    if addrs.len() >= MAX_ADDRS {
        return Err(format!(
            "USOCK_NETIF_ADDR={s}: more than {} addresses beside the lease's",
            MAX_ADDRS - 1
        ));
    }
    Ok((addrs, true))
}

/// The whole configuration from its strings (`addrs` is required: static
/// CIDRs, or `dhcp`).
pub fn parse(
    netif: &str,
    addrs: Option<&str>,
    gws: Option<&str>,
    mac: Option<&str>,
) -> Result<NetifConfig, String> {
    let kind = parse_netif(netif)?;
    let (addrs, dhcp) = match addrs {
        Some(a) if !a.trim().is_empty() => parse_addr_words(a)?,
        _ => {
            return Err(format!(
                "USOCK_NETIF_ADDR is needed with USOCK_NETIF={netif} (ADDR/PREFIX[,...], \
                 or dhcp)"
            ))
        }
    };
    let gws = match gws {
        Some(g) => parse_gws(g, &addrs, dhcp)?,
        None => Vec::new(),
    };
    let mac = match mac {
        Some(m) if !m.is_empty() => Some(parse_mac(m)?),
        _ => None,
    };
    Ok(NetifConfig {
        kind,
        addrs,
        dhcp,
        gws,
        mac,
        impair: None,
    })
}

/// `USOCK_NETIF_IMPAIR`'s value, when set and not empty.
pub fn parse_impair_var(v: Option<&str>) -> Result<Option<ImpairSpec>, String> {
    match v {
        Some(s) if !s.trim().is_empty() => super::impair::parse_impair(s).map(Some),
        _ => Ok(None),
    }
}

/// A locally administered unicast MAC from `seed` (the pid and the clock):
/// two engines on one link differ.
pub fn made_up_mac(seed: u64) -> [u8; 6] {
    let mut x = seed ^ 0x9e37_79b9_7f4a_7c15;
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    let b = x.to_le_bytes();
    [0x02, b[0], b[1], b[2], b[3], b[4]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_good_configuration() {
        let c = parse(
            "tap:ut0",
            Some("10.77.0.2/24, fd77::2/64"),
            Some("10.77.0.1,fd77::1"),
            Some("02:00:00:aa:bb:01"),
        )
        .unwrap();
        assert_eq!(c.kind, NetifKind::Tap("ut0".into()));
        assert_eq!(c.addrs.len(), 2);
        assert_eq!(c.addrs[1].prefix, 64);
        assert_eq!(c.gws.len(), 2);
        assert_eq!(c.mac, Some([2, 0, 0, 0xaa, 0xbb, 1]));
        assert_eq!(
            parse("packet:eth0", Some("192.168.1.9/24"), None, None)
                .unwrap()
                .kind,
            NetifKind::Packet("eth0".into())
        );
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (n, a, g, m, var) in [
            ("ut0", Some("10.0.0.2/24"), None, None, "USOCK_NETIF="),
            ("tun:ut0", Some("10.0.0.2/24"), None, None, "USOCK_NETIF="),
            ("tap:", Some("10.0.0.2/24"), None, None, "USOCK_NETIF="),
            (
                "tap:a-very-long-name0",
                Some("10.0.0.2/24"),
                None,
                None,
                "USOCK_NETIF=",
            ),
            ("tap:ut0", None, None, None, "USOCK_NETIF_ADDR"),
            ("tap:ut0", Some("10.0.0.2"), None, None, "USOCK_NETIF_ADDR="),
            (
                "tap:ut0",
                Some("10.0.0.2/33"),
                None,
                None,
                "USOCK_NETIF_ADDR=",
            ),
            (
                "tap:ut0",
                Some("10.0.0.256/24"),
                None,
                None,
                "USOCK_NETIF_ADDR=",
            ),
            (
                "tap:ut0",
                Some("127.0.0.2/8"),
                None,
                None,
                "USOCK_NETIF_ADDR=",
            ),
            (
                "tap:ut0",
                Some("10.0.0.2/24"),
                Some("fd00::1"),
                None,
                "USOCK_NETIF_GW=",
            ),
            (
                "tap:ut0",
                Some("10.0.0.2/24"),
                Some("10.0.0.1,10.0.0.3"),
                None,
                "USOCK_NETIF_GW=",
            ),
            (
                "tap:ut0",
                Some("10.0.0.2/24"),
                Some("x"),
                None,
                "USOCK_NETIF_GW=",
            ),
            (
                "tap:ut0",
                Some("10.0.0.2/24"),
                None,
                Some("01:00:00:00:00:01"),
                "USOCK_NETIF_MAC=",
            ),
            (
                "tap:ut0",
                Some("10.0.0.2/24"),
                None,
                Some("02:00:00:00:00"),
                "USOCK_NETIF_MAC=",
            ),
        ] {
            let e = parse(n, a, g, m).unwrap_err();
            assert!(e.starts_with(var), "{n} {a:?} {g:?} {m:?}: {e}");
        }
    }

    #[cfg(feature = "dhcp")]
    #[test]
    fn dhcp_alone_or_with_static_ipv6() {
        let c = parse("tap:ut0", Some("dhcp"), None, None).unwrap();
        assert!(c.dhcp && c.addrs.is_empty());
        let c = parse("tap:ut0", Some("DHCP, fd77::2/64"), Some("fd77::1"), None).unwrap();
        assert!(c.dhcp);
        assert_eq!(c.addrs.len(), 1);
        assert_eq!(c.gws.len(), 1);
        assert!(
            !parse("tap:ut0", Some("10.0.0.2/24"), None, None)
                .unwrap()
                .dhcp
        );
        for (a, g) in [
            ("dhcp,10.0.0.2/24", None),
            ("dhcp,dhcp", None),
            ("dhcp", Some("10.0.0.1")),
            ("dhcpx", None),
        ] {
            let e = parse("tap:ut0", Some(a), g, None).unwrap_err();
            assert!(e.starts_with("USOCK_NETIF_"), "{a} {g:?}: {e}");
        }
    }

    #[test]
    fn made_up_macs_are_local_unicast_and_differ() {
        let (a, b) = (made_up_mac(1), made_up_mac(2));
        assert_eq!(a[0], 2);
        assert_ne!(a, b);
    }
}

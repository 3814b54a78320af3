//! What a DHCPv4 lease gave the engine (`USOCK_NETIF_ADDR=dhcp`), and how
//! it is told: the lease's DNS servers are not used by the engine itself
//! (libc's resolver reads /etc/resolv.conf), so they are written for
//! whoever configures the program's resolver (`USOCK_NETIF_LEASE_FILE`).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use core::net::Ipv4Addr;

/// The engine waits this long after it started for a first lease before a
/// call that needs an IPv4 address fails (a DHCP exchange on a link with a
/// server takes a round trip or two; smoltcp retries its DISCOVER).
pub const FIRST_LEASE_WAIT_NS: u64 = 10_000_000_000;

/// A lease in force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The interface's IPv4 address.
    pub addr: Ipv4Addr,
    /// Its prefix length (the server's subnet mask).
    pub prefix: u8,
    /// The default route, if the server named a router.
    pub router: Option<Ipv4Addr>,
    /// The DNS servers the server named.
    pub dns: Vec<Ipv4Addr>,
}

/// The lease as `key=value` lines (`address=10.0.0.5/24`, `router=...`,
/// one `dns=...` per server), or `address=` alone when there is none:
/// easy to read from a shell (`grep ^dns= FILE`).
pub fn describe(lease: Option<&Lease>) -> String {
    let mut s = String::new();
    match lease {
        None => s.push_str("address=\n"),
        Some(l) => {
            let _ = writeln!(s, "address={}/{}", l.addr, l.prefix);
            if let Some(r) = l.router {
                let _ = writeln!(s, "router={r}");
            }
            for d in &l.dns {
                let _ = writeln!(s, "dns={d}");
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_reads_as_lines() {
        let l = Lease {
            addr: Ipv4Addr::new(10, 9, 0, 50),
            prefix: 24,
            router: Some(Ipv4Addr::new(10, 9, 0, 1)),
            dns: alloc::vec![Ipv4Addr::new(10, 9, 0, 1), Ipv4Addr::new(10, 9, 0, 2)],
        };
        assert_eq!(
            describe(Some(&l)),
            "address=10.9.0.50/24\nrouter=10.9.0.1\ndns=10.9.0.1\ndns=10.9.0.2\n"
        );
        assert_eq!(describe(None), "address=\n");
    }
}

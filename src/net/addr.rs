//! `std::net::SocketAddr` to and from the `struct sockaddr_in` /
//! `struct sockaddr_in6` bytes the core carries.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::addr::SockAddr;
use crate::consts::{AF_INET, AF_INET6, EAFNOSUPPORT, EINVAL};

/// Size of `struct sockaddr_in`.
const SIN_LEN: usize = 16;
/// Size of `struct sockaddr_in6`.
const SIN6_LEN: usize = 28;
/// Shortest `sockaddr_in6` Linux accepts (RFC 2133's, without scope id).
const SIN6_LEN_MIN: usize = 24;

/// Encodes an IP socket address as Linux lays out `struct sockaddr_in`
/// (16 bytes) or `struct sockaddr_in6` (28 bytes): family in native byte
/// order, port and address in network byte order, flow info and scope id as
/// `std` stores them.
pub fn to_sockaddr(addr: &SocketAddr) -> SockAddr {
    let mut b = [0u8; SIN6_LEN];
    let len = match addr {
        SocketAddr::V4(a) => {
            b[..2].copy_from_slice(&(AF_INET as u16).to_ne_bytes());
            b[2..4].copy_from_slice(&a.port().to_be_bytes());
            b[4..8].copy_from_slice(&a.ip().octets());
            SIN_LEN
        }
        SocketAddr::V6(a) => {
            b[..2].copy_from_slice(&(AF_INET6 as u16).to_ne_bytes());
            b[2..4].copy_from_slice(&a.port().to_be_bytes());
            b[4..8].copy_from_slice(&a.flowinfo().to_ne_bytes());
            b[8..24].copy_from_slice(&a.ip().octets());
            b[24..28].copy_from_slice(&a.scope_id().to_ne_bytes());
            SIN6_LEN
        }
    };
    // Both lengths are within ADDR_MAX and above the family field.
    SockAddr::from_bytes(&b[..len]).unwrap_or_else(|| SockAddr::unnamed(AF_INET))
}

/// Decodes a `sockaddr_in` / `sockaddr_in6`. `EAFNOSUPPORT` for another
/// family, `EINVAL` when the address is too short for its family.
pub fn to_socket_addr(addr: &SockAddr) -> io::Result<SocketAddr> {
    let b = addr.as_bytes();
    let port = |b: &[u8]| u16::from_be_bytes([b[2], b[3]]);
    match addr.family() {
        AF_INET => {
            if b.len() < SIN_LEN {
                return Err(io::Error::from_raw_os_error(EINVAL));
            }
            let ip = Ipv4Addr::new(b[4], b[5], b[6], b[7]);
            Ok(SocketAddr::V4(SocketAddrV4::new(ip, port(b))))
        }
        AF_INET6 => {
            if b.len() < SIN6_LEN_MIN {
                return Err(io::Error::from_raw_os_error(EINVAL));
            }
            let mut ip = [0u8; 16];
            ip.copy_from_slice(&b[8..24]);
            let flow = u32::from_ne_bytes([b[4], b[5], b[6], b[7]]);
            let scope = if b.len() >= SIN6_LEN {
                u32::from_ne_bytes([b[24], b[25], b[26], b[27]])
            } else {
                0
            };
            Ok(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(ip),
                port(b),
                flow,
                scope,
            )))
        }
        _ => Err(io::Error::from_raw_os_error(EAFNOSUPPORT)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_v4_and_v6() {
        for s in ["127.0.0.1:80", "0.0.0.0:0", "[::1]:65535", "[fe80::1%3]:9"] {
            let a: SocketAddr = s.parse().unwrap();
            let sa = to_sockaddr(&a);
            assert_eq!(sa.len(), if a.is_ipv4() { 16 } else { 28 });
            assert_eq!(to_socket_addr(&sa).unwrap(), a);
        }
    }

    #[test]
    fn layout_is_sockaddr_in() {
        let sa = to_sockaddr(&"10.1.2.3:258".parse().unwrap());
        let b = sa.as_bytes();
        assert_eq!(sa.family(), AF_INET);
        assert_eq!(&b[2..8], &[1, 2, 10, 1, 2, 3]);
        assert!(b[8..].iter().all(|&x| x == 0));
    }

    #[test]
    fn other_families_and_short_addresses_fail() {
        let unix = SockAddr::unnamed(crate::consts::AF_UNIX);
        assert_eq!(
            to_socket_addr(&unix).unwrap_err().raw_os_error(),
            Some(EAFNOSUPPORT)
        );
        let short = SockAddr::from_bytes(&[2, 0, 0, 80]).unwrap();
        assert_eq!(
            to_socket_addr(&short).unwrap_err().raw_os_error(),
            Some(EINVAL)
        );
    }
}

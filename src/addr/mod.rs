//! Socket addresses as the frontend sees them: opaque bytes.
//!
//! The frontend never interprets an address beyond its family (the first two
//! bytes, native endian as in `struct sockaddr`); backends own addressing.

use core::fmt;

mod parse;
pub use parse::{IpEp, UnixName};

use crate::consts::{AF_INET, AF_INET6};

/// Largest address kept, the size of `struct sockaddr_storage`.
pub const ADDR_MAX: usize = 128;

/// An owned socket address: up to [`ADDR_MAX`] bytes in `struct sockaddr`
/// layout.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SockAddr {
    len: u8,
    bytes: [u8; ADDR_MAX],
}

impl SockAddr {
    /// Copies an address; `None` when longer than [`ADDR_MAX`] or shorter than
    /// its family field.
    pub fn from_bytes(bytes: &[u8]) -> Option<SockAddr> {
        if bytes.len() > ADDR_MAX || bytes.len() < 2 {
            return None;
        }
        let mut out = SockAddr {
            len: bytes.len() as u8,
            bytes: [0; ADDR_MAX],
        };
        out.bytes[..bytes.len()].copy_from_slice(bytes);
        Some(out)
    }

    /// An address made only of a family field (an unnamed AF_UNIX socket).
    pub fn unnamed(family: i32) -> SockAddr {
        let mut out = SockAddr {
            len: 2,
            bytes: [0; ADDR_MAX],
        };
        out.bytes[..2].copy_from_slice(&(family as u16).to_ne_bytes());
        out
    }

    /// The family's unspecified address (0.0.0.0:0, [::]:0; an unnamed
    /// socket's address for any other family), what an implicit bind or a
    /// listen without bind selects a backend with.
    pub fn unspecified(family: i32) -> SockAddr {
        let len = match family {
            AF_INET => 16,
            AF_INET6 => 28,
            _ => 2,
        };
        let mut b = [0u8; 28];
        b[..2].copy_from_slice(&(family as u16).to_ne_bytes());
        SockAddr::from_bytes(&b[..len]).unwrap_or_else(|| SockAddr::unnamed(family))
    }

    /// The bytes of the address.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// True for an address of zero bytes (never produced by the constructors).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The address family (`sa_family`).
    pub fn family(&self) -> i32 {
        u16::from_ne_bytes([self.bytes[0], self.bytes[1]]) as i32
    }

    /// The port of an AF_INET or AF_INET6 address (host order).
    pub fn inet_port(&self) -> Option<u16> {
        match self.family() {
            AF_INET | AF_INET6 if self.len >= 4 => {
                Some(u16::from_be_bytes([self.bytes[2], self.bytes[3]]))
            }
            _ => None,
        }
    }
}

impl fmt::Debug for SockAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SockAddr(family {}, {:02x?})",
            self.family(),
            self.as_bytes()
        )
    }
}

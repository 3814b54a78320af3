//! A socket's line in a process's socket listing (`usockstat`): what `ss`
//! shows of it, read from the socket's state with the accessors behind
//! getsockname, getpeername, SIOCINQ, SIOCOUTQ and TCP_INFO, so that the
//! listing and those calls never disagree.
//!
//! The listing is text, one line per socket, fields separated by a tab:
//!
//! `fd  id  netid  state  recv_q  send_q  local  peer`
//!
//! - `id` names the socket within the process (two fds sharing one socket,
//!   after dup(), have the same);
//! - `netid` is `ss`'s: `tcp`, `udp`, `u_str`, `u_dgr`, `u_seq` (`tcp6`-
//!   style family suffixes are not used: the address shows it);
//! - `state` is `ss`'s name (`LISTEN`, `ESTAB`, `SYN-SENT`, `CLOSE-WAIT`,
//!   `FIN-WAIT-2`, `UNCONN`);
//! - `recv_q`/`send_q` are `ss`'s Recv-Q and Send-Q: for a listener the
//!   accept queue's length and the backlog, otherwise the bytes SIOCINQ
//!   counts (a datagram socket: the bytes its queued datagrams are charged,
//!   as Linux's receive memory) and SIOCOUTQ counts;
//! - addresses as `ss` prints them (`127.0.0.1:80`, `[::1]:80`, `*` for
//!   none, an AF_UNIX path as it is, an abstract name with `@`), with every
//!   byte that is not printable ASCII, a space or a backslash written
//!   `\xNN`, so that a line stays one line of ASCII.
//!
//! Nothing here blocks: each value is an atomic or a lock held as briefly
//! as the call it mirrors holds it.
// Only the hosted C ABI lists sockets so far (it walks the fd table with
// `fd::for_each_ours`, which is hosted); the code itself is core and alloc.
#![cfg_attr(not(feature = "std"), allow(dead_code))]

use alloc::string::String;
use alloc::sync::Arc;
use core::fmt::Write;

use super::*;

/// Linux's SOCK_SEQPACKET (AF_UNIX record sockets).
const SEQPACKET: i32 = 5;

/// `ss`'s names of Linux's TCP states (`include/net/tcp_states.h` order,
/// with `ss`'s UNCONN for TCP_CLOSE).
fn state_name(st: u8) -> &'static str {
    match st {
        1 => "ESTAB",
        2 => "SYN-SENT",
        3 => "SYN-RECV",
        4 => "FIN-WAIT-1",
        5 => "FIN-WAIT-2",
        6 => "TIME-WAIT",
        8 => "CLOSE-WAIT",
        9 => "LAST-ACK",
        10 => "LISTEN",
        11 => "CLOSING",
        _ => "UNCONN",
    }
}

/// `ss`'s netid of a socket.
fn netid(info: &SockInfo) -> &'static str {
    match (info.domain, info.ty) {
        (AF_UNIX, SOCK_STREAM) => "u_str",
        (AF_UNIX, SOCK_DGRAM) => "u_dgr",
        (AF_UNIX, SEQPACKET) => "u_seq",
        (_, SOCK_STREAM) => "tcp",
        (_, SOCK_DGRAM) => "udp",
        _ => "???",
    }
}

/// Writes `bytes` with everything but printable ASCII other than space
/// and backslash as `\xNN`.
fn put_escaped(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        if b > b' ' && b < 0x7f && b != b'\\' {
            out.push(b as char);
        } else {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
}

/// Writes an address as `ss` prints it; `*` when there is none.
fn put_addr(out: &mut String, a: Option<&SockAddr>) {
    let Some(a) = a else {
        out.push('*');
        return;
    };
    let b = a.as_bytes();
    match a.family() {
        AF_INET if b.len() >= 8 => {
            let port = u16::from_be_bytes([b[2], b[3]]);
            let ip = core::net::Ipv4Addr::new(b[4], b[5], b[6], b[7]);
            let _ = write!(out, "{ip}:{port}");
        }
        AF_INET6 if b.len() >= 24 => {
            let port = u16::from_be_bytes([b[2], b[3]]);
            let mut ip = [0u8; 16];
            ip.copy_from_slice(&b[8..24]);
            let ip = core::net::Ipv6Addr::from(ip);
            let _ = write!(out, "[{ip}]:{port}");
        }
        AF_UNIX if b.len() > 2 => {
            let path = &b[2..];
            if path[0] == 0 {
                out.push('@');
                put_escaped(out, &path[1..]);
            } else {
                let end = path.iter().position(|&c| c == 0).unwrap_or(path.len());
                put_escaped(out, &path[..end]);
            }
        }
        _ => out.push('*'),
    }
}

impl Socket {
    /// `ss`'s state of this socket.
    fn listing_state(&self) -> &'static str {
        if self.is_stream() || self.info.ty == SEQPACKET {
            return state_name(self.tcp_state());
        }
        match self.phase() {
            Phase::Connected => "ESTAB",
            _ => "UNCONN",
        }
    }

    /// Recv-Q and Send-Q as `ss` shows them.
    fn listing_queues(&self) -> (u64, u64) {
        if self.phase() == Phase::Listening {
            let backlog = self.ctl.lock().backlog;
            return (
                u64::from(self.accept_len.load(Ordering::Acquire)),
                u64::from(backlog),
            );
        }
        let recv = match self.rx() {
            Rx::Stream(_) => self.pending_bytes() as u64,
            Rx::Dgram(db) => db.used() as u64,
        };
        (recv, self.unread_by_peer())
    }

    /// Appends this socket's line of the listing, for its fd `fd` (see the
    /// module's doc). A fork child's copy of its parent's socket has none:
    /// it is the parent's to list.
    pub fn listing_line(&self, fd: i32, out: &mut String) {
        if self.inherited() {
            return;
        }
        let (recv, send) = self.listing_queues();
        let _ = write!(
            out,
            "{fd}\t{}\t{}\t{}\t{recv}\t{send}\t",
            self.handle.0,
            netid(&self.info),
            self.listing_state()
        );
        let local = self.local_addr();
        let named = match local.family() {
            AF_UNIX => local.len() > 2,
            _ => true,
        };
        put_addr(out, named.then_some(&local));
        out.push('\t');
        let peer = self.peer_addr().ok();
        put_addr(out, peer.as_ref());
        out.push('\n');
    }
}

/// The listing of the sockets `each` walks (it calls its argument once per
/// fd with that fd's socket), one line each.
pub fn listing(each: impl FnOnce(&mut dyn FnMut(i32, &Arc<Socket>))) -> String {
    let mut out = String::new();
    each(&mut |fd, s| s.listing_line(fd, &mut out));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_print_as_ss_prints_them() {
        let mut s = String::new();
        let mut v4 = [0u8; 16];
        v4[..2].copy_from_slice(&(AF_INET as u16).to_ne_bytes());
        v4[2..4].copy_from_slice(&8080u16.to_be_bytes());
        v4[4..8].copy_from_slice(&[127, 0, 0, 1]);
        put_addr(&mut s, SockAddr::from_bytes(&v4).as_ref());
        assert_eq!(s, "127.0.0.1:8080");
        s.clear();
        let mut v6 = [0u8; 28];
        v6[..2].copy_from_slice(&(AF_INET6 as u16).to_ne_bytes());
        v6[2..4].copy_from_slice(&53u16.to_be_bytes());
        v6[23] = 1;
        put_addr(&mut s, SockAddr::from_bytes(&v6).as_ref());
        assert_eq!(s, "[::1]:53");
        s.clear();
        let mut un = alloc::vec::Vec::from((AF_UNIX as u16).to_ne_bytes());
        un.extend_from_slice(b"\0a b\\\n");
        put_addr(&mut s, SockAddr::from_bytes(&un).as_ref());
        assert_eq!(s, "@a\\x20b\\x5c\\x0a");
        s.clear();
        put_addr(&mut s, None);
        assert_eq!(s, "*");
    }

    #[test]
    fn state_names_are_ss_names() {
        assert_eq!(state_name(10), "LISTEN");
        assert_eq!(state_name(1), "ESTAB");
        assert_eq!(state_name(8), "CLOSE-WAIT");
        assert_eq!(state_name(7), "UNCONN");
    }
}

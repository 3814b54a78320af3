//! The C entry points of the backend contract: registration, the upcalls a
//! C backend calls, and the portable fragment encoding. The table and its
//! adapter are in [`crate::backend::c_table`]; the rules a C backend keeps
//! are in the header (from that module's docs).

#![allow(clippy::missing_safety_doc)]

use core::ffi::{c_int, c_void};

use super::ffi::guard;
use crate::backend::c_table::{self, frag_from_c, frag_to_c, usock_backend_ops, usock_fragment};
use crate::backend::contract::*;
use crate::backend::{registry, upcall, wire};
use crate::consts::*;

/// Registers a backend given as a C function table and a context pointer.
/// Backends with a higher `priority` are asked first; the built-in loopback
/// backend has priority 0. Returns a registration id (> 0), or a negated
/// errno: -EINVAL for a NULL table, a wrong `abi_version` or no `write`.
#[no_mangle]
pub unsafe extern "C" fn usock_backend_register(
    ops: *const usock_backend_ops,
    ctx: *mut c_void,
    priority: c_int,
) -> i64 {
    guard(-(EIO as i64), || {
        if ops.is_null() {
            return -(EINVAL as i64);
        }
        // The built-in ones first, as a program's first socket would find
        // them: priorities order them, not the order of registration.
        crate::backends::install_defaults();
        // SAFETY: non-null and valid per the contract; copied here.
        let ops = unsafe { *ops };
        // SAFETY: `ctx` and the name as the contract says.
        match unsafe { c_table::register(ops, ctx, priority) } {
            Ok(id) => id as i64,
            Err(e) => -(e as i64),
        }
    })
}

/// Unregisters a backend; sockets it carries keep it until they close.
/// Returns 0, or -ENOENT for an unknown id.
#[no_mangle]
pub extern "C" fn usock_backend_unregister(id: i64) -> c_int {
    guard(-EIO, || {
        if id > 0 && registry::unregister(id as u64) {
            0
        } else {
            -ENOENT
        }
    })
}

fn up(r: Result<(), Errno>) -> c_int {
    match r {
        Ok(()) => 0,
        Err(e) => -e,
    }
}

/// Upcall: a fragment for socket `handle`. Returns 0, -EBADF for a socket
/// that is gone, -ENOBUFS when it lies beyond the receive window (offer it
/// again later), -EINVAL when malformed.
#[no_mangle]
pub unsafe extern "C" fn usock_upcall_deliver(handle: u64, frag: *const usock_fragment) -> c_int {
    guard(-EIO, || {
        if frag.is_null() {
            return -EINVAL;
        }
        // SAFETY: non-null and valid per the contract.
        match unsafe { frag_from_c(&*frag) } {
            Ok(f) => up(upcall::deliver(SockHandle(handle), &f)),
            Err(e) => -e,
        }
    })
}

/// Upcall: `usock_upcall_deliver` of a UDP datagram's fragment with the
/// IP header fields its receiver may ask about (IP_PKTINFO, IP_TTL,
/// IP_TOS, IP_ORIGDSTADDR and the IPv6 ones), `attrs_len` (20) bytes:
/// byte 0 flags (1: bytes 4..20 hold the destination address the sender
/// used, IPv6 or IPv4-mapped; other bits 0), byte 1 the TOS or traffic
/// class, byte 2 the TTL or hop limit, byte 3 zero. A backend that moves
/// bytes passes them through as they are; a datagram delivered without
/// them reads as Linux's defaults (sent to the receiver's address, TOS 0,
/// the default TTL). Returns what `usock_upcall_deliver` returns, and
/// -EINVAL for attributes that are not of that form.
#[no_mangle]
pub unsafe extern "C" fn usock_upcall_deliver_attrs(
    handle: u64,
    frag: *const usock_fragment,
    attrs: *const u8,
    attrs_len: u32,
) -> c_int {
    guard(-EIO, || {
        if frag.is_null() || attrs.is_null() {
            return -EINVAL;
        }
        if attrs_len as usize != crate::backend::attrs::ATTR_LEN {
            return -EINVAL;
        }
        // SAFETY: non-null, and `attrs_len` bytes per the contract.
        let b = unsafe { core::slice::from_raw_parts(attrs, attrs_len as usize) };
        let Some(a) = crate::backend::attrs::DgramAttrs::from_bytes(b) else {
            return -EINVAL;
        };
        // SAFETY: non-null and valid per the contract.
        match unsafe { frag_from_c(&*frag) } {
            Ok(f) => up(upcall::deliver_attrs(SockHandle(handle), &f, &a)),
            Err(e) => -e,
        }
    })
}

/// Upcall: a connection request reached `listener`. Creates the socket
/// accept() will return, with `sock_ctx` as its backend context, and stores
/// its handle in `*out`. It becomes acceptable at `usock_upcall_connected`.
/// Returns 0, -EAGAIN when the accept queue is full (try again after the
/// `accepted` hook), -ECONNREFUSED when not listening.
#[no_mangle]
pub unsafe extern "C" fn usock_upcall_incoming(
    listener: u64,
    sock_ctx: *mut c_void,
    out: *mut u64,
) -> c_int {
    guard(-EIO, || {
        if out.is_null() {
            return -EINVAL;
        }
        match c_table::incoming(SockHandle(listener), sock_ctx) {
            Ok(h) => {
                // SAFETY: non-null and valid per the contract.
                unsafe { *out = h.0 };
                0
            }
            Err(e) => -e,
        }
    })
}

/// Upcall: the connection of `handle` is established.
#[no_mangle]
pub extern "C" fn usock_upcall_connected(handle: u64) -> c_int {
    guard(-EIO, || up(upcall::connected(SockHandle(handle))))
}

/// Upcall: the connect() of `handle` failed with `err` (positive errno).
#[no_mangle]
pub extern "C" fn usock_upcall_refused(handle: u64, err: c_int) -> c_int {
    guard(-EIO, || up(upcall::refused(SockHandle(handle), err)))
}

/// Upcall: the connection of `handle` was reset (`err`: ECONNRESET or EPIPE).
#[no_mangle]
pub extern "C" fn usock_upcall_reset(handle: u64, err: c_int) -> c_int {
    guard(-EIO, || up(upcall::reset(SockHandle(handle), err)))
}

/// Upcall: `handle` may send stream bytes below absolute offset `limit`.
#[no_mangle]
pub extern "C" fn usock_upcall_credit(handle: u64, limit: u64) -> c_int {
    guard(-EIO, || up(upcall::credit(SockHandle(handle), limit)))
}

/// Upcall: datagram socket `handle`, whose `write` was refused with
/// `-EAGAIN`, may send again (a blocking sender retries now, not after its
/// millisecond).
#[no_mangle]
pub extern "C" fn usock_upcall_writable(handle: u64) -> c_int {
    guard(-EIO, || up(upcall::writable(SockHandle(handle))))
}

/// Upcall: an asynchronous error (positive errno) for `handle`.
#[no_mangle]
pub extern "C" fn usock_upcall_error(handle: u64, err: c_int) -> c_int {
    guard(-EIO, || up(upcall::error(SockHandle(handle), err)))
}

/// Upcall: the peer of AF_UNIX socket `handle` is process `pid` with
/// effective ids `uid`/`gid` (SO_PEERCRED; see `upcall::peer_cred` for
/// when a backend calls it).
#[no_mangle]
pub extern "C" fn usock_upcall_peer_cred(handle: u64, pid: i32, uid: u32, gid: u32) -> c_int {
    guard(-EIO, || {
        up(upcall::peer_cred(
            SockHandle(handle),
            crate::backend::contract::PeerCred { pid, uid, gid },
        ))
    })
}

/// Upcall: a datagram `handle` sent to `addr` (`addr_len` bytes) found
/// nobody there; `payload` (`len` bytes, may be NULL when 0) is its start
/// (see `upcall::unreachable`).
///
/// # Safety
/// `addr` and `payload` are valid for their lengths.
#[no_mangle]
pub unsafe extern "C" fn usock_upcall_unreachable(
    handle: u64,
    addr: *const u8,
    addr_len: u32,
    payload: *const u8,
    len: u32,
) -> c_int {
    guard(-EIO, || {
        if addr.is_null() || (payload.is_null() && len != 0) {
            return -EINVAL;
        }
        // SAFETY: valid for `addr_len` bytes per the contract.
        let a = unsafe { core::slice::from_raw_parts(addr, addr_len as usize) };
        let Some(dest) = crate::addr::SockAddr::from_bytes(a) else {
            return -EINVAL;
        };
        let p: &[u8] = if len == 0 {
            &[]
        } else {
            // SAFETY: non-null and valid for `len` bytes per the contract.
            unsafe { core::slice::from_raw_parts(payload, len as usize) }
        };
        upcall::unreachable(SockHandle(handle), &dest, p);
        0
    })
}

/// Upcall: the receive window end of `handle`, stored in `*out`.
#[no_mangle]
pub unsafe extern "C" fn usock_upcall_window(handle: u64, out: *mut u64) -> c_int {
    guard(-EIO, || {
        if out.is_null() {
            return -EINVAL;
        }
        match upcall::window(SockHandle(handle)) {
            Ok(w) => {
                // SAFETY: non-null and valid per the contract.
                unsafe { *out = w };
                0
            }
            Err(e) => -e,
        }
    })
}

/// Upcall: a datagram sent to `addr` (`addr_len` bytes: a `sockaddr_in`
/// or `sockaddr_in6` naming a multicast or broadcast address) reached
/// socket `handle`, bound to its port: 1 when the socket takes it (a
/// member of the group, or not a member with IP_MULTICAST_ALL on while
/// this host is; every socket for a broadcast), 0 when not or when the
/// socket is gone or `addr` is no IP address, -EINVAL for a NULL `addr`
/// or a length under 2 or over 128. A backend gives such a datagram to
/// every socket of the port that takes it (`usock_upcall_deliver`).
#[no_mangle]
pub unsafe extern "C" fn usock_upcall_takes_group(
    handle: u64,
    addr: *const u8,
    addr_len: u32,
) -> c_int {
    guard(-EIO, || {
        if addr.is_null() || addr_len as usize > crate::addr::ADDR_MAX {
            return -EINVAL;
        }
        // SAFETY: non-null, and `addr_len` bytes per the contract.
        let b = unsafe { core::slice::from_raw_parts(addr, addr_len as usize) };
        match crate::addr::SockAddr::from_bytes(b) {
            Some(a) => c_int::from(upcall::takes_group(SockHandle(handle), &a)),
            None => -EINVAL,
        }
    })
}

/// Encodes a fragment in the portable byte format (see the header's
/// description of the layout) into `out`. Returns the number of bytes
/// written, -ENOBUFS when `cap` is too small, -EINVAL when malformed.
#[no_mangle]
pub unsafe extern "C" fn usock_frag_encode(
    frag: *const usock_fragment,
    out: *mut u8,
    cap: usize,
) -> i64 {
    guard(-(EIO as i64), || {
        if frag.is_null() || (cap > 0 && out.is_null()) {
            return -(EINVAL as i64);
        }
        // SAFETY: non-null and valid per the contract.
        let f = match unsafe { frag_from_c(&*frag) } {
            Ok(f) => f,
            Err(e) => return -(e as i64),
        };
        let buf: &mut [u8] = if cap == 0 {
            &mut []
        } else {
            // SAFETY: `out` is valid for `cap` bytes per the contract.
            unsafe { core::slice::from_raw_parts_mut(out, cap) }
        };
        match wire::encode(&f, buf) {
            Ok(n) => n as i64,
            Err(wire::WireError::Short { .. }) => -(ENOBUFS as i64),
            Err(_) => -(EINVAL as i64),
        }
    })
}

/// Decodes one fragment from `buf`. On success returns the number of bytes
/// it used and fills `*out`, whose `data`/`addr` point into `buf`. Returns 0
/// when `buf` holds only part of a fragment (read more), -EINVAL when the
/// bytes are malformed (the stream cannot be trusted further).
#[no_mangle]
pub unsafe extern "C" fn usock_frag_decode(
    buf: *const u8,
    len: usize,
    out: *mut usock_fragment,
) -> i64 {
    guard(-(EIO as i64), || {
        if out.is_null() || (len > 0 && buf.is_null()) {
            return -(EINVAL as i64);
        }
        let b: &[u8] = if len == 0 {
            &[]
        } else {
            // SAFETY: valid for `len` bytes per the contract.
            unsafe { core::slice::from_raw_parts(buf, len) }
        };
        match wire::decode(b) {
            Ok((f, used)) => {
                // SAFETY: non-null and valid per the contract.
                unsafe { *out = frag_to_c(&f) };
                used as i64
            }
            Err(wire::WireError::Short { .. }) => 0,
            Err(_) => -(EINVAL as i64),
        }
    })
}

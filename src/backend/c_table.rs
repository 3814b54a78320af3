//! Backends written in C: the function table they register and the adapter
//! that makes it a [`Backend`]. The C entry points (registration, the
//! upcalls, the fragment encoding) are in `api::backend_ffi`.
//!
//! Rules for a C backend (repeated in the header):
//! - no operation blocks; long work completes later through an upcall;
//! - upcalls may be made from any thread, also from inside an operation;
//! - every operation returns 0 (or a documented positive value) on success
//!   and a negated errno on failure;
//! - the table and `ctx` must stay valid until the backend is unregistered
//!   and its last socket closed; the table is copied at registration.

#![allow(non_camel_case_types)]
#![allow(clippy::missing_safety_doc)]

use alloc::sync::Arc;
use core::any::Any;
use core::ffi::{c_char, c_int, c_void, CStr};

use crate::addr::{SockAddr, ADDR_MAX};
use crate::backend::contract::*;
use crate::backend::registry;
use crate::backend::upcall;
use crate::consts::*;

/// Version of `struct usock_backend_ops` this library understands.
pub const USOCK_BACKEND_ABI_VERSION: u32 = 1;

/// Fragment kind: a piece of a byte stream.
pub const USOCK_FRAG_STREAM: u32 = 1;
/// Fragment kind: a piece of a datagram.
pub const USOCK_FRAG_DGRAM: u32 = 2;
/// Fragment flag: end of stream after this fragment's bytes.
pub const USOCK_FLAG_FIN: u32 = 1;
/// Fragment flag: the connection is reset (no payload).
pub const USOCK_FLAG_RST: u32 = 2;

/// `claim` is asked at bind().
pub const USOCK_CLAIM_BIND: c_int = 1;
/// `claim` is asked at connect().
pub const USOCK_CLAIM_CONNECT: c_int = 2;
/// `claim` is asked at the first sendto() of an unbound socket.
pub const USOCK_CLAIM_SENDTO: c_int = 3;
/// `claim` is asked at listen() of an unbound socket.
pub const USOCK_CLAIM_LISTEN: c_int = 4;

/// A fragment as C sees it. Stream: `offset` is the absolute byte offset.
/// Datagram: `offset` is the datagram id, `dgram_offset`/`dgram_total` place
/// the bytes in it. `addr` is the destination (frontend to backend, when
/// not connected) or the source (backend to frontend, datagrams).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct usock_fragment {
    /// `USOCK_FRAG_STREAM` or `USOCK_FRAG_DGRAM`.
    pub kind: u32,
    /// `USOCK_FLAG_*` bits.
    pub flags: u32,
    /// Opaque connection id, free for the backend's use.
    pub conn: u64,
    /// Stream offset or datagram id.
    pub offset: u64,
    /// Offset inside the datagram.
    pub dgram_offset: u32,
    /// Total length of the datagram.
    pub dgram_total: u32,
    /// Number of payload bytes at `data`.
    pub len: u32,
    /// Number of address bytes at `addr` (0 when none).
    pub addr_len: u32,
    /// Payload.
    pub data: *const u8,
    /// Address (`struct sockaddr` layout) or NULL.
    pub addr: *const u8,
}

/// A socket as a C backend operation sees it.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct usock_sock {
    /// Handle for upcalls.
    pub handle: u64,
    /// What the backend's `claim` (or `socketpair`, or
    /// `usock_upcall_incoming`) stored for this socket.
    pub ctx: *mut c_void,
    /// Domain, type, protocol.
    pub info: SockInfo,
    /// Options that matter to addressing.
    pub opts: SockOpts,
}

/// The function table of a C backend. Optional entries may be NULL.
///
/// Rules every backend keeps:
/// - No operation blocks. A connect completes later through
///   `usock_upcall_connected` or `usock_upcall_refused`.
/// - Upcalls may be made from any thread, also from inside an operation;
///   the library holds none of its locks while it calls an operation.
/// - An incoming connection is announced with `usock_upcall_incoming` (which
///   names the new socket) and joins the accept queue at
///   `usock_upcall_connected` on that new socket.
/// - Stream bytes are never delivered at or beyond the receiver's window:
///   `usock_upcall_window` reads it, the `window` operation reports it when
///   it moves; the sender may send up to the credit granted with
///   `usock_upcall_credit`. Datagrams a receiver cannot hold are dropped.
/// - Order and reliability are the backend's job: fragments may arrive out
///   of order or repeated, never lost or corrupted.
/// - Every operation returns 0 (or a documented positive value) on success,
///   a negated errno on failure. The table is copied at registration; `ctx`
///   must stay valid until the last socket the backend carries is closed.
///
/// The portable byte encoding (`usock_frag_encode`/`usock_frag_decode`): a
/// 40-byte header, integers big-endian: magic "US" (2), version 1 (1), kind
/// 1 stream / 2 datagram (1), flags FIN=1 RST=2 (2), addr_len (2), conn (8),
/// offset or datagram id (8), dgram_offset (4), dgram_total (4), len (4),
/// CRC-32C of header (this field zero), address and payload (4); then
/// addr_len address bytes and len payload bytes.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct usock_backend_ops {
    /// Must be `USOCK_BACKEND_ABI_VERSION`.
    pub abi_version: u32,
    /// A short name (copied at registration), or NULL.
    pub name: *const c_char,
    /// Returns 1 if the backend can carry sockets like `info`.
    pub supports: Option<unsafe extern "C" fn(ctx: *mut c_void, info: *const SockInfo) -> c_int>,
    /// Selection: returns 1 and stores a per-socket context in `*sock_ctx`
    /// to claim the socket, 0 to decline, or a negated errno to refuse.
    pub claim: Option<
        unsafe extern "C" fn(
            ctx: *mut c_void,
            handle: u64,
            info: *const SockInfo,
            op: c_int,
            addr: *const u8,
            addr_len: u32,
            sock_ctx: *mut *mut c_void,
        ) -> c_int,
    >,
    /// Binds; writes the bound address (at most 128 bytes) to `out` and its
    /// length to `*out_len`.
    pub bind: Option<
        unsafe extern "C" fn(
            ctx: *mut c_void,
            s: *const usock_sock,
            addr: *const u8,
            addr_len: u32,
            out: *mut u8,
            out_len: *mut u32,
        ) -> c_int,
    >,
    /// Starts listening.
    pub listen:
        Option<unsafe extern "C" fn(ctx: *mut c_void, s: *const usock_sock, backlog: u32) -> c_int>,
    /// Starts a connect (stream) or sets the default peer (datagram).
    pub connect: Option<
        unsafe extern "C" fn(
            ctx: *mut c_void,
            s: *const usock_sock,
            addr: *const u8,
            addr_len: u32,
        ) -> c_int,
    >,
    /// The application accepted a connection from this listener.
    pub accepted: Option<unsafe extern "C" fn(ctx: *mut c_void, s: *const usock_sock)>,
    /// Hook on shutdown().
    pub shutdown:
        Option<unsafe extern "C" fn(ctx: *mut c_void, s: *const usock_sock, how: c_int) -> c_int>,
    /// Hook on setsockopt(): 0 accepts, a negated errno refuses.
    pub setsockopt: Option<
        unsafe extern "C" fn(
            ctx: *mut c_void,
            s: *const usock_sock,
            level: c_int,
            name: c_int,
            val: *const u8,
            len: u32,
        ) -> c_int,
    >,
    /// Carries one fragment. Required.
    pub write: Option<
        unsafe extern "C" fn(
            ctx: *mut c_void,
            s: *const usock_sock,
            f: *const usock_fragment,
        ) -> c_int,
    >,
    /// The receiver's window moved to `limit` (stream). On a datagram
    /// socket: a read made room after a delivery was refused with -ENOBUFS
    /// (`limit` is the buffer's size); a kept datagram may be offered again.
    pub window: Option<unsafe extern "C" fn(ctx: *mut c_void, s: *const usock_sock, limit: u64)>,
    /// Writes the local address; returns 0, or a negated errno if none.
    pub local_addr: Option<
        unsafe extern "C" fn(
            ctx: *mut c_void,
            s: *const usock_sock,
            out: *mut u8,
            out_len: *mut u32,
        ) -> c_int,
    >,
    /// Writes the peer address; returns 0, or a negated errno if none.
    pub peer_addr: Option<
        unsafe extern "C" fn(
            ctx: *mut c_void,
            s: *const usock_sock,
            out: *mut u8,
            out_len: *mut u32,
        ) -> c_int,
    >,
    /// socketpair(): connects two fresh sockets, storing their contexts.
    pub socketpair: Option<
        unsafe extern "C" fn(
            ctx: *mut c_void,
            a: u64,
            b: u64,
            info: *const SockInfo,
            ctx_a: *mut *mut c_void,
            ctx_b: *mut *mut c_void,
        ) -> c_int,
    >,
    /// The socket is gone; free its context.
    pub close: Option<unsafe extern "C" fn(ctx: *mut c_void, s: *const usock_sock)>,
}

/// A C backend's per-socket context.
struct CSock(*mut c_void);
// SAFETY: the backend contract requires C backends to accept calls for a
// socket from any thread; the pointer is only handed back to them.
unsafe impl Send for CSock {}
// SAFETY: as above.
unsafe impl Sync for CSock {}

struct CBackend {
    ops: usock_backend_ops,
    ctx: *mut c_void,
    name: alloc::string::String,
}
// SAFETY: as for CSock: a registered C backend is callable from any thread.
unsafe impl Send for CBackend {}
// SAFETY: as above.
unsafe impl Sync for CBackend {}

fn neg(r: c_int) -> Result<c_int, Errno> {
    if r < 0 {
        Err(r.checked_neg().unwrap_or(EINVAL))
    } else {
        Ok(r)
    }
}

impl CBackend {
    fn csock(&self, s: &SockRef<'_>) -> usock_sock {
        let ctx = (s.state.as_ref() as &dyn Any)
            .downcast_ref::<CSock>()
            .map_or(core::ptr::null_mut(), |c| c.0);
        usock_sock {
            handle: s.handle.0,
            ctx,
            info: s.info,
            opts: s.opts,
        }
    }

    fn addr_out(
        &self,
        f: Option<unsafe extern "C" fn(*mut c_void, *const usock_sock, *mut u8, *mut u32) -> c_int>,
        s: &SockRef<'_>,
    ) -> Option<SockAddr> {
        let f = f?;
        let cs = self.csock(s);
        let mut buf = [0u8; ADDR_MAX];
        let mut len = ADDR_MAX as u32;
        // SAFETY: calls the registered C function with valid pointers.
        let r = unsafe { f(self.ctx, &cs, buf.as_mut_ptr(), &mut len) };
        if r < 0 {
            return None;
        }
        SockAddr::from_bytes(buf.get(..len as usize)?)
    }
}

/// The C view of a fragment; its data and address point into `f`.
pub fn frag_to_c(f: &Fragment<'_>) -> usock_fragment {
    usock_fragment {
        kind: match f.header.kind {
            FragKind::Stream => USOCK_FRAG_STREAM,
            FragKind::Dgram => USOCK_FRAG_DGRAM,
        },
        flags: f.header.flags as u32,
        conn: f.header.conn,
        offset: f.header.offset,
        dgram_offset: f.header.dgram_offset,
        dgram_total: f.header.dgram_total,
        len: f.payload.len() as u32,
        addr_len: f.addr.len() as u32,
        data: f.payload.as_ptr(),
        addr: if f.addr.is_empty() {
            core::ptr::null()
        } else {
            f.addr.as_ptr()
        },
    }
}

/// Checks a C fragment and views it as a Rust one.
///
/// # Safety
/// `f.data` must be valid for `f.len` bytes and `f.addr` for `f.addr_len`.
pub unsafe fn frag_from_c<'a>(f: &usock_fragment) -> Result<Fragment<'a>, Errno> {
    let kind = match f.kind {
        USOCK_FRAG_STREAM => FragKind::Stream,
        USOCK_FRAG_DGRAM => FragKind::Dgram,
        _ => return Err(EINVAL),
    };
    if f.flags > 0xffff
        || f.addr_len as usize > ADDR_MAX
        || (f.len > 0 && f.data.is_null())
        || (f.addr_len > 0 && f.addr.is_null())
    {
        return Err(EINVAL);
    }
    let payload: &[u8] = if f.len == 0 {
        &[]
    } else {
        // SAFETY: non-null and valid for `len` bytes per the caller.
        unsafe { core::slice::from_raw_parts(f.data, f.len as usize) }
    };
    let addr: &[u8] = if f.addr_len == 0 {
        &[]
    } else {
        // SAFETY: non-null and valid for `addr_len` bytes per the caller.
        unsafe { core::slice::from_raw_parts(f.addr, f.addr_len as usize) }
    };
    Ok(Fragment {
        header: FragHeader {
            kind,
            flags: f.flags as u16,
            conn: f.conn,
            offset: f.offset,
            dgram_offset: f.dgram_offset,
            dgram_total: f.dgram_total,
            len: f.len,
            addr_len: f.addr_len as u16,
        },
        addr,
        payload,
    })
}

impl Backend for CBackend {
    fn name(&self) -> &str {
        &self.name
    }

    fn supports(&self, info: &SockInfo) -> bool {
        match self.ops.supports {
            // SAFETY: calls the registered C function with a valid pointer.
            Some(f) => unsafe { f(self.ctx, info) == 1 },
            None => true,
        }
    }

    fn claim(
        &self,
        handle: SockHandle,
        info: &SockInfo,
        op: ClaimOp,
        addr: &SockAddr,
    ) -> Result<Option<SockState>, Errno> {
        let Some(f) = self.ops.claim else {
            return Ok(None);
        };
        let mut sc: *mut c_void = core::ptr::null_mut();
        let a = addr.as_bytes();
        // SAFETY: calls the registered C function with valid pointers.
        let r = neg(unsafe {
            f(
                self.ctx,
                handle.0,
                info,
                op as c_int,
                a.as_ptr(),
                a.len() as u32,
                &mut sc,
            )
        })?;
        Ok(if r == 1 {
            Some(Arc::new(CSock(sc)))
        } else {
            None
        })
    }

    fn bind(&self, sock: SockRef<'_>, addr: &SockAddr) -> Result<SockAddr, Errno> {
        let Some(f) = self.ops.bind else {
            return Err(EOPNOTSUPP);
        };
        let cs = self.csock(&sock);
        let a = addr.as_bytes();
        let mut out = [0u8; ADDR_MAX];
        let mut len = ADDR_MAX as u32;
        // SAFETY: calls the registered C function with valid pointers.
        neg(unsafe {
            f(
                self.ctx,
                &cs,
                a.as_ptr(),
                a.len() as u32,
                out.as_mut_ptr(),
                &mut len,
            )
        })?;
        SockAddr::from_bytes(out.get(..len as usize).ok_or(EINVAL)?).ok_or(EINVAL)
    }

    fn listen(&self, sock: SockRef<'_>, backlog: u32) -> Result<(), Errno> {
        let Some(f) = self.ops.listen else {
            return Err(EOPNOTSUPP);
        };
        let cs = self.csock(&sock);
        // SAFETY: calls the registered C function with a valid pointer.
        neg(unsafe { f(self.ctx, &cs, backlog) }).map(|_| ())
    }

    fn connect(&self, sock: SockRef<'_>, addr: &SockAddr) -> Result<(), Errno> {
        let Some(f) = self.ops.connect else {
            return Err(EOPNOTSUPP);
        };
        let cs = self.csock(&sock);
        let a = addr.as_bytes();
        // SAFETY: calls the registered C function with valid pointers.
        neg(unsafe { f(self.ctx, &cs, a.as_ptr(), a.len() as u32) }).map(|_| ())
    }

    fn accepted(&self, sock: SockRef<'_>) {
        if let Some(f) = self.ops.accepted {
            let cs = self.csock(&sock);
            // SAFETY: calls the registered C function with a valid pointer.
            unsafe { f(self.ctx, &cs) }
        }
    }

    fn shutdown(&self, sock: SockRef<'_>, how: i32) -> Result<(), Errno> {
        let Some(f) = self.ops.shutdown else {
            return Ok(());
        };
        let cs = self.csock(&sock);
        // SAFETY: calls the registered C function with a valid pointer.
        neg(unsafe { f(self.ctx, &cs, how) }).map(|_| ())
    }

    fn setsockopt(
        &self,
        sock: SockRef<'_>,
        level: i32,
        name: i32,
        value: &[u8],
    ) -> Result<(), Errno> {
        let Some(f) = self.ops.setsockopt else {
            return Ok(());
        };
        let cs = self.csock(&sock);
        // SAFETY: calls the registered C function with valid pointers.
        neg(unsafe {
            f(
                self.ctx,
                &cs,
                level,
                name,
                value.as_ptr(),
                value.len() as u32,
            )
        })
        .map(|_| ())
    }

    fn write(&self, sock: SockRef<'_>, frag: &Fragment<'_>) -> Result<(), Errno> {
        let Some(f) = self.ops.write else {
            return Err(EOPNOTSUPP);
        };
        let cs = self.csock(&sock);
        let cf = frag_to_c(frag);
        // SAFETY: calls the registered C function with valid pointers that
        // outlive the call.
        neg(unsafe { f(self.ctx, &cs, &cf) }).map(|_| ())
    }

    fn window(&self, sock: SockRef<'_>, limit: u64) {
        if let Some(f) = self.ops.window {
            let cs = self.csock(&sock);
            // SAFETY: calls the registered C function with a valid pointer.
            unsafe { f(self.ctx, &cs, limit) }
        }
    }

    fn local_addr(&self, sock: SockRef<'_>) -> Option<SockAddr> {
        self.addr_out(self.ops.local_addr, &sock)
    }

    fn peer_addr(&self, sock: SockRef<'_>) -> Option<SockAddr> {
        self.addr_out(self.ops.peer_addr, &sock)
    }

    fn socketpair(
        &self,
        a: SockHandle,
        b: SockHandle,
        info: &SockInfo,
    ) -> Result<(SockState, SockState), Errno> {
        let Some(f) = self.ops.socketpair else {
            return Err(EOPNOTSUPP);
        };
        let (mut ca, mut cb) = (core::ptr::null_mut(), core::ptr::null_mut());
        // SAFETY: calls the registered C function with valid pointers.
        neg(unsafe { f(self.ctx, a.0, b.0, info, &mut ca, &mut cb) })?;
        Ok((Arc::new(CSock(ca)), Arc::new(CSock(cb))))
    }

    fn close(&self, sock: SockRef<'_>) {
        if let Some(f) = self.ops.close {
            let cs = self.csock(&sock);
            // SAFETY: calls the registered C function with a valid pointer.
            unsafe { f(self.ctx, &cs) }
        }
    }
}

/// `usock_upcall_incoming`: the socket accept() will return, with the C
/// backend's `sock_ctx` as its state.
pub fn incoming(listener: SockHandle, sock_ctx: *mut c_void) -> Result<SockHandle, Errno> {
    upcall::incoming(listener, Arc::new(CSock(sock_ctx)))
}

/// Registers a C backend (the table is copied); its id, or EINVAL for a
/// wrong `abi_version` or no `write`.
///
/// # Safety
/// `ctx`, and `ops.name` when not NULL, must stay valid as the contract
/// says (until the backend is unregistered and its last socket closed).
pub unsafe fn register(
    ops: usock_backend_ops,
    ctx: *mut c_void,
    priority: i32,
) -> Result<u64, Errno> {
    if ops.abi_version != USOCK_BACKEND_ABI_VERSION || ops.write.is_none() {
        return Err(EINVAL);
    }
    let name = if ops.name.is_null() {
        alloc::string::String::from("c-backend")
    } else {
        // SAFETY: a NUL-terminated string per the contract.
        unsafe { CStr::from_ptr(ops.name) }
            .to_string_lossy()
            .into_owned()
    };
    Ok(registry::register(
        Arc::new(CBackend { ops, ctx, name }),
        priority,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_constants_match_the_rust_enum() {
        for (c, op) in [
            (USOCK_CLAIM_BIND, ClaimOp::Bind),
            (USOCK_CLAIM_CONNECT, ClaimOp::Connect),
            (USOCK_CLAIM_SENDTO, ClaimOp::SendTo),
            (USOCK_CLAIM_LISTEN, ClaimOp::Listen),
        ] {
            assert_eq!(ClaimOp::from_i32(c), Some(op));
        }
    }
}

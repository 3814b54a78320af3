//! Backends written in C: the function table they register, the adapter
//! that makes it a [`Backend`], the upcalls they call, and the portable
//! fragment encoding.
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

use super::ffi::guard;
use crate::addr::{SockAddr, ADDR_MAX};
use crate::backend::contract::*;
use crate::backend::upcall;
use crate::backend::{registry, wire};
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

fn frag_to_c(f: &Fragment<'_>) -> usock_fragment {
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
unsafe fn frag_from_c<'a>(f: &usock_fragment) -> Result<Fragment<'a>, Errno> {
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
        if ops.abi_version != USOCK_BACKEND_ABI_VERSION || ops.write.is_none() {
            return -(EINVAL as i64);
        }
        let name = if ops.name.is_null() {
            alloc::string::String::from("c-backend")
        } else {
            // SAFETY: a NUL-terminated string per the contract.
            unsafe { CStr::from_ptr(ops.name) }
                .to_string_lossy()
                .into_owned()
        };
        registry::register(Arc::new(CBackend { ops, ctx, name }), priority) as i64
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
        match upcall::incoming(SockHandle(listener), Arc::new(CSock(sock_ctx))) {
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

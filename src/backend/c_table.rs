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
/// Fragment flag: the fragment's last byte is urgent data (MSG_OOB).
pub const USOCK_FLAG_URG: u32 = 4;
/// Fragment flag: a record ends with the fragment's last byte (an empty
/// fragment with it is an empty record): AF_UNIX `SOCK_SEQPACKET`.
pub const USOCK_FLAG_EOR: u32 = 8;

/// `claim` is asked at bind().
pub const USOCK_CLAIM_BIND: c_int = 1;
/// `claim` is asked at connect().
pub const USOCK_CLAIM_CONNECT: c_int = 2;
/// `claim` is asked at the first sendto() of an unbound socket.
pub const USOCK_CLAIM_SENDTO: c_int = 3;
/// `claim` is asked at listen() of an unbound socket (`addr` is then the
/// family's unspecified address: all zero, port 0).
pub const USOCK_CLAIM_LISTEN: c_int = 4;
/// `claim`'s op for a socketpair() (never passed to `claim`: pairs go to
/// the `socketpair` operation of the first backend that supports them).
pub const USOCK_CLAIM_PAIR: c_int = 5;

/// Largest address the library passes or accepts (`struct
/// sockaddr_storage`): the room behind `out` in `bind`, `local_addr` and
/// `peer_addr`.
pub const USOCK_ADDR_MAX: u32 = 128;
/// Largest payload of one fragment the library hands `write` (a larger
/// send() becomes several fragments); a backend may split further.
pub const USOCK_FRAG_MAX: u32 = 65536;
/// Size of the header of the portable encoding (`usock_frag_encode`): a
/// buffer of `USOCK_FRAG_HEADER_LEN + addr_len + len` bytes holds a
/// fragment.
pub const USOCK_FRAG_HEADER_LEN: u32 = 40;

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

/// The function table of a C backend. Only `write` is required; for every
/// other entry the docs say what NULL does. The same rules are in the Rust
/// trait's docs (`backend::contract`) and the README.
///
/// **Operations and threads.** No operation blocks: work that takes time
/// (a connect, a full peer) completes later through an upcall. Upcalls may
/// be made from any thread, also from inside an operation: the library
/// holds none of its locks while it calls one. The library does not
/// serialise a socket's operations: two threads may be in `write` at once,
/// `window` runs beside `write`, and `close` may be called while another
/// thread's `write` on the same socket has not returned (a program that
/// closes a socket another thread uses); keep the per-socket context alive
/// until both have returned. What a backend stores before an upcall that
/// names a context (`claim`'s `*sock_ctx`, `usock_upcall_incoming`) must be
/// published with release/acquire ordering if other threads of the backend
/// read it: the library's own synchronisation is not visible to tools like
/// TSan when the library is not instrumented.
///
/// **Return values.** 0 (or a documented positive value) on success, a
/// negated errno on failure: that errno is what the application's call
/// returns.
///
/// **Selection.** At the first call that names an address (bind, connect,
/// the first sendto, listen of an unbound socket) the library asks each
/// backend, by descending priority (equal priorities in registration
/// order), that `supports` the socket: `claim` returns 1 to take it, 0 to
/// let the next backend be asked, or a negated errno to fail the call (no
/// other backend is asked). A claimed socket stays with the backend until
/// it is closed, even if the call that claimed it then fails; `close` is
/// called exactly once for every claimed socket (also when two threads
/// race to claim one socket and this claim lost), for every socket made by
/// `socketpair`, and for every socket made by `usock_upcall_incoming`,
/// accepted or not.
///
/// **Binding.** `bind` is called only for the application's bind(); an
/// explicit port 0 asks the backend to choose one. A socket that connects
/// or sends unbound is bound by the backend itself as it sees fit (the
/// library calls no `bind` then) and reports that address through
/// `local_addr`. The backend enforces its address rules (EADDRINUSE,
/// SO_REUSEADDR/SO_REUSEPORT in `usock_sock.opts`).
///
/// **The stream handshake.** `connect` returns 0 once the attempt has
/// started. The listener's side announces the new connection with
/// `usock_upcall_incoming` (the backend's context for the new socket; it
/// is never passed to `claim`), and both sides are then completed the same
/// way: read each receiver's window with `usock_upcall_window`, grant it to
/// the other side's sender with `usock_upcall_credit` (a sender's credit is
/// 0 until then: send() waits), then call `usock_upcall_connected` for the
/// new socket (it joins the accept queue) and for the connector (connect()
/// returns). Deliver fragments to a socket once its
/// `usock_upcall_connected` has returned (keep what arrives earlier). A
/// refusal is `usock_upcall_refused(connector, ECONNREFUSED)`
/// (any positive errno: it is what connect() or SO_ERROR reports);
/// `usock_upcall_refused` on a socket made by `usock_upcall_incoming`
/// before it was connected abandons it (`close` follows). A full accept
/// queue makes `usock_upcall_incoming` return -EAGAIN: refuse, or offer
/// again after the `accepted` operation (called on the listener).
///
/// **Stream data.** Stream bytes are fragments at absolute offsets from 0.
/// `write` must accept every fragment within the credit it granted; its
/// error is send()'s (the range is taken back when no later one was sent).
/// End of stream is a fragment with `USOCK_FLAG_FIN` at the end offset,
/// sent by the library itself at shutdown(SHUT_WR) or close; a reset is a
/// fragment with `USOCK_FLAG_RST`, sent at close with unread data or
/// SO_LINGER {1, 0}. The `shutdown` operation is a hook beside them, not
/// the way they travel. A receiver never gets bytes at or beyond its
/// window: `usock_upcall_deliver` refuses them with -ENOBUFS, and the
/// `window` operation says when the window moved (offer them again then).
/// `usock_upcall_window` and `usock_upcall_credit` speak the same unit: an
/// absolute offset one past the last byte the receiver can take.
///
/// **Datagrams.** A datagram is one or more fragments with one id (the
/// `offset` field), each placing its bytes at `dgram_offset` in a datagram
/// of `dgram_total` bytes. Ids are unique among the sockets of one process;
/// a backend that brings datagrams from several processes to one receiver
/// keeps them unique (for example by renumbering per receiver). A
/// datagram socket needs no handshake (`connect` only records the peer;
/// `write` then gets `addr` NULL or the peer's address). Datagrams a
/// receiver cannot hold are refused by `usock_upcall_deliver` with
/// -ENOBUFS: a backend with UDP semantics drops them; one with AF_UNIX
/// semantics keeps them and offers them again at the `window` operation.
/// A backend that cannot take a datagram now returns -EAGAIN from `write`:
/// a blocking sender then waits for `usock_upcall_writable` (or retries
/// every millisecond), a non-blocking one gets EAGAIN.
///
/// **Order and reliability** are the backend's job: fragments may reach
/// `usock_upcall_deliver` out of order or repeated (the receive buffer
/// sorts stream bytes by offset, and datagram pieces by id), never lost or
/// corrupted.
///
/// **Buffers.** A fragment's `data` and `addr` are valid only during the
/// `write` call: copy what you keep. `usock_upcall_deliver` copies what it
/// takes before it returns. After `close`, every upcall naming the socket's
/// handle returns -EBADF.
///
/// **Lifetime.** The table is copied at registration; `ctx` must stay
/// valid until the backend is unregistered and its last socket closed
/// (`usock_backend_unregister` stops new claims; sockets the backend
/// carries keep it until they close).
///
/// The portable byte encoding (`usock_frag_encode`/`usock_frag_decode`): a
/// 40-byte header (`USOCK_FRAG_HEADER_LEN`), integers big-endian: magic
/// "US" (2), version 1 (1), kind 1 stream / 2 datagram (1), flags FIN=1
/// RST=2 URG=4 EOR=8 (2), addr_len (2), conn (8), offset or datagram id (8),
/// dgram_offset (4), dgram_total (4), len (4), CRC-32C of header (this
/// field zero), address and payload (4); then addr_len address bytes and
/// len payload bytes. `conn` is never interpreted by the library: it is
/// 0 in fragments it writes and free for the backend's use.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct usock_backend_ops {
    /// Must be `USOCK_BACKEND_ABI_VERSION`.
    pub abi_version: u32,
    /// A short name (copied at registration), or NULL.
    pub name: *const c_char,
    /// Returns 1 if the backend can carry sockets like `info` (any other
    /// value: it cannot). NULL: every socket.
    pub supports: Option<unsafe extern "C" fn(ctx: *mut c_void, info: *const SockInfo) -> c_int>,
    /// Selection (see above): returns 1 and stores a per-socket context in
    /// `*sock_ctx` to claim the socket, 0 to let the next backend be asked,
    /// or a negated errno to fail the call. `op` is a `USOCK_CLAIM_*`;
    /// `addr` is the address the call names. NULL: the backend never
    /// claims a socket (it only makes pairs through `socketpair`).
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
    /// The application's bind() (see Binding above). `*out_len` is the room
    /// at `out` (`USOCK_ADDR_MAX`) on entry; write the bound address (port 0
    /// replaced by the chosen port) and set `*out_len` to its length.
    /// NULL: bind() fails with EOPNOTSUPP.
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
    /// listen(): the socket accepts connections from now on (`backlog` is
    /// already capped at SOMAXCONN; the library enforces it through
    /// `usock_upcall_incoming`). A second listen() only changes the backlog
    /// and does not call it. NULL: listen() fails with EOPNOTSUPP.
    pub listen:
        Option<unsafe extern "C" fn(ctx: *mut c_void, s: *const usock_sock, backlog: u32) -> c_int>,
    /// Stream: starts a connect and returns 0 (it completes through the
    /// handshake above), or a negated errno at once (-ECONNREFUSED when
    /// nothing listens, -EAGAIN for a full AF_UNIX listener: a blocking
    /// connect() asks again). Datagram: records the default peer; no
    /// upcall follows. NULL: connect() fails with EOPNOTSUPP.
    pub connect: Option<
        unsafe extern "C" fn(
            ctx: *mut c_void,
            s: *const usock_sock,
            addr: *const u8,
            addr_len: u32,
        ) -> c_int,
    >,
    /// Called on the listener after the application accepted a connection
    /// from it (room in the accept queue). NULL: nothing is called.
    pub accepted: Option<unsafe extern "C" fn(ctx: *mut c_void, s: *const usock_sock)>,
    /// Hook on shutdown() (`how` is SHUT_RD 0, SHUT_WR 1 or SHUT_RDWR 2),
    /// after the library's own checks; the end of stream itself travels as
    /// a FIN fragment through `write`. A negated errno fails shutdown().
    /// NULL: accepted.
    pub shutdown:
        Option<unsafe extern "C" fn(ctx: *mut c_void, s: *const usock_sock, how: c_int) -> c_int>,
    /// Hook on setsockopt() of a claimed socket, after the library has
    /// checked the value and before it stores it: 0 accepts, a negated
    /// errno fails the call (nothing is stored). NULL: accepted.
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
    /// Carries one fragment (see Stream data, Datagrams and Buffers
    /// above): 0 when the backend took it whole (there is no partial
    /// acceptance), a negated errno otherwise. Required.
    pub write: Option<
        unsafe extern "C" fn(
            ctx: *mut c_void,
            s: *const usock_sock,
            f: *const usock_fragment,
        ) -> c_int,
    >,
    /// Stream: the receiver's window moved to `limit` (an absolute offset,
    /// as `usock_upcall_credit` takes it): grant it to the peer's sender
    /// and offer again what `usock_upcall_deliver` refused. Datagram: a
    /// read made room after a delivery was refused with -ENOBUFS (`limit`
    /// is the buffer's size). Upcalls, delivering included, may be made
    /// from inside it. NULL: nothing is called (the backend must then
    /// find out about room by polling `usock_upcall_window`).
    pub window: Option<unsafe extern "C" fn(ctx: *mut c_void, s: *const usock_sock, limit: u64)>,
    /// getsockname(): writes the local address (`*out_len` is the room on
    /// entry, `USOCK_ADDR_MAX`) and its length; returns 0, or a negated
    /// errno when there is none (the library then reports the family's
    /// unspecified address, as Linux does for an unbound socket). NULL: no
    /// address.
    pub local_addr: Option<
        unsafe extern "C" fn(
            ctx: *mut c_void,
            s: *const usock_sock,
            out: *mut u8,
            out_len: *mut u32,
        ) -> c_int,
    >,
    /// getpeername(): as `local_addr`, for the peer. With none, or NULL,
    /// getpeername() fails with ENOTCONN.
    pub peer_addr: Option<
        unsafe extern "C" fn(
            ctx: *mut c_void,
            s: *const usock_sock,
            out: *mut u8,
            out_len: *mut u32,
        ) -> c_int,
    >,
    /// socketpair(): connects the two fresh sockets `a` and `b` before it
    /// returns (grant each side credit with `usock_upcall_window` and
    /// `usock_upcall_credit`, then `usock_upcall_connected` on both) and
    /// stores their contexts. -EOPNOTSUPP lets the next backend that
    /// supports the socket be asked. NULL: as -EOPNOTSUPP.
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
    /// The socket is gone (see Selection for when it is called): free its
    /// context once no other operation on it is running. Called once per
    /// socket. NULL: nothing is called.
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

    /// The header's sizes are literals (cbindgen writes no computed
    /// constant): they must be the Rust ones.
    #[test]
    fn size_constants_match_the_rust_ones() {
        assert_eq!(USOCK_ADDR_MAX as usize, crate::addr::ADDR_MAX);
        assert_eq!(USOCK_FRAG_MAX as usize, FRAG_MAX);
        use crate::backend::wire::{FLAG_EOR, FLAG_FIN, FLAG_RST, FLAG_URG};
        assert_eq!(
            [
                USOCK_FLAG_FIN,
                USOCK_FLAG_RST,
                USOCK_FLAG_URG,
                USOCK_FLAG_EOR
            ],
            [FLAG_FIN, FLAG_RST, FLAG_URG, FLAG_EOR].map(u32::from)
        );
        assert_eq!(
            USOCK_FRAG_HEADER_LEN as usize,
            crate::backend::wire::HEADER_LEN
        );
    }

    #[test]
    fn claim_constants_match_the_rust_enum() {
        for (c, op) in [
            (USOCK_CLAIM_BIND, ClaimOp::Bind),
            (USOCK_CLAIM_CONNECT, ClaimOp::Connect),
            (USOCK_CLAIM_SENDTO, ClaimOp::SendTo),
            (USOCK_CLAIM_LISTEN, ClaimOp::Listen),
            (USOCK_CLAIM_PAIR, ClaimOp::Pair),
        ] {
            assert_eq!(ClaimOp::from_i32(c), Some(op));
        }
    }
}

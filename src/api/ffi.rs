//! Pointer handling at the C boundary: errno, the panic boundary, and
//! turning C pointers into checked Rust values. Every raw pointer from C is
//! read or written only here and in the exported functions.

use crate::addr::{SockAddr, ADDR_MAX};
use crate::backend::contract::Errno;
use crate::consts::*;

pub use crate::platform::{guard, set_errno};

/// Converts a result to the C convention: the value, or -1 with errno.
pub fn ret_int(r: Result<i32, Errno>) -> i32 {
    match r {
        Ok(v) => v,
        Err(e) => {
            set_errno(e);
            -1
        }
    }
}

/// As [`ret_int`] for byte counts.
pub fn ret_size(r: Result<usize, Errno>) -> isize {
    match r {
        Ok(v) => v.min(isize::MAX as usize) as isize,
        Err(e) => {
            set_errno(e);
            -1
        }
    }
}

/// Whether `len` bytes at `p` can be read, as far as the kernel can tell
/// us cheaply: the first and the last byte are copied with
/// process_vm_readv, which fails with EFAULT where a system call given the
/// same pointer would. Used for the control structures of a call (addresses,
/// option values, msghdr, pollfd arrays), so that a bad pointer gives EFAULT
/// as on Linux instead of a crash. Where the process's seccomp filter
/// would refuse the probe (`platform::sandbox`), the pointer is trusted.
pub fn probe(p: *const u8, len: usize) -> Result<(), Errno> {
    if len == 0 {
        return Ok(());
    }
    if p.is_null() {
        return Err(EFAULT);
    }
    probe_mapped(p, len)
}

/// Without an operating system there is no cheap way to ask whether memory
/// is mapped: only NULL is caught.
#[cfg(not(feature = "std"))]
fn probe_mapped(_p: *const u8, _len: usize) -> Result<(), Errno> {
    Ok(())
}

#[cfg(feature = "std")]
fn probe_mapped(p: *const u8, len: usize) -> Result<(), Errno> {
    let first = p as usize >> PAGE_SHIFT;
    let last = (p as usize).saturating_add(len - 1) >> PAGE_SHIFT;
    // Only the pages of a probe's first and last bytes are known to be
    // mapped (the pages between were never looked at): a hit needs both.
    let known = |pg: usize| {
        let set = probed_set(pg);
        PROBED.with(|c| c[set..set + PROBED_WAYS].iter().any(|s| s.get() == pg))
    };
    if known(first) && known(last) {
        return Ok(());
    }
    probe_syscall(p, len)?;
    PROBED.with(|c| {
        for pg in [first, last] {
            // The newest page of a set in its first way, the others moved
            // one way on, the oldest out.
            let set = &c[probed_set(pg)..][..PROBED_WAYS];
            if set.iter().all(|s| s.get() != pg) {
                let mut carry = pg;
                for s in set {
                    carry = s.replace(carry);
                }
            }
        }
    });
    Ok(())
}

#[cfg(feature = "std")]
const PAGE_SHIFT: usize = 12;

/// Slots of the per-thread cache of probed pages (8 KiB), in sets of
/// [`PROBED_WAYS`]: a server's two hundred buffer pages then almost never
/// find their set full (with two ways in 512 slots, one in twenty did, and
/// was probed again on every request).
#[cfg(feature = "std")]
const PROBED_SLOTS: usize = 1024;
/// Ways per set of the probed pages' cache.
#[cfg(feature = "std")]
const PROBED_WAYS: usize = 4;

/// The first slot of a page's set: the page number's bits mixed (Fibonacci
/// hashing), so that buffers a power of two apart (an allocator's extents)
/// do not all share one set.
#[cfg(feature = "std")]
fn probed_set(page: usize) -> usize {
    let sets = PROBED_SLOTS / PROBED_WAYS;
    let h = page.wrapping_mul(0x9E37_79B9_7F4A_7C15_u64 as usize)
        >> (usize::BITS - sets.trailing_zeros());
    h * PROBED_WAYS
}

#[cfg(feature = "std")]
std::thread_local! {
    /// Pages this thread probed successfully, a set-associative cache
    /// (see [`probed_set`]): a program passes the same buffers again and
    /// again, and re-probing them would cost a system call per send and
    /// receive. A server keeps a buffer or two per client (redis: its
    /// query and reply buffers), so the cache must hold hundreds of pages,
    /// not a handful: with eight ranges, redis-benchmark's fifty clients
    /// made 1.7 probes per request. A page unmapped after it was probed is
    /// not noticed (the copy then faults, as it would in any library that
    /// touches user memory). An empty slot names no page (usize::MAX: with
    /// 0, page 0 would pass unprobed).
    static PROBED: [core::cell::Cell<usize>; PROBED_SLOTS] =
        const { [const { core::cell::Cell::new(usize::MAX) }; PROBED_SLOTS] };
}

#[cfg(feature = "std")]
fn probe_syscall(p: *const u8, len: usize) -> Result<(), Errno> {
    let mut scratch = [0u8; 2];
    let local = libc::iovec {
        iov_base: scratch.as_mut_ptr() as *mut libc::c_void,
        iov_len: 2,
    };
    let remote = [
        libc::iovec {
            iov_base: p as *mut libc::c_void,
            iov_len: 1,
        },
        libc::iovec {
            iov_base: p.wrapping_add(len - 1) as *mut libc::c_void,
            iov_len: 1,
        },
    ];
    // A sandbox that would kill the process for the probe (sshd's
    // pre-authentication child) gets its pointers trusted.
    if !crate::platform::sandbox::allows(
        libc::SYS_process_vm_readv,
        [
            own_pid() as u64,
            &local as *const libc::iovec as u64,
            1,
            remote.as_ptr() as u64,
            2,
            0,
        ],
    ) {
        return Ok(());
    }
    // SAFETY: the kernel checks the remote addresses; the local buffer is
    // ours and two bytes long.
    let r = unsafe {
        libc::syscall(
            libc::SYS_process_vm_readv,
            own_pid(),
            &local as *const libc::iovec,
            1usize,
            remote.as_ptr(),
            2usize,
            0usize,
        )
    };
    if r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(EFAULT) {
        return Err(EFAULT);
    }
    // A partial read (the first byte readable, the last not) is not an
    // error for process_vm_readv: it returns 1.
    if (0..2).contains(&r) {
        return Err(EFAULT);
    }
    Ok(())
}

#[cfg(feature = "std")]
static PID: core::sync::atomic::AtomicI32 = core::sync::atomic::AtomicI32::new(0);

#[cfg(feature = "std")]
extern "C" fn forget_pid() {
    PID.store(0, core::sync::atomic::Ordering::Relaxed);
}

/// This process's id, cached: getpid() is a system call in glibc, and the
/// probe runs on every data call. A fork clears the cache in the child.
#[cfg(feature = "std")]
fn own_pid() -> libc::pid_t {
    use core::sync::atomic::Ordering;
    let p = PID.load(Ordering::Relaxed);
    if p != 0 {
        return p;
    }
    static ATFORK: std::sync::Once = std::sync::Once::new();
    ATFORK.call_once(|| {
        // SAFETY: registers a handler that only stores to an atomic.
        unsafe { libc::pthread_atfork(None, None, Some(forget_pid)) };
    });
    // SAFETY: getpid has no preconditions.
    let p = unsafe { libc::getpid() };
    PID.store(p, Ordering::Relaxed);
    p
}

/// Reads an input address. NULL with a non-zero length is EFAULT; a length
/// beyond `sockaddr_storage` or below the family field is EINVAL.
///
/// # Safety
/// `p` must be NULL or valid for `len` bytes.
pub unsafe fn read_addr(p: *const libc::sockaddr, len: libc::socklen_t) -> Result<SockAddr, Errno> {
    if len as usize > ADDR_MAX || (len as i32) < 0 {
        return Err(EINVAL);
    }
    if p.is_null() {
        return Err(if len == 0 { EINVAL } else { EFAULT });
    }
    if (len as usize) < 2 {
        return Err(EINVAL);
    }
    probe(p as *const u8, len as usize)?;
    // SAFETY: the caller guarantees `p` is valid for `len` bytes.
    let bytes = unsafe { core::slice::from_raw_parts(p as *const u8, len as usize) };
    SockAddr::from_bytes(bytes).ok_or(EINVAL)
}

/// Writes an output address: truncated to `*lenp`, with the full length
/// stored back in `*lenp`. NULL `p` skips it.
///
/// # Safety
/// `p` must be NULL or valid for `*lenp` bytes; `lenp` NULL or valid.
pub unsafe fn write_addr(
    a: &SockAddr,
    p: *mut libc::sockaddr,
    lenp: *mut libc::socklen_t,
) -> Result<(), Errno> {
    if p.is_null() {
        return Ok(());
    }
    probe(lenp as *const u8, core::mem::size_of::<libc::socklen_t>())?;
    // SAFETY: `lenp` is non-null and valid per the caller.
    let cap = unsafe { *lenp } as i32;
    if cap < 0 {
        return Err(EINVAL);
    }
    let n = a.len().min(cap as usize);
    probe(p as *const u8, n)?;
    // SAFETY: `p` is valid for `cap >= n` bytes; the source is our own array.
    unsafe {
        core::ptr::copy_nonoverlapping(a.as_bytes().as_ptr(), p as *mut u8, n);
        *lenp = a.len() as libc::socklen_t;
    }
    Ok(())
}

/// A C buffer as a mutable slice; NULL with a non-zero length is EFAULT.
///
/// # Safety
/// `p` must be NULL or valid for writes of `len` bytes for `'a`.
pub unsafe fn buf_mut<'a>(p: *mut libc::c_void, len: usize) -> Result<&'a mut [u8], Errno> {
    if len == 0 {
        return Ok(&mut []);
    }
    probe(p as *const u8, len)?;
    // SAFETY: non-null and valid for `len` bytes per the caller.
    Ok(unsafe { core::slice::from_raw_parts_mut(p as *mut u8, len) })
}

/// A C buffer as a slice; NULL with a non-zero length is EFAULT.
///
/// # Safety
/// `p` must be NULL or valid for reads of `len` bytes for `'a`.
pub unsafe fn buf<'a>(p: *const libc::c_void, len: usize) -> Result<&'a [u8], Errno> {
    if len == 0 {
        return Ok(&[]);
    }
    probe(p as *const u8, len)?;
    // SAFETY: non-null and valid for `len` bytes per the caller.
    Ok(unsafe { core::slice::from_raw_parts(p as *const u8, len) })
}

/// Largest iovec count accepted (Linux's UIO_MAXIOV).
pub const IOV_MAX: usize = 1024;

/// An iovec array as slices (for reading into).
///
/// # Safety
/// `iov` must be NULL or valid for `n` entries, each valid as described.
pub unsafe fn iov_mut<'a>(
    iov: *const libc::iovec,
    n: i32,
) -> Result<alloc::vec::Vec<&'a mut [u8]>, Errno> {
    if n < 0 || n as usize > IOV_MAX {
        return Err(EINVAL);
    }
    probe(
        iov as *const u8,
        n as usize * core::mem::size_of::<libc::iovec>(),
    )?;
    let mut out = alloc::vec::Vec::with_capacity(n as usize);
    for i in 0..n as usize {
        // SAFETY: `iov` is valid for `n` entries per the caller.
        let v = unsafe { &*iov.add(i) };
        // SAFETY: each entry describes a writable buffer per the caller.
        out.push(unsafe { buf_mut(v.iov_base, v.iov_len)? });
    }
    Ok(out)
}

/// An iovec array as slices (for writing from).
///
/// # Safety
/// As [`iov_mut`], for reads.
pub unsafe fn iov<'a>(iov: *const libc::iovec, n: i32) -> Result<alloc::vec::Vec<&'a [u8]>, Errno> {
    if n < 0 || n as usize > IOV_MAX {
        return Err(EINVAL);
    }
    probe(
        iov as *const u8,
        n as usize * core::mem::size_of::<libc::iovec>(),
    )?;
    let mut out = alloc::vec::Vec::with_capacity(n as usize);
    for i in 0..n as usize {
        // SAFETY: `iov` is valid for `n` entries per the caller.
        let v = unsafe { &*iov.add(i) };
        // SAFETY: each entry describes a readable buffer per the caller.
        out.push(unsafe { buf(v.iov_base, v.iov_len)? });
    }
    Ok(out)
}

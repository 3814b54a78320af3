//! The embedded platform: what a host without an operating system (an RTOS,
//! bare metal) supplies through a C table registered once at start-up with
//! `usock_platform_init`: memory, locks, waiting and waking, a monotonic
//! clock, errno, a log sink and an abort hook.
//!
//! Waiting is futex-like: `wait(word, expected, timeout)` sleeps while
//! `*word == expected` and `wake(word)` wakes the sleepers of that word; a
//! host implements it with its semaphores or condition variables, or leaves
//! it NULL for the cooperative mode, where every call behaves as
//! non-blocking and the host drives a poll loop.
//!
//! fd numbers have no kernel behind them: the table below hands them out,
//! lowest available first.

#![allow(non_camel_case_types)]

use core::ffi::{c_char, c_int, c_void};
use core::sync::atomic::{AtomicPtr, AtomicU32, Ordering};
use core::time::Duration;

use crate::consts::Errno;
use crate::consts::*;

/// Version of `struct usock_platform_ops` this library understands.
pub const USOCK_PLATFORM_ABI_VERSION: u32 = 1;

/// What the host supplies. Entries marked optional may be NULL.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct usock_platform_ops {
    /// Must be `USOCK_PLATFORM_ABI_VERSION`.
    pub abi_version: u32,
    /// Passed back to every entry.
    pub ctx: *mut c_void,
    /// Allocates `size` bytes aligned to `align`; NULL when out of memory.
    pub alloc:
        Option<unsafe extern "C" fn(ctx: *mut c_void, size: usize, align: usize) -> *mut c_void>,
    /// Frees what `alloc` returned.
    pub free:
        Option<unsafe extern "C" fn(ctx: *mut c_void, p: *mut c_void, size: usize, align: usize)>,
    /// Optional: creates a lock; NULL entries mean the library spins on its
    /// own atomic flags (fine for a single core or a cooperative scheduler).
    pub lock_create: Option<unsafe extern "C" fn(ctx: *mut c_void) -> *mut c_void>,
    /// Optional: takes a lock made by `lock_create`.
    pub lock: Option<unsafe extern "C" fn(ctx: *mut c_void, l: *mut c_void)>,
    /// Optional: releases a lock.
    pub unlock: Option<unsafe extern "C" fn(ctx: *mut c_void, l: *mut c_void)>,
    /// Optional: sleeps while `*word == expected`, at most `timeout_ns`
    /// nanoseconds (`UINT64_MAX`: no limit). Spurious returns are allowed.
    /// NULL selects the cooperative mode. With a device attached
    /// (`usock_netif_attach`) and no task of the host running
    /// `usock_netif_poll`, it must also return when a frame arrives.
    pub wait: Option<
        unsafe extern "C" fn(ctx: *mut c_void, word: *const u32, expected: u32, timeout_ns: u64),
    >,
    /// Optional with `wait`: wakes every sleeper on `word`.
    pub wake: Option<unsafe extern "C" fn(ctx: *mut c_void, word: *const u32)>,
    /// A monotonic clock in nanoseconds.
    pub now_ns: Option<unsafe extern "C" fn(ctx: *mut c_void) -> u64>,
    /// Optional: where errno goes (the C library's errno location); NULL
    /// keeps it in the library (read with `usock_errno`).
    pub errno_location: Option<unsafe extern "C" fn(ctx: *mut c_void) -> *mut c_int>,
    /// Optional: a line of diagnostics (not NUL-terminated).
    pub log: Option<unsafe extern "C" fn(ctx: *mut c_void, msg: *const c_char, len: usize)>,
    /// Optional: called after a fatal error is logged; must not return.
    pub abort: Option<unsafe extern "C" fn(ctx: *mut c_void)>,
}

static OPS: AtomicPtr<usock_platform_ops> = AtomicPtr::new(core::ptr::null_mut());

/// The registered table, if any.
pub fn ops() -> Option<&'static usock_platform_ops> {
    // SAFETY: the pointer is null or was set once from a leaked copy that
    // lives for the rest of the program.
    unsafe { OPS.load(Ordering::Acquire).as_ref() }
}

/// Whether `usock_platform_init` succeeded: the socket calls fail with
/// ENOSYS before it.
pub fn ready() -> bool {
    ops().is_some()
}

/// Registers the host's table (copied). Returns 0, -EINVAL for a bad table
/// (wrong version, no `alloc`/`free`/`now_ns`, `wait` without `wake`), or
/// -EALREADY when a table is registered already.
///
/// # Safety
/// `ops` must be NULL or point at a valid table whose functions behave as
/// documented.
#[no_mangle]
pub unsafe extern "C" fn usock_platform_init(ops: *const usock_platform_ops) -> c_int {
    // SAFETY: NULL or valid per the contract.
    let Some(o) = (unsafe { ops.as_ref() }) else {
        return -EINVAL;
    };
    if o.abi_version != USOCK_PLATFORM_ABI_VERSION
        || o.alloc.is_none()
        || o.free.is_none()
        || o.now_ns.is_none()
        || o.wait.is_some() != o.wake.is_some()
        || o.lock_create.is_some() != (o.lock.is_some() && o.unlock.is_some())
    {
        return -EINVAL;
    }
    if OPS.load(Ordering::Acquire).is_null() {
        // The copy must not come from the allocator it describes before it
        // is registered: keep it in a static cell.
        static mut COPY: core::mem::MaybeUninit<usock_platform_ops> =
            core::mem::MaybeUninit::uninit();
        // SAFETY: written once, before publication, guarded by the CAS below
        // on a sentinel; concurrent inits are a host bug the CAS tolerates.
        let p = unsafe {
            let p = core::ptr::addr_of_mut!(COPY) as *mut usock_platform_ops;
            p.write(*o);
            p
        };
        if OPS
            .compare_exchange(
                core::ptr::null_mut(),
                p,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
        {
            return 0;
        }
    }
    -EALREADY
}

/// A point on the host's monotonic clock, in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline(u64);

/// The monotonic clock now.
pub fn now() -> Deadline {
    match ops().and_then(|o| o.now_ns.map(|f| (o.ctx, f))) {
        // SAFETY: a registered host function.
        Some((ctx, f)) => Deadline(unsafe { f(ctx) }),
        None => Deadline(0),
    }
}

/// `now + d`.
pub fn deadline_after(d: Duration) -> Option<Deadline> {
    let ns = u64::try_from(d.as_nanos()).ok()?;
    now().0.checked_add(ns).map(Deadline)
}

/// Time left until `d`, or zero.
pub fn time_left(d: Deadline) -> Duration {
    Duration::from_nanos(d.0.saturating_sub(now().0))
}

/// Whether the host can block (the wait/wake pair was supplied).
pub fn can_block() -> bool {
    ops().is_some_and(|o| o.wait.is_some())
}

/// How a [`futex_sleep`] ended (without signals, never interrupted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slept {
    /// Woken, or the word had changed (or spuriously): look again.
    Woken,
    /// The deadline passed.
    TimedOut,
    /// Never here: the host has no signals.
    Interrupted,
}

/// As [`futex_wait`], in the hosted platform's terms.
pub fn futex_sleep(word: &AtomicU32, expected: u32, deadline: Option<Deadline>) -> Slept {
    if futex_wait(word, expected, deadline) {
        Slept::Woken
    } else {
        Slept::TimedOut
    }
}

/// What runs before every wait (the engine over a host's device table,
/// `backends::engine::driven`): it returns how long, in nanoseconds, the
/// wait may sleep before it must run again (`u64::MAX`: no limit).
static IDLE_HOOK: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Registers the idle hook (the last one registered is called).
pub fn set_idle_hook(f: fn() -> u64) {
    IDLE_HOOK.store(f as *mut (), Ordering::Release);
}

/// Runs the idle hook, if any: how long a wait may sleep.
fn idle() -> u64 {
    // Opaque to the optimizer: with LTO it would otherwise see the one
    // hook ever stored and call it directly, which links the whole engine
    // into every program that waits, attached or not.
    let p = core::hint::black_box(IDLE_HOOK.load(Ordering::Acquire));
    if p.is_null() {
        return u64::MAX;
    }
    // SAFETY: a non-null value was stored by `set_idle_hook` from a
    // `fn() -> u64`, and function pointers round-trip through `*mut ()`.
    let f: fn() -> u64 = unsafe { core::mem::transmute::<*mut (), fn() -> u64>(p) };
    f()
}

/// Sleeps while `*word == expected`, until woken or `deadline` passes
/// (returns false then). In the cooperative mode it returns at once.
///
/// The idle hook runs first (an engine the host's table drives takes in
/// its frames and keeps its timers there, which may change the word), and
/// the sleep ends by the time the hook wants to run again: the caller
/// sees a spurious wake and waits again, running it.
pub fn futex_wait(word: &AtomicU32, expected: u32, deadline: Option<Deadline>) -> bool {
    let Some(o) = ops() else { return false };
    let again = idle();
    if word.load(Ordering::SeqCst) != expected {
        return true;
    }
    let Some(wait) = o.wait else { return false };
    let left = match deadline {
        None => u64::MAX,
        Some(d) => {
            let left = d.0.saturating_sub(now().0);
            if left == 0 {
                return false;
            }
            left
        }
    };
    // SAFETY: a registered host function; `word` outlives the call.
    unsafe { wait(o.ctx, word.as_ptr(), expected, left.min(again)) };
    deadline.map_or(true, |d| now() < d)
}

/// Wakes every sleeper on `word`.
pub fn futex_wake_all(word: &AtomicU32) {
    if let Some(o) = ops() {
        if let Some(wake) = o.wake {
            // SAFETY: a registered host function.
            unsafe { wake(o.ctx, word.as_ptr()) };
        }
    }
}

/// No spinning: a small target rarely has a second core to spin on, and a
/// spin would keep a cooperative host's other tasks from running.
pub fn spin_cap_ns() -> u64 {
    0
}

/// Zeroed memory for a Socket Buffer's ring, `len > 0` bytes, from the
/// host's allocator.
pub fn pages_alloc(len: usize) -> Option<core::ptr::NonNull<u8>> {
    let layout = alloc::alloc::Layout::array::<u8>(len).ok()?;
    // SAFETY: a non-zero size (the caller's `len > 0`).
    core::ptr::NonNull::new(unsafe { alloc::alloc::alloc_zeroed(layout) })
}

/// Gives back memory from [`pages_alloc`].
///
/// # Safety
/// `p` and `len` are those of one [`pages_alloc`] call, given back once,
/// and nothing uses the memory after.
pub unsafe fn pages_free(p: core::ptr::NonNull<u8>, len: usize) {
    if let Ok(layout) = alloc::alloc::Layout::array::<u8>(len) {
        // SAFETY: per the caller, allocated with this layout.
        unsafe { alloc::alloc::dealloc(p.as_ptr(), layout) };
    }
}

/// Never asked: nothing spins here ([`spin_cap_ns`] is 0).
pub fn core_spare(_now: u64) -> bool {
    false
}

/// May this program bind `port`? Always: a host without the OS's socket
/// API has no privileged ports.
pub fn may_bind_port(_port: u16) -> bool {
    true
}

/// An interface's IPv4 address: the host's table names no interface.
pub fn interface_addr4(_ifindex: u32) -> Option<[u8; 4]> {
    None
}

/// The ports an ephemeral bind picks from: Linux's default
/// `ip_local_port_range`.
pub fn local_port_range() -> (u16, u16) {
    (32768, 60999)
}

/// Is `ip` an address of this host's interfaces? The host's table names
/// none: loopback's are the only local ones.
pub fn is_host_address(_ip: &[u8; 16]) -> bool {
    false
}

/// The host's monotonic clock in nanoseconds (0 without one).
pub fn mono_ns() -> u64 {
    now().0
}

/// SIGURG, SIGIO: no signals without an operating system.
pub fn send_owner_signal(_owner: i32, _sig: i32) {}

/// The CPU the caller runs on: unknown without an operating system.
pub fn current_cpu() -> i32 {
    -1
}

/// Numbers the kernel publishes: none without one (callers use Linux's
/// defaults).
pub fn kernel_number(_path: &str) -> Option<i64> {
    None
}

/// As [`kernel_number`]: none without a kernel.
pub fn kernel_field(_path: &str, _field: usize) -> Option<i64> {
    None
}

/// The host's table has no wall clock: the monotonic one stands in (for
/// the receive times SIOCGSTAMP reports).
pub fn realtime_ns() -> u64 {
    now().0
}

/// Runs `f`: without std a panic aborts through the host's hook (the
/// no_std library is built with panic=abort), so there is nothing to catch.
pub fn guard<T>(_fallback: T, f: impl FnOnce() -> T) -> T {
    f()
}

/// There are no signals: EPIPE is only returned.
pub fn raise_sigpipe() {}

/// Stores errno where the host wants it.
pub fn set_errno(e: Errno) {
    match ops().and_then(|o| o.errno_location.map(|f| (o.ctx, f))) {
        // SAFETY: a registered host function returning a valid int pointer.
        Some((ctx, f)) => unsafe { *f(ctx) = e },
        None => LAST_ERRNO.store(e as u32, Ordering::Relaxed),
    }
}

static LAST_ERRNO: AtomicU32 = AtomicU32::new(0);

/// The last errno stored by the library when the host gave no errno
/// location (not per thread: such hosts are single-threaded or must supply
/// `errno_location`).
#[no_mangle]
pub extern "C" fn usock_errno() -> c_int {
    LAST_ERRNO.load(Ordering::Relaxed) as c_int
}

/// Writes a diagnostic line through the host's log sink.
pub fn log(msg: &str) {
    if let Some(o) = ops() {
        if let Some(f) = o.log {
            // SAFETY: a registered host function; the bytes outlive the call.
            unsafe { f(o.ctx, msg.as_ptr() as *const c_char, msg.len()) };
        }
    }
}

/// Calls the host's abort hook; spins forever if it returns or is missing.
pub fn abort() -> ! {
    if let Some(o) = ops() {
        if let Some(f) = o.abort {
            // SAFETY: a registered host function.
            unsafe { f(o.ctx) };
        }
    }
    loop {
        core::hint::spin_loop();
    }
}

// ---- fd numbers ----

/// How many fd numbers the emulated table hands out (build-time capacity).
/// cbindgen:ignore
pub const EMBEDDED_MAX_FDS: usize = crate::config::EMBEDDED_MAX_FDS;

static FD_USED: [AtomicU32; EMBEDDED_MAX_FDS / 32] =
    [const { AtomicU32::new(0) }; EMBEDDED_MAX_FDS / 32];

fn take_lowest(min: usize) -> Result<i32, Errno> {
    for n in min..EMBEDDED_MAX_FDS {
        let (w, b) = (n / 32, 1u32 << (n % 32));
        if FD_USED[w].fetch_or(b, Ordering::AcqRel) & b == 0 {
            return Ok(n as i32);
        }
    }
    Err(EMFILE)
}

/// A new fd number, the lowest free one.
pub fn kfd_new(_cloexec: bool) -> Result<i32, Errno> {
    take_lowest(0)
}

/// Frees an fd number.
pub fn kfd_close(fd: i32) -> Result<(), Errno> {
    let n = usize::try_from(fd).map_err(|_| EBADF)?;
    if n >= EMBEDDED_MAX_FDS {
        return Err(EBADF);
    }
    let b = 1u32 << (n % 32);
    if FD_USED[n / 32].fetch_and(!b, Ordering::AcqRel) & b == 0 {
        return Err(EBADF);
    }
    Ok(())
}

/// A new fd number at least `min`.
pub fn kfd_dup_min(_fd: i32, min: i32, _cloexec: bool) -> Result<i32, Errno> {
    take_lowest(usize::try_from(min).map_err(|_| EINVAL)?)
}

/// fcntl commands on an fd number: there is no exec, so FD_CLOEXEC reads
/// as clear and setting it is accepted; other commands are EINVAL.
pub fn kfd_fcntl(_fd: i32, cmd: i32, _arg: u64) -> Result<i32, Errno> {
    const F_GETFD: i32 = 1;
    const F_SETFD: i32 = 2;
    match cmd {
        F_GETFD | F_SETFD => Ok(0),
        _ => Err(EINVAL),
    }
}

/// Takes fd number `new` (the caller released whatever it held).
pub fn kfd_dup3(_old: i32, new: i32, _flags: i32) -> Result<i32, Errno> {
    let n = usize::try_from(new).map_err(|_| EBADF)?;
    if n >= EMBEDDED_MAX_FDS {
        return Err(EBADF);
    }
    FD_USED[n / 32].fetch_or(1 << (n % 32), Ordering::AcqRel);
    Ok(new)
}

// ---- the runtime of the no_std static library ----

#[cfg(feature = "embedded-runtime")]
mod runtime {
    use core::alloc::{GlobalAlloc, Layout};

    struct HostAlloc;

    // SAFETY: forwards to the host's allocator, which returns memory of the
    // requested size and alignment or NULL.
    unsafe impl GlobalAlloc for HostAlloc {
        unsafe fn alloc(&self, l: Layout) -> *mut u8 {
            match super::ops().and_then(|o| o.alloc.map(|f| (o.ctx, f))) {
                // SAFETY: a registered host function.
                Some((ctx, f)) => unsafe { f(ctx, l.size(), l.align()) as *mut u8 },
                None => core::ptr::null_mut(),
            }
        }
        unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
            if let Some((ctx, f)) = super::ops().and_then(|o| o.free.map(|f| (o.ctx, f))) {
                // SAFETY: `p` came from the host's alloc with this layout.
                unsafe { f(ctx, p as *mut core::ffi::c_void, l.size(), l.align()) }
            }
        }
    }

    #[global_allocator]
    static ALLOC: HostAlloc = HostAlloc;

    /// The precompiled `core`/`alloc` of a stable toolchain are built with
    /// unwinding and reference this symbol; with panic=abort nothing ever
    /// calls it.
    #[no_mangle]
    extern "C" fn rust_eh_personality() {}

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
        super::log("libuserspacesock: panic");
        if let Some(s) = info.message().as_str() {
            super::log(s);
        }
        super::abort()
    }
}

/// Time from `a` to `b` (zero if `b` is earlier).
pub fn time_between(a: Deadline, b: Deadline) -> Duration {
    Duration::from_nanos(b.0.saturating_sub(a.0))
}

//! Memory shared with other processes (SHARED.md): a mapping of a memfd,
//! or an anonymous shared mapping that fork children keep sharing, reached
//! only through bounds-checked accessors, and futexes that wake across
//! processes.
//!
//! Another process may write any byte of a shared mapping at any time, so
//! nothing here hands out a reference to the mapping's bytes: words are
//! atomics (a torn or hostile value is still a value), and bytes are copied
//! in and out through raw pointers within the mapping's bounds. What the
//! values mean, and what to do when they make no sense, is the caller's
//! (`backends::shm`).

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use crate::consts::*;

/// A shared mapping of `len` bytes, unmapped when dropped. The kernel keeps
/// the memory while any process maps it (or holds its memfd).
pub struct SharedMem {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory that every access reaches through
// atomics or raw-pointer copies; no Rust reference to its bytes exists, so
// sharing the handle between threads adds nothing the other processes do
// not already do.
unsafe impl Send for SharedMem {}
// SAFETY: as for Send.
unsafe impl Sync for SharedMem {}

fn last_errno() -> Errno {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(EIO)
}

impl SharedMem {
    /// An anonymous shared mapping: zeroed, shared with the children this
    /// process forks after it is made (and with nobody else).
    pub fn anonymous(len: usize) -> Result<SharedMem, Errno> {
        Self::map(-1, len, libc::MAP_SHARED | libc::MAP_ANONYMOUS)
    }

    /// A new memfd of `len` zero bytes (named `name` in /proc/PID/fd, for
    /// whoever looks), mapped; returns the mapping and the memfd (close-on-
    /// exec), which the caller passes to the other process and then closes.
    pub fn memfd(name: &core::ffi::CStr, len: usize) -> Result<(SharedMem, i32), Errno> {
        // SAFETY: `name` is NUL-terminated.
        let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(last_errno());
        }
        // SAFETY: ftruncate on the fd just made.
        if unsafe { libc::syscall(libc::SYS_ftruncate, fd, len as libc::off_t) } != 0 {
            let e = last_errno();
            super::kfd_close(fd).ok();
            return Err(e);
        }
        match Self::map(fd, len, libc::MAP_SHARED) {
            Ok(m) => Ok((m, fd)),
            Err(e) => {
                super::kfd_close(fd).ok();
                Err(e)
            }
        }
    }

    /// Maps `len` bytes of the memfd `fd` that another process made.
    /// EINVAL when the file is shorter than `len` (mapping past its end
    /// would turn a reader's access into SIGBUS).
    pub fn map_fd(fd: i32, len: usize) -> Result<SharedMem, Errno> {
        // SAFETY: all-zero is a valid stat.
        let mut st: libc::stat = unsafe { core::mem::zeroed() };
        // SAFETY: fstat writes into `st` (the raw call: the library
        // interposes libc's fstat).
        if unsafe { libc::syscall(libc::SYS_fstat, fd, &mut st as *mut libc::stat) } != 0 {
            return Err(last_errno());
        }
        if (st.st_mode & libc::S_IFMT) != libc::S_IFREG || (st.st_size as u64) < len as u64 {
            return Err(EINVAL);
        }
        Self::map(fd, len, libc::MAP_SHARED)
    }

    /// Maps the whole of memfd `fd` that another process made: EINVAL
    /// when it is not a regular file or is empty or longer than `max`.
    pub fn map_file(fd: i32, max: usize) -> Result<SharedMem, Errno> {
        // SAFETY: all-zero is a valid stat.
        let mut st: libc::stat = unsafe { core::mem::zeroed() };
        // SAFETY: fstat writes into `st` (the raw call: the library
        // interposes libc's fstat).
        if unsafe { libc::syscall(libc::SYS_fstat, fd, &mut st as *mut libc::stat) } != 0 {
            return Err(last_errno());
        }
        let len = usize::try_from(st.st_size).map_err(|_| EINVAL)?;
        if (st.st_mode & libc::S_IFMT) != libc::S_IFREG || len > max {
            return Err(EINVAL);
        }
        Self::map(fd, len, libc::MAP_SHARED)
    }

    fn map(fd: i32, len: usize, flags: i32) -> Result<SharedMem, Errno> {
        if len == 0 {
            return Err(EINVAL);
        }
        // SAFETY: a fresh mapping chosen by the kernel; `fd` is ours or -1.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                fd,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(last_errno());
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or(ENOMEM)?;
        Ok(SharedMem { ptr, len })
    }

    /// The mapping's length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty (never: a mapping has at least a byte).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The 64-bit word at byte offset `off`, if it is 8-aligned and inside.
    pub fn u64_at(&self, off: usize) -> Option<&AtomicU64> {
        if off % 8 != 0 || off.checked_add(8)? > self.len {
            return None;
        }
        // SAFETY: in bounds and aligned (the mapping is page-aligned); the
        // memory lives as long as `self`; an atomic may alias what other
        // processes write, which is what atomics are for.
        Some(unsafe { &*self.ptr.as_ptr().add(off).cast::<AtomicU64>() })
    }

    /// The 32-bit word at byte offset `off`, if it is 4-aligned and inside.
    pub fn u32_at(&self, off: usize) -> Option<&AtomicU32> {
        if off % 4 != 0 || off.checked_add(4)? > self.len {
            return None;
        }
        // SAFETY: as in u64_at.
        Some(unsafe { &*self.ptr.as_ptr().add(off).cast::<AtomicU32>() })
    }

    /// Copies `src` to byte offset `off`; false (nothing copied) when that
    /// would leave the mapping.
    pub fn write_bytes(&self, off: usize, src: &[u8]) -> bool {
        match off.checked_add(src.len()) {
            Some(end) if end <= self.len => {
                // SAFETY: the range is inside the mapping; `src` is local
                // memory, so the two cannot overlap.
                unsafe {
                    core::ptr::copy_nonoverlapping(
                        src.as_ptr(),
                        self.ptr.as_ptr().add(off),
                        src.len(),
                    )
                };
                true
            }
            _ => false,
        }
    }

    /// Copies bytes from offset `off` into `dst`; false (nothing copied)
    /// when that would leave the mapping.
    pub fn read_bytes(&self, off: usize, dst: &mut [u8]) -> bool {
        match off.checked_add(dst.len()) {
            Some(end) if end <= self.len => {
                // SAFETY: as in write_bytes, the other way.
                unsafe {
                    core::ptr::copy_nonoverlapping(
                        self.ptr.as_ptr().add(off),
                        dst.as_mut_ptr(),
                        dst.len(),
                    )
                };
                true
            }
            _ => false,
        }
    }
}

impl Drop for SharedMem {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, unmapped once; no reference to
        // its bytes outlives `self` (the accessors borrow it).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Sleeps while `*word == expected`, woken by [`futex_wake_shared`] from any
/// process that maps the word, until `deadline`. Returns false when the
/// deadline passed; spurious returns are allowed.
pub fn futex_wait_shared(word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> bool {
    super::hosted::futex_wait_op(word, expected, deadline, libc::FUTEX_WAIT)
        != super::hosted::Slept::TimedOut
}

/// As [`futex_wait_shared`], telling a signal handler's run apart
/// ([`super::hosted::Slept::Interrupted`]): with a deadline the kernel never
/// restarts the sleep after a handler, as Linux's timed socket calls.
pub fn futex_sleep_shared(
    word: &AtomicU32,
    expected: u32,
    deadline: Option<Instant>,
) -> super::hosted::Slept {
    super::hosted::futex_wait_op(word, expected, deadline, libc::FUTEX_WAIT)
}

/// The calling thread's signals held back (blocked) for a wait that must
/// tell a handler with SA_RESTART from one without, which a sleep that
/// lets them in cannot (a timed futex wait ends with EINTR after either).
/// Dropping it lets them in again: the pending ones' handlers run then.
pub struct SignalsHeld {
    old: libc::sigset_t,
}

impl SignalsHeld {
    /// Blocks every signal (glibc keeps a few for itself) until dropped.
    pub fn new() -> SignalsHeld {
        // SAFETY: sigset_t is plain data, filled by sigfillset/sigemptyset;
        // both sets are live locals.
        unsafe {
            let mut all: libc::sigset_t = core::mem::zeroed();
            let mut old: libc::sigset_t = core::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::sigemptyset(&mut old);
            libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
            SignalsHeld { old }
        }
    }

    /// The signals held here that the thread let in before (its own mask).
    fn open(&self) -> libc::sigset_t {
        // SAFETY: sigset_t is plain data; the sets are live.
        unsafe {
            let mut open: libc::sigset_t = core::mem::zeroed();
            libc::sigemptyset(&mut open);
            for sig in 1..=libc::SIGRTMAX() {
                if libc::sigismember(&self.old, sig) == 0 {
                    libc::sigaddset(&mut open, sig);
                }
            }
            open
        }
    }

    /// A signalfd readable when one of the held signals is pending (close
    /// it with `kfd_close`): what a sleep in poll adds to its fds.
    /// A seccomp filter that forbids signalfd gets EPERM instead of the
    /// call that would kill the process.
    pub fn watch(&self) -> Result<i32, Errno> {
        if !super::sandbox::allows(libc::SYS_signalfd4, [0; 6]) {
            return Err(libc::EPERM);
        }
        let open = self.open();
        // SAFETY: `open` is a live sigset_t; -1 makes a new signalfd.
        let fd = unsafe { libc::signalfd(-1, &open, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
        if fd < 0 {
            Err(last_errno())
        } else {
            Ok(fd)
        }
    }

    /// What the held signals pending now mean for a blocking socket call:
    /// `Some(true)` when one's handler lacks SA_RESTART (the call fails
    /// with EINTR, Linux's sock_intr_errno), `Some(false)` when handlers
    /// are to run that restart it, `None` when none is pending.
    /// Under a seccomp filter that forbids looking (sigpending,
    /// sigaction): `None`, and the handlers run as the mask goes back.
    pub fn pending(&self) -> Option<bool> {
        if !super::sandbox::allows(libc::SYS_rt_sigpending, [0; 6])
            || !super::sandbox::allows(libc::SYS_rt_sigaction, [0; 6])
        {
            return None;
        }
        let open = self.open();
        let mut found = None;
        // SAFETY: sigset_t and sigaction are plain data; the sets are live
        // locals, and sigaction with a null new action only reads.
        unsafe {
            let mut pending: libc::sigset_t = core::mem::zeroed();
            libc::sigemptyset(&mut pending);
            libc::sigpending(&mut pending);
            for sig in 1..=libc::SIGRTMAX() {
                if libc::sigismember(&pending, sig) != 1 || libc::sigismember(&open, sig) != 1 {
                    continue;
                }
                let mut sa: libc::sigaction = core::mem::zeroed();
                if libc::sigaction(sig, core::ptr::null(), &mut sa) != 0 {
                    continue;
                }
                let handled = sa.sa_sigaction != libc::SIG_DFL && sa.sa_sigaction != libc::SIG_IGN;
                if !handled {
                    continue;
                }
                let stops = sa.sa_flags & libc::SA_RESTART == 0;
                found = Some(found.unwrap_or(false) || stops);
            }
        }
        found
    }
}

impl Default for SignalsHeld {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for SignalsHeld {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved in `new`.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, core::ptr::null_mut()) };
    }
}

/// Sleeps in poll until `a` is readable or hung up, or `b` is readable,
/// or `ms` milliseconds pass (-1: no limit): which of the two had events.
/// EINTR is reported as neither.
pub fn poll_pair(a: i32, b: i32, ms: i32) -> (bool, bool) {
    let mut fds = [
        libc::pollfd {
            fd: a,
            events: libc::POLLIN | libc::POLLRDHUP,
            revents: 0,
        },
        libc::pollfd {
            fd: b,
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    // SAFETY: two live pollfds.
    let r = unsafe { libc::syscall(libc::SYS_poll, fds.as_mut_ptr(), 2u64, ms) };
    if r <= 0 {
        return (false, false);
    }
    (fds[0].revents != 0, fds[1].revents != 0)
}

/// Wakes up to `n` threads, of any process, sleeping on `word`.
pub fn futex_wake_shared(word: &AtomicU32, n: i32) {
    // SAFETY: FUTEX_WAKE only uses the address as a key.
    unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, n) };
}

/// Bumped in a fork child ([`forked`]): a thread's cached id is stale then.
static TID_EPOCH: AtomicU32 = AtomicU32::new(0);

std::thread_local! {
    /// This thread's id and the epoch it was read in (0: not yet).
    static TID: core::cell::Cell<(u32, u32)> = const { core::cell::Cell::new((0, 0)) };
}

/// In a fork child: the forking thread's id is new there. It is the
/// child's only thread, so its id is read now, before the program can
/// install a seccomp filter that forbids gettid (sshd's child does).
pub fn forked() {
    let epoch = TID_EPOCH.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) as u32 };
    let _ = TID.try_with(|c| c.set((tid, epoch)));
}

extern "C" fn forked_child() {
    forked();
}

/// Every fork's child bumps the epoch, also one the library's own fork
/// handlers do not see (a program or a test that calls libc's `fork`
/// before its first socket).
fn watch_forks() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: registers a handler that only bumps an atomic.
        unsafe { libc::pthread_atfork(None, None, Some(forked_child)) };
    });
}

/// The calling thread's id (what a shared lock records as its owner),
/// asked of the kernel once per thread (and again after a fork): a lock
/// is taken per message.
pub fn thread_id() -> u32 {
    let epoch = TID_EPOCH.load(Ordering::Relaxed);
    let ask = || {
        // SAFETY: gettid has no preconditions.
        unsafe { libc::syscall(libc::SYS_gettid) as u32 }
    };
    // A thread whose locals are being destroyed asks every time.
    TID.try_with(|c| match c.get() {
        (tid, e) if tid != 0 && e == epoch => tid,
        _ => {
            watch_forks();
            let tid = ask();
            c.set((tid, epoch));
            tid
        }
    })
    .unwrap_or_else(|_| ask())
}

/// Whether a thread with id `tid` exists (any process). A recycled id
/// reads as alive: a lock whose owner died waits until the id is free.
/// So does one the process's seccomp filter keeps it from looking up.
pub fn thread_alive(tid: u32) -> bool {
    if !super::sandbox::allows(libc::SYS_statx, [0; 6]) {
        return true;
    }
    let path = alloc::format!("/proc/{tid}");
    match std::fs::metadata(path) {
        Ok(_) => true,
        Err(e) => e.kind() != std::io::ErrorKind::NotFound,
    }
}

//! The hosted platform: Linux futexes for waiting, eventfds for fd numbers
//! and for waking a thread blocked in the kernel's poll.
//!
//! Everything here uses raw system calls rather than libc's wrappers: the
//! library exports `read`, `write`, `close` and `poll` itself, so calling the
//! libc names from inside would come back into the library.

use core::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::consts::Errno;

/// A point on the monotonic clock.
pub type Deadline = Instant;

/// The monotonic clock now.
pub fn now() -> Instant {
    Instant::now()
}

/// `now + d`, saturating far in the future instead of overflowing.
pub fn deadline_after(d: Duration) -> Option<Instant> {
    Instant::now().checked_add(d)
}

fn last_errno() -> Errno {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// Sleeps while `*word == expected`, until woken or `deadline` passes.
/// Returns false when the deadline passed. Spurious returns are allowed; the
/// caller re-checks its condition. A signal handler's run ends the sleep
/// like a wake-up (see [`futex_sleep`] for a wait that tells).
pub fn futex_wait(word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> bool {
    !matches!(futex_sleep(word, expected, deadline), Slept::TimedOut)
}

/// How a [`futex_sleep`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slept {
    /// Woken, or the word had changed (or spuriously): look again.
    Woken,
    /// The deadline passed.
    TimedOut,
    /// A signal handler ran and the kernel did not restart the sleep: as
    /// for Linux's blocking socket calls, that is when the handler lacks
    /// SA_RESTART, or always when the sleep has a deadline (the kernel
    /// restarts an untimed FUTEX_WAIT, ERESTARTSYS, only with SA_RESTART;
    /// a timed one, ERESTART_RESTARTBLOCK, never after a handler). The
    /// caller fails with EINTR, as socket(7) says of SO_RCVTIMEO.
    Interrupted,
}

/// As [`futex_wait`], telling an interruption by a signal handler apart.
pub fn futex_sleep(word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> Slept {
    futex_wait_op(
        word,
        expected,
        deadline,
        libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
    )
}

/// FUTEX_WAIT with `op` (private to this process, or not: a word in memory
/// other processes map) until `deadline`.
pub(super) fn futex_wait_op(
    word: &AtomicU32,
    expected: u32,
    deadline: Option<Instant>,
    op: i32,
) -> Slept {
    let ts;
    let tsp = match deadline {
        None => core::ptr::null(),
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Slept::TimedOut;
            }
            ts = to_timespec(left);
            &ts as *const libc::timespec
        }
    };
    // SAFETY: `word` is a live AtomicU32 for the duration of the call and
    // `tsp` is null or points at `ts`, which outlives the call.
    let r = unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), op, expected, tsp) };
    // The kernel says whether the timeout ran out: no clock read after
    // every sleep. A wake-up just at the deadline is `Woken`; the caller
    // looks again, and its next sleep finds no time left.
    match (r < 0).then(last_errno) {
        Some(libc::EINTR) => Slept::Interrupted,
        Some(libc::ETIMEDOUT) => Slept::TimedOut,
        _ => Slept::Woken,
    }
}

/// Wakes one thread sleeping in [`futex_wait`] on `word`.
pub fn futex_wake_one(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE only uses the address as a key.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            1,
        );
    }
}

/// Wakes every thread sleeping in [`futex_wait`] on `word`.
pub fn futex_wake_all(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE only uses the address as a key.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            i32::MAX,
        );
    }
}

/// A new kernel fd that gives a user-space socket its number: a duplicate
/// of one process-wide eventfd, so the number is the lowest free one and can
/// never collide with the process's other fds. Duplicating (one fd-table
/// slot) is cheaper than creating a file per socket, and closing a duplicate
/// frees only the slot.
pub fn kfd_new(cloexec: bool) -> Result<i32, Errno> {
    match kfd_dup_min(anchor()?, 0, cloexec) {
        // The program closed the anchor (a blind close of every fd, say):
        // forget it and make another.
        Err(e) if e == libc::EBADF => {
            ANCHOR.store(-1, Ordering::Release);
            kfd_dup_min(anchor()?, 0, cloexec)
        }
        r => r,
    }
}

static ANCHOR: core::sync::atomic::AtomicI32 = core::sync::atomic::AtomicI32::new(-1);

/// A new eventfd of its own (a poll waker: it must not share its counter
/// with any other fd).
pub fn eventfd_new() -> Result<i32, Errno> {
    // SAFETY: eventfd2 takes two integers.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_eventfd2,
            0,
            libc::EFD_NONBLOCK | libc::EFD_CLOEXEC,
        )
    };
    if fd < 0 {
        Err(last_errno())
    } else {
        Ok(fd as i32)
    }
}

/// The eventfd every socket's number duplicates, made on first use. It
/// carries FD_CLOEXEC and a number chosen high (at least 1000 when the
/// limit allows) so that it does not take a low number a program expects.
fn anchor() -> Result<i32, Errno> {
    let a = ANCHOR.load(Ordering::Acquire);
    if a >= 0 {
        return Ok(a);
    }
    let fd = eventfd_new()?;
    let high = kfd_dup_min(fd, 1000, true).or_else(|_| kfd_dup_min(fd, 0, true));
    let _ = kfd_close(fd);
    let high = high?;
    match ANCHOR.compare_exchange(-1, high, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => {
            super::private_fds::mark(high);
            Ok(high)
        }
        Err(other) => {
            let _ = kfd_close(high);
            Ok(other)
        }
    }
}

/// Makes `fd` a duplicate of the anchor eventfd again, with FD_CLOEXEC
/// (after a failed exec, the number of a socket whose kernel fd was
/// replaced for the exec).
pub fn kfd_anchor_at(fd: i32) -> Result<i32, Errno> {
    kfd_dup3(anchor()?, fd, libc::O_CLOEXEC)
}

/// Closes a kernel fd (no libc wrapper: ours would intercept it).
pub fn kfd_close(fd: i32) -> Result<(), Errno> {
    super::private_fds::unmark(fd);
    // SAFETY: close takes an integer.
    let r = unsafe { libc::syscall(libc::SYS_close, fd) };
    if r < 0 {
        Err(last_errno())
    } else {
        Ok(())
    }
}

/// `fcntl(fd, F_DUPFD[_CLOEXEC], min)` on a kernel fd.
pub fn kfd_dup_min(fd: i32, min: i32, cloexec: bool) -> Result<i32, Errno> {
    let cmd = if cloexec {
        libc::F_DUPFD_CLOEXEC
    } else {
        libc::F_DUPFD
    };
    // SAFETY: fcntl with integer arguments.
    let r = unsafe { libc::syscall(libc::SYS_fcntl, fd, cmd, min) };
    if r < 0 {
        Err(last_errno())
    } else {
        Ok(r as i32)
    }
}

/// `fcntl(fd, cmd, arg)` on the kernel fd that holds a socket's number
/// (FD_CLOEXEC and the like live there).
pub fn kfd_fcntl(fd: i32, cmd: i32, arg: u64) -> Result<i32, Errno> {
    // SAFETY: fcntl on our own kernel fd with the caller's integer argument.
    let r = unsafe { libc::syscall(libc::SYS_fcntl, fd, cmd, arg) };
    if r < 0 {
        Err(last_errno())
    } else {
        Ok(r as i32)
    }
}

/// `dup3(old, new, flags)` on kernel fds.
pub fn kfd_dup3(old: i32, new: i32, flags: i32) -> Result<i32, Errno> {
    // SAFETY: dup3 with integer arguments.
    let r = unsafe { libc::syscall(libc::SYS_dup3, old, new, flags) };
    if r < 0 {
        Err(last_errno())
    } else {
        Ok(r as i32)
    }
}

/// Writes a diagnostic line to stderr with one raw system call: no
/// allocation, no lock, async-signal-safe (it runs in fork children, before
/// exec and at exit), and never through our own interposed `write`.
pub fn diag(msg: &[u8]) {
    // SAFETY: writes the caller's live buffer to fd 2.
    unsafe { libc::syscall(libc::SYS_write, 2, msg.as_ptr(), msg.len()) };
}

/// Zeroed memory for a Socket Buffer's ring, `len > 0` bytes: whole pages
/// from the kernel (`mmap`). Only the pages the ring has touched count
/// against the process, and all of them go back at [`pages_free`]; from
/// malloc, a freed ring stayed in the allocator's heap (glibc raises its
/// mmap threshold once a large block is freed), and a server's memory grew
/// with every round of connections it served.
pub fn pages_alloc(len: usize) -> Option<core::ptr::NonNull<u8>> {
    // SAFETY: an anonymous private mapping; no address, fd or offset.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return None;
    }
    core::ptr::NonNull::new(p as *mut u8)
}

/// Gives back memory from [`pages_alloc`].
///
/// # Safety
/// `p` and `len` are those of one [`pages_alloc`] call, given back once,
/// and nothing uses the memory after.
pub unsafe fn pages_free(p: core::ptr::NonNull<u8>, len: usize) {
    // SAFETY: per the caller, the whole mapping pages_alloc made.
    unsafe { libc::munmap(p.as_ptr() as *mut libc::c_void, len) };
}

/// Starts one of the library's own threads with every signal blocked in
/// it. A signal sent to the process is handled by a thread that does not
/// block it, and programs learn of their signals from the call the signal
/// interrupts (socat and CPython act on SIGTERM when their poll returns
/// EINTR): handled on a library thread, it interrupted nothing, and socat
/// slept on after its TERM (tests/preload/run.sh, 1 run in 4). The mask is
/// inherited, so it is set around the spawn: no window in which the new
/// thread could take a signal.
pub fn spawn_quiet(
    name: &str,
    f: impl FnOnce() + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    // SAFETY: sigset_t is plain data filled by sigfillset/pthread_sigmask.
    let old = unsafe {
        let mut all: libc::sigset_t = core::mem::zeroed();
        let mut old: libc::sigset_t = core::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
        old
    };
    let r = std::thread::Builder::new().name(name.into()).spawn(f);
    // SAFETY: restores the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, core::ptr::null_mut()) };
    r
}

/// Sets the calling thread's errno.
pub fn set_errno(e: Errno) {
    // SAFETY: __errno_location returns the calling thread's errno slot.
    unsafe { *libc::__errno_location() = e };
}

/// The calling thread's errno (what a call of ours just set).
pub fn errno() -> Errno {
    // SAFETY: __errno_location returns the calling thread's errno slot.
    unsafe { *libc::__errno_location() }
}

/// Runs `f` with a panic boundary: a panic becomes `fallback` with errno
/// EIO instead of unwinding into C (undefined behaviour). Every function C
/// can call runs its body in one (`tests/limits_panic_boundary.rs`).
pub fn guard<T>(fallback: T, f: impl FnOnce() -> T) -> T {
    match std::panic::catch_unwind(core::panic::AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(_) => {
            set_errno(crate::consts::EIO);
            fallback
        }
    }
}

/// Raises SIGPIPE in the calling thread, as the kernel does for a write on a
/// broken stream.
pub fn raise_sigpipe() {
    // A seccomp filter that forbids tgkill would kill the process for it:
    // the caller's EPIPE stays.
    if !super::sandbox::allows(libc::SYS_tgkill, [0; 6]) {
        return;
    }
    // SAFETY: getpid/gettid/tgkill take integers.
    unsafe {
        let pid = libc::getpid();
        let tid = libc::syscall(libc::SYS_gettid);
        libc::syscall(libc::SYS_tgkill, pid, tid, libc::SIGPIPE);
    }
}

/// Writes 1 to an eventfd, waking a kernel poll on it.
pub fn eventfd_signal(fd: i32) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live u64.
    unsafe {
        libc::syscall(libc::SYS_write, fd, &one as *const u64, 8usize);
    }
}

/// What ended a [`poll_pair`] or [`poll_pair_restartable`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Woke {
    /// `a` is readable, hung up or in error (or no longer open).
    pub a: bool,
    /// Likewise `b`.
    pub b: bool,
    /// `b` is not an open fd (POLLNVAL): a fork child closed the thread's
    /// eventfd under a wait a signal handler forked in.
    pub b_gone: bool,
    /// A signal handler ended the sleep and the caller's call fails with
    /// EINTR.
    pub interrupted: bool,
}

/// Sleeps in the kernel until `a` or `b` is readable (or hung up), a signal
/// comes, or `timeout` passes (`None`: no limit). What woke it is for the
/// caller to find out.
/// Returns whether a signal handler interrupted it with a `timeout` set
/// (Linux's timed socket calls are never restarted; ppoll itself never is,
/// so without a timeout the wait goes on, as with SA_RESTART).
pub fn poll_two(a: i32, b: i32, timeout: Option<Duration>) -> bool {
    poll_pair(a, b, timeout).interrupted
}

/// As [`poll_two`], telling which fd ended the sleep.
pub fn poll_pair(a: i32, b: i32, timeout: Option<Duration>) -> Woke {
    let mut fds = [pollin(a), pollin(b)];
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let tsp = ts
        .as_ref()
        .map_or(core::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: two live pollfds; `tsp` is null or points at `ts`; no mask.
    let r = unsafe {
        libc::syscall(
            libc::SYS_ppoll,
            fds.as_mut_ptr(),
            2usize,
            tsp,
            core::ptr::null::<libc::sigset_t>(),
            0usize,
        )
    };
    Woke {
        a: r > 0 && fds[0].revents != 0,
        b: r > 0 && fds[1].revents != 0,
        b_gone: r > 0 && fds[1].revents & libc::POLLNVAL != 0,
        interrupted: r < 0 && timeout.is_some() && last_errno() == libc::EINTR,
    }
}

fn pollin(fd: i32) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

/// The calling thread's signalfd for [`poll_pair_restartable`], and the
/// signals it watches (those the thread let in when it was last used).
/// Kept for the thread's life (a signalfd made and closed per wait cost
/// two system calls per blocking receive): FD_CLOEXEC, high and the
/// library's own (`private_fds`), as the thread's waker eventfd. A fork
/// child's copy reads the child's signals, as any signalfd.
struct SigWatch {
    fd: i32,
    open: libc::sigset_t,
}

impl Drop for SigWatch {
    fn drop(&mut self) {
        let _ = kfd_close(self.fd);
    }
}

std::thread_local! {
    static SIGWATCH: core::cell::RefCell<Option<SigWatch>> = const { core::cell::RefCell::new(None) };
}

/// This thread's signalfd, watching exactly the signals of `open` (made,
/// or its mask changed, only when it differs from the last wait's).
fn signal_watch(open: &libc::sigset_t) -> Result<i32, Errno> {
    let same = |a: &libc::sigset_t| {
        // SAFETY: sigismember reads two live sets.
        (1..=max_signal()).all(|s| unsafe { libc::sigismember(a, s) == libc::sigismember(open, s) })
    };
    SIGWATCH
        .try_with(|w| {
            // Taken only with every signal blocked: no handler of this
            // thread can be inside.
            let mut w = w.try_borrow_mut().map_err(|_| libc::EBUSY)?;
            if let Some(sw) = w.as_ref().filter(|sw| same(&sw.open)) {
                return Ok(sw.fd);
            }
            if !super::sandbox::allows(libc::SYS_signalfd4, [0; 6]) {
                return Err(libc::EPERM);
            }
            let old = w.as_ref().map_or(-1, |sw| sw.fd);
            // SAFETY: `open` is a live sigset_t; `old` is -1 (a new
            // signalfd) or this thread's, whose mask it replaces.
            let fd = unsafe { libc::signalfd(old, open, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
            if fd < 0 {
                return Err(last_errno());
            }
            let fd = if old < 0 {
                super::scm::move_high(fd)
            } else {
                fd
            };
            *w = Some(SigWatch { fd, open: *open });
            Ok(fd)
        })
        .unwrap_or(Err(libc::EBUSY))
}

/// The highest signal number (SIGRTMAX).
fn max_signal() -> i32 {
    libc::SIGRTMAX()
}

/// Sleeps in the kernel, with no time limit, until `a` or `b` is readable
/// (or hung up) or a signal comes, and tells whether a signal handler ran
/// that a blocking socket call does not restart (Linux's sock_intr_errno:
/// ERESTARTSYS, so EINTR unless the handler has SA_RESTART). ppoll alone
/// cannot tell (it is never restarted after a handler), so the sleep runs
/// with the signals blocked and the thread's signalfd of the signals it
/// lets in ends it; the pending signals' handlers are looked at, then the
/// signals let in, and their handlers run, before this returns. Signals
/// glibc keeps for itself (never blocked) interrupt the sleep like a
/// wake-up. An error: no signalfd (a sandbox forbids it, no fd left); it
/// did not sleep.
pub fn poll_pair_restartable(a: i32, b: i32) -> Result<Woke, Errno> {
    // SAFETY: sigset_t is plain data; the sets are live locals, and a null
    // timeout and mask are allowed.
    unsafe {
        let mut all: libc::sigset_t = core::mem::zeroed();
        let mut old: libc::sigset_t = core::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigemptyset(&mut old);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
        let mut open: libc::sigset_t = core::mem::zeroed();
        libc::sigemptyset(&mut open);
        for sig in 1..=max_signal() {
            if libc::sigismember(&old, sig) == 0 {
                libc::sigaddset(&mut open, sig);
            }
        }
        let sigs = match signal_watch(&open) {
            Ok(fd) => fd,
            Err(e) => {
                libc::pthread_sigmask(libc::SIG_SETMASK, &old, core::ptr::null_mut());
                return Err(e);
            }
        };
        let mut fds = [pollin(a), pollin(b), pollin(sigs)];
        let r = libc::syscall(
            libc::SYS_ppoll,
            fds.as_mut_ptr(),
            3usize,
            core::ptr::null::<libc::timespec>(),
            core::ptr::null::<libc::sigset_t>(),
            0usize,
        );
        let mut interrupted = false;
        if r > 0 && fds[2].revents != 0 {
            let mut pending: libc::sigset_t = core::mem::zeroed();
            libc::sigemptyset(&mut pending);
            libc::sigpending(&mut pending);
            for sig in 1..=max_signal() {
                if libc::sigismember(&pending, sig) != 1 || libc::sigismember(&old, sig) == 1 {
                    continue;
                }
                let mut sa: libc::sigaction = core::mem::zeroed();
                if libc::sigaction(sig, core::ptr::null(), &mut sa) != 0 {
                    continue;
                }
                let handled = sa.sa_sigaction != libc::SIG_DFL && sa.sa_sigaction != libc::SIG_IGN;
                if handled && sa.sa_flags & libc::SA_RESTART == 0 {
                    interrupted = true;
                }
            }
        }
        // The pending signals' handlers run as the mask goes back.
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, core::ptr::null_mut());
        Ok(Woke {
            a: r > 0 && fds[0].revents != 0,
            b: r > 0 && fds[1].revents != 0,
            b_gone: r > 0 && fds[1].revents & libc::POLLNVAL != 0,
            interrupted,
        })
    }
}

/// A hosted thread can always sleep in the kernel.
#[inline]
pub fn can_block() -> bool {
    true
}

/// A duration as a timespec (seconds saturated).
pub fn to_timespec(d: Duration) -> libc::timespec {
    libc::timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    }
}

/// libc's ppoll on kernel fds for up to `wait` (`None`: no limit), with
/// the signal mask `mask` (`None`: unchanged); how many entries have events.
pub fn kernel_ppoll(
    fds: &mut [libc::pollfd],
    wait: Option<Duration>,
    mask: Option<&libc::sigset_t>,
) -> Result<usize, Errno> {
    let mask = mask.map_or(core::ptr::null(), |m| m as *const libc::sigset_t);
    let ts = wait.map(to_timespec);
    let tsp = ts
        .as_ref()
        .map_or(core::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `fds` is a live array of its length; `tsp` is NULL or points
    // at a local; `mask` is NULL or a live sigset.
    let r = unsafe { super::real::ppoll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, tsp, mask) };
    if r < 0 {
        return Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(crate::consts::EINTR));
    }
    Ok(r as usize)
}

/// libc's epoll_ctl on kernel fds; `ev` for ADD and MOD (NULL otherwise).
pub fn kernel_epoll_ctl(
    epfd: i32,
    op: i32,
    fd: i32,
    ev: Option<libc::epoll_event>,
) -> Result<(), Errno> {
    let mut e = ev.unwrap_or(libc::epoll_event { events: 0, u64: 0 });
    let p = if ev.is_some() {
        &mut e as *mut libc::epoll_event
    } else {
        core::ptr::null_mut()
    };
    // SAFETY: `p` is NULL or a live epoll_event; the fds are integers.
    if unsafe { super::real::epoll_ctl(epfd, op, fd, p) } < 0 {
        return Err(last_errno());
    }
    Ok(())
}

/// libc's epoll_pwait: up to `ev.len()` events of the kernel set `epfd`
/// within `ms` milliseconds (-1: no limit), with the signal mask `mask`
/// (`None`: unchanged); how many it wrote.
pub fn kernel_epoll_pwait(
    epfd: i32,
    ev: &mut [libc::epoll_event],
    ms: i32,
    mask: Option<&libc::sigset_t>,
) -> Result<usize, Errno> {
    let mask = mask.map_or(core::ptr::null(), |m| m as *const libc::sigset_t);
    let len = ev.len().min(i32::MAX as usize) as i32;
    // SAFETY: `ev` is a live array of at least `len` entries; `mask` is
    // NULL or a live sigset.
    let r = unsafe { super::real::epoll_pwait(epfd, ev.as_mut_ptr(), len, ms, mask) };
    if r < 0 {
        return Err(last_errno());
    }
    Ok(r as usize)
}

/// Blocks every signal in this thread; returns the mask it had.
pub fn block_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data, filled by sigfillset/pthread_sigmask.
    unsafe {
        let mut all: libc::sigset_t = core::mem::zeroed();
        let mut old: libc::sigset_t = core::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
        old
    }
}

/// Puts back the mask [`block_signals`] returned; a signal that came
/// meanwhile is handled now.
pub fn restore_signals(old: &libc::sigset_t) {
    // SAFETY: a valid mask from `block_signals`.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, old, core::ptr::null_mut()) };
}

/// A kernel socket, as a raw system call (the library's own socket() would
/// make another user-space socket).
pub fn kernel_socket(domain: i32, ty: i32, protocol: i32) -> Result<i32, Errno> {
    // SAFETY: socket() with integer arguments.
    let k = unsafe { libc::syscall(libc::SYS_socket, domain, ty, protocol) };
    if k < 0 {
        return Err(last_errno());
    }
    Ok(k as i32)
}

/// ioctl `req` with the caller's `arg` on a fresh kernel socket of
/// `domain` and `ty`, closed after: the kernel's answer (bytes and errno)
/// for a request a user-space socket does not answer itself, such as the
/// interface ioctls. ENOTTY when the kernel has no such socket.
///
/// # Safety
/// `arg` is what the caller passed for `req` (the kernel checks it: EFAULT).
pub unsafe fn kernel_twin_ioctl(
    domain: i32,
    ty: i32,
    req: libc::c_ulong,
    arg: *mut libc::c_void,
) -> Result<i32, Errno> {
    let k = kernel_socket(domain, ty | libc::SOCK_CLOEXEC, 0).map_err(|_| libc::ENOTTY)?;
    // SAFETY: an fd of ours; the argument per the caller's contract.
    let r = unsafe { libc::syscall(libc::SYS_ioctl, k, req, arg) };
    let e = last_errno();
    // SAFETY: closes the socket made above.
    unsafe { libc::syscall(libc::SYS_close, k) };
    if r < 0 {
        Err(e)
    } else {
        Ok(r as i32)
    }
}

/// getsockopt on a kernel socket, as a raw system call, into `out` (its
/// length is the caller's optlen); the length the kernel reports.
pub fn kernel_getsockopt(fd: i32, level: i32, name: i32, out: &mut [u8]) -> Result<usize, Errno> {
    let mut len = out.len() as libc::socklen_t;
    // SAFETY: `out` is writable for `len` bytes and `len` is a live
    // socklen_t, for the whole call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_getsockopt,
            fd,
            level,
            name,
            out.as_mut_ptr(),
            &mut len as *mut libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(last_errno());
    }
    Ok((len as usize).min(out.len()))
}

/// setsockopt on a kernel socket, as a raw system call.
pub fn kernel_setsockopt(fd: i32, level: i32, name: i32, val: &[u8]) -> Result<(), Errno> {
    // SAFETY: `val` is readable for its length for the whole call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_setsockopt,
            fd,
            level,
            name,
            val.as_ptr(),
            val.len(),
        )
    };
    if r < 0 {
        return Err(last_errno());
    }
    Ok(())
}

/// Reads a whole file of at most `max` bytes with raw system calls: no
/// interposed libc function and no fd of the library's table is involved.
/// `Err(None)` when it is larger.
pub fn read_file_raw(path: &std::ffi::OsStr, max: usize) -> Result<Vec<u8>, Option<Errno>> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_bytes()).map_err(|_| Some(crate::consts::EINVAL))?;
    // SAFETY: `c` is a NUL-terminated string that outlives the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat,
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(Some(last_errno()));
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let res = loop {
        // SAFETY: `buf` is writable for its length for the whole call.
        let n = unsafe { libc::syscall(libc::SYS_read, fd, buf.as_mut_ptr(), buf.len()) };
        if n < 0 {
            match last_errno() {
                libc::EINTR => continue,
                e => break Err(Some(e)),
            }
        }
        if n == 0 {
            break Ok(out);
        }
        out.extend_from_slice(&buf[..n as usize]);
        if out.len() > max {
            break Err(None);
        }
    };
    // SAFETY: closes the fd opened above, which nothing else uses.
    unsafe { libc::syscall(libc::SYS_close, fd) };
    res
}

/// Ends the process now with `code`, running no exit handler (a
/// configuration error found inside a socket call).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions.
    unsafe { libc::_exit(code) }
}

/// Runs `f` at exit (atexit); false when no slot is left.
pub fn at_exit(f: extern "C" fn()) -> bool {
    // SAFETY: registers a function that takes no arguments.
    unsafe { libc::atexit(f) == 0 }
}

/// Makes a socket file at the NUL-free path `path` (mode 0777 less the
/// umask, as bind() makes one); `EEXIST` when the name exists. std has no
/// mknod; the loopback backend's AF_UNIX pathnames need it.
pub fn mknod_socket(path: &[u8]) -> Result<(), Errno> {
    let c = std::ffi::CString::new(path).map_err(|_| crate::consts::EINVAL)?;
    // SAFETY: `c` is a NUL-terminated string that outlives the call.
    if unsafe { libc::mknod(c.as_ptr(), libc::S_IFSOCK | 0o777, 0) } != 0 {
        return Err(last_errno());
    }
    Ok(())
}

/// Whether the caller may write the file at the NUL-free path `path`, by
/// its effective ids (faccessat with AT_EACCESS): connecting to an AF_UNIX
/// socket file needs it. The errno (EACCES, ENOENT, ...) when not.
pub fn may_write_file(path: &[u8]) -> Result<(), Errno> {
    let c = std::ffi::CString::new(path).map_err(|_| crate::consts::EINVAL)?;
    // SAFETY: `c` is a NUL-terminated string that outlives the call.
    if unsafe { libc::faccessat(libc::AT_FDCWD, c.as_ptr(), libc::W_OK, libc::AT_EACCESS) } != 0 {
        return Err(last_errno());
    }
    Ok(())
}

/// Empties an eventfd (it is non-blocking, so this never waits).
pub fn eventfd_drain(fd: i32) {
    let mut v: u64 = 0;
    // SAFETY: reads 8 bytes into a live u64.
    unsafe {
        libc::syscall(libc::SYS_read, fd, &mut v as *mut u64, 8usize);
    }
}

/// `clock` in nanoseconds (the vDSO's clock_gettime: no system call).
fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes the live timespec.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

/// The wall clock (CLOCK_REALTIME) in nanoseconds since the epoch.
pub fn realtime_ns() -> u64 {
    clock_ns(libc::CLOCK_REALTIME)
}

/// The CPU the calling thread runs on (glibc reads it from rseq: no
/// system call), or -1.
pub fn current_cpu() -> i32 {
    // SAFETY: sched_getcpu takes no arguments and only reads.
    unsafe { libc::sched_getcpu() }
}

/// Sends `sig` (SIGURG, SIGIO) to an F_SETOWN owner: a process, or a
/// process group when negative (as the kernel's send_sigurg, kill_fasync).
pub fn send_owner_signal(owner: i32, sig: i32) {
    // SAFETY: kill takes plain integers.
    let _ = unsafe { libc::kill(owner, sig) };
}

/// A number the kernel publishes in a file (a sysctl under /proc/sys, an
/// interface's attribute under /sys/class/net), or None where there is no
/// such file: the kernel's configuration is the reference for the values
/// a socket reports.
pub fn kernel_number(path: &str) -> Option<i64> {
    kernel_field(path, 0)
}

/// As [`kernel_number`], for the whitespace-separated field `field` of a
/// file that holds several (tcp_rmem's three, say).
pub fn kernel_field(path: &str, field: usize) -> Option<i64> {
    std::fs::read_to_string(path)
        .ok()?
        .split_whitespace()
        .nth(field)?
        .parse()
        .ok()
}

/// The monotonic clock in nanoseconds.
pub fn mono_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// The longest a waiter may spin before it sleeps, in ns: `USOCK_SPIN_US`
/// (microseconds; 0 disables spinning), default [`SPIN_US_DEFAULT`]. How
/// long it does spin, if at all, is learned per queue
/// (`socket::spin`). On a single core a spin only delays the thread that
/// would answer, so it is off there.
pub fn spin_cap_ns() -> u64 {
    use core::sync::atomic::AtomicU64;
    static NANOS: AtomicU64 = AtomicU64::new(u64::MAX);
    let n = NANOS.load(Ordering::Relaxed);
    if n != u64::MAX {
        return n;
    }
    let us = std::env::var("USOCK_SPIN_US")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(SPIN_US_DEFAULT);
    let n = if cpus() < 2 {
        0
    } else {
        us.saturating_mul(1000)
    };
    NANOS.store(n, Ordering::Relaxed);
    n
}

/// Whether the machine had a core to spare at the last look (at most
/// [`LOAD_SAMPLE_NS`] ago): no more runnable threads than cores, so a spin
/// keeps nobody from running. On a busy machine a spinner delays the
/// threads waiting for a core (the one that would wake it among them), and
/// the CPU it burns costs it the scheduler's favour when it does sleep: a
/// two-process ping-pong took 100-190 µs spinning against 24 µs sleeping
/// at once, with one busy process per core. The count is the kernel's
/// instantaneous `nr_running` (the fourth field of /proc/loadavg), read by
/// one waiter at a time, a few microseconds every few milliseconds. `now`
/// is [`mono_ns`] as the caller read it (a waiter reads the clock once).
pub fn core_spare(now: u64) -> bool {
    use core::sync::atomic::{AtomicBool, AtomicU64};
    static SAMPLED_AT: AtomicU64 = AtomicU64::new(0);
    static SPARE: AtomicBool = AtomicBool::new(true);
    let at = SAMPLED_AT.load(Ordering::Relaxed);
    if now.saturating_sub(at) >= LOAD_SAMPLE_NS
        && SAMPLED_AT
            .compare_exchange(at, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        if let Some(running) = nr_running() {
            SPARE.store(running <= cpus(), Ordering::Relaxed);
        }
    }
    SPARE.load(Ordering::Relaxed)
}

/// The CPUs this process may run on, asked once: `available_parallelism`
/// makes several system calls (the affinity mask, the cgroup's quota files),
/// too many to make at every load sample of [`core_spare`].
fn cpus() -> usize {
    use core::sync::atomic::AtomicUsize;
    static CPUS: AtomicUsize = AtomicUsize::new(0);
    match CPUS.load(Ordering::Relaxed) {
        0 => {
            let n = std::thread::available_parallelism().map_or(1, |n| n.get());
            CPUS.store(n, Ordering::Relaxed);
            n
        }
        n => n,
    }
}

/// How often [`core_spare`] looks at the machine's load.
pub const LOAD_SAMPLE_NS: u64 = 5_000_000;

/// The kernel's count of runnable threads now (with the caller), from
/// /proc/loadavg ("0.52 0.58 0.59 3/467 12345"), with raw system calls
/// (ours would intercept `read` and `close`).
fn nr_running() -> Option<usize> {
    let path = b"/proc/loadavg\0";
    // SAFETY: openat with a NUL-terminated path and integer flags.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat,
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return None;
    }
    let mut buf = [0u8; 128];
    // SAFETY: reads at most buf.len() bytes into the live buffer.
    let n = unsafe { libc::syscall(libc::SYS_read, fd, buf.as_mut_ptr(), buf.len()) };
    let _ = kfd_close(fd as i32);
    let text = core::str::from_utf8(buf.get(..usize::try_from(n).ok()?)?).ok()?;
    let field = text.split_ascii_whitespace().nth(3)?;
    field.split('/').next()?.parse().ok()
}

/// Default spin cap in microseconds: about what a sleep and a wake-up cost
/// in latency on a virtual machine, so that a spin never costs more than
/// twice what sleeping at once would have.
pub const SPIN_US_DEFAULT: u64 = 50;

/// Returns the time left until `deadline`, or zero.
pub fn time_left(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// Sleeps on a futex word with a relaxed load first, for callers that only
/// want to block until the word changes.
pub fn wait_changed(word: &AtomicU32, seen: u32, deadline: Option<Instant>) -> bool {
    if word.load(Ordering::Acquire) != seen {
        return true;
    }
    futex_wait(word, seen, deadline)
}

/// Time from `a` to `b` (zero if `b` is earlier).
pub fn time_between(a: Instant, b: Instant) -> Duration {
    b.saturating_duration_since(a)
}

/// `net.ipv4.ip_unprivileged_port_start`: the first port a process
/// without CAP_NET_BIND_SERVICE may bind (Linux's default, 1024, when the
/// file cannot be read).
fn unprivileged_port_start() -> u32 {
    let path = std::ffi::OsStr::new("/proc/sys/net/ipv4/ip_unprivileged_port_start");
    read_file_raw(path, 32)
        .ok()
        .and_then(|b| std::str::from_utf8(&b).ok()?.trim().parse().ok())
        .unwrap_or(1024)
}

/// `net.ipv4.ip_local_port_range`: the ports an ephemeral bind picks
/// from, read once (Linux's default, 32768-60999, when the file cannot be
/// read or makes no sense).
pub fn local_port_range() -> (u16, u16) {
    static KNOWN: AtomicU32 = AtomicU32::new(0);
    let k = KNOWN.load(Ordering::Relaxed);
    if k != 0 {
        return (k as u16, (k >> 16) as u16);
    }
    let path = std::ffi::OsStr::new("/proc/sys/net/ipv4/ip_local_port_range");
    let read = read_file_raw(path, 64).ok().and_then(|b| {
        let t = std::str::from_utf8(&b).ok()?.to_owned();
        let mut it = t.split_ascii_whitespace();
        let lo: u16 = it.next()?.parse().ok()?;
        let hi: u16 = it.next()?.parse().ok()?;
        (lo >= 1 && lo <= hi).then_some((lo, hi))
    });
    let (lo, hi) = read.unwrap_or((32768, 60999));
    KNOWN.store(u32::from(lo) | u32::from(hi) << 16, Ordering::Relaxed);
    (lo, hi)
}

/// Does this process hold CAP_NET_BIND_SERVICE in its effective set?
fn has_cap_net_bind_service() -> bool {
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    const CAP_NET_BIND_SERVICE: u32 = 10;
    let mut hdr = [LINUX_CAPABILITY_VERSION_3, 0u32];
    // effective, permitted, inheritable; twice (capabilities 0-31, 32-63)
    let mut data = [0u32; 6];
    // SAFETY: capget reads the header (version, pid 0: this thread) and
    // writes two `__user_cap_data_struct`s, which `data` holds.
    let r = unsafe { libc::syscall(libc::SYS_capget, hdr.as_mut_ptr(), data.as_mut_ptr()) };
    r == 0 && data[0] & (1 << CAP_NET_BIND_SERVICE) != 0
}

/// May this process bind `port` (non-zero)? Below
/// `ip_unprivileged_port_start` only with CAP_NET_BIND_SERVICE, as
/// `inet_port_requires_bind_service` and the capability check in
/// `__inet_bind` decide; the capability is asked first, as it is one call.
pub fn may_bind_port(port: u16) -> bool {
    has_cap_net_bind_service() || u32::from(port) >= unprivileged_port_start()
}

/// The IPv4 addresses of this host's interfaces, as the kernel lists them
/// (SIOCGIFCONF on a kernel socket made and closed by raw system calls, so
/// that a preloaded program's interposed calls are not involved).
fn host_addresses4() -> Vec<[u8; 4]> {
    const MAX_IFS: usize = 64;
    // SAFETY: socket(2) with constant arguments; the fd is closed below.
    let k = unsafe { libc::syscall(libc::SYS_socket, libc::AF_INET, libc::SOCK_DGRAM, 0) };
    if k < 0 {
        return Vec::new();
    }
    // SAFETY: `ifreq` is plain data (integers, arrays, a union of them
    // and a pointer), valid all zero.
    let mut reqs: Vec<libc::ifreq> = (0..MAX_IFS)
        .map(|_| unsafe { core::mem::zeroed() })
        .collect();
    let mut conf = libc::ifconf {
        ifc_len: (MAX_IFS * core::mem::size_of::<libc::ifreq>()) as libc::c_int,
        ifc_ifcu: libc::__c_anonymous_ifc_ifcu {
            ifcu_req: reqs.as_mut_ptr(),
        },
    };
    // SAFETY: SIOCGIFCONF writes at most `ifc_len` bytes of `ifreq`s into
    // `reqs`, which holds that many, and sets `ifc_len` to what it wrote.
    let r = unsafe { libc::syscall(libc::SYS_ioctl, k, libc::SIOCGIFCONF, &mut conf) };
    // SAFETY: closes the fd made above, which nothing else uses.
    unsafe { libc::syscall(libc::SYS_close, k) };
    if r < 0 {
        return Vec::new();
    }
    let n = (conf.ifc_len.max(0) as usize / core::mem::size_of::<libc::ifreq>()).min(MAX_IFS);
    reqs[..n]
        .iter()
        .filter_map(|q| {
            // SAFETY: SIOCGIFCONF fills `ifru_addr` of each entry.
            let sa = unsafe { q.ifr_ifru.ifru_addr };
            (i32::from(sa.sa_family) == libc::AF_INET).then(|| {
                let d = sa.sa_data;
                [d[2] as u8, d[3] as u8, d[4] as u8, d[5] as u8]
            })
        })
        .collect()
}

/// The IPv6 addresses of this host's interfaces: /proc/net/if_inet6, one
/// address a line in 32 hex digits, tentative ones (not usable yet) left
/// out.
fn host_addresses6() -> Vec<[u8; 16]> {
    let path = std::ffi::OsStr::new("/proc/net/if_inet6");
    let Ok(text) = read_file_raw(path, 1 << 16) else {
        return Vec::new();
    };
    const IFA_F_TENTATIVE: u32 = 0x40;
    let text = String::from_utf8_lossy(&text);
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_ascii_whitespace();
            let hex = f.next()?;
            let flags = u32::from_str_radix(f.nth(3)?, 16).ok()?;
            if hex.len() != 32 || flags & IFA_F_TENTATIVE != 0 {
                return None;
            }
            let mut a = [0u8; 16];
            for (i, b) in a.iter_mut().enumerate() {
                *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
            }
            Some(a)
        })
        .collect()
}

/// The IPv4 address of interface `ifindex` (SIOCGIFNAME, then SIOCGIFADDR,
/// on a kernel socket made and closed by raw system calls), or None.
pub fn interface_addr4(ifindex: u32) -> Option<[u8; 4]> {
    // SAFETY: socket(2) with constant arguments; the fd is closed below.
    let k = unsafe { libc::syscall(libc::SYS_socket, libc::AF_INET, libc::SOCK_DGRAM, 0) };
    if k < 0 {
        return None;
    }
    // SAFETY: `ifreq` is plain data, valid all zero.
    let mut q: libc::ifreq = unsafe { core::mem::zeroed() };
    q.ifr_ifru.ifru_ifindex = ifindex as libc::c_int;
    // SAFETY: both requests read and write one `ifreq`, which `q` is.
    let ok = unsafe {
        libc::syscall(libc::SYS_ioctl, k, libc::SIOCGIFNAME, &mut q) == 0
            && libc::syscall(libc::SYS_ioctl, k, libc::SIOCGIFADDR, &mut q) == 0
    };
    // SAFETY: closes the fd made above, which nothing else uses.
    unsafe { libc::syscall(libc::SYS_close, k) };
    if !ok {
        return None;
    }
    // SAFETY: SIOCGIFADDR filled `ifru_addr`.
    let sa = unsafe { q.ifr_ifru.ifru_addr };
    (i32::from(sa.sa_family) == libc::AF_INET).then(|| {
        let d = sa.sa_data;
        [d[2] as u8, d[3] as u8, d[4] as u8, d[5] as u8]
    })
}

/// Is `ip` (IPv6 bytes, IPv4 as v4-mapped) an address of one of this
/// host's interfaces? Asked of the kernel each time: a bind to an address
/// that is not loopback's is rare, and interfaces come and go.
pub fn is_host_address(ip: &[u8; 16]) -> bool {
    let v4 = ip[..12] == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];
    if v4 {
        host_addresses4().iter().any(|a| a[..] == ip[12..])
    } else {
        host_addresses6().iter().any(|a| a == ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_timed_sleep_nobody_ends_times_out_at_its_deadline() {
        let word = AtomicU32::new(0);
        let start = Instant::now();
        let d = start + Duration::from_millis(20);
        assert_eq!(futex_sleep(&word, 0, Some(d)), Slept::TimedOut);
        assert!(Instant::now() >= d, "returned before its deadline");
    }

    #[test]
    fn a_sleep_past_its_deadline_does_not_sleep() {
        let word = AtomicU32::new(0);
        let past = Instant::now();
        assert_eq!(futex_sleep(&word, 0, Some(past)), Slept::TimedOut);
    }

    #[test]
    fn a_changed_word_or_a_wake_up_ends_a_timed_sleep_as_woken() {
        let word = Arc::new(AtomicU32::new(1));
        let far = Instant::now() + Duration::from_secs(10);
        // The word is not what the sleeper expects: back at once.
        assert_eq!(futex_sleep(&word, 0, Some(far)), Slept::Woken);
        let w = word.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            w.store(2, Ordering::SeqCst);
            futex_wake_all(&w);
        });
        // Woken long before the deadline (spurious returns are allowed:
        // sleep again while the word is unchanged).
        let mut r = Slept::Woken;
        while word.load(Ordering::SeqCst) == 1 {
            r = futex_sleep(&word, 1, Some(far));
        }
        t.join().unwrap();
        assert_eq!(r, Slept::Woken);
        assert!(Instant::now() < far);
    }
}

//! fork, vfork and exec with user-space sockets (hosted build only).
//!
//! A user-space socket's state (its buffers, accept queue, the backend's
//! transport and thread) lives in the memory of the process that created
//! it; a fork child gets a copy of that memory but not the threads that
//! serve it, and a copy that acted would race the parent for the same
//! connection. So:
//!
//! - **fork** never deadlocks: the library's global locks (the backend
//!   registry and each built-in backend's tables, the cross-process
//!   transport, the epoll side tables, the socket slab and the fd table's
//!   slots) are taken around it and released on both sides. `fork` is
//!   interposed, and the same handlers are registered with `pthread_atfork`
//!   (once, at the first socket) for forks that do not go through the
//!   symbol; a thread-local flag keeps them from running twice.
//! - **vfork** is our fork: a vfork child running library code would
//!   corrupt the parent's memory (POSIX allows vfork to be fork).
//! - In the **child**, every socket that existed before the fork is
//!   *inherited*: any use but close (and dup, FD_CLOEXEC, F_GETFL, fstat)
//!   fails with `EOPNOTSUPP`, and the first refused use prints one line on
//!   stderr naming the fd. close() frees only the child's fd: nothing is
//!   sent, nothing removed, nothing the parent or the peer can see. Sockets
//!   the child makes after the fork work normally.
//! - **exec**: the kernel fd that holds a socket's number always has
//!   FD_CLOEXEC (the caller's flag is kept in the fd table), so no eventfd
//!   standing in for a socket reaches a new image on any exec path. The
//!   exec calls (`execve`, `execv`, `execvp`, `execvpe`, `execveat`,
//!   `fexecve`; `execl`, `execlp` and `execle` through `exec_variadic.c`)
//!   put, at each socket fd the caller left without FD_CLOEXEC, an
//!   unconnected kernel socket (every read or write of it fails with
//!   `ENOTCONN`) and say so on stderr; a shared socket (`USOCK_SHM=1`)
//!   crosses instead, as its anchor beside its segment's memfd. If the
//!   exec fails, the sockets are put back. The spawning calls
//!   (`posix_spawn`, `posix_spawnp`, `system`, `popen`) do the same around
//!   the spawn, and put the sockets back when it returns.

#![allow(clippy::missing_safety_doc)]

use core::cell::Cell;
use core::sync::atomic::{AtomicBool, Ordering};

use libc::{c_char, c_int, pid_t};

use super::ffi::{guard, set_errno};
use crate::fd;
use crate::platform;
use crate::platform::real;
use crate::sync::Mutex;

/// Set once the first socket is made: before that a fork has nothing of
/// ours to protect.
static ACTIVE: AtomicBool = AtomicBool::new(false);

std::thread_local! {
    /// This thread is inside our fork(): the pthread_atfork handlers that
    /// libc's fork runs must not do the work a second time.
    static IN_FORK: Cell<bool> = const { Cell::new(false) };
}

/// Called before a socket's first fd is made: registers the fork handlers
/// with pthread_atfork, once. One atomic load after the first time.
#[inline]
pub fn activate() {
    if !ACTIVE.load(Ordering::Acquire) {
        activate_slow();
    }
}

#[cold]
fn activate_slow() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: registers three handlers that take no arguments.
        unsafe {
            libc::pthread_atfork(
                Some(atfork_prepare),
                Some(atfork_parent),
                Some(atfork_child),
            )
        };
        ACTIVE.store(true, Ordering::Release);
    });
}

fn in_fork() -> bool {
    IN_FORK.try_with(Cell::get).unwrap_or(false)
}

fn set_in_fork(on: bool) {
    let _ = IN_FORK.try_with(|f| f.set(on));
}

/// Held around every call into the routing rules (`route::decide`,
/// `route::set`). The rules' own lock is private to `route.rs`, so a fork
/// cannot take it; it takes this gate instead, so that no thread is inside
/// the rules at the fork and the child never finds their lock held.
static ROUTE_GATE: Mutex<()> = Mutex::new(());

/// Runs `f`, a call into `crate::route`, under the fork's route gate.
pub(crate) fn route_gate<R>(f: impl FnOnce() -> R) -> R {
    let _g = ROUTE_GATE.lock();
    f()
}

/// Takes the locks a child may need, outermost first, in the crate's lock
/// order (LOCKING.md): the route gate, the registry, then each backend's
/// own (`ForkAware`, under the registry's lock), the epoll side tables, the
/// slab's allocator and slots, the fd table's slots, the leaves.
fn prepare() {
    crate::sync::fork_hold::hold(&ROUTE_GATE);
    crate::backend::registry::fork_prepare();
    crate::socket::mux::epoll::fork_lock();
    crate::socket::slab::fork_lock();
    fd::fork_lock();
    crate::socket::timer_fork_lock();
    crate::socket::mcast_fork_lock();
    crate::socket::inflight::fork_lock();
}

/// In the parent: releases what [`prepare`] took.
fn parent() {
    crate::sync::fork_hold::release_held();
    crate::backend::registry::fork_parent();
}

/// In the child (one thread: the one that forked): a new fork generation,
/// so that every socket made before reads as inherited; the locks released;
/// the parent's transport connections and the backends' tables forgotten;
/// the forking thread's poll waker (an eventfd shared with the parent)
/// replaced.
fn child() {
    crate::socket::new_fork_generation();
    crate::sync::fork_hold::release_held();
    crate::backend::registry::fork_child();
    crate::socket::wait::thread_waker_fork_child();
    crate::socket::timer_fork_child();
}

extern "C" fn atfork_prepare() {
    guard((), || {
        if !in_fork() {
            prepare();
        }
    })
}

extern "C" fn atfork_parent() {
    guard((), || {
        if !in_fork() {
            parent();
        }
    })
}

extern "C" fn atfork_child() {
    guard((), || {
        if !in_fork() {
            child();
        }
    })
}

/// fork(2): the library's locks are held across it; in the child, the
/// sockets made before the fork are refused (see the module docs).
#[no_mangle]
pub unsafe extern "C" fn fork() -> pid_t {
    guard(-1, || {
        if !ACTIVE.load(Ordering::Acquire) {
            // No socket yet. Should the first one be made during the fork,
            // the pthread_atfork handlers registered then cover it.
            // SAFETY: libc's fork.
            return unsafe { real::fork() };
        }
        set_in_fork(true);
        prepare();
        // SAFETY: libc's fork (it runs the other pthread_atfork handlers).
        let pid = unsafe { real::fork() };
        if pid == 0 {
            child();
        } else {
            // SAFETY: __errno_location is the calling thread's errno.
            let e = unsafe { *libc::__errno_location() };
            parent();
            if pid < 0 {
                set_errno(e);
            }
        }
        set_in_fork(false);
        pid
    })
}

/// vfork(2) as fork(2): a vfork child shares the parent's memory, and the
/// library code it would run (close, dup2, exec's preparation) would change
/// the parent's fd table and sockets under it. POSIX allows vfork to
/// behave as fork.
#[no_mangle]
pub unsafe extern "C" fn vfork() -> pid_t {
    // SAFETY: same contract (a vfork child may do less than a fork child).
    unsafe { fork() }
}

/// What a refused fd is.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    /// A user-space socket.
    Socket,
    /// An epoll fd whose side table holds user-space sockets.
    Epoll,
}

/// Appends `s` to `buf` at `*at` (truncating at the end of `buf`).
fn put(buf: &mut [u8], at: &mut usize, s: &[u8]) {
    let n = s.len().min(buf.len() - *at);
    buf[*at..*at + n].copy_from_slice(&s[..n]);
    *at += n;
}

/// Appends the decimal digits of `v`.
fn put_num(buf: &mut [u8], at: &mut usize, v: i32) {
    let mut digits = [0u8; 12];
    let mut i = digits.len();
    let neg = v < 0;
    let mut u = v.unsigned_abs();
    loop {
        i -= 1;
        digits[i] = b'0' + (u % 10) as u8;
        u /= 10;
        if u == 0 {
            break;
        }
    }
    if neg {
        i -= 1;
        digits[i] = b'-';
    }
    put(buf, at, &digits[i..]);
}

/// Writes `head`, the fd number and `tail` as one line on stderr, with one
/// system call and no allocation (this runs in fork children and before
/// exec).
fn say(head: &[u8], fd: i32, tail: &[u8]) {
    let mut buf = [0u8; 256];
    let mut at = 0;
    put(&mut buf, &mut at, head);
    put_num(&mut buf, &mut at, fd);
    put(&mut buf, &mut at, tail);
    crate::platform::diag(&buf[..at]);
}

/// The one line on stderr for the first refused use of an inherited fd.
pub(crate) fn report_inherited(fd: i32, kind: Kind) {
    let what: &[u8] = match kind {
        Kind::Socket => b" is a user-space socket inherited across fork",
        Kind::Epoll => b" is an epoll fd holding user-space sockets inherited across fork",
    };
    let mut tail = [0u8; 160];
    let mut at = 0;
    put(&mut tail, &mut at, what);
    put(
        &mut tail,
        &mut at,
        b"; only the process that created it can use it (EOPNOTSUPP)\n",
    );
    say(b"usock: fd ", fd, &tail[..at]);
}

/// Before an exec: every socket fd the caller left without FD_CLOEXEC gets
/// a stand-in, an unconnected kernel AF_UNIX socket without FD_CLOEXEC, and
/// a line on stderr. Its type is SOCK_SEQPACKET: that is the kernel socket
/// whose read, write, send and recv all fail with ENOTCONN while
/// unconnected (an unconnected SOCK_STREAM one reads EINVAL). The user-space
/// socket stays in the table; its kernel fd (a duplicate of the anchor
/// eventfd) is put back by [`restore_after_exec`].
///
/// A shared socket crosses instead, as its anchor with its segment's memfd
/// beside it (SHARED.md): the new image's library adopts both. For a spawn
/// (`spawn`), whose file actions may dup2 any fd to a number that crosses,
/// the sockets with FD_CLOEXEC get their anchor too, keeping the flag.
fn before_exec(spawn: bool) {
    if !ACTIVE.load(Ordering::Acquire) {
        return;
    }
    fd::for_each_ours(|n, cloexec| {
        if cloexec && !spawn {
            return;
        }
        if let Some((anchor, memfd)) = fd::get(n).and_then(|s| s.shared_exec_fds()) {
            let flags = if cloexec { libc::O_CLOEXEC } else { 0 };
            if platform::kfd_dup3(anchor, n, flags).is_ok() {
                if memfd >= 0 {
                    let _ = platform::kfd_fcntl(memfd, libc::F_SETFD, 0);
                }
                return;
            }
        }
        if cloexec {
            return;
        }
        say(
            b"usock: fd ",
            n,
            b" is a user-space socket and cannot cross exec; the new program gets an unconnected socket there (ENOTCONN)\n",
        );
        // SAFETY: socket() with integer arguments, as the raw system call
        // (the library's socket() would make a user-space socket).
        let k = unsafe {
            libc::syscall(
                libc::SYS_socket,
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
            )
        };
        if k < 0 {
            // No stand-in: the number just closes at exec (FD_CLOEXEC).
            return;
        }
        let _ = platform::kfd_dup3(k as i32, n, 0);
        let _ = platform::kfd_close(k as i32);
    });
}

/// The exec failed, or a spawn has made its child (which has its own copy
/// of the fds): every socket fd holds its own number again (any duplicate
/// of the anchor eventfd will do) and the memfds their FD_CLOEXEC. errno
/// is kept.
fn restore_after_exec() {
    if !ACTIVE.load(Ordering::Acquire) {
        return;
    }
    // SAFETY: __errno_location is the calling thread's errno.
    let e = unsafe { *libc::__errno_location() };
    fd::for_each_ours(|n, _| {
        let _ = platform::kfd_anchor_at(n);
        if let Some((_, memfd)) = fd::get(n).and_then(|s| s.shared_exec_fds()) {
            if memfd >= 0 {
                let _ = platform::kfd_fcntl(memfd, libc::F_SETFD, libc::FD_CLOEXEC as u64);
            }
        }
    });
    set_errno(e);
}

/// At load: the shared sockets this process inherited across exec (unless
/// `USOCK_SHM=0`) become sockets of the library again, at the numbers the
/// program holds them at (SHARED.md, "exec").
extern "C" fn adopt_at_load() {
    guard((), adopt_inherited);
}

#[used]
#[link_section = ".init_array"]
static ADOPT_AT_LOAD: extern "C" fn() = adopt_at_load;

fn adopt_inherited() {
    if !crate::backends::shm_enabled() {
        return;
    }
    let Some(dir) = std::env::var_os("USOCK_NET") else {
        return;
    };
    // A scan first: most programs inherit nothing, and then nothing else
    // of the library starts here.
    let found = crate::backends::shm::backend::Shm::new(dir.into()).inherited();
    if found.is_empty() || super::ready().is_err() {
        return;
    }
    // Exec'd under a seccomp filter (a sandbox that runs programs with
    // sockets): its filters cannot be read back, so only plain calls.
    if platform::sandbox::kernel_says_filtered() {
        platform::sandbox::filtered_unknown();
    }
    activate();
    adopt(found, false);
}

/// Makes each socket of the shm backend that this process received (at
/// exec, or in SCM_RIGHTS) a socket of the library at the numbers it
/// arrived at; `cloexec` is their FD_CLOEXEC.
pub(crate) fn adopt(
    found: alloc::vec::Vec<crate::backends::shm::backend::Inherited>,
    cloexec: bool,
) {
    let Some(shm) = crate::backends::shm_backend() else {
        return;
    };
    for i in found {
        let backend: alloc::sync::Arc<dyn crate::backend::contract::Backend> = shm.clone();
        let Ok(sock) = crate::socket::Socket::adopted(i.info, backend, i.state, i.listening) else {
            continue;
        };
        for (k, &n) in i.fds.iter().enumerate() {
            // The number goes back to being a stand-in like every socket's
            // (the library's own duplicate keeps the anchor): a write that
            // bypasses the library (glibc's stdio calls the kernel
            // directly) then fails as on any user-space socket, instead of
            // putting bytes on the anchor, where they would be lost.
            let _ = platform::kfd_anchor_at(n);
            if k > 0 {
                sock.add_ref();
            }
            if !fd::insert(n, sock.clone(), cloexec) {
                sock.drop_ref();
            }
        }
    }
}

/// Runs one exec call between [`before_exec`] and, when it returns (it
/// failed), [`restore_after_exec`].
fn exec_with(f: impl FnOnce() -> c_int) -> c_int {
    before_exec(false);
    let r = f();
    restore_after_exec();
    r
}

/// Runs one call that spawns a program (posix_spawn, system, popen) the
/// same way: its child is made with a copy of the fds as they are inside
/// the call.
fn spawn_with<R>(f: impl FnOnce() -> R) -> R {
    before_exec(true);
    let r = f();
    restore_after_exec();
    r
}

/// execve(2): see the module docs for the sockets.
#[no_mangle]
pub unsafe extern "C" fn execve(
    path: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    // SAFETY: libc's execve with the caller's arguments.
    guard(-1, || {
        exec_with(|| unsafe { real::execve(path, argv, envp) })
    })
}

/// execv(3): see the module docs for the sockets.
#[no_mangle]
pub unsafe extern "C" fn execv(path: *const c_char, argv: *const *const c_char) -> c_int {
    // SAFETY: libc's execv with the caller's arguments.
    guard(-1, || exec_with(|| unsafe { real::execv(path, argv) }))
}

/// execvp(3): see the module docs for the sockets.
#[no_mangle]
pub unsafe extern "C" fn execvp(file: *const c_char, argv: *const *const c_char) -> c_int {
    // SAFETY: libc's execvp with the caller's arguments.
    guard(-1, || exec_with(|| unsafe { real::execvp(file, argv) }))
}

/// execvpe(3): see the module docs for the sockets.
#[no_mangle]
pub unsafe extern "C" fn execvpe(
    file: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    // SAFETY: libc's execvpe with the caller's arguments.
    guard(-1, || {
        exec_with(|| unsafe { real::execvpe(file, argv, envp) })
    })
}

/// fexecve(3): see the module docs for the sockets.
#[no_mangle]
pub unsafe extern "C" fn fexecve(
    fd_: c_int,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    // SAFETY: libc's fexecve with the caller's arguments.
    guard(-1, || {
        exec_with(|| unsafe { real::fexecve(fd_, argv, envp) })
    })
}

/// execl's, execlp's and execle's way in (`exec_variadic.c`, which
/// gathers their arguments): execve with the sockets handed on.
#[no_mangle]
pub unsafe extern "C" fn userspacesock_execve_argv(
    path: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    // SAFETY: execve's contract, passed on.
    unsafe { execve(path, argv, envp) }
}

/// execlp's way in: execvp with the sockets handed on.
#[no_mangle]
pub unsafe extern "C" fn userspacesock_execvp_argv(
    file: *const c_char,
    argv: *const *const c_char,
) -> c_int {
    // SAFETY: execvp's contract, passed on.
    unsafe { execvp(file, argv) }
}

/// posix_spawn(3). The child is a copy of this process's fd table taken
/// inside the call, so the sockets are prepared here as for an exec and
/// put back when it returns (the child has exec'd by then, or failed).
#[no_mangle]
pub unsafe extern "C" fn posix_spawn(
    pid: *mut pid_t,
    path: *const c_char,
    actions: *const libc::posix_spawn_file_actions_t,
    attr: *const libc::posix_spawnattr_t,
    argv: *const *mut c_char,
    envp: *const *mut c_char,
) -> c_int {
    guard(libc::EIO, || {
        // SAFETY: libc's posix_spawn with the caller's arguments.
        spawn_with(|| unsafe { real::posix_spawn(pid, path, actions, attr, argv, envp) })
    })
}

/// posix_spawnp(3): as [`posix_spawn`].
#[no_mangle]
pub unsafe extern "C" fn posix_spawnp(
    pid: *mut pid_t,
    file: *const c_char,
    actions: *const libc::posix_spawn_file_actions_t,
    attr: *const libc::posix_spawnattr_t,
    argv: *const *mut c_char,
    envp: *const *mut c_char,
) -> c_int {
    guard(libc::EIO, || {
        // SAFETY: libc's posix_spawnp with the caller's arguments.
        spawn_with(|| unsafe { real::posix_spawnp(pid, file, actions, attr, argv, envp) })
    })
}

/// system(3): glibc spawns the shell inside libc, so the sockets are
/// prepared around the whole call, as for [`posix_spawn`]; they are back
/// at their numbers when the command has finished.
#[no_mangle]
pub unsafe extern "C" fn system(cmd: *const c_char) -> c_int {
    // SAFETY: libc's system with the caller's argument.
    guard(-1, || spawn_with(|| unsafe { real::system(cmd) }))
}

/// libc's popen, resolved at its first use (the table of `real` holds the
/// calls that return an int or a size).
static REAL_POPEN: real::NextFn = real::NextFn::new(b"popen\0");

/// popen's type.
type Popen = unsafe extern "C" fn(*const c_char, *const c_char) -> *mut libc::FILE;

/// popen(3): as [`system`], around the spawn of the shell.
#[no_mangle]
pub unsafe extern "C" fn popen(cmd: *const c_char, mode: *const c_char) -> *mut libc::FILE {
    guard(core::ptr::null_mut(), || {
        // SAFETY: the address dlsym gave for "popen", which has this type.
        let f = unsafe { core::mem::transmute::<usize, Popen>(REAL_POPEN.get()) };
        // SAFETY: libc's popen with the caller's arguments.
        spawn_with(|| unsafe { f(cmd, mode) })
    })
}

/// execveat(2), as the system call (libc has it only from glibc 2.34, and
/// a missing symbol must not stop the library from loading): see the
/// module docs for the sockets.
#[no_mangle]
pub unsafe extern "C" fn execveat(
    dirfd: c_int,
    path: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
    flags: c_int,
) -> c_int {
    guard(-1, || {
        exec_with(|| {
            // SAFETY: the system call with the caller's arguments.
            let r = unsafe { libc::syscall(libc::SYS_execveat, dirfd, path, argv, envp, flags) };
            r as c_int
        })
    })
}

//! The next definitions of the calls the library exports (libc's), for fds
//! that are not ours. Resolved lazily with `dlsym(RTLD_NEXT)` on first use
//! and cached in an atomic: the passthrough path is one load and an
//! indirect call, with no lock and no allocation after the first call.

#[cfg(feature = "std")]
use core::sync::atomic::{AtomicUsize, Ordering};
#[cfg(feature = "std")]
use libc::c_char;
use libc::{c_int, c_void};

/// Resolves `sym` (NUL-terminated) in the objects after this one.
#[cfg(feature = "std")]
fn resolve(sym: &'static [u8]) -> usize {
    // SAFETY: `sym` is a NUL-terminated static string.
    let p = unsafe { libc::dlsym(libc::RTLD_NEXT, sym.as_ptr() as *const c_char) };
    if p.is_null() {
        let msg = b"libuserspacesock: cannot resolve the next definition of a libc call\n";
        crate::platform::diag(msg);
        // There is no way to continue without libc's call.
        std::process::abort();
    }
    p as usize
}

/// Cached address of one next definition.
#[cfg(feature = "std")]
pub struct NextFn {
    addr: AtomicUsize,
    sym: &'static [u8],
}

#[cfg(feature = "std")]
impl NextFn {
    /// A lazily resolved symbol; `sym` must end with a NUL byte.
    pub const fn new(sym: &'static [u8]) -> Self {
        NextFn {
            addr: AtomicUsize::new(0),
            sym,
        }
    }

    /// The address, resolving it on first use.
    #[inline]
    pub fn get(&self) -> usize {
        let a = self.addr.load(Ordering::Relaxed);
        if a != 0 {
            return a;
        }
        let a = resolve(self.sym);
        self.addr.store(a, Ordering::Relaxed);
        a
    }
}

#[cfg(feature = "std")]
macro_rules! next_fns {
    ($( $name:ident = $sym:literal : fn($($a:ident : $t:ty),*) -> $r:ty; )*) => {
        /// The cached next definitions, one per wrapped call.
        mod slots {
            $(
                #[allow(non_upper_case_globals)]
                pub static $name: super::NextFn = super::NextFn::new(concat!($sym, "\0").as_bytes());
            )*
        }

        /// Resolves every next definition now, so that the passthrough path
        /// never calls dlsym (which allocates and is not async-signal-safe).
        pub fn resolve_all() {
            $( slots::$name.get(); )*
        }

        $(
            #[doc = concat!("Calls libc's `", $sym, "`.")]
            ///
            /// # Safety
            /// The arguments must satisfy the C contract of the call.
            #[inline]
            pub unsafe fn $name($($a: $t),*) -> $r {
                // SAFETY: the address is libc's definition of this symbol,
                // whose C signature is the one declared here.
                let f: unsafe extern "C" fn($($t),*) -> $r = unsafe { core::mem::transmute(slots::$name.get()) };
                // SAFETY: the caller passes the arguments the C contract of
                // the call asks for.
                unsafe { f($($a),*) }
            }
        )*
    };
}

/// Without an operating system there is no next definition: an fd that is
/// not one of our sockets is EBADF.
#[cfg(not(feature = "std"))]
macro_rules! next_fns {
    ($( $name:ident = $sym:literal : fn($($a:ident : $t:ty),*) -> $r:ty; )*) => {
        $(
            #[doc = concat!("`", $sym, "` on an fd that is not ours: EBADF.")]
            ///
            /// # Safety
            /// No requirement: the arguments are not used.
            #[inline]
            pub unsafe fn $name($(_: $t),*) -> $r {
                crate::platform::set_errno(crate::consts::EBADF);
                -1 as $r
            }
        )*
    };
}

#[cfg(feature = "std")]
extern "C" fn resolve_at_load() {
    resolve_all();
}

/// Runs when the library is loaded: resolving the next definitions then,
/// once, keeps dlsym off the passthrough path of later calls (a signal
/// handler's write() must not allocate). dlsym takes no lock a program can
/// hold at load time, so this cannot deadlock.
#[cfg(feature = "std")]
#[used]
#[link_section = ".init_array"]
static RESOLVE_AT_LOAD: extern "C" fn() = resolve_at_load;

next_fns! {
    socket = "socket": fn(d: c_int, t: c_int, p: c_int) -> c_int;
    socketpair = "socketpair": fn(d: c_int, t: c_int, p: c_int, sv: *mut c_int) -> c_int;
    bind = "bind": fn(fd: c_int, a: *const libc::sockaddr, l: libc::socklen_t) -> c_int;
    listen = "listen": fn(fd: c_int, b: c_int) -> c_int;
    accept = "accept": fn(fd: c_int, a: *mut libc::sockaddr, l: *mut libc::socklen_t) -> c_int;
    accept4 = "accept4": fn(fd: c_int, a: *mut libc::sockaddr, l: *mut libc::socklen_t, f: c_int) -> c_int;
    connect = "connect": fn(fd: c_int, a: *const libc::sockaddr, l: libc::socklen_t) -> c_int;
    send = "send": fn(fd: c_int, b: *const c_void, n: usize, f: c_int) -> isize;
    sendto = "sendto": fn(fd: c_int, b: *const c_void, n: usize, f: c_int, a: *const libc::sockaddr, l: libc::socklen_t) -> isize;
    sendmsg = "sendmsg": fn(fd: c_int, m: *const libc::msghdr, f: c_int) -> isize;
    recv = "recv": fn(fd: c_int, b: *mut c_void, n: usize, f: c_int) -> isize;
    recvfrom = "recvfrom": fn(fd: c_int, b: *mut c_void, n: usize, f: c_int, a: *mut libc::sockaddr, l: *mut libc::socklen_t) -> isize;
    recvmsg = "recvmsg": fn(fd: c_int, m: *mut libc::msghdr, f: c_int) -> isize;
    read = "read": fn(fd: c_int, b: *mut c_void, n: usize) -> isize;
    write = "write": fn(fd: c_int, b: *const c_void, n: usize) -> isize;
    readv = "readv": fn(fd: c_int, v: *const libc::iovec, n: c_int) -> isize;
    writev = "writev": fn(fd: c_int, v: *const libc::iovec, n: c_int) -> isize;
    shutdown = "shutdown": fn(fd: c_int, h: c_int) -> c_int;
    close = "close": fn(fd: c_int) -> c_int;
    getsockname = "getsockname": fn(fd: c_int, a: *mut libc::sockaddr, l: *mut libc::socklen_t) -> c_int;
    getpeername = "getpeername": fn(fd: c_int, a: *mut libc::sockaddr, l: *mut libc::socklen_t) -> c_int;
    getsockopt = "getsockopt": fn(fd: c_int, lv: c_int, n: c_int, v: *mut c_void, l: *mut libc::socklen_t) -> c_int;
    setsockopt = "setsockopt": fn(fd: c_int, lv: c_int, n: c_int, v: *const c_void, l: libc::socklen_t) -> c_int;
    fcntl = "fcntl": fn(fd: c_int, cmd: c_int, arg: libc::c_ulong) -> c_int;
    fcntl64 = "fcntl64": fn(fd: c_int, cmd: c_int, arg: libc::c_ulong) -> c_int;
    ioctl = "ioctl": fn(fd: c_int, req: libc::c_ulong, arg: *mut c_void) -> c_int;
    dup = "dup": fn(fd: c_int) -> c_int;
    dup2 = "dup2": fn(a: c_int, b: c_int) -> c_int;
    dup3 = "dup3": fn(a: c_int, b: c_int, f: c_int) -> c_int;
    poll = "poll": fn(f: *mut libc::pollfd, n: libc::nfds_t, t: c_int) -> c_int;
    ppoll = "ppoll": fn(f: *mut libc::pollfd, n: libc::nfds_t, t: *const libc::timespec, s: *const libc::sigset_t) -> c_int;
    select = "select": fn(n: c_int, r: *mut libc::fd_set, w: *mut libc::fd_set, e: *mut libc::fd_set, t: *mut libc::timeval) -> c_int;
    sendfile = "sendfile": fn(o: c_int, i: c_int, off: *mut libc::off_t, n: usize) -> isize;
    sendfile64 = "sendfile64": fn(o: c_int, i: c_int, off: *mut libc::off64_t, n: usize) -> isize;
    splice = "splice": fn(fi: c_int, oi: *mut libc::loff_t, fo: c_int, oo: *mut libc::loff_t, n: usize, f: libc::c_uint) -> isize;
    sendmmsg = "sendmmsg": fn(fd: c_int, v: *mut libc::mmsghdr, n: libc::c_uint, f: c_int) -> c_int;
    recvmmsg = "recvmmsg": fn(fd: c_int, v: *mut libc::mmsghdr, n: libc::c_uint, f: c_int, t: *mut libc::timespec) -> c_int;
    close_range = "close_range": fn(a: libc::c_uint, b: libc::c_uint, f: c_int) -> c_int;
    pread = "pread": fn(fd: c_int, b: *mut c_void, n: usize, off: libc::off_t) -> isize;
    read_chk = "__read_chk": fn(fd: c_int, b: *mut c_void, n: usize, bl: usize) -> isize;
    recv_chk = "__recv_chk": fn(fd: c_int, b: *mut c_void, n: usize, bl: usize, f: c_int) -> isize;
    recvfrom_chk = "__recvfrom_chk": fn(fd: c_int, b: *mut c_void, n: usize, bl: usize, f: c_int, a: *mut libc::sockaddr, l: *mut libc::socklen_t) -> isize;
    poll_chk = "__poll_chk": fn(f: *mut libc::pollfd, n: libc::nfds_t, t: c_int, fl: usize) -> c_int;
    fstat = "fstat": fn(fd: c_int, st: *mut libc::stat) -> c_int;
    fstat64 = "fstat64": fn(fd: c_int, st: *mut libc::stat64) -> c_int;
    pselect = "pselect": fn(n: c_int, r: *mut libc::fd_set, w: *mut libc::fd_set, e: *mut libc::fd_set, t: *const libc::timespec, s: *const libc::sigset_t) -> c_int;
    epoll_create = "epoll_create": fn(size: c_int) -> c_int;
    epoll_create1 = "epoll_create1": fn(flags: c_int) -> c_int;
    epoll_ctl = "epoll_ctl": fn(epfd: c_int, op: c_int, fd: c_int, ev: *mut libc::epoll_event) -> c_int;
    epoll_wait = "epoll_wait": fn(epfd: c_int, ev: *mut libc::epoll_event, n: c_int, t: c_int) -> c_int;
    epoll_pwait = "epoll_pwait": fn(epfd: c_int, ev: *mut libc::epoll_event, n: c_int, t: c_int, s: *const libc::sigset_t) -> c_int;
    fork = "fork": fn() -> libc::pid_t;
    prctl = "prctl": fn(o: c_int, a2: libc::c_ulong, a3: libc::c_ulong, a4: libc::c_ulong, a5: libc::c_ulong) -> c_int;
    execve = "execve": fn(p: *const libc::c_char, a: *const *const libc::c_char, e: *const *const libc::c_char) -> c_int;
    execv = "execv": fn(p: *const libc::c_char, a: *const *const libc::c_char) -> c_int;
    execvp = "execvp": fn(p: *const libc::c_char, a: *const *const libc::c_char) -> c_int;
    execvpe = "execvpe": fn(p: *const libc::c_char, a: *const *const libc::c_char, e: *const *const libc::c_char) -> c_int;
    fexecve = "fexecve": fn(fd: c_int, a: *const *const libc::c_char, e: *const *const libc::c_char) -> c_int;
    posix_spawn = "posix_spawn": fn(pid: *mut libc::pid_t, p: *const libc::c_char, fa: *const libc::posix_spawn_file_actions_t, at: *const libc::posix_spawnattr_t, a: *const *mut libc::c_char, e: *const *mut libc::c_char) -> c_int;
    posix_spawnp = "posix_spawnp": fn(pid: *mut libc::pid_t, p: *const libc::c_char, fa: *const libc::posix_spawn_file_actions_t, at: *const libc::posix_spawnattr_t, a: *const *mut libc::c_char, e: *const *mut libc::c_char) -> c_int;
    system = "system": fn(cmd: *const libc::c_char) -> c_int;
}

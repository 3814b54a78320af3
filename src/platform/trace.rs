//! Call tracing (`USOCK_TRACE=calls`, issue 16): one line per call on a
//! user-space socket, strace-style, with its arguments, result and errno,
//! from every process, to stderr or to `USOCK_TRACE_FILE` (appended, whole
//! lines, so that several processes can share it):
//!
//! ```text
//! [4711] connect(5, 0x7ffc9a2b1f40, 16) = -1 EINPROGRESS (Operation now in progress)
//! ```
//!
//! Off, [`enabled`] is one relaxed load and a predictable branch.

use core::fmt::Write as _;
use core::sync::atomic::{AtomicI32, AtomicU8, Ordering};

const UNKNOWN: u8 = 0;
const OFF: u8 = 1;
const ON: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(UNKNOWN);
/// Where lines go: a copy of stderr taken when tracing started, or the
/// trace file; -1: nowhere (stderr was closed).
static FD: AtomicI32 = AtomicI32::new(-1);

/// Whether calls are traced.
#[inline]
pub fn enabled() -> bool {
    match STATE.load(Ordering::Relaxed) {
        ON => true,
        OFF => false,
        _ => init(),
    }
}

#[cold]
fn init() -> bool {
    let on = std::env::var("USOCK_TRACE")
        .is_ok_and(|v| v.split([',', ' ']).any(|w| w == "calls" || w == "all"));
    if on {
        // Our own copy of stderr, at a high number: a daemon that closes
        // fd 2 and gets it back from accept() must not receive our lines
        // on its connection (strace writes to its own stderr too).
        // SAFETY: fcntl on fd 2 with integer arguments (the raw call: the
        // library interposes libc's fcntl).
        let copy = unsafe { libc::syscall(libc::SYS_fcntl, 2, libc::F_DUPFD_CLOEXEC, 512) };
        FD.store(if copy >= 0 { copy as i32 } else { -1 }, Ordering::Relaxed);
        if let Some(path) = std::env::var_os("USOCK_TRACE_FILE").filter(|p| !p.is_empty()) {
            use std::os::fd::IntoRawFd as _;
            use std::os::unix::fs::OpenOptionsExt as _;
            match std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o644)
                .custom_flags(libc::O_CLOEXEC)
                .open(&path)
            {
                Ok(f) => {
                    let old = FD.swap(f.into_raw_fd(), Ordering::Relaxed);
                    if old >= 0 {
                        super::kfd_close(old).ok();
                    }
                }
                Err(e) => super::diag(
                    alloc::format!(
                        "libuserspacesock: USOCK_TRACE_FILE={}: {e}; tracing to stderr\n",
                        path.to_string_lossy()
                    )
                    .as_bytes(),
                ),
            }
        }
    }
    match STATE.compare_exchange(
        UNKNOWN,
        if on { ON } else { OFF },
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        Ok(_) => on,
        Err(now) => now == ON,
    }
}

const ERRNO_NAMES: [&str; 134] = [
    "",
    "EPERM",
    "ENOENT",
    "ESRCH",
    "EINTR",
    "EIO",
    "ENXIO",
    "E2BIG",
    "ENOEXEC",
    "EBADF",
    "ECHILD",
    "EAGAIN",
    "ENOMEM",
    "EACCES",
    "EFAULT",
    "ENOTBLK",
    "EBUSY",
    "EEXIST",
    "EXDEV",
    "ENODEV",
    "ENOTDIR",
    "EISDIR",
    "EINVAL",
    "ENFILE",
    "EMFILE",
    "ENOTTY",
    "ETXTBSY",
    "EFBIG",
    "ENOSPC",
    "ESPIPE",
    "EROFS",
    "EMLINK",
    "EPIPE",
    "EDOM",
    "ERANGE",
    "EDEADLK",
    "ENAMETOOLONG",
    "ENOLCK",
    "ENOSYS",
    "ENOTEMPTY",
    "ELOOP",
    "",
    "ENOMSG",
    "EIDRM",
    "ECHRNG",
    "EL2NSYNC",
    "EL3HLT",
    "EL3RST",
    "ELNRNG",
    "EUNATCH",
    "ENOCSI",
    "EL2HLT",
    "EBADE",
    "EBADR",
    "EXFULL",
    "ENOANO",
    "EBADRQC",
    "EBADSLT",
    "",
    "EBFONT",
    "ENOSTR",
    "ENODATA",
    "ETIME",
    "ENOSR",
    "ENONET",
    "ENOPKG",
    "EREMOTE",
    "ENOLINK",
    "EADV",
    "ESRMNT",
    "ECOMM",
    "EPROTO",
    "EMULTIHOP",
    "EDOTDOT",
    "EBADMSG",
    "EOVERFLOW",
    "ENOTUNIQ",
    "EBADFD",
    "EREMCHG",
    "ELIBACC",
    "ELIBBAD",
    "ELIBSCN",
    "ELIBMAX",
    "ELIBEXEC",
    "EILSEQ",
    "ERESTART",
    "ESTRPIPE",
    "EUSERS",
    "ENOTSOCK",
    "EDESTADDRREQ",
    "EMSGSIZE",
    "EPROTOTYPE",
    "ENOPROTOOPT",
    "EPROTONOSUPPORT",
    "ESOCKTNOSUPPORT",
    "EOPNOTSUPP",
    "EPFNOSUPPORT",
    "EAFNOSUPPORT",
    "EADDRINUSE",
    "EADDRNOTAVAIL",
    "ENETDOWN",
    "ENETUNREACH",
    "ENETRESET",
    "ECONNABORTED",
    "ECONNRESET",
    "ENOBUFS",
    "EISCONN",
    "ENOTCONN",
    "ESHUTDOWN",
    "ETOOMANYREFS",
    "ETIMEDOUT",
    "ECONNREFUSED",
    "EHOSTDOWN",
    "EHOSTUNREACH",
    "EALREADY",
    "EINPROGRESS",
    "ESTALE",
    "EUCLEAN",
    "ENOTNAM",
    "ENAVAIL",
    "EISNAM",
    "EREMOTEIO",
    "EDQUOT",
    "ENOMEDIUM",
    "EMEDIUMTYPE",
    "ECANCELED",
    "ENOKEY",
    "EKEYEXPIRED",
    "EKEYREVOKED",
    "EKEYREJECTED",
    "EOWNERDEAD",
    "ENOTRECOVERABLE",
    "ERFKILL",
    "",
];

/// Traces a call that returned `ret` (with `errno` when it is -1);
/// `args` are its arguments as the trace shows them.
pub fn call(name: &'static str, args: &[alloc::string::String], ret: i64, errno: i32) {
    let n = args.len();
    let mut line = alloc::string::String::with_capacity(96);
    let _ = write!(line, "[{}] {name}(", std::process::id());
    for (i, a) in args[..n].iter().enumerate() {
        if i > 0 {
            line.push_str(", ");
        }
        line.push_str(a);
    }
    let _ = write!(line, ") = {ret}");
    if ret == -1 {
        let ename = ERRNO_NAMES
            .get(errno as usize)
            .copied()
            .filter(|n| !n.is_empty());
        let msg = std::io::Error::from_raw_os_error(errno).to_string();
        let msg = msg.split(" (os error").next().unwrap_or("");
        let _ = match ename {
            Some(e) => write!(line, " {e} ({msg})"),
            None => write!(line, " E{errno} ({msg})"),
        };
    }
    line.push('\n');
    let fd = FD.load(Ordering::Relaxed);
    if fd < 0 {
        return;
    }
    // SAFETY: writes a local buffer to our descriptor (the raw call: the
    // library interposes libc's write).
    unsafe { libc::syscall(libc::SYS_write, fd, line.as_ptr(), line.len()) };
}

//! The C veneers' side of call tracing (`USOCK_TRACE=calls`,
//! `platform::trace`): each call on a user-space socket reports its name,
//! arguments and result here, and its socket addresses are shown decoded
//! (`{AF_INET 127.0.0.1:80}`) as strace shows them. Without the hosted
//! platform nothing is traced and these compile to nothing.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::addr::{IpEp, SockAddr, UnixName};
use crate::consts::*;

/// One argument of a traced call, as the call received it.
#[derive(Clone, Copy, Debug)]
pub enum Arg {
    /// An integer (fd, length, flags...).
    Int(i64),
    /// A pointer shown as NULL or in hex.
    Ptr(usize),
    /// An input address; the next argument is its length.
    AddrIn(*const libc::sockaddr),
    /// An output address; the next argument points at its length.
    AddrOut(*mut libc::sockaddr),
    /// An output address's length.
    LenOut(*mut libc::socklen_t),
}

macro_rules! int_arg {
    ($($t:ty),*) => {$(
        impl From<$t> for Arg {
            fn from(v: $t) -> Arg {
                Arg::Int(v as i64)
            }
        }
    )*};
}
int_arg!(i32, u32, i64, u64, usize);

impl From<*const libc::c_void> for Arg {
    fn from(p: *const libc::c_void) -> Arg {
        Arg::Ptr(p as usize)
    }
}

impl From<*mut libc::c_void> for Arg {
    fn from(p: *mut libc::c_void) -> Arg {
        Arg::Ptr(p as usize)
    }
}

impl From<*const libc::iovec> for Arg {
    fn from(p: *const libc::iovec) -> Arg {
        Arg::Ptr(p as usize)
    }
}

impl From<*const libc::msghdr> for Arg {
    fn from(p: *const libc::msghdr) -> Arg {
        Arg::Ptr(p as usize)
    }
}

impl From<*mut libc::msghdr> for Arg {
    fn from(p: *mut libc::msghdr) -> Arg {
        Arg::Ptr(p as usize)
    }
}

impl From<*const libc::sockaddr> for Arg {
    fn from(p: *const libc::sockaddr) -> Arg {
        Arg::AddrIn(p)
    }
}

impl From<*mut libc::sockaddr> for Arg {
    fn from(p: *mut libc::sockaddr) -> Arg {
        Arg::AddrOut(p)
    }
}

impl From<*mut libc::socklen_t> for Arg {
    fn from(p: *mut libc::socklen_t) -> Arg {
        Arg::LenOut(p)
    }
}

/// An argument of a traced call.
#[inline]
pub fn arg<T: Into<Arg>>(v: T) -> Arg {
    v.into()
}

/// `a` as the trace shows it: the family and, for IP, the address and
/// port; for AF_UNIX the path or `@` and the abstract name.
fn show_addr(a: &SockAddr) -> String {
    match a.family() {
        fam @ (AF_INET | AF_INET6) => match IpEp::parse(a, fam) {
            Ok(ep) if fam == AF_INET => {
                let ip = core::net::Ipv4Addr::new(ep.ip[12], ep.ip[13], ep.ip[14], ep.ip[15]);
                format!("{{AF_INET {ip}:{}}}", ep.port)
            }
            Ok(ep) => format!(
                "{{AF_INET6 [{}]:{}}}",
                core::net::Ipv6Addr::from(ep.ip),
                ep.port
            ),
            Err(_) => format!("{{family {fam}}}"),
        },
        AF_UNIX => match UnixName::parse(a) {
            Ok(UnixName::Unnamed) => String::from("{AF_UNIX}"),
            Ok(UnixName::Path(p)) => format!("{{AF_UNIX {:?}}}", String::from_utf8_lossy(&p)),
            Ok(UnixName::Abstract(n)) => format!("{{AF_UNIX @{:?}}}", String::from_utf8_lossy(&n)),
            Err(_) => String::from("{AF_UNIX}"),
        },
        f => format!("{{family {f}}}"),
    }
}

/// The arguments' text; addresses are read only where `ffi` says the
/// memory is there, and an output address only after a success.
fn render(args: &[Arg], ret: i64) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    for (i, a) in args.iter().enumerate() {
        let next = args.get(i + 1).copied();
        out.push(match *a {
            Arg::Int(v) => format!("{v}"),
            Arg::Ptr(0) => String::from("NULL"),
            Arg::Ptr(p) => format!("{p:#x}"),
            Arg::AddrIn(p) if p.is_null() => String::from("NULL"),
            Arg::AddrIn(p) => match next {
                // SAFETY: read_addr probes the memory first.
                Some(Arg::Int(len)) => {
                    match unsafe { super::ffi::read_addr(p, len as libc::socklen_t) } {
                        Ok(sa) => show_addr(&sa),
                        Err(_) => format!("{:#x}", p as usize),
                    }
                }
                _ => format!("{:#x}", p as usize),
            },
            Arg::AddrOut(p) if p.is_null() => String::from("NULL"),
            Arg::AddrOut(p) => match next {
                Some(Arg::LenOut(lp)) if ret >= 0 && !lp.is_null() => {
                    // SAFETY: after a successful call the length and the
                    // address were just written; probe before reading.
                    let len =
                        (super::ffi::probe(lp as *const u8, 4).is_ok()).then(|| unsafe { *lp });
                    match len.map(|l| unsafe { super::ffi::read_addr(p, l) }) {
                        Some(Ok(sa)) => show_addr(&sa),
                        _ => format!("{:#x}", p as usize),
                    }
                }
                _ => format!("{:#x}", p as usize),
            },
            Arg::LenOut(p) if p.is_null() => String::from("NULL"),
            Arg::LenOut(p) => {
                // SAFETY: probed first.
                match super::ffi::probe(p as *const u8, 4) {
                    Ok(()) => format!("[{}]", unsafe { *p }),
                    Err(_) => format!("{:#x}", p as usize),
                }
            }
        });
    }
    out
}

/// Traces call `name` that returned `ret` (errno read when it is -1). The
/// arguments are only gathered when tracing is on.
#[inline]
pub fn call<const N: usize>(name: &'static str, args: impl FnOnce() -> [Arg; N], ret: i64) {
    #[cfg(feature = "std")]
    if crate::platform::trace::enabled() {
        let e = if ret == -1 {
            crate::platform::errno()
        } else {
            0
        };
        crate::platform::trace::call(name, &render(&args(), ret), ret, e);
    }
    #[cfg(not(feature = "std"))]
    let _ = (name, args, ret, render);
}

//! The C veneers: POSIX names and `usock_*` names, errno, C structs, and the
//! backend registration and upcalls for C backends. No socket logic lives
//! here: each call checks its pointers and hands over to the core.

/// The prologue of every call on one fd: an fd that is not one of our
/// sockets goes to libc's `real::$name` with the same arguments; for one of
/// ours, `$body` runs inside the panic guard (`guard`, -1 and EIO on a
/// panic) with the socket bound to `$s`, after the fork-inheritance check
/// (`posix::refused`: -1 and EOPNOTSUPP for a socket inherited across
/// fork). `$body` evaluates to the call's return value, which is traced
/// (`USOCK_TRACE=calls`) under the libc name.
/// With `via f`, an fd that is not ours goes to `f` instead, which has
/// libc's signature.
macro_rules! on_socket {
    ($fd:expr, $s:ident, real::$name:ident($($a:expr),*), $body:block) => {
        on_socket!($fd, $s, real::$name($($a),*) via crate::platform::real::$name, $body)
    };
    ($fd:expr, $s:ident, real::$name:ident($($a:expr),*) via $kernel:path, $body:block) => {{
        let Some($s) = crate::fd::get($fd) else {
            // SAFETY: not ours: libc's definition (or a wrapper with its
            // contract), same arguments.
            return unsafe { $kernel($($a),*) };
        };
        super::ffi::guard(-1, || {
            // The body's `return`s leave this inner closure: the trace
            // sees every result, inside the boundary.
            #[allow(clippy::redundant_closure_call)]
            let r = (|| {
                if super::posix::refused($fd, &$s) {
                    return -1;
                }
                $body
            })();
            super::trace::call(stringify!($name), || [$(crate::api::trace::arg($a)),*], r as i64);
            r
        })
    }};
}

/// Exports a `usock_*` function under its POSIX name too. The generated
/// header declares only the `usock_*` names (the system headers declare the
/// POSIX ones).
macro_rules! posix_alias {
    ($( $posix:ident = $usock:ident ( $($a:ident : $t:ty),* ) -> $r:ty; )*) => {
        $(
            #[doc = concat!("POSIX `", stringify!($posix), "`: see [`", stringify!($usock), "`].")]
            // A no_std build tested on the host keeps only the usock_ names:
            // there the test process's own read/write must stay libc's.
            #[cfg(any(feature = "std", feature = "embedded-runtime"))]
            #[no_mangle]
            pub unsafe extern "C" fn $posix($($a: $t),*) -> $r {
                // SAFETY: same contract as the usock_ twin.
                unsafe { $usock($($a),*) }
            }
        )*
    };
}

pub mod backend_ffi;
#[cfg(feature = "std")]
pub mod epoll;
/// cbindgen:ignore
#[cfg(feature = "std")]
pub mod extra;
/// cbindgen:ignore
pub mod ffi;
/// cbindgen:ignore
#[cfg(feature = "std")]
pub mod fork;
#[cfg(feature = "std")]
pub mod netif;
pub mod netif_ops;
/// cbindgen:ignore
pub mod poll;
pub mod posix;
/// cbindgen:ignore
#[cfg(feature = "std")]
pub mod sandbox;
/// cbindgen:ignore
#[cfg(feature = "std")]
mod scm_kernel;
/// cbindgen:ignore
#[cfg(feature = "std")]
pub mod splice;
pub mod trace;

/// Before a call that makes a socket: fails with ENOSYS until the host has
/// registered its platform table (no_std); installs the built-in backends
/// the environment asks for and, hosted, the fork handlers, once.
pub(crate) fn ready() -> Result<(), crate::consts::Errno> {
    #[cfg(not(feature = "std"))]
    if !crate::platform::ready() {
        return Err(crate::consts::ENOSYS);
    }
    crate::backends::install_defaults();
    #[cfg(feature = "std")]
    fork::activate();
    #[cfg(feature = "std")]
    crate::backend::upcall::install_listing(listing);
    Ok(())
}

/// The socket listing of this process (`backend::upcall::listing`): every
/// fd of the fd table that holds one of our sockets.
#[cfg(feature = "std")]
fn listing() -> alloc::string::String {
    crate::socket::listing::listing(|line| {
        crate::fd::for_each_ours(|fd, _| {
            if let Some(s) = crate::fd::get(fd) {
                line(fd, &s);
            }
        })
    })
}

//! epoll_create, epoll_ctl and the epoll_wait family: their C arguments
//! checked and converted. Sets without a socket of ours go straight to
//! libc; the others to the engine in `socket::mux::epoll` (whose docs say
//! how a set mixes our sockets and kernel fds).

#![allow(clippy::missing_safety_doc)]

use libc::{c_int, epoll_event, sigset_t, timespec};

use super::ffi::{guard, probe, ret_int};
use crate::consts::*;
use crate::fd;
use crate::platform::real;
use crate::socket::mux::epoll as engine;

fn created(r: c_int) -> c_int {
    if r >= 0 {
        engine::forget(r);
    }
    r
}

/// epoll_create(2).
#[no_mangle]
pub unsafe extern "C" fn usock_epoll_create(size: c_int) -> c_int {
    // SAFETY: passthrough.
    guard(-1, || created(unsafe { real::epoll_create(size) }))
}

/// epoll_create1(2).
#[no_mangle]
pub unsafe extern "C" fn usock_epoll_create1(flags: c_int) -> c_int {
    // SAFETY: passthrough.
    guard(-1, || created(unsafe { real::epoll_create1(flags) }))
}

/// epoll_ctl(2): our sockets go into the side table of `epfd`, other fds
/// into the kernel set.
#[no_mangle]
pub unsafe extern "C" fn usock_epoll_ctl(
    epfd: c_int,
    op: c_int,
    fdn: c_int,
    event: *mut epoll_event,
) -> c_int {
    let Some(sock) = fd::get(fdn) else {
        if op == libc::EPOLL_CTL_ADD {
            guard((), || engine::nest_if_ours(fdn));
        }
        // SAFETY: not ours: libc's definition, same arguments.
        return unsafe { real::epoll_ctl(epfd, op, fdn, event) };
    };
    guard(-1, || {
        if super::posix::refused(fdn, &sock) {
            return -1;
        }
        let event = if op == libc::EPOLL_CTL_ADD || op == libc::EPOLL_CTL_MOD {
            if let Err(e) = probe(event as *const u8, core::mem::size_of::<epoll_event>()) {
                return ret_int(Err(e));
            }
            // SAFETY: valid per the epoll_ctl contract (probed above).
            Some(unsafe { event.read_unaligned() })
        } else {
            None
        };
        // One of our sockets is never an epoll fd (this covers fd == epfd).
        if fd::is_ours(epfd) {
            return ret_int(Err(EINVAL));
        }
        ret_int(engine::ctl(epfd, op, fdn, sock, event).map(|()| 0))
    })
}

/// How a wait goes to the kernel when the set holds none of our sockets.
#[derive(Clone, Copy)]
enum Kind {
    Wait(c_int),
    Pwait(c_int, *const sigset_t),
    Pwait2(*const timespec, *const sigset_t),
}

/// epoll_pwait2 through the system call (libc has it only from glibc 2.35,
/// and a missing symbol must not stop the library from loading).
unsafe fn sys_pwait2(
    epfd: c_int,
    ev: *mut epoll_event,
    max: c_int,
    ts: *const timespec,
    mask: *const sigset_t,
) -> c_int {
    // SAFETY: the arguments satisfy epoll_pwait2's contract per the caller.
    unsafe {
        libc::syscall(
            libc::SYS_epoll_pwait2,
            epfd,
            ev,
            max,
            ts,
            mask,
            core::mem::size_of::<libc::c_ulong>(),
        ) as c_int
    }
}

/// # Safety
/// The arguments must satisfy the call's C contract.
unsafe fn pass(epfd: c_int, ev: *mut epoll_event, max: c_int, kind: Kind) -> c_int {
    // SAFETY: passthrough with the caller's arguments.
    unsafe {
        match kind {
            Kind::Wait(ms) => real::epoll_wait(epfd, ev, max, ms),
            Kind::Pwait(ms, m) => real::epoll_pwait(epfd, ev, max, ms, m),
            Kind::Pwait2(ts, m) => sys_pwait2(epfd, ev, max, ts, m),
        }
    }
}

/// The wait of every flavour.
///
/// # Safety
/// The arguments must satisfy the call's C contract.
unsafe fn wait(epfd: c_int, ev: *mut epoll_event, max: c_int, kind: Kind) -> c_int {
    if !engine::any_sets() {
        // SAFETY: per the caller.
        return unsafe { pass(epfd, ev, max, kind) };
    }
    loop {
        let Some(set) = engine::lookup(epfd) else {
            // SAFETY: per the caller.
            let r = unsafe { pass(epfd, ev, max, kind) };
            if r <= 0 {
                return r;
            }
            // SAFETY: the kernel wrote r entries.
            let got = unsafe { core::slice::from_raw_parts_mut(ev, r as usize) };
            // Our eventfd went in after the lookup: never show it.
            let (n, _, _) = engine::strip_reserved(got, &mut |_, _| {});
            if n > 0 {
                return n as c_int;
            }
            continue;
        };
        if max <= 0 || max > engine::EP_MAX_EVENTS {
            return ret_int(Err(EINVAL));
        }
        if let Err(e) = probe(
            ev as *const u8,
            max as usize * core::mem::size_of::<epoll_event>(),
        ) {
            return ret_int(Err(e));
        }
        if let Err(first) = set.refused() {
            if first {
                super::fork::report_inherited(epfd, super::fork::Kind::Epoll);
            }
            return ret_int(Err(EOPNOTSUPP));
        }
        let (timeout, mask) = match kind {
            Kind::Wait(ms) => (super::poll::ms_timeout(ms), core::ptr::null()),
            Kind::Pwait(ms, m) => (super::poll::ms_timeout(ms), m),
            // SAFETY: NULL or valid per the caller.
            Kind::Pwait2(ts, m) => match unsafe { super::poll::ts_timeout(ts) } {
                Ok(t) => (t, m),
                Err(e) => return ret_int(Err(e)),
            },
        };
        // SAFETY: probed above: `max` entries of the caller's array.
        let events = unsafe { core::slice::from_raw_parts_mut(ev, max as usize) };
        // SAFETY: NULL or valid per the caller.
        let mask = unsafe { mask.as_ref() };
        return ret_int(engine::wait(&set, events, timeout, mask).map(|n| n as c_int));
    }
}

/// epoll_wait(2) over any mix of our sockets and kernel fds.
#[no_mangle]
pub unsafe extern "C" fn usock_epoll_wait(
    epfd: c_int,
    events: *mut epoll_event,
    maxevents: c_int,
    timeout: c_int,
) -> c_int {
    // SAFETY: per the epoll_wait contract.
    guard(-1, || unsafe {
        wait(epfd, events, maxevents, Kind::Wait(timeout))
    })
}

/// epoll_pwait(2) over any mix of our sockets and kernel fds.
#[no_mangle]
pub unsafe extern "C" fn usock_epoll_pwait(
    epfd: c_int,
    events: *mut epoll_event,
    maxevents: c_int,
    timeout: c_int,
    sigmask: *const sigset_t,
) -> c_int {
    // SAFETY: per the epoll_pwait contract.
    guard(-1, || unsafe {
        wait(epfd, events, maxevents, Kind::Pwait(timeout, sigmask))
    })
}

/// epoll_pwait2(2) over any mix of our sockets and kernel fds. With our
/// sockets in the set the kernel wait is rounded up to whole milliseconds.
#[no_mangle]
pub unsafe extern "C" fn usock_epoll_pwait2(
    epfd: c_int,
    events: *mut epoll_event,
    maxevents: c_int,
    timeout: *const timespec,
    sigmask: *const sigset_t,
) -> c_int {
    // SAFETY: per the epoll_pwait2 contract.
    guard(-1, || unsafe {
        wait(epfd, events, maxevents, Kind::Pwait2(timeout, sigmask))
    })
}

/// The POSIX names, generated so that the header (cbindgen) leaves them to
/// <sys/epoll.h>.
macro_rules! epoll_alias {
    ($( $posix:ident = $usock:ident ( $($a:ident : $t:ty),* ) -> $r:ty; )*) => {
        $(
            #[doc = concat!("`", stringify!($posix), "`: see [`", stringify!($usock), "`].")]
            #[no_mangle]
            pub unsafe extern "C" fn $posix($($a: $t),*) -> $r {
                // SAFETY: same contract as the usock_ twin.
                unsafe { $usock($($a),*) }
            }
        )*
    };
}

epoll_alias! {
    epoll_create = usock_epoll_create(size: c_int) -> c_int;
    epoll_create1 = usock_epoll_create1(flags: c_int) -> c_int;
    epoll_ctl = usock_epoll_ctl(epfd: c_int, op: c_int, fd: c_int, event: *mut epoll_event) -> c_int;
    epoll_wait = usock_epoll_wait(epfd: c_int, events: *mut epoll_event, maxevents: c_int, timeout: c_int) -> c_int;
    epoll_pwait = usock_epoll_pwait(epfd: c_int, events: *mut epoll_event, maxevents: c_int, timeout: c_int, sigmask: *const sigset_t) -> c_int;
    epoll_pwait2 = usock_epoll_pwait2(epfd: c_int, events: *mut epoll_event, maxevents: c_int, timeout: *const timespec, sigmask: *const sigset_t) -> c_int;
}

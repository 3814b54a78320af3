//! poll(), ppoll(), select() and pselect(): their C arguments checked and
//! converted; a call with no socket of ours goes straight to libc, the
//! others to the engine in `socket::mux::poll`.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::time::Duration;

use libc::{c_int, nfds_t, pollfd, sigset_t, timespec, timeval};

use super::ffi::{ret_int, set_errno};
use crate::backend::contract::Errno;
use crate::consts::*;
use crate::fd;
use crate::platform;
#[cfg(feature = "std")]
use crate::platform::real;
use crate::socket::{mux, Socket};

/// A timeout as select() and pselect() take it.
pub enum Timeout {
    /// select(): may be NULL; updated with the time left.
    Timeval(*mut timeval),
    /// pselect(): may be NULL.
    Timespec(*const timespec),
}

/// poll()'s millisecond timeout: negative waits forever.
pub fn ms_timeout(ms: c_int) -> Option<Duration> {
    if ms < 0 {
        None
    } else {
        Some(Duration::from_millis(ms as u64))
    }
}

/// A timespec timeout (NULL waits forever); EINVAL when malformed.
///
/// # Safety
/// `ts` must be NULL or valid.
pub unsafe fn ts_timeout(ts: *const timespec) -> Result<Option<Duration>, Errno> {
    if ts.is_null() {
        return Ok(None);
    }
    super::ffi::probe(ts as *const u8, core::mem::size_of::<timespec>())?;
    // SAFETY: non-null and valid per the caller.
    let t = unsafe { *ts };
    if t.tv_sec < 0 || !(0..1_000_000_000).contains(&t.tv_nsec) {
        return Err(EINVAL);
    }
    Ok(Some(Duration::new(t.tv_sec as u64, t.tv_nsec as u32)))
}

/// poll over a caller's array.
///
/// # Safety
/// `fds` must be valid for `n` entries; `mask` NULL or valid.
pub unsafe fn poll(
    fds: *mut pollfd,
    n: nfds_t,
    timeout: Option<Duration>,
    mask: Option<*const sigset_t>,
) -> c_int {
    #[cfg(not(feature = "std"))]
    if !platform::ready() {
        return ret_int(Err(crate::consts::ENOSYS));
    }
    if n as usize > crate::fd::MAX_FDS {
        return ret_int(Err(EINVAL));
    }
    if let Err(e) = super::ffi::probe(
        fds as *const u8,
        n as usize * core::mem::size_of::<pollfd>(),
    ) {
        return ret_int(Err(e));
    }
    let slice: &mut [pollfd] = if n == 0 {
        &mut []
    } else {
        // SAFETY: valid for `n` entries per the caller.
        unsafe { core::slice::from_raw_parts_mut(fds, n as usize) }
    };
    #[cfg(feature = "std")]
    mux::epoll::nest_polled(slice.iter().map(|p| p.fd));
    #[cfg(feature = "std")]
    if !slice.iter().any(|p| fd::is_ours(p.fd)) {
        let ts = timeout.map(platform::to_timespec);
        let tsp = ts
            .as_ref()
            .map_or(core::ptr::null(), |t| t as *const timespec);
        // SAFETY: passthrough with the caller's array.
        return unsafe { real::ppoll(fds, n, tsp, mask.unwrap_or(core::ptr::null())) };
    }
    // SAFETY: as above.
    unsafe { poll_mixed(slice, timeout, mask) }
}

/// The mixed case: some of the fds are ours. A socket inherited across a
/// fork is refused here, before the engine runs.
///
/// # Safety
/// `mask` NULL or valid.
unsafe fn poll_mixed(
    slice: &mut [pollfd],
    timeout: Option<Duration>,
    mask: Option<*const sigset_t>,
) -> c_int {
    let socks: Vec<Option<Arc<Socket>>> = slice.iter().map(|p| fd::get(p.fd)).collect();
    for (s, p) in socks.iter().zip(slice.iter()) {
        if let Some(s) = s {
            if super::posix::refused(p.fd, s) {
                return -1;
            }
        }
    }
    // SAFETY: NULL or valid per the caller.
    let mask = mask.and_then(|m| unsafe { m.as_ref() });
    ret_int(mux::poll::poll(slice, &socks, timeout, mask).map(|n| n as c_int))
}

const SETSIZE: c_int = libc::FD_SETSIZE as c_int;

/// select/pselect over any mix of fds.
///
/// # Safety
/// The sets must be NULL or valid `fd_set`s; the timeout NULL or valid.
pub unsafe fn select(
    n: c_int,
    r: *mut libc::fd_set,
    w: *mut libc::fd_set,
    e: *mut libc::fd_set,
    timeout: Timeout,
    mask: Option<*const sigset_t>,
) -> c_int {
    if n < 0 {
        return ret_int(Err(EINVAL));
    }
    let n = n.min(SETSIZE);
    for set in [r, w, e] {
        if !set.is_null() {
            if let Err(err) =
                super::ffi::probe(set as *const u8, core::mem::size_of::<libc::fd_set>())
            {
                return ret_int(Err(err));
            }
        }
    }
    if let Timeout::Timeval(t) = timeout {
        if !t.is_null() {
            if let Err(err) = super::ffi::probe(t as *const u8, core::mem::size_of::<timeval>()) {
                return ret_int(Err(err));
            }
        }
    }
    // SAFETY: the sets are NULL or valid per the caller.
    let isset =
        |set: *mut libc::fd_set, fd: c_int| !set.is_null() && unsafe { libc::FD_ISSET(fd, set) };
    let ours = (0..n).any(|f| (isset(r, f) || isset(w, f) || isset(e, f)) && fd::is_ours(f));
    #[cfg(feature = "std")]
    mux::epoll::nest_polled((0..n).filter(|&f| isset(r, f) || isset(w, f) || isset(e, f)));
    #[cfg(feature = "std")]
    if !ours {
        // SAFETY: passthrough with the caller's arguments.
        return unsafe {
            match timeout {
                Timeout::Timeval(t) => real::select(n, r, w, e, t),
                Timeout::Timespec(t) => {
                    real::pselect(n, r, w, e, t, mask.unwrap_or(core::ptr::null()))
                }
            }
        };
    }
    let dur = match timeout {
        Timeout::Timeval(t) if !t.is_null() => {
            // SAFETY: non-null and valid per the caller.
            let tv = unsafe { *t };
            if tv.tv_sec < 0 || tv.tv_usec < 0 {
                return ret_int(Err(EINVAL));
            }
            Some(Duration::from_secs(tv.tv_sec as u64) + Duration::from_micros(tv.tv_usec as u64))
        }
        // SAFETY: NULL or valid per the caller.
        Timeout::Timespec(t) => match unsafe { ts_timeout(t) } {
            Ok(d) => d,
            Err(err) => return ret_int(Err(err)),
        },
        _ => None,
    };
    let mut pfds: Vec<pollfd> = Vec::new();
    for f in 0..n {
        let mut ev = 0;
        if isset(r, f) {
            ev |= POLLIN;
        }
        if isset(w, f) {
            ev |= POLLOUT;
        }
        if isset(e, f) {
            ev |= POLLPRI;
        }
        if ev != 0 {
            pfds.push(pollfd {
                fd: f,
                events: ev,
                revents: 0,
            });
        }
    }
    #[cfg(not(feature = "std"))]
    let _ = ours;
    let start = platform::now();
    // SAFETY: our own array.
    let rc = unsafe { poll_mixed(&mut pfds, dur, mask) };
    if rc < 0 {
        return rc;
    }
    if pfds.iter().any(|p| p.revents & POLLNVAL != 0) {
        set_errno(EBADF);
        return -1;
    }
    // SAFETY: the sets are NULL or valid per the caller.
    unsafe {
        for set in [r, w, e] {
            if !set.is_null() {
                libc::FD_ZERO(set);
            }
        }
    }
    let mut count = 0;
    for p in &pfds {
        let mut mark = |set: *mut libc::fd_set, hit: bool| {
            if hit && !set.is_null() {
                // SAFETY: valid per the caller; fd < FD_SETSIZE.
                unsafe { libc::FD_SET(p.fd, set) };
                count += 1;
            }
        };
        mark(
            r,
            p.events & POLLIN != 0 && p.revents & (POLLIN | POLLHUP | POLLERR) != 0,
        );
        mark(
            w,
            p.events & POLLOUT != 0 && p.revents & (POLLOUT | POLLERR) != 0,
        );
        mark(e, p.events & POLLPRI != 0 && p.revents & POLLPRI != 0);
    }
    if let (Timeout::Timeval(t), Some(d)) = (timeout, dur) {
        if !t.is_null() {
            let left = d.saturating_sub(platform::time_between(start, platform::now()));
            // SAFETY: non-null and valid per the caller.
            unsafe {
                (*t).tv_sec = left.as_secs() as libc::time_t;
                (*t).tv_usec = left.subsec_micros() as libc::suseconds_t;
            }
        }
    }
    count
}

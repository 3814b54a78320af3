//! splice(2) with one of our sockets on one side and a pipe on the other,
//! as Linux's fs/splice.c and the sockets' splice_read/splice_write do it.
//! Fds that are not ours go to libc's splice untouched.
//!
//! tee(2), vmsplice(2) and copy_file_range(2) are not interposed: they take
//! no socket, and the kernel fd behind one of ours (a duplicate of an
//! eventfd, O_RDWR, neither a pipe nor a regular file) gets the errno a
//! kernel socket gets (EINVAL, EBADF, EINVAL).

#![allow(clippy::missing_safety_doc)]

use alloc::vec;
use alloc::vec::Vec;
use libc::{c_int, c_uint, c_void, loff_t, ssize_t};

use super::ffi::{self, guard, ret_size};
use super::posix;
use crate::consts::*;
use crate::fd;
use crate::platform::{errno, real};
use crate::socket::Socket;

/// The flags splice(2) knows (SPLICE_F_MOVE, NONBLOCK, MORE, GIFT).
const SPLICE_F_ALL: c_uint = 0x0f;
/// SPLICE_F_NONBLOCK: no waiting on the pipe (not on the socket: see
/// [`socket_to_pipe`]).
const SPLICE_F_NONBLOCK: c_uint = 0x02;
/// SPLICE_F_MORE: more data follows (a socket holds it back, as MSG_MORE).
const SPLICE_F_MORE: c_uint = 0x04;
/// The least a pipe that polls writable can take: one free buffer.
const PIPE_PAGE: usize = 4096;
/// The most one splice out of a socket moves (its buffer's size): a pipe
/// enlarged beyond the unprivileged limit (fs.pipe-max-size) gets it in
/// several calls, which splice's contract allows.
const MOVE_MAX: usize = 1 << 20;

/// splice(2): between one of our sockets and a pipe; other fds go to libc.
#[no_mangle]
pub unsafe extern "C" fn splice(
    fd_in: c_int,
    off_in: *mut loff_t,
    fd_out: c_int,
    off_out: *mut loff_t,
    len: usize,
    flags: c_uint,
) -> ssize_t {
    if !fd::is_ours(fd_in) && !fd::is_ours(fd_out) {
        // SAFETY: passthrough with the caller's arguments.
        return unsafe { real::splice(fd_in, off_in, fd_out, off_out, len, flags) };
    }
    // SAFETY: the offsets are NULL or the caller's pointers, probed there.
    guard(-1, || {
        ret_size(unsafe { splice_ours(fd_in, off_in, fd_out, off_out, len, flags) })
    })
}

/// What splice needs to know of a kernel fd: its access mode and
/// O_NONBLOCK (F_GETFL), and whether it is a pipe or FIFO.
#[derive(Clone, Copy)]
struct KernelEnd {
    flags: c_int,
    pipe: bool,
}

impl KernelEnd {
    /// The fd's flags and type; EBADF for a closed or O_PATH fd, as the
    /// kernel's fdget.
    fn of(fd_: c_int) -> Result<Self, Errno> {
        // SAFETY: F_GETFL takes no argument.
        let flags = unsafe { real::fcntl(fd_, libc::F_GETFL, 0) };
        if flags < 0 {
            return Err(errno());
        }
        if flags & libc::O_PATH != 0 {
            return Err(EBADF);
        }
        // SAFETY: all-zero is a valid `struct stat`, filled by fstat.
        let mut st: libc::stat = unsafe { core::mem::zeroed() };
        // SAFETY: `st` is a live stat buffer.
        if unsafe { real::fstat(fd_, &mut st) } < 0 {
            return Err(errno());
        }
        Ok(KernelEnd {
            flags,
            pipe: st.st_mode & libc::S_IFMT == libc::S_IFIFO,
        })
    }

    fn readable(self) -> bool {
        self.flags & libc::O_ACCMODE != libc::O_WRONLY
    }

    fn writable(self) -> bool {
        self.flags & libc::O_ACCMODE != libc::O_RDONLY
    }

    fn nonblocking(self) -> bool {
        self.flags & libc::O_NONBLOCK != 0
    }
}

/// splice with one of ours on at least one side, in the order of the
/// kernel's checks (sys_splice, __do_splice, do_splice).
///
/// # Safety
/// `off_in` and `off_out` are NULL or the caller's pointers (probed here).
unsafe fn splice_ours(
    fd_in: c_int,
    off_in: *mut loff_t,
    fd_out: c_int,
    off_out: *mut loff_t,
    len: usize,
    flags: c_uint,
) -> Result<usize, Errno> {
    let s_in = fd::get(fd_in);
    let s_out = fd::get(fd_out);
    for (f, s) in [(fd_in, &s_in), (fd_out, &s_out)] {
        if let Some(s) = s {
            if posix::refused(f, s) {
                return Err(EOPNOTSUPP);
            }
        }
    }
    if len == 0 {
        return Ok(0);
    }
    if flags & !SPLICE_F_ALL != 0 {
        return Err(EINVAL);
    }
    let k_in = match s_in {
        Some(_) => None,
        None => Some(KernelEnd::of(fd_in)?),
    };
    let k_out = match s_out {
        Some(_) => None,
        None => Some(KernelEnd::of(fd_out)?),
    };
    let in_pipe = k_in.is_some_and(|k| k.pipe);
    let out_pipe = k_out.is_some_and(|k| k.pipe);
    // A pipe has no offset, checked before the offsets are read.
    if (in_pipe && !off_in.is_null()) || (out_pipe && !off_out.is_null()) {
        return Err(libc::ESPIPE);
    }
    for off in [off_in, off_out] {
        if !off.is_null() {
            ffi::probe(off as *const u8, core::mem::size_of::<loff_t>())?;
        }
    }
    if k_in.is_some_and(|k| !k.readable()) || k_out.is_some_and(|k| !k.writable()) {
        return Err(EBADF);
    }
    // rw_verify_area: a length beyond ssize_t.
    if len > isize::MAX as usize {
        return Err(EINVAL);
    }
    match (k_in, k_out, s_in, s_out) {
        (Some(k), _, _, Some(s)) if k.pipe => {
            // A socket is not opened FMODE_PWRITE: an offset is EINVAL.
            if !off_out.is_null() {
                return Err(EINVAL);
            }
            pipe_to_socket(fd_in, k.nonblocking(), &s, len, flags)
        }
        (_, Some(k), Some(s), _) if k.pipe => {
            // Nor FMODE_PREAD.
            if !off_in.is_null() {
                return Err(EINVAL);
            }
            socket_to_pipe(&s, fd_out, k.nonblocking(), len, flags)
        }
        // Neither side a pipe.
        _ => Err(EINVAL),
    }
}

/// Socket into pipe, as splice_file_to_pipe then the socket's splice_read:
/// first room in the pipe (waited for unless SPLICE_F_NONBLOCK or the
/// pipe's O_NONBLOCK; EPIPE and SIGPIPE with no reader), then the socket's
/// data, waited for as its own blocking mode and SO_RCVTIMEO say (TCP and
/// UDP ignore SPLICE_F_NONBLOCK there, AF_UNIX streams take it). The data
/// is peeked, written into the pipe, and only what the pipe took is
/// consumed, so a pipe with less room loses nothing; a datagram is
/// consumed whole, cut to what the pipe took, as Linux cuts it to the
/// pipe's room.
fn socket_to_pipe(
    s: &Socket,
    pipe: c_int,
    pipe_nonblock: bool,
    len: usize,
    flags: c_uint,
) -> Result<usize, Errno> {
    let no_wait = pipe_nonblock || flags & SPLICE_F_NONBLOCK != 0;
    wait_for_room(pipe, no_wait)?;
    let room = pipe_room(pipe);
    let mut buf = vec![0u8; len.min(room).min(MOVE_MAX)];
    let dontwait = if s.info.domain == AF_UNIX && s.is_stream() && flags & SPLICE_F_NONBLOCK != 0 {
        MSG_DONTWAIT
    } else {
        0
    };
    let n = s.recv(&mut [&mut buf[..]], MSG_PEEK | dontwait)?.ret;
    let written = if n == 0 {
        0
    } else {
        write_pipe(
            pipe,
            &buf[..n],
            flags & SPLICE_F_NONBLOCK != 0 && !pipe_nonblock,
        )?
    };
    if s.is_stream() && !s.keeps_records() {
        let mut left = written;
        while left > 0 {
            match s.recv_stream_trunc(left, MSG_DONTWAIT) {
                Ok(0) | Err(_) => break,
                Ok(k) => left -= k,
            }
        }
    } else {
        // The datagram (or seqpacket record) goes, whatever of it the
        // pipe did not take.
        let _ = s.recv(&mut [&mut buf[..0]], MSG_DONTWAIT);
    }
    Ok(written)
}

/// wait_for_space: returns once the pipe has a free buffer; EAGAIN when
/// full and `no_wait`; EPIPE (and SIGPIPE) when no one reads it.
fn wait_for_room(pipe: c_int, no_wait: bool) -> Result<(), Errno> {
    loop {
        let mut p = libc::pollfd {
            fd: pipe,
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: one live pollfd.
        let r = unsafe { real::poll(&mut p, 1, if no_wait { 0 } else { -1 }) };
        if r < 0 {
            // EINTR included: poll is not restarted (ERESTARTNOHAND),
            // where the kernel's splice would be with SA_RESTART.
            return Err(errno());
        }
        if p.revents & libc::POLLERR != 0 {
            crate::platform::raise_sigpipe();
            return Err(EPIPE);
        }
        if p.revents & libc::POLLOUT != 0 {
            return Ok(());
        }
        if no_wait {
            return Err(EAGAIN);
        }
    }
}

/// The bytes the pipe can take now, as far as F_GETPIPE_SZ and FIONREAD
/// tell (at least one buffer: the pipe polled writable).
fn pipe_room(pipe: c_int) -> usize {
    // SAFETY: F_GETPIPE_SZ takes no argument.
    let size = unsafe { real::fcntl(pipe, libc::F_GETPIPE_SZ, 0) };
    let mut queued: c_int = 0;
    // SAFETY: FIONREAD writes one int into `queued`.
    let r = unsafe {
        real::ioctl(
            pipe,
            libc::FIONREAD as libc::c_ulong,
            &mut queued as *mut c_int as *mut c_void,
        )
    };
    if size <= 0 || r < 0 {
        return PIPE_PAGE;
    }
    (size as usize)
        .saturating_sub(queued.max(0) as usize)
        .max(PIPE_PAGE)
}

/// Writes `data` into the pipe; with `nowait` (SPLICE_F_NONBLOCK on a
/// blocking pipe) without waiting for room (RWF_NOWAIT), so a pipe that
/// takes less than its byte count promised does not block the call.
fn write_pipe(pipe: c_int, data: &[u8], nowait: bool) -> Result<usize, Errno> {
    if nowait {
        let iov = libc::iovec {
            iov_base: data.as_ptr() as *mut c_void,
            iov_len: data.len(),
        };
        // SAFETY: one iovec over our own buffer; offset -1 is the pipe's
        // (only) position.
        let w = unsafe { libc::pwritev2(pipe, &iov, 1, -1, libc::RWF_NOWAIT) };
        if w >= 0 {
            return Ok(w as usize);
        }
        let e = errno();
        if e != EOPNOTSUPP && e != EINVAL {
            return Err(e);
        }
        // A kernel without RWF_NOWAIT on pipes: a plain write.
    }
    // SAFETY: libc's write from our own buffer.
    let w = unsafe { real::write(pipe, data.as_ptr() as *const c_void, data.len()) };
    if w < 0 {
        return Err(errno());
    }
    Ok(w as usize)
}

/// A pipe of our own, closed on drop.
struct Scratch {
    r: c_int,
    w: c_int,
}

impl Scratch {
    fn new() -> Result<Self, Errno> {
        let mut p = [-1 as c_int; 2];
        // SAFETY: pipe2 writes two fds into `p`.
        if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
            return Err(errno());
        }
        Ok(Scratch { r: p[0], w: p[1] })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // SAFETY: our own two fds, closed once.
        unsafe {
            real::close(self.r);
            real::close(self.w);
        }
    }
}

/// Reads exactly `buf.len()` bytes the pipe is known to hold.
fn read_pipe(pipe: c_int, buf: &mut [u8]) -> Result<(), Errno> {
    let mut got = 0;
    while got < buf.len() {
        // SAFETY: libc's read into our own buffer.
        let n = unsafe {
            real::read(
                pipe,
                buf[got..].as_mut_ptr() as *mut c_void,
                buf.len() - got,
            )
        };
        if n < 0 {
            let e = errno();
            if e == EINTR {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(EIO);
        }
        got += n as usize;
    }
    Ok(())
}

/// Pipe into socket, as splice_to_socket: waits for data in the pipe
/// (unless SPLICE_F_NONBLOCK or the pipe's O_NONBLOCK; 0 when it is empty
/// with no writer), sends what it holds up to `len` (a datagram socket:
/// one datagram per round), and goes on while the pipe has more and the
/// socket took it all. A pipe cannot be peeked, so each round tee()s the
/// pipe into a scratch pipe, sends that, and reads off the pipe only what
/// the socket took: nothing is lost when a send fails or sends less.
/// tee waits as splice would, restarted after a SA_RESTART handler.
fn pipe_to_socket(
    pipe: c_int,
    pipe_nonblock: bool,
    s: &Socket,
    len: usize,
    flags: c_uint,
) -> Result<usize, Errno> {
    let scratch = Scratch::new()?;
    let mut tee_flags = flags & SPLICE_F_NONBLOCK;
    if pipe_nonblock {
        tee_flags |= SPLICE_F_NONBLOCK;
    }
    let so_far = |done: usize, e: Errno| if done > 0 { Ok(done) } else { Err(e) };
    let mut buf: Vec<u8> = Vec::new();
    let mut done = 0usize;
    while done < len {
        // SAFETY: tee between the caller's pipe and our own.
        let t = unsafe { libc::tee(pipe, scratch.w, len - done, tee_flags) };
        if t < 0 {
            return so_far(done, errno());
        }
        if t == 0 {
            break;
        }
        let t = t as usize;
        buf.resize(t, 0);
        read_pipe(scratch.r, &mut buf)?;
        // splice_to_socket: SPLICE_F_MORE is MSG_MORE.
        let more = if flags & SPLICE_F_MORE != 0 {
            MSG_MORE
        } else {
            0
        };
        let sent = match s.send(&[&buf[..]], more, None) {
            Ok(n) => n,
            Err(e) => return so_far(done, e),
        };
        read_pipe(pipe, &mut buf[..sent])?;
        done += sent;
        if sent < t {
            break;
        }
        // More rounds only for what is already there.
        tee_flags |= SPLICE_F_NONBLOCK;
    }
    Ok(done)
}

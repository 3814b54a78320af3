//! Network devices for the engine backend (`backends::engine`): the kernel
//! fds that carry Ethernet frames, a Linux TAP device and a raw
//! `AF_PACKET` socket on an existing interface. Frames only: the engine
//! does the rest. The fds are the library's own (`private_fds`), high
//! numbers a program's closefrom leaves alone, non-blocking, close-on-exec.

use crate::consts::Errno;

/// `TUNSETIFF` (`_IOW('T', 202, int)`).
const TUNSETIFF: u64 = 0x4004_54ca;
/// `IFF_TAP`: Ethernet frames, not IP packets.
const IFF_TAP: i16 = 0x0002;
/// `IFF_NO_PI`: no packet-information header before each frame.
const IFF_NO_PI: i16 = 0x1000;
/// `IFF_VNET_HDR`: each frame comes and goes after a `struct
/// virtio_net_hdr`, which carries the offloads below.
const IFF_VNET_HDR: i16 = 0x4000;
/// `TUNSETOFFLOAD` (`_IOW('T', 208, unsigned int)`).
const TUNSETOFFLOAD: u64 = 0x4004_54d0;
/// `TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6`: the kernel may hand the TAP's
/// reader TCP segments of up to 64 KiB (its TSO frames, not cut to the
/// MTU) and checksums it left unfilled, as it hands them to a veth peer.
const TAP_OFFLOADS: u32 = 0x1 | 0x2 | 0x4;
/// The length of the `struct virtio_net_hdr` before each frame.
pub const VNET_HDR_LEN: usize = 10;
/// `SIOCGIFMTU`.
const SIOCGIFMTU: u64 = 0x8921;
/// `SIOCGIFINDEX`.
const SIOCGIFINDEX: u64 = 0x8933;
/// `ETH_P_ALL`.
const ETH_P_ALL: u16 = 0x0003;

fn last_errno() -> Errno {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// A `struct ifreq` naming `name` (at most 15 bytes, no NUL), with
/// `flags` in its union's first short.
fn ifreq(name: &str, flags: i16) -> Result<[u8; 40], Errno> {
    let n = name.as_bytes();
    if n.is_empty() || n.len() > 15 || n.contains(&0) {
        return Err(libc::EINVAL);
    }
    let mut req = [0u8; 40];
    req[..n.len()].copy_from_slice(n);
    req[16..18].copy_from_slice(&flags.to_ne_bytes());
    Ok(req)
}

/// Opens `path` read-write, non-blocking, close-on-exec (a raw system
/// call: an interposed open is not needed here).
fn open_rw(path: &core::ffi::CStr) -> Result<i32, Errno> {
    // SAFETY: a NUL-terminated path and integer flags.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat,
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        Err(last_errno())
    } else {
        Ok(fd as i32)
    }
}

/// An ioctl with a `struct ifreq` argument.
fn ioctl_ifreq(fd: i32, req: u64, ifr: &mut [u8; 40]) -> Result<(), Errno> {
    // SAFETY: `ifr` is a live 40-byte buffer, the size of struct ifreq.
    let r = unsafe { libc::syscall(libc::SYS_ioctl, fd, req, ifr.as_mut_ptr()) };
    if r < 0 {
        Err(last_errno())
    } else {
        Ok(())
    }
}

/// Attaches to TAP device `name` (made by the kernel if absent, which
/// needs CAP_NET_ADMIN; then it is down until someone brings it up):
/// `/dev/net/tun` with `IFF_TAP | IFF_NO_PI | IFF_VNET_HDR` (frames go
/// through [`tap_read`] and [`tap_write`]). The fd, and whether the kernel
/// took the receive offloads ([`TAP_OFFLOADS`]: then frames read may be
/// up to 64 KiB of IP with TCP/UDP checksums left unfilled). The errno of
/// the step that failed, and which step: "open /dev/net/tun" or
/// "TUNSETIFF".
pub fn tap_open(name: &str) -> Result<(i32, bool), (Errno, &'static str)> {
    let mut ifr =
        ifreq(name, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR).map_err(|e| (e, "the device name"))?;
    let fd = open_rw(c"/dev/net/tun").map_err(|e| (e, "open /dev/net/tun"))?;
    if let Err(e) = ioctl_ifreq(fd, TUNSETIFF, &mut ifr) {
        let _ = super::kfd_close(fd);
        return Err((e, "TUNSETIFF"));
    }
    // SAFETY: TUNSETOFFLOAD takes its flags as the integer argument.
    let offloads =
        unsafe { libc::syscall(libc::SYS_ioctl, fd, TUNSETOFFLOAD, TAP_OFFLOADS as usize) } == 0;
    let fd = super::scm::move_high(fd);
    if offloads {
        offloads_off_at_exit(fd);
    }
    Ok((fd, offloads))
}

/// The TAP fd whose offloads this process turned on, and the process
/// (a fork child's exit leaves its parent's device alone).
static OFFLOADED: std::sync::Mutex<Option<(i32, u32)>> = std::sync::Mutex::new(None);

/// Has the exit of this process turn the offloads of TAP device `fd` off
/// again: they outlive the fd on a persistent device, and a program that
/// reads it next without `IFF_VNET_HDR` would get frames of 64 KiB with
/// their checksums unfilled. Best effort: a process killed by a signal
/// leaves them on.
fn offloads_off_at_exit(fd: i32) {
    let Ok(mut g) = OFFLOADED.lock() else { return };
    let first = g.replace((fd, std::process::id())).is_none();
    drop(g);
    if first {
        let _ = super::at_exit(offloads_off);
    }
}

extern "C" fn offloads_off() {
    super::guard((), || {
        let opened = OFFLOADED.lock().ok().and_then(|g| *g);
        if let Some((fd, pid)) = opened {
            if pid == std::process::id() {
                // SAFETY: TUNSETOFFLOAD takes its flags as the integer argument.
                unsafe { libc::syscall(libc::SYS_ioctl, fd, TUNSETOFFLOAD, 0usize) };
            }
        }
    })
}

/// `VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID`: a frame's
/// TCP/UDP checksum is left for its receiver to ignore (the kernel's own,
/// unfilled) or was verified already (by the NIC, or the kernel).
pub const CSUM_NEEDS_NO_CHECK: u8 = 1 | 2;

/// Reads one frame from a TAP device [`tap_open`] attached into `buf`,
/// its `virtio_net_hdr` apart (a TSO frame is taken whole): the frame's
/// length and the header's flags ([`CSUM_NEEDS_NO_CHECK`]), or `EAGAIN`
/// when none waits.
pub fn tap_read(fd: i32, buf: &mut [u8]) -> Result<(usize, u8), Errno> {
    let mut hdr = [0u8; VNET_HDR_LEN];
    let iov = [
        libc::iovec {
            iov_base: hdr.as_mut_ptr().cast(),
            iov_len: hdr.len(),
        },
        libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        },
    ];
    // SAFETY: both iovecs point at live, writable buffers of their length.
    let n = unsafe { libc::syscall(libc::SYS_readv, fd, iov.as_ptr(), iov.len()) };
    if n < 0 {
        Err(last_errno())
    } else {
        Ok(((n as usize).saturating_sub(VNET_HDR_LEN), hdr[0]))
    }
}

/// Writes one frame to a TAP device [`tap_open`] attached: `hdr`, its
/// `virtio_net_hdr` (all zero: no offload, the frame whole with its
/// checksums filled), then the frame, in `parts` (at most three, joined).
/// Dropped, as [`frame_write`], when the device cannot take it now.
pub fn tap_write(fd: i32, hdr: &[u8; VNET_HDR_LEN], parts: &[&[u8]]) -> Result<(), Errno> {
    let iov = |b: &[u8]| libc::iovec {
        iov_base: b.as_ptr() as *mut libc::c_void,
        iov_len: b.len(),
    };
    let mut v = [iov(hdr), iov(&[]), iov(&[]), iov(&[])];
    let n = 1 + parts.len().min(3);
    for (slot, part) in v[1..n].iter_mut().zip(parts) {
        *slot = iov(part);
    }
    // SAFETY: the first `n` iovecs point at live buffers of their length,
    // which writev only reads.
    let r = unsafe { libc::syscall(libc::SYS_writev, fd, v.as_ptr(), n) };
    if r < 0 {
        Err(last_errno())
    } else {
        Ok(())
    }
}

/// A raw `AF_PACKET` socket bound to the existing interface `name`, for
/// every protocol (`ETH_P_ALL`).
pub fn packet_open(name: &str) -> Result<i32, (Errno, &'static str)> {
    let mut ifr = ifreq(name, 0).map_err(|e| (e, "the interface name"))?;
    // SAFETY: socket takes integers.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_socket,
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            i32::from(ETH_P_ALL.to_be()),
        )
    };
    if fd < 0 {
        return Err((last_errno(), "socket(AF_PACKET)"));
    }
    let fd = fd as i32;
    if let Err(e) = ioctl_ifreq(fd, SIOCGIFINDEX, &mut ifr) {
        let _ = super::kfd_close(fd);
        return Err((e, "SIOCGIFINDEX"));
    }
    let index = i32::from_ne_bytes([ifr[16], ifr[17], ifr[18], ifr[19]]);
    // SAFETY: an all-zero sockaddr_ll is valid.
    let mut sll: libc::sockaddr_ll = unsafe { core::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = ETH_P_ALL.to_be();
    sll.sll_ifindex = index;
    // SAFETY: `sll` is a live sockaddr_ll of the length given.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bind,
            fd,
            &sll as *const libc::sockaddr_ll,
            core::mem::size_of::<libc::sockaddr_ll>(),
        )
    };
    if r < 0 {
        let e = last_errno();
        let _ = super::kfd_close(fd);
        return Err((e, "bind"));
    }
    Ok(super::scm::move_high(fd))
}

/// The MTU of interface `name` (SIOCGIFMTU), if it can be read.
pub fn mtu(name: &str) -> Option<usize> {
    let mut ifr = ifreq(name, 0).ok()?;
    // SAFETY: socket takes integers.
    let s = unsafe {
        libc::syscall(
            libc::SYS_socket,
            libc::AF_INET,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if s < 0 {
        return None;
    }
    let r = ioctl_ifreq(s as i32, SIOCGIFMTU, &mut ifr);
    let _ = super::kfd_close(s as i32);
    r.ok()?;
    let m = i32::from_ne_bytes([ifr[16], ifr[17], ifr[18], ifr[19]]);
    usize::try_from(m).ok().filter(|&m| m >= 576)
}

/// Reads one frame that came in from the link into `buf` (an AF_PACKET
/// socket also sees the frames its interface sends, ours among them:
/// those are skipped): its length, or `EAGAIN` when none waits.
pub fn packet_read(fd: i32, buf: &mut [u8]) -> Result<usize, Errno> {
    loop {
        // SAFETY: an all-zero sockaddr_ll is valid.
        let mut sll: libc::sockaddr_ll = unsafe { core::mem::zeroed() };
        let mut len = core::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: `buf` is writable for its length, `sll` for `len`.
        let n = unsafe {
            libc::syscall(
                libc::SYS_recvfrom,
                fd,
                buf.as_mut_ptr(),
                buf.len(),
                libc::MSG_TRUNC,
                &mut sll as *mut libc::sockaddr_ll,
                &mut len as *mut libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(last_errno());
        }
        if sll.sll_pkttype == libc::PACKET_OUTGOING {
            continue;
        }
        // A frame longer than the buffer (MSG_TRUNC says its length) is
        // not one the MTU allows: dropped.
        if n as usize > buf.len() {
            continue;
        }
        return Ok(n as usize);
    }
}

/// Writes one frame (a frame the device cannot take now is dropped, as a
/// full NIC queue drops it: TCP retransmits).
pub fn frame_write(fd: i32, frame: &[u8]) -> Result<(), Errno> {
    // SAFETY: `frame` is live and readable for its length.
    let n = unsafe { libc::syscall(libc::SYS_write, fd, frame.as_ptr(), frame.len()) };
    if n < 0 {
        Err(last_errno())
    } else {
        Ok(())
    }
}

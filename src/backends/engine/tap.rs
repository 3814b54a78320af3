//! The hosted devices: a Linux TAP device and a raw AF_PACKET socket, both
//! a kernel fd that reads and writes whole Ethernet frames
//! (`platform::netif`).

use alloc::format;
use alloc::string::String;

use super::config::NetifKind;
use super::device::Frames;
use super::tso;
use crate::platform::netif;

/// A kernel fd carrying Ethernet frames.
pub(crate) struct FdFrames {
    fd: i32,
    mtu: usize,
    /// An AF_PACKET socket (it sees its interface's outgoing frames too).
    packet: bool,
    /// A TAP device whose kernel side took the receive offloads: frames
    /// read may be TSO frames of up to 64 KiB, checksums unfilled.
    tap_offloads: bool,
}

impl FdFrames {
    /// Opens the device `kind` names; the error is the message to print
    /// and the errno.
    pub(crate) fn open(kind: &NetifKind) -> Result<FdFrames, (String, i32)> {
        let (name, r, what) = match kind {
            NetifKind::Tap(n) => (n, netif::tap_open(n), "TAP device"),
            NetifKind::Packet(n) => (n, netif::packet_open(n).map(|fd| (fd, false)), "interface"),
            NetifKind::Host => {
                return Err((
                    "a host's device table is attached with usock_netif_attach".into(),
                    crate::consts::EINVAL,
                ))
            }
        };
        match r {
            Ok((fd, tap_offloads)) => Ok(FdFrames {
                fd,
                mtu: netif::mtu(name).unwrap_or(1500),
                packet: matches!(kind, NetifKind::Packet(_)),
                tap_offloads,
            }),
            Err((e, step)) => {
                let hint = match (kind, e) {
                    (NetifKind::Tap(_), crate::consts::ENOENT) => {
                        " (no /dev/net/tun: the tun module is not loaded, or this \
                         container has no such device)"
                    }
                    (_, crate::consts::EPERM) | (_, crate::consts::EACCES) => {
                        " (it needs CAP_NET_ADMIN, or a device made for this user: \
                         ip tuntap add dev NAME mode tap user USER)"
                    }
                    (NetifKind::Tap(_), libc::EBUSY) => " (another process is attached to it)",
                    (NetifKind::Packet(_), libc::ENODEV) => " (no such interface)",
                    _ => "",
                };
                Err((
                    format!(
                        "cannot attach to {what} {name}: {step}: {}{hint}",
                        std::io::Error::from_raw_os_error(e)
                    ),
                    e,
                ))
            }
        }
    }

    /// The fd the poll thread sleeps on.
    pub(crate) fn fd(&self) -> i32 {
        self.fd
    }
}

impl Frames for FdFrames {
    fn recv(&mut self, buf: &mut [u8]) -> Option<usize> {
        loop {
            let r = if self.packet {
                netif::packet_read(self.fd, buf).map(|n| (n, netif::CSUM_NEEDS_NO_CHECK))
            } else {
                netif::tap_read(self.fd, buf)
            };
            match r {
                Ok((0, _)) => return None,
                Ok((n, flags)) => {
                    if self.tap_offloads {
                        // smoltcp checks no TCP/UDP checksum here (the
                        // kernel's own frames leave theirs unfilled): the
                        // frames the kernel has not vouched for, a
                        // bridged NIC's without checksum offload, are
                        // checked here, before the SYN's MSS is changed.
                        if flags & netif::CSUM_NEEDS_NO_CHECK == 0
                            && !tso::l4_checksum_ok(&buf[..n])
                        {
                            continue;
                        }
                        tso::widen_syn_mss(&mut buf[..n], self.mtu);
                    }
                    return Some(n);
                }
                Err(crate::consts::EINTR) => continue,
                Err(_) => return None,
            }
        }
    }

    fn send(&mut self, frame: &[u8]) {
        let none = [0u8; netif::VNET_HDR_LEN];
        let _ = if self.packet {
            netif::frame_write(self.fd, frame)
        } else if let Some((hdr, at, sum)) = self
            .tap_offloads
            .then(|| tso::offload_header(frame, self.mtu))
            .flatten()
        {
            netif::tap_write(self.fd, &hdr, &[&frame[..at], &sum, &frame[at + 2..]])
        } else {
            netif::tap_write(self.fd, &none, &[frame])
        };
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn max_rx_frame(&self) -> usize {
        if self.packet || self.tap_offloads {
            // 64 KiB of IP (IPv6's header beside it) in one Ethernet frame.
            65_535 + 40 + 14
        } else {
            self.mtu + 14
        }
    }

    fn max_tx_frame(&self) -> usize {
        if self.tap_offloads {
            tso::MAX_FRAME
        } else {
            self.mtu + 14
        }
    }

    fn tx_tcp_checksums_offloaded(&self) -> bool {
        self.tap_offloads
    }

    fn rx_checksums_partial(&self) -> bool {
        // A TAP device without its offloads gets whole checksums.
        self.packet || self.tap_offloads
    }
}

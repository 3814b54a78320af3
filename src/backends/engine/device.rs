//! The device table: what the engine needs of a network device (send a
//! frame, receive a frame, MTU, MAC, link state), the same shape whatever
//! carries the frames (a TAP device, an AF_PACKET socket, or a host's
//! driver through the C table `usock_netif_ops`), and its adapter to
//! smoltcp's token-based `Device`.

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;

use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

/// An Ethernet device. Never blocks: `recv` says `None` when no frame
/// waits, `send` drops a frame the device cannot take now (TCP resends).
pub trait Frames: Send {
    /// The next received frame, copied into `buf`: its length.
    fn recv(&mut self, buf: &mut [u8]) -> Option<usize>;
    /// Sends one frame.
    fn send(&mut self, frame: &[u8]);
    /// The IP MTU (1500 on Ethernet); frames are 14 bytes longer.
    fn mtu(&self) -> usize;
    /// The device's own MAC address, if it has one (a host's Ethernet
    /// controller does; a TAP device's far side is the kernel's, so the
    /// engine makes one up or takes the configured one).
    fn mac(&self) -> Option<[u8; 6]> {
        None
    }
    /// Whether the link is up: while it is down no frame is taken from the
    /// device or given to it (TCP resends once it is back).
    fn link_up(&self) -> bool {
        true
    }
    /// Whether received frames may carry TCP/UDP checksums left for the
    /// hardware to fill in (what an AF_PACKET socket sees of a veth or a
    /// NIC with checksum offload): then they are not verified (the link
    /// verified the frame; a NIC its FCS), only computed when sending.
    fn rx_checksums_partial(&self) -> bool {
        false
    }
    /// Whether `send` fills the TCP checksums of the frames it is given
    /// (a TAP device with its offloads: the kernel does, or trusts them
    /// for its own sockets): then smoltcp does not compute them.
    fn tx_tcp_checksums_offloaded(&self) -> bool {
        false
    }
    /// The longest frame `recv` may return: an AF_PACKET socket sees the
    /// kernel's TSO/GRO frames before they are cut to the MTU (up to
    /// 64 KiB of IP), which the engine takes whole.
    fn max_rx_frame(&self) -> usize {
        self.mtu() + ETH_HEADER
    }
    /// The longest frame the engine may give `send`: a TAP device with
    /// TCP segmentation offload takes TCP segments of up to 64 KiB, which
    /// the kernel cuts to the MTU.
    fn max_tx_frame(&self) -> usize {
        self.mtu() + ETH_HEADER
    }
    /// How long, in nanoseconds, until the device has work of its own
    /// (a frame it holds back comes due: [`super::impair::Impair`]); the
    /// engine's poll loop wakes by then. None: only when a frame arrives.
    fn next_due(&self) -> Option<u64> {
        None
    }
}

/// Ethernet's header, which the device's MTU does not count.
const ETH_HEADER: usize = 14;

/// A [`Frames`] as smoltcp's `Device`, with one receive and one transmit
/// buffer reused for every frame.
pub(crate) struct Dev {
    frames: Box<dyn Frames>,
    rx: Vec<u8>,
    tx: Vec<u8>,
}

impl Dev {
    /// See [`Frames::next_due`].
    pub(crate) fn next_due(&self) -> Option<u64> {
        self.frames.next_due()
    }

    pub(crate) fn new(frames: Box<dyn Frames>) -> Dev {
        let len = frames.mtu() + ETH_HEADER;
        let rx = frames.max_rx_frame().max(len);
        let tx = frames.max_tx_frame().max(len);
        Dev {
            frames,
            rx: vec![0; rx],
            tx: vec![0; tx],
        }
    }
}

/// A received frame.
pub(crate) struct Rx<'a>(&'a [u8]);

/// Room for a frame to send.
pub(crate) struct Tx<'a> {
    frames: &'a mut dyn Frames,
    buf: &'a mut [u8],
}

impl phy::RxToken for Rx<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

impl phy::TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let len = len.min(self.buf.len());
        let r = f(&mut self.buf[..len]);
        if self.frames.link_up() {
            self.frames.send(&self.buf[..len]);
        }
        r
    }
}

impl phy::Device for Dev {
    type RxToken<'a> = Rx<'a>;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(Rx<'_>, Tx<'_>)> {
        if !self.frames.link_up() {
            return None;
        }
        let n = self.frames.recv(&mut self.rx)?;
        Some((
            Rx(&self.rx[..n]),
            Tx {
                frames: &mut *self.frames,
                buf: &mut self.tx,
            },
        ))
    }

    fn transmit(&mut self, _now: Instant) -> Option<Tx<'_>> {
        Some(Tx {
            frames: &mut *self.frames,
            buf: &mut self.tx,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.tx.len();
        if self.frames.rx_checksums_partial() {
            caps.checksum.tcp = phy::Checksum::Tx;
            caps.checksum.udp = phy::Checksum::Tx;
            caps.checksum.icmpv4 = phy::Checksum::Tx;
            caps.checksum.icmpv6 = phy::Checksum::Tx;
        }
        if self.frames.tx_tcp_checksums_offloaded() {
            caps.checksum.tcp = if self.frames.rx_checksums_partial() {
                phy::Checksum::None
            } else {
                phy::Checksum::Rx
            };
        }
        caps
    }
}

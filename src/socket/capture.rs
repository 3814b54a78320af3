//! Where a socket's traffic meets `USOCK_PCAP` (issue 16): the frontend's
//! few choke points (a stream send's accepted bytes, a datagram sent, a
//! connect that completed on the connecting end, a FIN or RST) call these,
//! which synthesize the packets (`pcap.rs`) and hand the records to the
//! hosted platform's capture file. Without the `std` platform, or without
//! `USOCK_PCAP`, each is one relaxed load and a branch.

use super::*;
use crate::addr::IpEp;

impl Socket {
    /// Whether this socket's traffic is recorded: capture is on and the
    /// socket is TCP or UDP (AF_UNIX has no packets to show).
    #[inline]
    pub(crate) fn capturing(&self) -> bool {
        #[cfg(feature = "std")]
        {
            self.info.domain != AF_UNIX && crate::platform::capture::enabled()
        }
        #[cfg(not(feature = "std"))]
        {
            false
        }
    }

    /// This socket's and its peer's addresses as packets carry them.
    fn capture_ends(&self, dest: Option<&SockAddr>) -> Option<(IpEp, IpEp)> {
        let fam = self.info.domain;
        let local = IpEp::parse(&self.local_addr(), fam).ok()?;
        let peer = match dest {
            Some(d) => IpEp::parse(d, fam).ok()?,
            None => IpEp::parse(&self.peer_addr().ok()?, fam).ok()?,
        };
        // A socket bound to the wildcard sends from the address its peer
        // sees: the peer's own (everything here is on lo).
        let local = if local.is_wild() {
            IpEp {
                ip: peer.source_for(),
                ..local
            }
        } else {
            local
        };
        Some((local, peer))
    }

    /// What this end acknowledges: the bytes received, and the peer's FIN
    /// (which takes a sequence number) once it came.
    fn capture_bytes_in(&self) -> u64 {
        match self.rx() {
            Rx::Stream(sb) => sb.stats().bytes_in + u64::from(sb.fin_received()),
            Rx::Dgram(_) => 0,
        }
    }

    #[cfg(feature = "std")]
    fn capture_out(records: &[u8]) {
        crate::platform::capture::append(records);
    }

    #[cfg(not(feature = "std"))]
    fn capture_out(_records: &[u8]) {}

    /// Records stream bytes `data` the backend accepted at offset `off`.
    pub(crate) fn capture_stream(&self, off: u64, data: &[u8]) {
        let Some((src, dst)) = self.capture_ends(None) else {
            return;
        };
        let mut out = Vec::new();
        let now = crate::platform::realtime_ns();
        pcap::tcp_data(
            &mut out,
            now,
            &src,
            &dst,
            off,
            self.capture_bytes_in(),
            data,
        );
        Self::capture_out(&out);
    }

    /// Records a datagram sent to `dest` (or to the connected peer).
    pub(crate) fn capture_dgram(&self, dest: Option<&SockAddr>, data: &[u8]) {
        let Some((src, dst)) = self.capture_ends(dest) else {
            return;
        };
        let mut out = Vec::new();
        pcap::udp_datagram(&mut out, crate::platform::realtime_ns(), &src, &dst, data);
        Self::capture_out(&out);
    }

    /// Records the three-way handshake of a connection this socket made.
    pub(crate) fn capture_handshake(&self) {
        let Some((src, dst)) = self.capture_ends(None) else {
            return;
        };
        let mut out = Vec::new();
        pcap::tcp_handshake(&mut out, crate::platform::realtime_ns(), &src, &dst);
        Self::capture_out(&out);
    }

    /// Records this end's FIN (or RST, with `reset`) after `sent` bytes.
    pub(crate) fn capture_end(&self, sent: u64, reset: bool) {
        let Some((src, dst)) = self.capture_ends(None) else {
            return;
        };
        let mut out = Vec::new();
        let now = crate::platform::realtime_ns();
        pcap::tcp_end(
            &mut out,
            now,
            &src,
            &dst,
            sent,
            self.capture_bytes_in(),
            reset,
        );
        Self::capture_out(&out);
    }
}

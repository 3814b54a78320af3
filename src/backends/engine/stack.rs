//! The engine's state: smoltcp's interface and sockets, and for each of
//! the frontend's sockets what maps it onto them (stream offsets both
//! ways, the credit granted, the receiver's window, the listener's pool).
//! All of it behind the engine's one lock; nothing here makes an upcall:
//! [`Stack::gather`] returns them as [`Ev`]s, which the caller makes with
//! the lock released (an upcall may call the backend again: a connection
//! the frontend aborts is closed from inside `upcall::connected`).

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec;
use alloc::vec::Vec;
use core::net::{Ipv4Addr, Ipv6Addr};

use smoltcp::iface::{Config, Interface, PollResult, SocketHandle, SocketSet};
use smoltcp::socket::{tcp, udp};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{
    EthernetAddress, HardwareAddress, IpAddress, IpCidr, IpEndpoint, IpListenEndpoint,
};

use super::config::NetifConfig;
use super::device::{Dev, Frames};
use crate::addr::{IpEp, SockAddr};
use crate::backend::contract::{Errno, FragHeader, SockHandle, SockInfo, SockOpts};
use crate::consts::*;

/// Each TCP connection's receive and send buffers in the engine (the
/// receive buffer is the window the peer sees, scaled past 64 KiB). On
/// the no_std build they come from a small host's heap, at once: a
/// window of 16 KiB (eleven full frames) each way.
#[cfg(feature = "std")]
const TCP_BUF: usize = 256 * 1024;
#[cfg(not(feature = "std"))]
const TCP_BUF: usize = 16 * 1024;
/// UDP: datagrams and bytes queued each way.
#[cfg(feature = "std")]
const UDP_PACKETS: usize = 128;
#[cfg(feature = "std")]
const UDP_BYTES: usize = 256 * 1024;
#[cfg(not(feature = "std"))]
const UDP_PACKETS: usize = 16;
#[cfg(not(feature = "std"))]
const UDP_BYTES: usize = 16 * 1024;
/// Listening sockets per listener at most (backlog + 1 below that): the
/// connections the engine can be setting up at once for one port, as
/// smoltcp's listener turns into the connection; a SYN beyond them is
/// reset. Their buffers cost address space, not memory, until used
/// (zeroed allocations of this size are fresh pages).
const LISTEN_POOL: usize = 64;
/// A connect that nobody answers fails after this long (Linux's 6 SYN
/// retries take 127 s).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(127);
/// A connection whose peer acknowledges nothing this long while data waits
/// is dropped (ETIMEDOUT; Linux's tcp_retries2 gives about 15 minutes).
const IDLE_TIMEOUT: Duration = Duration::from_secs(900);
/// The largest piece of stream handed up at once.
const DELIVER_MAX: usize = 64 * 1024;
/// The most egress passes in one run of the engine (each sends a segment
/// of every socket that has one due): about 384 KiB of full frames, more
/// than a connection's send buffer.
const EGRESS_BATCH: usize = 256;

/// The engine's clock: the platform's monotonic one.
pub(crate) fn now() -> Instant {
    Instant::from_micros((crate::platform::mono_ns() / 1000) as i64)
}

/// What the frontend sees of a TCP connection.
#[derive(Default)]
struct TcpState {
    /// The next stream offset to go into smoltcp's send buffer.
    tx_next: u64,
    /// Fragments that came ahead of `tx_next` (two threads' sends), by
    /// offset, or that smoltcp could not take yet.
    stash: BTreeMap<u64, Vec<u8>>,
    /// The stream's end, once the frontend sent its FIN.
    fin_at: Option<u64>,
    fin_sent: bool,
    rst_sent: bool,
    /// The credit granted: the frontend may send below this offset.
    granted: u64,
    /// The next offset handed up, and the receiver's window end.
    rx_off: u64,
    win_end: u64,
    fin_delivered: bool,
    /// smoltcp's state said the peer sent its FIN (it may say Closed by
    /// the time the bytes before it have gone up).
    peer_fin: bool,
    /// Stream pieces the frontend turned away (a window that shrank): to
    /// go up again before anything newer.
    held: VecDeque<(u64, bool, Vec<u8>)>,
    connecting: bool,
    /// The connection ended (closed, reset, refused): no more upcalls.
    ended: bool,
    /// It ended as a connect that failed (refused, timed out).
    refused: bool,
    started: Option<Instant>,
    /// When the peer last showed it was there (data, an acknowledgement).
    progress: Option<Instant>,
    unacked: usize,
}

#[derive(Default)]
struct UdpState {
    /// A datagram the frontend is handing over in several fragments.
    partial: Option<(u64, Vec<u8>, Option<IpEp>)>,
    /// A send found the buffer full: say writable when it has room.
    want_writable: bool,
    next_id: u64,
}

enum Kind {
    /// Nothing in smoltcp yet (a socket bound, or only claimed).
    Idle,
    /// A listener: its pool of smoltcp listening sockets, and connections
    /// established but not yet in the frontend's accept queue.
    Listen {
        pool: Vec<SocketHandle>,
        ready: VecDeque<u64>,
        full: bool,
    },
    Tcp(SocketHandle),
    Udp(SocketHandle),
}

/// The TCP options the engine acts on, as set on the socket (an accepted
/// connection takes its listener's).
#[derive(Clone, Copy, Default)]
pub(crate) struct TcpOpts {
    /// TCP_NODELAY off: Nagle's algorithm (the engine's default is off).
    pub(crate) nagle: bool,
    /// TCP_USER_TIMEOUT: how long unacknowledged data (or a SYN) may wait
    /// before the connection fails with ETIMEDOUT.
    pub(crate) user_timeout: Option<Duration>,
    /// SO_KEEPALIVE.
    pub(crate) keepalive: bool,
}

/// Linux's net.ipv4.tcp_keepalive_time.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(7200);

impl TcpOpts {
    fn apply(&self, s: &mut tcp::Socket<'_>, connecting: bool) {
        s.set_nagle_enabled(self.nagle);
        let fallback = if connecting {
            CONNECT_TIMEOUT
        } else {
            IDLE_TIMEOUT
        };
        s.set_timeout(Some(self.user_timeout.unwrap_or(fallback)));
        s.set_keep_alive(self.keepalive.then_some(KEEPALIVE_IDLE));
    }

    fn limit(&self, connecting: bool) -> Duration {
        self.user_timeout.unwrap_or(if connecting {
            CONNECT_TIMEOUT
        } else {
            IDLE_TIMEOUT
        })
    }
}

struct Entry {
    /// The frontend's handle; 0 while an accepted connection is not yet
    /// the frontend's, or once the frontend closed the socket.
    handle: u64,
    info: SockInfo,
    local: Option<IpEp>,
    peer: Option<IpEp>,
    port: Option<(i32, u16)>,
    /// The program bound the port itself (bind() with a port: Linux's
    /// SOCK_BINDPORT_LOCK): it stays through connect(AF_UNSPEC).
    user_port: bool,
    v6only: bool,
    kind: Kind,
    t: TcpState,
    u: UdpState,
    /// The frontend closed it; it lives on until its connection ends.
    orphan: bool,
    opts: TcpOpts,
}

/// An upcall to make once the lock is released.
pub(crate) enum Ev {
    /// Stream bytes at `off` (`fin`: the stream ends after them).
    Data {
        h: SockHandle,
        off: u64,
        fin: bool,
        data: Vec<u8>,
    },
    /// A datagram from `src`.
    Dgram {
        h: SockHandle,
        id: u64,
        src: SockAddr,
        data: Vec<u8>,
    },
    /// A connect completed: credit, then connected.
    Connected {
        h: SockHandle,
        credit: u64,
    },
    Refused {
        h: SockHandle,
        err: Errno,
    },
    Reset {
        h: SockHandle,
        err: Errno,
    },
    Credit {
        h: SockHandle,
        limit: u64,
    },
    Writable {
        h: SockHandle,
    },
    /// Connection `child` of listener `lid` is ready for its accept queue.
    Incoming {
        listener: SockHandle,
        lid: u64,
        child: u64,
        credit: u64,
    },
}

/// smoltcp's side of the engine and the frontend's sockets on it.
pub(crate) struct Stack {
    iface: Interface,
    set: SocketSet<'static>,
    dev: Dev,
    socks: BTreeMap<u64, Entry>,
    /// Bound ports by (type, port): how many sockets, whether all of them
    /// let others share it.
    ports: BTreeMap<(i32, u16), (u32, bool)>,
    next_id: u64,
    rand: u64,
    addrs: Vec<IpAddress>,
    /// When the runner will run the engine next, as it planned before
    /// sleeping (`Some(None)`: only on input; `None`: no plan yet).
    planned: Option<Option<Instant>>,
    /// The device's IP MTU: the engine does not fragment.
    ip_mtu: usize,
    /// The links' prefixes, and whether a default route exists per
    /// family: what the engine can reach at all.
    nets: Vec<IpCidr>,
    gw4: bool,
    gw6: bool,
    /// The DHCPv4 client's socket (`USOCK_NETIF_ADDR=dhcp`).
    #[cfg(feature = "dhcp")]
    dhcp: Option<SocketHandle>,
    /// The lease in force, and whether it changed since
    /// [`Self::take_lease_news`] last looked.
    #[cfg(feature = "dhcp")]
    lease: Option<super::dhcp::Lease>,
    #[cfg(feature = "dhcp")]
    lease_news: bool,
}

fn ip_of(ep: &IpEp) -> IpAddress {
    if ep.is_v4() {
        IpAddress::Ipv4(Ipv4Addr::new(ep.ip[12], ep.ip[13], ep.ip[14], ep.ip[15]))
    } else {
        IpAddress::Ipv6(Ipv6Addr::from(ep.ip))
    }
}

fn ep_of(addr: IpAddress, port: u16, family: i32) -> IpEp {
    let ip = match addr {
        IpAddress::Ipv4(a) => a.to_ipv6_mapped().octets(),
        IpAddress::Ipv6(a) => a.octets(),
    };
    IpEp { family, ip, port }
}

fn new_tcp() -> tcp::Socket<'static> {
    let mut s = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; TCP_BUF]),
        tcp::SocketBuffer::new(vec![0; TCP_BUF]),
    );
    // The frontend hands over whole sends (up to 64 KiB a fragment):
    // Nagle would only hold the tail of each back by a round trip.
    s.set_nagle_enabled(false);
    s
}

fn new_udp() -> udp::Socket<'static> {
    udp::Socket::new(
        udp::PacketBuffer::new(
            vec![udp::PacketMetadata::EMPTY; UDP_PACKETS],
            vec![0; UDP_BYTES],
        ),
        udp::PacketBuffer::new(
            vec![udp::PacketMetadata::EMPTY; UDP_PACKETS],
            vec![0; UDP_BYTES],
        ),
    )
}

/// Whether smoltcp's state says the peer sent its FIN.
fn peer_finished(st: tcp::State) -> bool {
    matches!(
        st,
        tcp::State::CloseWait | tcp::State::LastAck | tcp::State::Closing | tcp::State::TimeWait
    )
}

impl Stack {
    /// The interface `cfg` describes over `frames`; `seed` varies
    /// smoltcp's initial sequence numbers and the ephemeral ports.
    pub(crate) fn new(
        cfg: &NetifConfig,
        frames: alloc::boxed::Box<dyn Frames>,
        seed: u64,
    ) -> Stack {
        let ip_mtu = frames.mtu();
        let mac = cfg
            .mac
            .or_else(|| frames.mac())
            .unwrap_or_else(|| super::config::made_up_mac(seed));
        let mut dev = Dev::new(frames);
        let mut c = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        c.random_seed = seed;
        let mut iface = Interface::new(c, &mut dev, now());
        let mut addrs = Vec::new();
        let mut nets = Vec::new();
        iface.update_ip_addrs(|a| {
            for cidr in &cfg.addrs {
                let ip: IpAddress = cidr.ip.into();
                if a.push(IpCidr::new(ip, cidr.prefix)).is_ok() {
                    addrs.push(ip);
                    nets.push(IpCidr::new(ip, cidr.prefix));
                }
            }
        });
        let gw4 = cfg.gws.iter().any(|g| g.is_ipv4());
        let gw6 = cfg.gws.iter().any(|g| g.is_ipv6());
        for gw in &cfg.gws {
            let _ = match gw {
                core::net::IpAddr::V4(g) => {
                    iface.routes_mut().add_default_ipv4_route(*g).map(|_| ())
                }
                core::net::IpAddr::V6(g) => {
                    iface.routes_mut().add_default_ipv6_route(*g).map(|_| ())
                }
            };
        }
        #[cfg_attr(not(feature = "dhcp"), allow(unused_mut))]
        let mut set = SocketSet::new(Vec::new());
        #[cfg(feature = "dhcp")]
        let dhcp = cfg
            .dhcp
            .then(|| set.add(smoltcp::socket::dhcpv4::Socket::new()));
        Stack {
            iface,
            set,
            dev,
            socks: BTreeMap::new(),
            ports: BTreeMap::new(),
            next_id: 1,
            rand: seed | 1,
            addrs,
            planned: None,
            ip_mtu,
            nets,
            gw4,
            gw6,
            #[cfg(feature = "dhcp")]
            dhcp,
            #[cfg(feature = "dhcp")]
            lease: None,
            #[cfg(feature = "dhcp")]
            lease_news: false,
        }
    }

    /// Whether calls that need an IPv4 address should wait: the engine's
    /// IPv4 address comes from DHCP and no lease is in force.
    #[cfg(all(feature = "dhcp", feature = "std"))]
    pub(crate) fn awaits_lease(&self) -> bool {
        self.dhcp.is_some() && self.lease.is_none()
    }

    /// The lease, when it changed since the last look (`Some(None)`: it
    /// went away).
    #[cfg(feature = "dhcp")]
    pub(crate) fn take_lease_news(&mut self) -> Option<Option<super::dhcp::Lease>> {
        core::mem::take(&mut self.lease_news).then(|| self.lease.clone())
    }

    /// The DHCP client's news: a lease configures the interface (address,
    /// prefix, default route), its end takes them away again.
    #[cfg(feature = "dhcp")]
    fn dhcp_poll(&mut self) {
        use smoltcp::socket::dhcpv4;
        let Some(h) = self.dhcp else {
            return;
        };
        let new = match self.set.get_mut::<dhcpv4::Socket>(h).poll() {
            None => return,
            Some(dhcpv4::Event::Configured(c)) => Some(super::dhcp::Lease {
                addr: c.address.address(),
                prefix: c.address.prefix_len(),
                router: c.router,
                dns: c.dns_servers.iter().copied().collect(),
            }),
            Some(dhcpv4::Event::Deconfigured) => None,
        };
        if let Some(old) = self.lease.take() {
            let ip = IpAddress::Ipv4(old.addr);
            self.iface
                .update_ip_addrs(|a| a.retain(|c| c.address() != ip));
            self.addrs.retain(|a| *a != ip);
            self.nets.retain(|n| n.address() != ip);
            self.iface.routes_mut().remove_default_ipv4_route();
            self.gw4 = false;
        }
        if let Some(l) = &new {
            let ip = IpAddress::Ipv4(l.addr);
            let cidr = IpCidr::new(ip, l.prefix);
            let mut pushed = false;
            self.iface
                .update_ip_addrs(|a| pushed = a.push(cidr).is_ok());
            if pushed {
                self.addrs.push(ip);
                self.nets.push(cidr);
            }
            if let Some(r) = l.router {
                self.gw4 = self.iface.routes_mut().add_default_ipv4_route(r).is_ok();
            }
        }
        self.lease = new;
        self.lease_news = true;
    }

    fn next_rand(&mut self) -> u64 {
        // xorshift64: ports need spread, not secrecy.
        let mut x = self.rand;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rand = x;
        x
    }

    /// A new socket of the frontend's (`handle`), claimed.
    pub(crate) fn add(&mut self, handle: SockHandle, info: SockInfo) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.socks.insert(
            id,
            Entry {
                handle: handle.0,
                info,
                local: None,
                peer: None,
                port: None,
                user_port: false,
                v6only: info.domain == AF_INET,
                kind: Kind::Idle,
                t: TcpState::default(),
                u: UdpState::default(),
                orphan: false,
                opts: TcpOpts::default(),
            },
        );
        id
    }

    fn entry(&mut self, id: u64) -> Result<&mut Entry, Errno> {
        self.socks.get_mut(&id).ok_or(EBADF)
    }

    fn is_ours(&self, ip: &IpAddress) -> bool {
        self.addrs.contains(ip)
    }

    /// Whether the engine has a route to `ep`: on one of its links, or a
    /// default route of its family (else ENETUNREACH, as Linux answers
    /// without a route; smoltcp would send nothing and let the connect
    /// wait). Multicast and broadcast go out on the link.
    fn routable(&self, ep: &IpEp) -> bool {
        let ip = ip_of(ep);
        ep.is_multicast()
            || ep.is_broadcast()
            || self.nets.iter().any(|n| n.contains_addr(&ip))
            || match ip {
                IpAddress::Ipv4(_) => self.gw4,
                IpAddress::Ipv6(_) => self.gw6,
            }
    }

    /// Takes `port` of type `ty` for a socket (0: an ephemeral one from
    /// `range`); `exhausted` when none is free.
    fn take_port(
        &mut self,
        ty: i32,
        port: u16,
        share: bool,
        range: (u16, u16),
        exhausted: Errno,
    ) -> Result<u16, Errno> {
        if port != 0 {
            match self.ports.get_mut(&(ty, port)) {
                None => {
                    self.ports.insert((ty, port), (1, share));
                }
                Some((n, s)) if *s && share => *n += 1,
                Some(_) => return Err(EADDRINUSE),
            }
            return Ok(port);
        }
        let (lo, hi) = range;
        let span = u64::from(hi.saturating_sub(lo)) + 1;
        let start = self.next_rand() % span;
        for i in 0..span {
            let p = lo + ((start + i) % span) as u16;
            if let alloc::collections::btree_map::Entry::Vacant(v) = self.ports.entry((ty, p)) {
                v.insert((1, false));
                return Ok(p);
            }
        }
        Err(exhausted)
    }

    fn put_port(&mut self, key: (i32, u16)) {
        if let Some((n, _)) = self.ports.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.ports.remove(&key);
            }
        }
    }

    /// bind(): an address of the interface (or the wildcard), a free port.
    pub(crate) fn bind(
        &mut self,
        id: u64,
        addr: &SockAddr,
        opts: SockOpts,
    ) -> Result<SockAddr, Errno> {
        let (info, bound) = {
            let e = self.entry(id)?;
            (e.info, e.local.is_some())
        };
        if bound {
            return Err(EINVAL);
        }
        let ep = IpEp::parse(addr, info.domain)?;
        if info.domain == AF_INET6 && opts.v6only && ep.is_v4() && !ep.is_wild() {
            return Err(EADDRNOTAVAIL);
        }
        if !ep.is_wild() && !opts.freebind && !self.is_ours(&ip_of(&ep)) {
            return Err(EADDRNOTAVAIL);
        }
        let port = self.take_port(
            info.ty,
            ep.port,
            opts.reuseaddr || opts.reuseport,
            opts.ephemeral_range(),
            EADDRINUSE,
        )?;
        let e = self.entry(id)?;
        e.port = Some((info.ty, port));
        e.user_port = ep.port != 0;
        e.v6only = info.domain == AF_INET || opts.v6only;
        let local = IpEp { port, ..ep };
        e.local = Some(local);
        if info.ty == SOCK_DGRAM {
            self.open_udp(id)?;
        }
        Ok(local.to_sockaddr(info.domain))
    }

    /// Binds to the wildcard and an ephemeral port if not bound yet.
    fn autobind(&mut self, id: u64, opts: SockOpts, exhausted: Errno) -> Result<(), Errno> {
        let e = self.entry(id)?;
        if e.local.is_some() {
            return Ok(());
        }
        let family = e.info.domain;
        let any = IpEp {
            family,
            ip: if family == AF_INET {
                Ipv4Addr::UNSPECIFIED.to_ipv6_mapped().octets()
            } else {
                [0; 16]
            },
            port: 0,
        };
        match self.bind(id, &any.to_sockaddr(family), opts) {
            Err(EADDRINUSE) => Err(exhausted),
            r => r.map(|_| ()),
        }
    }

    /// The listen endpoint of a bound socket.
    fn listen_ep(local: &IpEp) -> IpListenEndpoint {
        IpListenEndpoint {
            addr: (!local.is_wild()).then(|| ip_of(local)),
            port: local.port,
        }
    }

    fn open_udp(&mut self, id: u64) -> Result<(), Errno> {
        let local = self.entry(id)?.local.ok_or(EINVAL)?;
        let mut s = new_udp();
        s.bind(Self::listen_ep(&local)).map_err(|_| EINVAL)?;
        let sh = self.set.add(s);
        self.entry(id)?.kind = Kind::Udp(sh);
        Ok(())
    }

    /// listen(): a pool of smoltcp listening sockets on the bound port.
    pub(crate) fn listen(&mut self, id: u64, opts: SockOpts, backlog: u32) -> Result<(), Errno> {
        if matches!(self.entry(id)?.kind, Kind::Listen { .. }) {
            return Ok(());
        }
        self.autobind(id, opts, EADDRINUSE)?;
        let local = self.entry(id)?.local.ok_or(EINVAL)?;
        let n = (backlog as usize).saturating_add(1).clamp(1, LISTEN_POOL);
        let mut pool = Vec::with_capacity(n);
        for _ in 0..n {
            let mut s = new_tcp();
            s.listen(Self::listen_ep(&local)).map_err(|_| EINVAL)?;
            pool.push(self.set.add(s));
        }
        self.entry(id)?.kind = Kind::Listen {
            pool,
            ready: VecDeque::new(),
            full: false,
        };
        Ok(())
    }

    /// connect(): for a stream, starts the handshake (the outcome comes
    /// from [`Self::gather`]); `win` is the receiver's window end now.
    pub(crate) fn connect(
        &mut self,
        id: u64,
        dest: &SockAddr,
        opts: SockOpts,
        win: u64,
    ) -> Result<(), Errno> {
        let info = self.entry(id)?.info;
        if info.ty == SOCK_DGRAM {
            if dest.family() == AF_UNSPEC {
                self.entry(id)?.peer = None;
                return Ok(());
            }
            let ep = IpEp::parse(dest, info.domain)?;
            // Without a route Linux refuses the connect itself.
            if !self.routable(&ep) {
                return Err(ENETUNREACH);
            }
            self.autobind(id, opts, EAGAIN)?;
            self.entry(id)?.peer = Some(ep);
            return Ok(());
        }
        self.forget_refused(id)?;
        if !matches!(self.entry(id)?.kind, Kind::Idle) {
            return Err(EISCONN);
        }
        let ep = IpEp::parse(dest, info.domain)?;
        let v6only = self.entry(id)?.v6only || (info.domain == AF_INET6 && opts.v6only);
        if ep.is_v4() && info.domain == AF_INET6 && v6only {
            return Err(ENETUNREACH);
        }
        if ep.port == 0 {
            return Err(ECONNREFUSED);
        }
        if !self.routable(&ep) {
            return Err(ENETUNREACH);
        }
        self.autobind(id, opts, EADDRNOTAVAIL)?;
        let local = self.entry(id)?.local.ok_or(EINVAL)?;
        let mut s = new_tcp();
        s.connect(
            self.iface.context(),
            IpEndpoint::new(ip_of(&ep), ep.port),
            Self::listen_ep(&local),
        )
        .map_err(|e| match e {
            tcp::ConnectError::Unaddressable => ENETUNREACH,
            tcp::ConnectError::InvalidState => EISCONN,
        })?;
        self.entry(id)?.opts.apply(&mut s, true);
        let sh = self.set.add(s);
        let t = now();
        let e = self.entry(id)?;
        e.kind = Kind::Tcp(sh);
        e.peer = Some(ep);
        e.t.connecting = true;
        e.t.started = Some(t);
        e.t.progress = Some(t);
        e.t.win_end = win;
        Ok(())
    }

    /// A connect that was refused (or timed out) leaves the socket free to
    /// try again, as Linux's does from TCP_CLOSE: its closed smoltcp
    /// socket goes, with what the attempt left. Its port stays.
    fn forget_refused(&mut self, id: u64) -> Result<(), Errno> {
        let Stack { socks, set, .. } = self;
        let e = socks.get_mut(&id).ok_or(EBADF)?;
        let Kind::Tcp(sh) = e.kind else {
            return Ok(());
        };
        if e.t.refused && set.get::<tcp::Socket>(sh).state() == tcp::State::Closed {
            set.remove(sh);
            e.kind = Kind::Idle;
            e.t = TcpState::default();
            e.peer = None;
        }
        Ok(())
    }

    /// TCP's connect(AF_UNSPEC) (`Backend::disconnect`): the connection
    /// (reset by the frontend already, or still connecting: aborted here)
    /// lives on as an orphan until smoltcp is done with it, and the socket
    /// is new and unconnected; its port goes back unless the program bound
    /// it (then `local_addr` says None).
    pub(crate) fn disconnect(&mut self, id: u64) -> Result<(), Errno> {
        let e = self.entry(id)?;
        if e.info.ty != SOCK_STREAM {
            return Err(EOPNOTSUPP);
        }
        let sh = match e.kind {
            Kind::Idle => return Ok(()),
            Kind::Tcp(sh) => sh,
            _ => return Err(EOPNOTSUPP),
        };
        e.kind = Kind::Idle;
        e.t = TcpState::default();
        e.peer = None;
        let (info, user, port) = (e.info, e.user_port, e.port);
        if !user {
            e.port = None;
            e.local = None;
        }
        let s = self.set.get_mut::<tcp::Socket>(sh);
        if !matches!(s.state(), tcp::State::Closed | tcp::State::TimeWait) {
            s.abort();
        }
        let oid = self.add(SockHandle(0), info);
        let o = self.entry(oid)?;
        o.kind = Kind::Tcp(sh);
        o.orphan = true;
        o.t.ended = true;
        o.t.rst_sent = true;
        if let (false, Some(p)) = (user, port) {
            self.put_port(p);
        }
        Ok(())
    }

    /// A stream fragment from the frontend at `off` (FIN, RST as flagged).
    pub(crate) fn write_stream(
        &mut self,
        id: u64,
        off: u64,
        payload: &[u8],
        fin: bool,
        rst: bool,
    ) -> Result<(), Errno> {
        let Stack { socks, set, .. } = self;
        let e = socks.get_mut(&id).ok_or(EBADF)?;
        let Kind::Tcp(sh) = e.kind else {
            return Err(ENOTCONN);
        };
        let s = set.get_mut::<tcp::Socket>(sh);
        let t = &mut e.t;
        if rst {
            s.abort();
            t.rst_sent = true;
            t.stash.clear();
            return Ok(());
        }
        if t.rst_sent || t.ended {
            return Ok(());
        }
        let end = off + payload.len() as u64;
        if end > t.tx_next {
            let skip = t.tx_next.saturating_sub(off) as usize;
            let mut at = off + skip as u64;
            let mut rest = &payload[skip..];
            if at == t.tx_next && t.stash.is_empty() {
                // In order, nothing held before it (the usual case): into
                // smoltcp's send buffer straight from the caller's bytes,
                // one copy; only what does not fit is held.
                let n = s.send_slice(rest).unwrap_or(0);
                t.tx_next += n as u64;
                at += n as u64;
                rest = &rest[n..];
            }
            if !rest.is_empty() {
                t.stash.insert(at, rest.to_vec());
            }
        }
        if fin {
            t.fin_at = Some(end);
        }
        flush(s, t);
        Ok(())
    }

    /// A datagram fragment from the frontend, to `dest` (None: the
    /// connected peer).
    pub(crate) fn write_dgram(
        &mut self,
        id: u64,
        hd: &FragHeader,
        dest: Option<&SockAddr>,
        payload: &[u8],
        opts: SockOpts,
    ) -> Result<(), Errno> {
        let (frag_id, at, total) = (hd.offset, hd.dgram_offset, hd.dgram_total);
        let info = self.entry(id)?.info;
        let dest = match dest {
            Some(d) => Some(IpEp::parse(d, info.domain)?),
            None => None,
        };
        // Put the datagram together when it comes in pieces.
        let whole: Vec<u8>;
        let (data, dest) = if at == 0 && payload.len() == total as usize {
            (payload, dest)
        } else {
            let e = self.entry(id)?;
            if at == 0 {
                let mut v = Vec::with_capacity(total as usize);
                v.extend_from_slice(payload);
                e.u.partial = Some((frag_id, v, dest));
            } else if let Some((pid, v, _)) = e.u.partial.as_mut() {
                if *pid != frag_id || v.len() != at as usize {
                    e.u.partial = None;
                    return Err(EINVAL);
                }
                v.extend_from_slice(payload);
            }
            match e.u.partial.take() {
                Some((_, v, d)) if v.len() >= total as usize => {
                    whole = v;
                    (&whole[..], d)
                }
                p => {
                    e.u.partial = p;
                    return Ok(());
                }
            }
        };
        let dest = match dest.or(self.entry(id)?.peer) {
            Some(d) => d,
            None => return Err(EDESTADDRREQ),
        };
        if dest.port == 0 {
            return Err(EINVAL);
        }
        if !self.routable(&dest) {
            return Err(ENETUNREACH);
        }
        self.autobind(id, opts, EAGAIN)?;
        let (v6only, local, kind) = {
            let e = self.entry(id)?;
            (
                e.v6only,
                e.local,
                match e.kind {
                    Kind::Udp(sh) => Some(sh),
                    _ => None,
                },
            )
        };
        if dest.is_v4() && info.domain == AF_INET6 && v6only {
            return Err(ENETUNREACH);
        }
        let sh = kind.ok_or(EINVAL)?;
        let mut meta = udp::UdpMetadata::from(IpEndpoint::new(ip_of(&dest), dest.port));
        meta.local_address = local.filter(|l| !l.is_wild()).map(|l| ip_of(&l));
        // The engine sends no IP fragments (smoltcp would drop such a
        // datagram silently): refused instead, as Linux refuses one under
        // IP_PMTUDISC_DO.
        let headers = if dest.is_v4() { 20 } else { 40 } + 8;
        if data.len() + headers > self.ip_mtu {
            return Err(EMSGSIZE);
        }
        let s = self.set.get_mut::<udp::Socket>(sh);
        if data.len() > s.payload_send_capacity() {
            return Err(EMSGSIZE);
        }
        match s.send_slice(data, meta) {
            Ok(()) => Ok(()),
            Err(udp::SendError::BufferFull) => {
                self.entry(id)?.u.want_writable = true;
                Err(EAGAIN)
            }
            Err(udp::SendError::Unaddressable) => Err(ENETUNREACH),
        }
    }

    /// setsockopt() of an option the engine acts on (TCP_NODELAY,
    /// TCP_USER_TIMEOUT, SO_KEEPALIVE; the frontend checked the value):
    /// kept for the socket's connections, applied to one it has.
    pub(crate) fn set_tcp_opts(&mut self, id: u64, f: impl FnOnce(&mut TcpOpts)) {
        let Stack { socks, set, .. } = self;
        let Some(e) = socks.get_mut(&id) else { return };
        f(&mut e.opts);
        if let Kind::Tcp(sh) = e.kind {
            e.opts.apply(set.get_mut::<tcp::Socket>(sh), e.t.connecting);
        }
    }

    /// The receiver's window moved to `limit`: whether the engine holds
    /// bytes it may now hand up.
    pub(crate) fn window(&mut self, id: u64, limit: u64) -> bool {
        let Stack { socks, set, .. } = self;
        let Some(e) = socks.get_mut(&id) else {
            return false;
        };
        if limit <= e.t.win_end {
            return false;
        }
        e.t.win_end = limit;
        match e.kind {
            Kind::Tcp(sh) => {
                let s = set.get::<tcp::Socket>(sh);
                s.recv_queue() > 0 || !e.t.held.is_empty() || (e.t.peer_fin && !e.t.fin_delivered)
            }
            _ => false,
        }
    }

    /// The frontend made room in a listener's accept queue: whether
    /// connections wait for it.
    pub(crate) fn accepted(&mut self, id: u64) -> bool {
        match self.socks.get_mut(&id).map(|e| &mut e.kind) {
            Some(Kind::Listen { ready, full, .. }) => {
                *full = false;
                !ready.is_empty()
            }
            _ => false,
        }
    }

    /// SIOCOUTQ: the stream bytes sent and not yet acknowledged, or not
    /// yet sent.
    pub(crate) fn unread(&self, id: u64) -> Option<u64> {
        let e = self.socks.get(&id)?;
        let Kind::Tcp(sh) = e.kind else { return None };
        let held: usize = e.t.stash.values().map(Vec::len).sum();
        Some((self.set.get::<tcp::Socket>(sh).send_queue() + held) as u64)
    }

    /// The address the socket has, as its family sees it.
    pub(crate) fn local_addr(&self, id: u64) -> Option<SockAddr> {
        let e = self.socks.get(&id)?;
        if let Kind::Tcp(sh) = e.kind {
            if let Some(l) = self.set.get::<tcp::Socket>(sh).local_endpoint() {
                return Some(ep_of(l.addr, l.port, e.info.domain).to_sockaddr(e.info.domain));
            }
        }
        // A connected datagram socket bound to the wildcard has the
        // source address the route to its peer picks (Linux fixes it at
        // connect(): ip4_datagram_connect, ip6_datagram_connect).
        let local = match (e.local, e.peer) {
            (Some(l), Some(p)) if l.is_wild() && matches!(e.kind, Kind::Udp(_)) => self
                .iface
                .get_source_address(&ip_of(&p))
                .filter(|a| !a.is_unspecified())
                .map_or(l, |a| ep_of(a, l.port, e.info.domain)),
            (l, _) => l?,
        };
        Some(local.to_sockaddr(e.info.domain))
    }

    /// The connected peer.
    pub(crate) fn peer_addr(&self, id: u64) -> Option<SockAddr> {
        let e = self.socks.get(&id)?;
        e.peer.map(|p| p.to_sockaddr(e.info.domain))
    }

    /// The frontend is done with the socket: a connection lives on until
    /// its FIN is through (or resets when the frontend had not read all).
    pub(crate) fn close(&mut self, id: u64) {
        let Some(mut e) = self.socks.remove(&id) else {
            return;
        };
        match core::mem::replace(&mut e.kind, Kind::Idle) {
            Kind::Idle => {}
            Kind::Udp(sh) => {
                self.set.remove(sh);
            }
            Kind::Listen { pool, ready, .. } => {
                for sh in pool {
                    self.set.remove(sh);
                }
                // Connections nobody will accept: reset, as Linux's
                // inet_csk_listen_stop.
                for c in ready {
                    if let Some(ce) = self.socks.get_mut(&c) {
                        if let Kind::Tcp(sh) = ce.kind {
                            self.set.get_mut::<tcp::Socket>(sh).abort();
                        }
                        ce.orphan = true;
                        ce.handle = 0;
                    }
                }
            }
            Kind::Tcp(sh) => {
                let s = self.set.get_mut::<tcp::Socket>(sh);
                if !e.t.rst_sent && !e.t.fin_sent && e.t.fin_at.is_none() {
                    if s.recv_queue() > 0 || e.t.connecting {
                        s.abort();
                    } else {
                        s.close();
                    }
                }
                e.kind = Kind::Tcp(sh);
                e.orphan = true;
                e.handle = 0;
                self.socks.insert(id, e);
                return;
            }
        }
        if let Some(p) = e.port {
            self.put_port(p);
        }
    }

    /// Runs `f`, which calls into smoltcp. A panic in smoltcp would end
    /// the engine's thread and hang every socket on it; instead every TCP
    /// connection is aborted (each reader gets ECONNRESET from the next
    /// gather) and the engine goes on. The one panic seen here (smoltcp
    /// issue 1048, a slow reader's full buffer) is fixed in the vendored
    /// copy (vendor/README.md); this is for the ones not seen yet. None
    /// when `f` panicked.
    #[cfg(feature = "std")]
    fn shielded<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> Option<R> {
        match std::panic::catch_unwind(core::panic::AssertUnwindSafe(|| f(self))) {
            Ok(r) => Some(r),
            Err(_) => {
                self.abort_connections();
                crate::platform::diag(
                    b"libuserspacesock: the TCP/IP engine (smoltcp) panicked: its TCP \
                      connections are reset\n",
                );
                None
            }
        }
    }

    /// Without std a panic is the host's (no unwinding to catch).
    #[cfg(not(feature = "std"))]
    fn shielded<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> Option<R> {
        Some(f(self))
    }

    /// Closes every TCP connection of the engine at once (listeners stay):
    /// the state smoltcp panicked in is somewhere among them.
    #[cfg(feature = "std")]
    fn abort_connections(&mut self) {
        for (_, s) in self.set.iter_mut() {
            if let smoltcp::socket::Socket::Tcp(t) = s {
                if !t.is_listening() && t.state() != tcp::State::Closed {
                    t.abort();
                }
            }
        }
    }

    /// Runs the engine: frames in, segments out, timers.
    pub(crate) fn poll(&mut self) {
        let t = now();
        self.shielded(|st| {
            st.iface.poll(t, &mut st.dev, &mut st.set);
            st.drain_egress(t);
        });
        #[cfg(feature = "dhcp")]
        self.dhcp_poll();
    }

    /// Sends what the sockets have queued, at once (after a write).
    pub(crate) fn egress(&mut self) {
        let t = now();
        self.shielded(|st| st.drain_egress(t));
    }

    /// smoltcp's egress sends at most one segment per socket per call:
    /// called again while it sends, so that one run of the engine sends
    /// all that the windows allow, not a frame per wake-up (each costing
    /// a kick, a poll, a read of the device that finds nothing and the
    /// engine's lock twice). Bounded: the rest goes on the next run, which
    /// `plan` makes at once.
    fn drain_egress(&mut self, t: Instant) {
        for _ in 0..EGRESS_BATCH {
            if self.iface.poll_egress(t, &mut self.dev, &mut self.set) == PollResult::None {
                break;
            }
        }
    }

    /// How long until the engine must run again (None: only on input),
    /// remembered as the runner's plan: it sleeps that long.
    pub(crate) fn plan(&mut self) -> Option<Duration> {
        let t = now();
        // After a panic: at once, to hand the resets up.
        let d = self
            .shielded(|st| st.iface.poll_delay(t, &st.set))
            .unwrap_or(Some(Duration::ZERO));
        let d = match (d, self.dev_due()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.planned = Some(d.map(|d| t + d));
        d
    }

    /// When the device's next held frame comes due (an impaired link's).
    fn dev_due(&self) -> Option<Duration> {
        self.dev
            .next_due()
            .map(|ns| Duration::from_micros(ns.div_ceil(1000)))
    }

    /// After a write: whether the engine must run sooner than the runner
    /// planned (a timer the write armed, a retransmission's), so that a
    /// bulk sender does not wake the runner at every send.
    pub(crate) fn needs_run(&mut self) -> bool {
        let t = now();
        let Some(at) = self.shielded(|st| st.iface.poll_at(t, &st.set)) else {
            return true;
        };
        let next = match (at, self.dev_due()) {
            (Some(a), Some(d)) => a.min(t + d),
            (a, d) => match a.or(d.map(|d| t + d)) {
                Some(n) => n,
                None => return false,
            },
        };
        match self.planned {
            Some(Some(at)) => next < at,
            // Sleeping until input, or never planned.
            _ => true,
        }
    }

    /// The upcalls the sockets' new states call for.
    pub(crate) fn gather(&mut self) -> Vec<Ev> {
        let mut evs = Vec::new();
        let mut gone = Vec::new();
        let mut born = Vec::new();
        let ids: Vec<u64> = self.socks.keys().copied().collect();
        let t_now = now();
        for id in ids {
            let Stack { socks, set, .. } = &mut *self;
            let Some(e) = socks.get_mut(&id) else {
                continue;
            };
            match &mut e.kind {
                Kind::Idle => {}
                Kind::Listen { pool, .. } => {
                    for slot in pool.iter_mut() {
                        let st = set.get::<tcp::Socket>(*slot).state();
                        match st {
                            tcp::State::Listen | tcp::State::SynReceived => {}
                            tcp::State::Closed => {
                                let lep = set.get::<tcp::Socket>(*slot).listen_endpoint();
                                let _ = set.get_mut::<tcp::Socket>(*slot).listen(lep);
                            }
                            _ => {
                                let lep = set.get::<tcp::Socket>(*slot).listen_endpoint();
                                let mut fresh = new_tcp();
                                let _ = fresh.listen(lep);
                                let conn = core::mem::replace(slot, set.add(fresh));
                                born.push((id, conn));
                            }
                        }
                    }
                }
                Kind::Udp(sh) => {
                    let s = set.get_mut::<udp::Socket>(*sh);
                    while let Ok((data, meta)) = s.recv() {
                        let src = meta.endpoint;
                        let v4 = matches!(src.addr, IpAddress::Ipv4(_));
                        if (!v4 && e.info.domain == AF_INET)
                            || (v4 && e.v6only && e.info.domain == AF_INET6)
                        {
                            continue;
                        }
                        let from = ep_of(src.addr, src.port, e.info.domain);
                        if e.peer
                            .is_some_and(|p| p.ip != from.ip || p.port != from.port)
                        {
                            continue;
                        }
                        if e.handle == 0 {
                            continue;
                        }
                        let id = e.u.next_id;
                        e.u.next_id += 1;
                        evs.push(Ev::Dgram {
                            h: SockHandle(e.handle),
                            id,
                            src: from.to_sockaddr(e.info.domain),
                            data: data.to_vec(),
                        });
                    }
                    if e.u.want_writable && s.can_send() {
                        e.u.want_writable = false;
                        evs.push(Ev::Writable {
                            h: SockHandle(e.handle),
                        });
                    }
                }
                Kind::Tcp(sh) => {
                    let s = set.get_mut::<tcp::Socket>(*sh);
                    let st = s.state();
                    let t = &mut e.t;
                    let h = SockHandle(e.handle);
                    if e.orphan {
                        // Nobody reads any more: data that comes after
                        // close() is answered with a reset, as Linux's
                        // (TCPAbortOnData), so the writer learns it
                        // (ECONNRESET, then EPIPE); what came is dropped.
                        if s.recv_queue() > 0 && !t.rst_sent {
                            s.abort();
                            t.rst_sent = true;
                        }
                        while s.can_recv() && s.recv(|b| (b.len(), ())).is_ok() {}
                        flush(s, t);
                        if matches!(st, tcp::State::Closed | tcp::State::TimeWait) {
                            gone.push(id);
                        }
                        continue;
                    }
                    if t.connecting {
                        match st {
                            tcp::State::SynSent | tcp::State::SynReceived => continue,
                            tcp::State::Closed => {
                                t.connecting = false;
                                t.ended = true;
                                t.refused = true;
                                let waited = t.started.map_or(Duration::ZERO, |s| t_now - s);
                                let limit = e.opts.limit(true);
                                let err = if waited + limit / 10 >= limit {
                                    ETIMEDOUT
                                } else {
                                    ECONNREFUSED
                                };
                                evs.push(Ev::Refused { h, err });
                                continue;
                            }
                            _ => {
                                t.connecting = false;
                                e.opts.apply(s, false);
                                t.granted = t.tx_next + (s.send_capacity() - s.send_queue()) as u64;
                                t.progress = Some(t_now);
                                evs.push(Ev::Connected {
                                    h,
                                    credit: t.granted,
                                });
                            }
                        }
                    }
                    if t.ended || e.handle == 0 {
                        continue;
                    }
                    flush(s, t);
                    if peer_finished(st) {
                        t.peer_fin = true;
                    }
                    while t.held.front().is_some_and(|(off, _, _)| *off < t.win_end) {
                        if let Some((off, fin, data)) = t.held.pop_front() {
                            evs.push(Ev::Data { h, off, fin, data });
                        }
                    }
                    while t.held.is_empty() && t.rx_off < t.win_end && s.can_recv() {
                        let room = (t.win_end - t.rx_off).min(DELIVER_MAX as u64) as usize;
                        let Ok(data) = s.recv(|b| {
                            let n = b.len().min(room);
                            (n, b[..n].to_vec())
                        }) else {
                            break;
                        };
                        if data.is_empty() {
                            break;
                        }
                        let off = t.rx_off;
                        t.rx_off += data.len() as u64;
                        t.progress = Some(t_now);
                        evs.push(Ev::Data {
                            h,
                            off,
                            fin: false,
                            data,
                        });
                    }
                    if t.peer_fin && s.recv_queue() == 0 && !t.fin_delivered {
                        t.fin_delivered = true;
                        evs.push(Ev::Data {
                            h,
                            off: t.rx_off,
                            fin: true,
                            data: Vec::new(),
                        });
                    }
                    let queued = s.send_queue();
                    if queued < t.unacked {
                        t.progress = Some(t_now);
                    }
                    t.unacked = queued;
                    let limit = t.tx_next + (s.send_capacity() - queued) as u64;
                    if limit > t.granted && t.fin_at.is_none() {
                        t.granted = limit;
                        evs.push(Ev::Credit { h, limit });
                    }
                    // Closed after the peer's FIN: its bytes go up first.
                    let draining = t.peer_fin && (!t.fin_delivered || !t.held.is_empty());
                    if st == tcp::State::Closed && !draining {
                        t.ended = true;
                        let clean = t.fin_sent && t.fin_delivered;
                        if !clean && !t.rst_sent {
                            let idle = t.progress.map_or(Duration::ZERO, |p| t_now - p);
                            let limit = e.opts.limit(false);
                            let err = if idle + limit / 10 >= limit {
                                ETIMEDOUT
                            } else if t.fin_delivered {
                                EPIPE
                            } else {
                                ECONNRESET
                            };
                            evs.push(Ev::Reset { h, err });
                        }
                    }
                }
            }
        }
        for (lid, sh) in born {
            self.adopt(lid, sh);
        }
        // Connections for the accept queues, those just set up included
        // (offered in this round: nothing else may come to run the engine
        // again before the program answers, a server that speaks first).
        for (&id, e) in self.socks.iter_mut() {
            if let Kind::Listen { ready, full, .. } = &mut e.kind {
                if e.handle != 0 && !*full {
                    while let Some(c) = ready.pop_front() {
                        evs.push(Ev::Incoming {
                            listener: SockHandle(e.handle),
                            lid: id,
                            child: c,
                            credit: TCP_BUF as u64,
                        });
                    }
                }
            }
        }
        for id in gone {
            if let Some(e) = self.socks.remove(&id) {
                if let Kind::Tcp(sh) = e.kind {
                    self.set.remove(sh);
                }
                if let Some(p) = e.port {
                    self.put_port(p);
                }
            }
        }
        evs
    }

    /// A connection listener `lid`'s pool set up: an entry of its own,
    /// queued for the frontend's accept queue (or reset when the
    /// listener's family cannot take its peer).
    fn adopt(&mut self, lid: u64, sh: SocketHandle) {
        let Some(l) = self.socks.get(&lid) else {
            self.set.remove(sh);
            return;
        };
        let (info, v6only, lport, lopts, luser) = (l.info, l.v6only, l.port, l.opts, l.user_port);
        let s = self.set.get_mut::<tcp::Socket>(sh);
        lopts.apply(s, false);
        let (Some(local), Some(remote)) = (s.local_endpoint(), s.remote_endpoint()) else {
            self.set.remove(sh);
            return;
        };
        let v4 = matches!(remote.addr, IpAddress::Ipv4(_));
        let refused = (!v4 && info.domain == AF_INET) || (v4 && v6only && info.domain == AF_INET6);
        let id = self.add(SockHandle(0), info);
        if let Some(p) = lport {
            // The connection shares the listener's port.
            if let Some((n, _)) = self.ports.get_mut(&p) {
                *n += 1;
            }
        }
        let t_now = now();
        let cap = self.set.get::<tcp::Socket>(sh).send_capacity() as u64;
        let Some(e) = self.socks.get_mut(&id) else {
            return;
        };
        e.kind = Kind::Tcp(sh);
        e.port = lport;
        e.user_port = luser;
        e.v6only = v6only;
        e.opts = lopts;
        e.local = Some(ep_of(local.addr, local.port, info.domain));
        e.peer = Some(ep_of(remote.addr, remote.port, info.domain));
        e.t.granted = cap;
        e.t.progress = Some(t_now);
        if refused {
            self.set.get_mut::<tcp::Socket>(sh).abort();
            e.orphan = true;
            return;
        }
        if let Some(Kind::Listen { ready, .. }) = self.socks.get_mut(&lid).map(|l| &mut l.kind) {
            ready.push_back(id);
        }
    }

    /// Stream pieces the frontend turned away (`ENOBUFS`: its window
    /// shrank): kept, in order, to go up again when the window allows.
    pub(crate) fn refused_data(&mut self, back: Vec<(SockHandle, u64, bool, Vec<u8>)>) {
        for (h, off, fin, data) in back {
            if let Some(e) = self.socks.values_mut().find(|e| e.handle == h.0) {
                let at = e.t.held.partition_point(|(o, _, _)| *o < off);
                e.t.held.insert(at, (off, fin, data));
                e.t.win_end = e.t.win_end.min(off);
            }
        }
    }

    /// After `upcall::incoming`: the child is the frontend's socket `h`
    /// with window end `win` now (`None`: the queue was full, offer it
    /// again after `accepted`; `Some(0)` handle: refused, reset it).
    pub(crate) fn incoming_done(
        &mut self,
        lid: u64,
        child: u64,
        r: Result<(SockHandle, u64), Errno>,
    ) {
        match r {
            Ok((h, win)) => {
                if let Some(e) = self.socks.get_mut(&child) {
                    e.handle = h.0;
                    e.t.win_end = win;
                }
            }
            Err(EAGAIN) => match self.socks.get_mut(&lid).map(|l| &mut l.kind) {
                Some(Kind::Listen { ready, full, .. }) => {
                    ready.push_front(child);
                    *full = true;
                }
                _ => self.abort_child(child),
            },
            Err(_) => self.abort_child(child),
        }
    }

    fn abort_child(&mut self, child: u64) {
        if let Some(e) = self.socks.get_mut(&child) {
            if let Kind::Tcp(sh) = e.kind {
                self.set.get_mut::<tcp::Socket>(sh).abort();
            }
            e.orphan = true;
            e.handle = 0;
        }
    }
}

/// Moves the in-order stashed bytes into smoltcp's send buffer, and the
/// FIN after the last of them.
fn flush(s: &mut tcp::Socket<'static>, t: &mut TcpState) {
    while let Some((&at, _)) = t.stash.first_key_value() {
        if at > t.tx_next {
            break;
        }
        let Some(buf) = t.stash.remove(&at) else {
            break;
        };
        let skip = (t.tx_next - at) as usize;
        if skip >= buf.len() {
            continue;
        }
        let n = s.send_slice(&buf[skip..]).unwrap_or(0);
        t.tx_next += n as u64;
        if skip + n < buf.len() {
            t.stash.insert(t.tx_next, buf[skip + n..].to_vec());
            break;
        }
    }
    if !t.fin_sent && t.fin_at == Some(t.tx_next) && t.stash.is_empty() {
        s.close();
        t.fin_sent = true;
    }
}

#[cfg(test)]
mod tests {
    //! Two engines joined by an in-memory wire, driven by hand: the mapping
    //! of the frontend's calls onto smoltcp, without a device or root.
    use super::*;
    use crate::sync::Mutex;
    use alloc::boxed::Box;
    use alloc::sync::Arc;

    type Queue = Arc<Mutex<VecDeque<Vec<u8>>>>;

    struct Wire {
        rx: Queue,
        tx: Queue,
        /// While set, a send panics (smoltcp's panic, injected).
        bomb: Arc<core::sync::atomic::AtomicBool>,
    }

    impl Frames for Wire {
        fn recv(&mut self, buf: &mut [u8]) -> Option<usize> {
            let f = self.rx.lock().pop_front()?;
            buf[..f.len()].copy_from_slice(&f);
            Some(f.len())
        }
        fn send(&mut self, frame: &[u8]) {
            if self.bomb.load(core::sync::atomic::Ordering::Relaxed) {
                panic!("injected: a panic inside smoltcp's poll");
            }
            self.tx.lock().push_back(frame.to_vec());
        }
        fn mtu(&self) -> usize {
            1500
        }
    }

    fn pair() -> (Stack, Stack) {
        let (a, b, _) = pair_with_bomb();
        (a, b)
    }

    /// `pair`, and the switch that makes b's sends panic.
    fn pair_with_bomb() -> (Stack, Stack, Arc<core::sync::atomic::AtomicBool>) {
        let q = || -> Queue { Arc::new(Mutex::new(VecDeque::new())) };
        let (ab, ba) = (q(), q());
        let cfg = |ip: &str| super::super::config::parse("tap:t", Some(ip), None, None).unwrap();
        let bomb = Arc::new(core::sync::atomic::AtomicBool::new(false));
        let a = Stack::new(
            &cfg("10.9.0.1/24"),
            Box::new(Wire {
                rx: ba.clone(),
                tx: ab.clone(),
                bomb: Arc::default(),
            }),
            1,
        );
        let b = Stack::new(
            &cfg("10.9.0.2/24"),
            Box::new(Wire {
                rx: ab,
                tx: ba,
                bomb: bomb.clone(),
            }),
            2,
        );
        (a, b, bomb)
    }

    fn sa(ip: [u8; 4], port: u16) -> SockAddr {
        IpEp {
            family: AF_INET,
            ip: Ipv4Addr::from(ip).to_ipv6_mapped().octets(),
            port,
        }
        .to_sockaddr(AF_INET)
    }

    const TCP: SockInfo = SockInfo {
        domain: AF_INET,
        ty: SOCK_STREAM,
        protocol: 0,
    };
    const UDP: SockInfo = SockInfo {
        domain: AF_INET,
        ty: SOCK_DGRAM,
        protocol: 0,
    };

    /// Runs both engines until `done` says so (or a bound of rounds).
    fn run(a: &mut Stack, b: &mut Stack, mut each: impl FnMut(&mut Stack, Vec<Ev>, bool) -> bool) {
        for _ in 0..20_000 {
            a.poll();
            let ea = a.gather();
            b.poll();
            let eb = b.gather();
            let da = each(a, ea, true);
            let db = each(b, eb, false);
            if da && db {
                return;
            }
        }
        panic!("the exchange did not finish");
    }

    #[test]
    fn a_stream_goes_through_in_order_with_its_fin_and_credit() {
        let (mut a, mut b) = pair();
        let opts = SockOpts::default();
        let l = a.add(SockHandle(1), TCP);
        a.bind(l, &sa([10, 9, 0, 1], 80), opts).unwrap();
        a.listen(l, opts, 8).unwrap();
        let c = b.add(SockHandle(2), TCP);
        b.connect(c, &sa([10, 9, 0, 1], 80), opts, 1 << 20).unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 1000) as u8).collect();
        let (mut sent, mut credit, mut got) = (0usize, 0u64, Vec::new());
        let (mut fin, mut connected, mut child) = (false, false, None);
        run(&mut a, &mut b, |st, evs, is_a| {
            for ev in evs {
                match ev {
                    Ev::Incoming { lid, child: ch, .. } => {
                        st.incoming_done(lid, ch, Ok((SockHandle(3), 1 << 20)));
                        child = Some(ch);
                    }
                    Ev::Connected { credit: cr, .. } => {
                        connected = true;
                        credit = cr;
                    }
                    Ev::Credit { limit, .. } => credit = credit.max(limit),
                    Ev::Data {
                        off,
                        fin: f,
                        data: d,
                        ..
                    } => {
                        assert_eq!(off as usize, got.len(), "in order, no gap");
                        got.extend_from_slice(&d);
                        fin |= f;
                    }
                    Ev::Refused { err, .. } | Ev::Reset { err, .. } => panic!("errno {err}"),
                    _ => {}
                }
            }
            if !is_a && connected && sent < data.len() {
                // Within the credit, in two writes out of order.
                let end = (credit as usize).min(data.len());
                if end > sent {
                    let mid = sent + (end - sent) / 2;
                    st.write_stream(c, mid as u64, &data[mid..end], end == data.len(), false)
                        .unwrap();
                    st.write_stream(c, sent as u64, &data[sent..mid], false, false)
                        .unwrap();
                    sent = end;
                }
            }
            if is_a {
                fin
            } else {
                sent == data.len()
            }
        });
        assert!(child.is_some());
        assert_eq!(got, data);
        assert_eq!(b.peer_addr(c), Some(sa([10, 9, 0, 1], 80)), "getpeername");
        assert!(b
            .local_addr(c)
            .is_some_and(|l| l.as_bytes()[4..8] == [10, 9, 0, 2]));
    }

    #[test]
    fn a_connect_to_a_closed_port_is_refused_and_datagrams_carry_their_source() {
        let (mut a, mut b) = pair();
        let opts = SockOpts::default();
        let c = b.add(SockHandle(2), TCP);
        b.connect(c, &sa([10, 9, 0, 1], 81), opts, 1 << 20).unwrap();
        let mut refused = None;
        run(&mut a, &mut b, |_, evs, _| {
            for ev in evs {
                if let Ev::Refused { err, .. } = ev {
                    refused = Some(err);
                }
            }
            refused.is_some()
        });
        assert_eq!(refused, Some(ECONNREFUSED));

        let u = a.add(SockHandle(5), UDP);
        a.bind(u, &sa([0, 0, 0, 0], 53), opts).unwrap();
        let v = b.add(SockHandle(6), UDP);
        let hd = crate::backend::wire::Fragment::dgram(0, 0, 5, &[], b"hello").header;
        b.write_dgram(v, &hd, Some(&sa([10, 9, 0, 1], 53)), b"hello", opts)
            .unwrap();
        let from = b.local_addr(v).unwrap();
        let mut got = None;
        run(&mut a, &mut b, |_, evs, _| {
            for ev in evs {
                if let Ev::Dgram { src, data, .. } = ev {
                    got = Some((src, data));
                }
            }
            got.is_some()
        });
        let (src, data) = got.unwrap();
        assert_eq!(data, b"hello");
        assert_eq!(src.as_bytes()[4..8], [10, 9, 0, 2]);
        assert_eq!(src.inet_port(), from.inet_port());
    }

    /// Connects b to a's listener on port 80 (made first when `listen`);
    /// the connection's id on b.
    fn connected(a: &mut Stack, b: &mut Stack, listen: bool) -> u64 {
        let opts = SockOpts::default();
        if listen {
            let l = a.add(SockHandle(1), TCP);
            a.bind(l, &sa([10, 9, 0, 1], 80), opts).unwrap();
            a.listen(l, opts, 8).unwrap();
        }
        let c = b.add(SockHandle(2), TCP);
        b.connect(c, &sa([10, 9, 0, 1], 80), opts, 1 << 20).unwrap();
        let (mut up, mut accepted) = (false, false);
        run(a, b, |st, evs, is_a| {
            for ev in evs {
                match ev {
                    Ev::Incoming { lid, child, .. } => {
                        st.incoming_done(lid, child, Ok((SockHandle(3), 1 << 20)));
                        accepted = true;
                    }
                    Ev::Connected { .. } => up = true,
                    _ => {}
                }
            }
            if is_a {
                accepted
            } else {
                up
            }
        });
        c
    }

    /// Hosted only: without std there is no unwinding to catch.
    #[cfg(feature = "std")]
    #[test]
    fn a_panic_inside_smoltcp_resets_the_connections_and_the_engine_goes_on() {
        let (mut a, mut b, bomb) = pair_with_bomb();
        let c = connected(&mut a, &mut b, true);
        bomb.store(true, core::sync::atomic::Ordering::Relaxed);
        b.write_stream(c, 0, b"boom", false, false).unwrap();
        b.egress();
        b.poll();
        bomb.store(false, core::sync::atomic::Ordering::Relaxed);
        assert!(b.needs_run() || b.plan().is_some());
        let reset = b.gather().into_iter().any(|ev| {
            matches!(
                ev,
                Ev::Reset {
                    err: ECONNRESET,
                    ..
                }
            )
        });
        assert!(reset, "the connection the panic left is reset");
        // The engine still runs: a new connection to the same listener.
        connected(&mut a, &mut b, false);
    }
}

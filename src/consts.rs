//! Linux's numeric values for the socket API, defined here so that the core
//! does not need `libc` (the no_std build has none). The hosted API layer
//! checks them against `libc` in a test.

#![allow(missing_docs)]

/// An errno value (positive, as Linux numbers them).
pub type Errno = i32;

// Address families.
pub const AF_UNSPEC: i32 = 0;
pub const AF_UNIX: i32 = 1;
pub const AF_INET: i32 = 2;
pub const AF_INET6: i32 = 10;

// Socket types and the flags or-ed into `type` at socket().
pub const SOCK_STREAM: i32 = 1;
pub const SOCK_DGRAM: i32 = 2;
pub const SOCK_SEQPACKET: i32 = 5;
pub const SOCK_NONBLOCK: i32 = 0o4000;
pub const SOCK_CLOEXEC: i32 = 0o2000000;

// Protocols.
pub const IPPROTO_IP: i32 = 0;
pub const IPPROTO_TCP: i32 = 6;
pub const IPPROTO_UDP: i32 = 17;
pub const IPPROTO_IPV6: i32 = 41;

// errno values.
pub const EPERM: i32 = 1;
pub const ENOENT: i32 = 2;
pub const EINTR: i32 = 4;
pub const EIO: i32 = 5;
pub const EBADF: i32 = 9;
pub const EAGAIN: i32 = 11;
pub const ENOMEM: i32 = 12;
pub const EACCES: i32 = 13;
pub const EFAULT: i32 = 14;
pub const EBUSY: i32 = 16;
pub const ENODEV: i32 = 19;
pub const EEXIST: i32 = 17;
pub const ENOTDIR: i32 = 20;
pub const EINVAL: i32 = 22;
pub const EMFILE: i32 = 24;
pub const ENOSPC: i32 = 28;
pub const EDOM: i32 = 33;
pub const EPIPE: i32 = 32;
pub const ENAMETOOLONG: i32 = 36;
pub const ENOSYS: i32 = 38;
pub const ENOTSOCK: i32 = 88;
pub const EDESTADDRREQ: i32 = 89;
pub const EMSGSIZE: i32 = 90;
pub const EPROTOTYPE: i32 = 91;
pub const ENOPROTOOPT: i32 = 92;
pub const EPROTONOSUPPORT: i32 = 93;
pub const EPROTO: i32 = 71;
pub const ESOCKTNOSUPPORT: i32 = 94;
pub const EOPNOTSUPP: i32 = 95;
pub const EAFNOSUPPORT: i32 = 97;
pub const EADDRINUSE: i32 = 98;
pub const EADDRNOTAVAIL: i32 = 99;
pub const ENETUNREACH: i32 = 101;
pub const ECONNABORTED: i32 = 103;
pub const ECONNRESET: i32 = 104;
pub const ENOBUFS: i32 = 105;
pub const EISCONN: i32 = 106;
pub const ENOTCONN: i32 = 107;
pub const ETIMEDOUT: i32 = 110;
pub const ECONNREFUSED: i32 = 111;
pub const EALREADY: i32 = 114;
pub const EINPROGRESS: i32 = 115;

// send/recv flags.
pub const MSG_OOB: i32 = 0x1;
pub const MSG_PEEK: i32 = 0x2;
pub const MSG_DONTROUTE: i32 = 0x4;
pub const MSG_CTRUNC: i32 = 0x8;
pub const MSG_TRUNC: i32 = 0x20;
pub const MSG_DONTWAIT: i32 = 0x40;
pub const MSG_EOR: i32 = 0x80;
pub const MSG_WAITALL: i32 = 0x100;
pub const MSG_NOSIGNAL: i32 = 0x4000;
pub const MSG_MORE: i32 = 0x8000;
pub const MSG_ERRQUEUE: i32 = 0x2000;
pub const SIGIO: i32 = 29;
pub const SIGURG: i32 = 23;
pub const MSG_CMSG_CLOEXEC: i32 = 0x40000000;

// shutdown().
pub const SHUT_RD: i32 = 0;
pub const SHUT_WR: i32 = 1;
pub const SHUT_RDWR: i32 = 2;

// poll() events.
pub const POLLIN: i16 = 0x1;
pub const POLLPRI: i16 = 0x2;
pub const POLLOUT: i16 = 0x4;
pub const POLLERR: i16 = 0x8;
pub const POLLHUP: i16 = 0x10;
pub const POLLNVAL: i16 = 0x20;
pub const POLLRDNORM: i16 = 0x40;
pub const POLLWRNORM: i16 = 0x100;
pub const POLLWRBAND: i16 = 0x200;
pub const POLLRDHUP: i16 = 0x2000;

// Socket options.
pub const SOL_SOCKET: i32 = 1;
pub const SO_REUSEADDR: i32 = 2;
pub const SO_TYPE: i32 = 3;
pub const SO_ERROR: i32 = 4;
pub const SO_DONTROUTE: i32 = 5;
pub const SO_BROADCAST: i32 = 6;
pub const SO_SNDBUF: i32 = 7;
pub const SO_RCVBUF: i32 = 8;
pub const SO_KEEPALIVE: i32 = 9;
pub const SO_OOBINLINE: i32 = 10;
pub const SO_LINGER: i32 = 13;
pub const SO_REUSEPORT: i32 = 15;
pub const SO_RCVLOWAT: i32 = 18;
pub const SO_SNDLOWAT: i32 = 19;
pub const SO_RCVTIMEO: i32 = 20;
pub const SO_SNDTIMEO: i32 = 21;
pub const SO_ACCEPTCONN: i32 = 30;
pub const SO_PROTOCOL: i32 = 38;
pub const SO_DOMAIN: i32 = 39;
pub const SO_PEEK_OFF: i32 = 42;
pub const SO_SNDBUFFORCE: i32 = 32;
pub const SO_RCVBUFFORCE: i32 = 33;
pub const SO_TIMESTAMP: i32 = 29;
pub const SO_TIMESTAMPNS: i32 = 35;
pub const SO_TIMESTAMPING: i32 = 37;
pub const SCM_TIMESTAMP: i32 = SO_TIMESTAMP;
pub const SCM_TIMESTAMPNS: i32 = SO_TIMESTAMPNS;
pub const SCM_TIMESTAMPING: i32 = SO_TIMESTAMPING;
/// SO_TIMESTAMPING flags (<linux/net_tstamp.h>) the receive path reads.
pub const SOF_TIMESTAMPING_RX_SOFTWARE: u32 = 1 << 3;
pub const SOF_TIMESTAMPING_SOFTWARE: u32 = 1 << 4;
pub const SOF_TIMESTAMPING_OPT_RX_FILTER: u32 = 1 << 17;
pub const TCP_NODELAY: i32 = 1;
pub const TCP_MAXSEG: i32 = 2;
pub const TCP_CORK: i32 = 3;
pub const TCP_KEEPIDLE: i32 = 4;
pub const TCP_KEEPINTVL: i32 = 5;
pub const TCP_KEEPCNT: i32 = 6;
pub const TCP_INFO: i32 = 11;
pub const TCP_INQ: i32 = 36;
pub const TCP_DEFER_ACCEPT: i32 = 9;
pub const TCP_WINDOW_CLAMP: i32 = 10;
pub const TCP_REPAIR: i32 = 19;
pub const TCP_FASTOPEN: i32 = 23;
pub const TCP_FASTOPEN_CONNECT: i32 = 30;
pub const TCP_FASTOPEN_NO_COOKIE: i32 = 34;
pub const MSG_FASTOPEN: i32 = 0x2000_0000;
/// TCP_INQ's control message type (TCP_CM_INQ = TCP_INQ).
pub const TCP_CM_INQ: i32 = 36;
/// The TCP option and control message level (IPPROTO_TCP).
pub const SOL_TCP: i32 = 6;
pub const IPV6_V6ONLY: i32 = 26;
pub const IP_RECVERR: i32 = 11;
pub const IPV6_RECVERR: i32 = 25;
pub const ENOMSG: i32 = 42;
pub const UDP_CORK: i32 = 1;
pub const UDP_SEGMENT: i32 = 103;
pub const IP_MTU_DISCOVER: i32 = 10;
pub const IP_MTU: i32 = 14;
/// Linux 6.3: the range a socket's ephemeral ports come from (lo | hi << 16).
pub const IP_LOCAL_PORT_RANGE: i32 = 51;
pub const IPV6_MTU_DISCOVER: i32 = 23;
pub const IPV6_MTU: i32 = 24;
pub const IPV6_DONTFRAG: i32 = 62;
/// IP_PMTUDISC_DO and IP_PMTUDISC_PROBE (and the IPV6_ ones, the same
/// numbers): never fragment.
pub const IP_PMTUDISC_DO: i32 = 2;
pub const IP_PMTUDISC_PROBE: i32 = 3;
pub const SO_PEERNAME: i32 = 28;
pub const SO_INCOMING_CPU: i32 = 49;
pub const SO_MEMINFO: i32 = 55;
pub const SO_COOKIE: i32 = 57;

// fcntl / open flags.
pub const O_NONBLOCK: i32 = 0o4000;
pub const O_RDWR: i32 = 2;

// Socket ioctls (<linux/sockios.h>; the 64-bit time_t forms of the stamps).
pub const FIOSETOWN: core::ffi::c_ulong = 0x8901;
pub const SIOCSPGRP: core::ffi::c_ulong = 0x8902;
pub const FIOGETOWN: core::ffi::c_ulong = 0x8903;
pub const SIOCGPGRP: core::ffi::c_ulong = 0x8904;
pub const SIOCATMARK: core::ffi::c_ulong = 0x8905;
pub const SIOCGSTAMP: core::ffi::c_ulong = 0x8906;
pub const SIOCGSTAMPNS: core::ffi::c_ulong = 0x8907;
pub const SIOCOUTQNSD: core::ffi::c_ulong = 0x894B;

#[cfg(test)]
mod tests {
    /// Every constant here is Linux's, as the libc crate has it.
    #[test]
    fn each_constant_is_libcs() {
        macro_rules! same {
            ($($n:ident),* $(,)?) => {$(
                assert_eq!(super::$n as i64, libc::$n as i64, stringify!($n));
            )*};
        }
        same!(
            AF_UNSPEC,
            AF_UNIX,
            AF_INET,
            AF_INET6,
            SOCK_STREAM,
            SOCK_DGRAM,
            SOCK_SEQPACKET,
            SOCK_NONBLOCK,
            SOCK_CLOEXEC,
            IPPROTO_IP,
            IPPROTO_TCP,
            IPPROTO_UDP,
            IPPROTO_IPV6,
            EPERM,
            ENOENT,
            EINTR,
            EIO,
            EBADF,
            EAGAIN,
            ENOMEM,
            EACCES,
            EFAULT,
            EBUSY,
            ENODEV,
            EEXIST,
            ENOTDIR,
            EINVAL,
            EMFILE,
            ENOSPC,
            EDOM,
            EPIPE,
            ENAMETOOLONG,
            ENOSYS,
            ENOTSOCK,
            EDESTADDRREQ,
            EMSGSIZE,
            EPROTOTYPE,
            ENOPROTOOPT,
            EPROTONOSUPPORT,
            ESOCKTNOSUPPORT,
            EOPNOTSUPP,
            EAFNOSUPPORT,
            EADDRINUSE,
            EADDRNOTAVAIL,
            ENETUNREACH,
            ECONNABORTED,
            ECONNRESET,
            ENOBUFS,
            EISCONN,
            ENOTCONN,
            ETIMEDOUT,
            ECONNREFUSED,
            EALREADY,
            EINPROGRESS,
            MSG_OOB,
            MSG_PEEK,
            MSG_DONTROUTE,
            MSG_CTRUNC,
            MSG_TRUNC,
            MSG_DONTWAIT,
            MSG_EOR,
            MSG_WAITALL,
            MSG_NOSIGNAL,
            MSG_MORE,
            MSG_ERRQUEUE,
            SIGIO,
            SIGURG,
            MSG_CMSG_CLOEXEC,
            SHUT_RD,
            SHUT_WR,
            SHUT_RDWR,
            POLLIN,
            POLLPRI,
            POLLOUT,
            POLLERR,
            POLLHUP,
            POLLNVAL,
            POLLRDNORM,
            POLLWRNORM,
            POLLWRBAND,
            POLLRDHUP,
            SOL_SOCKET,
            SO_REUSEADDR,
            SO_TYPE,
            SO_ERROR,
            SO_DONTROUTE,
            SO_BROADCAST,
            SO_SNDBUF,
            SO_RCVBUF,
            SO_KEEPALIVE,
            SO_OOBINLINE,
            SO_LINGER,
            SO_REUSEPORT,
            SO_RCVLOWAT,
            SO_SNDLOWAT,
            SO_RCVTIMEO,
            SO_SNDTIMEO,
            SO_ACCEPTCONN,
            SO_PROTOCOL,
            SO_DOMAIN,
            SO_PEEK_OFF,
            SO_SNDBUFFORCE,
            SO_RCVBUFFORCE,
            SO_TIMESTAMP,
            SO_TIMESTAMPNS,
            SO_TIMESTAMPING,
            TCP_NODELAY,
            TCP_MAXSEG,
            TCP_CORK,
            TCP_KEEPIDLE,
            TCP_KEEPINTVL,
            TCP_KEEPCNT,
            TCP_INFO,
            TCP_DEFER_ACCEPT,
            TCP_WINDOW_CLAMP,
            TCP_REPAIR,
            TCP_FASTOPEN,
            TCP_FASTOPEN_CONNECT,
            TCP_FASTOPEN_NO_COOKIE,
            MSG_FASTOPEN,
            IPV6_V6ONLY,
            IP_RECVERR,
            IPV6_RECVERR,
            ENOMSG,
            UDP_CORK,
            UDP_SEGMENT,
            IP_MTU_DISCOVER,
            IP_MTU,
            IPV6_MTU_DISCOVER,
            IPV6_MTU,
            IPV6_DONTFRAG,
            IP_PMTUDISC_DO,
            IP_PMTUDISC_PROBE,
            SO_PEERNAME,
            SO_INCOMING_CPU,
            SO_MEMINFO,
            SO_COOKIE,
            O_NONBLOCK,
            O_RDWR,
        );
    }
}

//! Peers that misbehave or die, through the cross-process backend
//! (USOCK_NET). The issue says: "A process that dies mid-connection gives
//! its peers end-of-stream or ECONNRESET, never a hang. Entries left by dead
//! processes are ignored and cleaned. A malformed fragment from a peer is
//! rejected and that connection reset, nothing else."
//!
//! - Malformed input comes from raw kernel AF_UNIX sockets connected to the
//!   port files, writing xproc's messages (its envelope, built here by hand,
//!   around fragments built with `backend::wire`) and then breaking them by
//!   hand, in both roles: a raw client of a library listener, and a raw
//!   server that a library client connects to.
//! - Dying peers are `python3` processes under `bin/usockrun` (the library
//!   preloaded, same network directory), killed with SIGKILL. Without
//!   python3 these parts skip (`common::skip("python3", ..)`), which fails
//!   unless `ALLOW_SKIP` names python3 (tests/README.md); they need
//!   `target/release/libuserspacesock.so` (`cargo build --release`, which
//!   `cargo test --release` also produces).
//! - Stale entries are port files bound by raw kernel sockets that were
//!   then closed without unlinking (and the listener file of a killed
//!   python3 server).
//!
//! Every test of this file shares one network directory (the registry reads
//! USOCK_NET once, at the first socket call of the process). Fixed ports lie
//! below 32768, out of the range port 0 picks from, so a concurrent bind to
//! port 0 never meets them.
#![cfg(feature = "std")]

use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use userspacesock::backend::wire::{self, FragHeader, FragKind, Fragment};
use userspacesock::net::{to_sockaddr, UsockDatagram, UsockListener, UsockStream};

mod common;

/// How long anything may take before the test calls it a hang.
const T: Duration = Duration::from_secs(10);

/// xproc's messages (`src/backends/xproc/envelope.rs`): an 8-byte envelope
/// (type, version, two reserved zero bytes, body length, big-endian), then
/// the body. DATA's body is one unsummed wire fragment; HELLO's the client's
/// window end (u64), advertised MSS (u32) and address; ACCEPT's the window
/// end (u64), the listener's MSS (u32) and the server's address; WINDOW's
/// the window end.
const T_DATA: u8 = 1;
const T_HELLO: u8 = 2;
const T_ACCEPT: u8 = 3;
const T_WINDOW: u8 = 4;
const XPROC_VERSION: u8 = 4;
const ENV_LEN: usize = 8;

// ------------------------------------------------------------ environment

/// The network directory of this process, set in USOCK_NET before any
/// socket call (every test calls this first).
fn net() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let tmp = std::env::temp_dir();
        // Directories of earlier runs whose process is gone.
        if let Ok(rd) = std::fs::read_dir(&tmp) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(pid) = name.strip_prefix("usock-xproc-peer-") {
                    if !Path::new("/proc").join(pid).exists() {
                        let _ = std::fs::remove_dir_all(e.path());
                    }
                }
            }
        }
        let dir = tmp.join(format!("usock-xproc-peer-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
        std::env::set_var("USOCK_NET", &dir);
        // TCP through xproc's own streams (its frames and port files are
        // what is tested), not the shm backend that carries it by default.
        std::env::set_var("USOCK_SHM", "0");
        dir
    })
}

fn ip(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Byte `i` of every test stream (a period of 251, prime, so a misplaced
/// chunk of any power-of-two size shows).
fn pat(i: usize) -> u8 {
    (i % 251) as u8
}

fn check_pattern(got: &[u8], what: &str) {
    if let Some(i) = (0..got.len()).find(|&i| got[i] != pat(i)) {
        panic!("{what}: byte {i} is {}, want {}", got[i], pat(i));
    }
}

// ----------------------------------------------------------- library side

fn listener() -> (UsockListener, SocketAddr) {
    net();
    let l = UsockListener::bind(ip(0)).unwrap();
    let a = l.local_addr().unwrap();
    (l, a)
}

/// accept() that gives up after `d` (WouldBlock).
fn accept_within(l: &UsockListener, d: Duration) -> io::Result<UsockStream> {
    l.set_nonblocking(true)?;
    let end = Instant::now() + d;
    let r = loop {
        match l.accept() {
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < end => {
                thread::sleep(Duration::from_millis(2))
            }
            r => break r,
        }
    };
    l.set_nonblocking(false)?;
    let (s, _) = r?;
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(T))?;
    s.set_write_timeout(Some(T))?;
    Ok(s)
}

/// Nothing waits to be accepted on `l`.
fn assert_nothing_queued(l: &UsockListener, what: &str) {
    l.set_nonblocking(true).unwrap();
    let r = l.accept();
    l.set_nonblocking(false).unwrap();
    match r {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        Ok((s, a)) => panic!("{what}: the listener queued a connection from {a} ({s:?})"),
        Err(e) => panic!("{what}: accept gave {e}, want EAGAIN"),
    }
}

/// A library connection through `l`: (client, accepted).
fn pair(l: &UsockListener, a: SocketAddr) -> (UsockStream, UsockStream) {
    let c = UsockStream::connect(a).unwrap();
    c.set_read_timeout(Some(T)).unwrap();
    c.set_write_timeout(Some(T)).unwrap();
    let s = accept_within(l, T).expect("accept of a library client");
    assert_eq!(s.peer_addr().unwrap(), c.local_addr().unwrap());
    (c, s)
}

/// A message each way on an established connection.
fn round_trip(c: &UsockStream, s: &UsockStream, tag: &str) {
    for (from, to, dir) in [(c, s, "client to server"), (s, c, "server to client")] {
        let msg = format!("{tag}: {dir}");
        let mut from = from;
        let mut to = to;
        from.write_all(msg.as_bytes())
            .unwrap_or_else(|e| panic!("{tag}: the other connection, write {dir}: {e}"));
        let mut got = vec![0u8; msg.len()];
        to.read_exact(&mut got)
            .unwrap_or_else(|e| panic!("{tag}: the other connection, read {dir}: {e}"));
        assert_eq!(got, msg.as_bytes(), "{tag}: the other connection's bytes");
    }
}

/// Reads until an error; returns the bytes and the error.
fn read_until_error(s: &UsockStream) -> (Vec<u8>, io::Error) {
    let mut s = s;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match s.read(&mut buf) {
            Ok(0) => {
                return (
                    got,
                    io::Error::new(ErrorKind::UnexpectedEof, "end-of-stream"),
                )
            }
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return (got, e),
        }
    }
}

fn assert_reset(r: io::Result<usize>, what: &str) {
    match r {
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Err(e) if e.kind() == ErrorKind::WouldBlock => {
            panic!("{what}: no reset within {T:?} (the read timed out: a hang)")
        }
        other => panic!("{what}: read gave {other:?}, want ECONNRESET"),
    }
}

/// A write after the connection was reset fails (EPIPE or ECONNRESET).
fn assert_write_fails(s: &UsockStream, what: &str) {
    let mut s = s;
    match s.write(b"after the reset") {
        Err(e) if matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset) => {}
        Err(e) if e.kind() == ErrorKind::WouldBlock => {
            panic!("{what}: a write after the reset blocked for {T:?}")
        }
        other => panic!("{what}: a write after the reset gave {other:?}, want EPIPE/ECONNRESET"),
    }
}

/// Runs `f` on a thread; None if it has not returned within `d`.
fn within<R: Send + 'static>(d: Duration, f: impl FnOnce() -> R + Send + 'static) -> Option<R> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(d).ok()
}

// --------------------------------------------------------- kernel sockets

/// Kernel AF_UNIX sockets made with raw system calls: this test binary
/// links the library, whose `socket()` would make a user-space socket (std's
/// `UnixStream::connect` included). Once made, std's wrappers may use them:
/// the library passes calls on fds that are not its own to libc.
mod kernel {
    use std::io;
    use std::os::fd::FromRawFd;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
    use std::path::Path;

    fn sys(r: libc::c_long) -> io::Result<i32> {
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(r as i32)
        }
    }

    fn sun(path: &Path) -> (libc::sockaddr_un, u32) {
        let b = path.as_os_str().as_bytes();
        // SAFETY: all-zero is a valid sockaddr_un.
        let mut a: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        assert!(b.len() < a.sun_path.len(), "path too long for AF_UNIX");
        a.sun_family = libc::AF_UNIX as u16;
        for (d, s) in a.sun_path.iter_mut().zip(b) {
            *d = *s as libc::c_char;
        }
        (a, (2 + b.len() + 1) as u32)
    }

    /// A kernel socket of `ty`, bound to or connected to `path`.
    fn make(ty: i32, path: &Path, bind: bool) -> io::Result<i32> {
        // SAFETY: socket() with integer arguments.
        let fd = sys(unsafe {
            libc::syscall(libc::SYS_socket, libc::AF_UNIX, ty | libc::SOCK_CLOEXEC, 0)
        })?;
        assert!(
            userspacesock::api::posix::usock_is_userspace(fd) == 0,
            "a kernel socket"
        );
        let (a, len) = sun(path);
        let call = if bind {
            libc::SYS_bind
        } else {
            libc::SYS_connect
        };
        // SAFETY: bind/connect with a valid address.
        if let Err(e) = sys(unsafe { libc::syscall(call, fd, &a as *const _, len) }) {
            // SAFETY: closing the socket made above.
            unsafe { libc::syscall(libc::SYS_close, fd) };
            return Err(e);
        }
        Ok(fd)
    }

    pub fn connect(path: &Path) -> io::Result<UnixStream> {
        let fd = make(libc::SOCK_STREAM, path, false)?;
        // SAFETY: a kernel socket fd we own.
        Ok(unsafe { UnixStream::from_raw_fd(fd) })
    }

    pub fn listen(path: &Path) -> io::Result<UnixListener> {
        let fd = make(libc::SOCK_STREAM, path, true)?;
        // SAFETY: as above; the listener owns it from here (closed on drop).
        let l = unsafe { UnixListener::from_raw_fd(fd) };
        // SAFETY: listen on our own socket.
        sys(unsafe { libc::syscall(libc::SYS_listen, fd, 16) })?;
        Ok(l)
    }

    pub fn dgram(path: &Path) -> io::Result<UnixDatagram> {
        let fd = make(libc::SOCK_DGRAM, path, true)?;
        // SAFETY: a kernel socket fd we own.
        Ok(unsafe { UnixDatagram::from_raw_fd(fd) })
    }
}

// --------------------------------------------------------------- raw side

fn envelope(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![ty, XPROC_VERSION, 0, 0];
    v.extend_from_slice(&(body.len() as u32).to_be_bytes());
    v.extend_from_slice(body);
    v
}

/// A DATA message carrying a stream fragment.
fn frame(flags: u16, offset: u64, payload: &[u8]) -> Vec<u8> {
    let f = Fragment {
        header: FragHeader {
            kind: FragKind::Stream,
            flags,
            conn: 0,
            offset,
            dgram_offset: 0,
            dgram_total: 0,
            len: payload.len() as u32,
            addr_len: 0,
        },
        addr: &[],
        payload,
    };
    let mut v = wire::encode_header(&f, false).unwrap().to_vec();
    v.extend_from_slice(payload);
    envelope(T_DATA, &v)
}

fn data(offset: u64, payload: &[u8]) -> Vec<u8> {
    frame(0, offset, payload)
}

/// A control message: `value` (ACCEPT's or WINDOW's window end) first,
/// then `addr`.
fn control(ty: u8, value: Option<u64>, addr: &[u8]) -> Vec<u8> {
    let mut body = value.map(|v| v.to_be_bytes().to_vec()).unwrap_or_default();
    body.extend_from_slice(addr);
    envelope(ty, &body)
}

/// HELLO or ACCEPT (`ty`): the window end, an MSS of 0 (none set), then
/// `addr`.
fn greeting(ty: u8, window: u64, addr: &[u8]) -> Vec<u8> {
    let mut body = window.to_be_bytes().to_vec();
    body.extend_from_slice(&0u32.to_be_bytes());
    body.extend_from_slice(addr);
    envelope(ty, &body)
}

/// Overwrites the bytes at `at` of a DATA message's wire fragment (see the
/// table in `backend::wire`).
fn patch(f: Vec<u8>, at: usize, bytes: &[u8]) -> Vec<u8> {
    patch_env(f, ENV_LEN + at, bytes)
}

/// Overwrites the bytes at `at` of a message (envelope included).
fn patch_env(mut f: Vec<u8>, at: usize, bytes: &[u8]) -> Vec<u8> {
    f[at..at + bytes.len()].copy_from_slice(bytes);
    f
}

/// One message from the library: its type and body.
#[derive(Debug)]
struct Msg {
    ty: u8,
    body: Vec<u8>,
}

impl Msg {
    /// The window end of an ACCEPT or WINDOW.
    fn value(&self) -> u64 {
        u64::from_be_bytes(self.body[..8].try_into().unwrap())
    }
}

/// A raw kernel AF_UNIX stream socket speaking (or not) xproc's protocol.
struct Raw {
    s: UnixStream,
    inb: Vec<u8>,
}

impl Raw {
    fn new(s: UnixStream) -> Raw {
        s.set_read_timeout(Some(T)).unwrap();
        s.set_write_timeout(Some(T)).unwrap();
        Raw { s, inb: Vec::new() }
    }

    fn connect(port: u16) -> Raw {
        Raw::new(kernel::connect(&net().join(format!("t{port}"))).unwrap())
    }

    fn send(&mut self, b: &[u8]) {
        self.s.write_all(b).unwrap();
    }

    /// The next message from the library.
    fn msg(&mut self) -> io::Result<Msg> {
        loop {
            if self.inb.len() >= ENV_LEN {
                let e = &self.inb[..ENV_LEN];
                if e[1] != XPROC_VERSION || e[2..4] != [0, 0] {
                    let e = format!("bad envelope {e:?}");
                    return Err(io::Error::new(ErrorKind::InvalidData, e));
                }
                let len = u32::from_be_bytes(e[4..8].try_into().unwrap()) as usize;
                if self.inb.len() >= ENV_LEN + len {
                    let m = Msg {
                        ty: e[0],
                        body: self.inb[ENV_LEN..ENV_LEN + len].to_vec(),
                    };
                    self.inb.drain(..ENV_LEN + len);
                    return Ok(m);
                }
            }
            let mut b = [0u8; 64 << 10];
            let n = self.s.read(&mut b)?;
            if n == 0 {
                return Err(ErrorKind::UnexpectedEof.into());
            }
            self.inb.extend_from_slice(&b[..n]);
        }
    }

    /// HELLO as client `me`; returns the receive window the ACCEPT grants.
    fn handshake(&mut self, me: SocketAddr) -> u64 {
        self.send(&greeting(T_HELLO, 1 << 18, to_sockaddr(&me).as_bytes()));
        let m = self.msg().expect("the library's answer to HELLO");
        assert!(
            m.ty == T_ACCEPT && m.body.len() >= 8 + 4 + 16,
            "the library answered HELLO with {m:?}, want ACCEPT with a window, an MSS and an address"
        );
        m.value()
    }

    /// The library closed this connection within `d` (end-of-stream or
    /// ECONNRESET on the raw socket); what it sent before is skipped.
    fn closed_within(&mut self, d: Duration) -> Result<(), String> {
        self.s
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let end = Instant::now() + d;
        let mut b = [0u8; 64 << 10];
        loop {
            match self.s.read(&mut b) {
                Ok(0) => return Ok(()),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return Ok(()),
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    if Instant::now() >= end {
                        return Err(format!("the raw socket is still open after {d:?}"));
                    }
                }
                Err(e) => return Err(format!("the raw socket's read gave {e}")),
            }
        }
    }
}

/// A raw client connected and past the handshake, and the library socket
/// that accepted it.
fn raw_client(l: &UsockListener, a: SocketAddr, me: SocketAddr) -> (Raw, UsockStream, u64) {
    let mut r = Raw::connect(a.port());
    let win = r.handshake(me);
    assert!(win > 0, "ACCEPT granted no window");
    let s = accept_within(l, T).expect("accept of the raw client after its HELLO");
    assert_eq!(s.peer_addr().unwrap(), me, "the peer address HELLO carried");
    (r, s, win)
}

// ------------------------------------------------------ 1. malformed input

#[test]
fn garbage_from_a_raw_client_is_never_accepted_and_its_socket_is_closed() {
    let (l, a) = listener();
    let (c1, s1) = pair(&l, a);
    let mut full_header = [0xffu8; ENV_LEN + wire::HEADER_LEN];
    full_header[0] = T_DATA;
    full_header[1] = XPROC_VERSION;
    let hello = greeting(T_HELLO, 1 << 18, to_sockaddr(&ip(1)).as_bytes());
    let v1_hello = {
        // What version 1 sent: a bare wire frame, HELLO in `conn`.
        let addr = to_sockaddr(&ip(1));
        let f = Fragment {
            header: FragHeader {
                kind: FragKind::Dgram,
                flags: 0,
                conn: 1,
                offset: 0,
                dgram_offset: 0,
                dgram_total: 0,
                len: 0,
                addr_len: 0,
            },
            addr: &[],
            payload: &[],
        };
        let mut v = wire::encode_header(&f, false).unwrap().to_vec();
        v.extend_from_slice(addr.as_bytes());
        v
    };
    let cases: &[(&str, &[u8])] = &[
        ("text (bad type)", b"GET / HTTP/1.0\r\n\r\n"),
        ("one byte of bad type", b"X"),
        ("type 0", &[0]),
        ("bad version", &[T_HELLO, 9]),
        ("version 1's HELLO (a bare wire frame)", &v1_hello),
        (
            "reserved bytes not zero",
            &patch_env(hello.clone(), 2, &[0, 1]),
        ),
        (
            "HELLO longer than an address",
            &patch_env(hello.clone(), 4, &1000u32.to_be_bytes())[..ENV_LEN],
        ),
        ("DATA envelope, then a wire header of 0xff", &full_header),
    ];
    for (what, bytes) in cases {
        let mut r = Raw::connect(a.port());
        r.send(bytes);
        r.closed_within(T)
            .unwrap_or_else(|e| panic!("garbage {what}: {e}"));
        assert_nothing_queued(&l, &format!("garbage {what}"));
        round_trip(&c1, &s1, &format!("after garbage {what}"));
    }
    // A raw client that connects and leaves without a word.
    drop(Raw::connect(a.port()));
    thread::sleep(Duration::from_millis(50));
    assert_nothing_queued(&l, "a silent raw client");
    // A library client after all that.
    let (c2, s2) = pair(&l, a);
    round_trip(&c2, &s2, "a client connected after the garbage");
    round_trip(&c1, &s1, "the client connected before the garbage");
}

#[test]
fn a_malformed_frame_after_hello_resets_that_connection_only() {
    let (l, a) = listener();
    let (c1, s1) = pair(&l, a);
    let good = data(5, b"world");
    let max = (wire::MAX_PAYLOAD as u32 + 1).to_be_bytes();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "unknown flag bits",
            patch(good.clone(), 4, &0x0100u16.to_be_bytes()),
        ),
        ("bad xproc version", patch_env(good.clone(), 1, &[1])),
        ("bad magic", patch(good.clone(), 0, b"XX")),
        ("bad version", patch(good.clone(), 2, &[9])),
        ("bad kind", patch(good.clone(), 3, &[3])),
        (
            "payload longer than MAX_PAYLOAD",
            patch(good[..ENV_LEN + 40].to_vec(), 32, &max),
        ),
        (
            "address longer than MAX_ADDR",
            patch(good[..ENV_LEN + 40].to_vec(), 6, &129u16.to_be_bytes()),
        ),
        (
            "stream frame with a datagram length",
            patch(good.clone(), 28, &5u32.to_be_bytes()),
        ),
        (
            "reset carrying data",
            patch(good.clone(), 4, &wire::FLAG_RST.to_be_bytes()),
        ),
        (
            "empty stream frame without FIN or RST",
            patch(frame(wire::FLAG_FIN, 5, b""), 4, &[0, 0]),
        ),
        (
            "DATA length past its fragment",
            patch_env(
                [good.clone(), vec![0]].concat(),
                4,
                &(good.len() as u32 - ENV_LEN as u32 + 1).to_be_bytes(),
            ),
        ),
        (
            "a datagram fragment on a connection",
            patch(patch(good.clone(), 3, &[2]), 24, &[0, 0, 0, 0, 0, 0, 0, 5]),
        ),
        ("unknown message type", control(99, None, b"")),
        ("a second HELLO", greeting(T_HELLO, 0, &[0; 16])),
        ("WINDOW of 4 bytes", control(T_WINDOW, None, &[0; 4])),
        ("an ACCEPT to the server", greeting(T_ACCEPT, 1, &[])),
        (
            "text",
            b"this is not a frame, not even its first bytes".to_vec(),
        ),
    ];
    for (i, (what, bad)) in cases.iter().enumerate() {
        let me = ip(40000 + i as u16);
        let (mut r, s, _) = raw_client(&l, a, me);
        r.send(&data(0, b"hello"));
        let mut got = [0u8; 5];
        (&s).read_exact(&mut got)
            .unwrap_or_else(|e| panic!("{what}: the valid frame before: {e}"));
        assert_eq!(&got, b"hello", "{what}: the valid frame before");
        r.send(bad);
        assert_reset((&s).read(&mut got), what);
        assert_write_fails(&s, what);
        r.closed_within(T).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_nothing_queued(&l, what);
        round_trip(&c1, &s1, what);
    }
    let (c2, s2) = pair(&l, a);
    round_trip(&c2, &s2, "a client connected after the malformed frames");
}

#[test]
fn a_frame_beyond_the_receive_window_resets_that_connection_only() {
    let (l, a) = listener();
    let (c1, s1) = pair(&l, a);
    // Past the window by far, and by one byte.
    for (i, far) in [true, false].into_iter().enumerate() {
        let (mut r, s, win) = raw_client(&l, a, ip(41000 + i as u16));
        let what = if far {
            "a frame at offset 1<<40"
        } else {
            "a frame whose last byte is the first one past the window"
        };
        let off = if far { 1u64 << 40 } else { win };
        r.send(&data(off, b"x"));
        let mut b = [0u8; 16];
        assert_reset((&s).read(&mut b), what);
        r.closed_within(T).unwrap_or_else(|e| panic!("{what}: {e}"));
        round_trip(&c1, &s1, what);
    }
    // The control: a frame whose last byte is the window's last byte is
    // taken (out of order), then the bytes before it, then end-of-stream.
    let (mut r, s, win) = raw_client(&l, a, ip(41010));
    let win = usize::try_from(win).unwrap();
    assert!(
        win <= wire::MAX_PAYLOAD + 1,
        "window {win} needs more than two frames"
    );
    let all: Vec<u8> = (0..win).map(pat).collect();
    r.send(&data(win as u64 - 1, &all[win - 1..]));
    r.send(&data(0, &all[..win - 1]));
    r.send(&frame(wire::FLAG_FIN, win as u64, b""));
    let mut got = Vec::new();
    (&s).read_to_end(&mut got)
        .expect("a full window, then end-of-stream, without a reset");
    assert_eq!(got.len(), win, "bytes up to the window's end");
    check_pattern(&got, "a full window");
    round_trip(&c1, &s1, "after the full window");
}

/// A raw kernel listener on port file `t<port>`, playing a server that a
/// library client connects to.
struct RawServer {
    l: std::os::unix::net::UnixListener,
    path: PathBuf,
    port: u16,
}

impl RawServer {
    fn new(port: u16) -> RawServer {
        let path = net().join(format!("t{port}"));
        let l = kernel::listen(&path).unwrap();
        l.set_nonblocking(true).unwrap();
        RawServer { l, path, port }
    }

    /// A library client's connect(), run on a thread: its result, or None
    /// if it has not returned within T.
    fn connect(&self) -> mpsc::Receiver<Option<io::Result<UsockStream>>> {
        let port = self.port;
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let _ = tx.send(within(T, move || UsockStream::connect(ip(port))));
        });
        rx
    }

    /// The next connection, after its HELLO.
    fn accept(&self) -> Raw {
        let end = Instant::now() + T;
        loop {
            match self.l.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    let mut r = Raw::new(s);
                    let m = r.msg().expect("HELLO from the library client");
                    assert!(
                        m.ty == T_HELLO,
                        "the library client opened with {m:?}, want HELLO"
                    );
                    assert!(
                        m.body.len() >= 8 + 4 + 16,
                        "HELLO carries the client's window, MSS and address"
                    );
                    return r;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < end => {
                    thread::sleep(Duration::from_millis(2))
                }
                Err(e) => panic!("raw accept: {e}"),
            }
        }
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

// The same rules when the library is the client and the raw peer a server.

#[test]
fn garbage_instead_of_accept_fails_the_library_clients_connect() {
    let srv = RawServer::new(20101);
    let res = srv.connect();
    let mut r = srv.accept();
    r.send(b"NOT A FRAME");
    // The library drops the connection at once...
    let closed = r.closed_within(T);
    // ...and its connect() must return an error, not wait forever.
    match res.recv().unwrap() {
        None => panic!("garbage instead of ACCEPT: connect() still blocked after {T:?}"),
        Some(Ok(_)) => panic!("garbage instead of ACCEPT: connect() succeeded"),
        Some(Err(e)) => assert!(
            matches!(
                e.kind(),
                ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused
            ),
            "garbage instead of ACCEPT: connect() gave {e}, want ECONNRESET/ECONNREFUSED"
        ),
    }
    closed.unwrap_or_else(|e| panic!("garbage instead of ACCEPT: {e}"));
}

#[test]
fn a_server_gone_before_accept_refuses_the_library_clients_connect() {
    let srv = RawServer::new(20102);
    let res = srv.connect();
    drop(srv.accept());
    match res.recv().unwrap() {
        None => panic!("server gone before ACCEPT: connect() still blocked after {T:?}"),
        Some(r) => assert_eq!(
            r.map(|_| ()).map_err(|e| e.kind()),
            Err(ErrorKind::ConnectionRefused),
            "server gone before ACCEPT"
        ),
    }
}

#[test]
fn a_malformed_frame_from_the_server_resets_the_library_client() {
    let srv = RawServer::new(20103);
    let res = srv.connect();
    let mut r = srv.accept();
    r.send(&greeting(
        T_ACCEPT,
        1 << 18,
        to_sockaddr(&ip(srv.port)).as_bytes(),
    ));
    let c = match res.recv().unwrap() {
        None => panic!("a valid ACCEPT: connect() still blocked after {T:?}"),
        Some(r) => r.expect("connect() after a valid ACCEPT"),
    };
    c.set_read_timeout(Some(T)).unwrap();
    c.set_write_timeout(Some(T)).unwrap();
    (&c).write_all(b"to the raw server").unwrap();
    r.send(&data(0, b"hi"));
    let mut b = [0u8; 2];
    (&c).read_exact(&mut b).unwrap();
    assert_eq!(&b, b"hi");
    r.send(&patch(data(2, b"!!"), 4, &0x4000u16.to_be_bytes()));
    let what = "the server sent unknown flag bits";
    assert_reset((&c).read(&mut b), what);
    assert_write_fails(&c, what);
    r.closed_within(T).unwrap_or_else(|e| panic!("{what}: {e}"));
}

// Frames that are well formed but break the protocol's order. (Not
// "malformed" in `wire`'s sense; a peer that sends them is broken or
// hostile all the same.)

#[test]
fn stream_data_before_hello_closes_that_connection_only() {
    let (l, a) = listener();
    let (c1, s1) = pair(&l, a);
    let mut r = Raw::connect(a.port());
    r.send(&data(0, b"no hello first"));
    let closed = r.closed_within(Duration::from_secs(3));
    assert_nothing_queued(&l, "data before HELLO");
    round_trip(&c1, &s1, "data before HELLO");
    closed.unwrap_or_else(|e| panic!("stream data before HELLO: {e}"));
}

#[test]
fn a_second_hello_resets_that_connection_only() {
    let (l, a) = listener();
    let (c1, s1) = pair(&l, a);
    let (mut r, s, _) = raw_client(&l, a, ip(42000));
    r.send(&greeting(
        T_HELLO,
        1 << 18,
        to_sockaddr(&ip(42001)).as_bytes(),
    ));
    let queued = accept_within(&l, Duration::from_secs(1));
    let mut b = [0u8; 8];
    let first = (&s).read(&mut b);
    round_trip(&c1, &s1, "a second HELLO");
    if let Ok(extra) = queued {
        // Then the peer goes: is the first socket told?
        drop(r);
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let after = (&s).read(&mut b);
        panic!(
            "a second HELLO on one connection made a second accepted socket (peer {:?}); \
             the first one's read gave {first:?}, and after the raw peer closed {after:?}",
            extra.peer_addr()
        );
    }
    assert_reset(first, "a second HELLO on an established connection");
    r.closed_within(T)
        .unwrap_or_else(|e| panic!("a second HELLO: {e}"));
}

// ---------------------------------------------------------- 2. peer death

/// The python3 interpreter itself (not a pyenv shim: SIGKILL must reach
/// the process that holds the sockets), or None with a message.
fn python() -> Option<&'static Path> {
    static PY: OnceLock<Option<PathBuf>> = OnceLock::new();
    PY.get_or_init(|| {
        let out = Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .stderr(Stdio::null())
            .output();
        match out {
            Ok(o) if o.status.success() => {
                let p = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
                p.is_file().then_some(p)
            }
            _ => None,
        }
    })
    .as_deref()
}

macro_rules! need_python {
    () => {
        match python() {
            Some(p) => p,
            None => {
                return common::skip("python3", "python3 is not installed (or not runnable)");
            }
        }
    };
}

/// A python3 process under `bin/usockrun` on this test's network, killed
/// (SIGKILL) when dropped if still running.
struct Py {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Py {
    fn start(py: &Path, script: &str, args: &[String]) -> Py {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let lib = root.join("target/release/libuserspacesock.so");
        assert!(
            lib.is_file(),
            "{} is missing: run `cargo build --release`",
            lib.display()
        );
        let mut child = Command::new(root.join("bin/usockrun"))
            .arg("--net")
            .arg(net())
            .arg("--lib")
            .arg(&lib)
            .arg("--")
            .arg(py)
            .arg("-c")
            .arg(script)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("bin/usockrun");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                match l {
                    Ok(l) => {
                        if tx.send(l).is_err() {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
        });
        Py { child, lines }
    }

    /// The next line the script prints.
    fn line(&mut self) -> String {
        match self.lines.recv_timeout(T) {
            Ok(l) => l,
            Err(_) => {
                let st = self.child.try_wait();
                panic!("python3 printed nothing within {T:?} (status {st:?})")
            }
        }
    }

    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Py {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Connects to the library listener at argv[1], sends argv[2] bytes of
/// `pat`, says "sent", then (argv[3] == "close") closes and exits, or
/// sleeps until killed.
const PY_CLIENT: &str = r#"
import socket, sys, time
n = int(sys.argv[2])
data = (bytes(range(251)) * (n // 251 + 1))[:n]
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(data)
if sys.argv[3] == "close":
    s.close()
print("sent", flush=True)
if sys.argv[3] != "close":
    time.sleep(300)
"#;

/// Listens on port argv[1], says "listening", accepts one connection,
/// sends argv[2] (may be empty), says "ready", sleeps until killed.
const PY_SERVER: &str = r#"
import socket, sys, time
l = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
l.bind(("127.0.0.1", int(sys.argv[1])))
l.listen(1)
print("listening", flush=True)
c, _ = l.accept()
c.sendall(sys.argv[2].encode())
print("ready", flush=True)
time.sleep(300)
"#;

#[test]
fn a_killed_client_process_gives_its_data_then_econnreset() {
    let py = need_python!();
    let (l, a) = listener();
    let (c1, s1) = pair(&l, a);
    const N: usize = 100_000;

    // Unread when the client dies: the data, then the reset.
    let mut p = Py::start(
        py,
        PY_CLIENT,
        &[a.port().to_string(), N.to_string(), "sleep".into()],
    );
    let s = accept_within(&l, T).expect("accept of the python3 client");
    assert_eq!(p.line(), "sent");
    p.kill();
    let (got, err) = read_until_error(&s);
    assert_eq!(got.len(), N, "bytes read before the error ({err})");
    check_pattern(&got, "a killed client's data");
    assert_eq!(
        err.kind(),
        ErrorKind::ConnectionReset,
        "after a killed client's data: {err}"
    );
    assert_write_fails(&s, "a killed client");
    drop(s);

    // A reader blocked in read() when the client dies is woken by the reset.
    let mut p = Py::start(
        py,
        PY_CLIENT,
        &[a.port().to_string(), N.to_string(), "sleep".into()],
    );
    let s = Arc::new(accept_within(&l, T).expect("accept of the python3 client"));
    let mut got = vec![0u8; N];
    (&*s).read_exact(&mut got).expect("the client's data");
    check_pattern(&got, "the client's data");
    assert_eq!(p.line(), "sent");
    let reader = {
        let s = s.clone();
        thread::spawn(move || {
            let t0 = Instant::now();
            let r = (&*s).read(&mut [0u8; 64]);
            (r, t0.elapsed())
        })
    };
    thread::sleep(Duration::from_millis(200));
    p.kill();
    let (r, took) = reader.join().unwrap();
    assert_reset(r, "a reader blocked when its peer was killed");
    assert!(took < T, "the reset took {took:?}");
    round_trip(&c1, &s1, "a python3 client was killed");
}

#[test]
fn a_client_process_that_closes_gives_end_of_stream_after_every_byte() {
    let py = need_python!();
    let (l, a) = listener();
    // Within the window: the client closes and exits before anything is read
    // (a whole window, 256 KiB, is more than the kernel socket holds: the
    // rest leaves from the exit-time flush).
    // Beyond it: the client's last bytes and its FIN leave as the reader
    // reads, and it exits right after close().
    for (n, read_after_exit) in [(200_000usize, true), (256 << 10, true), (4 << 20, false)] {
        let mut p = Py::start(
            py,
            PY_CLIENT,
            &[a.port().to_string(), n.to_string(), "close".into()],
        );
        let s = accept_within(&l, T).expect("accept of the python3 client");
        if read_after_exit {
            assert_eq!(p.line(), "sent");
            let st = p.child.wait().unwrap();
            assert!(st.success(), "python3 client: {st}");
        }
        let (got, err) = read_until_error(&s);
        assert_eq!(
            err.kind(),
            ErrorKind::UnexpectedEof,
            "{n} bytes then close(): the read after {} bytes gave {err}, want end-of-stream",
            got.len()
        );
        assert_eq!(got.len(), n, "{n} bytes then close()");
        check_pattern(&got, "a closed client's data");
        // End-of-stream again, not a late reset.
        assert_eq!(
            (&s).read(&mut [0u8; 8]).unwrap(),
            0,
            "a second read at end-of-stream"
        );
        if !read_after_exit {
            assert_eq!(p.line(), "sent");
            let st = p.child.wait().unwrap();
            assert!(st.success(), "python3 client: {st}");
        }
    }
}

#[test]
fn a_killed_server_process_resets_its_client_and_leaves_a_stale_port() {
    let py = need_python!();
    let (l, a) = listener();
    let (c1, s1) = pair(&l, a);

    // A reader blocked when the server dies.
    let port = 20201u16;
    let mut p = Py::start(py, PY_SERVER, &[port.to_string(), "hello".into()]);
    assert_eq!(p.line(), "listening");
    let c = Arc::new(UsockStream::connect(ip(port)).expect("connect to the python3 server"));
    c.set_read_timeout(Some(T)).unwrap();
    c.set_write_timeout(Some(T)).unwrap();
    let mut b = [0u8; 5];
    (&*c).read_exact(&mut b).unwrap();
    assert_eq!(&b, b"hello");
    assert_eq!(p.line(), "ready");
    let reader = {
        let c = c.clone();
        thread::spawn(move || (&*c).read(&mut [0u8; 64]))
    };
    thread::sleep(Duration::from_millis(200));
    p.kill();
    match reader.join().unwrap() {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Err(e) if e.kind() == ErrorKind::WouldBlock => {
            panic!("the server was killed: no reset or end-of-stream within {T:?}")
        }
        other => panic!("the server was killed: read gave {other:?}"),
    }
    assert_write_fails(&c, "the server was killed");
    drop(c);

    // The killed server left its port file: refused, and the file removed.
    let file = net().join(format!("t{port}"));
    assert!(file.exists(), "the killed server's port file");
    let e = UsockStream::connect(ip(port)).expect_err("connect to a dead server's port");
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
    assert!(
        !file.exists(),
        "the stale port file was not removed by the refused connect"
    );

    // A writer blocked on a full window when the server dies.
    let port = 20202u16;
    let mut p = Py::start(py, PY_SERVER, &[port.to_string(), String::new()]);
    assert_eq!(p.line(), "listening");
    let c = UsockStream::connect(ip(port)).expect("connect to the python3 server");
    c.set_write_timeout(Some(T)).unwrap();
    assert_eq!(p.line(), "ready");
    let written = Arc::new(AtomicUsize::new(0));
    let writer = {
        let w = written.clone();
        thread::spawn(move || {
            let chunk = vec![7u8; 16 << 10];
            loop {
                match (&c).write(&chunk) {
                    Ok(n) => w.fetch_add(n, Ordering::Relaxed),
                    Err(e) => return (e, Instant::now()),
                };
            }
        })
    };
    // Until the server's window is full and the writer waits.
    let mut last = 0;
    loop {
        thread::sleep(Duration::from_millis(100));
        let now = written.load(Ordering::Relaxed);
        if now == last {
            break;
        }
        last = now;
    }
    let killed = Instant::now();
    p.kill();
    let (e, when) = writer.join().unwrap();
    assert!(
        matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe),
        "a writer blocked when the server was killed (after {last} bytes): {e}"
    );
    assert!(
        when - killed < T,
        "the writer woke after {:?}",
        when - killed
    );

    // The dead server's port can be bound again.
    let l2 = UsockListener::bind(ip(port)).expect("bind over a dead server's port");
    let (c2, s2) = pair(&l2, ip(port));
    round_trip(&c2, &s2, "a port rebound after its server was killed");
    round_trip(&c1, &s1, "python3 servers were killed");
}

// -------------------------------------------------------- 3. stale entries

/// A port file bound by a kernel socket that is then closed without
/// unlinking, as a process that dies leaves it.
fn stale(name: &str) -> PathBuf {
    let path = net().join(name);
    if name.starts_with('t') {
        drop(kernel::listen(&path).unwrap());
    } else {
        drop(kernel::dgram(&path).unwrap());
    }
    assert!(path.exists());
    path
}

#[test]
fn a_stale_stream_port_refuses_is_removed_and_can_be_bound() {
    let port = 20301u16;
    let path = stale(&format!("t{port}"));
    let e = UsockStream::connect(ip(port)).expect_err("connect to a stale port file");
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
    assert!(
        !path.exists(),
        "the stale file was not removed by the refused connect"
    );

    let path = stale(&format!("t{port}"));
    let l = UsockListener::bind(ip(port)).expect("bind over a stale port file");
    assert!(path.exists(), "the listener's port file");
    let (c, s) = pair(&l, ip(port));
    round_trip(&c, &s, "a listener bound over a stale file");
    c.shutdown(Shutdown::Both).unwrap();
    drop((c, s, l));
    assert!(!path.exists(), "the listener's port file outlived it");
}

#[test]
fn a_stale_datagram_port_can_be_bound() {
    let port = 20302u16;
    let path = stale(&format!("u{port}"));
    // A datagram to the dead port goes nowhere, without an error.
    let tx = UsockDatagram::bind(ip(0)).unwrap();
    tx.send_to(b"to nobody", ip(port))
        .expect("a datagram to a stale port");
    let rx = UsockDatagram::bind(ip(port)).expect("bind over a stale datagram port file");
    assert!(path.exists());
    rx.set_read_timeout(Some(T)).unwrap();
    tx.send_to(b"to the new owner", ip(port)).unwrap();
    let mut b = [0u8; 64];
    let (n, from) = rx
        .recv_from(&mut b)
        .expect("a datagram to the rebound port");
    assert_eq!(&b[..n], b"to the new owner");
    assert_eq!(from.port(), tx.local_addr().unwrap().port());
}

/// Only dead entries are taken over: a port file a live socket holds gives
/// EADDRINUSE and stays.
#[test]
fn a_live_port_file_is_left_alone() {
    let dir = net();
    let t = dir.join("t20401");
    let live = kernel::listen(&t).unwrap();
    let e = UsockListener::bind(ip(20401)).expect_err("bind over a live stream port file");
    assert_eq!(e.kind(), ErrorKind::AddrInUse, "{e}");
    assert!(t.exists(), "a live stream port file was removed");
    kernel::connect(&t).expect("the live listener still answers");
    drop(live);

    let u = dir.join("u20402");
    let live = kernel::dgram(&u).unwrap();
    let e = UsockDatagram::bind(ip(20402)).expect_err("bind over a live datagram port file");
    assert_eq!(e.kind(), ErrorKind::AddrInUse, "{e}");
    assert!(u.exists(), "a live datagram port file was removed");
    drop(live);
    let _ = std::fs::remove_file(t);
    let _ = std::fs::remove_file(u);
}

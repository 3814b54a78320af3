//! The frontend's state machine as a backend sees it: a recording mock
//! backend (the `Backend` trait in Rust) claims one AF_INET port, the test
//! drives the frontend through the C API (`usock_*`, via `dual::Lib`) and
//! plays the backend's part with the upcalls, and each test checks which
//! operations the backend was asked for, with which arguments, and what the
//! program sees: connect, writability, reset, shutdown, close, write
//! errors, refusal and retry.
//!
//! The registry is global to the test process: each test registers its own
//! mock for its own port, above the default backends, and unregisters it at
//! the end. Where Linux's behaviour is claimed across several calls (a
//! refused connect and its retry), the same case runs on a kernel socket
//! connecting to a closed port and is compared (`dual::compare`).
#![cfg(feature = "std")]

mod common;

use std::collections::VecDeque;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::dual::{self, compare, Addr, Kernel, Lib, Sys, Trace};
use userspacesock::addr::SockAddr;
use userspacesock::backend::contract::*;
use userspacesock::backend::registry;
use userspacesock::backend::upcall;
use userspacesock::consts::*;

/// Above loopback and xproc (`backends::LOOPBACK_PRIORITY`, ...).
const MOCK_PRIORITY: i32 = 1000;

/// What the frontend asked the mock for, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Call {
    Claim(ClaimOp, Vec<u8>),
    Connect {
        handle: SockHandle,
        info: SockInfo,
        addr: Vec<u8>,
    },
    Write {
        offset: u64,
        flags: u16,
        data: Vec<u8>,
    },
    Shutdown(i32),
    Close(SockHandle),
}

/// What the mock does when asked to connect.
#[derive(Clone, Copy)]
enum OnConnect {
    /// Nothing: the test makes the upcall.
    Wait,
    /// The `refused` upcall with this errno, from inside `connect`.
    Refuse(Errno),
}

/// A recording backend for AF_INET streams to 127.0.0.1:`port`.
struct Mock {
    port: u16,
    calls: Mutex<Vec<Call>>,
    on_connect: Mutex<OnConnect>,
    /// What the next writes return: `Some(errno)` fails one, `None` or an
    /// empty script takes it.
    writes: Mutex<VecDeque<Option<Errno>>>,
}

impl Mock {
    fn record(&self, c: Call) {
        self.calls.lock().unwrap().push(c);
    }
}

impl Backend for Mock {
    fn name(&self) -> &str {
        "mock"
    }
    fn supports(&self, info: &SockInfo) -> bool {
        info.domain == AF_INET && info.ty == SOCK_STREAM
    }
    fn claim(
        &self,
        _h: SockHandle,
        _info: &SockInfo,
        op: ClaimOp,
        addr: &SockAddr,
    ) -> Result<Option<SockState>, Errno> {
        let b = addr.as_bytes();
        if b.get(2..4) != Some(&self.port.to_be_bytes()[..]) {
            return Ok(None);
        }
        self.record(Call::Claim(op, b.to_vec()));
        Ok(Some(Arc::new(()) as SockState))
    }
    fn bind(&self, _s: SockRef<'_>, a: &SockAddr) -> Result<SockAddr, Errno> {
        Ok(*a)
    }
    fn listen(&self, _s: SockRef<'_>, _b: u32) -> Result<(), Errno> {
        Err(EOPNOTSUPP)
    }
    fn connect(&self, s: SockRef<'_>, a: &SockAddr) -> Result<(), Errno> {
        self.record(Call::Connect {
            handle: s.handle,
            info: s.info,
            addr: a.as_bytes().to_vec(),
        });
        let on = *self.on_connect.lock().unwrap();
        if let OnConnect::Refuse(e) = on {
            upcall::refused(s.handle, e).unwrap();
        }
        Ok(())
    }
    fn shutdown(&self, _s: SockRef<'_>, how: i32) -> Result<(), Errno> {
        self.record(Call::Shutdown(how));
        Ok(())
    }
    fn write(&self, _s: SockRef<'_>, f: &Fragment<'_>) -> Result<(), Errno> {
        self.record(Call::Write {
            offset: f.header.offset,
            flags: f.header.flags,
            data: f.payload.to_vec(),
        });
        match self.writes.lock().unwrap().pop_front() {
            Some(Some(e)) => Err(e),
            _ => Ok(()),
        }
    }
    fn local_addr(&self, _s: SockRef<'_>) -> Option<SockAddr> {
        None
    }
    fn peer_addr(&self, _s: SockRef<'_>) -> Option<SockAddr> {
        None
    }
    fn close(&self, s: SockRef<'_>) {
        self.record(Call::Close(s.handle));
    }
}

/// A mock registered for `port` for the length of a test.
struct Fixture {
    mock: Arc<Mock>,
    id: u64,
}

impl Fixture {
    fn new(port: u16) -> Fixture {
        let mock = Arc::new(Mock {
            port,
            calls: Mutex::new(Vec::new()),
            on_connect: Mutex::new(OnConnect::Wait),
            writes: Mutex::new(VecDeque::new()),
        });
        let id = registry::register(mock.clone(), MOCK_PRIORITY);
        Fixture { mock, id }
    }

    fn addr(&self) -> Addr {
        Addr::v4(self.mock.port)
    }

    /// The calls recorded since the last `take`.
    fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.mock.calls.lock().unwrap())
    }

    /// The handle the last connect named.
    fn handle(&self) -> SockHandle {
        self.mock
            .calls
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find_map(|c| match c {
                Call::Connect { handle, .. } => Some(*handle),
                _ => None,
            })
            .expect("no connect reached the backend")
    }

    fn on_connect(&self, on: OnConnect) {
        *self.mock.on_connect.lock().unwrap() = on;
    }

    fn script_writes(&self, w: &[Option<Errno>]) {
        self.mock.writes.lock().unwrap().extend(w.iter().copied());
    }

    /// A non-blocking stream socket connected through the mock, with
    /// `credit` bytes of send credit; the record is empty.
    fn connected(&self, credit: u64) -> (i32, SockHandle) {
        let fd = Lib::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
        assert_eq!(Lib::connect(fd, &self.addr()), Err(EINPROGRESS));
        let h = self.handle();
        upcall::connected(h).unwrap();
        upcall::credit(h, credit).unwrap();
        self.take();
        (fd, h)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        registry::unregister(self.id);
    }
}

/// Runs `f` in a thread and fails the test if it takes longer than 10 s.
fn watchdog<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("hung for 10 s")
}

fn send(fd: i32, data: &[u8]) -> dual::R<usize> {
    Lib::sendto(fd, data, MSG_NOSIGNAL | MSG_DONTWAIT, None)
}

fn recv(fd: i32, n: usize) -> dual::R<Vec<u8>> {
    let mut b = vec![0u8; n];
    Lib::recvfrom(fd, &mut b, MSG_DONTWAIT).map(|(n, _)| b[..n].to_vec())
}

/// The poll events of `fd` now, among `events`.
fn revents(fd: i32, events: i16) -> i16 {
    let mut p = [libc::pollfd {
        fd,
        events,
        revents: 0,
    }];
    Lib::poll(&mut p, 0).unwrap();
    p[0].revents
}

fn write(offset: u64, flags: u16, data: &[u8]) -> Call {
    Call::Write {
        offset,
        flags,
        data: data.to_vec(),
    }
}

// ------------------------------------------------------------- connect

#[test]
fn connect_calls_the_backends_connect_with_the_address() {
    let f = Fixture::new(40101);
    let fd = Lib::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    let to = f.addr();
    assert_eq!(Lib::connect(fd, &to), Err(EINPROGRESS));
    let sin = common::sin(40101);
    // SAFETY: a sockaddr_in is plain bytes.
    let sin_bytes = unsafe {
        std::slice::from_raw_parts(&sin as *const _ as *const u8, std::mem::size_of_val(&sin))
    }
    .to_vec();
    let calls = f.take();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[0], Call::Claim(ClaimOp::Connect, sin_bytes.clone()));
    let Call::Connect { info, addr, .. } = &calls[1] else {
        panic!("{calls:?}")
    };
    assert_eq!(
        *info,
        SockInfo {
            domain: AF_INET,
            ty: SOCK_STREAM,
            protocol: 0
        }
    );
    assert_eq!(*addr, sin_bytes);
    // A second connect() while the first waits: EALREADY, and the backend
    // is not asked again.
    assert_eq!(Lib::connect(fd, &to), Err(EALREADY));
    assert_eq!(f.take(), vec![]);
    Lib::close(fd).unwrap();
}

#[test]
fn not_writable_until_the_backend_says_connected() {
    let f = Fixture::new(40102);
    let fd = Lib::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    assert_eq!(Lib::connect(fd, &f.addr()), Err(EINPROGRESS));
    let h = f.handle();
    f.take();
    // Connecting: neither writable nor sendable, credit or not.
    upcall::credit(h, 4096).unwrap();
    assert_eq!(revents(fd, POLLOUT | POLLIN), 0);
    assert_eq!(send(fd, b"early"), Err(EAGAIN));
    assert_eq!(f.take(), vec![], "nothing reaches the backend");
    // Connected: writable, and the bytes go to the backend at offset 0.
    upcall::connected(h).unwrap();
    assert_eq!(revents(fd, POLLOUT | POLLIN), POLLOUT);
    assert_eq!(Lib::get_int(fd, SOL_SOCKET, SO_ERROR), Ok(0));
    // As Linux (the socket was still SS_CONNECTING): the next connect()
    // reports the connection, 0, and only the one after is EISCONN
    // (t_connlife's connect_again cases compare with the kernel).
    assert_eq!(Lib::connect(fd, &f.addr()), Ok(()));
    assert_eq!(Lib::connect(fd, &f.addr()), Err(EISCONN));
    assert_eq!(send(fd, b"hello"), Ok(5));
    assert_eq!(f.take(), vec![write(0, 0, b"hello")]);
    Lib::close(fd).unwrap();
}

#[test]
fn a_blocking_connect_returns_when_the_backend_says_connected() {
    let f = Fixture::new(40103);
    let fd = Lib::socket(AF_INET, SOCK_STREAM, 0).unwrap();
    let to = f.addr();
    let (tid_tx, tid_rx) = mpsc::channel();
    let (res_tx, res_rx) = mpsc::channel();
    thread::spawn(move || {
        tid_tx.send(dual::gettid()).unwrap();
        let _ = res_tx.send(Lib::connect(fd, &to));
    });
    dual::wait_until_blocked(tid_rx.recv().unwrap());
    assert!(
        res_rx.try_recv().is_err(),
        "connect returned before the upcall"
    );
    upcall::connected(f.handle()).unwrap();
    let r = res_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("connect still blocked 10 s after the connected upcall");
    assert_eq!(r, Ok(()));
    Lib::close(fd).unwrap();
}

// --------------------------------------------------------------- reset

#[test]
fn a_reset_makes_the_next_send_fail_with_econnreset_once() {
    let f = Fixture::new(40111);
    let (fd, h) = f.connected(1 << 20);
    upcall::reset(h, ECONNRESET).unwrap();
    assert_eq!(send(fd, b"x"), Err(ECONNRESET));
    // Then EPIPE (Linux: sk_err taken, the socket shut both ways), and
    // recv sees the end.
    assert_eq!(send(fd, b"x"), Err(EPIPE));
    assert_eq!(recv(fd, 16), Ok(vec![]));
    assert_eq!(Lib::get_int(fd, SOL_SOCKET, SO_ERROR), Ok(0));
    assert_eq!(f.take(), vec![], "no write after the reset");
    Lib::close(fd).unwrap();
}

#[test]
fn a_reset_is_returned_by_recv_after_the_data_in_order() {
    let f = Fixture::new(40112);
    let (fd, h) = f.connected(1 << 20);
    upcall::deliver(h, &Fragment::stream(0, 0, b"hello")).unwrap();
    upcall::reset(h, ECONNRESET).unwrap();
    assert_eq!(recv(fd, 16), Ok(b"hello".to_vec()));
    assert_eq!(recv(fd, 16), Err(ECONNRESET));
    assert_eq!(recv(fd, 16), Ok(vec![]));
    assert_eq!(send(fd, b"x"), Err(EPIPE));
    Lib::close(fd).unwrap();
    // A reset connection sends neither FIN nor RST at close.
    assert_eq!(f.take(), vec![Call::Close(h)]);
}

#[test]
fn a_reset_wakes_a_blocked_recv_with_econnreset() {
    let f = Fixture::new(40113);
    let (fd, h) = f.connected(1 << 20);
    Lib::set_nonblocking(fd, false).unwrap();
    let (tid_tx, tid_rx) = mpsc::channel();
    let (res_tx, res_rx) = mpsc::channel();
    thread::spawn(move || {
        tid_tx.send(dual::gettid()).unwrap();
        let mut b = [0u8; 8];
        let _ = res_tx.send(Lib::recvfrom(fd, &mut b, 0).map(|(n, _)| n));
    });
    dual::wait_until_blocked(tid_rx.recv().unwrap());
    upcall::reset(h, ECONNRESET).unwrap();
    let r = res_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("recv still blocked 10 s after the reset");
    assert_eq!(r, Err(ECONNRESET));
    Lib::close(fd).unwrap();
}

// ------------------------------------------------------------ shutdown

#[test]
fn shutdown_wr_sends_one_fin_after_the_data_then_calls_the_backend() {
    let f = Fixture::new(40121);
    let (fd, h) = f.connected(1 << 20);
    assert_eq!(send(fd, b"abc"), Ok(3));
    assert_eq!(Lib::shutdown(fd, SHUT_WR), Ok(()));
    assert_eq!(
        f.take(),
        vec![
            write(0, 0, b"abc"),
            write(3, FLAG_FIN, b""),
            Call::Shutdown(SHUT_WR)
        ]
    );
    assert_eq!(send(fd, b"x"), Err(EPIPE));
    // Again: no second FIN.
    assert_eq!(Lib::shutdown(fd, SHUT_WR), Ok(()));
    assert_eq!(f.take(), vec![Call::Shutdown(SHUT_WR)]);
    // Reading still works.
    upcall::deliver(h, &Fragment::stream(0, 0, b"in")).unwrap();
    assert_eq!(recv(fd, 8), Ok(b"in".to_vec()));
    // close: no FIN again, the backend's close once.
    Lib::close(fd).unwrap();
    assert_eq!(f.take(), vec![Call::Close(h)]);
}

#[test]
fn shutdown_rd_calls_the_backend_without_a_fin() {
    let f = Fixture::new(40122);
    let (fd, h) = f.connected(1 << 20);
    assert_eq!(Lib::shutdown(fd, SHUT_RD), Ok(()));
    assert_eq!(f.take(), vec![Call::Shutdown(SHUT_RD)]);
    assert_eq!(recv(fd, 8), Ok(vec![]));
    assert_eq!(send(fd, b"out"), Ok(3));
    assert_eq!(f.take(), vec![write(0, 0, b"out")]);
    Lib::close(fd).unwrap();
    assert_eq!(f.take(), vec![write(3, FLAG_FIN, b""), Call::Close(h)]);
}

#[test]
fn shutdown_rdwr_sends_the_fin_and_calls_the_backend_once() {
    let f = Fixture::new(40123);
    let (fd, h) = f.connected(1 << 20);
    assert_eq!(Lib::shutdown(fd, SHUT_RDWR), Ok(()));
    assert_eq!(
        f.take(),
        vec![write(0, FLAG_FIN, b""), Call::Shutdown(SHUT_RDWR)]
    );
    assert_eq!(send(fd, b"x"), Err(EPIPE));
    assert_eq!(recv(fd, 8), Ok(vec![]));
    Lib::close(fd).unwrap();
    assert_eq!(f.take(), vec![Call::Close(h)]);
}

#[test]
fn shutdown_of_a_bound_unconnected_socket_is_enotconn_and_reaches_no_backend() {
    let f = Fixture::new(40124);
    let fd = Lib::socket(AF_INET, SOCK_STREAM, 0).unwrap();
    Lib::bind(fd, &f.addr()).unwrap();
    f.take();
    for how in [SHUT_RD, SHUT_WR, SHUT_RDWR] {
        assert_eq!(Lib::shutdown(fd, how), Err(ENOTCONN));
    }
    assert_eq!(Lib::shutdown(fd, 7), Err(EINVAL));
    assert_eq!(f.take(), vec![]);
    Lib::close(fd).unwrap();
    assert_eq!(f.take().len(), 1, "the backend's close");
}

// --------------------------------------------------------------- close

#[test]
fn close_calls_the_backends_close_exactly_once_after_the_last_fd() {
    let f = Fixture::new(40131);
    let (fd, h) = f.connected(1 << 20);
    let fd2 = Lib::dup(fd).unwrap();
    Lib::close(fd).unwrap();
    assert_eq!(f.take(), vec![], "another fd still refers to the socket");
    assert_eq!(Lib::close(fd), Err(EBADF));
    Lib::close(fd2).unwrap();
    assert_eq!(f.take(), vec![write(0, FLAG_FIN, b""), Call::Close(h)]);
    assert_eq!(Lib::close(fd2), Err(EBADF));
    // The handle is dead: an upcall naming it changes nothing.
    assert_eq!(upcall::connected(h), Err(EBADF));
    assert_eq!(upcall::reset(h, ECONNRESET), Err(EBADF));
    assert_eq!(
        upcall::deliver(h, &Fragment::stream(0, 0, b"late")),
        Err(EBADF)
    );
    assert_eq!(f.take(), vec![]);
}

#[test]
fn close_with_unread_data_resets_instead_of_fin() {
    // Linux sends an RST when close() discards unread data (tcp_close).
    let f = Fixture::new(40132);
    let (fd, h) = f.connected(1 << 20);
    assert_eq!(send(fd, b"12"), Ok(2));
    upcall::deliver(h, &Fragment::stream(0, 0, b"unread")).unwrap();
    f.take();
    Lib::close(fd).unwrap();
    assert_eq!(f.take(), vec![write(2, FLAG_RST, b""), Call::Close(h)]);
}

#[test]
fn close_of_a_connecting_socket_calls_close_once_and_sends_nothing() {
    let f = Fixture::new(40133);
    let fd = Lib::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    assert_eq!(Lib::connect(fd, &f.addr()), Err(EINPROGRESS));
    let h = f.handle();
    f.take();
    Lib::close(fd).unwrap();
    assert_eq!(f.take(), vec![Call::Close(h)]);
    // The connect's late answer goes nowhere.
    assert_eq!(upcall::connected(h), Err(EBADF));
}

// -------------------------------------------------------- write errors

#[test]
fn a_backend_write_error_is_the_send_errno_and_the_range_is_given_back() {
    let f = Fixture::new(40141);
    let (fd, _h) = f.connected(1 << 20);
    for e in [ENOBUFS, ECONNRESET, EPIPE, ENOTCONN, EIO] {
        f.script_writes(&[Some(e)]);
        assert_eq!(send(fd, b"abc"), Err(e), "backend's {e}");
        // The refused bytes were not sent: the next send starts at the
        // same offset.
        assert_eq!(f.take(), vec![write(0, 0, b"abc")]);
    }
    assert_eq!(send(fd, b"xyz"), Ok(3));
    assert_eq!(f.take(), vec![write(0, 0, b"xyz")]);
    Lib::close(fd).unwrap();
}

#[test]
fn a_write_error_after_some_fragments_returns_the_count_sent() {
    let f = Fixture::new(40142);
    let (fd, _h) = f.connected(1 << 20);
    let data = vec![7u8; 100_000];
    f.script_writes(&[None, Some(ENOBUFS)]);
    let frag = userspacesock::backend::contract::FRAG_MAX;
    assert_eq!(send(fd, &data), Ok(frag));
    let calls = f.take();
    assert_eq!(
        calls,
        vec![
            write(0, 0, &data[..frag]),
            write(frag as u64, 0, &data[frag..])
        ]
    );
    // The next send continues after what was taken.
    assert_eq!(send(fd, b"z"), Ok(1));
    assert_eq!(f.take(), vec![write(frag as u64, 0, b"z")]);
    Lib::close(fd).unwrap();
}

// ---------------------------------------------- refusal, and the retry

#[test]
fn a_refused_upcall_is_econnrefused_and_a_new_connect_asks_the_backend_again() {
    let f = Fixture::new(40151);
    f.on_connect(OnConnect::Refuse(ECONNREFUSED));
    let fd = Lib::socket(AF_INET, SOCK_STREAM, 0).unwrap();
    let to = f.addr();
    let r = watchdog(move || (Lib::connect(fd, &to), Lib::connect(fd, &to)));
    assert_eq!(r, (Err(ECONNREFUSED), Err(ECONNREFUSED)));
    let connects = f
        .take()
        .iter()
        .filter(|c| matches!(c, Call::Connect { .. }))
        .count();
    assert_eq!(connects, 2, "each connect() is a new attempt");
    // Answered this time.
    f.on_connect(OnConnect::Wait);
    Lib::set_nonblocking(fd, true).unwrap();
    assert_eq!(Lib::connect(fd, &f.addr()), Err(EINPROGRESS));
    upcall::connected(f.handle()).unwrap();
    assert_eq!(
        Lib::connect(fd, &f.addr()),
        Ok(()),
        "the connection, reported once"
    );
    assert_eq!(Lib::connect(fd, &f.addr()), Err(EISCONN));
    Lib::close(fd).unwrap();
}

#[test]
fn a_refused_upcall_with_another_errno_is_that_errno() {
    let f = Fixture::new(40152);
    f.on_connect(OnConnect::Refuse(ETIMEDOUT));
    let fd = Lib::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    assert_eq!(Lib::connect(fd, &f.addr()), Err(EINPROGRESS));
    assert_eq!(Lib::get_int(fd, SOL_SOCKET, SO_ERROR), Ok(ETIMEDOUT));
    assert_eq!(Lib::get_int(fd, SOL_SOCKET, SO_ERROR), Ok(0));
    Lib::close(fd).unwrap();
}

/// A TCP port on 127.0.0.1 where nothing listens (the kernel answers a
/// connect with an RST).
fn closed_port() -> u16 {
    let s = Kernel::socket(AF_INET, SOCK_STREAM, 0).unwrap();
    Kernel::bind(s, &Addr::v4(0)).unwrap();
    let p = Kernel::getsockname(s).unwrap().port();
    Kernel::close(s).unwrap();
    p
}

/// Waits for a non-blocking connect's outcome and records POLLOUT and
/// POLLERR.
fn outcome<S: Sys>(t: &mut Trace, fd: i32) {
    let mut p = [libc::pollfd {
        fd,
        events: POLLOUT,
        revents: 0,
    }];
    t.sys("poll", &S::poll(&mut p, 5000));
    t.see("revents & (OUT|ERR)", p[0].revents & (POLLOUT | POLLERR));
}

/// Blocking connects refused twice, then a non-blocking one.
fn refused_blocking<S: Sys>(to: Addr) -> Trace {
    let mut t = Trace::new(S::NAME);
    let fd = S::socket(AF_INET, SOCK_STREAM, 0).unwrap();
    t.sys("connect", &S::connect(fd, &to));
    t.sys("SO_ERROR", &S::get_int(fd, SOL_SOCKET, SO_ERROR));
    t.sys("connect again", &S::connect(fd, &to));
    S::set_nonblocking(fd, true).unwrap();
    t.sys("connect non-blocking", &S::connect(fd, &to));
    outcome::<S>(&mut t, fd);
    t.sys("SO_ERROR", &S::get_int(fd, SOL_SOCKET, SO_ERROR));
    t.sys("SO_ERROR again", &S::get_int(fd, SOL_SOCKET, SO_ERROR));
    S::close(fd).unwrap();
    t
}

#[test]
fn refused_blocking_connects_can_be_retried_as_on_linux() {
    let f = Fixture::new(40153);
    f.on_connect(OnConnect::Refuse(ECONNREFUSED));
    let (k, l) = (Addr::v4(closed_port()), f.addr());
    compare(
        "refused_blocking",
        move || refused_blocking::<Kernel>(k),
        move || refused_blocking::<Lib>(l),
    );
}

/// A non-blocking connect refused, then connect() again without looking
/// at SO_ERROR: Linux reports the refusal there (the socket was still
/// "connecting" for the socket layer), and only the next one starts a new
/// attempt.
fn refused_nonblocking_retry<S: Sys>(to: Addr) -> Trace {
    let mut t = Trace::new(S::NAME);
    let fd = S::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    t.sys("connect", &S::connect(fd, &to));
    outcome::<S>(&mut t, fd);
    t.sys("connect after the refusal", &S::connect(fd, &to));
    t.sys("connect again", &S::connect(fd, &to));
    outcome::<S>(&mut t, fd);
    t.sys("SO_ERROR", &S::get_int(fd, SOL_SOCKET, SO_ERROR));
    S::close(fd).unwrap();
    t
}

#[test]
fn refused_nonblocking_connect_reports_the_refusal_at_the_next_connect() {
    let f = Fixture::new(40154);
    f.on_connect(OnConnect::Refuse(ECONNREFUSED));
    let (k, l) = (Addr::v4(closed_port()), f.addr());
    compare(
        "refused_nonblocking_retry",
        move || refused_nonblocking_retry::<Kernel>(k),
        move || refused_nonblocking_retry::<Lib>(l),
    );
}

/// The same after SO_ERROR took the refusal: Linux's next connect() is
/// ECONNABORTED (no error left to report for the failed attempt), the
/// one after starts again.
fn refused_nonblocking_error_taken<S: Sys>(to: Addr) -> Trace {
    let mut t = Trace::new(S::NAME);
    let fd = S::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    t.sys("connect", &S::connect(fd, &to));
    outcome::<S>(&mut t, fd);
    t.sys("SO_ERROR", &S::get_int(fd, SOL_SOCKET, SO_ERROR));
    t.sys("SO_ERROR again", &S::get_int(fd, SOL_SOCKET, SO_ERROR));
    t.sys("connect after SO_ERROR", &S::connect(fd, &to));
    t.sys("connect again", &S::connect(fd, &to));
    outcome::<S>(&mut t, fd);
    t.sys("SO_ERROR", &S::get_int(fd, SOL_SOCKET, SO_ERROR));
    S::close(fd).unwrap();
    t
}

#[test]
fn refused_nonblocking_connect_after_so_error_is_econnaborted_once() {
    let f = Fixture::new(40155);
    f.on_connect(OnConnect::Refuse(ECONNREFUSED));
    let (k, l) = (Addr::v4(closed_port()), f.addr());
    compare(
        "refused_nonblocking_error_taken",
        move || refused_nonblocking_error_taken::<Kernel>(k),
        move || refused_nonblocking_error_taken::<Lib>(l),
    );
}

//! SO_RXQ_OVFL across processes, through the cross-process backend
//! (USOCK_NET), issue 13. A UDP receiver that set SO_RXQ_OVFL asked to see
//! drops: as on Linux, what does not fit its receive buffer is dropped and
//! counted, and the count rides on the next datagram queued (the
//! SO_RXQ_OVFL cmsg); its senders are never held back for it. A receiver
//! without the option keeps the backend's lossless flow control: its
//! senders wait while it is full, and it loses nothing.
//!
//! The receivers live in this process, the senders in a child process
//! (this test binary again, `common::child_command`), so every datagram
//! crosses a link between the two. The child floods, says `FLOODED` on its
//! stdout, then sends a `last` to the lossy receiver for each line on its
//! stdin; every datagram of the flood to that receiver travels on the
//! same link before it, so by the time a `last` is queued each one was
//! either queued or dropped: the datagrams read plus the count the `last`
//! carries (less the `last`s dropped before it) are exactly the
//! datagrams sent. This checks the library's own
//! promise (the kernel's side is `c-tests/t_ipopt.c`'s
//! `so_rxq_ovfl_counts_drops`, whose count the kernel decides alone).
#![cfg(feature = "std")]

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::{mpsc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use libc::{AF_INET, AF_INET6, SOCK_DGRAM, SOL_SOCKET, SO_RCVBUF, SO_RXQ_OVFL};
use userspacesock::api::posix::usock_recvmsg;

mod common;
use common::dual::{Addr, Lib, Sys};

/// How long anything may take before the test calls it a hang.
const T: Duration = Duration::from_secs(20);

/// The size of each datagram of a flood.
const SIZE: usize = 1000;

/// The environment variable that makes this binary a sender (see
/// [`sender`]).
const CHILD: &str = "XPROC_DROPS_CHILD";

/// The network directory of this process and its children, set in
/// USOCK_NET before the first socket (the registry reads it once); those
/// of earlier runs whose process is gone are removed (as
/// `tests/xproc_peer.rs` does). A child finds it in its environment.
fn net() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if common::child_case(CHILD).is_some() {
            return PathBuf::from(std::env::var_os("USOCK_NET").unwrap());
        }
        let tmp = std::env::temp_dir();
        if let Ok(rd) = std::fs::read_dir(&tmp) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(pid) = name.strip_prefix("usock-xproc-drops-") {
                    if !Path::new("/proc").join(pid).exists() {
                        let _ = std::fs::remove_dir_all(e.path());
                    }
                }
            }
        }
        let d = tmp.join(format!("usock-xproc-drops-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::DirBuilder::new().mode(0o700).create(&d).unwrap();
        std::env::set_var("USOCK_NET", &d);
        d
    })
}

fn loopback(family: i32, port: u16) -> Addr {
    let ip = if family == AF_INET {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        IpAddr::V6(Ipv6Addr::LOCALHOST)
    };
    Addr::ip(SocketAddr::new(ip, port))
}

/// A UDP receiver on the loopback address with a small receive buffer,
/// SO_RXQ_OVFL set when `lossy`: (fd, port).
fn receiver(family: i32, lossy: bool) -> (i32, u16) {
    net();
    let fd = Lib::socket(family, SOCK_DGRAM | libc::SOCK_CLOEXEC, 0).unwrap();
    Lib::set_int(fd, SOL_SOCKET, SO_RCVBUF, 4096).unwrap();
    if lossy {
        Lib::set_int(fd, SOL_SOCKET, SO_RXQ_OVFL, 1).unwrap();
    }
    Lib::bind(fd, &loopback(family, 0)).unwrap();
    (fd, Lib::getsockname(fd).unwrap().port())
}

/// The next datagram within `ms` milliseconds, with the drop count its
/// SO_RXQ_OVFL cmsg carries (None: no such cmsg); None when none came.
fn recv_counted(fd: i32, ms: i32) -> Option<(Vec<u8>, Option<u32>)> {
    if !Lib::readable(fd, ms) {
        return None;
    }
    let mut buf = vec![0u8; SIZE + 1];
    let mut ctl = [0u64; 32];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: all-zero is a valid msghdr.
    let mut m: libc::msghdr = unsafe { std::mem::zeroed() };
    m.msg_iov = &mut iov;
    m.msg_iovlen = 1;
    m.msg_control = ctl.as_mut_ptr().cast();
    m.msg_controllen = std::mem::size_of_val(&ctl);
    // SAFETY: the header points at a live buffer and control room.
    let n = unsafe { usock_recvmsg(fd, &mut m, libc::MSG_DONTWAIT) };
    assert!(
        n >= 0,
        "recvmsg after POLLIN: {}",
        std::io::Error::last_os_error()
    );
    buf.truncate(n as usize);
    let mut drops = None;
    // SAFETY: the header's control buffer was filled by recvmsg; the
    // CMSG macros walk it within its length.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&m);
        while !c.is_null() {
            if (*c).cmsg_level == SOL_SOCKET && (*c).cmsg_type == SO_RXQ_OVFL {
                assert_eq!((*c).cmsg_len, libc::CMSG_LEN(4) as usize);
                drops = Some(std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const u32));
            }
            c = libc::CMSG_NXTHDR(&m, c);
        }
    }
    Some((buf, drops))
}

/// Datagram `i` of a flood: its number, then filler.
fn datagram(i: u32) -> Vec<u8> {
    let mut d = vec![0x5a; SIZE];
    d[..4].copy_from_slice(&i.to_be_bytes());
    d
}

fn number(d: &[u8]) -> u32 {
    assert_eq!(d.len(), SIZE, "a datagram of the flood");
    u32::from_be_bytes(d[..4].try_into().unwrap())
}

/// The child's part: `family,lossy_port,lossless_port,n[,greet]` in
/// [`CHILD`]. With `greet` 1, first `first0` to the lossy port, then, at
/// each of two lines on stdin, `first1` and the flood. One unconnected
/// socket sends datagrams 0..n to both ports (to the lossless one only
/// when its port is not 0), one socket connected to the lossy port sends
/// them there too; then `FLOODED`, and for each line on stdin `last<k>`
/// (k from 0) to the lossy port, until stdin ends.
fn sender(case: &str) {
    net();
    let v: Vec<u32> = case.split(',').map(|x| x.parse().unwrap()).collect();
    let (family, lossy, lossless, n) = (v[0] as i32, v[1] as u16, v[2] as u16, v[3]);
    let to_lossy = loopback(family, lossy);
    let to_lossless = loopback(family, lossless);
    let s = Lib::socket(family, SOCK_DGRAM, 0).unwrap();
    let c = Lib::socket(family, SOCK_DGRAM, 0).unwrap();
    Lib::connect(c, &to_lossy).unwrap();
    if v.get(4) == Some(&1) {
        let mut lines = std::io::stdin().lines();
        for k in 0..2 {
            let first = format!("first{k}");
            assert_eq!(
                Lib::sendto(s, first.as_bytes(), 0, Some(&to_lossy)),
                Ok(first.len())
            );
            lines.next().unwrap().unwrap();
        }
    }
    for i in 0..n {
        let d = datagram(i);
        assert_eq!(Lib::sendto(s, &d, 0, Some(&to_lossy)), Ok(SIZE));
        assert_eq!(Lib::sendto(c, &d, 0, None), Ok(SIZE));
        if lossless != 0 {
            assert_eq!(Lib::sendto(s, &d, 0, Some(&to_lossless)), Ok(SIZE));
        }
    }
    println!("FLOODED");
    // A `last` for each line, numbered: one that found the buffer full
    // again is dropped (and counted) too, and the receiver asks again.
    for (k, line) in std::io::stdin().lines().enumerate() {
        line.unwrap();
        let last = format!("last{k}");
        assert_eq!(
            Lib::sendto(s, last.as_bytes(), 0, Some(&to_lossy)),
            Ok(last.len())
        );
    }
    println!("CHILD-OK");
}

/// A sender process and its stdout's lines.
struct Sender {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Sender {
    fn start(test: &str, family: i32, lossy: u16, lossless: u16, n: u32) -> Sender {
        Sender::spawn(test, &format!("{family},{lossy},{lossless},{n}"))
    }

    fn spawn(test: &str, case: &str) -> Sender {
        let mut child = common::child_command(test, CHILD, case)
            .env("USOCK_NET", net())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for l in out.lines() {
                if tx.send(l.unwrap_or_default()).is_err() {
                    return;
                }
            }
        });
        Sender {
            child,
            stdin: Some(stdin),
            lines,
            seen: Vec::new(),
        }
    }

    /// Whether the child said `what` within `d` (at the end of a line:
    /// libtest's "test NAME ... " goes before the first).
    fn said(&mut self, what: &str, d: Duration) -> bool {
        if self.seen.iter().any(|l| l.ends_with(what)) {
            return true;
        }
        let end = Instant::now() + d;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    let hit = l.ends_with(what);
                    self.seen.push(l);
                    if hit {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
        false
    }

    /// Has the sender send its next `last`.
    fn go(&mut self) {
        let i = self.stdin.as_mut().unwrap();
        i.write_all(b"GO\n").unwrap();
        i.flush().unwrap();
    }

    /// Ends the sender's stdin, and so the sender.
    fn finish(mut self) {
        drop(self.stdin.take());
        let ok = self.said("CHILD-OK", T);
        let status = self.child.wait().unwrap();
        assert!(
            ok && status.success(),
            "the sender: {status}, said {:?}",
            self.seen
        );
    }
}

impl Drop for Sender {
    /// A sender left behind by a failed test goes with it.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads `rx` until the senders' last datagram, then ends them: some were
/// read and some dropped (and counted), `sent` in all.
fn read_some_drop_the_rest(rx: i32, mut tx: Sender, sent: u32) {
    let (got, drops) = read_until_last(rx, &mut tx);
    tx.finish();
    assert!(got > 0 && drops > 0, "read {got}, dropped {drops}");
    assert_eq!(
        got + drops,
        sent,
        "read {got} + dropped {drops}: every datagram sent"
    );
}

/// Reads the lossy receiver `fd` until it has been quiet for 200 ms, then
/// has the sender send a `last`, and reads on until one comes: (datagrams
/// of the flood read, the drop count the `last` carries, less the `last`s
/// dropped before it). A `last` that does not come within a second was
/// dropped (the flood was not all in yet: a busy machine): another is
/// asked for.
fn read_until_last(fd: i32, tx: &mut Sender) -> (u32, u32) {
    let mut got = 0;
    while let Some((d, _)) = recv_counted(fd, 200) {
        number(&d);
        got += 1;
    }
    let end = Instant::now() + T;
    loop {
        assert!(Instant::now() < end, "no last came");
        tx.go();
        while let Some((d, drops)) = recv_counted(fd, 1000) {
            if let Some(k) = d.strip_prefix(b"last") {
                let k: u32 = std::str::from_utf8(k).unwrap().parse().unwrap();
                let drops = drops.expect("last carries the drop count");
                assert!(drops >= k, "the {k} lasts before it were dropped");
                return (got, drops - k);
            }
            number(&d);
            got += 1;
        }
    }
}

/// A lossy and a lossless receiver, flooded from one process by the same
/// senders: the lossy one counts exactly what it dropped, the lossless
/// one gets every datagram, in order, though it is read only 100 ms after
/// the flood starts (its senders wait meanwhile).
fn lossy_beside_lossless(test: &str, family: i32) {
    const N: u32 = 2000;
    let (lossy, lp) = receiver(family, true);
    let (lossless, kp) = receiver(family, false);
    let mut tx = Sender::start(test, family, lp, kp, N);
    let reader = thread::spawn(move || {
        thread::sleep(Duration::from_millis(100));
        for i in 0..N {
            let (d, drops) = recv_counted(lossless, T.as_millis() as i32)
                .unwrap_or_else(|| panic!("the lossless receiver lost datagram {i}"));
            assert_eq!(number(&d), i, "the lossless receiver's datagrams in order");
            assert_eq!(drops, None, "a lossless receiver without SO_RXQ_OVFL");
        }
        assert!(recv_counted(lossless, 200).is_none(), "nothing more");
    });
    assert!(
        tx.said("FLOODED", T),
        "the sender was held back by the lossy receiver"
    );
    reader.join().unwrap();
    read_some_drop_the_rest(lossy, tx, 2 * N);
    Lib::close(lossy).unwrap();
    Lib::close(lossless).unwrap();
}

/// A receiver full without SO_RXQ_OVFL holds its senders back; setting
/// the option releases them (it drops from then on, and counts only
/// those drops: the datagrams held back until then were not lost).
fn option_set_while_senders_wait(test: &str, family: i32) {
    // 8 MB in all: far beyond what the link holds on its way.
    const N: u32 = 4000;
    let (rx, port) = receiver(family, false);
    let mut tx = Sender::start(test, family, port, 0, N);
    assert!(
        !tx.said("FLOODED", Duration::from_millis(500)),
        "the senders of a full receiver without SO_RXQ_OVFL wait"
    );
    Lib::set_int(rx, SOL_SOCKET, SO_RXQ_OVFL, 1).unwrap();
    assert!(
        tx.said("FLOODED", T),
        "SO_RXQ_OVFL released the waiting senders"
    );
    read_some_drop_the_rest(rx, tx, 2 * N);
    Lib::close(rx).unwrap();
}

/// Sets `fd`'s SO_RCVTIMEO to [`T`]: a blocking recv that would hang fails.
fn rcvtimeo(fd: i32) {
    let tv = libc::timeval {
        tv_sec: T.as_secs() as libc::time_t,
        tv_usec: 0,
    };
    // SAFETY: a live timeval of the size given.
    let r = unsafe {
        userspacesock::api::posix::usock_setsockopt(
            fd,
            SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "SO_RCVTIMEO");
}

/// The next datagram of `fd` with a blocking recv (after [`rcvtimeo`]).
fn recv_blocking(fd: i32) -> Vec<u8> {
    let mut buf = vec![0u8; SIZE + 1];
    let (n, _) = Lib::recvfrom(fd, &mut buf, 0).expect("a datagram within T");
    buf.truncate(n);
    buf
}

/// A receiver with SO_RXQ_OVFL whose thread once waited in a blocking
/// recv, reading its sender's link itself: while no thread receives,
/// its senders are not held back (the backend's transport takes the link
/// back and drops what does not fit), and it counts what it dropped.
fn blocking_reader_holds_no_sender_later(test: &str, family: i32) {
    const N: u32 = 2000;
    let (rx, port) = receiver(family, true);
    rcvtimeo(rx);
    let mut tx = Sender::spawn(test, &format!("{family},{port},0,{N},1"));
    assert_eq!(recv_blocking(rx), b"first0");
    // Blocked while the link is there: the thread waits on it itself.
    let (tid_tx, tid_rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        tid_tx.send(common::dual::gettid()).unwrap();
        recv_blocking(rx)
    });
    common::dual::wait_until_blocked(tid_rx.recv().unwrap());
    tx.go();
    assert_eq!(reader.join().unwrap(), b"first1");
    // The flood, with no thread receiving.
    tx.go();
    assert!(
        tx.said("FLOODED", T),
        "the sender was held back by a receiver with SO_RXQ_OVFL"
    );
    read_some_drop_the_rest(rx, tx, 2 * N);
    Lib::close(rx).unwrap();
}

/// A receiver without SO_RXQ_OVFL read only by blocking recvs (its
/// thread reads its sender's link itself), lagging now and then: it is
/// full again and again, and idle longer than the transport lets a link
/// go unread; its sender waits meanwhile, and it loses nothing: every
/// datagram of the flood, in order.
fn blocking_reader_loses_nothing(test: &str, family: i32) {
    const N: u32 = 1000;
    let (rx, port) = receiver(family, false);
    rcvtimeo(rx);
    let mut tx = Sender::spawn(test, &format!("{family},{port},0,{N},1"));
    assert_eq!(recv_blocking(rx), b"first0");
    tx.go();
    assert_eq!(recv_blocking(rx), b"first1");
    tx.go();
    // Both of the sender's sockets send each datagram, one after the other.
    for i in 0..2 * N {
        let d = recv_blocking(rx);
        assert_eq!(number(&d), i / 2, "datagram {i} of the flood, in order");
        if i % 200 == 0 {
            thread::sleep(Duration::from_millis(20));
        }
    }
    assert!(tx.said("FLOODED", T), "the sender got through");
    tx.go();
    assert_eq!(recv_blocking(rx), b"last0", "nothing more before it");
    tx.finish();
    Lib::close(rx).unwrap();
}

/// Runs `case` for `family`, or the sender's part in a child.
fn run(test: &str, case: fn(&str, i32), family: i32) {
    if let Some(c) = common::child_case(CHILD) {
        sender(&c);
        return;
    }
    case(test, family);
}

#[test]
fn issue13_so_rxq_ovfl_drops_and_counts_across_processes_inet() {
    run(
        "issue13_so_rxq_ovfl_drops_and_counts_across_processes_inet",
        lossy_beside_lossless,
        AF_INET,
    );
}

#[test]
fn issue13_so_rxq_ovfl_drops_and_counts_across_processes_inet6() {
    run(
        "issue13_so_rxq_ovfl_drops_and_counts_across_processes_inet6",
        lossy_beside_lossless,
        AF_INET6,
    );
}

#[test]
fn issue13_so_rxq_ovfl_set_late_releases_waiting_senders_inet() {
    run(
        "issue13_so_rxq_ovfl_set_late_releases_waiting_senders_inet",
        option_set_while_senders_wait,
        AF_INET,
    );
}

#[test]
fn issue13_so_rxq_ovfl_set_late_releases_waiting_senders_inet6() {
    run(
        "issue13_so_rxq_ovfl_set_late_releases_waiting_senders_inet6",
        option_set_while_senders_wait,
        AF_INET6,
    );
}

#[test]
fn issue11_a_blocking_reader_holds_no_sender_later_inet() {
    run(
        "issue11_a_blocking_reader_holds_no_sender_later_inet",
        blocking_reader_holds_no_sender_later,
        AF_INET,
    );
}

#[test]
fn issue11_a_blocking_reader_holds_no_sender_later_inet6() {
    run(
        "issue11_a_blocking_reader_holds_no_sender_later_inet6",
        blocking_reader_holds_no_sender_later,
        AF_INET6,
    );
}

#[test]
fn issue11_a_blocking_reader_loses_nothing_inet() {
    run(
        "issue11_a_blocking_reader_loses_nothing_inet",
        blocking_reader_loses_nothing,
        AF_INET,
    );
}

#[test]
fn issue11_a_blocking_reader_loses_nothing_inet6() {
    run(
        "issue11_a_blocking_reader_loses_nothing_inet6",
        blocking_reader_loses_nothing,
        AF_INET6,
    );
}

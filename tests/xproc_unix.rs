//! AF_UNIX between two processes through the cross-process backend
//! (USOCK_NET): a server in this test process, a client in a separate
//! program (this test binary run again, `common::child_command`, so that
//! it shares none of the server's sockets), on one network directory.
//! Pathname and abstract names, streams, seqpacket records and datagrams
//! (sendto to a bound name, and connected), with the names Linux reports: the client sees
//! the server's name, the server an unnamed or autobound client; a
//! socket file nobody listens on refuses (ECONNREFUSED). Each test checks
//! that the name's rendezvous is in the network directory, so a run that
//! fell back to the in-process backend (whose clients in another process
//! find nothing) fails.
//!
//! Every test of this file shares one network directory (the registry
//! reads USOCK_NET once, at the first socket call of the process).
#![cfg(feature = "std")]

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libc::{c_int, c_void, sockaddr, sockaddr_un, socklen_t};
use userspacesock::api::posix::*;

mod common;

/// The variable that tells a child run which client to be.
const CASE: &str = "USOCK_XPROC_UNIX_CASE";

/// How long the server waits for the client (ms).
const WAIT_MS: c_int = 10_000;

/// The network directory (this process's, or the parent's in a child
/// run), set in USOCK_NET before any socket call; and a directory for the
/// socket files.
fn dirs() -> &'static (PathBuf, PathBuf) {
    static DIRS: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    DIRS.get_or_init(|| {
        if let (Some(net), Some(files)) = (
            std::env::var_os("USOCK_NET"),
            std::env::var_os("USOCK_XPROC_UNIX_FILES"),
        ) {
            return (net.into(), files.into());
        }
        let tmp = std::env::temp_dir();
        // Directories of earlier runs whose process is gone.
        for e in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("usock-xproc-unix-") {
                if !Path::new("/proc").join(pid).exists() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let base = tmp.join(format!("usock-xproc-unix-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let net = base.join("net");
        let files = base.join("f");
        for d in [&base, &net, &files] {
            std::fs::DirBuilder::new().mode(0o700).create(d).unwrap();
        }
        std::env::set_var("USOCK_NET", &net);
        (net, files)
    })
}

/// A sockaddr_un naming `name` (a leading NUL: abstract), and its length.
fn un(name: &[u8]) -> (sockaddr_un, socklen_t) {
    // SAFETY: plain data.
    let mut a: sockaddr_un = unsafe { std::mem::zeroed() };
    a.sun_family = libc::AF_UNIX as u16;
    for (d, s) in a.sun_path.iter_mut().zip(name) {
        *d = *s as libc::c_char;
    }
    // A pathname with its NUL; an abstract name, or none, without.
    let nul = usize::from(name.first().is_some_and(|&b| b != 0));
    (a, (2 + name.len() + nul) as socklen_t)
}

fn path_name(file: &str) -> Vec<u8> {
    dirs().1.join(file).into_os_string().into_encoded_bytes()
}

/// An abstract name of this test run (the parent's: its files'
/// directory names it).
fn abstract_name(what: &str) -> Vec<u8> {
    format!("\0usock-{}-{what}", dirs().1.display()).into_bytes()
}

fn ok(r: isize, what: &str) -> isize {
    assert!(r >= 0, "{what}: {}", std::io::Error::last_os_error());
    r
}

fn socket(ty: c_int) -> c_int {
    // SAFETY: integer arguments.
    ok(
        unsafe { usock_socket(libc::AF_UNIX, ty, 0) } as isize,
        "socket",
    ) as c_int
}

fn bind(fd: c_int, name: &[u8]) {
    let (a, len) = un(name);
    // SAFETY: `a` is a live sockaddr_un of `len` bytes.
    let r = unsafe { usock_bind(fd, &a as *const _ as *const sockaddr, len) };
    ok(r as isize, "bind");
}

fn connect(fd: c_int, name: &[u8]) -> Result<(), i32> {
    let (a, len) = un(name);
    // SAFETY: `a` is a live sockaddr_un of `len` bytes.
    match unsafe { usock_connect(fd, &a as *const _ as *const sockaddr, len) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0)),
    }
}

/// Waits (bounded) until `fd` is readable.
fn readable(fd: c_int) {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one live pollfd.
    let n = unsafe { usock_poll(&mut p, 1, WAIT_MS) };
    assert_eq!(n, 1, "nothing came within {WAIT_MS} ms");
}

fn send(fd: c_int, b: &[u8]) {
    // SAFETY: `b` is live for its length.
    let n = ok(
        unsafe { usock_send(fd, b.as_ptr() as *const c_void, b.len(), 0) },
        "send",
    );
    assert_eq!(n as usize, b.len());
}

fn sendto(fd: c_int, b: &[u8], to: &sockaddr_un, len: socklen_t) {
    // SAFETY: `b` and `to` are live.
    let n = ok(
        unsafe {
            usock_sendto(
                fd,
                b.as_ptr() as *const c_void,
                b.len(),
                0,
                to as *const _ as *const sockaddr,
                len,
            )
        },
        "sendto",
    );
    assert_eq!(n as usize, b.len());
}

/// One recvfrom: the bytes and the sender's address (its length too).
fn recvfrom(fd: c_int) -> (Vec<u8>, sockaddr_un, socklen_t) {
    readable(fd);
    let mut buf = vec![0u8; 1 << 16];
    // SAFETY: plain data.
    let mut from: sockaddr_un = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<sockaddr_un>() as socklen_t;
    // SAFETY: `buf` and `from` are live for the lengths given.
    let n = ok(
        unsafe {
            usock_recvfrom(
                fd,
                buf.as_mut_ptr() as *mut c_void,
                buf.len(),
                0,
                &mut from as *mut _ as *mut sockaddr,
                &mut len,
            )
        },
        "recvfrom",
    );
    buf.truncate(n as usize);
    (buf, from, len)
}

/// Everything the stream `fd` carries until its end.
fn read_to_end(fd: c_int) -> Vec<u8> {
    let mut all = Vec::new();
    loop {
        let (b, _, _) = recvfrom(fd);
        if b.is_empty() {
            return all;
        }
        all.extend_from_slice(&b);
    }
}

/// The name getsockname (`peer`: getpeername) reports, as bytes after the
/// family (an unnamed socket's: empty).
fn name_of(fd: c_int, peer: bool) -> Vec<u8> {
    // SAFETY: plain data.
    let mut a: sockaddr_un = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<sockaddr_un>() as socklen_t;
    let p = &mut a as *mut _ as *mut sockaddr;
    // SAFETY: `a` is live for `len` bytes.
    let r = unsafe {
        if peer {
            usock_getpeername(fd, p, &mut len)
        } else {
            usock_getsockname(fd, p, &mut len)
        }
    };
    ok(r as isize, "getsockname");
    bytes_of(&a, len)
}

fn bytes_of(a: &sockaddr_un, len: socklen_t) -> Vec<u8> {
    let n = (len as usize).saturating_sub(2);
    let mut v: Vec<u8> = a.sun_path[..n].iter().map(|&c| c as u8).collect();
    // A pathname's terminating NUL is not part of the name.
    if v.first() != Some(&0) && v.last() == Some(&0) {
        v.pop();
    }
    v
}

fn close(fd: c_int) {
    // SAFETY: closes our own socket.
    unsafe { usock_close(fd) };
}

/// The network directory holds a rendezvous whose name starts `prefix`.
fn rendezvous_there(prefix: &str) -> bool {
    std::fs::read_dir(&dirs().0)
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with(prefix))
}

/// Runs the client `case` of test `test` in a separate program, sharing
/// the network directory and the files' directory.
fn spawn_client(test: &str, case: &str) -> std::process::Child {
    let (net, files) = dirs();
    common::child_command(test, CASE, case)
        .env("USOCK_NET", net)
        .env("USOCK_XPROC_UNIX_FILES", files)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn child_done(child: std::process::Child) {
    common::assert_child_ok(&child.wait_with_output().unwrap());
}

/// The server side of a stream test over `name`: accepts one client,
/// reads what it sends to its end, answers, and checks the names.
fn stream_server(test: &str, name: &[u8], rdv_prefix: &str) {
    let l = socket(libc::SOCK_STREAM);
    bind(l, name);
    // SAFETY: integer arguments.
    ok(unsafe { usock_listen(l, 4) } as isize, "listen");
    assert!(rendezvous_there(rdv_prefix), "no rendezvous {rdv_prefix}*");
    let child = spawn_client(test, "client");
    readable(l);
    // SAFETY: no address asked for.
    let s = ok(
        unsafe { usock_accept(l, std::ptr::null_mut(), std::ptr::null_mut()) } as isize,
        "accept",
    ) as c_int;
    assert_eq!(name_of(s, false), name, "the accepted socket's name");
    assert_eq!(name_of(s, true), b"", "an unnamed client");
    let got = read_to_end(s);
    assert_eq!(got.len(), 300_000);
    assert!(got.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
    send(s, b"pong");
    close(s);
    close(l);
    child_done(child);
}

/// The client side of a stream test: connects to `name` (from another
/// process), sends, ends, reads the answer.
fn stream_client(name: &[u8]) {
    let c = socket(libc::SOCK_STREAM);
    connect(c, name).expect("connect");
    assert_eq!(name_of(c, true), name, "the client's peer");
    let data: Vec<u8> = (0..300_000).map(|i| (i % 251) as u8).collect();
    send(c, &data);
    // SAFETY: integer arguments.
    ok(
        unsafe { usock_shutdown(c, libc::SHUT_WR) } as isize,
        "shutdown",
    );
    assert_eq!(read_to_end(c), b"pong");
    close(c);
}

/// The server side of a datagram test over `name`: a datagram by
/// sendto from an autobound client, answered to its name; then one from
/// the client's connected socket.
fn dgram_server(test: &str, name: &[u8], rdv_prefix: &str) {
    let s = socket(libc::SOCK_DGRAM);
    bind(s, name);
    assert!(rendezvous_there(rdv_prefix), "no rendezvous {rdv_prefix}*");
    let child = spawn_client(test, "client");
    let (b, from, len) = recvfrom(s);
    assert_eq!(b, b"to a bound name");
    let src = bytes_of(&from, len);
    assert!(
        src.len() == 6 && src[0] == 0 && src[1..].iter().all(u8::is_ascii_hexdigit),
        "an autobound sender: {src:?}"
    );
    sendto(s, b"back to you", &from, len);
    let (b, _, len) = recvfrom(s);
    assert_eq!(b, b"connected");
    assert_eq!(
        len, 0,
        "an unnamed sender has no address (Linux: addrlen 0)"
    );
    close(s);
    child_done(child);
}

fn dgram_client(name: &[u8]) {
    let c = socket(libc::SOCK_DGRAM);
    // An unnamed bind autobinds: five hex digits, abstract.
    bind(c, b"");
    let (to, len) = un(name);
    sendto(c, b"to a bound name", &to, len);
    let (b, from, flen) = recvfrom(c);
    assert_eq!(b, b"back to you");
    assert_eq!(bytes_of(&from, flen), name, "the server's name");
    let d = socket(libc::SOCK_DGRAM);
    connect(d, name).expect("connect a datagram socket");
    assert_eq!(name_of(d, true), name);
    send(d, b"connected");
    close(d);
    close(c);
}

/// Runs the client of this test if this is a child run; whether it was.
fn as_child(client: impl FnOnce()) -> bool {
    if common::child_case(CASE).is_none() {
        return false;
    }
    dirs();
    client();
    println!("CHILD-OK");
    let _ = std::io::stdout().flush();
    true
}

#[test]
fn stream_pathname() {
    let name = path_name("stream.sock");
    let idle = path_name("idle.sock");
    if as_child(|| {
        stream_client(&name);
        // A socket file nobody listens on (bound, not listening).
        let c = socket(libc::SOCK_STREAM);
        assert_eq!(connect(c, &idle), Err(libc::ECONNREFUSED));
        close(c);
        let c = socket(libc::SOCK_STREAM);
        assert_eq!(connect(c, &path_name("none.sock")), Err(libc::ENOENT));
        close(c);
    }) {
        return;
    }
    dirs();
    let i = socket(libc::SOCK_STREAM);
    bind(i, &idle);
    let p = Path::new(std::ffi::OsStr::new(std::str::from_utf8(&name).unwrap()));
    stream_server("stream_pathname", &name, "xs");
    assert!(
        std::fs::symlink_metadata(p)
            .unwrap()
            .file_type()
            .is_socket(),
        "the socket file stays where the program put it"
    );
    close(i);
}

#[test]
fn stream_abstract() {
    let name = abstract_name("stream");
    if as_child(|| stream_client(&name)) {
        return;
    }
    dirs();
    stream_server("stream_abstract", &name, "as");
}

/// A client process killed while connected: the server reads what it
/// sent, then end-of-file, as Linux's close of a dead process's sockets
/// gives (not a reset: it left nothing unread).
#[test]
fn stream_peer_killed() {
    let name = abstract_name("killed");
    if as_child(|| {
        let c = socket(libc::SOCK_STREAM);
        connect(c, &name).expect("connect");
        send(c, b"hi");
        println!("CHILD-OK");
        let _ = std::io::stdout().flush();
        std::thread::sleep(std::time::Duration::from_secs(60));
    }) {
        return;
    }
    dirs();
    let l = socket(libc::SOCK_STREAM);
    bind(l, &name);
    // SAFETY: integer arguments.
    ok(unsafe { usock_listen(l, 4) } as isize, "listen");
    let mut child = spawn_client("stream_peer_killed", "client");
    readable(l);
    // SAFETY: no address asked for.
    let s = ok(
        unsafe { usock_accept(l, std::ptr::null_mut(), std::ptr::null_mut()) } as isize,
        "accept",
    ) as c_int;
    let (b, _, _) = recvfrom(s);
    assert_eq!(b, b"hi");
    child.kill().unwrap();
    let _ = child.wait();
    assert_eq!(read_to_end(s), b"", "end-of-file after the peer's death");
    close(s);
    close(l);
}

#[test]
fn dgram_pathname() {
    let name = path_name("dgram.sock");
    if as_child(|| dgram_client(&name)) {
        return;
    }
    dirs();
    dgram_server("dgram_pathname", &name, "xd");
}

#[test]
fn dgram_abstract() {
    let name = abstract_name("dgram");
    if as_child(|| dgram_client(&name)) {
        return;
    }
    dirs();
    dgram_server("dgram_abstract", &name, "ad");
}

/// recvmsg with room for one control message: the bytes, and the
/// SCM_CREDENTIALS the message came with (if any).
fn recv_cred(fd: c_int) -> (Vec<u8>, Option<libc::ucred>) {
    readable(fd);
    let mut buf = [0u8; 256];
    let mut ctl = [0u64; 16];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: all-zero is a valid msghdr.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctl.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&ctl);
    // SAFETY: `msg` points at live buffers.
    let n = ok(unsafe { usock_recvmsg(fd, &mut msg, 0) }, "recvmsg") as usize;
    let mut cred = None;
    // SAFETY: the control buffer was filled by recvmsg up to its length.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_CREDENTIALS {
                cred = Some(std::ptr::read_unaligned(
                    libc::CMSG_DATA(c).cast::<libc::ucred>(),
                ));
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    (buf[..n].to_vec(), cred)
}

fn passcred(fd: c_int) {
    let on: c_int = 1;
    // SAFETY: a valid int option.
    let r = unsafe {
        usock_setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PASSCRED,
            (&on as *const c_int).cast(),
            4,
        )
    };
    ok(r as isize, "SO_PASSCRED");
}

fn peercred(fd: c_int) -> libc::ucred {
    // SAFETY: all-zero is a valid ucred.
    let mut u: libc::ucred = unsafe { std::mem::zeroed() };
    let mut l = std::mem::size_of::<libc::ucred>() as socklen_t;
    // SAFETY: `u` has room for `l` bytes.
    let r = unsafe {
        usock_getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut u as *mut libc::ucred).cast(),
            &mut l,
        )
    };
    ok(r as isize, "SO_PEERCRED");
    u
}

/// Credentials between processes: the accepted socket's SO_PEERCRED is
/// the client process, and a receiver with SO_PASSCRED reads the sending
/// process's pid and ids with each stream message and datagram
/// (SCM_CREDENTIALS attached by the transport's knowledge of its peer).
#[test]
fn credentials_cross_processes() {
    let name = abstract_name("cred");
    let dname = abstract_name("cred-dgram");
    if as_child(|| {
        let c = socket(libc::SOCK_STREAM);
        connect(c, &name).expect("connect");
        let u = peercred(c);
        assert_eq!(
            u.pid,
            std::os::unix::process::parent_id() as i32,
            "the listener's process"
        );
        send(c, b"who am I");
        let d = socket(libc::SOCK_DGRAM);
        let (to, len) = un(&dname);
        sendto(d, b"and now?", &to, len);
        assert_eq!(read_to_end(c), b"");
        close(d);
        close(c);
    }) {
        return;
    }
    dirs();
    let l = socket(libc::SOCK_STREAM);
    bind(l, &name);
    // Inherited by the accepted socket: asked before anything is sent.
    passcred(l);
    // SAFETY: integer arguments.
    ok(unsafe { usock_listen(l, 4) } as isize, "listen");
    let ds = socket(libc::SOCK_DGRAM);
    bind(ds, &dname);
    passcred(ds);
    let child = spawn_client("credentials_cross_processes", "client");
    readable(l);
    // SAFETY: no address asked for.
    let s = ok(
        unsafe { usock_accept(l, std::ptr::null_mut(), std::ptr::null_mut()) } as isize,
        "accept",
    ) as c_int;
    let want = child.id() as i32;
    assert_eq!(peercred(s).pid, want, "SO_PEERCRED: the connecting process");
    let (b, cred) = recv_cred(s);
    assert_eq!(b, b"who am I");
    let cred = cred.expect("SCM_CREDENTIALS on a stream message");
    // SAFETY: getuid and getgid have no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    assert_eq!((cred.pid, cred.uid, cred.gid), (want, uid, gid));
    let (b, cred) = recv_cred(ds);
    assert_eq!(b, b"and now?");
    let cred = cred.expect("SCM_CREDENTIALS on a datagram");
    assert_eq!((cred.pid, cred.uid, cred.gid), (want, uid, gid));
    close(s);
    close(ds);
    close(l);
    child_done(child);
}

/// The records a seqpacket test sends: sizes (an empty one among them,
/// one larger than a fragment) and each one's fill byte.
const RECORDS: [(usize, u8); 6] = [(5, 1), (0, 2), (100_000, 3), (3, 4), (70_000, 5), (1, 6)];

/// One recv of at most `cap` bytes with `flags`: what recv returned and
/// the bytes it copied.
fn recv_record(fd: c_int, cap: usize, flags: c_int) -> (isize, Vec<u8>) {
    readable(fd);
    let mut buf = vec![0u8; cap];
    // SAFETY: `buf` is live for `cap` bytes.
    let n = ok(
        unsafe { usock_recv(fd, buf.as_mut_ptr() as *mut c_void, cap, flags) },
        "recv",
    );
    buf.truncate((n as usize).min(cap));
    (n, buf)
}

/// The server side of a seqpacket test over `name`: the client's records
/// arrive one per read with their boundaries (the empty one as a read of
/// 0 that is no end of file), a short read truncates, then end of file.
fn seqpacket_server(test: &str, name: &[u8], rdv_prefix: &str) {
    let l = socket(libc::SOCK_SEQPACKET);
    bind(l, name);
    // SAFETY: integer arguments.
    ok(unsafe { usock_listen(l, 4) } as isize, "listen");
    assert!(rendezvous_there(rdv_prefix), "no rendezvous {rdv_prefix}*");
    assert_eq!(usock_is_userspace(l), 1, "the library's socket");
    let child = spawn_client(test, "client");
    readable(l);
    // SAFETY: no address asked for.
    let s = ok(
        unsafe { usock_accept(l, std::ptr::null_mut(), std::ptr::null_mut()) } as isize,
        "accept",
    ) as c_int;
    for (len, fill) in RECORDS {
        let (n, b) = recv_record(s, 200_000, 0);
        assert_eq!(n as usize, len, "record of {len} bytes (fill {fill})");
        assert!(b.iter().all(|&x| x == fill));
    }
    // A record longer than the buffer: the rest is gone, MSG_TRUNC says
    // how long it was.
    let (n, b) = recv_record(s, 10, libc::MSG_TRUNC);
    assert_eq!((n, b.len()), (50, 10));
    let (n, b) = recv_record(s, 100, 0);
    assert_eq!((n, &b[..]), (4, &b"next"[..]));
    send(s, b"pong");
    let (n, _) = recv_record(s, 100, 0);
    assert_eq!(n, 0, "end of file");
    close(s);
    close(l);
    child_done(child);
}

fn seqpacket_client(name: &[u8]) {
    let c = socket(libc::SOCK_SEQPACKET);
    connect(c, name).expect("connect");
    assert_eq!(name_of(c, true), name, "the client's peer");
    for (len, fill) in RECORDS {
        send(c, &vec![fill; len]);
    }
    send(c, &[7u8; 50]);
    send(c, b"next");
    let (n, b) = recv_record(c, 100, 0);
    assert_eq!((n, &b[..]), (4, &b"pong"[..]));
    close(c);
}

#[test]
fn seqpacket_pathname() {
    let name = path_name("seqpacket.sock");
    if as_child(|| {
        // A stream socket finds a socket of another type at the path.
        let c = socket(libc::SOCK_STREAM);
        assert_eq!(connect(c, &name), Err(libc::EPROTOTYPE));
        close(c);
        seqpacket_client(&name);
    }) {
        return;
    }
    dirs();
    seqpacket_server("seqpacket_pathname", &name, "xq");
}

#[test]
fn seqpacket_abstract() {
    let name = abstract_name("seqpacket");
    if as_child(|| seqpacket_client(&name)) {
        return;
    }
    dirs();
    seqpacket_server("seqpacket_abstract", &name, "aq");
}

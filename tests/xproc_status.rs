//! The listing endpoint of the cross-process backend (what `usockstat`
//! reads): once this process's transport runs, `DIR/.stat/<pid>` answers
//! every connection with the process's sockets, one line per fd, in
//! `socket::listing`'s format, between a header and `end`. Asked here
//! through a kernel AF_UNIX socket made with raw system calls (the test
//! binary's own `socket()` is the library's), as usockstat asks.
#![cfg(feature = "std")]

use libc::{c_int, c_void, sockaddr, sockaddr_in, socklen_t};
use userspacesock::api::posix::*;

fn ok(r: c_int, what: &str) -> c_int {
    assert!(r >= 0, "{what}: {}", std::io::Error::last_os_error());
    r
}

fn v4(port: u16) -> sockaddr_in {
    sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_be_bytes([127, 0, 0, 1]).to_be(),
        },
        sin_zero: [0; 8],
    }
}

const IN_LEN: socklen_t = std::mem::size_of::<sockaddr_in>() as socklen_t;

fn port_of(fd: c_int) -> u16 {
    let mut a = v4(0);
    let mut len = IN_LEN;
    // SAFETY: a sockaddr_in and its length.
    ok(
        unsafe { usock_getsockname(fd, &mut a as *mut _ as *mut sockaddr, &mut len) },
        "getsockname",
    );
    u16::from_be(a.sin_port)
}

fn inq(fd: c_int) -> c_int {
    let mut n: c_int = 0;
    // SAFETY: FIONREAD writes one int.
    ok(
        unsafe { usock_ioctl(fd, libc::FIONREAD, &mut n as *mut c_int as *mut c_void) },
        "FIONREAD",
    );
    n
}

/// The endpoint's whole answer, read through a kernel socket.
fn ask(path: &std::path::Path) -> String {
    let mut a: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    a.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let p = path.as_os_str().as_encoded_bytes();
    for (d, s) in a.sun_path.iter_mut().zip(p) {
        *d = *s as libc::c_char;
    }
    // SAFETY: raw socket, connect and read on our own kernel fd, with a
    // valid address and buffer.
    unsafe {
        let k = libc::syscall(libc::SYS_socket, libc::AF_UNIX, libc::SOCK_STREAM, 0) as c_int;
        assert!(k >= 0);
        let len = std::mem::size_of::<libc::sockaddr_un>() as socklen_t;
        let r = libc::syscall(libc::SYS_connect, k, &a as *const libc::sockaddr_un, len);
        assert_eq!(
            r,
            0,
            "connect to {path:?}: {}",
            std::io::Error::last_os_error()
        );
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = libc::syscall(libc::SYS_read, k, buf.as_mut_ptr(), buf.len());
            assert!(n >= 0, "read: {}", std::io::Error::last_os_error());
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n as usize]);
        }
        libc::syscall(libc::SYS_close, k);
        String::from_utf8(out).unwrap()
    }
}

/// The fields of the line of `fd`.
fn line_of(text: &str, fd: c_int) -> Vec<String> {
    let lines: Vec<Vec<String>> = text
        .lines()
        .map(|l| l.split('\t').map(String::from).collect())
        .filter(|f: &Vec<String>| f[0] == fd.to_string())
        .collect();
    assert_eq!(lines.len(), 1, "one line for fd {fd} in:\n{text}");
    lines.into_iter().next().unwrap()
}

#[test]
fn the_endpoint_lists_this_process_sockets_as_getsockname_and_fionread_see_them() {
    let dir = std::env::temp_dir().join(format!("usock-xproc-status-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // Read by the registry at the first socket call of this process.
    std::env::set_var("USOCK_NET", &dir);
    // SAFETY (every usock_ call below): integer arguments, or addresses
    // and buffers that live across the call with their true lengths.
    let (l, c, a, u, d) = unsafe {
        let l = ok(usock_socket(libc::AF_INET, libc::SOCK_STREAM, 0), "socket");
        let any = v4(0);
        ok(
            usock_bind(l, &any as *const _ as *const sockaddr, IN_LEN),
            "bind",
        );
        ok(usock_listen(l, 3), "listen");
        let c = ok(usock_socket(libc::AF_INET, libc::SOCK_STREAM, 0), "socket");
        let to = v4(port_of(l));
        ok(
            usock_connect(c, &to as *const _ as *const sockaddr, IN_LEN),
            "connect",
        );
        let a = ok(
            usock_accept(l, std::ptr::null_mut(), std::ptr::null_mut()),
            "accept",
        );
        assert_eq!(usock_send(c, b"hello".as_ptr() as *const c_void, 5, 0), 5);
        let u = ok(usock_socket(libc::AF_INET, libc::SOCK_DGRAM, 0), "socket");
        ok(
            usock_bind(u, &any as *const _ as *const sockaddr, IN_LEN),
            "bind",
        );
        let d = ok(usock_dup(a), "dup");
        (l, c, a, u, d)
    };
    for _ in 0..500 {
        if inq(a) == 5 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    assert_eq!(inq(a), 5, "the 5 bytes reached the accepted socket");

    let me = std::process::id();
    let endpoint = dir.join(".stat").join(me.to_string());
    let text = ask(&endpoint);
    let mut lines = text.lines();
    let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
    assert_eq!(
        lines.next(),
        Some(format!("usock-listing\t1\t{me}\t{}", comm.trim_end()).as_str()),
        "the header names the process"
    );
    assert_eq!(text.lines().last(), Some("end"), "the answer ends with end");

    let (lp, cp) = (port_of(l), port_of(c));
    let ll = line_of(&text, l);
    assert_eq!(
        ll[2..],
        ["tcp", "LISTEN", "0", "3", &format!("127.0.0.1:{lp}"), "*"],
        "the listener: accept queue 0, backlog 3"
    );
    let al = line_of(&text, a);
    assert_eq!(
        al[2..],
        [
            "tcp",
            "ESTAB",
            "5",
            "0",
            &format!("127.0.0.1:{lp}"),
            &format!("127.0.0.1:{cp}")
        ],
        "the accepted end: the 5 unread bytes"
    );
    let cl = line_of(&text, c);
    assert_eq!(
        cl[2..],
        [
            "tcp",
            "ESTAB",
            "0",
            "0",
            &format!("127.0.0.1:{cp}"),
            &format!("127.0.0.1:{lp}")
        ],
        "the connecting end"
    );
    let ul = line_of(&text, u);
    assert_eq!(ul[2..4], ["udp", "UNCONN"], "the datagram socket");
    assert_eq!(ul[6], format!("127.0.0.1:{}", port_of(u)));
    let dl = line_of(&text, d);
    assert_eq!(dl[1], al[1], "a dup of the accepted socket has its id");
    assert_ne!(ll[1], al[1], "two sockets have two ids");

    // Asked again, after the reader took the bytes: the state of the
    // moment, and the connection undisturbed.
    let mut buf = [0u8; 8];
    // SAFETY: a live buffer of its length.
    let n = unsafe { usock_recv(a, buf.as_mut_ptr() as *mut c_void, buf.len(), 0) };
    assert_eq!(&buf[..n as usize], b"hello");
    let text = ask(&endpoint);
    assert_eq!(line_of(&text, a)[4], "0", "Recv-Q after the read");

    for fd in [d, a, c, u, l] {
        // SAFETY: our own sockets.
        unsafe { usock_close(fd) };
    }
    let text = ask(&endpoint);
    assert_eq!(
        text.lines().count(),
        2,
        "closed sockets are not listed:\n{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

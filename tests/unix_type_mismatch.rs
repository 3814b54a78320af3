//! A library AF_UNIX socket connecting to a path where a *kernel* socket
//! of another type listens (a SOCK_SEQPACKET socket made with raw system
//! calls, as a program whose routes give it to the kernel has) gets
//! EPROTOTYPE, as Linux's unix_find_other
//! gives, not ECONNREFUSED.
#![cfg(feature = "std")]

use userspacesock::api::posix::*;

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap()
}

#[test]
fn a_kernel_seqpacket_listener_is_another_type() {
    let dir = std::env::temp_dir().join(format!("usock-type-mismatch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    let path = dir.join("sq.sock");
    // SAFETY: all-zero is a valid sockaddr_un.
    let mut a: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    a.sun_family = libc::AF_UNIX as u16;
    for (d, s) in a
        .sun_path
        .iter_mut()
        .zip(path.as_os_str().as_encoded_bytes())
    {
        *d = *s as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    // The kernel's listener, made with raw system calls (the library's
    // socket() would make one of its own).
    // SAFETY: integer arguments; `a` is a valid address of `len` bytes.
    let l = unsafe {
        let l = libc::syscall(libc::SYS_socket, libc::AF_UNIX, libc::SOCK_SEQPACKET, 0) as i32;
        assert!(l >= 0);
        assert_eq!(
            libc::syscall(libc::SYS_bind, l, &a as *const libc::sockaddr_un, len),
            0
        );
        assert_eq!(libc::syscall(libc::SYS_listen, l, 4), 0);
        l
    };
    for ty in [libc::SOCK_STREAM, libc::SOCK_DGRAM] {
        // SAFETY: integer arguments.
        let c = unsafe { usock_socket(libc::AF_UNIX, ty, 0) };
        assert!(c >= 0);
        assert_eq!(usock_is_userspace(c), 1, "a library socket");
        // SAFETY: `a` is valid for `len` bytes.
        let r = unsafe { usock_connect(c, (&a as *const libc::sockaddr_un).cast(), len) };
        assert_eq!((r, errno()), (-1, libc::EPROTOTYPE), "type {ty}");
        // SAFETY: our fd.
        unsafe { usock_close(c) };
    }
    // SAFETY: our kernel fd.
    unsafe { libc::syscall(libc::SYS_close, l) };
    let _ = std::fs::remove_dir_all(&dir);
}

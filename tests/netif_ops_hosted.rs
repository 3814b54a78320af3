//! The engine over a host's C device table (`usock_netif_attach`) on the
//! hosted build: the table is checked, one engine per process, no thread
//! (the host's `usock_netif_poll` runs it), and a connect to an address on
//! the interface's subnet goes out through the table's `send` as an ARP
//! request from the table's MAC, after a `kick`. (The no_std build's path
//! end to end, against the kernel: tests/engine/embedded.sh.)
//!
//! One test: an engine is once per process.

use std::ffi::{c_void, CString};
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::Mutex;

use userspacesock::api::netif::usock_netif_configure;
use userspacesock::api::netif_ops::*;
use userspacesock::api::posix::{usock_connect, usock_socket};

static SENT: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());
static KICKS: AtomicUsize = AtomicUsize::new(0);
static LINK: AtomicI32 = AtomicI32::new(1);
static MTU: AtomicI32 = AtomicI32::new(1500);
const MAC: [u8; 6] = [0x02, 0, 0, 0x79, 0, 2];

unsafe extern "C" fn d_send(_ctx: *mut c_void, frame: *const u8, len: usize) -> i32 {
    // SAFETY: the library hands `len` readable bytes.
    let f = unsafe { std::slice::from_raw_parts(frame, len) }.to_vec();
    SENT.lock().unwrap().push(f);
    0
}
unsafe extern "C" fn d_recv(_ctx: *mut c_void, _buf: *mut u8, _cap: usize) -> usize {
    0
}
unsafe extern "C" fn d_mtu(_ctx: *mut c_void) -> u32 {
    MTU.load(Ordering::Relaxed) as u32
}
unsafe extern "C" fn d_mac(_ctx: *mut c_void, mac: *mut u8) {
    // SAFETY: room for 6 bytes, per the table's contract.
    unsafe { std::ptr::copy_nonoverlapping(MAC.as_ptr(), mac, 6) };
}
unsafe extern "C" fn d_link(_ctx: *mut c_void) -> i32 {
    LINK.load(Ordering::Relaxed)
}
unsafe extern "C" fn d_kick(_ctx: *mut c_void) {
    KICKS.fetch_add(1, Ordering::Relaxed);
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap()
}

fn attach(ops: &usock_netif_ops, addrs: &CString, gws: Option<&CString>) -> (i32, i32) {
    let cfg = usock_netif_config {
        addrs: addrs.as_ptr(),
        gws: gws.map_or(std::ptr::null(), |g| g.as_ptr()),
        seed: 7,
    };
    // SAFETY: a valid table and configuration.
    let r = unsafe { usock_netif_attach(ops, &cfg) };
    (r, if r == 0 { 0 } else { errno() })
}

#[test]
fn a_host_table_is_checked_and_carries_the_frames() {
    let good = usock_netif_ops {
        abi_version: USOCK_NETIF_ABI_VERSION,
        ctx: std::ptr::null_mut(),
        send: Some(d_send),
        recv: Some(d_recv),
        mtu: Some(d_mtu),
        mac: Some(d_mac),
        link_up: Some(d_link),
        kick: Some(d_kick),
    };
    let addrs = CString::new("10.79.0.2/24").unwrap();
    let gw = CString::new("10.79.0.1").unwrap();

    // No engine yet: usock_netif_poll says so.
    assert_eq!(usock_netif_poll(), -1);
    assert_eq!(errno(), libc::ENODEV);

    // Bad tables and addresses.
    let mut bad = good;
    bad.abi_version = 2;
    assert_eq!(attach(&bad, &addrs, None), (-1, libc::EINVAL));
    let mut bad = good;
    bad.recv = None;
    assert_eq!(attach(&bad, &addrs, None), (-1, libc::EINVAL));
    let mut bad = good;
    bad.mac = None;
    assert_eq!(attach(&bad, &addrs, None), (-1, libc::EINVAL));
    MTU.store(100, Ordering::Relaxed);
    assert_eq!(attach(&good, &addrs, None), (-1, libc::EINVAL));
    MTU.store(1500, Ordering::Relaxed);
    let wrong = CString::new("10.79.0.2").unwrap();
    assert_eq!(attach(&good, &wrong, None), (-1, libc::EINVAL));
    let v6gw = CString::new("fd00::1").unwrap();
    assert_eq!(attach(&good, &addrs, Some(&v6gw)), (-1, libc::EINVAL));
    // SAFETY: NULL pointers are refused, not read.
    assert_eq!(
        unsafe { usock_netif_attach(std::ptr::null(), std::ptr::null()) },
        -1
    );

    // One engine per process.
    assert_eq!(attach(&good, &addrs, Some(&gw)), (0, 0));
    assert_eq!(attach(&good, &addrs, Some(&gw)), (-1, libc::EBUSY));
    let tap = CString::new("tap:unused0").unwrap();
    // SAFETY: NUL-terminated strings.
    let r = unsafe { usock_netif_configure(tap.as_ptr(), addrs.as_ptr(), std::ptr::null()) };
    assert_eq!((r, errno()), (-1, libc::EBUSY));
    assert!(usock_netif_poll() >= 0);

    // While the link is down nothing goes out.
    LINK.store(0, Ordering::Relaxed);
    SENT.lock().unwrap().clear();
    // SAFETY: integer arguments.
    let fd = unsafe { usock_socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0) };
    assert!(fd >= 0);
    let peer = libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: 80u16.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_be_bytes([10, 79, 0, 1]).to_be(),
        },
        sin_zero: [0; 8],
    };
    let kicks = KICKS.load(Ordering::Relaxed);
    // SAFETY: a live sockaddr_in and its size.
    let r = unsafe {
        usock_connect(
            fd,
            &peer as *const _ as *const libc::sockaddr,
            std::mem::size_of_val(&peer) as u32,
        )
    };
    assert_eq!((r, errno()), (-1, libc::EINPROGRESS));
    assert!(
        KICKS.load(Ordering::Relaxed) > kicks,
        "a connect kicks the host's task"
    );
    assert!(usock_netif_poll() >= 0);
    assert!(
        SENT.lock().unwrap().is_empty(),
        "a frame went out on a link that is down"
    );

    // Up again: the next run asks who has 10.79.0.1, from the table's MAC.
    LINK.store(1, Ordering::Relaxed);
    let mut arp = None;
    for _ in 0..50 {
        usock_netif_poll();
        arp = SENT
            .lock()
            .unwrap()
            .iter()
            .find(|f| f.len() >= 42 && f[12..14] == [0x08, 0x06])
            .cloned();
        if arp.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let arp = arp.expect("no ARP request within 2.5 s of the link coming up");
    assert_eq!(&arp[0..6], &[0xff; 6], "broadcast");
    assert_eq!(&arp[6..12], &MAC, "from the device's MAC");
    assert_eq!(&arp[20..22], &[0, 1], "an ARP request");
    assert_eq!(
        &arp[28..32],
        &[10, 79, 0, 2],
        "from the interface's address"
    );
    assert_eq!(&arp[38..42], &[10, 79, 0, 1], "for the peer's");
}

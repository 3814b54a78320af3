//! Anchors of shared sockets between processes (SHARED.md, issue 15): the
//! segment handed over a kernel SOCK_SEQPACKET connection and mapped by the
//! accepting process; the peer's hangup seen only when the *last* holder of
//! the other end is gone (a fork child keeping it keeps the connection), and
//! within a second of a holder's SIGKILL; doorbells; offers that break the
//! protocol refused.

use std::time::{Duration, Instant};

use userspacesock::backends::shm::anchor::{drain_bells, offer, peer_gone, ring_bell, take_offer};
use userspacesock::backends::shm::segment::{Dir, Segment};
use userspacesock::platform::anchor_ipc;

/// The cases run one at a time: a fork child inherits every fd of the
/// process, so a child forked by one case would hold another case's
/// anchors and delay the hangup that case waits for.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

mod common;
use common::{fork_child, wait_child};

fn close(fd: i32) {
    userspacesock::platform::kfd_close(fd).unwrap();
}

/// A connected pair of anchors with the connecting side's segment offered
/// and taken: (connector anchor, its segment, acceptor anchor, its mapping).
fn connected() -> (i32, Segment, i32, Segment) {
    let (c, a) = anchor_ipc::seqpacket_pair().unwrap();
    let (seg, fd) = Segment::create(4096, 4096).unwrap();
    offer(c, fd, b"from the connector").unwrap();
    close(fd);
    let mut body = [0u8; 64];
    let (theirs, n) = take_offer(a, &mut body).unwrap();
    assert_eq!(&body[..n], b"from the connector");
    (c, seg, a, theirs)
}

#[test]
fn the_accepting_process_maps_the_offered_segment() {
    let _serial = serial();
    let (c, seg, a, _) = connected();
    // The offer travels to another process: the child takes it.
    let (c2, a2) = anchor_ipc::seqpacket_pair().unwrap();
    let (seg2, fd2) = Segment::create(1024, 1024).unwrap();
    let child = fork_child(|| {
        let mut body = [0u8; 16];
        let Ok((s, _)) = take_offer(a2, &mut body) else {
            return 1;
        };
        let r = s.ring(Dir::ToConnector);
        i32::from(r.write(b"child here") != Ok(10))
    });
    offer(c2, fd2, b"").unwrap();
    close(fd2);
    assert_eq!(wait_child(child), 0);
    let mut out = [0u8; 16];
    assert_eq!(
        seg2.ring(Dir::ToConnector)
            .read(&mut out, 0, true)
            .unwrap()
            .1,
        10
    );
    assert_eq!(&out[..10], b"child here");
    for fd in [c, a, c2, a2] {
        close(fd);
    }
    drop(seg);
}

#[test]
fn the_peer_is_gone_only_when_the_last_holder_is() {
    let _serial = serial();
    let (c, seg, a, mine) = connected();
    // A fork child holds the connecting end too; the parent's close of its
    // own copy ends nothing.
    let (go_r, go_w) = anchor_ipc::seqpacket_pair().unwrap();
    let child = fork_child(|| {
        let mut b = [0u8; 1];
        let mut none = [0i32; 0];
        // Wait for the word, then write from the child and leave.
        if anchor_ipc::recv_with_fds(go_r, &mut b, &mut none, 0).is_err() {
            return 1;
        }
        i32::from(seg.ring(Dir::ToAcceptor).write(b"last words") != Ok(10))
    });
    close(c);
    close(go_r);
    assert!(!peer_gone(a, 100), "a fork child still holds the other end");
    anchor_ipc::send_with_fds(go_w, b"g", &[]).unwrap();
    assert_eq!(wait_child(child), 0);
    let t = Instant::now();
    assert!(
        peer_gone(a, 1000),
        "no hangup 1 s after the last holder left"
    );
    assert!(t.elapsed() < Duration::from_secs(1));
    let mut out = [0u8; 16];
    assert_eq!(
        mine.ring(Dir::ToAcceptor)
            .read(&mut out, 0, true)
            .unwrap()
            .1,
        10
    );
    assert_eq!(&out[..10], b"last words");
    close(a);
    close(go_w);
}

#[test]
fn a_holder_killed_mid_transfer_is_seen_gone_within_a_second() {
    let _serial = serial();
    let (c, seg, a, mine) = connected();
    let child = fork_child(|| {
        let r = seg.ring(Dir::ToAcceptor);
        loop {
            let _ = r.write(&[1u8; 512]);
            let _ = r.wait_room(Some(Instant::now() + Duration::from_millis(10)), || false);
        }
    });
    close(c);
    // Let it write for a while, reading some.
    let mut buf = [0u8; 1000];
    let until = Instant::now() + Duration::from_millis(50);
    while Instant::now() < until {
        let _ = mine.ring(Dir::ToAcceptor).read(&mut buf, 0, true);
    }
    assert!(!peer_gone(a, 0));
    // SAFETY: kills our own child.
    unsafe { libc::kill(child, libc::SIGKILL) };
    let t = Instant::now();
    assert!(peer_gone(a, 1000), "no hangup within 1 s of SIGKILL");
    assert!(t.elapsed() < Duration::from_secs(1));
    wait_child(child);
    // What it published is still readable, and nothing beyond the ring.
    assert!(mine.ring(Dir::ToAcceptor).used().unwrap() <= 4096);
    close(a);
}

#[test]
fn doorbells_wake_a_poller_and_drain() {
    let _serial = serial();
    let (c, _seg, a, _mine) = connected();
    assert!(!drain_bells(a));
    ring_bell(c);
    ring_bell(c);
    let s = anchor_ipc::anchor_poll(a, true, 1000).unwrap();
    assert!(s.readable && !s.hung_up);
    assert!(drain_bells(a));
    assert!(!anchor_ipc::anchor_poll(a, true, 0).unwrap().readable);
    close(c);
    close(a);
}

#[test]
fn offers_that_break_the_protocol_are_refused() {
    let _serial = serial();
    let mut body = [0u8; 8];
    // No fd.
    let (c, a) = anchor_ipc::seqpacket_pair().unwrap();
    anchor_ipc::send_with_fds(c, b"USH1", &[]).unwrap();
    assert_eq!(take_offer(a, &mut body).err(), Some(libc::EPROTO));
    // Two fds.
    let (s1, f1) = Segment::create(64, 64).unwrap();
    let (_s2, f2) = Segment::create(64, 64).unwrap();
    anchor_ipc::send_with_fds(c, b"USH1", &[f1, f2]).unwrap();
    assert_eq!(take_offer(a, &mut body).err(), Some(libc::EPROTO));
    // Wrong magic.
    anchor_ipc::send_with_fds(c, b"XXXX", &[f1]).unwrap();
    assert_eq!(take_offer(a, &mut body).err(), Some(libc::EPROTO));
    // A memfd whose header is not a segment's.
    s1.mem()
        .u64_at(0)
        .unwrap()
        .store(0, std::sync::atomic::Ordering::Relaxed);
    offer(c, f1, b"").unwrap();
    assert_eq!(take_offer(a, &mut body).err(), Some(libc::EPROTO));
    // The peer left before offering.
    close(c);
    assert_eq!(take_offer(a, &mut body).err(), Some(libc::ECONNRESET));
    for fd in [a, f1, f2] {
        close(fd);
    }
}

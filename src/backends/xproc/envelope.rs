//! xproc's own framing: every message on a transport socket (a stream
//! connection or a datagram link) is an 8-byte envelope, then its body.
//!
//! # Message layout (xproc protocol version 4)
//!
//! Integers are big-endian, as in `backend::wire`; no padding.
//!
//! | Offset | Size | Field      | Meaning                                                     |
//! |-------:|-----:|------------|-------------------------------------------------------------|
//! |      0 |    1 | `type`     | `1` DATA, `2` HELLO, `3` ACCEPT, `4` WINDOW, `5` CRED, `6` BUSY; others invalid |
//! |      1 |    1 | `version`  | `4` ([`XPROC_VERSION`])                                     |
//! |      2 |    2 | `reserved` | `0`                                                         |
//! |      4 |    4 | `len`      | body bytes after the envelope                               |
//! |      8 | `len`| `body`     | see below                                                   |
//!
//! Bodies:
//!
//! - **DATA**: exactly one fragment in the portable encoding
//!   (`backend::wire`), unsummed (the AF_UNIX stream cannot corrupt bytes),
//!   as the frontend built it: xproc neither sets nor reads its `conn`
//!   field. `len` is the fragment's encoded length (at most
//!   `wire::MAX_FRAME_LEN`). On a stream connection: stream fragments; on
//!   a datagram link: datagram fragments whose address is their source,
//!   then, to a group or broadcast address, that destination, then, when
//!   the sender's frontend gave them, the datagram's attributes
//!   (`backend::attrs`: 20 bytes with the destination the sender used,
//!   its TOS and TTL). The lengths tell the parts apart (a sockaddr_in is
//!   16 bytes, a sockaddr_in6 28): see `dgram::split_addr`. A receiver
//!   of a frame without attributes reports Linux's defaults.
//! - **HELLO** (client → server, first message): the end of the client's
//!   receive window (u64), the MSS the client advertises (u32: its
//!   TCP_MAXSEG, 0 when it set none), then the client's address
//!   (`SockAddr` bytes, at most `wire::MAX_ADDR`). (Version 3: the window
//!   lets the accepted socket send before the client has even seen
//!   ACCEPT, as a just accepted TCP socket can on Linux. Version 4: the
//!   MSS, as a SYN's option carries it, for `Backend::peer_maxseg`.)
//! - **ACCEPT** (server → client, first message): the end of the server's
//!   receive window (u64), the MSS the listener advertises (u32, as in
//!   HELLO), then the server's address.
//! - **WINDOW** (either way, after the handshake): the new end of the
//!   sender's receive window (u64); `len` is 8.
//! - **CRED** (AF_UNIX connections, either way, before HELLO or ACCEPT):
//!   the credentials SO_PEERCRED reports at the other end (pid as i32,
//!   uid, gid as u32), then the client's token for its connection (u64:
//!   its pid in the high half; the server's CRED echoes it), by which a
//!   server in the client's own process finds the other end; `len` is
//!   20. The client's are its process's at
//!   connect(), the server's its listener's at listen(): the program's
//!   peer as Linux records it, which a transport socket's own kernel
//!   credentials are not once a socket changed hands.
//! - **BUSY** (server → client, AF_UNIX, instead of ACCEPT): the
//!   listener's accept queue is full; the client's connect() sees EAGAIN
//!   (and a blocking one tries again), as Linux's AF_UNIX does not queue
//!   a connect beyond the backlog. `len` is 0.
//!
//! Version 1 (before this envelope) sent bare wire frames and named its
//! control frames in the wire header's `conn` field; its first byte (`U`
//! of the wire magic) is no valid type, so either version refuses the
//! other at its first message.
//!
//! A reader rejects a message as soon as the bytes that break a rule are
//! there: an unknown type or version, nonzero reserved bytes, a `len` over
//! the type's maximum, a DATA body whose wire header is invalid or whose
//! encoded length is not `len`, a control body of the wrong length. Any
//! rejection ends that connection (or link).
#![deny(unsafe_code)]

use crate::backend::contract::Errno;
use crate::backend::wire;
use crate::consts::*;

/// The protocol's version, in every envelope. 1 was the protocol without
/// an envelope (control frames in the wire header's `conn`).
pub(super) const XPROC_VERSION: u8 = 4;

/// The envelope's length.
pub(super) const ENV_LEN: usize = 8;

const T_DATA: u8 = 1;
const T_HELLO: u8 = 2;
const T_ACCEPT: u8 = 3;
const T_WINDOW: u8 = 4;
const T_CRED: u8 = 5;
const T_BUSY: u8 = 6;

/// The longest control body (HELLO, ACCEPT: a window, an MSS and an
/// address).
const CTL_BODY_MAX: usize = 8 + 4 + wire::MAX_ADDR;

/// A DATA message's envelope and wire header, sent before the fragment's
/// address and payload (a gather write: they are not copied).
pub(super) type DataHeader = [u8; ENV_LEN + wire::HEADER_LEN];

/// A control message, encoded.
pub(super) type CtlBytes = ([u8; ENV_LEN + CTL_BODY_MAX], usize);

/// One message.
#[derive(Debug)]
pub(super) enum Msg<'a> {
    /// A fragment for the socket.
    Data(wire::Fragment<'a>),
    /// The client's receive window end, advertised MSS and address.
    Hello {
        window: u64,
        mss: u32,
        addr: &'a [u8],
    },
    /// The server's receive window end, advertised MSS and address.
    Accept {
        window: u64,
        mss: u32,
        addr: &'a [u8],
    },
    /// A new receive window end.
    Window(u64),
    /// The sender's peer credentials and the connection's token (AF_UNIX).
    Cred(crate::backend::contract::PeerCred, u64),
    /// The listener's accept queue is full (AF_UNIX).
    Busy,
}

/// A message that breaks the rules of the module docs.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct BadMsg;

fn envelope(ty: u8, len: usize) -> [u8; ENV_LEN] {
    let l = (len as u32).to_be_bytes();
    [ty, XPROC_VERSION, 0, 0, l[0], l[1], l[2], l[3]]
}

/// The envelope and wire header of DATA message `f` (unsummed).
pub(super) fn data_header(f: &wire::Fragment<'_>) -> Result<DataHeader, Errno> {
    let hdr = wire::encode_header(f, false).map_err(|_| EINVAL)?;
    let mut out = [0u8; ENV_LEN + wire::HEADER_LEN];
    let (env, rest) = out.split_at_mut(ENV_LEN);
    env.copy_from_slice(&envelope(T_DATA, wire::encoded_len(&f.header)));
    rest.copy_from_slice(&hdr);
    Ok(out)
}

/// Control message `m` (not DATA: `EINVAL`, as an address too long).
pub(super) fn control(m: &Msg<'_>) -> Result<CtlBytes, Errno> {
    let mut out = [0u8; ENV_LEN + CTL_BODY_MAX];
    let mut cred = [0u8; 20];
    let mut mss = None;
    let (ty, value, addr): (u8, Option<u64>, &[u8]) = match *m {
        Msg::Data(_) => return Err(EINVAL),
        Msg::Cred(c, token) => {
            cred[..4].copy_from_slice(&c.pid.to_be_bytes());
            cred[4..8].copy_from_slice(&c.uid.to_be_bytes());
            cred[8..12].copy_from_slice(&c.gid.to_be_bytes());
            cred[12..].copy_from_slice(&token.to_be_bytes());
            (T_CRED, None, &cred[..])
        }
        Msg::Busy => (T_BUSY, None, &[]),
        Msg::Hello {
            window,
            mss: m,
            addr,
        } => {
            mss = Some(m);
            (T_HELLO, Some(window), addr)
        }
        Msg::Accept {
            window,
            mss: m,
            addr,
        } => {
            mss = Some(m);
            (T_ACCEPT, Some(window), addr)
        }
        Msg::Window(w) => (T_WINDOW, Some(w), &[]),
    };
    if addr.len() > wire::MAX_ADDR {
        return Err(EINVAL);
    }
    let mut at = ENV_LEN;
    if let Some(v) = value {
        out[at..at + 8].copy_from_slice(&v.to_be_bytes());
        at += 8;
    }
    if let Some(v) = mss {
        out[at..at + 4].copy_from_slice(&v.to_be_bytes());
        at += 4;
    }
    out[at..at + addr.len()].copy_from_slice(addr);
    at += addr.len();
    out[..ENV_LEN].copy_from_slice(&envelope(ty, at - ENV_LEN));
    Ok((out, at))
}

/// The message at the start of `buf` and the bytes it takes; `Ok(None)`
/// while its bytes are not all there yet (and none of those there break a
/// rule).
pub(super) fn decode(buf: &[u8]) -> Result<Option<(Msg<'_>, usize)>, BadMsg> {
    let Some(&ty) = buf.first() else {
        return Ok(None);
    };
    if !(T_DATA..=T_BUSY).contains(&ty) {
        return Err(BadMsg);
    }
    if buf.get(1).is_some_and(|&v| v != XPROC_VERSION) {
        return Err(BadMsg);
    }
    let Some((env, rest)) = buf.split_first_chunk::<ENV_LEN>() else {
        return Ok(None);
    };
    if env[2] != 0 || env[3] != 0 {
        return Err(BadMsg);
    }
    let len = u32::from_be_bytes([env[4], env[5], env[6], env[7]]) as usize;
    let max = if ty == T_DATA {
        wire::MAX_FRAME_LEN
    } else {
        CTL_BODY_MAX
    };
    if len > max {
        return Err(BadMsg);
    }
    let body = &rest[..rest.len().min(len)];
    if ty == T_DATA {
        return match wire::decode_unsummed(body) {
            Ok((f, n)) if n == len => Ok(Some((Msg::Data(f), ENV_LEN + len))),
            Err(wire::WireError::Short { need }) if need <= len => Ok(None),
            _ => Err(BadMsg),
        };
    }
    if body.len() < len {
        return Ok(None);
    }
    let m = match ty {
        T_HELLO | T_ACCEPT => {
            let (w, rest) = body.split_first_chunk::<8>().ok_or(BadMsg)?;
            let (mss, addr) = rest.split_first_chunk::<4>().ok_or(BadMsg)?;
            if addr.len() > wire::MAX_ADDR {
                return Err(BadMsg);
            }
            let (window, mss) = (u64::from_be_bytes(*w), u32::from_be_bytes(*mss));
            if ty == T_HELLO {
                Msg::Hello { window, mss, addr }
            } else {
                Msg::Accept { window, mss, addr }
            }
        }
        T_WINDOW => Msg::Window(u64::from_be_bytes(body.try_into().map_err(|_| BadMsg)?)),
        T_CRED => {
            let b: &[u8; 20] = body.try_into().map_err(|_| BadMsg)?;
            let word = |i: usize| [b[i], b[i + 1], b[i + 2], b[i + 3]];
            let mut token = [0u8; 8];
            token.copy_from_slice(&b[12..]);
            Msg::Cred(
                crate::backend::contract::PeerCred {
                    pid: i32::from_be_bytes(word(0)),
                    uid: u32::from_be_bytes(word(4)),
                    gid: u32::from_be_bytes(word(8)),
                },
                u64::from_be_bytes(token),
            )
        }
        T_BUSY if len == 0 => Msg::Busy,
        _ => return Err(BadMsg),
    };
    Ok(Some((m, ENV_LEN + len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data_msg(f: &wire::Fragment<'_>) -> alloc::vec::Vec<u8> {
        let mut v = data_header(f).unwrap().to_vec();
        v.extend_from_slice(f.addr);
        v.extend_from_slice(f.payload);
        v
    }

    #[test]
    fn data_carries_the_fragment_untouched() {
        let mut f = wire::Fragment::stream(7, wire::FLAG_FIN, b"abc");
        f.header.conn = 0x1234;
        let v = data_msg(&f);
        assert_eq!(v[..ENV_LEN], [1, 4, 0, 0, 0, 0, 0, 43]);
        let mut want = wire::encode_header(&f, false).unwrap().to_vec();
        want.extend_from_slice(b"abc");
        assert_eq!(&v[ENV_LEN..], &want[..], "the wire frame, unsummed");
        let (m, n) = decode(&v).unwrap().unwrap();
        assert_eq!(n, v.len());
        let Msg::Data(g) = m else { panic!("{m:?}") };
        assert_eq!(
            (g.header.conn, g.header.offset, g.payload),
            (0x1234, 7, &b"abc"[..])
        );
        // Every prefix waits for more.
        for i in 0..v.len() {
            assert_eq!(decode(&v[..i]).unwrap().map(|(_, n)| n), None, "prefix {i}");
        }
    }

    #[test]
    fn control_messages_round_trip() {
        let a = [9u8; 16];
        for m in [
            Msg::Hello {
                window: 1 << 18,
                mss: 1000,
                addr: &a,
            },
            Msg::Accept {
                window: 1 << 40,
                mss: 0,
                addr: &a,
            },
            Msg::Window(77),
            Msg::Cred(
                crate::backend::contract::PeerCred {
                    pid: 4242,
                    uid: 1000,
                    gid: u32::MAX,
                },
                u64::MAX - 1,
            ),
            Msg::Busy,
        ] {
            let (b, len) = control(&m).unwrap();
            let (got, n) = decode(&b[..len]).unwrap().unwrap();
            assert_eq!(n, len);
            assert_eq!(alloc::format!("{got:?}"), alloc::format!("{m:?}"));
            for i in 0..len {
                assert!(decode(&b[..i]).unwrap().is_none(), "prefix {i} of {m:?}");
            }
        }
        assert_eq!(
            control(&Msg::Data(wire::Fragment::stream(0, wire::FLAG_FIN, b""))).err(),
            Some(EINVAL)
        );
    }

    #[test]
    fn bad_envelopes_are_refused_at_the_first_bad_byte() {
        let (w, len) = control(&Msg::Window(5)).unwrap();
        let w = &w[..len];
        let patched = |at: usize, b: &[u8]| {
            let mut v = w.to_vec();
            v[at..at + b.len()].copy_from_slice(b);
            v
        };
        assert_eq!(decode(&[0]).err(), Some(BadMsg), "type 0");
        assert_eq!(decode(&[7]).err(), Some(BadMsg), "type 7");
        let cred = crate::backend::contract::PeerCred {
            pid: 1,
            uid: 2,
            gid: 3,
        };
        let (c, clen) = control(&Msg::Cred(cred, 4)).unwrap();
        let mut short = c[..clen - 1].to_vec();
        short[7] = 19;
        assert_eq!(decode(&short).err(), Some(BadMsg), "CRED of 19 bytes");
        let mut busy = control(&Msg::Busy).unwrap().0[..ENV_LEN].to_vec();
        busy[7] = 1;
        busy.push(0);
        assert_eq!(decode(&busy).err(), Some(BadMsg), "BUSY with a body");
        assert_eq!(decode(b"US").err(), Some(BadMsg), "a version 1 wire frame");
        assert_eq!(decode(&[1, 1]).err(), Some(BadMsg), "version 1");
        assert_eq!(decode(&[2, 3]).err(), Some(BadMsg), "version 3");
        assert_eq!(decode(&patched(2, &[1])).err(), Some(BadMsg), "reserved");
        assert_eq!(
            decode(&patched(4, &9u32.to_be_bytes())[..ENV_LEN]).err(),
            None,
            "short"
        );
        assert_eq!(
            decode(&patched(4, &7u32.to_be_bytes())).err(),
            Some(BadMsg),
            "WINDOW of 7 bytes"
        );
        let huge = (CTL_BODY_MAX as u32 + 1).to_be_bytes();
        assert_eq!(
            decode(&patched(4, &huge)[..ENV_LEN]).err(),
            Some(BadMsg),
            "control too long"
        );
        let (a, _) = control(&Msg::Accept {
            window: 1,
            mss: 0,
            addr: &[],
        })
        .unwrap();
        let mut acc = a[..ENV_LEN].to_vec();
        acc[7] = 4;
        acc.extend_from_slice(&[0; 4]);
        assert_eq!(
            decode(&acc).err(),
            Some(BadMsg),
            "ACCEPT without its window"
        );
        let mut acc = a[..ENV_LEN].to_vec();
        acc[7] = 10;
        acc.extend_from_slice(&[0; 10]);
        assert_eq!(decode(&acc).err(), Some(BadMsg), "ACCEPT without its MSS");
        // DATA whose `len` disagrees with its fragment, either way.
        let f = wire::Fragment::stream(0, 0, b"hello");
        let v = data_msg(&f);
        let mut longer = v.clone();
        longer[7] += 1;
        longer.push(0);
        assert_eq!(decode(&longer).err(), Some(BadMsg), "len past the fragment");
        let mut shorter = v.clone();
        shorter[7] -= 1;
        assert_eq!(
            decode(&shorter).err(),
            Some(BadMsg),
            "len short of the fragment"
        );
        // A bad wire header is refused before its payload arrives.
        let mut bad = v[..ENV_LEN + wire::HEADER_LEN].to_vec();
        bad[ENV_LEN + 4] = 0x80;
        assert_eq!(decode(&bad).err(), Some(BadMsg), "unknown flag bits");
    }
}

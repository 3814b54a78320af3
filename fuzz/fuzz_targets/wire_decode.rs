//! Fuzz the fragment decoder (`backend::wire`) with arbitrary bytes.
//!
//! For every input:
//! - `decode` never panics; on success the frame re-encodes to exactly the
//!   bytes it was decoded from, and the fragment's slices match its header;
//! - `decode_header` agrees with `decode` (it accepts every header `decode`
//!   accepts, with the same fields, and `encoded_len` is the consumed length);
//! - a `Short { need }` error names a length longer than the input;
//! - reading the input as a byte stream of frames (decode, drop the frame,
//!   continue) terminates.
//!
//! - `decode_unsummed` gives the same answer as `decode` except that it
//!   does not report a bad checksum.
//!
//! A second pass flips one byte of a successfully decoded frame (chosen by
//! the input) and checks that the decoder rejects the corruption or decodes
//! something that again re-encodes to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use userspacesock::backend::wire::{self, WireError, HEADER_LEN};

fn check(buf: &[u8]) -> Option<usize> {
    // The unsummed decoder applies the same header rules: it accepts all
    // that decode accepts (with the same result), and when it rejects, so
    // does decode.
    let unsummed = wire::decode_unsummed(buf);
    match (&unsummed, wire::decode(buf)) {
        (Ok(u), Ok(d)) => assert_eq!(*u, d),
        (Err(ue), Err(de)) if de != WireError::BadChecksum => assert_eq!(*ue, de),
        (Ok(_), Err(WireError::BadChecksum)) | (Err(_), Err(_)) => {}
        (Err(e), Ok(_)) => panic!("decode_unsummed refused a frame decode accepts: {e:?}"),
        (Ok(_), Err(e)) => panic!("decode_unsummed accepted a frame decode refuses: {e:?}"),
    }
    match wire::decode(buf) {
        Ok((frag, used)) => {
            assert!(used >= HEADER_LEN && used <= buf.len());
            assert_eq!(frag.addr.len(), usize::from(frag.header.addr_len));
            assert_eq!(frag.payload.len(), frag.header.len as usize);
            assert_eq!(wire::encoded_len(&frag.header), used);
            let h = wire::decode_header(buf).expect("decode accepted the header");
            assert_eq!(h, frag.header);
            let again = wire::encode_vec(&frag).expect("a decoded fragment re-encodes");
            assert_eq!(&again[..], &buf[..used], "re-encoding differs");
            let mut out = vec![0u8; used];
            assert_eq!(wire::encode(&frag, &mut out), Ok(used));
            assert_eq!(out, again);
            if used > 0 {
                let mut small = vec![0u8; used - 1];
                assert_eq!(
                    wire::encode(&frag, &mut small),
                    Err(WireError::Short { need: used })
                );
            }
            Some(used)
        }
        Err(WireError::Short { need }) => {
            assert!(need > buf.len(), "Short {{ need: {need} }} for {} bytes", buf.len());
            None
        }
        Err(_) => None,
    }
}

fuzz_target!(|data: &[u8]| {
    // The raw input as one frame, then as a stream of frames.
    let first = check(data);
    let mut rest = data;
    let mut frames = 0usize;
    while let Some(used) = check(rest) {
        rest = &rest[used..];
        frames += 1;
        assert!(frames <= data.len() / HEADER_LEN + 1);
    }
    // One-byte corruption of a decoded frame, at a position and with a bit
    // pattern taken from the input's last two bytes. With the lengths
    // unchanged, CRC-32C detects every single-byte error, so the frame must
    // be rejected; a changed length field may only give another
    // self-consistent frame (checked) or an error.
    if let (Some(used), [.., pos, xor]) = (first, data) {
        let mut copy = data[..used].to_vec();
        let i = usize::from(*pos) * used / 256;
        copy[i] ^= if *xor == 0 { 1 } else { *xor };
        let length_field = (6..8).contains(&i) || (32..36).contains(&i);
        if check(&copy).is_some() {
            assert!(length_field, "a corrupted byte at {i} was accepted");
        }
    }
});

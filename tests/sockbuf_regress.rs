//! Regression tests for the Socket Buffer's edge cases: wrap at `u64::MAX`,
//! FIN conflicts, window rejection, the hole cap (smoltcp #452), refused
//! shrinks, datagram eviction and rejections.

use userspacesock::sockbuf::{
    dgram_charge, DgramBuf, DgramMeta, SbError, StreamBuf, DGRAM_HEADER, MAX_ADDR_LEN,
};

fn read_all(sb: &StreamBuf) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 7];
    loop {
        let n = sb.read(&mut buf);
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn stream_in_order_basic() {
    let sb = StreamBuf::new(100, 16);
    assert_eq!(sb.insert(100, b"hello"), Ok(5));
    assert_eq!(sb.readable(), 5);
    let mut b = [0u8; 3];
    assert_eq!(sb.peek(&mut b), 3);
    assert_eq!(&b, b"hel");
    assert_eq!(sb.read(&mut b), 3);
    assert_eq!(&b, b"hel");
    assert_eq!(sb.read_offset(), 103);
    assert_eq!(sb.window_end(), 119);
    assert_eq!(read_all(&sb), b"lo");
    assert_eq!(sb.read(&mut b), 0);
    assert!(!sb.at_eof());
    let st = sb.stats();
    assert_eq!(st.bytes_in, 5);
    assert_eq!(st.bytes_read, 5);
}

#[test]
fn stream_wraps_at_u64_max() {
    let start = u64::MAX - 5;
    let sb = StreamBuf::new(start, 8);
    let data: Vec<u8> = (0u8..40).collect();
    let mut off = start;
    let mut got = Vec::new();
    // Out of order across the wrap: second half first.
    for chunk in data.chunks(6) {
        let o2 = off.wrapping_add(3);
        assert_eq!(sb.insert(o2, &chunk[3.min(chunk.len())..]).unwrap_or(0), 0);
        let n = sb.insert(off, chunk).unwrap();
        assert_eq!(n, chunk.len());
        assert!(!sb.has_hole());
        got.extend(read_all(&sb));
        off = off.wrapping_add(chunk.len() as u64);
    }
    assert_eq!(got, data);
    assert_eq!(sb.read_offset(), start.wrapping_add(40));
    assert!(sb.read_offset() < start, "crossed the wrap");
    // A duplicate from before the wrap is ignored.
    assert_eq!(sb.insert(u64::MAX - 1, b"zz"), Ok(0));
    assert!(sb.stats().duplicate_fragments >= 1);
}

#[test]
fn stream_fin_across_wrap_and_eof() {
    let start = u64::MAX - 2;
    let sb = StreamBuf::new(start, 16);
    let fin = start.wrapping_add(6);
    assert_eq!(sb.insert_fin(fin), Ok(()));
    assert!(sb.fin_received());
    assert!(!sb.at_eof());
    assert_eq!(sb.insert(start.wrapping_add(3), b"def"), Ok(0));
    assert!(sb.has_hole());
    assert_eq!(sb.insert(start, b"abc"), Ok(6));
    assert_eq!(read_all(&sb), b"abcdef");
    assert!(sb.at_eof());
}

#[test]
fn stream_fin_conflicts() {
    let sb = StreamBuf::new(0, 32);
    assert_eq!(sb.insert(0, b"0123456789"), Ok(10));
    // FIN below buffered data.
    assert_eq!(sb.insert_fin(5), Err(SbError::DataBeyondFin));
    // FIN below out-of-order data.
    assert_eq!(sb.insert(20, b"xx"), Ok(0));
    assert_eq!(sb.insert_fin(15), Err(SbError::DataBeyondFin));
    assert_eq!(sb.insert_fin(22), Ok(()));
    assert_eq!(sb.insert_fin(22), Ok(()), "idempotent");
    assert_eq!(sb.insert_fin(23), Err(SbError::ConflictingFin));
    assert_eq!(sb.insert_fin(21), Err(SbError::ConflictingFin));
    // Data beyond the FIN, even partly.
    assert_eq!(sb.insert(21, b"ab"), Err(SbError::DataBeyondFin));
    assert_eq!(sb.insert(22, b"a"), Err(SbError::DataBeyondFin));
    let st = sb.stats();
    assert_eq!(st.rejected_for(SbError::DataBeyondFin), 4);
    assert_eq!(st.rejected_for(SbError::ConflictingFin), 2);
    assert_eq!(st.rejected_total(), 6);
    // Buffered data intact.
    assert_eq!(sb.insert(10, b"abcdefghij"), Ok(12));
    assert_eq!(read_all(&sb), b"0123456789abcdefghijxx");
    assert!(sb.at_eof());
}

#[test]
fn stream_fin_after_read_and_window() {
    let sb = StreamBuf::new(0, 4);
    assert_eq!(sb.insert(0, b"abcd"), Ok(4));
    assert_eq!(read_all(&sb), b"abcd");
    assert_eq!(
        sb.insert_fin(3),
        Err(SbError::DataBeyondFin),
        "below the read offset"
    );
    assert_eq!(sb.insert_fin(9), Err(SbError::BeyondWindow));
    assert_eq!(sb.insert_fin(4), Ok(()));
    assert!(sb.at_eof());
}

#[test]
fn stream_window_rejection_is_whole() {
    let sb = StreamBuf::new(10, 8);
    assert_eq!(sb.window_end(), 18);
    assert_eq!(sb.insert(14, b"abcde"), Err(SbError::BeyondWindow));
    assert_eq!(sb.insert(18, b"a"), Err(SbError::BeyondWindow));
    assert_eq!(sb.insert(u64::MAX / 2, b"a"), Err(SbError::BeyondWindow));
    assert_eq!(sb.readable(), 0);
    assert!(!sb.has_hole(), "nothing of the refused fragment stored");
    assert_eq!(sb.insert(14, b"abcd"), Ok(0));
    assert_eq!(sb.insert(10, b"0123"), Ok(8));
    // Partly below the read edge and still within the window: accepted.
    let mut b = [0u8; 4];
    assert_eq!(sb.read(&mut b), 4);
    // Read offset 14, window end 22: 12..23 reaches beyond, refused whole.
    assert_eq!(sb.insert(12, b"23abcdXYZWV"), Err(SbError::BeyondWindow));
    assert_eq!(sb.readable(), 4);
    // Partly below the read edge and within the window: accepted.
    assert_eq!(sb.insert(12, b"23abcdXYZW"), Ok(4));
    assert_eq!(read_all(&sb), b"abcdXYZW");
    assert_eq!(sb.stats().rejected_for(SbError::BeyondWindow), 4);
    assert_eq!(sb.insert(22, b""), Err(SbError::ZeroLength));
}

#[test]
fn stream_zero_capacity_refuses_everything() {
    let sb = StreamBuf::new(0, 0);
    assert_eq!(sb.insert(0, b"a"), Err(SbError::BeyondWindow));
    assert_eq!(sb.insert_fin(0), Ok(()));
    assert!(sb.at_eof());
}

/// smoltcp issue #452: a fragment at the read edge must never be refused
/// for lack of hole slots, or the connection stalls for good.
#[test]
fn stream_hole_cap_never_refuses_edge_smoltcp_452() {
    let sb = StreamBuf::with_max_holes(0, 100, 3);
    assert_eq!(sb.insert(10, b"a"), Ok(0));
    assert_eq!(sb.insert(20, b"b"), Ok(0));
    assert_eq!(sb.insert(30, b"c"), Ok(0));
    // A fourth distinct hole is refused, state untouched.
    assert_eq!(sb.insert(40, b"d"), Err(SbError::TooManyHoles));
    assert_eq!(sb.stats().rejected_for(SbError::TooManyHoles), 1);
    // Extending or bridging existing segments is fine.
    assert_eq!(sb.insert(11, b"aa"), Ok(0));
    assert_eq!(sb.insert(13, &[b'x'; 7]), Ok(0)); // joins 10..13 with 20
                                                  // At the edge: always accepted.
    assert_eq!(sb.insert(0, b"0"), Ok(1));
    // Starting below the edge (duplicate head) and reaching a hole: accepted.
    assert_eq!(sb.insert(0, b"0123456789"), Ok(21 - 1));
    assert!(sb.has_hole());
    assert_eq!(sb.insert(40, b"d"), Ok(0));
    assert_eq!(sb.readable(), 21);
}

#[test]
fn stream_first_copy_wins() {
    let sb = StreamBuf::new(0, 32);
    assert_eq!(sb.insert(4, b"AAAA"), Ok(0));
    assert_eq!(sb.insert(2, b"bbbbbbbb"), Ok(0)); // overlaps, fills 2..4 and 8..10
    assert_eq!(sb.insert(0, b"cccccccccccc"), Ok(12));
    assert_eq!(read_all(&sb), b"ccbbAAAAbbcc");
    let st = sb.stats();
    assert_eq!(st.bytes_in, 12);
    assert_eq!(st.duplicate_bytes, 4 + 8 + 12 - 12);
}

#[test]
fn stream_shrink_refused_below_buffered() {
    let sb = StreamBuf::new(0, 64);
    assert_eq!(sb.insert(0, b"0123"), Ok(4));
    assert_eq!(sb.insert(30, b"xy"), Ok(0));
    assert_eq!(sb.set_capacity(31), Err(SbError::ShrinkBelowBuffered));
    assert_eq!(sb.capacity(), 64);
    assert_eq!(sb.stats().rejected_for(SbError::ShrinkBelowBuffered), 1);
    assert_eq!(sb.set_capacity(32), Ok(()));
    assert_eq!(sb.window_end(), 32);
    assert_eq!(sb.insert(4, &[b'.'; 26]), Ok(28));
    let mut b = [0u8; 5];
    assert_eq!(sb.read(&mut b), 5);
    // Grow, with data buffered across the ring's end.
    assert_eq!(sb.set_capacity(40), Ok(()));
    assert_eq!(sb.insert(32, b"0123456789ab"), Ok(12));
    let mut all = b.to_vec();
    all.extend(read_all(&sb));
    let mut want = b"0123".to_vec();
    want.extend([b'.'; 26]);
    want.extend(b"xy0123456789ab");
    assert_eq!(all, want);
    // Empty: shrink to zero is fine, and growing again allocates anew.
    assert_eq!(sb.set_capacity(0), Ok(()));
    assert_eq!(sb.insert(44, b"a"), Err(SbError::BeyondWindow));
    assert_eq!(sb.set_capacity(3), Ok(()));
    assert_eq!(sb.insert(44, b"abc"), Ok(3));
    assert_eq!(read_all(&sb), b"abc");
    assert_eq!(sb.set_capacity(usize::MAX), Err(SbError::Oversized));
}

#[test]
fn stream_far_offsets_are_duplicates_or_beyond() {
    let sb = StreamBuf::new(1000, 16);
    // Behind the read offset by less than 2^63: a duplicate.
    assert_eq!(sb.insert(0, b"abc"), Ok(0));
    assert_eq!(sb.insert(998, b"abc"), Ok(1));
    // u64::MAX is 1001 bytes *behind* 1000 (serial arithmetic).
    assert_eq!(sb.insert(u64::MAX, &[1u8; 16]), Ok(0));
    assert_eq!(
        sb.insert(1000 + (1 << 62), &[1u8; 16]),
        Err(SbError::BeyondWindow)
    );
    assert_eq!(sb.insert(999, &[1u8; 18]), Err(SbError::BeyondWindow));
    assert_eq!(sb.insert(u64::MAX - 20, &[1u8; 16]), Ok(0));
    assert_eq!(read_all(&sb), b"c");
}

// ---------------------------------------------------------------- datagrams

fn dread(d: &DgramBuf, cap: usize) -> Option<(Vec<u8>, Vec<u8>, DgramMeta)> {
    let mut b = vec![0u8; cap];
    let mut a = vec![0u8; MAX_ADDR_LEN];
    let m = d.read(&mut b, &mut a)?;
    b.truncate(m.copied);
    a.truncate(m.src_len.min(MAX_ADDR_LEN));
    Some((b, a, m))
}

#[test]
fn dgram_whole_and_fragmented_completion_order() {
    let d = DgramBuf::new(1024, 4);
    assert_eq!(d.insert(7, 3, 6, b"def", b"A"), Ok(false));
    assert_eq!(d.insert(9, 0, 2, b"hi", b"B"), Ok(true));
    assert_eq!(d.pending(), 1);
    assert_eq!(d.insert(7, 0, 6, b"abc", b"A"), Ok(true));
    assert_eq!(d.next_len(), Some(2));
    assert_eq!(dread(&d, 64).unwrap().0, b"hi");
    let (p, a, m) = dread(&d, 64).unwrap();
    assert_eq!((p.as_slice(), a.as_slice()), (&b"abcdef"[..], &b"A"[..]));
    assert_eq!(
        m,
        DgramMeta {
            len: 6,
            copied: 6,
            src_len: 1,
            stamp: 0
        }
    );
    assert!(dread(&d, 64).is_none());
    assert_eq!(d.next_len(), None);
}

#[test]
fn dgram_receive_time_is_the_completing_fragments() {
    let d = DgramBuf::new(1024, 4);
    assert_eq!(d.insert_stamped(1, 0, 4, b"ab", b"A", 10), Ok(false));
    assert_eq!(d.insert_stamped(2, 0, 1, b"x", b"B", 20), Ok(true));
    assert_eq!(d.insert_stamped(1, 2, 4, b"cd", b"A", 30), Ok(true));
    assert_eq!(d.insert(3, 0, 1, b"y", b"C"), Ok(true));
    let stamps: Vec<u64> = (0..3)
        .map(|_| d.read(&mut [0u8; 8], &mut []).unwrap().stamp)
        .collect();
    assert_eq!(stamps, [20, 30, 0]);
}

#[test]
fn dgram_truncation_and_peek() {
    let d = DgramBuf::new(1024, 4);
    assert_eq!(d.insert(1, 0, 5, b"hello", b"source-address"), Ok(true));
    let mut b = [0u8; 3];
    let mut a = [0u8; 4];
    let m = d.peek(&mut b, &mut a).unwrap();
    assert_eq!(
        m,
        DgramMeta {
            len: 5,
            copied: 3,
            src_len: 14,
            stamp: 0
        }
    );
    assert_eq!(&b, b"hel");
    assert_eq!(&a, b"sour");
    assert_eq!(d.pending(), 1);
    let m = d.read(&mut b, &mut []).unwrap();
    assert_eq!(
        m,
        DgramMeta {
            len: 5,
            copied: 3,
            src_len: 14,
            stamp: 0
        }
    );
    assert_eq!(d.pending(), 0);
    assert_eq!(d.stats().truncated_reads, 1);
}

#[test]
fn dgram_zero_length() {
    let d = DgramBuf::new(64, 2);
    assert_eq!(d.insert(1, 0, 0, b"", b"x"), Ok(true));
    assert_eq!(d.next_len(), Some(0));
    let (p, a, m) = dread(&d, 8).unwrap();
    assert!(p.is_empty());
    assert_eq!(a, b"x");
    assert_eq!(m.len, 0);
    assert_eq!(d.insert(2, 0, 3, b"", b"x"), Err(SbError::ZeroLength));
    assert_eq!(d.insert(2, 1, 0, b"", b"x"), Err(SbError::OutsideDatagram));
}

#[test]
fn dgram_rejections_leave_state_intact() {
    let d = DgramBuf::new(100, 2);
    assert_eq!(d.insert(1, 0, 10, b"01234", b"s"), Ok(false));
    assert_eq!(
        d.insert(1, 5, 11, b"56789", b"s"),
        Err(SbError::ConflictingLength)
    );
    assert_eq!(
        d.insert(1, 8, 10, b"abc", b"s"),
        Err(SbError::OutsideDatagram)
    );
    assert_eq!(
        d.insert(1, u32::MAX, 10, b"a", b"s"),
        Err(SbError::OutsideDatagram)
    );
    assert_eq!(
        d.insert(1, 5, 10, b"5", &[0u8; MAX_ADDR_LEN + 1]),
        Err(SbError::AddrTooLong)
    );
    assert_eq!(d.insert(2, 0, 200, b"a", b"s"), Err(SbError::Oversized));
    assert_eq!(d.insert(1, 5, 10, b"56789", b"s"), Ok(true));
    assert_eq!(dread(&d, 64).unwrap().0, b"0123456789");
    let st = d.stats();
    assert_eq!(st.rejected_total(), 5);
    assert_eq!(st.rejected_for(SbError::Oversized), 1);
}

#[test]
fn dgram_source_is_part_of_the_key() {
    let d = DgramBuf::new(1000, 4);
    assert_eq!(d.insert(5, 0, 4, b"ab", b"A"), Ok(false));
    assert_eq!(d.insert(5, 2, 4, b"XY", b"B"), Ok(false));
    assert_eq!(d.insert(5, 2, 4, b"cd", b"A"), Ok(true));
    assert_eq!(dread(&d, 9).unwrap().0, b"abcd");
    assert_eq!(d.partials(), 1);
}

#[test]
fn dgram_evicts_oldest_partial_for_room_and_count() {
    let c = dgram_charge(10, 1) as usize; // 27
    let d = DgramBuf::new(3 * c, 2);
    assert_eq!(d.insert(1, 0, 10, b"a", b"s"), Ok(false));
    assert_eq!(d.insert(2, 0, 10, b"b", b"s"), Ok(false));
    // A third partial: over the partial cap, the oldest (1) goes.
    assert_eq!(d.insert(3, 0, 10, b"c", b"s"), Ok(false));
    assert_eq!(d.stats().evicted_partials, 1);
    assert_eq!(d.partials(), 2);
    // A whole datagram of 2 charges: room only after evicting 2 (oldest).
    assert_eq!(
        d.insert(4, 0, 10 + c as u32, &vec![b'w'; 10 + c], b"s"),
        Ok(true)
    );
    assert_eq!(d.stats().evicted_partials, 2);
    assert_eq!(d.stats().evicted_bytes, 2 * c as u64);
    // Partial 3 survived; 1 is gone (a late fragment starts afresh).
    assert_eq!(d.insert(3, 1, 10, b"123456789", b"s"), Ok(true));
    assert_eq!(dread(&d, 64).unwrap().0.len(), 10 + c);
    assert_eq!(dread(&d, 64).unwrap().0, b"c123456789");
}

#[test]
fn dgram_no_room_evicts_nothing() {
    let c = dgram_charge(10, 0) as usize;
    let d = DgramBuf::new(2 * c, 4);
    assert_eq!(d.insert(1, 0, 10, &[1; 10], b""), Ok(true));
    assert_eq!(d.insert(2, 0, 10, &[2; 3], b""), Ok(false));
    // Needs c + 1 bytes; evicting partial 2 would still leave only c.
    assert_eq!(d.insert(3, 0, 11, &[3; 11], b""), Err(SbError::NoRoom));
    assert_eq!(d.stats().evicted_partials, 0);
    assert_eq!(d.insert(2, 3, 10, &[2; 7], b""), Ok(true));
    assert_eq!(dread(&d, 64).unwrap().0, vec![1; 10]);
    assert_eq!(dread(&d, 64).unwrap().0, vec![2; 10]);
    assert_eq!(d.insert(3, 0, 10, &[3; 10], b""), Ok(true));
}

#[test]
fn dgram_too_many_partials_when_cap_is_zero() {
    let d = DgramBuf::new(100, 0);
    assert_eq!(d.insert(1, 0, 4, b"ab", b""), Err(SbError::TooManyPartials));
    assert_eq!(d.insert(1, 0, 2, b"ab", b""), Ok(true));
}

#[test]
fn dgram_hole_cap_never_refuses_edge() {
    let d = DgramBuf::with_max_holes(1000, 2, 2);
    assert_eq!(d.insert(1, 2, 20, b"a", b""), Ok(false));
    assert_eq!(d.insert(1, 4, 20, b"b", b""), Ok(false));
    assert_eq!(d.insert(1, 6, 20, b"c", b""), Err(SbError::TooManyHoles));
    assert_eq!(d.insert(1, 0, 20, b"xx", b""), Ok(false));
    assert_eq!(d.insert(1, 6, 20, b"c", b""), Ok(false));
}

#[test]
fn dgram_records_wrap_and_resize() {
    let d = DgramBuf::new(3 * (DGRAM_HEADER + 2 + 7), 1);
    for round in 0..50u8 {
        let p = [round; 7];
        assert_eq!(d.insert(round as u64, 0, 7, &p, b"ab"), Ok(true));
        if round % 3 == 2 {
            assert_eq!(
                d.set_capacity(4 * (DGRAM_HEADER + 2 + 7) + round as usize),
                Ok(())
            );
        }
        let (got, a, _) = dread(&d, 7).unwrap();
        assert_eq!((got, a), (p.to_vec(), b"ab".to_vec()));
    }
    assert_eq!(d.insert(100, 0, 7, &[1; 7], b"ab"), Ok(true));
    assert_eq!(
        d.set_capacity(DGRAM_HEADER + 2),
        Err(SbError::ShrinkBelowBuffered)
    );
    assert_eq!(d.set_capacity(DGRAM_HEADER + 2 + 7), Ok(()));
    assert_eq!(dread(&d, 7).unwrap().0, vec![1; 7]);
}

/// Found by `cargo fuzz run dgram`: resizing to exactly the bytes in the
/// ring left the write position one past the end of the new ring, so the
/// next record's header was not written (a debug assertion fired; release
/// builds would have returned a garbled datagram).
#[test]
fn resize_to_exactly_full_keeps_positions_in_range() {
    let c = dgram_charge(20, 0) as usize;
    let d = DgramBuf::new(4 * c, 1);
    assert_eq!(d.insert(1, 0, 20, &[1; 20], b""), Ok(true));
    assert_eq!(d.set_capacity(c), Ok(()));
    assert_eq!(dread(&d, 64).unwrap().0, vec![1; 20]);
    assert_eq!(d.insert(2, 0, 20, &[2; 20], b""), Ok(true));
    assert_eq!(dread(&d, 64).unwrap().0, vec![2; 20]);

    let sb = StreamBuf::new(0, 16);
    assert_eq!(sb.insert(0, &[7; 10]), Ok(10));
    assert_eq!(sb.set_capacity(10), Ok(()));
    let mut b = [0u8; 4];
    assert_eq!(sb.read(&mut b), 4);
    assert_eq!(sb.insert(10, b"abcd"), Ok(4));
    let mut all = b.to_vec();
    all.extend(read_all(&sb));
    assert_eq!(all, b"\x07\x07\x07\x07\x07\x07\x07\x07\x07\x07abcd");
}

/// SO_PEEK_OFF's peeks: from an offset past the read position, nothing
/// consumed; past the end, nothing copied.
#[test]
fn peek_at_an_offset() {
    let sb = StreamBuf::new(0, 64);
    assert_eq!(sb.insert(0, b"abcdefgh"), Ok(8));
    let mut b = [0u8; 3];
    assert_eq!(sb.peek_at(2, &mut b), 3);
    assert_eq!(&b, b"cde");
    assert_eq!(sb.peek_at(7, &mut b), 1);
    assert_eq!(b[0], b'h');
    assert_eq!(sb.peek_at(8, &mut b), 0);
    assert_eq!(sb.peek_at(100, &mut b), 0);
    assert_eq!(sb.readable(), 8);

    let d = DgramBuf::new(1024, 1);
    assert_eq!(d.insert(1, 0, 6, b"012345", b"A"), Ok(true));
    let mut b = [0u8; 4];
    let m = d.peek_at(4, &mut b, &mut []).unwrap();
    assert_eq!((m.len, m.copied, &b[..2]), (6, 2, &b"45"[..]));
    let m = d.peek_at(9, &mut b, &mut []).unwrap();
    assert_eq!((m.len, m.copied), (6, 0));
    assert_eq!(d.pending(), 1);
}

/// A stream started anew (TCP's connect(AF_UNSPEC), then connect()):
/// buffered and out-of-order bytes, the FIN and the counters go; the window
/// stays; the new stream reads from its own start.
#[test]
fn stream_restart_forgets_the_old_stream() {
    let sb = StreamBuf::new(0, 16);
    assert_eq!(sb.insert(0, b"old"), Ok(3));
    assert_eq!(sb.insert(8, b"late"), Ok(0));
    sb.insert_fin(12).unwrap();
    let mut b = [0u8; 1];
    assert_eq!(sb.read(&mut b), 1);
    sb.restart(0);
    assert_eq!(sb.read_offset(), 0);
    assert_eq!(sb.readable(), 0);
    assert!(!sb.has_hole());
    assert!(!sb.fin_received());
    assert!(!sb.at_eof());
    assert_eq!(sb.window_end(), 16);
    assert_eq!(sb.stats().bytes_in, 0);
    assert_eq!(sb.insert(3, b"def"), Ok(0));
    assert_eq!(sb.insert(0, b"abc"), Ok(6));
    assert_eq!(read_all(&sb), b"abcdef");
    // Past the old FIN's offset too.
    assert_eq!(sb.insert(6, b"0123456789"), Ok(10));
    assert_eq!(read_all(&sb), b"0123456789");
}

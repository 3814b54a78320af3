#!/usr/bin/env python3
"""pcap_read.py FILE PORT: reads a LINKTYPE_RAW pcap written by USOCK_PCAP
and prints, for the TCP connection to PORT, one line per direction
(`c2s SHA256 BYTES` and `s2c ...`: the payload reassembled by sequence
number, each byte once), then `flags`: the flags of every packet without
payload in file order (the handshake's S, S. and ., each side's F.), and for UDP to PORT
`udp SHA256 BYTES COUNT` over the datagrams in order. Checks the IPv4
header checksums; a bad one or a gap in a stream is an error (exit 1)."""
import hashlib, struct, sys


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def main():
    path, port = sys.argv[1], int(sys.argv[2])
    data = open(path, "rb").read()
    magic, vmaj, vmin, _, _, snap, link = struct.unpack("<IHHiIII", data[:24])
    assert magic == 0xA1B2C3D4 and (vmaj, vmin) == (2, 4) and link == 101, "not a raw pcap"
    off = 24
    segs = {"c2s": {}, "s2c": {}}
    isn = {}
    flags = []
    udp = []
    while off < len(data):
        _, _, incl, orig = struct.unpack("<IIII", data[off:off + 16])
        pkt = data[off + 16:off + 16 + incl]
        off += 16 + incl
        assert incl == orig == len(pkt), "truncated record"
        if pkt[0] >> 4 == 4:
            ihl = (pkt[0] & 15) * 4
            assert csum(pkt[:ihl]) == 0, "bad IPv4 header checksum"
            proto, l4 = pkt[9], pkt[ihl:]
        else:
            proto, l4 = pkt[6], pkt[40:]
        sport, dport = struct.unpack("!HH", l4[:4])
        if proto == 17 and dport == port:
            udp.append(l4[8:])
        if proto != 6 or port not in (sport, dport):
            continue
        seq, _ack, hl, fl = struct.unpack("!IIBB", l4[4:14])
        payload = l4[(hl >> 4) * 4:]
        d = "c2s" if dport == port else "s2c"
        f = "".join(c for c, bit in (("S", 2), ("F", 1), ("R", 4)) if fl & bit)
        if fl & 0x10:
            f += "."
        if fl & 2:
            isn[d] = seq
        if not payload:
            flags.append("%s:%s" % (d, f))
        if payload:
            segs[d][(seq - isn[d] - 1) % 2**32] = payload
    for d in ("c2s", "s2c"):
        out, pos = b"", 0
        for at in sorted(segs[d]):
            p = segs[d][at]
            if at > pos:
                print("gap in %s at %d" % (d, pos))
                sys.exit(1)
            out += p[pos - at:]
            pos = max(pos, at + len(p))
        print(d, hashlib.sha256(out).hexdigest(), len(out))
    print("flags", " ".join(flags))
    joined = b"".join(udp)
    print("udp", hashlib.sha256(joined).hexdigest(), len(joined), len(udp))


main()

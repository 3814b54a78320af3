#!/usr/bin/env python3
"""tests/engine/dns_query.py [--sendto] NAME: asks the first nameserver of
/etc/resolv.conf for NAME's A records over UDP with the socket API, as a
resolver of a program's own does (dig, c-ares, Go's): under the launcher
these sockets are the library's, so the query goes where its rules send
it (over the engine with USOCK_NETIF). Prints one "A ADDR" line per
answer; exit 1 without one. --sendto: an unconnected socket (sendto,
recvfrom) rather than a connected one.
"""
import random
import socket
import struct
import sys


def nameserver():
    with open("/etc/resolv.conf") as f:
        for line in f:
            w = line.split()
            if len(w) >= 2 and w[0] == "nameserver":
                return w[1]
    sys.exit("no nameserver in /etc/resolv.conf")


def query(name, qid):
    q = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\0" + struct.pack("!HH", 1, 1)


def skip_name(m, i):
    while True:
        n = m[i]
        if n == 0:
            return i + 1
        if n & 0xC0 == 0xC0:
            return i + 2
        i += 1 + n


def answers(m, qid):
    rid, flags, qd, an = struct.unpack("!HHHH", m[:8])
    if rid != qid or not flags & 0x8000:
        return None
    if flags & 0xF:
        sys.exit("the server answered rcode %d" % (flags & 0xF))
    i = 12
    for _ in range(qd):
        i = skip_name(m, i) + 4
    out = []
    for _ in range(an):
        i = skip_name(m, i)
        ty, _cls, _ttl, ln = struct.unpack("!HHIH", m[i:i + 10])
        i += 10
        if ty == 1 and ln == 4:
            out.append(socket.inet_ntoa(m[i:i + 4]))
        i += ln
    return out


def main():
    unconnected = sys.argv[1] == "--sendto"
    name = sys.argv[-1]
    ns = nameserver()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if not unconnected:
        s.connect((ns, 53))
    s.settimeout(2)
    qid = random.randrange(1, 65536)
    for _ in range(3):
        if unconnected:
            s.sendto(query(name, qid), (ns, 53))
        else:
            s.send(query(name, qid))
        try:
            while True:
                m, src = s.recvfrom(4096)
                if src != (ns, 53):
                    continue
                got = answers(m, qid)
                if got is not None:
                    break
        except socket.timeout:
            continue
        for a in got:
            print("A %s" % a)
        sys.exit(0 if got else 1)
    sys.exit("no answer from %s" % ns)


main()

#!/usr/bin/env python3
"""UDP both ways, checksummed (tests/engine, issue 17).

  udp_echo.py server ADDR PORT       echo every datagram back to its sender;
                                     prints "ready" once bound; on the
                                     client's END answers with the count and
                                     sha256 of the distinct datagrams it got
                                     (in sequence order), then exits
  udp_echo.py client ADDR PORT N     N datagrams (8-byte sequence number, then
                                     1..MAXLEN pseudo-random bytes), one at a
                                     time, each resent up to 5 times after
                                     0.5 s without its echo; every echo is
                                     compared in full; then END, and the
                                     server's count and sha256 must be the
                                     client's. Prints one result line:
                                     "udp OK n=N resent=R sha256=..."; exit 1
                                     on any mismatch or a datagram lost 6 times

The first datagram may be resent: an engine that drops the packet that
started neighbour resolution (ARP/NDP) loses it. Resends are counted and
shown, never hidden.
"""
import hashlib
import random
import re
import signal
import socket
import struct
import sys


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def server(addr, port):
    # SIGTERM (the harness stopping a server whose client failed) ends it
    # by a normal exit, so that the library still writes USOCK_STATS
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    s = socket.socket(family(addr), socket.SOCK_DGRAM)
    s.bind((addr, port))
    print("ready", flush=True)
    got = {}
    s.settimeout(120)
    while True:
        data, peer = s.recvfrom(65535)
        if data.startswith(b"END"):
            h = hashlib.sha256()
            for k in sorted(got):
                h.update(got[k])
            reply = ("%d %s" % (len(got), h.hexdigest())).encode()
            s.sendto(reply, peer)
            # the reply may be lost like any datagram: answer resent ENDs
            s.settimeout(2)
            try:
                while True:
                    data, peer = s.recvfrom(65535)
                    if data.startswith(b"END"):
                        s.sendto(reply, peer)
            except socket.timeout:
                pass
            print("server: %d datagrams, sha256 %s" % (len(got), h.hexdigest()), flush=True)
            return 0
        if len(data) >= 8:
            got.setdefault(struct.unpack("!Q", data[:8])[0], data)
        s.sendto(data, peer)


def client(addr, port, n):
    maxlen = 1400 if family(addr) == socket.AF_INET else 1380
    rnd = random.Random(17)
    s = socket.socket(family(addr), socket.SOCK_DGRAM)
    s.connect((addr, port))
    s.settimeout(0.5)
    h = hashlib.sha256()
    resent = 0
    for seq in range(n):
        size = 1 + (seq * 7919) % maxlen
        msg = struct.pack("!Q", seq) + bytes(rnd.getrandbits(8) for _ in range(size))
        h.update(msg)
        for attempt in range(6):
            s.send(msg)
            try:
                while True:
                    echo = s.recv(65535)
                    if echo[:8] == msg[:8]:
                        break  # an older echo (a resend's) is skipped
            except socket.timeout:
                resent += 1
                continue
            if echo != msg:
                print("udp FAIL: echo of datagram %d differs (%d bytes, sent %d)" % (seq, len(echo), len(msg)))
                return 1
            break
        else:
            print("udp FAIL: datagram %d of %d lost 6 times" % (seq, n))
            return 1
    want = "%d %s" % (n, h.hexdigest())
    for attempt in range(6):
        s.send(b"END")
        try:
            while True:  # late echoes of resent datagrams are skipped
                reply = s.recv(65535).decode(errors="replace")
                if re.fullmatch(r"[0-9]+ [0-9a-f]{64}", reply):
                    break
        except socket.timeout:
            continue
        if reply != want:
            print("udp FAIL: the server got [%s], the client sent [%s]" % (reply, want))
            return 1
        print("udp OK n=%d resent=%d sha256=%s" % (n, resent, h.hexdigest()))
        return 0
    print("udp FAIL: no answer to END")
    return 1


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "server":
        sys.exit(server(sys.argv[2], int(sys.argv[3])))
    if len(sys.argv) == 5 and sys.argv[1] == "client":
        sys.exit(client(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
    sys.exit(__doc__)

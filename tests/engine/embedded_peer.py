#!/usr/bin/env python3
"""The kernel's side of tests/engine/embedded.sh, on the kernel's sockets
in the namespace of the TAP device that c-tests/embedded_netif_host.c
drives:

  - TCP 7001 (10.78.0.1 and fd78::1): reads until the client's FIN, then sends every byte back and
    closes (one thread per connection);
  - UDP 7003: echoes each datagram to its sender;
  - with --client ADDR: connects to ADDR:7002 (the C host's server, retried
    until it listens), sends 1 MiB of random bytes, reads as many back,
    closes and compares SHA-256; exits 0 only if they match.

Prints "ready" once its servers listen. Without --client it serves until
killed.
"""
import hashlib
import os
import socket
import sys
import threading
import time


def serve_tcp(ls):
    while True:
        c, _ = ls.accept()
        threading.Thread(target=sink_then_source, args=(c,), daemon=True).start()


def sink_then_source(c):
    with c:
        buf = bytearray()
        while True:
            b = c.recv(65536)
            if not b:
                break
            buf += b
        c.sendall(buf)


def serve_udp(us):
    while True:
        m, a = us.recvfrom(65536)
        us.sendto(m, a)


def client(addr):
    data = os.urandom(1 << 20)
    end = time.monotonic() + 60
    while True:
        c = socket.socket()
        try:
            c.connect((addr, 7002))
            break
        except OSError:
            c.close()
            if time.monotonic() > end:
                print("client: the C host's server never listened")
                return False
            time.sleep(0.1)
    with c:
        # No FIN of ours until every byte is back: the C host's server
        # waits for our close, which says we have them all.
        t = threading.Thread(target=c.sendall, args=(data,))
        t.start()
        got = bytearray()
        while len(got) < len(data):
            b = c.recv(65536)
            if not b:
                break
            got += b
        t.join()
    same = hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    print("client: sent %d, got back %d, sha256 %s" % (len(data), len(got), "equal" if same else "DIFFERENT"))
    return same and len(got) == len(data)


def main():
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("10.78.0.1", 7001))
    ls.listen(16)
    ls6 = socket.socket(socket.AF_INET6)
    ls6.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls6.bind(("fd78::1", 7001))
    ls6.listen(16)
    threading.Thread(target=serve_tcp, args=(ls6,), daemon=True).start()
    us = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    us.bind(("10.78.0.1", 7003))
    threading.Thread(target=serve_tcp, args=(ls,), daemon=True).start()
    threading.Thread(target=serve_udp, args=(us,), daemon=True).start()
    print("ready", flush=True)
    if len(sys.argv) == 3 and sys.argv[1] == "--client":
        ok = client(sys.argv[2])
        sys.stdout.flush()
        sys.exit(0 if ok else 1)
    while True:
        time.sleep(3600)


main()

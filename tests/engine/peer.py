#!/usr/bin/env python3
"""One end of an engine test (tests/engine/run.sh): the same program runs
on the kernel's sockets and on the library's (preloaded), so either side
can be either.

  peer.py tcp-server ADDR PORT        accept one connection, read to EOF,
                                      send as many bytes back, close
                                      (PEER_SLOW set: read only after 2 s)
  peer.py tcp-client ADDR PORT BYTES  connect, send BYTES, SHUT_WR, read
                                      to EOF
  peer.py tcp-echo-server ADDR PORT N
                                      echo what comes back on N connections
                                      in turn; "reset" for one that ended
                                      with a reset
  peer.py greet-server ADDR PORT N    a server that speaks first (SMTP,
                                      SSH): a greeting on each of N
                                      connections, at once after accept
  peer.py greet-client ADDR PORT N    N connections, each waits for it
  peer.py burst-server ADDR PORT N    accept N connections at once (a
                                      thread each): 4 bytes in, 1000 times
                                      them out
  peer.py burst-client ADDR PORT N    N connections at once, each checked
  peer.py udp-server ADDR PORT COUNT  echo datagrams to their source, until
                                      COUNT different ones came
  peer.py udp-client ADDR PORT COUNT  send COUNT datagrams, one at a time,
                                      each until its echo comes
  peer.py udp-connected ADDR PORT     connect() a UDP socket (no bind) and
                                      say its name ("local A P": Linux
                                      gives the address the route picks),
                                      then one datagram and its echo
  peer.py refused ADDR PORT           connect to a closed port: blocking
                                      and non-blocking
  peer.py timeout ADDR PORT           connect to an address nobody has,
                                      with TCP_USER_TIMEOUT 2 s (set after
                                      a bind: the engine sees the options
                                      of a socket it carries)

Each prints what the shell compares: "sent SHA", "got SHA", the addresses
it saw ("local A P", "peer A P"), "ok ..." or "FAIL ...". A file
"ready" appears in $PEER_READY (when set) once a server listens.
"""
import errno
import hashlib
import os
import select
import socket
import sys
import threading
import time


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def ready():
    path = os.environ.get("PEER_READY")
    if path:
        open(path, "w").close()


def out(*words):
    print(*words, flush=True)


def pattern(n, seed):
    # Bytes that differ per run and per side, cheaply.
    h = hashlib.sha256(seed + os.urandom(16)).digest()
    block = (h * (65536 // len(h) + 1))[:65536]
    return (block * (n // len(block) + 1))[:n]


def stream_both_ways(s, send_first, nbytes):
    got = hashlib.sha256()
    sent = hashlib.sha256()
    total = 0
    if send_first:
        data = pattern(nbytes, b"client")
        s.sendall(data)
        sent.update(data)
        s.shutdown(socket.SHUT_WR)
    while True:
        b = s.recv(1 << 16)
        if not b:
            break
        got.update(b)
        total += len(b)
    if not send_first:
        data = pattern(total, b"server")
        s.sendall(data)
        sent.update(data)
    out("sent", sent.hexdigest())
    out("got", got.hexdigest(), total)


def wait_echo(s, want, port):
    while True:
        try:
            b, src = s.recvfrom(65536)
        except socket.timeout:
            return False
        if b == want and src[1] == port:
            return True


def main():
    mode, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    fam = family(addr)
    if mode == "tcp-server":
        ls = socket.socket(fam, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((addr, port))
        ls.listen(8)
        ready()
        c, peer = ls.accept()
        out("peer", peer[0], peer[1])
        out("local", *c.getsockname()[:2])
        if os.environ.get("PEER_SLOW"):
            # A reader that comes late: every window on the way fills.
            time.sleep(2)
        stream_both_ways(c, False, 0)
        c.close()
        ls.close()
    elif mode == "tcp-echo-server":
        ls = socket.socket(fam, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((addr, port))
        ls.listen(8)
        ready()
        for _ in range(int(sys.argv[4])):
            c, peer = ls.accept()
            total = 0
            try:
                while True:
                    b = c.recv(1 << 16)
                    if not b:
                        break
                    c.sendall(b)
                    total += len(b)
                out("eof", total)
            except ConnectionResetError:
                out("reset", total)
            c.close()
    elif mode == "tcp-client":
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(60)
        s.connect((addr, port))
        out("local", *s.getsockname()[:2])
        out("peer", *s.getpeername()[:2])
        stream_both_ways(s, True, int(sys.argv[4]))
        s.close()
    elif mode == "greet-server":
        ls = socket.socket(fam, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((addr, port))
        ls.listen(8)
        ready()
        for i in range(int(sys.argv[4])):
            c, _ = ls.accept()
            c.sendall(b"220 hello %d\r\n" % i)
            c.recv(100)
            c.close()
        out("ok greet-server")
    elif mode == "greet-client":
        good = 0
        for i in range(int(sys.argv[4])):
            s = socket.create_connection((addr, port), timeout=5)
            try:
                if s.recv(100) == b"220 hello %d\r\n" % i:
                    good += 1
            except socket.timeout:
                out("no greeting on connection", i)
            s.close()
        out("ok" if good == int(sys.argv[4]) else "FAIL", "greet-client", good)
    elif mode == "burst-server":
        ls = socket.socket(fam, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((addr, port))
        ls.listen(128)
        ready()

        def serve(c):
            c.settimeout(30)
            c.sendall(c.recv(4) * 1000)
            c.close()
        ts = []
        for _ in range(int(sys.argv[4])):
            c, _ = ls.accept()
            ts.append(threading.Thread(target=serve, args=(c,)))
            ts[-1].start()
        for t in ts:
            t.join()
        out("ok burst-server")
    elif mode == "burst-client":
        n = int(sys.argv[4])
        good = []

        def one(i):
            try:
                s = socket.create_connection((addr, port), timeout=30)
                s.sendall(b"%04d" % i)
                got = b""
                while True:
                    b = s.recv(65536)
                    if not b:
                        break
                    got += b
                if got == (b"%04d" % i) * 1000:
                    good.append(i)
            except OSError as e:
                out("error", i, e)
        ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        out("ok" if len(good) == n else "FAIL", "burst-client", len(good))
    elif mode == "udp-server":
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.bind((addr, port))
        ready()
        s.settimeout(30)
        # Until COUNT different datagrams (a client resends one whose
        # echo it missed: each copy is echoed, counted once).
        seen = set()
        while len(seen) < int(sys.argv[4]):
            b, src = s.recvfrom(65536)
            s.sendto(b[::-1], src)
            seen.add(b[:6])
        out("peer", src[0], src[1])
        out("ok udp-server")
    elif mode == "udp-client":
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.settimeout(1)
        good = 0
        for i in range(int(sys.argv[4])):
            msg = b"%06d" % i + os.urandom(1 + (i * 97) % 1400)
            for _ in range(5):
                s.sendto(msg, (addr, port))
                # Until its echo, or a second without one: an echo of an
                # earlier send (a datagram sent twice) is skipped.
                if wait_echo(s, msg[::-1], port):
                    good += 1
                    break
        out("local", *s.getsockname()[:2])
        out("ok" if good == int(sys.argv[4]) else "FAIL", "udp-client", good)
    elif mode == "udp-connected":
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.settimeout(1)
        s.connect((addr, port))
        out("local", *s.getsockname()[:2])
        msg = b"%06d" % port + os.urandom(32)
        for _ in range(5):
            s.send(msg)
            if wait_echo(s, msg[::-1], port):
                out("ok udp-connected")
                break
        else:
            out("FAIL udp-connected: no echo")
        # The name stays as connect() made it.
        out("after", *s.getsockname()[:2])
    elif mode == "refused":
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(10)
        try:
            s.connect((addr, port))
            out("FAIL blocking connect succeeded")
        except ConnectionRefusedError:
            out("ok blocking ECONNREFUSED")
        s.close()
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setblocking(False)
        e = s.connect_ex((addr, port))
        if e != errno.EINPROGRESS:
            out("FAIL non-blocking connect:", errno.errorcode.get(e, e))
            return
        p = select.poll()
        p.register(s, select.POLLOUT)
        if not p.poll(10000):
            out("FAIL no readiness")
            return
        e = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        out("ok" if e == errno.ECONNREFUSED else "FAIL",
            "non-blocking", errno.errorcode.get(e, e))
    elif mode == "timeout":
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.bind(("::" if fam == socket.AF_INET6 else "0.0.0.0", 0))
        s.setsockopt(socket.IPPROTO_TCP, 18, 2000)  # TCP_USER_TIMEOUT
        t = time.time()
        try:
            s.connect((addr, port))
            out("FAIL connected")
        except OSError as e:
            took = time.time() - t
            good = e.errno == errno.ETIMEDOUT and 1.5 < took < 10
            out("ok" if good else "FAIL", errno.errorcode.get(e.errno, e.errno),
                "after %.1f s" % took)
    else:
        sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main()

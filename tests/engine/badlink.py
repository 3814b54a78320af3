#!/usr/bin/env python3
"""A peer that goes away (tests/engine/badlink.sh, issue 17): how the
other end learns it, over the bad link.

  badlink.py sink ADDR PORT        accept one connection, print
                                   "accepted", read and discard until
                                   killed; SO_LINGER 0, so that its death
                                   resets the connection (an RST, not a FIN)
  badlink.py pour ADDR PORT MS     connect, then set TCP_USER_TIMEOUT MS, print
                                   "connected", send until send() fails:
                                   prints "error ERRNAME after S s (B
                                   bytes sent)", or "no error" if the peer
                                   closed cleanly
"""
import errno
import socket
import struct
import sys
import time

TCP_USER_TIMEOUT = getattr(socket, "TCP_USER_TIMEOUT", 18)


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def main():
    mode, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "sink":
        ls = socket.socket(family(addr), socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((addr, port))
        ls.listen(1)
        print("listening", flush=True)
        c, _ = ls.accept()
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        print("accepted", flush=True)
        total = 0
        while True:
            b = c.recv(1 << 16)
            if not b:
                break
            total += len(b)
        print("eof after", total, flush=True)
    elif mode == "pour":
        s = socket.socket(family(addr), socket.SOCK_STREAM)
        s.connect((addr, port))
        # after the connect: an option set before it is lost on the engine
        # (the socket is the engine's only once its address is known)
        s.setsockopt(socket.IPPROTO_TCP, TCP_USER_TIMEOUT, int(sys.argv[4]))
        print("connected", flush=True)
        chunk = b"x" * 16384
        sent = 0
        t0 = None
        try:
            while True:
                n = s.send(chunk)
                sent += n
                if t0 is None and sent >= 1 << 20:
                    # the peer has had a megabyte: from now on it may go
                    print("flowing", flush=True)
                    t0 = time.monotonic()
        except OSError as e:
            took = time.monotonic() - (t0 or time.monotonic())
            name = errno.errorcode.get(e.errno, str(e))
            print("error %s after %.1f s (%d bytes sent)" % (name, took, sent), flush=True)
            return
        print("no error", flush=True)
    else:
        sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main()

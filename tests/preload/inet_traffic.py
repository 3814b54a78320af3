#!/usr/bin/env python3
"""inet_traffic.py TRACE: of the kernel AF_INET/AF_INET6 sockets in an
`strace -f` trace (socket, bind, connect, listen, sendto, sendmsg, close,
dup2, dup3), prints "MADE USED" and then the calls that used one: USED
counts those that were bound, connected, listened on or sent from before
being closed.

The library itself makes kernel AF_INET sockets that carry nothing: to ask
the kernel about an option or an ioctl it has no behaviour for (socket/
kernel_opts.rs, platform::kernel_twin_ioctl), it makes one, sets or reads
it, and closes it. A program's socket that escaped to the kernel would be
bound, connected, listened on or sent from; that is what this counts. The
fds of all the trace's processes are one table here (a number reused by
another process between two calls could only make it count more)."""
import re
import sys

CALL = re.compile(r"^\d+\s+(?:<\.\.\. )?(\w+)\((-?\d+)?(.*)$")
RET = re.compile(r"=\s*(-?\d+)")

family = {}  # fd -> "inet" | "other"
made = 0
used = []
with open(sys.argv[1], errors="replace") as f:
    for line in f:
        m = CALL.match(line)
        if not m:
            continue
        call, fd, rest = m.group(1), m.group(2), m.group(3)
        if "resumed>" in line:
            continue  # the call's line was seen when it started
        r = RET.search(rest.rsplit(")", 1)[-1]) if ")" in rest else None
        ret = int(r.group(1)) if r else None
        if call == "socket":
            if ret is not None and ret >= 0:
                inet = line.split("(", 1)[1].startswith(("AF_INET,", "AF_INET6,"))
                family[ret] = "inet" if inet else "other"
                made += inet
        elif call in ("dup2", "dup3") and fd is not None and ret is not None and ret >= 0:
            family[ret] = family.get(int(fd), "other")
        elif call == "close" and fd is not None:
            family.pop(int(fd), None)
        elif call in ("bind", "connect", "listen", "sendto", "sendmsg") and fd is not None:
            if family.get(int(fd)) == "inet":
                used.append(line.strip())
print(made, len(used))
for u in used[:3]:
    print(u)

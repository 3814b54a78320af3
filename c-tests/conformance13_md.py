#!/usr/bin/env python3
"""conformance13_md.py - writes the generated part of c-tests/CONFORMANCE-13.md
from build/conformance13.json (c-tests/conformance13.py): the counts, each
library failure under its cause (the exact assertion, file:line, got vs
expected, per way of running), and every case's result in the four ways.
Everything above the GENERATED marker in the file is kept as written.

Causes are assigned by the rules below, first match wins, on the first
assertion that failed; a failure no rule matches is listed as unclassified
(the rules must then be extended).
"""
import fnmatch
import json
import os
import re
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
MD = os.path.join(ROOT, "c-tests/CONFORMANCE-13.md")
MARK = "<!-- GENERATED: everything below is written by c-tests/conformance13_md.py -->"
MODES = ["kernel", "linked", "shm", "xproc", "preload"]
PROGS = {
    "t_passthrough": "1. Not implemented: the kernel's",
    "t_tcpopt": "2. TCP options",
    "t_ipopt": "3. SOL_SOCKET, IP, IPv6 and UDP options",
    "t_addr": "4. Addresses and ports",
    "t_connlife": "5. Connection life",
    "t_calls": "6. Calls, pointers and signals",
}

# (cause id, case glob "prog/case" or None, detail regex or None, modes or None)
RULES = [
    # hangs, and what only the cross-process backend gets wrong
    ("HANG-ERRQUEUE", "t_ipopt/icmp_errors_without_recverr/*", None, None),
    ("HANG-RECVMMSG", "t_calls/recvmmsg_zero_timeout_gives_one/*", None, None),
    ("XPROC-V4V6-PORT", "t_addr/v4_wildcard_and_v6only_wildcard_coexist", None, ("shm", "xproc", "preload")),
    ("XPROC-V4V6-PORT", "t_addr/v4_loopback_and_v6_loopback_coexist", None, ("shm", "xproc", "preload")),
    ("XPROC-V4V6-PORT", "t_addr/so_reuseaddr_rules/*", None, ("shm", "xproc", "preload")),
    ("XPROC-FULL-QUEUE", "t_connlife/full_listen_queue_*", None, ("shm", "xproc", "preload")),
    ("XPROC-FULL-QUEUE", "t_connlife/listener_closed_during_connect/*", r"tl_poll1\(pending",
     ("shm", "xproc", "preload")),
    # class 1
    ("C1-SOCKET", "t_passthrough/socket*", None, None),
    ("C1-SOCKET", "t_passthrough/netlink_*", None, None),
    ("C1-SOCKET", "t_passthrough/packet_*", None, None),
    ("C1-SOCKET", "t_passthrough/raw_*", None, None),
    ("C1-SOCKET", "t_passthrough/udplite_*", None, None),
    ("C1-SOCKET", "t_passthrough/mptcp_*", None, None),
    ("C1-SOCKET", "t_passthrough/unix_*", None, None),
    ("C1-IOCTL", "t_passthrough/ioctl_*", None, None),
    ("C1-IOCTL", "t_calls/bad_poll_select_epoll_ioctl/*", r"ENOTTY", None),
    ("C1-IOCTL", "t_ipopt/*multicast*", r"SKIP multicast", None),
    # behaviour that is not an option's
    ("TCP-MSG-MORE", "t_tcpopt/msg_more_holds_partial_data/*", None, None),
    ("TCP-FASTOPEN", "t_tcpopt/msg_fastopen*", None, None),
    ("UDP-BROADCAST", "t_ipopt/broadcast_*", None, None),
    ("ADDR-MAPPED", "t_addr/v4_mapped_*", None, None),
    ("ADDR-FAMILY-ERRNO", "t_addr/family_mismatch_errnos", None, None),
    ("ADDR-FAMILY-ERRNO", "t_addr/v4_bind_af_unspec_any", None, None),
    ("ADDR-FAMILY-ERRNO", "t_addr/udp6_connect_with_an_ipv4_sockaddr", None, None),
    ("ADDR-FAMILY-ERRNO", "t_addr/udp_failed_connect_still_binds", None, None),
    ("ADDR-LOCAL", "t_addr/bind_local_and_foreign_addresses", None, None),
    ("ADDR-LOCAL", "t_addr/bind_every_address_of_this_host", None, None),
    ("ADDR-LOCAL", "t_addr/connect_to_the_wildcard_address/*", None, None),
    ("ADDR-SELF-CONNECT", "t_addr/tcp_self_connect/*", None, None),
    ("ADDR-TIME-WAIT", "t_addr/time_wait_*", None, None),
    ("ADDR-REUSEPORT", "t_addr/so_reuseport_*", None, None),
    ("ADDR-PRIVPORTS", "t_addr/privileged_ports_*", None, None),
    ("CONN-CONNECT-AGAIN", "t_connlife/connect_again_after_success/*", None, None),
    ("CONN-CONNECT-AGAIN", "t_connlife/full_listen_queue_completes_after_accept/*", r"EISCONN", None),
    ("CONN-EVENTS", "t_connlife/*", r"poll revents|epoll events", None),
    ("CONN-LISTENER-SHUTDOWN", "t_connlife/listener_shut_down_during_connect/*", None, None),
    ("CONN-RESET-BEFORE-ACCEPT", "t_connlife/accept_of_a_connection_reset_before_accept/*", None, None),
    ("CONN-OOB", "t_connlife/*oob*", None, None),
    ("CONN-OOB", "t_connlife/events_tcp_urgent_data/*", None, None),
    ("CONN-OOB", "t_connlife/sigurg_*", None, None),
    ("CONN-MSG-TRUNC", "t_connlife/msg_trunc_on_streams/*", None, None),
    ("CONN-SNDBUF-WAKE", "t_connlife/larger_sndbuf_wakes_a_blocked_send/*", None, None),
    ("CONN-UDP-CONNECT", "t_connlife/udp_connect_*", None, None),
    ("CONN-TCP-AF-UNSPEC", "t_connlife/tcp_connect_af_unspec_aborts/*", None, None),
    ("CONN-UDP-SHUTDOWN", "t_connlife/udp_shutdown_rd/*", None, None),
    ("CALLS-SPLICE", "t_calls/splice_*", None, None),
    ("CALLS-RECVMMSG", "t_calls/recvmmsg_*", None, None),
    ("CALLS-SIGNALS", "t_calls/signal*", None, None),
    ("CALLS-SIGNALS", "t_calls/so_rcvtimeo_is_never_restarted/*", None, None),
    ("CALLS-BAD-ARGS", "t_calls/bad_msghdrs/*", None, None),
    ("CALLS-BAD-ARGS", "t_calls/bad_socket_addresses/*", None, None),
    ("CALLS-BAD-ARGS", "t_calls/bad_socklen_pointers/*", r"expected -1/E", None),
    ("CALLS-BAD-ARGS", "t_calls/bad_accept_pointers/*", None, None),
    ("CALLS-BAD-ARGS", "t_calls/bad_data_buffers/*", None, None),
    ("CALLS-BAD-ARGS", "t_calls/bad_socketpair_sv", None, None),
    # options (first assertion about an option)
    ("OPT-LEVEL-ERRNO", None, r"-1/ENOPROTOOPT, the kernel -1/EOPNOTSUPP", None),
    ("OPT-LEVEL-ERRNO", None, r"expected -1/EOPNOTSUPP, got -1/ENOPROTOOPT", None),
    ("OPT-LEVEL-ERRNO", "t_calls/bad_levels_*", r"ENOPROTOOPT, the kernel 0/0", None),
    ("OPT-VALUE", None, r"value -?\d+, the kernel -?\d+", None),
    ("OPT-VALUE", None, r"defaults to -?\d+, expected", None),
    ("OPT-VALUE", None, r"setsockopt\(.*\): 0/0, (the kernel|expected) -1/EINVAL", None),
    ("OPT-VALUE", "t_ipopt/so_rcvlowat_tcp_*", None, None),
    ("OPT-MISSING", None, r"returned -1 \(errno ENOPROTOOPT\)|-1/ENOPROTOOPT", None),
    ("CRASH", None, r"killed by signal|the program ended", None),
]

CAUSES = {
    "C1-SOCKET": ("1", "missing behaviour",
                  "socket()/socketpair() of a family, type or protocol the library does not "
                  "implement is refused (EAFNOSUPPORT, ESOCKTNOSUPPORT, EPROTONOSUPPORT) instead "
                  "of becoming the kernel's socket (or the kernel's errno)"),
    "C1-IOCTL": ("1", "missing behaviour",
                 "ioctl() on a user-space socket knows FIONBIO/FIONREAD/FIOCLEX/FIONCLEX only: "
                 "everything else is ENOTTY"),
    "OPT-MISSING": ("2, 3", "missing option",
                    "the option is not implemented (ENOPROTOOPT where Linux accepts it); the "
                    "behaviour behind it (cork, cmsgs, filters, multicast...) is then untested"),
    "OPT-LEVEL-ERRNO": ("2, 3, 6", "wrong errno",
                        "an option level the socket lacks, or an IP-level option on an IPv6 "
                        "socket: the library's errno (ENOPROTOOPT) is not Linux's"),
    "OPT-VALUE": ("2, 3", "wrong value",
                  "an implemented option with another default, range or read-back than Linux's"),
    "TCP-MSG-MORE": ("2", "missing behaviour", "MSG_MORE does not hold partial data"),
    "TCP-FASTOPEN": ("2", "missing behaviour",
                     "sendto(MSG_FASTOPEN) on an unconnected TCP socket does not connect"),
    "UDP-BROADCAST": ("3", "missing behaviour",
                      "a datagram to a broadcast address is sent without SO_BROADCAST (no "
                      "EACCES)"),
    "ADDR-MAPPED": ("4", "missing behaviour",
                    "v4-mapped addresses: bound on an IPV6_V6ONLY socket, and an IPv4 peer not "
                    "reported as ::ffff:a.b.c.d to an IPv6 socket"),
    "ADDR-FAMILY-ERRNO": ("4", "wrong errno",
                          "family and length mismatches give other errnos than Linux's; "
                          "AF_UNSPEC bind and UDP6 connect to an AF_INET address refused"),
    "ADDR-LOCAL": ("4", "missing behaviour",
                   "which addresses are local: the host's own addresses beyond loopback "
                   "(192.0.2.2 here), multicast and broadcast addresses refused by bind() "
                   "(EADDRNOTAVAIL); a UDP connect() to the wildcard address not made to "
                   "loopback"),
    "ADDR-SELF-CONNECT": ("4", "missing behaviour", "a TCP socket connecting to its own address is refused"),
    "ADDR-TIME-WAIT": ("4", "missing behaviour", "no TIME_WAIT: an actively closed connection frees its port at once"),
    "ADDR-REUSEPORT": ("4", "missing behaviour",
                       "SO_REUSEPORT groups: one listener or socket gets everything, and another "
                       "user may join"),
    "ADDR-PRIVPORTS": ("4", "missing behaviour",
                       "ports below ip_unprivileged_port_start bound without "
                       "CAP_NET_BIND_SERVICE"),
    "XPROC-V4V6-PORT": ("4", "missing behaviour (cross-process only)",
                        "the cross-process backend has one port space for IPv4 and IPv6: a "
                        "v6-only bind does not coexist as its own socket (and can hang an accept), "
                        "a v4-mapped bind does not conflict, SO_REUSEADDR sharing is not checked "
                        "at listen()"),
    "XPROC-FULL-QUEUE": ("5", "missing behaviour (cross-process only)",
                         "a full listen queue refuses at once instead of keeping the connect "
                         "waiting"),
    "CONN-CONNECT-AGAIN": ("5", "wrong errno",
                           "connect() again after a non-blocking connect completed: EISCONN "
                           "instead of Linux's 0 once, then EISCONN"),
    "CONN-EVENTS": ("5", "wrong value",
                    "poll/epoll events: POLLRDHUP missing after a reset or refusal, POLLHUP "
                    "missing after shutdown(SHUT_RDWR), POLLWRBAND missing on UDP"),
    "CONN-LISTENER-SHUTDOWN": ("5", "missing behaviour",
                               "shutdown(SHUT_RD) of a listener leaves its queued connections "
                               "unreset"),
    "CONN-RESET-BEFORE-ACCEPT": ("5", "wrong value",
                                 "a connection reset before accept() still has a peer "
                                 "(getpeername succeeds)"),
    "CONN-OOB": ("5", "missing behaviour", "urgent data (MSG_OOB, SIOCATMARK, POLLPRI, SIGURG) is not implemented"),
    "CONN-MSG-TRUNC": ("5", "wrong value", "MSG_TRUNC|MSG_PEEK on a stream copies the data"),
    "CONN-SNDBUF-WAKE": ("5", "hang (bounded by the test)",
                         "raising SO_SNDBUF does not wake a send blocked on a full buffer"),
    "CONN-UDP-CONNECT": ("5", "wrong value", "UDP connect() to port 0 makes a peer (getpeername succeeds)"),
    "CONN-TCP-AF-UNSPEC": ("5", "missing behaviour", "connect(AF_UNSPEC) on a connected TCP socket is EISCONN instead of an abort"),
    "CONN-UDP-SHUTDOWN": ("5", "wrong errno", "a UDP socket shut down for reading returns 0 to MSG_DONTWAIT instead of EAGAIN"),
    "CALLS-SPLICE": ("6", "missing behaviour", "splice() with a user-space socket is EINVAL (it is an eventfd to the kernel)"),
    "CALLS-RECVMMSG": ("6", "missing behaviour",
                       "recvmmsg()'s timeout is ignored (not checked, not validated, not written "
                       "back) and an error after some datagrams is dropped"),
    "CALLS-SIGNALS": ("6", "missing behaviour",
                      "a signal never interrupts a blocked socket call (no EINTR with or without "
                      "SA_RESTART or a timeout)"),
    "CALLS-BAD-ARGS": ("6", "wrong errno", "bad lengths and pointers: another errno than Linux's"),
    "HANG-ERRQUEUE": ("3", "hang", "recvmsg(MSG_ERRQUEUE) blocks as a normal receive instead of EAGAIN"),
    "HANG-RECVMMSG": ("6", "hang", "recvmmsg() with a timeout of 0 waits for all the datagrams asked for"),
    "CRASH": ("?", "crash", "the program died (a signal) in the case"),
    "UNCLASSIFIED": ("?", "?", "no rule matched"),
}


def classify(prog, case, mode, detail):
    name = f"{prog}/{case}"
    text = "\n".join(detail)
    for cid, glob, rx, modes in RULES:
        if glob and not fnmatch.fnmatchcase(name, glob):
            continue
        if rx and not re.search(rx, text):
            continue
        if modes and mode not in modes:
            continue
        return cid
    return "UNCLASSIFIED"


def esc(s):
    return s.replace("|", "\\|")


def mark(st):
    return {"ok": "pass", "FAIL": "FAIL", "hang": "HANG", "crash": "CRASH",
            "skip": "skip", "unrun": "unrun", "not-xproc": "not-xproc"}.get(st, st)


def main():
    data = json.load(open(os.path.join(ROOT, "build/conformance13.json")))
    out = []
    w = out.append
    w(MARK)
    w("")
    w("## Counts")
    w("")
    w("Cases passing, per way of running (build/conformance13.json).")
    w("")
    w("| program | class | cases | " + " | ".join(MODES) + " |")
    w("|---|---|---|" + "---|" * len(MODES))
    tot = [0] * (len(MODES) + 1)
    for prog, title in PROGS.items():
        e = data.get(prog)
        if not e:
            continue
        cases = e["cases"]
        row = [len(cases)]
        for m in MODES:
            row.append(sum(1 for c in cases if e["results"][m][c]["status"] == "ok"))
        tot = [a + b for a, b in zip(tot, row)]
        w(f"| {prog} | {title} | " + " | ".join(map(str, row)) + " |")
    w("| **all** | | " + " | ".join(f"**{x}**" for x in tot) + " |")
    w("")
    # failures by cause
    by_cause = {}
    for prog in PROGS:
        e = data.get(prog)
        if not e:
            continue
        for c in e["cases"]:
            for m in MODES[1:]:
                r = e["results"][m][c]
                if r["status"] == "ok":
                    continue
                cid = classify(prog, c, m, r["detail"])
                if r["status"] == "hang" and cid not in ("HANG-ERRQUEUE", "HANG-RECVMMSG"):
                    pass
                by_cause.setdefault(cid, {}).setdefault((prog, c), {})[m] = r
    w("## Library failures by cause")
    w("")
    w("Each failing case, under the cause of its first failed assertion; the")
    w("assertion is given for the linked run, and for a cross-process run when it")
    w("failed otherwise. (The causes, with where in the library each gap is, are")
    w("described above, under the same names.)")
    w("")
    w("| cause | class | kind | cases (" + " / ".join(MODES[1:]) + ") |")
    w("|---|---|---|---|")
    for cid in list(CAUSES):
        cases = by_cause.get(cid)
        if not cases:
            continue
        n = [sum(1 for v in cases.values() if m in v) for m in MODES[1:]]
        cls, kind, _ = CAUSES[cid]
        w(f"| [{cid}](#{cid.lower()}) | {cls} | {kind} | " + " / ".join(map(str, n)) + " |")
    w("")
    for cid in list(CAUSES):
        cases = by_cause.get(cid)
        if not cases:
            continue
        cls, kind, desc = CAUSES[cid]
        w(f"### {cid}")
        w("")
        w(f"Class {cls}, {kind}: {desc}.")
        w("")
        for (prog, c), per in cases.items():
            first = None
            for m in MODES[1:]:
                if m not in per:
                    continue
                r = per[m]
                d = r["detail"][0] if r["detail"] else "(no message)"
                line = f"{mark(r['status'])}: {d}"
                if first is None:
                    modes = [x for x in MODES[1:] if x in per and
                             (per[x]["detail"][:1] == r["detail"][:1]) and per[x]["status"] == r["status"]]
                    w(f"- `{prog}` `{c}` ({', '.join(modes)}): " + esc(line))
                    first = (r["status"], r["detail"][:1])
                elif (r["status"], r["detail"][:1]) != first:
                    w(f"  - {m}: " + esc(line))
        w("")
    w("## Every case")
    w("")
    for prog, title in PROGS.items():
        e = data.get(prog)
        if not e:
            continue
        w(f"### {prog} ({title})")
        w("")
        w("| case | " + " | ".join(MODES) + " |")
        w("|---|" + "---|" * len(MODES))
        for c in e["cases"]:
            w(f"| `{c}` | " + " | ".join(mark(e["results"][m][c]["status"]) for m in MODES) + " |")
        w("")
    text = open(MD).read() if os.path.exists(MD) else ""
    head = text.split(MARK)[0]
    with open(MD, "w") as f:
        f.write(head + "\n".join(out) + "\n")
    unc = by_cause.get("UNCLASSIFIED", {})
    if unc:
        print(f"{len(unc)} unclassified:", file=sys.stderr)
        for (p, c), per in unc.items():
            for m, r in per.items():
                print(f"  {p}/{c} {m}: {r['detail'][:1]}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""inventory14.py - every case of the issue-14 C tests (c-tests/t_unix_*.c),
run one at a time, in each of several ways; prints one TSV line per case
and way:  program  case  way  result  detail
(result: ok, FAIL, skip, HANG, CRASH; detail: the first failed assertion,
file:line and message, or why it hung or crashed).

Ways:
  kernel, kernel-asan, kernel-tsan, usock, usock-asan, usock-tsan
            the build of that variant in $OUT (build/c-tests)
  launcher  the kernel build under bin/usockrun (default routes: AF_UNIX
            stays on the kernel; the library is preloaded)
  user      the kernel build under bin/usockrun --route "user unix"

One case per run, so that a hang or a crash costs that case only
(TL_TIMEOUT, default 5 s here, is the watchdog of each run).
Usage: c-tests/inventory14.py [--programs t_unix_names,...] WAY... > out.tsv
       c-tests/inventory14.py --markdown out.tsv > tables.md
       c-tests/inventory14.py --pass-list out.tsv c-tests/conformance14.pass [WAY...]
The second form prints CONFORMANCE-14.md's generated part: counts per
program and way, the failures per cause, and every case's results. The
third writes the list of cases make test holds the library to (TL_ONLY in
testlib.c): those that passed in every WAY given (default: linked, under
the launcher and in user space: usock launcher user), in the order the
programs list them; every program has
a "program/" line, so one with no passing case runs none.
"""
import os
import platform
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.environ.get("OUT", os.path.join(ROOT, "build", "c-tests"))
TIMEOUT = os.environ.get("TL_TIMEOUT", "5")


def command(way, prog, net):
    if way in ("launcher", "user"):
        exe = os.path.join(OUT, "kernel", prog)
        cmd = [os.path.join(ROOT, "bin", "usockrun"), "--net", net]
        if way == "user":
            cmd += ["--route", "user unix"]
        return cmd + ["--", exe]
    exe = os.path.join(OUT, way, prog)
    if "tsan" in way:
        return ["setarch", platform.machine(), "-R", exe]
    return [exe]


def main():
    args = sys.argv[1:]
    if args[:1] == ["--markdown"]:
        markdown(args[1])
        return
    if args[:1] == ["--pass-list"]:
        pass_list(args[1], args[2], tuple(args[3:]) or PASS_WAYS)
        return
    progs = None
    if args[:1] == ["--programs"]:
        progs = args[1].split(",")
        args = args[2:]
    if not args:
        sys.exit(__doc__)
    if progs is None:
        progs = sorted(f[:-2] for f in os.listdir(HERE)
                       if f.startswith("t_unix_") and f.endswith(".c"))
    env = dict(os.environ, TL_TIMEOUT=TIMEOUT)
    net = tempfile.mkdtemp(prefix="usock-inv-") + "/net"
    for prog in progs:
        listing = subprocess.run(command("kernel", prog, net) + ["-l"], cwd="/tmp",
                                 capture_output=True, text=True, timeout=60).stdout
        cases = [c for c in listing.splitlines() if c]
        for way in args:
            for case in cases:
                try:
                    p = subprocess.run(command(way, prog, net) + [case], cwd="/tmp", env=env,
                                       capture_output=True, text=True,
                                       timeout=int(TIMEOUT) + 30)
                    out, rc = p.stdout + p.stderr, p.returncode
                except subprocess.TimeoutExpired as e:
                    out, rc = (e.stdout or b"").decode(errors="replace"), -999
                result, detail = classify(case, out, rc)
                print("\t".join([prog, case, way, result, detail]), flush=True)


def classify(case, out, rc):
    summary = re.search(r"^(\d+) passed, (\d+) failed, (\d+) skipped$", out, re.M)
    fails = [l.strip() for l in out.splitlines() if re.match(r"^  \S+:\d+: ", l)]
    skips = [l.strip() for l in out.splitlines() if l.startswith("SKIP ")]
    if "timed out (watchdog)" in out or rc == -999:
        return "HANG", (fails[0] + " then " if fails else "") + "no return within %ss" % TIMEOUT
    if summary is None:
        tail = " | ".join(out.strip().splitlines()[-2:])
        return "CRASH", "exit %d: %s" % (rc, tail[:300])
    p, f, s = (int(x) for x in summary.groups())
    if p + f + s != 1:
        return "CRASH", "ran %d cases for %s" % (p + f + s, case)
    if f:
        return "FAIL", (fails[0] if fails else " ".join(skips))[:400]
    if s:
        return "skip", skips[0] if skips else ""
    return "ok", ""


# ---- the markdown tables ---------------------------------------------------

# Causes: (key, bucket, matcher). The first whose matcher accepts
# (case, detail, result) names the cause; buckets are the brief's.
def _has(*words):
    return lambda c, d, r: all(w in d for w in words)


def _case(*prefixes):
    return lambda c, d, r: any(c.startswith(p) for p in prefixes)


CAUSES = [
    ("hang", "hang", lambda c, d, r: r == "HANG"),
    ("crash", "hang", lambda c, d, r: r == "CRASH"),
    ("sock-raw", "unsupported type", _has("SOCK_RAW", "ESOCKTNOSUPPORT")),
    ("seqpacket", "unsupported type", _has("ESOCKTNOSUPPORT")),
    ("netdir-eacces", "missing behaviour",
     lambda c, d, r: "EACCES" in d and ("socket(" in d or "socketpair(" in d)),
    ("peercred", "missing option", _has("SO_PEERCRED", "ENOPROTOOPT")),
    ("peerpidfd", "missing option", _has("SO_PEERPIDFD", "ENOPROTOOPT")),
    ("bufforce", "missing option", lambda c, d, r: c.startswith("io_buffer_force")),
    ("peek-off", "missing option", _case("io_so_peek_off")),
    ("passcred", "missing option", _has("ENOPROTOOPT")),
    ("outq", "missing behaviour", _has("ENOTTY")),
    ("rights-socket-to-kernel", "missing behaviour", _has("ENOTSOCK")),
    ("cmsg-ignored", "missing behaviour", _case("rights_")),
    ("dgram-peer-by-address", "missing behaviour",
     _case("names_dgram_connected_keeps_peer_after_unlink")),
    ("inode-key", "missing behaviour", _case("names_new_file_after_unlink")),
    ("autobind-bound", "wrong errno", _case("names_autobind")),
    ("no-access-check", "missing behaviour", _case("names_eacces")),
    ("sigpipe-dgram", "missing behaviour", _case("io_sigpipe_none_for")),
    ("peer-shut-rd", "missing behaviour",
     _case("io_stream_shut_rd", "io_sigpipe", "io_dgram_shutdown")),
    ("dgram-size", "wrong errno", _case("io_dgram_emsgsize")),
    ("dgram-qlen", "missing behaviour",
     _case("io_dgram_receive_queue_limit", "io_dgram_mutually_connected")),
    ("rcvbuf-default", "missing behaviour", _case("io_sndbuf_rcvbuf")),
    ("oob", "missing behaviour", _case("io_stream_msg_oob")),
    ("errno", "wrong errno", lambda c, d, r: re.search(r"expected -1/E\w+, got -1/E", d) is not None),
    ("other", "missing behaviour", lambda c, d, r: True),
]


def cause_of(case, detail, result):
    for key, bucket, match in CAUSES:
        if match(case, detail, result):
            return key, bucket
    return "other", "missing behaviour"


def clean(detail):
    d = re.sub(r" \[[^]]*\]", "", detail)
    d = re.sub(r" \(in child \d+\)", " (in a child)", d)
    d = re.sub(r"\(errno (\w+)\)$", r"(errno \1)", d)
    return d.replace("|", "\\|").strip()


PASS_WAYS = ("usock", "launcher", "user")


def pass_list(tsv, out, ways):
    rows = [l.rstrip("\n").split("\t") for l in open(tsv) if l.strip()]
    ok = {(r[0], r[1]) for r in rows if r[2] in ways and r[3] == "ok"}
    bad = {(r[0], r[1]) for r in rows if r[2] in ways and r[3] != "ok"}
    seen = {r[2] for r in rows}
    missing = [w for w in ways if w not in seen]
    if missing:
        sys.exit("--pass-list: %s has no results for %s" % (tsv, ", ".join(missing)))
    progs, order = [], {}
    for r in rows:
        if r[0] not in order:
            order[r[0]] = []
            progs.append(r[0])
        if r[1] not in order[r[0]]:
            order[r[0]].append(r[1])
    with open(out, "w") as f:
        f.write("# Issue 14's cases the library passes in each of these ways: %s.\n"
                "# make test runs exactly these against it (TL_ONLY). Written by\n"
                "# c-tests/inventory14.py --pass-list; see CONFORMANCE-14.md for the rest.\n"
                % " ".join(ways))
        for p in progs:
            f.write(p + "/\n")
            for c in order[p]:
                if (p, c) in ok and (p, c) not in bad:
                    f.write("%s/%s\n" % (p, c))


def markdown(path):
    rows = [l.rstrip("\n").split("\t") for l in open(path) if l.strip()]
    ways = []
    res = {}
    order = []
    for prog, case, way, result, detail in (r + [""] * (5 - len(r)) for r in rows):
        if way not in ways:
            ways.append(way)
        if (prog, case) not in res:
            res[(prog, case)] = {}
            order.append((prog, case))
        res[(prog, case)][way] = (result, detail)
    progs = sorted({p for p, _ in order})
    print("### Cases passed, per program and way\n")
    print("| program | cases | " + " | ".join(ways) + " |")
    print("|---|---:|" + "---:|" * len(ways))
    tot = {w: 0 for w in ways}
    ncases = 0
    for p in progs:
        cs = [k for k in order if k[0] == p]
        ncases += len(cs)
        cells = []
        for w in ways:
            n = sum(1 for k in cs if res[k].get(w, ("", ""))[0] == "ok")
            tot[w] += n
            cells.append(str(n))
        print("| %s | %d | %s |" % (p, len(cs), " | ".join(cells)))
    print("| **all** | **%d** | %s |\n" % (ncases, " | ".join("**%d**" % tot[w] for w in ways)))
    lib_ways = [w for w in ways if not w.startswith("kernel")]
    print("### Library failures per cause\n")
    print("The first failed assertion of a case decides its cause; the cases a")
    print("cause holds back may fail later for another (see the per-case tables).\n")
    print("| cause | kind | " + " | ".join(lib_ways) + " |")
    print("|---|---|" + "---:|" * len(lib_ways))
    counts = {}
    for k in order:
        for w in lib_ways:
            r, d = res[k].get(w, ("", ""))
            if r in ("ok", "skip", ""):
                continue
            key, bucket = cause_of(k[1], d, r)
            counts.setdefault((key, bucket), {}).setdefault(w, 0)
            counts[(key, bucket)][w] += 1
    for (key, bucket), c in sorted(counts.items(), key=lambda kv: -sum(kv[1].values())):
        print("| `%s` | %s | %s |" % (key, bucket, " | ".join(str(c.get(w, 0)) for w in lib_ways)))
    print()
    # Columns of the per-case tables: the kernel variants only when one of
    # them did not pass everything.
    kernel_ways = [w for w in ways if w.startswith("kernel")]
    shown = [w for w in ways if w == "kernel" or not w.startswith("kernel") or
             any(res[k].get(w, ("ok", ""))[0] != "ok" for k in order)]
    print("### Every case\n")
    if len(shown) < len(ways):
        print("Every case passed in %s; only `kernel` is shown.\n" % ", ".join(kernel_ways))
    print("ok / FAIL / HANG per way; for a failure, its cause and the first failed")
    print("assertion (file:line: got vs expected) under the linked library (usock);")
    print("a preloaded way's assertion follows when it differs.\n")
    ways = shown
    for p in progs:
        print("#### %s\n" % p)
        print("| case | " + " | ".join(ways) + " | cause | first failed assertion |")
        print("|---|" + "---|" * len(ways) + "---|---|")
        for k in [k for k in order if k[0] == p]:
            cells = [res[k].get(w, ("-", ""))[0] for w in ways]
            notes, causes = [], []
            seen = set()
            for w in lib_ways:
                r, d = res[k].get(w, ("", ""))
                if r in ("ok", "skip", ""):
                    continue
                key, _ = cause_of(k[1], d, r)
                if key not in causes:
                    causes.append(key)
                cd = clean(d)
                if cd not in seen:
                    seen.add(cd)
                    notes.append(("" if not notes else "%s: " % w) + "`" + cd.replace("`", "'") + "`")
            print("| %s | %s | %s | %s |" % (k[1], " | ".join(cells),
                                            ", ".join("`%s`" % c for c in causes),
                                            "<br>".join(notes)))
        print()


if __name__ == "__main__":
    main()

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
The CONFORMANCE-14.md tables come from this output.
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


if __name__ == "__main__":
    main()

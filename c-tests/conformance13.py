#!/usr/bin/env python3
"""conformance13.py - runs issue 13's C programs case by case in five ways
and writes the per-case results that c-tests/CONFORMANCE-13.md tabulates.

  kernel   build/c-tests/kernel/PROG            (the reference)
  linked   build/c-tests/usock/PROG             (linked, in-process backend)
  shm      build/c-tests/usock/PROG, USOCK_NET  (linked, on a network: TCP
           through the shared-memory backend, the default, UDP through xproc)
  xproc    the same with USOCK_SHM=0            (everything through xproc)
  preload  bin/usockrun -- build/c-tests/kernel/PROG (LD_PRELOAD, the
           network's defaults: TCP through shm, UDP through xproc)

A program that hangs (the harness's watchdog) or crashes takes only its
current case with it: the program is run again on the cases it left. For
the ways on a network the run must show a cross-process backend carrying
sockets (USOCK_STATS: xproc's claims, or shm's where TCP may go there),
else every case of it is marked "not-xproc".

Usage: c-tests/conformance13.py [--out build/conformance13.json] [PROG...]
       c-tests/conformance13.py --pass-list c-tests/conformance13.pass
(make -C c-tests kernel usock first). Env TL_TIMEOUT (per-case watchdog,
default 15 s here).
"""
import argparse
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
PROGS = ["t_passthrough", "t_tcpopt", "t_ipopt", "t_addr", "t_connlife", "t_calls"]
MODES = ["kernel", "linked", "shm", "xproc", "preload"]
# The ways on a network, and the backends whose claims show that one of
# them carried the program's sockets.
CARRIERS = {"shm": ("xproc", "shm"), "xproc": ("xproc",), "preload": ("xproc", "shm")}

LINE_OK = re.compile(r"^ok   (\S+)")
LINE_FAIL = re.compile(r"^FAIL (\S+?)(: timed out \(watchdog\))?$")
LINE_SKIP = re.compile(r"^skip (\S+)")
LINE_DETAIL = re.compile(r"^  (\S+:\d+): \[([^\]]+)\] (.*)$")
LINE_NOTE = re.compile(r"^  \[([^\]]+)\] (.*)$")
LINE_SUMMARY = re.compile(r"^\d+ passed, \d+ failed, \d+ skipped$")


def command(prog, mode, net):
    kernel = os.path.join(ROOT, "build/c-tests/kernel", prog)
    usock = os.path.join(ROOT, "build/c-tests/usock", prog)
    env = dict(os.environ)
    for k in ("USOCK_NET", "USOCK_STATS", "LD_PRELOAD", "USOCK_ROUTE", "TL_ONLY", "USOCK_SHM"):
        env.pop(k, None)
    env.setdefault("TL_TIMEOUT", "15")
    env["ALLOW_SKIP"] = env.get("ALLOW_SKIP", "")
    if mode == "kernel":
        return [kernel], env
    if mode == "linked":
        return [usock], env
    env["USOCK_STATS"] = net + ".stats"
    # The network admits nobody, whom the privilege cases become (as
    # `usockrun --user nobody` makes it): across processes a network is
    # its users', and another user's process cannot reach it.
    if mode in ("shm", "xproc"):
        env["USOCK_NET"] = net
        if mode == "xproc":
            env["USOCK_SHM"] = "0"
        if os.geteuid() == 0:
            shutil.chown(net, "nobody")
            env["USOCK_NET_USERS"] = "0,%d" % pwd.getpwnam("nobody").pw_uid
        return [usock], env
    user = ["--user", "nobody"] if os.geteuid() == 0 else []
    return [os.path.join(ROOT, "bin/usockrun"), "--net", net] + user + ["--", kernel], env


def claims_of(stats, backends):
    """Sockets the given backends claimed, from a USOCK_STATS file."""
    n = 0
    try:
        with open(stats) as f:
            for line in f:
                w = line.split()
                if len(w) >= 3 and w[1] in backends and w[2].startswith("claims="):
                    n += int(w[2][7:])
    except OSError:
        pass
    return n


def run_prog(prog, mode):
    """{case: {"status": ..., "detail": [...]}} for every case of prog."""
    cases = subprocess.run([os.path.join(ROOT, "build/c-tests/kernel", prog), "-l"],
                           capture_output=True, text=True, cwd="/tmp").stdout.split()
    res = {}
    remaining = list(cases)
    claims = 0
    rounds = 0
    while remaining and rounds < len(cases) + 1:
        rounds += 1
        net = tempfile.mkdtemp(prefix="usock-c13-")
        argv, env = command(prog, mode, net)
        args = [] if remaining == cases else remaining
        t0 = time.time()
        try:
            p = subprocess.run(argv + args, capture_output=True, text=True, env=env,
                               cwd="/tmp", timeout=60 + 20 * len(remaining))
            out, rc = p.stdout, p.returncode
        except subprocess.TimeoutExpired as e:
            out = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            rc = -9
        claims += claims_of(net + ".stats", CARRIERS.get(mode, ()))
        subprocess.run(["rm", "-rf", net, net + ".stats"])
        details = {}
        seen = []
        last_skip = None
        hung = None
        summary = False
        for line in out.splitlines():
            m = LINE_DETAIL.match(line)
            if m:
                details.setdefault(m.group(2), []).append(f"{m.group(1)}: {m.group(3)}")
                continue
            m = LINE_NOTE.match(line)
            if m:
                note = m.group(2)
                if last_skip and note.startswith("skip not allowed"):
                    note = f"{last_skip} ({note})"
                details.setdefault(m.group(1), []).append(note)
                continue
            if line.startswith("SKIP "):
                last_skip = line
                continue
            m = LINE_OK.match(line)
            if m:
                res[m.group(1)] = {"status": "ok", "detail": []}
                seen.append(m.group(1))
                continue
            m = LINE_SKIP.match(line)
            if m:
                res[m.group(1)] = {"status": "skip", "detail": []}
                seen.append(m.group(1))
                continue
            m = LINE_FAIL.match(line)
            if m:
                name = m.group(1)
                if m.group(2):
                    hung = name
                    res[name] = {"status": "hang", "detail": details.get(name, []) +
                                 [f"no end within the {env['TL_TIMEOUT']} s watchdog"]}
                else:
                    res[name] = {"status": "FAIL", "detail": details.get(name, [])}
                seen.append(name)
                continue
            if LINE_SUMMARY.match(line):
                summary = True
        left = [c for c in remaining if c not in res]
        if not left:
            break
        if hung is None and not summary:
            # a crash (or a whole-program timeout) in the first unreported case
            res[left[0]] = {"status": "crash",
                            "detail": [f"the program ended (exit {rc}) in this case: "
                                       + " | ".join(out.strip().splitlines()[-2:])]}
            left = left[1:]
        remaining = left
    for c in cases:
        res.setdefault(c, {"status": "unrun", "detail": []})
    if mode in CARRIERS and claims == 0:
        for c in cases:
            res[c] = {"status": "not-xproc",
                      "detail": ["the cross-process backend carried no socket"]}
    return cases, res


def write_pass_list(data, path):
    """c-tests/conformance13.pass: every case the library passes in all four
    ways (linked, shm, xproc, preload). make test runs these against the library
    (TL_ONLY in testlib.c), so a case that passed once must go on passing;
    the file only grows as the inventory's causes are fixed."""
    lines = []
    for prog in PROGS:
        entry = data.get(prog)
        if not entry:
            continue
        for case in entry["cases"]:
            if all(entry["results"].get(m, {}).get(case, {}).get("status") == "ok"
                   for m in MODES[1:]):
                lines.append(f"{prog}/{case}")
    with open(path, "w") as f:
        f.write("# Issue 13's cases the library passes linked, through the shared-memory\n"
                "# and the cross-process backends and preloaded: make test runs exactly these against the\n"
                "# library (TL_ONLY in testlib.c). Written by c-tests/conformance13.py\n"
                "# --pass-list from its last run; see CONFORMANCE-13.md for the rest.\n")
        for line in lines:
            f.write(line + "\n")
    print(f"{path}: {len(lines)} cases", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "build/conformance13.json"))
    ap.add_argument("--pass-list", metavar="FILE",
                    help="only write FILE (the cases passing all four ways) from --out")
    ap.add_argument("progs", nargs="*", default=PROGS)
    a = ap.parse_args()
    data = {}
    if os.path.exists(a.out):
        with open(a.out) as f:
            data = json.load(f)
    if a.pass_list:
        write_pass_list(data, a.pass_list)
        return 0
    for prog in a.progs:
        entry = {"cases": [], "results": {}}
        for mode in MODES:
            t0 = time.time()
            cases, res = run_prog(prog, mode)
            entry["cases"] = cases
            entry["results"][mode] = res
            n_ok = sum(1 for c in cases if res[c]["status"] == "ok")
            print(f"{prog:14} {mode:8} {n_ok:4}/{len(cases)} ok ({time.time() - t0:.0f} s)",
                  flush=True)
        data[prog] = entry
        os.makedirs(os.path.dirname(a.out), exist_ok=True)
        with open(a.out, "w") as f:
            json.dump(data, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

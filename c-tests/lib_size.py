#!/usr/bin/env python3
"""Sums the bytes a linked program takes from libuserspacesock.a, per kind
of section, from a GNU ld map file (-Wl,-Map=...): what the library costs in
flash (text + rodata + data) and RAM (data + bss) on a small target.

  lib_size.py MAP                   the library in that program
  lib_size.py MAP --base BASEMAP    also what MAP's program takes beyond
                                    BASEMAP's (the engine over a host's
                                    device table beyond the core)"""
import re
import sys

def sizes(path):
    tot = {}
    live = False
    cur = None
    for line in open(path):
        if line.startswith('Linker script and memory map'):
            live = True
            continue
        if not live:
            continue
        m = re.match(r'^ (\.\S+)\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+(\S+)', line)
        if m:
            sec, size, obj = m.group(1), int(m.group(3), 16), m.group(4)
        else:
            m2 = re.match(r'^ (\.\S+)\s*$', line)
            if m2:
                cur = m2.group(1)
                continue
            m3 = re.match(r'^\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+(\S+)', line)
            if not (m3 and cur):
                continue
            sec, size, obj = cur, int(m3.group(2), 16), m3.group(3)
        if 'libuserspacesock.a' not in obj:
            continue
        for kind in ('text', 'rodata', 'data', 'bss'):
            if sec.startswith('.' + kind) or (kind == 'bss' and sec.startswith('.tbss')):
                tot[kind] = tot.get(kind, 0) + size
    return tot


KINDS = ('text', 'rodata', 'data', 'bss')


def line(what, tot):
    return '%s: text %d, rodata %d, data %d, bss %d bytes' % ((what,) + tuple(tot.get(k, 0) for k in KINDS))


tot = sizes(sys.argv[1])
print(line('libuserspacesock in the linked program', tot))
if len(sys.argv) == 4 and sys.argv[2] == '--base':
    base = sizes(sys.argv[3])
    print(line('  beyond %s' % sys.argv[3], {k: tot.get(k, 0) - base.get(k, 0) for k in KINDS}))

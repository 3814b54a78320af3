#!/usr/bin/env python3
"""Sums the bytes a linked program takes from libuserspacesock.a, per kind
of section, from a GNU ld map file (-Wl,-Map=...): what the library costs in
flash (text + rodata + data) and RAM (data + bss) on a small target."""
import re
import sys

tot = {}
live = False
cur = None
for line in open(sys.argv[1]):
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
print('libuserspacesock in the linked program: text %d, rodata %d, data %d, bss %d bytes'
      % (tot.get('text', 0), tot.get('rodata', 0), tot.get('data', 0), tot.get('bss', 0)))

#!/usr/bin/env python3
"""Build a scan benchmark corpus: the real-kernel captures in tests/fixtures, repeated with
fresh serials (and times moving on) until at least N records. Usage: bench-corpus.py N OUT"""
import glob
import os
import re
import sys

want = int(sys.argv[1]) if len(sys.argv) > 1 else 500_000
out = sys.argv[2] if len(sys.argv) > 2 else "/tmp/wwatchd-bench.log"
here = os.path.dirname(os.path.abspath(__file__))
lines = []
for f in sorted(glob.glob(os.path.join(here, "..", "tests", "fixtures", "*.log"))):
    with open(f, "rb") as fh:
        lines.extend(l for l in fh.read().splitlines() if l)
stamp = re.compile(rb"msg=audit\((\d+)\.(\d{3}):(\d+)\)")
parsed = []
for l in lines:
    m = stamp.search(l)
    parsed.append((l[: m.start()], int(m.group(1)), m.group(2), int(m.group(3)), l[m.end():]))
max_serial = max(p[3] for p in parsed) + 1
t0 = min(p[1] for p in parsed)
n = 0
rep = 0
with open(out, "wb") as o:
    while n < want:
        off = rep * max_serial
        toff = rep * 3
        for pre, sec, ms, serial, post in parsed:
            o.write(b"%smsg=audit(%d.%s:%d)%s\n" % (pre, sec - t0 + 1_800_000_000 + toff, ms, serial + off, post))
            n += 1
        rep += 1
print(f"{out}: {n} records, {rep} repetitions of {len(parsed)} captured records")

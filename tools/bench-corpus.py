#!/usr/bin/env python3
"""Build a scan benchmark corpus: the real-kernel captures in tests/fixtures, repeated with
fresh serials (and times moving on) until at least N records.

Usage: bench-corpus.py [--execs K] [--reads R] N OUT

With --execs K (and --reads R), each repetition of the captures is followed by K synthetic
events in the style of auditd's host-wide execve logging (`-a always,exit -S execve -k exec`:
SYSCALL, EXECVE, CWD, two PATH, PROCTITLE, EOE) and R read-only opens of files under /etc
(SYSCALL, CWD, PATH, PROCTITLE, EOE), interleaved with the captures' events: the records a
busy host's auditd writes that no rule matches. Without them the corpus is the captures
alone (alert-heavy), as tools/bench-all.sh uses it."""
import glob
import os
import re
import sys

args = sys.argv[1:]
execs = reads = 0
while args and args[0].startswith("--"):
    opt, val, args = args[0], int(args[1]), args[2:]
    if opt == "--execs":
        execs = val
    elif opt == "--reads":
        reads = val
    else:
        sys.exit(f"bench-corpus: unknown option {opt}")
want = int(args[0]) if len(args) > 0 else 500_000
out = args[1] if len(args) > 1 else "/tmp/wwatchd-bench.log"
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

# Commands a busy host runs: (argv, exe, uid, cwd). Deterministic, so every run of the
# generator writes the same bytes.
COMMANDS = [
    (["ls", "-la", "/var/log"], "/usr/bin/ls", 1000, "/home/alice"),
    (["grep", "-r", "error", "/var/log/syslog"], "/usr/bin/grep", 1000, "/home/alice"),
    (["systemctl", "is-active", "--quiet", "cron"], "/usr/bin/systemctl", 0, "/"),
    (["sh", "-c", "run-parts --report /etc/cron.hourly"], "/usr/bin/dash", 0, "/"),
    (["python3", "/usr/lib/python3/dist-packages/apt_check.py"], "/usr/bin/python3.11", 0, "/"),
    (["git", "status", "--porcelain"], "/usr/bin/git", 1001, "/home/bob/src/app"),
    (["cat", "/proc/meminfo"], "/usr/bin/cat", 112, "/var/lib/prometheus"),
    (["sed", "-n", "1,20p", "/etc/passwd"], "/usr/bin/sed", 1000, "/tmp"),
]
READS = ["/etc/ld.so.cache", "/etc/nsswitch.conf", "/etc/passwd", "/etc/hosts",
         "/etc/localtime", "/etc/ssl/openssl.cnf"]


def syscall(nr, exit_, a, items, pid, uid, comm, exe, key):
    ids = f"auid={uid if uid else 4294967295} uid={uid} gid={uid} euid={uid} suid={uid} " \
          f"fsuid={uid} egid={uid} sgid={uid} fsgid={uid}"
    ses = 4294967295 if uid == 0 else 7
    return (f"type=SYSCALL {{h}} arch=c000003e syscall={nr} success=yes exit={exit_} "
            f"a0={a[0]} a1={a[1]} a2={a[2]} a3={a[3]} items={items} ppid={pid - 1} pid={pid} "
            f"{ids} tty=(none) ses={ses} comm=\"{comm}\" exe=\"{exe}\" "
            f"subj=unconfined key={key}")


def path(item, name, inode, mode, nametype):
    return (f"type=PATH {{h}} item={item} name=\"{name}\" inode={inode} dev=fe:00 "
            f"mode={mode} ouid=0 ogid=0 rdev=00:00 nametype={nametype} cap_fp=0 cap_fi=0 "
            f"cap_fe=0 cap_fver=0 cap_frootid=0")


def exec_event(i):
    argv, exe, uid, cwd = COMMANDS[i % len(COMMANDS)]
    pid = 20000 + i % 30000
    args = " ".join(f'a{j}="{a}"' for j, a in enumerate(argv))
    title = "\0".join(argv).encode().hex().upper()
    return [
        syscall(59, 0, ["55d0175650a0", "55d017565100", "55d017565180", "8"], 2, pid, uid,
                os.path.basename(exe)[:15], exe, '"exec"'),
        f"type=EXECVE {{h}} argc={len(argv)} {args}",
        f'type=CWD {{h}} cwd="{cwd}"',
        path(0, exe, 1310000 + i % 97, "0100755", "NORMAL"),
        path(1, "/lib64/ld-linux-x86-64.so.2", 1312000, "0100755", "NORMAL"),
        f"type=PROCTITLE {{h}} proctitle={title}",
        "type=EOE {h} ",
    ]


def read_event(i):
    name = READS[i % len(READS)]
    pid = 50000 + i % 10000
    return [
        syscall(257, 3, ["ffffff9c", "7f3a2c1d4e10", "80000", "0"], 1, pid, 1000, "bash",
                "/usr/bin/bash", "(null)"),
        'type=CWD {h} cwd="/home/alice"',
        path(0, name, 1400000 + i % 89, "0100644", "NORMAL"),
        "type=PROCTITLE {h} proctitle=62617368",
        "type=EOE {h} ",
    ]


# The synthetic events of one repetition, spread evenly between the captures' records (at
# event boundaries: after an EOE).
extra = [exec_event(i) for i in range(execs)] + [read_event(i) for i in range(reads)]
boundaries = [i for i, p in enumerate(parsed) if p[0].startswith(b"type=EOE")] or [0]
slots = {}
for k, ev in enumerate(extra):
    slots.setdefault(boundaries[k * len(boundaries) // max(len(extra), 1)], []).append(ev)
per_rep = len(parsed) + sum(len(e) for e in extra)

n = 0
rep = 0
with open(out, "wb") as o:
    while n < want:
        off = rep * (max_serial + len(extra))
        toff = rep * 3
        k = 0
        for idx, (pre, sec, ms, serial, post) in enumerate(parsed):
            t = sec - t0 + 1_800_000_000 + toff
            o.write(b"%smsg=audit(%d.%s:%d)%s\n" % (pre, t, ms, serial + off, post))
            n += 1
            for ev in slots.get(idx, []):
                h = f"msg=audit({t}.{ms.decode()}:{off + max_serial + k}):"
                k += 1
                for rec in ev:
                    o.write(rec.replace("{h}", h).encode() + b"\n")
                    n += 1
        rep += 1
mix = f" and {execs} execve + {reads} read-only open events" if extra else ""
print(f"{out}: {n} records, {rep} repetitions of {len(parsed)} captured records{mix}")

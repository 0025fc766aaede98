#!/usr/bin/env python3
"""Hostile filenames, end to end: the helper of tests/e2e/hostile.sh.

  hostile.py create DIR OUT   as wwalice, over loopback ssh, make files and directories with
                              hostile names under DIR (sftp, scp, rsync); writes OUT/expect
  hostile.py check COLLECT OUT
                              check what rsyslog collected against OUT/expect

Names travel as bytes from here to the tools' argv and sftp batch files, never through a shell
word split, so what the tool is asked to create is exactly what we expect in the alert.

COLLECT holds one line per syslog message as rsyslog received it: the raw message, JSON-string
escaped by rsyslog (`%rawmsg:::json%`), so a message that itself held a newline stays one line
and is caught, and two messages can never merge.
"""
import json
import os
import re
import subprocess
import sys

ENV_SH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "env.sh")
SSH_CONFIG = os.environ.get("WW_SSH_CONFIG", "/run/wwatchd-e2e/ssh_config")
USER = "wwalice"
HOST = USER + "@127.0.0.1"

# Names put with sftp (batch mode, double-quoted). sftp reads its batch a line at a time, so
# a newline cannot be in these; those go through scp and rsync below.
SFTP_NAMES = [
    b"cr\rtab\tx",
    b'quote"back\\slash',
    b"esc\x1b[31mred\x1b[0m\x1b]0;title\x07",
    b"bad\xff\xfe\xc3(utf8",
    b"pct%s%n%d <13>1 fake",
    b"sq'x y z",
    b"c1\xc2\x9bcsi\xe2\x80\xa8ls\xc2\x85nel",
    b'{"json":"inject","file":{"path":"\\u002fetc"}}',  # no '/': that would be a directory
    b"del\x7fvt\x0bff\x0cbs\x08",
]
# Newline and an injected syslog line: scp (SFTP protocol since OpenSSH 9.0) carries any byte
# but NUL in the remote path.
SCP_NAMES = [b"scp-nl\n<13>1 2026-01-01T00:00:00Z evilhost fake 1 alert - {\"injected\":1}\nend"]
# rsync with --secluded-args (-s) sends the names over its protocol rather than the remote
# shell's command line; --inplace makes it create NAME itself instead of .NAME.XXXXXX.
RSYNC_NAMES = [b"rsync-nl\n<14>Jan  1 00:00:00 evilhost fake[1]: injected 3164\r\n"]
# A path of about 4 KiB (PATH_MAX is 4096 with the NUL; NAME_MAX 255), built as a chain of
# directories by sftp mkdir + cd (short batch lines: sftp's line buffer is 2 KiB), so every
# directory and the final file are created by the listed tool.
LONG_COMPONENT = b"d%02d-\x1b[1m\"\t\\%%%%s " + b"x" * 190
LONG_TOTAL = 4095
# A shorter chain whose bytes are not UTF-8: its exact bytes travel as hex in
# wwatchd.raw.file.path, twice as long, so it must stay under the cap. Since alerts carry
# ECS 9's host.*, agent.*, event.id and related.* (issue 12), a 2,474-byte non-UTF-8 path no
# longer keeps its exact bytes under the default 8 KiB (measured); 2.8 KiB did before.
RAW_COMPONENT = b"r%02d-\xff\xfe\xc0 " + b"y" * 120
RAW_TOTAL = 2100


def sftp_quote(b):
    return b'"' + b.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def as_user(*argv):
    """Run argv (bytes or str) as USER via env.sh's ww_as; True when it exits 0."""
    cmd = ["bash", "-c", '. "$0"; ww_as "$@"', ENV_SH, USER] + list(argv)
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    if r.returncode != 0:
        sys.stderr.write(f"hostile.py: {argv[0]} exited {r.returncode}: "
                         f"{r.stderr.decode(errors='replace')[-400:]}\n")
    return r.returncode == 0


def chain(top, component, total, leaf):
    """Directories under `top` made of `component % i` until the path nears `total`, then a
    file named `leaf` padded so the whole path is exactly `total` bytes."""
    dirs, comps, p, i = [], [], top, 0
    while True:
        c = component % i
        if len(p) + 1 + len(c) + 1 + len(leaf) + 16 > total:
            break
        p = p + b"/" + c
        dirs.append(p)
        comps.append(c)
        i += 1
    name = leaf + b"z" * (total - len(p) - 1 - len(leaf))
    return dirs, comps, name, p + b"/" + name


def create(d, out):
    d = d.encode()
    src = os.path.join(out, "src.bin").encode()
    with open(src, "wb") as f:
        f.write(os.urandom(512))
    os.chmod(src, 0o644)
    expect = []  # (path bytes, process.name)

    batch = []
    for n in SFTP_NAMES:
        batch.append(b"put " + src + b" " + sftp_quote(d + b"/" + n))
        expect.append((d + b"/" + n, "sftp-server"))
    for top, comp, total, leaf in ((d + b"/long", LONG_COMPONENT, LONG_TOTAL, b"f-\x1b\r\"end-"),
                                   (d + b"/raw\xff", RAW_COMPONENT, RAW_TOTAL, b"f-\xff-")):
        dirs, comps, name, path = chain(top, comp, total, leaf)
        batch += [b"mkdir " + sftp_quote(top), b"cd " + sftp_quote(top)]
        expect.append((top, "sftp-server"))
        for c, full in zip(comps, dirs):
            batch += [b"mkdir " + sftp_quote(c), b"cd " + sftp_quote(c)]
            expect.append((full, "sftp-server"))
        batch.append(b"put " + src + b" " + sftp_quote(name))
        expect.append((path, "sftp-server"))
    bfile = os.path.join(out, "sftp.batch")
    with open(bfile, "wb") as f:
        f.write(b"\n".join(batch) + b"\n")
    os.chmod(bfile, 0o644)

    ssh = ["-q", "-F", SSH_CONFIG]
    ok = as_user("sftp", *ssh, "-b", bfile, HOST)
    for n in SCP_NAMES:
        ok &= as_user("scp", *ssh, src, HOST.encode() + b":" + d + b"/" + n)
        expect.append((d + b"/" + n, "sftp-server"))
    for n in RSYNC_NAMES:
        ok &= as_user("rsync", "-s", "--inplace", "-e", "ssh " + " ".join(ssh), src,
                      HOST.encode() + b":" + d + b"/" + n)
        expect.append((d + b"/" + n, "rsync"))

    missing = [p for p, _ in expect if not os.path.lexists(p)]
    for p in missing[:3]:
        sys.stderr.write(f"hostile.py: the tool did not create {p[:120]!r}… ({len(p)} bytes)\n")
    with open(os.path.join(out, "expect"), "w") as f:
        for p, proc in expect:
            f.write(f"{p.hex()} {proc}\n")
    print(f"created {len(expect) - len(missing)} of {len(expect)}; longest path "
          f"{max(len(p) for p, _ in expect)} bytes")
    return 0 if ok and not missing else 1


H5424 = re.compile(r"<\d{1,3}>1 \S+ \S+ wwatchd \d+ (?P<kind>alert|diag) - (?P<body>.*)", re.S)
H3164 = re.compile(r"<\d{1,3}>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d (?:\S+ )?wwatchd\[\d+\]: "
                   r"(?P<diag>wwatchd-diag: )?(?P<body>.*)", re.S)


def parse(msg):
    """(kind, body) of one of our messages, or None when it is not one of ours."""
    m = H5424.fullmatch(msg)
    if m:
        return m["kind"], m["body"]
    m = H3164.fullmatch(msg)
    if m:
        return ("diag" if m["diag"] else "alert"), m["body"]
    return None


def alerts(collect):
    """(alert documents, problems) from a collect file."""
    docs, problems = [], []
    with open(collect, "rb") as f:
        lines = f.read().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for i, line in enumerate(lines, 1):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            problems.append(f"line {i}: not UTF-8: {line[:200]!r}")
            text = line.decode("utf-8", "surrogateescape")
        try:
            msg = json.loads('"' + text + '"')
        except ValueError as e:
            problems.append(f"line {i}: rsyslog's escaped raw message does not decode: {e}")
            continue
        if any(ord(c) < 0x20 or ord(c) == 0x7f for c in msg):
            problems.append(f"line {i}: raw control character in the message: {msg[:200]!r}")
        p = parse(msg)
        if p is None:
            problems.append(f"line {i}: not one of our messages (injected?): {msg[:200]!r}")
            continue
        kind, body = p
        if kind != "alert":
            continue
        try:
            doc = json.loads(body)  # strict: raw control characters in strings are errors
        except ValueError as e:
            problems.append(f"line {i}: alert JSON invalid ({e}): {body[:200]!r}")
            continue
        if not isinstance(doc, dict):
            problems.append(f"line {i}: alert JSON is not an object")
            continue
        docs.append(doc)
    return docs, problems


def decoded_path(doc):
    """The path's exact bytes, or a string saying why there are none (e.g. cut hex)."""
    raw = doc.get("wwatchd", {}).get("raw", {}).get("file.path")
    if raw is not None:
        try:
            return bytes.fromhex(raw)
        except ValueError:
            return f"wwatchd.raw.file.path is not hex: {raw[-60:]!r}"
    p = doc.get("file", {}).get("path")
    return "no file.path" if p is None else p.encode("utf-8")


def check(collect, out):
    """Print one verdict line per check: `ok|bad WHAT [detail]`."""
    expect = {}
    with open(os.path.join(out, "expect")) as f:
        for line in f:
            h, proc = line.split()
            expect[bytes.fromhex(h)] = proc
    docs, problems = alerts(collect)
    verdicts = []

    def v(good, what, detail=""):
        verdicts.append(("ok" if good else "bad", what, detail))

    v(not problems, "every message is one of ours, one line, valid JSON, no raw control",
      "; ".join(problems[:5]))
    seen = {}
    for doc in docs:
        p = decoded_path(doc)
        seen.setdefault(p, []).append(doc)
    wrong = []
    for p, proc in expect.items():
        hits = seen.get(p, [])
        if len(hits) != 1:
            wrong.append(f"{len(hits)} alerts for {p[:80]!r}… ({len(p)} bytes)")
        elif hits[0].get("process", {}).get("name") != proc:
            wrong.append(f"{p[:60]!r}: process.name {hits[0].get('process', {}).get('name')}")
    v(not wrong, f"exactly one alert per created path, decoded path byte for byte "
      f"({len(expect)} paths)", "; ".join(wrong[:5]))
    extra = [p for p in seen if p not in expect]
    v(not extra, "no alert for any other path (nothing split or forged)",
      "; ".join(repr(p[:80]) for p in extra[:5]))
    longest = max(expect, key=len)
    trimmed = [d for d in seen.get(longest, []) if d.get("wwatchd", {}).get("truncated")]
    v(len(seen.get(longest, [])) == 1,
      f"the {len(longest)}-byte path survives the 8 KiB cap"
      + (" (other fields trimmed)" if trimmed else ""))
    for good, what, detail in verdicts:
        print(good, what + ((" -- " + detail) if detail and good == "bad" else ""))
    return 0


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("create", "check"):
        sys.stderr.write(__doc__)
        return 2
    if sys.argv[1] == "create":
        return create(sys.argv[2], sys.argv[3])
    return check(sys.argv[2], sys.argv[3])


if __name__ == "__main__":
    sys.exit(main())

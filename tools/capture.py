#!/usr/bin/env python3
"""capture.py: record golden audit fixtures from real file transfers over loopback.

Where it sits: test tooling, upstream of tests/fixtures/. It runs real scp,
sftp, rsync and FTP transfers by non-root users through the sshd and vsftpd of
tests/e2e/env.sh, reads what the kernel records from the audit multicast group
(AUDIT_NLGRP_READLOG, beside auditd, never taking its unicast stream), and
writes per scenario:

  tests/fixtures/NAME.log          RAW audit.log lines of that scenario's window
  tests/fixtures/NAME.expect.json  what the driver did: each created path, the
                                   process the kernel records, and whether the
                                   Elastic rule alerts on it

Run as root: bash tools/capture.sh [--only NAME ...]. Python 3 stdlib only.
"""

import argparse
import errno
import fnmatch
import json
import os
import posixpath
import re
import shlex
import signal
import socket
import stat
import struct
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV_SH = os.path.join(ROOT, "tests", "e2e", "env.sh")
KEY = "wwatchd-capture"
WATCH_DIRS = ["/tmp", "/var/tmp", "/dev/shm", "/home", "/srv/wwcapture"]
SYSCALLS = ("open,openat,openat2,creat,mkdir,mkdirat,mknod,mknodat,"
            "link,linkat,symlink,symlinkat,rename,renameat,renameat2")

# ---------------------------------------------------------------- record types
# Numbers from linux/audit.h, names as auditd writes them (libaudit msg_typetab.h).
TYPE_NAMES = {
    1000: "GET", 1001: "SET", 1002: "LIST", 1003: "ADD", 1004: "DEL", 1005: "USER",
    1006: "LOGIN", 1007: "WATCH_INS", 1008: "WATCH_REM", 1009: "WATCH_LIST",
    1010: "SIGNAL_INFO", 1011: "ADD_RULE", 1012: "DEL_RULE", 1013: "LIST_RULES",
    1014: "TRIM", 1015: "MAKE_EQUIV", 1016: "TTY_GET", 1017: "TTY_SET",
    1018: "SET_FEATURE", 1019: "GET_FEATURE",
    1100: "USER_AUTH", 1101: "USER_ACCT", 1102: "USER_MGMT", 1103: "CRED_ACQ",
    1104: "CRED_DISP", 1105: "USER_START", 1106: "USER_END", 1107: "USER_AVC",
    1108: "USER_CHAUTHTOK", 1109: "USER_ERR", 1110: "CRED_REFR", 1111: "USYS_CONFIG",
    1112: "USER_LOGIN", 1113: "USER_LOGOUT", 1114: "ADD_USER", 1115: "DEL_USER",
    1116: "ADD_GROUP", 1117: "DEL_GROUP", 1118: "DAC_CHECK", 1119: "CHGRP_ID",
    1120: "TEST", 1121: "TRUSTED_APP", 1122: "USER_SELINUX_ERR", 1123: "USER_CMD",
    1124: "USER_TTY", 1125: "CHUSER_ID", 1126: "GRP_AUTH", 1127: "SYSTEM_BOOT",
    1128: "SYSTEM_SHUTDOWN", 1129: "SYSTEM_RUNLEVEL", 1130: "SERVICE_START",
    1131: "SERVICE_STOP", 1132: "GRP_MGMT", 1133: "GRP_CHAUTHTOK", 1134: "MAC_CHECK",
    1135: "ACCT_LOCK", 1136: "ACCT_UNLOCK", 1137: "USER_DEVICE", 1138: "SOFTWARE_UPDATE",
    1200: "DAEMON_START", 1201: "DAEMON_END", 1202: "DAEMON_ABORT",
    1203: "DAEMON_CONFIG", 1204: "DAEMON_RECONFIG", 1205: "DAEMON_ROTATE",
    1206: "DAEMON_RESUME", 1207: "DAEMON_ACCEPT", 1208: "DAEMON_CLOSE",
    1209: "DAEMON_ERR",
    1300: "SYSCALL", 1302: "PATH", 1303: "IPC", 1304: "SOCKETCALL",
    1305: "CONFIG_CHANGE", 1306: "SOCKADDR", 1307: "CWD", 1309: "EXECVE",
    1311: "IPC_SET_PERM", 1312: "MQ_OPEN", 1313: "MQ_SENDRECV", 1314: "MQ_NOTIFY",
    1315: "MQ_GETSETATTR", 1316: "KERNEL_OTHER", 1317: "FD_PAIR", 1318: "OBJ_PID",
    1319: "TTY", 1320: "EOE", 1321: "BPRM_FCAPS", 1322: "CAPSET", 1323: "MMAP",
    1324: "NETFILTER_PKT", 1325: "NETFILTER_CFG", 1326: "SECCOMP", 1327: "PROCTITLE",
    1328: "FEATURE_CHANGE", 1329: "REPLACE", 1330: "KERN_MODULE", 1331: "FANOTIFY",
    1332: "TIME_INJOFFSET", 1333: "TIME_ADJNTPVAL", 1334: "BPF",
    1335: "EVENT_LISTENER", 1336: "URINGOP", 1337: "OPENAT2",
    1400: "AVC", 1401: "SELINUX_ERR", 1402: "AVC_PATH",
    1700: "ANOM_PROMISCUOUS", 1701: "ANOM_ABEND", 1702: "ANOM_LINK", 1703: "ANOM_CREAT",
    2000: "KERNEL",
    2100: "ANOM_LOGIN_FAILURES", 2101: "ANOM_LOGIN_TIME", 2102: "ANOM_LOGIN_SESSIONS",
    2103: "ANOM_LOGIN_ACCT", 2104: "ANOM_LOGIN_LOCATION", 2105: "ANOM_MAX_DAC",
    2106: "ANOM_MAX_MAC", 2107: "ANOM_AMTU_FAIL", 2108: "ANOM_RBAC_FAIL",
    2109: "ANOM_RBAC_INTEGRITY_FAIL", 2110: "ANOM_CRYPTO_FAIL", 2111: "ANOM_ACCESS_FS",
    2112: "ANOM_EXEC", 2113: "ANOM_MK_EXEC", 2114: "ANOM_ADD_ACCT", 2115: "ANOM_DEL_ACCT",
    2116: "ANOM_MOD_ACCT", 2117: "ANOM_ROOT_TRANS", 2118: "ANOM_LOGIN_SERVICE",
    2119: "ANOM_LOGIN_ROOT", 2120: "ANOM_ORIGIN_FAILURES", 2121: "ANOM_SESSION",
    2300: "USER_ROLE_CHANGE", 2301: "ROLE_ASSIGN", 2302: "ROLE_REMOVE",
    2400: "CRYPTO_TEST_USER", 2401: "CRYPTO_PARAM_CHANGE_USER", 2402: "CRYPTO_LOGIN",
    2403: "CRYPTO_LOGOUT", 2404: "CRYPTO_KEY_USER", 2405: "CRYPTO_FAILURE_USER",
    2406: "CRYPTO_REPLAY_USER", 2407: "CRYPTO_SESSION", 2408: "CRYPTO_IKE_SA",
    2409: "CRYPTO_IPSEC_SA",
}


def type_name(n):
    return TYPE_NAMES.get(n, "UNKNOWN[%d]" % n)


# Syscall numbers (x86_64 "c000003e", i386 "40000003") that can put a CREATE on a PATH.
# value: (name, index of the dirfd argument for the new name, or None)
SYSCALL_TABLE = {
    "c000003e": {2: ("open", None), 85: ("creat", None), 83: ("mkdir", None),
                 133: ("mknod", None), 86: ("link", None), 88: ("symlink", None),
                 82: ("rename", None), 257: ("openat", 0), 258: ("mkdirat", 0),
                 259: ("mknodat", 0), 265: ("linkat", 2), 266: ("symlinkat", 1),
                 264: ("renameat", 2), 316: ("renameat2", 2), 437: ("openat2", 0)},
    "40000003": {5: ("open", None), 8: ("creat", None), 39: ("mkdir", None),
                 14: ("mknod", None), 9: ("link", None), 83: ("symlink", None),
                 38: ("rename", None), 295: ("openat", 0), 296: ("mkdirat", 0),
                 297: ("mknodat", 0), 303: ("linkat", 2), 304: ("symlinkat", 1),
                 302: ("renameat", 2), 353: ("renameat2", 2), 437: ("openat2", 0)},
}
CREATION_SYSCALLS = {"open", "openat", "openat2", "creat", "mkdir", "mkdirat",
                     "mknod", "mknodat", "link", "linkat", "symlink", "symlinkat"}
AT_FDCWD = 0xFFFFFF9C

# The Elastic rule "Remote File Creation in World Writeable Directory", v3.
RULE_PROCESSES = {"scp", "sshd", "ssh", "ftp", "sftp", "vsftpd", "sftp-server", "rsync"}
SEED_RULE_ID = "3e528511-7316-4a6e-83da-61b5f1c07fd4"
# Its built-in companion for OpenSSH >= 9.8: the same query with only these processes.
COMPANION_PROCESSES = {"sshd-session", "sshd-auth"}
COMPANION_RULE_ID = "61f88af8-7b6d-4103-829a-dae6ab96a2b9"


def rule_path_matches(path):
    """`file.path like~ ("/tmp*", "/var/tmp*", "/dev/shm/*", "/home/.*")`: like~ is
    case-insensitive and `*` spans `/`, so these are case-insensitive prefixes."""
    p = path.lower()
    return any(p.startswith(x) for x in (b"/tmp", b"/var/tmp", b"/dev/shm/", b"/home/."))


def alerting_rule(comm, path, uid, creation):
    """The rule_id of the built-in rule that alerts, or None (the two process lists are
    disjoint, so at most one does). comm: str or the record's bytes; `in` is exact."""
    if isinstance(comm, bytes):
        comm = comm.decode("utf-8", "surrogateescape")
    if not (creation and rule_path_matches(path) and uid != 0):
        return None
    if comm in RULE_PROCESSES:
        return SEED_RULE_ID
    if comm in COMPANION_PROCESSES:
        return COMPANION_RULE_ID
    return None


def rule_alerts(comm, path, uid, creation):
    return alerting_rule(comm, path, uid, creation) is not None


# ------------------------------------------------------------------- netlink
NETLINK_AUDIT = 9
AUDIT_NLGRP_READLOG = 1
SO_RCVBUFFORCE = 33
NLMSG_HDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid


class Listener:
    """Multicast reader: one thin thread appending (recv time, type, text)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_AUDIT)
        # Groups bitmask: group N is bit N-1.
        self.sock.bind((0, 1 << (AUDIT_NLGRP_READLOG - 1)))
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 16 << 20)
        except OSError as e:
            print("capture: SO_RCVBUFFORCE failed (%s); losses possible" % e, file=sys.stderr)
        self.sock.settimeout(0.2)
        self.records = []
        self.enobufs = 0
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping:
            try:
                data, (sender, _groups) = self.sock.recvfrom(1 << 16)
            except socket.timeout:
                continue
            except InterruptedError:
                continue
            except OSError as e:
                if e.errno == errno.ENOBUFS:
                    self.enobufs += 1
                    continue
                raise
            if sender != 0:  # only the kernel speaks on this group
                continue
            now = time.time()
            off = 0
            while off + NLMSG_HDR.size <= len(data):
                ln, typ, _flags, _seq, _pid = NLMSG_HDR.unpack_from(data, off)
                if ln < NLMSG_HDR.size or off + ln > len(data):
                    ln = len(data) - off  # one record per datagram on 6.18
                text = data[off + NLMSG_HDR.size: off + ln].rstrip(b"\0")
                self.records.append((now, typ, text))
                off += (ln + 3) & ~3

    def close(self):
        self.stopping = True
        self.thread.join(2)
        self.sock.close()


# ----------------------------------------------------------------- audit rules
def rule_specs(dirs):
    return [["-F", "arch=" + arch, "-S", SYSCALLS, "-F", "dir=" + d,
             "-F", "success=1", "-k", KEY]
            for d in dirs for arch in ("b64", "b32")]


def install_rules(dirs=WATCH_DIRS):
    for spec in rule_specs(dirs):
        subprocess.run(["auditctl", "-a", "always,exit"] + spec, check=True,
                       stdout=subprocess.DEVNULL)


def remove_rules():
    """Delete every rule carrying our key, as listed, and nothing else."""
    out = subprocess.run(["auditctl", "-l"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.startswith("-a ") and line.endswith("key=" + KEY):
            subprocess.run(["auditctl", "-d"] + shlex.split(line)[1:],
                           stdout=subprocess.DEVNULL)
    left = [l for l in subprocess.run(["auditctl", "-l"], capture_output=True,
                                      text=True).stdout.splitlines() if KEY in l]
    if left:
        print("capture: WARNING: rules left behind: %s" % left, file=sys.stderr)


# ------------------------------------------------------------ record parsing
HDR_RE = re.compile(rb"^audit\((\d+)\.(\d+):(\d+)\): ")
FIELD_RE = re.compile(rb"([A-Za-z_0-9-]+)=(\"[^\"]*\"|'[^']*'|\S+)")


def stamp(text):
    m = HDR_RE.match(text)
    return (int(m.group(1)) + int(m.group(2)) / 1000.0, int(m.group(3))) if m else (0.0, 0)


def fields(text):
    d = {}
    for k, v in FIELD_RE.findall(text):
        d.setdefault(k.decode(), v)
    return d


def untrusted(v):
    """An audit string field: "quoted", (null), or hex for anything unusual."""
    if v is None:
        return None
    if v.startswith(b'"') and v.endswith(b'"'):
        return v[1:-1]
    if v == b"(null)":
        return None
    try:
        return bytes.fromhex(v.decode())
    except ValueError:
        return v


def as_int(v, base=10):
    try:
        return int(v, base)
    except (TypeError, ValueError):
        return None


def group_events(records):
    """serial -> list of (type, text, fields), in arrival order."""
    events = {}
    for _t, typ, text in records:
        _ts, serial = stamp(text)
        events.setdefault(serial, []).append((typ, text, fields(text)))
    return events


def creations(records, dir_by_inode):
    """Each PATH nametype=CREATE in syscall events, resolved to an absolute path."""
    out = []
    for serial, recs in group_events(records).items():
        sc = next((f for t, _x, f in recs if t == 1300), None)
        if sc is None:
            continue
        arch = sc.get("arch", b"").decode()
        nr = as_int(sc.get("syscall"))
        sname, dirfd_arg = SYSCALL_TABLE.get(arch, {}).get(nr, ("nr%s" % nr, None))
        cwd = next((untrusted(f.get("cwd")) for t, _x, f in recs if t == 1307), b"/")
        paths = [f for t, _x, f in recs if t == 1302]
        dirfd_rel = False
        if dirfd_arg is not None:
            a = as_int(sc.get("a%d" % dirfd_arg, b""), 16)
            dirfd_rel = a is not None and (a & 0xFFFFFFFF) != AT_FDCWD
        parent = None
        for p in paths:
            nt = p.get("nametype")
            if nt == b"PARENT":
                parent = p
            if nt != b"CREATE":
                continue
            name = untrusted(p.get("name")) or b""
            if name.startswith(b"/"):
                full = name
            elif dirfd_rel:
                key = (parent.get("dev", b"").decode(), parent.get("inode", b"").decode()) \
                    if parent else None
                base = dir_by_inode.get(key)
                full = posixpath.join(base, name) if base else b"<dirfd?>/" + name
            else:
                full = posixpath.join(cwd, name)
            out.append({
                "serial": serial,
                "path": posixpath.normpath(full),
                "name_field": name,
                "parent_name_field": untrusted(parent.get("name")) if parent else None,
                "cwd": cwd,
                "syscall": sname,
                "dirfd_relative": dirfd_rel,
                "comm": untrusted(sc.get("comm")),
                "exe": untrusted(sc.get("exe")),
                "uid": as_int(sc.get("uid")),
                "euid": as_int(sc.get("euid")),
                "auid": as_int(sc.get("auid")),
                "ses": as_int(sc.get("ses")),
                "mode": (p.get("mode") or b"").decode(),
            })
    return out


def observed_alerts(cr):
    return sorted({c["path"] for c in cr
                   if rule_alerts(c["comm"], c["path"], c["uid"], c["syscall"] in CREATION_SYSCALLS)})


# ---------------------------------------------------------- manifest strings
def path_str(b):
    """Exact bytes as a JSON-able string: valid UTF-8 as is; each byte that is not
    part of valid UTF-8 as the four characters \\xNN. (No fixture name holds a
    backslash, so this is unambiguous; path_hex is exact regardless.)"""
    return b.decode("utf-8", "backslashreplace")


# ---------------------------------------------------------------- the driver
class Driver:
    def __init__(self, args):
        self.args = args
        self.listener = None
        self.uids = {}
        self.src = b"/run/wwatchd-e2e/src"
        self.failures = []
        self.home_mode = None

    # -- helpers
    def sh(self, script, check=True, **kw):
        """Run bash with env.sh sourced."""
        return subprocess.run(["bash", "-c", '. "$0" || exit 1\n' + script, ENV_SH],
                              check=check, **kw)

    def as_user(self, user, argv, cwd=None, input=None, check=True):
        """argv as USER via env.sh's ww_as (setpriv, no PAM); argv may hold bytes."""
        pre = ["bash", "-c", '. "$0" || exit 1; cd "$1" || exit 1; shift 2; ww_as "$@"',
               ENV_SH, cwd or "/", "_", user]
        r = subprocess.run(pre + list(argv), input=input, capture_output=True)
        if check and r.returncode != 0:
            raise RuntimeError("as %s: %r failed (%d): %s %s" % (
                user, argv, r.returncode, r.stdout.decode(errors="replace"),
                r.stderr.decode(errors="replace")))
        return r

    def ssh_opts(self):
        return ["-F", "/run/wwatchd-e2e/ssh_config"]

    def dir_by_inode(self):
        m = {}
        cands = ["/", "/tmp", "/var/tmp", "/dev/shm", "/home", "/srv/wwcapture", "/srv"]
        cands += ["/home/" + n for n in os.listdir("/home")]
        for d in cands:
            try:
                st = os.stat(d)
            except OSError:
                continue
            key = ("%02x:%02x" % (os.major(st.st_dev), os.minor(st.st_dev)), str(st.st_ino))
            m[key] = d.encode()
        return m

    @staticmethod
    def rm(path):
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                os.rmdir(path)
            else:
                os.unlink(path)
        except FileNotFoundError:
            pass

    def precreate(self, path, user):
        """A file that exists before the window (so the scenario does not create it)."""
        with open(path, "wb") as f:
            f.write(b"old contents\n")
        os.chown(path, self.uids[user], self.uids[user])

    # -- setup and teardown
    def setup(self):
        self.sh("ww_start_all")
        for u in ("wwalice", "wwbob"):
            self.uids[u] = int(subprocess.check_output(["id", "-u", u]))
        self.uids["root"] = 0
        os.makedirs(self.src, exist_ok=True)
        os.chmod(self.src, 0o755)
        with open(os.path.join(self.src, b"src.bin"), "wb") as f:
            f.write(os.urandom(4096))
        os.chmod(os.path.join(self.src, b"src.bin"), 0o644)
        os.makedirs("/srv/wwcapture", exist_ok=True)
        os.chmod("/srv/wwcapture", 0o1777)
        self.listener = Listener()
        remove_rules()  # a crashed earlier run's, by our key only
        install_rules()

    def teardown(self):
        if self.home_mode is not None:
            os.chmod("/home", self.home_mode)
            self.home_mode = None
        remove_rules()
        if self.listener:
            self.listener.close()
        try:
            os.rmdir("/srv/wwcapture")  # ours, and empty once the scenarios cleaned up
        except OSError:
            pass
        if not self.args.keep_env:
            self.sh("ww_stop_all", check=False)

    # -- one scenario
    def run_scenario(self, name, fn):
        print("== %s" % name, file=sys.stderr)
        self.entries = []
        self.commands = []
        prep = getattr(self, "prep_" + name, None)
        if prep:
            prep()
        time.sleep(0.3)  # prep's own records fall before the window
        t0 = time.time()
        idx = len(self.listener.records)
        enobufs0 = self.listener.enobufs
        fn()
        self.drain(idx)
        t1 = time.time()
        recs = [r for r in self.listener.records[idx:] if stamp(r[2])[0] >= t0 - 0.002]
        recs = self.ours(recs)
        if self.listener.enobufs != enobufs0:
            self.failures.append("%s: ENOBUFS, records lost" % name)
        self.write(name, recs, t1 - t0)
        for e in self.entries:
            if e.get("cleanup", True):
                p = e["_path"]
                if e.get("_glob"):
                    continue
                self.rm(p)
        post = getattr(self, "post_" + name, None)
        if post:
            post()

    def drain(self, idx):
        """Wait until the stream has been quiet for 0.5 s and every syscall event
        has its EOE, 5 s at most."""
        time.sleep(0.5)
        deadline = time.time() + 5
        last = len(self.listener.records)
        quiet_since = time.time()
        while time.time() < deadline:
            time.sleep(0.1)
            n = len(self.listener.records)
            if n != last:
                last, quiet_since = n, time.time()
                continue
            if time.time() - quiet_since < 0.5:
                continue
            ev = group_events(self.listener.records[idx:])
            if all(any(t == 1320 for t, _x, _f in r) for r in ev.values()
                   if any(t == 1300 for t, _x, _f in r)):
                return

    def ours(self, recs):
        """Keep the records of this scenario's sessions and users; drop whatever
        else the machine did in the window."""
        test_uids = {self.uids["wwalice"], self.uids["wwbob"]}
        sessions = set()
        for _t, typ, text in recs:
            f = fields(text)
            ses = as_int(f.get("ses"))
            if b"addr=127.0.0.1" in text and ses is not None and ses != 4294967295:
                sessions.add(ses)
            if typ == 1006 and as_int(f.get("auid")) in test_uids:
                sessions.add(as_int(f.get("ses")))
        keep_serials = set()
        for serial, rs in group_events(recs).items():
            for typ, text, f in rs:
                if (as_int(f.get("uid")) in test_uids or as_int(f.get("auid")) in test_uids
                        or as_int(f.get("ses")) in sessions
                        or (typ < 1300 and b"addr=127.0.0.1" in text)
                        or (typ == 1302 and b"wwcap" in (untrusted(f.get("name")) or b""))):
                    keep_serials.add(serial)
        return [r for r in recs if stamp(r[2])[1] in keep_serials]

    # -- manifest entries
    def expect(self, path, process, user, why, creation=True, path_like=None, tool=None):
        """One created path, with the process the kernel will record (comm)."""
        uid = self.uids[user]
        pat = path_like.encode() if isinstance(path_like, str) else path_like
        rule_id = alerting_rule(process, pat or path, uid, creation)
        self.entries.append({
            "_path": path, "_glob": pat, "process": process, "tool": tool or process,
            "user": user, "uid": uid, "creation": creation, "alert": rule_id is not None,
            "why": why, "_rule_id": rule_id,
        })

    def write(self, name, recs, secs):
        out = self.args.out
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, name + ".log"), "wb") as f:
            for _t, typ, text in recs:
                f.write(b"type=" + type_name(typ).encode() + b" msg=" + text + b"\n")
        cr = creations(recs, self.dir_by_inode())
        entries = []
        for e in self.entries:
            if e["_glob"]:
                hits = [c for c in cr if fnmatch.fnmatchcase(c["path"], e["_glob"])
                        and c["comm"] == e["process"].encode()]
            else:
                hits = [c for c in cr if c["path"] == e["_path"]]
            path = hits[0]["path"] if (e["_glob"] and hits) else (e["_glob"] or e["_path"])
            j = {"path": path_str(path), "path_hex": path.hex()}
            if e["_glob"]:
                j["path_like"] = path_str(e["_glob"])
            j.update({k: e[k] for k in ("tool", "process", "user", "uid", "creation",
                                        "alert", "why")})
            if e["_rule_id"] not in (None, SEED_RULE_ID):
                j["rule_id"] = e["_rule_id"]  # absent: the seed rule (tests/golden.rs)
            if hits:
                h = hits[0]
                j["observed"] = {
                    "comm": path_str(h["comm"] or b""), "exe": path_str(h["exe"] or b""),
                    "syscall": h["syscall"], "nametype": "CREATE", "uid": h["uid"],
                    "auid": h["auid"], "dirfd_relative": h["dirfd_relative"],
                    "name_field": path_str(h["name_field"]),
                    "parent_name_field": path_str(h["parent_name_field"] or b""),
                    "cwd": path_str(h["cwd"] or b""), "serial": h["serial"],
                }
                if h["comm"] != e["process"].encode():
                    self.failures.append("%s: %s: expected process %s, kernel recorded %r"
                                         % (name, path_str(path), e["process"], h["comm"]))
            else:
                j["observed"] = None
                if e["creation"] or e.get("_expect_create"):
                    self.failures.append("%s: no CREATE record for %s" % (name, path_str(path)))
            entries.append(j)
        # The self-check: a reading of the log by the rule must give the manifest.
        want = sorted(e["path"] for e in entries if e["alert"])
        got = sorted(path_str(p) for p in observed_alerts(cr))
        if want != got:
            self.failures.append("%s: manifest alerts %s but the log alerts %s"
                                 % (name, want, got))
        unlisted = sorted({path_str(c["path"]) for c in cr} - {e["path"] for e in entries})
        manifest = {
            "scenario": name,
            "description": self.describe[name],
            "commands": self.commands,
            "window_seconds": round(secs, 2),
            "records": len(recs),
            "entries": entries,
            "other_creates_in_log": unlisted,
        }
        with open(os.path.join(out, name + ".expect.json"), "w") as f:
            json.dump(manifest, f, indent=2, ensure_ascii=False)
            f.write("\n")
        print("   %d records, %d entries, alerts %s" % (len(recs), len(entries), got),
              file=sys.stderr)

    # -- transfers
    def run(self, user, argv, cwd=None, input=None, note=None):
        shown = [a.decode("utf-8", "backslashreplace") if isinstance(a, bytes) else a
                 for a in argv]
        self.commands.append({"user": user, "cwd": cwd or "/", "argv": shown,
                              **({"stdin": input.decode("utf-8", "backslashreplace")}
                                 if input else {}), **({"note": note} if note else {})})
        return self.as_user(user, argv, cwd=cwd, input=input)

    def scp(self, user, dest, legacy=False, host_user=None):
        argv = ["scp", "-q"] + (["-O"] if legacy else []) + self.ssh_opts() + [
            os.path.join(self.src, b"src.bin"),
            ("%s@127.0.0.1:" % (host_user or user)).encode() + dest]
        return self.run(user, argv)

    def sftp(self, user, batch):
        bf = os.path.join(self.src, ("batch-%s" % user).encode())
        with open(bf, "wb") as f:
            f.write(batch)
        os.chmod(bf, 0o644)
        return self.run(user, ["sftp", "-q"] + self.ssh_opts() + ["-b", bf,
                        "%s@127.0.0.1" % user], note="batch: " + batch.decode(
                            "utf-8", "backslashreplace"))

    # -- scenarios
    describe = {
        "scp_sftp": "scp (default SFTP protocol) by wwalice to /tmp: remote sftp-server creates it",
        "scp_legacy": "scp -O (legacy protocol) by wwalice to /var/tmp: remote `scp -t` creates it",
        "sftp": "sftp batch by wwalice: put to /dev/shm, mkdir in /tmp, symlink and hard link in /tmp",
        "rsync": "rsync over ssh by wwalice: default (temp .NAME.XXXXXX then rename) to /tmp; --inplace to /var/tmp",
        "vsftpd": "lftp client uploads to vsftpd as wwalice: vsftpd's session process creates /tmp file and dir",
        "ftp_client": "tnftp `ftp` run by wwalice in cwd /tmp does a `get` from vsftpd: the client creates the file",
        "ssh_agent": "ssh -A by wwalice with an agent: sshd (as wwalice) makes /tmp/ssh-XXXXXXXXXX/; the local ssh-agent makes its own",
        "dirfd": "synthetic: a process whose comm is rsync (python3, prctl) creates with "
                 "openat/mkdirat/mknodat/symlinkat/linkat relative to a dirfd on /tmp while its "
                 "cwd is /home/wwalice, and in /home/wwalice while its cwd is /tmp",
        "paths": "awkward paths: '..' (absolute with .. via sftp, relative via scp -O), space, double quotes, UTF-8, non-UTF-8 byte, /home/.X",
        "neg_root_scp": "negative: root scp into /tmp (uid 0)",
        "neg_local_tools": "negative: wwbob's cp and touch create in /tmp (processes not listed)",
        "neg_outside": "negative: scp by wwalice to /srv/wwcapture and to her home (paths not matched)",
        "neg_rename": "negative: sftp rename of an existing /tmp file (CREATE from rename, not a creation)",
        "neg_overwrite": "negative: scp and scp -O overwrite existing /tmp files (no CREATE)",
    }

    def s_scp_sftp(self):
        p = b"/tmp/wwcap-scp-sftp.bin"
        self.rm(p)
        self.scp("wwalice", p)
        self.expect(p, "sftp-server", "wwalice", "scp in SFTP mode: the remote sftp-server "
                    "(uid wwalice) opens with O_CREAT in /tmp", tool="scp")

    def s_scp_legacy(self):
        p = b"/var/tmp/wwcap-scp-legacy.bin"
        self.rm(p)
        self.scp("wwalice", p, legacy=True)
        self.expect(p, "scp", "wwalice", "scp -O: the remote `scp -t` (uid wwalice) creates "
                    "it in /var/tmp", tool="scp -O")

    def s_sftp(self):
        put, put2, d, ln, hl = (b"/dev/shm/wwcap-sftp-put.bin", b"/tmp/wwcap-sftp-put.bin",
                                b"/tmp/wwcap-sftp-dir", b"/tmp/wwcap-sftp-symlink",
                                b"/tmp/wwcap-sftp-hardlink")
        for x in (put, put2, ln, hl, d):
            self.rm(x)
        src = os.path.join(self.src, b"src.bin")
        self.sftp("wwalice", b"put " + src + b" " + put + b"\nput " + src + b" " + put2 +
                  b"\nmkdir " + d + b"\nsymlink " + put + b" " + ln +
                  b"\nln " + put2 + b" " + hl + b"\n")
        self.expect(put, "sftp-server", "wwalice", "sftp put into /dev/shm/", tool="sftp")
        self.expect(put2, "sftp-server", "wwalice", "sftp put into /tmp", tool="sftp")
        self.expect(d, "sftp-server", "wwalice", "sftp mkdir in /tmp", tool="sftp")
        self.expect(ln, "sftp-server", "wwalice", "sftp symlink in /tmp", tool="sftp")
        self.expect(hl, "sftp-server", "wwalice", "sftp ln (hardlink@openssh.com, link(2)) "
                    "in /tmp", tool="sftp")

    def s_rsync(self):
        a, b = b"/tmp/wwcap-rsync.bin", b"/var/tmp/wwcap-rsync-inplace.bin"
        self.rm(a)
        self.rm(b)
        e = ["-e", "ssh -F /run/wwatchd-e2e/ssh_config"]
        src = os.path.join(self.src, b"src.bin")
        self.run("wwalice", ["rsync"] + e + [src, b"wwalice@127.0.0.1:" + a])
        self.run("wwalice", ["rsync", "--inplace"] + e + [src, b"wwalice@127.0.0.1:" + b])
        self.expect(a, "rsync", "wwalice", "the final name comes from rename(), which is not a "
                    "creation", creation=False, tool="rsync")
        self.entries[-1]["_expect_create"] = True  # rename's CREATE
        self.expect(b"/tmp/.wwcap-rsync.bin.*", "rsync", "wwalice",
                    "rsync --server writes the temp file .NAME.XXXXXX in /tmp, then renames it",
                    path_like="/tmp/.wwcap-rsync.bin.*", tool="rsync")
        self.expect(b, "rsync", "wwalice", "rsync --inplace: the remote rsync creates NAME "
                    "directly in /var/tmp", tool="rsync --inplace")

    def s_vsftpd(self):
        p, d = b"/tmp/wwcap-vsftpd.bin", b"/tmp/wwcap-vsftpd-dir"
        self.rm(p)
        self.rm(d)
        self.run("wwalice", ["lftp", "-u", "wwalice,wwatchd-e2e-pw", "-p", "2121", "-e",
                             "set ftp:passive-mode on; put %s -o %s; mkdir %s; bye"
                             % (os.path.join(self.src, b"src.bin").decode(), p.decode(),
                                d.decode()), "127.0.0.1"])
        self.expect(p, "vsftpd", "wwalice", "FTP STOR: vsftpd's session process (uid wwalice) "
                    "creates it", tool="lftp → vsftpd")
        self.expect(d, "vsftpd", "wwalice", "FTP MKD: vsftpd's session process makes the dir",
                    tool="lftp → vsftpd")

    def s_ftp_client(self):
        p = b"/tmp/wwcap-ftp-get.bin"
        self.rm(p)
        script = ("user wwalice wwatchd-e2e-pw\nbinary\nget %s wwcap-ftp-get.bin\nbye\n"
                  % os.path.join(self.src, b"src.bin").decode()).encode()
        self.run("wwalice", ["ftp", "-n", "-p", "127.0.0.1", "2121"], cwd="/tmp", input=script)
        self.expect(p, "ftp", "wwalice", "the tnftp client (comm ftp, exe /usr/bin/tnftp) "
                    "creates the downloaded file in its cwd /tmp", tool="ftp (tnftp)")

    def s_ssh_agent(self):
        key = "/run/wwatchd-e2e/keys/wwalice/id_ed25519"
        self.run("wwalice", ["ssh-agent", "bash", "-c",
                             'ssh-add -q %s && ssh -A -F /run/wwatchd-e2e/ssh_config '
                             'wwalice@127.0.0.1 \'ls -ld "$(dirname "$SSH_AUTH_SOCK")"\'' % key])
        self.expect(b"/tmp/ssh-*", "sshd", "wwalice", "agent forwarding: sshd (as wwalice) "
                    "mkdtemp()s /tmp/ssh-XXXXXXXXXX for the forwarded agent socket",
                    path_like="/tmp/ssh-*", tool="ssh -A")
        self.expect(b"/tmp/ssh-*", "ssh-agent", "wwalice", "the client's own ssh-agent makes "
                    "/tmp/ssh-XXXXXXXXXX too, but ssh-agent is not a listed process",
                    path_like="/tmp/ssh-*", tool="ssh-agent")

    DIRFD_PROG = r"""
import ctypes, os, sys
# comm is what the kernel records as process.name; a process may set its own.
ctypes.CDLL(None).prctl(15, b"rsync", 0, 0, 0)
home, tmp = sys.argv[1], "/tmp"
os.chdir(home)
d = os.open(tmp, os.O_RDONLY | os.O_DIRECTORY)
os.close(os.open("wwcap-dirfd-open.bin", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=d))
os.mkdir("wwcap-dirfd-dir", dir_fd=d)
os.mkfifo("wwcap-dirfd-fifo", dir_fd=d)
os.symlink("wwcap-dirfd-open.bin", "wwcap-dirfd-symlink", dir_fd=d)
os.link("wwcap-dirfd-open.bin", "wwcap-dirfd-link", src_dir_fd=d, dst_dir_fd=d)
os.chdir(tmp)
h = os.open(home, os.O_RDONLY | os.O_DIRECTORY)
os.close(os.open("wwcap-dirfd-home.bin", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=h))
"""

    def s_dirfd(self):
        names = [b"/tmp/wwcap-dirfd-open.bin", b"/tmp/wwcap-dirfd-dir", b"/tmp/wwcap-dirfd-fifo",
                 b"/tmp/wwcap-dirfd-symlink", b"/tmp/wwcap-dirfd-link",
                 b"/home/wwalice/wwcap-dirfd-home.bin"]
        for x in names:
            self.rm(x)
        self.run("wwalice", ["python3", "-I", "-c", self.DIRFD_PROG, "/home/wwalice"],
                 note="synthetic: python3 renames its comm to rsync with prctl(PR_SET_NAME)")
        why = ("*at() with a real dirfd on /tmp while cwd is /home/wwalice: the name is "
               "relative to the dirfd, not to CWD")
        for x, sc in zip(names[:5], ["openat", "mkdirat", "mknodat", "symlinkat", "linkat"]):
            self.expect(x, "rsync", "wwalice", "%s: %s" % (sc, why), tool="synthetic")
        self.expect(names[5], "rsync", "wwalice", "openat with a dirfd on /home/wwalice while "
                    "cwd is /tmp: joining CWD would wrongly give /tmp/…", tool="synthetic")

    def prep_paths(self):
        self.home_mode = stat.S_IMODE(os.stat("/home").st_mode)
        os.chmod("/home", 0o1777)

    def post_paths(self):
        os.chmod("/home", self.home_mode)
        self.home_mode = None

    def s_paths(self):
        rel_sftp, rel_scp = b"/tmp/wwcap-rel-sftp.bin", b"/tmp/wwcap-rel-scp.bin"
        sp = b'/tmp/wwcap "quoted" name with spaces.bin'
        utf = "/tmp/wwcap-café-ü.bin".encode()
        raw = b"/tmp/wwcap-caf\xe9.bin"
        hx = b"/home/.wwcap-X.bin"
        for x in (rel_sftp, rel_scp, sp, utf, raw, hx):
            self.rm(x)
        src = os.path.join(self.src, b"src.bin")
        self.sftp("wwalice", b"put " + src + b" ../../tmp/wwcap-rel-sftp.bin\n"
                  b"put " + src + b" '" + sp + b"'\n"
                  b"put " + src + b" " + utf + b"\n"
                  b"put " + src + b" " + raw + b"\n"
                  b"put " + src + b" " + hx + b"\n")
        self.expect(rel_sftp, "sftp-server", "wwalice", "sftp put to ../../tmp/… from the home "
                    "dir: the client makes it absolute (/home/wwalice/../../tmp/…)", tool="sftp")
        self.expect(sp, "sftp-server", "wwalice", "space and double quotes: name is hex in the "
                    "record", tool="sftp")
        self.expect(utf, "sftp-server", "wwalice", "UTF-8 name: hex in the record", tool="sftp")
        self.expect(raw, "sftp-server", "wwalice", "non-UTF-8 byte 0xe9 in the name",
                    tool="sftp")
        self.expect(hx, "sftp-server", "wwalice", "/home/.X matches \"/home/.*\" (/home made "
                    "1777 for the capture)", tool="sftp")
        self.scp("wwalice", b"../../tmp/wwcap-rel-scp.bin", legacy=True)
        self.expect(rel_scp, "scp", "wwalice", "scp -O to a relative target: `scp -t` opens "
                    "../../tmp/… relative to its cwd (the home dir)", tool="scp -O")

    def s_neg_root_scp(self):
        p = b"/tmp/wwcap-root-scp.bin"
        self.rm(p)
        self.scp("root", p)
        self.expect(p, "sftp-server", "root", "root's sftp-server: user.id is 0", tool="scp")

    def s_neg_local_tools(self):
        a, b = b"/tmp/wwcap-cp.bin", b"/tmp/wwcap-touch.bin"
        self.rm(a)
        self.rm(b)
        self.run("wwbob", ["cp", os.path.join(self.src, b"src.bin"), a])
        self.run("wwbob", ["touch", b])
        self.expect(a, "cp", "wwbob", "cp is not a listed process")
        self.expect(b, "touch", "wwbob", "touch is not a listed process")

    def s_neg_outside(self):
        a, b = b"/srv/wwcapture/wwcap-outside.bin", b"/home/wwalice/wwcap-home.bin"
        self.rm(a)
        self.rm(b)
        self.scp("wwalice", a)
        self.scp("wwalice", b)
        self.expect(a, "sftp-server", "wwalice", "/srv/wwcapture matches no pattern", tool="scp")
        self.expect(b, "sftp-server", "wwalice", "/home/wwalice/… does not start with /home/.",
                    tool="scp")

    def prep_neg_rename(self):
        self.rm(b"/tmp/wwcap-renamed.bin")
        self.precreate(b"/tmp/wwcap-rename-src.bin", "wwalice")

    def s_neg_rename(self):
        self.sftp("wwalice", b"rename /tmp/wwcap-rename-src.bin /tmp/wwcap-renamed.bin\n")
        self.expect(b"/tmp/wwcap-renamed.bin", "sftp-server", "wwalice", "sftp rename: the "
                    "CREATE comes from rename(2), not a creation syscall", creation=False,
                    tool="sftp")
        self.entries[-1]["_expect_create"] = True

    def post_neg_rename(self):
        self.rm(b"/tmp/wwcap-rename-src.bin")

    def prep_neg_overwrite(self):
        self.precreate(b"/tmp/wwcap-overwrite.bin", "wwalice")
        self.precreate(b"/tmp/wwcap-overwrite-legacy.bin", "wwalice")

    def s_neg_overwrite(self):
        a, b = b"/tmp/wwcap-overwrite.bin", b"/tmp/wwcap-overwrite-legacy.bin"
        self.scp("wwalice", a)
        self.scp("wwalice", b, legacy=True)
        self.expect(a, "sftp-server", "wwalice", "the file existed: O_CREAT|O_TRUNC open "
                    "records nametype=NORMAL, no CREATE", creation=False, tool="scp")
        self.expect(b, "scp", "wwalice", "the file existed: no CREATE", creation=False,
                    tool="scp -O")

    SCENARIOS = ["scp_sftp", "scp_legacy", "sftp", "rsync", "vsftpd", "ftp_client",
                 "ssh_agent", "dirfd", "paths", "neg_root_scp", "neg_local_tools", "neg_outside",
                 "neg_rename", "neg_overwrite"]

    def main(self):
        names = self.args.only or self.SCENARIOS
        for n in names:
            if n not in self.SCENARIOS:
                raise SystemExit("capture: unknown scenario %s" % n)
        try:
            self.setup()
            for n in names:
                self.run_scenario(n, getattr(self, "s_" + n))
        finally:
            self.teardown()
        for f in self.failures:
            print("capture: CHECK FAILED: " + f, file=sys.stderr)
        return 1 if self.failures else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", action="append", help="run only this scenario (repeatable)")
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures"))
    ap.add_argument("--keep-env", action="store_true",
                    help="leave sshd, vsftpd and auditd running afterwards")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("capture: must run as root")

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)  # unwinds through the finally: rules go

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    return Driver(args).main()


if __name__ == "__main__":
    sys.exit(main())

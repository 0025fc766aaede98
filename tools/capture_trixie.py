#!/usr/bin/env python3
"""capture_trixie.py: golden audit fixtures from Debian 13's OpenSSH 10 (trixie chroot).

The same capture as tools/capture.py (multicast reader beside auditd, rules keyed
wwatchd-capture, per-scenario NAME.log and NAME.expect.json), but the transfers run inside
the trixie chroot of tests/e2e/trixie-env.sh: its two sshd on loopback (`sftpserver`, with
the sftp-server subsystem, and `internal`, with internal-sftp), its users wwalice (1601) and
wwbob (1602), and its own scp, sftp, rsync and ssh-agent. The host's /tmp and /dev/shm are
bind-mounted into the chroot, so the creations there are the host's; the chroot's /home and
/srv/wwcapture are watched through their host paths (the kernel records the names the
chroot's processes use, /home/wwalice/...). Fixtures are tests/fixtures/trixie_*.

Run as root: bash tools/capture-trixie.sh [--only trixie_NAME ...]. Python 3 stdlib only.
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import capture  # noqa: E402
from capture import Driver, install_rules, remove_rules, Listener  # noqa: E402

TRIXIE_ENV_SH = os.path.join(capture.ROOT, "tests", "e2e", "trixie-env.sh")
CHROOT = os.environ.get("WW_TRIXIE_ROOT", "/var/cache/wwatchd-trixie")
SSH_CONFIG = "/etc/ssh/wwatchd_ssh_config"  # inside the chroot
# Host paths of what the chroot's processes create in: /tmp and /dev/shm are the host's.
HOST_SHARED = (b"/tmp", b"/dev/shm")


class TrixieDriver(Driver):
    def __init__(self, args):
        super().__init__(args)
        self.src = b"/srv/wwcap-src"  # inside the chroot
        self.watch_dirs = ["/tmp", "/dev/shm", CHROOT + "/home", CHROOT + "/srv/wwcapture"]

    # -- the chroot
    def sh(self, script, check=True, **kw):
        return subprocess.run(["bash", "-c", '. "$0" && . "$1" || exit 1\n' + script,
                               capture.ENV_SH, TRIXIE_ENV_SH], check=check, **kw)

    def host(self, path):
        """The host's name for a chroot path."""
        if any(path == d or path.startswith(d + b"/") for d in HOST_SHARED):
            return path
        return CHROOT.encode() + path

    def as_user(self, user, argv, cwd=None, input=None, check=True):
        pre = ["bash", "-c", '. "$0" && . "$1" || exit 1; shift; wt_as "$@"',
               capture.ENV_SH, TRIXIE_ENV_SH, user]
        if cwd:
            argv = ["env", "-C", cwd] + list(argv)
        r = subprocess.run(pre + list(argv), input=input, capture_output=True)
        if check and r.returncode != 0:
            raise RuntimeError("as %s: %r failed (%d): %s %s" % (
                user, argv, r.returncode, r.stdout.decode(errors="replace"),
                r.stderr.decode(errors="replace")))
        return r

    def ssh_opts(self):
        return ["-F", SSH_CONFIG]

    def dir_by_inode(self):
        m = {}
        cands = [(b"/tmp", b"/tmp"), (b"/dev/shm", b"/dev/shm"), (CHROOT.encode(), b"/")]
        for d in (b"/home", b"/srv", b"/srv/wwcapture", b"/root"):
            cands.append((CHROOT.encode() + d, d))
        for n in os.listdir(CHROOT + "/home"):
            cands.append((CHROOT.encode() + b"/home/" + n.encode(), b"/home/" + n.encode()))
        for hostp, name in cands:
            try:
                st = os.stat(hostp)
            except OSError:
                continue
            key = ("%02x:%02x" % (os.major(st.st_dev), os.minor(st.st_dev)), str(st.st_ino))
            m[key] = name
        return m

    def rm(self, path):
        Driver.rm(self.host(path))

    def precreate(self, path, user):
        with open(self.host(path), "wb") as f:
            f.write(b"old contents\n")
        os.chown(self.host(path), self.uids[user], self.uids[user])

    def setup(self):
        self.sh("ww_start_auditd && wt_build && wt_mount && wt_setup")
        for u in ("wwalice", "wwbob"):
            self.uids[u] = int(subprocess.check_output(
                ["chroot", CHROOT, "id", "-u", u]))
        self.uids["root"] = 0
        hsrc = self.host(self.src)
        os.makedirs(hsrc, exist_ok=True)
        os.chmod(hsrc, 0o755)
        with open(os.path.join(hsrc, b"src.bin"), "wb") as f:
            f.write(os.urandom(4096))
        os.chmod(os.path.join(hsrc, b"src.bin"), 0o644)
        os.makedirs(CHROOT + "/srv/wwcapture", exist_ok=True)
        os.chmod(CHROOT + "/srv/wwcapture", 0o1777)
        self.listener = Listener()
        remove_rules()
        install_rules(self.watch_dirs)

    def teardown(self):
        remove_rules()
        if self.listener:
            self.listener.close()
        try:
            os.rmdir(CHROOT + "/srv/wwcapture")
        except OSError:
            pass
        self.sh("wt_teardown", check=False)
        if not self.args.keep_env:
            self.sh("ww_stop_all", check=False)

    # -- transfers
    def scp(self, user, dest, legacy=False, host_user=None, host="internal"):
        argv = ["scp", "-q"] + (["-O"] if legacy else []) + self.ssh_opts() + [
            os.path.join(self.src, b"src.bin"),
            ("%s@%s:" % (host_user or user, host)).encode() + dest]
        return self.run(user, argv)

    def sftp(self, user, batch, host="internal"):
        bf = os.path.join(self.src, ("batch-%s" % user).encode())
        with open(self.host(bf), "wb") as f:
            f.write(batch)
        os.chmod(self.host(bf), 0o644)
        return self.run(user, ["sftp", "-q"] + self.ssh_opts() + [
            "-b", bf, "%s@%s" % (user, host)],
            note="batch (%s): %s" % (host, batch.decode("utf-8", "backslashreplace")))

    # -- scenarios
    describe = {
        "trixie_scp_internal": "OpenSSH 10, internal-sftp: scp by wwalice to /tmp: "
                               "sshd-session creates it",
        "trixie_sftp_internal": "OpenSSH 10, internal-sftp: sftp batch by wwalice: put to "
                                "/dev/shm and /tmp, mkdir, symlink and hard link in /tmp, all "
                                "by sshd-session",
        "trixie_ssh_agent": "OpenSSH 10: ssh -A by wwalice with an agent: sshd-session (as "
                            "wwalice) makes /tmp/ssh-XXXXXXXXXX/; the local ssh-agent makes "
                            "its own",
        "trixie_scp_sftp": "OpenSSH 10, sftp-server subsystem: scp by wwalice to /tmp: "
                           "sftp-server creates it",
        "trixie_sftp": "OpenSSH 10, sftp-server subsystem: sftp put to /dev/shm, mkdir and "
                       "symlink in /tmp",
        "trixie_scp_legacy": "OpenSSH 10: scp -O by wwalice to /tmp: the remote `scp -t`",
        "trixie_rsync": "rsync 3.5.0 over OpenSSH 10: default (temp .NAME.XXXXXX then rename) "
                        "to /tmp; --inplace to /dev/shm",
        "trixie_neg_root_scp": "negative: root scp into /tmp over internal-sftp "
                               "(sshd-session uid 0) and over sftp-server",
        "trixie_neg_local_tools": "negative: wwbob's cp and touch in /tmp inside the chroot",
        "trixie_neg_outside": "negative: scp over internal-sftp to /srv/wwcapture and to the "
                              "home directory (paths not matched)",
        "trixie_neg_rename": "negative: sftp rename of an existing /tmp file over internal-sftp",
        "trixie_neg_overwrite": "negative: scp (internal-sftp) and scp -O overwrite existing "
                                "/tmp files (no CREATE)",
    }

    def s_trixie_scp_internal(self):
        p = b"/tmp/wwcap-tx-scp-int.bin"
        self.rm(p)
        self.scp("wwalice", p)
        self.expect(p, "sshd-session", "wwalice", "internal-sftp: the sftp server runs inside "
                    "sshd-session (uid wwalice), which opens with O_CREAT in /tmp", tool="scp")

    def s_trixie_sftp_internal(self):
        put, put2, d, ln, hl = (b"/dev/shm/wwcap-tx-sftp-int.bin", b"/tmp/wwcap-tx-sftp-int.bin",
                                b"/tmp/wwcap-tx-sftp-int-dir", b"/tmp/wwcap-tx-sftp-int-symlink",
                                b"/tmp/wwcap-tx-sftp-int-hardlink")
        for x in (put, put2, ln, hl, d):
            self.rm(x)
        src = os.path.join(self.src, b"src.bin")
        self.sftp("wwalice", b"put " + src + b" " + put + b"\nput " + src + b" " + put2 +
                  b"\nmkdir " + d + b"\nsymlink " + put + b" " + ln +
                  b"\nln " + put2 + b" " + hl + b"\n")
        for x, what in ((put, "put into /dev/shm/"), (put2, "put into /tmp"),
                        (d, "mkdir in /tmp"), (ln, "symlink in /tmp"),
                        (hl, "ln (hardlink@openssh.com, link(2)) in /tmp")):
            self.expect(x, "sshd-session", "wwalice", "internal-sftp %s" % what, tool="sftp")

    def s_trixie_ssh_agent(self):
        self.run("wwalice", ["ssh-agent", "bash", "-c",
                             'ssh-add -q ~/.ssh/id_ed25519 && ssh -A -F %s wwalice@internal '
                             '\'ls -ld "$(dirname "$SSH_AUTH_SOCK")"\'' % SSH_CONFIG])
        self.expect(b"/tmp/ssh-*", "sshd-session", "wwalice", "agent forwarding: sshd-session "
                    "(as wwalice) mkdtemp()s /tmp/ssh-XXXXXXXXXX for the forwarded agent socket",
                    path_like="/tmp/ssh-*", tool="ssh -A")
        self.expect(b"/tmp/ssh-*", "ssh-agent", "wwalice", "the client's own ssh-agent makes "
                    "/tmp/ssh-XXXXXXXXXXXX too, but ssh-agent is not a listed process",
                    path_like="/tmp/ssh-*", tool="ssh-agent")

    def s_trixie_scp_sftp(self):
        p = b"/tmp/wwcap-tx-scp-sftp.bin"
        self.rm(p)
        self.scp("wwalice", p, host="sftpserver")
        self.expect(p, "sftp-server", "wwalice", "sftp-server subsystem: the remote "
                    "sftp-server (uid wwalice) creates it", tool="scp")

    def s_trixie_sftp(self):
        put, d, ln = (b"/dev/shm/wwcap-tx-sftp.bin", b"/tmp/wwcap-tx-sftp-dir",
                      b"/tmp/wwcap-tx-sftp-symlink")
        for x in (put, ln, d):
            self.rm(x)
        src = os.path.join(self.src, b"src.bin")
        self.sftp("wwalice", b"put " + src + b" " + put + b"\nmkdir " + d +
                  b"\nsymlink " + put + b" " + ln + b"\n", host="sftpserver")
        for x, what in ((put, "put into /dev/shm/"), (d, "mkdir in /tmp"),
                        (ln, "symlink in /tmp")):
            self.expect(x, "sftp-server", "wwalice", "sftp-server %s" % what, tool="sftp")

    def s_trixie_scp_legacy(self):
        p = b"/tmp/wwcap-tx-scp-legacy.bin"
        self.rm(p)
        self.scp("wwalice", p, legacy=True)
        self.expect(p, "scp", "wwalice", "scp -O: the remote `scp -t` (uid wwalice) creates "
                    "it", tool="scp -O")

    def s_trixie_rsync(self):
        a, b = b"/tmp/wwcap-tx-rsync.bin", b"/dev/shm/wwcap-tx-rsync-inplace.bin"
        self.rm(a)
        self.rm(b)
        e = ["-e", "ssh -F %s" % SSH_CONFIG]
        src = os.path.join(self.src, b"src.bin")
        self.run("wwalice", ["rsync"] + e + [src, b"wwalice@internal:" + a])
        self.run("wwalice", ["rsync", "--inplace"] + e + [src, b"wwalice@internal:" + b])
        self.expect(a, "rsync", "wwalice", "the final name comes from rename(), which is not a "
                    "creation", creation=False, tool="rsync")
        self.entries[-1]["_expect_create"] = True
        self.expect(b"/tmp/.wwcap-tx-rsync.bin.*", "rsync", "wwalice",
                    "rsync --server writes the temp file .NAME.XXXXXX in /tmp, then renames it",
                    path_like="/tmp/.wwcap-tx-rsync.bin.*", tool="rsync")
        self.expect(b, "rsync", "wwalice", "rsync --inplace creates NAME directly in /dev/shm",
                    tool="rsync --inplace")

    def s_trixie_neg_root_scp(self):
        a, b = b"/tmp/wwcap-tx-root-int.bin", b"/tmp/wwcap-tx-root-srv.bin"
        self.rm(a)
        self.rm(b)
        self.scp("root", a)
        self.scp("root", b, host="sftpserver")
        self.expect(a, "sshd-session", "root", "root's internal-sftp: user.id is 0", tool="scp")
        self.expect(b, "sftp-server", "root", "root's sftp-server: user.id is 0", tool="scp")

    def s_trixie_neg_local_tools(self):
        a, b = b"/tmp/wwcap-tx-cp.bin", b"/tmp/wwcap-tx-touch.bin"
        self.rm(a)
        self.rm(b)
        self.run("wwbob", ["cp", os.path.join(self.src, b"src.bin"), a])
        self.run("wwbob", ["touch", b])
        self.expect(a, "cp", "wwbob", "cp is not a listed process")
        self.expect(b, "touch", "wwbob", "touch is not a listed process")

    def s_trixie_neg_outside(self):
        a, b = b"/srv/wwcapture/wwcap-tx-outside.bin", b"/home/wwalice/wwcap-tx-home.bin"
        self.rm(a)
        self.rm(b)
        self.scp("wwalice", a)
        self.scp("wwalice", b)
        self.expect(a, "sshd-session", "wwalice", "/srv/wwcapture matches no pattern",
                    tool="scp")
        self.expect(b, "sshd-session", "wwalice", "/home/wwalice/… does not start with /home/.",
                    tool="scp")

    def prep_trixie_neg_rename(self):
        self.rm(b"/tmp/wwcap-tx-renamed.bin")
        self.precreate(b"/tmp/wwcap-tx-rename-src.bin", "wwalice")

    def s_trixie_neg_rename(self):
        self.sftp("wwalice", b"rename /tmp/wwcap-tx-rename-src.bin /tmp/wwcap-tx-renamed.bin\n")
        self.expect(b"/tmp/wwcap-tx-renamed.bin", "sshd-session", "wwalice", "internal-sftp "
                    "rename: the CREATE comes from rename(2), not a creation syscall",
                    creation=False, tool="sftp")
        self.entries[-1]["_expect_create"] = True

    def post_trixie_neg_rename(self):
        self.rm(b"/tmp/wwcap-tx-rename-src.bin")

    def prep_trixie_neg_overwrite(self):
        self.precreate(b"/tmp/wwcap-tx-overwrite.bin", "wwalice")
        self.precreate(b"/tmp/wwcap-tx-overwrite-legacy.bin", "wwalice")

    def s_trixie_neg_overwrite(self):
        a, b = b"/tmp/wwcap-tx-overwrite.bin", b"/tmp/wwcap-tx-overwrite-legacy.bin"
        self.scp("wwalice", a)
        self.scp("wwalice", b, legacy=True)
        self.expect(a, "sshd-session", "wwalice", "the file existed: no CREATE",
                    creation=False, tool="scp")
        self.expect(b, "scp", "wwalice", "the file existed: no CREATE", creation=False,
                    tool="scp -O")

    SCENARIOS = ["trixie_scp_internal", "trixie_sftp_internal", "trixie_ssh_agent",
                 "trixie_scp_sftp", "trixie_sftp", "trixie_scp_legacy", "trixie_rsync",
                 "trixie_neg_root_scp", "trixie_neg_local_tools", "trixie_neg_outside",
                 "trixie_neg_rename", "trixie_neg_overwrite"]


if __name__ == "__main__":
    capture.Driver = TrixieDriver
    sys.exit(capture.main())

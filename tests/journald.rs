//! The journal output against a real systemd-journald: hostile file names go from audit
//! records through the detector and the sink (`destination = "journal"`, the native protocol)
//! into journald, and `journalctl -o json` must give back each created path byte for byte
//! (`WWATCHD_FILE_PATH`) and the alert's JSON (`MESSAGE`).
//!
//! journald runs on its own, outside systemd, in new mount, PID and network namespaces
//! (`unshare -m -p -n -f`): its sockets and its volatile journal are on a private tmpfs, so the
//! host's logging is untouched, and in a PID and network namespace of its own the kernel
//! refuses its audit requests (AUDIT_SET) and sends it no audit records, so kernel audit is
//! untouched too. The test reaches the socket through `/proc/PID/root`. Needs root,
//! `unshare` and `/lib/systemd/systemd-journald`; without them it says so and checks nothing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use wwatchd::detector::{AlertSink, Detector, DetectorConfig};
use wwatchd::file_event::{FileSchema, NoEnrich};
use wwatchd::policy::Policy;
use wwatchd::record::Record;
use wwatchd::rule::RuleMeta;
use wwatchd::syslog::{Format, Severity, Sink, SinkConfig, Transport};

const JOURNALD: &str = "/lib/systemd/systemd-journald";

/// The hostile names of tests/e2e/hostile.sh, as bytes (created under /tmp).
fn hostile_names() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = vec![
        b"nl\nafter".to_vec(),
        b"cr\rtab\tend".to_vec(),
        b"quote\"back\\slash".to_vec(),
        b"esc\x1b[31mred\x1b[0m".to_vec(),
        "c1\u{85}\u{9b}ls\u{2028}sep".as_bytes().to_vec(),
        b"latin1-\xe9\xff".to_vec(),
        b"%s%n%x".to_vec(),
        b"x\n<13>1 2026-01-01T00:00:00Z forged app - - - injected".to_vec(),
        b"y\n<34>Oct 11 22:14:15 forged su: injected".to_vec(),
        b"\x7fdel".to_vec(),
    ];
    // A path of 4095 bytes (PATH_MAX - 1): directories of 200 bytes.
    let mut deep = Vec::new();
    while deep.len() + 5 + 201 < 4095 - 5 {
        deep.extend(std::iter::repeat_n(b'd', 200));
        deep.push(b'/');
    }
    let rest = 4095 - 5 - deep.len();
    deep.extend(std::iter::repeat_n(b'f', rest));
    v.push(deep);
    v
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|c| format!("{c:02X}")).collect()
}

/// An sftp-server creation of `/tmp/NAME` by uid 1001, as the kernel logs it.
fn records(serial: u32, name: &[u8]) -> String {
    let mut path = b"/tmp/".to_vec();
    path.extend_from_slice(name);
    format!(
        "type=SYSCALL msg=audit(1795833032.{ms:03}:{serial}): arch=c000003e syscall=257 success=yes exit=3 a0=ffffff9c a1=55 a2=241 a3=1a4 items=2 ppid=99 pid=100 auid=1001 uid=1001 gid=1001 euid=1001 suid=1001 fsuid=1001 egid=1001 sgid=1001 fsgid=1001 tty=(none) ses=3 comm=\"sftp-server\" exe=\"/usr/lib/openssh/sftp-server\" key=(null)
type=CWD msg=audit(1795833032.{ms:03}:{serial}): cwd=\"/home/alice\"
type=PATH msg=audit(1795833032.{ms:03}:{serial}): item=0 name=\"/tmp/\" inode=2 dev=fe:00 mode=041777 ouid=0 ogid=0 nametype=PARENT
type=PATH msg=audit(1795833032.{ms:03}:{serial}): item=1 name={} inode=77 dev=fe:00 mode=0100644 ouid=1001 ogid=1001 nametype=CREATE
type=EOE msg=audit(1795833032.{ms:03}:{serial}): ",
        hex(&path),
        ms = serial % 1000,
    )
}

struct Collect(Vec<Vec<u8>>);
impl AlertSink for Collect {
    fn alert(&mut self, _rule: &RuleMeta, json: &[u8]) {
        self.0.push(json.to_vec());
    }
}

/// journald in its namespaces; killed (with everything in its PID namespace) on drop.
struct Journald {
    child: Child,
    _conf: tempfile::TempDir,
}

impl Drop for Journald {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Journald {
    fn root(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root", self.child.id()))
    }

    fn start() -> Option<Journald> {
        let conf = tempfile::tempdir().ok()?;
        let conf_file = conf.path().join("journald.conf");
        std::fs::write(
            &conf_file,
            "[Journal]\nStorage=volatile\nReadKMsg=no\nForwardToSyslog=no\nForwardToKMsg=no\n\
             ForwardToConsole=no\nForwardToWall=no\n",
        )
        .ok()?;
        let script = format!(
            "set -e; mkdir -p /run/systemd /run/log; mount -t tmpfs tmpfs /run/systemd; \
             mount -t tmpfs tmpfs /run/log; mount --bind {} /etc/systemd/journald.conf; \
             {JOURNALD} & wait",
            conf_file.display()
        );
        let child = Command::new("unshare")
            .args(["-m", "-p", "-n", "-f", "--kill-child", "--mount-proc"])
            .args(["bash", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let j = Journald { child, _conf: conf };
        let sock = j.root().join("run/systemd/journal/socket");
        let t = Instant::now();
        while !sock.exists() {
            if t.elapsed() > Duration::from_secs(20) {
                eprintln!("journald did not create {}", sock.display());
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(j)
    }
}

/// A journal field as `journalctl -o json` prints it: a string, or an array of bytes for a
/// value that is not printable UTF-8.
fn field_bytes(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::String(s) => Some(s.as_bytes().to_vec()),
        Value::Array(a) => a
            .iter()
            .map(|b| b.as_u64().and_then(|n| u8::try_from(n).ok()))
            .collect(),
        _ => None,
    }
}

fn read_back(dir: &Path, want: usize) -> Vec<Value> {
    let t = Instant::now();
    loop {
        let out = Command::new("journalctl")
            .arg("-D")
            .arg(dir)
            .args(["-o", "json", "--all", "--no-pager", "--output-fields=MESSAGE,PRIORITY,SYSLOG_IDENTIFIER,WWATCHD_KIND,WWATCHD_RULE_ID,WWATCHD_FILE_PATH,WWATCHD_USER,WWATCHD_EVENT_ID"])
            .arg("SYSLOG_IDENTIFIER=wwatchd")
            .output()
            .expect("run journalctl");
        let v: Vec<Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if v.len() >= want || t.elapsed() > Duration::from_secs(30) {
            return v;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn hostile_names_reach_a_real_journald_byte_for_byte() {
    if !nix::unistd::Uid::effective().is_root() || !Path::new(JOURNALD).exists() {
        eprintln!("skipped: needs root and {JOURNALD}");
        return;
    }
    let Some(journald) = Journald::start() else {
        eprintln!("skipped: could not start systemd-journald in its own namespaces (unshare)");
        return;
    };

    // Records → detector → alerts.
    let names = hostile_names();
    let rule = wwatchd::rule::builtin(&FileSchema);
    let mut det = Detector::new(
        DetectorConfig::default(),
        Arc::new(vec![rule]),
        Policy::pass_all(1),
    );
    let mut alerts = Collect(Vec::new());
    for (i, n) in names.iter().enumerate() {
        for line in records(100 + i as u32, n).lines() {
            let r = Record::from_log_line(line.as_bytes()).expect("record parses");
            det.push(&r, 1, 0, &mut NoEnrich, &mut alerts);
        }
    }
    det.flush(&mut NoEnrich, &mut alerts);
    assert_eq!(alerts.0.len(), names.len(), "one alert per hostile name");

    // Alerts → the sink → journald's native socket.
    let mut sink = Sink::new(SinkConfig {
        transport: Transport::Local {
            path: journald.root().join("run/systemd/journal/socket"),
            format: Format::Journal,
        },
        ..SinkConfig::default()
    })
    .expect("sink");
    for a in &alerts.0 {
        sink.send_alert_rendered(a.clone(), Severity::Warning);
    }
    let st = sink.stats().snapshot();
    assert_eq!((st.sent, st.dropped), (names.len() as u64, 0), "{st:?}");

    // journalctl gives back every path exactly, once, with its alert.
    let got = read_back(&journald.root().join("run/log/journal"), names.len());
    assert_eq!(got.len(), names.len(), "{got:?}");
    let mut want: Vec<Vec<u8>> = names
        .iter()
        .map(|n| [b"/tmp/".as_slice(), n].concat())
        .collect();
    want.sort();
    let mut paths: Vec<Vec<u8>> = Vec::new();
    for e in &got {
        assert_eq!(e["PRIORITY"], "4");
        assert_eq!(e["WWATCHD_KIND"], "alert");
        assert_eq!(e["WWATCHD_RULE_ID"], "3e528511-7316-4a6e-83da-61b5f1c07fd4");
        assert_eq!(e["WWATCHD_USER"], "1001");
        let msg = field_bytes(&e["MESSAGE"]).expect("MESSAGE");
        let doc: Value = serde_json::from_slice(&msg).expect("MESSAGE is the alert's JSON");
        assert_eq!(doc["event"]["id"], e["WWATCHD_EVENT_ID"]);
        paths.push(field_bytes(&e["WWATCHD_FILE_PATH"]).expect("WWATCHD_FILE_PATH"));
    }
    paths.sort();
    let show = |v: &[Vec<u8>]| -> Vec<String> {
        v.iter()
            .map(|p| format!("{:.120}", p.escape_ascii().to_string()))
            .collect()
    };
    assert!(
        paths == want,
        "journal paths {:?}\nwant {:?}",
        show(&paths),
        show(&want)
    );
}

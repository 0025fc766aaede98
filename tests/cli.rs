//! The `wwatchd` binary on bad input and bad rules: reported with file and line, never fatal
//! to a scan, never a panic.

use std::io::Write;
use std::process::{Command, Stdio};

fn scan_stdin(args: &[&str], input: &[u8]) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wwatchd"))
        .arg("scan")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn wwatchd");
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait");
    writer.join().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const GOOD: &str = "type=SYSCALL msg=audit(1764294000.000:10): arch=c000003e syscall=257 success=yes exit=3 a0=ffffff9c a1=55 a2=241 a3=1a4 items=2 ppid=99 pid=100 auid=1001 uid=1001 gid=1001 euid=1001 suid=1001 fsuid=1001 egid=1001 sgid=1001 fsgid=1001 tty=(none) ses=3 comm=\"sftp-server\" exe=\"/usr/lib/openssh/sftp-server\" key=(null)
type=CWD msg=audit(1764294000.000:10): cwd=\"/home/alice\"
type=PATH msg=audit(1764294000.000:10): item=0 name=\"/tmp/\" inode=2 dev=fe:00 mode=041777 ouid=0 ogid=0 nametype=PARENT
type=PATH msg=audit(1764294000.000:10): item=1 name=\"/tmp/x.bin\" inode=77 dev=fe:00 mode=0100644 ouid=1001 ogid=1001 nametype=CREATE
type=EOE msg=audit(1764294000.000:10): 
";

#[test]
fn bad_lines_are_reported_with_line_numbers_and_the_scan_goes_on() {
    let mut input = Vec::new();
    input.extend_from_slice(b"type=SYSCALL msg=audit(1764294000.000:9\n"); // 1 truncated
    input.extend_from_slice(b"\x00\xff\xfe\x01binary garbage\x7f\n"); // 2 garbage
    input.extend(std::iter::repeat_n(b'A', (1 << 20) + 10)); // 3 over 1 MiB
    input.push(b'\n');
    input.extend_from_slice(b"type=SYSCALL msg=audit(abc.000:9): syscall=2\n"); // 4 non-numeric stamp
    input.extend_from_slice(b"type=NOSUCHTYPE msg=audit(1.000:9): x=1\n"); // 5 unknown type
    input.extend_from_slice(GOOD.as_bytes()); // 6..10
    // 11..: an event with an odd-length hex name and a non-numeric uid
    input.extend_from_slice(
        GOOD.replace(":10)", ":11)")
            .replace("name=\"/tmp/x.bin\"", "name=2F746D7")
            .replace(" uid=1001 ", " uid=12x ")
            .as_bytes(),
    );
    let (code, stdout, stderr) = scan_stdin(&[], &input);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("-:1: line ends before the record's fields"),
        "{stderr}"
    );
    assert!(stderr.contains("-:2: no 'type='"), "{stderr}");
    assert!(
        stderr.contains(&format!("-:3: line of {} bytes is over", (1 << 20) + 10)),
        "{stderr}"
    );
    assert!(stderr.contains("-:4: bad stamp"), "{stderr}");
    assert!(
        stderr.contains("-:5: unknown record type 'NOSUCHTYPE'"),
        "{stderr}"
    );
    assert!(
        stderr.contains("-:14: PATH field 'name': hex-encoded value has an odd number of digits"),
        "{stderr}"
    );
    assert!(
        stderr.contains("-:11: SYSCALL field 'uid': expected a number"),
        "{stderr}"
    );
    assert!(
        stderr.contains("malformed 5 malformed-fields 2"),
        "{stderr}"
    );
    // The good event in the middle still alerts.
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.contains("\"path\":\"/tmp/x.bin\""));
}

#[test]
fn missing_input_file_is_named() {
    let out = Command::new(env!("CARGO_BIN_EXE_wwatchd"))
        .args(["scan", "/nonexistent/audit.log"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(66));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open /nonexistent/audit.log"));
}

#[test]
fn unsupported_rule_is_refused_with_its_location() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("seq.toml");
    std::fs::write(
        &p,
        "[metadata]\ncreation_date = \"2024/01/01\"\n[rule]\nname = \"x\"\nrule_id = \"x\"\ndescription = \"x\"\nseverity = \"low\"\nrisk_score = 21\ntype = \"eql\"\nlanguage = \"eql\"\nquery = '''\nsequence [file where true] [file where true]\n'''\n",
    )
    .unwrap();
    let (code, _, stderr) = scan_stdin(&["--rule", p.to_str().unwrap()], b"");
    assert_eq!(code, 78, "{stderr}");
    assert!(stderr.contains("seq.toml:12:1"), "{stderr}");
    assert!(stderr.contains("sequence"), "{stderr}");
}

#[test]
fn a_custom_rule_replaces_the_builtin_one() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("any-tmp.toml");
    std::fs::write(
        &p,
        "[rule]\nname = \"Any creation in /tmp\"\nrule_id = \"t-1\"\ndescription = \"d\"\nseverity = \"high\"\nrisk_score = 73\ntype = \"eql\"\nquery = 'file where file.path like \"/tmp/*\" and process.name : \"SFTP-*\"'\n",
    )
    .unwrap();
    let (code, stdout, stderr) = scan_stdin(&["--rule", p.to_str().unwrap()], GOOD.as_bytes());
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("\"id\":\"t-1\""), "{stdout}");
    assert!(!stdout.contains("3e528511"), "{stdout}");
}

#[test]
fn every_scan_flag_is_in_the_man_page() {
    let page =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/man/wwatchd.8")).unwrap();
    let help = Command::new(env!("CARGO_BIN_EXE_wwatchd"))
        .args(["scan", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let mut flags = 0;
    for word in help.split_whitespace() {
        let flag = word.trim_end_matches(',');
        if let Some(name) = flag.strip_prefix("--") {
            if name == "help" {
                continue;
            }
            flags += 1;
            // roff escapes '-' as '\-' in flag names.
            let roff = format!("Fl \\-{}", name.replace('-', "\\-"));
            assert!(
                page.contains(&roff),
                "man/wwatchd.8 does not document --{name}"
            );
        }
    }
    assert!(
        flags >= 6,
        "found only {flags} flags in `wwatchd scan --help`"
    );
}

/// `rules.d/40-wwatchd.rules` is exactly what `wwatchd rules print` prints (regenerate it
/// with `wwatchd rules print > rules.d/40-wwatchd.rules`). `rules print` derives on this
/// machine's file system, as the daemon does; the committed file is the one for a standard
/// Debian layout, where the seed rule's directories are real directories. On another
/// layout the test says so instead of comparing.
#[test]
fn shipped_rules_file_is_rules_print() {
    for d in ["/tmp", "/var/tmp", "/dev/shm", "/home"] {
        let md = std::fs::symlink_metadata(d);
        if !md.as_ref().is_ok_and(|m| m.is_dir()) {
            eprintln!("skipped: {d} is not a directory here ({md:?}); not a standard layout");
            return;
        }
    }
    let out = Command::new(env!("CARGO_BIN_EXE_wwatchd"))
        .args(["rules", "print"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let shipped = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/rules.d/40-wwatchd.rules"
    ))
    .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&shipped)
    );
}

// ---- configuration: `check`, `scan --config`, `run --config` ------------------------------

const BIN: &str = env!("CARGO_BIN_EXE_wwatchd");
const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/etc/wwatchd.toml");

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn wwatchd(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().expect("run wwatchd");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Writes `text` to `dir/name` with `mode`; returns the path.
fn write_mode(dir: &std::path::Path, name: &str, text: &str, mode: u32) -> String {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p.to_str().unwrap().to_owned()
}

/// The shipped configuration, with its rule directory pointed at `rules_dir` so the test
/// does not depend on what /etc/wwatchd/rules holds on this machine.
fn shipped_with_rules_dir(rules_dir: &str) -> String {
    let text = std::fs::read_to_string(SHIPPED).unwrap();
    let line = "#dir = \"/etc/wwatchd/rules\"";
    assert!(text.contains(line));
    text.replace(line, &format!("dir = \"{rules_dir}\""))
}

/// A copy of the built-in rule with another id and name.
fn other_rule(id: &str) -> String {
    let seed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/rules/remote_file_creation_world_writeable.toml"
    ))
    .unwrap();
    seed.replace("3e528511-7316-4a6e-83da-61b5f1c07fd4", id)
        .replace(
            "name = \"Remote File Creation in World Writeable Directory\"",
            &format!("name = \"Copy {id}\""),
        )
}

#[test]
fn check_on_the_shipped_config_prints_settings_and_derived_rules() {
    let (code, stdout, stderr) = wwatchd(&["check", "--config", SHIPPED]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(&format!("effective settings, from {SHIPPED}")),
        "{stdout}"
    );
    assert!(
        stdout.contains("[budget]\nmax_alerts = 100\nwindow = 300\ndedup = false\n"),
        "{stdout}"
    );
    assert!(stdout.contains("destination = \"local\"\n"), "{stdout}");
    assert!(
        stdout.contains("3e528511-7316-4a6e-83da-61b5f1c07fd4"),
        "{stdout}"
    );
    // The same kernel rules `rules print` derives (check adds hidden /home directories).
    let (_, printed, _) = wwatchd(&["rules", "print", "--config", SHIPPED]);
    let rules: Vec<&str> = printed.lines().filter(|l| l.starts_with("-a ")).collect();
    // Three per watched directory (/tmp, /var/tmp, /dev/shm, /home entries) and arch.
    assert_eq!(rules.len(), 24, "{printed}");
    for r in rules {
        assert!(stdout.contains(r), "check does not print {r}:\n{stdout}");
    }
    assert!(stdout.contains("-F dir=/tmp -F success=1 -F uid!=0 -F key=wwatchd-d-tmp-b64"));
}

#[test]
fn check_lists_every_error_with_file_and_line_and_exits_78() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_mode(
        dir.path(),
        "w.toml",
        "[output]\nfacility = \"auth\"\nfacilty = \"local0\"\n\n[[exception]]\nname = \"x\"\n\
         source = \"10.1.0.0/8\"\nrule = \"no-such-rule\"\n",
        0o644,
    );
    let (code, stdout, stderr) = wwatchd(&["check", "--config", &cfg]);
    assert_eq!(code, 78, "{stdout}{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains(&format!(
            "wwatchd: {cfg}:3: key `output.facilty`: unknown key; allowed: destination, format, \
             facility, max_message_bytes, queue_capacity, spool_dir, spool_max_bytes"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "wwatchd: {cfg}:7: key `exception.source`: \"10.1.0.0/8\" has bits set after the /8 \
             prefix"
        )),
        "{stderr}"
    );
    // A rule reference is checked against the loaded rules.
    let cfg2 = write_mode(
        dir.path(),
        "r.toml",
        "[[exception]]\nuser = 5\nrule = \"no-such-rule\"\n",
        0o644,
    );
    let (code, _, stderr) = wwatchd(&["check", "--config", &cfg2]);
    assert_eq!(code, 78);
    assert!(
        stderr.contains(&format!(
            "{cfg2}:3: key `exception.rule`: no loaded rule has the rule_id or name \
             \"no-such-rule\"; allowed: 3e528511-7316-4a6e-83da-61b5f1c07fd4"
        )),
        "{stderr}"
    );
    // A named file that does not exist is an error; the default one may be absent.
    let missing = dir.path().join("nope.toml");
    let (code, _, stderr) = wwatchd(&["check", "--config", missing.to_str().unwrap()]);
    assert_eq!(code, 78);
    assert!(
        stderr.contains("nope.toml: cannot read the configuration file"),
        "{stderr}"
    );
}

#[test]
fn check_refuses_a_world_writable_config() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_mode(dir.path(), "w.toml", "[budget]\nmax_alerts = 5\n", 0o644);
    assert_eq!(wwatchd(&["check", "--config", &cfg]).0, 0);
    let cfg = write_mode(dir.path(), "w.toml", "[budget]\nmax_alerts = 5\n", 0o666);
    let (code, _, stderr) = wwatchd(&["check", "--config", &cfg]);
    assert_eq!(code, 78, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{cfg}: refusing a world-writable configuration file (mode 0666)"
        )),
        "{stderr}"
    );
    // The daemon refuses it the same way, before touching the kernel.
    let (code, _, stderr) = wwatchd(&["run", "--config", &cfg]);
    assert_eq!(code, 78, "{stderr}");
    assert!(stderr.contains("refusing a world-writable"), "{stderr}");
}

#[test]
fn rule_directory_files_load_in_order_and_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    let rules_s = rules.to_str().unwrap();
    let cfg = write_mode(
        dir.path(),
        "w.toml",
        &shipped_with_rules_dir(rules_s),
        0o644,
    );
    write_mode(&rules, "20-b.toml", &other_rule("rule-b"), 0o644);
    write_mode(&rules, "10-a.toml", &other_rule("rule-a"), 0o644);
    write_mode(&rules, "README", "not a rule", 0o644);
    write_mode(&rules, ".hidden.toml", "not = 'a rule'", 0o644);
    let (code, stdout, stderr) = wwatchd(&["check", "--config", &cfg]);
    assert_eq!(code, 0, "{stderr}");
    let a = stdout
        .find("rule-a \"Copy rule-a\"")
        .expect("rule-a listed");
    let b = stdout
        .find("rule-b \"Copy rule-b\"")
        .expect("rule-b listed");
    let seed = stdout.find("3e528511").expect("built-in listed");
    assert!(seed < a && a < b, "{stdout}");

    // A world-writable rule file is refused.
    let bad = write_mode(&rules, "20-b.toml", &other_rule("rule-b"), 0o666);
    let (code, _, stderr) = wwatchd(&["check", "--config", &cfg]);
    assert_eq!(code, 78, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{bad}: refusing a world-writable rule file (mode 0666)"
        )),
        "{stderr}"
    );

    // The same rule_id in two files is an error naming both.
    write_mode(&rules, "20-b.toml", &other_rule("rule-a"), 0o644);
    let (code, _, stderr) = wwatchd(&["check", "--config", &cfg]);
    assert_eq!(code, 78, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "rule_id \"rule-a\" is defined twice: in {rules_s}/10-a.toml and in {rules_s}/20-b.toml"
        )),
        "{stderr}"
    );
}

/// With the shipped configuration, scan gives exactly the golden alerts of every fixture:
/// the default behaviour is exactly the seed rule.
#[test]
fn scan_with_the_shipped_config_is_the_seed_rule() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("rules");
    let cfg = write_mode(
        dir.path(),
        "w.toml",
        &shipped_with_rules_dir(empty.to_str().unwrap()),
        0o644,
    );
    let fixtures = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect::<Vec<_>>();
    assert!(fixtures.len() >= 10);
    for log in fixtures {
        let (code, stdout, stderr) = wwatchd(&[
            "scan",
            "--host",
            "wwcapture",
            "--host-id",
            "5f1f2d8a0c3b4e6f9a7d1c2b3e4f5a60",
            "--config",
            &cfg,
            log.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{stderr}");
        let golden = std::fs::read_to_string(log.with_extension("alerts.jsonl")).unwrap();
        assert_eq!(stdout, golden, "{}", log.display());
        assert!(
            stderr.contains("exception-suppressed 0 budget-suppressed 0 deduplicated 0"),
            "{stderr}"
        );
    }
}

#[test]
fn scan_config_exception_suppresses_a_fixture_alert_and_counts_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = fixture("ssh_agent.log");
    let (_, without, _) = wwatchd(&["scan", &log]);
    assert_eq!(without.lines().count(), 1);
    assert!(without.contains("\"path\":\"/tmp/ssh-"), "{without}");
    let cfg = write_mode(
        dir.path(),
        "w.toml",
        &format!(
            "[rules]\ndir = \"{}/none\"\n\n[[exception]]\nname = \"ssh-agent-forwarding\"\n\
             process = [\"sshd\", \"sshd-session\"]\npath = \"/tmp/ssh-*\"\n",
            dir.path().display()
        ),
        0o644,
    );
    let (code, stdout, stderr) = wwatchd(&["scan", "--config", &cfg, &log]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "", "the alert is suppressed");
    assert!(
        stderr.contains("wwatchd: exception \"ssh-agent-forwarding\" suppressed 1 alerts"),
        "{stderr}"
    );
    assert!(stderr.contains(" alerts 0 "), "{stderr}");
    assert!(stderr.contains("exception-suppressed 1 "), "{stderr}");

    // An exception is narrow: the sftp fixture's drops still alert, except the /tmp ones
    // an exception for sftp-server names.
    let cfg = write_mode(
        dir.path(),
        "w.toml",
        &format!(
            "[rules]\ndir = \"{}/none\"\n\n[[exception]]\nrule = \"Remote File Creation in \
             World Writeable Directory\"\nprocess = \"/usr/lib/openssh/sftp-server\"\n\
             path = \"/TMP/WWCAP-*\"\nuser = 1001\n",
            dir.path().display()
        ),
        0o644,
    );
    let (code, stdout, stderr) = wwatchd(&["scan", "--config", &cfg, &fixture("sftp.log")]);
    assert_eq!(code, 0, "{stderr}");
    let paths: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.split("\"path\":\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(paths, ["/dev/shm/wwcap-sftp-put.bin"], "{stdout}");
    assert!(
        stderr.contains("exception \"exception #1 (")
            && stderr.contains(":4)\" suppressed 4 alerts"),
        "{stderr}"
    );
}

#[test]
fn scan_config_budget_sends_n_then_a_start_and_a_closing_summary() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_mode(
        dir.path(),
        "w.toml",
        &format!(
            "[rules]\ndir = \"{}/none\"\n[budget]\nmax_alerts = 2\nwindow = 60\n",
            dir.path().display()
        ),
        0o644,
    );
    let (code, stdout, stderr) = wwatchd(&[
        "scan",
        "--host",
        "wwcapture",
        "--host-id",
        "5f1f2d8a0c3b4e6f9a7d1c2b3e4f5a60",
        "--config",
        &cfg,
        &fixture("sftp.log"),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let docs: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(docs.len(), 4, "{stdout}");
    let golden: Vec<serde_json::Value> = std::fs::read_to_string(fixture("sftp.alerts.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        docs[..2],
        golden[..2],
        "the first two alerts go out unchanged"
    );
    // The third alert starts suppression for its user: said at once, naming the user.
    let started = &docs[2];
    assert_eq!(started["event"]["action"], "alert-budget-summary");
    assert_eq!(started["wwatchd"]["budget"]["phase"], "started");
    let actor = started["wwatchd"]["budget"]["actor"].as_str().unwrap();
    assert_eq!(actor, "1001", "{started}");
    assert_eq!(started["wwatchd"]["budget"]["suppressed"], 1);
    assert_eq!(
        started["wwatchd"]["budget"]["actors"]["top"][0]["actor"],
        actor
    );
    let s = &docs[3];
    assert_eq!(s["wwatchd"]["budget"]["phase"], "closed");
    assert_eq!(s["wwatchd"]["budget"]["actors"]["top"][0]["suppressed"], 3);
    assert_eq!(s["event"]["kind"], "alert");
    assert_eq!(s["event"]["action"], "alert-budget-summary");
    assert_eq!(s["rule"]["id"], "3e528511-7316-4a6e-83da-61b5f1c07fd4");
    assert_eq!(s["wwatchd"]["budget"]["suppressed"], 3);
    assert_eq!(s["wwatchd"]["budget"]["sent"], 2);
    assert_eq!(
        s["wwatchd"]["budget"]["process.name"]["top"][0]["value"],
        "sftp-server"
    );
    assert_eq!(s["wwatchd"]["budget"]["process.name"]["top"][0]["count"], 3);
    assert_eq!(
        s["wwatchd"]["budget"]["file.path"]["top"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );
    assert_eq!(s["event"]["start"], golden[0]["@timestamp"]);
    assert!(
        s["message"]
            .as_str()
            .unwrap()
            .starts_with("3 alerts of rule \"Remote File Creation in World Writeable Directory\" suppressed by the alert budget (2 per 60 s) between "),
        "{s}"
    );
    assert!(
        stderr.contains(" alerts 2 ")
            && stderr.contains("budget-suppressed 3 deduplicated 0 budget-summaries 2"),
        "{stderr}"
    );
}

/// `wwatchd run` refuses an unusable spool before it touches the kernel, exit 78, naming the
/// directory and what to do. Run as nobody when we are root, so that even a regression here
/// cannot change the machine's audit state.
#[test]
fn run_refuses_a_bad_spool_before_touching_the_kernel() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let root = nix::unistd::geteuid().is_root();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let open = tmp.path().join("world-writable");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    if root {
        nix::unistd::chown(&open, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
    }
    let status = tmp.path().join("status.json");
    let run = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_wwatchd"));
        c.args(["run", "--output", "tcp://127.0.0.1:9", "--status-file"])
            .arg(&status)
            .args(args);
        if root {
            c.uid(65534).gid(65534);
        }
        let out = c.output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&["--spool-max-bytes", "1000"]);
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains("spool_max_bytes: 1000 is below the minimum"),
        "{err}"
    );
    let (code, err) = run(&["--spool-dir", "spool"]);
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains("spool_dir: spool is not an absolute path"),
        "{err}"
    );
    let (code, err) = run(&["--spool-dir", open.to_str().unwrap()]);
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains("world-writable spool directory (mode 0777)") && err.contains("chmod go-w"),
        "{err}"
    );
    assert!(!status.exists(), "the daemon never started");
}

/// Issue 9: `scan` enriches from the log's own login records, as the daemon does, so
/// alerts carry `source.ip` and a `source` exception works in scan, the documented way to
/// try an exception before deploying it.
#[test]
fn issue9_scan_gives_source_ip_and_source_exceptions_suppress() {
    let dir = tempfile::tempdir().unwrap();
    let logs: Vec<String> = [
        "sftp.log",
        "scp_sftp.log",
        "scp_legacy.log",
        "rsync.log",
        "vsftpd.log",
    ]
    .iter()
    .map(|f| fixture(f))
    .collect();
    let mut args = vec!["scan"];
    args.extend(logs.iter().map(String::as_str));
    let (code, all, stderr) = wwatchd(&args);
    assert_eq!(code, 0, "{stderr}");
    let with_ip = all
        .lines()
        .filter(|l| l.contains("\"ip\":\"127.0.0.1\""))
        .count();
    assert!(
        with_ip >= 10,
        "source.ip on the remote sessions' alerts: {all}"
    );
    let total = all.lines().count();

    let cfg = write_mode(
        dir.path(),
        "w.toml",
        &format!(
            "[rules]\ndir = \"{}/none\"\n\n[[exception]]\nname = \"build network\"\n\
             source = [\"127.0.0.0/8\"]\n",
            dir.path().display()
        ),
        0o644,
    );
    let mut args = vec!["scan", "--config", &cfg];
    args.extend(logs.iter().map(String::as_str));
    let (code, rest, stderr) = wwatchd(&args);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(rest.lines().count(), total - with_ip, "{rest}");
    assert!(!rest.contains("127.0.0.1"), "{rest}");
    assert!(
        stderr.contains(&format!(
            "exception \"build network\" suppressed {with_ip} alerts"
        )),
        "{stderr}"
    );
}

/// Issue 11: a rule that loads but can never match wwatchd's events is reported, with its
/// file and line (here an Auditbeat-only `event.action`).
#[test]
fn a_rule_that_can_never_match_is_warned_about() {
    let rule = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/elastic-rules/eql/linux__defense_evasion_apparmor_policy_access.toml"
    );
    let out = Command::new(BIN)
        .args(["scan", "--no-progress", "--rule", rule])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "warning: {rule}:92: rule \"AppArmor Policy Interface Access\" can never match"
        )),
        "{err}"
    );
    // The seed rule gets no such warning.
    let out = Command::new(BIN)
        .args(["scan", "--no-progress"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stderr).contains("never match"));
}

/// Issue 15, item 2: every way a file that steers wwatchd could be in another user's hands
/// is refused (exit 78) with an error naming the path and the fix, never a warning. Needs
/// root, to give files to `nobody` (uid 65534) and group `nogroup`; skips otherwise.
#[test]
fn untrusted_config_and_rule_files_are_refused_naming_the_path_and_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping untrusted_config_and_rule_files_are_refused: needs root (chown)");
        return;
    }
    let nobody = Some(nix::unistd::Uid::from_raw(65534));
    let nogroup = Some(nix::unistd::Gid::from_raw(65534));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let refused = |args: &[&str], path: &str, why: &str, fix: &str| {
        let (code, stdout, stderr) = wwatchd(args);
        assert_eq!(code, 78, "{args:?}: {stdout}{stderr}");
        assert!(
            stderr.contains(path) && stderr.contains(why) && stderr.contains(fix),
            "{args:?}: want {path:?}, {why:?} and {fix:?} in: {stderr}"
        );
        assert!(!stderr.contains("warning"), "{stderr}");
    };
    let body = "[budget]\nmax_alerts = 5\n";

    // A group-writable file whose group is not root's.
    let gw = write_mode(d, "group.toml", body, 0o664);
    nix::unistd::chown(gw.as_str(), None, nogroup).unwrap();
    refused(
        &["check", "--config", &gw],
        &gw,
        "refusing a group-writable configuration file (mode 0664)",
        &format!("chmod go-w {gw}"),
    );

    // A file owned by nobody.
    let nb = write_mode(d, "nobody.toml", body, 0o644);
    nix::unistd::chown(nb.as_str(), nobody, None).unwrap();
    refused(
        &["check", "--config", &nb],
        &nb,
        "refusing a configuration file owned by uid 65534, not by root",
        &format!("chown root {nb}"),
    );

    // A symlink to a nobody-owned file: not followed, the target named.
    let link = d.join("link.toml");
    std::os::unix::fs::symlink(&nb, &link).unwrap();
    let link = link.to_str().unwrap().to_owned();
    refused(
        &["check", "--config", &link],
        &link,
        "is a symlink: refusing to follow it",
        &format!("({nb}) instead"),
    );

    // A rule file owned by nobody, named directly and found in the rule directory.
    let rule = std::fs::read_to_string(format!(
        "{}/rules/remote_file_creation_world_writeable.toml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let rules_dir = d.join("rules");
    std::fs::create_dir(&rules_dir).unwrap();
    std::fs::set_permissions(&rules_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let rf = write_mode(&rules_dir, "r.toml", &rule, 0o644);
    nix::unistd::chown(rf.as_str(), nobody, None).unwrap();
    refused(
        &["rules", "print", "--rule", &rf],
        &rf,
        "refusing a rule file owned by uid 65534, not by root",
        &format!("chown root {rf}"),
    );
    let cfg = write_mode(
        d,
        "dir.toml",
        &format!("[rules]\ndir = \"{}\"\n", rules_dir.display()),
        0o644,
    );
    refused(
        &["check", "--config", &cfg],
        &rf,
        "owned by uid 65534",
        "chown root",
    );

    // A root-owned, 0644 file directly inside a 1777 directory: anyone may have put it
    // there first, or may replace the directory's other entries.
    let open = d.join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let sticky = write_mode(&open, "c.toml", body, 0o644);
    refused(
        &["check", "--config", &sticky],
        &sticky,
        &format!("under {} (uid 0, mode 1777)", open.display()),
        "keep it in a directory owned by root and writable only by it",
    );

    // The same file one directory below a sticky one is fine (the sticky bit keeps others
    // from replacing that directory), and so are the files above once fixed.
    let below = open.join("etc");
    std::fs::create_dir(&below).unwrap();
    std::fs::set_permissions(&below, std::fs::Permissions::from_mode(0o755)).unwrap();
    let ok = write_mode(&below, "c.toml", body, 0o644);
    assert_eq!(wwatchd(&["check", "--config", &ok]).0, 0);
    nix::unistd::chown(nb.as_str(), Some(nix::unistd::Uid::from_raw(0)), None).unwrap();
    assert_eq!(wwatchd(&["check", "--config", &nb]).0, 0);
}

/// The seed rule's query as an EQL rule of type new_terms on (process.executable, host.id),
/// as Elastic's current version of the seed, with its own id.
fn eql_new_terms_rule() -> String {
    other_rule("nt-eql").replace("type = \"eql\"", "type = \"new_terms\"")
        + "\n[rule.new_terms]\nfield = \"new_terms_fields\"\n\
           value = [\"process.executable\", \"host.id\"]\n\n\
           [[rule.new_terms.history_window_start]]\nfield = \"history_window_start\"\n\
           value = \"now-5d\"\n"
}

/// Issue 11: a new_terms rule in `scan`: the first upload by sftp-server alerts, the four
/// after it do not (counted as known); with the same log as --new-terms-history none does;
/// without a host.id (another host's log, no --host-id) none can, as in Elasticsearch.
#[test]
fn scan_new_terms_alerts_once_and_learns_from_a_history() {
    let dir = tempfile::tempdir().unwrap();
    let rule = write_mode(dir.path(), "nt.toml", &eql_new_terms_rule(), 0o644);
    let log = fixture("sftp.log");
    let id = [
        "--host",
        "h",
        "--host-id",
        "0123456789abcdef0123456789abcdef",
    ];
    let (code, out, err) = wwatchd(&[&["scan", "--rule", &rule][..], &id, &[&log]].concat());
    assert_eq!(code, 0, "{err}");
    let alerts: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(alerts.len(), 1, "{out}");
    assert_eq!(alerts[0]["file"]["path"], "/dev/shm/wwcap-sftp-put.bin");
    assert_eq!(alerts[0]["host"]["id"], "0123456789abcdef0123456789abcdef");
    assert!(err.contains(" new-terms-known 4 "), "{err}");
    assert!(err.contains(" new-terms 1"), "{err}");

    let history = [
        &["scan", "--rule", &rule, "--new-terms-history", &log][..],
        &id,
        &[&log],
    ];
    let (code, out, err) = wwatchd(&history.concat());
    assert_eq!(code, 0, "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(err.contains(" new-terms-known 5 "), "{err}");
    assert!(
        err.contains("new_terms history: ") && err.contains(" 1 terms from "),
        "{err}"
    );

    let (code, out, err) = wwatchd(&["scan", "--rule", &rule, "--host", "h", &log]);
    assert_eq!(code, 0, "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(err.contains(" new-terms-missing 5 "), "{err}");
}

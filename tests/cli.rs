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
/// with `wwatchd rules print > rules.d/40-wwatchd.rules`).
#[test]
fn shipped_rules_file_is_rules_print() {
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
        err.contains("world-writable (mode 0777)") && err.contains("chmod 0700"),
        "{err}"
    );
    assert!(!status.exists(), "the daemon never started");
}

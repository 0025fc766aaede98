//! Real-kernel tests of `wwatchd run`, of what kernel audit rules can filter, and of the
//! control socket, the rule codec and the multicast reader (`netlink`, `kernel_rules`).
//!
//! Root only (the root tier): each test skips with a message otherwise, when audit is locked
//! (enabled 2), or when WWATCHD_SKIP_ROOT_TESTS is set (the fast tier, tools/test-fast.sh).
//! Kernel audit state is global, so every test here takes `LOCK`; run them with
//! `cargo test --test kernel -- --test-threads=1` anyway, under the machine's kernel lock,
//! and never beside other kernel tests.
//! They touch only rules keyed `wwatchd-d-*`, never run `auditctl -D`, and leave `enabled` as
//! they found it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

static LOCK: Mutex<()> = Mutex::new(());

const BIN: &str = env!("CARGO_BIN_EXE_wwatchd");
const OURS: &str = "key=wwatchd-d-";

fn auditctl(args: &[&str]) -> String {
    let out = Command::new("auditctl")
        .args(args)
        .output()
        .expect("run auditctl");
    assert!(
        out.status.success(),
        "auditctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn status_field(name: &str) -> u32 {
    auditctl(&["-s"])
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in auditctl -s"))
}

fn our_rules() -> Vec<String> {
    auditctl(&["-l"])
        .lines()
        .filter(|l| l.contains(OURS))
        .map(str::to_owned)
        .collect()
}

/// True, with a message naming `test`, when the root tier does not run here: not root
/// (`why` says what is missing), or WWATCHD_SKIP_ROOT_TESTS is set (tools/test-fast.sh sets
/// it, so that the fast tier changes no kernel state even when root runs it).
fn skip_root_tier(test: &str, why: &str) -> bool {
    if std::env::var_os("WWATCHD_SKIP_ROOT_TESTS").is_some() {
        eprintln!("skipping {test}: WWATCHD_SKIP_ROOT_TESTS is set (the fast tier)");
        return true;
    }
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping {test}: {why}");
        return true;
    }
    false
}

/// Restores `enabled` and removes our rules whatever happens.
struct AuditState {
    enabled: u32,
}

impl AuditState {
    fn take(test: &str) -> Option<AuditState> {
        if skip_root_tier(test, "needs root") {
            return None;
        }
        if Command::new("auditctl").arg("-s").output().is_err() {
            eprintln!("skipping {test}: no auditctl");
            return None;
        }
        let enabled = status_field("enabled");
        if enabled == 2 {
            eprintln!("skipping {test}: audit is locked (enabled 2)");
            return None;
        }
        if !our_rules().is_empty() {
            // A wwatchd daemon is running here; its rules are not ours to remove.
            eprintln!("skipping {test}: wwatchd-d- rules are loaded (a daemon is running?)");
            return None;
        }
        Some(AuditState { enabled })
    }
}

impl Drop for AuditState {
    fn drop(&mut self) {
        let _ = Command::new(BIN).args(["rules", "remove"]).output();
        let _ = Command::new("auditctl")
            .args(["-e", &self.enabled.to_string()])
            .output();
    }
}

/// The daemon with its stdout (alerts) and stderr collected by threads.
struct Daemon {
    child: Child,
    out: Arc<Mutex<Vec<String>>>,
    err: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    fn start(status_file: &Path) -> Daemon {
        let mut cmd = Command::new(BIN);
        cmd.args(["run", "--output", "stdout", "--status-file"])
            .arg(status_file);
        Daemon::spawn(cmd)
    }

    /// Starts `cmd` (a `wwatchd run --output stdout` command line, maybe behind a wrapper)
    /// and waits until it has loaded its rules.
    fn spawn(mut cmd: Command) -> Daemon {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn wwatchd run");
        let collect = |r: Box<dyn std::io::Read + Send>| {
            let v = Arc::new(Mutex::new(Vec::new()));
            let v2 = v.clone();
            std::thread::spawn(move || {
                for l in BufReader::new(r).lines().map_while(Result::ok) {
                    v2.lock().unwrap().push(l);
                }
            });
            v
        };
        let out = collect(Box::new(child.stdout.take().unwrap()));
        let err = collect(Box::new(child.stderr.take().unwrap()));
        let d = Daemon { child, out, err };
        d.wait_for(Duration::from_secs(10), "started", |d| {
            d.err.lock().unwrap().iter().any(|l| l.contains("started:"))
        });
        d
    }

    fn wait_for(&self, limit: Duration, what: &str, f: impl Fn(&Daemon) -> bool) {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if f(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "timed out waiting for {what}; stderr: {:?}",
            self.err.lock().unwrap()
        );
    }

    fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig).unwrap();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the daemon derives here: `rules print` plus, per hidden directory under /home, a
/// b64 and a b32 rule.
fn derived_count() -> usize {
    let out = Command::new(BIN).args(["rules", "print"]).output().unwrap();
    let printed = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("-a "))
        .count();
    let hidden = std::fs::read_dir("/home")
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
                .count()
        })
        .unwrap_or(0);
    printed + 2 * hidden
}

fn uid_of(user: &str) -> String {
    let out = Command::new("id").args(["-u", user]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Runs `rsync_bin` (a copy of touch named rsync, so comm is "rsync") as `user`, or as
/// root for `None`.
fn touch_as(user: Option<&str>, rsync_bin: &Path, target: &Path) {
    let st = match user {
        Some(u) => Command::new("runuser")
            .args(["-u", u, "--"])
            .arg(rsync_bin)
            .arg(target)
            .status(),
        None => Command::new(rsync_bin).arg(target).status(),
    }
    .unwrap();
    assert!(st.success(), "touch {} as {user:?}", target.display());
}

fn alert_for(lines: &[String], path: &Path) -> Option<serde_json::Value> {
    let p = path.to_str().unwrap();
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v.pointer("/file/path").and_then(|x| x.as_str()) == Some(p))
}

struct RmDir(PathBuf);

impl Drop for RmDir {
    fn drop(&mut self) {
        if std::fs::remove_file(&self.0).is_err() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[test]
fn run_alerts_reinstalls_and_cleans_up() {
    let _l = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let Some(_state) = AuditState::take("run_alerts_reinstalls_and_cleans_up") else {
        return;
    };
    let auditd_pid = status_field("pid");
    let id = std::process::id();
    let dir = PathBuf::from(format!("/tmp/wwatchd-test-{id}"));
    let _rm = RmDir(dir.clone());
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o1777)).unwrap();
    // comm comes from the executed file's basename.
    let bin_dir = tempfile::tempdir_in("/run").unwrap();
    std::fs::set_permissions(
        bin_dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let rsync = bin_dir.path().join("rsync");
    std::fs::copy("/usr/bin/touch", &rsync).unwrap();
    let var_file = PathBuf::from(format!("/var/tmp/wwatchd-test-{id}-y"));
    let _rm_var = RmDir(var_file.clone());
    let _ = std::fs::remove_file(&var_file);
    let status = bin_dir.path().join("status.json");

    let want = derived_count();
    let d = Daemon::start(&status);
    assert_eq!(our_rules().len(), want, "derived rules loaded");

    let root_file = dir.join("root");
    let x = dir.join("x");
    touch_as(None, &rsync, &root_file);
    touch_as(Some("nobody"), &rsync, &x);
    touch_as(Some("nobody"), &rsync, &var_file);
    d.wait_for(Duration::from_secs(5), "both alerts", |d| {
        let out = d.out.lock().unwrap();
        alert_for(&out, &x).is_some() && alert_for(&out, &var_file).is_some()
    });
    {
        let out = d.out.lock().unwrap();
        let nobody = uid_of("nobody");
        for p in [&x, &var_file] {
            let a = alert_for(&out, p).unwrap();
            eprintln!("alert: {a}");
            assert_eq!(a.pointer("/process/name").unwrap(), "rsync");
            assert_eq!(
                a.pointer("/user/id").unwrap().as_str(),
                Some(nobody.as_str())
            );
            assert_eq!(a.pointer("/event/kind").unwrap(), "alert");
        }
        assert!(alert_for(&out, &root_file).is_none(), "root's file alerted");
    }

    // Delete our rules by key, one by one (never -D): they come back.
    for rule in our_rules() {
        let args: Vec<&str> = rule
            .strip_prefix("-a ")
            .expect("an -a rule")
            .split_whitespace()
            .collect();
        let mut full = vec!["-d"];
        full.extend(args);
        auditctl(&full);
    }
    let t0 = Instant::now();
    d.wait_for(Duration::from_secs(2), "rules reinstalled", |d| {
        our_rules().len() == want
            && d.err
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains("rule_reinstalls +"))
    });
    eprintln!("rules back after {:?}", t0.elapsed());

    // SIGKILL leaves the rules; a restart must not duplicate them.
    d.signal(nix::sys::signal::Signal::SIGKILL);
    drop(d);
    assert_eq!(our_rules().len(), want, "rules survive SIGKILL");
    let mut d = Daemon::start(&status);
    assert_eq!(our_rules().len(), want, "no duplicates after restart");

    d.signal(nix::sys::signal::Signal::SIGTERM);
    let st = d.child.wait().unwrap();
    assert!(
        st.success(),
        "exit status {st:?}; stderr {:?}",
        d.err.lock().unwrap()
    );
    assert!(our_rules().is_empty(), "rules left: {:?}", our_rules());
    assert_eq!(status_field("pid"), auditd_pid, "auditd displaced");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&status).unwrap()).unwrap();
    assert_eq!(s["state"], "stopped");
    eprintln!("status file: {s}");
}

/// Measures whether `perm=w` on a rule with our syscall list drops creations. It does for
/// `open(O_CREAT|O_RDONLY)` (open* are judged by their access mode), which is why the
/// derived rules carry no perm filter.
#[test]
fn perm_w_with_a_syscall_list_drops_rdonly_creat() {
    use nix::fcntl::{OFlag, open};
    use nix::sys::stat::Mode;
    use wwatchd::netlink::MulticastReader;
    use wwatchd::record::Record;

    let _l = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let Some(_state) = AuditState::take("perm_w_with_a_syscall_list_drops_rdonly_creat") else {
        return;
    };
    auditctl(&["-e", "1"]);
    let dir = tempfile::tempdir_in("/run").unwrap();
    let d = dir.path().to_str().unwrap().to_owned();
    let key = format!("wwatchd-d-kt-perm-{}", std::process::id());
    let rule = format!(
        "always,exit -F arch=b64 -S open,mkdir,creat,link,symlink,mknod,openat,mkdirat,mknodat,\
         linkat,symlinkat,openat2 -F dir={d} -F perm=w -F success=1 -F key={key}"
    );
    let args: Vec<&str> = rule.split_whitespace().collect();
    let (mut reader, _) = MulticastReader::open(4 << 20).unwrap();
    auditctl(&[&["-a"], &args[..]].concat());

    let p = |n: &str| format!("{d}/{n}");
    std::fs::create_dir(p("mkdir")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", p("symlink")).unwrap();
    std::fs::write(p("wronly"), b"").unwrap(); // open(O_CREAT|O_WRONLY)
    std::fs::hard_link(p("wronly"), p("link")).unwrap();
    nix::unistd::mkfifo(p("mknod").as_str(), Mode::from_bits_truncate(0o600)).unwrap();
    let fd = open(
        p("rdonly").as_str(),
        OFlag::O_CREAT | OFlag::O_RDONLY,
        Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    drop(fd);

    let mut seen = String::new();
    let end = Instant::now() + Duration::from_secs(2);
    while Instant::now() < end {
        let _ = reader.recv(Some(Duration::from_millis(100)), &mut |t, text| {
            if t == 1302
                && let Ok(r) = Record::from_netlink(t, text)
            {
                seen.push_str(&String::from_utf8_lossy(r.body));
                seen.push('\n');
            }
        });
    }
    auditctl(&[&["-d"], &args[..]].concat());
    let recorded = |n: &str| seen.contains(&format!("name=\"{}\"", p(n)));
    let results: Vec<(&str, bool)> = ["mkdir", "symlink", "wronly", "link", "mknod", "rdonly"]
        .iter()
        .map(|n| (*n, recorded(n)))
        .collect();
    eprintln!("perm=w with a syscall list, recorded: {results:?}");
    for (n, ok) in &results[..5] {
        assert!(ok, "{n} not recorded under perm=w");
    }
    assert!(
        !results[5].1,
        "open(O_CREAT|O_RDONLY) was recorded under perm=w: the kernel changed; perm=w may be safe"
    );
}

/// `rules.d/40-wwatchd.rules` (what the package installs for augenrules) loads with
/// `auditctl -R` on this kernel, gives exactly its rules, and they go again by key.
#[test]
fn shipped_rules_file_loads_with_auditctl() {
    let _l = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let Some(_state) = AuditState::take("shipped_rules_file_loads_with_auditctl") else {
        return;
    };
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/rules.d/40-wwatchd.rules");
    let text = std::fs::read_to_string(file).unwrap();
    let mut want: Vec<&str> = text.lines().filter(|l| l.starts_with("-a ")).collect();
    assert!(want.len() >= 8, "{file}: only {} rules", want.len());
    // Loading rules does not need audit enabled (measured: `auditctl -R` with enabled 0
    // loads all of them; they only fire once enabled). AuditState restores `enabled`.
    eprintln!("enabled before: {}", status_field("enabled"));
    auditctl(&["-R", file]);
    let mut got = our_rules();
    want.sort_unstable();
    got.sort_unstable();
    // The kernel lists each rule as the file writes it (same field order, syscall names).
    assert_eq!(got, want, "auditctl -l after auditctl -R {file}");

    let keys: Vec<&str> = want
        .iter()
        .filter_map(|l| l.rsplit_once("-F key=").map(|(_, k)| k.trim()))
        .collect();
    assert_eq!(keys.len(), want.len(), "every rule has a key");
    for k in &keys {
        auditctl(&["-D", "-k", k]);
    }
    assert!(
        our_rules().is_empty(),
        "left after delete by key: {:?}",
        our_rules()
    );
}

/// Capability masks of one `/proc/PID/status` (or `/proc/PID/task/TID/status`).
#[derive(Debug, PartialEq, Eq)]
struct Creds {
    uid: String,
    gid: String,
    cap_inh: u64,
    cap_prm: u64,
    cap_eff: u64,
    cap_bnd: u64,
    cap_amb: u64,
    no_new_privs: String,
}

fn creds(status: &Path) -> Creds {
    let text = std::fs::read_to_string(status).unwrap();
    let field = |name: &str| -> String {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .unwrap_or_else(|| panic!("no {name} in {}", status.display()))
            .trim()
            .to_owned()
    };
    let mask = |name: &str| u64::from_str_radix(&field(name), 16).unwrap();
    Creds {
        uid: field("Uid"),
        gid: field("Gid"),
        cap_inh: mask("CapInh"),
        cap_prm: mask("CapPrm"),
        cap_eff: mask("CapEff"),
        cap_bnd: mask("CapBnd"),
        cap_amb: mask("CapAmb"),
        no_new_privs: field("NoNewPrivs"),
    }
}

/// A system user for the test, removed again if the test made it.
struct TestUser {
    name: &'static str,
    created: bool,
}

impl TestUser {
    fn ensure(name: &'static str) -> TestUser {
        let exists = Command::new("id")
            .arg(name)
            .output()
            .unwrap()
            .status
            .success();
        if !exists {
            let st = Command::new("useradd")
                .args(["--system", "--no-create-home", "--home-dir", "/nonexistent"])
                .args(["--shell", "/usr/sbin/nologin", name])
                .status()
                .unwrap();
            assert!(st.success(), "useradd {name}");
        }
        TestUser {
            name,
            created: !exists,
        }
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        if self.created {
            let _ = Command::new("userdel").arg(self.name).status();
        }
    }
}

/// After start the daemon holds CAP_AUDIT_READ and CAP_AUDIT_CONTROL and nothing else, in
/// every thread and every set (CAP_NET_ADMIN gone once the buffer is set), whether it was
/// started as root, as root with `--user`, or as that user with ambient capabilities (what
/// systemd's `User=` + `AmbientCapabilities=` do); and that is enough: it alerts on a drop
/// by a non-root user and removes its rules at SIGTERM.
#[test]
fn dropped_privileges_suffice_to_detect_and_clean_up() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    let _l = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let Some(_state) = AuditState::take("dropped_privileges_suffice_to_detect_and_clean_up") else {
        return;
    };
    let user = TestUser::ensure("wwatchd-kt");
    let uid = uid_of(user.name);
    let gid = {
        let out = Command::new("id").args(["-g", user.name]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let enabled_before = status_field("enabled");

    let bin_dir = tempfile::tempdir_in("/run").unwrap();
    std::fs::set_permissions(bin_dir.path(), PermissionsExt::from_mode(0o755)).unwrap();
    let rsync = bin_dir.path().join("rsync");
    std::fs::copy("/usr/bin/touch", &rsync).unwrap();
    let drops = PathBuf::from(format!("/tmp/wwatchd-kt-priv-{}", std::process::id()));
    let _rm = RmDir(drops.clone());
    std::fs::create_dir_all(&drops).unwrap();
    std::fs::set_permissions(&drops, PermissionsExt::from_mode(0o1777)).unwrap();

    for mode in ["root", "--user", "ambient"] {
        // The status file's directory: missing for --user (the daemon makes it, owned by
        // the user), made by us for the ambient start (as systemd's RuntimeDirectory=).
        let run_dir = bin_dir.path().join(mode.trim_start_matches('-'));
        std::fs::create_dir(&run_dir).unwrap();
        let status = run_dir.join("wwatchd/status.json");
        let cmd = daemon_command(mode, &run_dir, &status, &uid, &gid, user.name);
        let mut d = Daemon::spawn(cmd);
        let want_uid = if mode == "root" { "0" } else { uid.as_str() };
        let want_gid = if mode == "root" { "0" } else { gid.as_str() };

        assert_dropped_to(mode, &d, want_uid, want_gid);

        // A drop by a non-root user still alerts.
        let x = drops.join(format!("x-{}", mode.trim_start_matches('-')));
        touch_as(Some("nobody"), &rsync, &x);
        d.wait_for(Duration::from_secs(5), "the alert", |d| {
            alert_for(&d.out.lock().unwrap(), &x).is_some()
        });
        let a = alert_for(&d.out.lock().unwrap(), &x).unwrap();
        assert_eq!(a.pointer("/process/name").unwrap(), "rsync");
        assert_eq!(
            a.pointer("/user/id").unwrap().as_str(),
            Some(uid_of("nobody").as_str())
        );

        // The status file is written as the daemon's user.
        d.wait_for(Duration::from_secs(5), "the status file", |_| {
            status.exists()
        });
        let owner = std::fs::metadata(&status).unwrap().uid().to_string();
        assert_eq!(owner, want_uid, "{mode}: owner of {}", status.display());

        // Removing our rules and restoring `enabled` needs only CAP_AUDIT_CONTROL.
        d.signal(nix::sys::signal::Signal::SIGTERM);
        let st = d.child.wait().unwrap();
        assert!(
            st.success(),
            "{mode}: exit {st:?}; stderr {:?}",
            d.err.lock().unwrap()
        );
        assert!(
            our_rules().is_empty(),
            "{mode}: rules left: {:?}",
            our_rules()
        );
        assert_eq!(status_field("enabled"), enabled_before, "{mode}: enabled");
        let s: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&status).unwrap()).unwrap();
        assert_eq!(s["state"], "stopped", "{mode}");
    }
}

/// `wwatchd run` to stdout with its status file at `status`, started the way `mode` says:
/// as root, as root with `--user`, or as the user with ambient capabilities (then the
/// status file's directory is made here, as systemd's RuntimeDirectory= does).
fn daemon_command(
    mode: &str,
    run_dir: &Path,
    status: &Path,
    uid: &str,
    gid: &str,
    user: &str,
) -> Command {
    let caps = "+audit_read,+audit_control,+net_admin,+setpcap";
    let mut cmd = match mode {
        "ambient" => {
            std::fs::create_dir(run_dir.join("wwatchd")).unwrap();
            let st = Command::new("chown")
                .arg(format!("{uid}:{gid}"))
                .arg(run_dir.join("wwatchd"))
                .status()
                .unwrap();
            assert!(st.success());
            let mut c = Command::new("setpriv");
            c.args([
                &format!("--reuid={uid}"),
                &format!("--regid={gid}"),
                "--clear-groups",
                &format!("--inh-caps=-all,{caps}"),
                &format!("--ambient-caps=-all,{caps}"),
                &format!("--bounding-set=-all,{caps}"),
                BIN,
            ]);
            c
        }
        _ => Command::new(BIN),
    };
    cmd.args(["run", "--output", "stdout", "--status-file"])
        .arg(status);
    if mode == "--user" {
        cmd.args(["--user", user]);
    }
    cmd
}

/// The daemon `d` runs as `want_uid`/`want_gid` with CAP_AUDIT_READ and CAP_AUDIT_CONTROL
/// only, in every thread and set, and says so; CAP_NET_ADMIN was there for the buffer.
fn assert_dropped_to(mode: &str, d: &Daemon, want_uid: &str, want_gid: &str) {
    // CAP_AUDIT_CONTROL (30) and CAP_AUDIT_READ (37), linux/capability.h.
    const KEPT: u64 = (1 << 30) | (1 << 37);
    let pid = d.child.id();
    let main = creds(Path::new(&format!("/proc/{pid}/status")));
    eprintln!("{mode}: /proc/{pid}/status: {main:x?}");
    assert_eq!(
        main,
        Creds {
            uid: [want_uid; 4].join("\t"),
            gid: [want_gid; 4].join("\t"),
            cap_inh: 0,
            cap_prm: KEPT,
            cap_eff: KEPT,
            cap_bnd: KEPT,
            cap_amb: 0,
            no_new_privs: "1".into(),
        },
        "{mode}: credentials of the daemon"
    );
    // Capabilities are per thread: every thread must have dropped them.
    let mut threads = 0;
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let t = t.unwrap().path();
        assert_eq!(
            creds(&t.join("status")),
            main,
            "{mode}: thread {}",
            t.display()
        );
        threads += 1;
    }
    assert!(threads >= 4, "{mode}: {threads} threads");
    assert!(
        d.err
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("privileges: ") && l.contains("CAP_AUDIT_READ")),
        "{mode}: no privileges line: {:?}",
        d.err.lock().unwrap()
    );
    assert!(
        !d.err
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("SO_RCVBUFFORCE refused")),
        "{mode}: CAP_NET_ADMIN was not there when the buffer was set"
    );
}

/// What reading other users' `/proc/PID` links needs, measured (the reason the daemon keeps
/// neither CAP_SYS_PTRACE nor CAP_DAC_READ_SEARCH, and loses these look-ups for other users'
/// processes): `comm` nothing; `exe` CAP_SYS_PTRACE; `fd/N` CAP_SYS_PTRACE and
/// CAP_DAC_READ_SEARCH. Touches no audit state.
#[test]
fn proc_links_of_other_users_need_ptrace() {
    if skip_root_tier("proc_links_of_other_users_need_ptrace", "needs root") {
        return;
    }
    // A process of `nobody` with fd 3 open on /tmp.
    let mut target = Command::new("runuser")
        .args([
            "-u",
            "nobody",
            "--",
            "sh",
            "-c",
            "exec 3</tmp; exec sleep 60",
        ])
        .spawn()
        .unwrap();
    let pid = target.id();
    // runuser forks: find the sleep whose parent is runuser.
    let end = Instant::now() + Duration::from_secs(5);
    let mut sleeper = None;
    while sleeper.is_none() && Instant::now() < end {
        let out = Command::new("pgrep")
            .args(["-P", &pid.to_string(), "-x", "sleep"])
            .output()
            .unwrap();
        sleeper = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<u32>()
            .ok();
        std::thread::sleep(Duration::from_millis(20));
    }
    let sleeper = sleeper.expect("the target process");
    let probe = |caps: &str| -> String {
        let script = format!(
            "for f in comm exe fd/3; do if [ $f = comm ]; then cat /proc/{sleeper}/$f >/dev/null \
             2>&1; else readlink /proc/{sleeper}/$f >/dev/null 2>&1; fi && printf '%s ' $f; done"
        );
        let out = Command::new("setpriv")
            .args(["--reuid=daemon", "--regid=daemon", "--clear-groups"])
            .arg(format!("--inh-caps=-all{caps}"))
            .arg(format!("--ambient-caps=-all{caps}"))
            .args(["sh", "-c", &script])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let results = [
        ("", probe("")),
        ("audit", probe(",+audit_read,+audit_control")),
        ("ptrace", probe(",+sys_ptrace")),
        ("dac_read_search", probe(",+dac_read_search")),
        (
            "ptrace+dac_read_search",
            probe(",+sys_ptrace,+dac_read_search"),
        ),
    ];
    let _ = target.kill();
    let _ = Command::new("kill").arg(sleeper.to_string()).status();
    let _ = target.wait();
    eprintln!("readable /proc/{sleeper} entries of another user, by capabilities: {results:?}");
    assert_eq!(results[0].1, "comm");
    assert_eq!(results[1].1, "comm");
    assert_eq!(results[2].1, "comm exe");
    assert_eq!(results[3].1, "comm");
    assert_eq!(results[4].1, "comm exe fd/3");
}

// ---- the control socket and the multicast group, without the daemon -------------------
// (moved from `kernel_tests` in src/netlink.rs and src/kernel_rules.rs)

/// Takes `LOCK` (kernel audit state is global), also after a test panicked holding it.
fn kernel_lock() -> MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// `Some(control)` when kernel tests can run; prints why not otherwise.
fn kernel_control(test: &str) -> Option<wwatchd::netlink::Control> {
    if skip_root_tier(test, "needs root (CAP_AUDIT_CONTROL, CAP_AUDIT_READ)") {
        return None;
    }
    let mut ctl = match wwatchd::netlink::Control::open() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("skipping {test}: {e}");
            return None;
        }
    };
    match ctl.get_status() {
        Ok(s) if s.enabled == 2 => {
            eprintln!("skipping {test}: audit is locked (enabled 2)");
            None
        }
        Ok(_) => Some(ctl),
        Err(e) => {
            eprintln!("skipping {test}: {e}");
            None
        }
    }
}

/// Turns audit on for the test if it was off, and back off when dropped.
struct EnabledGuard {
    restore: bool,
}

impl EnabledGuard {
    fn new(ctl: &mut wwatchd::netlink::Control) -> EnabledGuard {
        let s = ctl.get_status().expect("status");
        if s.enabled == 0 {
            ctl.set_enabled(1).expect("enable audit");
            EnabledGuard { restore: true }
        } else {
            EnabledGuard { restore: false }
        }
    }
}

impl Drop for EnabledGuard {
    fn drop(&mut self) {
        if self.restore
            && let Ok(mut c) = wwatchd::netlink::Control::open()
        {
            let _ = c.set_enabled(0);
        }
    }
}

/// The control socket and the wire codec against the real kernel (were `kernel_tests` in
/// src/netlink.rs): each test cleans up its own rules by key.
mod netlink {
    use super::{auditctl, kernel_control, kernel_lock};
    use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_AUDIT};
    use nix::sys::socket::{NetlinkAddr, recvfrom, setsockopt, sockopt};
    use nix::sys::time::TimeVal;
    use std::os::fd::AsRawFd;
    use wwatchd::kernel_rules::{self as audit_rules, Arch, KernelRule};
    use wwatchd::netlink::*;

    /// The size of the daemon's control-socket receive buffer (`RECV_BUF` in src/netlink.rs).
    const RECV_BUF: usize = 64 * 1024;

    fn field(out: &str, name: &str) -> u32 {
        out.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in auditctl -s: {out}"))
    }

    #[test]
    fn status_matches_auditctl_s() {
        let _l = kernel_lock();
        let Some(mut ctl) = kernel_control("status_matches_auditctl_s") else {
            return;
        };
        let s = ctl.get_status().unwrap();
        let out = auditctl(&["-s"]);
        eprintln!("status {s:?}");
        assert_eq!(s.enabled, field(&out, "enabled"));
        assert_eq!(s.failure, field(&out, "failure"));
        assert_eq!(s.pid, field(&out, "pid"));
        assert_eq!(s.rate_limit, field(&out, "rate_limit"));
        assert_eq!(s.backlog_limit, field(&out, "backlog_limit"));
        assert_eq!(s.backlog_wait_time, field(&out, "backlog_wait_time"));
        if out.contains("backlog_wait_time_actual") {
            // Measured: 44 bytes on 6.18.
            assert_eq!(s.wire_len, 44);
            assert!(s.backlog_wait_time_actual.is_some());
        }
    }

    /// Deletes a rule when the test ends, passed or failed.
    struct DelOnDrop(RuleSpec);

    impl Drop for DelOnDrop {
        fn drop(&mut self) {
            if let Ok(mut c) = Control::open() {
                let _ = c.del_rule(&self.0);
            }
        }
    }

    fn test_rule(key: &str) -> KernelRule {
        KernelRule {
            arch: Arch::X86_64,
            syscalls: audit_rules::creation_syscalls(Arch::X86_64),
            dir: Some("/tmp".into()),
            path: None,
            perm: Some(AUDIT_PERM_WRITE),
            uid_ne: Some(0),
            success: Some(true),
            arg_mask: None,
            key: key.into(),
        }
    }

    #[test]
    fn add_twice_exists_delete_twice_missing() {
        let _l = kernel_lock();
        let Some(mut ctl) = kernel_control("add_twice_exists_delete_twice_missing") else {
            return;
        };
        let pid_before = ctl.get_status().unwrap().pid;
        let key = format!("wwatchd-test-{}-dup", std::process::id());
        let spec = test_rule(&key).to_spec().unwrap();
        assert_eq!(ctl.add_rule(&spec).unwrap(), AddOutcome::Added);
        let _cleanup = DelOnDrop(spec.clone());
        assert_eq!(ctl.add_rule(&spec).unwrap(), AddOutcome::Exists);
        let listed: Vec<ListedRule> = ctl
            .list_rules()
            .unwrap()
            .into_iter()
            .filter(|r| r.keys.iter().any(|k| k == key.as_bytes()))
            .collect();
        assert_eq!(listed.len(), 1);
        let l = listed[0].rule.as_ref().unwrap();
        assert_eq!(l.str_field(AUDIT_DIR), Some(&b"/tmp"[..]));
        assert_eq!(l.fields, spec.fields);
        // auditctl -l prints it exactly as to_auditctl does.
        let text = auditctl(&["-l", "-k", &key]);
        assert_eq!(text.trim(), test_rule(&key).to_auditctl());
        // Delete what we built (not the listed form) once, then it is gone.
        assert_eq!(ctl.del_rule(&spec).unwrap(), DelOutcome::Deleted);
        assert_eq!(ctl.del_rule(&spec).unwrap(), DelOutcome::Missing);
        assert_eq!(ctl.get_status().unwrap().pid, pid_before);
    }

    #[test]
    fn listed_exe_rule_with_two_keys() {
        let _l = kernel_lock();
        let Some(mut ctl) = kernel_control("listed_exe_rule_with_two_keys") else {
            return;
        };
        let key = format!("wwatchd-test-{}-exe", std::process::id());
        auditctl(&[
            "-a",
            "always,exit",
            "-F",
            "arch=b64",
            "-S",
            "openat",
            "-F",
            "exe=/usr/bin/true",
            "-F",
            "uid!=0",
            "-F",
            "success=1",
            "-k",
            &key,
            "-k",
            "second",
        ]);
        let found: Vec<ListedRule> = ctl
            .list_rules()
            .unwrap()
            .into_iter()
            .filter(|r| r.has_key_with_prefix(key.as_bytes()))
            .collect();
        let removed = audit_rules::remove_ours(&mut ctl, &key).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(removed, 1);
        let r = found[0].rule.as_ref().unwrap();
        eprintln!("listed exe rule: {:?}", r.fields);
        assert_eq!(r.str_field(AUDIT_EXE), Some(&b"/usr/bin/true"[..]));
        let uid = r.field(AUDIT_UID).unwrap();
        assert_eq!((uid.op, &uid.value), (AUDIT_NOT_EQUAL, &FieldValue::Num(0)));
        assert_eq!(
            found[0].keys,
            vec![key.as_bytes().to_vec(), b"second".to_vec()]
        );
        assert!(r.has_syscall(257));
        assert_eq!(r.encode().unwrap(), found[0].payload);
    }

    /// Measures the padding quirk: a listed rule whose strings make the payload length
    /// not a multiple of 4.
    #[test]
    fn list_reply_lengths() {
        let _l = kernel_lock();
        let Some(mut ctl) = kernel_control("list_reply_lengths") else {
            return;
        };
        let key = format!("wwatchd-test-{}-pad", std::process::id());
        let mut r = test_rule(&key);
        r.key.push('x'); // "/tmp" + key: an odd total
        let spec = r.to_spec().unwrap();
        assert_ne!(spec.encode().unwrap().len() % 4, 0);
        assert_eq!(ctl.add_rule(&spec).unwrap(), AddOutcome::Added);
        let _cleanup = DelOnDrop(spec.clone());

        let sock = Socket::new(NETLINK_AUDIT).unwrap();
        let mut msg = Vec::new();
        msg.extend_from_slice(&(NLMSG_HDRLEN as u32).to_ne_bytes());
        msg.extend_from_slice(&AUDIT_LIST_RULES.to_ne_bytes());
        msg.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        msg.extend_from_slice(&7u32.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        sock.send_to(&msg, &SocketAddr::new(0, 0), 0).unwrap();
        setsockopt(&sock, sockopt::ReceiveTimeout, &TimeVal::new(2, 0)).unwrap();
        let mut buf = vec![0u8; RECV_BUF];
        let mut ours = None;
        let mut order = Vec::new();
        loop {
            let (n, _) = recvfrom::<NetlinkAddr>(sock.as_raw_fd(), &mut buf).unwrap();
            let (len, t) = (ne_u32(&buf, 0) as usize, ne_u16(&buf, 4));
            order.push(t);
            if t == AUDIT_LIST_RULES
                && ListedRule::from_payload(&buf[16..len]).has_key_with_prefix(key.as_bytes())
            {
                ours = Some((len, n));
            }
            if t == NLMSG_DONE {
                break;
            }
        }
        let (len, n) = ours.expect("our rule listed");
        eprintln!(
            "nlmsg_len {len} in a {n}-byte datagram; reply order {:?}..{:?}",
            &order[..1],
            order.last()
        );
        assert_eq!(order[0], NLMSG_ERROR, "the ACK comes first");
        assert_eq!(n, nlmsg_align(len));
    }

    /// AUDIT_SET with the ENABLED mask only, re-asserting the current value (1) so that
    /// other users of this shared kernel see no change. Leaves the registered pid alone.
    #[test]
    fn set_enabled_keeps_auditd_pid() {
        let _l = kernel_lock();
        let Some(mut ctl) = kernel_control("set_enabled_keeps_auditd_pid") else {
            return;
        };
        let before = ctl.get_status().unwrap();
        if before.enabled != 1 {
            eprintln!("skipping set_enabled_keeps_auditd_pid: audit is not enabled (1)");
            return;
        }
        ctl.set_enabled(1).unwrap();
        let after = ctl.get_status().unwrap();
        assert_eq!((after.enabled, after.pid), (1, before.pid));
    }
}

/// Installing, finding and removing kernel audit rules, and the multicast reader, against
/// the real kernel (were `kernel_tests` in src/kernel_rules.rs): each test removes its rules
/// by key prefix, also when it fails.
mod kernel_rules {
    use super::{EnabledGuard, auditctl, kernel_control, kernel_lock};
    use std::path::Path;
    use std::time::{Duration, Instant};
    use wwatchd::kernel_rules::*;
    use wwatchd::netlink::{
        AUDIT_PERM_ATTR, AUDIT_PERM_WRITE, Control, MulticastReader, NetlinkError, RecvOutcome,
    };
    use wwatchd::record::Record;

    /// Removes the test's rules by key prefix on drop, so a failed assert cleans up too.
    struct Cleanup(String);

    impl Drop for Cleanup {
        fn drop(&mut self) {
            if let Ok(mut c) = Control::open() {
                let _ = remove_ours(&mut c, &self.0);
            }
        }
    }

    fn rule(key: &str, dir: &Path) -> KernelRule {
        KernelRule {
            arch: Arch::X86_64,
            syscalls: creation_syscalls(Arch::X86_64),
            dir: Some(dir.to_owned()),
            path: None,
            perm: Some(AUDIT_PERM_WRITE),
            uid_ne: None,
            success: Some(true),
            arg_mask: None,
            key: key.into(),
        }
    }

    #[test]
    fn multicast_sees_a_creation_event() {
        let _l = kernel_lock();
        let Some(mut ctl) = kernel_control("multicast_sees_a_creation_event") else {
            return;
        };
        let pid_before = ctl.get_status().unwrap().pid;
        let _on = EnabledGuard::new(&mut ctl);
        let key = format!("wwatchd-test-{}-mc", std::process::id());
        let _c = Cleanup(key.clone());
        // Not under /tmp: other rules there would match first and their key would be on
        // the record instead of ours.
        let dir = tempfile::tempdir_in("/run").unwrap();
        let (mut reader, warning) =
            MulticastReader::open(wwatchd::netlink::DEFAULT_RCVBUF).unwrap();
        eprintln!("rcvbuf {} warning {warning:?}", reader.rcvbuf());
        let report = install(&mut ctl, &[rule(&key, dir.path())]).unwrap();
        assert_eq!((report.added, report.failed.len()), (1, 0), "{report:?}");

        let name = format!("drop-{}.bin", std::process::id());
        std::fs::write(dir.path().join(&name), b"x").unwrap();

        let mut serial = None;
        let mut seen: Vec<(u16, u64, Vec<u8>)> = Vec::new();
        let mut listener = false;
        let deadline = Instant::now() + Duration::from_secs(10);
        let done = |seen: &[(u16, u64, Vec<u8>)], serial: Option<u64>| {
            serial.is_some_and(|s| seen.iter().any(|(t, ss, _)| *t == 1320 && *ss == s))
        };
        while Instant::now() < deadline && !done(&seen, serial) {
            let out = reader
                .recv(Some(Duration::from_millis(200)), &mut |t, text| {
                    let Ok(r) = Record::from_netlink(t, text) else {
                        return;
                    };
                    if t == 1335 {
                        listener = true;
                    }
                    if t == 1300 && contains(r.body, format!("key=\"{key}\"").as_bytes()) {
                        serial = Some(r.stamp.serial);
                    }
                    seen.push((t, r.stamp.serial, text.to_vec()));
                })
                .unwrap();
            assert_ne!(out, RecvOutcome::Enobufs, "lost records in a quiet test");
        }
        let serial = serial.expect("a SYSCALL record with our key");
        let ours: Vec<&(u16, u64, Vec<u8>)> = seen.iter().filter(|r| r.1 == serial).collect();
        for (t, _, text) in &ours {
            let mut line = Vec::new();
            wwatchd::netlink::format_log_line(*t, text, &mut line);
            eprint!("{}", String::from_utf8_lossy(&line));
        }
        eprintln!("EVENT_LISTENER seen after join: {listener}");
        let types: Vec<u16> = ours.iter().map(|r| r.0).collect();
        assert_eq!(types.first(), Some(&1300), "SYSCALL first: {types:?}");
        assert_eq!(types.last(), Some(&1320), "EOE last: {types:?}");
        assert!(
            ours.iter()
                .any(|(t, _, text)| *t == 1302 && contains(text, name.as_bytes())),
            "a PATH record naming the file"
        );
        assert!(remove_ours(&mut ctl, &key).unwrap() >= 1);
        assert_eq!(
            ctl.get_status().unwrap().pid,
            pid_before,
            "auditd displaced"
        );
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn remove_ours_leaves_foreign_rules_and_missing_notices() {
        let _l = kernel_lock();
        let Some(mut ctl) = kernel_control("remove_ours_leaves_foreign_rules") else {
            return;
        };
        let pid_before = ctl.get_status().unwrap().pid;
        let id = std::process::id();
        let key = format!("wwatchd-test-{id}-rm");
        let foreign_key = format!("other-test-{id}");
        let _c = Cleanup(key.clone());
        let _f = Cleanup(foreign_key.clone());
        let foreign_dir = tempfile::tempdir_in("/var/tmp").unwrap();
        let foreign = foreign_dir.path().to_str().unwrap();
        auditctl(&["-w", foreign, "-k", &foreign_key]);

        let ours_dir = tempfile::tempdir_in("/run").unwrap();
        let mut twin = rule(&key, ours_dir.path());
        twin.arch = Arch::I386;
        twin.syscalls = creation_syscalls(Arch::I386);
        let gone = ours_dir.path().join("does-not-exist");
        let rules = [rule(&key, ours_dir.path()), twin, rule(&key, &gone)];

        let report = install(&mut ctl, &rules).unwrap();
        assert_eq!(report.added, 2, "{report:?}");
        assert_eq!(report.failed.len(), 1);
        let msg = report.failed[0].to_string();
        eprintln!("reported: {msg}");
        assert!(
            msg.contains("does-not-exist") && msg.contains("does not exist"),
            "{msg}"
        );
        assert_eq!(
            report.failed[0].error,
            RuleError::Netlink(NetlinkError::Kernel {
                op: "add audit rule",
                errno: nix::errno::Errno::ENOENT,
            })
        );

        let again = install(&mut ctl, &rules[..2]).unwrap();
        assert_eq!((again.added, again.present), (0, 2));
        assert_eq!(missing(&mut ctl, &rules[..2]).unwrap().len(), 0);

        assert_eq!(remove_ours(&mut ctl, &key).unwrap(), 2);
        assert_eq!(missing(&mut ctl, &rules[..2]).unwrap().len(), 2);
        let listed = auditctl(&["-l"]);
        assert!(
            listed.contains(&foreign_key),
            "foreign rule survived: {listed}"
        );
        assert!(!listed.contains(&key));
        auditctl(&["-W", foreign, "-k", &foreign_key]);
        assert!(!auditctl(&["-l"]).contains(&foreign_key));
        assert_eq!(
            ctl.get_status().unwrap().pid,
            pid_before,
            "auditd displaced"
        );
    }

    #[test]
    fn auditctl_r_takes_our_text_verbatim() {
        let _l = kernel_lock();
        let Some(mut ctl) = kernel_control("auditctl_r_takes_our_text_verbatim") else {
            return;
        };
        let key = format!("wwatchd-test-{}-text", std::process::id());
        let _c = Cleanup(key.clone());
        let dir = tempfile::tempdir_in("/run").unwrap();
        let mut b32 = rule(&key, dir.path());
        b32.arch = Arch::I386;
        b32.syscalls = creation_syscalls(Arch::I386);
        b32.uid_ne = Some(0);
        b32.perm = Some(AUDIT_PERM_WRITE | AUDIT_PERM_ATTR);
        let mut watch = rule(&key, dir.path());
        watch.dir = None;
        watch.path = Some(dir.path().to_owned());
        let rules = [rule(&key, dir.path()), b32, watch];
        let text: String = rules.iter().map(|r| r.to_auditctl() + "\n").collect();
        let file = dir.path().join("rules");
        std::fs::write(&file, &text).unwrap();
        auditctl(&["-R", file.to_str().unwrap()]);
        // auditctl -l prints them back exactly, and we recognise all three as present.
        assert_eq!(auditctl(&["-l", "-k", &key]), text);
        assert!(missing(&mut ctl, &rules).unwrap().is_empty());
        assert_eq!(install(&mut ctl, &rules).unwrap().present, 3);
        assert_eq!(remove_ours(&mut ctl, &key).unwrap(), 3);
    }

    /// A tiny receive buffer and a burst nobody reads: the loss shows up as ENOBUFS,
    /// and the reader keeps working afterwards.
    #[test]
    fn overflow_is_reported_as_enobufs() {
        let _l = kernel_lock();
        let Some(mut ctl) = kernel_control("overflow_is_reported_as_enobufs") else {
            return;
        };
        let _on = EnabledGuard::new(&mut ctl);
        let key = format!("wwatchd-test-{}-nobufs", std::process::id());
        let _c = Cleanup(key.clone());
        let dir = tempfile::tempdir_in("/run").unwrap();
        let (mut reader, _) = MulticastReader::open(4096).unwrap();
        install(&mut ctl, &[rule(&key, dir.path())]).unwrap();
        for i in 0..200 {
            std::fs::write(dir.path().join(format!("f{i}")), b"").unwrap();
        }
        // Nobody reads until kauditd has handed every record over: on a loaded machine it
        // may still be sending when reading begins, and a reader that keeps up with it sees
        // no overflow (seen once, with the other core busy).
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while ctl.get_status().is_ok_and(|s| s.backlog > 0) && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(200));
        let mut outcomes = Vec::new();
        let mut n = 0;
        while let Ok(o) = reader.recv(Some(Duration::from_millis(100)), &mut |_, _| n += 1) {
            outcomes.push(o);
            if o == RecvOutcome::Timeout || outcomes.len() > 10_000 {
                break;
            }
        }
        eprintln!(
            "rcvbuf {}: {} messages, stats {:?}",
            reader.rcvbuf(),
            n,
            reader.stats()
        );
        assert!(outcomes.contains(&RecvOutcome::Enobufs), "{outcomes:?}");
        assert!(reader.stats().enobufs >= 1);
        assert!(n > 0, "reading goes on after ENOBUFS");
    }
}

/// Loads one `rules print` output with `auditctl -R`, checks the kernel lists exactly its
/// rules, and deletes them again by key. Returns the number of rules.
fn load_printed_rules(args: &[&str], tmp: &Path) -> Result<usize, String> {
    let out = Command::new(BIN)
        .args(["rules", "print"])
        .args(args)
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8(out.stdout).unwrap();
    std::fs::write(tmp, &text).unwrap();
    let mut want: Vec<&str> = text.lines().filter(|l| l.starts_with("-a ")).collect();
    let loaded = Command::new("auditctl")
        .arg("-R")
        .arg(tmp)
        .output()
        .unwrap();
    let mut got = our_rules();
    for k in got
        .iter()
        .filter_map(|l| l.rsplit_once("-F key=").map(|(_, k)| k.trim().to_owned()))
    {
        auditctl(&["-D", "-k", &k]);
    }
    assert!(
        loaded.status.success(),
        "auditctl -R of `rules print {args:?}`: {}\n{text}",
        String::from_utf8_lossy(&loaded.stderr)
    );
    want.sort_unstable();
    got.sort_unstable();
    assert_eq!(
        got, want,
        "auditctl -l after auditctl -R of `rules print {args:?}`"
    );
    assert!(our_rules().is_empty(), "left: {:?}", our_rules());
    Ok(want.len())
}

/// `rules print --rule F` of every rule F of tests/elastic-rules/SUB, with the shipped
/// configuration, loaded with `auditctl -R` (and removed); a rule that does not derive must
/// be refused with its file and `--watch-dir`, as never matching, or with one of `also`.
/// Returns (loaded, refused).
fn load_printed_corpus(sub: &str, tmp: &Path, also: &[&str]) -> (usize, usize) {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/etc/wwatchd.toml");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/elastic-rules")
        .join(sub);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let (mut ok, mut refused) = (0, 0);
    for f in &files {
        let fs = f.to_str().unwrap();
        match load_printed_rules(&["--config", shipped, "--rule", fs], tmp) {
            Ok(n) => {
                eprintln!("{}: {n} kernel rules load", f.display());
                ok += 1;
            }
            Err(msg) => {
                assert!(
                    (msg.contains(&format!("{fs}:")) && msg.contains("--watch-dir"))
                        || msg.contains("can never match")
                        || also.iter().any(|a| msg.contains(a)),
                    "{msg}"
                );
                eprintln!("{}: refused: {}", f.display(), msg.trim());
                refused += 1;
            }
        }
    }
    let _ = std::fs::remove_file(tmp);
    eprintln!("{sub}: {ok} load, {refused} refused");
    assert_eq!(ok + refused, files.len());
    (ok, refused)
}

/// Issue 11: `rules print` of the shipped configuration and of every Elastic rule of
/// tests/elastic-rules/eql that derives on this machine loads with `auditctl -R`; the
/// others are refused with their file, line and `--watch-dir`.
#[test]
fn printed_rules_of_every_shipped_and_elastic_rule_load_with_auditctl() {
    let _l = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let Some(_state) = AuditState::take("printed_rules_of_every_shipped_and_elastic_rule_load")
    else {
        return;
    };
    let tmp = std::env::temp_dir().join(format!("wwatchd-print-{}.rules", std::process::id()));
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/etc/wwatchd.toml");
    let n = load_printed_rules(&["--config", shipped], &tmp).unwrap();
    assert!(n >= 8, "shipped config: {n} rules");
    let (ok, refused) = load_printed_corpus("eql", &tmp, &[]);
    assert_eq!(ok + refused, 57);
    assert!(ok >= 30, "only {ok} Elastic rules derive here");
}

/// Issue 11: `rules print` of every KQL rule of tests/elastic-rules/kuery that derives on
/// this machine loads with `auditctl -R`; the others are refused with their file, line and
/// reason (`new_terms` rules derive like `query` rules).
#[test]
fn printed_rules_of_every_elastic_kuery_rule_load_with_auditctl() {
    let _l = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let Some(_state) = AuditState::take("printed_rules_of_every_elastic_kuery_rule_load") else {
        return;
    };
    let tmp = std::env::temp_dir().join(format!("wwatchd-kql-{}.rules", std::process::id()));
    let (ok, refused) =
        load_printed_corpus("kuery", &tmp, &["unknown field `data_stream.dataset`"]);
    assert_eq!(ok + refused, 14);
    assert!(ok >= 6, "only {ok} Elastic KQL rules derive here");
}

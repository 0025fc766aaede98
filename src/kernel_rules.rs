//! kernel_rules: keeping wwatchd's kernel audit rules loaded, through the control socket.
//!
//! `kernel_rule (derive, pure, in the core) ──► [kernel_rules] install / remove / missing ──► Control`
//!
//! The derivation and the wire format live in `wwatchd_core::kernel_rule`; this file holds
//! the three operations that talk to the kernel, and [`RealFs`], the file-system view the
//! derivation gets from the real machine.

#![forbid(unsafe_code)]

use std::fmt;
use std::path::{Path, PathBuf};

#[cfg(test)]
use wwatchd_core::kernel_rule::wire::uapi::*;
pub use wwatchd_core::kernel_rule::*;

use crate::netlink::{AddOutcome, Control, DelOutcome, NetlinkError};

/// Why installing or removing rules failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuleError {
    /// A rule that cannot be encoded.
    Invalid(KernelRuleError),
    /// A request failed in a way that stops the whole operation.
    Netlink(NetlinkError),
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleError::Invalid(e) => e.fmt(f),
            RuleError::Netlink(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for RuleError {}

impl From<NetlinkError> for RuleError {
    fn from(e: NetlinkError) -> Self {
        RuleError::Netlink(e)
    }
}

impl From<KernelRuleError> for RuleError {
    fn from(e: KernelRuleError) -> Self {
        RuleError::Invalid(e)
    }
}

/// A rule the kernel would not take; the others were still installed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleFailure {
    /// The rule as auditctl text.
    pub rule: String,
    /// Its dir or path, for "does not exist" reports.
    pub path: Option<PathBuf>,
    pub error: RuleError,
}

impl fmt::Display for RuleFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.path, &self.error) {
            (Some(p), RuleError::Netlink(e)) if e.errno() == Some(nix::errno::Errno::ENOENT) => {
                write!(
                    f,
                    "{} does not exist; rule `{}` not loaded",
                    p.display(),
                    self.rule
                )
            }
            _ => write!(f, "rule `{}` not loaded: {}", self.rule, self.error),
        }
    }
}

/// What [`install`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InstallReport {
    pub added: usize,
    /// Already loaded (EEXIST).
    pub present: usize,
    pub failed: Vec<RuleFailure>,
}

/// Errors that stop the whole operation rather than one rule: no permission, socket
/// failures, audit locked.
fn is_fatal(e: &NetlinkError) -> bool {
    use nix::errno::Errno;
    match e {
        NetlinkError::Kernel { errno, .. } => matches!(errno, Errno::EPERM | Errno::EACCES),
        _ => true,
    }
}

/// Adds each rule; EEXIST counts as present. A rule the kernel refuses (ENOENT for a
/// missing directory, EINVAL) is reported in [`InstallReport::failed`] and the rest go on.
pub fn install(ctl: &mut Control, rules: &[KernelRule]) -> Result<InstallReport, RuleError> {
    let mut report = InstallReport::default();
    for rule in rules {
        let fail = |error| RuleFailure {
            rule: rule.to_auditctl(),
            path: rule.dir.clone().or_else(|| rule.path.clone()),
            error,
        };
        let spec = match rule.to_spec() {
            Ok(s) => s,
            Err(e) => {
                report.failed.push(fail(RuleError::Invalid(e)));
                continue;
            }
        };
        match ctl.add_rule(&spec) {
            Ok(AddOutcome::Added) => report.added += 1,
            Ok(AddOutcome::Exists) => report.present += 1,
            Err(e) if is_fatal(&e) => return Err(e.into()),
            Err(e) => report.failed.push(fail(RuleError::Netlink(e))),
        }
    }
    Ok(report)
}

/// Deletes every loaded rule with a key starting with `key_prefix`, each sent back
/// exactly as listed. Returns how many were deleted. Rules that vanished meanwhile
/// (ENOENT) are not counted and not errors.
pub fn remove_ours(ctl: &mut Control, key_prefix: &str) -> Result<usize, RuleError> {
    if key_prefix.is_empty() {
        // An empty prefix would match every keyed rule, the admin's included.
        return Err(RuleError::Invalid(KernelRuleError {
            rule: String::new(),
            why: "refusing to remove rules by an empty key prefix".into(),
        }));
    }
    let mut removed = 0;
    for listed in ctl.list_rules()? {
        if listed.has_key_with_prefix(key_prefix.as_bytes())
            && ctl.del_listed(&listed)? == DelOutcome::Deleted
        {
            removed += 1;
        }
    }
    Ok(removed)
}

/// Lists the loaded rules and returns those of `rules` that are not loaded (recognised by
/// key, arch and dir/path), e.g. after an auditd reload ran `-D`.
pub fn missing<'a>(
    ctl: &mut Control,
    rules: &'a [KernelRule],
) -> Result<Vec<&'a KernelRule>, RuleError> {
    let listed = ctl.list_rules()?;
    Ok(missing_from(&listed, rules))
}

/// The real file system, for the daemon and `rules install`.
pub struct RealFs;

impl WatchFs for RealFs {
    fn is_dir(&self, p: &Path) -> bool {
        p.is_dir()
    }

    fn subdirs_starting_with(&self, dir: &Path, prefix: &str) -> Vec<String> {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut v: Vec<String> = rd
            .filter_map(Result::ok)
            // file_type() does not follow symlinks: a symlinked "directory" is not watched
            // through its link (the kernel would resolve it to somewhere else).
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.starts_with(prefix) && n != "." && n != "..")
            .collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod kernel_tests {
    use super::*;
    use crate::netlink::test_support::*;
    use crate::netlink::{MulticastReader, RecvOutcome};
    use crate::record::Record;
    use std::time::{Duration, Instant};

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
        let (mut reader, warning) = MulticastReader::open(crate::netlink::DEFAULT_RCVBUF).unwrap();
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
            crate::netlink::format_log_line(*t, text, &mut line);
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

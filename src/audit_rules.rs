//! audit_rules: the kernel audit rules wwatchd needs, and keeping them loaded.
//!
//! `netlink → record → event → rule → alert → syslog`, with `[audit_rules]` beside
//! `netlink`: it turns watched directories into kernel rules and installs, reconciles and
//! removes them through [`Control`]. Everything but the three `Control`-taking functions
//! is pure.
//!
//! We recognise our rules by key (and dir/path and arch), never by comparing what we sent
//! with what is listed: the kernel rewrites the syscall mask (see [`RawRule::payload`]).

#![forbid(unsafe_code)]

use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::netlink::uapi::*;
use crate::netlink::{
    AddOutcome, Control, DelOutcome, FieldValue, NetlinkError, RawRule, RuleField, RuleSpec,
};

/// The syscall ABI a rule applies to. On x86_64 an i386 process needs its own rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Arch {
    /// x86_64 (`arch=b64`, AUDIT_ARCH_X86_64).
    B64,
    /// i386 on x86_64 (`arch=b32`, AUDIT_ARCH_I386).
    B32,
}

impl Arch {
    pub fn audit_arch(self) -> u32 {
        match self {
            Arch::B64 => AUDIT_ARCH_X86_64,
            Arch::B32 => AUDIT_ARCH_I386,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Arch::B64 => "b64",
            Arch::B32 => "b32",
        }
    }
}

/// The syscalls that create a name in a directory: (name, x86_64 number, i386 number).
/// From arch/x86/entry/syscalls/syscall_64.tbl and syscall_32.tbl. Note x86_64's 83 is
/// mkdir while i386's 83 is symlink.
pub const CREATION_SYSCALLS: [(&str, u32, u32); 12] = [
    ("open", 2, 5),
    ("creat", 85, 8),
    ("mkdir", 83, 39),
    ("mknod", 133, 14),
    ("link", 86, 9),
    ("symlink", 88, 83),
    ("openat", 257, 295),
    ("mkdirat", 258, 296),
    ("mknodat", 259, 297),
    ("linkat", 265, 303),
    ("symlinkat", 266, 304),
    ("openat2", 437, 437),
];

/// The creation syscall numbers for `arch`, in ascending order.
pub fn creation_syscalls(arch: Arch) -> Vec<u32> {
    let mut v: Vec<u32> = CREATION_SYSCALLS
        .iter()
        .map(|&(_, b64, b32)| if arch == Arch::B64 { b64 } else { b32 })
        .collect();
    v.sort_unstable();
    v
}

/// The name of a creation syscall, as auditctl prints it.
pub fn syscall_name(arch: Arch, nr: u32) -> Option<&'static str> {
    CREATION_SYSCALLS
        .iter()
        .find(|&&(_, b64, b32)| nr == if arch == Arch::B64 { b64 } else { b32 })
        .map(|&(name, _, _)| name)
}

/// One `always,exit` rule as wwatchd wants it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRule {
    pub arch: Arch,
    /// Syscall numbers for `arch`; empty means all syscalls.
    pub syscalls: Vec<u32>,
    /// AUDIT_DIR: the whole subtree (auditctl's `-w` on a directory).
    pub dir: Option<PathBuf>,
    /// AUDIT_WATCH: the inode itself (for a directory: its direct children's names).
    pub path: Option<PathBuf>,
    /// AUDIT_PERM bits: r=4 w=2 x=1 a=8 (`AUDIT_PERM_*`).
    pub perm: Option<u32>,
    /// `uid!=N`.
    pub uid_ne: Option<u32>,
    /// `success=1` / `success=0`.
    pub success: Option<bool>,
    pub key: String,
}

/// Why an [`AuditRule`] cannot become a kernel rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuleError {
    /// The rule as auditctl text, and what is wrong with it.
    Invalid { rule: String, why: String },
    /// A request failed in a way that stops the whole operation.
    Netlink(NetlinkError),
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleError::Invalid { rule, why } => write!(f, "audit rule `{rule}`: {why}"),
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

fn perm_text(perm: u32) -> String {
    // auditctl's order.
    [
        (AUDIT_PERM_READ, 'r'),
        (AUDIT_PERM_WRITE, 'w'),
        (AUDIT_PERM_EXEC, 'x'),
        (AUDIT_PERM_ATTR, 'a'),
    ]
    .iter()
    .filter(|(bit, _)| perm & bit != 0)
    .map(|&(_, c)| c)
    .collect()
}

impl AuditRule {
    /// The rule as `auditctl -R` takes it and, for our rules, exactly as `auditctl -l`
    /// prints it (checked on 6.18 with auditctl 3.0.9): syscalls by name in number
    /// order, fields in the order they are sent, the key as `-F key=`.
    pub fn to_auditctl(&self) -> String {
        let mut s = format!("-a always,exit -F arch={}", self.arch.name());
        if !self.syscalls.is_empty() {
            let mut nrs = self.syscalls.clone();
            nrs.sort_unstable();
            nrs.dedup();
            let names: Vec<String> = nrs
                .iter()
                .map(|&nr| {
                    syscall_name(self.arch, nr).map_or_else(|| nr.to_string(), str::to_owned)
                })
                .collect();
            s.push_str(" -S ");
            s.push_str(&names.join(","));
        }
        if let Some(d) = &self.dir {
            s.push_str(&format!(" -F dir={}", d.display()));
        }
        if let Some(p) = &self.path {
            s.push_str(&format!(" -F path={}", p.display()));
        }
        if let Some(p) = self.perm {
            s.push_str(&format!(" -F perm={}", perm_text(p)));
        }
        if let Some(ok) = self.success {
            s.push_str(&format!(" -F success={}", u8::from(ok)));
        }
        if let Some(uid) = self.uid_ne {
            s.push_str(&format!(" -F uid!={uid}"));
        }
        s.push_str(&format!(" -F key={}", self.key));
        s
    }

    fn invalid(&self, why: impl Into<String>) -> RuleError {
        RuleError::Invalid {
            rule: self.to_auditctl(),
            why: why.into(),
        }
    }

    fn check_path(&self, what: &str, p: &Path) -> Result<(), RuleError> {
        let b = p.as_os_str().as_bytes();
        if !p.is_absolute() {
            return Err(self.invalid(format!("{what} must be an absolute path")));
        }
        // audit_to_watch() in kernel/audit_watch.c refuses a trailing '/'.
        if b.len() > 1 && b.ends_with(b"/") {
            return Err(self.invalid(format!("{what} must not end with '/'")));
        }
        if b.iter()
            .any(|c| c.is_ascii_whitespace() || c.is_ascii_control())
        {
            return Err(self.invalid(format!(
                "{what} has whitespace or control bytes, which auditctl rule files cannot carry"
            )));
        }
        Ok(())
    }

    /// Checks the rule and builds the kernel form, fields in `to_auditctl` order (the
    /// kernel compares rules field by field, so order matters for EEXIST and DEL).
    pub fn to_spec(&self) -> Result<RuleSpec, RuleError> {
        if self.key.is_empty() {
            return Err(self.invalid("key is empty; wwatchd recognises its rules by key"));
        }
        if self.key.len() > AUDIT_MAX_KEY_LEN {
            return Err(self.invalid(format!(
                "key is {} bytes, over AUDIT_MAX_KEY_LEN ({AUDIT_MAX_KEY_LEN})",
                self.key.len()
            )));
        }
        if self
            .key
            .bytes()
            .any(|c| c.is_ascii_whitespace() || c.is_ascii_control())
        {
            return Err(self.invalid("key has whitespace or control bytes"));
        }
        if self.dir.is_some() && self.path.is_some() {
            // audit_make_tree() refuses a rule that already has a watch.
            return Err(self.invalid("a rule takes dir= or path=, not both"));
        }
        if let Some(d) = &self.dir {
            self.check_path("dir", d)?;
        }
        if let Some(p) = &self.path {
            self.check_path("path", p)?;
        }
        if let Some(p) = self.perm
            && (p == 0 || p & !0xf != 0)
        {
            return Err(self.invalid(format!("perm {p:#x} is not a set of r, w, x, a")));
        }
        let mut spec = RuleSpec::exit_always();
        if self.syscalls.is_empty() {
            spec.mask = [u32::MAX; AUDIT_BITMASK_SIZE];
        }
        for &nr in &self.syscalls {
            if nr as usize >= AUDIT_BITMASK_SIZE * 32 {
                return Err(self.invalid(format!("syscall {nr} is out of range")));
            }
            spec.set_syscall(nr);
        }
        let eq = |field, value| RuleField {
            field,
            op: AUDIT_EQUAL,
            value,
        };
        let path_bytes = |p: &PathBuf| FieldValue::Str(p.as_os_str().as_bytes().to_vec());
        spec.fields
            .push(eq(AUDIT_ARCH, FieldValue::Num(self.arch.audit_arch())));
        if let Some(d) = &self.dir {
            spec.fields.push(eq(AUDIT_DIR, path_bytes(d)));
        }
        if let Some(p) = &self.path {
            spec.fields.push(eq(AUDIT_WATCH, path_bytes(p)));
        }
        if let Some(p) = self.perm {
            spec.fields.push(eq(AUDIT_PERM, FieldValue::Num(p)));
        }
        if let Some(ok) = self.success {
            spec.fields
                .push(eq(AUDIT_SUCCESS, FieldValue::Num(u32::from(ok))));
        }
        if let Some(uid) = self.uid_ne {
            spec.fields.push(RuleField {
                field: AUDIT_UID,
                op: AUDIT_NOT_EQUAL,
                value: FieldValue::Num(uid),
            });
        }
        spec.fields.push(eq(
            AUDIT_FILTERKEY,
            FieldValue::Str(self.key.as_bytes().to_vec()),
        ));
        Ok(spec)
    }

    /// Whether a listed rule is this one: same key among its keys, same arch, same
    /// dir and path.
    pub fn matches_listed(&self, listed: &RawRule) -> bool {
        if !listed.keys.iter().any(|k| k == self.key.as_bytes()) {
            return false;
        }
        let Ok(r) = &listed.rule else {
            return false;
        };
        let arch = r.field(AUDIT_ARCH).map(|f| &f.value);
        fn as_bytes(p: &Option<PathBuf>) -> Option<&[u8]> {
            p.as_ref().map(|p| p.as_os_str().as_bytes())
        }
        arch == Some(&FieldValue::Num(self.arch.audit_arch()))
            && r.str_field(AUDIT_DIR) == as_bytes(&self.dir)
            && r.str_field(AUDIT_WATCH) == as_bytes(&self.path)
    }
}

/// The rules in `rules` that none of `listed` matches (pure; see [`missing`]).
pub fn missing_from<'a>(listed: &[RawRule], rules: &'a [AuditRule]) -> Vec<&'a AuditRule> {
    rules
        .iter()
        .filter(|r| !listed.iter().any(|l| r.matches_listed(l)))
        .collect()
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
pub fn install(ctl: &mut Control, rules: &[AuditRule]) -> Result<InstallReport, RuleError> {
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
                report.failed.push(fail(e));
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
        return Err(RuleError::Invalid {
            rule: String::new(),
            why: "refusing to remove rules by an empty key prefix".into(),
        });
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
    rules: &'a [AuditRule],
) -> Result<Vec<&'a AuditRule>, RuleError> {
    let listed = ctl.list_rules()?;
    Ok(missing_from(&listed, rules))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp_rule(arch: Arch) -> AuditRule {
        AuditRule {
            arch,
            syscalls: creation_syscalls(arch),
            dir: Some("/tmp".into()),
            path: None,
            perm: Some(AUDIT_PERM_WRITE),
            uid_ne: Some(0),
            success: Some(true),
            key: "wwatchd-tmp".into(),
        }
    }

    #[test]
    fn auditctl_text_matches_auditctl_l() {
        // What `auditctl -l` printed on 6.18 / auditctl 3.0.9 for the same rules.
        assert_eq!(
            tmp_rule(Arch::B64).to_auditctl(),
            "-a always,exit -F arch=b64 -S open,mkdir,creat,link,symlink,mknod,openat,mkdirat,\
             mknodat,linkat,symlinkat,openat2 -F dir=/tmp -F perm=w -F success=1 -F uid!=0 \
             -F key=wwatchd-tmp"
        );
        let mut r = tmp_rule(Arch::B32);
        r.dir = None;
        r.path = Some("/tmp/x".into());
        r.perm = Some(AUDIT_PERM_WRITE | AUDIT_PERM_ATTR);
        r.success = None;
        r.uid_ne = None;
        assert_eq!(
            r.to_auditctl(),
            "-a always,exit -F arch=b32 -S open,creat,link,mknod,mkdir,symlink,openat,mkdirat,\
             mknodat,linkat,symlinkat,openat2 -F path=/tmp/x -F perm=wa -F key=wwatchd-tmp"
        );
    }

    #[test]
    fn syscall_tables() {
        assert_eq!(syscall_name(Arch::B64, 83), Some("mkdir"));
        assert_eq!(syscall_name(Arch::B32, 83), Some("symlink"));
        assert_eq!(syscall_name(Arch::B32, 437), Some("openat2"));
        assert_eq!(creation_syscalls(Arch::B32).len(), 12);
    }

    #[test]
    fn spec_fields_in_text_order() {
        let spec = tmp_rule(Arch::B64).to_spec().unwrap();
        let order: Vec<u32> = spec.fields.iter().map(|f| f.field).collect();
        assert_eq!(
            order,
            [
                AUDIT_ARCH,
                AUDIT_DIR,
                AUDIT_PERM,
                AUDIT_SUCCESS,
                AUDIT_UID,
                AUDIT_FILTERKEY
            ]
        );
        assert_eq!(spec.fields[4].op, AUDIT_NOT_EQUAL);
        for nr in creation_syscalls(Arch::B64) {
            assert!(spec.has_syscall(nr));
        }
        assert!(!spec.has_syscall(0));
        let back = RuleSpec::decode(&spec.encode().unwrap()).unwrap();
        assert_eq!(back, spec);
    }

    #[test]
    fn invalid_rules() {
        let mut r = tmp_rule(Arch::B64);
        r.dir = Some("tmp".into());
        assert!(r.to_spec().is_err());
        r.dir = Some("/tmp/".into());
        assert!(r.to_spec().is_err());
        r.dir = Some("/tmp".into());
        r.key = "x".repeat(257);
        assert!(r.to_spec().is_err());
        r.key = "a b".into();
        assert!(r.to_spec().is_err());
        r.key = "k".into();
        r.path = Some("/var/tmp".into());
        let e = r.to_spec().unwrap_err();
        assert!(e.to_string().contains("not both"), "{e}");
    }

    #[test]
    fn missing_recognises_by_key_arch_and_dir() {
        let rules = [tmp_rule(Arch::B64), tmp_rule(Arch::B32)];
        // What the kernel lists differs from what was sent (mask); only key/arch/dir count.
        let mut listed_spec = rules[0].to_spec().unwrap();
        listed_spec.mask[0] = 0;
        let listed = vec![RawRule::from_payload(&listed_spec.encode().unwrap())];
        let miss = missing_from(&listed, &rules);
        assert_eq!(miss, vec![&rules[1]]);

        let mut other_dir = rules[0].clone();
        other_dir.dir = Some("/var/tmp".into());
        let listed = vec![RawRule::from_payload(
            &other_dir.to_spec().unwrap().encode().unwrap(),
        )];
        assert_eq!(missing_from(&listed, &rules).len(), 2);
    }
}

/// Real-kernel tests: root only (they skip with a message otherwise), serialised by
/// `kernel_lock`, each removing its own rules by key even when it fails.
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

    fn rule(key: &str, dir: &Path) -> AuditRule {
        AuditRule {
            arch: Arch::B64,
            syscalls: creation_syscalls(Arch::B64),
            dir: Some(dir.to_owned()),
            path: None,
            perm: Some(AUDIT_PERM_WRITE),
            uid_ne: None,
            success: Some(true),
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
        twin.arch = Arch::B32;
        twin.syscalls = creation_syscalls(Arch::B32);
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
        b32.arch = Arch::B32;
        b32.syscalls = creation_syscalls(Arch::B32);
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

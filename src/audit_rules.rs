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

// ---------------------------------------------------------------------------------------
// Detection rules → kernel rules (pure; the caller does the listing I/O)
// ---------------------------------------------------------------------------------------

/// Every kernel rule the daemon loads has a key with this prefix, and the daemon removes
/// only rules with it. Not `wwatchd-`: the capture tool's `wwatchd-capture` rules share that.
pub const DAEMON_KEY_PREFIX: &str = "wwatchd-d-";

/// What a kernel rule watches.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Watch {
    /// `dir=`: the whole subtree.
    Dir(PathBuf),
    /// `path=` on a directory: creations of its direct children only.
    Entries(PathBuf),
}

impl Watch {
    fn path(&self) -> &Path {
        match self {
            Watch::Dir(p) | Watch::Entries(p) => p,
        }
    }

    /// `/var/tmp` → `var-tmp`, `/` → `root`; `-entries` for a `path=` watch.
    fn slug(&self) -> String {
        let s = self.path().to_string_lossy();
        let s = s.trim_matches('/').replace('/', "-");
        let s = if s.is_empty() { "root".to_owned() } else { s };
        match self {
            Watch::Dir(_) => s,
            Watch::Entries(_) => format!("{s}-entries"),
        }
    }
}

/// The I/O [`derive()`] needs, done by the caller: is this path a directory, and which
/// hidden directories does a directory hold (for patterns like `"/home/.*"`).
pub trait WatchFs {
    fn is_dir(&self, p: &Path) -> bool;
    /// Names (not paths) of directories directly in `dir` whose names start with `prefix`.
    fn subdirs_starting_with(&self, dir: &Path, prefix: &str) -> Vec<String>;
    /// The directories whose mode is world-writable, for rules that test
    /// `wwatchd.parent.world_writable` (see [`crate::world_writable`]). None by default.
    fn world_writable_dirs(&self) -> Vec<PathBuf> {
        Vec::new()
    }
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

    fn world_writable_dirs(&self) -> Vec<PathBuf> {
        use std::sync::atomic::{AtomicBool, Ordering};
        static WARNED: AtomicBool = AtomicBool::new(false);
        let d = crate::world_writable::discover(crate::world_writable::Limits::default());
        if let Some(why) = &d.capped
            && !WARNED.swap(true, Ordering::Relaxed)
        {
            // Once per process; every capped search is counted in CAPPED_SEARCHES.
            eprintln!(
                "wwatchd: warning: the search for world-writable directories stopped: {why} \
                 ({} found, {} directories read)",
                d.dirs.len(),
                d.visited
            );
        }
        d.dirs
    }
}

/// Static answers: every path is a directory, no hidden directories, no world-writable
/// directories found by mode. For `rules print`,
/// whose output is committed and must not depend on the machine.
pub struct StaticFs;

impl WatchFs for StaticFs {
    fn is_dir(&self, _: &Path) -> bool {
        true
    }

    fn subdirs_starting_with(&self, _: &Path, _: &str) -> Vec<String> {
        Vec::new()
    }
}

/// A detection rule whose file conditions cannot become kernel audit rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeriveError {
    /// The rule's name.
    pub rule: String,
    /// The offending `file.path` pattern, if it is one pattern's fault.
    pub pattern: Option<String>,
    pub why: String,
}

impl fmt::Display for DeriveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rule \"{}\"", self.rule)?;
        if let Some(p) = &self.pattern {
            write!(f, ", file.path pattern \"{p}\"")?;
        }
        write!(
            f,
            ": {}; it cannot be pushed down into kernel audit rules; name watch directories \
             for it (--watch-dir DIR)",
            self.why
        )
    }
}

impl std::error::Error for DeriveError {}

/// What one detection rule needs from the kernel.
#[derive(Debug)]
struct RuleNeeds {
    watches: Vec<Watch>,
    /// `user.id != "0"` is a top-level conjunct.
    uid_ne_0: bool,
}

fn is_field(f: &crate::rule::ast::FieldRef, name: &str) -> bool {
    f.name == name && f.resolved.is_some()
}

/// The watches for one `file.path` pattern's literal prefix.
fn watches_for_prefix(prefix: &str, fs: &dyn WatchFs) -> Result<Vec<Watch>, String> {
    if !prefix.starts_with('/') {
        return Err("it has no literal absolute directory before its first wildcard".into());
    }
    let Some(slash) = prefix.rfind('/') else {
        unreachable!("starts with '/'");
    };
    let (dir, partial) = (&prefix[..slash], &prefix[slash + 1..]);
    let dir = if dir.is_empty() { "/" } else { dir };
    let broad = |d: &str| {
        if d == "/" {
            Err(
                "its only literal directory is /, which would audit every creation on the host"
                    .to_owned(),
            )
        } else {
            Ok(())
        }
    };
    if partial.is_empty() {
        // "/dev/shm/*": the subtree of /dev/shm.
        broad(dir)?;
        return Ok(vec![Watch::Dir(dir.into())]);
    }
    if partial.starts_with('.') {
        // "/home/.*": names in /home starting with '.', and everything below the existing
        // ones. path=/home catches new ones; the daemon adds their dir= rules when it
        // re-derives (every reconcile).
        broad(dir)?;
        let mut v = vec![Watch::Entries(dir.into())];
        for name in fs.subdirs_starting_with(Path::new(dir), partial) {
            v.push(Watch::Dir(Path::new(dir).join(name)));
        }
        return Ok(v);
    }
    if fs.is_dir(Path::new(prefix)) {
        // "/tmp*": in practice the subtree of /tmp. (It also matches "/tmpfoo", a sibling
        // name in /, which is not world-writable.)
        return Ok(vec![Watch::Dir(prefix.into())]);
    }
    broad(dir)?;
    Ok(vec![Watch::Dir(dir.into())])
}

fn rule_needs(
    rule: &crate::rule::Rule,
    fs: &dyn WatchFs,
) -> Result<Option<RuleNeeds>, DeriveError> {
    use crate::rule::ast::{CmpOp, Expr, Literal};
    let err = |pattern: Option<&str>, why: String| DeriveError {
        rule: rule.meta.name.clone(),
        pattern: pattern.map(str::to_owned),
        why,
    };
    let mut watches: Option<Vec<Watch>> = None;
    let mut uid_ne_0 = false;
    for c in rule.query.ast().conjuncts() {
        // Several file.path conjuncts are ANDed: any one of them bounds the paths, so the
        // first one is enough (and the narrowest choice is not worth the complexity).
        let prefixes: Option<Vec<&str>> = match c {
            Expr::Like {
                field, patterns, ..
            } if is_field(field, "file.path") => {
                Some(patterns.iter().map(|p| p.literal_prefix()).collect())
            }
            Expr::In { field, values, .. } if is_field(field, "file.path") => Some(
                values
                    .iter()
                    .map(|v| match v {
                        Literal::Str(s) => s.as_str(),
                        _ => "",
                    })
                    .collect(),
            ),
            Expr::Cmp {
                field,
                op: CmpOp::Eq,
                value: Literal::Str(s),
            } if is_field(field, "file.path") => Some(vec![s.as_str()]),
            Expr::Cmp {
                field,
                op: CmpOp::Eq,
                value: Literal::Bool(true),
            } if is_field(field, "wwatchd.parent.world_writable") => {
                // No paths: the directories whose mode says so, found on the host. Each
                // is watched as a subtree; the PARENT's mode decides per event.
                if watches.is_none() {
                    watches = Some(
                        fs.world_writable_dirs()
                            .into_iter()
                            .map(Watch::Dir)
                            .collect(),
                    );
                }
                None
            }
            Expr::Not(inner) => {
                if let Expr::Cmp {
                    field,
                    op: CmpOp::Eq,
                    value,
                } = inner.as_ref()
                    && is_field(field, "user.id")
                    && (matches!(value, Literal::Str(s) if s == "0")
                        || matches!(value, Literal::Num(0)))
                {
                    uid_ne_0 = true;
                }
                None
            }
            _ => None,
        };
        if let (Some(prefixes), None) = (prefixes, &watches) {
            let mut w = Vec::new();
            for p in prefixes {
                match watches_for_prefix(p, fs) {
                    Ok(v) => w.extend(v),
                    Err(why) => return Err(err(Some(p_source(c, p)), why)),
                }
            }
            watches = Some(w);
        }
    }
    Ok(watches.map(|watches| RuleNeeds { watches, uid_ne_0 }))
}

/// The pattern as written for the message (the prefix is what we have; find its source).
fn p_source<'a>(c: &'a crate::rule::ast::Expr, prefix: &'a str) -> &'a str {
    if let crate::rule::ast::Expr::Like { patterns, .. } = c
        && let Some(p) = patterns.iter().find(|p| p.literal_prefix() == prefix)
    {
        return p.source();
    }
    prefix
}

/// Turns loaded detection rules into the kernel rules that feed them: for each watched
/// directory a b64 and a b32 `always,exit` rule on the creation syscalls, `success=1`, and
/// `uid!=0` when every rule using that directory requires `user.id != "0"`.
///
/// No `perm=w`: with a syscall list it is ANDed, and `open`/`openat`/`openat2` are then
/// judged by their access mode, so `open(O_CREAT|O_RDONLY)` creations would be dropped
/// (measured; see the kernel tests). The cost is that successful read-opens under the
/// watched directories are audited too; `file_event` discards them.
///
/// `extra_dirs` (`--watch-dir`) are watched for every rule, and let rules whose paths have
/// no literal directory run. Directories are deduplicated; a `dir=` inside another `dir=`
/// and a `path=` on a `dir=`-watched directory are dropped as covered.
pub fn derive(
    rules: &[crate::rule::Rule],
    extra_dirs: &[PathBuf],
    fs: &dyn WatchFs,
) -> Result<Vec<AuditRule>, DeriveError> {
    // (watch, uid_ne_0), merged: the uid filter stays only if every user of a watch has it.
    let mut merged: Vec<(Watch, bool)> = Vec::new();
    let add = |w: Watch, uid: bool, merged: &mut Vec<(Watch, bool)>| {
        if let Some(m) = merged.iter_mut().find(|m| m.0 == w) {
            m.1 &= uid;
        } else {
            merged.push((w, uid));
        }
    };
    for rule in rules {
        match rule_needs(rule, fs) {
            Ok(Some(n)) => n
                .watches
                .into_iter()
                .for_each(|w| add(w, n.uid_ne_0, &mut merged)),
            Ok(None) if !extra_dirs.is_empty() => {}
            Ok(None) => {
                return Err(DeriveError {
                    rule: rule.meta.name.clone(),
                    pattern: None,
                    why: "it has no top-level file.path condition".into(),
                });
            }
            Err(_) if !extra_dirs.is_empty() => {}
            Err(e) => return Err(e),
        }
    }
    for d in extra_dirs {
        // The user named it: no uid filter (we do not know which rule it serves).
        let d = PathBuf::from(d.to_string_lossy().trim_end_matches('/'));
        let d = if d.as_os_str().is_empty() {
            PathBuf::from("/")
        } else {
            d
        };
        add(Watch::Dir(d), false, &mut merged);
    }
    // Drop what another dir= already covers.
    let dirs: Vec<(PathBuf, bool)> = merged
        .iter()
        .filter_map(|(w, u)| match w {
            Watch::Dir(d) => Some((d.clone(), *u)),
            Watch::Entries(_) => None,
        })
        .collect();
    let covered = |w: &Watch, uid: bool| {
        dirs.iter().any(|(d, du)| {
            // Covered only if the covering rule filters no more than this one.
            let weaker = !*du || uid;
            weaker
                && match w {
                    Watch::Dir(p) => p != d && p.starts_with(d),
                    Watch::Entries(p) => p.starts_with(d),
                }
        })
    };
    let mut out = Vec::new();
    for (w, uid) in merged.iter().filter(|(w, u)| !covered(w, *u)) {
        for arch in [Arch::B64, Arch::B32] {
            let (dir, path) = match w {
                Watch::Dir(d) => (Some(d.clone()), None),
                Watch::Entries(p) => (None, Some(p.clone())),
            };
            out.push(AuditRule {
                arch,
                syscalls: creation_syscalls(arch),
                dir,
                path,
                perm: None,
                uid_ne: uid.then_some(0),
                success: Some(true),
                key: format!("{DAEMON_KEY_PREFIX}{}-{}", w.slug(), arch.name()),
            });
        }
    }
    Ok(out)
}

/// `rules print`: the rules as an auditctl rules file (for `/etc/audit/rules.d/`).
pub fn rules_file_text(rules: &[AuditRule]) -> String {
    let mut s = String::from(
        "## wwatchd: kernel audit rules derived from the loaded detection rules\n\
         ## (generated by `wwatchd rules print`; keys start with wwatchd-d-).\n\
         ## The daemon loads these itself and adds, at run time, a -F dir= rule for each\n\
         ## hidden directory under /home (patterns like \"/home/.*\"); they are not listed here.\n\
         ## No perm=w: with a syscall list it is ANDed and drops open(O_CREAT|O_RDONLY).\n",
    );
    for r in rules {
        s.push_str(&r.to_auditctl());
        s.push('\n');
    }
    s
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

    fn with_query(q: &str) -> crate::rule::Rule {
        use crate::file_event::FileSchema;
        let mut r = crate::rule::builtin(&FileSchema);
        r.meta.name = "test rule".into();
        r.query = crate::rule::Query::compile(q, &FileSchema).unwrap();
        r
    }

    struct FakeFs;

    impl WatchFs for FakeFs {
        fn is_dir(&self, p: &Path) -> bool {
            ["/tmp", "/var/tmp", "/dev/shm", "/home"].contains(&p.to_str().unwrap())
        }
        fn subdirs_starting_with(&self, dir: &Path, prefix: &str) -> Vec<String> {
            assert_eq!((dir.to_str().unwrap(), prefix), ("/home", "."));
            vec![".cache".into(), ".x".into()]
        }
    }

    const B64: &str = "-a always,exit -F arch=b64 -S open,mkdir,creat,link,symlink,mknod,openat,\
                       mkdirat,mknodat,linkat,symlinkat,openat2";
    const B32: &str = "-a always,exit -F arch=b32 -S open,creat,link,mknod,mkdir,symlink,openat,\
                       mkdirat,mknodat,linkat,symlinkat,openat2";

    fn lines(rules: &[AuditRule]) -> Vec<String> {
        rules.iter().map(AuditRule::to_auditctl).collect()
    }

    #[test]
    fn seed_rule_derives_exactly_these_rules() {
        let seed = crate::rule::builtin(&crate::file_event::FileSchema);
        let got = lines(&derive(&[seed], &[], &StaticFs).unwrap());
        let want: Vec<String> = [
            ("dir=/tmp", "tmp"),
            ("dir=/var/tmp", "var-tmp"),
            ("dir=/dev/shm", "dev-shm"),
            ("path=/home", "home-entries"),
        ]
        .iter()
        .flat_map(|(w, k)| {
            [
                format!("{B64} -F {w} -F success=1 -F uid!=0 -F key=wwatchd-d-{k}-b64"),
                format!("{B32} -F {w} -F success=1 -F uid!=0 -F key=wwatchd-d-{k}-b32"),
            ]
        })
        .collect();
        assert_eq!(got, want);
        // Every built-in rule has the seed's paths: together they derive the same rules.
        let all = crate::rule::try_builtins(&crate::file_event::FileSchema).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(lines(&derive(&all, &[], &StaticFs).unwrap()), want);
        assert_eq!(lines(&derive(&all[1..], &[], &StaticFs).unwrap()), want);
        for r in derive(
            &[crate::rule::builtin(&crate::file_event::FileSchema)],
            &[],
            &StaticFs,
        )
        .unwrap()
        {
            r.to_spec().unwrap();
            assert!(r.key.starts_with(DAEMON_KEY_PREFIX));
        }
    }

    /// The by-mode rule's watches are the world-writable directories the caller found:
    /// each a `dir=` subtree with the uid filter, merged with the other rules' (no duplicate
    /// /tmp, a directory inside a watched one dropped); none found, none derived.
    #[test]
    fn by_mode_rule_watches_the_world_writable_dirs_found() {
        struct WwFs(Vec<PathBuf>);
        impl WatchFs for WwFs {
            fn is_dir(&self, _: &Path) -> bool {
                true
            }
            fn subdirs_starting_with(&self, _: &Path, _: &str) -> Vec<String> {
                Vec::new()
            }
            fn world_writable_dirs(&self) -> Vec<PathBuf> {
                self.0.clone()
            }
        }
        let schema = crate::file_event::FileSchema;
        let by_mode = crate::rule::try_builtin_by_mode(&schema).unwrap();
        let fs = WwFs(
            ["/tmp", "/run/lock", "/var/crash", "/tmp/inner"]
                .iter()
                .map(PathBuf::from)
                .collect(),
        );
        let got = lines(&derive(std::slice::from_ref(&by_mode), &[], &fs).unwrap());
        let want: Vec<String> = [
            ("/tmp", "tmp"),
            ("/run/lock", "run-lock"),
            ("/var/crash", "var-crash"),
        ]
        .iter()
        .flat_map(|(d, k)| {
            [
                format!("{B64} -F dir={d} -F success=1 -F uid!=0 -F key=wwatchd-d-{k}-b64"),
                format!("{B32} -F dir={d} -F success=1 -F uid!=0 -F key=wwatchd-d-{k}-b32"),
            ]
        })
        .collect();
        assert_eq!(got, want);
        let mut all = crate::rule::try_builtins(&schema).unwrap();
        all.push(by_mode.clone());
        let got = lines(&derive(&all, &[], &fs).unwrap());
        assert_eq!(got.len(), 12, "{got:#?}"); // tmp, var-tmp, dev-shm, home-entries, run-lock, var-crash
        assert_eq!(got.iter().filter(|l| l.contains("dir=/tmp ")).count(), 2);
        assert!(got.iter().any(|l| l.contains("dir=/var/crash ")));
        assert!(derive(&[by_mode], &[], &StaticFs).unwrap().is_empty());
    }

    #[test]
    fn hidden_home_dirs_come_from_the_caller() {
        let seed = crate::rule::builtin(&crate::file_event::FileSchema);
        let got = derive(&[seed], &[], &FakeFs).unwrap();
        let keys: Vec<&str> = got.iter().map(|r| r.key.as_str()).step_by(2).collect();
        assert_eq!(
            keys,
            [
                "wwatchd-d-tmp-b64",
                "wwatchd-d-var-tmp-b64",
                "wwatchd-d-dev-shm-b64",
                "wwatchd-d-home-entries-b64",
                "wwatchd-d-home-.cache-b64",
                "wwatchd-d-home-.x-b64",
            ]
        );
        assert_eq!(got[8].dir.as_deref(), Some(Path::new("/home/.cache")));
    }

    #[test]
    fn unpushable_patterns_are_errors_naming_rule_and_pattern() {
        let r = with_query(r#"file where file.path like "*.sh" and user.id != "0""#);
        let e = derive(std::slice::from_ref(&r), &[], &StaticFs).unwrap_err();
        assert_eq!(e.pattern.as_deref(), Some("*.sh"));
        let msg = e.to_string();
        assert!(
            msg.contains("test rule")
                && msg.contains("*.sh")
                && msg.contains("cannot be pushed down into kernel audit rules")
                && msg.contains("name watch directories"),
            "{msg}"
        );
        let e = derive(
            &[with_query(r#"file where process.name == "scp""#)],
            &[],
            &StaticFs,
        )
        .unwrap_err();
        assert!(e.to_string().contains("no top-level file.path"), "{e}");
        let e = derive(
            &[with_query(r#"file where file.path like "/*""#)],
            &[],
            &StaticFs,
        )
        .unwrap_err();
        assert!(e.to_string().contains("every creation"), "{e}");
        // With --watch-dir, the rule runs on what is watched.
        let got = derive(&[r], &["/srv/in/".into()], &StaticFs).unwrap();
        assert_eq!(
            lines(&got)[0],
            format!("{B64} -F dir=/srv/in -F success=1 -F key=wwatchd-d-srv-in-b64")
        );
    }

    #[test]
    fn general_prefixes_merge_and_dedupe() {
        let a = with_query(
            r#"file where file.path like ("/srv/drop/*", "/srv/drop/sub/x*", "/opt/app-*") and user.id != "0""#,
        );
        // No uid filter here, so the shared /srv/drop rule loses it.
        let b = with_query(r#"file where file.path : "/srv/drop/*""#);
        let got = derive(&[a, b], &[], &FakeFs).unwrap();
        let got: Vec<String> = lines(&got).into_iter().step_by(2).collect();
        assert_eq!(
            got,
            [
                format!("{B64} -F dir=/srv/drop -F success=1 -F key=wwatchd-d-srv-drop-b64"),
                format!("{B64} -F dir=/opt -F success=1 -F uid!=0 -F key=wwatchd-d-opt-b64"),
            ]
        );
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

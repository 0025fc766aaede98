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

    fn exists(&self, p: &Path) -> bool {
        p.symlink_metadata().is_ok()
    }

    fn resolve(&self, p: &Path) -> PathBuf {
        resolve_existing(p)
    }

    fn case_variants(&self, p: &Path) -> Vec<PathBuf> {
        case_variants(p)
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

/// The file-system view of `rules print`: the daemon's ([`RealFs`]) without the hidden
/// directories under /home, which the daemon adds at run time and the printed file says it
/// does not list. On a standard Debian layout the shipped configuration prints
/// `rules.d/40-wwatchd.rules` exactly.
pub struct PrintFs;

impl WatchFs for PrintFs {
    fn is_dir(&self, p: &Path) -> bool {
        RealFs.is_dir(p)
    }
    fn exists(&self, p: &Path) -> bool {
        RealFs.exists(p)
    }
    fn resolve(&self, p: &Path) -> PathBuf {
        RealFs.resolve(p)
    }
    fn case_variants(&self, p: &Path) -> Vec<PathBuf> {
        RealFs.case_variants(p)
    }
    fn subdirs_starting_with(&self, _: &Path, _: &str) -> Vec<String> {
        Vec::new()
    }
}

/// `p` with the symbolic links of its longest existing ancestor resolved, the rest kept.
fn resolve_existing(p: &Path) -> PathBuf {
    let mut head = p.to_path_buf();
    let mut tail: Vec<std::ffi::OsString> = Vec::new();
    loop {
        if let Ok(c) = std::fs::canonicalize(&head) {
            let mut out = c;
            for t in tail.iter().rev() {
                out.push(t);
            }
            return out;
        }
        match (head.file_name().map(|n| n.to_os_string()), head.parent()) {
            (Some(n), Some(parent)) => {
                tail.push(n);
                head = parent.to_path_buf();
            }
            _ => return p.to_path_buf(),
        }
    }
}

/// The existing paths that `p` names when each of its characters may be any of its case
/// variants (Elasticsearch's case-insensitive matching), found component by component.
fn case_variants(p: &Path) -> Vec<PathBuf> {
    use std::path::Component;
    use wwatchd_core::rule::wildcard::{eq_ci, is_caseless};
    let mut found = vec![PathBuf::from("/")];
    for comp in p.components() {
        let Component::Normal(name) = comp else {
            continue;
        };
        let Some(name) = name.to_str() else {
            return Vec::new();
        };
        let mut next = Vec::new();
        for dir in &found {
            if is_caseless(name) {
                let c = dir.join(name);
                if c.symlink_metadata().is_ok() {
                    next.push(c);
                }
                continue;
            }
            let Ok(rd) = std::fs::read_dir(dir) else {
                continue;
            };
            for e in rd.filter_map(Result::ok) {
                if e.file_name().to_str().is_some_and(|n| eq_ci(n, name)) {
                    next.push(dir.join(e.file_name()));
                }
            }
        }
        next.sort();
        // Bounded: a pathological pattern cannot make the derivation list a whole tree.
        next.truncate(16);
        found = next;
        if found.is_empty() {
            break;
        }
    }
    found
}

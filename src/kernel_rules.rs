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

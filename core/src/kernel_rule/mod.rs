//! kernel_rule: the kernel audit rules wwatchd needs, derived from the detection rules.
//!
//! `rule (detection) ──► kernel_rule (derive) ──► wire (struct audit_rule_data)`
//!
//! A *detection rule* (`rule`) says what to alert on; a *kernel rule* ([`KernelRule`]) is
//! an `always,exit` filter in the kernel that makes it report the syscalls the detection
//! rules can match. Everything here is pure: the daemon lists, installs and removes kernel
//! rules through its control socket (`wwatchd::kernel_rules`), and hands the file-system
//! answers [`derive()`] needs in through [`WatchFs`].
//!
//! We recognise our rules by key (and dir/path and arch), never by comparing what we sent
//! with what is listed: the kernel rewrites the syscall mask (see [`ListedRule::payload`]).

mod watches;
pub mod wire;

use watches::{path_bound, watches_for};

use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::rule::Kinds;
pub use crate::syscalls::Arch;
use crate::syscalls::{self, Effect};
use wire::uapi::*;
use wire::{FieldValue, ListedRule, RuleField, RuleSpec};

/// One `always,exit` rule as wwatchd wants it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelRule {
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
    /// `aN&MASK`: the syscall's argument N has a bit of MASK set.
    pub arg_mask: Option<ArgMask>,
    pub key: String,
}

/// A bit test on a syscall argument (`-F aN&MASK`, the kernel's `AUDIT_BIT_MASK`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArgMask {
    /// 0 to 3.
    pub arg: u8,
    pub mask: u32,
}

/// `O_CREAT` (0100) and `__O_TMPFILE` (020000000), the same on x86_64 and i386
/// (include/uapi/asm-generic/fcntl.h): an open that may create a name. (`O_TMPFILE` is
/// `__O_TMPFILE|O_DIRECTORY`; its file gets a name only at the `linkat`, audited anyway.)
pub const OPEN_CREATE_FLAGS: u32 = 0o100 | 0o2000_0000;

/// The syscall numbers a creation rule for `arch` lists (`-S`), ascending.
pub fn creation_syscalls(arch: Arch) -> Vec<u32> {
    syscalls::numbers(arch, Effect::Create)
}

/// Why a [`KernelRule`] cannot become a kernel rule: the rule as auditctl text, and what
/// is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelRuleError {
    pub rule: String,
    pub why: String,
}

impl fmt::Display for KernelRuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "audit rule `{}`: {}", self.rule, self.why)
    }
}

impl std::error::Error for KernelRuleError {}

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

impl KernelRule {
    /// The rule as `auditctl -R` takes it and, for our rules, exactly as `auditctl -l`
    /// prints it (checked on 6.18 with auditctl 3.0.9): syscalls by name in number
    /// order, fields in the order they are sent, the key as `-F key=`.
    pub fn to_auditctl(&self) -> String {
        let mut s = format!("-a always,exit -F arch={}", self.arch.rule_name());
        if !self.syscalls.is_empty() {
            let mut nrs = self.syscalls.clone();
            nrs.sort_unstable();
            nrs.dedup();
            let names: Vec<String> = nrs
                .iter()
                .map(|&nr| {
                    syscalls::name(self.arch, nr).map_or_else(|| nr.to_string(), str::to_owned)
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
        if let Some(a) = self.arg_mask {
            // auditctl -l prints argument values in hex.
            s.push_str(&format!(" -F a{}&{:#x}", a.arg, a.mask));
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

    fn invalid(&self, why: impl Into<String>) -> KernelRuleError {
        KernelRuleError {
            rule: self.to_auditctl(),
            why: why.into(),
        }
    }

    fn check_path(&self, what: &str, p: &Path) -> Result<(), KernelRuleError> {
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
    pub fn to_spec(&self) -> Result<RuleSpec, KernelRuleError> {
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
        if let Some(a) = self.arg_mask
            && (a.arg > 3 || a.mask == 0)
        {
            return Err(self.invalid(format!(
                "argument test a{}&{:#x}: the kernel tests a0 to a3, with a mask of at least \
                 one bit",
                a.arg, a.mask
            )));
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
        if let Some(a) = self.arg_mask {
            spec.fields.push(RuleField {
                field: AUDIT_ARG0 + u32::from(a.arg),
                op: AUDIT_BIT_MASK,
                value: FieldValue::Num(a.mask),
            });
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
    pub fn matches_listed(&self, listed: &ListedRule) -> bool {
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

/// The rules in `rules` that none of `listed` matches (the daemon lists them).
pub fn missing_from<'a>(listed: &[ListedRule], rules: &'a [KernelRule]) -> Vec<&'a KernelRule> {
    rules
        .iter()
        .filter(|r| !listed.iter().any(|l| r.matches_listed(l)))
        .collect()
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
    /// `path=` on one name (a rule's literal path such as `"/etc/doas.conf"`): events on
    /// that name only, whether or not it exists yet (the kernel watches its parent).
    Name(PathBuf),
}

impl Watch {
    fn path(&self) -> &Path {
        match self {
            Watch::Dir(p) | Watch::Entries(p) | Watch::Name(p) => p,
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
            Watch::Name(_) => format!("{s}-name"),
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
    /// `wwatchd.parent.world_writable` (the daemon searches the local file systems). None
    /// by default.
    fn world_writable_dirs(&self) -> Vec<PathBuf> {
        Vec::new()
    }
    /// `p` with every symbolic link in it resolved (usrmerge: `/lib` → `/usr/lib`), as far
    /// as it exists; the components that do not exist are kept as written. The kernel
    /// resolves a rule's path the same way when it installs the rule, so a watch on the
    /// link would watch the target anyway; deriving the target keeps `rules print` honest.
    fn resolve(&self, p: &Path) -> PathBuf {
        p.to_path_buf()
    }
    /// Whether `p` exists (as anything).
    fn exists(&self, p: &Path) -> bool {
        self.is_dir(p)
    }
    /// The existing paths that `p` names under Elasticsearch's case-insensitive matching
    /// (each character of `p` accepting its case variants, `wildcard::variants`); usually
    /// just `p`. Empty when none exists.
    fn case_variants(&self, p: &Path) -> Vec<PathBuf> {
        if self.exists(p) {
            vec![p.to_path_buf()]
        } else {
            Vec::new()
        }
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
    /// Where the rule came from (its file, or a `builtin:` name).
    pub origin: String,
    /// The line of that file the reason is about, when known.
    pub line: Option<usize>,
    /// The offending `file.path` pattern, if it is one pattern's fault.
    pub pattern: Option<String>,
    pub why: String,
}

impl fmt::Display for DeriveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.origin)?;
        if let Some(l) = self.line {
            write!(f, "{l}:")?;
        }
        write!(f, " rule \"{}\"", self.rule)?;
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

/// Most hidden directories under one directory (like `/home`) that get `dir=` rules of
/// their own, in name order: each costs six kernel rules, evaluated on every creation
/// syscall on the host, and anyone who may create directories there could otherwise grow
/// the kernel's rule list without bound. The rest are still covered for new names directly
/// in that directory (its `path=` rule), not below them; they are counted and reported.
pub const MAX_HIDDEN_DIRS: usize = 64;

/// What [`derive_report`] left out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Omitted {
    /// Hidden directories over [`MAX_HIDDEN_DIRS`], given no `dir=` rule (in name order).
    pub hidden_dirs: Vec<PathBuf>,
}

fn rule_needs(
    rule: &crate::rule::Rule,
    fs: &dyn WatchFs,
    omitted: &mut Omitted,
) -> Result<Option<RuleNeeds>, DeriveError> {
    use crate::rule::ast::{CmpOp, Expr, Literal};
    let err = |pattern: Option<&str>, line: usize, why: String| DeriveError {
        rule: rule.meta.name.clone(),
        origin: rule.meta.origin.clone(),
        line: rule.query.file_line(line),
        pattern: pattern.map(str::to_owned),
        why,
    };
    let mut uid_ne_0 = false;
    for c in rule.query.ast().conjuncts() {
        if let Expr::Not(inner) = c
            && let Expr::Cmp {
                field,
                op: CmpOp::Eq,
                value,
            } = inner.as_ref()
            && is_field(field, "user.id")
            && (matches!(value, Literal::Str(s) if s == "0") || matches!(value, Literal::Num(0)))
        {
            uid_ne_0 = true;
        }
    }
    // `wwatchd.parent.world_writable == true` as a conjunct: no paths, the directories whose
    // mode says so, found on the host. Each is watched as a subtree; the PARENT's mode
    // decides per event.
    let by_mode = rule.query.ast().conjuncts().iter().any(|c| {
        matches!(c, Expr::Cmp { field, op: CmpOp::Eq, value: Literal::Bool(true) }
            if is_field(field, "wwatchd.parent.world_writable"))
    });
    if by_mode {
        let watches = fs
            .world_writable_dirs()
            .into_iter()
            .map(Watch::Dir)
            .collect();
        return Ok(Some(RuleNeeds { watches, uid_ne_0 }));
    }
    let Some(lits) = path_bound(rule.query.ast()) else {
        return Ok(None);
    };
    let mut watches = Vec::new();
    for lit in lits {
        match watches_for(lit, fs, omitted) {
            Ok(v) => watches.extend(v),
            Err(why) => return Err(err(Some(lit.source), lit.line, why)),
        }
    }
    Ok(Some(RuleNeeds { watches, uid_ne_0 }))
}

/// Turns loaded detection rules into the kernel rules that feed them: for each watched
/// directory and each arch (b64, b32) three `always,exit` rules, `success=1`, and `uid!=0`
/// when every rule using that directory requires `user.id != "0"`:
///
/// - `open` with `a1&0x400040` and `openat` with `a2&0x400040` (their flags argument has
///   `O_CREAT` or `__O_TMPFILE`, [`OPEN_CREATE_FLAGS`]): read-only opens, by far the most
///   common syscall under `/tmp`, are no longer audited at all (issue 15: 2000 read-only
///   opens by one user made 10,000 records for us and auditd's log);
/// - the other creation syscalls (`creat`, `mkdir(at)`, `mknod(at)`, `link(at)`,
///   `symlink(at)`), which always create, and `openat2`, without a test: its flags are in a
///   `struct open_how` that `a2` points to, and the kernel's filter compares only the
///   register values, so it cannot look inside. Left unfiltered, an `openat2` read is still
///   audited (and discarded by `file_event`); glibc's `open()` and `fopen()` use `openat`,
///   so that is rare, and filtering it out would miss creations.
///
/// Not `perm=w`: with a syscall list it is ANDed, and `open`/`openat`/`openat2` are then
/// judged by their access mode, so `open(O_CREAT|O_RDONLY)` creations would be dropped
/// (measured; see the kernel tests). The `O_CREAT` bit test keeps those.
///
/// `extra_dirs` (`--watch-dir`) are watched for every rule, and let rules whose paths have
/// no literal directory run. Directories are deduplicated; a `dir=` inside another `dir=`
/// and a `path=` on a `dir=`-watched directory are dropped as covered.
pub fn derive(
    rules: &[crate::rule::Rule],
    extra_dirs: &[PathBuf],
    fs: &dyn WatchFs,
) -> Result<Vec<KernelRule>, DeriveError> {
    derive_report(rules, extra_dirs, fs).map(|(r, _)| r)
}

/// [`derive()`], with what it left out (hidden directories over [`MAX_HIDDEN_DIRS`]).
pub fn derive_report(
    rules: &[crate::rule::Rule],
    extra_dirs: &[PathBuf],
    fs: &dyn WatchFs,
) -> Result<(Vec<KernelRule>, Omitted), DeriveError> {
    let mut omitted = Omitted::default();
    // (watch, uid_ne_0, kinds), merged: the uid filter stays only if every user of a watch
    // has it; the kinds (hence syscalls) are the union of its users'.
    let mut merged: Vec<(Watch, bool, Kinds)> = Vec::new();
    let add = |w: Watch, uid: bool, k: Kinds, merged: &mut Vec<(Watch, bool, Kinds)>| {
        if let Some(m) = merged.iter_mut().find(|m| m.0 == w) {
            m.1 &= uid;
            m.2 = m.2.union(k);
        } else {
            merged.push((w, uid, k));
        }
    };
    let mut all_kinds = Kinds::default();
    for rule in rules {
        let k = crate::rule::kinds::kinds(rule.query.ast());
        if k.is_empty() {
            // It can never match (the loader warns): nothing to ask the kernel for.
            continue;
        }
        all_kinds = all_kinds.union(k);
        match rule_needs(rule, fs, &mut omitted) {
            Ok(Some(n)) => n
                .watches
                .into_iter()
                .for_each(|w| add(w, n.uid_ne_0, k, &mut merged)),
            Ok(None) if !extra_dirs.is_empty() => {}
            Ok(None) => {
                return Err(DeriveError {
                    rule: rule.meta.name.clone(),
                    origin: rule.meta.origin.clone(),
                    line: rule.query.file_line(1),
                    pattern: None,
                    why: "no file.path condition bounds the paths it can match (a file.path \
                          like/==/in with a literal directory, in every branch of an 'or')"
                        .into(),
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
        let k = if all_kinds.is_empty() {
            Kinds::CREATION
        } else {
            all_kinds
        };
        add(Watch::Dir(d), false, k, &mut merged);
    }
    // Drop what another dir= already covers.
    let dirs: Vec<(PathBuf, bool, Kinds)> = merged
        .iter()
        .filter_map(|(w, u, k)| match w {
            Watch::Dir(d) => Some((d.clone(), *u, *k)),
            Watch::Entries(_) | Watch::Name(_) => None,
        })
        .collect();
    let covered = |w: &Watch, uid: bool, k: Kinds| {
        dirs.iter().any(|(d, du, dk)| {
            // Covered only if the covering rule filters no more than this one and asks
            // for every syscall this one does.
            let weaker = (!*du || uid) && dk.union(k) == *dk;
            weaker
                && match w {
                    Watch::Dir(p) => p != d && p.starts_with(d),
                    Watch::Entries(p) | Watch::Name(p) => p.starts_with(d),
                }
        })
    };
    let mut out = Vec::new();
    for (w, uid, k) in merged.iter().filter(|(w, u, k)| !covered(w, *u, *k)) {
        for arch in Arch::ALL {
            let (dir, path) = match w {
                Watch::Dir(d) => (Some(d.clone()), None),
                Watch::Entries(p) | Watch::Name(p) => (None, Some(p.clone())),
            };
            for (syscalls, arg_mask, part) in rule_parts(arch, *k) {
                out.push(KernelRule {
                    arch,
                    syscalls,
                    dir: dir.clone(),
                    path: path.clone(),
                    perm: None,
                    uid_ne: uid.then_some(0),
                    success: Some(true),
                    arg_mask,
                    key: format!("{DAEMON_KEY_PREFIX}{}{part}-{}", w.slug(), arch.rule_name()),
                });
            }
        }
    }
    Ok((out, omitted))
}

/// The kernel rules' syscall lists for a watch whose rules can match `kinds`, each part with
/// its key's infix. Without modifications, `open` and `openat` are only a creation when
/// their flags say `O_CREAT` or `__O_TMPFILE`, so each gets its own rule with that bit
/// test (the flags are `a1` of `open` and `a2` of `openat`) and read-only opens are never
/// audited; a rule that can match a modification (an open for writing) needs every open.
fn rule_parts(arch: Arch, kinds: Kinds) -> Vec<(Vec<u32>, Option<ArgMask>, &'static str)> {
    let all = syscalls_for(arch, kinds);
    if kinds.iter().any(|a| a == crate::rule::Action::Modification) {
        return vec![(all, None, "")];
    }
    let nr = |name: &str| {
        syscalls::SYSCALLS
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.nr(arch))
    };
    let (open, openat) = (nr("open"), nr("openat"));
    let rest: Vec<u32> = all
        .iter()
        .copied()
        .filter(|n| Some(*n) != open && Some(*n) != openat)
        .collect();
    let mut parts = vec![(rest, None, "")];
    for (n, arg, part) in [(open, 1, "-open"), (openat, 2, "-openat")] {
        if let Some(n) = n
            && all.contains(&n)
        {
            let mask = ArgMask {
                arg,
                mask: OPEN_CREATE_FLAGS,
            };
            parts.push((vec![n], Some(mask), part));
        }
    }
    parts
}

/// The syscalls a kernel rule lists for rules that can match `kinds`, ascending. A
/// modification can also be an open for writing, so it brings the open calls (not the
/// other creation calls) with it.
pub fn syscalls_for(arch: Arch, kinds: Kinds) -> Vec<u32> {
    use crate::rule::Action;
    let mut v = Vec::new();
    for a in kinds.iter() {
        let effects: &[Effect] = match a {
            Action::Creation => &[Effect::Create],
            Action::Rename => &[Effect::Rename],
            Action::Deletion => &[Effect::Delete],
            Action::Modification => &[Effect::Modify],
        };
        for e in effects {
            v.extend(syscalls::numbers(arch, *e));
        }
        if a == Action::Modification {
            // Opens for writing: open, openat, openat2, creat.
            v.extend(
                syscalls::SYSCALLS
                    .iter()
                    .filter(|s| s.name.starts_with("open") || s.name == "creat")
                    .map(|s| s.nr(arch)),
            );
        }
    }
    v.sort_unstable();
    v.dedup();
    v
}

/// `rules print`: the rules as an auditctl rules file (for `/etc/audit/rules.d/`).
pub fn rules_file_text(rules: &[KernelRule]) -> String {
    let mut s = String::from(
        "## wwatchd: kernel audit rules derived from the loaded detection rules\n\
         ## (generated by `wwatchd rules print`; keys start with wwatchd-d-).\n\
         ## The daemon loads these itself and adds, at run time, a -F dir= rule for each\n\
         ## hidden directory under /home (patterns like \"/home/.*\"); they are not listed here.\n\
         ## open and openat only when their flags hold O_CREAT or __O_TMPFILE (a1/a2&0x400040):\n\
         ## read-only opens are not audited. openat2's flags are out of the filter's reach.\n\
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

    fn tmp_rule(arch: Arch) -> KernelRule {
        KernelRule {
            arch,
            syscalls: syscalls::numbers(arch, Effect::Create),
            dir: Some("/tmp".into()),
            path: None,
            perm: Some(AUDIT_PERM_WRITE),
            uid_ne: Some(0),
            success: Some(true),
            arg_mask: None,
            key: "wwatchd-tmp".into(),
        }
    }

    #[test]
    fn auditctl_text_matches_auditctl_l() {
        // What `auditctl -l` printed on 6.18 / auditctl 3.0.9 for the same rules.
        assert_eq!(
            tmp_rule(Arch::X86_64).to_auditctl(),
            "-a always,exit -F arch=b64 -S open,mkdir,creat,link,symlink,mknod,openat,mkdirat,\
             mknodat,linkat,symlinkat,openat2 -F dir=/tmp -F perm=w -F success=1 -F uid!=0 \
             -F key=wwatchd-tmp"
        );
        let mut r = tmp_rule(Arch::I386);
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

    /// The kernel filter and the userspace creation check agree, number for number: every
    /// syscall a derived rule asks the kernel for is one `file_event` takes as a creation,
    /// and every creation `file_event` knows is asked for (else it would never be seen).
    #[test]
    fn kernel_filter_and_userspace_check_agree() {
        for arch in Arch::ALL {
            let asked = creation_syscalls(arch);
            assert_eq!(asked.len(), 12, "{arch:?}");
            for &nr in &asked {
                assert!(
                    crate::file_event::creation_syscall(arch, nr).is_some(),
                    "{arch:?} {nr} is asked for but not taken as a creation"
                );
            }
            for nr in 0..1024 {
                if crate::file_event::creation_syscall(arch, nr).is_some() {
                    assert!(asked.contains(&nr), "{arch:?} {nr} is never asked for");
                }
            }
        }
        assert_eq!(syscalls::name(Arch::I386, 437), Some("openat2"));
    }

    #[test]
    fn spec_fields_in_text_order() {
        let spec = tmp_rule(Arch::X86_64).to_spec().unwrap();
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
        for nr in creation_syscalls(Arch::X86_64) {
            assert!(spec.has_syscall(nr));
        }
        assert!(!spec.has_syscall(0));
        let back = RuleSpec::decode(&spec.encode().unwrap()).unwrap();
        assert_eq!(back, spec);
    }

    /// The bit test goes to the kernel as AUDIT_ARG0+N with AUDIT_BIT_MASK, in text order
    /// (after dir=, before success=), as `auditctl -l` lists it.
    #[test]
    fn arg_bit_test_spec_and_text() {
        let mut r = tmp_rule(Arch::X86_64);
        r.perm = None;
        r.syscalls = vec![257];
        r.arg_mask = Some(ArgMask {
            arg: 2,
            mask: OPEN_CREATE_FLAGS,
        });
        assert_eq!(
            r.to_auditctl(),
            "-a always,exit -F arch=b64 -S openat -F dir=/tmp -F a2&0x400040 -F success=1 \
             -F uid!=0 -F key=wwatchd-tmp"
        );
        let spec = r.to_spec().unwrap();
        let f = &spec.fields[2];
        assert_eq!(
            (f.field, f.op, &f.value),
            (
                AUDIT_ARG0 + 2,
                AUDIT_BIT_MASK,
                &FieldValue::Num(0o2000_0100)
            )
        );
        assert_eq!(RuleSpec::decode(&spec.encode().unwrap()).unwrap(), spec);
        r.arg_mask = Some(ArgMask { arg: 4, mask: 1 });
        assert!(r.to_spec().is_err());
    }

    #[test]
    fn invalid_rules() {
        let mut r = tmp_rule(Arch::X86_64);
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

    /// A small Debian-like tree: usrmerge symlinks, a few directories and one file.
    struct FakeFs;

    const DIRS: &[&str] = &[
        "/tmp",
        "/var",
        "/var/tmp",
        "/dev",
        "/dev/shm",
        "/home",
        "/srv",
        "/srv/drop",
        "/opt",
        "/etc",
        "/etc/cron.d",
        "/usr",
        "/usr/lib",
        "/usr/bin",
        "/run",
        "/ETC",
    ];
    const LINKS: &[(&str, &str)] = &[
        ("/lib", "/usr/lib"),
        ("/bin", "/usr/bin"),
        ("/var/run", "/run"),
    ];
    const FILES: &[&str] = &["/etc/doas.conf", "/usr/lib/ld-linux.so.2"];

    impl WatchFs for FakeFs {
        fn is_dir(&self, p: &Path) -> bool {
            DIRS.contains(&self.resolve(p).to_str().unwrap())
        }
        fn exists(&self, p: &Path) -> bool {
            let r = self.resolve(p);
            DIRS.contains(&r.to_str().unwrap()) || FILES.contains(&r.to_str().unwrap())
        }
        fn resolve(&self, p: &Path) -> PathBuf {
            for (link, target) in LINKS {
                if let Ok(rest) = p.strip_prefix(link) {
                    return if rest.as_os_str().is_empty() {
                        PathBuf::from(target)
                    } else {
                        Path::new(target).join(rest)
                    };
                }
            }
            p.to_path_buf()
        }
        fn case_variants(&self, p: &Path) -> Vec<PathBuf> {
            let p = p.to_str().unwrap();
            DIRS.iter()
                .chain(FILES)
                .filter(|d| crate::rule::wildcard::eq_ci(d, p))
                .map(PathBuf::from)
                .collect()
        }
        fn subdirs_starting_with(&self, dir: &Path, prefix: &str) -> Vec<String> {
            assert_eq!((dir.to_str().unwrap(), prefix), ("/home", "."));
            vec![".cache".into(), ".x".into()]
        }
    }

    const B64: &str = "-a always,exit -F arch=b64 -S mkdir,creat,link,symlink,mknod,mkdirat,\
                       mknodat,linkat,symlinkat,openat2";
    const B32: &str = "-a always,exit -F arch=b32 -S creat,link,mknod,mkdir,symlink,mkdirat,\
                       mknodat,linkat,symlinkat,openat2";

    /// The three rules of one watch and arch: the creation syscalls without a test, then
    /// open and openat with their O_CREAT|__O_TMPFILE bit test.
    fn three(arch: &str, watch: &str, filters: &str, key: &str) -> [String; 3] {
        let rest = if arch == "b64" { B64 } else { B32 };
        [
            format!("{rest} -F {watch}{filters} -F key=wwatchd-d-{key}-{arch}"),
            format!(
                "-a always,exit -F arch={arch} -S open -F {watch} -F a1&0x400040{filters} \
                 -F key=wwatchd-d-{key}-open-{arch}"
            ),
            format!(
                "-a always,exit -F arch={arch} -S openat -F {watch} -F a2&0x400040{filters} \
                 -F key=wwatchd-d-{key}-openat-{arch}"
            ),
        ]
    }

    fn lines(rules: &[KernelRule]) -> Vec<String> {
        rules.iter().map(KernelRule::to_auditctl).collect()
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
            let f = " -F success=1 -F uid!=0";
            let mut v = three("b64", w, f, k).to_vec();
            v.extend(three("b32", w, f, k));
            v
        })
        .collect();
        assert_eq!(got, want);
        // Every built-in rule has the seed's paths: together they derive the same rules.
        let all = crate::rule::try_builtins(&crate::file_event::FileSchema).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(lines(&derive(&all, &[], &StaticFs).unwrap()), want);
        assert_eq!(lines(&derive(&all[1..], &[], &StaticFs).unwrap()), want);
        // Every syscall of the creation list is asked for exactly once per watch and arch.
        let rules = derive(
            &[crate::rule::builtin(&crate::file_event::FileSchema)],
            &[],
            &StaticFs,
        )
        .unwrap();
        for arch in Arch::ALL {
            let mut asked: Vec<u32> = rules
                .iter()
                .filter(|r| r.arch == arch && r.dir.as_deref() == Some(Path::new("/tmp")))
                .flat_map(|r| r.syscalls.clone())
                .collect();
            asked.sort_unstable();
            assert_eq!(asked, creation_syscalls(arch), "{arch:?}");
        }
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
        // The open/openat parts (their O_CREAT tests) come with every watch: 3 per arch.
        assert_eq!(got.len(), want.len() * 3, "{got:#?}");
        let plain: Vec<String> = got
            .iter()
            .filter(|l| !l.contains("-open"))
            .cloned()
            .collect();
        assert_eq!(plain, want);
        let mut all = crate::rule::try_builtins(&schema).unwrap();
        all.push(by_mode.clone());
        let got = lines(&derive(&all, &[], &fs).unwrap());
        assert_eq!(got.len(), 36, "{got:#?}"); // 3 each: tmp, var-tmp, dev-shm, home-entries, run-lock, var-crash
        assert_eq!(got.iter().filter(|l| l.contains("dir=/tmp ")).count(), 6);
        assert!(got.iter().any(|l| l.contains("dir=/var/crash ")));
        assert!(derive(&[by_mode], &[], &StaticFs).unwrap().is_empty());
    }

    #[test]
    fn hidden_home_dirs_come_from_the_caller() {
        let seed = crate::rule::builtin(&crate::file_event::FileSchema);
        let got = derive(&[seed], &[], &FakeFs).unwrap();
        let keys: Vec<&str> = got.iter().map(|r| r.key.as_str()).step_by(6).collect();
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
        assert_eq!(got[24].dir.as_deref(), Some(Path::new("/home/.cache")));
    }

    /// Issue 15: the hidden directories under /home that get rules of their own are capped;
    /// the rest are named in the report.
    #[test]
    fn hidden_dirs_are_capped_and_the_rest_reported() {
        struct ManyFs;
        impl WatchFs for ManyFs {
            fn is_dir(&self, p: &Path) -> bool {
                FakeFs.is_dir(p)
            }
            fn subdirs_starting_with(&self, _: &Path, _: &str) -> Vec<String> {
                // Out of order on purpose: the first MAX_HIDDEN_DIRS by name are kept.
                (0..MAX_HIDDEN_DIRS + 3)
                    .rev()
                    .map(|i| format!(".d{i:03}"))
                    .collect()
            }
        }
        let seed = crate::rule::builtin(&crate::file_event::FileSchema);
        let (rules, omitted) = derive_report(&[seed], &[], &ManyFs).unwrap();
        let hidden = rules
            .iter()
            .filter(|r| r.dir.as_deref().is_some_and(|d| d.starts_with("/home")))
            .count();
        assert_eq!(hidden, MAX_HIDDEN_DIRS * 6);
        assert_eq!(
            omitted.hidden_dirs,
            (MAX_HIDDEN_DIRS..MAX_HIDDEN_DIRS + 3)
                .map(|i| PathBuf::from(format!("/home/.d{i:03}")))
                .collect::<Vec<_>>()
        );
        assert!(rules.iter().any(|r| r.key == "wwatchd-d-home-.d000-b64"));
        assert!(
            !rules
                .iter()
                .any(|r| r.key.contains(&format!(".d{MAX_HIDDEN_DIRS:03}")))
        );
    }

    #[test]
    fn unpushable_patterns_are_errors_naming_rule_and_pattern() {
        let r = with_query(
            r#"file where event.action == "creation" and file.path like "*.sh" and user.id != "0""#,
        );
        let e = derive(std::slice::from_ref(&r), &[], &StaticFs).unwrap_err();
        assert_eq!(e.pattern.as_deref(), Some("*.sh"));
        assert!(e.to_string().contains("(--watch-dir DIR)"), "{e}");
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
        assert!(
            e.to_string()
                .starts_with("builtin:rules/remote_file_creation_world_writeable.toml: rule \"test rule\": no file.path condition bounds"),
            "{e}"
        );
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
            lines(&got)[..3],
            three("b64", "dir=/srv/in", " -F success=1", "srv-in")
        );
    }

    fn dirs_of(q: &str) -> Vec<String> {
        let got = derive(&[with_query(q)], &[], &FakeFs).unwrap();
        let mut v: Vec<String> = got
            .iter()
            .filter(|r| r.arch == Arch::X86_64)
            .map(|r| match (&r.dir, &r.path) {
                (Some(d), _) => format!("dir={}", d.display()),
                (_, Some(p)) => format!("path={}", p.display()),
                _ => "none".into(),
            })
            .collect();
        // One watch may have several rules (the open/openat parts).
        v.dedup();
        v
    }

    /// Issue 11: what the daemon derives on a usrmerged host, for literal files, missing
    /// directories and case-insensitive patterns.
    #[test]
    fn watches_follow_the_file_system() {
        // Symlinked directories become their targets.
        assert_eq!(
            dirs_of(r#"file where file.path : "/lib/ld-linux*""#),
            ["dir=/usr/lib"]
        );
        assert_eq!(
            dirs_of(r#"file where file.path like "/var/run/*""#),
            ["dir=/run"]
        );
        // A literal path is one name, watched through its directory.
        assert_eq!(
            dirs_of(r#"file where file.path == "/etc/doas.conf""#),
            ["path=/etc/doas.conf"]
        );
        assert_eq!(
            dirs_of(r#"file where file.path in ("/etc/doas.conf", "/bin/sudo")"#),
            ["path=/etc/doas.conf", "path=/usr/bin/sudo"]
        );
        // A file-name prefix: its directory's subtree (`*` crosses `/`).
        assert_eq!(
            dirs_of(r#"file where file.path like "/etc/doas.c*""#),
            ["dir=/etc"]
        );
        // A directory that does not exist: its nearest existing ancestor.
        assert_eq!(
            dirs_of(r#"file where file.path like "/etc/doas.d/*""#),
            ["dir=/etc"]
        );
        assert_eq!(
            dirs_of(r#"file where file.path == "/etc/nope/x.conf""#),
            ["dir=/etc"]
        );
        // An 'or' whose every branch has a file.path bound.
        assert_eq!(
            dirs_of(
                r#"file where event.type == "creation" and
                   ((file.path like "/etc/cron.d/*" and process.name != "x") or file.path : "/srv/drop/*")"#
            ),
            ["dir=/etc/cron.d", "dir=/srv/drop"]
        );
        // Case-insensitive: every existing spelling (here /etc and /ETC), the text as
        // written when none exists; case-sensitive patterns take the text as written.
        assert_eq!(
            dirs_of(r#"file where file.path : "/etc/*""#),
            ["dir=/etc", "dir=/ETC"]
        );
        assert_eq!(dirs_of(r#"file where file.path : "/TMP/*""#), ["dir=/tmp"]);
        assert_eq!(
            dirs_of(r#"file where file.path like "/etc/*""#),
            ["dir=/etc"]
        );
        assert_eq!(
            dirs_of(r#"file where file.path like~ "/Srv/Drop/x*""#),
            ["dir=/srv/drop"]
        );
        let e = derive(
            &[with_query(
                r#"file where file.path like "/etc/*" or process.name == "x""#,
            )],
            &[],
            &FakeFs,
        )
        .unwrap_err();
        assert!(e.to_string().contains("every branch"), "{e}");
        let e = derive(
            &[with_query(r#"file where file.path like "/nowhere/*""#)],
            &[],
            &FakeFs,
        )
        .unwrap_err();
        assert!(e.to_string().contains("every creation"), "{e}");
    }

    /// Issue 11: each rule costs the syscalls of the event kinds it can match; a watch
    /// shared by rules gets the union.
    #[test]
    fn syscalls_follow_the_event_kinds() {
        // Every syscall one watch asks for (over its parts), in auditctl's order.
        let names = |q: &str| -> String {
            let got = derive(&[with_query(q)], &[], &FakeFs).unwrap();
            let first = got[0].clone();
            let mut nrs: Vec<u32> = got
                .iter()
                .filter(|r| r.arch == first.arch && r.dir == first.dir && r.path == first.path)
                .flat_map(|r| r.syscalls.clone())
                .collect();
            nrs.sort_unstable();
            nrs.dedup();
            KernelRule {
                syscalls: nrs,
                arg_mask: None,
                ..first
            }
            .to_auditctl()
            .split(' ')
            .nth(5)
            .unwrap_or_default()
            .to_owned()
        };
        assert_eq!(
            names(r#"file where event.type == "deletion" and file.path : "/etc/*""#),
            "rmdir,unlink,unlinkat"
        );
        assert_eq!(
            names(r#"file where event.action == "rename" and file.path : "/etc/*""#),
            "rename,renameat,renameat2"
        );
        assert_eq!(
            names(r#"file where event.action in ("rename", "creation") and file.path : "/etc/*""#),
            "open,rename,mkdir,creat,link,symlink,mknod,openat,mkdirat,mknodat,renameat,linkat,\
             symlinkat,renameat2,openat2"
        );
        assert_eq!(
            names(r#"file where event.action == "modification" and file.path : "/etc/*""#),
            "open,truncate,creat,chmod,chown,lchown,setxattr,lsetxattr,removexattr,lremovexattr,\
             openat,fchownat,fchmodat,openat2"
        );
        // No condition on the kind: every file event, as in Elasticsearch.
        assert_eq!(
            names(r#"file where file.path : "/etc/*""#)
                .split(',')
                .count(),
            28
        );
        // A rule that can never match asks for nothing.
        assert!(
            derive(
                &[with_query(
                    r#"file where event.action == "file_create_event" and file.path : "/etc/*""#
                )],
                &[],
                &FakeFs
            )
            .unwrap()
            .is_empty()
        );
        // Shared watch: the union; the creation-only rule's watch is not covered by it.
        let del = with_query(r#"file where event.type == "deletion" and file.path like "/etc/*""#);
        let cre =
            with_query(r#"file where event.type == "creation" and file.path : "/etc/cron.d/*""#);
        let got = lines(&derive(&[del, cre], &[], &FakeFs).unwrap());
        // /etc: deletions, one rule per arch; /etc/cron.d: creations, three per arch (the
        // open and openat parts with their O_CREAT test).
        assert_eq!(got.len(), 8, "{got:#?}");
        assert!(
            got.iter()
                .any(|l| l.contains("dir=/etc/cron.d") && l.contains("-S open ")),
            "{got:#?}"
        );
    }

    #[test]
    fn general_prefixes_merge_and_dedupe() {
        let a = with_query(
            r#"file where event.type == "creation" and file.path like ("/srv/drop/*", "/srv/drop/sub/x*", "/opt/app-*") and user.id != "0""#,
        );
        // No uid filter here, so the shared /srv/drop rule loses it.
        let b = with_query(r#"file where event.action : "creation" and file.path : "/srv/drop/*""#);
        let got = derive(&[a, b], &[], &FakeFs).unwrap();
        let got: Vec<String> = lines(&got).into_iter().step_by(6).collect();
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
        let rules = [tmp_rule(Arch::X86_64), tmp_rule(Arch::I386)];
        // What the kernel lists differs from what was sent (mask); only key/arch/dir count.
        let mut listed_spec = rules[0].to_spec().unwrap();
        listed_spec.mask[0] = 0;
        let listed = vec![ListedRule::from_payload(&listed_spec.encode().unwrap())];
        let miss = missing_from(&listed, &rules);
        assert_eq!(miss, vec![&rules[1]]);

        let mut other_dir = rules[0].clone();
        other_dir.dir = Some("/var/tmp".into());
        let listed = vec![ListedRule::from_payload(
            &other_dir.to_spec().unwrap().encode().unwrap(),
        )];
        assert_eq!(missing_from(&listed, &rules).len(), 2);
    }
}

//! file_event: a complete audit event → the file creations it records, with ECS fields.
//!
//! `netlink → record → event → [file_event] → rule → alert → syslog`
//!
//! A creation is a PATH record with `nametype=CREATE` from a successful open, openat,
//! openat2, creat, mkdir(at), mknod(at), link(at) or symlink(at), decided by syscall number
//! per arch (x86_64 and i386). Rename and overwrite are not creations.
//!
//! The absolute path: a relative name is joined to CWD, and `.`/`..` are folded. For `*at()`
//! calls with a real dirfd the kernel's name is relative to that dirfd and the PARENT record's
//! `name` is the process's CWD (measured here; audit-kernel issue #95); only its `dev:inode`
//! names the real directory. That is looked up in a cache of directories seen in earlier
//! events, then through the [`Enricher`] (live: `/proc/PID/fd/N`); otherwise the path is
//! marked unresolved rather than guessed.
//!
//! Bytes that are not UTF-8 stay lossless: see [`Text`].

#![forbid(unsafe_code)]

use std::borrow::Cow;

use std::fmt;

use crate::event::Event;
use crate::record::{Record, Value, num, split_argv};
pub use crate::rule::Action;
use crate::rule::{FieldId, FieldSource, FieldType, FieldValue, Kinds, Schema};
pub use crate::syscalls::Arch;
use crate::syscalls::{self, DirFd, Effect};

/// An id the kernel prints for "unset": `(uid_t)-1`.
const UNSET_ID: &str = "4294967295";

mod changes;
mod paths;
mod schema;
mod text;

pub use paths::normalize;
use paths::{DirCache, absolute, extension, join, split_path};
pub use text::{PathOrigin, Text};

pub use schema::{FIELDS, FileSchema};

/// `AT_FDCWD` as the kernel prints a 32-bit int argument.
const AT_FDCWD: u64 = 0xffff_ff9c;

/// Most PATH records read from one event. A real syscall names a few (a rename four);
/// the rest of a larger event is ignored and reported.
pub const MAX_PATHS_PER_EVENT: usize = 10_000;

/// The name and dirfd argument of a creation syscall, `None` for any other syscall.
pub fn creation_syscall(arch: Arch, nr: u32) -> Option<(&'static str, bool)> {
    syscalls::lookup(arch, nr)
        .filter(|s| s.effect == Effect::Create)
        .map(|s| (s.name, s.dirfd != DirFd::None))
}

fn dirfd_arg(arch: Arch, nr: u32) -> Option<DirFd> {
    syscalls::lookup(arch, nr).map(|s| s.dirfd)
}

/// One file creation, with the fields an alert and the rule need. Borrows the event.
#[derive(Clone, Debug)]
pub struct FileEvent<'a> {
    pub sec: u64,
    pub msec: u16,
    pub serial: u64,
    pub host_name: Option<Text<'a>>,
    pub arch: Arch,
    pub syscall: &'static str,
    pub exit: Option<&'a str>,
    pub key: Option<Text<'a>>,
    pub pid: Option<u32>,
    pub ppid: Option<u32>,
    pub ses: Option<u32>,
    pub tty: Option<&'a str>,
    /// `user.id` etc. are ECS keywords, kept as the kernel's digits.
    pub uid: Option<&'a str>,
    pub euid: Option<&'a str>,
    pub auid: Option<&'a str>,
    pub suid: Option<&'a str>,
    pub fsuid: Option<&'a str>,
    pub gid: Option<&'a str>,
    pub egid: Option<&'a str>,
    pub user_name: Option<Text<'a>>,
    pub group_name: Option<Text<'a>>,
    pub comm: Option<Text<'a>>,
    /// `comm`, or the executable's basename where the kernel cut comm at 15 bytes.
    pub process_name: Option<Text<'a>>,
    pub exe: Option<Text<'a>>,
    pub title: Option<Text<'a>>,
    pub args: Vec<Text<'a>>,
    pub cwd: Option<Text<'a>>,
    pub path: Option<Text<'static>>,
    pub path_origin: PathOrigin,
    /// The name exactly as the kernel recorded it (relative for dirfd calls).
    pub kernel_name: Text<'a>,
    /// `file.name`, `file.directory` and `file.extension`, cut from `path` (or from the
    /// kernel name when the path is unresolved).
    pub file_name: Option<Text<'static>>,
    pub directory: Option<Text<'static>>,
    pub extension: Option<Text<'static>>,
    pub inode: Option<&'a str>,
    pub device: Option<&'a str>,
    pub mode: Option<u32>,
    /// The mode of the directory the name was created in: the PARENT record before the
    /// CREATE (`mode=041777`). `wwatchd.parent.world_writable` tests its o+w bit.
    pub parent_mode: Option<u32>,
    pub ouid: Option<&'a str>,
    pub ogid: Option<&'a str>,
    /// What happened: a creation, unless [`Builder::changes`] made the event.
    pub action: Action,
    /// For a rename, the old name (`file.Ext.original.*`).
    pub original: Option<Box<Original>>,
    /// Filled later by the live pipeline (session table, /proc); empty in `scan`.
    pub context: Context,
}

/// The name a renamed file had: Elastic Defend's `file.Ext.original.path`, `.name`,
/// `.extension`. Owned: built from a PATH record like `FileEvent::path`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Original {
    pub path: Option<Text<'static>>,
    pub name: Option<Text<'static>>,
    pub extension: Option<Text<'static>>,
}

/// Context the daemon adds from outside the event (session table, /proc). Owned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Context {
    pub source_ip: Option<String>,
    pub source_address: Option<String>,
    pub source_hostname: Option<String>,
    pub session_terminal: Option<String>,
    pub session_account: Option<String>,
    pub parent_name: Option<String>,
    pub parent_executable: Option<String>,
}

impl<'a> FileEvent<'a> {
    /// An event's creation with only its stamp, arch and syscall; the builder fills the rest.
    fn empty(ev: &Event, arch: Arch, syscall: &'static str) -> FileEvent<'a> {
        FileEvent {
            sec: ev.stamp.sec,
            msec: ev.stamp.msec,
            serial: ev.stamp.serial,
            host_name: None,
            arch,
            syscall,
            exit: None,
            key: None,
            pid: None,
            ppid: None,
            ses: None,
            tty: None,
            uid: None,
            euid: None,
            auid: None,
            suid: None,
            fsuid: None,
            gid: None,
            egid: None,
            user_name: None,
            group_name: None,
            comm: None,
            process_name: None,
            exe: None,
            title: None,
            args: Vec::new(),
            cwd: None,
            path: None,
            path_origin: PathOrigin::Unresolved,
            kernel_name: Text {
                text: Cow::Borrowed(""),
                raw: None,
            },
            file_name: None,
            directory: None,
            extension: None,
            inode: None,
            device: None,
            mode: None,
            ouid: None,
            parent_mode: None,
            ogid: None,
            action: Action::Creation,
            original: None,
            context: Context::default(),
        }
    }

    /// ECS `file.type` from the mode's format bits: ECS knows `file`, `dir` and `symlink`
    /// only; the other kinds are [`FileEvent::special_file_type`].
    pub fn file_type(&self) -> Option<&'static str> {
        Some(match self.mode? & 0o170000 {
            0o100000 => "file",
            0o040000 => "dir",
            0o120000 => "symlink",
            _ => return None,
        })
    }

    /// `wwatchd.file_type`: a FIFO, socket or device node, which ECS `file.type` cannot say.
    pub fn special_file_type(&self) -> Option<&'static str> {
        Some(match self.mode? & 0o170000 {
            0o010000 => "fifo",
            0o140000 => "socket",
            0o020000 => "char_device",
            0o060000 => "block_device",
            _ => return None,
        })
    }

    /// ECS `file.mode`: the permission bits in octal, as Auditbeat writes them ("0644").
    pub fn mode_string(&self) -> Option<String> {
        // Four octal digits, written directly (once or twice per alert; `format!` costs
        // more than the rest of the field).
        self.mode.map(|m| {
            let m = m & 0o7777;
            [9, 6, 3, 0]
                .iter()
                .map(|&shift| char::from(b'0' + ((m >> shift) & 7) as u8))
                .collect()
        })
    }
}

/// A problem with one field of one record. Reported with the input line; never fatal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldIssue {
    pub line: u64,
    pub record: &'static str,
    pub field: &'static str,
    pub error: String,
}

impl fmt::Display for FieldIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}: {} field '{}': {}",
            self.line, self.record, self.field, self.error
        )
    }
}

/// What the edge can add that the records cannot (I/O lives behind this trait).
pub trait Enricher {
    /// A local user name for a uid; `None` where names must not be looked up.
    fn user_name(&mut self, _uid: u32) -> Option<String> {
        None
    }
    fn group_name(&mut self, _gid: u32) -> Option<String> {
        None
    }
    /// The directory an open fd of a live process refers to.
    fn fd_path(&mut self, _pid: u32, _fd: u32) -> Option<Vec<u8>> {
        None
    }
    /// This host's name, used when the record carries no `node=`.
    fn host_name(&self) -> Option<&str> {
        None
    }
    /// The name and executable of a live parent process (`process.parent.*`).
    fn parent(&mut self, _ppid: u32) -> (Option<String>, Option<String>) {
        (None, None)
    }
}

/// Adds nothing: for logs from elsewhere, where this host's names would be wrong.
pub struct NoEnrich;
impl Enricher for NoEnrich {}

/// Counters of the event → file-event stage.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BuildStats {
    pub creations: u64,
    /// Renames, deletions and modifications built (only when a rule can match them).
    pub changes: u64,
    pub unresolved_paths: u64,
    pub malformed_fields: u64,
    /// Syscall events that could not be read at all (no arch/syscall number).
    pub unreadable_events: u64,
}

/// Where a PATH record's name is: its absolute path (if found), the name as the kernel
/// wrote it, and how the path was found.
type Located = (Option<Vec<u8>>, (Cow<'static, [u8]>, PathOrigin));

/// `dev=fe:00` → one number (major << 32 | minor).
fn parse_dev(v: &[u8]) -> Option<u64> {
    let colon = v.iter().position(|&c| c == b':')?;
    let major = crate::record::parse_hex_u64(&v[..colon])?;
    let minor = crate::record::parse_hex_u64(&v[colon + 1..])?;
    Some(major << 32 | minor)
}

/// Turns complete events into file events. Holds the directory cache across events.
pub struct Builder {
    dirs: DirCache,
    stats: BuildStats,
    issues: Vec<FieldIssue>,
    /// Keep at most this many issues for the report; all are counted.
    max_issues: usize,
    /// Searchers for the keys [`quick_pass`] reads, built once.
    again: KeySearch,
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

/// One PATH record, as far as we need it.
#[derive(Clone, Debug, Default)]
struct PathRec<'a> {
    line: u64,
    name: Option<Cow<'a, [u8]>>,
    /// A `name=` field was there (it may have failed to decode, which is reported already).
    had_name: bool,
    nametype: &'a [u8],
    inode: Option<&'a str>,
    dev: Option<&'a str>,
    mode: Option<u32>,
    ouid: Option<&'a str>,
    ogid: Option<&'a str>,
}

fn ascii(v: Value<'_>) -> Option<&str> {
    std::str::from_utf8(v.unquoted()).ok()
}

impl Builder {
    pub fn new() -> Self {
        Builder {
            dirs: DirCache::new(8192),
            stats: BuildStats::default(),
            issues: Vec::new(),
            max_issues: 100,
            again: KeySearch::new(),
        }
    }

    pub fn stats(&self) -> &BuildStats {
        &self.stats
    }

    /// Issues kept for the report (the first ones; all are counted in the stats).
    pub fn take_issues(&mut self) -> Vec<FieldIssue> {
        std::mem::take(&mut self.issues)
    }

    fn issue(
        &mut self,
        line: u64,
        record: &'static str,
        field: &'static str,
        error: impl ToString,
    ) {
        self.stats.malformed_fields += 1;
        if self.issues.len() < self.max_issues {
            self.issues.push(FieldIssue {
                line,
                record,
                field,
                error: error.to_string(),
            });
        }
    }

    fn decode<'a>(
        &mut self,
        line: u64,
        record: &'static str,
        field: &'static str,
        v: Value<'a>,
    ) -> Option<Cow<'a, [u8]>> {
        match v.decode() {
            Ok(d) => d,
            Err(e) => {
                self.issue(line, record, field, e);
                None
            }
        }
    }

    fn id<'a>(&mut self, line: u64, field: &'static str, v: Value<'a>) -> Option<&'a str> {
        match v.as_u64() {
            Ok(_) => ascii(v),
            Err(e) => {
                self.issue(line, "SYSCALL", field, e);
                None
            }
        }
    }

    /// The file creations in `ev`, each handed to `out`. Events that are not creations cost
    /// a look at the SYSCALL record's arch and number.
    pub fn creations(
        &mut self,
        ev: &Event,
        enrich: &mut dyn Enricher,
        out: &mut dyn FnMut(&mut FileEvent<'_>),
    ) {
        let Some(sys) = ev.first(num::SYSCALL) else {
            return;
        };
        let sys_line = ev
            .records()
            .find(|(_, r)| r.rtype == num::SYSCALL)
            .map_or(0, |(l, _)| l);
        let (arch, nr, success) = quick_pass(&sys, &self.again);
        let (Some(arch), Some(nr)) = (arch, nr) else {
            self.stats.unreadable_events += 1;
            self.issue(
                sys_line,
                "SYSCALL",
                "arch/syscall",
                "missing or not a number",
            );
            return;
        };
        let Some(dirfd_kind) = dirfd_arg(arch, nr) else {
            return;
        };
        let Some((syscall, _)) = creation_syscall(arch, nr) else {
            return;
        };
        let paths = self.paths(ev);
        // Learn directories from this event's PARENT records while we are here.
        let cwd_rec = ev.first(num::CWD);
        let cwd = match cwd_rec.and_then(|r| r.get(b"cwd")) {
            Some(v) => self.decode(sys_line, "CWD", "cwd", v),
            None => None,
        };
        let dirfd = match dirfd_kind {
            DirFd::None => None,
            DirFd::A0 => fe_arg(&sys, b"a0"),
            DirFd::A1 => fe_arg(&sys, b"a1"),
            DirFd::A2 => fe_arg(&sys, b"a2"),
        }
        .map(|v| v & 0xffff_ffff)
        .filter(|&v| v != AT_FDCWD);
        if dirfd.is_none() {
            self.learn_dirs(&paths, cwd.as_deref());
        }
        if !success || !paths.iter().any(|p| p.nametype == b"CREATE") {
            return;
        }

        let mut fe = self.base(ev, &sys, sys_line, arch, syscall, enrich);
        fe.cwd = cwd.clone().map(Text::from_cow);

        // The nearest PARENT before each CREATE, kept as we go: one pass, however many
        // PATH records a (crafted) event holds (searching back from each CREATE was
        // quadratic: 300,000 records took 389 s).
        let mut parent: Option<&PathRec<'_>> = None;
        for p in &paths {
            if p.nametype == b"PARENT" {
                parent = Some(p);
            }
            if p.nametype != b"CREATE" {
                continue;
            }
            let Some(name) = p.name.clone() else {
                if !p.had_name {
                    self.issue(p.line, "PATH", "name", "CREATE record without a name");
                }
                continue;
            };
            // The directory this name is relative to, for a dirfd call: the nearest PARENT
            // before it carries the real directory's dev:inode.
            let (path, origin) = self.resolve(&name, parent, dirfd, cwd.as_deref(), fe.pid, enrich);
            match &path {
                Some(path) => self.learn_created(p, parent, path),
                None => self.stats.unresolved_paths += 1,
            }
            let this = &mut fe;
            this.kernel_name = Text::from_cow(name.clone());
            let basis: &[u8] = path.as_deref().unwrap_or(&name);
            let (dir, base) = split_path(basis);
            this.file_name = (!base.is_empty()).then(|| Text::from_vec(base.to_vec()));
            this.directory = path.as_ref().and(dir).map(|d| Text::from_vec(d.to_vec()));
            this.extension = extension(base).map(|e| Text::from_vec(e.to_vec()));
            this.path = path.map(Text::from_vec);
            this.path_origin = origin;
            this.inode = p.inode;
            this.device = p.dev;
            this.mode = p.mode;
            this.parent_mode = parent.and_then(|q| q.mode);
            this.ouid = p.ouid;
            this.ogid = p.ogid;
            self.stats.creations += 1;
            out(this);
        }
    }

    /// The absolute path of a created `name` and how it was found: absolute already, joined
    /// to the dirfd's directory (from the cache or `/proc`), or joined to CWD.
    fn resolve(
        &mut self,
        name: &[u8],
        parent: Option<&PathRec<'_>>,
        dirfd: Option<u64>,
        cwd: Option<&[u8]>,
        pid: Option<u32>,
        enrich: &mut dyn Enricher,
    ) -> (Option<Vec<u8>>, PathOrigin) {
        if name.first() == Some(&b'/') {
            return (Some(normalize(name)), PathOrigin::Absolute);
        }
        let Some(fd) = dirfd else {
            return match absolute(cwd, name) {
                Some(abs) => (Some(abs), PathOrigin::Cwd),
                None => (None, PathOrigin::Unresolved),
            };
        };
        if let Some(dir) = parent.and_then(dev_ino).and_then(|k| self.dirs.get(&k)) {
            return (Some(join(dir, name)), PathOrigin::DirCache);
        }
        match pid.and_then(|pid| enrich.fd_path(pid, fd as u32)) {
            Some(dir) if dir.first() == Some(&b'/') => (Some(join(&dir, name)), PathOrigin::ProcFd),
            _ => (None, PathOrigin::Unresolved),
        }
    }

    /// Learn from a created `path`: a new directory, and the parent directory's dev:inode.
    fn learn_created(&mut self, p: &PathRec<'_>, parent: Option<&PathRec<'_>>, path: &[u8]) {
        // A directory just created is a directory later dirfd calls may use.
        if p.mode.is_some_and(|m| m & 0o170000 == 0o040000)
            && let Some(k) = dev_ino(p)
        {
            self.dirs.learn(k, path);
        }
        if let (Some(parent), Some(slash)) = (parent, path.iter().rposition(|&c| c == b'/'))
            && let Some(k) = dev_ino(parent)
        {
            let dir = if slash == 0 {
                &b"/"[..]
            } else {
                &path[..slash]
            };
            self.dirs.learn(k, dir);
        }
    }

    /// Remember the directories a CWD-relative call names: a PARENT record's name is the
    /// parent directory, and a NORMAL record of a directory (an `open(".")`) is that directory.
    fn learn_dirs(&mut self, paths: &[PathRec<'_>], cwd: Option<&[u8]>) {
        for p in paths {
            let is_dir = p.mode.is_some_and(|m| m & 0o170000 == 0o040000);
            let useful = p.nametype == b"PARENT" || (p.nametype == b"NORMAL" && is_dir);
            if let (true, Some(name), Some(k)) = (useful, &p.name, dev_ino(p))
                && let Some(abs) = absolute(cwd, name)
            {
                self.dirs.learn(k, &abs);
            }
        }
    }

    fn paths<'a>(&mut self, ev: &'a Event) -> Vec<PathRec<'a>> {
        let mut v = Vec::new();
        for (line, r) in ev.records() {
            if r.rtype != num::PATH {
                continue;
            }
            if v.len() == MAX_PATHS_PER_EVENT {
                // Only a crafted log gets here (a syscall names a handful of paths):
                // counted and reported once, with its line, like any unreadable field.
                self.issue(
                    line,
                    "PATH",
                    "item",
                    format!(
                        "the event has more than {MAX_PATHS_PER_EVENT} PATH records; the rest \
                         are ignored"
                    ),
                );
                break;
            }
            let mut p = PathRec {
                line,
                ..Default::default()
            };
            // The kernel writes these seven before the cap_* fields that end the record:
            // once all are read, the rest is skipped (a third of a PATH record's fields).
            let mut seen = 0u8;
            for (k, val) in r.fields() {
                let bit = match k {
                    b"name" => {
                        p.had_name = true;
                        p.name = self.decode(line, "PATH", "name", val);
                        1
                    }
                    b"nametype" => {
                        p.nametype = val.raw;
                        2
                    }
                    b"inode" => {
                        p.inode = ascii(val);
                        4
                    }
                    b"dev" => {
                        p.dev = ascii(val);
                        8
                    }
                    b"mode" => {
                        p.mode = match val.as_octal_u32() {
                            Ok(m) => Some(m),
                            Err(e) => {
                                self.issue(line, "PATH", "mode", e);
                                None
                            }
                        };
                        16
                    }
                    b"ouid" => {
                        p.ouid = ascii(val);
                        32
                    }
                    b"ogid" => {
                        p.ogid = ascii(val);
                        64
                    }
                    _ => 0,
                };
                seen |= bit;
                if seen == 127 {
                    break;
                }
            }
            v.push(p);
        }
        v
    }

    /// The per-event fields every creation in the event shares.
    fn base<'a>(
        &mut self,
        ev: &'a Event,
        sys: &Record<'a>,
        line: u64,
        arch: Arch,
        syscall: &'static str,
        enrich: &mut dyn Enricher,
    ) -> FileEvent<'a> {
        let mut fe = FileEvent::empty(ev, arch, syscall);
        let small = |v: Value<'_>| v.as_u64().ok().and_then(|n| u32::try_from(n).ok());
        for (k, v) in sys.fields() {
            match k {
                b"exit" => fe.exit = ascii(v),
                b"pid" => fe.pid = small(v),
                b"ppid" => fe.ppid = small(v),
                b"ses" => fe.ses = small(v).filter(|&s| s != u32::MAX),
                b"tty" => fe.tty = ascii(v).filter(|t| *t != "(none)"),
                b"uid" => fe.uid = self.id(line, "uid", v),
                b"euid" => fe.euid = self.id(line, "euid", v),
                // 4294967295 is "unset" (no login), which Auditbeat leaves out too.
                b"auid" => fe.auid = self.id(line, "auid", v).filter(|a| *a != UNSET_ID),
                b"suid" => fe.suid = self.id(line, "suid", v),
                b"fsuid" => fe.fsuid = self.id(line, "fsuid", v),
                b"gid" => fe.gid = self.id(line, "gid", v),
                b"egid" => fe.egid = self.id(line, "egid", v),
                b"comm" => fe.comm = self.decode(line, "SYSCALL", "comm", v).map(Text::from_cow),
                b"exe" => fe.exe = self.decode(line, "SYSCALL", "exe", v).map(Text::from_cow),
                b"key" => fe.key = self.decode(line, "SYSCALL", "key", v).map(Text::from_cow),
                _ => {}
            }
        }
        Self::names(ev, sys, &mut fe, enrich);
        fe.process_name = process_name(fe.comm.as_ref(), fe.exe.as_ref());
        if let Some(ppid) = fe.ppid {
            (fe.context.parent_name, fe.context.parent_executable) = enrich.parent(ppid);
        }
        self.proctitle(ev, &mut fe);
        fe
    }

    /// `user.name`, `group.name` and `host.name`: the log's own (ENRICHED names, `node=`),
    /// else this host's, and this host's names only for this host's records.
    fn names<'a>(
        ev: &'a Event,
        sys: &Record<'a>,
        fe: &mut FileEvent<'a>,
        enrich: &mut dyn Enricher,
    ) {
        // ENRICHED logs carry the names as the logging host resolved them.
        for (k, v) in sys.enriched_fields() {
            match k {
                b"UID" => fe.user_name = Some(Text::from_cow(Cow::Borrowed(v.unquoted()))),
                b"GID" => fe.group_name = Some(Text::from_cow(Cow::Borrowed(v.unquoted()))),
                _ => {}
            }
        }
        // Names looked up here are this host's: never give them to another host's records.
        let local = match ev.node.as_deref() {
            None => true,
            Some(n) => enrich.host_name().is_some_and(|h| h.as_bytes() == n),
        };
        if local
            && fe.user_name.is_none()
            && let Some(uid) = fe.uid.and_then(|u| u.parse().ok())
        {
            fe.user_name = enrich.user_name(uid).map(|n| Text {
                text: Cow::Owned(n),
                raw: None,
            });
        }
        if local
            && fe.group_name.is_none()
            && let Some(gid) = fe.gid.and_then(|g| g.parse().ok())
        {
            fe.group_name = enrich.group_name(gid).map(|n| Text {
                text: Cow::Owned(n),
                raw: None,
            });
        }
        fe.host_name = match ev.node.as_deref() {
            Some(n) => Some(Text::from_cow(Cow::Borrowed(n))),
            None => enrich.host_name().map(|h| Text {
                text: Cow::Owned(h.to_owned()),
                raw: None,
            }),
        };
    }

    /// `process.args` and `process.title` from the PROCTITLE record.
    fn proctitle<'a>(&mut self, ev: &'a Event, fe: &mut FileEvent<'a>) {
        if let Some((pline, pt)) = ev.records().find(|(_, r)| r.rtype == num::PROCTITLE)
            && let Some(v) = pt.get(b"proctitle")
            && let Some(title) = self.decode(pline, "PROCTITLE", "proctitle", v)
        {
            fe.args = split_argv(&title)
                .map(|a| Text::from_vec(a.to_vec()))
                .collect();
            let joined: Vec<u8> = {
                let t = title.strip_suffix(b"\0").unwrap_or(&title);
                t.iter().map(|&c| if c == 0 { b' ' } else { c }).collect()
            };
            fe.title = Some(Text::from_vec(joined));
        }
    }
}

/// The fields that decide whether an event is a creation at all: arch, syscall number and
/// success, from one pass over the SYSCALL record.
fn quick_pass(sys: &Record<'_>, again: &KeySearch) -> (Option<Arch>, Option<u32>, bool) {
    let mut arch = None;
    let mut nr = None;
    let mut success = true;
    // Which of the three were read; 8: read the whole record (one of them comes again).
    let mut read = 0u8;
    let mut fields = sys.fields();
    while let Some((k, v)) = fields.next() {
        match k {
            b"arch" => {
                arch = v.as_hex_u64().ok().and_then(Arch::from_audit);
                read |= 1;
            }
            b"syscall" => {
                nr = v.as_u64().ok().and_then(|n| u32::try_from(n).ok());
                read |= 2;
            }
            b"success" => {
                success = v.raw != b"no";
                read |= 4;
            }
            _ => {}
        }
        // The kernel writes the three first, and most events are no creation: the rest of
        // the record matters only if it names one of them again (the last one counts),
        // which a search of its bytes rules out faster than reading its fields.
        if read == 7 {
            if !again.found_in(fields.rest()) {
                break;
            }
            read = 8;
        }
    }
    (arch, nr, success)
}

/// Finds `arch=`, `syscall=` and `success=` in a record's bytes.
struct KeySearch([memchr::memmem::Finder<'static>; 3]);

impl KeySearch {
    fn new() -> KeySearch {
        use memchr::memmem::Finder;
        KeySearch([
            Finder::new(b"arch="),
            Finder::new(b"syscall="),
            Finder::new(b"success="),
        ])
    }

    /// Whether `rest` could hold another `arch`, `syscall` or `success` field: a field's
    /// key and its `=` are in the record's bytes as they are.
    fn found_in(&self, rest: &[u8]) -> bool {
        self.0.iter().any(|f| f.find(rest).is_some())
    }
}

/// An open call whose flags ask for writing (O_WRONLY or O_RDWR, or O_TRUNC). openat2
/// passes its flags in a struct the record does not show, so it is not judged.
fn opens_for_write(sys: &Record<'_>, name: &str) -> bool {
    let flags = match name {
        "open" => fe_arg(sys, b"a1"),
        "openat" => fe_arg(sys, b"a2"),
        // creat always writes, but it also always creates or truncates: O_TRUNC.
        "creat" => return true,
        _ => None,
    };
    // O_ACCMODE = 3, O_TRUNC = 0o1000.
    flags.is_some_and(|f| f & 3 != 0 || f & 0o1000 != 0)
}

fn fe_arg(sys: &Record<'_>, name: &[u8]) -> Option<u64> {
    sys.get(name).and_then(|v| v.as_hex_u64().ok())
}

fn dev_ino(p: &PathRec<'_>) -> Option<(u64, u64)> {
    let dev = parse_dev(p.dev?.as_bytes())?;
    let ino = p.inode?.parse().ok()?;
    Some((dev, ino))
}

/// `process.name` is comm; when the kernel cut comm at 15 bytes and the executable's
/// basename extends it, the basename (DEVELOPERS.md).
fn process_name<'a>(comm: Option<&Text<'a>>, exe: Option<&Text<'a>>) -> Option<Text<'a>> {
    let comm = comm?;
    if comm.bytes().len() == 15
        && let Some(exe) = exe
    {
        let base = exe
            .bytes()
            .rsplit(|&c| c == b'/')
            .next()
            .unwrap_or_default();
        if base.len() > 15 && base.starts_with(comm.bytes()) {
            return Some(Text::from_vec(base.to_vec()));
        }
    }
    Some(comm.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Correlator, CorrelatorConfig};

    type Got = (Option<String>, PathOrigin, String, Option<String>);

    /// Run log text through the correlator and the builder; return what came out.
    fn build(log: &str, enrich: &mut dyn Enricher) -> (Vec<Got>, BuildStats) {
        let mut c = Correlator::new(CorrelatorConfig::default());
        let mut b = Builder::new();
        let mut got = Vec::new();
        let mut on_event = |e: &Event| {
            b.creations(e, enrich, &mut |fe: &mut FileEvent<'_>| {
                got.push((
                    fe.path.as_ref().map(|p| p.as_str().to_owned()),
                    fe.path_origin,
                    fe.process_name
                        .as_ref()
                        .map(|t| t.as_str().to_owned())
                        .unwrap_or_default(),
                    fe.user_name.as_ref().map(|t| t.as_str().to_owned()),
                ))
            })
        };
        for (i, line) in log.lines().enumerate() {
            let r = Record::from_log_line(line.as_bytes()).unwrap();
            c.push(&r, i as u64 + 1, 0, &mut on_event);
        }
        c.flush(&mut on_event);
        (got, b.stats().clone())
    }

    const SFTP: &str = "type=SYSCALL msg=audit(1.000:10): arch=c000003e syscall=257 success=yes exit=3 a0=ffffff9c a1=55 a2=241 a3=1a4 items=2 ppid=99 pid=100 auid=1001 uid=1001 gid=1001 euid=1001 suid=1001 fsuid=1001 egid=1001 sgid=1001 fsgid=1001 tty=(none) ses=3 comm=\"sftp-server\" exe=\"/usr/lib/openssh/sftp-server\" key=(null)\x1dARCH=x86_64 SYSCALL=openat UID=\"alice\" GID=\"alice\"
type=CWD msg=audit(1.000:10): cwd=\"/home/alice\"
type=PATH msg=audit(1.000:10): item=0 name=\"../../tmp/\" inode=2 dev=fe:00 mode=041777 ouid=0 ogid=0 nametype=PARENT
type=PATH msg=audit(1.000:10): item=1 name=\"../../tmp/x.tar.gz\" inode=77 dev=fe:00 mode=0100644 ouid=1001 ogid=1001 nametype=CREATE
type=PROCTITLE msg=audit(1.000:10): proctitle=2F7573722F6C69622F6F70656E7373682F736674702D736572766572
type=EOE msg=audit(1.000:10): ";

    #[test]
    fn relative_name_with_dotdot_joins_cwd() {
        let (got, st) = build(SFTP, &mut NoEnrich);
        assert_eq!(
            got,
            vec![(
                Some("/tmp/x.tar.gz".into()),
                PathOrigin::Cwd,
                "sftp-server".into(),
                Some("alice".into())
            )]
        );
        assert_eq!(st.creations, 1);
    }

    #[test]
    fn fields_of_a_creation() {
        let mut c = Correlator::new(CorrelatorConfig::default());
        let mut b = Builder::new();
        let mut seen = 0;
        for (i, line) in SFTP.lines().enumerate() {
            let r = Record::from_log_line(line.as_bytes()).unwrap();
            c.push(&r, i as u64 + 1, 0, &mut |e: &Event| {
                b.creations(e, &mut NoEnrich, &mut |fe: &mut FileEvent<'_>| {
                    seen += 1;
                    assert_eq!(fe.syscall, "openat");
                    assert_eq!(fe.uid, Some("1001"));
                    assert_eq!(fe.auid, Some("1001"));
                    assert_eq!(fe.ses, Some(3));
                    assert_eq!(fe.pid, Some(100));
                    assert_eq!(fe.ppid, Some(99));
                    assert_eq!(fe.file_type(), Some("file"));
                    assert_eq!(fe.mode_string().as_deref(), Some("0644"));
                    assert_eq!(fe.file_name.as_ref().unwrap().as_str(), "x.tar.gz");
                    assert_eq!(fe.directory.as_ref().unwrap().as_str(), "/tmp");
                    assert_eq!(fe.extension.as_ref().unwrap().as_str(), "gz");
                    assert_eq!(
                        fe.title.as_ref().unwrap().as_str(),
                        "/usr/lib/openssh/sftp-server"
                    );
                    assert_eq!(fe.args.len(), 1);
                    assert_eq!(fe.group_name.as_ref().unwrap().as_str(), "alice");
                    assert_eq!(fe.kernel_name.as_str(), "../../tmp/x.tar.gz");
                })
            });
        }
        assert_eq!(seen, 1);
    }

    fn dirfd_event(serial: u32, a0: &str, parent_ino: u32, name: &str) -> String {
        format!(
            "type=SYSCALL msg=audit(2.000:{serial}): arch=c000003e syscall=257 success=yes exit=4 a0={a0} a1=1 a2=c2 a3=180 items=2 ppid=1 pid=200 auid=1001 uid=1001 gid=1001 euid=1001 suid=1001 fsuid=1001 egid=1001 sgid=1001 fsgid=1001 tty=(none) ses=5 comm=\"rsync\" exe=\"/usr/bin/rsync\" key=(null)
type=CWD msg=audit(2.000:{serial}): cwd=\"/home/alice\"
type=PATH msg=audit(2.000:{serial}): item=0 name=\"/home/alice\" inode={parent_ino} dev=fe:00 mode=041777 ouid=0 ogid=0 nametype=PARENT
type=PATH msg=audit(2.000:{serial}): item=1 name=\"{name}\" inode=99 dev=fe:00 mode=0100600 ouid=1001 ogid=1001 nametype=CREATE
type=EOE msg=audit(2.000:{serial}): "
        )
    }

    /// Issue 15: one pass over any number of PATH records, each CREATE joined to the nearest
    /// PARENT before it; an event with more than MAX_PATHS_PER_EVENT is cut there and
    /// reported once.
    #[test]
    fn many_path_records_are_read_once_and_bounded() {
        let s = "1764294000.000:30";
        let mut log = format!(
            "type=SYSCALL msg=audit({s}): arch=c000003e syscall=257 success=yes exit=3 \
             a0=ffffff9c a1=55 a2=241 a3=1a4 items=9 ppid=99 pid=100 auid=1001 uid=1001 \
             gid=1001 euid=1001 suid=1001 fsuid=1001 egid=1001 sgid=1001 fsgid=1001 tty=(none) \
             ses=3 comm=\"scp\" exe=\"/usr/bin/scp\" key=(null)\n\
             type=CWD msg=audit({s}): cwd=\"/home/alice\"\n"
        );
        let path = |item: usize, name: &str, kind: &str| {
            format!(
                "type=PATH msg=audit({s}): item={item} name=\"{name}\" inode={item} dev=fe:00 \
                 mode=0100644 ouid=1001 ogid=1001 nametype={kind}\n"
            )
        };
        log.push_str(&path(0, "/tmp/", "PARENT"));
        for i in 1..MAX_PATHS_PER_EVENT + 5 {
            log.push_str(&path(i, &format!("x{i}"), "CREATE"));
        }
        log.push_str(&format!("type=EOE msg=audit({s}): \n"));
        let (got, st) = build(&log, &mut NoEnrich);
        assert_eq!(got.len(), MAX_PATHS_PER_EVENT - 1);
        assert_eq!(got[0].0.as_deref(), Some("/home/alice/x1"));
        assert_eq!(st.malformed_fields, 1);
    }

    #[test]
    fn dirfd_relative_name_is_never_joined_to_cwd() {
        // The PARENT's name is the CWD (kernel quirk), but dirfd 3 is /tmp (inode 2).
        let (got, st) = build(&dirfd_event(20, "3", 2, "drop.bin"), &mut NoEnrich);
        assert_eq!(
            got,
            vec![(None, PathOrigin::Unresolved, "rsync".into(), None)]
        );
        assert_eq!(st.unresolved_paths, 1);
    }

    #[test]
    fn dirfd_relative_name_resolves_through_learnt_inode() {
        // First an AT_FDCWD creation in /tmp teaches us inode 2 = /tmp.
        let log = format!("{SFTP}\n{}", dirfd_event(21, "3", 2, "drop.bin"));
        let (got, _) = build(&log, &mut NoEnrich);
        assert_eq!(
            got[1],
            (
                Some("/tmp/drop.bin".into()),
                PathOrigin::DirCache,
                "rsync".into(),
                None
            )
        );
    }

    struct FakeProc;
    impl Enricher for FakeProc {
        fn fd_path(&mut self, pid: u32, fd: u32) -> Option<Vec<u8>> {
            (pid == 200 && fd == 3).then(|| b"/var/tmp".to_vec())
        }
        fn user_name(&mut self, uid: u32) -> Option<String> {
            (uid == 1001).then(|| "local-alice".into())
        }
    }

    #[test]
    fn dirfd_relative_name_resolves_through_proc_fd() {
        let (got, _) = build(&dirfd_event(22, "3", 5, "x"), &mut FakeProc);
        assert_eq!(
            got,
            vec![(
                Some("/var/tmp/x".into()),
                PathOrigin::ProcFd,
                "rsync".into(),
                Some("local-alice".into())
            )]
        );
    }

    #[test]
    fn at_fdcwd_in_64_bit_form_is_cwd() {
        let (got, _) = build(&dirfd_event(23, "ffffffffffffff9c", 5, "y"), &mut NoEnrich);
        assert_eq!(
            got,
            vec![(
                Some("/home/alice/y".into()),
                PathOrigin::Cwd,
                "rsync".into(),
                None
            )]
        );
    }

    #[test]
    fn rename_and_overwrite_are_not_creations() {
        let rename = "type=SYSCALL msg=audit(3.000:30): arch=c000003e syscall=82 success=yes exit=0 a0=1 a1=2 a2=0 a3=0 items=4 ppid=1 pid=2 auid=1001 uid=1001 gid=1001 euid=1001 suid=1001 fsuid=1001 egid=1001 sgid=1001 fsgid=1001 tty=(none) ses=5 comm=\"sftp-server\" exe=\"/usr/lib/openssh/sftp-server\" key=(null)
type=PATH msg=audit(3.000:30): item=0 name=\"/tmp/\" inode=2 dev=fe:00 mode=041777 nametype=PARENT
type=PATH msg=audit(3.000:30): item=1 name=\"/tmp/\" inode=2 dev=fe:00 mode=041777 nametype=PARENT
type=PATH msg=audit(3.000:30): item=2 name=\"/tmp/a\" inode=9 dev=fe:00 mode=0100644 nametype=DELETE
type=PATH msg=audit(3.000:30): item=3 name=\"/tmp/b\" inode=9 dev=fe:00 mode=0100644 nametype=CREATE
type=EOE msg=audit(3.000:30): ";
        let overwrite = "type=SYSCALL msg=audit(3.000:31): arch=c000003e syscall=257 success=yes exit=3 a0=ffffff9c a1=2 a2=241 a3=0 items=2 ppid=1 pid=2 auid=1001 uid=1001 gid=1001 euid=1001 suid=1001 fsuid=1001 egid=1001 sgid=1001 fsgid=1001 tty=(none) ses=5 comm=\"scp\" exe=\"/usr/bin/scp\" key=(null)
type=PATH msg=audit(3.000:31): item=0 name=\"/tmp/b\" inode=9 dev=fe:00 mode=0100644 nametype=NORMAL
type=EOE msg=audit(3.000:31): ";
        let (got, st) = build(&format!("{rename}\n{overwrite}"), &mut NoEnrich);
        assert!(got.is_empty(), "{got:?}");
        assert_eq!(st.creations, 0);
    }

    #[test]
    fn i386_numbers_are_used_for_i386() {
        // i386 syscall 83 is symlink; on x86_64, 83 is mkdir. Both are creations, with different names.
        assert_eq!(creation_syscall(Arch::I386, 83), Some(("symlink", false)));
        assert_eq!(creation_syscall(Arch::X86_64, 83), Some(("mkdir", false)));
        assert_eq!(creation_syscall(Arch::I386, 295), Some(("openat", true)));
        assert_eq!(creation_syscall(Arch::X86_64, 295), None);
        assert_eq!(creation_syscall(Arch::I386, 38), None); // rename
        assert_eq!(creation_syscall(Arch::X86_64, 82), None); // rename
        assert_eq!(creation_syscall(Arch::X86_64, 437), Some(("openat2", true)));
    }

    #[test]
    fn truncated_comm_takes_the_executable_basename() {
        let c = Text::from_vec(b"very-long-tool-".to_vec());
        let e = Text::from_vec(b"/opt/bin/very-long-tool-name".to_vec());
        assert_eq!(
            process_name(Some(&c), Some(&e)).unwrap().as_str(),
            "very-long-tool-name"
        );
        let e2 = Text::from_vec(b"/usr/bin/other".to_vec());
        assert_eq!(
            process_name(Some(&c), Some(&e2)).unwrap().as_str(),
            "very-long-tool-"
        );
        let short = Text::from_vec(b"ftp".to_vec());
        let tnftp = Text::from_vec(b"/usr/bin/tnftp".to_vec());
        assert_eq!(
            process_name(Some(&short), Some(&tnftp)).unwrap().as_str(),
            "ftp"
        );
    }

    #[test]
    fn normalize_paths() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"/tmp/./a//b/../c", b"/tmp/a/c"),
            (b"/../../tmp", b"/tmp"),
            (b"/", b"/"),
            (b"/tmp/", b"/tmp"),
            (b"/a/b/..", b"/a"),
        ];
        for (i, o) in cases {
            assert_eq!(normalize(i), o.to_vec(), "{}", String::from_utf8_lossy(i));
        }
    }

    #[test]
    fn non_utf8_is_kept_losslessly() {
        let t = Text::from_vec(b"/tmp/caf\xe9".to_vec());
        assert_eq!(t.as_str(), "/tmp/caf\u{fffd}");
        assert_eq!(t.bytes(), b"/tmp/caf\xe9");
        let ok = Text::from_vec("/tmp/café".as_bytes().to_vec());
        assert!(ok.raw.is_none());
    }

    #[test]
    fn malformed_fields_are_counted_with_their_line() {
        let bad = SFTP
            .replace("name=\"../../tmp/x.tar.gz\"", "name=2F7")
            .replace("uid=1001 gid", "uid=x gid");
        let mut c = Correlator::new(CorrelatorConfig::default());
        let mut b = Builder::new();
        for (i, line) in bad.lines().enumerate() {
            let r = Record::from_log_line(line.as_bytes()).unwrap();
            c.push(&r, i as u64 + 1, 0, &mut |e: &Event| {
                b.creations(e, &mut NoEnrich, &mut |_| {})
            });
        }
        let issues = b.take_issues();
        assert!(
            issues.iter().any(|i| i.line == 4 && i.field == "name"),
            "{issues:?}"
        );
        assert!(
            issues.iter().any(|i| i.line == 1 && i.field == "uid"),
            "{issues:?}"
        );
        assert_eq!(b.stats().malformed_fields, 2);
    }

    #[test]
    fn schema_knows_the_seed_rule_fields() {
        for f in [
            "host.os.type",
            "event.action",
            "process.name",
            "file.path",
            "user.id",
        ] {
            assert!(FileSchema.lookup(f).is_some(), "{f}");
        }
        assert!(FileSchema.lookup("nope.field").is_none());
        let rule = crate::rule::try_builtin(&FileSchema)
            .expect("the seed rule compiles against the real schema");
        assert_eq!(rule.meta.rule_id, "3e528511-7316-4a6e-83da-61b5f1c07fd4");
    }

    /// A schema field that an event could never fill would make a rule naming it silently
    /// false; every field must be provided, except those only the live daemon adds.
    #[test]
    fn every_schema_field_is_provided() {
        let live_only = [
            "host.name",
            "process.parent.name",
            "process.parent.executable",
            "source.ip",
            "source.address",
            // Renames only; `changes_tests::rename_from_a_real_capture` checks them.
            "file.Ext.original.path",
            "file.Ext.original.name",
            "file.Ext.original.extension",
            // The detector's host, answered by the detector (`detector::OnHost`).
            "host.id",
        ];
        let log = SFTP.replace("key=(null)", "key=\"k\"");
        let mut c = Correlator::new(CorrelatorConfig::default());
        let mut b = Builder::new();
        let mut checked = 0;
        for line in log.lines() {
            let r = Record::from_log_line(line.as_bytes()).unwrap();
            c.push(&r, 1, 0, &mut |e: &Event| {
                b.creations(e, &mut NoEnrich, &mut |fe| {
                    for (i, (name, _)) in FIELDS.iter().enumerate() {
                        if !live_only.contains(name) {
                            assert!(
                                fe.field(FieldId(i as u16)).is_some(),
                                "{name} is in the schema but never provided"
                            );
                            checked += 1;
                        }
                    }
                })
            });
        }
        assert_eq!(checked, FIELDS.len() - live_only.len());
    }

    #[test]
    fn seed_rule_on_real_shaped_events() {
        let rule = crate::rule::builtin(&FileSchema);
        let mut c = Correlator::new(CorrelatorConfig::default());
        let mut b = Builder::new();
        let mut verdicts = Vec::new();
        let root = SFTP.replace(" uid=1001 ", " uid=0 ");
        let cp = SFTP.replace("comm=\"sftp-server\"", "comm=\"cp\"");
        let outside = SFTP.replace("../../tmp/x.tar.gz", "x.tar.gz");
        for (n, log) in [SFTP, &root, &cp, &outside].iter().enumerate() {
            for line in log.lines() {
                let line = line.replace("(1.000:10)", &format!("(1.000:{})", 10 + n));
                let r = Record::from_log_line(line.as_bytes()).unwrap();
                c.push(&r, 1, 0, &mut |e: &Event| {
                    b.creations(e, &mut NoEnrich, &mut |fe| {
                        verdicts.push(rule.query.matches(fe))
                    })
                });
            }
        }
        assert_eq!(verdicts, vec![true, false, false, false]);
    }

    /// `wwatchd.parent.world_writable` comes from the PARENT record's mode, and the by-mode
    /// rule alerts on a world-writable directory outside the other rules' paths only; the
    /// three built-in rules never alert on the same creation.
    #[test]
    fn by_mode_rule_reads_the_parent_mode() {
        let mut rules = crate::rule::try_builtins(&FileSchema).unwrap();
        rules.push(crate::rule::try_builtin_by_mode(&FileSchema).unwrap());
        let f = FileSchema
            .lookup("wwatchd.parent.world_writable")
            .unwrap()
            .0;
        let crash = SFTP
            .replace("../../tmp/x.tar.gz", "/var/crash/x.tar.gz")
            .replace("../../tmp/", "/var/crash/");
        let crash_755 = crash.replace("mode=041777", "mode=040755");
        let crash_session = crash.replace("comm=\"sftp-server\"", "comm=\"sshd-session\"");
        let crash_root = crash.replace(" uid=1001 ", " uid=0 ");
        let crash_cp = crash.replace("comm=\"sftp-server\"", "comm=\"cp\"");
        let no_parent = crash
            .lines()
            .filter(|l| !l.contains("nametype=PARENT"))
            .collect::<Vec<_>>()
            .join("\n");
        let cases: [(&str, Option<bool>, [bool; 3]); 7] = [
            (SFTP, Some(true), [true, false, false]), // /tmp: Elastic's rule only
            (&crash, Some(true), [false, false, true]),
            (&crash_755, Some(false), [false, false, false]),
            (&crash_session, Some(true), [false, false, true]),
            (&crash_root, Some(true), [false, false, false]),
            (&crash_cp, Some(true), [false, false, false]),
            (&no_parent, None, [false, false, false]),
        ];
        for (n, (log, ww, want)) in cases.iter().enumerate() {
            let mut c = Correlator::new(CorrelatorConfig::default());
            let mut b = Builder::new();
            let mut got = Vec::new();
            for line in log.lines() {
                let r = Record::from_log_line(line.as_bytes()).unwrap();
                c.push(&r, 1, 0, &mut |e: &Event| {
                    b.creations(e, &mut NoEnrich, &mut |fe| {
                        let v = match fe.field(f) {
                            Some(FieldValue::Bool(b)) => Some(b),
                            _ => None,
                        };
                        let m: Vec<bool> = rules.iter().map(|r| r.query.matches(fe)).collect();
                        got.push((v, m));
                    })
                });
            }
            assert_eq!(got, vec![(*ww, want.to_vec())], "case {n}");
        }
    }
}

/// Renames, deletions and modifications (issue 11).
#[cfg(test)]
mod changes_tests {
    use super::*;
    use crate::event::{Correlator, CorrelatorConfig};

    /// A real capture (tools/capture.py, Linux 6.18): sftp renames a file in /tmp.
    const NEG_RENAME: &str = include_str!("../../../tests/fixtures/neg_rename.log");

    fn all() -> Kinds {
        let mut k = Kinds::default();
        for a in Action::ALL {
            k.insert(a);
        }
        k
    }

    /// (action, path, original path, syscall) of every change in `log`.
    fn changes_of(log: &str, kinds: Kinds) -> Vec<(String, String, Option<String>, String)> {
        let mut c = Correlator::new(CorrelatorConfig::default());
        let mut b = Builder::new();
        let mut out = Vec::new();
        let mut on = |e: &Event| {
            b.changes(e, &mut NoEnrich, kinds, &mut |fe| {
                out.push((
                    format!("{}/{}", fe.action.as_str(), fe.action.event_type()),
                    fe.path
                        .as_ref()
                        .map(|p| p.as_str().to_owned())
                        .unwrap_or_default(),
                    fe.original
                        .as_ref()
                        .and_then(|o| o.path.as_ref())
                        .map(|p| p.as_str().to_owned()),
                    fe.syscall.to_owned(),
                ))
            })
        };
        for line in log.lines() {
            if let Ok(r) = Record::from_log_line(line.as_bytes()) {
                c.push(&r, 1, 0, &mut on);
            }
        }
        c.flush(&mut on);
        out
    }

    #[test]
    fn rename_from_a_real_capture() {
        let got = changes_of(NEG_RENAME, all());
        let renames: Vec<_> = got.iter().filter(|g| g.0.starts_with("rename")).collect();
        assert_eq!(
            renames,
            [&(
                "rename/change".to_owned(),
                "/tmp/wwcap-renamed.bin".to_owned(),
                Some("/tmp/wwcap-rename-src.bin".to_owned()),
                "rename".to_owned()
            )]
        );
        // Every field of the schema is there on a rename, the rename source included.
        let mut c = Correlator::new(CorrelatorConfig::default());
        let mut b = Builder::new();
        let mut seen = 0;
        let mut on = |e: &Event| {
            b.changes(e, &mut NoEnrich, all(), &mut |fe| {
                if fe.action != Action::Rename {
                    return;
                }
                seen += 1;
                let get = |n: &str| {
                    FileSchema.lookup(n).and_then(|(id, _)| match fe.field(id) {
                        Some(FieldValue::Str(s)) => Some(s.to_owned()),
                        _ => None,
                    })
                };
                assert_eq!(
                    get("file.Ext.original.name").as_deref(),
                    Some("wwcap-rename-src.bin")
                );
                assert_eq!(get("file.Ext.original.extension").as_deref(), Some("bin"));
                assert_eq!(get("file.name").as_deref(), Some("wwcap-renamed.bin"));
                assert_eq!(get("event.action").as_deref(), Some("rename"));
                assert_eq!(get("event.type").as_deref(), Some("change"));
                assert_eq!(get("process.name").as_deref(), Some("sftp-server"));
            })
        };
        for line in NEG_RENAME.lines() {
            if let Ok(r) = Record::from_log_line(line.as_bytes()) {
                c.push(&r, 1, 0, &mut on);
            }
        }
        c.flush(&mut on);
        assert_eq!(seen, 1);
        // Only what a rule asks for is built.
        assert!(changes_of(NEG_RENAME, Kinds::CREATION).is_empty());
    }

    /// Records in the layout the kernel writes (PARENT then DELETE; a NORMAL for chmod).
    const UNLINKAT_AND_CHMOD: &str = "type=SYSCALL msg=audit(2.000:20): arch=c000003e syscall=263 success=yes exit=0 a0=ffffff9c a1=55 a2=0 a3=0 items=2 ppid=1 pid=200 auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 egid=1000 sgid=1000 fsgid=1000 tty=pts0 ses=4 comm=\"rm\" exe=\"/usr/bin/rm\" key=(null)
type=CWD msg=audit(2.000:20): cwd=\"/home/u\"
type=PATH msg=audit(2.000:20): item=0 name=\".ssh/\" inode=5 dev=fe:00 mode=040700 ouid=1000 ogid=1000 nametype=PARENT
type=PATH msg=audit(2.000:20): item=1 name=\".ssh/authorized_keys\" inode=6 dev=fe:00 mode=0100600 ouid=1000 ogid=1000 nametype=DELETE
type=EOE msg=audit(2.000:20):
type=SYSCALL msg=audit(2.000:21): arch=40000003 syscall=15 success=yes exit=0 a0=8000 a1=1ed a2=0 a3=0 items=1 ppid=1 pid=201 auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 egid=1000 sgid=1000 fsgid=1000 tty=pts0 ses=4 comm=\"chmod\" exe=\"/usr/bin/chmod\" key=(null)
type=CWD msg=audit(2.000:21): cwd=\"/\"
type=PATH msg=audit(2.000:21): item=0 name=\"/etc/shadow\" inode=7 dev=fe:00 mode=0100640 ouid=0 ogid=42 nametype=NORMAL
type=EOE msg=audit(2.000:21):
type=SYSCALL msg=audit(2.000:22): arch=c000003e syscall=257 success=yes exit=3 a0=ffffff9c a1=55 a2=0 a3=0 items=1 ppid=1 pid=202 auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 egid=1000 sgid=1000 fsgid=1000 tty=pts0 ses=4 comm=\"cat\" exe=\"/usr/bin/cat\" key=(null)
type=CWD msg=audit(2.000:22): cwd=\"/\"
type=PATH msg=audit(2.000:22): item=0 name=\"/etc/shadow\" inode=7 dev=fe:00 mode=0100640 ouid=0 ogid=42 nametype=NORMAL
type=EOE msg=audit(2.000:22):
type=SYSCALL msg=audit(2.000:23): arch=c000003e syscall=257 success=yes exit=3 a0=ffffff9c a1=55 a2=201 a3=0 items=1 ppid=1 pid=203 auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 egid=1000 sgid=1000 fsgid=1000 tty=pts0 ses=4 comm=\"tee\" exe=\"/usr/bin/tee\" key=(null)
type=CWD msg=audit(2.000:23): cwd=\"/\"
type=PATH msg=audit(2.000:23): item=0 name=\"/etc/shadow\" inode=7 dev=fe:00 mode=0100640 ouid=0 ogid=42 nametype=NORMAL
type=EOE msg=audit(2.000:23):
";

    #[test]
    fn deletion_and_modification() {
        let got = changes_of(UNLINKAT_AND_CHMOD, all());
        assert_eq!(
            got,
            [
                (
                    "deletion/deletion".to_owned(),
                    "/home/u/.ssh/authorized_keys".to_owned(),
                    None,
                    "unlinkat".to_owned()
                ),
                (
                    "modification/change".to_owned(),
                    "/etc/shadow".to_owned(),
                    None,
                    "chmod".to_owned()
                ),
                // openat(O_RDONLY) is no modification; openat(O_WRONLY|O_TRUNC) is.
                (
                    "modification/change".to_owned(),
                    "/etc/shadow".to_owned(),
                    None,
                    "openat".to_owned()
                ),
            ]
        );
        let mut only_deletions = Kinds::default();
        only_deletions.insert(Action::Deletion);
        assert_eq!(changes_of(UNLINKAT_AND_CHMOD, only_deletions).len(), 1);
    }
}

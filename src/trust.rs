//! trust: the one check of whether a file or directory may steer wwatchd.
//!
//! Whoever can write the configuration, a rule file or the spool decides what wwatchd
//! alerts on, which exceptions hide what, where its status goes and what it replays as
//! alerts. So before anything is read from such a path:
//!
//! - it is opened **once**, with `O_NOFOLLOW`, and checked with `fstat` on that descriptor;
//!   what is read is what was checked (no check-then-use race);
//! - it must be a regular file (a directory, for directories), **not a symlink**;
//! - its owner must be root or the user wwatchd runs as (for the spool and the state
//!   directory: that user's own state);
//! - it must be writable by neither group nor others;
//! - every directory above it, up to `/`, must be owned by root or that user. The directory
//!   that holds it must be writable by neither group nor others, sticky or not: a file
//!   directly in `/tmp` is not trusted. A directory further up may be writable by others
//!   only if it is sticky (like `/tmp` above `/tmp/build/etc/`): then nobody but the owner
//!   of the trusted directory below it can rename or replace that directory, while in a
//!   plain writable directory anyone could swap the whole subtree.
//!
//! A refusal is an error naming the path, what is wrong and the command that fixes it;
//! never a warning. The same check serves `run`, `check`, `scan --config` and `scan --rule`
//! (where "the user wwatchd runs as" is whoever runs the command).

#![forbid(unsafe_code)]

use std::fmt;
use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// What a path is, in messages ("configuration file", "rule file", "spool directory").
pub type What = &'static str;

/// Why a path is not trusted.
#[derive(Debug)]
pub struct TrustError {
    pub path: PathBuf,
    pub what: What,
    /// What is wrong, with the fix.
    pub why: String,
    /// The OS error, when the path could not be opened or read at all.
    pub io: Option<std::io::ErrorKind>,
}

impl fmt::Display for TrustError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.why)
    }
}

impl std::error::Error for TrustError {}

/// The owners whose files are trusted: root and the effective user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owners {
    pub user: u32,
}

impl Owners {
    /// Root and the user this process runs as.
    pub fn current() -> Owners {
        Owners {
            user: nix::unistd::geteuid().as_raw(),
        }
    }

    fn allows(self, uid: u32) -> bool {
        uid == 0 || uid == self.user
    }

    fn names(self) -> String {
        if self.user == 0 {
            "root".to_owned()
        } else {
            format!("root or uid {}", self.user)
        }
    }
}

fn refuse(path: &Path, what: What, why: String) -> TrustError {
    TrustError {
        path: path.to_owned(),
        what,
        why,
        io: None,
    }
}

/// Checks one opened object: kind, owner and mode.
fn check_meta(
    path: &Path,
    what: What,
    md: &Metadata,
    want_dir: bool,
    owners: Owners,
) -> Result<(), TrustError> {
    let kind_ok = if want_dir { md.is_dir() } else { md.is_file() };
    if !kind_ok {
        let want = if want_dir {
            "a directory"
        } else {
            "a regular file"
        };
        return Err(refuse(path, what, format!("the {what} is not {want}")));
    }
    if !owners.allows(md.uid()) {
        return Err(refuse(
            path,
            what,
            format!(
                "refusing a {what} owned by uid {}, not by {}: that user could change what \
                 wwatchd does; run chown root {}",
                md.uid(),
                owners.names(),
                path.display()
            ),
        ));
    }
    let mode = md.mode() & 0o7777;
    if mode & 0o022 != 0 {
        let (kind, who) = if mode & 0o002 != 0 {
            ("world", "anyone")
        } else {
            ("group", "its group")
        };
        return Err(refuse(
            path,
            what,
            format!(
                "refusing a {kind}-writable {what} (mode {mode:04o}): {who} could change what \
                 wwatchd does; run chmod go-w {}",
                path.display()
            ),
        ));
    }
    Ok(())
}

/// Checks every directory above `path` (not `path` itself), up to `/`.
fn check_parents(path: &Path, what: What, owners: Owners) -> Result<(), TrustError> {
    let abs = if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir()
            .map_err(|e| TrustError {
                path: path.to_owned(),
                what,
                why: format!("cannot be placed: the working directory is unreadable ({e})"),
                io: Some(e.kind()),
            })?
            .join(path)
    };
    let first = abs.parent().unwrap_or(Path::new("/")).to_owned();
    let mut dir: Option<PathBuf> = abs.parent().map(Path::to_owned);
    while let Some(d) = dir {
        let d = d.as_path();
        let md = std::fs::symlink_metadata(d).map_err(|e| TrustError {
            path: d.to_owned(),
            what: "directory above it",
            why: format!("cannot be inspected: {e}"),
            io: Some(e.kind()),
        })?;
        // A symlinked ancestor is followed by the kernel: judge where it leads, then go on
        // from there, so a link cannot lead the check around an untrusted directory.
        if md.file_type().is_symlink() {
            let target = std::fs::canonicalize(d).map_err(|e| TrustError {
                path: d.to_owned(),
                what: "directory above it",
                why: format!("is a symlink that cannot be resolved: {e}"),
                io: Some(e.kind()),
            })?;
            if !owners.allows(md.uid()) {
                return Err(refuse(
                    d,
                    "directory above it",
                    format!(
                        "is a symlink owned by uid {}, not by {}",
                        md.uid(),
                        owners.names()
                    ),
                ));
            }
            check_meta_parent(&target, owners, path, what, d == first)?;
            dir = target.parent().map(Path::to_owned);
            continue;
        }
        check_meta_parent(d, owners, path, what, d == first)?;
        dir = d.parent().map(Path::to_owned);
    }
    Ok(())
}

fn check_meta_parent(
    d: &Path,
    owners: Owners,
    file: &Path,
    what: What,
    holds_it: bool,
) -> Result<(), TrustError> {
    let md = std::fs::metadata(d).map_err(|e| TrustError {
        path: d.to_owned(),
        what: "directory above it",
        why: format!("cannot be inspected: {e}"),
        io: Some(e.kind()),
    })?;
    let mode = md.mode() & 0o7777;
    let sticky_above = !holds_it && mode & 0o1000 != 0;
    if !owners.allows(md.uid()) || (mode & 0o022 != 0 && !sticky_above) {
        let sticky = if mode & 0o1000 != 0 {
            " (sticky or not: another user may have made what lies below)"
        } else {
            ""
        };
        return Err(refuse(
            file,
            what,
            format!(
                "refusing a {what} under {} (uid {}, mode {mode:04o}), which {} may write{sticky}; \
                 keep it in a directory owned by root and writable only by it (e.g. /etc/wwatchd)",
                d.display(),
                md.uid(),
                if owners.allows(md.uid()) {
                    "others"
                } else {
                    "a user other than root"
                }
            ),
        ));
    }
    Ok(())
}

fn open_nofollow(path: &Path, what: What, dir: bool) -> Result<File, TrustError> {
    let mut flags = nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC;
    if dir {
        flags |= nix::libc::O_DIRECTORY;
    } else {
        // Opening a FIFO for reading would block until a writer comes.
        flags |= nix::libc::O_NONBLOCK;
    }
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(|e| {
            // O_NOFOLLOW|O_DIRECTORY on a symlink gives ENOTDIR, not ELOOP.
            let is_link = e.raw_os_error() == Some(nix::libc::ELOOP)
                || (dir
                    && e.raw_os_error() == Some(nix::libc::ENOTDIR)
                    && std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()));
            let why = if is_link {
                format!(
                    "the {what} is a symlink: refusing to follow it; name the file it points \
                     to ({}) instead",
                    std::fs::read_link(path)
                        .map(|t| t.display().to_string())
                        .unwrap_or_else(|_| "unreadable link".to_owned())
                )
            } else if e.raw_os_error() == Some(nix::libc::ENOTDIR) && dir {
                format!("the {what} is not a directory")
            } else {
                format!("cannot read the {what}: {e}")
            };
            TrustError {
                path: path.to_owned(),
                what,
                why,
                io: Some(e.kind()),
            }
        })
}

/// Opens, checks and reads a file that steers wwatchd.
pub fn read_file(path: &Path, what: What, owners: Owners) -> Result<String, TrustError> {
    let mut f = open_nofollow(path, what, false)?;
    let md = f.metadata().map_err(|e| TrustError {
        path: path.to_owned(),
        what,
        why: format!("cannot read the {what}: {e}"),
        io: Some(e.kind()),
    })?;
    check_meta(path, what, &md, false, owners)?;
    check_parents(path, what, owners)?;
    let mut text = String::new();
    f.read_to_string(&mut text).map_err(|e| TrustError {
        path: path.to_owned(),
        what,
        why: format!("cannot read the {what}: {e}"),
        io: Some(e.kind()),
    })?;
    Ok(text)
}

/// Opens and checks a directory that steers wwatchd (rule directory, spool, state). The
/// descriptor is returned so that what is listed is what was checked.
pub fn open_dir(path: &Path, what: What, owners: Owners) -> Result<File, TrustError> {
    let f = open_nofollow(path, what, true)?;
    let md = f.metadata().map_err(|e| TrustError {
        path: path.to_owned(),
        what,
        why: format!("cannot be inspected: {e}"),
        io: Some(e.kind()),
    })?;
    check_meta(path, what, &md, true, owners)?;
    check_parents(path, what, owners)?;
    Ok(f)
}

/// Creates `path` (mode 0700, without following a symlink) if it is missing, then checks it
/// as [`open_dir`] does and that the user wwatchd runs as owns it: a private directory
/// wwatchd writes its own state in (disk spool, new_terms store). `fix` ends each refusal
/// with the setting that moves it, e.g. "set daemon.state_dir".
pub fn private_dir(path: &Path, what: What, fix: &str) -> Result<File, TrustError> {
    let err = |why: String| TrustError {
        path: path.to_owned(),
        what,
        why,
        io: None,
    };
    if !path.is_absolute() {
        return Err(err(format!("must be an absolute path; {fix}")));
    }
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .map_err(|e| {
                err(format!(
                    "cannot create the {what}: {e}; create it (mode 0700, owned by the user \
                     wwatchd runs as) or {fix}"
                ))
            })?,
        Err(e) => return Err(err(format!("cannot inspect the {what}: {e}"))),
        Ok(_) => {}
    }
    let f = open_dir(path, what, Owners::current())?;
    let md = f
        .metadata()
        .map_err(|e| err(format!("cannot inspect the {what}: {e}")))?;
    let me = nix::unistd::geteuid().as_raw();
    if md.uid() != me {
        return Err(err(format!(
            "the {what} is owned by uid {}, not by uid {me} that wwatchd runs as, so someone \
             else could forge or delete what it holds; chown it to uid {me} or {fix}",
            md.uid()
        )));
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn base() -> tempfile::TempDir {
        // Not under /tmp: a sticky, world-writable parent is refused by design.
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/trust-tests");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        tempfile::tempdir_in(&root).unwrap()
    }

    fn chmod(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_plain_own_file_is_read() {
        let d = base();
        chmod(d.path(), 0o755);
        let f = d.path().join("c.toml");
        std::fs::write(&f, "x = 1\n").unwrap();
        chmod(&f, 0o644);
        assert_eq!(
            read_file(&f, "configuration file", Owners::current()).unwrap(),
            "x = 1\n"
        );
    }

    #[test]
    fn group_or_world_writable_files_are_refused() {
        let d = base();
        chmod(d.path(), 0o755);
        let f = d.path().join("c.toml");
        std::fs::write(&f, "").unwrap();
        for (mode, who) in [(0o664, "its group"), (0o646, "anyone")] {
            chmod(&f, mode);
            let e = read_file(&f, "rule file", Owners::current()).unwrap_err();
            assert!(e.to_string().contains(who), "{e}");
            assert!(e.to_string().contains("refusing a"), "{e}");
            assert!(e.to_string().contains("chmod go-w"), "{e}");
        }
    }

    #[test]
    fn symlinks_are_refused_and_the_target_named() {
        let d = base();
        chmod(d.path(), 0o755);
        let f = d.path().join("real.toml");
        std::fs::write(&f, "").unwrap();
        chmod(&f, 0o644);
        let l = d.path().join("link.toml");
        std::os::unix::fs::symlink(&f, &l).unwrap();
        let e = read_file(&l, "rule file", Owners::current()).unwrap_err();
        assert!(e.to_string().contains("is a symlink"), "{e}");
        assert!(e.to_string().contains("real.toml"), "{e}");
    }

    #[test]
    fn a_writable_parent_is_refused() {
        let d = base();
        let sub = d.path().join("open");
        std::fs::create_dir(&sub).unwrap();
        let f = sub.join("c.toml");
        std::fs::write(&f, "").unwrap();
        chmod(&f, 0o644);
        chmod(d.path(), 0o755);
        chmod(&sub, 0o1777);
        let e = read_file(&f, "configuration file", Owners::current()).unwrap_err();
        assert!(e.to_string().contains("sticky or not"), "{e}");
        chmod(&sub, 0o755);
        assert!(read_file(&f, "configuration file", Owners::current()).is_ok());
    }

    #[test]
    fn a_file_directly_in_tmp_is_refused_one_below_is_not() {
        let f = PathBuf::from(format!(
            "/tmp/wwatchd-trust-test-{}.toml",
            std::process::id()
        ));
        std::fs::write(&f, "").unwrap();
        chmod(&f, 0o644);
        let e = read_file(&f, "configuration file", Owners::current());
        let _ = std::fs::remove_file(&f);
        let e = e.unwrap_err();
        assert!(e.to_string().contains("under /tmp "), "{e}");
        // /tmp/DIR/c.toml with DIR ours and 0755: /tmp's sticky bit keeps others from
        // replacing DIR.
        let d = tempfile::tempdir_in("/tmp").unwrap();
        chmod(d.path(), 0o755);
        let f = d.path().join("c.toml");
        std::fs::write(&f, "").unwrap();
        chmod(&f, 0o644);
        assert!(read_file(&f, "configuration file", Owners::current()).is_ok());
    }

    #[test]
    fn foreign_owners_are_refused() {
        let d = base();
        chmod(d.path(), 0o755);
        let f = d.path().join("c.toml");
        std::fs::write(&f, "").unwrap();
        chmod(&f, 0o644);
        let me = Owners::current().user;
        // As if wwatchd ran as another user: a file of ours is then foreign (unless we are
        // root, whose files are always trusted).
        let other = Owners { user: me + 1 };
        let r = read_file(&f, "configuration file", other);
        if me == 0 {
            assert!(r.is_ok());
        } else {
            let e = r.unwrap_err();
            assert!(e.to_string().contains(&format!("owned by uid {me}")), "{e}");
        }
    }

    #[test]
    fn directories_are_checked_the_same_way() {
        let d = base();
        chmod(d.path(), 0o755);
        let sub = d.path().join("rules");
        std::fs::create_dir(&sub).unwrap();
        chmod(&sub, 0o755);
        assert!(open_dir(&sub, "rules directory", Owners::current()).is_ok());
        chmod(&sub, 0o775);
        assert!(open_dir(&sub, "rules directory", Owners::current()).is_err());
        let f = d.path().join("file");
        std::fs::write(&f, "").unwrap();
        let e = open_dir(&f, "rules directory", Owners::current()).unwrap_err();
        assert!(e.to_string().contains("is not a directory"), "{e}");
    }
}

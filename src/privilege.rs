//! privilege: after the sockets are open, the daemon keeps only the capabilities it needs.
//!
//! ```text
//!  start (root, or User=wwatchd with ambient caps)
//!    open control socket, multicast reader (SO_RCVBUFFORCE: CAP_NET_ADMIN)
//!    ──► drop(): [--user: KEEPCAPS, setgroups, setresgid, setresuid]
//!                effective, permitted: {AUDIT_READ, AUDIT_CONTROL}
//!                inheritable, ambient: {}      bounding: {AUDIT_READ, AUDIT_CONTROL}
//!                no_new_privs
//!    ──► threads (they inherit the reduced sets)
//! ```
//!
//! Capabilities belong to a thread, not a process (`capset(2)` and `PR_CAPBSET_DROP` act on
//! the calling thread only), so [`drop`] must run before the daemon starts any thread;
//! threads started afterwards inherit the reduced sets.
//!
//! Why only these two: AUDIT_CONTROL for `AUDIT_GET`, adding, listing and deleting our
//! rules, and `enabled` at exit; AUDIT_READ for the multicast group (checked at bind, but
//! kept so a re-opened reader works). Measured on Linux 6.18: reading another user's
//! `/proc/PID/exe` or `/proc/PID/cwd` needs CAP_SYS_PTRACE, and `/proc/PID/fd/N` needs
//! CAP_SYS_PTRACE *and* CAP_DAC_READ_SEARCH (the `fd` directory is mode 0500, owned by
//! the process's user); `/proc/PID/comm` needs nothing. Neither is kept: CAP_SYS_PTRACE
//! lets a compromised parser of attacker-chosen file names take over any process, which
//! is worth more than the parent's executable in an alert and the last-resort dirfd
//! look-up (the directory cache resolves the dirfd calls seen here). Without them those
//! look-ups fail for other users' processes and the fields are left out, never guessed.

#![forbid(unsafe_code)]

use std::fmt;
use std::path::Path;

use caps::{CapSet, Capability, CapsHashSet};
use nix::unistd::{Gid, Uid};

/// What the daemon keeps after start.
pub const KEPT: [Capability; 2] = [Capability::CAP_AUDIT_READ, Capability::CAP_AUDIT_CONTROL];

/// Why the privileges could not be dropped; the daemon refuses to run on.
#[derive(Debug)]
pub enum PrivilegeError {
    /// `--user NAME` names no user.
    NoSuchUser(String),
    /// `--user` given but the daemon is neither root nor already that user.
    NotRoot { user: String, uid: u32 },
    /// A kept capability is not in the permitted set.
    Missing(Vec<Capability>),
    /// A system call failed.
    Os { op: String, error: String },
}

impl fmt::Display for PrivilegeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrivilegeError::NoSuchUser(u) => write!(
                f,
                "--user {u}: no such user; create it (adduser --system {u}) or name another"
            ),
            PrivilegeError::NotRoot { user, uid } => write!(
                f,
                "--user {user}: switching user needs root, and this process runs as uid {uid}; \
                 start as root, or start as {user} with the capabilities in the ambient set"
            ),
            PrivilegeError::Missing(c) => write!(
                f,
                "missing capabilities {}: run as root, or give them to the unit \
                 (AmbientCapabilities=CAP_AUDIT_READ CAP_AUDIT_CONTROL CAP_NET_ADMIN)",
                names(c)
            ),
            PrivilegeError::Os { op, error } => write!(f, "{op}: {error}"),
        }
    }
}

impl std::error::Error for PrivilegeError {}

fn os(op: impl Into<String>, e: impl fmt::Display) -> PrivilegeError {
    PrivilegeError::Os {
        op: op.into(),
        error: e.to_string(),
    }
}

fn names(c: &[Capability]) -> String {
    let mut v: Vec<String> = c.iter().map(|c| c.to_string()).collect();
    v.sort();
    v.join(" ")
}

/// The user `--user` names, looked up before anything is changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonUser {
    pub name: String,
    pub uid: Uid,
    pub gid: Gid,
}

impl DaemonUser {
    pub fn lookup(name: &str) -> Result<DaemonUser, PrivilegeError> {
        let u = uzers::get_user_by_name(name)
            .ok_or_else(|| PrivilegeError::NoSuchUser(name.to_owned()))?;
        Ok(DaemonUser {
            name: name.to_owned(),
            uid: Uid::from_raw(u.uid()),
            gid: Gid::from_raw(u.primary_group_id()),
        })
    }
}

/// What [`drop`] did, for the start-up diagnostic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    pub uid: u32,
    pub gid: u32,
    /// Effective = permitted afterwards.
    pub kept: Vec<Capability>,
    /// Capabilities left in the bounding set because CAP_SETPCAP was not there to drop
    /// them (harmless: no_new_privs is set and none is permitted, so none can come back).
    pub bounding_left: Vec<Capability>,
}

impl fmt::Display for Dropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "uid {} gid {}, capabilities {}",
            self.uid,
            self.gid,
            names(&self.kept)
        )?;
        if !self.bounding_left.is_empty() {
            write!(
                f,
                " (bounding set also holds {}: no CAP_SETPCAP to drop them)",
                names(&self.bounding_left)
            )?;
        }
        Ok(())
    }
}

/// Which of the daemon's own directories [`prepare_dir`] makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateDir {
    /// The status file's directory: created 0755 (`wwatchd status` may be run by anyone; the
    /// file holds counters). An existing one is handed over only if it is named `wwatchd`
    /// (like `/run/wwatchd`); any other is shared and left as it is.
    Status,
    /// The spool: created 0700 (it holds alerts not yet delivered). It is the daemon's
    /// alone, so an existing one is handed over and set to 0700.
    Spool,
}

/// Makes `dir` usable by `user` before the switch, without following a symlink anywhere:
/// the directory is looked at with `symlink_metadata`, opened with
/// `O_NOFOLLOW|O_DIRECTORY`, and owner and mode are set with `fchown`/`fchmod` on that
/// descriptor, so what is changed is what was checked. A missing one is created (its
/// parents 0755, itself with the mode of [`StateDir`]). An existing one owned by anyone but
/// root or `user` is refused. Under systemd, `RuntimeDirectory=` and `StateDirectory=` do
/// this instead.
pub fn prepare_dir(dir: &Path, user: &DaemonUser, kind: StateDir) -> Result<(), PrivilegeError> {
    use nix::fcntl::{OFlag, open};
    use nix::sys::stat::{Mode, fchmod, fstat};
    use std::os::unix::fs::DirBuilderExt;
    let what = |op: &str| format!("{op} {}", dir.display());
    let mode = match kind {
        StateDir::Status => 0o755,
        StateDir::Spool => 0o700,
    };
    let created = match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = dir.parent() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(parent)
                    .map_err(|e| os(format!("create {}", parent.display()), e))?;
            }
            std::fs::DirBuilder::new()
                .mode(mode)
                .create(dir)
                .map_err(|e| os(what("create"), e))?;
            true
        }
        Err(e) => return Err(os(what("stat"), e)),
        Ok(m) if m.file_type().is_symlink() => {
            return Err(os(
                what("use"),
                "is a symlink: refusing to follow it; name the directory itself",
            ));
        }
        Ok(m) if !m.is_dir() => return Err(os(what("use"), "is not a directory")),
        Ok(_) => false,
    };
    let fd = open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| os(what("open"), e))?;
    let st = fstat(&fd).map_err(|e| os(what("fstat"), e))?;
    if st.st_uid != 0 && st.st_uid != user.uid.as_raw() {
        return Err(os(
            what("use"),
            format!(
                "owned by uid {}, neither root nor {} (uid {}): another user's directory \
                 cannot hold wwatchd's state; remove it, or chown {} {}",
                st.st_uid,
                user.name,
                user.uid,
                user.name,
                dir.display()
            ),
        ));
    }
    let hand_over = created
        || match kind {
            StateDir::Spool => true,
            StateDir::Status => {
                dir.file_name().is_some_and(|n| n == "wwatchd") && st.st_mode & 0o022 == 0
            }
        };
    if !hand_over {
        return Ok(());
    }
    nix::unistd::fchown(&fd, Some(user.uid), Some(user.gid)).map_err(|e| os(what("chown"), e))?;
    let keep = if created {
        mode
    } else {
        mode & (st.st_mode & 0o7777)
    };
    fchmod(&fd, Mode::from_bits_truncate(keep)).map_err(|e| os(what("chmod"), e))
}

fn set_of(c: &[Capability]) -> CapsHashSet {
    c.iter().copied().collect()
}

/// Switches to `user` (if given and not already it) and keeps only [`KEPT`], in every set.
///
/// Call it before starting any thread. Started as root with `--user`, the capabilities
/// survive `setresuid` through `PR_SET_KEEPCAPS`. Started as that user already (systemd's
/// `User=` with `AmbientCapabilities=`), it works with what it was given; dropping from the
/// bounding set then needs CAP_SETPCAP, without which the bounding set is left as it is
/// and reported.
pub fn drop(user: Option<&DaemonUser>) -> Result<Dropped, PrivilegeError> {
    use nix::sys::prctl;
    use nix::unistd::{getgid, getuid, setgroups, setresgid, setresuid};

    if let Some(u) = user
        && getuid() != u.uid
    {
        if !getuid().is_root() {
            return Err(PrivilegeError::NotRoot {
                user: u.name.clone(),
                uid: getuid().as_raw(),
            });
        }
        prctl::set_keepcaps(true).map_err(|e| os("prctl(PR_SET_KEEPCAPS)", e))?;
        // Supplementary groups would carry root's (e.g. group 0) over to the daemon.
        setgroups(&[u.gid]).map_err(|e| os(format!("setgroups([{}])", u.gid), e))?;
        setresgid(u.gid, u.gid, u.gid).map_err(|e| os(format!("setresgid({})", u.gid), e))?;
        setresuid(u.uid, u.uid, u.uid).map_err(|e| os(format!("setresuid({})", u.uid), e))?;
        prctl::set_keepcaps(false).map_err(|e| os("prctl(PR_SET_KEEPCAPS, 0)", e))?;
    }

    let permitted =
        caps::read(None, CapSet::Permitted).map_err(|e| os("read permitted capabilities", e))?;
    let missing: Vec<Capability> = KEPT
        .iter()
        .copied()
        .filter(|c| !permitted.contains(c))
        .collect();
    if !missing.is_empty() {
        return Err(PrivilegeError::Missing(missing));
    }
    // setresuid cleared the effective set; raise what is permitted, for CAP_SETPCAP.
    caps::set(None, CapSet::Effective, &permitted)
        .map_err(|e| os("raise the permitted capabilities", e))?;
    caps::clear(None, CapSet::Ambient).map_err(|e| os("clear the ambient capabilities", e))?;
    caps::clear(None, CapSet::Inheritable)
        .map_err(|e| os("clear the inheritable capabilities", e))?;

    let keep = set_of(&KEPT);
    let bounding =
        caps::read(None, CapSet::Bounding).map_err(|e| os("read the bounding set", e))?;
    let mut bounding_left = Vec::new();
    if permitted.contains(&Capability::CAP_SETPCAP) {
        // Dropping CAP_SETPCAP from the bounding set leaves it effective, so order is free.
        let mut extra: Vec<Capability> = bounding.difference(&keep).copied().collect();
        extra.sort_by_key(|c| c.index());
        for c in extra {
            caps::drop(None, CapSet::Bounding, c)
                .map_err(|e| os(format!("drop {c} from the bounding set"), e))?;
        }
    } else {
        bounding_left = bounding.difference(&keep).copied().collect();
        bounding_left.sort_by_key(|c| c.index());
    }
    // Effective first: permitted may not shrink below it.
    caps::set(None, CapSet::Effective, &keep)
        .map_err(|e| os("set the effective capabilities", e))?;
    caps::set(None, CapSet::Permitted, &keep)
        .map_err(|e| os("set the permitted capabilities", e))?;
    // No exec can give anything back (setuid binaries, file capabilities).
    prctl::set_no_new_privs().map_err(|e| os("prctl(PR_SET_NO_NEW_PRIVS)", e))?;

    let now = caps::read(None, CapSet::Effective).map_err(|e| os("read capabilities", e))?;
    let mut kept: Vec<Capability> = now.into_iter().collect();
    kept.sort_by_key(|c| c.index());
    Ok(Dropped {
        uid: getuid().as_raw(),
        gid: getgid().as_raw(),
        kept,
        bounding_left,
    })
}

/// Capability names of a `/proc/PID/status` mask (`CapEff:` and the like), sorted by
/// number. Bits the `caps` crate has no name for are shown as `cap_N`.
pub fn mask_names(mask: u64) -> Vec<String> {
    (0..64u8)
        .filter(|b| mask & (1u64 << b) != 0)
        .map(|b| {
            caps::all()
                .into_iter()
                .find(|c| c.index() == b)
                .map_or_else(|| format!("cap_{b}"), |c| c.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn kept_mask_is_audit_read_and_control() {
        let m: u64 = KEPT.iter().map(|c| c.bitmask()).sum();
        // CAP_AUDIT_CONTROL = 30, CAP_AUDIT_READ = 37 (linux/capability.h).
        assert_eq!(m, (1 << 30) | (1 << 37));
        assert_eq!(mask_names(m), ["CAP_AUDIT_CONTROL", "CAP_AUDIT_READ"]);
    }

    #[test]
    fn mask_names_shows_unknown_bits() {
        assert_eq!(mask_names(1 << 63), ["cap_63"]);
        assert_eq!(mask_names(1 << 12), ["CAP_NET_ADMIN"]);
        assert!(mask_names(0).is_empty());
    }

    #[test]
    fn unknown_user_is_a_clear_error() {
        let e = DaemonUser::lookup("wwatchd-no-such-user-x").unwrap_err();
        assert!(e.to_string().contains("no such user"), "{e}");
    }

    #[test]
    fn prepare_dir_creates_and_leaves_foreign_dirs_alone() {
        let me = DaemonUser {
            name: "me".into(),
            uid: nix::unistd::getuid(),
            gid: nix::unistd::getgid(),
        };
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("a/wwatchd");
        prepare_dir(&d, &me, StateDir::Status).unwrap();
        let m = std::fs::metadata(&d).unwrap();
        assert!(m.is_dir());
        assert_eq!(m.mode() & 0o7777, 0o755);
        // The spool is created 0700, and an existing one is narrowed to 0700.
        let sp = t.path().join("b/spool");
        prepare_dir(&sp, &me, StateDir::Spool).unwrap();
        assert_eq!(std::fs::metadata(&sp).unwrap().mode() & 0o7777, 0o700);
        std::fs::set_permissions(&sp, std::fs::Permissions::from_mode(0o755)).unwrap();
        prepare_dir(&sp, &me, StateDir::Spool).unwrap();
        assert_eq!(std::fs::metadata(&sp).unwrap().mode() & 0o7777, 0o700);
        // A shared directory is not ours to chown or chmod.
        let shared = t.path().join("wwatchd-shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
        prepare_dir(&shared, &me, StateDir::Status).unwrap();
        assert_eq!(std::fs::metadata(&shared).unwrap().mode() & 0o7777, 0o1777);
        // A symlink is refused, and what it points to is untouched.
        let target = t.path().join("elsewhere");
        std::fs::create_dir(&target).unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o777)).unwrap();
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = prepare_dir(&link, &me, StateDir::Spool).unwrap_err();
        assert!(e.to_string().contains("is a symlink"), "{e}");
        assert_eq!(std::fs::metadata(&target).unwrap().mode() & 0o7777, 0o777);
        // Another user's directory is refused (as root we can make one).
        if nix::unistd::geteuid().is_root() {
            let foreign = t.path().join("foreign");
            std::fs::create_dir(&foreign).unwrap();
            nix::unistd::chown(&foreign, Some(Uid::from_raw(65534)), None).unwrap();
            let other = DaemonUser {
                name: "other".into(),
                uid: Uid::from_raw(4242),
                gid: Gid::from_raw(4242),
            };
            let e = prepare_dir(&foreign, &other, StateDir::Spool).unwrap_err();
            assert!(e.to_string().contains("owned by uid 65534"), "{e}");
        }
    }
}

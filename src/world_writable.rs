//! world_writable: finds the directories whose mode is world-writable (the o+w bit, usually
//! sticky 1777: `/tmp`, `/var/tmp`, `/run/lock`, `/var/crash`, spool and drop directories),
//! for rules that say `wwatchd.parent.world_writable == true` instead of listing paths.
//!
//! At the OS edge: [`discover`] reads `/proc/self/mountinfo` and walks the local file
//! systems; [`walk`] is the bounded walk itself, testable on any directory. The daemon calls
//! it through [`crate::kernel_rules::RealFs`] whenever it derives its kernel rules (at start
//! and at every reconcile), so directories made later are picked up.
//!
//! Bounded: at most [`Limits::max_depth`] levels below each file system's mount point, at
//! most [`Limits::max_visited`] directories read and [`Limits::max_found`] found. A
//! world-writable directory is not descended into (its subtree is watched as a whole, and
//! the PARENT record's mode decides per event). Skipped: `/proc`, `/sys`, `/dev` (but
//! `/dev/shm`, a tmpfs of its own, is walked), pseudo and network file systems (only the
//! local types in [`LOCAL_FS_TYPES`]), and symbolic links.

#![forbid(unsafe_code)]

use std::collections::{HashSet, VecDeque};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// File system types walked: local disks and memory file systems. Everything else (proc,
/// sysfs, cgroup, devtmpfs, nfs, cifs, fuse...) is skipped.
pub const LOCAL_FS_TYPES: &[&str] = &[
    "ext2", "ext3", "ext4", "xfs", "btrfs", "f2fs", "zfs", "jfs", "reiserfs", "bcachefs", "tmpfs",
    "overlay", "vfat", "exfat",
];

/// Mount points under these are never walked.
const SKIP_PREFIXES: &[&str] = &["/proc", "/sys", "/dev"];
/// Except these, which are file systems of their own where users drop files.
const KEEP_UNDER_SKIPPED: &[&str] = &["/dev/shm"];

/// Bounds of one search.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Levels below a mount point (`/var/spool/x` is 3 below `/`).
    pub max_depth: usize,
    /// Directories read, over all file systems.
    pub max_visited: usize,
    /// World-writable directories returned.
    pub max_found: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_depth: 4,
            max_visited: 20_000,
            max_found: 128,
        }
    }
}

/// What a search found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Discovery {
    /// World-writable directories, sorted.
    pub dirs: Vec<PathBuf>,
    /// Directories read.
    pub visited: usize,
    /// Set when a bound stopped the search: which one.
    pub capped: Option<String>,
}

/// Searches that hit a bound, since the process started (the daemon reports it).
pub static CAPPED_SEARCHES: AtomicU64 = AtomicU64::new(0);

/// Whether a mode (`st_mode`) is a directory with the o+w bit.
pub fn is_world_writable_dir(mode: u32) -> bool {
    mode & 0o170000 == 0o040000 && mode & 0o002 != 0
}

/// One line of `/proc/self/mountinfo`: (mount point, file system type). Octal escapes in
/// the mount point (`\040` for a space) are decoded.
fn mountinfo_line(line: &str) -> Option<(String, String)> {
    let mut it = line.split(' ');
    let point = it.nth(4)?;
    // Optional fields end with "-"; then the type.
    let fstype = it.skip_while(|f| *f != "-").nth(1)?;
    let mut out: Vec<u8> = Vec::new();
    let b = point.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && let Some(n) = point
                .get(i + 1..i + 4)
                .and_then(|o| u8::from_str_radix(o, 8).ok())
        {
            out.push(n);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    let out = String::from_utf8_lossy(&out).into_owned();
    Some((out, fstype.to_owned()))
}

/// The mount points to walk, from mountinfo text.
pub fn local_mount_points(mountinfo: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(mountinfo_line)
        .filter(|(_, t)| LOCAL_FS_TYPES.contains(&t.as_str()))
        .filter(|(p, _)| {
            KEEP_UNDER_SKIPPED.contains(&p.as_str())
                || !SKIP_PREFIXES
                    .iter()
                    .any(|s| p == s || p.starts_with(&format!("{s}/")))
        })
        .map(|(p, _)| PathBuf::from(p))
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Bounded breadth-first walk from each root, staying on the root's file system (another
/// mount point is a root of its own, or skipped). Never follows symbolic links.
pub fn walk(roots: &[PathBuf], limits: Limits) -> Discovery {
    let mut d = Discovery::default();
    let mut found: HashSet<PathBuf> = HashSet::new();
    'roots: for root in roots {
        let Ok(md) = std::fs::symlink_metadata(root) else {
            continue;
        };
        if !md.is_dir() {
            continue;
        }
        let dev = md.dev();
        let mut queue: VecDeque<(PathBuf, usize)> = VecDeque::new();
        if is_world_writable_dir(md.permissions().mode()) {
            found.insert(root.clone());
            continue;
        }
        queue.push_back((root.clone(), 0));
        while let Some((dir, depth)) = queue.pop_front() {
            if d.visited >= limits.max_visited {
                d.capped = Some(format!(
                    "read {} directories (the limit); directories not read are not watched",
                    limits.max_visited
                ));
                break 'roots;
            }
            d.visited += 1;
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in rd.filter_map(Result::ok) {
                // file_type() does not follow symlinks.
                if !e.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                let p = e.path();
                let Ok(md) = std::fs::symlink_metadata(&p) else {
                    continue;
                };
                if md.dev() != dev {
                    continue; // another file system: its own root, or skipped
                }
                if is_world_writable_dir(md.permissions().mode()) {
                    if found.len() >= limits.max_found {
                        d.capped = Some(format!(
                            "found {} world-writable directories (the limit); more are not \
                             watched",
                            limits.max_found
                        ));
                        break 'roots;
                    }
                    found.insert(p);
                } else if depth + 1 < limits.max_depth {
                    queue.push_back((p, depth + 1));
                }
            }
        }
    }
    d.dirs = found.into_iter().collect();
    d.dirs.sort();
    if d.capped.is_some() {
        CAPPED_SEARCHES.fetch_add(1, Ordering::Relaxed);
    }
    d
}

/// The world-writable directories of this host's local file systems.
pub fn discover(limits: Limits) -> Discovery {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut roots = local_mount_points(&text);
    if roots.is_empty() {
        roots.push(PathBuf::from("/"));
    }
    walk(&roots, limits)
}

/// Whether `p` is under (or is) one of `dirs`.
pub fn covered_by(p: &Path, dirs: &[PathBuf]) -> bool {
    dirs.iter().any(|d| p.starts_with(d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn mountinfo_picks_local_file_systems_and_skips_pseudo_ones() {
        let text = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
23 22 0:21 / /proc rw,nosuid shared:12 - proc proc rw
24 22 0:22 / /sys rw shared:2 - sysfs sysfs rw
25 22 0:5 / /dev rw shared:8 - devtmpfs udev rw
26 25 0:23 / /dev/shm rw shared:9 - tmpfs tmpfs rw
27 22 0:24 / /run rw shared:10 - tmpfs tmpfs rw
28 24 0:25 / /sys/fs/cgroup rw shared:4 - cgroup2 cgroup2 rw
29 22 0:40 / /mnt/nfs rw shared:30 - nfs4 srv:/x rw
30 22 254:1 / /srv/my\\040data rw shared:31 - xfs /dev/vdb rw
31 23 0:26 / /proc/sys/fs/binfmt_misc rw - binfmt_misc binfmt_misc rw
32 25 0:27 / /dev/hugepages rw - tmpfs none rw
";
        let got = local_mount_points(text);
        let want: Vec<PathBuf> = ["/", "/dev/shm", "/run", "/srv/my data"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(got, want);
        assert_eq!(mountinfo_line("garbage"), None);
    }

    #[test]
    fn walk_finds_world_writable_dirs_within_bounds() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        let mk = |p: &str, mode: u32| {
            let p = r.join(p);
            fs::create_dir_all(&p).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        };
        mk("a", 0o755);
        mk("a/drop", 0o1777);
        mk("a/drop/inner", 0o1777); // inside a found one: covered, not listed
        mk("b", 0o755);
        mk("b/c", 0o755);
        mk("b/c/deep", 0o777); // depth 3 below the root
        mk("private", 0o700);
        mk("groupw", 0o775);
        std::os::unix::fs::symlink(r.join("a/drop"), r.join("link")).unwrap();
        let l = Limits::default();
        let d = walk(&[r.to_path_buf()], l);
        assert_eq!(d.dirs, vec![r.join("a/drop"), r.join("b/c/deep")]);
        assert_eq!(d.capped, None);
        // Depth: b/c/deep is three levels down.
        let d = walk(&[r.to_path_buf()], Limits { max_depth: 2, ..l });
        assert_eq!(d.dirs, vec![r.join("a/drop")]);
        assert_eq!(d.capped, None);
        // The counts are bounded and a capped search says so.
        let before = CAPPED_SEARCHES.load(Ordering::Relaxed);
        let d = walk(&[r.to_path_buf()], Limits { max_found: 1, ..l });
        assert_eq!(d.dirs.len(), 1);
        assert!(
            d.capped.as_deref().is_some_and(|c| c.contains("found 1")),
            "{d:?}"
        );
        let d = walk(
            &[r.to_path_buf()],
            Limits {
                max_visited: 2,
                ..l
            },
        );
        assert_eq!(d.visited, 2);
        assert!(
            d.capped.as_deref().is_some_and(|c| c.contains("read 2")),
            "{d:?}"
        );
        assert!(CAPPED_SEARCHES.load(Ordering::Relaxed) >= before + 2);
        // A root that is itself world-writable is found as it is.
        let d = walk(&[r.join("a/drop")], l);
        assert_eq!(d.dirs, vec![r.join("a/drop")]);
        assert!(covered_by(&r.join("a/drop/inner/x"), &d.dirs));
        assert!(!covered_by(&r.join("a/x"), &d.dirs));
    }

    #[test]
    fn mode_bits() {
        assert!(is_world_writable_dir(0o041777));
        assert!(is_world_writable_dir(0o040777));
        assert!(is_world_writable_dir(0o040002));
        assert!(!is_world_writable_dir(0o040775));
        assert!(!is_world_writable_dir(0o100666)); // a file
    }
}

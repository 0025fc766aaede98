//! daemon::stats: the counters every thread of the daemon shares, the status file, and what
//! a status file left by an earlier run says.
//!
//! Every counter is declared once (`counters!`): the detector's in the core, the daemon's
//! own here. The status file, the summary diagnostics, the loss warnings and the man page
//! test all render from those declarations.

use std::ffi::OsString;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::SystemTime;

use wwatchd_core::alert;
use wwatchd_core::counters::{Counter, Kind};
use wwatchd_core::detector::{DetectorCounters, SharedDetectorCounters};

use crate::syslog;
use crate::trust::{self, Owners, TrustError};

wwatchd_core::counters! {
    /// The daemon's own counters, beside the detector's.
    pub struct DaemonCounters / SharedDaemonCounters {
        /// Multicast socket overflows (ENOBUFS), each one a burst of lost records.
        enobufs: Loss,
        /// Alerts or diagnostics dropped because the sink's queue was full.
        sink_channel_drops: Loss,
        /// Messages the sink dropped (its own queue overflowed while the collector was away).
        sink_drops: Loss,
        /// UDP datagrams the collector's host refused after they were sent (ICMP port
        /// unreachable, reported on the next send): lost at the collector.
        sink_refused: Loss,
        /// Messages written to the disk spool (the collector was away, or at shutdown).
        spooled: Count,
        /// Messages in the disk spool now.
        spool_pending: Gauge,
        /// Bytes of the disk spool now.
        spool_bytes: Gauge,
        /// Spooled messages dropped, oldest first, because the spool was at its cap.
        spool_dropped: Loss,
        /// Unreadable regions skipped in the spool (torn writes after a crash, damage).
        spool_corrupt: Loss,
        /// Increase of the kernel's own `lost` counter since start.
        kernel_lost: Loss,
        /// Our kernel rules that were found missing (an auditd reload) and loaded again.
        rule_reinstalls: Loss,
        /// Detection rules in force.
        rules_loaded: Gauge,
        /// CONFIG_CHANGE records that removed rules, each starting a reconcile.
        reconcile_signals: Count,
        /// The kernel's audit `enabled` flag as last seen (0 off, 1 on, 2 locked).
        audit_enabled: Gauge,
        /// Times kernel audit was found switched off by someone else.
        audit_disabled: Count,
        /// Records the kernel still held at shutdown when the daemon stopped waiting: never
        /// examined.
        shutdown_unread: Loss,
        /// Datagrams on our netlink sockets from a sender other than the kernel, dropped.
        /// Both sockets are connected to the kernel, which refuses such unicast itself, so
        /// any count here means something got past that: reported like a loss.
        foreign: Loss,
        /// Writes of the new_terms store that failed: the terms stay in memory and the write
        /// is tried again; a crash before then forgets the newest.
        new_terms_write_errors: Loss,
        /// Hidden directories (under `/home`) left without kernel rules of their own, over
        /// the cap of 64: creations below them are not seen.
        hidden_dirs_unwatched: Loss,
    }
}

/// The daemon's counters, shared by every thread and written to the status file.
#[derive(Debug, Default)]
pub struct Stats {
    /// The detector's counters, published by the worker after each batch.
    pub detector: SharedDetectorCounters,
    pub daemon: SharedDaemonCounters,
    /// Alerts suppressed per exception label, since start (kept across reloads).
    pub exceptions: Mutex<Vec<(String, u64)>>,
    /// Milliseconds since the epoch in the stamp of the newest record handed to the
    /// detector (not a counter: the shutdown waits for the kernel to pass the stop time).
    pub last_stamp_ms: AtomicU64,
}

/// Every counter, in report order: the detector's, then the daemon's.
pub fn all_counters() -> impl Iterator<Item = &'static Counter> {
    DetectorCounters::FIELDS
        .iter()
        .chain(DaemonCounters::FIELDS.iter())
}

impl Stats {
    /// Name and value of every counter, in a fixed order.
    pub fn counters(&self) -> Vec<(&'static Counter, u64)> {
        let mut v = self.detector.snapshot().pairs();
        v.extend(self.daemon.snapshot().pairs());
        v
    }

    /// The value of the counter named `name`.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.counters()
            .into_iter()
            .find(|(c, _)| c.name == name)
            .map(|(_, v)| v)
    }

    /// Per-exception counts: every exception configured since start, in order.
    pub fn exception_counts(&self) -> Vec<(String, u64)> {
        self.exceptions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The loss counters and their values.
    pub fn losses(&self) -> Vec<(&'static Counter, u64)> {
        self.counters()
            .into_iter()
            .filter(|(c, _)| c.kind == Kind::Loss)
            .collect()
    }

    /// Copy the sink's counters in.
    pub fn copy_sink(&self, s: &syslog::StatsSnapshot) {
        use std::sync::atomic::Ordering::Relaxed;
        let d = &self.daemon;
        d.sink_drops.store(s.dropped, Relaxed);
        d.sink_refused.store(s.refused, Relaxed);
        d.spooled.store(s.spooled, Relaxed);
        d.spool_pending.store(s.spool_pending, Relaxed);
        d.spool_bytes.store(s.spool_bytes, Relaxed);
        d.spool_dropped.store(s.spool_dropped, Relaxed);
        d.spool_corrupt.store(s.spool_corrupt, Relaxed);
    }

    pub fn to_json(&self, state: &str) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert("pid".into(), std::process::id().into());
        m.insert("state".into(), state.into());
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        m.insert(
            "updated".into(),
            alert::timestamp(now.as_secs(), now.subsec_millis() as u16).into(),
        );
        let mut c = serde_json::Map::new();
        for (k, v) in self.counters() {
            c.insert(k.name.into(), v.into());
        }
        m.insert("counters".into(), c.into());
        let mut e = serde_json::Map::new();
        for (k, v) in self.exception_counts() {
            e.insert(k, v.into());
        }
        m.insert("exceptions".into(), e.into());
        m.into()
    }

    /// `name=value` for every counter, then the exceptions that suppressed something.
    pub fn summary(&self) -> String {
        let mut s = self
            .counters()
            .iter()
            .map(|(k, v)| format!("{}={v}", k.name))
            .collect::<Vec<_>>()
            .join(" ");
        let per: Vec<(String, u64)> = self
            .exception_counts()
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .collect();
        if !per.is_empty() {
            s.push_str("; suppressed by exception: ");
            s.push_str(
                &per.iter()
                    .map(|(l, n)| format!("{l:?}={n}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            );
        }
        s
    }
}

/// The status file, written through its checked directory.
///
/// The directory is opened once, at start, through the one trust check (no symlink,
/// owned by root or the daemon's user, writable by nobody else, every directory above it
/// safe), and every write goes through that descriptor: a temp name created with
/// `O_CREAT|O_EXCL|O_NOFOLLOW` (a symlink or file planted there is never followed or
/// reused), then `renameat` over the real name, so readers see a whole file or the old one.
#[derive(Debug)]
pub struct StatusFile {
    pub path: PathBuf,
    dir: File,
    name: OsString,
    tmp: OsString,
}

impl StatusFile {
    /// Creates the directory if it is missing (mode 0755: `wwatchd status` may be run by
    /// anyone, and the file holds counters, not secrets) and checks it.
    pub fn open(path: &Path) -> Result<StatusFile, TrustError> {
        let refuse = |why: String, io| TrustError {
            path: path.to_owned(),
            what: "status file",
            why,
            io,
        };
        let name = path
            .file_name()
            .ok_or_else(|| refuse("names no file; give a file name".into(), None))?
            .to_owned();
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if std::fs::symlink_metadata(dir).is_err() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)
                .map_err(|e| {
                    refuse(
                        format!("cannot create its directory {}: {e}", dir.display()),
                        Some(e.kind()),
                    )
                })?;
        }
        let fd = trust::open_dir(dir, "status file directory", Owners::current())?;
        let mut tmp = OsString::from(".");
        tmp.push(&name);
        tmp.push(".tmp");
        Ok(StatusFile {
            path: path.to_owned(),
            dir: fd,
            name,
            tmp,
        })
    }

    /// Writes `stats` atomically.
    pub fn write(&self, stats: &Stats, state: &str) -> std::io::Result<()> {
        use nix::fcntl::{OFlag, openat, renameat};
        use nix::sys::stat::Mode;
        use nix::unistd::{UnlinkatFlags, unlinkat};
        let mut text =
            serde_json::to_vec_pretty(&stats.to_json(state)).map_err(std::io::Error::other)?;
        text.push(b'\n');
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let mode = Mode::from_bits_truncate(0o644);
        let fd = match openat(&self.dir, self.tmp.as_os_str(), flags, mode) {
            // Left by a crash mid-write (or planted): removed, never followed.
            Err(nix::errno::Errno::EEXIST) => {
                unlinkat(&self.dir, self.tmp.as_os_str(), UnlinkatFlags::NoRemoveDir)?;
                openat(&self.dir, self.tmp.as_os_str(), flags, mode)?
            }
            r => r?,
        };
        File::from(fd).write_all(&text)?;
        renameat(
            &self.dir,
            self.tmp.as_os_str(),
            &self.dir,
            self.name.as_os_str(),
        )?;
        Ok(())
    }
}

/// What a status file left by an earlier run says, if that run did not stop cleanly (its
/// state is still `running`): it was killed or crashed, and what it held in memory is gone.
/// `alive(pid)` tells whether that pid is a running wwatchd, which means another daemon
/// writes the same file. `None` for a clean stop, our own pid, or a file we cannot read.
pub fn previous_run_note(text: &str, own_pid: u32, alive: &dyn Fn(u32) -> bool) -> Option<String> {
    let doc: serde_json::Value = serde_json::from_str(text).ok()?;
    if doc.get("state")?.as_str()? != "running" {
        return None;
    }
    let pid = u32::try_from(doc.get("pid")?.as_u64()?).ok()?;
    if pid == own_pid {
        return None;
    }
    let updated = doc.get("updated").and_then(|u| u.as_str()).unwrap_or("?");
    if alive(pid) {
        return Some(format!(
            "another wwatchd (pid {pid}) is running and writes the same status file (last at \
             {updated}); two daemons share the kernel rules and report the same alerts"
        ));
    }
    let counters = doc.get("counters").and_then(|c| c.as_object());
    let losses = all_counters()
        .filter(|c| c.kind == Kind::Loss)
        .map(|c| c.name);
    let shown: Vec<String> = ["alerts", "budget_suppressed"]
        .into_iter()
        .chain(losses)
        .filter_map(|k| {
            let v = counters?.get(k)?.as_u64()?;
            (v > 0 || k == "alerts").then(|| format!("{k}={v}"))
        })
        .collect();
    Some(format!(
        "the previous run (pid {pid}) did not stop cleanly (killed or crashed); its last \
         status was written at {updated}. Lost with it: alerts not yet sent, the summaries of \
         its open budget windows, and every audit record from its end until this start (not \
         examined). Its last counters: {}",
        if shown.is_empty() {
            "none".to_owned()
        } else {
            shown.join(" ")
        }
    ))
}

/// Whether `pid` is a running wwatchd.
pub fn is_wwatchd(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim_end() == "wwatchd")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The status file is written through its checked directory, never through a symlink
    /// planted at the temp name or the real one.
    #[test]
    fn status_file_never_follows_a_symlink() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("run");
        let path = dir.join("status.json");
        let sf = StatusFile::open(&path).unwrap();
        let stats = Stats::default();
        sf.write(&stats, "running").unwrap();
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(doc["state"], "running");
        // A symlink at the temp name, to a file that must not change.
        let victim = t.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        std::os::unix::fs::symlink(&victim, dir.join(".status.json.tmp")).unwrap();
        sf.write(&stats, "stopped").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert!(
            !std::fs::symlink_metadata(&path)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        // A symlink at the real name is replaced, not written through.
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        sf.write(&stats, "running").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        // A group-writable directory, or a symlinked one, is refused with the fix.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o775)).unwrap();
        let e = StatusFile::open(&path).unwrap_err();
        assert!(e.to_string().contains("chmod go-w"), "{e}");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let link = t.path().join("run-link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        let e = StatusFile::open(&link.join("status.json")).unwrap_err();
        assert!(e.to_string().contains("symlink"), "{e}");
    }

    /// A status file still saying `running` was left by a run that was killed or crashed:
    /// the next start says what was lost and shows that run's last counters.
    #[test]
    fn an_unclean_previous_run_is_reported_from_its_status_file() {
        let stats = Stats::default();
        stats
            .detector
            .alerts
            .store(12, std::sync::atomic::Ordering::Relaxed);
        stats
            .daemon
            .enobufs
            .store(3, std::sync::atomic::Ordering::Relaxed);
        let running = stats.to_json("running");
        let mut doc = running.clone();
        doc["pid"] = 4242.into();
        let text = doc.to_string();
        let dead = |_: u32| false;
        let note = previous_run_note(&text, 1, &dead).expect("a note for the unclean stop");
        assert!(
            note.starts_with(
                "the previous run (pid 4242) did not stop cleanly (killed or crashed)"
            ),
            "{note}"
        );
        assert!(
            note.contains("Its last counters: alerts=12 enobufs=3"),
            "{note}"
        );
        // A clean stop, our own pid, or garbage: nothing to say.
        let mut stopped = doc.clone();
        stopped["state"] = "stopped".into();
        assert_eq!(previous_run_note(&stopped.to_string(), 1, &dead), None);
        assert_eq!(previous_run_note(&text, 4242, &dead), None);
        assert_eq!(previous_run_note("{not json", 1, &dead), None);
        assert_eq!(previous_run_note("{}", 1, &dead), None);
        // That pid is a running wwatchd: two daemons on one status file.
        let alive = |p: u32| p == 4242;
        let note = previous_run_note(&text, 1, &alive).expect("a note for two daemons");
        assert!(
            note.starts_with("another wwatchd (pid 4242) is running"),
            "{note}"
        );
    }
}

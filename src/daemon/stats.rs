//! daemon::stats: the counters every thread of the daemon shares, the status file, and what
//! a status file left by an earlier run says.
//!
//! Every counter is declared once (`counters!`): the detector's in the core, the daemon's
//! own here. The status file, the summary diagnostics, the loss warnings and the man page
//! test all render from those declarations.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::SystemTime;

use wwatchd_core::alert;
use wwatchd_core::counters::{Counter, Kind};
use wwatchd_core::detector::{DetectorCounters, SharedDetectorCounters};

use crate::syslog;

wwatchd_core::counters! {
    /// The daemon's own counters, beside the detector's.
    pub struct DaemonCounters / SharedDaemonCounters {
        /// Multicast socket overflows (ENOBUFS), each one a burst of lost records.
        enobufs: Loss,
        /// Records dropped because the detector's queue was full.
        channel_drops: Loss,
        /// Alerts or diagnostics dropped because the sink's queue was full.
        sink_channel_drops: Loss,
        /// Messages the sink dropped (its own queue overflowed while the collector was away).
        sink_drops: Loss,
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

/// Writes `stats` to `path` atomically (temp file + rename).
pub fn write_status(path: &Path, stats: &Stats, state: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    let mut text =
        serde_json::to_vec_pretty(&stats.to_json(state)).map_err(std::io::Error::other)?;
    text.push(b'\n');
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
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

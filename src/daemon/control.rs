//! daemon::control: the main thread's side of the daemon: signals, the kernel rules
//! (install, reconcile after an auditd reload, remove at exit), the audit on/off switch,
//! the periodic status, summaries and loss warnings.
//!
//! `[signals] ──► [control] ◄── reconcile / audit-switch notices ── worker`

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, bounded};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
use wwatchd_core::kernel_rule::DeriveError;
use wwatchd_core::rule::Rule;

use super::stats::Stats;
use super::{Diag, spawn_named};
use crate::error::Error;
use crate::kernel_rules::{self, KernelRule, RealFs};
use crate::netlink::Control;
use crate::syslog::Severity;

/// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread, and so in every thread it
/// starts afterwards; [`signal_thread`] then receives them.
pub(super) fn block_signals() -> Result<SigSet, Error> {
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    set.add(Signal::SIGHUP);
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None).map_err(|e| Error::Thread {
        name: "main",
        why: format!("cannot block signals: {e}"),
    })?;
    Ok(set)
}

/// Starts a thread that waits for the signals of `set` (blocked) and forwards them.
pub(super) fn signal_thread(set: SigSet) -> Result<Receiver<Signal>, Error> {
    let (tx, rx) = bounded(16);
    spawn_named("wwatchd-signals", move || {
        loop {
            match set.wait() {
                Ok(sig) => {
                    if tx.send(sig).is_err() {
                        return;
                    }
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(_) => return,
            }
        }
    })?;
    Ok(rx)
}

/// Kernel rule bookkeeping for the control thread.
pub(super) struct KernelRules {
    pub ctl: Control,
    /// What we want loaded now.
    pub desired: Vec<KernelRule>,
    pub rule_sources: Vec<Rule>,
    pub watch_dirs: Vec<PathBuf>,
    /// Audit is locked (enabled 2): never add or delete.
    pub locked: bool,
    /// Hidden directories the last derivation left without rules (over the cap).
    pub omitted: Vec<PathBuf>,
    /// What was last said about them.
    pub omitted_reported: Vec<PathBuf>,
}

impl KernelRules {
    pub(super) fn derive(&mut self, rules: &[Rule]) -> Result<Vec<KernelRule>, DeriveError> {
        let (rules, omitted) = kernel_rules::derive_report(rules, &self.watch_dirs, &RealFs)?;
        self.omitted = omitted.hidden_dirs;
        Ok(rules)
    }

    /// Says (once per change) which hidden directories have no kernel rules of their own
    /// because of [`kernel_rules::MAX_HIDDEN_DIRS`], and keeps their number in the status file.
    pub(super) fn report_omitted(&mut self, diag: &Diag, stats: &Stats) {
        if self.omitted == self.omitted_reported {
            return;
        }
        stats
            .daemon
            .hidden_dirs_unwatched
            .store(self.omitted.len() as u64, Ordering::Relaxed);
        if !self.omitted.is_empty() {
            let shown: Vec<String> = self
                .omitted
                .iter()
                .take(5)
                .map(|p| p.display().to_string())
                .collect();
            diag.send(
                Severity::Warning,
                format!(
                    "{} hidden directories have no kernel rules of their own (at most {} get \
                     them): {}{}; creations directly in their parent still alert, creations \
                     below them do not; name the ones that matter with --watch-dir",
                    self.omitted.len(),
                    kernel_rules::MAX_HIDDEN_DIRS,
                    shown.join(", "),
                    if self.omitted.len() > 5 { ", ..." } else { "" }
                ),
            );
        }
        self.omitted_reported = self.omitted.clone();
    }

    /// Re-derives (new hidden directories under /home), loads what is missing, deletes
    /// what is no longer wanted. Returns how many previously wanted rules were re-added.
    pub(super) fn reconcile(&mut self, diag: &Diag, rules: Option<&[Rule]>) -> Result<u64, Error> {
        let derived = match rules {
            Some(r) => self.derive(r),
            None => {
                let own = std::mem::take(&mut self.rule_sources);
                let d = self.derive(&own);
                self.rule_sources = own;
                d
            }
        };
        let desired = match derived {
            Ok(d) => d,
            Err(e) => {
                diag.send(Severity::Error, format!("kernel rules not changed: {e}"));
                self.desired.clone()
            }
        };
        if self.locked {
            self.desired = desired;
            return Ok(0);
        }
        let missing: Vec<KernelRule> = kernel_rules::missing(&mut self.ctl, &desired)?
            .into_iter()
            .cloned()
            .collect();
        let mut reinstalled = 0;
        if !missing.is_empty() {
            let report = kernel_rules::install(&mut self.ctl, &missing)?;
            for f in &report.failed {
                diag.send(Severity::Warning, f.to_string());
            }
            reinstalled = missing
                .iter()
                .filter(|m| self.desired.iter().any(|d| d.key == m.key))
                .filter(|m| !report.failed.iter().any(|f| f.rule == m.to_auditctl()))
                .count() as u64;
        }
        // Delete ours that are no longer derived.
        let stale: Vec<String> = self
            .desired
            .iter()
            .filter(|o| !desired.iter().any(|d| d.key == o.key))
            .map(|o| o.key.clone())
            .collect();
        if !stale.is_empty() {
            let listed = self.ctl.list_rules()?;
            for l in listed {
                if l.keys
                    .iter()
                    .any(|k| stale.iter().any(|s| s.as_bytes() == k))
                    && let Err(e) = self.ctl.del_listed(&l)
                {
                    diag.send(
                        Severity::Warning,
                        format!("cannot delete a stale rule: {e}"),
                    );
                }
            }
            diag.send(
                Severity::Notice,
                format!(
                    "deleted kernel rules no longer derived: {}",
                    stale.join(", ")
                ),
            );
        }
        self.desired = desired;
        Ok(reinstalled)
    }
}

/// The kernel's audit `enabled` flag as the control loop sees it, and what to say when someone
/// else changes it. wwatchd never switches audit back on: an administrator's `auditctl -e 0`
/// is a decision, so it warns (at once, again in every summary, and when audit is back).
#[derive(Debug)]
pub(super) struct AuditSwitch {
    enabled: u32,
    off_since: Option<Instant>,
}

/// Status polls while audit is off, to see it come back (no record tells of that).
const POLL_WHILE_OFF: Duration = Duration::from_secs(1);
/// Status polls otherwise (the kernel's `lost`); a switch-off record triggers one at once.
const POLL_STATUS: Duration = Duration::from_secs(15);

impl AuditSwitch {
    /// `enabled` as it is once the daemon has started (it turns 0 into 1 itself).
    pub(super) fn new(enabled: u32) -> AuditSwitch {
        AuditSwitch {
            enabled,
            off_since: None,
        }
    }

    pub(super) fn poll_every(&self) -> Duration {
        if self.enabled == 0 {
            POLL_WHILE_OFF
        } else {
            POLL_STATUS
        }
    }

    /// A newly polled `enabled`: the diagnostic for a change, if any.
    pub(super) fn observe(&mut self, enabled: u32, now: Instant) -> Option<(Severity, String)> {
        let was = std::mem::replace(&mut self.enabled, enabled);
        if was == enabled {
            return None;
        }
        let off_for = self
            .off_since
            .take()
            .map(|t| now.saturating_duration_since(t).as_secs());
        match enabled {
            0 => {
                self.off_since = Some(now);
                Some((
                    Severity::Warning,
                    "kernel audit was disabled by someone else (enabled 0): no records, so no \
                     detection, until it is enabled again; wwatchd leaves it off (an \
                     administrator's decision)"
                        .into(),
                ))
            }
            2 => Some((
                Severity::Error,
                format!(
                    "kernel audit was locked by someone else (enabled 2){}: no rule can be \
                     added or removed until reboot; running on the rules loaded now",
                    off_for.map_or_else(String::new, |s| format!(
                        " after {s} s disabled, so records flow again"
                    ))
                ),
            )),
            _ => Some((
                Severity::Notice,
                format!(
                    "kernel audit is enabled again (enabled {enabled}){}: records flow again; \
                     nothing was recorded, so nothing detected, while it was off",
                    off_for.map_or_else(String::new, |s| format!(" after {s} s disabled"))
                ),
            )),
        }
    }

    /// For the periodic summary while audit is off.
    pub(super) fn note(&self, now: Instant) -> Option<String> {
        self.off_since.map(|t| {
            format!(
                "; KERNEL AUDIT DISABLED by someone else for {} s (enabled 0): no records",
                now.saturating_duration_since(t).as_secs()
            )
        })
    }
}

/// Longest the shutdown waits for the kernel to hand over the records from before the stop.
pub(super) const STOP_WAIT: Duration = Duration::from_secs(2);

/// At shutdown, before the worker is told to stop: waits until the kernel has multicast every
/// record from before the stop, that is until a record stamped at or after `stop_ms` has arrived or
/// the kernel's backlog is empty, for at most [`STOP_WAIT`]. Returns the backlog left when it
/// gave up (0 when it did not): records never examined, which the caller counts and reports.
pub(super) fn wait_for_kernel(ctl: &mut Control, stats: &Stats, stop_ms: u64) -> u64 {
    let deadline = Instant::now() + STOP_WAIT;
    loop {
        if stats.last_stamp_ms.load(Ordering::Relaxed) >= stop_ms {
            return 0;
        }
        let backlog = match ctl.get_status() {
            Ok(s) if s.enabled == 0 || s.backlog == 0 => return 0,
            Ok(s) => u64::from(s.backlog),
            Err(_) => return 0,
        };
        if Instant::now() >= deadline {
            return backlog;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `auditctl -e 0` by someone else: a warning at once, a note in every summary while it
    /// lasts, quicker polls to see it come back, and a notice when it does. Never re-enabled.
    #[test]
    fn audit_switched_off_by_someone_else_is_reported_until_it_is_back() {
        let t0 = Instant::now();
        let mut sw = AuditSwitch::new(1);
        assert_eq!(sw.observe(1, t0), None);
        assert_eq!(sw.poll_every(), POLL_STATUS);
        assert_eq!(sw.note(t0), None);
        let (sev, text) = sw.observe(0, t0).expect("a diagnostic for the switch-off");
        assert_eq!(sev, Severity::Warning);
        assert!(
            text.starts_with("kernel audit was disabled by someone else (enabled 0)"),
            "{text}"
        );
        assert!(text.contains("leaves it off"), "{text}");
        assert_eq!(sw.poll_every(), POLL_WHILE_OFF);
        // Still off: no repeat of the warning, but every summary says so.
        assert_eq!(sw.observe(0, t0 + Duration::from_secs(3)), None);
        let note = sw
            .note(t0 + Duration::from_secs(7))
            .expect("a note while off");
        assert!(
            note.contains("KERNEL AUDIT DISABLED by someone else for 7 s"),
            "{note}"
        );
        let (sev, text) = sw
            .observe(1, t0 + Duration::from_secs(9))
            .expect("a diagnostic for the switch-on");
        assert_eq!(sev, Severity::Notice);
        assert!(
            text.starts_with("kernel audit is enabled again (enabled 1) after 9 s disabled"),
            "{text}"
        );
        assert_eq!(sw.note(t0 + Duration::from_secs(10)), None);
        assert_eq!(sw.poll_every(), POLL_STATUS);
        // Locked by someone else: an error, and it says rules can no longer change.
        let (sev, text) = sw.observe(2, t0).expect("a diagnostic for the lock");
        assert_eq!(sev, Severity::Error);
        assert!(
            text.contains("locked by someone else (enabled 2)"),
            "{text}"
        );
    }
}

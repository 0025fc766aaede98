//! daemon::reload: SIGHUP, the whole configuration again through the same loader as at
//! start; on any error the running configuration stays.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crossbeam_channel::Sender;
use wwatchd_core::policy::Policy;

use super::control::KernelRules;
use super::stats::Stats;
use super::worker::Reloaded;
use super::{Diag, RunConfig};
use crate::config;
use crate::syslog::Severity;

/// `N exceptions, budget M alerts per W s per rule`, for the log.
pub(super) fn describe_policy(p: &Policy) -> String {
    let b = p.budget();
    let budget = if b.max_alerts == 0 {
        "no alert budget".to_owned()
    } else {
        format!(
            "budget {} alerts per {} s per rule and user (at most {} per rule)",
            b.max_alerts,
            b.window_secs,
            b.ceiling()
        )
    };
    format!(
        "{} exceptions, {budget}{}",
        p.exceptions().len(),
        if b.dedup { ", dedup on" } else { "" }
    )
}

/// SIGHUP: loads the whole configuration again through the same loader as at start. On
/// any error the running configuration stays, and the error (FILE:LINE: key ...) is
/// logged. Output and input settings need a restart; a change to them is logged.
pub(super) fn reload(
    cfg: &mut RunConfig,
    kr: &mut KernelRules,
    diag: &Diag,
    stats: &Stats,
    rules_tx: &Sender<Reloaded>,
) {
    let keep = "SIGHUP: configuration not reloaded, keeping the running one";
    let loaded = match config::load(&cfg.source) {
        Ok(l) => l,
        Err(errors) => {
            for e in &errors.0 {
                diag.send(Severity::Error, format!("{keep}: {e}"));
            }
            return;
        }
    };
    for w in &loaded.warnings {
        diag.send(Severity::Warning, format!("SIGHUP: {w}"));
    }
    let new = RunConfig::new(&loaded, cfg.source.clone());
    let old_dirs = std::mem::replace(&mut kr.watch_dirs, new.watch_dirs.clone());
    if let Err(e) = kr.derive(&new.rules) {
        kr.watch_dirs = old_dirs;
        diag.send(Severity::Error, format!("{keep}: {e}"));
        return;
    }
    if let Err(e) = kr.reconcile(diag, Some(&new.rules)) {
        kr.watch_dirs = old_dirs;
        diag.send(Severity::Error, format!("{keep}: {e}"));
        return;
    }
    kr.rule_sources = new.rules.clone();
    let handoff = (Arc::new(new.rules.clone()), new.policy.clone());
    if rules_tx
        .send_timeout(handoff, Duration::from_secs(2))
        .is_err()
    {
        diag.send(
            Severity::Error,
            "SIGHUP: the correlate thread did not take the new rules; kernel rules are updated, \
             detection runs on the previous rules"
                .into(),
        );
        return;
    }
    stats
        .daemon
        .rules_loaded
        .store(new.rules.len() as u64, Ordering::Relaxed);
    let mut restart = Vec::new();
    let (a, b) = (&cfg.sink, &new.sink);
    if a.transport != b.transport
        || a.facility != b.facility
        || a.max_message_bytes != b.max_message_bytes
        || a.queue_capacity != b.queue_capacity
        || a.spool != b.spool
    {
        restart.push("[output]");
    }
    if cfg.rcvbuf != new.rcvbuf {
        restart.push("input.rcvbuf");
    }
    if cfg.user != new.user {
        restart.push("daemon.user");
    }
    if !restart.is_empty() {
        diag.send(
            Severity::Warning,
            format!(
                "SIGHUP: {} changed; the change takes effect at the next restart",
                restart.join(" and ")
            ),
        );
    }
    let file = loaded.file.as_ref().map_or_else(
        || "defaults (no configuration file)".to_owned(),
        |f| f.display().to_string(),
    );
    diag.send(
        Severity::Notice,
        format!(
            "SIGHUP: reloaded {file}: {} detection rules, {}; {} kernel rules",
            new.rules.len(),
            describe_policy(&new.policy),
            kr.desired.len()
        ),
    );
    cfg.rules = new.rules;
    cfg.policy = new.policy;
    cfg.watch_dirs = new.watch_dirs;
    cfg.status_file = new.status_file;
    cfg.summary_every = new.summary_every;
    cfg.reconcile_every = new.reconcile_every;
}

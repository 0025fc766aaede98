//! detector: the whole detection in one engine, records in, alerts out. `scan` and `run`
//! both drive it; they differ only in where records come from and where alerts go.
//!
//! ```text
//!  Record ─► SessionTable (login records: source.ip, account)
//!         └► Correlator ─► Event ─► Builder ─► FileEvent ─► + session, + Enricher (parent)
//!                                                            ─► each Rule's query
//!                                                            ─► Policy (exceptions, budget)
//!                                                            ─► alert JSON ─► AlertSink
//! ```
//!
//! Alerts are rendered once, straight to JSON bytes, with [`SafeFormatter`] (every control
//! character escaped), so a `scan` of a capture prints byte for byte what the daemon sends
//! for the same records. Budget windows run on the events' own time, ticked before each
//! creation; the daemon also ticks them on the wall clock ([`Detector::tick`]), so a window
//! is summarised when it ends even if no further event comes.

use std::sync::Arc;

use crate::alert::{self, PreparedRule};
use crate::counters;
use crate::event::{Correlator, CorrelatorConfig, Event};
use crate::file_event::{Builder, Enricher, FieldIssue, FileEvent};
use crate::policy::{Policy, PolicyStats, Verdict, WindowSummary};
use crate::record::Record;
use crate::rule::{Rule, RuleMeta};
use crate::session::SessionTable;
use crate::syslog::SafeFormatter;

counters! {
    /// What the detection saw and did, since it started (kept across rule reloads).
    pub struct DetectorCounters / SharedDetectorCounters {
        /// Audit records read.
        records: Count,
        /// Complete events (all records of one serial).
        events: Count,
        /// File creations built from the events.
        creations: Count,
        /// Alerts sent (budget summaries not included).
        alerts: Count,
        /// Records that could not be parsed (the stream goes on).
        malformed: Count,
        /// Fields of creation records that could not be read.
        malformed_fields: Count,
        /// Creations relative to a directory descriptor whose directory stayed unknown.
        unresolved_paths: Count,
        /// Events handed out early because too many were in flight.
        evicted: Count,
        /// Events handed out without their EOE, after the timeout.
        timed_out: Count,
        /// Serials that never arrived: records the kernel wrote that we did not read.
        serial_gaps: Loss,
        /// Records that came after their event was complete.
        duplicates: Count,
        /// EOE records of events never seen.
        spurious: Count,
        /// Alerts an exception suppressed (all exceptions together).
        exception_suppressed: Count,
        /// Alerts the alert budget held back.
        budget_suppressed: Count,
        /// Alerts held back as duplicates within a budget window.
        deduplicated: Count,
        /// Summary alerts of budget windows: when suppression starts, and at the close.
        budget_summaries: Count,
        /// Alerts charged to a budget window's overflow actor (its actor table was full).
        untracked_actor_alerts: Count,
        /// Login sessions remembered now.
        sessions: Gauge,
    }
}

/// Where the detector's output goes: `scan` writes JSON lines, the daemon hands batches to
/// its syslog sink. Each call gets one complete JSON document, without a newline.
pub trait AlertSink {
    /// An alert of `rule`.
    fn alert(&mut self, rule: &RuleMeta, json: &[u8]);
    /// The summary alert of a budget window of `rule`.
    fn summary(&mut self, rule: &RuleMeta, json: &[u8]) {
        self.alert(rule, json);
    }
    /// With [`DetectorConfig::events`]: a creation no alert was sent for.
    fn event(&mut self, _json: &[u8]) {}
}

/// How a detector is set up.
#[derive(Clone, Debug)]
pub struct DetectorConfig {
    pub correlator: CorrelatorConfig,
    /// Hand every creation without an alert to [`AlertSink::event`] (`scan --events`).
    pub events: bool,
    /// Login sessions remembered, oldest forgotten first.
    pub max_sessions: usize,
}

impl Default for DetectorConfig {
    fn default() -> DetectorConfig {
        DetectorConfig {
            correlator: CorrelatorConfig::default(),
            events: false,
            max_sessions: 4096,
        }
    }
}

/// The rules, the policy and what a creation needs on its way to an alert.
struct Matcher {
    rules: Arc<Vec<Rule>>,
    /// Each rule's part of its alerts, rendered once per rule set.
    prepared: Vec<PreparedRule>,
    policy: Policy,
    /// Policy counts of the policies replaced by reloads.
    carried: PolicyStats,
    /// Suppressions per exception label, across reloads, in first-seen order.
    per_exception: Vec<(String, u64)>,
    sessions: SessionTable,
    events: bool,
    creations: u64,
    alerts: u64,
    /// Reused render buffer.
    json: Vec<u8>,
}

/// Records in, alerts out. See the module documentation.
pub struct Detector {
    corr: Correlator,
    builder: Builder,
    m: Matcher,
    records: u64,
    malformed: u64,
}

impl Detector {
    pub fn new(cfg: DetectorConfig, rules: Arc<Vec<Rule>>, policy: Policy) -> Detector {
        let mut m = Matcher {
            prepared: prepare(&rules),
            rules,
            policy,
            carried: PolicyStats::default(),
            per_exception: Vec::new(),
            sessions: SessionTable::new(cfg.max_sessions),
            events: cfg.events,
            creations: 0,
            alerts: 0,
            json: Vec::with_capacity(4096),
        };
        m.register_labels();
        Detector {
            corr: Correlator::new(cfg.correlator),
            builder: Builder::new(),
            m,
            records: 0,
            malformed: 0,
        }
    }

    /// Feeds one record. `line` identifies it in reports (a log line, or a running count);
    /// `now_ms` is the correlator's clock (stream time in `scan`, monotonic in `run`).
    pub fn push(
        &mut self,
        rec: &Record<'_>,
        line: u64,
        now_ms: u64,
        enrich: &mut dyn Enricher,
        sink: &mut dyn AlertSink,
    ) {
        self.records += 1;
        self.m.sessions.observe(rec);
        let (builder, m) = (&mut self.builder, &mut self.m);
        self.corr.push(rec, line, now_ms, &mut |ev| {
            m.on_event(ev, builder, enrich, sink)
        });
    }

    /// Counts a record that could not be parsed.
    pub fn malformed(&mut self) {
        self.records += 1;
        self.malformed += 1;
    }

    /// Hands out the events that timed out by `now_ms` (the correlator's clock).
    pub fn expire(&mut self, now_ms: u64, enrich: &mut dyn Enricher, sink: &mut dyn AlertSink) {
        let (builder, m) = (&mut self.builder, &mut self.m);
        self.corr
            .expire(now_ms, &mut |ev| m.on_event(ev, builder, enrich, sink));
    }

    /// Closes the budget windows that ended by `wall_ms` (milliseconds since the epoch).
    pub fn tick(&mut self, wall_ms: u64, sink: &mut dyn AlertSink) {
        let m = &mut self.m;
        let mut due = Vec::new();
        m.policy.tick(wall_ms, &mut |s| due.push(s));
        for s in due {
            m.summary(s, sink);
        }
    }

    /// End of input: completes every open event and closes every budget window.
    pub fn flush(&mut self, enrich: &mut dyn Enricher, sink: &mut dyn AlertSink) {
        let (builder, m) = (&mut self.builder, &mut self.m);
        self.corr
            .flush(&mut |ev| m.on_event(ev, builder, enrich, sink));
        self.close_windows(sink);
    }

    /// Summarises every open budget window now (reload, shutdown, end of input).
    pub fn close_windows(&mut self, sink: &mut dyn AlertSink) {
        let m = &mut self.m;
        let mut due = Vec::new();
        m.policy.flush(&mut |s| due.push(s));
        for s in due {
            m.summary(s, sink);
        }
    }

    /// Installs reloaded rules and policy. The old policy's open windows are summarised
    /// first, so nothing held back goes unreported; its counts are kept.
    pub fn replace(&mut self, rules: Arc<Vec<Rule>>, policy: Policy, sink: &mut dyn AlertSink) {
        self.close_windows(sink);
        let m = &mut self.m;
        let old = m.policy.stats().clone();
        m.carried.sent += old.sent;
        m.carried.exception_suppressed += old.exception_suppressed;
        m.carried.budget_suppressed += old.budget_suppressed;
        m.carried.deduplicated += old.deduplicated;
        m.carried.summaries += old.summaries;
        m.carried.untracked_actor_alerts += old.untracked_actor_alerts;
        m.fold_exceptions();
        m.prepared = prepare(&rules);
        m.rules = rules;
        m.policy = policy;
        m.register_labels();
    }

    /// The rules in force.
    pub fn rules(&self) -> &Arc<Vec<Rule>> {
        &self.m.rules
    }

    /// The counters now.
    pub fn counters(&self) -> DetectorCounters {
        let c = self.corr.stats();
        let b = self.builder.stats();
        let p = self.m.policy.stats();
        let k = &self.m.carried;
        DetectorCounters {
            records: self.records,
            events: c.events,
            creations: self.m.creations,
            alerts: self.m.alerts,
            malformed: self.malformed,
            malformed_fields: b.malformed_fields,
            unresolved_paths: b.unresolved_paths,
            evicted: c.evicted,
            timed_out: c.timed_out,
            serial_gaps: c.gaps,
            duplicates: c.duplicates,
            spurious: c.spurious,
            exception_suppressed: k.exception_suppressed + p.exception_suppressed,
            budget_suppressed: k.budget_suppressed + p.budget_suppressed,
            deduplicated: k.deduplicated + p.deduplicated,
            budget_summaries: k.summaries + p.summaries,
            untracked_actor_alerts: k.untracked_actor_alerts + p.untracked_actor_alerts,
            sessions: self.m.sessions.len() as u64,
        }
    }

    /// Suppressions per exception label: every exception configured since start, in order.
    pub fn exception_counts(&self) -> Vec<(String, u64)> {
        let mut v = self.m.per_exception.clone();
        let stats = self.m.policy.stats();
        for (i, e) in self.m.policy.exceptions().iter().enumerate() {
            let label = e.label(i);
            let n = stats.per_exception.get(i).copied().unwrap_or(0);
            if let Some(slot) = v.iter_mut().find(|(l, _)| *l == label) {
                slot.1 += n;
            }
        }
        v
    }

    /// Fields that could not be read, each with its line, since the last call.
    pub fn take_issues(&mut self) -> Vec<FieldIssue> {
        self.builder.take_issues()
    }
}

fn prepare(rules: &[Rule]) -> Vec<PreparedRule> {
    rules.iter().map(|r| PreparedRule::new(&r.meta)).collect()
}

impl Matcher {
    /// Lists this policy's exceptions, so every configured one is reported, with the
    /// counts of earlier policies folded in under their labels.
    fn register_labels(&mut self) {
        for (i, e) in self.policy.exceptions().iter().enumerate() {
            let label = e.label(i);
            if !self.per_exception.iter().any(|(l, _)| *l == label) {
                self.per_exception.push((label, 0));
            }
        }
    }

    /// Folds the current policy's per-exception counts into `per_exception` (reload).
    fn fold_exceptions(&mut self) {
        let stats = self.policy.stats();
        for (i, e) in self.policy.exceptions().iter().enumerate() {
            let label = e.label(i);
            let n = stats.per_exception.get(i).copied().unwrap_or(0);
            if let Some(slot) = self.per_exception.iter_mut().find(|(l, _)| *l == label) {
                slot.1 += n;
            }
        }
    }

    fn on_event(
        &mut self,
        ev: &Event,
        builder: &mut Builder,
        enrich: &mut dyn Enricher,
        sink: &mut dyn AlertSink,
    ) {
        builder.creations(ev, enrich, &mut |fe| self.on_creation(fe, sink));
    }

    fn on_creation(&mut self, fe: &mut FileEvent<'_>, sink: &mut dyn AlertSink) {
        self.creations += 1;
        let exe = fe.exe.as_ref().map(|e| e.bytes());
        if let Some(s) = self.sessions.lookup(fe.ses, fe.pid, fe.ppid, exe) {
            s.fill(&mut fe.context);
        }
        let fe = &*fe;
        // Budget windows run on the events' time.
        let t = fe.sec.saturating_mul(1000) + u64::from(fe.msec);
        let mut due = Vec::new();
        self.policy.tick(t, &mut |s| due.push(s));
        for s in due.drain(..) {
            self.summary(s, sink);
        }
        let mut sent = false;
        for i in 0..self.rules.len() {
            if !self.rules[i].query.matches(fe) {
                continue;
            }
            let verdict = self.policy.decide(i, fe, &mut |s| due.push(s));
            for s in due.drain(..) {
                self.summary(s, sink);
            }
            if verdict == Verdict::Send {
                sent = true;
                self.alerts += 1;
                self.json.clear();
                // Rendering into memory fails only on a serializer bug; the alert counts as
                // sent above, and the empty document makes the sink count a loss.
                let _ =
                    alert::write_alert_with(&mut self.json, fe, &self.prepared[i], SafeFormatter);
                sink.alert(&self.rules[i].meta, &self.json);
            }
        }
        if self.events && !sent {
            self.json.clear();
            let _ = alert::write_event_with(&mut self.json, fe, SafeFormatter);
            sink.event(&self.json);
        }
    }

    fn summary(&mut self, s: WindowSummary, sink: &mut dyn AlertSink) {
        let (Some(rule), Some(prepared)) = (self.rules.get(s.rule), self.prepared.get(s.rule))
        else {
            return;
        };
        let doc = serde_json::Value::Object(alert::summary_document(&s, prepared));
        self.json.clear();
        let mut ser = serde_json::Serializer::with_formatter(&mut self.json, SafeFormatter);
        let _ = serde::Serialize::serialize(&doc, &mut ser);
        sink.summary(&rule.meta, &self.json);
    }
}

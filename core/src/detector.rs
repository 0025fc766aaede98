//! detector: the whole detection in one engine, records in, alerts out. `scan` and `run`
//! both drive it; they differ only in where records come from and where alerts go.
//!
//! ```text
//!  Record ─► SessionTable (login records: source.ip, account)
//!         └► Correlator ─► Event ─► Builder ─► FileEvent ─► + session, + Enricher (parent)
//!                                                            ─► each Rule's query
//!                                                            ─► NewTerms (new_terms rules)
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

use crate::alert::{self, PreparedRule, RenderCtx};
use crate::counters;
use crate::event::{Correlator, CorrelatorConfig, Event};
use crate::file_event::{Builder, Enricher, FieldIssue, FileEvent};
use crate::host::HostInfo;
use crate::ids;
use crate::new_terms::{Decision, NewTerms};
use crate::policy::{Policy, PolicyStats, Verdict, WindowSummary};
use crate::record::Record;
use crate::rule::kinds::kinds;
use crate::rule::{Action, Kinds};
use crate::rule::{FieldId, FieldSource, FieldValue, Rule, RuleMeta, Schema};
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
        /// Matches of new_terms rules whose terms were seen within the history window: no alert.
        new_terms_known: Count,
        /// Matches of new_terms rules without a value for one of the rule's new_terms_fields: no alert, as in Elasticsearch.
        new_terms_missing: Count,
        /// Matches of new_terms rules with more values or combinations than are taken (the rest are not remembered).
        new_terms_truncated: Count,
        /// Terms forgotten before their window ended because a rule's term table was full: they may alert again.
        new_terms_evicted: Loss,
        /// Terms lost from the store (unreadable, corrupt, or not written): they may alert again.
        new_terms_lost: Loss,
        /// Terms remembered now, all new_terms rules together.
        new_terms: Gauge,
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
    /// The host the records come from (`host.*`; `agent.id` is derived from its id).
    /// Records whose `node=` names another host get only that name.
    pub host: Arc<HostInfo>,
}

impl Default for DetectorConfig {
    fn default() -> DetectorConfig {
        DetectorConfig {
            correlator: CorrelatorConfig::default(),
            events: false,
            max_sessions: 4096,
            host: Arc::new(HostInfo::default()),
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
    /// The kinds of file event some rule can match; others are not built.
    kinds: Kinds,
    creations: u64,
    alerts: u64,
    /// Reused render buffer.
    json: Vec<u8>,
    host: Arc<HostInfo>,
    agent_id: Option<String>,
    /// The wall clock the daemon last passed ([`Detector::set_wall_clock`]), for
    /// `event.created`; `None` in `scan`, where the record's time is used.
    wall_ms: Option<u64>,
    /// Distinct `node=` names seen on creations (the first few), for scan's report.
    nodes: Vec<String>,
    /// The terms of the new_terms rules.
    new_terms: NewTerms,
    /// Only learn terms: no alerts, no policy, no events (`scan --new-terms-history`).
    learning: bool,
    /// `host.id` of the detector's host, and its field id in the schema.
    host_id: Option<Arc<str>>,
    host_id_field: Option<FieldId>,
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
        let host_id = cfg.host.id.as_deref().map(Arc::from);
        let mut m = Matcher {
            prepared: prepare(&rules),
            rules,
            policy,
            carried: PolicyStats::default(),
            per_exception: Vec::new(),
            sessions: SessionTable::new(cfg.max_sessions),
            events: cfg.events,
            kinds: Kinds::CREATION,
            creations: 0,
            alerts: 0,
            json: Vec::with_capacity(4096),
            agent_id: cfg.host.id.as_deref().map(ids::agent_id),
            host: cfg.host,
            wall_ms: None,
            nodes: Vec::new(),
            new_terms: NewTerms::default(),
            learning: false,
            host_id,
            host_id_field: crate::file_event::FileSchema
                .lookup("host.id")
                .map(|(id, _)| id),
        };
        m.kinds = rule_kinds(&m.rules);
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

    /// The wall clock now, in milliseconds since the epoch: `event.created` of what the
    /// next records give. The daemon calls this before each batch; `scan` never does, and
    /// its alerts' `event.created` is the record's own time.
    pub fn set_wall_clock(&mut self, wall_ms: u64) {
        self.m.wall_ms = Some(wall_ms);
    }

    /// Learn only: matches of new_terms rules record their terms, and nothing is alerted,
    /// budgeted or printed. `scan --new-terms-history` reads its history so.
    pub fn set_learning(&mut self, learning: bool) {
        self.m.learning = learning;
    }

    /// The new_terms rules' terms.
    pub fn new_terms(&self) -> &NewTerms {
        &self.m.new_terms
    }

    /// The new_terms rules' terms, to load stored ones or take what changed.
    pub fn new_terms_mut(&mut self) -> &mut NewTerms {
        &mut self.m.new_terms
    }

    /// The distinct `node=` names of the records' creations (at most [`MAX_NODES`]).
    pub fn nodes(&self) -> &[String] {
        &self.m.nodes
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
        m.kinds = rule_kinds(&rules);
        let specs: Vec<(String, u64)> = rules
            .iter()
            .filter_map(|r| {
                let s = r.new_terms.as_ref()?;
                Some((s.store_key(&r.meta.rule_id), s.window_ms))
            })
            .collect();
        m.new_terms.retain_rules(&specs);
        m.rules = rules;
        m.policy = policy;
        m.register_labels();
    }

    /// When the first open budget window ends (milliseconds since the epoch), if any is
    /// open: the daemon needs a timer for its summary only then.
    pub fn next_window_end(&self) -> Option<u64> {
        self.m.policy.next_window_end()
    }

    /// Events still waiting for records (their timeout needs a timer).
    pub fn inflight(&self) -> usize {
        self.corr.inflight()
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
        let nt = self.m.new_terms.stats();
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
            new_terms_known: nt.known,
            new_terms_missing: nt.missing,
            new_terms_truncated: nt.truncated,
            new_terms_evicted: nt.evicted,
            new_terms_lost: nt.lost,
            new_terms: self.m.new_terms.len() as u64,
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

/// A file event with the detector's `host.id`, which the records do not carry.
struct OnHost<'f, 'a> {
    fe: &'f FileEvent<'a>,
    host_id: Option<Arc<str>>,
    /// The id of `host.id` in the schema.
    field: Option<FieldId>,
}

impl FieldSource for OnHost<'_, '_> {
    fn field(&self, id: FieldId) -> Option<FieldValue<'_>> {
        if Some(id) == self.field {
            return self.host_id.as_deref().map(FieldValue::Str);
        }
        self.fe.field(id)
    }

    fn field_multi(&self, id: FieldId, f: &mut dyn FnMut(FieldValue<'_>) -> bool) -> bool {
        if Some(id) == self.field {
            return self.field(id).is_some_and(f);
        }
        self.fe.field_multi(id, f)
    }
}

/// How many distinct `node=` names [`Detector::nodes`] keeps.
pub const MAX_NODES: usize = 8;

/// The union of the rules' kinds (`rule::kinds`); creations always, as before issue 11.
fn rule_kinds(rules: &[Rule]) -> Kinds {
    rules
        .iter()
        .fold(Kinds::CREATION, |k, r| k.union(kinds(r.query.ast())))
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
        if self.kinds != Kinds::CREATION {
            let kinds = self.kinds;
            builder.changes(ev, enrich, kinds, &mut |fe| self.on_creation(fe, sink));
        }
    }

    fn ctx(&self) -> RenderCtx<'_> {
        RenderCtx {
            host: &self.host,
            agent_id: self.agent_id.as_deref(),
            created_ms: self.wall_ms,
        }
    }

    fn note_node(&mut self, fe: &FileEvent<'_>) {
        if let Some(n) = &fe.host_name
            && self.nodes.len() < MAX_NODES
            && Some(n.as_str()) != self.host.name.as_deref()
            && !self.nodes.iter().any(|x| x == n.as_str())
        {
            self.nodes.push(n.as_str().to_owned());
        }
    }

    /// One file event (a creation, or a rename, deletion or modification some rule asked
    /// for) through the rules and the policy.
    fn on_creation(&mut self, fe: &mut FileEvent<'_>, sink: &mut dyn AlertSink) {
        if fe.action == Action::Creation {
            self.creations += 1;
        }
        self.note_node(fe);
        let exe = fe.exe.as_ref().map(|e| e.bytes());
        if let Some(s) = self.sessions.lookup(fe.ses, fe.pid, fe.ppid, exe) {
            s.fill(&mut fe.context);
        }
        let fe = &*fe;
        let t = fe.sec.saturating_mul(1000) + u64::from(fe.msec);
        let src = OnHost {
            fe,
            host_id: self.host_id_of(fe),
            field: self.host_id_field,
        };
        if self.learning {
            self.learn(&src, t);
            return;
        }
        // Budget windows run on the events' time.
        let mut due = Vec::new();
        self.policy.tick(t, &mut |s| due.push(s));
        for s in due.drain(..) {
            self.summary(s, sink);
        }
        let mut sent = false;
        for i in 0..self.rules.len() {
            if !self.rules[i].query.matches(&src) {
                continue;
            }
            // Exceptions first: as in Kibana, where a rule's exceptions filter its query, an
            // excepted event never makes a new_terms term known. The budget comes last.
            if self.policy.except(i, fe).is_some() {
                continue;
            }
            if let Some(spec) = &self.rules[i].new_terms
                && self
                    .new_terms
                    .decide(&self.rules[i].meta.rule_id, spec, &src, t)
                    != Decision::New
            {
                continue;
            }
            let verdict = self.policy.admit(i, fe, &mut |s| due.push(s));
            for s in due.drain(..) {
                self.summary(s, sink);
            }
            if verdict == Verdict::Send {
                sent = true;
                self.alerts += 1;
                // Rendering into memory fails only on a serializer bug; the alert counts as
                // sent above, and the empty document makes the sink count a loss.
                let mut json = std::mem::take(&mut self.json);
                json.clear();
                let _ = alert::write_alert(&mut json, fe, &self.prepared[i], &self.ctx());
                sink.alert(&self.rules[i].meta, &json);
                self.json = json;
            }
        }
        if self.events && !sent {
            let mut json = std::mem::take(&mut self.json);
            json.clear();
            let _ = alert::write_event_with(&mut json, fe, &self.ctx(), SafeFormatter);
            sink.event(&json);
            self.json = json;
        }
    }

    /// `host.id` of an event: the detector's host's, when the event is from it (as the
    /// alert's `host.*`), else none.
    fn host_id_of(&self, fe: &FileEvent<'_>) -> Option<Arc<str>> {
        let node = fe.host_name.as_ref().map(|t| t.as_str());
        let ours = node.is_none() || node == self.host.name.as_deref();
        if ours { self.host_id.clone() } else { None }
    }

    /// Learning only: the new_terms rules that match, where no exception applies, record
    /// their terms.
    fn learn(&mut self, src: &OnHost<'_, '_>, t: u64) {
        for (i, r) in self.rules.iter().enumerate() {
            if let Some(spec) = &r.new_terms
                && r.query.matches(src)
                && self.policy.exception_of(i, src.fe).is_none()
            {
                self.new_terms.decide(&r.meta.rule_id, spec, src, t);
            }
        }
    }

    fn summary(&mut self, s: WindowSummary, sink: &mut dyn AlertSink) {
        let (Some(rule), Some(prepared)) = (self.rules.get(s.rule), self.prepared.get(s.rule))
        else {
            return;
        };
        let doc = serde_json::Value::Object(alert::summary_document(&s, prepared, &self.ctx()));
        self.json.clear();
        let mut ser = serde_json::Serializer::with_formatter(&mut self.json, SafeFormatter);
        let _ = serde::Serialize::serialize(&doc, &mut ser);
        sink.summary(&rule.meta, &self.json);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file_event::{FileSchema, NoEnrich};
    use crate::host::HostInfo;
    use crate::policy::{Budget, Exception, ProcSpec};
    use crate::rule::Pattern;

    /// The records of one creation of `path` by `comm`/`exe` as uid 1001, at `sec`, with
    /// serial `serial`, in session 3.
    fn creation(serial: u64, sec: u64, path: &str, comm: &str, exe: &str) -> String {
        let head = format!("msg=audit({sec}.000:{serial}):");
        format!(
            "type=SYSCALL {head} arch=c000003e syscall=257 success=yes exit=3 a0=ffffff9c a1=55 \
             a2=241 a3=1a4 items=2 ppid=99 pid=100 auid=1001 uid=1001 gid=1001 euid=1001 \
             suid=1001 fsuid=1001 egid=1001 sgid=1001 fsgid=1001 tty=(none) ses=3 \
             comm=\"{comm}\" exe=\"{exe}\" key=(null)\n\
             type=CWD {head} cwd=\"/home/alice\"\n\
             type=PATH {head} item=0 name=\"/tmp/\" inode=2 dev=fe:00 mode=041777 ouid=0 ogid=0 \
             nametype=PARENT\n\
             type=PATH {head} item=1 name=\"{path}\" inode=77 dev=fe:00 mode=0100644 ouid=1001 \
             ogid=1001 nametype=CREATE\n\
             type=EOE {head}\n"
        )
    }

    const LOGIN: &str = "type=USER_LOGIN msg=audit(1000.000:1): pid=98 uid=0 auid=1001 ses=3 \
        msg='op=login id=1001 exe=\"/usr/sbin/sshd\" hostname=? addr=192.0.2.7 terminal=ssh \
        res=success'\n";

    #[derive(Default)]
    struct Collect {
        alerts: Vec<serde_json::Value>,
        summaries: Vec<serde_json::Value>,
    }

    impl AlertSink for Collect {
        fn alert(&mut self, _rule: &RuleMeta, json: &[u8]) {
            self.alerts
                .push(serde_json::from_slice(json).unwrap_or_else(|e| panic!("{e}")));
        }
        fn summary(&mut self, _rule: &RuleMeta, json: &[u8]) {
            self.summaries
                .push(serde_json::from_slice(json).unwrap_or_else(|e| panic!("{e}")));
        }
    }

    fn feed(det: &mut Detector, text: &str, sink: &mut Collect) {
        for (i, l) in text.lines().enumerate() {
            match Record::from_log_line(l.as_bytes()) {
                Ok(rec) => det.push(&rec, i as u64, rec.stamp.millis(), &mut NoEnrich, sink),
                Err(_) => det.malformed(),
            }
        }
    }

    /// Sessions, exceptions, the budget and the counters, all inside the detector: the login
    /// record gives the alert its source, an exception suppresses the agent directory and is
    /// counted under its name, the budget sends 1 of 3 and summarises the 2 held back.
    #[test]
    fn sessions_exceptions_budget_and_counters() {
        let rule = crate::rule::builtin(&FileSchema);
        let exc = Exception {
            name: Some("agent".into()),
            rule: None,
            origin: "w.toml:3".into(),
            users: vec![],
            processes: vec![ProcSpec::new("sshd")],
            paths: vec![Pattern::new("/tmp/ssh-*", true)],
            parents: vec![],
            sources: vec![],
        };
        let budget = Budget {
            max_alerts: 1,
            window_secs: 300,
            dedup: false,
        };
        let policy = Policy::new(vec![exc], budget, &[rule.meta.rule_id.as_str()]);
        let mut det = Detector::new(DetectorConfig::default(), Arc::new(vec![rule]), policy);
        assert_eq!(det.exception_counts(), [("agent".to_owned(), 0)]);
        let mut sink = Collect::default();
        let mut log = LOGIN.to_owned();
        log.push_str(&creation(
            10,
            1001,
            "/tmp/ssh-abc",
            "sshd",
            "/usr/sbin/sshd",
        ));
        for (i, p) in ["/tmp/a", "/tmp/b", "/tmp/c"].iter().enumerate() {
            log.push_str(&creation(
                11 + i as u64,
                1002,
                p,
                "sftp-server",
                "/usr/lib/openssh/sftp-server",
            ));
        }
        log.push_str("garbage line\n");
        feed(&mut det, &log, &mut sink);
        det.flush(&mut NoEnrich, &mut sink);

        assert_eq!(sink.alerts.len(), 1, "{:?}", sink.alerts);
        assert_eq!(sink.alerts[0]["file"]["path"], "/tmp/a");
        assert_eq!(sink.alerts[0]["source"]["ip"], "192.0.2.7");
        // One summary when the user's suppression starts, one when the window closes.
        assert_eq!(sink.summaries.len(), 2, "{:?}", sink.summaries);
        assert_eq!(sink.summaries[0]["wwatchd"]["budget"]["phase"], "started");
        assert_eq!(sink.summaries[1]["wwatchd"]["budget"]["phase"], "closed");
        assert_eq!(sink.summaries[1]["wwatchd"]["budget"]["suppressed"], 2);
        let c = det.counters();
        assert_eq!((c.creations, c.alerts, c.malformed), (4, 1, 1));
        assert_eq!((c.exception_suppressed, c.budget_suppressed), (1, 2));
        assert_eq!((c.budget_summaries, c.sessions), (2, 1));
        assert_eq!(det.exception_counts(), [("agent".to_owned(), 1)]);
    }

    /// An EQL rule of type new_terms on (`process.executable`, `host.id`), window 5 days.
    pub(crate) const NT_RULE: &str = r#"[rule]
name = "nt"
rule_id = "nt-1"
description = "d"
severity = "low"
risk_score = 21
type = "new_terms"
language = "eql"
query = '''
file where event.action == "creation" and file.path like~ "/tmp/*" and user.id != "0"
'''
[rule.new_terms]
field = "new_terms_fields"
value = ["process.executable", "host.id"]
[[rule.new_terms.history_window_start]]
field = "history_window_start"
value = "now-5d"
"#;

    fn nt_detector(host_id: Option<&str>) -> Detector {
        nt_detector_with(host_id, Policy::pass_all(1))
    }

    fn nt_detector_with(host_id: Option<&str>, policy: Policy) -> Detector {
        let rule = match crate::rule::parse_rule_toml(NT_RULE, "nt.toml", &FileSchema) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        };
        let cfg = DetectorConfig {
            host: Arc::new(HostInfo {
                name: Some("h1".into()),
                id: host_id.map(str::to_owned),
                ..HostInfo::default()
            }),
            ..DetectorConfig::default()
        };
        Detector::new(cfg, Arc::new(vec![rule]), policy)
    }

    /// Issue 11: a new_terms rule alerts on the first upload by an executable, not on the
    /// second within the window, again after the window; other executables are new; each
    /// suppression is counted; the term is the detector's host.id with the executable.
    #[test]
    fn new_terms_rule_alerts_once_per_executable_and_window() {
        let mut det = nt_detector(Some("0123456789abcdef0123456789abcdef"));
        let mut sink = Collect::default();
        let day = 86_400;
        let log = [
            creation(10, 1000, "/tmp/a", "scp", "/usr/bin/scp"),
            creation(11, 1000 + day, "/tmp/b", "scp", "/usr/bin/scp"),
            creation(
                12,
                1000 + day,
                "/tmp/c",
                "sftp-server",
                "/usr/lib/openssh/sftp-server",
            ),
            creation(13, 1000 + day, "/etc/x", "scp", "/usr/bin/evil"),
            // Seen at +1 day: known until +6 days, new again after.
            creation(14, 1000 + 6 * day - 1, "/tmp/d", "scp", "/usr/bin/scp"),
            creation(15, 1000 + 12 * day, "/tmp/e", "scp", "/usr/bin/scp"),
        ]
        .concat();
        feed(&mut det, &log, &mut sink);
        det.flush(&mut NoEnrich, &mut sink);
        let paths: Vec<&str> = sink
            .alerts
            .iter()
            .filter_map(|a| a["file"]["path"].as_str())
            .collect();
        assert_eq!(paths, ["/tmp/a", "/tmp/c", "/tmp/e"]);
        let c = det.counters();
        assert_eq!((c.alerts, c.new_terms_known, c.new_terms), (3, 2, 2));
        assert_eq!((c.new_terms_missing, c.new_terms_evicted), (0, 0));
        assert!(det.new_terms_mut().take_dirty().added);
    }

    /// As in Kibana, where exceptions filter the query: an excepted upload neither alerts
    /// nor makes its executable known, so the next upload by the same executable that no
    /// exception covers alerts. The same holds for the history a learning detector reads.
    #[test]
    fn excepted_events_make_no_new_terms_term() {
        let policy = || {
            let exc = Exception {
                name: Some("deploy".into()),
                rule: None,
                origin: "w.toml:3".into(),
                users: vec![],
                processes: vec![],
                paths: vec![Pattern::new("/tmp/deploy-*", true)],
                parents: vec![],
                sources: vec![],
            };
            Policy::new(vec![exc], *Policy::pass_all(1).budget(), &["nt-1"])
        };
        let with_policy = |learning: bool| {
            let mut det = nt_detector_with(Some("id"), policy());
            det.set_learning(learning);
            det
        };
        let scp = "/usr/bin/scp";
        let mut det = with_policy(false);
        let mut sink = Collect::default();
        let log = [
            creation(10, 1000, "/tmp/deploy-1", "scp", scp),
            creation(11, 1001, "/tmp/payload", "scp", scp),
            creation(12, 1002, "/tmp/payload2", "scp", scp),
        ]
        .concat();
        feed(&mut det, &log, &mut sink);
        det.flush(&mut NoEnrich, &mut sink);
        let paths: Vec<&str> = sink
            .alerts
            .iter()
            .filter_map(|a| a["file"]["path"].as_str())
            .collect();
        assert_eq!(paths, ["/tmp/payload"]);
        let c = det.counters();
        assert_eq!(
            (c.exception_suppressed, c.new_terms_known, c.new_terms),
            (1, 1, 1)
        );

        let mut hist = with_policy(true);
        let mut none = Collect::default();
        feed(
            &mut hist,
            &creation(10, 1000, "/tmp/deploy-1", "scp", scp),
            &mut none,
        );
        hist.flush(&mut NoEnrich, &mut none);
        assert_eq!(hist.counters().new_terms, 0);
    }

    /// As Elasticsearch: without a host.id (a log of another host), no term, no alert,
    /// counted.
    #[test]
    fn new_terms_without_host_id_never_alert() {
        let mut det = nt_detector(None);
        let mut sink = Collect::default();
        feed(
            &mut det,
            &creation(10, 1000, "/tmp/a", "scp", "/usr/bin/scp"),
            &mut sink,
        );
        det.flush(&mut NoEnrich, &mut sink);
        assert!(sink.alerts.is_empty());
        assert_eq!(det.counters().new_terms_missing, 1);
    }

    /// `scan --new-terms-history`: a learning detector records terms and sends nothing; its
    /// terms make the detection's first upload known.
    #[test]
    fn learning_records_terms_only() {
        let mut hist = nt_detector(Some("id"));
        hist.set_learning(true);
        let mut sink = Collect::default();
        feed(
            &mut hist,
            &creation(10, 1000, "/tmp/a", "scp", "/usr/bin/scp"),
            &mut sink,
        );
        hist.flush(&mut NoEnrich, &mut sink);
        assert!(sink.alerts.is_empty() && sink.summaries.is_empty());
        assert_eq!(hist.counters().alerts, 0);
        let mut det = nt_detector(Some("id"));
        let learned = hist.new_terms().clone();
        det.new_terms_mut().absorb(learned);
        let log = [
            creation(20, 2000, "/tmp/b", "scp", "/usr/bin/scp"),
            creation(21, 2000, "/tmp/c", "rsync", "/usr/bin/rsync"),
        ]
        .concat();
        feed(&mut det, &log, &mut sink);
        det.flush(&mut NoEnrich, &mut sink);
        assert_eq!(sink.alerts.len(), 1);
        assert_eq!(sink.alerts[0]["file"]["path"], "/tmp/c");
        assert_eq!(sink.alerts[0]["host"]["id"], "id");
    }

    /// A reload keeps the counts of the policy it replaces, summarises its open windows
    /// first, and keeps reporting every exception configured since start.
    #[test]
    fn replace_keeps_counts_and_summarises_first() {
        let rule = crate::rule::builtin(&FileSchema);
        let id = rule.meta.rule_id.clone();
        let budget = Budget {
            max_alerts: 1,
            window_secs: 300,
            dedup: false,
        };
        let exc = |name: &str| Exception {
            name: Some(name.into()),
            rule: None,
            origin: "w.toml:1".into(),
            users: vec![],
            processes: vec![],
            paths: vec![Pattern::new("/tmp/x*", false)],
            parents: vec![],
            sources: vec![],
        };
        let rules = Arc::new(vec![rule]);
        let p1 = Policy::new(vec![exc("one")], budget, &[id.as_str()]);
        let mut det = Detector::new(DetectorConfig::default(), rules.clone(), p1);
        let mut sink = Collect::default();
        let mut log = String::new();
        for (i, p) in ["/tmp/a", "/tmp/b", "/tmp/x1"].iter().enumerate() {
            log.push_str(&creation(20 + i as u64, 1000, p, "scp", "/usr/bin/scp"));
        }
        feed(&mut det, &log, &mut sink);
        let p2 = Policy::new(vec![exc("two")], budget, &[id.as_str()]);
        det.replace(rules, p2, &mut sink);
        assert_eq!(
            sink.summaries.len(),
            2,
            "suppression's start, then the old window summarised at the reload"
        );
        feed(
            &mut det,
            &creation(30, 1000, "/tmp/x2", "scp", "/usr/bin/scp"),
            &mut sink,
        );
        det.flush(&mut NoEnrich, &mut sink);
        let c = det.counters();
        assert_eq!(
            (c.alerts, c.budget_suppressed, c.exception_suppressed),
            (1, 1, 2)
        );
        assert_eq!(
            det.exception_counts(),
            [("one".to_owned(), 1), ("two".to_owned(), 1)]
        );
    }
}

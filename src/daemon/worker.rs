//! daemon::worker: the thread that reads the kernel's records, runs the [`Detector`] on them
//! and hands the alerts to the sink.
//!
//! `[worker] Source (the multicast socket) → Batch → Record → Detector → alerts ──deliver──► sink`
//! (sent from this thread when the sink is idle on UDP, `/dev/log` or TCP, else queued for the
//! syslog thread; never waits)
//!
//! It also spots the records that concern the control thread (a rule removed by an auditd
//! reload, audit switched on or off) and tells it. Everything about detection is the
//! detector's, the same one `scan` runs.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender};
use wwatchd_core::detector::{AlertSink, Detector};
use wwatchd_core::file_event::Enricher;
use wwatchd_core::policy::Policy;
use wwatchd_core::record::Record;
use wwatchd_core::rule::{Rule, RuleMeta};
use wwatchd_core::session::{audit_enabled_set, is_rule_removal};

use super::persist::Persist;
use super::receiver::{BUSY, Batch, COALESCE, Filled, Source};
use super::stats::Stats;
use crate::netlink::{NetlinkError, Readiness};
use crate::syslog::{SinkConfig, SinkHandle, SinkMessage};

/// Rules and policy for the worker, after SIGHUP.
pub(super) type Reloaded = (Arc<Vec<Rule>>, Policy);

/// How often open events are timed out and budget windows closed on the clock.
const EXPIRE_EVERY: Duration = Duration::from_millis(100);

/// Gathers what one batch produced, then sends it to the sink in one message.
struct ToSink {
    cfg: SinkConfig,
    tx: SinkHandle,
    pending: Vec<SinkMessage>,
    stats: Arc<Stats>,
}

impl AlertSink for ToSink {
    fn alert(&mut self, rule: &RuleMeta, json: &[u8]) {
        if json.is_empty() {
            // Rendering into memory fails only on a serializer bug; count it as a loss.
            self.stats
                .daemon
                .sink_channel_drops
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.pending.push(SinkMessage::AlertJson {
            json: json.to_vec(),
            severity: self.cfg.alert_severity(&rule.severity),
        });
    }
}

impl ToSink {
    /// Hands the alerts gathered so far to the sink in one message, delivered from this
    /// thread when the sink is idle ([`SinkHandle::deliver`]).
    fn send(&mut self) {
        let n = self.pending.len();
        let msg = match n {
            0 => return,
            1 => self.pending.pop(),
            _ => Some(SinkMessage::Batch(std::mem::take(&mut self.pending))),
        };
        if let Some(m) = msg
            && self.tx.deliver(m).is_err()
        {
            self.stats
                .daemon
                .sink_channel_drops
                .fetch_add(n as u64, Ordering::Relaxed);
        }
    }
}

/// The channels of the worker thread.
pub(super) struct Links {
    /// Rules and policy after SIGHUP; the control thread wakes the source after sending.
    pub reloads: Receiver<Reloaded>,
    /// A CONFIG_CHANGE removed rules: reconcile now.
    pub reconcile: Sender<()>,
    /// Audit was switched: poll the status now.
    pub audit_switch: Sender<()>,
    pub sink: SinkHandle,
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// Runs until the source ends (at stop, once the socket's backlog is read) or fails; then
/// completes the events still open and closes the budget windows, so what was read is
/// examined either way. A read error is returned after that.
pub(super) fn worker(
    det: Detector,
    source: &mut dyn Source,
    links: Links,
    enricher: Box<dyn Enricher + Send>,
    sink_cfg: SinkConfig,
    stats: Arc<Stats>,
    persist: Persist,
) -> Result<(), NetlinkError> {
    let out = ToSink {
        cfg: sink_cfg,
        tx: links.sink.clone(),
        pending: Vec::new(),
        stats: stats.clone(),
    };
    let mut w = Worker {
        det,
        links,
        enricher,
        out,
        stats,
        persist,
        published: None,
        start: Instant::now(),
    };
    let read = w.examine(source);
    w.det.flush(w.enricher.as_mut(), &mut w.out);
    w.out.send();
    w.persist.after_batch(&mut w.det, &w.stats, true);
    publish(&w.det, &w.stats, &mut w.published);
    read
}

/// The worker thread's state, besides its source.
struct Worker {
    det: Detector,
    links: Links,
    enricher: Box<dyn Enricher + Send>,
    out: ToSink,
    stats: Arc<Stats>,
    persist: Persist,
    /// What [`publish`] last published.
    published: Option<(u64, usize)>,
    /// The origin of the detector's monotonic milliseconds.
    start: Instant,
}

impl Worker {
    fn now_ms(start: Instant) -> u64 {
        start.elapsed().as_millis() as u64
    }

    /// The loop: wait for records (or the clock), read them, examine them.
    fn examine(&mut self, source: &mut dyn Source) -> Result<(), NetlinkError> {
        let mut batch = Batch::new();
        let mut last_expire = Instant::now();
        let mut line = 0u64;
        let mut wait_first = false;
        // Under load: the last wait for a new event ended within BUSY. It stays so while
        // coalescing finds records, and ends with the first wait that lasts.
        let mut busy = false;
        // The last batch ended an event: a wait now is for a new event, not for the rest of one.
        let mut between_events = true;
        loop {
            // A timer only while something waits on the clock: open events (their timeout) or
            // an open budget window (its summary). Idle, the thread sleeps until a record
            // arrives, or the waker ends the wait (a reload, the stop).
            let mut timed_out = false;
            if wait_first {
                let began = Instant::now();
                let r = source.wait(next_wait(&self.det))?;
                timed_out = r == Readiness::Timeout;
                // A wait that began inside an event ends when the rest of it arrives: that
                // says nothing about the load.
                if between_events {
                    busy = r == Readiness::Readable && began.elapsed() < BUSY;
                }
            }
            while let Ok((rules, policy)) = self.links.reloads.try_recv() {
                self.det.replace(rules, policy, &mut self.out);
                self.persist.after_reload(&mut self.det);
            }
            let filled = source.fill(&mut batch, &self.stats)?;
            let had = batch.len() > 0;
            let ended = batch.ends_an_event();
            if had {
                if let Some(ms) = batch.last_stamp_ms() {
                    self.stats.last_stamp_ms.fetch_max(ms, Ordering::Relaxed);
                }
                // `event.created`: when wwatchd saw these records.
                self.det.set_wall_clock(wall_ms());
                for (rtype, text) in batch.records() {
                    line += 1;
                    match Record::from_netlink(rtype, text) {
                        Ok(rec) => {
                            notice_control(&rec, &self.links, &self.stats);
                            let now = Self::now_ms(self.start);
                            let enricher = self.enricher.as_mut();
                            self.det.push(&rec, line, now, enricher, &mut self.out);
                        }
                        Err(_) => self.det.malformed(),
                    }
                }
                batch.clear();
            }
            if self.det.inflight() > 0 || timed_out || last_expire.elapsed() >= EXPIRE_EVERY {
                last_expire = Instant::now();
                let wall = wall_ms();
                self.det.set_wall_clock(wall);
                let now = Self::now_ms(self.start);
                self.det.expire(now, self.enricher.as_mut(), &mut self.out);
                self.det.tick(wall, &mut self.out);
            }
            self.out.send();
            self.persist.after_batch(&mut self.det, &self.stats, false);
            publish(&self.det, &self.stats, &mut self.published);
            if had {
                between_events = ended;
            }
            wait_first = match filled {
                Filled::Ended => return Ok(()),
                Filled::Full => false,
                // Under load, after a whole event, let the next records gather instead of
                // waking for each event.
                Filled::Empty if had && ended && busy => {
                    std::thread::sleep(COALESCE);
                    false
                }
                Filled::Empty => true,
            };
        }
    }
}

/// How long the worker may sleep: until the earliest open budget window ends, or
/// [`EXPIRE_EVERY`] while events are open; `None` (no timer) when nothing waits on the clock.
fn next_wait(det: &Detector) -> Option<Duration> {
    let window = det
        .next_window_end()
        .map(|end| Duration::from_millis(end.saturating_sub(wall_ms())));
    let events = (det.inflight() > 0).then_some(EXPIRE_EVERY);
    match (window, events) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Tells the control thread about records that concern it: a rule removed (an auditd
/// reload) or audit switched on or off.
fn notice_control(rec: &Record<'_>, links: &Links, stats: &Stats) {
    if audit_enabled_set(rec).is_some() {
        let _ = links.audit_switch.try_send(());
    }
    if is_rule_removal(rec) {
        stats
            .daemon
            .reconcile_signals
            .fetch_add(1, Ordering::Relaxed);
        let _ = links.reconcile.try_send(());
    }
}

/// Makes the detector's counters visible to the control thread and the status file. The
/// per-exception labels are rebuilt only when a suppression or a reload changed them.
fn publish(det: &Detector, stats: &Stats, last: &mut Option<(u64, usize)>) {
    let c = det.counters();
    stats.detector.store(&c);
    let key = (c.exception_suppressed, Arc::as_ptr(det.rules()) as usize);
    if *last != Some(key) {
        *last = Some(key);
        let counts = det.exception_counts();
        *stats.exceptions.lock().unwrap_or_else(|p| p.into_inner()) = counts;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::receiver::Batch;
    use crate::scan::{ScanOptions, run as scan};
    use crossbeam_channel::bounded;
    use std::collections::VecDeque;
    use wwatchd_core::detector::DetectorConfig;
    use wwatchd_core::event::CorrelatorConfig;
    use wwatchd_core::file_event::{FileSchema, NoEnrich};
    use wwatchd_core::kernel_rule::wire::format_log_line;

    /// The records of a capture as the kernel multicasts them: type and text, without the
    /// `type=` prefix and auditd's ENRICHED tail.
    fn netlink_records(log: &str) -> Vec<(u16, Vec<u8>)> {
        log.lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                let rec = Record::from_log_line(l.as_bytes()).expect("fixture line parses");
                let text = l.split_once(" msg=").expect("msg=").1;
                let text = text.split('\x1d').next().unwrap_or(text);
                (rec.rtype, text.as_bytes().to_vec())
            })
            .collect()
    }

    /// A source of ready-made batches, one per fill; it ends after the last.
    struct Batches(VecDeque<Batch>);

    impl Batches {
        /// The records in full batches, in order.
        fn of(records: &[(u16, Vec<u8>)]) -> Batches {
            let mut batches = VecDeque::new();
            let mut batch = Batch::new();
            for (t, text) in records {
                batch.push(*t, text);
                if batch.is_full() {
                    batches.push_back(std::mem::replace(&mut batch, Batch::new()));
                }
            }
            batches.push_back(batch);
            Batches(batches)
        }
    }

    impl Source for Batches {
        fn fill(&mut self, batch: &mut Batch, _: &Stats) -> Result<Filled, NetlinkError> {
            if let Some(b) = self.0.pop_front() {
                *batch = b;
            }
            Ok(if self.0.is_empty() {
                Filled::Ended
            } else {
                Filled::Full
            })
        }

        fn wait(&mut self, _: Option<Duration>) -> Result<Readiness, NetlinkError> {
            Ok(Readiness::Readable)
        }
    }

    /// JSON lines without `event.created`, and how many had it differ from `@timestamp`.
    fn without_created(text: &[u8]) -> (String, usize) {
        let mut n = 0;
        let mut out = String::new();
        for l in String::from_utf8_lossy(text).lines() {
            let mut v: serde_json::Value = serde_json::from_str(l).expect("JSON");
            if v["event"]["created"] != v["@timestamp"] {
                n += 1;
            }
            v["event"]["created"] = serde_json::Value::Null;
            out.push_str(&v.to_string());
            out.push('\n');
        }
        (out, n)
    }

    /// The live path without the kernel, for instruction counts (docs/benchmarks.md,
    /// "Instruction counts"): the audit.log named by `WWATCHD_LIVE_CORPUS`, as netlink
    /// delivers it (type and text), in full batches, through [`worker`] with the
    /// built-in rules; alerts queue in the sink channel (room for all). Run it under
    /// callgrind with `--toggle-collect=wwatchd::daemon::worker::worker` so only the worker
    /// is counted (tools/bench-callgrind.sh). Without the variable it does nothing.
    #[test]
    #[ignore = "a benchmark: tools/bench-callgrind.sh runs it"]
    fn live_path_benchmark() {
        let Ok(path) = std::env::var("WWATCHD_LIVE_CORPUS") else {
            return;
        };
        let log = std::fs::read_to_string(&path).expect("corpus");
        let records = netlink_records(&log);
        let mut source = Batches::of(&records);
        let (_rules_tx, rules_rx) = bounded::<Reloaded>(1);
        let (reconcile_tx, _reconcile_rx) = bounded::<()>(16);
        let (switch_tx, _switch_rx) = bounded::<()>(16);
        // Room for every alert, so none is dropped and nothing else runs meanwhile.
        let (sink_tx, sink_rx) = bounded::<SinkMessage>(1 << 20);
        let rules = wwatchd_core::rule::try_builtins(&FileSchema).expect("built-in rules");
        let n = rules.len();
        let stats = Arc::new(Stats::default());
        let links = Links {
            reloads: rules_rx,
            reconcile: reconcile_tx,
            audit_switch: switch_tx,
            sink: SinkHandle::channel(sink_tx),
        };
        let det = Detector::new(
            DetectorConfig::default(),
            Arc::new(rules),
            Policy::pass_all(n),
        );
        worker(
            det,
            &mut source,
            links,
            Box::new(NoEnrich),
            SinkConfig::default(),
            stats.clone(),
            Persist::none(),
        )
        .expect("a list of batches does not fail");
        let messages = sink_rx.try_iter().count();
        let c = stats.detector.snapshot();
        let drops = stats.daemon.sink_channel_drops.load(Ordering::Relaxed);
        eprintln!(
            "live path: records {} alerts {} sink messages {messages} sink drops {drops}",
            c.records, c.alerts
        );
        assert_eq!(c.records, records.len() as u64);
    }

    /// Issue 9: one detector. The same capture through the daemon's worker (records as
    /// netlink delivers them, in batches) and through `scan` (the same records as a RAW
    /// audit.log) gives byte-identical alerts and equal counters.
    #[test]
    fn issue9_worker_and_scan_give_identical_alerts_and_counters() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let mut records = Vec::new();
        for f in [
            "sftp.log",
            "scp_sftp.log",
            "rsync.log",
            "vsftpd.log",
            "dirfd.log",
            "paths.log",
        ] {
            let log = std::fs::read_to_string(dir.join(f)).expect("fixture");
            records.extend(netlink_records(&log));
        }
        let rule = wwatchd_core::rule::builtin(&FileSchema);
        let rules = Arc::new(vec![rule]);

        // The daemon's path.
        let mut source = Batches::of(&records);
        let (_rules_tx, rules_rx) = bounded::<Reloaded>(1);
        let (reconcile_tx, _reconcile_rx) = bounded::<()>(16);
        let (switch_tx, _switch_rx) = bounded::<()>(16);
        let (sink_tx, sink_rx) = bounded::<SinkMessage>(100_000);
        let stats = Arc::new(Stats::default());
        let det = Detector::new(
            DetectorConfig::default(),
            rules.clone(),
            Policy::pass_all(1),
        );
        let links = Links {
            reloads: rules_rx,
            reconcile: reconcile_tx,
            audit_switch: switch_tx,
            sink: SinkHandle::channel(sink_tx),
        };
        worker(
            det,
            &mut source,
            links,
            Box::new(NoEnrich),
            SinkConfig::default(),
            stats.clone(),
            Persist::none(),
        )
        .expect("a list of batches does not fail");
        let mut live = Vec::new();
        let mut collect = |m: SinkMessage| match m {
            SinkMessage::AlertJson { json, .. } => {
                live.extend_from_slice(&json);
                live.push(b'\n');
            }
            other => panic!("unexpected {other:?}"),
        };
        for m in sink_rx.try_iter() {
            match m {
                SinkMessage::Batch(v) => v.into_iter().for_each(&mut collect),
                m => collect(m),
            }
        }

        // scan's path, over the same records written as a RAW log.
        let tmp = tempfile::tempdir().unwrap();
        let log = tmp.path().join("raw.log");
        let mut raw = Vec::new();
        for (t, text) in &records {
            format_log_line(*t, text, &mut raw);
        }
        std::fs::write(&log, raw).unwrap();
        let opts = ScanOptions {
            inputs: vec![log],
            rules: (*rules).clone(),
            policy: Policy::pass_all(1),
            events: false,
            resolve_names: false,
            correlator: CorrelatorConfig::default(),
            progress: false,
            host: Arc::default(),
            history: Vec::new(),
        };
        let mut offline = Vec::new();
        let sum = scan(&opts, &mut offline).unwrap();

        assert!(sum.counters.alerts >= 15, "{}", sum);
        // Identical but for event.created: when the daemon saw the records (scan: their time).
        let ((live_docs, live_wall), (offline_docs, offline_wall)) =
            (without_created(&live), without_created(&offline));
        assert_eq!(live_docs, offline_docs);
        assert_eq!(offline_wall, 0, "scan's event.created is the record's time");
        assert!(
            live_wall > 0,
            "the daemon's event.created is its wall clock"
        );
        let live_counters = stats.detector.snapshot();
        assert_eq!(live_counters, sum.counters);
    }
}

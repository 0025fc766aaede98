//! pipeline: the live daemon (`wwatchd run`), threads and channels around the pure stages.
//!
//! ```text
//!  [recv]  MulticastReader ──try_send──► records (bounded) ──► [correlate]
//!          (drops counted, never blocks)                         Record → session table
//!                                                                Correlator → Builder
//!                                                                → rules → alerts
//!  [correlate] ──try_send──► sink (bounded) ──► [syslog] Sink (reconnect, queue, disk spool)
//!  [correlate] ──CONFIG_CHANGE remove──► reconcile ──► [control]
//!  [signals] SigSet::wait ──► signals ──► [control] (main thread): kernel rules, status,
//!                                         diagnostics, stats file, shutdown
//! ```
//!
//! Start-up order: block signals, open the control socket and the multicast reader (its
//! `SO_RCVBUFFORCE` needs CAP_NET_ADMIN), then [`privilege::drop`] to CAP_AUDIT_READ and
//! CAP_AUDIT_CONTROL (and `--user`), and only then start threads, which inherit that.
//!
//! Kernel audit state is global and shared with auditd: we never send AUDIT_SET with a pid,
//! never lock (enabled 2), and touch only rules whose key starts with
//! [`DAEMON_KEY_PREFIX`]. If audit was off we turn it on and back off at exit.

#![forbid(unsafe_code)]

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded, select};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};

use crate::alert;
use crate::audit_rules::{self, AuditRule, DAEMON_KEY_PREFIX, RealFs};
use crate::config::{self, Loaded, Source};
use crate::enrich::{LocalEnricher, ParentCache};
use crate::event::{Correlator, CorrelatorConfig};
use crate::file_event::{Builder, FileEvent};
use crate::netlink::{Control, MulticastReader, NetlinkError, RecvOutcome};
use crate::policy::{Policy, Verdict, WindowSummary};
use crate::privilege::{self, DaemonUser, PrivilegeError};
use crate::record::Record;
use crate::rule::Rule;
use crate::session::{SessionTable, audit_enabled_set, is_rule_removal};
use crate::syslog::{self, SafeFormatter, Severity, SinkConfig, SinkMessage, Transport};

/// Most records in one batch from the receiver to the correlator.
const BATCH_RECORDS: usize = 256;
/// A batch is closed once its text reaches this many bytes.
const BATCH_BYTES: usize = 64 << 10;
/// Batches waiting between the receiver and the correlator: at most
/// `BATCH_QUEUE * BATCH_RECORDS` = 65,536 records. The kernel's socket buffer (16 MiB asked,
/// 32 MiB granted) is the larger buffer in front of it.
const BATCH_QUEUE: usize = 256;
/// Empty batches kept for reuse, so the hot path does not allocate.
const BATCH_POOL: usize = 32;
/// After handing over a batch that was not full, the receiver lets records gather this long
/// before it reads again: under load that turns one wake-up (of three threads) per record into
/// one per batch, for at most this much added latency. The kernel's socket buffer holds what
/// arrives meanwhile.
const COALESCE: Duration = Duration::from_millis(1);
/// Alerts and diagnostics waiting for the sink thread.
const SINK_QUEUE: usize = 4096;
/// Sessions remembered.
const MAX_SESSIONS: usize = 4096;

/// Everything `wwatchd run` is told.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The detection rules.
    pub rules: Vec<Rule>,
    /// Exceptions and alert budget for `rules`.
    pub policy: Policy,
    /// `rules.watch_dirs` / `--watch-dir`: watched for every rule, in addition to what the
    /// rules name.
    pub watch_dirs: Vec<PathBuf>,
    pub sink: SinkConfig,
    /// Multicast socket receive buffer (bytes).
    pub rcvbuf: usize,
    pub status_file: PathBuf,
    /// Periodic diagnostic summary.
    pub summary_every: Duration,
    /// Reconcile kernel rules this often even without a CONFIG_CHANGE.
    pub reconcile_every: Duration,
    /// Where the configuration came from: SIGHUP loads it again.
    pub source: Source,
    /// `--user`: run as this user (started as root), keeping [`privilege::KEPT`].
    pub user: Option<String>,
}

impl RunConfig {
    /// The daemon's settings from a loaded configuration.
    pub fn new(loaded: &Loaded, source: Source) -> RunConfig {
        let c = &loaded.config;
        let sink = SinkConfig {
            transport: c.output.transport.clone(),
            facility: c.output.facility,
            max_message_bytes: c.output.max_message_bytes,
            queue_capacity: c.output.queue_capacity,
            spool: c.output.spool.clone(),
            ..SinkConfig::default()
        };
        RunConfig {
            rules: loaded.rules.clone(),
            policy: loaded.policy(),
            watch_dirs: c.rules.watch_dirs.clone(),
            sink,
            rcvbuf: c.input.rcvbuf,
            status_file: c.daemon.status_file.clone(),
            summary_every: c.daemon.summary_interval,
            reconcile_every: c.rules.reconcile_interval,
            source,
            user: c.daemon.user.clone(),
        }
    }
}

/// Why the daemon did not start or stopped; `main` maps these to sysexits.
#[derive(Debug)]
pub enum RunError {
    /// A rule file or option is wrong (EX_CONFIG).
    Config(String),
    /// Not allowed to talk to the kernel's audit subsystem (EX_NOPERM).
    Permission(String),
    /// Anything else (EX_SOFTWARE).
    Software(String),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Config(s) | RunError::Permission(s) | RunError::Software(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for RunError {}

fn netlink_error(e: NetlinkError) -> RunError {
    use nix::errno::Errno;
    match e.errno() {
        Some(Errno::EPERM | Errno::EACCES) => RunError::Permission(e.to_string()),
        _ => RunError::Software(e.to_string()),
    }
}

/// The daemon's counters, shared by every thread and written to the status file.
#[derive(Debug, Default)]
pub struct Stats {
    pub records: AtomicU64,
    pub events: AtomicU64,
    pub creations: AtomicU64,
    pub alerts: AtomicU64,
    /// Multicast socket overflows (each one a burst of lost records).
    pub enobufs: AtomicU64,
    /// Records dropped because the correlator's queue was full.
    pub channel_drops: AtomicU64,
    /// Alerts or diagnostics dropped because the sink's queue was full.
    pub sink_channel_drops: AtomicU64,
    /// Messages the sink dropped (its own queue overflowed while the collector was away).
    pub sink_drops: AtomicU64,
    /// Messages written to the disk spool (the collector was away, or at shutdown).
    pub spooled: AtomicU64,
    /// Messages in the disk spool now (a gauge).
    pub spool_pending: AtomicU64,
    /// Bytes of the disk spool now (a gauge).
    pub spool_bytes: AtomicU64,
    /// Spooled messages dropped, oldest first, because the spool was at its cap.
    pub spool_dropped: AtomicU64,
    /// Unreadable regions skipped in the spool (torn writes after a crash, damage).
    pub spool_corrupt: AtomicU64,
    pub serial_gaps: AtomicU64,
    pub timed_out: AtomicU64,
    pub evicted: AtomicU64,
    pub malformed: AtomicU64,
    /// Increase of the kernel's `lost` counter since start.
    pub kernel_lost: AtomicU64,
    /// Our rules that were found missing and loaded again.
    pub rule_reinstalls: AtomicU64,
    pub rules_loaded: AtomicU64,
    pub sessions: AtomicU64,
    pub reconcile_signals: AtomicU64,
    /// Alerts an exception suppressed (all exceptions; per exception in `exceptions`).
    pub exception_suppressed: AtomicU64,
    /// Alerts the alert budget held back.
    pub budget_suppressed: AtomicU64,
    /// Alerts held back as duplicates within a budget window.
    pub deduplicated: AtomicU64,
    /// Summary alerts of budget windows with alerts held back.
    pub budget_summaries: AtomicU64,
    /// The kernel's audit `enabled` flag as last seen (0 off, 1 on, 2 locked): a gauge.
    pub audit_enabled: AtomicU64,
    /// Times kernel audit was found switched off by someone else (`auditctl -e 0`): no
    /// records at all until it is on again.
    pub audit_disabled: AtomicU64,
    /// Records the kernel still held (its backlog) from before a stop when the daemon gave up
    /// waiting for them at shutdown: never examined.
    pub shutdown_unread: AtomicU64,
    /// Alerts suppressed per exception label, since start (kept across reloads).
    pub exceptions: Mutex<Vec<(String, u64)>>,
    /// Milliseconds since the epoch in the stamp of the newest record handed to the
    /// correlator (not a counter: the shutdown waits for the kernel to pass the stop time).
    pub last_stamp_ms: AtomicU64,
}

impl Stats {
    /// Name and value of every counter, in a fixed order.
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        vec![
            ("records", g(&self.records)),
            ("events", g(&self.events)),
            ("creations", g(&self.creations)),
            ("alerts", g(&self.alerts)),
            ("enobufs", g(&self.enobufs)),
            ("channel_drops", g(&self.channel_drops)),
            ("sink_channel_drops", g(&self.sink_channel_drops)),
            ("sink_drops", g(&self.sink_drops)),
            ("spooled", g(&self.spooled)),
            ("spool_pending", g(&self.spool_pending)),
            ("spool_bytes", g(&self.spool_bytes)),
            ("spool_dropped", g(&self.spool_dropped)),
            ("spool_corrupt", g(&self.spool_corrupt)),
            ("serial_gaps", g(&self.serial_gaps)),
            ("timed_out", g(&self.timed_out)),
            ("evicted", g(&self.evicted)),
            ("malformed", g(&self.malformed)),
            ("kernel_lost", g(&self.kernel_lost)),
            ("rule_reinstalls", g(&self.rule_reinstalls)),
            ("rules_loaded", g(&self.rules_loaded)),
            ("sessions", g(&self.sessions)),
            ("reconcile_signals", g(&self.reconcile_signals)),
            ("exception_suppressed", g(&self.exception_suppressed)),
            ("budget_suppressed", g(&self.budget_suppressed)),
            ("deduplicated", g(&self.deduplicated)),
            ("budget_summaries", g(&self.budget_summaries)),
            ("audit_enabled", g(&self.audit_enabled)),
            ("audit_disabled", g(&self.audit_disabled)),
            ("shutdown_unread", g(&self.shutdown_unread)),
        ]
    }

    /// Counts one alert suppressed by the exception labelled `label`.
    fn count_exception(&self, label: &str) {
        self.exception_suppressed.fetch_add(1, Ordering::Relaxed);
        let mut v = self.exceptions.lock().unwrap_or_else(|p| p.into_inner());
        match v.iter_mut().find(|(l, _)| l == label) {
            Some((_, n)) => *n += 1,
            None => v.push((label.to_owned(), 1)),
        }
    }

    /// Lists exceptions with no count yet, so the status file shows every one configured.
    fn register_exceptions(&self, labels: &[String]) {
        let mut v = self.exceptions.lock().unwrap_or_else(|p| p.into_inner());
        for l in labels {
            if !v.iter().any(|(x, _)| x == l) {
                v.push((l.clone(), 0));
            }
        }
    }

    /// Per-exception counts: every exception configured since start, in order.
    pub fn exception_counts(&self) -> Vec<(String, u64)> {
        self.exceptions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The counters that mean records or alerts were lost.
    fn losses(&self) -> [u64; 8] {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        [
            g(&self.enobufs),
            g(&self.channel_drops),
            g(&self.serial_gaps),
            g(&self.kernel_lost),
            g(&self.sink_drops) + g(&self.sink_channel_drops),
            g(&self.spool_dropped),
            g(&self.spool_corrupt),
            g(&self.rule_reinstalls),
        ]
    }

    /// Copy the sink's counters in.
    fn copy_sink(&self, s: &syslog::StatsSnapshot) {
        let set = |a: &AtomicU64, v: u64| a.store(v, Ordering::Relaxed);
        set(&self.sink_drops, s.dropped);
        set(&self.spooled, s.spooled);
        set(&self.spool_pending, s.spool_pending);
        set(&self.spool_bytes, s.spool_bytes);
        set(&self.spool_dropped, s.spool_dropped);
        set(&self.spool_corrupt, s.spool_corrupt);
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
            c.insert(k.into(), v.into());
        }
        m.insert("counters".into(), c.into());
        let mut e = serde_json::Map::new();
        for (k, v) in self.exception_counts() {
            e.insert(k, v.into());
        }
        m.insert("exceptions".into(), e.into());
        m.into()
    }

    fn summary(&self) -> String {
        let mut s = self
            .counters()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
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

const LOSS_NAMES: [&str; 8] = [
    "enobufs",
    "channel_drops",
    "serial_gaps",
    "kernel_lost",
    "sink_drops",
    "spool_dropped",
    "spool_corrupt",
    "rule_reinstalls",
];

/// Writes `stats` to `path` atomically (temp file + rename).
fn write_status(path: &Path, stats: &Stats, state: &str) -> std::io::Result<()> {
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

/// Records as they cross from the receiver to the correlator: what one wake-up of the
/// receiver found queued, in one buffer. Batches are recycled through a pool.
struct Batch {
    text: Vec<u8>,
    /// Record type and end offset in `text` of each record.
    items: Vec<(u16, usize)>,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            text: Vec::with_capacity(BATCH_BYTES),
            items: Vec::with_capacity(BATCH_RECORDS),
        }
    }

    fn push(&mut self, rtype: u16, text: &[u8]) {
        self.text.extend_from_slice(text);
        self.items.push((rtype, self.text.len()));
    }

    fn is_full(&self) -> bool {
        self.items.len() >= BATCH_RECORDS || self.text.len() >= BATCH_BYTES
    }

    fn len(&self) -> usize {
        self.items.len()
    }

    fn clear(&mut self) {
        self.text.clear();
        self.items.clear();
    }

    /// Milliseconds since the epoch in the stamp of the last record, if it has one.
    fn last_stamp_ms(&self) -> Option<u64> {
        let (rtype, end) = *self.items.last()?;
        let start = self
            .items
            .len()
            .checked_sub(2)
            .and_then(|i| self.items.get(i))
            .map_or(0, |&(_, e)| e);
        let rec = Record::from_netlink(rtype, self.text.get(start..end)?).ok()?;
        Some(rec.stamp.millis())
    }

    fn records(&self) -> impl Iterator<Item = (u16, &[u8])> {
        let mut start = 0;
        self.items.iter().map(move |&(rtype, end)| {
            let text = &self.text[start..end];
            start = end;
            (rtype, text)
        })
    }
}

/// Diagnostics go to stderr and, unless alerts go to stdout (whose sink writes them to
/// stderr itself), to the sink.
#[derive(Clone)]
struct Diag {
    tx: Sender<SinkMessage>,
    to_sink: bool,
    /// stderr is the journal ([`crate::journal`]): each line carries its syslog level as
    /// a `<N>` prefix, which journald reads (systemd.exec(5), `SyslogLevelPrefix=`).
    journal: bool,
    stats: Arc<Stats>,
}

impl Diag {
    fn send(&self, severity: Severity, text: String) {
        if self.journal {
            eprintln!("<{}>{text}", severity.code());
        } else {
            eprintln!("wwatchd: {text}");
        }
        if self.to_sink {
            let m = SinkMessage::Diagnostic { text, severity };
            if self.tx.try_send(m).is_err() {
                self.stats
                    .sink_channel_drops
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn spawn_named<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<JoinHandle<T>, RunError> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(f)
        .map_err(|e| RunError::Software(format!("cannot start thread {name}: {e}")))
}

/// The receiver: as thin as possible, so the socket buffer never fills behind it. It waits
/// for one datagram, then takes whatever else is already queued (up to a batch) without
/// waiting, and hands the batch over in one channel operation. When told to stop it reads
/// what the socket still holds ([`drain_at_stop`]) and hands that over too, so records the
/// kernel delivered before the stop are examined, not dropped with the socket.
fn receiver(
    mut reader: MulticastReader,
    tx: Sender<Batch>,
    pool: Receiver<Batch>,
    stop: Arc<AtomicBool>,
    stats: Arc<Stats>,
) -> Result<(), String> {
    let mut batch = Batch::new();
    while !stop.load(Ordering::Relaxed) {
        let mut push = |rtype: u16, text: &[u8]| batch.push(rtype, text);
        let mut out = reader.recv(Some(Duration::from_millis(200)), &mut push);
        loop {
            match out {
                Ok(RecvOutcome::Enobufs) => {
                    stats.enobufs.fetch_add(1, Ordering::Relaxed);
                }
                Ok(RecvOutcome::Timeout) => break,
                Ok(RecvOutcome::Messages(_)) => {}
                Err(e) => return Err(e.to_string()),
            }
            if batch.is_full() {
                break;
            }
            out = reader.recv_ready(&mut |rtype, text| batch.push(rtype, text));
        }
        if batch.len() == 0 {
            continue;
        }
        if let Some(ms) = batch.last_stamp_ms() {
            stats.last_stamp_ms.fetch_max(ms, Ordering::Relaxed);
        }
        let full = batch.is_full();
        let next = pool.try_recv().unwrap_or_else(|_| Batch::new());
        match tx.try_send(std::mem::replace(&mut batch, next)) {
            Ok(()) => {}
            Err(TrySendError::Full(mut b)) => {
                stats
                    .channel_drops
                    .fetch_add(b.len() as u64, Ordering::Relaxed);
                b.clear();
                batch = b;
            }
            Err(TrySendError::Disconnected(_)) => stop.store(true, Ordering::Relaxed),
        }
        if !full {
            std::thread::sleep(COALESCE);
        }
    }
    drain_at_stop(&mut reader, batch, &tx, &stats);
    Ok(())
}

/// Longest the receiver keeps reading at stop. The socket holds at most its buffer's worth;
/// under a storm that never ends, this bounds the shutdown.
const DRAIN_MAX: Duration = Duration::from_millis(500);

/// At stop: reads the datagrams already queued on the socket (until it is empty, or for at
/// most [`DRAIN_MAX`]) and hands them to the correlator, waiting for room this time: the
/// correlator runs until the receiver has gone.
fn drain_at_stop(
    reader: &mut MulticastReader,
    mut batch: Batch,
    tx: &Sender<Batch>,
    stats: &Stats,
) {
    let deadline = Instant::now() + DRAIN_MAX;
    loop {
        let out = reader.recv_ready(&mut |rtype, text| batch.push(rtype, text));
        let done = match out {
            Ok(RecvOutcome::Timeout) | Err(_) => true,
            Ok(RecvOutcome::Enobufs) => {
                stats.enobufs.fetch_add(1, Ordering::Relaxed);
                false
            }
            Ok(RecvOutcome::Messages(_)) => false,
        };
        let done = done || Instant::now() >= deadline;
        if batch.is_full() || (done && batch.len() > 0) {
            let n = batch.len() as u64;
            if tx
                .send(std::mem::replace(&mut batch, Batch::new()))
                .is_err()
            {
                stats.channel_drops.fetch_add(n, Ordering::Relaxed);
                return;
            }
        }
        if done {
            return;
        }
    }
}

/// Correlate, build, enrich and match; alerts go to the sink.
struct Matcher {
    rules: Arc<Vec<Rule>>,
    /// Each rule's part of its alerts, rendered once per rule set.
    prepared: Vec<alert::PreparedRule>,
    /// Exceptions and budget; its windows live here, in the correlate thread.
    policy: Policy,
    /// The policy's exception labels, for the counters.
    labels: Vec<String>,
    sink_cfg: SinkConfig,
    tx: Sender<SinkMessage>,
    /// Alerts and summaries of the current batch, sent together by [`Matcher::send_pending`].
    pending: Vec<SinkMessage>,
    stats: Arc<Stats>,
}

/// Queues the summary alert of a budget window.
fn push_summary(
    rules: &[Rule],
    sink_cfg: &SinkConfig,
    pending: &mut Vec<SinkMessage>,
    stats: &Stats,
    s: WindowSummary,
) {
    let Some(rule) = rules.get(s.rule) else {
        return;
    };
    stats.budget_summaries.fetch_add(1, Ordering::Relaxed);
    let prepared = alert::PreparedRule::new(&rule.meta);
    let json = serde_json::Value::Object(alert::summary_document(&s, &prepared));
    pending.push(SinkMessage::Alert {
        json,
        severity: sink_cfg.alert_severity(&rule.meta.severity),
    });
}

fn prepare(rules: &[Rule]) -> Vec<alert::PreparedRule> {
    rules
        .iter()
        .map(|r| alert::PreparedRule::new(&r.meta))
        .collect()
}

impl Matcher {
    fn new(
        rules: Arc<Vec<Rule>>,
        policy: Policy,
        sink_cfg: SinkConfig,
        tx: Sender<SinkMessage>,
        stats: Arc<Stats>,
    ) -> Matcher {
        let labels = labels(&policy);
        stats.register_exceptions(&labels);
        Matcher {
            prepared: prepare(&rules),
            rules,
            policy,
            labels,
            sink_cfg,
            tx,
            pending: Vec::new(),
            stats,
        }
    }

    /// Hands the alerts gathered so far to the sink in one message.
    fn send_pending(&mut self) {
        let n = self.pending.len();
        let msg = match n {
            0 => return,
            1 => self.pending.pop(),
            _ => Some(SinkMessage::Batch(std::mem::take(&mut self.pending))),
        };
        if let Some(m) = msg
            && self.tx.try_send(m).is_err()
        {
            self.stats
                .sink_channel_drops
                .fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    /// Closes the budget windows that ended by now (wall clock, as the events' stamps).
    fn tick(&mut self) {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        let (rules, cfg, pending, stats) =
            (&self.rules, &self.sink_cfg, &mut self.pending, &self.stats);
        self.policy
            .tick(now, &mut |s| push_summary(rules, cfg, pending, stats, s));
        self.send_pending();
    }

    /// Installs reloaded rules and policy; the old policy's open windows are summarised
    /// first, so nothing held back goes unreported.
    fn replace(&mut self, rules: Arc<Vec<Rule>>, policy: Policy) {
        self.close_windows();
        self.labels = labels(&policy);
        self.stats.register_exceptions(&self.labels);
        self.prepared = prepare(&rules);
        self.rules = rules;
        self.policy = policy;
    }

    /// Summarises every open budget window now (reload, shutdown) and sends what is pending.
    fn close_windows(&mut self) {
        let (rules, cfg, pending, stats) =
            (&self.rules, &self.sink_cfg, &mut self.pending, &self.stats);
        self.policy
            .flush(&mut |s| push_summary(rules, cfg, pending, stats, s));
        self.send_pending();
    }

    fn on_creation(
        &mut self,
        fe: &mut FileEvent<'_>,
        sessions: &SessionTable,
        parents: &mut ParentCache,
    ) {
        self.stats.creations.fetch_add(1, Ordering::Relaxed);
        fe.context = Default::default();
        let exe = fe.exe.as_ref().map(|e| e.bytes());
        if let Some(s) = sessions.lookup(fe.ses, fe.pid, fe.ppid, exe) {
            s.fill(&mut fe.context);
        }
        if let Some(ppid) = fe.ppid {
            let (n, e) = parents.lookup(ppid);
            fe.context.parent_name = n;
            fe.context.parent_executable = e;
        }
        let fe = &*fe;
        let (rules, cfg, pending, stats) =
            (&self.rules, &self.sink_cfg, &mut self.pending, &self.stats);
        for (i, (rule, prepared)) in rules.iter().zip(&self.prepared).enumerate() {
            if !rule.query.matches(fe) {
                continue;
            }
            let verdict = self
                .policy
                .decide(i, fe, &mut |s| push_summary(rules, cfg, pending, stats, s));
            match verdict {
                Verdict::Send => {
                    stats.alerts.fetch_add(1, Ordering::Relaxed);
                    let mut json = Vec::with_capacity(2048);
                    if let Err(e) = alert::write_alert_with(&mut json, fe, prepared, SafeFormatter)
                    {
                        // Rendering into memory fails only on a serde bug; count it as a loss.
                        eprintln!("wwatchd: cannot render an alert: {e}");
                        stats.sink_channel_drops.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let severity = cfg.alert_severity(&rule.meta.severity);
                    pending.push(SinkMessage::AlertJson { json, severity });
                }
                Verdict::Excepted(ix) => {
                    stats.count_exception(self.labels.get(ix).map_or("?", String::as_str))
                }
                Verdict::Duplicate => {
                    stats.deduplicated.fetch_add(1, Ordering::Relaxed);
                }
                Verdict::OverBudget => {
                    stats.budget_suppressed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

fn labels(p: &Policy) -> Vec<String> {
    p.exceptions()
        .iter()
        .enumerate()
        .map(|(i, e)| e.label(i))
        .collect()
}

/// Rules and policy for the correlate thread, after SIGHUP.
type Reloaded = (Arc<Vec<Rule>>, Policy);

/// Runs until the receiver has gone (its channel disconnects), so what it hands over at stop
/// is examined; then completes the events still open and closes the budget windows.
fn correlate(
    rx: Receiver<Batch>,
    pool: Sender<Batch>,
    mut matcher: Matcher,
    new_rules: Receiver<Reloaded>,
    reconcile: Sender<()>,
    audit_switch: Sender<()>,
) {
    let start = Instant::now();
    let now_ms = || start.elapsed().as_millis() as u64;
    let mut corr = Correlator::new(CorrelatorConfig::default());
    let mut builder = Builder::new();
    let mut enricher = LocalEnricher::new(true);
    let mut sessions = SessionTable::new(MAX_SESSIONS);
    let mut parents = ParentCache::new();
    let mut last_expire = Instant::now();
    let mut line = 0u64;
    loop {
        if let Ok((rules, policy)) = new_rules.try_recv() {
            matcher.replace(rules, policy);
        }
        let msg = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(m) => Some(m),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => None,
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        };
        if let Some(mut batch) = msg {
            matcher
                .stats
                .records
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            for (rtype, text) in batch.records() {
                line += 1;
                match Record::from_netlink(rtype, text) {
                    Ok(rec) => {
                        if sessions.observe(&rec) {
                            matcher
                                .stats
                                .sessions
                                .store(sessions.len() as u64, Ordering::Relaxed);
                        }
                        if audit_enabled_set(&rec).is_some() {
                            let _ = audit_switch.try_send(());
                        }
                        if is_rule_removal(&rec) {
                            matcher
                                .stats
                                .reconcile_signals
                                .fetch_add(1, Ordering::Relaxed);
                            let _ = reconcile.try_send(());
                        }
                        corr.push(&rec, line, now_ms(), &mut |ev| {
                            matcher.stats.events.fetch_add(1, Ordering::Relaxed);
                            builder.creations(ev, &mut enricher, &mut |fe| {
                                matcher.on_creation(fe, &sessions, &mut parents)
                            });
                        });
                    }
                    Err(_) => {
                        matcher.stats.malformed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            batch.clear();
            let _ = pool.try_send(batch);
            matcher.send_pending();
        }
        if last_expire.elapsed() >= Duration::from_millis(100) {
            last_expire = Instant::now();
            corr.expire(now_ms(), &mut |ev| {
                matcher.stats.events.fetch_add(1, Ordering::Relaxed);
                builder.creations(ev, &mut enricher, &mut |fe| {
                    matcher.on_creation(fe, &sessions, &mut parents)
                });
            });
            let cs = corr.stats();
            let st = &matcher.stats;
            st.serial_gaps.store(cs.gaps, Ordering::Relaxed);
            st.timed_out.store(cs.timed_out, Ordering::Relaxed);
            st.evicted.store(cs.evicted, Ordering::Relaxed);
            matcher.tick();
        }
    }
    corr.flush(&mut |ev| {
        builder.creations(ev, &mut enricher, &mut |fe| {
            matcher.on_creation(fe, &sessions, &mut parents)
        });
    });
    matcher.close_windows();
}

/// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread, and so in every thread it
/// starts afterwards; [`signal_thread`] then receives them.
fn block_signals() -> Result<SigSet, RunError> {
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    set.add(Signal::SIGHUP);
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None)
        .map_err(|e| RunError::Software(format!("cannot block signals: {e}")))?;
    Ok(set)
}

/// Starts a thread that waits for the signals of `set` (blocked) and forwards them.
fn signal_thread(set: SigSet) -> Result<Receiver<Signal>, RunError> {
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
struct KernelRules {
    ctl: Control,
    /// What we want loaded now.
    desired: Vec<AuditRule>,
    rule_sources: Vec<Rule>,
    watch_dirs: Vec<PathBuf>,
    /// Audit is locked (enabled 2): never add or delete.
    locked: bool,
}

impl KernelRules {
    fn derive(&self, rules: &[Rule]) -> Result<Vec<AuditRule>, String> {
        audit_rules::derive(rules, &self.watch_dirs, &RealFs).map_err(|e| e.to_string())
    }

    /// Re-derives (new hidden directories under /home), loads what is missing, deletes
    /// what is no longer wanted. Returns how many previously wanted rules were re-added.
    fn reconcile(&mut self, diag: &Diag, rules: Option<&[Rule]>) -> Result<u64, RunError> {
        let sources = rules.unwrap_or(&self.rule_sources);
        let desired = match self.derive(sources) {
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
        let missing: Vec<AuditRule> = audit_rules::missing(&mut self.ctl, &desired)
            .map_err(|e| RunError::Software(e.to_string()))?
            .into_iter()
            .cloned()
            .collect();
        let mut reinstalled = 0;
        if !missing.is_empty() {
            let report = audit_rules::install(&mut self.ctl, &missing)
                .map_err(|e| RunError::Software(e.to_string()))?;
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
            let listed = self
                .ctl
                .list_rules()
                .map_err(|e| RunError::Software(e.to_string()))?;
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
struct AuditSwitch {
    enabled: u32,
    off_since: Option<Instant>,
}

/// How long rule removals must have stopped before we reinstall ours. An auditd reload
/// (`augenrules --load`: `-D`, then the rules files, ours among them) removes our rules and
/// adds them again within milliseconds; reinstalling at the first removal raced it, and its
/// load then failed on our rule with "Rule exists" (on Debian 13 that failed
/// audit-rules.service, and `systemctl restart auditd` with it: tests/vm, issue 13).
const RELOAD_SETTLE: Duration = Duration::from_millis(500);

/// Status polls while audit is off, to see it come back (no record tells of that).
const POLL_WHILE_OFF: Duration = Duration::from_secs(1);
/// Status polls otherwise (the kernel's `lost`); a switch-off record triggers one at once.
const POLL_STATUS: Duration = Duration::from_secs(15);

impl AuditSwitch {
    /// `enabled` as it is once the daemon has started (it turns 0 into 1 itself).
    fn new(enabled: u32) -> AuditSwitch {
        AuditSwitch {
            enabled,
            off_since: None,
        }
    }

    fn poll_every(&self) -> Duration {
        if self.enabled == 0 {
            POLL_WHILE_OFF
        } else {
            POLL_STATUS
        }
    }

    /// A newly polled `enabled`: the diagnostic for a change, if any.
    fn observe(&mut self, enabled: u32, now: Instant) -> Option<(Severity, String)> {
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
    fn note(&self, now: Instant) -> Option<String> {
        self.off_since.map(|t| {
            format!(
                "; KERNEL AUDIT DISABLED by someone else for {} s (enabled 0): no records",
                now.saturating_duration_since(t).as_secs()
            )
        })
    }
}

/// What a status file left by an earlier run says, if that run did not stop cleanly (its
/// state is still `running`): it was killed or crashed, and what it held in memory is gone.
/// `alive(pid)` tells whether that pid is a running wwatchd, which means another daemon
/// writes the same file. `None` for a clean stop, our own pid, or a file we cannot read.
fn previous_run_note(text: &str, own_pid: u32, alive: &dyn Fn(u32) -> bool) -> Option<String> {
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
    let shown: Vec<String> = ["alerts", "budget_suppressed"]
        .into_iter()
        .chain(LOSS_NAMES)
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
fn is_wwatchd(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim_end() == "wwatchd")
}

/// Longest the shutdown waits for the kernel to hand over the records from before the stop.
const STOP_WAIT: Duration = Duration::from_secs(2);

/// At shutdown, before the receiver stops: waits until the kernel has multicast every record
/// from before the stop, that is until a record stamped at or after `stop_ms` has arrived or
/// the kernel's backlog is empty, for at most [`STOP_WAIT`]. Returns the backlog left when it
/// gave up (0 when it did not): records never examined, which the caller counts and reports.
fn wait_for_kernel(ctl: &mut Control, stats: &Stats, stop_ms: u64) -> u64 {
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

/// `N exceptions, budget M alerts per W s per rule`, for the log.
fn describe_policy(p: &Policy) -> String {
    let b = p.budget();
    let budget = if b.max_alerts == 0 {
        "no alert budget".to_owned()
    } else {
        format!(
            "budget {} alerts per {} s per rule",
            b.max_alerts, b.window_secs
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
fn reload(
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

/// Opens the multicast reader (SO_RCVBUFFORCE: CAP_NET_ADMIN), then drops to
/// [`privilege::KEPT`] and, with `--user`, to that user. Must run before any thread starts.
fn open_and_drop(
    cfg: &RunConfig,
    user: Option<&DaemonUser>,
    early: &mut Vec<(Severity, String)>,
) -> Result<(MulticastReader, privilege::Dropped), RunError> {
    let (reader, warning) = MulticastReader::open(cfg.rcvbuf).map_err(netlink_error)?;
    if let Some(w) = warning {
        early.push((Severity::Warning, w));
    }
    if let Some(u) = user
        && nix::unistd::getuid().is_root()
        && let Some(dir) = cfg.status_file.parent()
        && let Err(e) = privilege::prepare_dir(dir, u)
    {
        early.push((
            Severity::Warning,
            format!(
                "status file directory not made writable for {}: {e}",
                u.name
            ),
        ));
    }
    if let Some(u) = user
        && nix::unistd::getuid().is_root()
        && let Some(sp) = &cfg.sink.spool
        && cfg.sink.transport != Transport::Stdout
        && let Err(e) = privilege::prepare_dir(&sp.dir, u)
    {
        early.push((
            Severity::Warning,
            format!("spool directory not made usable for {}: {e}", u.name),
        ));
    }
    let dropped = privilege::drop(user).map_err(|e| match e {
        PrivilegeError::NoSuchUser(_) => RunError::Config(e.to_string()),
        PrivilegeError::NotRoot { .. } | PrivilegeError::Missing(_) => {
            RunError::Permission(e.to_string())
        }
        PrivilegeError::Os { .. } => RunError::Software(e.to_string()),
    })?;
    Ok((reader, dropped))
}

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(mut cfg: RunConfig) -> Result<(), RunError> {
    let rules = cfg.rules.clone();
    let desired = audit_rules::derive(&rules, &cfg.watch_dirs, &RealFs)
        .map_err(|e| RunError::Config(e.to_string()))?;
    cfg.sink
        .validate()
        .map_err(|e| RunError::Config(e.to_string()))?;
    let user = cfg
        .user
        .as_deref()
        .map(DaemonUser::lookup)
        .transpose()
        .map_err(|e| RunError::Config(e.to_string()))?;
    // Before the kernel is touched: an unusable spool directory is a configuration error.
    // With --user the spool belongs to that user, so it is opened after the switch.
    let mut spool = match user {
        None => Some(syslog::open_spool(&cfg.sink).map_err(|e| RunError::Config(e.to_string()))?),
        Some(_) => None,
    };

    // Before anything changes kernel state: a signal now waits until we can clean up.
    let sigset = block_signals()?;
    let stats = Arc::new(Stats::default());
    stats
        .rules_loaded
        .store(rules.len() as u64, Ordering::Relaxed);

    let mut ctl = Control::open().map_err(netlink_error)?;
    let status = ctl.get_status().map_err(netlink_error)?;
    // Diagnostics from before the sink exists (it starts after the privilege drop).
    let mut early: Vec<(Severity, String)> = Vec::new();
    let mut restore_disabled = false;
    let locked = status.enabled == 2;
    if status.pid == 0 {
        // With no audit daemon registered, the kernel hands every record to printk as well
        // (kernel/audit.c, kauditd_hold_skb), ours included.
        early.push((
            Severity::Warning,
            "no audit daemon is registered with the kernel (auditd is not running): the \
             kernel also writes every audit record, those of wwatchd's rules included, to the \
             kernel log (dmesg, the journal), rate-limited by printk; install or start auditd \
             to keep them out of it"
                .into(),
        ));
    }
    if status.enabled == 0 {
        ctl.set_enabled(1).map_err(netlink_error)?;
        restore_disabled = true;
        early.push((
            Severity::Notice,
            "kernel audit was disabled (enabled 0); enabled it, and will disable it again at exit"
                .into(),
        ));
    }
    let opened = open_and_drop(&cfg, user.as_ref(), &mut early);
    let (reader, dropped) = match opened {
        Ok(r) => r,
        Err(e) => {
            if restore_disabled {
                let _ = ctl.set_enabled(0);
            }
            return Err(e);
        }
    };

    let spool = match spool.take() {
        Some(s) => Ok(s),
        None => syslog::open_spool(&cfg.sink).map_err(|e| RunError::Config(e.to_string())),
    };
    // Only now, with the reduced capabilities, do threads start: they inherit them.
    let (sink_tx, sink_rx) = bounded::<SinkMessage>(SINK_QUEUE);
    let started = spool.and_then(|spool| {
        signal_thread(sigset).and_then(|signals| {
            syslog::spawn_with(cfg.sink.clone(), spool, sink_rx)
                .map(|sink| (signals, sink))
                .map_err(|e| RunError::Config(e.to_string()))
        })
    });
    let (signals, sink) = match started {
        Ok(r) => r,
        Err(e) => {
            if restore_disabled {
                let _ = ctl.set_enabled(0);
            }
            return Err(e);
        }
    };
    // Under systemd stderr is the journal already; a copy through the local syslog socket
    // (journald's own, on such a host) would log each diagnostic twice. A remote or other
    // sink still gets them.
    let journal = crate::journal::stderr_is_journal();
    let diag = Diag {
        tx: sink_tx.clone(),
        to_sink: match &cfg.sink.transport {
            Transport::Stdout => false,
            Transport::Local { path, .. } => !(journal && path == Path::new("/dev/log")),
            _ => true,
        },
        journal,
        stats: stats.clone(),
    };
    for (severity, text) in early {
        diag.send(severity, text);
    }
    diag.send(Severity::Notice, format!("privileges: {dropped}"));
    if let Some(r) = &sink.spool_report {
        for w in &r.warnings {
            diag.send(Severity::Warning, w.clone());
        }
        for c in &r.corrupt {
            diag.send(Severity::Warning, format!("spool: unreadable region: {c}"));
        }
        if r.messages > 0 || r.dropped > 0 || !r.corrupt.is_empty() {
            diag.send(Severity::Notice, r.summary());
        }
    }
    // Before our first status write replaces it: did the previous run stop cleanly?
    if let Ok(text) = std::fs::read_to_string(&cfg.status_file)
        && let Some(note) = previous_run_note(&text, std::process::id(), &is_wwatchd)
    {
        diag.send(Severity::Warning, note);
    }
    stats.copy_sink(&sink.stats.snapshot());

    let mut kr = KernelRules {
        ctl,
        desired: desired.clone(),
        rule_sources: rules.clone(),
        watch_dirs: cfg.watch_dirs.clone(),
        locked,
    };
    if locked {
        let missing = audit_rules::missing(&mut kr.ctl, &desired)
            .map_err(|e| RunError::Software(e.to_string()))?;
        if missing.is_empty() {
            diag.send(
                Severity::Notice,
                format!(
                    "kernel audit is locked (enabled 2): rules cannot be changed until reboot; \
                     all {} derived rules are loaded, running on them",
                    desired.len()
                ),
            );
        } else {
            diag.send(
                Severity::Error,
                format!(
                    "kernel audit is LOCKED (enabled 2): rules cannot be changed until reboot; \
                     running on the rules already loaded. Missing coverage ({} of {} rules; \
                     install them with `wwatchd rules print > \
                     /etc/audit/rules.d/40-wwatchd.rules` and reboot): {}",
                    missing.len(),
                    desired.len(),
                    missing
                        .iter()
                        .map(|r| r.to_auditctl())
                        .collect::<Vec<_>>()
                        .join(" | ")
                ),
            );
        }
    } else {
        // Leftovers from a crash are ours and identical: install() finds them (EEXIST).
        let report = audit_rules::install(&mut kr.ctl, &desired).map_err(|e| match e {
            audit_rules::RuleError::Netlink(n) => netlink_error(n),
            other => RunError::Software(other.to_string()),
        })?;
        for f in &report.failed {
            diag.send(Severity::Warning, f.to_string());
        }
        diag.send(
            Severity::Notice,
            format!(
                "started: {} detection rules, {}, {} kernel rules ({} added, {} already loaded, \
                 {} failed), auditd pid {}",
                rules.len(),
                describe_policy(&cfg.policy),
                desired.len(),
                report.added,
                report.present,
                report.failed.len(),
                status.pid
            ),
        );
    }

    let stop = Arc::new(AtomicBool::new(false));
    let (rec_tx, rec_rx) = bounded::<Batch>(BATCH_QUEUE);
    let (pool_tx, pool_rx) = bounded::<Batch>(BATCH_POOL);
    let (reconcile_tx, reconcile_rx) = bounded::<()>(1);
    let (switch_tx, switch_rx) = bounded::<()>(1);
    let (rules_tx, rules_rx) = bounded::<Reloaded>(1);
    let recv_handle = {
        let (stop, stats) = (stop.clone(), stats.clone());
        spawn_named("wwatchd-recv", move || {
            receiver(reader, rec_tx, pool_rx, stop, stats)
        })?
    };
    let corr_handle = {
        let matcher = Matcher::new(
            Arc::new(rules),
            cfg.policy.clone(),
            cfg.sink.clone(),
            sink_tx.clone(),
            stats.clone(),
        );
        spawn_named("wwatchd-correlate", move || {
            correlate(rec_rx, pool_tx, matcher, rules_rx, reconcile_tx, switch_tx)
        })?
    };

    // Control loop.
    let tick = crossbeam_channel::tick(Duration::from_millis(200));
    let mut last_lost = status.lost;
    // We turned 0 into 1 at start; anything else is how we found it.
    let mut switch = AuditSwitch::new(status.enabled.max(1));
    stats
        .audit_enabled
        .store(u64::from(status.enabled.max(1)), Ordering::Relaxed);
    let mut last_status_poll = Instant::now();
    let mut last_reconcile = Instant::now();
    let mut last_summary = Instant::now();
    let mut last_file = Instant::now() - Duration::from_secs(10);
    let mut last_loss_diag: Option<Instant> = None;
    let mut reported = stats.losses();
    let mut exit_err = None;
    let mut status_file_warned = false;
    // The last rule removal seen (CONFIG_CHANGE), while its reinstall waits for RELOAD_SETTLE.
    let mut removal_seen: Option<Instant> = None;
    loop {
        let mut poll_now = false;
        select! {
            recv(signals) -> sig => match sig {
                Ok(Signal::SIGHUP) => reload(&mut cfg, &mut kr, &diag, &stats, &rules_tx),
                Ok(_) | Err(_) => break,
            },
            recv(reconcile_rx) -> _ => removal_seen = Some(Instant::now()),
            recv(switch_rx) -> _ => poll_now = true,
            recv(tick) -> _ => {}
        }
        if recv_handle.is_finished() || corr_handle.is_finished() {
            exit_err = Some(RunError::Software("a pipeline thread stopped".into()));
            break;
        }
        let reconcile_now = removal_seen.is_some_and(|t| t.elapsed() >= RELOAD_SETTLE);
        if reconcile_now {
            removal_seen = None;
        }
        if reconcile_now || last_reconcile.elapsed() >= cfg.reconcile_every {
            last_reconcile = Instant::now();
            match kr.reconcile(&diag, None) {
                Ok(0) => {}
                Ok(n) => {
                    stats.rule_reinstalls.fetch_add(n, Ordering::Relaxed);
                }
                Err(e) => diag.send(Severity::Error, format!("reconcile: {e}")),
            }
        }
        if poll_now || last_status_poll.elapsed() >= switch.poll_every() {
            last_status_poll = Instant::now();
            if let Ok(s) = kr.ctl.get_status() {
                if s.lost > last_lost {
                    stats
                        .kernel_lost
                        .fetch_add(u64::from(s.lost - last_lost), Ordering::Relaxed);
                }
                last_lost = s.lost;
                stats
                    .audit_enabled
                    .store(u64::from(s.enabled), Ordering::Relaxed);
                if let Some((severity, text)) = switch.observe(s.enabled, Instant::now()) {
                    if s.enabled == 0 {
                        stats.audit_disabled.fetch_add(1, Ordering::Relaxed);
                    }
                    if s.enabled == 2 {
                        kr.locked = true;
                    }
                    diag.send(severity, text);
                }
            }
        }
        stats.copy_sink(&sink.stats.snapshot());
        let now_losses = stats.losses();
        if now_losses != reported
            && last_loss_diag.is_none_or(|t| t.elapsed() >= Duration::from_secs(5))
        {
            let parts: Vec<String> = LOSS_NAMES
                .iter()
                .zip(now_losses.iter().zip(reported.iter()))
                .filter(|(_, (n, r))| n > r)
                .map(|(name, (n, r))| format!("{name} +{} (total {n})", n - r))
                .collect();
            diag.send(Severity::Warning, format!("loss: {}", parts.join(", ")));
            reported = now_losses;
            last_loss_diag = Some(Instant::now());
        }
        if last_summary.elapsed() >= cfg.summary_every {
            last_summary = Instant::now();
            let note = switch.note(Instant::now()).unwrap_or_default();
            let severity = if note.is_empty() {
                Severity::Informational
            } else {
                Severity::Warning
            };
            diag.send(severity, format!("summary: {}{note}", stats.summary()));
        }
        if last_file.elapsed() >= Duration::from_secs(5) {
            last_file = Instant::now();
            if let Err(e) = write_status(&cfg.status_file, &stats, "running") {
                // Once is enough: the file is a convenience, not the daemon's job.
                if !std::mem::replace(&mut status_file_warned, true) {
                    eprintln!("wwatchd: cannot write {}: {e}", cfg.status_file.display());
                }
            }
        }
    }

    // Shutdown: let the kernel hand over what it recorded before the stop, stop the threads
    // (the receiver reads what its socket still holds, the correlator finishes it), flush,
    // take our rules out, leave audit as found.
    if exit_err.is_none() {
        let stop_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        let unread = wait_for_kernel(&mut kr.ctl, &stats, stop_ms);
        if unread > 0 {
            stats.shutdown_unread.store(unread, Ordering::Relaxed);
            diag.send(
                Severity::Warning,
                format!(
                    "stopping: the kernel's backlog still held {unread} audit records {} s \
                     after the stop; those from before it were not examined",
                    STOP_WAIT.as_secs()
                ),
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = recv_handle.join();
    let _ = corr_handle.join();
    let removed = if kr.locked {
        0
    } else {
        audit_rules::remove_ours(&mut kr.ctl, DAEMON_KEY_PREFIX).unwrap_or_else(|e| {
            eprintln!("wwatchd: cannot remove our kernel rules: {e}");
            0
        })
    };
    if restore_disabled && let Err(e) = kr.ctl.set_enabled(0) {
        eprintln!("wwatchd: cannot disable kernel audit again: {e}");
    }
    diag.send(
        Severity::Notice,
        format!(
            "stopping: removed {removed} kernel rules{}; {}",
            if restore_disabled {
                ", audit disabled again"
            } else {
                ""
            },
            stats.summary()
        ),
    );
    let _ = sink_tx.send_timeout(SinkMessage::Shutdown, Duration::from_secs(1));
    drop(sink_tx);
    drop(diag);
    // The sink drains for at most its shutdown_drain; do not wait forever on a stuck one.
    let deadline = Instant::now() + cfg.sink.shutdown_drain + Duration::from_secs(2);
    while !sink.handle.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if sink.handle.is_finished() {
        if let Ok(snap) = sink.handle.join() {
            eprintln!(
                "wwatchd: sink: sent {} dropped {} send_errors {} truncated {} spooled {} \
                 spool_pending {} spool_bytes {} spool_dropped {}{}",
                snap.sent,
                snap.dropped,
                snap.send_errors,
                snap.truncated,
                snap.spooled,
                snap.spool_pending,
                snap.spool_bytes,
                snap.spool_dropped,
                sink.stats
                    .last_error()
                    .map(|e| format!(" (last error: {e})"))
                    .unwrap_or_default()
            );
        }
    } else {
        eprintln!("wwatchd: the sink did not finish draining in time");
    }
    stats.copy_sink(&sink.stats.snapshot());
    let _ = write_status(&cfg.status_file, &stats, "stopped");
    match exit_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file_event::FileSchema;
    use crate::policy::{Budget, Exception, ProcSpec};

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

    /// A status file still saying `running` was left by a run that was killed or crashed:
    /// the next start says what was lost and shows that run's last counters.
    #[test]
    fn an_unclean_previous_run_is_reported_from_its_status_file() {
        let stats = Stats::default();
        stats.alerts.store(12, Ordering::Relaxed);
        stats.enobufs.store(3, Ordering::Relaxed);
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

    /// The receiver records how far the kernel's stream has come, from the last record.
    #[test]
    fn batch_knows_the_stamp_of_its_last_record() {
        let mut b = Batch::new();
        assert_eq!(b.last_stamp_ms(), None);
        b.push(1300, b"audit(1700000000.123:5): arch=c000003e syscall=257");
        assert_eq!(b.last_stamp_ms(), Some(1_700_000_000_123));
        b.push(1302, b"audit(1700000001.004:6): item=0 name=\"/tmp/\"");
        assert_eq!(b.last_stamp_ms(), Some(1_700_000_001_004));
        b.push(1300, b"not a record");
        assert_eq!(b.last_stamp_ms(), None);
    }

    /// A batch hands over each record with its type, in order, with its exact bytes, and says
    /// when it is full (by records or by bytes).
    #[test]
    fn batches_keep_record_boundaries_types_and_order_and_are_bounded() {
        let mut b = Batch::new();
        b.push(1300, b"arch=c000003e syscall=257");
        b.push(1307, b"cwd=\"/tmp\"");
        b.push(1320, b"");
        b.push(1302, b"item=0 name=\"a\"");
        let got: Vec<(u16, &[u8])> = b.records().collect();
        assert_eq!(
            got,
            [
                (1300, &b"arch=c000003e syscall=257"[..]),
                (1307, &b"cwd=\"/tmp\""[..]),
                (1320, &b""[..]),
                (1302, &b"item=0 name=\"a\""[..]),
            ]
        );
        assert_eq!(b.len(), 4);
        assert!(!b.is_full());
        b.clear();
        assert_eq!((b.len(), b.records().count()), (0, 0));
        // Full by record count, and by bytes.
        for _ in 0..BATCH_RECORDS {
            b.push(1300, b"x");
        }
        assert!(b.is_full());
        b.clear();
        b.push(1327, &vec![b'p'; BATCH_BYTES]);
        assert!(b.is_full() && b.len() == 1);
        assert_eq!(b.records().next().map(|(_, t)| t.len()), Some(BATCH_BYTES));
    }

    /// The matcher applies the policy: an exception's alert is counted under its label, the
    /// budget holds back the rest, and closing the window sends one summary alert.
    #[test]
    fn matcher_applies_exceptions_and_budget_and_counts() {
        let rule = match crate::rule::try_builtin(&FileSchema) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        };
        let exc = Exception {
            name: Some("agent".into()),
            rule: None,
            origin: "w.toml:3".into(),
            users: vec![],
            processes: vec![ProcSpec::new("sshd")],
            paths: vec![crate::rule::Pattern::new("/tmp/ssh-*", true)],
            parents: vec![],
            sources: vec![],
        };
        let budget = Budget {
            max_alerts: 1,
            window_secs: 300,
            dedup: false,
        };
        let policy = Policy::new(vec![exc], budget, &[rule.meta.rule_id.as_str()]);
        let (tx, rx) = bounded(16);
        let stats = Arc::new(Stats::default());
        let mut m = Matcher::new(
            Arc::new(vec![rule]),
            policy,
            SinkConfig::default(),
            tx,
            stats.clone(),
        );
        assert_eq!(stats.exception_counts(), [("agent".to_owned(), 0)]);
        let sessions = SessionTable::new(4);
        let mut parents = ParentCache::new();
        let ev = crate::policy::tests::fe();
        let mut agent = ev.clone();
        agent.path = Some(crate::file_event::Text::from_vec(b"/tmp/ssh-abc".to_vec()));
        agent.process_name = Some(crate::file_event::Text::from_vec(b"sshd".to_vec()));
        let mut ev = ev;
        m.on_creation(&mut agent, &sessions, &mut parents);
        m.on_creation(&mut ev, &sessions, &mut parents);
        m.on_creation(&mut ev, &sessions, &mut parents);
        m.on_creation(&mut ev, &sessions, &mut parents);
        m.close_windows();
        // One batch: the alert, then the window's summary.
        let msgs: Vec<SinkMessage> = match rx.try_iter().collect::<Vec<_>>().as_slice() {
            [SinkMessage::Batch(b)] => b.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(msgs.len(), 2, "{msgs:?}");
        let json = |m: &SinkMessage| match m {
            SinkMessage::Alert { json, .. } => json.clone(),
            SinkMessage::AlertJson { json, .. } => {
                serde_json::from_slice(json).unwrap_or_else(|e| panic!("{e}"))
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(json(&msgs[0])["file"]["path"], "/tmp/x.bin");
        assert_eq!(json(&msgs[1])["wwatchd"]["budget"]["suppressed"], 2);
        let c: std::collections::HashMap<_, _> = stats.counters().into_iter().collect();
        assert_eq!(c["alerts"], 1);
        assert_eq!(c["exception_suppressed"], 1);
        assert_eq!(c["budget_suppressed"], 2);
        assert_eq!(c["budget_summaries"], 1);
        let doc = stats.to_json("running");
        assert_eq!(doc["exceptions"]["agent"], 1);
        assert!(
            stats
                .summary()
                .ends_with("; suppressed by exception: \"agent\"=1")
        );
    }
}

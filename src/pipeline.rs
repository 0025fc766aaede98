//! pipeline: the live daemon (`wwatchd run`), threads and channels around the pure stages.
//!
//! ```text
//!  [recv]  MulticastReader ──try_send──► records (bounded) ──► [correlate]
//!          (drops counted, never blocks)                         Record → session table
//!                                                                Correlator → Builder
//!                                                                → rules → alerts
//!  [correlate] ──try_send──► sink (bounded) ──► [syslog] Sink (reconnect, queue)
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
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded, select};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};

use crate::alert;
use crate::audit_rules::{self, AuditRule, DAEMON_KEY_PREFIX, RealFs};
use crate::enrich::{LocalEnricher, ParentCache};
use crate::event::{Correlator, CorrelatorConfig};
use crate::file_event::{Builder, FileEvent, FileSchema};
use crate::netlink::{Control, MulticastReader, NetlinkError, RecvOutcome};
use crate::privilege::{self, DaemonUser, PrivilegeError};
use crate::record::Record;
use crate::rule::{self, Rule};
use crate::session::{SessionTable, is_rule_removal};
use crate::syslog::{self, Severity, SinkConfig, SinkMessage, Transport};

/// Records waiting between the receiver and the correlator.
const RECORD_QUEUE: usize = 65_536;
/// Alerts and diagnostics waiting for the sink thread.
const SINK_QUEUE: usize = 4096;
/// Sessions remembered.
const MAX_SESSIONS: usize = 4096;

/// Everything `wwatchd run` is told.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Rule files; empty means the built-in rule.
    pub rule_files: Vec<PathBuf>,
    /// `--watch-dir`: watched for every rule, in addition to what the rules name.
    pub watch_dirs: Vec<PathBuf>,
    pub sink: SinkConfig,
    /// Multicast socket receive buffer (bytes).
    pub rcvbuf: usize,
    pub status_file: PathBuf,
    /// Periodic diagnostic summary.
    pub summary_every: Duration,
    /// Reconcile kernel rules this often even without a CONFIG_CHANGE.
    pub reconcile_every: Duration,
    /// `--user`: run as this user (started as root), keeping [`privilege::KEPT`].
    pub user: Option<String>,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            rule_files: Vec::new(),
            watch_dirs: Vec::new(),
            sink: SinkConfig::default(),
            rcvbuf: crate::netlink::DEFAULT_RCVBUF,
            status_file: PathBuf::from("/run/wwatchd/status.json"),
            summary_every: Duration::from_secs(60),
            reconcile_every: Duration::from_secs(30),
            user: None,
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

/// Loads the rule files, or the built-in rule when there are none.
pub fn load_rules(files: &[PathBuf]) -> Result<Vec<Rule>, String> {
    if files.is_empty() {
        return rule::try_builtin(&FileSchema)
            .map(|r| vec![r])
            .map_err(|e| format!("the built-in rule does not load: {e}"));
    }
    files
        .iter()
        .map(|p| rule::load_file(p, &FileSchema).map_err(|e| e.to_string()))
        .collect()
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
            ("serial_gaps", g(&self.serial_gaps)),
            ("timed_out", g(&self.timed_out)),
            ("evicted", g(&self.evicted)),
            ("malformed", g(&self.malformed)),
            ("kernel_lost", g(&self.kernel_lost)),
            ("rule_reinstalls", g(&self.rule_reinstalls)),
            ("rules_loaded", g(&self.rules_loaded)),
            ("sessions", g(&self.sessions)),
            ("reconcile_signals", g(&self.reconcile_signals)),
        ]
    }

    /// The counters that mean records or alerts were lost.
    fn losses(&self) -> [u64; 6] {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        [
            g(&self.enobufs),
            g(&self.channel_drops),
            g(&self.serial_gaps),
            g(&self.kernel_lost),
            g(&self.sink_drops) + g(&self.sink_channel_drops),
            g(&self.rule_reinstalls),
        ]
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
        m.into()
    }

    fn summary(&self) -> String {
        self.counters()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

const LOSS_NAMES: [&str; 6] = [
    "enobufs",
    "channel_drops",
    "serial_gaps",
    "kernel_lost",
    "sink_drops",
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

/// One multicast message, owned, as it crosses to the correlator.
struct RawRecord {
    rtype: u16,
    text: Vec<u8>,
}

/// Diagnostics go to stderr and, unless alerts go to stdout (whose sink writes them to
/// stderr itself), to the sink.
#[derive(Clone)]
struct Diag {
    tx: Sender<SinkMessage>,
    to_sink: bool,
    stats: Arc<Stats>,
}

impl Diag {
    fn send(&self, severity: Severity, text: String) {
        eprintln!("wwatchd: {text}");
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

/// The receiver: as thin as possible, so the socket buffer never fills behind it.
fn receiver(
    mut reader: MulticastReader,
    tx: Sender<RawRecord>,
    stop: Arc<AtomicBool>,
    stats: Arc<Stats>,
) -> Result<(), String> {
    while !stop.load(Ordering::Relaxed) {
        let out = reader.recv(Some(Duration::from_millis(200)), &mut |rtype, text| {
            let m = RawRecord {
                rtype,
                text: text.to_vec(),
            };
            match tx.try_send(m) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    stats.channel_drops.fetch_add(1, Ordering::Relaxed);
                }
                Err(TrySendError::Disconnected(_)) => stop.store(true, Ordering::Relaxed),
            }
        });
        match out {
            Ok(RecvOutcome::Enobufs) => {
                stats.enobufs.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(())
}

/// Correlate, build, enrich and match; alerts go to the sink.
struct Matcher {
    rules: Arc<Vec<Rule>>,
    sink_cfg: SinkConfig,
    tx: Sender<SinkMessage>,
    stats: Arc<Stats>,
}

impl Matcher {
    fn on_creation(&self, fe: &FileEvent<'_>, sessions: &SessionTable, parents: &mut ParentCache) {
        self.stats.creations.fetch_add(1, Ordering::Relaxed);
        let mut fe = fe.clone();
        if let Some(s) = fe.ses.and_then(|ses| sessions.get(ses)) {
            s.fill(&mut fe.context);
        }
        if let Some(ppid) = fe.ppid {
            let (n, e) = parents.lookup(ppid);
            fe.context.parent_name = n;
            fe.context.parent_executable = e;
        }
        for rule in self.rules.iter() {
            if rule.query.matches(&fe) {
                self.stats.alerts.fetch_add(1, Ordering::Relaxed);
                let json = serde_json::Value::Object(alert::alert_document(&fe, &rule.meta));
                let severity = self.sink_cfg.alert_severity(&rule.meta.severity);
                if self
                    .tx
                    .try_send(SinkMessage::Alert { json, severity })
                    .is_err()
                {
                    self.stats
                        .sink_channel_drops
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

fn correlate(
    rx: Receiver<RawRecord>,
    mut matcher: Matcher,
    new_rules: Receiver<Arc<Vec<Rule>>>,
    reconcile: Sender<()>,
    stop: Arc<AtomicBool>,
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
        if let Ok(r) = new_rules.try_recv() {
            matcher.rules = r;
        }
        let msg = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(m) => Some(m),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => None,
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        };
        if let Some(m) = msg {
            matcher.stats.records.fetch_add(1, Ordering::Relaxed);
            line += 1;
            match Record::from_netlink(m.rtype, &m.text) {
                Ok(rec) => {
                    if sessions.observe(&rec) {
                        matcher
                            .stats
                            .sessions
                            .store(sessions.len() as u64, Ordering::Relaxed);
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
        }
        // Stop once told to and the queue is drained.
        if stop.load(Ordering::Relaxed) && rx.is_empty() {
            break;
        }
    }
    corr.flush(&mut |ev| {
        builder.creations(ev, &mut enricher, &mut |fe| {
            matcher.on_creation(fe, &sessions, &mut parents)
        });
    });
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
pub fn run(cfg: RunConfig) -> Result<(), RunError> {
    let rules = load_rules(&cfg.rule_files).map_err(RunError::Config)?;
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

    // Only now, with the reduced capabilities, do threads start: they inherit them.
    let (sink_tx, sink_rx) = bounded::<SinkMessage>(SINK_QUEUE);
    let started = signal_thread(sigset).and_then(|signals| {
        syslog::spawn(cfg.sink.clone(), sink_rx)
            .map(|sink| (signals, sink))
            .map_err(|e| RunError::Config(e.to_string()))
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
    let diag = Diag {
        tx: sink_tx.clone(),
        to_sink: cfg.sink.transport != Transport::Stdout,
        stats: stats.clone(),
    };
    for (severity, text) in early {
        diag.send(severity, text);
    }
    diag.send(Severity::Notice, format!("privileges: {dropped}"));

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
        diag.send(
            Severity::Error,
            format!(
                "kernel audit is LOCKED (enabled 2): rules cannot be changed until reboot; running \
                 on the rules already loaded. Missing coverage ({} rules): {}",
                missing.len(),
                missing
                    .iter()
                    .map(|r| r.to_auditctl())
                    .collect::<Vec<_>>()
                    .join(" | ")
            ),
        );
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
                "started: {} detection rules, {} kernel rules ({} added, {} already loaded, {} \
                 failed), auditd pid {}",
                rules.len(),
                desired.len(),
                report.added,
                report.present,
                report.failed.len(),
                status.pid
            ),
        );
    }

    let stop = Arc::new(AtomicBool::new(false));
    let (rec_tx, rec_rx) = bounded::<RawRecord>(RECORD_QUEUE);
    let (reconcile_tx, reconcile_rx) = bounded::<()>(1);
    let (rules_tx, rules_rx) = bounded::<Arc<Vec<Rule>>>(1);
    let recv_handle = {
        let (stop, stats) = (stop.clone(), stats.clone());
        spawn_named("wwatchd-recv", move || {
            receiver(reader, rec_tx, stop, stats)
        })?
    };
    let corr_handle = {
        let matcher = Matcher {
            rules: Arc::new(rules),
            sink_cfg: cfg.sink.clone(),
            tx: sink_tx.clone(),
            stats: stats.clone(),
        };
        let stop = stop.clone();
        spawn_named("wwatchd-correlate", move || {
            correlate(rec_rx, matcher, rules_rx, reconcile_tx, stop)
        })?
    };

    // Control loop.
    let tick = crossbeam_channel::tick(Duration::from_millis(200));
    let mut last_lost = status.lost;
    let mut last_status_poll = Instant::now();
    let mut last_reconcile = Instant::now();
    let mut last_summary = Instant::now();
    let mut last_file = Instant::now() - Duration::from_secs(10);
    let mut last_loss_diag: Option<Instant> = None;
    let mut reported = stats.losses();
    let mut exit_err = None;
    let mut status_file_warned = false;
    loop {
        let mut reconcile_now = false;
        select! {
            recv(signals) -> sig => match sig {
                Ok(Signal::SIGHUP) => {
                    match load_rules(&cfg.rule_files) {
                        Ok(new) if kr.derive(&new).is_err() => {
                            let e = kr.derive(&new).err().unwrap_or_default();
                            diag.send(Severity::Error,
                                format!("SIGHUP: rules not reloaded, keeping the old ones: {e}"));
                        }
                        Ok(new) => match kr.reconcile(&diag, Some(&new)) {
                            Ok(_) => {
                                diag.send(Severity::Notice, format!(
                                    "SIGHUP: reloaded {} detection rules; {} kernel rules",
                                    new.len(), kr.desired.len()));
                                stats.rules_loaded.store(new.len() as u64, Ordering::Relaxed);
                                kr.rule_sources = new.clone();
                                let _ = rules_tx.try_send(Arc::new(new));
                            }
                            Err(e) => diag.send(Severity::Error, format!("SIGHUP: {e}")),
                        },
                        Err(e) => diag.send(Severity::Error,
                            format!("SIGHUP: rules not reloaded, keeping the old ones: {e}")),
                    }
                }
                Ok(_) | Err(_) => break,
            },
            recv(reconcile_rx) -> _ => reconcile_now = true,
            recv(tick) -> _ => {}
        }
        if recv_handle.is_finished() || corr_handle.is_finished() {
            exit_err = Some(RunError::Software("a pipeline thread stopped".into()));
            break;
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
        if last_status_poll.elapsed() >= Duration::from_secs(15) {
            last_status_poll = Instant::now();
            if let Ok(s) = kr.ctl.get_status() {
                if s.lost > last_lost {
                    stats
                        .kernel_lost
                        .fetch_add(u64::from(s.lost - last_lost), Ordering::Relaxed);
                }
                last_lost = s.lost;
            }
        }
        let sink_snap = sink.stats.snapshot();
        stats.sink_drops.store(sink_snap.dropped, Ordering::Relaxed);
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
            diag.send(
                Severity::Informational,
                format!("summary: {}", stats.summary()),
            );
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

    // Shutdown: stop the threads, flush, take our rules out, leave audit as found.
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
                "wwatchd: sink: sent {} dropped {} send_errors {} truncated {}{}",
                snap.sent,
                snap.dropped,
                snap.send_errors,
                snap.truncated,
                sink.stats
                    .last_error()
                    .map(|e| format!(" (last error: {e})"))
                    .unwrap_or_default()
            );
        }
    } else {
        eprintln!("wwatchd: the sink did not finish draining in time");
    }
    stats
        .sink_drops
        .store(sink.stats.snapshot().dropped, Ordering::Relaxed);
    let _ = write_status(&cfg.status_file, &stats, "stopped");
    match exit_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

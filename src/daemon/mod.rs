//! daemon: `wwatchd run`, threads and channels around the core's [`Detector`].
//!
//! ```text
//!  [worker] MulticastReader ──recvmmsg──► Batch → Record → Detector → alerts
//!           (ENOBUFS counted)
//!  [worker] ──SinkHandle::deliver──► sink (bounded) ──► [syslog] Sink (reconnect, queue, disk spool)
//!           (idle UDP, /dev/log or TCP sink: sent from the worker, MSG_DONTWAIT)
//!  [worker] ──CONFIG_CHANGE remove / audit switched──► [control]
//!  [signals] SigSet::wait ──► [control] (main thread): kernel rules, reload, status,
//!                                        summaries, loss warnings, shutdown
//! ```
//!
//! Files: `receiver.rs` (reading the socket), `worker.rs`, `control.rs` (signals, kernel
//! rules, audit switch), `reload.rs` (SIGHUP), `stats.rs` (counters and the status file);
//! this file starts and stops them.
//!
//! Start-up order: block signals, open the control socket and the multicast reader (its
//! `SO_RCVBUFFORCE` needs CAP_NET_ADMIN), then [`privilege::drop`] to CAP_AUDIT_READ and
//! CAP_AUDIT_CONTROL (and `--user`), and only then start threads, which inherit that.
//!
//! Kernel audit state is global and shared with auditd: we never send AUDIT_SET with a pid,
//! never lock (enabled 2), and touch only rules whose key starts with
//! [`DAEMON_KEY_PREFIX`]. If audit was off we turn it on and back off at exit.

mod control;
mod persist;
mod receiver;
mod reload;
pub mod stats;
mod worker;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender, bounded, select};
use nix::sys::signal::Signal;
use wwatchd_core::detector::{Detector, DetectorConfig};
use wwatchd_core::policy::Policy;
use wwatchd_core::rule::Rule;

use crate::config::{Loaded, Source};
use crate::enrich::LocalEnricher;
use crate::error::Error;
use crate::kernel_rules::{self, DAEMON_KEY_PREFIX, KernelRule, RealFs};
use crate::netlink::{AuditStatus, Control, MulticastReader, NetlinkError, Waker};
use crate::new_terms_store::NewTermsStore;
use crate::privilege::{self, DaemonUser};
use crate::syslog::{self, Severity, SinkConfig, SinkHandle, SinkMessage, SinkThread, Transport};
use control::{AuditSwitch, KernelRules};
use stats::Stats;
use worker::Reloaded;

pub use stats::previous_run_note;

/// Alerts and diagnostics waiting for the sink thread.
const SINK_QUEUE: usize = 4096;
/// Sessions remembered.
const MAX_SESSIONS: usize = 4096;
/// How long rule removals must have stopped before we reinstall ours. An auditd reload
/// (`augenrules --load`: `-D`, then the rules files, ours among them) removes our rules and
/// adds them again within milliseconds; reinstalling at the first removal raced it, and its
/// load then failed on our rule with "Rule exists" (on Debian 13 that failed
/// audit-rules.service, and `systemctl restart auditd` with it: tests/vm, issue 13).
const RELOAD_SETTLE: Duration = Duration::from_millis(500);
/// Longest the control loop sleeps with nothing due: how late it may notice new losses to
/// warn of (at most every [`LOSS_DIAG_EVERY`] anyway). A worker thread that stopped, a signal
/// and the worker's notes wake it at once; every other job wakes it when due. An idle daemon
/// wakes for the status file (every [`STATUS_FILE_EVERY`]) and the kernel's status (every
/// 15 s), nothing else.
const CHECK_EVERY: Duration = LOSS_DIAG_EVERY;
/// Shortest sleep of the control loop.
const MIN_WAIT: Duration = Duration::from_millis(10);
/// How often the status file is rewritten.
const STATUS_FILE_EVERY: Duration = Duration::from_secs(5);
/// Loss warnings come at most this often.
const LOSS_DIAG_EVERY: Duration = Duration::from_secs(5);

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
    /// `daemon.state_dir`: where the new_terms rules' terms are kept.
    pub state_dir: PathBuf,
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
            state_dir: c.daemon.state_dir.clone(),
        }
    }
}

/// Diagnostics go to stderr and, unless alerts go to stdout (whose sink writes them to
/// stderr itself), to the sink.
#[derive(Clone)]
struct Diag {
    tx: SinkHandle,
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
                    .daemon
                    .sink_channel_drops
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn spawn_named<T: Send + 'static>(
    name: &'static str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<JoinHandle<T>, Error> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(f)
        .map_err(|e| Error::Thread {
            name,
            why: format!("cannot start: {e}"),
        })
}

/// [`spawn_named`], with a receiver that disconnects once `f` has returned or unwound, and
/// is never sent on: what the control loop waits on to notice that the thread stopped.
fn spawn_watched<T: Send + 'static>(
    name: &'static str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<(JoinHandle<T>, Receiver<()>), Error> {
    let (ended_tx, ended) = bounded::<()>(0);
    let handle = spawn_named(name, move || {
        // Dropped when `f` returns or a panic unwinds this frame.
        let _ended = ended_tx;
        f()
    })?;
    Ok((handle, ended))
}

/// Opens the multicast reader (SO_RCVBUFFORCE: CAP_NET_ADMIN), then drops to
/// [`privilege::KEPT`] and, with `--user`, to that user. Must run before any thread starts.
fn open_and_drop(
    cfg: &RunConfig,
    user: Option<&DaemonUser>,
    early: &mut Vec<(Severity, String)>,
) -> Result<(MulticastReader, privilege::Dropped), Error> {
    let (mut reader, warning) = MulticastReader::open(cfg.rcvbuf)?;
    // Made now, so a failure comes before any thread or kernel rule exists.
    reader.waker()?;
    if let Some(w) = warning {
        early.push((Severity::Warning, w));
    }
    if let Some(u) = user
        && nix::unistd::getuid().is_root()
        && let Some(dir) = cfg.status_file.parent()
        && let Err(e) = privilege::prepare_dir(dir, u, privilege::StateDir::Status)
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
        && let Err(e) = privilege::prepare_dir(&sp.dir, u, privilege::StateDir::Spool)
    {
        early.push((
            Severity::Warning,
            format!("spool directory not made usable for {}: {e}", u.name),
        ));
    }
    let dropped = privilege::drop(user)?;
    Ok((reader, dropped))
}

/// An untrusted status file directory is a configuration error, named with its fix.
fn status_error(e: crate::trust::TrustError) -> Error {
    Error::Config(crate::config::ConfigErrors(vec![
        crate::config::ConfigError::new(e.path.display().to_string(), None, e.why),
    ]))
}

/// What start-up hands the control loop.
struct Running {
    cfg: RunConfig,
    status_file: stats::StatusFile,
    stats: Arc<Stats>,
    diag: Diag,
    kr: KernelRules,
    status: AuditStatus,
    restore_disabled: bool,
    signals: Receiver<Signal>,
    sink: SinkThread,
    sink_tx: SinkHandle,
    stop: Arc<AtomicBool>,
    /// Ends the worker's wait at stop or after a reload.
    waker: Waker,
    work: JoinHandle<Result<(), NetlinkError>>,
    /// Disconnected when the worker thread ends, however it ends: the control loop wakes at
    /// once, with no timer to poll the thread.
    work_ended: Receiver<()>,
    reconcile_rx: Receiver<()>,
    switch_rx: Receiver<()>,
    rules_tx: Sender<Reloaded>,
}

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(cfg: RunConfig) -> Result<(), Error> {
    let mut r = start(cfg)?;
    let exit_err = r.control_loop();
    r.shutdown(exit_err)
}

/// The kernel side of start-up: audit switched on if it was off, the reader opened and the
/// privileges dropped. On failure audit is put back as it was.
fn open_kernel(
    cfg: &RunConfig,
    user: Option<&DaemonUser>,
    early: &mut Vec<(Severity, String)>,
) -> Result<
    (
        Control,
        AuditStatus,
        bool,
        MulticastReader,
        privilege::Dropped,
    ),
    Error,
> {
    let mut ctl = Control::open()?;
    let status = ctl.get_status()?;
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
    let mut restore_disabled = false;
    if status.enabled == 0 {
        ctl.set_enabled(1)?;
        restore_disabled = true;
        early.push((
            Severity::Notice,
            "kernel audit was disabled (enabled 0); enabled it, and will disable it again at exit"
                .into(),
        ));
    }
    match open_and_drop(cfg, user, early) {
        Ok((reader, dropped)) => Ok((ctl, status, restore_disabled, reader, dropped)),
        Err(e) => {
            if restore_disabled {
                let _ = ctl.set_enabled(0);
            }
            Err(e)
        }
    }
}

fn start(cfg: RunConfig) -> Result<Running, Error> {
    let (desired, omitted) = kernel_rules::derive_report(&cfg.rules, &cfg.watch_dirs, &RealFs)?;
    cfg.sink.validate()?;
    let user = cfg.user.as_deref().map(DaemonUser::lookup).transpose()?;
    // Before the kernel is touched: an unusable spool directory is a configuration error.
    // With --user the spool belongs to that user, so it is opened after the switch.
    let mut spool = match user {
        None => Some(syslog::open_spool(&cfg.sink)?),
        Some(_) => None,
    };
    // Before anything changes kernel state: a signal now waits until we can clean up.
    let sigset = control::block_signals()?;
    let stats = Arc::new(Stats::default());
    stats
        .daemon
        .rules_loaded
        .store(cfg.rules.len() as u64, Ordering::Relaxed);
    // Diagnostics from before the sink exists (it starts after the privilege drop).
    let mut early: Vec<(Severity, String)> = Vec::new();
    let (mut ctl, status, restore_disabled, reader, dropped) =
        open_kernel(&cfg, user.as_ref(), &mut early)?;
    // Only now, with the reduced capabilities, do threads start: they inherit them.
    let started = match spool.take() {
        Some(s) => Ok(s),
        None => syslog::open_spool(&cfg.sink).map_err(Error::from),
    }
    .and_then(|spool| {
        // After the switch: the daemon's user owns its own state.
        let status_file = stats::StatusFile::open(&cfg.status_file).map_err(status_error)?;
        let store = open_store(&cfg)?;
        let signals = control::signal_thread(sigset)?;
        let (sink, sink_tx) = syslog::spawn_with(cfg.sink.clone(), spool, SINK_QUEUE)?;
        Ok((signals, sink, sink_tx, status_file, store))
    });
    let (signals, sink, sink_tx, status_file, store) = match started {
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
            Transport::Local { path, .. } => !(journal && path == std::path::Path::new("/dev/log")),
            _ => true,
        },
        journal,
        stats: stats.clone(),
    };
    for (severity, text) in early {
        diag.send(severity, text);
    }
    diag.send(Severity::Notice, format!("privileges: {dropped}"));
    report_spool(&diag, &sink);
    // Before our first status write replaces it: did the previous run stop cleanly?
    if let Ok(text) = std::fs::read_to_string(&cfg.status_file)
        && let Some(note) = previous_run_note(&text, std::process::id(), &stats::is_wwatchd)
    {
        diag.send(Severity::Warning, note);
    }
    stats.copy_sink(&sink.stats.snapshot());
    let mut kr = KernelRules {
        ctl,
        desired: desired.clone(),
        rule_sources: cfg.rules.clone(),
        watch_dirs: cfg.watch_dirs.clone(),
        locked: status.enabled == 2,
        omitted: omitted.hidden_dirs,
        omitted_reported: Vec::new(),
    };
    load_kernel_rules(&mut kr, &desired, &cfg, &status, &diag)?;
    kr.report_omitted(&diag, &stats);
    let threads = start_threads(reader, &cfg, &stats, &sink_tx, store, &diag)?;
    Ok(Running {
        cfg,
        status_file,
        stats,
        diag,
        kr,
        status,
        restore_disabled,
        signals,
        sink,
        sink_tx,
        stop: threads.stop,
        waker: threads.waker,
        work: threads.work,
        work_ended: threads.work_ended,
        reconcile_rx: threads.reconcile_rx,
        switch_rx: threads.switch_rx,
        rules_tx: threads.rules_tx,
    })
}

/// What the spool held from an earlier run, and any damage found in it.
fn report_spool(diag: &Diag, sink: &SinkThread) {
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
}

/// Installs the derived kernel rules, or, with audit locked, says what is missing.
fn load_kernel_rules(
    kr: &mut KernelRules,
    desired: &[KernelRule],
    cfg: &RunConfig,
    status: &AuditStatus,
    diag: &Diag,
) -> Result<(), Error> {
    if kr.locked {
        let missing = kernel_rules::missing(&mut kr.ctl, desired)?;
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
        return Ok(());
    }
    // Leftovers from a crash are ours and identical: install() finds them (EEXIST).
    let report = kernel_rules::install(&mut kr.ctl, desired)?;
    for f in &report.failed {
        diag.send(Severity::Warning, f.to_string());
    }
    diag.send(
        Severity::Notice,
        format!(
            "started: {} detection rules, {}, {} kernel rules ({} added, {} already loaded, \
             {} failed), auditd pid {}",
            cfg.rules.len(),
            reload::describe_policy(&cfg.policy),
            desired.len(),
            report.added,
            report.present,
            report.failed.len(),
            status.pid
        ),
    );
    Ok(())
}

struct Threads {
    stop: Arc<AtomicBool>,
    /// Ends the worker's wait at stop or after a reload (it sleeps with no timer).
    waker: Waker,
    work: JoinHandle<Result<(), NetlinkError>>,
    work_ended: Receiver<()>,
    reconcile_rx: Receiver<()>,
    switch_rx: Receiver<()>,
    rules_tx: Sender<Reloaded>,
}

/// The new_terms store, when a rule needs it: an unusable state directory is a
/// configuration error, as an unusable spool is.
fn open_store(cfg: &RunConfig) -> Result<Option<NewTermsStore>, Error> {
    if !cfg.rules.iter().any(|r| r.new_terms.is_some()) {
        return Ok(None);
    }
    NewTermsStore::open(&cfg.state_dir).map(Some).map_err(|e| {
        Error::Config(crate::config::ConfigErrors(vec![
            crate::config::ConfigError::new(
                e.path.display().to_string(),
                Some("daemon.state_dir"),
                e.what,
            ),
        ]))
    })
}

fn start_threads(
    mut reader: MulticastReader,
    cfg: &RunConfig,
    stats: &Arc<Stats>,
    sink_tx: &SinkHandle,
    store: Option<NewTermsStore>,
    diag: &Diag,
) -> Result<Threads, Error> {
    let stop = Arc::new(AtomicBool::new(false));
    let waker = reader.waker()?;
    let (reconcile_tx, reconcile_rx) = bounded::<()>(1);
    let (switch_tx, switch_rx) = bounded::<()>(1);
    let (rules_tx, rules_rx) = bounded::<Reloaded>(1);
    let mut det = Detector::new(
        DetectorConfig {
            max_sessions: MAX_SESSIONS,
            host: Arc::new(crate::host::local()),
            ..DetectorConfig::default()
        },
        Arc::new(cfg.rules.clone()),
        cfg.policy.clone(),
    );
    let diag2 = diag.clone();
    let persist = persist::Persist::new(
        cfg.state_dir.clone(),
        store,
        Box::new(move |sev, text| diag2.send(sev, text)),
    )
    .start(&mut det);
    let links = worker::Links {
        reloads: rules_rx,
        reconcile: reconcile_tx,
        audit_switch: switch_tx,
        sink: sink_tx.clone(),
    };
    let (sink_cfg, stats) = (cfg.sink.clone(), stats.clone());
    let stop2 = stop.clone();
    let (work, work_ended) = spawn_watched("wwatchd-worker", move || {
        // Made here: its recvmmsg buffers stay on this thread.
        let mut source = receiver::Multicast::new(reader, stop2);
        worker::worker(
            det,
            &mut source,
            links,
            Box::new(LocalEnricher::new(true)),
            sink_cfg,
            stats,
            persist,
        )
    })?;
    Ok(Threads {
        stop,
        waker,
        work,
        work_ended,
        reconcile_rx,
        switch_rx,
        rules_tx,
    })
}

/// From `now` until the first of `due` (`None`: never), at most [`CHECK_EVERY`] and at least
/// [`MIN_WAIT`]: a job runs and moves its own time on when due, and the floor keeps one that
/// does not from spinning the loop.
fn sleep_until_first<const N: usize>(now: Instant, due: [Option<Instant>; N]) -> Duration {
    due.into_iter()
        .flatten()
        .map(|d| d.saturating_duration_since(now))
        .fold(CHECK_EVERY, Duration::min)
        .max(MIN_WAIT)
}

/// When the control loop last did each of its periodic jobs.
struct Timers {
    /// The last rule removal seen (CONFIG_CHANGE), while its reinstall waits for
    /// [`RELOAD_SETTLE`].
    removal_seen: Option<Instant>,
    status_poll: Instant,
    reconcile: Instant,
    summary: Instant,
    file: Instant,
    loss_diag: Option<Instant>,
    status_file_warned: bool,
}

impl Running {
    /// Until SIGTERM or SIGINT (`None`), or a pipeline thread stopped on its own.
    fn control_loop(&mut self) -> Option<Error> {
        let mut last_lost = self.status.lost;
        // We turned 0 into 1 at start; anything else is how we found it.
        let mut switch = AuditSwitch::new(self.status.enabled.max(1));
        self.stats
            .daemon
            .audit_enabled
            .store(u64::from(self.status.enabled.max(1)), Ordering::Relaxed);
        let now = Instant::now();
        let mut t = Timers {
            removal_seen: None,
            status_poll: now,
            reconcile: now,
            summary: now,
            file: now.checked_sub(STATUS_FILE_EVERY).unwrap_or(now),
            loss_diag: None,
            status_file_warned: false,
        };
        let mut reported = self.stats.losses();
        let mut ctl_foreign = self.kr.ctl.foreign();
        loop {
            let mut poll_now = false;
            let wait = self.until_due(&t, &switch);
            select! {
                recv(self.signals) -> sig => match sig {
                    Ok(Signal::SIGHUP) => {
                        reload::reload(
                            &mut self.cfg, &mut self.kr, &self.diag, &self.stats, &self.rules_tx,
                        );
                        // The worker sleeps on the socket: wake it to take the new rules.
                        self.waker.wake();
                        self.reopen_status_file();
                    }
                    Ok(_) | Err(_) => return None,
                },
                recv(self.reconcile_rx) -> _ => t.removal_seen = Some(Instant::now()),
                recv(self.switch_rx) -> _ => poll_now = true,
                recv(self.work_ended) -> _ => {
                    return Some(Error::Thread {
                        name: "pipeline",
                        why: "a pipeline thread stopped".into(),
                    });
                }
                default(wait) => {}
            }
            let reconcile_now = t.removal_seen.is_some_and(|r| r.elapsed() >= RELOAD_SETTLE);
            if reconcile_now {
                t.removal_seen = None;
            }
            if reconcile_now || t.reconcile.elapsed() >= self.cfg.reconcile_every {
                t.reconcile = Instant::now();
                match self.kr.reconcile(&self.diag, None) {
                    Ok(0) => {}
                    Ok(n) => {
                        self.stats
                            .daemon
                            .rule_reinstalls
                            .fetch_add(n, Ordering::Relaxed);
                    }
                    Err(e) => self.diag.send(Severity::Error, format!("reconcile: {e}")),
                }
                self.kr.report_omitted(&self.diag, &self.stats);
            }
            if poll_now || t.status_poll.elapsed() >= switch.poll_every() {
                t.status_poll = Instant::now();
                self.poll_status(&mut last_lost, &mut switch);
            }
            self.stats.copy_sink(&self.sink.stats.snapshot());
            let f = self.kr.ctl.foreign();
            if f > ctl_foreign {
                self.stats
                    .daemon
                    .foreign
                    .fetch_add(f - ctl_foreign, Ordering::Relaxed);
                ctl_foreign = f;
            }
            self.report(&mut t, &mut reported, &switch);
        }
    }

    /// How long the control loop may sleep: until the first of its periodic jobs is due, at
    /// most [`CHECK_EVERY`]. Signals and the worker's notes (a rule removal, an audit switch)
    /// end the sleep at once.
    fn until_due(&self, t: &Timers, switch: &AuditSwitch) -> Duration {
        let after = |at: Instant, d: Duration| at.checked_add(d);
        sleep_until_first(
            Instant::now(),
            [
                t.removal_seen.and_then(|r| after(r, RELOAD_SETTLE)),
                after(t.reconcile, self.cfg.reconcile_every),
                after(t.status_poll, switch.poll_every()),
                after(t.summary, self.cfg.summary_every),
                after(t.file, STATUS_FILE_EVERY),
            ],
        )
    }

    /// A reload that named another status file: checked like the first; refused, the
    /// old one is kept.
    fn reopen_status_file(&mut self) {
        if self.cfg.status_file == self.status_file.path {
            return;
        }
        match stats::StatusFile::open(&self.cfg.status_file) {
            Ok(f) => self.status_file = f,
            Err(e) => {
                self.diag.send(
                    Severity::Error,
                    format!(
                        "SIGHUP: daemon.status_file: {e}; keeping {}",
                        self.status_file.path.display()
                    ),
                );
                self.cfg.status_file = self.status_file.path.clone();
            }
        }
    }

    /// The kernel's `lost` counter and `enabled` flag.
    fn poll_status(&mut self, last_lost: &mut u32, switch: &mut AuditSwitch) {
        let Ok(s) = self.kr.ctl.get_status() else {
            return;
        };
        let d = &self.stats.daemon;
        if s.lost > *last_lost {
            d.kernel_lost
                .fetch_add(u64::from(s.lost - *last_lost), Ordering::Relaxed);
        }
        *last_lost = s.lost;
        d.audit_enabled
            .store(u64::from(s.enabled), Ordering::Relaxed);
        if let Some((severity, text)) = switch.observe(s.enabled, Instant::now()) {
            if s.enabled == 0 {
                d.audit_disabled.fetch_add(1, Ordering::Relaxed);
            }
            if s.enabled == 2 {
                self.kr.locked = true;
            }
            self.diag.send(severity, text);
        }
    }

    /// Loss warnings, the periodic summary and the status file.
    fn report(
        &self,
        t: &mut Timers,
        reported: &mut Vec<(&'static wwatchd_core::counters::Counter, u64)>,
        switch: &AuditSwitch,
    ) {
        let now_losses = self.stats.losses();
        if now_losses != *reported && t.loss_diag.is_none_or(|t| t.elapsed() >= LOSS_DIAG_EVERY) {
            let parts: Vec<String> = now_losses
                .iter()
                .zip(reported.iter())
                .filter(|((_, n), (_, r))| n > r)
                .map(|((c, n), (_, r))| format!("{} +{} (total {n})", c.name, n - r))
                .collect();
            self.diag
                .send(Severity::Warning, format!("loss: {}", parts.join(", ")));
            *reported = now_losses;
            t.loss_diag = Some(Instant::now());
        }
        if t.summary.elapsed() >= self.cfg.summary_every {
            t.summary = Instant::now();
            let note = switch.note(Instant::now()).unwrap_or_default();
            let severity = if note.is_empty() {
                Severity::Informational
            } else {
                Severity::Warning
            };
            self.diag
                .send(severity, format!("summary: {}{note}", self.stats.summary()));
        }
        if t.file.elapsed() >= STATUS_FILE_EVERY {
            t.file = Instant::now();
            if let Err(e) = self.status_file.write(&self.stats, "running") {
                // Once is enough: the file is a convenience, not the daemon's job.
                if !std::mem::replace(&mut t.status_file_warned, true) {
                    eprintln!(
                        "wwatchd: cannot write {}: {e}",
                        self.cfg.status_file.display()
                    );
                }
            }
        }
    }

    /// Shutdown: let the kernel hand over what it recorded before the stop, stop the
    /// threads (the worker reads what its socket still holds and finishes it),
    /// flush, take our rules out, leave audit as found.
    fn shutdown(mut self, exit_err: Option<Error>) -> Result<(), Error> {
        if exit_err.is_none() {
            let stop_ms = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis() as u64;
            let unread = control::wait_for_kernel(&mut self.kr.ctl, &self.stats, stop_ms);
            if unread > 0 {
                self.stats
                    .daemon
                    .shutdown_unread
                    .store(unread, Ordering::Relaxed);
                self.diag.send(
                    Severity::Warning,
                    format!(
                        "stopping: the kernel's backlog still held {unread} audit records {} s \
                         after the stop; those from before it were not examined",
                        control::STOP_WAIT.as_secs()
                    ),
                );
            }
        }
        self.stop.store(true, Ordering::Relaxed);
        self.waker.wake();
        // A worker that stopped on its own (a read error) says why.
        let exit_err = match (self.work.join(), exit_err) {
            (Ok(Err(e)), Some(Error::Thread { .. })) => Some(Error::Netlink(e)),
            (_, e) => e,
        };
        let removed = if self.kr.locked {
            0
        } else {
            kernel_rules::remove_ours(&mut self.kr.ctl, DAEMON_KEY_PREFIX).unwrap_or_else(|e| {
                eprintln!("wwatchd: cannot remove our kernel rules: {e}");
                0
            })
        };
        if self.restore_disabled
            && let Err(e) = self.kr.ctl.set_enabled(0)
        {
            eprintln!("wwatchd: cannot disable kernel audit again: {e}");
        }
        self.diag.send(
            Severity::Notice,
            format!(
                "stopping: removed {removed} kernel rules{}; {}",
                if self.restore_disabled {
                    ", audit disabled again"
                } else {
                    ""
                },
                self.stats.summary()
            ),
        );
        let _ = self
            .sink_tx
            .send_timeout(SinkMessage::Shutdown, Duration::from_secs(1));
        let Running {
            sink,
            sink_tx,
            diag,
            cfg,
            stats,
            status_file,
            ..
        } = self;
        drop(sink_tx);
        drop(diag);
        finish_sink(sink, &cfg, &stats);
        let _ = status_file.write(&stats, "stopped");
        match exit_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Waits for the sink to drain, at most its shutdown_drain (do not wait forever on a stuck
/// one), and reports what it did.
fn finish_sink(sink: SinkThread, cfg: &RunConfig, stats: &Stats) {
    let deadline = Instant::now() + cfg.sink.shutdown_drain + Duration::from_secs(2);
    while !sink.handle.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if !sink.handle.is_finished() {
        eprintln!("wwatchd: the sink did not finish draining in time");
        stats.copy_sink(&sink.stats.snapshot());
        return;
    }
    let shared = sink.stats.clone();
    if let Ok(snap) = sink.handle.join() {
        eprintln!(
            "wwatchd: sink: sent {} dropped {} refused {} send_errors {} truncated {} spooled {} \
             spool_pending {} spool_bytes {} spool_dropped {}{}",
            snap.sent,
            snap.dropped,
            snap.refused,
            snap.send_errors,
            snap.truncated,
            snap.spooled,
            snap.spool_pending,
            snap.spool_bytes,
            snap.spool_dropped,
            shared
                .last_error()
                .map(|e| format!(" (last error: {e})"))
                .unwrap_or_default()
        );
    }
    stats.copy_sink(&shared.snapshot());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The control loop sleeps until its first job is due: never longer than CHECK_EVERY,
    /// never shorter than MIN_WAIT (a job already due does not spin it), and a deadline too
    /// far to compute is no deadline.
    #[test]
    fn control_loop_sleeps_until_the_first_job_is_due() {
        let now = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(sleep_until_first(now, [None, None]), CHECK_EVERY);
        assert_eq!(
            sleep_until_first(now, [Some(now + ms(300)), Some(now + ms(700))]),
            ms(300)
        );
        assert_eq!(
            sleep_until_first(now, [Some(now + ms(60_000))]),
            CHECK_EVERY
        );
        assert_eq!(sleep_until_first(now, [Some(now)]), MIN_WAIT);
        assert_eq!(
            sleep_until_first(now + ms(50), [Some(now), None]),
            MIN_WAIT,
            "a job overdue"
        );
        assert_eq!(
            sleep_until_first(now, [now.checked_add(Duration::MAX), Some(now + ms(20))]),
            ms(20)
        );
    }

    /// The worker's end-of-thread channel: it disconnects when the thread returns and when it
    /// panics, and stays open while the thread runs, so the control loop's `select!` neither
    /// misses a stopped worker nor sees one that still works.
    #[test]
    fn a_watched_thread_disconnects_its_receiver_when_it_returns_or_panics() {
        use crossbeam_channel::{RecvTimeoutError, TryRecvError};
        let limit = Duration::from_secs(60);

        let (go_tx, go_rx) = bounded::<()>(0);
        let (h, ended) = spawn_watched("t-returns", move || go_rx.recv().map(|()| 7)).unwrap();
        assert_eq!(ended.try_recv(), Err(TryRecvError::Empty), "still running");
        go_tx.send(()).unwrap();
        assert_eq!(
            ended.recv_timeout(limit),
            Err(RecvTimeoutError::Disconnected)
        );
        assert_eq!(h.join().unwrap(), Ok(7));

        let (h, ended) =
            spawn_watched("t-panics", || -> u8 { panic!("test: worker failed") }).unwrap();
        assert_eq!(
            ended.recv_timeout(limit),
            Err(RecvTimeoutError::Disconnected)
        );
        assert!(h.join().is_err(), "the panic reaches join");
    }
}

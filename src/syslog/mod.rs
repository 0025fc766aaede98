//! Pipeline position: `netlink → record → event → rule → alert → syslog` — the last stage. It takes
//! an ECS JSON alert and delivers it as exactly one syslog message to `/dev/log`, a UDP or TCP
//! collector (rsyslog, which forwards to the SIEM), or stdout.
//!
//! ```text
//!  SinkMessage ──► format (header + capped JSON) ──► BoundedQueue ──► Conn (unix/udp/tcp/stdout)
//!                                                    │        ▲
//!                        collector down, overflow, exit ▼        │ replayed first, in order
//!                                                    DiskSpool (spool.rs)
//! ```
//!
//! Behaviour:
//! - **One alert, one message.** The JSON is rendered with every control character escaped
//!   (including DEL, C1 and U+2028/9), so no filename can split or forge a message.
//! - **Size cap** (`max_message_bytes`, default 8192, header included, framing excluded): long
//!   strings are trimmed with `…[truncated N bytes]`, `wwatchd.truncated: true` is added; the JSON
//!   text itself is never cut. The created file's path is trimmed last (`format::fit_json`).
//! - **Facility** defaults to `auth` (4): file drops by remote sessions are security events, and
//!   `auth` is routed to the secure log on every distribution, while `authpriv` often goes to a
//!   root-only file that forwarders are not configured to read. Override it with `facility`.
//! - **Reconnect**: after any error the connection is dropped and reopened with exponential backoff,
//!   100 ms doubling to 30 s, reset by a successful send.
//! - **Queue**: while the collector takes messages, they go through a bounded FIFO in memory
//!   (default 10000). When full, the oldest is handed to the spool or dropped and counted.
//!   Delivery is in order; a message leaves the queue only after it was written, so it is never
//!   sent twice by us.
//! - **Spool** (`spool.rs`, `wwatchd run --spool-dir`): as soon as a connect or a write fails,
//!   the queue moves to the disk spool and every new message is written there (write-through),
//!   so neither a long outage nor a crash or restart of wwatchd loses what was queued. Once the
//!   collector is back, the spool is delivered first, in order, in batches of [`PUMP_BATCH`] so
//!   new alerts keep flowing into the sink meanwhile; new messages keep going through the spool
//!   until it is empty. When the spool is over its cap its oldest messages are dropped, counted
//!   (`spool_dropped`) and reported once the backlog is delivered. What "down" means depends on
//!   the transport: **tcp** sees a refused connect, a reset, or (peeked before each write) an
//!   orderly close; **unix** (`/dev/log`) sees a refused connect or a write timeout; **udp** only
//!   sees ICMP port-unreachable, reported on the send *after* the datagram that was lost, and
//!   each reconnect may lose one more, so over UDP the spool narrows loss but cannot prevent
//!   it; **stdout** never spools.
//! - **TCP loss window**: "sent" means `write_all` returned. If the collector dies without closing
//!   (crash, network cut), the bytes in our socket buffer are lost when the RST arrives. We peek for
//!   an orderly close before each write, which covers collector restarts; the remaining window is
//!   accepted (RELP would close it). A write that fails halfway leaves a partial frame on the old
//!   connection; the message is resent whole on the next one. rsyslog may log that partial frame
//!   as a fragment when the old connection closes, which is visible but never valid JSON.
//! - **Time** is UTC. RFC 3164 has no offset field, so configure the collector accordingly or use
//!   RFC 5424.

mod queue;
mod spool;
mod transport;

pub use queue::{QueuedMessage, Spool, SpoolLosses};
pub use spool::{DiskSpool, SpoolError, SpoolReport};
pub use wwatchd_core::spool_format::{
    DEFAULT_DIR as DEFAULT_SPOOL_DIR, DEFAULT_MAX_BYTES as DEFAULT_SPOOL_MAX_BYTES,
    MIN_MAX_BYTES as MIN_SPOOL_MAX_BYTES, SpoolConfig,
};
pub use wwatchd_core::syslog::*;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use serde_json::Value;

use queue::BoundedQueue;
use transport::Conn;
use wwatchd_core::syslog::format::HeaderParams;

/// Sink configuration. `Default` is `/dev/log`, RFC 3164, facility `auth`, 8192-byte messages,
/// a 10000-message queue, no disk spool (`wwatchd run` has one by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkConfig {
    pub transport: Transport,
    pub facility: Facility,
    /// Whole syslog message including header, excluding transport framing. rsyslog's default
    /// `$MaxMessageSize` is 8k.
    pub max_message_bytes: usize,
    /// Messages held in memory while the collector is away.
    pub queue_capacity: usize,
    /// HOSTNAME field. Omitted for RFC 3164 over a local socket (the local daemon adds it).
    pub hostname: String,
    /// PROCID / `[PID]`.
    pub pid: u32,
    /// Severity for alerts whose rule severity is unknown; see [`SinkConfig::alert_severity`].
    pub default_severity: Severity,
    /// First reconnect delay; doubles after each failure.
    pub backoff_initial: Duration,
    /// Reconnect delay cap.
    pub backoff_max: Duration,
    /// Bounds TCP connect and each write.
    pub io_timeout: Duration,
    /// How long shutdown keeps trying to deliver the queue.
    pub shutdown_drain: Duration,
    /// Disk spool for outages and restarts; `None` keeps messages in memory only. Not used with
    /// `stdout`.
    pub spool: Option<SpoolConfig>,
}

impl Default for SinkConfig {
    fn default() -> SinkConfig {
        SinkConfig {
            transport: Transport::default(),
            facility: Facility::Auth,
            max_message_bytes: 8192,
            queue_capacity: 10_000,
            hostname: local_hostname(),
            pid: std::process::id(),
            default_severity: Severity::Warning,
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(30),
            io_timeout: Duration::from_secs(2),
            shutdown_drain: Duration::from_secs(2),
            spool: None,
        }
    }
}

impl SinkConfig {
    /// Syslog severity for an alert from its rule severity (`low`…`critical`).
    pub fn alert_severity(&self, rule_severity: &str) -> Severity {
        Severity::from_rule_severity(rule_severity, self.default_severity)
    }

    /// Check the values that have limits.
    pub fn validate(&self) -> Result<(), SinkError> {
        if self.max_message_bytes < MIN_MESSAGE_BYTES {
            return Err(SinkError::BadConfig {
                field: "max_message_bytes",
                reason: format!(
                    "{} is below the minimum of {MIN_MESSAGE_BYTES}; use 8192 unless the collector needs less",
                    self.max_message_bytes
                ),
            });
        }
        if matches!(self.transport, Transport::Udp { .. }) && self.max_message_bytes > MAX_UDP_BYTES
        {
            return Err(SinkError::BadConfig {
                field: "max_message_bytes",
                reason: format!(
                    "{} does not fit in one UDP datagram (at most {MAX_UDP_BYTES}); lower it or use tcp://",
                    self.max_message_bytes
                ),
            });
        }
        let journal = match &self.transport {
            Transport::Udp { format, .. } | Transport::Tcp { format, .. } => {
                *format == Format::Journal
            }
            // `local` with `format = "journal"`: /dev/log reads syslog, not native entries.
            Transport::Local { path, format } => {
                *format == Format::Journal && path.as_os_str() == "/dev/log"
            }
            Transport::Stdout => false,
        };
        if journal {
            return Err(SinkError::BadConfig {
                field: "format",
                reason: "journal is journald's native protocol on its local socket; use \
                         destination = \"journal\", or rfc5424 over the network"
                    .to_owned(),
            });
        }
        if self.queue_capacity == 0 {
            return Err(SinkError::BadConfig {
                field: "queue_capacity",
                reason: "must be at least 1 (default 10000)".to_owned(),
            });
        }
        if self.backoff_initial.is_zero() || self.backoff_max < self.backoff_initial {
            return Err(SinkError::BadConfig {
                field: "backoff_initial/backoff_max",
                reason: "need 0 < backoff_initial <= backoff_max (default 100 ms and 30 s)"
                    .to_owned(),
            });
        }
        if let Some(sp) = &self.spool {
            let min = MIN_SPOOL_MAX_BYTES.max(8 * self.max_message_bytes as u64);
            if sp.max_bytes < min {
                return Err(SinkError::BadConfig {
                    field: "spool_max_bytes",
                    reason: format!(
                        "{} is below the minimum of {min} (64 KiB, and at least 8 messages of \
                         max_message_bytes); the default is {DEFAULT_SPOOL_MAX_BYTES}",
                        sp.max_bytes
                    ),
                });
            }
            if !sp.dir.is_absolute() {
                return Err(SinkError::BadConfig {
                    field: "spool_dir",
                    reason: format!(
                        "{} is not an absolute path; the default is {DEFAULT_SPOOL_DIR}",
                        sp.dir.display()
                    ),
                });
            }
        }
        Ok(())
    }
}

/// The kernel's hostname, or `localhost` if it cannot be read.
fn local_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// What the pipeline sends to the sink thread.
#[derive(Debug, Clone, PartialEq)]
pub enum SinkMessage {
    Alert {
        json: Value,
        severity: Severity,
    },
    /// An alert already rendered to JSON with [`SafeFormatter`] (the pipeline's fast path:
    /// no intermediate `Value`).
    AlertJson {
        json: Vec<u8>,
        severity: Severity,
    },
    Diagnostic {
        text: String,
        severity: Severity,
    },
    /// Several messages at once (what the pipeline produced from one batch of records),
    /// queued in order and then delivered: one wake-up of the sink thread for all of them.
    Batch(Vec<SinkMessage>),
    /// Try to deliver everything queued now (ignoring the backoff timer), bounded by
    /// `shutdown_drain`.
    Flush,
    /// Drain for at most `shutdown_drain`, then stop. Closing the channel does the same.
    Shutdown,
}

/// Errors of the sink. Delivery problems are not errors (they are queued, counted and retried);
/// these are configuration and setup problems.
#[derive(Debug)]
pub enum SinkError {
    /// A setting that does not parse.
    Setting(SettingError),
    BadConfig {
        field: &'static str,
        reason: String,
    },
    /// A pre-rendered alert was not valid JSON.
    BadJson(serde_json::Error),
    /// The OS refused to start the sink thread.
    Thread(std::io::Error),
    /// The disk spool cannot be used.
    Spool(SpoolError),
}

impl fmt::Display for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SinkError::Setting(e) => e.fmt(f),
            SinkError::BadConfig { field, reason } => write!(f, "syslog setting {field}: {reason}"),
            SinkError::BadJson(e) => write!(
                f,
                "alert text is not valid JSON ({e}); this is a bug in the alert stage, please report it"
            ),
            SinkError::Thread(e) => write!(
                f,
                "cannot start the syslog sink thread: {e}; check the process and memory limits"
            ),
            SinkError::Spool(e) => e.fmt(f),
        }
    }
}

impl From<SettingError> for SinkError {
    fn from(e: SettingError) -> Self {
        SinkError::Setting(e)
    }
}

impl std::error::Error for SinkError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SinkError::BadJson(e) => Some(e),
            SinkError::Thread(e) => Some(e),
            SinkError::Spool(e) => Some(e),
            _ => None,
        }
    }
}

/// Shared counters; read them with [`SinkStats::snapshot`] from any thread.
#[derive(Debug, Default)]
pub struct SinkStats {
    sent: AtomicU64,
    queued: AtomicU64,
    dropped: AtomicU64,
    send_errors: AtomicU64,
    reconnects: AtomicU64,
    truncated: AtomicU64,
    spooled: AtomicU64,
    spool_dropped: AtomicU64,
    spool_corrupt: AtomicU64,
    spool_pending: AtomicU64,
    spool_bytes: AtomicU64,
    /// The last connect or write error, with the transport, for operators and diagnostics.
    last_error: Mutex<Option<String>>,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Messages written to the transport.
    pub sent: u64,
    /// Messages waiting in the in-memory queue now (a gauge, not a total).
    pub queued: u64,
    /// Messages lost: evicted from a full queue (with no spool), left over at shutdown, or refused
    /// by the transport as too large.
    pub dropped: u64,
    /// Failed connects and failed writes.
    pub send_errors: u64,
    /// Successful connections after a failure.
    pub reconnects: u64,
    /// Alerts whose fields were trimmed to fit the size cap.
    pub truncated: u64,
    /// Messages handed to the spool.
    pub spooled: u64,
    /// Messages the spool dropped, oldest first, to stay under its cap.
    pub spool_dropped: u64,
    /// Unreadable regions the spool found and skipped (torn writes, damage).
    pub spool_corrupt: u64,
    /// Messages in the spool now (a gauge).
    pub spool_pending: u64,
    /// Bytes the spool occupies on disk now (a gauge).
    pub spool_bytes: u64,
}

impl SinkStats {
    pub fn snapshot(&self) -> StatsSnapshot {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StatsSnapshot {
            sent: l(&self.sent),
            queued: l(&self.queued),
            dropped: l(&self.dropped),
            send_errors: l(&self.send_errors),
            reconnects: l(&self.reconnects),
            truncated: l(&self.truncated),
            spooled: l(&self.spooled),
            spool_dropped: l(&self.spool_dropped),
            spool_corrupt: l(&self.spool_corrupt),
            spool_pending: l(&self.spool_pending),
            spool_bytes: l(&self.spool_bytes),
        }
    }

    /// The last connect or write error, e.g. `connect tcp://10.0.0.5:6514?format=rfc5424:
    /// Connection refused (os error 111)`. Stays set after recovery; compare `reconnects`.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set_last_error(&self, e: String) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e);
    }

    fn inc(a: &AtomicU64) {
        a.fetch_add(1, Ordering::Relaxed);
    }
}

/// The synchronous sink: format, queue, deliver. Not thread-safe by itself; [`spawn`] runs one
/// on its own thread. Usable directly from tests and one-shot commands.
pub struct Sink {
    cfg: SinkConfig,
    hostname: String,
    conn: Option<Conn>,
    /// Whether a connection has ever been established (to tell reconnects from the first connect).
    connected_once: bool,
    /// Earliest time of the next connect attempt while disconnected.
    retry_at: Instant,
    backoff: Duration,
    queue: BoundedQueue,
    spool: Option<Box<dyn Spool>>,
    /// The last connect or write failed and no write succeeded since: new messages go to the
    /// spool, not to memory.
    down: bool,
    last_sync: Instant,
    stats: Arc<SinkStats>,
    /// Drops not yet reported by a diagnostic message.
    unreported_drops: u64,
    /// Spool drops (cap) and corrupt regions not yet reported.
    unreported_spool: SpoolLosses,
}

/// Most messages one [`Sink::pump`] sends, so a long replay of the spool does not keep the sink
/// from taking new messages off its channel.
pub const PUMP_BATCH: usize = 512;

/// How often the spool is made durable (fsync) while it changes.
const SYNC_EVERY: Duration = Duration::from_secs(1);

impl fmt::Debug for Sink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sink")
            .field("transport", &self.cfg.transport)
            .field("connected", &self.conn.is_some())
            .field("queued", &self.queue.len())
            .finish_non_exhaustive()
    }
}

impl Sink {
    /// Validate `cfg` and build the sink. Does not connect: the first send does, and a collector
    /// that is down at startup only means messages wait in the queue.
    pub fn new(cfg: SinkConfig) -> Result<Sink, SinkError> {
        cfg.validate()?;
        Ok(Sink {
            hostname: format::sanitize_hostname(&cfg.hostname),
            conn: None,
            connected_once: false,
            retry_at: Instant::now(),
            backoff: cfg.backoff_initial,
            queue: BoundedQueue::new(cfg.queue_capacity),
            spool: None,
            down: false,
            last_sync: Instant::now(),
            stats: Arc::new(SinkStats::default()),
            unreported_drops: 0,
            unreported_spool: SpoolLosses::default(),
            cfg,
        })
    }

    /// Plug in a spool for outages, overflow and for what is left at shutdown. What it already
    /// holds is delivered before anything sent to this sink.
    pub fn with_spool(mut self, spool: Box<dyn Spool>) -> Sink {
        self.spool = Some(spool);
        self.update_gauge();
        self
    }

    /// The shared counters.
    pub fn stats(&self) -> Arc<SinkStats> {
        Arc::clone(&self.stats)
    }

    /// Messages waiting in memory.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Messages waiting in the spool.
    pub fn spooled(&self) -> u64 {
        self.spool.as_ref().map_or(0, |s| s.len())
    }

    fn spool_empty(&self) -> bool {
        self.spool.as_ref().is_none_or(|s| s.is_empty())
    }

    /// Format one alert as one syslog message, queue it and try to deliver.
    pub fn send_alert(&mut self, json: &Value, severity: Severity) {
        let msg = self.format_alert(json, severity);
        self.enqueue(msg);
        self.pump();
    }

    /// Same as [`Sink::send_alert`] for alert JSON already rendered elsewhere. The text is parsed
    /// (to re-render it without raw control characters and to trim it safely).
    pub fn send_alert_str(&mut self, json: &str, severity: Severity) -> Result<(), SinkError> {
        let v: Value = serde_json::from_str(json).map_err(SinkError::BadJson)?;
        self.send_alert(&v, severity);
        Ok(())
    }

    /// Queue and try to deliver an alert rendered with [`SafeFormatter`]. It is used as it
    /// is when it fits `max_message_bytes`; a longer one is parsed and trimmed like
    /// [`Sink::send_alert`] does; text that is not JSON is counted as dropped.
    pub fn send_alert_rendered(&mut self, json: Vec<u8>, severity: Severity) {
        if let Some(msg) = self.format_alert_rendered(json, severity) {
            self.enqueue(msg);
            self.pump();
        }
    }

    /// The message for [`Sink::send_alert_rendered`]; `None` (counted as dropped) when the
    /// text is not JSON.
    fn format_alert_rendered(
        &mut self,
        json: Vec<u8>,
        severity: Severity,
    ) -> Option<QueuedMessage> {
        let header = self.header(MessageKind::Alert, severity);
        let msg = if header.len() + json.len() <= self.cfg.max_message_bytes && !self.journal() {
            let mut bytes = header.into_bytes();
            bytes.extend_from_slice(&json);
            QueuedMessage {
                kind: MessageKind::Alert,
                bytes,
            }
        } else {
            match serde_json::from_slice::<Value>(&json) {
                Ok(v) => self.format_alert(&v, severity),
                Err(e) => {
                    self.stats
                        .set_last_error(format!("an alert is not JSON: {e}"));
                    SinkStats::inc(&self.stats.dropped);
                    self.unreported_drops += 1;
                    return None;
                }
            }
        };
        Some(msg)
    }

    /// Format one diagnostic (the daemon's own message), queue it and try to deliver.
    pub fn send_diagnostic(&mut self, text: &str, severity: Severity) {
        let msg = self.format_diagnostic(text, severity);
        self.enqueue(msg);
        self.pump();
    }

    /// Whether messages go to journald in its native protocol.
    fn journal(&self) -> bool {
        matches!(
            self.cfg.transport,
            Transport::Local {
                format: Format::Journal,
                ..
            }
        )
    }

    /// The full bytes of an alert message (header + capped JSON), without transport framing;
    /// for the journal, one native entry with the capped JSON as `MESSAGE`.
    pub fn format_alert(&self, json: &Value, severity: Severity) -> QueuedMessage {
        let header = self.header(MessageKind::Alert, severity);
        let budget = self.cfg.max_message_bytes.saturating_sub(header.len());
        let fitted = format::fit_json(json, budget);
        if fitted.truncated {
            SinkStats::inc(&self.stats.truncated);
        }
        if self.journal() {
            return QueuedMessage {
                kind: MessageKind::Alert,
                bytes: journal::entry(
                    MessageKind::Alert,
                    severity,
                    self.cfg.facility,
                    self.cfg.pid,
                    fitted.json.as_bytes(),
                    Some(json),
                ),
            };
        }
        let mut bytes = header.into_bytes();
        bytes.extend_from_slice(fitted.json.as_bytes());
        QueuedMessage {
            kind: MessageKind::Alert,
            bytes,
        }
    }

    /// The full bytes of a diagnostic message, control characters escaped, capped.
    pub fn format_diagnostic(&self, text: &str, severity: Severity) -> QueuedMessage {
        let header = self.header(MessageKind::Diagnostic, severity);
        let budget = self.cfg.max_message_bytes.saturating_sub(header.len());
        let body = format::fit_text(&format::sanitize_text(text), budget);
        if self.journal() {
            return QueuedMessage {
                kind: MessageKind::Diagnostic,
                bytes: journal::entry(
                    MessageKind::Diagnostic,
                    severity,
                    self.cfg.facility,
                    self.cfg.pid,
                    body.as_bytes(),
                    None,
                ),
            };
        }
        let mut bytes = header.into_bytes();
        bytes.extend_from_slice(body.as_bytes());
        QueuedMessage {
            kind: MessageKind::Diagnostic,
            bytes,
        }
    }

    fn header(&self, kind: MessageKind, severity: Severity) -> String {
        let (format, hostname) = match &self.cfg.transport {
            // stdout carries bare JSON lines; diagnostics (on stderr) get a short prefix.
            Transport::Stdout => {
                return match kind {
                    MessageKind::Alert => String::new(),
                    MessageKind::Diagnostic => format!(
                        "{}[{}]: {}{severity}: ",
                        format::APP_NAME,
                        self.cfg.pid,
                        format::DIAG_PREFIX
                    ),
                };
            }
            Transport::Local {
                format: Format::Rfc3164,
                ..
            } => (Format::Rfc3164, None),
            Transport::Local { format, .. }
            | Transport::Udp { format, .. }
            | Transport::Tcp { format, .. } => (*format, Some(self.hostname.as_str())),
        };
        format::header(&HeaderParams {
            format,
            facility: self.cfg.facility,
            severity,
            hostname,
            pid: self.cfg.pid,
            kind,
            time: SystemTime::now(),
        })
    }

    fn enqueue(&mut self, msg: QueuedMessage) {
        // Write-through while the collector is down or the spool still holds a backlog: the
        // whole queue goes first, so the spool stays older than the queue and delivering the
        // spool first keeps the order. A spool that refuses leaves the message in memory.
        let msg = if self.spool.is_some() && (self.down || !self.spool_empty()) {
            self.spill_queue();
            if self.queue.is_empty() {
                match self.spool.as_mut().map(|s| s.push(msg)) {
                    Some(Ok(())) => {
                        SinkStats::inc(&self.stats.spooled);
                        None
                    }
                    Some(Err(m)) => Some(m),
                    None => None,
                }
            } else {
                Some(msg)
            }
        } else {
            Some(msg)
        };
        // Only the queue's oldest message is ever evicted, so the order holds here too.
        if let Some(msg) = msg
            && let Some(evicted) = self.queue.push(msg)
        {
            self.spill_or_drop(evicted);
        }
        self.update_gauge();
    }

    fn spill_or_drop(&mut self, msg: QueuedMessage) {
        match self.spool.as_mut().map(|s| s.push(msg)) {
            Some(Ok(())) => SinkStats::inc(&self.stats.spooled),
            Some(Err(_)) | None => {
                SinkStats::inc(&self.stats.dropped);
                self.unreported_drops += 1;
            }
        }
    }

    /// Move the whole queue, oldest first, into the spool; stop at the first refusal.
    fn spill_queue(&mut self) {
        let Some(spool) = self.spool.as_mut() else {
            return;
        };
        while let Some(m) = self.queue.pop_front() {
            match spool.push(m) {
                Ok(()) => SinkStats::inc(&self.stats.spooled),
                Err(m) => {
                    self.queue.unpop(m);
                    break;
                }
            }
        }
    }

    fn update_gauge(&mut self) {
        self.stats
            .queued
            .store(self.queue.len() as u64, Ordering::Relaxed);
        let Some(spool) = self.spool.as_mut() else {
            return;
        };
        let l = spool.take_losses();
        if l != SpoolLosses::default() {
            self.stats
                .spool_dropped
                .fetch_add(l.dropped, Ordering::Relaxed);
            self.stats
                .spool_corrupt
                .fetch_add(l.corrupt, Ordering::Relaxed);
            self.unreported_spool.dropped += l.dropped;
            self.unreported_spool.corrupt += l.corrupt;
        }
        if let Some(e) = spool.take_error() {
            self.stats.set_last_error(e);
        }
        self.stats
            .spool_pending
            .store(spool.len(), Ordering::Relaxed);
        self.stats
            .spool_bytes
            .store(spool.bytes(), Ordering::Relaxed);
    }

    /// The collector is unreachable: from now on messages are kept on disk.
    fn went_down(&mut self) {
        self.down = true;
        self.spill_queue();
    }

    /// fsync the spool if it is due.
    fn maybe_sync(&mut self) {
        if self.last_sync.elapsed() >= SYNC_EVERY {
            self.last_sync = Instant::now();
            if let Some(s) = self.spool.as_mut() {
                s.sync();
            }
        }
    }

    /// Deliver what is waiting (at most [`PUMP_BATCH`] messages). Respects the backoff timer.
    /// Returns messages sent.
    pub fn pump(&mut self) -> usize {
        self.pump_inner(false)
    }

    fn pump_inner(&mut self, ignore_backoff: bool) -> usize {
        let mut sent = 0;
        while sent < PUMP_BATCH {
            let from_spool = match self.spool.as_mut().and_then(|s| s.front()) {
                Some(_) => true,
                None if self.queue.is_empty() => break,
                None => false,
            };
            if self.conn.is_none() && !self.connect(ignore_backoff) {
                self.went_down();
                break;
            }
            let Some(conn) = self.conn.as_mut() else {
                break;
            };
            let front = if from_spool {
                self.spool.as_mut().and_then(|s| s.front())
            } else {
                self.queue.front()
            };
            let Some(front) = front else { break };
            match conn.send(&front.bytes, front.kind) {
                Ok(()) => {
                    self.pop_front(from_spool);
                    SinkStats::inc(&self.stats.sent);
                    self.backoff = self.cfg.backoff_initial;
                    self.down = false;
                    sent += 1;
                }
                Err(e) if transport::is_permanent(&e) => {
                    // Resending can never work (e.g. EMSGSIZE on a unix socket with a cap above
                    // the socket's limit): drop this one and keep the connection.
                    SinkStats::inc(&self.stats.send_errors);
                    self.stats.set_last_error(format!(
                        "send to {}: {e}; lower max_message_bytes",
                        self.cfg.transport
                    ));
                    self.pop_front(from_spool);
                    SinkStats::inc(&self.stats.dropped);
                    self.unreported_drops += 1;
                }
                Err(e) => {
                    SinkStats::inc(&self.stats.send_errors);
                    self.stats
                        .set_last_error(format!("send to {}: {e}", self.cfg.transport));
                    self.disconnect(!ignore_backoff);
                    self.went_down();
                    if ignore_backoff {
                        break;
                    }
                }
            }
        }
        self.update_gauge();
        self.maybe_sync();
        let unreported =
            self.unreported_drops > 0 || self.unreported_spool != SpoolLosses::default();
        if sent > 0 && self.queue.is_empty() && self.spool_empty() && unreported {
            self.report_drops();
        }
        sent
    }

    fn pop_front(&mut self, from_spool: bool) {
        if from_spool {
            if let Some(s) = self.spool.as_mut() {
                s.pop_front();
            }
        } else {
            self.queue.pop_front();
        }
    }

    /// Tell the collector, once it is back and the backlog is delivered, how many messages were
    /// lost meanwhile.
    fn report_drops(&mut self) {
        let n = std::mem::take(&mut self.unreported_drops);
        let sp = std::mem::take(&mut self.unreported_spool);
        let last = self.stats.last_error().unwrap_or_default();
        let mut parts = Vec::new();
        if n > 0 {
            parts.push(format!(
                "{n} syslog message(s) dropped: queue full while the collector was unreachable \
                 (queue capacity {}) and no room in a spool, or refused by the transport as too \
                 large; raise queue_capacity, give the spool room, or check the collector",
                self.cfg.queue_capacity
            ));
        }
        if sp.dropped > 0 {
            let cap = self.cfg.spool.as_ref().map_or(0, |s| s.max_bytes);
            parts.push(format!(
                "{} spooled message(s) dropped, oldest first: the disk spool was full (cap {cap} \
                 bytes); raise --spool-max-bytes or check the collector",
                sp.dropped
            ));
        }
        if sp.corrupt > 0 {
            parts.push(format!(
                "{} unreadable region(s) skipped in the disk spool (torn writes after a crash or \
                 power loss, or damage); each lost at least one message",
                sp.corrupt
            ));
        }
        let text = format!("{}; last error: {last}", parts.join("; "));
        let msg = self.format_diagnostic(&text, Severity::Warning);
        self.enqueue(msg);
        self.pump_inner(false);
    }

    /// Try to open the connection. False when not yet time to retry, or the attempt failed.
    fn connect(&mut self, ignore_backoff: bool) -> bool {
        if !ignore_backoff && Instant::now() < self.retry_at {
            return false;
        }
        match Conn::open(&self.cfg.transport, self.cfg.io_timeout) {
            Ok(c) => {
                if self.connected_once {
                    SinkStats::inc(&self.stats.reconnects);
                }
                self.connected_once = true;
                self.conn = Some(c);
                true
            }
            Err(e) => {
                SinkStats::inc(&self.stats.send_errors);
                self.stats
                    .set_last_error(format!("connect {}: {e}", self.cfg.transport));
                self.disconnect(!ignore_backoff);
                false
            }
        }
    }

    /// Drop the connection and schedule the next attempt with exponential backoff. `escalate` is
    /// false while flushing: flush retries on its own 100 ms clock and must not push the normal
    /// backoff to its cap in two seconds.
    fn disconnect(&mut self, escalate: bool) {
        self.conn = None;
        if escalate {
            self.retry_at = later(self.backoff);
            self.backoff = self.backoff.saturating_mul(2).min(self.cfg.backoff_max);
        }
    }

    /// When to pump next, if messages are waiting: zero while connected (a batch was cut short),
    /// otherwise the time until the next connect attempt.
    pub fn next_retry_in(&self) -> Option<Duration> {
        if self.queue.is_empty() && self.spool_empty() {
            return None;
        }
        if self.conn.is_some() {
            return Some(Duration::ZERO);
        }
        Some(self.retry_at.saturating_duration_since(Instant::now()))
    }

    /// Keep trying (every 100 ms, ignoring the backoff) until everything is delivered or `limit`
    /// passes. Returns true when nothing is left.
    pub fn flush(&mut self, limit: Duration) -> bool {
        let deadline = later(limit);
        loop {
            let sent = self.pump_inner(true);
            if self.queue.is_empty() && self.spool.as_mut().and_then(|s| s.front()).is_none() {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            if sent == 0 {
                std::thread::sleep((deadline - now).min(Duration::from_millis(100)));
            }
        }
    }

    /// Drain for at most `shutdown_drain`, then hand what is left to the spool (made durable)
    /// or count it as dropped. Returns the final counters.
    pub fn shutdown(mut self) -> StatsSnapshot {
        self.flush(self.cfg.shutdown_drain);
        self.close();
        self.stats.snapshot()
    }

    fn close(&mut self) {
        while let Some(m) = self.queue.pop_front() {
            self.spill_or_drop(m);
        }
        if let Some(s) = self.spool.as_mut() {
            s.sync();
        }
        self.update_gauge();
    }

    /// Queue one alert or diagnostic of a batch without delivering yet; anything else in a
    /// batch (a nested batch, a flush) is handled as if sent alone.
    fn queue_message(&mut self, m: SinkMessage) {
        match m {
            SinkMessage::Alert { json, severity } => {
                let msg = self.format_alert(&json, severity);
                self.enqueue(msg);
            }
            SinkMessage::AlertJson { json, severity } => {
                if let Some(msg) = self.format_alert_rendered(json, severity) {
                    self.enqueue(msg);
                }
            }
            SinkMessage::Diagnostic { text, severity } => {
                let msg = self.format_diagnostic(&text, severity);
                self.enqueue(msg);
            }
            SinkMessage::Batch(msgs) => {
                for m in msgs {
                    self.queue_message(m);
                }
            }
            SinkMessage::Flush => {
                self.flush(self.cfg.shutdown_drain);
            }
            // A shutdown inside a batch is not a shutdown of the thread: the channel's own
            // Shutdown or disconnection is.
            SinkMessage::Shutdown => {}
        }
    }

    /// Serve `rx` until `Shutdown` or until every sender is gone, then [`Sink::shutdown`].
    pub fn run(mut self, rx: Receiver<SinkMessage>) -> StatsSnapshot {
        loop {
            // Wake up for the next reconnect attempt even when no new message arrives, and at
            // least every SYNC_EVERY so the spool is made durable.
            let wait = self
                .next_retry_in()
                .unwrap_or(SYNC_EVERY)
                .clamp(Duration::from_millis(1), SYNC_EVERY);
            match rx.recv_timeout(wait) {
                Ok(SinkMessage::Batch(msgs)) => {
                    for m in msgs {
                        self.queue_message(m);
                    }
                    self.pump();
                }
                Ok(SinkMessage::Alert { json, severity }) => self.send_alert(&json, severity),
                Ok(SinkMessage::AlertJson { json, severity }) => {
                    self.send_alert_rendered(json, severity)
                }
                Ok(SinkMessage::Diagnostic { text, severity }) => {
                    self.send_diagnostic(&text, severity)
                }
                Ok(SinkMessage::Flush) => {
                    self.flush(self.cfg.shutdown_drain);
                }
                Ok(SinkMessage::Shutdown) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    self.pump();
                }
            }
        }
        self.shutdown()
    }
}

/// Now plus `d`, saturating instead of panicking on absurd configured durations.
fn later(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365))
}

/// A sink dropped without [`Sink::shutdown`] (e.g. on a panic unwinding elsewhere) still hands
/// its queue to the spool or counts it as dropped, so the counters never hide a loss.
impl Drop for Sink {
    fn drop(&mut self) {
        self.close();
    }
}

/// A running sink thread.
#[derive(Debug)]
pub struct SinkThread {
    /// Joins to the final counters.
    pub handle: JoinHandle<StatsSnapshot>,
    /// Live counters.
    pub stats: Arc<SinkStats>,
    /// What the disk spool held at start, when there is one.
    pub spool_report: Option<SpoolReport>,
}

/// Open the disk spool `cfg` asks for (none with `stdout`), with what it holds from an earlier
/// run. Errors when the directory is unsafe, unusable or held by another daemon.
pub fn open_spool(cfg: &SinkConfig) -> Result<Option<(DiskSpool, SpoolReport)>, SinkError> {
    match &cfg.spool {
        Some(sc) if cfg.transport != Transport::Stdout => {
            DiskSpool::open(sc).map(Some).map_err(SinkError::Spool)
        }
        _ => Ok(None),
    }
}

/// Validate `cfg`, open its disk spool and run a [`Sink`] on its own thread (`wwatchd-syslog`)
/// serving `rx`. Errors are configuration errors, an unusable spool directory, or the OS
/// refusing a thread; delivery problems never end the thread.
pub fn spawn(cfg: SinkConfig, rx: Receiver<SinkMessage>) -> Result<SinkThread, SinkError> {
    cfg.validate()?;
    let spool = open_spool(&cfg)?;
    spawn_with(cfg, spool, rx)
}

/// [`spawn`] with the spool already opened by [`open_spool`].
pub fn spawn_with(
    cfg: SinkConfig,
    spool: Option<(DiskSpool, SpoolReport)>,
    rx: Receiver<SinkMessage>,
) -> Result<SinkThread, SinkError> {
    let mut sink = Sink::new(cfg)?;
    let mut spool_report = None;
    if let Some((spool, report)) = spool {
        sink = sink.with_spool(Box::new(spool));
        spool_report = Some(report);
    }
    let stats = sink.stats();
    let handle = std::thread::Builder::new()
        .name("wwatchd-syslog".to_owned())
        .spawn(move || sink.run(rx))
        .map_err(SinkError::Thread)?;
    Ok(SinkThread {
        handle,
        stats,
        spool_report,
    })
}

#[cfg(test)]
mod journal_tests;
#[cfg(test)]
mod tests;

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
//! - **Who sends**: the `wwatchd-syslog` thread, fed through a bounded channel. When it is idle
//!   (nothing queued, spooled or in the channel) on a connected UDP, `/dev/log` (datagram) or
//!   TCP transport, [`SinkHandle::deliver`] lets the worker format and send the message
//!   itself, with `MSG_DONTWAIT` under the sink's lock, which spares one thread wake-up per
//!   batch. A send that would block or fails leaves the message queued and wakes the thread,
//!   so the worker never waits on the network and order holds. On TCP the socket may take part
//!   of a frame: the rest is kept with the message, which stays first in the queue, and the
//!   thread writes that rest before anything else, then lets the message go (if the connection
//!   fails first, the message is resent whole on the next). Stdout always uses the thread.
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
mod sink;
mod spool;
mod transport;

pub use sink::{PUMP_BATCH, Sink};

pub use queue::{QueuedMessage, Spool, SpoolLosses};
pub use spool::{DiskSpool, SpoolError, SpoolReport};
pub use wwatchd_core::spool_format::{
    DEFAULT_DIR as DEFAULT_SPOOL_DIR, DEFAULT_MAX_BYTES as DEFAULT_SPOOL_MAX_BYTES,
    MIN_MAX_BYTES as MIN_SPOOL_MAX_BYTES, SpoolConfig,
};
pub use wwatchd_core::syslog::*;

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Sender, bounded};
use serde_json::Value;

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
    /// Another thread queued messages it could not deliver at once ([`SinkHandle::deliver`]):
    /// deliver them as the backoff allows.
    Wake,
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
    refused: AtomicU64,
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
    /// UDP datagrams sent and then refused by the collector's host (an ICMP port unreachable,
    /// which the kernel reports on the next send): lost, though counted in `sent` too.
    pub refused: u64,
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
            refused: l(&self.refused),
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

/// A [`Sink`] shared by its thread and by the threads that hand it messages.
pub(crate) struct Shared {
    sink: Mutex<Sink>,
    /// Messages sent on the channel and not yet handled by the sink thread. A message
    /// delivered directly while this is not zero could overtake one of them.
    in_channel: AtomicUsize,
}

impl Shared {
    fn new(sink: Sink) -> Shared {
        Shared {
            sink: Mutex::new(sink),
            in_channel: AtomicUsize::new(0),
        }
    }

    /// The sink; a panic elsewhere while it was held leaves it usable (its state is
    /// consistent between two calls).
    fn lock(&self) -> MutexGuard<'_, Sink> {
        self.sink.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// How every thread hands messages to a running sink: through its bounded channel, or, with
/// [`SinkHandle::deliver`], straight onto the connection when that cannot wait.
///
/// Sending through the channel wakes the sink thread, once per message; at one alert per
/// event that doubles the daemon's wake-ups. `deliver` spares it: when the sink is idle
/// (nothing queued, nothing spooled, nothing in the channel) and connected over UDP,
/// `/dev/log` or TCP, the caller formats and sends the message itself with a send that never
/// blocks (a TCP frame the socket takes only part of is finished by the sink thread). Anything
/// else (stdout; a collector that is down; a backlog) goes through the channel as before, so
/// order holds and the reading thread never waits on the network.
#[derive(Clone)]
pub struct SinkHandle {
    tx: Sender<SinkMessage>,
    /// `None`: channel only (tests that read the channel themselves).
    shared: Option<Arc<Shared>>,
}

impl SinkHandle {
    /// A handle that only sends on `tx`, for a receiver read by the caller.
    pub fn channel(tx: Sender<SinkMessage>) -> SinkHandle {
        SinkHandle { tx, shared: None }
    }

    /// A message goes into the channel (counted before it can be received).
    fn enter(&self) {
        if let Some(s) = &self.shared {
            s.in_channel.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A message counted by [`SinkHandle::enter`] did not go into the channel after all.
    fn back(&self) {
        if let Some(s) = &self.shared {
            s.in_channel.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Send on the channel unless it is full or closed; the message comes back then.
    pub fn try_send(&self, m: SinkMessage) -> Result<(), SinkMessage> {
        self.enter();
        self.tx.try_send(m).map_err(|e| {
            self.back();
            e.into_inner()
        })
    }

    /// Send on the channel, waiting at most `limit` for room.
    pub fn send_timeout(&self, m: SinkMessage, limit: Duration) -> Result<(), SinkMessage> {
        self.enter();
        self.tx.send_timeout(m, limit).map_err(|e| {
            self.back();
            e.into_inner()
        })
    }

    /// Send on the channel, waiting for room.
    pub fn send(&self, m: SinkMessage) -> Result<(), SinkMessage> {
        self.enter();
        self.tx.send(m).map_err(|e| {
            self.back();
            e.0
        })
    }

    /// Deliver `m` from this thread when the sink is idle on a UDP, unix datagram or TCP
    /// connection (see the type's doc), else [`SinkHandle::try_send`] it. Never waits: not for
    /// the lock, which the sink thread holds while it works, nor for the socket. A message that
    /// cannot be sent at once (or whole) stays queued in the sink, and its thread is woken to
    /// send it (or its rest).
    pub fn deliver(&self, m: SinkMessage) -> Result<(), SinkMessage> {
        let Some(shared) = &self.shared else {
            return self.try_send(m);
        };
        // Control messages are the sink thread's: a flush may wait up to `shutdown_drain`.
        if matches!(
            m,
            SinkMessage::Flush | SinkMessage::Wake | SinkMessage::Shutdown
        ) {
            return self.try_send(m);
        }
        if shared.in_channel.load(Ordering::SeqCst) != 0 {
            return self.try_send(m);
        }
        let mut sink = match shared.sink.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return self.try_send(m),
        };
        // Under the lock: the sink thread counts a message off only once it has handled it.
        if shared.in_channel.load(Ordering::SeqCst) != 0 || !sink.ready_for_direct() {
            drop(sink);
            return self.try_send(m);
        }
        let left = sink.deliver_now(m);
        drop(sink);
        if left {
            // A full channel wakes the thread anyway; a closed one means it has stopped.
            let _ = self.try_send(SinkMessage::Wake);
        }
        Ok(())
    }
}

/// Validate `cfg`, open its disk spool and run a [`Sink`] on its own thread (`wwatchd-syslog`)
/// behind a channel of `capacity` messages. Errors are configuration errors, an unusable spool
/// directory, or the OS refusing a thread; delivery problems never end the thread.
pub fn spawn(cfg: SinkConfig, capacity: usize) -> Result<(SinkThread, SinkHandle), SinkError> {
    cfg.validate()?;
    let spool = open_spool(&cfg)?;
    spawn_with(cfg, spool, capacity)
}

/// [`spawn`] with the spool already opened by [`open_spool`].
pub fn spawn_with(
    cfg: SinkConfig,
    spool: Option<(DiskSpool, SpoolReport)>,
    capacity: usize,
) -> Result<(SinkThread, SinkHandle), SinkError> {
    let mut sink = Sink::new(cfg)?;
    let mut spool_report = None;
    if let Some((spool, report)) = spool {
        sink = sink.with_spool(Box::new(spool));
        spool_report = Some(report);
    }
    let stats = sink.stats();
    let shared = Arc::new(Shared::new(sink));
    let (tx, rx) = bounded(capacity);
    let served = Arc::clone(&shared);
    let handle = std::thread::Builder::new()
        .name("wwatchd-syslog".to_owned())
        .spawn(move || sink::serve(&served, rx))
        .map_err(SinkError::Thread)?;
    let thread = SinkThread {
        handle,
        stats,
        spool_report,
    };
    let handle = SinkHandle {
        tx,
        shared: Some(shared),
    };
    Ok((thread, handle))
}

#[cfg(test)]
mod journal_tests;
#[cfg(test)]
mod tests;

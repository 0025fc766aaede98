//! syslog::sink: the synchronous sink (format, queue, deliver, spool); the parent module
//! describes the behaviour and runs it on its own thread.

use super::*;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use serde_json::Value;

use super::queue::BoundedQueue;
use super::transport::{Conn, NoWait, SEND_BATCH};
use wwatchd_core::syslog::format::HeaderParams;

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
    /// Refused UDP datagrams not yet reported.
    unreported_refused: u64,
    /// Shut down: what is left went to the spool or was counted; nothing is delivered now.
    closed: bool,
    /// TCP: the rest of the queue's first message's frame, which a send that does not wait
    /// began on the current connection. It goes out before anything else; the message leaves
    /// the queue once it has. Dropped with the connection (the message is resent whole).
    tail: Option<Vec<u8>>,
}

/// How [`Sink::pump_inner`] may deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Connect when the backoff allows; a failure schedules the next attempt.
    Normal,
    /// Connect now, whatever the backoff says, and do not escalate it (flush, shutdown).
    Flush,
    /// From a thread that must not wait ([`SinkHandle::deliver`]): no connect, and a send
    /// that would block leaves the message queued for the sink thread.
    NoWait,
}

/// What [`Sink::send_queue_batch`] did.
#[derive(Debug)]
enum Batched {
    /// Not a case for a batch: the first message goes alone.
    No,
    /// This many messages went.
    Sent(usize),
    /// The first `sent` went, and the next one failed with `err`; `refused`: refusals of
    /// datagrams sent before, found on the error queue (the kernel reports one as the error of
    /// a later send, and a short batch does not return it).
    Failed {
        sent: usize,
        err: std::io::Error,
        refused: u64,
    },
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
            unreported_refused: 0,
            closed: false,
            tail: None,
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
        // Only the queue's oldest message is ever evicted, so the order holds here too. If
        // that one is half-written on the socket, the connection goes with it (the collector
        // discards the partial frame), so no other message's bytes follow the half.
        if msg.is_some() && self.tail.is_some() && self.queue.is_full() {
            self.disconnect(false);
        }
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
        self.pump_inner(Mode::Normal)
    }

    fn pump_inner(&mut self, mode: Mode) -> usize {
        let ignore_backoff = mode == Mode::Flush;
        let mut sent = 0;
        while sent < PUMP_BATCH {
            let from_spool = match self.spool.as_mut().and_then(|s| s.front()) {
                Some(_) => true,
                None if self.queue.is_empty() => break,
                None => false,
            };
            if self.conn.is_none() && (mode == Mode::NoWait || self.closed) {
                break;
            }
            if self.conn.is_none() && !self.connect(ignore_backoff) {
                self.went_down();
                break;
            }
            // The rest of a frame begun without waiting goes first: it belongs to the queue's
            // first message (nothing reaches the spool while it waits: see `enqueue`).
            if let Some(rest) = self.tail.take() {
                if mode == Mode::NoWait {
                    self.tail = Some(rest);
                    break;
                }
                if self.finish_frame(&rest, ignore_backoff) {
                    sent += 1;
                } else if ignore_backoff {
                    break;
                }
                continue;
            }
            let (mut r, mut refusals) = (None, 0);
            if !from_spool {
                match self.send_queue_batch(mode, PUMP_BATCH - sent) {
                    Batched::No => {}
                    Batched::Sent(k) => {
                        sent += k;
                        continue;
                    }
                    // The one after the first `k` was not sent: handled as a single send's.
                    Batched::Failed {
                        sent: k,
                        err,
                        refused,
                    } => {
                        sent += k;
                        refusals = refused;
                        r = Some(Err(err));
                    }
                }
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
            let r = match (r, mode) {
                (Some(r), _) => r,
                (None, Mode::NoWait) => conn.send_nowait(&front.bytes, front.kind),
                (None, Mode::Normal | Mode::Flush) => {
                    conn.send(&front.bytes, front.kind).map(|()| NoWait::Sent)
                }
            };
            match r {
                // Left queued with the rest of its frame: the sink thread finishes it.
                Ok(NoWait::Rest(rest)) => {
                    self.tail = Some(rest);
                    break;
                }
                Ok(NoWait::Sent) => {
                    self.delivered(from_spool);
                    sent += 1;
                }
                Err(e) => {
                    if self.send_failed(e, from_spool, refusals, mode) {
                        break;
                    }
                }
            }
        }
        self.update_gauge();
        self.maybe_sync();
        let unreported = self.unreported_drops > 0
            || self.unreported_refused > 0
            || self.unreported_spool != SpoolLosses::default();
        if sent > 0 && self.queue.is_empty() && self.spool_empty() && unreported {
            self.report_drops(mode);
        }
        sent
    }

    /// A send of the first message failed with `e` (`refusals`: refusals already taken off
    /// the error queue). True when the pump stops here.
    fn send_failed(
        &mut self,
        e: std::io::Error,
        from_spool: bool,
        refusals: u64,
        mode: Mode,
    ) -> bool {
        let ignore_backoff = mode == Mode::Flush;
        // Left queued: the sink thread sends it, waiting as long as that takes.
        if mode == Mode::NoWait && e.kind() == std::io::ErrorKind::WouldBlock {
            return true;
        }
        SinkStats::inc(&self.stats.send_errors);
        if transport::is_permanent(&e) {
            // Resending can never work (e.g. EMSGSIZE on a unix socket with a cap above
            // the socket's limit): drop this one and keep the connection.
            self.stats.set_last_error(format!(
                "send to {}: {e}; lower max_message_bytes",
                self.cfg.transport
            ));
            self.pop_front(from_spool);
            SinkStats::inc(&self.stats.dropped);
            self.unreported_drops += 1;
            return false;
        }
        if let Some(conn) = self.conn.as_mut()
            && conn.refused_earlier(&e)
        {
            // Earlier datagrams were lost (one at least, one per refusal on the error
            // queue); this one was not sent and stays queued.
            let n = (refusals + conn.take_refusals()).max(1);
            self.stats.refused.fetch_add(n, Ordering::Relaxed);
            self.unreported_refused += n;
        }
        self.stats
            .set_last_error(format!("send to {}: {e}", self.cfg.transport));
        self.disconnect(!ignore_backoff);
        self.went_down();
        ignore_backoff
    }

    /// Several datagrams queued: one system call hands up to [`SEND_BATCH`] of them (at most
    /// `room`) to the kernel, so the collector is woken once for them, not once each. (A
    /// collector woken on the sender's CPU preempts it: measured at 1,000 alerts/s, nearly one
    /// preemption per alert with a real-time collector.)
    fn send_queue_batch(&mut self, mode: Mode, room: usize) -> Batched {
        let Some(conn) = self.conn.as_mut() else {
            return Batched::No;
        };
        if !conn.batches() || self.queue.len() < 2 || room < 2 {
            return Batched::No;
        }
        let want = self.queue.len().min(room).min(SEND_BATCH);
        let msgs: Vec<&[u8]> = self.queue.iter().take(want).map(|m| &m.bytes[..]).collect();
        let got = conn.send_batch(&msgs, mode != Mode::NoWait);
        drop(msgs);
        let k = match got {
            Ok(k) => k,
            Err(err) => {
                return Batched::Failed {
                    sent: 0,
                    err,
                    refused: 0,
                };
            }
        };
        // Short: the next one failed, and the kernel kept its error. A refusal it reported
        // (of a datagram sent earlier) would be lost with it; the error queue has it.
        let refused = if k < want { conn.take_refusals() } else { 0 };
        for _ in 0..k {
            self.delivered(false);
        }
        if refused == 0 {
            return Batched::Sent(k);
        }
        Batched::Failed {
            sent: k,
            err: std::io::Error::from_raw_os_error(nix::libc::ECONNREFUSED),
            refused,
        }
    }

    /// The first message (of the spool or the queue) went out whole: it leaves, and the
    /// collector counts as up.
    fn delivered(&mut self, from_spool: bool) {
        self.pop_front(from_spool);
        SinkStats::inc(&self.stats.sent);
        self.backoff = self.cfg.backoff_initial;
        self.down = false;
    }

    /// Writes the rest of the queue's first message's frame; true when it went, and the
    /// message with it. A failure drops the connection, as any failed write does.
    fn finish_frame(&mut self, rest: &[u8], ignore_backoff: bool) -> bool {
        let Some(conn) = self.conn.as_mut() else {
            return false;
        };
        match conn.send_rest(rest) {
            Ok(()) => {
                self.delivered(false);
                true
            }
            Err(e) => {
                SinkStats::inc(&self.stats.send_errors);
                self.stats
                    .set_last_error(format!("send to {}: {e}", self.cfg.transport));
                self.disconnect(!ignore_backoff);
                self.went_down();
                false
            }
        }
    }

    /// Whether a message handed over now could be delivered at once, without waiting: open
    /// on a datagram or TCP connection, with nothing older waiting in memory, in the spool or
    /// half-written on the socket.
    pub(super) fn ready_for_direct(&self) -> bool {
        !self.closed
            && !self.down
            && self.tail.is_none()
            && self.queue.is_empty()
            && self.spool_empty()
            && self.conn.as_ref().is_some_and(Conn::sends_without_waiting)
    }

    /// Whether the queue's first message is half-written on the connection.
    #[cfg(test)]
    pub(super) fn half_written(&self) -> bool {
        self.tail.is_some()
    }

    /// Queue `m` and deliver it in [`Mode::NoWait`]. True when something is left waiting
    /// (a send would have blocked or failed), which only the sink thread's timer delivers.
    pub(super) fn deliver_now(&mut self, m: SinkMessage) -> bool {
        self.queue_message(m);
        self.pump_inner(Mode::NoWait);
        !(self.queue.is_empty() && self.spool_empty())
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
    fn report_drops(&mut self, mode: Mode) {
        let n = std::mem::take(&mut self.unreported_drops);
        let sp = std::mem::take(&mut self.unreported_spool);
        let refused = std::mem::take(&mut self.unreported_refused);
        let last = self.stats.last_error().unwrap_or_default();
        let mut parts = Vec::new();
        if refused > 0 {
            parts.push(format!(
                "{refused} or more syslog message(s) lost: sent over UDP, then refused by the \
                 collector's host (ICMP port unreachable: nothing listened on the port); UDP \
                 cannot say which or resend them, use TCP where that matters"
            ));
        }
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
        self.pump_inner(mode);
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
        self.tail = None;
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

    /// How long the sink thread may wait for a message before it must act on its own: the next
    /// pump ([`Sink::next_retry_in`]), else the spool's next sync while it has unsynced
    /// changes; at least 1 ms and at most `SYNC_EVERY` (1 s). `None`: nothing is due, the thread
    /// sleeps until a message arrives (an idle daemon has no timer here).
    pub fn next_wake_in(&self) -> Option<Duration> {
        let due = self.next_retry_in().or_else(|| {
            self.spool
                .as_ref()
                .is_some_and(|s| s.needs_sync())
                .then_some(SYNC_EVERY)
        })?;
        Some(due.clamp(Duration::from_millis(1), SYNC_EVERY))
    }

    /// Keep trying (every 100 ms, ignoring the backoff) until everything is delivered or `limit`
    /// passes. Returns true when nothing is left.
    pub fn flush(&mut self, limit: Duration) -> bool {
        let deadline = later(limit);
        loop {
            let sent = self.pump_inner(Mode::Flush);
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
        self.closed = true;
        // A frame left half-written stays so on this connection, which the collector
        // discards when it closes; its message goes to the spool with the rest.
        self.tail = None;
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
    pub(super) fn queue_message(&mut self, m: SinkMessage) {
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
            SinkMessage::Shutdown | SinkMessage::Wake => {}
        }
    }

    /// What the sink thread does with one message from its channel; true for `Shutdown`.
    fn handle(&mut self, m: SinkMessage) -> bool {
        match m {
            SinkMessage::Batch(msgs) => {
                for m in msgs {
                    self.queue_message(m);
                }
                self.pump();
            }
            SinkMessage::Alert { json, severity } => self.send_alert(&json, severity),
            SinkMessage::AlertJson { json, severity } => self.send_alert_rendered(json, severity),
            SinkMessage::Diagnostic { text, severity } => self.send_diagnostic(&text, severity),
            SinkMessage::Flush => {
                self.flush(self.cfg.shutdown_drain);
            }
            SinkMessage::Wake => {
                self.pump();
            }
            SinkMessage::Shutdown => return true,
        }
        false
    }
}

/// The sink thread: serve `rx` for the sink in `shared` until `Shutdown` or until every
/// sender is gone, then drain for at most `shutdown_drain` and close. Each message is
/// handled under the lock and only then counted off `in_channel`, so a thread that
/// delivers directly ([`SinkHandle::deliver`]) never overtakes one still in the channel.
pub(super) fn serve(shared: &Shared, rx: Receiver<SinkMessage>) -> StatsSnapshot {
    loop {
        // Wake up for the next reconnect attempt even when no new message arrives, and
        // within SYNC_EVERY while the spool has changes to make durable; else no timer.
        let wait = shared.lock().next_wake_in();
        let got = match wait {
            Some(wait) => rx.recv_timeout(wait),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match got {
            Ok(m) => {
                let mut sink = shared.lock();
                let stop = sink.handle(m);
                shared.in_channel.fetch_sub(1, Ordering::SeqCst);
                if stop {
                    break;
                }
            }
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {
                shared.lock().pump();
            }
        }
    }
    let mut sink = shared.lock();
    let drain = sink.cfg.shutdown_drain;
    sink.flush(drain);
    sink.close();
    sink.stats.snapshot()
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

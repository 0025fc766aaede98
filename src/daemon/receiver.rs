//! daemon::receiver: reading the multicast socket into batches, for the worker thread.
//!
//! `MulticastReader ──recvmmsg──► Batch ──► worker (same thread)`
//!
//! The worker reads the socket itself, so an event costs one thread's wake-up, not a
//! receiver's, a hand-over's and a worker's. The kernel's socket buffer (16 MiB asked, 32 MiB
//! granted) holds what arrives while the worker examines a batch: at the kernel's highest
//! rate (about 50,000 records a second) a 10 ms pause queues 500 records, and the worker
//! examines records more than ten times faster than the kernel can send them (`scan`, the
//! same detector: 0.64 M records a second with every alert written, docs/benchmarks.md).
//! What the buffer cannot hold the kernel reports as ENOBUFS, which is counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use wwatchd_core::record::Record;

use super::stats::Stats;
use crate::netlink::{MmsgBufs, MulticastReader, NetlinkError, Readiness, RecvOutcome};

/// Most records in one batch.
const BATCH_RECORDS: usize = 256;
/// A batch is closed once its text reaches this many bytes.
const BATCH_BYTES: usize = 64 << 10;
/// Under load, after a batch that emptied the socket at the end of an event, the worker lets
/// records gather this long before it reads again: that turns one wake-up (of the worker
/// and of the sink) per event into one per several events, for at most this much added
/// latency (the alerts of the batch are handed to the sink before the pause). The kernel's
/// socket buffer holds what arrives meanwhile (at the kernel's highest rate, a few hundred
/// records: far below its size). Measured at 1,000 alerting creations/s, 8 ms with the
/// [`BUSY`] test against 4 ms: wwatchd's CPU against auditd's 0.66 -> 0.53-0.56, p99 10.6 ->
/// 11.7-12.3 ms; the burst's p99 rose from 17-54 to 61-69 ms.
pub(super) const COALESCE: Duration = Duration::from_millis(8);
/// "Under load": the worker's wait for a new event ended within this long (more than 200
/// events a second). At lighter load each event is examined as soon as it is complete, with
/// no coalescing pause.
pub(super) const BUSY: Duration = Duration::from_millis(5);
/// Longest the reader waits for the next record of an event whose first records it has read
/// (the kernel sends an event's records back to back): it wakes when that record arrives, and
/// a fixed sleep instead would add its length to every such event under a loaded scheduler.
const EVENT_REST: Duration = Duration::from_millis(1);
/// Longest the reader keeps reading at stop. The socket holds at most its buffer's worth;
/// under a storm that never ends, this bounds the shutdown.
const DRAIN_MAX: Duration = Duration::from_millis(500);

/// Records as the worker examines them: what one read of the socket found queued, in one
/// buffer, reused from batch to batch.
pub(super) struct Batch {
    text: Vec<u8>,
    /// Record type and end offset in `text` of each record.
    items: Vec<(u16, usize)>,
}

impl Batch {
    pub(super) fn new() -> Batch {
        Batch {
            text: Vec::with_capacity(BATCH_BYTES),
            items: Vec::with_capacity(BATCH_RECORDS),
        }
    }

    pub(super) fn push(&mut self, rtype: u16, text: &[u8]) {
        self.text.extend_from_slice(text);
        self.items.push((rtype, self.text.len()));
    }

    pub(super) fn is_full(&self) -> bool {
        self.items.len() >= BATCH_RECORDS || self.text.len() >= BATCH_BYTES
    }

    pub(super) fn len(&self) -> usize {
        self.items.len()
    }

    pub(super) fn clear(&mut self) {
        self.text.clear();
        self.items.clear();
    }

    /// Milliseconds since the epoch in the stamp of the last record, if it has one.
    pub(super) fn last_stamp_ms(&self) -> Option<u64> {
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

    /// Whether the last record ends an event (EOE, or a type that is an event by itself), so
    /// the worker can finish everything in the batch without waiting for the next one.
    pub(super) fn ends_an_event(&self) -> bool {
        self.items.last().is_some_and(|&(t, _)| {
            t == wwatchd_core::record::num::EOE || !(1300..2100).contains(&t)
        })
    }

    pub(super) fn records(&self) -> impl Iterator<Item = (u16, &[u8])> {
        let mut start = 0;
        self.items.iter().map(move |&(rtype, end)| {
            let text = &self.text[start..end];
            start = end;
            (rtype, text)
        })
    }
}

/// What [`Source::fill`] left behind it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Filled {
    /// The source is empty now: examine the batch, then wait.
    Empty,
    /// The batch is full and more may be queued: examine it and read again at once.
    Full,
    /// The source has ended (at stop, once the socket's backlog is read): examine the batch,
    /// then finish.
    Ended,
}

/// Where the worker's records come from: the multicast socket in the daemon, a list of
/// batches in the tests and the instruction-count benchmark.
pub(super) trait Source {
    /// Adds what is queued now to `batch`, up to a full batch, without blocking (but for a
    /// short, bounded wait for the rest of an event whose first records it has read).
    fn fill(&mut self, batch: &mut Batch, stats: &Stats) -> Result<Filled, NetlinkError>;
    /// Blocks until records arrive, `timeout` passes (`None`: never) or the waker is woken
    /// (at stop, or to hand over a reload).
    fn wait(&mut self, timeout: Option<Duration>) -> Result<Readiness, NetlinkError>;
}

/// The daemon's source: the multicast socket. It blocks with no timer of its own (a
/// [`crate::netlink::Waker`] ends the wait), takes whatever is queued,
/// [`crate::netlink::MMSG_SLOTS`] datagrams per `recvmmsg`, and stops a batch inside an
/// event only after waiting up to [`EVENT_REST`] for the rest. Once told to stop it reads
/// what the socket still holds (for at most [`DRAIN_MAX`]), so records the kernel delivered
/// before the stop are examined, not dropped with the socket.
pub(super) struct Multicast {
    reader: MulticastReader,
    bufs: MmsgBufs,
    stop: Arc<AtomicBool>,
    /// Set at stop: until when the backlog is read.
    drain_until: Option<Instant>,
    /// The reader's count of foreign datagrams already added to the stats.
    foreign: u64,
}

impl Multicast {
    pub(super) fn new(reader: MulticastReader, stop: Arc<AtomicBool>) -> Multicast {
        Multicast {
            reader,
            bufs: MmsgBufs::new(),
            stop,
            drain_until: None,
            foreign: 0,
        }
    }

    /// At stop: reads without waiting until the batch is full, the socket is empty, or the
    /// drain's time is up. A read error ends the drain: the daemon is stopping anyway.
    fn drain(&mut self, batch: &mut Batch, stats: &Stats) -> Filled {
        let until = *self
            .drain_until
            .get_or_insert_with(|| Instant::now() + DRAIN_MAX);
        loop {
            if batch.is_full() {
                return Filled::Full;
            }
            let room = BATCH_RECORDS - batch.len();
            let out = self
                .reader
                .recv_many(&mut self.bufs, room, &mut |rtype, text| {
                    batch.push(rtype, text)
                });
            match out {
                Ok(RecvOutcome::Timeout) | Err(_) => return Filled::Ended,
                Ok(RecvOutcome::Enobufs) => {
                    stats.daemon.enobufs.fetch_add(1, Ordering::Relaxed);
                }
                Ok(RecvOutcome::Messages(_)) => {}
            }
            if Instant::now() >= until {
                return Filled::Ended;
            }
        }
    }
}

impl Source for Multicast {
    fn fill(&mut self, batch: &mut Batch, stats: &Stats) -> Result<Filled, NetlinkError> {
        if self.stop.load(Ordering::Relaxed) {
            return Ok(self.drain(batch, stats));
        }
        let filled = fill(&mut self.reader, &mut self.bufs, batch, stats);
        let f = self.reader.stats().foreign;
        if f > self.foreign {
            stats
                .daemon
                .foreign
                .fetch_add(f - self.foreign, Ordering::Relaxed);
            self.foreign = f;
        }
        filled
    }

    fn wait(&mut self, timeout: Option<Duration>) -> Result<Readiness, NetlinkError> {
        self.reader.wait(timeout)
    }
}

/// Takes what the socket holds now into `batch`, up to a full batch; inside an event it waits
/// once, at most [`EVENT_REST`], for the next record.
fn fill(
    reader: &mut MulticastReader,
    bufs: &mut MmsgBufs,
    batch: &mut Batch,
    stats: &Stats,
) -> Result<Filled, NetlinkError> {
    let mut waited = false;
    loop {
        if batch.is_full() {
            return Ok(Filled::Full);
        }
        let room = BATCH_RECORDS - batch.len();
        match reader.recv_many(bufs, room, &mut |rtype, text| batch.push(rtype, text))? {
            // More may be queued: read again at once.
            RecvOutcome::Messages(_) if !reader.emptied() => continue,
            RecvOutcome::Messages(_) | RecvOutcome::Timeout => {}
            RecvOutcome::Enobufs => {
                stats.daemon.enobufs.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        }
        // The socket is empty. Inside an event the kernel is still sending its other
        // records: wait for the next one (once, bounded), so the worker examines the whole
        // event after one wake-up rather than each part of it after its own.
        if !waited && batch.len() > 0 && !batch.ends_an_event() {
            waited = true;
            if reader.wait(Some(EVENT_REST))? == Readiness::Readable {
                continue;
            }
        }
        return Ok(Filled::Empty);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reader ends a batch at once only when its last record ends an event: an EOE,
    /// or a record that is an event by itself; inside a syscall event it waits for the rest.
    #[test]
    fn batch_knows_whether_it_ends_at_an_event_boundary() {
        let mut b = Batch::new();
        assert!(!b.ends_an_event(), "an empty batch ends nothing");
        b.push(1300, b"audit(1700000000.123:5): arch=c000003e syscall=257");
        assert!(!b.ends_an_event());
        b.push(1327, b"audit(1700000000.123:5): proctitle=746F756368");
        assert!(!b.ends_an_event(), "the EOE follows a PROCTITLE");
        b.push(1320, b"audit(1700000000.123:5): ");
        assert!(b.ends_an_event());
        b.push(1305, b"audit(1700000000.200:6): op=set audit_enabled=1");
        assert!(
            !b.ends_an_event(),
            "1305 (CONFIG_CHANGE) is in the multi-record range"
        );
        b.push(1106, b"audit(1700000000.300:7): pid=1 uid=0 msg='op=login'");
        assert!(
            b.ends_an_event(),
            "a user-space record (below 1300) is an event by itself"
        );
        b.push(2500, b"audit(1700000000.400:8): x");
        assert!(b.ends_an_event());
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
}

//! daemon::receiver: the thread that reads the multicast socket, and the batches it hands
//! to the worker.
//!
//! `[receiver] MulticastReader ──try_send──► Batch (bounded) ──► worker`
//!
//! As thin as possible, so the socket buffer never fills behind it: it never parses, it
//! copies record bytes into pooled batches and counts what it could not hand over.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use wwatchd_core::record::Record;

use super::stats::Stats;
use crate::netlink::{MmsgBufs, MulticastReader, NetlinkError, Readiness, RecvOutcome};

/// Most records in one batch from the receiver to the correlator.
const BATCH_RECORDS: usize = 256;
/// A batch is closed once its text reaches this many bytes.
const BATCH_BYTES: usize = 64 << 10;
/// Batches waiting between the receiver and the correlator: at most
/// `BATCH_QUEUE * BATCH_RECORDS` = 65,536 records. The kernel's socket buffer (16 MiB asked,
/// 32 MiB granted) is the larger buffer in front of it.
pub(super) const BATCH_QUEUE: usize = 256;
/// Empty batches kept for reuse, so the hot path does not allocate.
pub(super) const BATCH_POOL: usize = 32;
/// Under load, after handing over a batch that was not full, the receiver lets records gather
/// this long before it reads again: that turns one wake-up (of three threads) per event into
/// one per several events, for at most this much added latency. The kernel's socket buffer
/// holds what arrives meanwhile (at the kernel's highest rate, about 50,000 records a second,
/// a few hundred records: a batch or two, far below the buffer's size).
const COALESCE: Duration = Duration::from_millis(4);
/// "Under load": the previous handover was less than this long ago (more than 200 handovers a
/// second). At lighter load each event is handed over as soon as it is complete, with no
/// coalescing sleep.
const BUSY: Duration = Duration::from_millis(5);
/// Longest the receiver waits for the next record of an event whose first records it has read
/// (the kernel sends an event's records back to back): it wakes when that record arrives, and
/// a fixed sleep instead would add its length to every such event under a loaded scheduler.
const EVENT_REST: Duration = Duration::from_millis(1);
/// Records as they cross from the receiver to the correlator: what one wake-up of the
/// receiver found queued, in one buffer. Batches are recycled through a pool.
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

/// The receiver: as thin as possible, so the socket buffer never fills behind it. It blocks
/// (no timeout, no timer: a [`crate::netlink::Waker`] ends the wait at stop) until a datagram
/// arrives, then takes whatever is queued, up to a batch,
/// [`crate::netlink::MMSG_SLOTS`] datagrams per `recvmmsg`, and hands the batch over in one
/// channel operation. A batch that stops inside an event (the kernel queues an event's
/// records together, so the rest is microseconds away) waits up to [`EVENT_REST`] for the
/// next record first: the worker then mostly wakes once per event, not once per record.
/// Under load (handovers less than [`BUSY`] apart) it lets records gather for [`COALESCE`]
/// after a batch that was not full. When told to stop it reads what the socket still holds
/// ([`drain_at_stop`]) and hands that over too, so records the kernel delivered before the
/// stop are examined, not dropped with the socket.
pub(super) fn receiver(
    mut reader: MulticastReader,
    tx: Sender<Batch>,
    pool: Receiver<Batch>,
    stop: Arc<AtomicBool>,
    stats: Arc<Stats>,
) -> Result<(), NetlinkError> {
    let mut bufs = MmsgBufs::new();
    let mut batch = Batch::new();
    let mut last_handover: Option<Instant> = None;
    let mut foreign = 0;
    while !stop.load(Ordering::Relaxed) {
        let empty = fill(&mut reader, &mut bufs, &mut batch, &stats)?;
        let f = reader.stats().foreign;
        if f > foreign {
            stats
                .daemon
                .foreign
                .fetch_add(f - foreign, Ordering::Relaxed);
            foreign = f;
        }
        if batch.len() == 0 {
            // Idle: sleep until a record arrives or the stop wakes us.
            reader.wait(None)?;
            continue;
        }
        if let Some(ms) = batch.last_stamp_ms() {
            stats.last_stamp_ms.fetch_max(ms, Ordering::Relaxed);
        }
        let ended = batch.ends_an_event();
        let next = pool.try_recv().unwrap_or_else(|_| Batch::new());
        match tx.try_send(std::mem::replace(&mut batch, next)) {
            Ok(()) => {}
            Err(TrySendError::Full(mut b)) => {
                stats
                    .daemon
                    .channel_drops
                    .fetch_add(b.len() as u64, Ordering::Relaxed);
                b.clear();
                batch = b;
            }
            Err(TrySendError::Disconnected(_)) => stop.store(true, Ordering::Relaxed),
        }
        let now = Instant::now();
        let busy = last_handover.is_some_and(|t| now.duration_since(t) < BUSY);
        last_handover = Some(now);
        // Coalesce only after a whole event: a handover inside one (its end not yet sent)
        // is followed at once by the rest, and must not make a light load look busy.
        if empty && busy && ended {
            std::thread::sleep(COALESCE);
        }
    }
    drain_at_stop(&mut reader, &mut bufs, batch, &tx, &stats);
    Ok(())
}

/// Takes what the socket holds now into `batch`, up to a full batch; inside an event it waits
/// once, at most [`EVENT_REST`], for the next record. True when the socket was found empty.
fn fill(
    reader: &mut MulticastReader,
    bufs: &mut MmsgBufs,
    batch: &mut Batch,
    stats: &Stats,
) -> Result<bool, NetlinkError> {
    let mut waited = false;
    loop {
        if batch.is_full() {
            return Ok(false);
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
        // records: wait for the next one (once, bounded), so the worker wakes once for the
        // whole event rather than once for each part of it.
        if !waited && batch.len() > 0 && !batch.ends_an_event() {
            waited = true;
            if reader.wait(Some(EVENT_REST))? == Readiness::Readable {
                continue;
            }
        }
        return Ok(true);
    }
}

/// Longest the receiver keeps reading at stop. The socket holds at most its buffer's worth;
/// under a storm that never ends, this bounds the shutdown.
const DRAIN_MAX: Duration = Duration::from_millis(500);

/// At stop: reads the datagrams already queued on the socket (until it is empty, or for at
/// most [`DRAIN_MAX`]) and hands them to the correlator, waiting for room this time: the
/// correlator runs until the receiver has gone.
fn drain_at_stop(
    reader: &mut MulticastReader,
    bufs: &mut MmsgBufs,
    mut batch: Batch,
    tx: &Sender<Batch>,
    stats: &Stats,
) {
    let deadline = Instant::now() + DRAIN_MAX;
    loop {
        let room = BATCH_RECORDS.saturating_sub(batch.len());
        let out = reader.recv_many(bufs, room, &mut |rtype, text| batch.push(rtype, text));
        let done = match out {
            Ok(RecvOutcome::Timeout) | Err(_) => true,
            Ok(RecvOutcome::Enobufs) => {
                stats.daemon.enobufs.fetch_add(1, Ordering::Relaxed);
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
                stats.daemon.channel_drops.fetch_add(n, Ordering::Relaxed);
                return;
            }
        }
        if done {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The receiver hands a batch over at once only when its last record ends an event: an EOE,
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

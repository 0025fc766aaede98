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
use crate::netlink::{MulticastReader, RecvOutcome};

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
/// After handing over a batch that was not full, the receiver lets records gather this long
/// before it reads again: under load that turns one wake-up (of three threads) per record into
/// one per batch, for at most this much added latency. The kernel's socket buffer holds what
/// arrives meanwhile.
const COALESCE: Duration = Duration::from_millis(1);
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

    pub(super) fn records(&self) -> impl Iterator<Item = (u16, &[u8])> {
        let mut start = 0;
        self.items.iter().map(move |&(rtype, end)| {
            let text = &self.text[start..end];
            start = end;
            (rtype, text)
        })
    }
}

/// The receiver: as thin as possible, so the socket buffer never fills behind it. It waits
/// for one datagram, then takes whatever else is already queued (up to a batch) without
/// waiting, and hands the batch over in one channel operation. When told to stop it reads
/// what the socket still holds ([`drain_at_stop`]) and hands that over too, so records the
/// kernel delivered before the stop are examined, not dropped with the socket.
pub(super) fn receiver(
    mut reader: MulticastReader,
    tx: Sender<Batch>,
    pool: Receiver<Batch>,
    stop: Arc<AtomicBool>,
    stats: Arc<Stats>,
) -> Result<(), String> {
    let mut batch = Batch::new();
    let mut foreign = 0;
    while !stop.load(Ordering::Relaxed) {
        let mut push = |rtype: u16, text: &[u8]| batch.push(rtype, text);
        let mut out = reader.recv(Some(Duration::from_millis(200)), &mut push);
        loop {
            match out {
                Ok(RecvOutcome::Enobufs) => {
                    stats.daemon.enobufs.fetch_add(1, Ordering::Relaxed);
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
        let f = reader.stats().foreign;
        if f > foreign {
            stats
                .daemon
                .foreign
                .fetch_add(f - foreign, Ordering::Relaxed);
            foreign = f;
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
                    .daemon
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

//! Pipeline position: `… → alert → syslog` — the disk spool. Messages wait here, on disk, while
//! the collector is away, and a restart of wwatchd delivers them, in order, before new ones.
//!
//! ```text
//!  DIR/                      mode 0700 (created so), owned by the daemon's user
//!    lock                    flock: one daemon per spool
//!    cursor                  where reading resumes: two 32-byte slots, written in turn
//!    00000000000000000007.seg   oldest segment: "WWSPOOL1", then records
//!    00000000000000000008.seg   the tail, appended to
//!  record = A7 57 | kind (1 alert, 2 diagnostic) | 0 | len u32 LE | CRC-32C u32 LE | message
//! ```
//!
//! - **Append-only segments.** A record is written with one `pwrite` at the segment's end and is
//!   never changed. A segment rotates at an eighth of the cap (at most 4 MiB); segments written
//!   by an earlier run are only read, never appended to. A delivered segment is deleted.
//! - **Cap.** The files together (headers and already-delivered records of the oldest segment
//!   included) stay under `max_bytes`. To make room, the oldest whole segment is deleted and its
//!   undelivered messages are counted as dropped (`spool_dropped`); the sink reports them.
//! - **Cursor.** Each delivered message advances the cursor: one `pwrite` of a checksummed slot,
//!   alternating between two slots so a torn write leaves the other one valid. No rename, no
//!   fsync per message.
//! - **Durability.** A process crash (SIGKILL, panic, OOM kill) loses nothing that `push`
//!   accepted: every record and every cursor update is in the kernel's page cache when the call
//!   returns. A power loss or kernel crash loses what was not yet on the disk: the tail segment
//!   and the cursor are fsynced at most about a second after a change ([`Spool::sync`], driven by
//!   the sink), on every segment rotation and at shutdown; the directory is fsynced when a
//!   segment is created. So a power cut loses at most about the last second of spooled messages,
//!   and may deliver again those delivered in about the last second (the cursor went back).
//! - **At least once.** After a clean stop nothing is delivered twice. After a crash, at most the
//!   one message between "written to the socket" and "cursor advanced" is delivered again; after
//!   a power loss, see above.
//! - **Damage.** At load, every record is checked (magic, kind, length, checksum). An unreadable
//!   region — a torn tail after a crash, or a damaged block — is skipped up to the next valid
//!   record, counted (`spool_corrupt`) and named in the load report; it never stops the daemon. A
//!   file without the segment header is renamed `*.bad` and left for inspection.
//! - **Safety.** The directory is created 0700 (systemd's `StateDirectory=wwatchd`, mode 0750,
//!   holds it); one that is world-writable or owned by another user is refused, since whoever can
//!   write there can forge or delete alerts. Files are created 0600.

use std::collections::VecDeque;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use wwatchd_core::spool_format::*;

use super::queue::{Spool, SpoolLosses};

#[derive(Debug)]
pub struct SpoolError {
    pub path: PathBuf,
    pub what: String,
}

impl fmt::Display for SpoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "spool {}: {}", self.path.display(), self.what)
    }
}

impl std::error::Error for SpoolError {}

/// What [`DiskSpool::open`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpoolReport {
    pub dir: PathBuf,
    /// Messages left by an earlier run, to be delivered first.
    pub messages: u64,
    pub bytes: u64,
    pub segments: usize,
    /// One line per unreadable region: file, offset, length, what was done.
    pub corrupt: Vec<String>,
    /// Messages dropped at load because the spool was over its cap (the cap was lowered).
    pub dropped: u64,
    /// Things an operator should fix that do not stop the spool.
    pub warnings: Vec<String>,
}

/// One segment file.
#[derive(Debug)]
struct Segment {
    seq: u64,
    /// File length, header included.
    size: u64,
    /// Records not yet delivered.
    pending: u64,
    /// Unreadable regions `[start, end)` found at load, skipped by the reader.
    bad: Vec<(u64, u64)>,
}

/// A crash-safe, capped FIFO of messages in a directory. See the module documentation.
pub struct DiskSpool {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    _lock: Flock<File>,
    /// Oldest first. Reading happens in the front one, appending in the back one.
    segments: VecDeque<Segment>,
    /// Append handle on `segments.back()`; `None` until this run's first record, and after the
    /// segment it was on was dropped.
    tail: Option<File>,
    tail_dirty: bool,
    /// Read handle on `segments.front()`.
    head: Option<File>,
    /// Offset of the next record to read in `segments.front()`.
    read_off: u64,
    /// The front message, read ahead, with the offset after it.
    front: Option<(QueuedMessage, u64)>,
    cursor: File,
    cursor_gen: u64,
    cursor_dirty: bool,
    next_seq: u64,
    total_bytes: u64,
    pending: u64,
    losses: SpoolLosses,
    error: Option<String>,
}

impl fmt::Debug for DiskSpool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiskSpool")
            .field("dir", &self.dir)
            .field("max_bytes", &self.max_bytes)
            .field("segments", &self.segments.len())
            .field("pending", &self.pending)
            .field("bytes", &self.total_bytes)
            .finish_non_exhaustive()
    }
}

/// The sequence numbers of the segment files in `dir`, in order.
fn segment_seqs(dir: &Path) -> Result<Vec<u64>, SpoolError> {
    let err = |what: String| SpoolError {
        path: dir.to_owned(),
        what,
    };
    let mut seqs = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| err(format!("cannot list it: {e}")))?;
    for entry in entries {
        let entry = entry.map_err(|e| err(format!("cannot list it: {e}")))?;
        if let Some(seq) = entry.file_name().to_str().and_then(parse_segment_name) {
            seqs.push(seq);
        }
    }
    seqs.sort_unstable();
    Ok(seqs)
}

/// Loads one segment an earlier run left (`data` is its content; `cursor` is the cursor's
/// segment and offset). Returns the segment and the offset of its first pending record, or
/// `None` when nothing in it is pending: it is then removed (or, without a segment header,
/// renamed aside). Damage goes to `report` and is counted in `corrupt`.
fn load_segment(
    path: &Path,
    seq: u64,
    data: &[u8],
    cursor: (u64, u64),
    report: &mut SpoolReport,
    corrupt: &mut u64,
) -> Option<(Segment, u64)> {
    let (cursor_seq, cursor_off) = cursor;
    if data.len() as u64 <= SEG_HEADER {
        // Created just before a crash: no record can be in it.
        remove(path, &mut report.warnings);
        return None;
    }
    if !data.starts_with(SEGMENT_MAGIC) {
        let bad = path.with_extension("seg.bad");
        let done = match fs::rename(path, &bad) {
            Ok(()) => format!("renamed to {} for inspection", bad.display()),
            Err(e) => format!("could not be renamed ({e}); skipped"),
        };
        report.corrupt.push(format!(
            "{}: {} bytes without the segment header {:?}; {done}",
            path.display(),
            data.len(),
            String::from_utf8_lossy(SEGMENT_MAGIC)
        ));
        *corrupt += 1;
        return None;
    }
    let scan = scan_segment(data);
    // The cursor names the first record not yet delivered. Anything ending after it is
    // pending; a cursor inside a record (it cannot be, but disks lie) re-delivers that one.
    let from = if seq == cursor_seq { cursor_off } else { 0 };
    let pending: Vec<&(u64, u64)> = scan.records.iter().filter(|r| r.1 > from).collect();
    let start = pending.first().map_or(data.len() as u64, |r| r.0);
    if seq == cursor_seq && start < cursor_off && !pending.is_empty() {
        report.warnings.push(format!(
            "spool {}: the cursor ({cursor_off}) is not at a record boundary; resuming \
             at {start}, which may deliver one message again",
            path.display()
        ));
    }
    let bad: Vec<(u64, u64)> = scan
        .bad
        .iter()
        .copied()
        .filter(|&(_, e)| e > from)
        .collect();
    for &(s, e) in &bad {
        *corrupt += 1;
        report.corrupt.push(format!(
            "{}: {} unreadable bytes at offset {s}{}; skipped",
            path.display(),
            e - s,
            if e == data.len() as u64 {
                " (a torn write at the end, from a crash or power loss)"
            } else {
                " (damaged)"
            }
        ));
    }
    if pending.is_empty() {
        remove(path, &mut report.warnings);
        return None;
    }
    Some((
        Segment {
            seq,
            size: data.len() as u64,
            pending: pending.len() as u64,
            bad,
        },
        start,
    ))
}

impl DiskSpool {
    /// Open (creating it if missing) the spool in `cfg.dir` and load what an earlier run left.
    /// Damage is reported, not fatal; an unsafe or busy directory is an error.
    pub fn open(cfg: &SpoolConfig) -> Result<(DiskSpool, SpoolReport), SpoolError> {
        if cfg.max_bytes < MIN_MAX_BYTES {
            return Err(SpoolError {
                path: cfg.dir.clone(),
                what: format!(
                    "a cap of {} bytes is below the minimum of {MIN_MAX_BYTES}; the default is {DEFAULT_MAX_BYTES}",
                    cfg.max_bytes
                ),
            });
        }
        DiskSpool::open_with(
            &cfg.dir,
            cfg.max_bytes,
            (cfg.max_bytes / 8).min(MAX_SEGMENT_BYTES),
        )
    }

    fn open_with(
        dir: &Path,
        max_bytes: u64,
        segment_bytes: u64,
    ) -> Result<(DiskSpool, SpoolReport), SpoolError> {
        let err = |what: String| SpoolError {
            path: dir.to_owned(),
            what,
        };
        let mut report = SpoolReport {
            dir: dir.to_owned(),
            ..SpoolReport::default()
        };
        prepare_dir(dir)?;
        let lock = lock_dir(dir)?;

        let seqs = segment_seqs(dir)?;

        let cursor_path = dir.join(CURSOR_FILE);
        let (cursor_gen, cursor_seq, cursor_off) = read_cursor(&cursor_path, &mut report.warnings)
            .map_err(|e| {
                err(format!(
                    "cannot read {}: {e}; check the file or remove it (every stored message \
                     is then delivered again)",
                    cursor_path.display()
                ))
            })?;
        let cursor = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&cursor_path)
            .map_err(|e| err(format!("cannot open {}: {e}", cursor_path.display())))?;

        let mut segments = VecDeque::new();
        let mut read_off = SEG_HEADER;
        let mut corrupt = 0u64;
        let mut next_seq = cursor_seq.max(1);
        for seq in seqs {
            next_seq = next_seq.max(seq + 1);
            let path = segment_path(dir, seq);
            if seq < cursor_seq {
                // Delivered; the crash came between moving the cursor and deleting the file.
                remove(&path, &mut report.warnings);
                continue;
            }
            let data =
                fs::read(&path).map_err(|e| err(format!("cannot read {}: {e}", path.display())))?;
            let cursor = (cursor_seq, cursor_off);
            let loaded = load_segment(&path, seq, &data, cursor, &mut report, &mut corrupt);
            let Some((segment, start)) = loaded else {
                continue;
            };
            if segments.is_empty() {
                read_off = start;
            }
            segments.push_back(segment);
        }

        let mut spool = DiskSpool {
            dir: dir.to_owned(),
            max_bytes,
            segment_bytes: segment_bytes.max(SEG_HEADER + REC_HEADER as u64 + 1),
            _lock: lock,
            total_bytes: segments.iter().map(|s| s.size).sum(),
            pending: segments.iter().map(|s| s.pending).sum(),
            segments,
            tail: None,
            tail_dirty: false,
            head: None,
            read_off,
            front: None,
            cursor,
            cursor_gen,
            cursor_dirty: false,
            next_seq,
            losses: SpoolLosses {
                dropped: 0,
                corrupt,
            },
            error: None,
        };
        // A lowered cap applies to what is already there.
        while spool.total_bytes > spool.max_bytes && !spool.segments.is_empty() {
            spool.drop_oldest();
        }
        report.dropped = spool.losses.dropped;
        report.messages = spool.pending;
        report.bytes = spool.total_bytes;
        report.segments = spool.segments.len();
        // Write the cursor as loaded, so a stale slot can never win later.
        spool.write_cursor();
        spool.sync();
        if let Some(e) = spool.error.take() {
            return Err(err(e));
        }
        Ok((spool, report))
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn append(&mut self, msg: &QueuedMessage) -> io::Result<()> {
        let rec = encode_record(msg).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let need = rec.len() as u64;
        if SEG_HEADER + need > self.max_bytes {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a message of {} bytes does not fit in a spool capped at {} bytes",
                    msg.bytes.len(),
                    self.max_bytes
                ),
            ));
        }
        loop {
            let header = if self.needs_new_segment(need) {
                SEG_HEADER
            } else {
                0
            };
            if self.total_bytes + need + header <= self.max_bytes || self.segments.is_empty() {
                break;
            }
            self.drop_oldest();
        }
        if self.needs_new_segment(need) {
            self.start_segment()?;
        }
        let (Some(tail), Some(seg)) = (self.tail.as_ref(), self.segments.back_mut()) else {
            return Err(io::Error::other("no tail segment"));
        };
        if let Err(e) = tail.write_all_at(&rec, seg.size) {
            // Cut a partial record off; if even that fails, never append after the damage.
            if tail.set_len(seg.size).is_err() {
                self.tail = None;
            }
            return Err(e);
        }
        seg.size += need;
        seg.pending += 1;
        self.total_bytes += need;
        self.pending += 1;
        self.tail_dirty = true;
        Ok(())
    }

    fn needs_new_segment(&self, need: u64) -> bool {
        match (&self.tail, self.segments.back()) {
            (Some(_), Some(t)) => t.size > SEG_HEADER && t.size + need > self.segment_bytes,
            _ => true,
        }
    }

    fn start_segment(&mut self) -> io::Result<()> {
        if let Some(old) = self.tail.take()
            && std::mem::take(&mut self.tail_dirty)
            && let Err(e) = old.sync_data()
        {
            self.error = Some(format!("spool {}: fsync: {e}", self.dir.display()));
        }
        let seq = self.next_seq;
        let path = segment_path(&self.dir, seq);
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        if let Err(e) = f.write_all_at(SEGMENT_MAGIC, 0) {
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        // The name must survive a power loss as soon as a record in the file is synced.
        File::open(&self.dir)?.sync_all()?;
        self.next_seq += 1;
        if self.segments.is_empty() {
            self.head = None;
            self.read_off = SEG_HEADER;
        }
        self.segments.push_back(Segment {
            seq,
            size: SEG_HEADER,
            pending: 0,
            bad: Vec::new(),
        });
        self.total_bytes += SEG_HEADER;
        self.tail = Some(f);
        self.tail_dirty = true;
        Ok(())
    }

    /// Delete the oldest segment to make room, counting what was in it.
    fn drop_oldest(&mut self) {
        if let Some(n) = self.segments.front().map(|s| s.pending) {
            self.losses.dropped += n;
            self.remove_head();
        }
    }

    /// Delete the front segment and move reading to the next one.
    fn remove_head(&mut self) {
        let Some(seg) = self.segments.pop_front() else {
            return;
        };
        self.pending -= seg.pending;
        self.total_bytes -= seg.size;
        if self.segments.is_empty() {
            self.tail = None;
            self.tail_dirty = false;
        }
        self.head = None;
        self.front = None;
        self.read_off = SEG_HEADER;
        // Cursor first, then the file. A crash in between leaves a delivered file behind, which
        // the next load deletes because it is older than the cursor.
        self.write_cursor();
        let path = segment_path(&self.dir, seg.seq);
        if let Err(e) = fs::remove_file(&path)
            && e.kind() != io::ErrorKind::NotFound
        {
            self.error = Some(format!("spool: cannot delete {}: {e}", path.display()));
        }
    }

    fn write_cursor(&mut self) {
        let (seq, off) = match self.segments.front() {
            Some(s) => (s.seq, self.read_off),
            None => (self.next_seq, SEG_HEADER),
        };
        self.cursor_gen += 1;
        let slot = encode_slot(self.cursor_gen, seq, off);
        let at = (self.cursor_gen % 2) * SLOT as u64;
        match self.cursor.write_all_at(&slot, at) {
            Ok(()) => self.cursor_dirty = true,
            Err(e) => {
                self.error = Some(format!(
                    "spool {}: cannot write the cursor: {e}; messages may be delivered again \
                     after a restart",
                    self.dir.display()
                ))
            }
        }
    }

    /// Read the front message into `self.front`, skipping regions known to be unreadable and
    /// giving up on a segment that became unreadable since it was loaded.
    fn load_front(&mut self) {
        while self.front.is_none() {
            let Some(seg) = self.segments.front() else {
                return;
            };
            if seg.pending == 0 {
                if self.segments.len() == 1 {
                    return;
                }
                self.remove_head();
                continue;
            }
            if let Some(&(_, end)) = seg.bad.iter().find(|(s, _)| *s == self.read_off) {
                self.read_off = end;
                continue;
            }
            let path = segment_path(&self.dir, seg.seq);
            if self.head.is_none() {
                match File::open(&path) {
                    Ok(f) => self.head = Some(f),
                    Err(e) => {
                        self.lose_head(format!("cannot open {}: {e}", path.display()));
                        continue;
                    }
                }
            }
            let Some(head) = self.head.as_ref() else {
                return;
            };
            match read_record(head, self.read_off, seg.size) {
                Ok(r) => self.front = Some(r),
                Err(e) => self.lose_head(format!("{}: {e}", path.display())),
            }
        }
    }

    /// The front segment cannot be read any further (changed on disk since it was written or
    /// loaded): count it and move on.
    fn lose_head(&mut self, what: String) {
        let n = self.segments.front().map_or(0, |s| s.pending);
        self.losses.corrupt += 1;
        self.error = Some(format!(
            "spool: {what}; the {n} message(s) left in it are lost"
        ));
        self.remove_head();
    }

    /// Simulate a crash in tests: the process dies after its last write; nothing is fsynced.
    #[cfg(test)]
    fn crash(mut self) {
        self.tail_dirty = false;
        self.cursor_dirty = false;
    }
}

impl Spool for DiskSpool {
    fn push(&mut self, msg: QueuedMessage) -> Result<(), QueuedMessage> {
        match self.append(&msg) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.error = Some(format!(
                    "spool {}: cannot store a message: {e}",
                    self.dir.display()
                ));
                Err(msg)
            }
        }
    }

    fn front(&mut self) -> Option<&QueuedMessage> {
        if self.front.is_none() {
            self.load_front();
        }
        self.front.as_ref().map(|(m, _)| m)
    }

    fn pop_front(&mut self) {
        if self.front.is_none() {
            self.load_front();
        }
        let Some((_, next)) = self.front.take() else {
            return;
        };
        let Some(seg) = self.segments.front_mut() else {
            return;
        };
        seg.pending -= 1;
        self.pending -= 1;
        self.read_off = next;
        if seg.pending == 0 {
            // Delivered entirely (if it is the tail, the spool is empty: start afresh).
            self.remove_head();
        } else {
            self.write_cursor();
        }
    }

    fn len(&self) -> u64 {
        self.pending
    }

    fn bytes(&self) -> u64 {
        self.total_bytes
    }

    fn take_losses(&mut self) -> SpoolLosses {
        std::mem::take(&mut self.losses)
    }

    fn take_error(&mut self) -> Option<String> {
        self.error.take()
    }

    fn needs_sync(&self) -> bool {
        self.tail_dirty || self.cursor_dirty
    }

    /// The tail before the cursor: a synced cursor then never points past synced records.
    fn sync(&mut self) {
        if std::mem::take(&mut self.tail_dirty)
            && let Some(t) = &self.tail
            && let Err(e) = t.sync_data()
        {
            self.error = Some(format!("spool {}: fsync: {e}", self.dir.display()));
        }
        if std::mem::take(&mut self.cursor_dirty)
            && let Err(e) = self.cursor.sync_data()
        {
            self.error = Some(format!(
                "spool {}: fsync of the cursor: {e}",
                self.dir.display()
            ));
        }
    }
}

impl Drop for DiskSpool {
    fn drop(&mut self) {
        self.sync();
    }
}

impl SpoolReport {
    /// One line for the daemon's diagnostics.
    pub fn summary(&self) -> String {
        let mut s = if self.messages > 0 {
            format!(
                "spool {}: {} message(s) ({} bytes in {} segment(s)) left by an earlier run \
                 will be delivered first",
                self.dir.display(),
                self.messages,
                self.bytes,
                self.segments
            )
        } else {
            format!("spool {}: empty", self.dir.display())
        };
        if self.dropped > 0 {
            s.push_str(&format!(
                "; {} older message(s) dropped to fit the cap",
                self.dropped
            ));
        }
        if !self.corrupt.is_empty() {
            s.push_str(&format!(
                "; {} unreadable region(s) skipped",
                self.corrupt.len()
            ));
        }
        s
    }
}

/// Create `dir` (0700) if missing; refuse one that others could write to.
fn prepare_dir(dir: &Path) -> Result<(), SpoolError> {
    crate::trust::private_dir(
        dir,
        "spool directory",
        "choose another --spool-dir (or --spool-dir none)",
    )
    .map(drop)
    .map_err(|e| SpoolError {
        path: e.path,
        what: e.why,
    })
}

fn lock_dir(dir: &Path) -> Result<Flock<File>, SpoolError> {
    let path = dir.join(LOCK_FILE);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| SpoolError {
            path: path.clone(),
            what: format!("cannot open the lock file: {e}"),
        })?;
    Flock::lock(f, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| SpoolError {
        path: dir.to_owned(),
        what: if e == nix::errno::Errno::EWOULDBLOCK {
            format!(
                "is in use by another wwatchd ({} is locked); give each daemon its own --spool-dir",
                path.display()
            )
        } else {
            format!("cannot lock {}: {e}", path.display())
        },
    })
}

fn remove(path: &Path, warnings: &mut Vec<String>) {
    if let Err(e) = fs::remove_file(path)
        && e.kind() != io::ErrorKind::NotFound
    {
        warnings.push(format!("spool: cannot delete {}: {e}", path.display()));
    }
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(segment_name(seq))
}

/// Read and check the record at `off` of a segment of `size` bytes.
fn read_record(f: &File, off: u64, size: u64) -> Result<(QueuedMessage, u64), String> {
    let mut h = [0u8; REC_HEADER];
    if off + REC_HEADER as u64 > size {
        return Err(format!("record at offset {off} runs past the end ({size})"));
    }
    f.read_exact_at(&mut h, off)
        .map_err(|e| format!("read at offset {off}: {e}"))?;
    let (kind, len, crc) =
        parse_header(&h).ok_or_else(|| format!("no valid record header at offset {off}"))?;
    let next = off + (REC_HEADER + len) as u64;
    if next > size {
        return Err(format!("record at offset {off} runs past the end ({size})"));
    }
    let mut bytes = vec![0u8; len];
    f.read_exact_at(&mut bytes, off + REC_HEADER as u64)
        .map_err(|e| format!("read at offset {off}: {e}"))?;
    if crc32c(crc32c_update(!0, &h[..8]), &bytes) != crc {
        return Err(format!("checksum mismatch in the record at offset {off}"));
    }
    Ok((QueuedMessage { kind, bytes }, next))
}

/// The newest valid cursor slot as (generation, segment, offset); (0, 0, header) when there is
/// none, which means "from the oldest segment's start".
fn read_cursor(path: &Path, warnings: &mut Vec<String>) -> io::Result<(u64, u64, u64)> {
    let data = match fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    let best = data
        .chunks_exact(SLOT)
        .take(2)
        .filter_map(decode_slot)
        .max_by_key(|c| c.0);
    match best {
        Some(c) => Ok(c),
        None => {
            if !data.is_empty() {
                warnings.push(format!(
                    "spool: the cursor {} is unreadable; every stored message will be \
                     delivered again (at least once)",
                    path.display()
                ));
            }
            Ok((0, 0, SEG_HEADER))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use wwatchd_core::syslog::MessageKind;

    fn msg(i: usize) -> QueuedMessage {
        QueuedMessage {
            kind: if i % 7 == 3 {
                MessageKind::Diagnostic
            } else {
                MessageKind::Alert
            },
            // Varying sizes, so records straddle segment limits differently.
            bytes: format!("<36>1 message {i} {}", "x".repeat(i % 50)).into_bytes(),
        }
    }

    fn open(dir: &Path, max: u64, seg: u64) -> (DiskSpool, SpoolReport) {
        DiskSpool::open_with(dir, max, seg).expect("open spool")
    }

    fn drain(s: &mut DiskSpool) -> Vec<QueuedMessage> {
        let mut out = Vec::new();
        while let Some(m) = s.front().cloned() {
            out.push(m);
            s.pop_front();
        }
        out
    }

    fn seg_files(dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(dir)
            .expect("list")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "seg"))
            .collect();
        v.sort();
        v
    }

    /// The sink's idle timer asks `needs_sync`: true after a push or a pop, false after a sync.
    #[test]
    fn spool_needs_sync_after_a_change_until_synced() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("spool");
        let (mut s, _) = open(&dir, 1 << 20, 1 << 16);
        assert!(!s.needs_sync(), "just opened");
        s.push(msg(1)).expect("push");
        assert!(s.needs_sync(), "after a push");
        s.sync();
        assert!(!s.needs_sync(), "after the sync");
        assert_eq!(s.front().cloned(), Some(msg(1)));
        s.pop_front();
        assert!(s.needs_sync(), "after a pop");
        s.sync();
        assert!(!s.needs_sync(), "after the second sync");
    }

    #[test]
    fn spool_crc32c_check_value() {
        assert_eq!(crc32c(!0, b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(crc32c_update(!0, b"1234"), b"56789"), 0xE306_9283);
    }

    #[test]
    fn spool_fifo_across_segments_and_reopen_continues_exactly() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("spool");
        let (mut s, r) = open(&dir, 1 << 20, 300);
        assert_eq!(r.messages, 0);
        for i in 0..100 {
            s.push(msg(i)).expect("push");
        }
        assert_eq!(s.len(), 100);
        assert!(seg_files(&dir).len() > 10, "{:?}", seg_files(&dir));
        let on_disk: u64 = seg_files(&dir)
            .iter()
            .map(|p| fs::metadata(p).expect("md").len())
            .sum();
        assert_eq!(s.bytes(), on_disk);
        for i in 0..37 {
            assert_eq!(s.front(), Some(&msg(i)));
            s.pop_front();
        }
        drop(s);
        let (mut s, r) = open(&dir, 1 << 20, 300);
        assert_eq!(r.messages, 63);
        assert!(r.corrupt.is_empty() && r.warnings.is_empty(), "{r:?}");
        // New messages go after the old ones.
        s.push(msg(100)).expect("push");
        let got = drain(&mut s);
        assert_eq!(got, (37..101).map(msg).collect::<Vec<_>>());
        assert_eq!((s.len(), s.bytes()), (0, 0));
        assert!(seg_files(&dir).is_empty(), "delivered segments are deleted");
        assert_eq!(s.take_losses(), SpoolLosses::default());
        drop(s);
        let (mut s, r) = open(&dir, 1 << 20, 300);
        assert_eq!(r.messages, 0);
        assert_eq!(s.front(), None);
    }

    #[test]
    fn spool_crash_without_sync_neither_loses_nor_repeats() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("spool");
        let (mut s, _) = open(&dir, 1 << 20, 400);
        for i in 0..50 {
            s.push(msg(i)).expect("push");
        }
        for _ in 0..20 {
            s.pop_front();
        }
        s.crash();
        let (mut s, r) = open(&dir, 1 << 20, 400);
        assert_eq!(r.messages, 30);
        assert_eq!(drain(&mut s), (20..50).map(msg).collect::<Vec<_>>());
    }

    #[test]
    fn spool_over_cap_drops_oldest_segments_and_counts_them() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("spool");
        let max = 2000;
        let (mut s, _) = open(&dir, max, 500);
        for i in 0..200 {
            s.push(msg(i)).expect("push");
            assert!(s.bytes() <= max, "{} > {max}", s.bytes());
        }
        let dropped = s.take_losses().dropped;
        assert!(dropped > 0);
        assert_eq!(dropped + s.len(), 200, "every message is stored or counted");
        assert_eq!(s.take_losses().dropped, 0, "counted once");
        // What is left is the newest, contiguous, in order; reading resumes after a restart.
        let first = dropped as usize;
        for i in first..first + 3 {
            assert_eq!(s.front(), Some(&msg(i)));
            s.pop_front();
        }
        drop(s);
        let (mut s, r) = open(&dir, max, 500);
        assert_eq!(r.dropped, 0);
        assert_eq!(drain(&mut s), (first + 3..200).map(msg).collect::<Vec<_>>());
    }

    #[test]
    fn spool_drop_of_the_segment_being_read() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("spool");
        let (mut s, _) = open(&dir, 1500, 500);
        s.push(msg(0)).expect("push");
        assert_eq!(s.front(), Some(&msg(0)));
        for i in 1..100 {
            s.push(msg(i)).expect("push");
        }
        let dropped = s.take_losses().dropped as usize;
        assert_eq!(
            s.front(),
            Some(&msg(dropped)),
            "the read-ahead went with it"
        );
        assert_eq!(drain(&mut s), (dropped..100).map(msg).collect::<Vec<_>>());
    }

    #[test]
    fn spool_lowered_cap_drops_oldest_at_load() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("spool");
        let (mut s, _) = open(&dir, 1 << 20, 500);
        for i in 0..100 {
            s.push(msg(i)).expect("push");
        }
        drop(s);
        let (mut s, r) = open(&dir, 2000, 500);
        assert!(r.dropped > 0 && r.bytes <= 2000, "{r:?}");
        assert_eq!(s.take_losses().dropped, r.dropped);
        let first = r.dropped as usize;
        assert_eq!(drain(&mut s), (first..100).map(msg).collect::<Vec<_>>());
    }

    #[test]
    fn spool_message_larger_than_the_cap_is_refused() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("spool");
        let (mut s, _) = open(&dir, 1000, 500);
        let big = QueuedMessage {
            kind: MessageKind::Alert,
            bytes: vec![b'a'; 1000],
        };
        assert_eq!(s.push(big.clone()), Err(big));
        assert!(s.take_error().expect("error").contains("does not fit"));
        // A message larger than a segment but within the cap gets a segment of its own.
        let large = QueuedMessage {
            kind: MessageKind::Alert,
            bytes: vec![b'b'; 700],
        };
        s.push(msg(1)).expect("push");
        s.push(large.clone()).expect("push large");
        s.push(msg(2)).expect("push");
        assert_eq!(drain(&mut s), vec![msg(1), large, msg(2)]);
    }

    #[test]
    fn spool_torn_tail_is_counted_reported_and_skipped() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("spool");
        let (mut s, _) = open(&dir, 1 << 20, 1 << 16);
        for i in 0..5 {
            s.push(msg(i)).expect("push");
        }
        drop(s);
        let seg = seg_files(&dir).pop().expect("segment");
        // Half a record: what a crash in the middle of a write leaves.
        let rec = encode_record(&msg(5)).expect("encode");
        let mut data = fs::read(&seg).expect("read");
        let whole = data.len();
        data.extend_from_slice(&rec[..rec.len() / 2]);
        fs::write(&seg, &data).expect("write");
        let (mut s, r) = open(&dir, 1 << 20, 1 << 16);
        assert_eq!(r.messages, 5);
        assert_eq!(r.corrupt.len(), 1, "{r:?}");
        assert!(
            r.corrupt[0].contains(&format!("at offset {whole}")) && r.corrupt[0].contains("torn"),
            "{}",
            r.corrupt[0]
        );
        assert_eq!(s.take_losses().corrupt, 1);
        s.push(msg(6)).expect("push");
        let want: Vec<_> = (0..5).chain([6]).map(msg).collect();
        assert_eq!(drain(&mut s), want);
        assert_eq!(s.take_losses(), SpoolLosses::default(), "counted once");
    }

    #[test]
    fn spool_damage_inside_a_segment_skips_only_the_damaged_record() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("spool");
        let (mut s, _) = open(&dir, 1 << 20, 1 << 16);
        for i in 0..5 {
            s.push(msg(i)).expect("push");
        }
        s.pop_front(); // message 0 delivered
        drop(s);
        let seg = seg_files(&dir).pop().expect("segment");
        let mut data = fs::read(&seg).expect("read");
        let scan = scan_segment(&data);
        let (start, end) = scan.records[2];
        data[(start + end) as usize / 2] ^= 0x40; // a flipped bit in message 2
        fs::write(&seg, &data).expect("write");
        let (mut s, r) = open(&dir, 1 << 20, 1 << 16);
        assert_eq!(r.corrupt.len(), 1, "{r:?}");
        assert!(r.corrupt[0].contains("damaged"), "{}", r.corrupt[0]);
        assert_eq!(r.messages, 3);
        assert_eq!(drain(&mut s), vec![msg(1), msg(3), msg(4)]);
    }

    #[test]
    fn spool_file_without_header_is_set_aside() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("spool");
        let (mut s, _) = open(&dir, 1 << 20, 1 << 16);
        s.push(msg(0)).expect("push");
        drop(s);
        let seg = seg_files(&dir).pop().expect("segment");
        let mut data = fs::read(&seg).expect("read");
        data[..8].copy_from_slice(b"garbage!");
        fs::write(&seg, &data).expect("write");
        let (mut s, r) = open(&dir, 1 << 20, 1 << 16);
        assert_eq!((r.messages, r.corrupt.len()), (0, 1), "{r:?}");
        assert!(seg.with_extension("seg.bad").exists());
        assert_eq!(s.front(), None);
        assert_eq!(s.take_losses().corrupt, 1);
    }

    #[test]
    fn spool_unreadable_cursor_delivers_everything_again() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("spool");
        let (mut s, _) = open(&dir, 1 << 20, 1 << 16);
        for i in 0..4 {
            s.push(msg(i)).expect("push");
        }
        s.pop_front();
        drop(s);
        fs::write(dir.join(CURSOR_FILE), [0xffu8; 64]).expect("write");
        let (mut s, r) = open(&dir, 1 << 20, 1 << 16);
        assert!(
            r.warnings.iter().any(|w| w.contains("at least once")),
            "{r:?}"
        );
        assert_eq!(drain(&mut s), (0..4).map(msg).collect::<Vec<_>>());
    }

    #[test]
    fn spool_cursor_inside_a_record_redelivers_that_record() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("spool");
        let (mut s, _) = open(&dir, 1 << 20, 1 << 16);
        for i in 0..4 {
            s.push(msg(i)).expect("push");
        }
        let seq = s.segments[0].seq;
        drop(s);
        let data = fs::read(segment_path(&dir, seq)).expect("read");
        let (start, _) = scan_segment(&data).records[2];
        let mut c = encode_slot(1000, seq, start + 3).to_vec();
        c.extend_from_slice(&[0; SLOT]);
        fs::write(dir.join(CURSOR_FILE), c).expect("write");
        let (mut s, r) = open(&dir, 1 << 20, 1 << 16);
        assert!(
            r.warnings.iter().any(|w| w.contains("record boundary")),
            "{r:?}"
        );
        assert_eq!(drain(&mut s), vec![msg(2), msg(3)]);
    }

    #[test]
    fn spool_directory_mode_owner_and_lock() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("a/b/spool");
        let (mut s, _) = open(&dir, 1 << 20, 1 << 16);
        s.push(msg(0)).expect("push");
        let mode = |p: &Path| fs::metadata(p).expect("md").permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        for p in seg_files(&dir)
            .into_iter()
            .chain([dir.join(CURSOR_FILE), dir.join(LOCK_FILE)])
        {
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
        let busy = DiskSpool::open_with(&dir, 1 << 20, 1 << 16).expect_err("locked");
        assert!(
            busy.to_string().contains("in use by another wwatchd"),
            "{busy}"
        );
        drop(s);

        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).expect("chmod");
        let e = DiskSpool::open_with(&dir, 1 << 20, 1 << 16).expect_err("world-writable");
        assert!(
            e.to_string()
                .contains("world-writable spool directory (mode 0777)"),
            "{e}"
        );
        // Group-writable is refused too (it was a warning): the group could forge alerts.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o770)).expect("chmod");
        let e = DiskSpool::open_with(&dir, 1 << 20, 1 << 16).expect_err("group-writable");
        assert!(e.to_string().contains("chmod go-w"), "{e}");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).expect("chmod");
        let (s, r) = open(&dir, 1 << 20, 1 << 16);
        assert!(r.warnings.is_empty(), "{r:?}");
        assert_eq!(r.messages, 1);
        drop(s);
        // A symlink to a good spool directory is not followed.
        let link = tmp.path().join("spool-link");
        std::os::unix::fs::symlink(&dir, &link).expect("symlink");
        let e = DiskSpool::open_with(&link, 1 << 20, 1 << 16).expect_err("symlink");
        assert!(e.to_string().contains("is a symlink"), "{e}");

        let rel = DiskSpool::open_with(Path::new("spool"), 1 << 20, 1 << 16).expect_err("rel");
        assert!(rel.to_string().contains("absolute"), "{rel}");
        let file = tmp.path().join("file");
        fs::write(&file, "x").expect("write");
        let nd = DiskSpool::open_with(&file, 1 << 20, 1 << 16).expect_err("not a dir");
        assert!(nd.to_string().contains("not a directory"), "{nd}");
        let small = DiskSpool::open(&SpoolConfig {
            dir: dir.clone(),
            max_bytes: 1000,
        })
        .expect_err("small cap");
        assert!(small.to_string().contains("below the minimum"), "{small}");

        if nix::unistd::geteuid().is_root() {
            nix::unistd::chown(&dir, Some(nix::unistd::Uid::from_raw(65534)), None).expect("chown");
            let e = DiskSpool::open_with(&dir, 1 << 20, 1 << 16).expect_err("foreign owner");
            assert!(e.to_string().contains("owned by uid 65534"), "{e}");
        }
    }

    #[test]
    fn spool_scan_resyncs_only_on_whole_valid_records() {
        let mut data = SEGMENT_MAGIC.to_vec();
        let a = encode_record(&msg(1)).expect("a");
        let b = encode_record(&msg(2)).expect("b");
        data.extend_from_slice(&a);
        // Garbage holding a record's magic but nothing valid after it.
        data.extend_from_slice(&[0xA7, 0x57, 1, 0, 5, 0, 0, 0, 1, 2, 3, 4, 0, 0]);
        data.extend_from_slice(&b);
        let s = scan_segment(&data);
        let a_end = 8 + a.len() as u64;
        assert_eq!(s.bad, vec![(a_end, a_end + 14)]);
        assert_eq!(s.records.len(), 2);
        assert_eq!(s.records[1].1, data.len() as u64);
    }
}

//! The scan's reader thread: `file → line → record` ahead of the detector.
//!
//! Reads the inputs in order, splits them into lines of at most [`MAX_LINE`] bytes (a longer
//! line is skipped to its end and reported), parses each line's record head (type, stamp,
//! `node=`, body, ENRICHED part) and hands the lines to the detector thread in batches, in
//! input order. So reading, splitting and parsing the head run on a CPU of their own while
//! the detector correlates, evaluates and renders (docs/benchmarks.md, "Scan throughput").
//!
//! A batch owns its bytes, and its records are kept as offsets into them (a [`Record`]
//! borrows, so it cannot cross threads); [`Batch::record`] gives each one back without parsing
//! again. Spent batches come back to the reader to be filled again, so the steady state
//! allocates nothing. The stream ends with [`Msg::End`]: a channel that closes without it
//! means the reader stopped early, which the consumer reports instead of taking it for the
//! end of the input.

#![forbid(unsafe_code)]

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread;

use wwatchd_core::record::{MAX_LINE, Record, RecordError, Stamp};

use super::ScanError;

/// A batch is handed over once it holds this many bytes or this many lines.
const BATCH_BYTES: usize = 256 * 1024;
const BATCH_LINES: usize = 4096;
/// Batches in flight between the threads: the reader may run this far ahead.
const IN_FLIGHT: usize = 4;

/// What the reader sends, in input order.
pub(super) enum Msg {
    Lines(Batch),
    /// Reading stopped here (the error names the input); nothing follows.
    Failed(ScanError),
    /// Every input was read to its end.
    End,
}

/// Consecutive lines of one input.
pub(super) struct Batch {
    /// The input's index in the list given to [`spawn`].
    pub file: usize,
    /// The line number (from 1) of `lines[0]` in its input.
    pub first_line: u64,
    data: Vec<u8>,
    pub lines: Vec<Line>,
}

/// One line of a [`Batch`].
pub(super) struct Line {
    /// The line's length in the input, without the newline.
    pub len: usize,
    head: Result<Head, RecordError>,
}

impl Line {
    /// An empty line (a blank line is not a bad record).
    pub fn is_blank(&self) -> bool {
        self.len == 0
    }
}

/// A parsed record, as offsets into its batch.
struct Head {
    rtype: u16,
    stamp: Stamp,
    node: Option<Range<usize>>,
    body: Range<usize>,
    enriched: Range<usize>,
}

impl Batch {
    fn new(file: usize, first_line: u64) -> Batch {
        Batch {
            file,
            first_line,
            data: Vec::with_capacity(BATCH_BYTES + 64 * 1024),
            lines: Vec::with_capacity(BATCH_LINES),
        }
    }

    /// The record of `line` (a line of this batch), or why the line is not one.
    pub fn record<'a>(&'a self, line: &'a Line) -> Result<Record<'a>, &'a RecordError> {
        let h = line.head.as_ref()?;
        Ok(Record {
            rtype: h.rtype,
            stamp: h.stamp,
            node: h.node.clone().map(|r| &self.data[r]),
            body: &self.data[h.body.clone()],
            enriched: &self.data[h.enriched.clone()],
        })
    }

    /// Reads one line of `r` onto the end of the batch: `Ok(false)` at the end of the input.
    fn read_line(&mut self, r: &mut impl BufRead) -> io::Result<bool> {
        let start = self.data.len();
        let (len, head) = match read_line_capped(r, &mut self.data)? {
            Ok(false) => return Ok(false),
            Ok(true) => {
                let line = &self.data[start..];
                let head = Record::from_log_line(line).map(|rec| Head {
                    rtype: rec.rtype,
                    stamp: rec.stamp,
                    node: rec.node.map(|n| within(line, n, start)),
                    body: within(line, rec.body, start),
                    enriched: within(line, rec.enriched, start),
                });
                (line.len(), head)
            }
            Err(len) => (len, Err(RecordError::TooLong(len))),
        };
        self.lines.push(Line { len, head });
        Ok(true)
    }

    fn full(&self) -> bool {
        self.data.len() >= BATCH_BYTES || self.lines.len() >= BATCH_LINES
    }

    /// Emptied, for lines of `file` from `first_line` on.
    fn reuse(mut self, file: usize, first_line: u64) -> Batch {
        self.file = file;
        self.first_line = first_line;
        self.data.clear();
        self.lines.clear();
        self
    }
}

/// Where `part`, a piece of `line`, lies in the batch whose bytes hold `line` from `start`.
fn within(line: &[u8], part: &[u8], start: usize) -> Range<usize> {
    if part.is_empty() {
        return start..start;
    }
    // `part` borrows from `line` (Record::from_log_line only slices its input).
    let at = part.as_ptr().addr().wrapping_sub(line.as_ptr().addr());
    debug_assert!(at + part.len() <= line.len());
    start + at..start + at + part.len()
}

/// The reader thread over `inputs`, and the way to hand its spent batches back.
pub(super) fn spawn(inputs: Vec<PathBuf>) -> io::Result<(Receiver<Msg>, Sender<Batch>)> {
    let (tx, rx) = mpsc::sync_channel(IN_FLIGHT);
    let (back_tx, back_rx) = mpsc::channel();
    thread::Builder::new()
        .name("wwatchd-reader".into())
        .spawn(move || read_all(&inputs, &tx, &back_rx))?;
    // Not joined: when the consumer stops early (its output failed), the reader may be
    // waiting on a pipe that never ends; it ends at its next send, or with the process.
    Ok((rx, back_tx))
}

fn read_all(inputs: &[PathBuf], tx: &SyncSender<Msg>, back: &Receiver<Batch>) {
    for (fi, path) in inputs.iter().enumerate() {
        let reader: Box<dyn Read> = if path.as_os_str() == "-" {
            Box::new(io::stdin().lock())
        } else {
            match File::open(path) {
                Ok(f) => Box::new(f),
                Err(err) => {
                    let _ = tx.send(Msg::Failed(ScanError::Open {
                        path: path.clone(),
                        err,
                    }));
                    return;
                }
            }
        };
        let mut r = BufReader::with_capacity(256 * 1024, reader);
        let fresh = |first_line| match back.try_recv() {
            Ok(b) => b.reuse(fi, first_line),
            Err(_) => Batch::new(fi, first_line),
        };
        let mut batch = fresh(1);
        loop {
            let more = match batch.read_line(&mut r) {
                Ok(more) => more,
                Err(err) => {
                    let _ = tx.send(Msg::Lines(batch));
                    let _ = tx.send(Msg::Failed(ScanError::Read {
                        path: path.clone(),
                        err,
                    }));
                    return;
                }
            };
            if !more || batch.full() {
                let next = batch.first_line + batch.lines.len() as u64;
                if !batch.lines.is_empty() && tx.send(Msg::Lines(batch)).is_err() {
                    return; // the consumer stopped
                }
                if !more {
                    break;
                }
                batch = fresh(next);
            }
        }
    }
    let _ = tx.send(Msg::End);
}

/// Read one line of at most `MAX_LINE` bytes onto the end of `buf` (without the newline). A
/// longer line is consumed to its end, leaves `buf` as it was and is reported as `Err(len)`.
/// `Ok(false)` at end of input.
fn read_line_capped(r: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<Result<bool, usize>> {
    let base = buf.len();
    let mut total = 0usize;
    let mut over = false;
    loop {
        let avail = match r.fill_buf() {
            Ok(a) => a,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                buf.truncate(base);
                return Err(e);
            }
        };
        if avail.is_empty() {
            return Ok(if over { Err(total) } else { Ok(total > 0) });
        }
        let (chunk, done) = match memchr::memchr(b'\n', avail) {
            Some(i) => (&avail[..i], Some(i + 1)),
            None => (avail, None),
        };
        total += chunk.len();
        if !over {
            if buf.len() - base + chunk.len() > MAX_LINE {
                over = true;
                buf.truncate(base);
            } else {
                buf.extend_from_slice(chunk);
            }
        }
        let used = done.unwrap_or(avail.len());
        r.consume(used);
        if done.is_some() {
            return Ok(if over { Err(total) } else { Ok(true) });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_reader_splits_and_skips_long_lines() {
        let mut data = b"a\n\nbc\n".to_vec();
        data.extend(std::iter::repeat_n(b'x', MAX_LINE + 5));
        data.extend_from_slice(b"\nlast");
        let mut r = BufReader::with_capacity(64, &data[..]);
        let mut buf = b"kept".to_vec();
        let mut got = Vec::new();
        loop {
            buf.truncate(4);
            match read_line_capped(&mut r, &mut buf).unwrap() {
                Ok(false) => break,
                Ok(true) => got.push(String::from_utf8(buf[4..].to_vec()).unwrap()),
                Err(n) => got.push(format!("long {n} {}", buf.len())),
            }
        }
        assert_eq!(
            got,
            vec![
                "a".to_string(),
                "".into(),
                "bc".into(),
                format!("long {} 4", MAX_LINE + 5),
                "last".into()
            ]
        );
        assert_eq!(buf, b"kept");
    }

    /// The records a batch gives back are the ones parsing each line gives, and the bad
    /// lines keep their errors and their places.
    #[test]
    fn a_batch_gives_back_each_lines_record() {
        let lines: [&[u8]; 5] = [
            b"type=CWD msg=audit(1700000000.123:42): cwd=\"/tmp\"",
            b"",
            b"node=web1 type=PATH msg=audit(1700000000.123:42): item=0 name=\"x\"\x1dUID=\"alice\"",
            b"type=NOSUCH msg=audit(1.2:3): a=b",
            b"type=EOE msg=audit(1700000000.123:42): ",
        ];
        let input = lines.join(&b'\n');
        let mut r = BufReader::with_capacity(16, &input[..]);
        let mut b = Batch::new(3, 7);
        while b.read_line(&mut r).unwrap() {}
        assert_eq!(b.lines.len(), lines.len());
        for (line, text) in b.lines.iter().zip(lines) {
            assert_eq!(line.len, text.len());
            match (b.record(line), Record::from_log_line(text)) {
                (Ok(got), Ok(want)) => {
                    assert_eq!(got.rtype, want.rtype);
                    assert_eq!(got.stamp.millis(), want.stamp.millis());
                    assert_eq!(got.node, want.node);
                    assert_eq!(got.body, want.body);
                    assert_eq!(got.enriched, want.enriched);
                }
                (Err(got), Err(want)) => assert_eq!(*got, want),
                (got, want) => panic!("{got:?} against {want:?}"),
            }
        }
        assert!(b.lines[1].is_blank());
        assert_eq!(b.record(&b.lines[2]).unwrap().node, Some(&b"web1"[..]));
        assert_eq!(b.record(&b.lines[2]).unwrap().enriched, b"UID=\"alice\"");
    }

    /// Every line of every input arrives once, in order, numbered from 1 in its input, and
    /// the stream ends with `End`; an input that cannot be opened stops it after the lines
    /// before it.
    #[test]
    fn the_reader_sends_every_line_in_order_then_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.log");
        let body: String = (1..=BATCH_LINES as u64 * 2 + 3)
            .map(|i| format!("type=EOE msg=audit(1700000000.000:{i}): \n"))
            .collect();
        std::fs::write(&a, &body).unwrap();
        let missing = dir.path().join("missing.log");
        for (inputs, ends) in [
            (vec![a.clone(), a.clone()], "end"),
            (vec![a.clone(), missing.clone(), a.clone()], "open"),
        ] {
            let (rx, back) = spawn(inputs).unwrap();
            let mut seen: Vec<(usize, u64, u64)> = Vec::new();
            let end = loop {
                match rx.recv().expect("the stream ends with a message") {
                    Msg::Lines(b) => {
                        for (i, l) in b.lines.iter().enumerate() {
                            let rec = b.record(l).unwrap();
                            seen.push((b.file, b.first_line + i as u64, rec.stamp.serial));
                        }
                        let _ = back.send(b);
                    }
                    Msg::Failed(ScanError::Open { path, .. }) if path == missing => break "open",
                    Msg::Failed(e) => panic!("{e}"),
                    Msg::End => break "end",
                }
            };
            assert_eq!(end, ends);
            let n = BATCH_LINES as u64 * 2 + 3;
            let files = if ends == "end" { 2 } else { 1 };
            let want: Vec<(usize, u64, u64)> = (0..files)
                .flat_map(|f| (1..=n).map(move |i| (f, i, i)))
                .collect();
            assert_eq!(seen, want);
            assert!(rx.recv().is_err(), "nothing after the last message");
        }
    }
}

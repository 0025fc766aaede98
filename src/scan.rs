//! scan: the whole detection over audit.log files, offline.
//!
//! `file → record → event → file_event → rule → alert → stdout`
//!
//! Reads lines (at most [`MAX_LINE`] bytes each; longer ones are skipped and reported),
//! correlates them on stream time (an event times out when the log has moved on by the
//! timeout), and prints alerts (or, with `--events`, every creation) as JSON lines. Bad input
//! never stops a scan: it is counted and reported with its file and line.

use std::cell::RefCell;
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal, Read, Write};
use std::path::PathBuf;

use crate::alert;
use crate::event::{Correlator, CorrelatorConfig, CorrelatorStats, Event};
use crate::file_event::{BuildStats, Builder, Enricher, FileEvent, NoEnrich};
use crate::record::{MAX_LINE, Record, RecordError};
use crate::rule::Rule;

/// What to scan and how.
pub struct ScanOptions {
    /// Files to read; `-` is standard input. Empty means standard input.
    pub inputs: Vec<PathBuf>,
    pub rules: Vec<Rule>,
    /// Print every creation, not only matches.
    pub events: bool,
    /// Look names up in this host's user database (only for logs from this host).
    pub resolve_names: bool,
    pub correlator: CorrelatorConfig,
    /// Show a progress bar on a terminal.
    pub progress: bool,
}

/// Counts for the summary line.
#[derive(Clone, Debug, Default)]
pub struct ScanSummary {
    pub lines: u64,
    pub bytes: u64,
    pub malformed: u64,
    pub correlator: CorrelatorStats,
    pub build: BuildStats,
    pub alerts: u64,
    /// The first bad lines, `file:line: error`, for the report.
    pub problems: Vec<String>,
}

impl fmt::Display for ScanSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.correlator;
        write!(
            f,
            "records {} events {} creations {} alerts {} malformed {} malformed-fields {} unresolved-paths {} evicted {} timed-out {} gaps {} duplicates {} spurious {}",
            c.records,
            c.events,
            self.build.creations,
            self.alerts,
            self.malformed,
            self.build.malformed_fields,
            self.build.unresolved_paths,
            c.evicted,
            c.timed_out,
            c.gaps,
            c.duplicates,
            c.spurious
        )
    }
}

/// Errors that stop a scan: only I/O on the inputs or the output.
#[derive(Debug)]
pub enum ScanError {
    Open { path: PathBuf, err: io::Error },
    Read { path: PathBuf, err: io::Error },
    Write(io::Error),
}

impl fmt::Display for ScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScanError::Open { path, err } => write!(f, "cannot open {}: {err}", path.display()),
            ScanError::Read { path, err } => write!(f, "cannot read {}: {err}", path.display()),
            ScanError::Write(err) => write!(f, "cannot write the output: {err}"),
        }
    }
}

impl std::error::Error for ScanError {}

/// Keep at most this many problem lines for the report; all are counted.
const MAX_PROBLEMS: usize = 20;

/// Read one line of at most `MAX_LINE` bytes into `buf` (without the newline). A longer
/// line is consumed to its end and reported as `Err(len)`. `Ok(false)` at end of input.
fn read_line_capped(r: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<Result<bool, usize>> {
    buf.clear();
    let mut total = 0usize;
    let mut over = false;
    loop {
        let avail = match r.fill_buf() {
            Ok(a) => a,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
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
            if buf.len() + chunk.len() > MAX_LINE {
                over = true;
                buf.clear();
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

/// A line number that also names the input, so one correlator can span files.
fn encode_line(file: usize, line: u64) -> u64 {
    (file as u64) << 40 | (line & ((1 << 40) - 1))
}

struct Progress {
    enabled: bool,
    total: u64,
    last: u64,
}

impl Progress {
    fn update(&mut self, done: u64, records: u64) {
        if !self.enabled || done - self.last < (8 << 20) {
            return;
        }
        self.last = done;
        let pct = (done * 100).checked_div(self.total).unwrap_or(0).min(100);
        let width = 30;
        let fill = (pct as usize * width) / 100;
        eprint!(
            "\r[{}{}] {pct:3}% {records} records",
            "#".repeat(fill),
            " ".repeat(width - fill)
        );
    }

    fn finish(&self) {
        if self.enabled && self.last > 0 {
            eprint!("\r{}\r", " ".repeat(60));
        }
    }
}

/// Run the scan, writing JSON lines to `out`.
pub fn run(opts: &ScanOptions, out: &mut dyn Write) -> Result<ScanSummary, ScanError> {
    let inputs: Vec<PathBuf> = if opts.inputs.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        opts.inputs.clone()
    };
    let total: u64 = inputs
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let mut progress = Progress {
        enabled: opts.progress && io::stderr().is_terminal() && total > (64 << 20),
        total,
        last: 0,
    };
    let mut local;
    let mut none = NoEnrich;
    let enrich: &mut dyn Enricher = if opts.resolve_names {
        local = crate::enrich::LocalEnricher::new(false);
        &mut local
    } else {
        &mut none
    };

    let mut corr = Correlator::new(opts.correlator.clone());
    let mut builder = Builder::new();
    let mut sum = ScanSummary::default();
    let out_err: RefCell<Option<io::Error>> = RefCell::new(None);
    let mut json = Vec::with_capacity(4096);
    let mut alerts = 0u64;

    let prepared: Vec<alert::PreparedRule> = opts
        .rules
        .iter()
        .map(|r| alert::PreparedRule::new(&r.meta))
        .collect();
    // Called for every complete event.
    let mut on_event = |ev: &Event, builder: &mut Builder, enrich: &mut dyn Enricher| {
        builder.creations(ev, enrich, &mut |fe: &mut FileEvent<'_>| {
            if out_err.borrow().is_some() {
                return;
            }
            let mut emit = |write: &dyn Fn(&mut Vec<u8>) -> serde_json::Result<()>| {
                json.clear();
                if let Err(e) = write(&mut json) {
                    *out_err.borrow_mut() = Some(io::Error::other(e));
                    return;
                }
                json.push(b'\n');
                if let Err(e) = out.write_all(&json) {
                    *out_err.borrow_mut() = Some(e);
                }
            };
            let mut matched = false;
            for (rule, prepared) in opts.rules.iter().zip(&prepared) {
                if rule.query.matches(fe) {
                    matched = true;
                    alerts += 1;
                    emit(&|b: &mut Vec<u8>| alert::write_alert(b, fe, prepared));
                }
            }
            // With --events, a creation no rule matched is printed as a plain event; one
            // that matched was printed above as its alert(s).
            if opts.events && !matched {
                emit(&|b: &mut Vec<u8>| alert::write_event(b, fe));
            }
        });
    };

    let mut buf = Vec::with_capacity(16 * 1024);
    for (fi, path) in inputs.iter().enumerate() {
        let reader: Box<dyn Read> = if path.as_os_str() == "-" {
            Box::new(io::stdin().lock())
        } else {
            Box::new(File::open(path).map_err(|err| ScanError::Open {
                path: path.clone(),
                err,
            })?)
        };
        let mut r = BufReader::with_capacity(256 * 1024, reader);
        let mut line_no = 0u64;
        loop {
            let got = read_line_capped(&mut r, &mut buf).map_err(|err| ScanError::Read {
                path: path.clone(),
                err,
            })?;
            line_no += 1;
            let rec = match got {
                Ok(false) => break,
                Ok(true) => Record::from_log_line(&buf),
                Err(len) => Err(RecordError::TooLong(len)),
            };
            sum.lines += 1;
            sum.bytes += buf.len() as u64 + 1;
            match rec {
                Ok(rec) => {
                    // Stream time: the log's own clock decides when an event has timed out.
                    let now = rec.stamp.millis();
                    corr.push(&rec, encode_line(fi, line_no), now, &mut |ev| {
                        on_event(ev, &mut builder, enrich)
                    });
                }
                Err(RecordError::MissingType) if buf.is_empty() => {} // blank line
                Err(e) => {
                    sum.malformed += 1;
                    if sum.problems.len() < MAX_PROBLEMS {
                        sum.problems
                            .push(format!("{}:{line_no}: {e}", path.display()));
                    }
                }
            }
            if let Some(e) = out_err.borrow_mut().take() {
                return Err(ScanError::Write(e));
            }
            progress.update(sum.bytes, sum.lines);
        }
    }
    corr.flush(&mut |ev| on_event(ev, &mut builder, enrich));
    if let Some(e) = out_err.borrow_mut().take() {
        return Err(ScanError::Write(e));
    }
    out.flush().map_err(ScanError::Write)?;
    progress.finish();

    for issue in builder.take_issues() {
        if sum.problems.len() < MAX_PROBLEMS {
            let file = inputs
                .get((issue.line >> 40) as usize)
                .map_or_else(|| "?".into(), |p| p.display().to_string());
            sum.problems.push(format!(
                "{file}:{}: {} field '{}': {}",
                issue.line & ((1 << 40) - 1),
                issue.record,
                issue.field,
                issue.error
            ));
        }
    }
    sum.alerts = alerts;
    sum.correlator = corr.stats().clone();
    sum.build = builder.stats().clone();
    Ok(sum)
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
        let mut buf = Vec::new();
        let mut got = Vec::new();
        loop {
            match read_line_capped(&mut r, &mut buf).unwrap() {
                Ok(false) => break,
                Ok(true) => got.push(String::from_utf8(buf.clone()).unwrap()),
                Err(n) => got.push(format!("long {n}")),
            }
        }
        assert_eq!(
            got,
            vec![
                "a".to_string(),
                "".into(),
                "bc".into(),
                format!("long {}", MAX_LINE + 5),
                "last".into()
            ]
        );
    }
}

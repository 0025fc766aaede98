//! scan: the whole detection over audit.log files, offline.
//!
//! `file → record → event → file_event → rule → policy → alert → stdout`
//!
//! Reads lines (at most [`MAX_LINE`] bytes each; longer ones are skipped and reported),
//! correlates them on stream time (an event times out when the log has moved on by the
//! timeout), and prints alerts (or, with `--events`, every creation) as JSON lines. Bad input
//! never stops a scan: it is counted and reported with its file and line.
//!
//! The [`Policy`] (from `--config`) applies exceptions and the alert budget as the daemon
//! does, with budget windows on the log's own time; its summary alerts are printed like
//! alerts, and what it held back is counted in the summary.

use std::cell::RefCell;
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal, Read, Write};
use std::path::PathBuf;

use crate::alert;
use crate::event::{Correlator, CorrelatorConfig, CorrelatorStats, Event};
use crate::file_event::{BuildStats, Builder, Enricher, FileEvent, NoEnrich};
use crate::policy::{Policy, Verdict, WindowSummary};
use crate::record::{MAX_LINE, Record, RecordError};
use crate::rule::Rule;

/// What to scan and how.
pub struct ScanOptions {
    /// Files to read; `-` is standard input. Empty means standard input.
    pub inputs: Vec<PathBuf>,
    pub rules: Vec<Rule>,
    /// Exceptions and budget for `rules` ([`Policy::pass_all`] sends every alert).
    pub policy: Policy,
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
    /// Alerts printed (budget summaries not included).
    pub alerts: u64,
    /// Alerts suppressed by exceptions, in total and per exception label.
    pub exception_suppressed: u64,
    pub per_exception: Vec<(String, u64)>,
    /// Alerts held back by the budget, and as duplicates.
    pub budget_suppressed: u64,
    pub deduplicated: u64,
    /// Budget summary alerts printed.
    pub budget_summaries: u64,
    /// The first bad lines, `file:line: error`, for the report.
    pub problems: Vec<String>,
}

impl fmt::Display for ScanSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.correlator;
        write!(
            f,
            "records {} events {} creations {} alerts {} malformed {} malformed-fields {} unresolved-paths {} evicted {} timed-out {} gaps {} duplicates {} spurious {} exception-suppressed {} budget-suppressed {} deduplicated {} budget-summaries {}",
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
            c.spurious,
            self.exception_suppressed,
            self.budget_suppressed,
            self.deduplicated,
            self.budget_summaries
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

/// Writes one JSON document (the closure serialises it into the buffer it is given).
type Emit<'a> = dyn FnMut(&dyn Fn(&mut Vec<u8>) -> serde_json::Result<()>) + 'a;

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
    let mut policy = opts.policy.clone();
    // Budget windows closed, whose summary alerts are still to print.
    let mut summaries: Vec<WindowSummary> = Vec::new();
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
            let emit_summaries = |summaries: &mut Vec<WindowSummary>, emit: &mut Emit<'_>| {
                for s in summaries.drain(..) {
                    if let Some(p) = prepared.get(s.rule) {
                        let doc = serde_json::Value::Object(alert::summary_document(&s, p));
                        emit(&|b: &mut Vec<u8>| serde_json::to_writer(b, &doc));
                    }
                }
            };
            // Budget windows run on the log's time, as live on the clock.
            let t = fe.sec.saturating_mul(1000) + u64::from(fe.msec);
            policy.tick(t, &mut |s| summaries.push(s));
            emit_summaries(&mut summaries, &mut emit);
            let mut sent = false;
            for (i, (rule, prepared)) in opts.rules.iter().zip(&prepared).enumerate() {
                if rule.query.matches(fe) {
                    let verdict = policy.decide(i, fe, &mut |s| summaries.push(s));
                    emit_summaries(&mut summaries, &mut emit);
                    if verdict == Verdict::Send {
                        sent = true;
                        alerts += 1;
                        emit(&|b: &mut Vec<u8>| alert::write_alert(b, fe, prepared));
                    }
                }
            }
            // With --events, a creation no alert was printed for is printed as a plain
            // event; one that alerted was printed above as its alert(s).
            if opts.events && !sent {
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
    // The end of the input closes every budget window.
    policy.flush(&mut |s| summaries.push(s));
    for s in summaries.drain(..) {
        if let Some(p) = prepared.get(s.rule) {
            let doc = serde_json::Value::Object(alert::summary_document(&s, p));
            json.clear();
            serde_json::to_writer(&mut json, &doc)
                .map_err(|e| ScanError::Write(io::Error::other(e)))?;
            json.push(b'\n');
            out.write_all(&json).map_err(ScanError::Write)?;
        }
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
    let ps = policy.stats();
    sum.exception_suppressed = ps.exception_suppressed;
    sum.per_exception = policy
        .exceptions()
        .iter()
        .enumerate()
        .map(|(i, e)| (e.label(i), ps.per_exception.get(i).copied().unwrap_or(0)))
        .collect();
    sum.budget_suppressed = ps.budget_suppressed;
    sum.deduplicated = ps.deduplicated;
    sum.budget_summaries = ps.summaries;
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

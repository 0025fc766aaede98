//! scan: the whole detection over audit.log files, offline.
//!
//! `file → [reader: line → record] → [detector: event → file_event → rule → policy → alert]
//! → stdout`
//!
//! Reads lines (at most [`MAX_LINE`](wwatchd_core::record::MAX_LINE) bytes each; longer ones
//! are skipped and reported) on a thread of their own (`scan/reader.rs`) and feeds them to
//! the same [`Detector`] the daemon runs, on stream time (an event times out when the log has
//! moved on by the timeout); a third thread writes the output (`scan/writer.rs`). Alerts (or,
//! with `--events`, every creation) are printed as JSON lines, byte for byte what the daemon
//! would send. Login records in the log give alerts their `source.ip`, as live. Bad input
//! never stops a scan: it is counted and reported with its file and line.
//!
//! The [`Policy`] (from `--config`) applies exceptions and the alert budget as the daemon
//! does, with budget windows on the log's own time; its summary alerts are printed like
//! alerts, and what it held back is counted in the summary.

#![forbid(unsafe_code)]

use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use wwatchd_core::config::{ConfigError, ConfigErrors};
use wwatchd_core::detector::{AlertSink, Detector, DetectorConfig, DetectorCounters};
use wwatchd_core::event::CorrelatorConfig;
use wwatchd_core::file_event::{Enricher, FieldIssue, FileSchema, NoEnrich};
use wwatchd_core::host::HostInfo;
use wwatchd_core::policy::Policy;
use wwatchd_core::record::RecordError;
use wwatchd_core::rule::{self, Rule, RuleMeta};

use crate::cli::ScanArgs;
use crate::config::{self, Overrides, Source};
use crate::error::Error;

mod reader;
mod writer;
use reader::Msg;

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
    /// The host of the records without `node=` ([`host_for`]).
    pub host: Arc<HostInfo>,
    /// Logs read first as the new_terms rules' history (`--new-terms-history`).
    pub history: Vec<PathBuf>,
}

/// Where the alerts' `host.*` comes from, for the summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostSource {
    /// `--host NAME`.
    Option(String),
    /// This host, named so.
    Local(Option<String>),
}

impl fmt::Display for HostSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostSource::Option(n) => write!(f, "{n} (from --host)"),
            HostSource::Local(Some(n)) => write!(f, "{n} (this host)"),
            HostSource::Local(None) => f.write_str("this host (its name unknown)"),
        }
    }
}

/// The host of records without `node=`: `--host` (with `--host-id`), else this host.
pub fn host_for(args: &ScanArgs) -> Result<(HostInfo, HostSource), Error> {
    let Some(name) = &args.host else {
        let h = crate::host::local();
        let src = HostSource::Local(h.name.clone());
        return Ok((h, src));
    };
    if name.is_empty() || name.chars().any(char::is_control) {
        return Err(Error::Usage(
            "--host must be a host name (not empty, no control characters)".into(),
        ));
    }
    let local = nix::unistd::gethostname()
        .ok()
        .and_then(|n| n.into_string().ok());
    if args.host_id.is_none() && local.as_deref() == Some(name.as_str()) {
        // --host names this host: its facts apply.
        return Ok((crate::host::local(), HostSource::Option(name.clone())));
    }
    let mut h = HostInfo::named(name);
    if let Some(id) = &args.host_id {
        if !crate::host::valid_machine_id(id) {
            return Err(Error::Usage(format!(
                "--host-id {id:?} is not a machine id: 32 lowercase hex digits, as in the \
                 host's /etc/machine-id"
            )));
        }
        h.id = Some(id.clone());
    }
    if args.resolve_names && local.as_deref() != Some(name.as_str()) {
        return Err(Error::Usage(format!(
            "--resolve-names looks names up on this host, but --host says the log is from \
             {name:?}; drop one of them"
        )));
    }
    Ok((h, HostSource::Option(name.clone())))
}

/// Counts for the summary line.
#[derive(Clone, Debug, Default)]
pub struct ScanSummary {
    pub lines: u64,
    pub bytes: u64,
    /// The detector's counters, as the daemon reports them.
    pub counters: DetectorCounters,
    /// Alerts suppressed per exception label.
    pub per_exception: Vec<(String, u64)>,
    /// The first bad lines, `file:line: error`, for the report.
    pub problems: Vec<String>,
    /// The other hosts the records name with `node=` (the first few).
    pub nodes: Vec<String>,
    /// With `--new-terms-history`: the history's lines, and the terms it gave.
    pub history: Option<(u64, usize)>,
}

impl fmt::Display for ScanSummary {
    /// `name value` pairs, every counter in declaration order (the daemon's status file
    /// has the same counters under the same names, with `_` for `-`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (c, v) in self.counters.pairs() {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            write!(f, "{} {v}", c.summary_name())?;
        }
        Ok(())
    }
}

/// Errors that stop a scan: only I/O on the inputs or the output.
#[derive(Debug)]
pub enum ScanError {
    Open {
        path: PathBuf,
        err: io::Error,
    },
    Read {
        path: PathBuf,
        err: io::Error,
    },
    Write(io::Error),
    /// The reader thread could not start, or stopped early.
    Reader(io::Error),
}

impl fmt::Display for ScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScanError::Open { path, err } => write!(f, "cannot open {}: {err}", path.display()),
            ScanError::Read { path, err } => write!(f, "cannot read {}: {err}", path.display()),
            ScanError::Write(err) => write!(f, "cannot write the output: {err}"),
            ScanError::Reader(err) => write!(f, "cannot read the input: {err}"),
        }
    }
}

impl std::error::Error for ScanError {}

/// Keep at most this many problem lines for the report; all are counted.
const MAX_PROBLEMS: usize = 20;

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
    /// A progress bar on a terminal, for inputs over 64 MiB in total, when `wanted`.
    fn for_inputs(inputs: &[PathBuf], wanted: bool) -> Progress {
        let total: u64 = inputs
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        Progress {
            enabled: wanted && io::stderr().is_terminal() && total > (64 << 20),
            total,
            last: 0,
        }
    }

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

/// Writes each document as one line; the first write error stops the scan.
struct LineSink<'a> {
    out: &'a mut dyn Write,
    err: Option<io::Error>,
}

impl LineSink<'_> {
    fn line(&mut self, json: &[u8]) {
        if self.err.is_some() {
            return;
        }
        if json.is_empty() {
            self.err = Some(io::Error::other(
                "an alert did not render; please report this bug",
            ));
            return;
        }
        if let Err(e) = self
            .out
            .write_all(json)
            .and_then(|()| self.out.write_all(b"\n"))
        {
            self.err = Some(e);
        }
    }
}

impl AlertSink for LineSink<'_> {
    fn alert(&mut self, _rule: &RuleMeta, json: &[u8]) {
        self.line(json);
    }
    fn event(&mut self, json: &[u8]) {
        self.line(json);
    }
}

/// The rules and policy `scan` runs: `--config`'s (its exceptions and budget too), or the
/// `--rule` files, or the built-in rules; the last two with no exceptions and no budget.
fn scan_rules(args: &ScanArgs) -> Result<(Vec<Rule>, Policy), Error> {
    Ok(if let Some(path) = args.config.clone() {
        let overrides = Overrides {
            rule_files: args.rules.clone(),
            ..Overrides::default()
        };
        let loaded = config::load(&Source::new(Some(path), overrides))?;
        for w in &loaded.warnings {
            eprintln!("wwatchd: warning: {w}");
        }
        let policy = loaded.policy();
        (loaded.rules, policy)
    } else if args.rules.is_empty() {
        let v = rule::try_builtins(&FileSchema).map_err(|e| {
            Error::Config(ConfigErrors(vec![ConfigError::new(
                "",
                None,
                format!("a built-in rule does not load: {e}"),
            )]))
        })?;
        let n = v.len();
        (v, Policy::pass_all(n))
    } else {
        let mut v = Vec::new();
        let mut errors = Vec::new();
        for p in &args.rules {
            match config::load_rule_file(p) {
                Ok(r) => {
                    for w in rule::kinds::warnings(&r) {
                        eprintln!("wwatchd: warning: {w}");
                    }
                    v.push(r);
                }
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(Error::Config(ConfigErrors(errors)));
        }
        let n = v.len();
        (v, Policy::pass_all(n))
    })
}

/// `wwatchd scan`: the rules of `--config` (its exceptions and budget too, as the daemon
/// runs them), or of `--rule` files, or the built-in rule; the summary on stderr.
pub fn command(args: ScanArgs) -> Result<(), Error> {
    if !(args.timeout.is_finite() && args.timeout >= 0.0) {
        return Err(Error::Usage(
            "--timeout must be a number of seconds, 0 or more".into(),
        ));
    }
    let (rules, policy) = scan_rules(&args)?;
    let (host, host_source) = host_for(&args)?;
    let opts = ScanOptions {
        inputs: args.files,
        rules,
        policy,
        events: args.events,
        resolve_names: args.resolve_names,
        correlator: CorrelatorConfig {
            timeout_ms: (args.timeout * 1000.0) as u64,
            max_inflight: args.max_inflight.max(1),
            ..CorrelatorConfig::default()
        },
        progress: !args.no_progress,
        host: Arc::new(host),
        history: args.new_terms_history,
    };
    // Written in chunks of 256 KiB by the writer thread: no buffer of its own needed.
    let mut out = io::stdout();
    let sum = run(&opts, &mut out).map_err(|e| match e {
        ScanError::Write(err) => Error::Io {
            what: "cannot write the output".into(),
            err,
            output: true,
        },
        ScanError::Open { path, err } => Error::Io {
            what: format!("cannot open {}", path.display()),
            err,
            output: false,
        },
        ScanError::Read { path, err } => Error::Io {
            what: format!("cannot read {}", path.display()),
            err,
            output: false,
        },
        ScanError::Reader(err) => Error::Io {
            what: "cannot read the input".into(),
            err,
            output: false,
        },
    })?;
    let _ = out.flush();
    for p in &sum.problems {
        eprintln!("wwatchd: {p}");
    }
    let bad = sum.counters.malformed + sum.counters.malformed_fields;
    let more = bad - (sum.problems.len() as u64).min(bad);
    if more > 0 {
        eprintln!("wwatchd: ... and {more} more problems");
    }
    for (label, n) in &sum.per_exception {
        eprintln!("wwatchd: exception {label:?} suppressed {n} alerts");
    }
    if sum.nodes.is_empty() {
        eprintln!("wwatchd: scan: host {host_source}");
    } else {
        eprintln!(
            "wwatchd: scan: host from the records' node= ({}), else {host_source}",
            sum.nodes.join(", ")
        );
    }
    if let Some((lines, terms)) = sum.history {
        eprintln!(
            "wwatchd: scan: new_terms history: {lines} lines, {terms} terms from {}",
            opts.history
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    eprintln!("wwatchd: scan: {sum}");
    Ok(())
}

/// Adds the detector's field issues to the problems (up to [`MAX_PROBLEMS`]), each named by
/// the file and line it came from (see [`encode_line`]).
fn note_field_issues(sum: &mut ScanSummary, issues: Vec<FieldIssue>, inputs: &[PathBuf]) {
    for issue in issues {
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
}

/// Run the scan, writing JSON lines to `out`.
pub fn run(opts: &ScanOptions, out: &mut (dyn Write + Send)) -> Result<ScanSummary, ScanError> {
    let inputs: Vec<PathBuf> = if opts.inputs.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        opts.inputs.clone()
    };
    let mut progress = Progress::for_inputs(&inputs, opts.progress);
    let mut local;
    let mut none = NoEnrich;
    let enrich: &mut dyn Enricher = if opts.resolve_names {
        local = crate::enrich::LocalEnricher::new(false);
        &mut local
    } else {
        &mut none
    };
    let cfg = DetectorConfig {
        correlator: opts.correlator.clone(),
        events: opts.events,
        host: opts.host.clone(),
        ..DetectorConfig::default()
    };
    let mut sum = ScanSummary::default();
    let rules = Arc::new(opts.rules.clone());
    let mut det = Detector::new(cfg.clone(), rules.clone(), opts.policy.clone());
    if !opts.history.is_empty() {
        // The history through a detector of its own that only learns: its records, alerts
        // and counters are not the scan's; only its terms are handed over.
        let mut hist = Detector::new(
            DetectorConfig {
                events: false,
                ..cfg
            },
            rules.clone(),
            Policy::pass_all(rules.len()),
        );
        hist.set_learning(true);
        let mut nothing = LineSink {
            out: &mut io::sink(),
            err: None,
        };
        let mut hsum = ScanSummary::default();
        let mut no_progress = Progress::for_inputs(&[], false);
        feed(
            &mut hist,
            &opts.history,
            enrich,
            &mut nothing,
            &mut hsum,
            &mut no_progress,
        )?;
        hist.flush(enrich, &mut nothing);
        sum.problems = hsum.problems;
        let terms = std::mem::take(hist.new_terms_mut());
        sum.history = Some((hsum.lines, terms.len()));
        det.new_terms_mut().absorb(terms);
    }
    // The alerts are written on a thread of their own ([`writer`]).
    std::thread::scope(|s| {
        let mut chunks = writer::Chunks::spawn(s, out).map_err(ScanError::Write)?;
        let mut sink = LineSink {
            out: &mut chunks,
            err: None,
        };
        let fed = feed(
            &mut det,
            &inputs,
            enrich,
            &mut sink,
            &mut sum,
            &mut progress,
        );
        if fed.is_ok() {
            // The end of the input completes every event and closes every budget window.
            det.flush(enrich, &mut sink);
        }
        let sunk = sink.err.take();
        // The output's own error comes first: a failed hand-over only says that it failed.
        chunks.finish().map_err(ScanError::Write)?;
        fed?;
        sunk.map_or(Ok(()), |e| Err(ScanError::Write(e)))
    })?;
    progress.finish();

    note_field_issues(&mut sum, det.take_issues(), &inputs);
    sum.counters = det.counters();
    sum.per_exception = det.exception_counts();
    sum.nodes = det.nodes().to_vec();
    Ok(sum)
}

/// Feeds every line of `inputs` to `det`, in input order, counting them in `sum`. The lines
/// are read and their records' heads parsed on a thread of their own (`scan/reader.rs`); the
/// output is written on another (`scan/writer.rs`).
fn feed(
    det: &mut Detector,
    inputs: &[PathBuf],
    enrich: &mut dyn Enricher,
    sink: &mut LineSink<'_>,
    sum: &mut ScanSummary,
    progress: &mut Progress,
) -> Result<(), ScanError> {
    let (rx, back) = reader::spawn(inputs.to_vec()).map_err(ScanError::Reader)?;
    loop {
        let batch = match rx.recv() {
            Ok(Msg::Lines(batch)) => batch,
            Ok(Msg::Failed(e)) => return Err(e),
            Ok(Msg::End) => return Ok(()),
            Err(_) => {
                return Err(ScanError::Reader(io::Error::other(
                    "the reader thread stopped before the end of the input; please report \
                     this bug",
                )));
            }
        };
        let path = &inputs[batch.file];
        for (line_no, line) in (batch.first_line..).zip(&batch.lines) {
            sum.lines += 1;
            sum.bytes += line.len as u64 + 1;
            match batch.record(line) {
                // Stream time: the log's own clock decides when an event has timed out.
                Ok(rec) => det.push(
                    &rec,
                    encode_line(batch.file, line_no),
                    rec.stamp.millis(),
                    enrich,
                    sink,
                ),
                Err(RecordError::MissingType) if line.is_blank() => {}
                Err(e) => {
                    det.malformed();
                    if sum.problems.len() < MAX_PROBLEMS {
                        sum.problems
                            .push(format!("{}:{line_no}: {e}", path.display()));
                    }
                }
            }
            if let Some(e) = sink.err.take() {
                return Err(ScanError::Write(e));
            }
        }
        progress.update(sum.bytes, sum.lines);
        // Spent: the reader fills it again (gone if the reader has finished).
        let _ = back.send(batch);
    }
}

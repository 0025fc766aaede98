//! wwatchd's entry point: parse the command line, run, map errors to exit codes (sysexits).

use std::io::{self, Write};
use std::process::ExitCode;

use clap::Parser;
use wwatchd::cli::{Cli, Command, RuleSources, RulesCommand, RunArgs, ScanArgs};
use wwatchd::config::{self, Overrides, Source};
use wwatchd::event::CorrelatorConfig;
use wwatchd::file_event::FileSchema;
use wwatchd::pipeline::{RunConfig, RunError};
use wwatchd::policy::Policy;
use wwatchd::{admin, pipeline};
use wwatchd::{rule, scan};

/// sysexits.h: the input data was incorrect in some way.
const EX_NOINPUT: u8 = 66;
/// sysexits.h: an I/O error on output.
const EX_IOERR: u8 = 74;
/// sysexits.h: a configuration or rule file is wrong.
const EX_CONFIG: u8 = 78;
/// sysexits.h: an internal software error.
const EX_SOFTWARE: u8 = 70;
/// sysexits.h: the user did not have sufficient permission.
const EX_NOPERM: u8 = 77;
/// sysexits.h: the command was used incorrectly.
const EX_USAGE: u8 = 64;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Not locked for the whole run: the daemon's stdout sink writes from its own thread.
    let mut stdout = io::stdout();
    let done = |r: Result<(), RunError>| match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A configuration error lists every error found, one per line.
            for line in e.to_string().lines() {
                eprintln!("wwatchd: {line}");
            }
            ExitCode::from(match e {
                RunError::Config(_) => EX_CONFIG,
                RunError::Permission(_) => EX_NOPERM,
                RunError::Software(_) => EX_SOFTWARE,
            })
        }
    };
    match cli.command {
        Command::Scan(args) => scan_cmd(args),
        Command::Run(args) => match run_source(args) {
            Ok(source) => done(
                config::load(&source)
                    .map_err(|e| RunError::Config(e.to_string()))
                    .and_then(|loaded| {
                        for w in &loaded.warnings {
                            eprintln!("wwatchd: warning: {w}");
                        }
                        pipeline::run(RunConfig::new(&loaded, source))
                    }),
            ),
            Err(msg) => {
                eprintln!("wwatchd: {msg}");
                ExitCode::from(EX_USAGE)
            }
        },
        Command::Check(a) => done(admin::check(
            &Source::new(a.config, Overrides::default()),
            &mut stdout,
        )),
        Command::Rules { command } => done(match command {
            RulesCommand::Print(s) => admin::rules_print(&rule_source(s), &mut stdout),
            RulesCommand::Install(s) => admin::rules_install(&rule_source(s), &mut stdout),
            RulesCommand::Remove => admin::rules_remove(&mut stdout),
            RulesCommand::Status(s) => {
                match admin::rules_status(&rule_source(s), &mut stdout) {
                    Ok(true) => Ok(()),
                    // Like `systemctl is-active`: missing rules are a non-zero exit.
                    Ok(false) => return ExitCode::from(1),
                    Err(e) => Err(e),
                }
            }
        }),
        Command::Status(a) => done(admin::status(&a.status_file, &mut stdout)),
    }
}

/// `--config`, `--rule` and `--watch-dir`.
fn rule_source(s: RuleSources) -> Source {
    let overrides = Overrides {
        rule_files: s.rules,
        watch_dirs: s.watch_dirs,
        ..Overrides::default()
    };
    Source::new(s.config, overrides)
}

/// The configuration source of `run`, its flags overriding the file.
fn run_source(a: RunArgs) -> Result<Source, String> {
    let mut source = rule_source(a.sources);
    let o = &mut source.overrides;
    o.transport = a
        .output
        .map(|v| v.parse().map_err(|e| format!("--output: {e}")))
        .transpose()?;
    o.facility = a
        .facility
        .map(|v| v.parse().map_err(|e| format!("--facility: {e}")))
        .transpose()?;
    o.rcvbuf = a.rcvbuf;
    o.max_message_bytes = a.max_message_bytes;
    o.status_file = a.status_file;
    o.summary_interval = a.summary_interval;
    o.spool_dir = a.spool_dir;
    o.spool_max_bytes = a.spool_max_bytes;
    o.user = a.user;
    Ok(source)
}

fn scan_cmd(args: ScanArgs) -> ExitCode {
    // With --config: its rules, exceptions and budget, as the daemon runs them.
    if let Some(path) = args.config.clone() {
        let overrides = Overrides {
            rule_files: args.rules.clone(),
            ..Overrides::default()
        };
        return match config::load(&Source::new(Some(path), overrides)) {
            Ok(loaded) => {
                for w in &loaded.warnings {
                    eprintln!("wwatchd: warning: {w}");
                }
                let policy = loaded.policy();
                scan_with(args, loaded.rules, policy)
            }
            Err(errors) => {
                for e in &errors.0 {
                    eprintln!("wwatchd: {e}");
                }
                ExitCode::from(EX_CONFIG)
            }
        };
    }
    let rules = if args.rules.is_empty() {
        match rule::try_builtins(&FileSchema) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("wwatchd: a built-in rule does not load: {e}");
                return ExitCode::from(70);
            }
        }
    } else {
        let mut v = Vec::new();
        for p in &args.rules {
            match rule::load_file(p, &FileSchema) {
                Ok(r) => v.push(r),
                Err(e) => {
                    eprintln!("wwatchd: {e}");
                    return ExitCode::from(EX_CONFIG);
                }
            }
        }
        v
    };
    let policy = Policy::pass_all(rules.len());
    scan_with(args, rules, policy)
}

fn scan_with(args: ScanArgs, rules: Vec<rule::Rule>, policy: Policy) -> ExitCode {
    if !(args.timeout.is_finite() && args.timeout >= 0.0) {
        eprintln!("wwatchd: --timeout must be a number of seconds, 0 or more");
        return ExitCode::from(64);
    }
    let opts = scan::ScanOptions {
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
    };
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    match scan::run(&opts, &mut out) {
        Ok(sum) => {
            let _ = out.flush();
            for p in &sum.problems {
                eprintln!("wwatchd: {p}");
            }
            let more = sum.malformed + sum.build.malformed_fields
                - (sum.problems.len() as u64).min(sum.malformed + sum.build.malformed_fields);
            if more > 0 {
                eprintln!("wwatchd: ... and {more} more problems");
            }
            for (label, n) in &sum.per_exception {
                eprintln!("wwatchd: exception {label:?} suppressed {n} alerts");
            }
            eprintln!("wwatchd: scan: {sum}");
            ExitCode::SUCCESS
        }
        Err(e @ scan::ScanError::Write(_)) => {
            eprintln!("wwatchd: {e}");
            ExitCode::from(EX_IOERR)
        }
        Err(e) => {
            eprintln!("wwatchd: {e}");
            ExitCode::from(EX_NOINPUT)
        }
    }
}

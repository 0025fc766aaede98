//! wwatchd's entry point: parse the command line, run, map errors to exit codes (sysexits).

use std::io::{self, Write};
use std::process::ExitCode;

use clap::Parser;
use wwatchd::cli::{Cli, Command, RulesCommand, RunArgs, ScanArgs};
use wwatchd::event::CorrelatorConfig;
use wwatchd::file_event::FileSchema;
use wwatchd::pipeline::{RunConfig, RunError};
use wwatchd::{admin, pipeline};
use wwatchd::{rule, scan};

/// sysexits.h: the input data was incorrect in some way.
const EX_NOINPUT: u8 = 66;
/// sysexits.h: an I/O error on output.
const EX_IOERR: u8 = 74;
/// sysexits.h: a configuration (rule) file is wrong.
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
            eprintln!("wwatchd: {e}");
            ExitCode::from(match e {
                RunError::Config(_) => EX_CONFIG,
                RunError::Permission(_) => EX_NOPERM,
                RunError::Software(_) => EX_SOFTWARE,
            })
        }
    };
    match cli.command {
        Command::Scan(args) => scan_cmd(args),
        Command::Run(args) => match run_config(args) {
            Ok(cfg) => done(pipeline::run(cfg)),
            Err(msg) => {
                eprintln!("wwatchd: {msg}");
                ExitCode::from(EX_USAGE)
            }
        },
        Command::Rules { command } => done(match command {
            RulesCommand::Print(s) => admin::rules_print(&s.rules, &s.watch_dirs, &mut stdout),
            RulesCommand::Install(s) => admin::rules_install(&s.rules, &s.watch_dirs, &mut stdout),
            RulesCommand::Remove => admin::rules_remove(&mut stdout),
            RulesCommand::Status(s) => {
                match admin::rules_status(&s.rules, &s.watch_dirs, &mut stdout) {
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

fn run_config(a: RunArgs) -> Result<RunConfig, String> {
    let mut cfg = RunConfig {
        rule_files: a.sources.rules,
        watch_dirs: a.sources.watch_dirs,
        rcvbuf: a.rcvbuf,
        status_file: a.status_file,
        summary_every: std::time::Duration::from_secs(a.summary_interval.max(1)),
        user: a.user,
        ..RunConfig::default()
    };
    cfg.sink.transport = a.output.parse().map_err(|e| format!("--output: {e}"))?;
    cfg.sink.facility = a.facility.parse().map_err(|e| format!("--facility: {e}"))?;
    cfg.sink.max_message_bytes = a.max_message_bytes;
    Ok(cfg)
}

fn scan_cmd(args: ScanArgs) -> ExitCode {
    let rules = if args.rules.is_empty() {
        match rule::try_builtin(&FileSchema) {
            Ok(r) => vec![r],
            Err(e) => {
                eprintln!("wwatchd: the built-in rule does not load: {e}");
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
    if !(args.timeout.is_finite() && args.timeout >= 0.0) {
        eprintln!("wwatchd: --timeout must be a number of seconds, 0 or more");
        return ExitCode::from(64);
    }
    let opts = scan::ScanOptions {
        inputs: args.files,
        rules,
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

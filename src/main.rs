//! wwatchd's entry point: parse the command line, run, map errors to exit codes (sysexits).

use std::io::{self, Write};
use std::process::ExitCode;

use clap::Parser;
use wwatchd::cli::{Cli, Command, ScanArgs};
use wwatchd::event::CorrelatorConfig;
use wwatchd::file_event::FileSchema;
use wwatchd::{rule, scan};

/// sysexits.h: the input data was incorrect in some way.
const EX_NOINPUT: u8 = 66;
/// sysexits.h: an I/O error on output.
const EX_IOERR: u8 = 74;
/// sysexits.h: a configuration (rule) file is wrong.
const EX_CONFIG: u8 = 78;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Scan(args) => scan_cmd(args),
    }
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

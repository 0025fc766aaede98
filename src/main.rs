//! wwatchd's entry point: parse the command line, run the command, map its error to an
//! exit code (sysexits, by name in `wwatchd::error::Exit`).

use std::process::ExitCode;

use clap::Parser;
use wwatchd::cli::Cli;
use wwatchd::commands::{self, Outcome};

fn main() -> ExitCode {
    match commands::dispatch(Cli::parse()) {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        // Like `systemctl is-active`: `rules status` with rules missing exits 1.
        Ok(Outcome::Missing) => ExitCode::from(1),
        Err(e) => {
            // A configuration error lists every error found, one per line.
            for line in e.to_string().lines() {
                eprintln!("wwatchd: {line}");
            }
            e.exit().into()
        }
    }
}

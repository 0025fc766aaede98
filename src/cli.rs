//! cli: the command line, as clap definitions. `main.rs` dispatches on these.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Detect remote file drops (scp, sftp, rsync, FTP) into world-writable directories,
/// from kernel audit records, with Elastic's EQL rule.
#[derive(Parser, Debug)]
#[command(name = "wwatchd", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the detection over audit.log files (RAW or ENRICHED) and print alerts as JSON lines.
    Scan(ScanArgs),
}

#[derive(clap::Args, Debug)]
pub struct ScanArgs {
    /// A rule file (TOML, Elastic detection-rules layout). Repeatable; replaces the built-in rule.
    #[arg(long = "rule", value_name = "FILE")]
    pub rules: Vec<PathBuf>,
    /// Print every file-creation event, not only the alerts.
    #[arg(long)]
    pub events: bool,
    /// Look user and group names up on this host (only for logs written on this host).
    #[arg(long)]
    pub resolve_names: bool,
    /// Seconds of log time after which an incomplete event is emitted.
    #[arg(long, value_name = "SECONDS", default_value_t = 2.0)]
    pub timeout: f64,
    /// Most events in flight at once; more are emitted early and counted as evicted.
    #[arg(long, value_name = "N", default_value_t = 4096)]
    pub max_inflight: usize,
    /// Do not show a progress bar, even on a terminal.
    #[arg(long)]
    pub no_progress: bool,
    /// audit.log files to read; `-` or none reads standard input.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

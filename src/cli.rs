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
    /// Run the live daemon: read kernel audit records (beside auditd), alert to syslog.
    Run(RunArgs),
    /// Show, load, remove or check the kernel audit rules wwatchd derives from its rules.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Kernel audit status and the running daemon's counters (from its status file).
    Status(StatusArgs),
    /// Validate the configuration and every rule file; print the effective settings and the
    /// kernel audit rules they give. Needs no privileges and does not touch the kernel.
    Check(CheckArgs),
}

/// Where the rules come from; shared by `run` and `rules`.
#[derive(clap::Args, Debug, Clone)]
pub struct RuleSources {
    /// The configuration file; it must exist when named. Without this option
    /// /etc/wwatchd/wwatchd.toml is read if it exists.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// A rule file (TOML, Elastic detection-rules layout). Repeatable; replaces the built-in
    /// rule and the configured rule directory.
    #[arg(long = "rule", value_name = "FILE")]
    pub rules: Vec<PathBuf>,
    /// Also watch this directory (subtree) for every rule; lets rules whose paths have no
    /// literal directory run. Repeatable; replaces rules.watch_dirs of the configuration.
    #[arg(long = "watch-dir", value_name = "DIR")]
    pub watch_dirs: Vec<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub sources: RuleSources,
    /// Where alerts go: local (/dev/log), journal (journald's native protocol), stdout,
    /// udp://HOST:PORT, tcp://HOST:PORT or unix:/PATH, optionally followed by
    /// ?format=rfc3164|rfc5424. Overrides output.destination and output.format
    /// [default: local].
    #[arg(long, value_name = "DEST")]
    pub output: Option<String>,
    /// Syslog facility of alerts and diagnostics. Overrides output.facility [default: auth].
    #[arg(long, value_name = "NAME")]
    pub facility: Option<String>,
    /// Receive buffer of the audit multicast socket, in bytes. Overrides input.rcvbuf
    /// [default: 16777216].
    #[arg(long, value_name = "BYTES")]
    pub rcvbuf: Option<usize>,
    /// Largest syslog message, header included; longer alerts are trimmed, JSON kept valid.
    /// Overrides output.max_message_bytes [default: 8192].
    #[arg(long, value_name = "N")]
    pub max_message_bytes: Option<usize>,
    /// Where the daemon writes its counters (every 5 s and at exit). Overrides
    /// daemon.status_file [default: /run/wwatchd/status.json].
    #[arg(long, value_name = "PATH")]
    pub status_file: Option<PathBuf>,
    /// Seconds between diagnostic summaries. Overrides daemon.summary_interval [default: 60].
    #[arg(long, value_name = "SECONDS")]
    pub summary_interval: Option<u64>,
    /// Directory where alerts wait while the collector is down, and across restarts; `none`
    /// keeps them in memory only. Created 0700 if missing; refused if world-writable or owned
    /// by another user. Overrides output.spool_dir [default: /var/lib/wwatchd/spool].
    #[arg(long, value_name = "DIR")]
    pub spool_dir: Option<String>,
    /// Cap on the spool's size; over it the oldest spooled alerts are dropped and counted.
    /// Overrides output.spool_max_bytes [default: 67108864].
    #[arg(long, value_name = "BYTES")]
    pub spool_max_bytes: Option<u64>,
    /// Started as root: after opening the audit sockets, run as this user, keeping only
    /// CAP_AUDIT_READ and CAP_AUDIT_CONTROL.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// The configuration file to check [default: /etc/wwatchd/wwatchd.toml, which may be
    /// absent].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum RulesCommand {
    /// Print the kernel rules in auditctl syntax (for /etc/audit/rules.d/40-wwatchd.rules).
    Print(RuleSources),
    /// Load the kernel rules now (already loaded ones are kept).
    Install(RuleSources),
    /// Delete every kernel rule whose key starts with wwatchd-d-.
    Remove,
    /// List our loaded kernel rules and say which derived ones are missing.
    Status(RuleSources),
}

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// The daemon's status file.
    #[arg(long, value_name = "PATH", default_value = "/run/wwatchd/status.json")]
    pub status_file: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct ScanArgs {
    /// Apply this configuration: its rules (rules.dir, rules.builtin), exceptions and alert
    /// budget, as the daemon would. Without it, scan runs the built-in rules or the --rule
    /// files, with no exceptions and no budget.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// A rule file (TOML, Elastic detection-rules layout). Repeatable; replaces the built-in
    /// rule (and, with --config, the configured rule directory).
    #[arg(long = "rule", value_name = "FILE")]
    pub rules: Vec<PathBuf>,
    /// Print every file-creation event, not only the alerts.
    #[arg(long)]
    pub events: bool,
    /// Look user and group names up on this host (only for logs written on this host;
    /// refused with a --host that names another host).
    #[arg(long)]
    pub resolve_names: bool,
    /// The host the log comes from, for records without node=: host.name of their alerts,
    /// and no facts of this host (without it, records without node= are this host's).
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
    /// The machine id (32 hex digits, machine-id(5)) of the --host host: host.id of its
    /// alerts, and what event.id and agent.id are derived from, as the daemon there does.
    #[arg(long, value_name = "ID", requires = "host")]
    pub host_id: Option<String>,
    /// Seconds of log time after which an incomplete event is emitted.
    #[arg(long, value_name = "SECONDS", default_value_t = 2.0)]
    pub timeout: f64,
    /// Most events in flight at once; more are emitted early and counted as evicted.
    #[arg(long, value_name = "N", default_value_t = 4096)]
    pub max_inflight: usize,
    /// Do not show a progress bar, even on a terminal.
    #[arg(long)]
    pub no_progress: bool,
    /// An audit.log read first as the history of the new_terms rules: its matches only
    /// record their terms (no alerts, not counted); then the FILEs are scanned. Repeatable.
    /// Without it, scan starts from no history (it never reads the daemon's state directory).
    #[arg(long = "new-terms-history", value_name = "LOG")]
    pub new_terms_history: Vec<PathBuf>,
    /// audit.log files to read; `-` or none reads standard input.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

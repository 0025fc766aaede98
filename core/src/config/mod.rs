//! config: `/etc/wwatchd/wwatchd.toml` and `/etc/wwatchd/rules/*.toml` → a validated
//! [`Config`], the rule set and the [`Policy`] the daemon, `scan` and `check` run with.
//!
//! Two stages, as ntpd-rs does it: a raw serde form with `deny_unknown_fields` (a typo is an
//! error, not a silently ignored key), then validation into typed values. Every key has a
//! default, so no file at all is valid. Every error names the file, the line and the key,
//! and says what is allowed: `FILE:LINE: key `output.facility`: ...; allowed: ...`.
//!
//! Everything here is pure: the daemon crate's `config::load` reads the files (through its
//! trust check: anyone who could change them could change what wwatchd alerts on) and hands
//! their text to [`parse`].

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use toml::Spanned;

use crate::policy::{Budget, Cidr, Exception, Policy, ProcSpec, UserSpec};
use crate::rule::{self, Pattern, Rule};
use crate::spool_format::{MIN_MAX_BYTES as MIN_SPOOL_MAX_BYTES, SpoolConfig};
use crate::syslog::{Facility, Format, MAX_UDP_BYTES, MIN_MESSAGE_BYTES, Transport};

/// Default multicast receive buffer: measured lossless at 8–32 MiB (audit-facts.md).
pub const DEFAULT_RCVBUF: usize = 16 << 20;

/// The configuration file read when `--config` is not given. Its absence is not an error.
pub const DEFAULT_PATH: &str = "/etc/wwatchd/wwatchd.toml";
/// Where the daemon keeps its state (the new_terms rules' terms), by default.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/wwatchd";
/// Where rule files are read from, by default.
pub const DEFAULT_RULES_DIR: &str = "/etc/wwatchd/rules";

/// Smallest and largest `input.rcvbuf`: the kernel doubles the value it is given, and
/// `SO_RCVBUFFORCE` takes an `int`.
const RCVBUF_RANGE: (i64, i64) = (65_536, 1 << 30);
/// Largest `output.queue_capacity`.
const MAX_QUEUE: i64 = 10_000_000;
/// Largest interval or window, in seconds (one day).
const MAX_SECONDS: i64 = 86_400;

/// The validated configuration. [`Default`] is what an absent file means.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// `[input]`: the audit multicast socket.
    pub input: Input,
    /// `[output]`: where alerts and diagnostics go.
    pub output: Output,
    /// `[rules]`: which detection rules run, and the kernel audit rules derived from them.
    pub rules: Rules,
    /// `[daemon]`: the daemon's own bookkeeping.
    pub daemon: Daemon,
    /// `[budget]`: at most `max_alerts` alerts per rule per `window` seconds.
    /// Keys: `max_alerts` (integer, default 100; 0 = no limit), `window` (integer seconds,
    /// 1-86400, default 300), `dedup` (boolean, default false: when true, an alert identical
    /// on rule, `file.path`, `process.executable`, `user.id` and `source.ip` to one already
    /// sent in the window is held back and counted).
    pub budget: Budget,
    /// `[[exception]]` tables, in file order. Keys: `name` (string, optional), `rule`
    /// (string, a `rule_id` or rule name; absent = every rule), and the conditions, each a
    /// string or an array: `user` (names or numeric ids), `process` (process names, or
    /// executables when the entry holds a `/`), `path` (`file.path` globs, `like~`), `parent`
    /// (parent process names or executables), `source` (`source.ip` networks in CIDR
    /// notation, or addresses). All named conditions must hold; any value of one may match.
    pub exceptions: Vec<Exception>,
    /// Where each exception's `rule` key is written (`FILE:LINE`), to report a rule that is
    /// not loaded.
    rule_refs_at: Vec<Option<String>>,
}

/// `[input]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// `input.rcvbuf` (integer, bytes, 65536-1073741824; default 16777216 = 16 MiB): the
    /// receive buffer of the audit multicast socket, set with `SO_RCVBUFFORCE`. A burst
    /// larger than the buffer is lost (counted as `enobufs`).
    pub rcvbuf: usize,
}

/// `[output]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    /// `output.destination` (string; default `"local"`): where alerts go: `local`
    /// (`/dev/log`), `unix:/PATH`, `udp://HOST:PORT`, `tcp://HOST:PORT` (RFC 6587
    /// octet-counted) or `stdout` (JSON lines, no syslog header).
    /// `output.format` (string; default `"auto"`): `rfc3164`, `rfc5424`, or `auto` =
    /// rfc3164 for `local` and `unix:`, rfc5424 for `udp://` and `tcp://`. Both are held
    /// here, in the transport.
    pub transport: Transport,
    /// `output.facility` (string; default `"auth"`): the syslog facility of alerts and
    /// diagnostics: auth, authpriv, daemon, user, local0-local7.
    pub facility: Facility,
    /// `output.max_message_bytes` (integer, 480-16777216, at most 65507 over UDP; default
    /// 8192, rsyslog's default limit): the largest syslog message, header included; longer
    /// alerts are trimmed with their JSON kept valid.
    pub max_message_bytes: usize,
    /// `output.queue_capacity` (integer, 1-10000000; default 10000): messages held in
    /// memory while the collector is unreachable; beyond it the oldest are dropped and
    /// counted.
    pub queue_capacity: usize,
    /// `output.spool_dir` (string, absolute path or `"none"`; default
    /// `"/var/lib/wwatchd/spool"`) and `output.spool_max_bytes` (integer, 65536 to 2^40;
    /// default 67108864): the disk spool where alerts wait while the collector is down and
    /// across restarts, and its size cap (over it the oldest are dropped and counted).
    /// `"none"` keeps alerts in memory only.
    pub spool: Option<SpoolConfig>,
}

/// `[rules]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rules {
    /// `rules.dir` (string, absolute path; default `"/etc/wwatchd/rules"`): every `*.toml`
    /// file in it (not hidden ones) is a rule file, loaded in name order. A missing
    /// directory is no error.
    pub dir: PathBuf,
    /// `rules.builtin` (boolean or array of strings; default true): which built-in rules run.
    /// `true` runs the two default ones, Elastic's "Remote File Creation in World Writeable
    /// Directory" (v3, EQL) and its sshd-session companion; `false` runs none; an array runs
    /// only the rules it names, each by its file name under `rules/` without `.toml`, or by
    /// its rule_id. The off-by-default `remote_file_creation_world_writeable_new_terms`
    /// (Elastic's current version of the seed, KQL and new_terms) shares the seed's rule_id
    /// and is selected by its name only; the rule_id selects the v3 seed.
    pub builtin: BuiltinRules,
    /// `rules.watch_dirs` (array of absolute paths; default `[]`): also watch these
    /// directories (whole subtrees) with kernel audit rules, for every rule; lets rules whose
    /// paths have no literal directory run.
    pub watch_dirs: Vec<PathBuf>,
    /// `rules.world_writable_by_mode` (boolean; default false): also run the built-in rule
    /// that alerts on remote creations in any directory whose mode is world-writable
    /// (outside the paths the other built-in rules name); its kernel rules watch the
    /// world-writable directories found on the local file systems at start and at every
    /// reconcile.
    pub world_writable_by_mode: bool,
    /// `rules.reconcile_interval` (integer seconds, 1-86400; default 30): how often the
    /// daemon checks that its kernel audit rules are still loaded (auditd's reload deletes
    /// them; a `CONFIG_CHANGE` record also triggers a check at once).
    pub reconcile_interval: Duration,
}

/// `rules.builtin`: which of the built-in rules ([`rule::BUILTINS`]) run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BuiltinRules {
    /// `true` (the default): every built-in rule.
    All,
    /// `false`: none.
    Off,
    /// An array: only these, by name (the file stem), in the order of [`rule::BUILTINS`].
    Only(Vec<String>),
}

impl BuiltinRules {
    /// Whether the built-in rule of this name runs.
    pub fn runs(&self, name: &str) -> bool {
        match self {
            BuiltinRules::All => rule::on_by_default(name),
            BuiltinRules::Off => false,
            BuiltinRules::Only(names) => names.iter().any(|n| n == name),
        }
    }

    /// Whether any built-in rule runs.
    pub fn any(&self) -> bool {
        rule::BUILTINS.iter().any(|(name, _, _)| self.runs(name))
    }
}

/// `[daemon]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Daemon {
    /// `daemon.status_file` (string, absolute path; default `"/run/wwatchd/status.json"`):
    /// where the daemon writes its counters every 5 seconds and at exit (`wwatchd status`
    /// reads it).
    pub status_file: PathBuf,
    /// `daemon.summary_interval` (integer seconds, 1-86400; default 60): how often the
    /// daemon logs a diagnostic summary of its counters.
    pub summary_interval: Duration,
    /// `daemon.user` (string, a user name; default `""`: stay the user it was started as):
    /// started as root, after opening the audit sockets the daemon switches to this user,
    /// keeping only CAP_AUDIT_READ and CAP_AUDIT_CONTROL. Under systemd the unit's `User=`
    /// does this instead.
    pub user: Option<String>,
    /// `daemon.state_dir` (string, absolute path; default `"/var/lib/wwatchd"`): where the
    /// daemon keeps what must survive a restart besides the spool: the terms of the
    /// new_terms rules (`new_terms.bin`). Created 0700 if missing; refused if world-writable
    /// or owned by another user.
    pub state_dir: PathBuf,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            input: Input {
                rcvbuf: DEFAULT_RCVBUF,
            },
            output: Output {
                transport: Transport::default(),
                facility: Facility::Auth,
                max_message_bytes: 8192,
                queue_capacity: 10_000,
                spool: Some(SpoolConfig::default()),
            },
            rules: Rules {
                dir: PathBuf::from(DEFAULT_RULES_DIR),
                builtin: BuiltinRules::All,
                watch_dirs: Vec::new(),
                world_writable_by_mode: false,
                reconcile_interval: Duration::from_secs(30),
            },
            daemon: Daemon {
                status_file: PathBuf::from("/run/wwatchd/status.json"),
                summary_interval: Duration::from_secs(60),
                user: None,
                state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            },
            budget: Budget::default(),
            exceptions: Vec::new(),
            rule_refs_at: Vec::new(),
        }
    }
}

/// One configuration error: `FILE:LINE: key `K`: what is wrong; allowed: ...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// `FILE` or `FILE:LINE`; empty when the message carries its own location (rule files).
    pub at: String,
    /// The dotted key, when the error is about one.
    pub key: Option<String>,
    /// What is wrong, and what is allowed.
    pub message: String,
}

impl ConfigError {
    pub fn new(
        at: impl Into<String>,
        key: Option<&str>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            at: at.into(),
            key: key.map(str::to_owned),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.at.is_empty() {
            write!(f, "{}: ", self.at)?;
        }
        if let Some(k) = &self.key {
            write!(f, "key `{k}`: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Every error found, one per line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Parses and validates a configuration file's text. `origin` names the file in messages.
pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigErrors> {
    let (cfg, errors) = parse_partial(text, origin);
    if errors.is_empty() {
        Ok(cfg)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// What the command line says that overrides the file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--rule FILE`: exactly these rule files, instead of `rules.dir` and the built-in rules.
    pub rule_files: Vec<PathBuf>,
    /// `--watch-dir DIR`: instead of `rules.watch_dirs`.
    pub watch_dirs: Vec<PathBuf>,
    /// `--output`.
    pub transport: Option<Transport>,
    /// `--facility`.
    pub facility: Option<Facility>,
    /// `--rcvbuf`.
    pub rcvbuf: Option<usize>,
    /// `--max-message-bytes`.
    pub max_message_bytes: Option<usize>,
    /// `--status-file`.
    pub status_file: Option<PathBuf>,
    /// `--summary-interval`, seconds.
    pub summary_interval: Option<u64>,
    /// `--user`.
    pub user: Option<String>,
    /// `--spool-dir` (`none`: no disk spool).
    pub spool_dir: Option<String>,
    /// `--spool-max-bytes`.
    pub spool_max_bytes: Option<u64>,
}

impl Overrides {
    /// Applies the command line over the file's settings.
    pub fn apply(&self, c: &mut Config) {
        if !self.watch_dirs.is_empty() {
            c.rules.watch_dirs = self.watch_dirs.clone();
        }
        if let Some(t) = &self.transport {
            c.output.transport = t.clone();
        }
        if let Some(f) = self.facility {
            c.output.facility = f;
        }
        if let Some(r) = self.rcvbuf {
            c.input.rcvbuf = r;
        }
        if let Some(m) = self.max_message_bytes {
            c.output.max_message_bytes = m;
        }
        if let Some(p) = &self.status_file {
            c.daemon.status_file = p.clone();
        }
        if let Some(s) = self.summary_interval {
            c.daemon.summary_interval = Duration::from_secs(s.max(1));
        }
        if let Some(u) = &self.user {
            c.daemon.user = Some(u.clone()).filter(|u| !u.is_empty());
        }
        match self.spool_dir.as_deref() {
            Some("none") => c.output.spool = None,
            Some(dir) => {
                c.output.spool.get_or_insert_with(SpoolConfig::default).dir = PathBuf::from(dir)
            }
            None => {}
        }
        if let (Some(m), Some(sp)) = (self.spool_max_bytes, c.output.spool.as_mut()) {
            sp.max_bytes = m;
        }
    }
}

/// Where the configuration comes from, kept so that SIGHUP can read it again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// The configuration file.
    pub path: PathBuf,
    /// Named with `--config`: then it must exist. The default file may be absent.
    pub explicit: bool,
    pub overrides: Overrides,
}

impl Source {
    /// `--config FILE`, or the default file when `None`.
    pub fn new(config: Option<PathBuf>, overrides: Overrides) -> Source {
        Source {
            explicit: config.is_some(),
            path: config.unwrap_or_else(|| PathBuf::from(DEFAULT_PATH)),
            overrides,
        }
    }
}

/// A loaded, validated configuration with its rules.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The settings, command-line overrides applied.
    pub config: Config,
    /// The detection rules, in load order: the built-in one, then the directory's files.
    pub rules: Vec<Rule>,
    /// The configuration file read, `None` when the default one is absent.
    pub file: Option<PathBuf>,
    /// Findings that do not stop wwatchd (a file writable by a group, ...).
    pub warnings: Vec<String>,
}

impl Loaded {
    /// A fresh policy (exceptions and budget) for these rules.
    pub fn policy(&self) -> Policy {
        let ids: Vec<&str> = self.rules.iter().map(|r| r.meta.rule_id.as_str()).collect();
        Policy::new(self.config.exceptions.clone(), self.config.budget, &ids)
    }
}
/// Checks a loaded rule set: duplicate `rule_id`s are errors naming both origins, and an
/// empty set is an error (when `report_empty`: nothing else went wrong first).
pub fn check_rule_set(cfg: &Rules, rules: &[Rule], report_empty: bool) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for r in rules {
        if let Some(first) = seen.insert(&r.meta.rule_id, &r.meta.origin) {
            let hint = if first.starts_with("builtin:") && r.meta.origin.starts_with("builtin:") {
                "; the new_terms version of the seed rule and its v3 alert on the same events: \
                 name only one of them in rules.builtin"
            } else if first.starts_with("builtin:") {
                "; set rules.builtin = false (or leave this rule_id out of its array) to replace \
                 the built-in rule"
            } else {
                ""
            };
            errors.push(ConfigError::new(
                "",
                None,
                format!(
                    "rule_id {:?} is defined twice: in {first} and in {}; allowed: one rule per \
                     rule_id{hint}",
                    r.meta.rule_id, r.meta.origin
                ),
            ));
        }
    }
    if rules.is_empty() && report_empty {
        errors.push(ConfigError::new(
            "",
            Some("rules"),
            format!(
                "no detection rules: the built-in rules are off and {} holds no *.toml rule \
                 file; set rules.builtin = true or add a rule file",
                cfg.dir.display()
            ),
        ));
    }
    errors
}

mod parse;
mod render;
#[cfg(test)]
mod tests;

pub use parse::parse_partial;

//! config: `/etc/wwatchd/wwatchd.toml` and `/etc/wwatchd/rules/*.toml` → a validated
//! [`Config`], the rule set and the [`Policy`] the daemon, `scan` and `check` run with.
//!
//! Two stages, as ntpd-rs does it: a raw serde form with `deny_unknown_fields` (a typo is an
//! error, not a silently ignored key), then validation into typed values. Every key has a
//! default, so no file at all is valid. Every error names the file, the line and the key,
//! and says what is allowed: `FILE:LINE: key `output.facility`: ...; allowed: ...`.
//!
//! [`parse`] is pure. The edge is thin: [`load`] reads the files, refusing a world-writable
//! configuration or rule file (anyone could change what wwatchd alerts on), warning about
//! one writable by a group other than root's.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use toml::Spanned;

use crate::file_event::FileSchema;
use crate::policy::{Budget, Cidr, Exception, Policy, ProcSpec, UserSpec};
use crate::rule::{self, Pattern, Rule};
use crate::syslog::{
    Facility, Format, MAX_UDP_BYTES, MIN_MESSAGE_BYTES, MIN_SPOOL_MAX_BYTES, SpoolConfig, Transport,
};

/// The configuration file read when `--config` is not given. Its absence is not an error.
pub const DEFAULT_PATH: &str = "/etc/wwatchd/wwatchd.toml";
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
    /// `true` runs both, Elastic's "Remote File Creation in World Writeable Directory" and its
    /// sshd-session companion; `false` runs neither; an array runs only the rules it names,
    /// each by its rule_id or its file name under `rules/` without `.toml`.
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
    /// An array: only these, by rule_id, in the order of [`rule::BUILTINS`].
    Only(Vec<String>),
}

impl BuiltinRules {
    /// Whether the built-in rule with this rule_id runs.
    pub fn runs(&self, rule_id: &str) -> bool {
        match self {
            BuiltinRules::All => true,
            BuiltinRules::Off => false,
            BuiltinRules::Only(ids) => ids.iter().any(|i| i == rule_id),
        }
    }

    /// Whether any built-in rule runs.
    pub fn any(&self) -> bool {
        rule::BUILTINS.iter().any(|(_, id, _)| self.runs(id))
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
}

impl Default for Config {
    fn default() -> Config {
        Config {
            input: Input {
                rcvbuf: crate::netlink::DEFAULT_RCVBUF,
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
            },
            budget: Budget::default(),
            exceptions: Vec::new(),
            rule_refs_at: Vec::new(),
        }
    }
}

// ---- raw form -----------------------------------------------------------------------------

/// The top-level tables. Each is deserialised on its own (see [`raw_config`]), so that an
/// error in one does not hide errors in the others.
#[derive(Default)]
struct RawConfig {
    input: RawInput,
    output: RawOutput,
    rules: RawRules,
    daemon: RawDaemon,
    budget: RawBudget,
    exceptions: Vec<Spanned<RawException>>,
}

const SECTIONS: &str = "input, output, rules, daemon, budget, exception";

type Int = Option<Spanned<i64>>;
type Str = Option<Spanned<String>>;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawInput {
    rcvbuf: Int,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawOutput {
    destination: Str,
    format: Str,
    facility: Str,
    max_message_bytes: Int,
    queue_capacity: Int,
    spool_dir: Str,
    spool_max_bytes: Int,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawRules {
    dir: Str,
    builtin: Option<Spanned<RawBuiltin>>,
    watch_dirs: Option<Spanned<List>>,
    world_writable_by_mode: Option<bool>,
    reconcile_interval: Int,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawDaemon {
    status_file: Str,
    summary_interval: Int,
    user: Str,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawBudget {
    max_alerts: Int,
    window: Int,
    dedup: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawException {
    name: Str,
    rule: Str,
    user: Option<Spanned<List>>,
    process: Option<Spanned<List>>,
    path: Option<Spanned<List>>,
    parent: Option<Spanned<List>>,
    source: Option<Spanned<List>>,
}

/// One value of a list key: a string, or an integer (for user ids).
#[derive(Clone, Debug)]
enum Scalar {
    Str(String),
    Int(i64),
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Scalar, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Scalar, E> {
                Ok(Scalar::Str(s.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Scalar, E> {
                Ok(Scalar::Int(n))
            }
        }
        d.deserialize_any(V)
    }
}

/// `rules.builtin`: a boolean, or one name or an array of names.
enum RawBuiltin {
    Bool(bool),
    Names(List),
}

impl<'de> Deserialize<'de> for RawBuiltin {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RawBuiltin, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawBuiltin;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true, false or an array of built-in rule names")
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<RawBuiltin, E> {
                Ok(RawBuiltin::Bool(b))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<RawBuiltin, E> {
                Ok(RawBuiltin::Names(List(vec![(
                    Scalar::Str(s.to_owned()),
                    None,
                )])))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawBuiltin, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = seq.next_element::<Spanned<Scalar>>()? {
                    let span = x.span();
                    v.push((x.into_inner(), Some(span)));
                }
                Ok(RawBuiltin::Names(List(v)))
            }
        }
        d.deserialize_any(V)
    }
}

/// A key that takes one value or an array of them; each value keeps its span when it has
/// its own (inside an array).
#[derive(Debug, Default)]
struct List(Vec<(Scalar, Option<Range<usize>>)>);

impl<'de> Deserialize<'de> for List {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<List, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = List;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<List, E> {
                Ok(List(vec![(Scalar::Str(s.to_owned()), None)]))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<List, E> {
                Ok(List(vec![(Scalar::Int(n), None)]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<List, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = seq.next_element::<Spanned<Scalar>>()? {
                    let span = x.span();
                    v.push((x.into_inner(), Some(span)));
                }
                Ok(List(v))
            }
        }
        d.deserialize_any(V)
    }
}

// ---- errors -------------------------------------------------------------------------------

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
    fn new(at: impl Into<String>, key: Option<&str>, message: impl Into<String>) -> ConfigError {
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

/// 1-based line of byte `offset`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Backquoted words of `s`, in order.
fn backquoted(s: &str) -> Vec<&str> {
    s.split('`').skip(1).step_by(2).collect()
}

/// Makes serde's type names readable.
fn plain_type(t: &str) -> &str {
    match t {
        "i64" | "u64" | "i32" | "u32" | "usize" => "an integer",
        t if t.starts_with("struct ") => "a table",
        t => t,
    }
}

/// A TOML or serde error, with the key it is about and what the key allows. `section` is the
/// table the deserialised value came from.
fn toml_error(origin: &str, text: &str, e: &toml::de::Error, section: Option<&str>) -> ConfigError {
    let at = match e.span() {
        Some(s) => format!("{origin}:{}", line_of(text, s.start)),
        None => origin.to_owned(),
    };
    // toml names the table path only when it has no input to quote; ask for that form.
    let mut bare = e.clone();
    bare.set_input(None);
    let rendered = bare.to_string();
    let inner = rendered
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("in `").and_then(|k| k.strip_suffix('`')));
    let table = match (section, inner) {
        (Some(s), Some(i)) => Some(format!("{s}.{i}")),
        (Some(s), None) => Some(s.to_owned()),
        (None, i) => i.map(str::to_owned),
    };
    let msg = e.message().trim_end();
    if let Some(rest) = msg.strip_prefix("unknown field ") {
        let words = backquoted(rest);
        if let Some((unknown, allowed)) = words.split_first() {
            let key = match &table {
                Some(t) => format!("{t}.{unknown}"),
                None => (*unknown).to_owned(),
            };
            return ConfigError::new(
                at,
                Some(&key),
                format!("unknown key; allowed: {}", allowed.join(", ")),
            );
        }
    }
    if let Some(rest) = msg.strip_prefix("invalid type: ")
        && let Some((found, expected)) = rest.split_once(", expected ")
    {
        return ConfigError::new(
            at,
            table.as_deref(),
            format!("wrong type: {found}; allowed: {}", plain_type(expected)),
        );
    }
    ConfigError::new(at, table.as_deref(), msg)
}

// ---- validation ---------------------------------------------------------------------------

struct Check<'a> {
    origin: &'a str,
    text: &'a str,
    errors: Vec<ConfigError>,
}

impl Check<'_> {
    fn at(&self, span: &Range<usize>) -> String {
        format!("{}:{}", self.origin, line_of(self.text, span.start))
    }

    fn err(&mut self, span: &Range<usize>, key: &str, msg: impl Into<String>) {
        let at = self.at(span);
        self.errors.push(ConfigError::new(at, Some(key), msg));
    }

    /// An integer in `lo..=hi`, or `default`.
    fn int(&mut self, v: &Int, key: &str, lo: i64, hi: i64, unit: &str, default: i64) -> i64 {
        match v {
            None => default,
            Some(s) if (lo..=hi).contains(s.get_ref()) => *s.get_ref(),
            Some(s) => {
                self.err(
                    &s.span(),
                    key,
                    format!(
                        "{} is out of range; allowed: {lo} to {hi}{unit}",
                        s.get_ref()
                    ),
                );
                default
            }
        }
    }

    fn seconds(&mut self, v: &Int, key: &str, default: Duration) -> Duration {
        let d = default.as_secs() as i64;
        Duration::from_secs(self.int(v, key, 1, MAX_SECONDS, " seconds", d) as u64)
    }

    fn abs_path(&mut self, v: &Str, key: &str, default: &str) -> PathBuf {
        match v {
            None => PathBuf::from(default),
            Some(s) if s.get_ref().starts_with('/') => PathBuf::from(s.get_ref()),
            Some(s) => {
                self.err(
                    &s.span(),
                    key,
                    format!(
                        "{:?} is not an absolute path; allowed: a path starting with /",
                        s.get_ref()
                    ),
                );
                PathBuf::from(default)
            }
        }
    }

    /// The strings of a list key; integers are refused unless `ints` (user ids).
    fn strings(
        &mut self,
        list: &Spanned<List>,
        key: &str,
        ints: bool,
    ) -> Vec<(Scalar, Range<usize>)> {
        let outer = list.span();
        let mut out = Vec::new();
        for (v, span) in &list.get_ref().0 {
            let span = span.clone().unwrap_or_else(|| outer.clone());
            match v {
                Scalar::Int(n) if !ints => self.err(
                    &span,
                    key,
                    format!("wrong type: integer `{n}`; allowed: a string"),
                ),
                Scalar::Str(s) if s.is_empty() => {
                    self.err(&span, key, "an empty string matches nothing; remove it")
                }
                Scalar::Str(s) => out.push((Scalar::Str(s.clone()), span)),
                Scalar::Int(n) => out.push((Scalar::Int(*n), span)),
            }
        }
        if list.get_ref().0.is_empty() {
            self.err(
                &outer,
                key,
                "an empty list matches nothing; remove the key or name values",
            );
        }
        out
    }
}

/// Parses and validates a configuration file's text. `origin` names the file in messages.
pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigErrors> {
    let (cfg, errors) = parse_partial(text, origin);
    if errors.is_empty() {
        Ok(cfg)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Like [`parse`], but returns the best configuration it could make (defaults in place of
/// bad values) alongside the errors, so that a caller can go on and find more.
fn parse_partial(text: &str, origin: &str) -> (Config, Vec<ConfigError>) {
    let (raw, errors) = raw_config(text, origin);
    let mut c = Check {
        origin,
        text,
        errors,
    };
    let d = Config::default();

    let (lo, hi) = RCVBUF_RANGE;
    let input = Input {
        rcvbuf: c.int(
            &raw.input.rcvbuf,
            "input.rcvbuf",
            lo,
            hi,
            " bytes",
            d.input.rcvbuf as i64,
        ) as usize,
    };

    let output = output(&mut c, &raw.output, &d.output);

    let watch_dirs = match &raw.rules.watch_dirs {
        None => Vec::new(),
        Some(l) if l.get_ref().0.is_empty() => Vec::new(),
        Some(l) => {
            let mut v = Vec::new();
            for (s, span) in c.strings(l, "rules.watch_dirs", false) {
                if let Scalar::Str(s) = s {
                    if s.starts_with('/') {
                        v.push(PathBuf::from(s));
                    } else {
                        c.err(
                            &span,
                            "rules.watch_dirs",
                            format!(
                                "{s:?} is not an absolute path; allowed: paths starting with /"
                            ),
                        );
                    }
                }
            }
            v
        }
    };
    let builtin = match &raw.rules.builtin {
        None => d.rules.builtin.clone(),
        Some(b) => match b.get_ref() {
            RawBuiltin::Bool(true) => BuiltinRules::All,
            RawBuiltin::Bool(false) => BuiltinRules::Off,
            RawBuiltin::Names(names) => {
                let list = Spanned::new(b.span(), List(names.0.clone()));
                let mut ids: Vec<String> = Vec::new();
                for (v, span) in c.strings(&list, "rules.builtin", false) {
                    let Scalar::Str(n) = v else { continue };
                    match rule::BUILTINS
                        .iter()
                        .find(|(name, id, _)| *name == n || *id == n)
                    {
                        Some((_, id, _)) => ids.push((*id).to_owned()),
                        None => {
                            let allowed: Vec<String> = rule::BUILTINS
                                .iter()
                                .map(|(name, id, _)| format!("{name} ({id})"))
                                .collect();
                            c.err(
                                &span,
                                "rules.builtin",
                                format!(
                                    "{n:?} is not a built-in rule; allowed: true, false, or an \
                                     array of these names or rule_ids: {}",
                                    allowed.join(", ")
                                ),
                            );
                        }
                    }
                }
                // In the built-in order, each once.
                BuiltinRules::Only(
                    rule::BUILTINS
                        .iter()
                        .filter(|(_, id, _)| ids.iter().any(|i| i == id))
                        .map(|(_, id, _)| (*id).to_owned())
                        .collect(),
                )
            }
        },
    };
    let rules = Rules {
        dir: c.abs_path(&raw.rules.dir, "rules.dir", DEFAULT_RULES_DIR),
        builtin,
        watch_dirs,
        world_writable_by_mode: raw
            .rules
            .world_writable_by_mode
            .unwrap_or(d.rules.world_writable_by_mode),
        reconcile_interval: c.seconds(
            &raw.rules.reconcile_interval,
            "rules.reconcile_interval",
            d.rules.reconcile_interval,
        ),
    };
    let daemon = Daemon {
        status_file: c.abs_path(
            &raw.daemon.status_file,
            "daemon.status_file",
            "/run/wwatchd/status.json",
        ),
        summary_interval: c.seconds(
            &raw.daemon.summary_interval,
            "daemon.summary_interval",
            d.daemon.summary_interval,
        ),
        user: raw
            .daemon
            .user
            .as_ref()
            .map(|u| u.get_ref().clone())
            .filter(|u| !u.is_empty()),
    };
    let budget = Budget {
        max_alerts: c.int(
            &raw.budget.max_alerts,
            "budget.max_alerts",
            0,
            i64::from(u32::MAX),
            " (0 = no limit)",
            i64::from(d.budget.max_alerts),
        ) as u32,
        window_secs: c.int(
            &raw.budget.window,
            "budget.window",
            1,
            MAX_SECONDS,
            " seconds",
            d.budget.window_secs as i64,
        ) as u64,
        dedup: raw.budget.dedup.unwrap_or(d.budget.dedup),
    };

    let mut exceptions = Vec::new();
    let mut rule_refs_at = Vec::new();
    let mut names: HashMap<String, String> = HashMap::new();
    for e in &raw.exceptions {
        let before = c.errors.len();
        let header = e.span();
        let e = e.get_ref();
        let origin_at = c.at(&header);
        if let Some(n) = &e.name {
            if let Some(first) = names.get(n.get_ref()) {
                let msg = format!(
                    "the name {:?} is already used by the exception at {first}; allowed: a \
                     name no other exception has",
                    n.get_ref()
                );
                c.err(&n.span(), "exception.name", msg);
            } else {
                names.insert(n.get_ref().clone(), origin_at.clone());
            }
        }
        let mut ex = Exception {
            name: e.name.as_ref().map(|n| n.get_ref().clone()),
            rule: e.rule.as_ref().map(|r| r.get_ref().clone()),
            origin: origin_at,
            users: Vec::new(),
            processes: Vec::new(),
            paths: Vec::new(),
            parents: Vec::new(),
            sources: Vec::new(),
        };
        if let Some(l) = &e.user {
            for (v, span) in c.strings(l, "exception.user", true) {
                match v {
                    Scalar::Int(n) => match u32::try_from(n) {
                        Ok(id) => ex.users.push(UserSpec::Id(id)),
                        Err(_) => c.err(
                            &span,
                            "exception.user",
                            format!(
                                "{n} is not a user id; allowed: user names, or ids 0-4294967295"
                            ),
                        ),
                    },
                    Scalar::Str(s) if s.bytes().all(|b| b.is_ascii_digit()) => match s.parse() {
                        Ok(id) => ex.users.push(UserSpec::Id(id)),
                        Err(_) => c.err(
                            &span,
                            "exception.user",
                            format!(
                                "{s} is not a user id; allowed: user names, or ids 0-4294967295"
                            ),
                        ),
                    },
                    Scalar::Str(s) => ex.users.push(UserSpec::Name(s)),
                }
            }
        }
        for (list, key, out) in [
            (&e.process, "exception.process", &mut ex.processes),
            (&e.parent, "exception.parent", &mut ex.parents),
        ] {
            let Some(l) = list else { continue };
            for (v, span) in c.strings(l, key, false) {
                let Scalar::Str(s) = v else { continue };
                if s.contains('/') && !s.starts_with('/') {
                    c.err(
                        &span,
                        key,
                        format!(
                            "{s:?} is neither a process name nor an absolute executable path; \
                             allowed: a name (compared with process.name) or a path starting \
                             with / (compared with process.executable)"
                        ),
                    );
                } else {
                    out.push(ProcSpec::new(&s));
                }
            }
        }
        if let Some(l) = &e.path {
            for (v, span) in c.strings(l, "exception.path", false) {
                let Scalar::Str(s) = v else { continue };
                if s.starts_with('/') || s.starts_with('*') {
                    ex.paths.push(Pattern::new(&s, true));
                } else {
                    c.err(
                        &span,
                        "exception.path",
                        format!(
                            "glob {s:?} can never match: file.path is absolute; allowed: a glob \
                             starting with / or * (`*` any characters including /, `?` one \
                             character, case-insensitive)"
                        ),
                    );
                }
            }
        }
        if let Some(l) = &e.source {
            for (v, span) in c.strings(l, "exception.source", false) {
                let Scalar::Str(s) = v else { continue };
                match s.parse::<Cidr>() {
                    Ok(n) => ex.sources.push(n),
                    Err(why) => c.err(
                        &span,
                        "exception.source",
                        format!(
                            "{why}; allowed: an IPv4 or IPv6 address or network, e.g. \
                             192.0.2.0/24 or 2001:db8::/32"
                        ),
                    ),
                }
            }
        }
        let named = e.user.is_some()
            || e.process.is_some()
            || e.path.is_some()
            || e.parent.is_some()
            || e.source.is_some();
        if !named {
            c.err(
                &header,
                "exception",
                "names no condition, so it would suppress every alert; allowed: at least one of \
                 user, process, path, parent, source (to stop a rule, remove its file or set \
                 rules.builtin = false)",
            );
        }
        if c.errors.len() == before {
            let at = e.rule.as_ref().map(|r| c.at(&r.span()));
            // An exception with an error is left out: half of one would suppress more.
            exceptions.push(ex);
            rule_refs_at.push(at);
        }
    }

    let cfg = Config {
        input,
        output,
        rules,
        daemon,
        budget,
        exceptions,
        rule_refs_at,
    };
    let mut errors = c.errors;
    // In file order; `at` is FILE:LINE with the same FILE throughout.
    errors.sort_by_key(|e| {
        e.at.rsplit_once(':')
            .and_then(|(_, l)| l.parse::<usize>().ok())
            .unwrap_or(0)
    });
    (cfg, errors)
}

/// The raw form, one top-level table (and one `[[exception]]`) at a time: a bad value leaves
/// its table at the defaults (or its exception out) and is reported, and the other tables
/// are still read and checked.
fn raw_config(text: &str, origin: &str) -> (RawConfig, Vec<ConfigError>) {
    use toml::de::{DeTable, DeValue, ValueDeserializer};
    let mut raw = RawConfig::default();
    let mut errors = Vec::new();
    let root = match DeTable::parse(text) {
        Ok(r) => r,
        Err(e) => return (raw, vec![toml_error(origin, text, &e, None)]),
    };
    fn section<'i, T: Deserialize<'i>>(
        v: Spanned<DeValue<'i>>,
        name: &str,
        origin: &str,
        text: &str,
        errors: &mut Vec<ConfigError>,
    ) -> Option<T> {
        match T::deserialize(ValueDeserializer::from(v)) {
            Ok(t) => Some(t),
            Err(e) => {
                errors.push(toml_error(origin, text, &e, Some(name)));
                None
            }
        }
    }
    for (k, v) in root.into_inner() {
        let e = &mut errors;
        match k.get_ref().as_ref() {
            "input" => raw.input = section(v, "input", origin, text, e).unwrap_or_default(),
            "output" => raw.output = section(v, "output", origin, text, e).unwrap_or_default(),
            "rules" => raw.rules = section(v, "rules", origin, text, e).unwrap_or_default(),
            "daemon" => raw.daemon = section(v, "daemon", origin, text, e).unwrap_or_default(),
            "budget" => raw.budget = section(v, "budget", origin, text, e).unwrap_or_default(),
            "exception" => {
                let span = v.span();
                match v.into_inner() {
                    DeValue::Array(items) => {
                        for item in items {
                            if let Some(x) = section(item, "exception", origin, text, e) {
                                raw.exceptions.push(x);
                            }
                        }
                    }
                    other => e.push(ConfigError::new(
                        format!("{origin}:{}", line_of(text, span.start)),
                        Some("exception"),
                        format!(
                            "wrong type: {}; allowed: tables written [[exception]]",
                            other.type_str()
                        ),
                    )),
                }
            }
            unknown => e.push(ConfigError::new(
                format!("{origin}:{}", line_of(text, k.span().start)),
                Some(unknown),
                format!("unknown key; allowed: {SECTIONS}"),
            )),
        }
    }
    (raw, errors)
}

fn output(c: &mut Check<'_>, raw: &RawOutput, d: &Output) -> Output {
    let mut transport = d.transport.clone();
    let mut dest_has_format = false;
    if let Some(dest) = &raw.destination {
        match dest.get_ref().parse::<Transport>() {
            Ok(t) => {
                transport = t;
                dest_has_format = dest.get_ref().contains("?format=");
            }
            Err(e) => c.err(
                &dest.span(),
                "output.destination",
                format!(
                    "{e}; allowed: local, unix:/PATH, udp://HOST:PORT, tcp://HOST:PORT, stdout"
                ),
            ),
        }
    }
    if let Some(f) = &raw.format {
        let allowed = "allowed: auto, rfc3164, rfc5424";
        match f.get_ref().as_str() {
            "auto" => {}
            s => match s.parse::<Format>() {
                Err(_) => c.err(&f.span(), "output.format", format!("{s:?} is not a format; {allowed}")),
                Ok(_) if dest_has_format => c.err(
                    &f.span(),
                    "output.format",
                    format!("the destination already names a format; {allowed}, or remove ?format= from the destination"),
                ),
                Ok(fmt) => match &mut transport {
                    Transport::Local { format, .. }
                    | Transport::Udp { format, .. }
                    | Transport::Tcp { format, .. } => *format = fmt,
                    Transport::Stdout => c.err(
                        &f.span(),
                        "output.format",
                        "stdout writes plain JSON lines, without a syslog header; allowed: auto",
                    ),
                },
            },
        }
    }
    let facility = match &raw.facility {
        None => d.facility,
        Some(f) => match f.get_ref().parse::<Facility>() {
            Ok(x) => x,
            Err(_) => {
                c.err(
                    &f.span(),
                    "output.facility",
                    format!(
                        "{:?} is not a facility; allowed: auth, authpriv, daemon, user, local0, \
                         local1, local2, local3, local4, local5, local6, local7",
                        f.get_ref()
                    ),
                );
                d.facility
            }
        },
    };
    let udp = matches!(transport, Transport::Udp { .. });
    let hi = if udp { MAX_UDP_BYTES as i64 } else { 16 << 20 };
    let unit = if udp { " bytes (over UDP)" } else { " bytes" };
    let max_message_bytes = c.int(
        &raw.max_message_bytes,
        "output.max_message_bytes",
        MIN_MESSAGE_BYTES as i64,
        hi,
        unit,
        d.max_message_bytes as i64,
    ) as usize;
    let queue_capacity = c.int(
        &raw.queue_capacity,
        "output.queue_capacity",
        1,
        MAX_QUEUE,
        " messages",
        d.queue_capacity as i64,
    ) as usize;
    let default_spool = d.spool.clone().unwrap_or_default();
    let spool_max_bytes = c.int(
        &raw.spool_max_bytes,
        "output.spool_max_bytes",
        MIN_SPOOL_MAX_BYTES as i64,
        1 << 40,
        " bytes",
        default_spool.max_bytes as i64,
    ) as u64;
    let spool = match &raw.spool_dir {
        Some(s) if s.get_ref() == "none" => None,
        None if d.spool.is_none() => None,
        v => Some(SpoolConfig {
            dir: c.abs_path(v, "output.spool_dir", &default_spool.dir.to_string_lossy()),
            max_bytes: spool_max_bytes,
        }),
    };
    Output {
        transport,
        facility,
        max_message_bytes,
        queue_capacity,
        spool,
    }
}

// ---- effective settings as TOML -----------------------------------------------------------

fn q(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

fn qp(p: &Path) -> String {
    q(&p.to_string_lossy())
}

fn arr<T>(v: &[T], f: impl Fn(&T) -> String) -> String {
    format!("[{}]", v.iter().map(f).collect::<Vec<_>>().join(", "))
}

impl Config {
    /// Every setting, with its value, as a configuration file that would give this exact
    /// configuration.
    pub fn to_toml(&self) -> String {
        let (dest, format) = match &self.output.transport {
            Transport::Local { path, format } if path == Path::new("/dev/log") => {
                ("local".to_owned(), format.to_string())
            }
            Transport::Local { path, format } => {
                (format!("unix:{}", path.display()), format.to_string())
            }
            Transport::Udp { addr, format } => (format!("udp://{addr}"), format.to_string()),
            Transport::Tcp { addr, format } => (format!("tcp://{addr}"), format.to_string()),
            Transport::Stdout => ("stdout".to_owned(), "auto".to_owned()),
        };
        let mut s = String::new();
        let mut line = |l: String| {
            s.push_str(&l);
            s.push('\n');
        };
        line("[input]".into());
        line(format!("rcvbuf = {}", self.input.rcvbuf));
        line(String::new());
        line("[output]".into());
        line(format!("destination = {}", q(&dest)));
        line(format!("format = {}", q(&format)));
        line(format!(
            "facility = {}",
            q(&self.output.facility.to_string())
        ));
        line(format!(
            "max_message_bytes = {}",
            self.output.max_message_bytes
        ));
        line(format!("queue_capacity = {}", self.output.queue_capacity));
        match &self.output.spool {
            Some(sp) => {
                line(format!("spool_dir = {}", qp(&sp.dir)));
                line(format!("spool_max_bytes = {}", sp.max_bytes));
            }
            None => line("spool_dir = \"none\"".into()),
        }
        line(String::new());
        line("[rules]".into());
        line(format!("dir = {}", qp(&self.rules.dir)));
        line(format!(
            "builtin = {}",
            match &self.rules.builtin {
                BuiltinRules::All => "true".to_owned(),
                BuiltinRules::Off => "false".to_owned(),
                BuiltinRules::Only(ids) => arr(ids, |s| q(s)),
            }
        ));
        line(format!(
            "watch_dirs = {}",
            arr(&self.rules.watch_dirs, |p| qp(p))
        ));
        line(format!(
            "world_writable_by_mode = {}",
            self.rules.world_writable_by_mode
        ));
        line(format!(
            "reconcile_interval = {}",
            self.rules.reconcile_interval.as_secs()
        ));
        line(String::new());
        line("[daemon]".into());
        line(format!("status_file = {}", qp(&self.daemon.status_file)));
        line(format!(
            "summary_interval = {}",
            self.daemon.summary_interval.as_secs()
        ));
        line(format!(
            "user = {}",
            q(self.daemon.user.as_deref().unwrap_or(""))
        ));
        line(String::new());
        line("[budget]".into());
        line(format!("max_alerts = {}", self.budget.max_alerts));
        line(format!("window = {}", self.budget.window_secs));
        line(format!("dedup = {}", self.budget.dedup));
        for e in &self.exceptions {
            line(String::new());
            line(format!("[[exception]]  # {}", e.origin));
            if let Some(n) = &e.name {
                line(format!("name = {}", q(n)));
            }
            if let Some(r) = &e.rule {
                line(format!("rule = {}", q(r)));
            }
            let users = |u: &UserSpec| match u {
                UserSpec::Id(id) => id.to_string(),
                UserSpec::Name(n) => q(n),
            };
            if !e.users.is_empty() {
                line(format!("user = {}", arr(&e.users, users)));
            }
            if !e.processes.is_empty() {
                line(format!(
                    "process = {}",
                    arr(&e.processes, |p| q(&p.to_string()))
                ));
            }
            if !e.paths.is_empty() {
                line(format!("path = {}", arr(&e.paths, |p| q(p.source()))));
            }
            if !e.parents.is_empty() {
                line(format!(
                    "parent = {}",
                    arr(&e.parents, |p| q(&p.to_string()))
                ));
            }
            if !e.sources.is_empty() {
                line(format!(
                    "source = {}",
                    arr(&e.sources, |c| q(&c.to_string()))
                ));
            }
        }
        s
    }

    /// Checks that every exception's `rule` names one of `rules` (by `rule_id`, or by a
    /// name no other rule has) and replaces it with that rule's `rule_id`.
    fn resolve_rule_refs(&mut self, rules: &[Rule]) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        let loaded = || {
            rules
                .iter()
                .map(|r| format!("{} ({:?})", r.meta.rule_id, r.meta.name))
                .collect::<Vec<_>>()
                .join(", ")
        };
        for (e, at) in self.exceptions.iter_mut().zip(&self.rule_refs_at) {
            let Some(want) = e.rule.clone() else { continue };
            let at = at.clone().unwrap_or_else(|| e.origin.clone());
            if rules.iter().any(|r| r.meta.rule_id == want) {
                continue;
            }
            let by_name: Vec<&Rule> = rules.iter().filter(|r| r.meta.name == want).collect();
            match by_name.as_slice() {
                [one] => e.rule = Some(one.meta.rule_id.clone()),
                [] => errors.push(ConfigError::new(
                    at,
                    Some("exception.rule"),
                    format!(
                        "no loaded rule has the rule_id or name {want:?}; allowed: {}",
                        loaded()
                    ),
                )),
                _ => errors.push(ConfigError::new(
                    at,
                    Some("exception.rule"),
                    format!(
                        "{} loaded rules are named {want:?}; name the rule by its rule_id: {}",
                        by_name.len(),
                        by_name
                            .iter()
                            .map(|r| r.meta.rule_id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )),
            }
        }
        errors
    }
}

// ---- loading (the edge) -------------------------------------------------------------------

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
    fn apply(&self, c: &mut Config) {
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

/// Reads `path` after checking that it is safe to trust: an error if anyone may write it,
/// a warning if a group other than root's may, or a user other than root or us owns it.
fn read_checked(
    path: &Path,
    what: &str,
    warnings: &mut Vec<String>,
) -> Result<String, ConfigError> {
    let shown = path.display().to_string();
    let md = std::fs::metadata(path)
        .map_err(|e| ConfigError::new(&shown, None, format!("cannot read the {what}: {e}")))?;
    if let Some(w) = check_mode(&shown, &md, what)? {
        warnings.push(w);
    }
    if !md.is_file() {
        return Err(ConfigError::new(
            &shown,
            None,
            format!("the {what} is not a regular file"),
        ));
    }
    std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(&shown, None, format!("cannot read the {what}: {e}")))
}

/// Refuses a world-writable file or directory; warns about group-writable (by a group other
/// than root's) and foreign ownership.
fn check_mode(
    shown: &str,
    md: &std::fs::Metadata,
    what: &str,
) -> Result<Option<String>, ConfigError> {
    use std::os::unix::fs::MetadataExt;
    let mode = md.mode() & 0o7777;
    if mode & 0o002 != 0 {
        return Err(ConfigError::new(
            shown,
            None,
            format!(
                "refusing a world-writable {what} (mode {mode:04o}): anyone could change what \
                 wwatchd does; run chmod o-w {shown}"
            ),
        ));
    }
    let me = nix::unistd::geteuid().as_raw();
    if mode & 0o020 != 0 && md.gid() != 0 {
        return Ok(Some(format!(
            "{shown}: the {what} is writable by group {} (mode {mode:04o}): its members can \
             change what wwatchd does; consider chmod g-w {shown}",
            md.gid()
        )));
    }
    if md.uid() != 0 && md.uid() != me {
        return Ok(Some(format!(
            "{shown}: the {what} is owned by uid {}, neither root nor the user running wwatchd",
            md.uid()
        )));
    }
    Ok(None)
}

fn load_rule_file(
    path: &Path,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<String>,
) -> Option<Rule> {
    let text = match read_checked(path, "rule file", warnings) {
        Ok(t) => t,
        Err(e) => {
            errors.push(e);
            return None;
        }
    };
    match rule::parse_rule_toml(&text, &path.display().to_string(), &FileSchema) {
        Ok(mut r) => {
            r.meta.from_file = Some(path.to_path_buf());
            Some(r)
        }
        Err(e) => {
            errors.push(ConfigError::new("", None, e.to_string()));
            None
        }
    }
}

/// The rule files of `dir`: `*.toml`, not hidden, in name order. A missing directory has
/// none.
fn rule_dir_files(dir: &Path, warnings: &mut Vec<String>) -> Result<Vec<PathBuf>, ConfigError> {
    let shown = dir.display().to_string();
    let md = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(ConfigError::new(
                &shown,
                Some("rules.dir"),
                format!("cannot read: {e}"),
            ));
        }
    };
    if !md.is_dir() {
        return Err(ConfigError::new(
            &shown,
            Some("rules.dir"),
            "is not a directory",
        ));
    }
    if let Some(w) = check_mode(&shown, &md, "rules directory")? {
        warnings.push(w);
    }
    let rd = std::fs::read_dir(dir)
        .map_err(|e| ConfigError::new(&shown, Some("rules.dir"), format!("cannot read: {e}")))?;
    let mut files: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".toml") && !n.starts_with('.'))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// The rules a configuration names: `overrides` files, or the built-in rules (those on)
/// and the rule directory's files. Duplicate `rule_id`s are errors naming both files.
fn load_rules(
    cfg: &Rules,
    files: &[PathBuf],
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<String>,
) -> Vec<Rule> {
    let mut rules = Vec::new();
    let mut paths = files.to_vec();
    if files.is_empty() {
        match rule::try_builtins_named(&FileSchema, |_, id| cfg.builtin.runs(id)) {
            Ok(v) => rules.extend(v),
            Err(e) => errors.push(ConfigError::new(
                "",
                None,
                format!("a built-in rule does not load: {e}"),
            )),
        }
        if cfg.world_writable_by_mode {
            match rule::try_builtin_by_mode(&FileSchema) {
                Ok(r) => rules.push(r),
                Err(e) => errors.push(ConfigError::new(
                    "",
                    Some("rules.world_writable_by_mode"),
                    format!("the built-in rule does not load: {e}"),
                )),
            }
        }
        match rule_dir_files(&cfg.dir, warnings) {
            Ok(f) => paths = f,
            Err(e) => errors.push(e),
        }
    }
    for p in &paths {
        if let Some(r) = load_rule_file(p, errors, warnings) {
            rules.push(r);
        }
    }
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for r in &rules {
        if let Some(first) = seen.insert(&r.meta.rule_id, &r.meta.origin) {
            let hint = if first.starts_with("builtin:") {
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
    if rules.is_empty() && errors.is_empty() {
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
    rules
}

/// Reads and validates the configuration `source` names, and loads its rules. Every error
/// found is returned, not only the first.
pub fn load(source: &Source) -> Result<Loaded, ConfigErrors> {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let exists = source.explicit || std::fs::symlink_metadata(&source.path).is_ok();
    let (mut config, file) = if exists {
        match read_checked(&source.path, "configuration file", &mut warnings) {
            Ok(text) => {
                let (c, e) = parse_partial(&text, &source.path.display().to_string());
                errors.extend(e);
                (c, Some(source.path.clone()))
            }
            Err(e) => return Err(ConfigErrors(vec![e])),
        }
    } else {
        (Config::default(), None)
    };
    source.overrides.apply(&mut config);
    let rules = load_rules(
        &config.rules,
        &source.overrides.rule_files,
        &mut errors,
        &mut warnings,
    );
    if !rules.is_empty() {
        errors.extend(config.resolve_rule_refs(&rules));
    }
    if errors.is_empty() {
        Ok(Loaded {
            config,
            rules,
            file,
            warnings,
        })
    } else {
        Err(ConfigErrors(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errs(text: &str) -> Vec<String> {
        match parse(text, "w.toml") {
            Ok(c) => panic!("parsed: {c:?}\n{text}"),
            Err(e) => e.0.iter().map(ToString::to_string).collect(),
        }
    }

    fn one(text: &str) -> String {
        let e = errs(text);
        assert_eq!(e.len(), 1, "{e:?}");
        e.into_iter().next().unwrap_or_default()
    }

    fn ok(text: &str) -> Config {
        match parse(text, "w.toml") {
            Ok(c) => c,
            Err(e) => panic!("{e}\n{text}"),
        }
    }

    /// `rules.builtin`: true, false, or an array naming built-in rules by file stem or
    /// rule_id; unknown names and other types are errors naming the line; load_rules loads
    /// exactly the named ones, in the built-in order, and the effective settings print back
    /// the same choice.
    #[test]
    fn builtin_rules_are_chosen_per_rule() {
        const SEED: &str = "3e528511-7316-4a6e-83da-61b5f1c07fd4";
        const COMP: &str = "61f88af8-7b6d-4103-829a-dae6ab96a2b9";
        let pick = |text: &str| ok(text).rules.builtin;
        assert_eq!(pick("[rules]\nbuiltin = true\n"), BuiltinRules::All);
        assert_eq!(pick("[rules]\nbuiltin = false\n"), BuiltinRules::Off);
        assert_eq!(
            pick("[rules]\nbuiltin = [\"remote_file_creation_world_writeable_sshd_session\"]\n"),
            BuiltinRules::Only(vec![COMP.into()])
        );
        assert_eq!(
            pick(&format!(
                "[rules]\nbuiltin = [\"{COMP}\", \"{SEED}\", \"{COMP}\"]\n"
            )),
            BuiltinRules::Only(vec![SEED.into(), COMP.into()])
        );
        assert_eq!(
            pick("[rules]\nbuiltin = \"remote_file_creation_world_writeable\"\n"),
            BuiltinRules::Only(vec![SEED.into()])
        );
        let e =
            one("[rules]\n\nbuiltin = [\"remote_file_creation_world_writeable\",\n  \"sshd\"]\n");
        assert!(
            e.starts_with(
                "w.toml:4: key `rules.builtin`: \"sshd\" is not a built-in rule; allowed:"
            ) && e.contains(SEED)
                && e.contains(COMP),
            "{e}"
        );
        let e = one("[rules]\nbuiltin = 1\n");
        assert!(e.starts_with("w.toml:2: key `rules.builtin`: "), "{e}");
        let e = one("[rules]\nbuiltin = []\n");
        assert!(e.starts_with("w.toml:2: key `rules.builtin`: "), "{e}");

        let ids = |b: BuiltinRules| -> Vec<String> {
            let cfg = Rules {
                dir: PathBuf::from("/nonexistent/wwatchd-test-rules"),
                builtin: b,
                watch_dirs: Vec::new(),
                world_writable_by_mode: false,
                reconcile_interval: Duration::from_secs(30),
            };
            let (mut errors, mut warnings) = (Vec::new(), Vec::new());
            let rules = load_rules(&cfg, &[], &mut errors, &mut warnings);
            if !errors.is_empty() {
                return errors.iter().map(|e| format!("error: {e}")).collect();
            }
            rules.into_iter().map(|r| r.meta.rule_id).collect()
        };
        assert_eq!(ids(BuiltinRules::All), [SEED, COMP]);
        assert_eq!(ids(BuiltinRules::Only(vec![COMP.into()])), [COMP]);
        assert_eq!(ids(BuiltinRules::Only(vec![SEED.into()])), [SEED]);
        let off = ids(BuiltinRules::Off);
        assert!(
            off.len() == 1 && off[0].contains("no detection rules: the built-in rules are off"),
            "{off:?}"
        );
        for text in [
            "[rules]\nbuiltin = false\n",
            "[rules]\nbuiltin = true\n",
            &format!("[rules]\nbuiltin = [\"{COMP}\"]\n"),
        ] {
            let c = ok(text);
            assert_eq!(ok(&c.to_toml()), c, "{text}");
        }
    }

    #[test]
    fn empty_file_is_the_defaults() {
        assert_eq!(ok(""), Config::default());
        assert_eq!(
            ok("# nothing\n\n[input]\n[output]\n[rules]\n[daemon]\n[budget]\n"),
            Config::default()
        );
        let d = Config::default();
        assert_eq!(d.budget.max_alerts, 100);
        assert_eq!(d.budget.window_secs, 300);
        assert!(!d.budget.dedup);
        assert_eq!(d.rules.builtin, BuiltinRules::All);
        assert!(d.exceptions.is_empty());
    }

    #[test]
    fn unknown_keys_name_file_line_key_and_allowed_keys() {
        assert_eq!(
            one("[output]\ndestination = \"local\"\nfacilty = \"auth\"\n"),
            "w.toml:3: key `output.facilty`: unknown key; allowed: destination, format, \
             facility, max_message_bytes, queue_capacity, spool_dir, spool_max_bytes"
        );
        assert_eq!(
            one("\n[ouput]\n"),
            "w.toml:2: key `ouput`: unknown key; allowed: input, output, rules, daemon, budget, \
             exception"
        );
        assert_eq!(
            one("[[exception]]\nuser = \"bob\"\npaths = [\"/tmp/*\"]\n"),
            "w.toml:3: key `exception.paths`: unknown key; allowed: name, rule, user, process, \
             path, parent, source"
        );
    }

    #[test]
    fn wrong_types_say_what_is_allowed() {
        assert_eq!(
            one("[budget]\nmax_alerts = \"100\"\n"),
            "w.toml:2: key `budget.max_alerts`: wrong type: string \"100\"; allowed: an integer"
        );
        assert_eq!(
            one("[budget]\ndedup = \"yes\"\n"),
            "w.toml:2: key `budget.dedup`: wrong type: string \"yes\"; allowed: a boolean"
        );
        assert_eq!(
            one("[output]\n\ndestination = 5\n"),
            "w.toml:3: key `output.destination`: wrong type: integer `5`; allowed: a string"
        );
        assert_eq!(
            one("[[exception]]\nprocess = true\n"),
            "w.toml:2: key `exception.process`: wrong type: boolean `true`; allowed: a string or \
             an array of strings"
        );
        assert_eq!(
            one("[[exception]]\nprocess = [\"scp\",\n  7]\n"),
            "w.toml:3: key `exception.process`: wrong type: integer `7`; allowed: a string"
        );
        let e = one("[output\n");
        assert!(e.starts_with("w.toml:1: "), "{e}");
        assert_eq!(
            one("input = 5\n"),
            "w.toml:1: key `input`: wrong type: integer `5`; allowed: a table"
        );
        assert_eq!(
            one("[exception]\nuser = 1\n"),
            "w.toml:1: key `exception`: wrong type: table; allowed: tables written [[exception]]"
        );
    }

    #[test]
    fn values_out_of_range_or_unknown() {
        assert_eq!(
            one("[input]\nrcvbuf = 10\n"),
            "w.toml:2: key `input.rcvbuf`: 10 is out of range; allowed: 65536 to 1073741824 bytes"
        );
        assert_eq!(
            one("[output]\nfacility = \"kern\"\n"),
            "w.toml:2: key `output.facility`: \"kern\" is not a facility; allowed: auth, \
             authpriv, daemon, user, local0, local1, local2, local3, local4, local5, local6, local7"
        );
        let e = one("[output]\ndestination = \"udp://collector\"\n");
        assert!(
            e.starts_with("w.toml:2: key `output.destination`: ")
                && e.ends_with(
                    "allowed: local, unix:/PATH, udp://HOST:PORT, tcp://HOST:PORT, stdout"
                ),
            "{e}"
        );
        assert_eq!(
            one("[output]\ndestination = \"udp://c:514\"\nmax_message_bytes = 70000\n"),
            "w.toml:3: key `output.max_message_bytes`: 70000 is out of range; allowed: 480 to \
             65507 bytes (over UDP)"
        );
        assert_eq!(
            one("[output]\ndestination = \"stdout\"\nformat = \"rfc5424\"\n"),
            "w.toml:3: key `output.format`: stdout writes plain JSON lines, without a syslog \
             header; allowed: auto"
        );
        assert_eq!(
            one("[output]\nformat = \"json\"\n"),
            "w.toml:2: key `output.format`: \"json\" is not a format; allowed: auto, rfc3164, rfc5424"
        );
        assert_eq!(
            one("[budget]\nwindow = 0\n"),
            "w.toml:2: key `budget.window`: 0 is out of range; allowed: 1 to 86400 seconds"
        );
        assert_eq!(
            one("[rules]\ndir = \"rules\"\n"),
            "w.toml:2: key `rules.dir`: \"rules\" is not an absolute path; allowed: a path \
             starting with /"
        );
        // Every error is reported, not only the first, in file order: one per table or
        // exception for the raw form, then every value.
        assert_eq!(
            errs(
                "[budget]\nwindow = 0\nmax_alerts = -1\n[daemon]\nsummary_interval = 0\n\
                 [output]\nfacilty = 1\n[[exception]]\nuser = true\n[[exception]]\nuser = -1\n\
                 [[exception]]\npath = \"x\"\nsource = \"::1/200\"\n"
            )
            .iter()
            .map(|e| e.split(": ").take(2).collect::<Vec<_>>().join(": "))
            .collect::<Vec<_>>(),
            [
                "w.toml:2: key `budget.window`",
                "w.toml:3: key `budget.max_alerts`",
                "w.toml:5: key `daemon.summary_interval`",
                "w.toml:7: key `output.facilty`",
                "w.toml:9: key `exception.user`",
                "w.toml:11: key `exception.user`",
                "w.toml:13: key `exception.path`",
                "w.toml:14: key `exception.source`",
            ]
        );
    }

    #[test]
    fn output_settings() {
        let c = ok(
            "[output]\ndestination = \"tcp://127.0.0.1:5514\"\nformat = \"rfc3164\"\n\
                    facility = \"local3\"\nmax_message_bytes = 4096\nqueue_capacity = 5\n",
        );
        assert_eq!(
            c.output.transport,
            Transport::Tcp {
                addr: "127.0.0.1:5514".into(),
                format: Format::Rfc3164
            }
        );
        assert_eq!(c.output.facility, Facility::Local3);
        assert_eq!(
            (c.output.max_message_bytes, c.output.queue_capacity),
            (4096, 5)
        );
        let c = ok("[output]\ndestination = \"udp://h:514\"\n");
        assert_eq!(
            c.output.transport,
            Transport::Udp {
                addr: "h:514".into(),
                format: Format::Rfc5424
            }
        );
        let c =
            ok("[output]\ndestination = \"unix:/run/x.sock?format=rfc5424\"\nformat = \"auto\"\n");
        assert_eq!(
            c.output.transport,
            Transport::Local {
                path: "/run/x.sock".into(),
                format: Format::Rfc5424
            }
        );
    }

    #[test]
    fn exceptions_parse_with_every_condition() {
        let c = ok(r#"
[[exception]]
name = "ansible"
rule = "3e528511-7316-4a6e-83da-61b5f1c07fd4"
user = ["deploy", 1005, "1006"]
process = ["sftp-server", "/usr/lib/openssh/sftp-server"]
path = ["/tmp/ansible-tmp-*", "/var/tmp/ansible-tmp-*"]
parent = "sshd"
source = ["192.0.2.0/24", "2001:db8::1"]

[[exception]]
path = "/tmp/ssh-*"
"#);
        assert_eq!(c.exceptions.len(), 2);
        let e = &c.exceptions[0];
        assert_eq!(e.name.as_deref(), Some("ansible"));
        assert_eq!(e.origin, "w.toml:2");
        assert_eq!(
            e.users,
            [
                UserSpec::Name("deploy".into()),
                UserSpec::Id(1005),
                UserSpec::Id(1006)
            ]
        );
        assert_eq!(
            e.processes,
            [
                ProcSpec::Name("sftp-server".into()),
                ProcSpec::Executable("/usr/lib/openssh/sftp-server".into())
            ]
        );
        assert_eq!(e.paths.len(), 2);
        assert!(e.paths[0].is_case_insensitive());
        assert_eq!(e.parents, [ProcSpec::Name("sshd".into())]);
        assert_eq!(e.sources.len(), 2);
        assert_eq!(c.exceptions[1].rule, None);
        assert_eq!(c.exceptions[1].label(1), "exception #2 (w.toml:11)");
        // The effective settings print back to the same configuration.
        let again = ok(&c.to_toml());
        assert_eq!(again.exceptions.len(), 2);
        assert_eq!(again.exceptions[0].users, e.users);
        assert_eq!(again.exceptions[0].processes, e.processes);
        assert_eq!(again.exceptions[0].paths, e.paths);
        assert_eq!(again.exceptions[0].sources, e.sources);
        assert_eq!(again.budget, c.budget);
        assert_eq!(again.output, c.output);
    }

    #[test]
    fn bad_exception_values() {
        assert_eq!(
            one("[[exception]]\nsource = [\"10.0.0.0/8\",\n  \"10.1.0.0/8\"]\n"),
            "w.toml:3: key `exception.source`: \"10.1.0.0/8\" has bits set after the /8 prefix; \
             write the network address (10.0.0.0/8); allowed: an IPv4 or IPv6 address or \
             network, e.g. 192.0.2.0/24 or 2001:db8::/32"
        );
        assert_eq!(
            one("[[exception]]\nsource = \"example.org\"\n"),
            "w.toml:2: key `exception.source`: \"example.org\" is not an IPv4 or IPv6 address; \
             allowed: an IPv4 or IPv6 address or network, e.g. 192.0.2.0/24 or 2001:db8::/32"
        );
        assert_eq!(
            one("[[exception]]\npath = [\"/tmp/*\", \"tmp/ansible-*\"]\n"),
            "w.toml:2: key `exception.path`: glob \"tmp/ansible-*\" can never match: file.path \
             is absolute; allowed: a glob starting with / or * (`*` any characters including /, \
             `?` one character, case-insensitive)"
        );
        assert_eq!(
            one("[[exception]]\npath = []\n"),
            "w.toml:2: key `exception.path`: an empty list matches nothing; remove the key or \
             name values"
        );
        assert_eq!(
            one("[[exception]]\npath = \"\"\n"),
            "w.toml:2: key `exception.path`: an empty string matches nothing; remove it"
        );
        assert_eq!(
            one("[[exception]]\nuser = -1\n"),
            "w.toml:2: key `exception.user`: -1 is not a user id; allowed: user names, or ids \
             0-4294967295"
        );
        assert_eq!(
            one("[[exception]]\nprocess = \"bin/scp\"\n"),
            "w.toml:2: key `exception.process`: \"bin/scp\" is neither a process name nor an \
             absolute executable path; allowed: a name (compared with process.name) or a path \
             starting with / (compared with process.executable)"
        );
        assert_eq!(
            one("\n[[exception]]\nname = \"x\"\nrule = \"r\"\n"),
            "w.toml:2: key `exception`: names no condition, so it would suppress every alert; \
             allowed: at least one of user, process, path, parent, source (to stop a rule, \
             remove its file or set rules.builtin = false)"
        );
        assert_eq!(
            one("[[exception]]\nname = \"a\"\nuser = 1\n[[exception]]\nname = \"a\"\nuser = 2\n"),
            "w.toml:5: key `exception.name`: the name \"a\" is already used by the exception at \
             w.toml:1; allowed: a name no other exception has"
        );
    }

    fn builtin() -> Rule {
        match rule::try_builtin(&FileSchema) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn exception_rules_resolve_by_id_or_name() {
        let mut c = ok(
            "[[exception]]\nrule = \"Remote File Creation in World Writeable Directory\"\nuser = 1\n\
             [[exception]]\nrule = \"3e528511-7316-4a6e-83da-61b5f1c07fd4\"\nuser = 2\n\
             [[exception]]\nuser = 3\n\n[[exception]]\nuser = 4\n\nrule = \"nope\"\n",
        );
        let e = c.resolve_rule_refs(&[builtin()]);
        assert_eq!(
            e.iter().map(ToString::to_string).collect::<Vec<_>>(),
            [
                "w.toml:13: key `exception.rule`: no loaded rule has the rule_id or name \"nope\"; \
              allowed: 3e528511-7316-4a6e-83da-61b5f1c07fd4 (\"Remote File Creation in World \
              Writeable Directory\")"
            ]
        );
        let id = Some("3e528511-7316-4a6e-83da-61b5f1c07fd4".to_owned());
        assert_eq!(c.exceptions[0].rule, id);
        assert_eq!(c.exceptions[1].rule, id);
        assert_eq!(c.exceptions[2].rule, None);
    }

    #[test]
    fn to_toml_round_trips_the_defaults() {
        let d = Config::default();
        let text = d.to_toml();
        assert_eq!(ok(&text), d);
        assert!(
            text.contains("[budget]\nmax_alerts = 100\nwindow = 300\ndedup = false\n"),
            "{text}"
        );
        assert!(
            text.contains("destination = \"local\"\nformat = \"rfc3164\"\n"),
            "{text}"
        );
    }

    /// The shipped `etc/wwatchd.toml`: as shipped (all commented out) it is exactly the
    /// defaults, and every commented key line holds its default.
    #[test]
    fn shipped_file_is_the_defaults() {
        let text = include_str!("../etc/wwatchd.toml");
        assert_eq!(ok(text), Config::default());
        // Uncomment the key lines of the settings (not the exception examples).
        let examples = text.find("#[[exception]]").unwrap_or(text.len());
        let (settings, _) = text.split_at(examples);
        let mut keys = 0;
        let uncommented: String = settings
            .lines()
            .map(|l| match l.strip_prefix('#') {
                Some(k) if k.starts_with(|c: char| c.is_ascii_lowercase()) => {
                    keys += 1;
                    format!("{k}\n")
                }
                _ => format!("{l}\n"),
            })
            .collect();
        assert_eq!(ok(&uncommented), Config::default(), "{uncommented}");
        // Every key is there.
        let listed = Config::default().to_toml();
        let all = listed.lines().filter(|l| l.contains(" = ")).count();
        assert_eq!(keys, all, "keys in the shipped file vs. settings");
    }

    /// The exception examples of the shipped file are valid and do what they say.
    #[test]
    fn shipped_exception_examples_work() {
        use crate::file_event::Text;
        use crate::policy::tests::fe;
        use std::borrow::Cow;
        let text = include_str!("../etc/wwatchd.toml");
        let start = text.find("#[[exception]]").unwrap_or(text.len());
        let examples: String = text[start..]
            .lines()
            .filter_map(|l| l.strip_prefix('#'))
            .filter(|l| !l.starts_with(' ') && !l.is_empty())
            .map(|l| format!("{l}\n"))
            .collect();
        let mut c = ok(&examples);
        assert!(c.exceptions.len() >= 2, "{examples}");
        assert!(c.resolve_rule_refs(&[builtin()]).is_empty());
        let ids = ["3e528511-7316-4a6e-83da-61b5f1c07fd4"];
        let mut p = Policy::new(c.exceptions.clone(), Budget::default(), &ids);
        let with = |path: &'static str, proc_name: &'static str, exe: &'static str| {
            let mut e = fe();
            let t = |s: &'static str| {
                Some(Text {
                    text: Cow::Borrowed(s),
                    raw: None,
                })
            };
            e.path = t(path);
            e.process_name = t(proc_name);
            e.exe = t(exe);
            e
        };
        let sftp = "/usr/lib/openssh/sftp-server";
        fn v(p: &mut Policy, e: crate::file_event::FileEvent<'_>) -> crate::policy::Verdict {
            p.decide(0, &e, &mut |s| panic!("{s:?}"))
        }
        use crate::policy::Verdict::*;
        assert!(matches!(
            v(
                &mut p,
                with(
                    "/tmp/ansible-tmp-1-2/AnsiballZ_ping.py",
                    "sftp-server",
                    sftp
                )
            ),
            Excepted(_)
        ));
        assert!(matches!(
            v(
                &mut p,
                with("/var/tmp/ansible-tmp-9/x", "sftp-server", sftp)
            ),
            Excepted(_)
        ));
        assert!(matches!(
            v(&mut p, with("/tmp/ssh-XXXXabcd", "sshd", "/usr/sbin/sshd")),
            Excepted(_)
        ));
        // Not the same drop by another tool, nor another path by sftp-server.
        assert_eq!(
            v(&mut p, with("/tmp/ansible-tmp-1/x", "scp", "/usr/bin/scp")),
            Send
        );
        assert_eq!(v(&mut p, with("/tmp/payload", "sftp-server", sftp)), Send);
        assert_eq!(
            v(&mut p, with("/tmp/ssh-XXXXabcd", "sftp-server", sftp)),
            Send
        );
    }
}

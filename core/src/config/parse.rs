//! config::parse: the raw serde form of wwatchd.toml and its validation into a [`Config`].

use super::*;

mod exceptions;

use exceptions::exceptions;

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
    state_dir: Str,
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

/// The `rules.builtin` setting, its names checked against [`rule::BUILTINS`].
fn builtin_rules(
    c: &mut Check<'_>,
    raw: &Option<Spanned<RawBuiltin>>,
    d: &BuiltinRules,
) -> BuiltinRules {
    let Some(b) = raw else {
        return d.clone();
    };
    let names = match b.get_ref() {
        RawBuiltin::Bool(true) => return BuiltinRules::All,
        RawBuiltin::Bool(false) => return BuiltinRules::Off,
        RawBuiltin::Names(names) => names,
    };
    let list = Spanned::new(b.span(), List(names.0.clone()));
    let mut names: Vec<&str> = Vec::new();
    for (v, span) in c.strings(&list, "rules.builtin", false) {
        let Scalar::Str(n) = v else { continue };
        // A name selects its rule; a rule_id the default rules with it (the new_terms seed
        // shares the v3 seed's rule_id and is selected by name only).
        let by_name = rule::BUILTINS.iter().find(|(name, _, _)| *name == n);
        let by_id = rule::BUILTINS
            .iter()
            .filter(|(name, id, _)| *id == n && rule::on_by_default(name));
        let found: Vec<&str> = by_name
            .into_iter()
            .chain(by_id)
            .map(|(n, _, _)| *n)
            .collect();
        if found.is_empty() {
            let allowed: Vec<String> = rule::BUILTINS
                .iter()
                .map(|(name, id, _)| match rule::on_by_default(name) {
                    true => format!("{name} ({id})"),
                    false => format!("{name} (by name only)"),
                })
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
        } else {
            names.extend(found);
        }
    }
    // In the built-in order, each once.
    BuiltinRules::Only(
        rule::BUILTINS
            .iter()
            .filter(|(name, _, _)| names.contains(name))
            .map(|(name, _, _)| (*name).to_owned())
            .collect(),
    )
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

/// Like [`parse`], but returns the best configuration it could make (defaults in place of
/// bad values) alongside the errors, so that a caller can go on and find more.
pub fn parse_partial(text: &str, origin: &str) -> (Config, Vec<ConfigError>) {
    let (raw, errors) = raw_config(text, origin);
    let mut c = Check {
        origin,
        text,
        errors,
    };
    let d = Config::default();

    let input = input(&mut c, &raw.input, &d.input);
    let output = output(&mut c, &raw.output, &d.output);
    let rules = rules(&mut c, &raw.rules, &d.rules);
    let daemon = daemon(&mut c, &raw.daemon, &d.daemon);
    let budget = budget(&mut c, &raw.budget, &d.budget);
    let (exceptions, rule_refs_at) = exceptions(&mut c, &raw.exceptions);

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

fn input(c: &mut Check<'_>, raw: &RawInput, d: &Input) -> Input {
    let (lo, hi) = RCVBUF_RANGE;
    Input {
        rcvbuf: c.int(
            &raw.rcvbuf,
            "input.rcvbuf",
            lo,
            hi,
            " bytes",
            d.rcvbuf as i64,
        ) as usize,
    }
}

fn rules(c: &mut Check<'_>, raw: &RawRules, d: &Rules) -> Rules {
    let watch_dirs = watch_dirs(c, raw.watch_dirs.as_ref());
    Rules {
        dir: c.abs_path(&raw.dir, "rules.dir", DEFAULT_RULES_DIR),
        builtin: builtin_rules(c, &raw.builtin, &d.builtin),
        watch_dirs,
        world_writable_by_mode: raw
            .world_writable_by_mode
            .unwrap_or(d.world_writable_by_mode),
        reconcile_interval: c.seconds(
            &raw.reconcile_interval,
            "rules.reconcile_interval",
            d.reconcile_interval,
        ),
    }
}

fn watch_dirs(c: &mut Check<'_>, raw: Option<&Spanned<List>>) -> Vec<PathBuf> {
    match raw {
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
    }
}

fn daemon(c: &mut Check<'_>, raw: &RawDaemon, d: &Daemon) -> Daemon {
    Daemon {
        status_file: c.abs_path(
            &raw.status_file,
            "daemon.status_file",
            "/run/wwatchd/status.json",
        ),
        summary_interval: c.seconds(
            &raw.summary_interval,
            "daemon.summary_interval",
            d.summary_interval,
        ),
        user: raw
            .user
            .as_ref()
            .map(|u| u.get_ref().clone())
            .filter(|u| !u.is_empty()),
        state_dir: c.abs_path(&raw.state_dir, "daemon.state_dir", DEFAULT_STATE_DIR),
    }
}

fn budget(c: &mut Check<'_>, raw: &RawBudget, d: &Budget) -> Budget {
    Budget {
        max_alerts: c.int(
            &raw.max_alerts,
            "budget.max_alerts",
            0,
            i64::from(u32::MAX),
            " (0 = no limit)",
            i64::from(d.max_alerts),
        ) as u32,
        window_secs: c.int(
            &raw.window,
            "budget.window",
            1,
            MAX_SECONDS,
            " seconds",
            d.window_secs as i64,
        ) as u64,
        dedup: raw.dedup.unwrap_or(d.dedup),
    }
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

/// `output.destination` with `output.format` applied.
fn transport(c: &mut Check<'_>, raw: &RawOutput, d: &Output) -> Transport {
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
    transport
}

fn output(c: &mut Check<'_>, raw: &RawOutput, d: &Output) -> Output {
    let transport = transport(c, raw, d);
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

//! config::render: the effective settings as TOML (`wwatchd check`).

use super::*;

fn q(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

fn qp(p: &Path) -> String {
    q(&p.to_string_lossy())
}

fn arr<T>(v: &[T], f: impl Fn(&T) -> String) -> String {
    format!("[{}]", v.iter().map(f).collect::<Vec<_>>().join(", "))
}

/// `output.destination` and `output.format` as written in a configuration file.
fn destination(t: &Transport) -> (String, String) {
    match t {
        Transport::Local { path, format } if path == Path::new("/dev/log") => {
            ("local".to_owned(), format.to_string())
        }
        Transport::Local { path, format } => {
            (format!("unix:{}", path.display()), format.to_string())
        }
        Transport::Udp { addr, format } => (format!("udp://{addr}"), format.to_string()),
        Transport::Tcp { addr, format } => (format!("tcp://{addr}"), format.to_string()),
        Transport::Stdout => ("stdout".to_owned(), "auto".to_owned()),
    }
}

/// One `[[exception]]` table: its header and the keys it sets.
fn exception_lines(e: &Exception) -> Vec<String> {
    let mut out = vec![format!("[[exception]]  # {}", e.origin)];
    if let Some(n) = &e.name {
        out.push(format!("name = {}", q(n)));
    }
    if let Some(r) = &e.rule {
        out.push(format!("rule = {}", q(r)));
    }
    let users = |u: &UserSpec| match u {
        UserSpec::Id(id) => id.to_string(),
        UserSpec::Name(n) => q(n),
    };
    if !e.users.is_empty() {
        out.push(format!("user = {}", arr(&e.users, users)));
    }
    if !e.processes.is_empty() {
        out.push(format!(
            "process = {}",
            arr(&e.processes, |p| q(&p.to_string()))
        ));
    }
    if !e.paths.is_empty() {
        out.push(format!("path = {}", arr(&e.paths, |p| q(p.source()))));
    }
    if !e.parents.is_empty() {
        out.push(format!(
            "parent = {}",
            arr(&e.parents, |p| q(&p.to_string()))
        ));
    }
    if !e.sources.is_empty() {
        out.push(format!(
            "source = {}",
            arr(&e.sources, |c| q(&c.to_string()))
        ));
    }
    out
}

impl Config {
    /// Every setting, with its value, as a configuration file that would give this exact
    /// configuration.
    pub fn to_toml(&self) -> String {
        let (dest, format) = destination(&self.output.transport);
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
        line(format!("state_dir = {}", qp(&self.daemon.state_dir)));
        line(String::new());
        line("[budget]".into());
        line(format!("max_alerts = {}", self.budget.max_alerts));
        line(format!("window = {}", self.budget.window_secs));
        line(format!("dedup = {}", self.budget.dedup));
        for e in &self.exceptions {
            line(String::new());
            for l in exception_lines(e) {
                line(l);
            }
        }
        s
    }

    /// Checks that every exception's `rule` names one of `rules` (by `rule_id`, or by a
    /// name no other rule has) and replaces it with that rule's `rule_id`.
    /// Resolves the exceptions' `rule` references (by id or name) against `rules`.
    pub fn resolve_rule_refs(&mut self, rules: &[Rule]) -> Vec<ConfigError> {
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

//! config (loading): reads `/etc/wwatchd/wwatchd.toml` and `/etc/wwatchd/rules/*.toml`
//! through [`crate::trust`] and hands the text to `wwatchd_core::config`, which parses and
//! validates it. Everything but the reading is pure and lives in the core; this is also the
//! one place rule files are read, for `run`, `check`, `rules` and `scan` alike.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

pub use wwatchd_core::config::*;
use wwatchd_core::file_event::FileSchema;
use wwatchd_core::rule::{self, Rule};

use crate::trust::{self, Owners, TrustError};

fn trust_error(e: TrustError) -> ConfigError {
    ConfigError::new(e.path.display().to_string(), None, e.why)
}

/// Reads and parses one rule file. The file must pass the trust check.
pub fn load_rule_file(path: &Path) -> Result<Rule, ConfigError> {
    let text = trust::read_file(path, "rule file", Owners::current()).map_err(trust_error)?;
    let mut r = rule::parse_rule_toml(&text, &path.display().to_string(), &FileSchema)
        .map_err(|e| ConfigError::new("", None, e.to_string()))?;
    r.meta.from_file = Some(path.to_path_buf());
    Ok(r)
}

/// The rule files of `dir`: `*.toml`, not hidden, in name order. A missing directory has
/// none; one that fails the trust check is an error.
fn rule_dir_files(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let shown = dir.display().to_string();
    let at = |e: std::io::Error| {
        ConfigError::new(&shown, Some("rules.dir"), format!("cannot read: {e}"))
    };
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(at(e)),
        Ok(_) => {}
    }
    // Listed through the checked descriptor, so the directory read is the one checked.
    let fd = trust::open_dir(dir, "rules directory", Owners::current()).map_err(trust_error)?;
    let listed = PathBuf::from(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&fd)
    ));
    let rd = std::fs::read_dir(&listed)
        .or_else(|_| std::fs::read_dir(dir))
        .map_err(at)?;
    let mut files: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".toml") && !n.starts_with('.'))
        .map(|n| dir.join(n))
        .collect();
    files.sort();
    Ok(files)
}

/// The rules a configuration names: `overrides` files, or the built-in rules (those on)
/// and the rule directory's files, checked as a set by [`check_rule_set`].
fn load_rules(cfg: &Rules, files: &[PathBuf], errors: &mut Vec<ConfigError>) -> Vec<Rule> {
    let mut rules = Vec::new();
    let mut paths = files.to_vec();
    if files.is_empty() {
        match rule::try_builtins_named(&FileSchema, |name, _| cfg.builtin.runs(name)) {
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
        match rule_dir_files(&cfg.dir) {
            Ok(f) => paths = f,
            Err(e) => errors.push(e),
        }
    }
    for p in &paths {
        match load_rule_file(p) {
            Ok(r) => rules.push(r),
            Err(e) => errors.push(e),
        }
    }
    errors.extend(check_rule_set(cfg, &rules, errors.is_empty()));
    rules
}

/// Reads and validates the configuration `source` names, and loads its rules. Every error
/// found is returned, not only the first.
pub fn load(source: &Source) -> Result<Loaded, ConfigErrors> {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let exists = source.explicit || std::fs::symlink_metadata(&source.path).is_ok();
    let (mut config, file) = if exists {
        match trust::read_file(&source.path, "configuration file", Owners::current()) {
            Ok(text) => {
                let (c, e) = parse_partial(&text, &source.path.display().to_string());
                errors.extend(e);
                (c, Some(source.path.clone()))
            }
            Err(e) => return Err(ConfigErrors(vec![trust_error(e)])),
        }
    } else {
        (Config::default(), None)
    };
    source.overrides.apply(&mut config);
    let rules = load_rules(&config.rules, &source.overrides.rule_files, &mut errors);
    for r in &rules {
        warnings.extend(rule::kinds::warnings(r));
    }
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
    use std::time::Duration;

    /// load_rules loads exactly the built-in rules `rules.builtin` names, in the built-in
    /// order; with none on and no rule files it is an error that says so.
    #[test]
    fn builtin_rules_are_loaded_per_rule() {
        const SEED: &str = "3e528511-7316-4a6e-83da-61b5f1c07fd4";
        const COMP: &str = "61f88af8-7b6d-4103-829a-dae6ab96a2b9";
        let ids = |b: BuiltinRules| -> Vec<String> {
            let cfg = Rules {
                dir: PathBuf::from("/nonexistent/wwatchd-test-rules"),
                builtin: b,
                watch_dirs: Vec::new(),
                world_writable_by_mode: false,
                reconcile_interval: Duration::from_secs(30),
            };
            let mut errors = Vec::new();
            let rules = load_rules(&cfg, &[], &mut errors);
            if !errors.is_empty() {
                return errors.iter().map(|e| format!("error: {e}")).collect();
            }
            rules.into_iter().map(|r| r.meta.rule_id).collect()
        };
        assert_eq!(ids(BuiltinRules::All), [SEED, COMP]);
        let only =
            |names: &[&str]| BuiltinRules::Only(names.iter().map(|n| n.to_string()).collect());
        assert_eq!(
            ids(only(&["remote_file_creation_world_writeable_sshd_session"])),
            [COMP]
        );
        assert_eq!(ids(only(&["remote_file_creation_world_writeable"])), [SEED]);
        // The v3 seed and its new_terms version together: refused, they alert on the same
        // events under one rule_id.
        let both = ids(only(&[
            "remote_file_creation_world_writeable",
            "remote_file_creation_world_writeable_new_terms",
        ]));
        assert!(
            both.iter().any(|e| e.contains("is defined twice")
                && e.contains("name only one of them in rules.builtin")),
            "{both:?}"
        );
        let nt = ids(only(&["remote_file_creation_world_writeable_new_terms"]));
        assert_eq!(nt, [SEED]);
        let off = ids(BuiltinRules::Off);
        assert!(
            off.len() == 1 && off[0].contains("no detection rules: the built-in rules are off"),
            "{off:?}"
        );
    }
}

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

/// The rules a configuration names: `overrides` files, or the built-in rule (unless off)
/// and the rule directory's files, checked as a set by [`check_rule_set`].
fn load_rules(cfg: &Rules, files: &[PathBuf], errors: &mut Vec<ConfigError>) -> Vec<Rule> {
    let mut rules = Vec::new();
    let mut paths = files.to_vec();
    if files.is_empty() {
        if cfg.builtin {
            match rule::try_builtin(&FileSchema) {
                Ok(r) => rules.push(r),
                Err(e) => errors.push(ConfigError::new(
                    "",
                    None,
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

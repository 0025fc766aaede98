//! The man pages against the code: every subcommand, command-line option and default
//! (from the clap definitions), every configuration key and default (from the
//! configuration parser), every query field (the rule schema), every alert field (real
//! alerts of the golden fixtures and a budget summary) and every daemon counter must be
//! documented, each in its own part of `man/wwatchd.8` or `man/wwatchd.conf.5`.
//!
//! The lists come from the code, never from this file: adding a flag, a key, a field or a
//! counter without documenting it fails here.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use clap::CommandFactory;
use serde_json::Value;
use wwatchd::cli::Cli;

/// A page's mdoc source, with the escapes that matter for matching undone: `\-` is `-`,
/// `\(dq` is `"`, `\e` is `\`, and `\&` (a zero-width guard) is gone.
struct Page {
    name: &'static str,
    lines: Vec<String>,
}

impl Page {
    fn load(name: &'static str) -> Page {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("man").join(name);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let lines = text
            .lines()
            .map(|l| {
                l.replace("\\-", "-")
                    .replace("\\(dq", "\"")
                    .replace("\\&", "")
                    .replace("\\e", "\\")
            })
            .collect();
        Page { name, lines }
    }

    /// The lines from the header `header` (a `.Sh` or `.Ss` line, exactly) to the next
    /// header of the same or a higher level.
    fn block(&self, header: &str) -> Vec<&str> {
        let start = self
            .lines
            .iter()
            .position(|l| l == header)
            .unwrap_or_else(|| panic!("{}: no line `{header}`", self.name));
        let ends: &[&str] = if header.starts_with(".Sh") {
            &[".Sh "]
        } else {
            &[".Sh ", ".Ss "]
        };
        self.lines[start + 1..]
            .iter()
            .take_while(|l| !ends.iter().any(|e| l.starts_with(e)))
            .map(String::as_str)
            .collect()
    }

    fn contains(&self, s: &str) -> bool {
        self.lines.iter().any(|l| l.contains(s))
    }
}

/// Whether a macro line of `block` gives `word` as an argument of the macro `mac`, as in
/// `.It Fl -config Ar FILE`, `.Op Fl -help | -version` or `.It Sy records , events`: an
/// argument belongs to the last macro name before it on the line.
fn has_macro_arg(block: &[&str], mac: &str, word: &str) -> bool {
    let is_macro = |t: &str| {
        let b = t.as_bytes();
        (2..=3).contains(&b.len())
            && b[0].is_ascii_uppercase()
            && b[1..].iter().all(u8::is_ascii_lowercase)
    };
    block.iter().filter(|l| l.starts_with('.')).any(|l| {
        let mut current = "";
        for t in l.split_whitespace() {
            let t = t.strip_prefix('.').unwrap_or(t);
            if is_macro(t) {
                current = t;
            } else if t == word && current == mac {
                return true;
            }
        }
        false
    })
}

/// The item of a `-tag` list whose head gives `key` to the macro `mac` (`.It Ic key`,
/// `.It Fl -flag Ar X`), up to the next item or nested list.
fn item<'a>(block: &[&'a str], mac: &str, key: &str) -> Option<Vec<&'a str>> {
    let start = block
        .iter()
        .position(|l| l.starts_with(".It ") && has_macro_arg(&[l], mac, key))?;
    Some(
        block[start..]
            .iter()
            .enumerate()
            .take_while(|(i, l)| *i == 0 || ![".It", ".Bl", ".El"].iter().any(|m| l.starts_with(m)))
            .map(|(_, l)| *l)
            .collect(),
    )
}

/// `wwatchd <path>` for every subcommand, with its long options and their defaults (clap's,
/// or the `[default: X]` its help text states for options that override the configuration).
struct Sub {
    path: Vec<String>,
    flags: Vec<(String, Option<String>)>,
}

fn subcommands() -> Vec<Sub> {
    fn walk(cmd: &clap::Command, path: &[String], out: &mut Vec<Sub>) {
        for sc in cmd.get_subcommands() {
            let mut p = path.to_vec();
            p.push(sc.get_name().to_owned());
            let flags = sc
                .get_arguments()
                .filter(|a| !matches!(a.get_id().as_str(), "help" | "version"))
                .filter_map(|a| {
                    let long = a.get_long()?.to_owned();
                    let from_clap = a
                        .get_default_values()
                        .first()
                        .map(|v| v.to_string_lossy().into_owned());
                    let help = a.get_help().map(ToString::to_string).unwrap_or_default();
                    let from_help = help.split_once("[default: ").map(|(_, rest)| {
                        rest.split([']', ','])
                            .next()
                            .unwrap_or_default()
                            .trim()
                            .to_owned()
                    });
                    Some((long, from_clap.or(from_help)))
                })
                .collect();
            out.push(Sub {
                path: p.clone(),
                flags,
            });
            walk(sc, &p, out);
        }
    }
    let mut out = Vec::new();
    walk(&Cli::command(), &[], &mut out);
    out
}

#[test]
fn every_subcommand_option_and_default_is_in_wwatchd_8() {
    let page = Page::load("wwatchd.8");
    let subs = subcommands();
    // The derivation itself must see the command line, or this test proves nothing.
    let names: Vec<String> = subs.iter().map(|s| s.path.join(" ")).collect();
    for must in [
        "scan",
        "run",
        "rules",
        "rules print",
        "rules remove",
        "status",
        "check",
    ] {
        assert!(names.iter().any(|n| n == must), "{must} not in {names:?}");
    }
    let n_flags: usize = subs.iter().map(|s| s.flags.len()).sum();
    assert!(n_flags >= 25, "only {n_flags} options found: {names:?}");

    let synopsis = page.block(".Sh SYNOPSIS");
    let mut missing = Vec::new();
    for sub in &subs {
        let top = &sub.path[0];
        let block = page.block(&format!(".Ss wwatchd {top}"));
        let cmd = sub.path.join(" ");
        if sub.path.len() > 1 {
            let leaf = &sub.path[sub.path.len() - 1];
            if !has_macro_arg(&block, "Cm", leaf) {
                missing.push(format!("`{cmd}`: no `Cm {leaf}` under `.Ss wwatchd {top}`"));
            }
            if !has_macro_arg(&synopsis, "Cm", leaf) {
                missing.push(format!("`{cmd}`: not in the SYNOPSIS"));
            }
        } else if !has_macro_arg(&synopsis, "Cm", top) {
            missing.push(format!("`{cmd}`: not in the SYNOPSIS"));
        }
        for (long, default) in &sub.flags {
            let fl = format!("-{long}");
            if !has_macro_arg(&block, "Fl", &fl) {
                missing.push(format!(
                    "`{cmd} --{long}`: no `Fl \\-{long}` in its section"
                ));
            }
            if !has_macro_arg(&synopsis, "Fl", &fl) {
                missing.push(format!("`{cmd} --{long}`: not in the SYNOPSIS"));
            }
            if let Some(d) = default {
                let stated = item(&block, "Fl", &fl).is_some_and(|it| {
                    it.iter()
                        .flat_map(|l| l.split_whitespace())
                        .any(|w| w.trim_matches(|c| ",;.()".contains(c)) == d)
                });
                if !stated {
                    missing.push(format!(
                        "`{cmd} --{long}`: its default {d:?} is not stated in its item"
                    ));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "man/wwatchd.8 misses:\n{}",
        missing.join("\n")
    );
}

/// Every configuration key, by section, from the parser itself: an unknown key in a
/// section is an error that lists the keys the section allows.
fn config_keys() -> Vec<(String, Vec<String>)> {
    fn allowed(text: &str) -> Vec<String> {
        let errors = match wwatchd::config::parse(text, "probe.toml") {
            Ok(_) => panic!("an unknown key was accepted:\n{text}"),
            Err(e) => e.0,
        };
        let msg = &errors
            .first()
            .unwrap_or_else(|| panic!("no error for:\n{text}"))
            .message;
        let list = msg
            .split_once("allowed: ")
            .unwrap_or_else(|| panic!("the error does not list what is allowed: {msg}"))
            .1;
        list.split(", ").map(str::to_owned).collect()
    }
    let sections = allowed("wwatchd_probe_unknown = 1\n");
    sections
        .iter()
        .map(|s| {
            let header = if s == "exception" {
                "[[exception]]".to_owned()
            } else {
                format!("[{s}]")
            };
            let keys = allowed(&format!("{header}\nwwatchd_probe_unknown = 1\n"));
            (s.clone(), keys)
        })
        .collect()
}

#[test]
fn every_configuration_key_and_default_is_in_wwatchd_conf_5() {
    let page = Page::load("wwatchd.conf.5");
    let keys = config_keys();
    let n: usize = keys.iter().map(|(_, k)| k.len()).sum();
    assert!(
        keys.iter()
            .any(|(s, k)| s == "output" && k.iter().any(|k| k == "spool_dir"))
            && n >= 25,
        "the parser's keys were not found: {keys:?}"
    );

    // Defaults as the program states them: the TOML of the default configuration.
    let mut defaults = Vec::new();
    let mut section = String::new();
    for line in wwatchd::config::Config::default().to_toml().lines() {
        if let Some(s) = line.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            section = s.to_owned();
        } else if let Some((k, v)) = line.split_once(" = ") {
            defaults.push((format!("{section}.{k}"), v.to_owned()));
        }
    }
    assert!(defaults.len() >= 15, "{defaults:?}");

    let mut missing = Vec::new();
    for (section, ks) in &keys {
        let header = if section == "exception" {
            ".Ss [[exception]]".to_owned()
        } else {
            format!(".Ss [{section}]")
        };
        let block = page.block(&header);
        for k in ks {
            let dotted = format!("{section}.{k}");
            let Some(it) = item(&block, "Ic", &dotted) else {
                missing.push(format!("`{dotted}`: no `.It Ic {dotted}` under `{header}`"));
                continue;
            };
            // Stated as written in TOML, `Default` then `.Li VALUE`.
            if let Some((_, v)) = defaults.iter().find(|(d, _)| *d == dotted)
                && !has_macro_arg(&it, "Li", v)
            {
                missing.push(format!(
                    "`{dotted}`: its default {v} is not stated (`.Li {v}`) in its item"
                ));
            }
        }
    }
    for (d, _) in &defaults {
        if !keys
            .iter()
            .any(|(s, ks)| ks.iter().any(|k| *d == format!("{s}.{k}")))
        {
            missing.push(format!("`{d}` is printed by check but not a parsed key"));
        }
    }
    assert!(
        missing.is_empty(),
        "man/wwatchd.conf.5 misses:\n{}",
        missing.join("\n")
    );
}

#[test]
fn every_query_field_is_in_wwatchd_conf_5() {
    let page = Page::load("wwatchd.conf.5");
    let block = page.block(".Ss Fields");
    let fields = wwatchd::file_event::FIELDS;
    assert!(fields.len() >= 30, "{fields:?}");
    let missing: Vec<&str> = fields
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| {
            !block
                .iter()
                .any(|l| l.starts_with(".It") && has_macro_arg(&[l], "Ic", name))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "fields of the rule schema not listed under `.Ss Fields` of wwatchd.conf.5: {missing:?}"
    );
}

/// Dotted names of the leaves of a JSON document; arrays are leaves.
fn leaves(prefix: &str, v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(&p, x, out);
            }
        }
        _ => {
            out.insert(prefix.to_owned());
        }
    }
}

#[test]
fn every_alert_field_is_in_wwatchd_conf_5() {
    let page = Page::load("wwatchd.conf.5");
    let mut fields = BTreeSet::new();

    // Real alerts: the binary over every golden fixture.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut logs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    logs.sort();
    assert!(logs.len() >= 5, "{logs:?}");
    let out = Command::new(env!("CARGO_BIN_EXE_wwatchd"))
        .args(["scan", "--no-progress"])
        .args(&logs)
        .output()
        .expect("run wwatchd scan");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut n = 0;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        leaves("", &v, &mut fields);
        n += 1;
    }
    assert!(n >= 10, "only {n} alerts from the fixtures");

    // A budget window's summary alert.
    let rule = wwatchd::rule::try_builtin(&wwatchd::file_event::FileSchema)
        .unwrap_or_else(|e| panic!("{e}"));
    let top = (vec![("x".to_owned(), 2)], 1);
    let summary = wwatchd::policy::WindowSummary {
        rule: 0,
        kind: wwatchd::policy::SummaryKind::ActorStarted("nobody (65534)".into()),
        at_ms: 1_764_294_100_000,
        ceiling: 1000,
        actors: (
            vec![wwatchd::policy::ActorCount {
                actor: "nobody (65534)".into(),
                sent: 100,
                suppressed: 3,
            }],
            0,
        ),
        untracked_actor_alerts: 0,
        start_ms: 1_764_294_000_000,
        end_ms: 1_764_294_300_000,
        sent: 100,
        suppressed: 3,
        duplicates: 1,
        max_alerts: 100,
        window_secs: 300,
        host_name: Some("h".into()),
        paths: top.clone(),
        processes: top.clone(),
        users: top,
    };
    let host = wwatchd::host::local();
    let ctx = wwatchd::alert::RenderCtx {
        host: &host,
        agent_id: Some("a"),
        created_ms: Some(1_764_294_300_001),
    };
    let doc = wwatchd::alert::summary_document(
        &summary,
        &wwatchd::alert::PreparedRule::new(&rule.meta),
        &ctx,
    );
    leaves("", &Value::Object(doc), &mut fields);

    let documented = |f: &str| {
        // `wwatchd.raw` is keyed by ECS field names, which hold dots themselves.
        let f = if f.starts_with("wwatchd.raw.") {
            "wwatchd.raw"
        } else {
            f
        };
        if page.contains(f) {
            return true;
        }
        // A member of a documented object, named in a quote: `top` of `...file.path`.
        match f.rsplit_once('.') {
            Some((parent, last)) => {
                page.contains(parent) && page.lines.iter().any(|l| has_macro_arg(&[l], "Ql", last))
            }
            None => false,
        }
    };
    let missing: Vec<&String> = fields.iter().filter(|f| !documented(f)).collect();
    assert!(
        missing.is_empty(),
        "alert fields not in wwatchd.conf.5: {missing:?}"
    );
}

#[test]
fn every_daemon_counter_is_in_wwatchd_8() {
    let page = Page::load("wwatchd.8");
    let block = page.block(".Sh LOSS ACCOUNTING");
    let counters: Vec<&str> = wwatchd::daemon::stats::all_counters()
        .map(|c| c.name)
        .collect();
    assert!(counters.contains(&"enobufs"), "{counters:?}");
    let missing: Vec<&&str> = counters
        .iter()
        .filter(|c| !has_macro_arg(&block, "Sy", c))
        .collect();
    assert!(
        missing.is_empty(),
        "counters not under LOSS ACCOUNTING in wwatchd.8: {missing:?}"
    );
}

/// `mandoc -Tlint -W warning` prints nothing for either page. tools/test-all.sh installs
/// mandoc; without it this says so and checks nothing.
#[test]
fn pages_are_lint_clean() {
    for name in ["wwatchd.8", "wwatchd.conf.5"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("man").join(name);
        let out = match Command::new("mandoc")
            .args(["-Tlint", "-W", "warning"])
            .arg(&path)
            .output()
        {
            Ok(o) => o,
            Err(e) => {
                eprintln!("mandoc not available ({e}); lint not checked");
                return;
            }
        };
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && text.trim().is_empty(),
            "mandoc -Tlint {name}:\n{text}"
        );
    }
}

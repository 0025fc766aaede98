//! ECS conformance: every field of every alert, event and budget summary that `wwatchd scan`
//! makes from the golden fixtures is checked against the ECS 9.4 field list
//! (`../shared/ecs/ecs_flat.yml`): an ECS field whose JSON value has the field's type (and
//! is an array exactly where ECS normalises the field to one), with a value ECS allows
//! where it lists `allowed_values`; or an Auditbeat auditd-module field under Auditbeat's
//! name; or under `auditd.*` / `wwatchd.*`. Nothing is skipped silently: without the field
//! list the test fails and says where it looked.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The host the golden fixtures are scanned as (tests/golden.rs uses the same).
const HOST: [&str; 4] = [
    "--host",
    "wwcapture",
    "--host-id",
    "5f1f2d8a0c3b4e6f9a7d1c2b3e4f5a60",
];

/// Fields Auditbeat's auditd module writes that ECS does not define (its ECS mapping of
/// the audit ids: auid, suid, fsuid and their groups). All keywords.
const AUDITBEAT: &[&str] = &[
    "user.audit.id",
    "user.audit.name",
    "user.saved.id",
    "user.saved.name",
    "user.saved.group.id",
    "user.saved.group.name",
    "user.filesystem.id",
    "user.filesystem.name",
    "user.filesystem.group.id",
    "user.filesystem.group.name",
];

/// Fields whose ECS description names the values (`file.type`: "File type (file, dir, or
/// symlink)"; `log.level`: "Original log level of the log event", i.e. a level, here a
/// syslog severity's name).
const DESCRIBED: &[(&str, &[&str])] = &[
    ("file.type", &["file", "dir", "symlink"]),
    (
        "log.level",
        &[
            "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
        ],
    ),
];

#[derive(Debug, Default)]
struct EcsField {
    ty: String,
    array: bool,
    allowed: Vec<String>,
}

fn ecs_flat_path() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        manifest.join("../shared/ecs/ecs_flat.yml"),
        PathBuf::from("/work/shared/ecs/ecs_flat.yml"),
    ];
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "the ECS field list is missing: looked for {}; CI puts a copy of shared/ beside \
                 the clone (shared/ecs/ecs_flat.yml, ECS 9.4.0's generated/ecs/ecs_flat.yml)",
                candidates
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" and ")
            )
        })
}

/// The parts of ecs_flat.yml this test needs: each top-level key (a field name) with its
/// `type`, whether `normalize` lists `array`, and the `name`s of its `allowed_values`.
/// The file is generated with a fixed layout: field names at column 0, their attributes
/// at 2 spaces, list items of an attribute at `  - `, an allowed value's keys at 4 spaces.
fn load_ecs() -> BTreeMap<String, EcsField> {
    let path = ecs_flat_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut fields = BTreeMap::new();
    let mut cur: Option<(String, EcsField)> = None;
    let mut section = "";
    for line in text.lines() {
        if !line.starts_with(' ') && line.ends_with(':') && !line.starts_with('-') {
            if let Some((k, f)) = cur.take() {
                fields.insert(k, f);
            }
            let key = line.trim_end_matches(':').trim_matches('\'');
            cur = Some((key.to_owned(), EcsField::default()));
            section = "";
            continue;
        }
        let Some((_, f)) = cur.as_mut() else { continue };
        if let Some(attr) = line.strip_prefix("  ")
            && !attr.starts_with(' ')
            && !attr.starts_with('-')
        {
            let (k, v) = attr.split_once(':').unwrap_or((attr, ""));
            section = match k {
                "normalize" => "normalize",
                "allowed_values" => "allowed",
                "expected_values" => "expected",
                _ => "",
            };
            if k == "type" {
                f.ty = v.trim().to_owned();
            }
            continue;
        }
        match section {
            "normalize" if line.trim() == "- array" => f.array = true,
            "expected" => {
                if let Some(v) = line.strip_prefix("  - ") {
                    f.allowed.push(v.trim().to_owned());
                }
            }
            "allowed" => {
                if let Some(n) = line
                    .strip_prefix("    name: ")
                    .or_else(|| line.strip_prefix("  - name: "))
                {
                    f.allowed.push(n.trim().trim_matches('\'').to_owned());
                }
            }
            _ => {}
        }
    }
    if let Some((k, f)) = cur.take() {
        fields.insert(k, f);
    }
    // Values ECS states in a field's description rather than as allowed_values.
    for (name, values) in DESCRIBED {
        let f = fields.get_mut(*name).expect("an ECS field");
        f.allowed = values.iter().map(|v| (*v).to_owned()).collect();
    }
    // Sanity: the parse found the field list as ECS 9.4 has it.
    assert!(
        fields.len() > 2000,
        "{}: only {} fields",
        path.display(),
        fields.len()
    );
    let kind = &fields["event.kind"];
    assert_eq!(kind.ty, "keyword");
    assert!(kind.allowed.contains(&"alert".to_owned()), "{kind:?}");
    assert!(fields["event.category"].array && !fields["event.kind"].array);
    assert_eq!(fields["host.ip"].ty, "ip");
    assert!(fields["host.os.type"].allowed.contains(&"linux".to_owned()));
    fields
}

fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&p, x, out);
            }
        }
        _ => out.push((prefix.to_owned(), v.clone())),
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fff]Z`, the form Elasticsearch's `strict_date_optional_time` takes.
fn is_iso_date(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|x| x.iter().all(u8::is_ascii_digit));
    let base = b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19);
    let rest = &s[19.min(s.len())..];
    let frac_ok = match rest.strip_suffix('Z') {
        Some("") => true,
        Some(f) => f.len() > 1 && f.starts_with('.') && f[1..].bytes().all(|c| c.is_ascii_digit()),
        None => false,
    };
    base && frac_ok
}

/// Why `v` is not a value of ECS type `ty`, if it is not.
fn type_error(ty: &str, v: &Value) -> Option<String> {
    let ok = match ty {
        "keyword" | "constant_keyword" | "wildcard" | "match_only_text" | "text" => v.is_string(),
        "long" | "integer" | "short" | "byte" | "unsigned_long" => v.is_i64() || v.is_u64(),
        "float" | "double" | "scaled_float" | "half_float" => v.is_number(),
        "boolean" => v.is_boolean(),
        "date" => v.as_str().is_some_and(is_iso_date),
        "ip" => v.as_str().is_some_and(|s| s.parse::<IpAddr>().is_ok()),
        other => {
            return Some(format!(
                "a leaf of ECS type {other}, which this test does not expect"
            ));
        }
    };
    (!ok).then(|| format!("{v} is not a {ty}"))
}

/// Every problem with one document, as `field: problem`.
fn check(doc: &Value, ecs: &BTreeMap<String, EcsField>) -> Vec<String> {
    let mut leaves = Vec::new();
    flatten("", doc, &mut leaves);
    let mut bad = Vec::new();
    for (name, v) in &leaves {
        if name.starts_with("wwatchd.") || name.starts_with("auditd.") {
            continue;
        }
        let (ty, array, allowed) = match ecs.get(name) {
            Some(f) => (f.ty.as_str(), f.array, f.allowed.as_slice()),
            None if AUDITBEAT.contains(&name.as_str()) => ("keyword", false, &[][..]),
            None => {
                bad.push(format!(
                    "{name}: not an ECS field, nor Auditbeat's, nor under auditd.*/wwatchd.*"
                ));
                continue;
            }
        };
        let items: Vec<&Value> = match (v, array) {
            (Value::Array(a), true) => a.iter().collect(),
            (Value::Array(_), false) => {
                bad.push(format!(
                    "{name}: an array, but ECS does not normalise it to one"
                ));
                continue;
            }
            (_, true) => {
                bad.push(format!(
                    "{name}: {v} should be an array (ECS normalises it to one)"
                ));
                continue;
            }
            (_, false) => vec![v],
        };
        for item in items {
            if let Some(e) = type_error(ty, item) {
                bad.push(format!("{name}: {e}"));
            } else if !allowed.is_empty()
                && !allowed.iter().any(|a| item.as_str() == Some(a.as_str()))
            {
                bad.push(format!(
                    "{name}: {item} is not one of ECS's allowed values {allowed:?}"
                ));
            }
            if name.ends_with(".id") && item.as_str() == Some("4294967295") {
                bad.push(format!(
                    "{name}: the unset id 4294967295 (leave the field out)"
                ));
            }
        }
    }
    bad
}

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/fixtures")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    assert!(v.len() >= 10, "{v:?}");
    v
}

fn scan(args: &[&str], files: &[PathBuf]) -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_wwatchd"))
        .arg("scan")
        .arg("--no-progress")
        .args(args)
        .args(files)
        .output()
        .expect("run wwatchd scan");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// A configuration whose budget (1 alert per hour) forces a summary per fixture.
fn budget_config(dir: &Path) -> String {
    let p = dir.join("budget.toml");
    std::fs::write(
        &p,
        format!(
            "[rules]\ndir = \"{}/none\"\n[budget]\nmax_alerts = 1\nwindow = 3600\n",
            dir.display()
        ),
    )
    .unwrap();
    p.to_str().unwrap().to_owned()
}

#[test]
fn every_field_of_every_document_is_ecs_9() {
    let ecs = load_ecs();
    let logs = fixtures();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = budget_config(tmp.path());
    let mut docs = Vec::new();
    // Each fixture on its own (as golden.rs does), as another host and as this one.
    for log in &logs {
        docs.extend(scan(&HOST, std::slice::from_ref(log)));
    }
    docs.extend(scan(&[], &logs));
    docs.extend(scan(&["--events"], &logs));
    let summaries: Vec<Value> = scan(&["--config", &cfg], &logs)
        .into_iter()
        .filter(|d| d["event"]["action"] == "alert-budget-summary")
        .collect();
    assert!(!summaries.is_empty(), "the budget config gave no summary");
    docs.extend(summaries);
    assert!(docs.len() >= 40, "only {} documents", docs.len());

    let mut problems = BTreeSet::new();
    for d in &docs {
        for p in check(d, &ecs) {
            problems.insert(p);
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.into_iter().collect::<Vec<_>>().join("\n")
    );
    for d in &docs {
        assert_eq!(d["ecs"]["version"], "9.4.0");
    }
}

/// The blessed golden files (what `tests/golden.rs` holds the output to) conform too.
#[test]
fn golden_alert_files_are_ecs_9() {
    let ecs = load_ecs();
    let mut problems = BTreeSet::new();
    let mut n = 0;
    for log in fixtures() {
        let text = std::fs::read_to_string(log.with_extension("alerts.jsonl")).unwrap();
        for l in text.lines() {
            n += 1;
            let d: Value = serde_json::from_str(l).unwrap();
            problems.extend(check(&d, &ecs));
        }
    }
    assert!(n >= 20, "{n}");
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.into_iter().collect::<Vec<_>>().join("\n")
    );
}

/// The checker itself: each kind of mistake is found.
#[test]
fn the_checker_finds_each_kind_of_mistake() {
    let ecs = load_ecs();
    let good = serde_json::json!({
        "event": {"kind": "alert", "category": ["file"], "created": "2026-01-02T03:04:05.678Z",
                  "sequence": 5, "risk_score": 47.0},
        "host": {"ip": ["192.0.2.1", "2001:db8::1"]},
        "user": {"audit": {"id": "1001"}},
        "wwatchd": {"anything": [1, {"x": true}]},
    });
    assert_eq!(check(&good, &ecs), Vec::<String>::new());
    for (bad, what) in [
        (
            serde_json::json!({"group": {"effective": {"id": "1"}}}),
            "not an ECS field",
        ),
        (
            serde_json::json!({"event": {"kind": "warning"}}),
            "allowed values",
        ),
        (
            serde_json::json!({"file": {"type": "fifo"}}),
            "allowed values",
        ),
        (
            serde_json::json!({"log": {"level": "medium"}}),
            "allowed values",
        ),
        (
            serde_json::json!({"host": {"os": {"type": "gnu"}}}),
            "allowed values",
        ),
        (
            serde_json::json!({"event": {"category": "file"}}),
            "should be an array",
        ),
        (
            serde_json::json!({"event": {"kind": ["alert"]}}),
            "does not normalise",
        ),
        (
            serde_json::json!({"event": {"sequence": "5"}}),
            "is not a long",
        ),
        (
            serde_json::json!({"event": {"created": "2026-01-02 03:04"}}),
            "is not a date",
        ),
        (serde_json::json!({"host": {"ip": ["nope"]}}), "is not a ip"),
        (
            serde_json::json!({"process": {"pid": 1.5}}),
            "is not a long",
        ),
        (
            serde_json::json!({"user": {"audit": {"id": "4294967295"}}}),
            "unset id",
        ),
    ] {
        let found = check(&bad, &ecs);
        assert!(found.iter().any(|p| p.contains(what)), "{bad}: {found:?}");
    }
}

/// Issue 12's identity fields: in every alert and summary, host.*, event.id (unique),
/// event.created, agent.*; and the ids do not depend on how the log is split into scans.
#[test]
fn every_alert_has_host_identity_and_a_unique_stable_event_id() {
    let logs = fixtures();
    let mut ids = BTreeSet::new();
    let mut n = 0;
    let mut per_file = Vec::new();
    for log in &logs {
        for d in scan(&HOST, std::slice::from_ref(log)) {
            n += 1;
            assert_eq!(d["host"]["name"], "wwcapture", "{d}");
            assert_eq!(d["host"]["id"], HOST[3], "{d}");
            assert_eq!(d["agent"]["type"], "wwatchd");
            assert_eq!(d["agent"]["version"], env!("CARGO_PKG_VERSION"));
            assert_eq!(d["agent"]["id"].as_str().map(str::len), Some(36), "{d}");
            assert_eq!(d["event"]["dataset"], "wwatchd.alert");
            // scan: event.created is the record's time (see wwatchd.conf(5)).
            assert_eq!(d["event"]["created"], d["@timestamp"]);
            let id = d["event"]["id"].as_str().expect("event.id").to_owned();
            assert!(ids.insert(id.clone()), "event.id {id} twice");
            per_file.push(id);
        }
    }
    assert!(n >= 20, "{n}");
    // All fixtures in one scan: the same ids.
    let together: Vec<String> = scan(&HOST, &logs)
        .iter()
        .map(|d| d["event"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        together.iter().collect::<BTreeSet<_>>(),
        per_file.iter().collect::<BTreeSet<_>>()
    );
    // Another host: no id in common.
    let other = [
        HOST[0],
        "other",
        HOST[2],
        "6f1f2d8a0c3b4e6f9a7d1c2b3e4f5a60",
    ];
    for d in scan(&other, &logs) {
        assert!(!ids.contains(d["event"]["id"].as_str().unwrap()), "{d}");
    }
}

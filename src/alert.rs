//! alert: a file event, and the rule it matched, as one ECS JSON document.
//!
//! `netlink → record → event → rule → [alert] → syslog`
//!
//! Field names and types follow ECS (8.x) and Auditbeat's auditd mapping: `user.id` and
//! the other ids are keywords; `process.pid` is a long; `file.mode` is the octal string.
//! Text that was not valid UTF-8 appears with U+FFFD in its ECS field, and its exact bytes
//! appear as lowercase hex under `wwatchd.raw.<ecs field>`, so a consumer can recover it.

#![forbid(unsafe_code)]

use serde_json::{Map, Value, json};

use crate::file_event::{FileEvent, Text};
use crate::rule::RuleMeta;

/// The ECS version the documents follow.
pub const ECS_VERSION: &str = "8.11.0";

/// `@timestamp` as RFC 3339 UTC with milliseconds, from the record's stamp.
pub fn timestamp(sec: u64, msec: u16) -> String {
    let days = (sec / 86_400) as i64;
    let rem = sec % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{msec:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's method).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// Builds one JSON object of nested ECS maps, recording raw bytes as it goes.
struct Doc {
    root: Map<String, Value>,
    raw: Map<String, Value>,
}

impl Doc {
    fn put(&mut self, path: &str, v: Value) {
        let mut cur = &mut self.root;
        let mut parts = path.split('.').peekable();
        while let Some(p) = parts.next() {
            if parts.peek().is_none() {
                cur.insert(p.to_owned(), v);
                return;
            }
            let entry = cur
                .entry(p.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            match entry {
                Value::Object(m) => cur = m,
                _ => return,
            }
        }
    }

    fn text(&mut self, path: &str, t: Option<&Text<'_>>) {
        if let Some(t) = t {
            self.put(path, Value::String(t.as_str().to_owned()));
            if let Some(raw) = &t.raw {
                self.raw.insert(path.to_owned(), Value::String(hex(raw)));
            }
        }
    }

    fn kw(&mut self, path: &str, v: Option<&str>) {
        if let Some(v) = v {
            self.put(path, Value::String(v.to_owned()));
        }
    }
}

/// The event's ECS fields. `kind` is `event` for `--events` output and `alert` for alerts.
pub fn event_document(fe: &FileEvent<'_>, kind: &str) -> Map<String, Value> {
    let mut d = Doc {
        root: Map::new(),
        raw: Map::new(),
    };
    d.put("@timestamp", Value::String(timestamp(fe.sec, fe.msec)));
    d.put("ecs.version", json!(ECS_VERSION));
    d.put("event.kind", json!(kind));
    d.put("event.category", json!(["file"]));
    d.put("event.type", json!(["creation"]));
    d.put("event.action", json!("creation"));
    d.put("event.outcome", json!("success"));
    d.put("event.module", json!("auditd"));
    d.put("event.sequence", json!(fe.serial));
    d.put("host.os.type", json!("linux"));
    d.text("host.name", fe.host_name.as_ref());

    d.text("file.path", fe.path.as_ref());
    d.text("file.name", fe.file_name.as_ref());
    d.text("file.directory", fe.directory.as_ref());
    d.text("file.extension", fe.extension.as_ref());
    d.kw("file.inode", fe.inode);
    d.kw("file.device", fe.device);
    if let Some(m) = fe.mode_string() {
        d.put("file.mode", Value::String(m));
    }
    d.kw("file.type", fe.file_type());
    d.kw("file.uid", fe.ouid);
    d.kw("file.gid", fe.ogid);

    if let Some(pid) = fe.pid {
        d.put("process.pid", json!(pid));
    }
    d.text("process.name", fe.process_name.as_ref());
    d.text("process.executable", fe.exe.as_ref());
    d.text("process.title", fe.title.as_ref());
    if !fe.args.is_empty() {
        d.put(
            "process.args",
            Value::Array(fe.args.iter().map(|a| json!(a.as_str())).collect()),
        );
        d.put("process.args_count", json!(fe.args.len()));
        if fe.args.iter().any(|a| a.raw.is_some()) {
            let raw: Vec<Value> = fe.args.iter().map(|a| json!(hex(a.bytes()))).collect();
            d.raw.insert("process.args".into(), Value::Array(raw));
        }
    }
    d.text("process.working_directory", fe.cwd.as_ref());
    if let Some(ppid) = fe.ppid {
        d.put("process.parent.pid", json!(ppid));
    }
    d.kw("process.parent.name", fe.context.parent_name.as_deref());
    d.kw(
        "process.parent.executable",
        fe.context.parent_executable.as_deref(),
    );

    d.kw("user.id", fe.uid);
    d.text("user.name", fe.user_name.as_ref());
    d.kw("user.effective.id", fe.euid);
    d.kw("user.audit.id", fe.auid);
    d.kw("user.saved.id", fe.suid);
    d.kw("user.filesystem.id", fe.fsuid);
    d.kw("group.id", fe.gid);
    d.text("group.name", fe.group_name.as_ref());
    d.kw("group.effective.id", fe.egid);

    d.kw("source.ip", fe.context.source_ip.as_deref());
    d.kw("source.address", fe.context.source_address.as_deref());
    d.kw("source.domain", fe.context.source_hostname.as_deref());

    if let Some(ses) = fe.ses {
        d.put("auditd.session", json!(ses.to_string()));
    }
    d.put("auditd.data.syscall", json!(fe.syscall));
    d.put("auditd.data.arch", json!(fe.arch.name()));
    d.kw("auditd.data.exit", fe.exit);
    d.kw("auditd.data.tty", fe.tty);
    d.kw(
        "auditd.data.terminal",
        fe.context.session_terminal.as_deref(),
    );
    d.kw("auditd.data.acct", fe.context.session_account.as_deref());
    d.text("tags", fe.key.as_ref());
    if let Some(Value::String(k)) = d.root.remove("tags") {
        d.put("tags", json!([k]));
    }

    d.put("wwatchd.path_origin", json!(fe.path_origin.as_str()));
    if fe.path.is_none() {
        d.text("wwatchd.kernel_name", Some(&fe.kernel_name));
    }
    if !d.raw.is_empty() {
        let raw = std::mem::take(&mut d.raw);
        d.put("wwatchd.raw", Value::Object(raw));
    }
    d.root
}

/// One alert: the event's fields with `rule.*`, `threat.*`, severity and a message.
pub fn alert_document(fe: &FileEvent<'_>, rule: &RuleMeta) -> Map<String, Value> {
    let mut doc = event_document(fe, "alert");
    let mut d = Doc {
        root: std::mem::take(&mut doc),
        raw: Map::new(),
    };
    d.put("rule.id", json!(rule.rule_id));
    d.put("rule.name", json!(rule.name));
    if let Some(v) = rule.version {
        d.put("rule.version", json!(v.to_string()));
    }
    d.put("rule.description", json!(rule.description));
    d.put("rule.ruleset", json!("wwatchd"));
    if let Some(l) = &rule.license {
        d.put("rule.license", json!(l));
    }
    if !rule.author.is_empty() {
        d.put("rule.author", json!(rule.author));
    }
    d.put("event.severity", json!(rule.risk_score));
    d.put("event.risk_score", json!(f64::from(rule.risk_score)));
    d.put("log.level", json!(rule.severity));
    d.put("wwatchd.severity", json!(rule.severity));
    if !rule.threat.is_empty() {
        let mut tactic = (vec![], vec![], vec![]);
        let mut tech = (vec![], vec![], vec![]);
        let mut sub = (vec![], vec![], vec![]);
        for t in &rule.threat {
            tactic.0.push(json!(t.tactic.id));
            tactic.1.push(json!(t.tactic.name));
            tactic.2.push(json!(t.tactic.reference));
            for te in &t.technique {
                tech.0.push(json!(te.id));
                tech.1.push(json!(te.name));
                tech.2.push(json!(te.reference));
                for s in &te.subtechnique {
                    sub.0.push(json!(s.id));
                    sub.1.push(json!(s.name));
                    sub.2.push(json!(s.reference));
                }
            }
        }
        d.put("threat.framework", json!(rule.threat[0].framework));
        d.put("threat.tactic.id", Value::Array(tactic.0));
        d.put("threat.tactic.name", Value::Array(tactic.1));
        d.put("threat.tactic.reference", Value::Array(tactic.2));
        d.put("threat.technique.id", Value::Array(tech.0));
        d.put("threat.technique.name", Value::Array(tech.1));
        d.put("threat.technique.reference", Value::Array(tech.2));
        if !sub.0.is_empty() {
            d.put("threat.technique.subtechnique.id", Value::Array(sub.0));
            d.put("threat.technique.subtechnique.name", Value::Array(sub.1));
            d.put(
                "threat.technique.subtechnique.reference",
                Value::Array(sub.2),
            );
        }
    }
    d.put("message", json!(message(fe, rule)));
    d.root
}

/// A short line for humans: who, with what, created what, from where.
fn message(fe: &FileEvent<'_>, rule: &RuleMeta) -> String {
    let proc_name = fe.process_name.as_ref().map_or("?", |t| t.as_str());
    let user = match (&fe.user_name, fe.uid) {
        (Some(n), Some(id)) => format!("{} ({id})", n.as_str()),
        (None, Some(id)) => format!("uid {id}"),
        _ => "unknown user".into(),
    };
    let path = fe.path.as_ref().map_or_else(
        || format!("{} (directory unresolved)", fe.kernel_name.as_str()),
        |p| p.as_str().to_owned(),
    );
    let from = fe
        .context
        .source_ip
        .as_deref()
        .map(|ip| format!(" from {ip}"))
        .unwrap_or_default();
    format!(
        "{}: {proc_name} (pid {}) as {user}{from} created {path}",
        rule.name,
        fe.pid.unwrap_or(0)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(timestamp(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(timestamp(1_764_294_000, 123), "2025-11-28T01:40:00.123Z");
        assert_eq!(timestamp(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(timestamp(4_102_444_799, 999), "2099-12-31T23:59:59.999Z");
    }

    #[test]
    fn hex_is_lowercase_pairs() {
        assert_eq!(hex(b"\x00\xff/a"), "00ff2f61");
    }

    #[test]
    fn nested_put_builds_objects() {
        let mut d = Doc {
            root: Map::new(),
            raw: Map::new(),
        };
        d.put("a.b.c", json!(1));
        d.put("a.b.d", json!(2));
        d.put("a.e", json!("x"));
        assert_eq!(
            Value::Object(d.root),
            json!({"a": {"b": {"c": 1, "d": 2}, "e": "x"}})
        );
    }
}

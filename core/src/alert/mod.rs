//! alert: a file event, and the rule it matched, as one ECS JSON document.
//!
//! `netlink → record → event → rule → [alert] → syslog`
//!
//! Field names and types follow ECS 9.4 and Auditbeat's auditd mapping (`tests/ecs.rs`
//! checks every field against the ECS field list): `user.id` and the other ids are
//! keywords; `process.pid` is a long; `file.mode` is the octal string. What ECS does not
//! have is under Auditbeat's name (`user.audit.id`, `user.saved.id`...) or `wwatchd.*`.
//! Host facts, the agent id and the wall clock come in as a [`RenderCtx`]; `event.id` is
//! [`crate::ids::alert_id`] of the detection.
//! Text that was not valid UTF-8 appears with U+FFFD in its ECS field, and its exact bytes
//! appear as lowercase hex under `wwatchd.raw.<ecs field>`, so a consumer can recover it.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use crate::file_event::{FileEvent, Text};
use crate::host::HostInfo;
use crate::ids;
use crate::policy::WindowSummary;
use crate::rule::RuleMeta;
use crate::syslog::{SEVERITY_NAMES, SafeFormatter, Severity, render_json};

/// The ECS version the documents follow.
pub const ECS_VERSION: &str = "9.4.0";

/// `agent.version`.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// `@timestamp` as RFC 3339 UTC with milliseconds, from the record's stamp. Written digit by
/// digit: two per alert, where `format!` cost 1,700 instructions each (callgrind).
pub fn timestamp(sec: u64, msec: u16) -> String {
    let days = (sec / 86_400) as i64;
    let rem = sec % 86_400;
    let (y, m, d) = civil_from_days(days);
    let mut s = String::with_capacity(24);
    if (0..=9999).contains(&y) {
        push_digits(&mut s, y as u64, 4);
    } else {
        // Beyond year 9999 (a wrong stamp): the number as it is, never a panic.
        s.push_str(&y.to_string());
    }
    s.push('-');
    push_digits(&mut s, u64::from(m), 2);
    s.push('-');
    push_digits(&mut s, u64::from(d), 2);
    s.push('T');
    push_digits(&mut s, rem / 3600, 2);
    s.push(':');
    push_digits(&mut s, rem % 3600 / 60, 2);
    s.push(':');
    push_digits(&mut s, rem % 60, 2);
    s.push('.');
    push_digits(&mut s, u64::from(msec), 3);
    s.push('Z');
    s
}

/// `v` in decimal at the end of a buffer of zeros: the buffer and where the digits begin.
fn decimal(v: u64) -> ([u8; 20], usize) {
    let mut buf = [b'0'; 20];
    let mut i = buf.len();
    let mut v = v;
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    (buf, i)
}

/// `v` in decimal, zero-padded to at least `width` digits.
fn push_digits(s: &mut String, v: u64, width: usize) {
    let (buf, i) = decimal(v);
    let start = i.min(buf.len().saturating_sub(width));
    for &c in &buf[start..] {
        s.push(char::from(c));
    }
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

fn none<T>(v: &Option<T>) -> bool {
    v.is_none()
}

fn empty<T>(v: &[T]) -> bool {
    v.is_empty()
}

// The document as borrowed structs: serialising them allocates nothing but the output, which
// matters when a scan writes tens of thousands of alerts. Fields are declared in alphabetical
// order, so the text is the same as that of the sorted `serde_json::Map` form.

#[derive(Serialize)]
struct Doc<'a> {
    #[serde(rename = "@timestamp")]
    timestamp: String,
    agent: Agent<'a>,
    auditd: Auditd<'a>,
    ecs: Ecs,
    event: EventF<'a>,
    file: FileF<'a>,
    group: GroupF<'a>,
    host: HostF<'a>,
    #[serde(skip_serializing_if = "none")]
    log: Option<Log>,
    #[serde(skip_serializing_if = "none")]
    message: Option<String>,
    process: ProcessF<'a>,
    #[serde(skip_serializing_if = "Related::is_empty")]
    related: Related<'a>,
    #[serde(skip_serializing_if = "none")]
    rule: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "none")]
    source: Option<SourceF<'a>>,
    #[serde(skip_serializing_if = "empty")]
    tags: Vec<&'a str>,
    #[serde(skip_serializing_if = "none")]
    threat: Option<&'a RawValue>,
    user: UserF<'a>,
    wwatchd: Ww<'a>,
}

#[derive(Serialize)]
struct Id<'a> {
    id: &'a str,
}

#[derive(Serialize)]
struct Agent<'a> {
    #[serde(skip_serializing_if = "none")]
    id: Option<&'a str>,
    #[serde(rename = "type")]
    agent_type: &'static str,
    version: &'static str,
}

#[derive(Serialize)]
struct Auditd<'a> {
    data: AuditdData<'a>,
    #[serde(skip_serializing_if = "none")]
    session: Option<String>,
}

#[derive(Serialize)]
struct AuditdData<'a> {
    #[serde(skip_serializing_if = "none")]
    acct: Option<&'a str>,
    arch: &'a str,
    #[serde(skip_serializing_if = "none")]
    exit: Option<&'a str>,
    syscall: &'a str,
    #[serde(skip_serializing_if = "none")]
    terminal: Option<&'a str>,
    #[serde(skip_serializing_if = "none")]
    tty: Option<&'a str>,
}

#[derive(Serialize)]
struct Ecs {
    version: &'static str,
}

#[derive(Serialize)]
struct EventF<'a> {
    action: &'static str,
    category: [&'static str; 1],
    created: String,
    dataset: &'static str,
    id: String,
    kind: &'a str,
    module: &'static str,
    outcome: &'static str,
    #[serde(skip_serializing_if = "none")]
    risk_score: Option<f64>,
    sequence: u64,
    #[serde(skip_serializing_if = "none")]
    severity: Option<u32>,
    #[serde(rename = "type")]
    kind_type: [&'static str; 1],
}

#[derive(Serialize)]
struct FileF<'a> {
    #[serde(skip_serializing_if = "none")]
    device: Option<&'a str>,
    #[serde(skip_serializing_if = "none")]
    directory: Option<&'a str>,
    #[serde(skip_serializing_if = "none")]
    extension: Option<&'a str>,
    #[serde(skip_serializing_if = "none")]
    gid: Option<&'a str>,
    #[serde(skip_serializing_if = "none")]
    inode: Option<&'a str>,
    #[serde(skip_serializing_if = "none")]
    mode: Option<String>,
    #[serde(skip_serializing_if = "none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "none")]
    path: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "none")]
    file_type: Option<&'a str>,
    #[serde(skip_serializing_if = "none")]
    uid: Option<&'a str>,
    /// Elastic Defend's rename source, `file.Ext.original.*` (renames only).
    #[serde(rename = "Ext", skip_serializing_if = "none")]
    ext: Option<FileExt<'a>>,
}

#[derive(Serialize)]
struct FileExt<'a> {
    original: FileOriginal<'a>,
}

#[derive(Serialize)]
struct FileOriginal<'a> {
    #[serde(skip_serializing_if = "none")]
    extension: Option<&'a str>,
    #[serde(skip_serializing_if = "none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "none")]
    path: Option<&'a str>,
}

/// `file.Ext.original.*` of a rename.
fn original_ext<'a>(fe: &'a FileEvent<'_>) -> Option<FileExt<'a>> {
    fe.original.as_deref().map(|o| FileExt {
        original: FileOriginal {
            extension: o.extension.as_ref().map(|t| t.as_str()),
            name: o.name.as_ref().map(|t| t.as_str()),
            path: o.path.as_ref().map(|t| t.as_str()),
        },
    })
}

#[derive(Serialize)]
struct GroupF<'a> {
    #[serde(skip_serializing_if = "none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "none")]
    name: Option<&'a str>,
}

#[derive(Serialize)]
struct Os<'a> {
    #[serde(skip_serializing_if = "none")]
    family: Option<&'a str>,
    #[serde(skip_serializing_if = "none")]
    full: Option<&'a str>,
    #[serde(skip_serializing_if = "none")]
    kernel: Option<&'a str>,
    #[serde(skip_serializing_if = "none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "none")]
    platform: Option<&'a str>,
    #[serde(rename = "type")]
    os_type: &'static str,
    #[serde(skip_serializing_if = "none")]
    version: Option<&'a str>,
}

#[derive(Serialize)]
struct HostF<'a> {
    #[serde(skip_serializing_if = "none")]
    architecture: Option<&'a str>,
    #[serde(skip_serializing_if = "none")]
    hostname: Option<&'a str>,
    #[serde(skip_serializing_if = "none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "empty")]
    ip: &'a [String],
    #[serde(skip_serializing_if = "none")]
    name: Option<&'a str>,
    os: Os<'a>,
}

#[derive(Serialize)]
struct Log {
    level: &'static str,
}

#[derive(Serialize)]
struct Parent<'a> {
    #[serde(skip_serializing_if = "none")]
    executable: Option<&'a str>,
    #[serde(skip_serializing_if = "none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "none")]
    pid: Option<u32>,
}

#[derive(Serialize)]
struct ProcessF<'a> {
    #[serde(skip_serializing_if = "empty")]
    args: Vec<&'a str>,
    #[serde(skip_serializing_if = "none")]
    args_count: Option<usize>,
    #[serde(skip_serializing_if = "none")]
    executable: Option<&'a str>,
    #[serde(skip_serializing_if = "none")]
    name: Option<&'a str>,
    parent: Parent<'a>,
    #[serde(skip_serializing_if = "none")]
    pid: Option<u32>,
    #[serde(skip_serializing_if = "none")]
    title: Option<&'a str>,
    #[serde(skip_serializing_if = "none")]
    working_directory: Option<&'a str>,
}

/// `related.*`: the values a SIEM pivots on, each once.
#[derive(Serialize, Default)]
struct Related<'a> {
    #[serde(skip_serializing_if = "empty")]
    hosts: Vec<&'a str>,
    #[serde(skip_serializing_if = "empty")]
    ip: Vec<&'a str>,
    #[serde(skip_serializing_if = "empty")]
    user: Vec<&'a str>,
}

impl<'a> Related<'a> {
    fn is_empty(&self) -> bool {
        self.hosts.is_empty() && self.ip.is_empty() && self.user.is_empty()
    }

    fn add(list: &mut Vec<&'a str>, v: Option<&'a str>) {
        if let Some(v) = v.filter(|v| !v.is_empty())
            && !list.contains(&v)
        {
            list.push(v);
        }
    }
}

#[derive(Serialize)]
struct SourceF<'a> {
    #[serde(skip_serializing_if = "none")]
    address: Option<&'a str>,
    #[serde(skip_serializing_if = "none")]
    domain: Option<&'a str>,
    #[serde(skip_serializing_if = "none")]
    ip: Option<&'a str>,
}

/// `user.effective.*`: the euid and, under Auditbeat's name, the egid.
#[derive(Serialize)]
struct Effective<'a> {
    #[serde(skip_serializing_if = "none")]
    group: Option<Id<'a>>,
    #[serde(skip_serializing_if = "none")]
    id: Option<&'a str>,
}

#[derive(Serialize)]
struct UserF<'a> {
    #[serde(skip_serializing_if = "none")]
    audit: Option<Id<'a>>,
    #[serde(skip_serializing_if = "none")]
    effective: Option<Effective<'a>>,
    #[serde(skip_serializing_if = "none")]
    filesystem: Option<Id<'a>>,
    #[serde(skip_serializing_if = "none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "none")]
    saved: Option<Id<'a>>,
}

#[derive(Serialize)]
struct Ww<'a> {
    #[serde(skip_serializing_if = "none")]
    file_type: Option<&'static str>,
    #[serde(skip_serializing_if = "none")]
    kernel_name: Option<&'a str>,
    path_origin: &'static str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    raw: BTreeMap<&'static str, Value>,
    #[serde(skip_serializing_if = "none")]
    rule: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "none")]
    severity: Option<&'a str>,
}

/// A rule's part of every alert (`rule.*`, `threat.*`, severity), rendered once: as values
/// for the budget summaries, and as the JSON text [`write_alert`] copies into each alert
/// (rendering them per alert was a third of an alert's cost).
pub struct PreparedRule {
    rule: Value,
    threat: Option<Value>,
    /// `wwatchd.rule`: the rule's tags and references (ECS has no `rule.tags`).
    extra: Option<Value>,
    /// `rule`, `threat` and `extra` as [`SafeFormatter`] renders them.
    rendered: Rendered,
    id: String,
    name: String,
    severity: String,
    /// `log.level`: the syslog severity the alert is sent with.
    level: &'static str,
    risk_score: u32,
}

impl PreparedRule {
    pub fn new(rule: &RuleMeta) -> PreparedRule {
        let mut r = Map::new();
        if !rule.author.is_empty() {
            r.insert("author".into(), json!(rule.author));
        }
        r.insert("description".into(), json!(rule.description));
        r.insert("id".into(), json!(rule.rule_id));
        if let Some(l) = &rule.license {
            r.insert("license".into(), json!(l));
        }
        r.insert("name".into(), json!(rule.name));
        // ECS `rule.reference` is one URL; all of them are under `wwatchd.rule.references`.
        if let Some(first) = rule.references.first() {
            r.insert("reference".into(), json!(first));
        }
        r.insert("ruleset".into(), json!("wwatchd"));
        if let Some(v) = rule.version {
            r.insert("version".into(), json!(v.to_string()));
        }
        let mut extra = Map::new();
        if !rule.references.is_empty() {
            extra.insert("references".into(), json!(rule.references));
        }
        if !rule.tags.is_empty() {
            extra.insert("tags".into(), json!(rule.tags));
        }
        let sev = Severity::from_rule_severity(&rule.severity, Severity::Warning);
        let rule_v = Value::Object(r);
        let threat = threat(rule);
        let extra = (!extra.is_empty()).then_some(Value::Object(extra));
        PreparedRule {
            rendered: Rendered {
                rule: raw(&rule_v),
                threat: threat.as_ref().map(raw),
                extra: extra.as_ref().map(raw),
            },
            rule: rule_v,
            threat,
            extra,
            id: rule.rule_id.clone(),
            name: rule.name.clone(),
            severity: rule.severity.clone(),
            level: SEVERITY_NAMES[usize::from(sev.code())],
            risk_score: rule.risk_score,
        }
    }
}

/// A rule's JSON parts, rendered.
struct Rendered {
    rule: Box<RawValue>,
    threat: Option<Box<RawValue>>,
    extra: Option<Box<RawValue>>,
}

/// `v` as the alert writer would render it in place: compact, through [`SafeFormatter`].
fn raw(v: &Value) -> Box<RawValue> {
    // render_json's text is JSON (it falls back to "{}" only on a serializer bug).
    RawValue::from_string(render_json(v)).unwrap_or_else(|_| empty_object())
}

fn empty_object() -> Box<RawValue> {
    RawValue::from_string("{}".to_owned()).unwrap_or_default()
}

/// `threat.*`: the rule's MITRE ATT&CK mapping, one array entry per tactic, technique and
/// sub-technique.
fn threat(rule: &RuleMeta) -> Option<Value> {
    let first = rule.threat.first()?;
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
    let mut technique = json!({"id": tech.0, "name": tech.1, "reference": tech.2});
    if !sub.0.is_empty() {
        technique["subtechnique"] = json!({"id": sub.0, "name": sub.1, "reference": sub.2});
    }
    Some(json!({
        "framework": first.framework,
        "tactic": {"id": tactic.0, "name": tactic.1, "reference": tactic.2},
        "technique": technique,
    }))
}

/// What an alert needs from outside the records: the host, the agent, and the wall clock.
#[derive(Clone, Copy, Debug)]
pub struct RenderCtx<'a> {
    /// The host the detector runs for (see [`HostInfo`]); records whose `node=` names
    /// another host get only that name.
    pub host: &'a HostInfo,
    /// `agent.id` ([`crate::ids::agent_id`] of the machine id), where known.
    pub agent_id: Option<&'a str>,
    /// `event.created` in milliseconds since the epoch: when the daemon saw the event.
    /// `None` (scan) uses the record's own time.
    pub created_ms: Option<u64>,
}

impl RenderCtx<'_> {
    /// No host facts, no agent id, record time: what a bare [`crate::detector::Detector`]
    /// and the unit tests use.
    pub const EMPTY: RenderCtx<'static> = RenderCtx {
        host: &EMPTY_HOST,
        agent_id: None,
        created_ms: None,
    };
}

static EMPTY_HOST: HostInfo = HostInfo {
    name: None,
    id: None,
    ip: Vec::new(),
    architecture: None,
    os: crate::host::OsInfo {
        family: None,
        full: None,
        kernel: None,
        name: None,
        platform: None,
        version: None,
    },
    hostname_known: false,
};

/// `host.*` for an event whose record names `node` (or none): the full facts of the
/// detector's host when the record is from it, else only the record's name.
fn host_f<'a>(node: Option<&'a str>, info: &'a HostInfo) -> HostF<'a> {
    let ours = node.is_none() || node == info.name.as_deref();
    if !ours {
        return HostF {
            architecture: None,
            hostname: None,
            id: None,
            ip: &[],
            name: node,
            os: Os {
                family: None,
                full: None,
                kernel: None,
                name: None,
                platform: None,
                os_type: "linux",
                version: None,
            },
        };
    }
    let o = &info.os;
    HostF {
        architecture: info.architecture.as_deref(),
        hostname: info.name.as_deref().filter(|_| info.hostname_known),
        id: info.id.as_deref(),
        ip: &info.ip,
        name: node.or(info.name.as_deref()),
        os: Os {
            family: o.family.as_deref(),
            full: o.full.as_deref(),
            kernel: o.kernel.as_deref(),
            name: o.name.as_deref(),
            platform: o.platform.as_deref(),
            os_type: "linux",
            version: o.version.as_deref(),
        },
    }
}

/// What identifies `host` in ids: its `host.id` where known, else its name.
fn host_key<'a>(host: &HostF<'a>) -> &'a str {
    host.id.or(host.name).unwrap_or("")
}

/// `agent.*`: the wwatchd that made the alert (in `scan`, the one the log is replayed as).
fn agent<'a>(ctx: &RenderCtx<'a>) -> Agent<'a> {
    Agent {
        id: ctx.agent_id,
        agent_type: "wwatchd",
        version: AGENT_VERSION,
    }
}

/// A text field for the document; its exact bytes go under `wwatchd.raw` when not UTF-8.
fn text<'a>(
    t: Option<&'a Text<'_>>,
    path: &'static str,
    raw: &mut BTreeMap<&'static str, Value>,
) -> Option<&'a str> {
    let t = t?;
    if let Some(r) = &t.raw {
        raw.insert(path, Value::String(hex(r)));
    }
    Some(t.as_str())
}

fn id(v: Option<&str>) -> Option<Id<'_>> {
    v.map(|id| Id { id })
}

fn file_f<'a>(fe: &'a FileEvent<'_>, raw: &mut BTreeMap<&'static str, Value>) -> FileF<'a> {
    FileF {
        device: fe.device,
        directory: text(fe.directory.as_ref(), "file.directory", raw),
        extension: text(fe.extension.as_ref(), "file.extension", raw),
        gid: fe.ogid,
        inode: fe.inode,
        mode: fe.mode_string(),
        name: text(fe.file_name.as_ref(), "file.name", raw),
        path: text(fe.path.as_ref(), "file.path", raw),
        file_type: fe.file_type(),
        uid: fe.ouid,
        ext: original_ext(fe),
    }
}

fn process_f<'a>(fe: &'a FileEvent<'_>, raw: &mut BTreeMap<&'static str, Value>) -> ProcessF<'a> {
    let args: Vec<&str> = fe.args.iter().map(|a| a.as_str()).collect();
    if fe.args.iter().any(|a| a.raw.is_some()) {
        raw.insert(
            "process.args",
            Value::Array(fe.args.iter().map(|a| json!(hex(a.bytes()))).collect()),
        );
    }
    let c = &fe.context;
    ProcessF {
        args_count: (!args.is_empty()).then_some(args.len()),
        args,
        executable: text(fe.exe.as_ref(), "process.executable", raw),
        name: text(fe.process_name.as_ref(), "process.name", raw),
        parent: Parent {
            executable: c.parent_executable.as_deref(),
            name: c.parent_name.as_deref(),
            pid: fe.ppid,
        },
        pid: fe.pid,
        title: text(fe.title.as_ref(), "process.title", raw),
        working_directory: text(fe.cwd.as_ref(), "process.working_directory", raw),
    }
}

fn user_f<'a>(fe: &'a FileEvent<'_>, raw: &mut BTreeMap<&'static str, Value>) -> UserF<'a> {
    let effective = (fe.euid.is_some() || fe.egid.is_some()).then(|| Effective {
        group: id(fe.egid),
        id: fe.euid,
    });
    UserF {
        audit: id(fe.auid),
        effective,
        filesystem: id(fe.fsuid),
        id: fe.uid,
        name: text(fe.user_name.as_ref(), "user.name", raw),
        saved: id(fe.suid),
    }
}

fn event_f<'a>(
    fe: &FileEvent<'_>,
    kind: &'a str,
    rule: Option<&PreparedRule>,
    ctx: &RenderCtx<'_>,
    host: &str,
) -> EventF<'a> {
    let created = match ctx.created_ms {
        Some(ms) => timestamp(ms / 1000, (ms % 1000) as u16),
        None => timestamp(fe.sec, fe.msec),
    };
    let path = fe.path.as_ref().unwrap_or(&fe.kernel_name);
    EventF {
        action: fe.action.as_str(),
        category: ["file"],
        created,
        dataset: if rule.is_some() {
            "wwatchd.alert"
        } else {
            "wwatchd.event"
        },
        id: ids::alert_id(&ids::AlertIdentity {
            host,
            sec: fe.sec,
            msec: fe.msec,
            serial: fe.serial,
            rule_id: rule.map_or("", |r| r.id.as_str()),
            path: path.bytes(),
        }),
        kind,
        module: "auditd",
        outcome: "success",
        risk_score: rule.map(|r| f64::from(r.risk_score)),
        sequence: fe.serial,
        severity: rule.map(|r| r.risk_score),
        kind_type: [fe.action.event_type()],
    }
}

fn related<'a>(doc: &Doc<'a>) -> Related<'a> {
    let mut r = Related::default();
    Related::add(&mut r.hosts, doc.host.name);
    if let Some(s) = &doc.source {
        // PAM's `hostname=` is the address itself when it was not resolved.
        Related::add(&mut r.hosts, s.domain.filter(|d| Some(*d) != s.ip));
        Related::add(&mut r.ip, s.ip);
    }
    Related::add(&mut r.user, doc.user.name);
    Related::add(&mut r.user, doc.auditd.data.acct);
    r
}

fn doc<'a>(
    fe: &'a FileEvent<'_>,
    kind: &'a str,
    rule: Option<&'a PreparedRule>,
    ctx: &RenderCtx<'a>,
) -> Doc<'a> {
    let mut raw = BTreeMap::new();
    let c = &fe.context;
    let has_source =
        c.source_ip.is_some() || c.source_address.is_some() || c.source_hostname.is_some();
    let source = has_source.then_some(SourceF {
        address: c.source_address.as_deref(),
        domain: c.source_hostname.as_deref(),
        ip: c.source_ip.as_deref(),
    });
    let host = host_f(text(fe.host_name.as_ref(), "host.name", &mut raw), ctx.host);
    let tags: Vec<&str> = text(fe.key.as_ref(), "tags", &mut raw)
        .into_iter()
        .collect();
    let kernel_name = match fe.path {
        None => text(Some(&fe.kernel_name), "wwatchd.kernel_name", &mut raw),
        Some(_) => None,
    };
    let mut d = Doc {
        timestamp: timestamp(fe.sec, fe.msec),
        agent: agent(ctx),
        auditd: Auditd {
            data: AuditdData {
                acct: c.session_account.as_deref(),
                arch: fe.arch.name(),
                exit: fe.exit,
                syscall: fe.syscall,
                terminal: c.session_terminal.as_deref(),
                tty: fe.tty,
            },
            session: fe.ses.map(|s| s.to_string()),
        },
        ecs: Ecs {
            version: ECS_VERSION,
        },
        event: event_f(fe, kind, rule, ctx, host_key(&host)),
        file: file_f(fe, &mut raw),
        group: GroupF {
            id: fe.gid,
            name: text(fe.group_name.as_ref(), "group.name", &mut raw),
        },
        host,
        log: rule.map(|r| Log { level: r.level }),
        message: rule.map(|r| message(fe, &r.name)),
        process: process_f(fe, &mut raw),
        related: Related::default(),
        rule: rule.map(|r| &*r.rendered.rule),
        source,
        tags,
        threat: rule.and_then(|r| r.rendered.threat.as_deref()),
        user: user_f(fe, &mut raw),
        wwatchd: Ww {
            file_type: fe.special_file_type(),
            kernel_name,
            path_origin: fe.path_origin.as_str(),
            raw: BTreeMap::new(),
            rule: rule.and_then(|r| r.rendered.extra.as_deref()),
            severity: rule.map(|r| r.severity.as_str()),
        },
    };
    d.related = related(&d);
    d.wwatchd.raw = raw;
    d
}

/// Append one alert as JSON (no newline) to `out`, written through [`SafeFormatter`] (which
/// also escapes C1 controls and line separators), as the syslog sink sends it. The rule's
/// parts were rendered through it once, in [`PreparedRule::new`].
pub fn write_alert(
    out: &mut Vec<u8>,
    fe: &FileEvent<'_>,
    rule: &PreparedRule,
    ctx: &RenderCtx<'_>,
) -> serde_json::Result<()> {
    let d = doc(fe, "alert", Some(rule), ctx);
    let start = out.len();
    if Serialize::serialize(&d, &mut json::Writer { out }).is_ok() {
        return Ok(());
    }
    // A shape the fast writer refuses: the same text through serde_json.
    out.truncate(start);
    let mut ser = serde_json::Serializer::with_formatter(out, SafeFormatter);
    Serialize::serialize(&d, &mut ser)
}

/// Append one plain creation event as JSON (no newline) to `out`, through `formatter`.
pub fn write_event_with<F: serde_json::ser::Formatter>(
    out: &mut Vec<u8>,
    fe: &FileEvent<'_>,
    ctx: &RenderCtx<'_>,
    formatter: F,
) -> serde_json::Result<()> {
    let mut ser = serde_json::Serializer::with_formatter(out, formatter);
    Serialize::serialize(&doc(fe, "event", None, ctx), &mut ser)
}

/// The event's ECS fields. `kind` is `event` for `--events` output and `alert` for alerts.
pub fn event_document(fe: &FileEvent<'_>, kind: &str) -> Map<String, Value> {
    to_map(&doc(fe, kind, None, &RenderCtx::EMPTY))
}

/// One alert: the event's fields with `rule.*`, `threat.*`, severity and a message.
pub fn alert_document(fe: &FileEvent<'_>, rule: &RuleMeta) -> Map<String, Value> {
    let prepared = PreparedRule::new(rule);
    to_map(&doc(fe, "alert", Some(&prepared), &RenderCtx::EMPTY))
}

mod json;
mod summary;

pub use summary::summary_document;

fn to_map<T: Serialize>(d: &T) -> Map<String, Value> {
    match serde_json::to_value(d) {
        Ok(Value::Object(m)) => m,
        // A struct of strings and numbers always serialises to an object.
        _ => Map::new(),
    }
}

/// A short line for humans: who, with what, created what, from where. Built by pushing
/// its parts (one per alert; `format!` cost 1,700 instructions a call).
fn message(fe: &FileEvent<'_>, rule_name: &str) -> String {
    let proc_name = fe.process_name.as_ref().map_or("?", |t| t.as_str());
    let mut s = String::with_capacity(160);
    s.push_str(rule_name);
    s.push_str(": ");
    s.push_str(proc_name);
    s.push_str(" (pid ");
    push_digits(&mut s, u64::from(fe.pid.unwrap_or(0)), 1);
    s.push_str(") as ");
    match (&fe.user_name, fe.uid) {
        (Some(n), Some(id)) => {
            s.push_str(n.as_str());
            s.push_str(" (");
            s.push_str(id);
            s.push(')');
        }
        (None, Some(id)) => {
            s.push_str("uid ");
            s.push_str(id);
        }
        _ => s.push_str("unknown user"),
    }
    if let Some(ip) = fe.context.source_ip.as_deref() {
        s.push_str(" from ");
        s.push_str(ip);
    }
    s.push_str(" created ");
    match &fe.path {
        Some(p) => s.push_str(p.as_str()),
        None => {
            s.push_str(fe.kernel_name.as_str());
            s.push_str(" (directory unresolved)");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::SummaryKind;

    #[test]
    fn timestamps() {
        assert_eq!(timestamp(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(timestamp(1_764_294_000, 123), "2025-11-28T01:40:00.123Z");
        assert_eq!(timestamp(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(timestamp(4_102_444_799, 999), "2099-12-31T23:59:59.999Z");
        assert_eq!(timestamp(253_402_300_799, 0), "9999-12-31T23:59:59.000Z");
        assert_eq!(timestamp(253_402_300_800, 7), "10000-01-01T00:00:00.007Z");
        for sec in [0u64, 59, 3_599, 86_399, 1_700_000_000, 1_795_833_032] {
            for msec in [0u16, 9, 99, 999] {
                let (y, m, d) = civil_from_days((sec / 86_400) as i64);
                let r = sec % 86_400;
                let want = format!(
                    "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{msec:03}Z",
                    r / 3600,
                    r % 3600 / 60,
                    r % 60
                );
                assert_eq!(timestamp(sec, msec), want);
            }
        }
    }

    /// The alert's own words: message, file.mode and @timestamp, from one real-shaped event.
    #[test]
    fn alert_message_mode_and_timestamp() {
        use crate::event::{Correlator, CorrelatorConfig};
        use crate::file_event::{Builder, NoEnrich};
        use crate::record::Record;
        let log = "type=SYSCALL msg=audit(1764294000.123:10): arch=c000003e syscall=257 success=yes exit=3 a0=ffffff9c a1=55 a2=241 a3=1a4 items=2 ppid=99 pid=100 auid=1001 uid=1001 gid=1001 euid=1001 suid=1001 fsuid=1001 egid=1001 sgid=1001 fsgid=1001 tty=(none) ses=3 comm=\"sftp-server\" exe=\"/usr/lib/openssh/sftp-server\" key=(null)\x1dARCH=x86_64 SYSCALL=openat UID=\"alice\" GID=\"alice\"
type=CWD msg=audit(1764294000.123:10): cwd=\"/home/alice\"
type=PATH msg=audit(1764294000.123:10): item=0 name=\"/tmp/\" inode=2 dev=fe:00 mode=041777 ouid=0 ogid=0 nametype=PARENT
type=PATH msg=audit(1764294000.123:10): item=1 name=\"/tmp/x.bin\" inode=77 dev=fe:00 mode=0104750 ouid=1001 ogid=1001 nametype=CREATE
type=EOE msg=audit(1764294000.123:10): ";
        let rule = match crate::rule::try_builtin(&crate::file_event::FileSchema) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        };
        let mut c = Correlator::new(CorrelatorConfig::default());
        let mut b = Builder::new();
        let mut docs = Vec::new();
        let mut on_event = |e: &crate::event::Event| {
            b.creations(e, &mut NoEnrich, &mut |fe| {
                docs.push(alert_document(fe, &rule.meta));
            })
        };
        for (i, line) in log.lines().enumerate() {
            let r = Record::from_log_line(line.as_bytes()).unwrap();
            c.push(&r, i as u64 + 1, 0, &mut on_event);
        }
        c.flush(&mut on_event);
        assert_eq!(docs.len(), 1);
        let d = &docs[0];
        assert_eq!(
            d["message"],
            "Remote File Creation in World Writeable Directory: sftp-server (pid 100) as alice \
             (1001) created /tmp/x.bin"
        );
        assert_eq!(d["file"]["mode"], "4750");
        assert_eq!(d["@timestamp"], "2025-11-28T01:40:00.123Z");
    }

    /// The fast writer takes a whole real alert (no fallback) and writes serde_json's bytes.
    #[test]
    fn fast_writer_writes_serde_jsons_text_for_real_alerts() {
        use crate::event::{Correlator, CorrelatorConfig};
        use crate::file_event::{Builder, NoEnrich};
        use crate::record::Record;
        let rule = match crate::rule::try_builtin(&crate::file_event::FileSchema) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        };
        let prepared = PreparedRule::new(&rule.meta);
        let mut checked = 0;
        for log in [
            include_str!("../../../tests/fixtures/sftp.log"),
            include_str!("../../../tests/fixtures/paths.log"),
            include_str!("../../../tests/fixtures/vsftpd.log"),
        ] {
            let mut c = Correlator::new(CorrelatorConfig::default());
            let mut b = Builder::new();
            let mut on_event = |e: &crate::event::Event| {
                b.creations(e, &mut NoEnrich, &mut |fe| {
                    let d = doc(fe, "alert", Some(&prepared), &RenderCtx::EMPTY);
                    let mut fast = Vec::new();
                    let r = Serialize::serialize(&d, &mut json::Writer { out: &mut fast });
                    assert!(r.is_ok(), "{r:?}");
                    let mut slow = Vec::new();
                    let mut ser = serde_json::Serializer::with_formatter(&mut slow, SafeFormatter);
                    Serialize::serialize(&d, &mut ser).unwrap();
                    assert_eq!(String::from_utf8(fast), String::from_utf8(slow));
                    checked += 1;
                })
            };
            for (i, line) in log.lines().enumerate() {
                if let Ok(r) = Record::from_log_line(line.as_bytes()) {
                    c.push(&r, i as u64 + 1, 0, &mut on_event);
                }
            }
            c.flush(&mut on_event);
        }
        assert!(checked >= 3, "{checked} creations");
    }

    #[test]
    fn summary_document_reports_counts_and_top_values() {
        let rule = match crate::rule::try_builtin(&crate::file_event::FileSchema) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        };
        let s = WindowSummary {
            rule: 0,
            kind: SummaryKind::Closed,
            at_ms: 1_764_294_300_000,
            ceiling: 1000,
            actors: (
                vec![crate::policy::ActorCount {
                    actor: "alice (1001)".into(),
                    sent: 100,
                    suppressed: 44,
                }],
                1,
            ),
            untracked_actor_alerts: 0,
            start_ms: 1_764_294_000_000,
            end_ms: 1_764_294_300_000,
            sent: 100,
            suppressed: 42,
            duplicates: 3,
            max_alerts: 100,
            window_secs: 300,
            host_name: Some("h1".into()),
            paths: (vec![("/tmp/a".into(), 40), ("/tmp/b".into(), 5)], 0),
            processes: (vec![("sftp-server".into(), 45)], 0),
            users: (vec![("alice (1001)".into(), 44), ("1002".into(), 1)], 0),
        };
        let d = Value::Object(summary_document(
            &s,
            &PreparedRule::new(&rule.meta),
            &RenderCtx::EMPTY,
        ));
        assert_eq!(d["event"]["kind"], "alert");
        assert_eq!(d["event"]["start"], "2025-11-28T01:40:00.000Z");
        assert_eq!(d["event"]["end"], "2025-11-28T01:45:00.000Z");
        assert_eq!(d["rule"]["id"], "3e528511-7316-4a6e-83da-61b5f1c07fd4");
        assert_eq!(d["threat"]["tactic"]["id"][0], "TA0008");
        assert_eq!(d["log"]["level"], "warning");
        assert_eq!(d["wwatchd"]["severity"], "medium");
        assert_eq!(d["event"]["id"].as_str().map(str::len), Some(36));
        assert_eq!(d["host"]["name"], "h1");
        assert_eq!(
            d["message"],
            "42 alerts of rule \"Remote File Creation in World Writeable Directory\" suppressed \
             by the alert budget (100 per 300 s) and 3 duplicates not sent between \
             2025-11-28T01:40:00.000Z and 2025-11-28T01:45:00.000Z; 100 sent; most frequent: path /tmp/a (40), process \
             sftp-server (45), user alice (1001) (44)"
        );
        let b = &d["wwatchd"]["budget"];
        assert_eq!(
            (b["suppressed"].as_u64(), b["deduplicated"].as_u64()),
            (Some(42), Some(3))
        );
        assert_eq!(
            b["file.path"]["top"][1],
            json!({"value": "/tmp/b", "count": 5})
        );
        assert_eq!(b["user"]["top"][0]["value"], "alice (1001)");
        assert_eq!(b["process.name"]["others"], 0);
    }

    #[test]
    fn hex_is_lowercase_pairs() {
        assert_eq!(hex(b"\x00\xff/a"), "00ff2f61");
    }
}

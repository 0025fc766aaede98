//! Pipeline position: `… → alert → syslog` — this file turns one alert (ECS JSON) or one
//! diagnostic into the bytes of exactly one syslog message (RFC 3164 or RFC 5424), capped at
//! `max_message_bytes` while keeping the JSON valid. No I/O happens here.
//!
//! Why we format ourselves instead of using the `syslog` crate's formatters: the crate's RFC 5424
//! MSGID is numeric only (we need `alert` / `diag`), it has no size cap, and we must know the exact
//! header length to fit the JSON under the cap. The format is a few lines of code.

use serde_json::Value;
use std::io;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{Facility, Format, Severity};

/// APP-NAME (5424) and TAG (3164). Fixed: the SIEM side keys on it.
pub const APP_NAME: &str = "wwatchd";

/// Prefix of diagnostics in RFC 3164, where there is no MSGID to tell them from alerts.
pub const DIAG_PREFIX: &str = "wwatchd-diag: ";

/// What kind of message this is; decides MSGID (5424), prefix (3164) and stdout vs stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// An ECS JSON alert. MSGID `alert`.
    Alert,
    /// The daemon's own message (loss, reconnects). MSGID `diag`.
    Diagnostic,
}

impl MessageKind {
    fn msgid(self) -> &'static str {
        match self {
            MessageKind::Alert => "alert",
            MessageKind::Diagnostic => "diag",
        }
    }
}

/// Everything the header needs apart from the message itself.
#[derive(Debug, Clone)]
pub struct HeaderParams<'a> {
    pub format: Format,
    pub facility: Facility,
    pub severity: Severity,
    /// Already sanitized with [`sanitize_hostname`]. `None` omits it (RFC 3164 over /dev/log, as
    /// glibc does; the local daemon adds its own).
    pub hostname: Option<&'a str>,
    pub pid: u32,
    pub kind: MessageKind,
    /// Wall-clock time of the event being reported (when it was formatted, not when it is sent, so
    /// a queued message keeps its time).
    pub time: SystemTime,
}

/// PRI = facility * 8 + severity (RFC 5424 §6.2.1).
pub fn pri(facility: Facility, severity: Severity) -> u8 {
    facility.code() * 8 + severity.code()
}

/// Build the header, up to and including the separator before MSG.
pub fn header(p: &HeaderParams<'_>) -> String {
    let pri = pri(p.facility, p.severity);
    let t = CivilTime::from_system(p.time);
    match p.format {
        Format::Rfc3164 => {
            // `<PRI>Mmm dd hh:mm:ss [HOSTNAME ]TAG[PID]: ` — the day is space-padded (RFC 3164
            // §4.1.2). Time is UTC: we carry no timezone database, and RFC 3164 has no offset
            // field, so collectors should be told the sender is UTC (or use RFC 5424).
            let host = match p.hostname {
                Some(h) => format!("{h} "),
                None => String::new(),
            };
            let prefix = match p.kind {
                MessageKind::Alert => "",
                MessageKind::Diagnostic => DIAG_PREFIX,
            };
            format!(
                "<{pri}>{} {:>2} {:02}:{:02}:{:02} {host}{APP_NAME}[{}]: {prefix}",
                MONTHS
                    .get(usize::from(t.month.saturating_sub(1)))
                    .unwrap_or(&"Jan"),
                t.day,
                t.hour,
                t.minute,
                t.second,
                p.pid
            )
        }
        // The native journal protocol has no header: PRIORITY etc. are fields of the entry.
        Format::Journal => String::new(),
        Format::Rfc5424 => {
            // `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG` (RFC 5424 §6). No BOM before
            // MSG: the payload is JSON, and JSON parsers reject a leading BOM.
            let host = p.hostname.unwrap_or("-");
            format!(
                "<{pri}>1 {:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}+00:00 {host} {APP_NAME} {} {} - ",
                t.year,
                t.month,
                t.day,
                t.hour,
                t.minute,
                t.second,
                t.micros,
                p.pid,
                p.kind.msgid()
            )
        }
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// UTC broken-down time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CivilTime {
    pub year: i64,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub micros: u32,
}

impl CivilTime {
    /// Times before 1970 (a badly set clock) are shown as the epoch.
    pub fn from_system(t: SystemTime) -> CivilTime {
        let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = d.as_secs();
        let days = secs / 86_400;
        let rem = secs % 86_400;
        let (year, month, day) = civil_from_days(i64::try_from(days).unwrap_or(0));
        CivilTime {
            year,
            month,
            day,
            hour: (rem / 3600) as u8,
            minute: (rem % 3600 / 60) as u8,
            second: (rem % 60) as u8,
            micros: d.subsec_micros(),
        }
    }
}

/// Days since 1970-01-01 to (year, month 1..=12, day 1..=31), proleptic Gregorian.
/// Howard Hinnant's `civil_from_days` algorithm (public domain description,
/// <https://howardhinnant.github.io/date_algorithms.html#civil_from_days>).
pub fn civil_from_days(z: i64) -> (i64, u8, u8) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    (if m <= 2 { y + 1 } else { y }, m as u8, d as u8)
}

/// HOSTNAME must be printable US-ASCII without spaces (RFC 5424 §6.2.4), at most 255 bytes.
/// Anything else becomes `_`; empty becomes `-` (the NILVALUE).
pub fn sanitize_hostname(h: &str) -> String {
    let s: String = h
        .trim()
        .chars()
        .take(255)
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect();
    if s.is_empty() { "-".to_owned() } else { s }
}

/// Make diagnostic text safe for one syslog line: control characters (C0, DEL, C1, U+2028/2029)
/// become visible escapes, so a newline in a path can never split or forge a message.
pub fn sanitize_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_unicode_escape(c) || (c as u32) < 0x20 => {
                out.push_str(&format!("\\u{{{:x}}}", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

/// Characters that serde_json leaves raw but that we escape anyway: DEL and C1 controls (rsyslog
/// and terminals treat them as control characters) and the Unicode line/paragraph separators
/// (some log viewers split lines on them).
pub(crate) fn needs_unicode_escape(c: char) -> bool {
    matches!(c as u32, 0x7f..=0x9f | 0x2028 | 0x2029)
}

/// A serde_json formatter that additionally escapes DEL, the C1 controls and U+2028/U+2029 as
/// `\uXXXX`. The output is still plain JSON and parses back to the identical value.
pub struct SafeFormatter;

impl serde_json::ser::Formatter for SafeFormatter {
    fn write_string_fragment<W>(&mut self, writer: &mut W, fragment: &str) -> io::Result<()>
    where
        W: ?Sized + io::Write,
    {
        // Every character to escape is DEL (0x7f) or encoded with a lead byte 0xc2 (C1
        // controls) or 0xe2 (U+2028/9): text without those bytes is written as it is.
        // Most fragments are ASCII below DEL: then no byte plus one has its high bit set
        // (0xff never occurs in UTF-8). One OR over all bytes, which the compiler turns
        // into vector code, answers that with no branch per byte.
        let bytes = fragment.as_bytes();
        let plain = bytes.iter().fold(0u8, |acc, &b| acc | b.wrapping_add(1)) & 0x80 == 0;
        if plain || memchr::memchr3(0x7f, 0xc2, 0xe2, bytes).is_none() {
            return writer.write_all(fragment.as_bytes());
        }
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if needs_unicode_escape(c) {
                writer.write_all(&fragment.as_bytes()[start..i])?;
                write!(writer, "\\u{:04x}", c as u32)?;
                start = i + c.len_utf8();
            }
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

/// Render compact JSON with no raw control characters at all (no newline, CR, NUL, DEL, C1).
pub fn render_json(v: &Value) -> String {
    let mut buf = Vec::with_capacity(256);
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, SafeFormatter);
    // Serializing a `Value` into a Vec cannot fail (keys are strings, no I/O errors), and every
    // byte written is valid UTF-8; handle both anyway rather than unwrap.
    if serde::Serialize::serialize(v, &mut ser).is_err() {
        return "{}".to_owned();
    }
    String::from_utf8(buf).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Bytes a char takes inside a JSON string as rendered by [`render_json`].
fn escaped_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
        c if (c as u32) < 0x20 || needs_unicode_escape(c) => 6,
        c => c.len_utf8(),
    }
}

fn escaped_str_len(s: &str) -> usize {
    s.chars().map(escaped_len).sum()
}

/// Fields trimmed first, before any other string: they are bulky and least needed for triage.
/// The exact bytes of a bulky field (`wwatchd.raw.<field>`) are just as bulky.
const BULKY_FIELDS: &[&str] = &[
    "process.title",
    "process.args",
    "process.command_line",
    "process.parent.title",
    "process.parent.args",
    "process.parent.command_line",
    "message",
    "wwatchd.raw.process.title",
    "wwatchd.raw.process.args",
];

/// The created file's path: an alert is useless without it, so it is trimmed last, only once
/// every other string is down to `MIN_KEEP`. When the path is not UTF-8, `file.path` holds a
/// lossy copy (U+FFFD) and `wwatchd.raw.file.path` the exact bytes in hex; the lossy copy goes
/// first then.
const PATH_FIELD: &str = "file.path";
const RAW_PATH_FIELD: &str = "wwatchd.raw.file.path";

/// Trimming order of a string leaf: every leaf of a tier is cut (largest first) before any leaf
/// of the next tier is touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tier {
    Bulky = 0,
    Other = 1,
    LossyPath = 2,
    Path = 3,
}

const TIERS: usize = 4;

impl Tier {
    fn of(dotted: &str, raw_path_present: bool) -> Tier {
        if BULKY_FIELDS.contains(&dotted) {
            Tier::Bulky
        } else if dotted == RAW_PATH_FIELD {
            Tier::Path
        } else if dotted == PATH_FIELD {
            if raw_path_present {
                Tier::LossyPath
            } else {
                Tier::Path
            }
        } else {
            Tier::Other
        }
    }
}

/// Below this many (escaped) bytes a string is never trimmed: the marker would eat the gain.
const MIN_KEEP: usize = 48;

/// Rough size of `…[truncated NNNNNN bytes]` plus slack, used only for planning; the real
/// length is checked by rendering.
const MARKER_ESTIMATE: usize = 28;

/// The outcome of fitting a JSON document into a byte budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fitted {
    /// Compact JSON, valid, at most the budget in bytes.
    pub json: String,
    /// True when any field was trimmed or the alert was replaced by a stub.
    pub truncated: bool,
}

/// One string leaf of the document.
struct Leaf {
    /// JSON pointer (RFC 6901) to the string.
    pointer: String,
    /// Dotted path without array indices, e.g. `process.args`.
    dotted: String,
    /// Escaped length in bytes (without quotes).
    len: usize,
    tier: Tier,
}

fn collect_leaves(
    v: &Value,
    raw_path: bool,
    pointer: &mut String,
    dotted: &mut Vec<String>,
    out: &mut Vec<Leaf>,
) {
    match v {
        Value::String(s) => {
            let d = dotted.join(".");
            let tier = Tier::of(&d, raw_path);
            out.push(Leaf {
                pointer: pointer.clone(),
                dotted: d,
                len: escaped_str_len(s),
                tier,
            });
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let n = pointer.len();
                pointer.push_str(&format!("/{i}"));
                collect_leaves(item, raw_path, pointer, dotted, out);
                pointer.truncate(n);
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                let n = pointer.len();
                pointer.push('/');
                pointer.push_str(&k.replace('~', "~0").replace('/', "~1"));
                dotted.push(k.clone());
                collect_leaves(item, raw_path, pointer, dotted, out);
                dotted.pop();
                pointer.truncate(n);
            }
        }
        _ => {}
    }
}

/// Bytes saved by cutting every leaf longer than `level + marker` down to `level`.
fn savings(lens: &[usize], level: usize) -> usize {
    lens.iter()
        .filter(|&&l| l > level + MARKER_ESTIMATE)
        .map(|&l| l - level - MARKER_ESTIMATE)
        .sum()
}

/// Water-filling over one tier: the largest `level` such that cutting everything above it saves
/// at least `need`; or `MIN_KEEP` when even that is not enough. Largest strings go first.
fn plan_level(lens: &[usize], need: usize) -> usize {
    let max = lens.iter().copied().max().unwrap_or(0);
    if savings(lens, MIN_KEEP) < need {
        return MIN_KEEP;
    }
    let (mut lo, mut hi) = (MIN_KEEP, max);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if savings(lens, mid) >= need {
            lo = mid
        } else {
            hi = mid - 1
        }
    }
    lo
}

/// Cut `s` to at most `keep` escaped bytes at a char boundary and append the marker.
fn cut_string(s: &str, keep: usize) -> String {
    let mut used = 0;
    let mut end = 0;
    for (i, c) in s.char_indices() {
        let l = escaped_len(c);
        if used + l > keep {
            break;
        }
        used += l;
        end = i + c.len_utf8();
    }
    let removed = s.len() - end;
    format!("{}…[truncated {removed} bytes]", &s[..end])
}

/// Fit `v` into `budget` bytes of JSON. Long string fields are trimmed with a marker, tier by
/// tier (bulky fields first, then the others, the created file's path last; see `Tier`), each
/// tier largest first, and `wwatchd.truncated: true` plus `wwatchd.truncated_fields` are added.
/// The JSON text itself is never cut. If trimming strings cannot make it fit (e.g. thousands of
/// tiny fields), the alert is replaced by a small stub that says so and keeps `@timestamp`.
pub fn fit_json(v: &Value, budget: usize) -> Fitted {
    let full = render_json(v);
    if full.len() <= budget {
        return Fitted {
            json: full,
            truncated: false,
        };
    }
    let raw_path = v.pointer("/wwatchd/raw/file.path").is_some();
    let mut leaves = Vec::new();
    collect_leaves(
        v,
        raw_path,
        &mut String::new(),
        &mut Vec::new(),
        &mut leaves,
    );

    // Plan on the original each round, so no string is ever cut twice; `slack` grows by whatever
    // the estimate missed (markers, the truncated_fields list) until the result fits.
    let mut slack = 0usize;
    for _ in 0..12 {
        let mut left = full.len() - budget + slack;
        // A tier is only touched when the tiers before it, cut to MIN_KEEP, are not enough.
        let mut levels = [usize::MAX; TIERS];
        for (t, level) in levels.iter_mut().enumerate() {
            if left == 0 {
                break;
            }
            let lens: Vec<usize> = leaves
                .iter()
                .filter(|l| l.tier as usize == t)
                .map(|l| l.len)
                .collect();
            *level = plan_level(&lens, left);
            left = left.saturating_sub(savings(&lens, *level));
        }
        if left > 0 {
            break; // strings alone cannot make it fit
        }

        let mut out = v.clone();
        let mut fields: Vec<String> = Vec::new();
        for leaf in &leaves {
            let level = levels[leaf.tier as usize];
            if leaf.len <= level.saturating_add(MARKER_ESTIMATE) {
                continue;
            }
            if let Some(Value::String(s)) = out.pointer_mut(&leaf.pointer) {
                *s = cut_string(s, level);
                if !fields.contains(&leaf.dotted) {
                    fields.push(leaf.dotted.clone());
                }
            }
        }
        mark_truncated(&mut out, fields);
        let json = render_json(&out);
        if json.len() <= budget {
            return Fitted {
                json,
                truncated: true,
            };
        }
        slack += json.len() - budget;
    }
    Fitted {
        json: stub(v, full.len(), budget),
        truncated: true,
    }
}

/// Add `wwatchd.truncated` / `wwatchd.truncated_fields`. A non-object root is wrapped as
/// `{"value": …}` so the flag has somewhere to live.
fn mark_truncated(doc: &mut Value, fields: Vec<String>) {
    if !doc.is_object() {
        let inner = doc.take();
        let mut m = serde_json::Map::new();
        m.insert("value".to_owned(), inner);
        *doc = Value::Object(m);
    }
    if let Value::Object(root) = doc {
        let w = root
            .entry("wwatchd")
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        if !w.is_object() {
            *w = Value::Object(serde_json::Map::new());
        }
        if let Value::Object(w) = w {
            w.insert("truncated".to_owned(), Value::Bool(true));
            w.insert(
                "truncated_fields".to_owned(),
                Value::Array(fields.into_iter().map(Value::String).collect()),
            );
        }
    }
}

/// Last resort when trimming strings is not enough. The bare form (46 bytes) fits any budget
/// that `MIN_MESSAGE_BYTES` allows, even with a 255-byte hostname in the header.
fn stub(v: &Value, original_bytes: usize, budget: usize) -> String {
    let mut m = serde_json::Map::new();
    if let Some(Value::String(ts)) = v.get("@timestamp")
        && escaped_str_len(ts) <= 40
    {
        m.insert("@timestamp".to_owned(), Value::String(ts.clone()));
    }
    m.insert(
        "message".to_owned(),
        Value::String(format!(
            "wwatchd: alert of {original_bytes} bytes did not fit the syslog cap ({budget} bytes \
             for JSON) even after trimming strings; raise max_message_bytes"
        )),
    );
    let mut w = serde_json::Map::new();
    w.insert("truncated".to_owned(), Value::Bool(true));
    w.insert("replaced".to_owned(), Value::Bool(true));
    m.insert("wwatchd".to_owned(), Value::Object(w.clone()));
    let full = render_json(&Value::Object(m));
    if full.len() <= budget {
        return full;
    }
    let mut bare = serde_json::Map::new();
    bare.insert("wwatchd".to_owned(), Value::Object(w));
    render_json(&Value::Object(bare))
}

/// Cut plain (already sanitized) text to `budget` bytes at a char boundary, with a marker.
pub fn fit_text(s: &str, budget: usize) -> String {
    if s.len() <= budget {
        return s.to_owned();
    }
    let marker_room = 32;
    let mut end = budget.saturating_sub(marker_room).min(s.len());
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[truncated {} bytes]", &s[..end], s.len() - end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    fn params(format: Format, kind: MessageKind, host: Option<&str>) -> HeaderParams<'_> {
        HeaderParams {
            format,
            facility: Facility::Auth,
            severity: Severity::Warning,
            hostname: host,
            pid: 4242,
            kind,
            // 2026-11-08T07:05:09.012345Z
            time: UNIX_EPOCH + Duration::new(1_794_121_509, 12_345_000),
        }
    }

    #[test]
    fn syslog_civil_from_days_known_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(20_765), (2026, 11, 8));
    }

    #[test]
    fn syslog_pri_values() {
        assert_eq!(pri(Facility::Auth, Severity::Warning), 36);
        assert_eq!(pri(Facility::Kern, Severity::Emergency), 0);
        assert_eq!(pri(Facility::Local7, Severity::Debug), 191);
        assert_eq!(pri(Facility::Authpriv, Severity::Critical), 82);
    }

    #[test]
    fn syslog_header_3164_shape() {
        let h = header(&params(Format::Rfc3164, MessageKind::Alert, Some("web1")));
        assert_eq!(h, "<36>Nov  8 07:05:09 web1 wwatchd[4242]: ");
        let h = header(&params(Format::Rfc3164, MessageKind::Alert, None));
        assert_eq!(h, "<36>Nov  8 07:05:09 wwatchd[4242]: ");
        let h = header(&params(Format::Rfc3164, MessageKind::Diagnostic, None));
        assert_eq!(h, "<36>Nov  8 07:05:09 wwatchd[4242]: wwatchd-diag: ");
    }

    #[test]
    fn syslog_header_5424_shape() {
        let h = header(&params(Format::Rfc5424, MessageKind::Alert, Some("web1")));
        assert_eq!(
            h,
            "<36>1 2026-11-08T07:05:09.012345+00:00 web1 wwatchd 4242 alert - "
        );
        let h = header(&params(Format::Rfc5424, MessageKind::Diagnostic, None));
        assert_eq!(
            h,
            "<36>1 2026-11-08T07:05:09.012345+00:00 - wwatchd 4242 diag - "
        );
    }

    #[test]
    fn syslog_hostname_and_text_sanitized() {
        assert_eq!(sanitize_hostname("a b\nc"), "a_b_c");
        assert_eq!(sanitize_hostname(""), "-");
        let t = sanitize_text("x\ny\rz\0\u{1b}\u{85}\u{2028}");
        assert!(
            !t.chars().any(|c| c.is_control() || c == '\u{2028}'),
            "{t:?}"
        );
    }

    #[test]
    fn syslog_render_has_no_raw_controls_and_round_trips() {
        let v = json!({"p": "a\nb\rc\td\"e\\f\u{1b}g\u{0}h\u{7f}i\u{85}j\u{2028}k<13>1 fake %s"});
        let s = render_json(&v);
        assert!(!s.chars().any(|c| c.is_control() || c == '\u{2028}'), "{s}");
        let back: Value = serde_json::from_str(&s).expect("valid JSON");
        assert_eq!(back, v);
    }

    fn assert_fits(v: &Value, budget: usize) -> Value {
        let f = fit_json(v, budget);
        assert!(f.json.len() <= budget, "{} > {budget}", f.json.len());
        let back: Value = serde_json::from_str(&f.json).expect("fitted JSON must stay valid");
        back
    }

    #[test]
    fn syslog_fit_small_doc_untouched() {
        let v = json!({"a": "b"});
        let f = fit_json(&v, 100);
        assert_eq!(
            f,
            Fitted {
                json: r#"{"a":"b"}"#.to_owned(),
                truncated: false
            }
        );
    }

    #[test]
    fn syslog_fit_trims_bulky_first_with_100k_fields() {
        let title = "é".repeat(50_000); // 100 KB of 2-byte chars: boundaries everywhere
        let path = format!("/tmp/{}", "€".repeat(33_000)); // ~100 KB of 3-byte chars
        let v = json!({
            "@timestamp": "2026-11-08T07:05:09Z",
            "file": {"path": path},
            "process": {"title": title, "args": ["x".repeat(100_000), "short"]},
            "message": "m".repeat(100_000),
        });
        let back = assert_fits(&v, 8000);
        assert_eq!(back["wwatchd"]["truncated"], json!(true));
        assert_eq!(back["process"]["args"][1], json!("short"));
        assert_eq!(back["@timestamp"], v["@timestamp"]);
        let fp = back["file"]["path"].as_str().expect("string");
        assert!(fp.starts_with("/tmp/€€"));
        assert!(fp.contains("…[truncated "));
        let fields = back["wwatchd"]["truncated_fields"]
            .as_array()
            .expect("array");
        assert!(fields.contains(&json!("process.title")));
        assert!(fields.contains(&json!("process.args")));
    }

    #[test]
    fn syslog_fit_prefers_bulky_fields() {
        let v = json!({
            "file": {"path": format!("/tmp/{}", "p".repeat(500))},
            "process": {"title": "t".repeat(5_000)},
        });
        let back = assert_fits(&v, 2_000);
        assert_eq!(back["file"]["path"], v["file"]["path"], "path kept whole");
        assert!(back["process"]["title"].as_str().expect("s").len() < 2_000);
    }

    /// A real alert (from the sftp capture) with its path, directory, name and message
    /// replaced: `dir` nested to about 4 KiB, then `name`.
    fn alert_with_path(dir: &[u8], name: &[u8]) -> Value {
        let line = include_str!("../../../tests/fixtures/sftp.alerts.jsonl")
            .lines()
            .next()
            .expect("fixture line");
        let mut v: Value = serde_json::from_str(line).expect("fixture JSON");
        let path = [dir, b"/", name].concat();
        let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        v["file"]["path"] = json!(lossy(&path));
        v["file"]["directory"] = json!(lossy(dir));
        v["file"]["name"] = json!(lossy(name));
        v["message"] = json!(format!("rule: sftp-server created {}", lossy(&path)));
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        if std::str::from_utf8(&path).is_err() {
            v["wwatchd"]["raw"] = json!({
                "file.directory": hex(dir),
                "file.name": hex(name),
                "file.path": hex(&path),
            });
        }
        v
    }

    /// Nested directories under /tmp, each component hostile, up to `total` bytes.
    fn deep_dir(total: usize, component: &[u8]) -> Vec<u8> {
        let mut d = b"/tmp/wwh".to_vec();
        while d.len() + 1 + component.len() <= total {
            d.push(b'/');
            d.extend_from_slice(component);
        }
        d
    }

    // Issue 5: a 4 KiB path under the default 8 KiB cap. Path, directory and message are all
    // about 4 KiB; cutting them evenly lost the path. The path must come through whole.
    #[test]
    fn issue5_fit_keeps_4k_path_whole_under_8k_cap() {
        let comp = [b"d-\x1b[1m\"\t\\ ".as_slice(), &[b'x'; 180]].concat();
        let dir = deep_dir(3_900, &comp);
        let name = [b"f-\x1b\r\n<13>1 fake ".as_slice(), &[b'y'; 200]].concat();
        let v = alert_with_path(&dir, &name);
        assert!(v["file"]["path"].as_str().expect("s").len() > 4_000);
        let budget = 8192 - 90; // the RFC 5424 header is about 90 bytes
        let back = assert_fits(&v, budget);
        assert_eq!(back["file"]["path"], v["file"]["path"], "path kept whole");
        assert_eq!(back["wwatchd"]["truncated"], json!(true));
        let fields = back["wwatchd"]["truncated_fields"]
            .as_array()
            .expect("array");
        assert!(fields.contains(&json!("message")), "{fields:?}");
        assert!(fields.contains(&json!("file.directory")), "{fields:?}");
        assert!(!fields.contains(&json!("file.path")), "{fields:?}");
    }

    // Issue 5: a path that is not UTF-8 has its exact bytes in hex under
    // wwatchd.raw.file.path, twice its length; that is the copy that must survive, and the
    // lossy file.path goes before it.
    #[test]
    fn issue5_fit_keeps_raw_path_of_non_utf8_path() {
        let comp = [b"d-\xff\xfe ".as_slice(), &[b'x'; 120]].concat();
        let dir = deep_dir(2_500, &comp);
        let name = b"f-\xc3(\x1b".to_vec();
        let v = alert_with_path(&dir, &name);
        let back = assert_fits(&v, 8192 - 90);
        assert_eq!(
            back["wwatchd"]["raw"]["file.path"], v["wwatchd"]["raw"]["file.path"],
            "exact bytes kept whole"
        );
        let fields = back["wwatchd"]["truncated_fields"]
            .as_array()
            .expect("array");
        assert!(
            fields.contains(&json!("wwatchd.raw.file.directory")),
            "{fields:?}"
        );
        assert!(
            !fields.contains(&json!("wwatchd.raw.file.path")),
            "{fields:?}"
        );
    }

    // When even the path alone cannot fit, it is cut last (and flagged), never the JSON.
    #[test]
    fn issue5_fit_cuts_the_path_only_when_nothing_else_is_left() {
        let dir = deep_dir(4_000, &[b'\x01'; 200]); // each byte escapes to 6
        let v = alert_with_path(&dir, b"f");
        let back = assert_fits(&v, 8192 - 90);
        let fields = back["wwatchd"]["truncated_fields"]
            .as_array()
            .expect("array");
        assert!(fields.contains(&json!("file.path")), "{fields:?}");
        // Everything else was cut to the floor before the path was touched.
        let dir_left = back["file"]["directory"].as_str().expect("s");
        assert!(dir_left.contains("…[truncated "), "{dir_left:?}");
    }

    #[test]
    fn syslog_fit_escapes_counted() {
        // Each \u{1} renders as 6 bytes: the budget must count escaped bytes, not chars.
        let v = json!({"message": "\u{1}".repeat(20_000), "x": "\"\\".repeat(10_000)});
        assert_fits(&v, 3_000);
    }

    #[test]
    fn syslog_fit_many_small_fields_falls_back_to_stub() {
        let mut m = serde_json::Map::new();
        for i in 0..5_000 {
            m.insert(format!("k{i}"), json!(i));
        }
        m.insert("@timestamp".to_owned(), json!("2026-11-08T07:05:09Z"));
        let back = assert_fits(&Value::Object(m), 1_000);
        assert_eq!(back["wwatchd"]["replaced"], json!(true));
        assert_eq!(back["@timestamp"], json!("2026-11-08T07:05:09Z"));
    }

    #[test]
    fn syslog_fit_tiny_budget_still_valid() {
        let mut m = serde_json::Map::new();
        for i in 0..2_000 {
            m.insert(format!("k{i}"), json!(i));
        }
        // The smallest budget the sink allows: MIN_MESSAGE_BYTES minus a header with a 255-byte
        // hostname and the largest PID.
        let back = assert_fits(&Value::Object(m), 150);
        assert_eq!(back["wwatchd"]["replaced"], json!(true));
    }

    proptest::proptest! {
        #[test]
        fn syslog_fit_always_valid_and_under_budget(
            title in "\\PC{0,3000}",
            path in proptest::collection::vec(proptest::char::any(), 0..3000),
            args in proptest::collection::vec("\\PC{0,400}", 0..20),
            budget in 150usize..4000,
        ) {
            let path: String = path.into_iter().collect();
            let v = json!({"process": {"title": title, "args": args}, "file": {"path": path}});
            let f = fit_json(&v, budget);
            proptest::prop_assert!(f.json.len() <= budget);
            proptest::prop_assert!(!f.json.chars().any(|c| c.is_control()));
            let back: Value = serde_json::from_str(&f.json).map_err(|e| {
                proptest::test_runner::TestCaseError::fail(format!("invalid JSON: {e}"))
            })?;
            if !f.truncated {
                proptest::prop_assert_eq!(back, v);
            }
        }
    }

    #[test]
    fn syslog_fit_text_char_boundary() {
        let s = "ü".repeat(1000);
        let t = fit_text(&s, 101);
        assert!(t.len() <= 101, "{}", t.len());
        assert!(t.ends_with("bytes]"));
    }
}

//! journal: one alert or diagnostic as one entry of systemd-journald's native protocol, as
//! bytes. No I/O: the sink sends the entry as one datagram to `/run/systemd/journal/socket`,
//! or, when it is too large for a datagram, in a sealed memfd passed with `SCM_RIGHTS`.
//!
//! `… → alert → [journal entry] → journald`
//!
//! The protocol (systemd's "Native Journal Protocol"): a sequence of fields, each either
//! `KEY=value\n` when the value holds no newline, or `KEY\n`, the value's length as 64-bit
//! little-endian, the value's bytes and `\n` (binary-safe). Keys are upper-case ASCII
//! letters, digits and `_`, not starting with `_` or a digit.
//!
//! An alert entry has `MESSAGE` (the alert's JSON), `PRIORITY`, `SYSLOG_FACILITY`,
//! `SYSLOG_IDENTIFIER=wwatchd`, `SYSLOG_PID`, and indexed fields a journal reader can match
//! on (`journalctl WWATCHD_RULE_ID=...`): `WWATCHD_KIND` (`alert` or `diag`),
//! `WWATCHD_EVENT_ID`, `WWATCHD_RULE_ID`, `WWATCHD_FILE_PATH` (the created path's exact
//! bytes, also when they are not UTF-8), `WWATCHD_USER` (`user.name`, else `user.id`) and
//! `WWATCHD_SOURCE_IP`.

use serde_json::Value;

use super::format::{APP_NAME, MessageKind};
use super::{Facility, Severity};

/// Where journald listens for native entries.
pub const SOCKET: &str = "/run/systemd/journal/socket";

/// Appends one field; the binary-safe form when `value` holds a newline.
pub fn field(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    out.extend_from_slice(key.as_bytes());
    if value.contains(&b'\n') {
        out.push(b'\n');
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        out.push(b'=');
    }
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// Decodes `wwatchd.raw`'s lowercase hex.
fn unhex(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if !b.len().is_multiple_of(2) {
        return None;
    }
    let d = |c: u8| (c as char).to_digit(16).map(|v| v as u8);
    b.chunks_exact(2)
        .map(|p| Some(d(p[0])? << 4 | d(p[1])?))
        .collect()
}

/// The indexed fields of an alert document, in entry order.
fn alert_fields(doc: &Value) -> Vec<(&'static str, Vec<u8>)> {
    let s = |p: &str| doc.pointer(p).and_then(Value::as_str);
    let mut v = Vec::new();
    let mut put = |k: &'static str, val: Option<Vec<u8>>| {
        if let Some(val) = val.filter(|x| !x.is_empty()) {
            v.push((k, val));
        }
    };
    put(
        "WWATCHD_EVENT_ID",
        s("/event/id").map(|x| x.as_bytes().to_vec()),
    );
    put(
        "WWATCHD_RULE_ID",
        s("/rule/id").map(|x| x.as_bytes().to_vec()),
    );
    let raw_path = doc
        .get("wwatchd")
        .and_then(|w| w.get("raw"))
        .and_then(|r| r.get("file.path"))
        .and_then(Value::as_str)
        .and_then(unhex);
    put(
        "WWATCHD_FILE_PATH",
        raw_path.or_else(|| s("/file/path").map(|x| x.as_bytes().to_vec())),
    );
    put(
        "WWATCHD_USER",
        s("/user/name")
            .or_else(|| s("/user/id"))
            .map(|x| x.as_bytes().to_vec()),
    );
    put(
        "WWATCHD_SOURCE_IP",
        s("/source/ip").map(|x| x.as_bytes().to_vec()),
    );
    v
}

/// One native entry: `message` as `MESSAGE`, the syslog-compatible fields, and for an alert
/// (`doc` is its JSON document) the indexed `WWATCHD_*` fields.
pub fn entry(
    kind: MessageKind,
    severity: Severity,
    facility: Facility,
    pid: u32,
    message: &[u8],
    doc: Option<&Value>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 512);
    field(&mut out, "MESSAGE", message);
    field(&mut out, "PRIORITY", severity.code().to_string().as_bytes());
    field(
        &mut out,
        "SYSLOG_FACILITY",
        facility.code().to_string().as_bytes(),
    );
    field(&mut out, "SYSLOG_IDENTIFIER", APP_NAME.as_bytes());
    field(&mut out, "SYSLOG_PID", pid.to_string().as_bytes());
    let k: &[u8] = match kind {
        MessageKind::Alert => b"alert",
        MessageKind::Diagnostic => b"diag",
    };
    field(&mut out, "WWATCHD_KIND", k);
    if let Some(doc) = doc {
        for (key, val) in alert_fields(doc) {
            field(&mut out, key, &val);
        }
    }
    out
}

/// Why a native entry does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryError(pub String);

/// Splits a native entry into its fields, as journald reads it (for tests and for
/// checking what is about to be sent). Every malformation is an error, never a panic.
pub fn parse(mut b: &[u8]) -> Result<Vec<(String, Vec<u8>)>, EntryError> {
    let err = |m: &str| Err(EntryError(m.to_owned()));
    let mut out = Vec::new();
    while !b.is_empty() {
        let Some(nl) = b.iter().position(|&c| c == b'\n') else {
            return err("a field without its newline");
        };
        let line = &b[..nl];
        if let Some(eq) = line.iter().position(|&c| c == b'=') {
            let key = valid_key(&line[..eq])?;
            out.push((key, line[eq + 1..].to_vec()));
            b = &b[nl + 1..];
            continue;
        }
        let key = valid_key(line)?;
        let rest = &b[nl + 1..];
        if rest.len() < 8 {
            return err("a binary field without its length");
        }
        let mut len = [0u8; 8];
        len.copy_from_slice(&rest[..8]);
        let len = usize::try_from(u64::from_le_bytes(len)).unwrap_or(usize::MAX);
        let rest = &rest[8..];
        if rest.len() <= len || rest[len] != b'\n' {
            return err("a binary field shorter than its length, or without its newline");
        }
        out.push((key, rest[..len].to_vec()));
        b = &rest[len + 1..];
    }
    Ok(out)
}

fn valid_key(k: &[u8]) -> Result<String, EntryError> {
    let ok = !k.is_empty()
        && k.len() <= 64
        && !k[0].is_ascii_digit()
        && k[0] != b'_'
        && k.iter()
            .all(|&c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_');
    if ok {
        Ok(String::from_utf8_lossy(k).into_owned())
    } else {
        Err(EntryError(format!(
            "{:?} is not a journal field name",
            String::from_utf8_lossy(k)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(f: &'a [(String, Vec<u8>)], k: &str) -> Option<&'a [u8]> {
        f.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_slice())
    }

    #[test]
    fn alert_entry_round_trips_with_exact_path_bytes() {
        let doc = serde_json::json!({
            "event": {"id": "0f0e-…"},
            "rule": {"id": "r-1"},
            "file": {"path": "/tmp/a\nb\u{fffd}"},
            "user": {"id": "1001"},
            "source": {"ip": "192.0.2.7"},
            "wwatchd": {"raw": {"file.path": "2f746d702f610a62e9"}},
        });
        let msg = serde_json::to_vec(&doc).unwrap();
        let e = entry(
            MessageKind::Alert,
            Severity::Warning,
            Facility::Auth,
            42,
            &msg,
            Some(&doc),
        );
        let f = parse(&e).unwrap();
        assert_eq!(get(&f, "MESSAGE"), Some(&msg[..]));
        assert_eq!(get(&f, "PRIORITY"), Some(&b"4"[..]));
        assert_eq!(get(&f, "SYSLOG_FACILITY"), Some(&b"4"[..]));
        assert_eq!(get(&f, "SYSLOG_IDENTIFIER"), Some(&b"wwatchd"[..]));
        assert_eq!(get(&f, "SYSLOG_PID"), Some(&b"42"[..]));
        assert_eq!(get(&f, "WWATCHD_RULE_ID"), Some(&b"r-1"[..]));
        assert_eq!(get(&f, "WWATCHD_FILE_PATH"), Some(&b"/tmp/a\nb\xe9"[..]));
        assert_eq!(get(&f, "WWATCHD_USER"), Some(&b"1001"[..]));
        assert_eq!(get(&f, "WWATCHD_SOURCE_IP"), Some(&b"192.0.2.7"[..]));
        // The path with a newline went in the binary-safe form.
        let needle = b"WWATCHD_FILE_PATH\n\x09\0\0\0\0\0\0\0/tmp/a\nb\xe9\n";
        assert!(e.windows(needle.len()).any(|w| w == needle));
    }

    #[test]
    fn diagnostic_has_no_alert_fields() {
        let e = entry(
            MessageKind::Diagnostic,
            Severity::Notice,
            Facility::Daemon,
            1,
            b"started",
            None,
        );
        let f = parse(&e).unwrap();
        assert_eq!(get(&f, "WWATCHD_KIND"), Some(&b"diag"[..]));
        assert!(get(&f, "WWATCHD_RULE_ID").is_none());
    }

    #[test]
    fn malformed_entries_are_errors() {
        for bad in [
            &b"MESSAGE=x"[..],
            b"message=x\n",
            b"_PID=1\n",
            b"MESSAGE\n\x05\0\0\0\0\0\0\0ab\n",
            b"MESSAGE\n\x01\0\0",
            b"MESSAGE\n\xff\xff\xff\xff\xff\xff\xff\xffab\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse(b"").unwrap(), vec![]);
    }
}

//! Property tests (issue 5): each property is checked on thousands of generated inputs
//! against a reference written independently of the code under test.
//!
//! - EQL wildcards: `like` and `like~` agree with a naive recursive matcher over characters,
//!   both through [`Pattern`] and through a compiled query.
//! - Path normalisation: idempotent, absolute, nothing above `/`, and the same as a
//!   component-stack reference; also through the real CWD join of the file-event builder.
//! - Filenames: any bytes a filename can hold, written by the kernel's rule for unsafe bytes
//!   (hex) or quoted, come back exactly from the alert JSON.

use proptest::prelude::*;
use serde_json::Value;

use wwatchd::alert::{self, PreparedRule};
use wwatchd::event::{Correlator, CorrelatorConfig, Event};
use wwatchd::file_event::{Builder, FileEvent, FileSchema, NoEnrich, PathOrigin, normalize};
use wwatchd::record::Record;
use wwatchd::rule::wildcard::Pattern;
use wwatchd::rule::{FieldId, FieldSource, FieldType, FieldValue, Query, Schema, builtin};

// ---- wildcards -----------------------------------------------------------------------------

/// Whether pattern character `p` accepts text character `t` case-insensitively: one
/// character against one, as Elasticsearch 9's wildcard automaton does (Lucene's
/// `CaseFolding.expand` per pattern character; the unit tests of `wildcard` pin those
/// classes to Lucene's). This property checks the matcher's `*`/`?` logic against the naive
/// definition below, with that per-character rule.
fn same_ci(p: char, t: char) -> bool {
    wwatchd_core::rule::wildcard::eq_ci(&t.to_string(), &p.to_string())
}

/// The naive definition: `*` any run, `?` one character, anything else itself.
fn reference(pat: &[char], text: &[char], ci: bool) -> bool {
    let same = |a: char, b: char| if ci { same_ci(a, b) } else { a == b };
    match pat.split_first() {
        None => text.is_empty(),
        Some(('*', rest)) => (0..=text.len()).any(|i| reference(rest, &text[i..], ci)),
        Some(('?', rest)) => !text.is_empty() && reference(rest, &text[1..], ci),
        Some((&c, rest)) => {
            text.first().is_some_and(|&t| same(c, t)) && reference(rest, &text[1..], ci)
        }
    }
}

/// Characters that make matches likely, with case pairs whose folding is not ASCII:
/// é/É, İ (folds to i), the Kelvin sign (folds to k), ß (no single-character uppercase).
const ALPHABET: &[char] = &[
    '*', '?', '/', '.', 'a', 'A', 'b', 'é', 'É', 'i', 'I', 'İ', 'k', 'K', '\u{212a}', 'ß', ' ',
];

fn pattern_str(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(ALPHABET), 0..max)
        .prop_map(|v| v.into_iter().collect())
}

/// A schema of one keyword field, `f`, and an event holding one value for it.
struct OneField;

impl Schema for OneField {
    fn lookup(&self, name: &str) -> Option<(FieldId, FieldType)> {
        (name == "f").then_some((FieldId(0), FieldType::Keyword))
    }
}

struct Value1<'a>(&'a str);

impl FieldSource for Value1<'_> {
    fn field(&self, id: FieldId) -> Option<FieldValue<'_>> {
        (id == FieldId(0)).then_some(FieldValue::Str(self.0))
    }
}

/// `pat` as an EQL string literal.
fn eql_string(pat: &str) -> String {
    let mut s = String::from("\"");
    for c in pat.chars() {
        if c == '"' || c == '\\' {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('"');
    s
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn wildcard_agrees_with_reference(pat in pattern_str(9), text in pattern_str(13)) {
        let p: Vec<char> = pat.chars().collect();
        let t: Vec<char> = text.chars().collect();
        for ci in [false, true] {
            prop_assert_eq!(
                Pattern::new(&pat, ci).matches(&text),
                reference(&p, &t, ci),
                "pattern {:?} text {:?} case-insensitive {}", pat, text, ci
            );
        }
    }

    #[test]
    fn like_operators_agree_with_reference(pat in pattern_str(8), text in pattern_str(10)) {
        let p: Vec<char> = pat.chars().collect();
        let t: Vec<char> = text.chars().collect();
        for (op, ci) in [("like", false), ("like~", true), (":", true)] {
            let src = format!("file where f {op} {}", eql_string(&pat));
            let q = Query::compile(&src, &OneField);
            prop_assert!(q.is_ok(), "{src}: {:?}", q.err());
            let q = q.unwrap();
            prop_assert_eq!(q.matches(&Value1(&text)), reference(&p, &t, ci), "{} on {:?}", src, text);
        }
    }
}

// ---- path normalisation --------------------------------------------------------------------

/// The reference: split on `/`, drop empty and `.` components, let `..` pop (never past the
/// root), join under `/`.
fn reference_normalize(path: &[u8]) -> Vec<u8> {
    let mut stack: Vec<&[u8]> = Vec::new();
    for comp in path.split(|&c| c == b'/') {
        if comp == b".." {
            stack.pop();
        } else if !comp.is_empty() && comp != b"." {
            stack.push(comp);
        }
    }
    if stack.is_empty() {
        return b"/".to_vec();
    }
    stack.iter().flat_map(|c| [&b"/"[..], c].concat()).collect()
}

/// Paths made of the pieces that matter (`/`, `.`, `..`, names, odd bytes), or any bytes.
fn path_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        4 => Just(b"/".to_vec()),
        2 => Just(b"..".to_vec()),
        2 => Just(b".".to_vec()),
        1 => Just(b"...".to_vec()),
        3 => prop::collection::vec(prop::sample::select(&b"ab.\xff\x00\\ "[..]), 1..4),
    ];
    prop_oneof![
        4 => prop::collection::vec(piece, 0..16).prop_map(|v| v.concat()),
        1 => prop::collection::vec(any::<u8>(), 0..40),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn normalize_is_idempotent_absolute_and_never_above_root(p in path_bytes()) {
        let n = normalize(&p);
        prop_assert_eq!(&n, &reference_normalize(&p));
        prop_assert_eq!(normalize(&n), n.clone(), "not idempotent");
        prop_assert_eq!(n.first(), Some(&b'/'));
        if n != b"/" {
            prop_assert!(!n.ends_with(b"/"));
            for comp in n[1..].split(|&c| c == b'/') {
                prop_assert!(comp != b".." && comp != b"." && !comp.is_empty(),
                    "component {:?} in {:?}", comp, n);
            }
        }
    }
}

// ---- through the real pipeline ----------------------------------------------------------------

/// How the kernel writes an untrusted string (`audit_log_untrustedstring`): hex, upper case,
/// when any byte is a quote, a space or control byte, or above 0x7e; else in double quotes.
fn kernel_encode(b: &[u8]) -> String {
    if b.iter().any(|&c| c == b'"' || !(0x21..=0x7e).contains(&c)) {
        b.iter().map(|c| format!("{c:02X}")).collect()
    } else {
        format!("\"{}\"", String::from_utf8_lossy(b))
    }
}

/// One openat creation by sftp-server, as the kernel logs it, with the given CWD and name.
fn creation_log(serial: u64, cwd: &[u8], name: &[u8]) -> Vec<Vec<u8>> {
    let head = format!("msg=audit(1764294000.123:{serial}):");
    let title: String = b"/usr/lib/openssh/sftp-server"
        .iter()
        .map(|c| format!("{c:02X}"))
        .collect();
    [
        format!(
            "type=SYSCALL {head} arch=c000003e syscall=257 success=yes exit=3 a0=ffffff9c a1=7ffd a2=241 a3=1b6 items=2 ppid=900 pid=901 auid=1001 uid=1001 gid=1001 euid=1001 suid=1001 fsuid=1001 egid=1001 sgid=1001 fsgid=1001 tty=(none) ses=3 comm=\"sftp-server\" exe=\"/usr/lib/openssh/sftp-server\" key=(null)"
        ),
        format!("type=CWD {head} cwd={}", kernel_encode(cwd)),
        format!(
            "type=PATH {head} item=0 name=\"/tmp/\" inode=246951 dev=fe:00 mode=041777 ouid=0 ogid=0 rdev=00:00 nametype=PARENT"
        ),
        format!(
            "type=PATH {head} item=1 name={} inode=77 dev=fe:00 mode=0100644 ouid=1001 ogid=1001 rdev=00:00 nametype=CREATE",
            kernel_encode(name)
        ),
        format!("type=PROCTITLE {head} proctitle={title}"),
        format!("type=EOE {head} "),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect()
}

/// Runs log lines through correlator, builder, the built-in rule and the alert writer.
/// Returns each creation's path origin and its alert (`None` when the rule did not match).
fn pipeline(lines: &[Vec<u8>]) -> Vec<(Option<Vec<u8>>, PathOrigin, Option<Value>)> {
    let rule = builtin(&FileSchema);
    let prepared = PreparedRule::new(&rule.meta);
    let mut corr = Correlator::new(CorrelatorConfig::default());
    let mut builder = Builder::new();
    let mut out = Vec::new();
    let mut on_event = |ev: &Event| {
        builder.creations(ev, &mut NoEnrich, &mut |fe: &mut FileEvent<'_>| {
            let doc = rule.query.matches(fe).then(|| {
                let mut json = Vec::new();
                alert::write_alert(&mut json, fe, &prepared, &alert::RenderCtx::EMPTY)
                    .expect("serialises");
                serde_json::from_slice(&json).expect("alert is JSON")
            });
            out.push((
                fe.path.as_ref().map(|p| p.bytes().to_vec()),
                fe.path_origin,
                doc,
            ));
        });
    };
    for (i, l) in lines.iter().enumerate() {
        let rec = Record::from_log_line(l).expect("well-formed line");
        corr.push(&rec, i as u64 + 1, rec.stamp.millis(), &mut on_event);
    }
    corr.flush(&mut on_event);
    out
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// The exact bytes of a text field of an alert: `wwatchd.raw.<field>` (hex) when the bytes
/// were not UTF-8, else the field's string.
fn exact(doc: &Value, field: &str) -> Option<Vec<u8>> {
    if let Some(raw) = doc["wwatchd"]["raw"][field].as_str() {
        return Some(unhex(raw));
    }
    let ptr = format!("/{}", field.replace('.', "/"));
    doc.pointer(&ptr)?.as_str().map(|s| s.as_bytes().to_vec())
}

/// A filename component: any bytes but NUL and `/` (which no name can hold), not `.`/`..`.
fn file_name() -> impl Strategy<Value = Vec<u8>> {
    let bytes = prop_oneof![
        // Arbitrary bytes, mostly not UTF-8.
        prop::collection::vec(any::<u8>(), 1..48),
        // Valid UTF-8, including quotes, spaces and control characters.
        "\\PC{1,16}|[ \"\\t\\n\\x1d'=a-z]{1,12}".prop_map(String::into_bytes),
    ];
    bytes
        .prop_map(|v| {
            v.into_iter()
                .filter(|&c| c != 0 && c != b'/')
                .collect::<Vec<u8>>()
        })
        .prop_filter("a name", |v| !v.is_empty() && v != b"." && v != b"..")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// The name given absolute, and relative to CWD /tmp: both alerts carry the exact bytes.
    #[test]
    fn any_filename_round_trips_through_the_alert_json(name in file_name()) {
        let want_path = [&b"/tmp/"[..], &name].concat();
        let mut lines = creation_log(1, b"/home/alice", &want_path);
        lines.extend(creation_log(2, b"/tmp", &name));
        let got = pipeline(&lines);
        prop_assert_eq!(got.len(), 2);
        for (i, (path, origin, doc)) in got.into_iter().enumerate() {
            prop_assert_eq!(origin, if i == 0 { PathOrigin::Absolute } else { PathOrigin::Cwd });
            prop_assert_eq!(path.as_deref(), Some(&want_path[..]));
            let doc = doc.expect("the built-in rule matches an sftp-server drop into /tmp");
            prop_assert_eq!(exact(&doc, "file.path"), Some(want_path.clone()));
            prop_assert_eq!(exact(&doc, "file.name"), Some(name.clone()));
            prop_assert_eq!(exact(&doc, "file.directory"), Some(b"/tmp".to_vec()));
            // A UTF-8 name is exported as itself, with no raw copy.
            let utf8 = std::str::from_utf8(&name).is_ok();
            prop_assert_eq!(doc["wwatchd"]["raw"]["file.path"].is_null(), utf8);
        }
    }

    /// A relative name is joined to CWD and normalised: the result is the reference
    /// normalisation of `CWD/name`, absolute, with nothing above `/`.
    #[test]
    fn relative_names_join_cwd_and_never_leave_root(
        cwd in path_bytes().prop_map(|p| [&b"/"[..], &p].concat()),
        name in path_bytes().prop_filter("relative, non-empty", |n| !n.is_empty() && n[0] != b'/'),
    ) {
        let got = pipeline(&creation_log(3, &cwd, &name));
        prop_assert_eq!(got.len(), 1);
        let (path, origin, _) = &got[0];
        prop_assert_eq!(*origin, PathOrigin::Cwd);
        let want = reference_normalize(&[&cwd[..], b"/", &name].concat());
        prop_assert_eq!(path.as_deref(), Some(&want[..]));
    }
}

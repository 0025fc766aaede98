//! rule stage (netlink → record → event → **rule** → alert → syslog): evaluates a compiled
//! query on one event, without allocating.
//!
//! Logic is two-valued, as in the Elasticsearch query DSL the EQL is translated to: a
//! predicate on a missing field is false, and `not` (hence `!=`, `not in`) makes it true.

use super::ast::{CmpOp, Expr, FieldRef, Literal};
use super::wildcard::eq_ci;
use super::{FieldSource, FieldValue};
use std::cmp::Ordering;

pub(crate) fn eval(e: &Expr, ev: &dyn FieldSource) -> bool {
    match e {
        Expr::And(v) => v.iter().all(|e| eval(e, ev)),
        Expr::Or(v) => v.iter().any(|e| eval(e, ev)),
        Expr::Not(e) => !eval(e, ev),
        Expr::Const(b) => *b,
        Expr::IsNull(f) => !any_value(f, ev, &mut |_| true),
        Expr::Cmp { field, op, value } => any_value(field, ev, &mut |v| {
            compare(v, value).is_some_and(|o| holds(*op, o))
        }),
        Expr::In {
            field,
            values,
            case_insensitive,
        } => any_value(field, ev, &mut |v| {
            values.iter().any(|lit| match (v, lit) {
                (FieldValue::Str(s), Literal::Str(l)) if *case_insensitive => eq_ci(s, l),
                _ => compare(v, lit) == Some(Ordering::Equal),
            })
        }),
        Expr::Like {
            field, patterns, ..
        } => any_value(field, ev, &mut |v| match v {
            FieldValue::Str(s) => patterns.iter().any(|p| p.matches(s)),
            _ => false,
        }),
    }
}

/// True if some value of the field satisfies `f`; false when the field is missing or unknown.
fn any_value(
    f: &FieldRef,
    ev: &dyn FieldSource,
    pred: &mut dyn FnMut(FieldValue<'_>) -> bool,
) -> bool {
    match f.resolved {
        Some((id, _)) => ev.field_multi(id, pred),
        None => false,
    }
}

/// Orders an event value against a literal of the same type; `None` across types (the
/// compiler rejects such queries, so this only guards against a misbehaving event source).
fn compare(v: FieldValue<'_>, lit: &Literal) -> Option<Ordering> {
    match (v, lit) {
        (FieldValue::Str(a), Literal::Str(b)) => Some(a.cmp(b.as_str())),
        (FieldValue::Num(a), Literal::Num(b)) => Some(a.cmp(b)),
        (FieldValue::Bool(a), Literal::Bool(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

fn holds(op: CmpOp, o: Ordering) -> bool {
    match op {
        CmpOp::Eq => o == Ordering::Equal,
        CmpOp::Lt => o == Ordering::Less,
        CmpOp::Le => o != Ordering::Greater,
        CmpOp::Gt => o == Ordering::Greater,
        CmpOp::Ge => o != Ordering::Less,
    }
}

#[cfg(test)]
mod tests {
    use crate::rule::Query;
    use crate::rule::testutil::{Ev, TestSchema};

    fn q(src: &str) -> Query {
        match Query::compile(src, &TestSchema) {
            Ok(q) => q,
            Err(e) => panic!("{src}: {e}"),
        }
    }

    fn m(src: &str, ev: &Ev) -> bool {
        q(&format!("file where {src}")).matches(ev)
    }

    #[test]
    fn eq_ne_case_sensitive_no_wildcards() {
        let ev = Ev::new().s("process.name", "SSHD").s("file.path", "/tmp/*");
        assert!(m(r#"process.name == "SSHD""#, &ev));
        assert!(!m(r#"process.name == "sshd""#, &ev));
        assert!(m(r#"process.name != "sshd""#, &ev));
        assert!(!m(r#"process.name != "SSHD""#, &ev));
        // `*` is literal for ==.
        assert!(!m(r#"process.name == "SS*""#, &ev));
        assert!(m(r#"file.path == "/tmp/*""#, &ev));
    }

    #[test]
    fn missing_fields() {
        let ev = Ev::new().s("process.name", "scp");
        assert!(m(r#"user.id != "0""#, &ev));
        assert!(!m(r#"user.id == "0""#, &ev));
        assert!(!m(r#"user.id in ("0", "1")"#, &ev));
        assert!(m(r#"user.id not in ("0", "1")"#, &ev));
        assert!(!m(r#"user.id like "*""#, &ev));
        assert!(!m(r#"user.id : "*""#, &ev));
        assert!(!m("process.pid > 0", &ev));
        assert!(!m("process.pid < 0", &ev));
        assert!(m("user.id == null", &ev));
        assert!(!m("user.id != null", &ev));
        assert!(!m("process.name == null", &ev));
        assert!(m("process.name != null", &ev));
        assert!(m(r#"not user.id == "0""#, &ev));
        // Optional unknown field: always missing.
        assert!(m("?no.such.field == null", &ev));
        assert!(m(r#"?no.such.field != "x""#, &ev));
        assert!(!m(r#"?no.such.field == "x""#, &ev));
    }

    #[test]
    fn in_and_in_insensitive() {
        let ev = Ev::new().s("process.name", "Rsync");
        assert!(!m(r#"process.name in ("rsync", "scp")"#, &ev));
        assert!(m(r#"process.name in ("Rsync", "scp")"#, &ev));
        assert!(m(r#"process.name in~ ("RSYNC", "scp")"#, &ev));
        assert!(!m(r#"process.name in~ ("rsyn", "scp")"#, &ev));
        assert!(!m(r#"process.name in ("R*")"#, &ev));
        assert!(m(r#"process.name not in ("rsync")"#, &ev));
        assert!(!m(r#"process.name not in~ ("rsync")"#, &ev));
        assert!(m(r#"not process.name in ("rsync")"#, &ev));
        assert!(!m(r#"not process.name in ("Rsync")"#, &ev));
        let ev = Ev::new().n("process.pid", 42);
        assert!(m("process.pid in (1, 42)", &ev));
        assert!(!m("process.pid in (1, -42)", &ev));
        assert!(m("process.pid in (-1, 42)", &ev));
    }

    #[test]
    fn like_variants() {
        let ev = Ev::new().s("file.path", "/TMP/Payload.BIN");
        assert!(!m(r#"file.path like "/tmp/*""#, &ev));
        assert!(m(r#"file.path like "/TMP/*""#, &ev));
        assert!(m(r#"file.path like~ "/tmp/*.bin""#, &ev));
        assert!(m(r#"file.path : "/tmp/*""#, &ev));
        assert!(m(r#"file.path : ("/var/*", "/tmp/payload.???")"#, &ev));
        assert!(!m(r#"file.path : ("/var/*", "/tmp/payload.??")"#, &ev));
        assert!(m(r#"file.path like~ ("/var/*", "/tmp*")"#, &ev));
        // `*` crosses `/`.
        let ev = Ev::new().s("file.path", "/dev/shm/a/b/c");
        assert!(m(r#"file.path like "/dev/shm/*""#, &ev));
        assert!(m(r#"file.path like "*c""#, &ev));
    }

    #[test]
    fn home_dot_pattern() {
        let cases = [
            ("/home/.ssh/x", true),
            ("/home/.x", true),
            ("/home/alice/x", false),
            ("/homeX/.y", false),
            ("/HOME/.Y", true),
        ];
        for (path, want) in cases {
            let ev = Ev::new().s("file.path", path);
            assert_eq!(m(r#"file.path like~ "/home/.*""#, &ev), want, "{path}");
        }
    }

    #[test]
    fn numbers_and_booleans() {
        let ev = Ev::new()
            .n("process.pid", 100)
            .b("process.interactive", true);
        assert!(m("process.pid == 100", &ev));
        assert!(m("process.pid != 99", &ev));
        assert!(m("process.pid >= 100 and process.pid <= 100", &ev));
        assert!(m("process.pid > 99 and process.pid < 101", &ev));
        assert!(!m("process.pid > 100", &ev));
        assert!(m("process.pid > -5", &ev));
        assert!(m("process.interactive == true", &ev));
        assert!(!m("process.interactive == false", &ev));
        let ev = Ev::new().s("user.name", "bob");
        assert!(m(r#"user.name > "alice" and user.name < "carol""#, &ev));
    }

    #[test]
    fn precedence() {
        let ev = Ev::new().s("user.name", "a");
        // or binds loosest: (false and false) or true.
        assert!(m(
            r#"user.name == "x" and user.name == "y" or user.name == "a""#,
            &ev
        ));
        // and binds tighter: true or (false and false).
        assert!(m(
            r#"user.name == "a" or user.name == "x" and user.name == "y""#,
            &ev
        ));
        assert!(!m(
            r#"(user.name == "a" or user.name == "x") and user.name == "y""#,
            &ev
        ));
        // not binds tightest: (not true) and ... => false; (not false) or ...
        assert!(!m(r#"not user.name == "a" and user.name == "a""#, &ev));
        assert!(m(r#"not (user.name == "a" and user.name == "b")"#, &ev));
        assert!(m(r#"not not user.name == "a""#, &ev));
        assert!(m("true", &ev));
        assert!(!m("false or not true", &ev));
    }

    #[test]
    fn escapes_and_raw_strings() {
        let ev = Ev::new().s("file.name", "a\"b\\c\td");
        assert!(m(r#"file.name == "a\"b\\c\td""#, &ev));
        assert!(m(r#"file.name == "a\u{22}b\u{5C}c\u{9}d""#, &ev));
        let ev = Ev::new().s("file.name", r"C:\x\n");
        assert!(m(r#"file.name == """C:\x\n""""#, &ev));
        assert!(m(r#"file.name like """C:\*""""#, &ev));
        let ev = Ev::new().s("file name", "x");
        assert!(m(r#"`file name` == "x""#, &ev));
        assert!(m(r#"`process.name` == null"#, &ev));
    }

    #[test]
    fn multi_valued_fields_any_semantics() {
        let ev = Ev::new().many(
            "process.args",
            &["rsync", "--server", "-vlogDtpre.iLsfxCIvu"],
        );
        assert!(m(r#"process.args == "--server""#, &ev));
        assert!(m(r#"process.args : "*SERVER*""#, &ev));
        assert!(m(r#"process.args in ("x", "rsync")"#, &ev));
        // `!=` is the negation of `==`: no element may equal the value.
        assert!(!m(r#"process.args != "--server""#, &ev));
        assert!(m(r#"process.args != "--client""#, &ev));
        assert!(m("process.args != null", &ev));
        let empty = Ev::new().many("process.args", &[]);
        assert!(m("process.args == null", &empty));
    }

    const SEED: &str = r#"file where host.os.type == "linux" and event.action == "creation" and
process.name in ("scp", "sshd", "ssh", "ftp", "sftp", "vsftpd", "sftp-server", "rsync") and
file.path like~ ("/tmp*", "/var/tmp*", "/dev/shm/*", "/home/.*") and user.id != "0"
"#;

    fn drop(proc_: &str, path: &str, uid: Option<&str>) -> Ev {
        let ev = Ev::new()
            .s("host.os.type", "linux")
            .s("event.action", "creation")
            .s("process.name", proc_)
            .s("file.path", path);
        match uid {
            Some(u) => ev.s("user.id", u),
            None => ev,
        }
    }

    #[test]
    fn seed_query() {
        let query = q(SEED);
        assert_eq!(query.category(), "file");
        let yes = [
            drop("sftp-server", "/tmp/x.bin", Some("1001")),
            drop("scp", "/var/tmp/a/b", Some("1000")),
            drop("rsync", "/dev/shm/.x.abc123", Some("1000")),
            drop("sshd", "/home/.hidden/k", Some("1000")),
            drop("vsftpd", "/TMP/UPPER", Some("33")),
            drop("sftp-server", "/tmpfoo", None),
        ];
        for ev in &yes {
            assert!(query.matches(ev), "{ev:?}");
        }
        let no = [
            drop("sftp-server", "/tmp/x.bin", Some("0")),
            drop("bash", "/tmp/x.bin", Some("1000")),
            drop("SCP", "/tmp/x.bin", Some("1000")),
            drop("scp", "/home/alice/x", Some("1000")),
            drop("scp", "/dev/shm", Some("1000")),
            drop("scp", "/opt/tmp/x", Some("1000")),
            drop("sftp-server", "/tmp/x.bin", Some("1000")).s("event.action", "deletion"),
            drop("sftp-server", "/tmp/x.bin", Some("1000")).s("host.os.type", "windows"),
            Ev::new()
                .s("host.os.type", "linux")
                .s("process.name", "scp")
                .s("file.path", "/tmp/x"),
        ];
        for ev in &no {
            assert!(!query.matches(ev), "{ev:?}");
        }
    }
}

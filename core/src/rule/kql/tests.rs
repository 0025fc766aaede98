//! rule::kql tests: the grammar, and each Kibana / Elasticsearch fact of the module doc.

use crate::rule::ast::{CmpOp, Expr, Literal};
use crate::rule::testutil::{Ev, TestSchema};
use crate::rule::{EqlErrorKind, Query};

fn q(src: &str) -> Query {
    match Query::compile_kql(src, &TestSchema) {
        Ok(q) => q,
        Err(e) => panic!("{src}: {e}"),
    }
}

fn m(src: &str, ev: &Ev) -> bool {
    q(src).matches(ev)
}

fn err(src: &str) -> String {
    match Query::compile_kql(src, &TestSchema) {
        Ok(q) => panic!("{src}: compiled to {:?}", q.ast()),
        Err(e) => e.to_string(),
    }
}

fn unsupported(src: &str, at: &str, feature: &str) {
    assert_eq!(
        err(src),
        format!("{at}: unsupported KQL feature: {feature}; wwatchd evaluates field:value queries"),
        "{src}"
    );
}

fn name(v: &str) -> Ev {
    Ev::new().s("file.name", v)
}

/// `is.ts`: `match`/`match_phrase`, or `term` on a keyword field: exact and case-sensitive.
#[test]
fn keyword_values_are_exact_and_case_sensitive() {
    let ev = Ev::new().s("process.name", "sshd");
    assert!(m("process.name:sshd", &ev));
    assert!(m("process.name : \"sshd\"", &ev));
    assert!(!m("process.name:SSHD", &ev));
    assert!(!m("process.name:\"SSHD\"", &ev));
    assert!(!m("process.name:ssh", &ev));
    assert!(!m(
        "process.name:sshd2",
        &Ev::new().s("process.name", "sshd2x")
    ));
    // A value is the whole string, not a token of it.
    assert!(!m(
        "process.name:sshd",
        &Ev::new().s("process.name", "sshd session")
    ));
}

/// `wildcard` (or `query_string`) without `case_insensitive`: case-sensitive; `*` crosses `/`.
#[test]
fn wildcards_are_case_sensitive_and_cross_slashes() {
    assert!(m(
        "file.path:/tmp/*",
        &Ev::new().s("file.path", "/tmp/a/b/c")
    ));
    assert!(m("file.path:/tmp*", &Ev::new().s("file.path", "/tmpfoo")));
    assert!(m(
        "file.path:*/.ssh/*",
        &Ev::new().s("file.path", "/home/a/.ssh/k")
    ));
    assert!(!m("file.path:/tmp/*", &Ev::new().s("file.path", "/TMP/a")));
    assert!(!m("file.path:/TMP/*", &Ev::new().s("file.path", "/tmp/a")));
    assert!(m("file.name:*.so.*", &name("libc.so.6")));
    assert!(!m("file.name:*.so.*", &name("libc.so")));
    assert!(m("file.name:a**b", &name("axxb")));
    // `.` is no wildcard: `.*` is "starts with a dot".
    assert!(m(
        "process.name:.*",
        &Ev::new().s("process.name", ".hidden")
    ));
    assert!(!m("process.name:.*", &Ev::new().s("process.name", "x")));
}

/// `wildcard.ts` escapes `?` for the query: it is a plain character in KQL.
#[test]
fn question_mark_is_a_plain_character() {
    assert!(m("file.name:a?c", &name("a?c")));
    assert!(!m("file.name:a?c", &name("abc")));
    let p = "*/AppData/Local/GitHub?Copilot/*";
    assert!(m(
        &format!("file.path:{p}"),
        &Ev::new().s("file.path", "C:/AppData/Local/GitHub?Copilot/x")
    ));
    assert!(!m(
        &format!("file.path:{p}"),
        &Ev::new().s("file.path", "C:/AppData/Local/GitHub Copilot/x")
    ));
}

/// A quoted value is a phrase, never a wildcard.
#[test]
fn quoted_values_have_no_wildcards() {
    assert!(m(
        "file.path:\"/tmp/*\"",
        &Ev::new().s("file.path", "/tmp/*")
    ));
    assert!(!m(
        "file.path:\"/tmp/*\"",
        &Ev::new().s("file.path", "/tmp/x")
    ));
    assert!(m("file.name:\"a or b\"", &name("a or b")));
    assert!(m("file.name:\"(x:y)\"", &name("(x:y)")));
}

#[test]
fn escapes() {
    assert!(m(r"file.name:a\*b", &name("a*b")));
    assert!(!m(r"file.name:a\*b", &name("axb")));
    assert!(m(r"file.name:a\*b*", &name("a*bcd")));
    assert!(m(r"file.name:c\:\\x\(1\)\{\}\<\>", &name(r"c:\x(1){}<>")));
    assert!(m(r#"file.name:say\"hi\""#, &name("say\"hi\"")));
    assert!(m(r"file.name:a\tb", &name("a\tb")));
    assert!(m(r"file.name:\u0041\u00e9", &name("Aé")));
    assert!(m(r"file.name:\uD83D\uDE00", &name("😀")));
    // Escaped keywords, case kept.
    assert!(m(r"file.name:\or", &name("or")));
    assert!(m(r"file.name:x \AND y", &name("x AND y")));
    assert!(m(r"file.name:\NOT x", &name("NOT x")));
    // `\n` is read first, as in Kibana: `\not` is a newline and "ot", and the newline is
    // trimmed.
    assert!(m(r"file.name:\not x", &name("ot x")));
    // In quotes: \" and \\; any other backslash is itself.
    assert!(m(r#"file.name:"a\"b\\c""#, &name(r#"a"b\c"#)));
    assert!(m(r#"file.name:"C:\x\*""#, &name(r"C:\x\*")));
    assert!(m(r#"file.name:"\u0041\n""#, &name("A\n")));
    // Unquoted, a backslash that escapes nothing ends the value: an error.
    assert_eq!(
        err(r"file.name:a\x"),
        "1:12: expected 'and', 'or' or end of query, found '\\\\'"
    );
    unsupported(
        r"file.name:\uD800",
        "1:11",
        "a lone UTF-16 surrogate ('\\uD800')",
    );
}

/// `exists`: any value, including the empty string; false when the field is missing.
#[test]
fn lone_wildcard_is_exists() {
    assert!(m("user.id:*", &Ev::new().s("user.id", "")));
    assert!(m("user.id:*", &Ev::new().s("user.id", "0")));
    assert!(!m("user.id:*", &Ev::new()));
    assert!(m("not file.extension:*", &name("x")));
    assert!(!m(
        "not file.extension:*",
        &Ev::new().s("file.extension", "so")
    ));
    assert!(!m("process.args:*", &Ev::new().many("process.args", &[])));
    assert!(m("process.pid:*", &Ev::new().n("process.pid", 1)));
    assert!(matches!(q("user.id:*").ast(), Expr::Not(i) if matches!(**i, Expr::IsNull(_))));
}

/// `not.ts`: `bool.must_not`, true when the field is missing.
#[test]
fn not_is_true_on_a_missing_field() {
    let ev = Ev::new().s("process.name", "scp");
    assert!(m("not user.id:0", &ev));
    assert!(!m("user.id:0", &ev));
    assert!(m("not user.id:(0 or 1)", &ev));
    assert!(m("not file.path:/tmp/*", &ev));
    assert!(!m("not user.id:0", &ev.clone().s("user.id", "0")));
}

/// not binds tighter than and, and tighter than or.
#[test]
fn precedence() {
    let ev = Ev::new().s("user.name", "a");
    assert!(m("user.name:x and user.name:y or user.name:a", &ev));
    assert!(m("user.name:a or user.name:x and user.name:y", &ev));
    assert!(!m("(user.name:a or user.name:x) and user.name:y", &ev));
    assert!(!m("not user.name:a and user.name:a", &ev));
    assert!(m("not (user.name:a and user.name:b)", &ev));
    assert!(m("not user.name:b or user.name:c", &ev));
}

#[test]
fn keywords_are_case_insensitive_and_need_whitespace() {
    let ev = Ev::new().s("user.name", "a").s("user.id", "1");
    assert!(m("user.name:x OR user.name:a", &ev));
    assert!(m("user.name:a And user.id:1", &ev));
    assert!(m("NOT user.name:x", &ev));
    assert!(m("user.name:a\nand\tuser.id:1", &ev));
    assert!(m("user.name:a\u{a0}and user.id:1", &ev));
    // `or` at the end is part of the value; `and(` is no keyword either.
    assert!(m("user.name:a or", &Ev::new().s("user.name", "a or")));
    assert!(m("user.name:(a or)", &Ev::new().s("user.name", "a or")));
    assert!(err("user.name:a and(user.id:1)").starts_with("1:16: expected"));
    // `not(` is not `not`: it reads as free text.
    unsupported(
        "not(user.name:a)",
        "1:1",
        "free text (`not` has no field; write field:value)",
    );
    // `not` ends an unquoted value even inside a word.
    assert!(err("file.name:cannot x").starts_with("1:14: expected 'and', 'or' or end of query"));
    // One `not` at a time, as in Kibana's grammar.
    assert_eq!(
        err("not not user.name:a"),
        "1:5: expected a field name, 'not' or '(', found `not`"
    );
    assert!(m("not (not user.name:a)", &ev));
}

/// Unquoted values may hold spaces and are trimmed; several spaces before a keyword too.
#[test]
fn unquoted_values_hold_spaces_and_are_trimmed() {
    assert!(m("file.name: a b ", &name("a b")));
    assert!(m("file.name:(a b )", &name("a b")));
    assert!(m("file.name:x  or file.name:y", &name("x")));
    assert!(m(
        "process.name:(foo  or bar)",
        &Ev::new().s("process.name", "bar")
    ));
    assert!(m("  file.name : x  ", &name("x")));
    // A lone field name in quotes.
    assert!(m("\"file.name\":x", &name("x")));
}

/// `field:(group)` distributes the field; each part is its own query on the field.
#[test]
fn value_groups_distribute_the_field() {
    let pn = |n: &str| Ev::new().s("process.name", n);
    let src = "process.name:(* and not (sudo or vim or python*))";
    assert!(m(src, &pn("bash")));
    assert!(!m(src, &pn("vim")));
    assert!(!m(src, &pn("python3")));
    assert!(!m(src, &Ev::new()));
    let src = "file.path:((/dev/shm/* or /tmp*) and not (/tmp/ansible-tmp-* or /x))";
    let fp = |p: &str| Ev::new().s("file.path", p);
    assert!(m(src, &fp("/tmp/a")));
    assert!(m(src, &fp("/dev/shm/a")));
    assert!(!m(src, &fp("/tmp/ansible-tmp-1/x")));
    assert!(!m(src, &fp("/var/tmp/a")));
    // On an array, `(a and b)` asks for both values somewhere in it.
    let args = Ev::new().many("process.args", &["rsync", "--server"]);
    assert!(m("process.args:(rsync and --server)", &args));
    assert!(!m("process.args:(rsync and --client)", &args));
}

/// Any value of an array matches; `not` only if none does.
#[test]
fn multi_valued_fields() {
    let ev = Ev::new().many("process.args", &["sh", "-c", "id"]);
    assert!(m("process.args:-c", &ev));
    assert!(m("process.args:(\"-c\" or \"-i\")", &ev));
    assert!(m("process.args:i*", &ev));
    assert!(!m("not process.args:-c", &ev));
    assert!(m("not process.args:-x", &ev));
}

/// Values are strings until the field's type reads them.
#[test]
fn values_follow_the_field_type() {
    assert!(m("user.id:0", &Ev::new().s("user.id", "0")));
    assert!(!m("user.id:0", &Ev::new().s("user.id", "00")));
    assert!(m("user.id:\"0\"", &Ev::new().s("user.id", "0")));
    assert!(m("process.pid:42", &Ev::new().n("process.pid", 42)));
    assert!(m("process.pid:\"-7\"", &Ev::new().n("process.pid", -7)));
    assert!(m("process.pid:(1 or 42)", &Ev::new().n("process.pid", 42)));
    assert!(m(
        "process.interactive:true",
        &Ev::new().b("process.interactive", true)
    ));
    assert!(m(
        "process.interactive:\"false\"",
        &Ev::new().b("process.interactive", false)
    ));
    assert!(m(
        "file.extension:true",
        &Ev::new().s("file.extension", "true")
    ));
    assert!(m(
        "file.extension:\"null\"",
        &Ev::new().s("file.extension", "null")
    ));
    assert_eq!(
        err("process.pid:abc"),
        "1:13: long field `process.pid` needs an integer, not `abc`"
    );
    assert_eq!(
        err("process.pid:1.5"),
        "1:13: long field `process.pid` needs an integer, not `1.5`"
    );
    assert_eq!(
        err("process.pid:4*"),
        "1:13: a wildcard value needs a keyword field, but `process.pid` is long"
    );
    assert_eq!(
        err("process.interactive:yes"),
        "1:21: boolean field `process.interactive` needs true or false, not `yes`"
    );
}

/// `range.ts`: keyword ranges compare strings, long ranges numbers.
#[test]
fn ranges() {
    let ev = Ev::new().s("user.name", "bob").n("process.pid", 100);
    assert!(m("user.name > alice and user.name < carol", &ev));
    assert!(m("user.name >= bob and user.name <= bob", &ev));
    assert!(!m("user.name > bob", &ev));
    assert!(m("process.pid>=100 and process.pid<101", &ev));
    assert!(m("process.pid > \"99\"", &ev));
    assert!(!m("process.pid > 100", &ev));
    assert!(!m("user.id < z", &ev));
    assert!(m("not user.id < z", &ev));
    // Term order is UTF-8 byte order: 'é' sorts after 'z'.
    assert!(m("file.name > z", &name("é")));
    // A `*` in a range bound is a plain character.
    assert!(m("file.name < a*", &name("a")));
    assert!(!m("file.name < a*", &name("a*")));
    assert!(m("file.name <= a*", &name("a*")));
    assert_eq!(
        err("process.interactive > false"),
        "1:23: boolean field `process.interactive` cannot be ordered"
    );
    assert_eq!(
        err("process.pid < x"),
        "1:15: long field `process.pid` needs an integer, not `x`"
    );
    assert_eq!(
        err("process.pid < "),
        "1:15: expected a value after the range operator, found end of query"
    );
}

#[test]
fn refused_features_are_named() {
    unsupported(
        "sshd",
        "1:1",
        "free text (`sshd` has no field; write field:value)",
    );
    unsupported(
        "process.name:sshd or \"quoted words\"",
        "1:22",
        "free text (`quoted words` has no field; write field:value)",
    );
    unsupported("null:x", "1:1", "free text (a null field name)");
    unsupported("user:{ id:0 }", "1:1", "nested queries ('field:{...}')");
    unsupported(
        "process.*:sshd",
        "1:1",
        "wildcards in field names (`process.*`)",
    );
    unsupported("*:sshd", "1:1", "wildcards in field names (`*`)");
    unsupported(
        "file.name:null",
        "1:11",
        "an unquoted null value (Elasticsearch refuses a null term; write \"null\" for the string)",
    );
    unsupported(
        "file.name:my file*",
        "1:11",
        "a wildcard value with whitespace (`my file*`: Elasticsearch's query_string splits it into separate terms, elastic/kibana#23001)",
    );
}

#[test]
fn syntax_errors_have_positions() {
    assert_eq!(
        err("file.name:"),
        "1:11: expected a value or '(', found end of query"
    );
    assert_eq!(
        err("file.name:(a or b"),
        "1:18: expected ')', 'and' or 'or', found end of query"
    );
    assert_eq!(
        err("(file.name:a"),
        "1:13: expected ')', 'and' or 'or', found end of query"
    );
    assert_eq!(
        err("file.name:\"abc"),
        "1:11: expected a '\"' closing the string that starts here, found end of query"
    );
    // Without a space after it, a trailing `and` is part of the value.
    assert!(m("file.name:a and", &name("a and")));
    assert_eq!(
        err("file.name:a and "),
        "1:17: expected a field name, 'not' or '(', found end of query"
    );
    assert_eq!(
        err("file.name:a\n  and )"),
        "2:7: expected a field name, 'not' or '(', found ')'"
    );
    // Columns count characters.
    assert_eq!(
        err("file.name:\"é\" )"),
        "1:15: expected 'and', 'or' or end of query, found ')'"
    );
}

/// Every unknown field and type error at once, in text order, then the syntax error.
#[test]
fn every_error_at_once() {
    let e = err("a.b:x and process.pid:y and\n  c.d:* and file.name:(x or ");
    let lines: Vec<&str> = e.lines().collect();
    assert_eq!(lines.len(), 4, "{e}");
    assert!(
        lines[0].starts_with("1:1: unknown field `a.b`: wwatchd's events never carry it"),
        "{e}"
    );
    assert!(
        lines[1].starts_with("1:23: long field `process.pid` needs an integer"),
        "{e}"
    );
    assert!(lines[2].starts_with("2:3: unknown field `c.d`"), "{e}");
    assert!(lines[3].starts_with("2:29: expected a value or '('"), "{e}");
    let k = Query::compile_kql("no.such:1", &TestSchema).err();
    assert_eq!(
        k.map(|e| e.kind().clone()),
        Some(EqlErrorKind::KqlUnknownField("no.such".into()))
    );
}

#[test]
fn empty_query_matches_every_event() {
    assert!(m("", &Ev::new()));
    assert!(m("  \n ", &Ev::new()));
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let src = format!("{}file.name:x{}", "(".repeat(100_000), ")".repeat(100_000));
    assert!(err(&src).contains("levels of nesting"));
    let src = format!("file.name:{}x{}", "(".repeat(100_000), ")".repeat(100_000));
    assert!(err(&src).contains("levels of nesting"));
    let src = format!(
        "file.name:{}x{}",
        "(not ".repeat(100_000),
        ")".repeat(100_000)
    );
    assert!(err(&src).contains("levels of nesting"));
}

/// The tree the push-down reads: a group's exact values become one `In`, its patterns
/// one `Like`; `not user.id:0` is the `Not(Cmp)` that gives the kernel's `uid!=0`.
#[test]
fn ast_shape_for_pushdown() {
    let src = "event.category:file and process.name:(ftp or rsync) and\n\
               file.path:((/dev/shm/* or /tmp*) and not (/tmp/ansible-tmp-*)) and not user.id:0";
    let query = q(src);
    let c = query.ast().conjuncts();
    assert_eq!(c.len(), 5, "{c:?}");
    assert!(
        matches!(&c[0], Expr::Cmp { field, op: CmpOp::Eq, value: Literal::Str(s) }
        if field.name == "event.category" && s == "file")
    );
    assert!(
        matches!(&c[1], Expr::In { field, values, case_insensitive: false }
        if field.name == "process.name" && values.len() == 2)
    );
    match &c[2] {
        Expr::Like {
            field,
            patterns,
            case_insensitive: false,
        } => {
            assert_eq!(field.name, "file.path");
            assert_eq!((field.span.line, field.span.col), (2, 1));
            let p: Vec<&str> = patterns.iter().map(|p| p.literal_prefix()).collect();
            assert_eq!(p, ["/dev/shm/", "/tmp"]);
            assert!(patterns.iter().all(|p| !p.is_case_insensitive()));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(&c[3], Expr::Not(_)));
    assert!(matches!(&c[4], Expr::Not(i) if matches!(&**i,
        Expr::Cmp { field, op: CmpOp::Eq, value: Literal::Str(s) } if field.name == "user.id" && s == "0")));
}

/// Elastic's current seed query against the seed's EQL v3 (the built-in): the same on
/// the events both mean, different exactly where the queries differ.
#[test]
fn seed_kql_against_seed_eql_v3() {
    let kql = q(
        "event.category:file and host.os.type:linux and event.action:creation and\n\
                 process.name:(ftp or rsync or scp or sftp or sftp-server or ssh or sshd or vsftpd) and\n\
                 file.path:((/dev/shm/* or /tmp* or /var/tmp*) and not (/tmp/ansible-tmp-* or /var/tmp/ansible-tmp-*)) and\n\
                 not user.id:0",
    );
    let eql = match Query::compile(
        "file where host.os.type == \"linux\" and event.action == \"creation\" and\n\
         process.name in (\"scp\", \"sshd\", \"ssh\", \"ftp\", \"sftp\", \"vsftpd\", \"sftp-server\", \"rsync\") and\n\
         file.path like~ (\"/tmp*\", \"/var/tmp*\", \"/dev/shm/*\", \"/home/.*\") and user.id != \"0\"",
        &TestSchema,
    ) {
        Ok(q) => q,
        Err(e) => panic!("{e}"),
    };
    let ev = |p: &str, path: &str, uid: Option<&str>| {
        let e = Ev::new()
            .s("event.category", "file")
            .s("host.os.type", "linux")
            .s("event.action", "creation")
            .s("process.name", p)
            .s("file.path", path);
        match uid {
            Some(u) => e.s("user.id", u),
            None => e,
        }
    };
    // (event, EQL v3, KQL)
    let cases = [
        (ev("sftp-server", "/tmp/x.bin", Some("1001")), true, true),
        (ev("scp", "/var/tmp/a/b", Some("1000")), true, true),
        (ev("rsync", "/dev/shm/.x", Some("1000")), true, true),
        (ev("sftp-server", "/tmpfoo", None), true, true),
        (ev("scp", "/tmp/x", Some("0")), false, false),
        (ev("bash", "/tmp/x", Some("1000")), false, false),
        (ev("SCP", "/tmp/x", Some("1000")), false, false),
        (ev("scp", "/opt/tmp/x", Some("1000")), false, false),
        (ev("scp", "/home/alice/x", Some("1000")), false, false),
        // The differences: KQL drops /home/.*, excludes Ansible's temporary files, and its
        // wildcards are case-sensitive where EQL's like~ is not.
        (ev("sshd", "/home/.hidden/k", Some("1000")), true, false),
        (
            ev(
                "sftp",
                "/tmp/ansible-tmp-1712-1/AnsiballZ_x.py",
                Some("1000"),
            ),
            true,
            false,
        ),
        (
            ev("scp", "/var/tmp/ansible-tmp-9/x", Some("1000")),
            true,
            false,
        ),
        (ev("scp", "/tmp/ansible-tmpX", Some("1000")), true, true),
        (ev("vsftpd", "/TMP/UPPER", Some("33")), true, false),
    ];
    for (e, want_eql, want_kql) in &cases {
        assert_eq!(eql.matches(e), *want_eql, "EQL {e:?}");
        assert_eq!(kql.matches(e), *want_kql, "KQL {e:?}");
    }
}

mod never_panics {
    use crate::rule::Query;
    use crate::rule::testutil::{Ev, TestSchema};
    use proptest::prelude::*;

    const WORDS: &[&str] = &[
        "file.path",
        "user.id",
        "process.pid",
        "process.interactive",
        ":",
        "(",
        ")",
        " ",
        "or",
        "and",
        "not",
        "*",
        "\"",
        "\\",
        "\\u",
        "D83D",
        "<",
        ">=",
        "{",
        "}",
        "\"x y\"",
        "/tmp/*",
        "a?b",
        "true",
        "null",
        "0",
        "-5",
        "\n",
        "é",
        "\\*",
        "\\or",
    ];

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(src in "\\PC{0,60}") {
            if let Ok(q) = Query::compile_kql(&src, &TestSchema) {
                let _ = q.matches(&Ev::new().s("user.id", "0"));
            }
        }

        #[test]
        fn token_soup_never_panics(idx in proptest::collection::vec(0..WORDS.len(), 0..30)) {
            let src: String = idx.iter().map(|i| WORDS[*i]).collect();
            match Query::compile_kql(&src, &TestSchema) {
                Ok(q) => { let _ = q.matches(&Ev::new().n("process.pid", 1)); }
                Err(e) => {
                    prop_assert!(e.line() >= 1 && e.col() >= 1);
                    prop_assert!(e.offset() <= src.len());
                    prop_assert!(!e.message().is_empty());
                }
            }
        }
    }
}

//! Helpers shared by the fuzz targets: a synthetic event for the rule evaluator, stand-ins
//! for the I/O edges (file system, /proc, user database), and the checks every compiled
//! query and every query error must pass.

use std::path::Path;

use wwatchd_core::kernel_rule::{self, WatchFs};
use wwatchd_core::file_event::{Enricher, FIELDS, FileSchema};
use wwatchd_core::rule::{
    EqlError, FieldId, FieldSource, FieldType, FieldValue, Query, Rule, RuleMeta, Schema,
};

/// An event that gives every schema field a value from a fixed table (or none at all), so a
/// fuzzed query can be evaluated without building a real file event.
pub struct SynthEvent {
    /// Values for keyword fields, indexed like `FIELDS`; `None` leaves the field missing.
    strs: Vec<Option<&'static str>>,
    num: Option<i64>,
    /// The values of the multi-valued `process.args`.
    args: &'static [&'static str],
}

impl SynthEvent {
    /// Three events: one the built-in rule matches, one with every field missing, and one
    /// with odd values (Unicode that folds, wildcard characters, extreme numbers).
    pub fn all() -> Vec<SynthEvent> {
        let hit = |name: &str| -> Option<&'static str> {
            Some(match name {
                "host.os.type" => "linux",
                "event.action" | "event.type" => "creation",
                "event.category" => "file",
                "process.name" => "sftp-server",
                "process.executable" => "/usr/lib/openssh/sftp-server",
                "file.path" => "/tmp/x.bin",
                "file.name" => "x.bin",
                "file.directory" => "/tmp",
                "file.extension" => "bin",
                "user.id" | "user.effective.id" | "file.uid" => "1001",
                "user.name" => "alice",
                "tags" => "wwatchd",
                "source.ip" => "127.0.0.1",
                _ => "x",
            })
        };
        let odd = |name: &str| -> Option<&'static str> {
            Some(match name {
                "file.path" => "/TMP/İé*?\u{212a}/../x",
                "user.id" => "0",
                "process.name" => "",
                n if n.len() % 2 == 0 => "ß\u{0}\u{ffff}",
                _ => return None,
            })
        };
        vec![
            SynthEvent {
                strs: FIELDS.iter().map(|(n, _)| hit(n)).collect(),
                num: Some(1001),
                args: &["/usr/lib/openssh/sftp-server", "-e"],
            },
            SynthEvent {
                strs: vec![None; FIELDS.len()],
                num: None,
                args: &[],
            },
            SynthEvent {
                strs: FIELDS.iter().map(|(n, _)| odd(n)).collect(),
                num: Some(i64::MIN),
                args: &["", "İ", "*"],
            },
        ]
    }
}

impl FieldSource for SynthEvent {
    fn field(&self, id: FieldId) -> Option<FieldValue<'_>> {
        let i = usize::from(id.0);
        match FIELDS.get(i)?.1 {
            FieldType::Keyword => self.strs[i].map(FieldValue::Str),
            FieldType::Long => self.num.map(FieldValue::Num),
            FieldType::Boolean => Some(FieldValue::Bool(i % 2 == 0)),
        }
    }

    fn field_multi(&self, id: FieldId, f: &mut dyn FnMut(FieldValue<'_>) -> bool) -> bool {
        if FIELDS.get(usize::from(id.0)).map(|f| f.0) == Some("process.args") {
            return self.args.iter().any(|a| f(FieldValue::Str(a)));
        }
        self.field(id).is_some_and(f)
    }
}

/// A file system where every path is a directory and every directory holds two hidden
/// subdirectories, so the audit-rule derivation takes all its branches.
pub struct FakeFs;

impl WatchFs for FakeFs {
    fn is_dir(&self, p: &Path) -> bool {
        p.as_os_str().len().is_multiple_of(2)
    }

    fn subdirs_starting_with(&self, _dir: &Path, prefix: &str) -> Vec<String> {
        vec![format!("{prefix}a"), format!("{prefix}b")]
    }
}

/// Answers the enricher's questions without I/O: names for ids, and a directory for the fds
/// of even pids (odd pids leave dirfd-relative names unresolved).
pub struct FakeEnrich;

impl Enricher for FakeEnrich {
    fn user_name(&mut self, uid: u32) -> Option<String> {
        (uid != 4242).then(|| format!("u{uid}"))
    }
    fn group_name(&mut self, gid: u32) -> Option<String> {
        Some(format!("g{gid}"))
    }
    fn fd_path(&mut self, pid: u32, fd: u32) -> Option<Vec<u8>> {
        match pid % 3 {
            0 => Some(format!("/proc-fd/{fd}/../d").into_bytes()),
            1 => Some(b"relative/dir".to_vec()),
            _ => None,
        }
    }
    fn host_name(&self) -> Option<&str> {
        Some("fuzzhost")
    }
}

/// Evaluates a compiled query on the synthetic events, walks its tree, and derives kernel
/// audit rules from it: none of it may panic, and every derived rule must print.
pub fn exercise_rule(rule: &Rule) {
    let q = &rule.query;
    assert_eq!(q.category(), "file");
    let mut nodes = 0usize;
    q.ast().walk(&mut |_| nodes += 1);
    assert!(nodes >= q.ast().conjuncts().len());
    for ev in SynthEvent::all() {
        let _ = q.matches(&ev);
    }
    if let Ok(rules) = kernel_rule::derive(std::slice::from_ref(rule), &[], &FakeFs) {
        for r in &rules {
            let text = r.to_auditctl();
            assert!(text.starts_with("-a always,exit"));
            let _ = r.to_spec();
        }
        let _ = kernel_rule::rules_file_text(&rules);
    }
}

/// A query error must point inside the text, and its line and column must be those of its
/// byte offset.
pub fn check_eql_error(src: &str, e: &EqlError) {
    let _ = e.to_string();
    let off = e.offset();
    assert!(
        off <= src.len(),
        "offset {off} past the end ({})",
        src.len()
    );
    assert!(src.is_char_boundary(off), "offset {off} inside a character");
    let before = &src[..off];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    assert_eq!((e.line(), e.col()), (line, col), "span of {e}");
}

/// Compiles `src` against the real schema, and checks what comes out.
pub fn compile_and_check(src: &str) -> Option<Query> {
    match Query::compile(src, &FileSchema) {
        Ok(q) => Some(q),
        Err(e) => {
            check_eql_error(src, &e);
            None
        }
    }
}

/// Compiles the KQL `src` against the real schema, and checks what comes out.
pub fn compile_kql_and_check(src: &str) -> Option<Query> {
    match Query::compile_kql(src, &FileSchema) {
        Ok(q) => Some(q),
        Err(e) => {
            check_eql_error(src, &e);
            for m in e.more() {
                check_eql_error(src, m);
            }
            None
        }
    }
}

/// A rule around a bare query, as the loader would make it.
pub fn rule_from_query(query: Query) -> Rule {
    Rule {
        meta: RuleMeta {
            name: "fuzz".into(),
            rule_id: "fuzz".into(),
            description: String::new(),
            severity: "low".into(),
            risk_score: 1,
            version: None,
            threat: Vec::new(),
            tags: Vec::new(),
            references: Vec::new(),
            author: Vec::new(),
            license: None,
            note: None,
            maturity: None,
            creation_date: None,
            updated_date: None,
            from_file: None,
            origin: "fuzz".into(),
        },
        query,
        new_terms: None,
    }
}

/// Whether `FileSchema` knows every name it lists (a sanity check the targets run once).
pub fn schema_is_complete() -> bool {
    FIELDS.iter().all(|(n, _)| FileSchema.lookup(n).is_some())
}

//! rule stage (netlink → record → event → **rule** → alert → syslog): Elastic detection rules
//! in EQL or KQL, compiled once and evaluated on every file event.
//!
//! wwatchd evaluates the subset of EQL that a single-event `file where` rule uses, with the
//! semantics Elasticsearch gives it (ES is the runtime the rules are written for):
//!
//! ```text
//! query      := "file" "where" expr
//! expr       := and ("or" and)*
//! and        := not ("and" not)*
//! not        := "not" not | primary
//! primary    := "(" expr ")" | "true" | "false" | field predicate
//! field      := ["?"] (name | `backquoted name`)
//! predicate  := ("==" | "!=" | "<" | "<=" | ">" | ">=") value
//!             | ["not"] ("in" | "in~") "(" value ("," value)* ")"
//!             | ("like" | "like~" | ":") (string | "(" string ("," string)* ")")
//! value      := string | """raw string""" | ["-"] integer | "true" | "false" | "null"
//! ```
//!
//! * `==`, `!=`, `in` are case-sensitive; `in~` is not. None of them use wildcards.
//! * `like` is a case-sensitive wildcard match; `like~` and `:` are case-insensitive.
//!   `*` is any run of characters (including `/`), `?` exactly one; all else is literal.
//! * A missing field fails every predicate except `!=` (and `== null`); `not` inverts.
//!   A multi-valued field satisfies a predicate if any value does; `!=` and `not in` are the
//!   negations of `==` and `in`, as in the Elasticsearch query they compile to.
//!
//! Everything else in EQL (other categories, sequences, samples, joins, pipes, functions,
//! arithmetic, `regex`) is refused at compile time with an error naming the feature, never
//! silently evaluated to false.
//!
//! KQL (`language = "kuery"`) compiles to the same [`Expr`]; its grammar and the Kibana and
//! Elasticsearch facts behind its semantics are in the `kql` module (`kql/mod.rs`).
//!
//! [`file`](mod@file) loads rules in the TOML layout of Elastic's `detection-rules` repository.

#![forbid(unsafe_code)]

pub mod ast;
mod eval;
pub mod file;
pub mod kinds;
mod kql;
mod lexer;
mod parser;
pub mod wildcard;

use std::fmt;

pub use ast::{Expr, Pattern, Segment};
pub use file::{
    BUILTINS, BY_MODE, NEW_TERMS_SEED, OFF_BY_DEFAULT, Rule, RuleFileError, RuleMeta, Subtechnique,
    Tactic, Technique, Threat, builtin, on_by_default, parse_rule_toml, try_builtin,
    try_builtin_by_mode, try_builtins, try_builtins_named,
};
pub use kinds::{Action, Kinds};

/// A parser's result with the errors it collected on the way (unknown fields, type errors):
/// the query if there were none, else every error at once, the one that stopped it last;
/// `fallback` gives one when the list cannot be built.
pub(crate) fn all_errors<T>(
    r: Result<T, EqlError>,
    mut errors: Vec<EqlError>,
    fallback: impl FnOnce() -> EqlError,
) -> Result<T, EqlError> {
    match r {
        Ok(q) if errors.is_empty() => Ok(q),
        Ok(_) => Err(EqlError::many(errors).unwrap_or_else(fallback)),
        Err(e) => {
            errors.push(e);
            Err(EqlError::many(errors).unwrap_or_else(fallback))
        }
    }
}

/// Type of a field as declared by the schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    /// An exact string (ECS `keyword`).
    Keyword,
    /// A 64-bit integer.
    Long,
    /// `true` / `false`.
    Boolean,
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FieldType::Keyword => "keyword",
            FieldType::Long => "long",
            FieldType::Boolean => "boolean",
        })
    }
}

/// A value as the event provides it at evaluation time. Borrowed: no allocation per event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldValue<'a> {
    /// A keyword value.
    Str(&'a str),
    /// A long value.
    Num(i64),
    /// A boolean value.
    Bool(bool),
}

/// The small integer a known field name compiles to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FieldId(pub u16);

/// The event side's catalogue of fields, consulted once at compile time.
pub trait Schema {
    /// The id and type of `name` (an ECS dotted name), or `None` if the events never carry it.
    fn lookup(&self, name: &str) -> Option<(FieldId, FieldType)>;
}

/// One event, as seen by the evaluator.
pub trait FieldSource {
    /// The field's value, or `None` when the event lacks it.
    fn field(&self, id: FieldId) -> Option<FieldValue<'_>>;

    /// Calls `f` on each value of a possibly multi-valued field (an ECS array such as
    /// `process.args`) until `f` returns true; returns whether it did. A missing field or an
    /// empty array calls `f` zero times. The default serves single-valued events through
    /// [`field`](Self::field).
    fn field_multi(&self, id: FieldId, f: &mut dyn FnMut(FieldValue<'_>) -> bool) -> bool {
        match self.field(id) {
            Some(v) => f(v),
            None => false,
        }
    }
}

/// What went wrong while compiling a query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EqlErrorKind {
    /// The text does not follow the grammar.
    Syntax {
        /// What the parser wanted, e.g. "a value".
        expected: String,
        /// What it got, e.g. "end of query".
        found: String,
    },
    /// Valid EQL that wwatchd does not evaluate; the string names the feature.
    Unsupported(String),
    /// A field the schema does not know, written without `?`.
    UnknownField(String),
    /// A value or operator that does not fit the field's type.
    Type(String),
    /// Valid KQL that wwatchd does not evaluate; the string names the feature.
    KqlUnsupported(String),
    /// A field the schema does not know, in a KQL query (which has no `?field`).
    KqlUnknownField(String),
}

/// A query compile error, with a 1-based line and column (in characters) in the query text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EqlError {
    span: ast::Span,
    kind: EqlErrorKind,
    file: Option<String>,
    /// The query's other errors, in text order: the parser reports every unknown field and
    /// type error of a query at once, and stops only at a syntax error.
    more: Vec<EqlError>,
}

impl EqlError {
    pub(crate) fn syntax(at: ast::Span, expected: &str, found: String) -> EqlError {
        EqlError {
            span: at,
            kind: EqlErrorKind::Syntax {
                expected: expected.to_owned(),
                found,
            },
            file: None,
            more: Vec::new(),
        }
    }

    pub(crate) fn new(at: ast::Span, kind: EqlErrorKind) -> EqlError {
        EqlError {
            span: at,
            kind,
            file: None,
            more: Vec::new(),
        }
    }

    /// Several errors as one: the first, with the others after it (in text order).
    pub(crate) fn many(mut errors: Vec<EqlError>) -> Option<EqlError> {
        errors.sort_by_key(|e| e.span.offset);
        let mut it = errors.into_iter();
        let mut first = it.next()?;
        first.more.extend(it);
        Some(first)
    }

    /// The errors after this one, when the query had several.
    pub fn more(&self) -> &[EqlError] {
        &self.more
    }

    /// 1-based line in the query text.
    pub fn line(&self) -> usize {
        self.span.line
    }

    /// 1-based column in the query text, in characters.
    pub fn col(&self) -> usize {
        self.span.col
    }

    /// Byte offset in the query text.
    pub fn offset(&self) -> usize {
        self.span.offset
    }

    /// The kind of error.
    pub fn kind(&self) -> &EqlErrorKind {
        &self.kind
    }

    /// For a syntax error, what was expected.
    pub fn expected(&self) -> Option<&str> {
        match &self.kind {
            EqlErrorKind::Syntax { expected, .. } => Some(expected),
            _ => None,
        }
    }

    /// For a syntax error, what was found instead.
    pub fn found(&self) -> Option<&str> {
        match &self.kind {
            EqlErrorKind::Syntax { found, .. } => Some(found),
            _ => None,
        }
    }

    /// The message without the location.
    pub fn message(&self) -> String {
        match &self.kind {
            EqlErrorKind::Syntax { expected, found } => {
                format!("expected {expected}, found {found}")
            }
            EqlErrorKind::Unsupported(feature) => format!(
                "unsupported EQL feature: {feature}; wwatchd evaluates single 'file where' queries"
            ),
            EqlErrorKind::UnknownField(name) => format!(
                "unknown field `{name}` (Elasticsearch: Unknown column [{name}]); \
                 write `?{name}` to treat it as optional"
            ),
            EqlErrorKind::Type(m) => m.clone(),
            EqlErrorKind::KqlUnsupported(feature) => {
                format!("unsupported KQL feature: {feature}; wwatchd evaluates field:value queries")
            }
            EqlErrorKind::KqlUnknownField(name) => format!(
                "unknown field `{name}`: wwatchd's events never carry it (Kibana would send \
                 it to Elasticsearch as it is, where it matches no event)"
            ),
        }
    }

    /// Prefixes the location with a file path: `path:LINE:COL: ...`.
    pub fn with_file(mut self, path: impl fmt::Display) -> EqlError {
        let path = path.to_string();
        for m in &mut self.more {
            m.file = Some(path.clone());
        }
        self.file = Some(path);
        self
    }
}

impl fmt::Display for EqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{file}:")?;
        }
        write!(
            f,
            "{}:{}: {}",
            self.span.line,
            self.span.col,
            self.message()
        )?;
        for m in &self.more {
            write!(f, "\n{m}")?;
        }
        Ok(())
    }
}

impl std::error::Error for EqlError {}

/// The language a rule's query is written in (`rule.language`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Language {
    /// EQL, `language = "eql"`.
    Eql,
    /// KQL, `language = "kuery"`.
    Kuery,
}

/// A compiled query: an EQL `file where` query or a KQL query.
#[derive(Clone, Debug)]
pub struct Query {
    source: String,
    language: Language,
    category: String,
    expr: Expr,
    /// The line of the rule file on which the query text starts, when it was loaded from
    /// one (see [`Query::file_line`]).
    first_line: Option<usize>,
}

impl Query {
    /// Parses `src`, resolves its fields against `schema` and compiles its patterns.
    pub fn compile(src: &str, schema: &dyn Schema) -> Result<Query, EqlError> {
        let (category, expr) = parser::parse(src, schema)?;
        Ok(Query {
            source: src.to_owned(),
            language: Language::Eql,
            category,
            expr,
            first_line: None,
        })
    }

    /// Parses the KQL `src` (see `wwatchd.conf(5)` and the `kql` module for the subset and
    /// its Elasticsearch semantics), resolves its fields against `schema` and compiles its
    /// patterns, into the same syntax tree as EQL.
    pub fn compile_kql(src: &str, schema: &dyn Schema) -> Result<Query, EqlError> {
        let expr = kql::compile(src, schema)?;
        Ok(Query {
            source: src.to_owned(),
            language: Language::Kuery,
            category: "file".to_owned(),
            expr,
            first_line: None,
        })
    }

    /// Parses `src` in `language`.
    pub fn compile_in(
        language: Language,
        src: &str,
        schema: &dyn Schema,
    ) -> Result<Query, EqlError> {
        match language {
            Language::Eql => Query::compile(src, schema),
            Language::Kuery => Query::compile_kql(src, schema),
        }
    }

    /// The language the query is written in.
    pub fn language(&self) -> Language {
        self.language
    }

    /// Records that the query text starts on line `line` of its rule file.
    pub fn set_first_line(&mut self, line: usize) {
        self.first_line = Some(line);
    }

    /// The line of the rule file that holds line `query_line` (1-based) of the query
    /// text, when the file is known.
    pub fn file_line(&self, query_line: usize) -> Option<usize> {
        self.first_line.map(|l| l + query_line.saturating_sub(1))
    }

    /// Evaluates the query on one event. Does not allocate.
    pub fn matches(&self, ev: &dyn FieldSource) -> bool {
        eval::eval(&self.expr, ev)
    }

    /// The resolved syntax tree of the condition after `where`.
    pub fn ast(&self) -> &Expr {
        &self.expr
    }

    /// The event category; always `"file"` (a KQL query names none: wwatchd evaluates it
    /// on file events, the only ones it makes).
    pub fn category(&self) -> &str {
        &self.category
    }

    /// The query text as given.
    pub fn source(&self) -> &str {
        &self.source
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    //! A tiny schema and HashMap-backed event for the tests of this module.
    use super::*;
    use std::collections::HashMap;

    pub const FIELDS: &[(&str, FieldType)] = &[
        ("host.os.type", FieldType::Keyword),
        ("host.name", FieldType::Keyword),
        ("event.action", FieldType::Keyword),
        ("event.category", FieldType::Keyword),
        ("event.type", FieldType::Keyword),
        ("process.name", FieldType::Keyword),
        ("process.executable", FieldType::Keyword),
        ("process.pid", FieldType::Long),
        ("process.args", FieldType::Keyword),
        ("file.path", FieldType::Keyword),
        ("file.name", FieldType::Keyword),
        ("file.extension", FieldType::Keyword),
        ("user.id", FieldType::Keyword),
        ("user.name", FieldType::Keyword),
        ("file name", FieldType::Keyword),
        ("process.interactive", FieldType::Boolean),
        ("host.id", FieldType::Keyword),
    ];

    pub struct TestSchema;

    impl Schema for TestSchema {
        fn lookup(&self, name: &str) -> Option<(FieldId, FieldType)> {
            FIELDS
                .iter()
                .position(|(n, _)| *n == name)
                .and_then(|i| Some((FieldId(u16::try_from(i).ok()?), FIELDS[i].1)))
        }
    }

    #[derive(Clone, Debug)]
    pub enum V {
        S(String),
        N(i64),
        B(bool),
        Many(Vec<String>),
    }

    #[derive(Default, Clone, Debug)]
    pub struct Ev(pub HashMap<u16, V>);

    impl Ev {
        pub fn new() -> Ev {
            Ev::default()
        }
        fn id(name: &str) -> u16 {
            match TestSchema.lookup(name) {
                Some((FieldId(i), _)) => i,
                None => panic!("test uses unknown field {name}"),
            }
        }
        pub fn s(mut self, name: &str, v: &str) -> Ev {
            self.0.insert(Ev::id(name), V::S(v.to_owned()));
            self
        }
        pub fn n(mut self, name: &str, v: i64) -> Ev {
            self.0.insert(Ev::id(name), V::N(v));
            self
        }
        pub fn b(mut self, name: &str, v: bool) -> Ev {
            self.0.insert(Ev::id(name), V::B(v));
            self
        }
        pub fn many(mut self, name: &str, v: &[&str]) -> Ev {
            self.0.insert(
                Ev::id(name),
                V::Many(v.iter().map(|s| s.to_string()).collect()),
            );
            self
        }
    }

    impl FieldSource for Ev {
        fn field(&self, id: FieldId) -> Option<FieldValue<'_>> {
            Some(match self.0.get(&id.0)? {
                V::S(s) => FieldValue::Str(s),
                V::N(n) => FieldValue::Num(*n),
                V::B(b) => FieldValue::Bool(*b),
                V::Many(v) => FieldValue::Str(v.first()?),
            })
        }
        fn field_multi(&self, id: FieldId, f: &mut dyn FnMut(FieldValue<'_>) -> bool) -> bool {
            match self.0.get(&id.0) {
                Some(V::Many(v)) => v.iter().any(|s| f(FieldValue::Str(s))),
                Some(_) => self.field(id).is_some_and(f),
                None => false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::TestSchema;
    use super::*;

    /// An event that implements only `field`, relying on the default `field_multi`.
    struct One(&'static str);

    impl FieldSource for One {
        fn field(&self, id: FieldId) -> Option<FieldValue<'_>> {
            (TestSchema.lookup("user.id").map(|(i, _)| i) == Some(id))
                .then_some(FieldValue::Str(self.0))
        }
    }

    #[test]
    fn default_field_multi_serves_single_values() {
        let q = Query::compile(
            r#"file where user.id : "10*" and user.name == null"#,
            &TestSchema,
        );
        let q = match q {
            Ok(q) => q,
            Err(e) => panic!("{e}"),
        };
        assert!(q.matches(&One("1000")));
        assert!(!q.matches(&One("0")));
    }

    #[test]
    fn error_with_file_prefix() {
        let e = Query::compile("file where x", &TestSchema).err();
        let e = e.map(|e| e.with_file("rules/a.toml").to_string());
        assert_eq!(
            e.as_deref(),
            Some(
                "rules/a.toml:1:12: unknown field `x` (Elasticsearch: Unknown column [x]); write `?x` to treat it as optional\n\
                 rules/a.toml:1:13: expected an operator ('==', '!=', '<', '<=', '>', '>=', 'in', 'in~', 'not in', 'like', 'like~' or ':'), found end of query"
            )
        );
    }

    /// Issue 11: every unknown field and type error of a query at once, in text order, up to
    /// the first syntax error.
    #[test]
    fn every_error_of_a_query_at_once() {
        let e = Query::compile(
            "file where a.b == \"x\" and process.pid == \"1\" and\n  c.d : \"y\" and process.name in (1)",
            &TestSchema,
        )
        .err()
        .map(|e| e.to_string());
        let e = e.unwrap_or_default();
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines.len(), 4, "{e}");
        assert!(lines[0].starts_with("1:12: unknown field `a.b`"), "{e}");
        assert!(
            lines[1].starts_with("1:42: cannot compare long field `process.pid`"),
            "{e}"
        );
        assert!(lines[2].starts_with("2:3: unknown field `c.d`"), "{e}");
        assert!(
            lines[3].starts_with("2:34: cannot compare keyword field `process.name`"),
            "{e}"
        );
    }
}

//! rule stage (netlink → record → event → **rule** → alert → syslog): recursive-descent parser
//! from EQL tokens to the resolved, type-checked [`Expr`].
//!
//! The grammar is written down in the module documentation of `rule`. Fields are resolved
//! against the schema and literals type-checked here, so that evaluation cannot meet a
//! surprise; constructs outside the supported subset are refused by name.

use super::ast::{CmpOp, Expr, FieldRef, Literal, Span};
use super::lexer::{Kw, Tok, Token, tokenize};
use super::wildcard::Pattern;
use super::{EqlError, EqlErrorKind, FieldType, Schema};

/// Deep enough for any real rule, shallow enough never to exhaust the stack.
const MAX_DEPTH: usize = 128;

const OPERATORS: &str =
    "an operator ('==', '!=', '<', '<=', '>', '>=', 'in', 'in~', 'not in', 'like', 'like~' or ':')";

pub(crate) fn parse(src: &str, schema: &dyn Schema) -> Result<(String, Expr), EqlError> {
    let toks = tokenize(src)?;
    let mut p = Parser {
        toks,
        pos: 0,
        schema,
        depth: 0,
        errors: Vec::new(),
    };
    let r = p.query();
    let errors = std::mem::take(&mut p.errors);
    super::all_errors(r, errors, || p.expected("a valid query"))
}

struct Parser<'s> {
    toks: Vec<Token>,
    pos: usize,
    schema: &'s dyn Schema,
    depth: usize,
    /// Errors that do not stop the parse (unknown fields, type errors): all are reported.
    errors: Vec<EqlError>,
}

fn unsupported(at: Span, feature: impl Into<String>) -> EqlError {
    EqlError::new(at, EqlErrorKind::Unsupported(feature.into()))
}

fn type_err(at: Span, msg: String) -> EqlError {
    EqlError::new(at, EqlErrorKind::Type(msg))
}

fn describe_lit(l: &Literal) -> String {
    match l {
        Literal::Str(s) => format!("string {s:?}"),
        Literal::Num(n) => format!("number {n}"),
        Literal::Bool(b) => format!("boolean {b}"),
        Literal::Null => "null".to_owned(),
    }
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        // tokenize always ends with Eof and `bump` never moves past it.
        let last = self.toks.len().saturating_sub(1);
        &self.toks[self.pos.min(last)]
    }

    fn peek_at(&self, n: usize) -> &Tok {
        let last = self.toks.len().saturating_sub(1);
        &self.toks[(self.pos + n).min(last)].tok
    }

    fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        if t.tok != Tok::Eof {
            self.pos += 1;
        }
        t
    }

    fn expected(&self, what: &str) -> EqlError {
        let t = self.peek();
        EqlError::syntax(t.span, what, t.tok.describe())
    }

    fn eat(&mut self, tok: &Tok) -> bool {
        if &self.peek().tok == tok {
            self.bump();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, tok: &Tok, what: &str) -> Result<Span, EqlError> {
        if &self.peek().tok == tok {
            Ok(self.bump().span)
        } else {
            Err(self.expected(what))
        }
    }

    fn query(&mut self) -> Result<(String, Expr), EqlError> {
        let t = self.peek().clone();
        let category = match &t.tok {
            Tok::Kw(Kw::Sequence) => return Err(unsupported(t.span, "sequence queries")),
            Tok::Kw(Kw::Sample) => return Err(unsupported(t.span, "sample queries")),
            Tok::Kw(Kw::Join) => return Err(unsupported(t.span, "join queries")),
            Tok::Kw(Kw::Any) => return Err(unsupported(t.span, "the 'any' event category")),
            Tok::Ident(c) | Tok::Quoted(c) => c.clone(),
            _ => return Err(self.expected("an event category ('file')")),
        };
        if category != "file" {
            if *self.peek_at(1) == Tok::Kw(Kw::Where) {
                return Err(unsupported(
                    t.span,
                    format!("the '{category}' event category"),
                ));
            }
            return Err(self.expected("an event category ('file')"));
        }
        self.bump();
        self.expect(&Tok::Kw(Kw::Where), "'where'")?;
        let expr = self.or()?;
        let t = self.peek().clone();
        match &t.tok {
            Tok::Eof => Ok((category, expr)),
            Tok::Pipe => {
                let name = match self.peek_at(1) {
                    Tok::Ident(n) => format!("'| {n}'"),
                    _ => "'|'".to_owned(),
                };
                Err(unsupported(t.span, format!("pipes ({name})")))
            }
            Tok::Kw(Kw::Until) => Err(unsupported(t.span, "'until'")),
            Tok::Kw(Kw::With) => Err(unsupported(t.span, "'with runs'")),
            Tok::Kw(Kw::By) => Err(unsupported(t.span, "'by' join keys")),
            _ => Err(self.expected("'and', 'or' or end of query")),
        }
    }

    fn enter(&mut self) -> Result<(), EqlError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.expected(&format!("at most {MAX_DEPTH} levels of nesting")));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expr, EqlError> {
        self.enter()?;
        let mut parts = vec![self.and()?];
        while self.eat(&Tok::Kw(Kw::Or)) {
            parts.push(self.and()?);
        }
        self.depth -= 1;
        Ok(join(parts, Expr::Or, |e| match e {
            Expr::Or(v) => Ok(v),
            other => Err(other),
        }))
    }

    fn and(&mut self) -> Result<Expr, EqlError> {
        let mut parts = vec![self.not()?];
        while self.eat(&Tok::Kw(Kw::And)) {
            parts.push(self.not()?);
        }
        Ok(join(parts, Expr::And, |e| match e {
            Expr::And(v) => Ok(v),
            other => Err(other),
        }))
    }

    fn not(&mut self) -> Result<Expr, EqlError> {
        if self.eat(&Tok::Kw(Kw::Not)) {
            self.enter()?;
            let inner = self.not()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, EqlError> {
        let t = self.peek().clone();
        match &t.tok {
            Tok::LParen => {
                self.bump();
                let e = self.or()?;
                self.expect(&Tok::RParen, "')'")?;
                Ok(e)
            }
            Tok::Kw(Kw::True) => {
                self.bump();
                Ok(Expr::Const(true))
            }
            Tok::Kw(Kw::False) => {
                self.bump();
                Ok(Expr::Const(false))
            }
            Tok::Ident(_) | Tok::Quoted(_) | Tok::Question => {
                let field = self.field()?;
                self.predicate(field)
            }
            _ => Err(self.expected("a condition")),
        }
    }

    fn field(&mut self) -> Result<FieldRef, EqlError> {
        let start = self.peek().span;
        let optional = self.eat(&Tok::Question);
        let t = self.bump();
        let name = match t.tok {
            Tok::Ident(n) => {
                if self.peek().tok == Tok::LParen {
                    return Err(unsupported(start, format!("function calls ('{n}(...)')")));
                }
                n
            }
            Tok::Quoted(n) => n,
            other => {
                return Err(EqlError::syntax(t.span, "a field name", other.describe()));
            }
        };
        let resolved = self.schema.lookup(&name);
        if resolved.is_none() && !optional {
            // Reported, and parsed on as if optional to find the query's other errors.
            self.errors.push(EqlError::new(
                start,
                EqlErrorKind::UnknownField(name.clone()),
            ));
        }
        let t = self.peek();
        match t.tok {
            Tok::Plus | Tok::Minus | Tok::Star | Tok::Slash | Tok::Percent => {
                return Err(unsupported(
                    t.span,
                    format!("arithmetic ({})", t.tok.describe()),
                ));
            }
            Tok::LBracket => return Err(unsupported(t.span, "array indexing ('[...]')")),
            _ => {}
        }
        Ok(FieldRef {
            name,
            resolved,
            optional,
            span: start,
        })
    }

    /// A literal value; fields, functions and arithmetic are refused by name.
    fn value(&mut self) -> Result<(Literal, Span), EqlError> {
        let t = self.bump();
        let lit = match t.tok {
            Tok::Str(s) => Literal::Str(s),
            Tok::Num(n) => Literal::Num(n),
            Tok::Minus => match self.peek().tok {
                Tok::Num(n) => {
                    self.bump();
                    Literal::Num(-n)
                }
                _ => return Err(unsupported(t.span, "arithmetic ('-')")),
            },
            Tok::Float(f) => {
                return Err(unsupported(t.span, format!("floating-point numbers ({f})")));
            }
            Tok::Kw(Kw::True) => Literal::Bool(true),
            Tok::Kw(Kw::False) => Literal::Bool(false),
            Tok::Kw(Kw::Null) => Literal::Null,
            Tok::Ident(n) if self.peek().tok == Tok::LParen => {
                return Err(unsupported(t.span, format!("function calls ('{n}(...)')")));
            }
            Tok::Ident(_) | Tok::Quoted(_) | Tok::Question => {
                return Err(unsupported(t.span, "comparing a field with another field"));
            }
            other => return Err(EqlError::syntax(t.span, "a value", other.describe())),
        };
        let next = self.peek();
        if matches!(
            next.tok,
            Tok::Plus | Tok::Minus | Tok::Star | Tok::Slash | Tok::Percent
        ) {
            return Err(unsupported(
                next.span,
                format!("arithmetic ({})", next.tok.describe()),
            ));
        }
        Ok((lit, t.span))
    }

    fn check_type(field: &FieldRef, lit: &Literal, at: Span) -> Result<(), EqlError> {
        let Some((_, ty)) = field.resolved else {
            return Ok(());
        };
        let ok = matches!(
            (ty, lit),
            (_, Literal::Null)
                | (FieldType::Keyword, Literal::Str(_))
                | (FieldType::Long, Literal::Num(_))
                | (FieldType::Boolean, Literal::Bool(_))
        );
        if ok {
            Ok(())
        } else {
            Err(type_err(
                at,
                format!(
                    "cannot compare {ty} field `{}` with {}",
                    field.name,
                    describe_lit(lit)
                ),
            ))
        }
    }

    fn predicate(&mut self, field: FieldRef) -> Result<Expr, EqlError> {
        let t = self.peek().clone();
        let op = match t.tok {
            Tok::EqEq | Tok::Ne => None,
            Tok::Lt => Some(CmpOp::Lt),
            Tok::Le => Some(CmpOp::Le),
            Tok::Gt => Some(CmpOp::Gt),
            Tok::Ge => Some(CmpOp::Ge),
            Tok::Kw(Kw::Not) => {
                self.bump();
                let ci = match self.peek().tok {
                    Tok::Kw(Kw::In) => false,
                    Tok::Kw(Kw::InI) => true,
                    _ => return Err(self.expected("'in' or 'in~' after 'not'")),
                };
                self.bump();
                return Ok(Expr::Not(Box::new(self.in_list(field, ci)?)));
            }
            Tok::Kw(Kw::In) | Tok::Kw(Kw::InI) => {
                self.bump();
                return self.in_list(field, t.tok == Tok::Kw(Kw::InI));
            }
            Tok::Kw(Kw::Like) | Tok::Kw(Kw::LikeI) | Tok::Colon => {
                self.bump();
                return self.like(field, &t.tok, t.span);
            }
            Tok::Kw(Kw::Regex) | Tok::Kw(Kw::RegexI) => {
                return Err(unsupported(
                    t.span,
                    format!("regular expressions ({})", t.tok.describe()),
                ));
            }
            Tok::Assign => {
                return Err(EqlError::syntax(
                    t.span,
                    OPERATORS,
                    "'=' (EQL compares with '==')".into(),
                ));
            }
            _ => return Err(self.expected(OPERATORS)),
        };
        self.bump();
        let (lit, at) = self.value()?;
        if let Err(e) = Self::check_type(&field, &lit, at) {
            self.errors.push(e);
        }
        match (op, lit) {
            (None, Literal::Null) => {
                let e = Expr::IsNull(field);
                Ok(if t.tok == Tok::Ne {
                    Expr::Not(Box::new(e))
                } else {
                    e
                })
            }
            (Some(_), Literal::Null) => Err(type_err(
                at,
                format!(
                    "null can only be compared with '==' or '!=', not {}",
                    t.tok.describe()
                ),
            )),
            (Some(_), Literal::Bool(_)) => Err(type_err(
                at,
                format!("booleans cannot be ordered with {}", t.tok.describe()),
            )),
            (op, value) => {
                let e = Expr::Cmp {
                    field,
                    op: op.unwrap_or(CmpOp::Eq),
                    value,
                };
                Ok(if t.tok == Tok::Ne {
                    Expr::Not(Box::new(e))
                } else {
                    e
                })
            }
        }
    }

    fn in_list(&mut self, field: FieldRef, ci: bool) -> Result<Expr, EqlError> {
        self.expect(&Tok::LParen, "'(' starting the list")?;
        let mut values = Vec::new();
        loop {
            let (lit, at) = self.value()?;
            if let Err(e) = Self::check_type(&field, &lit, at) {
                self.errors.push(e);
            }
            let lit = match lit {
                Literal::Null => {
                    return Err(type_err(
                        at,
                        "null cannot be in an 'in' list; use `field == null`".into(),
                    ));
                }
                other => other,
            };
            values.push(lit);
            if !self.eat(&Tok::Comma) {
                break;
            }
        }
        self.expect(&Tok::RParen, "',' or ')'")?;
        Ok(Expr::In {
            field,
            values,
            case_insensitive: ci,
        })
    }

    fn like(&mut self, field: FieldRef, op: &Tok, op_span: Span) -> Result<Expr, EqlError> {
        let ci = *op != Tok::Kw(Kw::Like);
        if let Some((_, ty)) = field.resolved
            && ty != FieldType::Keyword
        {
            return Err(type_err(
                op_span,
                format!(
                    "{} needs a keyword field, but `{}` is {ty}",
                    op.describe(),
                    field.name
                ),
            ));
        }
        let list = self.eat(&Tok::LParen);
        let mut patterns = Vec::new();
        loop {
            let (lit, at) = self.value()?;
            match lit {
                Literal::Str(s) => patterns.push(Pattern::new(&s, ci)),
                other if *op == Tok::Colon => {
                    return Err(unsupported(
                        at,
                        format!("':' with a non-string value ({})", describe_lit(&other)),
                    ));
                }
                other => {
                    return Err(type_err(
                        at,
                        format!(
                            "{} needs string patterns, found {}",
                            op.describe(),
                            describe_lit(&other)
                        ),
                    ));
                }
            }
            if !list || !self.eat(&Tok::Comma) {
                break;
            }
        }
        if list {
            self.expect(&Tok::RParen, "',' or ')'")?;
        }
        Ok(Expr::Like {
            field,
            patterns,
            case_insensitive: ci,
        })
    }
}

/// Builds an n-ary node, flattening children of the same kind.
pub(super) fn join(
    parts: Vec<Expr>,
    make: fn(Vec<Expr>) -> Expr,
    split: fn(Expr) -> Result<Vec<Expr>, Expr>,
) -> Expr {
    if parts.len() == 1 {
        let mut parts = parts;
        if let Some(only) = parts.pop() {
            return only;
        }
        return make(parts);
    }
    let mut out = Vec::with_capacity(parts.len());
    for p in parts {
        match split(p) {
            Ok(v) => out.extend(v),
            Err(e) => out.push(e),
        }
    }
    make(out)
}

#[cfg(test)]
mod tests {
    use crate::rule::ast::{CmpOp, Expr, Literal};
    use crate::rule::testutil::TestSchema;
    use crate::rule::{EqlErrorKind, Query};

    fn err(src: &str) -> String {
        match Query::compile(src, &TestSchema) {
            Ok(_) => panic!("{src}: compiled"),
            Err(e) => e.to_string(),
        }
    }

    fn unsupported(src: &str, feature: &str, at: &str) {
        let want = format!(
            "{at}: unsupported EQL feature: {feature}; wwatchd evaluates single 'file where' queries"
        );
        assert_eq!(err(src), want, "{src}");
    }

    #[test]
    fn unsupported_features_are_named() {
        unsupported(
            "sequence [file where true] [file where true]",
            "sequence queries",
            "1:1",
        );
        unsupported(
            "sample by host.name [file where true]",
            "sample queries",
            "1:1",
        );
        unsupported("join [file where true]", "join queries", "1:1");
        unsupported("process where true", "the 'process' event category", "1:1");
        unsupported("network where true", "the 'network' event category", "1:1");
        unsupported("any where true", "the 'any' event category", "1:1");
        unsupported("file where true | head 5", "pipes ('| head')", "1:17");
        unsupported("file where true | tail 1", "pipes ('| tail')", "1:17");
        unsupported(
            r#"file where startsWith(file.path, "/tmp")"#,
            "function calls ('startsWith(...)')",
            "1:12",
        );
        unsupported(
            "file where length(file.path) > 3",
            "function calls ('length(...)')",
            "1:12",
        );
        unsupported(
            r#"file where file.path == cidrMatch("a")"#,
            "function calls ('cidrMatch(...)')",
            "1:25",
        );
        unsupported(
            "file where process.pid + 1 == 2",
            "arithmetic ('+')",
            "1:24",
        );
        unsupported(
            "file where process.pid == 1 * 2",
            "arithmetic ('*')",
            "1:29",
        );
        unsupported(
            r#"file where file.path regex~ "/tmp/.*""#,
            "regular expressions ('regex~')",
            "1:22",
        );
        unsupported(
            r#"file where file.path regex "/tmp/.*""#,
            "regular expressions ('regex')",
            "1:22",
        );
        unsupported(
            "file where file.path : 5",
            "':' with a non-string value (number 5)",
            "1:24",
        );
        unsupported("file where true until [file where true]", "'until'", "1:17");
        unsupported("file where true with runs=3", "'with runs'", "1:17");
        unsupported(
            "file where file.path == file.name",
            "comparing a field with another field",
            "1:25",
        );
        unsupported(
            "file where process.args[0] == \"x\"",
            "array indexing ('[...]')",
            "1:24",
        );
        unsupported(
            "file where process.pid == 1.5",
            "floating-point numbers (1.5)",
            "1:27",
        );
    }

    #[test]
    fn syntax_errors_have_position_expected_found() {
        let src = r#"file where process.name == "scp" and"#;
        assert_eq!(err(src), "1:37: expected a condition, found end of query");
        assert_eq!(
            err("file where process.name =="),
            "1:27: expected a value, found end of query"
        );
        let e = Query::compile("file where\n  user.id != ", &TestSchema).err();
        assert_eq!(e.as_ref().map(|e| (e.line(), e.col())), Some((2, 14)));
        assert_eq!(e.as_ref().and_then(|e| e.expected()), Some("a value"));
        assert_eq!(e.as_ref().and_then(|e| e.found()), Some("end of query"));
        assert_eq!(
            err("file user.id == \"0\""),
            "1:6: expected 'where', found field `user.id`"
        );
        assert_eq!(
            err(r#"file where (user.id == "0""#),
            "1:27: expected ')', found end of query"
        );
        assert_eq!(
            err(r#"file where user.id in ("0" "1")"#),
            "1:28: expected ',' or ')', found string \"1\""
        );
        assert_eq!(
            err(r#"file where user.id = "0""#),
            "1:20: expected an operator ('==', '!=', '<', '<=', '>', '>=', 'in', 'in~', 'not in', 'like', 'like~' or ':'), found '=' (EQL compares with '==')"
        );
        assert_eq!(
            err(r#"file where user.id == "0" user.name == "x""#),
            "1:27: expected 'and', 'or' or end of query, found field `user.name`"
        );
        assert_eq!(
            err(r#"file where user.id not like "x""#),
            "1:24: expected 'in' or 'in~' after 'not', found 'like'"
        );
        assert_eq!(
            err("file where user.id in ()"),
            "1:24: expected a value, found ')'"
        );
        assert_eq!(
            err(""),
            "1:1: expected an event category ('file'), found end of query"
        );
        // Columns count characters, not bytes.
        assert_eq!(
            err("file where file.name == \"é\" or"),
            "1:31: expected a condition, found end of query"
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let src = format!(
            "file where {}true{}",
            "(".repeat(100_000),
            ")".repeat(100_000)
        );
        assert!(err(&src).contains("levels of nesting"));
        let src = format!("file where {}true", "not ".repeat(100_000));
        assert!(err(&src).contains("levels of nesting"));
    }

    #[test]
    fn unknown_fields_and_types() {
        assert_eq!(
            err(r#"file where user.id == "0" and no.such == "x""#),
            "1:31: unknown field `no.such` (Elasticsearch: Unknown column [no.such]); write `?no.such` to treat it as optional"
        );
        let e = Query::compile("file where no.such == 1", &TestSchema).err();
        assert_eq!(
            e.map(|e| e.kind().clone()),
            Some(EqlErrorKind::UnknownField("no.such".into()))
        );
        assert_eq!(
            err("file where user.id != 0"),
            "1:23: cannot compare keyword field `user.id` with number 0"
        );
        assert_eq!(
            err(r#"file where process.pid == "1""#),
            "1:27: cannot compare long field `process.pid` with string \"1\""
        );
        assert_eq!(
            err(r#"file where process.name in ("a", 1)"#),
            "1:34: cannot compare keyword field `process.name` with number 1"
        );
        assert_eq!(
            err(r#"file where process.pid like "1*""#),
            "1:24: 'like' needs a keyword field, but `process.pid` is long"
        );
        assert_eq!(
            err("file where file.path like 5"),
            "1:27: 'like' needs string patterns, found number 5"
        );
        assert_eq!(
            err("file where process.pid < null"),
            "1:26: null can only be compared with '==' or '!=', not '<'"
        );
        assert_eq!(
            err("file where user.id in (null)"),
            "1:24: null cannot be in an 'in' list; use `field == null`"
        );
    }

    #[test]
    fn ast_shape_for_pushdown() {
        let src = r#"file where file.path like~ ("/tmp*", "/Dev/shm/*") and user.id != "0" and user.name not in ("a")"#;
        let q = match Query::compile(src, &TestSchema) {
            Ok(q) => q,
            Err(e) => panic!("{e}"),
        };
        let c = q.ast().conjuncts();
        assert_eq!(c.len(), 3);
        match &c[0] {
            Expr::Like {
                field,
                patterns,
                case_insensitive,
            } => {
                assert_eq!(field.name, "file.path");
                assert!(*case_insensitive);
                let prefixes: Vec<&str> = patterns.iter().map(|p| p.literal_prefix()).collect();
                assert_eq!(prefixes, ["/tmp", "/Dev/shm/"]);
            }
            other => panic!("{other:?}"),
        }
        match &c[1] {
            Expr::Not(inner) => match inner.as_ref() {
                Expr::Cmp { field, op, value } => {
                    assert_eq!(field.name, "user.id");
                    assert_eq!(*op, CmpOp::Eq);
                    assert_eq!(*value, Literal::Str("0".into()));
                }
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
        assert!(matches!(&c[2], Expr::Not(i) if matches!(i.as_ref(), Expr::In { .. })));
        let mut n = 0;
        q.ast().walk(&mut |_| n += 1);
        assert_eq!(n, 6);
    }
}

#[cfg(test)]
mod never_panics {
    use crate::rule::Query;
    use crate::rule::testutil::{Ev, TestSchema};
    use proptest::prelude::*;

    // Token soup built from EQL's vocabulary reaches far deeper into the parser than
    // random characters do.
    const WORDS: &[&str] = &[
        "file",
        "where",
        "and",
        "or",
        "not",
        "in",
        "in~",
        "like",
        "like~",
        ":",
        "==",
        "!=",
        "<",
        ">=",
        "(",
        ")",
        ",",
        "|",
        "?",
        "user.id",
        "process.pid",
        "file.path",
        "`file name`",
        "\"x*\"",
        "\"\"\"r\"\"\"",
        "1",
        "-",
        "null",
        "true",
        "sequence",
        "[",
        "]",
        "regex",
        "\"\\u{41}\"",
        "\"unterminated",
        "/*",
        "*/",
    ];

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(src in "\\PC{0,60}") {
            let r = Query::compile(&src, &TestSchema);
            // Anything that compiles must also evaluate.
            if let Ok(q) = r {
                let _ = q.matches(&Ev::new().s("user.id", "0"));
            }
        }

        #[test]
        fn token_soup_never_panics(idx in proptest::collection::vec(0..WORDS.len(), 0..25)) {
            let src: Vec<&str> = idx.iter().map(|i| WORDS[*i]).collect();
            let src = format!("file where {}", src.join(" "));
            match Query::compile(&src, &TestSchema) {
                Ok(q) => { let _ = q.matches(&Ev::new().n("process.pid", 1)); }
                Err(e) => {
                    prop_assert!(e.line() >= 1 && e.col() >= 1);
                    prop_assert!(!e.message().is_empty());
                }
            }
        }
    }
}

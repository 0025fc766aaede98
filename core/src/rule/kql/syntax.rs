//! rule::kql::syntax: a recursive-descent parser that follows Kibana's KQL grammar (a PEG)
//! character by character, and lowers each `field:value` to [`Expr`] as it goes.
//!
//! KQL has no separate token stream: whether a space ends a value depends on the word after
//! it (` or `, ` and `), so the parser reads characters, as Kibana's does. Every choice the
//! grammar makes by backtracking is decided here by looking ahead, with the same outcome.

use super::super::ast::{CmpOp, Expr, FieldRef, Literal, Span};
use super::super::parser::join;
use super::super::wildcard::{Pattern, Piece};
use super::super::{EqlError, EqlErrorKind, FieldType, Schema};

/// Deep enough for any real rule, shallow enough never to exhaust the stack.
const MAX_DEPTH: usize = 128;

/// Kibana's `Space`.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n' | '\u{a0}')
}

/// Kibana's `SpecialCharacter`: ends an unquoted literal unless escaped.
fn is_special(c: char) -> bool {
    matches!(
        c,
        '\\' | '(' | ')' | ':' | '<' | '>' | '"' | '*' | '{' | '}'
    )
}

/// What JavaScript's `String.prototype.trim` removes (Kibana trims unquoted literals).
fn is_js_space(c: char) -> bool {
    (c.is_whitespace() && c != '\u{85}') || c == '\u{feff}'
}

/// One character of an unquoted literal, or its wildcard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum U {
    C(char),
    Star,
}

/// A literal as written: quoted (no wildcards) or not.
#[derive(Clone, Debug)]
struct Lit {
    quoted: bool,
    pieces: Vec<U>,
    span: Span,
}

impl Lit {
    fn has_star(&self) -> bool {
        self.pieces.contains(&U::Star)
    }

    /// The text, a wildcard shown as `*`.
    fn text(&self) -> String {
        self.pieces
            .iter()
            .map(|p| match p {
                U::C(c) => *c,
                U::Star => '*',
            })
            .collect()
    }
}

/// What a literal means as a value (Kibana's literal and wildcard nodes).
enum Val {
    Str(String),
    /// Unquoted `true` / `false`.
    Bool(bool),
    /// Unquoted `null`.
    Null,
    /// A lone `*`: an exists query.
    Exists,
    Wild(Vec<Piece>),
}

fn classify(l: &Lit) -> Val {
    if l.quoted {
        return Val::Str(l.text());
    }
    if l.has_star() {
        // `isLoneWildcard` removes one wildcard and asks whether anything is left.
        if l.pieces.len() == 1 {
            return Val::Exists;
        }
        let pieces = l
            .pieces
            .iter()
            .map(|p| match p {
                U::C(c) => Piece::Char(*c),
                U::Star => Piece::Many,
            })
            .collect();
        return Val::Wild(pieces);
    }
    match l.text().as_str() {
        "null" => Val::Null,
        "true" => Val::Bool(true),
        "false" => Val::Bool(false),
        s => Val::Str(s.to_owned()),
    }
}

/// A value group before the field is applied to it.
enum VTree {
    Or(Vec<VTree>),
    And(Vec<VTree>),
    Not(Box<VTree>),
    Leaf(Lit),
}

fn unsupported(at: Span, feature: impl Into<String>) -> EqlError {
    EqlError::new(at, EqlErrorKind::KqlUnsupported(feature.into()))
}

fn type_err(at: Span, msg: String) -> EqlError {
    EqlError::new(at, EqlErrorKind::Type(msg))
}

pub(super) fn parse(src: &str, schema: &dyn Schema) -> Result<Expr, EqlError> {
    let mut p = Parser {
        src,
        pos: 0,
        schema,
        depth: 0,
        errors: Vec::new(),
    };
    let r = p.query();
    let errors = std::mem::take(&mut p.errors);
    super::super::all_errors(r, errors, || p.expected("a valid query"))
}

struct Parser<'s> {
    src: &'s str,
    /// Byte offset of the next character.
    pos: usize,
    schema: &'s dyn Schema,
    depth: usize,
    /// Errors that do not stop the parse (unknown fields, type errors): all are reported.
    errors: Vec<EqlError>,
}

// ---- scanning -----------------------------------------------------------------------------

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.src.get(self.pos..)?.chars().next()
    }

    fn peek_at(&self, at: usize) -> Option<char> {
        self.src.get(at..)?.chars().next()
    }

    fn bump(&mut self) {
        if let Some(c) = self.peek() {
            self.pos += c.len_utf8();
        }
    }

    /// The 1-based line and column (in characters) of byte `offset`.
    fn span(&self, offset: usize) -> Span {
        let before = self.src.get(..offset).unwrap_or(self.src);
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Span {
            offset,
            line: before.matches('\n').count() + 1,
            col: before.get(line_start..).map_or(0, |s| s.chars().count()) + 1,
        }
    }

    fn describe(&self) -> String {
        match self.peek() {
            None => "end of query".into(),
            Some(c) if is_special(c) || is_space(c) => format!("{c:?}"),
            Some(_) => {
                let word: String = self.src[self.pos..]
                    .chars()
                    .take_while(|c| !is_special(*c) && !is_space(*c))
                    .take(24)
                    .collect();
                format!("`{word}`")
            }
        }
    }

    fn expected(&self, what: &str) -> EqlError {
        EqlError::syntax(self.span(self.pos), what, self.describe())
    }

    fn expect(&mut self, c: char, what: &str) -> Result<(), EqlError> {
        if self.peek() == Some(c) {
            self.bump();
            Ok(())
        } else {
            Err(self.expected(what))
        }
    }

    fn skip_spaces(&mut self) -> bool {
        let start = self.pos;
        while self.peek().is_some_and(is_space) {
            self.bump();
        }
        self.pos > start
    }

    /// `src[at..]` starts with the ASCII `word`, in any case.
    fn word_at(&self, at: usize, word: &str) -> bool {
        self.src
            .as_bytes()
            .get(at..at + word.len())
            .is_some_and(|b| b.eq_ignore_ascii_case(word.as_bytes()))
    }

    /// Kibana's `Keyword`, which ends an unquoted literal: a space, `or` or `and`, a space;
    /// or `not` and a space.
    fn keyword_at(&self, at: usize) -> bool {
        let spaced = |w: &str| match self.peek_at(at) {
            Some(c) if is_space(c) => {
                let w_at = at + c.len_utf8();
                self.word_at(w_at, w) && self.peek_at(w_at + w.len()).is_some_and(is_space)
            }
            _ => false,
        };
        spaced("or")
            || spaced("and")
            || (self.word_at(at, "not") && self.peek_at(at + 3).is_some_and(is_space))
    }

    /// `Space+ word Space+` (Kibana's `Or` and `And`); consumes nothing if absent.
    fn eat_conj(&mut self, word: &str) -> bool {
        let start = self.pos;
        if self.skip_spaces() && self.word_at(self.pos, word) {
            self.pos += word.len();
            if self.skip_spaces() {
                return true;
            }
        }
        self.pos = start;
        false
    }

    /// `'not' Space+` (Kibana's `Not`).
    fn eat_not(&mut self) -> bool {
        if self.word_at(self.pos, "not") && self.peek_at(self.pos + 3).is_some_and(is_space) {
            self.pos += 3;
            self.skip_spaces();
            return true;
        }
        false
    }

    fn enter(&mut self) -> Result<(), EqlError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.expected(&format!("at most {MAX_DEPTH} levels of nesting")));
        }
        Ok(())
    }

    /// Four hex digits at `at` (Kibana's `UnicodeSequence` after its `u`).
    fn hex4(&self, at: usize) -> Option<u32> {
        let h = self.src.get(at..at + 4)?;
        if !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(h, 16).ok()
    }

    /// At `\u`: the escaped character (a UTF-16 surrogate pair is two escapes, as in
    /// JavaScript). `None` if no four hex digits follow.
    fn unicode_escape(&mut self) -> Option<Result<char, EqlError>> {
        let start = self.pos;
        let unit = self.hex4(self.pos + 2)?;
        self.pos += 6;
        if (0xD800..0xDC00).contains(&unit)
            && self.word_at(self.pos, "\\u")
            && let Some(low) = self.hex4(self.pos + 2)
            && (0xDC00..0xE000).contains(&low)
        {
            self.pos += 6;
            let c = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
            return char::from_u32(c).map(Ok);
        }
        Some(char::from_u32(unit).ok_or_else(|| {
            unsupported(
                self.span(start),
                format!("a lone UTF-16 surrogate ('\\u{unit:04X}')"),
            )
        }))
    }
}

// ---- literals -----------------------------------------------------------------------------

impl Parser<'_> {
    /// A quoted or unquoted literal, or `None` when none starts here.
    fn literal(&mut self) -> Result<Option<Lit>, EqlError> {
        if self.peek() == Some('"') {
            return self.quoted().map(Some);
        }
        let start = self.pos;
        let mut pieces = Vec::new();
        while let Some(c) = self.peek() {
            if c == '\\' {
                if self.unquoted_escape(&mut pieces)? {
                    continue;
                }
                break;
            }
            if c == '*' {
                self.bump();
                pieces.push(U::Star);
                continue;
            }
            if is_special(c) || self.keyword_at(self.pos) {
                break;
            }
            self.bump();
            pieces.push(U::C(c));
        }
        if pieces.is_empty() {
            return Ok(None);
        }
        let is_trim = |p: &U| matches!(p, U::C(c) if is_js_space(*c));
        while pieces.last().is_some_and(is_trim) {
            pieces.pop();
        }
        let lead = pieces.iter().take_while(|p| is_trim(p)).count();
        pieces.drain(..lead);
        Ok(Some(Lit {
            quoted: false,
            pieces,
            span: self.span(start),
        }))
    }

    /// At `\` in an unquoted literal: pushes what the escape stands for and returns true, or
    /// returns false (a backslash that escapes nothing ends the literal, as in Kibana).
    fn unquoted_escape(&mut self, pieces: &mut Vec<U>) -> Result<bool, EqlError> {
        let Some(next) = self.peek_at(self.pos + 1) else {
            return Ok(false);
        };
        let ws = match next {
            't' => Some('\t'),
            'r' => Some('\r'),
            'n' => Some('\n'),
            _ => None,
        };
        if let Some(c) = ws.or(is_special(next).then_some(next)) {
            self.pos += 1 + next.len_utf8();
            pieces.push(U::C(c));
            return Ok(true);
        }
        if next == 'u'
            && let Some(c) = self.unicode_escape()
        {
            pieces.push(U::C(c?));
            return Ok(true);
        }
        for kw in ["or", "and", "not"] {
            if self.word_at(self.pos + 1, kw) {
                let text = &self.src[self.pos + 1..self.pos + 1 + kw.len()];
                pieces.extend(text.chars().map(U::C));
                self.pos += 1 + kw.len();
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn quoted(&mut self) -> Result<Lit, EqlError> {
        let start = self.pos;
        self.bump();
        let mut pieces = Vec::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(EqlError::syntax(
                    self.span(start),
                    "a '\"' closing the string that starts here",
                    "end of query".into(),
                ));
            };
            match (c, self.peek_at(self.pos + 1)) {
                ('"', _) => {
                    self.bump();
                    break;
                }
                ('\\', Some(e @ ('t' | 'r' | 'n'))) => {
                    self.pos += 2;
                    pieces.push(U::C(match e {
                        't' => '\t',
                        'r' => '\r',
                        _ => '\n',
                    }));
                }
                ('\\', Some('u')) if self.hex4(self.pos + 2).is_some() => {
                    if let Some(c) = self.unicode_escape() {
                        pieces.push(U::C(c?));
                    }
                }
                ('\\', Some(e @ ('\\' | '"'))) => {
                    self.pos += 2;
                    pieces.push(U::C(e));
                }
                (c, _) => {
                    self.bump();
                    pieces.push(U::C(c));
                }
            }
        }
        Ok(Lit {
            quoted: true,
            pieces,
            span: self.span(start),
        })
    }
}

// ---- grammar ------------------------------------------------------------------------------

fn split_or(e: Expr) -> Result<Vec<Expr>, Expr> {
    match e {
        Expr::Or(v) => Ok(v),
        other => Err(other),
    }
}

fn split_and(e: Expr) -> Result<Vec<Expr>, Expr> {
    match e {
        Expr::And(v) => Ok(v),
        other => Err(other),
    }
}

impl Parser<'_> {
    fn query(&mut self) -> Result<Expr, EqlError> {
        self.skip_spaces();
        if self.peek().is_none() {
            // Kibana: an empty query is `is(*, *)`, match_all.
            return Ok(Expr::Const(true));
        }
        let e = self.or()?;
        self.skip_spaces();
        match self.peek() {
            None => Ok(e),
            Some(_) => Err(self.expected("'and', 'or' or end of query")),
        }
    }

    fn or(&mut self) -> Result<Expr, EqlError> {
        let mut parts = vec![self.and()?];
        while self.eat_conj("or") {
            parts.push(self.and()?);
        }
        Ok(join(parts, Expr::Or, split_or))
    }

    fn and(&mut self) -> Result<Expr, EqlError> {
        let mut parts = vec![self.not()?];
        while self.eat_conj("and") {
            parts.push(self.not()?);
        }
        Ok(join(parts, Expr::And, split_and))
    }

    fn not(&mut self) -> Result<Expr, EqlError> {
        if self.eat_not() {
            return Ok(Expr::Not(Box::new(self.sub()?)));
        }
        self.sub()
    }

    fn sub(&mut self) -> Result<Expr, EqlError> {
        if self.peek() != Some('(') {
            return self.expr();
        }
        self.bump();
        self.enter()?;
        self.skip_spaces();
        let e = self.or()?;
        self.skip_spaces();
        self.expect(')', "')', 'and' or 'or'")?;
        self.depth -= 1;
        Ok(e)
    }

    fn expr(&mut self) -> Result<Expr, EqlError> {
        let start = self.pos;
        let Some(field) = self.literal()? else {
            return Err(self.expected("a field name, 'not' or '('"));
        };
        self.skip_spaces();
        match self.peek() {
            Some('<' | '>') => self.range(&field),
            Some(':') => {
                self.bump();
                self.skip_spaces();
                if self.peek() == Some('{') {
                    return Err(unsupported(
                        self.span(start),
                        "nested queries ('field:{...}')",
                    ));
                }
                let f = self.field_ref(&field)?;
                let tree = self.values()?;
                Ok(self.apply(&f, tree))
            }
            _ => Err(unsupported(
                field.span,
                format!(
                    "free text (`{}` has no field; write field:value)",
                    field.text()
                ),
            )),
        }
    }

    /// Resolves the field a literal names.
    fn field_ref(&mut self, l: &Lit) -> Result<FieldRef, EqlError> {
        if l.has_star() {
            return Err(unsupported(
                l.span,
                format!("wildcards in field names (`{}`)", l.text()),
            ));
        }
        let name = l.text();
        if !l.quoted && name == "null" {
            // Kibana builds a null field name, which means "no field": free text.
            return Err(unsupported(l.span, "free text (a null field name)"));
        }
        let resolved = self.schema.lookup(&name);
        if resolved.is_none() {
            // Reported, and parsed on to find the query's other errors.
            self.errors.push(EqlError::new(
                l.span,
                EqlErrorKind::KqlUnknownField(name.clone()),
            ));
        }
        Ok(FieldRef {
            name,
            resolved,
            optional: false,
            span: l.span,
        })
    }

    fn values(&mut self) -> Result<VTree, EqlError> {
        if self.peek() == Some('(') {
            self.bump();
            self.enter()?;
            self.skip_spaces();
            let t = self.value_or()?;
            self.skip_spaces();
            self.expect(')', "')', 'and' or 'or'")?;
            self.depth -= 1;
            return Ok(t);
        }
        match self.literal()? {
            Some(l) => Ok(VTree::Leaf(l)),
            None => Err(self.expected("a value or '('")),
        }
    }

    fn value_or(&mut self) -> Result<VTree, EqlError> {
        let mut parts = vec![self.value_and()?];
        while self.eat_conj("or") {
            parts.push(self.value_and()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            VTree::Or(parts)
        })
    }

    fn value_and(&mut self) -> Result<VTree, EqlError> {
        let mut parts = vec![self.value_not()?];
        while self.eat_conj("and") {
            parts.push(self.value_not()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            VTree::And(parts)
        })
    }

    fn value_not(&mut self) -> Result<VTree, EqlError> {
        if self.eat_not() {
            return Ok(VTree::Not(Box::new(self.values()?)));
        }
        self.values()
    }

    fn range(&mut self, field: &Lit) -> Result<Expr, EqlError> {
        let (op, len) = match (self.peek(), self.peek_at(self.pos + 1)) {
            (Some('<'), Some('=')) => (CmpOp::Le, 2),
            (Some('<'), _) => (CmpOp::Lt, 1),
            (Some('>'), Some('=')) => (CmpOp::Ge, 2),
            _ => (CmpOp::Gt, 1),
        };
        self.pos += len;
        self.skip_spaces();
        let f = self.field_ref(field)?;
        let Some(v) = self.literal()? else {
            return Err(self.expected("a value after the range operator"));
        };
        Ok(self.lower_range(f, op, &v))
    }
}

// ---- lowering -----------------------------------------------------------------------------

impl Parser<'_> {
    /// The field distributed over a value group (Kibana's partial application).
    fn apply(&mut self, f: &FieldRef, t: VTree) -> Expr {
        match t {
            VTree::Leaf(l) => self.is(f, &l),
            VTree::Not(t) => Expr::Not(Box::new(self.apply(f, *t))),
            VTree::And(v) => {
                let parts = v.into_iter().map(|t| self.apply(f, t)).collect();
                join(parts, Expr::And, split_and)
            }
            VTree::Or(v) => {
                let parts = v.into_iter().map(|t| self.apply(f, t)).collect();
                compact_or(join(parts, Expr::Or, split_or))
            }
        }
    }

    fn fail(&mut self, e: EqlError) -> Expr {
        self.errors.push(e);
        Expr::Const(false)
    }

    /// `field:value` (Kibana's `is`).
    fn is(&mut self, f: &FieldRef, l: &Lit) -> Expr {
        let ty = f.resolved.map_or(FieldType::Keyword, |(_, t)| t);
        let at = l.span;
        let cmp = |value| Expr::Cmp {
            field: f.clone(),
            op: CmpOp::Eq,
            value,
        };
        match (classify(l), ty) {
            (Val::Exists, _) => Expr::Not(Box::new(Expr::IsNull(f.clone()))),
            (Val::Null, _) => self.fail(unsupported(
                at,
                "an unquoted null value (Elasticsearch refuses a null term; write \"null\" \
                 for the string)",
            )),
            (Val::Wild(p), FieldType::Keyword) => {
                if p.iter()
                    .any(|p| matches!(p, Piece::Char(c) if c.is_whitespace()))
                {
                    return self.fail(unsupported(
                        at,
                        format!(
                            "a wildcard value with whitespace (`{}`: Elasticsearch's \
                             query_string splits it into separate terms, elastic/kibana#23001)",
                            l.text()
                        ),
                    ));
                }
                Expr::Like {
                    field: f.clone(),
                    patterns: vec![Pattern::from_pieces(&p, false)],
                    case_insensitive: false,
                }
            }
            (Val::Wild(_), ty) => self.fail(type_err(
                at,
                format!(
                    "a wildcard value needs a keyword field, but `{}` is {ty}",
                    f.name
                ),
            )),
            (Val::Str(s), FieldType::Keyword) => cmp(Literal::Str(s)),
            (Val::Bool(b), FieldType::Keyword) => cmp(Literal::Str(b.to_string())),
            (v, FieldType::Long) => match v {
                Val::Str(s) if let Ok(n) = s.parse::<i64>() => cmp(Literal::Num(n)),
                _ => self.fail(type_err(
                    at,
                    format!(
                        "long field `{}` needs an integer, not {}",
                        f.name,
                        l_show(l)
                    ),
                )),
            },
            (v, FieldType::Boolean) => match v {
                Val::Bool(b) => cmp(Literal::Bool(b)),
                Val::Str(s) if s == "true" || s == "false" => cmp(Literal::Bool(s == "true")),
                _ => self.fail(type_err(
                    at,
                    format!(
                        "boolean field `{}` needs true or false, not {}",
                        f.name,
                        l_show(l)
                    ),
                )),
            },
        }
    }

    /// `field < value` and the like (Kibana's `range`): the value is text; a `*` in it is
    /// a plain character.
    fn lower_range(&mut self, f: FieldRef, op: CmpOp, l: &Lit) -> Expr {
        let ty = f.resolved.map_or(FieldType::Keyword, |(_, t)| t);
        if !l.quoted && !l.has_star() && l.text() == "null" {
            return self.fail(unsupported(
                l.span,
                "an unquoted null range bound (write \"null\" for the string)",
            ));
        }
        let text = l.text();
        let value = match ty {
            FieldType::Keyword => Literal::Str(text),
            FieldType::Long => match text.parse::<i64>() {
                Ok(n) => Literal::Num(n),
                Err(_) => {
                    return self.fail(type_err(
                        l.span,
                        format!(
                            "long field `{}` needs an integer, not {}",
                            f.name,
                            l_show(l)
                        ),
                    ));
                }
            },
            FieldType::Boolean => {
                return self.fail(type_err(
                    l.span,
                    format!("boolean field `{}` cannot be ordered", f.name),
                ));
            }
        };
        Expr::Cmp {
            field: f,
            op,
            value,
        }
    }
}

fn l_show(l: &Lit) -> String {
    if l.quoted {
        format!("string {:?}", l.text())
    } else {
        format!("`{}`", l.text())
    }
}

/// One `or` of a value group, with its exact values as one `In` and its patterns as one
/// `Like` (the same field throughout; `or` is order-free, so this changes no result).
fn compact_or(e: Expr) -> Expr {
    let Expr::Or(parts) = e else {
        return e;
    };
    let (mut values, mut patterns) = (Vec::new(), Vec::new());
    let (mut in_field, mut like_field) = (None, None);
    let mut rest = Vec::new();
    for p in parts {
        match p {
            Expr::Cmp {
                field,
                op: CmpOp::Eq,
                value: value @ (Literal::Str(_) | Literal::Num(_)),
            } => {
                in_field.get_or_insert(field);
                values.push(value);
            }
            Expr::Like {
                field,
                patterns: ps,
                case_insensitive: false,
            } => {
                like_field.get_or_insert(field);
                patterns.extend(ps);
            }
            other => rest.push(other),
        }
    }
    let mut out = Vec::new();
    if let Some(field) = in_field {
        out.push(if values.len() == 1 {
            Expr::Cmp {
                field,
                op: CmpOp::Eq,
                value: values.remove(0),
            }
        } else {
            Expr::In {
                field,
                values,
                case_insensitive: false,
            }
        });
    }
    if let Some(field) = like_field {
        out.push(Expr::Like {
            field,
            patterns,
            case_insensitive: false,
        });
    }
    out.extend(rest);
    join(out, Expr::Or, split_or)
}

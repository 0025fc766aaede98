//! rule stage (netlink → record → event → **rule** → alert → syslog): splits EQL query text
//! into tokens with positions.
//!
//! The lexer knows every token of Elastic's EQL, including the ones wwatchd refuses
//! (`|`, `[`, arithmetic, `regex`, `sequence`...), so that the parser can name an unsupported
//! feature instead of reporting a confusing syntax error.

use super::EqlError;
use super::ast::Span;

/// Reserved words. EQL keywords are lowercase only; `AND` is an identifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kw {
    And,
    Or,
    Not,
    In,
    InI,
    Like,
    LikeI,
    Regex,
    RegexI,
    Where,
    True,
    False,
    Null,
    Sequence,
    Sample,
    Join,
    Until,
    By,
    With,
    Runs,
    Maxspan,
    Of,
    Any,
}

impl Kw {
    fn from_word(w: &str) -> Option<Kw> {
        Some(match w {
            "and" => Kw::And,
            "or" => Kw::Or,
            "not" => Kw::Not,
            "in" => Kw::In,
            "like" => Kw::Like,
            "regex" => Kw::Regex,
            "where" => Kw::Where,
            "true" => Kw::True,
            "false" => Kw::False,
            "null" => Kw::Null,
            "sequence" => Kw::Sequence,
            "sample" => Kw::Sample,
            "join" => Kw::Join,
            "until" => Kw::Until,
            "by" => Kw::By,
            "with" => Kw::With,
            "runs" => Kw::Runs,
            "maxspan" => Kw::Maxspan,
            "of" => Kw::Of,
            "any" => Kw::Any,
            _ => return None,
        })
    }

    /// The keyword as written.
    pub fn text(self) -> &'static str {
        match self {
            Kw::And => "and",
            Kw::Or => "or",
            Kw::Not => "not",
            Kw::In => "in",
            Kw::InI => "in~",
            Kw::Like => "like",
            Kw::LikeI => "like~",
            Kw::Regex => "regex",
            Kw::RegexI => "regex~",
            Kw::Where => "where",
            Kw::True => "true",
            Kw::False => "false",
            Kw::Null => "null",
            Kw::Sequence => "sequence",
            Kw::Sample => "sample",
            Kw::Join => "join",
            Kw::Until => "until",
            Kw::By => "by",
            Kw::With => "with",
            Kw::Runs => "runs",
            Kw::Maxspan => "maxspan",
            Kw::Of => "of",
            Kw::Any => "any",
        }
    }
}

/// A token's kind and payload.
#[derive(Clone, Debug, PartialEq)]
pub enum Tok {
    /// A bare name, possibly dotted: `file.path`.
    Ident(String),
    /// A backquoted name: `` `file name` ``.
    Quoted(String),
    /// A string literal, unescaped.
    Str(String),
    /// An integer literal (without sign).
    Num(i64),
    /// A number with a fraction or exponent; kept as written.
    Float(String),
    Kw(Kw),
    Question,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Pipe,
    EqEq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// A lone `=`, which EQL does not accept.
    Assign,
    Colon,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Eof,
}

impl Tok {
    /// How the token is named in "found ..." messages.
    pub fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("field `{s}`"),
            Tok::Quoted(s) => format!("field `{s}`"),
            Tok::Str(s) => format!("string {s:?}"),
            Tok::Num(n) => format!("number {n}"),
            Tok::Float(s) => format!("number {s}"),
            Tok::Kw(k) => format!("'{}'", k.text()),
            Tok::Eof => "end of query".to_owned(),
            other => format!("'{}'", other.punct()),
        }
    }

    fn punct(&self) -> &'static str {
        match self {
            Tok::Question => "?",
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::LBracket => "[",
            Tok::RBracket => "]",
            Tok::Comma => ",",
            Tok::Pipe => "|",
            Tok::EqEq => "==",
            Tok::Ne => "!=",
            Tok::Lt => "<",
            Tok::Le => "<=",
            Tok::Gt => ">",
            Tok::Ge => ">=",
            Tok::Assign => "=",
            Tok::Colon => ":",
            Tok::Plus => "+",
            Tok::Minus => "-",
            Tok::Star => "*",
            Tok::Slash => "/",
            Tok::Percent => "%",
            _ => "?",
        }
    }
}

/// A token and where it starts.
#[derive(Clone, Debug, PartialEq)]
pub struct Token {
    pub tok: Tok,
    pub span: Span,
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    line: usize,
    col: usize,
}

impl<'a> Lexer<'a> {
    fn peek(&self) -> Option<char> {
        self.src.get(self.pos..).and_then(|s| s.chars().next())
    }

    fn peek2(&self) -> Option<char> {
        self.src.get(self.pos..).and_then(|s| s.chars().nth(1))
    }

    fn rest(&self) -> &'a str {
        self.src.get(self.pos..).unwrap_or("")
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn span(&self) -> Span {
        Span {
            offset: self.pos,
            line: self.line,
            col: self.col,
        }
    }

    fn err(&self, at: Span, expected: &str, found: String) -> EqlError {
        EqlError::syntax(at, expected, found)
    }

    fn found_here(&self) -> String {
        match self.peek() {
            None => "end of query".to_owned(),
            Some(c) => format!("{c:?}"),
        }
    }

    /// Skips whitespace and `//` / `/* */` comments.
    fn skip_trivia(&mut self) -> Result<(), EqlError> {
        loop {
            match (self.peek(), self.peek2()) {
                (Some(c), _) if c.is_whitespace() => {
                    self.bump();
                }
                (Some('/'), Some('/')) => {
                    while let Some(c) = self.bump() {
                        if c == '\n' {
                            break;
                        }
                    }
                }
                (Some('/'), Some('*')) => {
                    let start = self.span();
                    self.bump();
                    self.bump();
                    loop {
                        if self.rest().starts_with("*/") {
                            self.bump();
                            self.bump();
                            break;
                        }
                        if self.bump().is_none() {
                            return Err(self.err(
                                start,
                                "'*/' closing the comment",
                                "end of query".into(),
                            ));
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn next_token(&mut self) -> Result<Token, EqlError> {
        self.skip_trivia()?;
        let span = self.span();
        let Some(c) = self.peek() else {
            return Ok(Token {
                tok: Tok::Eof,
                span,
            });
        };
        let two = |l: &mut Lexer<'_>, t: Tok| {
            l.bump();
            l.bump();
            t
        };
        let one = |l: &mut Lexer<'_>, t: Tok| {
            l.bump();
            t
        };
        let tok = match (c, self.peek2()) {
            ('=', Some('=')) => two(self, Tok::EqEq),
            ('=', _) => one(self, Tok::Assign),
            ('!', Some('=')) => two(self, Tok::Ne),
            ('<', Some('=')) => two(self, Tok::Le),
            ('<', _) => one(self, Tok::Lt),
            ('>', Some('=')) => two(self, Tok::Ge),
            ('>', _) => one(self, Tok::Gt),
            ('(', _) => one(self, Tok::LParen),
            (')', _) => one(self, Tok::RParen),
            ('[', _) => one(self, Tok::LBracket),
            (']', _) => one(self, Tok::RBracket),
            (',', _) => one(self, Tok::Comma),
            ('|', _) => one(self, Tok::Pipe),
            (':', _) => one(self, Tok::Colon),
            ('?', Some('"')) | ('?', Some('\'')) => {
                return Err(self.err(
                    span,
                    "a value",
                    "a '?\"...\"' raw string (removed from EQL; use \"\"\"...\"\"\")".into(),
                ));
            }
            ('?', _) => one(self, Tok::Question),
            ('+', _) => one(self, Tok::Plus),
            ('-', _) => one(self, Tok::Minus),
            ('*', _) => one(self, Tok::Star),
            ('/', _) => one(self, Tok::Slash),
            ('%', _) => one(self, Tok::Percent),
            ('"', _) => self.string()?,
            ('\'', _) => {
                return Err(self.err(
                    span,
                    "a value",
                    "a single-quoted string (EQL strings use double quotes)".into(),
                ));
            }
            ('`', _) => self.backquoted()?,
            (c, _) if c.is_ascii_digit() => self.number()?,
            (c, _) if c.is_alphabetic() || c == '_' || c == '@' => self.word(),
            _ => return Err(self.err(span, "a token", self.found_here())),
        };
        Ok(Token { tok, span })
    }

    fn word(&mut self) -> Tok {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c.is_alphanumeric() || c == '_' || c == '@' || c == '.' {
                self.bump();
            } else {
                break;
            }
        }
        let w = self.src.get(start..self.pos).unwrap_or("");
        match Kw::from_word(w) {
            Some(kw) => {
                let tilde = match (kw, self.peek()) {
                    (Kw::In, Some('~')) => Some(Kw::InI),
                    (Kw::Like, Some('~')) => Some(Kw::LikeI),
                    (Kw::Regex, Some('~')) => Some(Kw::RegexI),
                    _ => None,
                };
                match tilde {
                    Some(k) => {
                        self.bump();
                        Tok::Kw(k)
                    }
                    None => Tok::Kw(kw),
                }
            }
            None => Tok::Ident(w.to_owned()),
        }
    }

    fn number(&mut self) -> Result<Tok, EqlError> {
        let span = self.span();
        let start = self.pos;
        let mut float = false;
        while let Some(c) = self.peek() {
            if c.is_ascii_digit() {
                self.bump();
            } else if (c == '.' && self.peek2().is_some_and(|d| d.is_ascii_digit()))
                || c == 'e'
                || c == 'E'
            {
                float = true;
                self.bump();
                if matches!(self.peek(), Some('+') | Some('-')) && (c == 'e' || c == 'E') {
                    self.bump();
                }
            } else {
                break;
            }
        }
        let text = self.src.get(start..self.pos).unwrap_or("");
        if float {
            return Ok(Tok::Float(text.to_owned()));
        }
        text.parse::<i64>().map(Tok::Num).map_err(|_| {
            self.err(
                span,
                "an integer that fits in 64 bits",
                format!("number {text}"),
            )
        })
    }

    fn backquoted(&mut self) -> Result<Tok, EqlError> {
        let start = self.span();
        self.bump();
        let mut out = String::new();
        loop {
            match self.bump() {
                Some('`') if self.peek() == Some('`') => {
                    self.bump();
                    out.push('`');
                }
                Some('`') => break,
                Some(c) => out.push(c),
                None => {
                    return Err(self.err(
                        start,
                        "'`' closing the field name",
                        "end of query".into(),
                    ));
                }
            }
        }
        if out.is_empty() {
            return Err(self.err(start, "a field name", "empty backquotes".into()));
        }
        Ok(Tok::Quoted(out))
    }

    fn string(&mut self) -> Result<Tok, EqlError> {
        let start = self.span();
        if self.rest().starts_with("\"\"\"") {
            for _ in 0..3 {
                self.bump();
            }
            let body_start = self.pos;
            loop {
                if self.rest().starts_with("\"\"\"") {
                    let body = self.src.get(body_start..self.pos).unwrap_or("").to_owned();
                    for _ in 0..3 {
                        self.bump();
                    }
                    return Ok(Tok::Str(body));
                }
                if self.bump().is_none() {
                    return Err(self.err(
                        start,
                        "'\"\"\"' closing the string",
                        "end of query".into(),
                    ));
                }
            }
        }
        self.bump();
        let mut out = String::new();
        loop {
            let here = self.span();
            match self.bump() {
                None => {
                    return Err(self.err(start, "'\"' closing the string", "end of query".into()));
                }
                Some('\n') | Some('\r') => {
                    return Err(self.err(here, "'\"' closing the string", "end of line".into()));
                }
                Some('"') => return Ok(Tok::Str(out)),
                Some('\\') => out.push(self.escape(here)?),
                Some(c) => out.push(c),
            }
        }
    }

    fn escape(&mut self, at: Span) -> Result<char, EqlError> {
        const EXPECTED: &str = "an escape (\\\" \\' \\\\ \\n \\r \\t \\u{...})";
        match self.bump() {
            Some('"') => Ok('"'),
            Some('\'') => Ok('\''),
            Some('\\') => Ok('\\'),
            Some('n') => Ok('\n'),
            Some('r') => Ok('\r'),
            Some('t') => Ok('\t'),
            Some('u') => {
                if self.bump() != Some('{') {
                    return Err(self.err(
                        at,
                        "'\\u{' followed by hex digits and '}'",
                        "'\\u' without '{'".into(),
                    ));
                }
                let mut hex = String::new();
                loop {
                    match self.bump() {
                        Some('}') => break,
                        Some(c) if c.is_ascii_hexdigit() && hex.len() < 8 => hex.push(c),
                        Some(c) => {
                            return Err(self.err(
                                at,
                                "hex digits and '}' in '\\u{...}'",
                                format!("{c:?}"),
                            ));
                        }
                        None => {
                            return Err(self.err(
                                at,
                                "'}' closing '\\u{...}'",
                                "end of query".into(),
                            ));
                        }
                    }
                }
                u32::from_str_radix(&hex, 16)
                    .ok()
                    .and_then(char::from_u32)
                    .ok_or_else(|| {
                        self.err(
                            at,
                            "a Unicode scalar value in '\\u{...}'",
                            format!("\\u{{{hex}}}"),
                        )
                    })
            }
            Some(c) => Err(self.err(at, EXPECTED, format!("'\\{c}'"))),
            None => Err(self.err(at, EXPECTED, "end of query".into())),
        }
    }
}

/// Splits `src` into tokens; the last token is always [`Tok::Eof`].
pub fn tokenize(src: &str) -> Result<Vec<Token>, EqlError> {
    let mut lx = Lexer {
        src,
        pos: 0,
        line: 1,
        col: 1,
    };
    let mut out = Vec::new();
    loop {
        let t = lx.next_token()?;
        let eof = t.tok == Tok::Eof;
        out.push(t);
        if eof {
            return Ok(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        match tokenize(s) {
            Ok(v) => v.into_iter().map(|t| t.tok).collect(),
            Err(e) => panic!("lex error: {e}"),
        }
    }

    #[test]
    fn operators_and_keywords() {
        assert_eq!(
            toks("a.b in~ (1) like~ : != == <= >= < > not"),
            vec![
                Tok::Ident("a.b".into()),
                Tok::Kw(Kw::InI),
                Tok::LParen,
                Tok::Num(1),
                Tok::RParen,
                Tok::Kw(Kw::LikeI),
                Tok::Colon,
                Tok::Ne,
                Tok::EqEq,
                Tok::Le,
                Tok::Ge,
                Tok::Lt,
                Tok::Gt,
                Tok::Kw(Kw::Not),
                Tok::Eof
            ]
        );
        // Keywords are lowercase only.
        assert_eq!(toks("AND"), vec![Tok::Ident("AND".into()), Tok::Eof]);
    }

    #[test]
    fn escapes() {
        assert_eq!(
            toks(r#""a\"b\\c\n\t\r\u{e9}\u{1F600}""#),
            vec![Tok::Str("a\"b\\c\n\t\ré😀".into()), Tok::Eof]
        );
        assert_eq!(
            toks(r#""""raw \n "quoted" \d""""#),
            vec![Tok::Str(r#"raw \n "quoted" \d"#.into()), Tok::Eof]
        );
        assert_eq!(
            toks("`a b``c`"),
            vec![Tok::Quoted("a b`c".into()), Tok::Eof]
        );
    }

    #[test]
    fn comments_and_positions() {
        let v = match tokenize("// c\n  /* x\n */ foo") {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(v[0].tok, Tok::Ident("foo".into()));
        assert_eq!((v[0].span.line, v[0].span.col), (3, 5));
    }

    #[test]
    fn lex_errors() {
        let e = tokenize("x == \"abc").err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("1:6: expected '\"' closing the string, found end of query")
        );
        let e = tokenize("x == \"a\\qb\"").err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("1:8: expected an escape (\\\" \\' \\\\ \\n \\r \\t \\u{...}), found '\\q'")
        );
        let e = tokenize("x == 'a'").err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some(
                "1:6: expected a value, found a single-quoted string (EQL strings use double quotes)"
            )
        );
        let e = tokenize("x == \"\\u{D800}\"").err().map(|e| e.to_string());
        assert!(e.is_some_and(|m| m.starts_with("1:7: expected a Unicode scalar value")));
        let e = tokenize("x == 99999999999999999999")
            .err()
            .map(|e| e.to_string());
        assert!(e.is_some_and(|m| m.starts_with("1:6: expected an integer that fits")));
        let e = tokenize("x # y").err().map(|e| e.to_string());
        assert_eq!(e.as_deref(), Some("1:3: expected a token, found '#'"));
    }
}

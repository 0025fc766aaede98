//! rule stage (netlink → record → event → **rule** → alert → syslog): the EQL wildcard matcher
//! behind `like`, `like~` and `:`, and the case-insensitive equality behind `in~`.
//!
//! A pattern is compiled once into [`Segment`]s; matching walks the event's string with the
//! classic greedy algorithm that, on a mismatch, backtracks only to the most recent `*`. No
//! allocation happens per event.
//!
//! Case-insensitive matching is Elasticsearch 9's (Lucene 10), not a lowercasing of both
//! sides: each character of the *pattern* accepts a small set of characters of the value,
//! [`variants`]. ES builds that set in `AutomatonQueries.toCaseInsensitiveWildcardNFA`
//! (elastic/elasticsearch `server/src/main/java/org/elasticsearch/common/lucene/search/
//! AutomatonQueries.java`) with Lucene's `Automata.makeCaseInsensitiveChar`, which calls
//! `CaseFolding.expand` (apache/lucene `lucene/core/src/java/org/apache/lucene/util/automaton/
//! CaseFolding.java`): the character itself, Java's `Character.toUpperCase` and
//! `toLowerCase` of it (simple, one-to-one mappings), and a few special variants (K and k
//! also accept U+212A KELVIN SIGN, S and s also U+017F LATIN SMALL LETTER LONG S).
//! So the relation is not symmetric: the pattern `i` accepts `i` and `I` but not `İ`
//! (U+0130), while the pattern `İ` accepts `İ` and `i` (its simple lowercase), not `I`.
//! (Elasticsearch 8 folded ASCII only: its `toCaseInsensitiveChar` returns a non-ASCII
//! character unchanged. For ASCII patterns the two differ only by the Kelvin and long-s
//! variants.)
//!
//! Known gap, for non-ASCII pattern characters only (no Elastic rule has one): where the
//! full Unicode mapping of a character has several characters (ß → SS, ǰ, Greek letters with
//! ypogegrammeni), Rust offers no simple mapping and the character accepts only itself and
//! its other single-character case; and Lucene's remaining special variants (Greek symbol
//! forms, Cyrillic historic forms, ẞ, Å/Ω signs) are not added.

/// The special variants of `CaseFolding.expand` that concern ASCII pattern characters.
const KELVIN: char = '\u{212A}';
const LONG_S: char = '\u{017F}';

/// Java's `Character.toLowerCase(int)`: the simple lowercase mapping.
fn simple_lower(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_lowercase();
    }
    if c == '\u{0130}' {
        // Full lowercase is "i\u{307}"; the simple mapping is 'i'.
        return 'i';
    }
    let mut it = c.to_lowercase();
    match (it.next(), it.next()) {
        (Some(l), None) => l,
        _ => c,
    }
}

/// Java's `Character.toUpperCase(int)` where the full mapping is one character.
fn simple_upper(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_uppercase();
    }
    let mut it = c.to_uppercase();
    match (it.next(), it.next()) {
        (Some(u), None) => u,
        _ => c,
    }
}

/// The characters of a value that the pattern character `c` accepts in a case-insensitive
/// match (at most four; unused slots repeat `c`).
pub fn variants(c: char) -> [char; 4] {
    let mut v = [c; 4];
    let mut n = 1;
    for x in [simple_upper(c), simple_lower(c)] {
        if !v[..n].contains(&x) {
            v[n] = x;
            n += 1;
        }
    }
    let special = match c {
        'K' | 'k' => Some(KELVIN),
        'S' | 's' => Some(LONG_S),
        KELVIN => Some('K'),
        LONG_S => Some('s'),
        _ => None,
    };
    if let Some(x) = special
        && !v[..n].contains(&x)
    {
        v[n] = x;
    }
    v
}

/// Whether the value character `v` is accepted by the pattern character `p` under
/// case-insensitive matching.
#[inline]
pub fn accepts_ci(p: char, v: char) -> bool {
    if p.is_ascii() && v.is_ascii() {
        // Kelvin and long s are the only non-ASCII variants of ASCII characters.
        return p.eq_ignore_ascii_case(&v);
    }
    variants(p).contains(&v)
}

/// `value` equals `pattern` under case-insensitive matching (`in~`, and `:` without
/// wildcards): same number of characters, each accepted by the pattern's.
pub fn eq_ci(value: &str, pattern: &str) -> bool {
    let mut v = value.chars();
    for p in pattern.chars() {
        match v.next() {
            Some(c) if accepts_ci(p, c) => {}
            _ => return false,
        }
    }
    v.next().is_none()
}

/// Whether `s` is the only string that matches itself case-insensitively: no character of
/// it has a case variant. Kernel filters compare bytes, so only such literals can be pushed
/// down as they are.
pub fn is_caseless(s: &str) -> bool {
    s.chars().all(|c| variants(c) == [c; 4])
}

/// One piece of a compiled pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    /// Characters that must appear as written (when the pattern is case-insensitive, each
    /// also accepts its [`variants`]).
    Literal(String),
    /// `?`: exactly one character.
    One,
    /// `*`: any run of characters, including none and including `/`.
    Many,
}

/// One element of a pattern given as pieces ([`Pattern::from_pieces`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Piece {
    /// A character that must appear (literal even if it is `*` or `?`).
    Char(char),
    /// Exactly one character.
    One,
    /// Any run of characters, including none and including `/`.
    Many,
}

/// Internal, flattened form used by the matcher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok {
    Lit(char),
    /// A case-insensitive literal: the value's character must be one of these.
    Ci([char; 4]),
    One,
    Many,
}

/// A compiled EQL wildcard pattern.
///
/// Only `*` and `?` are special; every other character, including `.`, `[` and `\`, is
/// literal. So `"/home/.*"` means "starts with `/home/.`".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    source: String,
    case_insensitive: bool,
    prefix_len: usize,
    segments: Vec<Segment>,
    toks: Vec<Tok>,
}

impl Pattern {
    /// Compiles `source` (the unescaped string literal). `case_insensitive` is true for
    /// `like~` and `:`.
    pub fn new(source: &str, case_insensitive: bool) -> Pattern {
        let pieces: Vec<Piece> = source
            .chars()
            .map(|c| match c {
                '*' => Piece::Many,
                '?' => Piece::One,
                c => Piece::Char(c),
            })
            .collect();
        Pattern::from_pieces(&pieces, case_insensitive)
    }

    /// Compiles a pattern whose wildcards are already told apart from its characters, for
    /// languages where `*` and `?` can be literal (KQL: only an unescaped `*` is a
    /// wildcard). Its [`source`](Self::source) shows each [`Piece::Many`] as `*` and each
    /// [`Piece::One`] as `?`.
    pub fn from_pieces(pieces: &[Piece], case_insensitive: bool) -> Pattern {
        let mut toks = Vec::with_capacity(pieces.len());
        let mut source = String::with_capacity(pieces.len());
        let mut prefix_len = None;
        for piece in pieces {
            let t = match *piece {
                Piece::Many => Tok::Many,
                Piece::One => Tok::One,
                Piece::Char(c) if case_insensitive && variants(c) != [c; 4] => Tok::Ci(variants(c)),
                Piece::Char(c) => Tok::Lit(c),
            };
            if matches!(t, Tok::Many | Tok::One) && prefix_len.is_none() {
                prefix_len = Some(source.len());
            }
            source.push(match *piece {
                Piece::Many => '*',
                Piece::One => '?',
                Piece::Char(c) => c,
            });
            // `**` is the same as `*`; collapsing keeps the matcher's restarts few.
            if t == Tok::Many && toks.last() == Some(&Tok::Many) {
                continue;
            }
            toks.push(t);
        }
        let mut segments = Vec::new();
        for t in &toks {
            match (*t, segments.last_mut()) {
                (Tok::Lit(c) | Tok::Ci([c, ..]), Some(Segment::Literal(s))) => s.push(c),
                (Tok::Lit(c) | Tok::Ci([c, ..]), _) => {
                    segments.push(Segment::Literal(c.to_string()))
                }
                (Tok::One, _) => segments.push(Segment::One),
                (Tok::Many, _) => segments.push(Segment::Many),
            }
        }
        Pattern {
            prefix_len: prefix_len.unwrap_or(source.len()),
            source,
            case_insensitive,
            segments,
            toks,
        }
    }

    /// The pattern as written in the query (after string unescaping).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// True for `like~` and `:` patterns.
    pub fn is_case_insensitive(&self) -> bool {
        self.case_insensitive
    }

    /// The literal text before the first wildcard, as written (not folded). For
    /// `"/dev/shm/*"` this is `"/dev/shm/"`; for a pattern without wildcards it is the whole
    /// pattern. When [`is_case_insensitive`](Self::is_case_insensitive) is true, the event's
    /// value may differ from it in case.
    pub fn literal_prefix(&self) -> &str {
        self.source.get(..self.prefix_len).unwrap_or("")
    }

    /// True when the pattern has no wildcard.
    pub fn is_literal(&self) -> bool {
        self.prefix_len == self.source.len()
    }

    /// The compiled segments (literals as written; `**` is collapsed).
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Matches the whole of `value` against the pattern.
    pub fn matches(&self, value: &str) -> bool {
        match_toks(&self.toks, value.chars())
    }
}

/// Greedy matching with backtracking to the last `*` only.
///
/// Why this is enough: once a later `*` has matched, any way of matching the text that
/// re-assigns characters to an earlier `*` can be replayed by the later one, so only the last
/// star's start position ever needs to move. Each restart advances that position by one
/// character, bounding the work by O(pattern × text) with no recursion and no allocation.
fn match_toks<I>(pat: &[Tok], text: I) -> bool
where
    I: Iterator<Item = char> + Clone,
{
    let mut p = 0usize;
    let mut t = text;
    // (index just after the last `*`, text position where that star's run ends)
    let mut restart: Option<(usize, I)> = None;
    loop {
        if let Some(Tok::Many) = pat.get(p) {
            p += 1;
            restart = Some((p, t.clone()));
            continue;
        }
        let mut ahead = t.clone();
        match ahead.next() {
            Some(c) => {
                let ok = match pat.get(p) {
                    Some(Tok::Lit(l)) => *l == c,
                    Some(Tok::Ci(set)) => set.contains(&c),
                    Some(Tok::One) => true,
                    _ => false,
                };
                if ok {
                    p += 1;
                    t = ahead;
                    continue;
                }
                match restart.as_mut() {
                    Some((sp, st)) => {
                        // Let the last star swallow one more character, then retry after it.
                        if st.next().is_none() {
                            return false;
                        }
                        p = *sp;
                        t = st.clone();
                    }
                    None => return false,
                }
            }
            None => return pat[p.min(pat.len())..].iter().all(|t| *t == Tok::Many),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Straightforward recursive reference, exponential but obviously right.
    fn reference(pat: &[char], text: &[char]) -> bool {
        match pat.split_first() {
            None => text.is_empty(),
            Some(('*', rest)) => (0..=text.len()).any(|i| reference(rest, &text[i..])),
            Some(('?', rest)) => !text.is_empty() && reference(rest, &text[1..]),
            Some((c, rest)) => text.first() == Some(c) && reference(rest, &text[1..]),
        }
    }

    /// Like `reference`, with the pattern character accepting its case variants.
    fn reference_ci_chars(pat: &[char], text: &[char]) -> bool {
        match pat.split_first() {
            None => text.is_empty(),
            Some(('*', rest)) => (0..=text.len()).any(|i| reference_ci_chars(rest, &text[i..])),
            Some(('?', rest)) => !text.is_empty() && reference_ci_chars(rest, &text[1..]),
            Some((c, rest)) => {
                text.first().is_some_and(|t| variants(*c).contains(t))
                    && reference_ci_chars(rest, &text[1..])
            }
        }
    }

    fn reference_ci(pat: &str, text: &str) -> bool {
        let p: Vec<char> = pat.chars().collect();
        let t: Vec<char> = text.chars().collect();
        reference_ci_chars(&p, &t)
    }

    fn reference_cs(pat: &str, text: &str) -> bool {
        let p: Vec<char> = pat.chars().collect();
        let t: Vec<char> = text.chars().collect();
        reference(&p, &t)
    }

    #[test]
    fn star_crosses_slash() {
        let p = Pattern::new("/tmp*", false);
        assert!(p.matches("/tmp/a/b/c"));
        assert!(p.matches("/tmp"));
        assert!(p.matches("/tmpfoo"));
        assert!(!p.matches("/var/tmp"));
    }

    #[test]
    fn dot_is_literal() {
        let p = Pattern::new("/home/.*", true);
        assert!(p.matches("/home/.ssh/x"));
        assert!(p.matches("/home/.x"));
        assert!(p.matches("/home/."));
        assert!(!p.matches("/home/alice/x"));
        assert!(!p.matches("/homeX/.y"));
        assert!(!p.matches("/home/alice/.ssh"));
    }

    #[test]
    fn question_is_one_char_even_multibyte() {
        let p = Pattern::new("/tmp/?", false);
        assert!(p.matches("/tmp/é"));
        assert!(p.matches("/tmp/x"));
        assert!(!p.matches("/tmp/"));
        assert!(!p.matches("/tmp/xy"));
        let p = Pattern::new("a?c", true);
        assert!(p.matches("A€C"));
        assert!(!p.matches("A€€C"));
    }

    #[test]
    fn case_insensitive_unicode() {
        let p = Pattern::new("/TMP/ÉTÉ*", true);
        assert!(p.matches("/tmp/été.txt"));
        assert!(!Pattern::new("/TMP/ÉTÉ*", false).matches("/tmp/été.txt"));
        assert!(Pattern::new("?x", true).matches("İX"));
    }

    /// The cases of issue 11: Elasticsearch's `like~` does not lowercase the value.
    #[test]
    fn case_insensitive_as_elasticsearch_9() {
        let rule = Pattern::new("/lib/ld-linux*.so*", true);
        assert!(rule.matches("/LIB/LD-LINUX-X86-64.SO.2"));
        // U+0130 is not a case variant of 'i' for ES (its lowercase is, the other way round).
        assert!(!rule.matches("/lib/ld-l\u{130}nux.so"));
        assert!(!Pattern::new("/lib/ld-linux.so", true).matches("/lib/ld-l\u{130}nux.so"));
        // A pattern with U+0130 accepts it and its simple lowercase 'i', not 'I'.
        let dotted = Pattern::new("/lib/ld-l\u{130}nux.so", true);
        assert!(dotted.matches("/lib/ld-l\u{130}nux.so"));
        assert!(dotted.matches("/lib/ld-linux.so"));
        assert!(!dotted.matches("/lib/ld-lInux.so"));
        // Lucene's special variants: KELVIN SIGN for k, LONG S for s.
        assert!(Pattern::new("/etc/ssh/*.key", true).matches("/etc/\u{17F}sh/host.\u{212A}ey"));
        assert!(!Pattern::new("/etc/ssh/*.key", false).matches("/etc/\u{17F}sh/host.\u{212A}ey"));
        // Dotless ı (U+0131) upper-cases to I, so the pattern ı accepts I, but i does not accept ı.
        assert!(Pattern::new("\u{131}", true).matches("I"));
        assert!(!Pattern::new("i", true).matches("\u{131}"));
        // Full mappings are not used: ß does not match "SS".
        assert!(!Pattern::new("stra\u{DF}e", true).matches("STRASSE"));
        // Equality (in~) follows the same rule.
        assert!(eq_ci("/TMP/X", "/tmp/x"));
        assert!(!eq_ci("/lib/ld-l\u{130}nux.so", "/lib/ld-linux.so"));
        assert!(eq_ci("/lib/ld-linux.so", "/lib/ld-l\u{130}nux.so"));
        assert!(!eq_ci("/tmp/x", "/tmp/xy"));
        assert!(!eq_ci("/tmp/xy", "/tmp/x"));
        assert!(is_caseless("/1/2-3_.*"));
        assert!(!is_caseless("/tmp"));
    }

    #[test]
    fn prefix_and_segments() {
        let p = Pattern::new("/dev/shm/*", true);
        assert_eq!(p.literal_prefix(), "/dev/shm/");
        assert!(!p.is_literal());
        let p = Pattern::new("/Var/tmp?x**y", true);
        assert_eq!(p.literal_prefix(), "/Var/tmp");
        assert_eq!(
            p.segments(),
            &[
                Segment::Literal("/Var/tmp".into()),
                Segment::One,
                Segment::Literal("x".into()),
                Segment::Many,
                Segment::Literal("y".into()),
            ]
        );
        assert!(Pattern::new("abc", false).is_literal());
        assert_eq!(Pattern::new("*", false).literal_prefix(), "");
    }

    /// KQL's patterns: a `*` or `?` can be a plain character.
    #[test]
    fn pieces_with_literal_star_and_question_mark() {
        use Piece::{Char, Many};
        let p = Pattern::from_pieces(&[Char('a'), Char('?'), Char('*'), Many], false);
        assert!(p.matches("a?*"));
        assert!(p.matches("a?*/x"));
        assert!(!p.matches("ab*"));
        assert!(!p.matches("a?x"));
        assert_eq!(p.literal_prefix(), "a?*");
        assert!(!p.is_literal());
        assert_eq!(
            p.segments(),
            &[Segment::Literal("a?*".into()), Segment::Many]
        );
        let p = Pattern::from_pieces(&[Char('/'), Char('T'), Many], true);
        assert!(p.matches("/tmp"));
        assert_eq!(p.source(), "/T*");
        assert_eq!(Pattern::new("/a?*", true), Pattern::new("/a?*", true));
        assert!(Pattern::from_pieces(&[Char('x')], false).is_literal());
    }

    #[test]
    fn backtracking_cases() {
        assert!(Pattern::new("*a*b", false).matches("xaxxb"));
        assert!(Pattern::new("a*ab", false).matches("aaab"));
        assert!(!Pattern::new("a*ab", false).matches("aaba"));
        assert!(Pattern::new("*", false).matches(""));
        assert!(!Pattern::new("?", false).matches(""));
        assert!(Pattern::new("", false).matches(""));
        assert!(!Pattern::new("", false).matches("a"));
    }

    proptest! {
        #[test]
        fn agrees_with_reference_cs(pat in "[ab*?/é]{0,8}", text in "[abAB/é]{0,12}") {
            prop_assert_eq!(Pattern::new(&pat, false).matches(&text), reference_cs(&pat, &text));
        }

        #[test]
        fn agrees_with_reference_ci(pat in "[aAbBkKsS*?/éÉİı]{0,8}", text in "[aAbBkKsS/éÉİiIı\u{212A}\u{17F}]{0,12}") {
            prop_assert_eq!(Pattern::new(&pat, true).matches(&text), reference_ci(&pat, &text));
        }

        #[test]
        fn agrees_on_arbitrary_strings(pat in "\\PC{0,6}", text in "\\PC{0,10}") {
            prop_assert_eq!(Pattern::new(&pat, false).matches(&text), reference_cs(&pat, &text));
            prop_assert_eq!(Pattern::new(&pat, true).matches(&text), reference_ci(&pat, &text));
        }
    }
}

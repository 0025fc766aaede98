//! rule stage (netlink → record → event → **rule** → alert → syslog): the EQL wildcard matcher
//! behind `like`, `like~` and `:`.
//!
//! A pattern is compiled once into [`Segment`]s; matching walks the event's string with the
//! classic greedy algorithm that, on a mismatch, backtracks only to the most recent `*`. No
//! allocation happens per event: case-insensitive matching folds the event's characters on
//! the fly through [`fold`], and the pattern was folded at compile time.

/// Simple (one-to-one) Unicode lowercasing, the mapping Elasticsearch's case-insensitive
/// queries use (Java `Character.toLowerCase(int)`).
///
/// Rust's `char::to_lowercase` is the *full* mapping; the only character whose full lowercase
/// has more than one character is U+0130 (İ → i + U+0307), whose simple lowercase is the
/// first of those, so taking the first character gives the simple mapping. Keeping the
/// mapping one-to-one also keeps `?` meaning "one character of the event's value".
#[inline]
pub fn fold(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_lowercase();
    }
    c.to_lowercase().next().unwrap_or(c)
}

/// Folds every character of `s` with [`fold`].
pub fn fold_str(s: &str) -> String {
    s.chars().map(fold).collect()
}

/// Case-insensitive equality without allocating: `folded` must already be folded.
#[inline]
pub fn eq_folded(value: &str, folded: &str) -> bool {
    value.chars().map(fold).eq(folded.chars())
}

/// One piece of a compiled pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    /// Characters that must appear as written (folded when the pattern is case-insensitive).
    Literal(String),
    /// `?`: exactly one character.
    One,
    /// `*`: any run of characters, including none and including `/`.
    Many,
}

/// Internal, flattened form used by the matcher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok {
    Lit(char),
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
        let mut toks = Vec::with_capacity(source.len());
        for c in source.chars() {
            let t = match c {
                '*' => Tok::Many,
                '?' => Tok::One,
                c if case_insensitive => Tok::Lit(fold(c)),
                c => Tok::Lit(c),
            };
            // `**` is the same as `*`; collapsing keeps the matcher's restarts few.
            if t == Tok::Many && toks.last() == Some(&Tok::Many) {
                continue;
            }
            toks.push(t);
        }
        let mut segments = Vec::new();
        for t in &toks {
            match (*t, segments.last_mut()) {
                (Tok::Lit(c), Some(Segment::Literal(s))) => s.push(c),
                (Tok::Lit(c), _) => segments.push(Segment::Literal(c.to_string())),
                (Tok::One, _) => segments.push(Segment::One),
                (Tok::Many, _) => segments.push(Segment::Many),
            }
        }
        let prefix_len = source.find(['*', '?']).unwrap_or(source.len());
        Pattern {
            source: source.to_owned(),
            case_insensitive,
            prefix_len,
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

    /// True when the pattern has no `*` or `?`.
    pub fn is_literal(&self) -> bool {
        self.prefix_len == self.source.len()
    }

    /// The compiled segments (literals are folded when case-insensitive; `**` is collapsed).
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Matches the whole of `value` against the pattern.
    pub fn matches(&self, value: &str) -> bool {
        if self.case_insensitive {
            match_toks(&self.toks, value.chars().map(fold))
        } else {
            match_toks(&self.toks, value.chars())
        }
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

    fn reference_ci(pat: &str, text: &str) -> bool {
        let p: Vec<char> = pat
            .chars()
            .map(|c| if c == '*' || c == '?' { c } else { fold(c) })
            .collect();
        let t: Vec<char> = text.chars().map(fold).collect();
        reference(&p, &t)
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
        // U+0130 folds to a single 'i' (simple mapping), so `?` still counts it once.
        assert!(Pattern::new("?x", true).matches("İX"));
        assert!(eq_folded("İSTANBUL", "istanbul"));
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
                Segment::Literal("/var/tmp".into()),
                Segment::One,
                Segment::Literal("x".into()),
                Segment::Many,
                Segment::Literal("y".into()),
            ]
        );
        assert!(Pattern::new("abc", false).is_literal());
        assert_eq!(Pattern::new("*", false).literal_prefix(), "");
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
        fn agrees_with_reference_ci(pat in "[aAbB*?/éÉ]{0,8}", text in "[aAbB/éÉİi]{0,12}") {
            prop_assert_eq!(Pattern::new(&pat, true).matches(&text), reference_ci(&pat, &text));
        }

        #[test]
        fn agrees_on_arbitrary_strings(pat in "\\PC{0,6}", text in "\\PC{0,10}") {
            prop_assert_eq!(Pattern::new(&pat, false).matches(&text), reference_cs(&pat, &text));
            prop_assert_eq!(Pattern::new(&pat, true).matches(&text), reference_ci(&pat, &text));
        }
    }
}

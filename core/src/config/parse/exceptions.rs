//! config::parse::exceptions: the `[[exception]]` tables, validated.

use super::*;

/// The valid `[[exception]]` tables, each with where its `rule` key is (for the later check
/// that the rule exists). An exception with an error is left out: half of one would
/// suppress more.
pub(super) fn exceptions(
    c: &mut Check<'_>,
    raw: &[Spanned<RawException>],
) -> (Vec<Exception>, Vec<Option<String>>) {
    let mut exceptions = Vec::new();
    let mut rule_refs_at = Vec::new();
    let mut names: HashMap<String, String> = HashMap::new();
    for e in raw {
        let before = c.errors.len();
        let ex = exception(c, e, &mut names);
        if c.errors.len() == before {
            let at = e.get_ref().rule.as_ref().map(|r| c.at(&r.span()));
            exceptions.push(ex);
            rule_refs_at.push(at);
        }
    }
    (exceptions, rule_refs_at)
}

/// One `[[exception]]`, checked; `names` maps the names seen so far to where they were.
fn exception(
    c: &mut Check<'_>,
    raw: &Spanned<RawException>,
    names: &mut HashMap<String, String>,
) -> Exception {
    let header = raw.span();
    let e = raw.get_ref();
    let origin_at = c.at(&header);
    if let Some(n) = &e.name {
        if let Some(first) = names.get(n.get_ref()) {
            let msg = format!(
                "the name {:?} is already used by the exception at {first}; allowed: a \
                 name no other exception has",
                n.get_ref()
            );
            c.err(&n.span(), "exception.name", msg);
        } else {
            names.insert(n.get_ref().clone(), origin_at.clone());
        }
    }
    let mut ex = Exception {
        name: e.name.as_ref().map(|n| n.get_ref().clone()),
        rule: e.rule.as_ref().map(|r| r.get_ref().clone()),
        origin: origin_at,
        users: Vec::new(),
        processes: Vec::new(),
        paths: Vec::new(),
        parents: Vec::new(),
        sources: Vec::new(),
    };
    if let Some(l) = &e.user {
        ex.users = exception_users(c, l);
    }
    for (list, key, out) in [
        (&e.process, "exception.process", &mut ex.processes),
        (&e.parent, "exception.parent", &mut ex.parents),
    ] {
        if let Some(l) = list {
            *out = exception_procs(c, l, key);
        }
    }
    if let Some(l) = &e.path {
        ex.paths = exception_paths(c, l);
    }
    if let Some(l) = &e.source {
        ex.sources = exception_sources(c, l);
    }
    let named = e.user.is_some()
        || e.process.is_some()
        || e.path.is_some()
        || e.parent.is_some()
        || e.source.is_some();
    if !named {
        c.err(
            &header,
            "exception",
            "names no condition, so it would suppress every alert; allowed: at least one of \
             user, process, path, parent, source (to stop a rule, remove its file or set \
             rules.builtin = false)",
        );
    }
    ex
}

fn exception_users(c: &mut Check<'_>, l: &Spanned<List>) -> Vec<UserSpec> {
    let mut users = Vec::new();
    for (v, span) in c.strings(l, "exception.user", true) {
        match v {
            Scalar::Int(n) => match u32::try_from(n) {
                Ok(id) => users.push(UserSpec::Id(id)),
                Err(_) => c.err(
                    &span,
                    "exception.user",
                    format!("{n} is not a user id; allowed: user names, or ids 0-4294967295"),
                ),
            },
            Scalar::Str(s) if s.bytes().all(|b| b.is_ascii_digit()) => match s.parse() {
                Ok(id) => users.push(UserSpec::Id(id)),
                Err(_) => c.err(
                    &span,
                    "exception.user",
                    format!("{s} is not a user id; allowed: user names, or ids 0-4294967295"),
                ),
            },
            Scalar::Str(s) => users.push(UserSpec::Name(s)),
        }
    }
    users
}

/// `process` or `parent`: names or absolute executable paths.
fn exception_procs(c: &mut Check<'_>, l: &Spanned<List>, key: &str) -> Vec<ProcSpec> {
    let mut out = Vec::new();
    for (v, span) in c.strings(l, key, false) {
        let Scalar::Str(s) = v else { continue };
        if s.contains('/') && !s.starts_with('/') {
            c.err(
                &span,
                key,
                format!(
                    "{s:?} is neither a process name nor an absolute executable path; \
                     allowed: a name (compared with process.name) or a path starting \
                     with / (compared with process.executable)"
                ),
            );
        } else {
            out.push(ProcSpec::new(&s));
        }
    }
    out
}

fn exception_paths(c: &mut Check<'_>, l: &Spanned<List>) -> Vec<Pattern> {
    let mut paths = Vec::new();
    for (v, span) in c.strings(l, "exception.path", false) {
        let Scalar::Str(s) = v else { continue };
        if s.starts_with('/') || s.starts_with('*') {
            paths.push(Pattern::new(&s, true));
        } else {
            c.err(
                &span,
                "exception.path",
                format!(
                    "glob {s:?} can never match: file.path is absolute; allowed: a glob \
                     starting with / or * (`*` any characters including /, `?` one \
                     character, case-insensitive)"
                ),
            );
        }
    }
    paths
}

fn exception_sources(c: &mut Check<'_>, l: &Spanned<List>) -> Vec<Cidr> {
    let mut sources = Vec::new();
    for (v, span) in c.strings(l, "exception.source", false) {
        let Scalar::Str(s) = v else { continue };
        match s.parse::<Cidr>() {
            Ok(n) => sources.push(n),
            Err(why) => c.err(
                &span,
                "exception.source",
                format!(
                    "{why}; allowed: an IPv4 or IPv6 address or network, e.g. \
                     192.0.2.0/24 or 2001:db8::/32"
                ),
            ),
        }
    }
    sources
}

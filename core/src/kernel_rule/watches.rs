//! kernel_rule::watches: what a detection rule's `file.path` conditions need the kernel to
//! watch, on the file-system view the caller gives ([`WatchFs`]).

use std::path::{Path, PathBuf};

use super::*;

/// One `file.path` literal of a rule, as far as the derivation needs it.
#[derive(Clone, Copy, Debug)]
pub(super) struct PathLit<'a> {
    /// The pattern or value as written, for messages.
    pub(super) source: &'a str,
    /// The query line of its `file.path`.
    pub(super) line: usize,
    /// The text before the first wildcard (all of it for `==`, `in`).
    pub(super) prefix: &'a str,
    /// No wildcard: the value must equal it.
    pub(super) exact: bool,
    /// `like~`, `:`, `in~`.
    pub(super) ci: bool,
}

/// The paths a literal directory stands for: itself, or for a case-insensitive pattern
/// whose text has case variants, the existing directories it names under Elasticsearch's
/// folding (usually one; the text as written when none exists yet). Symbolic links are
/// resolved.
fn spellings(p: &str, ci: bool, fs: &dyn WatchFs) -> Vec<PathBuf> {
    let mut v = if ci && !crate::rule::wildcard::is_caseless(p) {
        fs.case_variants(Path::new(p))
    } else {
        Vec::new()
    };
    if v.is_empty() {
        v.push(PathBuf::from(p));
    }
    let mut out: Vec<PathBuf> = v.iter().map(|p| fs.resolve(p)).collect();
    out.dedup();
    out
}

/// The nearest existing directory at or above `p` (the kernel refuses a `dir=` or `path=`
/// whose directory does not exist: ENOENT from kern_path in audit_add_tree_rule and
/// audit_get_nd). `None` when that is `/`, which would audit every file on the host.
fn existing_dir(p: &Path, fs: &dyn WatchFs) -> Option<PathBuf> {
    let mut cur = p;
    loop {
        if cur == Path::new("/") {
            return None;
        }
        if fs.is_dir(cur) {
            return Some(cur.to_path_buf());
        }
        cur = cur.parent()?;
    }
}

const EVERY_FILE: &str =
    "its only literal directory is /, which would audit every creation on the host";

/// The watches for one `file.path` literal.
///
/// * `"/dev/shm/*"`: the subtree of /dev/shm (`dir=`).
/// * `"/home/.*"`: names in /home starting with `.` (`path=/home`), and the subtrees of
///   the existing ones.
/// * `"/tmp*"`, where /tmp is a directory: its subtree (it also matches "/tmpfoo", a
///   sibling in /, which no Linux system makes world-writable).
/// * `"/etc/ld.so*"`, where /etc/ld.so is not a directory: the subtree of /etc (`*`
///   crosses `/`).
/// * `"/etc/doas.conf"` (no wildcard): that one name (`path=`), existing or not; the kernel
///   watches it through its directory, which must exist.
///
/// A directory that does not exist is replaced by its nearest existing ancestor, which
/// holds everything it could later hold; the evaluator then discards the rest.
pub(super) fn watches_for(
    lit: PathLit<'_>,
    fs: &dyn WatchFs,
    omitted: &mut Omitted,
) -> Result<Vec<Watch>, String> {
    let prefix = lit.prefix;
    if !prefix.starts_with('/') {
        return Err("it has no literal absolute directory before its first wildcard".into());
    }
    let Some(slash) = prefix.rfind('/') else {
        unreachable!("starts with '/'");
    };
    let (dir, partial) = (&prefix[..slash], &prefix[slash + 1..]);
    let dir = if dir.is_empty() { "/" } else { dir };
    let mut out = Vec::new();
    if lit.exact {
        if partial.is_empty() {
            // "/etc/" cannot be a file's path; the kernel refuses a trailing '/'.
            return Err("its literal path ends with '/', which no file has".into());
        }
        for d in spellings(dir, lit.ci, fs) {
            if fs.is_dir(&d) {
                // The name itself keeps its case as written; path= is exact, so a
                // case-insensitive literal name with case variants watches its directory.
                if lit.ci && !crate::rule::wildcard::is_caseless(partial) {
                    out.push(Watch::Dir(d));
                } else {
                    out.push(Watch::Name(d.join(partial)));
                }
            } else {
                out.push(Watch::Dir(existing_dir(&d, fs).ok_or(EVERY_FILE)?));
            }
        }
        return Ok(out);
    }
    if partial.is_empty() {
        for d in spellings(dir, lit.ci, fs) {
            out.push(Watch::Dir(existing_dir(&d, fs).ok_or(EVERY_FILE)?));
        }
        return Ok(out);
    }
    if partial.starts_with('.') {
        // path=DIR catches new hidden names; the daemon adds dir= rules for the existing
        // ones when it re-derives (every reconcile).
        for d in spellings(dir, lit.ci, fs) {
            let Some(e) = existing_dir(&d, fs) else {
                return Err(EVERY_FILE.into());
            };
            if e != d {
                out.push(Watch::Dir(e));
                continue;
            }
            let mut hidden = fs.subdirs_starting_with(&d, partial);
            hidden.sort();
            out.push(Watch::Entries(d.clone()));
            for (i, name) in hidden.into_iter().enumerate() {
                let sub = d.join(name);
                if i < MAX_HIDDEN_DIRS {
                    out.push(Watch::Dir(sub));
                } else if !omitted.hidden_dirs.contains(&sub) {
                    omitted.hidden_dirs.push(sub);
                }
            }
        }
        return Ok(out);
    }
    let as_dirs: Vec<PathBuf> = spellings(prefix, lit.ci, fs)
        .into_iter()
        .filter(|p| fs.is_dir(p))
        .collect();
    if !as_dirs.is_empty() {
        return Ok(as_dirs.into_iter().map(Watch::Dir).collect());
    }
    for d in spellings(dir, lit.ci, fs) {
        out.push(Watch::Dir(existing_dir(&d, fs).ok_or(EVERY_FILE)?));
    }
    Ok(out)
}

/// The `file.path` literals that bound every event `e` can match, or `None` when some
/// matching event may have any path. `a and b`: the first conjunct with a bound (any one
/// bounds the conjunction; the narrowest is not worth the search). `a or b`: every
/// disjunct must have one, and the bound is their union. Negations bound nothing.
pub(super) fn path_bound(e: &crate::rule::ast::Expr) -> Option<Vec<PathLit<'_>>> {
    use crate::rule::ast::{CmpOp, Expr, Literal};
    match e {
        Expr::Like {
            field, patterns, ..
        } if is_field(field, "file.path") => Some(
            patterns
                .iter()
                .map(|p| PathLit {
                    line: field.span.line,
                    source: p.source(),
                    prefix: p.literal_prefix(),
                    exact: p.is_literal(),
                    ci: p.is_case_insensitive(),
                })
                .collect(),
        ),
        Expr::In {
            field,
            values,
            case_insensitive,
        } if is_field(field, "file.path") => Some(
            values
                .iter()
                .map(|v| {
                    let s = match v {
                        Literal::Str(s) => s.as_str(),
                        _ => "",
                    };
                    PathLit {
                        line: field.span.line,
                        source: s,
                        prefix: s,
                        exact: true,
                        ci: *case_insensitive,
                    }
                })
                .collect(),
        ),
        Expr::Cmp {
            field,
            op: CmpOp::Eq,
            value: Literal::Str(s),
        } if is_field(field, "file.path") => Some(vec![PathLit {
            source: s,
            prefix: s,
            exact: true,
            ci: false,
            line: field.span.line,
        }]),
        Expr::And(v) => v.iter().find_map(path_bound),
        Expr::Or(v) => {
            let mut all = Vec::new();
            for d in v {
                all.extend(path_bound(d)?);
            }
            Some(all)
        }
        _ => None,
    }
}

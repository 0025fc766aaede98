//! rule stage (netlink → record → event → **rule** → alert → syslog): which kinds of file
//! event a rule can match, decided once at load time.
//!
//! wwatchd makes four kinds of file event, named as Elastic Defend names them ([`Action`]).
//! A rule that says `event.action == "creation"` can match only creations, so the kernel
//! rules derived for it list only the creation syscalls, and the detector builds the other
//! kinds only when some rule can match them. The analysis evaluates the query with the
//! fields that are fixed per kind (`event.action`, `event.type`, `event.category`,
//! `host.os.type`, and the rename-only `file.Ext.original.*`) known and every other
//! predicate unknown, in three-valued logic; a kind is possible unless the query is then
//! certainly false.

use super::ast::{Expr, FieldRef};
use super::{FieldId, FieldSource, FieldValue};

/// What happened to a file: ECS `event.action` and `event.type` as Elastic Defend sets them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Action {
    /// A new name: `event.action` "creation", `event.type` "creation".
    #[default]
    Creation,
    /// A name moved: "rename", type "change"; the old name in `file.Ext.original.*`.
    Rename,
    /// An existing file changed: "modification", type "change".
    Modification,
    /// A name removed: "deletion", type "deletion".
    Deletion,
}

impl Action {
    /// Every kind, in a fixed order.
    pub const ALL: [Action; 4] = [
        Action::Creation,
        Action::Rename,
        Action::Modification,
        Action::Deletion,
    ];

    /// ECS `event.action`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Creation => "creation",
            Action::Rename => "rename",
            Action::Modification => "modification",
            Action::Deletion => "deletion",
        }
    }

    /// ECS `event.type` (one of its allowed values for the `file` category).
    pub fn event_type(self) -> &'static str {
        match self {
            Action::Creation => "creation",
            Action::Rename | Action::Modification => "change",
            Action::Deletion => "deletion",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of [`Action`]s.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Kinds(u8);

impl Kinds {
    /// Only creations: what every rule wwatchd accepted before issue 11 matched.
    pub const CREATION: Kinds = Kinds(1);

    /// Whether `a` is in the set.
    pub fn contains(self, a: Action) -> bool {
        self.0 & a.bit() != 0
    }

    /// Adds `a`.
    pub fn insert(&mut self, a: Action) {
        self.0 |= a.bit();
    }

    /// Both sets.
    pub fn union(self, o: Kinds) -> Kinds {
        Kinds(self.0 | o.0)
    }

    /// No kind at all: the rule can never match.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The kinds, in [`Action::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Action> {
        Action::ALL.into_iter().filter(move |a| self.contains(*a))
    }
}

/// The kinds of event the condition `e` can match.
pub fn kinds(e: &Expr) -> Kinds {
    let mut k = Kinds::default();
    for a in Action::ALL {
        if tri(e, a) != Tri::False {
            k.insert(a);
        }
    }
    k
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tri {
    True,
    False,
    Unknown,
}

impl Tri {
    fn of(b: bool) -> Tri {
        if b { Tri::True } else { Tri::False }
    }
}

/// The value a field has on every event of kind `a`: `Some(None)` for "always missing",
/// `None` for "depends on the event".
fn fixed(f: &FieldRef, a: Action) -> Option<Option<&'static str>> {
    if f.resolved.is_none() {
        // An optional field the schema does not know: never filled.
        return Some(None);
    }
    match f.name.as_str() {
        "event.action" => Some(Some(a.as_str())),
        "event.type" => Some(Some(a.event_type())),
        "event.category" => Some(Some("file")),
        "host.os.type" => Some(Some("linux")),
        "file.Ext.original.path" | "file.Ext.original.name" | "file.Ext.original.extension"
            if a != Action::Rename =>
        {
            Some(None)
        }
        _ => None,
    }
}

/// An event holding one field.
struct One {
    id: Option<FieldId>,
    value: Option<&'static str>,
}

impl FieldSource for One {
    fn field(&self, id: FieldId) -> Option<FieldValue<'_>> {
        (Some(id) == self.id).then_some(self.value.map(FieldValue::Str))?
    }
}

fn tri(e: &Expr, a: Action) -> Tri {
    let leaf = |f: &FieldRef| match fixed(f, a) {
        Some(value) => Tri::of(super::eval::eval(
            e,
            &One {
                id: f.resolved.map(|(id, _)| id),
                value,
            },
        )),
        None => Tri::Unknown,
    };
    match e {
        Expr::And(v) => {
            let mut out = Tri::True;
            for c in v {
                match tri(c, a) {
                    Tri::False => return Tri::False,
                    Tri::Unknown => out = Tri::Unknown,
                    Tri::True => {}
                }
            }
            out
        }
        Expr::Or(v) => {
            let mut out = Tri::False;
            for c in v {
                match tri(c, a) {
                    Tri::True => return Tri::True,
                    Tri::Unknown => out = Tri::Unknown,
                    Tri::False => {}
                }
            }
            out
        }
        Expr::Not(inner) => match tri(inner, a) {
            Tri::True => Tri::False,
            Tri::False => Tri::True,
            Tri::Unknown => Tri::Unknown,
        },
        Expr::Const(b) => Tri::of(*b),
        Expr::IsNull(f) => leaf(f),
        Expr::Cmp { field, .. } | Expr::In { field, .. } | Expr::Like { field, .. } => leaf(field),
    }
}

/// The load-time warnings for a rule that compiles but can never match a file event
/// wwatchd makes, e.g. Auditbeat-only actions such as `"opened-file"` (issue 11). Such a
/// rule costs nothing: no kernel rule is derived for it.
pub fn warnings(rule: &super::Rule) -> Vec<String> {
    if !kinds(rule.query.ast()).is_empty() {
        return Vec::new();
    }
    let at = match rule.query.file_line(1) {
        Some(l) => format!("{}:{l}", rule.meta.origin),
        None => rule.meta.origin.clone(),
    };
    vec![format!(
        "{at}: rule \"{}\" can never match the events wwatchd produces: its query excludes \
         every file event wwatchd emits (event.action creation, rename, modification or \
         deletion; event.type creation, change or deletion; event.category file; \
         host.os.type linux), or requires a field wwatchd never fills",
        rule.meta.name
    )]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::Query;
    use crate::rule::testutil::TestSchema;

    fn k(cond: &str) -> Vec<&'static str> {
        let q = match Query::compile(&format!("file where {cond}"), &TestSchema) {
            Ok(q) => q,
            Err(e) => panic!("{cond}: {e}"),
        };
        kinds(q.ast()).iter().map(Action::as_str).collect()
    }

    #[test]
    fn kinds_of_real_rule_shapes() {
        assert_eq!(
            k(r#"event.action == "creation" and user.id != "0""#),
            ["creation"]
        );
        assert_eq!(
            k(r#"event.type == "creation" and file.path : "/etc/*""#),
            ["creation"]
        );
        assert_eq!(
            k(r#"event.action in ("rename", "creation")"#),
            ["creation", "rename"]
        );
        assert_eq!(k(r#"event.type == "change""#), ["rename", "modification"]);
        assert_eq!(k(r#"event.type == "deletion""#), ["deletion"]);
        assert_eq!(
            k(r#"event.type in ("creation", "change") and process.name == "x""#),
            ["creation", "rename", "modification"]
        );
        // No condition on the kind: every kind.
        assert_eq!(k(r#"file.path : "/etc/*""#).len(), 4);
        // Never: a value wwatchd does not emit, another OS, an unknown optional field.
        assert!(k(r#"event.action == "file_create_event""#).is_empty());
        assert!(k(r#"host.os.type == "macos""#).is_empty());
        assert!(k(r#"?no.such == "x""#).is_empty());
        assert_eq!(
            k(r#"?no.such == null and event.action == "creation""#),
            ["creation"]
        );
        // `not`, and `or` with an unknown side.
        assert_eq!(
            k(r#"not event.type == "creation""#),
            ["rename", "modification", "deletion"]
        );
        assert_eq!(
            k(r#"event.action == "creation" or process.name == "x""#).len(),
            4
        );
    }
}

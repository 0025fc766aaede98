//! rule stage (netlink → record → event → **rule** → alert → syslog): the typed, resolved
//! syntax tree of a `file where` query.
//!
//! The tree is public because it is read by more than the evaluator: the kernel audit-rule
//! builder walks it to push predicates down (for instance the directories of
//! `file.path like~ (...)` and `user.id != "0"`). Every field reference is already resolved
//! against the schema and every pattern already compiled.
//!
//! Negations are explicit: `x not in (...)`, `not x in (...)` and `x != v` all appear as
//! [`Expr::Not`] around the positive predicate, so a consumer only needs to understand the
//! positive forms.

pub use super::wildcard::{Pattern, Segment};
use super::{FieldId, FieldType};

/// A position in the query text: byte offset plus 1-based line and column (in characters).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Span {
    /// Byte offset of the first character.
    pub offset: usize,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub col: usize,
}

/// A field as it appears in the query, resolved against the schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldRef {
    /// The ECS name as written (without `?` and backquotes).
    pub name: String,
    /// The schema's id and type, or `None` for an optional (`?name`) field the schema does not
    /// know, which evaluates as always missing.
    pub resolved: Option<(FieldId, FieldType)>,
    /// Written with a leading `?`.
    pub optional: bool,
    /// Where the reference starts.
    pub span: Span,
}

/// A literal value on the right-hand side of a comparison or in a list.
#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    /// A string, already unescaped.
    Str(String),
    /// An integer.
    Num(i64),
    /// `true` or `false`.
    Bool(bool),
    /// `null`.
    Null,
}

/// Ordering and equality operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    /// `==` (case-sensitive, no wildcards). `!=` is `Not(Cmp(Eq))`.
    Eq,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// A boolean expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// All must hold (flattened: no `And` directly inside an `And`).
    And(Vec<Expr>),
    /// Any must hold (flattened).
    Or(Vec<Expr>),
    /// Negation. `x != v` is `Not(Cmp { op: Eq })`; `x not in (...)` is `Not(In)`.
    Not(Box<Expr>),
    /// `true` or `false` used as a condition.
    Const(bool),
    /// `field == null` (true iff the field has no value). `field != null` is `Not(IsNull)`.
    IsNull(FieldRef),
    /// `field OP value`, false when the field is missing. `value` is never [`Literal::Null`].
    Cmp {
        /// The field on the left.
        field: FieldRef,
        /// The operator.
        op: CmpOp,
        /// The literal on the right.
        value: Literal,
    },
    /// `field in (...)` / `field in~ (...)`: exact membership, no wildcards. For `in~` the
    /// values are kept as written and compared with `wildcard::eq_ci`.
    In {
        /// The field on the left.
        field: FieldRef,
        /// The list (never contains `null`).
        values: Vec<Literal>,
        /// `in~`.
        case_insensitive: bool,
    },
    /// `field like ...`, `field like~ ...` or `field : ...`: true if any pattern matches.
    Like {
        /// The field on the left (always a keyword field, or an unknown optional one).
        field: FieldRef,
        /// The compiled patterns; each knows whether it is case-insensitive.
        patterns: Vec<Pattern>,
        /// `like~` or `:`.
        case_insensitive: bool,
    },
}

impl Expr {
    /// Calls `f` on this node and every node below it, parents first.
    pub fn walk(&self, f: &mut dyn FnMut(&Expr)) {
        f(self);
        match self {
            Expr::And(v) | Expr::Or(v) => v.iter().for_each(|e| e.walk(f)),
            Expr::Not(e) => e.walk(f),
            _ => {}
        }
    }

    /// The top-level conjuncts: the children of a top-level `And`, or the expression itself.
    /// A predicate found here must hold for every matching event, which is what a
    /// push-down into kernel filters needs.
    pub fn conjuncts(&self) -> &[Expr] {
        match self {
            Expr::And(v) => v,
            other => std::slice::from_ref(other),
        }
    }
}

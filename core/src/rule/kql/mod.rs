//! rule stage (netlink → record → event → **rule** → alert → syslog): KQL, the Kibana Query
//! Language of `language = "kuery"` rules, compiled to the same [`Expr`] as EQL, so that
//! evaluation, the event-kind analysis and the kernel-rule push-down treat both alike.
//!
//! # Grammar
//!
//! The subset is Kibana's grammar (`@kbn/es-query`, `src/kuery/grammar/grammar.peggy`)
//! minus free text and nested queries, which are refused by name:
//!
//! ```text
//! query    := space* [or] space*                     (empty: every event)
//! or       := and (space+ "or" space+ and)*
//! and      := not (space+ "and" space+ not)*
//! not      := "not" space+ sub | sub                  (one 'not': "not not x" is an error)
//! sub      := "(" space* or space* ")" | expr
//! expr     := field space* ("<" | "<=" | ">" | ">=") space* literal
//!           | field space* ":" space* values
//! values   := "(" space* vor space* ")" | literal
//! vor      := vand (space+ "or" space+ vand)*
//! vand     := vnot (space+ "and" space+ vnot)*
//! vnot     := "not" space+ values | values
//! field    := literal
//! literal  := '"' quoted-char* '"' | unquoted-char+
//! space    := " " | "\t" | "\r" | "\n" | U+00A0
//! ```
//!
//! Keywords are case-insensitive and need whitespace around them (`or(` is no keyword). An
//! unquoted literal runs up to one of `\ ( ) : < > " * { }` (each can be escaped with `\`;
//! `*` unescaped is the wildcard), or up to ` or `, ` and `, or `not ` (escaped as `\or`,
//! `\and`, `\not`); it may hold spaces and is trimmed, so `a:b c` is the value "b c".
//! Escapes: `\t`, `\r`, `\n`, `\uXXXX`; in quotes also `\"` and `\\`, any other `\` being a
//! plain backslash. Unquoted `true`, `false` and `null` are literals.
//!
//! # Semantics, and where they come from
//!
//! Kibana's detection engine turns the query into Elasticsearch DSL with `buildEsQuery`
//! (kibana `x-pack/solutions/security/plugins/security_solution/server/lib/detection_engine/
//! rule_types/utils/get_query_filter.ts`: no `caseInsensitive` option, leading wildcards
//! allowed); the functions are in `@kbn/es-query` `src/kuery/functions/` and
//! `node_types/wildcard.ts`. Each fact below has a unit test in `tests.rs`:
//!
//! * `field:value` is a `match` query (`match_phrase` when quoted), or a `term` query when
//!   the data view knows the field as `keyword` (`is.ts`). On an ECS keyword field both are
//!   an exact, **case-sensitive** comparison of the whole value: "When querying keyword,
//!   numeric, date, or boolean fields, the value must be an exact match, including
//!   punctuation and case" (elastic.co/docs/reference/query-languages/kql; and
//!   elastic/elasticsearch#135772: Kibana's KQL is case-sensitive on keyword fields).
//! * A value with an unescaped `*` is a `wildcard` query (`query_string` without field
//!   types) whose `case_insensitive` is left unset, so it is **case-sensitive** (the ES
//!   wildcard query's default). `*` is any run of characters, **including `/`**. `?` is
//!   **not** a wildcard in KQL: `toQueryStringQuery` escapes it (and every other reserved
//!   character), so `GitHub?Copilot` matches only a literal `?`. Quoted values have no
//!   wildcards: `"/tmp/*"` is the exact string.
//! * `field:*` alone is an `exists` query: true for any value, including the empty string.
//! * `not q` is `bool.must_not`: true when the field is missing. `a and b` is `bool.filter`,
//!   `a or b` is `bool.should` with `minimum_should_match: 1`. Precedence: not, and, or.
//! * `field:(a or b and not c)` distributes the field over the group: `field:a or
//!   (field:b and not field:c)`, each part a query of its own (`process.name:(* and not
//!   (sudo or vim))` is `process.name:* and not (process.name:sudo or process.name:vim)`).
//! * A multi-valued field (an array such as `process.args`) matches if any value does, and
//!   `not` is true only if none does, as for every Elasticsearch query on an array.
//! * Values are strings until Elasticsearch reads them by the field's type: `user.id:0` on
//!   the keyword `user.id` is the string "0" (so "00" does not match); on a long field the
//!   value must be an integer, on a boolean field `true` or `false`. Unquoted `true`/`false`
//!   on a keyword field are the strings "true"/"false".
//! * `field < v` (`<=`, `>`, `>=`) is a `range` query: on a keyword field it compares the
//!   strings in term order (UTF-8 bytes), on a long field the numbers. A `*` in a range value
//!   is a plain character (`range.ts` sends the wildcard node's text).
//!
//! Refused at load time, with an error naming the feature: free text (a value with no
//! field), nested queries (`field:{...}`), wildcards in field names, unquoted `null` as a
//! value (Elasticsearch rejects a null term), a wildcard value with whitespace inside (the
//! `query_string` form splits it into several terms, the `wildcard` form does not:
//! elastic/kibana#23001), wildcards on long or boolean fields (Elasticsearch rejects them),
//! and ordering booleans. A field the schema does not know is refused like in EQL: Kibana
//! would send it to Elasticsearch as it is, where no event has it and it matches nothing;
//! wwatchd refuses it rather than load a rule that is silently never true.

mod syntax;
#[cfg(test)]
mod tests;

use super::ast::Expr;
use super::{EqlError, Schema};

/// Parses the KQL `src`, resolves its fields against `schema` and compiles its patterns.
/// Reports every unknown field and type error at once, up to the first syntax error.
pub(crate) fn compile(src: &str, schema: &dyn Schema) -> Result<Expr, EqlError> {
    syntax::parse(src, schema)
}

//! Fuzz target: the EQL lexer and parser on any text (bytes that are not UTF-8 are read
//! lossily, as a rule file's text would be refused earlier). A query that compiles is
//! evaluated on synthetic events and turned into kernel audit rules; an error must point at
//! the right line and column.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wwatchd_fuzz::{compile_and_check, exercise_rule, rule_from_query};

fuzz_target!(|data: &[u8]| {
    let src = String::from_utf8_lossy(data);
    if let Some(q) = compile_and_check(&src) {
        assert_eq!(q.source(), src);
        exercise_rule(&rule_from_query(q));
    }
});

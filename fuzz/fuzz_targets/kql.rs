//! Fuzz target: the KQL parser on any text (bytes that are not UTF-8 are read lossily). A
//! query that compiles is evaluated on synthetic events and turned into kernel audit rules;
//! every error must point at the right line and column.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wwatchd_fuzz::{compile_kql_and_check, exercise_rule, rule_from_query};

fuzz_target!(|data: &[u8]| {
    let src = String::from_utf8_lossy(data);
    if let Some(q) = compile_kql_and_check(&src) {
        assert_eq!(q.source(), src);
        exercise_rule(&rule_from_query(q));
    }
});

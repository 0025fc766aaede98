//! Fuzz target: the TOML rule-file loader on any text. A rule that loads is prepared for
//! alerts, evaluated, and turned into kernel audit rules; an error must render and carry a
//! location inside the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wwatchd_core::alert::PreparedRule;
use wwatchd_core::file_event::FileSchema;
use wwatchd_core::rule::parse_rule_toml;
use wwatchd_fuzz::exercise_rule;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_rule_toml(text, "fuzz.toml", &FileSchema) {
        Ok(rule) => {
            assert!(matches!(
                rule.meta.severity.as_str(),
                "low" | "medium" | "high" | "critical"
            ));
            assert!(rule.meta.risk_score <= 100);
            let _ = PreparedRule::new(&rule.meta);
            exercise_rule(&rule);
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.starts_with("fuzz.toml:"), "{msg}");
            if let Some((line, col)) = e.location() {
                assert!(line >= 1 && col >= 1);
                assert!(
                    line <= text.split('\n').count(),
                    "line {line} past the end: {msg}"
                );
            }
        }
    }
});

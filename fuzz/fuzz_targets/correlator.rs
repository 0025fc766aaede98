//! Fuzz target: a stream of audit.log lines through the whole offline pipeline: correlator,
//! file-event builder (with stand-ins for /proc and the user database), the built-in rule,
//! and the alert JSON.
//!
//! Input: one configuration byte, then lines. A line `#expire N` advances the clock by N ms
//! and expires; `#flush` flushes mid-stream; anything else is read as an audit.log line.
//!
//! Checked: in-flight events never exceed `max_inflight`; no record is handed out twice, and
//! after the final flush every record is accounted for (in exactly one event, or counted as
//! a duplicate, or an EOE); every event is non-empty and says why it completed; every
//! resolved path is absolute and normalised; every document is valid JSON whose `file.path`
//! is the event's.
#![no_main]

use std::collections::HashSet;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use wwatchd_core::alert::{self, PreparedRule};
use wwatchd_core::event::{Correlator, CorrelatorConfig, Event};
use wwatchd_core::file_event::{Builder, FileEvent, FileSchema, normalize};
use wwatchd_core::record::{Record, num, parse_u64};
use wwatchd_core::rule::{Rule, builtin};
use wwatchd_fuzz::FakeEnrich;

fn rule() -> &'static (Rule, PreparedRule) {
    static RULE: OnceLock<(Rule, PreparedRule)> = OnceLock::new();
    RULE.get_or_init(|| {
        let r = builtin(&FileSchema);
        let p = PreparedRule::new(&r.meta);
        (r, p)
    })
}

struct Sink {
    builder: Builder,
    seen: HashSet<u64>,
    emitted_records: u64,
    events: u64,
    json: Vec<u8>,
}

impl Sink {
    fn on_event(&mut self, ev: &Event) {
        assert!(!ev.is_empty(), "empty event");
        assert!(ev.completion.is_some());
        self.events += 1;
        for (line, r) in ev.records() {
            assert!(
                self.seen.insert(line),
                "record of line {line} handed out twice"
            );
            assert_eq!(r.stamp, ev.stamp);
            assert_ne!(r.rtype, num::EOE, "EOE inside an event");
            self.emitted_records += 1;
        }
        let (rule, prepared) = rule();
        let json = &mut self.json;
        self.builder
            .creations(ev, &mut FakeEnrich, &mut |fe: &mut FileEvent<'_>| {
                if let Some(p) = &fe.path {
                    assert_eq!(normalize(p.bytes()), p.bytes(), "path not normalised");
                }
                json.clear();
                let res = if rule.query.matches(fe) {
                    alert::write_alert(json, fe, prepared, &alert::RenderCtx::EMPTY)
                } else {
                    alert::write_event_with(
                        json,
                        fe,
                        &alert::RenderCtx::EMPTY,
                        wwatchd_core::syslog::SafeFormatter,
                    )
                };
                assert!(res.is_ok());
                let v: serde_json::Value = match serde_json::from_slice(json) {
                    Ok(v) => v,
                    Err(e) => panic!("invalid JSON ({e}): {}", String::from_utf8_lossy(json)),
                };
                assert_eq!(
                    v["file"]["path"].as_str(),
                    fe.path.as_ref().map(|p| p.as_str())
                );
            });
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&c, text)) = data.split_first() else {
        return;
    };
    let cfg = CorrelatorConfig {
        max_inflight: 1 + usize::from(c & 0x0f),
        timeout_ms: [0, 1, 50, 2000][usize::from((c >> 4) & 3)],
        gap_window: if c & 0x40 != 0 { 64 } else { 4096 },
    };
    let max = cfg.max_inflight;
    // Stream time (as `scan` runs) or a clock of its own that moves 7 ms a line.
    let stream_time = c & 0x80 == 0;
    let mut corr = Correlator::new(cfg);
    let mut sink = Sink {
        builder: Builder::new(),
        seen: HashSet::new(),
        emitted_records: 0,
        events: 0,
        json: Vec::new(),
    };
    let mut now = 0u64;
    let mut eoes = 0u64;
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        let line_no = i as u64 + 1;
        if !stream_time {
            now += 7;
        }
        if let Some(rest) = line.strip_prefix(b"#expire ") {
            now = now.saturating_add(parse_u64(rest).unwrap_or(1));
            corr.expire(now, &mut |ev| sink.on_event(ev));
        } else if line == b"#flush" {
            corr.flush(&mut |ev| sink.on_event(ev));
            assert_eq!(corr.inflight(), 0);
        } else if let Ok(rec) = Record::from_log_line(line) {
            if stream_time {
                now = rec.stamp.millis();
            }
            eoes += u64::from(rec.rtype == num::EOE);
            corr.push(&rec, line_no, now, &mut |ev| sink.on_event(ev));
        }
        assert!(
            corr.inflight() <= max,
            "{} in flight, max {max}",
            corr.inflight()
        );
    }
    corr.flush(&mut |ev| sink.on_event(ev));
    assert_eq!(corr.inflight(), 0);
    let st = corr.stats();
    assert_eq!(st.events, sink.events);
    assert_eq!(
        st.records,
        sink.emitted_records + st.duplicates + eoes,
        "records not accounted for: {st:?}"
    );
    let _ = sink.builder.take_issues();
});

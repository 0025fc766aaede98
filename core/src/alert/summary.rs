//! alert::summary: the summary alert of an alert-budget window, when a user's suppression
//! starts and when the window closes.

use super::*;
use crate::policy::SummaryKind;

/// The summary's phase (`started` or `closed`) and its message.
fn summary_message(
    s: &WindowSummary,
    rule: &PreparedRule,
    start: &str,
    end: &str,
) -> (&'static str, String) {
    let what = match (s.suppressed, s.duplicates) {
        (n, 0) => format!(
            "{n} alerts of rule \"{}\" suppressed by the alert budget ({} per {} s)",
            rule.name, s.max_alerts, s.window_secs
        ),
        (0, d) => format!("{d} duplicate alerts of rule \"{}\" not sent", rule.name),
        (n, d) => format!(
            "{n} alerts of rule \"{}\" suppressed by the alert budget ({} per {} s) and {d} \
             duplicates not sent",
            rule.name, s.max_alerts, s.window_secs
        ),
    };
    let most = |(list, _): &(Vec<(String, u64)>, u64)| {
        list.first()
            .map_or_else(|| "?".to_owned(), |(v, n)| format!("{v} ({n})"))
    };
    match &s.kind {
        SummaryKind::Closed => (
            "closed",
            format!(
                "{what} between {start} and {end}; {} sent; most frequent: path {}, process {}, \
                 user {}",
                s.sent,
                most(&s.paths),
                most(&s.processes),
                most(&s.users)
            ),
        ),
        SummaryKind::ActorStarted(a) => (
            "started",
            format!(
                "alert budget of rule \"{}\" spent by {a} ({} per {} s): its further alerts \
                 are held back until {end}; other users' alerts are still sent; {} sent, {} \
                 held back so far in the window from {start}",
                rule.name, s.max_alerts, s.window_secs, s.sent, s.suppressed
            ),
        ),
        SummaryKind::CeilingStarted => (
            "started",
            format!(
                "alert ceiling of rule \"{}\" reached ({} per {} s): until {end} only each \
                 user's first alert is sent; {} sent, {} held back so far in the window from \
                 {start}",
                rule.name, s.ceiling, s.window_secs, s.sent, s.suppressed
            ),
        ),
    }
}

/// The summary alert of a budget window in which alerts were held back
/// ([`WindowSummary`]): an ECS alert with the rule's `rule.*`, `threat.*` and severity, a
/// message saying how many alerts were held back between when and when, and under
/// `wwatchd.budget` the counts and the most frequent paths, processes and users.
pub fn summary_document(
    s: &WindowSummary,
    rule: &PreparedRule,
    ctx: &RenderCtx<'_>,
) -> Map<String, Value> {
    let ts = |ms: u64| timestamp(ms / 1000, (ms % 1000) as u16);
    let (start, end) = (ts(s.start_ms), ts(s.end_ms));
    let top = |(list, other): &(Vec<(String, u64)>, u64)| {
        json!({
            "top": list
                .iter()
                .map(|(v, n)| json!({"value": v, "count": n}))
                .collect::<Vec<_>>(),
            "others": other,
        })
    };
    let (phase, message) = summary_message(s, rule, &start, &end);
    let actors: Vec<Value> = s
        .actors
        .0
        .iter()
        .map(|a| json!({"actor": a.actor, "sent": a.sent, "suppressed": a.suppressed}))
        .collect();
    let id_phase = match &s.kind {
        SummaryKind::ActorStarted(a) => format!("started:{a}"),
        SummaryKind::CeilingStarted => "started:ceiling".to_owned(),
        SummaryKind::Closed => "closed".to_owned(),
    };
    let host = host_f(s.host_name.as_deref(), ctx.host);
    let created = ctx.created_ms.map_or_else(|| ts(s.at_ms), ts);
    let mut doc = json!({
        "@timestamp": ts(s.at_ms),
        "agent": to_map(&agent(ctx)),
        "ecs": {"version": ECS_VERSION},
        "event": {
            "action": "alert-budget-summary",
            "category": ["file"],
            "created": created,
            "dataset": "wwatchd.alert",
            "end": end,
            "id": ids::summary_id(host_key(&host), &rule.id, s.start_ms, s.end_ms, &id_phase),
            "kind": "alert",
            "module": "wwatchd",
            "risk_score": f64::from(rule.risk_score),
            "severity": rule.risk_score,
            "start": start,
            "type": ["info"],
        },
        "host": to_map(&host),
        "log": {"level": rule.level},
        "message": message,
        "rule": rule.rule,
        "wwatchd": {
            "budget": {
                "actors": {"top": actors, "others": s.actors.1},
                "ceiling": s.ceiling,
                "deduplicated": s.duplicates,
                "phase": phase,
                "untracked_actor_alerts": s.untracked_actor_alerts,
                "file.path": top(&s.paths),
                "max_alerts": s.max_alerts,
                "process.name": top(&s.processes),
                "sent": s.sent,
                "suppressed": s.suppressed,
                "user": top(&s.users),
                "window_seconds": s.window_secs,
            },
            "severity": rule.severity,
        },
    });
    if let Some(h) = host.name {
        doc["related"] = json!({"hosts": [h]});
    }
    if let SummaryKind::ActorStarted(a) = &s.kind {
        doc["wwatchd"]["budget"]["actor"] = json!(a);
    }
    if let Some(t) = &rule.threat {
        doc["threat"] = t.clone();
    }
    if let Some(x) = &rule.extra {
        doc["wwatchd"]["rule"] = x.clone();
    }
    match doc {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

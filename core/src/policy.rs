//! policy: what happens to an alert after its rule matched and before it is sent: the
//! admin's exceptions, then the alert budget.
//!
//! `netlink → record → event → file_event → rule → [policy] → alert → syslog`
//!
//! * An [`Exception`] is a set of conditions, all of which must hold (AND); each condition
//!   lists values, any of which may match (OR). An alert is suppressed when any exception
//!   that applies to its rule (its own, or a global one) matches the event.
//! * The budget lets at most `max_alerts` alerts of one rule **per actor** through per
//!   window of `window` seconds, like the `max_signals` of Elastic's rule (100 per 5-minute
//!   run), and at most [`Budget::ceiling`] alerts of the rule in all. A window opens with the
//!   rule's first alert and is measured on the events' own timestamps, so `scan` of a log
//!   behaves as the live daemon does; [`Policy::tick`] closes windows when no further alert
//!   comes. A [`WindowSummary`] is handed out as soon as suppression starts (for an actor,
//!   or at the ceiling) and again when a window closes with alerts held back, with the
//!   totals, the actors held back, and the most frequent paths, processes and users.
//!
//! # Who an alert is charged to (the actor)
//!
//! A budget shared by everyone is one that anyone can spend: a local user who makes 100
//! matching creations hides the next drop of every other user (measured, issue 15). So the
//! budget is kept per **actor**, and the actor is the **real uid** (`user.id`, the field
//! the rule itself tests), because it is the one identity a local user cannot choose:
//!
//! - `process.name`, `process.executable`, paths and the process tree are the attacker's to
//!   pick (a copy of `touch` named `scp` is enough);
//! - the uid is set by the kernel; changing it needs a privilege (setuid, CAP_SETUID) that
//!   would make hiding pointless, and a user has only the one;
//! - the audit session (`ses`) is not: every new ssh login or `su -l` makes a new one, so a
//!   single user could mint actors at will and push others out of the bounded table;
//!   `source.ip` is not either (one IPv6 client has 2^64 of them), and local processes have
//!   none;
//! - the login uid (`auid`) cannot be changed by its user either, but it is unset (one
//!   shared value) for everything started by a daemon rather than a login (vsftpd without
//!   `pam_loginuid`, cron), which would put those users back into one shared budget.
//!
//! Two sessions of one account share its budget; the summaries list their addresses among
//! the users and paths. The actor table of a window holds at most [`MAX_ACTORS`] actors;
//! alerts of actors beyond it share one overflow actor and are counted
//! ([`PolicyStats::untracked_actor_alerts`]). The first alert of every actor in a window is
//! always sent, even over the ceiling: another actor's flood never holds back a new actor's
//! first alert, and the ceiling still bounds the total to `ceiling + MAX_ACTORS + 1`.
//! * Optional de-duplication holds back alerts identical on (rule, `file.path`,
//!   `process.executable`, `user.id`, `source.ip`) to one already seen in the window.
//!
//! Nothing is dropped silently: every suppression is counted ([`PolicyStats`]), per
//! exception, and reported in the window summaries. No I/O here.

#![forbid(unsafe_code)]

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::str::FromStr;

use crate::file_event::FileEvent;
use crate::rule::Pattern;

/// A user as an exception names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserSpec {
    /// A numeric id, compared with `user.id` (the real uid, the field the rule tests).
    Id(u32),
    /// A name, compared with `user.name` (known live, from ENRICHED logs, or with
    /// `scan --resolve-names`).
    Name(String),
}

impl UserSpec {
    fn matches(&self, fe: &FileEvent<'_>) -> bool {
        match self {
            UserSpec::Id(id) => fe.uid.and_then(|u| u.parse::<u32>().ok()) == Some(*id),
            UserSpec::Name(n) => fe.user_name.as_ref().is_some_and(|u| u.as_str() == n),
        }
    }
}

impl fmt::Display for UserSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserSpec::Id(id) => write!(f, "{id}"),
            UserSpec::Name(n) => f.write_str(n),
        }
    }
}

/// A process as an exception names it: an entry with a `/` is an executable path, compared
/// with `process.executable`; otherwise a name, compared with `process.name` (the kernel's
/// `comm`). Both exact and case-sensitive, like EQL's `in`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProcSpec {
    Name(String),
    Executable(String),
}

impl ProcSpec {
    /// Classifies an entry as written.
    pub fn new(s: &str) -> ProcSpec {
        if s.contains('/') {
            ProcSpec::Executable(s.to_owned())
        } else {
            ProcSpec::Name(s.to_owned())
        }
    }

    fn matches(&self, name: Option<&str>, exe: Option<&str>) -> bool {
        match self {
            ProcSpec::Name(n) => name == Some(n.as_str()),
            ProcSpec::Executable(e) => exe == Some(e.as_str()),
        }
    }
}

impl fmt::Display for ProcSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProcSpec::Name(s) | ProcSpec::Executable(s) => f.write_str(s),
        }
    }
}

/// An IPv4 or IPv6 network in CIDR notation; a bare address is a /32 or /128.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is in the network. An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`)
    /// counts as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let m = netmask32(self.prefix);
                u32::from(a) & m == u32::from(n) & m
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let m = netmask128(self.prefix);
                u128::from(a) & m == u128::from(n) & m
            }
            _ => false,
        }
    }

    /// The network address with the host bits cleared, in CIDR notation.
    fn network(&self) -> String {
        match self.net {
            IpAddr::V4(a) => {
                let n = u32::from(a) & netmask32(self.prefix);
                format!("{}/{}", std::net::Ipv4Addr::from(n), self.prefix)
            }
            IpAddr::V6(a) => {
                let n = u128::from(a) & netmask128(self.prefix);
                format!("{}/{}", std::net::Ipv6Addr::from(n), self.prefix)
            }
        }
    }
}

/// The first `prefix` bits set (`prefix` at most 32).
fn netmask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

/// The first `prefix` bits set (`prefix` at most 128).
fn netmask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Cidr, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let net: IpAddr = addr
            .parse()
            .map_err(|_| format!("{addr:?} is not an IPv4 or IPv6 address"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= max)
                .ok_or_else(|| format!("prefix length {p:?} is not a number 0-{max}"))?,
        };
        let cidr = Cidr { net, prefix };
        let host_bits = match net {
            IpAddr::V4(a) => u32::from(a) & !netmask32(prefix) != 0,
            IpAddr::V6(a) => u128::from(a) & !netmask128(prefix) != 0,
        };
        if host_bits {
            return Err(format!(
                "{s:?} has bits set after the /{prefix} prefix; write the network address \
                 ({})",
                cidr.network()
            ));
        }
        Ok(cidr)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let max = if self.net.is_ipv4() { 32 } else { 128 };
        if self.prefix == max {
            write!(f, "{}", self.net)
        } else {
            write!(f, "{}/{}", self.net, self.prefix)
        }
    }
}

/// One exception. Empty lists are conditions not named; at least one is named.
#[derive(Clone, Debug, PartialEq)]
pub struct Exception {
    /// The admin's name for it, if any.
    pub name: Option<String>,
    /// The `rule_id` of the one rule it applies to; `None` applies to every rule.
    pub rule: Option<String>,
    /// Where it is written, `FILE:LINE`.
    pub origin: String,
    /// `user`: any of these users.
    pub users: Vec<UserSpec>,
    /// `process`: any of these process names or executables.
    pub processes: Vec<ProcSpec>,
    /// `path`: `file.path` matches any of these globs (`like~`: case-insensitive, `*` any
    /// run of characters including `/`, `?` one character).
    pub paths: Vec<Pattern>,
    /// `parent`: the parent process's name or executable is any of these.
    pub parents: Vec<ProcSpec>,
    /// `source`: `source.ip` (the session's remote address) is in any of these networks.
    pub sources: Vec<Cidr>,
}

impl Exception {
    /// How counters and messages name it: its name, else `exception #N (FILE:LINE)`, where
    /// N counts from 1 in file order.
    pub fn label(&self, index: usize) -> String {
        match &self.name {
            Some(n) => n.clone(),
            None => format!("exception #{} ({})", index + 1, self.origin),
        }
    }

    /// Whether every condition it names holds for `fe`.
    pub fn matches(&self, fe: &FileEvent<'_>) -> bool {
        let name = fe.process_name.as_ref().map(|t| t.as_str());
        let exe = fe.exe.as_ref().map(|t| t.as_str());
        let pname = fe.context.parent_name.as_deref();
        let pexe = fe.context.parent_executable.as_deref();
        let path = fe.path.as_ref().map(|t| t.as_str());
        let ip = fe
            .context
            .source_ip
            .as_deref()
            .and_then(|s| s.parse::<IpAddr>().ok());
        (self.users.is_empty() || self.users.iter().any(|u| u.matches(fe)))
            && (self.processes.is_empty() || self.processes.iter().any(|p| p.matches(name, exe)))
            && (self.paths.is_empty()
                || path.is_some_and(|p| self.paths.iter().any(|g| g.matches(p))))
            && (self.parents.is_empty() || self.parents.iter().any(|p| p.matches(pname, pexe)))
            && (self.sources.is_empty()
                || ip.is_some_and(|ip| self.sources.iter().any(|c| c.contains(ip))))
    }
}

/// The alert budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Most alerts of one rule sent per actor per window; 0 sends every alert (no budget).
    pub max_alerts: u32,
    /// Window length in seconds.
    pub window_secs: u64,
    /// Hold back alerts identical to one already seen in the window.
    pub dedup: bool,
}

impl Default for Budget {
    /// 100 alerts per 5 minutes, like the rule's `max_signals` per run; no de-duplication.
    fn default() -> Budget {
        Budget {
            max_alerts: 100,
            window_secs: 300,
            dedup: false,
        }
    }
}

/// The rule's ceiling, in actors' budgets: at most `CEILING_FACTOR × max_alerts` alerts of one
/// rule per window in all (beyond each actor's first alert, which is always sent).
pub const CEILING_FACTOR: u32 = 10;
/// Most actors tracked per rule per window; the rest share one overflow actor.
pub const MAX_ACTORS: usize = 1024;
/// Actors listed by name in a summary (those with the most alerts held back).
pub const ACTORS_LISTED: usize = 20;

impl Budget {
    /// Most alerts of one rule sent per window in all actors' budgets together (beyond each
    /// actor's first alert): [`CEILING_FACTOR`] × `max_alerts`.
    pub fn ceiling(&self) -> u64 {
        u64::from(self.max_alerts) * u64::from(CEILING_FACTOR)
    }
}

/// What to do with one matched alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send it.
    Send,
    /// An exception (its index in the configuration) matched.
    Excepted(usize),
    /// Identical to one already seen in this window.
    Duplicate,
    /// Over its actor's budget, or the rule's ceiling, for this window.
    OverBudget,
}

/// Counters since the policy was made.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyStats {
    /// Alerts let through.
    pub sent: u64,
    /// Alerts suppressed by any exception.
    pub exception_suppressed: u64,
    /// Per exception, in configuration order.
    pub per_exception: Vec<u64>,
    /// Alerts held back by the budget.
    pub budget_suppressed: u64,
    /// Alerts held back as duplicates.
    pub deduplicated: u64,
    /// Window summaries produced (when suppression starts, and when a window closes).
    pub summaries: u64,
    /// Alerts charged to the overflow actor because the window's actor table was full.
    pub untracked_actor_alerts: u64,
}

/// Most distinct values tallied per field in one window; the rest count as "other".
pub const MAX_TALLY_KEYS: usize = 1024;
/// Most alert fingerprints remembered per window for de-duplication; beyond it, alerts unlike
/// the remembered ones are not remembered (they are sent, within the budget).
pub const MAX_DEDUP_KEYS: usize = 65_536;
/// Values listed per field in a summary.
pub const TOP_N: usize = 5;

#[derive(Clone, Debug, Default)]
struct Tally {
    counts: HashMap<String, u64>,
    other: u64,
}

impl Tally {
    fn add(&mut self, key: &str) {
        if let Some(c) = self.counts.get_mut(key) {
            *c += 1;
        } else if self.counts.len() < MAX_TALLY_KEYS {
            self.counts.insert(key.to_owned(), 1);
        } else {
            self.other += 1;
        }
    }

    /// The `TOP_N` most frequent values (ties by value), and the count of all the rest.
    fn top(&self) -> (Vec<(String, u64)>, u64) {
        let mut v: Vec<(&String, &u64)> = self.counts.iter().collect();
        v.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        let rest: u64 = v.iter().skip(TOP_N).map(|(_, c)| **c).sum::<u64>() + self.other;
        let top = v
            .into_iter()
            .take(TOP_N)
            .map(|(k, c)| (k.clone(), *c))
            .collect();
        (top, rest)
    }
}

/// One actor's share of a window.
#[derive(Clone, Debug, Default)]
struct Actor {
    /// How summaries name it: `name (uid)`, or the uid.
    label: String,
    sent: u64,
    suppressed: u64,
}

/// The actor an alert is charged to: its real uid (see the module documentation).
fn actor_key<'a>(fe: &'a FileEvent<'_>) -> &'a str {
    fe.uid.unwrap_or("?")
}

fn actor_label(fe: &FileEvent<'_>) -> String {
    match (&fe.user_name, fe.uid) {
        (Some(n), Some(id)) => format!("{} ({id})", n.as_str()),
        (Some(n), None) => n.as_str().to_owned(),
        (None, Some(id)) => id.to_owned(),
        (None, None) => "?".to_owned(),
    }
}

/// The label of the actor that alerts of untracked actors are charged to.
pub const OVERFLOW_ACTOR: &str = "other actors (actor table full)";

#[derive(Clone, Debug)]
struct Window {
    start_ms: u64,
    end_ms: u64,
    sent: u64,
    suppressed: u64,
    duplicates: u64,
    seen: HashSet<u64>,
    /// Per actor key, at most [`MAX_ACTORS`].
    actors: HashMap<String, Actor>,
    /// Alerts of actors the table had no room for.
    overflow: Actor,
    untracked: u64,
    /// The ceiling's start of suppression has been reported.
    ceiling_reported: bool,
    paths: Tally,
    processes: Tally,
    users: Tally,
    host: Option<String>,
}

impl Window {
    fn new(start_ms: u64, len_ms: u64) -> Window {
        Window {
            start_ms,
            end_ms: start_ms.saturating_add(len_ms),
            sent: 0,
            suppressed: 0,
            duplicates: 0,
            seen: HashSet::new(),
            actors: HashMap::new(),
            overflow: Actor {
                label: OVERFLOW_ACTOR.to_owned(),
                ..Actor::default()
            },
            untracked: 0,
            ceiling_reported: false,
            paths: Tally::default(),
            processes: Tally::default(),
            users: Tally::default(),
            host: None,
        }
    }

    /// The actor `fe` is charged to, made if new (or the overflow actor when the table is
    /// full; then `untracked` counts it).
    fn actor(&mut self, fe: &FileEvent<'_>) -> (&mut Actor, bool) {
        let key = actor_key(fe);
        if self.actors.contains_key(key) || self.actors.len() < MAX_ACTORS {
            let a = self.actors.entry(key.to_owned()).or_insert_with(|| Actor {
                label: actor_label(fe),
                ..Actor::default()
            });
            (a, false)
        } else {
            self.untracked += 1;
            (&mut self.overflow, true)
        }
    }

    /// Remembers who and what an alert held back was about.
    fn note(&mut self, fe: &FileEvent<'_>) {
        match &fe.path {
            Some(p) => self.paths.add(p.as_str()),
            None => self
                .paths
                .add(&format!("{} (unresolved)", fe.kernel_name.as_str())),
        }
        let proc_name = fe
            .process_name
            .as_ref()
            .or(fe.exe.as_ref())
            .map_or("?", |t| t.as_str());
        self.processes.add(proc_name);
        self.users.add(&actor_label(fe));
        if self.host.is_none() {
            self.host = fe.host_name.as_ref().map(|h| h.as_str().to_owned());
        }
    }

    /// The actors with alerts held back, most first (ties by label), the first
    /// [`ACTORS_LISTED`] of them, and the count held back of all the others.
    fn held_actors(&self) -> (Vec<ActorCount>, u64) {
        let mut v: Vec<&Actor> = self
            .actors
            .values()
            .chain(std::iter::once(&self.overflow))
            .filter(|a| a.suppressed > 0)
            .collect();
        v.sort_by(|a, b| {
            b.suppressed
                .cmp(&a.suppressed)
                .then_with(|| a.label.cmp(&b.label))
        });
        let rest = v.iter().skip(ACTORS_LISTED).map(|a| a.suppressed).sum();
        let listed = v
            .into_iter()
            .take(ACTORS_LISTED)
            .map(|a| ActorCount {
                actor: a.label.clone(),
                sent: a.sent,
                suppressed: a.suppressed,
            })
            .collect();
        (listed, rest)
    }

    fn summary_now(
        &self,
        rule: usize,
        budget: &Budget,
        kind: SummaryKind,
        at_ms: u64,
    ) -> WindowSummary {
        WindowSummary {
            rule,
            kind,
            at_ms,
            start_ms: self.start_ms,
            end_ms: self.end_ms,
            sent: self.sent,
            suppressed: self.suppressed,
            duplicates: self.duplicates,
            max_alerts: budget.max_alerts,
            ceiling: budget.ceiling(),
            window_secs: budget.window_secs,
            host_name: self.host.clone(),
            actors: self.held_actors(),
            untracked_actor_alerts: self.untracked,
            paths: self.paths.top(),
            processes: self.processes.top(),
            users: self.users.top(),
        }
    }

    fn summary(self, rule: usize, budget: &Budget) -> Option<WindowSummary> {
        if self.suppressed == 0 && self.duplicates == 0 {
            return None;
        }
        Some(self.summary_now(rule, budget, SummaryKind::Closed, self.end_ms))
    }
}

/// Why a summary was made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SummaryKind {
    /// This actor (its label) spent its budget: its further alerts in the window are held
    /// back from now on. Sent at once, so the flood is known while it lasts.
    ActorStarted(String),
    /// The rule reached its ceiling: from now on only each actor's first alert is sent.
    CeilingStarted,
    /// The window closed with alerts held back: the totals.
    Closed,
}

/// One actor in a summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActorCount {
    /// `name (uid)`, or the uid; [`OVERFLOW_ACTOR`] for the actors the table had no room for.
    pub actor: String,
    pub sent: u64,
    pub suppressed: u64,
}

/// A window in which alerts are held back: the content of the summary alert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowSummary {
    /// The rule's index in the rule list the policy was made for.
    pub rule: usize,
    /// When suppression started (for whom), or the window's close.
    pub kind: SummaryKind,
    /// When the summary was made, milliseconds since the epoch (event time): the held-back
    /// alert's time when suppression starts, the window's end when it closes.
    pub at_ms: u64,
    /// Window start and end, milliseconds since the epoch (event time).
    pub start_ms: u64,
    pub end_ms: u64,
    /// Alerts sent in the window (so far).
    pub sent: u64,
    /// Alerts held back by the budget (so far).
    pub suppressed: u64,
    /// Alerts held back as duplicates.
    pub duplicates: u64,
    /// The budget in force: per actor, and the rule's ceiling.
    pub max_alerts: u32,
    pub ceiling: u64,
    pub window_secs: u64,
    /// The host of the first alert held back.
    pub host_name: Option<String>,
    /// The actors with alerts held back (most first, at most [`ACTORS_LISTED`]), and the
    /// count held back of the others.
    pub actors: (Vec<ActorCount>, u64),
    /// Alerts charged to the overflow actor (the actor table was full).
    pub untracked_actor_alerts: u64,
    /// The most frequent `file.path`s, process names and users among the alerts held
    /// back, each with its count, and the count of all others.
    pub paths: (Vec<(String, u64)>, u64),
    pub processes: (Vec<(String, u64)>, u64),
    pub users: (Vec<(String, u64)>, u64),
}

/// Exceptions and budget for one rule list, with the windows' state.
#[derive(Clone, Debug)]
pub struct Policy {
    exceptions: Vec<Exception>,
    /// Per rule: the indices of the exceptions that apply to it.
    applies: Vec<Vec<usize>>,
    budget: Budget,
    windows: Vec<Option<Window>>,
    hasher: RandomState,
    stats: PolicyStats,
}

impl Policy {
    /// A policy for the rules whose `rule_id`s are `rule_ids`, in the order the caller
    /// will number them. An exception whose `rule` names none of them applies to none (the
    /// configuration refuses such exceptions before this point).
    pub fn new(exceptions: Vec<Exception>, budget: Budget, rule_ids: &[&str]) -> Policy {
        let applies = rule_ids
            .iter()
            .map(|id| {
                exceptions
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| e.rule.as_deref().is_none_or(|r| r == *id))
                    .map(|(i, _)| i)
                    .collect()
            })
            .collect();
        Policy {
            stats: PolicyStats {
                per_exception: vec![0; exceptions.len()],
                ..PolicyStats::default()
            },
            exceptions,
            applies,
            budget,
            windows: vec![None; rule_ids.len()],
            hasher: RandomState::new(),
        }
    }

    /// No exceptions, no budget: every alert is sent.
    pub fn pass_all(rule_count: usize) -> Policy {
        let budget = Budget {
            max_alerts: 0,
            window_secs: 300,
            dedup: false,
        };
        Policy::new(Vec::new(), budget, &vec![""; rule_count])
    }

    pub fn exceptions(&self) -> &[Exception] {
        &self.exceptions
    }

    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    pub fn stats(&self) -> &PolicyStats {
        &self.stats
    }

    /// Decides about one alert of rule `rule` (an index into the rule list) on `fe`. A
    /// window of that rule that ended before `fe` is closed first, its summary handed to
    /// `summaries`; when this alert starts suppression for its actor (or at the rule's
    /// ceiling), that summary is handed over too, at once.
    pub fn decide(
        &mut self,
        rule: usize,
        fe: &FileEvent<'_>,
        summaries: &mut dyn FnMut(WindowSummary),
    ) -> Verdict {
        if let Some(ix) = self.except(rule, fe) {
            return Verdict::Excepted(ix);
        }
        self.admit(rule, fe, summaries)
    }

    /// The first exception of rule `rule` that `fe` matches, if any; not counted.
    pub fn exception_of(&self, rule: usize, fe: &FileEvent<'_>) -> Option<usize> {
        self.applies
            .get(rule)
            .and_then(|a| a.iter().copied().find(|&i| self.exceptions[i].matches(fe)))
    }

    /// [`exception_of`](Self::exception_of), counted as a suppression when one matches.
    pub fn except(&mut self, rule: usize, fe: &FileEvent<'_>) -> Option<usize> {
        let ix = self.exception_of(rule, fe)?;
        self.stats.exception_suppressed += 1;
        self.stats.per_exception[ix] += 1;
        Some(ix)
    }

    /// The budget's half of [`decide`](Self::decide), for an alert no exception took: sent,
    /// a duplicate, or held back.
    pub fn admit(
        &mut self,
        rule: usize,
        fe: &FileEvent<'_>,
        summaries: &mut dyn FnMut(WindowSummary),
    ) -> Verdict {
        let b = self.budget;
        if (b.max_alerts == 0 && !b.dedup) || rule >= self.windows.len() {
            self.stats.sent += 1;
            return Verdict::Send;
        }
        let t = fe.sec.saturating_mul(1000) + u64::from(fe.msec);
        if self.windows[rule].as_ref().is_some_and(|w| t >= w.end_ms)
            && let Some(s) = self.windows[rule]
                .take()
                .and_then(|w| w.summary(rule, &self.budget))
        {
            self.stats.summaries += 1;
            summaries(s);
        }
        let w = self.windows[rule]
            .get_or_insert_with(|| Window::new(t, b.window_secs.saturating_mul(1000)));
        if b.dedup {
            let key = self.hasher.hash_one((
                rule,
                fe.path.as_ref().map(|t| t.bytes()),
                fe.exe.as_ref().map(|t| t.bytes()),
                fe.uid,
                fe.context.source_ip.as_deref(),
            ));
            let duplicate = if w.seen.len() < MAX_DEDUP_KEYS {
                !w.seen.insert(key)
            } else {
                w.seen.contains(&key)
            };
            if duplicate {
                w.duplicates += 1;
                w.note(fe);
                self.stats.deduplicated += 1;
                return Verdict::Duplicate;
            }
        }
        if b.max_alerts == 0 {
            w.sent += 1;
            self.stats.sent += 1;
            return Verdict::Send;
        }
        let ceiling_reached = w.sent >= b.ceiling();
        let (actor, untracked) = w.actor(fe);
        if untracked {
            self.stats.untracked_actor_alerts += 1;
        }
        // An actor's first alert in the window is sent whatever others did.
        let over_own = actor.sent >= u64::from(b.max_alerts);
        let over_ceiling = actor.sent > 0 && ceiling_reached;
        if !(over_own || over_ceiling) {
            actor.sent += 1;
            w.sent += 1;
            self.stats.sent += 1;
            return Verdict::Send;
        }
        actor.suppressed += 1;
        let started = if over_own && actor.suppressed == 1 {
            Some(SummaryKind::ActorStarted(actor.label.clone()))
        } else if !over_own && !w.ceiling_reported {
            w.ceiling_reported = true;
            Some(SummaryKind::CeilingStarted)
        } else {
            None
        };
        w.suppressed += 1;
        w.note(fe);
        self.stats.budget_suppressed += 1;
        if let Some(kind) = started {
            self.stats.summaries += 1;
            summaries(w.summary_now(rule, &b, kind, t));
        }
        Verdict::OverBudget
    }

    /// Closes every window that has ended by `now_ms` (milliseconds since the epoch, the
    /// same clock as the events'), handing the summaries of those with alerts held back to
    /// `summaries`.
    pub fn tick(&mut self, now_ms: u64, summaries: &mut dyn FnMut(WindowSummary)) {
        self.close(|w| w.end_ms <= now_ms, summaries);
    }

    /// When the first open window ends (milliseconds since the epoch), if any is open: the
    /// daemon needs a timer for its summary only then.
    pub fn next_window_end(&self) -> Option<u64> {
        self.windows.iter().flatten().map(|w| w.end_ms).min()
    }

    /// Closes every window now (end of input, reload, shutdown).
    pub fn flush(&mut self, summaries: &mut dyn FnMut(WindowSummary)) {
        self.close(|_| true, summaries);
    }

    fn close(&mut self, due: impl Fn(&Window) -> bool, summaries: &mut dyn FnMut(WindowSummary)) {
        for (rule, slot) in self.windows.iter_mut().enumerate() {
            if slot.as_ref().is_some_and(&due)
                && let Some(s) = slot.take().and_then(|w| w.summary(rule, &self.budget))
            {
                self.stats.summaries += 1;
                summaries(s);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::file_event::{Arch, Context, PathOrigin, Text};
    use std::borrow::Cow;

    fn t(s: &'static str) -> Option<Text<'static>> {
        Some(Text {
            text: Cow::Borrowed(s),
            raw: None,
        })
    }

    /// A creation of /tmp/x.bin by sftp-server as alice (1001) from 192.0.2.7, parent sshd.
    pub(crate) fn fe() -> FileEvent<'static> {
        FileEvent {
            sec: 1_764_294_000,
            msec: 0,
            serial: 10,
            host_name: t("h1"),
            arch: Arch::X86_64,
            syscall: "openat",
            exit: Some("3"),
            key: None,
            pid: Some(100),
            ppid: Some(99),
            ses: Some(3),
            tty: None,
            uid: Some("1001"),
            euid: Some("1001"),
            auid: Some("1001"),
            suid: Some("1001"),
            fsuid: Some("1001"),
            gid: Some("1001"),
            egid: Some("1001"),
            user_name: t("alice"),
            group_name: None,
            comm: t("sftp-server"),
            process_name: t("sftp-server"),
            exe: t("/usr/lib/openssh/sftp-server"),
            title: None,
            args: Vec::new(),
            cwd: t("/home/alice"),
            path: t("/tmp/x.bin"),
            path_origin: PathOrigin::Absolute,
            kernel_name: Text {
                text: Cow::Borrowed("/tmp/x.bin"),
                raw: None,
            },
            file_name: t("x.bin"),
            directory: t("/tmp"),
            extension: t("bin"),
            inode: Some("77"),
            device: Some("fe:00"),
            mode: Some(0o100644),
            parent_mode: Some(0o041777),
            ouid: Some("1001"),
            ogid: Some("1001"),
            action: crate::file_event::Action::Creation,
            original: None,
            context: Context {
                source_ip: Some("192.0.2.7".into()),
                parent_name: Some("sshd".into()),
                parent_executable: Some("/usr/sbin/sshd".into()),
                ..Context::default()
            },
        }
    }

    fn exc() -> Exception {
        Exception {
            name: None,
            rule: None,
            origin: "c.toml:1".into(),
            users: vec![],
            processes: vec![],
            paths: vec![],
            parents: vec![],
            sources: vec![],
        }
    }

    fn cidr(s: &str) -> Cidr {
        match s.parse() {
            Ok(c) => c,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn cidr_parsing_and_matching() {
        let ip = |s: &str| -> IpAddr { s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0])) };
        assert!(cidr("192.0.2.0/24").contains(ip("192.0.2.200")));
        assert!(!cidr("192.0.2.0/24").contains(ip("192.0.3.1")));
        assert!(cidr("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert!(!cidr("0.0.0.0/0").contains(ip("::1")));
        assert!(cidr("10.1.2.3").contains(ip("10.1.2.3")));
        assert!(!cidr("10.1.2.3").contains(ip("10.1.2.4")));
        assert!(cidr("10.0.0.0/8").contains(ip("::ffff:10.9.8.7")));
        assert!(cidr("2001:db8::/32").contains(ip("2001:db8:1::5")));
        assert!(!cidr("2001:db8::/32").contains(ip("2001:db9::5")));
        assert!(cidr("::/0").contains(ip("::1")));
        assert!(cidr("::1").contains(ip("::1")));
        assert!(cidr("fe80::/10").contains(ip("febf::1")));
        assert!(!cidr("fe80::/10").contains(ip("fec0::1")));
        assert_eq!(cidr("192.0.2.0/24").to_string(), "192.0.2.0/24");
        assert_eq!(cidr("192.0.2.1").to_string(), "192.0.2.1");
        let err = |s: &str| s.parse::<Cidr>().err().unwrap_or_default();
        assert_eq!(
            err("10.0.0.1/8"),
            "\"10.0.0.1/8\" has bits set after the /8 prefix; write the network address (10.0.0.0/8)"
        );
        assert_eq!(
            err("2001:db8::1/32"),
            "\"2001:db8::1/32\" has bits set after the /32 prefix; write the network address (2001:db8::/32)"
        );
        assert_eq!(
            err("10.0.0.0/33"),
            "prefix length \"33\" is not a number 0-32"
        );
        assert_eq!(err("::/129"), "prefix length \"129\" is not a number 0-128");
        assert_eq!(err("10.0.0/8"), "\"10.0.0\" is not an IPv4 or IPv6 address");
        assert_eq!(
            err("host.example"),
            "\"host.example\" is not an IPv4 or IPv6 address"
        );
        assert_eq!(
            err("10.0.0.0/x"),
            "prefix length \"x\" is not a number 0-32"
        );
    }

    #[test]
    fn each_condition_matches_its_field() {
        let ev = fe();
        let yes = |e: Exception| e.matches(&ev);
        assert!(yes(Exception {
            users: vec![UserSpec::Id(1001)],
            ..exc()
        }));
        assert!(yes(Exception {
            users: vec![UserSpec::Name("bob".into()), UserSpec::Name("alice".into())],
            ..exc()
        }));
        assert!(!yes(Exception {
            users: vec![UserSpec::Id(0), UserSpec::Name("Alice".into())],
            ..exc()
        }));
        assert!(yes(Exception {
            processes: vec![ProcSpec::new("sftp-server")],
            ..exc()
        }));
        assert!(yes(Exception {
            processes: vec![ProcSpec::new("/usr/lib/openssh/sftp-server")],
            ..exc()
        }));
        // A name is not an executable and vice versa; matching is exact.
        assert!(!yes(Exception {
            processes: vec![ProcSpec::new("/usr/bin/sftp-server"), ProcSpec::new("sftp")],
            ..exc()
        }));
        assert!(yes(Exception {
            paths: vec![Pattern::new("/TMP/*.BIN", true)],
            ..exc()
        }));
        assert!(yes(Exception {
            paths: vec![
                Pattern::new("/var/*", true),
                Pattern::new("/tmp/?.bin", true)
            ],
            ..exc()
        }));
        assert!(!yes(Exception {
            paths: vec![Pattern::new("/tmp/??.bin", true)],
            ..exc()
        }));
        assert!(yes(Exception {
            parents: vec![ProcSpec::new("sshd")],
            ..exc()
        }));
        assert!(yes(Exception {
            parents: vec![ProcSpec::new("/usr/sbin/sshd")],
            ..exc()
        }));
        assert!(!yes(Exception {
            parents: vec![ProcSpec::new("bash")],
            ..exc()
        }));
        assert!(yes(Exception {
            sources: vec![cidr("192.0.2.0/24")],
            ..exc()
        }));
        assert!(!yes(Exception {
            sources: vec![cidr("198.51.100.0/24")],
            ..exc()
        }));
    }

    #[test]
    fn conditions_are_anded_and_missing_fields_do_not_match() {
        let ev = fe();
        let both = Exception {
            processes: vec![ProcSpec::new("sftp-server")],
            paths: vec![Pattern::new("/tmp/ansible-tmp-*", true)],
            ..exc()
        };
        assert!(!both.matches(&ev));
        let mut ansible = fe();
        ansible.path = t("/tmp/ansible-tmp-1764-42/AnsiballZ_setup.py");
        assert!(both.matches(&ansible));
        ansible.process_name = t("scp");
        assert!(!both.matches(&ansible));

        // An event without the field never matches a condition on it.
        let mut bare = fe();
        bare.context = Context::default();
        bare.user_name = None;
        bare.path = None;
        for e in [
            Exception {
                sources: vec![cidr("0.0.0.0/0"), cidr("::/0")],
                ..exc()
            },
            Exception {
                parents: vec![ProcSpec::new("sshd")],
                ..exc()
            },
            Exception {
                users: vec![UserSpec::Name("alice".into())],
                ..exc()
            },
            Exception {
                paths: vec![Pattern::new("*", true)],
                ..exc()
            },
        ] {
            assert!(!e.matches(&bare), "{e:?}");
        }
        // The numeric id still matches without a name.
        assert!(
            Exception {
                users: vec![UserSpec::Id(1001)],
                ..exc()
            }
            .matches(&bare)
        );
    }

    fn no_summaries() -> impl FnMut(WindowSummary) {
        |s| panic!("unexpected summary {s:?}")
    }

    #[test]
    fn exceptions_per_rule_and_global_are_counted() {
        let own = Exception {
            name: Some("ansible".into()),
            rule: Some("r2".into()),
            processes: vec![ProcSpec::new("sftp-server")],
            ..exc()
        };
        let global = Exception {
            users: vec![UserSpec::Id(2000)],
            origin: "c.toml:9".into(),
            ..exc()
        };
        let mut p = Policy::new(vec![own, global], Budget::default(), &["r1", "r2"]);
        let ev = fe();
        assert_eq!(p.decide(0, &ev, &mut no_summaries()), Verdict::Send);
        assert_eq!(p.decide(1, &ev, &mut no_summaries()), Verdict::Excepted(0));
        let mut other = fe();
        other.uid = Some("2000");
        assert_eq!(
            p.decide(0, &other, &mut no_summaries()),
            Verdict::Excepted(1)
        );
        assert_eq!(
            p.decide(1, &other, &mut no_summaries()),
            Verdict::Excepted(0)
        );
        let s = p.stats();
        assert_eq!(
            (s.sent, s.exception_suppressed, s.per_exception.clone()),
            (1, 3, vec![2, 1])
        );
        assert_eq!(p.exceptions()[0].label(0), "ansible");
        assert_eq!(p.exceptions()[1].label(1), "exception #2 (c.toml:9)");
    }

    fn at(sec: u64, path: &'static str, user: &'static str) -> FileEvent<'static> {
        let mut e = fe();
        e.sec = sec;
        e.path = t(path);
        e.uid = Some(user);
        e.user_name = None;
        e
    }

    #[test]
    fn budget_sends_exactly_n_per_window_then_summarises() {
        let budget = Budget {
            max_alerts: 3,
            window_secs: 60,
            dedup: false,
        };
        let mut p = Policy::new(vec![], budget, &["r1", "r2"]);
        let mut got = Vec::new();
        let mut verdicts = Vec::new();
        // Window of rule 0 opens at t=1000: 10 alerts in it, all of one actor.
        for i in 0..10u64 {
            let path = if i % 3 == 0 { "/tmp/a" } else { "/tmp/b" };
            verdicts.push(p.decide(0, &at(1000 + i, path, "1001"), &mut |s| got.push(s)));
        }
        // Rule 1 has its own budget.
        assert_eq!(
            p.decide(1, &at(1005, "/tmp/c", "1"), &mut |s| got.push(s)),
            Verdict::Send
        );
        let sent = verdicts.iter().filter(|v| **v == Verdict::Send).count();
        assert_eq!(sent, 3);
        assert_eq!(&verdicts[..3], &[Verdict::Send; 3]);
        assert!(verdicts[3..].iter().all(|v| *v == Verdict::OverBudget));
        // Suppression started at the 4th alert: a summary at once, naming the actor.
        assert_eq!(got.len(), 1);
        let s0 = &got[0];
        assert_eq!(s0.kind, SummaryKind::ActorStarted("1001".into()));
        assert_eq!((s0.at_ms, s0.end_ms), (1_003_000, 1_060_000));
        assert_eq!((s0.sent, s0.suppressed), (3, 1));
        // Still inside the window at 1059.999: nothing closes.
        p.tick(1_059_999, &mut |s| got.push(s));
        assert_eq!(got.len(), 1);
        // The next alert, after the window, closes it first and opens a new one.
        let v = p.decide(0, &at(1060, "/tmp/z", "1001"), &mut |s| got.push(s));
        assert_eq!(v, Verdict::Send);
        assert_eq!(got.len(), 2);
        let s = &got[1];
        assert_eq!(s.kind, SummaryKind::Closed);
        assert_eq!((s.rule, s.start_ms, s.end_ms), (0, 1_000_000, 1_060_000));
        assert_eq!(s.at_ms, 1_060_000);
        assert_eq!((s.sent, s.suppressed, s.duplicates), (3, 7, 0));
        // Held back: i = 3..10: paths a at 3,6,9 and b at 4,5,7,8.
        assert_eq!(
            s.paths,
            (vec![("/tmp/b".into(), 4), ("/tmp/a".into(), 3)], 0)
        );
        assert_eq!(s.processes, (vec![("sftp-server".into(), 7)], 0));
        assert_eq!(s.users, (vec![("1001".into(), 7)], 0));
        assert_eq!(
            s.actors,
            (
                vec![ActorCount {
                    actor: "1001".into(),
                    sent: 3,
                    suppressed: 7
                }],
                0
            )
        );
        assert_eq!(s.host_name.as_deref(), Some("h1"));
        let st = p.stats();
        assert_eq!((st.sent, st.budget_suppressed, st.summaries), (5, 7, 2));
    }

    /// Issue 15: one user's flood must not spend another user's budget. `nobody` makes 110
    /// matching creations with max_alerts 100; then alice's drop is sent at once, and the
    /// summary that named nobody came when nobody's suppression started.
    #[test]
    fn one_actors_flood_never_holds_back_another_actor() {
        let mut p = Policy::new(vec![], Budget::default(), &["r1"]);
        let mut got = Vec::new();
        let mut sent = 0;
        for i in 0..110u64 {
            let mut e = at(1000, "/tmp/f", "65534");
            e.user_name = t("nobody");
            e.msec = i as u16;
            if p.decide(0, &e, &mut |s| got.push(s)) == Verdict::Send {
                sent += 1;
            }
        }
        assert_eq!(sent, 100);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(
            got[0].kind,
            SummaryKind::ActorStarted("nobody (65534)".into())
        );
        assert_eq!(got[0].at_ms, 1_000_100);
        let victim = at(1001, "/tmp/zzz-victim", "1001");
        assert_eq!(p.decide(0, &victim, &mut |s| got.push(s)), Verdict::Send);
        p.flush(&mut |s| got.push(s));
        assert_eq!(got.len(), 2);
        let c = &got[1];
        assert_eq!(c.kind, SummaryKind::Closed);
        assert_eq!((c.sent, c.suppressed), (101, 10));
        assert_eq!(
            c.actors.0,
            vec![ActorCount {
                actor: "nobody (65534)".into(),
                sent: 100,
                suppressed: 10
            }]
        );
    }

    /// The rule's ceiling bounds the total; each actor's first alert still passes it, and
    /// reaching it is reported once, at once.
    #[test]
    fn ceiling_bounds_the_total_but_not_a_new_actors_first_alert() {
        let budget = Budget {
            max_alerts: 2,
            window_secs: 60,
            dedup: false,
        };
        assert_eq!(budget.ceiling(), 20);
        let mut p = Policy::new(vec![], budget, &["r1"]);
        let mut got = Vec::new();
        let send = |p: &mut Policy, uid: &'static str, got: &mut Vec<WindowSummary>| {
            p.decide(0, &at(1000, "/tmp/x", uid), &mut |s| got.push(s)) == Verdict::Send
        };
        const UIDS: [&str; 12] = [
            "2000", "2001", "2002", "2003", "2004", "2005", "2006", "2007", "2008", "2009", "2010",
            "2011",
        ];
        // Ten actors, two alerts each: 20 sent, the ceiling.
        for uid in &UIDS[..10] {
            assert!(send(&mut p, uid, &mut got));
            assert!(send(&mut p, uid, &mut got));
        }
        assert!(got.is_empty());
        // An 11th actor's first alert is sent over the ceiling; its second is not.
        assert!(send(&mut p, UIDS[10], &mut got));
        assert!(!send(&mut p, UIDS[10], &mut got));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].kind, SummaryKind::CeilingStarted);
        assert_eq!(
            (got[0].sent, got[0].suppressed, got[0].ceiling),
            (21, 1, 20)
        );
        // A 12th: the same, and the ceiling is not reported again.
        assert!(send(&mut p, UIDS[11], &mut got));
        assert!(!send(&mut p, UIDS[11], &mut got));
        assert_eq!(got.len(), 1);
        p.flush(&mut |s| got.push(s));
        assert_eq!(got[1].kind, SummaryKind::Closed);
        assert_eq!((got[1].sent, got[1].suppressed), (22, 2));
        assert_eq!(got[1].actors.0.len(), 2);
    }

    /// The actor table is bounded; actors beyond it share one overflow actor, counted.
    #[test]
    fn actor_table_is_bounded_and_overflow_counted() {
        let budget = Budget {
            max_alerts: 1,
            window_secs: 60,
            dedup: false,
        };
        let mut p = Policy::new(vec![], budget, &["r1"]);
        let mut got = Vec::new();
        let uids: Vec<&'static str> = (0..MAX_ACTORS + 3)
            .map(|i| &*Box::leak(format!("{}", 10_000 + i).into_boxed_str()))
            .collect();
        let mut verdicts = Vec::new();
        for uid in &uids {
            verdicts.push(p.decide(0, &at(1000, "/tmp/x", uid), &mut |s| got.push(s)));
        }
        // Every tracked actor's first alert, and the overflow actor's first, are sent; the
        // next two untracked actors share the overflow actor's spent budget.
        let sent = verdicts.iter().filter(|v| **v == Verdict::Send).count();
        assert_eq!(sent, MAX_ACTORS + 1);
        assert_eq!(p.stats().untracked_actor_alerts, 3);
        p.flush(&mut |s| got.push(s));
        let closed = got.last().unwrap();
        assert_eq!(closed.untracked_actor_alerts, 3);
        assert_eq!(closed.actors.0[0].actor, OVERFLOW_ACTOR);
        assert_eq!(closed.actors.0[0].suppressed, 2);
    }

    /// The daemon's correlate thread sleeps without a timer unless a window is open; then it
    /// must wake at the earliest window's end.
    #[test]
    fn next_window_end_is_the_earliest_open_window() {
        let budget = Budget {
            max_alerts: 1,
            window_secs: 60,
            dedup: false,
        };
        let mut p = Policy::new(vec![], budget, &["r1", "r2"]);
        assert_eq!(p.next_window_end(), None);
        p.decide(1, &at(1010, "/tmp/a", "1"), &mut |_| {});
        assert_eq!(p.next_window_end(), Some(1_070_000));
        p.decide(0, &at(1020, "/tmp/a", "1"), &mut |_| {});
        assert_eq!(p.next_window_end(), Some(1_070_000));
        p.tick(1_070_000, &mut |_| {});
        assert_eq!(p.next_window_end(), Some(1_080_000));
        p.flush(&mut |_| {});
        assert_eq!(p.next_window_end(), None);
        // No budget: no window, ever.
        let mut free = Policy::pass_all(1);
        free.decide(0, &at(1010, "/tmp/a", "1"), &mut |_| {});
        assert_eq!(free.next_window_end(), None);
    }

    #[test]
    fn tick_closes_a_window_when_no_alert_comes() {
        let budget = Budget {
            max_alerts: 1,
            window_secs: 300,
            dedup: false,
        };
        let mut p = Policy::new(vec![], budget, &["r1"]);
        let mut got = Vec::new();
        assert_eq!(
            p.decide(0, &at(100, "/tmp/a", "1"), &mut |s| got.push(s)),
            Verdict::Send
        );
        assert_eq!(
            p.decide(0, &at(101, "/tmp/b", "1"), &mut |s| got.push(s)),
            Verdict::OverBudget
        );
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].kind, SummaryKind::ActorStarted("1".into()));
        p.tick(399_999, &mut |s| got.push(s));
        assert_eq!(got.len(), 1);
        p.tick(400_000, &mut |s| got.push(s));
        assert_eq!(got.len(), 2);
        assert_eq!(
            (got[1].start_ms, got[1].end_ms, got[1].suppressed),
            (100_000, 400_000, 1)
        );
        assert_eq!(got[1].kind, SummaryKind::Closed);
        // A window with nothing held back closes without a summary.
        assert_eq!(
            p.decide(0, &at(500, "/tmp/a", "1"), &mut |s| got.push(s)),
            Verdict::Send
        );
        p.tick(10_000_000, &mut |s| got.push(s));
        assert_eq!(got.len(), 2);
        // flush closes whatever is open.
        p.decide(0, &at(20_000, "/tmp/a", "1"), &mut |s| got.push(s));
        p.decide(0, &at(20_001, "/tmp/a", "1"), &mut |s| got.push(s));
        p.flush(&mut |s| got.push(s));
        assert_eq!(got.len(), 4);
        assert_eq!(p.stats().summaries, 4);
    }

    #[test]
    fn summary_tallies_are_bounded() {
        let budget = Budget {
            max_alerts: 1,
            window_secs: 300,
            dedup: false,
        };
        let mut p = Policy::new(vec![], budget, &["r1"]);
        let mut got = Vec::new();
        let n = MAX_TALLY_KEYS as u64 + 50;
        for i in 0..=n {
            let mut e = fe();
            let path = format!("/tmp/f{i}");
            e.path = Some(Text {
                text: Cow::Owned(path),
                raw: None,
            });
            p.decide(0, &e, &mut |s| got.push(s));
        }
        p.flush(&mut |s| got.push(s));
        let s = got.last().unwrap();
        assert_eq!(s.kind, SummaryKind::Closed);
        assert_eq!(s.suppressed, n);
        assert_eq!(s.paths.0.len(), TOP_N);
        let listed: u64 = s.paths.0.iter().map(|(_, c)| c).sum();
        assert_eq!(listed + s.paths.1, n);
        assert_eq!(s.users, (vec![("alice (1001)".into(), n)], 0));
    }

    #[test]
    fn dedup_holds_back_identical_alerts_within_the_window() {
        let budget = Budget {
            max_alerts: 0,
            window_secs: 60,
            dedup: true,
        };
        let mut p = Policy::new(vec![], budget, &["r1", "r2"]);
        let mut got = Vec::new();
        let a = at(1000, "/tmp/a", "1001");
        assert_eq!(p.decide(0, &a, &mut |s| got.push(s)), Verdict::Send);
        assert_eq!(p.decide(0, &a, &mut |s| got.push(s)), Verdict::Duplicate);
        assert_eq!(
            p.decide(0, &at(1030, "/tmp/a", "1001"), &mut |s| got.push(s)),
            Verdict::Duplicate
        );
        // Another rule, path, user or source is not a duplicate.
        assert_eq!(p.decide(1, &a, &mut |s| got.push(s)), Verdict::Send);
        assert_eq!(
            p.decide(0, &at(1001, "/tmp/b", "1001"), &mut |s| got.push(s)),
            Verdict::Send
        );
        assert_eq!(
            p.decide(0, &at(1001, "/tmp/a", "1002"), &mut |s| got.push(s)),
            Verdict::Send
        );
        let mut other_ip = at(1001, "/tmp/a", "1001");
        other_ip.context.source_ip = Some("192.0.2.8".into());
        assert_eq!(p.decide(0, &other_ip, &mut |s| got.push(s)), Verdict::Send);
        // A different pid, time or serial does not make it different.
        let mut again = at(1002, "/tmp/a", "1001");
        again.pid = Some(4242);
        again.serial = 99;
        assert_eq!(
            p.decide(0, &again, &mut |s| got.push(s)),
            Verdict::Duplicate
        );
        assert!(got.is_empty());
        // In the next window it is sent again; the summary reports the duplicates.
        assert_eq!(
            p.decide(0, &at(1060, "/tmp/a", "1001"), &mut |s| got.push(s)),
            Verdict::Send
        );
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].sent, got[0].suppressed, got[0].duplicates),
            (4, 0, 3)
        );
        assert_eq!(got[0].paths, (vec![("/tmp/a".into(), 3)], 0));
        assert_eq!(p.stats().deduplicated, 3);
    }

    #[test]
    fn dedup_and_budget_together() {
        let budget = Budget {
            max_alerts: 2,
            window_secs: 60,
            dedup: true,
        };
        let mut p = Policy::new(vec![], budget, &["r1"]);
        let mut got = Vec::new();
        let v: Vec<Verdict> = ["/tmp/a", "/tmp/a", "/tmp/b", "/tmp/c", "/tmp/c", "/tmp/d"]
            .iter()
            .map(|path| p.decide(0, &at(1000, path, "1"), &mut |s| got.push(s)))
            .collect();
        assert_eq!(
            v,
            [
                Verdict::Send,
                Verdict::Duplicate,
                Verdict::Send,
                Verdict::OverBudget,
                Verdict::Duplicate,
                Verdict::OverBudget
            ]
        );
        p.flush(&mut |s| got.push(s));
        let closed = got.last().unwrap();
        assert_eq!(
            (closed.sent, closed.suppressed, closed.duplicates),
            (2, 2, 2)
        );
    }

    #[test]
    fn pass_all_sends_everything() {
        let mut p = Policy::pass_all(1);
        for i in 0..1000 {
            assert_eq!(
                p.decide(0, &at(i, "/tmp/a", "1"), &mut no_summaries()),
                Verdict::Send
            );
        }
        p.flush(&mut no_summaries());
        assert_eq!(p.stats().sent, 1000);
    }
}

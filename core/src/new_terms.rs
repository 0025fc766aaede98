//! new_terms (netlink → record → event → rule → **new terms** → policy → alert → syslog):
//! Elastic's "new terms" rule type, as a pure state machine on the events' own time.
//!
//! A new_terms rule alerts on an event its query matches only if the combination of the
//! event's values of the rule's `new_terms_fields` (one to three fields) was not seen, on an
//! event the same query matched, within the history window before it (`history_window_start
//! = "now-5d"`: the 5 days before the event). That is what Kibana's new_terms executor asks
//! Elasticsearch: a composite terms aggregation over the fields, each bucket's earliest
//! timestamp in the window, and an alert for a bucket whose earliest one falls in the run.
//! Facts taken from Kibana's `build_new_terms_aggregation.ts` and Elasticsearch's composite
//! aggregation, and applied here:
//!
//! * **Missing field.** The composite sources carry no `missing_bucket`, so an event without a
//!   value for one of the fields forms no bucket and never alerts; it is counted
//!   (`new_terms_missing`) and not remembered.
//! * **Multi-valued fields.** Every combination of the fields' values is a bucket. The event
//!   alerts if any of its combinations is new (Kibana makes one alert per new combination;
//!   wwatchd sends one alert per event) and all of them are remembered. At most
//!   [`MAX_VALUES`] values per field and [`MAX_COMBINATIONS`] combinations are taken; an
//!   event with more is counted (`new_terms_truncated`).
//! * **Sliding window.** Every sighting, alerting or not, refreshes the term: a term seen every
//!   day never alerts again; one unseen for longer than the window alerts once more.
//!
//! Time is the audit record's stamp, never a clock, so `scan` of a log and the daemon that
//! read the same records decide the same. A term is a 16-byte key (the first half of the
//! SHA-256 of its values, each tagged with its type and length-prefixed), so memory is
//! bounded by [`DEFAULT_CAPACITY`] keys per rule whatever the values' length: about 24 bytes a
//! term plus the table's overhead. When a rule's table is full, expired terms go first, then
//! the least recently seen sixteenth; every eviction is counted (`new_terms_evicted`, a loss:
//! an evicted term may alert again).
//!
//! The store's bytes ([`encode`], [`decode`]) are here too; the daemon crate's
//! `new_terms_store` writes and reads them.

#![forbid(unsafe_code)]

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use crate::ids::digest_parts;
use crate::rule::{FieldId, FieldSource, FieldValue};

/// Most `new_terms_fields` a rule may name (Elastic's limit).
pub const MAX_FIELDS: usize = 3;
/// Terms remembered per rule; beyond it the least recently seen are evicted and counted.
pub const DEFAULT_CAPACITY: usize = 100_000;
/// Values taken of one multi-valued field.
pub const MAX_VALUES: usize = 32;
/// Combinations taken of one event's values.
pub const MAX_COMBINATIONS: usize = 256;

/// A term: the first 16 bytes of the SHA-256 of one combination of values.
pub type TermKey = [u8; 16];

/// A rule's `[rule.new_terms]`, resolved against the schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTermsSpec {
    /// The fields, as written, with their ids; one to [`MAX_FIELDS`].
    pub fields: Vec<(String, FieldId)>,
    /// `history_window_start` as written (`now-5d`).
    pub window_text: String,
    /// The window, in milliseconds.
    pub window_ms: u64,
}

impl NewTermsSpec {
    /// What the terms are kept under: the rule id and the fields, so a rule's terms survive
    /// a new version of the rule with the same fields, and are dropped when the fields change
    /// (old terms would mean nothing).
    pub fn store_key(&self, rule_id: &str) -> String {
        let names: Vec<&str> = self.fields.iter().map(|(n, _)| n.as_str()).collect();
        format!("{rule_id} {}", names.join(","))
    }
}

/// Parses a history window start: `now-N` followed by a unit, `s`, `m`, `h` (or `H`), `d` or
/// `w`, as Elasticsearch date math writes it; returns the window in milliseconds. Months and
/// years (`M`, `y`) have no fixed length and rounding (`/d`) moves the start to a calendar
/// boundary; both are refused.
pub fn parse_window(text: &str) -> Result<u64, String> {
    let bad = |why: &str| {
        format!(
            "history window {text:?} {why}; allowed: now-N followed by s, m, h, d or w \
             (e.g. \"now-5d\")"
        )
    };
    let rest = text
        .trim()
        .strip_prefix("now-")
        .ok_or_else(|| bad("does not start with now-"))?;
    let split = rest
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| bad("has no unit"))?;
    let (digits, unit) = rest.split_at(split);
    let n: u64 = digits.parse().map_err(|_| bad("has no number of units"))?;
    let unit_ms: u64 = match unit {
        "s" => 1000,
        "m" => 60_000,
        "h" | "H" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        "M" | "y" => return Err(bad("uses months or years, which have no fixed length")),
        u if u.contains('/') => return Err(bad("rounds to a calendar boundary")),
        _ => return Err(bad("has an unknown unit")),
    };
    match n.checked_mul(unit_ms) {
        Some(0) => Err(bad("is empty")),
        Some(ms) if ms <= 366 * 86_400_000 => Ok(ms),
        _ => Err(bad("is longer than a year")),
    }
}

/// What a rule's new-terms check decided for an event its query matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// A combination not seen within the window: alert (the terms are now remembered).
    New,
    /// Every combination was seen within the window: no alert.
    Known,
    /// A field has no value: no alert, nothing remembered (as Elasticsearch).
    Missing,
}

/// One value's bytes in a term: a type tag, then the value.
fn value_bytes(v: FieldValue<'_>) -> Vec<u8> {
    match v {
        FieldValue::Str(s) => [b"s".as_slice(), s.as_bytes()].concat(),
        FieldValue::Num(n) => format!("n{n}").into_bytes(),
        FieldValue::Bool(b) => if b { b"b1" } else { b"b0" }.to_vec(),
    }
}

/// The terms of `ev` for `spec` into `out`: one key per combination of values. Returns
/// `None` when a field has no value, else whether values or combinations were left out.
pub fn term_keys(
    spec: &NewTermsSpec,
    ev: &dyn FieldSource,
    out: &mut Vec<TermKey>,
) -> Option<bool> {
    out.clear();
    let mut truncated = false;
    let mut per_field: Vec<Vec<Vec<u8>>> = Vec::with_capacity(spec.fields.len());
    for (_, id) in &spec.fields {
        let mut vals: Vec<Vec<u8>> = Vec::new();
        ev.field_multi(*id, &mut |v| {
            let b = value_bytes(v);
            if !vals.contains(&b) {
                if vals.len() == MAX_VALUES {
                    truncated = true;
                    return true;
                }
                vals.push(b);
            }
            false
        });
        if vals.is_empty() {
            return None;
        }
        per_field.push(vals);
    }
    // Every combination, as an odometer over the fields' values.
    let mut idx = vec![0usize; per_field.len()];
    loop {
        if out.len() == MAX_COMBINATIONS {
            truncated = true;
            break;
        }
        let parts: Vec<&[u8]> = per_field
            .iter()
            .zip(&idx)
            .map(|(vals, &i)| vals[i].as_slice())
            .collect();
        let d = digest_parts(&parts);
        let mut k = [0u8; 16];
        k.copy_from_slice(&d[..16]);
        out.push(k);
        let mut f = per_field.len();
        loop {
            if f == 0 {
                return Some(truncated);
            }
            f -= 1;
            idx[f] += 1;
            if idx[f] < per_field[f].len() {
                break;
            }
            idx[f] = 0;
        }
    }
    Some(truncated)
}

/// One rule's remembered terms: each with the time it was last seen (ms since the epoch).
#[derive(Clone, Debug)]
pub struct TermSet {
    window_ms: u64,
    capacity: usize,
    seen: HashMap<TermKey, u64>,
}

impl TermSet {
    pub fn new(window_ms: u64, capacity: usize) -> TermSet {
        TermSet {
            window_ms,
            capacity: capacity.max(1),
            seen: HashMap::new(),
        }
    }

    /// Terms remembered now.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no term is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// The window, in milliseconds.
    pub fn window_ms(&self) -> u64 {
        self.window_ms
    }

    /// Whether `key` was seen within the window before `t_ms`.
    fn known(&self, key: &TermKey, t_ms: u64) -> bool {
        self.seen
            .get(key)
            .is_some_and(|&last| last > t_ms.saturating_sub(self.window_ms))
    }

    /// Decides on the terms of one event at `t_ms` and remembers them all. Returns the
    /// decision and how many terms were evicted to make room.
    pub fn decide(&mut self, keys: &[TermKey], t_ms: u64) -> (Decision, u64) {
        if keys.is_empty() {
            return (Decision::Missing, 0);
        }
        let new = keys.iter().any(|k| !self.known(k, t_ms));
        let mut evicted = 0;
        for k in keys {
            evicted += self.remember(*k, t_ms);
        }
        (if new { Decision::New } else { Decision::Known }, evicted)
    }

    /// Records a sighting of `key` at `t_ms`; returns how many terms were evicted.
    pub fn remember(&mut self, key: TermKey, t_ms: u64) -> u64 {
        if let Some(last) = self.seen.get_mut(&key) {
            *last = (*last).max(t_ms);
            return 0;
        }
        let mut evicted = 0;
        if self.seen.len() >= self.capacity {
            self.expire(t_ms);
        }
        if self.seen.len() >= self.capacity {
            evicted = self.evict_oldest();
        }
        self.seen.insert(key, t_ms);
        evicted
    }

    /// Forgets the terms last seen a window or more before `now_ms`; returns how many.
    pub fn expire(&mut self, now_ms: u64) -> usize {
        let start = now_ms.saturating_sub(self.window_ms);
        let before = self.seen.len();
        self.seen.retain(|_, last| *last > start);
        before - self.seen.len()
    }

    /// Evicts the least recently seen sixteenth (at least one term); returns how many.
    fn evict_oldest(&mut self) -> u64 {
        let n = (self.seen.len() / 16).max(1);
        let mut times: Vec<u64> = self.seen.values().copied().collect();
        times.select_nth_unstable(n - 1);
        let cut = times[n - 1];
        let mut left = n;
        self.seen.retain(|_, last| {
            if left > 0 && *last <= cut {
                left -= 1;
                false
            } else {
                true
            }
        });
        (n - left) as u64
    }

    /// The terms, in no particular order.
    pub fn entries(&self) -> impl Iterator<Item = (&TermKey, &u64)> {
        self.seen.iter()
    }
}

/// What the new-terms checks counted (the detector reports them as its counters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NewTermsStats {
    pub known: u64,
    pub missing: u64,
    pub truncated: u64,
    pub evicted: u64,
    pub lost: u64,
}

/// Every new_terms rule's terms, by [`NewTermsSpec::store_key`].
#[derive(Clone, Debug)]
pub struct NewTerms {
    sets: BTreeMap<String, TermSet>,
    capacity: usize,
    stats: NewTermsStats,
    /// A term was added since [`NewTerms::take_dirty`]: the store must be written soon.
    added: bool,
    /// A term was refreshed since [`NewTerms::take_dirty`].
    touched: bool,
    keys: Vec<TermKey>,
}

impl Default for NewTerms {
    fn default() -> NewTerms {
        NewTerms::new(DEFAULT_CAPACITY)
    }
}

/// What changed since the store was last written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dirty {
    /// New terms: write now, or a crash would let them alert again.
    pub added: bool,
    /// Only refreshed times: writing them later costs at most a shorter window after a crash.
    pub touched: bool,
}

impl NewTerms {
    /// No terms; at most `capacity` per rule.
    pub fn new(capacity: usize) -> NewTerms {
        NewTerms {
            sets: BTreeMap::new(),
            capacity: capacity.max(1),
            stats: NewTermsStats::default(),
            added: false,
            touched: false,
            keys: Vec::new(),
        }
    }

    /// Decides for an event that `rule_id`'s query matched, at `t_ms`.
    pub fn decide(
        &mut self,
        rule_id: &str,
        spec: &NewTermsSpec,
        ev: &dyn FieldSource,
        t_ms: u64,
    ) -> Decision {
        let mut keys = std::mem::take(&mut self.keys);
        let got = term_keys(spec, ev, &mut keys);
        let decision = match got {
            None => {
                self.stats.missing += 1;
                Decision::Missing
            }
            Some(truncated) => {
                if truncated {
                    self.stats.truncated += 1;
                }
                let cap = self.capacity;
                let set = self
                    .sets
                    .entry(spec.store_key(rule_id))
                    .or_insert_with(|| TermSet::new(spec.window_ms, cap));
                set.window_ms = spec.window_ms;
                let (d, evicted) = set.decide(&keys, t_ms);
                self.stats.evicted += evicted;
                match d {
                    Decision::New => self.added = true,
                    Decision::Known => {
                        self.touched = true;
                        self.stats.known += 1;
                    }
                    Decision::Missing => {}
                }
                d
            }
        };
        self.keys = keys;
        decision
    }

    /// Keeps only the sets of these rules (after a reload), with their current windows.
    pub fn retain_rules(&mut self, specs: &[(String, u64)]) {
        self.sets
            .retain(|k, _| specs.iter().any(|(key, _)| key == k));
        for (key, w) in specs {
            if let Some(s) = self.sets.get_mut(key) {
                s.window_ms = *w;
            }
        }
    }

    /// Installs stored terms of the set `key` with `window_ms`, forgetting those expired by
    /// `now_ms`; terms beyond the capacity are evicted and counted. Returns how many expired.
    pub fn load_set(
        &mut self,
        key: &str,
        window_ms: u64,
        entries: &[(TermKey, u64)],
        now_ms: u64,
    ) -> usize {
        let cap = self.capacity;
        let set = self
            .sets
            .entry(key.to_owned())
            .or_insert_with(|| TermSet::new(window_ms, cap));
        let start = now_ms.saturating_sub(window_ms);
        let mut expired = 0;
        let mut sorted: Vec<&(TermKey, u64)> = entries.iter().collect();
        sorted.sort_by_key(|(_, t)| *t);
        for (k, t) in sorted {
            if *t <= start {
                expired += 1;
                continue;
            }
            self.stats.evicted += set.remember(*k, *t);
        }
        expired
    }

    /// Forgets, in every set, the terms expired by `now_ms`.
    pub fn expire(&mut self, now_ms: u64) {
        for s in self.sets.values_mut() {
            if s.expire(now_ms) > 0 {
                self.touched = true;
            }
        }
    }

    /// Counts terms lost outside this table (an unreadable store, a failed write).
    pub fn note_lost(&mut self, n: u64) {
        self.stats.lost += n;
    }

    /// What changed since the last call; clears it.
    pub fn take_dirty(&mut self) -> Dirty {
        let d = Dirty {
            added: self.added,
            touched: self.touched,
        };
        self.added = false;
        self.touched = false;
        d
    }

    /// Marks everything as changed (a write failed: try again).
    pub fn mark_dirty(&mut self) {
        self.added = true;
    }

    /// Terms remembered now, every rule together.
    pub fn len(&self) -> usize {
        self.sets.values().map(TermSet::len).sum()
    }

    /// Whether no term is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether any rule has a set.
    pub fn has_sets(&self) -> bool {
        !self.sets.is_empty()
    }

    /// The counts so far.
    pub fn stats(&self) -> NewTermsStats {
        self.stats
    }

    /// The sets, by key.
    pub fn sets(&self) -> impl Iterator<Item = (&str, &TermSet)> {
        self.sets.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Takes the other table's terms (a `scan` history), keeping this one's counts.
    pub fn absorb(&mut self, other: NewTerms) {
        for (k, set) in other.sets {
            let entries: Vec<(TermKey, u64)> = set.seen.into_iter().collect();
            let cap = self.capacity;
            let mine = self
                .sets
                .entry(k)
                .or_insert_with(|| TermSet::new(set.window_ms, cap));
            for (key, t) in entries {
                self.stats.evicted += mine.remember(key, t);
            }
        }
    }
}

// ---- the store's bytes ---------------------------------------------------------------------
//
//  "WWNTRM01"                      magic and format version (8 bytes)
//  u32 sets                        big-endian, like every number here
//  per set:  u16 key length, key (UTF-8: "RULE_ID FIELD,FIELD"), u64 window ms,
//            u32 terms, then per term: 16-byte key, u64 last seen (ms since the epoch)
//  SHA-256 of everything before    (32 bytes): a torn or altered file is refused whole

const MAGIC: &[u8; 8] = b"WWNTRM01";

/// Why stored terms could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

/// One stored set: its key, window and terms.
pub type StoredSet = (String, u64, Vec<(TermKey, u64)>);

/// The bytes of every set of `nt`.
pub fn encode(nt: &NewTerms) -> Vec<u8> {
    let mut b = Vec::with_capacity(64 + nt.len() * 24);
    b.extend_from_slice(MAGIC);
    b.extend_from_slice(&(nt.sets.len() as u32).to_be_bytes());
    for (key, set) in &nt.sets {
        let k = key.as_bytes();
        let klen = k.len().min(u16::MAX as usize);
        b.extend_from_slice(&(klen as u16).to_be_bytes());
        b.extend_from_slice(&k[..klen]);
        b.extend_from_slice(&set.window_ms.to_be_bytes());
        b.extend_from_slice(&(set.seen.len() as u32).to_be_bytes());
        for (term, t) in &set.seen {
            b.extend_from_slice(term);
            b.extend_from_slice(&t.to_be_bytes());
        }
    }
    let sum = digest_parts(&[&b]);
    b.extend_from_slice(&sum);
    b
}

/// Reads a cursor of big-endian numbers and byte strings.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.b.len());
        let Some(end) = end else {
            return Err(DecodeError(format!(
                "ends inside a record at byte {}",
                self.at
            )));
        };
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        let s = self.take(2)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(a))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(a))
    }
}

/// The sets stored in `bytes`. Any damage (short, wrong magic, checksum mismatch, lengths
/// past the end) refuses the whole file: a half-read table would be silently incomplete.
pub fn decode(bytes: &[u8]) -> Result<Vec<StoredSet>, DecodeError> {
    if bytes.len() < MAGIC.len() + 4 + 32 {
        return Err(DecodeError(format!(
            "is {} bytes, shorter than an empty store (torn write?)",
            bytes.len()
        )));
    }
    if &bytes[..8] != MAGIC {
        return Err(DecodeError(
            "does not start with WWNTRM01: not a wwatchd new-terms store, or another version"
                .into(),
        ));
    }
    let (body, sum) = bytes.split_at(bytes.len() - 32);
    if digest_parts(&[body]).as_slice() != sum {
        return Err(DecodeError("fails its checksum (torn or altered)".into()));
    }
    let mut r = Reader { b: body, at: 8 };
    let n = r.u32()?;
    let mut out = Vec::new();
    for _ in 0..n {
        let klen = usize::from(r.u16()?);
        let key = String::from_utf8(r.take(klen)?.to_vec())
            .map_err(|_| DecodeError("has a set key that is not UTF-8".into()))?;
        let window = r.u64()?;
        let count = r.u32()? as usize;
        let mut entries = Vec::with_capacity(count.min(body.len() / 24));
        for _ in 0..count {
            let mut k = [0u8; 16];
            k.copy_from_slice(r.take(16)?);
            entries.push((k, r.u64()?));
        }
        out.push((key, window, entries));
    }
    if r.at != body.len() {
        return Err(DecodeError(format!(
            "has {} bytes after its last set",
            body.len() - r.at
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::Schema;
    use crate::rule::testutil::{Ev, TestSchema};

    const DAY: u64 = 86_400_000;

    fn spec(fields: &[&str]) -> NewTermsSpec {
        NewTermsSpec {
            fields: fields
                .iter()
                .map(|f| match TestSchema.lookup(f) {
                    Some((id, _)) => ((*f).to_owned(), id),
                    None => panic!("{f}"),
                })
                .collect(),
            window_text: "now-5d".into(),
            window_ms: 5 * DAY,
        }
    }

    fn ev(exe: &str, host: &str) -> Ev {
        Ev::new().s("process.executable", exe).s("host.name", host)
    }

    #[test]
    fn windows_parse_as_date_math() {
        assert_eq!(parse_window("now-5d"), Ok(5 * DAY));
        assert_eq!(parse_window("now-30m"), Ok(30 * 60_000));
        assert_eq!(parse_window("now-2w"), Ok(14 * DAY));
        assert_eq!(parse_window("now-36h"), Ok(36 * 3_600_000));
        for bad in [
            "5d", "now-d", "now-5", "now-5x", "now-1M", "now-0d", "now-400d", "now-1d/d",
        ] {
            let e = parse_window(bad).err().unwrap_or_default();
            assert!(e.contains("allowed: now-N"), "{bad}: {e}");
        }
    }

    /// First sighting alerts, a repeat within the window does not, one after a window of
    /// silence does; a repeat refreshes the term (the window slides).
    #[test]
    fn first_sighting_alerts_and_the_window_slides() {
        let s = spec(&["process.executable", "host.name"]);
        let mut nt = NewTerms::default();
        let t0 = 1_000 * DAY;
        let a = ev("/usr/bin/scp", "h1");
        assert_eq!(nt.decide("r", &s, &a, t0), Decision::New);
        assert_eq!(
            nt.take_dirty(),
            Dirty {
                added: true,
                touched: false
            }
        );
        assert_eq!(nt.decide("r", &s, &a, t0 + DAY), Decision::Known);
        assert_eq!(
            nt.take_dirty(),
            Dirty {
                added: false,
                touched: true
            }
        );
        // Seen at t0+1d: still known at t0+1d+5d-1ms, new again at t0+1d+5d.
        assert_eq!(nt.decide("r", &s, &a, t0 + 6 * DAY - 1), Decision::Known);
        assert_eq!(nt.decide("r", &s, &a, t0 + 11 * DAY - 1), Decision::New);
        // Another host, another executable: each its own combination.
        assert_eq!(
            nt.decide("r", &s, &ev("/usr/bin/scp", "h2"), t0),
            Decision::New
        );
        assert_eq!(
            nt.decide("r", &s, &ev("/usr/bin/rsync", "h1"), t0),
            Decision::New
        );
        // Another rule with the same fields has its own terms.
        assert_eq!(nt.decide("other", &s, &a, t0), Decision::New);
        assert_eq!(nt.stats().known, 2);
        assert_eq!(nt.len(), 4);
    }

    /// As Elasticsearch's composite aggregation: a missing field forms no bucket.
    #[test]
    fn missing_field_never_alerts_and_is_counted() {
        let s = spec(&["process.executable", "user.id"]);
        let mut nt = NewTerms::default();
        let e = Ev::new().s("process.executable", "/usr/bin/scp");
        assert_eq!(nt.decide("r", &s, &e, DAY), Decision::Missing);
        assert_eq!(nt.decide("r", &s, &e, DAY), Decision::Missing);
        assert_eq!(nt.stats().missing, 2);
        assert!(nt.is_empty());
        assert_eq!(nt.take_dirty(), Dirty::default());
    }

    /// Every combination of a multi-valued field; the event alerts if any is new.
    #[test]
    fn multi_valued_fields_give_every_combination() {
        let s = spec(&["process.args", "host.name"]);
        let mut nt = NewTerms::default();
        let mut keys = Vec::new();
        let e = Ev::new()
            .many("process.args", &["scp", "-t", "scp"])
            .s("host.name", "h");
        assert_eq!(term_keys(&s, &e, &mut keys), Some(false));
        assert_eq!(keys.len(), 2, "duplicates are one value");
        assert_eq!(nt.decide("r", &s, &e, DAY), Decision::New);
        let sub = Ev::new().many("process.args", &["-t"]).s("host.name", "h");
        assert_eq!(nt.decide("r", &s, &sub, DAY + 1), Decision::Known);
        let more = Ev::new()
            .many("process.args", &["-t", "-f"])
            .s("host.name", "h");
        assert_eq!(nt.decide("r", &s, &more, DAY + 2), Decision::New);
        // Values are typed and length-prefixed: ("ab","c") is not ("a","bc").
        let s2 = spec(&["process.name", "user.id"]);
        let a = Ev::new().s("process.name", "ab").s("user.id", "c");
        let b = Ev::new().s("process.name", "a").s("user.id", "bc");
        let (mut ka, mut kb) = (Vec::new(), Vec::new());
        term_keys(&s2, &a, &mut ka);
        term_keys(&s2, &b, &mut kb);
        assert_ne!(ka, kb);
        let n = Ev::new().n("process.pid", 1).s("user.id", "c");
        let st = Ev::new().s("process.name", "1").s("user.id", "c");
        let s3 = spec(&["process.pid", "user.id"]);
        term_keys(&s3, &n, &mut ka);
        term_keys(&s2, &st, &mut kb);
        assert_ne!(ka, kb, "a number is not the string of its digits");
    }

    #[test]
    fn combinations_are_capped_and_counted() {
        let s = spec(&["process.args", "file.name", "user.id"]);
        let many: Vec<String> = (0..40).map(|i| format!("a{i}")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        let e = Ev::new()
            .many("process.args", &refs)
            .many("file.name", &refs)
            .s("user.id", "1");
        let mut keys = Vec::new();
        assert_eq!(term_keys(&s, &e, &mut keys), Some(true));
        assert_eq!(keys.len(), MAX_COMBINATIONS);
        let mut nt = NewTerms::default();
        nt.decide("r", &s, &e, DAY);
        assert_eq!(nt.stats().truncated, 1);
    }

    /// A full table drops expired terms first, then the least recently seen, and counts
    /// each eviction.
    #[test]
    fn capacity_evicts_oldest_and_counts() {
        let s = spec(&["process.executable"]);
        let mut nt = NewTerms::new(32);
        for i in 0..32u64 {
            let e = Ev::new().s("process.executable", &format!("/bin/{i}"));
            assert_eq!(nt.decide("r", &s, &e, DAY + i), Decision::New);
        }
        assert_eq!(nt.len(), 32);
        let e = Ev::new().s("process.executable", "/bin/new");
        assert_eq!(nt.decide("r", &s, &e, DAY + 100), Decision::New);
        assert_eq!(nt.stats().evicted, 2, "a sixteenth of 32");
        assert_eq!(nt.len(), 31);
        // The oldest two are gone (they alert again), the newest stays known.
        let old = Ev::new().s("process.executable", "/bin/0");
        assert_eq!(nt.decide("r", &s, &old, DAY + 101), Decision::New);
        let recent = Ev::new().s("process.executable", "/bin/31");
        assert_eq!(nt.decide("r", &s, &recent, DAY + 102), Decision::Known);
        // After a window, a full table expires rather than evicts.
        let later = Ev::new().s("process.executable", "/bin/later");
        let before = nt.stats().evicted;
        for i in 0..40u64 {
            let e = Ev::new().s("process.executable", &format!("/x/{i}"));
            nt.decide("r", &s, &e, 10 * DAY + i);
        }
        nt.decide("r", &s, &later, 10 * DAY + 50);
        assert!(nt.stats().evicted - before < 40, "{:?}", nt.stats());
        assert!(nt.len() <= 32);
    }

    #[test]
    fn store_round_trips_and_refuses_damage() {
        let s = spec(&["process.executable", "host.name"]);
        let mut nt = NewTerms::default();
        nt.decide("r1", &s, &ev("/usr/bin/scp", "h"), 10 * DAY);
        nt.decide("r1", &s, &ev("/usr/bin/sftp", "h"), 10 * DAY + 5);
        nt.decide("r2", &s, &ev("/usr/bin/scp", "h"), 10 * DAY);
        let bytes = encode(&nt);
        let sets = match decode(&bytes) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(sets.len(), 2);
        assert_eq!(sets[0].0, "r1 process.executable,host.name");
        assert_eq!(sets[0].1, 5 * DAY);
        assert_eq!(sets[0].2.len(), 2);
        // Loaded into a fresh table (a restart), the terms are known; expired ones are not
        // loaded.
        let mut back = NewTerms::default();
        for (k, w, e) in &sets {
            assert_eq!(back.load_set(k, *w, e, 10 * DAY + 10), 0);
        }
        assert_eq!(
            back.decide("r1", &s, &ev("/usr/bin/scp", "h"), 11 * DAY),
            Decision::Known
        );
        let mut late = NewTerms::default();
        for (k, w, e) in &sets {
            late.load_set(k, *w, e, 15 * DAY + 1);
        }
        assert_eq!(
            late.len(),
            1,
            "only the one seen at +5 ms is within the window"
        );
        // Every truncation and every flipped byte is refused, never a panic.
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            assert!(decode(&b).is_err(), "flip at {i}");
        }
        let e = decode(b"junk").err().map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("torn")));
    }

    #[test]
    fn reload_keeps_only_current_rules() {
        let s = spec(&["process.executable"]);
        let mut nt = NewTerms::default();
        nt.decide("a", &s, &ev("/x", "h"), DAY);
        nt.decide("b", &s, &ev("/x", "h"), DAY);
        nt.retain_rules(&[(s.store_key("b"), DAY)]);
        assert_eq!(nt.len(), 1);
        assert_eq!(nt.sets().next().map(|(_, s)| s.window_ms()), Some(DAY));
    }
}

#[cfg(test)]
mod never_panics {
    use super::decode;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn arbitrary_store_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut with_magic = b"WWNTRM01".to_vec();
            with_magic.extend_from_slice(&b);
            let _ = decode(&b);
            let _ = decode(&with_magic);
        }
    }
}

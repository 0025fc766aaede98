//! event: the correlator that groups records into complete events.
//!
//! `netlink → record → [event] → rule → alert → syslog`
//!
//! Records of one event share a stamp (`audit(SEC.MSEC:SERIAL)`), arrive in order, and
//! interleave with other events' records. An event is complete, as auparse decides it
//! (audit-userspace `auparse/auparse.c`, `au_check_events`), when:
//! - its EOE arrives;
//! - its PROCTITLE arrives (the last record before EOE of a syscall event);
//! - it is a single-record type (below 1300, or 2100 and above);
//! - it is the `EVENT_LISTENER` record of a multicast listener that leaves as its process
//!   exits (`exe=(null)`: the process's memory is gone): the kernel writes it alone, with no
//!   SYSCALL or EOE after it (seen on Linux 6.18). auparse waits for its timeout; we do not,
//!   so `timed_out` counts only events that really lost records. Any other EVENT_LISTENER (a
//!   join, seen here inside `bind`'s event, which ends with EOE; a leave by a process that
//!   still has its executable) follows the usual rule;
//! - it is older than the timeout (the caller supplies the clock: wall time live, stream
//!   time in `scan`), or the stream ends.
//!
//! A complete event is handed out at once, never behind an older incomplete one (the
//! head-of-line blocking of go-libaudit). Every map operation is O(1) amortised, so the cost
//! per record does not grow with the number of events in flight.

#![forbid(unsafe_code)]

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::Range;

use crate::record::{Record, Stamp, Value, num};

/// Tunables. Defaults follow auditd (`end_of_event_timeout` 2 s).
#[derive(Clone, Debug)]
pub struct CorrelatorConfig {
    /// Emit an incomplete event this long after its first record (milliseconds).
    pub timeout_ms: u64,
    /// Most events in flight; beyond it the oldest is emitted early and counted as evicted.
    pub max_inflight: usize,
    /// Serials may arrive this far out of order before a missing one counts as a gap.
    pub gap_window: u64,
}

impl Default for CorrelatorConfig {
    fn default() -> Self {
        CorrelatorConfig {
            timeout_ms: 2000,
            max_inflight: 4096,
            gap_window: 4096,
        }
    }
}

/// What the correlator has seen. All counters only grow.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CorrelatorStats {
    pub records: u64,
    pub events: u64,
    /// Events emitted because they timed out (no EOE/PROCTITLE seen).
    pub timed_out: u64,
    /// Events emitted early because too many were in flight.
    pub evicted: u64,
    /// Serials that never arrived within the tolerance window.
    pub gaps: u64,
    /// Records that came after their event was complete, or repeated a serial already done.
    pub duplicates: u64,
    /// EOE records for an event never seen (its other records were lost or evicted).
    pub spurious: u64,
}

/// Why an event was handed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completion {
    Eoe,
    Proctitle,
    SingleRecord,
    Timeout,
    Evicted,
    EndOfStream,
}

#[derive(Clone, Debug)]
struct Span {
    rtype: u16,
    line: u64,
    body: Range<usize>,
    enriched: Range<usize>,
}

/// One complete event: its stamp and its records, in arrival order, copied into one buffer.
#[derive(Debug, Default)]
pub struct Event {
    pub stamp: Stamp,
    pub node: Option<Vec<u8>>,
    pub completion: Option<Completion>,
    buf: Vec<u8>,
    spans: Vec<Span>,
    created_ms: u64,
    seq: u64,
    /// A SYSCALL record is among the records (a second one is a duplicate), kept as a flag
    /// so that checking costs nothing however many records the event has.
    has_syscall: bool,
}

impl Event {
    fn reset(&mut self, stamp: Stamp, node: Option<&[u8]>, now_ms: u64, seq: u64) {
        self.stamp = stamp;
        self.node = node.map(<[u8]>::to_vec);
        self.completion = None;
        self.buf.clear();
        self.spans.clear();
        self.created_ms = now_ms;
        self.seq = seq;
        self.has_syscall = false;
    }

    fn push(&mut self, rec: &Record<'_>, line: u64) {
        self.has_syscall |= rec.rtype == num::SYSCALL;
        let b0 = self.buf.len();
        self.buf.extend_from_slice(rec.body);
        let e0 = self.buf.len();
        self.buf.extend_from_slice(rec.enriched);
        self.spans.push(Span {
            rtype: rec.rtype,
            line,
            body: b0..e0,
            enriched: e0..self.buf.len(),
        });
    }

    /// The records in arrival order, with the input line (or datagram number) each came from.
    pub fn records(&self) -> impl Iterator<Item = (u64, Record<'_>)> + '_ {
        self.spans.iter().map(move |s| {
            (
                s.line,
                Record {
                    rtype: s.rtype,
                    stamp: self.stamp,
                    node: self.node.as_deref(),
                    body: &self.buf[s.body.clone()],
                    enriched: &self.buf[s.enriched.clone()],
                },
            )
        })
    }

    /// The first record of a type.
    pub fn first(&self, rtype: u16) -> Option<Record<'_>> {
        self.records()
            .find(|(_, r)| r.rtype == rtype)
            .map(|(_, r)| r)
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The input line of the first record, for messages about this event.
    pub fn first_line(&self) -> u64 {
        self.spans.first().map_or(0, |s| s.line)
    }
}

/// A fast hasher for the u64 serial keys; SipHash's DoS resistance buys nothing here,
/// since serials come from the kernel, and it costs a fifth of the per-record budget.
#[derive(Default)]
struct SerialHasher(u64);

impl Hasher for SerialHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0 ^ v)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(29);
    }
    fn write_u16(&mut self, v: u16) {
        self.write_u64(u64::from(v));
    }
}

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<SerialHasher>>;

/// Tracks which serials were seen, to count the ones that never come.
///
/// Serials are handed out per event by the kernel, but events on different CPUs finish in a
/// different order than they started, so a serial may arrive late. Only when the highest
/// serial has run `window` past a missing one does it count as a gap.
#[derive(Debug)]
struct GapTracker {
    window: u64,
    /// The lowest serial not yet accounted for; `None` until the first record.
    base: Option<u64>,
    /// Highest serial seen.
    max: u64,
    /// Seen flags for serials `base .. base + window`, as a ring.
    seen: Vec<u64>,
}

impl GapTracker {
    fn new(window: u64) -> Self {
        let window = window.clamp(64, 1 << 20).next_power_of_two();
        GapTracker {
            window,
            base: None,
            max: 0,
            seen: vec![0; (window / 64) as usize],
        }
    }

    fn bit(&self, s: u64) -> (usize, u64) {
        let i = s & (self.window - 1);
        ((i / 64) as usize, 1u64 << (i % 64))
    }

    /// Record serial `s`; returns gaps newly found. A serial far below the window means a
    /// new boot (serials restart), which starts over rather than counting anything.
    fn observe(&mut self, s: u64) -> u64 {
        let Some(base) = self.base else {
            self.reset(s);
            return 0;
        };
        if s < base {
            if base - s > self.window.saturating_mul(16) {
                self.reset(s);
            }
            // Late beyond the window: it was counted as a gap already; leave it there.
            return 0;
        }
        let mut gaps = 0;
        if s >= base + self.window {
            gaps = self.advance_to(s + 1 - self.window);
        }
        let (w, m) = self.bit(s);
        self.seen[w] |= m;
        self.max = self.max.max(s);
        gaps
    }

    fn reset(&mut self, s: u64) {
        self.seen.iter_mut().for_each(|w| *w = 0);
        self.base = Some(s);
        self.max = s;
        let (w, m) = self.bit(s);
        self.seen[w] |= m;
    }

    /// Move `base` up to `new_base`, counting unseen serials that leave the window.
    fn advance_to(&mut self, new_base: u64) -> u64 {
        let Some(base) = self.base else { return 0 };
        let mut gaps = 0;
        let upto = new_base.min(base + self.window);
        // A word of the ring at a time: the window is a multiple of 64, so a word never
        // straddles the ring's end.
        let mut s = base;
        while s < upto {
            let (w, first) = self.bit(s);
            let n = (64 - first.trailing_zeros() as u64).min(upto - s);
            let mask = if n == 64 {
                u64::MAX
            } else {
                ((1u64 << n) - 1) * first
            };
            gaps += u64::from((!self.seen[w] & mask).count_ones());
            self.seen[w] &= !mask;
            s += n;
        }
        // Anything past the whole window was never seen at all.
        gaps += new_base.saturating_sub(base + self.window);
        self.base = Some(new_base);
        gaps
    }

    /// End of stream: every serial below the highest seen should have come by now.
    fn finish(&mut self) -> u64 {
        match self.base {
            Some(_) => {
                let g = self.advance_to(self.max + 1);
                self.base = None;
                g
            }
            None => 0,
        }
    }
}

/// Serials whose events were completed recently, so that their trailing EOE (after a
/// PROCTITLE completed them) is expected rather than spurious. Bounded ring + set.
#[derive(Debug)]
struct RecentlyDone {
    cap: usize,
    ring: VecDeque<(u64, u64)>,
    /// Key → whether the event was a single record (then more records with its stamp may
    /// follow: the kernel writes LOGIN inside the syscall event that set the loginuid).
    set: FastMap<(u64, u64), bool>,
}

impl RecentlyDone {
    fn new(cap: usize) -> Self {
        RecentlyDone {
            cap,
            ring: VecDeque::with_capacity(cap),
            set: FastMap::default(),
        }
    }
    fn insert(&mut self, k: (u64, u64), single: bool) {
        if self.set.insert(k, single).is_none() {
            if self.ring.len() == self.cap
                && let Some(old) = self.ring.pop_front()
            {
                self.set.remove(&old);
            }
            self.ring.push_back(k);
        }
    }
    fn contains(&self, k: &(u64, u64)) -> bool {
        self.set.contains_key(k)
    }
    /// Done, and not as a lone single record: further records are late or repeated.
    fn closed(&self, k: &(u64, u64)) -> bool {
        self.set.get(k) == Some(&false)
    }
}

/// The key of an event: the serial, plus the time, since serials restart at boot and a
/// scan may read logs from several boots.
fn key(s: &Stamp) -> (u64, u64) {
    (s.serial, s.millis())
}

/// Groups records into events.
pub struct Correlator {
    cfg: CorrelatorConfig,
    inflight: FastMap<(u64, u64), Event>,
    /// Insertion order of in-flight events, for timeouts and eviction. Entries whose event
    /// already completed are skipped lazily (their `seq` no longer matches).
    order: VecDeque<((u64, u64), u64)>,
    done: RecentlyDone,
    gaps: GapTracker,
    pool: Vec<Event>,
    next_seq: u64,
    stats: CorrelatorStats,
}

/// Records that make a whole event by themselves: auparse's types, and a listener's
/// farewell at exit (see the module documentation).
fn is_single_record(rec: &Record<'_>) -> bool {
    !(1300..2100).contains(&rec.rtype)
        || (rec.rtype == num::EVENT_LISTENER && rec.get(b"exe").is_some_and(|v| v.raw == b"(null)"))
}

/// auditd's own records (DAEMON_*) carry auditd's serials, not the kernel's.
fn has_kernel_serial(rtype: u16) -> bool {
    !(1200..1300).contains(&rtype)
}

impl Correlator {
    pub fn new(cfg: CorrelatorConfig) -> Self {
        let gaps = GapTracker::new(cfg.gap_window);
        let done = RecentlyDone::new(cfg.max_inflight.max(1024) * 2);
        Correlator {
            cfg,
            inflight: FastMap::default(),
            order: VecDeque::new(),
            done,
            gaps,
            pool: Vec::new(),
            next_seq: 0,
            stats: CorrelatorStats::default(),
        }
    }

    pub fn stats(&self) -> &CorrelatorStats {
        &self.stats
    }

    pub fn inflight(&self) -> usize {
        self.inflight.len()
    }

    /// Feed one record. `line` is where it came from (line number or datagram count);
    /// `now_ms` is the clock the timeout runs on. Complete events go to `out`.
    pub fn push(&mut self, rec: &Record<'_>, line: u64, now_ms: u64, out: &mut dyn FnMut(&Event)) {
        self.stats.records += 1;
        let k = key(&rec.stamp);
        let known = self.inflight.contains_key(&k);
        if !known && has_kernel_serial(rec.rtype) && !self.done.contains(&k) {
            self.stats.gaps += self.gaps.observe(rec.stamp.serial);
        }

        if rec.rtype == num::EOE {
            match self.inflight.remove(&k) {
                Some(ev) => self.complete(ev, Completion::Eoe, out),
                None if self.done.contains(&k) => {} // after PROCTITLE: expected
                None => self.stats.spurious += 1,
            }
            self.expire(now_ms, out);
            return;
        }

        if !known && self.done.closed(&k) {
            // The event was handed out already; a record now is late or repeated.
            self.stats.duplicates += 1;
            self.expire(now_ms, out);
            return;
        }

        if is_single_record(rec) && !known {
            let mut ev = self.take_event(rec, now_ms);
            ev.push(rec, line);
            self.complete(ev, Completion::SingleRecord, out);
            self.expire(now_ms, out);
            return;
        }

        if !known {
            let ev = self.take_event(rec, now_ms);
            self.order.push_back((k, ev.seq));
            self.inflight.insert(k, ev);
        }
        let Some(ev) = self.inflight.get_mut(&k) else {
            return;
        };
        if rec.rtype == num::SYSCALL && ev.has_syscall {
            self.stats.duplicates += 1;
            return;
        }
        ev.push(rec, line);
        if rec.rtype == num::PROCTITLE
            && let Some(ev) = self.inflight.remove(&k)
        {
            self.complete(ev, Completion::Proctitle, out);
        }
        self.expire(now_ms, out);
    }

    /// Hand out events older than the timeout, and the oldest when over the bound.
    pub fn expire(&mut self, now_ms: u64, out: &mut dyn FnMut(&Event)) {
        while let Some(&(k, seq)) = self.order.front() {
            let live = self.inflight.get(&k).is_some_and(|e| e.seq == seq);
            if !live {
                self.order.pop_front();
                continue;
            }
            let over = self.inflight.len() > self.cfg.max_inflight;
            let old = self
                .inflight
                .get(&k)
                .is_some_and(|e| now_ms.saturating_sub(e.created_ms) >= self.cfg.timeout_ms);
            if !(over || old) {
                break;
            }
            self.order.pop_front();
            if let Some(ev) = self.inflight.remove(&k) {
                let why = if old {
                    Completion::Timeout
                } else {
                    Completion::Evicted
                };
                self.complete(ev, why, out);
            }
        }
        // Stale entries behind a live head pile up; compact when they dominate.
        if self.order.len() > 4 * self.cfg.max_inflight.max(64) {
            let inflight = &self.inflight;
            self.order
                .retain(|(k, seq)| inflight.get(k).is_some_and(|e| e.seq == *seq));
        }
    }

    /// End of stream: hand out everything in flight, oldest first, and settle the gaps.
    pub fn flush(&mut self, out: &mut dyn FnMut(&Event)) {
        while let Some((k, seq)) = self.order.pop_front() {
            if self.inflight.get(&k).is_some_and(|e| e.seq == seq)
                && let Some(ev) = self.inflight.remove(&k)
            {
                self.complete(ev, Completion::EndOfStream, out);
            }
        }
        // Events whose order entry was compacted away cannot exist (compaction keeps live
        // ones), but drain the map defensively so nothing is silently kept.
        let rest: Vec<_> = self.inflight.drain().map(|(_, e)| e).collect();
        for ev in rest {
            self.complete(ev, Completion::EndOfStream, out);
        }
        self.stats.gaps += self.gaps.finish();
    }

    fn take_event(&mut self, rec: &Record<'_>, now_ms: u64) -> Event {
        let mut ev = self.pool.pop().unwrap_or_default();
        self.next_seq += 1;
        ev.reset(rec.stamp, rec.node, now_ms, self.next_seq);
        ev
    }

    fn complete(&mut self, mut ev: Event, why: Completion, out: &mut dyn FnMut(&Event)) {
        ev.completion = Some(why);
        self.stats.events += 1;
        match why {
            Completion::Timeout => self.stats.timed_out += 1,
            Completion::Evicted => self.stats.evicted += 1,
            _ => {}
        }
        self.done
            .insert(key(&ev.stamp), why == Completion::SingleRecord);
        out(&ev);
        if self.pool.len() < 64 {
            self.pool.push(ev);
        }
    }
}

/// A field of the first record of a type, for callers that need one value.
pub fn field<'a>(ev: &'a Event, rtype: u16, name: &[u8]) -> Option<Value<'a>> {
    ev.first(rtype).and_then(|r| r.get(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(t: &str, serial: u64, ms: u16, body: &str) -> Vec<u8> {
        format!("type={t} msg=audit(100.{ms:03}:{serial}): {body}").into_bytes()
    }

    struct Run {
        c: Correlator,
        out: Vec<(u64, Vec<u16>, Completion)>,
    }

    impl Run {
        fn new(cfg: CorrelatorConfig) -> Self {
            Run {
                c: Correlator::new(cfg),
                out: vec![],
            }
        }
        fn feed(&mut self, l: &[u8], now: u64) {
            let r = Record::from_log_line(l).unwrap();
            let out = &mut self.out;
            self.c.push(&r, 0, now, &mut |e: &Event| {
                out.push((
                    e.stamp.serial,
                    e.records().map(|(_, r)| r.rtype).collect(),
                    e.completion.unwrap(),
                ))
            });
        }
        fn flush(&mut self) {
            let out = &mut self.out;
            self.c.flush(&mut |e: &Event| {
                out.push((
                    e.stamp.serial,
                    e.records().map(|(_, r)| r.rtype).collect(),
                    e.completion.unwrap(),
                ))
            });
        }
    }

    #[test]
    fn completes_on_eoe_and_proctitle_and_single_records() {
        let mut r = Run::new(CorrelatorConfig::default());
        r.feed(&line("SYSCALL", 1, 0, "syscall=257"), 0);
        r.feed(&line("CWD", 1, 0, "cwd=\"/\""), 0);
        r.feed(&line("PATH", 1, 0, "item=0"), 0);
        assert!(r.out.is_empty());
        r.feed(&line("PROCTITLE", 1, 0, "proctitle=6C73"), 0);
        assert_eq!(
            r.out,
            vec![(1, vec![1300, 1307, 1302, 1327], Completion::Proctitle)]
        );
        // The EOE after PROCTITLE is expected, not spurious.
        r.feed(&line("EOE", 1, 0, ""), 0);
        r.feed(&line("USER_LOGIN", 2, 0, "pid=1"), 0);
        r.feed(&line("SYSCALL", 3, 0, "syscall=2"), 0);
        r.feed(&line("EOE", 3, 0, ""), 0);
        assert_eq!(r.out[1], (2, vec![1112], Completion::SingleRecord));
        assert_eq!(r.out[2], (3, vec![1300], Completion::Eoe));
        assert_eq!(r.c.stats().spurious, 0);
        assert_eq!(r.c.stats().duplicates, 0);
        assert_eq!(r.c.stats().events, 3);
    }

    /// The records of a listener joining and of one leaving as its process exits, as the kernel
    /// wrote them here (Linux 6.18): the join inside `bind`'s event, the farewell alone.
    #[test]
    fn a_listener_leaving_at_exit_is_an_event_by_itself() {
        let mut r = Run::new(CorrelatorConfig::default());
        let who = "pid=13967 uid=0 auid=4294967295 tty=(none) ses=4294967295 comm=\"bf\"";
        r.feed(
            &line(
                "EVENT_LISTENER",
                7,
                0,
                &format!("{who} exe=\"/tmp/sb/bf\" nl-mcgrp=1 op=connect res=1"),
            ),
            0,
        );
        r.feed(
            &line("SYSCALL", 7, 0, "arch=c000003e syscall=49 success=yes"),
            0,
        );
        r.feed(&line("SOCKADDR", 7, 0, "saddr=100000000000000001000000"), 0);
        assert!(r.out.is_empty(), "the join waits for the rest of its event");
        r.feed(
            &line("PROCTITLE", 7, 0, "proctitle=2F746D702F73622F6266"),
            0,
        );
        r.feed(&line("EOE", 7, 0, ""), 0);
        r.feed(
            &line(
                "EVENT_LISTENER",
                8,
                0,
                &format!("{who} exe=(null) nl-mcgrp=1 op=disconnect res=1"),
            ),
            0,
        );
        assert_eq!(
            r.out,
            vec![
                (7, vec![1335, 1300, 1306, 1327], Completion::Proctitle),
                (8, vec![1335], Completion::SingleRecord)
            ]
        );
        assert_eq!(r.c.inflight(), 0);
        assert_eq!(r.c.stats().timed_out, 0);
        assert_eq!(r.c.stats().spurious, 0);
    }

    #[test]
    fn no_head_of_line_blocking() {
        let mut r = Run::new(CorrelatorConfig::default());
        r.feed(&line("SYSCALL", 10, 0, "syscall=257"), 0); // never completes
        r.feed(&line("SYSCALL", 11, 0, "syscall=257"), 0);
        r.feed(&line("EOE", 11, 0, ""), 0);
        assert_eq!(r.out.len(), 1);
        assert_eq!(r.out[0].0, 11);
        // And 10 goes out on timeout.
        r.feed(&line("SYSCALL", 12, 0, "syscall=257"), 2500);
        assert_eq!(r.out[1], (10, vec![1300], Completion::Timeout));
        assert_eq!(r.c.stats().timed_out, 1);
    }

    #[test]
    fn interleaved_events_stay_apart() {
        let mut r = Run::new(CorrelatorConfig::default());
        r.feed(&line("SYSCALL", 1, 0, "a=1"), 0);
        r.feed(&line("SYSCALL", 2, 0, "a=2"), 0);
        r.feed(&line("PATH", 1, 0, "item=0"), 0);
        r.feed(&line("PATH", 2, 0, "item=0"), 0);
        r.feed(&line("EOE", 2, 0, ""), 0);
        r.feed(&line("EOE", 1, 0, ""), 0);
        assert_eq!(
            r.out,
            vec![
                (2, vec![1300, 1302], Completion::Eoe),
                (1, vec![1300, 1302], Completion::Eoe)
            ]
        );
    }

    #[test]
    fn bounded_inflight_evicts_oldest_and_counts() {
        let mut r = Run::new(CorrelatorConfig {
            max_inflight: 3,
            ..Default::default()
        });
        for s in 1..=5 {
            r.feed(&line("SYSCALL", s, 0, "a=1"), 0);
        }
        assert_eq!(r.c.inflight(), 3);
        assert_eq!(r.c.stats().evicted, 2);
        assert_eq!(r.out.iter().map(|o| o.0).collect::<Vec<_>>(), vec![1, 2]);
        assert!(r.out.iter().all(|o| o.2 == Completion::Evicted));
        r.flush();
        assert_eq!(r.out.len(), 5);
        assert_eq!(r.c.inflight(), 0);
    }

    #[test]
    fn gaps_tolerate_reordering_and_count_missing() {
        let mut r = Run::new(CorrelatorConfig {
            gap_window: 64,
            ..Default::default()
        });
        // Out of order within the window: no gap.
        for s in [1, 3, 2, 4] {
            r.feed(&line("USER_ACCT", s, 0, "a=1"), 0);
        }
        assert_eq!(r.c.stats().gaps, 0);
        // 5..=9 missing, then far ahead so they leave the window.
        r.feed(&line("USER_ACCT", 10, 0, "a=1"), 0);
        r.feed(&line("USER_ACCT", 200, 0, "a=1"), 0);
        // The window is now 137..=200: 5..=9 (5) and 11..=136 (126) left it unseen.
        assert_eq!(r.c.stats().gaps, 5 + 126);
        r.flush();
        // At the end, everything below 200 that never came: 137..=199.
        assert_eq!(r.c.stats().gaps, 5 + 126 + 63);
    }

    #[test]
    fn huge_jump_counts_without_iterating() {
        let mut g = GapTracker::new(64);
        g.observe(1);
        assert_eq!(g.observe(1_000_000_001), 1_000_000_001 - 1 - 64 + 1 - 1);
    }

    /// The serials that are gaps, one by one, as the tracker counted them before it
    /// worked a word at a time: what a window's worth of seen flags leaves unseen.
    fn reference_gaps(window: u64, serials: &[u64]) -> u64 {
        let mut seen = std::collections::BTreeSet::new();
        let (mut base, mut gaps) = (None::<u64>, 0);
        for &s in serials {
            let Some(b) = base else {
                base = Some(s);
                seen.insert(s);
                continue;
            };
            if s < b {
                continue;
            }
            if s >= b + window {
                let nb = s + 1 - window;
                gaps += (b..nb).filter(|x| !seen.contains(x)).count() as u64;
                seen.retain(|&x| x >= nb);
                base = Some(nb);
            }
            seen.insert(s);
        }
        gaps
    }

    proptest::proptest! {
        #[test]
        fn word_wise_gaps_agree_with_one_by_one(
            steps in proptest::collection::vec(0u64..300, 1..200),
        ) {
            // Serials that mostly climb, with jumps within and past the window, and some
            // that come late.
            let mut serials = Vec::new();
            let mut s = 1000u64;
            for (i, d) in steps.iter().enumerate() {
                s = if i % 7 == 3 { s.saturating_sub(d % 50) } else { s + d };
                serials.push(s);
            }
            let mut g = GapTracker::new(128);
            let counted: u64 = serials.iter().map(|&s| g.observe(s)).sum();
            proptest::prop_assert_eq!(counted, reference_gaps(128, &serials));
        }
    }

    #[test]
    fn serial_restart_is_not_a_gap() {
        let mut g = GapTracker::new(64);
        for s in 1_000_000..1_000_010 {
            g.observe(s);
        }
        assert_eq!(g.observe(5), 0);
        assert_eq!(g.observe(6), 0);
        assert_eq!(g.finish(), 0);
    }

    #[test]
    fn duplicates_and_spurious_are_counted() {
        let mut r = Run::new(CorrelatorConfig::default());
        r.feed(&line("SYSCALL", 1, 0, "a=1"), 0);
        r.feed(&line("SYSCALL", 1, 0, "a=1"), 0); // repeated SYSCALL
        r.feed(&line("EOE", 1, 0, ""), 0);
        r.feed(&line("PATH", 1, 0, "item=0"), 0); // after completion
        r.feed(&line("EOE", 7, 0, ""), 0); // event never seen
        assert_eq!(r.c.stats().duplicates, 2);
        assert_eq!(r.c.stats().spurious, 1);
        assert_eq!(r.out.len(), 1);
    }

    #[test]
    fn login_inside_a_syscall_event_is_not_a_duplicate() {
        // The kernel writes LOGIN (1006) with the serial of the write() to loginuid.
        let mut r = Run::new(CorrelatorConfig::default());
        r.feed(&line("LOGIN", 5, 0, "pid=1 auid=1001 ses=10 res=1"), 0);
        r.feed(&line("SYSCALL", 5, 0, "syscall=1"), 0);
        r.feed(&line("PROCTITLE", 5, 0, "proctitle=6C73"), 0);
        r.feed(&line("EOE", 5, 0, ""), 0);
        assert_eq!(
            r.out,
            vec![
                (5, vec![1006], Completion::SingleRecord),
                (5, vec![1300, 1327], Completion::Proctitle)
            ]
        );
        assert_eq!((r.c.stats().duplicates, r.c.stats().spurious), (0, 0));
    }

    #[test]
    fn same_serial_other_time_is_another_event() {
        let mut r = Run::new(CorrelatorConfig::default());
        r.feed(&line("SYSCALL", 1, 0, "a=1"), 0);
        r.feed(&line("EOE", 1, 0, ""), 0);
        r.feed(&line("SYSCALL", 1, 5, "a=1"), 0);
        r.feed(&line("EOE", 1, 5, ""), 0);
        assert_eq!(r.out.len(), 2);
        assert_eq!(r.c.stats().duplicates, 0);
    }

    #[test]
    fn order_queue_stays_bounded_behind_a_stuck_head() {
        let mut r = Run::new(CorrelatorConfig {
            max_inflight: 64,
            timeout_ms: u64::MAX,
            ..Default::default()
        });
        r.feed(&line("SYSCALL", 1, 0, "a=1"), 0); // stuck head
        for s in 2..100_000u64 {
            r.feed(&line("SYSCALL", s, 0, "a=1"), 0);
            r.feed(&line("EOE", s, 0, ""), 0);
        }
        assert!(
            r.c.order.len() <= 4 * 64 + 1,
            "order grew to {}",
            r.c.order.len()
        );
        assert_eq!(r.c.inflight(), 1);
    }
}

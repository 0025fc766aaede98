//! daemon::persist: keeps the new_terms store (`new_terms_store`) in step with the worker's
//! detector: loaded at start, written at once when a term is added, every
//! [`REFRESH_EVERY`] when terms were only seen again, and at exit. A failed write is counted
//! (`new_terms_write_errors`), reported once, and tried again.
//!
//! `worker: Detector ──terms──► [persist] ──► state_dir/new_terms.bin`

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

use wwatchd_core::detector::Detector;

use super::stats::Stats;
use crate::new_terms_store::{NewTermsStore, REFRESH_EVERY};
use crate::syslog::Severity;

/// Where a diagnostic goes (the daemon's `Diag`).
pub(super) type Warn = Box<dyn Fn(Severity, String) + Send>;

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// The store of the worker's detector, when a rule needs one.
pub(crate) struct Persist {
    dir: PathBuf,
    store: Option<NewTermsStore>,
    warn: Warn,
    last_write: Instant,
    /// Changes not yet written.
    pending: bool,
    /// The last write failed (reported once until one succeeds).
    failing: bool,
}

impl Persist {
    pub(super) fn new(dir: PathBuf, store: Option<NewTermsStore>, warn: Warn) -> Persist {
        Persist {
            dir,
            store,
            warn,
            last_write: Instant::now(),
            pending: false,
            failing: false,
        }
    }

    /// No store (tests, and rule sets without a new_terms rule).
    #[cfg(test)]
    pub(super) fn none() -> Persist {
        Persist::new(PathBuf::new(), None, Box::new(|_, _| {}))
    }

    /// Loads the stored terms of the detector's new_terms rules, reporting damage.
    pub(super) fn start(mut self, det: &mut Detector) -> Persist {
        self.load(det);
        self
    }

    fn load(&mut self, det: &mut Detector) {
        let Some(store) = &self.store else { return };
        let keep: Vec<(String, u64)> = det
            .rules()
            .iter()
            .filter_map(|r| {
                let s = r.new_terms.as_ref()?;
                Some((s.store_key(&r.meta.rule_id), s.window_ms))
            })
            .collect();
        let r = store.load(det.new_terms_mut(), &keep, wall_ms());
        for w in r.warnings {
            (self.warn)(Severity::Warning, w);
        }
        (self.warn)(
            Severity::Notice,
            format!(
                "new_terms: {} terms loaded from {} ({} expired; {} sets of rules not loaded \
                 dropped)",
                r.loaded,
                store.path().display(),
                r.expired,
                r.dropped_sets
            ),
        );
        det.new_terms_mut().take_dirty();
    }

    /// A reload may bring the first new_terms rule: the store is opened then.
    pub(super) fn after_reload(&mut self, det: &mut Detector) {
        let needed = det.rules().iter().any(|r| r.new_terms.is_some());
        if needed && self.store.is_none() {
            match NewTermsStore::open(&self.dir) {
                Ok(s) => {
                    self.store = Some(s);
                    self.load(det);
                }
                Err(e) => (self.warn)(
                    Severity::Warning,
                    format!(
                        "new_terms: {e}; the terms are kept in memory only, and a restart \
                         forgets them"
                    ),
                ),
            }
        }
        // The sets of rules gone are dropped from the file too.
        self.pending = true;
    }

    /// Writes the store when it must be (`exit`: whatever changed).
    pub(super) fn after_batch(&mut self, det: &mut Detector, stats: &Stats, exit: bool) {
        let Some(store) = &self.store else { return };
        let d = det.new_terms_mut().take_dirty();
        self.pending |= d.touched || d.added;
        let due = d.added || exit || self.last_write.elapsed() >= REFRESH_EVERY;
        if !(self.pending && due) {
            return;
        }
        self.last_write = Instant::now();
        det.new_terms_mut().expire(wall_ms());
        det.new_terms_mut().take_dirty();
        match store.save(det.new_terms()) {
            Ok(()) => {
                self.pending = false;
                if std::mem::replace(&mut self.failing, false) {
                    (self.warn)(
                        Severity::Notice,
                        format!("new_terms: {} is written again", store.path().display()),
                    );
                }
            }
            Err(e) => {
                stats
                    .daemon
                    .new_terms_write_errors
                    .fetch_add(1, Ordering::Relaxed);
                if !std::mem::replace(&mut self.failing, true) {
                    (self.warn)(
                        Severity::Warning,
                        format!(
                            "new_terms: {e}; the terms stay in memory and the write is tried \
                             again every {} s; a crash before then forgets the newest",
                            REFRESH_EVERY.as_secs()
                        ),
                    );
                }
            }
        }
    }
}

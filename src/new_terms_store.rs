//! new_terms_store: the new_terms rules' terms on disk, so a restart does not make every
//! known term new again (`… → rule → [new terms ⇄ state_dir/new_terms.bin] → policy → …`).
//!
//! One file, `new_terms.bin` in `daemon.state_dir` (default `/var/lib/wwatchd`), in the format
//! `wwatchd_core::new_terms::encode` writes: every set of terms with its window, and a SHA-256
//! of the whole at the end. It is replaced whole, never edited in place:
//!
//! ```text
//!  encode ─► new_terms.bin.tmp (O_EXCL, 0600) ─► write ─► fsync ─► rename ─► fsync(dir)
//! ```
//!
//! so after a crash the file is the last complete write or the one before it, never a mix.
//! A file that fails its checksum anyway (a disk fault, a hand edit) is renamed
//! `new_terms.bin.bad` for inspection, reported, and counted as lost (`new_terms_lost`): its
//! terms may alert again, which is the safe side of a loss. On load, terms older than their
//! rule's window are dropped, and so are the sets of rules no longer loaded.
//!
//! When is it written: at once when a term was added (a crash would otherwise alert on it
//! again), at most every [`REFRESH_EVERY`] when terms were only seen again (their refreshed
//! times; a crash costs at most that much of their window), and at shutdown. Writing the
//! whole table costs about 24 bytes a term (2.4 MB at the 100 000-term cap per rule); new
//! terms are as rare as the alerts they make.
//!
//! The directory is checked like the spool's (`trust::open_dir`: no symlink, not group- or
//! world-writable, owned by the user wwatchd runs as), and so is the file: whoever could
//! write it could make wwatchd stay silent about a tool's first use.

#![forbid(unsafe_code)]

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use wwatchd_core::new_terms::{self, NewTerms};

use crate::trust;

/// The store's file name in the state directory.
pub const FILE_NAME: &str = "new_terms.bin";
/// Refreshed times (no new term) are written at most this often.
pub const REFRESH_EVERY: Duration = Duration::from_secs(30);

/// A state directory that cannot be used, or a store that cannot be written.
#[derive(Debug)]
pub struct StoreError {
    pub path: PathBuf,
    pub what: String,
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.what)
    }
}

impl std::error::Error for StoreError {}

/// What loading found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Terms loaded.
    pub loaded: usize,
    /// Terms dropped because their window had passed.
    pub expired: usize,
    /// Sets dropped because their rule is not loaded (or its fields changed).
    pub dropped_sets: usize,
    /// Damage, each a sentence naming the file.
    pub warnings: Vec<String>,
}

/// The store in one state directory.
#[derive(Debug)]
pub struct NewTermsStore {
    dir: PathBuf,
}

impl NewTermsStore {
    /// Opens (creating it 0700 if missing) and checks the state directory.
    pub fn open(dir: &Path) -> Result<NewTermsStore, StoreError> {
        trust::private_dir(dir, "state directory", "set daemon.state_dir").map_err(|e| {
            StoreError {
                path: e.path,
                what: e.why,
            }
        })?;
        Ok(NewTermsStore {
            dir: dir.to_owned(),
        })
    }

    /// The store's file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// Loads the stored terms of the sets `keep` names (store key, window) into `nt`,
    /// dropping those older than the window at `now_ms`. A missing file is an empty store;
    /// a damaged one is renamed aside, reported and counted as lost, never a panic or a
    /// refusal to start.
    pub fn load(&self, nt: &mut NewTerms, keep: &[(String, u64)], now_ms: u64) -> LoadReport {
        let mut report = LoadReport::default();
        let path = self.path();
        let bytes = match read_checked(&path) {
            Ok(Some(b)) => b,
            Ok(None) => return report,
            Err(why) => {
                report.warnings.push(format!(
                    "new_terms store {}: {why}; its terms are lost and may alert again",
                    path.display()
                ));
                nt.note_lost(1);
                return report;
            }
        };
        match new_terms::decode(&bytes) {
            Ok(sets) => {
                for (key, _stored_window, entries) in sets {
                    match keep.iter().find(|(k, _)| *k == key) {
                        Some((_, w)) => {
                            report.expired += nt.load_set(&key, *w, &entries, now_ms);
                            report.loaded += entries.len();
                        }
                        None => {
                            report.dropped_sets += 1;
                        }
                    }
                }
                report.loaded -= report.expired;
            }
            Err(e) => {
                let bad = path.with_extension("bin.bad");
                let done = match fs::rename(&path, &bad) {
                    Ok(()) => format!("renamed to {} for inspection", bad.display()),
                    Err(e) => format!("could not be renamed aside ({e})"),
                };
                report.warnings.push(format!(
                    "new_terms store {}: {e}; {done}; its terms are lost and may alert again",
                    path.display()
                ));
                nt.note_lost(1);
            }
        }
        report
    }

    /// Writes every term of `nt`: a temporary file, fsynced, renamed over the store, and
    /// the directory fsynced.
    pub fn save(&self, nt: &NewTerms) -> Result<(), StoreError> {
        let path = self.path();
        let tmp = self.dir.join(format!("{FILE_NAME}.tmp"));
        let err = |p: &Path, what: &str, e: io::Error| StoreError {
            path: p.to_owned(),
            what: format!("cannot {what}: {e}"),
        };
        // A temporary file left by a crash is ours and incomplete.
        match fs::remove_file(&tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(err(&tmp, "remove the old temporary file", e));
            }
            _ => {}
        }
        let bytes = new_terms::encode(nt);
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&tmp)
            .map_err(|e| err(&tmp, "create", e))?;
        f.write_all(&bytes).map_err(|e| err(&tmp, "write", e))?;
        f.sync_all().map_err(|e| err(&tmp, "fsync", e))?;
        drop(f);
        fs::rename(&tmp, &path).map_err(|e| err(&path, "rename the new store into place", e))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| err(&self.dir, "fsync the state directory", e))?;
        Ok(())
    }
}

/// Reads the store file, checked like every file that steers wwatchd: not a symlink, a
/// regular file, owned by root or us, writable by nobody else. `None` when it does not exist.
fn read_checked(path: &Path) -> Result<Option<Vec<u8>>, String> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path);
    let mut f = match f {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => {
            return Err("is a symlink, which wwatchd does not follow; remove it".into());
        }
        Err(e) => return Err(format!("cannot be opened: {e}")),
    };
    let md = f
        .metadata()
        .map_err(|e| format!("cannot be inspected: {e}"))?;
    if !md.is_file() {
        return Err("is not a regular file; remove it".into());
    }
    let me = nix::unistd::geteuid().as_raw();
    if md.uid() != 0 && md.uid() != me {
        return Err(format!(
            "is owned by uid {}, not by root or uid {me} that wwatchd runs as; remove it",
            md.uid()
        ));
    }
    if md.mode() & 0o022 != 0 {
        return Err(format!(
            "is writable by group or others (mode {:o}); remove it",
            md.mode() & 0o7777
        ));
    }
    let mut b = Vec::new();
    f.read_to_end(&mut b)
        .map_err(|e| format!("cannot be read: {e}"))?;
    Ok(Some(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use wwatchd_core::file_event::FileSchema;
    use wwatchd_core::new_terms::{Decision, NewTermsSpec};
    use wwatchd_core::rule::{FieldId, FieldSource, FieldValue, Schema};

    const DAY: u64 = 86_400_000;

    fn base() -> tempfile::TempDir {
        // Not under /tmp: a sticky, world-writable parent is refused by design.
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/new-terms-tests");
        fs::create_dir_all(&root).unwrap();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
        tempfile::tempdir_in(&root).unwrap()
    }

    struct Exe(&'static str);

    impl FieldSource for Exe {
        fn field(&self, _id: FieldId) -> Option<FieldValue<'_>> {
            Some(FieldValue::Str(self.0))
        }
    }

    fn spec() -> NewTermsSpec {
        let (id, _) = FileSchema.lookup("process.executable").unwrap();
        NewTermsSpec {
            fields: vec![("process.executable".into(), id)],
            window_text: "now-5d".into(),
            window_ms: 5 * DAY,
        }
    }

    fn keep() -> Vec<(String, u64)> {
        vec![(spec().store_key("r"), 5 * DAY)]
    }

    /// Saved terms survive a "restart" (a fresh table loaded from the file), expire by the
    /// window on load, and the sets of rules no longer loaded are dropped.
    #[test]
    fn terms_survive_a_restart_and_expire_on_load() {
        let d = base();
        let dir = d.path().join("state");
        let store = NewTermsStore::open(&dir).unwrap();
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let mut nt = NewTerms::default();
        assert_eq!(
            nt.decide("r", &spec(), &Exe("/usr/bin/scp"), 10 * DAY),
            Decision::New
        );
        assert_eq!(
            nt.decide("gone", &spec(), &Exe("/usr/bin/scp"), 10 * DAY),
            Decision::New
        );
        store.save(&nt).unwrap();
        assert_eq!(
            fs::metadata(store.path()).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(!dir.join("new_terms.bin.tmp").exists());

        let mut back = NewTerms::default();
        let r = store.load(&mut back, &keep(), 11 * DAY);
        assert_eq!((r.loaded, r.expired, r.dropped_sets), (1, 0, 1), "{r:?}");
        assert!(r.warnings.is_empty());
        assert_eq!(
            back.decide("r", &spec(), &Exe("/usr/bin/scp"), 11 * DAY),
            Decision::Known
        );

        let mut late = NewTerms::default();
        let r = store.load(&mut late, &keep(), 16 * DAY);
        assert_eq!((r.loaded, r.expired), (0, 1), "{r:?}");
        assert_eq!(
            late.decide("r", &spec(), &Exe("/usr/bin/scp"), 16 * DAY),
            Decision::New
        );
        // No file yet is an empty store, without a warning.
        let empty = NewTermsStore::open(&d.path().join("other")).unwrap();
        let r = empty.load(&mut NewTerms::default(), &keep(), DAY);
        assert_eq!(r, LoadReport::default());
    }

    /// A torn or damaged file is renamed aside, reported and counted, never a panic; the
    /// next save writes a good one.
    #[test]
    fn a_damaged_store_is_reported_counted_and_set_aside() {
        let d = base();
        let store = NewTermsStore::open(d.path()).unwrap();
        let mut nt = NewTerms::default();
        nt.decide("r", &spec(), &Exe("/usr/bin/scp"), 10 * DAY);
        store.save(&nt).unwrap();
        let good = fs::read(store.path()).unwrap();
        fs::write(store.path(), &good[..good.len() - 7]).unwrap();
        let mut back = NewTerms::default();
        let r = store.load(&mut back, &keep(), 10 * DAY);
        assert_eq!(r.warnings.len(), 1, "{r:?}");
        assert!(r.warnings[0].contains("checksum"), "{r:?}");
        assert!(r.warnings[0].contains("new_terms.bin.bad"), "{r:?}");
        assert_eq!(back.stats().lost, 1);
        assert!(d.path().join("new_terms.bin.bad").exists());
        assert!(!store.path().exists());
        store.save(&nt).unwrap();
        let mut again = NewTerms::default();
        assert!(
            store
                .load(&mut again, &keep(), 10 * DAY)
                .warnings
                .is_empty()
        );
        assert_eq!(again.len(), 1);
    }

    /// The file is trusted only as the spool is: a group-writable one is refused (and its
    /// terms counted as lost), a symlink is not followed.
    #[test]
    fn an_untrusted_store_file_is_refused() {
        let d = base();
        let store = NewTermsStore::open(d.path()).unwrap();
        store.save(&NewTerms::default()).unwrap();
        fs::set_permissions(store.path(), fs::Permissions::from_mode(0o660)).unwrap();
        let mut nt = NewTerms::default();
        let r = store.load(&mut nt, &keep(), DAY);
        assert!(
            r.warnings[0].contains("writable by group or others"),
            "{r:?}"
        );
        assert_eq!(nt.stats().lost, 1);
        fs::remove_file(store.path()).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", store.path()).unwrap();
        let r = store.load(&mut NewTerms::default(), &keep(), DAY);
        assert!(r.warnings[0].contains("symlink"), "{r:?}");
        // A world-writable state directory is refused outright.
        let ww = d.path().join("ww");
        fs::create_dir(&ww).unwrap();
        fs::set_permissions(&ww, fs::Permissions::from_mode(0o777)).unwrap();
        let e = NewTermsStore::open(&ww).err().map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("ww")));
        assert!(NewTermsStore::open(Path::new("relative")).is_err());
    }
}

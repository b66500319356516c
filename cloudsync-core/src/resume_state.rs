//! The record of unfinished upload sessions ([`SessionStore`]), so that an upload to a cloud
//! backend that was cut off continues from the bytes the server holds, in a retry of the same
//! run and in a later run.
//!
//! Cloud backends cannot keep a partial file under a name; they keep an upload *session*
//! (see [`Capabilities::resume_sessions`](crate::Capabilities::resume_sessions)). The store maps
//! (remote, destination path) to the session's [`SessionToken`], the fingerprint key of the
//! source it was opened for ([`part_key`](crate::part_key)) and when it was opened. It lives in
//! memory by default; [`SessionStore::open`] keeps it in a JSON file (mode 0600, written
//! atomically through a temporary file and a rename) so that a later process finds it.
//!
//! The file is bounded: records older than [`MAX_AGE`] are dropped (servers expire their
//! sessions after about a week) and at most [`MAX_RECORDS`] are kept, the newest. A file that
//! cannot be read or parsed is treated as empty, with a warning: losing it only costs a restart
//! from byte 0. Tokens never appear in logs, `Debug` output or errors.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::path::RemotePath;

/// Records older than this are dropped (Drive and Cloud Storage expire a session after a week).
pub const MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// At most this many records are kept (the newest).
pub const MAX_RECORDS: usize = 1000;

/// Largest state file read; a bigger one is treated as corrupt.
const MAX_FILE: u64 = 4 * 1024 * 1024;

/// An upload session's token as a backend returned it from
/// [`Remote::session_start`](crate::Remote::session_start): opaque to the engine, parsed back
/// by the backend. It may hold a session URI or id, never a credential; still, a session URI
/// lets whoever holds it upload into the session, so `Debug` and `Display` show `***`.
///
/// ```
/// use cloudsync_core::SessionToken;
/// let t = SessionToken::new("https://upload.example/session/xyz");
/// assert_eq!(t.expose(), "https://upload.example/session/xyz");
/// assert_eq!(format!("{t:?} {t}"), "SessionToken(***) ***");
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionToken(String);

impl SessionToken {
    /// Wraps a token.
    pub fn new(value: impl Into<String>) -> Self {
        SessionToken(value.into())
    }

    /// The token itself, for the backend that parses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(***)")
    }
}

impl fmt::Display for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(crate::secret::REDACTED)
    }
}

/// One unfinished upload session.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The fingerprint key of the source the session was opened for
    /// ([`part_key`](crate::part_key)); another key means the source changed.
    pub key: String,
    /// The session.
    pub token: SessionToken,
    /// When the session was opened, in seconds since the Unix epoch.
    pub created: u64,
}

impl fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionRecord")
            .field("key", &self.key)
            .field("token", &self.token)
            .field("created", &self.created)
            .finish()
    }
}

/// A record in the file, with its place.
#[derive(Serialize, Deserialize)]
struct Stored {
    remote: String,
    path: String,
    #[serde(flatten)]
    record: SessionRecord,
}

/// The file's shape.
#[derive(Serialize, Deserialize, Default)]
struct FileData {
    version: u32,
    uploads: Vec<Stored>,
}

type Key = (String, String);

#[derive(Default)]
struct Inner {
    file: Option<PathBuf>,
    records: BTreeMap<Key, SessionRecord>,
}

/// Unfinished upload sessions keyed by remote ([`Remote::describe`](crate::Remote::describe))
/// and destination path; cheap to clone (clones share the records).
///
/// ```
/// use cloudsync_core::resume_state::SessionStore;
/// use cloudsync_core::{RemotePath, SessionToken};
/// let store = SessionStore::memory();
/// let path = RemotePath::new("big.iso")?;
/// store.put("gcs://bucket", &path, "0123abcd", SessionToken::new("opaque"));
/// assert_eq!(store.get("gcs://bucket", &path).map(|r| r.key), Some("0123abcd".to_owned()));
/// store.remove("gcs://bucket", &path);
/// assert!(store.get("gcs://bucket", &path).is_none());
/// # Ok::<(), cloudsync_core::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct SessionStore {
    inner: Arc<Mutex<Inner>>,
}

impl fmt::Debug for SessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = self.lock();
        f.debug_struct("SessionStore")
            .field("file", &g.file)
            .field("records", &g.records.len())
            .finish()
    }
}

impl SessionStore {
    /// A store in memory only: a retry within the run resumes, a later run does not.
    pub fn memory() -> Self {
        Self::default()
    }

    /// A store kept in the JSON file `file` (created when first written, with its parent
    /// directories). Records are read now; an unreadable or corrupt file counts as empty
    /// (with a warning) and is replaced on the next write.
    pub fn open(file: impl Into<PathBuf>) -> Self {
        let file = file.into();
        let records = load(&file);
        SessionStore {
            inner: Arc::new(Mutex::new(Inner {
                file: Some(file),
                records,
            })),
        }
    }

    /// The file of the example CLI: `$XDG_CACHE_HOME/cloudsync/uploads.json`, else
    /// `$HOME/.cache/cloudsync/uploads.json`; `None` when neither variable is set.
    pub fn default_file() -> Option<PathBuf> {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|v| !v.is_empty())
                    .map(|h| PathBuf::from(h).join(".cache"))
            })?;
        Some(base.join("cloudsync").join("uploads.json"))
    }

    /// The file this store is kept in, if any.
    pub fn file(&self) -> Option<PathBuf> {
        self.lock().file.clone()
    }

    /// The record of an unfinished session to `path` on `remote`, if one is kept and not too
    /// old.
    pub fn get(&self, remote: &str, path: &RemotePath) -> Option<SessionRecord> {
        let g = self.lock();
        g.records
            .get(&(remote.to_owned(), path.as_str().to_owned()))
            .filter(|r| !expired(r, now()))
            .cloned()
    }

    /// Records the session `token` opened for `path` on `remote` for a source with the
    /// fingerprint `key`, replacing any record of the same place. Failing to save the file is
    /// logged and otherwise ignored (the record stays in memory).
    pub fn put(&self, remote: &str, path: &RemotePath, key: &str, token: SessionToken) {
        let record = SessionRecord {
            key: key.to_owned(),
            token,
            created: now(),
        };
        let k = (remote.to_owned(), path.as_str().to_owned());
        self.change(move |m| {
            m.insert(k, record);
        });
    }

    /// Forgets the session to `path` on `remote` (finished or abandoned).
    pub fn remove(&self, remote: &str, path: &RemotePath) {
        let k = (remote.to_owned(), path.as_str().to_owned());
        let mut present = self.lock().records.contains_key(&k);
        if !present && self.lock().file.is_some() {
            // Another process may have recorded it since this one read the file.
            present = true;
        }
        if present {
            self.change(move |m| {
                m.remove(&k);
            });
        }
    }

    /// Number of records kept.
    pub fn len(&self) -> usize {
        self.lock().records.len()
    }

    /// Whether no record is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies `f` to the records — re-read from the file first, so that records other
    /// processes wrote since are kept — prunes them and saves the file.
    fn change(&self, f: impl FnOnce(&mut BTreeMap<Key, SessionRecord>)) {
        let mut g = self.lock();
        if let Some(file) = g.file.clone() {
            if file.exists() {
                g.records = load(&file);
            }
        }
        f(&mut g.records);
        prune(&mut g.records, now());
        if let Some(file) = g.file.clone() {
            if let Err(e) = save(&file, &g.records) {
                tracing::warn!(file = %file.display(), error = %e, "cannot save the upload session records");
            }
        }
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn expired(r: &SessionRecord, now: u64) -> bool {
    now.saturating_sub(r.created) > MAX_AGE.as_secs() || r.created > now + 3600
}

/// Drops records too old (or from the future) and all but the newest [`MAX_RECORDS`].
fn prune(records: &mut BTreeMap<Key, SessionRecord>, now: u64) {
    records.retain(|_, r| !expired(r, now));
    if records.len() > MAX_RECORDS {
        let mut keys: Vec<(u64, Key)> = records
            .iter()
            .map(|(k, r)| (r.created, k.clone()))
            .collect();
        // Newest first; equal ages in key order.
        keys.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        let keep: std::collections::BTreeSet<Key> =
            keys.into_iter().take(MAX_RECORDS).map(|(_, k)| k).collect();
        records.retain(|k, _| keep.contains(k));
    }
}

/// Reads the records of `file`; nothing (with a warning) when it is missing, unreadable or
/// not ours.
fn load(file: &Path) -> BTreeMap<Key, SessionRecord> {
    let read = || -> Result<Option<FileData>> {
        let meta = match std::fs::metadata(file) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if meta.len() > MAX_FILE {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("{} bytes, more than {MAX_FILE}", meta.len()),
            ));
        }
        let text = std::fs::read(file)?;
        let data: FileData = serde_json::from_slice(&text)
            .map_err(|e| Error::new(ErrorKind::InvalidInput, format!("not a record file: {e}")))?;
        Ok(Some(data))
    };
    let data = match read() {
        Ok(Some(d)) => d,
        Ok(None) => return BTreeMap::new(),
        Err(e) => {
            tracing::warn!(file = %file.display(), error = %e, "ignoring an unreadable upload session record file");
            return BTreeMap::new();
        }
    };
    let mut records = BTreeMap::new();
    for s in data.uploads {
        // Paths are validated like any other: a hand-edited file cannot name `..`.
        if RemotePath::new(&s.path).is_ok() {
            records.insert((s.remote, s.path), s.record);
        }
    }
    prune(&mut records, now());
    records
}

/// Writes `records` to `file` atomically: a temporary file (mode 0600) in the same
/// directory, synced, then renamed over it.
fn save(file: &Path, records: &BTreeMap<Key, SessionRecord>) -> Result<()> {
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    create_private_dir(dir)?;
    let data = FileData {
        version: 1,
        uploads: records
            .iter()
            .map(|((remote, path), record)| Stored {
                remote: remote.clone(),
                path: path.clone(),
                record: record.clone(),
            })
            .collect(),
    };
    let text = serde_json::to_vec_pretty(&data)
        .map_err(|e| Error::new(ErrorKind::Unexpected, e.to_string()))?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "uploads.json".to_owned());
    let tmp = dir.join(format!(".{name}.tmp-{:08x}", fastrand::u32(..)));
    let written = (|| -> std::io::Result<()> {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, file)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.into());
    }
    Ok(())
}

fn create_private_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        b.mode(0o700);
    }
    b.create(dir)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> RemotePath {
        RemotePath::new(s).expect("path")
    }

    #[test]
    fn records_survive_a_new_store_and_are_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("sub/uploads.json");
        let a = SessionStore::open(&file);
        a.put(
            "gcs://b",
            &p("x/big.bin"),
            "k1",
            SessionToken::new("sess-uri-1"),
        );
        let b = SessionStore::open(&file);
        let r = b.get("gcs://b", &p("x/big.bin")).expect("record kept");
        assert_eq!((r.key.as_str(), r.token.expose()), ("k1", "sess-uri-1"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&file).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
        }
        b.remove("gcs://b", &p("x/big.bin"));
        assert!(
            SessionStore::open(&file)
                .get("gcs://b", &p("x/big.bin"))
                .is_none()
        );
        // No temporary file is left next to it.
        let names: Vec<String> = std::fs::read_dir(dir.path().join("sub"))
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["uploads.json"]);
    }

    #[test]
    fn a_corrupt_file_counts_as_empty_and_is_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("uploads.json");
        std::fs::write(&file, b"{ not json").expect("write");
        let s = SessionStore::open(&file);
        assert!(s.is_empty());
        s.put("r", &p("a"), "k", SessionToken::new("t"));
        assert_eq!(SessionStore::open(&file).len(), 1);
        // A record naming a path outside the root is ignored.
        std::fs::write(
            &file,
            br#"{"version":1,"uploads":[{"remote":"r","path":"../etc","key":"k","token":"t","created":99999999999}]}"#,
        )
        .expect("write");
        assert!(SessionStore::open(&file).is_empty());
    }

    #[test]
    fn old_records_are_dropped_and_the_count_is_capped() {
        let mut m = BTreeMap::new();
        let t = 10_000_000u64;
        m.insert(
            ("r".to_owned(), "old".to_owned()),
            SessionRecord {
                key: "k".into(),
                token: SessionToken::new("t"),
                created: t - MAX_AGE.as_secs() - 1,
            },
        );
        for i in 0..(MAX_RECORDS + 5) as u64 {
            m.insert(
                ("r".to_owned(), format!("f{i}")),
                SessionRecord {
                    key: "k".into(),
                    token: SessionToken::new("t"),
                    created: t - 1000 + i,
                },
            );
        }
        prune(&mut m, t);
        assert_eq!(m.len(), MAX_RECORDS);
        assert!(!m.contains_key(&("r".to_owned(), "old".to_owned())));
        // The oldest five went.
        for i in 0..5 {
            assert!(
                !m.contains_key(&("r".to_owned(), format!("f{i}"))),
                "f{i} kept"
            );
        }
        assert!(m.contains_key(&("r".to_owned(), format!("f{}", MAX_RECORDS + 4))));
    }

    #[test]
    fn tokens_do_not_show_in_debug() {
        let s = SessionStore::memory();
        s.put("r", &p("a"), "k", SessionToken::new("secret-session-uri"));
        let rec = s.get("r", &p("a")).expect("record");
        let shown = format!("{s:?} {rec:?} {}", rec.token);
        assert!(!shown.contains("secret-session-uri"), "{shown}");
    }
}

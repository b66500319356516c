//! What operations tell the application: progress [`Event`]s while they run, and a serializable
//! [`Summary`] or [`CheckReport`] when they finish.

mod saved;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{Error, ErrorKind};
use crate::path::RemotePath;
use crate::plan::{Action, Reason};

pub(crate) use saved::secs;
pub use saved::{CompareSpec, REPORT_FORMAT, ReportCounts, ResyncOutcome, ResyncSkip, SavedReport};

/// `2026-11-23 14:05:00Z`.
pub(crate) fn stamp(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `2026-11-23T14-05-00Z`: a time that is a valid file name everywhere and sorts.
pub(crate) fn file_stamp(t: OffsetDateTime) -> String {
    stamp(t).replace(' ', "T").replace(':', "-")
}

/// A progress event. Applications receive them through an [`EventSink`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// A decision was made about one path (emitted as the march finds work).
    Planned {
        /// The path.
        path: RemotePath,
        /// What will be done.
        action: Action,
        /// Why.
        reason: Reason,
        /// Bytes to transfer (0 for non-transfers).
        bytes: u64,
    },
    /// A file transfer began.
    TransferStarted {
        /// The path.
        path: RemotePath,
        /// Its size.
        size: u64,
    },
    /// A transfer continues an interrupted one: `offset` bytes were already at the
    /// destination, verified, and are not sent again.
    Resumed {
        /// The path.
        path: RemotePath,
        /// Bytes kept.
        offset: u64,
    },
    /// Bytes moved so far for one file.
    Progress {
        /// The path.
        path: RemotePath,
        /// Bytes done.
        bytes: u64,
        /// Total size.
        size: u64,
    },
    /// A transfer (or modtime update) finished and was verified.
    TransferDone {
        /// The path.
        path: RemotePath,
        /// Bytes written.
        bytes: u64,
        /// What was done.
        action: Action,
    },
    /// A file was left as it is.
    Skipped {
        /// The path.
        path: RemotePath,
        /// Why.
        reason: Reason,
    },
    /// A file or directory was deleted (or moved to the backup directory).
    Deleted {
        /// The path.
        path: RemotePath,
        /// Whether it was a directory.
        dir: bool,
    },
    /// Something failed for one path (it may still be retried).
    Failed {
        /// The path.
        path: RemotePath,
        /// What went wrong.
        error: String,
        /// Whether it will be retried.
        will_retry: bool,
    },
    /// A notice worth showing once (fallbacks, skipped symlinks, ...).
    Notice {
        /// The text.
        message: String,
    },
}

/// Receives [`Event`]s; must be cheap and must not block.
///
/// ```
/// use std::sync::Arc;
/// use cloudsync_core::{Event, EventSink};
/// let sink: EventSink = Arc::new(|e: &Event| println!("{e:?}"));
/// # let _ = sink;
/// ```
pub type EventSink = Arc<dyn Fn(&Event) + Send + Sync>;

/// One failure, as recorded in a summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorRecord {
    /// The path concerned (`""` for the whole operation).
    pub path: RemotePath,
    /// The kind of failure.
    pub kind: ErrorKind,
    /// The full message, with its causes.
    pub message: String,
    /// Whether the failure was temporary (a later run may succeed).
    pub temporary: bool,
}

impl ErrorRecord {
    /// Records `error` for `path`.
    pub fn new(path: RemotePath, error: &Error) -> Self {
        ErrorRecord {
            path,
            kind: error.kind(),
            message: error.chain(),
            temporary: error.is_retryable(),
        }
    }
}

impl fmt::Display for ErrorRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_root() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// The result of a copy, sync, move, delete or purge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Source description (empty for single-remote operations).
    pub source: String,
    /// Destination description.
    pub destination: String,
    /// When the operation started.
    #[serde(with = "time::serde::rfc3339")]
    pub started: OffsetDateTime,
    /// How long it took.
    #[serde(with = "duration_secs")]
    pub elapsed: Duration,
    /// Whether nothing was changed (dry run).
    pub dry_run: bool,
    /// Files compared (present on both sides).
    pub checked: u64,
    /// Files transferred (new or replaced).
    pub transferred: u64,
    /// Bytes transferred (the sizes of the files transferred).
    pub bytes: u64,
    /// Of [`bytes`](Self::bytes), those that were already at the destination from an
    /// interrupted transfer and were not sent again (`bytes - bytes_resumed` were sent).
    #[serde(default)]
    pub bytes_resumed: u64,
    /// Files whose modtime was updated without a transfer.
    pub modtimes_set: u64,
    /// Files left unchanged.
    pub skipped: u64,
    /// Files deleted (on the destination; on the source for `move`).
    pub deleted: u64,
    /// Directories removed.
    pub dirs_deleted: u64,
    /// Directories created.
    pub dirs_created: u64,
    /// Files moved to the backup directory.
    pub backed_up: u64,
    /// Operation-level retries that were needed.
    pub retries: u32,
    /// Temporary files of interrupted runs removed from the destination.
    #[serde(default)]
    pub leftovers_removed: u64,
    /// Whether deletions were skipped because of errors.
    pub deletes_skipped_due_to_errors: bool,
    /// Failures that remained after all retries.
    pub errors: Vec<ErrorRecord>,
}

impl Summary {
    /// An empty summary of a run from `source` to `destination` starting now: what a run
    /// fills in, or what [`Summary::absorb`] adds parts of a run into.
    ///
    /// ```
    /// use cloudsync_core::Summary;
    /// let mut total = Summary::new("a".into(), "b".into(), false);
    /// let mut part = Summary::new("a".into(), "b".into(), false);
    /// part.transferred = 2;
    /// total.absorb(part.clone());
    /// total.absorb(part);
    /// assert_eq!(total.transferred, 4);
    /// ```
    pub fn new(source: String, destination: String, dry_run: bool) -> Self {
        Summary {
            source,
            destination,
            started: OffsetDateTime::now_utc(),
            elapsed: Duration::ZERO,
            dry_run,
            checked: 0,
            transferred: 0,
            bytes: 0,
            bytes_resumed: 0,
            modtimes_set: 0,
            skipped: 0,
            deleted: 0,
            dirs_deleted: 0,
            dirs_created: 0,
            backed_up: 0,
            retries: 0,
            leftovers_removed: 0,
            deletes_skipped_due_to_errors: false,
            errors: Vec::new(),
        }
    }

    /// Adds the counts and errors of `part` (a piece of the same run, such as one shard of a
    /// distributed job) into this summary; counts saturate, a part that skipped its deletions
    /// marks the whole. Times and descriptions stay this summary's.
    pub fn absorb(&mut self, part: Summary) {
        self.checked = self.checked.saturating_add(part.checked);
        self.transferred = self.transferred.saturating_add(part.transferred);
        self.bytes = self.bytes.saturating_add(part.bytes);
        self.bytes_resumed = self.bytes_resumed.saturating_add(part.bytes_resumed);
        self.modtimes_set = self.modtimes_set.saturating_add(part.modtimes_set);
        self.skipped = self.skipped.saturating_add(part.skipped);
        self.deleted = self.deleted.saturating_add(part.deleted);
        self.dirs_deleted = self.dirs_deleted.saturating_add(part.dirs_deleted);
        self.dirs_created = self.dirs_created.saturating_add(part.dirs_created);
        self.backed_up = self.backed_up.saturating_add(part.backed_up);
        self.retries = self.retries.saturating_add(part.retries);
        self.leftovers_removed = self
            .leftovers_removed
            .saturating_add(part.leftovers_removed);
        self.deletes_skipped_due_to_errors |= part.deletes_skipped_due_to_errors;
        self.errors.extend(part.errors);
    }

    /// Whether the operation finished without errors.
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// The result of [`check`](crate::ops::check), in rclone's categories.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckReport {
    /// Source description (stored with any password hidden, see
    /// [`redact_location`](crate::redact_location)).
    #[serde(serialize_with = "crate::secret::serialize_location")]
    pub source: String,
    /// Destination description.
    #[serde(serialize_with = "crate::secret::serialize_location")]
    pub destination: String,
    /// When the check ran.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub checked_at: Option<OffsetDateTime>,
    /// How files were compared (`"size"`, `"size+md5"`, `"download"`, ...).
    pub method: String,
    /// `=`: identical on both sides.
    pub matched: Vec<CheckItem>,
    /// `*`: present on both sides but different.
    pub differ: Vec<CheckItem>,
    /// `+`: only on the source (missing on the destination).
    pub missing_on_dst: Vec<CheckItem>,
    /// `-`: only on the destination (missing on the source).
    pub missing_on_src: Vec<CheckItem>,
    /// `!`: could not be compared.
    pub errors: Vec<ErrorRecord>,
}

/// One file in a [`CheckReport`], with what each side said about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckItem {
    /// The path.
    pub path: RemotePath,
    /// Size on the source, if present there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_size: Option<u64>,
    /// Size on the destination, if present there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_size: Option<u64>,
    /// Modtime on the source.
    #[serde(
        with = "time::serde::rfc3339::option",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub src_modtime: Option<OffsetDateTime>,
    /// Modtime on the destination.
    #[serde(
        with = "time::serde::rfc3339::option",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub dst_modtime: Option<OffsetDateTime>,
}

impl CheckReport {
    /// Whether source and destination agree (nothing differs, is missing or failed).
    pub fn is_identical(&self) -> bool {
        self.differ.is_empty()
            && self.missing_on_dst.is_empty()
            && self.missing_on_src.is_empty()
            && self.errors.is_empty()
    }

    /// rclone's `--combined` report: one line per path, `= - + * !` then the path, sorted by
    /// path.
    pub fn combined(&self) -> Vec<String> {
        let mut lines: Vec<(&str, char)> = Vec::new();
        lines.extend(self.matched.iter().map(|i| (i.path.as_str(), '=')));
        lines.extend(self.missing_on_src.iter().map(|i| (i.path.as_str(), '-')));
        lines.extend(self.missing_on_dst.iter().map(|i| (i.path.as_str(), '+')));
        lines.extend(self.differ.iter().map(|i| (i.path.as_str(), '*')));
        lines.extend(self.errors.iter().map(|i| (i.path.as_str(), '!')));
        lines.sort();
        lines.into_iter().map(|(p, c)| format!("{c} {p}")).collect()
    }

    /// Sorts every list by path (the march finds files in no particular order).
    pub fn sort(&mut self) {
        self.matched.sort_by(|a, b| a.path.cmp(&b.path));
        self.differ.sort_by(|a, b| a.path.cmp(&b.path));
        self.missing_on_dst.sort_by(|a, b| a.path.cmp(&b.path));
        self.missing_on_src.sort_by(|a, b| a.path.cmp(&b.path));
        self.errors.sort_by(|a, b| a.path.cmp(&b.path));
    }
}

mod duration_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

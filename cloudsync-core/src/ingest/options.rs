//! [`IngestOptions`] and [`Location`]: what an ingest run does and where it keeps its archives
//! and reports.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::filter::FilterSet;
use crate::ops::{Placement, placement};
use crate::path::RemotePath;
use crate::remote::Remote;
use crate::report::{Event, EventSink};

/// A directory on the drop remote or on another remote (for archives and reports).
#[derive(Clone)]
pub struct Location {
    /// The remote holding the directory; `None` means the drop remote itself.
    pub remote: Option<Arc<dyn Remote>>,
    /// The directory, relative to that remote's root.
    pub dir: RemotePath,
}

impl Location {
    /// A directory inside the drop folder (excluded from ingestion).
    pub fn on_drop(dir: RemotePath) -> Self {
        Location { remote: None, dir }
    }

    /// A directory on another remote.
    pub fn on(remote: Arc<dyn Remote>, dir: RemotePath) -> Self {
        Location {
            remote: Some(remote),
            dir,
        }
    }

    /// The remote to use, given the drop remote.
    pub(crate) fn remote<'a>(&'a self, drop: &'a Arc<dyn Remote>) -> &'a Arc<dyn Remote> {
        self.remote.as_ref().unwrap_or(drop)
    }

    /// Whether this directory's remote is the drop remote or the same place (judged on
    /// canonical locations), so that its paths are paths of the drop remote too.
    pub(crate) fn is_on(&self, drop: &Arc<dyn Remote>) -> bool {
        match &self.remote {
            None => true,
            Some(r) => placement(r, drop) == Placement::Same,
        }
    }

    /// This directory as a path of the drop folder when it lies inside it (so it must not be
    /// ingested), `None` when it lies elsewhere.
    pub(crate) fn within(&self, drop: &Arc<dyn Remote>) -> Option<RemotePath> {
        if self.is_on(drop) {
            return Some(self.dir.clone());
        }
        let (base, here) = (drop.location()?, self.remote(drop).location()?);
        base.relative(&here.join(&self.dir))
    }
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.remote {
            None => write!(f, "drop:{}", self.dir),
            Some(r) => write!(f, "{}:{}", r.describe(), self.dir),
        }
    }
}

/// Options of [`ingest`](super::ingest).
///
/// The defaults suit a scheduled job pulling from a folder that another system writes to:
///
/// | option | default |
/// | --- | --- |
/// | `filter` | everything |
/// | `ignore_hidden` | `true`: names starting with `.` or `_` (files and directories, any depth) stay |
/// | `settle` | 60 s: a file must be at least that old by modtime |
/// | `recheck_delay` | `Some(2 s)`: sizes are looked at twice, this far apart |
/// | `archive` | `archives/` in the drop folder |
/// | `reports` | `reports/` in the drop folder |
/// | `lock_path` | `.cloudsync-ingest.lock` on the target |
/// | `stale_lock` | 1 h |
/// | `transfers` | 4 |
///
/// ```
/// use std::time::Duration;
/// use cloudsync_core::ingest::IngestOptions;
/// let opts = IngestOptions {
///     settle: Duration::from_secs(30),
///     archive: None, // keep no archive copy
///     ..Default::default()
/// };
/// # let _ = opts;
/// ```
#[derive(Clone)]
pub struct IngestOptions {
    /// Which files are eligible (rclone filter rules, sizes, ages).
    pub filter: FilterSet,
    /// Leave names starting with `.` or `_` alone, at any depth, files and directories (so an
    /// uploader can write `_name.tmp` or `.name.part` and rename it when done).
    pub ignore_hidden: bool,
    /// A file is only taken when its modtime is at least this old. Zero disables the check.
    /// A file without a modtime is skipped while `settle` is non-zero. Mind the clock of the
    /// drop server: its modtimes are compared with this machine's clock.
    pub settle: Duration,
    /// When set, every directory holding candidates is listed a second time after this delay
    /// and files whose size or modtime changed in between are skipped as still being
    /// written. Cost: the delay, once per run, plus one extra listing per directory holding
    /// candidates (no per-file requests). `None` disables the second look.
    pub recheck_delay: Option<Duration>,
    /// Where an archive copy of each ingested file goes (`<dir>/<UTC date>/<path>`); `None`
    /// keeps no archive.
    pub archive: Option<Location>,
    /// Where the run's report goes (`<dir>/<time>-<id>.json` and `.txt`); `None` writes none
    /// (the report is still returned).
    pub reports: Option<Location>,
    /// The lock file on the target that keeps two runs from overlapping.
    pub lock_path: RemotePath,
    /// A lock older than this (by the time written inside it) is considered left behind by a
    /// crashed run and is taken over. A running ingest refreshes its lock well before that.
    pub stale_lock: Duration,
    /// How long to wait after writing the lock before reading it back to confirm it is ours.
    pub lock_confirm_delay: Duration,
    /// Files processed concurrently. As in a sync, with more than one, files of at most
    /// [`SmallFileSlots::SMALL_FILE`](crate::SmallFileSlots::SMALL_FILE) bytes share the
    /// slots where every remote involved allows it (an SFTP drop to local disk: 4 to a slot).
    pub transfers: usize,
    /// Retries of one failing transfer.
    pub low_level_retries: u32,
    /// First backoff between those retries.
    pub retry_backoff: Duration,
    /// Where progress events go.
    pub events: Option<EventSink>,
    /// Stops the run from outside: no file starts after it, files being copied are
    /// abandoned (their copies are atomic, and a drop file is removed only after its copy
    /// was verified, so each stays in the drop folder for the next run), the lock is
    /// released, and the report records an error of kind
    /// [`Cancelled`](crate::ErrorKind::Cancelled).
    pub cancel: Option<crate::ops::CancelToken>,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            filter: FilterSet::everything(),
            ignore_hidden: true,
            settle: Duration::from_secs(60),
            recheck_delay: Some(Duration::from_secs(2)),
            archive: Some(Location::on_drop(fixed_path("archives"))),
            reports: Some(Location::on_drop(fixed_path("reports"))),
            lock_path: fixed_path(".cloudsync-ingest.lock"),
            stale_lock: Duration::from_secs(3600),
            lock_confirm_delay: Duration::from_millis(500),
            transfers: 4,
            low_level_retries: 10,
            retry_backoff: Duration::from_millis(200),
            events: None,
            cancel: None,
        }
    }
}

/// A path known to be valid at compile time.
pub(crate) fn fixed_path(s: &str) -> RemotePath {
    RemotePath::new(s).unwrap_or_else(|_| RemotePath::root())
}

impl IngestOptions {
    pub(crate) fn emit(&self, event: Event) {
        if let Some(sink) = &self.events {
            sink(&event);
        }
    }

    /// The options of the underlying verified transfers.
    pub(crate) fn transfer_options(&self) -> crate::ops::SyncOptions {
        crate::ops::SyncOptions {
            low_level_retries: self.low_level_retries,
            retry_backoff: self.retry_backoff,
            events: self.events.clone(),
            cancel: self.cancel.clone(),
            ..Default::default()
        }
    }
}

impl fmt::Debug for IngestOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IngestOptions")
            .field("filter", &self.filter)
            .field("ignore_hidden", &self.ignore_hidden)
            .field("settle", &self.settle)
            .field("recheck_delay", &self.recheck_delay)
            .field("archive", &self.archive)
            .field("reports", &self.reports)
            .field("lock_path", &self.lock_path)
            .field("stale_lock", &self.stale_lock)
            .field("transfers", &self.transfers)
            .finish_non_exhaustive()
    }
}

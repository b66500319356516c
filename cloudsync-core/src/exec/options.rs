//! Options of a run between two remotes ([`SyncOptions`], [`CutoffMode`]), with rclone's
//! defaults. The executor reads them; the operations re-export them.

use std::fmt;
use std::time::Duration;

use crate::filter::FilterSet;
use crate::path::RemotePath;
use crate::plan::equal::CompareOptions;
use crate::report::{Event, EventSink};
use crate::resume_state::SessionStore;

/// Options of the operations that transfer between two remotes: `ops::copy`, `ops::sync`,
/// `ops::move_files`, `ops::plan` / `ops::apply`, `ops::copy_files` and `ops::copy_file`.
///
/// ```
/// use cloudsync_core::{FilterSet, ops::SyncOptions};
/// let opts = SyncOptions {
///     filter: FilterSet::builder().include("*.jpg").build()?,
///     transfers: 8,
///     ..Default::default()
/// };
/// # let _ = opts;
/// # Ok::<(), cloudsync_core::Error>(())
/// ```
#[derive(Clone)]
pub struct SyncOptions {
    /// Which files are seen at all.
    pub filter: FilterSet,
    /// How files on both sides are compared.
    pub compare: CompareOptions,
    /// Decide and report, but change nothing (`--dry-run`).
    pub dry_run: bool,
    /// Files transferred concurrently (`--transfers`, default 4). With more than one, files
    /// of at most [`SmallFileSlots::SMALL_FILE`](crate::SmallFileSlots::SMALL_FILE) bytes
    /// share these slots where both remotes allow it (see
    /// [`SmallFileSlots`](crate::SmallFileSlots)): SFTP and durable local disk take 4 to a
    /// slot.
    pub transfers: usize,
    /// Directories listed and files compared concurrently (`--checkers`, default 8).
    pub checkers: usize,
    /// Attempts of the whole operation; later attempts redo only what failed (`--retries`,
    /// default 3).
    pub retries: u32,
    /// Wait before each retry of the whole operation (`--retries-sleep`, default 0); the
    /// engine waits at least as long as the longest `Retry-After` among the failures it
    /// retries (capped at [`MAX_RETRY_AFTER`](crate::MAX_RETRY_AFTER)).
    pub retries_sleep: Duration,
    /// Retries of one failing transfer or request (`--low-level-retries`, default 10).
    pub low_level_retries: u32,
    /// First backoff between low-level retries (grows exponentially, with jitter).
    pub retry_backoff: Duration,
    /// Stop deleting after this many deletions, with an error (`--max-delete`).
    pub max_delete: Option<u64>,
    /// Move replaced and deleted destination files here instead (`--backup-dir`), a path on
    /// the destination remote outside the synced tree or excluded from it.
    pub backup_dir: Option<RemotePath>,
    /// Also delete destination files the filters exclude (`--delete-excluded`, sync only).
    pub delete_excluded: bool,
    /// Create source directories that are empty (`--create-empty-src-dirs`).
    pub create_empty_src_dirs: bool,
    /// After a move, remove source directories left empty (`--delete-empty-src-dirs`).
    pub delete_empty_src_dirs: bool,
    /// Files of at least this many bytes are transferred through a partial file next to the
    /// target, so that a transfer cut off (a dropped connection, a killed process) continues
    /// where it stopped, in a low-level retry or in the next run, on destinations that can
    /// resume ([`Capabilities::resume`](crate::Capabilities::resume)); `None` or 0: never.
    /// Default 16 MiB. Local-to-local copies keep the kernel's copy and do not resume.
    pub resume_above: Option<u64>,
    /// Where the upload sessions of unfinished transfers to destinations with
    /// [`Capabilities::resume_sessions`](crate::Capabilities::resume_sessions) (cloud
    /// backends) are recorded, for files of at least `resume_above` bytes. Default: in
    /// memory, so a retry within the run continues an upload; a
    /// [`SessionStore::open`](crate::SessionStore::open) file lets a later run continue it.
    pub sessions: SessionStore,
    /// Remove our temporary upload files older than this from the destination folders the run
    /// lists (files a run that was killed left behind); `None`: never. Default 24 hours.
    pub leftover_age: Option<Duration>,
    /// `ops::apply` a plan that recorded errors (they then block its deletions).
    pub apply_plan_with_errors: bool,
    /// Where progress events go.
    pub events: Option<EventSink>,
    /// Stop after this many bytes were transferred (`--max-transfer`); see `cutoff_mode`.
    pub max_transfer: Option<u64>,
    /// How `max_transfer` and `max_duration` stop the run (`--cutoff-mode`, default hard).
    pub cutoff_mode: CutoffMode,
    /// Start no transfer once the run has lasted this long (`--max-duration`); with a hard
    /// cutoff, abandon the running ones too.
    pub max_duration: Option<Duration>,
    /// Match names byte for byte (`--no-unicode-normalization`). By default names are
    /// matched by their Unicode NFC form, as rclone does: a source name in NFD and the same
    /// name in NFC on the destination are one file, updated under the destination's name,
    /// and neither form is ever deleted because the other exists.
    pub no_unicode_normalization: bool,
    /// Stops the run from outside when cancelled (a service's "cancel job", an
    /// application's Ctrl-C): no transfer starts after it, running transfers are abandoned
    /// (their atomic writes show nothing), and the run records an error of kind
    /// [`ErrorKind::Cancelled`](crate::ErrorKind::Cancelled), so it deletes nothing it had
    /// not deleted already.
    pub cancel: Option<CancelToken>,
}

/// A handle that cancels the operations it was given to ([`SyncOptions::cancel`]); clones
/// share the state.
///
/// ```
/// use cloudsync_core::ops::CancelToken;
/// let token = CancelToken::new();
/// let theirs = token.clone();
/// token.cancel();
/// assert!(theirs.is_cancelled());
/// ```
#[derive(Debug, Clone, Default)]
pub struct CancelToken(tokio_util::sync::CancellationToken);

impl CancelToken {
    /// A token not cancelled yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels every operation holding this token (or a clone of it).
    pub fn cancel(&self) {
        self.0.cancel();
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.is_cancelled()
    }

    /// Resolves once the token is cancelled.
    pub async fn cancelled(&self) {
        self.0.cancelled().await;
    }
}

/// The default of [`SyncOptions::resume_above`]: 16 MiB.
pub const DEFAULT_RESUME_ABOVE: u64 = 16 * 1024 * 1024;

/// How a run limit (`max_transfer`, `max_duration`) stops a run (rclone's `--cutoff-mode`).
/// Whichever it is, a stopped run records an error and so deletes nothing.
///
/// ```
/// use cloudsync_core::ops::CutoffMode;
/// assert_eq!("cautious".parse::<CutoffMode>()?, CutoffMode::Cautious);
/// assert!("gentle".parse::<CutoffMode>().is_err());
/// # Ok::<(), cloudsync_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CutoffMode {
    /// Stop at once: running transfers are abandoned when the limit is reached, and no
    /// more than `max_transfer` bytes are sent.
    #[default]
    Hard,
    /// Start no new transfer once the limit is reached; running ones finish.
    Soft,
    /// Start no transfer that would take the total past `max_transfer`.
    Cautious,
}

impl std::str::FromStr for CutoffMode {
    type Err = crate::error::Error;

    fn from_str(s: &str) -> crate::error::Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "hard" => Ok(CutoffMode::Hard),
            "soft" => Ok(CutoffMode::Soft),
            "cautious" => Ok(CutoffMode::Cautious),
            _ => Err(crate::error::Error::new(
                crate::error::ErrorKind::InvalidInput,
                format!("cutoff mode {s:?}: expected hard, soft or cautious"),
            )),
        }
    }
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            filter: FilterSet::everything(),
            compare: CompareOptions::default(),
            dry_run: false,
            transfers: 4,
            checkers: 8,
            retries: 3,
            retries_sleep: Duration::ZERO,
            low_level_retries: 10,
            retry_backoff: Duration::from_millis(200),
            max_delete: None,
            backup_dir: None,
            delete_excluded: false,
            create_empty_src_dirs: false,
            delete_empty_src_dirs: false,
            resume_above: Some(DEFAULT_RESUME_ABOVE),
            sessions: SessionStore::memory(),
            leftover_age: Some(Duration::from_secs(24 * 3600)),
            apply_plan_with_errors: false,
            events: None,
            max_transfer: None,
            cutoff_mode: CutoffMode::Hard,
            max_duration: None,
            no_unicode_normalization: false,
            cancel: None,
        }
    }
}

impl fmt::Debug for SyncOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncOptions")
            .field("filter", &self.filter)
            .field("compare", &self.compare)
            .field("dry_run", &self.dry_run)
            .field("transfers", &self.transfers)
            .field("checkers", &self.checkers)
            .field("retries", &self.retries)
            .field("retries_sleep", &self.retries_sleep)
            .field("low_level_retries", &self.low_level_retries)
            .field("max_delete", &self.max_delete)
            .field("backup_dir", &self.backup_dir)
            .field("delete_excluded", &self.delete_excluded)
            .field("create_empty_src_dirs", &self.create_empty_src_dirs)
            .field("delete_empty_src_dirs", &self.delete_empty_src_dirs)
            .field("resume_above", &self.resume_above)
            .field("sessions", &self.sessions)
            .field("leftover_age", &self.leftover_age)
            .field("apply_plan_with_errors", &self.apply_plan_with_errors)
            .field("events", &self.events.as_ref().map(|_| "EventSink"))
            .field("max_transfer", &self.max_transfer)
            .field("cutoff_mode", &self.cutoff_mode)
            .field("max_duration", &self.max_duration)
            .field("no_unicode_normalization", &self.no_unicode_normalization)
            .field(
                "cancel",
                &self.cancel.as_ref().map(CancelToken::is_cancelled),
            )
            .finish()
    }
}

impl SyncOptions {
    pub(crate) fn emit(&self, event: Event) {
        if let Some(sink) = &self.events {
            sink(&event);
        }
    }
}

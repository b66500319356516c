//! Jobs: what is submitted ([`JobSpec`]), how it is followed ([`status`], [`report`]) and
//! stopped ([`cancel`]).

use std::time::Duration;

use cloudsync_core::ops::{CompareOptions, SyncOptions};
use cloudsync_core::{
    ErrorRecord, FilterSet, FilterSpec, Mode, RemotePath, RuleKind, Summary, location_has_secret,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::db::Db;
use crate::error::{DistError, Result};

/// A job's id (the row id in `cloudsync.jobs`).
pub type JobId = i64;

/// Which operation a job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DistMode {
    /// Copy new and changed files; never delete.
    Copy,
    /// Make the destination identical: deletions run in one phase after every shard is done
    /// without error.
    Sync,
    /// Copy, then remove each source file once its copy on the destination is verified (a
    /// file already there and identical is removed from the source too); the destination
    /// loses nothing.
    Move,
}

impl DistMode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            DistMode::Copy => "copy",
            DistMode::Sync => "sync",
            DistMode::Move => "move",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<Self> {
        match s {
            "copy" => Ok(DistMode::Copy),
            "sync" => Ok(DistMode::Sync),
            "move" => Ok(DistMode::Move),
            other => Err(DistError::InvalidInput(format!(
                "unknown job mode {other:?}"
            ))),
        }
    }

    /// The engine's mode.
    pub fn engine_mode(self) -> Mode {
        match self {
            DistMode::Copy => Mode::Copy,
            DistMode::Sync => Mode::Sync,
            DistMode::Move => Mode::Move,
        }
    }
}

/// The options of a job, in a form stored in the database (a subset of
/// [`SyncOptions`]; secrets never belong here).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct JobOptions {
    /// Filter flags, applied to paths from the roots of source and destination.
    pub filter: FilterSpec,
    /// The filter files named at submission (`--include-from`, `--exclude-from`,
    /// `--filter-from`, `--files-from`), read on the submitting machine and stored with the
    /// job (see [`JobOptions::inline_filter_files`]): workers need not have them.
    pub filter_files: Vec<FilterFile>,
    /// `--checksum`.
    pub checksum: bool,
    /// `--size-only`.
    pub size_only: bool,
    /// `--ignore-times`.
    pub ignore_times: bool,
    /// `--ignore-existing`.
    pub ignore_existing: bool,
    /// `--update`.
    pub update: bool,
    /// `--modify-window` in milliseconds.
    pub modify_window_ms: u64,
    /// Transfers at once in each worker (`--transfers`).
    pub transfers: usize,
    /// Listings and comparisons at once in each worker (`--checkers`).
    pub checkers: usize,
    /// `--low-level-retries`.
    pub low_level_retries: u32,
    /// The most files the whole job may delete (`--max-delete`): more candidates than this,
    /// and nothing is deleted (the job fails).
    pub max_delete: Option<u64>,
    /// `--create-empty-src-dirs`.
    pub create_empty_src_dirs: bool,
    /// `--delete-empty-src-dirs` (move only): the source's empty directories are removed in
    /// the job's commit phase, once every shard is done without error (deepest first; the
    /// source root stays).
    pub delete_empty_src_dirs: bool,
    /// `--delete-excluded` (sync).
    pub delete_excluded: bool,
    /// `--no-unicode-normalization`.
    pub no_unicode_normalization: bool,
    /// A directory with more files to act on than this (a huge flat directory) hands them
    /// to batch shards of this many planned transfers each, which any worker runs, each
    /// re-validated before it executes (as `apply` does); at least 1.
    pub batch_size: usize,
}

/// Which flag a [`FilterFile`] was given with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FilterFileFlag {
    /// `--include-from`.
    IncludeFrom,
    /// `--exclude-from`.
    ExcludeFrom,
    /// `--filter-from`.
    FilterFrom,
    /// `--files-from`.
    FilesFrom,
}

/// The text of a filter file, stored with a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterFile {
    /// The flag it was given with.
    pub flag: FilterFileFlag,
    /// The file's name on the submitting machine (for messages).
    pub name: String,
    /// Its content.
    pub text: String,
}

/// Default [`JobOptions::batch_size`].
pub const DEFAULT_BATCH_SIZE: usize = 5_000;

impl Default for JobOptions {
    fn default() -> Self {
        let d = SyncOptions::default();
        JobOptions {
            filter: FilterSpec::default(),
            filter_files: Vec::new(),
            checksum: false,
            size_only: false,
            ignore_times: false,
            ignore_existing: false,
            update: false,
            modify_window_ms: 0,
            transfers: d.transfers,
            checkers: d.checkers,
            low_level_retries: d.low_level_retries,
            max_delete: None,
            create_empty_src_dirs: false,
            delete_empty_src_dirs: false,
            delete_excluded: false,
            no_unicode_normalization: false,
            batch_size: DEFAULT_BATCH_SIZE,
        }
    }
}

impl JobOptions {
    /// Reads the files of the filter's `*_from` lists into [`JobOptions::filter_files`] (in
    /// the order rclone applies them) and empties the lists: the job then carries its rules,
    /// not paths that exist only on this machine. [`submit`] calls it.
    pub fn inline_filter_files(&mut self) -> Result<()> {
        let f = &mut self.filter;
        let lists = [
            (
                FilterFileFlag::IncludeFrom,
                std::mem::take(&mut f.include_from),
            ),
            (
                FilterFileFlag::ExcludeFrom,
                std::mem::take(&mut f.exclude_from),
            ),
            (
                FilterFileFlag::FilterFrom,
                std::mem::take(&mut f.filter_from),
            ),
            (FilterFileFlag::FilesFrom, std::mem::take(&mut f.files_from)),
        ];
        for (flag, paths) in lists {
            for path in paths {
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    DistError::InvalidInput(format!(
                        "cannot read filter file {}: {e}",
                        path.display()
                    ))
                })?;
                self.filter_files.push(FilterFile {
                    flag,
                    name: path.display().to_string(),
                    text,
                });
            }
        }
        Ok(())
    }

    /// The filter: the flags and the stored filter files' rules.
    fn filter_set(&self) -> Result<FilterSet> {
        let mut b = FilterSet::builder();
        self.filter.apply(&mut b)?;
        for f in &self.filter_files {
            match f.flag {
                FilterFileFlag::IncludeFrom => b.add_rules_from_str(RuleKind::Include, &f.text),
                FilterFileFlag::ExcludeFrom => b.add_rules_from_str(RuleKind::Exclude, &f.text),
                FilterFileFlag::FilterFrom => b.add_rules_from_str(RuleKind::Filter, &f.text),
                FilterFileFlag::FilesFrom => b.files_from_str(&f.text),
            };
        }
        Ok(b.build()?)
    }

    /// The engine options these stand for (the filter is built now, on this worker).
    pub fn to_sync_options(&self) -> Result<SyncOptions> {
        Ok(SyncOptions {
            filter: self.filter_set()?,
            compare: CompareOptions {
                checksum: self.checksum,
                size_only: self.size_only,
                ignore_times: self.ignore_times,
                ignore_existing: self.ignore_existing,
                update: self.update,
                modify_window: Duration::from_millis(self.modify_window_ms),
            },
            transfers: self.transfers.max(1),
            checkers: self.checkers.max(1),
            low_level_retries: self.low_level_retries,
            max_delete: self.max_delete,
            create_empty_src_dirs: self.create_empty_src_dirs,
            delete_excluded: self.delete_excluded,
            no_unicode_normalization: self.no_unicode_normalization,
            ..SyncOptions::default()
        })
    }

    fn check(&self) -> Result<()> {
        let f = &self.filter;
        if !(f.files_from.is_empty()
            && f.include_from.is_empty()
            && f.exclude_from.is_empty()
            && f.filter_from.is_empty())
        {
            return Err(DistError::InvalidInput(
                "filter files must be read into the job first \
                 (JobOptions::inline_filter_files): workers may not have them"
                    .into(),
            ));
        }
        // Built once here so that a bad rule fails the submission, not every worker.
        self.filter_set()?;
        Ok(())
    }
}

/// What to run: a mode, two locations and options.
///
/// The locations are remote names (`backup:photos`, resolved from each worker's own config)
/// or URLs without credentials: the database never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    /// Copy or sync.
    pub mode: DistMode,
    /// The source location.
    pub source: String,
    /// The destination location.
    pub destination: String,
    /// The options.
    #[serde(default)]
    pub options: JobOptions,
}

impl JobSpec {
    /// A job with default options.
    pub fn new(mode: DistMode, source: impl Into<String>, destination: impl Into<String>) -> Self {
        JobSpec {
            mode,
            source: source.into(),
            destination: destination.into(),
            options: JobOptions::default(),
        }
    }
}

/// Creates a job and its first shard (the root directory pair); returns its id.
///
/// Refuses a location that carries a secret (a password in a URL, a token in a query): each
/// worker resolves credentials from its own config.
pub async fn submit(db: &Db, spec: &JobSpec) -> Result<JobId> {
    for loc in [&spec.source, &spec.destination] {
        if location_has_secret(loc) {
            return Err(DistError::InvalidInput(format!(
                "{} carries a secret; name a configured remote instead (each worker reads \
                 credentials from its own config, the database never holds them)",
                cloudsync_core::redact_location(loc)
            )));
        }
    }
    if spec.options.delete_empty_src_dirs && spec.mode != DistMode::Move {
        return Err(DistError::InvalidInput(
            "--delete-empty-src-dirs applies to move jobs only".into(),
        ));
    }
    let mut job_options = spec.options.clone();
    job_options.inline_filter_files()?;
    job_options.check()?;
    let options = serde_json::to_value(&job_options)?;
    let max_delete = spec
        .options
        .max_delete
        .map(|m| i64::try_from(m).unwrap_or(i64::MAX));
    let mut client = db.connect().await?;
    let tx = client.transaction().await?;
    let row = tx
        .query_one(
            "INSERT INTO cloudsync.jobs (mode, source, destination, options, max_delete)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
            &[
                &spec.mode.as_str(),
                &spec.source,
                &spec.destination,
                &options,
                &max_delete,
            ],
        )
        .await?;
    let id: i64 = row.get(0);
    tx.execute(
        "INSERT INTO cloudsync.shards (job, path, src_path, src, dst) VALUES ($1, '', '', true, true)",
        &[&id],
    )
    .await?;
    tx.commit().await?;
    tracing::info!(job = id, "job submitted");
    Ok(id)
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Shards are being walked and transferred.
    Running,
    /// Every shard finished without error; deletions are running.
    Deleting,
    /// Finished without error.
    Done,
    /// Finished with errors (nothing was deleted if the error came before the delete phase).
    Failed,
    /// Stopped by [`cancel`].
    Cancelled,
}

impl JobState {
    pub(crate) fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "running" => JobState::Running,
            "deleting" => JobState::Deleting,
            "done" => JobState::Done,
            "failed" => JobState::Failed,
            "cancelled" => JobState::Cancelled,
            other => {
                return Err(DistError::InvalidInput(format!(
                    "unknown job state {other:?}"
                )));
            }
        })
    }

    /// Whether the job will not change any more.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobState::Done | JobState::Failed | JobState::Cancelled
        )
    }
}

/// Shards of a job by state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardCounts {
    /// Waiting for a worker.
    pub pending: u64,
    /// Leased by a worker.
    pub running: u64,
    /// Finished.
    pub done: u64,
    /// Failed too often (an error of the job).
    pub dead: u64,
    /// Stopped by a cancel.
    pub cancelled: u64,
}

/// A job's progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStatus {
    /// The job.
    pub id: JobId,
    /// Copy or sync.
    pub mode: DistMode,
    /// Source location.
    pub source: String,
    /// Destination location.
    pub destination: String,
    /// Where it is.
    pub state: JobState,
    /// Its shards.
    pub shards: ShardCounts,
    /// Destination files and directories waiting for the delete phase.
    pub delete_candidates: u64,
    /// Why it failed (job-level errors; per-file ones are in the report).
    pub error: Option<String>,
    /// When it was submitted.
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    /// When it finished.
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished: Option<OffsetDateTime>,
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// A job's progress.
pub async fn status(db: &Db, job: JobId) -> Result<JobStatus> {
    let client = db.connect().await?;
    status_with(&client, job).await
}

pub(crate) async fn status_with(client: &tokio_postgres::Client, job: JobId) -> Result<JobStatus> {
    let row = client
        .query_opt(
            "SELECT mode, source, destination, state, error, created, finished,
                    (SELECT count(*) FROM cloudsync.delete_candidates c WHERE c.job = j.id)
             FROM cloudsync.jobs j WHERE id = $1",
            &[&job],
        )
        .await?
        .ok_or(DistError::NoSuchJob(job))?;
    let mut shards = ShardCounts::default();
    for r in client
        .query(
            "SELECT state, count(*) FROM cloudsync.shards WHERE job = $1 GROUP BY state",
            &[&job],
        )
        .await?
    {
        let n = count(r.get(1));
        match r.get::<_, &str>(0) {
            "pending" => shards.pending = n,
            "running" => shards.running = n,
            "done" => shards.done = n,
            "dead" => shards.dead = n,
            _ => shards.cancelled = n,
        }
    }
    Ok(JobStatus {
        id: job,
        mode: DistMode::parse(row.get(0))?,
        source: row.get(1),
        destination: row.get(2),
        state: JobState::parse(row.get(3))?,
        error: row.get(4),
        created: from_system(row.get(5)),
        finished: row
            .get::<_, Option<std::time::SystemTime>>(6)
            .map(from_system),
        delete_candidates: count(row.get(7)),
        shards,
    })
}

fn from_system(t: std::time::SystemTime) -> OffsetDateTime {
    OffsetDateTime::from(t)
}

/// The merged report of a job: the [`Summary`] of every shard added up, in the same shape as
/// a one-process run's, with the job's own errors (dead shards, the delete limit) among its
/// errors. `deletes_skipped_due_to_errors` is set when a sync found deletions but errors kept
/// the delete phase closed.
pub async fn report(db: &Db, job: JobId) -> Result<Summary> {
    let client = db.connect().await?;
    let st = status_with(&client, job).await?;
    let mut total = Summary::new(st.source.clone(), st.destination.clone(), false);
    total.started = st.created;
    let end = st.finished.unwrap_or_else(OffsetDateTime::now_utc);
    total.elapsed = Duration::try_from(end - st.created).unwrap_or_default();
    let rows = client
        .query(
            "SELECT r.summary FROM cloudsync.shard_reports r JOIN cloudsync.shards s ON s.id = r.shard
             WHERE r.job = $1 ORDER BY s.kind DESC, s.path",
            &[&job],
        )
        .await?;
    for r in rows {
        let s: Summary = serde_json::from_value(r.get(0))?;
        total.absorb(s);
    }
    // A dead shard's last error, when its report does not say it already.
    for r in client
        .query(
            "SELECT s.path, s.error FROM cloudsync.shards s WHERE s.job = $1 AND s.state = 'dead'
             AND NOT EXISTS (SELECT 1 FROM cloudsync.shard_reports r
                             WHERE r.shard = s.id AND r.errors > 0)
             ORDER BY s.path",
            &[&job],
        )
        .await?
    {
        let path = RemotePath::new(r.get::<_, &str>(0)).unwrap_or_default();
        let message: Option<String> = r.get(1);
        total.errors.push(ErrorRecord {
            path,
            kind: cloudsync_core::ErrorKind::Unexpected,
            message: message.unwrap_or_else(|| "shard failed".into()),
            temporary: true,
        });
    }
    if let Some(e) = &st.error {
        total.errors.push(ErrorRecord {
            path: RemotePath::root(),
            kind: cloudsync_core::ErrorKind::Conflict,
            message: e.clone(),
            temporary: false,
        });
    }
    if st.mode == DistMode::Sync && st.delete_candidates > 0 && st.state == JobState::Failed {
        let deleting_ran = client
            .query_opt(
                "SELECT 1 FROM cloudsync.shards WHERE job = $1 AND kind IN ('delete', 'rmdir')",
                &[&job],
            )
            .await?
            .is_some();
        total.deletes_skipped_due_to_errors = !deleting_ran;
    }
    Ok(total)
}

/// Adds `s` to `total` (which becomes `s` when it is empty).
pub(crate) fn add_to(total: &mut Option<Summary>, s: Summary) {
    match total {
        Some(t) => t.absorb(s),
        None => *total = Some(s),
    }
}

/// Stops a job: its pending and running shards are cancelled (a worker holding one loses
/// its lease at its next heartbeat and stops). Returns whether the job was still running.
pub async fn cancel(db: &Db, job: JobId) -> Result<bool> {
    let mut client = db.connect().await?;
    let tx = client.transaction().await?;
    // Shard rows first, then the job row: the order in which a worker's completion or failure
    // takes them, so the two never wait on each other (a deadlock PostgreSQL would break by
    // aborting one of them).
    tx.execute(
        "UPDATE cloudsync.shards SET state = 'cancelled', lease_owner = NULL, lease_until = NULL
         WHERE job = $1 AND state IN ('pending', 'running')
           AND EXISTS (SELECT 1 FROM cloudsync.jobs
                       WHERE id = $1 AND state IN ('running', 'deleting'))",
        &[&job],
    )
    .await?;
    let n = tx
        .execute(
            "UPDATE cloudsync.jobs SET state = 'cancelled', finished = now(),
                    error = coalesce(error, 'cancelled')
             WHERE id = $1 AND state IN ('running', 'deleting')",
            &[&job],
        )
        .await?;
    if n == 0 {
        tx.rollback().await?;
        status_with(&client, job).await?; // NoSuchJob when there is none
        return Ok(false);
    }
    // Shards the delete phase queued while this waited for the job row.
    tx.execute(
        "UPDATE cloudsync.shards SET state = 'cancelled', lease_owner = NULL, lease_until = NULL
         WHERE job = $1 AND state IN ('pending', 'running')",
        &[&job],
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

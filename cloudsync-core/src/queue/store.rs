//! [`ReportQueue`]: compare requests and finished reports kept in a folder on any remote, and
//! processed one after another.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::config::{Config, Registry};
use crate::entry::WriteMeta;
use crate::error::{Error, ErrorKind, Result};
use crate::lock::RemoteLock;
use crate::ops::SyncOptions;
use crate::path::RemotePath;
use crate::remote::{Remote, bytes_stream, collect_bytes};
use crate::secret::{location_has_secret, redact_location};
use crate::temp::random_id;

use super::resync::{ResyncOptions, resync};
use super::saved::compare;
use crate::report::{CompareSpec, ReportCounts, SavedReport};

/// Opens the locations named in requests and reports (`sftp://host/dir`, `name:path`, ...).
///
/// Implemented by [`Registry`] (URLs and local paths), by `(Registry, Config)` (also
/// `name:path` of a config file) and by a `HashMap<String, Arc<dyn Remote>>` of remotes
/// already open (handy for embedding and tests).
#[async_trait]
pub trait OpenRemote: Send + Sync {
    /// Opens `location`.
    async fn open(&self, location: &str) -> Result<Arc<dyn Remote>>;
}

#[async_trait]
impl OpenRemote for Registry {
    async fn open(&self, location: &str) -> Result<Arc<dyn Remote>> {
        Registry::open(self, location, &Config::default()).await
    }
}

#[async_trait]
impl OpenRemote for (Registry, Config) {
    async fn open(&self, location: &str) -> Result<Arc<dyn Remote>> {
        self.0.open(location, &self.1).await
    }
}

#[async_trait]
impl OpenRemote for HashMap<String, Arc<dyn Remote>> {
    async fn open(&self, location: &str) -> Result<Arc<dyn Remote>> {
        self.get(location).cloned().ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!("unknown location {:?}", redact_location(location)),
            )
        })
    }
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting to be processed.
    Queued,
    /// Being processed (or interrupted: it runs again on the next `process_next`).
    Running,
    /// Finished; its report is stored.
    Done,
    /// Could not run; see [`Job::error`].
    Failed,
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
        })
    }
}

/// What a job does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum JobRequest {
    /// Compare two locations and store the report.
    Compare {
        /// The source location.
        source: String,
        /// The destination location.
        destination: String,
        /// The compare's options.
        #[serde(default)]
        options: Box<CompareSpec>,
    },
    /// "Re-run & sync": transfer what an earlier job's report lists as missing, store the
    /// follow-up report.
    Resync {
        /// The id of the job (= report) to act on.
        report: String,
        /// Also transfer the files listed as different.
        #[serde(default)]
        include_differ: bool,
        /// Transfer files whose size changed since the report, too.
        #[serde(default)]
        transfer_changed: bool,
    },
}

/// One queued, running or finished request, as stored in `jobs/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// The job's id; the report it produces has the same id.
    pub id: String,
    /// What to do.
    pub request: JobRequest,
    /// Where it is.
    pub state: JobState,
    /// When it was queued.
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    /// When processing started.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub started: Option<OffsetDateTime>,
    /// When it finished or failed.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub finished: Option<OffsetDateTime>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Where its report is, in the queue folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<RemotePath>,
    /// The report's counts, for listings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<ReportCounts>,
}

/// A queue of compare and resync requests in a folder of any remote:
///
/// ```text
/// <dir>/jobs/<time>-<id>.json      one per request, with its state
/// <dir>/reports/<time>-<id>.json   the finished reports (SavedReport JSON)
/// <dir>/.queue.lock                held while a job is processed
/// ```
///
/// Any number of processes may [`enqueue`](Self::enqueue) and read;
/// [`process_next`](Self::process_next) takes the lock (see [`ingest`](crate::ingest) for how it works), so
/// jobs run one after another even with several processors. A job found `running` while the
/// lock is free was interrupted and runs again.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> cloudsync_core::Result<()> {
/// use std::collections::HashMap;
/// use std::sync::Arc;
/// use cloudsync_core::queue::{JobRequest, JobState, ReportQueue};
/// use cloudsync_core::{memory, memory_named, Remote, RemotePath};
///
/// let remotes: HashMap<String, Arc<dyn Remote>> = [
///     ("memory://cam".to_owned(), memory_named("cam")),
///     ("memory://server".to_owned(), memory_named("server")),
/// ].into();
/// let queue = ReportQueue::new(memory(), RemotePath::new("queue")?, Arc::new(remotes));
/// let job = queue.enqueue(JobRequest::Compare {
///     source: "memory://cam".into(),
///     destination: "memory://server".into(),
///     options: Default::default(),
/// }).await?;
/// assert_eq!(job.state, JobState::Queued);
/// let done = queue.process_all().await?;
/// assert_eq!(done[0].state, JobState::Done);
/// let report = queue.report(&job.id).await?;
/// assert!(report.check.is_identical());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ReportQueue {
    remote: Arc<dyn Remote>,
    dir: RemotePath,
    opener: Arc<dyn OpenRemote>,
    sync: SyncOptions,
    stale_lock: Duration,
    lock_confirm_delay: Duration,
}

impl fmt::Debug for ReportQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReportQueue")
            .field("remote", &self.remote.describe())
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn encode(v: &impl Serialize) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(v)
        .map_err(|e| Error::new(ErrorKind::Unexpected, "cannot encode job").with_source(e))
}

impl ReportQueue {
    /// A queue in `dir` on `remote`; locations in requests are opened with `opener`.
    pub fn new(remote: Arc<dyn Remote>, dir: RemotePath, opener: Arc<dyn OpenRemote>) -> Self {
        ReportQueue {
            remote,
            dir,
            opener,
            sync: SyncOptions::default(),
            stale_lock: Duration::from_secs(3600),
            lock_confirm_delay: Duration::from_millis(500),
        }
    }

    /// Transfer settings of resync jobs (transfers, retries, events).
    pub fn with_sync_options(mut self, sync: SyncOptions) -> Self {
        self.sync = sync;
        self
    }

    /// The lock's stale timeout (default 1 h; the holder refreshes it while a job runs) and
    /// how long to wait before confirming it (default 500 ms).
    pub fn with_lock_timing(mut self, stale: Duration, confirm_delay: Duration) -> Self {
        self.stale_lock = stale;
        self.lock_confirm_delay = confirm_delay;
        self
    }

    fn sub(&self, name: &str) -> Result<RemotePath> {
        self.dir.join(name)
    }

    fn job_path(&self, job: &Job) -> Result<RemotePath> {
        self.sub("jobs")?
            .join(&format!("{}-{}.json", stamp_ms(job.created), job.id))
    }

    pub(super) async fn save_job(&self, job: &Job) -> Result<()> {
        let body = encode(job)?;
        let meta = WriteMeta {
            size: Some(body.len() as u64),
            ..Default::default()
        };
        self.remote
            .write(&self.job_path(job)?, bytes_stream(body), meta)
            .await?;
        Ok(())
    }

    /// Adds a request; returns the queued job.
    ///
    /// A compare of a location with a secret in it (`ftp://me:pw@host/x`, `?token=`) is
    /// refused with [`ErrorKind::InvalidInput`]: the job file is stored, and secrets are never
    /// (DESIGN.md §4, rule 8). Name the password another way (`?password_env=VAR`, a named
    /// remote of the config file).
    pub async fn enqueue(&self, request: JobRequest) -> Result<Job> {
        if let JobRequest::Compare {
            source,
            destination,
            ..
        } = &request
        {
            for location in [source, destination] {
                if location_has_secret(location) {
                    return Err(Error::new(
                        ErrorKind::InvalidInput,
                        format!(
                            "{:?}: a queued location must not carry a password or token (job \
                             files are stored); use `?password_env=VAR` or a named remote",
                            redact_location(location)
                        ),
                    ));
                }
            }
        }
        let job = Job {
            id: random_id(),
            request,
            state: JobState::Queued,
            created: OffsetDateTime::now_utc(),
            started: None,
            finished: None,
            error: None,
            report: None,
            counts: None,
        };
        self.save_job(&job).await?;
        Ok(job)
    }

    /// Every job, oldest first.
    pub async fn jobs(&self) -> Result<Vec<Job>> {
        let dir = self.sub("jobs")?;
        let entries: Vec<crate::Entry> = match self.remote.list(&dir).await {
            Ok(s) => s.try_collect().await?,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut jobs = Vec::new();
        for e in entries {
            if !e.is_file() || !e.name().ends_with(".json") || crate::temp::is_temp_name(e.name()) {
                continue;
            }
            let body = match self.remote.read(&e.path, None).await {
                Ok(s) => collect_bytes(s).await?,
                // Rewritten or removed meanwhile.
                Err(err) if err.kind() == ErrorKind::NotFound => continue,
                Err(err) => return Err(err),
            };
            match serde_json::from_slice::<Job>(&body) {
                Ok(j) => jobs.push(j),
                Err(err) => tracing::warn!(path = %e.path, error = %err, "not a job file"),
            }
        }
        jobs.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        Ok(jobs)
    }

    /// One job by id.
    pub async fn job(&self, id: &str) -> Result<Job> {
        self.jobs()
            .await?
            .into_iter()
            .find(|j| j.id == id)
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("no job {id:?} in the queue")))
    }

    /// The report of a finished job.
    pub async fn report(&self, id: &str) -> Result<SavedReport> {
        let job = self.job(id).await?;
        let path = job.report.ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!("job {id} has no report (it is {})", job.state),
            )
        })?;
        SavedReport::load(self.remote.as_ref(), &path).await
    }

    /// Queues a "re-run & sync" of the report of job `id`.
    pub async fn enqueue_resync(&self, id: &str, include_differ: bool) -> Result<Job> {
        self.enqueue(JobRequest::Resync {
            report: id.to_owned(),
            include_differ,
            transfer_changed: false,
        })
        .await
    }

    /// Processes the oldest queued (or interrupted) job and returns it finished (`done` or
    /// `failed`); `None` when nothing is queued. An error of kind [`ErrorKind::Conflict`]
    /// means another processor holds the queue's lock.
    pub async fn process_next(&self) -> Result<Option<Job>> {
        let lock = RemoteLock::acquire(
            self.remote.clone(),
            self.sub(".queue.lock")?,
            "report queue",
            self.stale_lock,
            self.lock_confirm_delay,
        )
        .await?;
        let result = self.process_locked(&lock).await;
        if let Err(e) = lock.release().await {
            tracing::warn!(error = %e, "could not release the queue lock");
        }
        result
    }

    async fn process_locked(&self, lock: &RemoteLock) -> Result<Option<Job>> {
        let Some(mut job) = self
            .jobs()
            .await?
            .into_iter()
            .find(|j| matches!(j.state, JobState::Queued | JobState::Running))
        else {
            return Ok(None);
        };
        job.state = JobState::Running;
        job.started = Some(OffsetDateTime::now_utc());
        self.save_job(&job).await?;

        let running = job.clone();
        // The lock refreshes itself while the job runs.
        let outcome = self.execute(&running).await;
        if let Some(e) = lock.lost() {
            tracing::warn!(error = %e, "could not refresh the queue lock");
        }
        job.finished = Some(OffsetDateTime::now_utc());
        match outcome {
            Ok(report) => {
                let path = self.sub("reports")?.join(&format!(
                    "{}-{}.json",
                    stamp_ms(job.created),
                    job.id
                ))?;
                report.save(self.remote.as_ref(), &path).await?;
                job.state = JobState::Done;
                job.counts = Some(report.counts());
                job.report = Some(path);
                job.error = None;
            }
            Err(e) => {
                job.state = JobState::Failed;
                job.error = Some(e.chain());
            }
        }
        self.save_job(&job).await?;
        Ok(Some(job))
    }

    async fn execute(&self, job: &Job) -> Result<SavedReport> {
        match &job.request {
            JobRequest::Compare {
                source,
                destination,
                options,
            } => {
                let src = self.opener.open(source).await?;
                let dst = self.opener.open(destination).await?;
                let mut report = compare(&src, &dst, options).await?;
                report.id = job.id.clone();
                report.source = redact_location(source);
                report.destination = redact_location(destination);
                Ok(report)
            }
            JobRequest::Resync {
                report,
                include_differ,
                transfer_changed,
            } => {
                let earlier = self.report(report).await?;
                let src = self.opener.open(&earlier.source).await?;
                let dst = self.opener.open(&earlier.destination).await?;
                let opts = ResyncOptions {
                    include_differ: *include_differ,
                    transfer_changed: *transfer_changed,
                    sync: self.sync.clone(),
                };
                let mut follow = resync(&earlier, &src, &dst, &opts).await?;
                follow.id = job.id.clone();
                Ok(follow)
            }
        }
    }

    /// Stores a report made outside the queue (a resync run by an application with its own
    /// events and cancel, say) as a finished job of `request`, so that it is listed and read
    /// like the queue's own.
    pub async fn record(&self, request: JobRequest, report: &SavedReport) -> Result<Job> {
        let now = OffsetDateTime::now_utc();
        let mut job = Job {
            id: report.id.clone(),
            request,
            state: JobState::Done,
            created: report.created,
            started: Some(report.created),
            finished: Some(now),
            error: None,
            report: None,
            counts: Some(report.counts()),
        };
        let path =
            self.sub("reports")?
                .join(&format!("{}-{}.json", stamp_ms(job.created), job.id))?;
        report.save(self.remote.as_ref(), &path).await?;
        job.report = Some(path);
        self.save_job(&job).await?;
        Ok(job)
    }

    /// Processes jobs until none is queued; returns them in order.
    pub async fn process_all(&self) -> Result<Vec<Job>> {
        let mut done = Vec::new();
        while let Some(job) = self.process_next().await? {
            done.push(job);
        }
        Ok(done)
    }
}

/// `2026-11-23T14-05-00.123Z`: sorts by time, valid as a file name everywhere.
fn stamp_ms(t: OffsetDateTime) -> String {
    let base = crate::report::file_stamp(t);
    let base = base.trim_end_matches('Z');
    format!("{base}.{:03}Z", t.millisecond())
}

//! Running a job: open its locations, call the engine with the job's event sink and cancel
//! token, and record the result.

use std::sync::Arc;

use cloudsync_core::ops::{self, CancelToken};
use cloudsync_core::{Error, ErrorKind, Remote, Result, Summary, ingest};

use crate::Inner;
use crate::error::ApiError;
use crate::jobs::{JobEntry, JobInfo, JobState};
use crate::spec::{JobSpec, Op};

/// A job's source and destination, opened.
pub(crate) type Pair = (Arc<dyn Remote>, Arc<dyn Remote>);

/// Opens the source and destination of `spec`; errors name the field.
pub(crate) async fn open_pair(inner: &Inner, spec: &JobSpec) -> Result<Pair, ApiError> {
    let src = inner
        .opener
        .open(&spec.src)
        .await
        .map_err(|e| ApiError::engine("src", &e))?;
    let dst = inner
        .opener
        .open(&spec.dst)
        .await
        .map_err(|e| ApiError::engine("dst", &e))?;
    Ok((src, dst))
}

/// Accepts a job (already validated and opened) and starts it in the background.
pub(crate) fn spawn(
    inner: &Arc<Inner>,
    spec: JobSpec,
    pair: Pair,
    schedule: Option<String>,
) -> (Arc<JobEntry>, tokio::task::JoinHandle<()>) {
    let mut info = JobInfo::new(crate::jobs::new_id(), spec.op.name(), &spec.src, &spec.dst);
    info.schedule = schedule;
    let entry = inner.jobs.add(info);
    let job = entry.clone();
    let done = crate::spawn_task(move || async move {
        job.start();
        let result = execute(&job, &spec, pair).await;
        job.finish(|i| record(i, result));
    });
    (entry, done)
}

/// What a job produced.
pub(crate) enum Outcome {
    Summary(Summary),
    Check(cloudsync_core::queue::ReportCounts, Vec<String>),
    Ingest(serde_json::Value, Vec<String>, bool),
}

/// Fills in a finished job.
pub(crate) fn record(i: &mut JobInfo, result: Result<Outcome>) {
    match result {
        Ok(Outcome::Summary(s)) => {
            i.errors = s.errors.iter().map(ToString::to_string).collect();
            if s.errors.iter().any(|e| e.kind == ErrorKind::Cancelled) {
                i.state = JobState::Cancelled;
            }
            i.summary = Some(s);
        }
        Ok(Outcome::Check(counts, errors)) => {
            i.counts = Some(counts);
            i.errors = errors;
        }
        Ok(Outcome::Ingest(report, errors, cancelled)) => {
            i.ingest = Some(report);
            i.errors = errors;
            if cancelled {
                i.state = JobState::Cancelled;
            }
        }
        Err(e) if e.kind() == ErrorKind::Cancelled => {
            i.state = JobState::Cancelled;
            i.errors = vec![e.chain()];
        }
        Err(e) => {
            i.state = JobState::Failed;
            i.errors = vec![e.chain()];
        }
    }
}

/// Runs `fut` until it ends or the job is cancelled (for a check, which takes no cancel token:
/// it only reads, so stopping it anywhere loses nothing).
async fn cancellable<T>(cancel: &CancelToken, fut: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::select! {
        r = fut => r,
        () = cancel.cancelled() => Err(Error::new(ErrorKind::Cancelled, "cancelled")),
    }
}

async fn execute(job: &Arc<JobEntry>, spec: &JobSpec, (src, dst): Pair) -> Result<Outcome> {
    let invalid = |e: ApiError| Error::new(ErrorKind::InvalidInput, e.error);
    match spec.op {
        Op::Copy | Op::Sync | Op::Move => {
            let mut opts = spec.sync_options().map_err(invalid)?;
            opts.events = Some(job.sink());
            opts.cancel = Some(job.cancel.clone());
            let summary = match spec.op {
                Op::Copy => ops::copy(&src, &dst, &opts).await?,
                Op::Sync => ops::sync(&src, &dst, &opts).await?,
                _ => ops::move_files(&src, &dst, &opts).await?,
            };
            Ok(Outcome::Summary(summary))
        }
        Op::Check => {
            let mut opts = spec.check_options().map_err(invalid)?;
            opts.events = Some(job.sink());
            let report = cancellable(&job.cancel, ops::check(&src, &dst, &opts)).await?;
            let saved = cloudsync_core::queue::SavedReport::new(
                report,
                &spec.src,
                &spec.dst,
                Default::default(),
            );
            let errors = saved.check.errors.iter().map(ToString::to_string).collect();
            Ok(Outcome::Check(saved.counts(), errors))
        }
        Op::Ingest => {
            let mut opts = spec.ingest_options().map_err(invalid)?;
            opts.events = Some(job.sink());
            opts.cancel = Some(job.cancel.clone());
            let report = ingest::ingest(&src, &dst, &opts).await?;
            let cancelled = report.failed.iter().any(|e| e.kind == ErrorKind::Cancelled);
            let errors = report.failed.iter().map(ToString::to_string).collect();
            let json = serde_json::to_value(&report).map_err(|e| {
                Error::new(ErrorKind::Unexpected, "cannot encode the ingest report").with_source(e)
            })?;
            Ok(Outcome::Ingest(json, errors, cancelled))
        }
    }
}

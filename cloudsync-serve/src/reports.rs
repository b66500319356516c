//! The compare-report queue over HTTP: create a report (queued, compared by a background
//! worker one after another), list the queue, read a report page by page, and re-run & sync
//! it as a job with live events.

use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use cloudsync_core::queue::{
    self, CompareSpec, Job, JobRequest, ReportCounts, ResyncOptions, SavedReport,
};
use cloudsync_core::{CheckItem, ErrorKind, FilterSpec, ops::SyncOptions};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Inner;
use crate::error::ApiError;
use crate::jobs::{JobInfo, JobState};
use crate::spec::{build_filters, parse_options};

/// Processes queued compares until the service is dropped.
pub(crate) async fn worker(inner: Weak<Inner>) {
    loop {
        let Some(me) = inner.upgrade() else {
            return;
        };
        let (queue, wake) = (me.queue.clone(), me.queue_wake.clone());
        drop(me);
        let processed = crate::spawn_task(move || async move { queue.process_next().await }).await;
        let Ok(processed) = processed else {
            return;
        };
        let busy = match processed {
            Ok(Some(job)) => {
                tracing::info!(id = %job.id, state = %job.state, "report job processed");
                true
            }
            Ok(None) => false,
            Err(e) if e.kind() == ErrorKind::Conflict => false,
            Err(e) => {
                tracing::warn!(error = %e.chain(), "report queue");
                false
            }
        };
        if busy {
            continue;
        }
        // Woken by a new request, or a look now and then (another process may enqueue).
        let _ = tokio::time::timeout(Duration::from_secs(2), wake.notified()).await;
    }
}

/// A queued report as listed.
#[derive(Debug, Serialize)]
struct ReportItem {
    kind: &'static str,
    src: Option<String>,
    dst: Option<String>,
    follows: Option<String>,
    #[serde(flatten)]
    job: Job,
}

fn item(job: Job) -> ReportItem {
    let (kind, src, dst, follows) = match &job.request {
        JobRequest::Compare {
            source,
            destination,
            ..
        } => (
            "compare",
            Some(cloudsync_core::redact_location(source)),
            Some(cloudsync_core::redact_location(destination)),
            None,
        ),
        JobRequest::Resync { report, .. } => ("resync", None, None, Some(report.clone())),
        _ => ("other", None, None, None),
    };
    ReportItem {
        kind,
        src,
        dst,
        follows,
        job,
    }
}

/// `POST /reports`: `{src, dst, filters?, size_only?, download?, one_way?}` -> 202 `{id}`.
pub(crate) async fn create(
    State(inner): State<Arc<Inner>>,
    body: crate::api::JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let body = body.0;
    let Some(obj) = body.as_object() else {
        return Err(ApiError::field("body", "the body must be a JSON object"));
    };
    let allowed = ["src", "dst", "filters", "size_only", "download", "one_way"];
    if let Some(k) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ApiError::field(k.as_str(), format!("unknown field {k:?}")));
    }
    let text = |name: &str| match obj.get(name) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        _ => Err(ApiError::field(
            name,
            format!("{name} must be a non-empty string"),
        )),
    };
    let flag = |name: &str| match obj.get(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(ApiError::field(
            name,
            format!("{name} must be true or false"),
        )),
    };
    let (src, dst) = (text("src")?, text("dst")?);
    let filters: FilterSpec = parse_options(obj.get("filters"), "filters")?;
    build_filters(&filters, "filters")?;
    let spec = CompareSpec {
        filters,
        size_only: flag("size_only")?,
        download: flag("download")?,
        one_way: flag("one_way")?,
    };
    // Opened now so that an unknown remote is this request's error, not the job's.
    inner
        .opener
        .open(&src)
        .await
        .map_err(|e| ApiError::engine("src", &e))?;
    inner
        .opener
        .open(&dst)
        .await
        .map_err(|e| ApiError::engine("dst", &e))?;
    let job = inner
        .queue
        .enqueue(JobRequest::Compare {
            source: src,
            destination: dst,
            options: Box::new(spec),
        })
        .await
        .map_err(|e| match e.kind() {
            ErrorKind::InvalidInput => ApiError::engine("src", &e),
            _ => ApiError::internal(&e),
        })?;
    inner.queue_wake.notify_one();
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "id": job.id, "state": job.state })),
    ))
}

/// `GET /reports`: the queue, newest first.
pub(crate) async fn list(State(inner): State<Arc<Inner>>) -> Result<impl IntoResponse, ApiError> {
    let mut jobs = inner
        .queue
        .jobs()
        .await
        .map_err(|e| ApiError::internal(&e))?;
    jobs.reverse();
    let items: Vec<ReportItem> = jobs.into_iter().map(item).collect();
    Ok(Json(serde_json::json!({ "reports": items })))
}

/// The query of `GET /reports/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReadQuery {
    list: Option<String>,
    #[serde(default)]
    offset: usize,
    limit: Option<usize>,
}

/// The largest page of a list.
const MAX_PAGE: usize = 1000;

#[derive(Serialize)]
struct ReportHead<'a> {
    id: &'a str,
    src: String,
    dst: String,
    #[serde(with = "time::serde::rfc3339")]
    created: time::OffsetDateTime,
    elapsed: f64,
    method: &'a str,
    counts: ReportCounts,
    identical: bool,
    follows: Option<&'a str>,
    resync: Option<&'a queue::ResyncOutcome>,
    errors: Vec<String>,
}

#[derive(Serialize)]
struct Page<'a> {
    name: &'a str,
    offset: usize,
    limit: usize,
    total: usize,
    items: &'a [CheckItem],
}

/// `GET /reports/{id}?list=missing_on_dst|missing_on_src|differ|common&offset=&limit=`.
pub(crate) async fn read(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
    query: Result<Query<ReadQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::field("query", e.body_text()))?;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::field(
            "limit",
            format!("limit must be between 1 and {MAX_PAGE}"),
        ));
    }
    let job = find(&inner, &id).await?;
    let report = match job.state {
        queue::JobState::Done => Some(
            inner
                .queue
                .report(&id)
                .await
                .map_err(|e| ApiError::internal(&e))?,
        ),
        _ => None,
    };
    let head = report.as_ref().map(head);
    let page = match (&q.list, &report) {
        (None, _) => None,
        (Some(name), Some(r)) => {
            let items = list_of(r, name)?;
            let start = q.offset.min(items.len());
            let end = start.saturating_add(limit).min(items.len());
            Some(Page {
                name,
                offset: q.offset,
                limit,
                total: items.len(),
                items: &items[start..end],
            })
        }
        (Some(name), None) => {
            list_name_ok(name)?;
            None
        }
    };
    Ok(Json(serde_json::json!({
        "job": item(job),
        "report": head,
        "list": page,
    })))
}

fn head(r: &SavedReport) -> ReportHead<'_> {
    ReportHead {
        id: &r.id,
        src: cloudsync_core::redact_location(&r.source),
        dst: cloudsync_core::redact_location(&r.destination),
        created: r.created,
        elapsed: r.elapsed.as_secs_f64(),
        method: &r.check.method,
        counts: r.counts(),
        identical: r.check.is_identical(),
        follows: r.follows.as_deref(),
        resync: r.resync.as_ref(),
        errors: r.check.errors.iter().map(ToString::to_string).collect(),
    }
}

const LISTS: &str = "missing_on_dst, missing_on_src, differ or common";

fn list_name_ok(name: &str) -> Result<(), ApiError> {
    match name {
        "missing_on_dst" | "missing_on_src" | "differ" | "common" => Ok(()),
        _ => Err(ApiError::field(
            "list",
            format!("unknown list {name:?}: expected {LISTS}"),
        )),
    }
}

fn list_of<'a>(r: &'a SavedReport, name: &str) -> Result<&'a [CheckItem], ApiError> {
    list_name_ok(name)?;
    Ok(match name {
        "missing_on_dst" => &r.check.missing_on_dst,
        "missing_on_src" => &r.check.missing_on_src,
        "differ" => &r.check.differ,
        _ => &r.check.matched,
    })
}

async fn find(inner: &Inner, id: &str) -> Result<Job, ApiError> {
    inner.queue.job(id).await.map_err(|e| match e.kind() {
        ErrorKind::NotFound => ApiError::not_found(format!("no report {id:?}")),
        _ => ApiError::internal(&e),
    })
}

/// The body of `POST /reports/{id}/resync`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ResyncBody {
    include_differ: bool,
    transfer_changed: bool,
}

/// `POST /reports/{id}/resync` -> 202 `{id}` of a job (`op: resync`) that transfers what the
/// report lists as missing, checks again, and stores the follow-up report in the queue.
pub(crate) async fn resync(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
    body: crate::api::JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let opts: ResyncBody = match body.0 {
        Value::Null => ResyncBody::default(),
        v => parse_options(Some(&v), "body")?,
    };
    let job = find(&inner, &id).await?;
    if job.state != queue::JobState::Done {
        return Err(ApiError {
            status: StatusCode::CONFLICT,
            error: format!("report {id} is {}, not done", job.state),
            field: None,
        });
    }
    let report = inner
        .queue
        .report(&id)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let src = inner
        .opener
        .open(&report.source)
        .await
        .map_err(|e| ApiError::engine("src", &e))?;
    let dst = inner
        .opener
        .open(&report.destination)
        .await
        .map_err(|e| ApiError::engine("dst", &e))?;
    let info = JobInfo::new(
        crate::jobs::new_id(),
        "resync",
        &report.source,
        &report.destination,
    );
    let entry = inner.jobs.add(info);
    let job_id = entry.info().id;
    let me = inner.clone();
    crate::spawn_task(move || async move {
        entry.start();
        let ropts = ResyncOptions {
            include_differ: opts.include_differ,
            transfer_changed: opts.transfer_changed,
            sync: SyncOptions {
                events: Some(entry.sink()),
                cancel: Some(entry.cancel.clone()),
                ..Default::default()
            },
        };
        let result = queue::resync(&report, &src, &dst, &ropts).await;
        let stored = match result {
            Ok(follow) => {
                let request = JobRequest::Resync {
                    report: report.id.clone(),
                    include_differ: opts.include_differ,
                    transfer_changed: opts.transfer_changed,
                };
                me.queue.record(request, &follow).await.map(|_| follow)
            }
            Err(e) => Err(e),
        };
        entry.finish(|i| match stored {
            Ok(follow) => {
                let mut errors: Vec<String> = follow
                    .check
                    .errors
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                if let Some(o) = &follow.resync {
                    errors.extend(o.errors.iter().map(ToString::to_string));
                    if o.errors.iter().any(|e| e.kind == ErrorKind::Cancelled) {
                        i.state = JobState::Cancelled;
                    }
                }
                i.errors = errors;
                i.counts = Some(follow.counts());
                i.report = Some(follow.id);
            }
            Err(e) => {
                i.state = if e.kind() == ErrorKind::Cancelled {
                    JobState::Cancelled
                } else {
                    JobState::Failed
                };
                i.errors = vec![e.chain()];
            }
        });
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "id": job_id })),
    ))
}

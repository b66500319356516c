//! Jobs the service runs: their state ([`JobInfo`]), their progress, the stream of their
//! events, and cancelling them.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::response::sse::Event as SseEvent;
use cloudsync_core::ops::CancelToken;
use cloudsync_core::queue::ReportCounts;
use cloudsync_core::{Action, Event, EventSink, Summary};
use futures::Stream;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::broadcast;

/// A new random job id (16 hex digits).
pub(crate) fn new_id() -> String {
    use std::hash::BuildHasher;
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
    let hash = std::collections::hash_map::RandomState::new().hash_one((nanos, n));
    format!("{hash:016x}")
}

/// Finished jobs kept in memory for `GET /jobs` (the oldest finished ones go first).
const KEEP_FINISHED: usize = 500;

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Accepted, not started yet.
    Queued,
    /// Running.
    Running,
    /// Finished (its result may still list per-file errors).
    Done,
    /// Could not run or did not finish.
    Failed,
    /// Stopped by a cancel.
    Cancelled,
}

impl JobState {
    /// Whether the job has ended.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Done | JobState::Failed | JobState::Cancelled
        )
    }
}

/// Counts of what a running job has done, from its events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Transfers planned so far.
    pub planned_files: u64,
    /// Bytes planned so far.
    pub planned_bytes: u64,
    /// Transfers finished.
    pub done_files: u64,
    /// Bytes of finished transfers plus those of running ones so far.
    pub done_bytes: u64,
    /// Files deleted.
    pub deleted: u64,
    /// Failures seen (some may have been retried).
    pub failed: u64,
}

/// A job as `GET /jobs/{id}` shows it. Locations are shown with any password hidden.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobInfo {
    /// The job's id.
    pub id: String,
    /// `copy`, `sync`, `move`, `check`, `ingest` or `resync`.
    pub op: String,
    /// The source (for `resync`, the report's).
    pub src: String,
    /// The destination.
    pub dst: String,
    /// Where it is.
    pub state: JobState,
    /// When it was accepted.
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    /// When it started.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub started: Option<OffsetDateTime>,
    /// When it ended.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub finished: Option<OffsetDateTime>,
    /// The schedule that started it, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// What it has done so far.
    pub progress: Progress,
    /// The result of a copy, sync or move: the JSON `cloudsync sync --json` prints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<Summary>,
    /// The counts of a check (or of a resync's follow-up check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<ReportCounts>,
    /// The report of an ingest (`cloudsync ingest --json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingest: Option<serde_json::Value>,
    /// For a resync: the id of the follow-up report in the report queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
    /// Why it failed, or the per-file errors of its result.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

impl JobInfo {
    /// A queued job.
    pub(crate) fn new(id: String, op: &str, src: &str, dst: &str) -> Self {
        JobInfo {
            id,
            op: op.to_owned(),
            src: cloudsync_core::redact_location(src),
            dst: cloudsync_core::redact_location(dst),
            state: JobState::Queued,
            created: OffsetDateTime::now_utc(),
            started: None,
            finished: None,
            schedule: None,
            progress: Progress::default(),
            summary: None,
            counts: None,
            ingest: None,
            report: None,
            errors: Vec::new(),
        }
    }
}

/// What subscribers of a job receive.
#[derive(Debug, Clone)]
enum Note {
    Event(Arc<Event>),
    End,
}

/// One job: its state, its event channel, its cancel.
pub(crate) struct JobEntry {
    info: Mutex<JobInfo>,
    tx: broadcast::Sender<Note>,
    pub(crate) cancel: CancelToken,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl JobEntry {
    fn new(info: JobInfo) -> Arc<Self> {
        let (tx, _) = broadcast::channel(1024);
        Arc::new(JobEntry {
            info: Mutex::new(info),
            tx,
            cancel: CancelToken::new(),
        })
    }

    /// The job as it is now.
    pub(crate) fn info(&self) -> JobInfo {
        lock(&self.info).clone()
    }

    /// Marks it running.
    pub(crate) fn start(&self) {
        let mut i = lock(&self.info);
        i.state = JobState::Running;
        i.started = Some(OffsetDateTime::now_utc());
    }

    /// Ends it: `update` fills in the result; subscribers get the end.
    pub(crate) fn finish(&self, update: impl FnOnce(&mut JobInfo)) {
        let mut i = lock(&self.info);
        update(&mut i);
        if !i.state.is_final() {
            i.state = JobState::Done;
        }
        i.finished = Some(OffsetDateTime::now_utc());
        // Sent under the lock: a subscriber sees either the end in its snapshot or here.
        let _ = self.tx.send(Note::End);
    }

    /// The sink the engine reports to: updates the progress and forwards the event.
    pub(crate) fn sink(self: &Arc<Self>) -> EventSink {
        let me = self.clone();
        Arc::new(move |e: &Event| {
            let mut i = lock(&me.info);
            let p = &mut i.progress;
            match e {
                Event::Planned {
                    action: Action::Copy | Action::Update,
                    bytes,
                    ..
                } => {
                    p.planned_files += 1;
                    p.planned_bytes = p.planned_bytes.saturating_add(*bytes);
                }
                Event::TransferDone { bytes, .. } => {
                    p.done_files += 1;
                    p.done_bytes = p.done_bytes.saturating_add(*bytes);
                }
                Event::Deleted { .. } => p.deleted += 1,
                Event::Failed { .. } => p.failed += 1,
                _ => {}
            }
            let _ = me.tx.send(Note::Event(Arc::new(e.clone())));
        })
    }

    /// The job's events as Server-Sent Events: `state` (the job so far), then the engine's
    /// events named by their type (`planned`, `transfer_done`, ...), then `end` (the job as
    /// it ended). A subscriber that falls behind gets a `lagged` event with the number of
    /// events it missed.
    pub(crate) fn events(
        self: &Arc<Self>,
    ) -> impl Stream<Item = Result<SseEvent, Infallible>> + use<> {
        let (snapshot, rx) = {
            let i = lock(&self.info);
            (i.clone(), self.tx.subscribe())
        };
        let first = futures::stream::iter([Ok(json_event("state", &snapshot))]);
        let state = (self.clone(), rx, snapshot.state.is_final(), false);
        let rest = futures::stream::unfold(state, |(me, mut rx, ended, done)| async move {
            if done {
                return None;
            }
            let event = if ended {
                json_event("end", &me.info())
            } else {
                match rx.recv().await {
                    Ok(Note::Event(e)) => {
                        let e = json_event(&event_name(&e), &*e);
                        return Some((Ok(e), (me, rx, false, false)));
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        let e = json_event("lagged", &serde_json::json!({ "missed": n }));
                        return Some((Ok(e), (me, rx, false, false)));
                    }
                    Ok(Note::End) | Err(broadcast::error::RecvError::Closed) => {
                        json_event("end", &me.info())
                    }
                }
            };
            Some((Ok(event), (me, rx, true, true)))
        });
        futures::StreamExt::chain(first, rest)
    }
}

/// `transfer_done` for `Event::TransferDone`: the `event` tag of its JSON.
fn event_name(e: &Event) -> String {
    serde_json::to_value(e)
        .ok()
        .and_then(|v| v.get("event").and_then(|t| t.as_str()).map(str::to_owned))
        .unwrap_or_else(|| "event".to_owned())
}

fn json_event(name: &str, value: &impl Serialize) -> SseEvent {
    let data = serde_json::to_string(value).unwrap_or_else(|_| "{}".to_owned());
    SseEvent::default().event(name).data(data)
}

/// Every job of this run of the service, oldest first.
#[derive(Default)]
pub(crate) struct Jobs {
    list: Mutex<VecDeque<Arc<JobEntry>>>,
}

impl Jobs {
    /// Adds a queued job.
    pub(crate) fn add(&self, info: JobInfo) -> Arc<JobEntry> {
        let entry = JobEntry::new(info);
        let mut list = lock(&self.list);
        list.push_back(entry.clone());
        let finished = list
            .iter()
            .filter(|j| lock(&j.info).state.is_final())
            .count();
        if finished > KEEP_FINISHED {
            if let Some(pos) = list.iter().position(|j| lock(&j.info).state.is_final()) {
                list.remove(pos);
            }
        }
        entry
    }

    /// One job.
    pub(crate) fn get(&self, id: &str) -> Option<Arc<JobEntry>> {
        lock(&self.list)
            .iter()
            .find(|j| lock(&j.info).id == id)
            .cloned()
    }

    /// All jobs, oldest first.
    pub(crate) fn all(&self) -> Vec<JobInfo> {
        lock(&self.list).iter().map(|j| j.info()).collect()
    }
}

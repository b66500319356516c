//! Scheduled jobs: a [`JobSpec`] with an interval (`every = "15m"`) or a 5-field cron
//! expression (UTC), from the config file (`[schedules.NAME]`) or the API. A run still going
//! when the next is due is not doubled: the due run is skipped and recorded. The last
//! [`HISTORY`] runs of each schedule and the schedules made through the API survive a restart
//! in `schedules.json` in the state folder (written whole through a rename).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use cloudsync_core::{Config, Error, ErrorKind, Summary, parse_duration};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use crate::Inner;
use crate::error::ApiError;
use crate::jobs::JobState;
use crate::spec::JobSpec;

/// Runs kept per schedule.
pub const HISTORY: usize = 20;

/// When a schedule runs: one of `every` and `cron`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Schedule {
    /// The schedule's name (letters, digits, `_`, `-`).
    pub name: String,
    /// The job it runs.
    #[serde(flatten)]
    pub job: JobSpec,
    /// An interval (`15m`, `1h30m`, `1d`): the first run one interval after the schedule
    /// starts, then one interval after each run started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<String>,
    /// A 5-field cron expression (minute hour day-of-month month day-of-week), in UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
}

/// When, parsed.
#[derive(Debug, Clone)]
enum When {
    Every(Duration),
    Cron(Box<croner::Cron>),
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Schedule {
    /// Checks the schedule and parses its time rule; errors name the field.
    fn when(&self) -> Result<When, ApiError> {
        if !valid_name(&self.name) {
            return Err(ApiError::field(
                "name",
                "a schedule name is 1 to 64 letters, digits, `_` or `-`",
            ));
        }
        self.job.validate()?;
        for (field, location) in [("src", &self.job.src), ("dst", &self.job.dst)] {
            if cloudsync_core::location_has_secret(location) {
                return Err(ApiError::field(
                    field,
                    format!(
                        "{:?}: a scheduled location must not carry a password or token (the \
                         schedule is stored); use `?password_env=VAR` or a named remote",
                        cloudsync_core::redact_location(location)
                    ),
                ));
            }
        }
        match (&self.every, &self.cron) {
            (Some(every), None) => match parse_duration(every) {
                Ok(Some(d)) if d >= Duration::from_secs(1) => Ok(When::Every(d)),
                Ok(_) => Err(ApiError::field("every", "every must be at least 1s")),
                Err(e) => Err(ApiError::field("every", format!("every: {}", e.chain()))),
            },
            (None, Some(cron)) => {
                if cron.split_whitespace().count() != 5 {
                    return Err(ApiError::field(
                        "cron",
                        "cron takes 5 fields: minute hour day-of-month month day-of-week",
                    ));
                }
                let parsed: croner::Cron = cron
                    .parse()
                    .map_err(|e| ApiError::field("cron", format!("cron {cron:?}: {e}")))?;
                Ok(When::Cron(Box::new(parsed)))
            }
            (Some(_), Some(_)) => Err(ApiError::field("cron", "give either every or cron")),
            (None, None) => Err(ApiError::field("every", "give every or cron")),
        }
    }

    /// Reads a request body or a config section.
    pub(crate) fn from_json(name: Option<&str>, body: &Value) -> Result<Schedule, ApiError> {
        let Some(obj) = body.as_object() else {
            return Err(ApiError::field("body", "a schedule is a JSON object"));
        };
        let mut job = serde_json::Map::new();
        for key in ["op", "src", "dst", "options"] {
            if let Some(v) = obj.get(key) {
                job.insert(key.to_owned(), v.clone());
            }
        }
        let allowed = ["name", "op", "src", "dst", "options", "every", "cron"];
        if let Some(k) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(ApiError::field(k.as_str(), format!("unknown field {k:?}")));
        }
        let text = |key: &str| -> Result<Option<String>, ApiError> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(ApiError::field(key, format!("{key} must be a string"))),
            }
        };
        let name = match name {
            Some(n) => n.to_owned(),
            None => text("name")?.ok_or_else(|| ApiError::field("name", "name is missing"))?,
        };
        let schedule = Schedule {
            name,
            job: JobSpec::from_json(&Value::Object(job))?,
            every: text("every")?,
            cron: text("cron")?,
        };
        schedule.when()?;
        Ok(schedule)
    }

    /// The `[schedules.NAME]` sections of a config file.
    pub fn from_config(config: &Config) -> Result<Vec<Schedule>, Error> {
        config
            .schedules()
            .map(|(name, section)| {
                Schedule::from_json(Some(name), section).map_err(|e| {
                    let field = e.field.map(|f| format!(" (key {f})")).unwrap_or_default();
                    Error::new(
                        ErrorKind::ConfigInvalid,
                        format!("schedule {name:?}{field}: {}", e.error),
                    )
                })
            })
            .collect()
    }
}

/// One run of a schedule (or a run skipped because the previous one was still going).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The job's id (none for a skipped run or one that could not start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// When it was due.
    #[serde(with = "time::serde::rfc3339")]
    pub due: OffsetDateTime,
    /// When it ended.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub finished: Option<OffsetDateTime>,
    /// `done`, `failed`, `cancelled` or `skipped`.
    pub state: String,
    /// The run's Summary (copy, sync, move).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<Summary>,
    /// Why it failed or was skipped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// Where a schedule came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// The config file (changed there, not through the API).
    Config,
    /// The API.
    Api,
}

/// A schedule with its state, as stored and shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    #[serde(flatten)]
    schedule: Schedule,
    origin: Origin,
    /// When the schedule started counting (its first interval runs from here).
    #[serde(with = "time::serde::rfc3339")]
    since: OffsetDateTime,
    /// When the last run was due (started or skipped).
    #[serde(with = "time::serde::rfc3339::option", default)]
    last_due: Option<OffsetDateTime>,
    /// The run going on now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    running: Option<String>,
    /// Runs skipped because the previous one was still going.
    #[serde(default)]
    skipped: u64,
    /// The last runs, newest last.
    #[serde(default)]
    history: Vec<RunRecord>,
}

impl Entry {
    /// When it next runs.
    fn next_due(&self) -> Option<OffsetDateTime> {
        let from = self.last_due.unwrap_or(self.since);
        match self.schedule.when().ok()? {
            When::Every(d) => Some(from + d),
            When::Cron(c) => {
                let start = chrono::DateTime::from_timestamp(from.unix_timestamp(), 0)?;
                let next = c.find_next_occurrence(&start, false).ok()?;
                OffsetDateTime::from_unix_timestamp(next.timestamp()).ok()
            }
        }
    }

    fn push(&mut self, record: RunRecord) {
        self.history.push(record);
        let extra = self.history.len().saturating_sub(HISTORY);
        self.history.drain(..extra);
    }
}

/// The state file's content.
#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    schedules: BTreeMap<String, Entry>,
}

/// The schedules of a service.
pub(crate) struct Schedules {
    file: PathBuf,
    state: Mutex<StateFile>,
    /// Serialises writes of the state file.
    write: tokio::sync::Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Schedules {
    /// Loads `schedules.json` of `state_dir` and merges the config file's schedules into it
    /// (the config's win by name; config schedules no longer in the config are dropped).
    pub(crate) async fn load(state_dir: &Path, from_config: Vec<Schedule>) -> Result<Self, Error> {
        let file = state_dir.join("schedules.json");
        let mut state: StateFile = match tokio::fs::read(&file).await {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                Error::new(
                    ErrorKind::ConfigInvalid,
                    format!("{}: not a schedule state file: {e}", file.display()),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => StateFile::default(),
            Err(e) => return Err(Error::from(e).with_path(file.display())),
        };
        let now = OffsetDateTime::now_utc();
        state.schedules.retain(|name, e| {
            e.origin == Origin::Api || from_config.iter().any(|s| &s.name == name)
        });
        for s in from_config {
            match state.schedules.get_mut(&s.name) {
                Some(e) => {
                    if e.schedule != s {
                        e.since = now;
                        e.last_due = None;
                    }
                    e.schedule = s;
                    e.origin = Origin::Config;
                }
                None => {
                    state.schedules.insert(
                        s.name.clone(),
                        Entry {
                            schedule: s,
                            origin: Origin::Config,
                            since: now,
                            last_due: None,
                            running: None,
                            skipped: 0,
                            history: Vec::new(),
                        },
                    );
                }
            }
        }
        // A run that was going when the service stopped did not finish.
        for e in state.schedules.values_mut() {
            if let Some(job) = e.running.take() {
                e.push(RunRecord {
                    job: Some(job),
                    due: e.last_due.unwrap_or(now),
                    finished: None,
                    state: "failed".to_owned(),
                    summary: None,
                    errors: vec!["the service stopped while it ran".to_owned()],
                });
            }
        }
        let me = Schedules {
            file,
            state: Mutex::new(state),
            write: tokio::sync::Mutex::new(()),
        };
        me.save().await?;
        Ok(me)
    }

    /// Writes the state file whole (temporary file, then rename).
    async fn save(&self) -> Result<(), Error> {
        let _guard = self.write.lock().await;
        let body = serde_json::to_vec_pretty(&*lock(&self.state)).map_err(|e| {
            Error::new(ErrorKind::Unexpected, "cannot encode the schedules").with_source(e)
        })?;
        let tmp = self.file.with_extension("json.tmp");
        tokio::fs::write(&tmp, &body)
            .await
            .map_err(|e| Error::from(e).with_path(tmp.display()))?;
        tokio::fs::rename(&tmp, &self.file)
            .await
            .map_err(|e| Error::from(e).with_path(self.file.display()))?;
        Ok(())
    }

    async fn save_logged(&self) {
        if let Err(e) = self.save().await {
            tracing::warn!(error = %e.chain(), "cannot save the schedules");
        }
    }

    fn view(e: &Entry) -> Value {
        let mut v = serde_json::to_value(e).unwrap_or(Value::Null);
        if let Some(obj) = v.as_object_mut() {
            let next = e.next_due().and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            });
            obj.insert("next".to_owned(), next.map_or(Value::Null, Value::String));
            for k in ["src", "dst"] {
                if let Some(Value::String(s)) = obj.get(k) {
                    let shown = cloudsync_core::redact_location(s);
                    obj.insert(k.to_owned(), Value::String(shown));
                }
            }
        }
        v
    }
}

/// Starts due schedules until the service is dropped (checks every second).
pub(crate) async fn runner(inner: Weak<Inner>) {
    loop {
        let Some(me) = inner.upgrade() else {
            return;
        };
        tick(&me).await;
        drop(me);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Starts every schedule that is due now.
pub(crate) async fn tick(inner: &Arc<Inner>) {
    let now = OffsetDateTime::now_utc();
    let due: Vec<(Schedule, Option<String>, OffsetDateTime)> = {
        let mut state = lock(&inner.schedules.state);
        let mut due = Vec::new();
        for e in state.schedules.values_mut() {
            let Some(at) = e.next_due() else { continue };
            if at > now {
                continue;
            }
            e.last_due = Some(now);
            due.push((e.schedule.clone(), e.running.clone(), at));
        }
        due
    };
    if due.is_empty() {
        return;
    }
    for (schedule, running, at) in due {
        if let Some(job) = running {
            tracing::info!(schedule = %schedule.name, %job, "still running: this run is skipped");
            let mut state = lock(&inner.schedules.state);
            if let Some(e) = state.schedules.get_mut(&schedule.name) {
                e.skipped += 1;
                e.push(RunRecord {
                    job: None,
                    due: at,
                    finished: Some(now),
                    state: "skipped".to_owned(),
                    summary: None,
                    errors: vec![format!("the run before ({job}) was still going")],
                });
            }
            continue;
        }
        start(inner, schedule, at).await;
    }
    inner.schedules.save_logged().await;
}

async fn start(inner: &Arc<Inner>, schedule: Schedule, due: OffsetDateTime) {
    let name = schedule.name.clone();
    let pair = match crate::run::open_pair(inner, &schedule.job).await {
        Ok(p) => p,
        Err(e) => {
            let mut state = lock(&inner.schedules.state);
            if let Some(entry) = state.schedules.get_mut(&name) {
                entry.push(RunRecord {
                    job: None,
                    due,
                    finished: Some(OffsetDateTime::now_utc()),
                    state: "failed".to_owned(),
                    summary: None,
                    errors: vec![e.error],
                });
            }
            return;
        }
    };
    let (entry, done) = crate::run::spawn(inner, schedule.job, pair, Some(name.clone()));
    let id = entry.info().id;
    if let Some(e) = lock(&inner.schedules.state).schedules.get_mut(&name) {
        e.running = Some(id.clone());
    }
    let me = inner.clone();
    tokio::spawn(async move {
        let _ = done.await;
        let info = entry.info();
        {
            let mut state = lock(&me.schedules.state);
            if let Some(e) = state.schedules.get_mut(&name) {
                if e.running.as_deref() == Some(id.as_str()) {
                    e.running = None;
                }
                e.push(RunRecord {
                    job: Some(id),
                    due,
                    finished: info.finished,
                    state: match info.state {
                        JobState::Done => "done",
                        JobState::Cancelled => "cancelled",
                        _ => "failed",
                    }
                    .to_owned(),
                    summary: info.summary,
                    errors: info.errors,
                });
            }
        }
        me.schedules.save_logged().await;
    });
}

/// `GET /schedules`.
pub(crate) async fn list(State(inner): State<Arc<Inner>>) -> impl IntoResponse {
    let state = lock(&inner.schedules.state);
    let all: Vec<Value> = state.schedules.values().map(Schedules::view).collect();
    Json(serde_json::json!({ "schedules": all }))
}

/// `GET /schedules/{name}`.
pub(crate) async fn read(
    State(inner): State<Arc<Inner>>,
    UrlPath(name): UrlPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    let state = lock(&inner.schedules.state);
    let e = state
        .schedules
        .get(&name)
        .ok_or_else(|| ApiError::not_found(format!("no schedule {name:?}")))?;
    Ok(Json(Schedules::view(e)))
}

/// `POST /schedules`: `{name, op, src, dst, options?, every | cron}` -> 201 (replaces an API
/// schedule of that name).
pub(crate) async fn create(
    State(inner): State<Arc<Inner>>,
    body: crate::api::JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let schedule = Schedule::from_json(None, &body.0)?;
    crate::run::open_pair(&inner, &schedule.job).await?;
    let view = {
        let mut state = lock(&inner.schedules.state);
        if let Some(e) = state.schedules.get(&schedule.name) {
            if e.origin == Origin::Config {
                return Err(conflict(&schedule.name));
            }
        }
        let entry = Entry {
            schedule: schedule.clone(),
            origin: Origin::Api,
            since: OffsetDateTime::now_utc(),
            last_due: None,
            running: None,
            skipped: 0,
            history: state
                .schedules
                .remove(&schedule.name)
                .map(|e| e.history)
                .unwrap_or_default(),
        };
        let view = Schedules::view(&entry);
        state.schedules.insert(schedule.name.clone(), entry);
        view
    };
    inner
        .schedules
        .save()
        .await
        .map_err(|e| ApiError::internal(&e))?;
    Ok((StatusCode::CREATED, Json(view)))
}

fn conflict(name: &str) -> ApiError {
    ApiError {
        status: StatusCode::CONFLICT,
        error: format!("schedule {name:?} is defined in the config file; change it there"),
        field: Some("name".to_owned()),
    }
}

/// `DELETE /schedules/{name}` (a run going on is not stopped; cancel its job for that).
pub(crate) async fn delete(
    State(inner): State<Arc<Inner>>,
    UrlPath(name): UrlPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    {
        let mut state = lock(&inner.schedules.state);
        match state.schedules.get(&name) {
            None => return Err(ApiError::not_found(format!("no schedule {name:?}"))),
            Some(e) if e.origin == Origin::Config => return Err(conflict(&name)),
            Some(_) => {
                state.schedules.remove(&name);
            }
        }
    }
    inner
        .schedules
        .save()
        .await
        .map_err(|e| ApiError::internal(&e))?;
    Ok(StatusCode::NO_CONTENT)
}

//! [`JobSpec`]: what a job does (`POST /jobs`, a schedule), and how a request body becomes
//! one with a field-naming error for anything wrong.

use std::time::Duration;

use cloudsync_core::ingest::IngestOptions;
use cloudsync_core::ops::{CheckOptions, CompareOptions, SyncOptions};
use cloudsync_core::{FilterSet, FilterSpec, parse_duration};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ApiError;

/// The operations a job can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// `ops::copy`.
    Copy,
    /// `ops::sync`.
    Sync,
    /// `ops::move_files`.
    Move,
    /// `ops::check`.
    Check,
    /// `ingest::ingest` (`src` is the drop folder, `dst` the target).
    Ingest,
}

impl Op {
    /// The name used in requests.
    pub fn name(self) -> &'static str {
        match self {
            Op::Copy => "copy",
            Op::Sync => "sync",
            Op::Move => "move",
            Op::Check => "check",
            Op::Ingest => "ingest",
        }
    }

    fn parse(s: &str) -> Option<Op> {
        [Op::Copy, Op::Sync, Op::Move, Op::Check, Op::Ingest]
            .into_iter()
            .find(|o| o.name() == s)
    }
}

/// The options of a job; each applies to the operations named in its documentation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct JobOptions {
    /// Which files are seen (rclone's filter flags; the `*_from` files are not accepted over
    /// the API, since they would read files of the server).
    pub filters: FilterSpec,
    /// copy/sync/move: change nothing, report what would be done.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// copy/sync/move: compare by checksum.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub checksum: bool,
    /// copy/sync/move/check: compare sizes only.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub size_only: bool,
    /// copy/sync/move: transfer even when size and modtime agree.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ignore_times: bool,
    /// copy/sync/move: never replace a file the destination has.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ignore_existing: bool,
    /// copy/sync/move: skip files newer on the destination.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub update: bool,
    /// Files transferred concurrently (default 4).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfers: Option<usize>,
    /// Directories listed and files compared concurrently (default 8).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkers: Option<usize>,
    /// sync: stop deleting after this many files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_delete: Option<u64>,
    /// copy/sync/move: stop after this many bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_transfer: Option<u64>,
    /// copy/sync/move: start no transfer after this long (`90m`, `2h`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_duration: Option<String>,
    /// check: compare the bytes of both sides.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub download: bool,
    /// check: only look for source files missing or different on the destination.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub one_way: bool,
    /// ingest: how old a file's modtime must be (`60s` by default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settle: Option<String>,
    /// ingest: keep no archive copy.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub no_archive: bool,
    /// ingest: write no report files.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub no_report: bool,
}

/// What a job does: `{"op": "sync", "src": "...", "dst": "...", "options": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct JobSpec {
    /// The operation.
    pub op: Op,
    /// The source location (`/dir`, `sftp://host/dir`, `name:path`).
    pub src: String,
    /// The destination location.
    pub dst: String,
    /// Its options.
    #[serde(default)]
    pub options: JobOptions,
}

/// A string field of `body`.
fn string_field(body: &serde_json::Map<String, Value>, name: &str) -> Result<String, ApiError> {
    match body.get(name) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        Some(Value::String(_)) => Err(ApiError::field(name, format!("{name} is empty"))),
        Some(_) => Err(ApiError::field(name, format!("{name} must be a string"))),
        None => Err(ApiError::field(name, format!("{name} is missing"))),
    }
}

/// `field.sub` when serde's message names an unknown field `sub`.
fn serde_field(prefix: &str, e: &serde_json::Error) -> String {
    let msg = e.to_string();
    match msg
        .split_once("unknown field `")
        .and_then(|(_, rest)| rest.split_once('`'))
    {
        Some((name, _)) => format!("{prefix}.{name}"),
        None => prefix.to_owned(),
    }
}

/// Parses the `options` object of a request (also used by report requests for `filters`).
pub(crate) fn parse_options<T: serde::de::DeserializeOwned + Default>(
    value: Option<&Value>,
    field: &str,
) -> Result<T, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(T::default()),
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|e| ApiError::field(serde_field(field, &e), format!("{field}: {e}"))),
    }
}

/// The filters of a request, built; `field` names them in errors.
pub(crate) fn build_filters(spec: &FilterSpec, field: &str) -> Result<FilterSet, ApiError> {
    let files = [
        ("include_from", spec.include_from.is_empty()),
        ("exclude_from", spec.exclude_from.is_empty()),
        ("filter_from", spec.filter_from.is_empty()),
        ("files_from", spec.files_from.is_empty()),
    ];
    if let Some((name, _)) = files.iter().find(|(_, empty)| !empty) {
        return Err(ApiError::field(
            format!("{field}.{name}"),
            format!("{name} reads files of the server and is not accepted here; give the rules"),
        ));
    }
    spec.build()
        .map_err(|e| ApiError::field(field, format!("{field}: {}", e.chain())))
}

fn duration(value: &Option<String>, field: &str) -> Result<Option<Duration>, ApiError> {
    match value {
        None => Ok(None),
        Some(text) => parse_duration(text)
            .map_err(|e| ApiError::field(field, format!("{field}: {}", e.chain()))),
    }
}

impl JobSpec {
    /// Reads a request body, naming the field of the first thing wrong.
    pub(crate) fn from_json(body: &Value) -> Result<JobSpec, ApiError> {
        let Some(obj) = body.as_object() else {
            return Err(ApiError::field("body", "the body must be a JSON object"));
        };
        if let Some(k) = obj
            .keys()
            .find(|k| !["op", "src", "dst", "options"].contains(&k.as_str()))
        {
            return Err(ApiError::field(k.as_str(), format!("unknown field {k:?}")));
        }
        let op = string_field(obj, "op")?;
        let op = Op::parse(&op).ok_or_else(|| {
            ApiError::field(
                "op",
                format!("unknown op {op:?}: expected copy, sync, move, check or ingest"),
            )
        })?;
        let spec = JobSpec {
            op,
            src: string_field(obj, "src")?,
            dst: string_field(obj, "dst")?,
            options: parse_options(obj.get("options"), "options")?,
        };
        spec.validate()?;
        Ok(spec)
    }

    /// Checks what can be checked without opening anything (filters, durations).
    pub(crate) fn validate(&self) -> Result<(), ApiError> {
        build_filters(&self.options.filters, "options.filters")?;
        duration(&self.options.max_duration, "options.max_duration")?;
        duration(&self.options.settle, "options.settle")?;
        Ok(())
    }

    /// The options of a copy, sync or move.
    pub(crate) fn sync_options(&self) -> Result<SyncOptions, ApiError> {
        let o = &self.options;
        let d = SyncOptions::default();
        Ok(SyncOptions {
            filter: build_filters(&o.filters, "options.filters")?,
            compare: CompareOptions {
                checksum: o.checksum,
                size_only: o.size_only,
                ignore_times: o.ignore_times,
                ignore_existing: o.ignore_existing,
                update: o.update,
                ..Default::default()
            },
            dry_run: o.dry_run,
            transfers: o.transfers.unwrap_or(d.transfers).max(1),
            checkers: o.checkers.unwrap_or(d.checkers).max(1),
            max_delete: o.max_delete,
            max_transfer: o.max_transfer,
            max_duration: duration(&o.max_duration, "options.max_duration")?
                .filter(|d| !d.is_zero()),
            ..d
        })
    }

    /// The options of a check.
    pub(crate) fn check_options(&self) -> Result<CheckOptions, ApiError> {
        let o = &self.options;
        Ok(CheckOptions {
            filter: build_filters(&o.filters, "options.filters")?,
            size_only: o.size_only,
            download: o.download,
            one_way: o.one_way,
            checkers: o.checkers.unwrap_or(8).max(1),
            ..Default::default()
        })
    }

    /// The options of an ingest.
    pub(crate) fn ingest_options(&self) -> Result<IngestOptions, ApiError> {
        let o = &self.options;
        let d = IngestOptions::default();
        Ok(IngestOptions {
            filter: build_filters(&o.filters, "options.filters")?,
            settle: duration(&o.settle, "options.settle")?.unwrap_or(d.settle),
            archive: if o.no_archive {
                None
            } else {
                d.archive.clone()
            },
            reports: if o.no_report { None } else { d.reports.clone() },
            transfers: o.transfers.unwrap_or(d.transfers).max(1),
            ..d
        })
    }
}

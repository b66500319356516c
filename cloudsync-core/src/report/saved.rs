//! [`SavedReport`]: a [`CheckReport`] with everything needed to act on it later (where it
//! came from, the options, when), as JSON, together with the types it stores: [`CompareSpec`]
//! (the options of the compare), [`ReportCounts`] and, for a follow-up report,
//! [`ResyncOutcome`]. The queue (`crate::queue`) makes, stores and acts on them; nothing here
//! imports it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::entry::WriteMeta;
use crate::error::{Error, ErrorKind, Result};
use crate::filter::FilterSpec;
use crate::path::RemotePath;
use crate::remote::{Remote, bytes_stream, collect_bytes};
use crate::report::{CheckItem, CheckReport, ErrorRecord};
use crate::secret::redact_location;
use crate::temp::random_id;

/// The current [`SavedReport::format`].
pub const REPORT_FORMAT: u32 = 1;

/// The options of a compare, storable with its report and in a queued request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompareSpec {
    /// Which files are compared.
    pub filters: FilterSpec,
    /// Compare sizes only ([`CheckOptions::size_only`](crate::ops::CheckOptions::size_only)).
    pub size_only: bool,
    /// Compare content byte for byte ([`CheckOptions::download`](crate::ops::CheckOptions::download)).
    pub download: bool,
    /// Only look for source files missing or different on the destination
    /// ([`CheckOptions::one_way`](crate::ops::CheckOptions::one_way)).
    pub one_way: bool,
}

/// How many files a report has in each category.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportCounts {
    /// `=` identical.
    pub matched: usize,
    /// `*` different.
    pub differ: usize,
    /// `+` only on the source.
    pub missing_on_dst: usize,
    /// `-` only on the destination.
    pub missing_on_src: usize,
    /// `!` could not be compared.
    pub errors: usize,
}

/// A compare's result as it is stored: the [`CheckReport`] plus where it came from, its
/// options and times, so that it can be shown and acted on ([`resync`](crate::queue::resync)) later, by
/// another process.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> cloudsync_core::Result<()> {
/// use cloudsync_core::queue::{compare, CompareSpec, SavedReport};
/// use cloudsync_core::{bytes_stream, memory_named, Remote, RemotePath, WriteMeta};
/// let (src, dst) = (memory_named("cam"), memory_named("server"));
/// src.write(&RemotePath::new("cam1/0001.jpg")?, bytes_stream("jpeg"), WriteMeta::default()).await?;
/// let report = compare(&src, &dst, &CompareSpec::default()).await?;
/// assert_eq!(report.counts().missing_on_dst, 1);
/// let back = SavedReport::from_json(&report.to_json()?)?;
/// assert_eq!(back, report);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedReport {
    /// Version of this JSON layout ([`REPORT_FORMAT`]).
    pub format: u32,
    /// A random id.
    pub id: String,
    /// The source location, as it can be opened again (a URL, `name:path` or a local path).
    ///
    /// Never with a secret in it (DESIGN.md §4, rule 8): [`SavedReport::new`] stores it through
    /// [`redact_location`], and it is serialised that way too, so `ftp://me:pw@host/x` is kept
    /// as `ftp://me:***@host/x`. A report on such a URL is re-opened with the password given
    /// another way (`?password_env=VAR` or a named remote of the config file); locations
    /// written that way from the start can be re-opened as they are.
    #[serde(serialize_with = "crate::secret::serialize_location")]
    pub source: String,
    /// The destination location (stored like [`source`](Self::source)).
    #[serde(serialize_with = "crate::secret::serialize_location")]
    pub destination: String,
    /// The options of the compare.
    pub options: CompareSpec,
    /// When the compare started.
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    /// How long it took, in seconds.
    #[serde(with = "secs")]
    pub elapsed: Duration,
    /// The result, file by file.
    pub check: CheckReport,
    /// For a follow-up report: the id of the report it follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follows: Option<String>,
    /// For a follow-up report: what the re-run transferred.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resync: Option<ResyncOutcome>,
}

fn encode_err(e: serde_json::Error) -> Error {
    Error::new(ErrorKind::Unexpected, "cannot encode report").with_source(e)
}

fn decode_err(e: serde_json::Error) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!("not a compare report: {e}"),
    )
    .with_source(e)
}

impl SavedReport {
    /// Wraps a finished check. `source` and `destination` are the locations as they can be
    /// opened again (use the remotes' [`describe`](Remote::describe) when they are URLs); a
    /// password in them is replaced by `***` ([`redact_location`]).
    pub fn new(
        check: CheckReport,
        source: impl Into<String>,
        destination: impl Into<String>,
        options: CompareSpec,
    ) -> Self {
        SavedReport {
            format: REPORT_FORMAT,
            id: random_id(),
            source: redact_location(&source.into()),
            destination: redact_location(&destination.into()),
            options,
            created: check.checked_at.unwrap_or_else(OffsetDateTime::now_utc),
            elapsed: Duration::ZERO,
            check,
            follows: None,
            resync: None,
        }
    }

    /// Files per category.
    pub fn counts(&self) -> ReportCounts {
        let c = &self.check;
        ReportCounts {
            matched: c.matched.len(),
            differ: c.differ.len(),
            missing_on_dst: c.missing_on_dst.len(),
            missing_on_src: c.missing_on_src.len(),
            errors: c.errors.len(),
        }
    }

    /// Compact JSON (reports can hold millions of files).
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string(self).map_err(encode_err)
    }

    /// Reads a report from JSON.
    pub fn from_json(text: &str) -> Result<Self> {
        Self::from_slice(text.as_bytes())
    }

    /// Reads a report from JSON bytes, refusing formats newer than this library knows.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        let r: SavedReport = serde_json::from_slice(bytes).map_err(decode_err)?;
        if r.format > REPORT_FORMAT {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "report format {} is newer than this version understands ({REPORT_FORMAT})",
                    r.format
                ),
            ));
        }
        Ok(r)
    }

    /// Writes the report as JSON at `path` on `remote` (atomically).
    pub async fn save(&self, remote: &dyn Remote, path: &RemotePath) -> Result<()> {
        let body = serde_json::to_vec(self).map_err(encode_err)?;
        let meta = WriteMeta {
            size: Some(body.len() as u64),
            ..Default::default()
        };
        remote.write(path, bytes_stream(body), meta).await?;
        Ok(())
    }

    /// Reads a report saved with [`save`](Self::save).
    pub async fn load(remote: &dyn Remote, path: &RemotePath) -> Result<Self> {
        let body = collect_bytes(remote.read(path, None).await?).await?;
        Self::from_slice(&body).map_err(|e| e.with_path(path))
    }

    /// Writes the report as JSON to a local file (through a temporary file and a rename, so
    /// the file is replaced whole or not at all).
    pub async fn save_file(&self, path: &Path) -> Result<()> {
        let body = serde_json::to_vec(self).map_err(encode_err)?;
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".{}.tmp", random_id()));
        let tmp = PathBuf::from(tmp);
        let io = |e: std::io::Error, p: &Path| Error::from(e).with_path(p.display());
        tokio::fs::write(&tmp, &body)
            .await
            .map_err(|e| io(e, &tmp))?;
        if let Err(e) = tokio::fs::rename(&tmp, path).await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(io(e, path));
        }
        Ok(())
    }

    /// Reads a report from a local file.
    pub async fn load_file(path: &Path) -> Result<Self> {
        let body = tokio::fs::read(path)
            .await
            .map_err(|e| Error::from(e).with_path(path.display()))?;
        Self::from_slice(&body).map_err(|e| e.with_path(path.display()))
    }

    /// The report for people: a header, the counts by category, then one line per file that
    /// is not identical (`+ path (size, modtime)`, ...), and with `all` the identical ones too.
    pub fn to_text(&self, all: bool) -> String {
        let mut s = String::new();
        let c = self.counts();
        let _ = writeln!(s, "report {}", self.id);
        if let Some(f) = &self.follows {
            let _ = writeln!(s, "follow-up of {f}");
        }
        let _ = writeln!(s, "source:      {}", redact_location(&self.source));
        let _ = writeln!(s, "destination: {}", redact_location(&self.destination));
        let _ = writeln!(
            s,
            "checked:     {} ({}, {:.1} s)",
            rfc3339(self.created),
            self.check.method,
            self.elapsed.as_secs_f64()
        );
        let _ = writeln!(
            s,
            "= {} identical, * {} different, + {} missing on destination, \
             - {} missing on source, ! {} errors",
            c.matched, c.differ, c.missing_on_dst, c.missing_on_src, c.errors
        );
        if let Some(r) = &self.resync {
            let _ = writeln!(
                s,
                "resync: {} requested, {} transferred ({} bytes), {} skipped, {} failed",
                r.requested,
                r.transferred,
                r.bytes,
                r.skipped.len(),
                r.errors.len()
            );
            for k in &r.skipped {
                let _ = writeln!(s, "  skipped {}: {}", k.path, k.reason);
            }
        }
        let mut section = |title: &str, mark: char, items: &[CheckItem]| {
            if items.is_empty() {
                return;
            }
            let _ = writeln!(s, "{title}:");
            for i in items {
                let _ = writeln!(s, "{mark} {}{}", i.path, describe_item(i));
            }
        };
        section("missing on destination", '+', &self.check.missing_on_dst);
        section("different", '*', &self.check.differ);
        section("missing on source", '-', &self.check.missing_on_src);
        if all {
            section("identical", '=', &self.check.matched);
        }
        if !self.check.errors.is_empty() {
            let _ = writeln!(s, "errors:");
            for e in &self.check.errors {
                let _ = writeln!(s, "! {e}");
            }
        }
        s
    }
}

/// `2026-01-01T10:00:00.5Z`.
fn rfc3339(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// ` (src 10 B 2026-01-01 10:00:00, dst 12 B ...)`.
fn describe_item(i: &CheckItem) -> String {
    let side = |size: Option<u64>, t: Option<OffsetDateTime>| -> Option<String> {
        let size = size?;
        Some(match t {
            Some(t) => format!("{size} B, {}", rfc3339(t)),
            None => format!("{size} B"),
        })
    };
    let parts: Vec<String> = [
        side(i.src_size, i.src_modtime).map(|v| format!("src {v}")),
        side(i.dst_size, i.dst_modtime).map(|v| format!("dst {v}")),
    ]
    .into_iter()
    .flatten()
    .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join("; "))
    }
}

/// One file of the report that was not transferred, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResyncSkip {
    /// The path.
    pub path: RemotePath,
    /// Why.
    pub reason: String,
}

/// What a [`resync`](crate::queue::resync) did (stored in the follow-up report's [`SavedReport::resync`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResyncOutcome {
    /// Files the report asked for.
    pub requested: u64,
    /// Files transferred.
    pub transferred: u64,
    /// Bytes transferred.
    pub bytes: u64,
    /// Files that turned out identical on the destination already (nothing to do).
    pub already_there: u64,
    /// Files left alone after re-validation against the source.
    pub skipped: Vec<ResyncSkip>,
    /// Transfers that failed.
    pub errors: Vec<ErrorRecord>,
    /// Whether this was a dry run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

pub(crate) mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    // Durations as seconds with millisecond precision (exact round trips for durations made
    // with `millis`).

    /// `d` truncated to whole milliseconds.
    pub(crate) fn millis(d: Duration) -> Duration {
        Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(millis(*d).as_millis() as f64 / 1000.0)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        let ms = (secs * 1000.0).round();
        if !(0.0..=u64::MAX as f64).contains(&ms) {
            return Err(serde::de::Error::custom("duration out of range"));
        }
        Ok(Duration::from_millis(ms as u64))
    }
}

//! [`IngestReport`]: what one ingest run did, as JSON and as a short text, and where it is
//! written (`reports/<time>-<id>.json` and `.txt`, names that sort by time).

use std::fmt::{self, Write as _};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::entry::WriteMeta;
use crate::error::{Error, ErrorKind, Result};
use crate::path::RemotePath;
use crate::remote::{Remote, bytes_stream};
use crate::report::{ErrorRecord, file_stamp, stamp};

/// One file moved into the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestedFile {
    /// Path in the drop folder.
    pub path: RemotePath,
    /// Size in bytes.
    pub size: u64,
    /// Its modtime in the drop folder.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub modtime: Option<OffsetDateTime>,
    /// Path on the target.
    pub target_path: RemotePath,
    /// Path of the archive copy (on the archive location's remote), if archives are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive_path: Option<RemotePath>,
}

/// Why a file was left in the drop folder without an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
#[non_exhaustive]
pub enum SkipReason {
    /// Modified less than `settle` ago.
    TooRecent {
        /// Its age in whole seconds (negative when the modtime is in the future).
        age_secs: i64,
    },
    /// Its size or modtime changed between the two looks.
    StillChanging,
    /// The backend reports no modtime, so its age is unknown.
    NoModtime,
    /// Its name or a directory above it starts with `.` or `_`.
    Hidden,
    /// The filter rules exclude it.
    Excluded,
    /// It disappeared before it could be taken (another process moved it).
    Vanished,
    /// It changed while it was being copied or archived; it stays in the drop folder for the
    /// next run (copies already made stay too, and are replaced or added to then).
    ChangedDuringIngest,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::TooRecent { age_secs } => {
                write!(f, "too recent (modified {age_secs} s ago)")
            }
            SkipReason::StillChanging => f.write_str("still being written (size changed)"),
            SkipReason::NoModtime => f.write_str("no modtime, age unknown"),
            SkipReason::Hidden => f.write_str("hidden or `_` name"),
            SkipReason::Excluded => f.write_str("excluded by filters"),
            SkipReason::Vanished => f.write_str("disappeared before it was taken"),
            SkipReason::ChangedDuringIngest => {
                f.write_str("changed while being ingested, left for the next run")
            }
        }
    }
}

/// One file (or directory, for hidden ones) left in the drop folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedFile {
    /// Path in the drop folder.
    pub path: RemotePath,
    /// Whether it is a directory (a hidden directory is not looked into).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dir: bool,
    /// Its size (0 for directories).
    pub size: u64,
    /// Why it was left.
    #[serde(flatten)]
    pub reason: SkipReason,
}

/// The report of one [`ingest`](super::ingest) run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IngestReport {
    /// A random id of this run (also in the report's file name).
    pub id: String,
    /// The drop folder.
    pub drop: String,
    /// The target.
    pub target: String,
    /// When the run started.
    #[serde(with = "time::serde::rfc3339")]
    pub started: OffsetDateTime,
    /// How long it took, in seconds.
    #[serde(with = "secs")]
    pub elapsed: Duration,
    /// The settle period used, in seconds.
    #[serde(with = "secs")]
    pub settle: Duration,
    /// Files moved into the target.
    pub ingested: Vec<IngestedFile>,
    /// Files left in the drop folder on purpose, with the reason.
    pub skipped: Vec<SkippedFile>,
    /// Files that could not be ingested (they are still in the drop folder unless the error
    /// says otherwise).
    pub failed: Vec<ErrorRecord>,
    /// Bytes ingested.
    pub bytes: u64,
    /// Where the report was written (JSON and text), if it was.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub report_files: Vec<RemotePath>,
}

impl IngestReport {
    pub(crate) fn new(id: String, drop: String, target: String, settle: Duration) -> Self {
        IngestReport {
            id,
            drop,
            target,
            started: OffsetDateTime::now_utc(),
            elapsed: Duration::ZERO,
            settle,
            ingested: Vec::new(),
            skipped: Vec::new(),
            failed: Vec::new(),
            bytes: 0,
            report_files: Vec::new(),
        }
    }

    /// Whether no file failed.
    pub fn is_ok(&self) -> bool {
        self.failed.is_empty()
    }

    /// Sorts every list by path.
    pub fn sort(&mut self) {
        self.ingested.sort_by(|a, b| a.path.cmp(&b.path));
        self.skipped.sort_by(|a, b| a.path.cmp(&b.path));
        self.failed.sort_by(|a, b| a.path.cmp(&b.path));
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self)
            .map_err(|e| Error::new(ErrorKind::Unexpected, "cannot encode report").with_source(e))
    }

    /// A report read back from JSON.
    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("not an ingest report: {e}"),
            )
            .with_source(e)
        })
    }

    /// A short human-readable text: counts, then one line per file.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "ingest {} from {} to {}",
            self.id, self.drop, self.target
        );
        let _ = writeln!(
            s,
            "started {}, took {:.1} s, settle {} s",
            stamp(self.started),
            self.elapsed.as_secs_f64(),
            self.settle.as_secs()
        );
        let _ = writeln!(
            s,
            "ingested {} ({} bytes), skipped {}, failed {}",
            self.ingested.len(),
            self.bytes,
            self.skipped.len(),
            self.failed.len()
        );
        for f in &self.ingested {
            let _ = write!(s, "+ {} ({} bytes) -> {}", f.path, f.size, f.target_path);
            if let Some(a) = &f.archive_path {
                let _ = write!(s, ", archived as {a}");
            }
            s.push('\n');
        }
        for f in &self.skipped {
            let slash = if f.dir { "/" } else { "" };
            let _ = writeln!(s, "- {}{slash}: {}", f.path, f.reason);
        }
        for f in &self.failed {
            let _ = writeln!(s, "! {f}");
        }
        s
    }

    /// The report's file stem: `2026-11-23T14-05-00Z-<id>` (sorts by time).
    pub fn file_stem(&self) -> String {
        format!("{}-{}", file_stamp(self.started), self.id)
    }

    /// Writes `<dir>/<stem>.json` and `<dir>/<stem>.txt` on `remote` and records their paths.
    pub(crate) async fn write_to(&mut self, remote: &dyn Remote, dir: &RemotePath) -> Result<()> {
        let stem = self.file_stem();
        let json_path = dir.join(&format!("{stem}.json"))?;
        let txt_path = dir.join(&format!("{stem}.txt"))?;
        self.report_files = vec![json_path.clone(), txt_path.clone()];
        for (path, body) in [(&json_path, self.to_json()?), (&txt_path, self.to_text())] {
            let meta = WriteMeta {
                size: Some(body.len() as u64),
                ..Default::default()
            };
            remote.write(path, bytes_stream(body), meta).await?;
        }
        Ok(())
    }
}

/// `2026-11-23`: the UTC date of `t`.
pub(crate) fn utc_date(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
}

mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Duration::try_from_secs_f64(f64::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

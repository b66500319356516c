//! `ls` (rclone lsf) and `lsjson` output.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use cloudsync::deps::time::UtcOffset;
use cloudsync::ops::{self, ListOptions};
use cloudsync::{Entry, Error, ErrorKind, ErrorRecord, FilterSet, Remote, RemotePath};
use futures::StreamExt;
use serde::Serialize;
use time::macros::format_description;

use crate::cli::ListShape;

/// A listing: the entries in rclone's order, and the failures met on the way.
pub struct Listing {
    pub entries: Vec<Entry>,
    pub errors: Vec<ErrorRecord>,
}

/// Lists a remote's root as `ls`/`lsjson` do.
///
/// Directories come before their contents: each directory's entries sorted by name, directories
/// in breadth-first order (the order `rclone lsf -R` prints on a local tree).
pub async fn collect(
    remote: &Arc<dyn Remote>,
    shape: &ListShape,
    filter: FilterSet,
) -> Result<Listing, Error> {
    let opts = ListOptions {
        filter,
        recursive: shape.recursive,
        checkers: shape.checkers.max(1),
    };
    let mut stream = ops::list(remote, &RemotePath::root(), &opts);
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    let mut root_missing = None;
    while let Some(r) = stream.next().await {
        match r {
            Ok(e) => entries.push(e),
            Err(e) if e.kind() == ErrorKind::NotFound && e.path().is_none_or(str::is_empty) => {
                root_missing = Some(e);
            }
            Err(e) => {
                let path = e
                    .path()
                    .and_then(|p| RemotePath::new(p).ok())
                    .unwrap_or_default();
                errors.push(ErrorRecord::new(path, &e));
            }
        }
    }
    if root_missing.is_some() && entries.is_empty() {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!("directory not found: {}", remote.describe()),
        ));
    }
    entries.retain(|e| !(shape.files_only && e.is_dir() || shape.dirs_only && e.is_file()));
    entries.sort_by(|a, b| order_key(&a.path).cmp(&order_key(&b.path)));
    Ok(Listing { entries, errors })
}

fn order_key(p: &RemotePath) -> (usize, String, &str) {
    let parent = p.parent().unwrap_or_default();
    (parent.depth(), parent.as_str().to_owned(), p.name())
}

/// Writes `ls` lines: paths relative to the root, directories with a trailing `/`.
pub fn write_lsf(out: &mut impl Write, entries: &[Entry]) -> std::io::Result<()> {
    for e in entries {
        let slash = if e.is_dir() { "/" } else { "" };
        writeln!(out, "{}{slash}", e.path)?;
    }
    Ok(())
}

/// rclone's lsjson timestamps: RFC 3339 in UTC with exactly nine fractional digits.
const RCLONE_TIME: &[time::format_description::BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z");

/// One entry as rclone lsjson prints it.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct JsonEntry<'a> {
    path: &'a str,
    name: &'a str,
    size: i64,
    mime_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    mod_time: Option<String>,
    is_dir: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    hashes: Option<BTreeMap<&'static str, String>>,
}

/// Fills in every cheap-or-not hash of each file (`lsjson --hash`), `checkers` at a time.
pub async fn add_hashes(
    remote: &Arc<dyn Remote>,
    entries: &mut [Entry],
    checkers: usize,
    errors: &mut Vec<ErrorRecord>,
) {
    let kinds = remote.capabilities().hashes.clone();
    let files: Vec<(usize, Entry)> = entries
        .iter()
        .cloned()
        .enumerate()
        .filter(|(_, e)| e.is_file())
        .collect();
    let jobs = files.into_iter().map(|(i, e)| {
        let remote = remote.clone();
        let kinds = kinds.clone();
        async move {
            let mut found = Vec::new();
            for k in kinds {
                if e.hashes.get(k).is_some() {
                    continue;
                }
                match remote.hash(&e.path, k).await {
                    Ok(v) => found.push((k, v)),
                    Err(err) => return (i, Err(ErrorRecord::new(e.path.clone(), &err))),
                }
            }
            (i, Ok(found))
        }
    });
    let mut results = futures::stream::iter(jobs).buffer_unordered(checkers.max(1));
    while let Some((i, r)) = results.next().await {
        match r {
            Ok(found) => {
                for (k, v) in found {
                    entries[i].hashes.insert(k, v);
                }
            }
            Err(rec) => errors.push(rec),
        }
    }
}

/// Writes the lsjson array: `[`, one entry per line, `]`.
pub fn write_lsjson(
    out: &mut impl Write,
    entries: &[Entry],
    with_hashes: bool,
) -> std::io::Result<()> {
    writeln!(out, "[")?;
    for (i, e) in entries.iter().enumerate() {
        let hashes = (with_hashes && e.is_file()).then(|| {
            e.hashes
                .iter()
                .map(|(k, v)| (k.as_str(), v.to_owned()))
                .collect()
        });
        let j = JsonEntry {
            path: e.path.as_str(),
            name: e.name(),
            size: if e.is_dir() {
                -1
            } else {
                i64::try_from(e.size).unwrap_or(i64::MAX)
            },
            mime_type: if e.is_dir() {
                "inode/directory".to_owned()
            } else {
                crate::mime::mime_type(e.name())
            },
            mod_time: e
                .modtime
                .and_then(|t| t.to_offset(UtcOffset::UTC).format(RCLONE_TIME).ok()),
            is_dir: e.is_dir(),
            hashes,
        };
        let sep = if i + 1 < entries.len() { "," } else { "" };
        let text = serde_json::to_string(&j).map_err(std::io::Error::other)?;
        writeln!(out, "{text}{sep}")?;
    }
    writeln!(out, "]")
}

//! Finding the files to ingest: walk the drop folder (skipping our own folders, hidden names
//! and filtered directories), keep files old enough, then look a second time to drop files
//! whose size still changes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use time::OffsetDateTime;

use crate::entry::Entry;
use crate::error::{ErrorKind, Result};
use crate::path::RemotePath;
use crate::remote::Remote;
use crate::report::ErrorRecord;

use super::options::IngestOptions;
use super::report::{SkipReason, SkippedFile};

/// Directories listed concurrently.
const LISTERS: usize = 8;

/// What the walk found.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    /// Files to ingest, in path order.
    pub(crate) candidates: Vec<Entry>,
    /// Files left on purpose.
    pub(crate) skipped: Vec<SkippedFile>,
    /// Directories that could not be listed.
    pub(crate) failed: Vec<ErrorRecord>,
}

fn is_hidden(name: &str) -> bool {
    name.starts_with(['.', '_'])
}

fn skip(e: &Entry, reason: SkipReason) -> SkippedFile {
    SkippedFile {
        path: e.path.clone(),
        dir: e.is_dir(),
        size: e.size,
        reason,
    }
}

/// One folder of the drop, without our own temporary upload files (another run's writes in
/// progress, never something to ingest).
async fn list_dir(drop: &Arc<dyn Remote>, dir: &RemotePath) -> Result<Vec<Entry>> {
    let mut all: Vec<Entry> = drop.list(dir).await?.try_collect().await?;
    all.retain(|e| !crate::temp::is_temp_name(e.name()));
    Ok(all)
}

/// Walks the drop folder. `excluded` are directories never looked into (archives, reports).
pub(crate) async fn scan(
    drop: &Arc<dyn Remote>,
    opts: &IngestOptions,
    excluded: &[RemotePath],
    now: OffsetDateTime,
) -> Result<Scan> {
    let mut out = Scan::default();
    let mut pending = vec![RemotePath::root()];
    while !pending.is_empty() {
        let listed: Vec<(RemotePath, Result<Vec<Entry>>)> =
            futures::stream::iter(pending.drain(..))
                .map(|dir| async move {
                    let r = list_dir(drop, &dir).await;
                    (dir, r)
                })
                .buffer_unordered(LISTERS)
                .collect()
                .await;
        for (dir, entries) in listed {
            let entries = match entries {
                Ok(e) => e,
                Err(e) if dir.is_root() => return Err(e),
                Err(e) => {
                    out.failed.push(ErrorRecord::new(dir, &e));
                    continue;
                }
            };
            for e in entries {
                if e.is_dir() {
                    if excluded.iter().any(|x| e.path.starts_with(x)) {
                        continue;
                    }
                    if opts.ignore_hidden && is_hidden(e.name()) {
                        out.skipped.push(skip(&e, SkipReason::Hidden));
                    } else if opts.filter.descend_into(&e.path) {
                        pending.push(e.path);
                    }
                    continue;
                }
                if let Some(reason) = judge(&e, opts, now) {
                    out.skipped.push(skip(&e, reason));
                } else {
                    out.candidates.push(e);
                }
            }
        }
    }
    out.candidates.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Why a file must stay, or `None` when it can be taken.
fn judge(e: &Entry, opts: &IngestOptions, now: OffsetDateTime) -> Option<SkipReason> {
    if opts.ignore_hidden && is_hidden(e.name()) {
        return Some(SkipReason::Hidden);
    }
    if !opts.filter.include_file(&e.path, e.size, e.modtime) {
        return Some(SkipReason::Excluded);
    }
    if opts.settle.is_zero() {
        return None;
    }
    let Some(modtime) = e.modtime else {
        return Some(SkipReason::NoModtime);
    };
    let age = now - modtime;
    (age < opts.settle).then(|| SkipReason::TooRecent {
        age_secs: age.whole_seconds(),
    })
}

/// The second look: lists every directory holding candidates again and keeps the files whose
/// size and modtime did not change.
pub(crate) async fn recheck(drop: &Arc<dyn Remote>, scan: &mut Scan) {
    let mut by_dir: BTreeMap<RemotePath, Vec<Entry>> = BTreeMap::new();
    for e in std::mem::take(&mut scan.candidates) {
        by_dir
            .entry(e.path.parent().unwrap_or_else(RemotePath::root))
            .or_default()
            .push(e);
    }
    let relisted: Vec<(Vec<Entry>, Result<Vec<Entry>>)> = futures::stream::iter(by_dir)
        .map(|(dir, files)| async move {
            let r = list_dir(drop, &dir).await;
            (files, r)
        })
        .buffer_unordered(LISTERS)
        .collect()
        .await;
    for (files, now) in relisted {
        let now: HashMap<RemotePath, Entry> = match now {
            Ok(v) => v.into_iter().map(|e| (e.path.clone(), e)).collect(),
            Err(e) if e.kind() == ErrorKind::NotFound => HashMap::new(),
            Err(e) => {
                for f in files {
                    scan.failed.push(ErrorRecord::new(f.path, &e));
                }
                continue;
            }
        };
        for f in files {
            match now.get(&f.path) {
                None => scan.skipped.push(skip(&f, SkipReason::Vanished)),
                Some(n) if n.size != f.size || n.modtime != f.modtime || !n.is_file() => {
                    scan.skipped.push(skip(n, SkipReason::StillChanging))
                }
                Some(n) => scan.candidates.push(n.clone()),
            }
        }
    }
    scan.candidates.sort_by(|a, b| a.path.cmp(&b.path));
}

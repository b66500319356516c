//! Single-remote clean-up operations: `delete`, `rmdirs`, `purge`, `cleanup`.

use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};

use crate::entry::Entry;
use crate::error::{ErrorKind, Result};
use crate::filter::FilterSet;
use crate::path::RemotePath;
use crate::remote::Remote;
use crate::report::{ErrorRecord, Event, Summary};

use super::{DeleteOptions, ListOptions, list};

fn emit(opts: &DeleteOptions, e: Event) {
    if let Some(s) = &opts.events {
        s(&e);
    }
}

/// Deletes the files below the root that the filters include (rclone `delete`); directories
/// stay unless [`DeleteOptions::rmdirs`] is set.
pub async fn delete(remote: &Arc<dyn Remote>, opts: &DeleteOptions) -> Result<Summary> {
    let start = std::time::Instant::now();
    let mut summary = Summary::new(String::new(), remote.describe(), opts.dry_run);
    let lopts = ListOptions {
        filter: opts.filter.clone(),
        recursive: true,
        checkers: opts.checkers,
    };
    let mut dirs = Vec::new();
    let mut files = Vec::new();
    let mut entries = list(remote, &RemotePath::root(), &lopts);
    while let Some(r) = entries.next().await {
        match r {
            Ok(e) if e.is_dir() => dirs.push(e.path),
            Ok(e) => files.push(e),
            Err(e) if e.kind() == ErrorKind::NotFound && e.path().is_none_or(str::is_empty) => {
                return Err(e);
            }
            Err(e) => {
                let path = e
                    .path()
                    .and_then(|p| RemotePath::new(p).ok())
                    .unwrap_or_default();
                summary.errors.push(ErrorRecord::new(path, &e));
            }
        }
    }
    delete_files(remote, files, opts, &mut summary).await;
    if opts.rmdirs && summary.errors.is_empty() {
        remove_dirs(remote, dirs, opts, &mut summary).await;
    }
    summary.elapsed = start.elapsed();
    Ok(summary)
}

async fn delete_files(
    remote: &Arc<dyn Remote>,
    files: Vec<Entry>,
    opts: &DeleteOptions,
    summary: &mut Summary,
) {
    if opts.dry_run {
        summary.deleted += files.len() as u64;
        return;
    }
    let mut results = futures::stream::iter(files)
        .map(|e| {
            let r = remote.clone();
            async move {
                let res = r.remove_file(&e.path).await;
                (e.path, res)
            }
        })
        .buffer_unordered(opts.checkers.max(1));
    while let Some((path, res)) = results.next().await {
        match res {
            Ok(()) => {
                summary.deleted += 1;
                emit(opts, Event::Deleted { path, dir: false });
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => summary.errors.push(ErrorRecord::new(path, &e)),
        }
    }
}

/// Removes `dirs` deepest first, leaving the ones that are not empty.
async fn remove_dirs(
    remote: &Arc<dyn Remote>,
    mut dirs: Vec<RemotePath>,
    opts: &DeleteOptions,
    summary: &mut Summary,
) {
    dirs.sort_by(|a, b| b.depth().cmp(&a.depth()).then_with(|| b.cmp(a)));
    dirs.dedup();
    for dir in dirs {
        if opts.dry_run {
            summary.dirs_deleted += 1;
            continue;
        }
        match remote.remove_dir(&dir).await {
            Ok(()) => {
                summary.dirs_deleted += 1;
                emit(
                    opts,
                    Event::Deleted {
                        path: dir,
                        dir: true,
                    },
                );
            }
            Err(e) if matches!(e.kind(), ErrorKind::Conflict | ErrorKind::NotFound) => {}
            Err(e) => summary.errors.push(ErrorRecord::new(dir, &e)),
        }
    }
}

/// Removes the empty directories below `dir` (rclone `rmdirs`), and `dir` itself unless
/// `leave_root`. Directories holding files are left alone.
pub async fn rmdirs(
    remote: &Arc<dyn Remote>,
    dir: &RemotePath,
    leave_root: bool,
    dry_run: bool,
) -> Result<Summary> {
    let start = std::time::Instant::now();
    let mut summary = Summary::new(String::new(), remote.describe(), dry_run);
    let lopts = ListOptions {
        filter: FilterSet::everything(),
        recursive: true,
        checkers: 8,
    };
    let entries: Vec<Entry> = list(remote, dir, &lopts).try_collect().await?;
    let mut dirs: Vec<RemotePath> = entries
        .into_iter()
        .filter(|e| e.is_dir())
        .map(|e| e.path)
        .collect();
    if !leave_root && !dir.is_root() {
        dirs.push(dir.clone());
    }
    let opts = DeleteOptions {
        dry_run,
        ..Default::default()
    };
    if dry_run {
        // Only directories with no files anywhere below them would go.
        let files: Vec<Entry> = list(remote, dir, &lopts)
            .try_filter(|e| futures::future::ready(e.is_file()))
            .try_collect()
            .await?;
        dirs.retain(|d| !files.iter().any(|f| f.path.starts_with(d)));
    }
    remove_dirs(remote, dirs, &opts, &mut summary).await;
    summary.elapsed = start.elapsed();
    Ok(summary)
}

/// Removes `dir` and everything in it (rclone `purge`); filters do not apply. Uses the
/// backend's fast path when it has one.
pub async fn purge(remote: &Arc<dyn Remote>, dir: &RemotePath, dry_run: bool) -> Result<Summary> {
    let start = std::time::Instant::now();
    if !dry_run && remote.capabilities().purge {
        remote.purge(dir).await?;
        let mut s = Summary::new(String::new(), remote.describe(), false);
        s.dirs_deleted = 1;
        s.elapsed = start.elapsed();
        return Ok(s);
    }
    let lopts = ListOptions {
        filter: FilterSet::everything(),
        recursive: true,
        checkers: 8,
    };
    let entries: Vec<Entry> = list(remote, dir, &lopts).try_collect().await?;
    let mut summary = Summary::new(String::new(), remote.describe(), dry_run);
    let opts = DeleteOptions {
        dry_run,
        ..Default::default()
    };
    let (dirs, files): (Vec<Entry>, Vec<Entry>) = entries.into_iter().partition(|e| e.is_dir());
    delete_files(remote, files, &opts, &mut summary).await;
    let mut dirs: Vec<RemotePath> = dirs.into_iter().map(|e| e.path).collect();
    if !dir.is_root() {
        dirs.push(dir.clone());
    }
    if summary.errors.is_empty() {
        remove_dirs(remote, dirs, &opts, &mut summary).await;
    }
    summary.elapsed = start.elapsed();
    Ok(summary)
}

/// Frees space on the remote: empties the trash and removes old versions (rclone `cleanup`).
/// Backends without such a thing return [`ErrorKind::Unsupported`].
pub async fn cleanup(remote: &Arc<dyn Remote>) -> Result<()> {
    remote.cleanup().await
}

//! Directory listings: `read_dir` on a blocking thread, one `lstat` per entry (relative to the
//! open directory), results sent to the caller in batches so a million-entry directory streams
//! with bounded memory.

use std::ffi::OsString;
use std::fs::ReadDir;
use std::path::Path;

use cloudsync_core::{Entry, EntryStream, Error, ErrorKind, RemotePath, Result};
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::core::{CoreRef, entry_from_meta, is_temp_name, parse_error};

/// Entries per batch sent from the blocking thread.
const BATCH: usize = 512;
/// Batches buffered ahead of the consumer.
const AHEAD: usize = 4;

/// Lists one directory level of `dir`.
pub(crate) async fn list(core: &CoreRef, dir: &RemotePath) -> Result<EntryStream> {
    let local = core.local(dir);
    let d = dir.clone();
    let rd = core
        .blocking(move |c| {
            std::fs::read_dir(&local).map_err(|e| {
                let e = parse_error(e);
                let e = if e.kind() == ErrorKind::NotFound {
                    Error::new(ErrorKind::NotFound, "directory not found").with_source(e)
                } else {
                    e
                };
                c.ctx(e, "list", &d)
            })
        })
        .await?;
    let (tx, rx) = mpsc::channel::<Vec<Result<Entry>>>(AHEAD);
    let core = core.clone();
    let dir = dir.clone();
    tokio::task::spawn_blocking(move || produce(&core, &dir, rd, &tx));
    let batches = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|batch| (batch, rx))
    });
    Ok(batches.flat_map(futures::stream::iter).boxed())
}

/// Reads `rd` and sends its entries in batches until done or the receiver is gone.
fn produce(
    core: &crate::core::Core,
    dir: &RemotePath,
    rd: ReadDir,
    tx: &mpsc::Sender<Vec<Result<Entry>>>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    for item in rd {
        let res = match item {
            Ok(de) => one(core, dir, &de),
            Err(e) => Some(Err(core.ctx(parse_error(e), "list", dir))),
        };
        if let Some(r) = res {
            batch.push(r);
        }
        if batch.len() >= BATCH {
            if tx.blocking_send(std::mem::take(&mut batch)).is_err() {
                return;
            }
            batch.reserve(BATCH);
        }
    }
    if !batch.is_empty() {
        let _ = tx.blocking_send(batch);
    }
}

/// The entry for one directory item: `None` to skip it (temp files, unfollowed symlinks,
/// special files, files removed while listing), `Some(Err)` when it cannot be reported.
fn one(
    core: &crate::core::Core,
    dir: &RemotePath,
    de: &std::fs::DirEntry,
) -> Option<Result<Entry>> {
    let name: OsString = de.file_name();
    if is_temp_name(name.as_encoded_bytes()) {
        return None;
    }
    let local = de.path();
    let name = match name.into_string() {
        Ok(n) => n,
        Err(raw) => {
            return Some(Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "file name {:?} is not valid UTF-8; rename it to sync it",
                    raw.to_string_lossy()
                ),
            )
            .with_operation("list")
            .with_remote(&core.name)
            .with_path(local.display())));
        }
    };
    let path = match dir.join(&name) {
        Ok(p) => p,
        Err(e) => {
            return Some(Err(e
                .with_operation("list")
                .with_remote(&core.name)
                .with_path(local.display())));
        }
    };
    let meta = match de.file_type() {
        Ok(ft) if ft.is_symlink() => {
            if !core.follow_symlinks {
                tracing::warn!(
                    path = %local.display(),
                    "skipping symbolic link (set follow_symlinks to follow it)"
                );
                return None;
            }
            std::fs::metadata(&local)
        }
        _ => de.metadata(),
    };
    let meta = match meta {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !is_link(&local) => {
            // Removed between readdir and lstat: it is simply gone.
            return None;
        }
        Err(e) => return Some(Err(core.ctx(parse_error(e), "list", &path))),
    };
    match entry_from_meta(path, &meta) {
        Some(e) => Some(Ok(e)),
        None => {
            tracing::warn!(
                path = %local.display(),
                kind = ?meta.file_type(),
                "skipping special file (not a regular file or directory)"
            );
            None
        }
    }
}

/// Whether `p` is (still) a symlink; a broken followed link is an error, not a vanished file.
fn is_link(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink())
}

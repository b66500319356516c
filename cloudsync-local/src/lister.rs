//! Directory listings: `read_dir` on a blocking thread, one `lstat` per entry (relative to the
//! open directory), results sent to the caller in batches so a million-entry directory streams
//! with bounded memory.

use std::ffi::OsString;
use std::fs::ReadDir;
use std::path::Path;

use cloudsync_core::{Entry, EntryStream, Error, ErrorKind, RemotePath, Result};
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::core::{CoreRef, LocalCore, check_local_name, entry_from_meta, parse_error};

/// Entries per batch sent from the blocking thread: a directory of up to this many entries
/// is listed in one hop between threads (the march keeps a whole directory anyway before it
/// sorts it, so this costs no memory for such directories).
const BATCH: usize = 1024;
/// Batches buffered ahead of the consumer.
const AHEAD: usize = 2;

/// What the blocking thread reports first.
enum First {
    /// The whole directory fit in one batch.
    Done(Vec<Result<Entry>>),
    /// The first batch, and a channel for the rest.
    More(Vec<Result<Entry>>, mpsc::Receiver<Vec<Result<Entry>>>),
}

/// Lists one directory level of `dir`.
///
/// One blocking task opens the directory and reads the first batch; a small directory is
/// returned in one hop, a big one keeps streaming batches through a bounded channel (the task
/// stops early when the caller drops the stream).
pub(crate) async fn list(core: &CoreRef, dir: &RemotePath) -> Result<EntryStream> {
    let d = dir.clone();
    let first = core
        .blocking(move |c| {
            let rd = std::fs::read_dir(c.local(&d)?).map_err(|e| {
                let e = parse_error(e);
                let e = if e.kind() == ErrorKind::NotFound {
                    Error::new(ErrorKind::NotFound, "directory not found").with_source(e)
                } else {
                    e
                };
                c.ctx(e, &d)
            })?;
            let mut rd = rd.fuse();
            let batch = next_batch(c, &d, &mut rd);
            if batch.len() < BATCH {
                return Ok(First::Done(batch));
            }
            let (tx, rx) = mpsc::channel(AHEAD);
            let core = std::sync::Arc::clone(c);
            tokio::task::spawn_blocking(move || produce(&core, &d, rd, &tx));
            Ok(First::More(batch, rx))
        })
        .await?;
    Ok(match first {
        First::Done(batch) => futures::stream::iter(batch).boxed(),
        First::More(batch, rx) => {
            let rest = futures::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|batch| (batch, rx))
            });
            futures::stream::iter(batch)
                .chain(rest.flat_map(futures::stream::iter))
                .boxed()
        }
    })
}

/// Up to [`BATCH`] reported items (skipped names do not count).
fn next_batch(
    core: &LocalCore,
    dir: &RemotePath,
    rd: &mut std::iter::Fuse<ReadDir>,
) -> Vec<Result<Entry>> {
    let mut batch = Vec::with_capacity(BATCH);
    for item in rd.by_ref() {
        let res = match item {
            Ok(de) => one(core, dir, &de),
            Err(e) => Some(Err(core.ctx(parse_error(e), dir))),
        };
        if let Some(r) = res {
            batch.push(r);
            if batch.len() >= BATCH {
                break;
            }
        }
    }
    batch
}

/// Sends the rest of `rd` in batches until done or the receiver is gone.
fn produce(
    core: &LocalCore,
    dir: &RemotePath,
    mut rd: std::iter::Fuse<ReadDir>,
    tx: &mpsc::Sender<Vec<Result<Entry>>>,
) {
    loop {
        let batch = next_batch(core, dir, &mut rd);
        if batch.is_empty() || tx.blocking_send(batch).is_err() {
            return;
        }
    }
}

/// The entry for one directory item: `None` to skip it (unfollowed symlinks, special files,
/// files removed while listing), `Some(Err)` when it cannot be reported. Our temporary upload
/// files are listed like any file: the engine never pairs them, and removes old ones.
fn one(core: &LocalCore, dir: &RemotePath, de: &std::fs::DirEntry) -> Option<Result<Entry>> {
    let name: OsString = de.file_name();
    // The full local path only goes into messages: built when one is written.
    let local = || de.path();
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
            .with_path(local().display())));
        }
    };
    let path = match dir.join(&name) {
        Ok(p) => p,
        Err(e) => {
            return Some(Err(e.with_path(local().display())));
        }
    };
    // A name this system cannot address again (on Windows `NUL`, `a.`, made through `\\?\`
    // or by another OS): reading, replacing or deleting it would touch another file.
    // Only the new name: the directory's own names were checked when it was listed.
    if let Err(e) = check_local_name(&name, core.windows_names) {
        return Some(Err(core.ctx(e, &path)));
    }
    let meta = match de.file_type() {
        Ok(ft) if ft.is_symlink() => {
            if !core.follow_symlinks {
                tracing::warn!(
                    path = %local().display(),
                    "skipping symbolic link (set follow_symlinks to follow it)"
                );
                return None;
            }
            std::fs::metadata(local())
        }
        _ => de.metadata(),
    };
    let meta = match meta {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !is_link(&local()) => {
            // Removed between readdir and lstat: it is simply gone.
            return None;
        }
        Err(e) => return Some(Err(core.ctx(parse_error(e), &path))),
    };
    match entry_from_meta(path, &meta) {
        Some(e) => Some(Ok(e)),
        None => {
            tracing::warn!(
                path = %local().display(),
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

/// Metadata of `path`.
pub(crate) async fn stat(core: &CoreRef, path: &RemotePath) -> Result<Entry> {
    let p = path.clone();
    core.blocking(move |c| {
        let meta = c
            .metadata(&c.local(&p)?)
            .map_err(|e| c.ctx(parse_error(e), &p))?;
        entry_from_meta(p.clone(), &meta).ok_or_else(|| {
            c.ctx(
                Error::new(
                    ErrorKind::Unsupported,
                    format!("not a regular file or directory ({:?})", meta.file_type()),
                ),
                &p,
            )
        })
    })
    .await
}

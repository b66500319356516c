//! Atomic writes: content goes to `.cloudsync-tmp-<random>.<name>` in the target directory,
//! gets its modtime and an `fsync` (unless turned off), then is renamed over the target. A failed
//! or abandoned write removes its temp file, so nothing partial is ever visible under the
//! final name.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use cloudsync_core::{ByteStream, Entry, Error, ErrorKind, RemotePath, Result, WriteMeta};
use futures::StreamExt;
use time::OffsetDateTime;
use tokio::sync::mpsc;

use crate::core::{
    Core, CoreRef, entry_from_meta, parse_error, set_file_modtime, sync_created_dirs, sync_dir,
    temp_name,
};

/// Chunks buffered between the body stream and the writing thread.
const AHEAD: usize = 8;

/// A message to the writing thread.
enum Msg {
    Data(Bytes),
    /// The body ended normally; finish the file. A closed channel without `Done` aborts.
    Done,
}

/// Removes the temp file unless the write got to the rename.
struct TempGuard(Option<PathBuf>);

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            if let Err(e) = std::fs::remove_file(&p) {
                tracing::warn!(path = %p.display(), error = %e, "cannot remove temp file");
            }
        }
    }
}

/// Writes `path` from `fill` atomically: creates the parents, a temp file next to the target,
/// lets `fill` write the content (returning its size), checks the size, sets the modtime,
/// optionally syncs, and renames into place.
pub(crate) fn install(
    core: &Core,
    op: &'static str,
    path: &RemotePath,
    expected_size: Option<u64>,
    modtime: Option<OffsetDateTime>,
    fill: impl FnOnce(&mut File) -> Result<u64>,
) -> Result<Entry> {
    if path.is_root() {
        return Err(core.ctx(
            Error::new(
                ErrorKind::InvalidInput,
                "cannot write to the root directory",
            ),
            path,
        ));
    }
    core.check_no_links(path, false, op)?;
    let target = core.local(path)?;
    let parent: &Path = target.parent().unwrap_or(&core.root);
    let tmp = parent.join(temp_name(path.name()));
    let create = || OpenOptions::new().write(true).create_new(true).open(&tmp);
    // Parents usually exist: create them only when the first attempt says they don't (one
    // syscall per file instead of three on the common path).
    let mut file = match create() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(parent).map_err(|e| {
                let e = parse_error(e);
                let e = if e.kind() == ErrorKind::AlreadyExists {
                    Error::new(
                        ErrorKind::Conflict,
                        "a parent of the target is not a directory",
                    )
                    .with_source(e)
                } else {
                    e
                };
                core.ctx(e, path)
            })?;
            if core.fsync {
                sync_created_dirs(&core.root, parent)
                    .map_err(|e| core.ctx(parse_error(e), path))?;
            }
            create()
        }
        other => other,
    }
    .map_err(|e| core.ctx(parse_error(e), path))?;
    let mut guard = TempGuard(Some(tmp.clone()));
    let written = fill(&mut file)?;
    if let Some(expected) = expected_size {
        if written != expected {
            return Err(core.ctx(
                Error::new(
                    ErrorKind::ConditionNotMatch,
                    format!("expected {expected} bytes, got {written}"),
                ),
                path,
            ));
        }
    }
    if let Some(t) = modtime {
        set_file_modtime(&file, t).map_err(|e| core.ctx(parse_error(e), path))?;
    }
    if core.fsync {
        file.sync_all()
            .map_err(|e| core.ctx(parse_error(e), path))?;
    }
    // The entry is known without a stat when we set the modtime ourselves.
    let entry = match modtime {
        Some(t) => Entry::file(path.clone(), written).with_modtime(Some(t)),
        None => {
            let meta = file
                .metadata()
                .map_err(|e| core.ctx(parse_error(e), path))?;
            entry_from_meta(path.clone(), &meta).ok_or_else(|| {
                core.ctx(
                    Error::new(ErrorKind::Unexpected, "written file is not a regular file"),
                    path,
                )
            })?
        }
    };
    drop(file);
    std::fs::rename(&tmp, &target).map_err(|e| core.ctx(parse_error(e), path))?;
    guard.0 = None;
    if core.fsync {
        sync_dir(parent).map_err(|e| core.ctx(parse_error(e), path))?;
    }
    Ok(entry)
}

/// Writes a stream: a blocking thread owns the file and receives chunks through a channel.
pub(crate) async fn write(
    core: &CoreRef,
    path: &RemotePath,
    mut body: ByteStream,
    meta: WriteMeta,
) -> Result<Entry> {
    let (tx, mut rx) = mpsc::channel::<Msg>(AHEAD);
    let p = path.clone();
    let job = core.blocking(move |c| {
        install(c, "write", &p, meta.size, meta.modtime, |file| {
            let mut n = 0u64;
            loop {
                match rx.blocking_recv() {
                    Some(Msg::Data(chunk)) => {
                        file.write_all(&chunk)
                            .map_err(|e| c.ctx(parse_error(e), &p))?;
                        n += chunk.len() as u64;
                    }
                    Some(Msg::Done) => return Ok(n),
                    None => {
                        return Err(c.ctx(Error::new(ErrorKind::Cancelled, "write abandoned"), &p));
                    }
                }
            }
        })
    });
    let pump = async move {
        while let Some(item) = body.next().await {
            match item {
                Ok(chunk) => {
                    if chunk.is_empty() {
                        continue;
                    }
                    if tx.send(Msg::Data(chunk)).await.is_err() {
                        // The writer stopped; its error is what we report.
                        return Ok(());
                    }
                }
                Err(e) => return Err(e),
            }
        }
        let _ = tx.send(Msg::Done).await;
        Ok(())
    };
    let (pumped, written) = futures::join!(pump, job);
    match (pumped, written) {
        // The body's error (the source's read) keeps its own context.
        (Err(e), _) => Err(e),
        (Ok(()), r) => r,
    }
}

/// Writes `path` from the local file `src` with the kernel's copy path (`copy_file_range` on
/// Linux), keeping `modtime` when given.
pub(crate) fn copy_from_local(
    core: &Core,
    op: &'static str,
    path: &RemotePath,
    src: &Path,
    expected_size: Option<u64>,
    modtime: Option<OffsetDateTime>,
) -> Result<Entry> {
    let src_err = |e: Error| e.with_path(src.display());
    let meta = std::fs::metadata(src).map_err(|e| src_err(parse_error(e)))?;
    if !meta.is_file() {
        return Err(src_err(Error::new(
            ErrorKind::Unsupported,
            "source is not a regular file",
        )));
    }
    let mut from = File::open(src).map_err(|e| src_err(parse_error(e)))?;
    install(core, op, path, expected_size, modtime, |to| {
        // `io::copy` between two files uses copy_file_range/sendfile on Linux.
        std::io::copy(&mut from, to).map_err(|e| src_err(parse_error(e)))
    })
}

//! Listing and stat: `MLSD`/`MLST` when the server has them, otherwise `LIST` (corrected with
//! `MDTM` for exact times) and `SIZE`/`MDTM`/`CWD` probes.

use std::sync::Arc;

use cloudsync_core::{Entry, EntryStream, Error, ErrorKind, RemotePath, Result};
use futures::StreamExt;
use time::OffsetDateTime;

use crate::backend::Inner;
use crate::core::{Conn, TEMP_PREFIX};
use crate::parse::{ListedKind, parse_list_line, parse_mlsd_line, parse_mlst_line};

/// Lists one directory. Lines the parser cannot read and names that are not valid path
/// segments are errors in the stream (never silently skipped: a missing source entry would make
/// a sync delete its copy). Upload temp files are hidden.
pub(crate) async fn list(inner: &Arc<Inner>, dir: &RemotePath) -> Result<EntryStream> {
    let abs = inner.paths.abs(dir)?;
    let mut conn = inner.pool.get().await?;
    let mlsd = inner.features.mlsd;
    let lines = conn
        .list_lines(&abs, mlsd)
        .await
        .map_err(|e| e.with_path(dir))?;
    let now = OffsetDateTime::now_utc();
    let mut out: Vec<Result<Entry>> = Vec::with_capacity(lines.len());
    for line in &lines {
        let parsed = if mlsd {
            parse_mlsd_line(line)
        } else {
            parse_list_line(line, now)
        };
        let listed = match parsed {
            Ok(Some(l)) => l,
            Ok(None) => continue,
            Err(e) => {
                out.push(Err(Error::new(ErrorKind::Protocol, e.to_string())
                    .with_source(e)
                    .with_path(dir)));
                continue;
            }
        };
        if listed.name.starts_with(TEMP_PREFIX) {
            continue;
        }
        let path = match dir.join(&listed.name) {
            Ok(p) => p,
            Err(e) => {
                out.push(Err(e.with_path(dir)));
                continue;
            }
        };
        let child = match inner.paths.abs(&path) {
            Ok(a) => a,
            Err(e) => {
                out.push(Err(e));
                continue;
            }
        };
        let entry = match listed.kind {
            ListedKind::File => {
                let mut modtime = listed.modtime;
                if !listed.exact_modtime && inner.features.mdtm {
                    match conn.mdtm(&child).await {
                        Ok(t) => modtime = Some(t),
                        Err(e) if conn.broken => return Err(e),
                        Err(e) => tracing::debug!("MDTM {child}: {e}"),
                    }
                }
                Entry::file(path, listed.size).with_modtime(modtime)
            }
            ListedKind::Dir => Entry::dir(path).with_modtime(listed.modtime),
            ListedKind::Symlink(_) => match probe(&mut conn, inner, path, &child).await? {
                Some(e) => e,
                None => {
                    tracing::warn!(path = %child, "skipping a dangling symbolic link");
                    continue;
                }
            },
            _ => {
                tracing::debug!(path = %child, "skipping a special file");
                continue;
            }
        };
        out.push(Ok(entry));
    }
    Ok(futures::stream::iter(out).boxed())
}

/// What is at `abs` without `MLST`: `SIZE` answers for files, `CWD` for directories.
/// `Ok(None)` when neither works (missing, or a dangling link).
async fn probe(
    conn: &mut Conn,
    inner: &Inner,
    path: RemotePath,
    abs: &str,
) -> Result<Option<Entry>> {
    match conn.size(abs).await {
        Ok(size) => {
            let modtime = if inner.features.mdtm {
                match conn.mdtm(abs).await {
                    Ok(t) => Some(t),
                    Err(e) if conn.broken => return Err(e),
                    Err(_) => None,
                }
            } else {
                None
            };
            return Ok(Some(Entry::file(path, size).with_modtime(modtime)));
        }
        Err(e) if conn.broken => return Err(e),
        Err(_) => {}
    }
    match conn.cwd(abs).await {
        Ok(()) => Ok(Some(Entry::dir(path))),
        Err(e) if conn.broken => Err(e),
        Err(_) => Ok(None),
    }
}

/// Metadata of one path.
pub(crate) async fn stat(inner: &Arc<Inner>, path: &RemotePath) -> Result<Entry> {
    let abs = inner.paths.abs(path)?;
    if path.name().starts_with(TEMP_PREFIX) {
        return Err(not_found());
    }
    let mut conn = inner.pool.get().await?;
    if inner.features.mlst {
        match conn.mlst(&abs).await {
            Ok(line) => {
                let listed = parse_mlst_line(&line)
                    .map_err(|e| Error::new(ErrorKind::Protocol, e.to_string()).with_source(e))?;
                match listed.kind {
                    ListedKind::File => {
                        return Ok(
                            Entry::file(path.clone(), listed.size).with_modtime(listed.modtime)
                        );
                    }
                    ListedKind::Dir => {
                        return Ok(Entry::dir(path.clone()).with_modtime(listed.modtime));
                    }
                    // Links and others: ask what they point to.
                    _ => {}
                }
            }
            Err(e) if conn.broken => return Err(e),
            Err(e) if e.kind() == ErrorKind::NotFound => return Err(not_found()),
            Err(e) if e.kind() != ErrorKind::Unsupported => return Err(e),
            Err(_) => {}
        }
    }
    if path.is_root() {
        return match conn.cwd(&abs).await {
            Ok(()) => Ok(Entry::dir(path.clone())),
            Err(e) if conn.broken => Err(e),
            Err(_) => Err(not_found()),
        };
    }
    if inner.features.size || inner.features.mdtm {
        return probe(&mut conn, inner, path.clone(), &abs)
            .await?
            .ok_or_else(not_found);
    }
    // A server without SIZE: look the name up in its parent's listing.
    drop(conn);
    let parent = path.parent().unwrap_or_default();
    let mut entries = list(inner, &parent).await.map_err(|e| {
        if e.kind() == ErrorKind::NotFound {
            not_found()
        } else {
            e
        }
    })?;
    while let Some(e) = entries.next().await {
        let e = e?;
        if e.path == *path {
            return Ok(e);
        }
    }
    Err(not_found())
}

fn not_found() -> Error {
    Error::new(ErrorKind::NotFound, "no such file or directory")
}

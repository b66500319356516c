//! Listing and stat: `MLSD`/`MLST` when the server has them, otherwise `LIST` (corrected with
//! `MDTM` for exact times) and `SIZE`/`MDTM`/`CWD` probes.

use cloudsync_core::{Entry, EntryStream, Error, ErrorKind, RemotePath, Result};
use futures::StreamExt;
use time::OffsetDateTime;

use crate::core::{Conn, FtpCore, TEMP_PREFIX};
use crate::listing::Line;
use crate::parse::{ListedKind, parse_list_line, parse_mlsd_line, parse_mlst_line};
use crate::pool::Pooled;

/// Lists one directory. Lines the parser cannot read and names that are not valid path
/// segments are errors in the stream (never silently skipped: a missing source entry would make
/// a sync delete its copy). A directory the server refuses is
/// [`ErrorKind::NotFound`] only when its parent's listing confirms it is absent.
pub(crate) async fn list(core: &FtpCore, dir: &RemotePath) -> Result<EntryStream> {
    let abs = core.paths.abs(dir)?;
    let mut conn = core.pool.get().await?;
    let mlsd = core.features.mlsd;
    let lines = match conn.list_lines(&abs, mlsd).await {
        Ok(lines) => lines,
        Err(e) => return Err(conn.confirm_not_found(e, &abs, mlsd).await.with_path(dir)),
    };
    let now = OffsetDateTime::now_utc();
    let mut out: Vec<Result<Entry>> = Vec::with_capacity(lines.len());
    for line in &lines {
        match entry(core, &mut conn, dir, line, now).await {
            Ok(Some(e)) => out.push(Ok(e)),
            Ok(None) => {}
            Err(e) if conn.broken => return Err(e),
            Err(e) => {
                // Anything but one unrepresentable name voids the listing: stop here.
                let last = e.kind() != ErrorKind::InvalidInput;
                out.push(Err(e));
                if last {
                    break;
                }
            }
        }
    }
    Ok(futures::stream::iter(out).boxed())
}

/// The entry for one listing line: `None` for lines that name nothing, temp files, special
/// files and links confirmed dangling.
async fn entry(
    core: &FtpCore,
    conn: &mut Pooled,
    dir: &RemotePath,
    line: &Line,
    now: OffsetDateTime,
) -> Result<Option<Entry>> {
    let Ok(line) = line else {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "a listing line is not valid UTF-8 (a name in another encoding)",
        )
        .with_path(dir));
    };
    let parsed = if core.features.mlsd {
        parse_mlsd_line(line)
    } else {
        parse_list_line(line, now)
    };
    let listed = match parsed {
        Ok(Some(l)) => l,
        Ok(None) => return Ok(None),
        Err(e) => {
            return Err(Error::new(ErrorKind::Protocol, e.to_string())
                .with_source(e)
                .with_path(dir));
        }
    };
    // Our temporary upload files are listed: the engine never pairs them, and removes old
    // ones.
    let path = dir.join(&listed.name).map_err(|e| e.with_path(dir))?;
    let child = core.paths.abs(&path)?;
    Ok(Some(match listed.kind {
        ListedKind::File => {
            let mut modtime = listed.modtime;
            if !listed.exact_modtime && core.features.mdtm {
                match conn.mdtm(&child).await {
                    Ok(t) => modtime = Some(t),
                    Err(e) if conn.broken => return Err(e),
                    Err(e) => tracing::debug!("MDTM {child}: {e}"),
                }
            }
            Entry::file(path, listed.size).with_modtime(modtime)
        }
        ListedKind::Dir => Entry::dir(path).with_modtime(listed.modtime),
        ListedKind::Symlink(target) => match probe(conn, core, path.clone(), &child).await? {
            Ok(e) => e,
            Err(refused) => {
                if dangling(conn, core, &child, target.as_deref()).await? {
                    tracing::debug!(path = %child, "skipping a dangling symbolic link");
                    return Ok(None);
                }
                return Err(Error::new(
                    refused.kind(),
                    format!(
                        "cannot tell what the symbolic link points to: {}",
                        refused.message()
                    ),
                )
                .with_source(refused)
                .with_path(&path));
            }
        },
        _ => {
            tracing::debug!(path = %child, "skipping a special file");
            return Ok(None);
        }
    }))
}

/// Whether the link at `abs` is confirmed dangling: its target is known and confirmed absent.
async fn dangling(
    conn: &mut Pooled,
    core: &FtpCore,
    abs: &str,
    target: Option<&str>,
) -> Result<bool> {
    let Some(target) = target else {
        return Ok(false);
    };
    let dir = abs.rsplit_once('/').map_or("", |(d, _)| d);
    let joined = if target.starts_with('/') {
        target.to_owned()
    } else {
        format!("{dir}/{target}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for seg in joined.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    if parts.is_empty() {
        return Ok(false);
    }
    conn.absent(&format!("/{}", parts.join("/")), core.features.mlsd)
        .await
}

/// What is at `abs` without `MLST`: `SIZE` answers for files, `CWD` for directories.
/// `Ok(Err(refusal))` when neither works (missing, not allowed, or a dangling link); `Err`
/// when the connection broke.
async fn probe(
    conn: &mut Conn,
    core: &FtpCore,
    path: RemotePath,
    abs: &str,
) -> Result<std::result::Result<Entry, Error>> {
    match conn.size(abs).await {
        Ok(size) => {
            let modtime = if core.features.mdtm {
                match conn.mdtm(abs).await {
                    Ok(t) => Some(t),
                    Err(e) if conn.broken => return Err(e),
                    Err(_) => None,
                }
            } else {
                None
            };
            return Ok(Ok(Entry::file(path, size).with_modtime(modtime)));
        }
        Err(e) if conn.broken => return Err(e),
        Err(_) => {}
    }
    match conn.cwd(abs).await {
        Ok(()) => Ok(Ok(Entry::dir(path))),
        Err(e) if conn.broken => Err(e),
        Err(e) => Ok(Err(e)),
    }
}

/// Metadata of one path.
pub(crate) async fn stat(core: &FtpCore, path: &RemotePath) -> Result<Entry> {
    let abs = core.paths.abs(path)?;
    if path.name().starts_with(TEMP_PREFIX) {
        return Err(not_found());
    }
    let mut conn = core.pool.get().await?;
    if core.features.mlst {
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
            Err(e) if e.kind() != ErrorKind::Unsupported => {
                return Err(conn.confirm_not_found(e, &abs, core.features.mlsd).await);
            }
            Err(_) => {}
        }
    }
    if path.is_root() {
        return match conn.cwd(&abs).await {
            Ok(()) => Ok(Entry::dir(path.clone())),
            Err(e) => Err(conn.confirm_not_found(e, &abs, core.features.mlsd).await),
        };
    }
    if core.features.size || core.features.mdtm {
        return match probe(&mut conn, core, path.clone(), &abs).await? {
            Ok(e) => Ok(e),
            Err(e) => Err(conn.confirm_not_found(e, &abs, core.features.mlsd).await),
        };
    }
    // A server without SIZE: look the name up in its parent's listing.
    drop(conn);
    let parent = path.parent().unwrap_or_default();
    let mut entries = list(core, &parent).await.map_err(|e| {
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

//! Atomic uploads (`STOR` to a hidden temporary name, `MFMT`, then `RNFR`/`RNTO`), directory
//! creation and modification times.

use cloudsync_core::{ByteStream, Entry, Error, ErrorKind, RemotePath, Result, WriteMeta};
use futures::TryStreamExt;
use time::OffsetDateTime;
use tokio::io::AsyncWriteExt;

use crate::core::{Conn, FtpCore, Paths};
use crate::pool::Pooled;

/// Longest name we give a temporary file (most servers allow 255 bytes).
const MAX_TEMP_NAME: usize = 240;

/// `dir/name` for an absolute directory (`/` included).
fn child(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// The absolute parent directory of `path`.
pub(crate) fn parent_abs(core: &FtpCore, path: &RemotePath) -> Result<String> {
    core.paths.abs(&path.parent().unwrap_or_default())
}

/// The absolute path of a file to write and of its directory (the root is no file).
fn write_target(core: &FtpCore, path: &RemotePath) -> Result<(String, String)> {
    if path.is_root() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "cannot write to the root",
        ));
    }
    Ok((core.paths.abs(path)?, parent_abs(core, path)?))
}

/// A hidden temporary name next to `name` (the name every backend uses, see
/// [`cloudsync_core::temp_name`]).
fn temp_name(name: &str) -> String {
    cloudsync_core::temp_name(name, MAX_TEMP_NAME)
}

/// Writes `path` atomically: the content goes to a hidden temporary file in the same directory
/// (its parents are created if missing), gets its modtime, and is renamed over `path`. A failed
/// upload removes the temporary file.
pub(crate) async fn write(
    core: &FtpCore,
    path: &RemotePath,
    body: ByteStream,
    meta: WriteMeta,
) -> Result<Entry> {
    let (abs, dir) = write_target(core, path)?;
    let tmp = child(&dir, &temp_name(path.name()));
    let mut conn = core.pool.get().await?;
    match upload_and_commit(core, &mut conn, &dir, &tmp, &abs, body, &meta).await {
        Ok(size) => {
            let modtime = match meta.modtime {
                Some(t) if core.features.mfmt || core.features.mdtm_write => {
                    Some(t.replace_nanosecond(0).unwrap_or(t))
                }
                _ if core.features.mdtm => conn.mdtm(&abs).await.ok(),
                _ => None,
            };
            Ok(Entry::file(path.clone(), size).with_modtime(modtime))
        }
        Err(e) => {
            remove_temp(conn, &tmp).await;
            Err(e)
        }
    }
}

async fn upload_and_commit(
    core: &FtpCore,
    conn: &mut Pooled,
    dir: &str,
    tmp: &str,
    abs: &str,
    body: ByteStream,
    meta: &WriteMeta,
) -> Result<u64> {
    let size = upload(conn, dir, tmp, body).await?;
    if let Some(want) = meta.size {
        if want != size {
            return Err(Error::new(
                ErrorKind::ConditionNotMatch,
                format!("source changed: expected {want} bytes, read {size}"),
            ));
        }
    }
    // What the server stored, before it becomes visible: to the server a data connection that
    // was closed early looks like a complete upload.
    if core.features.size {
        let stored = conn.size(tmp).await?;
        if stored != size {
            return Err(Error::new(
                ErrorKind::Transient,
                format!("the server stored {stored} of the {size} bytes sent"),
            ));
        }
    }
    if let Some(t) = meta.modtime {
        if core.features.mfmt || core.features.mdtm_write {
            conn.set_mtime(tmp, t, &core.features).await?;
        }
    }
    rename_over(conn, tmp, abs).await?;
    Ok(size)
}

/// `STOR tmp` and send `body`; creates `dir` and its parents when the first `STOR` fails.
async fn upload(conn: &mut Conn, dir: &str, tmp: &str, mut body: ByteStream) -> Result<u64> {
    let mut transfer = match conn.stor(tmp).await {
        Ok(t) => t,
        Err(e) if conn.broken => return Err(e),
        Err(first) => {
            // Most likely a missing parent directory.
            if mkdir_all(conn, dir).await.is_err() {
                return Err(first);
            }
            conn.stor(tmp).await?
        }
    };
    conn.broken = true;
    let timeout = conn.timeout;
    let mut size = 0u64;
    while let Some(chunk) = body.try_next().await? {
        match tokio::time::timeout(timeout, transfer.write_all(&chunk)).await {
            Ok(Ok(())) => size += chunk.len() as u64,
            Ok(Err(e)) => {
                return Err(Error::from(e).set_temporary(true));
            }
            Err(_) => {
                return Err(Error::new(
                    ErrorKind::Transient,
                    format!("sending data stalled for {} s", timeout.as_secs()),
                ));
            }
        }
    }
    let r = tokio::time::timeout(timeout, transfer.finish()).await;
    conn.check(r, "write", tmp)?;
    conn.broken = false;
    Ok(size)
}

/// Writes `body` into the partial file `path` from byte `offset` on (see
/// [`Remote::write_at`](cloudsync_core::Remote::write_at)): `STOR` at 0 (creating the parents
/// when missing), else `APPE` after `SIZE` confirmed that the file holds exactly `offset`
/// bytes (FTP cannot cut a file short, so another size is `ConditionNotMatch` and the engine
/// starts again from 0). When the body fails the data connection is closed normally, so the
/// server keeps what it received; the size returned is the one the server reports.
pub(crate) async fn write_at(
    core: &FtpCore,
    path: &RemotePath,
    offset: u64,
    body: ByteStream,
) -> Result<u64> {
    let (abs, dir) = write_target(core, path)?;
    let mut conn = core.pool.get().await?;
    let transfer = if offset == 0 {
        match conn.stor(&abs).await {
            Ok(t) => t,
            Err(e) if conn.broken => return Err(e),
            Err(first) => {
                if mkdir_all(&mut conn, &dir).await.is_err() {
                    return Err(first);
                }
                conn.stor(&abs).await?
            }
        }
    } else {
        let have = match conn.size(&abs).await {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        if have != offset {
            return Err(Error::new(
                ErrorKind::ConditionNotMatch,
                format!("cannot continue the partial file at byte {offset}: it has {have} bytes"),
            )
            .set_temporary(true));
        }
        conn.appe(&abs).await?
    };
    let failed = send(&mut conn, transfer, &abs, body).await?;
    let stored = conn.size(&abs).await?;
    match failed {
        Some(e) => Err(e),
        None => Ok(stored),
    }
}

/// Sends `body` on the data connection `transfer` and closes it normally. A failure of the
/// body is returned as `Ok(Some(error))` once the bytes before it are stored; a failure of the
/// connection is an `Err`.
async fn send(
    conn: &mut Conn,
    mut transfer: crate::core::Transfer,
    abs: &str,
    mut body: ByteStream,
) -> Result<Option<Error>> {
    conn.broken = true;
    let timeout = conn.timeout;
    let failed = loop {
        let chunk = match body.try_next().await {
            Ok(Some(c)) => c,
            Ok(None) => break None,
            Err(e) => break Some(e),
        };
        match tokio::time::timeout(timeout, transfer.write_all(&chunk)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(Error::from(e).set_temporary(true)),
            Err(_) => {
                return Err(Error::new(
                    ErrorKind::Transient,
                    format!("sending data stalled for {} s", timeout.as_secs()),
                ));
            }
        }
    };
    let r = tokio::time::timeout(timeout, transfer.finish()).await;
    conn.check(r, "write_at", abs)?;
    conn.broken = false;
    Ok(failed)
}

/// Best-effort removal of a failed upload's temporary file, on this connection or (if it broke)
/// a fresh one.
async fn remove_temp(conn: Pooled, tmp: &str) {
    let pool = conn.pool().clone();
    let mut conn = if conn.broken {
        drop(conn);
        match pool.get().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(path = %tmp, "cannot remove a failed upload's temp file: {e}");
                return;
            }
        }
    } else {
        conn
    };
    if let Err(e) = conn.dele(tmp).await {
        if e.kind() != ErrorKind::NotFound {
            tracing::warn!(path = %tmp, "cannot remove a failed upload's temp file: {e}");
        }
    }
}

/// `RNFR from` / `RNTO to`, replacing `to`.
///
/// Servers that refuse to rename over an existing file get the old `to` moved aside to a
/// hidden temporary name first; once `from` is in place the old file is deleted, and if `from`
/// cannot be put in place the old file is moved back. So a failure never loses both versions.
pub(crate) async fn rename_over(conn: &mut Conn, from: &str, to: &str) -> Result<()> {
    let first = match conn.rename(from, to).await {
        Ok(()) => return Ok(()),
        Err(e) if conn.broken => return Err(e),
        Err(e) => e,
    };
    let (dir, name) = to.rsplit_once('/').unwrap_or(("", to));
    let aside = child(if dir.is_empty() { "/" } else { dir }, &temp_name(name));
    match conn.rename(to, &aside).await {
        Ok(()) => {}
        Err(e) if conn.broken => return Err(e),
        // Most likely no `to` to replace: the first failure is the one to report.
        Err(_) => return Err(first),
    }
    match conn.rename(from, to).await {
        Ok(()) => {
            if let Err(e) = conn.dele(&aside).await {
                tracing::warn!(path = %aside, "cannot remove the replaced file: {e}");
            }
            Ok(())
        }
        Err(e) => {
            let restored = if conn.broken {
                Err(Error::new(ErrorKind::Transient, "control connection lost"))
            } else {
                conn.rename(&aside, to).await
            };
            if let Err(r) = restored {
                tracing::error!(
                    path = %to,
                    aside = %aside,
                    "cannot move the previous file back after a failed rename: {r}"
                );
                return Err(Error::new(
                    e.kind(),
                    format!(
                        "{}; the previous file is kept as {aside} (moving it back failed: {})",
                        e.message(),
                        r.message()
                    ),
                )
                .set_temporary(e.is_retryable()));
            }
            Err(e)
        }
    }
}

/// Creates `abs` and its missing parents (`CWD` finds what exists, `MKD` makes the rest).
pub(crate) async fn mkdir_all(conn: &mut Conn, abs: &str) -> Result<()> {
    if abs == "/" || conn.cwd(abs).await.is_ok() {
        return Ok(());
    }
    if conn.broken {
        return Err(Error::new(ErrorKind::Transient, "control connection lost"));
    }
    for dir in Paths::ancestors_and_self(abs) {
        match conn.cwd(&dir).await {
            Ok(()) => continue,
            Err(e) if conn.broken => return Err(e),
            Err(_) => {}
        }
        if let Err(e) = conn.mkd(&dir).await {
            if conn.broken {
                return Err(e);
            }
            // Another session may have created it meanwhile.
            if conn.cwd(&dir).await.is_err() {
                return Err(if e.kind() == ErrorKind::NotFound {
                    Error::new(
                        ErrorKind::Conflict,
                        format!("cannot create directory {dir}: {}", e.message()),
                    )
                } else {
                    e
                });
            }
        }
    }
    Ok(())
}

/// Creates a directory and its parents; succeeds if it exists.
pub(crate) async fn mkdir(core: &FtpCore, dir: &RemotePath) -> Result<()> {
    let abs = core.paths.abs(dir)?;
    let mut conn = core.pool.get().await?;
    mkdir_all(&mut conn, &abs).await
}

/// Sets a file's modification time (`MFMT`, or `MDTM` with a time on servers that allow it);
/// [`ErrorKind::NotFound`] only when the file is confirmed absent.
pub(crate) async fn set_modtime(
    core: &FtpCore,
    path: &RemotePath,
    modtime: OffsetDateTime,
) -> Result<()> {
    let abs = core.paths.abs(path)?;
    let mut conn = core.pool.get().await?;
    match conn.set_mtime(&abs, modtime, &core.features).await {
        Ok(()) => Ok(()),
        Err(e) => Err(conn.confirm_not_found(e, &abs, core.features.mlsd).await),
    }
}

//! Deletions: REMOVE, RMDIR, and purge (a whole tree, many requests in flight).
//!
//! OpenSSH answers `SSH_FX_FAILURE` for "not empty" and "is a directory"; on that code the
//! object is looked at again (STAT) so the error kind says what is wrong.

use std::sync::Arc;

use cloudsync_core::{Error, ErrorKind, RemotePath, Result};
use futures::{StreamExt, TryStreamExt};
use russh_sftp::protocol::StatusCode;

use crate::core::{Kind, OpenHandle, SftpCore, kind_of, status_of};
use crate::ssh::Connection;

/// Removes requests a purge keeps in flight.
const PURGE_CONCURRENCY: usize = 16;

/// Removes one file.
pub(crate) async fn remove_file(core: &SftpCore, path: &RemotePath) -> Result<()> {
    let conn = core.conn(path).await?;
    match conn.sftp.remove(core.abs(path)).await {
        Ok(_) => Ok(()),
        Err(e) => {
            if matches!(
                status_of(&e),
                Some(StatusCode::Failure | StatusCode::PermissionDenied)
            ) && let Ok(attrs) = core.stat_on(&conn, path).await
                && kind_of(&attrs) == Kind::Dir
            {
                return Err(core.ctx(Error::new(ErrorKind::Conflict, "is a directory"), path));
            }
            Err(core.fail(&conn, e, path))
        }
    }
}

/// Removes one empty directory.
pub(crate) async fn remove_dir(core: &SftpCore, dir: &RemotePath) -> Result<()> {
    let conn = core.conn(dir).await?;
    rmdir_on(core, &conn, dir).await
}

async fn rmdir_on(core: &SftpCore, conn: &Connection, dir: &RemotePath) -> Result<()> {
    match conn.sftp.rmdir(core.abs(dir)).await {
        Ok(_) => Ok(()),
        Err(e) => {
            if status_of(&e) == Some(StatusCode::Failure)
                && let Ok(attrs) = core.stat_on(conn, dir).await
            {
                let why = if kind_of(&attrs) == Kind::Dir {
                    "directory not empty"
                } else {
                    "not a directory"
                };
                return Err(core.ctx(Error::new(ErrorKind::Conflict, why), dir));
            }
            Err(core.fail(conn, e, dir))
        }
    }
}

/// Every name in `dir` with its type, including hidden temporary files (raw READDIR).
async fn read_all(
    core: &SftpCore,
    conn: &Arc<Connection>,
    dir: &RemotePath,
) -> Result<Vec<(RemotePath, Kind)>> {
    let opened = conn
        .sftp
        .opendir(core.abs(dir))
        .await
        .map_err(|e| core.fail(conn, e, dir))?;
    let handle = OpenHandle::new(conn.clone(), opened.handle);
    let mut out = Vec::new();
    loop {
        match conn.sftp.readdir(handle.handle()).await {
            Ok(name) => {
                for f in name.files {
                    if f.filename == "." || f.filename == ".." {
                        continue;
                    }
                    let path = dir.join(&f.filename).map_err(|e| core.ctx(e, dir))?;
                    out.push((path, kind_of(&f.attrs)));
                }
            }
            Err(e) if status_of(&e) == Some(StatusCode::Eof) => break,
            Err(e) => return Err(core.fail(conn, e, dir)),
        }
    }
    let _ = handle.close().await;
    Ok(out)
}

/// Removes `dir` and everything below it. Symlinks are removed, never followed, whatever
/// `follow_symlinks` says: the kinds come from LSTAT (and from READDIR, whose attributes
/// describe the link itself), and a `dir` that is itself a link is removed as a link.
pub(crate) async fn purge(core: &SftpCore, dir: &RemotePath) -> Result<()> {
    let conn = core.conn(dir).await?;
    let attrs = core.lstat_on(&conn, dir).await?;
    if kind_of(&attrs) == Kind::Symlink && !dir.is_root() {
        tracing::debug!(path = %dir, "purge: removing the symlink, not what it points to");
        return conn
            .sftp
            .remove(core.abs(dir))
            .await
            .map(|_| ())
            .map_err(|e| core.fail(&conn, e, dir));
    }
    if kind_of(&attrs) != Kind::Dir && !dir.is_root() {
        return Err(core.ctx(Error::new(ErrorKind::Conflict, "not a directory"), dir));
    }
    // Depth-first with an explicit stack: directories are removed after their content.
    let mut stack = vec![(dir.clone(), false)];
    while let Some((d, emptied)) = stack.pop() {
        if emptied {
            rmdir_on(core, &conn, &d).await?;
            continue;
        }
        let children = read_all(core, &conn, &d).await?;
        stack.push((d, true));
        let mut files = Vec::new();
        for (path, kind) in children {
            if kind == Kind::Dir {
                stack.push((path, false));
            } else {
                files.push(path);
            }
        }
        futures::stream::iter(files)
            .map(|p| {
                let conn = conn.clone();
                async move {
                    match conn.sftp.remove(core.abs(&p)).await {
                        Ok(_) => Ok(()),
                        Err(e) if status_of(&e) == Some(StatusCode::NoSuchFile) => Ok(()),
                        Err(e) => Err(core.fail(&conn, e, &p)),
                    }
                }
            })
            .buffer_unordered(PURGE_CONCURRENCY)
            .try_collect::<()>()
            .await?;
    }
    Ok(())
}

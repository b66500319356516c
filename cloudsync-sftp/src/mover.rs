//! Server-side rename (`posix-rename@openssh.com`, replacing the target) and copy (the
//! `copy-data` extension, into a temporary name renamed over the target).

use cloudsync_core::{Entry, Error, ErrorKind, RemotePath, Result};
use russh_sftp::protocol::{FileAttributes, OpenFlags, StatusCode};

use crate::core::{Kind, OpenHandle, SftpCore, entry_of, kind_of, modtime_of, status_of};
use crate::writer::{discard, open_temp};

/// Renames `from` over `to`, creating `to`'s directory if it is missing.
pub(crate) async fn rename(core: &SftpCore, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
    let conn = core.conn(from).await?;
    let (src, dst) = (core.abs(from), core.abs(to));
    if let Err(e) = core.rename_over(&conn, &src, &dst).await {
        if status_of(&e) != Some(StatusCode::NoSuchFile) {
            return Err(core.fail(&conn, e, from));
        }
        // Either the source is missing or the target's directory is.
        core.stat_on(&conn, from).await?;
        if let Some(parent) = to.parent() {
            core.mkdir_all(&conn, &parent).await?;
        }
        core.rename_over(&conn, &src, &dst)
            .await
            .map_err(|e| core.fail(&conn, e, from))?;
    }
    let attrs = core.stat_on(&conn, to).await?;
    entry_of(to.clone(), &attrs).ok_or_else(|| {
        core.ctx(
            Error::new(ErrorKind::Unsupported, "not a regular file or directory"),
            to,
        )
    })
}

/// Server-side copy with the `copy-data` extension, into a temporary name renamed over `to`;
/// the copy gets the source's modtime.
pub(crate) async fn copy(core: &SftpCore, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
    let Some(parent) = to.parent() else {
        return Err(core.ctx(
            Error::new(ErrorKind::InvalidInput, "cannot copy onto the root"),
            to,
        ));
    };
    let conn = core.conn(from).await?;
    let src = conn
        .sftp
        .open(core.abs(from), OpenFlags::READ, FileAttributes::empty())
        .await
        .map_err(|e| core.fail(&conn, e, from))?;
    let src = OpenHandle::new(conn.clone(), src.handle);
    let attrs = conn
        .sftp
        .fstat(src.handle())
        .await
        .map_err(|e| core.fail(&conn, e, from))?
        .attrs;
    if kind_of(&attrs) != Kind::File {
        return Err(core.ctx(Error::new(ErrorKind::Conflict, "not a regular file"), from));
    }
    let (temp_abs, dst) = open_temp(core, &conn, &parent, to).await?;
    let modtime = modtime_of(&attrs);
    let result = async {
        core.copy_data(&conn, src.handle(), dst.handle()).await?;
        if let Some(t) = attrs.mtime {
            let times = FileAttributes {
                atime: Some(t),
                mtime: Some(t),
                ..FileAttributes::empty()
            };
            conn.sftp.fsetstat(dst.handle(), times).await?;
        }
        dst.close().await?;
        let _ = src.close().await;
        core.rename_over(&conn, &temp_abs, &core.abs(to)).await
    }
    .await;
    match result {
        Ok(()) => Ok(Entry::file(to.clone(), attrs.size.unwrap_or(0)).with_modtime(modtime)),
        Err(e) => {
            let err = core.fail(&conn, e, to);
            discard(core, &conn, &temp_abs).await;
            Err(err)
        }
    }
}

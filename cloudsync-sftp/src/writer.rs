//! Atomic uploads: the content goes to a hidden temporary name in the target directory
//! (`.cloudsync-tmp-<random>.<name>`) with many WRITE requests in flight, gets its modtime
//! (FSETSTAT), is closed, and is then renamed over the target with
//! `posix-rename@openssh.com` (atomic replace). A failed upload removes its temporary file, on a
//! fresh connection if the old one died.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use cloudsync_core::{ByteStream, Entry, Error, ErrorKind, RemotePath, Result, WriteMeta};
use futures::future::Either;
use futures::{StreamExt, TryStreamExt};
use russh_sftp::client::error::Error as SftpError;
use russh_sftp::protocol::{FileAttributes, OpenFlags, StatusCode};
use time::OffsetDateTime;

use crate::core::{OpenHandle, SftpCore, modtime_of, mtime_attrs, status_of};
use crate::reader::{depth_for, write_chunk};
use crate::ssh::Connection;

/// Longest name most servers accept (bytes).
const NAME_MAX: usize = 255;

/// A hidden temporary name next to `name` (the name every backend uses, see
/// [`cloudsync_core::temp_name`]).
pub(crate) fn temp_name(name: &str) -> String {
    cloudsync_core::temp_name(name, NAME_MAX)
}

/// Splits and joins chunks so every item but the last has exactly `size` bytes.
fn rechunk(body: ByteStream, size: usize) -> impl futures::Stream<Item = Result<Bytes>> + Send {
    struct St {
        body: ByteStream,
        buf: BytesMut,
        done: bool,
    }
    let st = St {
        body,
        buf: BytesMut::new(),
        done: false,
    };
    futures::stream::unfold(st, move |mut st| async move {
        loop {
            if st.buf.len() >= size {
                let out = st.buf.split_to(size).freeze();
                return Some((Ok(out), st));
            }
            if st.done {
                if st.buf.is_empty() {
                    return None;
                }
                let out = st.buf.split().freeze();
                return Some((Ok(out), st));
            }
            match st.body.next().await {
                Some(Ok(b)) => st.buf.extend_from_slice(&b),
                Some(Err(e)) => {
                    st.done = true;
                    st.buf.clear();
                    return Some((Err(e), st));
                }
                None => st.done = true,
            }
        }
    })
}

/// Creates and opens a hidden temporary file in `parent` for a write to `target` (creating
/// `parent` when it is missing); returns its absolute path and handle.
pub(crate) async fn open_temp(
    core: &SftpCore,
    conn: &Arc<Connection>,
    parent: &RemotePath,
    target: &RemotePath,
) -> Result<(String, OpenHandle)> {
    let temp = parent.join(&temp_name(target.name()))?;
    let temp_abs = core.abs(&temp);
    let flags = OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::EXCLUDE;
    let opened = match conn
        .sftp
        .open(temp_abs.clone(), flags, FileAttributes::empty())
        .await
    {
        Err(e) if status_of(&e) == Some(StatusCode::NoSuchFile) => {
            core.mkdir_all(conn, parent).await?;
            conn.sftp
                .open(temp_abs.clone(), flags, FileAttributes::empty())
                .await
        }
        other => other,
    }
    .map_err(|e| core.fail(conn, e, target))?;
    Ok((temp_abs, OpenHandle::new(conn.clone(), opened.handle)))
}

/// Why an upload failed: the source stream, or the server.
enum Failure {
    Source(Error),
    Server(SftpError),
}

/// Writes `path` atomically; see the module docs.
pub(crate) async fn write(
    core: Arc<SftpCore>,
    path: &RemotePath,
    body: ByteStream,
    meta: WriteMeta,
) -> Result<Entry> {
    let Some(parent) = path.parent() else {
        return Err(core.ctx(
            Error::new(ErrorKind::InvalidInput, "cannot write to the root"),
            path,
        ));
    };
    // Fail before sending anything if the modtime cannot be stored.
    let mtime = meta.modtime.map(mtime_attrs).transpose()?;
    let conn = core.conn(path).await?;
    let (temp_abs, handle) = open_temp(&core, &conn, &parent, path).await?;

    let uploaded = upload(&conn, handle, body, mtime.clone(), meta.size).await;
    let result = match uploaded {
        Ok(attrs) => match core.rename_over(&conn, &temp_abs, &core.abs(path)).await {
            Ok(()) => return Ok(Entry::file(path.clone(), attrs.0).with_modtime(attrs.1)),
            Err(e) => {
                // FAILURE when a directory is in the way: say so.
                let dir_in_way = status_of(&e) == Some(StatusCode::Failure)
                    && matches!(
                        core.stat_on(&conn, path).await,
                        Ok(a) if crate::core::kind_of(&a) == crate::core::Kind::Dir
                    );
                if dir_in_way {
                    Err(core.ctx(
                        Error::new(ErrorKind::Conflict, "a directory is in the way"),
                        path,
                    ))
                } else {
                    Err(core.fail(&conn, e, path))
                }
            }
        },
        Err(Failure::Source(e)) => Err(e),
        Err(Failure::Server(e)) => Err(core.fail(&conn, e, path)),
    };
    discard(&core, &conn, &temp_abs).await;
    result
}

/// Sends the content, sets the modtime and closes the handle. Returns the size written and
/// the file's modtime.
async fn upload(
    conn: &Arc<Connection>,
    handle: OpenHandle,
    body: ByteStream,
    mtime: Option<FileAttributes>,
    expected_size: Option<u64>,
) -> std::result::Result<(u64, Option<time::OffsetDateTime>), Failure> {
    let chunk = write_chunk(conn) as usize;
    if expected_size.is_some_and(|n| n <= chunk as u64) {
        return upload_small(conn, handle, body, mtime, expected_size).await;
    }
    let depth = depth_for(chunk as u32);
    let h = handle.handle().to_owned();
    let mut offset = 0u64;
    let writes = rechunk(body, chunk).map(|item| match item {
        Ok(data) => {
            let off = offset;
            offset += data.len() as u64;
            let conn = conn.clone();
            let h = h.clone();
            Either::Left(async move {
                conn.sftp
                    .write(h, off, data.to_vec())
                    .await
                    .map(|_| ())
                    .map_err(Failure::Server)
            })
        }
        Err(e) => Either::Right(futures::future::ready(Err(Failure::Source(e)))),
    });
    writes
        .buffer_unordered(depth)
        .try_for_each(|()| futures::future::ready(Ok(())))
        .await?;
    let written = offset;
    if let Some(expected) = expected_size
        && expected != written
    {
        return Err(Failure::Source(Error::new(
            ErrorKind::ConditionNotMatch,
            format!("the source had {written} bytes, {expected} were announced"),
        )));
    }
    let modtime = match mtime {
        Some(attrs) => {
            let t = modtime_of(&attrs);
            conn.sftp
                .fsetstat(handle.handle(), attrs)
                .await
                .map_err(Failure::Server)?;
            t
        }
        None => {
            let attrs = conn
                .sftp
                .fstat(handle.handle())
                .await
                .map_err(Failure::Server)?;
            modtime_of(&attrs.attrs)
        }
    };
    handle.close().await.map_err(Failure::Server)?;
    Ok((written, modtime))
}

/// [`upload`] of a body announced to fit in one WRITE: the body is read first, then WRITE,
/// FSETSTAT (or FSTAT) and CLOSE go out back to back and their answers are awaited together —
/// one round trip instead of three. OpenSSH's sftp-server handles requests one at a time in the
/// order received. Nothing is lost on a server that reordered them: a CLOSE before the WRITE
/// fails the WRITE (the temporary file is discarded), a modtime set before the data is caught
/// by the transfer's modtime check; and the rename that makes the file visible is sent only
/// after all three succeeded.
async fn upload_small(
    conn: &Arc<Connection>,
    mut handle: OpenHandle,
    body: ByteStream,
    mtime: Option<FileAttributes>,
    expected_size: Option<u64>,
) -> std::result::Result<(u64, Option<time::OffsetDateTime>), Failure> {
    // Bounded: at most one chunk more than announced is kept before the size check fails.
    let limit = expected_size.unwrap_or(0);
    let mut data = BytesMut::new();
    let mut body = body;
    while let Some(part) = body.next().await {
        data.extend_from_slice(&part.map_err(Failure::Source)?);
        if data.len() as u64 > limit {
            break;
        }
    }
    let written = data.len() as u64;
    if written != limit {
        return Err(Failure::Source(Error::new(
            ErrorKind::ConditionNotMatch,
            format!("the source had {written} bytes or more, {limit} were announced"),
        )));
    }
    let Some(h) = handle.take() else {
        return Err(Failure::Server(SftpError::UnexpectedBehavior(
            "handle already closed".into(),
        )));
    };
    let sftp = &conn.sftp;
    // `join!` polls in order, and each request is queued when first polled.
    let write = async {
        if written == 0 {
            return Ok(());
        }
        sftp.write(h.clone(), 0, data.to_vec()).await.map(|_| ())
    };
    let attrs = async {
        match mtime {
            Some(a) => {
                let t = modtime_of(&a);
                sftp.fsetstat(h.clone(), a).await.map(|_| t)
            }
            None => sftp.fstat(h.clone()).await.map(|a| modtime_of(&a.attrs)),
        }
    };
    let close = sftp.close(h.clone());
    let (w, a, c) = futures::join!(write, attrs, close);
    w.map_err(Failure::Server)?;
    let modtime = a.map_err(Failure::Server)?;
    c.map_err(Failure::Server)?;
    Ok((written, modtime))
}

/// Removes a failed upload's temporary file, on a new connection if `conn` died.
pub(crate) async fn discard(core: &SftpCore, conn: &Arc<Connection>, temp_abs: &str) {
    let limit = core.pool.settings.timeout.min(Duration::from_secs(15));
    let attempt = async {
        let c = if conn.is_usable() {
            conn.clone()
        } else {
            core.pool.get().await.ok()?
        };
        c.sftp.remove(temp_abs).await.ok()
    };
    if tokio::time::timeout(limit, attempt)
        .await
        .ok()
        .flatten()
        .is_none()
    {
        tracing::warn!(
            remote = %core.describe,
            temp = temp_abs,
            "could not remove the temporary file of a failed upload"
        );
    }
}

/// Creates `dir` and its missing parents.
pub(crate) async fn mkdir(core: &SftpCore, dir: &RemotePath) -> Result<()> {
    let conn = core.conn(dir).await?;
    core.mkdir_all(&conn, dir).await
}

/// Sets the modification time of `path`.
pub(crate) async fn set_modtime(
    core: &SftpCore,
    path: &RemotePath,
    modtime: OffsetDateTime,
) -> Result<()> {
    let attrs = mtime_attrs(modtime).map_err(|e| core.ctx(e, path))?;
    let conn = core.conn(path).await?;
    conn.sftp
        .setstat(core.abs(path), attrs)
        .await
        .map(|_| ())
        .map_err(|e| core.fail(&conn, e, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_fit() {
        let t = temp_name("report.pdf");
        assert!(
            cloudsync_core::is_temp_name(&t) && t.ends_with(".report.pdf"),
            "{t}"
        );
        let long = "é".repeat(200);
        let t = temp_name(&long);
        assert!(t.len() <= NAME_MAX, "{}", t.len());
        assert_ne!(temp_name("a"), temp_name("a"));
    }

    #[tokio::test]
    async fn rechunk_is_exact() {
        let parts: Vec<Result<Bytes>> = vec![
            Ok(Bytes::from(vec![1u8; 5])),
            Ok(Bytes::from(vec![2u8; 12])),
            Ok(Bytes::new()),
            Ok(Bytes::from(vec![3u8; 1])),
        ];
        let out: Vec<Bytes> = rechunk(futures::stream::iter(parts).boxed(), 4)
            .try_collect()
            .await
            .unwrap();
        let sizes: Vec<usize> = out.iter().map(|b| b.len()).collect();
        assert_eq!(sizes, [4, 4, 4, 4, 2]);
        let all: Vec<u8> = out.iter().flat_map(|b| b.iter().copied()).collect();
        assert_eq!(all.len(), 18);
        assert_eq!(&all[..6], &[1, 1, 1, 1, 1, 2]);
    }
}

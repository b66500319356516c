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

/// Most bytes one upload keeps outstanding. The server's channel window bounds what it takes
/// at a time (OpenSSH's is 2 MiB), so much more only waits in our send buffers. One 273 MiB
/// upload, medians in one benchmark run each: 16 MiB peaked at 76 MiB of memory in 0.733 s,
/// 8 MiB at 45 MiB in 0.626 s; 4 MiB (31 MiB) was as fast in one run and 12 % slower in
/// another.
const WRITE_IN_FLIGHT_BYTES: usize = 8 * 1024 * 1024;

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
    let depth = depth_for(chunk as u32, WRITE_IN_FLIGHT_BYTES);
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

/// Writes `body` into the partial file `path` from byte `offset` on (see
/// [`Remote::write_at`](cloudsync_core::Remote::write_at)): opened without truncation, cut to
/// `offset`, and written with many WRITE requests in flight like an upload. The bytes kept
/// when it fails are contiguous from the start: a source error lets the requests in flight
/// finish; a server error cuts the file back to the last byte before the first unanswered
/// request while the session lives, and a dead session answered requests in order (the
/// server handles them one after another), so what it wrote is a prefix too.
pub(crate) async fn write_at(
    core: Arc<SftpCore>,
    path: &RemotePath,
    offset: u64,
    body: ByteStream,
) -> Result<u64> {
    let Some(parent) = path.parent() else {
        return Err(core.ctx(
            Error::new(ErrorKind::InvalidInput, "cannot write to the root"),
            path,
        ));
    };
    let conn = core.conn(path).await?;
    let abs = core.abs(path);
    let mismatch = |what: String| {
        core.ctx(
            Error::new(
                ErrorKind::ConditionNotMatch,
                format!("cannot continue the partial file at byte {offset}: {what}"),
            )
            .set_temporary(true),
            path,
        )
    };
    let handle = if offset == 0 {
        let flags = OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE;
        let opened = match conn
            .sftp
            .open(abs.clone(), flags, FileAttributes::empty())
            .await
        {
            Err(e) if status_of(&e) == Some(StatusCode::NoSuchFile) => {
                core.mkdir_all(&conn, &parent).await?;
                conn.sftp
                    .open(abs.clone(), flags, FileAttributes::empty())
                    .await
            }
            other => other,
        }
        .map_err(|e| core.fail(&conn, e, path))?;
        OpenHandle::new(conn.clone(), opened.handle)
    } else {
        let opened = match conn
            .sftp
            .open(abs.clone(), OpenFlags::WRITE, FileAttributes::empty())
            .await
        {
            Err(e) if status_of(&e) == Some(StatusCode::NoSuchFile) => {
                return Err(mismatch("it is gone".to_owned()));
            }
            other => other.map_err(|e| core.fail(&conn, e, path))?,
        };
        let handle = OpenHandle::new(conn.clone(), opened.handle);
        let attrs = conn
            .sftp
            .fstat(handle.handle())
            .await
            .map_err(|e| core.fail(&conn, e, path))?;
        let len = attrs.attrs.size.unwrap_or(0);
        if len < offset {
            return Err(mismatch(format!("it has only {len} bytes")));
        }
        if len > offset {
            truncate(&conn, &handle, offset)
                .await
                .map_err(|e| core.fail(&conn, e, path))?;
        }
        handle
    };
    match append(&conn, &handle, offset, body).await {
        Ok(end) => {
            handle
                .close()
                .await
                .map_err(|e| core.fail(&conn, e, path))?;
            Ok(end)
        }
        Err((Failure::Source(e), _)) => {
            let _ = handle.close().await;
            Err(e)
        }
        Err((Failure::Server(e), kept)) => {
            if conn.is_usable() && truncate(&conn, &handle, kept).await.is_err() {
                tracing::debug!(path = %path, "could not cut a failed partial file back");
            }
            let _ = handle.close().await;
            Err(core.fail(&conn, e, path))
        }
    }
}

/// Sets the size of the open file `handle` to `size`.
async fn truncate(
    conn: &Connection,
    handle: &OpenHandle,
    size: u64,
) -> std::result::Result<(), SftpError> {
    let attrs = FileAttributes {
        size: Some(size),
        ..FileAttributes::empty()
    };
    conn.sftp.fsetstat(handle.handle(), attrs).await.map(|_| ())
}

/// Writes `body` at `offset` on, with requests in flight; returns the end offset, or the
/// failure and the end of the bytes written contiguously from `offset`. Requests in flight
/// when the body fails are awaited, so none is lost silently.
async fn append(
    conn: &Arc<Connection>,
    handle: &OpenHandle,
    offset: u64,
    body: ByteStream,
) -> std::result::Result<u64, (Failure, u64)> {
    use futures::stream::FuturesUnordered;
    use std::collections::BTreeMap;
    let chunk = write_chunk(conn) as usize;
    let depth = depth_for(chunk as u32, WRITE_IN_FLIGHT_BYTES);
    let h = handle.handle().to_owned();
    let mut body = Box::pin(rechunk(body, chunk));
    let mut inflight = FuturesUnordered::new();
    let (mut next, mut contiguous) = (offset, offset);
    let mut done_ranges: BTreeMap<u64, u64> = BTreeMap::new();
    let mut failure: Option<Failure> = None;
    let mut ended = false;
    loop {
        let fill = inflight.len() < depth && failure.is_none() && !ended;
        tokio::select! {
            item = body.next(), if fill => match item {
                Some(Ok(data)) => {
                    let off = next;
                    let len = data.len() as u64;
                    next += len;
                    let conn = conn.clone();
                    let h = h.clone();
                    inflight.push(async move {
                        let r = conn.sftp.write(h, off, data.to_vec()).await.map(|_| ());
                        (off, len, r)
                    });
                }
                Some(Err(e)) => failure = Some(Failure::Source(e)),
                None => ended = true,
            },
            Some((off, len, r)) = inflight.next(), if !inflight.is_empty() => match r {
                Ok(()) => {
                    done_ranges.insert(off, off + len);
                    while let Some(end) = done_ranges.remove(&contiguous) {
                        contiguous = end;
                    }
                }
                Err(e) => {
                    if !matches!(failure, Some(Failure::Server(_))) {
                        failure = Some(Failure::Server(e));
                    }
                }
            },
            else => break,
        }
    }
    match failure {
        Some(f) => Err((f, contiguous)),
        None => Ok(next),
    }
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

//! Downloads: many READ requests in flight at consecutive offsets, answered in order.
//!
//! Like OpenSSH's client, a download keeps up to 64 requests outstanding (bounded by
//! [`IN_FLIGHT_BYTES`]), each as large as the server's `limits@openssh.com` allow (32 KiB when
//! the server does not say). Short reads are completed with extra requests before the next
//! chunk is passed on, so the stream is always the exact byte sequence.

use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use cloudsync_core::{ByteStream, Error, ErrorKind, HashKind, RemotePath, Result};
use futures::{Stream, StreamExt};
use russh_sftp::client::error::Error as SftpError;
use russh_sftp::protocol::{Data, FileAttributes, OpenFlags, StatusCode};

use crate::core::{Kind, OpenHandle, SftpCore, kind_of, status_of};
use crate::ssh::Connection;

/// Most requests one transfer keeps outstanding (OpenSSH's `sftp -R` default).
pub(crate) const MAX_REQUESTS: usize = 64;
/// Most bytes one download keeps outstanding.
pub(crate) const IN_FLIGHT_BYTES: usize = 16 * 1024 * 1024;
/// Largest request we send even if the server allows more.
const MAX_CHUNK: u64 = 256 * 1024;
/// Request size when the server states no limits (the size every server must accept).
const DEFAULT_CHUNK: u64 = 32 * 1024;

/// Read request size for this connection.
pub(crate) fn read_chunk(conn: &Connection) -> u32 {
    let limit = conn.features.limits.and_then(|l| l.read_len);
    chunk_from(limit)
}

/// Write request size for this connection.
pub(crate) fn write_chunk(conn: &Connection) -> u32 {
    let limit = conn.features.limits.and_then(|l| l.write_len);
    chunk_from(limit)
}

fn chunk_from(limit: Option<u64>) -> u32 {
    let c = match limit {
        Some(l) => l.clamp(1024, MAX_CHUNK),
        None => DEFAULT_CHUNK,
    };
    u32::try_from(c).unwrap_or(32 * 1024)
}

/// Requests in flight for a given request size, keeping at most `budget` bytes outstanding.
pub(crate) fn depth_for(chunk: u32, budget: usize) -> usize {
    (budget / chunk.max(1) as usize).clamp(1, MAX_REQUESTS)
}

type Reply = (u64, u32, std::result::Result<Data, SftpError>);

/// Opens `path` and streams its content (or the byte `range` of it).
pub(crate) async fn read(
    core: Arc<SftpCore>,
    path: &RemotePath,
    range: Option<Range<u64>>,
) -> Result<ByteStream> {
    let conn = core.conn(path).await?;
    let opened = conn
        .sftp
        .open(core.abs(path), OpenFlags::READ, FileAttributes::empty())
        .await
        .map_err(|e| core.fail(&conn, e, path))?;
    let handle = OpenHandle::new(conn.clone(), opened.handle);
    let chunk = read_chunk(&conn);
    // The first READ goes out with the FSTAT (it needs no size): a file of one chunk costs
    // one round trip after the OPEN instead of two.
    let start = range.as_ref().map_or(0, |r| r.start);
    let first_len = range.as_ref().map_or(u64::from(chunk), |r| {
        r.end.saturating_sub(r.start).min(u64::from(chunk))
    }) as u32;
    let h = handle.handle().to_owned();
    let (stat, first) = futures::join!(conn.sftp.fstat(h.clone()), async {
        if first_len == 0 {
            None
        } else {
            Some(conn.sftp.read(h.clone(), start, first_len).await)
        }
    });
    let attrs = stat.map_err(|e| core.fail(&conn, e, path))?.attrs;
    if kind_of(&attrs) == Kind::Dir {
        return Err(core.ctx(Error::new(ErrorKind::Conflict, "is a directory"), path));
    }
    let size = attrs.size;
    let end = match (&range, size) {
        (Some(r), Some(s)) => r.end.min(s),
        (Some(r), None) => r.end,
        (None, Some(s)) => s,
        (None, None) => u64::MAX,
    };
    let (Some(first), true) = (first, start < end) else {
        // Nothing to read; the handle is closed in the background when dropped.
        return Ok(futures::stream::empty().boxed());
    };
    let first_len = (end - start).min(u64::from(first_len)) as u32;
    let depth = depth_for(chunk, IN_FLIGHT_BYTES);
    let requests = {
        let conn = conn.clone();
        let h = h.clone();
        let offsets = (start + u64::from(first_len)..end).step_by(chunk as usize);
        let rest = futures::stream::iter(offsets)
            .map(move |off| {
                let len = (end - off).min(u64::from(chunk)) as u32;
                let conn = conn.clone();
                let h = h.clone();
                async move { (off, len, conn.sftp.read(h, off, len).await) }
            })
            .buffered(depth);
        futures::stream::once(futures::future::ready((start, first_len, first)))
            .chain(rest)
            .boxed()
    };
    let state = ReadState {
        core,
        path: path.clone(),
        conn,
        handle: Some(handle),
        requests,
        size_known: size.is_some(),
    };
    Ok(futures::stream::unfold(state, |mut st| async move {
        let item = st.next().await?;
        Some((item, st))
    })
    .boxed())
}

/// Downloads `path` and hashes it (the fallback when the server offers no hash command).
pub(crate) async fn hash_by_reading(
    core: Arc<SftpCore>,
    path: &RemotePath,
    kind: HashKind,
) -> Result<String> {
    cloudsync_core::hash_stream(read(core, path, None).await?, kind).await
}

struct ReadState {
    core: Arc<SftpCore>,
    path: RemotePath,
    conn: Arc<Connection>,
    /// `None` once the stream ended.
    handle: Option<OpenHandle>,
    requests: Pin<Box<dyn Stream<Item = Reply> + Send>>,
    size_known: bool,
}

impl ReadState {
    /// Ends the stream. The handle is closed in the background (dropping it sends the CLOSE):
    /// nothing a reader needs comes back from closing it.
    async fn finish(&mut self) {
        self.requests = futures::stream::empty().boxed();
        self.handle = None;
    }

    fn shrank(&self) -> Error {
        self.core.ctx(
            Error::new(
                ErrorKind::ConditionNotMatch,
                "the file became shorter while it was read",
            ),
            &self.path,
        )
    }

    async fn next(&mut self) -> Option<Result<Bytes>> {
        self.handle.as_ref()?;
        let (off, len, reply) = match self.requests.next().await {
            Some(r) => r,
            None => {
                self.finish().await;
                return None;
            }
        };
        let mut buf = match reply {
            Ok(d) => d.data,
            Err(e) if status_of(&e) == Some(StatusCode::Eof) => {
                self.finish().await;
                return if self.size_known {
                    Some(Err(self.shrank()))
                } else {
                    None
                };
            }
            Err(e) => {
                let err = self.core.fail(&self.conn, e, &self.path);
                self.finish().await;
                return Some(Err(err));
            }
        };
        // The first READ asked before the size was known may hold bytes past the end.
        buf.truncate(len as usize);
        // A short reply: fetch the rest of this request's range before moving on.
        while buf.len() < len as usize {
            let pos = off + buf.len() as u64;
            let want = len - buf.len() as u32;
            let h = self.handle.as_ref()?.handle().to_owned();
            match self.conn.sftp.read(h, pos, want).await {
                Ok(d) if !d.data.is_empty() => buf.extend_from_slice(&d.data),
                Ok(_) => break,
                Err(e) if status_of(&e) == Some(StatusCode::Eof) => {
                    if self.size_known {
                        self.finish().await;
                        return Some(Err(self.shrank()));
                    }
                    // Unknown size: this was the end of the file.
                    self.requests = futures::stream::empty().boxed();
                    break;
                }
                Err(e) => {
                    let err = self.core.fail(&self.conn, e, &self.path);
                    self.finish().await;
                    return Some(Err(err));
                }
            }
        }
        Some(Ok(Bytes::from(buf)))
    }
}

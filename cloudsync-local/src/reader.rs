//! Reads: open (only regular files, so a FIFO never blocks us), seek, stream in 512 KiB chunks
//! read by one blocking thread; and on-demand hashing.

use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;

use bytes::BytesMut;
use cloudsync_core::{ByteStream, Error, ErrorKind, HashKind, MultiHasher, RemotePath, Result};
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::core::{CoreRef, LocalCore, parse_error};

/// Chunk size of read streams.
const CHUNK: usize = 512 * 1024;
/// Chunks read ahead of the consumer.
const AHEAD: usize = 2;

/// Opens `path` for reading, refusing anything but a regular file.
fn open_regular(core: &LocalCore, path: &RemotePath) -> Result<std::fs::File> {
    let local = core.local(path)?;
    let meta = core
        .metadata(&local)
        .map_err(|e| core.ctx(parse_error(e), path))?;
    if meta.is_dir() {
        return Err(core.ctx(Error::new(ErrorKind::Conflict, "is a directory"), path));
    }
    if !meta.is_file() {
        return Err(core.ctx(
            Error::new(
                ErrorKind::Unsupported,
                format!(
                    "not a regular file ({:?}); cannot read it",
                    meta.file_type()
                ),
            ),
            path,
        ));
    }
    std::fs::File::open(&local).map_err(|e| core.ctx(parse_error(e), path))
}

/// Reads `path`, or the byte `range` of it. A range reaching past the end of the file is cut
/// at the end (so a range starting at or after the end yields an empty body).
pub(crate) async fn read(
    core: &CoreRef,
    path: &RemotePath,
    range: Option<Range<u64>>,
) -> Result<ByteStream> {
    let p = path.clone();
    let r = range.clone();
    let (file, limit) = core
        .blocking(move |c| {
            let mut file = open_regular(c, &p)?;
            let limit = match r {
                None => None,
                Some(r) => {
                    let len = r.end.saturating_sub(r.start);
                    if r.start > 0 && len > 0 {
                        file.seek(SeekFrom::Start(r.start))
                            .map_err(|e| c.ctx(parse_error(e), &p))?;
                    }
                    Some(len)
                }
            };
            Ok((file, limit))
        })
        .await?;
    if limit == Some(0) {
        return Ok(futures::stream::empty().boxed());
    }
    // One blocking task reads the whole stream straight into the chunks it sends (a
    // `tokio::fs::File` hops to a pool thread and copies through its own buffer per read);
    // it stops when the consumer drops the stream.
    let (tx, rx) = mpsc::channel(AHEAD);
    let p = path.clone();
    tokio::task::spawn_blocking(move || pump(file, limit, &p, &tx));
    Ok(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    })
    .boxed())
}

/// Reads `file` (at most `limit` bytes) into chunks sent on `tx`, until the end, an error (sent
/// as the stream's last item) or a closed receiver.
fn pump(
    mut file: std::fs::File,
    limit: Option<u64>,
    path: &RemotePath,
    tx: &mpsc::Sender<Result<bytes::Bytes>>,
) {
    let mut left = limit.unwrap_or(u64::MAX);
    while left > 0 {
        let want = usize::try_from(left).map_or(CHUNK, |l| l.min(CHUNK));
        let mut buf = BytesMut::zeroed(want);
        let mut filled = 0;
        let mut failed = None;
        while filled < want {
            match file.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    failed = Some(parse_error(e).with_path(path));
                    break;
                }
            }
        }
        buf.truncate(filled);
        left -= filled as u64;
        let end = filled < want;
        if filled > 0 && tx.blocking_send(Ok(buf.freeze())).is_err() {
            return;
        }
        if let Some(e) = failed {
            let _ = tx.blocking_send(Err(e));
            return;
        }
        if end {
            return;
        }
    }
}

/// Computes one hash of `path` by reading it on a blocking thread (local hashes cost a read).
pub(crate) async fn hash(core: &CoreRef, path: &RemotePath, kind: HashKind) -> Result<String> {
    let p = path.clone();
    core.blocking(move |c| {
        let mut file = open_regular(c, &p)?;
        let mut h = MultiHasher::new(&[kind]);
        let mut buf = vec![0u8; 1024 * 1024];
        loop {
            let n = match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(c.ctx(parse_error(e), &p)),
            };
            h.update(&buf[..n]);
        }
        h.finish().get(kind).map(str::to_owned).ok_or_else(|| {
            c.ctx(
                Error::new(ErrorKind::Unsupported, format!("hash {kind} is not known")),
                &p,
            )
        })
    })
    .await
}

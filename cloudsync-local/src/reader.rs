//! Reads: open (only regular files, so a FIFO never blocks us), seek, stream in 256 KiB chunks;
//! and on-demand hashing.

use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;

use cloudsync_core::{ByteStream, Error, ErrorKind, HashKind, MultiHasher, RemotePath, Result};
use futures::{StreamExt, TryStreamExt};
use tokio::io::AsyncReadExt;

use crate::core::{CoreRef, LocalCore, parse_error};

/// Chunk size of read streams.
const CHUNK: usize = 256 * 1024;

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
    let file = tokio::fs::File::from_std(file);
    let p = path.clone();
    let map = move |e: std::io::Error| parse_error(e).with_path(&p);
    Ok(match limit {
        None => tokio_util::io::ReaderStream::with_capacity(file, CHUNK)
            .map_err(map)
            .boxed(),
        Some(0) => futures::stream::empty().boxed(),
        Some(n) => tokio_util::io::ReaderStream::with_capacity(file.take(n), CHUNK)
            .map_err(map)
            .boxed(),
    })
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

//! Downloads: `RETR`, with `REST` for a range that does not start at 0.

use std::ops::Range;

use bytes::BytesMut;
use cloudsync_core::{ByteStream, Error, ErrorKind, RemotePath, Result};
use futures::StreamExt;
use tokio::io::AsyncReadExt;

use crate::core::{FtpCore, Transfer};
use crate::pool::Pooled;

/// Largest chunk handed out at once.
const CHUNK: usize = 256 * 1024;

/// One running download: the connection it holds and what is left to read.
struct Download {
    conn: Pooled,
    transfer: Option<Transfer>,
    /// Bytes still wanted (`None`: to the end of the file).
    remaining: Option<u64>,
    path: String,
}

impl Download {
    async fn next_chunk(&mut self) -> Result<Option<bytes::Bytes>> {
        let timeout = self.conn.timeout;
        let Some(transfer) = self.transfer.as_mut() else {
            return Ok(None);
        };
        let want = match self.remaining {
            Some(0) => return self.stop_early().await.map(|()| None),
            Some(r) => usize::try_from(r).map_or(CHUNK, |r| r.min(CHUNK)),
            None => CHUNK,
        };
        let mut buf = BytesMut::with_capacity(want);
        let n = match tokio::time::timeout(timeout, transfer.take(want as u64).read_buf(&mut buf))
            .await
        {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                return Err(Error::from(e).set_temporary(true).with_path(&self.path));
            }
            Err(_) => {
                return Err(Error::new(
                    ErrorKind::Transient,
                    format!("no data for {} s", timeout.as_secs()),
                )
                .with_path(&self.path));
            }
        };
        if n == 0 {
            // End of data: only the server's reply tells whether the whole file was sent.
            let Some(transfer) = self.transfer.take() else {
                return Ok(None);
            };
            let r = tokio::time::timeout(timeout, transfer.finish()).await;
            let path = self.path.clone();
            self.conn.check(r, "read", &path)?;
            self.conn.broken = false;
            return Ok(None);
        }
        if let Some(r) = self.remaining.as_mut() {
            *r -= n as u64;
        }
        Ok(Some(buf.freeze()))
    }

    /// The range is complete before the file's end: close the data connection and drop the
    /// session. (`ABOR` is answered differently by every server, one `226`, `426` + `226`, or
    /// two `226`s, and a reply left unread would shift every later reply.)
    async fn stop_early(&mut self) -> Result<()> {
        if self.transfer.take().is_some() {
            self.conn.broken = true;
        }
        Ok(())
    }
}

/// Opens a download of `path` (or of `range` of it).
///
/// The stream ends with an error if the connection drops or the server reports a failed
/// transfer, so a truncated download is never mistaken for a complete one.
pub(crate) async fn read(
    core: &FtpCore,
    path: &RemotePath,
    range: Option<Range<u64>>,
) -> Result<ByteStream> {
    let abs = core.paths.abs(path)?;
    let (start, remaining) = match &range {
        Some(r) => (r.start, Some(r.end.saturating_sub(r.start))),
        None => (0, None),
    };
    let mut conn = core.pool.get().await?;
    let transfer = match conn.retr(&abs, start).await {
        Ok(t) => t,
        Err(e) => return Err(conn.confirm_not_found(e, &abs, core.features.mlsd).await),
    };
    // Until the transfer's final reply is read, the connection is not reusable.
    conn.broken = true;
    let download = Download {
        conn,
        transfer: Some(transfer),
        remaining,
        path: abs,
    };
    let stream = futures::stream::try_unfold(download, |mut d| async move {
        Ok(d.next_chunk().await?.map(|chunk| (chunk, d)))
    });
    Ok(stream.boxed())
}

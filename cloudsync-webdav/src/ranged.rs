//! Resumable uploads by ranged `PUT` ([`Remote::write_at`](cloudsync_core::Remote::write_at)).
//!
//! Apache's mod_dav takes a `PUT` carrying `Content-Range: bytes START-END/*` (END inclusive,
//! the total `*` or a number above END; anything else is refused with 400) as a write into the
//! existing file from START on, in place: the file is opened without truncation, and when the
//! body breaks off the bytes that arrived stay. Other servers differ: sabre/dav (Nextcloud,
//! ownCloud) and nginx answer `501 Not Implemented`, and some ignore the header and store the
//! body as the whole file, from byte 0.
//!
//! So nothing is assumed: the first `write_at` of a remote probes the server once, on a
//! scratch file of its own next to the partial file (a plain `PUT` of a few bytes, a ranged
//! `PUT` appending a few more, a `GET` that must return exactly both), and every ranged `PUT`
//! after that is followed by a `PROPFIND` that must show the file grown to exactly the end of
//! the range. A server that refuses the probe, or fails it, or fails a later check, gets
//! [`ErrorKind::Unsupported`] at offset 0 (the engine then writes the plain, atomic way); a
//! partial file it may have damaged is removed, never trusted.
//!
//! A ranged `PUT` must announce its range, so the body goes as consecutive ranged `PUT`s, each
//! checked before the next starts:
//! - When the caller gives the file's total size (the engine does), each chunk's range is
//!   known before its bytes are read, so the bytes stream straight through: nothing is held
//!   in memory, and the chunks grow from `chunk_size`, doubling up to [`MAX_GROWTH`] times it
//!   (a 256 MiB file goes in 6 `PUT`s instead of 26; each one costs a pause of a few
//!   milliseconds while the server answers and its size is checked). A body that ends or fails
//!   inside a chunk cuts that `PUT` short: Apache keeps what reached it, and the next attempt
//!   checks those bytes like any kept ones; a server that drops a broken request loses that
//!   chunk's bytes, never more, and the cap bounds how much that can be.
//! - Otherwise chunks of at most `chunk_size` bytes are buffered so their range is exact (the
//!   next chunk is read while one is sent: two chunks in memory at most); when the source
//!   fails mid-chunk, the bytes it gave before failing are sent too, so the next attempt
//!   continues right where the source stopped.
//!
//! Either way each acknowledged chunk stays for the next attempt, and the size check after
//! each one catches a server that acknowledged bytes it did not keep (a hole that the final
//! size alone would not show).

use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use cloudsync_core::{ByteStream, Error, ErrorKind, RemotePath, Result};
use futures::TryStreamExt;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE};

use crate::core::WebdavCore;
use crate::{lister, writer};

/// The first bytes of the probe file (a plain `PUT`).
const PROBE_HEAD: &[u8] = b"cloudsync ranged PUT probe: head;";
/// The bytes the probe appends with a ranged `PUT`.
const PROBE_TAIL: &[u8] = b"tail appended at its offset.";
/// The largest streamed chunk, in multiples of `chunk_size` (see the module docs).
const MAX_GROWTH: u64 = 8;
/// Pieces of a streamed chunk waiting for the connection.
const STREAM_AHEAD: usize = 4;

/// Whether the server takes ranged `PUT`s, per remote: probed once, and withdrawn for good when
/// a later write shows that a range was not honoured.
#[derive(Debug, Default)]
pub(crate) struct RangedPut {
    probed: tokio::sync::OnceCell<bool>,
    withdrawn: AtomicBool,
}

impl RangedPut {
    /// Marks ranged `PUT` as not working on this server, whatever the probe said.
    fn withdraw(&self) {
        self.withdrawn.store(true, Ordering::Relaxed);
    }
}

/// Whether ranged `PUT` works on this server (probing it in `dir` the first time). Errors
/// that say nothing about ranged `PUT` (the connection, authentication, a server shedding
/// load) are returned and leave the question open for the next call.
pub(crate) async fn supported(core: &WebdavCore, dir: &RemotePath) -> Result<bool> {
    if core.ranged.withdrawn.load(Ordering::Relaxed) {
        return Ok(false);
    }
    let yes = *core
        .ranged
        .probed
        .get_or_try_init(|| async {
            let yes = probe(core, dir).await?;
            tracing::info!(remote = %core.describe, ranged_put = yes, "probed ranged PUT");
            Ok::<_, Error>(yes)
        })
        .await?;
    Ok(yes && !core.ranged.withdrawn.load(Ordering::Relaxed))
}

/// Writes the probe file in `dir`, appends to it with a ranged `PUT`, reads it back and
/// removes it.
async fn probe(core: &WebdavCore, dir: &RemotePath) -> Result<bool> {
    let path = dir.join(&cloudsync_core::temp_name("range-probe", 96))?;
    let url = core.url(&path, false);
    let rb = core
        .request(reqwest::Method::PUT, url.clone())
        .header(CONTENT_LENGTH, PROBE_HEAD.len())
        .body(Bytes::from_static(PROBE_HEAD));
    core.send_ok(rb, &path).await?;
    let answer = probe_steps(core, &path).await;
    // A request of the probe that failed may still be running on the server: look again.
    if answer.is_ok() {
        writer::remove_answered(core, url).await;
    } else {
        writer::discard(core, url).await;
    }
    answer
}

/// The ranged `PUT` and the read-back of [`probe`].
async fn probe_steps(core: &WebdavCore, path: &RemotePath) -> Result<bool> {
    let start = PROBE_HEAD.len() as u64;
    let resp = send_range(core, path, start, vec![Bytes::from_static(PROBE_TAIL)]).await?;
    let status = resp.status();
    if !status.is_success() {
        let e = core.status_error(resp, path).await;
        // 501 is the answer RFC 9110 asks of a server that does not implement a Content-*
        // header (nginx and sabre/dav give it); a 4xx other than these refuses the request as
        // such. Anything else says nothing about ranged PUT and leaves the question open.
        let refused = status == StatusCode::NOT_IMPLEMENTED
            || (status.is_client_error()
                && !matches!(
                    status,
                    StatusCode::UNAUTHORIZED
                        | StatusCode::REQUEST_TIMEOUT
                        | StatusCode::TOO_MANY_REQUESTS
                ));
        if !refused {
            return Err(e);
        }
        tracing::debug!(%status, error = %e, "the server refuses ranged PUT");
        return Ok(false);
    }
    let get = core.request(reqwest::Method::GET, core.url(path, false));
    let resp = match core.send_ok(get, path).await {
        Ok(r) => r,
        Err(e) if e.is_retryable() || e.kind() == ErrorKind::Auth => return Err(e),
        // The file the server just acknowledged cannot be read back: not a server to trust
        // with partial files.
        Err(e) => {
            tracing::debug!(error = %e, "cannot read the ranged PUT probe back");
            return Ok(false);
        }
    };
    let want = [PROBE_HEAD, PROBE_TAIL].concat();
    let got = read_capped(core, resp, path, want.len() + 1).await?;
    if got[..] != want[..] {
        tracing::debug!(
            bytes = got.len(),
            want = want.len(),
            "the server answered a ranged PUT but did not write at the range"
        );
        return Ok(false);
    }
    Ok(true)
}

/// At most `cap` bytes of a response body; a body that breaks off is an error.
async fn read_capped(
    core: &WebdavCore,
    mut resp: reqwest::Response,
    path: &RemotePath,
    cap: usize,
) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    while out.len() < cap {
        match resp.chunk().await {
            Ok(Some(c)) => out.extend_from_slice(&c[..c.len().min(cap - out.len())]),
            Ok(None) => break,
            Err(e) => return Err(core.transport_error(e, path)),
        }
    }
    Ok(out)
}

/// One `PUT` of `pieces` (one range, at least one byte in all) into `path` at `start`.
async fn send_range(
    core: &WebdavCore,
    path: &RemotePath,
    start: u64,
    pieces: Vec<Bytes>,
) -> Result<reqwest::Response> {
    let len: u64 = pieces.iter().map(|b| b.len() as u64).sum();
    debug_assert!(len > 0, "an empty range cannot be written");
    let end = start + len.saturating_sub(1);
    let body = futures::stream::iter(pieces.into_iter().map(Ok::<_, std::io::Error>));
    let rb = core
        .request(reqwest::Method::PUT, core.url(path, false))
        .header(CONTENT_RANGE, format!("bytes {start}-{end}/*"))
        .header(CONTENT_LENGTH, len)
        .body(reqwest::Body::wrap_stream(body));
    core.send(rb, path).await
}

/// Writes `body` into the partial file `path` from `offset` on and returns its size after (see
/// the module documentation and [`Remote::write_at`](cloudsync_core::Remote::write_at)).
pub(crate) async fn write_at(
    core: &WebdavCore,
    path: &RemotePath,
    offset: u64,
    body: ByteStream,
    total: Option<u64>,
) -> Result<u64> {
    let Some(dir) = path.parent() else {
        return Err(core.err(ErrorKind::InvalidInput, "cannot write the root", path));
    };
    writer::ensure_parent(core, path).await?;
    if !supported(core, &dir).await? {
        if offset == 0 {
            return Err(Error::unsupported("write_at", &core.describe).with_path(path));
        }
        // Kept from a time the server took ranged PUTs: it cannot be continued now.
        writer::discard(core, core.url(path, false)).await;
        return Err(core
            .err(
                ErrorKind::ConditionNotMatch,
                "the server does not take ranged PUT: the partial file was removed",
                path,
            )
            .set_temporary(true));
    }
    if offset == 0 {
        // Creates the file, or empties it.
        let rb = core
            .request(reqwest::Method::PUT, core.url(path, false))
            .header(CONTENT_LENGTH, 0)
            .body(Bytes::new());
        put_ok(core, path, core.send(rb, path).await?).await?;
    } else {
        let have = match lister::stat(core, path).await {
            Ok(e) if e.is_file() => Some(e.size),
            Ok(_) => None,
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        if have != Some(offset) {
            // A ranged PUT cannot cut a file short; the engine starts again from 0.
            let what = have.map_or_else(|| "is missing".to_owned(), |n| format!("has {n} bytes"));
            return Err(core
                .err(
                    ErrorKind::ConditionNotMatch,
                    &format!("cannot continue the partial file at byte {offset}: it {what}"),
                    path,
                )
                .set_temporary(true));
        }
    }
    let mut source = Chunker::new(body, core.chunk_size);
    let mut at = offset;
    if let Some(total) = total {
        let most = core.chunk_size.saturating_mul(MAX_GROWTH);
        let mut size = core.chunk_size;
        while at < total {
            let len = size.min(total - at);
            stream_chunk(core, path, at, len, &mut source).await?;
            at += len;
            size = size.saturating_mul(2).min(most);
        }
    }
    // The buffered way: a total not given, or a body longer than it.
    let (mut pieces, mut len, mut end) = source.next_chunk().await;
    loop {
        if len == 0 {
            match end {
                ChunkEnd::Failed(e) => return Err(e),
                ChunkEnd::Full | ChunkEnd::Done => break,
            }
        }
        if matches!(end, ChunkEnd::Full) {
            // Read the next chunk while this one is sent (two chunks in memory at most).
            let (sent, next) =
                tokio::join!(put_chunk(core, path, at, pieces, len), source.next_chunk());
            sent?;
            at += len;
            (pieces, len, end) = next;
            continue;
        }
        put_chunk(core, path, at, pieces, len).await?;
        at += len;
        match end {
            ChunkEnd::Failed(e) => return Err(e),
            ChunkEnd::Full | ChunkEnd::Done => break,
        }
    }
    if at == offset {
        // Nothing sent: report what the server has.
        let e = lister::stat(core, path).await?;
        return Ok(e.size);
    }
    Ok(at)
}

/// Sends the next `len` bytes of `source` as one ranged `PUT` at `start`, streaming them as
/// they are read, then checks the file's size as [`put_chunk`] does.
async fn stream_chunk(
    core: &WebdavCore,
    path: &RemotePath,
    start: u64,
    len: u64,
    source: &mut Chunker,
) -> Result<()> {
    let (tx, rx) = tokio::sync::mpsc::channel(STREAM_AHEAD);
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|piece| (piece, rx))
    });
    let end = start + len - 1;
    let rb = core
        .request(reqwest::Method::PUT, core.url(path, false))
        .header(CONTENT_RANGE, format!("bytes {start}-{end}/*"))
        .header(CONTENT_LENGTH, len)
        .body(reqwest::Body::wrap_stream(body));
    let (sent, fed) = tokio::join!(core.send(rb, path), source.feed(len, tx));
    // The source's own failure first: it is why the request broke off.
    let failed = match fed {
        Fed::Failed(e) => Some(e),
        Fed::Short(got) => Some(
            core.err(
                ErrorKind::ConditionNotMatch,
                &format!(
                    "the source ended {got} bytes into a range of {len} at byte {start}, \
                     before the size it was announced with"
                ),
                path,
            )
            .set_temporary(true),
        ),
        Fed::Whole | Fed::Dropped => None,
    };
    let resp = match (failed, sent) {
        (None, Ok(resp)) => resp,
        (Some(e), _) | (None, Err(e)) => {
            settle(core, path).await;
            return Err(e);
        }
    };
    put_ok(core, path, resp).await?;
    check_size(core, path, start + len).await
}

/// Waits (a second at most) until the size of `path` stops changing: a request that broke
/// off may still be written by the server, and the next attempt should find the bytes that
/// arrived rather than race with them.
async fn settle(core: &WebdavCore, path: &RemotePath) {
    let mut last = None;
    for _ in 0..20 {
        let now = match lister::stat(core, path).await {
            Ok(e) => Some(e.size),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            // The server is not answering: nothing to wait for.
            Err(_) => return,
        };
        if last == Some(now) {
            return;
        }
        last = Some(now);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Sends one chunk and checks that the file now ends exactly where the chunk does.
async fn put_chunk(
    core: &WebdavCore,
    path: &RemotePath,
    start: u64,
    pieces: Vec<Bytes>,
    len: u64,
) -> Result<()> {
    let resp = send_range(core, path, start, pieces).await?;
    put_ok(core, path, resp).await?;
    check_size(core, path, start + len).await
}

/// Checks that the partial file ends exactly at `want` after a chunk. When it does not, the
/// server did not honour the range: ranged `PUT` is withdrawn for this remote and the
/// (damaged) partial file removed.
async fn check_size(core: &WebdavCore, path: &RemotePath, want: u64) -> Result<()> {
    let have = lister::stat(core, path).await?.size;
    if have != want {
        core.ranged.withdraw();
        writer::discard(core, core.url(path, false)).await;
        tracing::warn!(
            remote = %core.describe, %path, have, want,
            "the server did not write a ranged PUT at its range; resumable uploads turned off"
        );
        return Err(core
            .err(
                ErrorKind::Protocol,
                &format!(
                    "the server did not honour Content-Range (the file has {have} bytes after \
                     writing up to byte {want}); the partial file was removed"
                ),
                path,
            )
            .set_temporary(true));
    }
    Ok(())
}

/// Turns a non-success answer to a `PUT` into an error (a missing parent is temporary: a
/// retry makes it again).
async fn put_ok(core: &WebdavCore, path: &RemotePath, resp: reqwest::Response) -> Result<()> {
    if resp.status().is_success() {
        return Ok(());
    }
    let status = resp.status();
    let mut e = core.status_error(resp, path).await;
    if matches!(status, StatusCode::CONFLICT | StatusCode::NOT_FOUND) {
        if let Some(p) = path.parent() {
            core.forget_dir(&p);
        }
        e = e.set_temporary(true);
    }
    Err(e)
}

/// How a chunk taken from the body ended.
enum ChunkEnd {
    /// The chunk is full; the body may have more.
    Full,
    /// The body ended.
    Done,
    /// The body failed after the chunk's bytes.
    Failed(Error),
}

/// How feeding a streamed chunk ended.
enum Fed {
    /// Every byte of the range went to the request.
    Whole,
    /// The request stopped taking bytes (it failed, or was answered early).
    Dropped,
    /// The body ended after this many bytes of the range.
    Short(u64),
    /// The body failed inside the range.
    Failed(Error),
}

/// Ends a streamed chunk's request with an error, so it breaks off instead of ending early
/// (its `Content-Length` promised more); returns `fed`.
async fn broke_off(tx: &tokio::sync::mpsc::Sender<std::io::Result<Bytes>>, fed: Fed) -> Fed {
    let _ = tx
        .send(Err(std::io::Error::other("the source broke off")))
        .await;
    fed
}

/// Cuts a body into chunks of at most `size` bytes.
struct Chunker {
    body: ByteStream,
    pending: Option<Bytes>,
    size: u64,
}

impl Chunker {
    fn new(body: ByteStream, size: u64) -> Self {
        Chunker {
            body,
            pending: None,
            size: size.max(1),
        }
    }

    /// The next non-empty piece of the body, at most `room` bytes (the rest of a longer
    /// piece waits for the next call); `Ok(None)` when the body has ended.
    async fn next_piece(&mut self, room: u64) -> Result<Option<Bytes>> {
        loop {
            let mut b = match self.pending.take() {
                Some(b) => b,
                None => match self.body.try_next().await? {
                    Some(b) => b,
                    None => return Ok(None),
                },
            };
            if b.is_empty() {
                continue;
            }
            if b.len() as u64 > room {
                // `room` is below `b.len()`, so it fits in usize.
                self.pending = Some(b.split_off(room as usize));
            }
            return Ok(Some(b));
        }
    }

    /// Sends the next `len` bytes of the body into `tx` as they come. A body that ends or
    /// fails first gets an error sent after its bytes, so the request breaks off instead of
    /// ending early.
    async fn feed(
        &mut self,
        len: u64,
        tx: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
    ) -> Fed {
        let mut sent = 0u64;
        while sent < len {
            let b = match self.next_piece(len - sent).await {
                Ok(Some(b)) => b,
                Ok(None) => return broke_off(&tx, Fed::Short(sent)).await,
                Err(e) => return broke_off(&tx, Fed::Failed(e)).await,
            };
            sent += b.len() as u64;
            if tx.send(Ok(b)).await.is_err() {
                return Fed::Dropped;
            }
        }
        Fed::Whole
    }

    /// The next chunk's pieces and length, and how it ended.
    async fn next_chunk(&mut self) -> (Vec<Bytes>, u64, ChunkEnd) {
        let mut pieces = Vec::new();
        let mut len = 0u64;
        loop {
            match self.next_piece(self.size - len).await {
                Ok(Some(b)) => {
                    len += b.len() as u64;
                    pieces.push(b);
                    if len == self.size {
                        return (pieces, len, ChunkEnd::Full);
                    }
                }
                Ok(None) => return (pieces, len, ChunkEnd::Done),
                Err(e) => return (pieces, len, ChunkEnd::Failed(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn body(parts: Vec<Result<&'static [u8]>>) -> ByteStream {
        futures::stream::iter(parts.into_iter().map(|r| r.map(Bytes::from_static))).boxed()
    }

    async fn all(mut c: Chunker) -> Vec<(Vec<u8>, &'static str)> {
        let mut out = Vec::new();
        loop {
            let (pieces, _, end) = c.next_chunk().await;
            let bytes: Vec<u8> = pieces.concat();
            match end {
                ChunkEnd::Full => out.push((bytes, "full")),
                ChunkEnd::Done => {
                    out.push((bytes, "done"));
                    return out;
                }
                ChunkEnd::Failed(_) => {
                    out.push((bytes, "failed"));
                    return out;
                }
            }
        }
    }

    #[tokio::test]
    async fn chunks_are_cut_at_the_size_and_keep_every_byte() {
        let c = Chunker::new(body(vec![Ok(b"abc"), Ok(b""), Ok(b"defgh"), Ok(b"ij")]), 4);
        let got = all(c).await;
        assert_eq!(
            got,
            vec![
                (b"abcd".to_vec(), "full"),
                (b"efgh".to_vec(), "full"),
                (b"ij".to_vec(), "done"),
            ]
        );
    }

    #[tokio::test]
    async fn a_failing_body_gives_its_bytes_before_the_failure() {
        let c = Chunker::new(
            body(vec![
                Ok(b"abcdef"),
                Err(Error::new(ErrorKind::Transient, "cut")),
            ]),
            4,
        );
        let got = all(c).await;
        assert_eq!(
            got,
            vec![(b"abcd".to_vec(), "full"), (b"ef".to_vec(), "failed")]
        );
    }

    #[tokio::test]
    async fn an_exact_multiple_ends_with_an_empty_last_chunk() {
        let c = Chunker::new(body(vec![Ok(b"abcdefgh")]), 4);
        let got = all(c).await;
        assert_eq!(
            got,
            vec![
                (b"abcd".to_vec(), "full"),
                (b"efgh".to_vec(), "full"),
                (Vec::new(), "done"),
            ]
        );
    }
}

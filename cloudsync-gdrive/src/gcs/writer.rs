//! Uploads: one multipart request (metadata and media, `uploadType=multipart`) up to the
//! cutoff, a resumable session (`uploadType=resumable`) in chunks above it, resumed from the
//! committed offset after a transient failure.
//!
//! An object appears whole or not at all (Cloud Storage commits an upload only when its last
//! byte arrived), so no temporary name is used. What the service reports for the new object
//! (size, MD5 or CRC32C) is compared with what was sent; an object that does not match is
//! removed again (that generation only) and the write fails.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use cloudsync_core::http::{retry_after, transport_error};
use cloudsync_core::{
    ByteStream, Entry, Error, ErrorKind, HashKind, Hashes, MultiHasher, RemotePath, Result,
    SessionToken, WriteMeta,
};
use futures::TryStreamExt;
use reqwest::header::{CONTENT_RANGE, CONTENT_TYPE, LOCATION, RANGE};
use reqwest::{Response, StatusCode};

use super::core::{
    GcsCore, OBJECT_FIELDS, Object, error_from, hex_to_b64, json_capped, mtime_metadata,
    parse_error,
};

/// Attempts of one chunk (the first and the resumptions after transient failures).
const MAX_CHUNK_ATTEMPTS: usize = 5;
/// Answers in a row that take a chunk without moving the committed offset: past this, the
/// session is stuck.
const MAX_STALLS: usize = 3;
/// The first wait before a resumption; it doubles each time.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// The longest `Retry-After` waited for inside one upload; a longer one fails the write, and
/// the engine's retries take it from there.
const MAX_INNER_WAIT: Duration = Duration::from_secs(30);

/// Whether the object must not exist yet (`ifGenerationMatch=0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Precondition {
    /// Replace whatever is there.
    None,
    /// Create only: the service refuses (412) when the object exists.
    DoesNotExist,
}

/// Uploads `body` to `path` (never the root) and returns its entry; errors name the
/// operation, the remote and the path.
pub(crate) async fn put(
    core: &GcsCore,
    path: &RemotePath,
    body: ByteStream,
    meta: WriteMeta,
    pre: Precondition,
) -> Result<Entry> {
    if path.is_root() {
        return Err(core.ctx(
            Error::new(ErrorKind::InvalidInput, "cannot write to the root"),
            path,
        ));
    }
    let name = core.object_name(path);
    let obj = write(core, &name, body, &meta, pre)
        .await
        .map_err(|e| core.ctx(e, path))?;
    obj.entry(path.clone()).map_err(|e| core.ctx(e, path))
}

/// Uploads `body` as object `name`.
pub(crate) async fn write(
    core: &GcsCore,
    name: &str,
    mut body: ByteStream,
    meta: &WriteMeta,
    pre: Precondition,
) -> Result<Object> {
    let resource = object_resource(name, meta)?;
    let mut sent = Sent::new(meta.size, meta.hashes.clone());
    let mut buf = BytesMut::new();
    let cutoff = core.cfg.upload_cutoff;
    // Up to the cutoff, everything is buffered for one multipart request.
    loop {
        match body.try_next().await? {
            None => {
                sent.end()?;
                let obj = multipart(core, name, &resource, buf.freeze(), pre).await?;
                return sent.verify(core, name, obj).await;
            }
            Some(chunk) => {
                sent.add(&chunk)?;
                buf.extend_from_slice(&chunk);
                if buf.len() as u64 > cutoff {
                    break;
                }
            }
        }
    }
    let session = Session::start(core, name, &resource, pre).await?;
    let result = send_rest(&session, buf, &mut body, &mut sent, 0, core.cfg.chunk_size).await;
    match result {
        Ok(obj) => sent.verify(core, name, obj).await,
        Err(e) => {
            session.cancel().await;
            Err(e)
        }
    }
}

/// Sends what `buf` holds, then the rest of `body`, into `session` from byte `offset` in
/// chunks of `chunk_size`, and finishes the upload: a chunk goes out only when more bytes
/// follow it, so the last request carries the total (`sent` counts and checks it).
async fn send_rest(
    session: &Session<'_>,
    mut buf: BytesMut,
    body: &mut ByteStream,
    sent: &mut Sent,
    mut offset: u64,
    chunk_size: u64,
) -> Result<Object> {
    let chunk_size = usize::try_from(chunk_size).unwrap_or(usize::MAX);
    loop {
        while buf.len() > chunk_size {
            let chunk = buf.split_to(chunk_size).freeze();
            let len = chunk.len() as u64;
            match session.put(offset, chunk, None).await? {
                Outcome::Committed => offset += len,
                Outcome::Done(_) => {
                    return Err(Error::new(
                        ErrorKind::Protocol,
                        "the upload session finished before the last chunk",
                    ));
                }
            }
        }
        match body.try_next().await? {
            Some(chunk) => {
                sent.add(&chunk)?;
                buf.extend_from_slice(&chunk);
            }
            None => break,
        }
    }
    sent.end()?;
    match session
        .put(offset, buf.split().freeze(), Some(sent.count))
        .await?
    {
        Outcome::Done(obj) => Ok(obj),
        Outcome::Committed => Err(Error::new(
            ErrorKind::Protocol,
            "the upload session took the last chunk but made no object",
        )),
    }
}

/// The object resource of an upload: name, type, the modtime in `metadata`, and a known MD5
/// (which lets the service refuse content that does not match it, before the commit).
fn object_resource(name: &str, meta: &WriteMeta) -> Result<serde_json::Value> {
    let mut resource = serde_json::json!({
        "name": name,
        "contentType": "application/octet-stream",
    });
    if let Some(t) = meta.modtime {
        resource["metadata"] = mtime_metadata(t)?;
    }
    if let Some(b64) = meta.hashes.get(HashKind::Md5).and_then(hex_to_b64) {
        resource["md5Hash"] = serde_json::Value::String(b64);
    }
    Ok(resource)
}

/// Counts and hashes what is sent, against the size announced.
struct Sent {
    want: Option<u64>,
    /// Hashes the caller announced for the content.
    announced: Hashes,
    count: u64,
    hasher: Option<MultiHasher>,
    hashes: Hashes,
}

impl Sent {
    fn new(want: Option<u64>, announced: Hashes) -> Self {
        Sent {
            want,
            announced,
            count: 0,
            hasher: Some(MultiHasher::new(&[HashKind::Md5, HashKind::Crc32c])),
            hashes: Hashes::default(),
        }
    }

    /// What is sent of an upload whose first `offset` bytes the service already holds: the
    /// count starts there, and nothing is hashed (a hash of the rest alone proves nothing).
    fn resumed(want: u64, offset: u64) -> Self {
        Sent {
            want: Some(want),
            announced: Hashes::default(),
            count: offset,
            hasher: None,
            hashes: Hashes::default(),
        }
    }

    fn short(&self) -> Error {
        Error::new(
            ErrorKind::ConditionNotMatch,
            format!(
                "the body had {} bytes, not the {} announced; nothing was stored",
                self.count,
                self.want.unwrap_or(0)
            ),
        )
    }

    /// Checked before anything is committed: a body longer than announced fails here, one
    /// shorter or with another hash in [`Sent::end`].
    fn add(&mut self, chunk: &[u8]) -> Result<()> {
        self.count += chunk.len() as u64;
        if self.want.is_some_and(|w| self.count > w) {
            return Err(self.short());
        }
        if let Some(h) = self.hasher.as_mut() {
            h.update(chunk);
        }
        Ok(())
    }

    fn end(&mut self) -> Result<()> {
        if self.want.is_some_and(|w| self.count != w) {
            return Err(self.short());
        }
        if let Some(h) = self.hasher.take() {
            self.hashes = h.finish();
        }
        // Checked before the last byte goes out: content that is not what was announced is
        // never committed.
        if self.hashes.matches(&self.announced) == Some(false) {
            return Err(Error::new(
                ErrorKind::ConditionNotMatch,
                "the body does not have the hash announced for it; nothing was stored",
            ));
        }
        Ok(())
    }

    /// The new object must be what was sent: its size, and its MD5 (else CRC32C) when the
    /// service reports one. One that is not is removed (only that generation) and the write
    /// fails with a temporary error (the bytes were damaged on the way).
    async fn verify(&self, core: &GcsCore, name: &str, obj: Object) -> Result<Object> {
        if obj.name != name {
            return Err(Error::new(
                ErrorKind::Protocol,
                format!(
                    "the upload of {:?} answered with object {:?}",
                    super::core::cut(name),
                    super::core::cut(&obj.name)
                ),
            ));
        }
        let size = obj.size()?;
        let theirs = obj.hashes();
        let hash_ok = self.hashes.matches(&theirs);
        if size == self.count && hash_ok != Some(false) {
            if hash_ok.is_none() {
                tracing::debug!(object = %obj.name, "the service reported no hash of the upload");
            }
            return Ok(obj);
        }
        let removed = match obj.generation.as_deref() {
            Some(g) => core.delete_object(name, Some(g)).await,
            None => Ok(false),
        };
        tracing::warn!(
            object = %obj.name,
            size,
            sent = self.count,
            removed = ?removed.as_ref().ok(),
            "the stored object is not what was sent"
        );
        Err(Error::new(
            ErrorKind::Transient,
            format!(
                "the stored object is not what was sent ({size} bytes stored, {} sent{}); {}",
                self.count,
                if hash_ok == Some(false) {
                    ", hashes differ"
                } else {
                    ""
                },
                match removed {
                    Ok(true) => "it was removed again",
                    _ => "it could not be removed",
                }
            ),
        ))
    }
}

/// Query parameters of an upload.
fn upload_query(kind: &'static str, name: &str, pre: Precondition) -> Vec<(&'static str, String)> {
    let mut q = vec![
        ("uploadType", kind.to_owned()),
        ("name", name.to_owned()),
        ("fields", OBJECT_FIELDS.to_owned()),
    ];
    if pre == Precondition::DoesNotExist {
        q.push(("ifGenerationMatch", "0".to_owned()));
    }
    q
}

/// One `multipart/related` request of the resource and the content.
async fn multipart(
    core: &GcsCore,
    name: &str,
    resource: &serde_json::Value,
    data: Bytes,
    pre: Precondition,
) -> Result<Object> {
    let boundary = format!(
        "cloudsync-{:016x}{:016x}{:016x}",
        fastrand::u64(..),
        fastrand::u64(..),
        fastrand::u64(..)
    );
    let mut b = Vec::with_capacity(data.len() + 512);
    b.extend_from_slice(
        format!("--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n").as_bytes(),
    );
    b.extend_from_slice(resource.to_string().as_bytes());
    b.extend_from_slice(
        format!("\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
    );
    b.extend_from_slice(&data);
    b.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let body = Bytes::from(b);
    let url = core.upload_url();
    let query = upload_query("multipart", name, pre);
    let res = core
        .send(true, |c| {
            c.post(&url)
                .query(&query)
                .header(
                    CONTENT_TYPE,
                    format!("multipart/related; boundary={boundary}"),
                )
                .body(body.clone())
        })
        .await?;
    json_capped(res, "object resource").await
}

/// What a chunk request ended in.
enum Outcome {
    /// The service has every byte up to the end of the chunk.
    Committed,
    /// The upload is complete: the new object.
    Done(Object),
}

/// A resumable upload session. Its URI authorizes the upload by itself, so requests to it
/// carry no bearer token, and it is never logged or put in an error (reqwest errors are
/// stripped of their URL).
struct Session<'a> {
    core: &'a GcsCore,
    uri: String,
    /// What an answer that the session is gone becomes: a transient error inside one write
    /// (the write as a whole may be tried again), `NotFound` for a recorded session (the
    /// engine then opens a new one).
    gone: ErrorKind,
}

/// The committed offset a 308 answer reports: `Range: bytes=0-N` means N+1 bytes; no `Range`
/// means none ("If you received a 308 response without a Range header, … start uploading
/// from the beginning", Cloud Storage's "Perform resumable uploads" guide).
fn committed(res: &Response) -> Result<u64> {
    let Some(v) = res.headers().get(RANGE) else {
        return Ok(0);
    };
    v.to_str()
        .ok()
        .and_then(|v| v.strip_prefix("bytes=0-"))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .and_then(|n| n.checked_add(1))
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Protocol,
                format!("the upload session answered 308 with Range {v:?}"),
            )
        })
}

impl<'a> Session<'a> {
    /// `POST …?uploadType=resumable` with the resource; the session URI comes back in
    /// `Location` and must point at the upload endpoint's own origin.
    async fn start(
        core: &'a GcsCore,
        name: &str,
        resource: &serde_json::Value,
        pre: Precondition,
    ) -> Result<Session<'a>> {
        let url = core.upload_url();
        let query = upload_query("resumable", name, pre);
        let res = core
            .send(false, |c| {
                c.post(&url)
                    .query(&query)
                    .header("X-Upload-Content-Type", "application/octet-stream")
                    .json(resource)
            })
            .await?;
        let uri = res
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Protocol,
                    "the resumable upload was accepted without a session URI (Location)",
                )
            })?;
        let ours =
            url::Url::parse(&url).map_err(|e| Error::new(ErrorKind::Unexpected, e.to_string()))?;
        let same_origin = url::Url::parse(&uri)
            .map(|u| u.origin() == ours.origin())
            .unwrap_or(false);
        if !same_origin {
            return Err(Error::new(
                ErrorKind::Protocol,
                "the upload session URI points at another host than the upload endpoint",
            ));
        }
        Ok(Session {
            core,
            uri,
            gone: ErrorKind::Transient,
        })
    }

    /// One request to the session: `data` from `offset` (`Content-Range: bytes a-b/total`),
    /// or with no data the status query (`bytes */total`).
    async fn send(&self, offset: u64, data: Bytes, total: Option<u64>) -> Result<Response> {
        let total_s = total.map_or_else(|| "*".to_owned(), |t| t.to_string());
        let range = if data.is_empty() {
            format!("bytes */{total_s}")
        } else {
            format!(
                "bytes {}-{}/{total_s}",
                offset,
                offset + data.len() as u64 - 1
            )
        };
        self.core
            .http
            .put(&self.uri)
            .header(CONTENT_RANGE, range)
            .body(data)
            .send()
            .await
            .map_err(|e| transport_error(e.without_url()))
    }

    /// Sends `data` (at `offset`; the last chunk with `total`) until the service has all of
    /// it: after a transient failure the committed offset is asked for and the rest sent
    /// again, at most [`MAX_CHUNK_ATTEMPTS`] times, and at most [`MAX_STALLS`] answers in a
    /// row may leave the offset where it was.
    async fn put(&self, offset: u64, data: Bytes, total: Option<u64>) -> Result<Outcome> {
        let end = offset + data.len() as u64;
        let mut from = offset;
        let mut attempts = 0;
        let mut stalls = 0;
        let mut wait = FIRST_BACKOFF;
        loop {
            let slice = data.slice((from - offset) as usize..);
            let failure = match self.send(from, slice, total).await {
                Ok(res) => match self.answer(res).await {
                    Ok(Answer::Done(o)) => return Ok(Outcome::Done(o)),
                    Ok(Answer::Incomplete(n)) => {
                        if n == end && total.is_none() {
                            return Ok(Outcome::Committed);
                        }
                        // The service kept less than was sent (allowed: "resend the rest").
                        self.check_offset(n, offset, end)?;
                        if n <= from {
                            stalls += 1;
                            if stalls > MAX_STALLS {
                                return Err(Error::new(
                                    ErrorKind::Transient,
                                    format!("the upload session stays at byte {n}"),
                                ));
                            }
                        } else {
                            stalls = 0;
                        }
                        from = n;
                        continue;
                    }
                    Err(e) => e,
                },
                Err(e) => e,
            };
            if !failure.is_retryable() {
                return Err(failure);
            }
            attempts += 1;
            if attempts >= MAX_CHUNK_ATTEMPTS {
                return Err(failure);
            }
            tracing::debug!(
                offset = from,
                error = %failure,
                "upload chunk failed; asking the session where it stands"
            );
            let pause = failure.retry_after().unwrap_or(wait);
            if pause > MAX_INNER_WAIT {
                return Err(failure);
            }
            tokio::time::sleep(pause).await;
            wait = wait.saturating_mul(2);
            // The status query: what has the service committed?
            match self.send(end, Bytes::new(), total).await {
                Ok(res) => match self.answer(res).await {
                    Ok(Answer::Done(o)) => return Ok(Outcome::Done(o)),
                    Ok(Answer::Incomplete(n)) => {
                        if n == end && total.is_none() {
                            return Ok(Outcome::Committed);
                        }
                        self.check_offset(n, offset, end)?;
                        from = n;
                    }
                    Err(e) if e.is_retryable() => {}
                    Err(e) => return Err(e),
                },
                Err(e) if e.is_retryable() => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The offset a session reports must lie within the chunk in hand: bytes before it were
    /// acknowledged earlier and are no longer held.
    fn check_offset(&self, n: u64, start: u64, end: u64) -> Result<()> {
        if n < start || n > end {
            return Err(Error::new(
                ErrorKind::Protocol,
                format!(
                    "the upload session reports {n} bytes committed, outside the chunk \
                     {start}..{end} being sent"
                ),
            ));
        }
        Ok(())
    }

    /// Classifies an answer of the session.
    async fn answer(&self, res: Response) -> Result<Answer> {
        match res.status() {
            StatusCode::OK | StatusCode::CREATED => {
                Ok(Answer::Done(json_capped(res, "object resource").await?))
            }
            StatusCode::PERMANENT_REDIRECT => Ok(Answer::Incomplete(committed(&res)?)),
            // "The upload session has expired … start a new one" (404 / 410): the write as a
            // whole may be tried again.
            s if session_gone(s) => Err(Error::new(
                self.gone,
                format!("the upload session is gone ({})", res.status()),
            )),
            s => {
                let ra = retry_after(res.headers());
                let e = error_from(res).await;
                // A status without a JSON body still says what it is.
                Err(if e.kind() == ErrorKind::Unexpected {
                    parse_error(s, ra, "")
                } else {
                    e
                })
            }
        }
    }

    /// Cancels the session (DELETE; the service answers 499), so no upload lingers. Best
    /// effort: an unfinished session also expires on its own after a week.
    async fn cancel(&self) {
        let _ = self
            .core
            .http
            .delete(&self.uri)
            .timeout(Duration::from_secs(10))
            .send()
            .await;
    }
}

enum Answer {
    Done(Object),
    Incomplete(u64),
}

/// The answers of a session that no longer takes bytes: 404 and 410 ("The upload session
/// has expired … start a new one"), and 499, which a cancelled session answers.
fn session_gone(s: StatusCode) -> bool {
    matches!(s.as_u16(), 404 | 410 | 499)
}

/// The tag that starts every token of ours: `gcs1 <size> <session URI>`.
const TOKEN_TAG: &str = "gcs1";

/// Opens a resumable upload session for an object of `size` bytes at `path` and returns its
/// token (see [`cloudsync_core::Remote::session_start`]): the session URI and the size. The
/// URI authorizes uploads into the session by itself but holds no credential.
pub(crate) async fn session_start(
    core: &GcsCore,
    path: &RemotePath,
    size: u64,
    meta: &WriteMeta,
) -> Result<SessionToken> {
    if path.is_root() {
        return Err(core.ctx(
            Error::new(ErrorKind::InvalidInput, "cannot write to the root"),
            path,
        ));
    }
    let name = core.object_name(path);
    let resource = object_resource(&name, meta).map_err(|e| core.ctx(e, path))?;
    let session = Session::start(core, &name, &resource, Precondition::None)
        .await
        .map_err(|e| core.ctx(e, path))?;
    Ok(SessionToken::new(format!(
        "{TOKEN_TAG} {size} {}",
        session.uri
    )))
}

/// The session a token names, and the object's size; the URI must point at the upload
/// endpoint's origin (a token comes from a state file, which must not send our bytes
/// elsewhere).
fn open_token<'a>(core: &'a GcsCore, token: &SessionToken) -> Result<(Session<'a>, u64)> {
    let bad = || {
        Error::new(
            ErrorKind::InvalidInput,
            "not an upload session token of this Cloud Storage remote",
        )
    };
    let mut parts = token.expose().splitn(3, ' ');
    let (Some(TOKEN_TAG), Some(size), Some(uri)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let size: u64 = size.parse().map_err(|_| bad())?;
    let ours = url::Url::parse(&core.upload_url())
        .map_err(|e| Error::new(ErrorKind::Unexpected, e.to_string()))?;
    if !url::Url::parse(uri).is_ok_and(|u| u.origin() == ours.origin()) {
        return Err(bad());
    }
    Ok((
        Session {
            core,
            uri: uri.to_owned(),
            gone: ErrorKind::NotFound,
        },
        size,
    ))
}

/// The bytes the session holds: the status query (`PUT` with `Content-Range: bytes */SIZE`
/// and no body), answered `308` with `Range: bytes=0-N` ("Check the status of a resumable
/// upload" in Cloud Storage's guide); `NotFound` when the session is gone. A session that
/// has every byte finishes on this query and answers with the object: it then holds `SIZE`.
pub(crate) async fn session_offset(core: &GcsCore, token: &SessionToken) -> Result<u64> {
    let (session, size) = open_token(core, token)?;
    let res = session.send(size, Bytes::new(), Some(size)).await?;
    match session.answer(res).await? {
        Answer::Incomplete(n) if n <= size => Ok(n),
        Answer::Incomplete(n) => Err(Error::new(
            ErrorKind::Protocol,
            format!("the upload session holds {n} bytes of a {size}-byte object"),
        )),
        Answer::Done(_) => Ok(size),
    }
}

/// Sends the object's bytes from `offset` on (`body`) into the session and finishes it (see
/// [`cloudsync_core::Remote::session_write`]). Chunks the service acknowledged stay in the
/// session when the body or the connection fails: the session is not cancelled.
pub(crate) async fn session_write(
    core: &GcsCore,
    token: &SessionToken,
    path: &RemotePath,
    offset: u64,
    mut body: ByteStream,
) -> Result<Entry> {
    let name = core.object_name(path);
    let result: Result<Object> = async {
        let (session, size) = open_token(core, token)?;
        if offset > size {
            return Err(Error::new(
                ErrorKind::ConditionNotMatch,
                format!("offset {offset} is past the end of the {size}-byte object"),
            ));
        }
        let mut sent = if offset == 0 {
            Sent::new(Some(size), Hashes::default())
        } else {
            Sent::resumed(size, offset)
        };
        let obj = send_rest(
            &session,
            BytesMut::new(),
            &mut body,
            &mut sent,
            offset,
            core.cfg.chunk_size,
        )
        .await?;
        sent.verify(core, &name, obj).await
    }
    .await;
    let obj = result.map_err(|e| core.ctx(e, path))?;
    obj.entry(path.clone()).map_err(|e| core.ctx(e, path))
}

/// Cancels the session (`DELETE` on its URI; the service answers 499). An unknown or expired
/// session is fine.
pub(crate) async fn session_cancel(core: &GcsCore, token: &SessionToken) -> Result<()> {
    let (session, _) = open_token(core, token)?;
    session.cancel().await;
    Ok(())
}

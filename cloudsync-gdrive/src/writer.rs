//! Uploads: one multipart request for files up to `chunk_size`, resumable sessions in chunks for
//! larger ones, resuming from the server's committed offset after a dropped connection.
//!
//! Drive shows a file only once its upload is complete, so every write is atomic; an existing
//! file is updated in place (same id), a new one is created in its folder.

use bytes::{Bytes, BytesMut};
use cloudsync_core::{
    ByteStream, Entry, Error, ErrorKind, RemotePath, Result, SessionToken, WriteMeta,
};
use futures::TryStreamExt;
use md5::Digest as _;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION, RANGE};

use crate::core::{DriveCore, DriveFile, FILE_FIELDS, enc, error_from, file_json, format_time};

/// How often one chunk is resumed after failures before the upload gives up.
const MAX_RESUMES: u32 = 5;

/// Where the content goes.
enum Target<'a> {
    /// A new file in folder `parent`.
    Create { parent: &'a str, name: &'a str },
    /// New content for the existing file `id`.
    Update { id: &'a str },
}

impl Target<'_> {
    fn metadata(&self, meta: &WriteMeta) -> Result<serde_json::Value> {
        let mut m = serde_json::Map::new();
        if let Target::Create { parent, name } = self {
            m.insert("name".into(), crate::core::name_to_drive(name).into());
            m.insert("parents".into(), serde_json::json!([parent]));
        }
        if let Some(t) = meta.modtime {
            m.insert("modifiedTime".into(), format_time(t)?.into());
        }
        Ok(serde_json::Value::Object(m))
    }
}

/// Where a file at a path goes: its folder (created if missing) and the file already there.
struct Place {
    /// The folder's id.
    parent: String,
    /// The id of the file already at the path.
    existing: Option<String>,
}

impl Place {
    /// Creates the parents of `path` and looks up what is there; a folder in the way is a
    /// [`ErrorKind::Conflict`].
    async fn find(core: &DriveCore, path: &RemotePath) -> Result<Place> {
        let Some(parent) = path.parent() else {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "cannot write to the root",
            ));
        };
        let pid = core.mkdir_all(&parent).await?;
        let existing = match core.child(&pid, path.name(), path).await? {
            Some(f) if f.is_folder() => {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    "a folder is in the way of a file",
                ));
            }
            Some(f) => Some(f.id),
            None => None,
        };
        Ok(Place {
            parent: pid,
            existing,
        })
    }

    /// The upload's target: new content for the file there, or a new file named as `path`.
    fn target<'a>(&'a self, path: &'a RemotePath) -> Target<'a> {
        match &self.existing {
            Some(id) => Target::Update { id },
            None => Target::Create {
                parent: &self.parent,
                name: path.name(),
            },
        }
    }
}

/// Writes `body` to `path` (see [`cloudsync_core::Remote::write`]).
pub(crate) async fn write(
    core: &DriveCore,
    path: &RemotePath,
    body: ByteStream,
    meta: WriteMeta,
) -> Result<Entry> {
    let place = Place::find(core, path).await?;
    let target = place.target(path);
    let file = upload(core, &target, body, &meta).await?;
    file.entry(path.clone())
}

/// Uploads the content and returns the new file resource (checked against the content's
/// size and MD5).
async fn upload(
    core: &DriveCore,
    target: &Target<'_>,
    mut body: ByteStream,
    meta: &WriteMeta,
) -> Result<DriveFile> {
    let chunk = core.cfg.chunk_size as usize;
    let mut md5 = md5::Md5::new();
    let mut first = BytesMut::new();
    let mut ended = false;
    while first.len() <= chunk {
        match body.try_next().await? {
            Some(b) => {
                md5.update(&b);
                first.extend_from_slice(&b);
            }
            None => {
                ended = true;
                break;
            }
        }
    }
    let file = if ended {
        check_size(meta, first.len() as u64)?;
        multipart(core, target, meta, first.freeze()).await?
    } else {
        resumable(core, target, meta, first, body, &mut md5).await?
    };
    verify(&file, md5)?;
    Ok(file)
}

fn check_size(meta: &WriteMeta, got: u64) -> Result<()> {
    match meta.size {
        Some(want) if want != got => Err(Error::new(
            ErrorKind::ConditionNotMatch,
            format!("the source sent {got} bytes but announced {want}"),
        )),
        _ => Ok(()),
    }
}

fn verify(file: &DriveFile, md5: md5::Md5) -> Result<()> {
    let local = hex::encode(md5.finalize());
    match &file.md5_checksum {
        Some(remote) if !remote.eq_ignore_ascii_case(&local) => Err(Error::new(
            ErrorKind::Transient,
            format!(
                "uploaded content has MD5 {}, sent {local}",
                crate::core::cut(remote)
            ),
        )),
        _ => Ok(()),
    }
}

fn upload_url(core: &DriveCore, target: &Target<'_>) -> (reqwest::Method, String) {
    match target {
        Target::Create { .. } => (reqwest::Method::POST, core.upload("files")),
        Target::Update { id } => (
            reqwest::Method::PATCH,
            core.upload(&format!("files/{}", enc(id))),
        ),
    }
}

async fn multipart(
    core: &DriveCore,
    target: &Target<'_>,
    meta: &WriteMeta,
    content: Bytes,
) -> Result<DriveFile> {
    let metadata = target.metadata(meta)?;
    let boundary = format!("cloudsync-{:016x}", fastrand::u64(..));
    let mut body = Vec::with_capacity(content.len() + 512);
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{}\r\n\
             --{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n",
            metadata
        )
        .as_bytes(),
    );
    body.extend_from_slice(&content);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let body = Bytes::from(body);
    let (method, url) = upload_url(core, target);
    let mut query = core.common();
    query.push(("uploadType", "multipart".into()));
    query.push(("fields", FILE_FIELDS.into()));
    let ctype = format!("multipart/related; boundary={boundary}");
    let res = core
        .send("write", |c| {
            c.request(method.clone(), &url)
                .query(&query)
                .header(CONTENT_TYPE, &ctype)
                .body(body.clone())
        })
        .await?;
    file_json(res).await
}

/// An open resumable session.
struct Session<'a> {
    core: &'a DriveCore,
    url: String,
    /// Bytes the server has committed.
    committed: u64,
    /// What a session the server no longer knows becomes: a transient error inside one
    /// write (the write as a whole may be tried again), `NotFound` for a recorded session
    /// (the engine then opens a new one).
    gone: ErrorKind,
}

enum ChunkOutcome {
    /// The server committed up to this offset and wants more.
    Committed(u64),
    /// The upload is complete.
    Done(DriveFile),
}

impl Session<'_> {
    /// Sends `data` (starting at `self.committed`), `total` when this is the last chunk.
    async fn put(&self, data: &Bytes, total: Option<u64>) -> Result<ChunkOutcome> {
        let start = self.committed;
        let range = if data.is_empty() {
            format!("bytes */{}", total.map_or("*".into(), |t| t.to_string()))
        } else {
            format!(
                "bytes {start}-{}/{}",
                start + data.len() as u64 - 1,
                total.map_or("*".into(), |t| t.to_string())
            )
        };
        let res = self
            .core
            .send_raw("write", &|c: &reqwest::Client| {
                c.put(&self.url)
                    .header(CONTENT_RANGE, &range)
                    .header(CONTENT_LENGTH, data.len())
                    .body(data.clone())
            })
            .await?;
        self.outcome(res).await
    }

    /// Asks the server how much it has (after a failure). The Drive guide ("Resume an
    /// interrupted upload"): "set the Content-Range to */2000000 if your total file length is
    /// 2,000,000 bytes. If you don't know the full size of the file, set the Content-Range to
    /// */*." With the total, a server that has every byte finishes the upload.
    async fn query(&self, total: Option<u64>) -> Result<ChunkOutcome> {
        let range = format!("bytes */{}", total.map_or("*".into(), |t| t.to_string()));
        let res = self
            .core
            .send_raw("write", &|c: &reqwest::Client| {
                c.put(&self.url)
                    .header(CONTENT_RANGE, &range)
                    .header(CONTENT_LENGTH, 0)
            })
            .await?;
        self.outcome(res).await
    }

    async fn outcome(&self, res: reqwest::Response) -> Result<ChunkOutcome> {
        match res.status() {
            StatusCode::PERMANENT_REDIRECT => {
                let committed = match res.headers().get(RANGE) {
                    None => 0,
                    Some(v) => v
                        .to_str()
                        .ok()
                        .and_then(|s| s.strip_prefix("bytes=0-"))
                        .and_then(|s| s.trim().parse::<u64>().ok())
                        // `bytes=0-18446744073709551615` has no byte count that fits.
                        .and_then(|last| last.checked_add(1))
                        .ok_or_else(|| {
                            Error::new(
                                ErrorKind::Protocol,
                                format!(
                                    "malformed Range {:?} in a 308 answer",
                                    crate::core::cut(&String::from_utf8_lossy(v.as_bytes()))
                                ),
                            )
                        })?,
                };
                Ok(ChunkOutcome::Committed(committed))
            }
            s if s.is_success() => Ok(ChunkOutcome::Done(file_json(res).await?)),
            StatusCode::NOT_FOUND | StatusCode::GONE => Err(Error::new(
                self.gone,
                "the resumable upload session expired",
            )),
            _ => Err(error_from(res).await),
        }
    }

    /// Abandons the session (nothing was created).
    async fn cancel(&self) {
        let _ = self
            .core
            .send_raw("write", &|c: &reqwest::Client| c.delete(&self.url))
            .await;
    }

    /// Sends `buf` (which starts at `self.committed`), resuming from the server's committed
    /// offset after temporary failures, until `min_keep` or fewer bytes remain unsent (all of
    /// it for the last chunk, `total` set). Returns the file when the upload completed.
    async fn drain(
        &mut self,
        buf: &mut BytesMut,
        chunk: usize,
        total: Option<u64>,
    ) -> Result<Option<DriveFile>> {
        let mut failures = 0;
        // 308 answers in a row that committed nothing new: a server that never takes the
        // chunk would otherwise be sent it for ever.
        let mut stalls = 0;
        loop {
            let last = total.is_some();
            if !last && buf.len() < chunk {
                return Ok(None);
            }
            let n = if last { buf.len() } else { chunk };
            let data = Bytes::copy_from_slice(&buf[..n]);
            let outcome = match self.put(&data, total).await {
                Ok(o) => o,
                Err(e) if e.is_retryable() && failures < MAX_RESUMES => {
                    failures += 1;
                    tracing::debug!(error = %e, "chunk failed; asking the server what it has");
                    match self.query(total).await {
                        Ok(o) => o,
                        Err(e2) if e2.is_retryable() && failures < MAX_RESUMES => {
                            failures += 1;
                            continue;
                        }
                        Err(e2) => return Err(e2),
                    }
                }
                Err(e) => return Err(e),
            };
            match outcome {
                ChunkOutcome::Done(f) => return Ok(Some(f)),
                ChunkOutcome::Committed(c) => {
                    let end = self.committed + buf.len() as u64;
                    if c < self.committed || c > end {
                        return Err(Error::new(
                            ErrorKind::Protocol,
                            format!(
                                "server committed {c} bytes, outside {}..={end}",
                                self.committed
                            ),
                        ));
                    }
                    let _ = buf.split_to((c - self.committed) as usize);
                    if c > self.committed {
                        failures = 0;
                        stalls = 0;
                    } else {
                        stalls += 1;
                        if stalls > MAX_RESUMES {
                            return Err(Error::new(
                                ErrorKind::Transient,
                                format!(
                                    "the server committed nothing new {stalls} times in a row \
                                     (at byte {c})"
                                ),
                            ));
                        }
                    }
                    self.committed = c;
                    if last && buf.is_empty() {
                        // Everything is committed but the server did not finish: ask once more.
                        if let ChunkOutcome::Done(f) = self.put(&Bytes::new(), total).await? {
                            return Ok(Some(f));
                        }
                        return Err(Error::new(
                            ErrorKind::Protocol,
                            "the server has every byte but did not finish the upload",
                        ));
                    }
                }
            }
        }
    }
}

/// Opens a resumable session (`uploadType=resumable` with the metadata) and returns its URI
/// (`Location`).
async fn open_session(core: &DriveCore, target: &Target<'_>, meta: &WriteMeta) -> Result<String> {
    let (method, url) = upload_url(core, target);
    let mut query = core.common();
    query.push(("uploadType", "resumable".into()));
    query.push(("fields", FILE_FIELDS.into()));
    let metadata = target.metadata(meta)?;
    let res = core
        .send("write", |c| {
            let mut r = c
                .request(method.clone(), &url)
                .query(&query)
                .json(&metadata);
            if let Some(size) = meta.size {
                r = r.header("X-Upload-Content-Length", size);
            }
            r
        })
        .await?;
    let location = res
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Error::new(ErrorKind::Protocol, "no Location for the upload session"))?
        .to_owned();
    Ok(location)
}

async fn resumable(
    core: &DriveCore,
    target: &Target<'_>,
    meta: &WriteMeta,
    mut buf: BytesMut,
    mut body: ByteStream,
    md5: &mut md5::Md5,
) -> Result<DriveFile> {
    let chunk = core.cfg.chunk_size as usize;
    let location = open_session(core, target, meta).await?;
    let mut session = Session {
        core,
        url: location,
        committed: 0,
        gone: ErrorKind::Transient,
    };
    let result: Result<DriveFile> = async {
        loop {
            if let Some(f) = session.drain(&mut buf, chunk, None).await? {
                return Err(Error::new(
                    ErrorKind::Protocol,
                    format!(
                        "the server finished the upload early (file {})",
                        crate::core::cut(&f.id)
                    ),
                ));
            }
            match body.try_next().await? {
                Some(b) => {
                    md5.update(&b);
                    buf.extend_from_slice(&b);
                }
                None => break,
            }
        }
        let total = session.committed + buf.len() as u64;
        check_size(meta, total)?;
        session
            .drain(&mut buf, chunk, Some(total))
            .await?
            .ok_or_else(|| Error::new(ErrorKind::Protocol, "upload did not complete"))
    }
    .await;
    if result.is_err() {
        session.cancel().await;
    }
    result
}

/// The tag that starts every session token of ours: `drive1 <size> <session URI>`.
const TOKEN_TAG: &str = "drive1";

/// Opens a resumable session for `size` bytes to be stored at `path` (a new file in its
/// folder, or new content for the file there) and returns its token (see
/// [`cloudsync_core::Remote::session_start`]): the session URI and the size, no credential.
pub(crate) async fn session_start(
    core: &DriveCore,
    path: &RemotePath,
    size: u64,
    meta: &WriteMeta,
) -> Result<SessionToken> {
    let place = Place::find(core, path).await?;
    let target = place.target(path);
    let meta = WriteMeta {
        size: Some(size),
        ..meta.clone()
    };
    let uri = open_session(core, &target, &meta).await?;
    // Requests to the session carry our access token: it must be Drive's upload host.
    same_origin(core, &uri).map_err(|_| {
        Error::new(
            ErrorKind::Protocol,
            "the upload session URI points at another host than the upload endpoint",
        )
    })?;
    Ok(SessionToken::new(format!("{TOKEN_TAG} {size} {uri}")))
}

fn same_origin(core: &DriveCore, uri: &str) -> Result<()> {
    let ours = url::Url::parse(&core.upload("files"))
        .map_err(|e| Error::new(ErrorKind::Unexpected, e.to_string()))?;
    if url::Url::parse(uri).is_ok_and(|u| u.origin() == ours.origin()) {
        Ok(())
    } else {
        Err(Error::new(ErrorKind::InvalidInput, "another host"))
    }
}

/// The session a token names (a recorded one: `NotFound` when it is gone) and the file's size.
/// The URI must be on the upload endpoint's host: requests to it carry our access token, and a
/// token comes from a state file.
fn open_token<'a>(core: &'a DriveCore, token: &SessionToken) -> Result<(Session<'a>, u64)> {
    let bad = || {
        Error::new(
            ErrorKind::InvalidInput,
            "not an upload session token of this Drive remote",
        )
    };
    let mut parts = token.expose().splitn(3, ' ');
    let (Some(TOKEN_TAG), Some(size), Some(uri)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let size: u64 = size.parse().map_err(|_| bad())?;
    same_origin(core, uri).map_err(|_| bad())?;
    Ok((
        Session {
            core,
            url: uri.to_owned(),
            committed: 0,
            gone: ErrorKind::NotFound,
        },
        size,
    ))
}

/// The bytes the session holds, from the status query (`Content-Range: bytes */SIZE`, a `308`
/// with `Range`); a session that has every byte finishes on it (then: `SIZE`). `NotFound`
/// when the session expired.
pub(crate) async fn session_offset(core: &DriveCore, token: &SessionToken) -> Result<u64> {
    let (session, size) = open_token(core, token)?;
    match session.query(Some(size)).await? {
        ChunkOutcome::Committed(n) if n <= size => Ok(n),
        ChunkOutcome::Committed(n) => Err(Error::new(
            ErrorKind::Protocol,
            format!("the upload session holds {n} bytes of a {size}-byte file"),
        )),
        ChunkOutcome::Done(_) => Ok(size),
    }
}

/// Sends the file's bytes from `offset` (`body`) into the session and finishes it (see
/// [`cloudsync_core::Remote::session_write`]). The session is not cancelled when this fails:
/// what the server committed stays for the next attempt.
pub(crate) async fn session_write(
    core: &DriveCore,
    token: &SessionToken,
    path: &RemotePath,
    offset: u64,
    mut body: ByteStream,
) -> Result<Entry> {
    let (mut session, size) = open_token(core, token)?;
    if offset > size {
        return Err(Error::new(
            ErrorKind::ConditionNotMatch,
            format!("offset {offset} is past the end of the {size}-byte file"),
        ));
    }
    session.committed = offset;
    let chunk = core.cfg.chunk_size as usize;
    // The MD5 covers the whole file only when it is sent from byte 0.
    let mut md5 = (offset == 0).then(md5::Md5::new);
    let mut buf = BytesMut::new();
    loop {
        if let Some(f) = session.drain(&mut buf, chunk, None).await? {
            return Err(Error::new(
                ErrorKind::Protocol,
                format!(
                    "the server finished the upload early (file {})",
                    crate::core::cut(&f.id)
                ),
            ));
        }
        match body.try_next().await? {
            Some(b) => {
                if let Some(h) = md5.as_mut() {
                    h.update(&b);
                }
                buf.extend_from_slice(&b);
                if session.committed + buf.len() as u64 > size {
                    return Err(Error::new(
                        ErrorKind::ConditionNotMatch,
                        format!("the body is longer than the {size} bytes announced"),
                    ));
                }
            }
            None => break,
        }
    }
    let total = session.committed + buf.len() as u64;
    if total != size {
        return Err(Error::new(
            ErrorKind::ConditionNotMatch,
            format!("the source sent {total} bytes but announced {size}"),
        ));
    }
    let file = session
        .drain(&mut buf, chunk, Some(total))
        .await?
        .ok_or_else(|| Error::new(ErrorKind::Protocol, "upload did not complete"))?;
    if let Some(h) = md5 {
        verify(&file, h)?;
    }
    file.entry(path.clone())
}

/// Cancels the session (DELETE on its URI). An unknown or expired one is fine.
pub(crate) async fn session_cancel(core: &DriveCore, token: &SessionToken) -> Result<()> {
    let (session, _) = open_token(core, token)?;
    session.cancel().await;
    Ok(())
}

//! Uploads: `files/upload` for files up to one chunk, upload sessions (`start`, `append_v2`,
//! `finish`) above it. Either way the file appears only when the last call commits it, so
//! writes are atomic; a failed write leaves at most an unfinished session, which the service
//! discards.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use cloudsync_core::{
    ByteStream, Entry, Error, ErrorKind, HashKind, MultiHasher, RemotePath, Result, WriteMeta,
};
use futures::TryStreamExt;
use serde_json::{Value, json};

use crate::batcher::Batcher;
use crate::core::{DropboxCore, Metadata, client_modified, correct_offset_of};

/// The Dropbox content hash of `data` (one call's worth).
pub(crate) fn hash_of(data: &[u8]) -> String {
    let mut h = MultiHasher::new(&[HashKind::Dropbox]);
    h.update(data);
    h.finish()
        .get(HashKind::Dropbox)
        .unwrap_or_default()
        .to_owned()
}

/// An open upload session and how many bytes it holds.
pub(crate) struct Session {
    /// The session id.
    pub(crate) id: String,
    /// Bytes the session holds.
    pub(crate) offset: u64,
}

/// Writes `path` from `body`.
pub(crate) async fn write(
    core: &Arc<DropboxCore>,
    path: &RemotePath,
    mut body: ByteStream,
    meta: WriteMeta,
) -> Result<Entry> {
    let chunk = core.chunk_size as usize;
    let mut whole = MultiHasher::new(&[HashKind::Dropbox]);
    let mut buf = BytesMut::new();
    let mut total: u64 = 0;
    let mut session: Option<Session> = None;
    while let Some(data) = body.try_next().await? {
        whole.update(&data);
        total += data.len() as u64;
        buf.extend_from_slice(&data);
        // Keep at least one byte back: the last piece goes with the committing call.
        while buf.len() > chunk {
            let part = buf.split_to(chunk).freeze();
            session = Some(
                send_part(core, session, part)
                    .await
                    .map_err(|e| e.with_path(path))?,
            );
        }
    }
    if let Some(want) = meta.size {
        if want != total {
            return Err(Error::new(
                ErrorKind::ConditionNotMatch,
                format!("expected {want} bytes, the source gave {total}"),
            )
            .with_path(path));
        }
    }
    let local_hash = whole
        .finish()
        .get(HashKind::Dropbox)
        .unwrap_or_default()
        .to_owned();
    let last = buf.freeze();
    let mut commit = commit_info(core, path, &meta)?;
    let answer = match session {
        None if core.batcher.is_some() => {
            // Upload into a closed session; the batch commits it.
            let len = last.len() as u64;
            let arg = json!({ "close": true, "content_hash": hash_of(&last) });
            let v = core
                .upload("files/upload_session/start", &arg, last)
                .await
                .map_err(|e| e.with_path(path))?;
            let id = session_id(&v)?;
            let arg = json!({
                "cursor": { "session_id": id, "offset": len },
                "commit": commit,
            });
            Batcher::commit(core, arg).await
        }
        None => {
            commit["content_hash"] = Value::String(hash_of(&last));
            core.upload("files/upload", &commit, last).await
        }
        Some(s) => {
            let arg = json!({
                "cursor": { "session_id": s.id, "offset": s.offset },
                "commit": commit,
                "content_hash": hash_of(&last),
            });
            core.upload("files/upload_session/finish", &arg, last).await
        }
    }
    .map_err(|e| e.with_path(path))?;
    let m = Metadata::from_value(answer, "files/upload")?;
    let entry = m.to_entry(path.clone())?;
    if let Some(theirs) = entry.hashes.get(HashKind::Dropbox) {
        if theirs != local_hash {
            return Err(Error::new(
                ErrorKind::ConditionNotMatch,
                format!("stored content hash {theirs} differs from the uploaded {local_hash}"),
            )
            .with_path(path)
            .set_temporary(true));
        }
    }
    if let (Some(want), Some(got)) = (meta.modtime, entry.modtime) {
        if (want - got).abs() >= time::Duration::seconds(1)
            && core.first_notice(&format!(
                "kept-modtime:{}",
                core.dbx_path(path).to_lowercase()
            ))
        {
            // files.stone, WriteMode: "If the target path refers to a file with identical
            // contents, nothing gets written" — the modtime stays the stored one.
            tracing::info!(
                remote = %core.describe, %path,
                "the content was already there: Dropbox kept the file and its modification \
                 time (compare with a Dropbox hash to avoid sending it again)"
            );
        }
    }
    if entry.size != total {
        return Err(Error::new(
            ErrorKind::ConditionNotMatch,
            format!(
                "stored size {} differs from the uploaded {total}",
                entry.size
            ),
        )
        .with_path(path)
        .set_temporary(true));
    }
    Ok(entry)
}

/// The `CommitInfo` of an upload to `path`: overwrite, no autorename, and the source's
/// modtime as `client_modified` when known.
pub(crate) fn commit_info(
    core: &DropboxCore,
    path: &RemotePath,
    meta: &WriteMeta,
) -> Result<Value> {
    let mut commit = json!({
        "path": core.dbx_path(path),
        "mode": "overwrite",
        "autorename": false,
        "mute": true,
        "strict_conflict": false,
    });
    if let Some(t) = meta.modtime {
        commit["client_modified"] = Value::String(client_modified(t)?);
    }
    Ok(commit)
}

/// Starts the session with `part`, or appends `part` to it.
async fn send_part(core: &DropboxCore, session: Option<Session>, part: Bytes) -> Result<Session> {
    let len = part.len() as u64;
    match session {
        None => {
            let arg = json!({ "close": false, "content_hash": hash_of(&part) });
            let v = core
                .upload("files/upload_session/start", &arg, part)
                .await?;
            Ok(Session {
                id: session_id(&v)?,
                offset: len,
            })
        }
        Some(s) => {
            append(core, &s, part).await?;
            Ok(Session {
                id: s.id,
                offset: s.offset + len,
            })
        }
    }
}

/// Temporary failures one append survives before the write fails (and the engine starts the
/// whole file again).
pub(crate) const APPEND_RETRIES: u32 = 3;

/// The pause before retrying an append: 250 ms, 500 ms, 1 s, or the server's `Retry-After`
/// (at most a minute).
fn append_backoff(n: u32, e: &Error) -> Duration {
    let base = Duration::from_millis(250) * 2u32.pow(n.min(8));
    e.retry_after()
        .map_or(base, |r| r.max(base))
        .min(Duration::from_secs(60))
}

/// Appends `part` to session `s` at `s.offset`.
///
/// A request can be received and processed while its answer is lost. files.stone,
/// UploadSessionLookupError.incorrect_offset: "This error may occur when a previous request
/// was received and processed successfully but the client did not receive the response", and
/// UploadSessionOffsetError.correct_offset is "The offset up to which data has been
/// collected". So after a temporary failure the session is asked where it stands (an empty
/// append at our offset: it succeeds when nothing arrived, or answers `incorrect_offset`), and
/// the upload continues from the server's offset, sending only what it lacks of `part`. An
/// offset outside `part` (data we no longer hold: the body is a stream that cannot be read
/// again) fails the write, and the engine starts the file again in a new session.
pub(crate) async fn append(core: &DropboxCore, s: &Session, part: Bytes) -> Result<()> {
    let end = s.offset + part.len() as u64;
    let mut offset = s.offset;
    let mut probe = false;
    let mut failures = 0u32;
    loop {
        let body = if probe {
            Bytes::new()
        } else {
            // `offset` is within `s.offset..end` here.
            part.slice(usize::try_from(offset - s.offset).unwrap_or(part.len())..)
        };
        let arg = json!({
            "cursor": { "session_id": s.id, "offset": offset },
            "close": false,
            "content_hash": hash_of(&body),
        });
        let err = match core
            .upload("files/upload_session/append_v2", &arg, body)
            .await
        {
            Ok(_) if probe => {
                // Nothing of `part` arrived: send it (from `offset`) again.
                probe = false;
                continue;
            }
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        if let Some(correct) = correct_offset_of(&err) {
            if correct == end {
                tracing::debug!(
                    session_offset = correct,
                    "upload session already holds this chunk (its answer was lost); continuing"
                );
                return Ok(());
            }
            if (s.offset..end).contains(&correct) && correct != offset {
                tracing::debug!(
                    sent = offset,
                    correct,
                    "upload session holds part of this chunk; sending the rest"
                );
                offset = correct;
                probe = false;
                continue;
            }
            return Err(err);
        }
        if !err.is_retryable() || failures >= APPEND_RETRIES {
            return Err(err);
        }
        tokio::time::sleep(append_backoff(failures, &err)).await;
        failures += 1;
        probe = true;
    }
}

/// The `session_id` of an `upload_session/start` answer.
pub(crate) fn session_id(v: &Value) -> Result<String> {
    v.get("session_id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Protocol,
                "upload_session/start gave no session_id",
            )
        })
}

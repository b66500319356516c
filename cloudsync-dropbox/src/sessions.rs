//! Resumable uploads through upload sessions ([`Remote::session_start`] and the rest; see
//! [`Capabilities::resume_sessions`]).
//!
//! files.stone, route upload_session/start: "An upload session can be used for a maximum of 7
//! days. Attempting to use an UploadSessionStartResult.session_id with upload_session/append_v2
//! or upload_session/finish more than 7 days after its creation will return a
//! UploadSessionLookupError.not_found." The token kept between runs is the session id alone
//! (it is useless without the account's access token, which it never holds).
//!
//! Dropbox has no call that reports how much a session holds. The documented way to learn it
//! is an append at a wrong offset: UploadSessionLookupError.incorrect_offset, "The specified
//! offset was incorrect. See the value for the correct offset.", carrying
//! UploadSessionOffsetError.correct_offset, "The offset up to which data has been collected."
//! So [`offset`] appends nothing at offset 0: it succeeds when the session holds nothing, and
//! otherwise answers with the offset to continue from.
//!
//! Each append is one request, kept whole or not at all, so when the connection breaks the
//! session holds every chunk acknowledged before (and perhaps the one in flight, whose answer
//! was lost: the next append's `incorrect_offset` tells). The file is committed by
//! `upload_session/finish`, so it is visible whole or not at all.
//!
//! [`Remote::session_start`]: cloudsync_core::Remote::session_start
//! [`Capabilities::resume_sessions`]: cloudsync_core::Capabilities::resume_sessions

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use cloudsync_core::{
    ByteStream, Entry, Error, ErrorKind, RemotePath, Result, SessionToken, WriteMeta,
};
use futures::TryStreamExt;
use serde_json::json;

use crate::core::{DropboxCore, Metadata, correct_offset_of, tags_of};
use crate::writer::{Session, append, commit_info, hash_of, session_id};

/// Opens an empty upload session for a file to be stored at `path`.
pub(crate) async fn start(core: &DropboxCore, path: &RemotePath) -> Result<SessionToken> {
    let arg = json!({ "close": false, "content_hash": hash_of(&[]) });
    let v = core
        .upload("files/upload_session/start", &arg, Bytes::new())
        .await
        .map_err(|e| e.with_path(path))?;
    Ok(SessionToken::new(session_id(&v)?))
}

/// The error for a session the service no longer knows (expired, finished, closed).
fn gone(why: &str) -> Error {
    Error::new(
        ErrorKind::NotFound,
        format!("the upload session is {why}: a new one is needed"),
    )
}

/// An empty append at `at`, closing the session with `close`.
async fn empty_append(
    core: &DropboxCore,
    token: &SessionToken,
    at: u64,
    close: bool,
) -> Result<()> {
    let arg = json!({
        "cursor": { "session_id": token.expose(), "offset": at },
        "close": close,
        "content_hash": hash_of(&[]),
    });
    core.upload("files/upload_session/append_v2", &arg, Bytes::new())
        .await
        .map(|_| ())
}

/// How many bytes the session holds: an empty append at offset 0 (see the module docs), and
/// when the service names another offset, an empty append there, which also tells whether the
/// session is closed.
pub(crate) async fn offset(core: &DropboxCore, token: &SessionToken) -> Result<u64> {
    let mut at = 0;
    loop {
        match empty_append(core, token, at, false).await {
            Ok(()) => return Ok(at),
            Err(e) => match correct_offset_of(&e) {
                Some(correct) if correct != at && at == 0 => at = correct,
                _ => return Err(session_gone(e)),
            },
        }
    }
}

/// Closes the session so nothing more can be appended to it. Dropbox has no call to abandon
/// an upload session (the service drops it after 7 days); a closed one is never continued
/// ([`offset`] reports it gone). Best effort.
pub(crate) async fn cancel(core: &DropboxCore, token: &SessionToken) -> Result<()> {
    match offset(core, token).await {
        Ok(at) => {
            if let Err(e) = empty_append(core, token, at, true).await {
                tracing::debug!(error = %e, "could not close an upload session");
            }
            Ok(())
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => {
            tracing::debug!(error = %e, "could not look up an upload session to close it");
            Ok(())
        }
    }
}

/// The error of a lookup that found no usable session: `NotFound` for a closed, unknown or
/// expired one; the others as they are.
fn session_gone(e: Error) -> Error {
    {
        {
            let tags = tags_of(&e);
            // UploadSessionLookupError.closed: "You are attempting to append data to an upload
            // session that has already been closed (i.e. committed)." Ours are never closed
            // before the commit, so such a session is finished or not ours to continue.
            if tags.iter().any(|t| t == "closed") {
                return gone("closed").with_source(e);
            }
            if e.kind() == ErrorKind::NotFound {
                // UploadSessionLookupError.not_found: "The upload session ID was not found or
                // has expired. Upload sessions are valid for 7 days."
                return gone("unknown or expired").with_source(e);
            }
            e
        }
    }
}

/// Sends the file's bytes from `offset` on into the session in appends of
/// `session_chunk_size`, and commits it at `path` with `upload_session/finish`.
pub(crate) async fn write(
    core: &Arc<DropboxCore>,
    token: &SessionToken,
    path: &RemotePath,
    offset: u64,
    mut body: ByteStream,
    meta: WriteMeta,
) -> Result<Entry> {
    let chunk = usize::try_from(core.session_chunk_size)
        .unwrap_or(usize::MAX)
        .max(1);
    let mut s = Session {
        id: token.expose().to_owned(),
        offset,
    };
    let mut buf = BytesMut::new();
    let mut total = offset;
    loop {
        let data = match body.try_next().await {
            Ok(Some(d)) => d,
            Ok(None) => break,
            Err(e) => {
                // What the source gave before failing is good: keep it in the session, so the
                // next attempt continues right there (best effort; the error is the source's).
                if !buf.is_empty() {
                    let part = buf.split().freeze();
                    if let Err(a) = append(core, &s, part).await {
                        tracing::debug!(%path, error = %a, "could not keep the last bytes read");
                    }
                }
                return Err(e);
            }
        };
        total += data.len() as u64;
        buf.extend_from_slice(&data);
        // Keep at least one byte back: the last piece goes with the committing call.
        while buf.len() > chunk {
            let part = buf.split_to(chunk).freeze();
            let len = part.len() as u64;
            append(core, &s, part)
                .await
                .map_err(|e| lookup_error(e).with_path(path))?;
            s.offset += len;
        }
    }
    if let Some(want) = meta.size
        && want != total
    {
        return Err(Error::new(
            ErrorKind::ConditionNotMatch,
            format!("expected {want} bytes, the source gave {total} (from byte {offset} on)"),
        )
        .with_path(path));
    }
    let last = buf.freeze();
    let arg = json!({
        "cursor": { "session_id": s.id, "offset": s.offset },
        "commit": commit_info(core, path, &meta)?,
        "content_hash": hash_of(&last),
    });
    let answer = core
        .upload("files/upload_session/finish", &arg, last)
        .await
        .map_err(|e| lookup_error(e).with_path(path))?;
    let entry =
        Metadata::from_value(answer, "files/upload_session/finish")?.to_entry(path.clone())?;
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

/// A closed session is as good as gone for us (see [`offset`]); an offset the session does
/// not hold (and the data given cannot fill) is `ConditionNotMatch`; other errors stay as
/// they are.
fn lookup_error(e: Error) -> Error {
    if tags_of(&e).iter().any(|t| t == "closed") {
        return gone("closed").with_source(e);
    }
    if let Some(correct) = correct_offset_of(&e) {
        return Error::new(
            ErrorKind::ConditionNotMatch,
            format!("the upload session holds {correct} bytes, not the offset written at"),
        )
        .with_source(e);
    }
    e
}

//! Uploads: `files/upload` for files up to one chunk, upload sessions (`start`, `append_v2`,
//! `finish`) above it. Either way the file appears only when the last call commits it, so
//! writes are atomic; a failed write leaves at most an unfinished session, which the service
//! discards.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use cloudsync_core::{
    ByteStream, Entry, Error, ErrorKind, HashKind, MultiHasher, RemotePath, Result, WriteMeta,
};
use futures::TryStreamExt;
use serde_json::{Value, json};

use crate::batcher::Batcher;
use crate::core::{DropboxCore, Metadata, client_modified};

/// The Dropbox content hash of `data` (one call's worth).
fn hash_of(data: &[u8]) -> String {
    let mut h = MultiHasher::new(&[HashKind::Dropbox]);
    h.update(data);
    h.finish()
        .get(HashKind::Dropbox)
        .unwrap_or_default()
        .to_owned()
}

/// An open upload session and how many bytes it holds.
struct Session {
    id: String,
    offset: u64,
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
            .with_operation("write")
            .with_path(path));
        }
    }
    let local_hash = whole
        .finish()
        .get(HashKind::Dropbox)
        .unwrap_or_default()
        .to_owned();
    let last = buf.freeze();
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
            .with_operation("write")
            .with_path(path)
            .set_temporary(true));
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
        .with_operation("write")
        .with_path(path)
        .set_temporary(true));
    }
    Ok(entry)
}

/// Starts the session with `part`, or appends `part` to it.
async fn send_part(core: &DropboxCore, session: Option<Session>, part: Bytes) -> Result<Session> {
    let len = part.len() as u64;
    let hash = hash_of(&part);
    match session {
        None => {
            let arg = json!({ "close": false, "content_hash": hash });
            let v = core
                .upload("files/upload_session/start", &arg, part)
                .await?;
            Ok(Session {
                id: session_id(&v)?,
                offset: len,
            })
        }
        Some(s) => {
            let arg = json!({
                "cursor": { "session_id": s.id, "offset": s.offset },
                "close": false,
                "content_hash": hash,
            });
            core.upload("files/upload_session/append_v2", &arg, part)
                .await?;
            Ok(Session {
                id: s.id,
                offset: s.offset + len,
            })
        }
    }
}

/// The `session_id` of an `upload_session/start` answer.
fn session_id(v: &Value) -> Result<String> {
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

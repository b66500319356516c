//! Resumable uploads to Nextcloud through chunked upload v2 folders ([`Remote::session_start`]
//! and the rest; see [`Capabilities::resume_sessions`]).
//!
//! A session is one upload folder `uploads/USER/ID/`. Its token is the folder's path below the
//! DAV root and the file's size (`SIZE:uploads/USER/ID/`): no URL with credentials, no
//! password. What the Nextcloud documentation (developer manual, "Chunked file upload") says
//! and this module relies on:
//! - "You can list the current available folder": a `PROPFIND` with `Depth: 1` on the upload
//!   folder lists the chunks it holds with their sizes. "The ``MKCOL``, chunk ``PUT``, and final
//!   ``MOVE`` requests need to have a ``Destination`` header present", so the listing goes
//!   without one.
//! - "The chunks will be assembled in the order of their names": the offset is the sum of the
//!   chunks `1..=n` present without a gap; a chunk after a gap (never written by us) is deleted
//!   before the upload continues with chunk `n + 1`.
//! - "The size of chunks must be between 5MB and 5GB (except for the last chunk, which can be
//!   smaller)": a short chunk before the end is not counted (it is written again).
//! - "Nextcloud will expire the upload directory after 24 hours of inactivity": a folder that
//!   is gone (404) is [`ErrorKind::NotFound`], and the engine starts a new session.
//! - "If the upload has to be aborted, delete the upload folder" ... "No ``Destination`` header
//!   is needed for this request.": [`cancel`].
//! - "Chunks cannot be downloaded from the upload directory": what the folder holds cannot be
//!   compared with the source. Each chunk is one `PUT` the server stores whole or not at all
//!   (a cut request leaves no chunk), and the final `MOVE` checks `OC-Total-Length`.
//!
//! [`Remote::session_start`]: cloudsync_core::Remote::session_start
//! [`Capabilities::resume_sessions`]: cloudsync_core::Capabilities::resume_sessions

use std::collections::BTreeMap;

use cloudsync_core::{
    ByteStream, Entry, Error, ErrorKind, Hashes, RemotePath, Result, SessionToken, WriteMeta,
};
use reqwest::StatusCode;

use crate::config::{MIN_CHUNK_SIZE, encode_segment};
use crate::core::{WebdavCore, decoded_segments};
use crate::lister::{PropfindAnswer, propfind};
use crate::writer::{ChunkedUpload, ensure_parent};

/// The error for an upload folder the server no longer has.
fn gone() -> Error {
    Error::new(
        ErrorKind::NotFound,
        "the upload folder is gone (finished, cancelled or expired): a new one is needed",
    )
}

/// A token that is not one of ours.
fn bad_token() -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        "not a Nextcloud upload session token of this remote",
    )
}

/// The token of `up`: `SIZE:uploads/USER/ID/`.
fn token_of(core: &WebdavCore, up: &ChunkedUpload) -> Result<SessionToken> {
    let (_, dav_root) = core.dav_root.as_ref().ok_or_else(bad_token)?;
    let rel = up
        .folder
        .as_str()
        .strip_prefix(dav_root.as_str())
        .ok_or_else(bad_token)?;
    Ok(SessionToken::new(format!("{}:{rel}", up.total)))
}

/// The upload folder (and size) a token names, checked to be an upload folder of this
/// remote's user: `uploads/USER/ID/` with a plain id.
fn folder_of(core: &WebdavCore, token: &SessionToken) -> Result<(url::Url, u64)> {
    let (user, dav_root) = core.dav_root.as_ref().ok_or_else(bad_token)?;
    let (size, rel) = token.expose().split_once(':').ok_or_else(bad_token)?;
    let size: u64 = size.parse().map_err(|_| bad_token())?;
    let id = rel
        .strip_prefix(&format!("uploads/{}/", encode_segment(user)))
        .and_then(|r| r.strip_suffix('/'))
        .ok_or_else(bad_token)?;
    let plain = |b: u8| b.is_ascii_alphanumeric() || b == b'-';
    if id.is_empty() || !id.bytes().all(plain) {
        return Err(bad_token());
    }
    let folder = dav_root.join(rel).map_err(|_| bad_token())?;
    Ok((folder, size))
}

/// Opens an upload folder for `path` (`MKCOL` with `Destination`, as the plain chunked upload
/// does) after making sure the parent directory exists for the final `MOVE`.
pub(crate) async fn start(core: &WebdavCore, path: &RemotePath, size: u64) -> Result<SessionToken> {
    ensure_parent(core, path).await?;
    let up = ChunkedUpload::new(core, path, size)?;
    up.open(core, path).await?;
    tracing::debug!(%path, size, "opened a chunked upload folder");
    token_of(core, &up)
}

/// What an upload folder holds, read with `PROPFIND Depth: 1`.
struct Held {
    /// Bytes in the chunks `1..=next-1`, contiguous from byte 0.
    offset: u64,
    /// The number of the chunk to send next.
    next: u64,
    /// Names of chunks that must go before continuing (after a gap, or from `next` on).
    stale: Vec<String>,
}

/// Lists the chunks in `folder` and works out where the upload continues.
async fn held(core: &WebdavCore, folder: &url::Url, total: u64) -> Result<Held> {
    let here = RemotePath::root();
    let answer = match propfind(core, folder.clone(), "1", &here).await {
        Ok(a) => a,
        Err(e) if e.kind() == ErrorKind::NotFound => return Err(gone().with_source(e)),
        Err(e) => return Err(e),
    };
    let PropfindAnswer::Multistatus(mut reader, _) = answer else {
        return Err(Error::new(
            ErrorKind::Protocol,
            "PROPFIND of the upload folder was redirected",
        ));
    };
    let folder_segs = decoded_segments(folder.path()).unwrap_or_default();
    // Chunk number -> (name, size).
    let mut chunks: BTreeMap<u64, (String, u64)> = BTreeMap::new();
    let mut saw_folder = false;
    while let Some(r) = reader.next().await? {
        let path = href_path(&r.href);
        let Some(segs) = decoded_segments(&path) else {
            continue;
        };
        if segs == folder_segs {
            saw_folder = true;
            continue;
        }
        if r.is_dir || r.status == Some(404) || segs.len() != folder_segs.len() + 1 {
            continue;
        }
        let Some(name) = segs.last() else { continue };
        let Ok(n) = name.parse::<u64>() else { continue };
        let Some(size) = r.size else {
            return Err(Error::new(
                ErrorKind::Protocol,
                format!("the upload folder lists chunk {name} without a size"),
            ));
        };
        chunks.insert(n, (name.clone(), size));
    }
    if !saw_folder && chunks.is_empty() {
        return Err(gone());
    }
    let mut offset = 0u64;
    let mut next = 1u64;
    while let Some((_, size)) = chunks.get(&next) {
        let end = offset.saturating_add(*size);
        // All chunks but the last must be full-sized; the last one ends the file exactly.
        let whole = (*size >= MIN_CHUNK_SIZE && end <= total) || end == total;
        if !whole || offset >= total {
            break;
        }
        offset = end;
        next += 1;
    }
    let stale = chunks
        .range(next..)
        .map(|(_, (name, _))| name.clone())
        .collect();
    Ok(Held {
        offset,
        next,
        stale,
    })
}

/// The path part of an href (absolute URL or absolute path).
fn href_path(href: &str) -> String {
    match href.find("://") {
        Some(i) => {
            let rest = &href[i + 3..];
            rest.find('/')
                .map(|j| rest[j..].to_owned())
                .unwrap_or_default()
        }
        None => href.to_owned(),
    }
}

/// How many bytes the session's upload folder holds, contiguous from byte 0.
pub(crate) async fn offset(core: &WebdavCore, token: &SessionToken) -> Result<u64> {
    let (folder, total) = folder_of(core, token)?;
    Ok(held(core, &folder, total).await?.offset)
}

/// Sends the file's bytes from `offset` on as the chunks after those the folder holds, and
/// assembles the file at `path` with `MOVE .file`.
pub(crate) async fn write(
    core: &WebdavCore,
    token: &SessionToken,
    path: &RemotePath,
    offset: u64,
    body: ByteStream,
    meta: WriteMeta,
) -> Result<Entry> {
    let (folder, total) = folder_of(core, token)?;
    if let Some(size) = meta.size
        && size != total
    {
        return Err(core.err(
            ErrorKind::ConditionNotMatch,
            &format!("the upload session is for {total} bytes, not {size}"),
            path,
        ));
    }
    let h = held(core, &folder, total)
        .await
        .map_err(|e| e.with_path(path))?;
    if h.offset != offset {
        return Err(core.err(
            ErrorKind::ConditionNotMatch,
            &format!(
                "the upload folder holds {} bytes, not the offset {offset} written at",
                h.offset
            ),
            path,
        ));
    }
    let up = ChunkedUpload {
        folder,
        dest: core.url(path, false),
        total,
    };
    for name in &h.stale {
        let url = up
            .folder
            .join(name)
            .map_err(|e| core.err(ErrorKind::Unexpected, &e.to_string(), path))?;
        let resp = core
            .send(core.request(reqwest::Method::DELETE, url), path)
            .await?;
        if !(resp.status().is_success() || resp.status() == StatusCode::NOT_FOUND) {
            return Err(core.status_error(resp, path).await);
        }
        tracing::debug!(%path, chunk = %name, "removed a chunk the upload does not continue from");
    }
    if offset > 0 {
        tracing::debug!(%path, offset, next = h.next, "continuing a chunked upload");
    }
    let sent = up.send_chunks(core, path, body, offset, h.next).await?;
    // Hashes of what this call sent are of the whole file only when it sent all of it.
    let hashes = if offset == 0 { sent } else { Hashes::default() };
    up.assemble(core, path, &meta, hashes).await.map_err(|e| {
        if e.kind() == ErrorKind::NotFound {
            gone().with_source(e).with_path(path)
        } else {
            e
        }
    })
}

/// Deletes the session's upload folder; one that is gone already is fine.
pub(crate) async fn cancel(core: &WebdavCore, token: &SessionToken) -> Result<()> {
    let (folder, _) = folder_of(core, token)?;
    let here = RemotePath::root();
    let resp = core
        .send(core.request(reqwest::Method::DELETE, folder), &here)
        .await?;
    let s = resp.status();
    if s.is_success() || s == StatusCode::NOT_FOUND {
        return Ok(());
    }
    Err(core.status_error(resp, &here).await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Vendor, WebdavConfig};

    fn core() -> WebdavCore {
        let cfg = WebdavConfig::new("https://nc.example/remote.php/dav/files/me%20x/sub/")
            .with_vendor(Vendor::Nextcloud)
            .with_password("me x", "hunter2");
        WebdavCore::new(cfg.validate().unwrap()).unwrap()
    }

    #[test]
    fn tokens_name_the_folder_and_size_without_secrets() {
        let c = core();
        let up = ChunkedUpload::new(&c, &RemotePath::new("a/b.bin").unwrap(), 1234).unwrap();
        let t = token_of(&c, &up).unwrap();
        assert!(
            t.expose().starts_with("1234:uploads/me%20x/cloudsync-"),
            "{}",
            t.expose()
        );
        assert!(!t.expose().contains("hunter2") && !t.expose().contains("nc.example"));
        let (folder, size) = folder_of(&c, &t).unwrap();
        assert_eq!((folder, size), (up.folder, 1234));
    }

    #[test]
    fn foreign_tokens_are_refused() {
        let c = core();
        for t in [
            "",
            "12",
            "x:uploads/me%20x/abc/",
            "12:uploads/other/abc/",
            "12:uploads/me%20x/../files/me%20x/",
            "12:uploads/me%20x/a/b/",
            "12:uploads/me%20x//",
            "12:files/me%20x/abc/",
        ] {
            let e = folder_of(&c, &SessionToken::new(t)).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{t}");
        }
    }

    #[test]
    fn hrefs_give_their_path() {
        assert_eq!(href_path("https://h:1/a/b/"), "/a/b/");
        assert_eq!(href_path("/a/b"), "/a/b");
    }
}

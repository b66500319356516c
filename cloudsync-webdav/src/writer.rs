//! Uploads (`PUT`, atomic), directories (`MKCOL`) and Nextcloud's chunked upload v2.
//!
//! Atomicity: on a generic server the content goes to a hidden temp name in the target
//! directory (`.cloudsync-tmp-<random>.<name>`, skipped by listings) and is then moved into
//! place. Nextcloud and ownCloud already write a `PUT` to a part file and rename it when the
//! upload is complete, so they get a direct `PUT`; large files use chunking v2, whose chunks
//! only become the file at the final `MOVE`.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use cloudsync_core::{
    ByteStream, Entry, Error, ErrorKind, HashKind, Hashes, MultiHasher, RemotePath, Result,
    WriteMeta,
};
use futures::{StreamExt, TryStreamExt};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_LENGTH, HeaderValue};
use time::OffsetDateTime;

use crate::config::{Vendor, encode_segment};
use crate::core::{WebdavCore, method, overwrite};
use crate::{lister, mover};

/// What passed through an upload body: byte count and (for Nextcloud/ownCloud) hashes.
struct Tally {
    bytes: u64,
    hasher: Option<MultiHasher>,
}

type SharedTally = Arc<Mutex<Tally>>;

fn tally(hash: bool) -> SharedTally {
    Arc::new(Mutex::new(Tally {
        bytes: 0,
        hasher: hash.then(|| MultiHasher::new(&[HashKind::Md5, HashKind::Sha1])),
    }))
}

fn count(t: &SharedTally, chunk: &Bytes) {
    if let Ok(mut t) = t.lock() {
        t.bytes = t.bytes.saturating_add(chunk.len() as u64);
        if let Some(h) = &mut t.hasher {
            h.update(chunk);
        }
    }
}

fn finish(t: &SharedTally) -> (u64, Hashes) {
    match t.lock() {
        Ok(mut t) => {
            let hashes = t.hasher.take().map(MultiHasher::finish).unwrap_or_default();
            (t.bytes, hashes)
        }
        Err(_) => (0, Hashes::default()),
    }
}

/// The `OC-Checksum` header value for hashes we know (SHA1 preferred, then MD5).
fn oc_checksum(h: &Hashes) -> Option<HeaderValue> {
    let v = if let Some(s) = h.get(HashKind::Sha1) {
        format!("SHA1:{s}")
    } else {
        format!("MD5:{}", h.get(HashKind::Md5)?)
    };
    HeaderValue::from_str(&v).ok()
}

/// `X-OC-Mtime`: whole Unix seconds.
fn oc_mtime(t: OffsetDateTime) -> HeaderValue {
    HeaderValue::from(t.unix_timestamp())
}

/// Whether the server answered `X-OC-MTime: accepted`.
fn mtime_accepted(resp: &reqwest::Response) -> bool {
    resp.headers()
        .get("x-oc-mtime")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("accepted"))
}

/// The error for a source that gave other than the announced number of bytes.
fn size_mismatch(what: &str, size: u64) -> Error {
    Error::new(
        ErrorKind::ConditionNotMatch,
        format!("source {what} the {size} bytes announced"),
    )
}

/// `body`, checked against the announced `size` while it is sent: an error as soon as it
/// gives more, or ends with fewer, so the request is cut before the server has the whole
/// body and can commit it. The last bytes are held back until the source has said it is
/// done, so a longer source never completes a request whose `Content-Length` is `size`.
fn exact_body(body: ByteStream, size: u64) -> ByteStream {
    struct St {
        body: ByteStream,
        seen: u64,
        size: u64,
        done: bool,
    }
    let st = St {
        body,
        seen: 0,
        size,
        done: false,
    };
    futures::stream::try_unfold(st, |mut st| async move {
        if st.done {
            return Ok(None);
        }
        loop {
            let Some(b) = st.body.try_next().await? else {
                if st.seen < st.size {
                    return Err(size_mismatch(
                        &format!("ended after {} of", st.seen),
                        st.size,
                    ));
                }
                return Ok(None);
            };
            if b.is_empty() {
                continue;
            }
            st.seen = st.seen.saturating_add(b.len() as u64);
            if st.seen > st.size {
                return Err(size_mismatch("gave more than", st.size));
            }
            if st.seen == st.size {
                while let Some(more) = st.body.try_next().await? {
                    if !more.is_empty() {
                        return Err(size_mismatch("gave more than", st.size));
                    }
                }
                st.done = true;
            }
            return Ok(Some((b, st)));
        }
    })
    .boxed()
}

/// A hidden temp name next to `path` (kept short so it fits name-length limits).
fn temp_path(path: &RemotePath) -> Result<RemotePath> {
    // Short, so it fits the name limits of the servers' filesystems.
    let temp = cloudsync_core::temp_name(path.name(), 96);
    path.parent().unwrap_or_default().join(&temp)
}

/// Creates `dir` and any missing parents (`MKCOL`, walking up on `409 Conflict`).
/// An existing directory (`405`) is fine when `verify` is false; with `verify`, a `405`
/// is checked to really be a directory.
///
/// Its errors name the step `mkdir` (and the directory), more precise than the write or
/// copy that needed the directory.
pub(crate) async fn mkdir_all(core: &WebdavCore, dir: &RemotePath, verify: bool) -> Result<()> {
    mkdir_all_steps(core, dir, verify)
        .await
        .map_err(|e| e.with_operation("mkdir"))
}

async fn mkdir_all_steps(core: &WebdavCore, dir: &RemotePath, verify: bool) -> Result<()> {
    // Missing ancestors found so far, deepest first; the last one is tried next.
    let mut pending = vec![dir.clone()];
    while let Some(d) = pending.last().cloned() {
        let rb = core.request(method("MKCOL"), core.url(&d, true));
        let resp = core.send(rb, &d).await?;
        match resp.status() {
            s if s.is_success() => {}
            StatusCode::METHOD_NOT_ALLOWED => {
                if verify || d != *dir {
                    // Something exists there: make sure it is a directory.
                    let e = lister::stat(core, &d).await?;
                    if !e.is_dir() {
                        return Err(core.err(
                            ErrorKind::Conflict,
                            "a file is in the way of the directory",
                            &d,
                        ));
                    }
                }
            }
            StatusCode::CONFLICT | StatusCode::NOT_FOUND if d.is_root() => {
                // The root's own parents are missing: make them, top down, then retry.
                if pending.len() > dir.depth() + 2 {
                    return Err(core.status_error(resp, &d).await);
                }
                mkcol_above_root(core).await?;
                pending.push(d);
                continue;
            }
            StatusCode::CONFLICT | StatusCode::NOT_FOUND => {
                // The parent is missing (even if we thought it existed): make it first.
                let parent = d.parent().unwrap_or_default();
                core.forget_dir(&parent);
                pending.push(parent);
                continue;
            }
            _ => {
                // Servers differ (403 when another request just made it, 400 for a file in
                // the way): look at what is there now.
                let err = core.status_error(resp, &d).await;
                match lister::stat(core, &d).await {
                    Ok(e) if e.is_dir() => {}
                    Ok(_) => {
                        return Err(core.err(
                            ErrorKind::Conflict,
                            "a file is in the way of the directory",
                            &d,
                        ));
                    }
                    Err(_) => return Err(err),
                }
            }
        }
        core.remember_dir(&d);
        pending.pop();
    }
    Ok(())
}

/// Creates the collections above the root URL that are missing (`MKCOL` top down; the
/// ones that exist answer 405 and are passed).
async fn mkcol_above_root(core: &WebdavCore) -> Result<()> {
    let root = RemotePath::root();
    let mut url = core.base.clone();
    let n = core.base_segments.len();
    for i in 1..n {
        let mut path = String::from("/");
        for seg in &core.base_segments[..i] {
            path.push_str(&crate::config::encode_segment(seg).to_string());
            path.push('/');
        }
        url.set_path(&path);
        let rb = core.request(method("MKCOL"), url.clone());
        let resp = core.send(rb, &root).await?;
        let s = resp.status();
        if !(s.is_success() || s == StatusCode::METHOD_NOT_ALLOWED) {
            return Err(core.status_error(resp, &root).await);
        }
    }
    Ok(())
}

/// Makes sure the parent directory of `path` exists (cached).
pub(crate) async fn ensure_parent(core: &WebdavCore, path: &RemotePath) -> Result<()> {
    match path.parent() {
        Some(p) if !core.dir_known(&p) => mkdir_all(core, &p, false).await,
        _ => Ok(()),
    }
}

/// Best-effort `DELETE` of a file of ours whose every request was answered, so nothing can
/// bring it back (unlike [`discard`], which waits to look again).
pub(crate) async fn remove_answered(core: &WebdavCore, url: url::Url) {
    let rb = core.request(reqwest::Method::DELETE, url.clone());
    match rb.send().await {
        Ok(r) if r.status().is_success() || r.status() == reqwest::StatusCode::NOT_FOUND => {}
        Ok(r) => tracing::debug!(%url, status = %r.status(), "could not remove a file of ours"),
        Err(e) => tracing::debug!(%url, error = %e, "could not remove a file of ours"),
    }
}

/// Best-effort `DELETE` of something we created and no longer want, looked at again
/// afterwards: a server may still be finishing the upload we broke off and create the file
/// after our `DELETE` (rclone's server does), which would leave it behind.
pub(crate) async fn discard(core: &WebdavCore, url: url::Url) {
    for attempt in 1..=8u64 {
        let rb = core.request(reqwest::Method::DELETE, url.clone());
        if let Err(e) = rb.send().await {
            tracing::debug!(%url, error = %e, "could not remove temporary upload");
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25 * attempt)).await;
        let head = core
            .request(reqwest::Method::HEAD, url.clone())
            .send()
            .await;
        match head {
            Ok(r) if r.status().is_success() => continue,
            _ => return,
        }
    }
    tracing::debug!(%url, "a temporary upload keeps coming back; a later sync removes it");
}

/// Writes `path` atomically from `body`.
pub(crate) async fn write(
    core: &WebdavCore,
    path: &RemotePath,
    body: ByteStream,
    meta: WriteMeta,
) -> Result<Entry> {
    if path.is_root() {
        return Err(core.err(ErrorKind::InvalidInput, "cannot write the root", path));
    }
    ensure_parent(core, path).await?;
    let chunked = core.vendor == Vendor::Nextcloud
        && core.dav_root.is_some()
        && meta.size.is_some_and(|s| s > core.chunk_size);
    if chunked {
        return chunked_upload(core, path, body, meta).await;
    }
    let oc = core.is_oc();
    let target = if oc { path.clone() } else { temp_path(path)? };
    let t = tally(oc);
    let t2 = t.clone();
    let body = match meta.size {
        Some(size) => exact_body(body, size),
        None => body,
    };
    let stream = body.inspect_ok(move |c| count(&t2, c));
    let mut rb = core
        .request(reqwest::Method::PUT, core.url(&target, false))
        .body(reqwest::Body::wrap_stream(stream));
    if let Some(size) = meta.size {
        rb = rb.header(CONTENT_LENGTH, size);
    }
    if oc {
        if let Some(m) = meta.modtime {
            rb = rb.header("X-OC-Mtime", oc_mtime(m));
        }
        if let Some(c) = oc_checksum(&meta.hashes) {
            rb = rb.header("OC-Checksum", c);
        }
    }
    let result = core.send(rb, path).await;
    let resp = match result {
        Ok(r) if r.status().is_success() => r,
        Ok(r) => {
            let status = r.status();
            let mut e = core.status_error(r, path).await;
            if matches!(status, StatusCode::CONFLICT | StatusCode::NOT_FOUND) {
                // The parent vanished since we made it: a retry will recreate it.
                if let Some(p) = path.parent() {
                    core.forget_dir(&p);
                }
                e = e.set_temporary(true);
            }
            if !oc {
                discard(core, core.url(&target, false)).await;
            }
            return Err(e);
        }
        Err(e) => {
            if !oc {
                discard(core, core.url(&target, false)).await;
            }
            return Err(e);
        }
    };
    let (sent, hashes) = finish(&t);
    if let Some(size) = meta.size
        && size != sent
    {
        // Not reached while `exact_body` holds; never leave the temp file if it is.
        if !oc {
            discard(core, core.url(&target, false)).await;
        }
        return Err(core.err(
            ErrorKind::ConditionNotMatch,
            &format!("source gave {sent} bytes, {size} announced"),
            path,
        ));
    }
    if oc {
        let accepted = mtime_accepted(&resp);
        return finish_oc_write(core, path, &resp, sent, hashes, meta.modtime, accepted).await;
    }
    if let Err(e) = mover::move_into_place(core, &target, path).await {
        discard(core, core.url(&target, false)).await;
        return Err(e);
    }
    lister::stat(core, path).await
}

/// The entry of a file Nextcloud/ownCloud just stored.
async fn finish_oc_write(
    core: &WebdavCore,
    path: &RemotePath,
    resp: &reqwest::Response,
    size: u64,
    hashes: Hashes,
    modtime: Option<OffsetDateTime>,
    accepted: bool,
) -> Result<Entry> {
    match modtime {
        Some(m) if accepted => {
            let mut e = Entry::file(path.clone(), size)
                .with_modtime(OffsetDateTime::from_unix_timestamp(m.unix_timestamp()).ok())
                .with_hashes(hashes);
            let header = |name: &str| {
                resp.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(|s| s.trim_matches('"').to_owned())
            };
            e.etag = header("oc-etag").or_else(|| header("etag"));
            e.id = header("oc-fileid");
            Ok(e)
        }
        _ => {
            if modtime.is_some() {
                tracing::warn!(%path, "server did not accept X-OC-Mtime; modtime is the upload time");
            }
            let mut e = lister::stat(core, path).await?;
            e.hashes.merge(&hashes);
            Ok(e)
        }
    }
}

/// A Nextcloud chunked upload v2 in progress: its upload folder, the file it becomes and the
/// file's size. Shared by the plain upload ([`write`]) and the resumable sessions
/// ([`crate::sessions`]).
pub(crate) struct ChunkedUpload {
    /// `.../uploads/USER/ID/` (with the trailing `/`).
    pub(crate) folder: url::Url,
    /// The destination file's URL, sent as `Destination` with every request.
    pub(crate) dest: url::Url,
    /// The whole file's size, sent as `OC-Total-Length`.
    pub(crate) total: u64,
}

impl ChunkedUpload {
    /// A new upload folder (random id) for `path` of `total` bytes; nothing is sent.
    pub(crate) fn new(core: &WebdavCore, path: &RemotePath, total: u64) -> Result<Self> {
        let (user, dav_root) = core
            .dav_root
            .clone()
            .ok_or_else(|| core.err(ErrorKind::Unsupported, "no uploads URL", path))?;
        let folder = format!(
            "{}uploads/{}/cloudsync-{:016x}/",
            dav_root.as_str(),
            encode_segment(&user),
            fastrand::u64(..)
        );
        let folder = url::Url::parse(&folder)
            .map_err(|e| core.err(ErrorKind::Unexpected, &e.to_string(), path))?;
        Ok(ChunkedUpload {
            folder,
            dest: core.url(path, false),
            total,
        })
    }

    /// The URL of chunk number `index` (`00001`...).
    pub(crate) fn chunk_url(
        &self,
        core: &WebdavCore,
        path: &RemotePath,
        index: u64,
    ) -> Result<url::Url> {
        self.folder
            .join(&format!("{index:05}"))
            .map_err(|e| core.err(ErrorKind::Unexpected, &e.to_string(), path))
    }

    /// `MKCOL` of the upload folder (with `Destination`, as chunking v2 wants on every request).
    pub(crate) async fn open(&self, core: &WebdavCore, path: &RemotePath) -> Result<()> {
        let rb = core
            .request(method("MKCOL"), self.folder.clone())
            .header("Destination", self.dest.as_str());
        core.send_ok(rb, path).await.map(|_| ())
    }

    /// Sends the file's bytes from `offset` on (what `body` holds, which must be exactly the
    /// rest of the file) as chunks numbered from `index`, each `chunk_size` bytes but the last.
    /// Each chunk is one `PUT`, which the server keeps whole or not at all. Returns the hashes
    /// of what was sent (of the whole file when `offset` is 0).
    pub(crate) async fn send_chunks(
        &self,
        core: &WebdavCore,
        path: &RemotePath,
        body: ByteStream,
        mut offset: u64,
        mut index: u64,
    ) -> Result<Hashes> {
        let start = offset;
        let total = self.total;
        let t = tally(true);
        let source = Arc::new(tokio::sync::Mutex::new(Source {
            stream: body,
            pending: None,
        }));
        while offset < total {
            let len = core.chunk_size.min(total - offset);
            let chunk_body = take_bytes(source.clone(), len, t.clone());
            let rb = core
                .request(reqwest::Method::PUT, self.chunk_url(core, path, index)?)
                .header("Destination", self.dest.as_str())
                .header("OC-Total-Length", total)
                .header(CONTENT_LENGTH, len)
                .body(reqwest::Body::wrap_stream(chunk_body));
            core.send_ok(rb, path).await?;
            tracing::trace!(%path, index, len, "chunk stored");
            offset = offset.saturating_add(len);
            index = index.saturating_add(1);
        }
        // The source must hold exactly the announced bytes.
        if source.lock().await.next_nonempty().await?.is_some() {
            return Err(core.err(
                ErrorKind::ConditionNotMatch,
                &format!("source gave more than the {total} bytes announced"),
                path,
            ));
        }
        let (sent, hashes) = finish(&t);
        if sent != total - start {
            return Err(core.err(
                ErrorKind::ConditionNotMatch,
                &format!("source gave {sent} bytes from byte {start} on, {total} announced in all"),
                path,
            ));
        }
        Ok(hashes)
    }

    /// `MOVE .file` to the destination: the server assembles the chunks (in the order of their
    /// numbers) into the file, with `OC-Total-Length`, the modtime and the checksum when
    /// known. `hashes` are what this process computed of the whole content (empty when it
    /// only sent part of it); they go into the entry, `meta.hashes` only into the checksum.
    pub(crate) async fn assemble(
        &self,
        core: &WebdavCore,
        path: &RemotePath,
        meta: &WriteMeta,
        hashes: Hashes,
    ) -> Result<Entry> {
        let mut checksums = meta.hashes.clone();
        checksums.merge(&hashes);
        let mut rb = core
            .request(
                method("MOVE"),
                self.folder.join(".file").unwrap_or(self.folder.clone()),
            )
            .header("Destination", self.dest.as_str())
            .header("OC-Total-Length", self.total)
            .header("Overwrite", overwrite(true));
        if let Some(m) = meta.modtime {
            rb = rb.header("X-OC-Mtime", oc_mtime(m));
        }
        if let Some(c) = oc_checksum(&checksums) {
            rb = rb.header("OC-Checksum", c);
        }
        let resp = core.send_ok(rb, path).await?;
        let accepted = mtime_accepted(&resp);
        finish_oc_write(
            core,
            path,
            &resp,
            self.total,
            hashes,
            meta.modtime,
            accepted,
        )
        .await
    }
}

/// Nextcloud chunking v2: `MKCOL uploads/USER/ID`, `PUT` numbered chunks, `MOVE .file`; the
/// upload folder is removed when anything fails.
async fn chunked_upload(
    core: &WebdavCore,
    path: &RemotePath,
    body: ByteStream,
    meta: WriteMeta,
) -> Result<Entry> {
    let up = ChunkedUpload::new(core, path, meta.size.unwrap_or(0))?;
    up.open(core, path).await?;
    let result = async {
        let hashes = up.send_chunks(core, path, body, 0, 1).await?;
        up.assemble(core, path, &meta, hashes).await
    }
    .await;
    if result.is_err() {
        discard(core, up.folder.clone()).await;
    }
    result
}

/// The upload source shared by the chunk bodies (used one after another).
struct Source {
    stream: ByteStream,
    pending: Option<Bytes>,
}

impl Source {
    async fn next_nonempty(&mut self) -> Result<Option<Bytes>> {
        if let Some(b) = self.pending.take() {
            return Ok(Some(b));
        }
        while let Some(b) = self.stream.try_next().await? {
            if !b.is_empty() {
                return Ok(Some(b));
            }
        }
        Ok(None)
    }
}

/// A body of exactly `len` bytes taken from the shared source.
fn take_bytes(
    source: Arc<tokio::sync::Mutex<Source>>,
    len: u64,
    t: SharedTally,
) -> futures::stream::BoxStream<'static, Result<Bytes>> {
    futures::stream::try_unfold((source, len, t), |(source, left, t)| async move {
        if left == 0 {
            return Ok(None);
        }
        let mut src = source.lock().await;
        let Some(mut b) = src.next_nonempty().await? else {
            return Err(Error::new(
                ErrorKind::ConditionNotMatch,
                "source ended before the announced size",
            ));
        };
        if b.len() as u64 > left {
            src.pending = Some(b.split_off(left as usize));
        }
        drop(src);
        count(&t, &b);
        let left = left - b.len() as u64;
        Ok(Some((b, (source, left, t))))
    })
    .boxed()
}

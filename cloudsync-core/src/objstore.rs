//! A [`Remote`] over any [`object_store::ObjectStore`]: in-memory stores (`memory://`, the
//! engine's tests) and any cloud store object_store speaks (S3, Azure, ...), handed in by the
//! caller. Google Cloud Storage has its own backend (`cloudsync-gdrive`, JSON API) because this
//! adapter cannot keep what a sync needs there.
//!
//! What the adapter can and cannot do, declared in its [`Capabilities`] (the conformance suite
//! runs against moto's S3 server with exactly these; see `tests/objstore_s3.rs`):
//! - directories are implicit (a directory exists while a file lies below it; `mkdir` does
//!   nothing, empty directories do not exist);
//! - modtimes are the store's `last_modified`, the upload time: they can be neither written
//!   nor set, so `modtime_precision` is `None` by default and the engine compares sizes (and
//!   hashes with `--checksum` where the other side has one);
//! - no hash is declared: object_store's listings carry none (an S3 ETag is an MD5 only for
//!   single-part uploads without SSE-KMS; it is kept as the entry's `etag`, never as a hash);
//! - writes are atomic (a store only ever shows a finished object); large bodies go up as
//!   multipart uploads, aborted on failure;
//! - `copy` and `rename` are the store's (`rename` is a copy and a delete on S3);
//! - no `set_modtime`, `purge`, `cleanup` or `usage` (they return `Unsupported`).

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::{Path as StorePath, PathPart};
use object_store::{GetOptions, GetRange, ObjectMeta, ObjectStore, ObjectStoreExt, WriteMultipart};
use time::OffsetDateTime;

use crate::entry::{Entry, WriteMeta};
use crate::error::{Error, ErrorKind, Result};
use crate::location::Location;
use crate::path::RemotePath;
use crate::remote::{ByteStream, Capabilities, EntryStream, Remote};

/// Content up to this size is sent in one `put`; larger content goes through a multipart upload.
const SINGLE_PUT_LIMIT: usize = 8 * 1024 * 1024;
/// Part size of multipart uploads.
const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts uploaded concurrently by one multipart upload.
const PART_CONCURRENCY: usize = 4;

/// A [`Remote`] over an [`ObjectStore`], rooted at a prefix.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> cloudsync_core::Result<()> {
/// use std::sync::Arc;
/// use cloudsync_core::{ObjectStoreRemote, Remote, RemotePath};
/// use object_store::memory::InMemory;
///
/// let remote = ObjectStoreRemote::new(Arc::new(InMemory::new()), "memory://scratch");
/// assert!(remote.capabilities().copy);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ObjectStoreRemote {
    store: Arc<dyn ObjectStore>,
    prefix: Vec<String>,
    name: String,
    /// The namespace of [`Location`]s: one store (a bucket), however it is reached.
    space: String,
    caps: Capabilities,
}

/// Shows the store by its `Display` (`GoogleCloudStorage(bucket)`): a store's `Debug` may
/// print its cached credentials (object_store 0.14's GCP store prints its bearer token).
impl std::fmt::Debug for ObjectStoreRemote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStoreRemote")
            .field("store", &format_args!("{}", self.store))
            .field("prefix", &self.prefix)
            .field("name", &self.name)
            .field("space", &self.space)
            .field("caps", &self.caps)
            .finish()
    }
}

impl ObjectStoreRemote {
    /// Wraps `store`; `name` is what [`Remote::describe`] returns (no secrets in it).
    pub fn new(store: Arc<dyn ObjectStore>, name: impl Into<String>) -> Self {
        ObjectStoreRemote {
            space: format!("object-store:{:p}", Arc::as_ptr(&store).cast::<()>()),
            store,
            prefix: Vec::new(),
            name: name.into(),
            caps: Capabilities {
                copy: true,
                rename: true,
                list_recursive: true,
                ..Default::default()
            },
        }
    }

    /// Roots the remote at `prefix` inside the store.
    pub fn with_prefix(mut self, prefix: &RemotePath) -> Self {
        self.prefix = prefix.segments().map(str::to_owned).collect();
        self
    }

    /// Names the store for [`Remote::location`] (`gs://bucket`), so that two remotes built
    /// separately for one bucket are known to be one place. By default each store object is
    /// its own place.
    pub fn with_space(mut self, space: impl Into<String>) -> Self {
        self.space = space.into();
        self
    }

    /// Replaces the declared capabilities (for stores that keep hashes or modtimes).
    pub fn with_capabilities(mut self, caps: Capabilities) -> Self {
        self.caps = caps;
        self
    }

    fn store_path(&self, path: &RemotePath) -> StorePath {
        self.prefix
            .iter()
            .map(String::as_str)
            .chain(path.segments())
            .map(PathPart::from)
            .collect()
    }

    fn store_prefix(&self, dir: &RemotePath) -> Option<StorePath> {
        let p = self.store_path(dir);
        (p.parts_count() > 0).then_some(p)
    }

    /// Converts a store location back to a validated path relative to our root.
    fn remote_path(&self, location: &StorePath) -> Result<RemotePath> {
        let mut out = RemotePath::root();
        for (i, part) in location.parts().enumerate() {
            let decoded = percent_encoding::percent_decode_str(part.as_ref())
                .decode_utf8()
                .map_err(|e| {
                    Error::new(ErrorKind::Protocol, "object name is not UTF-8")
                        .with_path(location)
                        .with_source(e)
                })?;
            if i < self.prefix.len() {
                if self.prefix[i] != decoded {
                    return Err(Error::new(
                        ErrorKind::Protocol,
                        "store returned a path outside the prefix",
                    )
                    .with_path(location));
                }
                continue;
            }
            out = out.join(&decoded)?;
        }
        Ok(out)
    }

    fn entry(&self, meta: &ObjectMeta) -> Result<Entry> {
        let mut e = Entry::file(self.remote_path(&meta.location)?, meta.size)
            .with_modtime(Some(to_time(&meta.last_modified)));
        e.etag = meta.e_tag.clone();
        Ok(e)
    }

    fn ctx(&self, e: impl Into<Error>, op: &'static str, path: &RemotePath) -> Error {
        e.into()
            .with_operation(op)
            .with_remote(&self.name)
            .with_path(path)
    }

    /// Whether `dir` exists: the bucket root always does, any other prefix (our own root
    /// included when the remote is rooted below the bucket) while something lies below it.
    async fn is_dir(&self, dir: &RemotePath) -> Result<bool> {
        let Some(prefix) = self.store_prefix(dir) else {
            return Ok(true);
        };
        let mut s = self.store.list(Some(&prefix));
        Ok(s.try_next().await?.is_some())
    }
}

fn to_time(t: &chrono::DateTime<chrono::Utc>) -> OffsetDateTime {
    let nanos = i128::from(t.timestamp()) * 1_000_000_000 + i128::from(t.timestamp_subsec_nanos());
    OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

#[async_trait]
impl Remote for ObjectStoreRemote {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    fn location(&self) -> Option<Location> {
        Some(Location::new(self.space.clone(), &self.prefix.join("/")))
    }

    async fn list(&self, dir: &RemotePath) -> Result<EntryStream> {
        let prefix = self.store_prefix(dir);
        let res = self
            .store
            .list_with_delimiter(prefix.as_ref())
            .await
            .map_err(|e| self.ctx(e, "list", dir))?;
        // An empty listing under a prefix means nothing is there: `NotFound`, also for our own
        // root when it is a prefix (`memory://x/typo`, `gs://bucket/typo`), so a mistyped
        // source is "directory not found" and never an empty tree a sync would mirror. Only
        // the bucket root itself may be empty.
        if res.objects.is_empty() && res.common_prefixes.is_empty() && prefix.is_some() {
            return Err(self.ctx(
                Error::new(ErrorKind::NotFound, "directory not found"),
                "list",
                dir,
            ));
        }
        let mut out = Vec::with_capacity(res.objects.len() + res.common_prefixes.len());
        for p in &res.common_prefixes {
            out.push(Ok(Entry::dir(self.remote_path(p)?)));
        }
        for o in &res.objects {
            out.push(self.entry(o));
        }
        Ok(futures::stream::iter(out).boxed())
    }

    async fn list_recursive(&self, dir: &RemotePath) -> Result<EntryStream> {
        let prefix = self.store_prefix(dir);
        let this = self.clone();
        Ok(self
            .store
            .list(prefix.as_ref())
            .map(move |r| r.map_err(Error::from).and_then(|m| this.entry(&m)))
            .boxed())
    }

    async fn stat(&self, path: &RemotePath) -> Result<Entry> {
        if path.is_root() {
            return if self.is_dir(path).await? {
                Ok(Entry::dir(RemotePath::root()))
            } else {
                Err(self.ctx(
                    Error::new(ErrorKind::NotFound, "directory not found"),
                    "stat",
                    path,
                ))
            };
        }
        match self.store.head(&self.store_path(path)).await {
            Ok(meta) => self.entry(&meta),
            Err(object_store::Error::NotFound { .. }) => {
                if self.is_dir(path).await? {
                    Ok(Entry::dir(path.clone()))
                } else {
                    Err(self.ctx(
                        Error::new(ErrorKind::NotFound, "no such file or directory"),
                        "stat",
                        path,
                    ))
                }
            }
            Err(e) => Err(self.ctx(e, "stat", path)),
        }
    }

    async fn read(&self, path: &RemotePath, range: Option<Range<u64>>) -> Result<ByteStream> {
        if let Some(r) = &range {
            if r.start >= r.end {
                // object_store rejects empty ranges; the file must still exist.
                self.store
                    .head(&self.store_path(path))
                    .await
                    .map_err(|e| self.ctx(e, "read", path))?;
                return Ok(futures::stream::empty().boxed());
            }
        }
        let opts = GetOptions {
            range: range.map(GetRange::Bounded),
            ..Default::default()
        };
        let res = self
            .store
            .get_opts(&self.store_path(path), opts)
            .await
            .map_err(|e| self.ctx(e, "read", path))?;
        let name = self.name.clone();
        let p = path.clone();
        Ok(res
            .into_stream()
            .map_err(move |e| {
                Error::from(e)
                    .with_operation("read")
                    .with_remote(&name)
                    .with_path(&p)
            })
            .boxed())
    }

    async fn write(
        &self,
        path: &RemotePath,
        mut body: ByteStream,
        meta: WriteMeta,
    ) -> Result<Entry> {
        if path.is_root() {
            return Err(self.ctx(
                Error::new(ErrorKind::InvalidInput, "cannot write to the root"),
                "write",
                path,
            ));
        }
        let location = self.store_path(path);
        let mut buffered: Vec<Bytes> = Vec::new();
        let mut size: u64 = 0;
        let mut multipart: Option<WriteMultipart> = None;
        let result: Result<object_store::PutResult> = async {
            let short = |size: u64| {
                Error::new(
                    ErrorKind::ConditionNotMatch,
                    format!(
                        "the body had {size} bytes, not the {} announced; nothing was stored",
                        meta.size.unwrap_or(0)
                    ),
                )
            };
            while let Some(chunk) = body.try_next().await? {
                size += chunk.len() as u64;
                // Checked before the commit: a short upload must not replace the old object.
                if meta.size.is_some_and(|want| size > want) {
                    return Err(short(size));
                }
                match &mut multipart {
                    Some(w) => {
                        w.wait_for_capacity(PART_CONCURRENCY).await?;
                        w.put(chunk);
                    }
                    None => {
                        buffered.push(chunk);
                        if size as usize > SINGLE_PUT_LIMIT {
                            let upload = self.store.put_multipart(&location).await?;
                            let mut w = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
                            for b in buffered.drain(..) {
                                w.put(b);
                            }
                            multipart = Some(w);
                        }
                    }
                }
            }
            if meta.size.is_some_and(|want| size != want) {
                return Err(short(size));
            }
            match multipart.take() {
                Some(w) => Ok(w.finish().await?),
                None => Ok(self
                    .store
                    .put(&location, buffered.drain(..).collect())
                    .await?),
            }
        }
        .await;
        match result {
            Ok(put) => {
                let mut e =
                    Entry::file(path.clone(), size).with_modtime(Some(OffsetDateTime::now_utc()));
                e.etag = put.e_tag;
                Ok(e)
            }
            Err(e) => {
                if let Some(w) = multipart {
                    let _ = w.abort().await;
                }
                Err(self.ctx(e, "write", path))
            }
        }
    }

    async fn mkdir(&self, _dir: &RemotePath) -> Result<()> {
        // Directories are implicit in object stores.
        Ok(())
    }

    async fn remove_file(&self, path: &RemotePath) -> Result<()> {
        self.store
            .delete(&self.store_path(path))
            .await
            .map_err(|e| self.ctx(e, "remove_file", path))
    }

    async fn remove_dir(&self, dir: &RemotePath) -> Result<()> {
        if !dir.is_root() && self.is_dir(dir).await? {
            return Err(self.ctx(
                Error::new(ErrorKind::Conflict, "directory not empty"),
                "remove_dir",
                dir,
            ));
        }
        Ok(())
    }

    async fn copy(&self, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
        self.store
            .copy(&self.store_path(from), &self.store_path(to))
            .await
            .map_err(|e| self.ctx(e, "copy", from))?;
        self.stat(to).await
    }

    async fn rename(&self, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
        self.store
            .rename(&self.store_path(from), &self.store_path(to))
            .await
            .map_err(|e| self.ctx(e, "rename", from))?;
        self.stat(to).await
    }
}

/// A fresh, empty in-memory remote.
///
/// ```
/// let remote = cloudsync_core::memory();
/// # let _ = remote;
/// ```
pub fn memory() -> Arc<dyn Remote> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Arc::new(ObjectStoreRemote::new(
        Arc::new(object_store::memory::InMemory::new()),
        format!("memory://anonymous-{n}"),
    ))
}

/// The in-memory remote called `name`, shared by everything in this process that opens
/// `memory://name` (created empty on first use).
pub fn memory_named(name: &str) -> Arc<dyn Remote> {
    memory_named_at(name, &RemotePath::root())
}

/// The directory `root` of the in-memory store called `name` (`memory://name/root`): a view
/// of the store [`memory_named`] opens, like a path on a server.
pub(crate) fn memory_named_at(name: &str, root: &RemotePath) -> Arc<dyn Remote> {
    static STORES: OnceLock<Mutex<HashMap<String, Arc<object_store::memory::InMemory>>>> =
        OnceLock::new();
    let stores = STORES.get_or_init(Default::default);
    let store = {
        let mut map = stores.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(name.to_owned())
            .or_insert_with(|| Arc::new(object_store::memory::InMemory::new()))
            .clone()
    };
    let mut describe = format!("memory://{name}");
    if !root.is_root() {
        describe.push('/');
        describe.push_str(root.as_str());
    }
    Arc::new(
        ObjectStoreRemote::new(store, describe)
            .with_space(format!("memory://{name}"))
            .with_prefix(root),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    fn path(s: &str) -> RemotePath {
        RemotePath::new(s).unwrap()
    }

    async fn root_listing(r: &ObjectStoreRemote) -> Result<usize> {
        Ok(r.list(&RemotePath::root()).await?.count().await)
    }

    #[tokio::test]
    async fn a_body_of_another_size_than_announced_replaces_nothing() {
        let r = ObjectStoreRemote::new(Arc::new(InMemory::new()), "mem://b");
        let p = path("f");
        r.write(&p, crate::bytes_stream("old"), WriteMeta::default())
            .await
            .unwrap();
        for body in ["shor", "longer than announced"] {
            let meta = WriteMeta {
                size: Some(6),
                ..Default::default()
            };
            let e = r
                .write(&p, crate::bytes_stream(body), meta)
                .await
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::ConditionNotMatch, "{body}");
            let got = crate::collect_bytes(r.read(&p, None).await.unwrap())
                .await
                .unwrap();
            assert_eq!(got, "old", "{body}");
        }
    }

    #[tokio::test]
    async fn missing_prefix_root_is_not_found_but_bucket_root_is_empty() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let bucket = ObjectStoreRemote::new(store.clone(), "mem://b");
        assert_eq!(root_listing(&bucket).await.unwrap(), 0);
        bucket.stat(&RemotePath::root()).await.unwrap();
        bucket
            .write(
                &path("data/f"),
                crate::bytes_stream("x"),
                WriteMeta::default(),
            )
            .await
            .unwrap();

        let typo = ObjectStoreRemote::new(store.clone(), "mem://b/dta").with_prefix(&path("dta"));
        let e = typo.list(&RemotePath::root()).await.err().unwrap();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
        let e = typo.stat(&RemotePath::root()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");

        let data = ObjectStoreRemote::new(store, "mem://b/data").with_prefix(&path("data"));
        assert_eq!(root_listing(&data).await.unwrap(), 1);
        assert!(data.stat(&RemotePath::root()).await.unwrap().is_dir());
    }
}

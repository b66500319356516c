//! [`Corrupting`]: a destination that stores other bytes than it was sent (a flipped bit on
//! the way), reporting the hash of what it stored, to prove transfers are verified.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use time::OffsetDateTime;

use crate::entry::{Entry, WriteMeta};
use crate::error::Result;
use crate::hash::HashKind;
use crate::path::RemotePath;
use crate::remote::{ByteStream, Capabilities, EntryStream, Remote};

/// Wraps a remote; the first byte of every body written to a path whose name ends with
/// `suffix` is changed on its way in (same size).
#[derive(Debug)]
pub(crate) struct Corrupting {
    inner: Arc<dyn Remote>,
    suffix: String,
    writes: AtomicU32,
}

impl Corrupting {
    pub(crate) fn new(inner: Arc<dyn Remote>, suffix: &str) -> Self {
        Corrupting {
            inner,
            suffix: suffix.to_owned(),
            writes: AtomicU32::new(0),
        }
    }

    /// Writes that were corrupted.
    pub(crate) fn writes(&self) -> u32 {
        self.writes.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl Remote for Corrupting {
    fn describe(&self) -> String {
        format!("corrupting+{}", self.inner.describe())
    }
    fn capabilities(&self) -> &Capabilities {
        self.inner.capabilities()
    }
    async fn list(&self, dir: &RemotePath) -> Result<EntryStream> {
        self.inner.list(dir).await
    }
    async fn stat(&self, path: &RemotePath) -> Result<Entry> {
        self.inner.stat(path).await
    }
    async fn read(
        &self,
        path: &RemotePath,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<ByteStream> {
        self.inner.read(path, range).await
    }
    async fn write(&self, path: &RemotePath, body: ByteStream, meta: WriteMeta) -> Result<Entry> {
        if !path.name().ends_with(&self.suffix) {
            return self.inner.write(path, body, meta).await;
        }
        self.writes.fetch_add(1, Ordering::Relaxed);
        let mut first = true;
        let body = body
            .map(move |chunk| {
                chunk.map(|c| {
                    if !std::mem::take(&mut first) || c.is_empty() {
                        return c;
                    }
                    let mut v = c.to_vec();
                    v[0] ^= 1;
                    Bytes::from(v)
                })
            })
            .boxed();
        self.inner.write(path, body, meta).await
    }
    async fn write_at(
        &self,
        path: &RemotePath,
        offset: u64,
        body: ByteStream,
        total: Option<u64>,
    ) -> Result<u64> {
        self.inner.write_at(path, offset, body, total).await
    }
    async fn session_start(
        &self,
        path: &RemotePath,
        size: u64,
        meta: &WriteMeta,
    ) -> Result<crate::resume_state::SessionToken> {
        self.inner.session_start(path, size, meta).await
    }
    async fn session_offset(&self, token: &crate::resume_state::SessionToken) -> Result<u64> {
        self.inner.session_offset(token).await
    }
    async fn session_write(
        &self,
        token: &crate::resume_state::SessionToken,
        path: &RemotePath,
        offset: u64,
        body: ByteStream,
        meta: WriteMeta,
    ) -> Result<Entry> {
        self.inner
            .session_write(token, path, offset, body, meta)
            .await
    }
    async fn session_cancel(&self, token: &crate::resume_state::SessionToken) -> Result<()> {
        self.inner.session_cancel(token).await
    }
    async fn mkdir(&self, dir: &RemotePath) -> Result<()> {
        self.inner.mkdir(dir).await
    }
    async fn remove_file(&self, path: &RemotePath) -> Result<()> {
        self.inner.remove_file(path).await
    }
    async fn remove_dir(&self, dir: &RemotePath) -> Result<()> {
        self.inner.remove_dir(dir).await
    }
    async fn set_modtime(&self, path: &RemotePath, modtime: OffsetDateTime) -> Result<()> {
        self.inner.set_modtime(path, modtime).await
    }
    async fn hash(&self, path: &RemotePath, kind: HashKind) -> Result<String> {
        self.inner.hash(path, kind).await
    }
}

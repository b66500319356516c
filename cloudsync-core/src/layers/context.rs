//! [`ErrorContext`]: a wrapper that names the operation, the remote and the path in every
//! error a remote returns, the same way for every backend, so that no backend does it by hand.
//!
//! Place: directly around the backend, below every other layer, so that the errors
//! [`Retrying`](crate::Retrying) logs and looks at already say where they come from, and the
//! path is the one the backend was asked about (a failed `stat` of a rename's source names the
//! source, not the target).

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use futures::TryStreamExt;
use futures::stream::BoxStream;
use time::OffsetDateTime;

use crate::entry::{Entry, Usage, WriteMeta};
use crate::error::{Error, Result};
use crate::hash::HashKind;
use crate::location::Location;
use crate::path::RemotePath;
use crate::remote::{ByteStream, Capabilities, EntryStream, Remote};
use crate::secret::redact_location;

/// A remote whose errors name the operation, the remote and the path.
///
/// Each error of a call, and each error a listing or a download yields later in its stream,
/// gets what it does not name yet:
///
/// - the operation: `list` (also for `list_recursive`), `stat`, `read`, `write` (also for
///   `write_from_file`), `mkdir`, `remove_file`, `remove_dir`, `copy`, `rename`,
///   `set_modtime`, `hash`, `purge`, `cleanup`, `usage`;
/// - the remote: its [`describe`](Remote::describe) string through [`redact_location`], so a
///   password a backend might show there never reaches an error;
/// - the path the call was made on (the target of a `copy` or `rename`); none for the root.
///
/// What the backend already said is kept, being more precise: the entry of a listing that
/// could not be read, the `connect` step of a call, the source's read error that broke an
/// upload. Successful calls and the entries and bytes of streams pass through untouched.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> cloudsync_core::Result<()> {
/// use cloudsync_core::{memory_named, ErrorContext, Remote, RemotePath};
/// let remote = ErrorContext::wrap(memory_named("ctx-doc"));
/// let e = remote.stat(&RemotePath::new("missing.txt")?).await.unwrap_err();
/// assert_eq!(e.operation(), Some("stat"));
/// assert_eq!(e.remote(), Some("memory://ctx-doc"));
/// assert_eq!(e.path(), Some("missing.txt"));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ErrorContext {
    inner: Arc<dyn Remote>,
    /// The redacted description, computed once.
    remote: Arc<str>,
}

impl ErrorContext {
    /// Wraps `inner`.
    pub fn wrap(inner: Arc<dyn Remote>) -> Arc<dyn Remote> {
        let remote = redact_location(&inner.describe()).into();
        Arc::new(ErrorContext { inner, remote })
    }

    /// `e` with what it does not name yet.
    fn add(&self, e: Error, op: &'static str, path: &RemotePath) -> Error {
        context(e, op, &self.remote, path)
    }

    /// `r` with context on its error.
    fn on<T>(&self, r: Result<T>, op: &'static str, path: &RemotePath) -> Result<T> {
        r.map_err(|e| self.add(e, op, path))
    }

    /// `s` with context on the errors it yields; items that are not errors are not touched.
    fn stream<T: Send + 'static>(
        &self,
        s: BoxStream<'static, Result<T>>,
        op: &'static str,
        path: &RemotePath,
    ) -> BoxStream<'static, Result<T>> {
        let remote = self.remote.clone();
        let path = path.clone();
        Box::pin(s.map_err(move |e| context(e, op, &remote, &path)))
    }
}

fn context(e: Error, op: &'static str, remote: &str, path: &RemotePath) -> Error {
    let e = e.or_operation(op).or_remote(remote);
    if path.is_root() { e } else { e.or_path(path) }
}

#[async_trait]
impl Remote for ErrorContext {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn capabilities(&self) -> &Capabilities {
        self.inner.capabilities()
    }
    fn location(&self) -> Option<Location> {
        self.inner.location()
    }
    async fn list(&self, dir: &RemotePath) -> Result<EntryStream> {
        let s = self.on(self.inner.list(dir).await, "list", dir)?;
        Ok(self.stream(s, "list", dir))
    }
    async fn list_recursive(&self, dir: &RemotePath) -> Result<EntryStream> {
        let s = self.on(self.inner.list_recursive(dir).await, "list", dir)?;
        Ok(self.stream(s, "list", dir))
    }
    async fn stat(&self, path: &RemotePath) -> Result<Entry> {
        self.on(self.inner.stat(path).await, "stat", path)
    }
    async fn read(&self, path: &RemotePath, range: Option<Range<u64>>) -> Result<ByteStream> {
        let s = self.on(self.inner.read(path, range).await, "read", path)?;
        Ok(self.stream(s, "read", path))
    }
    async fn write(&self, path: &RemotePath, body: ByteStream, meta: WriteMeta) -> Result<Entry> {
        self.on(self.inner.write(path, body, meta).await, "write", path)
    }
    async fn write_at(
        &self,
        path: &RemotePath,
        offset: u64,
        body: ByteStream,
        total: Option<u64>,
    ) -> Result<u64> {
        self.on(
            self.inner.write_at(path, offset, body, total).await,
            "write_at",
            path,
        )
    }
    async fn session_start(
        &self,
        path: &RemotePath,
        size: u64,
        meta: &WriteMeta,
    ) -> Result<crate::resume_state::SessionToken> {
        self.on(
            self.inner.session_start(path, size, meta).await,
            "session_start",
            path,
        )
    }
    async fn session_offset(&self, token: &crate::resume_state::SessionToken) -> Result<u64> {
        self.inner.session_offset(token).await.map_err(|e| {
            if e.remote().is_none() {
                e.with_remote(self.inner.describe())
            } else {
                e
            }
        })
    }
    async fn session_write(
        &self,
        token: &crate::resume_state::SessionToken,
        path: &RemotePath,
        offset: u64,
        body: ByteStream,
        meta: WriteMeta,
    ) -> Result<Entry> {
        self.on(
            self.inner
                .session_write(token, path, offset, body, meta)
                .await,
            "session_write",
            path,
        )
    }
    async fn session_cancel(&self, token: &crate::resume_state::SessionToken) -> Result<()> {
        self.inner.session_cancel(token).await
    }
    async fn write_from_file(
        &self,
        path: &RemotePath,
        local: &Path,
        meta: WriteMeta,
    ) -> Result<Entry> {
        let r = self.inner.write_from_file(path, local, meta).await;
        self.on(r, "write", path)
    }
    async fn mkdir(&self, dir: &RemotePath) -> Result<()> {
        self.on(self.inner.mkdir(dir).await, "mkdir", dir)
    }
    async fn remove_file(&self, path: &RemotePath) -> Result<()> {
        self.on(self.inner.remove_file(path).await, "remove_file", path)
    }
    async fn remove_dir(&self, dir: &RemotePath) -> Result<()> {
        self.on(self.inner.remove_dir(dir).await, "remove_dir", dir)
    }
    async fn copy(&self, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
        self.on(self.inner.copy(from, to).await, "copy", to)
    }
    async fn rename(&self, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
        self.on(self.inner.rename(from, to).await, "rename", to)
    }
    async fn set_modtime(&self, path: &RemotePath, modtime: OffsetDateTime) -> Result<()> {
        let r = self.inner.set_modtime(path, modtime).await;
        self.on(r, "set_modtime", path)
    }
    async fn hash(&self, path: &RemotePath, kind: HashKind) -> Result<String> {
        self.on(self.inner.hash(path, kind).await, "hash", path)
    }
    async fn purge(&self, dir: &RemotePath) -> Result<()> {
        self.on(self.inner.purge(dir).await, "purge", dir)
    }
    async fn cleanup(&self) -> Result<()> {
        self.on(self.inner.cleanup().await, "cleanup", &RemotePath::root())
    }
    async fn usage(&self) -> Result<Usage> {
        self.on(self.inner.usage().await, "usage", &RemotePath::root())
    }
    fn local_path(&self, path: &RemotePath) -> Option<PathBuf> {
        self.inner.local_path(path)
    }
}

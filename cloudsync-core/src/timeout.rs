//! [`Timeout`]: a wrapper that turns a call that never answers into a temporary error.
//!
//! A server that accepts a connection and then says nothing would otherwise hold a sync for
//! ever. Like rclone's `--timeout`, the limit is an *idle* time: a listing or a download may
//! take as long as it likes while entries or bytes keep coming, and an upload while the body is
//! being consumed; every other call (and the wait for a response after an upload's last byte)
//! must answer within the limit. A timed-out call is [`ErrorKind::Transient`], so it is retried
//! like any dropped connection; a write that timed out may still have happened, which the
//! engine tolerates (writes replace whole files, deletes treat "not found" as done).
//!
//! Place: directly around the backend, below any retrying wrapper.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::entry::{Entry, Usage, WriteMeta};
use crate::error::{Error, ErrorKind, Result};
use crate::hash::HashKind;
use crate::location::Location;
use crate::path::RemotePath;
use crate::remote::{ByteStream, Capabilities, EntryStream, Remote};

/// A remote whose calls fail with [`ErrorKind::Transient`] after `idle` without progress.
///
/// ```
/// use std::time::Duration;
/// use cloudsync_core::{memory, Timeout};
/// let remote = Timeout::wrap(memory(), Duration::from_secs(300));
/// # let _ = remote;
/// ```
#[derive(Debug, Clone)]
pub struct Timeout {
    inner: Arc<dyn Remote>,
    idle: Duration,
}

impl Timeout {
    /// Wraps `inner` with an idle limit of `idle`.
    pub fn wrap(inner: Arc<dyn Remote>, idle: Duration) -> Arc<dyn Remote> {
        Arc::new(Timeout { inner, idle })
    }

    fn expired(&self, op: &'static str, path: &RemotePath) -> Error {
        Error::new(
            ErrorKind::Transient,
            format!("no answer within {:?}", self.idle),
        )
        .with_operation(op)
        .with_remote(self.inner.describe())
        .with_path(path)
    }

    async fn call<T>(
        &self,
        op: &'static str,
        path: &RemotePath,
        fut: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        tokio::time::timeout(self.idle, fut)
            .await
            .unwrap_or_else(|_| Err(self.expired(op, path)))
    }

    /// Each item of `s` must come within the idle limit.
    fn idle_stream<T: Send + 'static>(
        &self,
        s: futures::stream::BoxStream<'static, Result<T>>,
        op: &'static str,
        path: &RemotePath,
    ) -> futures::stream::BoxStream<'static, Result<T>> {
        let (idle, err) = (self.idle, self.expired(op, path));
        let mut err = Some(err);
        futures::stream::unfold(Some(s), move |state| {
            let err = err.take();
            async move {
                let mut s = state?;
                match tokio::time::timeout(idle, s.next()).await {
                    Ok(Some(item)) => Some((item, Some(s))),
                    Ok(None) => None,
                    Err(_) => err.map(|e| (Err(e), None)),
                }
            }
        })
        .boxed()
    }
}

#[async_trait]
impl Remote for Timeout {
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
        let s = self.call("list", dir, self.inner.list(dir)).await?;
        Ok(self.idle_stream(s, "list", dir))
    }
    async fn list_recursive(&self, dir: &RemotePath) -> Result<EntryStream> {
        let s = self
            .call("list", dir, self.inner.list_recursive(dir))
            .await?;
        Ok(self.idle_stream(s, "list", dir))
    }
    async fn stat(&self, path: &RemotePath) -> Result<Entry> {
        self.call("stat", path, self.inner.stat(path)).await
    }
    async fn read(&self, path: &RemotePath, range: Option<Range<u64>>) -> Result<ByteStream> {
        let s = self
            .call("read", path, self.inner.read(path, range))
            .await?;
        Ok(self.idle_stream(s, "read", path))
    }
    async fn write(&self, path: &RemotePath, body: ByteStream, meta: WriteMeta) -> Result<Entry> {
        // The clock restarts whenever the backend takes another chunk of the body.
        let last = Arc::new(Mutex::new(Instant::now()));
        let touched = last.clone();
        let body = body
            .inspect(move |_| *touched.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now())
            .boxed();
        let write = self.inner.write(path, body, meta);
        tokio::pin!(write);
        loop {
            let deadline = *last.lock().unwrap_or_else(|p| p.into_inner()) + self.idle;
            tokio::select! {
                r = &mut write => return r,
                () = tokio::time::sleep_until(deadline) => {
                    let now_deadline = *last.lock().unwrap_or_else(|p| p.into_inner()) + self.idle;
                    if now_deadline <= Instant::now() {
                        return Err(self.expired("write", path));
                    }
                }
            }
        }
    }
    async fn write_from_file(
        &self,
        path: &RemotePath,
        local: &Path,
        meta: WriteMeta,
    ) -> Result<Entry> {
        // A local copy has no body to watch; the inner remote decides how it is done.
        self.inner.write_from_file(path, local, meta).await
    }
    async fn mkdir(&self, dir: &RemotePath) -> Result<()> {
        self.call("mkdir", dir, self.inner.mkdir(dir)).await
    }
    async fn remove_file(&self, path: &RemotePath) -> Result<()> {
        self.call("remove_file", path, self.inner.remove_file(path))
            .await
    }
    async fn remove_dir(&self, dir: &RemotePath) -> Result<()> {
        self.call("remove_dir", dir, self.inner.remove_dir(dir))
            .await
    }
    async fn copy(&self, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
        self.call("copy", to, self.inner.copy(from, to)).await
    }
    async fn rename(&self, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
        self.call("rename", to, self.inner.rename(from, to)).await
    }
    async fn set_modtime(&self, path: &RemotePath, modtime: OffsetDateTime) -> Result<()> {
        self.call("set_modtime", path, self.inner.set_modtime(path, modtime))
            .await
    }
    async fn hash(&self, path: &RemotePath, kind: HashKind) -> Result<String> {
        self.call("hash", path, self.inner.hash(path, kind)).await
    }
    async fn purge(&self, dir: &RemotePath) -> Result<()> {
        self.call("purge", dir, self.inner.purge(dir)).await
    }
    async fn cleanup(&self) -> Result<()> {
        let root = RemotePath::root();
        self.call("cleanup", &root, self.inner.cleanup()).await
    }
    async fn usage(&self) -> Result<Usage> {
        let root = RemotePath::root();
        self.call("usage", &root, self.inner.usage()).await
    }
    fn local_path(&self, path: &RemotePath) -> Option<PathBuf> {
        self.inner.local_path(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory;

    #[derive(Debug)]
    struct Silent(Arc<dyn Remote>);

    #[async_trait]
    impl Remote for Silent {
        fn describe(&self) -> String {
            "silent://".into()
        }
        fn capabilities(&self) -> &Capabilities {
            self.0.capabilities()
        }
        async fn list(&self, _: &RemotePath) -> Result<EntryStream> {
            Ok(futures::stream::pending().boxed())
        }
        async fn stat(&self, _: &RemotePath) -> Result<Entry> {
            futures::future::pending().await
        }
        async fn read(&self, _: &RemotePath, _: Option<Range<u64>>) -> Result<ByteStream> {
            futures::future::pending().await
        }
        async fn write(&self, _: &RemotePath, _: ByteStream, _: WriteMeta) -> Result<Entry> {
            futures::future::pending().await
        }
        async fn mkdir(&self, _: &RemotePath) -> Result<()> {
            futures::future::pending().await
        }
        async fn remove_file(&self, _: &RemotePath) -> Result<()> {
            futures::future::pending().await
        }
        async fn remove_dir(&self, _: &RemotePath) -> Result<()> {
            futures::future::pending().await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn silence_becomes_a_temporary_error() {
        let r = Timeout::wrap(Arc::new(Silent(memory())), Duration::from_secs(5));
        let p = RemotePath::new("x").unwrap();
        let e = r.stat(&p).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Transient);
        assert!(e.is_retryable());
        let mut s = r.list(&RemotePath::root()).await.unwrap();
        assert!(
            s.next().await.unwrap().is_err(),
            "a listing that stalls fails"
        );
        let w = r
            .write(&p, crate::bytes_stream("abc"), WriteMeta::default())
            .await;
        assert!(w.is_err());
    }
}

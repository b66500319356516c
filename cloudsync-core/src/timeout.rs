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
//! Place: below any retrying wrapper; the registry puts it just above
//! [`BandwidthLimited`](crate::BandwidthLimited) and [`ErrorContext`](crate::ErrorContext).

use std::future::Future;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use time::OffsetDateTime;
use tokio::time::{Instant, Sleep};

use crate::entry::{Entry, Usage, WriteMeta};
use crate::error::{Error, ErrorKind, Result};
use crate::hash::HashKind;
use crate::location::Location;
use crate::path::RemotePath;
use crate::remote::{ByteStream, Capabilities, EntryStream, Remote};

/// rclone's default `--timeout`: five minutes without progress.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

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

    /// Runs an upload of `body` (`start` hands it to the backend), failing it when the backend
    /// takes no chunk of the body and does not finish within the idle time: the clock
    /// restarts whenever the backend takes another chunk.
    async fn upload<T, F>(
        &self,
        op: &'static str,
        path: &RemotePath,
        body: ByteStream,
        start: impl FnOnce(ByteStream) -> F,
    ) -> Result<T>
    where
        F: std::future::Future<Output = Result<T>> + Send,
    {
        let last = Arc::new(Mutex::new(Instant::now()));
        let touched = last.clone();
        let body = body
            .inspect(move |_| *touched.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now())
            .boxed();
        let write = start(body);
        tokio::pin!(write);
        loop {
            let deadline = *last.lock().unwrap_or_else(|p| p.into_inner()) + self.idle;
            tokio::select! {
                r = &mut write => return r,
                () = tokio::time::sleep_until(deadline) => {
                    let now_deadline = *last.lock().unwrap_or_else(|p| p.into_inner()) + self.idle;
                    if now_deadline <= Instant::now() {
                        return Err(self.expired(op, path));
                    }
                }
            }
        }
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
        s: BoxStream<'static, Result<T>>,
        op: &'static str,
        path: &RemotePath,
    ) -> BoxStream<'static, Result<T>> {
        Box::pin(Idle {
            inner: Some(s),
            idle: self.idle,
            waiting_since: None,
            timer: None,
            err: Some(self.expired(op, path)),
        })
    }
}

/// A stream that fails with `err` when its inner stream, while polled, makes no progress for
/// `idle`.
///
/// Items that are ready cost no clock reading and no timer: the clock is read when the inner
/// stream starts to wait, one timer per stream is armed the first time it waits, and it is
/// moved on only when it fires for a wait that already ended.
struct Idle<T> {
    /// `None` once ended (by itself or by the timeout).
    inner: Option<BoxStream<'static, Result<T>>>,
    idle: Duration,
    /// When the inner stream began the wait in progress; `None` after an item.
    waiting_since: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
    err: Option<Error>,
}

impl<T> Stream for Idle<T> {
    type Item = Result<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // Every field is Unpin.
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(item)) => {
                this.waiting_since = None;
                return Poll::Ready(Some(item));
            }
            Poll::Ready(None) => {
                this.inner = None;
                this.timer = None;
                return Poll::Ready(None);
            }
            Poll::Pending => {}
        }
        let since = *this.waiting_since.get_or_insert_with(Instant::now);
        let deadline = since + this.idle;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        loop {
            match timer.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) if Instant::now() >= deadline => {
                    this.inner = None;
                    this.timer = None;
                    return Poll::Ready(this.err.take().map(Err));
                }
                // Set for an earlier wait that ended in time: moved on to this one's deadline
                // only now, so that a stream waiting briefly between items costs no timer
                // operation per wait.
                Poll::Ready(()) => timer.as_mut().reset(deadline),
            }
        }
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
        self.upload("write", path, body, |body| {
            self.inner.write(path, body, meta)
        })
        .await
    }
    async fn write_at(
        &self,
        path: &RemotePath,
        offset: u64,
        body: ByteStream,
        total: Option<u64>,
    ) -> Result<u64> {
        self.upload("write_at", path, body, |body| {
            self.inner.write_at(path, offset, body, total)
        })
        .await
    }
    async fn session_start(
        &self,
        path: &RemotePath,
        size: u64,
        meta: &WriteMeta,
    ) -> Result<crate::resume_state::SessionToken> {
        self.call(
            "session_start",
            path,
            self.inner.session_start(path, size, meta),
        )
        .await
    }
    async fn session_offset(&self, token: &crate::resume_state::SessionToken) -> Result<u64> {
        let root = RemotePath::root();
        self.call("session_offset", &root, self.inner.session_offset(token))
            .await
    }
    async fn session_write(
        &self,
        token: &crate::resume_state::SessionToken,
        path: &RemotePath,
        offset: u64,
        body: ByteStream,
        meta: WriteMeta,
    ) -> Result<Entry> {
        self.upload("session_write", path, body, |body| {
            self.inner.session_write(token, path, offset, body, meta)
        })
        .await
    }
    async fn session_cancel(&self, token: &crate::resume_state::SessionToken) -> Result<()> {
        let root = RemotePath::root();
        self.call("session_cancel", &root, self.inner.session_cancel(token))
            .await
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

    /// A listing whose entries come every 4 s, five of them, then nothing.
    #[derive(Debug)]
    struct Trickle(Arc<dyn Remote>);

    #[async_trait]
    impl Remote for Trickle {
        fn describe(&self) -> String {
            "trickle://".into()
        }
        fn capabilities(&self) -> &Capabilities {
            self.0.capabilities()
        }
        async fn list(&self, dir: &RemotePath) -> Result<EntryStream> {
            let dir = dir.clone();
            let entries = futures::stream::unfold(0, move |i| {
                let dir = dir.clone();
                async move {
                    if i == 5 {
                        return None;
                    }
                    tokio::time::sleep(Duration::from_secs(4)).await;
                    Some((dir.join(&format!("f{i}")).map(|p| Entry::file(p, 1)), i + 1))
                }
            });
            Ok(entries.chain(futures::stream::pending()).boxed())
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

    /// The limit is on silence, not on the whole listing: entries 4 s apart pass a 5 s limit
    /// for 20 s, and the silence after the last one fails 5 s after it, once.
    #[tokio::test(start_paused = true)]
    async fn a_slow_listing_that_keeps_coming_is_not_cut() {
        let r = Timeout::wrap(Arc::new(Trickle(memory())), Duration::from_secs(5));
        let t0 = Instant::now();
        let mut s = r.list(&RemotePath::new("d").unwrap()).await.unwrap();
        for i in 0..5 {
            let e = s.next().await.unwrap().unwrap();
            assert_eq!(e.path.as_str(), format!("d/f{i}"));
            assert_eq!(t0.elapsed(), Duration::from_secs(4 * (i + 1)));
        }
        let e = s.next().await.unwrap().unwrap_err();
        assert_eq!(
            t0.elapsed(),
            Duration::from_secs(25),
            "5 s after the last entry"
        );
        assert_eq!(e.kind(), ErrorKind::Transient);
        assert_eq!((e.operation(), e.path()), (Some("list"), Some("d")));
        assert!(s.next().await.is_none(), "the stream ends after its error");
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

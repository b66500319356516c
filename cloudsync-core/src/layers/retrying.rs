//! [`Retrying`]: a wrapper that repeats a call that failed temporarily, where repeating it is
//! safe, so that one 503 or dropped connection does not cost a whole file or directory.
//!
//! Only errors for which [`Error::is_retryable`] is true are retried, after an exponential
//! backoff with jitter ([`RetryPolicy::next_backoff`]) or after the server's `Retry-After` when
//! it asks for longer (capped at [`MAX_RETRY_AFTER`]). What is repeated depends on the call
//! (see [`Retrying`]).
//!
//! Place: outermost, above [`Throttled`](crate::Throttled), [`Limited`](crate::Limited) and
//! [`Timeout`](crate::Timeout), so that every attempt is throttled and timed on its own.

use std::future::Future;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::entry::{Entry, Usage, WriteMeta};
use crate::error::{Error, ErrorKind, Result};
use crate::hash::HashKind;
use crate::location::Location;
use crate::path::RemotePath;
use crate::remote::{ByteStream, Capabilities, EntryStream, Remote};
use crate::retry::RetryPolicy;

/// The longest `Retry-After` honoured; a server asking for more is waited on this long.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// A remote whose calls are retried on temporary errors where that is safe:
///
/// | call | repeated |
/// | --- | --- |
/// | `stat`, `hash`, `mkdir`, `set_modtime`, `usage`, `cleanup` | yes: they are idempotent |
/// | `list`, `list_recursive` | only while no entry has been yielded (then the caller sees the error) |
/// | `read` | only before the first byte (a stream cut later is the engine's to retry) |
/// | `remove_file`, `remove_dir`, `purge` | yes; "not found" on a retry means the first attempt took effect |
/// | `write`, `write_from_file` | never: the body is a stream that cannot be replayed; the engine retries whole transfers |
/// | `rename` | never blindly: the source is looked up first; after a temporary failure, source gone and target present with the source's size (and hash, if listed) is success, source still present means nothing happened and the move is tried again, anything else is the error |
/// | `copy` | never blindly: after a temporary failure, a target matching the source's size (and hash, if both list one) is success; a missing or different target is copied again |
///
/// ```
/// use cloudsync_core::{memory, Retrying, RetryPolicy};
/// let remote = Retrying::wrap(memory(), RetryPolicy { max_retries: 10, ..Default::default() });
/// # let _ = remote;
/// ```
#[derive(Debug, Clone)]
pub struct Retrying {
    inner: Arc<dyn Remote>,
    policy: RetryPolicy,
}

/// What a look after a failed non-idempotent call found.
enum Effect {
    /// The call took effect: this is its result.
    Done(Entry),
    /// It did not: trying again is safe.
    NotYet,
    /// Cannot tell: report the failure.
    Unknown,
}

/// Backoff state of one call.
struct Attempts {
    start: Instant,
    backoff: Duration,
    n: u32,
}

impl Retrying {
    /// Wraps `inner`, retrying as `policy` says (`max_retries` retries after the first attempt).
    pub fn wrap(inner: Arc<dyn Remote>, policy: RetryPolicy) -> Arc<dyn Remote> {
        Arc::new(Retrying { inner, policy })
    }

    fn attempts(&self) -> Attempts {
        Attempts {
            start: Instant::now(),
            backoff: self.policy.base,
            n: 0,
        }
    }

    /// Waits before the next attempt after `e`; `false` when `e` is final (not temporary, or
    /// the policy is spent).
    async fn pause(
        &self,
        a: &mut Attempts,
        e: &Error,
        op: &'static str,
        path: &RemotePath,
    ) -> bool {
        if !e.is_retryable() || a.n >= self.policy.max_retries {
            return false;
        }
        a.backoff = self.policy.next_backoff(a.backoff);
        let wait = e
            .retry_after()
            .map_or(a.backoff, |ra| ra.min(MAX_RETRY_AFTER).max(a.backoff));
        if a.start.elapsed().saturating_add(wait) > self.policy.max_elapsed {
            return false;
        }
        a.n += 1;
        tracing::debug!(
            remote = %self.inner.describe(), op, %path, error = %e, attempt = a.n, ?wait,
            "retrying"
        );
        tokio::time::sleep(wait).await;
        true
    }

    /// Runs `attempt(n)` (`n`: retries so far) until it succeeds or fails for good.
    async fn retry<T, F, Fut>(
        &self,
        op: &'static str,
        path: &RemotePath,
        mut attempt: F,
    ) -> Result<T>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut a = self.attempts();
        loop {
            match attempt(a.n).await {
                Ok(v) => return Ok(v),
                Err(e) => {
                    if !self.pause(&mut a, &e, op, path).await {
                        return Err(e);
                    }
                }
            }
        }
    }

    /// A removal: "not found" on a retry means an earlier attempt took effect.
    async fn remove<F, Fut>(&self, op: &'static str, path: &RemotePath, call: F) -> Result<()>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<()>>,
    {
        self.retry(op, path, |n| {
            let fut = call();
            async move {
                match fut.await {
                    Err(e) if n > 0 && e.kind() == ErrorKind::NotFound => {
                        tracing::debug!(op, %path, "gone on a retry: the first attempt took effect");
                        Ok(())
                    }
                    r => r,
                }
            }
        })
        .await
    }

    /// Runs a non-idempotent call; after a temporary failure `look` decides whether it took
    /// effect, and it is repeated only when it certainly did not.
    async fn guarded<F, Fut, L, LFut>(
        &self,
        op: &'static str,
        path: &RemotePath,
        call: F,
        look: L,
    ) -> Result<Entry>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Entry>>,
        L: Fn() -> LFut,
        LFut: Future<Output = Effect>,
    {
        let mut a = self.attempts();
        loop {
            let e = match call().await {
                Ok(v) => return Ok(v),
                Err(e) if !e.is_retryable() => return Err(e),
                Err(e) => e,
            };
            match look().await {
                Effect::Done(entry) => {
                    tracing::debug!(op, %path, error = %e, "failed, but took effect");
                    return Ok(entry);
                }
                Effect::Unknown => return Err(e),
                Effect::NotYet => {
                    if !self.pause(&mut a, &e, op, path).await {
                        return Err(e);
                    }
                }
            }
        }
    }

    async fn stat_retried(&self, path: &RemotePath) -> Result<Entry> {
        self.retry("stat", path, |_| self.inner.stat(path)).await
    }
}

/// Whether `got` holds the content `want` describes (size, and hash where both list one).
fn same_content(want: &Entry, got: &Entry) -> bool {
    got.is_file() && want.size == got.size && want.hashes.matches(&got.hashes) != Some(false)
}

/// Waits for the first item of `s`: a temporary error before it fails the call (which may then
/// be started again); anything else is put back in front of the stream.
async fn started<T: Send + 'static>(
    mut s: BoxStream<'static, Result<T>>,
) -> Result<BoxStream<'static, Result<T>>> {
    match s.next().await {
        None => Ok(futures::stream::empty().boxed()),
        Some(Err(e)) if e.is_retryable() => Err(e),
        Some(first) => Ok(Box::pin(Prepend {
            first: Some(first),
            rest: s,
        })),
    }
}

/// `first`, then the items of `rest`, which pass through untouched.
struct Prepend<T> {
    first: Option<T>,
    rest: BoxStream<'static, T>,
}

// Nothing of `Prepend` is ever pinned in place: `first` is moved out, `rest` is boxed.
impl<T> Unpin for Prepend<T> {}

impl<T> Stream for Prepend<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        match self.first.take() {
            Some(first) => Poll::Ready(Some(first)),
            None => self.rest.as_mut().poll_next(cx),
        }
    }
}

#[async_trait]
impl Remote for Retrying {
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
        self.retry("list", dir, |_| async move {
            started(self.inner.list(dir).await?).await
        })
        .await
    }
    async fn list_recursive(&self, dir: &RemotePath) -> Result<EntryStream> {
        self.retry("list", dir, |_| async move {
            started(self.inner.list_recursive(dir).await?).await
        })
        .await
    }
    async fn stat(&self, path: &RemotePath) -> Result<Entry> {
        self.stat_retried(path).await
    }
    async fn read(&self, path: &RemotePath, range: Option<Range<u64>>) -> Result<ByteStream> {
        self.retry("read", path, |_| {
            let range = range.clone();
            async move { started(self.inner.read(path, range).await?).await }
        })
        .await
    }
    async fn write(&self, path: &RemotePath, body: ByteStream, meta: WriteMeta) -> Result<Entry> {
        self.inner.write(path, body, meta).await
    }
    async fn write_at(
        &self,
        path: &RemotePath,
        offset: u64,
        body: ByteStream,
        total: Option<u64>,
    ) -> Result<u64> {
        // A body cannot be replayed: the transfer's own retries resume it.
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
    async fn write_from_file(
        &self,
        path: &RemotePath,
        local: &Path,
        meta: WriteMeta,
    ) -> Result<Entry> {
        self.inner.write_from_file(path, local, meta).await
    }
    async fn mkdir(&self, dir: &RemotePath) -> Result<()> {
        self.retry("mkdir", dir, |_| self.inner.mkdir(dir)).await
    }
    async fn remove_file(&self, path: &RemotePath) -> Result<()> {
        self.remove("remove_file", path, || self.inner.remove_file(path))
            .await
    }
    async fn remove_dir(&self, dir: &RemotePath) -> Result<()> {
        self.remove("remove_dir", dir, || self.inner.remove_dir(dir))
            .await
    }
    async fn purge(&self, dir: &RemotePath) -> Result<()> {
        self.remove("purge", dir, || self.inner.purge(dir)).await
    }
    async fn copy(&self, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
        let look = || async move {
            let (Ok(src), target) = (self.stat_retried(from).await, self.stat_retried(to).await)
            else {
                return Effect::Unknown;
            };
            match target {
                // Only a hash proves the copy happened: a target of the same size may be the
                // old file, and a caller (a move) would then remove the only copy. Copying again
                // is safe, since a copy replaces its target.
                Ok(dst) if dst.is_file() && src.hashes.matches(&dst.hashes) == Some(true) => {
                    Effect::Done(dst)
                }
                // A copy replaces the target: a missing or different one means it did not
                // happen yet.
                Ok(_) => Effect::NotYet,
                Err(e) if e.kind() == ErrorKind::NotFound => Effect::NotYet,
                Err(_) => Effect::Unknown,
            }
        };
        self.guarded("copy", to, || self.inner.copy(from, to), look)
            .await
    }
    async fn rename(&self, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
        // What the target must look like if the move happened.
        let want = self
            .stat_retried(from)
            .await
            .map_err(|e| e.with_operation("rename"))?;
        let want = &want;
        let look = || async move {
            match self.stat_retried(from).await {
                Ok(_) => return Effect::NotYet,
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(_) => return Effect::Unknown,
            }
            match self.stat_retried(to).await {
                Ok(dst) if same_content(want, &dst) => Effect::Done(dst),
                _ => Effect::Unknown,
            }
        };
        self.guarded("rename", to, || self.inner.rename(from, to), look)
            .await
    }
    async fn set_modtime(&self, path: &RemotePath, modtime: OffsetDateTime) -> Result<()> {
        self.retry("set_modtime", path, |_| {
            self.inner.set_modtime(path, modtime)
        })
        .await
    }
    async fn hash(&self, path: &RemotePath, kind: HashKind) -> Result<String> {
        self.retry("hash", path, |_| self.inner.hash(path, kind))
            .await
    }
    async fn cleanup(&self) -> Result<()> {
        self.retry("cleanup", &RemotePath::root(), |_| self.inner.cleanup())
            .await
    }
    async fn usage(&self) -> Result<Usage> {
        self.retry("usage", &RemotePath::root(), |_| self.inner.usage())
            .await
    }
    fn local_path(&self, path: &RemotePath) -> Option<PathBuf> {
        self.inner.local_path(path)
    }
}

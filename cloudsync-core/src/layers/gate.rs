//! [`Throttled`] (calls per second, rclone's `--tpslimit`) and [`Limited`] (calls in flight):
//! wrappers that make a call wait at a gate before it reaches the wrapped remote.
//!
//! A listing or a download passes the gate once, when it starts; [`Limited`] keeps its slot
//! until the stream ends or is dropped. Calls a backend makes inside one of ours (the pages of
//! a listing, the parts of an upload) are not seen here: the limit is on our calls, which
//! rclone's `--tpslimit` approximates as HTTP transactions.

use std::future::Future;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use futures::Stream;
use futures::stream::BoxStream;
use time::OffsetDateTime;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::entry::{Entry, Usage, WriteMeta};
use crate::error::{Error, ErrorKind, Result};
use crate::hash::HashKind;
use crate::location::Location;
use crate::path::RemotePath;
use crate::remote::{ByteStream, Capabilities, EntryStream, Remote};

/// Something a call waits at; what it returns is held for the call's duration.
trait Gate: Send + Sync + std::fmt::Debug + 'static {
    type Pass: Send + Unpin + 'static;
    fn enter(&self) -> impl Future<Output = Self::Pass> + Send;
}

/// A token bucket: at most `tps` calls per second on average, and `burst` at once after a
/// quiet spell (rclone's `--tpslimit` and `--tpslimit-burst`).
///
/// One `Throttled` may wrap several remotes; they then share its budget, as rclone's limit is
/// shared by every remote of a run.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> cloudsync_core::Result<()> {
/// use cloudsync_core::{memory, Remote, RemotePath, Throttled};
/// let throttle = Throttled::new(10.0, 1)?;
/// let remote = throttle.wrap(memory());
/// remote.mkdir(&RemotePath::new("a")?).await?;
/// assert!(Throttled::new(0.0, 1).is_err(), "a rate must be positive");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Throttled {
    tps: f64,
    burst: f64,
    bucket: Arc<Mutex<Bucket>>,
}

#[derive(Debug)]
struct Bucket {
    /// Tokens left; negative when calls are already queued for future tokens.
    tokens: f64,
    last: Instant,
}

impl Throttled {
    /// A bucket refilled with `tps` tokens a second, holding at most `burst` (at least 1); it
    /// starts full. A rate that is not a positive number is [`ErrorKind::ConfigInvalid`].
    pub fn new(tps: f64, burst: u32) -> Result<Self> {
        if !(tps.is_finite() && tps > 0.0) {
            return Err(Error::new(
                ErrorKind::ConfigInvalid,
                format!("transactions per second must be a positive number, not {tps}"),
            ));
        }
        let burst = f64::from(burst.max(1));
        Ok(Throttled {
            tps,
            burst,
            bucket: Arc::new(Mutex::new(Bucket {
                tokens: burst,
                last: Instant::now(),
            })),
        })
    }

    /// Wraps `inner`: each of its calls first takes a token.
    pub fn wrap(&self, inner: Arc<dyn Remote>) -> Arc<dyn Remote> {
        Arc::new(Gated {
            inner,
            gate: self.clone(),
        })
    }

    /// Takes a token, waiting for it when the bucket is empty. A call that gives up while
    /// waiting still spends its token, which keeps the arithmetic simple and the rate honest.
    pub async fn acquire(&self) {
        let wait = {
            let mut b = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let earned = now.saturating_duration_since(b.last).as_secs_f64() * self.tps;
            b.tokens = (b.tokens + earned).min(self.burst) - 1.0;
            b.last = now;
            (b.tokens < 0.0)
                .then(|| Duration::try_from_secs_f64(-b.tokens / self.tps).unwrap_or(Duration::MAX))
        };
        if let Some(wait) = wait {
            tracing::trace!(?wait, "waiting for a transaction token");
            tokio::time::sleep(wait).await;
        }
    }
}

impl Gate for Throttled {
    type Pass = ();
    fn enter(&self) -> impl Future<Output = ()> + Send {
        self.acquire()
    }
}

/// At most `n` calls in flight on the wrapped remote; the others wait their turn.
///
/// A listing or download holds its slot until its stream ends or is dropped, so a task that
/// reads from a remote while writing to the same remote needs `n >= 2`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> cloudsync_core::Result<()> {
/// use cloudsync_core::{memory, Limited, Remote, RemotePath};
/// let remote = Limited::wrap(memory(), 4);
/// remote.mkdir(&RemotePath::new("a")?).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Limited {
    slots: Arc<Semaphore>,
}

impl Limited {
    /// Wraps `inner` with `n` slots (at least 1).
    pub fn wrap(inner: Arc<dyn Remote>, n: usize) -> Arc<dyn Remote> {
        let n = n.clamp(1, Semaphore::MAX_PERMITS);
        Arc::new(Gated {
            inner,
            gate: Limited {
                slots: Arc::new(Semaphore::new(n)),
            },
        })
    }
}

impl Gate for Limited {
    /// `None` only if the semaphore were closed, which it never is.
    type Pass = Option<OwnedSemaphorePermit>;
    fn enter(&self) -> impl Future<Output = Self::Pass> + Send {
        let slots = self.slots.clone();
        async move { slots.acquire_owned().await.ok() }
    }
}

#[derive(Debug)]
struct Gated<G> {
    inner: Arc<dyn Remote>,
    gate: G,
}

/// Keeps `pass` until `s` ends or is dropped.
fn holding<T: Send + 'static, P: Send + Unpin + 'static>(
    s: BoxStream<'static, T>,
    pass: P,
) -> BoxStream<'static, T> {
    Box::pin(Holding {
        inner: s,
        pass: Some(pass),
    })
}

/// A stream that holds a pass until it ends; its items pass through untouched.
struct Holding<T, P> {
    inner: BoxStream<'static, T>,
    pass: Option<P>,
}

impl<T, P: Unpin> Stream for Holding<T, P> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let item = std::task::ready!(self.inner.as_mut().poll_next(cx));
        if item.is_none() {
            self.pass = None;
        }
        Poll::Ready(item)
    }
}

#[async_trait]
impl<G: Gate> Remote for Gated<G> {
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
        let pass = self.gate.enter().await;
        Ok(holding(self.inner.list(dir).await?, pass))
    }
    async fn list_recursive(&self, dir: &RemotePath) -> Result<EntryStream> {
        let pass = self.gate.enter().await;
        Ok(holding(self.inner.list_recursive(dir).await?, pass))
    }
    async fn stat(&self, path: &RemotePath) -> Result<Entry> {
        let _pass = self.gate.enter().await;
        self.inner.stat(path).await
    }
    async fn read(&self, path: &RemotePath, range: Option<Range<u64>>) -> Result<ByteStream> {
        let pass = self.gate.enter().await;
        Ok(holding(self.inner.read(path, range).await?, pass))
    }
    async fn write(&self, path: &RemotePath, body: ByteStream, meta: WriteMeta) -> Result<Entry> {
        let _pass = self.gate.enter().await;
        self.inner.write(path, body, meta).await
    }
    async fn write_at(
        &self,
        path: &RemotePath,
        offset: u64,
        body: ByteStream,
        total: Option<u64>,
    ) -> Result<u64> {
        let _pass = self.gate.enter().await;
        self.inner.write_at(path, offset, body, total).await
    }
    async fn session_start(
        &self,
        path: &RemotePath,
        size: u64,
        meta: &WriteMeta,
    ) -> Result<crate::resume_state::SessionToken> {
        let _pass = self.gate.enter().await;
        self.inner.session_start(path, size, meta).await
    }
    async fn session_offset(&self, token: &crate::resume_state::SessionToken) -> Result<u64> {
        let _pass = self.gate.enter().await;
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
        let _pass = self.gate.enter().await;
        self.inner
            .session_write(token, path, offset, body, meta)
            .await
    }
    async fn session_cancel(&self, token: &crate::resume_state::SessionToken) -> Result<()> {
        let _pass = self.gate.enter().await;
        self.inner.session_cancel(token).await
    }
    async fn write_from_file(
        &self,
        path: &RemotePath,
        local: &Path,
        meta: WriteMeta,
    ) -> Result<Entry> {
        let _pass = self.gate.enter().await;
        self.inner.write_from_file(path, local, meta).await
    }
    async fn mkdir(&self, dir: &RemotePath) -> Result<()> {
        let _pass = self.gate.enter().await;
        self.inner.mkdir(dir).await
    }
    async fn remove_file(&self, path: &RemotePath) -> Result<()> {
        let _pass = self.gate.enter().await;
        self.inner.remove_file(path).await
    }
    async fn remove_dir(&self, dir: &RemotePath) -> Result<()> {
        let _pass = self.gate.enter().await;
        self.inner.remove_dir(dir).await
    }
    async fn copy(&self, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
        let _pass = self.gate.enter().await;
        self.inner.copy(from, to).await
    }
    async fn rename(&self, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
        let _pass = self.gate.enter().await;
        self.inner.rename(from, to).await
    }
    async fn set_modtime(&self, path: &RemotePath, modtime: OffsetDateTime) -> Result<()> {
        let _pass = self.gate.enter().await;
        self.inner.set_modtime(path, modtime).await
    }
    async fn hash(&self, path: &RemotePath, kind: HashKind) -> Result<String> {
        let _pass = self.gate.enter().await;
        self.inner.hash(path, kind).await
    }
    async fn purge(&self, dir: &RemotePath) -> Result<()> {
        let _pass = self.gate.enter().await;
        self.inner.purge(dir).await
    }
    async fn cleanup(&self) -> Result<()> {
        let _pass = self.gate.enter().await;
        self.inner.cleanup().await
    }
    async fn usage(&self) -> Result<Usage> {
        let _pass = self.gate.enter().await;
        self.inner.usage().await
    }
    fn local_path(&self, path: &RemotePath) -> Option<PathBuf> {
        self.inner.local_path(path)
    }
}

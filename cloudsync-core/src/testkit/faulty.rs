//! [`Faulty`]: a wrapper that makes chosen operations of any remote fail, to prove that errors
//! block deletions, retries converge and interrupted writes leave nothing behind.

use std::ops::Range;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::StreamExt;
use time::OffsetDateTime;

use crate::entry::{Entry, WriteMeta};
use crate::error::{Error, ErrorKind, Result};
use crate::path::RemotePath;
use crate::remote::{ByteStream, Capabilities, EntryStream, Remote};

/// An operation [`Faulty`] can break.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultOp {
    /// `list` of a directory.
    List,
    /// `read` of a file (fails when the read starts).
    Read,
    /// `write` of a file: the body is cut after half of it was sent.
    Write,
    /// `remove_file`.
    Remove,
    /// `stat`.
    Stat,
}

#[derive(Debug, Clone)]
struct Fault {
    op: FaultOp,
    path: RemotePath,
    remaining: u32,
    kind: ErrorKind,
}

/// Wraps a remote and injects failures.
///
/// ```
/// use cloudsync_core::testkit::{Faulty, FaultOp, MemFs};
/// use cloudsync_core::{ErrorKind, RemotePath};
/// let faulty = Faulty::new(std::sync::Arc::new(MemFs::new("memfs://x")));
/// faulty.fail(FaultOp::Write, RemotePath::new("a.txt")?, 2, ErrorKind::Transient);
/// # Ok::<(), cloudsync_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Faulty {
    inner: Arc<dyn Remote>,
    faults: Arc<Mutex<Vec<Fault>>>,
    hits: Arc<Mutex<Vec<(FaultOp, RemotePath)>>>,
}

impl Faulty {
    /// Wraps `inner` with no faults yet.
    pub fn new(inner: Arc<dyn Remote>) -> Self {
        Faulty {
            inner,
            faults: Arc::default(),
            hits: Arc::default(),
        }
    }

    /// Makes the next `times` calls of `op` on `path` fail with `kind` (`u32::MAX`: always).
    pub fn fail(&self, op: FaultOp, path: RemotePath, times: u32, kind: ErrorKind) {
        self.faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Fault {
                op,
                path,
                remaining: times,
                kind,
            });
    }

    /// The faults that fired, in order.
    pub fn hits(&self) -> Vec<(FaultOp, RemotePath)> {
        self.hits.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn check(&self, op: FaultOp, path: &RemotePath) -> Option<Error> {
        let mut faults = self.faults.lock().unwrap_or_else(|p| p.into_inner());
        let f = faults
            .iter_mut()
            .find(|f| f.op == op && &f.path == path && f.remaining > 0)?;
        if f.remaining != u32::MAX {
            f.remaining -= 1;
        }
        let kind = f.kind;
        drop(faults);
        self.hits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((op, path.clone()));
        Some(Error::new(kind, format!("injected {op:?} fault")).with_path(path))
    }
}

#[async_trait]
impl Remote for Faulty {
    fn describe(&self) -> String {
        format!("faulty+{}", self.inner.describe())
    }
    fn capabilities(&self) -> &Capabilities {
        self.inner.capabilities()
    }
    async fn list(&self, dir: &RemotePath) -> Result<EntryStream> {
        if let Some(e) = self.check(FaultOp::List, dir) {
            return Err(e);
        }
        self.inner.list(dir).await
    }
    async fn stat(&self, path: &RemotePath) -> Result<Entry> {
        if let Some(e) = self.check(FaultOp::Stat, path) {
            return Err(e);
        }
        self.inner.stat(path).await
    }
    async fn read(&self, path: &RemotePath, range: Option<Range<u64>>) -> Result<ByteStream> {
        if let Some(e) = self.check(FaultOp::Read, path) {
            return Err(e);
        }
        self.inner.read(path, range).await
    }
    async fn write_at(
        &self,
        path: &RemotePath,
        offset: u64,
        body: ByteStream,
        total: Option<u64>,
    ) -> Result<u64> {
        if let Some(e) = self.check(FaultOp::Write, path) {
            return Err(e);
        }
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
        if let Some(e) = self.check(FaultOp::Write, path) {
            return Err(e);
        }
        self.inner
            .session_write(token, path, offset, body, meta)
            .await
    }
    async fn session_cancel(&self, token: &crate::resume_state::SessionToken) -> Result<()> {
        self.inner.session_cancel(token).await
    }
    async fn write(&self, path: &RemotePath, body: ByteStream, meta: WriteMeta) -> Result<Entry> {
        let Some(err) = self.check(FaultOp::Write, path) else {
            return self.inner.write(path, body, meta).await;
        };
        // Pass on some of the body, then fail mid-stream: the inner write must leave nothing.
        let half = meta.size.unwrap_or(0) / 2;
        let mut sent = 0u64;
        let mut err = Some(err);
        let cut = body
            .flat_map(move |chunk| {
                let out: Vec<Result<bytes::Bytes>> = match chunk {
                    Ok(c) if sent + c.len() as u64 <= half || err.is_none() => {
                        sent += c.len() as u64;
                        vec![Ok(c)]
                    }
                    Ok(c) => {
                        let keep = usize::try_from(half.saturating_sub(sent)).unwrap_or(0);
                        sent = half;
                        let mut v = vec![Ok(c.slice(..keep.min(c.len())))];
                        if let Some(e) = err.take() {
                            v.push(Err(e));
                        }
                        v
                    }
                    Err(e) => vec![Err(e)],
                };
                futures::stream::iter(out)
            })
            .take_while({
                let mut failed = false;
                move |r| {
                    let go = !failed;
                    failed |= r.is_err();
                    futures::future::ready(go)
                }
            })
            .boxed();
        self.inner.write(path, cut, meta).await
    }
    async fn mkdir(&self, dir: &RemotePath) -> Result<()> {
        self.inner.mkdir(dir).await
    }
    async fn remove_file(&self, path: &RemotePath) -> Result<()> {
        if let Some(e) = self.check(FaultOp::Remove, path) {
            return Err(e);
        }
        self.inner.remove_file(path).await
    }
    async fn remove_dir(&self, dir: &RemotePath) -> Result<()> {
        self.inner.remove_dir(dir).await
    }
    async fn copy(&self, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
        self.inner.copy(from, to).await
    }
    async fn rename(&self, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
        self.inner.rename(from, to).await
    }
    async fn set_modtime(&self, path: &RemotePath, t: OffsetDateTime) -> Result<()> {
        self.inner.set_modtime(path, t).await
    }
    async fn purge(&self, dir: &RemotePath) -> Result<()> {
        self.inner.purge(dir).await
    }
}

//! The one verified file transfer every operation uses (sync, copy, move, `copy_files`,
//! `copy_file`, ingest and resync): a server-side copy or move when source and destination are
//! views of one remote that can do it, otherwise a stream (or a local file handed over) from
//! source to destination, hashed and counted in flight; then the result is checked against the
//! source and what was sent, and its modtime set.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;

use crate::entry::{Entry, WriteMeta};
use crate::error::{Error, ErrorKind, Result};
use crate::path::RemotePath;
use crate::plan::equal::modtime_window;
use crate::remote::Remote;
use crate::report::{Event, EventSink};
use crate::retry::RetryPolicy;

use super::cutoff::Cutoff;
use super::options::SyncOptions;
use super::resume::PartsSeen;
use super::verify::BodyCheck;

/// Emit a progress event at most every this many bytes.
const PROGRESS_STEP: u64 = 1 << 20;

/// Transfers files from one remote to another; cheap to clone (one per running task).
#[derive(Clone)]
pub(crate) struct Transferer {
    pub(crate) src: Arc<dyn Remote>,
    pub(crate) dst: Arc<dyn Remote>,
    /// Low-level retries of one transfer.
    retry: RetryPolicy,
    /// Where progress events go.
    events: Option<EventSink>,
    /// Modtimes within this window are equal (`None`: the destination keeps no modtimes).
    window: Option<Duration>,
    /// Set when source and destination are directories of one remote that can copy or move
    /// on the server.
    server_side: Option<ServerSide>,
    /// The run's limits (bytes are counted in [`Transferer::count`]).
    cutoff: Option<Arc<Cutoff>>,
    /// Files of at least this many bytes go through a resumable partial file
    /// ([`SyncOptions::resume_above`]).
    pub(super) resume_above: Option<u64>,
    /// Bytes of finished transfers that were not sent again thanks to a resume.
    pub(super) resumed: Arc<AtomicU64>,
    /// Partial files seen per destination directory (see [`super::resume`]).
    pub(super) parts_seen: PartsSeen,
    /// Unfinished upload sessions ([`SyncOptions::sessions`]).
    pub(super) sessions: crate::resume_state::SessionStore,
    /// The source is deleted after each transfer: writes must be durable when they return
    /// (otherwise they may become durable lazily, see [`WriteMeta::lazy_durability`]).
    moving: bool,
}

impl std::fmt::Debug for Transferer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transferer")
            .field("src", &self.src)
            .field("dst", &self.dst)
            .field("window", &self.window)
            .field("server_side", &self.server_side)
            .finish_non_exhaustive()
    }
}

/// Source and destination are two directories of `base`.
#[derive(Debug, Clone)]
pub(crate) struct ServerSide {
    base: Arc<dyn Remote>,
    src_dir: RemotePath,
    dst_dir: RemotePath,
    /// Move (rename) instead of copy.
    rename: bool,
}

impl ServerSide {
    /// Whether `src` and `dst` are views of one remote that can copy (or, for a move, rename)
    /// on the server.
    pub(crate) fn detect(
        src: &Arc<dyn Remote>,
        dst: &Arc<dyn Remote>,
        moving: bool,
    ) -> Option<Self> {
        let split = |r: &Arc<dyn Remote>| {
            r.prefixed_view()
                .unwrap_or_else(|| (r.clone(), RemotePath::root()))
        };
        let (a, src_dir) = split(src);
        let (b, dst_dir) = split(dst);
        if !std::ptr::addr_eq(Arc::as_ptr(&a), Arc::as_ptr(&b)) {
            return None;
        }
        let caps = a.capabilities();
        let rename = moving && caps.rename;
        (rename || caps.copy).then_some(ServerSide {
            base: a,
            src_dir,
            dst_dir,
            rename,
        })
    }

    /// Copies or moves one file from `src` to `dst` (paths below the two directories);
    /// returns the new entry and whether the source is gone.
    async fn run(&self, src: &RemotePath, dst: &RemotePath) -> Result<(Entry, bool)> {
        let from = self.src_dir.join_path(src);
        let to = self.dst_dir.join_path(dst);
        if let Some(parent) = to.parent() {
            self.base.mkdir(&parent).await?;
        }
        let mut e = if self.rename {
            self.base.rename(&from, &to).await?
        } else {
            self.base.copy(&from, &to).await?
        };
        e.path = dst.clone();
        Ok((e, self.rename))
    }
}

impl Transferer {
    /// A transferer from `src` to `dst` with the retries (`low_level_retries`,
    /// `retry_backoff`), events and modtime window (`compare.modify_window`) of `opts`.
    /// `moving`: a server-side transfer may rename (the source goes away). `cutoff`: the
    /// run's limits, whose bytes are counted as they flow.
    pub(crate) fn new(
        src: Arc<dyn Remote>,
        dst: Arc<dyn Remote>,
        opts: &SyncOptions,
        moving: bool,
        cutoff: Option<Arc<Cutoff>>,
    ) -> Self {
        Transferer {
            retry: RetryPolicy {
                max_retries: opts.low_level_retries,
                base: opts.retry_backoff,
                ..Default::default()
            },
            events: opts.events.clone(),
            window: modtime_window(
                src.capabilities(),
                dst.capabilities(),
                opts.compare.modify_window,
            ),
            server_side: ServerSide::detect(&src, &dst, moving),
            moving,
            src,
            dst,
            cutoff,
            resume_above: opts.resume_above,
            resumed: Arc::default(),
            parts_seen: PartsSeen::default(),
            sessions: opts.sessions.clone(),
        }
    }

    /// What a write of `src` tells the destination.
    pub(super) fn write_meta(&self, src: &Entry) -> WriteMeta {
        WriteMeta {
            lazy_durability: !self.moving,
            ..WriteMeta::from_entry(src)
        }
    }

    /// Bytes of finished transfers so far that were already at the destination from an
    /// interrupted attempt and not sent again.
    pub(crate) fn bytes_resumed(&self) -> u64 {
        self.resumed.load(Ordering::Relaxed)
    }

    pub(super) fn emit(&self, event: Event) {
        if let Some(sink) = &self.events {
            sink(&event);
        }
    }

    /// Copies `src` (a source entry) to `to` on the destination (its own path, or the name
    /// the destination has for it in another Unicode form), with low-level retries, and
    /// verifies the result. Events name the file `to`.
    pub(crate) async fn copy_file(&self, src: &Entry, to: &RemotePath) -> Result<Entry> {
        self.transfer(src, to, to).await
    }

    /// [`copy_file`](Self::copy_file) with events that name the file `shown` (a copy to
    /// another name is reported under its source name).
    pub(crate) async fn transfer(
        &self,
        src: &Entry,
        to: &RemotePath,
        shown: &RemotePath,
    ) -> Result<Entry> {
        self.retry
            .run(
                || async {
                    let r = self.copy_once(src, to, shown).await;
                    // A body cut by a hard cutoff may come back as the backend's own error.
                    match self.cutoff.as_ref().and_then(|c| c.aborted()) {
                        Some(kind) if r.is_err() => Err(Cutoff::error(kind).with_path(to)),
                        _ => r,
                    }
                },
                |e, n| {
                    self.emit(Event::Failed {
                        path: shown.clone(),
                        error: format!("{} (low-level retry {n})", e.chain()),
                        will_retry: true,
                    })
                },
            )
            .await
    }

    /// One attempt. Every check either version of this code ever made is here: the body is
    /// counted and hashed in flight (a source that changed fails it, so the atomic write keeps
    /// the destination's previous file), and the written file is discarded when its size, the
    /// hash it reports for the bytes sent, or a hash the source listed disagrees.
    async fn copy_once(&self, src: &Entry, path: &RemotePath, shown: &RemotePath) -> Result<Entry> {
        let meta = self.write_meta(src);
        self.emit(Event::TransferStarted {
            path: shown.clone(),
            size: src.size,
        });
        if let Some(ss) = &self.server_side {
            let (written, moved) = ss.run(&src.path, path).await?;
            if moved {
                // The source is gone: nothing to discard if the check fails, so only check.
                return self.check_moved(src, path, written).await;
            }
            return self.verify(src, path, written).await;
        }
        if self.uses_sessions(src)
            && let Some(done) = self.copy_session(src, path, shown).await?
        {
            return Ok(done);
        }
        let counted = self.cutoff.as_ref().is_some_and(|c| c.counts_bytes());
        let local_src = self.src.local_path(&src.path).filter(|_| !counted);
        if self.resumes(src, local_src.is_some())
            && let Some(done) = self.copy_resumable(src, path, shown).await?
        {
            return Ok(done);
        }
        let written = match local_src {
            Some(local) => self.dst.write_from_file(path, &local, meta).await?,
            None => {
                let check = BodyCheck::new(src, &self.dst.capabilities().hashes);
                let body = self.src.read(&src.path, None).await?;
                let body = check.wrap(self.count(body, shown.clone(), src.size, 0));
                let mut entry = self.dst.write(path, body, meta).await?;
                let (_, sent) = check.finish();
                if sent.matches(&entry.hashes) == Some(false) {
                    self.discard(path).await;
                    return Err(Error::new(
                        ErrorKind::Protocol,
                        "corrupted on transfer: the destination's hash is not that of the bytes sent",
                    )
                    .with_path(path)
                    .set_temporary(true));
                }
                entry.hashes.merge(&sent);
                entry
            }
        };
        self.verify(src, path, written).await
    }

    /// Wraps a body to count bytes and report progress; `start`: bytes of the file already
    /// at the destination (a resumed transfer), where progress starts.
    pub(super) fn count(
        &self,
        body: crate::remote::ByteStream,
        path: RemotePath,
        size: u64,
        start: u64,
    ) -> crate::remote::ByteStream {
        let events = self.events.clone();
        let cutoff = self.cutoff.clone();
        let (mut last, mut done) = (start, start);
        body.map(move |chunk| {
            if let Ok(c) = &chunk {
                if let Some(Err(e)) = cutoff.as_ref().map(|cut| cut.sent(c.len() as u64)) {
                    return Err(e.with_path(&path));
                }
                done += c.len() as u64;
                if let Some(sink) = &events {
                    if done - last >= PROGRESS_STEP || done == size {
                        last = done;
                        sink(&Event::Progress {
                            path: path.clone(),
                            bytes: done,
                            size,
                        });
                    }
                }
            }
            chunk
        })
        .boxed()
    }

    /// Removes a destination file that failed verification (best effort).
    pub(super) async fn discard(&self, path: &RemotePath) {
        if let Err(e) = self.dst.remove_file(path).await
            && e.kind() != ErrorKind::NotFound
        {
            tracing::warn!(%path, error = %e, "could not remove a corrupt transfer");
        }
    }

    /// Checks size and hashes of what was written, then sets its modtime where needed.
    pub(super) async fn verify(
        &self,
        src: &Entry,
        path: &RemotePath,
        mut written: Entry,
    ) -> Result<Entry> {
        if written.size != src.size {
            self.discard(path).await;
            return Err(Error::new(
                ErrorKind::Protocol,
                format!(
                    "corrupted on transfer: sizes differ (source {}, destination {})",
                    src.size, written.size
                ),
            )
            .with_path(path)
            .set_temporary(true));
        }
        if written.hashes.matches(&src.hashes) == Some(false) {
            self.discard(path).await;
            return Err(
                Error::new(ErrorKind::Protocol, "corrupted on transfer: hashes differ")
                    .with_path(path)
                    .set_temporary(true),
            );
        }
        self.fix_modtime(src, path, &mut written).await?;
        Ok(written)
    }

    /// Checks a file moved on the server (it can't be discarded: it is the only copy).
    async fn check_moved(&self, src: &Entry, path: &RemotePath, mut moved: Entry) -> Result<Entry> {
        if moved.size != src.size {
            return Err(Error::new(
                ErrorKind::Protocol,
                format!(
                    "server-side move changed the size (source {}, destination {})",
                    src.size, moved.size
                ),
            )
            .with_path(&src.path));
        }
        self.fix_modtime(src, path, &mut moved).await?;
        Ok(moved)
    }

    /// Gives the destination file `path` (`written`) the source's modtime if the write did
    /// not already.
    pub(crate) async fn fix_modtime(
        &self,
        src: &Entry,
        path: &RemotePath,
        written: &mut Entry,
    ) -> Result<()> {
        let (Some(window), Some(want)) = (self.window, src.modtime) else {
            return Ok(());
        };
        let ok = written
            .modtime
            .is_some_and(|got| (got - want).abs() <= window);
        if !ok && self.dst.capabilities().set_modtime {
            self.dst.set_modtime(path, want).await?;
            written.modtime = Some(want);
        }
        Ok(())
    }
}

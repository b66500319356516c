//! Run limits: `--max-transfer` (with `--cutoff-mode`) and `--max-duration`, as rclone has
//! them. A limit that stops the run is recorded as an error of its own kind
//! ([`ErrorKind::MaxTransferReached`], [`ErrorKind::MaxDurationReached`]), so the run deletes
//! nothing (the delete phase runs only after an error-free run).
//!
//! A [`CancelToken`] stops a run the same way, always at once (as a hard cutoff), recorded
//! as [`ErrorKind::Cancelled`].
//!
//! Bytes are counted as transfer bodies flow (a local source is then streamed rather than
//! copied by the kernel, so that it can be counted); server-side copies and moves send no
//! bytes and are not counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::watch;
use tokio::time::Instant;

use super::options::{CancelToken, CutoffMode, SyncOptions};
use crate::error::{Error, ErrorKind, Result};

/// The limits of one run and what was used of them.
#[derive(Debug)]
pub(crate) struct Cutoff {
    max_transfer: Option<u64>,
    mode: CutoffMode,
    deadline: Option<Instant>,
    /// Bytes sent through transfer bodies.
    sent: AtomicU64,
    /// Sizes of the transfers started (the cautious mode's reservation).
    started: AtomicU64,
    /// Which limit stopped the run, once one has.
    stop: watch::Sender<Option<ErrorKind>>,
    /// The stop was recorded as the run's error.
    recorded: AtomicBool,
    /// Cancels the run from outside.
    cancel: Option<CancelToken>,
}

impl Cutoff {
    /// The limits of `opts`; `None` when it sets none.
    pub(crate) fn new(opts: &SyncOptions) -> Option<Arc<Self>> {
        if opts.max_transfer.is_none() && opts.max_duration.is_none() && opts.cancel.is_none() {
            return None;
        }
        Some(Arc::new(Cutoff {
            max_transfer: opts.max_transfer,
            mode: opts.cutoff_mode,
            deadline: opts
                .max_duration
                .and_then(|d| Instant::now().checked_add(d)),
            sent: AtomicU64::new(0),
            started: AtomicU64::new(0),
            stop: watch::Sender::new(None),
            recorded: AtomicBool::new(false),
            cancel: opts.cancel.clone(),
        }))
    }

    /// The error a stop is recorded as.
    pub(crate) fn error(kind: ErrorKind) -> Error {
        let message = match kind {
            ErrorKind::Cancelled => "cancelled: stopped, nothing deleted",
            ErrorKind::MaxTransferReached => {
                "max transfer limit reached as set by --max-transfer: stopped, nothing deleted"
            }
            _ => "max duration reached as set by --max-duration: stopped, nothing deleted",
        };
        Error::new(kind, message)
    }

    /// Whether bodies must be counted (local sources are then streamed).
    pub(crate) fn counts_bytes(&self) -> bool {
        self.max_transfer.is_some()
    }

    /// Which limit stopped the run, if one did (a cancelled token counts from the moment
    /// it is cancelled).
    pub(crate) fn stopped(&self) -> Option<ErrorKind> {
        if self.cancel.as_ref().is_some_and(CancelToken::is_cancelled) {
            self.trigger(ErrorKind::Cancelled);
        }
        *self.stop.borrow()
    }

    /// Which limit stopped the run, if one did and running transfers must stop too.
    pub(crate) fn aborted(&self) -> Option<ErrorKind> {
        self.stopped()
            .filter(|k| self.mode == CutoffMode::Hard || *k == ErrorKind::Cancelled)
    }

    /// Resolves when the run is cancelled from outside (never without a token).
    pub(crate) async fn cancelled(&self) {
        match &self.cancel {
            Some(c) => {
                c.cancelled().await;
                self.trigger(ErrorKind::Cancelled);
            }
            None => std::future::pending().await,
        }
    }

    /// The stop, the first time it is asked for (to record it once).
    pub(crate) fn take_record(&self) -> Option<ErrorKind> {
        let kind = self.stopped()?;
        (!self.recorded.swap(true, Ordering::SeqCst)).then_some(kind)
    }

    fn trigger(&self, kind: ErrorKind) {
        let first = self.stop.send_if_modified(|s| {
            let first = s.is_none();
            if first {
                *s = Some(kind);
            }
            first
        });
        if first {
            tracing::info!(limit = %kind, mode = ?self.mode, "stopping the run");
        }
    }

    /// Whether a transfer of `size` bytes may start now; the first refusal stops the run.
    pub(crate) fn may_start(&self, size: u64) -> bool {
        if self.stopped().is_some() {
            return false;
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            self.trigger(ErrorKind::MaxDurationReached);
            return false;
        }
        if let Some(max) = self.max_transfer {
            let over = match self.mode {
                CutoffMode::Cautious => {
                    self.started.load(Ordering::SeqCst).saturating_add(size) > max
                }
                _ => self.sent.load(Ordering::SeqCst) >= max,
            };
            if over {
                self.trigger(ErrorKind::MaxTransferReached);
                return false;
            }
        }
        self.started.fetch_add(size, Ordering::SeqCst);
        true
    }

    /// Counts `n` bytes about to be sent. Reaching the limit stops the run; in hard mode, a
    /// chunk that would go past it fails instead (so no more than the limit is ever sent).
    pub(crate) fn sent(&self, n: u64) -> Result<()> {
        if let Some(kind) = self.aborted() {
            return Err(Cutoff::error(kind));
        }
        let Some(max) = self.max_transfer else {
            return Ok(());
        };
        let hard = self.mode == CutoffMode::Hard;
        let before = self
            .sent
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |s| {
                let total = s.saturating_add(n);
                (!hard || total <= max).then_some(total)
            });
        match before {
            Ok(before) if before.saturating_add(n) < max => Ok(()),
            Ok(_) => {
                self.trigger(ErrorKind::MaxTransferReached);
                Ok(())
            }
            Err(_) => {
                self.trigger(ErrorKind::MaxTransferReached);
                Err(Cutoff::error(ErrorKind::MaxTransferReached))
            }
        }
    }

    /// Resolves when running transfers must be abandoned: the run was cancelled, or (hard
    /// mode) a limit was reached or the deadline passed. Never resolves otherwise.
    pub(crate) async fn hard_stop(&self) -> ErrorKind {
        if self.mode != CutoffMode::Hard {
            self.cancelled().await;
            return ErrorKind::Cancelled;
        }
        let mut rx = self.stop.subscribe();
        let deadline = async {
            match self.deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = self.cancelled() => ErrorKind::Cancelled,
            r = rx.wait_for(Option::is_some) => {
                let kind = r.ok().and_then(|k| *k);
                kind.unwrap_or(ErrorKind::MaxTransferReached)
            }
            () = deadline => {
                self.trigger(ErrorKind::MaxDurationReached);
                self.stopped().unwrap_or(ErrorKind::MaxDurationReached)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::exec::Engine;
    use crate::plan::Mode;
    use crate::remote::Remote;
    use crate::testkit::MemFs;
    use crate::{BandwidthLimiter, Event, Summary};

    const KIB: usize = 1024;

    /// Five files of 100 KiB (`f0`..`f4`) to sync over a destination holding `extra`.
    async fn setup() -> (Arc<dyn Remote>, Arc<dyn Remote>) {
        let src: Arc<dyn Remote> = Arc::new(MemFs::new("memfs://src"));
        let dst: Arc<dyn Remote> = Arc::new(MemFs::new("memfs://dst"));
        for i in 0..5 {
            let body = "x".repeat(100 * KIB);
            crate::testkit::put_text(&src, &format!("f{i}"), &body, None).await;
        }
        crate::testkit::put_text(&dst, "extra", "keep me", None).await;
        (src, dst)
    }

    /// Runs a sync with one transfer at a time; returns the summary, the files started and
    /// the files now on the destination.
    async fn run(
        src: &Arc<dyn Remote>,
        dst: &Arc<dyn Remote>,
        opts: SyncOptions,
    ) -> (Summary, usize, Vec<String>) {
        let started = Arc::new(Mutex::new(0usize));
        let seen = started.clone();
        let opts = SyncOptions {
            transfers: 1,
            retry_backoff: Duration::from_millis(1),
            events: Some(Arc::new(move |e: &Event| {
                if matches!(e, Event::TransferStarted { .. }) {
                    *seen.lock().unwrap() += 1;
                }
            })),
            ..opts
        };
        let engine = Engine::new(src.clone(), dst.clone(), Mode::Sync, opts);
        let seeds = engine.root_seeds();
        let s = engine.run(seeds).await.unwrap();
        let started = *started.lock().unwrap();
        let tree = crate::testkit::text_tree(dst).await;
        (s, started, tree.into_keys().collect())
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    fn limited(kind: ErrorKind, s: &Summary) {
        assert!(s.errors.iter().any(|e| e.kind == kind), "{:?}", s.errors);
        assert!(
            s.deletes_skipped_due_to_errors,
            "a cut-off run deletes nothing"
        );
        assert_eq!(s.deleted, 0);
    }

    fn max_transfer(mode: CutoffMode) -> SyncOptions {
        SyncOptions {
            max_transfer: Some(250 * KIB as u64),
            cutoff_mode: mode,
            ..Default::default()
        }
    }

    /// 250 KiB allowed, 100 KiB files. Hard: f2 starts and is abandoned at the limit.
    #[tokio::test]
    async fn hard_stops_at_the_byte_limit() {
        let (src, dst) = setup().await;
        let (s, started, tree) = run(&src, &dst, max_transfer(CutoffMode::Hard)).await;
        limited(ErrorKind::MaxTransferReached, &s);
        assert_eq!((s.transferred, started), (2, 3));
        assert_eq!(
            tree,
            names(&["extra", "f0", "f1"]),
            "nothing partial is visible"
        );
    }

    /// Soft: f2 (started under the limit) finishes; nothing starts after it.
    #[tokio::test]
    async fn soft_finishes_what_it_started() {
        let (src, dst) = setup().await;
        let (s, started, tree) = run(&src, &dst, max_transfer(CutoffMode::Soft)).await;
        limited(ErrorKind::MaxTransferReached, &s);
        assert_eq!((s.transferred, started), (3, 3));
        assert_eq!(tree, names(&["extra", "f0", "f1", "f2"]));
    }

    /// Cautious: f2 would pass the limit, so it never starts.
    #[tokio::test]
    async fn cautious_starts_only_what_fits() {
        let (src, dst) = setup().await;
        let (s, started, tree) = run(&src, &dst, max_transfer(CutoffMode::Cautious)).await;
        limited(ErrorKind::MaxTransferReached, &s);
        assert_eq!((s.transferred, started), (2, 2));
        assert_eq!(tree, names(&["extra", "f0", "f1"]));
    }

    /// Under the limit nothing changes: the sync completes and deletes.
    #[tokio::test]
    async fn a_limit_not_reached_changes_nothing() {
        let (src, dst) = setup().await;
        let opts = SyncOptions {
            max_transfer: Some(10 << 20),
            max_duration: Some(Duration::from_secs(3600)),
            ..Default::default()
        };
        let (s, _, tree) = run(&src, &dst, opts).await;
        assert!(s.errors.is_empty(), "{:?}", s.errors);
        assert_eq!((s.transferred, s.deleted), (5, 1));
        assert_eq!(tree, names(&["f0", "f1", "f2", "f3", "f4"]));
    }

    /// Files take 1 s each (100 KiB at 100 KiB/s); the run may last 1.5 s.
    async fn timed(mode: CutoffMode) -> (Summary, usize, Vec<String>) {
        let (src, dst) = setup().await;
        let limiter = BandwidthLimiter::new("100k".parse().unwrap(), None);
        let dst = limiter.wrap(dst);
        let opts = SyncOptions {
            max_duration: Some(Duration::from_millis(1500)),
            cutoff_mode: mode,
            ..Default::default()
        };
        run(&src, &dst, opts).await
    }

    /// Hard: f1, running at 1.5 s, is abandoned.
    #[tokio::test(start_paused = true)]
    async fn max_duration_hard_abandons_running_transfers() {
        let (s, started, tree) = timed(CutoffMode::Hard).await;
        limited(ErrorKind::MaxDurationReached, &s);
        assert_eq!((s.transferred, started), (1, 2));
        assert_eq!(tree, names(&["extra", "f0"]));
    }

    /// Soft: f1 finishes (at 2 s); f2 does not start.
    #[tokio::test(start_paused = true)]
    async fn max_duration_soft_starts_nothing_new() {
        let (s, started, tree) = timed(CutoffMode::Soft).await;
        limited(ErrorKind::MaxDurationReached, &s);
        assert_eq!((s.transferred, started), (2, 2));
        assert_eq!(tree, names(&["extra", "f0", "f1"]));
    }

    /// A cancel at 1.5 s (files take 1 s each): f1, running, is abandoned; nothing more
    /// starts; the run records `Cancelled` and deletes nothing.
    #[tokio::test(start_paused = true)]
    async fn cancel_abandons_running_transfers_and_deletes_nothing() {
        let (src, dst) = setup().await;
        let limiter = BandwidthLimiter::new("100k".parse().unwrap(), None);
        let dst = limiter.wrap(dst);
        let token = CancelToken::new();
        let later = token.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            later.cancel();
        });
        let opts = SyncOptions {
            cancel: Some(token),
            cutoff_mode: CutoffMode::Soft,
            ..Default::default()
        };
        let (s, started, tree) = run(&src, &dst, opts).await;
        limited(ErrorKind::Cancelled, &s);
        assert_eq!((s.transferred, started), (1, 2));
        assert_eq!(tree, names(&["extra", "f0"]));
    }

    /// Cancelled before it starts: nothing is transferred or deleted.
    #[tokio::test]
    async fn cancelled_before_start_changes_nothing() {
        let (src, dst) = setup().await;
        let token = CancelToken::new();
        token.cancel();
        let opts = SyncOptions {
            cancel: Some(token),
            ..Default::default()
        };
        let (s, started, tree) = run(&src, &dst, opts).await;
        // The march stops before it finds anything to delete.
        assert!(
            s.errors.iter().any(|e| e.kind == ErrorKind::Cancelled),
            "{:?}",
            s.errors
        );
        assert_eq!((s.transferred, s.deleted, started), (0, 0, 0));
        assert_eq!(tree, names(&["extra"]));
    }
}

//! The executor: runs the decisions the planner makes (transfers concurrently, with retries)
//! and performs deletions last, only when the run had no errors.

mod cutoff;
mod deciding;
mod deletes;
pub(crate) mod options;
mod resume;
mod session;
pub(crate) mod slots;
mod transfer;
mod verify;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};

use crate::entry::Entry;
use crate::error::{Error, ErrorKind, Result};
use crate::path::RemotePath;
use crate::plan::decide::{Decided, Rules};
use crate::plan::equal::Comparator;
use crate::plan::march::{MarchConfig, Seed, march};
use crate::plan::{Action, Decision, DirPair, Mode, Reason};
use crate::remote::Remote;
use crate::report::{ErrorRecord, Event, Summary};
use cutoff::Cutoff;
use deletes::DeleteQueue;
use options::SyncOptions;
use slots::Slots;
pub(crate) use transfer::Transferer;

/// A failure, and where to start again to retry it.
#[derive(Debug)]
struct Failure {
    record: ErrorRecord,
    retry: Option<Seed>,
    /// How long the server asked us to wait.
    retry_after: Option<std::time::Duration>,
}

/// Runs copy, sync and move between two remotes.
pub(crate) struct Engine {
    src: Arc<dyn Remote>,
    dst: Arc<dyn Remote>,
    mode: Mode,
    opts: SyncOptions,
    cmp: Arc<Comparator>,
    xfer: Transferer,
    summary: Summary,
    /// Destination files to delete once every transfer succeeded.
    deletes: DeleteQueue,
    /// Destination directories to remove after the deletes.
    rmdirs: BTreeSet<RemotePath>,
    /// Source directories seen (for `delete_empty_src_dirs`).
    src_dirs: BTreeSet<RemotePath>,
    failures: Vec<Failure>,
    /// The first error recorded for each path: a retry that fails differently (a second
    /// symptom of the first cause) must not hide it.
    first_errors: HashMap<RemotePath, ErrorRecord>,
    /// When set, decisions are collected here instead of being executed.
    collect: Option<Vec<Decision>>,
    /// Re-check each source entry before acting on it (applying an old plan).
    revalidate: bool,
    /// `max_transfer` and `max_duration`, when set.
    cutoff: Option<Arc<Cutoff>>,
    /// When set, the march visits only its starting directories and records their
    /// sub-directories here.
    subdirs: Option<Arc<std::sync::Mutex<Vec<DirPair>>>>,
}

type TaskResult = (Decision, Result<Outcome>);

/// The work one decision needs, not yet started.
type Task = futures::future::BoxFuture<'static, TaskResult>;

/// `task`, tagged with the slot shares it holds until it ends.
async fn shared(shares: usize, task: Task) -> (usize, TaskResult) {
    (shares, task.await)
}

/// What a finished task did.
enum Outcome {
    Transferred(u64),
    ModtimeSet,
    DirCreated,
    SourceRemoved,
    SkippedChanged,
    LeftoverRemoved,
}

impl Engine {
    pub(crate) fn new(
        src: Arc<dyn Remote>,
        dst: Arc<dyn Remote>,
        mode: Mode,
        opts: SyncOptions,
    ) -> Self {
        let cmp = Arc::new(Comparator::new(
            src.clone(),
            dst.clone(),
            opts.compare.clone(),
        ));
        let cutoff = Cutoff::new(&opts);
        let xfer = Transferer::new(
            src.clone(),
            dst.clone(),
            &opts,
            mode == Mode::Move,
            cutoff.clone(),
        );
        let summary = Summary::new(src.describe(), dst.describe(), opts.dry_run);
        Engine {
            src,
            dst,
            mode,
            opts,
            cmp,
            xfer,
            summary,
            deletes: DeleteQueue::new(),
            rmdirs: BTreeSet::new(),
            src_dirs: BTreeSet::new(),
            failures: Vec::new(),
            first_errors: HashMap::new(),
            collect: None,
            revalidate: false,
            cutoff,
            subdirs: None,
        }
    }

    /// Collect decisions instead of executing them (planning).
    pub(crate) fn collecting(mut self) -> Self {
        self.collect = Some(Vec::new());
        self
    }

    /// Visit only the starting directories; their sub-directories are collected instead of
    /// walked (see [`Engine::plan_one_level`]).
    pub(crate) fn one_level(mut self) -> Self {
        self.subdirs = Some(Arc::default());
        self
    }

    /// Plans `seeds` one level deep: the decisions, the sub-directories found, and the
    /// failures behind the error decisions.
    pub(crate) async fn plan_one_level(
        self,
        seeds: Vec<Seed>,
    ) -> Result<(Vec<Decision>, Vec<DirPair>, Vec<ErrorRecord>)> {
        let this = self.one_level();
        let found = this.subdirs.clone().unwrap_or_default();
        let (decisions, errors) = this.plan_recording(seeds).await?;
        let mut subdirs = std::mem::take(&mut *found.lock().unwrap_or_else(|p| p.into_inner()));
        subdirs.sort_by(|a, b| a.path.cmp(&b.path));
        Ok((decisions, subdirs, errors))
    }

    /// Re-stat each source file before transferring it.
    pub(crate) fn revalidating(mut self) -> Self {
        self.revalidate = true;
        self
    }

    fn march_config(&self) -> MarchConfig {
        let sync = self.mode == Mode::Sync;
        MarchConfig {
            filter: self.opts.filter.clone(),
            checkers: self.opts.checkers,
            walk_dst_only: sync,
            walk_dst_excluded: sync && self.opts.delete_excluded,
            skip_dst: self.opts.backup_dir.clone(),
            leftover_age: self.opts.leftover_age,
            unicode_normalization: !self.opts.no_unicode_normalization,
            subdirs: self.subdirs.clone(),
        }
    }

    /// The starting points of a full run.
    pub(crate) fn root_seeds(&self) -> Vec<Seed> {
        match self.opts.filter.files_from() {
            Some(files) => files.iter().cloned().map(Seed::File).collect(),
            None => vec![Seed::Dir(RemotePath::root())],
        }
    }

    /// Plans `seeds` and returns the decisions without executing anything.
    pub(crate) async fn plan(self, seeds: Vec<Seed>) -> Result<Vec<Decision>> {
        Ok(self.plan_recording(seeds).await?.0)
    }

    /// [`Engine::plan`], with the failures behind its [`Action::Error`] decisions (their
    /// messages, which a decision does not carry).
    async fn plan_recording(
        mut self,
        seeds: Vec<Seed>,
    ) -> Result<(Vec<Decision>, Vec<ErrorRecord>)> {
        self = self.collecting();
        self.pass(seeds).await;
        if let Some(f) = self.failures.iter().find(|f| f.record.path.is_root()) {
            return Err(Error::new(f.record.kind, f.record.message.clone()));
        }
        let mut decisions = self.collect.take().unwrap_or_default();
        let records: Vec<ErrorRecord> = self.failures.into_iter().map(|f| f.record).collect();
        decisions.extend(records.iter().map(|r| Decision {
            path: r.path.clone(),
            action: Action::Error,
            reason: Reason::Failed,
            src: None,
            dst: None,
        }));
        Ok((decisions, records))
    }

    /// Runs the whole operation: passes with retries, then deletions.
    pub(crate) async fn run(mut self, seeds: Vec<Seed>) -> Result<Summary> {
        let start = Instant::now();
        self.pass(seeds).await;
        self.root_check()?;
        let mut attempt = 1;
        while attempt < self.opts.retries.max(1) && !self.failures.is_empty() && !self.cut_off() {
            let (retry, keep): (Vec<_>, Vec<_>) =
                self.failures.drain(..).partition(|f| f.retry.is_some());
            self.failures = keep;
            if retry.is_empty() {
                break;
            }
            attempt += 1;
            self.summary.retries += 1;
            let wait = retry
                .iter()
                .filter_map(|f| f.retry_after)
                .max()
                .map_or(Duration::ZERO, |d| d.min(crate::MAX_RETRY_AFTER))
                .max(self.opts.retries_sleep);
            let seeds: Vec<Seed> = retry.into_iter().filter_map(|f| f.retry).collect();
            // What is walked again is decided again: earlier decisions below it are stale.
            for seed in &seeds {
                if !matches!(seed, Seed::File(_)) {
                    let dir = seed.path();
                    self.deletes.void_below(dir);
                    self.rmdirs.retain(|d| !d.starts_with(dir));
                }
            }
            self.deletes.next_pass();
            tracing::info!(count = seeds.len(), attempt, ?wait, "retrying what failed");
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            self.pass(seeds).await;
        }
        self.finish_deletes().await;
        // As rclone: a run with errors leaves the source's folders as they are.
        if self.mode == Mode::Move && self.opts.delete_empty_src_dirs && self.failures.is_empty() {
            self.remove_empty_src_dirs().await;
        }
        self.summary.errors = self.failures.into_iter().map(|f| f.record).collect();
        self.summary.elapsed = start.elapsed();
        Ok(self.summary)
    }

    /// A missing source root is the whole operation's error (rclone's "directory not found").
    fn root_check(&self) -> Result<()> {
        for f in &self.failures {
            if f.record.path.is_root() && f.record.kind == ErrorKind::NotFound {
                return Err(
                    Error::new(ErrorKind::NotFound, "source directory not found")
                        .with_remote(self.src.describe()),
                );
            }
        }
        Ok(())
    }

    fn fail(&mut self, path: RemotePath, error: &Error, retry: Option<Seed>) {
        // Reported as an event; logged for debugging only, so it is not printed twice.
        tracing::debug!(%path, error = %error.chain(), "failed");
        self.opts.emit(Event::Failed {
            path: path.clone(),
            error: error.chain(),
            will_retry: false,
        });
        let record = self
            .first_errors
            .entry(path.clone())
            .or_insert_with(|| ErrorRecord::new(path, error))
            .clone();
        self.failures.push(Failure {
            record,
            retry,
            retry_after: error.retry_after(),
        });
    }

    /// One march over `seeds`, executing (or collecting) what it finds.
    async fn pass(&mut self, seeds: Vec<Seed>) {
        let items = march(
            self.src.clone(),
            Some(self.dst.clone()),
            seeds,
            self.march_config(),
        );
        let cmp = self.cmp.clone();
        let rules = Rules {
            mode: self.mode,
            delete_excluded: self.opts.delete_excluded,
            create_empty_src_dirs: self.opts.create_empty_src_dirs,
        };
        let decisions = deciding::Decisions::new(items, cmp, rules, self.opts.checkers);
        self.drive(decisions).await;
    }

    /// Executes a stream of decisions with `transfers` slots of tasks in flight (small files
    /// may share a slot, see [`Slots`]).
    async fn drive(&mut self, decisions: impl futures::Stream<Item = Decided>) {
        let mut decisions = std::pin::pin!(decisions);
        let mut running = FuturesUnordered::new();
        let mut slots = Slots::new(self.opts.transfers, &*self.src, &*self.dst);
        // A task that does not fit in the free shares waits here for running ones to end.
        let mut waiting: Option<(usize, Task)> = None;
        // A cancel wakes the loop even while nothing else happens (a long listing).
        let cutoff = self.cutoff.clone();
        let mut cancelled = std::pin::pin!(async move {
            match cutoff {
                Some(c) => c.cancelled().await,
                None => std::future::pending().await,
            }
        });
        // A run limit stops the march: nothing more is started (and nothing deleted).
        while !self.cut_off() {
            if let Some((shares, task)) = waiting.take() {
                if slots.fits(shares) {
                    slots.take(shares);
                    running.push(shared(shares, task));
                } else {
                    waiting = Some((shares, task));
                }
            }
            tokio::select! {
                biased;
                () = &mut cancelled => {}
                Some((shares, done)) = running.next(), if !running.is_empty() => {
                    slots.give(shares);
                    self.finished(done);
                }
                next = decisions.next(), if waiting.is_none() && slots.has_room() => match next {
                    None => break,
                    Some(Err((path, error, retry))) => self.fail(path, &error, retry),
                    Some(Ok(None)) => {}
                    Some(Ok(Some(d))) => {
                        let shares = slots.shares(&d);
                        if let Some(task) = self.accept(d) {
                            waiting = Some((shares, task));
                        }
                    }
                },
            }
        }
        // Decisions end only once nothing waits; a run limit drops the task that waits.
        while let Some((_, done)) = running.next().await {
            self.finished(done);
        }
        if let Some(kind) = self.cutoff.as_ref().and_then(|c| c.take_record()) {
            self.fail(RemotePath::root(), &Cutoff::error(kind), None);
        }
    }

    /// Records a cancel that arrived after the last pass as the run's error; whether the run
    /// was cancelled.
    fn record_cancel(&mut self) -> bool {
        let Some(c) = self.cutoff.clone() else {
            return false;
        };
        if c.stopped() != Some(ErrorKind::Cancelled) {
            return false;
        }
        if let Some(kind) = c.take_record() {
            self.fail(RemotePath::root(), &Cutoff::error(kind), None);
        }
        true
    }

    /// Whether a run limit stopped the run.
    fn cut_off(&self) -> bool {
        self.cutoff.as_ref().is_some_and(|c| c.stopped().is_some())
    }

    /// Executes decisions from a plan made earlier (each source re-checked first).
    pub(crate) async fn apply(mut self, decisions: Vec<Decision>) -> Result<Summary> {
        let start = Instant::now();
        // The plan's own errors are this run's errors: they block every deletion.
        let (errors, decisions): (Vec<Decision>, Vec<Decision>) = decisions
            .into_iter()
            .partition(|d| d.action == Action::Error);
        for d in errors {
            let e = Error::new(
                ErrorKind::Conflict,
                format!("planned with an error: {}", d.reason.describe()),
            )
            .with_path(&d.path);
            self.fail(d.path, &e, None);
        }
        let stream = futures::stream::iter(decisions.into_iter().map(|d| Ok(Some(d))));
        self.drive(stream).await;
        self.finish_deletes().await;
        // As rclone: a run with errors leaves the source's folders as they are.
        if self.mode == Mode::Move && self.opts.delete_empty_src_dirs && self.failures.is_empty() {
            self.remove_empty_src_dirs().await;
        }
        self.summary.errors = self.failures.into_iter().map(|f| f.record).collect();
        self.summary.elapsed = start.elapsed();
        Ok(self.summary)
    }

    /// Records a decision; returns the task to run for it, if any.
    fn accept(&mut self, d: Decision) -> Option<Task> {
        if let Some(notice) = self.cmp.no_hash_notice() {
            self.opts.emit(Event::Notice { message: notice });
        }
        if d.action != Action::Skip {
            self.opts.emit(Event::Planned {
                path: d.path.clone(),
                action: d.action,
                reason: d.reason,
                bytes: d.bytes(),
            });
        }
        if d.src.is_some() && d.dst.is_some() {
            self.summary.checked += 1;
        }
        if d.reason == Reason::EmptyDir {
            // The source's own name (the destination may have it in another Unicode form).
            let src_path = d.src.as_ref().map_or(&d.path, |e| &e.path);
            self.src_dirs.insert(src_path.clone());
            if d.action == Action::Skip {
                return None;
            }
        }
        if let Some(c) = &mut self.collect {
            c.push(d);
            return None;
        }
        match d.action {
            Action::Skip => {
                self.summary.skipped += 1;
                self.opts.emit(Event::Skipped {
                    path: d.path.clone(),
                    reason: d.reason,
                });
                if self.mode == Mode::Move && d.reason == Reason::Identical && !self.opts.dry_run {
                    let (xfer, cmp) = (self.xfer.clone(), self.cmp.clone());
                    return Some(Box::pin(remove_source(xfer, cmp, d)));
                }
                None
            }
            Action::Delete => {
                if let Some(e) = d.dst {
                    if let Err(err) = self.deletes.push(e) {
                        self.fail(d.path, &err, None);
                    }
                }
                None
            }
            Action::Rmdir => {
                self.rmdirs.insert(d.path);
                None
            }
            Action::Error => {
                let e = Error::new(ErrorKind::Conflict, d.reason.describe()).with_path(&d.path);
                self.fail(d.path.clone(), &e, None);
                None
            }
            Action::RemoveLeftover => {
                // Ours, and old: removed whatever else happens in the run.
                if self.opts.dry_run {
                    self.summary.leftovers_removed += 1;
                    return None;
                }
                let dst = self.dst.clone();
                Some(Box::pin(async move {
                    let r = match dst.remove_file(&d.path).await {
                        Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
                        _ => Ok(Outcome::LeftoverRemoved),
                    };
                    (d, r)
                }))
            }
            Action::Mkdir | Action::Copy | Action::Update | Action::SetModtime => {
                if self.opts.dry_run {
                    self.dry_count(&d);
                    return None;
                }
                let cutoff = self.cutoff.clone();
                if let Some(c) = &cutoff {
                    if matches!(d.action, Action::Copy | Action::Update) && !c.may_start(d.bytes())
                    {
                        return None;
                    }
                }
                let xfer = self.xfer.clone();
                let mode = self.mode;
                let revalidate = self.revalidate;
                let backup = self.opts.backup_dir.clone();
                Some(Box::pin(async move {
                    let run = execute(&xfer, mode, revalidate, backup.as_ref(), &d);
                    let r = match cutoff {
                        // A hard cutoff abandons the transfer (its atomic write shows nothing).
                        Some(c) => tokio::select! {
                            biased;
                            r = run => r,
                            kind = c.hard_stop() => Err(Cutoff::error(kind).with_path(&d.path)),
                        },
                        None => run.await,
                    };
                    (d, r)
                }))
            }
        }
    }

    fn dry_count(&mut self, d: &Decision) {
        match d.action {
            Action::Copy | Action::Update => {
                self.summary.transferred += 1;
                self.summary.bytes = self.summary.bytes.saturating_add(d.bytes());
            }
            Action::SetModtime => self.summary.modtimes_set += 1,
            Action::Mkdir => self.summary.dirs_created += 1,
            _ => {}
        }
    }

    fn finished(&mut self, (d, r): TaskResult) {
        match r {
            Ok(Outcome::Transferred(bytes)) => {
                self.summary.transferred += 1;
                self.summary.bytes = self.summary.bytes.saturating_add(bytes);
                self.summary.bytes_resumed = self.xfer.bytes_resumed();
                if d.action == Action::Update && self.opts.backup_dir.is_some() {
                    self.summary.backed_up += 1;
                }
                self.opts.emit(Event::TransferDone {
                    path: d.path,
                    bytes,
                    action: d.action,
                });
            }
            Ok(Outcome::ModtimeSet) => {
                self.summary.modtimes_set += 1;
                self.opts.emit(Event::TransferDone {
                    path: d.path,
                    bytes: 0,
                    action: d.action,
                });
            }
            Ok(Outcome::DirCreated) => self.summary.dirs_created += 1,
            Ok(Outcome::LeftoverRemoved) => self.summary.leftovers_removed += 1,
            Ok(Outcome::SourceRemoved) => {
                self.summary.deleted += 1;
                self.opts.emit(Event::Deleted {
                    path: d.path,
                    dir: false,
                });
            }
            Ok(Outcome::SkippedChanged) => {
                self.summary.skipped += 1;
                let e = Error::new(
                    ErrorKind::ConditionNotMatch,
                    Reason::SourceChanged.describe(),
                )
                .with_path(&d.path);
                self.fail(d.path.clone(), &e, None);
            }
            Err(e) => {
                let retry = match d.action {
                    Action::Mkdir => Some(Seed::Retry {
                        path: d.path.clone(),
                        src_path: d.src.as_ref().map_or(&d.path, |e| &e.path).clone(),
                        src: true,
                        dst: true,
                    }),
                    _ => Some(Seed::File(d.path.clone())),
                };
                self.fail(d.path.clone(), &e, retry);
            }
        }
    }

    /// Deletes (sync) once everything else succeeded.
    async fn finish_deletes(&mut self) {
        if self.deletes.is_empty() && self.rmdirs.is_empty() {
            return;
        }
        let queue = std::mem::replace(&mut self.deletes, DeleteQueue::new());
        self.record_cancel();
        if !self.failures.is_empty() {
            self.summary.deletes_skipped_due_to_errors = true;
            let msg = format!(
                "not deleting files and {} directories because there were errors",
                self.rmdirs.len()
            );
            tracing::debug!("{msg}");
            self.opts.emit(Event::Notice { message: msg });
            return;
        }
        let queued = match queue.drain() {
            Ok(q) => q,
            Err(e) => {
                self.fail(RemotePath::root(), &e, None);
                return;
            }
        };
        let limit = self.opts.max_delete.unwrap_or(u64::MAX);
        let (mut accepted, mut over) = (0u64, 0u64);
        let mut batch: Vec<Entry> = Vec::new();
        for r in queued {
            match r {
                Ok(e) if accepted < limit => {
                    accepted += 1;
                    batch.push(e);
                    if batch.len() >= DELETE_BATCH {
                        // Cancelled meanwhile: what was deleted stays deleted, nothing more is.
                        if self.record_cancel() {
                            return;
                        }
                        self.delete_batch(std::mem::take(&mut batch)).await;
                    }
                }
                Ok(_) => over += 1,
                Err(e) => {
                    // The list of deletions could not be read back whole: stop here.
                    self.fail(RemotePath::root(), &e, None);
                    return;
                }
            }
        }
        if self.record_cancel() {
            return;
        }
        self.delete_batch(batch).await;
        if over > 0 {
            let e = Error::new(
                ErrorKind::Conflict,
                format!("max delete limit ({limit}) reached: {over} more files were not deleted"),
            );
            self.fail(RemotePath::root(), &e, None);
        }
        self.record_cancel();
        if !self.failures.is_empty() {
            return;
        }
        if self.opts.dry_run {
            self.summary.dirs_deleted += self.rmdirs.len() as u64;
            return;
        }
        // Deepest first, so parents are empty when their turn comes.
        let dirs: Vec<RemotePath> = std::mem::take(&mut self.rmdirs).into_iter().rev().collect();
        for dir in dirs {
            match self.dst.remove_dir(&dir).await {
                Ok(()) => {
                    self.summary.dirs_deleted += 1;
                    self.opts.emit(Event::Deleted {
                        path: dir,
                        dir: true,
                    });
                }
                Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::Conflict) => {
                    // Not empty (holds excluded files) or already gone: leave it.
                }
                Err(e) => self.fail(dir, &e, None),
            }
        }
    }

    /// Deletes (or backs up) one batch of destination files concurrently.
    async fn delete_batch(&mut self, batch: Vec<Entry>) {
        if self.opts.dry_run {
            self.summary.deleted += batch.len() as u64;
            return;
        }
        let (src, dst) = (self.src.clone(), self.dst.clone());
        let backup = self.opts.backup_dir.clone();
        let revalidate = self.revalidate;
        let results: Vec<(RemotePath, Result<bool>)> = futures::stream::iter(batch)
            .map(|e| {
                let (src, dst, backup) = (src.clone(), dst.clone(), backup.clone());
                async move {
                    let r = async {
                        if revalidate && !still_deletable(&src, &dst, &e).await? {
                            return Ok(false);
                        }
                        delete_or_backup(&dst, &e.path, backup.as_ref()).await?;
                        Ok(true)
                    }
                    .await;
                    (e.path, r)
                }
            })
            .buffer_unordered(self.opts.checkers.max(1))
            .collect()
            .await;
        for (path, r) in results {
            match r {
                Ok(true) => {
                    if backup.is_some() {
                        self.summary.backed_up += 1;
                    } else {
                        self.summary.deleted += 1;
                    }
                    self.opts.emit(Event::Deleted { path, dir: false });
                }
                Ok(false) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => self.fail(path, &e, None),
            }
        }
    }

    async fn remove_empty_src_dirs(&mut self) {
        if self.opts.dry_run {
            return;
        }
        let dirs: Vec<RemotePath> = std::mem::take(&mut self.src_dirs)
            .into_iter()
            .rev()
            .collect();
        for dir in dirs {
            match self.src.remove_dir(&dir).await {
                Ok(()) => self.summary.dirs_deleted += 1,
                Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::Conflict) => {}
                Err(e) => self.fail(dir, &e, None),
            }
        }
    }
}

/// Deletions run in batches of this many, so memory stays bounded.
const DELETE_BATCH: usize = 10_000;

/// Before a planned deletion runs (applying an old plan): the destination file must still be
/// the one planned, and the source must still lack it. `Ok(false)`: already gone.
async fn still_deletable(src: &Arc<dyn Remote>, dst: &Arc<dyn Remote>, e: &Entry) -> Result<bool> {
    let now = match dst.stat(&e.path).await {
        Ok(now) => now,
        Err(err) if err.kind() == ErrorKind::NotFound => return Ok(false),
        Err(err) => return Err(err),
    };
    if now.size != e.size || now.modtime != e.modtime || now.kind != e.kind {
        return Err(Error::new(
            ErrorKind::ConditionNotMatch,
            "destination file changed since planning; not deleting it",
        )
        .with_path(&e.path));
    }
    match src.stat(&e.path).await {
        Err(err) if err.kind() == ErrorKind::NotFound => Ok(true),
        Err(err) => Err(err),
        Ok(_) => Err(Error::new(
            ErrorKind::ConditionNotMatch,
            "the file is on the source now; not deleting it",
        )
        .with_path(&e.path)),
    }
}

/// Executes one transfer-like decision.
async fn execute(
    xfer: &Transferer,
    mode: Mode,
    revalidate: bool,
    backup: Option<&RemotePath>,
    d: &Decision,
) -> Result<Outcome> {
    if d.action == Action::Mkdir {
        xfer.dst.mkdir(&d.path).await?;
        return Ok(Outcome::DirCreated);
    }
    let Some(src) = &d.src else {
        return Err(Error::new(
            ErrorKind::Unexpected,
            "decision without a source entry",
        ));
    };
    let src = if revalidate {
        let now = xfer.src.stat(&src.path).await?;
        if now.size != src.size || now.modtime != src.modtime || !dst_unchanged(xfer, d).await? {
            return Ok(Outcome::SkippedChanged);
        }
        now
    } else {
        src.clone()
    };
    let outcome = match d.action {
        Action::SetModtime => {
            let mut written = d.dst.clone().unwrap_or_else(|| src.clone());
            written.modtime = None;
            let path = written.path.clone();
            xfer.fix_modtime(&src, &path, &mut written).await?;
            Outcome::ModtimeSet
        }
        _ => {
            if let (Some(dir), Some(_)) = (backup, &d.dst) {
                move_to_backup(&xfer.dst, &d.path, dir).await?;
            }
            let written = xfer.copy_file(&src, &d.path).await?;
            Outcome::Transferred(written.size)
        }
    };
    if mode == Mode::Move {
        match xfer.src.remove_file(&src.path).await {
            // A server-side move already took it away.
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            r => r?,
        }
    }
    Ok(outcome)
}

/// Whether the destination is still as the plan saw it: the same file, or still absent.
async fn dst_unchanged(xfer: &Transferer, d: &Decision) -> Result<bool> {
    match (xfer.dst.stat(&d.path).await, &d.dst) {
        (Err(e), None) if e.kind() == ErrorKind::NotFound => Ok(true),
        (Err(e), Some(_)) if e.kind() == ErrorKind::NotFound => Ok(false),
        (Err(e), _) => Err(e),
        (Ok(_), None) => Ok(false),
        (Ok(now), Some(then)) => Ok(now.size == then.size && now.modtime == then.modtime),
    }
}

/// A move whose file is already on the destination: the destination copy is looked at again
/// right before the only other copy goes (it may have changed or vanished since it was listed),
/// and compared by hash where both sides have one in common (a size and modtime match is not
/// proof: rclone deletes the source there and keeps the destination's other content). If it is
/// not the same file any more, the source is transferred over it first, as for any move.
async fn remove_source(xfer: Transferer, cmp: Arc<Comparator>, d: Decision) -> TaskResult {
    let r = async {
        let Some(s) = &d.src else {
            return Err(Error::new(
                ErrorKind::Unexpected,
                "decision without a source entry",
            ));
        };
        let now = match cmp.dst.stat(&d.path).await {
            Ok(e) => Some(e),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let same = match &now {
            Some(n) if n.is_file() => {
                cmp.decide(s, n).await?.1 == Reason::Identical
                    && cmp.same_hash(s, n).await? != Some(false)
            }
            _ => false,
        };
        let outcome = if same {
            Outcome::SourceRemoved
        } else {
            Outcome::Transferred(xfer.copy_file(s, &d.path).await?.size)
        };
        match xfer.src.remove_file(&s.path).await {
            // Gone already (a server-side move, or someone else): nothing left to lose.
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            r => r?,
        }
        Ok(outcome)
    }
    .await;
    (d, r)
}

async fn delete_or_backup(
    dst: &Arc<dyn Remote>,
    path: &RemotePath,
    backup: Option<&RemotePath>,
) -> Result<()> {
    match backup {
        Some(dir) => move_to_backup(dst, path, dir).await,
        None => dst.remove_file(path).await,
    }
}

/// Moves a destination file into the backup directory (server-side when possible).
async fn move_to_backup(dst: &Arc<dyn Remote>, path: &RemotePath, dir: &RemotePath) -> Result<()> {
    let target = dir.join_path(path);
    if dst.capabilities().rename {
        dst.rename(path, &target).await?;
        return Ok(());
    }
    let entry = dst.stat(path).await?;
    let body = dst.read(path, None).await?;
    dst.write(&target, body, crate::entry::WriteMeta::from_entry(&entry))
        .await?;
    dst.remove_file(path).await
}

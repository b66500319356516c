//! Drop-folder ingestion: [`ingest`] moves the files another system drops into a folder (often
//! over SFTP) into a managed target, leaving files that are still being written, keeping an
//! archive copy of each file and a report of each run.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> cloudsync_core::Result<()> {
//! use std::time::Duration;
//! use cloudsync_core::ingest::{ingest, IngestOptions};
//! use cloudsync_core::{bytes_stream, memory_named, Remote, RemotePath, WriteMeta};
//!
//! let (drop, target) = (memory_named("drop"), memory_named("target"));
//! let meta = WriteMeta::default();
//! drop.write(&RemotePath::new("orders/42.csv")?, bytes_stream("a,b"), meta.clone()).await?;
//! drop.write(&RemotePath::new("_upload.tmp")?, bytes_stream("..."), meta).await?;
//!
//! // Files were just written: take them at once (the default waits until they are 60 s old
//! // and looks at their sizes twice, 2 s apart).
//! let opts = IngestOptions {
//!     settle: Duration::ZERO,
//!     recheck_delay: None,
//!     ..Default::default()
//! };
//! let report = ingest(&drop, &target, &opts).await?;
//! assert_eq!(report.ingested.len(), 1);
//! assert!(target.stat(&RemotePath::new("orders/42.csv")?).await.is_ok());
//! assert!(drop.stat(&RemotePath::new("_upload.tmp")?).await.is_ok()); // `_` names stay
//! # Ok(())
//! # }
//! ```
//!
//! # What one run does
//!
//! 1. Takes the lock file [`IngestOptions::lock_path`] on the **target** (see below); while
//!    another live run holds it, [`ingest`] returns an error of kind
//!    [`ErrorKind::Conflict`] ("another ingest is running") and
//!    touches nothing.
//! 2. Walks the drop folder. Never looked into: `archives/` and `reports/` at the top, and
//!    the configured archive and report directories that lie inside the drop folder (on the
//!    drop remote, or given as a remote of their own that is inside it). With
//!    [`IngestOptions::ignore_hidden`] (the default) files and directories whose name starts
//!    with `.` or `_` are left alone at any depth. Then the [`FilterSet`](crate::FilterSet)
//!    decides.
//! 3. Leaves files that may still be being written: modified less than
//!    [`IngestOptions::settle`] ago (default 60 s), and, with
//!    [`IngestOptions::recheck_delay`], files whose size or modtime changed between two
//!    listings taken that far apart.
//! 4. For each remaining file (up to [`IngestOptions::transfers`] at once): a verified copy to
//!    the same path on the target (size, hashes while streaming, modtime; an existing target
//!    file is replaced), a check that the drop file did not change meanwhile, the archive copy
//!    under `archives/<UTC date YYYY-MM-DD>/<path>` (never replacing an earlier archive:
//!    `name (1).ext`, `name (2).ext`, ...), the same check once more, and only then its
//!    removal from the drop folder. A file whose size or modtime changed is left there
//!    ([`SkipReason::ChangedDuringIngest`]) with the copies made so far.
//!    When the archive is on the drop remote and that remote can rename, the archive step is
//!    a server-side move, which removes the file from the drop folder in the same step.
//! 5. Writes the report (JSON and text) as `reports/<YYYY-MM-DDTHH-MM-SSZ>-<id>.json`/`.txt`
//!    and returns it.
//!
//! # Safety
//!
//! A file leaves the drop folder only after its verified copy exists on the target **and** in
//! the archive, so a crash or a failure at any point loses nothing: the next run copies the
//! file again (an interrupted run can at worst leave a second archive copy `name (1).ext`).
//! Empty directories are left in the drop folder.
//!
//! A drop folder and a target that are the same place or one inside the other are refused
//! before anything is touched (a run would ingest its own output, again on every run), and
//! so is an archive or report directory that is the drop folder itself. Places are judged on
//! canonical [`Location`](crate::Location)s (resolved local paths, the server and its root),
//! so `drop/x/../inbox` or a symlink does not get past the check.
//!
//! The lock is a JSON file (token, purpose, host, pid, times). The [`Remote`] API has no
//! create-if-absent, so a run writes the lock, waits [`IngestOptions::lock_confirm_delay`]
//! and reads it back: if another run wrote in between, one of them backs off. A running
//! ingest refreshes the time in its lock on a timer (every quarter of
//! [`IngestOptions::stale_lock`], however long one transfer takes); a lock older than that
//! (default 1 h) is considered left by a crashed run and is taken over.

mod archive;
mod options;
mod report;
mod scan;

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use time::OffsetDateTime;

use crate::entry::Entry;
use crate::error::{Error, ErrorKind, Result};
use crate::exec::slots;
use crate::ops::{Placement, SyncOptions, copy_entry, placement};
use crate::path::RemotePath;
use crate::remote::Remote;
use crate::report::{ErrorRecord, Event};

pub use crate::lock::LockInfo;
use crate::lock::RemoteLock;
use crate::temp::random_id;
pub use options::{IngestOptions, Location};
pub use report::{IngestReport, IngestedFile, SkipReason, SkippedFile};

use archive::Archived;
use options::fixed_path;

/// How one candidate came out.
enum Outcome {
    Ingested(IngestedFile),
    Skipped(SkippedFile),
    Failed(ErrorRecord),
}

/// Moves every eligible file of `drop` into `target`; see the [module docs](self).
///
/// Per-file problems are in the returned report ([`IngestReport::failed`]); an `Err` means the
/// run did not happen: another run holds the lock ([`ErrorKind::Conflict`]), the drop folder
/// cannot be listed, or `drop` and `target` are the same place or one lies inside the other
/// ([`ErrorKind::InvalidInput`]).
pub async fn ingest(
    drop: &Arc<dyn Remote>,
    target: &Arc<dyn Remote>,
    opts: &IngestOptions,
) -> Result<IngestReport> {
    refuse_overlap(drop, target, opts)?;
    let lock = RemoteLock::acquire(
        target.clone(),
        opts.lock_path.clone(),
        "ingest",
        opts.stale_lock,
        opts.lock_confirm_delay,
    )
    .await?;
    let mut report =
        IngestReport::new(random_id(), drop.describe(), target.describe(), opts.settle);
    let clock = Instant::now();
    let outcome = run(drop, target, opts, lock, &mut report).await;
    report.elapsed = clock.elapsed();
    report.sort();
    outcome?;
    if let Some(loc) = &opts.reports {
        let remote = loc.remote(drop);
        if let Err(e) = report.write_to(remote.as_ref(), &loc.dir).await {
            tracing::warn!(error = %e, "could not write the ingest report");
            report.report_files.clear();
            report.failed.push(ErrorRecord::new(
                loc.dir.clone(),
                &Error::new(
                    e.kind(),
                    format!("could not write the report: {}", e.chain()),
                ),
            ));
        }
    }
    Ok(report)
}

/// Refuses a drop folder and target that are one place or nested (a run would ingest its own
/// output, again on every run), and an archive or report directory that is the drop folder
/// itself. Judged on canonical locations, however the two were spelled.
fn refuse_overlap(
    drop: &Arc<dyn Remote>,
    target: &Arc<dyn Remote>,
    opts: &IngestOptions,
) -> Result<()> {
    let how = match placement(drop, target) {
        Placement::Apart => None,
        Placement::Same => Some("are the same place"),
        Placement::Nested => Some("overlap (one is inside the other)"),
    };
    if let Some(how) = how {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "the drop folder ({}) and the target ({}) {how}",
                drop.describe(),
                target.describe()
            ),
        ));
    }
    for (what, loc) in [("archive", &opts.archive), ("report", &opts.reports)] {
        if let Some(loc) = loc
            .as_ref()
            .filter(|l| l.within(drop).is_some_and(|d| d.is_root()))
        {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "the {what} directory ({loc:?}) cannot be the drop folder ({}) itself",
                    drop.describe()
                ),
            ));
        }
    }
    Ok(())
}

/// Directories of the drop folder that are never ingested.
fn excluded_dirs(drop: &Arc<dyn Remote>, opts: &IngestOptions) -> Vec<RemotePath> {
    let mut dirs = vec![fixed_path("archives"), fixed_path("reports")];
    for loc in [&opts.archive, &opts.reports].into_iter().flatten() {
        dirs.extend(loc.within(drop));
    }
    dirs.retain(|d| !d.is_root());
    dirs
}

async fn run(
    drop: &Arc<dyn Remote>,
    target: &Arc<dyn Remote>,
    opts: &IngestOptions,
    lock: RemoteLock,
    report: &mut IngestReport,
) -> Result<()> {
    let now = OffsetDateTime::now_utc();
    let excluded = excluded_dirs(drop, opts);
    let cancel = opts.cancel.clone();
    let cancelled = || {
        let c = cancel.clone();
        async move {
            match c {
                Some(c) => c.cancelled().await,
                None => std::future::pending().await,
            }
        }
    };
    let stop = |report: &mut IngestReport| {
        let e = Error::new(ErrorKind::Cancelled, "cancelled: no further file was taken");
        report.failed.push(ErrorRecord::new(RemotePath::root(), &e));
    };
    let scanned = tokio::select! {
        s = scan::scan(drop, opts, &excluded, now) => Some(s),
        () = cancelled() => None,
    };
    let mut found = match scanned {
        Some(Ok(s)) => s,
        Some(Err(e)) => {
            let _ = lock.release().await;
            return Err(e);
        }
        None => {
            stop(report);
            let _ = lock.release().await;
            return Ok(());
        }
    };
    if let (Some(delay), false) = (opts.recheck_delay, found.candidates.is_empty()) {
        let rechecked = tokio::select! {
            () = async {
                tokio::time::sleep(delay).await;
                scan::recheck(drop, &mut found).await;
            } => true,
            () = cancelled() => false,
        };
        if !rechecked {
            stop(report);
            let _ = lock.release().await;
            return Ok(());
        }
    }
    report.skipped.append(&mut found.skipped);
    report.failed.append(&mut found.failed);
    let date = report::utc_date(now);
    let topts = opts.transfer_options();
    // As the sync engine: small files share the `transfers` slots where every remote the
    // files go through allows it (a waiting large file keeps its place: the semaphore is
    // fair).
    let mut sides: Vec<&dyn Remote> = vec![drop.as_ref(), target.as_ref()];
    if let Some(r) = opts.archive.as_ref().and_then(|a| a.remote.as_deref()) {
        sides.push(r);
    }
    let per_slot = slots::small_files_per_slot(opts.transfers, &sides);
    let budget = slots::budget(opts.transfers, per_slot);
    let free = tokio::sync::Semaphore::new(budget);
    let mut outcomes = futures::stream::iter(found.candidates)
        .map(|e| {
            let (date, topts, free) = (&date, &topts, &free);
            let shares = slots::shares_of(e.size, per_slot).min(budget);
            let shares = u32::try_from(shares).unwrap_or(1);
            async move {
                // Never closed, so the permit always comes.
                let _held = free.acquire_many(shares).await;
                take(drop, target, opts, date, topts, e).await
            }
        })
        .buffer_unordered(budget);
    loop {
        let next = tokio::select! {
            o = outcomes.next() => o,
            () = cancelled() => {
                // The files in progress are abandoned: each stays in the drop folder.
                std::mem::drop(outcomes);
                stop(report);
                let _ = lock.release().await;
                return Ok(());
            }
        };
        let Some(o) = next else { break };
        match o {
            Outcome::Ingested(f) => {
                report.bytes = report.bytes.saturating_add(f.size);
                report.ingested.push(f);
            }
            Outcome::Skipped(s) => report.skipped.push(s),
            Outcome::Failed(e) => report.failed.push(e),
        }
        if let Some(e) = lock.lost() {
            // Another run took over, or the lock could not be kept fresh: stop starting new
            // files.
            report.failed.push(ErrorRecord::new(RemotePath::root(), &e));
            let _ = lock.release().await;
            return Ok(());
        }
    }
    if let Err(e) = lock.release().await {
        tracing::warn!(error = %e, "could not release the ingest lock");
    }
    Ok(())
}

/// Ingests one file: target copy, change check, archive, removal.
async fn take(
    drop: &Arc<dyn Remote>,
    target: &Arc<dyn Remote>,
    opts: &IngestOptions,
    date: &str,
    topts: &SyncOptions,
    e: Entry,
) -> Outcome {
    let fail = |err: &Error| Outcome::Failed(ErrorRecord::new(e.path.clone(), err));
    let skipped = |reason| {
        Outcome::Skipped(SkippedFile {
            path: e.path.clone(),
            dir: false,
            size: e.size,
            reason,
        })
    };
    if e.path == opts.lock_path {
        return skipped(SkipReason::Excluded);
    }
    if let Err(err) = copy_entry(drop, target, &e, &e.path, topts).await {
        return match err.kind() {
            ErrorKind::NotFound => skipped(SkipReason::Vanished),
            ErrorKind::ConditionNotMatch => skipped(SkipReason::ChangedDuringIngest),
            _ => fail(&err),
        };
    }
    if let Some(o) = changed(drop, &e).await {
        return o;
    }
    let mut archive_path = None;
    let mut gone = false;
    if let Some(loc) = &opts.archive {
        match archive::archive(drop, loc, date, &e, topts).await {
            Ok((path, how)) => {
                archive_path = Some(path);
                gone = how == Archived::Moved;
            }
            Err(err) => return fail(&err),
        }
    }
    if !gone {
        // The archive copy took a while: look once more right before the removal, and leave a
        // file that changed meanwhile (its copies stay; the next run takes the new version).
        if let Some(o) = changed(drop, &e).await {
            return o;
        }
        if let Err(err) = drop.remove_file(&e.path).await {
            if err.kind() != ErrorKind::NotFound {
                let err = Error::new(
                    err.kind(),
                    format!(
                        "copied and archived, but not removed from the drop folder \
                         (the next run takes it again): {}",
                        err.chain()
                    ),
                );
                return fail(&err);
            }
        }
    }
    opts.emit(Event::Deleted {
        path: e.path.clone(),
        dir: false,
    });
    Outcome::Ingested(IngestedFile {
        path: e.path.clone(),
        size: e.size,
        modtime: e.modtime,
        target_path: e.path.clone(),
        archive_path,
    })
}

/// Stats the drop file again: `None` when its size and modtime are still those listed (and
/// copied), otherwise what to report instead of removing it.
async fn changed(drop: &Arc<dyn Remote>, e: &Entry) -> Option<Outcome> {
    let reason = match drop.stat(&e.path).await {
        Ok(now) if now.size == e.size && now.modtime == e.modtime => return None,
        Ok(_) => SkipReason::ChangedDuringIngest,
        Err(err) if err.kind() == ErrorKind::NotFound => SkipReason::Vanished,
        Err(err) => return Some(Outcome::Failed(ErrorRecord::new(e.path.clone(), &err))),
    };
    tracing::info!(path = %e.path, %reason, "left in the drop folder");
    Some(Outcome::Skipped(SkippedFile {
        path: e.path.clone(),
        dir: false,
        size: e.size,
        reason,
    }))
}

#[cfg(test)]
mod tests;

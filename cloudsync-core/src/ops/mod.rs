//! The operations an application calls: [`copy`], [`sync`], [`move_files`], [`check`],
//! [`list`], [`delete`], [`rmdirs`], [`purge`], [`cleanup`], plus [`plan`] / [`apply`] for dry
//! runs that are executed later and [`copy_files`] to transfer an explicit list of paths.
//!
//! They behave as rclone's commands of the same name do; differences are documented on each.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> cloudsync_core::Result<()> {
//! use cloudsync_core::{bytes_stream, memory, ops, Remote, RemotePath, WriteMeta};
//!
//! let (src, dst) = (memory(), memory());
//! src.write(&RemotePath::new("a/b.txt")?, bytes_stream("hi"), WriteMeta::default()).await?;
//! let summary = ops::sync(&src, &dst, &ops::SyncOptions::default()).await?;
//! assert_eq!(summary.transferred, 1);
//! assert!(ops::check(&src, &dst, &Default::default()).await?.is_identical());
//! # Ok(())
//! # }
//! ```

mod check;
mod delete;
mod file;
mod list;
mod options;

use std::sync::Arc;

use time::OffsetDateTime;

use crate::error::{Error, ErrorKind, Result};
use crate::exec::Engine;
use crate::path::RemotePath;
use crate::plan::march::Seed;
use crate::plan::{DirPair, Mode, Plan};
use crate::remote::Remote;
use crate::report::Summary;

pub use crate::exec::options::{CancelToken, CutoffMode, DEFAULT_RESUME_ABOVE, SyncOptions};
pub use crate::plan::equal::CompareOptions;
pub use check::check;
pub use delete::{cleanup, delete, purge, rmdirs};
pub(crate) use file::copy_entry;
pub use file::copy_file;
pub use list::list;
pub use options::{CheckOptions, DeleteOptions, ListOptions};

/// How the roots of two remotes lie relative to each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// One directory.
    Same,
    /// One contains the other.
    Nested,
    /// Neither contains the other.
    Apart,
}

/// Where `b` lies relative to `a`, judged on canonical [`Location`](crate::Location)s when
/// both remotes have one (resolved local paths; host, port and root), otherwise on the
/// underlying remote of two views, otherwise on descriptions.
pub(crate) fn placement(a: &Arc<dyn Remote>, b: &Arc<dyn Remote>) -> Placement {
    let relate = |same: bool, nested: bool| match (same, nested) {
        (true, _) => Placement::Same,
        (false, true) => Placement::Nested,
        _ => Placement::Apart,
    };
    if let (Some(x), Some(y)) = (a.location(), b.location()) {
        return relate(x == y, x.overlaps(&y));
    }
    if same_base(a, b) {
        let dir = |r: &Arc<dyn Remote>| r.prefixed_view().map(|(_, p)| p).unwrap_or_default();
        let (x, y) = (dir(a), dir(b));
        return relate(x == y, x.starts_with(&y) || y.starts_with(&x));
    }
    let (x, y) = (a.describe(), b.describe());
    let (x, y) = (x.trim_end_matches('/'), y.trim_end_matches('/'));
    let inside = |p: &str, q: &str| p.starts_with(q) && p.as_bytes().get(q.len()) == Some(&b'/');
    relate(x == y, inside(x, y) || inside(y, x))
}

/// Refuses a source and destination where one contains the other.
fn refuse_overlap(src: &Arc<dyn Remote>, dst: &Arc<dyn Remote>) -> Result<()> {
    if placement(src, dst) != Placement::Apart {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "source ({}) and destination ({}) overlap",
                src.describe(),
                dst.describe()
            ),
        ));
    }
    Ok(())
}

/// Whether two remotes are views of the same underlying remote.
fn same_base(a: &Arc<dyn Remote>, b: &Arc<dyn Remote>) -> bool {
    let base = |r: &Arc<dyn Remote>| r.prefixed_view().map_or_else(|| r.clone(), |(b, _)| b);
    std::ptr::addr_eq(Arc::as_ptr(&base(a)), Arc::as_ptr(&base(b)))
}

async fn run(
    src: &Arc<dyn Remote>,
    dst: &Arc<dyn Remote>,
    mode: Mode,
    opts: &SyncOptions,
) -> Result<Summary> {
    refuse_overlap(src, dst)?;
    let engine = Engine::new(src.clone(), dst.clone(), mode, opts.clone());
    let seeds = engine.root_seeds();
    engine.run(seeds).await
}

/// Copies new and changed files from `src` to `dst`; never deletes (rclone `copy`).
///
/// Per-file failures are in [`Summary::errors`]; an `Err` means the operation could not run at
/// all (the source directory does not exist, source and destination overlap).
pub async fn copy(
    src: &Arc<dyn Remote>,
    dst: &Arc<dyn Remote>,
    opts: &SyncOptions,
) -> Result<Summary> {
    run(src, dst, Mode::Copy, opts).await
}

/// Makes `dst` identical to `src` (rclone `sync`): copies new and changed files, then, only if
/// nothing failed, deletes destination files that are not on the source.
pub async fn sync(
    src: &Arc<dyn Remote>,
    dst: &Arc<dyn Remote>,
    opts: &SyncOptions,
) -> Result<Summary> {
    run(src, dst, Mode::Sync, opts).await
}

/// Moves files from `src` to `dst` (rclone `move`): each source file is deleted only after its
/// copy on the destination is verified (or found identical there).
///
/// A whole folder moved into a destination that does not exist yet, with no filter, is one
/// directory rename where both sides are folders on this machine (as rclone's server-side
/// directory move): the source path is gone afterwards, empty folders included. A rename
/// that cannot be done (another filesystem, a destination that appeared) falls back to moving
/// file by file.
pub async fn move_files(
    src: &Arc<dyn Remote>,
    dst: &Arc<dyn Remote>,
    opts: &SyncOptions,
) -> Result<Summary> {
    refuse_overlap(src, dst)?;
    if let Some(summary) = move_whole_folder(src, dst, opts).await? {
        return Ok(summary);
    }
    run(src, dst, Mode::Move, opts).await
}

/// The whole-folder move of [`move_files`]: `Ok(None)` when it does not apply or the rename
/// could not be done (nothing was changed then).
async fn move_whole_folder(
    src: &Arc<dyn Remote>,
    dst: &Arc<dyn Remote>,
    opts: &SyncOptions,
) -> Result<Option<Summary>> {
    // Only the plain case: anything that selects or limits what moves goes file by file
    // (unlike rclone, `--max-depth` counts as a filter: deeper files stay).
    let plain = opts.filter.is_trivial()
        && !opts.dry_run
        && opts.backup_dir.is_none()
        && opts.max_transfer.is_none()
        && opts.max_duration.is_none();
    if !plain {
        return Ok(None);
    }
    let root = RemotePath::root();
    let (Some(from), Some(to)) = (src.local_path(&root), dst.local_path(&root)) else {
        return Ok(None);
    };
    match src.stat(&root).await {
        Ok(e) if e.is_dir() => {}
        _ => return Ok(None),
    }
    // A symbolic link to a folder would be renamed as a link, leaving the files where they
    // are: only a real folder is renamed.
    match tokio::fs::symlink_metadata(&from).await {
        Ok(m) if m.is_dir() => {}
        _ => return Ok(None),
    }
    match dst.stat(&root).await {
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        _ => return Ok(None),
    }
    let start = std::time::Instant::now();
    let mut summary = Summary::new(src.describe(), dst.describe(), false);
    if let Some(parent) = to.parent() {
        if tokio::fs::create_dir_all(parent).await.is_err() {
            return Ok(None);
        }
    }
    // rename(2) of a directory is atomic, and refuses a destination that is a non-empty
    // directory or on another filesystem: then nothing moved and the files go one by one.
    if let Err(e) = tokio::fs::rename(&from, &to).await {
        tracing::debug!(error = %e, "directory rename not possible; moving file by file");
        return Ok(None);
    }
    // The rename said it moved everything: the destination must list and the source be gone.
    let moved = matches!(dst.stat(&root).await, Ok(e) if e.is_dir())
        && matches!(src.stat(&root).await, Err(e) if e.kind() == ErrorKind::NotFound);
    if !moved {
        let e = Error::new(
            ErrorKind::Unexpected,
            format!(
                "renamed {} to {}, but the result is not what a rename leaves",
                src.describe(),
                dst.describe()
            ),
        );
        summary
            .errors
            .push(crate::report::ErrorRecord::new(root, &e));
    }
    opts.emit(crate::report::Event::Notice {
        message: format!(
            "moved the whole folder {} to {} (one directory rename)",
            src.describe(),
            dst.describe()
        ),
    });
    summary.elapsed = start.elapsed();
    Ok(Some(summary))
}

/// Copies exactly `paths` (files, relative to both roots) from `src` to `dst` when they are
/// missing or different there — the "re-run & sync" of a [`CheckReport`](crate::CheckReport).
///
/// Unlike [`copy`], the destination may lie inside the source (copying `dir/f.txt` into
/// `dir/out/`): only the named files are read, so nothing can be copied onto itself unless
/// source and destination are the same place, which is refused.
pub async fn copy_files(
    src: &Arc<dyn Remote>,
    dst: &Arc<dyn Remote>,
    paths: Vec<RemotePath>,
    opts: &SyncOptions,
) -> Result<Summary> {
    if placement(src, dst) == Placement::Same {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("source and destination are the same ({})", src.describe()),
        ));
    }
    let seeds = paths.into_iter().map(Seed::File).collect();
    Engine::new(src.clone(), dst.clone(), Mode::Copy, opts.clone())
        .run(seeds)
        .await
}

/// Decides everything a `mode` run would do and returns it as a [`Plan`], touching nothing.
pub async fn plan(
    src: &Arc<dyn Remote>,
    dst: &Arc<dyn Remote>,
    mode: Mode,
    opts: &SyncOptions,
) -> Result<Plan> {
    refuse_overlap(src, dst)?;
    let engine = Engine::new(src.clone(), dst.clone(), mode, opts.clone());
    let seeds = engine.root_seeds();
    let decisions = engine.plan(seeds).await?;
    Ok(Plan {
        mode,
        source: src.describe(),
        destination: dst.describe(),
        created: OffsetDateTime::now_utc(),
        decisions,
    })
}

/// What [`plan_dir`] found in one directory pair.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DirPlan {
    /// The decisions for the entries of the directory (an [`Action::Error`] for each path
    /// that could not be listed or compared).
    ///
    /// [`Action::Error`]: crate::Action::Error
    pub plan: Plan,
    /// The sub-directories to plan next.
    pub subdirs: Vec<DirPair>,
    /// What failed, with its message: one record per error decision.
    pub errors: Vec<crate::ErrorRecord>,
}

/// Plans one directory pair, one level deep: the decisions for the entries `dir` holds (as
/// [`plan`] would make them, filters applied to the paths from the roots of `src` and `dst`)
/// and the sub-directories to plan next, each as a [`DirPair`] (a source directory, or with
/// [`Mode::Sync`] a destination-only one). Nothing is touched.
///
/// This is the unit of work of a walk split across workers: [`apply`] the plan's transfers,
/// keep its deletions until every directory was planned without error, and plan each
/// sub-directory the same way. A listing that failed is an error decision, with its message
/// in [`DirPlan::errors`]; a missing source root is an `Err`, as with [`plan`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> cloudsync_core::Result<()> {
/// use cloudsync_core::{bytes_stream, memory, ops, DirPair, Mode, Remote, RemotePath, WriteMeta};
///
/// let (src, dst) = (memory(), memory());
/// src.write(&RemotePath::new("top.txt")?, bytes_stream("a"), WriteMeta::default()).await?;
/// src.write(&RemotePath::new("sub/deep.txt")?, bytes_stream("b"), WriteMeta::default()).await?;
/// let root = DirPair::both(RemotePath::root());
/// let found = ops::plan_dir(&src, &dst, Mode::Sync, &root, &Default::default()).await?;
/// assert_eq!(found.plan.decisions.len(), 1); // top.txt only
/// // `sub` is on the source only: its destination side need not be listed.
/// let sub = DirPair { dst: false, ..DirPair::both(RemotePath::new("sub")?) };
/// assert_eq!(found.subdirs, vec![sub]);
/// # Ok(())
/// # }
/// ```
pub async fn plan_dir(
    src: &Arc<dyn Remote>,
    dst: &Arc<dyn Remote>,
    mode: Mode,
    dir: &DirPair,
    opts: &SyncOptions,
) -> Result<DirPlan> {
    refuse_overlap(src, dst)?;
    let engine = Engine::new(src.clone(), dst.clone(), mode, opts.clone());
    let (decisions, subdirs, errors) = engine.plan_one_level(vec![Seed::Pair(dir.clone())]).await?;
    let plan = Plan {
        mode,
        source: src.describe(),
        destination: dst.describe(),
        created: OffsetDateTime::now_utc(),
        decisions,
    };
    Ok(DirPlan {
        plan,
        subdirs,
        errors,
    })
}

/// Executes a [`Plan`] made earlier.
///
/// The plan must have been made for these two remotes (their descriptions are compared), and
/// a plan that recorded errors is refused unless [`SyncOptions::apply_plan_with_errors`] is
/// set; its errors then count as this run's, so it deletes nothing. Before every action both
/// sides are checked again: a source file that changed, or a destination file that changed or
/// appeared, is skipped and reported, never half-applied; a deletion runs only if the
/// destination file is still the one planned and the source still lacks it. Deletions run
/// last and only when nothing failed.
pub async fn apply(
    src: &Arc<dyn Remote>,
    dst: &Arc<dyn Remote>,
    plan: &Plan,
    opts: &SyncOptions,
) -> Result<Summary> {
    refuse_overlap(src, dst)?;
    if plan.source != src.describe() || plan.destination != dst.describe() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "the plan is for {} -> {}, not {} -> {}",
                plan.source,
                plan.destination,
                src.describe(),
                dst.describe()
            ),
        ));
    }
    let errors = plan
        .decisions
        .iter()
        .filter(|d| d.action == crate::plan::Action::Error)
        .count();
    if errors > 0 && !opts.apply_plan_with_errors {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "the plan recorded {errors} errors; make a new plan, or apply it anyway \
                 (nothing will be deleted)"
            ),
        ));
    }
    Engine::new(src.clone(), dst.clone(), plan.mode, opts.clone())
        .revalidating()
        .apply(plan.decisions.clone())
        .await
}

#[cfg(test)]
mod tests;

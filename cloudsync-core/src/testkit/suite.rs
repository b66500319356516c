//! The conformance checks every backend must pass.
//!
//! [`conformance`] runs them all, each in its own random sub-directory
//! (`ck-<name>-<random>`, through [`Prefix`]), collects every failure and panics at the end
//! with the whole list, so one run shows everything that is wrong. Each check is also a public
//! `check_*` function, so a backend's test can run one alone while fixing it:
//!
//! ```no_run
//! # async fn demo(remote: std::sync::Arc<dyn cloudsync_core::Remote>) {
//! use cloudsync_core::testkit;
//! testkit::check_atomicity(&remote).await.unwrap();
//! # }
//! ```
//!
//! Checks gated by a capability (for example [`check_copy`]) pass trivially when the capability
//! is not declared; [`check_optional_ops`] then verifies that the operation really returns
//! `Unsupported`. Nothing is skipped silently: the run prints one line per check.
//!
//! What the checks require beyond the [`Remote`] docs:
//! - listings give full paths from the root, each entry once; a missing directory is
//!   `NotFound` (from `list` or from the stream's first item);
//! - a ranged read whose end lies past the end of the file returns the bytes up to the end; one
//!   that starts at or after the end returns nothing or an error;
//! - `copy` and `rename` create the target's parents and replace an existing target;
//! - modtimes agree when they are less than one `modtime_precision` apart;
//! - the remote serves `stat`, `read` and `list` while a write is in progress.
//!
//! The last checks drive the sync engine (`ops::copy`, `ops::sync`, `ops::check`) between the
//! remote and an in-memory peer: a round trip, the check report, and a transfer cut mid-stream
//! followed by a retried sync, and the cleanup of leftover temporary files; on remotes that
//! can resume, transfers cut mid-stream that continue where they stopped (through partial files
//! or, on cloud backends, upload sessions).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;

use crate::path::RemotePath;
use crate::prefix::Prefix;
use crate::remote::Remote;

mod content;
mod dirs;
mod engine;
mod listing;
mod optional;
mod resume;
mod sessions;
mod support;

pub use content::{
    check_atomicity, check_empty_file, check_hashes, check_large_file, check_large_file_with,
    check_overwrite, check_ranged_read, check_size_mismatch, check_write_from_file,
};
pub use dirs::{
    check_mkdir, check_not_found, check_purge, check_remove, check_remove_dir_not_empty,
    check_write_creates_parents,
};
pub use engine::{
    check_check_report, check_interrupted_transfer, check_leftovers, check_sync_round_trip,
};
pub use listing::{
    AWKWARD_NAMES, check_hostile_names, check_list_empty, check_list_many, check_list_many_with,
    check_list_missing, check_list_one, check_list_recursive, check_names,
};
pub use optional::{check_copy, check_modtime, check_optional_ops, check_rename};
pub use resume::{check_resume, check_resume_mismatch};
pub use sessions::{
    SESSION_CHUNK_SLACK, check_session_resume, check_session_resume_sized, check_session_stale,
};

/// Knobs for [`conformance_with`], for servers that are slow or limited.
///
/// ```
/// use cloudsync_core::testkit::ConformanceOptions;
/// let opts = ConformanceOptions { many_entries: 200, ..Default::default() };
/// # let _ = opts;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConformanceOptions {
    /// Files written into one directory by the listing check (default 1100: more than one
    /// page on every server we know).
    pub many_entries: usize,
    /// Size of the large file (default 5 MiB + 3 bytes, written in uneven chunks).
    pub large_file_size: usize,
    /// Time limit of one check (default 5 minutes); a check that hangs fails.
    pub check_timeout: Duration,
    /// Remove each passing check's sub-directory afterwards (default true; failing checks
    /// keep theirs for inspection).
    pub clean_up: bool,
    /// The largest chunk of an upload session the backend may lose when an upload is cut
    /// (default [`SESSION_CHUNK_SLACK`], 1 MiB): the resumable-session check cuts a file of
    /// several such chunks and allows this much to be sent again. A backend whose smallest
    /// chunk is larger (Nextcloud: 5 MiB) sets it.
    pub session_chunk: u64,
}

impl Default for ConformanceOptions {
    fn default() -> Self {
        ConformanceOptions {
            many_entries: 1100,
            large_file_size: 5 * 1024 * 1024 + 3,
            check_timeout: Duration::from_secs(300),
            clean_up: true,
            session_chunk: SESSION_CHUNK_SLACK,
        }
    }
}

/// The name of every check, in the order [`conformance`] runs them.
pub const CHECKS: &[&str] = &[
    "list_empty",
    "list_one",
    "list_many",
    "names",
    "list_missing",
    "hostile_names",
    "list_recursive",
    "empty_file",
    "large_file",
    "ranged_read",
    "overwrite",
    "write_from_file",
    "atomicity",
    "size_mismatch",
    "hashes",
    "mkdir",
    "write_creates_parents",
    "remove",
    "remove_dir_not_empty",
    "not_found",
    "purge",
    "modtime",
    "copy",
    "rename",
    "optional_ops",
    "sync_round_trip",
    "check_report",
    "interrupted_transfer",
    "leftovers",
    "resume",
    "resume_mismatch",
    "session_resume",
    "session_stale",
];

/// Runs the check called `name` (one of [`CHECKS`]) against `remote`.
pub async fn run_check(
    name: &str,
    remote: &Arc<dyn Remote>,
    opts: &ConformanceOptions,
) -> Result<(), String> {
    match name {
        "list_empty" => check_list_empty(remote).await,
        "list_one" => check_list_one(remote).await,
        "list_many" => check_list_many_with(remote, opts.many_entries).await,
        "names" => check_names(remote).await,
        "list_missing" => check_list_missing(remote).await,
        "hostile_names" => check_hostile_names(remote).await,
        "list_recursive" => check_list_recursive(remote).await,
        "empty_file" => check_empty_file(remote).await,
        "large_file" => check_large_file_with(remote, opts.large_file_size).await,
        "ranged_read" => check_ranged_read(remote).await,
        "overwrite" => check_overwrite(remote).await,
        "write_from_file" => check_write_from_file(remote).await,
        "atomicity" => check_atomicity(remote).await,
        "size_mismatch" => check_size_mismatch(remote).await,
        "hashes" => check_hashes(remote).await,
        "mkdir" => check_mkdir(remote).await,
        "write_creates_parents" => check_write_creates_parents(remote).await,
        "remove" => check_remove(remote).await,
        "remove_dir_not_empty" => check_remove_dir_not_empty(remote).await,
        "not_found" => check_not_found(remote).await,
        "purge" => check_purge(remote).await,
        "modtime" => check_modtime(remote).await,
        "copy" => check_copy(remote).await,
        "rename" => check_rename(remote).await,
        "optional_ops" => check_optional_ops(remote).await,
        "sync_round_trip" => check_sync_round_trip(remote).await,
        "check_report" => check_check_report(remote).await,
        "interrupted_transfer" => check_interrupted_transfer(remote).await,
        "leftovers" => check_leftovers(remote).await,
        "resume" => check_resume(remote).await,
        "resume_mismatch" => check_resume_mismatch(remote).await,
        "session_resume" => check_session_resume_sized(remote, opts.session_chunk).await,
        "session_stale" => check_session_stale(remote).await,
        other => Err(format!("unknown conformance check {other:?}")),
    }
}

/// Runs every conformance check against `remote` (an empty directory on the backend), each in
/// its own random sub-directory, and panics listing every check that failed.
pub async fn conformance(remote: Arc<dyn Remote>) {
    conformance_with(remote, ConformanceOptions::default()).await
}

/// [`conformance`] with options.
pub async fn conformance_with(remote: Arc<dyn Remote>, opts: ConformanceOptions) {
    let describe = remote.describe();
    let started = Instant::now();
    let mut failures: Vec<(String, String)> = Vec::new();
    if let Err(msg) = root_is_usable(&remote).await {
        failures.push(("root".to_owned(), msg));
    }
    for name in CHECKS {
        let dir = format!("ck-{name}-{:08x}", fastrand::u32(..));
        let sub = match RemotePath::new(&dir) {
            Ok(d) => Prefix::wrap(remote.clone(), d),
            Err(e) => {
                failures.push((name.to_string(), e.to_string()));
                continue;
            }
        };
        let t = Instant::now();
        let run = AssertUnwindSafe(run_check(name, &sub, &opts)).catch_unwind();
        let result = match tokio::time::timeout(opts.check_timeout, run).await {
            Err(_) => Err(format!("timed out after {:?}", opts.check_timeout)),
            Ok(Err(panic)) => Err(format!("panicked: {}", panic_message(&panic))),
            Ok(Ok(r)) => r,
        };
        match result {
            Ok(()) => {
                eprintln!("conformance {describe}: {name} ok ({:.2?})", t.elapsed());
                if opts.clean_up {
                    clean(&remote, &dir).await;
                }
            }
            Err(msg) => {
                eprintln!(
                    "conformance {describe}: {name} FAILED ({:.2?}): {msg}",
                    t.elapsed()
                );
                failures.push((format!("{name} (in {dir})"), msg));
            }
        }
    }
    if !failures.is_empty() {
        let list: Vec<String> = failures
            .iter()
            .map(|(n, m)| format!("  - {n}: {m}"))
            .collect();
        panic!(
            "conformance of {describe}: {} of {} checks failed ({:.1?}):\n{}",
            failures.len(),
            CHECKS.len(),
            started.elapsed(),
            list.join("\n")
        );
    }
    eprintln!(
        "conformance {describe}: all {} checks passed ({:.1?})",
        CHECKS.len(),
        started.elapsed()
    );
}

/// The root lists without error (or is `NotFound` on a remote without directories) and holds nothing but earlier runs' check directories.
async fn root_is_usable(remote: &Arc<dyn Remote>) -> Result<(), String> {
    let m = match support::ls(remote, &RemotePath::root()).await {
        Ok(m) => m,
        // Below a prefix, a remote without directory objects has no root until a file exists.
        Err(e) if !remote.capabilities().dirs && e.kind() == crate::ErrorKind::NotFound => {
            return Ok(());
        }
        Err(e) => return Err(format!("list of the root: {}", support::show(&e))),
    };
    let strays: Vec<&str> = m
        .keys()
        .map(String::as_str)
        .filter(|k| !k.starts_with("ck-"))
        .collect();
    if strays.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the suite needs an empty root, but it holds {strays:?}"
        ))
    }
}

/// Best-effort removal of a check's directory: `purge` when declared, else a walk.
async fn clean(remote: &Arc<dyn Remote>, dir: &str) {
    let Ok(dir) = RemotePath::new(dir) else {
        return;
    };
    if remote.capabilities().purge && remote.purge(&dir).await.is_ok() {
        return;
    }
    let Ok(all) = listing::walk(remote, &dir).await else {
        return;
    };
    let mut dirs = Vec::new();
    for e in all.values() {
        if e.is_file() {
            let _ = remote.remove_file(&e.path).await;
        } else {
            dirs.push(e.path.clone());
        }
    }
    dirs.sort_by_key(|d| std::cmp::Reverse(d.depth()));
    for d in dirs {
        let _ = remote.remove_dir(&d).await;
    }
    let _ = remote.remove_dir(&dir).await;
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic".to_owned())
}

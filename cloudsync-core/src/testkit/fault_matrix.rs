//! The network fault matrix (DESIGN.md §5): runs of "change a small tree, sync it through a
//! [`ChaosProxy`] that breaks connections, make the proxy calm, sync again" against a real
//! server, checking the safety contract (§4, rules 4 and 6) on the disks themselves after
//! every step, not through the backend under test.
//!
//! Each run:
//!
//! 1. changes the source tree on disk (files added, rewritten, removed; some larger than
//!    1 MiB), with a generator seeded from the matrix seed and the run number;
//! 2. syncs source -> destination with faults and few retries (errors are expected);
//! 3. checks the destination's disk: every file under a final name is a whole version of the
//!    new source or of what was there before the run (else *partial visible* if it is a
//!    prefix of one, *corrupted* if not), and no file that stays in the source went missing
//!    (*lost*: a replacement is atomic); a file under a name in neither version is counted
//!    as *stray* but is no failure, as the server made it and the calm pass deletes it like
//!    any extra file: ProFTPD runs a command line that a reset cut short (`STOR
//!    .cloudsync-t` for our temporary name), Apache leaves its own `.davfs.tmpNNN` when a
//!    PUT body is cut short;
//! 4. makes the proxy calm and syncs again, with `leftover_age` zero;
//! 5. checks that the destination equals the source exactly (missing: *lost*, different:
//!    *corrupted*, extra files: *extra*) and holds none of our temporary files (*temp left*).
//!
//! Replaying a seed repeats the tree changes exactly and the proxy's draws per connection
//! number; which connection gets which number depends on timing, so a replay of faults is
//! close, not exact.
//!
//! One side is the remote under test, reached through the proxy and built afresh for each
//! run's faulty pass (so each run opens new connections, which the proxy may break); the calm
//! pass reuses it, so reconnecting after faults is tested too. The other side is any remote
//! whose root is a local directory (a local remote). [`MatrixReport::line`] is the line the
//! tests print.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use super::proxy::ChaosProxy;
use crate::error::Result;
use crate::ops::{self, SyncOptions};
use crate::remote::Remote;
use crate::temp::is_temp_name;

/// Makes a remote (one call per run); for the side reached through the proxy.
pub type RemoteFactory = Box<dyn Fn() -> BoxFuture<'static, Result<Arc<dyn Remote>>> + Send + Sync>;

/// One side of a matrix: how to get its remote, and the directory on disk its root is.
pub struct Side {
    /// Makes the remote; called for each run's faulty pass (and for a calm pass whose faulty
    /// pass could not even connect).
    pub remote: RemoteFactory,
    /// The local directory the remote's root is (the server's directory for a network remote).
    pub dir: PathBuf,
}

impl fmt::Debug for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Side")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Side {
    /// A side whose remote is made by `make` and whose root is `dir`.
    pub fn new<F, Fut>(dir: impl Into<PathBuf>, make: F) -> Side
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<Arc<dyn Remote>>> + Send + 'static,
    {
        Side {
            remote: Box::new(move || Box::pin(make())),
            dir: dir.into(),
        }
    }
}

/// A matrix to run: a name for the report, both sides, how many runs, the seed.
#[derive(Debug)]
pub struct Matrix {
    /// What the report line is called (`"sftp/OpenSSH upload"`).
    pub name: String,
    /// Where files come from (its directory is changed by each run).
    pub source: Side,
    /// Where they go.
    pub destination: Side,
    /// Runs (see [`matrix_runs`]).
    pub runs: usize,
    /// Seed of the tree changes; the proxy has its own.
    pub seed: u64,
    /// Longest a single sync may take before it counts as hung (and is abandoned).
    pub sync_timeout: Duration,
}

/// What a matrix found. Every count but `runs`, `faults_fired`, `faulty_failed` and
/// `connections` must be zero.
#[derive(Debug, Clone, Default)]
pub struct MatrixReport {
    /// The matrix's name.
    pub name: String,
    /// The seed of the tree changes.
    pub seed: u64,
    /// The proxy's seed.
    pub proxy_seed: u64,
    /// Runs done.
    pub runs: usize,
    /// Faults the proxy fired (resets and stalls).
    pub faults_fired: u64,
    /// Of which stalls.
    pub stalls: u64,
    /// Connections the proxy forwarded.
    pub connections: u64,
    /// Faulty passes that ended with errors (expected; shows the faults bit).
    pub faulty_failed: usize,
    /// Files missing after a calm pass, or gone during a faulty one although the source
    /// still has them.
    pub lost: usize,
    /// Files under a final name that are no whole version (and no prefix of one).
    pub corrupted: usize,
    /// Files under a final name that are a strict prefix of a version: a partial upload.
    pub partial_visible: usize,
    /// Our temporary files on the destination after a calm pass.
    pub temp_left: usize,
    /// Files on the destination after a calm pass that the source does not have.
    pub extra: usize,
    /// Files seen after a faulty pass under a name that is in neither version of the tree
    /// nor ours (not a failure: see the module docs).
    pub stray: usize,
    /// Calm passes that reported errors or syncs that did not finish in time.
    pub calm_failed: usize,
    /// Wall time.
    pub elapsed: Duration,
    /// The first problems, described (run number, path, what).
    pub problems: Vec<String>,
    /// The first observations that are not failures (stray files).
    pub notes: Vec<String>,
}

impl MatrixReport {
    /// Whether nothing was lost, corrupted, partial, left over or failed once calm.
    pub fn is_clean(&self) -> bool {
        self.lost == 0
            && self.corrupted == 0
            && self.partial_visible == 0
            && self.temp_left == 0
            && self.extra == 0
            && self.calm_failed == 0
    }

    /// The matrix line: runs, faults fired, lost, corrupted, partial visible, temp left.
    pub fn line(&self) -> String {
        format!(
            "{:<28} runs {:>4}  faults fired {:>4} (stalls {:>3}, conns {:>5}, faulty runs failed {:>3})  \
             lost {}  corrupted {}  partial visible {}  temp left {}  extra {}  calm failed {}  \
             stray {}  [{:.1}s, seed {:#x}, proxy seed {:#x}]",
            self.name,
            self.runs,
            self.faults_fired,
            self.stalls,
            self.connections,
            self.faulty_failed,
            self.lost,
            self.corrupted,
            self.partial_visible,
            self.temp_left,
            self.extra,
            self.calm_failed,
            self.stray,
            self.elapsed.as_secs_f64(),
            self.seed,
            self.proxy_seed,
        )
    }

    fn note(&mut self, text: String) {
        if self.notes.len() < 20 {
            self.notes.push(text);
        }
    }

    fn problem(&mut self, text: String) {
        if self.problems.len() < 20 {
            self.problems.push(text);
        }
    }
}

/// Runs: `CLOUDSYNC_FAULT_RUNS` if set (and a number), else `default`.
pub fn matrix_runs(default: usize) -> usize {
    std::env::var("CLOUDSYNC_FAULT_RUNS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// The seed: `CLOUDSYNC_FAULT_SEED` if set (decimal or `0x` hex), else a random one. Tests
/// print it, so a failure can be replayed.
pub fn matrix_seed() -> u64 {
    std::env::var("CLOUDSYNC_FAULT_SEED")
        .ok()
        .and_then(|v| {
            let v = v.trim();
            match v.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16).ok(),
                None => v.parse().ok(),
            }
        })
        .unwrap_or_else(|| fastrand::u64(..))
}

/// Sync options of a faulty pass: few retries, short backoff, so faults show.
fn faulty_options() -> SyncOptions {
    SyncOptions {
        retries: 1,
        low_level_retries: 2,
        retry_backoff: Duration::from_millis(10),
        ..Default::default()
    }
}

/// Sync options of a calm pass: the defaults, a short backoff, and our temporary files of any
/// age removed.
fn calm_options() -> SyncOptions {
    SyncOptions {
        retry_backoff: Duration::from_millis(20),
        leftover_age: Some(Duration::ZERO),
        ..Default::default()
    }
}

/// Every file below `root`, relative path to content; directories are walked, symlinks and
/// other kinds ignored. A directory that does not exist is empty.
fn snapshot(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(meta) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if meta.is_dir() {
                walk(root, &p, out);
            } else if meta.is_file() {
                let rel = p
                    .strip_prefix(root)
                    .unwrap_or(&p)
                    .to_string_lossy()
                    .into_owned();
                // A file can vanish between listing and reading (a rename finishing).
                if let Ok(body) = std::fs::read(&p) {
                    out.insert(rel, body);
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn file_name(rel: &str) -> &str {
    rel.rsplit('/').next().unwrap_or(rel)
}

/// Random bytes, fast (8 at a time).
fn random_bytes(rng: &mut fastrand::Rng, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&rng.u64(..).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A file size: one in four between 1 and 2.5 MiB, the rest up to 64 KiB (some empty).
fn random_size(rng: &mut fastrand::Rng, big_allowed: bool) -> usize {
    if big_allowed && rng.u8(..4) == 0 {
        rng.usize((1 << 20) + 1..(5 << 19))
    } else if rng.u8(..8) == 0 {
        0
    } else {
        rng.usize(1..64 * 1024)
    }
}

const DIRS: [&str; 4] = ["", "a/", "a/b/", "c d/"];
const MAX_BIG: usize = 2;

/// Changes the tree below `root` for run `run`: on the first run makes 3 to 6 files; later
/// rewrites about a third of the files, removes about one in ten, adds up to two (at most 8
/// files, at most [`MAX_BIG`] above 1 MiB). Modtimes grow with the run, so size+modtime sees
/// every rewrite.
fn change_tree(root: &Path, rng: &mut fastrand::Rng, run: usize) {
    let current = snapshot(root);
    let mut big = current.values().filter(|v| v.len() > 1 << 20).count();
    let secs = 1_600_000_000 + run as u64 * 1000;
    let mut count = current.len();
    let write = |rel: &str, rng: &mut fastrand::Rng, big: &mut usize, old: Option<usize>| {
        let was_big = old.is_some_and(|l| l > 1 << 20);
        let size = random_size(rng, was_big || *big < MAX_BIG);
        if size > 1 << 20 && !was_big {
            *big += 1;
        }
        if size <= 1 << 20 && was_big {
            *big -= 1;
        }
        super::put_disk_file(root, rel, &random_bytes(rng, size), secs + rng.u64(..900));
    };
    for (rel, body) in &current {
        let roll = rng.u8(..10);
        if roll == 0 && count > 2 {
            let path = root.join(rel);
            std::fs::remove_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            count -= 1;
            if body.len() > 1 << 20 {
                big -= 1;
            }
        } else if roll < 4 {
            write(rel, rng, &mut big, Some(body.len()));
        }
    }
    let adds = if run == 0 {
        rng.usize(3..=6)
    } else {
        rng.usize(0..=2)
    };
    for i in 0..adds {
        if count >= 8 {
            break;
        }
        let rel = format!(
            "{}f{run}-{i}.bin",
            DIRS.get(rng.usize(..DIRS.len())).copied().unwrap_or("")
        );
        write(&rel, rng, &mut big, None);
        count += 1;
    }
}

/// What a file found on the destination is, given the versions it may be.
fn judge(found: &[u8], versions: &[&[u8]]) -> Verdict {
    if versions.contains(&found) {
        Verdict::Whole
    } else if versions
        .iter()
        .any(|v| found.len() < v.len() && v.starts_with(found))
    {
        Verdict::Partial
    } else {
        Verdict::Corrupted
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Whole,
    Partial,
    Corrupted,
}

async fn timed_sync(
    src: &Arc<dyn Remote>,
    dst: &Arc<dyn Remote>,
    opts: &SyncOptions,
    limit: Duration,
) -> std::result::Result<Result<crate::Summary>, ()> {
    tokio::time::timeout(limit, ops::sync(src, dst, opts))
        .await
        .map_err(|_| ())
}

/// Runs `matrix` with `proxy` between the engine and the remote under test, and reports.
/// Which side is behind the proxy is for the caller: its factory must point at
/// `proxy.addr()`. The proxy is left calm.
pub async fn run_matrix(matrix: &Matrix, proxy: &ChaosProxy) -> MatrixReport {
    let started = Instant::now();
    let before = proxy.stats();
    let mut report = MatrixReport {
        name: matrix.name.clone(),
        seed: matrix.seed,
        proxy_seed: proxy.seed(),
        ..Default::default()
    };
    let src_dir = &matrix.source.dir;
    let dst_dir = &matrix.destination.dir;
    for run in 0..matrix.runs {
        let mut rng =
            fastrand::Rng::with_seed(matrix.seed ^ (run as u64).wrapping_mul(0x9E37_79B9));
        let previous = snapshot(dst_dir);
        change_tree(src_dir, &mut rng, run);
        let source = snapshot(src_dir);

        // The faulty pass.
        proxy.set_calm(false);
        let made = tokio::time::timeout(matrix.sync_timeout, async {
            let s = (matrix.source.remote)().await?;
            let d = (matrix.destination.remote)().await?;
            Ok::<_, crate::Error>((s, d))
        })
        .await;
        let mut remotes = None;
        match made {
            Ok(Ok((s, d))) => {
                match timed_sync(&s, &d, &faulty_options(), matrix.sync_timeout).await {
                    Ok(Ok(summary)) if summary.is_ok() => {}
                    Ok(_) => report.faulty_failed += 1,
                    Err(()) => {
                        report.faulty_failed += 1;
                        report.problem(format!(
                            "run {run}: the faulty sync did not finish within {:?}",
                            matrix.sync_timeout
                        ));
                    }
                }
                remotes = Some((s, d));
            }
            // Could not even connect (a fault in the handshake).
            _ => report.faulty_failed += 1,
        }

        // Between the passes: whole versions only, nothing that stays in the source missing.
        let after_faults = snapshot(dst_dir);
        for (rel, body) in &after_faults {
            if is_temp_name(file_name(rel)) {
                continue;
            }
            if !source.contains_key(rel) && !previous.contains_key(rel) {
                // A name the engine never writes: the server's own (module docs). Reported,
                // not failed; the calm pass removes it.
                report.stray += 1;
                report.note(format!(
                    "run {run}: after faults, a stray {rel} ({} bytes), not ours",
                    body.len()
                ));
                continue;
            }
            let versions: Vec<&[u8]> = [source.get(rel), previous.get(rel)]
                .into_iter()
                .flatten()
                .map(Vec::as_slice)
                .collect();
            match judge(body, &versions) {
                Verdict::Whole => {}
                Verdict::Partial => {
                    report.partial_visible += 1;
                    report.problem(format!(
                        "run {run}: after faults, {rel} is a partial file ({} bytes)",
                        body.len()
                    ));
                }
                Verdict::Corrupted => {
                    report.corrupted += 1;
                    report.problem(format!(
                        "run {run}: after faults, {rel} ({} bytes) is no version of it",
                        body.len()
                    ));
                }
            }
        }
        for rel in previous.keys() {
            if source.contains_key(rel) && !after_faults.contains_key(rel) {
                report.lost += 1;
                report.problem(format!(
                    "run {run}: after faults, {rel} is gone although the source still has it"
                ));
            }
        }

        // The calm pass.
        proxy.set_calm(true);
        let remotes = match remotes {
            Some(r) => Some(r),
            None => {
                async {
                    let s = (matrix.source.remote)().await.ok()?;
                    let d = (matrix.destination.remote)().await.ok()?;
                    Some((s, d))
                }
                .await
            }
        };
        match remotes {
            Some((s, d)) => match timed_sync(&s, &d, &calm_options(), matrix.sync_timeout).await {
                Ok(Ok(summary)) if summary.is_ok() => {}
                Ok(Ok(summary)) => {
                    report.calm_failed += 1;
                    let first = summary
                        .errors
                        .first()
                        .map(|e| format!("{}: {}", e.path, e.message))
                        .unwrap_or_default();
                    report.problem(format!(
                        "run {run}: the calm sync reported {} errors, first: {first}",
                        summary.errors.len()
                    ));
                }
                Ok(Err(e)) => {
                    report.calm_failed += 1;
                    report.problem(format!("run {run}: the calm sync failed: {}", e.chain()));
                }
                Err(()) => {
                    report.calm_failed += 1;
                    report.problem(format!(
                        "run {run}: the calm sync did not finish within {:?}",
                        matrix.sync_timeout
                    ));
                }
            },
            None => {
                report.calm_failed += 1;
                report.problem(format!("run {run}: cannot connect while calm"));
            }
        }

        // After the calm pass: exactly the source, nothing of ours left.
        let after = snapshot(dst_dir);
        for (rel, body) in &after {
            if is_temp_name(file_name(rel)) {
                report.temp_left += 1;
                report.problem(format!("run {run}: temporary file {rel} left"));
                continue;
            }
            match source.get(rel) {
                None => {
                    report.extra += 1;
                    report.problem(format!("run {run}: {rel} is not in the source"));
                }
                Some(want) if want == body => {}
                Some(want) => {
                    if judge(body, &[want]) == Verdict::Partial {
                        report.partial_visible += 1;
                    } else {
                        report.corrupted += 1;
                    }
                    report.problem(format!(
                        "run {run}: after the calm sync, {rel} has {} bytes, not the source's {}",
                        body.len(),
                        want.len()
                    ));
                }
            }
        }
        for rel in source.keys() {
            if !after.contains_key(rel) {
                report.lost += 1;
                report.problem(format!("run {run}: after the calm sync, {rel} is missing"));
            }
        }
        report.runs += 1;
    }
    proxy.set_calm(true);
    let stats = proxy.stats();
    report.faults_fired = stats.fired() - before.fired();
    report.stalls = stats.stalls - before.stalls;
    report.connections = stats.connections - before.connections;
    report.elapsed = started.elapsed();
    report
}

/// Prints the report's line (and its problems), and panics unless it is clean and, over 10
/// runs or more, faults fired (a matrix whose faults never fired tests nothing).
pub fn assert_matrix(report: &MatrixReport) {
    println!("{}", report.line());
    for p in &report.problems {
        println!("    {p}");
    }
    for n in &report.notes {
        println!("    note: {n}");
    }
    assert!(
        report.is_clean(),
        "fault matrix {} failed (replay with CLOUDSYNC_FAULT_SEED={:#x} and the proxy seed \
         {:#x}):\n{}\n{}",
        report.name,
        report.seed,
        report.proxy_seed,
        report.line(),
        report.problems.join("\n")
    );
    assert!(
        report.runs < 10 || report.faults_fired > 0,
        "no fault fired in {} runs: {}",
        report.runs,
        report.line()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judge_tells_whole_partial_and_corrupted() {
        let v1: &[u8] = b"hello world";
        let v2: &[u8] = b"other";
        assert_eq!(judge(b"hello world", &[v1, v2]), Verdict::Whole);
        assert_eq!(judge(b"hello", &[v1, v2]), Verdict::Partial);
        assert_eq!(judge(b"", &[v1]), Verdict::Partial);
        assert_eq!(judge(b"hellO", &[v1, v2]), Verdict::Corrupted);
        assert_eq!(judge(b"x", &[]), Verdict::Corrupted);
    }

    #[test]
    fn tree_changes_are_reproducible_and_bounded() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for dir in [a.path(), b.path()] {
            for run in 0..12 {
                let mut rng = fastrand::Rng::with_seed(5 ^ run as u64);
                change_tree(dir, &mut rng, run);
                let t = snapshot(dir);
                assert!((2..=8).contains(&t.len()), "{}", t.len());
                assert!(t.values().filter(|v| v.len() > 1 << 20).count() <= MAX_BIG);
            }
        }
        assert_eq!(snapshot(a.path()), snapshot(b.path()));
    }
}

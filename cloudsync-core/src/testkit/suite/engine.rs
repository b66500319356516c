//! The sync engine against the remote: `copy`, `sync` and `check` between the remote under test
//! and an in-memory peer ([`MemFs`]), a transfer cut mid-stream, and the cleanup of the
//! temporary files an interrupted run leaves behind.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use time::OffsetDateTime;

use super::listing::walk;
use super::support::{Check, content, ensure, expect_kind, get, ls_raw, p, put, show, within};
use crate::error::ErrorKind;
use crate::ops::{self, CheckOptions, SyncOptions};
use crate::path::RemotePath;
use crate::remote::Remote;
use crate::report::{CheckItem, Summary};
use crate::temp::is_temp_name;
use crate::testkit::{Chaos, Fault, FaultPlan, MemFs, Op, Rule};

/// The tree the engine checks copy around: nested folders, an empty file, a file of a few MiB
/// written in several chunks, and names with spaces and non-ASCII characters.
fn sample_tree() -> Vec<(&'static str, Bytes)> {
    vec![
        ("top.txt", Bytes::from_static(b"top level\n")),
        ("empty.dat", Bytes::new()),
        ("big.bin", content(3 * 1024 * 1024 + 17, 7)),
        ("a/b/c/deep.txt", Bytes::from_static(b"deep")),
        ("a/b/sibling.bin", content(70_000, 8)),
        (
            "dir with spaces/file with spaces.txt",
            Bytes::from_static(b"spaces"),
        ),
        (
            "ünïcødé/日本語 ファイル.txt",
            Bytes::from("unicode ✓".as_bytes()),
        ),
        ("ünïcødé/émoji 🎉.md", Bytes::from_static(b"party")),
    ]
}

/// A fresh in-memory peer (its own namespace, so it never overlaps the remote under test).
fn peer(role: &str) -> Arc<dyn Remote> {
    Arc::new(MemFs::new(&format!(
        "memfs://ck-{role}-{:08x}",
        fastrand::u32(..)
    )))
}

/// Writes `files` into the in-memory `peer` with distinct modtimes (whole seconds plus some
/// nanoseconds, so every precision has something to round).
async fn fill(peer: &Arc<dyn Remote>, files: &[(&str, Bytes)]) -> Check {
    for (i, (path, data)) in files.iter().enumerate() {
        let modtime = stamp(1_500_000_000 + i as i64 * 86_461)?;
        let meta = crate::entry::WriteMeta {
            size: Some(data.len() as u64),
            modtime: Some(modtime),
            ..Default::default()
        };
        peer.write(
            &p(path)?,
            super::support::chunked(data.clone(), 64 * 1024),
            meta,
        )
        .await
        .map_err(|e| format!("write {path} to the peer: {}", show(&e)))?;
    }
    Ok(())
}

/// `secs` seconds after the Unix epoch plus 123456789 ns.
fn stamp(secs: i64) -> Result<OffsetDateTime, String> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(secs) * 1_000_000_000 + 123_456_789)
        .map_err(|e| e.to_string())
}

/// Options of the syncs here: quick retries.
fn sync_opts() -> SyncOptions {
    SyncOptions {
        retry_backoff: Duration::from_millis(50),
        ..Default::default()
    }
}

/// Options of a run that must report a failure instead of retrying it away.
fn no_retry_opts() -> SyncOptions {
    SyncOptions {
        retries: 1,
        low_level_retries: 0,
        ..sync_opts()
    }
}

/// Runs `ops::sync` and fails unless it ran without errors.
async fn sync_ok(
    what: &str,
    src: &Arc<dyn Remote>,
    dst: &Arc<dyn Remote>,
    opts: &SyncOptions,
) -> Result<Summary, String> {
    let s = ops::sync(src, dst, opts)
        .await
        .map_err(|e| format!("{what}: {}", show(&e)))?;
    ensure!(s.is_ok(), "{what}: failed files {:?}", s.errors);
    Ok(s)
}

/// Every file below the root of `r` (our temporary files included), path to content.
async fn files(r: &Arc<dyn Remote>) -> Result<BTreeMap<String, Bytes>, String> {
    let mut out = BTreeMap::new();
    for (k, e) in walk_raw(r).await? {
        if e.is_file() {
            let data = get(r, &e.path, None)
                .await
                .map_err(|err| format!("read {k}: {}", show(&err)))?;
            out.insert(k, Bytes::from(data));
        }
    }
    Ok(out)
}

/// Every entry below the root of `r`, our temporary upload files included.
async fn walk_raw(r: &Arc<dyn Remote>) -> Result<BTreeMap<String, crate::Entry>, String> {
    let mut out = BTreeMap::new();
    let mut todo = vec![RemotePath::root()];
    while let Some(d) = todo.pop() {
        let m = ls_raw(r, &d)
            .await
            .map_err(|e| format!("list {d:?}: {}", show(&e)))?;
        for (k, e) in m {
            if e.is_dir() {
                todo.push(e.path.clone());
            }
            out.insert(k, e);
        }
    }
    Ok(out)
}

/// The paths of our temporary upload files anywhere below the root of `r`.
async fn temp_files(r: &Arc<dyn Remote>) -> Result<Vec<String>, String> {
    Ok(walk_raw(r)
        .await?
        .into_values()
        .filter(|e| is_temp_name(e.name()))
        .map(|e| e.path.to_string())
        .collect())
}

/// Fails unless `got` holds exactly the files of `want`, byte for byte.
fn same_files(what: &str, got: &BTreeMap<String, Bytes>, want: &[(&str, Bytes)]) -> Check {
    let want: BTreeMap<String, Bytes> = want
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    let names = |m: &BTreeMap<String, Bytes>| m.keys().cloned().collect::<Vec<_>>();
    ensure!(
        names(got) == names(&want),
        "{what}: files {:?}, want {:?}",
        names(got),
        names(&want)
    );
    for (k, v) in &want {
        ensure!(
            got[k] == *v,
            "{what}: {k} has {} bytes{}, want {} bytes",
            got[k].len(),
            super::support::first_difference(&got[k], v),
            v.len()
        );
    }
    Ok(())
}

/// Fails unless the transfer and delete counts of `s` are `want`.
fn counts(what: &str, s: &Summary, want: (u64, u64)) -> Check {
    ensure!(
        (s.transferred, s.deleted) == want,
        "{what}: transferred {} and deleted {} files, want {} and {} ({s:?})",
        s.transferred,
        s.deleted,
        want.0,
        want.1
    );
    Ok(())
}

/// The engine round trip: a tree (nested folders, an empty file, a few MiB, spaces and
/// non-ASCII names) copied from an in-memory peer to the remote with `ops::copy` is reported
/// identical by `ops::check`; synced back into a fresh peer it comes back byte-identical (with
/// its modtimes when the remote keeps them); a second sync either way transfers nothing; a
/// changed file is the only one transferred; a file only on the destination is deleted.
pub async fn check_sync_round_trip(remote: &Arc<dyn Remote>) -> Check {
    let mut tree = sample_tree();
    let src = peer("src");
    fill(&src, &tree).await?;

    let up = ops::copy(&src, remote, &sync_opts())
        .await
        .map_err(|e| format!("copy to the remote: {}", show(&e)))?;
    ensure!(
        up.is_ok(),
        "copy to the remote: failed files {:?}",
        up.errors
    );
    counts("copy to the remote", &up, (tree.len() as u64, 0))?;
    same_files("the remote after the copy", &files(remote).await?, &tree)?;
    let report = ops::check(&src, remote, &CheckOptions::default())
        .await
        .map_err(|e| format!("check after the copy: {}", show(&e)))?;
    ensure!(
        report.is_identical() && report.matched.len() == tree.len(),
        "check after the copy: {} matched, differ {:?}, only on the source {:?}, only on \
         the remote {:?}, errors {:?}",
        report.matched.len(),
        paths(&report.differ),
        paths(&report.missing_on_dst),
        paths(&report.missing_on_src),
        report.errors
    );

    let back = peer("back");
    let down = sync_ok("sync back", remote, &back, &sync_opts()).await?;
    counts("sync back", &down, (tree.len() as u64, 0))?;
    same_files("the tree synced back", &files(&back).await?, &tree)?;
    let caps = remote.capabilities();
    if caps.write_modtime {
        let precision = caps.modtime_precision.unwrap_or(Duration::from_secs(1));
        let (a, b) = (
            walk(&src, &RemotePath::root()).await?,
            walk(&back, &RemotePath::root()).await?,
        );
        for (k, e) in a.iter().filter(|(_, e)| e.is_file()) {
            let (Some(want), Some(got)) = (e.modtime, b.get(k).and_then(|e| e.modtime)) else {
                return Err(format!("{k}: no modtime after the round trip"));
            };
            ensure!(
                within(got, want, precision),
                "{k}: modtime {got} after the round trip, want {want} (precision {precision:?})"
            );
        }
    }

    // Nothing changed: both legs are no-ops.
    let again = sync_ok("second sync to the remote", &src, remote, &sync_opts()).await?;
    counts("second sync to the remote", &again, (0, 0))?;
    let again = sync_ok("second sync back", remote, &back, &sync_opts()).await?;
    counts("second sync back", &again, (0, 0))?;

    // One file changed (another size, a later modtime), one only on the destination.
    let changed = content(1000, 9);
    put_at(&src, "a/b/sibling.bin", changed.clone(), 1_700_000_000).await?;
    for entry in &mut tree {
        if entry.0 == "a/b/sibling.bin" {
            entry.1 = changed.clone();
        }
    }
    put(remote, &p("a/extra.txt")?, "only on the destination").await?;
    let s = sync_ok("sync after a change", &src, remote, &sync_opts()).await?;
    counts("sync after a change", &s, (1, 1))?;
    same_files("the remote after the change", &files(remote).await?, &tree)?;
    let s = sync_ok("sync the change back", remote, &back, &sync_opts()).await?;
    counts("sync the change back", &s, (1, 0))?;
    same_files(
        "the tree synced back after the change",
        &files(&back).await?,
        &tree,
    )?;
    let s = sync_ok("sync after convergence", &src, remote, &sync_opts()).await?;
    counts("sync after convergence", &s, (0, 0))
}

/// Writes `data` at `path` on the in-memory peer `r` with a modtime of `secs`.
async fn put_at(r: &Arc<dyn Remote>, path: &str, data: Bytes, secs: i64) -> Check {
    let meta = crate::entry::WriteMeta {
        size: Some(data.len() as u64),
        modtime: Some(stamp(secs)?),
        ..Default::default()
    };
    r.write(&p(path)?, super::support::chunked(data, 64 * 1024), meta)
        .await
        .map(|_| ())
        .map_err(|e| format!("write {path}: {}", show(&e)))
}

fn paths(items: &[CheckItem]) -> Vec<String> {
    let mut v: Vec<String> = items.iter().map(|i| i.path.to_string()).collect();
    v.sort();
    v
}

/// `ops::check` between a peer and the remote reports exactly the differing file, the file only
/// on the source and the file only on the remote, and every other file as matching.
pub async fn check_check_report(remote: &Arc<dyn Remote>) -> Check {
    let src = peer("check");
    let same: Vec<(&str, Bytes)> = vec![
        ("same.txt", Bytes::from_static(b"the same on both sides")),
        ("sub/same.bin", content(20_000, 41)),
        ("sub/deeper/empty.dat", Bytes::new()),
    ];
    fill(&src, &same).await?;
    for (path, data) in &same {
        put(remote, &p(path)?, data.clone()).await?;
    }
    put_at(&src, "sub/differs.txt", content(300, 42), 1_600_000_000).await?;
    put(remote, &p("sub/differs.txt")?, content(301, 43)).await?;
    put_at(&src, "only-source/new.txt", content(10, 44), 1_600_000_000).await?;
    put(remote, &p("sub/only-remote.txt")?, content(10, 45)).await?;

    let report = ops::check(&src, remote, &CheckOptions::default())
        .await
        .map_err(|e| format!("check: {}", show(&e)))?;
    ensure!(
        report.errors.is_empty(),
        "check: errors {:?}",
        report.errors
    );
    let mut want_same: Vec<String> = same.iter().map(|(k, _)| (*k).to_owned()).collect();
    want_same.sort();
    let got = (
        paths(&report.matched),
        paths(&report.differ),
        paths(&report.missing_on_dst),
        paths(&report.missing_on_src),
    );
    let want = (
        want_same,
        vec!["sub/differs.txt".to_owned()],
        vec!["only-source/new.txt".to_owned()],
        vec!["sub/only-remote.txt".to_owned()],
    );
    ensure!(
        got == want,
        "check (method {}) reported (matched, differ, only on the source, only on the \
         remote) {got:?}, want {want:?}",
        report.method
    );
    ensure!(
        !report.is_identical(),
        "a report with differences says the trees are identical"
    );
    // One way: files only on the destination are not reported.
    let one_way = ops::check(
        &src,
        remote,
        &CheckOptions {
            one_way: true,
            ..Default::default()
        },
    )
    .await
    .map_err(|e| format!("check --one-way: {}", show(&e)))?;
    ensure!(
        one_way.missing_on_src.is_empty(),
        "check --one-way reported files only on the remote: {:?}",
        paths(&one_way.missing_on_src)
    );
    Ok(())
}

/// A sync whose upload of one file is cut mid-stream reports a temporary error for that file
/// only and leaves nothing under its name and none of our temporary files; a destination-only
/// file survives (errors block deletions); the retried sync is exact and leaves no temporary
/// file.
pub async fn check_interrupted_transfer(remote: &Arc<dyn Remote>) -> Check {
    let tree: Vec<(&str, Bytes)> = vec![
        ("cut.bin", content(2 * 1024 * 1024 + 11, 51)),
        ("keep/one.txt", Bytes::from_static(b"one")),
        ("keep/two.bin", content(100_000, 52)),
    ];
    let src = peer("cut");
    fill(&src, &tree).await?;
    put(remote, &p("stale.txt")?, "only on the destination").await?;

    let cut = p("cut.bin")?;
    let chaos = Arc::new(Chaos::new(
        remote.clone(),
        FaultPlan {
            rules: vec![Rule {
                op: Op::Write,
                path: Some(cut.clone()),
                skip: 0,
                times: 1,
                fault: Fault::WriteCut {
                    after: 1024 * 1024 + 5,
                    kind: ErrorKind::Transient,
                },
            }],
        },
    ));
    let dst: Arc<dyn Remote> = chaos.clone();
    let first = ops::sync(&src, &dst, &no_retry_opts())
        .await
        .map_err(|e| format!("interrupted sync: {}", show(&e)))?;
    ensure!(
        chaos.fired_on(Op::Write, &cut),
        "the cut never fired: {:?}",
        chaos.fired()
    );
    let failed: Vec<&str> = first.errors.iter().map(|e| e.path.as_str()).collect();
    ensure!(
        failed == ["cut.bin"],
        "interrupted sync: failed files {:?}, want only cut.bin",
        first.errors
    );
    ensure!(
        first.errors.iter().all(|e| e.temporary),
        "a cut upload is not reported retryable: {:?}",
        first.errors
    );
    ensure!(
        first.transferred == 2 && first.deleted == 0 && first.deletes_skipped_due_to_errors,
        "interrupted sync: transferred {}, deleted {}, deletes skipped {} (want 2, 0, true)",
        first.transferred,
        first.deleted,
        first.deletes_skipped_due_to_errors
    );
    expect_kind(
        "stat of the cut file",
        remote.stat(&cut).await,
        ErrorKind::NotFound,
    )?;
    let after_cut = files(remote).await?;
    ensure!(
        after_cut.keys().map(String::as_str).collect::<Vec<_>>()
            == ["keep/one.txt", "keep/two.bin", "stale.txt"],
        "after the cut upload the remote holds {:?} (a partial or temporary file is visible)",
        after_cut.keys().collect::<Vec<_>>()
    );

    let second = sync_ok("retried sync", &src, remote, &sync_opts()).await?;
    counts("retried sync", &second, (1, 1))?;
    same_files(
        "the remote after the retried sync",
        &files(remote).await?,
        &tree,
    )
}

/// A leftover of a killed run (a temporary name two days old) is removed by the next sync, one
/// of a run in progress (stamped now) is kept until [`SyncOptions::leftover_age`] says it is
/// old, and a user's file that merely starts like a temporary name is synced like any other.
/// Needs names starting with `.` listed.
pub async fn check_leftovers(remote: &Arc<dyn Remote>) -> Check {
    let tree: Vec<(&str, Bytes)> = vec![
        ("keep/one.txt", Bytes::from_static(b"one")),
        ("keep/two.bin", content(100_000, 52)),
    ];
    let src = peer("leftovers");
    fill(&src, &tree).await?;
    sync_ok("first sync", &src, remote, &sync_opts()).await?;

    // What runs killed mid-upload leave: an old temporary file, and one stamped now (a run in
    // progress could own it). Both sit next to the file they were for.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    let old = format!(
        "keep/.cloudsync-tmp-{:08x}0badcafe.two.bin",
        now - 2 * 86_400
    );
    let fresh = format!("keep/.cloudsync-tmp-{now:08x}0badcafe.two.bin");
    put(remote, &p(&old)?, content(50_000, 53)).await?;
    put(remote, &p(&fresh)?, content(10, 54)).await?;
    // A user's file that merely starts like one is an ordinary file.
    let lookalike = ".cloudsync-tmp-notes.txt";
    put_at(
        &src,
        lookalike,
        Bytes::from_static(b"a user's file"),
        1_600_000_000,
    )
    .await?;
    let mut tree = tree;
    tree.push((lookalike, Bytes::from_static(b"a user's file")));

    let s = sync_ok("sync with leftovers", &src, remote, &sync_opts()).await?;
    ensure!(
        s.leftovers_removed == 1 && s.transferred == 1 && s.deleted == 0,
        "sync with leftovers: removed {} leftovers, transferred {}, deleted {} (want 1, 1, 0)",
        s.leftovers_removed,
        s.transferred,
        s.deleted
    );
    let temps = temp_files(remote).await?;
    ensure!(
        temps == [fresh.clone()],
        "after a sync with the default leftover age the temporary files are {temps:?}, want \
         only the fresh {fresh}"
    );
    let soon = SyncOptions {
        leftover_age: Some(Duration::ZERO),
        ..sync_opts()
    };
    let s = sync_ok("sync with leftover age 0", &src, remote, &soon).await?;
    ensure!(
        s.leftovers_removed == 1 && s.transferred == 0,
        "sync with leftover age 0: removed {} leftovers, transferred {} (want 1, 0)",
        s.leftovers_removed,
        s.transferred
    );
    same_files("the remote after the cleanup", &files(remote).await?, &tree)
}

//! End-to-end tests of the operations on in-memory remotes, with injected faults.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::TryStreamExt;
use time::OffsetDateTime;

use super::*;
use crate::testkit::{FaultOp, Faulty, MemFs};
use crate::{Action, Capabilities, ErrorKind, Event, FilterSet, Reason, RemotePath, memory};

fn fs(name: &str) -> Arc<dyn Remote> {
    Arc::new(MemFs::new(name))
}

fn p(s: &str) -> RemotePath {
    RemotePath::new(s).unwrap()
}

fn t(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_700_000_000 + secs).unwrap()
}

async fn put(r: &Arc<dyn Remote>, path: &str, body: &str, secs: i64) {
    crate::testkit::put_text(r, path, body, Some(t(secs))).await;
}

/// Every file of a remote with its content.
async fn tree(r: &Arc<dyn Remote>) -> BTreeMap<String, String> {
    crate::testkit::text_tree(r).await
}

fn fast() -> SyncOptions {
    SyncOptions {
        retry_backoff: Duration::from_millis(1),
        ..Default::default()
    }
}

#[tokio::test]
async fn sync_copies_new_and_changed_then_deletes_extra() {
    let (src, dst) = (fs("memfs://src"), fs("memfs://dst"));
    put(&src, "a.txt", "alpha", 0).await;
    put(&src, "d/b.txt", "beta", 0).await;
    put(&src, "d/e/c.txt", "gamma", 0).await;
    put(&dst, "d/b.txt", "old beta!", 5).await;
    put(&dst, "extra.txt", "x", 0).await;
    put(&dst, "gone/deep/y.txt", "y", 0).await;

    let s = sync(&src, &dst, &fast()).await.unwrap();
    assert!(s.is_ok(), "{:?}", s.errors);
    assert_eq!(s.transferred, 3);
    assert_eq!(s.deleted, 2);
    assert_eq!(s.dirs_deleted, 2, "gone/deep and gone");
    assert_eq!(tree(&dst).await, tree(&src).await);
    assert!(dst.stat(&p("gone")).await.is_err());
    // Modtimes came along.
    assert_eq!(dst.stat(&p("d/e/c.txt")).await.unwrap().modtime, Some(t(0)));

    // A second run has nothing to do.
    let again = sync(&src, &dst, &fast()).await.unwrap();
    assert_eq!((again.transferred, again.deleted, again.checked), (0, 0, 3));
}

#[tokio::test]
async fn copy_never_deletes() {
    let (src, dst) = (fs("memfs://src"), fs("memfs://dst"));
    put(&src, "a", "1", 0).await;
    put(&dst, "b", "2", 0).await;
    let s = copy(&src, &dst, &fast()).await.unwrap();
    assert_eq!((s.transferred, s.deleted), (1, 0));
    assert_eq!(tree(&dst).await.len(), 2);
}

#[tokio::test]
async fn identical_content_with_other_modtime_only_sets_the_modtime() {
    let (src, dst) = (fs("memfs://src"), fs("memfs://dst"));
    put(&src, "a", "same", 100).await;
    put(&dst, "a", "same", 0).await;
    let s = sync(&src, &dst, &fast()).await.unwrap();
    assert_eq!((s.transferred, s.modtimes_set, s.bytes), (0, 1, 0));
    assert_eq!(dst.stat(&p("a")).await.unwrap().modtime, Some(t(100)));
}

#[tokio::test]
async fn identical_content_is_left_alone_where_an_upload_keeps_the_modtime() {
    // A destination without set_modtime: the content is uploaded again to carry the modtime,
    // unless the remote says an identical upload keeps the old one (Dropbox).
    for keeps in [false, true] {
        let dst: Arc<dyn Remote> =
            Arc::new(MemFs::new("memfs://dst").with_capabilities(Capabilities {
                hashes: vec![crate::HashKind::Md5],
                modtime_precision: Some(Duration::from_secs(1)),
                write_modtime: true,
                set_modtime: false,
                identical_upload_keeps_modtime: keeps,
                dirs: true,
                ..Default::default()
            }));
        let src = fs("memfs://src");
        put(&src, "a", "same", 100).await;
        put(&src, "b", "new!", 100).await;
        put(&dst, "a", "same", 0).await;
        put(&dst, "b", "old!", 0).await;
        let s = sync(&src, &dst, &fast()).await.unwrap();
        assert_eq!(s.transferred, if keeps { 1 } else { 2 }, "keeps {keeps}");
        assert_eq!(tree(&dst).await["b"], "new!");
    }
}

#[tokio::test]
async fn same_size_other_content_and_modtime_is_transferred() {
    let (src, dst) = (fs("memfs://src"), fs("memfs://dst"));
    put(&src, "a", "new!", 100).await;
    put(&dst, "a", "old!", 0).await;
    let s = sync(&src, &dst, &fast()).await.unwrap();
    assert_eq!(s.transferred, 1);
    assert_eq!(tree(&dst).await["a"], "new!");
}

#[tokio::test]
async fn comparison_options() {
    let (src, dst) = (fs("memfs://src"), fs("memfs://dst"));
    put(&src, "same-size", "aaaa", 0).await;
    put(&dst, "same-size", "bbbb", 0).await; // same size and modtime, other content
    put(&src, "newer-dst", "x", 0).await;
    put(&dst, "newer-dst", "yy", 50).await;

    // Default: size+modtime. same-size looks equal; newer-dst differs by size.
    let plan_default = plan(&src, &dst, Mode::Copy, &fast()).await.unwrap();
    let acts: BTreeMap<_, _> = plan_default
        .decisions
        .iter()
        .map(|d| (d.path.to_string(), (d.action, d.reason)))
        .collect();
    assert_eq!(acts["same-size"], (Action::Skip, Reason::Identical));
    assert_eq!(acts["newer-dst"], (Action::Update, Reason::SizeDiffers));

    // --checksum finds the content difference.
    let mut o = fast();
    o.compare.checksum = true;
    let d = plan(&src, &dst, Mode::Copy, &o).await.unwrap();
    assert!(
        d.decisions
            .iter()
            .any(|d| d.path == p("same-size") && d.reason == Reason::HashDiffers)
    );

    // --update keeps the newer destination file.
    let mut o = fast();
    o.compare.update = true;
    let d = plan(&src, &dst, Mode::Copy, &o).await.unwrap();
    assert!(
        d.decisions
            .iter()
            .any(|d| d.path == p("newer-dst") && d.reason == Reason::DestinationNewer)
    );

    // --ignore-existing skips both; --ignore-times transfers both.
    let mut o = fast();
    o.compare.ignore_existing = true;
    assert_eq!(
        plan(&src, &dst, Mode::Copy, &o)
            .await
            .unwrap()
            .changes()
            .count(),
        0
    );
    let mut o = fast();
    o.compare.ignore_times = true;
    assert_eq!(
        plan(&src, &dst, Mode::Copy, &o)
            .await
            .unwrap()
            .changes()
            .count(),
        2
    );

    // --size-only ignores modtimes.
    let (a, b) = (fs("memfs://a"), fs("memfs://b"));
    put(&a, "f", "xx", 0).await;
    put(&b, "f", "yy", 99).await;
    let mut o = fast();
    o.compare.size_only = true;
    assert_eq!(
        plan(&a, &b, Mode::Copy, &o)
            .await
            .unwrap()
            .changes()
            .count(),
        0
    );
}

#[tokio::test]
async fn modify_window_tolerates_small_differences() {
    let (src, dst) = (fs("memfs://src"), fs("memfs://dst"));
    put(&src, "a", "x", 0).await;
    put(&dst, "a", "x", 1).await;
    let mut o = fast();
    o.compare.modify_window = Duration::from_secs(2);
    let s = sync(&src, &dst, &o).await.unwrap();
    assert_eq!((s.transferred, s.modtimes_set, s.skipped), (0, 0, 1));
}

#[tokio::test]
async fn dry_run_and_plan_apply() {
    let (src, dst) = (fs("memfs://src"), fs("memfs://dst"));
    put(&src, "a", "1", 0).await;
    put(&src, "b", "2", 0).await;
    put(&dst, "c", "3", 0).await;
    let before = tree(&dst).await;
    let mut o = fast();
    o.dry_run = true;
    let s = sync(&src, &dst, &o).await.unwrap();
    assert_eq!((s.transferred, s.deleted), (2, 1));
    assert_eq!(tree(&dst).await, before, "dry run changed nothing");

    let pl = plan(&src, &dst, Mode::Sync, &fast()).await.unwrap();
    assert_eq!(pl.changes().count(), 3);
    // The plan survives serialization.
    let json = serde_json::to_string(&pl).unwrap();
    let pl: Plan = serde_json::from_str(&json).unwrap();
    // The source changes after planning: that file is skipped and reported.
    put(&src, "b", "22", 5).await;
    let s = apply(&src, &dst, &pl, &fast()).await.unwrap();
    assert_eq!(s.transferred, 1);
    assert_eq!(s.errors.len(), 1);
    assert_eq!(s.errors[0].kind, ErrorKind::ConditionNotMatch);
    assert!(
        dst.stat(&p("b")).await.is_err(),
        "changed source never half-applied"
    );
    // And the error blocked the delete.
    assert!(dst.stat(&p("c")).await.is_ok());
    assert!(s.deletes_skipped_due_to_errors);
}

#[tokio::test]
async fn errors_block_deletions() {
    let (src, dst) = (fs("memfs://src"), fs("memfs://dst"));
    put(&src, "ok/a", "1", 0).await;
    put(&src, "bad/b", "2", 0).await;
    put(&dst, "bad/b", "2", 0).await;
    put(&dst, "extra", "3", 0).await;
    let faulty = Faulty::new(src.clone());
    faulty.fail(
        FaultOp::List,
        p("bad"),
        u32::MAX,
        ErrorKind::PermissionDenied,
    );
    let src: Arc<dyn Remote> = Arc::new(faulty);
    let s = sync(&src, &dst, &fast()).await.unwrap();
    assert!(!s.is_ok());
    assert!(s.deletes_skipped_due_to_errors);
    assert_eq!(s.deleted, 0);
    assert!(
        dst.stat(&p("extra")).await.is_ok(),
        "nothing deleted after an error"
    );
    assert!(
        dst.stat(&p("bad/b")).await.is_ok(),
        "unlisted source dir is not a deletion"
    );
    assert_eq!(s.transferred, 1, "the readable part was still copied");
}

#[tokio::test]
async fn retries_converge_and_only_redo_failures() {
    let (src, dst) = (fs("memfs://src"), fs("memfs://dst"));
    for i in 0..5 {
        put(&src, &format!("f{i}"), "content", 0).await;
    }
    put(&dst, "extra", "x", 0).await;
    let faulty = Faulty::new(dst.clone());
    faulty.fail(FaultOp::Write, p("f3"), 2, ErrorKind::Transient);
    let dst: Arc<dyn Remote> = Arc::new(faulty.clone());
    let mut o = fast();
    o.low_level_retries = 0;
    o.retries = 3;
    let s = sync(&src, &dst, &o).await.unwrap();
    assert!(s.is_ok(), "{:?}", s.errors);
    assert_eq!(s.retries, 2);
    assert_eq!(s.transferred, 5, "each file counted once");
    assert_eq!(faulty.hits().len(), 2);
    assert_eq!(
        tree(&dst).await,
        tree(&src).await,
        "deletes ran once the retries succeeded"
    );
}

/// Before a whole-pass retry the engine waits `retries_sleep`, and at least the longest
/// Retry-After among the failures it retries.
#[tokio::test(start_paused = true)]
async fn pass_retries_wait_for_retries_sleep_and_retry_after() {
    use crate::testkit::{Chaos, Fault, FaultPlan, Op, Rule};
    use tokio::time::Instant;
    for (sleep, retry_after, want) in [(7, None, 7), (7, Some(20), 20), (30, Some(20), 30)] {
        let (src, dst) = (fs("memfs://src"), fs("memfs://dst"));
        put(&src, "f", "content", 0).await;
        let fault = match retry_after {
            Some(s) => Fault::RateLimited {
                retry_after: Duration::from_secs(s),
            },
            None => Fault::Fail(ErrorKind::Transient),
        };
        let rule = Rule {
            op: Op::Write,
            path: Some(p("f")),
            skip: 0,
            times: 1,
            fault,
        };
        let dst: Arc<dyn Remote> = Arc::new(Chaos::new(dst, FaultPlan { rules: vec![rule] }));
        let mut o = fast();
        o.low_level_retries = 0;
        o.retries_sleep = Duration::from_secs(sleep);
        let t0 = Instant::now();
        let s = copy(&src, &dst, &o).await.unwrap();
        assert!(s.is_ok(), "{:?}", s.errors);
        assert_eq!(s.retries, 1);
        let waited = t0.elapsed();
        assert!(
            waited >= Duration::from_secs(want) && waited < Duration::from_secs(want + 1),
            "sleep {sleep}, retry-after {retry_after:?}: waited {waited:?}"
        );
    }
}

#[tokio::test]
async fn low_level_retries_absorb_transient_failures() {
    let (src, dst) = (fs("memfs://src"), fs("memfs://dst"));
    put(&src, "f", "content", 0).await;
    let faulty = Faulty::new(src.clone());
    faulty.fail(FaultOp::Read, p("f"), 3, ErrorKind::Transient);
    let src: Arc<dyn Remote> = Arc::new(faulty);
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = events.clone();
    let mut o = fast();
    o.events = Some(Arc::new(move |e: &Event| {
        ev.lock().unwrap().push(e.clone())
    }));
    let s = copy(&src, &dst, &o).await.unwrap();
    assert!(s.is_ok());
    assert_eq!(s.retries, 0);
    let retried = events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::Failed {
                    will_retry: true,
                    ..
                }
            )
        })
        .count();
    assert_eq!(retried, 3);
}

#[tokio::test]
async fn an_interrupted_write_leaves_no_file() {
    let (src, dst) = (fs("memfs://src"), fs("memfs://dst"));
    put(&src, "big", &"x".repeat(300_000), 0).await;
    put(&src, "small", "ok", 0).await;
    let faulty = Faulty::new(dst.clone());
    faulty.fail(FaultOp::Write, p("big"), u32::MAX, ErrorKind::Transient);
    let fdst: Arc<dyn Remote> = Arc::new(faulty);
    let mut o = fast();
    o.low_level_retries = 1;
    o.retries = 2;
    let s = sync(&src, &fdst, &o).await.unwrap();
    assert_eq!(s.errors.len(), 1);
    assert_eq!(s.errors[0].path, p("big"));
    assert!(dst.stat(&p("big")).await.is_err(), "no partial file");
    assert_eq!(tree(&dst).await.len(), 1);
}

#[tokio::test]
async fn max_delete_stops_deleting() {
    let (src, dst) = (fs("memfs://src"), fs("memfs://dst"));
    for i in 0..5 {
        put(&dst, &format!("x{i}"), "1", 0).await;
    }
    let mut o = fast();
    o.max_delete = Some(2);
    let s = sync(&src, &dst, &o).await.unwrap();
    assert_eq!(s.deleted, 2);
    assert_eq!(s.errors.len(), 1);
    assert!(s.errors[0].message.contains("max delete limit (2)"));
    assert_eq!(tree(&dst).await.len(), 3);
}

#[tokio::test]
async fn backup_dir_keeps_replaced_and_deleted_files() {
    let (src, dst) = (fs("memfs://src"), fs("memfs://dst"));
    put(&src, "a", "new", 10).await;
    put(&dst, "a", "old content", 0).await;
    put(&dst, "b", "bye", 0).await;
    let mut o = fast();
    o.backup_dir = Some(p("_old"));
    let s = sync(&src, &dst, &o).await.unwrap();
    assert!(s.is_ok(), "{:?}", s.errors);
    let t = tree(&dst).await;
    assert_eq!(t["a"], "new");
    assert_eq!(t["_old/a"], "old content");
    assert_eq!(t["_old/b"], "bye");
    assert!(!t.contains_key("b"));
    assert_eq!(s.backed_up, 2);
}

#[tokio::test]
async fn move_removes_sources_after_verified_copies() {
    let (src, dst) = (fs("memfs://src"), fs("memfs://dst"));
    put(&src, "d/a", "1", 0).await;
    put(&src, "d/e/b", "2", 0).await;
    put(&src, "same", "3", 0).await;
    put(&dst, "same", "3", 0).await;
    let mut o = fast();
    o.delete_empty_src_dirs = true;
    let s = move_files(&src, &dst, &o).await.unwrap();
    assert!(s.is_ok(), "{:?}", s.errors);
    assert_eq!(tree(&src).await.len(), 0);
    assert_eq!(tree(&dst).await.len(), 3);
    assert!(
        src.stat(&p("d")).await.is_err(),
        "empty source dirs removed"
    );
}

#[tokio::test]
async fn move_keeps_sources_that_failed() {
    let (src, dst) = (fs("memfs://src"), fs("memfs://dst"));
    put(&src, "a", "1", 0).await;
    put(&src, "b", "2", 0).await;
    let faulty = Faulty::new(dst.clone());
    faulty.fail(
        FaultOp::Write,
        p("b"),
        u32::MAX,
        ErrorKind::PermissionDenied,
    );
    let fdst: Arc<dyn Remote> = Arc::new(faulty);
    let mut o = fast();
    o.retries = 1;
    let s = move_files(&src, &fdst, &o).await.unwrap();
    assert_eq!(s.errors.len(), 1);
    assert_eq!(tree(&src).await.keys().collect::<Vec<_>>(), ["b"]);
}

#[tokio::test]
async fn check_reports_every_category() {
    let (src, dst) = (fs("memfs://src"), fs("memfs://dst"));
    put(&src, "same", "1", 0).await;
    put(&dst, "same", "1", 9).await;
    put(&src, "differ", "aa", 0).await;
    put(&dst, "differ", "bb", 0).await;
    put(&src, "size", "a", 0).await;
    put(&dst, "size", "aaa", 0).await;
    put(&src, "only-src", "s", 0).await;
    put(&dst, "only-dst", "d", 0).await;
    let r = check(&src, &dst, &CheckOptions::default()).await.unwrap();
    assert_eq!(r.method, "size+md5");
    let lines = r.combined();
    assert_eq!(
        lines,
        ["* differ", "- only-dst", "+ only-src", "= same", "* size"]
    );
    assert!(!r.is_identical());

    let one_way = check(
        &src,
        &dst,
        &CheckOptions {
            one_way: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(one_way.missing_on_src.is_empty());

    let sizes = check(
        &src,
        &dst,
        &CheckOptions {
            size_only: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(sizes.matched.len(), 2, "same + differ (same size)");

    // Without a common hash, --download still finds the difference.
    let (a, b) = (memory(), memory());
    put(&a, "f", "xy", 0).await;
    put(&b, "f", "xz", 0).await;
    let plain = check(&a, &b, &CheckOptions::default()).await.unwrap();
    assert_eq!((plain.method.as_str(), plain.matched.len()), ("size", 1));
    let dl = check(
        &a,
        &b,
        &CheckOptions {
            download: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(dl.differ.len(), 1);
}

#[tokio::test]
async fn check_report_feeds_a_resync() {
    let (src, dst) = (fs("memfs://src"), fs("memfs://dst"));
    for i in 0..4 {
        put(&src, &format!("cam/{i}.jpg"), "img", 0).await;
    }
    put(&dst, "cam/0.jpg", "img", 0).await;
    let r = check(&src, &dst, &CheckOptions::default()).await.unwrap();
    assert_eq!(r.missing_on_dst.len(), 3);
    let paths = r.missing_on_dst.iter().map(|i| i.path.clone()).collect();
    let s = copy_files(&src, &dst, paths, &fast()).await.unwrap();
    assert_eq!(s.transferred, 3);
    assert!(
        check(&src, &dst, &CheckOptions::default())
            .await
            .unwrap()
            .is_identical()
    );
}

#[tokio::test]
async fn filters_apply_to_both_sides() {
    let (src, dst) = (fs("memfs://src"), fs("memfs://dst"));
    put(&src, "keep.jpg", "1", 0).await;
    put(&src, "skip.tmp", "2", 0).await;
    put(&src, "cache/x.jpg", "3", 0).await;
    put(&dst, "old.tmp", "4", 0).await;
    put(&dst, "old.jpg", "5", 0).await;
    let mut o = fast();
    o.filter = FilterSet::builder()
        .exclude("*.tmp")
        .exclude("cache/")
        .build()
        .unwrap();
    let s = sync(&src, &dst, &o).await.unwrap();
    assert!(s.is_ok());
    let t = tree(&dst).await;
    assert_eq!(
        t.keys().collect::<Vec<_>>(),
        ["keep.jpg", "old.tmp"],
        "excluded dst file kept"
    );
    // --delete-excluded removes it.
    o.delete_excluded = true;
    sync(&src, &dst, &o).await.unwrap();
    assert_eq!(tree(&dst).await.keys().collect::<Vec<_>>(), ["keep.jpg"]);
}

#[tokio::test]
async fn files_from_transfers_only_the_listed_files() {
    let (src, dst) = (fs("memfs://src"), fs("memfs://dst"));
    put(&src, "a", "1", 0).await;
    put(&src, "d/b", "2", 0).await;
    put(&src, "c", "3", 0).await;
    let mut o = fast();
    o.filter = FilterSet::builder()
        .files_from_list(vec!["d/b".into(), "a".into(), "missing".into()])
        .build()
        .unwrap();
    let s = copy(&src, &dst, &o).await.unwrap();
    assert!(s.is_ok(), "{:?}", s.errors);
    assert_eq!(tree(&dst).await.keys().collect::<Vec<_>>(), ["a", "d/b"]);
}

#[tokio::test]
async fn refusals_and_missing_source() {
    let r = fs("memfs://same");
    let e = sync(&r, &r, &fast()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    let inner = crate::Prefix::wrap(r.clone(), p("sub"));
    assert!(
        sync(&r, &inner, &fast()).await.is_err(),
        "nested destination refused"
    );

    let (src, dst) = (fs("memfs://src"), fs("memfs://dst"));
    let src = crate::Prefix::wrap(src, p("does-not-exist"));
    let e = sync(&src, &dst, &fast()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn type_conflicts_and_case_duplicates_are_errors_not_deletions() {
    let (src, dst) = (fs("memfs://src"), fs("memfs://dst"));
    put(&src, "x", "file", 0).await;
    put(&dst, "x/inner", "dir", 0).await;
    let s = sync(&src, &dst, &fast()).await.unwrap();
    assert_eq!(s.errors.len(), 1);
    assert!(dst.stat(&p("x/inner")).await.is_ok());

    let src = fs("memfs://src2");
    let ci = MemFs::new("memfs://ci").with_capabilities(Capabilities {
        case_insensitive: true,
        ..MemFs::new("x").capabilities().clone()
    });
    let dst: Arc<dyn Remote> = Arc::new(ci);
    put(&src, "Photo.JPG", "1", 0).await;
    put(&src, "photo.jpg", "2", 0).await;
    put(&dst, "PHOTO.jpg", "3", 0).await;
    put(&dst, "other", "4", 0).await;
    let s = sync(&src, &dst, &fast()).await.unwrap();
    assert!(!s.errors.is_empty());
    assert!(
        dst.stat(&p("other")).await.is_ok(),
        "no deletes after errors"
    );
    assert_eq!(
        tree(&dst).await["PHOTO.jpg"],
        "3",
        "ambiguous file untouched"
    );
}

#[tokio::test]
async fn list_delete_rmdirs_purge() {
    let r = fs("memfs://r");
    put(&r, "a.txt", "1", 0).await;
    put(&r, "d/b.txt", "2", 0).await;
    put(&r, "d/c.log", "3", 0).await;
    put(&r, "d/e/f.log", "4", 0).await;
    r.mkdir(&p("empty/deeper")).await.unwrap();

    let one: Vec<_> = list(&r, &RemotePath::root(), &ListOptions::default())
        .map_ok(|e| e.path.to_string())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(one.len(), 3);
    let depth = ListOptions {
        recursive: true,
        filter: FilterSet::builder().max_depth(2).build().unwrap(),
        ..Default::default()
    };
    let mut two: Vec<String> = list(&r, &RemotePath::root(), &depth)
        .map_ok(|e| e.path.to_string())
        .try_collect()
        .await
        .unwrap();
    two.sort();
    assert_eq!(
        two,
        [
            "a.txt",
            "d",
            "d/b.txt",
            "d/c.log",
            "d/e",
            "empty",
            "empty/deeper"
        ]
    );

    let del = DeleteOptions {
        filter: FilterSet::builder().include("*.log").build().unwrap(),
        rmdirs: true,
        ..Default::default()
    };
    let s = delete(&r, &del).await.unwrap();
    assert_eq!(s.deleted, 2);
    assert!(r.stat(&p("d/e")).await.is_err(), "emptied dir removed");
    assert!(r.stat(&p("d/b.txt")).await.is_ok());

    assert!(
        r.stat(&p("empty")).await.is_err(),
        "--rmdirs removed empty dirs too"
    );
    r.mkdir(&p("empty/deeper")).await.unwrap();
    let s = rmdirs(&r, &RemotePath::root(), true, false).await.unwrap();
    assert_eq!(s.dirs_deleted, 2, "empty and empty/deeper");
    assert!(r.stat(&p("d")).await.is_ok());

    purge(&r, &p("d"), false).await.unwrap();
    assert!(r.stat(&p("d")).await.is_err());
    // Without a purge fast path: file by file.
    let m = memory();
    put(&m, "z/1", "1", 0).await;
    put(&m, "z/2/3", "1", 0).await;
    let s = purge(&m, &p("z"), false).await.unwrap();
    assert_eq!(s.deleted, 2);
    assert!(m.stat(&p("z")).await.is_err());
    assert_eq!(
        cleanup(&m).await.unwrap_err().kind(),
        ErrorKind::Unsupported
    );
}

#[tokio::test]
async fn progress_events_describe_the_run() {
    let (src, dst) = (fs("memfs://src"), fs("memfs://dst"));
    put(&src, "big", &"z".repeat(3 << 20), 0).await;
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = events.clone();
    let mut o = fast();
    o.events = Some(Arc::new(move |e: &Event| {
        ev.lock().unwrap().push(e.clone())
    }));
    copy(&src, &dst, &o).await.unwrap();
    let ev = events.lock().unwrap();
    assert!(matches!(
        ev.first(),
        Some(Event::Planned {
            action: Action::Copy,
            ..
        })
    ));
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::TransferStarted { size, .. } if *size == 3 << 20))
    );
    let progress = ev
        .iter()
        .filter(|e| matches!(e, Event::Progress { .. }))
        .count();
    assert!(progress >= 3, "{progress}");
    assert!(matches!(ev.last(), Some(Event::TransferDone { bytes, .. }) if *bytes == 3 << 20));
}

#[tokio::test]
async fn remotes_without_modtimes_compare_by_size() {
    // memory:// keeps no modtimes: a second sync must not re-upload everything.
    let (src, dst) = (fs("memfs://src"), memory());
    put(&src, "a", "1", 0).await;
    put(&src, "b/c", "22", 0).await;
    assert_eq!(sync(&src, &dst, &fast()).await.unwrap().transferred, 2);
    let again = sync(&src, &dst, &fast()).await.unwrap();
    assert_eq!((again.transferred, again.skipped), (0, 2));
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Trees whose modtimes start at `base`: the two sides never share a modtime, so files
    /// of equal size and modtime (which rclone's rules call identical) have equal content.
    fn arb_tree(base: i64) -> impl Strategy<Value = BTreeMap<String, (String, i64)>> {
        proptest::collection::btree_map(
            "(d[0-2]/){0,2}f[0-4]\\.(txt|tmp)",
            ("[a-c]{0,3}", base..base + 3),
            0..12,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn sync_makes_filtered_trees_equal(
            src_tree in arb_tree(0),
            dst_tree in arb_tree(10),
            exclude_tmp in any::<bool>(),
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let (src, dst) = (fs("memfs://src"), fs("memfs://dst"));
                for (path, (body, secs)) in &src_tree {
                    put(&src, path, body, *secs).await;
                }
                for (path, (body, secs)) in &dst_tree {
                    // A path can't be a file on one side and a dir on the other in this
                    // generator, so every run must succeed.
                    put(&dst, path, body, *secs).await;
                }
                let mut o = fast();
                if exclude_tmp {
                    o.filter = FilterSet::builder().exclude("*.tmp").build().unwrap();
                }
                let s = sync(&src, &dst, &o).await.unwrap();
                prop_assert!(s.is_ok(), "{:?}", s.errors);
                let keep = |t: BTreeMap<String, String>| -> BTreeMap<String, String> {
                    t.into_iter().filter(|(k, _)| !(exclude_tmp && k.ends_with(".tmp"))).collect()
                };
                prop_assert_eq!(keep(tree(&dst).await), keep(tree(&src).await));
                let c = CheckOptions { filter: o.filter.clone(), ..Default::default() };
                let r = check(&src, &dst, &c).await.unwrap();
                prop_assert!(r.is_identical(), "{:?}", r.combined());
                Ok(())
            })?;
        }
    }
}

#[tokio::test]
async fn same_remote_copies_and_moves_on_the_server() {
    let base = Arc::new(MemFs::new("memfs://shared"));
    let faulty = Faulty::new(base.clone());
    // Any download of these files would fail: only a server-side copy or move can succeed.
    faulty.fail(
        FaultOp::Read,
        p("in/a"),
        u32::MAX,
        ErrorKind::PermissionDenied,
    );
    faulty.fail(
        FaultOp::Read,
        p("in/d/b"),
        u32::MAX,
        ErrorKind::PermissionDenied,
    );
    let shared: Arc<dyn Remote> = Arc::new(faulty);
    put(&shared, "in/a", "alpha", 0).await;
    put(&shared, "in/d/b", "beta", 0).await;
    let src = crate::Prefix::wrap(shared.clone(), p("in"));
    let copy_dst = crate::Prefix::wrap(shared.clone(), p("copy"));
    let s = copy(&src, &copy_dst, &fast()).await.unwrap();
    assert!(s.is_ok(), "{:?}", s.errors);
    // Look at the result without the faults.
    let plain: Arc<dyn Remote> = base.clone();
    let view = |d: &str| crate::Prefix::wrap(plain.clone(), p(d));
    assert_eq!(tree(&view("copy")).await, tree(&view("in")).await);
    assert_eq!(copy_dst.stat(&p("d/b")).await.unwrap().modtime, Some(t(0)));

    let move_dst = crate::Prefix::wrap(shared.clone(), p("archive"));
    let s = move_files(&src, &move_dst, &fast()).await.unwrap();
    assert!(s.is_ok(), "{:?}", s.errors);
    assert_eq!(s.transferred, 2);
    assert_eq!(tree(&view("in")).await.len(), 0);
    assert_eq!(tree(&view("archive")).await["d/b"], "beta");
}

#[tokio::test]
async fn copy_files_into_a_folder_below_the_source() {
    let base: Arc<dyn Remote> = fs("memfs://one");
    put(&base, "f.txt", "x", 0).await;
    put(&base, "out/keep", "y", 0).await;
    let out = crate::Prefix::wrap(base.clone(), p("out"));
    let s = copy_files(&base, &out, vec![p("f.txt")], &fast())
        .await
        .unwrap();
    assert_eq!(s.transferred, 1);
    assert_eq!(tree(&base).await["out/f.txt"], "x");
    assert!(
        copy_files(&base, &base, vec![p("f.txt")], &fast())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn copy_file_discards_what_the_destination_stored_wrong() {
    let src = fs("memfs://src");
    put(&src, "a.csv", "alpha", 0).await;
    put(&src, "b.csv", "beta", 0).await;
    let inner = fs("memfs://dst");
    let bad = Arc::new(crate::testkit::corrupting::Corrupting::new(
        inner.clone(),
        ".csv",
    ));
    let dst: Arc<dyn Remote> = bad.clone();
    let o = SyncOptions {
        low_level_retries: 1,
        ..fast()
    };
    let e = copy_file(&src, &dst, &p("a.csv"), &p("x/a.csv"), &o)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
    assert_eq!(bad.writes(), 2, "retried once");
    // The sync's transfers are the same, and are checked the same way.
    let s = sync(&src, &dst, &o).await.unwrap();
    assert_eq!(s.errors.len(), 2, "{:?}", s.errors);
    assert!(tree(&inner).await.is_empty(), "no corrupt copy is left");
}

#[tokio::test]
async fn copy_file_copies_on_the_server_when_it_can() {
    let base = Arc::new(MemFs::new("memfs://shared"));
    let faulty = Faulty::new(base.clone());
    // A download would fail: only a server-side copy can succeed.
    faulty.fail(
        FaultOp::Read,
        p("in/a"),
        u32::MAX,
        ErrorKind::PermissionDenied,
    );
    let shared: Arc<dyn Remote> = Arc::new(faulty);
    put(&shared, "in/a", "alpha", 0).await;
    let src = crate::Prefix::wrap(shared.clone(), p("in"));
    let dst = crate::Prefix::wrap(shared.clone(), p("out"));
    let e = copy_file(&src, &dst, &p("a"), &p("2026/a"), &fast())
        .await
        .unwrap();
    assert_eq!((e.path.as_str(), e.size), ("2026/a", 5));
    let plain: Arc<dyn Remote> = base;
    let files = tree(&plain).await;
    assert_eq!(
        (files["in/a"].as_str(), files["out/2026/a"].as_str()),
        ("alpha", "alpha")
    );
    assert_eq!(dst.stat(&p("2026/a")).await.unwrap().modtime, Some(t(0)));
}

#[tokio::test]
async fn copy_file_reports_progress_under_the_source_name() {
    let (src, dst) = (fs("memfs://src"), fs("memfs://dst"));
    put(&src, "big", &"z".repeat(3 << 20), 0).await;
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = events.clone();
    let mut o = fast();
    o.events = Some(Arc::new(move |e: &Event| {
        ev.lock().unwrap().push(e.clone())
    }));
    copy_file(&src, &dst, &p("big"), &p("archive/big"), &o)
        .await
        .unwrap();
    let ev = events.lock().unwrap();
    assert!(matches!(
        ev.first(),
        Some(Event::TransferStarted { path, size }) if path.as_str() == "big" && *size == 3 << 20
    ));
    let progress: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            Event::Progress { path, bytes, .. } => Some((path.as_str(), *bytes)),
            _ => None,
        })
        .collect();
    assert!(progress.len() >= 3, "{progress:?}");
    assert!(progress.iter().all(|(p, _)| *p == "big"));
    assert_eq!(progress.last().map(|p| p.1), Some(3 << 20));
    assert!(matches!(
        ev.last(),
        Some(Event::TransferDone { path, bytes, action: Action::Copy })
            if path.as_str() == "big" && *bytes == 3 << 20
    ));
}

/// `plan_dir` plans one level and hands back the sub-directories: source ones, and for a sync
/// the destination-only ones (walked on the destination only), whose files become deletions
/// when that pair is planned.
#[tokio::test]
async fn plan_dir_plans_one_level_and_returns_subdirs() {
    let (src, dst) = (fs("src"), fs("dst"));
    put(&src, "a.txt", "a", 0).await;
    put(&src, "keep/b.txt", "b", 0).await;
    put(&dst, "old.txt", "x", 0).await;
    put(&dst, "gone/c.txt", "c", 0).await;
    let root = crate::DirPair::both(RemotePath::root());
    let DirPlan { plan, subdirs, .. } = plan_dir(&src, &dst, Mode::Sync, &root, &fast())
        .await
        .unwrap();
    let mut got: Vec<(String, Action)> = plan
        .decisions
        .iter()
        .map(|d| (d.path.to_string(), d.action))
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        vec![
            ("a.txt".to_string(), Action::Copy),
            ("gone".to_string(), Action::Rmdir),
            ("old.txt".to_string(), Action::Delete),
        ]
    );
    let gone = crate::DirPair {
        src: false,
        ..crate::DirPair::both(p("gone"))
    };
    let keep = crate::DirPair {
        dst: false,
        ..crate::DirPair::both(p("keep"))
    };
    assert_eq!(subdirs, vec![gone.clone(), keep]);
    // The destination-only directory: its file is a deletion, nothing deeper is walked.
    let DirPlan { plan, subdirs, .. } = plan_dir(&src, &dst, Mode::Sync, &gone, &fast())
        .await
        .unwrap();
    assert_eq!(plan.decisions.len(), 1);
    assert_eq!(plan.decisions[0].action, Action::Delete);
    assert_eq!(plan.decisions[0].path, p("gone/c.txt"));
    assert!(subdirs.is_empty());
    // A copy never walks destination-only directories.
    let found = plan_dir(&src, &dst, Mode::Copy, &root, &fast())
        .await
        .unwrap();
    assert_eq!(found.subdirs.len(), 1);
    assert!(found.errors.is_empty());
    // A source sub-directory that vanished since its parent was listed is an error.
    let missing = crate::DirPair::both(p("nowhere"));
    let found = plan_dir(&src, &dst, Mode::Sync, &missing, &fast())
        .await
        .unwrap();
    assert!(
        found
            .plan
            .decisions
            .iter()
            .any(|d| d.action == Action::Error)
    );
    // The message says what happened, not only that something failed.
    assert_eq!(found.errors.len(), 1);
    assert_eq!(found.errors[0].path, p("nowhere"));
    assert_eq!(found.errors[0].kind, ErrorKind::NotFound);
}

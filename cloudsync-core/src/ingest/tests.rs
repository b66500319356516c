//! End-to-end ingest runs on in-memory remotes, with injected faults.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use super::*;
use crate::testkit::{FaultOp, Faulty, MemFs};
use crate::{FilterSet, WriteMeta, bytes_stream};

fn fs(name: &str) -> Arc<dyn Remote> {
    Arc::new(MemFs::new(name))
}

fn p(s: &str) -> RemotePath {
    RemotePath::new(s).unwrap()
}

/// Writes `body` at `path` with a modtime `age` ago.
async fn put(r: &Arc<dyn Remote>, path: &str, body: &str, age: Duration) {
    let meta = WriteMeta {
        size: Some(body.len() as u64),
        modtime: Some(OffsetDateTime::now_utc() - age),
        ..Default::default()
    };
    r.write(&p(path), bytes_stream(body.to_owned()), meta)
        .await
        .unwrap();
}

const OLD: Duration = Duration::from_secs(600);
const NEW: Duration = Duration::from_secs(5);

/// Every file of a remote with its content.
async fn tree(r: &Arc<dyn Remote>) -> BTreeMap<String, String> {
    crate::testkit::text_tree(r).await
}

/// Files below `dir`, with content.
fn under(t: &BTreeMap<String, String>, dir: &str) -> BTreeMap<String, String> {
    t.iter()
        .filter(|(k, _)| k.starts_with(dir))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn fast() -> IngestOptions {
    IngestOptions {
        recheck_delay: None,
        lock_confirm_delay: Duration::from_millis(20),
        retry_backoff: Duration::from_millis(1),
        low_level_retries: 2,
        ..Default::default()
    }
}

fn today() -> String {
    report::utc_date(OffsetDateTime::now_utc())
}

#[tokio::test]
async fn ingests_settled_files_and_leaves_the_rest() {
    let (drop, target) = (fs("memfs://drop"), fs("memfs://target"));
    put(&drop, "a.csv", "alpha", OLD).await;
    put(&drop, "sub/b.csv", "beta", OLD).await;
    put(&drop, "fresh.csv", "being written", NEW).await;
    put(&drop, ".hidden", "h", OLD).await;
    put(&drop, "_partial.csv", "p", OLD).await;
    put(&drop, "sub/_x.csv", "x", OLD).await;
    put(&drop, "_tmp/c.csv", "c", OLD).await;
    put(&drop, ".git/config", "g", OLD).await;
    put(&drop, "archives/old/keep.csv", "k", OLD).await;
    put(&drop, "reports/old.json", "{}", OLD).await;

    let r = ingest(&drop, &target, &fast()).await.unwrap();
    assert!(r.is_ok(), "{:?}", r.failed);
    let got: Vec<&str> = r.ingested.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(got, ["a.csv", "sub/b.csv"]);
    assert_eq!(r.bytes, 9);

    let t = tree(&target).await;
    assert_eq!(t.get("a.csv").map(String::as_str), Some("alpha"));
    assert_eq!(t.get("sub/b.csv").map(String::as_str), Some("beta"));
    assert_eq!(
        t.len(),
        2,
        "only the ingested files (the lock is gone): {t:?}"
    );

    let d = tree(&drop).await;
    for stays in [
        "fresh.csv",
        ".hidden",
        "_partial.csv",
        "sub/_x.csv",
        "_tmp/c.csv",
        ".git/config",
        "archives/old/keep.csv",
        "reports/old.json",
    ] {
        assert!(d.contains_key(stays), "{stays} must stay: {d:?}");
    }
    assert!(!d.contains_key("a.csv") && !d.contains_key("sub/b.csv"));

    // Archive copies with the right content.
    let day = today();
    let archives = under(&d, &format!("archives/{day}/"));
    let want: BTreeMap<String, String> = [
        (format!("archives/{day}/a.csv"), "alpha".to_owned()),
        (format!("archives/{day}/sub/b.csv"), "beta".to_owned()),
    ]
    .into();
    assert_eq!(archives, want);
    assert_eq!(
        r.ingested[0].archive_path.as_ref().map(RemotePath::as_str),
        Some(format!("archives/{day}/a.csv").as_str())
    );

    // Reasons for what stayed.
    let reason = |path: &str| {
        r.skipped
            .iter()
            .find(|s| s.path.as_str() == path)
            .map(|s| s.reason.clone())
    };
    assert!(
        matches!(reason("fresh.csv"), Some(SkipReason::TooRecent { age_secs }) if age_secs < 60)
    );
    assert_eq!(reason("_partial.csv"), Some(SkipReason::Hidden));
    assert_eq!(reason("_tmp"), Some(SkipReason::Hidden));
    assert_eq!(reason(".git"), Some(SkipReason::Hidden));
    assert_eq!(reason("archives"), None, "our own folders are not reported");

    // The report on disk is the returned one.
    assert_eq!(r.report_files.len(), 2);
    let json = &d[r.report_files[0].as_str()];
    let back = IngestReport::from_json(json).unwrap();
    assert_eq!(back.ingested, r.ingested);
    assert_eq!(back.skipped, r.skipped);
    assert_eq!(back.id, r.id);
    let txt = &d[r.report_files[1].as_str()];
    assert!(txt.contains("ingested 2 (9 bytes), skipped"), "{txt}");
    assert!(txt.contains("+ sub/b.csv (4 bytes) -> sub/b.csv"), "{txt}");
    assert!(r.report_files[0].as_str().starts_with("reports/"));
    assert!(
        r.report_files[0]
            .as_str()
            .ends_with(&format!("-{}.json", r.id))
    );
}

#[tokio::test]
async fn second_run_ingests_nothing() {
    let (drop, target) = (fs("memfs://drop"), fs("memfs://target"));
    put(&drop, "a.csv", "alpha", OLD).await;
    put(&drop, "b/c.csv", "gamma", OLD).await;
    let first = ingest(&drop, &target, &fast()).await.unwrap();
    assert_eq!(first.ingested.len(), 2);
    let before = tree(&target).await;
    let second = ingest(&drop, &target, &fast()).await.unwrap();
    assert!(second.ingested.is_empty(), "{:?}", second.ingested);
    assert!(second.failed.is_empty());
    assert_eq!(tree(&target).await, before);
    let d = tree(&drop).await;
    assert_eq!(under(&d, "archives/").len(), 2);
    assert_eq!(under(&d, "reports/").len(), 4, "two runs, json + txt each");
}

#[tokio::test]
async fn files_still_growing_are_left_for_later() {
    let (drop, target) = (fs("memfs://drop"), fs("memfs://target"));
    put(&drop, "done.csv", "complete", OLD).await;
    put(&drop, "growing.csv", "part", OLD).await;
    let writer = drop.clone();
    let grow = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Same old modtime (some uploaders preserve it), but more bytes.
        put(&writer, "growing.csv", "part and more", OLD).await;
    });
    let opts = IngestOptions {
        recheck_delay: Some(Duration::from_millis(400)),
        ..fast()
    };
    let r = ingest(&drop, &target, &opts).await.unwrap();
    grow.await.unwrap();
    let got: Vec<&str> = r.ingested.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(got, ["done.csv"]);
    let s = r.skipped.iter().find(|s| s.path.as_str() == "growing.csv");
    assert_eq!(s.map(|s| &s.reason), Some(&SkipReason::StillChanging));
    assert!(tree(&drop).await.contains_key("growing.csv"));
}

#[tokio::test]
async fn archives_never_replace_an_earlier_one() {
    let (drop, target) = (fs("memfs://drop"), fs("memfs://target"));
    for round in 0..3 {
        put(&drop, "cmd/order.csv", &format!("version {round}"), OLD).await;
        put(&drop, "README", &format!("readme {round}"), OLD).await;
        let r = ingest(&drop, &target, &fast()).await.unwrap();
        assert_eq!(r.ingested.len(), 2);
    }
    let day = today();
    let a = under(&tree(&drop).await, "archives/");
    let want: BTreeMap<String, String> = [
        ("cmd/order.csv", "version 0"),
        ("cmd/order (1).csv", "version 1"),
        ("cmd/order (2).csv", "version 2"),
        ("README", "readme 0"),
        ("README (1)", "readme 1"),
        ("README (2)", "readme 2"),
    ]
    .into_iter()
    .map(|(k, v)| (format!("archives/{day}/{k}"), v.to_owned()))
    .collect();
    assert_eq!(a, want);
    assert_eq!(tree(&target).await["cmd/order.csv"], "version 2");
}

#[tokio::test]
async fn concurrent_runs_do_not_double_process() {
    let (drop, target) = (fs("memfs://drop"), fs("memfs://target"));
    for i in 0..20 {
        put(&drop, &format!("f{i:02}.csv"), &format!("file {i}"), OLD).await;
    }
    let opts = fast();
    let (a, b) = tokio::join!(ingest(&drop, &target, &opts), ingest(&drop, &target, &opts));
    let (ok, err): (Vec<_>, Vec<_>) = [a, b].into_iter().partition(Result::is_ok);
    assert_eq!(ok.len(), 1, "exactly one run proceeds");
    let err = err.into_iter().next().unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(
        err.to_string().contains("another ingest is running"),
        "{err}"
    );
    let report = ok.into_iter().next().unwrap().unwrap();
    assert_eq!(report.ingested.len(), 20);

    let t = tree(&target).await;
    assert_eq!(t.len(), 20);
    let d = tree(&drop).await;
    let archives = under(&d, "archives/");
    assert_eq!(archives.len(), 20, "one archive per file: {archives:?}");
    assert!(archives.keys().all(|k| !k.contains(" (1)")));
    assert_eq!(under(&d, "reports/").len(), 2, "one report");
}

#[tokio::test]
async fn live_lock_blocks_and_stale_lock_is_taken_over() {
    let (drop, target) = (fs("memfs://drop"), fs("memfs://target"));
    put(&drop, "a.csv", "alpha", OLD).await;
    let held = RemoteLock::acquire(
        target.clone(),
        fast().lock_path,
        "ingest",
        Duration::from_secs(3600),
        Duration::ZERO,
    )
    .await
    .unwrap();
    let e = ingest(&drop, &target, &fast()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(tree(&drop).await.contains_key("a.csv"));

    // The same lock counts as stale for a run that tolerates only a short silence.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let opts = IngestOptions {
        stale_lock: Duration::from_millis(10),
        ..fast()
    };
    let r = ingest(&drop, &target, &opts).await.unwrap();
    assert_eq!(r.ingested.len(), 1);
    // The old holder finds out it lost the lock.
    assert_eq!(
        held.release().await.unwrap_err().kind(),
        ErrorKind::Conflict
    );
}

#[tokio::test]
async fn failed_target_write_loses_nothing() {
    let drop = fs("memfs://drop");
    let inner = fs("memfs://target");
    let faulty = Faulty::new(inner.clone());
    faulty.fail(FaultOp::Write, p("b.csv"), u32::MAX, ErrorKind::Transient);
    let target: Arc<dyn Remote> = Arc::new(faulty.clone());
    put(&drop, "a.csv", "alpha", OLD).await;
    put(&drop, "b.csv", "beta is longer", OLD).await;
    put(&drop, "c.csv", "gamma", OLD).await;

    let r = ingest(&drop, &target, &fast()).await.unwrap();
    assert!(!faulty.hits().is_empty());
    let got: Vec<&str> = r.ingested.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(got, ["a.csv", "c.csv"]);
    assert_eq!(r.failed.len(), 1);
    assert_eq!(r.failed[0].path.as_str(), "b.csv");

    let d = tree(&drop).await;
    assert_eq!(d.get("b.csv").map(String::as_str), Some("beta is longer"));
    assert!(!under(&d, "archives/").keys().any(|k| k.ends_with("b.csv")));
    assert!(
        !tree(&inner).await.contains_key("b.csv"),
        "nothing half-written"
    );
    let txt = &d[r.report_files[1].as_str()];
    assert!(txt.contains("! b.csv:"), "{txt}");

    // Once the target works again, the next run takes it.
    let r = ingest(&drop, &inner, &fast()).await.unwrap();
    assert_eq!(r.ingested.len(), 1);
    assert_eq!(tree(&inner).await["b.csv"], "beta is longer");
}

#[tokio::test]
async fn failed_archive_or_removal_loses_nothing() {
    let drop_fs = fs("memfs://drop");
    let archive_fs = fs("memfs://archive");
    let faulty_archive = Faulty::new(archive_fs.clone());
    let day = today();
    faulty_archive.fail(
        FaultOp::Write,
        p(&format!("arch/{day}/a.csv")),
        u32::MAX,
        ErrorKind::PermissionDenied,
    );
    let faulty_drop = Faulty::new(drop_fs.clone());
    faulty_drop.fail(FaultOp::Remove, p("b.csv"), 1, ErrorKind::PermissionDenied);
    let drop: Arc<dyn Remote> = Arc::new(faulty_drop);
    let target = fs("memfs://target");
    put(&drop, "a.csv", "alpha", OLD).await;
    put(&drop, "b.csv", "beta", OLD).await;
    let opts = IngestOptions {
        archive: Some(Location::on(Arc::new(faulty_archive), p("arch"))),
        ..fast()
    };
    let r = ingest(&drop, &target, &opts).await.unwrap();
    assert!(r.ingested.is_empty(), "{:?}", r.ingested);
    assert_eq!(r.failed.len(), 2, "{:?}", r.failed);
    assert!(
        r.failed[1]
            .message
            .contains("not removed from the drop folder")
    );
    let d = tree(&drop_fs).await;
    assert_eq!(d["a.csv"], "alpha");
    assert_eq!(d["b.csv"], "beta");
    // Copies may exist at the target already: nothing is lost, the next run redoes them.
    let r = ingest(
        &drop_fs,
        &target,
        &IngestOptions {
            archive: Some(Location::on(archive_fs.clone(), p("arch"))),
            ..fast()
        },
    )
    .await
    .unwrap();
    assert_eq!(r.ingested.len(), 2);
    let a = tree(&archive_fs).await;
    assert_eq!(a[&format!("arch/{day}/a.csv")], "alpha");
    assert_eq!(a[&format!("arch/{day}/b.csv")], "beta");
    assert_eq!(
        a[&format!("arch/{day}/b (1).csv")],
        "beta",
        "the earlier copy is kept"
    );
}

#[tokio::test]
async fn configured_dirs_on_the_drop_are_excluded_and_filters_apply() {
    let (drop, target) = (fs("memfs://drop"), fs("memfs://target"));
    let elsewhere = fs("memfs://reports");
    put(&drop, "in/a.csv", "alpha", OLD).await;
    put(&drop, "in/a.tmp", "tmp", OLD).await;
    put(&drop, "done/x.csv", "old archive", OLD).await;
    let opts = IngestOptions {
        filter: FilterSet::builder().exclude("*.tmp").build().unwrap(),
        archive: Some(Location::on_drop(p("done"))),
        reports: Some(Location::on(elsewhere.clone(), p("log/ingest"))),
        ..fast()
    };
    let r = ingest(&drop, &target, &opts).await.unwrap();
    let got: Vec<&str> = r.ingested.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(got, ["in/a.csv"]);
    let s = r
        .skipped
        .iter()
        .find(|s| s.path.as_str() == "in/a.tmp")
        .unwrap();
    assert_eq!(s.reason, SkipReason::Excluded);
    let d = tree(&drop).await;
    assert_eq!(d[&format!("done/{}/in/a.csv", today())], "alpha");
    assert_eq!(d["done/x.csv"], "old archive");
    let rep = tree(&elsewhere).await;
    assert_eq!(rep.len(), 2);
    assert!(rep.keys().all(|k| k.starts_with("log/ingest/")));
}

#[tokio::test]
async fn no_archive_and_copy_only_remotes() {
    // A drop remote without rename or copy: the archive is streamed, then the file removed.
    let weak = crate::Capabilities {
        modtime_precision: Some(Duration::from_secs(1)),
        write_modtime: true,
        dirs: true,
        ..Default::default()
    };
    let drop: Arc<dyn Remote> = Arc::new(MemFs::new("memfs://drop").with_capabilities(weak));
    let target = fs("memfs://target");
    put(&drop, "a.csv", "alpha", OLD).await;
    let r = ingest(&drop, &target, &fast()).await.unwrap();
    assert_eq!(r.ingested.len(), 1);
    assert_eq!(
        tree(&drop).await[&format!("archives/{}/a.csv", today())],
        "alpha"
    );
    assert!(!tree(&drop).await.contains_key("a.csv"));

    put(&drop, "b.csv", "beta", OLD).await;
    let opts = IngestOptions {
        archive: None,
        reports: None,
        ..fast()
    };
    let r = ingest(&drop, &target, &opts).await.unwrap();
    assert_eq!(r.ingested.len(), 1);
    assert!(r.ingested[0].archive_path.is_none());
    assert!(r.report_files.is_empty());
    let d = tree(&drop).await;
    assert!(!d.contains_key("b.csv"));
    assert_eq!(tree(&target).await["b.csv"], "beta");
}

#[tokio::test]
async fn same_remote_is_refused() {
    let drop = fs("memfs://same");
    let e = ingest(&drop, &drop, &fast()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
}

#[tokio::test]
async fn same_or_nested_drop_and_target_are_refused() {
    let base = fs("memfs://one");
    put(&base, "drop/a.csv", "alpha", OLD).await;
    put(&base, "drop/inbox/b.csv", "beta", OLD).await;
    let before = tree(&base).await;
    let view = |dir: &str| crate::Prefix::wrap(base.clone(), p(dir));
    for (drop, target) in [
        (view("drop"), view("drop/inbox")),
        (view("drop/inbox"), view("drop")),
        (base.clone(), view("drop")),
        (view("drop"), view("drop")),
    ] {
        let e = ingest(&drop, &target, &fast()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains(&drop.describe()) && msg.contains(&target.describe()),
            "names both: {msg}"
        );
        assert_eq!(tree(&base).await, before, "nothing moved");
    }
    // An object store seen through two views, one inside the other.
    let store = crate::memory_named("store");
    let e = ingest(
        &crate::Prefix::wrap(store.clone(), p("in")),
        &crate::Prefix::wrap(store.clone(), p("in/x/out")),
        &fast(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    // Side by side is fine.
    let r = ingest(&view("drop/inbox"), &view("target"), &fast())
        .await
        .unwrap();
    assert_eq!(r.ingested.len(), 1);
}

#[tokio::test]
async fn archive_inside_the_drop_through_another_remote_is_excluded() {
    let base = fs("memfs://one");
    let drop = crate::Prefix::wrap(base.clone(), p("drop"));
    let target = fs("memfs://target");
    // The archive and report directories are given as remotes of their own that lie inside
    // the drop folder; they must never be ingested, and never be the drop folder itself.
    let opts = IngestOptions {
        archive: Some(Location::on(
            crate::Prefix::wrap(base.clone(), p("drop/done")),
            p("archive"),
        )),
        reports: Some(Location::on(
            crate::Prefix::wrap(base.clone(), p("drop/done/reports")),
            RemotePath::root(),
        )),
        ..fast()
    };
    put(&drop, "a.csv", "alpha", OLD).await;
    let r = ingest(&drop, &target, &opts).await.unwrap();
    assert_eq!(r.ingested.len(), 1);
    let r = ingest(&drop, &target, &opts).await.unwrap();
    assert!(r.ingested.is_empty(), "{:?}", r.ingested);
    assert_eq!(tree(&target).await.len(), 1);
    let d = tree(&base).await;
    assert_eq!(d[&format!("drop/done/archive/{}/a.csv", today())], "alpha");

    let itself = IngestOptions {
        reports: Some(Location::on(base.clone(), p("drop"))),
        ..fast()
    };
    let e = ingest(&drop, &target, &itself).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("report directory"), "{e}");
}

/// What [`Hooked`] runs before a write of the path.
type WriteHook = Box<dyn Fn(&RemotePath) -> futures::future::BoxFuture<'static, ()> + Send + Sync>;

/// A remote that runs a hook before each write (here: to change the drop folder while a file is
/// being archived).
struct Hooked {
    inner: Arc<dyn Remote>,
    hook: WriteHook,
}

impl std::fmt::Debug for Hooked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hooked({:?})", self.inner)
    }
}

#[async_trait::async_trait]
impl Remote for Hooked {
    fn describe(&self) -> String {
        format!("hooked+{}", self.inner.describe())
    }
    fn capabilities(&self) -> &crate::Capabilities {
        self.inner.capabilities()
    }
    fn location(&self) -> Option<crate::Location> {
        self.inner.location()
    }
    async fn list(&self, dir: &RemotePath) -> Result<crate::EntryStream> {
        self.inner.list(dir).await
    }
    async fn stat(&self, path: &RemotePath) -> Result<Entry> {
        self.inner.stat(path).await
    }
    async fn read(
        &self,
        path: &RemotePath,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<crate::ByteStream> {
        self.inner.read(path, range).await
    }
    async fn write(
        &self,
        path: &RemotePath,
        body: crate::ByteStream,
        meta: WriteMeta,
    ) -> Result<Entry> {
        (self.hook)(path).await;
        self.inner.write(path, body, meta).await
    }
    async fn mkdir(&self, dir: &RemotePath) -> Result<()> {
        self.inner.mkdir(dir).await
    }
    async fn remove_file(&self, path: &RemotePath) -> Result<()> {
        self.inner.remove_file(path).await
    }
    async fn remove_dir(&self, dir: &RemotePath) -> Result<()> {
        self.inner.remove_dir(dir).await
    }
}

#[tokio::test]
async fn a_file_changed_while_archived_is_not_removed() {
    let (drop, target, archive_fs) = (fs("memfs://drop"), fs("memfs://target"), fs("memfs://a"));
    put(&drop, "a.csv", "version 1", OLD).await;
    put(&drop, "b.csv", "bravo", OLD).await;
    // The uploader rewrites a.csv while its archive copy is being written: after the target
    // copy and the first check, before the removal.
    let writer = drop.clone();
    let archive: Arc<dyn Remote> = Arc::new(Hooked {
        inner: archive_fs.clone(),
        hook: Box::new(move |path| {
            let writer = writer.clone();
            let hit = path.name() == "a.csv";
            Box::pin(async move {
                if hit {
                    put(&writer, "a.csv", "version 2, longer", NEW).await;
                }
            })
        }),
    });
    let opts = IngestOptions {
        archive: Some(Location::on(archive, p("arch"))),
        ..fast()
    };
    let r = ingest(&drop, &target, &opts).await.unwrap();
    let got: Vec<&str> = r.ingested.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(got, ["b.csv"]);
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    let s = r.skipped.iter().find(|s| s.path.as_str() == "a.csv");
    assert_eq!(s.map(|s| &s.reason), Some(&SkipReason::ChangedDuringIngest));
    // The new version stays for the next run; the copies of the old one stay in place.
    assert_eq!(tree(&drop).await["a.csv"], "version 2, longer");
    assert_eq!(tree(&target).await["a.csv"], "version 1");
    let a = tree(&archive_fs).await;
    assert_eq!(a[&format!("arch/{}/a.csv", today())], "version 1");

    // The next run (once it has settled) takes the new version.
    let r = ingest(
        &drop,
        &target,
        &IngestOptions {
            settle: Duration::ZERO,
            ..fast()
        },
    )
    .await
    .unwrap();
    assert_eq!(r.ingested.len(), 1);
    assert_eq!(tree(&target).await["a.csv"], "version 2, longer");
}

#[tokio::test]
async fn a_file_corrupted_on_its_way_to_the_target_stays_in_the_drop() {
    let (drop, inner) = (fs("memfs://drop"), fs("memfs://target"));
    put(&drop, "a.csv", "version 1", OLD).await;
    put(&drop, "b.txt", "fine", OLD).await;
    let target: Arc<dyn Remote> = Arc::new(crate::testkit::corrupting::Corrupting::new(
        inner.clone(),
        ".csv",
    ));
    let r = ingest(&drop, &target, &fast()).await.unwrap();
    assert_eq!(r.failed.len(), 1, "{:?}", r.failed);
    assert_eq!(r.failed[0].path, p("a.csv"));
    assert_eq!(r.failed[0].kind, ErrorKind::Protocol);
    let t = tree(&drop).await;
    assert_eq!(
        t["a.csv"], "version 1",
        "not removed: its copy was not verified"
    );
    assert!(!t.contains_key("b.txt"), "the good file was ingested");
    let stored = tree(&inner).await;
    assert!(
        !stored.contains_key("a.csv"),
        "no corrupt copy is left: {stored:?}"
    );
    assert_eq!(stored["b.txt"], "fine");
    assert!(under(&t, "archives").keys().all(|k| !k.ends_with("a.csv")));
}

/// A cancel stops the run: files being copied stay in the drop folder (their copies are
/// abandoned, nothing partial shows on the target), the report records `Cancelled`, and the
/// lock is released, so the next run takes what is left at once.
#[tokio::test]
async fn a_cancelled_ingest_keeps_what_it_did_not_finish_and_releases_the_lock() {
    let drop = fs("memfs://drop");
    let target = fs("memfs://target");
    for i in 0..3 {
        put(&drop, &format!("f{i}.bin"), &"x".repeat(100 * 1024), OLD).await;
    }
    let limiter = crate::BandwidthLimiter::new("100k".parse().unwrap(), None);
    let slow = limiter.wrap(target.clone());
    let token = crate::ops::CancelToken::new();
    let later = token.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        later.cancel();
    });
    let opts = IngestOptions {
        transfers: 1,
        archive: None,
        reports: None,
        cancel: Some(token),
        ..fast()
    };
    let r = ingest(&drop, &slow, &opts).await.unwrap();
    assert!(
        r.failed.iter().any(|e| e.kind == ErrorKind::Cancelled),
        "{:?}",
        r.failed
    );
    assert_eq!(r.ingested.len(), 1, "{:?}", r.ingested);
    let left = tree(&drop).await;
    let arrived = tree(&target).await;
    assert_eq!(left.len(), 2, "{:?}", left.keys());
    assert_eq!(arrived.len(), 1, "nothing partial: {:?}", arrived.keys());
    let again = IngestOptions {
        archive: None,
        reports: None,
        ..fast()
    };
    let r = ingest(&drop, &target, &again).await.unwrap();
    assert!(r.is_ok(), "{:?}", r.failed);
    assert_eq!(r.ingested.len(), 2);
    assert!(tree(&drop).await.is_empty());
}

/// Small files share the `transfers` slots as in a sync, where the drop and the target allow
/// it; files above the bound take a whole slot.
#[tokio::test]
async fn small_files_share_transfer_slots() {
    use crate::exec::slots::gauge::Gauge;
    use crate::remote::SmallFileSlots;
    use std::sync::atomic::Ordering;

    async fn peak(slots: SmallFileSlots, size: u64) -> usize {
        let caps = crate::Capabilities {
            small_file_slots: SmallFileSlots::Any,
            ..MemFs::new("x").capabilities().clone()
        };
        let drop: Arc<dyn Remote> = Arc::new(MemFs::new("memfs://drop").with_capabilities(caps));
        let body = "x".repeat(usize::try_from(size).unwrap());
        for i in 0..12 {
            put(&drop, &format!("f{i:02}.csv"), &body, OLD).await;
        }
        let gauge = Gauge::new(slots);
        let target: Arc<dyn Remote> = gauge.clone();
        let opts = IngestOptions {
            transfers: 2,
            ..fast()
        };
        let r = ingest(&drop, &target, &opts).await.unwrap();
        assert!(r.failed.is_empty(), "{:?}", r.failed);
        assert_eq!(r.ingested.len(), 12);
        gauge.peak.load(Ordering::SeqCst)
    }
    let small = SmallFileSlots::SMALL_FILE;
    assert_eq!(peak(SmallFileSlots::Shared(4), small).await, 8);
    assert_eq!(peak(SmallFileSlots::Whole, small).await, 2);
    assert_eq!(peak(SmallFileSlots::Shared(4), small + 1).await, 2);
}

/// Any number of transfers a user asks for runs (the slots are counted with a semaphore,
/// whose size is bounded).
#[tokio::test]
async fn a_huge_transfer_count_is_no_panic() {
    let caps = crate::Capabilities {
        small_file_slots: crate::SmallFileSlots::Shared(4),
        ..MemFs::new("x").capabilities().clone()
    };
    let drop: Arc<dyn Remote> = Arc::new(MemFs::new("memfs://drop").with_capabilities(caps));
    let target: Arc<dyn Remote> = Arc::new(MemFs::new("memfs://target").with_capabilities(
        crate::Capabilities {
            small_file_slots: crate::SmallFileSlots::Any,
            ..MemFs::new("x").capabilities().clone()
        },
    ));
    put(&drop, "a.csv", "alpha", OLD).await;
    let opts = IngestOptions {
        transfers: usize::MAX,
        ..fast()
    };
    let r = ingest(&drop, &target, &opts).await.unwrap();
    assert_eq!(r.ingested.len(), 1);
    assert_eq!(tree(&target).await["a.csv"], "alpha");
}

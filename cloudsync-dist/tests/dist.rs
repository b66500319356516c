//! End-to-end tests of distributed jobs: local trees in temp dirs, a real PostgreSQL started
//! by the harness, workers as tasks of this process.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use cloudsync_core::{
    ByteStream, Capabilities, Config, Entry, EntryStream, Registry, Remote, RemotePath, Result,
    WriteMeta, ops,
};
use cloudsync_dist::testkit::Pg;
use cloudsync_dist::{
    Db, DistError, DistMode, JobId, JobSpec, JobState, Remotes, WorkerOptions, WorkerStats,
};

/// A fixed modification time, so that a destination file can be made identical.
fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn put(root: &Path, rel: &str, body: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(&p, body).expect("write");
    let f = std::fs::File::options().write(true).open(&p).expect("open");
    f.set_modified(t0()).expect("set mtime");
}

/// Every file (with its content) and directory (`None`) under `root`, our temporary files
/// left out.
fn snapshot(root: &Path) -> BTreeMap<String, Option<String>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Option<String>>) {
        for e in std::fs::read_dir(dir).expect("read_dir") {
            let e = e.expect("entry");
            let name = e.file_name().to_string_lossy().into_owned();
            if cloudsync_core::is_temp_name(&name) {
                continue;
            }
            let rel = e
                .path()
                .strip_prefix(root)
                .expect("inside")
                .to_string_lossy()
                .into_owned();
            if e.file_type().expect("type").is_dir() {
                out.insert(rel, None);
                walk(root, &e.path(), out);
            } else {
                out.insert(
                    rel,
                    Some(std::fs::read_to_string(e.path()).unwrap_or_default()),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// A source of several directories (one, `z`, holding the file the slow remote delays) and
/// a destination with identical, different and destination-only files and folders.
fn fixture(src: &Path, dsts: &[&Path]) {
    for d in ["a", "a/b", "a/b/c", "d", "e/f", "e/g", "z"] {
        for i in 0..4 {
            put(src, &format!("{d}/file{i}.txt"), &format!("{d} {i}"));
        }
    }
    for i in 0..5 {
        put(src, &format!("top{i}.txt"), &format!("top {i}"));
    }
    put(src, "same.txt", "same");
    put(src, "a/changed.txt", "new content");
    for dst in dsts {
        put(dst, "same.txt", "same");
        put(dst, "a/changed.txt", "old");
        put(dst, "extra.txt", "only on the destination");
        put(dst, "a/b/gone.txt", "only on the destination");
        put(dst, "old/x.txt", "destination-only folder");
        put(dst, "old/deeper/y.txt", "destination-only folder");
    }
}

static SLOW_ENTERED: AtomicBool = AtomicBool::new(false);
static SLOW_USED: AtomicBool = AtomicBool::new(false);

/// When a [`Delayed`] remote waits its `delay`.
#[derive(Debug)]
enum Pace {
    /// Before the first read (in the process) of a file under this folder: a worker is then
    /// reliably in the middle of that shard.
    FirstReadUnder(RemotePath),
    /// Before every read and every file removal: shards take long enough that idle workers
    /// claim the next ones meanwhile.
    Every,
}

/// A local remote that waits before some operations (see [`Pace`]).
#[derive(Debug)]
struct Delayed {
    inner: Arc<dyn Remote>,
    pace: Pace,
    delay: Duration,
}

#[async_trait]
impl Remote for Delayed {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn capabilities(&self) -> &Capabilities {
        self.inner.capabilities()
    }
    async fn list(&self, dir: &RemotePath) -> Result<EntryStream> {
        self.inner.list(dir).await
    }
    async fn stat(&self, path: &RemotePath) -> Result<Entry> {
        self.inner.stat(path).await
    }
    async fn read(&self, path: &RemotePath, range: Option<Range<u64>>) -> Result<ByteStream> {
        match &self.pace {
            Pace::FirstReadUnder(dir)
                if path.starts_with(dir) && !SLOW_USED.swap(true, Ordering::SeqCst) =>
            {
                SLOW_ENTERED.store(true, Ordering::SeqCst);
                tokio::time::sleep(self.delay).await;
            }
            Pace::Every => tokio::time::sleep(self.delay).await,
            Pace::FirstReadUnder(_) => {}
        }
        self.inner.read(path, range).await
    }
    async fn write(&self, path: &RemotePath, body: ByteStream, meta: WriteMeta) -> Result<Entry> {
        self.inner.write(path, body, meta).await
    }
    async fn mkdir(&self, dir: &RemotePath) -> Result<()> {
        self.inner.mkdir(dir).await
    }
    async fn remove_file(&self, path: &RemotePath) -> Result<()> {
        if matches!(self.pace, Pace::Every) {
            tokio::time::sleep(self.delay).await;
        }
        self.inner.remove_file(path).await
    }
    async fn remove_dir(&self, dir: &RemotePath) -> Result<()> {
        self.inner.remove_dir(dir).await
    }
}

/// Opens [`Delayed`] remotes: type `slowlocal` ([`Pace::FirstReadUnder`] `slow_dir`, 30 s by
/// default) or `paced` ([`Pace::Every`], 100 ms by default), waiting `delay_ms`.
struct DelayedFactory(&'static str);

#[async_trait]
impl cloudsync_core::BackendFactory for DelayedFactory {
    fn type_name(&self) -> &'static str {
        self.0
    }
    async fn open(&self, config: serde_json::Value) -> Result<Arc<dyn Remote>> {
        let root = config["root"].as_str().unwrap_or_default().to_string();
        let (pace, default_ms) = if self.0 == "paced" {
            (Pace::Every, 100)
        } else {
            let dir = RemotePath::new(config["slow_dir"].as_str().unwrap_or("z"))?;
            (Pace::FirstReadUnder(dir), 30_000)
        };
        let delay = Duration::from_millis(config["delay_ms"].as_u64().unwrap_or(default_ms));
        let inner = cloudsync_local::LocalFactory
            .open(serde_json::json!({ "root": root }))
            .await?;
        Ok(Arc::new(Delayed { inner, pace, delay }))
    }
}

/// Backends for the workers: local, plus the remote `slow:` (the source behind a [`Delayed`]
/// remote that waits at its first read under `slow_dir`).
fn remotes(slow_src: Option<(&Path, u64)>) -> Remotes {
    let mut registry = Registry::new();
    registry.register(Arc::new(cloudsync_local::LocalFactory));
    registry.register(Arc::new(DelayedFactory("slowlocal")));
    let mut config = Config::default();
    if let Some((root, delay_ms)) = slow_src {
        config.insert(
            "slow",
            serde_json::json!({
                "type": "slowlocal",
                "root": root.display().to_string(),
                "slow_dir": "z",
                "delay_ms": delay_ms,
            }),
        );
    }
    Remotes { registry, config }
}

fn worker(name: &str) -> WorkerOptions {
    let mut o = WorkerOptions::default().until_idle(true);
    o.name = name.into();
    o.lease = Duration::from_secs(2);
    o.heartbeat = Duration::from_millis(300);
    o.poll = Duration::from_millis(50);
    o.reconnect_for = Duration::from_secs(30);
    o
}

fn spawn_worker(
    db: &Db,
    remotes: Arc<Remotes>,
    opts: WorkerOptions,
) -> tokio::task::JoinHandle<Result<WorkerStats, DistError>> {
    let db = db.clone();
    tokio::spawn(async move { cloudsync_dist::run_worker(&db, &remotes, &opts).await })
}

async fn run_workers(db: &Db, remotes: Arc<Remotes>, n: usize) -> Vec<WorkerStats> {
    let handles: Vec<_> = (0..n)
        .map(|i| spawn_worker(db, remotes.clone(), worker(&format!("w{i}"))))
        .collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("worker task").expect("worker"));
    }
    out
}

async fn local(p: &Path) -> Arc<dyn Remote> {
    use cloudsync_core::BackendFactory;
    cloudsync_local::LocalFactory
        .open(serde_json::json!({ "root": p.display().to_string() }))
        .await
        .expect("open local")
}

/// The same sync in one process, for comparison.
async fn one_process_sync(src: &Path, dst: &Path) -> cloudsync_core::Summary {
    let summary = ops::sync(&local(src).await, &local(dst).await, &Default::default())
        .await
        .expect("one-process sync");
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    summary
}

fn submit_spec(mode: DistMode, src: &str, dst: &Path) -> JobSpec {
    JobSpec::new(mode, src, dst.display().to_string())
}

async fn state(db: &Db, job: JobId) -> JobState {
    cloudsync_dist::status(db, job).await.expect("status").state
}

/// Three workers on one tree give what a one-process sync gives, and the merged report
/// counts every file as the one-process run does.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_workers_equal_a_one_process_sync() {
    let pg = Pg::start();
    let db = Db::new(&pg.url()).expect("db");
    let tmp = tempfile::tempdir().expect("tmp");
    let (src, dist_dst, one_dst) = (
        tmp.path().join("src"),
        tmp.path().join("d1"),
        tmp.path().join("d2"),
    );
    fixture(&src, &[&dist_dst, &one_dst]);

    let spec = submit_spec(DistMode::Sync, src.to_str().expect("utf-8"), &dist_dst);
    let job = cloudsync_dist::submit(&db, &spec).await.expect("submit");
    let stats = run_workers(&db, Arc::new(remotes(None)), 3).await;
    let st = cloudsync_dist::status(&db, job).await.expect("status");
    assert_eq!(st.state, JobState::Done, "{st:?}");
    let single = one_process_sync(&src, &one_dst).await;

    assert_eq!(snapshot(&dist_dst), snapshot(&one_dst));
    assert_eq!(snapshot(&dist_dst), snapshot(&src));
    let report = cloudsync_dist::report(&db, job).await.expect("report");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.transferred, single.transferred);
    assert_eq!(report.bytes, single.bytes);
    assert_eq!(report.checked, single.checked);
    assert_eq!(report.skipped, single.skipped);
    assert_eq!(report.deleted, single.deleted);
    assert_eq!(report.dirs_deleted, single.dirs_deleted);
    assert_eq!(
        report.deleted, 4,
        "extra.txt, gone.txt, old/x.txt, old/deeper/y.txt"
    );
    // 35 source files: 33 transferred, same.txt skipped, changed.txt replaced.
    assert_eq!(report.transferred + report.skipped, 35);
    // Every shard's bookkeeping was committed once: one completion per directory pair
    // (root, 8 source folders, 2 destination-only ones) plus the delete phase (one shard
    // of file deletions, then one for the directories).
    let completed: u64 = stats.iter().map(|s| s.completed).sum();
    assert_eq!(completed, st.shards.done);
    assert_eq!(st.shards.done, 1 + 8 + 2 + 1 + 1, "{st:?}");
    // The JSON is the one-process Summary's.
    let json = serde_json::to_value(&report).expect("json");
    let back: cloudsync_core::Summary = serde_json::from_value(json).expect("same shape");
    assert_eq!(back, report);
}

/// One shard with an error (a source name that is not UTF-8 cannot be copied): the job fails
/// and nothing at all is deleted, though the other shards transferred their files.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_error_in_one_shard_means_zero_deletes() {
    use std::os::unix::ffi::OsStrExt;
    let pg = Pg::start();
    let db = Db::new(&pg.url()).expect("db");
    let tmp = tempfile::tempdir().expect("tmp");
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    fixture(&src, &[&dst]);
    let bad = src
        .join("e/f")
        .join(std::ffi::OsStr::from_bytes(b"bad-\xff-name.txt"));
    std::fs::write(&bad, "x").expect("bad name");
    let before = snapshot(&dst);

    let job = cloudsync_dist::submit(
        &db,
        &submit_spec(DistMode::Sync, src.to_str().expect("utf-8"), &dst),
    )
    .await
    .expect("submit");
    run_workers(&db, Arc::new(remotes(None)), 2).await;
    let st = cloudsync_dist::status(&db, job).await.expect("status");
    assert_eq!(st.state, JobState::Failed, "{st:?}");
    assert_eq!(st.shards.dead, 1, "{st:?}");
    let after = snapshot(&dst);
    for (path, body) in &before {
        if path.starts_with("old") || path == "extra.txt" || path == "a/b/gone.txt" {
            assert_eq!(after.get(path), Some(body), "{path} was deleted");
        }
    }
    assert!(
        after.contains_key("d/file0.txt"),
        "the healthy shards transferred"
    );
    let report = cloudsync_dist::report(&db, job).await.expect("report");
    assert_eq!(report.deleted, 0);
    assert_eq!(report.dirs_deleted, 0);
    assert!(!report.errors.is_empty());
    assert!(report.deletes_skipped_due_to_errors);
    assert!(
        report
            .errors
            .iter()
            // The error says what went wrong there, not only that something did.
            .any(|e| e.path.as_str().starts_with("e/f")
                && e.message != cloudsync_core::Reason::Failed.describe()),
        "{:?}",
        report.errors
    );
}

/// `max_delete` counts the whole job: more candidates than allowed, and nothing is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_delete_applies_to_the_whole_job() {
    let pg = Pg::start();
    let db = Db::new(&pg.url()).expect("db");
    let tmp = tempfile::tempdir().expect("tmp");
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    fixture(&src, &[&dst]);
    let mut spec = submit_spec(DistMode::Sync, src.to_str().expect("utf-8"), &dst);
    // 4 files to delete, in 3 different shards: each shard alone is under the limit.
    spec.options.max_delete = Some(3);
    let job = cloudsync_dist::submit(&db, &spec).await.expect("submit");
    run_workers(&db, Arc::new(remotes(None)), 2).await;
    let st = cloudsync_dist::status(&db, job).await.expect("status");
    assert_eq!(st.state, JobState::Failed);
    assert!(
        st.error.as_deref().unwrap_or("").contains("max delete"),
        "{st:?}"
    );
    assert!(dst.join("extra.txt").exists());
    assert!(dst.join("old/deeper/y.txt").exists());
    let report = cloudsync_dist::report(&db, job).await.expect("report");
    assert_eq!(report.deleted, 0);
    assert!(!report.errors.is_empty());
}

/// Fencing: a worker whose lease expired and was taken over cannot complete the shard.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stale_token_completion_is_refused() {
    let pg = Pg::start();
    let db = Db::new(&pg.url()).expect("db");
    let tmp = tempfile::tempdir().expect("tmp");
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    fixture(&src, &[&dst]);
    let job = cloudsync_dist::submit(
        &db,
        &submit_spec(DistMode::Copy, src.to_str().expect("utf-8"), &dst),
    )
    .await
    .expect("submit");
    use cloudsync_dist::testkit::{claim_for_test, complete_for_test};
    let (shard, t1) = claim_for_test(&db, "first", Duration::from_millis(500))
        .await
        .expect("claim")
        .expect("a shard");
    // Held: nobody else gets it while the lease runs.
    assert_eq!(
        claim_for_test(&db, "second", Duration::from_secs(60))
            .await
            .expect("claim"),
        None
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (again, t2) = claim_for_test(&db, "second", Duration::from_secs(60))
        .await
        .expect("claim")
        .expect("the expired shard");
    assert_eq!(again, shard);
    assert!(t2 > t1);
    match complete_for_test(&db, shard, t1).await {
        Err(DistError::LeaseLost { shard: s, token }) => assert_eq!((s, token), (shard, t1)),
        other => panic!("a stale completion was not refused: {other:?}"),
    }
    complete_for_test(&db, shard, t2)
        .await
        .expect("the owner completes");
    // Exactly once: the same completion again is refused too.
    assert!(matches!(
        complete_for_test(&db, shard, t2).await,
        Err(DistError::LeaseLost { .. })
    ));
    let st = cloudsync_dist::status(&db, job).await.expect("status");
    assert_eq!(st.shards.done, 1);
}

/// A worker killed in the middle of a shard: nothing is deleted while its shard is
/// unfinished; after its lease runs out another worker takes the shard and the job ends
/// exactly as a one-process sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_workers_shard_is_reclaimed_after_its_lease() {
    let pg = Pg::start();
    let db = Db::new(&pg.url()).expect("db");
    let tmp = tempfile::tempdir().expect("tmp");
    let (src, dist_dst, one_dst) = (
        tmp.path().join("src"),
        tmp.path().join("d1"),
        tmp.path().join("d2"),
    );
    fixture(&src, &[&dist_dst, &one_dst]);
    let job = cloudsync_dist::submit(&db, &submit_spec(DistMode::Sync, "slow:", &dist_dst))
        .await
        .expect("submit");
    let remotes = Arc::new(remotes(Some((&src, 60_000))));
    let mut doomed = worker("doomed");
    doomed.until_idle = false;
    let victim = spawn_worker(&db, remotes.clone(), doomed);
    // Let it reach the slow file of `z`, and the other shards finish meanwhile.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !SLOW_ENTERED.load(Ordering::SeqCst) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slow shard never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let helper = tokio::spawn({
        let (db, remotes) = (db.clone(), remotes.clone());
        async move { run_workers(&db, remotes, 1).await }
    });
    // Every other shard finishes; the killed worker's stays.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let st = loop {
        let st = cloudsync_dist::status(&db, job).await.expect("status");
        if st.shards.pending == 0 && st.shards.running == 1 && st.shards.done >= 10 {
            break st;
        }
        assert!(tokio::time::Instant::now() < deadline, "{st:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(st.state, JobState::Running);
    assert!(st.delete_candidates > 0, "{st:?}");
    // Destination-only files wait for the delete phase.
    assert!(dist_dst.join("extra.txt").exists());
    assert!(dist_dst.join("old/deeper/y.txt").exists());
    victim.abort();
    let _ = victim.await;
    tokio::time::timeout(Duration::from_secs(30), helper)
        .await
        .expect("the job finished after the lease expired")
        .expect("helper task");
    let st = cloudsync_dist::status(&db, job).await.expect("status");
    let report = cloudsync_dist::report(&db, job).await.expect("report");
    assert_eq!(st.state, JobState::Done, "{st:?} {:?}", report.errors);
    let single = one_process_sync(&src, &one_dst).await;
    assert_eq!(snapshot(&dist_dst), snapshot(&one_dst));
    let report = cloudsync_dist::report(&db, job).await.expect("report");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    // The files of `z` the killed worker copied before it died count as found identical by
    // the worker that redid the shard: every file is accounted for once.
    assert_eq!(
        report.transferred + report.skipped,
        single.transferred + single.skipped
    );
    assert!(report.transferred >= single.transferred - 3);
    assert_eq!(report.deleted, single.deleted);
    assert_eq!(report.dirs_deleted, single.dirs_deleted);
}

/// The database stopped with `pg_ctl stop -m immediate` in the middle of a job and started
/// again: the worker reconnects, its completion commits once, and the job ends exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_crash_mid_job_then_restart_completes_exactly() {
    let pg = Pg::start();
    let db = Db::new(&pg.url()).expect("db");
    let tmp = tempfile::tempdir().expect("tmp");
    let (src, dist_dst, one_dst) = (
        tmp.path().join("src"),
        tmp.path().join("d1"),
        tmp.path().join("d2"),
    );
    fixture(&src, &[&dist_dst, &one_dst]);
    let job = cloudsync_dist::submit(&db, &submit_spec(DistMode::Sync, "slow:", &dist_dst))
        .await
        .expect("submit");
    let remotes = Arc::new(remotes(Some((&src, 3_000))));
    let mut opts = worker("survivor");
    opts.lease = Duration::from_secs(20);
    let w = spawn_worker(&db, remotes, opts);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !SLOW_ENTERED.load(Ordering::SeqCst) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slow shard never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pg.crash();
    tokio::time::sleep(Duration::from_secs(1)).await;
    pg.start_again();
    let stats = tokio::time::timeout(Duration::from_secs(40), w)
        .await
        .expect("the worker finished")
        .expect("task")
        .expect("worker");
    assert_eq!(state(&db, job).await, JobState::Done);
    let single = one_process_sync(&src, &one_dst).await;
    assert_eq!(snapshot(&dist_dst), snapshot(&one_dst));
    let report = cloudsync_dist::report(&db, job).await.expect("report");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.transferred, single.transferred);
    assert_eq!(report.deleted, single.deleted);
    assert_eq!(stats.lost, 0);
}

/// Clear errors: wrong password, nothing listening, a schema from a newer version, a
/// location carrying a secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_and_schema_errors_are_clear() {
    let pg = Pg::start();
    let wrong = Db::new(&pg.url_with_password("not-the-password")).expect("db");
    let e = wrong.connect().await.expect_err("wrong password accepted");
    assert!(matches!(e, DistError::Auth { .. }), "{e:?}");
    assert!(!e.to_string().contains("not-the-password"), "{e}");
    assert!(e.to_string().contains("wrong user name or password"), "{e}");

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let nowhere =
        Db::new(&format!("postgres://postgres:pw@127.0.0.1:{port}/postgres")).expect("db");
    let e = nowhere.connect().await.expect_err("connected to nothing");
    assert!(matches!(e, DistError::Unreachable { .. }), "{e:?}");
    assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");

    let db = Db::new(&pg.url()).expect("db");
    let client = db.connect().await.expect("connect and migrate");
    let v: i32 = client
        .query_one("SELECT version FROM cloudsync.schema_version", &[])
        .await
        .expect("version")
        .get(0);
    assert_eq!(v, cloudsync_dist::SCHEMA_VERSION);
    // Connecting again leaves a current schema as it is.
    db.connect().await.expect("second connect");
    client
        .execute(
            "UPDATE cloudsync.schema_version SET version = version + 1",
            &[],
        )
        .await
        .expect("bump");
    let e = db.connect().await.expect_err("a newer schema accepted");
    assert!(matches!(e, DistError::SchemaTooNew { .. }), "{e:?}");
    assert!(e.to_string().contains("newer"), "{e}");
    client
        .execute(
            "UPDATE cloudsync.schema_version SET version = version - 1",
            &[],
        )
        .await
        .expect("restore");

    let spec = JobSpec::new(DistMode::Copy, "sftp://user:hunter2@host/dir", "/tmp/x");
    let e = cloudsync_dist::submit(&db, &spec)
        .await
        .expect_err("a secret was stored");
    assert!(!e.to_string().contains("hunter2"), "{e}");
}

/// A worker that cannot open a job's remotes (the remote is not in its config) hands the
/// shard back without counting an attempt and leaves the job to workers that can.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_without_the_remote_leaves_the_job_to_others() {
    let pg = Pg::start();
    let db = Db::new(&pg.url()).expect("db");
    let tmp = tempfile::tempdir().expect("tmp");
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    fixture(&src, &[&dst]);
    let job = cloudsync_dist::submit(&db, &submit_spec(DistMode::Copy, "slow:", &dst))
        .await
        .expect("submit");
    // Without `slow` in its config: returns, having done nothing to the job.
    let stats = run_workers(&db, Arc::new(remotes(None)), 1).await;
    assert_eq!(stats[0].completed + stats[0].failed, 0, "{stats:?}");
    let st = cloudsync_dist::status(&db, job).await.expect("status");
    assert_eq!(st.state, JobState::Running);
    assert_eq!(st.shards.pending, 1);
    // A worker that has it runs the job; three such handovers would have killed the shard.
    run_workers(&db, Arc::new(remotes(Some((&src, 0)))), 1).await;
    assert_eq!(state(&db, job).await, JobState::Done);
    assert!(dst.join("z/file0.txt").exists());
}

/// A local remote that fails while the file `switch` exists: reads and writes of files under
/// `fail_dir` (an error in that shard), or, without one, every removal (the delete phase).
#[derive(Debug)]
struct Switched {
    inner: Arc<dyn Remote>,
    switch: std::path::PathBuf,
    fail_dir: Option<RemotePath>,
}

impl Switched {
    fn on(&self) -> bool {
        self.switch.exists()
    }
    fn refuse(&self, what: &str) -> cloudsync_core::Error {
        cloudsync_core::Error::new(
            cloudsync_core::ErrorKind::PermissionDenied,
            format!("injected: {what} refused"),
        )
    }
}

#[async_trait]
impl Remote for Switched {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn capabilities(&self) -> &Capabilities {
        self.inner.capabilities()
    }
    async fn list(&self, dir: &RemotePath) -> Result<EntryStream> {
        self.inner.list(dir).await
    }
    async fn stat(&self, path: &RemotePath) -> Result<Entry> {
        self.inner.stat(path).await
    }
    async fn read(&self, path: &RemotePath, range: Option<Range<u64>>) -> Result<ByteStream> {
        if self.on() && self.fail_dir.as_ref().is_some_and(|d| path.starts_with(d)) {
            return Err(self.refuse("read"));
        }
        self.inner.read(path, range).await
    }
    async fn write(&self, path: &RemotePath, body: ByteStream, meta: WriteMeta) -> Result<Entry> {
        if self.on() && self.fail_dir.as_ref().is_some_and(|d| path.starts_with(d)) {
            return Err(self.refuse("write"));
        }
        self.inner.write(path, body, meta).await
    }
    async fn mkdir(&self, dir: &RemotePath) -> Result<()> {
        self.inner.mkdir(dir).await
    }
    async fn remove_file(&self, path: &RemotePath) -> Result<()> {
        if self.on() && self.fail_dir.is_none() {
            return Err(self.refuse("remove"));
        }
        self.inner.remove_file(path).await
    }
    async fn remove_dir(&self, dir: &RemotePath) -> Result<()> {
        if self.on() && self.fail_dir.is_none() {
            return Err(self.refuse("rmdir"));
        }
        self.inner.remove_dir(dir).await
    }
}

struct SwitchedFactory;

#[async_trait]
impl cloudsync_core::BackendFactory for SwitchedFactory {
    fn type_name(&self) -> &'static str {
        "switched"
    }
    async fn open(&self, config: serde_json::Value) -> Result<Arc<dyn Remote>> {
        let root = config["root"].as_str().unwrap_or_default().to_string();
        let switch = config["switch"].as_str().unwrap_or_default().into();
        let fail_dir = match config["fail_dir"].as_str() {
            Some(d) => Some(RemotePath::new(d)?),
            None => None,
        };
        let inner = cloudsync_local::LocalFactory
            .open(serde_json::json!({ "root": root }))
            .await?;
        Ok(Arc::new(Switched {
            inner,
            switch,
            fail_dir,
        }))
    }
}

/// Local backends plus `sw:`, a [`Switched`] remote at `root` failing while `switch` exists
/// (reads under `fail_dir`, or removals when there is none).
fn switched_remotes(root: &Path, switch: &Path, fail_dir: Option<&str>) -> Arc<Remotes> {
    let mut r = remotes(None);
    r.registry.register(Arc::new(SwitchedFactory));
    let mut section = serde_json::json!({
        "type": "switched",
        "root": root.display().to_string(),
        "switch": switch.display().to_string(),
    });
    if let Some(d) = fail_dir {
        section["fail_dir"] = d.into();
    }
    r.config.insert("sw", section);
    Arc::new(r)
}

async fn run_workers_with(db: &Db, remotes: Arc<Remotes>, n: usize, max_attempts: i32) {
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let mut o = worker(&format!("w{i}"));
            o.max_attempts = max_attempts;
            spawn_worker(db, remotes.clone(), o)
        })
        .collect();
    for h in handles {
        h.await.expect("worker task").expect("worker");
    }
}

/// A delete phase that died (its shard given up, the job failed) is reopened by `resume`:
/// nothing had been deleted, and after it everything is, exactly as a one-process sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resume_reopens_a_delete_phase_that_was_cut() {
    let pg = Pg::start();
    let db = Db::new(&pg.url()).expect("db");
    let tmp = tempfile::tempdir().expect("tmp");
    let (src, dst, one) = (
        tmp.path().join("src"),
        tmp.path().join("dst"),
        tmp.path().join("one"),
    );
    fixture(&src, &[&dst, &one]);
    let switch = tmp.path().join("removals-fail");
    std::fs::write(&switch, "").expect("switch");
    let remotes = switched_remotes(&dst, &switch, None);
    let job = cloudsync_dist::submit(
        &db,
        &JobSpec::new(DistMode::Sync, src.to_str().expect("utf-8"), "sw:"),
    )
    .await
    .expect("submit");
    run_workers_with(&db, remotes.clone(), 2, 1).await;
    let st = cloudsync_dist::status(&db, job).await.expect("status");
    assert_eq!(st.state, JobState::Failed, "{st:?}");
    assert!(dst.join("extra.txt").exists() && dst.join("old/deeper/y.txt").exists());

    let r = cloudsync_dist::resume(&db, job).await.expect("resume");
    assert_eq!(r.reopened, Some(JobState::Deleting), "{r:?}");
    assert_eq!((r.revived, r.state), (1, JobState::Deleting), "{r:?}");
    std::fs::remove_file(&switch).expect("switch off");
    run_workers_with(&db, remotes, 2, 1).await;
    assert_eq!(state(&db, job).await, JobState::Done);
    let single = one_process_sync(&src, &one).await;
    assert_eq!(snapshot(&dst), snapshot(&one));
    let report = cloudsync_dist::report(&db, job).await.expect("report");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.deleted, single.deleted);
    assert_eq!(report.dirs_deleted, single.dirs_deleted);
    let e = cloudsync_dist::resume(&db, job)
        .await
        .expect_err("a done job resumed");
    assert!(e.to_string().contains("done"), "{e}");
}

/// A coordinator that died holding a lease, then a copy phase that failed in one shard:
/// `resume` requeues the expired lease (the dead owner's completion is refused), and after the
/// failure queues the failed shard again behind a closed delete gate; once it succeeds the
/// job ends as a one-process sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resume_requeues_expired_leases_and_reruns_a_failed_copy_phase() {
    use cloudsync_dist::testkit::{claim_for_test, complete_for_test};
    let pg = Pg::start();
    let db = Db::new(&pg.url()).expect("db");
    let tmp = tempfile::tempdir().expect("tmp");
    let (src, dst, one) = (
        tmp.path().join("src"),
        tmp.path().join("dst"),
        tmp.path().join("one"),
    );
    fixture(&src, &[&dst, &one]);
    let switch = tmp.path().join("reads-of-z-fail");
    std::fs::write(&switch, "").expect("switch");
    let remotes = switched_remotes(&src, &switch, Some("z"));
    let job = cloudsync_dist::submit(&db, &submit_spec(DistMode::Sync, "sw:", &dst))
        .await
        .expect("submit");
    let (shard, dead_token) = claim_for_test(&db, "crashed", Duration::from_millis(200))
        .await
        .expect("claim")
        .expect("the root shard");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let r = cloudsync_dist::resume(&db, job).await.expect("resume");
    assert_eq!((r.requeued, r.revived, r.reopened), (1, 0, None), "{r:?}");
    assert_eq!(r.state, JobState::Running);
    assert!(matches!(
        complete_for_test(&db, shard, dead_token).await,
        Err(DistError::LeaseLost { .. })
    ));

    run_workers_with(&db, remotes.clone(), 2, 1).await;
    let st = cloudsync_dist::status(&db, job).await.expect("status");
    assert_eq!((st.state, st.shards.dead), (JobState::Failed, 1), "{st:?}");
    assert!(dst.join("extra.txt").exists(), "deleted despite an error");

    let r = cloudsync_dist::resume(&db, job).await.expect("resume");
    assert_eq!(r.reopened, Some(JobState::Running), "{r:?}");
    assert_eq!((r.revived, r.state), (1, JobState::Running), "{r:?}");
    // Still failing: the gate stays closed again.
    run_workers_with(&db, remotes.clone(), 1, 1).await;
    assert_eq!(state(&db, job).await, JobState::Failed);
    assert!(dst.join("extra.txt").exists(), "deleted despite an error");

    cloudsync_dist::resume(&db, job).await.expect("resume");
    std::fs::remove_file(&switch).expect("switch off");
    run_workers_with(&db, remotes, 2, 1).await;
    assert_eq!(state(&db, job).await, JobState::Done);
    one_process_sync(&src, &one).await;
    assert_eq!(snapshot(&dst), snapshot(&one));
    let report = cloudsync_dist::report(&db, job).await.expect("report");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.deleted, 4);
}

/// `resume` makes the gated transition a dead coordinator never made, and refuses what
/// cannot be resumed: a missing job, a cancelled one, one failed by its max-delete limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resume_finishes_a_cut_transition_and_refuses_what_it_cannot_resume() {
    use cloudsync_dist::testkit::{claim_for_test, complete_for_test};
    let pg = Pg::start();
    let db = Db::new(&pg.url()).expect("db");
    let tmp = tempfile::tempdir().expect("tmp");
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    fixture(&src, &[&dst]);
    let spec = submit_spec(DistMode::Copy, src.to_str().expect("utf-8"), &dst);
    let job = cloudsync_dist::submit(&db, &spec).await.expect("submit");
    let (shard, token) = claim_for_test(&db, "w", Duration::from_secs(60))
        .await
        .expect("claim")
        .expect("shard");
    // Completed (no children), but the process died before the job's transition.
    complete_for_test(&db, shard, token)
        .await
        .expect("complete");
    assert_eq!(state(&db, job).await, JobState::Running);
    let r = cloudsync_dist::resume(&db, job).await.expect("resume");
    assert_eq!(r.state, JobState::Done, "{r:?}");

    assert!(matches!(
        cloudsync_dist::resume(&db, 999_999).await,
        Err(DistError::NoSuchJob(999_999))
    ));
    let job = cloudsync_dist::submit(&db, &spec).await.expect("submit");
    cloudsync_dist::cancel(&db, job).await.expect("cancel");
    let e = cloudsync_dist::resume(&db, job)
        .await
        .expect_err("cancelled");
    assert!(e.to_string().contains("cancelled"), "{e}");

    let mut spec = submit_spec(DistMode::Sync, src.to_str().expect("utf-8"), &dst);
    spec.options.max_delete = Some(1);
    let job = cloudsync_dist::submit(&db, &spec).await.expect("submit");
    run_workers(&db, Arc::new(remotes(None)), 2).await;
    assert_eq!(state(&db, job).await, JobState::Failed);
    let e = cloudsync_dist::resume(&db, job)
        .await
        .expect_err("max-delete");
    assert!(e.to_string().contains("max-delete"), "{e}");
    assert!(dst.join("extra.txt").exists());
}

/// `cancel` stops a running job: the shard a worker holds loses its lease (its completion is
/// refused), the pending ones are never claimed, and the destination stays as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancelled_job_commits_and_claims_nothing_more() {
    use cloudsync_dist::testkit::{claim_for_test, complete_for_test};
    let pg = Pg::start();
    let db = Db::new(&pg.url()).expect("db");
    let tmp = tempfile::tempdir().expect("tmp");
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    fixture(&src, &[&dst]);
    let before = snapshot(&dst);
    let spec = submit_spec(DistMode::Sync, src.to_str().expect("utf-8"), &dst);
    let job = cloudsync_dist::submit(&db, &spec).await.expect("submit");
    let (shard, token) = claim_for_test(&db, "w", Duration::from_secs(60))
        .await
        .expect("claim")
        .expect("shard");
    assert!(cloudsync_dist::cancel(&db, job).await.expect("cancel"));
    assert_eq!(state(&db, job).await, JobState::Cancelled);
    assert!(
        complete_for_test(&db, shard, token).await.is_err(),
        "a cancelled job's shard must not complete"
    );
    run_workers(&db, Arc::new(remotes(None)), 2).await;
    assert_eq!(state(&db, job).await, JobState::Cancelled);
    assert_eq!(
        snapshot(&dst),
        before,
        "a cancelled job changed the destination"
    );
    assert!(
        !cloudsync_dist::cancel(&db, job)
            .await
            .expect("cancel again")
    );
}

/// Files (not directories) under `root`.
fn files(root: &Path) -> BTreeMap<String, Option<String>> {
    let mut s = snapshot(root);
    s.retain(|_, v| v.is_some());
    s
}

async fn batch_shards(db: &Db, job: JobId, path: &str) -> i64 {
    let client = db.connect().await.expect("connect");
    client
        .query_one(
            "SELECT count(*) FROM cloudsync.shards WHERE job = $1 AND kind = 'batch' AND path = $2",
            &[&job, &path],
        )
        .await
        .expect("count")
        .get(0)
}

/// A huge flat directory (here: more than `batch_size` = 3 files to act on) becomes batch
/// shards of 3 planned transfers each, run by any worker; the job ends as a one-process sync
/// and the merged report counts every file once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_huge_flat_directory_is_split_into_batches() {
    let pg = Pg::start();
    let db = Db::new(&pg.url()).expect("db");
    let tmp = tempfile::tempdir().expect("tmp");
    let (src, dst, one) = (
        tmp.path().join("src"),
        tmp.path().join("dst"),
        tmp.path().join("one"),
    );
    fixture(&src, &[&dst, &one]);
    for i in 0..20 {
        put(&src, &format!("flat/f{i:02}.txt"), &format!("flat {i}"));
    }
    let mut spec = submit_spec(DistMode::Sync, src.to_str().expect("utf-8"), &dst);
    spec.options.batch_size = 3;
    let job = cloudsync_dist::submit(&db, &spec).await.expect("submit");
    run_workers(&db, Arc::new(remotes(None)), 3).await;
    let st = cloudsync_dist::status(&db, job).await.expect("status");
    assert_eq!(st.state, JobState::Done, "{st:?}");
    assert_eq!(
        batch_shards(&db, job, "flat").await,
        7,
        "20 transfers in 3s"
    );
    let kept: i64 = db
        .connect()
        .await
        .expect("connect")
        .query_one(
            "SELECT count(*) FROM cloudsync.shards WHERE job = $1 AND decisions IS NOT NULL",
            &[&job],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(kept, 0, "done batches keep their plans");
    let single = one_process_sync(&src, &one).await;
    assert_eq!(snapshot(&dst), snapshot(&one));
    let report = cloudsync_dist::report(&db, job).await.expect("report");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.transferred, single.transferred);
    assert_eq!(report.bytes, single.bytes);
    assert_eq!(report.skipped, single.skipped);
    assert_eq!(report.deleted, single.deleted);
}

/// A batch checks both sides again before it acts: a destination file that appeared after
/// the directory was planned is left as it is and reported (and the job deletes nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_revalidates_its_plan_before_it_runs() {
    use cloudsync_dist::testkit::run_one_shard_for_test;
    let pg = Pg::start();
    let db = Db::new(&pg.url()).expect("db");
    let tmp = tempfile::tempdir().expect("tmp");
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    for i in 0..6 {
        put(&src, &format!("flat/f{i}.txt"), &format!("source {i}"));
    }
    put(&dst, "extra.txt", "only on the destination");
    let mut spec = submit_spec(DistMode::Sync, src.to_str().expect("utf-8"), &dst);
    spec.options.batch_size = 2;
    let job = cloudsync_dist::submit(&db, &spec).await.expect("submit");
    let remotes = Arc::new(remotes(None));
    // The root, then `flat`: planned into three batches, none run yet.
    assert!(run_one_shard_for_test(&db, &remotes).await.expect("root"));
    assert!(run_one_shard_for_test(&db, &remotes).await.expect("flat"));
    assert_eq!(batch_shards(&db, job, "flat").await, 3);
    assert!(!dst.join("flat/f0.txt").exists(), "batches ran early");
    put(&dst, "flat/f5.txt", "written by someone else meanwhile");
    run_workers_with(&db, remotes, 2, 1).await;
    assert_eq!(
        std::fs::read_to_string(dst.join("flat/f5.txt")).expect("f5"),
        "written by someone else meanwhile"
    );
    assert_eq!(
        std::fs::read_to_string(dst.join("flat/f0.txt")).expect("f0"),
        "source 0"
    );
    assert_eq!(state(&db, job).await, JobState::Failed);
    assert!(dst.join("extra.txt").exists(), "deleted despite an error");
    let report = cloudsync_dist::report(&db, job).await.expect("report");
    assert!(
        report
            .errors
            .iter()
            .any(|e| e.path.as_str() == "flat/f5.txt"),
        "{:?}",
        report.errors
    );
}

/// Move: each source file goes only once its copy on the destination is verified. Where the
/// destination refuses the writes (`z`), its sources stay; the rest moved. After `resume`
/// with the fault gone, everything is moved, as a one-process move does, and the
/// destination-only files are kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn move_removes_sources_only_after_verified_copies() {
    let pg = Pg::start();
    let db = Db::new(&pg.url()).expect("db");
    let tmp = tempfile::tempdir().expect("tmp");
    let (src, dst, src1, one) = (
        tmp.path().join("src"),
        tmp.path().join("dst"),
        tmp.path().join("src1"),
        tmp.path().join("one"),
    );
    fixture(&src, &[&dst, &one]);
    fixture(&src1, &[]);
    let originals = files(&src);
    let switch = tmp.path().join("writes-to-z-fail");
    std::fs::write(&switch, "").expect("switch");
    let remotes = switched_remotes(&dst, &switch, Some("z"));
    let mut spec = JobSpec::new(DistMode::Move, src.to_str().expect("utf-8"), "sw:");
    spec.options.batch_size = 3;
    let job = cloudsync_dist::submit(&db, &spec).await.expect("submit");
    run_workers_with(&db, remotes.clone(), 2, 1).await;
    assert_eq!(state(&db, job).await, JobState::Failed);
    let left = files(&src);
    assert!(
        !left.is_empty() && left.keys().all(|k| k.starts_with("z/")),
        "{left:?}"
    );
    for (path, body) in &originals {
        if !path.starts_with("z/") {
            assert_eq!(files(&dst).get(path), Some(body), "{path} moved");
        }
    }

    let r = cloudsync_dist::resume(&db, job).await.expect("resume");
    assert_eq!(r.reopened, Some(JobState::Running), "{r:?}");
    std::fs::remove_file(&switch).expect("switch off");
    run_workers_with(&db, remotes, 2, 1).await;
    assert_eq!(state(&db, job).await, JobState::Done);
    let single = ops::move_files(&local(&src1).await, &local(&one).await, &Default::default())
        .await
        .expect("one-process move");
    assert!(single.errors.is_empty(), "{:?}", single.errors);
    assert!(files(&src).is_empty(), "{:?}", files(&src));
    assert_eq!(files(&src1), files(&src));
    assert_eq!(files(&dst), files(&one));
    assert!(dst.join("extra.txt").exists() && dst.join("old/deeper/y.txt").exists());
    let report = cloudsync_dist::report(&db, job).await.expect("report");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    // (`deleted` counts the source copies of files already identical on the destination.)
    assert_eq!(report.deleted, single.deleted);
    assert_eq!(report.transferred, single.transferred);
}

/// Filter files named at submission travel with the job: the workers apply their rules
/// although the files are gone when they run, and the result is a one-process sync with the
/// same filter (`--filter-from`), or exactly the listed files (`--files-from`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn filter_files_are_stored_with_the_job() {
    let pg = Pg::start();
    let db = Db::new(&pg.url()).expect("db");
    let tmp = tempfile::tempdir().expect("tmp");
    let (src, dst, one, listed) = (
        tmp.path().join("src"),
        tmp.path().join("dst"),
        tmp.path().join("one"),
        tmp.path().join("listed"),
    );
    fixture(&src, &[&dst, &one]);
    let rules = tmp.path().join("rules.txt");
    std::fs::write(&rules, "# keep a/b out\n- a/b/**\n- top1.txt\n+ **\n").expect("rules");
    let list = tmp.path().join("list.txt");
    std::fs::write(&list, "# two files\ntop0.txt\n  z/file1.txt\n").expect("list");

    let mut spec = submit_spec(DistMode::Sync, src.to_str().expect("utf-8"), &dst);
    spec.options.filter.filter_from = vec![rules.clone()];
    let job = cloudsync_dist::submit(&db, &spec).await.expect("submit");
    let mut copy = submit_spec(DistMode::Copy, src.to_str().expect("utf-8"), &listed);
    copy.options.filter.files_from = vec![list.clone()];
    let copy_job = cloudsync_dist::submit(&db, &copy).await.expect("submit");

    let filter = cloudsync_core::FilterSpec {
        filter_from: vec![rules.clone()],
        ..Default::default()
    }
    .build()
    .expect("filter");
    std::fs::remove_file(&rules).expect("rm rules");
    std::fs::remove_file(&list).expect("rm list");
    run_workers(&db, Arc::new(remotes(None)), 2).await;
    assert_eq!(state(&db, job).await, JobState::Done);
    assert_eq!(state(&db, copy_job).await, JobState::Done);

    let opts = ops::SyncOptions {
        filter,
        ..Default::default()
    };
    let single = ops::sync(&local(&src).await, &local(&one).await, &opts)
        .await
        .expect("one-process sync");
    assert!(single.errors.is_empty(), "{:?}", single.errors);
    assert_eq!(snapshot(&dst), snapshot(&one));
    assert!(!dst.join("a/b/file0.txt").exists() && dst.join("a/file0.txt").exists());
    assert!(
        dst.join("a/b/gone.txt").exists(),
        "excluded, so not deleted"
    );
    let copied: Vec<String> = files(&listed).into_keys().collect();
    assert_eq!(copied, ["top0.txt", "z/file1.txt"]);

    // A filter file that cannot be read fails the submission, naming it.
    let mut bad = submit_spec(DistMode::Copy, src.to_str().expect("utf-8"), &listed);
    bad.options.filter.include_from = vec![tmp.path().join("no-such-rules")];
    let e = cloudsync_dist::submit(&db, &bad)
        .await
        .expect_err("missing file");
    assert!(e.to_string().contains("no-such-rules"), "{e}");
}

/// TLS to PostgreSQL: with `sslmode=require` and the test CA (`sslrootcert`) the session is
/// encrypted (the server says so) and a job runs through it; without the CA the server's
/// certificate is refused, with an error that names the database but not the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tls_database_with_sslmode_require() {
    let pg = Pg::start_tls();
    let ca = pg.ca_file();
    let url = format!("{}?sslmode=require&sslrootcert={}", pg.url(), ca.display());
    let db = Db::new(&url).expect("db");
    let client = db.connect().await.expect("TLS connect");
    let ssl: bool = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("pg_stat_ssl")
        .get(0);
    assert!(ssl, "the session is not encrypted");
    assert!(!format!("{db:?}").contains(cloudsync_dist::testkit::PASSWORD));

    let tmp = tempfile::tempdir().expect("tmp");
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    fixture(&src, &[&dst]);
    let job = cloudsync_dist::submit(
        &db,
        &submit_spec(DistMode::Sync, src.to_str().expect("utf-8"), &dst),
    )
    .await
    .expect("submit");
    run_workers(&db, Arc::new(remotes(None)), 2).await;
    assert_eq!(state(&db, job).await, JobState::Done);
    assert_eq!(snapshot(&dst), snapshot(&src));

    let untrusted = Db::new(&format!("{}?sslmode=require", pg.url())).expect("db");
    let e = untrusted
        .connect()
        .await
        .expect_err("an unknown CA accepted");
    assert!(matches!(e, DistError::Unreachable { .. }), "{e:?}");
    assert!(
        !e.to_string().contains(cloudsync_dist::testkit::PASSWORD),
        "{e}"
    );
    assert!(e.to_string().contains("127.0.0.1"), "{e}");
    let e = Db::new(&format!("{}?sslrootcert=/no/such/ca.pem", pg.url())).expect_err("no CA file");
    assert!(e.to_string().contains("/no/such/ca.pem"), "{e}");
}

/// A database of schema version 1 (before move jobs and batches) is upgraded by the first
/// connection: its job and shards stay, and the job then runs to its end next to a move job.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_version_1_database_is_upgraded_in_place() {
    let pg = Pg::start();
    let db = Db::new(&pg.url()).expect("db");
    cloudsync_dist::testkit::create_schema_version(&db, 1)
        .await
        .expect("v1 schema");
    let tmp = tempfile::tempdir().expect("tmp");
    let (src, dst, moved) = (
        tmp.path().join("src"),
        tmp.path().join("dst"),
        tmp.path().join("moved"),
    );
    fixture(&src, &[&dst]);
    // A job as version 1 stored it (no batch_size, no filter_files in its options).
    {
        let client = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls)
            .await
            .map(|(c, conn)| {
                tokio::spawn(conn);
                c
            })
            .expect("raw connect");
        let v: i32 = client
            .query_one("SELECT version FROM cloudsync.schema_version", &[])
            .await
            .expect("version")
            .get(0);
        assert_eq!(v, 1);
        let id: i64 = client
            .query_one(
                "INSERT INTO cloudsync.jobs (mode, source, destination, options)
                 VALUES ('sync', $1, $2, '{\"transfers\": 2}') RETURNING id",
                &[&src.display().to_string(), &dst.display().to_string()],
            )
            .await
            .expect("v1 job")
            .get(0);
        client
            .execute(
                "INSERT INTO cloudsync.shards (job, path, src_path, src, dst)
                 VALUES ($1, '', '', true, true)",
                &[&id],
            )
            .await
            .expect("v1 shard");
    }
    let old_job = 1;
    let st = cloudsync_dist::status(&db, old_job)
        .await
        .expect("upgraded");
    assert_eq!(st.state, JobState::Running);
    let src_copy = tmp.path().join("src-copy");
    fixture(&src_copy, &[]);
    let move_job = cloudsync_dist::submit(
        &db,
        &JobSpec::new(
            DistMode::Move,
            src_copy.to_str().expect("utf-8"),
            moved.display().to_string(),
        ),
    )
    .await
    .expect("a move job on the upgraded schema");
    run_workers(&db, Arc::new(remotes(None)), 2).await;
    assert_eq!(state(&db, old_job).await, JobState::Done);
    assert_eq!(state(&db, move_job).await, JobState::Done);
    assert_eq!(snapshot(&dst), snapshot(&src));
    assert!(files(&src_copy).is_empty());
    assert_eq!(files(&moved), files(&src));
}

/// One worker with `shards = 3` runs several directories at once: while one of its loops
/// waits on the slow file of `z`, the others finish every other directory; the job then ends
/// as a one-process sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_worker_runs_several_shards_at_once() {
    let pg = Pg::start();
    let db = Db::new(&pg.url()).expect("db");
    let tmp = tempfile::tempdir().expect("tmp");
    let (src, dst, one) = (
        tmp.path().join("src"),
        tmp.path().join("dst"),
        tmp.path().join("one"),
    );
    fixture(&src, &[&dst, &one]);
    let job = cloudsync_dist::submit(&db, &submit_spec(DistMode::Sync, "slow:", &dst))
        .await
        .expect("submit");
    let mut opts = worker("multi");
    opts.shards = 3;
    opts.lease = Duration::from_secs(30);
    let w = spawn_worker(&db, Arc::new(remotes(Some((&src, 15_000)))), opts);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !SLOW_ENTERED.load(Ordering::SeqCst) {
        assert!(tokio::time::Instant::now() < deadline, "z never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(12);
    loop {
        let st = cloudsync_dist::status(&db, job).await.expect("status");
        // Root and 10 other directories done, `z` still running in this same worker.
        if st.shards.done >= 10 {
            assert_eq!(st.shards.running, 1, "{st:?}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the other directories waited for z: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stats = w.await.expect("task").expect("worker");
    assert_eq!(state(&db, job).await, JobState::Done);
    let single = one_process_sync(&src, &one).await;
    assert_eq!(snapshot(&dst), snapshot(&one));
    let report = cloudsync_dist::report(&db, job).await.expect("report");
    assert_eq!(report.transferred, single.transferred);
    assert_eq!(report.deleted, single.deleted);
    // Directory pairs, then the file deletions and the directory removals.
    assert_eq!(stats.completed, 1 + 8 + 2 + 1 + 1);
}

/// Local backends plus `pace:`, a [`Delayed`] remote at `root` waiting at every read and removal.
fn paced_remotes(root: &Path, delay_ms: u64) -> Arc<Remotes> {
    let mut r = remotes(None);
    r.registry.register(Arc::new(DelayedFactory("paced")));
    r.config.insert(
        "pace",
        serde_json::json!({
            "type": "paced",
            "root": root.display().to_string(),
            "delay_ms": delay_ms,
        }),
    );
    Arc::new(r)
}

/// How many shards of `kind` the job has, and the workers that committed them.
async fn shards_by(db: &Db, job: JobId, kind: &str) -> (i64, std::collections::BTreeSet<String>) {
    let client = db.connect().await.expect("connect");
    let rows = client
        .query(
            "SELECT finished_by FROM cloudsync.shards WHERE job = $1 AND kind = $2",
            &[&job, &kind],
        )
        .await
        .expect("shards");
    let by = rows
        .iter()
        .filter_map(|r| r.get::<_, Option<String>>(0))
        .collect();
    (i64::try_from(rows.len()).expect("count"), by)
}

async fn check_clean(src: &Path, dst: &Path) {
    let report = ops::check(&local(src).await, &local(dst).await, &Default::default())
        .await
        .expect("check");
    assert!(report.is_identical(), "{report:?}");
}

/// One flat directory of 40 files with `batch_size` 8: five batch shards, and with three
/// workers (each read slow enough that a batch takes a while) more than one worker runs
/// batches of that one directory. The result is a one-process sync's, `check` finds nothing,
/// and the merged report accounts for every file once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_workers_share_the_batches_of_one_flat_directory() {
    let pg = Pg::start();
    let db = Db::new(&pg.url()).expect("db");
    let tmp = tempfile::tempdir().expect("tmp");
    let (src, dst, one) = (
        tmp.path().join("src"),
        tmp.path().join("dst"),
        tmp.path().join("one"),
    );
    for i in 0..40 {
        put(&src, &format!("flat/f{i:02}.txt"), &format!("flat {i}"));
    }
    put(&src, "top.txt", "top");
    for d in [&dst, &one] {
        put(d, "flat/f07.txt", "flat 7"); // identical: skipped
        put(d, "flat/f08.txt", "older content"); // replaced
        put(d, "flat/only-here.txt", "deleted");
    }
    let mut spec = JobSpec::new(DistMode::Sync, "pace:", dst.display().to_string());
    spec.options.batch_size = 8;
    let job = cloudsync_dist::submit(&db, &spec).await.expect("submit");
    let stats = run_workers(&db, paced_remotes(&src, 150), 3).await;
    let st = cloudsync_dist::status(&db, job).await.expect("status");
    assert_eq!(st.state, JobState::Done, "{st:?}");
    let (batches, by) = shards_by(&db, job, "batch").await;
    assert_eq!(batches, 5, "39 transfers in batches of 8");
    assert!(by.len() > 1, "one worker ran every batch: {by:?} {stats:?}");

    let single = one_process_sync(&src, &one).await;
    assert_eq!(snapshot(&dst), snapshot(&one));
    check_clean(&src, &dst).await;
    let report = cloudsync_dist::report(&db, job).await.expect("report");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.transferred + report.skipped, 41, "{report:?}");
    assert_eq!(report.transferred, single.transferred);
    assert_eq!(report.skipped, single.skipped);
    assert_eq!(report.checked, single.checked);
    assert_eq!(report.bytes, single.bytes);
    assert_eq!(report.deleted, single.deleted);

    // Again, with nothing left to do: the identical files are counted by the walk, no plan
    // goes to the database.
    let job = cloudsync_dist::submit(&db, &spec).await.expect("submit");
    run_workers(&db, paced_remotes(&src, 0), 3).await;
    assert_eq!(state(&db, job).await, JobState::Done);
    assert_eq!(shards_by(&db, job, "batch").await.0, 0);
    let report = cloudsync_dist::report(&db, job).await.expect("report");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!((report.transferred, report.skipped), (0, 41), "{report:?}");
}

/// Source files that change between the planning of their batch and its run: the batch does
/// not apply the stale plan (which would copy with the old size and time, or trust an old
/// comparison) but plans them again and transfers their new content; the job ends clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stale_batch_transfers_the_changed_sources_new_content() {
    use cloudsync_dist::testkit::run_one_shard_for_test;
    let pg = Pg::start();
    let db = Db::new(&pg.url()).expect("db");
    let tmp = tempfile::tempdir().expect("tmp");
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    for i in 0..6 {
        put(&src, &format!("flat/f{i}.txt"), &format!("source {i}"));
    }
    // Identical on the destination: planned as nothing to do (not in a batch) ...
    put(&dst, "flat/f2.txt", "source 2");
    // ... and one whose content differs: planned as a replacement.
    put(&dst, "flat/f4.txt", "dest 4, other size");
    let mut spec = submit_spec(DistMode::Sync, src.to_str().expect("utf-8"), &dst);
    spec.options.batch_size = 2;
    let job = cloudsync_dist::submit(&db, &spec).await.expect("submit");
    let remotes = Arc::new(remotes(None));
    assert!(run_one_shard_for_test(&db, &remotes).await.expect("root"));
    assert!(run_one_shard_for_test(&db, &remotes).await.expect("flat"));
    assert_eq!(batch_shards(&db, job, "flat").await, 3, "5 transfers in 2s");
    // After planning: a new size, and the same size with a new time.
    let later = |p: &Path, body: &str, secs: u64| {
        std::fs::write(p, body).expect("write");
        let f = std::fs::File::options().write(true).open(p).expect("open");
        f.set_modified(t0() + Duration::from_secs(secs))
            .expect("mtime");
    };
    later(
        &src.join("flat/f1.txt"),
        "changed after planning, longer",
        100,
    );
    later(&src.join("flat/f4.txt"), "source X", 200);
    run_workers_with(&db, remotes, 2, 1).await;
    let st = cloudsync_dist::status(&db, job).await.expect("status");
    assert_eq!(st.state, JobState::Done, "{st:?}");
    assert_eq!(
        std::fs::read_to_string(dst.join("flat/f1.txt")).expect("f1"),
        "changed after planning, longer"
    );
    assert_eq!(
        std::fs::read_to_string(dst.join("flat/f4.txt")).expect("f4"),
        "source X"
    );
    check_clean(&src, &dst).await;
    let report = cloudsync_dist::report(&db, job).await.expect("report");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    // Each file counted once: 5 transferred (two of them planned again), f2 skipped.
    assert_eq!((report.transferred, report.skipped), (5, 1), "{report:?}");
    assert_eq!(report.checked, 2, "f2 and f4 were on both sides");
}

/// A move with `delete_empty_src_dirs`: while any shard has an error (writes under `zz`
/// refused) no source directory is removed, not even those already emptied; once the job
/// completes without error, every empty source directory goes (deepest first), the one
/// holding a file the filter excluded stays, the root stays: as a one-process move.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn move_removes_empty_source_dirs_only_after_every_shard() {
    let pg = Pg::start();
    let db = Db::new(&pg.url()).expect("db");
    let tmp = tempfile::tempdir().expect("tmp");
    let (src, dst, src1, one) = (
        tmp.path().join("src"),
        tmp.path().join("dst"),
        tmp.path().join("src1"),
        tmp.path().join("one"),
    );
    for root in [&src, &src1] {
        for f in [
            "a/x.txt",
            "a/b/y.txt",
            "a/b/c/z.txt",
            "k/m.txt",
            "zz/w.txt",
            "t.txt",
        ] {
            put(root, f, f);
        }
        put(root, "k/keep.log", "excluded");
        std::fs::create_dir_all(root.join("empty")).expect("empty dir");
    }
    let switch = tmp.path().join("writes-to-zz-fail");
    std::fs::write(&switch, "").expect("switch");
    let remotes = switched_remotes(&dst, &switch, Some("zz"));
    let mut spec = JobSpec::new(DistMode::Move, src.to_str().expect("utf-8"), "sw:");
    spec.options.delete_empty_src_dirs = true;
    spec.options.filter.exclude = vec!["*.log".into()];
    let job = cloudsync_dist::submit(&db, &spec).await.expect("submit");
    run_workers_with(&db, remotes.clone(), 2, 1).await;
    assert_eq!(state(&db, job).await, JobState::Failed);
    assert!(!src.join("a/b/c/z.txt").exists(), "moved");
    for d in ["a", "a/b", "a/b/c", "empty", "zz"] {
        assert!(src.join(d).is_dir(), "{d} removed though the job failed");
    }
    let report = cloudsync_dist::report(&db, job).await.expect("report");
    assert_eq!(report.dirs_deleted, 0);

    let r = cloudsync_dist::resume(&db, job).await.expect("resume");
    assert_eq!(r.reopened, Some(JobState::Running), "{r:?}");
    std::fs::remove_file(&switch).expect("switch off");
    run_workers_with(&db, remotes, 2, 1).await;
    assert_eq!(state(&db, job).await, JobState::Done);
    let left: Vec<String> = snapshot(&src).into_keys().collect();
    assert_eq!(left, ["k", "k/keep.log"]);
    assert!(src.is_dir(), "the source root stays");
    let (rmdirs, _) = shards_by(&db, job, "rmdir").await;
    assert_eq!(rmdirs, 1);

    let mut opts = spec.options.to_sync_options().expect("options");
    opts.delete_empty_src_dirs = true;
    let single = ops::move_files(&local(&src1).await, &local(&one).await, &opts)
        .await
        .expect("one-process move");
    assert!(single.errors.is_empty(), "{:?}", single.errors);
    assert_eq!(snapshot(&src), snapshot(&src1));
    assert_eq!(files(&dst), files(&one));
    let report = cloudsync_dist::report(&db, job).await.expect("report");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.dirs_deleted, single.dirs_deleted);
    assert_eq!(report.dirs_deleted, 5, "a, a/b, a/b/c, empty, zz");

    let mut copy = JobSpec::new(DistMode::Copy, src.to_str().expect("utf-8"), "sw:");
    copy.options.delete_empty_src_dirs = true;
    assert!(matches!(
        cloudsync_dist::submit(&db, &copy).await,
        Err(DistError::InvalidInput(_))
    ));
}

/// The delete phase in parallel: 12 destination-only files with `batch_size` 3 are four
/// delete shards, run by more than one worker (each removal slow), then one shard removes
/// their directory. `max_delete` counts the whole job, not a shard: at 11 nothing at all is
/// deleted (each shard alone is under it), at 12 everything is, as a one-process sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_delete_phase_runs_in_parallel_under_one_max_delete() {
    let pg = Pg::start();
    let db = Db::new(&pg.url()).expect("db");
    let tmp = tempfile::tempdir().expect("tmp");
    let (src, dst, one) = (
        tmp.path().join("src"),
        tmp.path().join("dst"),
        tmp.path().join("one"),
    );
    put(&src, "keep/k.txt", "kept");
    for d in [&dst, &one] {
        put(d, "keep/k.txt", "kept");
        for i in 0..12 {
            put(d, &format!("gone/g{i:02}.txt"), "only on the destination");
        }
    }
    let before = snapshot(&dst);
    let remotes = paced_remotes(&dst, 150);
    let mut spec = JobSpec::new(DistMode::Sync, src.to_str().expect("utf-8"), "pace:");
    spec.options.batch_size = 3;
    spec.options.max_delete = Some(11);
    let job = cloudsync_dist::submit(&db, &spec).await.expect("submit");
    run_workers(&db, remotes.clone(), 3).await;
    let st = cloudsync_dist::status(&db, job).await.expect("status");
    assert_eq!(st.state, JobState::Failed, "{st:?}");
    assert!(
        st.error.as_deref().unwrap_or("").contains("max delete"),
        "{st:?}"
    );
    assert_eq!(snapshot(&dst), before, "something was deleted");
    assert_eq!(shards_by(&db, job, "delete").await.0, 0);

    spec.options.max_delete = Some(12);
    let job = cloudsync_dist::submit(&db, &spec).await.expect("submit");
    run_workers(&db, remotes, 3).await;
    let st = cloudsync_dist::status(&db, job).await.expect("status");
    assert_eq!(st.state, JobState::Done, "{st:?}");
    let (deletes, by) = shards_by(&db, job, "delete").await;
    assert_eq!(deletes, 4, "12 deletions in 3s");
    assert!(by.len() > 1, "one worker ran every delete shard: {by:?}");
    assert_eq!(shards_by(&db, job, "rmdir").await.0, 1);
    let single = one_process_sync(&src, &one).await;
    assert_eq!(snapshot(&dst), snapshot(&one));
    assert!(!dst.join("gone").exists());
    let report = cloudsync_dist::report(&db, job).await.expect("report");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.deleted, 12);
    assert_eq!(report.deleted, single.deleted);
    assert_eq!(report.dirs_deleted, single.dirs_deleted);
}

/// A job that version 2 put in its delete phase (one delete shard for the whole phase, no
/// range) finishes after the upgrade to version 3 as version 2 ran it: every candidate file,
/// then the directories, in that one shard.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_version_2_delete_phase_finishes_after_the_upgrade() {
    let pg = Pg::start();
    let db = Db::new(&pg.url()).expect("db");
    cloudsync_dist::testkit::create_schema_version(&db, 2)
        .await
        .expect("v2 schema");
    let tmp = tempfile::tempdir().expect("tmp");
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    fixture(&src, &[&dst]);
    // What the copy phase would have left: every transfer done, the deletions planned.
    ops::copy(&local(&src).await, &local(&dst).await, &Default::default())
        .await
        .expect("copy");
    let plan = ops::plan(
        &local(&src).await,
        &local(&dst).await,
        cloudsync_core::Mode::Sync,
        &Default::default(),
    )
    .await
    .expect("plan");
    let candidates: Vec<_> = plan
        .decisions
        .iter()
        .filter(|d| {
            matches!(
                d.action,
                cloudsync_core::Action::Delete | cloudsync_core::Action::Rmdir
            )
        })
        .collect();
    assert_eq!(candidates.len(), 4 + 2, "4 files, old and old/deeper");
    let job = {
        let client = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls)
            .await
            .map(|(c, conn)| {
                tokio::spawn(conn);
                c
            })
            .expect("raw connect");
        let job: i64 = client
            .query_one(
                "INSERT INTO cloudsync.jobs (mode, source, destination, options, state)
                 VALUES ('sync', $1, $2, '{}', 'deleting') RETURNING id",
                &[&src.display().to_string(), &dst.display().to_string()],
            )
            .await
            .expect("v2 job")
            .get(0);
        let shard: i64 = client
            .query_one(
                "INSERT INTO cloudsync.shards (job, kind, path, src_path, src, dst)
                 VALUES ($1, 'delete', '', '', false, true) RETURNING id",
                &[&job],
            )
            .await
            .expect("v2 delete shard")
            .get(0);
        for d in candidates {
            client
                .execute(
                    "INSERT INTO cloudsync.delete_candidates (job, shard, path, is_dir, decision)
                     VALUES ($1, $2, $3, $4, $5)",
                    &[
                        &job,
                        &shard,
                        &d.path.as_str(),
                        &(d.action == cloudsync_core::Action::Rmdir),
                        &serde_json::to_value(d).expect("json"),
                    ],
                )
                .await
                .expect("candidate");
        }
        job
    };
    run_workers(&db, Arc::new(remotes(None)), 2).await;
    let st = cloudsync_dist::status(&db, job).await.expect("status");
    assert_eq!(st.state, JobState::Done, "{st:?}");
    assert_eq!(snapshot(&dst), snapshot(&src));
    assert_eq!(
        shards_by(&db, job, "rmdir").await.0,
        0,
        "the old shard did it all"
    );
    let report = cloudsync_dist::report(&db, job).await.expect("report");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!((report.deleted, report.dirs_deleted), (4, 2));
}

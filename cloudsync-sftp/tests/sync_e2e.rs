//! End to end through the sync engine: a local tree synced local -> SFTP -> local comes back
//! byte-identical with its modtimes (to SFTP's 1 s precision), a second sync is a no-op, and
//! changes and deletions propagate; drop-folder ingestion from an SFTP drop folder.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use cloudsync_core::ingest::{IngestOptions, ingest};
use cloudsync_core::ops::{self, SyncOptions};
use cloudsync_core::{Remote, RemotePath, WriteMeta, bytes_stream};
use cloudsync_local::LocalConfig;
use cloudsync_sftp::SftpRemote;
use time::OffsetDateTime;

static SSHD: LazyLock<common::Sshd> = LazyLock::new(|| common::Sshd::start(false));

/// Every file below `root`: relative path -> (content, modtime in whole seconds).
fn tree(root: &Path) -> BTreeMap<String, (Vec<u8>, u64)> {
    cloudsync_core::testkit::disk_tree(root)
}

fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..n).map(|_| rng.u8(..)).collect()
}

/// Writes `rel` below `root` with `content` and a modtime of `secs` plus some nanoseconds.
fn put(root: &Path, rel: &str, content: &[u8], secs: u64) {
    cloudsync_core::testkit::put_disk_file(root, rel, content, secs);
}

fn local(dir: &Path) -> Arc<dyn Remote> {
    Arc::new(LocalConfig::new(dir).build().unwrap())
}

async fn sftp(name: &str) -> Arc<dyn Remote> {
    Arc::new(SftpRemote::connect(SSHD.config(name)).await.unwrap())
}

fn opts() -> SyncOptions {
    SyncOptions {
        retry_backoff: Duration::from_millis(50),
        ..Default::default()
    }
}

async fn sync_ok(src: &Arc<dyn Remote>, dst: &Arc<dyn Remote>) -> cloudsync_core::Summary {
    let s = ops::sync(src, dst, &opts()).await.unwrap();
    assert!(
        s.is_ok(),
        "sync {} -> {} failed: {:?}",
        s.source,
        s.destination,
        s.errors
    );
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_roots_on_one_server_are_refused_however_spelled() {
    // `nest/x/../b` is `nest/b`, so its subdirectory `nest/b/sub` lies inside the source: a
    // comparison of descriptions misses that, the server locations do not.
    let src = sftp("nest/x/../b").await;
    let dst = sftp("nest/b/sub").await;
    let p = RemotePath::new("f.txt").unwrap();
    src.write(&p, bytes_stream("data"), WriteMeta::default())
        .await
        .unwrap();
    for (a, b) in [(&src, &dst), (&dst, &src)] {
        let e = ops::sync(a, b, &opts()).await.unwrap_err();
        assert_eq!(e.kind(), cloudsync_core::ErrorKind::InvalidInput, "{e}");
    }
    let written = futures::StreamExt::count(dst.list(&RemotePath::root()).await.unwrap()).await;
    assert_eq!(written, 0, "the refused sync wrote into its own source");
    assert_eq!(src.location(), sftp("nest/b/").await.location());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_to_sftp_to_local_round_trip() {
    let src_dir = tempfile::tempdir().unwrap();
    let back_dir = tempfile::tempdir().unwrap();
    let src = src_dir.path();
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("top.txt", b"top level\n".to_vec()),
        ("empty.dat", Vec::new()),
        ("big.bin", random_bytes(3 * 1024 * 1024 + 17, 7)),
        ("a/b/c/deep.txt", b"deep".to_vec()),
        ("a/b/sibling.bin", random_bytes(70_000, 8)),
        ("dir with spaces/file with spaces.txt", b"spaces".to_vec()),
        (
            "ünïcødé/日本語 ファイル.txt",
            "unicode ✓".as_bytes().to_vec(),
        ),
        ("ünïcødé/émoji 🎉.md", b"party".to_vec()),
    ];
    for (i, (rel, content)) in files.iter().enumerate() {
        put(src, rel, content, 1_500_000_000 + i as u64 * 86_461);
    }
    let expected = tree(src);
    assert_eq!(expected.len(), files.len());

    let l1 = local(src);
    let remote = sftp("roundtrip").await;
    let l2 = local(back_dir.path());

    let up = sync_ok(&l1, &remote).await;
    assert_eq!(up.transferred, files.len() as u64);
    // The server's disk holds the same tree.
    assert_eq!(tree(&SSHD.data.join("roundtrip")), expected);
    let down = sync_ok(&remote, &l2).await;
    assert_eq!(down.transferred, files.len() as u64);
    assert_eq!(tree(back_dir.path()), expected);

    // Nothing changed: both legs are no-ops.
    let up = sync_ok(&l1, &remote).await;
    assert_eq!((up.transferred, up.deleted), (0, 0), "{up:?}");
    let down = sync_ok(&remote, &l2).await;
    assert_eq!((down.transferred, down.deleted), (0, 0), "{down:?}");

    // Modify (same size, other content and time; other size), delete, add.
    put(src, "top.txt", b"TOP LEVEL\n", 1_700_000_000);
    put(
        src,
        "a/b/sibling.bin",
        &random_bytes(1_000, 9),
        1_700_000_100,
    );
    std::fs::remove_file(src.join("a/b/c/deep.txt")).unwrap();
    std::fs::remove_file(src.join("ünïcødé/émoji 🎉.md")).unwrap();
    put(src, "new dir/new ✓.txt", b"new", 1_700_000_200);
    let expected = tree(src);

    let up = sync_ok(&l1, &remote).await;
    assert_eq!((up.transferred, up.deleted), (3, 2), "{up:?}");
    assert_eq!(tree(&SSHD.data.join("roundtrip")), expected);
    let down = sync_ok(&remote, &l2).await;
    assert_eq!((down.transferred, down.deleted), (3, 2), "{down:?}");
    assert_eq!(tree(back_dir.path()), expected);
    assert!(!back_dir.path().join("a/b/c/deep.txt").exists());

    // And converged again.
    assert_eq!(sync_ok(&l1, &remote).await.transferred, 0);
    assert_eq!(sync_ok(&remote, &l2).await.transferred, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_from_an_sftp_drop_folder() {
    let drop = sftp("drop").await;
    let drop_disk = SSHD.data.join("drop");
    let target_dir = tempfile::tempdir().unwrap();
    let target = local(target_dir.path());

    let old = OffsetDateTime::now_utc() - time::Duration::hours(2);
    let settled = |n: i64| WriteMeta {
        modtime: Some(old + time::Duration::seconds(n)),
        ..Default::default()
    };
    let fresh = WriteMeta {
        modtime: Some(OffsetDateTime::now_utc()),
        ..Default::default()
    };
    let big = random_bytes(1024 * 1024 + 3, 11);
    let writes: Vec<(&str, Vec<u8>, WriteMeta)> = vec![
        ("orders/42.csv", b"a,b\n1,2\n".to_vec(), settled(0)),
        ("orders/deep/big.bin", big.clone(), settled(1)),
        ("ümlaut report.txt", "ü".as_bytes().to_vec(), settled(2)),
        ("empty.dat", Vec::new(), settled(3)),
        (".hidden", b"hidden".to_vec(), settled(4)),
        ("_x", b"underscore".to_vec(), settled(5)),
        ("orders/_upload.tmp", b"partial".to_vec(), settled(6)),
        ("still-writing.csv", b"fresh".to_vec(), fresh),
    ];
    for (p, body, meta) in &writes {
        drop.write(
            &RemotePath::new(p).unwrap(),
            bytes_stream(body.clone()),
            meta.clone(),
        )
        .await
        .unwrap();
    }

    let opts = IngestOptions {
        settle: Duration::from_secs(60),
        recheck_delay: Some(Duration::from_millis(300)),
        lock_confirm_delay: Duration::from_millis(50),
        retry_backoff: Duration::from_millis(50),
        ..Default::default()
    };
    let report = ingest(&drop, &target, &opts).await.unwrap();
    assert!(report.is_ok(), "{:?}", report.failed);
    let mut ingested: Vec<String> = report.ingested.iter().map(|f| f.path.to_string()).collect();
    ingested.sort();
    assert_eq!(
        ingested,
        [
            "empty.dat",
            "orders/42.csv",
            "orders/deep/big.bin",
            "ümlaut report.txt"
        ]
    );
    assert_eq!(report.bytes, (8 + big.len() + "ü".len()) as u64);

    // Moved: on the target byte for byte with the drop file's modtime, gone from the drop.
    let got = tree(target_dir.path());
    for (p, body, meta) in writes.iter().take(4) {
        let (content, secs) = &got[*p];
        assert_eq!(content, body, "{p}");
        assert_eq!(*secs as i64, meta.modtime.unwrap().unix_timestamp(), "{p}");
        assert!(!drop_disk.join(p).exists(), "{p} still in the drop folder");
    }
    // Left alone: hidden, `_` names (at any depth) and the unsettled file.
    for p in [".hidden", "_x", "orders/_upload.tmp", "still-writing.csv"] {
        assert!(drop_disk.join(p).is_file(), "{p} was taken");
        assert!(
            !target_dir.path().join(p).exists(),
            "{p} reached the target"
        );
    }
    assert!(
        report
            .skipped
            .iter()
            .any(|s| s.path.as_str() == "still-writing.csv"),
        "{:?}",
        report.skipped
    );

    // The archive copy of each ingested file and the report are on the drop remote.
    let disk = tree(&drop_disk);
    for f in &report.ingested {
        let archived = f.archive_path.as_ref().expect("an archive path");
        assert!(archived.as_str().starts_with("archives/"), "{archived}");
        let (content, _) = &disk[archived.as_str()];
        let (original, _) = &got[f.path.as_str()];
        assert_eq!(content, original, "{archived}");
    }
    assert_eq!(report.report_files.len(), 2, "{:?}", report.report_files);
    for r in &report.report_files {
        assert!(r.as_str().starts_with("reports/"), "{r}");
        assert!(disk.contains_key(r.as_str()), "{r} missing on the drop");
    }
    let json = report
        .report_files
        .iter()
        .find(|r| r.as_str().ends_with(".json"))
        .unwrap();
    let saved = cloudsync_core::ingest::IngestReport::from_json(
        std::str::from_utf8(&disk[json.as_str()].0).unwrap(),
    )
    .unwrap();
    assert_eq!(saved.id, report.id);
    assert_eq!(saved.ingested.len(), 4);

    // A second run finds nothing new to take.
    let again = ingest(&drop, &target, &opts).await.unwrap();
    assert!(again.ingested.is_empty(), "{:?}", again.ingested);
    // The lock was released.
    assert!(!target_dir.path().join(".cloudsync-ingest.lock").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leftovers_of_a_killed_upload_are_removed_by_the_next_sync() {
    // What a sync killed mid-upload leaves: a partial temporary file, two days old.
    let tmp = tempfile::tempdir().unwrap();
    let src_dir = tmp.path().join("src");
    let big = random_bytes(3 * 1024 * 1024 + 5, 7);
    put(&src_dir, "sub/big.bin", &big, 1_650_000_000);
    put(
        &src_dir,
        "sub/.cloudsync-tmp-notes.txt",
        b"a user's file",
        1_650_000_000,
    );
    let dst_dir = SSHD.data.join("leftovers");
    let two_days_ago = OffsetDateTime::now_utc().unix_timestamp() - 2 * 86_400;
    let leftover = format!(".cloudsync-tmp-{two_days_ago:08x}0badcafe.big.bin");
    put(
        &dst_dir,
        &format!("sub/{leftover}"),
        &big[..1_000_000],
        1_650_000_000,
    );
    // And one a run in progress right now would own.
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let fresh = format!(".cloudsync-tmp-{now:08x}0badcafe.big.bin");
    put(&dst_dir, &format!("sub/{fresh}"), &big[..10], 1_650_000_000);

    let (src, dst) = (local(&src_dir), sftp("leftovers").await);
    let s = sync_ok(&src, &dst).await;
    assert_eq!(s.leftovers_removed, 1);
    let mut want = tree(&src_dir);
    want.insert(format!("sub/{fresh}"), (big[..10].to_vec(), 1_650_000_000));
    assert_eq!(
        tree(&dst_dir),
        want,
        "exact, the old leftover gone, the fresh one kept"
    );

    // Once it is old enough it goes too, and nothing of ours is left.
    let soon = SyncOptions {
        leftover_age: Some(Duration::ZERO),
        ..opts()
    };
    let s = ops::sync(&src, &dst, &soon).await.unwrap();
    assert!(s.is_ok(), "{:?}", s.errors);
    assert_eq!(s.leftovers_removed, 1);
    assert_eq!(tree(&dst_dir), tree(&src_dir));
}

//! End to end through the sync engine against ProFTPD: a local tree synced local -> FTP ->
//! local comes back byte-identical with its modtimes (set with MFMT), and a transfer that
//! breaks mid-way (the server's session processes killed, or the upload body cut) gives a
//! retryable error, leaves no partial file, and the next sync makes the destination exact.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use cloudsync_core::ops::{self, SyncOptions};
use cloudsync_core::testkit::{FaultOp, Faulty};
use cloudsync_core::{ErrorKind, Event, EventSink, Remote, RemotePath, WriteMeta, bytes_stream};
use cloudsync_local::LocalConfig;
use common::{Ftpd, Kind};

/// The server most tests share.
static SERVER: LazyLock<Ftpd> = LazyLock::new(|| Ftpd::start(Kind::Proftpd));
/// A server of its own for the test that kills its sessions.
static VICTIM: LazyLock<Ftpd> = LazyLock::new(|| Ftpd::start(Kind::Proftpd));

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

async fn ftp(server: &Ftpd, name: &str) -> Arc<dyn Remote> {
    Arc::new(server.config(name).build().await.unwrap())
}

fn opts() -> SyncOptions {
    SyncOptions {
        retry_backoff: Duration::from_millis(50),
        ..Default::default()
    }
}

/// Options for a sync that must report a failure instead of retrying it away.
fn no_retry_opts() -> SyncOptions {
    SyncOptions {
        retries: 1,
        low_level_retries: 0,
        ..opts()
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

/// Names of temporary upload files anywhere below `dir`.
fn temp_files(dir: &Path) -> Vec<String> {
    tree(dir)
        .into_keys()
        .filter(|p| {
            p.rsplit('/')
                .next()
                .is_some_and(cloudsync_core::is_temp_name)
        })
        .collect()
}

/// A source tree of `n` 1 MiB files plus an 8 MiB `big.bin`.
fn large_tree(root: &Path, n: usize) {
    for i in 0..n {
        put(
            root,
            &format!("set/part {i:02}.bin"),
            &random_bytes(1024 * 1024 + i, i as u64),
            1_600_000_000 + i as u64,
        );
    }
    put(
        root,
        "big.bin",
        &random_bytes(8 * 1024 * 1024 + 5, 99),
        1_650_000_000,
    );
}

/// SIGKILLs every session process of a ProFTPD (the children of its master process), leaving
/// the listener up. Returns how many were killed.
fn kill_sessions(server: &Ftpd) -> usize {
    let pid_file = server.server.dir().join("proftpd.pid");
    let master: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut victims = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        if rest.split_whitespace().nth(1) == Some(&master.to_string()) {
            victims.push(pid);
        }
    }
    for pid in &victims {
        let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
    }
    victims.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_to_ftp_to_local_round_trip() {
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
    let remote = ftp(&SERVER, "roundtrip").await;
    // ProFTPD sets modtimes (MFMT), so they must survive the round trip.
    let caps = remote.capabilities();
    assert!(caps.write_modtime && caps.set_modtime, "{caps:?}");
    let l2 = local(back_dir.path());
    let disk = SERVER.data.join("roundtrip");

    let up = sync_ok(&l1, &remote).await;
    assert_eq!(up.transferred, files.len() as u64);
    assert_eq!(tree(&disk), expected);
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
    assert_eq!(tree(&disk), expected);
    let down = sync_ok(&remote, &l2).await;
    assert_eq!((down.transferred, down.deleted), (3, 2), "{down:?}");
    assert_eq!(tree(back_dir.path()), expected);
    assert!(!back_dir.path().join("a/b/c/deep.txt").exists());

    assert_eq!(sync_ok(&l1, &remote).await.transferred, 0);
    assert_eq!(sync_ok(&remote, &l2).await.transferred, 0);
    assert!(temp_files(&disk).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_killed_mid_sync_then_retried_sync_is_exact() {
    let src_dir = tempfile::tempdir().unwrap();
    large_tree(src_dir.path(), 12);
    let expected = tree(src_dir.path());
    // Wrapped so the engine streams the files (a bare local source hands over paths) and
    // reports progress while the upload runs.
    let source: Arc<dyn Remote> = Arc::new(Faulty::new(local(src_dir.path())));
    let remote = ftp(&VICTIM, "killed").await;
    let disk = VICTIM.data.join("killed");
    let stale = RemotePath::new("stale.txt").unwrap();
    remote
        .write(
            &stale,
            bytes_stream("not on the source"),
            WriteMeta::default(),
        )
        .await
        .unwrap();

    // Kill the server's sessions once half of big.bin has been read for upload.
    let fired = Arc::new(AtomicBool::new(false));
    let killed = Arc::new(AtomicUsize::new(0));
    let sink: EventSink = {
        let (fired, killed) = (fired.clone(), killed.clone());
        Arc::new(move |e: &Event| {
            if let Event::Progress { path, bytes, size } = e {
                if path.as_str() == "big.bin"
                    && *bytes >= size / 2
                    && !fired.swap(true, Ordering::SeqCst)
                {
                    killed.store(kill_sessions(&VICTIM), Ordering::SeqCst);
                }
            }
        })
    };
    let first = ops::sync(
        &source,
        &remote,
        &SyncOptions {
            events: Some(sink),
            ..no_retry_opts()
        },
    )
    .await
    .unwrap();
    assert!(fired.load(Ordering::SeqCst), "big.bin never got half way");
    assert!(
        killed.load(Ordering::SeqCst) > 0,
        "no proftpd session process was found"
    );
    assert!(
        !first.is_ok(),
        "a sync whose sessions were killed succeeded"
    );
    assert!(
        first.errors.iter().any(|e| e.path.as_str() == "big.bin"),
        "{:?}",
        first.errors
    );
    for e in &first.errors {
        assert!(e.temporary, "not retryable: {e:?}");
    }
    // Failures block deletions; the interrupted file is not visible under its name.
    assert!(first.deletes_skipped_due_to_errors);
    assert!(disk.join("stale.txt").is_file());
    assert!(
        !disk.join("big.bin").exists(),
        "a partial big.bin is visible"
    );
    let e = remote
        .stat(&RemotePath::new("big.bin").unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e:?}");

    // The retried sync (same remote: its pool reconnects) makes the destination exact.
    let second = sync_ok(&source, &remote).await;
    assert!(second.transferred >= 1, "{second:?}");
    assert_eq!(second.deleted, 1, "{second:?}");
    assert!(temp_files(&disk).is_empty(), "{:?}", temp_files(&disk));
    assert_eq!(tree(&disk), expected);
    assert_eq!(sync_ok(&source, &remote).await.transferred, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_cut_mid_stream_leaves_nothing_and_retried_sync_is_exact() {
    let src_dir = tempfile::tempdir().unwrap();
    large_tree(src_dir.path(), 4);
    let expected = tree(src_dir.path());
    let source = local(src_dir.path());
    let faulty = Faulty::new(ftp(&SERVER, "cut").await);
    let big = RemotePath::new("big.bin").unwrap();
    let part = RemotePath::new("set/part 02.bin").unwrap();
    faulty.fail(FaultOp::Write, big.clone(), 1, ErrorKind::Transient);
    faulty.fail(FaultOp::Write, part.clone(), 1, ErrorKind::Transient);
    let remote: Arc<dyn Remote> = Arc::new(faulty.clone());
    let disk = SERVER.data.join("cut");

    let first = ops::sync(&source, &remote, &no_retry_opts()).await.unwrap();
    assert_eq!(faulty.hits().len(), 2, "{:?}", faulty.hits());
    let mut failed: Vec<&str> = first.errors.iter().map(|e| e.path.as_str()).collect();
    failed.sort();
    assert_eq!(failed, ["big.bin", "set/part 02.bin"], "{:?}", first.errors);
    assert!(
        first.errors.iter().all(|e| e.temporary),
        "{:?}",
        first.errors
    );
    assert_eq!(first.transferred, 3, "{first:?}");
    // No partial file under its name, and the backend removed its temporary files.
    assert!(!disk.join("big.bin").exists());
    assert!(!disk.join("set/part 02.bin").exists());
    assert!(temp_files(&disk).is_empty(), "{:?}", temp_files(&disk));

    let second = sync_ok(&source, &remote).await;
    assert_eq!(second.transferred, 2, "{second:?}");
    assert_eq!(tree(&disk), expected);
    assert!(temp_files(&disk).is_empty());
}

//! Dropped connections: the sshd processes serving our connection are killed mid-transfer.
//! The failed operation must be retryable, leave nothing visible (not even the temporary
//! file), and a retry on the same remote must reconnect and complete exactly.
//!
//! This binary has its own server because killing sessions would disturb other tests.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use bytes::Bytes;
use cloudsync_core::{
    ErrorKind, Remote, RemotePath, WriteMeta, bytes_stream, collect_bytes, testkit::random_bytes,
    testkit::server,
};
use cloudsync_sftp::{SftpConfig, SftpRemote};
use futures::{StreamExt, TryStreamExt};
use time::OffsetDateTime;

static SSHD: LazyLock<common::Sshd> = LazyLock::new(|| common::Sshd::start(false));

fn disk_names(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_killed_mid_transfer() {
    let remote = SftpRemote::connect(SSHD.config("fault").with_connections(1))
        .await
        .unwrap();
    let dir = SSHD.data.join("fault");
    let path = RemotePath::new("sub/big.bin").unwrap();
    let data = Bytes::from(random_bytes(8 * 1024 * 1024 + 11, 1));
    let modtime = OffsetDateTime::from_unix_timestamp(1_650_000_000).unwrap();
    let meta = WriteMeta {
        size: Some(data.len() as u64),
        modtime: Some(modtime),
        ..Default::default()
    };

    // Upload: kill the session once 2 MiB have been handed to the writer.
    let killed = Arc::new(AtomicUsize::new(0));
    let chunks: Vec<Bytes> = data.chunks(64 * 1024).map(Bytes::copy_from_slice).collect();
    let body = {
        let killed = killed.clone();
        futures::stream::iter(chunks.into_iter().enumerate())
            .then(move |(i, chunk)| {
                let killed = killed.clone();
                async move {
                    if i == 32 {
                        killed.store(SSHD.kill_sessions(), Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                    Ok(chunk)
                }
            })
            .boxed()
    };
    let e = remote.write(&path, body, meta.clone()).await.unwrap_err();
    assert!(
        killed.load(Ordering::SeqCst) > 0,
        "no sshd session process was found"
    );
    assert!(e.is_retryable(), "not retryable: {e:?}");
    assert_eq!(e.kind(), ErrorKind::Transient, "{e:?}");

    // Nothing is visible, through SFTP (a new connection) or on the server's disk: the
    // temporary file was removed too.
    let listed: Vec<_> = remote
        .list(&RemotePath::new("sub").unwrap())
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(listed.is_empty(), "{listed:?}");
    assert_eq!(disk_names(&dir.join("sub")), Vec::<String>::new());

    // The retry reconnects and completes exactly.
    let entry = remote
        .write(&path, bytes_stream(data.clone()), meta)
        .await
        .unwrap();
    assert_eq!(
        (entry.size, entry.modtime),
        (data.len() as u64, Some(modtime))
    );
    assert_eq!(std::fs::read(dir.join("sub/big.bin")).unwrap(), data);
    assert_eq!(disk_names(&dir.join("sub")), ["big.bin"]);

    // Download: kill the session after the first chunk arrived.
    let mut body = remote.read(&path, None).await.unwrap();
    let first = body.try_next().await.unwrap().unwrap();
    assert!(!first.is_empty());
    assert!(SSHD.kill_sessions() > 0);
    let rest: Result<Vec<Bytes>, _> = body.try_collect().await;
    let e = rest.unwrap_err();
    assert!(e.is_retryable(), "not retryable: {e:?}");
    // ... and the retried read is exact.
    let back = collect_bytes(remote.read(&path, None).await.unwrap())
        .await
        .unwrap();
    assert_eq!(back, data);

    // A connection that died while idle is noticed and replaced before the next request.
    assert!(SSHD.kill_sessions() > 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(remote.stat(&path).await.unwrap().size, data.len() as u64);
}

#[tokio::test]
async fn no_server_is_a_retryable_connect_error() {
    let port = server::free_port();
    let cfg = SftpConfig::new("127.0.0.1", "root")
        .with_port(port)
        .with_key_file(SSHD.client_key.display().to_string())
        .with_known_hosts(SSHD.known_hosts.display().to_string())
        .with_use_agent(false);
    let e = SftpRemote::connect(cfg).await.unwrap_err();
    assert!(e.is_retryable(), "{e:?}");
    assert_eq!(e.kind(), ErrorKind::Transient, "{e:?}");
}

/// The size of our partial file in `dir` on disk, if there is one.
fn partial_size(dir: &std::path::Path) -> Option<u64> {
    std::fs::read_dir(dir).ok()?.find_map(|e| {
        let e = e.ok()?;
        let name = e.file_name().to_string_lossy().into_owned();
        name.starts_with(cloudsync_core::PART_PREFIX)
            .then(|| e.metadata().ok().map(|m| m.len()))
            .flatten()
    })
}

/// Options of the cut runs: resume above 1 MiB, no retry (the cut must be seen).
fn once() -> cloudsync_core::ops::SyncOptions {
    cloudsync_core::ops::SyncOptions {
        resume_above: Some(1024 * 1024),
        retries: 1,
        low_level_retries: 0,
        ..Default::default()
    }
}

/// Runs `ops::copy` from `src` to `dst` and kills the server's sessions once the partial
/// file in `watch` (on disk) has grown past `at` bytes; returns the summary and the bytes
/// the partial file kept.
async fn copy_killed_at(
    src: &Arc<dyn Remote>,
    dst: &Arc<dyn Remote>,
    watch: &std::path::Path,
    at: u64,
) -> (cloudsync_core::Summary, u64) {
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let killer = {
        let (done, watch) = (done.clone(), watch.to_owned());
        tokio::spawn(async move {
            while !done.load(Ordering::SeqCst) {
                if partial_size(&watch).is_some_and(|n| n >= at) {
                    return SSHD.kill_sessions();
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            0
        })
    };
    let s = cloudsync_core::ops::copy(src, dst, &once()).await.unwrap();
    done.store(true, Ordering::SeqCst);
    assert!(killer.await.unwrap() > 0, "no session was killed");
    // Let the killed server processes finish dying.
    tokio::time::sleep(Duration::from_millis(300)).await;
    (s, partial_size(watch).unwrap_or(0))
}

/// An upload cut by killing the server's session leaves a partial file (and nothing under
/// the final name); the next run resumes it: the result is exact, the kept bytes are not
/// sent again, and no partial file is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_killed_mid_transfer_resumes_in_the_next_run() {
    let tmp = tempfile::tempdir().unwrap();
    let size = 24 * 1024 * 1024 + 5;
    let data = random_bytes(size, 9);
    std::fs::write(tmp.path().join("big.bin"), &data).unwrap();
    let src: Arc<dyn Remote> = Arc::new(
        cloudsync_local::LocalConfig::new(tmp.path())
            .build()
            .unwrap(),
    );
    let dst: Arc<dyn Remote> = Arc::new(
        SftpRemote::connect(SSHD.config("resume-up").with_connections(1))
            .await
            .unwrap(),
    );
    let dir = SSHD.data.join("resume-up");
    let at = fastrand::u64(size as u64 / 4..size as u64 * 3 / 4);
    let (first, kept) = copy_killed_at(&src, &dst, &dir, at).await;
    assert_eq!(first.errors.len(), 1, "{first:?}");
    assert!(first.errors[0].temporary, "{first:?}");
    assert!(
        !dir.join("big.bin").exists(),
        "a partial file under the final name"
    );
    assert!(
        kept >= at && kept < size as u64,
        "kept {kept} of a cut at {at}"
    );

    let second = cloudsync_core::ops::copy(&src, &dst, &once())
        .await
        .unwrap();
    assert!(second.is_ok(), "{second:?}");
    assert_eq!(std::fs::read(dir.join("big.bin")).unwrap(), data);
    assert_eq!(
        (second.bytes, second.bytes_resumed),
        (size as u64, kept),
        "the kept bytes are not sent again"
    );
    assert_eq!(disk_names(&dir), ["big.bin"]);
}

/// A download from SFTP into a local directory cut by killing the session resumes into the
/// local partial file in the next run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_killed_mid_transfer_resumes_in_the_next_run() {
    let size = 24 * 1024 * 1024 + 7;
    let data = random_bytes(size, 10);
    let srv = SSHD.data.join("resume-down");
    std::fs::create_dir_all(&srv).unwrap();
    std::fs::write(srv.join("big.bin"), &data).unwrap();
    let src: Arc<dyn Remote> = Arc::new(
        SftpRemote::connect(SSHD.config("resume-down").with_connections(1))
            .await
            .unwrap(),
    );
    let tmp = tempfile::tempdir().unwrap();
    let dst: Arc<dyn Remote> = Arc::new(
        cloudsync_local::LocalConfig::new(tmp.path())
            .build()
            .unwrap(),
    );
    let at = fastrand::u64(size as u64 / 4..size as u64 * 3 / 4);
    let (first, kept) = copy_killed_at(&src, &dst, tmp.path(), at).await;
    assert_eq!(first.errors.len(), 1, "{first:?}");
    assert!(!tmp.path().join("big.bin").exists());
    assert!(
        kept >= at && kept < size as u64,
        "kept {kept} of a cut at {at}"
    );

    let second = cloudsync_core::ops::copy(&src, &dst, &once())
        .await
        .unwrap();
    assert!(second.is_ok(), "{second:?}");
    assert_eq!(std::fs::read(tmp.path().join("big.bin")).unwrap(), data);
    assert_eq!((second.bytes, second.bytes_resumed), (size as u64, kept));
    assert_eq!(disk_names(tmp.path()), ["big.bin"]);
}

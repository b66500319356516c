//! ProFTPD specifics: login and certificate failures, implicit FTPS, the registry, a server
//! killed mid-transfer, and a sync whose session processes are killed mid-upload. (The
//! conformance suite runs in `conformance.rs`.)

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use cloudsync_core::ops::{self, SyncOptions};
use cloudsync_core::testkit::{Faulty, disk_temp_files, disk_tree, put_disk_file, random_bytes};
use cloudsync_core::{ErrorKind, Event, EventSink, Remote, RemotePath, WriteMeta, bytes_stream};
use cloudsync_local::LocalConfig;
use common::{Ftpd, Kind};
use futures::{StreamExt, TryStreamExt};

static SERVER: LazyLock<Ftpd> = LazyLock::new(|| Ftpd::start(Kind::Proftpd));

#[tokio::test]
async fn wrong_password_is_auth() {
    let e = SERVER
        .config("badpw")
        .with_password("wrong")
        .build()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    assert!(!e.is_retryable());
}

#[tokio::test]
async fn self_signed_certificate_is_refused_unless_trusted() {
    let e = SERVER
        .config("cert1")
        .with_tls(cloudsync_ftp::Tls::Explicit)
        .build()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    assert!(!e.is_retryable());
    // Trusted through ca_file, or checks explicitly turned off: both work.
    let r = SERVER.tls_config("cert2").build().await.unwrap();
    r.write(
        &RemotePath::new("f").unwrap(),
        bytes_stream("x"),
        WriteMeta::default(),
    )
    .await
    .unwrap();
    let r = SERVER
        .config("cert3")
        .with_tls(cloudsync_ftp::Tls::Explicit)
        .with_no_check_certificate(true)
        .build()
        .await
        .unwrap();
    assert_eq!(r.list(&RemotePath::root()).await.unwrap().count().await, 0);
}

/// A body that yields `chunks` chunks of 64 KiB, pausing between them.
fn slow_body(chunks: usize) -> cloudsync_core::ByteStream {
    futures::stream::iter(0..chunks)
        .then(|i| async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(bytes::Bytes::from(vec![(i % 251) as u8; 64 * 1024]))
        })
        .boxed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_killed_mid_transfer_gives_retryable_errors_and_no_partial_file() {
    // A server of its own: this test kills it.
    let mut server = Ftpd::start(Kind::Proftpd);
    let remote = server.config("kill").with_timeout(5).build().await.unwrap();
    let big = RemotePath::new("big.bin").unwrap();
    let data = vec![7u8; 8 * 1024 * 1024];
    remote
        .write(&big, bytes_stream(data.clone()), WriteMeta::default())
        .await
        .unwrap();

    // A download in progress when the server dies ends with a retryable error, not EOF.
    let mut download = remote.read(&big, None).await.unwrap();
    let first = download.try_next().await.unwrap().unwrap();
    assert!(!first.is_empty());

    // An upload in progress when the server dies fails retryably.
    let target = RemotePath::new("upload.bin").unwrap();
    let remote2 = remote.clone();
    let target2 = target.clone();
    let upload = tokio::spawn(async move {
        remote2
            .write(&target2, slow_body(400), WriteMeta::default())
            .await
    });
    tokio::time::sleep(Duration::from_millis(600)).await;
    server.kill();

    let e = upload.await.unwrap().unwrap_err();
    assert!(e.is_retryable(), "upload error not retryable: {e:?}");
    let mut got = first.len();
    let e = loop {
        match download.try_next().await {
            Ok(Some(c)) => got += c.len(),
            Ok(None) => panic!("download of a killed server ended cleanly after {got} bytes"),
            Err(e) => break e,
        }
    };
    assert!(got < data.len(), "the whole file arrived before the kill");
    assert!(e.is_retryable(), "download error not retryable: {e:?}");

    // Nothing under the final name; only a hidden temporary file may remain.
    let dir = server.data.join("kill");
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.contains(&"upload.bin".to_owned()), "{names:?}");
    assert!(
        names
            .iter()
            .all(|n| n == "big.bin" || n.starts_with(".cloudsync-tmp-")),
        "{names:?}"
    );
    // And the remote, once the server is gone, fails retryably too.
    let e = remote.stat(&target).await.unwrap_err();
    assert!(e.is_retryable(), "{e:?}");
}

#[tokio::test]
async fn implicit_ftps_round_trip() {
    let port = SERVER.implicit_port.unwrap();
    let remote = SERVER
        .tls_config("implicit")
        .with_tls(cloudsync_ftp::Tls::Implicit)
        .with_port(port)
        .build()
        .await
        .unwrap();
    let path = RemotePath::new("dir/one.txt").unwrap();
    let e = remote
        .write(&path, bytes_stream("implicit"), WriteMeta::default())
        .await
        .unwrap();
    assert_eq!(e.size, 8);
    let names: Vec<String> = remote
        .list(&RemotePath::new("dir").unwrap())
        .await
        .unwrap()
        .map_ok(|e| e.name().to_owned())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(names, ["one.txt"]);
    let body = cloudsync_core::collect_bytes(remote.read(&path, None).await.unwrap())
        .await
        .unwrap();
    assert_eq!(&body[..], b"implicit");
    assert_eq!(
        std::fs::read(SERVER.data.join("implicit/dir/one.txt")).unwrap(),
        b"implicit"
    );
}

#[tokio::test]
async fn registry_opens_ftp_urls_and_config_sections() {
    let mut registry = cloudsync_core::Registry::new();
    registry.register(Arc::new(cloudsync_ftp::FtpFactory));
    // The config dir must exist and belong to the server's user.
    let _ = SERVER.config("url");
    // SAFETY: set before any thread of this test reads the environment.
    unsafe { std::env::set_var("CLOUDSYNC_FTP_TEST_PW", common::PASSWORD) };
    let url = format!(
        "ftp://{}@127.0.0.1:{}/url?password_env=CLOUDSYNC_FTP_TEST_PW&connections=2",
        common::USER,
        SERVER.server.port()
    );
    let remote = registry.open_url(&url).await.unwrap();
    assert_eq!(
        remote.describe(),
        format!(
            "ftp://{}@127.0.0.1:{}/url",
            common::USER,
            SERVER.server.port()
        )
    );
    remote
        .write(
            &RemotePath::new("a").unwrap(),
            bytes_stream("1"),
            WriteMeta::default(),
        )
        .await
        .unwrap();
    let section = serde_json::json!({
        "type": "ftp",
        "host": "127.0.0.1",
        "port": SERVER.server.port(),
        "user": common::USER,
        "password_env": "CLOUDSYNC_FTP_TEST_PW",
        "root": "url",
    });
    let remote = registry.open_section(&section).await.unwrap();
    assert_eq!(
        remote
            .stat(&RemotePath::new("a").unwrap())
            .await
            .unwrap()
            .size,
        1
    );
    assert_eq!(
        registry.masked(&serde_json::json!({"type": "ftp", "password": "x"}))["password"],
        "***"
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

/// A source tree of `n` 1 MiB files plus an 8 MiB `big.bin`.
fn large_tree(root: &Path, n: usize) {
    for i in 0..n {
        put_disk_file(
            root,
            &format!("set/part {i:02}.bin"),
            &random_bytes(1024 * 1024 + i, i as u64),
            1_600_000_000 + i as u64,
        );
    }
    put_disk_file(
        root,
        "big.bin",
        &random_bytes(8 * 1024 * 1024 + 5, 99),
        1_650_000_000,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_killed_mid_sync_then_retried_sync_is_exact() {
    // A server of its own: this test kills its sessions.
    let victim = Ftpd::start(Kind::Proftpd);
    let src_dir = tempfile::tempdir().unwrap();
    large_tree(src_dir.path(), 12);
    let expected = disk_tree(src_dir.path());
    // Wrapped so the engine streams the files (a bare local source hands over paths) and
    // reports progress while the upload runs.
    let local: Arc<dyn Remote> = Arc::new(LocalConfig::new(src_dir.path()).build().unwrap());
    let source: Arc<dyn Remote> = Arc::new(Faulty::new(local));
    let remote: Arc<dyn Remote> = Arc::new(victim.config("killed").build().await.unwrap());
    let disk = victim.data.join("killed");
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
    let victim = Arc::new(victim);
    let sink: EventSink = {
        let (fired, killed, victim) = (fired.clone(), killed.clone(), victim.clone());
        Arc::new(move |e: &Event| {
            if let Event::Progress { path, bytes, size } = e {
                if path.as_str() == "big.bin"
                    && *bytes >= size / 2
                    && !fired.swap(true, Ordering::SeqCst)
                {
                    killed.store(kill_sessions(&victim), Ordering::SeqCst);
                }
            }
        })
    };
    let opts = SyncOptions {
        retry_backoff: Duration::from_millis(50),
        ..Default::default()
    };
    // No retries: the failure must be reported, not retried away.
    let no_retry = SyncOptions {
        retries: 1,
        low_level_retries: 0,
        events: Some(sink),
        ..opts.clone()
    };
    let first = ops::sync(&source, &remote, &no_retry).await.unwrap();
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
    let second = ops::sync(&source, &remote, &opts).await.unwrap();
    assert!(second.is_ok(), "{:?}", second.errors);
    assert!(second.transferred >= 1, "{second:?}");
    assert_eq!(second.deleted, 1, "{second:?}");
    assert!(
        disk_temp_files(&disk).is_empty(),
        "{:?}",
        disk_temp_files(&disk)
    );
    assert_eq!(disk_tree(&disk), expected);
    let third = ops::sync(&source, &remote, &opts).await.unwrap();
    assert!(third.is_ok(), "{:?}", third.errors);
    assert_eq!(third.transferred, 0, "{third:?}");
}

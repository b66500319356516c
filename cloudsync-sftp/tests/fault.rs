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

//! ProFTPD: the conformance suite over plain FTP (MLSD), explicit FTPS, and the LIST + PASV
//! path; plus login and certificate failures and a server killed mid-transfer.

mod common;

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use cloudsync_core::testkit;
use cloudsync_core::{ErrorKind, Remote, RemotePath, WriteMeta, bytes_stream};
use common::{Ftpd, Kind};
use futures::{StreamExt, TryStreamExt};

static SERVER: LazyLock<Ftpd> = LazyLock::new(|| Ftpd::start(Kind::Proftpd));

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proftpd_passes_conformance() {
    let remote: Arc<dyn Remote> = Arc::new(SERVER.config("plain").build().await.unwrap());
    let caps = remote.capabilities();
    assert!(
        caps.write_modtime && caps.set_modtime,
        "MFMT expected: {caps:?}"
    );
    testkit::conformance(remote).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proftpd_explicit_ftps_passes_conformance() {
    let remote: Arc<dyn Remote> = Arc::new(SERVER.tls_config("tls").build().await.unwrap());
    assert!(remote.describe().starts_with("ftps://"));
    testkit::conformance(remote).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proftpd_list_and_pasv_passes_conformance() {
    let remote: Arc<dyn Remote> = Arc::new(
        SERVER
            .config("list")
            .with_disable_mlsd(true)
            .with_disable_epsv(true)
            .with_connections(3)
            .build()
            .await
            .unwrap(),
    );
    testkit::conformance(remote).await;
}

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

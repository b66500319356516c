//! The object_store adapter ([`ObjectStoreRemote`]) against a real S3 implementation: moto's
//! server, through object_store's S3 client. The conformance suite runs with the adapter's
//! honest capabilities: no hash, no modtime that can be written (the store's `last_modified` is
//! the upload time), so the modtime, set_modtime and hash checks run in their "not declared"
//! form and `optional_ops` verifies that the undeclared operations are refused.

use std::process::Command;
use std::sync::{Arc, LazyLock};

use cloudsync_core::testkit::server::{TestServer, free_port, require_program};
use cloudsync_core::{ObjectStoreRemote, Remote, RemotePath};
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;

const HOW: &str = "pip install 'moto[server]' (scripts/install-test-deps.sh does it)";

static SERVER: LazyLock<TestServer> = LazyLock::new(|| {
    let program = require_program("moto_server", HOW);
    let port = free_port();
    let dir = TestServer::prepare("moto");
    TestServer::start_within(
        "moto_server",
        dir,
        Command::new(program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            // The environment's CA bundle is for HTTPS; this endpoint is plain HTTP.
            .env_remove("AWS_CA_BUNDLE"),
        port,
        std::time::Duration::from_secs(30),
    )
});

fn endpoint() -> String {
    format!("http://127.0.0.1:{}", SERVER.port())
}

/// An S3 store for `bucket` on moto, with dummy keys and path-style URLs.
fn store(bucket: &str) -> Arc<dyn ObjectStore> {
    Arc::new(
        AmazonS3Builder::new()
            .with_endpoint(endpoint())
            .with_allow_http(true)
            .with_virtual_hosted_style_request(false)
            .with_region("us-east-1")
            .with_bucket_name(bucket)
            .with_access_key_id("testing")
            .with_secret_access_key("testing")
            .build()
            .unwrap(),
    )
}

/// Creates `bucket` (S3 `CreateBucket`: a PUT of the bucket path; moto needs no signature).
async fn create_bucket(bucket: &str) {
    let res = reqwest::Client::new()
        .put(format!("{}/{bucket}", endpoint()))
        .send()
        .await
        .unwrap();
    assert!(
        res.status().is_success(),
        "create bucket {bucket}: {}",
        res.status()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_of_the_adapter_against_moto_s3() {
    create_bucket("adapter").await;
    let remote = ObjectStoreRemote::new(store("adapter"), "s3://adapter/suite")
        .with_space("s3://adapter")
        .with_prefix(&RemotePath::new("suite").unwrap());
    let caps = remote.capabilities().clone();
    // What the adapter declares, and so what the suite holds it to.
    assert!(caps.hashes.is_empty() && !caps.write_modtime && !caps.set_modtime);
    assert!(caps.copy && caps.rename && caps.list_recursive && !caps.dirs);
    let opts = cloudsync_core::testkit::ConformanceOptions {
        many_entries: 1100,
        ..Default::default()
    };
    cloudsync_core::testkit::conformance_with(Arc::new(remote), opts).await;
}

/// A body larger than the adapter's single-put limit goes up as an S3 multipart upload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_file_goes_up_in_parts() {
    create_bucket("multipart").await;
    let remote = ObjectStoreRemote::new(store("multipart"), "s3://multipart");
    let data: Vec<u8> = (0..20 * 1024 * 1024 + 7u32)
        .map(|i| (i % 251) as u8)
        .collect();
    let path = RemotePath::new("big/file.bin").unwrap();
    let chunks: Vec<cloudsync_core::Result<bytes::Bytes>> = data
        .chunks(1_000_003)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    let e = remote
        .write(
            &path,
            futures::StreamExt::boxed(futures::stream::iter(chunks)),
            cloudsync_core::WriteMeta {
                size: Some(data.len() as u64),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(e.size, data.len() as u64);
    let got = cloudsync_core::collect_bytes(remote.read(&path, None).await.unwrap())
        .await
        .unwrap();
    assert!(got[..] == data[..], "content differs");
    // S3 marks multipart ETags with `-<parts>`.
    let etag = remote.stat(&path).await.unwrap().etag.unwrap_or_default();
    assert!(etag.contains('-'), "not a multipart upload: etag {etag}");
}

/// The adapter's `Debug` shows the store by its `Display`: a store's own `Debug` may print its
/// credentials.
#[test]
fn debug_never_prints_the_store_credentials() {
    let store: Arc<dyn ObjectStore> = Arc::new(
        AmazonS3Builder::new()
            .with_endpoint("http://127.0.0.1:1")
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_bucket_name("bkt")
            .with_access_key_id("AKIA-visible")
            .with_secret_access_key("s3-secret-5521")
            .build()
            .unwrap(),
    );
    let shown = format!("{:?}", ObjectStoreRemote::new(store, "s3://bkt"));
    assert!(!shown.contains("s3-secret-5521"), "{shown}");
    assert!(shown.contains("bkt"), "{shown}");
}

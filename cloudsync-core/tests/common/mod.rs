//! moto's S3 server for the object_store adapter's tests: one per test binary, buckets made
//! through its API, and object_store S3 clients on them.
#![allow(dead_code)]

use std::process::Command;
use std::sync::{Arc, LazyLock};

use cloudsync_core::testkit::server::{TestServer, free_port, require_program};
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;

const HOW: &str = "pip install 'moto[server]' (scripts/install-test-deps.sh does it)";

pub static SERVER: LazyLock<TestServer> = LazyLock::new(|| {
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

pub fn endpoint() -> String {
    format!("http://127.0.0.1:{}", SERVER.port())
}

/// An S3 store for `bucket` on moto, with dummy keys and path-style URLs.
pub fn store(bucket: &str) -> Arc<dyn ObjectStore> {
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
pub async fn create_bucket(bucket: &str) {
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

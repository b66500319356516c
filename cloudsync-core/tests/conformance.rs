//! The conformance suite (remote operations and the sync engine against the remote) on the
//! remotes of this crate: the object_store adapter over the in-memory store (bare and below a
//! prefix) and over S3 (moto's server; feature `http`), and the engine tests' MemFs.
//!
//! Against S3 the adapter runs with its honest capabilities: no hash, no modtime that can be
//! written (the store's `last_modified` is the upload time), so the modtime, set_modtime and
//! hash checks run in their "not declared" form and `optional_ops` verifies that the
//! undeclared operations are refused.

use cloudsync_core::testkit;

#[cfg(feature = "http")]
mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_passes_conformance() {
    testkit::conformance(cloudsync_core::memory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_memory_remote_under_a_prefix_passes_conformance() {
    let remote = cloudsync_core::memory_named("conformance-prefixed");
    let sub = cloudsync_core::RemotePath::new("some/base").unwrap();
    testkit::conformance(cloudsync_core::Prefix::wrap(remote, sub)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memfs_test_remote_passes_conformance() {
    // The engine tests rely on MemFs behaving like a real backend.
    testkit::conformance(std::sync::Arc::new(testkit::MemFs::new(
        "memfs://conformance",
    )))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memfs_with_upload_sessions_passes_conformance() {
    // A stand-in for a cloud backend: uploads resume through sessions, not partial files.
    let fs = testkit::MemFs::new("memfs://conformance-sessions").with_sessions();
    let remote: std::sync::Arc<dyn cloudsync_core::Remote> = std::sync::Arc::new(fs.clone());
    testkit::conformance(remote).await;
    assert_eq!(fs.open_sessions(), 0, "sessions left open");
}

#[cfg(feature = "http")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_of_the_adapter_against_moto_s3() {
    common::create_bucket("adapter").await;
    let remote =
        cloudsync_core::ObjectStoreRemote::new(common::store("adapter"), "s3://adapter/suite")
            .with_space("s3://adapter")
            .with_prefix(&cloudsync_core::RemotePath::new("suite").unwrap());
    let caps = cloudsync_core::Remote::capabilities(&remote).clone();
    // What the adapter declares, and so what the suite holds it to.
    assert!(caps.hashes.is_empty() && !caps.write_modtime && !caps.set_modtime);
    assert!(caps.copy && caps.rename && caps.list_recursive && !caps.dirs);
    let opts = cloudsync_core::testkit::ConformanceOptions {
        many_entries: 1100,
        ..Default::default()
    };
    cloudsync_core::testkit::conformance_with(std::sync::Arc::new(remote), opts).await;
}

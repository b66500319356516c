//! The in-memory remotes (the object_store adapter, and the engine tests' MemFs) pass the
//! conformance suite.

use cloudsync_core::testkit;

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

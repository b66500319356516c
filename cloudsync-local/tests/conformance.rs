//! The local backend passes the conformance suite, rooted at a fresh temp directory.

use std::sync::Arc;

use cloudsync_core::Remote;
use cloudsync_core::testkit;
use cloudsync_local::LocalConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_passes_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let remote: Arc<dyn Remote> = Arc::new(LocalConfig::new(dir.path()).build().unwrap());
    testkit::conformance(remote).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_with_fsync_and_symlinks_followed_passes_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let remote: Arc<dyn Remote> = Arc::new(
        LocalConfig::new(dir.path())
            .with_fsync(true)
            .with_follow_symlinks(true)
            .build()
            .unwrap(),
    );
    testkit::conformance(remote).await;
}

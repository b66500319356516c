//! The shared conformance suite against a real OpenSSH sshd.

mod common;

use std::sync::{Arc, LazyLock};

use cloudsync_core::Remote;
use cloudsync_sftp::SftpRemote;

/// One server for this test binary; it stops when the binary exits.
static SSHD: LazyLock<common::Sshd> = LazyLock::new(|| common::Sshd::start(true));

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_against_openssh() {
    let config = SSHD.config("conformance").with_shell_hashes(true);
    let remote: Arc<dyn Remote> = Arc::new(SftpRemote::connect(config).await.unwrap());
    cloudsync_core::testkit::conformance(remote).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_with_one_connection_and_no_shell_hashes() {
    let config = SSHD.config("conformance-1").with_connections(1);
    let remote: Arc<dyn Remote> = Arc::new(SftpRemote::connect(config).await.unwrap());
    cloudsync_core::testkit::conformance(remote).await;
}

//! Pure-FTPd: the conformance suite over plain FTP (MLSD, MFMT, EPSV).

mod common;

use std::sync::{Arc, LazyLock};

use cloudsync_core::Remote;
use cloudsync_core::testkit;
use common::{Ftpd, Kind};

static SERVER: LazyLock<Ftpd> = LazyLock::new(|| Ftpd::start(Kind::Pureftpd));

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pureftpd_passes_conformance() {
    let remote: Arc<dyn Remote> = Arc::new(SERVER.config("plain").build().await.unwrap());
    assert!(remote.capabilities().write_modtime);
    testkit::conformance(remote).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pureftpd_explicit_ftps_passes_conformance() {
    let remote: Arc<dyn Remote> = Arc::new(SERVER.tls_config("tls").build().await.unwrap());
    testkit::conformance(remote).await;
}

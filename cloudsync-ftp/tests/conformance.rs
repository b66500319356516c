//! The conformance suite (remote operations and the sync engine against the remote) on every
//! FTP server we test with: ProFTPD over plain FTP (MLSD, MFMT), explicit FTPS, and the LIST +
//! PASV path; Pure-FTPd over plain FTP (MLSD, MFMT, EPSV) and explicit FTPS; vsftpd (no MLSD,
//! MLST or MFMT: the `LIST` parser with `MDTM` times) over explicit FTPS with
//! `require_ssl_reuse=YES`.

mod common;

use std::sync::{Arc, LazyLock};

use cloudsync_core::Remote;
use cloudsync_core::testkit;
use common::{Ftpd, Kind};

static PROFTPD: LazyLock<Ftpd> = LazyLock::new(|| Ftpd::start(Kind::Proftpd));
static PUREFTPD: LazyLock<Ftpd> = LazyLock::new(|| Ftpd::start(Kind::Pureftpd));
static VSFTPD: LazyLock<Ftpd> = LazyLock::new(|| Ftpd::start(Kind::Vsftpd));

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proftpd_passes_conformance() {
    let remote: Arc<dyn Remote> = Arc::new(PROFTPD.config("plain").build().await.unwrap());
    let caps = remote.capabilities();
    assert!(
        caps.write_modtime && caps.set_modtime,
        "MFMT expected: {caps:?}"
    );
    testkit::conformance(remote).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proftpd_explicit_ftps_passes_conformance() {
    let remote: Arc<dyn Remote> = Arc::new(PROFTPD.tls_config("tls").build().await.unwrap());
    assert!(remote.describe().starts_with("ftps://"));
    testkit::conformance(remote).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proftpd_list_and_pasv_passes_conformance() {
    let remote: Arc<dyn Remote> = Arc::new(
        PROFTPD
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pureftpd_passes_conformance() {
    let remote: Arc<dyn Remote> = Arc::new(PUREFTPD.config("plain").build().await.unwrap());
    assert!(remote.capabilities().write_modtime);
    testkit::conformance(remote).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pureftpd_explicit_ftps_passes_conformance() {
    let remote: Arc<dyn Remote> = Arc::new(PUREFTPD.tls_config("tls").build().await.unwrap());
    testkit::conformance(remote).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vsftpd_explicit_ftps_passes_conformance() {
    let remote: Arc<dyn Remote> = Arc::new(VSFTPD.tls_config("tls").build().await.unwrap());
    let caps = remote.capabilities();
    assert!(
        caps.write_modtime && caps.set_modtime,
        "MDTM-write expected to be detected: {caps:?}"
    );
    testkit::conformance(remote).await;
}

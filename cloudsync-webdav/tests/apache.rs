//! The conformance suite and WebDAV specifics against Apache httpd with mod_dav_fs.

mod common;

use std::sync::LazyLock;

use cloudsync_webdav::Vendor;
use common::{DavServer, remote_in, start_apache};

static SERVER: LazyLock<DavServer> = LazyLock::new(start_apache);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_apache() {
    let remote = remote_in(&SERVER, Vendor::Generic, "conformance").await;
    cloudsync_core::testkit::conformance(remote).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webdav_specifics_apache() {
    let remote = remote_in(&SERVER, Vendor::Generic, "specifics").await;
    common::checks::all(remote, &SERVER, true).await;
}

static TLS_SERVER: LazyLock<DavServer> = LazyLock::new(common::start_apache_tls);

/// HTTPS with a certificate from a private CA: refused by default, accepted with `ca_file` (the
/// CA as a trusted root) or `no_check_certificate`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_ca_file_or_no_check() {
    use cloudsync_core::{Remote, RemotePath, WriteMeta, bytes_stream};
    use cloudsync_webdav::{WebdavBackend, WebdavFactory};
    let url = TLS_SERVER.url.clone();
    let cert = TLS_SERVER.server.dir().join("ca.pem");
    let plain = WebdavBackend::new(
        cloudsync_webdav::WebdavConfig::new(url.clone())
            .with_password(common::USER, common::PASSWORD),
    )
    .unwrap();
    assert!(
        plain.stat(&RemotePath::root()).await.is_err(),
        "an untrusted certificate must fail"
    );
    let trusted = WebdavFactory
        .open_config(serde_json::json!({
            "url": url,
            "user": common::USER,
            "password": common::PASSWORD,
            "ca_file": cert,
        }))
        .await;
    let path = RemotePath::new("tls.txt").unwrap();
    trusted
        .write(&path, bytes_stream("over tls"), WriteMeta::default())
        .await
        .unwrap();
    let insecure = WebdavBackend::new(
        cloudsync_webdav::WebdavConfig::new(url)
            .with_password(common::USER, common::PASSWORD)
            .with_no_check_certificate(true),
    )
    .unwrap();
    assert_eq!(insecure.stat(&path).await.unwrap().size, 8);
}

/// Opens a config through the factory (as a config file would).
trait OpenConfig {
    async fn open_config(&self, v: serde_json::Value)
    -> std::sync::Arc<dyn cloudsync_core::Remote>;
}

impl OpenConfig for cloudsync_webdav::WebdavFactory {
    async fn open_config(
        &self,
        v: serde_json::Value,
    ) -> std::sync::Arc<dyn cloudsync_core::Remote> {
        cloudsync_core::BackendFactory::open(self, v).await.unwrap()
    }
}

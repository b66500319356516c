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

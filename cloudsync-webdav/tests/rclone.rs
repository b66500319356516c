//! WebDAV specifics against `rclone serve webdav`. (The conformance suite runs in
//! `conformance.rs`.)

mod common;

use std::sync::LazyLock;

use cloudsync_webdav::Vendor;
use common::{DavServer, remote_in, start_rclone};

static SERVER: LazyLock<DavServer> = LazyLock::new(start_rclone);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webdav_specifics_rclone() {
    let remote = remote_in(&SERVER, Vendor::Generic, "specifics").await;
    common::checks::all(remote, &SERVER, true).await;
}

//! WebDAV specifics against nginx (dav + dav_ext), as a generic server and, with its
//! `X-OC-MTime` shim, as a modtime-keeping Nextcloud-like target. (The conformance suite runs
//! in `conformance.rs`.)
//!
//! nginx's dav_ext module leaves names starting with `.` out of `PROPFIND` answers;
//! `nginx_hides_dot_names` pins the limitation down.

mod common;

use std::sync::LazyLock;

use cloudsync_core::{RemotePath, WriteMeta, bytes_stream};
use cloudsync_webdav::Vendor;
use common::{DavServer, remote_in, start_nginx};
use futures::TryStreamExt;

static SERVER: LazyLock<DavServer> = LazyLock::new(|| start_nginx("/dav/", true));

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_hides_dot_names() {
    let remote = remote_in(&SERVER, Vendor::Generic, "dots").await;
    let path = RemotePath::new(".dot").unwrap();
    remote
        .write(&path, bytes_stream("x"), WriteMeta::default())
        .await
        .unwrap();
    // stat sees it, the listing does not: the server's doing, not ours.
    assert_eq!(remote.stat(&path).await.unwrap().size, 1);
    let listed: Vec<_> = remote
        .list(&RemotePath::root())
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(listed.is_empty(), "{listed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webdav_specifics_nginx() {
    let remote = remote_in(&SERVER, Vendor::Generic, "specifics").await;
    common::checks::all(remote, &SERVER, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oc_mtime_is_kept_nginx() {
    let remote = remote_in(&SERVER, Vendor::Owncloud, "mtime").await;
    common::checks::modtime_round_trip(remote).await;
}

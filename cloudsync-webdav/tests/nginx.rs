//! The conformance suite and WebDAV specifics against nginx (dav + dav_ext), as a generic
//! server and, with its `X-OC-MTime` shim, as a modtime-keeping Nextcloud-like target.
//!
//! nginx's dav_ext module leaves names starting with `.` out of `PROPFIND` answers, so the
//! checks that list dot-names (`names`, `hostile_names`, and `leftovers`, whose temporary
//! upload files start with `.`) cannot pass against it; they run against Apache and rclone,
//! and `nginx_hides_dot_names` pins the limitation down.

mod common;

use std::sync::{Arc, LazyLock};

use cloudsync_core::testkit::{CHECKS, ConformanceOptions, run_check};
use cloudsync_core::{Prefix, Remote, RemotePath, WriteMeta, bytes_stream};
use cloudsync_webdav::Vendor;
use common::{DavServer, remote_in, start_nginx};
use futures::TryStreamExt;

static SERVER: LazyLock<DavServer> = LazyLock::new(|| start_nginx("/dav/", true));

/// Checks that need dot-names listed.
const DOT_NAME_CHECKS: &[&str] = &["names", "hostile_names", "leftovers"];

async fn conformance_without_dot_names(remote: Arc<dyn Remote>) {
    let opts = ConformanceOptions::default();
    let mut failures = Vec::new();
    for name in CHECKS {
        if DOT_NAME_CHECKS.contains(name) {
            eprintln!("{name}: not run against nginx (dav_ext hides dot-names)");
            continue;
        }
        let sub = Prefix::wrap(
            remote.clone(),
            RemotePath::new(&format!("ck-{name}-{:08x}", fastrand::u32(..))).unwrap(),
        );
        match run_check(name, &sub, &opts).await {
            Ok(()) => eprintln!("{name}: ok"),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "failed checks:\n{}",
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_nginx_generic() {
    let remote = remote_in(&SERVER, Vendor::Generic, "conformance").await;
    conformance_without_dot_names(remote).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_nginx_oc_mtime() {
    let remote = remote_in(&SERVER, Vendor::Owncloud, "conformance-oc").await;
    conformance_without_dot_names(remote).await;
}

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

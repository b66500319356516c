//! The conformance suite against a real Nextcloud, when one is configured:
//! `CLOUDSYNC_TEST_NEXTCLOUD_URL` (the server's address), `CLOUDSYNC_TEST_NEXTCLOUD_USER` and
//! `CLOUDSYNC_TEST_NEXTCLOUD_PASSWORD` (an app password). Everything happens in a new folder
//! `cloudsync-test-<random>` that is purged afterwards. Without the variables the test prints
//! that it did not run.
//!
//! The resumable-session check allows a cut upload to lose one chunk of the remote's default
//! size (`ConformanceOptions::session_chunk`).

use cloudsync_core::testkit::{CHECKS, ConformanceOptions, run_check};
use cloudsync_core::{BackendFactory, Prefix, RemotePath};
use cloudsync_webdav::NextcloudFactory;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_live_nextcloud() {
    let (Ok(url), Ok(user), Ok(_)) = (
        std::env::var("CLOUDSYNC_TEST_NEXTCLOUD_URL"),
        std::env::var("CLOUDSYNC_TEST_NEXTCLOUD_USER"),
        std::env::var("CLOUDSYNC_TEST_NEXTCLOUD_PASSWORD"),
    ) else {
        eprintln!(
            "live Nextcloud test NOT RUN: set CLOUDSYNC_TEST_NEXTCLOUD_URL, \
             CLOUDSYNC_TEST_NEXTCLOUD_USER and CLOUDSYNC_TEST_NEXTCLOUD_PASSWORD to run it"
        );
        return;
    };
    let open = |root: &str| {
        NextcloudFactory.open(serde_json::json!({
            "url": url,
            "user": user,
            "password_env": "CLOUDSYNC_TEST_NEXTCLOUD_PASSWORD",
            "root": root,
        }))
    };
    let folder = format!("cloudsync-test-{:08x}", fastrand::u32(..));
    let top = open("").await.unwrap();
    top.mkdir(&RemotePath::new(&folder).unwrap()).await.unwrap();
    let remote = open(&folder).await.unwrap();
    let opts = ConformanceOptions {
        session_chunk: cloudsync_webdav::DEFAULT_CHUNK_SIZE,
        ..Default::default()
    };
    let mut failures = Vec::new();
    for name in CHECKS {
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
    top.purge(&RemotePath::new(&folder).unwrap()).await.unwrap();
}

//! The conformance suite against the real Dropbox, when an app and a refresh token are
//! configured: `CLOUDSYNC_TEST_DROPBOX_APP_KEY`, `CLOUDSYNC_TEST_DROPBOX_REFRESH_TOKEN` and,
//! for apps that have one, `CLOUDSYNC_TEST_DROPBOX_APP_SECRET` (get a refresh token with
//! `cargo run --example authorize --features dropbox -- APP_KEY`). Everything happens in a new
//! folder `cloudsync-test-<random>` that is purged afterwards. Without the variables the test
//! prints that it did not run.

use cloudsync_core::{BackendFactory, RemotePath};
use cloudsync_dropbox::DropboxFactory;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_live_dropbox() {
    let (Ok(app_key), Ok(_)) = (
        std::env::var("CLOUDSYNC_TEST_DROPBOX_APP_KEY"),
        std::env::var("CLOUDSYNC_TEST_DROPBOX_REFRESH_TOKEN"),
    ) else {
        eprintln!(
            "live Dropbox test NOT RUN: set CLOUDSYNC_TEST_DROPBOX_APP_KEY and \
             CLOUDSYNC_TEST_DROPBOX_REFRESH_TOKEN (and CLOUDSYNC_TEST_DROPBOX_APP_SECRET for \
             apps with a secret) to run it"
        );
        return;
    };
    let open = |root: &str| {
        let mut cfg = serde_json::json!({
            "app_key": app_key,
            "refresh_token_env": "CLOUDSYNC_TEST_DROPBOX_REFRESH_TOKEN",
            "root": root,
        });
        if std::env::var("CLOUDSYNC_TEST_DROPBOX_APP_SECRET").is_ok() {
            cfg["app_secret_env"] = "CLOUDSYNC_TEST_DROPBOX_APP_SECRET".into();
        }
        DropboxFactory.open(cfg)
    };
    let folder = format!("cloudsync-test-{:08x}", fastrand::u32(..));
    let top = open("").await.unwrap();
    top.mkdir(&RemotePath::new(&folder).unwrap()).await.unwrap();
    let remote = open(&folder).await.unwrap();
    // Fewer entries than the default: writes to one account are rate-limited, and the suite's
    // checks do not retry.
    let opts = cloudsync_core::testkit::ConformanceOptions {
        many_entries: 250,
        ..Default::default()
    };
    cloudsync_core::testkit::conformance_with(remote, opts).await;
    top.purge(&RemotePath::new(&folder).unwrap()).await.unwrap();
}

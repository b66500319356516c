//! The conformance suite (remote operations and the sync engine against the remote) on the
//! Google Drive API v3 emulator (small upload chunks, so the large file goes through a
//! resumable session) and on fake-gcs-server (small chunks and cutoff, so resumable sessions
//! and listing pages are exercised; and at a bucket root with the default multipart uploads).
//! The Cloud Storage runs go through a front that adds the upload-session status query and
//! cancellation that fake-gcs-server does not implement (see `common/session_shim.rs`).

mod common;

use std::sync::Arc;

use cloudsync_core::Remote;
use cloudsync_core::testkit::{ConformanceOptions, conformance_with};
use cloudsync_gdrive::DriveRemote;
use cloudsync_gdrive::emulator::DriveEmulator;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_emulator() {
    let emu = DriveEmulator::start().await;
    // 256 KiB chunks: the 5 MiB file of the suite goes through a resumable session.
    let remote: Arc<dyn Remote> =
        Arc::new(DriveRemote::new(emu.config().with_chunk_size(256 * 1024)).unwrap());
    conformance_with(remote, ConformanceOptions::default()).await;
    assert!(
        emu.requests()
            .iter()
            .any(|r| r.contains("uploadType=resumable")),
        "the large file should have used a resumable upload"
    );
    assert!(
        emu.requests().iter().any(|r| r.contains("pageToken=")),
        "the many-entries listing should have used a second page"
    );
}

/// The whole suite, with 256 KiB chunks and cutoff (the 5 MiB file goes up in 21 resumable
/// chunks) and 1100 files in one directory (two listing pages of 1000).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_against_fake_gcs() {
    let b = common::bucket("conformance").await;
    // Through the front that adds the session status query and cancellation fake-gcs-server
    // lacks (see common/session_shim.rs): the session checks need both.
    let (cfg, shim) = common::remote_with_sessions(&b, "suite").await;
    cloudsync_core::testkit::conformance(Arc::new(cfg.build().unwrap())).await;
    assert!(
        shim.status_queries() > 0,
        "the session checks asked no session"
    );
}

/// The suite at the bucket root, with the default (multipart up to 8 MiB) uploads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_at_the_bucket_root() {
    let b = common::bucket("conformance-root").await;
    let opts = ConformanceOptions {
        many_entries: 200,
        ..Default::default()
    };
    // Session uploads (files of at least `resume_above`) go through the front that adds the
    // session status query fake-gcs-server lacks, in 256 KiB chunks; smaller files keep the
    // default multipart uploads.
    let shim = common::session_shim::SessionShim::start(common::base_url()).await;
    let cfg = cloudsync_gdrive::GcsConfig::new(&b)
        .with_emulator(shim.url())
        .with_chunk_size(256 * 1024);
    conformance_with(Arc::new(cfg.build().unwrap()), opts).await;
}

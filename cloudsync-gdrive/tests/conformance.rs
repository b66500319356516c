//! The conformance suite (remote operations and the sync engine against the remote) on the
//! Google Drive API v3 emulator (small upload chunks, so the large file goes through a
//! resumable session) and on fake-gcs-server (small chunks and cutoff, so resumable sessions
//! and listing pages are exercised; and at a bucket root with the default multipart uploads).

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
    let cfg = common::remote(&b, "suite")
        .with_chunk_size(256 * 1024)
        .with_upload_cutoff(256 * 1024);
    cloudsync_core::testkit::conformance(Arc::new(cfg.build().unwrap())).await;
}

/// The suite at the bucket root, with the default (multipart up to 8 MiB) uploads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_at_the_bucket_root() {
    let b = common::bucket("conformance-root").await;
    let opts = ConformanceOptions {
        many_entries: 200,
        ..Default::default()
    };
    conformance_with(Arc::new(common::remote(&b, "").build().unwrap()), opts).await;
}

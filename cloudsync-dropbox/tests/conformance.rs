//! The conformance suite against the emulator, with a small listing page (so pagination and
//! cursors are exercised) and the smallest upload chunk (so the large-file check goes through
//! an upload session). Resumable uploads append 1 MiB at a time
//! ([`SESSION_CHUNK_SLACK`](cloudsync_core::testkit::SESSION_CHUNK_SLACK): what the session
//! checks allow a cut upload to lose).

use std::sync::Arc;

use cloudsync_core::Remote;
use cloudsync_dropbox::DropboxRemote;
use cloudsync_dropbox::emulator::Emulator;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_against_the_emulator() {
    let emu = Emulator::start().unwrap();
    let cfg = emu
        .config()
        .with_root("conformance")
        .with_list_limit(97)
        .with_chunk_size(4 * 1024 * 1024)
        .with_session_chunk_size(cloudsync_core::testkit::SESSION_CHUNK_SLACK);
    let remote: Arc<dyn Remote> = Arc::new(DropboxRemote::new(cfg).unwrap());
    remote
        .mkdir(&cloudsync_core::RemotePath::root())
        .await
        .unwrap();
    cloudsync_core::testkit::conformance(remote).await;
    assert!(
        emu.requests("files/list_folder/continue") > 0,
        "no listing needed a second page"
    );
    assert!(
        emu.requests("files/upload_session/finish") > 0,
        "no upload session was used"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_at_the_dropbox_root() {
    let emu = Emulator::start().unwrap();
    let cfg = emu
        .config()
        .with_session_chunk_size(cloudsync_core::testkit::SESSION_CHUNK_SLACK);
    let remote: Arc<dyn Remote> = Arc::new(DropboxRemote::new(cfg).unwrap());
    cloudsync_core::testkit::conformance(remote).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_with_batched_commits() {
    let emu = Emulator::start().unwrap();
    let cfg = emu
        .config()
        .with_root("batched")
        .with_batching(16, 5)
        .with_session_chunk_size(cloudsync_core::testkit::SESSION_CHUNK_SLACK);
    let remote: Arc<dyn Remote> = Arc::new(DropboxRemote::new(cfg).unwrap());
    remote
        .mkdir(&cloudsync_core::RemotePath::root())
        .await
        .unwrap();
    // Each sequential write waits for its batch's timeout: fewer files keep this quick.
    let opts = cloudsync_core::testkit::ConformanceOptions {
        many_entries: 200,
        ..Default::default()
    };
    cloudsync_core::testkit::conformance_with(remote, opts).await;
    assert!(emu.requests("files/upload_session/finish_batch_v2") > 0);
}

//! The Google Drive backend against the in-process Drive API v3 emulator: the Drive specifics (resumable uploads resumed after a dropped connection, duplicate
//! names, Google Docs, trash and cleanup, rate limits, token refresh); and the conformance
//! suite live when `CLOUDSYNC_TEST_GDRIVE_*` is set. (The conformance suite against the
//! emulator runs in `conformance.rs`.)

use std::sync::Arc;
use std::time::Duration;

use cloudsync_core::testkit::{ConformanceOptions, conformance_with};
use cloudsync_core::{
    BackendFactory, ErrorKind, HashKind, Remote, RemotePath, WriteMeta, bytes_stream, collect_bytes,
};
use cloudsync_gdrive::emulator::{DriveEmulator, Fault, ROOT_ID};
use cloudsync_gdrive::{DriveRemote, GdriveConfig, GdriveFactory};
use futures::{StreamExt, TryStreamExt};

fn p(s: &str) -> RemotePath {
    RemotePath::new(s).unwrap()
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// A stream of `data` in uneven chunks.
fn chunked(data: Vec<u8>, size: usize) -> cloudsync_core::ByteStream {
    let chunks: Vec<cloudsync_core::Result<bytes::Bytes>> = data
        .chunks(size)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    futures::stream::iter(chunks).boxed()
}

fn backend(emu: &DriveEmulator, chunk: u64) -> Arc<dyn Remote> {
    Arc::new(DriveRemote::new(emu.config().with_chunk_size(chunk)).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumable_upload_resumes_after_a_dropped_connection() {
    let emu = DriveEmulator::start().await;
    let remote = backend(&emu, 256 * 1024);
    let content = data(1024 * 1024 + 5, 7);
    // The second chunk is half committed, then the connection drops.
    emu.inject("PUT", "upload_id=", Fault::Drop, 1);
    let path = p("big/resumed.bin");
    let e = remote
        .write(
            &path,
            chunked(content.clone(), 100_000),
            WriteMeta {
                size: Some(content.len() as u64),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(e.size, content.len() as u64);
    let got = collect_bytes(remote.read(&path, None).await.unwrap())
        .await
        .unwrap();
    assert_eq!(got.len(), content.len());
    assert!(got[..] == content[..], "content differs after the resume");
    let puts: Vec<String> = emu
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("PUT ") && r.contains("upload_id="))
        .collect();
    // The first chunk dropped after half of it was committed, the status query, then the
    // rest of the first chunk resent from the committed offset.
    assert!(puts[0].ends_with("[bytes 0-262143/*]"), "{puts:?}");
    assert!(puts[1].ends_with("[bytes */*]"), "{puts:?}");
    assert!(puts[2].ends_with("[bytes 131072-393215/*]"), "{puts:?}");
    assert!(puts.last().unwrap().ends_with("/1048581]"), "{puts:?}");
    assert_eq!(emu.open_sessions(), 0);
    // An update of the same file through a resumable session keeps one file.
    let second = data(600 * 1024, 9);
    remote
        .write(&path, chunked(second.clone(), 65_536), WriteMeta::default())
        .await
        .unwrap();
    let got = collect_bytes(remote.read(&path, None).await.unwrap())
        .await
        .unwrap();
    assert!(got[..] == second[..]);
    let names: Vec<_> = remote
        .list(&p("big"))
        .await
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    assert_eq!(names.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_body_cancels_the_session_and_leaves_nothing() {
    let emu = DriveEmulator::start().await;
    let remote = backend(&emu, 256 * 1024);
    let good = futures::stream::iter((0..4).map(|_| Ok(bytes::Bytes::from(vec![1u8; 200_000]))));
    let bad = futures::stream::once(async {
        Err(cloudsync_core::Error::new(ErrorKind::Io, "source broke"))
    });
    let res = remote
        .write(
            &p("x/broken.bin"),
            good.chain(bad).boxed(),
            WriteMeta::default(),
        )
        .await;
    assert!(res.is_err());
    assert_eq!(
        remote.stat(&p("x/broken.bin")).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(emu.open_sessions(), 0, "the session should be cancelled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_names_are_errors_never_a_pick() {
    let emu = DriveEmulator::start().await;
    let remote = backend(&emu, 256 * 1024);
    emu.add_file("root", "dup.txt", "text/plain", b"one");
    emu.add_file("root", "dup.txt", "text/plain", b"two!");
    emu.add_file("root", "ok.txt", "text/plain", b"fine");
    emu.add_file(
        "root",
        "Budget",
        "application/vnd.google-apps.spreadsheet",
        b"",
    );
    let items: Vec<_> = remote
        .list(&RemotePath::root())
        .await
        .unwrap()
        .collect()
        .await;
    let oks: Vec<String> = items
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|e| e.path.as_str().to_owned())
        .collect();
    // Entries stream page by page, so the first `dup.txt` is yielded before the second is
    // seen; the Conflict entry that follows voids the folder's listing (any error but
    // InvalidInput does), so nothing is decided from it.
    assert!(oks.contains(&"ok.txt".to_owned()), "{oks:?}");
    assert!(
        !oks.contains(&"Budget".to_owned()),
        "Google Docs are skipped: {oks:?}"
    );
    let errs: Vec<_> = items.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].kind(), ErrorKind::Conflict);
    assert!(errs[0].to_string().contains("dup.txt"), "{}", errs[0]);
    for res in [
        remote.stat(&p("dup.txt")).await.map(|_| ()),
        remote.read(&p("dup.txt"), None).await.map(|_| ()),
        remote
            .write(&p("dup.txt"), bytes_stream("x"), WriteMeta::default())
            .await
            .map(|_| ()),
        remote.remove_file(&p("dup.txt")).await,
    ] {
        assert_eq!(res.unwrap_err().kind(), ErrorKind::Conflict);
    }
    // Nothing was changed or removed.
    assert!(emu.trashed().is_empty());
    assert_eq!(emu.file_count(), 4);
    // A Google Doc is not a file of the remote: hidden from listings, absent to a read.
    assert_eq!(
        remote.read(&p("Budget"), None).await.err().unwrap().kind(),
        ErrorKind::NotFound
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trash_then_cleanup_and_permanent_deletes() {
    let emu = DriveEmulator::start().await;
    let remote = backend(&emu, 256 * 1024);
    remote
        .write(&p("t/a.txt"), bytes_stream("aaa"), WriteMeta::default())
        .await
        .unwrap();
    remote.remove_file(&p("t/a.txt")).await.unwrap();
    assert_eq!(emu.trashed(), vec!["a.txt".to_owned()]);
    assert_eq!(
        remote.stat(&p("t/a.txt")).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    remote.remove_dir(&p("t")).await.unwrap();
    assert_eq!(emu.trashed(), vec!["a.txt".to_owned(), "t".to_owned()]);
    assert!(remote.usage().await.unwrap().trashed.unwrap() >= 3);
    remote.cleanup().await.unwrap();
    assert!(emu.trashed().is_empty());
    assert_eq!(emu.file_count(), 0);

    let permanent: Arc<dyn Remote> =
        Arc::new(DriveRemote::new(emu.config().with_use_trash(false)).unwrap());
    permanent
        .write(&p("gone.txt"), bytes_stream("x"), WriteMeta::default())
        .await
        .unwrap();
    permanent.remove_file(&p("gone.txt")).await.unwrap();
    assert!(emu.trashed().is_empty());
    assert_eq!(emu.file_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_server_errors_are_temporary() {
    let emu = DriveEmulator::start().await;
    let remote = backend(&emu, 256 * 1024);
    remote
        .write(&p("r.txt"), bytes_stream("r"), WriteMeta::default())
        .await
        .unwrap();
    let cases = [
        (403, "userRateLimitExceeded", ErrorKind::RateLimited),
        (403, "rateLimitExceeded", ErrorKind::RateLimited),
        (429, "rateLimitExceeded", ErrorKind::RateLimited),
        (503, "backendError", ErrorKind::Transient),
        (500, "internalError", ErrorKind::Transient),
        (
            403,
            "insufficientFilePermissions",
            ErrorKind::PermissionDenied,
        ),
        (403, "storageQuotaExceeded", ErrorKind::QuotaExceeded),
    ];
    for (status, reason, kind) in cases {
        emu.inject(
            "GET",
            "/drive/v3/files?",
            Fault::Status {
                status,
                reason: reason.into(),
                retry_after: Some(3),
            },
            1,
        );
        let e = remote.stat(&p("r.txt")).await.unwrap_err();
        assert_eq!(e.kind(), kind, "{status} {reason}: {e}");
        let temporary = matches!(kind, ErrorKind::RateLimited | ErrorKind::Transient);
        assert_eq!(e.is_retryable(), temporary, "{status} {reason}");
        if kind == ErrorKind::RateLimited {
            assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
        }
        // The next request goes through.
        assert_eq!(remote.stat(&p("r.txt")).await.unwrap().size, 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_tokens_are_refreshed_once() {
    let emu = DriveEmulator::start().await;
    let remote = backend(&emu, 256 * 1024);
    remote
        .write(&p("tok.txt"), bytes_stream("t"), WriteMeta::default())
        .await
        .unwrap();
    assert_eq!(emu.token_requests(), 1);
    emu.expire_tokens();
    assert_eq!(remote.stat(&p("tok.txt")).await.unwrap().size, 1);
    assert_eq!(emu.token_requests(), 2);
    // A refresh token the server rejects is an authentication error.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("token.json");
    std::fs::write(&bad, r#"{"refresh_token":"revoked"}"#).unwrap();
    let mut cfg = emu.config();
    cfg.token_file = Some(bad);
    let remote = DriveRemote::new(cfg).unwrap();
    assert_eq!(
        remote.stat(&p("tok.txt")).await.unwrap_err().kind(),
        ErrorKind::Auth
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checksums_modtimes_and_root_folder() {
    let emu = DriveEmulator::start().await;
    let folder = emu.add_folder(ROOT_ID, "Backups");
    let remote = GdriveFactory
        .open(serde_json::to_value(emu.config().with_root_folder_id(folder.clone())).unwrap())
        .await
        .unwrap();
    assert!(remote.describe().contains(&folder));
    let t = time::macros::datetime!(2021-03-04 05:06:07.089 UTC);
    let e = remote
        .write(
            &p("h.txt"),
            bytes_stream("hello"),
            WriteMeta {
                modtime: Some(t),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(e.modtime, Some(t));
    assert_eq!(
        e.hashes.get(HashKind::Md5),
        Some("5d41402abc4b2a76b9719d911017c592")
    );
    assert_eq!(
        remote.hash(&p("h.txt"), HashKind::Sha256).await.unwrap(),
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    );
    // The file is inside the root folder, not in My Drive's root.
    let top = backend(&emu, 256 * 1024);
    assert!(top.stat(&p("Backups/h.txt")).await.unwrap().is_file());
    assert_eq!(
        top.stat(&p("h.txt")).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn config_errors_name_the_key() {
    let e = DriveRemote::new(GdriveConfig::default()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConfigInvalid);
    assert!(e.message().contains("`client_id`"), "{e}");
    let e = DriveRemote::new(GdriveConfig::oauth(
        "id",
        "CLOUDSYNC_TEST_SURELY_UNSET_VARIABLE",
    ))
    .unwrap_err();
    assert!(e.message().contains("`refresh_token_env`"), "{e}");
    let mut cfg = GdriveConfig::default();
    cfg.client_id = Some("x".into());
    cfg.token_file = Some("/nonexistent/token.json".into());
    let e = DriveRemote::new(cfg.clone().with_chunk_size(1000)).unwrap_err();
    assert!(e.message().contains("`chunk_size`"), "{e}");
    let e = DriveRemote::new(cfg).unwrap_err();
    assert!(e.message().contains("`token_file`"), "{e}");
    let e = cloudsync_core::parse_config::<GdriveConfig>(
        "gdrive",
        serde_json::json!({ "client_id": "x", "nope": 1 }),
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConfigInvalid);
}

/// Live run against Google Drive: `CLOUDSYNC_TEST_GDRIVE_CLIENT_ID`,
/// `CLOUDSYNC_TEST_GDRIVE_REFRESH_TOKEN`, optional `CLOUDSYNC_TEST_GDRIVE_CLIENT_SECRET`, and
/// `CLOUDSYNC_TEST_GDRIVE_ROOT_FOLDER_ID` (a scratch folder; everything in it may be deleted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_gdrive() {
    let (Ok(client_id), Ok(_), Ok(folder)) = (
        std::env::var("CLOUDSYNC_TEST_GDRIVE_CLIENT_ID"),
        std::env::var("CLOUDSYNC_TEST_GDRIVE_REFRESH_TOKEN"),
        std::env::var("CLOUDSYNC_TEST_GDRIVE_ROOT_FOLDER_ID"),
    ) else {
        eprintln!(
            "notice: live_gdrive skipped: set CLOUDSYNC_TEST_GDRIVE_CLIENT_ID, \
             CLOUDSYNC_TEST_GDRIVE_REFRESH_TOKEN and CLOUDSYNC_TEST_GDRIVE_ROOT_FOLDER_ID to run it"
        );
        return;
    };
    let mut cfg = GdriveConfig::oauth(client_id, "CLOUDSYNC_TEST_GDRIVE_REFRESH_TOKEN")
        .with_root_folder_id(folder)
        .with_use_trash(false);
    if std::env::var("CLOUDSYNC_TEST_GDRIVE_CLIENT_SECRET").is_ok() {
        cfg.client_secret_env = Some("CLOUDSYNC_TEST_GDRIVE_CLIENT_SECRET".into());
    }
    let remote: Arc<dyn Remote> = Arc::new(DriveRemote::new(cfg).unwrap());
    conformance_with(
        remote,
        ConformanceOptions {
            many_entries: 1010,
            ..Default::default()
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_account_jwt_grant() {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::KeyPair as _;
    use base64::Engine as _;
    let emu = DriveEmulator::start().await;
    let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&key).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let pem = format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n");
    let email = "backup@project.iam.gserviceaccount.com";
    emu.add_service_account(email, key.public_key().as_ref());
    let dir = tempfile::tempdir().unwrap();
    let sa = dir.path().join("sa.json");
    std::fs::write(
        &sa,
        serde_json::json!({ "type": "service_account", "client_email": email, "private_key": pem })
            .to_string(),
    )
    .unwrap();
    let cfg = GdriveConfig::service_account(&sa).with_endpoint(&emu.url());
    let remote = DriveRemote::new(cfg.clone()).unwrap();
    remote
        .write(&p("sa.txt"), bytes_stream("by jwt"), WriteMeta::default())
        .await
        .unwrap();
    assert_eq!(emu.token_requests(), 1);
    // A key the server does not know is refused.
    let other = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&other).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    std::fs::write(
        &sa,
        serde_json::json!({ "client_email": email,
            "private_key": format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n") })
            .to_string(),
    )
    .unwrap();
    let remote = DriveRemote::new(cfg).unwrap();
    assert_eq!(
        remote.stat(&p("sa.txt")).await.unwrap_err().kind(),
        ErrorKind::Auth
    );
}

/// The engine's retry policy backs off on the backend's RateLimited errors, honouring
/// `Retry-After`, and the operation then succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_backoff_with_the_core_retry_policy() {
    let emu = DriveEmulator::start().await;
    let remote = backend(&emu, 256 * 1024);
    remote
        .write(&p("b.txt"), bytes_stream("b"), WriteMeta::default())
        .await
        .unwrap();
    emu.inject(
        "GET",
        "/drive/v3/files?",
        Fault::Status {
            status: 403,
            reason: "userRateLimitExceeded".into(),
            retry_after: Some(1),
        },
        2,
    );
    let policy = cloudsync_core::RetryPolicy {
        max_retries: 4,
        base: Duration::from_millis(1),
        max_backoff: Duration::from_millis(10),
        ..Default::default()
    };
    let start = std::time::Instant::now();
    let mut retries = Vec::new();
    let path = p("b.txt");
    let e = policy
        .run(|| remote.stat(&path), |e, n| retries.push((e.kind(), n)))
        .await
        .unwrap();
    assert_eq!(e.size, 1);
    assert_eq!(
        retries,
        vec![(ErrorKind::RateLimited, 1), (ErrorKind::RateLimited, 2)]
    );
    assert!(
        start.elapsed() >= Duration::from_secs(2),
        "Retry-After: 1 was not honoured ({:?})",
        start.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumable_upload_resumes_after_a_server_error() {
    let emu = DriveEmulator::start().await;
    let remote = backend(&emu, 256 * 1024);
    let content = data(700 * 1024, 3);
    emu.inject(
        "PUT",
        "upload_id=",
        Fault::Status {
            status: 503,
            reason: "backendError".into(),
            retry_after: None,
        },
        1,
    );
    remote
        .write(
            &p("r503.bin"),
            chunked(content.clone(), 50_000),
            WriteMeta::default(),
        )
        .await
        .unwrap();
    let got = collect_bytes(remote.read(&p("r503.bin"), None).await.unwrap())
        .await
        .unwrap();
    assert!(got[..] == content[..]);
    assert!(emu.requests().iter().any(|r| r.ends_with("[bytes */*]")));
}

/// A copy or move onto an existing file puts the new file in place first, then trashes the
/// old one (so a failure in between never loses it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_copy_and_move_trash_the_old_target() {
    let emu = DriveEmulator::start().await;
    let remote = backend(&emu, 256 * 1024);
    for (name, body) in [("a.txt", "new"), ("b.txt", "old b"), ("c.txt", "old c")] {
        remote
            .write(&p(name), bytes_stream(body), WriteMeta::default())
            .await
            .unwrap();
    }
    remote.copy(&p("a.txt"), &p("b.txt")).await.unwrap();
    remote.rename(&p("a.txt"), &p("d/c.txt")).await.unwrap();
    remote.rename(&p("c.txt"), &p("d/c.txt")).await.unwrap();
    let got = collect_bytes(remote.read(&p("b.txt"), None).await.unwrap())
        .await
        .unwrap();
    assert_eq!(&got[..], b"new");
    let got = collect_bytes(remote.read(&p("d/c.txt"), None).await.unwrap())
        .await
        .unwrap();
    assert_eq!(&got[..], b"old c");
    assert_eq!(
        emu.trashed(),
        vec!["b.txt".to_owned(), "c.txt".to_owned()],
        "the replaced b.txt and the first d/c.txt"
    );
    assert_eq!(
        remote.stat(&p("a.txt")).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

// ---- The Drive v3 behaviours a naive client gets wrong (each against the emulator) ----

fn list_requests(emu: &DriveEmulator) -> usize {
    emu.requests()
        .iter()
        .filter(|r| r.starts_with("GET /drive/v3/files?"))
        .count()
}

async fn names(remote: &dyn Remote, dir: &str) -> Vec<String> {
    let dir = if dir.is_empty() {
        RemotePath::root()
    } else {
        p(dir)
    };
    let mut v: Vec<String> = remote
        .list(&dir)
        .await
        .unwrap()
        .map(|e| e.unwrap().path.name().to_owned())
        .collect()
        .await;
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_root_folder_inside_a_shared_drive_lists_without_drive_id() {
    let emu = DriveEmulator::start().await;
    let drive = emu.add_shared_drive("Team");
    let folder = emu.add_folder(&drive, "Projects");
    emu.add_file(&folder, "a.txt", "text/plain", b"shared");
    let sub = emu.add_folder(&folder, "sub");
    emu.add_file(&sub, "b.txt", "text/plain", b"deeper");
    // A root folder in a shared drive, and no `drive_id`.
    let remote = DriveRemote::new(emu.config().with_root_folder_id(&folder)).unwrap();
    assert_eq!(names(&remote, "").await, vec!["a.txt", "sub"]);
    assert_eq!(names(&remote, "sub").await, vec!["b.txt"]);
    let got = collect_bytes(remote.read(&p("sub/b.txt"), None).await.unwrap())
        .await
        .unwrap();
    assert_eq!(&got[..], b"deeper");
    assert!(
        emu.requests()
            .iter()
            .filter(|r| r.starts_with("GET /drive/v3/files?"))
            .all(|r| r.contains("includeItemsFromAllDrives=true")),
        "every files.list asks for shared-drive items"
    );
    // With `drive_id` the drive is searched as a corpus, and writes land in it.
    let remote = DriveRemote::new(emu.config().with_drive_id(&drive)).unwrap();
    assert_eq!(names(&remote, "Projects").await, vec!["a.txt", "sub"]);
    remote
        .write(
            &p("Projects/c.txt"),
            bytes_stream("new"),
            WriteMeta::default(),
        )
        .await
        .unwrap();
    assert_eq!(emu.names_in(&folder), vec!["a.txt", "c.txt", "sub"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_consumer_of_pagination_walks_empty_and_short_pages() {
    let emu = DriveEmulator::start().await;
    // The default page shape: an empty first page, then pages of one and of many entries.
    let remote = backend(&emu, 256 * 1024);
    let d1 = emu.add_folder("root", "d1");
    let d2 = emu.add_folder(&d1, "d2");
    emu.add_file(&d2, "deep.txt", "text/plain", b"found");
    for i in 0..10 {
        emu.add_file("root", &format!("f{i}"), "text/plain", b"x");
    }
    // Path resolution: every level's lookup starts with an empty page.
    assert_eq!(remote.stat(&p("d1/d2/deep.txt")).await.unwrap().size, 5);
    // remove_dir: the first page of a non-empty folder is empty, and still it is not empty.
    let e = remote.remove_dir(&p("d1/d2")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert!(emu.trashed().is_empty(), "nothing was removed");
    // The listing: every entry, across the empty, short and full pages.
    let before = list_requests(&emu);
    let listed = names(&*remote, "").await;
    assert_eq!(listed.len(), 11, "{listed:?}");
    assert_eq!(
        list_requests(&emu) - before,
        3,
        "empty, one-entry and full page"
    );
    // An empty folder is one empty page with a token, then one without.
    remote.mkdir(&p("empty")).await.unwrap();
    assert!(names(&*remote, "empty").await.is_empty());
    remote.remove_dir(&p("empty")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_streams_page_by_page() {
    let emu = DriveEmulator::start().await;
    let remote = backend(&emu, 256 * 1024);
    for i in 0..10 {
        emu.add_file("root", &format!("f{i}"), "text/plain", b"x");
    }
    let before = list_requests(&emu);
    let mut stream = remote.list(&RemotePath::root()).await.unwrap();
    let first = stream.next().await.unwrap().unwrap();
    assert!(first.path.name().starts_with('f'));
    // The empty page and the one-entry page; the last page is not fetched yet.
    assert_eq!(list_requests(&emu) - before, 2);
    let rest: Vec<_> = stream.collect().await;
    assert_eq!(rest.len(), 9);
    assert_eq!(list_requests(&emu) - before, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_google_doc_is_never_the_target_of_a_name() {
    let emu = DriveEmulator::start().await;
    let remote = backend(&emu, 256 * 1024);
    for doc in ["Notes", "Plan", "Sheet", "Other"] {
        emu.add_file("root", doc, "application/vnd.google-apps.document", b"");
    }
    remote
        .write(&p("a.txt"), bytes_stream("aaa"), WriteMeta::default())
        .await
        .unwrap();
    remote
        .write(&p("b.txt"), bytes_stream("bbbb"), WriteMeta::default())
        .await
        .unwrap();
    // Invisible to stat and to deletes.
    assert_eq!(
        remote.stat(&p("Notes")).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        remote.remove_file(&p("Other")).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    // A write, a copy and a rename onto a Doc's name create a file beside it.
    remote
        .write(
            &p("Notes"),
            bytes_stream("binary notes"),
            WriteMeta::default(),
        )
        .await
        .unwrap();
    remote.copy(&p("a.txt"), &p("Plan")).await.unwrap();
    remote.rename(&p("b.txt"), &p("Sheet")).await.unwrap();
    assert!(
        emu.trashed().is_empty(),
        "no Doc was trashed: {:?}",
        emu.trashed()
    );
    // Four Docs, a.txt, and the new Notes, Plan and Sheet (b.txt was renamed).
    assert_eq!(emu.file_count(), 4 + 1 + 3);
    assert_eq!(
        names(&*remote, "").await,
        vec!["Notes", "Plan", "Sheet", "a.txt"]
    );
    assert_eq!(remote.stat(&p("Sheet")).await.unwrap().size, 4);
    // The Doc does not make the folder look empty, nor is it removed with it silently.
    remote.mkdir(&p("d")).await.unwrap();
    let d = remote.stat(&p("d")).await.unwrap().id.unwrap();
    emu.add_file(&d, "Draft", "application/vnd.google-apps.document", b"");
    assert_eq!(
        remote.remove_dir(&p("d")).await.unwrap_err().kind(),
        ErrorKind::Conflict
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slashes_in_drive_names_round_trip() {
    let emu = DriveEmulator::start().await;
    let remote = backend(&emu, 256 * 1024);
    emu.add_file("root", "a/b", "text/plain", b"slash");
    emu.add_file("root", "c\u{FF0F}d", "text/plain", b"fullwidth");
    // `/` lists as U+FF0F; a U+FF0F already in the name is quoted with U+201B.
    assert_eq!(
        names(&*remote, "").await,
        vec!["a\u{FF0F}b", "c\u{201B}\u{FF0F}d"]
    );
    let got = collect_bytes(remote.read(&p("a\u{FF0F}b"), None).await.unwrap())
        .await
        .unwrap();
    assert_eq!(&got[..], b"slash");
    let got = collect_bytes(remote.read(&p("c\u{201B}\u{FF0F}d"), None).await.unwrap())
        .await
        .unwrap();
    assert_eq!(&got[..], b"fullwidth");
    // Writing back updates the same Drive file; a new name with U+FF0F is stored with `/`.
    remote
        .write(
            &p("a\u{FF0F}b"),
            bytes_stream("again"),
            WriteMeta::default(),
        )
        .await
        .unwrap();
    remote
        .write(
            &p("x\u{FF0F}y/in\u{FF0F}side"),
            bytes_stream("n"),
            WriteMeta::default(),
        )
        .await
        .unwrap();
    assert_eq!(emu.names_in("root"), vec!["a/b", "c\u{FF0F}d", "x/y"]);
    assert_eq!(emu.file_count(), 4);
    assert_eq!(remote.stat(&p("a\u{FF0F}b")).await.unwrap().size, 5);
    assert_eq!(names(&*remote, "x\u{FF0F}y").await, vec!["in\u{FF0F}side"]);
}

/// A service-account config for `emu` (a fresh RSA key registered with it).
fn service_account(emu: &DriveEmulator, dir: &std::path::Path) -> GdriveConfig {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::KeyPair as _;
    use base64::Engine as _;
    let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&key).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let pem = format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n");
    let email = "nostorage@project.iam.gserviceaccount.com";
    emu.add_service_account(email, key.public_key().as_ref());
    let sa = dir.join("sa.json");
    std::fs::write(
        &sa,
        serde_json::json!({ "type": "service_account", "client_email": email, "private_key": pem })
            .to_string(),
    )
    .unwrap();
    GdriveConfig::service_account(&sa).with_endpoint(&emu.url())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_account_without_storage_is_told_to_use_a_shared_drive() {
    let emu = DriveEmulator::start().await;
    emu.set_service_account_without_storage(true);
    let dir = tempfile::tempdir().unwrap();
    let cfg = service_account(&emu, dir.path());
    let remote = DriveRemote::new(cfg.clone().with_chunk_size(256 * 1024)).unwrap();
    let small = remote
        .write(&p("a.txt"), bytes_stream("tiny"), WriteMeta::default())
        .await
        .unwrap_err();
    let big = remote
        .write(
            &p("big.bin"),
            bytes_stream(vec![3u8; 300 * 1024]),
            WriteMeta::default(),
        )
        .await
        .unwrap_err();
    for e in [small, big] {
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
        assert!(!e.is_retryable(), "{e}");
        let text = e.to_string();
        assert!(
            text.contains("shared drive") && text.contains("drive_id"),
            "{text}"
        );
    }
    assert_eq!(emu.file_count(), 0);
    // In a shared drive the same account writes.
    let drive = emu.add_shared_drive("Backups");
    let remote = DriveRemote::new(cfg.with_drive_id(&drive)).unwrap();
    remote
        .write(&p("a.txt"), bytes_stream("tiny"), WriteMeta::default())
        .await
        .unwrap();
    assert_eq!(emu.names_in(&drive), vec!["a.txt"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_ignores_range_is_not_taken_for_the_tail() {
    let emu = DriveEmulator::start().await;
    let remote = backend(&emu, 256 * 1024);
    let content = data(100_000, 9);
    remote
        .write(
            &p("r.bin"),
            chunked(content.clone(), 7_000),
            WriteMeta::default(),
        )
        .await
        .unwrap();
    emu.set_ignore_range(true);
    for range in [0..10, 12_345..54_321, 99_990..100_000, 5..200_000] {
        let got = collect_bytes(remote.read(&p("r.bin"), Some(range.clone())).await.unwrap())
            .await
            .unwrap();
        let end = range.end.min(content.len() as u64) as usize;
        assert_eq!(&got[..], &content[range.start as usize..end], "{range:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_query_of_a_resumable_upload_names_the_total() {
    let emu = DriveEmulator::start().await;
    let remote = backend(&emu, 256 * 1024);
    let content = data(256 * 1024 + 1000, 3);
    let total = content.len();
    // The second PUT is the last chunk: it is half committed, then the connection drops.
    emu.inject_after("PUT", "upload_id=", 1, Fault::Drop, 1);
    remote
        .write(
            &p("t.bin"),
            chunked(content.clone(), 50_000),
            WriteMeta::default(),
        )
        .await
        .unwrap();
    let got = collect_bytes(remote.read(&p("t.bin"), None).await.unwrap())
        .await
        .unwrap();
    assert_eq!(got.len(), total);
    assert!(got[..] == content[..]);
    let query = format!("[bytes */{total}]");
    assert!(
        emu.requests().iter().any(|r| r.ends_with(&query)),
        "no status query with {query}: {:#?}",
        emu.requests()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_resumable_session_ends_in_an_error() {
    let emu = DriveEmulator::start().await;
    let remote = backend(&emu, 256 * 1024);
    emu.set_stall_uploads(true);
    let e = remote
        .write(
            &p("stall.bin"),
            bytes_stream(vec![1u8; 700 * 1024]),
            WriteMeta::default(),
        )
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e}");
    let puts = emu
        .requests()
        .iter()
        .filter(|r| r.starts_with("PUT "))
        .count();
    assert!(puts <= 10, "{puts} PUTs");
    assert_eq!(emu.open_sessions(), 0, "the session is cancelled");
    assert_eq!(emu.file_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_below_the_drive_root_needs_cleanup_whole_trash() {
    let emu = DriveEmulator::start().await;
    let outside = emu.add_file("root", "elsewhere.txt", "text/plain", b"keep me");
    let folder = emu.add_folder("root", "mine");
    let remote = DriveRemote::new(emu.config().with_root_folder_id(&folder)).unwrap();
    remote
        .write(&p("x.txt"), bytes_stream("x"), WriteMeta::default())
        .await
        .unwrap();
    remote.remove_file(&p("x.txt")).await.unwrap();
    // Something trashed outside the remote's folder.
    let top = backend(&emu, 256 * 1024);
    top.remove_file(&p("elsewhere.txt")).await.unwrap();
    assert_eq!(emu.trashed(), vec!["elsewhere.txt", "x.txt"]);
    let e = remote.cleanup().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConfigInvalid, "{e}");
    assert!(e.to_string().contains("cleanup_whole_trash"), "{e}");
    assert_eq!(
        emu.trashed(),
        vec!["elsewhere.txt", "x.txt"],
        "nothing deleted"
    );
    let _ = outside;
    // Allowed explicitly, it empties the whole trash; at the drive root it needs nothing.
    let remote = DriveRemote::new(
        emu.config()
            .with_root_folder_id(&folder)
            .with_cleanup_whole_trash(true),
    )
    .unwrap();
    remote.cleanup().await.unwrap();
    assert!(emu.trashed().is_empty());
    top.cleanup().await.unwrap();
}

/// Through the layers the registry puts around every remote it opens, errors name the
/// operation, the remote (as described) and the path, though the backend itself names at most
/// the path: a missing file's `stat` and `read`, a missing folder's listing. A step inside a
/// call keeps its own name: the parent folder a write could not create is `mkdir`, a token
/// that could not be refreshed is `token`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_layers_name_operation_remote_and_path() {
    use cloudsync_core::Registry;
    use cloudsync_core::testkit::{assert_error_names, assert_missing_paths_named};
    let emu = DriveEmulator::start().await;
    let remote = Registry::new().layered(backend(&emu, 256 * 1024));
    let described = assert_missing_paths_named(&remote).await;
    // The parent folder of a write cannot be created (the first POST of the write).
    emu.inject(
        "POST",
        "files",
        Fault::Status {
            status: 403,
            reason: "insufficientPermissions".into(),
            retry_after: None,
        },
        1,
    );
    let e = remote
        .write(&p("newdir/f.txt"), bytes_stream("x"), WriteMeta::default())
        .await
        .unwrap_err();
    assert_error_names(
        &e,
        ErrorKind::PermissionDenied,
        "mkdir",
        &described,
        "newdir/f.txt",
    );
    assert!(remote.stat(&p("newdir")).await.is_err(), "nothing was made");
    // The token cannot be refreshed.
    remote
        .write(&p("there.txt"), bytes_stream("x"), WriteMeta::default())
        .await
        .unwrap();
    emu.inject(
        "POST",
        "token",
        Fault::Status {
            status: 400,
            reason: "invalid_grant".into(),
            retry_after: None,
        },
        1,
    );
    emu.expire_tokens();
    let e = remote.stat(&p("there.txt")).await.unwrap_err();
    assert_error_names(&e, ErrorKind::Auth, "token", &described, "there.txt");
}

/// The session checks of the testkit on the emulator (256 KiB chunks): an upload cut part-way
/// continues from its session in a retry and in a later run with the same record file, a
/// changed source is uploaded whole, a cancelled session is replaced; no session stays open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_resume_through_sessions() {
    let emu = DriveEmulator::start().await;
    let remote = backend(&emu, 256 * 1024);
    let sub = |d: &str| cloudsync_core::Prefix::wrap(remote.clone(), p(d));
    cloudsync_core::testkit::check_session_resume(&sub("resume"))
        .await
        .unwrap();
    cloudsync_core::testkit::check_session_stale(&sub("stale"))
        .await
        .unwrap();
    assert_eq!(emu.open_sessions(), 0, "sessions left open");
    // The resumed uploads asked their sessions where they stood.
    assert!(
        emu.requests()
            .iter()
            .any(|r| r.starts_with("PUT") && r.contains("upload_id=")),
        "no session request seen"
    );
}

/// A session that expired between two runs (the emulator ends it; the status query is then
/// answered 404) is replaced by a new one: the second run uploads the file whole, exactly,
/// and leaves no record and no open session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_is_replaced_by_a_new_one() {
    use cloudsync_core::ops::{self, SyncOptions};
    use cloudsync_core::testkit::{Chaos, Fault as CFault, FaultPlan, MemFs, Op, Rule};
    let emu = DriveEmulator::start().await;
    let remote = backend(&emu, 256 * 1024);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("uploads.json");
    let content = bytes::Bytes::from(data(2 * 1024 * 1024 + 11, 9));
    let mem = Arc::new(MemFs::new("memfs://expired-src"));
    let t = time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
    mem.put_file(&p("big.bin"), content.clone(), t).unwrap();
    let src: Arc<dyn Remote> = mem.clone();
    let opts = |store: cloudsync_core::SessionStore| SyncOptions {
        resume_above: Some(1024 * 1024),
        retries: 1,
        low_level_retries: 0,
        sessions: store,
        ..Default::default()
    };
    let cut: Arc<dyn Remote> = Arc::new(Chaos::new(
        src.clone(),
        FaultPlan {
            rules: vec![Rule {
                op: Op::Read,
                path: Some(p("big.bin")),
                skip: 0,
                times: 1,
                fault: CFault::ReadCut {
                    after: 1_200_000,
                    kind: ErrorKind::Transient,
                },
            }],
        },
    ));
    let first = ops::copy(
        &cut,
        &remote,
        &opts(cloudsync_core::SessionStore::open(&file)),
    )
    .await
    .unwrap();
    assert_eq!(first.errors.len(), 1, "{:?}", first.errors);
    assert_eq!(emu.open_sessions(), 1);
    let store = cloudsync_core::SessionStore::open(&file);
    let rec = store.get(&remote.describe(), &p("big.bin")).unwrap();
    assert_eq!(
        remote.session_offset(&rec.token).await.unwrap(),
        1024 * 1024
    );
    emu.expire_sessions();
    let e = remote.session_offset(&rec.token).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let second = ops::copy(&src, &remote, &opts(store.clone()))
        .await
        .unwrap();
    assert!(second.is_ok(), "{:?}", second.errors);
    assert_eq!(second.bytes_resumed, 0);
    let got = collect_bytes(remote.read(&p("big.bin"), None).await.unwrap())
        .await
        .unwrap();
    assert!(
        got == content,
        "the upload after an expired session is not the source"
    );
    assert!(cloudsync_core::SessionStore::open(&file).is_empty());
    assert_eq!(emu.open_sessions(), 0);
}

/// A token from a record file is only used against the upload endpoint's own host (requests
/// to a session carry the access token): one naming another host is refused before anything
/// is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_token_for_another_host_is_refused() {
    let emu = DriveEmulator::start().await;
    let remote = backend(&emu, 256 * 1024);
    let before = emu.requests().len();
    let t = cloudsync_core::SessionToken::new(
        "drive1 10 http://198.51.100.7:9/upload/drive/v3/files?upload_id=x",
    );
    let e = remote.session_offset(&t).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    let e = remote
        .session_write(
            &t,
            &p("a.bin"),
            0,
            bytes_stream("0123456789"),
            WriteMeta::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(!e.to_string().contains("198.51.100.7"), "{e}");
    assert_eq!(emu.requests().len(), before, "a request was sent");
}

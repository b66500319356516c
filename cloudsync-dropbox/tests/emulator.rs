//! Behaviour against the emulator beyond the conformance suite: token refresh, rate limits,
//! upload-session failures, content hashes, case-insensitive names, strict request checks and
//! the PKCE code exchange.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cloudsync_core::testkit::{MemFs, random_bytes};
use cloudsync_core::{
    DROPBOX_BLOCK, ErrorKind, HashKind, MultiHasher, Remote, RemotePath, WriteMeta, bytes_stream,
    collect_bytes, ops,
};
use cloudsync_dropbox::emulator::{Emulator, EmulatorOptions, Fault};
use cloudsync_dropbox::{DropboxConfig, DropboxRemote, TokenInfo};
use futures::{StreamExt, TryStreamExt};
use serde_json::{Value, json};
use sha2::Digest;

fn p(s: &str) -> RemotePath {
    RemotePath::new(s).unwrap()
}

fn remote(cfg: DropboxConfig) -> Arc<dyn Remote> {
    Arc::new(DropboxRemote::new(cfg).unwrap())
}

/// Sync options with short backoffs, so retried failures take little time.
fn fast() -> ops::SyncOptions {
    ops::SyncOptions {
        retry_backoff: Duration::from_millis(20),
        ..Default::default()
    }
}

async fn put(r: &Arc<dyn Remote>, path: &str, data: impl Into<Bytes>) {
    r.write(&p(path), bytes_stream(data), WriteMeta::default())
        .await
        .unwrap();
}

/// A body of `data` handed over in 64 KiB pieces.
fn chunked(data: &Bytes) -> cloudsync_core::ByteStream {
    let pieces: Vec<Result<Bytes, cloudsync_core::Error>> = data
        .chunks(64 * 1024)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures::stream::iter(pieces).boxed()
}

#[tokio::test]
async fn expired_token_mid_run_is_refreshed_and_reported() {
    let emu = Emulator::start().unwrap();
    let seen: Arc<Mutex<Vec<TokenInfo>>> = Arc::default();
    let cb_seen = seen.clone();
    let r = remote(
        emu.config()
            .with_chunk_size(4 * 1024 * 1024)
            .with_token_callback(Arc::new(move |t: &TokenInfo| {
                cb_seen.lock().unwrap().push(t.clone())
            })),
    );
    put(&r, "a.txt", "one").await;
    assert_eq!(emu.requests("oauth2/token"), 1);
    assert_eq!(seen.lock().unwrap().len(), 1);

    // The service expires the token while the client still believes in it.
    emu.expire_tokens();
    assert_eq!(r.stat(&p("a.txt")).await.unwrap().size, 3);
    assert_eq!(emu.requests("oauth2/token"), 2);
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert_ne!(seen[0].access_token, seen[1].access_token);
        assert_eq!(
            seen[1].refresh_token.as_ref().map(|t| t.expose()),
            Some(emu.refresh_token())
        );
        assert!(seen[1].expires_at.is_some());
    }

    // And in the middle of an upload session: the append is repeated with the new token.
    emu.inject("files/upload_session/append_v2", Fault::ExpireToken, 1);
    let data = Bytes::from(random_bytes(9 * 1024 * 1024 + 5, 7));
    let e = r
        .write(&p("big.bin"), chunked(&data), WriteMeta::default())
        .await
        .unwrap();
    assert_eq!(e.size, data.len() as u64);
    assert_eq!(emu.requests("oauth2/token"), 3);
    assert_eq!(emu.file("/big.bin").unwrap(), data);
}

#[tokio::test]
async fn short_lived_tokens_are_refreshed_before_they_expire() {
    let emu = Emulator::start_with(
        EmulatorOptions::default().with_token_lifetime(Duration::from_secs(2)),
    )
    .unwrap();
    let r = remote(emu.config());
    put(&r, "x", "1").await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    // The token is refreshed ahead of its expiry, so no request gets a 401.
    r.stat(&p("x")).await.unwrap();
    assert_eq!(emu.requests("oauth2/token"), 2);
    assert_eq!(emu.requests("files/get_metadata"), 1);
}

#[tokio::test]
async fn access_token_without_refresh_token_fails_with_auth_when_expired() {
    let emu = Emulator::start().unwrap();
    // Get a real access token through the refresh flow, then use it alone.
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", emu.refresh_token()),
        ("client_id", emu.app_key()),
    ];
    let v: Value = reqwest::Client::new()
        .post(emu.token_url())
        .form(&form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = v["access_token"].as_str().unwrap().to_owned();
    assert_eq!(v["token_type"], "bearer");
    let cfg = DropboxConfig::default().with_access_token(token).with_urls(
        emu.api_url(),
        emu.content_url(),
        emu.token_url(),
    );
    let r = remote(cfg);
    put(&r, "f", "x").await;
    emu.expire_tokens();
    let e = r.stat(&p("f")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth, "{e:?}");
    assert!(!e.is_retryable());
    // A wrong refresh token is an authentication error too.
    let bad = remote(
        DropboxConfig::new(emu.app_key())
            .with_refresh_token("not-the-token")
            .with_urls(emu.api_url(), emu.content_url(), emu.token_url()),
    );
    let e = bad.stat(&p("f")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth, "{e:?}");
    assert!(e.to_string().contains("invalid_grant"), "{e}");
}

#[tokio::test]
async fn token_file_gets_the_refreshed_token() {
    let emu = Emulator::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dropbox-token.json");
    std::fs::write(
        &file,
        json!({ "refresh_token": emu.refresh_token() }).to_string(),
    )
    .unwrap();
    let mut cfg = emu.config();
    cfg.refresh_token = None;
    cfg.token_file = Some(file.clone());
    let r = remote(cfg.clone());
    put(&r, "t", "1").await;
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(saved["refresh_token"], emu.refresh_token());
    assert!(
        saved["access_token"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
    assert!(saved["expires_at"].as_i64().is_some());
    // A second remote from the same file uses the saved access token: no new refresh.
    let r2 = remote(cfg);
    r2.stat(&p("t")).await.unwrap();
    assert_eq!(emu.requests("oauth2/token"), 1);
}

#[tokio::test]
async fn rate_limits_surface_with_retry_after_and_the_sync_completes() {
    let emu = Emulator::start().unwrap();
    let r = remote(emu.config());

    emu.inject("files/upload", Fault::TooManyRequests { retry_after: 1 }, 1);
    let e = r
        .write(&p("one"), bytes_stream("1"), WriteMeta::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited, "{e:?}");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(1)));
    assert!(e.is_retryable());

    emu.inject(
        "files/create_folder_v2",
        Fault::TooManyWriteOperations { retry_after: 2 },
        1,
    );
    let e = r.mkdir(&p("d")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited, "{e:?}");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));

    // A sync through three 429s completes, having waited as told.
    let src: Arc<dyn Remote> = Arc::new(MemFs::new("memfs://rate-src"));
    for i in 0..5 {
        put(&src, &format!("dir/f{i}.txt"), format!("content {i}")).await;
    }
    emu.inject("files/upload", Fault::TooManyRequests { retry_after: 1 }, 3);
    let started = Instant::now();
    let s = ops::sync(&src, &r, &fast()).await.unwrap();
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert_eq!(s.transferred, 5);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(emu.requests("files/upload"), 1 + 5 + 3);
    let check = ops::check(&src, &r, &Default::default()).await.unwrap();
    assert!(check.is_identical(), "{check:?}");
}

#[tokio::test]
async fn server_errors_and_dropped_connections_are_transient() {
    let emu = Emulator::start().unwrap();
    let r = remote(emu.config());
    put(&r, "f", "x").await;
    emu.inject("files/get_metadata", Fault::Status(503), 1);
    let e = r.stat(&p("f")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient, "{e:?}");
    assert!(e.is_retryable());
    emu.inject("files/list_folder", Fault::Drop, 1);
    let e = r.list(&RemotePath::root()).await.err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Transient, "{e:?}");
    // The next request works on a new connection.
    assert_eq!(r.stat(&p("f")).await.unwrap().size, 1);
    emu.inject("files/download", Fault::Status(500), 1);
    let e = r.read(&p("f"), None).await.err().unwrap();
    assert!(e.is_retryable(), "{e:?}");
    assert_eq!(
        collect_bytes(r.read(&p("f"), None).await.unwrap())
            .await
            .unwrap(),
        "x"
    );
}

#[tokio::test]
async fn upload_session_failure_leaves_nothing_and_a_retried_sync_completes() {
    let emu = Emulator::start().unwrap();
    let r = remote(emu.config().with_chunk_size(4 * 1024 * 1024));
    let data = Bytes::from(random_bytes(3 * DROPBOX_BLOCK + 1234, 3));
    let src: Arc<dyn Remote> = Arc::new(MemFs::new("memfs://session-src"));
    src.write(
        &p("video/clip.bin"),
        bytes_stream(data.clone()),
        WriteMeta::default(),
    )
    .await
    .unwrap();

    // One write: the second chunk's append is lost with its connection, and so is every
    // retry of it (an append survives a few lost connections, not a dead network).
    emu.inject("files/upload_session/append_v2", Fault::Drop, 20);
    let e = r
        .write(&p("video/clip.bin"), chunked(&data), WriteMeta::default())
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e:?}");
    assert_eq!(e.kind(), ErrorKind::Transient, "{e:?}");
    assert!(
        emu.file("/video/clip.bin").is_none(),
        "a partial file is visible"
    );
    emu.clear_faults();

    // A sync where the writes fail on their first attempts (the first commit is lost too):
    // the engine retries the write, which completes with the right content hash.
    emu.inject("files/upload_session/append_v2", Fault::Drop, 1);
    emu.inject("files/upload_session/finish", Fault::Drop, 1);
    let s = ops::sync(&src, &r, &fast()).await.unwrap();
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert_eq!(s.transferred, 1);
    let mut h = MultiHasher::new(&[HashKind::Dropbox]);
    h.update(&data);
    let want = h.finish();
    let entry = r.stat(&p("video/clip.bin")).await.unwrap();
    assert_eq!(
        entry.hashes.get(HashKind::Dropbox),
        want.get(HashKind::Dropbox)
    );
    assert_eq!(emu.file("/video/clip.bin").unwrap(), data);
    // With checksums, the next sync finds nothing to do (and downloads nothing).
    let downloads = emu.requests("files/download");
    let opts = ops::SyncOptions {
        compare: ops::CompareOptions {
            checksum: true,
            ..Default::default()
        },
        ..fast()
    };
    let s = ops::sync(&src, &r, &opts).await.unwrap();
    assert_eq!((s.transferred, s.errors.len()), (0, 0), "{s:?}");
    assert_eq!(emu.requests("files/download"), downloads);
}

#[tokio::test]
async fn upload_session_offsets_are_checked() {
    let emu = Emulator::start().unwrap();
    let token = access_token(&emu).await;
    let c = reqwest::Client::new();
    let content = |endpoint: &str, arg: Value, body: &'static [u8]| {
        c.post(format!("{}/2/{endpoint}", emu.content_url()))
            .bearer_auth(&token)
            .header("Dropbox-API-Arg", arg.to_string())
            .header("Content-Type", "application/octet-stream")
            .body(body)
            .send()
    };
    let v: Value = content("files/upload_session/start", json!({}), b"0123456789")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = v["session_id"].as_str().unwrap().to_owned();
    let resp = content(
        "files/upload_session/append_v2",
        json!({ "cursor": { "session_id": id, "offset": 4 } }),
        b"abc",
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 409);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"][".tag"], "incorrect_offset");
    assert_eq!(v["error"]["correct_offset"], 10);
    assert!(
        v["error_summary"]
            .as_str()
            .unwrap()
            .starts_with("incorrect_offset/")
    );
    let resp = content(
        "files/upload_session/finish",
        json!({ "cursor": { "session_id": id, "offset": 10 },
                "commit": { "path": "/s.txt", "mode": "overwrite" } }),
        b"!",
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["size"], 11);
    assert_eq!(v["name"], "s.txt");
    assert_eq!(emu.file("/s.txt").unwrap(), "0123456789!");
    // The session is gone once finished.
    let resp = content(
        "files/upload_session/append_v2",
        json!({ "cursor": { "session_id": id, "offset": 11 } }),
        b"x",
    )
    .await
    .unwrap();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"][".tag"], "not_found");
}

/// The content hash is documented as: split the file into 4 MiB blocks, SHA-256 each block,
/// concatenate the binary digests, SHA-256 that (the docs' example file "milky-way-nasa.jpg"
/// hashes to 485291fa…35e0; it cannot be downloaded here). Check the algorithm on data that
/// crosses the block boundary, locally and as the uploaded file's `content_hash`.
#[tokio::test]
async fn content_hash_follows_the_documented_algorithm() {
    let emu = Emulator::start().unwrap();
    let r = remote(emu.config().with_chunk_size(4 * 1024 * 1024));
    for len in [
        0,
        1,
        DROPBOX_BLOCK - 1,
        DROPBOX_BLOCK,
        DROPBOX_BLOCK + 1,
        2 * DROPBOX_BLOCK + 7,
    ] {
        let data = Bytes::from(random_bytes(len, len as u64));
        let mut concat = Vec::new();
        for block in data.chunks(DROPBOX_BLOCK) {
            concat.extend_from_slice(&sha2::Sha256::digest(block));
        }
        let want = hex::encode(sha2::Sha256::digest(&concat));
        let mut h = MultiHasher::new(&[HashKind::Dropbox]);
        h.update(&data);
        assert_eq!(
            h.finish().get(HashKind::Dropbox),
            Some(want.as_str()),
            "len {len}"
        );
        let path = p(&format!("h/{len}.bin"));
        let e = r
            .write(&path, chunked(&data), WriteMeta::default())
            .await
            .unwrap();
        assert_eq!(
            e.hashes.get(HashKind::Dropbox),
            Some(want.as_str()),
            "len {len}"
        );
        assert_eq!(r.hash(&path, HashKind::Dropbox).await.unwrap(), want);
    }
    // The empty file's hash is the SHA-256 of nothing.
    assert_eq!(
        r.hash(&p("h/0.bin"), HashKind::Dropbox).await.unwrap(),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

#[tokio::test]
async fn names_differing_by_case_are_one_file() {
    let emu = Emulator::start().unwrap();
    let r = remote(emu.config());
    put(&r, "Dir/File.TXT", "v1").await;
    // Any case finds it; the stored case is what listings show.
    assert_eq!(r.stat(&p("dir/file.txt")).await.unwrap().size, 2);
    put(&r, "DIR/file.txt", "v2!").await;
    let names: Vec<String> = r
        .list(&p("dir"))
        .await
        .unwrap()
        .map_ok(|e| e.path.to_string())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(names, ["dir/File.TXT"]);
    assert_eq!(emu.paths(), ["/Dir", "/Dir/File.TXT"]);
    assert_eq!(emu.file("/dir/file.txt").unwrap(), "v2!");
    // A rename that only changes the case works.
    r.rename(&p("Dir/File.TXT"), &p("Dir/file.txt"))
        .await
        .unwrap();
    assert_eq!(emu.paths(), ["/Dir", "/Dir/file.txt"]);
    // A copy onto itself in another case is refused, not a deletion.
    let e = r
        .copy(&p("Dir/file.txt"), &p("dir/FILE.txt"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert_eq!(emu.file("/dir/file.txt").unwrap(), "v2!");
}

#[tokio::test]
async fn case_collisions_in_the_source_are_errors_and_nothing_is_deleted() {
    let emu = Emulator::start().unwrap();
    let r = remote(emu.config());
    put(&r, "stale.txt", "old").await;
    put(&r, "keep/x.txt", "x").await;
    let src: Arc<dyn Remote> = Arc::new(MemFs::new("memfs://case-src"));
    put(&src, "A.txt", "upper").await;
    put(&src, "a.txt", "lower").await;
    put(&src, "keep/x.txt", "x2").await;
    let s = ops::sync(&src, &r, &fast()).await.unwrap();
    assert!(
        s.errors
            .iter()
            .any(|e| e.path.as_str().eq_ignore_ascii_case("a.txt")),
        "{:?}",
        s.errors
    );
    assert_eq!(s.deleted, 0);
    assert_eq!(
        emu.file("/stale.txt").unwrap(),
        "old",
        "deleted despite errors"
    );
    assert!(
        emu.file("/a.txt").is_none(),
        "one of the colliding files was copied"
    );
}

async fn access_token(emu: &Emulator) -> String {
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", emu.refresh_token()),
        ("client_id", emu.app_key()),
    ];
    let v: Value = reqwest::Client::new()
        .post(emu.token_url())
        .form(&form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn requests_are_validated_like_the_service_does() {
    let emu = Emulator::start().unwrap();
    let token = access_token(&emu).await;
    let c = reqwest::Client::new();
    let rpc = |endpoint: &str, body: String, ct: &str| {
        c.post(format!("{}/2/{endpoint}", emu.api_url()))
            .bearer_auth(&token)
            .header("Content-Type", ct)
            .body(body)
            .send()
    };
    let status = |r: reqwest::Response| r.status().as_u16();
    let json_ct = "application/json";
    // The root is "" not "/".
    let r = rpc(
        "files/list_folder",
        json!({"path": "/"}).to_string(),
        json_ct,
    )
    .await
    .unwrap();
    assert_eq!(status(r), 400);
    let r = rpc(
        "files/list_folder",
        json!({"path": ""}).to_string(),
        json_ct,
    )
    .await
    .unwrap();
    assert_eq!(status(r), 200);
    // Unknown fields, bad JSON, wrong content type, bad limits.
    for (body, ct) in [
        (json!({"path": "", "colour": 1}).to_string(), json_ct),
        ("{not json".to_owned(), json_ct),
        (json!({"path": ""}).to_string(), "text/plain"),
        (json!({"path": "", "limit": 0}).to_string(), json_ct),
        (json!({"path": "", "limit": 2001}).to_string(), json_ct),
    ] {
        let r = rpc("files/list_folder", body.clone(), ct).await.unwrap();
        assert_eq!(status(r), 400, "{body} {ct}");
    }
    // A malformed path is a 409 with the documented error union.
    let r = rpc(
        "files/get_metadata",
        json!({"path": "/a//b"}).to_string(),
        json_ct,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 409);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v["error"],
        json!({".tag": "path", "path": {".tag": "malformed_path"}})
    );
    assert_eq!(v["error_summary"], "path/malformed_path/..");
    let r = rpc(
        "files/get_metadata",
        json!({"path": "/nope"}).to_string(),
        json_ct,
    )
    .await
    .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v["error"],
        json!({".tag": "path", "path": {".tag": "not_found"}})
    );

    // Content endpoints: the argument header is required, JSON, and header-safe.
    let upload = |arg: Option<&[u8]>, ct: &str| {
        let mut b = c
            .post(format!("{}/2/files/upload", emu.content_url()))
            .bearer_auth(&token)
            .header("Content-Type", ct)
            .body("data");
        if let Some(arg) = arg {
            b = b.header(
                "Dropbox-API-Arg",
                reqwest::header::HeaderValue::from_bytes(arg).unwrap(),
            );
        }
        b.send()
    };
    let octets = "application/octet-stream";
    assert_eq!(status(upload(None, octets).await.unwrap()), 400);
    assert_eq!(status(upload(Some(b"{bad"), octets).await.unwrap()), 400);
    let raw_utf8 = r#"{"path": "/ü.txt"}"#.as_bytes();
    assert_eq!(status(upload(Some(raw_utf8), octets).await.unwrap()), 400);
    let escaped = br#"{"path": "/\u00fc.txt", "client_modified": "2024-01-02 03:04:05"}"#;
    assert_eq!(status(upload(Some(escaped), octets).await.unwrap()), 400);
    let escaped = br#"{"path": "/\u00fc.txt"}"#;
    assert_eq!(
        status(upload(Some(escaped), "application/json").await.unwrap()),
        400
    );
    let r = upload(Some(escaped), octets).await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["name"], "ü.txt");
    let rev = v["rev"].clone();
    // The default mode is "add", but the same content again is no conflict: files.stone,
    // WriteMode: "If the target path refers to a file with identical contents, nothing gets
    // written; no conflict."
    let r = upload(Some(escaped), octets).await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["rev"], rev, "identical content was written again");
    // Other content conflicts.
    let r = c
        .post(format!("{}/2/files/upload", emu.content_url()))
        .bearer_auth(&token)
        .header("Content-Type", octets)
        .header("Dropbox-API-Arg", r#"{"path": "/\u00fc.txt"}"#)
        .body("other data")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error_summary"], "path/conflict/file/..");
    // The download's metadata comes back header-safe in Dropbox-API-Result.
    let r = c
        .post(format!("{}/2/files/download", emu.content_url()))
        .bearer_auth(&token)
        .header("Dropbox-API-Arg", r#"{"path": "/\u00fc.txt"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let meta = r.headers()["Dropbox-API-Result"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(meta.contains(r"\u00fc"), "{meta}");
    let meta: Value = serde_json::from_str(&meta).unwrap();
    assert_eq!(meta["size"], 4);

    // Authentication.
    let r = c
        .post(format!("{}/2/files/get_metadata", emu.api_url()))
        .header("Content-Type", json_ct)
        .body(json!({"path": "/x"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = c
        .post(format!("{}/2/files/get_metadata", emu.api_url()))
        .bearer_auth("made-up")
        .header("Content-Type", json_ct)
        .body(json!({"path": "/x"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"][".tag"], "invalid_access_token");
}

#[tokio::test]
async fn pkce_code_exchange() {
    let emu = Emulator::start().unwrap();
    let (verifier, challenge) = cloudsync_dropbox::pkce_pair().unwrap();
    let code = emu.authorize(&challenge);
    let redirect = "http://127.0.0.1:53682/";
    let t = cloudsync_dropbox::exchange_code(
        &emu.token_url(),
        emu.app_key(),
        &code,
        &verifier,
        redirect,
    )
    .await
    .unwrap();
    assert_eq!(
        t.refresh_token.as_ref().map(|t| t.expose()),
        Some(emu.refresh_token())
    );
    assert!(!t.access_token.is_empty());
    assert!(t.expires_at.is_some());
    // A code works once, and only with its verifier.
    let again = cloudsync_dropbox::exchange_code(
        &emu.token_url(),
        emu.app_key(),
        &code,
        &verifier,
        redirect,
    )
    .await;
    assert_eq!(again.unwrap_err().kind(), ErrorKind::Auth);
    let code = emu.authorize(&challenge);
    let wrong = cloudsync_dropbox::exchange_code(
        &emu.token_url(),
        emu.app_key(),
        &code,
        "x".repeat(43).as_str(),
        redirect,
    )
    .await;
    assert_eq!(wrong.unwrap_err().kind(), ErrorKind::Auth);
    // The access token works against the API.
    let cfg = DropboxConfig::default()
        .with_access_token(t.access_token)
        .with_urls(emu.api_url(), emu.content_url(), emu.token_url());
    let r = remote(cfg);
    put(&r, "authorized.txt", "yes").await;
}

#[tokio::test]
async fn recursive_listing_pages_and_names() {
    let emu = Emulator::start().unwrap();
    let r = remote(emu.config().with_list_limit(3));
    let counter = AtomicUsize::new(0);
    for d in ["A", "A/b", "A/b/C d", "e"] {
        for i in 0..3 {
            put(
                &r,
                &format!("{d}/f{i}"),
                format!("{}", counter.fetch_add(1, Ordering::SeqCst)),
            )
            .await;
        }
    }
    let mut all: Vec<(String, bool)> = r
        .list_recursive(&RemotePath::root())
        .await
        .unwrap()
        .map_ok(|e| (e.path.to_string(), e.is_dir()))
        .try_collect()
        .await
        .unwrap();
    all.sort();
    let dirs: Vec<&str> = all.iter().filter(|x| x.1).map(|x| x.0.as_str()).collect();
    assert_eq!(dirs, ["A", "A/b", "A/b/C d", "e"]);
    assert_eq!(all.len(), 4 + 12);
    let below: Vec<String> = r
        .list_recursive(&p("a/B"))
        .await
        .unwrap()
        .map_ok(|e| e.path.to_string())
        .try_collect()
        .await
        .unwrap();
    // Paths are built from the names the server sends below the path asked for.
    assert_eq!(below.len(), 3 + 1 + 3);
    assert!(below.iter().all(|x| x.starts_with("a/B/")), "{below:?}");
    assert!(emu.requests("files/list_folder/continue") >= 5);
    let e = r.list_recursive(&p("missing")).await.err().unwrap();
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_files_are_committed_in_batches() {
    let emu = Emulator::start().unwrap();
    let r = remote(emu.config().with_batching(4, 200));
    // A folder where one of the files wants to go: that file fails alone.
    r.mkdir(&p("in/taken")).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..9 {
        let r = r.clone();
        tasks.push(tokio::spawn(async move {
            r.write(
                &p(&format!("in/f{i}")),
                bytes_stream(format!("n{i}")),
                WriteMeta::default(),
            )
            .await
        }));
    }
    let bad = {
        let r = r.clone();
        tokio::spawn(async move {
            r.write(&p("in/taken"), bytes_stream("x"), WriteMeta::default())
                .await
        })
    };
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().size, 2);
    }
    let e = bad.await.unwrap().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e:?}");
    assert_eq!(emu.requests("files/upload"), 0);
    let batches = emu.requests("files/upload_session/finish_batch_v2");
    assert!(
        (3..=10).contains(&batches),
        "{batches} batches for 10 files"
    );
    for i in 0..9 {
        assert_eq!(emu.file(&format!("/in/f{i}")).unwrap(), format!("n{i}"));
    }
    assert_eq!(emu.open_sessions(), 0);

    // A whole sync through batches.
    let src: Arc<dyn Remote> = Arc::new(MemFs::new("memfs://batch-src"));
    for i in 0..20 {
        put(&src, &format!("many/{i:02}.txt"), format!("file {i}")).await;
    }
    let dst = remote(emu.config().with_root("many-dst").with_batching(8, 100));
    let opts = ops::SyncOptions {
        transfers: 8,
        ..fast()
    };
    let s = ops::sync(&src, &dst, &opts).await.unwrap();
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert_eq!(s.transferred, 20);
    assert!(
        ops::check(&src, &dst, &Default::default())
            .await
            .unwrap()
            .is_identical()
    );

    // A failed batch call fails the writes in it, retryably.
    emu.inject(
        "files/upload_session/finish_batch_v2",
        Fault::Status(503),
        1,
    );
    let e = r
        .write(&p("in/late"), bytes_stream("z"), WriteMeta::default())
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e:?}");
    assert!(emu.file("/in/late").is_none());
}

#[tokio::test]
async fn usage_and_quota() {
    let emu = Emulator::start_with(EmulatorOptions::default().with_quota(1000)).unwrap();
    let r = remote(emu.config());
    put(&r, "a", vec![1u8; 600]).await;
    let u = r.usage().await.unwrap();
    assert_eq!(
        (u.total, u.used, u.free),
        (Some(1000), Some(600), Some(400))
    );
    let e = r
        .write(&p("b"), bytes_stream(vec![2u8; 500]), WriteMeta::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::QuotaExceeded, "{e:?}");
    assert!(emu.file("/b").is_none());
    // Replacing a file counts only the difference.
    put(&r, "a", vec![3u8; 900]).await;
    assert_eq!(r.usage().await.unwrap().used, Some(900));
}

/// Through the layers the registry puts around every remote it opens, errors name the
/// operation, the remote (as described) and the path, though the backend itself names at most
/// the path and the API endpoint of the step that failed: an endpoint says more than the
/// remote's operation and is kept (a missing file's `stat` is `files/get_metadata`), the
/// operation is the remote's where no endpoint failed (a refused name, a folder's removal
/// that finds a file); a token that cannot be refreshed is `oauth2/token`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_layers_name_operation_remote_and_path() {
    use cloudsync_core::{Registry, redact_location};
    let emu = Emulator::start().unwrap();
    let r = Registry::new().layered(remote(emu.config()));
    let described = redact_location(&r.describe());
    let named = |e: cloudsync_core::Error, kind: ErrorKind, op: &str, path: &str| {
        cloudsync_core::testkit::assert_error_names(&e, kind, op, &described, path)
    };
    named(
        r.stat(&p("missing.txt")).await.unwrap_err(),
        ErrorKind::NotFound,
        "files/get_metadata",
        "missing.txt",
    );
    named(
        r.write(&p("d/desktop.ini"), bytes_stream("x"), WriteMeta::default())
            .await
            .unwrap_err(),
        ErrorKind::InvalidInput,
        "write",
        "d/desktop.ini",
    );
    put(&r, "file.txt", "x").await;
    named(
        r.remove_dir(&p("file.txt")).await.unwrap_err(),
        ErrorKind::Conflict,
        "remove_dir",
        "file.txt",
    );
    // A token that cannot be refreshed names the token step.
    let wrong = emu
        .config()
        .with_refresh_token(format!("{}-wrong", emu.refresh_token()));
    let bad = Registry::new().layered(remote(wrong));
    assert_eq!(bad.describe(), r.describe());
    named(
        bad.stat(&p("file.txt")).await.unwrap_err(),
        ErrorKind::Auth,
        "oauth2/token",
        "file.txt",
    );
}

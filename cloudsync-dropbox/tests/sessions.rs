//! Resumable uploads through Dropbox upload sessions, against the emulator: the core's session
//! checks; the documented session behaviours the backend relies on (`incorrect_offset` with
//! `correct_offset` as the only way to learn a session's offset, `not_found` for an unknown or
//! expired session, `closed`, the 150 MB request limit); a connection cut in the middle of an
//! append (the service keeps the appends before it, not the one cut); and an expired session,
//! which starts again cleanly.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cloudsync_core::testkit::{ConformanceOptions, CuttingProxy, SESSION_CHUNK_SLACK, run_check};
use cloudsync_core::{
    ByteStream, ErrorKind, Remote, RemotePath, SessionStore, SessionToken, WriteMeta,
    collect_bytes, memory, ops,
};
use cloudsync_dropbox::DropboxRemote;
use cloudsync_dropbox::emulator::{Emulator, EmulatorOptions};
use futures::StreamExt;

const MIB: usize = 1024 * 1024;

fn p(s: &str) -> RemotePath {
    RemotePath::new(s).unwrap()
}

/// A remote on `emu` appending 1 MiB at a time, its content endpoint at `content_url` when
/// given (a proxy).
fn remote(emu: &Emulator, content_url: Option<String>) -> Arc<dyn Remote> {
    let mut cfg = emu
        .config()
        .with_root("sessions")
        .with_session_chunk_size(SESSION_CHUNK_SLACK);
    if let Some(u) = content_url {
        cfg.content_url = u;
    }
    Arc::new(DropboxRemote::new(cfg).unwrap())
}

fn data(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| {
            (i as u64)
                .wrapping_mul(2654435761)
                .rotate_left(u32::from(seed)) as u8
                ^ seed
        })
        .collect::<Vec<u8>>()
        .into()
}

fn pieces(data: Bytes) -> ByteStream {
    let n = data.len().div_ceil(64 * 1024);
    futures::stream::iter(
        (0..n).map(move |i| Ok(data.slice(i * 64 * 1024..((i + 1) * 64 * 1024).min(data.len())))),
    )
    .boxed()
}

fn opts(store: &SessionStore) -> ops::SyncOptions {
    ops::SyncOptions {
        resume_above: Some(MIB as u64),
        retries: 1,
        low_level_retries: 0,
        retry_backoff: Duration::from_millis(20),
        sessions: store.clone(),
        ..Default::default()
    }
}

async fn source(content: &Bytes) -> Arc<dyn Remote> {
    let src = memory();
    src.write(&p("big.bin"), pieces(content.clone()), WriteMeta::default())
        .await
        .unwrap();
    src
}

/// The core's session checks (cut, resumed across runs and in a retry; changed source;
/// expired session as the remote reports it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_checks_against_the_emulator() {
    let emu = Emulator::start().unwrap();
    let r = remote(&emu, None);
    r.mkdir(&RemotePath::root()).await.unwrap();
    for check in ["session_resume", "session_stale"] {
        let sub = cloudsync_core::Prefix::wrap(
            r.clone(),
            p(&format!("ck-{check}-{:08x}", fastrand::u32(..))),
        );
        run_check(check, &sub, &ConformanceOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{check}: {e}"));
    }
    assert!(emu.requests("files/upload_session/append_v2") > 0);
}

/// The session API itself: a new session holds nothing; after appends its offset is what the
/// service collected (learnt from `incorrect_offset`); a write from that offset commits the
/// whole file; the finished session is gone (`NotFound`); an expired one too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_are_learnt_from_incorrect_offset() {
    let emu = Emulator::start().unwrap();
    let r = remote(&emu, None);
    let path = p("a/b.bin");
    let content = data(5 * MIB / 2, 3);
    let meta = WriteMeta {
        size: Some(content.len() as u64),
        ..Default::default()
    };
    let token = r
        .session_start(&path, content.len() as u64, &meta)
        .await
        .unwrap();
    assert_eq!(r.session_offset(&token).await.unwrap(), 0);
    // A write whose body fails after 1.5 MiB: the first MiB is appended, and the half MiB
    // read before the failure is kept too.
    let head = content.slice(..3 * MIB / 2);
    let failing = pieces(head).chain(futures::stream::once(async {
        Err(cloudsync_core::Error::new(ErrorKind::Transient, "cut"))
    }));
    let e = r
        .session_write(&token, &path, 0, failing.boxed(), meta.clone())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    assert!(emu.file("/sessions/a/b.bin").is_none());
    let held = r.session_offset(&token).await.unwrap();
    assert_eq!(held, 3 * MIB as u64 / 2);
    // Continuing past what the session holds is refused by the service, which names the
    // right offset: nothing is appended.
    let e = r
        .session_write(
            &token,
            &path,
            held + 1,
            pieces(content.slice(held as usize + 1..)),
            meta.clone(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConditionNotMatch, "{e}");
    assert_eq!(r.session_offset(&token).await.unwrap(), held);
    let entry = r
        .session_write(
            &token,
            &path,
            held,
            pieces(content.slice(held as usize..)),
            meta,
        )
        .await
        .unwrap();
    assert_eq!(entry.size, content.len() as u64);
    assert_eq!(emu.file("/sessions/a/b.bin").unwrap(), content);
    let e = r.session_offset(&token).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    // Unknown and expired sessions.
    let e = r
        .session_offset(&SessionToken::new("no-such-session"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let token = r
        .session_start(&path, 10, &WriteMeta::default())
        .await
        .unwrap();
    emu.expire_sessions();
    let e = r.session_offset(&token).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let e = r
        .session_write(&token, &path, 0, pieces(data(10, 1)), WriteMeta::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    // Cancelling an expired session is fine; cancelling a live one closes it: no more
    // appends, and it reads as gone.
    r.session_cancel(&token).await.unwrap();
    let token = r
        .session_start(&path, 10, &WriteMeta::default())
        .await
        .unwrap();
    let failing = pieces(data(3 * MIB / 2, 2)).chain(futures::stream::once(async {
        Err(cloudsync_core::Error::new(ErrorKind::Transient, "cut"))
    }));
    r.session_write(&token, &path, 0, failing.boxed(), WriteMeta::default())
        .await
        .unwrap_err();
    assert!(r.session_offset(&token).await.unwrap() > 0);
    r.session_cancel(&token).await.unwrap();
    let e = r.session_offset(&token).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}

/// Sessions expire after their lifetime (7 days on the service; shortened here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_expire_after_their_lifetime() {
    let emu = Emulator::start_with(
        EmulatorOptions::default().with_session_lifetime(Duration::from_millis(300)),
    )
    .unwrap();
    let r = remote(&emu, None);
    let token = r
        .session_start(&p("x.bin"), 10, &WriteMeta::default())
        .await
        .unwrap();
    assert_eq!(r.session_offset(&token).await.unwrap(), 0);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let e = r.session_offset(&token).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}

/// A request above 150 MB is refused with `payload_too_large` (a smaller limit here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_above_the_request_limit_are_refused() {
    let mut o = EmulatorOptions::default();
    o.max_upload = MIB as u64 / 2;
    let emu = Emulator::start_with(o).unwrap();
    let r = remote(&emu, None);
    let content = data(3 * MIB, 5);
    let meta = WriteMeta {
        size: Some(content.len() as u64),
        ..Default::default()
    };
    let token = r.session_start(&p("big.bin"), 0, &meta).await.unwrap();
    let e = r
        .session_write(&token, &p("big.bin"), 0, pieces(content), meta)
        .await
        .unwrap_err();
    assert!(e.message().contains("payload_too_large"), "{e}");
    assert!(emu.file("/sessions/big.bin").is_none());
}

/// The connection is cut in the middle of an append (and stays cut): the service keeps the
/// appends it acknowledged before, not the one cut. The next run, with the same record file,
/// continues from there: it sends only what the session lacks, the file is exact, and the
/// record is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_cut_mid_append_keeps_the_previous_appends() {
    let emu = Emulator::start().unwrap();
    let content = data(6 * MIB + 5, 7);
    let src = source(&content).await;
    let port = CuttingProxy::start(emu.addr(), 7 * MIB as u64 / 2)
        .await
        .unwrap()
        .port();
    let cut = remote(&emu, Some(format!("http://127.0.0.1:{port}")));
    let direct = remote(&emu, None);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("uploads.json");
    let first = ops::copy(&src, &cut, &opts(&SessionStore::open(&file)))
        .await
        .unwrap();
    assert_eq!(first.errors.len(), 1, "{first:?}");
    assert!(
        emu.file("/sessions/big.bin").is_none(),
        "visible after a cut"
    );
    let held = emu.session_offsets();
    assert_eq!(held.len(), 1, "{held:?}");
    let kept = held[0];
    assert!(
        kept % SESSION_CHUNK_SLACK == 0 && kept >= 2 * MIB as u64 && kept < 7 * MIB as u64 / 2,
        "the session holds {kept} bytes after a cut at about 3.5 MiB"
    );
    let before = emu.bytes_received("files/upload_session/append_v2")
        + emu.bytes_received("files/upload_session/finish");
    let second = ops::copy(&src, &direct, &opts(&SessionStore::open(&file)))
        .await
        .unwrap();
    assert!(second.is_ok(), "{second:?}");
    assert_eq!(second.bytes_resumed, kept, "{second:?}");
    let sent = emu.bytes_received("files/upload_session/append_v2")
        + emu.bytes_received("files/upload_session/finish")
        - before;
    assert_eq!(
        sent,
        content.len() as u64 - kept,
        "bytes sent the second time"
    );
    let back = collect_bytes(direct.read(&p("big.bin"), None).await.unwrap())
        .await
        .unwrap();
    assert!(back == content, "the resumed file is not exact");
    assert!(
        SessionStore::open(&file)
            .get(&direct.describe(), &p("big.bin"))
            .is_none(),
        "the finished upload is still recorded"
    );
}

/// A session that expired between two runs: the next run starts a new one and the result is
/// exact; nothing of the old session is used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_starts_again() {
    let emu = Emulator::start().unwrap();
    let content = data(4 * MIB + 9, 11);
    let src = source(&content).await;
    let port = CuttingProxy::start(emu.addr(), 5 * MIB as u64 / 2)
        .await
        .unwrap()
        .port();
    let cut = remote(&emu, Some(format!("http://127.0.0.1:{port}")));
    let direct = remote(&emu, None);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("uploads.json");
    let first = ops::copy(&src, &cut, &opts(&SessionStore::open(&file)))
        .await
        .unwrap();
    assert_eq!(first.errors.len(), 1, "{first:?}");
    assert!(emu.session_offsets().iter().all(|n| *n > 0));
    emu.expire_sessions();
    let second = ops::copy(&src, &direct, &opts(&SessionStore::open(&file)))
        .await
        .unwrap();
    assert!(second.is_ok(), "{second:?}");
    assert_eq!(second.bytes_resumed, 0, "{second:?}");
    assert_eq!(emu.file("/sessions/big.bin").unwrap(), content);
}

/// A content call straight to the emulator: status and JSON answer.
async fn raw(
    emu: &Emulator,
    endpoint: &str,
    arg: serde_json::Value,
    body: &'static [u8],
) -> (u16, serde_json::Value) {
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", emu.refresh_token()),
        ("client_id", emu.app_key()),
    ];
    let client = reqwest::Client::new();
    let t: serde_json::Value = client
        .post(emu.token_url())
        .form(&form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let resp = client
        .post(format!("{}/2/{endpoint}", emu.content_url()))
        .bearer_auth(t["access_token"].as_str().unwrap())
        .header("Dropbox-API-Arg", arg.to_string())
        .header("Content-Type", "application/octet-stream")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(serde_json::Value::Null))
}

/// The documented answers, as the wire shows them: an append at a wrong offset is
/// `incorrect_offset` with the `correct_offset`; after a closing append, `closed`; an unknown
/// session `not_found`; a concurrent session (not emulated) is refused rather than imitated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_answers_on_the_wire() {
    use serde_json::json;
    let emu = Emulator::start().unwrap();
    let (status, v) = raw(&emu, "files/upload_session/start", json!({}), b"abcd").await;
    assert_eq!(status, 200, "{v}");
    let id = v["session_id"].as_str().unwrap().to_owned();
    let append = |offset: u64, close: bool| json!({ "cursor": { "session_id": id, "offset": offset }, "close": close });
    let (status, v) = raw(
        &emu,
        "files/upload_session/append_v2",
        append(1, false),
        b"x",
    )
    .await;
    assert_eq!(status, 409, "{v}");
    assert_eq!(v["error"][".tag"], "incorrect_offset", "{v}");
    assert_eq!(v["error"]["correct_offset"], 4, "{v}");
    let (status, v) = raw(
        &emu,
        "files/upload_session/append_v2",
        append(4, true),
        b"ef",
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = raw(
        &emu,
        "files/upload_session/append_v2",
        append(6, false),
        b"g",
    )
    .await;
    assert_eq!(status, 409, "{v}");
    assert_eq!(v["error"][".tag"], "closed", "{v}");
    let unknown = json!({ "cursor": { "session_id": "nope", "offset": 0 } });
    let (status, v) = raw(&emu, "files/upload_session/append_v2", unknown, b"").await;
    assert_eq!(status, 409, "{v}");
    assert_eq!(v["error"][".tag"], "not_found", "{v}");
    let concurrent = json!({ "session_type": { ".tag": "concurrent" } });
    let (status, _) = raw(&emu, "files/upload_session/start", concurrent, b"").await;
    assert_eq!(status, 400);
}

//! Documented Dropbox behaviours a naive client gets wrong, reproduced by the emulator, and
//! the backend's answer to each: identical uploads that change nothing (not even the
//! modtime), case-only renames, refused names, files that can only be exported, answers
//! lost after the work was done, serial batch commits, listing cursors that are reset, and
//! pages that are empty or short while more follow.

use std::collections::HashSet;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use cloudsync_core::testkit::MemFs;
use cloudsync_core::{
    Capabilities, ErrorKind, HashKind, Remote, RemotePath, RetryPolicy, Retrying, WriteMeta,
    bytes_stream, collect_bytes, ops,
};
use cloudsync_dropbox::emulator::{Emulator, EmulatorOptions, Fault};
use cloudsync_dropbox::{DropboxConfig, DropboxRemote};
use futures::{StreamExt, TryStreamExt};
use serde_json::{Value, json};
use time::OffsetDateTime;

fn p(s: &str) -> RemotePath {
    RemotePath::new(s).unwrap()
}

fn remote(cfg: DropboxConfig) -> Arc<dyn Remote> {
    Arc::new(DropboxRemote::new(cfg).unwrap())
}

fn fast() -> ops::SyncOptions {
    ops::SyncOptions {
        retry_backoff: Duration::from_millis(20),
        ..Default::default()
    }
}

/// An in-memory source that can hash its files the Dropbox way (as a local disk can).
fn dropbox_hashing_memfs(name: &str) -> MemFs {
    MemFs::new(name).with_capabilities(Capabilities {
        hashes: vec![HashKind::Md5, HashKind::Dropbox],
        modtime_precision: Some(Duration::from_millis(1)),
        write_modtime: true,
        set_modtime: true,
        copy: true,
        rename: true,
        dirs: true,
        ..Default::default()
    })
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

/// Sends an RPC straight to the emulator; returns the status and the JSON answer.
async fn raw_rpc(emu: &Emulator, token: &str, endpoint: &str, arg: Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/2/{endpoint}", emu.api_url()))
        .bearer_auth(token)
        .header("Content-Type", "application/json")
        .body(arg.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Uploads straight to the emulator; returns the status and the JSON answer.
async fn raw_upload(emu: &Emulator, token: &str, arg: Value, body: &'static [u8]) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/2/files/upload", emu.content_url()))
        .bearer_auth(token)
        .header("Dropbox-API-Arg", arg.to_string())
        .header("Content-Type", "application/octet-stream")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn at(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(secs).unwrap()
}

#[tokio::test]
async fn touched_file_with_identical_content_converges() {
    let emu = Emulator::start().unwrap();
    let dst = remote(emu.config());
    let mem = dropbox_hashing_memfs("memfs://touch-src");
    mem.put_file(&p("a.txt"), Bytes::from_static(b"hello"), at(1_700_000_000))
        .unwrap();
    mem.put_file(&p("b.txt"), Bytes::from_static(b"other"), at(1_700_000_000))
        .unwrap();
    let src: Arc<dyn Remote> = Arc::new(mem.clone());
    let s = ops::sync(&src, &dst, &fast()).await.unwrap();
    assert_eq!((s.transferred, s.errors.len()), (2, 0), "{s:?}");

    // The emulator: an upload of identical content writes nothing, client_modified included.
    let e = dst
        .write(
            &p("a.txt"),
            bytes_stream("hello"),
            WriteMeta {
                modtime: Some(at(1_800_000_000)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(e.modtime, Some(at(1_700_000_000)), "identical upload wrote");
    // A different content does change it.
    let e = dst
        .write(
            &p("b.txt"),
            bytes_stream("changed"),
            WriteMeta {
                modtime: Some(at(1_800_000_000)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(e.modtime, Some(at(1_800_000_000)));
    dst.write(
        &p("b.txt"),
        bytes_stream("other"),
        WriteMeta {
            modtime: Some(at(1_700_000_000)),
            ..Default::default()
        },
    )
    .await
    .unwrap();

    // Touch a.txt: a new modtime, the same content. Sync twice: nothing is sent either time
    // (an upload could not change the stored modtime, so sending it would never end).
    mem.put_file(&p("a.txt"), Bytes::from_static(b"hello"), at(1_700_003_600))
        .unwrap();
    let uploads = emu.requests("files/upload");
    for round in 0..2 {
        let s = ops::sync(&src, &dst, &fast()).await.unwrap();
        assert_eq!(
            (s.transferred, s.errors.len()),
            (0, 0),
            "round {round}: {s:?}"
        );
    }
    assert_eq!(
        emu.requests("files/upload"),
        uploads,
        "the file was sent again"
    );
    assert_eq!(emu.file("/a.txt").unwrap(), "hello");
    // A real change of content is still sent.
    mem.put_file(&p("a.txt"), Bytes::from_static(b"hullo"), at(1_700_007_200))
        .unwrap();
    let s = ops::sync(&src, &dst, &fast()).await.unwrap();
    assert_eq!((s.transferred, s.errors.len()), (1, 0), "{s:?}");
    assert_eq!(emu.file("/a.txt").unwrap(), "hullo");
    assert_eq!(
        dst.stat(&p("a.txt")).await.unwrap().modtime,
        Some(at(1_700_007_200))
    );
}

#[tokio::test]
async fn case_only_rename_goes_through_a_temporary_name() {
    let emu = Emulator::start().unwrap();
    let r = remote(emu.config());
    r.write(
        &p("Dir/File.txt"),
        bytes_stream("data"),
        WriteMeta::default(),
    )
    .await
    .unwrap();

    // The service refuses a case-only move.
    let token = access_token(&emu).await;
    let (status, v) = raw_rpc(
        &emu,
        &token,
        "files/move_v2",
        json!({ "from_path": "/Dir/File.txt", "to_path": "/Dir/file.TXT" }),
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(v["error"][".tag"], "duplicated_or_nested_paths", "{v}");
    assert_eq!(emu.paths(), ["/Dir", "/Dir/File.txt"]);

    // The backend does it in two moves.
    let moves = emu.requests("files/move_v2");
    let e = r
        .rename(&p("Dir/File.txt"), &p("Dir/file.TXT"))
        .await
        .unwrap();
    assert_eq!(e.path.as_str(), "Dir/file.TXT");
    assert_eq!(emu.paths(), ["/Dir", "/Dir/file.TXT"]);
    assert_eq!(emu.requests("files/move_v2") - moves, 2);
    assert_eq!(emu.file("/dir/file.txt").unwrap(), "data");

    // The second move fails: the file is moved back, nothing is lost.
    emu.inject_later("files/move_v2", Fault::Status(503), 1, 1);
    let err = r
        .rename(&p("Dir/file.TXT"), &p("Dir/FILE.txt"))
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert_eq!(emu.paths(), ["/Dir", "/Dir/file.TXT"]);
    assert_eq!(emu.file("/dir/file.txt").unwrap(), "data");

    // The second move's answer is lost after it was done: that is success.
    emu.inject_later("files/move_v2", Fault::DropAfter, 1, 1);
    r.rename(&p("Dir/file.TXT"), &p("Dir/FILE.txt"))
        .await
        .unwrap();
    assert_eq!(emu.paths(), ["/Dir", "/Dir/FILE.txt"]);
    // The first move's answer is lost after it was done: the rename goes on.
    emu.inject("files/move_v2", Fault::DropAfter, 1);
    r.rename(&p("Dir/FILE.txt"), &p("Dir/file.txt"))
        .await
        .unwrap();
    assert_eq!(emu.paths(), ["/Dir", "/Dir/file.txt"]);
    assert_eq!(emu.file("/dir/file.txt").unwrap(), "data");
    // The same name again is no move at all.
    let moves = emu.requests("files/move_v2");
    r.rename(&p("Dir/file.txt"), &p("Dir/file.txt"))
        .await
        .unwrap();
    assert_eq!(emu.requests("files/move_v2"), moves);
}

#[tokio::test]
async fn refused_names_are_per_file_errors_that_block_nothing_else() {
    let emu = Emulator::start().unwrap();
    let token = access_token(&emu).await;
    // The service refuses them, with the documented tags.
    let (status, v) = raw_upload(
        &emu,
        &token,
        json!({ "path": "/x/Desktop.ini", "mode": "overwrite" }),
        b"x",
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(v["error_summary"], "path/disallowed_name/..", "{v}");
    let (status, v) = raw_upload(&emu, &token, json!({ "path": "/x/a\\b" }), b"x").await;
    assert_eq!(status, 409);
    assert_eq!(v["error_summary"], "path/malformed_path/..", "{v}");
    let (status, v) = raw_rpc(
        &emu,
        &token,
        "files/create_folder_v2",
        json!({ "path": "/x/trailing " }),
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(v["error_summary"], "path/malformed_path/..", "{v}");
    assert!(emu.paths().is_empty(), "{:?}", emu.paths());

    // A sync with one such name among good ones: the good ones are sent, the refused one is
    // one error found before any request, and (a run with errors deletes nothing) the stale
    // file stays.
    let dst = remote(emu.config());
    dst.write(&p("stale.txt"), bytes_stream("old"), WriteMeta::default())
        .await
        .unwrap();
    let src: Arc<dyn Remote> = Arc::new(MemFs::new("memfs://names-src"));
    for (path, data) in [
        ("good.txt", "1"),
        ("sub/also good.txt", "2"),
        ("sub/Thumbs.db", "3"),
        ("sub/deeper/ok.txt", "4"),
    ] {
        src.write(&p(path), bytes_stream(data), WriteMeta::default())
            .await
            .unwrap();
    }
    let uploads = emu.requests("files/upload");
    let s = ops::sync(&src, &dst, &fast()).await.unwrap();
    assert_eq!(s.errors.len(), 1, "{:?}", s.errors);
    let err = &s.errors[0];
    assert_eq!(err.path.as_str(), "sub/Thumbs.db");
    assert_eq!(err.kind, ErrorKind::InvalidInput);
    assert!(!err.temporary);
    assert!(err.message.contains("refuses this name"), "{}", err.message);
    assert_eq!(s.transferred, 3);
    // No request was spent on the refused name.
    assert_eq!(emu.requests("files/upload") - uploads, 3);
    assert_eq!(emu.file("/sub/deeper/ok.txt").unwrap(), "4");
    assert_eq!(emu.file("/stale.txt").unwrap(), "old");
    assert!(emu.file("/sub/thumbs.db").is_none());
    // Directly, too: each rule has its message.
    for (path, rule) in [
        ("a/b\\c", "backslash"),
        ("end space /f", "space"),
        ("d/.DS_Store", "refuses this name"),
    ] {
        let e = dst
            .write(&p(path), bytes_stream("x"), WriteMeta::default())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{path}");
        assert!(e.to_string().contains(rule), "{path}: {e}");
    }
    let e = dst.mkdir(&p(".dropbox.cache")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    let e = dst
        .rename(&p("good.txt"), &p("desktop.ini"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert_eq!(emu.file("/good.txt").unwrap(), "1");
}

/// A writer that keeps what is logged, for counting notices.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn files_that_can_only_be_exported_are_skipped_with_one_notice() {
    let logs = Captured::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let emu = Emulator::start().unwrap();
    emu.put("/docs/a.txt", "plain");
    emu.put_non_downloadable("/docs/Plan.paper", "not the bytes of the doc");
    let token = access_token(&emu).await;
    // The service lists it as not downloadable, and refuses to download it.
    let (_, v) = raw_rpc(
        &emu,
        &token,
        "files/list_folder",
        json!({ "path": "/docs" }),
    )
    .await;
    let paper = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "Plan.paper")
        .unwrap()
        .clone();
    assert_eq!(paper["is_downloadable"], false);
    assert!(paper["export_info"].is_object());
    let (_, v) = raw_rpc(
        &emu,
        &token,
        "files/list_folder",
        json!({ "path": "/docs", "include_non_downloadable_files": false }),
    )
    .await;
    assert_eq!(v["entries"].as_array().unwrap().len(), 1, "{v}");

    let r = remote(emu.config());
    let e = r.read(&p("docs/Plan.paper"), None).await.err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e:?}");
    assert!(!e.is_retryable());

    // Listings skip it; a sync from Dropbox copies the rest and reports no error, every run.
    let names: Vec<String> = r
        .list_recursive(&RemotePath::root())
        .await
        .unwrap()
        .map_ok(|e| e.path.to_string())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(names, ["docs", "docs/a.txt"]);
    let dst: Arc<dyn Remote> = Arc::new(MemFs::new("memfs://export-dst"));
    for round in 0..2 {
        let s = ops::sync(&r, &dst, &fast()).await.unwrap();
        assert!(s.errors.is_empty(), "round {round}: {:?}", s.errors);
    }
    assert_eq!(
        collect_bytes(dst.read(&p("docs/a.txt"), None).await.unwrap())
            .await
            .unwrap(),
        "plain"
    );
    assert!(dst.stat(&p("docs/Plan.paper")).await.is_err());
    // One notice for the file, however often it was listed.
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert_eq!(
        text.matches("cannot download").count(),
        1,
        "notices:\n{text}"
    );
    assert!(text.contains("plan.paper"), "{text}");
}

#[tokio::test]
async fn lost_append_answer_continues_at_the_servers_offset() {
    const MIB: usize = 1024 * 1024;
    let emu = Emulator::start().unwrap();
    let r = remote(emu.config().with_chunk_size(4 * MIB as u64));
    let data: Bytes = (0..12 * MIB + 100)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<u8>>()
        .into();
    // The first append is stored, then its answer is lost.
    emu.inject("files/upload_session/append_v2", Fault::DropAfter, 1);
    let pieces: Vec<cloudsync_core::Result<Bytes>> = data
        .chunks(256 * 1024)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let e = r
        .write(
            &p("big.bin"),
            futures::stream::iter(pieces).boxed(),
            WriteMeta::default(),
        )
        .await
        .unwrap();
    assert_eq!(e.size, data.len() as u64);
    assert_eq!(emu.file("/big.bin").unwrap(), data);
    // One session; each appended chunk crossed the wire once (the retry asked where the
    // session stood with an empty append, and went on from the server's offset).
    assert_eq!(emu.requests("files/upload_session/start"), 1);
    assert_eq!(emu.requests("files/upload_session/append_v2"), 3);
    assert_eq!(
        emu.bytes_received("files/upload_session/append_v2"),
        2 * 4 * MIB as u64
    );
    assert_eq!(emu.open_sessions(), 0);

    // An append lost before it arrived is sent again, once.
    emu.inject("files/upload_session/append_v2", Fault::Drop, 1);
    let before = emu.bytes_received("files/upload_session/append_v2");
    r.write(
        &p("big2.bin"),
        bytes_stream(data.clone()),
        WriteMeta::default(),
    )
    .await
    .unwrap();
    assert_eq!(emu.file("/big2.bin").unwrap(), data);
    assert_eq!(
        emu.bytes_received("files/upload_session/append_v2") - before,
        3 * 4 * MIB as u64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_commits_run_one_at_a_time() {
    let emu = Emulator::start_with(
        EmulatorOptions::default().with_batch_commit_time(Duration::from_millis(150)),
    )
    .unwrap();
    // The service refuses a batch commit while another is under way.
    let token = access_token(&emu).await;
    let (a, b) = tokio::join!(
        raw_rpc(
            &emu,
            &token,
            "files/upload_session/finish_batch_v2",
            json!({ "entries": [] })
        ),
        raw_rpc(
            &emu,
            &token,
            "files/upload_session/finish_batch_v2",
            json!({ "entries": [] })
        ),
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [200, 429], "{a:?} {b:?}");
    let refused = if a.0 == 429 { a.1 } else { b.1 };
    assert_eq!(
        refused["error"]["reason"][".tag"],
        "too_many_write_operations"
    );
    assert_eq!(emu.overlapping_batch_commits(), 1);

    // The backend never has two commits in flight, however many writes wait.
    let r = remote(emu.config().with_batching(2, 20));
    let mut tasks = Vec::new();
    for i in 0..12 {
        let r = r.clone();
        tasks.push(tokio::spawn(async move {
            r.write(
                &p(&format!("b/f{i}")),
                bytes_stream(format!("n{i}")),
                WriteMeta::default(),
            )
            .await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(emu.overlapping_batch_commits(), 1, "commits overlapped");
    // The raw one, and at least six batches of at most two files.
    assert!(emu.requests("files/upload_session/finish_batch_v2") > 6);
    for i in 0..12 {
        assert_eq!(emu.file(&format!("/b/f{i}")).unwrap(), format!("n{i}"));
    }
}

#[tokio::test]
async fn reset_cursor_restarts_the_listing_without_duplicates() {
    let emu = Emulator::start().unwrap();
    for i in 0..9 {
        emu.put(&format!("/d/f{i}"), format!("{i}"));
        emu.put(&format!("/d/sub/g{i}"), format!("{i}"));
    }
    let token = access_token(&emu).await;
    let (_, first) = raw_rpc(
        &emu,
        &token,
        "files/list_folder",
        json!({ "path": "/d", "limit": 2 }),
    )
    .await;
    emu.invalidate_cursors();
    let (status, v) = raw_rpc(
        &emu,
        &token,
        "files/list_folder/continue",
        json!({ "cursor": first["cursor"] }),
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(v["error_summary"], "reset/..", "{v}");

    let r = remote(emu.config().with_list_limit(2));
    for recursive in [false, true] {
        let lists = emu.requests("files/list_folder");
        let mut stream = if recursive {
            r.list_recursive(&p("d")).await.unwrap()
        } else {
            r.list(&p("d")).await.unwrap()
        };
        let mut seen = Vec::new();
        for _ in 0..3 {
            seen.push(stream.next().await.unwrap().unwrap().path.to_string());
        }
        emu.invalidate_cursors();
        while let Some(e) = stream.next().await {
            seen.push(e.unwrap().path.to_string());
        }
        let unique: HashSet<&String> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len(), "duplicates: {seen:?}");
        assert_eq!(seen.len(), if recursive { 19 } else { 10 }, "{seen:?}");
        assert_eq!(emu.requests("files/list_folder") - lists, 2);
    }
}

#[tokio::test]
async fn empty_and_short_pages_while_more_follow() {
    let emu = Emulator::start_with(EmulatorOptions::default().with_ragged_pages(true)).unwrap();
    for i in 0..7 {
        emu.put(&format!("/r/f{i}"), format!("{i}"));
        emu.put(&format!("/r/s/g{i}"), format!("{i}"));
    }
    let token = access_token(&emu).await;
    let (_, v) = raw_rpc(
        &emu,
        &token,
        "files/list_folder",
        json!({ "path": "/r", "limit": 4 }),
    )
    .await;
    assert_eq!(v["entries"].as_array().unwrap().len(), 0);
    assert_eq!(v["has_more"], true);

    let r = remote(emu.config().with_list_limit(4));
    let flat: Vec<String> = r
        .list(&p("r"))
        .await
        .unwrap()
        .map_ok(|e| e.path.to_string())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(flat.len(), 8, "{flat:?}");
    let all: Vec<String> = r
        .list_recursive(&p("r"))
        .await
        .unwrap()
        .map_ok(|e| e.path.to_string())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all.len(), 15, "{all:?}");
    let dst: Arc<dyn Remote> = Arc::new(MemFs::new("memfs://ragged-dst"));
    let s = ops::sync(&r, &dst, &fast()).await.unwrap();
    assert_eq!((s.transferred, s.errors.len()), (14, 0), "{s:?}");
    // An empty folder lists as empty, without a page that promises more.
    r.mkdir(&p("empty")).await.unwrap();
    assert_eq!(r.list(&p("empty")).await.unwrap().count().await, 0);
}

#[tokio::test]
async fn answers_lost_after_the_work_was_done_are_handled_safely() {
    let emu = Emulator::start().unwrap();
    let policy = RetryPolicy {
        max_retries: 3,
        base: Duration::from_millis(5),
        ..Default::default()
    };
    let r = Retrying::wrap(remote(emu.config()), policy);
    r.write(&p("a.txt"), bytes_stream("alpha"), WriteMeta::default())
        .await
        .unwrap();

    emu.inject("files/copy_v2", Fault::DropAfter, 1);
    let e = r.copy(&p("a.txt"), &p("copy.txt")).await.unwrap();
    assert_eq!(e.size, 5);
    assert_eq!(emu.file("/copy.txt").unwrap(), "alpha");

    emu.inject("files/move_v2", Fault::DropAfter, 1);
    let e = r.rename(&p("copy.txt"), &p("moved.txt")).await.unwrap();
    assert_eq!(e.path.as_str(), "moved.txt");
    assert!(emu.file("/copy.txt").is_none());
    assert_eq!(emu.file("/moved.txt").unwrap(), "alpha");

    emu.inject("files/create_folder_v2", Fault::DropAfter, 1);
    r.mkdir(&p("new/dir")).await.unwrap();
    assert!(emu.paths().contains(&"/new/dir".to_owned()));

    emu.inject("files/delete_v2", Fault::DropAfter, 1);
    r.remove_file(&p("moved.txt")).await.unwrap();
    assert!(emu.file("/moved.txt").is_none());
    assert_eq!(emu.file("/a.txt").unwrap(), "alpha");

    // A lost upload answer fails the write (its body cannot be replayed), retryably; the
    // engine's next attempt finds identical content and completes.
    emu.inject("files/upload", Fault::DropAfter, 1);
    let e = r
        .write(&p("b.txt"), bytes_stream("beta"), WriteMeta::default())
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e:?}");
    assert_eq!(emu.file("/b.txt").unwrap(), "beta");
    let src: Arc<dyn Remote> = Arc::new(MemFs::new("memfs://lost-src"));
    for (path, data) in [("a.txt", "alpha"), ("b.txt", "beta"), ("c.txt", "gamma")] {
        src.write(&p(path), bytes_stream(data), WriteMeta::default())
            .await
            .unwrap();
    }
    emu.inject("files/upload", Fault::DropAfter, 2);
    let s = ops::sync(&src, &r, &fast()).await.unwrap();
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    let check = ops::check(&src, &r, &Default::default()).await.unwrap();
    assert!(check.is_identical(), "{check:?}");
}

/// `incorrect_offset` answered with an offset inside the chunk: only the rest of the chunk is
/// sent; an offset outside what the writer holds fails the write (the engine starts again).
#[tokio::test]
async fn incorrect_offset_inside_the_chunk_sends_only_the_rest() {
    const MIB: u64 = 1024 * 1024;
    let emu = Emulator::start().unwrap();
    let r = remote(emu.config().with_chunk_size(4 * MIB));
    let data: Bytes = (0..8 * MIB + 10)
        .map(|i| (i % 253) as u8)
        .collect::<Vec<u8>>()
        .into();
    let offset_error = |correct: u64| Fault::Answer {
        status: 409,
        headers: Vec::new(),
        body: Bytes::from(
            json!({
                "error_summary": "incorrect_offset/..",
                "error": { ".tag": "incorrect_offset", "correct_offset": correct },
            })
            .to_string(),
        ),
    };
    // The server claims to hold 1 MiB of the second chunk: the writer sends the other 3 MiB
    // from there; the session (which holds none of it) answers with its own offset, and the
    // writer sends the whole chunk from that offset.
    emu.inject("files/upload_session/append_v2", offset_error(5 * MIB), 1);
    r.write(
        &p("partial.bin"),
        bytes_stream(data.clone()),
        WriteMeta::default(),
    )
    .await
    .unwrap();
    assert_eq!(emu.file("/partial.bin").unwrap(), data);
    assert_eq!(
        emu.bytes_received("files/upload_session/append_v2"),
        4 * MIB + 3 * MIB + 4 * MIB
    );

    // An offset beyond the chunk: the data is no longer held, so the write fails (retryably)
    // and nothing is visible.
    emu.inject("files/upload_session/append_v2", offset_error(100 * MIB), 1);
    let e = r
        .write(
            &p("beyond.bin"),
            bytes_stream(data.clone()),
            WriteMeta::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConditionNotMatch, "{e:?}");
    assert!(e.is_retryable());
    assert!(emu.file("/beyond.bin").is_none());
}

//! A broken or hostile server (design rule 7): absurd numbers, listings that never end,
//! huge or stalled answers and absurd text never panic, hang or fill the memory.

use std::time::Duration;

use bytes::Bytes;
use cloudsync_core::{ErrorKind, Remote, RemotePath, WriteMeta, bytes_stream};
use cloudsync_dropbox::DropboxRemote;
use cloudsync_dropbox::emulator::{Emulator, Fault};
use futures::StreamExt;
use serde_json::{Value, json};

fn p(s: &str) -> RemotePath {
    RemotePath::new(s).unwrap()
}

fn answer(status: u16, body: Value) -> Fault {
    Fault::Answer {
        status,
        headers: Vec::new(),
        body: Bytes::from(body.to_string()),
    }
}

fn page(cursor: &str, entries: Value) -> Fault {
    answer(
        200,
        json!({ "entries": entries, "cursor": cursor, "has_more": true }),
    )
}

/// Lists the root to the end; the error that stopped it, if any.
async fn list_all(
    r: &DropboxRemote,
) -> (Vec<cloudsync_core::Entry>, Option<cloudsync_core::Error>) {
    let mut entries = Vec::new();
    let mut s = match r.list(&RemotePath::root()).await {
        Ok(s) => s,
        Err(e) => return (entries, Some(e)),
    };
    while let Some(x) = s.next().await {
        match x {
            Ok(e) => entries.push(e),
            Err(e) => return (entries, Some(e)),
        }
    }
    (entries, None)
}

#[tokio::test]
async fn retry_after_of_u64_max_is_capped_at_an_hour() {
    let emu = Emulator::start().unwrap();
    let r = DropboxRemote::new(emu.config()).unwrap();
    emu.put("/f", "x");
    // In the header ...
    emu.inject(
        "files/get_metadata",
        Fault::TooManyRequests {
            retry_after: u64::MAX,
        },
        1,
    );
    let e = r.stat(&p("f")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited, "{e}");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(3600)), "{e:?}");
    // ... and in the body only (`RateLimitError.retry_after`), on a 409 write lock.
    emu.inject(
        "files/get_metadata",
        answer(
            409,
            json!({ "error_summary": "too_many_write_operations/..",
                    "error": { "reason": { ".tag": "too_many_write_operations" },
                               "retry_after": u64::MAX } }),
        ),
        1,
    );
    let e = r.stat(&p("f")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited, "{e}");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(3600)), "{e:?}");
    r.stat(&p("f")).await.unwrap();
}

#[tokio::test]
async fn a_listing_that_never_advances_is_an_error() {
    let emu = Emulator::start().unwrap();
    let r = DropboxRemote::new(emu.config()).unwrap();
    let file = json!([{ ".tag": "file", "name": "a", "path_lower": "/a", "size": 1,
                        "client_modified": "2024-01-02T03:04:05Z" }]);
    // The same cursor again and again, with `has_more` for ever.
    emu.inject("files/list_folder", page("same", file.clone()), 1);
    emu.inject("files/list_folder/continue", page("same", json!([])), 1000);
    let (_, e) = list_all(&r).await;
    let e = e.expect("the listing must fail");
    assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
    assert_eq!(emu.requests("files/list_folder/continue"), 1);
    emu.clear_faults();

    // Going round in a circle of two cursors.
    emu.inject("files/list_folder", page("A", json!([])), 1);
    emu.inject("files/list_folder/continue", page("B", json!([])), 1);
    emu.inject("files/list_folder/continue", page("A", json!([])), 1000);
    let (_, e) = list_all(&r).await;
    assert_eq!(
        e.expect("the listing must fail").kind(),
        ErrorKind::Protocol
    );
    assert_eq!(emu.requests("files/list_folder/continue"), 3);
}

#[tokio::test]
async fn an_oversized_json_answer_is_refused() {
    let emu = Emulator::start().unwrap();
    let r = DropboxRemote::new(emu.config()).unwrap();
    // Valid JSON, but 65 MiB of it: more than the 64 MiB any metadata answer may have.
    let mut body = json!({ ".tag": "file", "name": "f", "path_lower": "/f", "size": 1 })
        .to_string()
        .into_bytes();
    body.resize(65 * 1024 * 1024, b' ');
    emu.inject(
        "files/get_metadata",
        Fault::Answer {
            status: 200,
            headers: Vec::new(),
            body: Bytes::from(body),
        },
        1,
    );
    let e = r.stat(&p("f")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
    assert!(e.to_string().contains("longer than"), "{e}");
}

#[tokio::test]
async fn a_stalled_metadata_call_fails_with_a_temporary_error() {
    let emu = Emulator::start().unwrap();
    let mut cfg = emu.config();
    cfg.timeout = 1;
    let r = DropboxRemote::new(cfg).unwrap();
    emu.put("/f", "x");
    // Headers at once, then a byte every 100 ms for ever: never idle for the 1 s timeout.
    emu.inject("files/get_metadata", Fault::Trickle, 1);
    let e = tokio::time::timeout(Duration::from_secs(20), r.stat(&p("f")))
        .await
        .expect("a trickling answer must not hold the call for ever")
        .unwrap_err();
    assert!(e.is_retryable(), "{e:?}");
    r.stat(&p("f")).await.unwrap();
}

#[tokio::test]
async fn absurd_server_text_is_cut_in_error_messages() {
    let emu = Emulator::start().unwrap();
    let r = DropboxRemote::new(emu.config()).unwrap();
    let long = "x".repeat(10_000);
    emu.inject(
        "files/get_metadata",
        answer(
            409,
            json!({ "error_summary": format!("path/{long}/.."),
                    "error": { ".tag": "path", "path": { ".tag": long } } }),
        ),
        1,
    );
    let e = r.stat(&p("f")).await.unwrap_err();
    let text = e.chain();
    assert!(text.len() < 1000, "{} bytes: {text}", text.len());
    assert!(text.contains('…'), "{text}");
    // A plain-text 500 body.
    emu.inject(
        "files/get_metadata",
        Fault::Answer {
            status: 500,
            headers: Vec::new(),
            body: Bytes::from("y".repeat(100_000)),
        },
        1,
    );
    let e = r.stat(&p("f")).await.unwrap_err();
    assert!(e.chain().len() < 1000, "{}", e.chain());
    // A file name of thousands of bytes, and an unknown tag as long.
    emu.inject(
        "files/get_metadata",
        answer(
            200,
            json!({ ".tag": long, "name": "f", "path_lower": "/f" }),
        ),
        1,
    );
    let e = r.stat(&p("f")).await.unwrap_err();
    assert!(e.chain().len() < 1000, "{}", e.chain());
    emu.inject(
        "files/get_metadata",
        answer(
            200,
            json!({ ".tag": "file", "name": "f", "path_lower": "/f",
                            "client_modified": long }),
        ),
        1,
    );
    let e = r.stat(&p("f")).await.unwrap_err();
    assert!(e.chain().len() < 1000, "{}", e.chain());
}

#[tokio::test]
async fn a_modtime_out_of_range_is_refused_without_a_panic() {
    let emu = Emulator::start().unwrap();
    let r = DropboxRemote::new(emu.config()).unwrap();
    // The last representable minute, at -01:00: past the last date in UTC.
    let meta = WriteMeta {
        modtime: Some(time::macros::datetime!(9999-12-31 23:59:59 -1)),
        ..Default::default()
    };
    let e = r.write(&p("f"), bytes_stream("x"), meta).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
}

#[tokio::test]
async fn extreme_sizes_and_dates_in_listings_do_not_panic() {
    let emu = Emulator::start().unwrap();
    let r = DropboxRemote::new(emu.config()).unwrap();
    emu.inject(
        "files/list_folder",
        answer(
            200,
            json!({ "cursor": "c", "has_more": false, "entries": [
                { ".tag": "file", "name": "max", "path_lower": "/max", "size": u64::MAX,
                  "client_modified": "9999-12-31T23:59:59Z" },
            ] }),
        ),
        1,
    );
    let (entries, e) = list_all(&r).await;
    assert!(e.is_none(), "{e:?}");
    assert_eq!(entries[0].size, u64::MAX);
    // Beyond u64, negative, far-out dates: errors, never a panic.
    for bad in [
        json!({ ".tag": "file", "name": "big", "path_lower": "/big", "size": 1e30 }),
        json!({ ".tag": "file", "name": "neg", "path_lower": "/neg", "size": -1 }),
        json!({ ".tag": "file", "name": "far", "path_lower": "/far",
                "client_modified": "+275760-09-13T00:00:00Z" }),
    ] {
        emu.inject(
            "files/list_folder",
            answer(
                200,
                json!({ "cursor": "c", "has_more": false, "entries": [bad] }),
            ),
            1,
        );
        let (_, e) = list_all(&r).await;
        assert_eq!(e.expect("an error").kind(), ErrorKind::Protocol);
    }
}

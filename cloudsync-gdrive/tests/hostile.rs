//! A broken or hostile Drive server (design rule 7): absurd numbers, listings that never end,
//! resumable uploads that never advance, huge or stalled answers and absurd text never panic,
//! hang or fill the memory.

use std::time::Duration;

use bytes::Bytes;
use cloudsync_core::{ErrorKind, Remote, RemotePath, WriteMeta, bytes_stream};
use cloudsync_gdrive::DriveRemote;
use cloudsync_gdrive::emulator::{DriveEmulator, Fault};
use futures::StreamExt;
use serde_json::json;

fn p(s: &str) -> RemotePath {
    RemotePath::new(s).unwrap()
}

fn answer(status: u16, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Fault {
    Fault::Answer {
        status,
        headers: headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        body: body.into(),
    }
}

fn list_requests(emu: &DriveEmulator) -> usize {
    emu.requests()
        .iter()
        .filter(|r| r.starts_with("GET /drive/v3/files?"))
        .count()
}

async fn list_root(r: &DriveRemote) -> cloudsync_core::Result<Vec<cloudsync_core::Entry>> {
    let s = r.list(&RemotePath::root()).await?;
    s.collect::<Vec<_>>().await.into_iter().collect()
}

#[tokio::test]
async fn extreme_token_lifetimes_do_not_panic() {
    let emu = DriveEmulator::start().await;
    for expires_in in [
        "18446744073709551615",
        "-5",
        "1e30",
        "99999999999999999999999",
    ] {
        let r = DriveRemote::new(emu.config()).unwrap();
        r.write(&p("f"), bytes_stream("x"), WriteMeta::default())
            .await
            .unwrap();
        // A token the API does not know, with an absurd lifetime: it is used, refused with
        // 401, and a fresh one is fetched.
        let r = DriveRemote::new(emu.config()).unwrap();
        emu.inject(
            "POST",
            "/token",
            answer(
                200,
                &[],
                format!(r#"{{"access_token": "fake", "expires_in": {expires_in}}}"#),
            ),
            1,
        );
        let e = r.stat(&p("f")).await;
        assert_eq!(e.unwrap().size, 1, "expires_in {expires_in}");
    }
}

#[tokio::test]
async fn absurd_ranges_in_308_answers_are_errors() {
    let emu = DriveEmulator::start().await;
    let r = DriveRemote::new(emu.config().with_chunk_size(256 * 1024)).unwrap();
    let data = Bytes::from(vec![7u8; 600 * 1024]);
    for range in [
        "bytes=0-18446744073709551615",
        "bytes=0-banana",
        "kilobytes=3",
        // Beyond what was sent.
        "bytes=0-99999999",
    ] {
        emu.inject("PUT", "upload_id=", answer(308, &[("Range", range)], ""), 1);
        let e = r
            .write(&p("big"), bytes_stream(data.clone()), WriteMeta::default())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Protocol, "{range}: {e}");
    }
}

#[tokio::test]
async fn a_resumable_upload_that_never_advances_is_an_error() {
    let emu = DriveEmulator::start().await;
    let r = DriveRemote::new(emu.config().with_chunk_size(256 * 1024)).unwrap();
    // `308` without a `Range`: nothing committed, again and again.
    emu.inject("PUT", "upload_id=", answer(308, &[], ""), 100);
    let e = r
        .write(
            &p("big"),
            bytes_stream(vec![1u8; 600 * 1024]),
            WriteMeta::default(),
        )
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e}");
    let puts = emu
        .requests()
        .iter()
        .filter(|l| l.starts_with("PUT "))
        .count();
    assert!(puts <= 10, "{puts} chunks sent");
}

#[tokio::test]
async fn retry_after_of_u64_max_is_capped_at_an_hour() {
    let emu = DriveEmulator::start().await;
    let r = DriveRemote::new(emu.config()).unwrap();
    emu.inject(
        "GET",
        "/drive/v3/files?",
        Fault::Status {
            status: 429,
            reason: "rateLimitExceeded".into(),
            retry_after: Some(u64::MAX),
        },
        1,
    );
    let e = r.stat(&p("f")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited, "{e}");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(3600)));
}

#[tokio::test]
async fn a_listing_that_never_advances_is_an_error() {
    let emu = DriveEmulator::start().await;
    let r = DriveRemote::new(emu.config()).unwrap();
    let page = |t: &str| {
        answer(
            200,
            &[],
            json!({ "files": [], "nextPageToken": t }).to_string(),
        )
    };
    emu.inject("GET", "/drive/v3/files?", page("same"), 1000);
    let e = list_root(&r).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
    assert_eq!(list_requests(&emu), 2);

    // Round in a circle of two tokens.
    let emu = DriveEmulator::start().await;
    let r = DriveRemote::new(emu.config()).unwrap();
    emu.inject("GET", "/drive/v3/files?", page("A"), 1);
    emu.inject("GET", "/drive/v3/files?", page("B"), 1);
    emu.inject("GET", "/drive/v3/files?", page("A"), 1000);
    let e = list_root(&r).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
    assert_eq!(list_requests(&emu), 3);
}

#[tokio::test]
async fn an_oversized_json_answer_is_refused() {
    let emu = DriveEmulator::start().await;
    let r = DriveRemote::new(emu.config()).unwrap();
    let mut body = br#"{"files": []}"#.to_vec();
    body.resize(65 * 1024 * 1024, b' ');
    emu.inject("GET", "/drive/v3/files?", answer(200, &[], body), 1);
    let e = list_root(&r).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
}

#[tokio::test]
async fn a_stalled_metadata_call_fails_with_a_temporary_error() {
    let emu = DriveEmulator::start().await;
    let r = DriveRemote::new(emu.config().with_timeout(1)).unwrap();
    r.write(&p("f"), bytes_stream("x"), WriteMeta::default())
        .await
        .unwrap();
    // Headers at once, then a byte every 100 ms for ever: never idle for the 1 s timeout.
    emu.inject("GET", "/drive/v3/files?", Fault::Trickle, 1);
    let e = tokio::time::timeout(Duration::from_secs(20), r.stat(&p("f")))
        .await
        .expect("a trickling answer must not hold the call for ever")
        .unwrap_err();
    assert!(e.is_retryable(), "{e:?}");
    r.stat(&p("f")).await.unwrap();
}

#[tokio::test]
async fn absurd_server_text_is_cut_in_error_messages() {
    let emu = DriveEmulator::start().await;
    let r = DriveRemote::new(emu.config()).unwrap();
    let long = "x".repeat(10_000);
    let body = json!({ "error": { "code": 500, "message": long,
                                  "errors": [{ "reason": long, "message": long }] } });
    emu.inject(
        "GET",
        "/drive/v3/files?",
        answer(500, &[], body.to_string()),
        1,
    );
    let e = r.stat(&p("f")).await.unwrap_err();
    assert!(e.chain().len() < 1000, "{} bytes", e.chain().len());
    assert!(e.chain().contains('…'), "{}", e.chain());
    // A Google document whose MIME type is thousands of bytes long.
    let doc = json!({ "files": [{ "id": "d1", "name": "doc",
                                  "mimeType": format!("application/vnd.google-apps.{long}") }] });
    emu.inject(
        "GET",
        "/drive/v3/files?",
        answer(200, &[], doc.to_string()),
        1,
    );
    // A Google document is never the target of a name (it is no file of the remote).
    let e = r.read(&p("doc"), None).await.err().unwrap();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.chain().len() < 1000, "{} bytes", e.chain().len());
}

#[tokio::test]
async fn a_modtime_out_of_range_is_refused_without_a_panic() {
    let emu = DriveEmulator::start().await;
    let r = DriveRemote::new(emu.config()).unwrap();
    // The last representable minute, at -01:00: past the last date in UTC.
    let t = time::macros::datetime!(9999-12-31 23:59:59 -1);
    let meta = WriteMeta {
        modtime: Some(t),
        ..Default::default()
    };
    let e = r.write(&p("f"), bytes_stream("x"), meta).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    r.write(&p("f"), bytes_stream("x"), WriteMeta::default())
        .await
        .unwrap();
    let e = r.set_modtime(&p("f"), t).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
}

#[tokio::test]
async fn extreme_sizes_and_dates_in_listings_do_not_panic() {
    let emu = DriveEmulator::start().await;
    let r = DriveRemote::new(emu.config()).unwrap();
    let files = json!({ "files": [
        { "id": "m1", "name": "max", "mimeType": "application/octet-stream",
          "size": "18446744073709551615", "modifiedTime": "9999-12-31T23:59:59.999Z" },
        { "id": "m2", "name": "far", "mimeType": "application/octet-stream",
          "size": "1", "modifiedTime": "+275760-09-13T00:00:00Z" },
    ] });
    emu.inject(
        "GET",
        "/drive/v3/files?",
        answer(200, &[], files.to_string()),
        1,
    );
    let entries = list_root(&r).await.unwrap();
    let max = entries.iter().find(|e| e.path.as_str() == "max").unwrap();
    assert_eq!(max.size, u64::MAX);
}

#[tokio::test]
async fn a_size_that_cannot_be_read_is_an_error_entry_not_an_empty_file() {
    let emu = DriveEmulator::start().await;
    let r = DriveRemote::new(emu.config()).unwrap();
    let files = json!({ "files": [
        { "id": "m1", "name": "ok", "mimeType": "application/octet-stream", "size": "5" },
        { "id": "m2", "name": "huge", "mimeType": "application/octet-stream",
          "size": "99999999999999999999999" },
    ] });
    emu.inject(
        "GET",
        "/drive/v3/files?",
        answer(200, &[], files.to_string()),
        1,
    );
    let e = list_root(&r).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
    assert!(e.to_string().contains("not a size"), "{e}");
}

#[tokio::test]
async fn a_partial_answer_for_other_bytes_or_a_short_body_is_an_error() {
    let emu = DriveEmulator::start().await;
    let r = DriveRemote::new(emu.config()).unwrap();
    r.write(&p("f"), bytes_stream(vec![7u8; 1000]), WriteMeta::default())
        .await
        .unwrap();
    // A 206 for bytes that start elsewhere than asked.
    emu.inject(
        "GET",
        "alt=media",
        answer(206, &[("Content-Range", "bytes 0-99/1000")], vec![0u8; 100]),
        1,
    );
    let e = r.read(&p("f"), Some(500..600)).await.err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
    // A 200 (Range ignored) whose body ends before the range does.
    emu.inject("GET", "alt=media", answer(200, &[], vec![0u8; 550]), 1);
    let s = r.read(&p("f"), Some(500..600)).await.unwrap();
    let items: Vec<_> = s.collect().await;
    let err = items.iter().find_map(|i| i.as_ref().err()).unwrap();
    assert!(err.is_retryable(), "{err}");
}

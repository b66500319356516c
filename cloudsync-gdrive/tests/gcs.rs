//! The GCS backend against fake-gcs-server: a sync that must notice a change that kept the
//! size, modtimes in rclone's and gsutil's metadata, and rclone reading ours. The conformance
//! suite runs against the server in `conformance.rs`, and live here when
//! `CLOUDSYNC_TEST_GCS_BUCKET` is set.

use std::process::Command;
use std::sync::Arc;

use cloudsync_core::ops::{self, SyncOptions};
use cloudsync_core::testkit::MemFs;
use cloudsync_core::testkit::server::require_program;
use cloudsync_core::{
    BackendFactory, HashKind, Remote, RemotePath, WriteMeta, bytes_stream, collect_bytes,
};
use cloudsync_gdrive::{GcsConfig, GcsFactory};
use common::{base_url, bucket, remote};
use time::OffsetDateTime;

mod common;

/// Uploads `data` as `name` with custom `metadata` through the JSON API directly (as another
/// tool would have written it).
async fn upload_with_metadata(bucket: &str, name: &str, data: &[u8], metadata: serde_json::Value) {
    let boundary = "b0undary-x";
    let mut body = format!(
        "--{boundary}\r\nContent-Type: application/json\r\n\r\n{}\r\n--{boundary}\r\n\
         Content-Type: application/octet-stream\r\n\r\n",
        serde_json::json!({ "name": name, "metadata": metadata })
    )
    .into_bytes();
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let url = format!("{}/upload/storage/v1/b/{bucket}/o", base_url());
    let res = reqwest::Client::new()
        .post(url)
        .query(&[("uploadType", "multipart")])
        .header(
            "Content-Type",
            format!("multipart/related; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "upload {name}: {}", res.status());
}

fn p(s: &str) -> RemotePath {
    RemotePath::new(s).unwrap()
}

/// A file whose content changed but whose size did not is uploaded again: by its modtime
/// (here older than before) and MD5, and with `--checksum` by MD5 alone even when the modtime
/// is the same. With the old size-only comparison both syncs would have skipped it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_that_keeps_the_size_is_synced() {
    let b = bucket("same-size").await;
    let dst: Arc<dyn Remote> = Arc::new(remote(&b, "dst").build().unwrap());
    let mem = MemFs::new("memfs://src");
    let src: Arc<dyn Remote> = Arc::new(mem.clone());
    let f = p("docs/report.txt");
    let t0 = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
    let put = |data: &'static str, t: OffsetDateTime| {
        let src = src.clone();
        let f = f.clone();
        async move {
            src.write(
                &f,
                bytes_stream(data),
                WriteMeta {
                    modtime: Some(t),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        }
    };
    let content = |r: Arc<dyn Remote>| {
        let f = f.clone();
        async move {
            collect_bytes(r.read(&f, None).await.unwrap())
                .await
                .unwrap()
        }
    };
    src.mkdir(&p("docs")).await.unwrap();
    put("version one", t0).await;
    let s = ops::sync(&src, &dst, &SyncOptions::default())
        .await
        .unwrap();
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert_eq!(content(dst.clone()).await, "version one");
    let listed = dst.stat(&f).await.unwrap();
    assert_eq!(listed.modtime, Some(t0), "the modtime was kept");
    let src_md5 = src.stat(&f).await.unwrap().hashes;
    assert_eq!(
        listed.hashes.get(HashKind::Md5),
        src_md5.get(HashKind::Md5),
        "the listing carries the MD5"
    );

    // Same size, older modtime.
    put("version two", t0 - time::Duration::hours(1)).await;
    let s = ops::sync(&src, &dst, &SyncOptions::default())
        .await
        .unwrap();
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert_eq!(content(dst.clone()).await, "version two");

    // Same size, same modtime: only `--checksum` can tell.
    put("version 3!!", t0 - time::Duration::hours(1)).await;
    let mut opts = SyncOptions::default();
    opts.compare.checksum = true;
    let s = ops::sync(&src, &dst, &opts).await.unwrap();
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert_eq!(content(dst.clone()).await, "version 3!!");
    let e = dst.stat(&f).await.unwrap();
    let want = src.stat(&f).await.unwrap();
    assert_eq!(e.hashes.get(HashKind::Md5), want.hashes.get(HashKind::Md5));
}

/// Objects written by rclone (`mtime`, nanoseconds) and gsutil (`goog-reserved-file-mtime`,
/// seconds) show those modtimes; `mtime` wins when both are there; an object with neither
/// shows its upload time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modtimes_written_by_rclone_and_gsutil_are_read() {
    let b = bucket("foreign-mtimes").await;
    let rclone_t = OffsetDateTime::from_unix_timestamp_nanos(1_614_834_367_123_456_789).unwrap();
    upload_with_metadata(
        &b,
        "r/rclone.txt",
        b"by rclone",
        serde_json::json!({ "mtime": "2021-03-04T05:06:07.123456789Z" }),
    )
    .await;
    upload_with_metadata(
        &b,
        "r/gsutil.txt",
        b"by gsutil",
        serde_json::json!({ "goog-reserved-file-mtime": "1234567890" }),
    )
    .await;
    upload_with_metadata(
        &b,
        "r/both.txt",
        b"by both",
        serde_json::json!({
            "mtime": "2021-03-04T05:06:07.123456789Z",
            "goog-reserved-file-mtime": "1234567890",
        }),
    )
    .await;
    let before = OffsetDateTime::now_utc() - time::Duration::minutes(5);
    upload_with_metadata(&b, "r/plain.txt", b"plain", serde_json::json!({})).await;
    let r = remote(&b, "r").build().unwrap();
    let gsutil_t = OffsetDateTime::from_unix_timestamp(1_234_567_890).unwrap();
    use futures::TryStreamExt;
    let listed: std::collections::BTreeMap<String, Option<OffsetDateTime>> = r
        .list(&RemotePath::root())
        .await
        .unwrap()
        .map_ok(|e| (e.path.as_str().to_owned(), e.modtime))
        .try_collect()
        .await
        .unwrap();
    for (name, want) in [
        ("rclone.txt", rclone_t),
        ("gsutil.txt", gsutil_t),
        ("both.txt", rclone_t),
    ] {
        assert_eq!(
            r.stat(&p(name)).await.unwrap().modtime,
            Some(want),
            "stat {name}"
        );
        assert_eq!(listed[name], Some(want), "listing of {name}");
    }
    let plain = r.stat(&p("plain.txt")).await.unwrap().modtime.unwrap();
    assert!(plain > before, "upload time {plain}");
    assert_eq!(listed["plain.txt"], Some(plain));
}

/// A modtime written with the file, and one set afterwards, survive to nanoseconds and are
/// stored in both rclone's and gsutil's key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modtime_round_trip_in_both_keys() {
    let b = bucket("mtime-round-trip").await;
    let r = remote(&b, "").build().unwrap();
    let a = OffsetDateTime::from_unix_timestamp_nanos(1_614_834_367_123_456_789).unwrap();
    let f = p("t/file.bin");
    let e = r
        .write(
            &f,
            bytes_stream("x".repeat(1000)),
            WriteMeta {
                modtime: Some(a),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(e.modtime, Some(a));
    assert_eq!(r.stat(&f).await.unwrap().modtime, Some(a));
    let raw = object_metadata(&b, "t/file.bin").await;
    assert_eq!(raw["mtime"], "2021-03-04T05:06:07.123456789Z");
    assert_eq!(raw["goog-reserved-file-mtime"], "1614834367");
    let later = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_000_000_001).unwrap();
    r.set_modtime(&f, later).await.unwrap();
    assert_eq!(r.stat(&f).await.unwrap().modtime, Some(later));
    let raw = object_metadata(&b, "t/file.bin").await;
    assert_eq!(raw["mtime"], "2023-11-14T22:13:20.000000001Z");
    assert_eq!(raw["goog-reserved-file-mtime"], "1700000000");
    // The content is untouched.
    let got = collect_bytes(r.read(&f, None).await.unwrap())
        .await
        .unwrap();
    assert_eq!(got.len(), 1000);
}

async fn object_metadata(bucket: &str, name: &str) -> serde_json::Value {
    let url = format!(
        "{}/storage/v1/b/{bucket}/o/{}",
        base_url(),
        name.replace('/', "%2F")
    );
    let v: serde_json::Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    v["metadata"].clone()
}

/// rclone, pointed at the same server, reads the modtime we wrote (its `mtime` key).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rclone_reads_our_modtimes() {
    let rclone = require_program("rclone", "apt-get install rclone");
    let b = bucket("rclone-reads").await;
    let r = remote(&b, "").build().unwrap();
    let a = OffsetDateTime::from_unix_timestamp_nanos(1_614_834_367_123_456_789).unwrap();
    r.write(
        &p("d/f.txt"),
        bytes_stream("for rclone"),
        WriteMeta {
            modtime: Some(a),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let conf = tempfile::NamedTempFile::new().unwrap();
    let endpoint = format!("{}/storage/v1/", base_url());
    let out = Command::new(rclone)
        .arg("--config")
        .arg(conf.path())
        .args(["lsjson", "--hash", "-R"])
        .arg(format!(":gcs,anonymous=true,endpoint='{endpoint}':{b}/d"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rclone: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let f = &v[0];
    assert_eq!(f["Path"], "f.txt", "{v}");
    let got = OffsetDateTime::parse(
        f["ModTime"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(got, a, "{v}");
    let ours = r.stat(&p("d/f.txt")).await.unwrap();
    assert_eq!(
        f["Hashes"]["md5"].as_str(),
        ours.hashes.get(HashKind::Md5),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn factory_opens_gs_urls_and_prefix_isolates() {
    let b = bucket("factory").await;
    upload_with_metadata(
        &b,
        "inner/root/a/b.txt",
        b"in prefix",
        serde_json::json!({}),
    )
    .await;
    upload_with_metadata(&b, "inner/rootless.txt", b"beside", serde_json::json!({})).await;
    let url = url::Url::parse(&format!("gs://{b}/inner/root?anonymous=true")).unwrap();
    let mut cfg = GcsFactory.config_from_url(&url).unwrap();
    cfg["base_url"] = serde_json::Value::String(base_url());
    let inner = GcsFactory.open(cfg).await.unwrap();
    assert_eq!(inner.describe(), format!("gs://{b}/inner/root"));
    let got = collect_bytes(inner.read(&p("a/b.txt"), None).await.unwrap())
        .await
        .unwrap();
    assert_eq!(&got[..], b"in prefix");
    use futures::TryStreamExt;
    let names: Vec<String> = inner
        .list(&RemotePath::root())
        .await
        .unwrap()
        .map_ok(|e| e.path.as_str().to_owned())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(names, ["a"]);
}

/// Object names that cannot be paths are one error entry each; the rest of the listing stands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undescribable_names_are_error_entries() {
    let b = bucket("bad-names").await;
    for name in ["x/good.txt", "x/a//b.txt", "x/../up.txt"] {
        upload_with_metadata(&b, name, b"1", serde_json::json!({})).await;
    }
    let r = remote(&b, "x").build().unwrap();
    let items: Vec<_> =
        futures::StreamExt::collect(r.list(&RemotePath::root()).await.unwrap()).await;
    let good: Vec<_> = items
        .iter()
        .filter_map(|i| i.as_ref().ok())
        .map(|e| e.path.as_str().to_owned())
        .collect();
    assert_eq!(good, ["a", "good.txt"], "{items:?}");
    let bad: Vec<_> = items.iter().filter_map(|i| i.as_ref().err()).collect();
    assert_eq!(bad.len(), 1, "{items:?}");
    assert_eq!(
        bad[0].kind(),
        cloudsync_core::ErrorKind::InvalidInput,
        "{bad:?}"
    );
    // In `a`, the empty name between the two slashes.
    let items: Vec<_> = futures::StreamExt::collect(r.list(&p("a")).await.unwrap()).await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(
        items[0].as_ref().unwrap_err().kind(),
        cloudsync_core::ErrorKind::InvalidInput
    );
}

/// Live run against real Cloud Storage: `CLOUDSYNC_TEST_GCS_BUCKET` (a scratch bucket),
/// optional `CLOUDSYNC_TEST_GCS_SERVICE_ACCOUNT_FILE` (else Application Default Credentials).
/// Also checks what the emulator cannot: `ifGenerationMatch=0` on a resumable upload refuses
/// an existing object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_gcs() {
    let Ok(b) = std::env::var("CLOUDSYNC_TEST_GCS_BUCKET") else {
        eprintln!("notice: live_gcs skipped: set CLOUDSYNC_TEST_GCS_BUCKET to run it");
        return;
    };
    let mut cfg = GcsConfig::new(b).with_prefix(format!("cloudsync-test-{}", fastrand_suffix()));
    cfg.service_account_file = std::env::var("CLOUDSYNC_TEST_GCS_SERVICE_ACCOUNT_FILE").ok();
    let r = cfg.clone().with_upload_cutoff(0).build().unwrap();
    let f = p("exclusive.txt");
    r.write_if_absent(&f, bytes_stream("first"), WriteMeta::default())
        .await
        .unwrap();
    let e = r
        .write_if_absent(&f, bytes_stream("second"), WriteMeta::default())
        .await
        .unwrap_err();
    assert_eq!(
        e.kind(),
        cloudsync_core::ErrorKind::ConditionNotMatch,
        "{e}"
    );
    r.remove_file(&f).await.unwrap();
    cloudsync_core::testkit::conformance(Arc::new(cfg.build().unwrap())).await;
}

fn fastrand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// A scripted resumable-upload endpoint on 127.0.0.1 (fake-gcs-server cannot be made to fail
/// a chunk, and it commits an object on a status query; see docs.md), speaking the protocol of
/// Cloud Storage's "Perform resumable uploads" guide: `308` with `Range: bytes=0-N` for what it
/// holds, `200` with the object when the last byte arrived.
mod scripted {
    use std::sync::{Arc, Mutex};

    use base64::Engine as _;
    use md5::Digest as _;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    #[derive(Default, Debug)]
    pub(super) struct State {
        /// Bytes the session holds.
        pub(super) data: Vec<u8>,
        /// Chunk PUTs seen (status queries not counted).
        pub(super) puts: usize,
        /// Status queries (`bytes */…`).
        pub(super) queries: usize,
        /// These chunk PUTs (1-based) break after half their body, keeping nothing.
        pub(super) break_puts: Vec<usize>,
        /// Every chunk PUT from this one on breaks.
        pub(super) break_from: Option<usize>,
        /// Chunks are answered 308 but not kept.
        pub(super) stall: bool,
        /// The final object reports a wrong MD5.
        pub(super) bad_md5: bool,
        /// Request lines of DELETEs.
        pub(super) deletes: Vec<String>,
        /// Answers to `objects.list`: page `n` answers `pageToken=n` (no token = page 0).
        pub(super) list_pages: Vec<serde_json::Value>,
        /// `objects.list` requests seen.
        pub(super) lists: usize,
        /// Bodies of token requests (`POST /token`); the N-th is answered `tok-N`.
        pub(super) token_requests: Vec<String>,
        /// When set, `objects.list` answers 401 unless `Authorization: Bearer <this>`.
        pub(super) accept_token: Option<String>,
        /// `Authorization` headers of `objects.list` requests.
        pub(super) list_auth: Vec<String>,
        /// The object name the session was started for.
        pub(super) name: String,
        /// `Metadata-Flavor` headers of metadata-server token requests.
        pub(super) metadata_requests: Vec<String>,
    }

    pub(super) type Shared = Arc<Mutex<State>>;

    pub(super) async fn start(state: Shared) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let b = base.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(serve(conn, state.clone(), b.clone()));
            }
        });
        base
    }

    async fn serve(mut conn: TcpStream, state: Shared, base: String) {
        let mut buf = Vec::new();
        let mut tmp = [0u8; 65536];
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match conn.read(&mut tmp).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let line = head.lines().next().unwrap_or("").to_owned();
        let header = |name: &str| {
            head.lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
                })
                .unwrap_or_default()
        };
        let len: usize = header("content-length").parse().unwrap_or(0);
        let range = header("content-range");
        let is_chunk = line.starts_with("PUT") && !range.starts_with("bytes */");
        let breaks = is_chunk && {
            let mut s = state.lock().unwrap();
            s.puts += 1;
            let n = s.puts;
            s.break_puts.contains(&n) || s.break_from.is_some_and(|f| n >= f)
        };
        let want = if breaks { len / 2 } else { len };
        while buf.len() < head_end + want {
            match conn.read(&mut tmp).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        }
        if breaks {
            // The connection breaks mid-body: nothing of this chunk is kept.
            return;
        }
        let body = buf[head_end..head_end + len].to_vec();
        let auth = header("authorization");
        if line.starts_with("GET /computeMetadata/") {
            state
                .lock()
                .unwrap()
                .metadata_requests
                .push(header("metadata-flavor"));
        }
        let (status, headers, json) = answer(&line, &range, &auth, body, &state, &base);
        let mut out = format!(
            "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {}\r\n",
            json.len()
        );
        for h in headers {
            out.push_str(&h);
            out.push_str("\r\n");
        }
        out.push_str("\r\n");
        out.push_str(&json);
        let _ = conn.write_all(out.as_bytes()).await;
        let _ = conn.shutdown().await;
    }

    fn answer(
        line: &str,
        range: &str,
        auth: &str,
        body: Vec<u8>,
        state: &Shared,
        base: &str,
    ) -> (&'static str, Vec<String>, String) {
        let mut s = state.lock().unwrap();
        if line.starts_with("POST") && line.contains("uploadType=resumable") {
            let target = line.split(' ').nth(1).unwrap_or("");
            s.name = url::Url::parse(&format!("http://x{target}"))
                .ok()
                .and_then(|u| {
                    u.query_pairs()
                        .find(|(k, _)| k == "name")
                        .map(|(_, v)| v.into_owned())
                })
                .unwrap_or_default();
            return (
                "200 OK",
                vec![format!("Location: {base}/session?upload_id=xyz")],
                "{}".into(),
            );
        }
        if line.starts_with("GET") && line.contains("alt=media") {
            // Ignores `Range` (allowed: a server may answer 200 with the whole object).
            let whole: String = s.data.iter().map(|&b| b as char).collect();
            return ("200 OK", vec![], whole);
        }
        if line.starts_with("GET /computeMetadata/") {
            let t = serde_json::json!({ "access_token": "tok-2", "expires_in": 3599 });
            return ("200 OK", vec![], t.to_string());
        }
        if line.starts_with("POST /token") {
            s.token_requests
                .push(String::from_utf8_lossy(&body).to_string());
            let n = s.token_requests.len();
            let t = serde_json::json!({ "access_token": format!("tok-{n}"), "expires_in": 3600 });
            return ("200 OK", vec![], t.to_string());
        }
        if line.starts_with("GET") && line.contains("/o?") {
            s.lists += 1;
            s.list_auth.push(auth.to_owned());
            if let Some(want) = &s.accept_token {
                if auth != format!("Bearer {want}") {
                    return ("401 Unauthorized", vec![], "{}".into());
                }
            }
            let n: usize = line
                .split(['?', '&', ' '])
                .find_map(|kv| kv.strip_prefix("pageToken="))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let page = s.list_pages.get(n).cloned().unwrap_or_default();
            return ("200 OK", vec![], page.to_string());
        }
        if line.starts_with("DELETE") {
            s.deletes.push(line.to_owned());
            return ("204 No Content", vec![], String::new());
        }
        if !line.starts_with("PUT") {
            return ("400 Bad Request", vec![], String::new());
        }
        let spec = range.strip_prefix("bytes ").unwrap_or("");
        let (span, total) = spec.split_once('/').unwrap_or(("", "*"));
        if span == "*" {
            s.queries += 1;
        } else if !s.stall {
            let start: usize = span.split('-').next().unwrap().parse().unwrap();
            // Bytes the session already holds are skipped, new ones appended.
            let have = s.data.len();
            assert!(
                start <= have,
                "chunk starts at {start}, session holds {have}"
            );
            let skip = have - start;
            if skip < body.len() {
                s.data.extend_from_slice(&body[skip..]);
            }
        }
        let held = s.data.len();
        if total != "*" && total.parse::<usize>().ok() == Some(held) {
            let mut md5 = md5::Md5::digest(&s.data).to_vec();
            if s.bad_md5 {
                md5[0] ^= 1;
            }
            let obj = serde_json::json!({
                "name": s.name,
                "size": held.to_string(),
                "md5Hash": base64::engine::general_purpose::STANDARD.encode(md5),
                "generation": "7",
            });
            return ("200 OK", vec![], obj.to_string());
        }
        let mut h = Vec::new();
        if held > 0 {
            h.push(format!("Range: bytes=0-{}", held - 1));
        }
        ("308 Resume Incomplete", h, String::new())
    }
}

async fn scripted_upload(
    state: scripted::State,
    size: usize,
) -> (
    cloudsync_core::Result<cloudsync_core::Entry>,
    scripted::Shared,
    Vec<u8>,
) {
    let shared = Arc::new(std::sync::Mutex::new(state));
    let base = scripted::start(shared.clone()).await;
    let r = GcsConfig::new("bkt")
        .with_emulator(base)
        .with_chunk_size(256 * 1024)
        .with_upload_cutoff(256 * 1024)
        .build()
        .unwrap();
    let data: Vec<u8> = (0..size).map(|i| (i * 7 % 253) as u8).collect();
    let chunks: Vec<cloudsync_core::Result<bytes::Bytes>> = data
        .chunks(100_003)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    let res = r
        .write(
            &p("up.bin"),
            futures::StreamExt::boxed(futures::stream::iter(chunks)),
            WriteMeta {
                size: Some(size as u64),
                ..Default::default()
            },
        )
        .await;
    (res, shared, data)
}

/// A chunk whose connection breaks is resumed from the offset the session reports, and the
/// object holds exactly what was sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_chunk_is_resumed_from_the_committed_offset() {
    let state = scripted::State {
        break_puts: vec![2, 5],
        ..Default::default()
    };
    let (res, shared, data) = scripted_upload(state, 1024 * 1024 + 5).await;
    let e = res.unwrap();
    assert_eq!(e.size, data.len() as u64);
    let s = shared.lock().unwrap();
    assert!(s.data == data, "the session holds other bytes");
    assert_eq!(s.queries, 2, "one status query per broken chunk");
    assert!(s.deletes.is_empty(), "{:?}", s.deletes);
}

/// A chunk that keeps failing gives up after a bounded number of attempts and cancels the
/// session; nothing is committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_that_keeps_failing_gives_up_and_cancels() {
    let state = scripted::State {
        break_from: Some(2),
        ..Default::default()
    };
    let (res, shared, _) = scripted_upload(state, 1024 * 1024).await;
    let e = res.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    let s = shared.lock().unwrap();
    assert!(s.puts <= 2 + 5, "{} chunk requests", s.puts);
    assert_eq!(
        s.deletes.len(),
        1,
        "the session is cancelled: {:?}",
        s.deletes
    );
    assert!(s.deletes[0].contains("/session"), "{:?}", s.deletes);
}

/// A session that answers 308 without ever moving its offset is given up on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_never_advances_is_bounded() {
    let state = scripted::State {
        stall: true,
        ..Default::default()
    };
    let (res, shared, _) = scripted_upload(state, 1024 * 1024).await;
    let e = res.unwrap_err();
    assert!(e.message().contains("stays at byte"), "{e}");
    assert!(shared.lock().unwrap().puts < 10);
}

/// An object whose MD5 is not that of what was sent is removed again (that generation only)
/// and the write fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_that_is_not_what_was_sent_is_removed() {
    let state = scripted::State {
        bad_md5: true,
        ..Default::default()
    };
    let (res, shared, _) = scripted_upload(state, 600 * 1024).await;
    let e = res.unwrap_err();
    assert!(e.message().contains("not what was sent"), "{e}");
    let s = shared.lock().unwrap();
    assert_eq!(s.deletes.len(), 1, "{:?}", s.deletes);
    assert!(
        s.deletes[0].contains("/storage/v1/b/bkt/o/up.bin")
            && s.deletes[0].contains("ifGenerationMatch=7"),
        "{:?}",
        s.deletes
    );
}

async fn scripted_listing(
    pages: Vec<serde_json::Value>,
) -> (Vec<cloudsync_core::Result<cloudsync_core::Entry>>, usize) {
    let shared = Arc::new(std::sync::Mutex::new(scripted::State {
        list_pages: pages,
        ..Default::default()
    }));
    let base = scripted::start(shared.clone()).await;
    let r = GcsConfig::new("bkt")
        .with_prefix("root")
        .with_emulator(base)
        .build()
        .unwrap();
    let items = match r.list(&RemotePath::root()).await {
        Ok(s) => futures::StreamExt::collect(s).await,
        Err(e) => vec![Err(e)],
    };
    let lists = shared.lock().unwrap().lists;
    (items, lists)
}

fn obj(name: &str) -> serde_json::Value {
    serde_json::json!({ "name": name, "size": "1", "updated": "2024-01-01T00:00:00Z" })
}

/// Empty and short pages are not the end; the listing follows the tokens to the last page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_follows_tokens_past_empty_pages() {
    let (items, lists) = scripted_listing(vec![
        serde_json::json!({ "items": [obj("root/a")], "nextPageToken": "1" }),
        serde_json::json!({ "nextPageToken": "2" }),
        serde_json::json!({ "prefixes": ["root/d/"], "items": [obj("root/b")] }),
    ])
    .await;
    let names: Vec<String> = items
        .iter()
        .map(|i| i.as_ref().unwrap().path.as_str().to_owned())
        .collect();
    assert_eq!(names, ["a", "d", "b"]);
    assert_eq!(lists, 3);
}

/// A prefix whose pages are all empty does not exist: `NotFound`, never an empty directory (a
/// sync would otherwise take a missing source for an empty one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefix_with_only_empty_pages_is_not_found() {
    let (items, _) = scripted_listing(vec![
        serde_json::json!({ "nextPageToken": "1" }),
        serde_json::json!({}),
    ])
    .await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(
        items[0].as_ref().unwrap_err().kind(),
        cloudsync_core::ErrorKind::NotFound
    );
    let (items, lists) = scripted_listing(vec![serde_json::json!({})]).await;
    assert_eq!(lists, 1);
    assert_eq!(
        items[0].as_ref().unwrap_err().kind(),
        cloudsync_core::ErrorKind::NotFound
    );
}

/// Page tokens that come round again end the listing with an error, not a loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_cycle_is_an_error() {
    let (items, lists) = scripted_listing(vec![
        serde_json::json!({ "items": [obj("root/a")], "nextPageToken": "1" }),
        serde_json::json!({ "items": [obj("root/b")], "nextPageToken": "2" }),
        serde_json::json!({ "items": [obj("root/c")], "nextPageToken": "1" }),
    ])
    .await;
    let last = items.last().unwrap().as_ref().unwrap_err();
    assert_eq!(last.kind(), cloudsync_core::ErrorKind::Protocol, "{last}");
    assert!(lists <= 4, "{lists} list requests");
}

/// A server that ignores `Range` and answers 200 with the whole object: the read still gives
/// exactly the bytes asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_the_server_ignored_is_cut_here() {
    let shared = Arc::new(std::sync::Mutex::new(scripted::State {
        data: b"0123456789abcdef".to_vec(),
        ..Default::default()
    }));
    let base = scripted::start(shared).await;
    let r = GcsConfig::new("bkt").with_emulator(base).build().unwrap();
    let got = collect_bytes(r.read(&p("f"), Some(3..7)).await.unwrap())
        .await
        .unwrap();
    assert_eq!(&got[..], b"3456");
    let got = collect_bytes(r.read(&p("f"), Some(10..100)).await.unwrap())
        .await
        .unwrap();
    assert_eq!(&got[..], b"abcdef");
}

/// A config for `base` authenticating with a fresh service-account key file (kept in the
/// returned directory) whose `token_uri` is `{base}/token`; and the key's PEM.
fn service_account_config(base: &str) -> (GcsConfig, tempfile::TempDir, String) {
    use base64::Engine as _;
    let key = {
        use aws_lc_rs::encoding::AsDer;
        let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&key).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
        format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n")
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sa.json");
    std::fs::write(
        &file,
        serde_json::json!({
            "type": "service_account",
            "client_email": "sync@project.iam.gserviceaccount.com",
            "private_key": key,
            "token_uri": format!("{base}/token"),
        })
        .to_string(),
    )
    .unwrap();
    let mut cfg = GcsConfig::new("bkt").with_prefix("root");
    cfg.base_url = Some(base.to_owned());
    cfg.service_account_file = Some(file.display().to_string());
    (cfg, dir, key)
}

/// With a service-account key, requests carry a bearer token from the JWT grant (scope
/// `devstorage.read_write`, audience the token endpoint), and a token the service refuses is
/// replaced once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_account_tokens_are_used_and_refreshed_on_401() {
    use base64::Engine as _;
    let shared = Arc::new(std::sync::Mutex::new(scripted::State {
        list_pages: vec![serde_json::json!({ "items": [obj("root/a")] })],
        accept_token: Some("tok-2".into()),
        ..Default::default()
    }));
    let base = scripted::start(shared.clone()).await;
    let (cfg, _dir, _key) = service_account_config(&base);
    let token_url = format!("{base}/token");
    let r = cfg.build().unwrap();
    let shown = format!("{r:?}{cfg:?}");
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");
    let names: Vec<String> = futures::TryStreamExt::try_collect(futures::TryStreamExt::map_ok(
        r.list(&RemotePath::root()).await.unwrap(),
        |e| e.path.as_str().to_owned(),
    ))
    .await
    .unwrap();
    assert_eq!(names, ["a"]);
    let s = shared.lock().unwrap();
    assert_eq!(s.list_auth, ["Bearer tok-1", "Bearer tok-2"]);
    assert_eq!(s.token_requests.len(), 2);
    let form: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(s.token_requests[0].as_bytes())
            .into_owned()
            .collect();
    assert_eq!(
        form["grant_type"],
        "urn:ietf:params:oauth:grant-type:jwt-bearer"
    );
    let claims = form["assertion"].split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(claims)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        claims["scope"],
        "https://www.googleapis.com/auth/devstorage.read_write"
    );
    assert_eq!(claims["aud"], token_url.as_str());
    assert_eq!(claims["iss"], "sync@project.iam.gserviceaccount.com");
}

/// Content whose MD5 is not the one announced in `WriteMeta` is refused before anything is
/// committed, in one request and in a resumable session; the old object stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_that_is_not_the_announced_hash_replaces_nothing() {
    let b = bucket("announced-hash").await;
    let r = remote(&b, "")
        .with_chunk_size(256 * 1024)
        .with_upload_cutoff(256 * 1024)
        .build()
        .unwrap();
    let f = p("h/file.bin");
    r.write(&f, bytes_stream("old"), WriteMeta::default())
        .await
        .unwrap();
    for size in [1000usize, 700 * 1024] {
        let meta = WriteMeta {
            size: Some(size as u64),
            hashes: cloudsync_core::Hashes::default()
                .with(HashKind::Md5, "00112233445566778899aabbccddeeff"),
            ..Default::default()
        };
        let e = r
            .write(&f, bytes_stream(vec![b'n'; size]), meta)
            .await
            .unwrap_err();
        assert_eq!(
            e.kind(),
            cloudsync_core::ErrorKind::ConditionNotMatch,
            "{size}: {e}"
        );
        let got = collect_bytes(r.read(&f, None).await.unwrap())
            .await
            .unwrap();
        assert_eq!(&got[..], b"old", "{size}");
    }
}

/// `write_if_absent` creates a missing object and refuses an existing one (fake-gcs-server
/// checks `ifGenerationMatch=0` on multipart uploads; for resumable ones see `live_gcs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_if_absent_refuses_an_existing_object() {
    let b = bucket("if-absent").await;
    let r = remote(&b, "").build().unwrap();
    let f = p("lock/owner");
    r.write_if_absent(&f, bytes_stream("first"), WriteMeta::default())
        .await
        .unwrap();
    let e = r
        .write_if_absent(&f, bytes_stream("second"), WriteMeta::default())
        .await
        .unwrap_err();
    assert_eq!(
        e.kind(),
        cloudsync_core::ErrorKind::ConditionNotMatch,
        "{e}"
    );
    let got = collect_bytes(r.read(&f, None).await.unwrap())
        .await
        .unwrap();
    assert_eq!(&got[..], b"first");
}

/// No access token, private key or upload-session URI reaches a log line (at TRACE), an error
/// or a `Debug` string, through token fetches, a resumed upload and a failed one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_a_log_an_error_or_a_debug_string() {
    let logs = cloudsync_core::testkit::capture_logs();
    let shared = Arc::new(std::sync::Mutex::new(scripted::State {
        list_pages: vec![serde_json::json!({ "items": [obj("root/a")] })],
        accept_token: Some("tok-2".into()),
        break_puts: vec![2],
        ..Default::default()
    }));
    let base = scripted::start(shared.clone()).await;
    let (cfg, _dir, key) = service_account_config(&base);
    // Errors are shown as the registry's layers give them: naming the remote.
    let r = cloudsync_core::ErrorContext::wrap(Arc::new(
        cfg.clone()
            .with_chunk_size(256 * 1024)
            .with_upload_cutoff(256 * 1024)
            .build()
            .unwrap(),
    ));
    let mut shown = vec![format!("{r:?}"), format!("{cfg:?}")];
    // A listing (token fetch, a 401, a refresh) and a resumed upload.
    let n = futures::StreamExt::count(r.list(&RemotePath::root()).await.unwrap()).await;
    assert_eq!(n, 1);
    let data = vec![7u8; 600 * 1024];
    r.write(&p("up.bin"), bytes_stream(data), WriteMeta::default())
        .await
        .unwrap();
    assert_eq!(shared.lock().unwrap().queries, 1, "the upload was resumed");
    // An upload that fails for good.
    {
        let mut s = shared.lock().unwrap();
        s.data.clear();
        s.break_from = Some(s.puts + 1);
    }
    let e = r
        .write(
            &p("up.bin"),
            bytes_stream(vec![1u8; 600 * 1024]),
            WriteMeta::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.remote(), Some(r.describe().as_str()), "{e}");
    shown.push(format!("{e}"));
    shown.push(format!("{e:?}"));
    shown.push(e.chain());
    shown.push(logs.text());
    let key_body: String = key.lines().nth(1).unwrap().chars().take(40).collect();
    for text in &shown {
        for secret in [
            "tok-1",
            "tok-2",
            "upload_id",
            "xyz",
            key_body.as_str(),
            "PRIVATE KEY",
        ] {
            assert!(!text.contains(secret), "{secret:?} shown in: {text}");
        }
    }
    assert!(logs.text().contains("asking the session where it stands"));
}

/// Application Default Credentials: a gcloud user login named by
/// `GOOGLE_APPLICATION_CREDENTIALS` (refresh-token grant), and with no file at all the
/// metadata server (`Metadata-Flavor: Google`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn application_default_credentials() {
    let shared = Arc::new(std::sync::Mutex::new(scripted::State {
        list_pages: vec![serde_json::json!({ "items": [obj("root/a")] })],
        accept_token: Some("tok-1".into()),
        ..Default::default()
    }));
    let base = scripted::start(shared.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let login = dir.path().join("adc.json");
    std::fs::write(
        &login,
        serde_json::json!({
            "type": "authorized_user",
            "client_id": "cid.apps.googleusercontent.com",
            "client_secret": "csecret",
            "refresh_token": "1//refresh-me",
        })
        .to_string(),
    )
    .unwrap();
    // SAFETY: nextest runs this test alone in its process; nothing else reads the environment.
    unsafe {
        std::env::set_var("GOOGLE_APPLICATION_CREDENTIALS", &login);
        std::env::set_var("HOME", dir.path());
        std::env::remove_var("CLOUDSDK_CONFIG");
    }
    let mut cfg = GcsConfig::new("bkt").with_prefix("root");
    cfg.base_url = Some(base.clone());
    cfg.token_url = Some(format!("{base}/token"));
    let r = cfg.build().unwrap();
    let n = futures::StreamExt::count(r.list(&RemotePath::root()).await.unwrap()).await;
    assert_eq!(n, 1);
    {
        let s = shared.lock().unwrap();
        assert_eq!(s.token_requests.len(), 1);
        let form: std::collections::HashMap<String, String> =
            url::form_urlencoded::parse(s.token_requests[0].as_bytes())
                .into_owned()
                .collect();
        assert_eq!(form["grant_type"], "refresh_token");
        assert_eq!(form["refresh_token"], "1//refresh-me");
        assert_eq!(form["client_id"], "cid.apps.googleusercontent.com");
    }

    // No file anywhere: the metadata server.
    unsafe { std::env::remove_var("GOOGLE_APPLICATION_CREDENTIALS") };
    shared.lock().unwrap().accept_token = Some("tok-2".into());
    let mut cfg = GcsConfig::new("bkt").with_prefix("root");
    cfg.base_url = Some(base.clone());
    cfg.token_url = Some(format!(
        "{base}/computeMetadata/v1/instance/service-accounts/default/token"
    ));
    let r = cfg.build().unwrap();
    let n = futures::StreamExt::count(r.list(&RemotePath::root()).await.unwrap()).await;
    assert_eq!(n, 1);
    assert_eq!(shared.lock().unwrap().metadata_requests, ["Google"]);
}

/// What a hostile or broken service sends in a listing: a size that is not one is one bad entry
/// (the rest stands); a page that is not JSON fails the listing (never an empty directory).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_listing_is_an_error_never_an_empty_directory() {
    let (items, _) = scripted_listing(vec![serde_json::json!({ "items": [
        obj("root/ok"),
        { "name": "root/bad", "size": "-5" },
        { "name": "root/huge", "size": "99999999999999999999999" },
    ] })])
    .await;
    let ok: Vec<_> = items.iter().filter_map(|i| i.as_ref().ok()).collect();
    assert_eq!(ok.len(), 1, "{items:?}");
    let bad: Vec<_> = items.iter().filter_map(|i| i.as_ref().err()).collect();
    assert_eq!(bad.len(), 2, "{items:?}");
    assert!(
        bad.iter()
            .all(|e| e.kind() == cloudsync_core::ErrorKind::InvalidInput)
    );

    let (items, _) = scripted_listing(vec![serde_json::json!("not an object list")]).await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(
        items[0].as_ref().unwrap_err().kind(),
        cloudsync_core::ErrorKind::Protocol
    );
}

/// Through the layers the registry puts around every remote it opens, errors name the
/// operation, the remote (as described) and the path, though the backend itself names at most
/// the path: a missing object's `stat`, `read` and `copy` (naming the source), a missing
/// directory's listings (one level and the whole tree).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_layers_name_operation_remote_and_path() {
    use cloudsync_core::testkit::{assert_error_names, assert_missing_paths_named};
    use cloudsync_core::{ErrorKind, Registry};
    let b = bucket("ctx").await;
    let remote = Registry::new().layered(Arc::new(remote(&b, "ctx").build().unwrap()));
    let described = assert_missing_paths_named(&remote).await;
    assert_eq!(described, format!("gs://{b}/ctx"));
    let missing = ErrorKind::NotFound;
    // The backend names the source a copy could not find, not the target.
    let e = remote
        .copy(&p("missing.txt"), &p("other.txt"))
        .await
        .unwrap_err();
    assert_error_names(&e, missing, "copy", &described, "missing.txt");
    let e = remote.list_recursive(&p("nodir")).await.err().unwrap();
    assert_error_names(&e, missing, "list", &described, "nodir");
}

/// What fake-gcs-server does with the requests of a resumable session that the Cloud Storage
/// guide describes otherwise (the reason for `common/session_shim.rs`). Each assertion is a
/// deviation; if one starts failing, fake-gcs-server was fixed and the front can shrink.
///
/// - The status query ("Check the status of a resumable upload": `PUT` with
///   `Content-Range: bytes */SIZE` and no body, answered `308` with `Range`) finishes the
///   upload with the bytes held: 200 and a truncated object.
/// - `DELETE` on the session URI ("Cancel an upload") answers 499 but the session still takes
///   chunks.
/// - A chunk is appended whole whatever its start offset.
/// - It does not check a `md5Hash` given when the session opens against the content.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_gcs_server_session_deviations() {
    let b = bucket("session-deviations").await;
    let base = base_url();
    let http = reqwest::Client::new();
    let open = |name: &'static str, resource: serde_json::Value| {
        let (http, base, b) = (http.clone(), base.clone(), b.clone());
        async move {
            let res = http
                .post(format!("{base}/upload/storage/v1/b/{b}/o"))
                .query(&[("uploadType", "resumable"), ("name", name)])
                .json(&resource)
                .send()
                .await
                .unwrap();
            assert!(res.status().is_success(), "open: {}", res.status());
            res.headers()["location"].to_str().unwrap().to_owned()
        }
    };
    let chunk = vec![7u8; 256 * 1024];
    let put = |uri: String, range: String, body: Vec<u8>| {
        let http = http.clone();
        async move {
            http.put(uri)
                .header("Content-Range", range)
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    let size_of = |name: &'static str| {
        let (http, base, b) = (http.clone(), base.clone(), b.clone());
        async move {
            let res = http
                .get(format!("{base}/storage/v1/b/{b}/o/{name}"))
                .send()
                .await
                .unwrap();
            if !res.status().is_success() {
                return None;
            }
            let v: serde_json::Value = res.json().await.unwrap();
            v["size"].as_str().map(str::to_owned)
        }
    };

    // A status query finishes the upload.
    let uri = open("status.bin", serde_json::json!({ "name": "status.bin" })).await;
    let r = put(uri.clone(), "bytes 0-262143/*".into(), chunk.clone()).await;
    assert_eq!(r.status().as_u16(), 308);
    let r = put(uri.clone(), "bytes */1048576".into(), Vec::new()).await;
    assert_eq!(r.status().as_u16(), 200, "status query");
    assert_eq!(size_of("status.bin").await.as_deref(), Some("262144"));

    // DELETE answers 499 and leaves the session open.
    let uri = open("cancel.bin", serde_json::json!({ "name": "cancel.bin" })).await;
    let r = http.delete(&uri).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 499);
    let r = put(uri.clone(), "bytes 0-262143/262144".into(), chunk.clone()).await;
    assert_eq!(r.status().as_u16(), 200, "a cancelled session took a chunk");

    // The start offset is not looked at: the same chunk twice is stored twice.
    let uri = open("twice.bin", serde_json::json!({ "name": "twice.bin" })).await;
    put(uri.clone(), "bytes 0-262143/*".into(), chunk.clone()).await;
    let r = put(uri.clone(), "bytes 0-262143/524288".into(), chunk.clone()).await;
    assert_eq!(r.status().as_u16(), 308);
    assert_eq!(size_of("twice.bin").await, None);
    let r = put(
        uri.clone(),
        "bytes 262144-524287/524288".into(),
        chunk.clone(),
    )
    .await;
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(size_of("twice.bin").await.as_deref(), Some("786432"));

    // A wrong md5Hash in the resource is not checked.
    let uri = open(
        "md5.bin",
        serde_json::json!({ "name": "md5.bin", "md5Hash": "AAAAAAAAAAAAAAAAAAAAAA==" }),
    )
    .await;
    let r = put(uri, "bytes 0-262143/262144".into(), chunk.clone()).await;
    assert_eq!(r.status().as_u16(), 200, "a wrong md5Hash was refused");
}

/// The session checks of the testkit on Cloud Storage (through the status-query front): an
/// upload cut part-way continues from the session in a retry and in a later run with the same
/// record file, a changed source is uploaded whole, a cancelled session is replaced; no
/// session stays open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_resume_through_sessions() {
    let b = bucket("sessions").await;
    let (cfg, shim) = common::remote_with_sessions(&b, "resume").await;
    let remote: Arc<dyn Remote> = Arc::new(cfg.build().unwrap());
    // Each check in a directory of its own, as the conformance suite runs them.
    let sub = |d: &str| cloudsync_core::Prefix::wrap(remote.clone(), p(d));
    cloudsync_core::testkit::check_session_resume(&sub("resume"))
        .await
        .unwrap();
    cloudsync_core::testkit::check_session_stale(&sub("stale"))
        .await
        .unwrap();
    assert!(shim.status_queries() >= 2, "{}", shim.status_queries());
    assert_eq!(shim.open_sessions(), 0, "sessions left open");
}

/// A token from a record file is only used against the upload endpoint's own host: one that
/// names another host (a tampered file) is refused before any byte goes out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_token_for_another_host_is_refused() {
    let b = bucket("session-tokens").await;
    let remote = remote(&b, "t").build().unwrap();
    let t = cloudsync_core::SessionToken::new("gcs1 10 http://198.51.100.7:9/upload?upload_id=x");
    let e = remote.session_offset(&t).await.unwrap_err();
    assert_eq!(e.kind(), cloudsync_core::ErrorKind::InvalidInput, "{e}");
    assert!(!e.to_string().contains("198.51.100.7"), "{e}");
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
    assert_eq!(e.kind(), cloudsync_core::ErrorKind::InvalidInput, "{e}");
    assert!(
        matches!(remote.stat(&p("a.bin")).await, Err(e) if e.kind() == cloudsync_core::ErrorKind::NotFound)
    );
}

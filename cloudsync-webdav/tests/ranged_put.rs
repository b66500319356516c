//! Resumable uploads by ranged `PUT` (`write_at`): against Apache mod_dav, which takes them,
//! including a connection cut in the middle of a chunk; and against an in-memory server
//! (`common/memdav.rs`) that takes them, refuses them, ignores them (storing the body as the
//! whole file), or honours the probe and ignores them later. Whatever the server does, the
//! result is exact and nothing partial or of ours is left behind.

mod common;

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use bytes::Bytes;
use cloudsync_core::testkit::{ConformanceOptions, CuttingProxy, run_check};
use cloudsync_core::{
    ByteStream, ErrorKind, Prefix, Remote, RemotePath, WriteMeta, collect_bytes, is_temp_name,
    memory, ops,
};
use cloudsync_webdav::{MIN_CHUNK_SIZE, Vendor, WebdavConfig};
use common::memdav::{self, MemDav, Ranges};
use common::{DavServer, PASSWORD, USER};
use futures::StreamExt;

static APACHE: LazyLock<DavServer> = LazyLock::new(common::start_apache);

const MIB: usize = 1024 * 1024;

fn p(s: &str) -> RemotePath {
    RemotePath::new(s).unwrap()
}

/// `len` bytes that differ from one position to the next.
fn data(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u64).wrapping_mul(2654435761).rotate_left(seed as u32) as u8 ^ seed)
        .collect::<Vec<u8>>()
        .into()
}

/// `data` as a stream of 64 KiB pieces.
fn pieces(data: Bytes) -> ByteStream {
    let n = data.len().div_ceil(64 * 1024);
    futures::stream::iter(
        (0..n).map(move |i| Ok(data.slice(i * 64 * 1024..((i + 1) * 64 * 1024).min(data.len())))),
    )
    .boxed()
}

/// A generic remote at `url` with the smallest chunk size (5 MiB).
fn remote_at(url: &str) -> Arc<dyn Remote> {
    Arc::new(
        WebdavConfig::new(url)
            .with_vendor(Vendor::Generic)
            .with_password(USER, PASSWORD)
            .with_chunk_size(MIN_CHUNK_SIZE)
            .build()
            .unwrap(),
    )
}

/// A fresh directory on Apache: the remote (5 MiB chunks), its URL and its directory on disk.
async fn apache_dir(name: &str) -> (Arc<dyn Remote>, String, std::path::PathBuf) {
    let sub = format!("{name}-{:08x}", fastrand::u32(..));
    remote_at(&APACHE.url).mkdir(&p(&sub)).await.unwrap();
    let url = format!("{}{sub}/", APACHE.url);
    (remote_at(&url), url, APACHE.data.join(&sub))
}

fn opts(low_level_retries: u32) -> ops::SyncOptions {
    ops::SyncOptions {
        resume_above: Some(MIB as u64),
        retries: 1,
        low_level_retries,
        retry_backoff: Duration::from_millis(20),
        ..Default::default()
    }
}

/// A memory source holding `big.bin` = `content`.
async fn source(content: &Bytes) -> Arc<dyn Remote> {
    let src = memory();
    src.write(&p("big.bin"), pieces(content.clone()), WriteMeta::default())
        .await
        .unwrap();
    src
}

/// Everything of ours (temporary or partial files) among `names`.
fn ours(names: &[String]) -> Vec<String> {
    names
        .iter()
        .filter(|n| n.split('/').any(is_temp_name))
        .cloned()
        .collect()
}

/// Apache writes a ranged PUT at its offset: a body larger than a chunk goes in several
/// chunks, a second write continues the file, and a write at an offset other than the file's
/// size is refused without touching it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apache_takes_ranged_puts_chunk_by_chunk() {
    let (remote, _, disk) = apache_dir("chunks").await;
    let part = p(".cloudsync-part-0123456789abcdef.big.bin");
    let all = data(13 * MIB + 7, 3);
    let head = all.slice(..11 * MIB + 1);
    let n = remote
        .write_at(&part, 0, pieces(head.clone()), None)
        .await
        .unwrap();
    assert_eq!(n, head.len() as u64);
    let on_disk = disk.join(part.as_str());
    assert_eq!(std::fs::read(&on_disk).unwrap(), head);
    let n = remote
        .write_at(&part, n, pieces(all.slice(head.len()..)), None)
        .await
        .unwrap();
    assert_eq!(n, all.len() as u64);
    assert_eq!(std::fs::read(&on_disk).unwrap(), all);
    for wrong in [all.len() as u64 - 1, all.len() as u64 + 1] {
        let e = remote
            .write_at(&part, wrong, pieces(Bytes::from_static(b"xyz")), None)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConditionNotMatch, "{e}");
        assert!(e.is_retryable(), "{e}");
    }
    assert_eq!(std::fs::read(&on_disk).unwrap(), all);
    // Offset 0 empties the file first.
    let n = remote
        .write_at(&part, 0, pieces(Bytes::from_static(b"short")), None)
        .await
        .unwrap();
    assert_eq!(n, 5);
    assert_eq!(std::fs::read(&on_disk).unwrap(), b"short");
    // Nothing else was left in the directory (the probe file is gone).
    let left: Vec<String> = std::fs::read_dir(&disk)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, [part.as_str()], "{left:?}");
}

/// The ranges a write of `total` bytes with a known size goes in, as the module docs of
/// `ranged` promise: the chunk size, then doubling.
fn growing_ranges(total: u64) -> Vec<String> {
    let (mut at, mut size, mut out) = (0u64, MIN_CHUNK_SIZE, Vec::new());
    while at < total {
        let len = size.min(total - at);
        out.push(format!("bytes {at}-{}/*", at + len - 1));
        at += len;
        size *= 2;
    }
    out
}

/// The `Content-Range` of every ranged `PUT` to `name` in `log`.
fn ranges_to(log: &[String], name: &str) -> Vec<String> {
    log.iter()
        .filter(|l| l.starts_with("PUT ") && l.contains(&format!("{name} [")))
        .filter_map(|l| {
            l.split_once(" [")
                .map(|(_, r)| r.trim_end_matches(']').to_owned())
        })
        .collect()
}

/// With the file's size given (as the engine gives it), the body streams in chunks that grow
/// from the chunk size, doubling, each checked: fewer requests, nothing buffered, an exact
/// file; on Apache as on the in-memory server, which logs the ranges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_size_streams_growing_chunks() {
    let part = p(".cloudsync-part-0123456789abcdef.big.bin");
    let content = data(36 * MIB + 3, 5);
    let total = content.len() as u64;
    let server = memdav::start(Ranges::Honour);
    let n = remote_at(&server.url)
        .write_at(&part, 0, pieces(content.clone()), Some(total))
        .await
        .unwrap();
    assert_eq!(n, total);
    assert_eq!(server.file(part.as_str()).unwrap(), content);
    let want = growing_ranges(total);
    assert_eq!(want.len(), 4, "{want:?}");
    assert_eq!(ranges_to(&server.log(), part.as_str()), want);

    let (remote, _, disk) = apache_dir("streamed").await;
    let head = content.slice(..20 * MIB + 1);
    let n = remote
        .write_at(&part, 0, pieces(head), Some(total))
        .await
        .unwrap_err();
    // The body stopped short of the size it was announced with.
    assert_eq!(n.kind(), ErrorKind::ConditionNotMatch, "{n}");
    assert!(n.is_retryable(), "{n}");
    // Let Apache write what it had received before the body broke off.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let on_disk = disk.join(part.as_str());
    let kept = std::fs::read(&on_disk).unwrap();
    assert!(
        kept.len() as u64 >= 3 * MIN_CHUNK_SIZE && kept.len() <= 20 * MIB + 1,
        "kept {} bytes",
        kept.len()
    );
    assert_eq!(kept[..], content[..kept.len()], "kept bytes differ");
    let from = kept.len() as u64;
    let n = remote
        .write_at(
            &part,
            from,
            pieces(content.slice(kept.len()..)),
            Some(total),
        )
        .await
        .unwrap();
    assert_eq!(n, total);
    assert_eq!(std::fs::read(&on_disk).unwrap(), content);
}

/// A body that ends before the size it was announced with fails the write with a temporary
/// error; the server keeps the chunk it acknowledged and at most the bytes of the next one
/// that arrived, all of them the body's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_shorter_than_announced_fails_and_keeps_a_prefix() {
    let server = memdav::start(Ranges::Honour);
    let part = p(".cloudsync-part-0123456789abcdef.short.bin");
    let content = data(7 * MIB, 8);
    let e = remote_at(&server.url)
        .write_at(&part, 0, pieces(content.clone()), Some(12 * MIB as u64))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConditionNotMatch, "{e}");
    assert!(e.is_retryable(), "{e}");
    let kept = server.file(part.as_str()).unwrap();
    assert!(
        kept.len() >= MIN_CHUNK_SIZE as usize && kept.len() <= content.len(),
        "kept {} bytes",
        kept.len()
    );
    assert_eq!(kept[..], content[..kept.len()], "kept bytes differ");
    assert_eq!(
        ranges_to(&server.log(), part.as_str()),
        growing_ranges(12 * MIB as u64)
    );
}

/// The connection is cut in the middle of the second chunk: Apache keeps the first chunk and
/// the part of the second that reached it; the next run (straight to the server) continues
/// from there, resumes at least the first chunk, and the result is exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_cut_mid_chunk_keeps_what_reached_apache() {
    let (direct, url, disk) = apache_dir("cut").await;
    let content = data(12 * MIB + 5, 9);
    let src = source(&content).await;
    let u = url::Url::parse(&url).unwrap();
    let target = std::net::SocketAddr::from(([127, 0, 0, 1], u.port().unwrap()));
    // Enough for the probe, the first chunk and about half of the second.
    let port = CuttingProxy::start(target, 15 * MIB as u64 / 2)
        .await
        .unwrap()
        .port();
    let cut = remote_at(&format!("http://127.0.0.1:{port}{}", u.path()));
    let first = ops::copy(&src, &cut, &opts(0)).await.unwrap();
    assert_eq!(first.errors.len(), 1, "{first:?}");
    // Let Apache write what it had received before the cut.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !disk.join("big.bin").exists(),
        "a partial file became visible"
    );
    let kept: Vec<(String, u64)> = std::fs::read_dir(&disk)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let (name, size) = &kept[0];
    assert!(name.starts_with(".cloudsync-part-"), "{kept:?}");
    assert!(
        *size >= MIN_CHUNK_SIZE && *size < 15 * MIB as u64 / 2,
        "the cut kept {size} bytes"
    );
    let on_disk = std::fs::read(disk.join(name)).unwrap();
    assert_eq!(on_disk[..], content[..on_disk.len()], "kept bytes differ");
    let second = ops::copy(&src, &direct, &opts(0)).await.unwrap();
    assert!(second.is_ok(), "{second:?}");
    // Apache may still have been writing what it had received when the size was taken.
    assert!(
        second.bytes_resumed >= *size && second.bytes_resumed < 15 * MIB as u64 / 2,
        "kept {size} bytes, resumed {second:?}"
    );
    assert_eq!(std::fs::read(disk.join("big.bin")).unwrap(), content);
    let left = std::fs::read_dir(&disk).unwrap().count();
    assert_eq!(left, 1, "something was left beside big.bin");
}

/// The resume checks of the conformance suite against a server that takes ranged PUTs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_checks_on_a_server_that_honours_ranges() {
    let server = memdav::start(Ranges::Honour);
    let remote = remote_at(&server.url);
    resume_checks(&remote).await;
    assert!(server.ranged_puts() > 1, "{:?}", server.log());
}

/// Runs the resume checks of the conformance suite, each in its own directory.
async fn resume_checks(remote: &Arc<dyn Remote>) {
    for check in ["resume", "resume_mismatch"] {
        let sub = Prefix::wrap(
            remote.clone(),
            p(&format!("ck-{check}-{:08x}", fastrand::u32(..))),
        );
        run_check(check, &sub, &ConformanceOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{check}: {e}"));
    }
}

/// Copies a 12 MiB file (three chunks) through the engine to `remote` on `server`: cut once
/// at a random point, then again; the result is exact and nothing of ours is left. The file is
/// removed after.
async fn cut_then_copy(
    server: &MemDav,
    remote: &Arc<dyn Remote>,
    low_level_retries: u32,
) -> (cloudsync_core::Summary, Bytes) {
    let content = data(12 * MIB + 5, fastrand::u8(..));
    let src = source(&content).await;
    let after = fastrand::u64(MIB as u64..12 * MIB as u64);
    let cut: Arc<dyn Remote> = Arc::new(cloudsync_core::testkit::Chaos::new(
        src.clone(),
        cloudsync_core::testkit::FaultPlan {
            rules: vec![cloudsync_core::testkit::Rule {
                op: cloudsync_core::testkit::Op::Read,
                path: Some(p("big.bin")),
                skip: 0,
                times: 1,
                fault: cloudsync_core::testkit::Fault::ReadCut {
                    after,
                    kind: ErrorKind::Transient,
                },
            }],
        },
    ));
    let first = ops::copy(&cut, remote, &opts(low_level_retries))
        .await
        .unwrap();
    let summary = if first.is_ok() {
        first
    } else {
        assert!(server.file("big.bin").is_none(), "visible after a cut");
        ops::copy(&src, remote, &opts(low_level_retries))
            .await
            .unwrap()
    };
    assert!(summary.is_ok(), "{summary:?}");
    let back = collect_bytes(remote.read(&p("big.bin"), None).await.unwrap())
        .await
        .unwrap();
    let first_difference = back.iter().zip(content.iter()).position(|(a, b)| a != b);
    assert!(
        back == content,
        "the copy is not exact: {} bytes of {}, first difference at {first_difference:?}",
        back.len(),
        content.len(),
    );
    assert_eq!(server.file("big.bin").unwrap(), content);
    let left = ours(&server.files());
    assert!(left.is_empty(), "left behind: {left:?}");
    remote.remove_file(&p("big.bin")).await.unwrap();
    (summary, content)
}

/// A server that answers a ranged PUT with success but stores its body as the whole file:
/// the probe finds out, `write_at` answers `Unsupported` at offset 0 (and removes a partial
/// file it is asked to continue), the engine writes the plain way, and the probe is the only
/// ranged PUT ever sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_ignores_content_range_gets_plain_uploads() {
    let server = memdav::start(Ranges::Ignore);
    let remote = remote_at(&server.url);
    let part = p(".cloudsync-part-0123456789abcdef.x.bin");
    let e = remote
        .write_at(&part, 0, pieces(data(1000, 1)), None)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert_eq!(server.ranged_puts(), 1, "{:?}", server.log());
    // A partial file (from a time ranged PUT worked) is not continued, and removed.
    remote
        .write(&part, pieces(data(1000, 1)), WriteMeta::default())
        .await
        .unwrap();
    let e = remote
        .write_at(&part, 1000, pieces(data(10, 2)), None)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConditionNotMatch, "{e}");
    assert!(server.file(part.as_str()).is_none(), "{:?}", server.files());
    for retries in [0, 2] {
        let (summary, _) = cut_then_copy(&server, &remote, retries).await;
        assert_eq!(summary.bytes_resumed, 0, "{summary:?}");
    }
    resume_checks(&remote).await;
    assert_eq!(server.ranged_puts(), 1, "{:?}", server.log());
}

/// A server that refuses ranged PUT (`501`, as nginx and sabre/dav do; `400`; `405`): the
/// engine writes the plain way and the result is exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_refuses_ranged_put_gets_plain_uploads() {
    for status in [501, 400, 405] {
        let server = memdav::start(Ranges::Refuse(status));
        let remote = remote_at(&server.url);
        let e = remote
            .write_at(
                &p(".cloudsync-part-0123456789abcdef.x"),
                0,
                pieces(data(9, 1)),
                None,
            )
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{status}: {e}");
        let (summary, _) = cut_then_copy(&server, &remote, 1).await;
        assert_eq!(summary.bytes_resumed, 0, "{status}: {summary:?}");
        assert_eq!(server.ranged_puts(), 1, "{status}: {:?}", server.log());
    }
}

/// A server that passes the probe and then ignores the range of a later chunk (storing it
/// from byte 0): the size check after that chunk catches it, the damaged partial file is
/// removed, ranged PUT is turned off for the remote, and the retry writes the plain way; the
/// result is exact and no damaged byte is ever resumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_honouring_ranges_is_caught() {
    let server = memdav::start(Ranges::HonourFirst(1));
    let remote = remote_at(&server.url);
    let content = data(12 * MIB + 5, 4);
    let src = source(&content).await;
    let s = ops::copy(&src, &remote, &opts(2)).await.unwrap();
    assert!(s.is_ok(), "{s:?}");
    assert_eq!(s.bytes_resumed, 0, "{s:?}");
    assert_eq!(server.file("big.bin").unwrap(), content);
    assert!(ours(&server.files()).is_empty(), "{:?}", server.files());
    // The probe, the first chunk (at 0: harmless) and the second, caught; then no more.
    assert_eq!(server.ranged_puts(), 3, "{:?}", server.log());
    let e = remote
        .write_at(
            &p(".cloudsync-part-0123456789abcdef.y"),
            0,
            pieces(data(9, 1)),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert_eq!(server.ranged_puts(), 3, "{:?}", server.log());
}

/// A server that passes the probe and then stores only half of each chunk while answering
/// success: the size check after the chunk catches it, the partial file is removed, ranged PUT
/// is turned off, and the retry writes the plain way; the result is exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_loses_acknowledged_bytes_is_caught() {
    let server = memdav::start(Ranges::ShortAfter(1));
    let remote = remote_at(&server.url);
    let content = data(7 * MIB + 3, 6);
    let src = source(&content).await;
    let s = ops::copy(&src, &remote, &opts(2)).await.unwrap();
    assert!(s.is_ok(), "{s:?}");
    assert_eq!(s.bytes_resumed, 0, "{s:?}");
    assert_eq!(server.file("big.bin").unwrap(), content);
    assert!(ours(&server.files()).is_empty(), "{:?}", server.files());
    // The probe and the first chunk (caught); no ranged PUT after that.
    assert_eq!(server.ranged_puts(), 2, "{:?}", server.log());
}

/// On a server that takes ranged PUTs, a cut transfer resumes (in the next run, and in a
/// low-level retry of the same run) and sends only what was missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_transfers_resume_on_a_server_that_honours_ranges() {
    let server = memdav::start(Ranges::Honour);
    let remote = remote_at(&server.url);
    for retries in [0, 2] {
        let (summary, content) = cut_then_copy(&server, &remote, retries).await;
        assert!(summary.bytes_resumed > 0, "{summary:?}");
        assert_eq!(summary.bytes, content.len() as u64, "{summary:?}");
    }
}

static NGINX: LazyLock<DavServer> = LazyLock::new(|| common::start_nginx("/dav/", true));
static RCLONE: LazyLock<DavServer> = LazyLock::new(common::start_rclone);

/// nginx (which answers a ranged PUT with `501`) and `rclone serve webdav` (which stores its
/// body as the whole file): the probe says no, `write_at` answers `Unsupported` at offset 0,
/// and neither the partial file nor the probe file is left on the server's disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_and_rclone_are_found_out_by_the_probe() {
    for server in [&*NGINX, &*RCLONE] {
        let sub = format!("probe-{:08x}", fastrand::u32(..));
        remote_at(&server.url).mkdir(&p(&sub)).await.unwrap();
        let remote = remote_at(&format!("{}{sub}/", server.url));
        let e = remote
            .write_at(
                &p(".cloudsync-part-0123456789abcdef.x"),
                0,
                pieces(data(100, 1)),
                None,
            )
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{}: {e}", server.url);
        let left: Vec<_> = std::fs::read_dir(server.data.join(&sub))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "{}: {left:?}", server.url);
    }
}

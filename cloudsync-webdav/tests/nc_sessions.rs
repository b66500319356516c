//! Resumable uploads to Nextcloud through chunked upload v2 folders, against the stand-in
//! (`common/nextcloud.rs`): the core's session checks; the session API itself (a cut chunk is
//! not counted, the offset is the whole chunks stored, a write from there assembles the exact
//! file, a finished or cancelled folder is `NotFound`); and a connection cut in the middle of a
//! chunk, after which the next run sends only what the folder lacks.

mod common;

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use bytes::Bytes;
use cloudsync_core::testkit::{ConformanceOptions, CuttingProxy, run_check};
use cloudsync_core::{
    ByteStream, Error, ErrorKind, Remote, RemotePath, SessionStore, WriteMeta, collect_bytes,
    memory, ops,
};
use cloudsync_webdav::{MIN_CHUNK_SIZE, Vendor, WebdavConfig, WebdavRemote};
use common::nextcloud::{FakeNextcloud, start};
use common::{PASSWORD, USER};
use futures::StreamExt;

static NC: LazyLock<FakeNextcloud> = LazyLock::new(start);

const MIB: u64 = 1024 * 1024;
/// The chunk size of every remote here (the documented minimum).
const CHUNK: u64 = MIN_CHUNK_SIZE;

fn p(s: &str) -> RemotePath {
    RemotePath::new(s).unwrap()
}

fn data(len: u64, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i.wrapping_mul(2654435761).rotate_left(u32::from(seed)) as u8) ^ seed)
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

/// A remote on the directory `sub` (created) of the user's files, through `base`
/// (`http://127.0.0.1:PORT`: the stand-in or a proxy in front of it).
async fn remote_at(base: &str, sub: &str) -> Arc<dyn Remote> {
    let cfg = |url: String| {
        WebdavConfig::new(url)
            .with_vendor(Vendor::Nextcloud)
            .with_password(USER, PASSWORD)
            .with_chunk_size(CHUNK)
    };
    let files = format!("{base}/remote.php/dav/files/{USER}/");
    let top = WebdavRemote::new(cfg(files.clone())).unwrap();
    top.mkdir(&p(sub)).await.unwrap();
    Arc::new(WebdavRemote::new(cfg(format!("{files}{sub}/"))).unwrap())
}

fn opts(store: &SessionStore) -> ops::SyncOptions {
    ops::SyncOptions {
        resume_above: Some(MIB),
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

/// The stand-in's count of chunk bytes received, once it stopped changing (a cut request's
/// handler may still be reading what reached the server's socket).
async fn settled_chunk_bytes() -> u64 {
    let mut last = NC.recorded(|r| r.chunk_bytes);
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = NC.recorded(|r| r.chunk_bytes);
        if now == last {
            return now;
        }
        last = now;
    }
}

/// The chunk files (name, size) in the stand-in's upload folder of `token`, all files
/// included (a partial chunk would show here).
fn files_in_folder(token: &cloudsync_core::SessionToken) -> Vec<(String, u64)> {
    let id = token
        .expose()
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let mut v: Vec<(String, u64)> = std::fs::read_dir(NC.uploads_dir().join(id))
        .unwrap()
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().len(),
            )
        })
        .filter(|(n, _)| n != ".destination")
        .collect();
    v.sort();
    v
}

/// The upload folders the stand-in holds.
fn folders() -> Vec<String> {
    std::fs::read_dir(NC.uploads_dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// The core's session checks, the resume one allowing a cut upload to lose one 5 MiB chunk
/// (the smallest chunk Nextcloud documents).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_session_checks() {
    let sub = format!("ck-{:08x}", fastrand::u32(..));
    let r = remote_at(&NC.base, &sub).await;
    assert!(r.capabilities().resume_sessions);
    let opts = ConformanceOptions {
        session_chunk: CHUNK,
        ..Default::default()
    };
    for name in ["session_stale", "session_resume"] {
        let dir = cloudsync_core::Prefix::wrap(r.clone(), p(name));
        run_check(name, &dir, &opts)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

/// The session API: a new folder holds nothing; a write whose body fails in the middle of a
/// chunk leaves the whole chunks before it (the one cut is not stored); the offset is their
/// sum; a write from there assembles the exact file, sending only the rest; the finished
/// folder is gone (`NotFound`), and cancelling it is fine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_chunk_is_not_counted_and_the_rest_completes_the_file() {
    let sub = format!("api-{:08x}", fastrand::u32(..));
    let r = remote_at(&NC.base, &sub).await;
    let path = p("a/b.bin");
    let size = 3 * CHUNK + 12_345;
    let content = data(size, 5);
    let meta = WriteMeta {
        size: Some(size),
        ..Default::default()
    };
    let token = r.session_start(&path, size, &meta).await.unwrap();
    assert!(!token.expose().contains(PASSWORD) && !token.expose().contains("127.0.0.1"));
    assert_eq!(r.session_offset(&token).await.unwrap(), 0);
    // The body fails at a random point after the first chunk, inside a later one.
    let cut = loop {
        let c = fastrand::u64(CHUNK + 1..3 * CHUNK);
        if c % CHUNK != 0 {
            break c;
        }
    };
    let failing = pieces(content.slice(..cut as usize)).chain(futures::stream::once(async {
        Err(Error::new(ErrorKind::Transient, "cut"))
    }));
    let e = r
        .session_write(&token, &path, 0, failing.boxed(), meta.clone())
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert_eq!(r.stat(&path).await.unwrap_err().kind(), ErrorKind::NotFound);
    let kept = r.session_offset(&token).await.unwrap();
    assert_eq!(kept, cut / CHUNK * CHUNK, "cut at {cut}");
    // On the server: the whole chunks and nothing of the one cut.
    settled_chunk_bytes().await;
    let want: Vec<(String, u64)> = (1..=kept / CHUNK)
        .map(|n| (format!("{n:05}"), CHUNK))
        .collect();
    assert_eq!(files_in_folder(&token), want, "cut at {cut}");
    // Writing at another offset than the one held is refused, and sends nothing.
    let e = r
        .session_write(
            &token,
            &path,
            kept + 1,
            pieces(content.slice(kept as usize + 1..)),
            meta.clone(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConditionNotMatch, "{e}");
    let before = NC.recorded(|r| r.chunk_bytes);
    let entry = r
        .session_write(
            &token,
            &path,
            kept,
            pieces(content.slice(kept as usize..)),
            meta.clone(),
        )
        .await
        .unwrap();
    let sent = NC.recorded(|r| r.chunk_bytes) - before;
    assert_eq!(sent, size - kept);
    assert!(
        sent <= size - cut + CHUNK,
        "sent {sent} after a cut at {cut}"
    );
    assert_eq!(entry.size, size);
    let back = collect_bytes(r.read(&path, None).await.unwrap())
        .await
        .unwrap();
    assert!(back == content, "the resumed file is not exact");
    assert_eq!(
        r.session_offset(&token).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    r.session_cancel(&token).await.unwrap();
}

/// A cancelled folder is gone from the server and reported `NotFound`; writing into it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_session_is_gone() {
    let sub = format!("cancel-{:08x}", fastrand::u32(..));
    let r = remote_at(&NC.base, &sub).await;
    let size = CHUNK + 10;
    let content = data(size, 9);
    let meta = WriteMeta {
        size: Some(size),
        ..Default::default()
    };
    let token = r.session_start(&p("c.bin"), size, &meta).await.unwrap();
    let n = folders().len();
    r.session_cancel(&token).await.unwrap();
    assert_eq!(folders().len(), n - 1, "the upload folder is still there");
    assert_eq!(
        r.session_offset(&token).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let e = r
        .session_write(&token, &p("c.bin"), 0, pieces(content), meta)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    r.session_cancel(&token).await.unwrap();
}

/// A budget of client traffic that ends inside the second or third chunk (not just after a
/// chunk's end, where the request headers could make the outcome depend on their size).
fn budget_inside_a_chunk() -> u64 {
    loop {
        let b = fastrand::u64(CHUNK + MIB..3 * CHUNK - MIB);
        if b % CHUNK > 64 * 1024 {
            return b;
        }
    }
}

/// A remote on `sub` through a [`CuttingProxy`] in front of the stand-in (with `once`, only
/// the connection on which the budget runs out is cut).
async fn proxied(sub: &str, budget: u64, once: bool) -> (Arc<dyn Remote>, CuttingProxy) {
    let addr: std::net::SocketAddr = NC.base.trim_start_matches("http://").parse().unwrap();
    let proxy = if once {
        CuttingProxy::start_once(addr, budget).await
    } else {
        CuttingProxy::start(addr, budget).await
    }
    .unwrap();
    let port = proxy.port();
    let files = format!("http://127.0.0.1:{port}/remote.php/dav/files/{USER}/{sub}/");
    let cfg = WebdavConfig::new(files)
        .with_vendor(Vendor::Nextcloud)
        .with_password(USER, PASSWORD)
        .with_chunk_size(CHUNK);
    (Arc::new(WebdavRemote::new(cfg).unwrap()), proxy)
}

/// The connection is cut once in the middle of a chunk; a low-level retry in the same run
/// continues the upload folder from its whole chunks: the file is exact, the bytes resumed
/// are those chunks, and the chunk bytes the server received in all are at most the file plus
/// the part of the chunk that was cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_in_the_same_run_continues_after_a_cut() {
    let sub = format!("retry-{:08x}", fastrand::u32(..));
    let direct = remote_at(&NC.base, &sub).await;
    let size = 3 * CHUNK + 4099;
    let content = data(size, 13);
    let src = source(&content).await;
    let budget = budget_inside_a_chunk();
    let (cut, _) = proxied(&sub, budget, true).await;
    let before = settled_chunk_bytes().await;
    let o = ops::SyncOptions {
        low_level_retries: 3,
        ..opts(&SessionStore::memory())
    };
    let s = ops::copy(&src, &cut, &o).await.unwrap();
    assert!(s.is_ok(), "{s:?}");
    let kept = s.bytes_resumed;
    assert!(
        kept % CHUNK == 0 && kept > 0 && kept < budget && budget - kept < CHUNK + 64 * 1024,
        "resumed {kept} bytes after a cut at {budget} bytes of traffic"
    );
    let received = settled_chunk_bytes().await - before;
    assert!(
        received < size + CHUNK && received >= size,
        "the server received {received} chunk bytes for a file of {size}"
    );
    let back = collect_bytes(direct.read(&p("big.bin"), None).await.unwrap())
        .await
        .unwrap();
    assert!(back == content, "the resumed file is not exact");
    assert!(
        o.sessions.is_empty(),
        "the finished upload is still recorded"
    );
}

/// The connection is cut in the middle of a chunk (and stays cut): the folder keeps the whole
/// chunks before it, not the one cut. The next run, with the same record file, continues from
/// there: it sends only what the folder lacks — at most the bytes the cut run did not get
/// through plus one chunk — the file is exact, and neither the record nor the folder is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_cut_mid_chunk_resumes_in_the_next_run() {
    let sub = format!("proxy-{:08x}", fastrand::u32(..));
    let direct = remote_at(&NC.base, &sub).await;
    let size = 3 * CHUNK + 777_777;
    let content = data(size, 7);
    let src = source(&content).await;
    // Client traffic (requests and bodies) allowed through before the cut.
    let budget = budget_inside_a_chunk();
    let (cut, left) = proxied(&sub, budget, false).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("uploads.json");
    let first = ops::copy(&src, &cut, &opts(&SessionStore::open(&file)))
        .await
        .unwrap();
    assert_eq!(first.errors.len(), 1, "{first:?}");
    assert!(first.errors[0].temporary, "{first:?}");
    assert_eq!(
        direct.stat(&p("big.bin")).await.unwrap_err().kind(),
        ErrorKind::NotFound,
        "visible after a cut"
    );
    let rec = SessionStore::open(&file)
        .get(&cut.describe(), &p("big.bin"))
        .expect("a session is recorded");
    let kept = direct.session_offset(&rec.token).await.unwrap();
    assert!(
        kept % CHUNK == 0 && kept > 0 && kept < budget && budget - kept < CHUNK + 64 * 1024,
        "the folder holds {kept} bytes after a cut at {budget} bytes of traffic"
    );
    settled_chunk_bytes().await;
    let want: Vec<(String, u64)> = (1..=kept / CHUNK)
        .map(|n| (format!("{n:05}"), CHUNK))
        .collect();
    assert_eq!(files_in_folder(&rec.token), want, "cut at {budget}");
    // The link is back (the records are keyed by the remote's description, which names the
    // port: the next run goes through the proxy again).
    left.restore();
    let before = settled_chunk_bytes().await;
    let second = ops::copy(&src, &cut, &opts(&SessionStore::open(&file)))
        .await
        .unwrap();
    assert!(second.is_ok(), "{second:?}");
    assert_eq!(second.bytes_resumed, kept, "{second:?}");
    let sent = NC.recorded(|r| r.chunk_bytes) - before;
    assert_eq!(sent, size - kept, "bytes sent the second time");
    // What the first run got through is at most `budget` (headers included), so the second
    // sends at most the missing bytes plus one chunk.
    assert!(
        sent <= size - budget + CHUNK,
        "sent {sent}, budget {budget}"
    );
    let back = collect_bytes(direct.read(&p("big.bin"), None).await.unwrap())
        .await
        .unwrap();
    assert!(back == content, "the resumed file is not exact");
    assert!(
        SessionStore::open(&file).is_empty(),
        "the record is left after the upload finished"
    );
    assert_eq!(
        direct.session_offset(&rec.token).await.unwrap_err().kind(),
        ErrorKind::NotFound,
        "the upload folder is left after the upload finished"
    );
}

/// A folder holding more than whole contiguous chunks (a short chunk before the end, as a
/// server that kept part of a cut request would leave, and a chunk after a gap): only the
/// whole chunks before them count, the others are deleted before the upload continues, and
/// the assembled file is exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_and_stray_chunks_are_not_counted() {
    let sub = format!("stray-{:08x}", fastrand::u32(..));
    let r = remote_at(&NC.base, &sub).await;
    let size = 2 * CHUNK + 4321;
    let content = data(size, 11);
    let meta = WriteMeta {
        size: Some(size),
        ..Default::default()
    };
    let token = r.session_start(&p("s.bin"), size, &meta).await.unwrap();
    let id = token
        .expose()
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap();
    let dir = NC.uploads_dir().join(id);
    let c = CHUNK as usize;
    std::fs::write(dir.join("00001"), &content[..c]).unwrap();
    std::fs::write(dir.join("00002"), &content[c..c + 1000]).unwrap();
    std::fs::write(dir.join("00004"), vec![0xAAu8; c]).unwrap();
    assert_eq!(r.session_offset(&token).await.unwrap(), CHUNK);
    let entry = r
        .session_write(&token, &p("s.bin"), CHUNK, pieces(content.slice(c..)), meta)
        .await
        .unwrap();
    assert_eq!(entry.size, size);
    let back = collect_bytes(r.read(&p("s.bin"), None).await.unwrap())
        .await
        .unwrap();
    assert!(back == content, "the resumed file is not exact");
    let last = NC.recorded(|r| r.assembled.last().cloned()).unwrap();
    assert_eq!(last, vec![CHUNK, CHUNK, 4321]);
}

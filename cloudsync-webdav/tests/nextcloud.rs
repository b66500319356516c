//! The Nextcloud extensions (X-OC-Mtime, OC-Checksum/oc:checksums, chunked upload v2, trash
//! bin and versions) against a stand-in that implements the documented behaviour of those
//! endpoints on top of nginx's WebDAV storage (see `common/nextcloud.rs`). (The conformance
//! suite runs through it in `conformance.rs`.)

mod common;

use std::sync::{Arc, LazyLock};

use bytes::Bytes;
use cloudsync_core::{
    BackendFactory, Error, ErrorKind, HashKind, Hashes, MultiHasher, Remote, RemotePath, WriteMeta,
    bytes_stream, collect_bytes,
};
use cloudsync_webdav::{MIN_CHUNK_SIZE, NextcloudFactory};
use common::nextcloud::{FakeNextcloud, start};
use common::{PASSWORD, USER};
use futures::{StreamExt, TryStreamExt};
use time::OffsetDateTime;

static NC: LazyLock<FakeNextcloud> = LazyLock::new(start);

/// A fresh directory below the user's files, as a Nextcloud remote chunking above 5 MiB.
async fn remote(name: &str) -> Arc<dyn Remote> {
    NC.remote(name).await
}

fn p(s: &str) -> RemotePath {
    RemotePath::new(s).unwrap()
}

fn content(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 253) as u8).collect()
}

fn stream_of(data: &[u8], piece: usize) -> cloudsync_core::ByteStream {
    let v: Vec<Result<Bytes, Error>> = data
        .chunks(piece)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures::stream::iter(v).boxed()
}

fn sha1(data: &[u8]) -> String {
    let mut h = MultiHasher::new(&[HashKind::Sha1]);
    h.update(data);
    h.finish().get(HashKind::Sha1).unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_upload_keeps_mtime_and_checksum() {
    let r = remote("chunked").await;
    let data = content(2 * MIN_CHUNK_SIZE as usize + 2 * 1024 * 1024 + 5);
    let when = OffsetDateTime::from_unix_timestamp(1_500_000_000).unwrap();
    let digest = sha1(&data);
    let meta = WriteMeta {
        size: Some(data.len() as u64),
        modtime: Some(when),
        hashes: Hashes::default().with(HashKind::Sha1, &digest),
        ..Default::default()
    };
    let before = NC.recorded(|r| r.assembled.len());
    let e = r
        .write(&p("big/file.bin"), stream_of(&data, 300_001), meta)
        .await
        .unwrap();
    assert_eq!(e.size, data.len() as u64);
    assert_eq!(e.modtime, Some(when));
    let chunks = NC.recorded(|r| r.assembled[before..].to_vec());
    let mib5 = MIN_CHUNK_SIZE;
    assert!(
        chunks.contains(&vec![mib5, mib5, data.len() as u64 - 2 * mib5]),
        "{chunks:?}"
    );
    let st = r.stat(&p("big/file.bin")).await.unwrap();
    assert_eq!(st.modtime, Some(when));
    assert_eq!(st.hashes.get(HashKind::Sha1), Some(digest.as_str()));
    assert_eq!(
        r.hash(&p("big/file.bin"), HashKind::Sha1).await.unwrap(),
        digest
    );
    let back = collect_bytes(r.read(&p("big/file.bin"), None).await.unwrap())
        .await
        .unwrap();
    assert!(back[..] == data[..]);
    // Only this test's uploads: other tests upload at the same time.
    let describe = r.describe();
    let sub = describe.rsplit('/').next().unwrap();
    let left: Vec<_> = std::fs::read_dir(NC.uploads_dir())
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read_to_string(e.path().join(".destination"))
                .map(|d| d.contains(sub))
                .unwrap_or(false)
        })
        .collect();
    assert!(left.is_empty(), "upload folders left: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_chunked_upload_leaves_nothing() {
    let r = remote("chunked-fail").await;
    let size = 3 * MIN_CHUNK_SIZE;
    let good = content(MIN_CHUNK_SIZE as usize + 1000);
    let body = futures::stream::iter(vec![
        Ok(Bytes::from(good)),
        Err(Error::new(ErrorKind::Io, "source broke")),
    ])
    .boxed();
    let meta = WriteMeta {
        size: Some(size),
        ..Default::default()
    };
    let e = r.write(&p("x.bin"), body, meta).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io, "{e:?}");
    assert_eq!(
        r.stat(&p("x.bin")).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    // A source shorter than announced is refused too.
    let meta = WriteMeta {
        size: Some(size),
        ..Default::default()
    };
    let short = content(MIN_CHUNK_SIZE as usize * 2);
    let e = r
        .write(&p("y.bin"), stream_of(&short, 1 << 20), meta)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConditionNotMatch, "{e:?}");
    assert_eq!(
        r.stat(&p("y.bin")).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let left: Vec<_> = std::fs::read_dir(NC.uploads_dir())
        .unwrap()
        .flatten()
        .collect();
    let mine: Vec<_> = left
        .iter()
        .filter(|e| {
            std::fs::read_to_string(e.path().join(".destination"))
                .map(|d| d.contains("chunked-fail"))
                .unwrap_or(false)
        })
        .collect();
    assert!(mine.is_empty(), "upload folders left: {mine:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checksums_are_sent_and_read() {
    let r = remote("checksums").await;
    let with = WriteMeta {
        hashes: Hashes::default().with(HashKind::Md5, "5d41402abc4b2a76b9719d911017c592"),
        ..Default::default()
    };
    r.write(&p("hello.txt"), bytes_stream("hello"), with)
        .await
        .unwrap();
    let listed: Vec<_> = r
        .list(&RemotePath::root())
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        listed[0].hashes.get(HashKind::Md5),
        Some("5d41402abc4b2a76b9719d911017c592")
    );
    assert!(listed[0].id.is_some(), "oc:fileid is read");
    // Without a known hash nothing is stored; hash() then reads the content.
    r.write(&p("plain.txt"), bytes_stream("hello"), WriteMeta::default())
        .await
        .unwrap();
    assert!(r.stat(&p("plain.txt")).await.unwrap().hashes.is_empty());
    assert_eq!(
        r.hash(&p("plain.txt"), HashKind::Sha1).await.unwrap(),
        sha1(b"hello")
    );
    // Server-side copy and rename keep the checksum.
    r.copy(&p("hello.txt"), &p("c/copy.txt")).await.unwrap();
    let moved = r.rename(&p("c/copy.txt"), &p("d/moved.txt")).await.unwrap();
    assert_eq!(
        moved.hashes.get(HashKind::Md5),
        Some("5d41402abc4b2a76b9719d911017c592")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_empties_trash_and_versions() {
    let r = remote("cleanup").await;
    r.write(&p("keep.txt"), bytes_stream("v1"), WriteMeta::default())
        .await
        .unwrap();
    r.write(&p("keep.txt"), bytes_stream("v2"), WriteMeta::default())
        .await
        .unwrap();
    r.write(
        &p("gone/bye.txt"),
        bytes_stream("bye"),
        WriteMeta::default(),
    )
    .await
    .unwrap();
    r.remove_file(&p("gone/bye.txt")).await.unwrap();
    let count = |d: std::path::PathBuf| -> usize { walk(&d) };
    assert!(
        count(NC.trash_dir()) > 0,
        "the delete went to the trash bin"
    );
    let id = r.stat(&p("keep.txt")).await.unwrap().id.unwrap();
    assert_eq!(
        count(NC.versions_dir().join(&id)),
        1,
        "one old version kept"
    );
    assert!(r.capabilities().cleanup);
    r.cleanup().await.unwrap();
    assert_eq!(count(NC.trash_dir()), 0);
    assert_eq!(count(NC.versions_dir().join(&id)), 0);
    let back = collect_bytes(r.read(&p("keep.txt"), None).await.unwrap())
        .await
        .unwrap();
    assert_eq!(&back[..], b"v2");
}

fn walk(d: &std::path::Path) -> usize {
    std::fs::read_dir(d)
        .map(|rd| {
            rd.flatten()
                .filter(|e| !e.file_name().to_string_lossy().ends_with(".origin"))
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nextcloud_preset_derives_the_paths() {
    // SAFETY: set once, before any thread reads it; the name is unique to this test binary.
    unsafe { std::env::set_var("CLOUDSYNC_TEST_FAKE_NC_PASSWORD", PASSWORD) };
    let remote = NextcloudFactory
        .open(serde_json::json!({
            "url": NC.base,
            "user": USER,
            "password_env": "CLOUDSYNC_TEST_FAKE_NC_PASSWORD",
        }))
        .await
        .unwrap();
    assert!(remote.capabilities().write_modtime);
    assert!(remote.capabilities().cleanup);
    let when = OffsetDateTime::from_unix_timestamp(1_234_567_890).unwrap();
    let meta = WriteMeta {
        modtime: Some(when),
        ..Default::default()
    };
    let path = p(&format!("preset-{:08x}.txt", fastrand::u32(..)));
    remote.write(&path, bytes_stream("hi"), meta).await.unwrap();
    assert_eq!(remote.stat(&path).await.unwrap().modtime, Some(when));
    assert!(NC.nginx.data.join(path.as_str()).is_file());
    remote.remove_file(&path).await.unwrap();
}

/// Replacement bodies that error half-way, or give fewer or more bytes than announced, keep
/// the old file: the direct `PUT` (cut before the server has the whole body) and the chunked
/// upload (no final `MOVE`, upload folder removed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_replacement_keeps_the_old_file_nextcloud() {
    let r = remote("replace").await;
    common::checks::bad_replacement_keeps_the_old_file(&r, &NC.nginx.data).await;
    let path = p("chunked/old.bin");
    let old = content(1000);
    r.write(&path, bytes_stream(old.clone()), WriteMeta::default())
        .await
        .unwrap();
    let size = 2 * MIN_CHUNK_SIZE + 1000;
    let failing = futures::stream::iter(vec![
        Ok(Bytes::from(content(MIN_CHUNK_SIZE as usize + 1000))),
        Err(Error::new(ErrorKind::Io, "source broke")),
    ])
    .boxed();
    let cases: Vec<(&str, cloudsync_core::ByteStream, ErrorKind)> = vec![
        ("errors half-way", failing, ErrorKind::Io),
        (
            "shorter",
            stream_of(&content(2 * MIN_CHUNK_SIZE as usize), 1 << 20),
            ErrorKind::ConditionNotMatch,
        ),
        (
            "longer",
            stream_of(&content(size as usize + 1), 1 << 20),
            ErrorKind::ConditionNotMatch,
        ),
    ];
    for (what, body, kind) in cases {
        let meta = WriteMeta {
            size: Some(size),
            ..Default::default()
        };
        let e = r.write(&path, body, meta).await.unwrap_err();
        assert_eq!(e.kind(), kind, "{what}: {e:?}");
        let back = collect_bytes(r.read(&path, None).await.unwrap())
            .await
            .unwrap();
        assert!(back[..] == old[..], "{what}: the old file changed");
    }
    let mine: Vec<_> = std::fs::read_dir(NC.uploads_dir())
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read_to_string(e.path().join(".destination"))
                .map(|d| d.contains("replace-"))
                .unwrap_or(false)
        })
        .collect();
    assert!(mine.is_empty(), "upload folders left: {mine:?}");
}

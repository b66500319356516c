//! WebDAV-specific checks run against every real server (the conformance suite covers the
//! general `Remote` contract).

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use cloudsync_core::{
    ByteStream, Error, ErrorKind, Remote, RemotePath, WriteMeta, bytes_stream, collect_bytes,
};
use cloudsync_webdav::{WebdavConfig, WebdavRemote};
use futures::{StreamExt, TryStreamExt};
use time::OffsetDateTime;

use super::{DavServer, PASSWORD, USER};

fn p(s: &str) -> RemotePath {
    RemotePath::new(s).unwrap()
}

async fn names(remote: &Arc<dyn Remote>, dir: &str) -> Vec<String> {
    let mut v: Vec<String> = remote
        .list(&p(dir))
        .await
        .unwrap()
        .map_ok(|e| e.name().to_owned())
        .try_collect()
        .await
        .unwrap();
    v.sort();
    v
}

/// Every file name below `dir` on disk.
fn disk_names(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
            out.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    out
}

fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

/// A body that yields `good` bytes and then fails.
fn failing_body(good: usize) -> ByteStream {
    let first = Bytes::from(data(good));
    futures::stream::iter(vec![
        Ok(first),
        Err(Error::new(ErrorKind::Io, "source broke")),
    ])
    .boxed()
}

/// Runs every check; `lists_dot_names` is false for servers that hide names starting with `.`.
pub async fn all(remote: Arc<dyn Remote>, server: &DavServer, lists_dot_names: bool) {
    special_names(&remote, lists_dot_names).await;
    streamed_file_and_ranges(&remote).await;
    failed_write_leaves_nothing(&remote, server).await;
    bad_replacement_keeps_the_old_file(&remote, &server.data).await;
    directories_are_never_clobbered(&remote).await;
    wrong_password_is_auth(server).await;
    write_creates_a_missing_root(&remote, server).await;
}

/// A remote whose root does not exist yet creates it on the first write.
async fn write_creates_a_missing_root(remote: &Arc<dyn Remote>, server: &DavServer) {
    let describe = remote.describe();
    let sub = describe.rsplit('/').next().unwrap();
    let fresh = WebdavRemote::new(
        WebdavConfig::new(format!("{}{sub}/fresh/root/", server.url)).with_password(USER, PASSWORD),
    )
    .unwrap();
    fresh
        .write(&p("a.txt"), bytes_stream("a"), WriteMeta::default())
        .await
        .unwrap();
    assert_eq!(names(remote, "fresh/root").await, ["a.txt"]);
}

async fn special_names(remote: &Arc<dyn Remote>, lists_dot_names: bool) {
    let tricky = [
        "a b#?%&+;=@,$!'()[]~.txt",
        "ünï cødé 日本.txt",
        "percent %2F not slash",
        ".hidden",
    ];
    for name in tricky {
        let path = p("names").join(name).unwrap();
        let e = remote
            .write(
                &path,
                bytes_stream(name.as_bytes().to_vec()),
                WriteMeta::default(),
            )
            .await
            .unwrap_or_else(|e| panic!("write {name:?}: {e}"));
        assert_eq!(e.path, path);
        assert_eq!(e.size, name.len() as u64);
        let back = collect_bytes(remote.read(&path, None).await.unwrap())
            .await
            .unwrap();
        assert_eq!(&back[..], name.as_bytes(), "{name:?}");
        assert_eq!(remote.stat(&path).await.unwrap().size, name.len() as u64);
    }
    let mut expected: Vec<String> = tricky
        .iter()
        .filter(|s| lists_dot_names || !s.starts_with('.'))
        .map(|s| s.to_string())
        .collect();
    expected.sort();
    assert_eq!(names(remote, "names").await, expected);
}

async fn streamed_file_and_ranges(remote: &Arc<dyn Remote>) {
    let content = data(3 * 1024 * 1024 + 17);
    let chunks: Vec<Result<Bytes, Error>> = content
        .chunks(64 * 1024)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let path = p("big/file.bin");
    let meta = WriteMeta {
        size: Some(content.len() as u64),
        ..Default::default()
    };
    let e = remote
        .write(&path, futures::stream::iter(chunks).boxed(), meta)
        .await
        .unwrap();
    assert_eq!(e.size, content.len() as u64);
    let back = collect_bytes(remote.read(&path, None).await.unwrap())
        .await
        .unwrap();
    assert!(back[..] == content[..], "content differs");
    for (a, b) in [
        (0u64, 1u64),
        (100, 70_000),
        (3 * 1024 * 1024, 3 * 1024 * 1024 + 17),
    ] {
        let got = collect_bytes(remote.read(&path, Some(a..b)).await.unwrap())
            .await
            .unwrap();
        assert!(got[..] == content[a as usize..b as usize], "range {a}..{b}");
    }
    // A range running past the end gives the bytes up to the end.
    let n = content.len() as u64;
    let got = collect_bytes(remote.read(&path, Some(n - 5..n + 100)).await.unwrap())
        .await
        .unwrap();
    assert_eq!(&got[..], &content[content.len() - 5..]);
}

async fn failed_write_leaves_nothing(remote: &Arc<dyn Remote>, server: &DavServer) {
    let path = p("fail/never.bin");
    let err = remote
        .write(&path, failing_body(200_000), WriteMeta::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io, "{err:?}");
    assert_eq!(
        remote.stat(&path).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    // An existing file keeps its old content when a replacement fails.
    remote
        .write(&path, bytes_stream("old"), WriteMeta::default())
        .await
        .unwrap();
    assert!(
        remote
            .write(&path, failing_body(100_000), WriteMeta::default())
            .await
            .is_err()
    );
    let back = collect_bytes(remote.read(&path, None).await.unwrap())
        .await
        .unwrap();
    assert_eq!(&back[..], b"old");
    assert_eq!(names(remote, "fail").await, ["never.bin"]);
    let describe = remote.describe();
    let sub = describe.rsplit('/').next().unwrap();
    let leftovers: Vec<_> = disk_names(&server.data.join(sub))
        .into_iter()
        .filter(|n| n.starts_with(".cloudsync-tmp-"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "temp files left behind: {leftovers:?}"
    );
}

/// Bodies that do not match `WriteMeta::size` — cut by an error half-way, shorter, longer —
/// never replace an existing file, and leave no temp file on `data` (the server's disk).
pub async fn bad_replacement_keeps_the_old_file(remote: &Arc<dyn Remote>, disk: &Path) {
    let path = p("replace/old.bin");
    let old = data_of(50_000, 3);
    remote
        .write(&path, bytes_stream(old.clone()), WriteMeta::default())
        .await
        .unwrap();
    let size = 200_000u64;
    let cases: Vec<(&str, ByteStream, ErrorKind)> = vec![
        ("errors half-way", failing_body(100_000), ErrorKind::Io),
        (
            "shorter",
            pieces(data(150_000)),
            ErrorKind::ConditionNotMatch,
        ),
        (
            "longer",
            pieces(data(250_000)),
            ErrorKind::ConditionNotMatch,
        ),
        (
            "longer by a byte",
            pieces(data(200_001)),
            ErrorKind::ConditionNotMatch,
        ),
    ];
    for (what, body, kind) in cases {
        let meta = WriteMeta {
            size: Some(size),
            ..Default::default()
        };
        let e = remote.write(&path, body, meta).await.unwrap_err();
        assert_eq!(e.kind(), kind, "{what}: {e:?}");
        let back = collect_bytes(remote.read(&path, None).await.unwrap())
            .await
            .unwrap();
        assert!(back[..] == old[..], "{what}: the old file changed");
        assert_eq!(names(remote, "replace").await, ["old.bin"], "{what}");
    }
    let describe = remote.describe();
    let sub = describe.rsplit('/').next().unwrap();
    let leftovers: Vec<_> = disk_names(&disk.join(sub))
        .into_iter()
        .filter(|n| n.starts_with(".cloudsync-tmp-"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "temp files left behind: {leftovers:?}"
    );
}

fn data_of(n: usize, seed: usize) -> Vec<u8> {
    (0..n).map(|i| ((i + seed) * 13 % 241) as u8).collect()
}

/// `bytes` as a stream of 64 KiB pieces.
fn pieces(bytes: Vec<u8>) -> ByteStream {
    let v: Vec<Result<Bytes, Error>> = bytes
        .chunks(64 * 1024)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures::stream::iter(v).boxed()
}

async fn directories_are_never_clobbered(remote: &Arc<dyn Remote>) {
    remote
        .write(
            &p("tree/sub/keep.txt"),
            bytes_stream("keep"),
            WriteMeta::default(),
        )
        .await
        .unwrap();
    let e = remote.remove_file(&p("tree/sub")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e:?}");
    let e = remote.remove_dir(&p("tree")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e:?}");
    assert!(
        remote
            .write(&p("tree/sub"), bytes_stream("x"), WriteMeta::default())
            .await
            .is_err()
    );
    remote
        .write(&p("tree/f.txt"), bytes_stream("f"), WriteMeta::default())
        .await
        .unwrap();
    assert!(
        remote
            .rename(&p("tree/f.txt"), &p("tree/sub"))
            .await
            .is_err()
    );
    assert!(remote.copy(&p("tree/f.txt"), &p("tree/sub")).await.is_err());
    let e = remote.mkdir(&p("tree/f.txt")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e:?}");
    assert_eq!(names(remote, "tree/sub").await, ["keep.txt"]);
    let e = remote.list(&p("tree/f.txt")).await;
    let e = match e {
        Err(e) => e,
        Ok(s) => s.try_collect::<Vec<_>>().await.unwrap_err(),
    };
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e:?}");
}

async fn wrong_password_is_auth(server: &DavServer) {
    let bad = WebdavRemote::new(
        WebdavConfig::new(server.url.clone()).with_password(USER, format!("{PASSWORD}-wrong")),
    )
    .unwrap();
    let e = bad.stat(&RemotePath::root()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth, "{e:?}");
    assert!(!e.is_retryable());
}

/// `X-OC-Mtime` on upload sets the modtime that `stat` and `list` report.
pub async fn modtime_round_trip(remote: Arc<dyn Remote>) {
    let when = OffsetDateTime::from_unix_timestamp(981_173_106).unwrap();
    let path = p("m/t.txt");
    let meta = WriteMeta {
        modtime: Some(when),
        ..Default::default()
    };
    let e = remote
        .write(&path, bytes_stream("tick"), meta)
        .await
        .unwrap();
    assert_eq!(e.modtime, Some(when));
    assert_eq!(remote.stat(&path).await.unwrap().modtime, Some(when));
    let listed: Vec<_> = remote
        .list(&p("m"))
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(listed[0].modtime, Some(when));
}

//! Faults a scripted server (tests/common/fake.rs) produces on demand: symbolic links that
//! cannot be probed, a rename into place that fails, and listings no real server sends (a
//! 1 MiB line, a listing that never ends, sizes and times out of range), and a session that a
//! refused listing spoils.

mod common;

use std::sync::Arc;

use cloudsync_core::{Entry, ErrorKind, Remote, RemotePath, Result, WriteMeta, bytes_stream};
use common::fake::{Body, FakeFtp, Hook, Reply};
use futures::StreamExt;

fn path(s: &str) -> RemotePath {
    RemotePath::new(s).unwrap()
}

async fn list_all(remote: &dyn Remote, dir: &str) -> Result<Vec<Result<Entry>>> {
    Ok(remote.list(&path(dir)).await?.collect().await)
}

fn listing(lines: &str) -> Reply {
    Reply::Data {
        start: "150 Here it comes.".into(),
        body: Body::Bytes(lines.as_bytes().to_vec()),
        end: "226 Transfer complete.".into(),
    }
}

#[tokio::test]
async fn symlink_that_cannot_be_probed_is_an_error_entry_and_a_dangling_one_is_skipped() {
    let hook: Hook = Arc::new(|cmd, _| match cmd {
        "MLSD /" => Some(listing(
            "type=file;size=1;modify=20200101000000; a.txt\r\n\
             type=dir;modify=20200101000000; secret\r\n\
             type=OS.unix=slink:/secret; link\r\n\
             type=OS.unix=slink:missing/x; gone\r\n",
        )),
        "CWD /secret" => Some(Reply::Line("550 Failed to change directory.".into())),
        _ => None,
    });
    let fake = FakeFtp::start(hook).await;
    let remote = fake.config().build().await.unwrap();
    let entries = list_all(&remote, "").await.unwrap();
    let ok: Vec<&str> = entries
        .iter()
        .filter_map(|e| e.as_ref().ok().map(|e| e.path.as_str()))
        .collect();
    assert_eq!(ok, ["a.txt", "secret"], "{entries:?}");
    let errors: Vec<_> = entries.iter().filter_map(|e| e.as_ref().err()).collect();
    assert_eq!(errors.len(), 1, "{entries:?}");
    assert_ne!(errors[0].kind(), ErrorKind::NotFound, "{:?}", errors[0]);
    assert_ne!(errors[0].kind(), ErrorKind::InvalidInput, "{:?}", errors[0]);
    assert!(errors[0].to_string().contains("link"), "{}", errors[0]);
}

/// Refuses to rename over an existing file, and fails any rename of the new content.
fn refusing_rename_hook() -> Hook {
    Arc::new(|cmd, s| {
        let to = cmd.strip_prefix("RNTO ")?;
        let from = s.rnfr.clone()?;
        if s.files.contains_key(to) {
            s.rnfr = None;
            return Some(Reply::Line("553 Will not overwrite.".into()));
        }
        if s.files.get(&from).is_some_and(|c| c.starts_with(b"new")) {
            s.rnfr = None;
            return Some(Reply::Line("451 Rename failed.".into()));
        }
        None
    })
}

#[tokio::test]
async fn failed_rename_into_place_keeps_the_old_file() {
    let fake = FakeFtp::start(refusing_rename_hook()).await;
    fake.put("/f.txt", b"old");
    fake.put("/src.txt", b"new content");
    let remote = fake.config().build().await.unwrap();

    let e = remote
        .write(&path("f.txt"), bytes_stream("new"), WriteMeta::default())
        .await
        .unwrap_err();
    assert_ne!(e.kind(), ErrorKind::NotFound, "{e:?}");
    let files = fake.files();
    assert_eq!(files.get("/f.txt").map(Vec::as_slice), Some(&b"old"[..]));

    remote
        .rename(&path("src.txt"), &path("f.txt"))
        .await
        .unwrap_err();
    let files = fake.files();
    assert_eq!(files.get("/f.txt").map(Vec::as_slice), Some(&b"old"[..]));
    assert_eq!(
        files.get("/src.txt").map(Vec::as_slice),
        Some(&b"new content"[..])
    );
    assert_eq!(files.len(), 2, "{:?}", files.keys());
}

#[tokio::test]
async fn rename_over_a_refusing_server_replaces_and_leaves_nothing_behind() {
    // Only overwriting is refused: the old file is moved aside, the new one takes its place.
    let hook: Hook = Arc::new(|cmd, s| {
        let to = cmd.strip_prefix("RNTO ")?;
        s.files.contains_key(to).then(|| {
            s.rnfr = None;
            Reply::Line("553 Will not overwrite.".into())
        })
    });
    let fake = FakeFtp::start(hook).await;
    fake.put("/f.txt", b"old");
    let remote = fake.config().build().await.unwrap();
    remote
        .write(&path("f.txt"), bytes_stream("newer"), WriteMeta::default())
        .await
        .unwrap();
    let files = fake.files();
    assert_eq!(files.len(), 1, "{:?}", files.keys());
    assert_eq!(files.get("/f.txt").map(Vec::as_slice), Some(&b"newer"[..]));
}

#[tokio::test]
async fn hostile_listings_give_errors_not_panics() {
    let hook: Hook = Arc::new(|cmd, _| match cmd {
        "MLSD /huge" => Some(listing(&"x".repeat(1024 * 1024))),
        "MLSD /endless" => Some(Reply::Data {
            start: "150 Here it comes.".into(),
            body: Body::Endless(b"type=file;size=1; f\r\n".to_vec()),
            end: "226 Transfer complete.".into(),
        }),
        "MLSD /big" => Some(listing(
            "type=file;size=18446744073709551615;modify=20200101000000; max\r\n",
        )),
        "MLSD /times" => Some(listing(
            "type=file;size=1;modify=99991231235959; late\r\n\
             type=file;size=1;modify=00000101000000; early\r\n",
        )),
        _ => None,
    });
    let fake = FakeFtp::start(hook).await;
    for d in ["/huge", "/endless", "/big", "/times"] {
        fake.state.lock().unwrap().dirs.insert(d.into());
    }
    let remote = fake.config().build().await.unwrap();
    for dir in ["huge", "endless"] {
        // Not printed: a failure here would carry a megabyte of listing.
        let kind = list_all(&remote, dir).await.err().map(|e| e.kind());
        assert_eq!(kind, Some(ErrorKind::Protocol), "{dir}");
    }
    let big = list_all(&remote, "big").await.unwrap();
    assert!(
        matches!(big.as_slice(), [Err(e)] if e.kind() == ErrorKind::Protocol),
        "{big:?}"
    );
    let times = list_all(&remote, "times").await.unwrap();
    assert_eq!(times.len(), 2, "{times:?}");
    for e in &times {
        let e = e.as_ref().unwrap();
        assert_eq!(e.modtime, None, "{e:?}");
    }
    // The session is still usable afterwards.
    assert!(list_all(&remote, "").await.unwrap().len() >= 4);
}

/// A refused listing whose parent cannot be listed either, on the same session or a fresh
/// one (421 every time), stays an error: it is never taken for absence.
#[tokio::test]
async fn a_refusal_that_cannot_be_confirmed_stays_an_error() {
    let hook: Hook = Arc::new(|cmd, _| {
        (cmd == "MLSD /a").then(|| Reply::Line("421 Service not available.".into()))
    });
    let fake = FakeFtp::start(hook).await;
    fake.put("/a/f.txt", b"x");
    let remote = fake.config().build().await.unwrap();
    let e = list_all(&remote, "a/missing").await.unwrap_err();
    assert_ne!(e.kind(), ErrorKind::NotFound, "{e:?}");
    assert_eq!(
        logins(&fake),
        2,
        "one fresh session for the parent, no more"
    );
}

/// How many times a client logged in, from the server's log.
fn logins(fake: &FakeFtp) -> usize {
    let s = fake.state.lock().unwrap();
    s.log.iter().filter(|l| l.starts_with("USER ")).count()
}

/// A refused listing is confirmed absent by listing its parent on the same session: one login
/// in all. When the refusal spoiled the session (Pure-FTPd answers the next listing with 421),
/// the parent is listed again on a fresh one, and the folder is still found absent.
#[tokio::test]
async fn a_refused_listing_is_confirmed_on_the_same_session_unless_it_was_spoiled() {
    for spoils in [false, true] {
        let spoiled = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = spoiled.clone();
        let hook: Hook = Arc::new(move |cmd, _| {
            use std::sync::atomic::Ordering::SeqCst;
            if !cmd.starts_with("MLSD ") {
                return None;
            }
            if flag.swap(false, SeqCst) {
                return Some(Reply::Line("421 Service not available.".into()));
            }
            if spoils && cmd == "MLSD /a/missing" {
                flag.store(true, SeqCst);
            }
            None
        });
        let fake = FakeFtp::start(hook).await;
        fake.put("/a/f.txt", b"x");
        let remote = fake.config().build().await.unwrap();
        let e = list_all(&remote, "a/missing").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "spoils {spoils}: {e:?}");
        let want = if spoils { 2 } else { 1 };
        assert_eq!(logins(&fake), want, "spoils {spoils}");
        assert!(!spoiled.load(std::sync::atomic::Ordering::SeqCst));
    }
}

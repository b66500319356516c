//! Answers no real server here gives on demand, from a scripted server (`common/scripted.rs`):
//! members the server could not describe, members that changed between two requests, huge
//! answers and huge names. Each test pins what the backend must make of them so the engine
//! never turns "could not tell" into "absent".

mod common;

use std::sync::Arc;

use bytes::Bytes;
use cloudsync_core::{
    ErrorKind, Remote, RemotePath, WriteMeta, bytes_stream, collect_bytes, memory, ops,
};
use cloudsync_webdav::{WebdavConfig, WebdavRemote};
use common::scripted::{
    Scripted, dir, file, multistatus, props_failed, reply, start, status_only, streamed,
};
use futures::{StreamExt, TryStreamExt};

fn p(s: &str) -> RemotePath {
    RemotePath::new(s).unwrap()
}

fn remote(s: &Scripted) -> Arc<dyn Remote> {
    Arc::new(WebdavRemote::new(WebdavConfig::new(format!("{}/dav/", s.base))).unwrap())
}

/// A server whose `/dav/` listing is `members` (after the root's own response).
fn listing(members: Vec<String>) -> Scripted {
    start(move |req| match (req.method.as_str(), req.path.as_str()) {
        ("PROPFIND", "/dav/") => {
            let mut all = vec![dir("/dav/")];
            all.extend(members.iter().cloned());
            multistatus(&all)
        }
        ("GET", _) => reply(200, "aaa"),
        _ => reply(404, ""),
    })
}

/// Everything `list` yields, errors included.
async fn list_all(r: &Arc<dyn Remote>, d: &str) -> Vec<cloudsync_core::Result<String>> {
    let mut out = Vec::new();
    let mut s = r.list(&p(d)).await.unwrap();
    while let Some(x) = s.next().await {
        out.push(x.map(|e| e.name().to_owned()));
    }
    out
}

/// Members the server could not describe (a failed propstat, a failed response) void the
/// directory: a sync from such a listing keeps every destination copy and reports an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undescribed_members_keep_their_destination_copies() {
    let server = listing(vec![
        file("/dav/a.txt", 3),
        props_failed("/dav/b.txt", "403 Forbidden"),
        status_only("/dav/c.txt", "500 Internal Server Error"),
        props_failed("/dav/d.txt", "500 Internal Server Error"),
    ]);
    let src = remote(&server);
    let dst = memory();
    for name in ["a.txt", "b.txt", "c.txt", "d.txt"] {
        dst.write(
            &p(name),
            bytes_stream(format!("copy of {name}")),
            WriteMeta::default(),
        )
        .await
        .unwrap();
    }
    let summary = ops::sync(&src, &dst, &ops::SyncOptions::default())
        .await
        .unwrap();
    assert!(!summary.errors.is_empty(), "{summary:?}");
    assert_eq!(summary.deleted, 0, "{summary:?}");
    for name in ["b.txt", "c.txt", "d.txt"] {
        let back = collect_bytes(dst.read(&p(name), None).await.unwrap())
            .await
            .unwrap();
        assert_eq!(back, Bytes::from(format!("copy of {name}")), "{name}");
    }
}

/// Every failed member is an error of a kind the engine reads as "listing broken" — never
/// `InvalidInput` (one bad name, the rest stands) or `NotFound` (absent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_members_are_errors_of_a_voiding_kind() {
    let cases = [
        (
            status_only("/dav/x", "403 Forbidden"),
            ErrorKind::PermissionDenied,
        ),
        (
            status_only("/dav/x", "500 Internal Server Error"),
            ErrorKind::Transient,
        ),
        (
            status_only("/dav/x", "400 Bad Request"),
            ErrorKind::Protocol,
        ),
        (status_only("/dav/x", "410 Gone"), ErrorKind::Protocol),
        (status_only("/dav/x", "302 Found"), ErrorKind::Protocol),
        (status_only("/dav/x", "garbage"), ErrorKind::Protocol),
        (
            props_failed("/dav/x", "403 Forbidden"),
            ErrorKind::PermissionDenied,
        ),
        (
            props_failed("/dav/x", "424 Failed Dependency"),
            ErrorKind::Protocol,
        ),
        (
            "<d:response><d:href>/dav/x</d:href><d:propstat><d:prop><d:resourcetype/>\
             <d:getcontentlength>99999999999999999999</d:getcontentlength></d:prop>\
             <d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>"
                .to_owned(),
            ErrorKind::Protocol,
        ),
        (
            "<d:response><d:href>/dav/x</d:href><d:href>/dav/y</d:href>\
             <d:status>HTTP/1.1 200 OK</d:status></d:response>"
                .to_owned(),
            ErrorKind::Protocol,
        ),
    ];
    for (member, kind) in cases {
        let server = listing(vec![file("/dav/a.txt", 3), member.clone()]);
        let r = remote(&server);
        let got = list_all(&r, "").await;
        let err = got
            .iter()
            .find_map(|x| x.as_ref().err())
            .unwrap_or_else(|| panic!("no error for {member}: {got:?}"));
        assert_eq!(err.kind(), kind, "{member}: {err}");
        // The same answer for `stat` of that path: an error, not "not found".
        let server = start(move |req| match req.method.as_str() {
            "PROPFIND" => multistatus(std::slice::from_ref(&member)),
            _ => reply(404, ""),
        });
        let e = remote(&server).stat(&p("x")).await.unwrap_err();
        assert_eq!(e.kind(), kind, "stat: {e}");
    }
}

/// A member whose own status is 404 is not there (RFC 4918 §14.24 with RFC 9110 §15.5.5): it
/// is left out, the rest of the listing stands; `stat` says not found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_answered_404_is_absent() {
    let server = listing(vec![
        file("/dav/a.txt", 3),
        status_only("/dav/gone.txt", "404 Not Found"),
    ]);
    let r = remote(&server);
    let got: Vec<String> = list_all(&r, "")
        .await
        .into_iter()
        .map(|x| x.unwrap())
        .collect();
    assert_eq!(got, ["a.txt"]);
    let server = start(|_| multistatus(&[status_only("/dav/gone.txt", "404 Not Found")]));
    let e = remote(&server).stat(&p("gone.txt")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}

/// `remove_dir` sends its recursive `DELETE` only when the answer right before it shows the
/// directory alone; any member — answered 404, failed, or with an href it cannot read —
/// refuses with `Conflict`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_dir_never_deletes_members_it_could_not_read() {
    let members = [
        status_only("/dav/d/late.txt", "404 Not Found"),
        status_only("/dav/d/late.txt", "403 Forbidden"),
        props_failed("/dav/d/late.txt", "500 Internal Server Error"),
        file("/dav/d/bad%ff", 1),
        file("/elsewhere/x", 1),
        file(&format!("/dav/d/{}", "n".repeat(5000)), 1),
    ];
    for member in members {
        let m = member.clone();
        let server = start(move |req| match req.method.as_str() {
            "PROPFIND" => multistatus(&[dir("/dav/d/"), m.clone()]),
            _ => reply(204, ""),
        });
        let e = remote(&server).remove_dir(&p("d")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict, "{member}: {e}");
        assert!(!server.saw("DELETE"), "{member}: DELETE was sent");
        assert!(e.to_string().len() < 1000, "{}", e.to_string().len());
    }
    // The directory alone: removed.
    let server = start(|req| match req.method.as_str() {
        "PROPFIND" => multistatus(&[dir("/dav/d/")]),
        _ => reply(204, ""),
    });
    remote(&server).remove_dir(&p("d")).await.unwrap();
    assert!(server.saw("DELETE"));
    // An answer that does not describe the directory: nothing deleted.
    let server = start(|req| match req.method.as_str() {
        "PROPFIND" => multistatus(&[]),
        _ => reply(204, ""),
    });
    assert!(remote(&server).remove_dir(&p("d")).await.is_err());
    assert!(!server.saw("DELETE"));
}

/// A multistatus answer of hundreds of MB is refused once it passes the cap (64 MiB), with an
/// error that voids the listing — not read on without bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_multistatus_is_refused() {
    let server = start(|req| match req.method.as_str() {
        "PROPFIND" => {
            let head = Bytes::from_static(
                br#"<?xml version="1.0"?><d:multistatus xmlns:d="DAV:"><d:response><d:href>/dav/</d:href><d:propstat><d:prop><d:resourcetype><d:collection/></d:resourcetype></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>"#,
            );
            // 300 MiB of members (1 KiB each), streamed.
            let member = Bytes::from(file(&format!("/dav/{}", "m".repeat(850)), 1));
            let members = futures::stream::iter(0..300 * 1024).map(move |_| member.clone());
            let tail = futures::stream::iter([Bytes::from_static(b"</d:multistatus>")]);
            streamed(
                207,
                futures::stream::iter([head]).chain(members).chain(tail),
            )
        }
        _ => reply(404, ""),
    });
    let r = remote(&server);
    let mut s = r.list(&RemotePath::root()).await.unwrap();
    let mut n = 0u64;
    let err = loop {
        match s.try_next().await {
            Ok(Some(_)) => n += 1,
            Ok(None) => panic!("the whole answer was read ({n} entries)"),
            Err(e) => break e,
        }
    };
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
    assert!(n < 80_000, "{n} entries before the cap");
}

/// Names of 5,000 bytes are cut in error messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_names_are_cut_in_errors() {
    let long = "é".repeat(2500);
    for member in [
        status_only(&format!("/dav/{long}"), "500 Internal Server Error"),
        file(&format!("/elsewhere/{long}"), 1),
    ] {
        let server = listing(vec![member]);
        let got = list_all(&remote(&server), "").await;
        let err = got.iter().find_map(|x| x.as_ref().err()).unwrap();
        let text = err.to_string();
        assert!(text.len() < 1000, "{} bytes: {text}", text.len());
        assert!(text.contains('…'), "{text}");
    }
}

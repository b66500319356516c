//! The login directory is part of where a relative root is: a `PWD` that fails at connect
//! time (a reset, a `421`) must fail the connect, not resolve the root against `/` — that
//! points the remote at another directory for its whole life (found by the fault matrix on
//! vsftpd: the calm rerun then failed with "553 Could not create file" under `/matrix-…`).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use cloudsync_core::{Remote, RemotePath, WriteMeta, bytes_stream};
use common::fake::{FakeFtp, Hook, Reply};

#[tokio::test]
async fn a_failed_pwd_does_not_move_a_relative_root_to_the_server_root() {
    let pwds = Arc::new(AtomicUsize::new(0));
    let counter = pwds.clone();
    let hook: Hook = Arc::new(move |cmd, _| {
        if cmd != "PWD" {
            return None;
        }
        // The first PWD fails as a dying connection's would; later ones answer.
        Some(Reply::Line(
            if counter.fetch_add(1, Ordering::SeqCst) == 0 {
                "421 Service not available, closing control connection.".into()
            } else {
                "257 \"/home/u\" is the current directory".into()
            },
        ))
    });
    let fake = FakeFtp::start(hook).await;
    {
        let mut s = fake.state.lock().unwrap();
        s.dirs.insert("/home".into());
        s.dirs.insert("/home/u".into());
        s.dirs.insert("/home/u/data".into());
    }
    let Ok(remote) = fake.config().with_root("data").build().await else {
        // Refusing to connect is right: the next attempt learns the login directory.
        return;
    };
    assert!(pwds.load(Ordering::SeqCst) >= 1, "no PWD was sent");
    let written = remote
        .write(
            &RemotePath::new("f.txt").unwrap(),
            bytes_stream("x"),
            WriteMeta::default(),
        )
        .await;
    let files: Vec<String> = fake.state.lock().unwrap().files.keys().cloned().collect();
    assert!(
        !files.iter().any(|f| f == "/data/f.txt"),
        "the root `data` was resolved against `/`, not the login directory: wrote {files:?} \
         ({written:?})"
    );
    assert!(written.is_ok(), "{written:?}");
    assert_eq!(files, ["/home/u/data/f.txt"]);
}

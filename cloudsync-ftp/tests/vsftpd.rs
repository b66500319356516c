//! vsftpd specifics: no MLSD, MLST or MFMT, so this runs the `LIST` parser with `MDTM` times
//! and the `MDTM time path` form of setting times. (The conformance suite runs in
//! `conformance.rs`.)

mod common;

use std::sync::{Arc, LazyLock};

use cloudsync_core::ops::{self, SyncOptions};
use cloudsync_core::{ErrorKind, Remote, RemotePath};
use common::{Ftpd, Kind};
use futures::StreamExt;

static SERVER: LazyLock<Ftpd> = LazyLock::new(|| Ftpd::start(Kind::Vsftpd));

fn chmod(p: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

async fn put(remote: &dyn Remote, p: &str, content: &'static str) {
    remote
        .write(
            &RemotePath::new(p).unwrap(),
            cloudsync_core::bytes_stream(content),
            cloudsync_core::WriteMeta::default(),
        )
        .await
        .unwrap();
}

/// vsftpd answers "550 Failed to change directory." for a folder the user cannot enter, exactly
/// as for a missing one: a sync from it must keep the destination's copies and report an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_from_a_folder_that_cannot_be_entered_deletes_nothing() {
    let src: Arc<dyn Remote> = Arc::new(SERVER.config("shut").build().await.unwrap());
    put(src.as_ref(), "open/a.txt", "a").await;
    put(src.as_ref(), "shut/b.txt", "b").await;
    let dst_dir = tempfile::tempdir().unwrap();
    let dst: Arc<dyn Remote> = Arc::new(
        cloudsync_local::LocalConfig::new(dst_dir.path())
            .build()
            .unwrap(),
    );
    let first = ops::sync(&src, &dst, &SyncOptions::default())
        .await
        .unwrap();
    assert!(first.is_ok(), "{:?}", first.errors);
    assert!(dst_dir.path().join("shut/b.txt").is_file());

    let shut = SERVER.data.join("shut/shut");
    chmod(&shut, 0o000);
    let e = src.list(&RemotePath::new("shut").unwrap()).await.err();
    let second = ops::sync(&src, &dst, &SyncOptions::default()).await;
    chmod(&shut, 0o755);
    let second = second.unwrap();
    assert!(
        dst_dir.path().join("shut/b.txt").is_file(),
        "the copy of a file in the unreadable folder was deleted: {second:?}"
    );
    assert!(!second.is_ok(), "{second:?}");
    let e = e.expect("listing a folder that cannot be entered succeeded");
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e:?}");
    assert!(dst_dir.path().join("open/a.txt").is_file());
    // A folder that really is missing is still NotFound.
    let e = src
        .list(&RemotePath::new("nope/deeper").unwrap())
        .await
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e:?}");
}

/// A folder that can be entered but not read: vsftpd sends no lines and "226 Transfer done
/// (but failed to open directory).", which is an error, not an empty folder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_folder_is_an_error_not_empty() {
    let remote = SERVER.config("noread").build().await.unwrap();
    put(&remote, "d/f.txt", "x").await;
    let d = SERVER.data.join("noread/d");
    chmod(&d, 0o311);
    let r = remote.list(&RemotePath::new("d").unwrap()).await;
    let r = match r {
        Ok(s) => s
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>(),
        Err(e) => Err(e),
    };
    chmod(&d, 0o755);
    let e = r.expect_err("an unreadable folder was listed as empty");
    assert_ne!(e.kind(), ErrorKind::NotFound, "{e:?}");
}

/// Through the layers the registry puts around every remote it opens, errors name the
/// operation, the remote (as described, password hidden) and the path, though the backend
/// itself names at most the path: a missing file's `stat` and `read`, a missing directory's
/// listing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_layers_name_operation_remote_and_path() {
    use cloudsync_core::Registry;
    let remote = Registry::new().layered(Arc::new(SERVER.config("ctx").build().await.unwrap()));
    cloudsync_core::testkit::assert_missing_paths_named(&remote).await;
}

/// A download from FTP into a local directory, cut mid-stream, leaves a partial file there;
/// the next run resumes it with a ranged read (`REST`): the result is exact and the kept
/// bytes are not downloaded again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_download_resumes_into_the_local_partial_file() {
    use cloudsync_core::testkit::{Chaos, Fault, FaultPlan, Op, Rule};
    let src: Arc<dyn Remote> = Arc::new(SERVER.config("resume-down").build().await.unwrap());
    let size = 3 * 1024 * 1024 + 5;
    let data = cloudsync_core::testkit::random_bytes(size, 23);
    src.write(
        &RemotePath::new("big.bin").unwrap(),
        cloudsync_core::bytes_stream(data.clone()),
        cloudsync_core::WriteMeta::default(),
    )
    .await
    .unwrap();
    let after = fastrand::u64(size as u64 / 4..size as u64 * 3 / 4);
    let cut: Arc<dyn Remote> = Arc::new(Chaos::new(
        src.clone(),
        FaultPlan {
            rules: vec![Rule {
                op: Op::Read,
                path: Some(RemotePath::new("big.bin").unwrap()),
                skip: 0,
                times: 1,
                fault: Fault::ReadCut {
                    after,
                    kind: ErrorKind::Transient,
                },
            }],
        },
    ));
    let tmp = tempfile::tempdir().unwrap();
    let dst: Arc<dyn Remote> = Arc::new(
        cloudsync_local::LocalConfig::new(tmp.path())
            .build()
            .unwrap(),
    );
    let opts = SyncOptions {
        resume_above: Some(1024 * 1024),
        retries: 1,
        low_level_retries: 0,
        ..Default::default()
    };
    let first = ops::copy(&cut, &dst, &opts).await.unwrap();
    assert_eq!(first.errors.len(), 1, "{first:?}");
    assert!(!tmp.path().join("big.bin").exists());
    let kept: u64 = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(cloudsync_core::PART_PREFIX)
        })
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(kept > 0 && kept <= after, "kept {kept} of a cut at {after}");

    let second = ops::copy(&src, &dst, &opts).await.unwrap();
    assert!(second.is_ok(), "{second:?}");
    assert_eq!(second.bytes_resumed, kept);
    assert_eq!(std::fs::read(tmp.path().join("big.bin")).unwrap(), data);
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
}

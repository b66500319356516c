//! Data-safety cases against a real OpenSSH sshd: symlinks are neither walked nor purged
//! through (so nothing outside the root is deleted), and replacing a file without
//! `posix-rename@openssh.com` never loses the old version.

mod common;

use std::path::Path;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use cloudsync_core::ops::{self, SyncOptions};
use cloudsync_core::{
    ErrorKind, Remote, RemotePath, WriteMeta, bytes_stream, collect_bytes, is_temp_name,
};
use cloudsync_local::LocalConfig;
use cloudsync_sftp::SftpRemote;
use futures::TryStreamExt;

static SSHD: LazyLock<common::Sshd> = LazyLock::new(|| common::Sshd::start(false));

fn p(s: &str) -> RemotePath {
    RemotePath::new(s).unwrap()
}

/// A directory outside every remote's root, holding two files.
fn outside(name: &str) -> std::path::PathBuf {
    let dir = SSHD.data.join(name);
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("keep.txt"), "outside").unwrap();
    std::fs::write(dir.join("sub/keep2.txt"), "outside too").unwrap();
    dir
}

fn assert_outside_intact(dir: &Path) {
    assert_eq!(std::fs::read(dir.join("keep.txt")).unwrap(), b"outside");
    assert_eq!(
        std::fs::read(dir.join("sub/keep2.txt")).unwrap(),
        b"outside too"
    );
}

async fn names(remote: &SftpRemote, dir: &str) -> Vec<(String, bool)> {
    let mut v: Vec<(String, bool)> = remote
        .list(&p(dir))
        .await
        .unwrap()
        .map_ok(|e| (e.path.as_str().to_owned(), e.is_dir()))
        .try_collect()
        .await
        .unwrap();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_from_empty_source_does_not_delete_through_a_symlink() {
    let out = outside("sync-outside");
    let root = SSHD.data.join("sync-links");
    let dst = Arc::new(
        SftpRemote::connect(SSHD.config("sync-links"))
            .await
            .unwrap(),
    );
    std::fs::write(root.join("mine.txt"), "mine").unwrap();
    std::fs::create_dir_all(root.join("dir")).unwrap();
    std::os::unix::fs::symlink(&out, root.join("dir/link")).unwrap();
    std::os::unix::fs::symlink(&out, root.join("toplink")).unwrap();

    // Skipped in listings, and invisible to stat.
    assert_eq!(
        names(&dst, "").await,
        [("dir".to_owned(), true), ("mine.txt".to_owned(), false)]
    );
    assert_eq!(names(&dst, "dir").await, []);
    let e = dst.stat(&p("toplink")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");

    let empty = tempfile::tempdir().unwrap();
    let src: Arc<dyn Remote> = Arc::new(LocalConfig::new(empty.path()).build().unwrap());
    let dst_dyn: Arc<dyn Remote> = dst.clone();
    let opts = SyncOptions {
        retry_backoff: Duration::from_millis(50),
        ..Default::default()
    };
    let summary = ops::sync(&src, &dst_dyn, &opts).await.unwrap();
    assert!(summary.is_ok(), "{:?}", summary.errors);
    assert_outside_intact(&out);
    assert!(!root.join("mine.txt").exists());
    assert!(root.join("toplink").is_symlink());

    // Followed on request: the link is then a directory like any other.
    let following = SftpRemote::connect(SSHD.config("sync-links").with_follow_symlinks(true))
        .await
        .unwrap();
    assert!(
        names(&following, "")
            .await
            .contains(&("toplink".to_owned(), true))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_removes_links_not_their_targets() {
    let out = outside("purge-outside");
    let root = SSHD.data.join("purge-links");
    let r = SftpRemote::connect(SSHD.config("purge-links").with_follow_symlinks(true))
        .await
        .unwrap();
    std::fs::create_dir_all(root.join("tree/deeper")).unwrap();
    std::fs::write(root.join("tree/deeper/f.txt"), "f").unwrap();
    std::os::unix::fs::symlink(&out, root.join("tree/deeper/link")).unwrap();
    std::os::unix::fs::symlink(&out, root.join("toplink")).unwrap();

    r.purge(&p("tree")).await.unwrap();
    assert!(!root.join("tree").exists());
    assert_outside_intact(&out);

    // A purge of the link itself removes the link.
    r.purge(&p("toplink")).await.unwrap();
    assert!(!root.join("toplink").is_symlink());
    assert_outside_intact(&out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_without_posix_rename_keeps_the_old_file_on_failure() {
    let root = SSHD.data.join("no-posix-rename");
    let r = SftpRemote::connect(SSHD.config("no-posix-rename"))
        .await
        .unwrap();
    r.disable_posix_rename_for_tests();
    let target = p("d/target.txt");
    r.write(&target, bytes_stream("old"), WriteMeta::default())
        .await
        .unwrap();

    // The rename into place fails (its source is gone): the old content stays.
    let e = r.rename(&p("d/missing.txt"), &target).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert_eq!(std::fs::read(root.join("d/target.txt")).unwrap(), b"old");

    // Atomic writes and renames still replace.
    r.write(&target, bytes_stream("new"), WriteMeta::default())
        .await
        .unwrap();
    let got = collect_bytes(r.read(&target, None).await.unwrap())
        .await
        .unwrap();
    assert_eq!(&got[..], b"new");
    r.write(
        &p("d/other.txt"),
        bytes_stream("other"),
        WriteMeta::default(),
    )
    .await
    .unwrap();
    r.rename(&p("d/other.txt"), &target).await.unwrap();
    assert_eq!(std::fs::read(root.join("d/target.txt")).unwrap(), b"other");

    // A directory in the way is not moved aside.
    std::fs::create_dir_all(root.join("d/dir")).unwrap();
    std::fs::write(root.join("d/dir/inner"), "inner").unwrap();
    let e = r
        .write(&p("d/dir"), bytes_stream("x"), WriteMeta::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert_eq!(std::fs::read(root.join("d/dir/inner")).unwrap(), b"inner");

    // Nothing is left under a temporary name.
    let mut left: Vec<String> = std::fs::read_dir(root.join("d"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["dir", "target.txt"]);
    assert!(!left.iter().any(|n| is_temp_name(n)));
}

/// A tmpfs of `size` mounted on `dir` for one test, unmounted when dropped.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(dir: &Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "cannot mount a tmpfs on {} (this test needs root, as sshd does)",
            dir.display()
        );
        SmallDisk(dir.to_owned())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// A server that fails the WRITE of a small upload (its disk is full) while OPEN and CLOSE
/// succeed: the upload is an error, and neither the final name nor a temporary file is
/// left with the part that fit. (Small files send WRITE, FSETSTAT and CLOSE together; the
/// WRITE's answer must still decide.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_refused_for_lack_of_space_leaves_nothing_visible() {
    let root = SSHD.data.join("full-disk");
    let _disk = SmallDisk::mount(&root, "64k");
    // Leave 8 KiB free.
    std::fs::write(root.join("filler"), vec![7u8; 56 * 1024]).unwrap();
    let r = SftpRemote::connect(SSHD.config("full-disk")).await.unwrap();
    let body = vec![1u8; 24 * 1024];
    let meta = WriteMeta {
        size: Some(body.len() as u64),
        ..WriteMeta::default()
    };
    let e = r
        .write(&p("small.bin"), bytes_stream(body), meta)
        .await
        .unwrap_err();
    assert_ne!(e.kind(), ErrorKind::NotFound, "{e}");
    let mut left: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["filler"], "after: {e}");
    assert!(left.iter().all(|n| !is_temp_name(n)));
}

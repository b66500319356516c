//! Behaviour specific to the local backend: symlinks, special and unreadable files, hidden
//! temp files, nanosecond modtimes, kernel copies, non-UTF-8 names, roots and config.
#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use cloudsync_core::{
    BackendFactory, Entry, Error, ErrorKind, Registry, Remote, RemotePath, WriteMeta, bytes_stream,
};
use cloudsync_local::{LocalConfig, LocalFactory, LocalRemote};
use futures::{StreamExt, TryStreamExt};
use time::OffsetDateTime;

/// Everything logged by this test binary (tracing events are emitted on blocking threads, so
/// a global subscriber is needed).
fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || Capture(writer.clone()))
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        buf
    })
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn log_text() -> String {
    String::from_utf8_lossy(&logs().lock().unwrap()).into_owned()
}

fn p(s: &str) -> RemotePath {
    RemotePath::new(s).unwrap()
}

fn open(dir: &Path) -> LocalRemote {
    LocalConfig::new(dir).build().unwrap()
}

/// Lists `dir`, keeping error items.
async fn list_all(r: &LocalRemote, dir: &str) -> Vec<Result<Entry, Error>> {
    r.list(&p(dir)).await.unwrap().collect().await
}

/// What writes in progress have in `dir`: every name on disk (temp names while a write runs),
/// and on Linux the files without a name (`O_TMPFILE`) this process holds open there, as
/// `#<inode>`. Which of the two a write uses depends on the filesystem and on whether the
/// process has written before (its first write links itself under a temp name to learn how
/// linking works), so tests look for either, each file once.
fn in_progress(dir: &Path) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let mut named_inodes = Vec::new();
    let mut found: Vec<String> = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if let Ok(m) = e.metadata() {
            named_inodes.push(m.ino());
        }
        found.push(e.file_name().to_string_lossy().into_owned());
    }
    #[cfg(target_os = "linux")]
    if let (Ok(fds), Ok(dir)) = (std::fs::read_dir("/proc/self/fd"), dir.canonicalize()) {
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let name = target
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            // `#<inode> (deleted)`: an unnamed file.
            let ino = name
                .strip_prefix('#')
                .and_then(|n| n.split(' ').next())
                .and_then(|n| n.parse::<u64>().ok());
            if target.parent() == Some(dir.as_path())
                && let Some(ino) = ino
                && !named_inodes.contains(&ino)
            {
                found.push(name);
            }
        }
    }
    found
}

/// Whether `name` (from [`in_progress`]) is a file of a write in progress.
fn ours_in_progress(name: &str) -> bool {
    cloudsync_core::is_temp_name(name) || name.starts_with('#')
}

fn ok_names(items: &[Result<Entry, Error>]) -> Vec<String> {
    let mut v: Vec<String> = items
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|e| e.path.to_string())
        .collect();
    v.sort();
    v
}

async fn read_all(r: &LocalRemote, path: &str) -> Result<Vec<u8>, Error> {
    let s = r.read(&p(path), None).await?;
    let chunks: Vec<Bytes> = s.try_collect().await?;
    Ok(chunks.concat())
}

#[tokio::test]
async fn symlinks_are_skipped_with_a_warning_unless_followed() {
    logs();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("real.txt"), "real").unwrap();
    std::fs::create_dir(dir.path().join("realdir")).unwrap();
    std::os::unix::fs::symlink("real.txt", dir.path().join("link.txt")).unwrap();
    std::os::unix::fs::symlink("realdir", dir.path().join("linkdir")).unwrap();

    let r = open(dir.path());
    let items = list_all(&r, "").await;
    assert!(items.iter().all(Result::is_ok), "{items:?}");
    assert_eq!(ok_names(&items), ["real.txt", "realdir"]);
    let logged = log_text();
    assert!(
        logged.contains("skipping symbolic link") && logged.contains("link.txt"),
        "no warning for the skipped link in: {logged}"
    );
    let e = r.stat(&p("link.txt")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);

    let followed = LocalConfig::new(dir.path())
        .with_follow_symlinks(true)
        .build()
        .unwrap();
    let items = list_all(&followed, "").await;
    assert_eq!(
        ok_names(&items),
        ["link.txt", "linkdir", "real.txt", "realdir"]
    );
    let link = items
        .iter()
        .flatten()
        .find(|e| e.name() == "link.txt")
        .unwrap();
    assert!(link.is_file() && link.size == 4);
    let linkdir = items
        .iter()
        .flatten()
        .find(|e| e.name() == "linkdir")
        .unwrap();
    assert!(linkdir.is_dir());
    assert_eq!(
        followed.stat(&p("link.txt")).await.unwrap().size,
        4,
        "stat follows the link"
    );
}

#[tokio::test]
async fn broken_and_looping_links_are_error_entries_when_followed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fine.txt"), "ok").unwrap();
    std::os::unix::fs::symlink("nowhere", dir.path().join("broken")).unwrap();
    std::os::unix::fs::symlink("loop-b", dir.path().join("loop-a")).unwrap();
    std::os::unix::fs::symlink("loop-a", dir.path().join("loop-b")).unwrap();
    let r = LocalConfig::new(dir.path())
        .with_follow_symlinks(true)
        .build()
        .unwrap();
    let items = list_all(&r, "").await;
    assert_eq!(ok_names(&items), ["fine.txt"]);
    let mut errs: Vec<String> = items
        .iter()
        .filter_map(|r| r.as_ref().err())
        .map(|e| e.path().unwrap_or_default().to_owned())
        .collect();
    errs.sort();
    assert_eq!(errs, ["broken", "loop-a", "loop-b"], "{items:?}");
}

/// Whether this process can open a file it has no permission bits for (root can).
fn privileged(dir: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let probe = dir.join("probe");
    std::fs::write(&probe, "x").unwrap();
    std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(0o000)).unwrap();
    let can = std::fs::File::open(&probe).is_ok();
    std::fs::remove_file(&probe).unwrap();
    can
}

#[tokio::test]
async fn unreadable_files_are_errors_naming_the_path() {
    use std::os::unix::fs::PermissionsExt;
    logs();
    let dir = tempfile::tempdir().unwrap();
    let r = open(dir.path());

    // A FIFO cannot be read as a file: reading it is an error naming it, and it must not block
    // (opening a FIFO for reading waits for a writer). Listings skip it with a warning.
    let status = std::process::Command::new("mkfifo")
        .arg(dir.path().join("pipe"))
        .status()
        .expect("mkfifo (coreutils) is needed for this test");
    assert!(status.success());
    let e = tokio::time::timeout(Duration::from_secs(10), read_all(&r, "pipe"))
        .await
        .expect("reading a FIFO blocked")
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert_eq!(e.path(), Some("pipe"), "{e}");
    assert_eq!(
        r.stat(&p("pipe")).await.unwrap_err().kind(),
        ErrorKind::Unsupported
    );
    let items = list_all(&r, "").await;
    assert!(ok_names(&items).is_empty(), "{items:?}");
    assert!(
        log_text().contains("skipping special file"),
        "{}",
        log_text()
    );
    let e = r
        .hash(&p("pipe"), cloudsync_core::HashKind::Md5)
        .await
        .unwrap_err();
    assert_eq!(e.path(), Some("pipe"));

    // Permission bits: only meaningful when not running as root (root reads anything).
    std::fs::write(dir.path().join("secret.txt"), "s").unwrap();
    std::fs::set_permissions(
        dir.path().join("secret.txt"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("closed")).unwrap();
    std::fs::write(dir.path().join("closed/inner.txt"), "i").unwrap();
    std::fs::set_permissions(
        dir.path().join("closed"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    if privileged(dir.path()) {
        eprintln!(
            "running with privileges that ignore permission bits: \
             chmod 000 cannot make a file unreadable here, so the FIFO case above and the \
             broken-link entries (other test) stand in for it"
        );
        assert_eq!(read_all(&r, "secret.txt").await.unwrap(), b"s");
    } else {
        let e = read_all(&r, "secret.txt").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
        assert_eq!(e.path(), Some("secret.txt"));
        let e = r.list(&p("closed")).await.err().unwrap();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
        assert_eq!(e.path(), Some("closed"));
    }
    std::fs::set_permissions(
        dir.path().join("closed"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
}

#[tokio::test]
async fn non_utf8_names_are_error_entries_naming_the_path() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("d")).unwrap();
    let bad = std::ffi::OsStr::from_bytes(b"bad-\xff-name.txt");
    std::fs::write(dir.path().join("d").join(bad), "x").unwrap();
    std::fs::write(dir.path().join("d/good.txt"), "y").unwrap();
    let r = open(dir.path());
    let items = list_all(&r, "d").await;
    assert_eq!(ok_names(&items), ["d/good.txt"]);
    let errs: Vec<&Error> = items.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(errs.len(), 1, "{items:?}");
    assert_eq!(errs[0].kind(), ErrorKind::InvalidInput);
    let path = errs[0].path().unwrap();
    assert!(
        path.ends_with("d/bad-\u{fffd}-name.txt"),
        "error path {path:?} should name the file"
    );
}

#[tokio::test]
async fn temp_files_are_listed_and_failed_writes_leave_none() {
    let dir = tempfile::tempdir().unwrap();
    let stale = ".cloudsync-tmp-0000000100000000.left.txt";
    std::fs::write(dir.path().join(stale), "stale").unwrap();
    std::fs::write(dir.path().join("visible.txt"), "v").unwrap();
    let r = open(dir.path());
    // Listed as they are; the engine never pairs them, and a sync removes old ones.
    assert_eq!(ok_names(&list_all(&r, "").await), [stale, "visible.txt"]);

    // While a write is in progress its file exists, unnamed or under a temp name, and only a
    // temp name can be listed.
    let (tx, rx) = tokio::sync::mpsc::channel::<cloudsync_core::Result<Bytes>>(1);
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
    .boxed();
    let target = p("sub/new.txt");
    let write = r.write(&target, body, WriteMeta::default());
    let probe = async {
        tx.send(Ok(Bytes::from_static(b"first part")))
            .await
            .unwrap();
        let sub = dir.path().join("sub");
        let mut on_disk = Vec::new();
        for _ in 0..200 {
            on_disk = in_progress(&sub);
            if !on_disk.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(on_disk.len(), 1, "{on_disk:?}");
        assert!(ours_in_progress(&on_disk[0]), "{on_disk:?}");
        assert!(
            on_disk[0].starts_with('#') || on_disk[0].ends_with(".new.txt"),
            "{on_disk:?}"
        );
        let listed = ok_names(&list_all(&r, "sub").await);
        let temp = |n: &String| cloudsync_core::is_temp_name(n.rsplit('/').next().unwrap_or(n));
        assert!(listed.iter().all(temp), "{listed:?}");
        tx.send(Err(Error::new(ErrorKind::Io, "source broke")))
            .await
            .unwrap();
    };
    let (res, ()) = futures::join!(write, probe);
    let e = res.unwrap_err();
    assert_eq!(e.message(), "source broke");
    let left = in_progress(&dir.path().join("sub"));
    assert!(left.is_empty(), "a failed write left {left:?}");
}

#[tokio::test]
async fn nanosecond_modtimes_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let r = open(dir.path());
    let t = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_789).unwrap();
    let e = r
        .write(
            &p("t.txt"),
            bytes_stream("time"),
            WriteMeta {
                modtime: Some(t),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(e.modtime, Some(t));
    let on_disk = std::fs::metadata(dir.path().join("t.txt"))
        .unwrap()
        .modified()
        .unwrap();
    let want = std::time::UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
    assert_eq!(on_disk, want);
    assert_eq!(r.stat(&p("t.txt")).await.unwrap().modtime, Some(t));
    let before_epoch = OffsetDateTime::from_unix_timestamp_nanos(-1_000_000_001).unwrap();
    r.set_modtime(&p("t.txt"), before_epoch).await.unwrap();
    assert_eq!(
        r.stat(&p("t.txt")).await.unwrap().modtime,
        Some(before_epoch)
    );
}

#[tokio::test]
async fn write_from_file_copies_bytes_and_modtime() {
    let src_dir = tempfile::tempdir().unwrap();
    let dst_dir = tempfile::tempdir().unwrap();
    let src = open(src_dir.path());
    let dst = open(dst_dir.path());
    let data: Vec<u8> = (0..3_000_017u32).map(|i| (i * 7 % 251) as u8).collect();
    let t = OffsetDateTime::from_unix_timestamp_nanos(1_600_000_000_000_000_001).unwrap();
    src.write(
        &p("in/file.bin"),
        bytes_stream(data.clone()),
        WriteMeta {
            modtime: Some(t),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let entry = src.stat(&p("in/file.bin")).await.unwrap();
    let local = src.local_path(&entry.path).unwrap();
    assert_eq!(local, src_dir.path().join("in/file.bin"));
    let written = dst
        .write_from_file(&p("out/copy.bin"), &local, WriteMeta::from_entry(&entry))
        .await
        .unwrap();
    assert_eq!(written.size, data.len() as u64);
    assert_eq!(written.modtime, Some(t));
    assert_eq!(
        std::fs::read(dst_dir.path().join("out/copy.bin")).unwrap(),
        data
    );
    assert_eq!(dst.stat(&p("out/copy.bin")).await.unwrap().modtime, Some(t));

    // A source that changed size since it was listed is refused, and nothing is left behind.
    let mut stale = WriteMeta::from_entry(&entry);
    stale.size = Some(entry.size + 1);
    let e = dst
        .write_from_file(&p("out/stale.bin"), &local, stale)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConditionNotMatch);
    let left: Vec<_> = std::fs::read_dir(dst_dir.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["copy.bin"]);

    // Server-side copy keeps content and modtime too.
    let c = src.copy(&p("in/file.bin"), &p("in/dup.bin")).await.unwrap();
    assert_eq!(c.modtime, Some(t));
    assert_eq!(
        std::fs::read(src_dir.path().join("in/dup.bin")).unwrap(),
        data
    );
}

#[tokio::test]
async fn missing_root_opens_lists_not_found_and_is_created_by_a_write() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("not/yet");
    let r = open(&root);
    let e = r.list(&RemotePath::root()).await.err().unwrap();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    r.write(&p("f.txt"), bytes_stream("x"), WriteMeta::default())
        .await
        .unwrap();
    assert_eq!(std::fs::read(root.join("f.txt")).unwrap(), b"x");
}

#[tokio::test]
async fn relative_roots_resolve_against_the_current_directory() {
    let r = open(Path::new("some/relative/dir"));
    let want: PathBuf = std::env::current_dir().unwrap().join("some/relative/dir");
    assert_eq!(r.root(), want);
    assert_eq!(r.describe(), want.display().to_string());
    assert!(!want.exists(), "opening must not create the root");
}

#[tokio::test]
async fn factory_opens_urls_paths_and_sections() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a b.txt"), "x").unwrap();
    let mut reg = Registry::new();
    reg.register(Arc::new(LocalFactory));

    let url = url::Url::from_directory_path(dir.path()).unwrap();
    let r = reg.open_url(url.as_str()).await.unwrap();
    assert_eq!(r.stat(&p("a b.txt")).await.unwrap().size, 1);

    let r = reg
        .open(
            dir.path().to_str().unwrap(),
            &cloudsync_core::Config::default(),
        )
        .await
        .unwrap();
    assert_eq!(r.describe(), dir.path().display().to_string());

    let e = LocalFactory
        .open(serde_json::json!({ "follow_symlinks": true }))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConfigInvalid);
    assert!(e.message().contains("`root`"), "{e}");
    let e = LocalFactory
        .open(serde_json::json!({ "root": "/tmp", "follow_links": true }))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConfigInvalid);
    assert!(e.message().contains("follow_links"), "{e}");
    let e = reg.open_url("file://example.com/x").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConfigInvalid);
}

#[tokio::test]
async fn kinds_of_misuse() {
    let dir = tempfile::tempdir().unwrap();
    let r = open(dir.path());
    r.mkdir(&p("d")).await.unwrap();
    r.write(&p("f"), bytes_stream("x"), WriteMeta::default())
        .await
        .unwrap();
    assert_eq!(
        r.remove_file(&p("d")).await.unwrap_err().kind(),
        ErrorKind::Conflict
    );
    assert_eq!(
        read_all(&r, "d").await.unwrap_err().kind(),
        ErrorKind::Conflict
    );
    assert_eq!(
        r.mkdir(&p("f")).await.unwrap_err().kind(),
        ErrorKind::Conflict
    );
    assert_eq!(
        r.write(
            &p("f/under-a-file"),
            bytes_stream("x"),
            WriteMeta::default()
        )
        .await
        .unwrap_err()
        .kind(),
        ErrorKind::Conflict
    );
    assert_eq!(
        r.write(&RemotePath::root(), bytes_stream("x"), WriteMeta::default())
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidInput
    );
    // A long name still gets a temp name within the 255-byte limit.
    let long = "n".repeat(250);
    r.write(&p(&long), bytes_stream("long"), WriteMeta::default())
        .await
        .unwrap();
    assert_eq!(read_all(&r, &long).await.unwrap(), b"long");
}

#[tokio::test]
async fn an_abandoned_write_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let r = open(dir.path());
    // A body that yields one chunk and then never ends: the caller gives up on the write.
    let body = futures::stream::once(async { Ok(Bytes::from_static(b"partial")) })
        .chain(futures::stream::pending())
        .boxed();
    let sub = dir.path().join("a");
    let target = p("a/slow.txt");
    let write = tokio::time::timeout(
        Duration::from_millis(500),
        r.write(&target, body, WriteMeta::default()),
    );
    let during = async {
        tokio::time::sleep(Duration::from_millis(250)).await;
        in_progress(&sub)
    };
    let (res, temps_during) = futures::join!(write, during);
    assert!(
        res.is_err(),
        "the write should still be waiting for its body"
    );
    assert!(
        temps_during.len() == 1 && ours_in_progress(&temps_during[0]),
        "the write should have a file of its own while in progress: {temps_during:?}"
    );
    // The writing thread notices the dropped body and removes (or closes) its file.
    let mut left = Vec::new();
    for _ in 0..200 {
        left = in_progress(&sub);
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(left.is_empty(), "an abandoned write left {left:?}");
}

#[tokio::test]
async fn a_root_that_is_a_symlink_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("real")).unwrap();
    std::fs::write(dir.path().join("real/f.txt"), "f").unwrap();
    std::os::unix::fs::symlink("real", dir.path().join("link")).unwrap();
    let r = open(&dir.path().join("link"));
    assert!(r.stat(&RemotePath::root()).await.unwrap().is_dir());
    assert_eq!(ok_names(&list_all(&r, "").await), ["f.txt"]);
    r.write(&p("g.txt"), bytes_stream("g"), WriteMeta::default())
        .await
        .unwrap();
    assert_eq!(std::fs::read(dir.path().join("real/g.txt")).unwrap(), b"g");
}

#[tokio::test]
async fn nothing_is_changed_through_a_directory_link_out_of_the_root() {
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("root");
    let out = base.path().join("outside");
    std::fs::create_dir_all(root.join("real")).unwrap();
    std::fs::create_dir_all(out.join("emptydir")).unwrap();
    std::fs::create_dir_all(out.join("sub")).unwrap();
    std::fs::write(out.join("keep.txt"), "outside").unwrap();
    std::fs::write(out.join("sub/inner.txt"), "inner").unwrap();
    std::fs::write(root.join("x.txt"), "x").unwrap();
    std::os::unix::fs::symlink(&out, root.join("a")).unwrap();
    let src = base.path().join("src.txt");
    std::fs::write(&src, "src").unwrap();
    let old = std::fs::metadata(out.join("keep.txt"))
        .unwrap()
        .modified()
        .unwrap();

    let r = open(&root);
    let refused = |res: Result<(), Error>, what: &str| {
        let e = res.expect_err(what);
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{what}: {e}");
        assert!(
            e.message().contains("`a` is a symbolic link"),
            "{what}: {e}"
        );
    };
    let meta = WriteMeta::default;
    refused(
        r.write(&p("a/b.txt"), bytes_stream("new"), meta())
            .await
            .map(drop),
        "write",
    );
    refused(
        r.write_from_file(&p("a/c.txt"), &src, meta())
            .await
            .map(drop),
        "write_from_file",
    );
    refused(r.copy(&p("x.txt"), &p("a/x.txt")).await.map(drop), "copy");
    refused(r.mkdir(&p("a/new")).await, "mkdir below");
    refused(r.mkdir(&p("a")).await, "mkdir of the link");
    refused(r.remove_file(&p("a/keep.txt")).await, "remove_file");
    refused(r.remove_dir(&p("a/emptydir")).await, "remove_dir");
    refused(r.purge(&p("a/sub")).await, "purge");
    refused(
        r.rename(&p("a/keep.txt"), &p("moved.txt")).await.map(drop),
        "rename from",
    );
    refused(
        r.rename(&p("x.txt"), &p("a/sub/x.txt")).await.map(drop),
        "rename to",
    );
    let t = OffsetDateTime::from_unix_timestamp(1_000_000_000).unwrap();
    refused(r.set_modtime(&p("a/keep.txt"), t).await, "set_modtime");

    // The outside tree is untouched.
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["emptydir", "keep.txt", "sub"]);
    assert_eq!(std::fs::read(out.join("sub/inner.txt")).unwrap(), b"inner");
    let now = std::fs::metadata(out.join("keep.txt")).unwrap();
    assert_eq!(now.modified().unwrap(), old);
    assert_eq!(std::fs::read(root.join("x.txt")).unwrap(), b"x");

    // Real directories are unaffected, and a purge of the link removes the link only.
    r.write(&p("real/deep/f.txt"), bytes_stream("f"), meta())
        .await
        .unwrap();
    r.rename(&p("real/deep/f.txt"), &p("real/g.txt"))
        .await
        .unwrap();
    r.purge(&p("a")).await.unwrap();
    assert!(!root.join("a").exists() && out.join("keep.txt").is_file());

    // Followed on request (rclone's -L): writes then go through links.
    std::os::unix::fs::symlink(&out, root.join("a")).unwrap();
    let following = LocalConfig::new(&root)
        .with_follow_symlinks(true)
        .build()
        .unwrap();
    following
        .write(&p("a/b.txt"), bytes_stream("new"), meta())
        .await
        .unwrap();
    assert_eq!(std::fs::read(out.join("b.txt")).unwrap(), b"new");
}

/// Opened by the registry (as the CLI does), a local remote's errors name the operation, the
/// remote and the path, though the backend itself names only paths: a missing file's `stat`,
/// a missing directory's listing, a bad entry inside a listing (its own path kept), a write
/// whose parent is a file.
#[tokio::test]
async fn registry_opened_errors_name_operation_remote_and_path() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("d")).unwrap();
    let bad = std::ffi::OsStr::from_bytes(b"bad-\xff.txt");
    std::fs::write(dir.path().join("d").join(bad), "x").unwrap();
    std::fs::write(dir.path().join("file"), "f").unwrap();
    let mut registry = Registry::new();
    registry.register(Arc::new(LocalFactory));
    let location = dir.path().display().to_string();
    let r = registry
        .open(&location, &cloudsync_core::Config::default())
        .await
        .unwrap();
    let remote = r.describe();

    let e = r.stat(&p("missing.txt")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(
        (e.operation(), e.remote(), e.path()),
        (Some("stat"), Some(remote.as_str()), Some("missing.txt"))
    );
    assert_eq!(
        e.to_string(),
        format!("not found: {} (stat {remote}: missing.txt)", e.message())
    );

    let e = r.list(&p("nodir")).await.err().unwrap();
    assert_eq!(
        (e.kind(), e.operation(), e.remote(), e.path()),
        (
            ErrorKind::NotFound,
            Some("list"),
            Some(remote.as_str()),
            Some("nodir")
        )
    );

    let items: Vec<_> = r.list(&p("d")).await.unwrap().collect().await;
    let e = items.into_iter().find_map(Result::err).unwrap();
    assert_eq!(
        (e.operation(), e.remote()),
        (Some("list"), Some(remote.as_str()))
    );
    assert!(e.path().unwrap().ends_with("d/bad-\u{fffd}.txt"), "{e}");

    let w = r
        .write(&p("file/x"), bytes_stream("x"), WriteMeta::default())
        .await;
    let e = w.unwrap_err();
    assert_eq!(
        (e.operation(), e.remote(), e.path()),
        (Some("write"), Some(remote.as_str()), Some("file/x"))
    );
}

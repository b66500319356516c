//! SFTP-specific behaviour against a real OpenSSH sshd: host keys, authentication, names the
//! server returns, error kinds, round trips, URLs, shell hashes; syncs between two roots on
//! one server, and ingestion from an SFTP drop folder. (The conformance suite runs in
//! `conformance.rs`.)

mod common;

use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime};

use cloudsync_core::ingest::{IngestOptions, ingest};
use cloudsync_core::ops::{self, SyncOptions};
use cloudsync_core::testkit::{disk_tree, random_bytes};
use cloudsync_core::{
    ErrorKind, HashKind, MultiHasher, Remote, RemotePath, WriteMeta, bytes_stream, collect_bytes,
};
use cloudsync_local::LocalConfig;
use cloudsync_sftp::{SftpConfig, SftpFactory, SftpRemote};
use futures::{StreamExt, TryStreamExt};
use time::OffsetDateTime;

/// One server for this test binary (exec allowed, for shell hashes); it stops when the binary
/// exits.
static SSHD: LazyLock<common::Sshd> = LazyLock::new(|| common::Sshd::start(true));

fn p(s: &str) -> RemotePath {
    RemotePath::new(s).unwrap()
}

async fn connect(config: SftpConfig) -> SftpRemote {
    SftpRemote::connect(config).await.unwrap()
}

/// The directory `name` of the server as a remote.
async fn sftp_at(name: &str) -> Arc<dyn Remote> {
    Arc::new(connect(SSHD.config(name)).await)
}

/// Sync options with quick retries.
fn sync_opts() -> SyncOptions {
    SyncOptions {
        retry_backoff: Duration::from_millis(50),
        ..Default::default()
    }
}

async fn names(remote: &SftpRemote, dir: &str) -> Vec<String> {
    let mut v: Vec<String> = remote
        .list(&p(dir))
        .await
        .unwrap()
        .map_ok(|e| e.path.as_str().to_owned())
        .try_collect()
        .await
        .unwrap();
    v.sort();
    v
}

#[tokio::test]
async fn unknown_host_key_is_refused_with_its_fingerprint() {
    let fp = common::fingerprint(&SSHD.host_key_pub);
    let empty = SSHD.state.join("known_hosts_empty");
    std::fs::write(&empty, "# nothing known\n").unwrap();
    let cfg = SSHD
        .config("hostkey-unknown")
        .with_known_hosts(empty.display().to_string());
    let e = SftpRemote::connect(cfg).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    assert!(!e.is_retryable());
    assert!(e.message().contains(&fp), "{e} should show {fp}");
    assert!(e.message().contains("not known"), "{e}");
}

#[tokio::test]
async fn changed_host_key_is_refused_with_its_fingerprint() {
    let other = SSHD.state.join("other_host_key");
    common::keygen(&other, "impostor");
    let file = SSHD.state.join("known_hosts_changed");
    std::fs::write(
        &file,
        format!(
            "[127.0.0.1]:{} {}\n",
            SSHD.port,
            common::key_line(&other.with_extension("pub"))
        ),
    )
    .unwrap();
    let cfg = SSHD
        .config("hostkey-changed")
        .with_known_hosts(file.display().to_string());
    let e = SftpRemote::connect(cfg).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    let fp = common::fingerprint(&SSHD.host_key_pub);
    assert!(e.message().contains("MISMATCH"), "{e}");
    assert!(e.message().contains(&fp), "{e} should show {fp}");

    // The explicit opt-out accepts it.
    let cfg = SSHD
        .config("hostkey-changed")
        .with_known_hosts(file.display().to_string())
        .with_insecure_accept_any_host_key(true);
    let r = connect(cfg).await;
    assert!(names(&r, "").await.is_empty());
}

#[tokio::test]
async fn hashed_known_hosts_entries_are_accepted() {
    let file = SSHD.state.join("known_hosts_hashed");
    std::fs::copy(&SSHD.known_hosts, &file).unwrap();
    let status = std::process::Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&file)
        .output()
        .unwrap();
    assert!(status.status.success());
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("|1|"), "not hashed: {text}");
    let cfg = SSHD
        .config("hostkey-hashed")
        .with_known_hosts(file.display().to_string());
    let r = connect(cfg).await;
    r.write(&p("x"), bytes_stream("x"), WriteMeta::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn wrong_password_or_key_is_auth() {
    // Password: root may only log in with a key here, so any password is refused.
    let mut cfg = SftpConfig::new("127.0.0.1", "root")
        .with_port(SSHD.port)
        .with_known_hosts(SSHD.known_hosts.display().to_string())
        .with_use_agent(false);
    cfg.password = Some("not-the-password".into());
    let e = SftpRemote::connect(cfg).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    assert!(!e.is_retryable());
    assert!(e.message().contains("password"), "{e}");

    // A key the server does not know.
    let stranger = SSHD.state.join("stranger_key");
    common::keygen(&stranger, "stranger");
    let cfg = SSHD
        .config("auth")
        .with_key_file(stranger.display().to_string());
    let e = SftpRemote::connect(cfg).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    assert!(e.message().contains("stranger_key"), "{e}");
}

#[tokio::test]
async fn library_round_trip_is_byte_and_mtime_identical() {
    let r = connect(SSHD.config("roundtrip")).await;
    let local = tempfile::tempdir().unwrap();
    // Uneven sizes around the request size, and one large file.
    let sizes = [
        0usize,
        1,
        32 * 1024 - 1,
        255 * 1024 + 17,
        3 * 1024 * 1024 + 5,
    ];
    let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_123);
    for (i, size) in sizes.iter().enumerate() {
        let data = random_bytes(*size, i as u64);
        let src = local.path().join(format!("src-{i}"));
        std::fs::write(&src, &data).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&src)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        let path = p(&format!("dir {i}/file {i}.bin"));
        let meta = WriteMeta {
            size: Some(*size as u64),
            modtime: Some(OffsetDateTime::from(mtime)),
            ..Default::default()
        };
        let entry = r.write_from_file(&path, &src, meta).await.unwrap();
        assert_eq!(entry.size, *size as u64);
        assert_eq!(entry.modtime, Some(OffsetDateTime::from(mtime)));

        // Back down to a local file with the remote's modtime.
        let stat = r.stat(&path).await.unwrap();
        let body = collect_bytes(r.read(&path, None).await.unwrap())
            .await
            .unwrap();
        let dst = local.path().join(format!("dst-{i}"));
        std::fs::write(&dst, &body).unwrap();
        let remote_mtime: SystemTime = stat.modtime.unwrap().into();
        std::fs::File::options()
            .write(true)
            .open(&dst)
            .unwrap()
            .set_modified(remote_mtime)
            .unwrap();
        assert_eq!(std::fs::read(&dst).unwrap(), data, "content of size {size}");
        assert_eq!(
            std::fs::metadata(&dst).unwrap().modified().unwrap(),
            std::fs::metadata(&src).unwrap().modified().unwrap()
        );
        // The bytes on the server's disk too.
        let on_disk = SSHD
            .data
            .join("roundtrip")
            .join(format!("dir {i}"))
            .join(format!("file {i}.bin"));
        assert_eq!(std::fs::read(on_disk).unwrap(), data);
    }
    // A range across request boundaries.
    let data = random_bytes(sizes[4], 4);
    let got = collect_bytes(
        r.read(&p("dir 4/file 4.bin"), Some(100_000..1_000_001))
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(&got[..], &data[100_000..1_000_001]);
}

#[tokio::test]
async fn listings_validate_names_and_show_our_temporary_files() {
    let r = connect(SSHD.config("names")).await;
    let dir = SSHD.data.join("names");
    std::fs::write(dir.join("plain.txt"), "x").unwrap();
    std::fs::write(
        dir.join(".cloudsync-tmp-0123456789abcdef.plain.txt"),
        "partial",
    )
    .unwrap();
    std::fs::write(dir.join("back\\slash"), "y").unwrap();
    std::os::unix::fs::symlink("plain.txt", dir.join("link.txt")).unwrap();
    std::os::unix::fs::symlink("missing", dir.join("broken")).unwrap();
    std::fs::create_dir(dir.join("sub")).unwrap();
    let fifo = std::process::Command::new("mkfifo")
        .arg(dir.join("fifo"))
        .status()
        .unwrap();
    assert!(fifo.success());
    let bad = std::ffi::OsStr::from_bytes(b"latin1-\xe9");
    std::fs::write(dir.join(bad), "z").unwrap();

    let items: Vec<_> = r.list(&RemotePath::root()).await.unwrap().collect().await;
    let mut ok: Vec<(String, bool, u64)> = Vec::new();
    let mut errors = Vec::new();
    for item in items {
        match item {
            Ok(e) => ok.push((e.path.as_str().to_owned(), e.is_dir(), e.size)),
            Err(e) => errors.push(e),
        }
    }
    ok.sort();
    // Our temporary files are listed (the engine never pairs them, and removes old ones).
    assert_eq!(
        ok,
        [
            (
                ".cloudsync-tmp-0123456789abcdef.plain.txt".to_owned(),
                false,
                7
            ),
            ("back\\slash".to_owned(), false, 1),
            ("plain.txt".to_owned(), false, 1),
            ("sub".to_owned(), true, 0),
        ]
    );
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].kind(), ErrorKind::InvalidInput);
    assert!(errors[0].message().contains("UTF-8"), "{}", errors[0]);

    // With follow_symlinks the link is listed as what it points to; a broken one is skipped.
    let following = connect(SSHD.config("names").with_follow_symlinks(true)).await;
    let got: Vec<String> = following
        .list(&RemotePath::root())
        .await
        .unwrap()
        .filter_map(|item| async move { item.ok().map(|e| e.path.as_str().to_owned()) })
        .collect()
        .await;
    assert!(got.contains(&"link.txt".to_owned()), "{got:?}");
    assert!(!got.contains(&"broken".to_owned()), "{got:?}");
}

#[tokio::test]
async fn error_kinds_follow_status_codes() {
    let r = connect(SSHD.config("kinds")).await;
    r.write(&p("d/f"), bytes_stream("data"), WriteMeta::default())
        .await
        .unwrap();
    let kind = |e: cloudsync_core::Error| e.kind();
    assert_eq!(
        kind(r.stat(&p("nope")).await.unwrap_err()),
        ErrorKind::NotFound
    );
    assert_eq!(
        kind(r.read(&p("nope"), None).await.err().unwrap()),
        ErrorKind::NotFound
    );
    assert_eq!(
        kind(r.list(&p("nope")).await.err().unwrap()),
        ErrorKind::NotFound
    );
    assert_eq!(
        kind(r.remove_file(&p("nope")).await.unwrap_err()),
        ErrorKind::NotFound
    );
    assert_eq!(
        kind(r.remove_dir(&p("nope")).await.unwrap_err()),
        ErrorKind::NotFound
    );
    assert_eq!(
        kind(r.remove_dir(&p("d")).await.unwrap_err()),
        ErrorKind::Conflict
    );
    assert_eq!(
        kind(r.remove_file(&p("d")).await.unwrap_err()),
        ErrorKind::Conflict
    );
    assert_eq!(
        kind(r.mkdir(&p("d/f")).await.unwrap_err()),
        ErrorKind::Conflict
    );
    assert_eq!(
        kind(r.mkdir(&p("d/f/g")).await.unwrap_err()),
        ErrorKind::Conflict
    );
    r.mkdir(&p("d")).await.unwrap();
    r.mkdir(&p("d/e/f/g")).await.unwrap();
    assert!(r.stat(&p("d/e/f/g")).await.unwrap().is_dir());
    let e = r
        .write(
            &p("d/f/under-a-file"),
            bytes_stream("x"),
            WriteMeta::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert_eq!(e.operation(), Some("mkdir"));
    let e = r
        .write(&p("d/e"), bytes_stream("x"), WriteMeta::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    // The failed write left no temporary file behind.
    let on_disk: Vec<_> = std::fs::read_dir(SSHD.data.join("kinds/d"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(on_disk.len(), 2, "{on_disk:?}");
}

#[tokio::test]
async fn shell_hashes_match_local_hashes() {
    let plain = connect(SSHD.config("hashes")).await;
    assert!(plain.capabilities().hashes.is_empty());
    let r = connect(SSHD.config("hashes").with_shell_hashes(true)).await;
    assert_eq!(r.capabilities().hashes, [HashKind::Md5, HashKind::Sha1]);
    let data = random_bytes(300_000, 9);
    let path = p("it's a \"file\" $(x).bin");
    r.write(&path, bytes_stream(data.clone()), WriteMeta::default())
        .await
        .unwrap();
    let mut h = MultiHasher::new(&[HashKind::Md5, HashKind::Sha1]);
    h.update(&data);
    let want = h.finish();
    for kind in [HashKind::Md5, HashKind::Sha1] {
        assert_eq!(r.hash(&path, kind).await.unwrap(), want.get(kind).unwrap());
        // Without shell hashes the same value comes from a download.
        assert_eq!(
            plain.hash(&path, kind).await.unwrap(),
            want.get(kind).unwrap()
        );
    }
    let e = r.hash(&p("missing"), HashKind::Md5).await.unwrap_err();
    assert!(!e.is_retryable(), "{e}");
}

#[tokio::test]
async fn opens_from_url_and_config_section() {
    let dir = SSHD.data.join("url dir");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("hello.txt"), "hi").unwrap();
    let url = format!(
        "sftp://root@127.0.0.1:{}/{}?key_file={}&known_hosts={}&use_agent=false&connections=2",
        SSHD.port,
        percent_path(&dir.display().to_string()),
        SSHD.client_key.display(),
        SSHD.known_hosts.display()
    );
    let mut registry = cloudsync_core::Registry::new();
    registry.register(Arc::new(SftpFactory));
    let remote = registry.open_url(&url).await.unwrap();
    assert!(
        remote.describe().starts_with("sftp://root@127.0.0.1:"),
        "{}",
        remote.describe()
    );
    assert!(!remote.describe().contains("key"), "{}", remote.describe());
    let e = remote.stat(&p("hello.txt")).await.unwrap();
    assert_eq!(e.size, 2);

    // A config file section, relative root below the login (start) directory.
    let cfg = cloudsync_core::Config::from_toml_str(&format!(
        "[remotes.nas]\ntype = \"sftp\"\nhost = \"127.0.0.1\"\nport = {}\nuser = \"root\"\n\
         key_file = \"{}\"\nknown_hosts = \"{}\"\nuse_agent = false\nroot = \"url dir\"\n",
        SSHD.port,
        SSHD.client_key.display(),
        SSHD.known_hosts.display()
    ))
    .unwrap();
    let remote = registry.open("nas:", &cfg).await.unwrap();
    assert_eq!(remote.stat(&p("hello.txt")).await.unwrap().size, 2);
    let e = registry
        .open_section(&serde_json::json!({"type": "sftp", "host": "127.0.0.1", "hots": 1}))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConfigInvalid);
}

fn percent_path(s: &str) -> String {
    s.trim_start_matches('/')
        .split('/')
        .map(|seg| seg.replace('%', "%25").replace(' ', "%20"))
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_transfers_use_the_pool() {
    let r = Arc::new(connect(SSHD.config("parallel").with_connections(4)).await);
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let r = r.clone();
            tokio::spawn(async move {
                let data = random_bytes(200_000 + i * 1000, i as u64);
                let path = p(&format!("f{i}"));
                r.write(&path, bytes_stream(data.clone()), WriteMeta::default())
                    .await
                    .unwrap();
                let back = collect_bytes(r.read(&path, None).await.unwrap())
                    .await
                    .unwrap();
                assert_eq!(back, data);
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(names(&r, "").await.len(), 12);
    r.close().await;
    // Closed connections are reopened on next use.
    assert_eq!(names(&r, "").await.len(), 12);
}

#[tokio::test]
async fn usage_and_server_side_copy() {
    let r = connect(SSHD.config("usage")).await;
    let caps = r.capabilities();
    assert!(caps.usage && caps.copy && caps.rename);
    let u = r.usage().await.unwrap();
    assert!(
        u.total.unwrap() > 0 && u.free.unwrap() <= u.total.unwrap(),
        "{u:?}"
    );
    let t = OffsetDateTime::from_unix_timestamp(1_500_000_000).unwrap();
    r.write(
        &p("a"),
        bytes_stream("copy me"),
        WriteMeta {
            modtime: Some(t),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let e = r.copy(&p("a"), &p("x/y/b")).await.unwrap();
    assert_eq!((e.size, e.modtime), (7, Some(t)));
    let back = collect_bytes(r.read(&p("x/y/b"), None).await.unwrap())
        .await
        .unwrap();
    assert_eq!(&back[..], b"copy me");
    assert_eq!(r.stat(&p("x/y/b")).await.unwrap().modtime, Some(t));
}

/// Through the layers the registry puts around every remote it opens, errors name the
/// operation, the remote (as described, password hidden) and the path, though the backend
/// itself names at most the path: a missing file's `stat` and `read`, a missing directory's
/// listing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_layers_name_operation_remote_and_path() {
    use cloudsync_core::Registry;
    let remote = Registry::new().layered(std::sync::Arc::new(connect(SSHD.config("ctx")).await));
    cloudsync_core::testkit::assert_missing_paths_named(&remote).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_roots_on_one_server_are_refused_however_spelled() {
    // `nest/x/../b` is `nest/b`, so its subdirectory `nest/b/sub` lies inside the source: a
    // comparison of descriptions misses that, the server locations do not.
    let src = sftp_at("nest/x/../b").await;
    let dst = sftp_at("nest/b/sub").await;
    let p = RemotePath::new("f.txt").unwrap();
    src.write(&p, bytes_stream("data"), WriteMeta::default())
        .await
        .unwrap();
    for (a, b) in [(&src, &dst), (&dst, &src)] {
        let e = ops::sync(a, b, &sync_opts()).await.unwrap_err();
        assert_eq!(e.kind(), cloudsync_core::ErrorKind::InvalidInput, "{e}");
    }
    let written = futures::StreamExt::count(dst.list(&RemotePath::root()).await.unwrap()).await;
    assert_eq!(written, 0, "the refused sync wrote into its own source");
    assert_eq!(src.location(), sftp_at("nest/b/").await.location());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_from_an_sftp_drop_folder() {
    let drop = sftp_at("drop").await;
    let drop_disk = SSHD.data.join("drop");
    let target_dir = tempfile::tempdir().unwrap();
    let target: Arc<dyn Remote> = Arc::new(LocalConfig::new(target_dir.path()).build().unwrap());

    let old = OffsetDateTime::now_utc() - time::Duration::hours(2);
    let settled = |n: i64| WriteMeta {
        modtime: Some(old + time::Duration::seconds(n)),
        ..Default::default()
    };
    let fresh = WriteMeta {
        modtime: Some(OffsetDateTime::now_utc()),
        ..Default::default()
    };
    let big = random_bytes(1024 * 1024 + 3, 11);
    let writes: Vec<(&str, Vec<u8>, WriteMeta)> = vec![
        ("orders/42.csv", b"a,b\n1,2\n".to_vec(), settled(0)),
        ("orders/deep/big.bin", big.clone(), settled(1)),
        ("ümlaut report.txt", "ü".as_bytes().to_vec(), settled(2)),
        ("empty.dat", Vec::new(), settled(3)),
        (".hidden", b"hidden".to_vec(), settled(4)),
        ("_x", b"underscore".to_vec(), settled(5)),
        ("orders/_upload.tmp", b"partial".to_vec(), settled(6)),
        ("still-writing.csv", b"fresh".to_vec(), fresh),
    ];
    for (p, body, meta) in &writes {
        drop.write(
            &RemotePath::new(p).unwrap(),
            bytes_stream(body.clone()),
            meta.clone(),
        )
        .await
        .unwrap();
    }

    let opts = IngestOptions {
        settle: Duration::from_secs(60),
        recheck_delay: Some(Duration::from_millis(300)),
        lock_confirm_delay: Duration::from_millis(50),
        retry_backoff: Duration::from_millis(50),
        ..Default::default()
    };
    let report = ingest(&drop, &target, &opts).await.unwrap();
    assert!(report.is_ok(), "{:?}", report.failed);
    let mut ingested: Vec<String> = report.ingested.iter().map(|f| f.path.to_string()).collect();
    ingested.sort();
    assert_eq!(
        ingested,
        [
            "empty.dat",
            "orders/42.csv",
            "orders/deep/big.bin",
            "ümlaut report.txt"
        ]
    );
    assert_eq!(report.bytes, (8 + big.len() + "ü".len()) as u64);

    // Moved: on the target byte for byte with the drop file's modtime, gone from the drop.
    let got = disk_tree(target_dir.path());
    for (p, body, meta) in writes.iter().take(4) {
        let (content, secs) = &got[*p];
        assert_eq!(content, body, "{p}");
        assert_eq!(*secs as i64, meta.modtime.unwrap().unix_timestamp(), "{p}");
        assert!(!drop_disk.join(p).exists(), "{p} still in the drop folder");
    }
    // Left alone: hidden, `_` names (at any depth) and the unsettled file.
    for p in [".hidden", "_x", "orders/_upload.tmp", "still-writing.csv"] {
        assert!(drop_disk.join(p).is_file(), "{p} was taken");
        assert!(
            !target_dir.path().join(p).exists(),
            "{p} reached the target"
        );
    }
    assert!(
        report
            .skipped
            .iter()
            .any(|s| s.path.as_str() == "still-writing.csv"),
        "{:?}",
        report.skipped
    );

    // The archive copy of each ingested file and the report are on the drop remote.
    let disk = disk_tree(&drop_disk);
    for f in &report.ingested {
        let archived = f.archive_path.as_ref().expect("an archive path");
        assert!(archived.as_str().starts_with("archives/"), "{archived}");
        let (content, _) = &disk[archived.as_str()];
        let (original, _) = &got[f.path.as_str()];
        assert_eq!(content, original, "{archived}");
    }
    assert_eq!(report.report_files.len(), 2, "{:?}", report.report_files);
    for r in &report.report_files {
        assert!(r.as_str().starts_with("reports/"), "{r}");
        assert!(disk.contains_key(r.as_str()), "{r} missing on the drop");
    }
    let json = report
        .report_files
        .iter()
        .find(|r| r.as_str().ends_with(".json"))
        .unwrap();
    let saved = cloudsync_core::ingest::IngestReport::from_json(
        std::str::from_utf8(&disk[json.as_str()].0).unwrap(),
    )
    .unwrap();
    assert_eq!(saved.id, report.id);
    assert_eq!(saved.ingested.len(), 4);

    // A second run finds nothing new to take.
    let again = ingest(&drop, &target, &opts).await.unwrap();
    assert!(again.ingested.is_empty(), "{:?}", again.ingested);
    // The lock was released.
    assert!(!target_dir.path().join(".cloudsync-ingest.lock").exists());
}

/// With shell hashes, the kept prefix of an upload from a local file is hashed at both ends
/// before it is trusted: a partial file with a byte changed far before the resume point
/// (where a window comparison would not look) is not resumed, and the file is sent whole in
/// one attempt; an intact one is resumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_hashes_verify_the_whole_kept_prefix() {
    let tmp = tempfile::tempdir().unwrap();
    let size = 3 * 1024 * 1024 + 3;
    let data = random_bytes(size, 21);
    std::fs::write(tmp.path().join("big.bin"), &data).unwrap();
    let src: Arc<dyn Remote> = Arc::new(LocalConfig::new(tmp.path()).build().unwrap());
    let dst: Arc<dyn Remote> =
        Arc::new(connect(SSHD.config("resume-hash").with_shell_hashes(true)).await);
    let dir = SSHD.data.join("resume-hash");
    std::fs::create_dir_all(&dir).unwrap();
    let entry = src.stat(&p("big.bin")).await.unwrap();
    let part = dir.join(cloudsync_core::part_name(
        &cloudsync_core::part_key(&entry, &p("big.bin")),
        "big.bin",
        255,
    ));
    let opts = SyncOptions {
        resume_above: Some(1024 * 1024),
        retries: 1,
        low_level_retries: 0,
        ..sync_opts()
    };
    let kept = 2 * 1024 * 1024;
    for corrupt in [true, false] {
        let _ = std::fs::remove_file(dir.join("big.bin"));
        let mut prefix = data[..kept].to_vec();
        if corrupt {
            prefix[1000] ^= 0xff;
        }
        std::fs::write(&part, &prefix).unwrap();
        let s = ops::copy(&src, &dst, &opts).await.unwrap();
        assert!(s.is_ok(), "corrupt {corrupt}: {s:?}");
        let want = if corrupt { 0 } else { kept as u64 };
        assert_eq!(s.bytes_resumed, want, "corrupt {corrupt}");
        assert_eq!(std::fs::read(dir.join("big.bin")).unwrap(), data);
        assert!(!part.exists());
    }
}

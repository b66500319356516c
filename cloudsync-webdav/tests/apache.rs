//! WebDAV specifics against Apache httpd with mod_dav_fs. (The conformance suite runs
//! in `conformance.rs`.)

mod common;

use std::sync::LazyLock;

use cloudsync_webdav::Vendor;
use common::{DavServer, remote_in, start_apache};

static SERVER: LazyLock<DavServer> = LazyLock::new(start_apache);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webdav_specifics_apache() {
    let remote = remote_in(&SERVER, Vendor::Generic, "specifics").await;
    common::checks::all(remote, &SERVER, true).await;
}

static TLS_SERVER: LazyLock<DavServer> = LazyLock::new(common::start_apache_tls);

/// HTTPS with a certificate from a private CA: refused by default, accepted with `ca_file` (the
/// CA as a trusted root) or `no_check_certificate`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_ca_file_or_no_check() {
    use cloudsync_core::{Remote, RemotePath, WriteMeta, bytes_stream};
    use cloudsync_webdav::{WebdavFactory, WebdavRemote};
    let url = TLS_SERVER.url.clone();
    let cert = TLS_SERVER.server.dir().join("ca.pem");
    let plain = WebdavRemote::new(
        cloudsync_webdav::WebdavConfig::new(url.clone())
            .with_password(common::USER, common::PASSWORD),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let refused = plain
        .stat(&RemotePath::root())
        .await
        .expect_err("an untrusted certificate must fail");
    // Not a temporary failure: a retry cannot make the certificate trusted.
    assert_eq!(refused.kind(), cloudsync_core::ErrorKind::Auth, "{refused}");
    assert!(!refused.is_retryable(), "{refused}");
    assert!(refused.to_string().contains("ca_file"), "{refused}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let trusted = WebdavFactory
        .open_config(serde_json::json!({
            "url": url,
            "user": common::USER,
            "password": common::PASSWORD,
            "ca_file": cert,
        }))
        .await;
    let path = RemotePath::new("tls.txt").unwrap();
    trusted
        .write(&path, bytes_stream("over tls"), WriteMeta::default())
        .await
        .unwrap();
    let insecure = WebdavRemote::new(
        cloudsync_webdav::WebdavConfig::new(url)
            .with_password(common::USER, common::PASSWORD)
            .with_no_check_certificate(true),
    )
    .unwrap();
    assert_eq!(insecure.stat(&path).await.unwrap().size, 8);
}

/// Opens a config through the factory (as a config file would).
trait OpenConfig {
    async fn open_config(&self, v: serde_json::Value)
    -> std::sync::Arc<dyn cloudsync_core::Remote>;
}

impl OpenConfig for cloudsync_webdav::WebdavFactory {
    async fn open_config(
        &self,
        v: serde_json::Value,
    ) -> std::sync::Arc<dyn cloudsync_core::Remote> {
        cloudsync_core::BackendFactory::open(self, v).await.unwrap()
    }
}

/// The destination as the engine sees it, except that right before `remove_dir` someone
/// adds files to the directory on the server's disk (a plain one, and one whose name is not
/// UTF-8, so its href cannot be read).
#[derive(Debug)]
struct GainsFiles {
    inner: std::sync::Arc<dyn cloudsync_core::Remote>,
    disk: std::path::PathBuf,
}

#[async_trait::async_trait]
impl cloudsync_core::Remote for GainsFiles {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn capabilities(&self) -> &cloudsync_core::Capabilities {
        self.inner.capabilities()
    }
    async fn list(
        &self,
        dir: &cloudsync_core::RemotePath,
    ) -> cloudsync_core::Result<cloudsync_core::EntryStream> {
        self.inner.list(dir).await
    }
    async fn stat(
        &self,
        path: &cloudsync_core::RemotePath,
    ) -> cloudsync_core::Result<cloudsync_core::Entry> {
        self.inner.stat(path).await
    }
    async fn read(
        &self,
        path: &cloudsync_core::RemotePath,
        range: Option<std::ops::Range<u64>>,
    ) -> cloudsync_core::Result<cloudsync_core::ByteStream> {
        self.inner.read(path, range).await
    }
    async fn write(
        &self,
        path: &cloudsync_core::RemotePath,
        body: cloudsync_core::ByteStream,
        meta: cloudsync_core::WriteMeta,
    ) -> cloudsync_core::Result<cloudsync_core::Entry> {
        self.inner.write(path, body, meta).await
    }
    async fn mkdir(&self, dir: &cloudsync_core::RemotePath) -> cloudsync_core::Result<()> {
        self.inner.mkdir(dir).await
    }
    async fn remove_file(&self, path: &cloudsync_core::RemotePath) -> cloudsync_core::Result<()> {
        self.inner.remove_file(path).await
    }
    async fn remove_dir(&self, dir: &cloudsync_core::RemotePath) -> cloudsync_core::Result<()> {
        use std::os::unix::ffi::OsStrExt;
        let on_disk = self.disk.join(dir.as_str());
        std::fs::write(on_disk.join("late.txt"), "late").unwrap();
        std::fs::write(
            on_disk.join(std::ffi::OsStr::from_bytes(b"late-\xff.txt")),
            "late",
        )
        .unwrap();
        self.inner.remove_dir(dir).await
    }
}

/// A directory the engine saw empty (and would remove, as the source lacks it) gains files
/// before its `remove_dir`: the files stay, and so does the directory, without an error (a
/// directory that is not empty is left as it is).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_dir_keeps_files_that_arrived_after_the_listing() {
    use cloudsync_core::{Remote, RemotePath, WriteMeta, bytes_stream, memory, ops};
    let dst = remote_in(&SERVER, Vendor::Generic, "gains").await;
    dst.mkdir(&RemotePath::new("old").unwrap()).await.unwrap();
    let sub = dst.describe().rsplit('/').next().unwrap().to_owned();
    let disk = SERVER.data.join(&sub);
    let dst: std::sync::Arc<dyn Remote> = std::sync::Arc::new(GainsFiles {
        inner: dst,
        disk: disk.clone(),
    });
    let src = memory();
    src.write(
        &RemotePath::new("keep.txt").unwrap(),
        bytes_stream("k"),
        WriteMeta::default(),
    )
    .await
    .unwrap();
    let summary = ops::sync(&src, &dst, &ops::SyncOptions::default())
        .await
        .unwrap();
    let mut left: Vec<String> = std::fs::read_dir(disk.join("old"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["late-\u{fffd}.txt", "late.txt"], "{summary:?}");
    assert_eq!(summary.dirs_deleted, 0, "{summary:?}");
    assert!(summary.errors.is_empty(), "{summary:?}");
}

/// Replacement bodies that error half-way, or give fewer or more bytes than announced, keep
/// the old file and leave no temp file (PUT to a temp name, then MOVE).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_replacement_keeps_the_old_file_apache() {
    let remote = remote_in(&SERVER, Vendor::Generic, "replace").await;
    common::checks::bad_replacement_keeps_the_old_file(&remote, &SERVER.data).await;
}

/// Through the layers the registry puts around every remote it opens, errors name the
/// operation, the remote (as described, password hidden) and the path, though the backend
/// itself names at most the path: a missing file's `stat` and `read`, a missing directory's
/// listing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_layers_name_operation_remote_and_path() {
    use cloudsync_core::Registry;
    let remote = Registry::new().layered(remote_in(&SERVER, Vendor::Generic, "ctx").await);
    cloudsync_core::testkit::assert_missing_paths_named(&remote).await;
}

//! [`LocalRemote`] (the [`Remote`] implementation) and [`LocalFactory`] (its registry entry).

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cloudsync_core::{
    BackendFactory, ByteStream, Capabilities, Entry, EntryStream, Error, ErrorKind, HashKind,
    Remote, RemotePath, Result, WriteMeta, parse_config,
};
use serde_json::Value;
use time::OffsetDateTime;

use crate::config::LocalConfig;
use crate::core::{Core, CoreRef, entry_from_meta, parse_error, set_file_modtime};
use crate::{deleter, lister, reader, writer};

/// A [`Remote`] over a directory of the local filesystem.
///
/// Build it with [`LocalConfig::build`] (or open `file:///path` / a plain path through the
/// registry). See the [crate documentation](crate) for its behaviour.
#[derive(Debug, Clone)]
pub struct LocalRemote {
    core: CoreRef,
    caps: Capabilities,
}

impl LocalRemote {
    /// A remote rooted at the absolute directory `root`.
    pub(crate) fn new(root: PathBuf, config: LocalConfig) -> Self {
        let core = Core {
            name: root.display().to_string(),
            root,
            follow_symlinks: config.follow_symlinks,
            fsync: config.fsync,
            windows_names: cfg!(windows),
            checked_dirs: Default::default(),
        };
        LocalRemote {
            core: Arc::new(core),
            caps: Capabilities {
                // Computed on demand: each costs a read of the file.
                hashes: vec![
                    HashKind::Md5,
                    HashKind::Sha1,
                    HashKind::Sha256,
                    HashKind::Crc32c,
                    HashKind::Dropbox,
                ],
                modtime_precision: Some(Duration::from_nanos(1)),
                write_modtime: true,
                set_modtime: true,
                copy: true,
                rename: true,
                purge: true,
                dirs: true,
                case_insensitive: false,
                max_name_len: Some(255),
                ..Default::default()
            },
        }
    }

    /// The absolute root directory.
    pub fn root(&self) -> &Path {
        &self.core.root
    }
}

#[async_trait]
impl Remote for LocalRemote {
    fn describe(&self) -> String {
        self.core.name.clone()
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    fn location(&self) -> Option<cloudsync_core::Location> {
        Some(cloudsync_core::Location::local(&self.core.root))
    }

    async fn list(&self, dir: &RemotePath) -> Result<EntryStream> {
        lister::list(&self.core, dir).await
    }

    async fn stat(&self, path: &RemotePath) -> Result<Entry> {
        let p = path.clone();
        self.core
            .blocking(move |c| {
                let meta = c
                    .metadata(&c.local(&p)?)
                    .map_err(|e| c.ctx(parse_error(e), &p))?;
                entry_from_meta(p.clone(), &meta).ok_or_else(|| {
                    c.ctx(
                        Error::new(
                            ErrorKind::Unsupported,
                            format!("not a regular file or directory ({:?})", meta.file_type()),
                        ),
                        &p,
                    )
                })
            })
            .await
    }

    async fn read(&self, path: &RemotePath, range: Option<Range<u64>>) -> Result<ByteStream> {
        reader::read(&self.core, path, range).await
    }

    async fn write(&self, path: &RemotePath, body: ByteStream, meta: WriteMeta) -> Result<Entry> {
        writer::write(&self.core, path, body, meta).await
    }

    async fn write_from_file(
        &self,
        path: &RemotePath,
        local: &Path,
        meta: WriteMeta,
    ) -> Result<Entry> {
        let p = path.clone();
        let src = local.to_owned();
        self.core
            .blocking(move |c| {
                writer::copy_from_local(c, "write", &p, &src, meta.size, meta.modtime)
            })
            .await
    }

    async fn mkdir(&self, dir: &RemotePath) -> Result<()> {
        let p = dir.clone();
        self.core
            .blocking(move |c| {
                c.check_no_links(&p, true, "mkdir")?;
                let local = c.local(&p)?;
                std::fs::create_dir_all(&local).map_err(|e| {
                    let e = parse_error(e);
                    let e = if e.kind() == ErrorKind::AlreadyExists {
                        Error::new(ErrorKind::Conflict, "a file is in the way").with_source(e)
                    } else {
                        e
                    };
                    c.ctx(e, &p)
                })
            })
            .await
    }

    async fn remove_file(&self, path: &RemotePath) -> Result<()> {
        deleter::remove_file(&self.core, path).await
    }

    async fn remove_dir(&self, dir: &RemotePath) -> Result<()> {
        deleter::remove_dir(&self.core, dir).await
    }

    async fn copy(&self, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
        let (f, t) = (from.clone(), to.clone());
        self.core
            .blocking(move |c| {
                let src = c.local(&f)?;
                let meta = c.metadata(&src).map_err(|e| c.ctx(parse_error(e), &f))?;
                let modtime = meta.modified().ok().map(crate::core::system_to_offset);
                writer::copy_from_local(c, "copy", &t, &src, Some(meta.len()), modtime)
            })
            .await
    }

    async fn rename(&self, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
        let (f, t) = (from.clone(), to.clone());
        self.core
            .blocking(move |c| {
                c.forget_checked_dirs();
                c.check_no_links(&f, false, "rename")?;
                c.check_no_links(&t, false, "rename")?;
                let src = c.local(&f)?;
                let dst = c.local(&t)?;
                let meta = c.metadata(&src).map_err(|e| c.ctx(parse_error(e), &f))?;
                if let Some(parent) = dst.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| c.ctx(parse_error(e), &t))?;
                }
                std::fs::rename(&src, &dst).map_err(|e| c.ctx(parse_error(e), &t))?;
                entry_from_meta(t.clone(), &meta).ok_or_else(|| {
                    c.ctx(
                        Error::new(ErrorKind::Unsupported, "not a regular file or directory"),
                        &t,
                    )
                })
            })
            .await
    }

    async fn set_modtime(&self, path: &RemotePath, modtime: OffsetDateTime) -> Result<()> {
        let p = path.clone();
        self.core
            .blocking(move |c| {
                c.check_no_links(&p, false, "set_modtime")?;
                let local = c.local(&p)?;
                c.metadata(&local).map_err(|e| c.ctx(parse_error(e), &p))?;
                let file = std::fs::File::open(&local).map_err(|e| c.ctx(parse_error(e), &p))?;
                set_file_modtime(&file, modtime).map_err(|e| c.ctx(parse_error(e), &p))
            })
            .await
    }

    async fn hash(&self, path: &RemotePath, kind: HashKind) -> Result<String> {
        reader::hash(&self.core, path, kind).await
    }

    async fn purge(&self, dir: &RemotePath) -> Result<()> {
        deleter::purge(&self.core, dir).await
    }

    fn local_path(&self, path: &RemotePath) -> Option<PathBuf> {
        // A name this system cannot store has no local path (the operations refuse it).
        self.core.local(path).ok()
    }
}

/// Opens `local` remotes: `type = "local"` in config files, `file:///abs/path` URLs and plain
/// paths on the command line.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> cloudsync_core::Result<()> {
/// use std::sync::Arc;
/// use cloudsync_core::Registry;
///
/// let mut registry = Registry::new();
/// registry.register(Arc::new(cloudsync_local::LocalFactory));
/// let remote = registry.open_url("file:///tmp/cloudsync-doc").await?;
/// assert_eq!(remote.describe(), "/tmp/cloudsync-doc");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalFactory;

#[async_trait]
impl BackendFactory for LocalFactory {
    fn type_name(&self) -> &'static str {
        "local"
    }

    fn url_schemes(&self) -> &'static [&'static str] {
        &["file"]
    }

    fn config_from_url(&self, url: &url::Url) -> Result<Value> {
        let path = url.to_file_path().map_err(|()| {
            Error::new(
                ErrorKind::ConfigInvalid,
                format!("{url} is not a local file URL (expected file:///absolute/path)"),
            )
        })?;
        let root = path.to_str().ok_or_else(|| {
            Error::new(
                ErrorKind::ConfigInvalid,
                format!("{url}: path is not valid UTF-8"),
            )
        })?;
        Ok(serde_json::json!({ "root": root }))
    }

    async fn open(&self, config: Value) -> Result<Arc<dyn Remote>> {
        let cfg: LocalConfig = parse_config("local", config)?;
        Ok(Arc::new(cfg.build()?))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use cloudsync_core::{bytes_stream, collect_bytes};
    use futures::StreamExt;

    use super::*;

    /// A remote over `root` that applies Windows' name rules, as on Windows.
    fn windows_remote(root: &Path) -> LocalRemote {
        let mut remote = LocalRemote::new(root.to_owned(), LocalConfig::new(root));
        if let Some(core) = Arc::get_mut(&mut remote.core) {
            core.windows_names = true;
        }
        assert!(remote.core.windows_names);
        remote
    }

    fn assert_refused<T>(what: &str, r: Result<T>) {
        match r {
            Ok(_) => panic!("{what}: accepted"),
            Err(e) => assert_eq!(e.kind(), ErrorKind::InvalidInput, "{what}: {e}"),
        }
    }

    /// Every operation that turns a `RemotePath` into a local path refuses names Windows
    /// would read as a separator, drive, stream or device, before touching the disk.
    #[tokio::test]
    async fn windows_names_are_refused_by_every_operation() -> Result<()> {
        let tmp = tempfile::tempdir()?;
        let root = tmp.path().join("root");
        let remote = windows_remote(&root);
        let good = RemotePath::new("good.txt")?;
        remote
            .write(&good, bytes_stream("ok"), WriteMeta::default())
            .await?;
        let src = tmp.path().join("src.txt");
        std::fs::write(&src, "src")?;
        for bad in [
            "a\\..\\..\\x",
            "C:x",
            "c:\\evil",
            "sub/NUL",
            "CON/f",
            "com1.txt",
            "trailing.",
            "trailing ",
            "d/a:stream",
        ] {
            let p = RemotePath::new(bad)?;
            assert_refused(
                bad,
                remote
                    .write(&p, bytes_stream("x"), WriteMeta::default())
                    .await,
            );
            assert_refused(
                bad,
                remote.write_from_file(&p, &src, WriteMeta::default()).await,
            );
            assert_refused(bad, remote.mkdir(&p).await);
            assert_refused(bad, remote.stat(&p).await);
            assert_refused(bad, remote.read(&p, None).await);
            assert_refused(bad, remote.hash(&p, HashKind::Md5).await);
            assert_refused(bad, remote.list(&p).await);
            assert_refused(bad, remote.remove_file(&p).await);
            assert_refused(bad, remote.remove_dir(&p).await);
            assert_refused(bad, remote.purge(&p).await);
            assert_refused(
                bad,
                remote.set_modtime(&p, OffsetDateTime::UNIX_EPOCH).await,
            );
            assert_refused(bad, remote.copy(&good, &p).await);
            assert_refused(bad, remote.copy(&p, &good).await);
            assert_refused(bad, remote.rename(&good, &p).await);
            assert_refused(bad, remote.rename(&p, &good).await);
            assert_eq!(remote.local_path(&p), None, "{bad}");
        }
        // Nothing was created, inside or outside the root, and the good file is intact.
        let names = |dir: &Path| -> std::io::Result<Vec<String>> {
            let mut v = std::fs::read_dir(dir)?
                .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
                .collect::<std::io::Result<Vec<_>>>()?;
            v.sort();
            Ok(v)
        };
        assert_eq!(names(tmp.path())?, ["root", "src.txt"]);
        assert_eq!(names(&root)?, ["good.txt"]);
        assert_eq!(collect_bytes(remote.read(&good, None).await?).await?, "ok");
        Ok(())
    }

    /// A name on disk that Windows cannot address again is an `InvalidInput` error entry; the
    /// rest of the directory is listed. Without the Windows rules all are plain files. (Unix
    /// only: it makes the names on disk.)
    #[cfg(unix)]
    #[tokio::test]
    async fn listing_reports_names_windows_cannot_address() -> Result<()> {
        let tmp = tempfile::tempdir()?;
        for name in ["ok.txt", "a\\b", "NUL", "x.", "c:d"] {
            std::fs::write(tmp.path().join(name), "x")?;
        }
        let remote = windows_remote(tmp.path());
        let items: Vec<Result<Entry>> = remote.list(&RemotePath::root()).await?.collect().await;
        let mut ok: Vec<String> = Vec::new();
        let mut refused: Vec<String> = Vec::new();
        for item in items {
            match item {
                Ok(e) => ok.push(e.path.as_str().to_owned()),
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
                    refused.push(e.path().unwrap_or_default().to_owned());
                }
            }
        }
        refused.sort();
        assert_eq!(ok, ["ok.txt"]);
        assert_eq!(refused, ["NUL", "a\\b", "c:d", "x."]);

        let plain = LocalConfig::new(tmp.path()).build()?;
        let n = plain
            .list(&RemotePath::root())
            .await?
            .filter(|r| futures::future::ready(r.is_ok()))
            .count()
            .await;
        assert_eq!(n, 5);
        Ok(())
    }
}

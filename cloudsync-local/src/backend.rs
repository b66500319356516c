//! [`LocalRemote`]: its capabilities and a thin [`Remote`] implementation delegating to the
//! role functions.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cloudsync_core::{
    ByteStream, Capabilities, Entry, EntryStream, HashKind, Remote, RemotePath, Result,
    SmallFileSlots, WriteMeta,
};
use time::OffsetDateTime;

use crate::core::{CoreRef, LocalCore};
use crate::{deleter, lister, mover, reader, writer};

/// A [`Remote`] over a directory of the local filesystem.
///
/// Build it with [`LocalConfig::build`](crate::LocalConfig::build) (or open `file:///path` /
/// a plain path through the registry). See the [crate documentation](crate) for its behaviour.
#[derive(Debug, Clone)]
pub struct LocalRemote {
    core: CoreRef,
    caps: Capabilities,
}

#[cfg(test)]
impl LocalRemote {
    /// The shared state (tests look inside).
    pub(crate) fn core(&self) -> &CoreRef {
        &self.core
    }
}

impl LocalRemote {
    /// The remote over an opened core, with its capabilities (called by
    /// [`LocalConfig::build`](crate::LocalConfig::build), the one way to open a local
    /// remote).
    pub(crate) fn from_core(core: LocalCore) -> Self {
        // A durable write waits for the disk to flush it; with more of them in flight the
        // filesystem commits them together (10,000 small files: 1.4 s with 4 in flight,
        // 0.8 s with 16). Without `fsync`, local disk keeps up with whatever the other side
        // of a transfer bears.
        let small_file_slots = if core.fsync {
            SmallFileSlots::Shared(4)
        } else {
            SmallFileSlots::Any
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
                resume: true,
                small_file_slots,
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
        lister::stat(&self.core, path).await
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
        writer::write_from_file(&self.core, path, local, meta).await
    }

    async fn write_at(
        &self,
        path: &RemotePath,
        offset: u64,
        body: ByteStream,
        _total: Option<u64>,
    ) -> Result<u64> {
        // Written as it streams in: knowing the total changes nothing.
        writer::write_at(&self.core, path, offset, body).await
    }

    async fn mkdir(&self, dir: &RemotePath) -> Result<()> {
        writer::mkdir(&self.core, dir).await
    }

    async fn remove_file(&self, path: &RemotePath) -> Result<()> {
        deleter::remove_file(&self.core, path).await
    }

    async fn remove_dir(&self, dir: &RemotePath) -> Result<()> {
        deleter::remove_dir(&self.core, dir).await
    }

    async fn copy(&self, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
        mover::copy(&self.core, from, to).await
    }

    async fn rename(&self, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
        mover::rename(&self.core, from, to).await
    }

    async fn set_modtime(&self, path: &RemotePath, modtime: OffsetDateTime) -> Result<()> {
        writer::set_modtime(&self.core, path, modtime).await
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use cloudsync_core::{ErrorKind, bytes_stream, collect_bytes};
    use futures::StreamExt;

    use super::*;
    use crate::config::LocalConfig;

    /// A remote over `root` that applies Windows' name rules, as on Windows.
    fn windows_remote(root: &Path) -> LocalRemote {
        let mut core = LocalCore::new(root.to_owned(), &LocalConfig::new(root));
        core.windows_names = true;
        LocalRemote::from_core(core)
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

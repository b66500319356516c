//! [`GcsRemote`]: its capabilities and the [`Remote`] over the Cloud Storage JSON API, each
//! method a call into the role files or [`GcsCore`]. Opening is
//! [`GcsConfig::build`](super::GcsConfig::build).

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cloudsync_core::{
    ByteStream, Capabilities, Entry, EntryStream, HashKind, Location, Remote, RemotePath, Result,
    SessionToken, WriteMeta,
};
use time::OffsetDateTime;

use super::core::GcsCore;
use super::writer::Precondition;
use super::{deleter, lister, mover, reader, writer};

/// A Cloud Storage bucket (or a prefix in it) as a [`Remote`].
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> cloudsync_core::Result<()> {
/// use cloudsync_core::{Remote, RemotePath};
/// use cloudsync_gdrive::GcsConfig;
/// let gcs = GcsConfig::new("my-bucket").with_prefix("backups").build()?;
/// let e = gcs.stat(&RemotePath::new("notes.txt")?).await?;
/// println!("{} bytes, md5 {:?}", e.size, e.hashes.get(cloudsync_core::HashKind::Md5));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct GcsRemote {
    core: Arc<GcsCore>,
    caps: Capabilities,
    location: Location,
}

/// What a GCS remote can do.
fn gcs_capabilities() -> Capabilities {
    Capabilities {
        // Every object has an MD5 but composite ones; every object has a CRC32C.
        hashes: vec![HashKind::Md5, HashKind::Crc32c],
        // `mtime` keeps nanoseconds (objects without it show their upload time).
        modtime_precision: Some(Duration::from_nanos(1)),
        write_modtime: true,
        set_modtime: true,
        copy: true,
        rename: true,
        list_recursive: true,
        // Object names are at most 1024 bytes of UTF-8 ("Object naming requirements").
        max_name_len: Some(1024),
        // A single object is at most 5 TiB.
        max_file_size: Some(5 * 1024 * 1024 * 1024 * 1024),
        // Resumable upload sessions, continued across runs from their recorded URI.
        resume_sessions: true,
        ..Default::default()
    }
}

/// The former name of [`GcsRemote`].
#[deprecated(note = "renamed to `GcsRemote`")]
pub type GcsBackend = GcsRemote;

impl GcsRemote {
    /// The remote over `core`, at `location`, with Cloud Storage's capabilities; called by
    /// [`GcsConfig::build`](super::GcsConfig::build).
    pub(super) fn from_core(core: GcsCore, location: Location) -> Self {
        GcsRemote {
            core: Arc::new(core),
            caps: gcs_capabilities(),
            location,
        }
    }

    /// Writes `path` only if no object is there yet (`ifGenerationMatch=0`): the service
    /// refuses with `ConditionNotMatch` when one is. Two writers racing for one name cannot
    /// both win.
    ///
    /// fake-gcs-server (1.54) checks this precondition on multipart uploads only; on resumable
    /// (and media) uploads it replaces the object. The real service checks it on every upload.
    pub async fn write_if_absent(
        &self,
        path: &RemotePath,
        body: ByteStream,
        meta: WriteMeta,
    ) -> Result<Entry> {
        writer::put(&self.core, path, body, meta, Precondition::DoesNotExist).await
    }
}

#[async_trait]
impl Remote for GcsRemote {
    fn describe(&self) -> String {
        self.core.name.clone()
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    fn location(&self) -> Option<Location> {
        Some(self.location.clone())
    }

    async fn list(&self, dir: &RemotePath) -> Result<EntryStream> {
        lister::list(self.core.clone(), dir, true).await
    }

    async fn list_recursive(&self, dir: &RemotePath) -> Result<EntryStream> {
        lister::list(self.core.clone(), dir, false).await
    }

    async fn stat(&self, path: &RemotePath) -> Result<Entry> {
        self.core.stat(path).await
    }

    async fn read(&self, path: &RemotePath, range: Option<Range<u64>>) -> Result<ByteStream> {
        reader::read(&self.core, &self.core.object_name(path), range)
            .await
            .map_err(|e| self.core.ctx(e, path))
    }

    async fn write(&self, path: &RemotePath, body: ByteStream, meta: WriteMeta) -> Result<Entry> {
        writer::put(&self.core, path, body, meta, Precondition::None).await
    }

    async fn session_start(
        &self,
        path: &RemotePath,
        size: u64,
        meta: &WriteMeta,
    ) -> Result<SessionToken> {
        writer::session_start(&self.core, path, size, meta).await
    }

    async fn session_offset(&self, token: &SessionToken) -> Result<u64> {
        writer::session_offset(&self.core, token)
            .await
            .map_err(|e| e.with_remote(self.core.name.clone()))
    }

    async fn session_write(
        &self,
        token: &SessionToken,
        path: &RemotePath,
        offset: u64,
        body: ByteStream,
        _meta: WriteMeta,
    ) -> Result<Entry> {
        writer::session_write(&self.core, token, path, offset, body).await
    }

    async fn session_cancel(&self, token: &SessionToken) -> Result<()> {
        writer::session_cancel(&self.core, token).await
    }

    async fn mkdir(&self, _dir: &RemotePath) -> Result<()> {
        // Directories are implicit: they exist while an object lies below them.
        Ok(())
    }

    async fn remove_file(&self, path: &RemotePath) -> Result<()> {
        deleter::remove_file(&self.core, path)
            .await
            .map_err(|e| self.core.ctx(e, path))
    }

    async fn remove_dir(&self, dir: &RemotePath) -> Result<()> {
        deleter::remove_dir(&self.core, dir)
            .await
            .map_err(|e| self.core.ctx(e, dir))
    }

    async fn copy(&self, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
        mover::copy(&self.core, from, to).await
    }

    async fn rename(&self, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
        mover::rename(&self.core, from, to).await
    }

    async fn set_modtime(&self, path: &RemotePath, modtime: OffsetDateTime) -> Result<()> {
        mover::set_modtime(&self.core, path, modtime).await
    }

    async fn hash(&self, path: &RemotePath, kind: HashKind) -> Result<String> {
        reader::hash(&self.core, path, kind).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gcs::GcsConfig;

    #[test]
    fn describe_names_bucket_and_prefix() {
        let r = GcsConfig::new("bkt")
            .with_prefix("/a/b/")
            .with_emulator("http://127.0.0.1:1")
            .build()
            .unwrap();
        assert_eq!(r.describe(), "gs://bkt/a/b");
        assert_eq!(
            r.core.object_name(&RemotePath::new("c/d").unwrap()),
            "a/b/c/d"
        );
        assert_eq!(r.core.dir_prefix(&RemotePath::root()), "a/b/");
        let top = GcsConfig::new("bkt")
            .with_emulator("http://127.0.0.1:1")
            .build()
            .unwrap();
        assert_eq!(top.core.dir_prefix(&RemotePath::root()), "");
        assert_eq!(top.core.dir_prefix(&RemotePath::new("x").unwrap()), "x/");
        assert_eq!(top.describe(), "gs://bkt");
    }

    #[test]
    fn location_is_bucket_and_prefix() {
        let r = GcsConfig::new("bkt")
            .with_prefix("a/b")
            .with_emulator("http://127.0.0.1:1")
            .build()
            .unwrap();
        assert_eq!(r.location(), Some(Location::new("gs://bkt", "a/b")));
    }

    /// The former public name still names the remote.
    #[test]
    #[allow(deprecated)]
    fn the_former_name_is_an_alias() {
        let r: super::GcsBackend = GcsConfig::new("bkt")
            .with_emulator("http://127.0.0.1:1")
            .build()
            .unwrap();
        assert_eq!(r.describe(), "gs://bkt");
    }
}

//! [`SftpRemote`]: its capabilities and a thin [`Remote`] implementation delegating to the role
//! functions.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cloudsync_core::{
    ByteStream, Capabilities, Entry, EntryStream, HashKind, Location, Remote, RemotePath, Result,
    SmallFileSlots, Usage, WriteMeta,
};
use time::OffsetDateTime;

use crate::config::SftpConfig;
use crate::core::SftpCore;
use crate::{deleter, lister, mover, reader, writer};

/// An SFTP server directory as a [`Remote`].
///
/// Cheap to share (`Arc`); its operations run concurrently over a pool of SSH connections.
/// See the [crate docs](crate) for what it supports.
#[derive(Debug)]
pub struct SftpRemote {
    core: Arc<SftpCore>,
    caps: Capabilities,
}

impl SftpRemote {
    /// Connects (one connection, to report bad credentials or an unknown host key at once),
    /// resolves the root directory and returns the remote: the same as
    /// [`SftpConfig::build`], kept for callers of earlier versions.
    pub async fn connect(config: SftpConfig) -> Result<SftpRemote> {
        config.build().await
    }

    /// The remote over an opened core, with the capabilities its server offers (called by
    /// [`SftpConfig::build`]).
    pub(crate) fn from_core(core: SftpCore) -> SftpRemote {
        let hashes = if core.shell_hashes {
            vec![HashKind::Md5, HashKind::Sha1]
        } else {
            Vec::new()
        };
        let caps = Capabilities {
            hashes,
            modtime_precision: Some(Duration::from_secs(1)),
            write_modtime: true,
            set_modtime: true,
            copy: core.features.copy_data,
            rename: true,
            purge: true,
            usage: core.features.statvfs,
            dirs: true,
            max_name_len: Some(255),
            resume: true,
            // A small file costs a few round trips on a shared connection, and the server
            // works on several at once: 4 per slot halves the time of a tree of small files.
            small_file_slots: SmallFileSlots::Shared(4),
            ..Default::default()
        };
        SftpRemote {
            core: Arc::new(core),
            caps,
        }
    }

    /// Test hook: from now on, replace files as if the server lacked
    /// `posix-rename@openssh.com` (move the old file aside, rename, delete the old one).
    #[doc(hidden)]
    pub fn disable_posix_rename_for_tests(&self) {
        self.core
            .posix_rename_off
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Closes every pooled connection (they are also closed when the remote is dropped).
    pub async fn close(&self) {
        self.core.pool.close_all().await;
    }
}

#[async_trait]
impl Remote for SftpRemote {
    fn describe(&self) -> String {
        self.core.describe.clone()
    }

    fn location(&self) -> Option<Location> {
        Some(self.core.location.clone())
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    async fn list(&self, dir: &RemotePath) -> Result<EntryStream> {
        lister::list(self.core.clone(), dir).await
    }

    async fn stat(&self, path: &RemotePath) -> Result<Entry> {
        lister::stat(&self.core, path).await
    }

    async fn read(&self, path: &RemotePath, range: Option<Range<u64>>) -> Result<ByteStream> {
        reader::read(self.core.clone(), path, range).await
    }

    async fn write(&self, path: &RemotePath, body: ByteStream, meta: WriteMeta) -> Result<Entry> {
        writer::write(self.core.clone(), path, body, meta).await
    }

    async fn write_at(
        &self,
        path: &RemotePath,
        offset: u64,
        body: ByteStream,
        _total: Option<u64>,
    ) -> Result<u64> {
        // Written as it streams in: knowing the total changes nothing.
        writer::write_at(self.core.clone(), path, offset, body).await
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

    async fn purge(&self, dir: &RemotePath) -> Result<()> {
        deleter::purge(&self.core, dir).await
    }

    async fn rename(&self, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
        mover::rename(&self.core, from, to).await
    }

    async fn copy(&self, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
        if !self.caps.copy {
            return Err(self.unsupported("copy"));
        }
        mover::copy(&self.core, from, to).await
    }

    async fn set_modtime(&self, path: &RemotePath, modtime: OffsetDateTime) -> Result<()> {
        writer::set_modtime(&self.core, path, modtime).await
    }

    async fn hash(&self, path: &RemotePath, kind: HashKind) -> Result<String> {
        if self.caps.hashes.contains(&kind) {
            return self.core.shell_hash(path, kind).await;
        }
        reader::hash_by_reading(self.core.clone(), path, kind).await
    }

    async fn usage(&self) -> Result<Usage> {
        if !self.caps.usage {
            return Err(self.unsupported("usage"));
        }
        self.core.usage().await
    }
}

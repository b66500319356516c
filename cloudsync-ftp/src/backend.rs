//! [`FtpRemote`]: its capabilities and a thin [`Remote`] implementation delegating to the role
//! functions.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cloudsync_core::{
    ByteStream, Capabilities, Entry, EntryStream, Location, Remote, RemotePath, Result, WriteMeta,
};
use time::OffsetDateTime;

use crate::core::FtpCore;
use crate::{deleter, lister, mover, reader, writer};

/// A remote on an FTP or FTPS server.
///
/// Opened with [`FtpConfig::build`](crate::FtpConfig::build) (or through the registry as type `ftp`, URLs `ftp://` and
/// `ftps://`). Cheap to clone; clones share the connection pool.
#[derive(Clone)]
pub struct FtpRemote {
    core: Arc<FtpCore>,
    caps: Capabilities,
}

impl FtpRemote {
    /// The remote over a connected core, with the capabilities its server's features allow
    /// (called by [`FtpConfig::build`](crate::FtpConfig::build)).
    pub(crate) fn from_core(core: FtpCore) -> Self {
        let features = &core.features;
        let set_time = features.mfmt || features.mdtm_write;
        let caps = Capabilities {
            modtime_precision: (features.mlsd || features.mdtm).then_some(Duration::from_secs(1)),
            write_modtime: set_time,
            set_modtime: set_time,
            rename: true,
            dirs: true,
            // APPE continues a partial file; SIZE tells where it stopped.
            resume: features.size,
            ..Default::default()
        };
        FtpRemote {
            core: Arc::new(core),
            caps,
        }
    }
}

impl std::fmt::Debug for FtpRemote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FtpRemote")
            .field("describe", &self.core.describe)
            .field("features", &self.core.features)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Remote for FtpRemote {
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
        lister::list(&self.core, dir).await
    }

    async fn stat(&self, path: &RemotePath) -> Result<Entry> {
        lister::stat(&self.core, path)
            .await
            .map_err(|e| e.with_path(path))
    }

    async fn read(&self, path: &RemotePath, range: Option<Range<u64>>) -> Result<ByteStream> {
        reader::read(&self.core, path, range)
            .await
            .map_err(|e| e.with_path(path))
    }

    async fn write_at(
        &self,
        path: &RemotePath,
        offset: u64,
        body: ByteStream,
        _total: Option<u64>,
    ) -> Result<u64> {
        // Written as it streams in: knowing the total changes nothing.
        writer::write_at(&self.core, path, offset, body)
            .await
            .map_err(|e| e.with_path(path))
    }

    async fn write(&self, path: &RemotePath, body: ByteStream, meta: WriteMeta) -> Result<Entry> {
        writer::write(&self.core, path, body, meta)
            .await
            .map_err(|e| e.with_path(path))
    }

    async fn mkdir(&self, dir: &RemotePath) -> Result<()> {
        writer::mkdir(&self.core, dir)
            .await
            .map_err(|e| e.with_path(dir))
    }

    async fn remove_file(&self, path: &RemotePath) -> Result<()> {
        deleter::remove_file(&self.core, path)
            .await
            .map_err(|e| e.with_path(path))
    }

    async fn remove_dir(&self, dir: &RemotePath) -> Result<()> {
        deleter::remove_dir(&self.core, dir)
            .await
            .map_err(|e| e.with_path(dir))
    }

    async fn rename(&self, from: &RemotePath, to: &RemotePath) -> Result<Entry> {
        mover::rename(&self.core, from, to)
            .await
            .map_err(|e| e.with_path(from))
    }

    async fn set_modtime(&self, path: &RemotePath, modtime: OffsetDateTime) -> Result<()> {
        if !self.caps.set_modtime {
            return Err(self.unsupported("set_modtime"));
        }
        writer::set_modtime(&self.core, path, modtime)
            .await
            .map_err(|e| e.with_path(path))
    }
}

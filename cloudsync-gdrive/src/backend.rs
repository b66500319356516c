//! [`DriveRemote`]: its capabilities and the [`Remote`] implementation, each method a call
//! into the role files or [`DriveCore`]. Opening is [`GdriveConfig::build`].

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cloudsync_core::{
    ByteStream, Capabilities, Entry, EntryStream, HashKind, Location, Remote, RemotePath, Result,
    SessionToken, Usage, WriteMeta,
};
use time::OffsetDateTime;

use crate::config::GdriveConfig;
use crate::core::DriveCore;
use crate::{deleter, lister, mover, reader, writer};

/// A Google Drive (My Drive, a folder of it, or a shared drive) as a [`Remote`].
///
/// ```no_run
/// # async fn demo() -> cloudsync_core::Result<()> {
/// use cloudsync_core::Remote;
/// use cloudsync_gdrive::GdriveConfig;
///
/// // The refresh token is read from the environment variable GDRIVE_REFRESH_TOKEN.
/// let remote = GdriveConfig::oauth("123.apps.googleusercontent.com", "GDRIVE_REFRESH_TOKEN")
///     .build()?;
/// assert!(remote.capabilities().write_modtime);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct DriveRemote {
    core: Arc<DriveCore>,
    caps: Capabilities,
    location: Location,
}

/// The former name of [`DriveRemote`].
#[deprecated(note = "renamed to `DriveRemote`")]
pub type GdriveBackend = DriveRemote;

impl DriveRemote {
    /// The same as [`GdriveConfig::build`]: validates `config` (reading secrets) and builds
    /// the remote. No request is sent until the remote is used.
    pub fn new(config: GdriveConfig) -> Result<Self> {
        config.build()
    }

    /// The remote over `core`, with Drive's capabilities; called by [`GdriveConfig::build`].
    pub(crate) fn from_core(core: DriveCore, location: Location) -> Self {
        DriveRemote {
            location,
            core: Arc::new(core),
            caps: Capabilities {
                hashes: vec![HashKind::Md5],
                modtime_precision: Some(Duration::from_millis(1)),
                write_modtime: true,
                set_modtime: true,
                copy: true,
                rename: true,
                purge: true,
                cleanup: true,
                usage: true,
                dirs: true,
                // Resumable upload sessions, continued across runs from their recorded URI.
                resume_sessions: true,
                ..Default::default()
            },
        }
    }
}

#[async_trait]
impl Remote for DriveRemote {
    fn describe(&self) -> String {
        self.core.name.clone()
    }

    fn location(&self) -> Option<Location> {
        Some(self.location.clone())
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    async fn list(&self, dir: &RemotePath) -> Result<EntryStream> {
        lister::list(self.core.clone(), dir)
            .await
            .map_err(|e| self.core.ctx(e, dir))
    }

    async fn stat(&self, path: &RemotePath) -> Result<Entry> {
        self.core.stat(path).await
    }

    async fn read(&self, path: &RemotePath, range: Option<Range<u64>>) -> Result<ByteStream> {
        reader::read(&self.core, path, range)
            .await
            .map_err(|e| self.core.ctx(e, path))
    }

    async fn write(&self, path: &RemotePath, body: ByteStream, meta: WriteMeta) -> Result<Entry> {
        writer::write(&self.core, path, body, meta)
            .await
            .map_err(|e| self.core.ctx(e, path))
    }

    async fn session_start(
        &self,
        path: &RemotePath,
        size: u64,
        meta: &WriteMeta,
    ) -> Result<SessionToken> {
        writer::session_start(&self.core, path, size, meta)
            .await
            .map_err(|e| self.core.ctx(e, path))
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
        writer::session_write(&self.core, token, path, offset, body)
            .await
            .map_err(|e| self.core.ctx(e, path))
    }

    async fn session_cancel(&self, token: &SessionToken) -> Result<()> {
        writer::session_cancel(&self.core, token).await
    }

    async fn mkdir(&self, dir: &RemotePath) -> Result<()> {
        self.core.create_dir(dir).await
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
        self.core.hash(path, kind).await
    }

    async fn purge(&self, dir: &RemotePath) -> Result<()> {
        deleter::purge(&self.core, dir)
            .await
            .map_err(|e| self.core.ctx(e, dir))
    }

    async fn cleanup(&self) -> Result<()> {
        deleter::cleanup(&self.core).await
    }

    async fn usage(&self) -> Result<Usage> {
        self.core.usage().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DEFAULT_API_URL, location};

    #[test]
    fn location_is_the_root_id() {
        let api = DEFAULT_API_URL;
        let my = location(None, "root", api);
        assert_eq!(my, location(None, "root", &format!("{api}/")));
        assert_eq!(
            location(Some("0AbC"), "0AbC", api),
            location(Some("0AbC"), "0AbC", api)
        );
        assert_ne!(my, location(Some("0AbC"), "0AbC", api));
        assert_ne!(
            location(Some("0AbC"), "0AbC", api),
            location(Some("0XyZ"), "0XyZ", api)
        );
        let folder = location(None, "1Fold", api);
        assert_eq!(folder, location(Some("0AbC"), "1Fold", api));
        assert_ne!(folder, my);
        assert_ne!(my, location(None, "root", "http://127.0.0.1:8089/drive/v3"));
        // A sub-folder view of one root is inside it.
        let sub = RemotePath::new("a/b").unwrap();
        assert!(folder.contains(&folder.join(&sub)));
    }

    #[cfg(feature = "emulator")]
    #[tokio::test]
    async fn missing_root_folder_lists_as_not_found() {
        let emu = crate::emulator::DriveEmulator::start().await;
        let b = DriveRemote::new(emu.config().with_root_folder_id("no-such-folder")).unwrap();
        let e = b.list(&RemotePath::root()).await.err().unwrap();
        assert_eq!(e.kind(), cloudsync_core::ErrorKind::NotFound, "{e}");
    }

    /// The former public name still names the remote.
    #[test]
    #[allow(deprecated)]
    fn the_former_name_is_an_alias() {
        let open: fn(GdriveConfig) -> Result<crate::GdriveBackend> = DriveRemote::new;
        assert!(open(GdriveConfig::default()).is_err());
    }

    #[test]
    fn backend_reports_its_location() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("token.json");
        std::fs::write(&tokens, r#"{"refresh_token": "hunter2"}"#).unwrap();
        let cfg = GdriveConfig {
            client_id: Some("id".into()),
            token_file: Some(tokens),
            ..GdriveConfig::default()
        }
        .with_root_folder_id("1Fold");
        let b = DriveRemote::new(cfg).unwrap();
        assert_eq!(b.location(), Some(location(None, "1Fold", DEFAULT_API_URL)));
        assert!(!b.location().unwrap().to_string().contains("hunter2"));
    }
}
